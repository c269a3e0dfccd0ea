/* libFuzzer target: whole KDC requests through kdc_handle_request, over UDP and over TCP, against
 * a realm created once in a temporary directory (alice with a password and preauth, a service,
 * krbtgt, a device principal in the device table) with PKINIT on: a KDC identity made at
 * startup, the anchors of tests/fuzz/pkinit/anchors.h (client anchor and PacketCable anchor).
 * Seeds: tests/fuzz/corpus/kdc_request/ (real MIT AS-REQ/TGS-REQ captures; MIT and Heimdal PKINIT
 * captures; PKINIT requests in the RFC and PacketCable forms from tests/fuzz/pkinit/make_seeds.c,
 * signed at SEED_NOW, the worker's fixed clock). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>

#include "cablekey/error.h"
#include "cablekey/log.h"
#include "cablekey/pki.h"
#include "cablekey/store.h"
#include "cablekey/util.h"
#include "kdc.h"
#include "pkinit/anchors.h"
#include "pkinit_kdc.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REALM "TEST.REALM"
#define SEED_NOW ((int64_t)1767225600) /* make_seeds.c signed the PKINIT seeds then */
#define PW "fuzz-kdc-p12"

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
fixed_clock(void *ctx, int64_t *sec, int32_t *usec)
{
    (void)ctx;
    *sec = SEED_NOW + 3600;
    *usec = 0;
}

static void
write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    if (f == NULL || fputs(text, f) == EOF || fclose(f) != 0)
        abort();
    chmod(path, 0600);
}

/* A KDC identity (RSA, as PacketCable anchors need) under a throwaway root, as a PKCS#12. */
static void
make_kdc_identity(const char *p12)
{
    ck_pki_cert_spec s;
    EVP_PKEY *rk = NULL, *kk = NULL;
    X509 *root = NULL, *kdc = NULL;
    ck_pki_identity *id = NULL;

    memset(&s, 0, sizeof(s));
    s.org = "cablekey fuzz";
    s.path_len = -1;
    s.not_before = SEED_NOW - 86400;
    s.not_after = SEED_NOW + 30LL * 365 * 86400;
    if (ck_pki_key_generate(CK_PKI_KEY_EC_P256, &rk) != 0 ||
        ck_pki_key_generate(CK_PKI_KEY_RSA_2048, &kk) != 0)
        abort();
    s.profile = CK_PKI_PROFILE_ROOT_CA;
    s.common_name = "fuzz KDC root";
    if (ck_pki_cert_issue(&s, rk, NULL, rk, &root) != 0)
        abort();
    s.profile = CK_PKI_PROFILE_KDC;
    s.common_name = "fuzz KDC";
    s.principal = "krbtgt/" REALM "@" REALM;
    if (ck_pki_cert_issue(&s, kk, root, rk, &kdc) != 0 ||
        ck_pki_identity_new(kk, kdc, NULL, &id) != 0 ||
        ck_pki_p12_write(p12, id, PW, NULL, CK_PKI_WRITE_REPLACE) != 0)
        abort();
    ck_pki_identity_free(id);
    X509_free(kdc);
    X509_free(root);
    EVP_PKEY_free(kk);
    EVP_PKEY_free(rk);
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
    /* CK_FUZZ_LOG=1 shows each request's log line (to check what the seeds reach). */
    ck_log_set_level(getenv("CK_FUZZ_LOG") != NULL ? LOG_INFO : LOG_ERR);
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
    add(s, "mta1@" REALM, "mta1pw", 1, CK_ATTR_REQUIRES_PREAUTH);
    {
        ck_db_device dev;

        memset(&dev, 0, sizeof(dev));
        ck_strlcpy(dev.mac, "00:11:22:33:44:55", sizeof(dev.mac));
        dev.principal = (char *)"mta1@" REALM;
        dev.state = CK_DEVICE_ACTIVE;
        if (ck_store_add_device(s, &dev) != 0)
            abort();
    }
    ck_store_close(s);
    memset(&cfg, 0, sizeof(cfg));
    cfg.db_path = db;
    cfg.enctypes[0] = CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96;
    cfg.enctypes[1] = CK_ENCTYPE_AES128_CTS_HMAC_SHA256_128;
    cfg.n_enctypes = 2;
    /* Old captures must pass the time checks so the deeper code runs. */
    cfg.clockskew = 20LL * 365 * 86400;
    cfg.lookaside = true;
    cfg.clock = fixed_clock;
    {
        char p12[160], pw[160], sp[160], mta[160];

        snprintf(p12, sizeof(p12), "%s/kdc.p12", dir);
        snprintf(pw, sizeof(pw), "%s/pw", dir);
        snprintf(sp, sizeof(sp), "%s/sp-root.pem", dir);
        snprintf(mta, sizeof(mta), "%s/mta-root.pem", dir);
        make_kdc_identity(p12);
        write_file(pw, PW "\n");
        write_file(sp, fuzz_sp_root_pem);
        write_file(mta, fuzz_mta_root_pem);
        if (kdc_pkinit_config_set(&cfg.pkinit, "pkinit_identity", p12, false) != 0 ||
            kdc_pkinit_config_set(&cfg.pkinit, "pkinit_password_file", pw, false) != 0 ||
            kdc_pkinit_config_set(&cfg.pkinit, "pkinit_anchors", sp, false) != 0 ||
            kdc_pkinit_config_set(&cfg.pkinit, "pkinit_packetcable_anchors", mta, false) != 0 ||
            kdc_pkinit_config_finish(cfg.pkinit) != 0)
            abort();
    }
    if (kdc_worker_new(&cfg, &worker) != 0)
        abort();
    kdc_pkinit_config_free(cfg.pkinit);
    cfg.pkinit = NULL;
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
