/* lib/pki: password files, MAC addresses, the id-pkinit-san template (golden DER that MIT's
 * PKINIT accepted in tests/interop/t_pki.sh, plus hostile encodings), certificate profiles,
 * PKCS#12 and PEM identities (wrong passwords, mismatched keys, costly or MAC-less files). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509v3.h>

#include "ck_test.h"
#include "cablekey/pki.h"
#include "cablekey/principal.h"
#include "cablekey/util.h"

static char tmpdir[64];

static void
make_tmpdir(void)
{
    if (tmpdir[0] != '\0')
        return;
    ck_strlcpy(tmpdir, "/tmp/ck-pki-XXXXXX", sizeof(tmpdir));
    if (mkdtemp(tmpdir) == NULL)
        abort();
}

static void
remove_tmpdir(void)
{
    char cmd[128];

    if (tmpdir[0] == '\0')
        return;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "  could not remove %s\n", tmpdir);
}

static void
tpath(char *buf, size_t size, const char *name)
{
    make_tmpdir();
    snprintf(buf, size, "%s/%s", tmpdir, name);
}

static void
write_file(const char *path, const void *data, size_t len, mode_t mode)
{
    int fd;

    unlink(path);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0 || write(fd, data, len) != (ssize_t)len || fchmod(fd, mode) != 0)
        abort();
    close(fd);
}

/* ------------------------------------------------------------------------------------------- */
/* A small hierarchy shared by the tests: root -> CA -> leaves, EC P-256 for speed. */

static EVP_PKEY *root_key, *ca_key;
static X509 *root_cert, *ca_cert;

static ck_pki_cert_spec
spec_for(ck_pki_profile profile, const char *cn)
{
    ck_pki_cert_spec s;
    int64_t now = (int64_t)time(NULL);

    memset(&s, 0, sizeof(s));
    s.profile = profile;
    s.org = "Unit Test Cable";
    s.org_unit = "PacketCable";
    s.common_name = cn;
    s.path_len = -1;
    s.not_before = now - 60;
    s.not_after = now + 86400;
    return s;
}

static void
setup_hierarchy(void)
{
    ck_pki_cert_spec s;

    if (root_cert != NULL)
        return;
    s = spec_for(CK_PKI_PROFILE_ROOT_CA, "Unit Root");
    s.not_after += 365 * 86400;
    if (ck_pki_key_generate(CK_PKI_KEY_EC_P256, &root_key) != 0 ||
        ck_pki_cert_issue(&s, root_key, NULL, root_key, &root_cert) != 0)
        abort();
    s = spec_for(CK_PKI_PROFILE_CA, "Unit CA");
    s.path_len = 0;
    s.not_after += 30 * 86400;
    if (ck_pki_key_generate(CK_PKI_KEY_EC_P256, &ca_key) != 0 ||
        ck_pki_cert_issue(&s, ca_key, root_cert, root_key, &ca_cert) != 0)
        abort();
}

static void
teardown_hierarchy(void)
{
    EVP_PKEY_free(root_key);
    EVP_PKEY_free(ca_key);
    X509_free(root_cert);
    X509_free(ca_cert);
}

/* A client identity (key, cert, chain = [CA]) for principal. */
static ck_pki_identity *
make_client(const char *principal)
{
    ck_pki_cert_spec s = spec_for(CK_PKI_PROFILE_CLIENT, principal);
    STACK_OF(X509) *chain = sk_X509_new_null();
    ck_pki_identity *id = NULL;
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;

    setup_hierarchy();
    s.principal = principal;
    if (chain == NULL || !sk_X509_push(chain, ca_cert) ||
        ck_pki_key_generate(CK_PKI_KEY_EC_P256, &key) != 0 ||
        ck_pki_cert_issue(&s, key, ca_cert, ca_key, &cert) != 0 ||
        ck_pki_identity_new(key, cert, chain, &id) != 0)
        abort();
    sk_X509_free(chain);
    EVP_PKEY_free(key);
    X509_free(cert);
    return id;
}

static bool
has_eku(X509 *x, int nid)
{
    EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(x, NID_ext_key_usage, NULL, NULL);
    bool found = false;

    for (int i = 0; eku != NULL && i < sk_ASN1_OBJECT_num(eku); i++)
        found |= OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, i)) == nid;
    sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
    return found;
}

static int
verify_with_root(X509 *leaf)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    STACK_OF(X509) *untrusted = sk_X509_new_null();
    int ok;

    sk_X509_push(untrusted, ca_cert);
    X509_STORE_add_cert(store, root_cert);
    X509_STORE_CTX_init(ctx, store, leaf, untrusted);
    X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_X509_STRICT);
    ok = X509_verify_cert(ctx);
    if (ok != 1)
        fprintf(stderr, "  verify: %s\n",
                X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    sk_X509_free(untrusted);
    return ok;
}

/* ------------------------------------------------------------------------------------------- */
/* Password files */

static void
password_file_rules(void)
{
    char path[128], big[CK_PKI_PASSWORD_MAX + 3];
    char *pw = NULL;

    tpath(path, sizeof(path), "pw");
    write_file(path, "secret\nsecond line\n", 19, 0600);
    CHECK_OK(ck_pki_password_read(path, &pw));
    CHECK(pw != NULL && strcmp(pw, "secret") == 0);
    ck_pki_password_free(pw);
    pw = NULL;

    write_file(path, "crlf\r\n", 6, 0600);
    CHECK_OK(ck_pki_password_read(path, &pw));
    CHECK(pw != NULL && strcmp(pw, "crlf") == 0);
    ck_pki_password_free(pw);
    pw = NULL;

    write_file(path, "no-newline", 10, 0640);
    CHECK_OK(ck_pki_password_read(path, &pw));
    CHECK(pw != NULL && strcmp(pw, "no-newline") == 0);
    ck_pki_password_free(pw);
    pw = NULL;

    /* Exactly the limit, then one byte more. */
    memset(big, 'x', sizeof(big));
    big[CK_PKI_PASSWORD_MAX] = '\n';
    write_file(path, big, CK_PKI_PASSWORD_MAX + 1, 0600);
    CHECK_OK(ck_pki_password_read(path, &pw));
    CHECK(pw != NULL && strlen(pw) == CK_PKI_PASSWORD_MAX);
    ck_pki_password_free(pw);
    pw = NULL;
    big[CK_PKI_PASSWORD_MAX] = 'x';
    big[CK_PKI_PASSWORD_MAX + 1] = '\n';
    write_file(path, big, CK_PKI_PASSWORD_MAX + 2, 0600);
    CHECK_INT_EQ(ck_pki_password_read(path, &pw), CK_ERR_LIMIT);
    CHECK(pw == NULL);

    write_file(path, "\nlater\n", 7, 0600);
    CHECK_INT_EQ(ck_pki_password_read(path, &pw), CK_ERR_INVAL);
    write_file(path, "", 0, 0600);
    CHECK_INT_EQ(ck_pki_password_read(path, &pw), CK_ERR_INVAL);
    write_file(path, "a\0b\n", 4, 0600);
    CHECK_INT_EQ(ck_pki_password_read(path, &pw), CK_ERR_INVAL);
    write_file(path, "readable\n", 9, 0644);
    CHECK_INT_EQ(ck_pki_password_read(path, &pw), CK_ERR_PERM);
    CHECK(strstr(ck_error_context(), "readable") == NULL); /* the password is never echoed */
    CHECK_INT_EQ(ck_pki_password_read(tmpdir, &pw), CK_ERR_INVAL); /* a directory */
    tpath(path, sizeof(path), "fifo");
    CHECK(mkfifo(path, 0600) == 0);
    CHECK_INT_EQ(ck_pki_password_read(path, &pw), CK_ERR_INVAL);
    tpath(path, sizeof(path), "nosuch");
    CHECK_INT_EQ(ck_pki_password_read(path, &pw), CK_ERR_NOTFOUND);
    CHECK(pw == NULL);
    ck_pki_password_free(NULL);
}

/* ------------------------------------------------------------------------------------------- */
/* MAC addresses */

static void
mac_normalisation(void)
{
    static const char *const good[] = {"00:1a:2b:3c:4d:5e", "00:1A:2B:3C:4D:5E", "00-1a-2B-3c-4D-5e",
                                       "001a2b3c4d5e"};
    static const char *const bad[] = {
        "", "00:1a:2b:3c:4d", "00:1a:2b:3c:4d:5e:6f", "00:1a-2b:3c:4d:5e", "00:1a:2b:3c:4d:5g",
        "001a2b3c4d5", "001a2b3c4d5e0", "001a.2b3c4d5e", "00:1a:2b:3c:4d:5e ", " 00:1a:2b:3c:4d:5e",
        "0:1a:2b:3c:4d:5e", "00::1a:2b:3c:4d:5e", "00:1a:2b:3c:4d:+5",
        "001A.2B3C.4D5E" /* the dotted form: the device table does not take it either */};
    uint8_t mac[6], want[6] = {0x00, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e};
    char text[CK_PKI_MAC_TEXT];

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        memset(mac, 0xee, sizeof(mac));
        CHECK_OK(ck_pki_mac_parse(good[i], mac));
        CHECK_MEM_EQ(mac, 6, want, 6);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (ck_pki_mac_parse(bad[i], mac) != CK_ERR_INVAL) {
            fprintf(stderr, "  accepted bad MAC '%s'\n", bad[i]);
            ck_test_case_failed = 1;
        }
    }
    CHECK_INT_EQ(ck_pki_mac_parse("01:00:5e:00:00:01", mac), CK_ERR_INVAL); /* multicast */
    CHECK(strstr(ck_error_context(), "multicast") != NULL);
    CHECK_INT_EQ(ck_pki_mac_parse("ff:ff:ff:ff:ff:ff", mac), CK_ERR_INVAL); /* broadcast */
    CHECK_INT_EQ(ck_pki_mac_parse("00:00:00:00:00:00", mac), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_pki_mac_parse(NULL, mac), CK_ERR_INVAL);
    ck_pki_mac_format(want, text);
    CHECK(strcmp(text, "00:1a:2b:3c:4d:5e") == 0);
    {
        uint8_t high[6] = {0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54};
        ck_pki_mac_format(high, text);
        CHECK(strcmp(text, "fe:dc:ba:98:76:54") == 0);
        CHECK_OK(ck_pki_mac_parse(text, mac));
        CHECK_MEM_EQ(mac, 6, high, 6);
    }
}

/* ------------------------------------------------------------------------------------------- */
/* id-pkinit-san */

/* KRB5PrincipalName for krbtgt/PKI.TEST@PKI.TEST as `cablekey pki init` writes it; t_pki.sh shows
 * MIT's client matching it ("matched KDC principal ... against id-pkinit-san"). Hand-checked:
 * 30 2B SEQUENCE
 *   A0 0A [0] 1B 08 "PKI.TEST"                                   realm
 *   A1 1D [1] 30 1B SEQUENCE
 *               A0 03 [0] 02 01 02                                name-type NT-SRV-INST
 *               A1 14 [1] 30 12 1B 06 "krbtgt" 1B 08 "PKI.TEST"  name-string */
static const char golden_tgs_san[] =
    "302BA00A1B08504B492E54455354A11D301BA003020102A11430121B066B72627467741B08504B492E54455354";

static void
san_golden_and_round_trip(void)
{
    static const char *const names[] = {"krbtgt/PKI.TEST@PKI.TEST", "alice@EXAMPLE.TEST",
                                        "host/mta.example.test@EXAMPLE.TEST", "a/b/c/d@R",
                                        "caf\xc3\xa9@EXAMPLE.TEST"};
    unsigned char *want;
    size_t wlen, len = 0;
    uint8_t *der = NULL;
    ck_principal *p = NULL, *back = NULL;

    want = ck_test_hex(golden_tgs_san, &wlen);
    CHECK_OK(ck_principal_parse("krbtgt/PKI.TEST@PKI.TEST", NULL, 0, &p));
    CHECK_OK(ck_pki_san_principal_encode(p, &der, &len));
    CHECK_MEM_EQ(der, len, want, wlen);
    CHECK_OK(ck_pki_san_principal_decode(want, wlen, &back));
    CHECK(back != NULL && ck_principal_equal(p, back));
    CHECK(back != NULL && back->name_type == 2);
    OPENSSL_free(der);
    ck_principal_free(back);
    ck_principal_free(p);
    free(want);

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        p = back = NULL;
        der = NULL;
        CHECK_OK(ck_principal_parse(names[i], NULL, 0, &p));
        CHECK_OK(ck_pki_san_principal_encode(p, &der, &len));
        CHECK_OK(ck_pki_san_principal_decode(der, len, &back));
        CHECK(back != NULL && ck_principal_equal(p, back) && back->name_type == p->name_type);
        OPENSSL_free(der);
        ck_principal_free(back);
        ck_principal_free(p);
    }
}

static void
san_hostile(void)
{
    static const char *const bad[] = {
        /* trailing byte */
        "302BA00A1B08504B492E54455354A11D301BA003020102A11430121B066B72627467741B08504B492E5445535400",
        /* truncated */
        "302BA00A1B08504B492E54455354A11D301BA003020102A11430121B066B72627467741B08504B492E544553",
        /* indefinite length outer SEQUENCE (BER) */
        "3080A00A1B08504B492E54455354A11D301BA003020102A11430121B066B72627467741B08504B492E544553540000",
        /* non-minimal length 81 2B */
        "30812BA00A1B08504B492E54455354A11D301BA003020102A11430121B066B72627467741B08504B492E54455354",
        /* empty realm */
        "3023A0021B00A11D301BA003020102A11430121B066B72627467741B08504B492E54455354",
        /* NUL inside the realm */
        "302BA00A1B08504B49002E455354A11D301BA003020102A11430121B066B72627467741B08504B492E54455354",
        /* no name components */
        "3019A00A1B08504B492E54455354A10B3009A003020101A1023000",
        /* NUL inside a component */
        "302BA00A1B08504B492E54455354A11D301BA003020102A11430121B066B72007467741B08504B492E54455354",
        /* realm as UTF8String instead of GeneralString */
        "302BA00A0C08504B492E54455354A11D301BA003020102A11430121B066B72627467741B08504B492E54455354",
        /* fields swapped */
        "302BA11D301BA003020102A11430121B066B72627467741B08504B492E54455354A00A1B08504B492E54455354",
        /* implicit instead of explicit realm tag */
        "30298008504B492E54455354A11D301BA003020102A11430121B066B72627467741B08504B492E54455354",
        /* not a SEQUENCE */
        "0400",
    };
    ck_principal *p = NULL;
    uint8_t *big;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t len;
        unsigned char *der = ck_test_hex(bad[i], &len);
        int rc = ck_pki_san_principal_decode(der, len, &p);
        if (rc == 0 || p != NULL) {
            fprintf(stderr, "  accepted bad SAN #%zu\n", i);
            ck_test_case_failed = 1;
        }
        ck_principal_free(p);
        p = NULL;
        free(der);
    }
    CHECK_INT_EQ(ck_pki_san_principal_decode(NULL, 0, &p), CK_ERR_DECODE);
    big = calloc(1, CK_PKI_MAX_SAN_DER + 1);
    CHECK_INT_EQ(ck_pki_san_principal_decode(big, CK_PKI_MAX_SAN_DER + 1, &p), CK_ERR_LIMIT);
    free(big);
    CHECK(p == NULL);
}

/* ------------------------------------------------------------------------------------------- */
/* Issuing */

static void
issue_profiles(void)
{
    ck_pki_identity *alice = make_client("alice@EXAMPLE.TEST");
    ck_pki_cert_spec s;
    EVP_PKEY *key = NULL;
    X509 *kdc = NULL, *dev = NULL, *srv = NULL, *bad = NULL;
    ck_principal *sans[4] = {NULL};
    size_t n = 0;
    uint8_t mac[6], want_mac[6] = {0x00, 0x10, 0x95, 0xab, 0xcd, 0xef}, spki[32], again[32];
    const char *dns[] = {"admin.example.test", "*.prov.example.test"};
    const char *bad_dns[] = {"bad_name"};

    setup_hierarchy();
    CHECK(X509_check_ca(root_cert) == 1 && X509_check_ca(ca_cert) == 1);
    CHECK(X509_get_pathlen(ca_cert) == 0);
    CHECK(X509_get_pathlen(root_cert) == -1);
    CHECK(X509_check_issued(root_cert, root_cert) == X509_V_OK);
    CHECK((X509_get_key_usage(ca_cert) & (KU_KEY_CERT_SIGN | KU_CRL_SIGN)) ==
          (KU_KEY_CERT_SIGN | KU_CRL_SIGN));
    CHECK(X509_get_extended_key_usage(ca_cert) == UINT32_MAX); /* CAs carry no EKU */

    /* Client: id-pkinit-san + KPClientAuth, verifies strictly. */
    CHECK(has_eku(alice->cert, NID_pkInitClientAuth));
    CHECK(!X509_check_ca(alice->cert));
    CHECK(verify_with_root(alice->cert) == 1);
    CHECK_OK(ck_pki_cert_san_principals(alice->cert, sans, 4, &n));
    CHECK_INT_EQ(n, 1);
    if (n == 1) {
        char *text = NULL;
        CHECK_OK(ck_principal_unparse(sans[0], 0, &text));
        CHECK(text != NULL && strcmp(text, "alice@EXAMPLE.TEST") == 0);
        free(text);
        ck_principal_free(sans[0]);
    }
    CHECK_INT_EQ(sk_X509_num(alice->chain), 1);

    /* KDC: KPKdc, krbtgt SAN, digitalSignature. */
    CHECK_OK(ck_pki_key_generate(CK_PKI_KEY_EC_P256, &key));
    s = spec_for(CK_PKI_PROFILE_KDC, "KDC");
    s.principal = "krbtgt/EXAMPLE.TEST@EXAMPLE.TEST";
    CHECK_OK(ck_pki_cert_issue(&s, key, ca_cert, ca_key, &kdc));
    CHECK(kdc != NULL && has_eku(kdc, NID_pkInitKDC) && !has_eku(kdc, NID_pkInitClientAuth));
    CHECK(kdc != NULL && (X509_get_key_usage(kdc) & KU_DIGITAL_SIGNATURE));
    CHECK(kdc != NULL && !(X509_get_key_usage(kdc) & KU_KEY_ENCIPHERMENT)); /* EC key */
    CHECK_OK(ck_pki_cert_san_principals(kdc, sans, 4, &n));
    CHECK(n == 1 && ck_principal_is_tgs(sans[0], "EXAMPLE.TEST"));
    for (size_t i = 0; i < n; i++)
        ck_principal_free(sans[i]);
    CHECK(verify_with_root(kdc) == 1);
    CHECK_INT_EQ(ck_pki_cert_device_mac(kdc, mac), CK_ERR_NOTFOUND);
    s.principal = NULL;
    CHECK_INT_EQ(ck_pki_cert_issue(&s, key, ca_cert, ca_key, &bad), CK_ERR_INVAL);

    /* Device: CN is the MAC, KPClientAuth, no SAN. */
    s = spec_for(CK_PKI_PROFILE_DEVICE, "00:10:95:ab:cd:ef");
    CHECK_OK(ck_pki_cert_issue(&s, key, ca_cert, ca_key, &dev));
    CHECK_OK(ck_pki_cert_device_mac(dev, mac));
    CHECK_MEM_EQ(mac, 6, want_mac, 6);
    CHECK(has_eku(dev, NID_pkInitClientAuth));
    CHECK_OK(ck_pki_cert_san_principals(dev, sans, 4, &n));
    CHECK_INT_EQ(n, 0);
    CHECK(X509_get_ext_by_NID(dev, NID_subject_alt_name, -1) < 0);
    /* The SPKI hash is of the public key, so the same key in two certificates hashes alike. */
    CHECK_OK(ck_pki_spki_sha256(dev, spki));
    CHECK_OK(ck_pki_spki_sha256(kdc, again));
    CHECK_MEM_EQ(spki, 32, again, 32);
    CHECK_OK(ck_pki_spki_sha256(alice->cert, again));
    CHECK(memcmp(spki, again, 32) != 0);
    {
        unsigned char *pub = NULL;
        unsigned char md[32];
        unsigned int mdlen = 0;
        int plen = i2d_PUBKEY(key, &pub);
        CHECK(plen > 0 && EVP_Digest(pub, (size_t)plen, md, &mdlen, EVP_sha256(), NULL));
        CHECK_MEM_EQ(spki, 32, md, mdlen);
        OPENSSL_free(pub);
    }

    /* Server: dNSName SAN, serverAuth; refuses a bad DNS name and a missing one. */
    s = spec_for(CK_PKI_PROFILE_SERVER, "admin.example.test");
    s.dns_names = dns;
    s.n_dns_names = 2;
    CHECK_OK(ck_pki_cert_issue(&s, key, ca_cert, ca_key, &srv));
    CHECK(srv != NULL && has_eku(srv, NID_server_auth));
    CHECK(srv != NULL && X509_check_host(srv, "x.prov.example.test", 0, 0, NULL) == 1);
    CHECK(srv != NULL && X509_check_host(srv, "admin.example.test", 0, 0, NULL) == 1);
    s.dns_names = bad_dns;
    s.n_dns_names = 1;
    CHECK_INT_EQ(ck_pki_cert_issue(&s, key, ca_cert, ca_key, &bad), CK_ERR_INVAL);
    s.n_dns_names = 0;
    CHECK_INT_EQ(ck_pki_cert_issue(&s, key, ca_cert, ca_key, &bad), CK_ERR_INVAL);

    /* Misuse: a self-signed non-root, a root with an issuer, an empty period, control bytes. */
    s = spec_for(CK_PKI_PROFILE_CA, "X");
    CHECK_INT_EQ(ck_pki_cert_issue(&s, key, NULL, key, &bad), CK_ERR_INVAL);
    s = spec_for(CK_PKI_PROFILE_ROOT_CA, "X");
    CHECK_INT_EQ(ck_pki_cert_issue(&s, key, ca_cert, ca_key, &bad), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_pki_cert_issue(&s, key, NULL, ca_key, &bad), CK_ERR_INVAL);
    s = spec_for(CK_PKI_PROFILE_CLIENT, "X");
    s.principal = "x@R";
    s.not_after = s.not_before;
    CHECK_INT_EQ(ck_pki_cert_issue(&s, key, ca_cert, ca_key, &bad), CK_ERR_INVAL);
    s = spec_for(CK_PKI_PROFILE_CLIENT, "evil\x1b[2J");
    s.principal = "x@R";
    CHECK_INT_EQ(ck_pki_cert_issue(&s, key, ca_cert, ca_key, &bad), CK_ERR_INVAL);
    s = spec_for(CK_PKI_PROFILE_CLIENT, "X");
    s.principal = "no-realm";
    CHECK(ck_pki_cert_issue(&s, key, ca_cert, ca_key, &bad) != 0);
    s.principal = "x@R";
    CHECK_INT_EQ(ck_pki_cert_issue(&s, key, ca_cert, root_key, &bad), CK_ERR_INVAL); /* wrong key */
    CHECK(bad == NULL);

    X509_free(kdc);
    X509_free(dev);
    X509_free(srv);
    EVP_PKEY_free(key);
    ck_pki_identity_free(alice);
}

static void
issue_validity_and_serials(void)
{
    ck_pki_cert_spec s = spec_for(CK_PKI_PROFILE_CLIENT, "bob");
    EVP_PKEY *key = NULL;
    X509 *a = NULL, *b = NULL;
    int64_t ca_end;
    struct tm tm;
    const ASN1_INTEGER *sa, *sb;

    setup_hierarchy();
    s.principal = "bob@EXAMPLE.TEST";
    s.not_after = s.not_before + 100LL * 365 * 86400; /* far beyond the CA */
    CHECK_OK(ck_pki_key_generate(CK_PKI_KEY_EC_P256, &key));
    CHECK_OK(ck_pki_cert_issue(&s, key, ca_cert, ca_key, &a));
    CHECK_OK(ck_pki_cert_issue(&s, key, ca_cert, ca_key, &b));
    CHECK(ASN1_TIME_to_tm(X509_get0_notAfter(ca_cert), &tm));
    ca_end = (int64_t)timegm(&tm);
    CHECK(a != NULL && ASN1_TIME_to_tm(X509_get0_notAfter(a), &tm) && (int64_t)timegm(&tm) == ca_end);
    sa = a ? X509_get0_serialNumber(a) : NULL;
    sb = b ? X509_get0_serialNumber(b) : NULL;
    CHECK(sa != NULL && sb != NULL && ASN1_INTEGER_cmp(sa, sb) != 0);
    /* 128 random bits, positive: 16 or 17 content octets. */
    CHECK(sa != NULL && ASN1_STRING_length(sa) >= 15 && ASN1_STRING_length(sa) <= 17);
    CHECK(sa != NULL && ASN1_STRING_type(sa) == V_ASN1_INTEGER);
    X509_free(a);
    X509_free(b);
    EVP_PKEY_free(key);
}

static void
key_types(void)
{
    static const struct {
        const char *name;
        const char *type;
        int bits;
    } kt[] = {{"rsa", "RSA", 2048}, {"ec-p256", "EC", 256}, {"ec-p384", "EC", 384}};
    ck_pki_key_type t;

    for (size_t i = 0; i < sizeof(kt) / sizeof(kt[0]); i++) {
        EVP_PKEY *k = NULL;
        CHECK_OK(ck_pki_key_type_parse(kt[i].name, &t));
        CHECK_OK(ck_pki_key_generate(t, &k));
        CHECK(k != NULL && EVP_PKEY_is_a(k, kt[i].type) && EVP_PKEY_get_bits(k) == kt[i].bits);
        EVP_PKEY_free(k);
    }
    CHECK_OK(ck_pki_key_type_parse("rsa-3072", &t));
    CHECK_INT_EQ(t, CK_PKI_KEY_RSA_3072);
    CHECK(strcmp(ck_pki_key_type_name(CK_PKI_KEY_EC_P256), "ec-p256") == 0);
    CHECK_INT_EQ(ck_pki_key_type_parse("dsa", &t), CK_ERR_UNSUPPORTED);
    CHECK_INT_EQ(ck_pki_key_type_parse(NULL, &t), CK_ERR_UNSUPPORTED);
}

/* ------------------------------------------------------------------------------------------- */
/* PKCS#12 */

static int
p12_safe_nid(const uint8_t *der, size_t len, int *mac_md_nid)
{
    const unsigned char *p = der;
    PKCS12 *p12 = d2i_PKCS12(NULL, &p, (long)len);
    STACK_OF(PKCS7) *safes = p12 ? PKCS12_unpack_authsafes(p12) : NULL;
    const X509_ALGOR *macalg = NULL;
    const ASN1_OBJECT *obj = NULL;
    int nid = NID_undef;

    for (int i = 0; safes != NULL && i < sk_PKCS7_num(safes); i++) {
        PKCS7 *p7 = sk_PKCS7_value(safes, i);
        if (OBJ_obj2nid(p7->type) == NID_pkcs7_encrypted)
            nid = OBJ_obj2nid(p7->d.encrypted->enc_data->algorithm->algorithm);
    }
    if (p12 != NULL) {
        PKCS12_get0_mac(NULL, &macalg, NULL, NULL, p12);
        if (macalg != NULL) {
            X509_ALGOR_get0(&obj, NULL, NULL, macalg);
            *mac_md_nid = OBJ_obj2nid(obj);
        }
    }
    sk_PKCS7_pop_free(safes, PKCS7_free);
    PKCS12_free(p12);
    return nid;
}

static void
p12_round_trip(void)
{
    ck_pki_identity *alice = make_client("alice@EXAMPLE.TEST"), *back = NULL;
    uint8_t *der = NULL;
    size_t len = 0;
    int mac_nid = 0;

    /* Default: PBES2 (AES-256-CBC) and a SHA-256 MAC. */
    CHECK_OK(ck_pki_p12_encode(alice, "pw-1", "alice", 0, &der, &len));
    CHECK_INT_EQ(p12_safe_nid(der, len, &mac_nid), NID_pbes2);
    CHECK_INT_EQ(mac_nid, NID_sha256);
    CHECK_OK(ck_pki_identity_from_p12(der, len, "pw-1", &back));
    CHECK(back != NULL && X509_cmp(back->cert, alice->cert) == 0);
    CHECK(back != NULL && EVP_PKEY_eq(back->key, alice->key) == 1);
    CHECK(back != NULL && sk_X509_num(back->chain) == 1 &&
          X509_cmp(sk_X509_value(back->chain, 0), ca_cert) == 0);
    ck_pki_identity_free(back);
    back = NULL;

    /* Wrong password: the MAC says so, nothing is parsed, nothing secret in the message. */
    CHECK_INT_EQ(ck_pki_identity_from_p12(der, len, "pw-2", &back), CK_ERR_INTEGRITY);
    CHECK(back == NULL && strstr(ck_error_context(), "pw-") == NULL);
    CHECK_INT_EQ(ck_pki_identity_from_p12(der, len, NULL, &back), CK_ERR_INVAL);
    /* Truncated, trailing garbage, flipped byte. */
    CHECK_INT_EQ(ck_pki_identity_from_p12(der, len - 1, "pw-1", &back), CK_ERR_DECODE);
    {
        uint8_t *more = malloc(len + 1);
        memcpy(more, der, len);
        more[len] = 0;
        CHECK_INT_EQ(ck_pki_identity_from_p12(more, len + 1, "pw-1", &back), CK_ERR_DECODE);
        memcpy(more, der, len);
        more[len / 2] ^= 0x01;
        CHECK(ck_pki_identity_from_p12(more, len, "pw-1", &back) != 0);
        free(more);
    }
    CHECK(back == NULL);
    OPENSSL_free(der);
    der = NULL;

    /* Legacy: 3DES and a SHA-1 MAC. */
    CHECK_OK(ck_pki_p12_encode(alice, "pw-1", NULL, CK_PKI_P12_LEGACY, &der, &len));
    CHECK_INT_EQ(p12_safe_nid(der, len, &mac_nid), NID_pbe_WithSHA1And3_Key_TripleDES_CBC);
    CHECK_INT_EQ(mac_nid, NID_sha1);
    CHECK_OK(ck_pki_identity_from_p12(der, len, "pw-1", &back));
    CHECK(back != NULL && X509_cmp(back->cert, alice->cert) == 0);
    ck_pki_identity_free(back);
    OPENSSL_free(der);
    CHECK_INT_EQ(ck_pki_p12_encode(alice, "", NULL, 0, &der, &len), CK_ERR_INVAL);
    ck_pki_identity_free(alice);
}

/* A PKCS#12 without a MAC, or whose MAC asks for too many iterations, is refused before any
 * costly derivation. */
static void
p12_costs_and_mac(void)
{
    ck_pki_identity *alice = make_client("alice@EXAMPLE.TEST"), *back = NULL;
    PKCS12 *p12;
    unsigned char *der = NULL;
    const ASN1_INTEGER *iter = NULL;
    int len;

    p12 = PKCS12_create("pw", NULL, alice->key, alice->cert, NULL, NID_aes_256_cbc,
                        NID_aes_256_cbc, 1000, -1, 0);
    CHECK(p12 != NULL);
    len = i2d_PKCS12(p12, &der);
    CHECK_INT_EQ(ck_pki_identity_from_p12(der, (size_t)len, "pw", &back), CK_ERR_UNSUPPORTED);
    OPENSSL_free(der);
    der = NULL;

    /* Give it a MAC, then raise the MAC's iteration count beyond the limit in the structure. */
    CHECK(PKCS12_set_mac(p12, "pw", -1, NULL, 0, 1000, EVP_sha256()) == 1);
    PKCS12_get0_mac(NULL, NULL, NULL, &iter, p12);
    CHECK(iter != NULL && ASN1_INTEGER_set((ASN1_INTEGER *)iter, CK_PKI_MAX_ITER + 1L) == 1);
    len = i2d_PKCS12(p12, &der);
    CHECK_INT_EQ(ck_pki_identity_from_p12(der, (size_t)len, "pw", &back), CK_ERR_LIMIT);
    OPENSSL_free(der);
    der = NULL;
    CHECK(iter != NULL && ASN1_INTEGER_set((ASN1_INTEGER *)iter, 0) == 1);
    len = i2d_PKCS12(p12, &der);
    CHECK_INT_EQ(ck_pki_identity_from_p12(der, (size_t)len, "pw", &back), CK_ERR_LIMIT);
    OPENSSL_free(der);
    CHECK(back == NULL);
    PKCS12_free(p12);
    ck_pki_identity_free(alice);
}

/* ------------------------------------------------------------------------------------------- */
/* Files: identity specs, PEM pairs, mismatches */

static void
identity_files(void)
{
    ck_pki_identity *alice = make_client("alice@EXAMPLE.TEST"), *bob = make_client("bob@R");
    ck_pki_identity *id = NULL;
    char p12[128], cert[128], key[128], enckey[128], tradkey[128], both[128], spec[512];
    struct stat st;

    tpath(p12, sizeof(p12), "alice.p12");
    tpath(cert, sizeof(cert), "alice-cert.pem");
    tpath(key, sizeof(key), "alice-key.pem");
    tpath(enckey, sizeof(enckey), "alice-enckey.pem");
    tpath(tradkey, sizeof(tradkey), "alice-tradkey.pem");
    tpath(both, sizeof(both), "alice-both.pem");
    CHECK_OK(ck_pki_p12_write(p12, alice, "file-pw", "alice", 0));
    CHECK(stat(p12, &st) == 0 && (st.st_mode & 07777) == 0600);
    CHECK_INT_EQ(ck_pki_p12_write(p12, alice, "file-pw", "alice", 0), CK_ERR_EXISTS);
    CHECK_OK(ck_pki_p12_write(p12, alice, "file-pw", "alice", CK_PKI_WRITE_REPLACE));
    CHECK_OK(ck_pki_certs_write_pem(cert, alice->cert, alice->chain, 0));
    CHECK_OK(ck_pki_key_write_pem(key, alice->key, NULL, 0));
    CHECK_OK(ck_pki_key_write_pem(enckey, alice->key, "key-pw", 0));
    CHECK_OK(ck_pki_key_write_pem(tradkey, alice->key, "key-pw", CK_PKI_PEM_TRADITIONAL));
    CHECK(stat(key, &st) == 0 && (st.st_mode & 07777) == 0600);

    /* PKCS#12 by sniffing and by prefix. */
    CHECK_OK(ck_pki_identity_load(p12, "file-pw", &id));
    CHECK(id != NULL && X509_cmp(id->cert, alice->cert) == 0);
    ck_pki_identity_free(id);
    id = NULL;
    snprintf(spec, sizeof(spec), "PKCS12:%s", p12);
    CHECK_OK(ck_pki_identity_load(spec, "file-pw", &id));
    ck_pki_identity_free(id);
    id = NULL;
    CHECK_INT_EQ(ck_pki_identity_load(spec, "bad-pw", &id), CK_ERR_INTEGRITY);
    CHECK(strstr(ck_error_context(), p12) != NULL); /* the message names the file */

    /* PEM pairs: bare, FILE: prefix, encrypted key (right, none, wrong password). */
    snprintf(spec, sizeof(spec), "%s,%s", cert, key);
    CHECK_OK(ck_pki_identity_load(spec, NULL, &id));
    CHECK(id != NULL && sk_X509_num(id->chain) == 1 && EVP_PKEY_eq(id->key, alice->key) == 1);
    ck_pki_identity_free(id);
    id = NULL;
    snprintf(spec, sizeof(spec), "FILE:%s,%s", cert, enckey);
    CHECK_OK(ck_pki_identity_load(spec, "key-pw", &id));
    ck_pki_identity_free(id);
    id = NULL;
    CHECK_INT_EQ(ck_pki_identity_load(spec, NULL, &id), CK_ERR_INVAL);
    CHECK(strstr(ck_error_context(), "encrypted") != NULL);
    CHECK_INT_EQ(ck_pki_identity_load(spec, "nope", &id), CK_ERR_INTEGRITY);
    snprintf(spec, sizeof(spec), "FILE:%s,%s", cert, tradkey);
    CHECK_OK(ck_pki_identity_load(spec, "key-pw", &id));
    ck_pki_identity_free(id);
    id = NULL;

    /* One file holding certificate, chain and key. */
    {
        FILE *f = fopen(cert, "rb");
        size_t alen = 0, blen = 0;
        char buf[16384];
        if (f == NULL)
            abort();
        alen = fread(buf, 1, sizeof(buf) / 2, f);
        fclose(f);
        if ((f = fopen(key, "rb")) == NULL)
            abort();
        blen = fread(buf + alen, 1, sizeof(buf) / 2, f);
        fclose(f);
        write_file(both, buf, alen + blen, 0600);
    }
    snprintf(spec, sizeof(spec), "FILE:%s", both);
    CHECK_OK(ck_pki_identity_load(spec, NULL, &id));
    ck_pki_identity_free(id);
    id = NULL;
    CHECK_OK(ck_pki_identity_load(both, NULL, &id)); /* sniffed as PEM */
    ck_pki_identity_free(id);
    id = NULL;

    /* A key that is not the certificate's. */
    {
        char bobkey[128];
        tpath(bobkey, sizeof(bobkey), "bob-key.pem");
        CHECK_OK(ck_pki_key_write_pem(bobkey, bob->key, NULL, 0));
        snprintf(spec, sizeof(spec), "%s,%s", cert, bobkey);
        CHECK_INT_EQ(ck_pki_identity_load(spec, NULL, &id), CK_ERR_INVAL);
        CHECK(strstr(ck_error_context(), "does not match") != NULL);
    }
    CHECK_INT_EQ(ck_pki_identity_new(bob->key, alice->cert, NULL, &id), CK_ERR_INVAL);

    /* Bad specs and files. */
    CHECK_INT_EQ(ck_pki_identity_load("", NULL, &id), CK_ERR_INVAL);
    snprintf(spec, sizeof(spec), "%s,", cert);
    CHECK_INT_EQ(ck_pki_identity_load(spec, NULL, &id), CK_ERR_INVAL);
    snprintf(spec, sizeof(spec), "%s/nosuch.p12", tmpdir);
    CHECK_INT_EQ(ck_pki_identity_load(spec, "x", &id), CK_ERR_NOTFOUND);
    CHECK_INT_EQ(ck_pki_identity_load(key, NULL, &id), CK_ERR_DECODE); /* no certificate */
    CHECK(id == NULL);

    ck_pki_identity_free(alice);
    ck_pki_identity_free(bob);
}

static void
anchors_and_chains(void)
{
    char path[128];
    STACK_OF(X509) *certs = NULL;
    ck_pki_identity *alice = make_client("alice@EXAMPLE.TEST"), *id = NULL;
    BIO *bio;
    char *data;
    long len;

    tpath(path, sizeof(path), "anchors.pem");
    CHECK_OK(ck_pki_certs_write_pem(path, root_cert, NULL, 0));
    CHECK_OK(ck_pki_certs_load_pem(path, &certs));
    CHECK(certs != NULL && sk_X509_num(certs) == 1);
    sk_X509_pop_free(certs, X509_free);
    certs = NULL;

    /* 65 certificates: over the limit. */
    bio = BIO_new(BIO_s_mem());
    for (int i = 0; i < CK_PKI_MAX_ANCHORS + 1; i++)
        PEM_write_bio_X509(bio, root_cert);
    len = BIO_get_mem_data(bio, &data);
    write_file(path, data, (size_t)len, 0600);
    BIO_free(bio);
    CHECK_INT_EQ(ck_pki_certs_load_pem(path, &certs), CK_ERR_LIMIT);
    write_file(path, "no certificate here\n", 20, 0600);
    CHECK_INT_EQ(ck_pki_certs_load_pem(path, &certs), CK_ERR_DECODE);
    write_file(path, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", 58, 0600);
    CHECK_INT_EQ(ck_pki_certs_load_pem(path, &certs), CK_ERR_DECODE);
    CHECK(certs == NULL);

    /* Chain order: given the root first and the leaf itself mixed in, the identity's chain is
     * nearest issuer first, without the leaf. */
    certs = sk_X509_new_null();
    sk_X509_push(certs, root_cert);
    sk_X509_push(certs, alice->cert);
    sk_X509_push(certs, ca_cert);
    CHECK_OK(ck_pki_identity_new(alice->key, alice->cert, certs, &id));
    CHECK(id != NULL && sk_X509_num(id->chain) == 2 &&
          X509_cmp(sk_X509_value(id->chain, 0), ca_cert) == 0 &&
          X509_cmp(sk_X509_value(id->chain, 1), root_cert) == 0);
    sk_X509_free(certs);
    ck_pki_identity_free(id);
    ck_pki_identity_free(alice);
}

static void
file_writer(void)
{
    char path[128];
    struct stat st;
    mode_t old = umask(0);

    tpath(path, sizeof(path), "w.bin");
    unlink(path);
    CHECK_OK(ck_pki_file_write(path, "abc", 3, 0));
    umask(old);
    CHECK(stat(path, &st) == 0 && (st.st_mode & 07777) == 0600 && st.st_size == 3);
    CHECK_INT_EQ(ck_pki_file_write(path, "defg", 4, 0), CK_ERR_EXISTS);
    CHECK(stat(path, &st) == 0 && st.st_size == 3);
    CHECK_OK(ck_pki_file_write(path, "defg", 4, CK_PKI_WRITE_REPLACE));
    CHECK(stat(path, &st) == 0 && st.st_size == 4 && (st.st_mode & 07777) == 0600);
    CHECK(ck_pki_file_write("/nonexistent-dir/x", "a", 1, 0) != 0);
}

static void
cleanup(void)
{
    teardown_hierarchy();
    remove_tmpdir();
}

CK_TEST_MAIN("pki", CK_TEST_CASE(password_file_rules), CK_TEST_CASE(mac_normalisation),
             CK_TEST_CASE(san_golden_and_round_trip), CK_TEST_CASE(san_hostile),
             CK_TEST_CASE(key_types), CK_TEST_CASE(issue_profiles),
             CK_TEST_CASE(issue_validity_and_serials), CK_TEST_CASE(p12_round_trip),
             CK_TEST_CASE(p12_costs_and_mac), CK_TEST_CASE(identity_files),
             CK_TEST_CASE(anchors_and_chains), CK_TEST_CASE(file_writer),
             CK_TEST_CASE(cleanup))
