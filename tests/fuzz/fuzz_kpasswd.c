/* libFuzzer target: the kpasswd parsers and the kpasswd service.
 *   - ck_kpasswd_req_parse / ck_kpasswd_rep_parse / ck_kpasswd_result_parse on the input;
 *   - ChangePasswdData: validated decode, then encode -> decode -> encode must agree, and the
 *     setpw helper on the same bytes;
 *   - the whole message through kpasswd_handle_request (UDP and TCP), against a realm created once
 *     in a temporary directory (kadmin/changepw, alice), whose reply must parse as a reply.
 * Seeds: tests/fuzz/corpus/kpasswd/ (MIT kpasswd version 1 and Heimdal kpasswd 0xff80 requests
 * and the service's replies, captured against cablekey-kdc; ChangePasswdData encodings). The
 * captured requests carry tickets under another realm's key: they reach the AP-REQ check. */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cablekey/error.h"
#include "cablekey/kpasswd.h"
#include "cablekey/log.h"
#include "cablekey/net.h"
#include "cablekey/store.h"
#include "cablekey/util.h"
#include "kdc.h"
#include "kpasswd.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REALM "TEST.REALM"

static struct kdc_config cfg;
static struct kpasswd_server *srv;
static struct kpasswd_worker *worker;
static char dir[64], db[128];

static void
add(ck_store *s, const char *name, const char *pw, uint32_t attrs)
{
    static const int32_t et[] = {CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96};
    ck_db_principal *p = NULL;

    if (ck_db_principal_new(name, &p) != 0)
        abort();
    p->kvno = 1;
    p->attributes = attrs;
    if (ck_db_keys_make(name, pw, pw ? strlen(pw) : 0, et, 1, 1, &p->keys, &p->n_keys) != 0 ||
        ck_store_put_principal(s, p) != 0)
        abort();
    ck_db_principal_free(p);
}

static void
cleanup(void)
{
    char cmd[160];

    kpasswd_worker_free(worker);
    kpasswd_server_free(srv);
    kdc_config_free_contents(&cfg);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const int32_t et[] = {CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96};
    ck_store *s = NULL;

    (void)argc;
    (void)argv;
    ck_log_set_level(getenv("CK_FUZZ_LOG") != NULL ? LOG_INFO : LOG_ERR);
    ck_strlcpy(dir, "/tmp/ck-fuzz-kpasswd-XXXXXX", sizeof(dir));
    if (mkdtemp(dir) == NULL)
        abort();
    atexit(cleanup);
    snprintf(db, sizeof(db), "%s/kdc.db", dir);
    if (ck_store_init_realm(db, NULL, REALM, et, 1, 0, 0) != 0 ||
        ck_store_open(db, NULL, 0, &s) != 0)
        abort();
    add(s, "kadmin/changepw@" REALM, NULL, CK_ATTR_PWCHANGE_SERVICE | CK_ATTR_DISALLOW_TGT_BASED);
    add(s, "alice@" REALM, "alicepw", CK_ATTR_REQUIRES_PREAUTH);
    ck_store_close(s);
    kdc_config_defaults(&cfg);
    if ((cfg.db_path = strdup(db)) == NULL ||
        kpasswd_server_new(&cfg, "admin@" REALM, &srv) != 0 ||
        kpasswd_worker_new(srv, &worker) != 0)
        abort();
    return 0;
}

static void
fuzz_change_passwd_data(const uint8_t *data, size_t size)
{
    CK_CHANGE_PASSWD_DATA *a = NULL, *b = NULL;
    uint8_t *d1 = NULL, *d2 = NULL;
    size_t l1 = 0, l2 = 0;
    char *pw = NULL, target[256];
    size_t pwlen = 0;

    if (ck_asn1_change_passwd_data_decode(data, size, &a) == 0) {
        if (ck_asn1_change_passwd_data_encode(a, &d1, &l1) != 0 ||
            ck_asn1_change_passwd_data_decode(d1, l1, &b) != 0 ||
            ck_asn1_change_passwd_data_encode(b, &d2, &l2) != 0 || l1 != l2 ||
            memcmp(d1, d2, l1) != 0)
            abort();
    }
    if (ck_kpasswd_setpw_data_parse(data, size, &pw, &pwlen, target, sizeof(target)) == 0) {
        if (pw == NULL || strlen(pw) != pwlen || a == NULL)
            abort();
        ck_free_secret(pw, pwlen + 1);
    }
    ck_asn1_free_der(d1, l1);
    ck_asn1_free_der(d2, l2);
    CK_CHANGE_PASSWD_DATA_free(a);
    CK_CHANGE_PASSWD_DATA_free(b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t reply[CK_KPASSWD_MAX_MSG];
    ck_kpasswd_req req;
    ck_kpasswd_rep rep;
    struct sockaddr_in local;
    struct ck_peer local_peer;
    uint16_t code;
    char text[128];
    size_t reply_len = 0;

    if (ck_kpasswd_req_parse(data, size, &req) == 0 &&
        (req.ap_req_len + req.priv_len + CK_KPASSWD_HEADER_LEN != size || req.ap_req_len == 0 ||
         req.priv_len == 0))
        abort();
    if (ck_kpasswd_rep_parse(data, size, &rep) == 0 && rep.body_len == 0)
        abort();
    (void)ck_kpasswd_result_parse(data, size, &code, text, sizeof(text));
    fuzz_change_passwd_data(data, size);

    memset(&local, 0, sizeof(local));
    local.sin_family = AF_INET;
    local.sin_addr.s_addr = htonl(0x7f000001);
    ck_peer_set(&local_peer, (const struct sockaddr *)&local, sizeof(local));
    for (int tcp = 0; tcp < 2; tcp++) {
        if (kpasswd_handle_request(worker, data, size, tcp != 0, NULL, tcp ? &local_peer : NULL,
                                   reply, sizeof(reply),
                                   &reply_len) != 0)
            abort();
        /* Whatever the service answers is a well-formed kpasswd reply. */
        if (reply_len > 0 && ck_kpasswd_rep_parse(reply, reply_len, &rep) != 0)
            abort();
    }
    return 0;
}
