/* libFuzzer target: MTA-FQDN (prov_wire.h).
 *   - ck_mtafqdn_payload_decode on the input: what decodes re-encodes to the same bytes (the
 *     payload encoding is canonical);
 *   - ck_mtafqdn_split: a split datagram's parts are within it;
 *   - ck_mtafqdn_serve against a fixed keytab (mtafqdn/prov.test@TEST.REALM): whatever it
 *     answers splits as a datagram (AP-REP + KRB-SAFE or a KRB-ERROR);
 *   - ck_mtafqdn_reply_read with the state of a request built once: never crashes, and a
 *     success is a Reply or an Error Reply.
 * Seeds: tests/fuzz/corpus/mtafqdn/ (datagrams and payloads written by
 * `mtafqdn_pcap OUT --seeds DIR`). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cablekey/error.h"
#include "cablekey/keytab.h"
#include "cablekey/log.h"
#include "cablekey/principal.h"
#include "cablekey/prov_wire.h"
#include "cablekey/util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SERVICE "mtafqdn/prov.test@TEST.REALM"

static ck_keytab *kt;
static ck_rcache *rc;
static ck_mtafqdn_client state;
static int64_t now;

static int
lookup(void *arg, const ck_mtafqdn_msg *req, ck_mtafqdn_msg *rep)
{
    (void)arg;
    if (req->mac[0] & 1) {
        rep->type = CK_MTAFQDN_ERROR;
        rep->error = CK_MTAFQDN_ERR_UNKNOWN_DEVICE;
        ck_strlcpy(rep->text, "unknown device", sizeof(rep->text));
    } else {
        rep->type = CK_MTAFQDN_REPLY;
        ck_strlcpy(rep->fqdn, "mta-001122334455.mta.example.net", sizeof(rep->fqdn));
    }
    return 0;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ck_principal *p = NULL;
    ck_key key, session;
    CK_TICKET *ticket = NULL;
    ck_mtafqdn_msg req;
    uint8_t *dg = NULL;
    size_t dg_len = 0;

    (void)argc;
    (void)argv;
    ck_log_set_level(LOG_ERR);
    now = time(NULL);
    memset(&req, 0, sizeof(req));
    req.type = CK_MTAFQDN_REQUEST;
    if (ck_random_key(CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, &key) != 0 || ck_keytab_new(&kt) != 0 ||
        ck_principal_parse(SERVICE, NULL, 0, &p) != 0 || ck_keytab_add(kt, p, 1, 0, &key) != 0 ||
        ck_rcache_new(0, 600, &rc) != 0 ||
        ck_mtafqdn_ticket_mint(SERVICE, &key, 1, "krbtgt/TEST.REALM@TEST.REALM", now, 3600,
                               &ticket, &session) != 0 ||
        ck_mtafqdn_request_build(ticket, &session, "TEST.REALM", "krbtgt/TEST.REALM", &req, now,
                                 &state, &dg, &dg_len) != 0)
        abort();
    free(dg);
    CK_TICKET_free(ticket);
    ck_key_clear(&key);
    ck_key_clear(&session);
    ck_principal_free(p);
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ck_mtafqdn_msg m;
    uint8_t *enc = NULL, *out = NULL;
    size_t len = 0, first = 0, out_len = 0;

    if (ck_mtafqdn_payload_decode(data, size, &m) == 0) {
        if (ck_mtafqdn_payload_encode(&m, &enc, &len) != 0 || len != size ||
            memcmp(enc, data, size) != 0)
            abort();
        free(enc);
    }
    if (ck_mtafqdn_split(data, size, &first) == 0 && (first == 0 || first > size))
        abort();
    if (ck_mtafqdn_serve(data, size, ck_ap_keytab_key_fn, kt, SERVICE, rc, 300, now, lookup,
                         NULL, &out, &out_len) == 0) {
        if (out == NULL || ck_mtafqdn_split(out, out_len, &first) != 0)
            abort();
        free(out);
    } else if (out != NULL) {
        abort();
    }
    if (ck_mtafqdn_reply_read(data, size, &state, 300, now, &m) == 0 &&
        m.type != CK_MTAFQDN_REPLY && m.type != CK_MTAFQDN_ERROR)
        abort();
    ck_error_clear();
    return 0;
}
