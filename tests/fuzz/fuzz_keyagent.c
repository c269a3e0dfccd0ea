/* libFuzzer target: the key version service's decoders and the service itself.
 *   - ck_keyagent_frame_parse, ck_keyagent_req_decode, ck_keyagent_rep_decode on the input; what
 *     decodes re-encodes to the same bytes (the encodings are canonical);
 *   - the whole message through keyagent_handle_request, against a realm created once in a
 *     temporary directory (keyagent/REALM and a service principal): whatever it answers parses
 *     as a keyagent reply frame.
 * Seeds: tests/fuzz/corpus/keyagent/ (requests and inner encodings written by test_keyagent's
 * encoders). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cablekey/error.h"
#include "cablekey/keyagent.h"
#include "cablekey/kpasswd.h"
#include "cablekey/log.h"
#include "cablekey/store.h"
#include "cablekey/util.h"
#include "kdc.h"
#include "keyagent.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REALM "TEST.REALM"

static struct kdc_config cfg;
static struct keyagent_server *srv;
static struct keyagent_worker *worker;
static char dir[64], db[128];

static void
cleanup(void)
{
    char cmd[160];

    keyagent_worker_free(worker);
    keyagent_server_free(srv);
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
    ck_db_principal *p = NULL;

    (void)argc;
    (void)argv;
    ck_log_set_level(getenv("CK_FUZZ_LOG") != NULL ? LOG_INFO : LOG_ERR);
    ck_strlcpy(dir, "/tmp/ck-fuzz-keyagent-XXXXXX", sizeof(dir));
    if (mkdtemp(dir) == NULL)
        abort();
    atexit(cleanup);
    snprintf(db, sizeof(db), "%s/kdc.db", dir);
    if (ck_store_init_realm(db, NULL, REALM, et, 1, 0, 0) != 0 ||
        ck_keyagent_service_create(db, NULL) != 0 || ck_store_open(db, NULL, 0, &s) != 0 ||
        ck_db_principal_new("cms/cms.test@" REALM, &p) != 0 ||
        ck_db_keys_make(p->name, NULL, 0, et, 1, 1, &p->keys, &p->n_keys) != 0)
        abort();
    p->kvno = 1;
    if (ck_store_create_principal(s, p) != 0)
        abort();
    ck_db_principal_free(p);
    ck_store_close(s);
    kdc_config_defaults(&cfg);
    if ((cfg.db_path = strdup(db)) == NULL || keyagent_server_new(&cfg, &srv) != 0 ||
        keyagent_worker_new(srv, &worker) != 0)
        abort();
    return 0;
}

static void
fuzz_inner(const uint8_t *data, size_t size)
{
    ck_keyagent_req req;
    ck_keyagent_rep rep;
    uint8_t *enc = NULL;
    size_t len = 0;

    if (ck_keyagent_req_decode(data, size, &req) == 0) {
        if (ck_keyagent_req_encode(&req, &enc, &len) != 0 || len != size ||
            memcmp(enc, data, size) != 0)
            abort();
        free(enc);
    }
    if (ck_keyagent_rep_decode(data, size, &rep) == 0) {
        /* The text is sanitised on decode; the rest re-encodes byte for byte. */
        if (ck_keyagent_rep_encode(&rep, &enc, &len) != 0 || len != size)
            abort();
        if (memcmp(enc, data, 4) != 0 || memcmp(enc + 4 + strlen(rep.text),
                                                data + 4 + strlen(rep.text),
                                                size - 4 - strlen(rep.text)) != 0)
            abort();
        ck_free_secret(enc, len);
        ck_keyagent_rep_clear(&rep);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t reply[CK_KEYAGENT_MAX_MSG];
    ck_keyagent_frame fr;
    ck_kpasswd_rep rep;
    size_t reply_len = 0;

    if (ck_keyagent_frame_parse(data, size, &fr) == 0 &&
        (fr.ap_req_len + fr.priv_len + CK_KPASSWD_HEADER_LEN != size || fr.ap_req_len == 0 ||
         fr.priv_len == 0))
        abort();
    fuzz_inner(data, size);
    if (keyagent_handle_request(worker, data, size, NULL, reply, sizeof(reply), &reply_len) != 0)
        abort();
    if (reply_len > 0 &&
        (ck_kpasswd_rep_parse(reply, reply_len, &rep) != 0 || rep.version != CK_KEYAGENT_VERSION))
        abort();
    return 0;
}
