/* cablekey-prov's signer (daemons/prov/signer.c) and the operator certificate profile of lib/pki:
 * phone IDs against vectors computed outside the project (Python's hmac), the forked signer
 * issuing a certificate that carries the manufacturer certificate's key, the MAC as CN and the
 * phone IDs, and that chains to sp-root through prov-ca; refusals (wrong MAC, too long a
 * validity, too many numbers, bad keys at start) and garbage on its socket. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "ck_test.h"
#include "cablekey/pki.h"
#include "cablekey/util.h"
#include "prov.h"
#include "signer_int.h"

static char tmpdir[64];

static void
tpath(char *buf, size_t size, const char *name)
{
    if (tmpdir[0] == '\0') {
        ck_strlcpy(tmpdir, "/tmp/ck-provsign-XXXXXX", sizeof(tmpdir));
        if (mkdtemp(tmpdir) == NULL)
            abort();
    }
    snprintf(buf, size, "%s/%s", tmpdir, name);
}

/* A test file with a given mode (the code under test checks modes). */
static void
write_file(const char *path, const void *data, size_t len, mode_t mode)
{
    if (ck_file_write_atomic(path, data, len, CK_WRITE_REPLACE) != 0 || chmod(path, mode) != 0)
        abort();
}

/* ------------------------------------------------------------------------------------------- */
/* The two hierarchies: sp-root -> prov-ca, mfg-root -> mfg-ca -> device (EC P-256: fast). */

static EVP_PKEY *sp_root_key, *prov_ca_key, *mfg_root_key, *mfg_ca_key, *dev_key;
static X509 *sp_root, *prov_ca, *mfg_root, *mfg_ca, *dev_cert, *other_cert;
static uint8_t *dev_der, *other_der;
static size_t dev_der_len, other_der_len;
static char ca_cert_path[128], ca_key_path[128], pw_path[128], phone_key_path[128];
static uint8_t phone_key[32];
static const uint8_t dev_mac[6] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55};

static X509 *
issue(ck_pki_profile profile, const char *org, const char *cn, int path_len, EVP_PKEY *key,
      X509 *issuer, EVP_PKEY *issuer_key)
{
    ck_pki_cert_spec s = {0};
    int64_t now = (int64_t)time(NULL);
    X509 *x = NULL;

    s.profile = profile;
    s.country = "US";
    s.org = org;
    s.org_unit = "PacketCable";
    s.common_name = cn;
    s.path_len = path_len;
    s.not_before = now - 3600;
    s.not_after = now + 3 * 365 * 86400;
    if (ck_pki_cert_issue(&s, key, issuer, issuer_key, &x) != 0) {
        fprintf(stderr, "issue %s: %s\n", cn, ck_error_context());
        abort();
    }
    return x;
}

static uint8_t *
der_of(X509 *x, size_t *len)
{
    unsigned char *der = NULL;
    int n = i2d_X509(x, &der);

    if (n <= 0)
        abort();
    *len = (size_t)n;
    return der;
}

static void
setup(void)
{
    EVP_PKEY *k2 = NULL;

    if (sp_root != NULL)
        return;
    if (ck_pki_key_generate(CK_PKI_KEY_EC_P256, &sp_root_key) != 0 ||
        ck_pki_key_generate(CK_PKI_KEY_EC_P256, &prov_ca_key) != 0 ||
        ck_pki_key_generate(CK_PKI_KEY_EC_P256, &mfg_root_key) != 0 ||
        ck_pki_key_generate(CK_PKI_KEY_EC_P256, &mfg_ca_key) != 0 ||
        ck_pki_key_generate(CK_PKI_KEY_EC_P256, &dev_key) != 0 ||
        ck_pki_key_generate(CK_PKI_KEY_EC_P256, &k2) != 0)
        abort();
    sp_root = issue(CK_PKI_PROFILE_ROOT_CA, "Test Cable", "Test Cable Service Provider Root CA",
                    -1, sp_root_key, NULL, sp_root_key);
    prov_ca = issue(CK_PKI_PROFILE_CA, "Test Cable", "Test Cable Provisioning CA", 0,
                    prov_ca_key, sp_root, sp_root_key);
    mfg_root = issue(CK_PKI_PROFILE_ROOT_CA, "Test Maker", "Test Maker Root", -1, mfg_root_key,
                     NULL, mfg_root_key);
    mfg_ca = issue(CK_PKI_PROFILE_CA, "Test Maker", "Test Maker MTA CA", 0, mfg_ca_key,
                   mfg_root, mfg_root_key);
    dev_cert = issue(CK_PKI_PROFILE_DEVICE, "Test Maker", "00:11:22:33:44:55", -1, dev_key,
                     mfg_ca, mfg_ca_key);
    other_cert = issue(CK_PKI_PROFILE_DEVICE, "Test Maker", "00:11:22:33:44:66", -1, k2, mfg_ca,
                       mfg_ca_key);
    EVP_PKEY_free(k2);
    dev_der = der_of(dev_cert, &dev_der_len);
    other_der = der_of(other_cert, &other_der_len);

    tpath(ca_cert_path, sizeof(ca_cert_path), "prov-ca.pem");
    tpath(ca_key_path, sizeof(ca_key_path), "prov-ca-key.pem");
    tpath(pw_path, sizeof(pw_path), "ca.pw");
    tpath(phone_key_path, sizeof(phone_key_path), "phone-id.key");
    write_file(pw_path, "ca secret\n", 10, 0600);
    if (ck_pki_certs_write_pem(ca_cert_path, prov_ca, NULL, 0) != 0 ||
        ck_pki_key_write_pem(ca_key_path, prov_ca_key, "ca secret", 0) != 0 ||
        ck_pki_phone_id_key_create(phone_key_path) != 0 ||
        ck_pki_phone_id_key_load(phone_key_path, phone_key) != 0) {
        fprintf(stderr, "setup: %s\n", ck_error_context());
        abort();
    }
}

static void
config(struct prov_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->ca_cert = ca_cert_path;
    cfg->ca_key = ca_key_path;
    cfg->ca_password_file = pw_path;
    cfg->phone_id_key = phone_key_path;
    cfg->cert_days = 365;
    cfg->repair_cert_hours = 48;
}

/* ------------------------------------------------------------------------------------------- */

static void
phone_id_vectors(void)
{
    static const struct {
        const char *number, *hex;
    } v[] = {
        {"15551234567", "9fe84ab32076c20b40c84e80762810f7d6b561f7f882f4d650cc6121cc30cf11"},
        {"611", "a2743733645c6fdeb310e53d8d7e1afc45eec8772e521728cc4d819183ac55d6"},
    };
    static const char *const bad[] = {"", "+15551234567", "555-1234", "1234567890123456",
                                      "12a4"};
    uint8_t key[32], id[32];

    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t)i;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        size_t len;
        unsigned char *want = ck_test_hex(v[i].hex, &len);
        CHECK_OK(ck_pki_phone_id(key, v[i].number, id));
        CHECK_MEM_EQ(id, sizeof(id), want, len);
        free(want);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK_INT_EQ(ck_pki_phone_id(key, bad[i], id), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_pki_phone_id(key, NULL, id), CK_ERR_INVAL);
}

static void
phone_id_key_file(void)
{
    char path[128];
    uint8_t key[32], key2[32];
    struct stat st;

    tpath(path, sizeof(path), "k1");
    CHECK_OK(ck_pki_phone_id_key_create(path));
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600 && st.st_size == 32);
    CHECK_OK(ck_pki_phone_id_key_load(path, key));
    /* Exclusive: the existing key (which every issued phone ID depends on) stays. */
    CHECK_INT_EQ(ck_pki_phone_id_key_create(path), CK_ERR_EXISTS);
    CHECK_OK(ck_pki_phone_id_key_load(path, key2));
    CHECK_MEM_EQ(key, 32, key2, 32);
    chmod(path, 0640);
    CHECK_INT_EQ(ck_pki_phone_id_key_load(path, key), CK_ERR_PERM);
    write_file(path, "short", 5, 0600);
    CHECK_INT_EQ(ck_pki_phone_id_key_load(path, key), CK_ERR_INVAL);
    write_file(path, "0123456789abcdef0123456789abcdef!", 33, 0600);
    CHECK_INT_EQ(ck_pki_phone_id_key_load(path, key), CK_ERR_INVAL);
    tpath(path, sizeof(path), "missing");
    CHECK_INT_EQ(ck_pki_phone_id_key_load(path, key), CK_ERR_NOTFOUND);
}

/* Everything a relying party checks in an operator certificate. */
static void
check_operator_cert(const uint8_t *der, size_t len, const char *const *numbers, size_t n)
{
    const unsigned char *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)len);
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    STACK_OF(X509) *untrusted = sk_X509_new_null();
    uint8_t ids[CK_PKI_MAX_PHONE_IDS][32], want[32], mac[6];
    EXTENDED_KEY_USAGE *eku;
    size_t n_ids = 0;
    int crit = -1;
    bool pkinit = false, client = false;

    CHECK(x != NULL);
    if (x == NULL)
        goto out;
    /* The same key the manufacturer certified (seed 002). */
    CHECK(EVP_PKEY_eq(X509_get0_pubkey(x), dev_key) == 1);
    CHECK_OK(ck_pki_cert_device_mac(x, mac));
    CHECK_MEM_EQ(mac, 6, dev_mac, 6);
    {
        char cn[64] = "";
        X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn));
        CHECK(strcmp(cn, "00:11:22:33:44:55") == 0);
    }
    CHECK(X509_NAME_cmp(X509_get_issuer_name(x), X509_get_subject_name(prov_ca)) == 0);
    CHECK_OK(ck_pki_cert_phone_ids(x, ids, CK_PKI_MAX_PHONE_IDS, &n_ids));
    CHECK_INT_EQ(n_ids, n);
    for (size_t i = 0; i < n && i < n_ids; i++) {
        CHECK_OK(ck_pki_phone_id(phone_key, numbers[i], want));
        CHECK_MEM_EQ(ids[i], 32, want, 32);
    }
    {
        ASN1_OBJECT *oid = OBJ_txt2obj(CK_PKI_PHONE_IDS_OID, 1);
        int idx = X509_get_ext_by_OBJ(x, oid, -1);
        CHECK(idx >= 0);
        if (idx >= 0)
            crit = X509_EXTENSION_get_critical(X509_get_ext(x, idx));
        CHECK_INT_EQ(crit, 0);
        ASN1_OBJECT_free(oid);
    }
    eku = X509_get_ext_d2i(x, NID_ext_key_usage, NULL, NULL);
    for (int i = 0; eku != NULL && i < sk_ASN1_OBJECT_num(eku); i++) {
        int nid = OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, i));
        pkinit |= nid == NID_pkInitClientAuth;
        client |= nid == NID_client_auth;
    }
    sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
    CHECK(pkinit && client);
    CHECK(!(X509_get_extension_flags(x) & EXFLAG_CA));
    /* Chains to sp-root through prov-ca; not to the manufacturer's root. */
    X509_STORE_add_cert(store, sp_root);
    sk_X509_push(untrusted, prov_ca);
    X509_STORE_CTX_init(ctx, store, x, untrusted);
    X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
    CHECK(X509_verify_cert(ctx) == 1);
    X509_STORE_CTX_cleanup(ctx);
    X509_STORE_free(store);
    store = X509_STORE_new();
    X509_STORE_add_cert(store, mfg_root);
    X509_STORE_CTX_init(ctx, store, x, untrusted);
    CHECK(X509_verify_cert(ctx) != 1);
out:
    ERR_clear_error();
    sk_X509_free(untrusted);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    X509_free(x);
}

static void
operator_profile_direct(void)
{
    const char *nums[] = {"15551230001"};
    uint8_t ids[1][32], other_mac[6] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x66};
    int64_t now = (int64_t)time(NULL);
    X509 *x = NULL;
    uint8_t *der;
    size_t len;

    setup();
    CHECK_OK(ck_pki_phone_id(phone_key, nums[0], ids[0]));
    CHECK_OK(ck_pki_operator_issue(dev_cert, dev_mac, (const uint8_t(*)[32])ids, 1, now - 60,
                                   now + 86400, prov_ca, prov_ca_key, &x));
    if (x != NULL) {
        der = der_of(x, &len);
        check_operator_cert(der, len, nums, 1);
        OPENSSL_free(der);
    }
    X509_free(x);
    x = NULL;
    CHECK_INT_EQ(ck_pki_operator_issue(dev_cert, other_mac, (const uint8_t(*)[32])ids, 1,
                                       now - 60, now + 86400, prov_ca, prov_ca_key, &x),
                 CK_ERR_POLICY);
    CHECK(x == NULL);
    /* A manufacturer certificate has no phone-ID extension; other profiles may not carry one. */
    CHECK_INT_EQ(ck_pki_cert_phone_ids(dev_cert, ids, 1, &len), CK_ERR_NOTFOUND);
    {
        ck_pki_cert_spec s = {0};
        s.profile = CK_PKI_PROFILE_DEVICE;
        s.org = "X";
        s.common_name = "00:11:22:33:44:55";
        s.path_len = -1;
        s.not_before = now;
        s.not_after = now + 60;
        s.phone_ids = (const uint8_t(*)[32])ids;
        s.n_phone_ids = 1;
        CHECK_INT_EQ(ck_pki_cert_issue(&s, dev_key, mfg_ca, mfg_ca_key, &x), CK_ERR_INVAL);
    }
}

/* An operator certificate whose phone-ID extension is hostile: each one is refused. */
static void
phone_ids_hostile(void)
{
    static const char *const bad[] = {
        "",                                   /* empty */
        "04 20 00",                           /* an OCTET STRING, not a SEQUENCE */
        "30 03 04 01 00",                     /* an ID of 1 byte */
        "30 80 00 00",                        /* BER indefinite length */
        /* a non-minimal length */
        "30 81 22 04 20 0000000000000000000000000000000000000000000000000000000000000000",
        "30 22 04 20 0000000000000000000000000000000000000000000000000000000000000000 00",
        "30 22 02 20 0000000000000000000000000000000000000000000000000000000000000000",
    };
    int64_t now = (int64_t)time(NULL);
    uint8_t ids[8][32];
    size_t n;

    setup();
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t len;
        unsigned char *der = ck_test_hex(bad[i], &len);
        ck_pki_cert_spec s = {0};
        ASN1_OBJECT *oid = OBJ_txt2obj(CK_PKI_PHONE_IDS_OID, 1);
        ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
        X509_EXTENSION *ext = NULL;
        X509 *x = NULL;
        int rc;

        s.profile = CK_PKI_PROFILE_DEVICE;
        s.org = "X";
        s.common_name = "00:11:22:33:44:55";
        s.path_len = -1;
        s.not_before = now;
        s.not_after = now + 60;
        if (ck_pki_cert_issue(&s, dev_key, mfg_ca, mfg_ca_key, &x) != 0 ||
            !ASN1_OCTET_STRING_set(os, der, (int)len) ||
            (ext = X509_EXTENSION_create_by_OBJ(NULL, oid, 0, os)) == NULL ||
            !X509_add_ext(x, ext, -1))
            abort();
        rc = ck_pki_cert_phone_ids(x, ids, 8, &n);
        if (rc != CK_ERR_DECODE && rc != CK_ERR_LIMIT) {
            fprintf(stderr, "  hostile extension %zu: rc %d\n", i, rc);
            ck_test_case_failed = 1;
        }
        CHECK_INT_EQ(n, 0);
        X509_EXTENSION_free(ext);
        ASN1_OCTET_STRING_free(os);
        ASN1_OBJECT_free(oid);
        X509_free(x);
        free(der);
    }
    /* max smaller than the count: CK_ERR_LIMIT, not an overrun. */
    {
        uint8_t two[2][32] = {{1}, {2}};
        X509 *x = NULL;
        CHECK_OK(ck_pki_operator_issue(dev_cert, dev_mac, (const uint8_t(*)[32])two, 2,
                                       now - 60, now + 600, prov_ca, prov_ca_key, &x));
        CHECK_INT_EQ(ck_pki_cert_phone_ids(x, ids, 1, &n), CK_ERR_LIMIT);
        X509_free(x);
    }
}

/* ------------------------------------------------------------------------------------------- */
/* The signer's path: the operator certificate from the manufacturer certificate's DER, its key
 * never decoded (ck_pki_operator_issue_der). */

static uint8_t *
i2d_alloc(int (*i2d)(const void *, unsigned char **), const void *v, size_t *len)
{
    unsigned char *der = NULL;
    int n = i2d(v, &der);

    *len = n > 0 ? (size_t)n : 0;
    return n > 0 ? der : NULL;
}

static int
i2d_spki(const void *x, unsigned char **out)
{
    return i2d_X509_PUBKEY(X509_get_X509_PUBKEY((X509 *)x), out);
}

static int
i2d_exts(const void *x, unsigned char **out)
{
    const STACK_OF(X509_EXTENSION) *exts = X509_get0_extensions(x);

    return i2d_X509_EXTENSIONS((X509_EXTENSIONS *)exts, out);
}

/* The certificate issued from the DER is the one issued from the X509: subject, issuer, the
 * manufacturer's SPKI byte for byte, validity, every extension (keyUsage with keyEncipherment for
 * RSA only, the key identifiers, the phone IDs); only the serial and signature differ. */
static void
operator_der_same(ck_pki_key_type type)
{
    const char *nums[] = {"15551230001", "15551230002"};
    int64_t now = (int64_t)time(NULL);
    uint8_t ids[2][32];
    EVP_PKEY *key = NULL;
    X509 *mfg = NULL, *a = NULL, *b = NULL;
    uint8_t *mfg_der = NULL, *spki_mfg = NULL, *spki_a = NULL, *spki_b = NULL, *ext_a = NULL,
            *ext_b = NULL;
    size_t mfg_len = 0, l_mfg = 0, l_a = 0, l_b = 0, le_a = 0, le_b = 0;
    bool rsa = type == CK_PKI_KEY_RSA_2048 || type == CK_PKI_KEY_RSA_3072;

    setup();
    CHECK_OK(ck_pki_phone_id(phone_key, nums[0], ids[0]));
    CHECK_OK(ck_pki_phone_id(phone_key, nums[1], ids[1]));
    CHECK_OK(ck_pki_key_generate(type, &key));
    if (key == NULL)
        return;
    mfg = issue(CK_PKI_PROFILE_DEVICE, "Test Maker", "00:11:22:33:44:55", -1, key, mfg_ca,
                mfg_ca_key);
    mfg_der = der_of(mfg, &mfg_len);
    CHECK_OK(ck_pki_operator_issue(mfg, dev_mac, (const uint8_t(*)[32])ids, 2, now - 60,
                                   now + 86400, prov_ca, prov_ca_key, &a));
    CHECK_OK(ck_pki_operator_issue_der(mfg_der, mfg_len, dev_mac, (const uint8_t(*)[32])ids, 2,
                                       now - 60, now + 86400, prov_ca, prov_ca_key, &b));
    if (a == NULL || b == NULL)
        goto out;
    CHECK(X509_NAME_cmp(X509_get_subject_name(a), X509_get_subject_name(b)) == 0);
    CHECK(X509_NAME_cmp(X509_get_issuer_name(a), X509_get_issuer_name(b)) == 0);
    CHECK_INT_EQ(X509_get_version(a), X509_get_version(b));
    CHECK(ASN1_TIME_compare(X509_get0_notBefore(a), X509_get0_notBefore(b)) == 0);
    CHECK(ASN1_TIME_compare(X509_get0_notAfter(a), X509_get0_notAfter(b)) == 0);
    spki_mfg = i2d_alloc(i2d_spki, mfg, &l_mfg);
    spki_a = i2d_alloc(i2d_spki, a, &l_a);
    spki_b = i2d_alloc(i2d_spki, b, &l_b);
    CHECK(l_mfg > 0);
    CHECK_MEM_EQ(spki_b, l_b, spki_a, l_a);
    CHECK_MEM_EQ(spki_b, l_b, spki_mfg, l_mfg);
    ext_a = i2d_alloc(i2d_exts, a, &le_a);
    ext_b = i2d_alloc(i2d_exts, b, &le_b);
    CHECK(le_a > 0);
    CHECK_MEM_EQ(ext_b, le_b, ext_a, le_a);
    CHECK(X509_get_key_usage(b) != UINT32_MAX);
    CHECK(!!(X509_get_key_usage(b) & KU_DIGITAL_SIGNATURE));
    CHECK_INT_EQ(!!(X509_get_key_usage(b) & KU_KEY_ENCIPHERMENT), rsa);
    {
        /* As a relying party reads it (a built certificate holds its key undecoded). */
        size_t len = 0;
        uint8_t *der = der_of(b, &len);
        const unsigned char *p = der;
        X509 *back = d2i_X509(NULL, &p, (long)len);
        CHECK(back != NULL && EVP_PKEY_eq(X509_get0_pubkey(back), key) == 1);
        X509_free(back);
        OPENSSL_free(der);
    }
    CHECK(X509_verify(b, prov_ca_key) == 1);
    CHECK(X509_verify(a, prov_ca_key) == 1);
    if (type == CK_PKI_KEY_EC_P256) {
        /* The test device's own certificate, through everything a relying party checks. */
        uint8_t *der = NULL;
        size_t len = 0;
        X509 *c = NULL;
        CHECK_OK(ck_pki_operator_issue_der(dev_der, dev_der_len, dev_mac,
                                           (const uint8_t(*)[32])ids, 2, now - 60, now + 86400,
                                           prov_ca, prov_ca_key, &c));
        if (c != NULL) {
            der = der_of(c, &len);
            check_operator_cert(der, len, nums, 2);
        }
        OPENSSL_free(der);
        X509_free(c);
    }
out:
    OPENSSL_free(spki_mfg);
    OPENSSL_free(spki_a);
    OPENSSL_free(spki_b);
    OPENSSL_free(ext_a);
    OPENSSL_free(ext_b);
    OPENSSL_free(mfg_der);
    X509_free(a);
    X509_free(b);
    X509_free(mfg);
    EVP_PKEY_free(key);
}

static void
operator_der_same_rsa(void)
{
    operator_der_same(CK_PKI_KEY_RSA_2048);
}

static void
operator_der_same_ec(void)
{
    operator_der_same(CK_PKI_KEY_EC_P256);
}

/* A device certificate for key, issued by the manufacturer CA without going through
 * ck_pki_cert_issue's key checks (any key OpenSSL can encode). */
static uint8_t *
odd_device_der(EVP_PKEY *key, size_t *len)
{
    ck_pki_cert_spec s = {0};
    int64_t now = (int64_t)time(NULL);
    X509 *x = NULL;
    uint8_t *der;

    s.profile = CK_PKI_PROFILE_DEVICE;
    s.org = "Test Maker";
    s.common_name = "00:11:22:33:44:55";
    s.path_len = -1;
    s.not_before = now - 60;
    s.not_after = now + 86400;
    if (ck_pki_cert_issue(&s, key, mfg_ca, mfg_ca_key, &x) != 0) {
        fprintf(stderr, "  odd device certificate: %s\n", ck_error_context());
        ck_test_case_failed = 1;
        *len = 0;
        return NULL;
    }
    der = der_of(x, len);
    X509_free(x);
    return der;
}

/* Refusals of the DER path: each an error, no certificate, no crash. */
static void
operator_der_refuses(void)
{
    uint8_t other_mac[6] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x66}, junk[64], *buf;
    int64_t now = (int64_t)time(NULL);
    EVP_PKEY *ed = NULL, *explicit_ec = NULL;
    X509 *x = NULL;
    uint8_t *der, *spki;
    size_t len, spki_len;

#define ISSUE_DER(d, l, m)                                                                    \
    ck_pki_operator_issue_der((d), (l), (m), NULL, 0, now - 60, now + 86400, prov_ca,          \
                              prov_ca_key, &x)
    setup();
    /* Another device's certificate. */
    CHECK_INT_EQ(ISSUE_DER(other_der, other_der_len, dev_mac), CK_ERR_POLICY);
    CHECK(strstr(ck_error_context(), "00:11:22:33:44:66") != NULL);
    CHECK(x == NULL);
    CHECK_INT_EQ(ISSUE_DER(dev_der, dev_der_len, other_mac), CK_ERR_POLICY);
    CHECK(x == NULL);
    /* A byte after the certificate. */
    buf = malloc(dev_der_len + 1);
    if (buf == NULL)
        abort();
    memcpy(buf, dev_der, dev_der_len);
    buf[dev_der_len] = 0;
    CHECK_INT_EQ(ISSUE_DER(buf, dev_der_len + 1, dev_mac), CK_ERR_DECODE);
    CHECK(x == NULL);
    /* Every truncation, down to nothing. */
    for (size_t l = 0; l < dev_der_len; l++) {
        int rc = ISSUE_DER(buf, l, dev_mac);
        if (rc != CK_ERR_DECODE || x != NULL) {
            fprintf(stderr, "  truncated to %zu bytes: rc %d\n", l, rc);
            ck_test_case_failed = 1;
            X509_free(x);
            x = NULL;
        }
    }
    free(buf);
    /* Not a certificate: a SEQUENCE of junk, and a SubjectPublicKeyInfo. */
    memset(junk, 0x30, sizeof(junk));
    CHECK_INT_EQ(ISSUE_DER(junk, sizeof(junk), dev_mac), CK_ERR_DECODE);
    spki = i2d_alloc(i2d_spki, dev_cert, &spki_len);
    CHECK_INT_EQ(ISSUE_DER(spki, spki_len, dev_mac), CK_ERR_DECODE);
    OPENSSL_free(spki);
    CHECK_INT_EQ(ck_pki_operator_issue_der(NULL, 0, dev_mac, NULL, 0, now - 60, now + 86400,
                                           prov_ca, prov_ca_key, &x), CK_ERR_INVAL);
    CHECK(x == NULL);
    /* An Ed25519 device key: a valid certificate, an algorithm the profile does not take. */
    ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    CHECK(ed != NULL);
    if (ed != NULL && (der = odd_device_der(ed, &len)) != NULL) {
        CHECK_INT_EQ(ISSUE_DER(der, len, dev_mac), CK_ERR_POLICY);
        CHECK(strstr(ck_error_context(), "ED25519") != NULL);
        CHECK(x == NULL);
        OPENSSL_free(der);
    }
    /* A P-256 key written with explicit curve parameters instead of the curve's name. */
    if ((explicit_ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) == NULL ||
        !EVP_PKEY_set_utf8_string_param(explicit_ec, "encoding", "explicit"))
        abort();
    if ((der = odd_device_der(explicit_ec, &len)) != NULL) {
        CHECK_INT_EQ(ISSUE_DER(der, len, dev_mac), CK_ERR_POLICY);
        CHECK(strstr(ck_error_context(), "named curve") != NULL);
        CHECK(x == NULL);
        OPENSSL_free(der);
    }
#undef ISSUE_DER
    /* ck_pki_cert_issue without a key: only with an SPKI, and never for a self-signed root. */
    {
        ck_pki_cert_spec s = {0};
        s.profile = CK_PKI_PROFILE_DEVICE;
        s.org = "X";
        s.common_name = "00:11:22:33:44:55";
        s.path_len = -1;
        s.not_before = now;
        s.not_after = now + 60;
        CHECK_INT_EQ(ck_pki_cert_issue(&s, NULL, mfg_ca, mfg_ca_key, &x), CK_ERR_INVAL);
        s.spki = X509_get_X509_PUBKEY(dev_cert);
        CHECK_OK(ck_pki_cert_issue(&s, NULL, mfg_ca, mfg_ca_key, &x));
        if (x != NULL) {
            uint8_t *d = der_of(x, &len);
            const unsigned char *p = d;
            X509 *back = d2i_X509(NULL, &p, (long)len);
            CHECK(back != NULL && EVP_PKEY_eq(X509_get0_pubkey(back), dev_key) == 1);
            X509_free(back);
            OPENSSL_free(d);
        }
        X509_free(x);
        x = NULL;
        s.profile = CK_PKI_PROFILE_ROOT_CA;
        CHECK_INT_EQ(ck_pki_cert_issue(&s, NULL, NULL, dev_key, &x), CK_ERR_INVAL);
        CHECK(x == NULL);
    }
    EVP_PKEY_free(explicit_ec);
    EVP_PKEY_free(ed);
}

/* ------------------------------------------------------------------------------------------- */

/* A signer on the test's files, and a request for the test device. */
static struct prov_signer *
start_signer(void)
{
    struct prov_config cfg;
    struct prov_signer *s = NULL;

    setup();
    config(&cfg);
    CHECK_OK(prov_signer_start(&cfg, &s));
    return s;
}

static struct prov_sign_req
device_req(const char *const *nums, size_t n, int64_t not_before, int64_t not_after)
{
    struct prov_sign_req req = {0};

    req.mfg_cert_der = dev_der;
    req.mfg_cert_len = dev_der_len;
    req.mac = "00:11:22:33:44:55";
    req.numbers = nums;
    req.n_numbers = n;
    req.not_before = not_before;
    req.not_after = not_after;
    return req;
}

static void
signer_issues(void)
{
    const char *nums[] = {"15551230001", "15551230002"};
    int64_t now = (int64_t)time(NULL);
    struct prov_sign_req req = device_req(nums, 2, now - 300, now + 365 * 86400);
    struct prov_signer *s = start_signer();
    uint8_t *der = NULL, id[32], want[32];
    size_t der_len = 0;

    if (s == NULL)
        return;
    req.mac = "00-11-22-33-44-55";   /* any form the project parses */
    CHECK_OK(prov_signer_issue(s, &req, &der, &der_len));
    if (der != NULL)
        check_operator_cert(der, der_len, nums, 2);
    free(der);
    der = NULL;
    /* A repair certificate: 48 hours, no number. */
    req.n_numbers = 0;
    req.not_after = now + 48 * 3600;
    CHECK_OK(prov_signer_issue(s, &req, &der, &der_len));
    if (der != NULL)
        check_operator_cert(der, der_len, nums, 0);
    free(der);
    der = NULL;
    CHECK_OK(prov_signer_phone_id(s, "611", id));
    CHECK_OK(ck_pki_phone_id(phone_key, "611", want));
    CHECK_MEM_EQ(id, 32, want, 32);
    CHECK_INT_EQ(prov_signer_phone_id(s, "61a", id), CK_ERR_DECODE);
    CHECK_INT_EQ(prov_signer_phone_id(s, "", id), CK_ERR_INVAL);
    prov_signer_stop(s);
}

static void
signer_refuses(void)
{
    const char *nums[9] = {"1", "2", "3", "4", "5", "6", "7", "8", "9"};
    int64_t now = (int64_t)time(NULL);
    struct prov_sign_req req = device_req(nums, 1, now, now + 86400);
    struct prov_signer *s = start_signer();
    uint8_t *der = NULL;
    size_t der_len = 0;

    if (s == NULL)
        return;
    req.mfg_cert_der = other_der; /* 00:11:22:33:44:66's certificate */
    req.mfg_cert_len = other_der_len;
    CHECK_INT_EQ(prov_signer_issue(s, &req, &der, &der_len), CK_ERR_POLICY);
    CHECK(strstr(ck_error_context(), "00:11:22:33:44:66") != NULL);
    CHECK(der == NULL && der_len == 0);
    req.mfg_cert_der = dev_der;
    req.mfg_cert_len = dev_der_len;
    req.not_after = now + 366 * 86400 + 3600; /* longer than cert_days */
    CHECK_INT_EQ(prov_signer_issue(s, &req, &der, &der_len), CK_ERR_POLICY);
    req.not_before = now - 3 * 3600;          /* backdated three hours: fine */
    req.not_after = now + 365 * 86400;
    CHECK_OK(prov_signer_issue(s, &req, &der, &der_len));
    free(der);
    der = NULL;
    req.not_before = now - 3 * 86400;         /* far from now */
    req.not_after = now + 86400;
    CHECK_INT_EQ(prov_signer_issue(s, &req, &der, &der_len), CK_ERR_POLICY);
    req.not_before = now + 100;               /* empty */
    req.not_after = now + 100;
    CHECK_INT_EQ(prov_signer_issue(s, &req, &der, &der_len), CK_ERR_POLICY);
    req.not_before = now;
    req.not_after = now + 86400;
    req.n_numbers = 9;
    CHECK_INT_EQ(prov_signer_issue(s, &req, &der, &der_len), CK_ERR_LIMIT);
    req.n_numbers = 1;
    req.mac = "01:00:5e:00:00:01";            /* a group address */
    CHECK(prov_signer_issue(s, &req, &der, &der_len) != 0);
    req.mac = "00:11:22:33:44:55";
    {
        uint8_t junk[64];
        memset(junk, 0x30, sizeof(junk));
        req.mfg_cert_der = junk;
        req.mfg_cert_len = sizeof(junk);
        CHECK_INT_EQ(prov_signer_issue(s, &req, &der, &der_len), CK_ERR_DECODE);
        req.mfg_cert_der = dev_der;
        req.mfg_cert_len = dev_der_len;
    }
    {
        /* A key algorithm the operator profile does not take (the signer never decodes it). */
        EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
        size_t ed_len = 0;
        uint8_t *ed_der = ed != NULL ? odd_device_der(ed, &ed_len) : NULL;
        CHECK(ed_der != NULL);
        if (ed_der != NULL) {
            req.mfg_cert_der = ed_der;
            req.mfg_cert_len = ed_len;
            CHECK_INT_EQ(prov_signer_issue(s, &req, &der, &der_len), CK_ERR_POLICY);
            CHECK(strstr(ck_error_context(), "ED25519") != NULL);
        }
        req.mfg_cert_der = dev_der;
        req.mfg_cert_len = dev_der_len;
        OPENSSL_free(ed_der);
        EVP_PKEY_free(ed);
    }
    CHECK(der == NULL);
    /* Still serving after every refusal. */
    CHECK_OK(prov_signer_issue(s, &req, &der, &der_len));
    free(der);
    prov_signer_stop(s);
}

/* Sends raw bytes to the signer and returns the status byte of its answer (-1: none). */
static int
raw_exchange(int fd, const void *msg, size_t len)
{
    uint8_t buf[PROV_SIGNER_MSG_MAX + 1];
    struct pollfd p = {.fd = fd, .events = POLLIN};
    ssize_t n;

    if (send(fd, msg, len, MSG_NOSIGNAL) != (ssize_t)len)
        return -1;
    if (poll(&p, 1, 10000) != 1)
        return -1;
    n = recv(fd, buf, sizeof(buf), 0);
    if (n < PROV_SIGNER_HDR || buf[0] != PROV_SIGNER_VERSION ||
        ck_get_be32(buf + 4) != (uint32_t)n - PROV_SIGNER_HDR || !(buf[1] & 0x80))
        return -1;
    return buf[2];
}

static void
signer_garbage(void)
{
    struct prov_signer *s = start_signer();
    uint8_t big[PROV_SIGNER_MSG_MAX + 100], junk[256], id[32];
    const uint8_t header_only[8] = {1, 2, 0, 0, 0, 0, 0, 0};
    const uint8_t bad_len[10] = {1, 2, 0, 0, 0, 0, 0, 9, 1, '1'};
    const uint8_t bad_version[10] = {7, 2, 0, 0, 0, 0, 0, 2, 1, '1'};
    const uint8_t trailing[11] = {1, 2, 0, 0, 0, 0, 0, 3, 1, '1', 0};
    const uint8_t unknown_type[10] = {1, 9, 0, 0, 0, 0, 0, 2, 1, '1'};
    const uint8_t good[10] = {1, 2, 0, 0, 0, 0, 0, 2, 1, '1'};
    int fd;

    if (s == NULL)
        return;
    fd = prov_signer_fd(s);
    CHECK(raw_exchange(fd, "x", 1) > 0);
    CHECK(raw_exchange(fd, "", 0) > 0);       /* an empty packet is not the end */
    CHECK(raw_exchange(fd, header_only, sizeof(header_only)) > 0);
    CHECK(raw_exchange(fd, bad_len, sizeof(bad_len)) > 0);
    CHECK(raw_exchange(fd, bad_version, sizeof(bad_version)) > 0);
    CHECK(raw_exchange(fd, trailing, sizeof(trailing)) > 0);
    CHECK(raw_exchange(fd, unknown_type, sizeof(unknown_type)) > 0);
    memset(big, 0, sizeof(big));
    big[0] = 1;
    big[1] = 1;
    ck_put_be32(big + 4, (uint32_t)(sizeof(big) - 8));
    CHECK(raw_exchange(fd, big, sizeof(big)) > 0);
    for (int i = 0; i < 200; i++) {
        size_t len = 1 + (size_t)(i % (int)sizeof(junk));
        RAND_bytes(junk, (int)sizeof(junk));
        if (i % 2 == 0) {   /* a plausible header over random bytes */
            junk[0] = 1;
            junk[1] = (uint8_t)(1 + i % 3);
            junk[2] = junk[3] = 0;
            if (len >= 8)
                ck_put_be32(junk + 4, (uint32_t)(len - 8));
            if (len > 8)
                junk[8] = 0xff; /* a certificate or number length out of bounds: always refused */
        }
        CHECK(raw_exchange(fd, junk, len) > 0);
    }
    CHECK_INT_EQ(raw_exchange(fd, good, sizeof(good)), 0);
    CHECK(kill(prov_signer_pid(s), 0) == 0);
    CHECK_OK(prov_signer_phone_id(s, "1", id));
    prov_signer_stop(s);
}

/* The signer's descriptors: /dev/null on 0-2, its socket on 3, nothing else. A process that is
 * not dumpable has a root-owned /proc/PID/fd: only root reads it (the pipe check in
 * signer_process covers the other cases). */
static void
check_child_fds(pid_t pid)
{
    char path[64], target[256];
    struct dirent *e;
    DIR *d;
    int n = 0;

    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    if ((d = opendir(path)) == NULL) {
        CHECK(errno == EACCES && geteuid() != 0);
        return;
    }
    while ((e = readdir(d)) != NULL) {
        ssize_t len;
        char link[sizeof(path) + sizeof(e->d_name) + 2];
        if (e->d_name[0] == '.')
            continue;
        n++;
        snprintf(link, sizeof(link), "%s/%s", path, e->d_name);
        len = readlink(link, target, sizeof(target) - 1);
        target[len > 0 ? len : 0] = '\0';
        if (strcmp(e->d_name, "3") == 0)
            CHECK(strncmp(target, "socket:", 7) == 0);
        else if (strcmp(e->d_name, "0") == 0 || strcmp(e->d_name, "1") == 0 ||
                 strcmp(e->d_name, "2") == 0)
            CHECK(strcmp(target, "/dev/null") == 0);
        else {
            fprintf(stderr, "  the signer keeps fd %s -> %s\n", e->d_name, target);
            ck_test_case_failed = 1;
        }
    }
    closedir(d);
    CHECK_INT_EQ(n, 4);
}

static void
signer_process(void)
{
    struct prov_config cfg;
    struct prov_signer *s = NULL;
    struct pollfd p;
    int pipefd[2];
    pid_t pid;

    setup();
    config(&cfg);
    /* A descriptor the signer must not keep: the pipe's write end, inherited by the fork. */
    if (pipe(pipefd) != 0)
        abort();
    CHECK_OK(prov_signer_start(&cfg, &s));
    close(pipefd[1]);
    p.fd = pipefd[0];
    p.events = POLLIN;
    /* EOF at once: no other process holds the write end. */
    CHECK(poll(&p, 1, 5000) == 1 && (p.revents & (POLLHUP | POLLIN)));
    close(pipefd[0]);
    if (s == NULL)
        return;
    pid = prov_signer_pid(s);
    check_child_fds(pid);
    prov_signer_stop(s);
    /* Reaped: no such child any more. */
    CHECK(waitpid(pid, NULL, WNOHANG) < 0 && errno == ECHILD);
    prov_signer_stop(NULL);
}

static void
signer_start_failures(void)
{
    struct prov_config cfg;
    struct prov_signer *s = NULL;
    char path[128];

    setup();
    config(&cfg);
    tpath(path, sizeof(path), "wrong.pw");
    write_file(path, "not the password\n", 17, 0600);
    cfg.ca_password_file = path;
    CHECK(prov_signer_start(&cfg, &s) != 0);
    CHECK(s == NULL);
    CHECK(strstr(ck_error_context(), "signer:") != NULL);

    config(&cfg);
    tpath(path, sizeof(path), "open.key");
    write_file(path, phone_key, 32, 0644);
    cfg.phone_id_key = path;
    CHECK_INT_EQ(prov_signer_start(&cfg, &s), CK_ERR_PERM);
    CHECK(s == NULL);

    config(&cfg);
    cfg.ca_cert = "/nonexistent/prov-ca.pem";
    CHECK(prov_signer_start(&cfg, &s) != 0);

    /* The CA certificate and key must match, and the certificate must be a CA. */
    config(&cfg);
    tpath(path, sizeof(path), "dev.pem");
    if (ck_pki_certs_write_pem(path, dev_cert, NULL, CK_PKI_WRITE_REPLACE) != 0)
        abort();
    cfg.ca_cert = path;
    CHECK_INT_EQ(prov_signer_start(&cfg, &s), CK_ERR_CONFIG);

    config(&cfg);
    cfg.phone_id_key = NULL;
    CHECK_INT_EQ(prov_signer_start(&cfg, &s), CK_ERR_CONFIG);
}

/* The handler on its own, with an injected clock, and the decoder's bounds. */
static void
answer_direct(void)
{
    struct prov_signer_keys *k = NULL;
    struct prov_signer_request q;
    uint8_t msg[64], *resp = NULL;
    size_t resp_len = 0;

    setup();
    CHECK_OK(prov_signer_keys_new(prov_ca, prov_ca_key, phone_key, 86400, &k));
    CHECK_INT_EQ(prov_signer_keys_new(dev_cert, dev_key, phone_key, 86400, &(struct
                 prov_signer_keys *){NULL}), CK_ERR_CONFIG);
    CHECK_INT_EQ(prov_signer_keys_new(prov_ca, dev_key, phone_key, 86400, &(struct
                 prov_signer_keys *){NULL}), CK_ERR_CONFIG);
    /* ISSUE with 9 numbers: the decoder's limit. */
    memset(msg, 0, sizeof(msg));
    msg[0] = 1;
    msg[1] = PROV_SIGNER_ISSUE;
    msg[8] = 0;
    msg[9] = 1;      /* cert_len 1 */
    msg[10] = 0x30;
    msg[17] = 9;     /* after mac[6] */
    ck_put_be32(msg + 4, 10);
    CHECK_INT_EQ(prov_signer_request_decode(msg, 18, &q), CK_ERR_LIMIT);
    msg[17] = 0;     /* then 16 bytes of validity are missing */
    CHECK_INT_EQ(prov_signer_request_decode(msg, 18, &q), CK_ERR_DECODE);
    ck_put_be32(msg + 4, 26);
    CHECK_OK(prov_signer_request_decode(msg, 34, &q));
    CHECK_INT_EQ(q.cert_len, 1);
    if (k != NULL) {
        CHECK_OK(prov_signer_answer(k, msg, 34, 0, &resp, &resp_len));
        CHECK(resp_len > 8 && resp[1] == (PROV_SIGNER_ISSUE | 0x80) && resp[2] != 0);
        free(resp);
    }
    prov_signer_keys_free(k);
    prov_signer_keys_free(NULL);
}

static void
cleanup(void)
{
    char cmd[128];

    X509_free(sp_root);
    X509_free(prov_ca);
    X509_free(mfg_root);
    X509_free(mfg_ca);
    X509_free(dev_cert);
    X509_free(other_cert);
    EVP_PKEY_free(sp_root_key);
    EVP_PKEY_free(prov_ca_key);
    EVP_PKEY_free(mfg_root_key);
    EVP_PKEY_free(mfg_ca_key);
    EVP_PKEY_free(dev_key);
    OPENSSL_free(dev_der);
    OPENSSL_free(other_der);
    if (tmpdir[0] != '\0') {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        CHECK(system(cmd) == 0);
    }
}

CK_TEST_MAIN("prov_signer", CK_TEST_CASE(phone_id_vectors), CK_TEST_CASE(phone_id_key_file),
             CK_TEST_CASE(operator_profile_direct), CK_TEST_CASE(phone_ids_hostile),
             CK_TEST_CASE(operator_der_same_rsa), CK_TEST_CASE(operator_der_same_ec),
             CK_TEST_CASE(operator_der_refuses),
             CK_TEST_CASE(signer_issues), CK_TEST_CASE(signer_refuses),
             CK_TEST_CASE(signer_garbage), CK_TEST_CASE(signer_process),
             CK_TEST_CASE(signer_start_failures), CK_TEST_CASE(answer_direct),
             CK_TEST_CASE(cleanup))
