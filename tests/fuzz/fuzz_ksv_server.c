/* Fuzzes cablekey-ksv's core (daemons/ksv) with what a hostile network can send it: raw
 * datagrams of every kind (first byte 0), and authentic sealed messages from a registered node
 * whose content is the input (first byte 1: the rest parsed as a ck_ksv_msg, sealed under the
 * node's session, delivered), with timer ticks in between (first byte 2: the clock moves by the
 * input's amount). The core runs on a real store in a temporary directory and a topology with
 * links and an LKH group, so acknowledgements, alarms (SA_EXPIRED re-keys), GROUP_ACK and
 * RECOVER all reach their handlers. Nothing may crash, hang or grow without bound. */
#define KSV_INTERNAL
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cablekey/crypto.h"
#include "cablekey/error.h"
#include "ksv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char TOPO[] = "ksv k\n"
                           "policy p {\n TRANS-TYPE = ESP\n LIFE-SEC = 100\n ACK-REQD = yes\n}\n"
                           "node n1 10.0.0.1\nnode n2 10.0.0.2\nnode n3 10.0.0.3\n"
                           "n1 <-> n2 p\nn1 => n3 p\n"
                           "group g {\n address = 239.1.1.1\n policy = p\n members = n1 n2 n3\n}\n";

static struct ksv_core *core;
static struct ck_ksv_seal node_seal;
static struct sockaddr_in from;
static int64_t now_ms = 1764662400000;

static int
key_fn(void *arg, const CK_TICKET *ticket, int32_t etype, uint32_t kvno, ck_key *key,
       int32_t *krb_error)
{
    (void)arg;
    (void)ticket;
    (void)etype;
    (void)kvno;
    (void)key;
    *krb_error = CK_KRB_AP_ERR_NOKEY;
    return CK_ERR_NOTFOUND;
}

static int
drop(void *arg, const struct sockaddr *to, socklen_t to_len, const uint8_t *buf, size_t len)
{
    (void)arg;
    (void)to;
    (void)to_len;
    (void)buf;
    (void)len;
    return 0;
}

static void
setup(void)
{
    static struct ck_ksv_store *st;
    /* tmpfs when there is one: the store syncs every commit. */
    char dir[] = "/dev/shm/ck-fuzz-ksv.XXXXXX", alt[] = "/tmp/ck-fuzz-ksv.XXXXXX", db[64];
    const char *d = dir;
    struct ck_ksvtopo *t = NULL;
    struct ksv_params p;
    ck_key sub;

    if (mkdtemp(dir) == NULL) {
        if (mkdtemp(alt) == NULL)
            abort();
        d = alt;
    }
    snprintf(db, sizeof(db), "%s/ksv.db", d);
    if (ck_ksv_store_open(db, NULL, true, &st) != 0 ||
        ck_ksvtopo_parse(TOPO, strlen(TOPO), "fuzz", &t, NULL) != 0)
        abort();
    memset(&p, 0, sizeof(p));
    p.name = "k";
    p.service = "ksv/k.test@TEST.REALM";
    p.key_fn = key_fn;
    p.store = st;
    p.no_start_nudge = true;
    p.cb.send = drop;
    p.cb.send_mcast = drop;
    if (ksv_core_new(&p, t, &core) != 0 || ksv_core_start(core, now_ms) != 0)
        abort();
    from.sin_family = AF_INET;
    from.sin_port = htons(7442);
    inet_pton(AF_INET, "10.0.0.1", &from.sin_addr);
    if (ck_random_key(CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, &sub) != 0 ||
        ksv_core_test_session(core, "n1", &sub, 0x1234, (struct sockaddr *)&from, sizeof(from),
                              now_ms + 86400000LL * 365) != 0 ||
        ck_ksv_seal_init(&node_seal, &sub, 0x1234, false) != 0)
        abort();
    ck_key_clear(&sub);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ck_ksv_msg *m = NULL;
    uint8_t *b = NULL;
    size_t len = 0;

    if (core == NULL)
        setup();
    if (size < 1)
        return 0;
    switch (data[0] % 3) {
    case 0:
        (void)ksv_core_on_datagram(core, data + 1, size - 1, (struct sockaddr *)&from,
                                   sizeof(from), now_ms);
        break;
    case 1:
        if (ck_ksv_msg_parse(data + 1, size - 1, &m) != 0)
            break;
        m->key_id = 0x1234;
        if (ck_ksv_seal_msg(&node_seal, m, &b, &len) == 0)
            (void)ksv_core_on_datagram(core, b, len, (struct sockaddr *)&from, sizeof(from),
                                       now_ms);
        free(b);
        ck_ksv_msg_free(m);
        break;
    default:
        now_ms += size > 1 ? (int64_t)data[1] * 1000 : 1;
        (void)ksv_core_on_timer(core, now_ms);
        break;
    }
    return 0;
}
