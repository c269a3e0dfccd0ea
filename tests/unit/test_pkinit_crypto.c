/* PKINIT crypto building blocks (lib/pkinit/{cms,dh,certs,tpcache}.c). The test PKI is made
 * in-process with OpenSSL: a service-provider root and CA, client and KDC certificates with the
 * PKINIT EKUs and id-pkinit-san, a PacketCable-style manufacturer root with an RSA-1024/SHA-1
 * device certificate whose CN is its MAC, an unrelated root, and the broken variants each
 * negative case needs. Every validity period is relative to the fixed time T0, so no case
 * depends on the calendar. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/cms.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cablekey/error.h"
#include "cablekey/pkinit.h"
#include "cablekey/pkinit_asn1.h"
#include "cablekey/principal.h"
#include "cablekey/util.h"
#include "ck_test.h"

#define T0 ((int64_t)1767225600) /* 2026-01-01T00:00:00Z */
#define DAY ((int64_t)86400)
#define YEAR (365 * DAY)

#define OID_CLIENT "1.3.6.1.5.2.3.4"
#define OID_KDC "1.3.6.1.5.2.3.5"
#define OID_SCLOGIN "1.3.6.1.4.1.311.20.2.2"

struct cert_opts {
    const char *cn;
    bool ca;
    int64_t not_before, not_after;
    const char *eku; /* extendedKeyUsage value for X509V3_EXT_conf_nid, NULL = none */
    const char *ku;  /* keyUsage value, NULL = none */
    const EVP_MD *md;
    bool no_akid;
    const char *san_principal; /* "name@REALM" for id-pkinit-san, NULL = none */
    const char *san_principal2;
};

static struct {
    bool ready, failed;
    char dir[64];
    EVP_PKEY *root_key, *ca_key, *client_key, *kdc_key, *mfg_key, *dev_key, *other_key, *ec_key,
        *ec384_key;
    X509 *root, *ca, *client, *kdc, *mfg, *device, *device_md5, *other, *expired, *future,
        *no_eku, *revoked, *bad_sig, *sclogin, *ec_client, *ec384_client, *weak_sha1;
    STACK_OF(X509) *chain;  /* [ca] */
    X509_CRL *ca_crl, *root_crl;
    char root_pem[128], mfg_pem[128], other_pem[128], crl_pem[128], root_crl_pem[128],
        empty_pem[128];
} P;

static long serial_counter = 1000;

/* id-pkinit-san otherName carrying "name@REALM". */
static int
add_san(GENERAL_NAMES *gens, const char *text)
{
    CK_PRINCIPAL_NAME *name = NULL;
    ASN1_GENERALSTRING *realm = NULL;
    CK_KRB5_PRINCIPAL_NAME *kpn = CK_KRB5_PRINCIPAL_NAME_new();
    uint8_t *der = NULL;
    size_t len = 0;
    ASN1_STRING *seq = ASN1_STRING_new();
    ASN1_TYPE *val = ASN1_TYPE_new();
    GENERAL_NAME *gn = GENERAL_NAME_new();
    int ok = 0;

    if (kpn == NULL || seq == NULL || val == NULL || gn == NULL ||
        ck_asn1_principal_parse(text, CK_NT_PRINCIPAL, &name, &realm) != 0 ||
        ck_pkinit_krb5_principal_set(kpn, name, ck_asn1_kstring_get(realm)) != 0 ||
        ck_asn1_krb5_principal_name_encode(kpn, &der, &len) != 0 ||
        !ASN1_STRING_set(seq, der, (int)len))
        goto out;
    ASN1_TYPE_set(val, V_ASN1_SEQUENCE, seq);
    seq = NULL;
    if (!GENERAL_NAME_set0_othername(gn, ck_pkinit_oid_new(CK_OID_PKINIT_SAN), val))
        goto out;
    val = NULL;
    if (!sk_GENERAL_NAME_push(gens, gn))
        goto out;
    gn = NULL;
    ok = 1;
out:
    ck_asn1_free_der(der, len);
    GENERAL_NAME_free(gn);
    ASN1_TYPE_free(val);
    ASN1_STRING_free(seq);
    CK_KRB5_PRINCIPAL_NAME_free(kpn);
    CK_PRINCIPAL_NAME_free(name);
    ASN1_GENERALSTRING_free(realm);
    return ok;
}

static int
add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    int ok = ext != NULL && X509_add_ext(x, ext, -1);

    X509_EXTENSION_free(ext);
    return ok;
}

/* A certificate for key, issued by issuer/issuer_key (NULL: self-signed). */
static X509 *
make_cert(const struct cert_opts *o, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key)
{
    X509 *x = X509_new();
    X509V3_CTX ctx;
    GENERAL_NAMES *gens = NULL;
    bool ok = false;

    if (x == NULL || !X509_set_version(x, 2) ||
        !ASN1_INTEGER_set(X509_get_serialNumber(x), serial_counter++) ||
        !ASN1_TIME_set(X509_getm_notBefore(x), (time_t)o->not_before) ||
        !ASN1_TIME_set(X509_getm_notAfter(x), (time_t)o->not_after) || !X509_set_pubkey(x, key) ||
        !X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "O", MBSTRING_ASC,
                                    (const unsigned char *)"cablekey test", -1, -1, 0) ||
        !X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                                    (const unsigned char *)o->cn, -1, -1, 0) ||
        !X509_set_issuer_name(x, X509_get_subject_name(issuer != NULL ? issuer : x)))
        goto out;
    X509V3_set_ctx(&ctx, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
    if (!add_ext(x, &ctx, NID_basic_constraints, o->ca ? "critical,CA:TRUE" : "CA:FALSE") ||
        !add_ext(x, &ctx, NID_subject_key_identifier, "hash") ||
        (!o->no_akid && !add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always")) ||
        (o->ku != NULL && !add_ext(x, &ctx, NID_key_usage, o->ku)) ||
        (o->eku != NULL && !add_ext(x, &ctx, NID_ext_key_usage, o->eku)))
        goto out;
    if (o->san_principal != NULL) {
        gens = sk_GENERAL_NAME_new_null();
        if (gens == NULL || !add_san(gens, o->san_principal) ||
            (o->san_principal2 != NULL && !add_san(gens, o->san_principal2)) ||
            !X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT))
            goto out;
    }
    if (!X509_sign(x, issuer_key != NULL ? issuer_key : key, o->md != NULL ? o->md : EVP_sha256()))
        goto out;
    ok = true;
out:
    GENERAL_NAMES_free(gens);
    if (!ok) {
        ERR_print_errors_fp(stderr);
        X509_free(x);
        return NULL;
    }
    return x;
}

static X509_CRL *
make_crl(X509 *issuer, EVP_PKEY *key, X509 *revoked, int64_t next_update)
{
    X509_CRL *crl = X509_CRL_new();
    ASN1_TIME *t = ASN1_TIME_new();
    bool ok = false;

    if (crl == NULL || t == NULL || !X509_CRL_set_version(crl, 1) ||
        !X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuer)) ||
        !ASN1_TIME_set(t, (time_t)(T0 - DAY)) || !X509_CRL_set1_lastUpdate(crl, t) ||
        !ASN1_TIME_set(t, (time_t)next_update) || !X509_CRL_set1_nextUpdate(crl, t))
        goto out;
    if (revoked != NULL) {
        X509_REVOKED *r = X509_REVOKED_new();
        if (r == NULL || !X509_REVOKED_set_serialNumber(r, X509_get_serialNumber(revoked)) ||
            !ASN1_TIME_set(t, (time_t)(T0 - DAY)) || !X509_REVOKED_set_revocationDate(r, t) ||
            !X509_CRL_add0_revoked(crl, r)) {
            X509_REVOKED_free(r);
            goto out;
        }
    }
    if (!X509_CRL_sort(crl) || !X509_CRL_sign(crl, key, EVP_sha256()))
        goto out;
    ok = true;
out:
    ASN1_TIME_free(t);
    if (!ok) {
        X509_CRL_free(crl);
        return NULL;
    }
    return crl;
}

static bool
write_pem(const char *path, X509 *const *certs, size_t n, X509_CRL *const *crls, size_t ncrl)
{
    FILE *f = fopen(path, "w");
    bool ok = f != NULL;

    for (size_t i = 0; ok && i < n; i++)
        ok = PEM_write_X509(f, certs[i]) == 1;
    for (size_t i = 0; ok && i < ncrl; i++)
        ok = PEM_write_X509_CRL(f, crls[i]) == 1;
    if (f != NULL && fclose(f) != 0)
        ok = false;
    return ok;
}

static bool
pki_build(void)
{
    const char *ds = "digitalSignature,keyEncipherment";
    struct cert_opts o;

    P.root_key = EVP_RSA_gen(2048);
    P.ca_key = EVP_RSA_gen(2048);
    P.client_key = EVP_RSA_gen(2048);
    P.kdc_key = EVP_RSA_gen(2048);
    P.mfg_key = EVP_RSA_gen(2048);
    P.dev_key = EVP_RSA_gen(1024);
    P.other_key = EVP_RSA_gen(2048);
    P.ec_key = EVP_EC_gen("P-256");
    P.ec384_key = EVP_EC_gen("P-384");
    if (!P.root_key || !P.ca_key || !P.client_key || !P.kdc_key || !P.mfg_key || !P.dev_key ||
        !P.other_key || !P.ec_key || !P.ec384_key)
        return false;

    o = (struct cert_opts){.cn = "SP Root", .ca = true, .not_before = T0 - 5 * YEAR,
                           .not_after = T0 + 10 * YEAR, .ku = "critical,keyCertSign,cRLSign"};
    P.root = make_cert(&o, P.root_key, NULL, NULL);
    o.cn = "SP CA";
    o.not_after = T0 + 5 * YEAR;
    P.ca = make_cert(&o, P.ca_key, P.root, P.root_key);
    o.cn = "Other Root";
    P.other = make_cert(&o, P.other_key, NULL, NULL);
    o.cn = "PacketCable Root Device Certificate Authority";
    P.mfg = make_cert(&o, P.mfg_key, NULL, NULL);
    if (!P.root || !P.ca || !P.other || !P.mfg)
        return false;

    o = (struct cert_opts){.cn = "alice", .not_before = T0 - DAY, .not_after = T0 + YEAR,
                           .eku = OID_CLIENT, .ku = ds, .san_principal = "alice@EXAMPLE.TEST",
                           .san_principal2 = "alice/admin@EXAMPLE.TEST"};
    P.client = make_cert(&o, P.client_key, P.ca, P.ca_key);
    o.cn = "expired";
    o.not_before = T0 - 2 * YEAR;
    o.not_after = T0 - DAY;
    P.expired = make_cert(&o, P.client_key, P.ca, P.ca_key);
    o.cn = "future";
    o.not_before = T0 + DAY;
    o.not_after = T0 + YEAR;
    P.future = make_cert(&o, P.client_key, P.ca, P.ca_key);
    o.not_before = T0 - DAY;
    o.cn = "no eku";
    o.eku = NULL;
    P.no_eku = make_cert(&o, P.client_key, P.ca, P.ca_key);
    o.cn = "revoked";
    o.eku = OID_CLIENT;
    P.revoked = make_cert(&o, P.client_key, P.ca, P.ca_key);
    o.cn = "smart card";
    o.eku = OID_SCLOGIN;
    P.sclogin = make_cert(&o, P.client_key, P.ca, P.ca_key);
    o.eku = OID_CLIENT;
    o.cn = "bad signature";
    o.no_akid = true; /* found by name under SP CA, but signed by another key */
    P.bad_sig = make_cert(&o, P.client_key, P.ca, P.other_key);
    o.no_akid = false;
    o.cn = "sha1 signed";
    o.md = EVP_sha1();
    P.weak_sha1 = make_cert(&o, P.client_key, P.ca, P.ca_key);
    o.md = NULL;
    o.cn = "ec client";
    P.ec_client = make_cert(&o, P.ec_key, P.ca, P.ca_key);
    o.cn = "ec384 client";
    P.ec384_client = make_cert(&o, P.ec384_key, P.ca, P.ca_key);
    o.cn = "kdc";
    o.eku = OID_KDC;
    o.san_principal = "krbtgt/EXAMPLE.TEST@EXAMPLE.TEST";
    o.san_principal2 = NULL;
    P.kdc = make_cert(&o, P.kdc_key, P.ca, P.ca_key);
    /* PacketCable 1.x device: RSA-1024, SHA-1, no EKU, MAC in the CN. */
    o = (struct cert_opts){.cn = "00:11:22:AA:bb:CC", .not_before = T0 - YEAR,
                           .not_after = T0 + 10 * YEAR, .ku = ds, .md = EVP_sha1()};
    P.device = make_cert(&o, P.dev_key, P.mfg, P.mfg_key);
    o.cn = "00-11-22-aa-bb-cd";
    o.md = EVP_md5();
    P.device_md5 = make_cert(&o, P.dev_key, P.mfg, P.mfg_key);
    if (!P.client || !P.expired || !P.future || !P.no_eku || !P.revoked || !P.sclogin ||
        !P.bad_sig || !P.weak_sha1 || !P.ec_client || !P.ec384_client || !P.kdc || !P.device ||
        !P.device_md5)
        return false;
    P.chain = sk_X509_new_null();
    if (P.chain == NULL || !sk_X509_push(P.chain, P.ca) || !X509_up_ref(P.ca))
        return false;
    P.ca_crl = make_crl(P.ca, P.ca_key, P.revoked, T0 + 30 * DAY);
    P.root_crl = make_crl(P.root, P.root_key, NULL, T0 + 30 * DAY);
    if (P.ca_crl == NULL || P.root_crl == NULL)
        return false;

    ck_strlcpy(P.dir, "/tmp/ck_pkinit_XXXXXX", sizeof(P.dir));
    if (mkdtemp(P.dir) == NULL)
        return false;
    snprintf(P.root_pem, sizeof(P.root_pem), "%s/sp-root.pem", P.dir);
    snprintf(P.mfg_pem, sizeof(P.mfg_pem), "%s/mfg-root.pem", P.dir);
    snprintf(P.other_pem, sizeof(P.other_pem), "%s/other.pem", P.dir);
    snprintf(P.crl_pem, sizeof(P.crl_pem), "%s/crl.pem", P.dir);
    snprintf(P.root_crl_pem, sizeof(P.root_crl_pem), "%s/root-crl.pem", P.dir);
    snprintf(P.empty_pem, sizeof(P.empty_pem), "%s/empty.pem", P.dir);
    X509_CRL *both[2] = {P.ca_crl, P.root_crl};
    return write_pem(P.root_pem, &P.root, 1, NULL, 0) && write_pem(P.mfg_pem, &P.mfg, 1, NULL, 0) &&
           write_pem(P.other_pem, &P.other, 1, NULL, 0) &&
           write_pem(P.crl_pem, NULL, 0, both, 2) &&
           write_pem(P.root_crl_pem, NULL, 0, &P.root_crl, 1) &&
           write_pem(P.empty_pem, NULL, 0, NULL, 0);
}

static bool
pki(void)
{
    if (!P.ready && !P.failed) {
        P.failed = !pki_build();
        P.ready = !P.failed;
        if (P.failed)
            fprintf(stderr, "  test PKI could not be built\n");
    }
    CHECK(P.ready);
    return P.ready;
}

static ck_pki_identity
identity(EVP_PKEY *key, X509 *cert)
{
    return (ck_pki_identity){.key = key, .cert = cert, .chain = P.chain};
}

/* ---------------------------------------------------------------------------------------------
 * CMS
 */

static const uint8_t auth_pack[] = "an AuthPack stands here; its bytes do not matter to CMS";

static void
test_cms_rfc_roundtrip(void)
{
    ck_pki_identity id;
    ck_pkinit_signed *s = NULL;
    uint8_t *der = NULL;
    size_t len = 0;

    if (!pki())
        return;
    id = identity(P.client_key, P.client);
    CHECK_OK(ck_pkinit_cms_sign(&id, CK_PKINIT_CT_AUTH_DATA, auth_pack, sizeof(auth_pack), 0,
                                &der, &len));
    CHECK_OK(ck_pkinit_cms_verify(der, len, CK_PKINIT_CT_AUTH_DATA, 0, NULL, &s));
    if (s != NULL) {
        CHECK_MEM_EQ(s->content, s->content_len, auth_pack, sizeof(auth_pack));
        CHECK(X509_cmp(s->signer, P.client) == 0);
        CHECK_INT_EQ(sk_X509_num(s->certs), 2); /* leaf + SP CA */
        CHECK_INT_EQ(s->digest_nid, NID_sha256);
        CHECK(s->signed_attrs);
        CHECK(!ck_pkinit_signed_is_packetcable(s));
    }
    ck_pkinit_signed_free(s);
    free(der);
}

static void
test_cms_ecdsa_roundtrip(void)
{
    ck_pki_identity id;
    ck_pkinit_signed *s = NULL;
    uint8_t *der = NULL;
    size_t len = 0;

    if (!pki())
        return;
    id = identity(P.ec_key, P.ec_client);
    CHECK_OK(ck_pkinit_cms_sign(&id, CK_PKINIT_CT_DHKEY_DATA, auth_pack, 10, 0, &der, &len));
    CHECK_OK(ck_pkinit_cms_verify(der, len, CK_PKINIT_CT_DHKEY_DATA, 0, NULL, &s));
    if (s != NULL)
        CHECK_INT_EQ(s->digest_nid, NID_sha256);
    ck_pkinit_signed_free(s);
    free(der);
    s = NULL;
    der = NULL;
    id = identity(P.ec384_key, P.ec384_client);
    CHECK_OK(ck_pkinit_cms_sign(&id, CK_PKINIT_CT_DHKEY_DATA, auth_pack, 10, 0, &der, &len));
    CHECK_OK(ck_pkinit_cms_verify(der, len, CK_PKINIT_CT_DHKEY_DATA, 0, NULL, &s));
    if (s != NULL)
        CHECK_INT_EQ(s->digest_nid, NID_sha384);
    ck_pkinit_signed_free(s);
    free(der);
    /* The PacketCable form is RSA only. */
    CHECK_INT_EQ(ck_pkinit_cms_sign(&id, CK_PKINIT_CT_AUTH_DATA, auth_pack, 10,
                                    CK_PKINIT_SIGN_PACKETCABLE, &der, &len),
                 CK_ERR_UNSUPPORTED);
}

/* The printed CMS structure, for fields OpenSSL has no accessor for (SignerInfo version,
 * content-encryption algorithm). */
static char *
cms_print(const uint8_t *der, size_t len)
{
    const unsigned char *p = der;
    CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
    BIO *b = BIO_new(BIO_s_mem());
    char *text = NULL, *data;
    long n;

    if (cms != NULL && b != NULL && CMS_ContentInfo_print_ctx(b, cms, 0, NULL) == 1 &&
        (n = BIO_get_mem_data(b, &data)) > 0 && (text = malloc((size_t)n + 1)) != NULL) {
        memcpy(text, data, (size_t)n);
        text[n] = '\0';
    }
    BIO_free(b);
    CMS_ContentInfo_free(cms);
    return text;
}

static void
test_cms_packetcable_form(void)
{
    ck_pki_identity id;
    ck_pkinit_signed *s = NULL;
    uint8_t *der = NULL;
    size_t len = 0;
    const unsigned char *p;
    CMS_ContentInfo *cms;
    char *text, *si_text;

    if (!pki())
        return;
    id = identity(P.client_key, P.client);
    CHECK_OK(ck_pkinit_cms_sign(&id, CK_PKINIT_CT_AUTH_DATA, auth_pack, sizeof(auth_pack),
                                CK_PKINIT_SIGN_PACKETCABLE, &der, &len));
    /* Inspect the SignerInfo with OpenSSL's accessors. */
    p = der;
    cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
    CHECK(cms != NULL);
    if (cms != NULL) {
        STACK_OF(CMS_SignerInfo) *sis = CMS_get0_SignerInfos(cms);
        CMS_SignerInfo *si = sk_CMS_SignerInfo_value(sis, 0);
        X509_ALGOR *dig = NULL, *sig = NULL;
        ASN1_OCTET_STRING *keyid = NULL;
        X509_NAME *issuer = NULL;
        ASN1_INTEGER *sno = NULL;

        CHECK_INT_EQ(sk_CMS_SignerInfo_num(sis), 1);
        CMS_SignerInfo_get0_algs(si, NULL, NULL, &dig, &sig);
        CHECK_INT_EQ(OBJ_obj2nid(dig->algorithm), NID_sha1);
        CHECK_INT_EQ(OBJ_obj2nid(sig->algorithm), NID_rsaEncryption);
        CHECK_INT_EQ(CMS_signed_get_attr_count(si), -1); /* no signedAttrs at all */
        CHECK_INT_EQ(CMS_SignerInfo_get0_signer_id(si, &keyid, &issuer, &sno), 1);
        CHECK(keyid == NULL && issuer != NULL && sno != NULL); /* issuerAndSerialNumber */
        CHECK(X509_NAME_cmp(issuer, X509_get_issuer_name(P.client)) == 0);
        CHECK(ASN1_INTEGER_cmp(sno, X509_get0_serialNumber(P.client)) == 0);
        CMS_ContentInfo_free(cms);
    }
    /* SignerInfo version 1 (RFC 5652 §5.3: version 1 with issuerAndSerialNumber). */
    text = cms_print(der, len);
    CHECK(text != NULL);
    si_text = text != NULL ? strstr(text, "signerInfos:") : NULL;
    CHECK(si_text != NULL && strstr(si_text, "version: 1") != NULL);
    CHECK(si_text != NULL && strstr(si_text, "version: 3") == NULL);
    free(text);

    /* SHA-1 needs the caller's permission. */
    CHECK_INT_EQ(ck_pkinit_cms_verify(der, len, CK_PKINIT_CT_AUTH_DATA, 0, NULL, &s),
                 CK_ERR_POLICY);
    CHECK(s == NULL);
    CHECK_OK(ck_pkinit_cms_verify(der, len, CK_PKINIT_CT_AUTH_DATA, CK_PKINIT_VERIFY_ALLOW_SHA1,
                                  NULL, &s));
    if (s != NULL) {
        CHECK_MEM_EQ(s->content, s->content_len, auth_pack, sizeof(auth_pack));
        CHECK_INT_EQ(s->digest_nid, NID_sha1);
        CHECK(!s->signed_attrs);
        CHECK(ck_pkinit_signed_is_packetcable(s));
    }
    ck_pkinit_signed_free(s);
    free(der);
}

/* Flips one byte of the eContent inside the DER. */
static bool
tamper_content(uint8_t *der, size_t len)
{
    for (size_t i = 0; i + sizeof(auth_pack) <= len; i++) {
        if (memcmp(der + i, auth_pack, sizeof(auth_pack)) == 0) {
            der[i + 5] ^= 0x01;
            return true;
        }
    }
    return false;
}

static void
test_cms_tampered(void)
{
    ck_pki_identity id;
    ck_pkinit_signed *s = NULL;
    uint8_t *der = NULL;
    size_t len = 0;

    if (!pki())
        return;
    id = identity(P.client_key, P.client);
    for (int form = 0; form < 2; form++) {
        unsigned fl = form ? CK_PKINIT_SIGN_PACKETCABLE : 0;
        CHECK_OK(ck_pkinit_cms_sign(&id, CK_PKINIT_CT_AUTH_DATA, auth_pack, sizeof(auth_pack), fl,
                                    &der, &len));
        CHECK(der != NULL && tamper_content(der, len));
        CHECK_INT_EQ(ck_pkinit_cms_verify(der, len, CK_PKINIT_CT_AUTH_DATA,
                                          CK_PKINIT_VERIFY_ALLOW_SHA1, NULL, &s),
                     CK_ERR_INTEGRITY);
        CHECK(s == NULL);
        /* The signature bytes themselves (the last bytes of a SignedData without CRLs). */
        tamper_content(der, len); /* flip back */
        der[len - 3] ^= 0x40;
        CHECK_INT_EQ(ck_pkinit_cms_verify(der, len, CK_PKINIT_CT_AUTH_DATA,
                                          CK_PKINIT_VERIFY_ALLOW_SHA1, NULL, &s),
                     CK_ERR_INTEGRITY);
        free(der);
        der = NULL;
    }
}

static void
test_cms_wrong_type_and_malformed(void)
{
    ck_pki_identity id;
    ck_pkinit_signed *s = NULL;
    uint8_t *der = NULL, *big;
    size_t len = 0;

    if (!pki())
        return;
    id = identity(P.client_key, P.client);
    CHECK_OK(ck_pkinit_cms_sign(&id, CK_PKINIT_CT_AUTH_DATA, auth_pack, sizeof(auth_pack), 0,
                                &der, &len));
    CHECK_INT_EQ(ck_pkinit_cms_verify(der, len, CK_PKINIT_CT_DHKEY_DATA, 0, NULL, &s),
                 CK_ERR_PROTO);
    CHECK_INT_EQ(ck_pkinit_cms_verify(der, len, CK_PKINIT_CT_RKEY_DATA, 0, NULL, &s),
                 CK_ERR_PROTO);
    CHECK_INT_EQ(ck_pkinit_cms_verify(der, len - 1, CK_PKINIT_CT_AUTH_DATA, 0, NULL, &s),
                 CK_ERR_DECODE);
    CHECK_INT_EQ(ck_pkinit_cms_verify(der, 0, CK_PKINIT_CT_AUTH_DATA, 0, NULL, &s), CK_ERR_DECODE);
    CHECK_INT_EQ(ck_pkinit_cms_verify((const uint8_t *)"\x30\x03\x02\x01\x00", 5,
                                      CK_PKINIT_CT_AUTH_DATA, 0, NULL, &s),
                 CK_ERR_DECODE);
    /* Trailing garbage. */
    big = malloc(len + 1);
    if (big != NULL) {
        memcpy(big, der, len);
        big[len] = 0;
        CHECK_INT_EQ(ck_pkinit_cms_verify(big, len + 1, CK_PKINIT_CT_AUTH_DATA, 0, NULL, &s),
                     CK_ERR_DECODE);
        free(big);
    }
    /* Oversize input and content. */
    big = calloc(1, CK_PKINIT_CMS_MAX + 1);
    if (big != NULL) {
        memcpy(big, der, len);
        CHECK_INT_EQ(ck_pkinit_cms_verify(big, CK_PKINIT_CMS_MAX + 1, CK_PKINIT_CT_AUTH_DATA, 0,
                                          NULL, &s),
                     CK_ERR_LIMIT);
        uint8_t *none = NULL;
        size_t none_len = 0;
        CHECK_INT_EQ(ck_pkinit_cms_sign(&id, CK_PKINIT_CT_AUTH_DATA, big,
                                        CK_PKINIT_CONTENT_MAX + 1, 0, &none, &none_len),
                     CK_ERR_LIMIT);
        CHECK(none == NULL);
        free(big);
    }
    CHECK(s == NULL);
    free(der);
    /* A key that is not the certificate's. */
    id = identity(P.kdc_key, P.client);
    CHECK_INT_EQ(ck_pkinit_cms_sign(&id, CK_PKINIT_CT_AUTH_DATA, auth_pack, 4, 0, &der, &len),
                 CK_ERR_INVAL);
}

/* A SignedData built directly with OpenSSL, for shapes ck_pkinit_cms_sign never produces. */
static uint8_t *
raw_signed(EVP_PKEY *const *keys, X509 *const *certs, size_t nsigners, const EVP_MD *md,
           unsigned flags, STACK_OF(X509) *extra, size_t *len)
{
    CMS_ContentInfo *cms = CMS_sign(NULL, NULL, extra, NULL, CMS_PARTIAL | CMS_BINARY);
    BIO *in = BIO_new_mem_buf(auth_pack, sizeof(auth_pack));
    ASN1_OBJECT *oid = ck_pkinit_oid_new(CK_OID_PKINIT_AUTH_DATA);
    unsigned char *der = NULL;
    uint8_t *out = NULL;
    int n = 0;

    if (cms != NULL && in != NULL && oid != NULL && CMS_set1_eContentType(cms, oid)) {
        bool ok = true;
        for (size_t i = 0; ok && i < nsigners; i++)
            ok = CMS_add1_signer(cms, certs[i], keys[i], md, CMS_BINARY | flags) != NULL;
        if (ok && CMS_final(cms, in, NULL, CMS_BINARY | flags) &&
            (n = i2d_CMS_ContentInfo(cms, &der)) > 0)
            out = ck_memdup(der, (size_t)n);
    }
    ERR_print_errors_fp(stderr);
    *len = (size_t)n;
    OPENSSL_free(der);
    ASN1_OBJECT_free(oid);
    BIO_free(in);
    CMS_ContentInfo_free(cms);
    return out;
}

static void
test_cms_signer_rules(void)
{
    ck_pkinit_signed *s = NULL;
    EVP_PKEY *keys[2];
    X509 *certs[2];
    STACK_OF(X509) *many;
    uint8_t *der;
    size_t len;

    if (!pki())
        return;
    keys[0] = P.client_key;
    certs[0] = P.client;
    keys[1] = P.kdc_key;
    certs[1] = P.kdc;
    /* Two signers. */
    der = raw_signed(keys, certs, 2, EVP_sha256(), 0, NULL, &len);
    CHECK(der != NULL);
    CHECK_INT_EQ(ck_pkinit_cms_verify(der, len, CK_PKINIT_CT_AUTH_DATA, 0, NULL, &s), CK_ERR_PROTO);
    free(der);
    /* One signer whose certificate is not carried. */
    der = raw_signed(keys, certs, 1, EVP_sha256(), CMS_NOCERTS, NULL, &len);
    CHECK(der != NULL);
    CHECK_INT_EQ(ck_pkinit_cms_verify(der, len, CK_PKINIT_CT_AUTH_DATA, 0, NULL, &s), CK_ERR_PROTO);
    free(der);
    /* MD5 is refused even where SHA-1 is allowed. */
    der = raw_signed(keys, certs, 1, EVP_md5(), 0, NULL, &len);
    CHECK(der != NULL);
    CHECK_INT_EQ(ck_pkinit_cms_verify(der, len, CK_PKINIT_CT_AUTH_DATA,
                                      CK_PKINIT_VERIFY_ALLOW_SHA1, NULL, &s),
                 CK_ERR_POLICY);
    free(der);
    /* Eleven certificates. */
    many = sk_X509_new_null();
    for (int i = 0; many != NULL && i < CK_PKINIT_MAX_CERTS; i++) {
        struct cert_opts o = {.cn = "filler", .not_before = T0, .not_after = T0 + DAY};
        X509 *x = make_cert(&o, P.ec_key, NULL, NULL);
        if (x == NULL || !sk_X509_push(many, x))
            X509_free(x);
    }
    CHECK(many != NULL && sk_X509_num(many) == CK_PKINIT_MAX_CERTS);
    der = raw_signed(keys, certs, 1, EVP_sha256(), 0, many, &len);
    CHECK(der != NULL);
    CHECK_INT_EQ(ck_pkinit_cms_verify(der, len, CK_PKINIT_CT_AUTH_DATA, 0, NULL, &s), CK_ERR_LIMIT);
    free(der);
    /* Ten are fine. */
    X509_free(sk_X509_pop(many));
    der = raw_signed(keys, certs, 1, EVP_sha256(), 0, many, &len);
    CHECK_OK(ck_pkinit_cms_verify(der, len, CK_PKINIT_CT_AUTH_DATA, 0, NULL, &s));
    ck_pkinit_signed_free(s);
    free(der);
    sk_X509_pop_free(many, X509_free);
}

/* Repeated verifications take the carried certificates from the cache. */
static void
test_cms_certcache(void)
{
    ck_pki_identity id;
    ck_pkinit_certcache *cache = NULL;
    ck_pkinit_signed *s1 = NULL, *s2 = NULL;
    ck_pkinit_cache_stats st;
    uint8_t *der = NULL, tp1[CK_PKINIT_TP_LEN], tp2[CK_PKINIT_TP_LEN];
    size_t len = 0;

    if (!pki())
        return;
    CHECK_OK(ck_pkinit_certcache_new(16, &cache));
    id = identity(P.client_key, P.client);
    CHECK_OK(ck_pkinit_cms_sign(&id, CK_PKINIT_CT_AUTH_DATA, auth_pack, sizeof(auth_pack), 0,
                                &der, &len));
    CHECK_OK(ck_pkinit_cms_verify(der, len, CK_PKINIT_CT_AUTH_DATA, 0, cache, &s1));
    ck_pkinit_certcache_get_stats(cache, &st);
    CHECK_INT_EQ(st.misses, 2);
    CHECK_INT_EQ(st.hits, 0);
    CHECK_OK(ck_pkinit_cms_verify(der, len, CK_PKINIT_CT_AUTH_DATA, 0, cache, &s2));
    ck_pkinit_certcache_get_stats(cache, &st);
    CHECK_INT_EQ(st.misses, 2);
    CHECK_INT_EQ(st.hits, 2);
    CHECK_INT_EQ(st.used, 2);
    if (s1 != NULL && s2 != NULL) {
        CHECK(sk_X509_value(s1->certs, 0) == sk_X509_value(s2->certs, 0)); /* same object */
        CHECK(s2->signer == sk_X509_value(s2->certs, (int)s2->signer_index));
        CHECK(X509_cmp(s2->signer, P.client) == 0);
        CHECK_MEM_EQ(s2->content, s2->content_len, auth_pack, sizeof(auth_pack));
        /* The thumbprint from the verification's hashes = the one from the certificates. */
        CHECK_OK(ck_pkinit_signed_thumbprint(s2, 42, tp1));
        CHECK_OK(ck_pkinit_thumbprint(s2->signer, s2->certs, 42, tp2));
        CHECK_MEM_EQ(tp1, sizeof(tp1), tp2, sizeof(tp2));
    }
    /* Results outlive the cache. */
    ck_pkinit_certcache_free(cache);
    cache = NULL;
    if (s1 != NULL)
        CHECK(X509_cmp(s1->signer, P.client) == 0);
    ck_pkinit_signed_free(s1);
    ck_pkinit_signed_free(s2);
    free(der);

    /* Bounded: 60 distinct certificates through a 16-entry cache. */
    CHECK_OK(ck_pkinit_certcache_new(16, &cache));
    for (int round = 0; round < 6; round++) {
        STACK_OF(X509) *many = sk_X509_new_null();
        EVP_PKEY *keys[1] = {P.client_key};
        X509 *certs[1] = {P.client};
        ck_pkinit_signed *s = NULL;

        for (int i = 0; many != NULL && i < CK_PKINIT_MAX_CERTS - 1; i++) {
            struct cert_opts o = {.cn = "filler", .not_before = T0, .not_after = T0 + DAY};
            X509 *x = make_cert(&o, P.ec_key, NULL, NULL);
            if (x == NULL || !sk_X509_push(many, x))
                X509_free(x);
        }
        der = raw_signed(keys, certs, 1, EVP_sha256(), 0, many, &len);
        CHECK_OK(ck_pkinit_cms_verify(der, len, CK_PKINIT_CT_AUTH_DATA, 0, cache, &s));
        ck_pkinit_signed_free(s);
        free(der);
        sk_X509_pop_free(many, X509_free);
    }
    ck_pkinit_certcache_get_stats(cache, &st);
    CHECK(st.used <= 16 && st.evictions > 0);
    CHECK_INT_EQ(st.hits + st.misses, 6 * CK_PKINIT_MAX_CERTS);
    CHECK(st.misses >= 6 * (CK_PKINIT_MAX_CERTS - 1)); /* every filler is new */
    ck_pkinit_certcache_free(cache);
}

/* ck_pkinit_cms_pick_cipher over a 0-terminated list of algorithm NIDs. */
static int
pick(const int *nids)
{
    STACK_OF(X509_ALGOR) *algs = sk_X509_ALGOR_new_null();
    int ret;

    for (int i = 0; algs != NULL && nids[i] != 0; i++) {
        X509_ALGOR *a = X509_ALGOR_new();
        if (a == NULL || !X509_ALGOR_set0(a, OBJ_nid2obj(nids[i]), V_ASN1_UNDEF, NULL) ||
            !sk_X509_ALGOR_push(algs, a))
            X509_ALGOR_free(a);
    }
    ret = ck_pkinit_cms_pick_cipher(algs);
    sk_X509_ALGOR_pop_free(algs, X509_ALGOR_free);
    return ret;
}

static void
test_cms_envelope(void)
{
    ck_pki_identity client, kdc;
    uint8_t *inner = NULL, *env = NULL, *back = NULL;
    size_t inner_len = 0, env_len = 0, back_len = 0;
    char *text;
    const int only_des3[] = {NID_sha256WithRSAEncryption, NID_des_ede3_cbc, 0},
              both[] = {NID_des_ede3_cbc, NID_aes_128_cbc, 0},
              none[] = {NID_sha256WithRSAEncryption, 0}, empty[] = {0};

    if (!pki())
        return;
    client = identity(P.client_key, P.client);
    kdc = identity(P.kdc_key, P.kdc);
    CHECK_INT_EQ(ck_pkinit_cms_pick_cipher(NULL), NID_aes_256_cbc);
    CHECK_INT_EQ(pick(empty), NID_aes_256_cbc);
    CHECK_INT_EQ(pick(only_des3), NID_des_ede3_cbc);
    CHECK_INT_EQ(pick(both), NID_aes_256_cbc);
    CHECK_INT_EQ(pick(none), NID_aes_256_cbc);

    CHECK_OK(ck_pkinit_cms_sign(&kdc, CK_PKINIT_CT_RKEY_DATA, auth_pack, sizeof(auth_pack), 0,
                                &inner, &inner_len));
    for (int i = 0; i < 4; i++) {
        int nid = i % 2 == 0 ? NID_aes_256_cbc : NID_des_ede3_cbc;
        unsigned fl = i < 2 ? 0 : CK_PKINIT_ENVELOPE_CONTENTINFO;
        ck_pkinit_signed *s = NULL;
        const unsigned char *p;
        CMS_ContentInfo *cms, *plain_ci;
        BIO *bout;
        char *data = NULL;
        long n;

        CHECK_OK(ck_pkinit_cms_envelope(P.client, inner, inner_len, nid, fl, &env, &env_len));
        text = cms_print(env, env_len);
        CHECK(text != NULL && strstr(text, nid == NID_aes_256_cbc ? "aes-256-cbc"
                                                                   : "des-ede3-cbc") != NULL);
        free(text);
        /* The plaintext: the bare SignedData (RFC 4556, MIT), or the ContentInfo on request. */
        p = env;
        cms = d2i_CMS_ContentInfo(NULL, &p, (long)env_len);
        bout = BIO_new(BIO_s_mem());
        CHECK(cms != NULL && bout != NULL &&
              CMS_decrypt(cms, P.client_key, P.client, NULL, bout, CMS_BINARY) == 1);
        n = BIO_get_mem_data(bout, &data);
        CHECK(n > 0);
        p = (const unsigned char *)data;
        plain_ci = n > 0 ? d2i_CMS_ContentInfo(NULL, &p, n) : NULL;
        if (fl == 0) {
            CHECK(plain_ci == NULL);
            CHECK((size_t)n < inner_len && memcmp(data, inner + inner_len - n, (size_t)n) == 0);
        } else {
            CHECK(plain_ci != NULL);
            CHECK_MEM_EQ(data, (size_t)n, inner, inner_len);
        }
        ERR_clear_error();
        CMS_ContentInfo_free(plain_ci);
        CMS_ContentInfo_free(cms);
        BIO_free(bout);
        /* Our client gets the ContentInfo back either way. */
        CHECK_OK(ck_pkinit_cms_decrypt(&client, env, env_len, &back, &back_len));
        CHECK_MEM_EQ(back, back_len, inner, inner_len);
        CHECK_OK(ck_pkinit_cms_verify(back, back_len, CK_PKINIT_CT_RKEY_DATA, 0, NULL, &s));
        if (s != NULL)
            CHECK_MEM_EQ(s->content, s->content_len, auth_pack, sizeof(auth_pack));
        ck_pkinit_signed_free(s);
        ck_free_secret(back, back_len);
        back = NULL;
        /* Not the recipient. */
        CHECK_INT_EQ(ck_pkinit_cms_decrypt(&kdc, env, env_len, &back, &back_len),
                     CK_ERR_INTEGRITY);
        CHECK(back == NULL);
        /* A SignedData is not an EnvelopedData. */
        CHECK_INT_EQ(ck_pkinit_cms_decrypt(&client, inner, inner_len, &back, &back_len),
                     CK_ERR_DECODE);
        free(env);
        env = NULL;
    }
    /* The default form needs a SignedData ContentInfo to take the SignedData from. */
    CHECK_INT_EQ(ck_pkinit_cms_envelope(P.client, auth_pack, sizeof(auth_pack), NID_aes_256_cbc,
                                        0, &env, &env_len),
                 CK_ERR_INVAL);
    /* Key transport needs an RSA recipient. */
    CHECK_INT_EQ(ck_pkinit_cms_envelope(P.ec_client, inner, inner_len, NID_aes_256_cbc, 0, &env,
                                        &env_len),
                 CK_ERR_UNSUPPORTED);
    CHECK_INT_EQ(ck_pkinit_cms_envelope(P.client, inner, inner_len, NID_rc4, 0, &env, &env_len),
                 CK_ERR_UNSUPPORTED);
    ck_free_secret(inner, inner_len);
}

/* ---------------------------------------------------------------------------------------------
 * DH / ECDH
 */

static void
exchange(ck_pkinit_group g)
{
    ck_pkinit_dh *client = NULL;
    ck_pkinit_peer *peer = NULL;
    uint8_t *spki = NULL, *pub = NULL, *zk = NULL, *zc = NULL;
    size_t spki_len = 0, pub_len = 0, zk_len = 0, zc_len = 0;
    X509_ALGOR *ours = NULL;

    CHECK_OK(ck_pkinit_dh_generate(g, &client));
    CHECK_OK(ck_pkinit_dh_spki(client, &spki, &spki_len));
    CHECK_OK(ck_pkinit_peer_parse(spki, spki_len, 2048, &peer));
    CHECK_INT_EQ(ck_pkinit_peer_group(peer), g);
    CHECK_OK(ck_pkinit_dh_kdc_exchange(peer, &pub, &pub_len, &zk, &zk_len));
    CHECK_OK(ck_pkinit_dh_client_derive(client, pub, pub_len, &zc, &zc_len));
    CHECK_INT_EQ(zk_len, ck_pkinit_group_z_len(g));
    CHECK_MEM_EQ(zk, zk_len, zc, zc_len);
    /* The client's SPKI algorithm is the group's AlgorithmIdentifier (TD-DH-PARAMETERS). */
    CHECK_OK(ck_pkinit_group_algorithm(g, &ours));
    if (spki != NULL && ours != NULL) {
        const unsigned char *p = spki;
        X509_PUBKEY *xpk = d2i_X509_PUBKEY(NULL, &p, (long)spki_len);
        X509_ALGOR *theirs = NULL;
        CHECK(xpk != NULL && X509_PUBKEY_get0_param(NULL, NULL, NULL, &theirs, xpk) == 1);
        CHECK(theirs != NULL && X509_ALGOR_cmp(ours, theirs) == 0);
        CHECK_INT_EQ(OBJ_obj2nid(theirs->algorithm), ck_pkinit_group_is_ec(g)
                                                         ? NID_X9_62_id_ecPublicKey
                                                         : NID_dhpublicnumber);
        /* The same peer through the decoded-object entry points. */
        if (xpk != NULL) {
            const unsigned char *bits = NULL;
            int bits_len = 0;
            ASN1_BIT_STRING *bs = ASN1_BIT_STRING_new();
            ck_pkinit_peer *p2 = NULL;

            CHECK_OK(ck_pkinit_peer_from_pubkey(xpk, 2048, &p2));
            CHECK_INT_EQ(ck_pkinit_peer_group(p2), g);
            ck_pkinit_peer_free(p2);
            p2 = NULL;
            CHECK(X509_PUBKEY_get0_param(NULL, &bits, &bits_len, NULL, xpk) == 1);
            CHECK(bs != NULL && ASN1_BIT_STRING_set(bs, (unsigned char *)bits, bits_len) == 1);
            if (bs != NULL) {
                bs->flags = (bs->flags & ~7) | ASN1_STRING_FLAG_BITS_LEFT;
                CHECK_OK(ck_pkinit_peer_from_raw(ours, bs, 2048, &p2));
                CHECK_INT_EQ(ck_pkinit_peer_group(p2), g);
                ck_pkinit_peer_free(p2);
                p2 = NULL;
                bs->flags |= 1; /* one unused bit: not a whole number of octets */
                CHECK_INT_EQ(ck_pkinit_peer_from_raw(ours, bs, 2048, &p2), CK_ERR_DECODE);
            }
            ASN1_BIT_STRING_free(bs);
        }
        X509_PUBKEY_free(xpk);
    }
    /* KDCDHKeyInfo.subjectPublicKey contents: a DER INTEGER (DH) or an uncompressed point. */
    if (pub != NULL && ck_pkinit_group_is_ec(g)) {
        CHECK_INT_EQ(pub_len, 1 + 2 * ck_pkinit_group_z_len(g));
        CHECK_INT_EQ(pub[0], 0x04);
    } else if (pub != NULL) {
        const unsigned char *p = pub;
        ASN1_INTEGER *y = d2i_ASN1_INTEGER(NULL, &p, (long)pub_len);
        CHECK(y != NULL && p == pub + pub_len && ASN1_STRING_type(y) == V_ASN1_INTEGER);
        ASN1_INTEGER_free(y);
    }
    X509_ALGOR_free(ours);
    ck_free_secret(zk, zk_len);
    ck_free_secret(zc, zc_len);
    free(pub);
    free(spki);
    ck_pkinit_peer_free(peer);
    ck_pkinit_dh_free(client);
}

static void
test_dh_groups(void)
{
    for (int g = CK_PKINIT_GROUP_MODP2048; g <= CK_PKINIT_GROUP_COUNT; g++)
        exchange((ck_pkinit_group)g);
    CHECK_INT_EQ(ck_pkinit_group_bits(CK_PKINIT_GROUP_MODP3072), 3072);
    CHECK_INT_EQ(ck_pkinit_group_bits(CK_PKINIT_GROUP_P256), 3072);
    CHECK(strcmp(ck_pkinit_group_name(CK_PKINIT_GROUP_P384), "P-384") == 0);
    CHECK(strcmp(ck_pkinit_group_name((ck_pkinit_group)99), "none") == 0);
}

/* Z must keep its leading zero bytes (len(p) octets). One Z in 256 starts with 0x00: run
 * exchanges with a fixed client key until one does. */
static void
test_dh_z_padding(void)
{
    ck_pkinit_dh *client = NULL;
    ck_pkinit_peer *peer = NULL;
    uint8_t *spki = NULL;
    size_t spki_len = 0;
    int found = 0, tries;

    CHECK_OK(ck_pkinit_dh_generate(CK_PKINIT_GROUP_MODP2048, &client));
    CHECK_OK(ck_pkinit_dh_spki(client, &spki, &spki_len));
    CHECK_OK(ck_pkinit_peer_parse(spki, spki_len, 2048, &peer));
    for (tries = 0; peer != NULL && tries < 6000 && !found; tries++) {
        uint8_t *pub = NULL, *zk = NULL, *zc = NULL;
        size_t pub_len = 0, zk_len = 0, zc_len = 0;

        if (ck_pkinit_dh_kdc_exchange(peer, &pub, &pub_len, &zk, &zk_len) != 0 ||
            ck_pkinit_dh_client_derive(client, pub, pub_len, &zc, &zc_len) != 0) {
            CHECK(0);
            break;
        }
        CHECK_INT_EQ(zk_len, 256);
        CHECK_MEM_EQ(zk, zk_len, zc, zc_len);
        found = zk[0] == 0;
        ck_free_secret(zk, zk_len);
        ck_free_secret(zc, zc_len);
        free(pub);
    }
    CHECK(found); /* (255/256)^6000 < 1e-10 */
    free(spki);
    ck_pkinit_peer_free(peer);
    ck_pkinit_dh_free(client);
}

/* SPKI of a DHX/EC public key built from parameters and a chosen public value. */
static uint8_t *
spki_with(const char *type, const char *group, const BIGNUM *y, const uint8_t *pt, size_t ptl,
          const char *ec_encoding, size_t *len)
{
    OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY *pk = NULL;
    unsigned char *der = NULL;
    uint8_t *out = NULL;
    int n = 0;

    if (b != NULL && OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) &&
        (y == NULL || OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_PUB_KEY, y)) &&
        (pt == NULL || OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_PUB_KEY, pt, ptl)) &&
        (ec_encoding == NULL ||
         OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_EC_ENCODING, ec_encoding, 0)) &&
        (params = OSSL_PARAM_BLD_to_param(b)) != NULL && ctx != NULL &&
        EVP_PKEY_fromdata_init(ctx) > 0 &&
        EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) > 0 &&
        (n = i2d_PUBKEY(pk, &der)) > 0)
        out = ck_memdup(der, (size_t)n);
    ERR_print_errors_fp(stderr);
    *len = (size_t)n;
    OPENSSL_free(der);
    EVP_PKEY_free(pk);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(b);
    return out;
}

static void
test_dh_refusals(void)
{
    ck_pkinit_peer *peer = NULL;
    ck_pkinit_dh *client = NULL;
    BIGNUM *p = BN_get_rfc3526_prime_2048(NULL), *y = BN_new();
    uint8_t *der, *z = NULL;
    size_t len, z_len = 0;

    CHECK(p != NULL && y != NULL);
    if (p == NULL || y == NULL)
        goto out;
    /* Groups that are not ours: RFC 7919 ffdhe2048 and RFC 3526's 1536-bit group. */
    BN_set_word(y, 5);
    der = spki_with("DHX", "ffdhe2048", y, NULL, 0, NULL, &len);
    CHECK(der != NULL);
    CHECK_INT_EQ(ck_pkinit_peer_parse(der, len, 0, &peer), CK_ERR_UNSUPPORTED);
    free(der);
    der = spki_with("DHX", "modp_1536", y, NULL, 0, NULL, &len);
    CHECK(der != NULL);
    CHECK_INT_EQ(ck_pkinit_peer_parse(der, len, 0, &peer), CK_ERR_UNSUPPORTED);
    free(der);
    /* Our prime in PKCS#3 form (dhKeyAgreement, no q) is not the RFC 4556 encoding. */
    der = spki_with("DH", "modp_2048", y, NULL, 0, NULL, &len);
    CHECK(der != NULL);
    CHECK_INT_EQ(ck_pkinit_peer_parse(der, len, 0, &peer), CK_ERR_UNSUPPORTED);
    free(der);
    /* Below the minimum. */
    der = spki_with("DHX", "modp_2048", y, NULL, 0, NULL, &len);
    CHECK_INT_EQ(ck_pkinit_peer_parse(der, len, 3072, &peer), CK_ERR_POLICY);
    CHECK_OK(ck_pkinit_peer_parse(der, len, 2048, &peer));
    ck_pkinit_peer_free(peer);
    peer = NULL;
    free(der);
    /* y = 0, 1, p-1, p are refused; 2 and p-2 are in range. */
    {
        struct { int adjust; bool from_p; int want; } cases[] = {
            {0, false, CK_ERR_PROTO}, {1, false, CK_ERR_PROTO}, {-1, true, CK_ERR_PROTO},
            {0, true, CK_ERR_PROTO},  {2, false, 0},            {-2, true, 0},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
            if (cases[i].from_p) {
                BN_copy(y, p);
                BN_sub_word(y, (BN_ULONG)-cases[i].adjust);
            } else {
                BN_set_word(y, (BN_ULONG)cases[i].adjust);
            }
            der = spki_with("DHX", "modp_2048", y, NULL, 0, NULL, &len);
            CHECK(der != NULL);
            CHECK_INT_EQ(ck_pkinit_peer_parse(der, len, 2048, &peer), cases[i].want);
            ck_pkinit_peer_free(peer);
            peer = NULL;
            free(der);
        }
    }
    /* The client refuses the same values from the KDC. */
    CHECK_OK(ck_pkinit_dh_generate(CK_PKINIT_GROUP_MODP2048, &client));
    {
        ASN1_INTEGER *ai;
        unsigned char *d = NULL;
        int n;

        BN_copy(y, p);
        BN_sub_word(y, 1);
        ai = BN_to_ASN1_INTEGER(y, NULL);
        n = ai != NULL ? i2d_ASN1_INTEGER(ai, &d) : 0;
        CHECK(n > 0);
        CHECK_INT_EQ(ck_pkinit_dh_client_derive(client, d, (size_t)n, &z, &z_len), CK_ERR_PROTO);
        CHECK(z == NULL);
        OPENSSL_free(d);
        ASN1_INTEGER_free(ai);
        CHECK_INT_EQ(ck_pkinit_dh_client_derive(client, (const uint8_t *)"\x02\x01\x01", 3, &z,
                                                &z_len),
                     CK_ERR_PROTO);
        CHECK_INT_EQ(ck_pkinit_dh_client_derive(client, (const uint8_t *)"\x02\x01\xff", 3, &z,
                                                &z_len),
                     CK_ERR_DECODE); /* negative */
        CHECK_INT_EQ(ck_pkinit_dh_client_derive(client, (const uint8_t *)"\x04\x01\x05", 3, &z,
                                                &z_len),
                     CK_ERR_DECODE); /* not an INTEGER */
    }
    /* Malformed SPKI. */
    CHECK_INT_EQ(ck_pkinit_peer_parse((const uint8_t *)"\x30\x00", 2, 0, &peer), CK_ERR_DECODE);
    CHECK_INT_EQ(ck_pkinit_peer_parse((const uint8_t *)"x", 1, 0, &peer), CK_ERR_DECODE);
    {
        uint8_t *huge = calloc(1, CK_PKINIT_SPKI_MAX + 1);
        CHECK_INT_EQ(ck_pkinit_peer_parse(huge, CK_PKINIT_SPKI_MAX + 1, 0, &peer), CK_ERR_LIMIT);
        free(huge);
    }
    /* An RSA key is not a DH value. */
    {
        unsigned char *d = NULL;
        int n;
        if (pki()) {
            n = i2d_PUBKEY(P.client_key, &d);
            CHECK_INT_EQ(ck_pkinit_peer_parse(d, (size_t)n, 0, &peer), CK_ERR_UNSUPPORTED);
            OPENSSL_free(d);
        }
    }
    CHECK(peer == NULL);
out:
    ck_pkinit_dh_free(client);
    BN_free(p);
    BN_free(y);
}

static void
test_ecdh_refusals(void)
{
    ck_pkinit_dh *client = NULL, *kdc = NULL;
    ck_pkinit_peer *peer = NULL;
    uint8_t *der = NULL, *pub = NULL, *z = NULL;
    size_t len = 0, pub_len = 0, z_len = 0;

    CHECK_OK(ck_pkinit_dh_generate(CK_PKINIT_GROUP_P256, &client));
    CHECK_OK(ck_pkinit_dh_spki(client, &der, &len));
    /* Off the curve: flip the last bit of y. */
    if (der != NULL) {
        der[len - 1] ^= 0x01;
        CHECK_INT_EQ(ck_pkinit_peer_parse(der, len, 2048, &peer), CK_ERR_PROTO);
        der[len - 1] ^= 0x01;
        CHECK_INT_EQ(ck_pkinit_peer_parse(der, len, 4096, &peer), CK_ERR_POLICY);
    }
    free(der);
    der = NULL;
    /* The client refuses an off-curve point and the point at infinity from the KDC. */
    CHECK_OK(ck_pkinit_dh_generate(CK_PKINIT_GROUP_P256, &kdc));
    CHECK_OK(ck_pkinit_dh_public_value(kdc, &pub, &pub_len));
    if (pub != NULL) {
        CHECK_OK(ck_pkinit_dh_client_derive(client, pub, pub_len, &z, &z_len));
        ck_free_secret(z, z_len);
        z = NULL;
        pub[pub_len - 1] ^= 0x01;
        CHECK_INT_EQ(ck_pkinit_dh_client_derive(client, pub, pub_len, &z, &z_len), CK_ERR_PROTO);
        CHECK_INT_EQ(ck_pkinit_dh_client_derive(client, (const uint8_t *)"\x00", 1, &z, &z_len),
                     CK_ERR_PROTO);
    }
    free(pub);
    /* Explicit curve parameters are refused even for P-256 itself. */
    {
        ck_pkinit_dh *k = NULL;
        uint8_t *v = NULL;
        size_t vl = 0;
        CHECK_OK(ck_pkinit_dh_generate(CK_PKINIT_GROUP_P256, &k));
        CHECK_OK(ck_pkinit_dh_public_value(k, &v, &vl));
        der = v != NULL ? spki_with("EC", "prime256v1", NULL, v, vl, "explicit", &len) : NULL;
        CHECK(der != NULL);
        CHECK_INT_EQ(ck_pkinit_peer_parse(der, len, 0, &peer), CK_ERR_UNSUPPORTED);
        free(der);
        free(v);
        ck_pkinit_dh_free(k);
    }
    /* Another curve. */
    {
        EVP_PKEY *k521 = EVP_EC_gen("P-521");
        unsigned char *d = NULL;
        int n = k521 != NULL ? i2d_PUBKEY(k521, &d) : 0;
        CHECK(n > 0);
        CHECK_INT_EQ(ck_pkinit_peer_parse(d, (size_t)n, 0, &peer), CK_ERR_UNSUPPORTED);
        OPENSSL_free(d);
        EVP_PKEY_free(k521);
    }
    CHECK(peer == NULL);
    ck_pkinit_dh_free(kdc);
    ck_pkinit_dh_free(client);
}

/* ---------------------------------------------------------------------------------------------
 * Certificates
 */

static ck_pkinit_anchors *
anchors_sp(const char *crl)
{
    ck_pkinit_anchors *a = NULL;

    CHECK_OK(ck_pkinit_anchors_new(&a));
    CHECK_OK(ck_pkinit_anchors_add_file(a, P.root_pem, 0, crl));
    CHECK_OK(ck_pkinit_anchors_add_file(a, P.mfg_pem, CK_PKINIT_ANCHOR_PACKETCABLE, NULL));
    return a;
}

static int
verify(const ck_pkinit_anchors *a, X509 *leaf, int64_t now, unsigned purpose,
       ck_pkinit_chain_result *res)
{
    STACK_OF(X509) *carried = sk_X509_new_null();
    int ret;

    /* As a client sends it: the leaf and its chain. */
    sk_X509_push(carried, leaf);
    sk_X509_push(carried, P.ca);
    ret = ck_pkinit_verify_chain(a, leaf, carried, now, purpose, res);
    sk_X509_free(carried);
    return ret;
}

static void
expect_refusal(const ck_pkinit_anchors *a, X509 *leaf, int64_t now, unsigned purpose,
               ck_pkinit_cert_reason want, int krb)
{
    ck_pkinit_chain_result res;

    CHECK_INT_EQ(verify(a, leaf, now, purpose, &res), CK_ERR_POLICY);
    if (res.reason != want)
        fprintf(stderr, "  got %s (%s), want %s\n", ck_pkinit_cert_reason_str(res.reason),
                ck_error_context(), ck_pkinit_cert_reason_str(want));
    CHECK_INT_EQ(res.reason, want);
    CHECK_INT_EQ(ck_pkinit_cert_reason_krb_error(res.reason), krb);
}

static void
test_chain_good(void)
{
    ck_pkinit_anchors *a;
    ck_pkinit_chain_result res;
    int64_t ca_after = T0 + 5 * YEAR, client_after = T0 + YEAR;

    if (!pki())
        return;
    a = anchors_sp(NULL);
    CHECK_INT_EQ(ck_pkinit_anchors_count(a), 2);
    CHECK(X509_cmp(ck_pkinit_anchors_get0(a, 1), P.mfg) == 0);
    CHECK(ck_pkinit_anchors_get0(a, 2) == NULL);
    CHECK_OK(verify(a, P.client, T0, CK_PKINIT_PURPOSE_CLIENT, &res));
    CHECK_INT_EQ(res.reason, CK_PKINIT_CERT_OK);
    CHECK_INT_EQ(res.anchor_index, 0);
    CHECK_INT_EQ(res.anchor_flags, 0);
    CHECK_INT_EQ(res.valid_until, client_after < ca_after ? client_after : ca_after);
    /* Intermediate given separately from the carried list. */
    CHECK_OK(ck_pkinit_verify_chain(a, P.client, P.chain, T0, CK_PKINIT_PURPOSE_CLIENT, &res));
    /* The KDC certificate for the KDC purpose, not for the client one, and vice versa. */
    CHECK_OK(verify(a, P.kdc, T0, CK_PKINIT_PURPOSE_KDC, &res));
    expect_refusal(a, P.kdc, T0, CK_PKINIT_PURPOSE_CLIENT, CK_PKINIT_CERT_BAD_EKU, 77);
    expect_refusal(a, P.client, T0, CK_PKINIT_PURPOSE_KDC, CK_PKINIT_CERT_BAD_EKU, 77);
    /* ECDSA leaf. */
    CHECK_OK(verify(a, P.ec_client, T0, CK_PKINIT_PURPOSE_CLIENT, &res));
    ck_pkinit_anchors_free(a);
}

static void
test_chain_refusals(void)
{
    ck_pkinit_anchors *a, *other = NULL;
    ck_pkinit_chain_result res;

    if (!pki())
        return;
    a = anchors_sp(NULL);
    /* Wrong anchor. */
    CHECK_OK(ck_pkinit_anchors_new(&other));
    CHECK_OK(ck_pkinit_anchors_add_file(other, P.other_pem, 0, NULL));
    expect_refusal(other, P.client, T0, CK_PKINIT_PURPOSE_CLIENT, CK_PKINIT_CERT_UNTRUSTED, 70);
    /* Without its intermediate the leaf cannot reach the root either. */
    CHECK_INT_EQ(ck_pkinit_verify_chain(a, P.client, NULL, T0, CK_PKINIT_PURPOSE_CLIENT, &res),
                 CK_ERR_POLICY);
    CHECK_INT_EQ(res.reason, CK_PKINIT_CERT_UNTRUSTED);
    expect_refusal(a, P.expired, T0, CK_PKINIT_PURPOSE_CLIENT, CK_PKINIT_CERT_EXPIRED, 62);
    expect_refusal(a, P.future, T0, CK_PKINIT_PURPOSE_CLIENT, CK_PKINIT_CERT_NOT_YET_VALID, 62);
    /* The good client, two years later. */
    expect_refusal(a, P.client, T0 + 2 * YEAR, CK_PKINIT_PURPOSE_CLIENT, CK_PKINIT_CERT_EXPIRED,
                   62);
    expect_refusal(a, P.no_eku, T0, CK_PKINIT_PURPOSE_CLIENT, CK_PKINIT_CERT_BAD_EKU, 77);
    expect_refusal(a, P.bad_sig, T0, CK_PKINIT_PURPOSE_CLIENT, CK_PKINIT_CERT_BAD_SIGNATURE, 71);
    CHECK_INT_EQ(verify(a, P.bad_sig, T0, CK_PKINIT_PURPOSE_CLIENT, &res), CK_ERR_POLICY);
    CHECK_INT_EQ(res.depth, 0);
    CHECK_INT_EQ(res.x509_error, X509_V_ERR_CERT_SIGNATURE_FAILURE);
    /* Smart-card logon EKU only on request. */
    expect_refusal(a, P.sclogin, T0, CK_PKINIT_PURPOSE_CLIENT, CK_PKINIT_CERT_BAD_EKU, 77);
    CHECK_OK(verify(a, P.sclogin, T0, CK_PKINIT_PURPOSE_CLIENT | CK_PKINIT_VERIFY_SCLOGIN, &res));
    /* SHA-1-signed leaf outside a PacketCable anchor. */
    expect_refusal(a, P.weak_sha1, T0, CK_PKINIT_PURPOSE_CLIENT, CK_PKINIT_CERT_WEAK, 78);
    ck_pkinit_anchors_free(other);
    ck_pkinit_anchors_free(a);
}

static void
test_chain_crl(void)
{
    ck_pkinit_anchors *a, *b;
    ck_pkinit_chain_result res;

    if (!pki())
        return;
    /* SP CA's CRL lists "revoked"; the root's CRL covers SP CA. */
    a = anchors_sp(P.crl_pem);
    expect_refusal(a, P.revoked, T0, CK_PKINIT_PURPOSE_CLIENT, CK_PKINIT_CERT_REVOKED, 72);
    CHECK_OK(verify(a, P.client, T0, CK_PKINIT_PURPOSE_CLIENT, &res));
    CHECK_INT_EQ(res.valid_until, T0 + 30 * DAY); /* the CRLs' nextUpdate comes first */
    /* After nextUpdate the CRL no longer vouches for anything. */
    expect_refusal(a, P.client, T0 + 31 * DAY, CK_PKINIT_PURPOSE_CLIENT,
                   CK_PKINIT_CERT_REVOCATION_UNKNOWN, 73);
    /* The device chain ends at the manufacturer anchor, which has no CRL. */
    CHECK_OK(ck_pkinit_verify_chain(a, P.device, NULL, T0, CK_PKINIT_PURPOSE_CLIENT, &res));
    ck_pkinit_anchors_free(a);
    /* A CRL set without the leaf issuer's CRL: status unknown. */
    b = anchors_sp(P.root_crl_pem);
    expect_refusal(b, P.client, T0, CK_PKINIT_PURPOSE_CLIENT, CK_PKINIT_CERT_REVOCATION_UNKNOWN,
                   73);
    ck_pkinit_anchors_free(b);
    /* Without CRLs the revoked certificate is merely valid. */
    a = anchors_sp(NULL);
    CHECK_OK(verify(a, P.revoked, T0, CK_PKINIT_PURPOSE_CLIENT, &res));
    ck_pkinit_anchors_free(a);
}

static void
test_chain_packetcable(void)
{
    ck_pkinit_anchors *a, *strict = NULL;
    ck_pkinit_chain_result res;

    if (!pki())
        return;
    a = anchors_sp(NULL);
    CHECK_OK(ck_pkinit_verify_chain(a, P.device, NULL, T0, CK_PKINIT_PURPOSE_CLIENT, &res));
    CHECK_INT_EQ(res.anchor_index, 1);
    CHECK_INT_EQ(res.anchor_flags, CK_PKINIT_ANCHOR_PACKETCABLE);
    /* MD5 signatures are refused even under a PacketCable anchor. */
    CHECK_INT_EQ(ck_pkinit_verify_chain(a, P.device_md5, NULL, T0, CK_PKINIT_PURPOSE_CLIENT,
                                        &res),
                 CK_ERR_POLICY);
    CHECK_INT_EQ(res.reason, CK_PKINIT_CERT_WEAK);
    /* The same hierarchy trusted without the PacketCable option: RSA-1024/SHA-1 is weak, and
     * the device certificate has no EKU. */
    CHECK_OK(ck_pkinit_anchors_new(&strict));
    CHECK_OK(ck_pkinit_anchors_add_file(strict, P.mfg_pem, 0, NULL));
    CHECK_INT_EQ(ck_pkinit_verify_chain(strict, P.device, NULL, T0, CK_PKINIT_PURPOSE_CLIENT,
                                        &res),
                 CK_ERR_POLICY);
    CHECK_INT_EQ(res.reason, CK_PKINIT_CERT_WEAK);
    ck_pkinit_anchors_free(strict);
    ck_pkinit_anchors_free(a);
}

static void
test_anchors_api(void)
{
    ck_pkinit_anchors *a = NULL;
    STACK_OF(X509) *one;
    uint64_t g1, g2;

    if (!pki())
        return;
    CHECK_OK(ck_pkinit_anchors_new(&a));
    g1 = ck_pkinit_anchors_generation(a);
    CHECK_OK(ck_pkinit_anchors_add_file(a, P.root_pem, 0, NULL));
    g2 = ck_pkinit_anchors_generation(a);
    CHECK(g2 != g1 && g2 != 0);
    CHECK_INT_EQ(ck_pkinit_anchors_add_file(a, P.root_pem, 0, NULL), CK_ERR_EXISTS);
    one = sk_X509_new_null();
    sk_X509_push(one, P.root);
    CHECK_INT_EQ(ck_pkinit_anchors_add(a, one, 0, NULL), CK_ERR_EXISTS);
    sk_X509_free(one);
    CHECK_INT_EQ(ck_pkinit_anchors_add_file(a, "/nonexistent/anchors.pem", 0, NULL), CK_ERR_IO);
    CHECK_INT_EQ(ck_pkinit_anchors_add_file(a, P.empty_pem, 0, NULL), CK_ERR_DECODE);
    /* An empty CRL file would silently turn revocation off. */
    CHECK_INT_EQ(ck_pkinit_anchors_add_file(a, P.mfg_pem, 0, P.empty_pem), CK_ERR_DECODE);
    /* A CRL file is not an anchor file. */
    CHECK_INT_EQ(ck_pkinit_anchors_add_file(a, P.crl_pem, 0, NULL), CK_ERR_DECODE);
    CHECK_INT_EQ(ck_pkinit_anchors_count(a), 1);
    CHECK_INT_EQ(ck_pkinit_anchors_generation(a), g2);
    ck_pkinit_anchors_free(a);
    ck_pkinit_anchors_free(NULL);
}

static void
test_san_and_kdc_name(void)
{
    ck_principal **names = NULL, *p = NULL;
    size_t n = 0;
    char *text = NULL;

    if (!pki())
        return;
    CHECK_OK(ck_pkinit_cert_san_principals(P.client, &names, &n));
    CHECK_INT_EQ(n, 2);
    if (n == 2) {
        CHECK_OK(ck_principal_unparse(names[0], 0, &text));
        CHECK(text != NULL && strcmp(text, "alice@EXAMPLE.TEST") == 0);
        free(text);
        CHECK_OK(ck_principal_unparse(names[1], 0, &text));
        CHECK(text != NULL && strcmp(text, "alice/admin@EXAMPLE.TEST") == 0);
        free(text);
        CHECK_INT_EQ(names[0]->name_type, CK_NT_PRINCIPAL);
    }
    ck_pkinit_principals_free(names, n);
    /* No subjectAltName at all. */
    CHECK_OK(ck_pkinit_cert_san_principals(P.device, &names, &n));
    CHECK_INT_EQ(n, 0);
    ck_pkinit_principals_free(names, n);

    CHECK_OK(ck_principal_parse("alice/admin@EXAMPLE.TEST", NULL, 0, &p));
    CHECK_OK(ck_pkinit_cert_match_principal(P.client, p));
    ck_principal_free(p);
    CHECK_OK(ck_principal_parse("bob@EXAMPLE.TEST", NULL, 0, &p));
    CHECK_INT_EQ(ck_pkinit_cert_match_principal(P.client, p), CK_ERR_NOTFOUND);
    ck_principal_free(p);
    CHECK_OK(ck_principal_parse("alice@OTHER.TEST", NULL, 0, &p));
    CHECK_INT_EQ(ck_pkinit_cert_match_principal(P.client, p), CK_ERR_NOTFOUND);
    CHECK_INT_EQ(ck_pkinit_cert_match_principal(P.device, p), CK_ERR_NOTFOUND);
    ck_principal_free(p);

    CHECK_OK(ck_pkinit_kdc_cert_match_realm(P.kdc, "EXAMPLE.TEST"));
    CHECK_INT_EQ(ck_pkinit_kdc_cert_match_realm(P.kdc, "OTHER.TEST"), CK_ERR_NOTFOUND);
    CHECK_INT_EQ(ck_pkinit_kdc_cert_match_realm(P.client, "EXAMPLE.TEST"), CK_ERR_NOTFOUND);
}

static void
test_device_mac_and_pin(void)
{
    char mac[CK_PKINIT_MAC_TEXT];
    uint8_t pin1[CK_PKINIT_PIN_LEN], pin2[CK_PKINIT_PIN_LEN], pin3[CK_PKINIT_PIN_LEN];
    uint8_t want[CK_PKINIT_PIN_LEN];
    unsigned char *spki = NULL;
    unsigned int wl = 0;
    int n;

    if (!pki())
        return;
    CHECK_OK(ck_pkinit_cert_device_mac(P.device, mac));
    CHECK(strcmp(mac, "00:11:22:aa:bb:cc") == 0);
    CHECK_OK(ck_pkinit_cert_device_mac(P.device_md5, mac));
    CHECK(strcmp(mac, "00:11:22:aa:bb:cd") == 0);
    CHECK_INT_EQ(ck_pkinit_cert_device_mac(P.client, mac), CK_ERR_NOTFOUND);

    CHECK_OK(ck_pkinit_mac_canonical("0A-0b-0C-dd-EE-ff", mac));
    CHECK(strcmp(mac, "0a:0b:0c:dd:ee:ff") == 0);
    CHECK_INT_EQ(ck_pkinit_mac_canonical("0a:0b-0c:dd:ee:ff", mac), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_pkinit_mac_canonical("0a:0b:0c:dd:ee", mac), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_pkinit_mac_canonical("0a:0b:0c:dd:ee:fg", mac), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_pkinit_mac_canonical("0a.0b.0c.dd.ee.ff", mac), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_pkinit_mac_canonical("0a:0b:0c:dd:ee:ff ", mac), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_pkinit_mac_canonical("", mac), CK_ERR_INVAL);

    /* The pin follows the key, not the certificate. */
    CHECK_OK(ck_pkinit_cert_spki_sha256(P.device, pin1));
    CHECK_OK(ck_pkinit_cert_spki_sha256(P.device_md5, pin2));
    CHECK_OK(ck_pkinit_cert_spki_sha256(P.client, pin3));
    CHECK_MEM_EQ(pin1, sizeof(pin1), pin2, sizeof(pin2));
    CHECK(memcmp(pin1, pin3, sizeof(pin1)) != 0);
    /* = SHA-256 of the SPKI as encoded from the key itself. */
    n = i2d_PUBKEY(P.dev_key, &spki);
    CHECK(n > 0 && EVP_Digest(spki, (size_t)n, want, &wl, EVP_sha256(), NULL) == 1);
    CHECK_MEM_EQ(pin1, sizeof(pin1), want, wl);
    OPENSSL_free(spki);
}

/* ---------------------------------------------------------------------------------------------
 * Thumbprint cache
 */

static void
test_tpcache(void)
{
    ck_pkinit_anchors *a;
    ck_pkinit_tpcache *c = NULL;
    ck_pkinit_chain_result res, got;
    ck_pkinit_cache_stats st;
    uint8_t tp[CK_PKINIT_TP_LEN], tp2[CK_PKINIT_TP_LEN], tp3[CK_PKINIT_TP_LEN];
    uint64_t gen;

    if (!pki())
        return;
    a = anchors_sp(NULL);
    gen = ck_pkinit_anchors_generation(a);
    CHECK_OK(ck_pkinit_tpcache_new(100, &c));
    if (c == NULL)
        goto out;
    ck_pkinit_tpcache_get_stats(c, &st);
    CHECK_INT_EQ(st.capacity, 128);

    CHECK_OK(ck_pkinit_thumbprint(P.client, P.chain, gen, tp));
    CHECK_OK(ck_pkinit_thumbprint(P.client, P.chain, gen, tp2));
    CHECK_MEM_EQ(tp, sizeof(tp), tp2, sizeof(tp2));
    CHECK_OK(ck_pkinit_thumbprint(P.client, P.chain, gen + 1, tp2));
    CHECK(memcmp(tp, tp2, sizeof(tp)) != 0);
    CHECK_OK(ck_pkinit_thumbprint(P.client, NULL, gen, tp3));
    CHECK(memcmp(tp, tp3, sizeof(tp)) != 0);

    CHECK_INT_EQ(ck_pkinit_tpcache_lookup(c, tp, T0, 7, &got), CK_ERR_NOTFOUND);
    CHECK_OK(verify(a, P.client, T0, CK_PKINIT_PURPOSE_CLIENT, &res));
    CHECK_OK(ck_pkinit_tpcache_store(c, tp, &res, 7));
    CHECK_OK(ck_pkinit_tpcache_lookup(c, tp, T0, 7, &got));
    CHECK_INT_EQ(got.reason, CK_PKINIT_CERT_OK);
    CHECK_INT_EQ(got.valid_until, res.valid_until);
    CHECK_INT_EQ(got.anchor_index, res.anchor_index);
    /* Another thumbprint (other anchor generation) misses. */
    CHECK_INT_EQ(ck_pkinit_tpcache_lookup(c, tp2, T0, 7, &got), CK_ERR_NOTFOUND);
    /* The device record changed: miss, and the entry is gone. */
    CHECK_INT_EQ(ck_pkinit_tpcache_lookup(c, tp, T0, 8, &got), CK_ERR_NOTFOUND);
    CHECK_INT_EQ(ck_pkinit_tpcache_lookup(c, tp, T0, 7, &got), CK_ERR_NOTFOUND);
    /* Expiry at valid_until. */
    CHECK_OK(ck_pkinit_tpcache_store(c, tp, &res, 7));
    CHECK_OK(ck_pkinit_tpcache_lookup(c, tp, res.valid_until - 1, 7, &got));
    CHECK_INT_EQ(ck_pkinit_tpcache_lookup(c, tp, res.valid_until, 7, &got), CK_ERR_NOTFOUND);
    /* Refusals are not cached. */
    res.reason = CK_PKINIT_CERT_EXPIRED;
    CHECK_INT_EQ(ck_pkinit_tpcache_store(c, tp, &res, 7), CK_ERR_INVAL);
    res.reason = CK_PKINIT_CERT_OK;
    /* Bounded: many entries, at most capacity kept, the newest still there. */
    for (uint64_t i = 0; i < 1000; i++) {
        CHECK_OK(ck_pkinit_thumbprint(P.client, P.chain, i + 1000, tp2));
        CHECK_OK(ck_pkinit_tpcache_store(c, tp2, &res, 0));
    }
    CHECK_OK(ck_pkinit_tpcache_lookup(c, tp2, T0, 0, &got));
    ck_pkinit_tpcache_get_stats(c, &st);
    CHECK(st.used <= st.capacity && st.used > st.capacity / 2);
    CHECK(st.evictions >= 1000 - st.capacity);
    CHECK(st.hits >= 1 && st.misses >= 1);
    ck_pkinit_tpcache_clear(c);
    CHECK_INT_EQ(ck_pkinit_tpcache_lookup(c, tp2, T0, 0, &got), CK_ERR_NOTFOUND);
    {
        ck_pkinit_tpcache *huge = NULL;
        CHECK_INT_EQ(ck_pkinit_tpcache_new((size_t)1 << 21, &huge), CK_ERR_LIMIT);
        CHECK(huge == NULL);
    }
out:
    ck_pkinit_tpcache_free(c);
    ck_pkinit_anchors_free(a);
}

/* ---------------------------------------------------------------------------------------------
 * Stock clients and MIT's KDC (tests/vectors/pkinit, captured 2026-12-01, see its README)
 */

#define CAPTURE_TIME ((int64_t)1796169600) /* 2026-12-02T00:00:00Z, inside the certificates' */

static uint8_t *
read_vector(const char *name, size_t *len)
{
    char path[256];
    FILE *f;
    uint8_t *buf = NULL;

    snprintf(path, sizeof(path), "vectors/pkinit/%s", name);
    f = fopen(path, "rb");
    CHECK(f != NULL); /* a missing vector fails the case */
    if (f == NULL)
        return NULL;
    buf = malloc(CK_PKINIT_CMS_MAX);
    *len = buf != NULL ? fread(buf, 1, CK_PKINIT_CMS_MAX, f) : 0;
    fclose(f);
    return buf;
}

static X509 *
read_pem_cert(const char *name)
{
    char path[256];
    FILE *f;
    X509 *x = NULL;

    snprintf(path, sizeof(path), "vectors/pkinit/%s", name);
    f = fopen(path, "r");
    CHECK(f != NULL);
    if (f != NULL) {
        x = PEM_read_X509(f, NULL, NULL, NULL);
        fclose(f);
    }
    CHECK(x != NULL);
    return x;
}

/* The signed AuthPack of a captured PA-PK-AS-REQ, verified. */
static ck_pkinit_signed *
captured_auth_pack(const char *name, CK_AUTH_PACK **ap)
{
    size_t len = 0;
    uint8_t *der = read_vector(name, &len);
    CK_PA_PK_AS_REQ_MSG *req = NULL;
    ck_pkinit_signed *s = NULL;

    *ap = NULL;
    if (der != NULL && ck_asn1_pa_pk_as_req_decode(der, len, &req) == 0) {
        CHECK_OK(ck_pkinit_cms_verify(ASN1_STRING_get0_data(req->signed_auth_pack),
                                      (size_t)ASN1_STRING_length(req->signed_auth_pack),
                                      CK_PKINIT_CT_AUTH_DATA, 0, NULL, &s));
        if (s != NULL)
            CHECK_OK(ck_asn1_auth_pack_decode(s->content, s->content_len, ap));
    } else {
        CHECK(0);
    }
    CK_PA_PK_AS_REQ_MSG_free(req);
    free(der);
    return s;
}

static void
test_captures(void)
{
    X509 *ca = read_pem_cert("ca.pem"), *client = read_pem_cert("client.pem"),
         *kdc = read_pem_cert("kdc.pem");
    STACK_OF(X509) *roots = sk_X509_new_null();
    ck_pkinit_anchors *a = NULL;
    ck_pkinit_chain_result res;
    ck_pkinit_signed *s;
    CK_AUTH_PACK *ap = NULL;
    ck_pkinit_peer *peer = NULL;
    ck_principal *alice = NULL;
    uint8_t *der, *z = NULL;
    size_t len = 0, want_len = 0, z_len = 0;

    if (ca == NULL || client == NULL || kdc == NULL || roots == NULL)
        goto out;
    sk_X509_push(roots, ca);
    CHECK_OK(ck_pkinit_anchors_new(&a));
    CHECK_OK(ck_pkinit_anchors_add(a, roots, 0, NULL));
    CHECK_OK(ck_principal_parse("alice@EXAMPLE.TEST", NULL, 0, &alice));

    /* MIT kinit, Diffie-Hellman: SHA-256 with signed attributes, one certificate, an X9.42
     * MODP 2048 clientPublicValue, supportedCMSTypes = des-ede3-cbc only. */
    s = captured_auth_pack("mit-as-req-dh.pa-pk-as-req.der", &ap);
    if (s != NULL && ap != NULL) {
        uint8_t *want = read_vector("mit-as-req-dh.auth-pack.der", &want_len);
        CHECK_MEM_EQ(s->content, s->content_len, want, want_len);
        free(want);
        CHECK_INT_EQ(s->digest_nid, NID_sha256);
        CHECK(s->signed_attrs && !ck_pkinit_signed_is_packetcable(s));
        CHECK(X509_cmp(s->signer, client) == 0);
        CHECK_OK(ck_pkinit_verify_chain(a, s->signer, s->certs, CAPTURE_TIME,
                                        CK_PKINIT_PURPOSE_CLIENT, &res));
        CHECK_OK(ck_pkinit_cert_match_principal(s->signer, alice));
        CHECK_OK(ck_pkinit_peer_from_pubkey(ap->client_public_value, 2048, &peer));
        CHECK_INT_EQ(ck_pkinit_peer_group(peer), CK_PKINIT_GROUP_MODP2048);
        ck_pkinit_peer_free(peer);
        peer = NULL;
        CHECK_INT_EQ(ck_pkinit_cms_pick_cipher(ap->supported_cms_types), NID_des_ede3_cbc);
    }
    CK_AUTH_PACK_free(ap);
    ck_pkinit_signed_free(s);

    /* MIT kinit, RSA key transport: no clientPublicValue. */
    s = captured_auth_pack("mit-as-req-rsa.pa-pk-as-req.der", &ap);
    CHECK(s != NULL && ap != NULL && ap->client_public_value == NULL);
    CK_AUTH_PACK_free(ap);
    ck_pkinit_signed_free(s);

    /* Heimdal 7.8: SHA-512 with signed attributes; its 1024-bit Oakley group 2 is not ours. */
    s = captured_auth_pack("heimdal-as-req.pa-pk-as-req.der", &ap);
    if (s != NULL && ap != NULL) {
        CHECK_INT_EQ(s->digest_nid, NID_sha512);
        CHECK(s->signed_attrs);
        CHECK_OK(ck_pkinit_verify_chain(a, s->signer, s->certs, CAPTURE_TIME,
                                        CK_PKINIT_PURPOSE_CLIENT, &res));
        CHECK_INT_EQ(ck_pkinit_peer_from_pubkey(ap->client_public_value, 0, &peer),
                     CK_ERR_UNSUPPORTED);
        CHECK_INT_EQ(ck_pkinit_cms_pick_cipher(ap->supported_cms_types), NID_aes_256_cbc);
    }
    CK_AUTH_PACK_free(ap);
    ck_pkinit_signed_free(s);

    /* MIT's KDC: the dhSignedData verifies, the KDC certificate passes the client's checks,
     * and its public value is accepted by our client (Z itself cannot be checked: the
     * capture's private keys were not kept). */
    der = read_vector("mit-as-rep-dh.pa-pk-as-rep.der", &len);
    if (der != NULL) {
        CK_PA_PK_AS_REP_MSG *rep = NULL;
        CK_KDC_DH_KEY_INFO *info = NULL;
        ck_pkinit_dh *dh = NULL;

        s = NULL;
        CHECK_OK(ck_asn1_pa_pk_as_rep_decode(der, len, &rep));
        if (rep != NULL && rep->type == CK_PA_PK_AS_REP_DH_INFO) {
            const ASN1_OCTET_STRING *sd = rep->value.dh_info->dh_signed_data;
            CHECK_OK(ck_pkinit_cms_verify(ASN1_STRING_get0_data(sd),
                                          (size_t)ASN1_STRING_length(sd),
                                          CK_PKINIT_CT_DHKEY_DATA, 0, NULL, &s));
        }
        if (s != NULL) {
            CHECK(X509_cmp(s->signer, kdc) == 0);
            CHECK_OK(ck_pkinit_verify_chain(a, s->signer, s->certs, CAPTURE_TIME,
                                            CK_PKINIT_PURPOSE_KDC, &res));
            CHECK_OK(ck_pkinit_kdc_cert_match_realm(s->signer, "EXAMPLE.TEST"));
            CHECK_OK(ck_asn1_kdc_dh_key_info_decode(s->content, s->content_len, &info));
        }
        if (info != NULL) {
            CHECK_OK(ck_pkinit_dh_generate(CK_PKINIT_GROUP_MODP2048, &dh));
            const ASN1_BIT_STRING *y = info->subject_public_key;
            CHECK_OK(ck_pkinit_dh_client_derive(dh, ASN1_STRING_get0_data(y),
                                                (size_t)ASN1_STRING_length(y), &z, &z_len));
            CHECK_INT_EQ(z_len, 256);
            ck_free_secret(z, z_len);
        }
        ck_pkinit_dh_free(dh);
        CK_KDC_DH_KEY_INFO_free(info);
        CK_PA_PK_AS_REP_MSG_free(rep);
        ck_pkinit_signed_free(s);
        free(der);
    }

    /* Our TD-DH-PARAMETERS entries are byte for byte the ones MIT's KDC sends. */
    der = read_vector("mit-krb-error-dh-params.td-dh-parameters.der", &len);
    if (der != NULL) {
        CK_ALGORITHM_IDENTIFIERS *td = NULL;
        X509_ALGOR *g2048 = NULL, *g4096 = NULL;

        CHECK_OK(ck_asn1_td_dh_parameters_decode(der, len, &td));
        CHECK_OK(ck_pkinit_group_algorithm(CK_PKINIT_GROUP_MODP2048, &g2048));
        CHECK_OK(ck_pkinit_group_algorithm(CK_PKINIT_GROUP_MODP4096, &g4096));
        CHECK(td != NULL && sk_X509_ALGOR_num(td) == 2);
        if (td != NULL && sk_X509_ALGOR_num(td) == 2 && g2048 != NULL && g4096 != NULL) {
            CHECK(X509_ALGOR_cmp(sk_X509_ALGOR_value(td, 0), g2048) == 0);
            CHECK(X509_ALGOR_cmp(sk_X509_ALGOR_value(td, 1), g4096) == 0);
        }
        X509_ALGOR_free(g2048);
        X509_ALGOR_free(g4096);
        CK_ALGORITHM_IDENTIFIERS_free(td);
        free(der);
    }
out:
    ck_principal_free(alice);
    ck_pkinit_anchors_free(a);
    sk_X509_free(roots);
    X509_free(ca);
    X509_free(client);
    X509_free(kdc);
}

/* Last case: releases the test PKI (so ASan's leak check sees only real leaks). */
static void
test_cleanup(void)
{
    const char *files[] = {P.root_pem, P.mfg_pem, P.other_pem, P.crl_pem, P.root_crl_pem,
                           P.empty_pem};
    EVP_PKEY *keys[] = {P.root_key, P.ca_key, P.client_key, P.kdc_key, P.mfg_key, P.dev_key,
                        P.other_key, P.ec_key, P.ec384_key};
    X509 *certs[] = {P.root, P.ca, P.client, P.kdc, P.mfg, P.device, P.device_md5, P.other,
                     P.expired, P.future, P.no_eku, P.revoked, P.bad_sig, P.sclogin,
                     P.ec_client, P.ec384_client, P.weak_sha1};

    for (size_t i = 0; P.dir[0] != '\0' && i < sizeof(files) / sizeof(files[0]); i++)
        unlink(files[i]);
    if (P.dir[0] != '\0')
        CHECK(rmdir(P.dir) == 0);
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        EVP_PKEY_free(keys[i]);
    for (size_t i = 0; i < sizeof(certs) / sizeof(certs[0]); i++)
        X509_free(certs[i]);
    sk_X509_pop_free(P.chain, X509_free);
    X509_CRL_free(P.ca_crl);
    X509_CRL_free(P.root_crl);
    memset(&P, 0, sizeof(P));
}

CK_TEST_MAIN("pkinit_crypto", CK_TEST_CASE(test_cms_rfc_roundtrip),
             CK_TEST_CASE(test_cms_ecdsa_roundtrip), CK_TEST_CASE(test_cms_packetcable_form),
             CK_TEST_CASE(test_cms_tampered), CK_TEST_CASE(test_cms_wrong_type_and_malformed),
             CK_TEST_CASE(test_cms_signer_rules), CK_TEST_CASE(test_cms_certcache),
             CK_TEST_CASE(test_cms_envelope),
             CK_TEST_CASE(test_dh_groups), CK_TEST_CASE(test_dh_z_padding),
             CK_TEST_CASE(test_dh_refusals), CK_TEST_CASE(test_ecdh_refusals),
             CK_TEST_CASE(test_chain_good), CK_TEST_CASE(test_chain_refusals),
             CK_TEST_CASE(test_chain_crl), CK_TEST_CASE(test_chain_packetcable),
             CK_TEST_CASE(test_anchors_api), CK_TEST_CASE(test_san_and_kdc_name),
             CK_TEST_CASE(test_device_mac_and_pin), CK_TEST_CASE(test_tpcache),
             CK_TEST_CASE(test_captures),
             CK_TEST_CASE(test_cleanup))
