/* Key generation and certificate issuing for the operator CLI and the provisioning server.
 * Profiles (ck_pki_profile) fix the extensions, so every caller issues the same kinds of
 * certificates: MIT's and Heimdal's PKINIT check the EKUs and the id-pkinit-san, OpenSSL's
 * verifier checks basicConstraints and keyUsage of the CAs. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "cablekey/error.h"
#include "cablekey/pki.h"
#include "cablekey/util.h"
#include "pki/pki_int.h"

static const struct {
    const char *name;
    ck_pki_key_type type;
} key_names[] = {
    {"rsa", CK_PKI_KEY_RSA_2048},       {"rsa-2048", CK_PKI_KEY_RSA_2048},
    {"rsa-3072", CK_PKI_KEY_RSA_3072},  {"ec-p256", CK_PKI_KEY_EC_P256},
    {"ec-p384", CK_PKI_KEY_EC_P384},
};

int
ck_pki_key_type_parse(const char *name, ck_pki_key_type *out)
{
    for (size_t i = 0; name != NULL && i < sizeof(key_names) / sizeof(key_names[0]); i++) {
        if (strcmp(name, key_names[i].name) == 0) {
            *out = key_names[i].type;
            return 0;
        }
    }
    return ck_error_set(CK_ERR_UNSUPPORTED, "key type '%s' (use rsa, rsa-3072, ec-p256 or "
                                            "ec-p384)", name ? name : "");
}

const char *
ck_pki_key_type_name(ck_pki_key_type type)
{
    switch (type) {
    case CK_PKI_KEY_RSA_2048: return "rsa-2048";
    case CK_PKI_KEY_RSA_3072: return "rsa-3072";
    case CK_PKI_KEY_EC_P256: return "ec-p256";
    case CK_PKI_KEY_EC_P384: return "ec-p384";
    }
    return "unknown";
}

int
ck_pki_key_generate(ck_pki_key_type type, EVP_PKEY **out)
{
    *out = NULL;
    ERR_clear_error();
    switch (type) {
    case CK_PKI_KEY_RSA_2048: *out = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048); break;
    case CK_PKI_KEY_RSA_3072: *out = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072); break;
    case CK_PKI_KEY_EC_P256: *out = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"); break;
    case CK_PKI_KEY_EC_P384: *out = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384"); break;
    default: return ck_error_set(CK_ERR_UNSUPPORTED, "key type %d", (int)type);
    }
    if (*out == NULL)
        return ck_error_set_ssl(CK_ERR_CRYPTO, "generating a %s key", ck_pki_key_type_name(type));
    return 0;
}

/* ------------------------------------------------------------------------------------------- */

static bool
profile_is_ca(ck_pki_profile p)
{
    return p == CK_PKI_PROFILE_ROOT_CA || p == CK_PKI_PROFILE_CA;
}

static int
add_name_entry(X509_NAME *name, int nid, const char *value, const char *label)
{
    size_t len;

    if (value == NULL)
        return 0;
    len = strlen(value);
    /* RFC 5280 upper bounds: ub-organization-name 64, ub-common-name 64, country 2. */
    if (len == 0 || len > 64 || (nid == NID_countryName && len != 2))
        return ck_error_set(CK_ERR_INVAL, "certificate subject: %s must be %s", label,
                            nid == NID_countryName ? "2 letters" : "1..64 bytes");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)value[i];
        if (c < 0x20 || c == 0x7f)
            return ck_error_set(CK_ERR_INVAL, "certificate subject: %s has a control character",
                                label);
    }
    if (!X509_NAME_add_entry_by_NID(name, nid, MBSTRING_UTF8, (const unsigned char *)value, -1,
                                    -1, 0))
        return ck_error_set_ssl(CK_ERR_INVAL, "certificate subject: %s", label);
    return 0;
}

static int
build_subject(const ck_pki_cert_spec *spec, X509_NAME **out)
{
    X509_NAME *name = X509_NAME_new();
    int ret;

    *out = NULL;
    if (name == NULL)
        return ck_error_set(CK_ERR_NOMEM, "certificate subject");
    if (spec->org == NULL || spec->common_name == NULL) {
        ret = ck_error_set(CK_ERR_INVAL, "certificate subject: O and CN are required");
        goto out;
    }
    if ((ret = add_name_entry(name, NID_countryName, spec->country, "C")) != 0 ||
        (ret = add_name_entry(name, NID_organizationName, spec->org, "O")) != 0 ||
        (ret = add_name_entry(name, NID_organizationalUnitName, spec->org_unit, "OU")) != 0 ||
        (ret = add_name_entry(name, NID_commonName, spec->common_name, "CN")) != 0)
        goto out;
    *out = name;
    name = NULL;
out:
    X509_NAME_free(name);
    return ret;
}

/* 128 random bits, positive: RFC 5280 allows up to 20 octets, and CA/B asks for 64+ bits of
 * randomness so that serials cannot be predicted. */
static int
set_random_serial(X509 *x)
{
    unsigned char rnd[16];
    BIGNUM *bn = NULL;
    ASN1_INTEGER *serial = NULL;
    int ret = 0;

    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return ck_error_set_ssl(CK_ERR_CRYPTO, "serial number");
    rnd[0] |= 0x01; /* never zero, whatever the rest */
    if ((bn = BN_bin2bn(rnd, sizeof(rnd), NULL)) == NULL ||
        (serial = BN_to_ASN1_INTEGER(bn, NULL)) == NULL || !X509_set_serialNumber(x, serial))
        ret = ck_error_set_ssl(CK_ERR_NOMEM, "serial number");
    ASN1_INTEGER_free(serial);
    BN_free(bn);
    return ret;
}

static int
add_ext_i2d(X509 *x, int nid, void *value, int crit, const char *what)
{
    if (X509_add1_ext_i2d(x, nid, value, crit, X509V3_ADD_REPLACE) != 1)
        return ck_error_set_ssl(CK_ERR_ENCODE, "certificate extension %s", what);
    return 0;
}

static int
add_basic_constraints(X509 *x, const ck_pki_cert_spec *spec)
{
    BASIC_CONSTRAINTS *bc = BASIC_CONSTRAINTS_new();
    int ret;

    if (bc == NULL)
        return ck_error_set(CK_ERR_NOMEM, "basicConstraints");
    bc->ca = profile_is_ca(spec->profile) ? 0xff : 0;
    if (bc->ca && spec->path_len >= 0) {
        if ((bc->pathlen = ASN1_INTEGER_new()) == NULL ||
            !ASN1_INTEGER_set(bc->pathlen, spec->path_len)) {
            ret = ck_error_set(CK_ERR_NOMEM, "basicConstraints");
            goto out;
        }
    }
    ret = add_ext_i2d(x, NID_basic_constraints, bc, 1, "basicConstraints");
out:
    BASIC_CONSTRAINTS_free(bc);
    return ret;
}

/* Whether the subject key is RSA: from the key when there is one, else from the algorithm of
 * spec->spki (ck_pki_cert_issue without a key). rsaEncryption only, as EVP_PKEY_is_a(key, "RSA")
 * answers: an RSA-PSS key is restricted to signatures and gets no keyEncipherment either way. */
static bool
subject_is_rsa(const ck_pki_cert_spec *spec, EVP_PKEY *key)
{
    ASN1_OBJECT *obj = NULL;

    if (key != NULL)
        return EVP_PKEY_is_a(key, "RSA");
    if (spec->spki == NULL || !X509_PUBKEY_get0_param(&obj, NULL, NULL, NULL, spec->spki))
        return false;
    return OBJ_obj2nid(obj) == NID_rsaEncryption;
}

static int
add_key_usage(X509 *x, const ck_pki_cert_spec *spec, EVP_PKEY *key)
{
    ASN1_BIT_STRING *ku = ASN1_BIT_STRING_new();
    int bits[4], n = 0, ret = 0;

    if (ku == NULL)
        return ck_error_set(CK_ERR_NOMEM, "keyUsage");
    if (profile_is_ca(spec->profile)) {
        bits[n++] = 5; /* keyCertSign */
        bits[n++] = 6; /* cRLSign */
        bits[n++] = 0; /* digitalSignature: OCSP responses and CMS signed by the CA itself */
    } else {
        bits[n++] = 0; /* digitalSignature */
        if (subject_is_rsa(spec, key))
            bits[n++] = 2; /* keyEncipherment */
    }
    for (int i = 0; i < n; i++) {
        if (!ASN1_BIT_STRING_set_bit(ku, bits[i], 1)) {
            ret = ck_error_set(CK_ERR_NOMEM, "keyUsage");
            goto out;
        }
    }
    ret = add_ext_i2d(x, NID_key_usage, ku, 1, "keyUsage");
out:
    ASN1_BIT_STRING_free(ku);
    return ret;
}

static int
add_eku(X509 *x, const ck_pki_cert_spec *spec)
{
    EXTENDED_KEY_USAGE *eku = NULL;
    int nids[4], n = 0, ret = 0;

    switch (spec->profile) {
    case CK_PKI_PROFILE_KDC: nids[n++] = NID_pkInitKDC; break;
    case CK_PKI_PROFILE_CLIENT:
        nids[n++] = NID_pkInitClientAuth;
        nids[n++] = NID_client_auth; /* the same certificate may serve TLS client login */
        break;
    case CK_PKI_PROFILE_DEVICE: nids[n++] = NID_pkInitClientAuth; break;
    case CK_PKI_PROFILE_OPERATOR_DEVICE:
        nids[n++] = NID_pkInitClientAuth;
        nids[n++] = NID_client_auth; /* the device channel may use it for TLS client login */
        break;
    case CK_PKI_PROFILE_SERVER: nids[n++] = NID_server_auth; break;
    case CK_PKI_PROFILE_SIGNALING:
        nids[n++] = NID_server_auth;
        nids[n++] = NID_client_auth;
        nids[n++] = NID_ipsec_IKE;
        break;
    default: return 0; /* CAs: no EKU, which would constrain what they may issue */
    }
    if ((eku = sk_ASN1_OBJECT_new_null()) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "extendedKeyUsage");
    for (int i = 0; i < n; i++) {
        ASN1_OBJECT *o = OBJ_nid2obj(nids[i]);
        if (o == NULL || !sk_ASN1_OBJECT_push(eku, o)) {
            ret = ck_error_set(CK_ERR_NOMEM, "extendedKeyUsage");
            goto out;
        }
    }
    ret = add_ext_i2d(x, NID_ext_key_usage, eku, 0, "extendedKeyUsage");
out:
    /* OBJ_nid2obj returns static objects: freeing them is a no-op, as the stack's free is. */
    sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
    return ret;
}

static int
push_pkinit_san(GENERAL_NAMES *gens, const char *principal)
{
    ck_principal *p = NULL;
    uint8_t *der = NULL;
    size_t len = 0;
    ASN1_OBJECT *oid = NULL;
    ASN1_TYPE *val = NULL;
    ASN1_STRING *seq = NULL;
    GENERAL_NAME *gen = NULL;
    int ret;

    if ((ret = ck_principal_parse(principal, NULL, CK_PRINCIPAL_PARSE_REQUIRE_REALM, &p)) != 0) {
        ret = ck_error_set(ret, "id-pkinit-san %s: %s", principal, ck_error_context());
        goto out;
    }
    if ((ret = ck_pki_san_principal_encode(p, &der, &len)) != 0)
        goto out;
    if ((oid = OBJ_txt2obj("1.3.6.1.5.2.2", 1)) == NULL || (val = ASN1_TYPE_new()) == NULL ||
        (seq = ASN1_STRING_new()) == NULL || (gen = GENERAL_NAME_new()) == NULL ||
        len > INT_MAX || !ASN1_STRING_set(seq, der, (int)len)) {
        ret = ck_error_set(CK_ERR_NOMEM, "id-pkinit-san");
        goto out;
    }
    ASN1_TYPE_set(val, V_ASN1_SEQUENCE, seq);
    seq = NULL;
    if (!GENERAL_NAME_set0_othername(gen, oid, val)) {
        ret = ck_error_set(CK_ERR_NOMEM, "id-pkinit-san");
        goto out;
    }
    oid = NULL;
    val = NULL;
    if (!sk_GENERAL_NAME_push(gens, gen)) {
        ret = ck_error_set(CK_ERR_NOMEM, "id-pkinit-san");
        goto out;
    }
    gen = NULL;
    ret = 0;
out:
    GENERAL_NAME_free(gen);
    ASN1_STRING_free(seq);
    ASN1_TYPE_free(val);
    ASN1_OBJECT_free(oid);
    OPENSSL_free(der);
    ck_principal_free(p);
    return ret;
}

/* A DNS name as RFC 5280 §4.2.1.6 wants it: LDH labels of 1..63, total <= 253, no trailing dot;
 * a leading "*." wildcard label is allowed. */
static bool
dns_name_ok(const char *s)
{
    size_t len = strlen(s), label = 0;

    if (len == 0 || len > 253)
        return false;
    if (strncmp(s, "*.", 2) == 0)
        s += 2;
    for (const char *p = s;; p++) {
        if (*p == '.' || *p == '\0') {
            if (label == 0 || label > 63 || p[-1] == '-')
                return false;
            if (*p == '\0')
                return true;
            label = 0;
            continue;
        }
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              (*p == '-' && label > 0)))
            return false;
        label++;
    }
}

static int
push_dns_name(GENERAL_NAMES *gens, const char *dns)
{
    GENERAL_NAME *gen = NULL;
    ASN1_IA5STRING *ia5 = NULL;

    if (!dns_name_ok(dns))
        return ck_error_set(CK_ERR_INVAL, "bad DNS name '%s'", dns);
    if ((ia5 = ASN1_IA5STRING_new()) == NULL || !ASN1_STRING_set(ia5, dns, -1) ||
        (gen = GENERAL_NAME_new()) == NULL) {
        ASN1_IA5STRING_free(ia5);
        return ck_error_set(CK_ERR_NOMEM, "subjectAltName");
    }
    GENERAL_NAME_set0_value(gen, GEN_DNS, ia5);
    if (!sk_GENERAL_NAME_push(gens, gen)) {
        GENERAL_NAME_free(gen);
        return ck_error_set(CK_ERR_NOMEM, "subjectAltName");
    }
    return 0;
}

static int
add_san(X509 *x, const ck_pki_cert_spec *spec)
{
    GENERAL_NAMES *gens = NULL;
    int ret = 0;

    if ((spec->profile == CK_PKI_PROFILE_KDC || spec->profile == CK_PKI_PROFILE_CLIENT) &&
        spec->principal == NULL)
        return ck_error_set(CK_ERR_INVAL, "a %s certificate needs a principal name",
                            spec->profile == CK_PKI_PROFILE_KDC ? "KDC" : "client");
    if (spec->profile == CK_PKI_PROFILE_SERVER && spec->n_dns_names == 0)
        return ck_error_set(CK_ERR_INVAL, "a server certificate needs a DNS name");
    if (spec->n_dns_names > CK_PKI_MAX_DNS_NAMES)
        return ck_error_set(CK_ERR_LIMIT, "more than %d DNS names", CK_PKI_MAX_DNS_NAMES);
    if (spec->principal == NULL && spec->n_dns_names == 0)
        return 0;
    if (profile_is_ca(spec->profile))
        return ck_error_set(CK_ERR_INVAL, "a CA certificate carries no principal or DNS name");
    if ((gens = sk_GENERAL_NAME_new_null()) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "subjectAltName");
    if (spec->principal != NULL && (ret = push_pkinit_san(gens, spec->principal)) != 0)
        goto out;
    for (size_t i = 0; i < spec->n_dns_names; i++) {
        if ((ret = push_dns_name(gens, spec->dns_names[i])) != 0)
            goto out;
    }
    /* Critical when the subject DN is empty (RFC 5280); ours never is. */
    ret = add_ext_i2d(x, NID_subject_alt_name, gens, 0, "subjectAltName");
out:
    GENERAL_NAMES_free(gens);
    return ret;
}

static int
add_key_ids(X509 *x, X509 *issuer)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext = NULL;
    int ret = 0;

    X509V3_set_ctx(&ctx, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
    ext = X509V3_EXT_nconf_nid(NULL, &ctx, NID_subject_key_identifier, "hash");
    if (ext == NULL || !X509_add_ext(x, ext, -1)) {
        ret = ck_error_set_ssl(CK_ERR_ENCODE, "subjectKeyIdentifier");
        goto out;
    }
    X509_EXTENSION_free(ext);
    /* The issuer's key identifier only (no issuer name + serial), so a re-issued CA with the
     * same key still verifies what it signed. A root carries its own. */
    ext = X509V3_EXT_nconf_nid(NULL, &ctx, NID_authority_key_identifier, "keyid:always");
    if (ext == NULL || !X509_add_ext(x, ext, -1)) {
        ret = ck_error_set_ssl(CK_ERR_ENCODE, "authorityKeyIdentifier");
        goto out;
    }
out:
    X509_EXTENSION_free(ext);
    return ret;
}

/* Copies src (algorithm, parameters, key bits) into x's SubjectPublicKeyInfo without decoding
 * or encoding a key. 0, or -1 for parameters of an unexpected kind (the caller re-encodes). */
static int
copy_spki(X509 *x, const X509_PUBKEY *src)
{
    const ASN1_OBJECT *obj = NULL;
    const unsigned char *bits = NULL;
    const void *pval = NULL;
    X509_ALGOR *alg = NULL;
    ASN1_OBJECT *aobj = NULL;
    void *pv = NULL;
    unsigned char *enc = NULL;
    int len = 0, ptype = V_ASN1_UNDEF;

    if (!X509_PUBKEY_get0_param(NULL, &bits, &len, &alg, src) || bits == NULL || len <= 0)
        return -1;
    X509_ALGOR_get0(&obj, &ptype, &pval, alg);
    if ((aobj = OBJ_dup(obj)) == NULL)
        return -1;
    if (ptype == V_ASN1_OBJECT)       /* EC: the named curve */
        pv = OBJ_dup(pval);
    else if (ptype == V_ASN1_SEQUENCE) /* explicit parameters */
        pv = ASN1_STRING_dup(pval);
    else if (ptype != V_ASN1_NULL && ptype != V_ASN1_UNDEF) /* RSA: NULL */
        goto fail;
    if ((ptype == V_ASN1_OBJECT || ptype == V_ASN1_SEQUENCE) && pv == NULL)
        goto fail;
    if ((enc = OPENSSL_memdup(bits, (size_t)len)) == NULL)
        goto fail;
    if (!X509_PUBKEY_set0_param(X509_get_X509_PUBKEY(x), aobj, ptype, pv, enc, len))
        goto fail;
    return 0;
fail:
    ASN1_OBJECT_free(aobj);
    if (ptype == V_ASN1_OBJECT)
        ASN1_OBJECT_free(pv);
    else if (ptype == V_ASN1_SEQUENCE)
        ASN1_STRING_free(pv);
    OPENSSL_free(enc);
    ERR_clear_error();
    return -1;
}

static const EVP_MD *
signing_digest(EVP_PKEY *issuer_key)
{
    if (EVP_PKEY_is_a(issuer_key, "EC") && EVP_PKEY_get_bits(issuer_key) > 256)
        return EVP_sha384();
    return EVP_sha256();
}

int
ck_pki_cert_issue(const ck_pki_cert_spec *spec, EVP_PKEY *subject_key, X509 *issuer,
                  EVP_PKEY *issuer_key, X509 **out)
{
    X509 *x = NULL;
    X509_NAME *subject = NULL;
    int64_t not_after;
    int ret;

    *out = NULL;
    /* Without subject_key, spec->spki is the key; a self-signed root needs the key itself (it is
     * compared with issuer_key). */
    if (spec == NULL || issuer_key == NULL ||
        (subject_key == NULL && (spec->spki == NULL || issuer == NULL)))
        return ck_error_set(CK_ERR_INVAL, "certificate: missing key");
    if ((issuer == NULL) != (spec->profile == CK_PKI_PROFILE_ROOT_CA))
        return ck_error_set(CK_ERR_INVAL, "certificate: only a root CA is self-signed");
    if (issuer == NULL && !EVP_PKEY_eq(subject_key, issuer_key))
        return ck_error_set(CK_ERR_INVAL, "certificate: a self-signed root signs with its own "
                                          "key");
    if (issuer != NULL && X509_check_private_key(issuer, issuer_key) != 1) {
        ERR_clear_error();
        return ck_error_set(CK_ERR_INVAL, "certificate: the issuer key does not match the "
                                          "issuer certificate");
    }
    not_after = spec->not_after;
    if (issuer != NULL) {
        /* A certificate outliving its issuer cannot be verified after the issuer expires. */
        int64_t issuer_end = 0;
        struct tm tm;
        if (!ASN1_TIME_to_tm(X509_get0_notAfter(issuer), &tm)) {
            ret = ck_error_set(CK_ERR_DECODE, "issuer certificate: bad notAfter");
            goto out;
        }
        issuer_end = (int64_t)timegm(&tm);
        if (not_after > issuer_end)
            not_after = issuer_end;
    }
    if (spec->not_before >= not_after)
        return ck_error_set(CK_ERR_INVAL, "certificate: validity period is empty");
    if (spec->n_phone_ids > 0 && spec->profile != CK_PKI_PROFILE_OPERATOR_DEVICE)
        return ck_error_set(CK_ERR_INVAL, "certificate: only an operator device certificate "
                                          "carries phone IDs");
    if ((ret = build_subject(spec, &subject)) != 0)
        goto out;
    if ((x = X509_new()) == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "certificate");
        goto out;
    }
    if (!X509_set_version(x, X509_VERSION_3) || !X509_set_subject_name(x, subject) ||
        !X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) : subject)) {
        ret = ck_error_set_ssl(CK_ERR_ENCODE, "certificate");
        goto out;
    }
    /* The SPKI as given; re-encoding subject_key is the fallback, and there is none without it. */
    if ((spec->spki == NULL || copy_spki(x, spec->spki) != 0) &&
        (subject_key == NULL || !X509_set_pubkey(x, subject_key))) {
        ret = subject_key == NULL
                  ? ck_error_set(CK_ERR_ENCODE, "certificate: the subject public key info cannot "
                                                "be copied (unexpected algorithm parameters)")
                  : ck_error_set_ssl(CK_ERR_ENCODE, "certificate: subject public key");
        goto out;
    }
    if (ASN1_TIME_set(X509_getm_notBefore(x), (time_t)spec->not_before) == NULL ||
        ASN1_TIME_set(X509_getm_notAfter(x), (time_t)not_after) == NULL) {
        ret = ck_error_set_ssl(CK_ERR_ENCODE, "certificate");
        goto out;
    }
    if ((ret = set_random_serial(x)) != 0 || (ret = add_basic_constraints(x, spec)) != 0 ||
        (ret = add_key_usage(x, spec, subject_key)) != 0 || (ret = add_eku(x, spec)) != 0 ||
        (ret = add_san(x, spec)) != 0 || (ret = add_key_ids(x, issuer)) != 0)
        goto out;
    if (spec->profile == CK_PKI_PROFILE_OPERATOR_DEVICE &&
        (ret = ck_pki_phone_ids_ext(x, spec->phone_ids, spec->n_phone_ids)) != 0)
        goto out;
    if (X509_sign(x, issuer_key, signing_digest(issuer_key)) <= 0) {
        ret = ck_error_set_ssl(CK_ERR_CRYPTO, "signing the certificate");
        goto out;
    }
    *out = x;
    x = NULL;
    ret = 0;
out:
    ERR_clear_error();
    X509_NAME_free(subject);
    X509_free(x);
    return ret;
}
