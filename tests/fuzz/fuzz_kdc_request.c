/* libFuzzer target: whole KDC requests through kdc_handle_request, over UDP and over TCP, against
 * a realm created once in a temporary directory (alice with a password and preauth, a service,
 * krbtgt). Seeds: tests/fuzz/corpus/kdc_request/ (real MIT AS-REQ/TGS-REQ captures). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cablekey/error.h"
#include "cablekey/log.h"
#include "cablekey/store.h"
#include "cablekey/util.h"
#include "kdc.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REALM "TEST.REALM"

static struct kdc_worker *worker;
static char dir[64], db[128];

static void
add(ck_store *s, const char *name, const char *pw, uint32_t kvno, uint32_t attrs)
{
    static const int32_t et[] = {CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96,
                                 CK_ENCTYPE_AES128_CTS_HMAC_SHA256_128};
    ck_db_principal *p = NULL;

    if (ck_db_principal_new(name, &p) != 0)
        abort();
    p->kvno = kvno;
    p->attributes = attrs;
    if (ck_db_keys_make(name, pw, pw ? strlen(pw) : 0, et, 2, kvno, &p->keys, &p->n_keys) != 0 ||
        ck_store_put_principal(s, p) != 0)
        abort();
    ck_db_principal_free(p);
}

static void
cleanup(void)
{
    char cmd[160];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const int32_t et[] = {CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96};
    struct kdc_config cfg;
    ck_store *s = NULL;

    (void)argc;
    (void)argv;
    ck_log_set_level(LOG_ERR);
    ck_strlcpy(dir, "/tmp/ck-fuzz-kdc-XXXXXX", sizeof(dir));
    if (mkdtemp(dir) == NULL)
        abort();
    atexit(cleanup);
    snprintf(db, sizeof(db), "%s/kdc.db", dir);
    if (ck_store_init_realm(db, NULL, REALM, et, 1, 0, 0) != 0 ||
        ck_store_open(db, NULL, 0, &s) != 0)
        abort();
    /* The MIT captures' principals, so seeds get past the lookups. */
    add(s, "krbtgt/" REALM "@" REALM, "tgtpw", 2, 0);
    add(s, "alice@" REALM, "alicepw", 1, CK_ATTR_REQUIRES_PREAUTH);
    add(s, "host/server.test.realm@" REALM, "servicepw", 1, 0);
    ck_store_close(s);
    memset(&cfg, 0, sizeof(cfg));
    cfg.db_path = db;
    cfg.enctypes[0] = CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96;
    cfg.enctypes[1] = CK_ENCTYPE_AES128_CTS_HMAC_SHA256_128;
    cfg.n_enctypes = 2;
    /* Old captures must pass the time checks so the deeper code runs. */
    cfg.clockskew = 20LL * 365 * 86400;
    cfg.lookaside = true;
    if (kdc_worker_new(&cfg, &worker) != 0)
        abort();
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t reply[65536];
    size_t n = 0;

    if (kdc_handle_request(worker, data, size, KDC_TRANSPORT_UDP, NULL, reply, sizeof(reply),
                           &n) != 0 ||
        n > sizeof(reply))
        abort();
    if (kdc_handle_request(worker, data, size, KDC_TRANSPORT_TCP, NULL, reply, sizeof(reply),
                           &n) != 0 ||
        n > sizeof(reply))
        abort();
    /* Small reply buffers exercise the size fallbacks. */
    if (kdc_handle_request(worker, data, size, KDC_TRANSPORT_TCP, NULL, reply, 128, &n) != 0 ||
        n > 128)
        abort();
    return 0;
}
