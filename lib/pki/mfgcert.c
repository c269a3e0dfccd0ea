/* A manufacturer certificate read without decoding its public key, for the provisioning signer
 * (ck_pki_operator_issue_der). OpenSSL 3's X509_PUBKEY decodes the key in its d2i callback
 * through OSSL_DECODER_CTX_new_for_pkey, which walks every provider's decoders: most of the CPU of
 * an operator certificate. The signer needs only the subject (the MAC) and the
 * SubjectPublicKeyInfo as bytes, so this template mirrors RFC 5280's Certificate with its own
 * SubjectPublicKeyInfo (an algorithm and a BIT STRING, nothing decoded behind them). */
#include <limits.h>
#include <string.h>

#include <openssl/asn1t.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "cablekey/error.h"
#include "cablekey/pki.h"
#include "pki/pki_int.h"

/* SubjectPublicKeyInfo ::= SEQUENCE {
 *     algorithm         AlgorithmIdentifier,
 *     subjectPublicKey  BIT STRING } */
typedef struct {
    X509_ALGOR *algorithm;
    ASN1_BIT_STRING *public_key;
} CK_MFG_SPKI;

ASN1_SEQUENCE(CK_MFG_SPKI) = {
    ASN1_SIMPLE(CK_MFG_SPKI, algorithm, X509_ALGOR),
    ASN1_SIMPLE(CK_MFG_SPKI, public_key, ASN1_BIT_STRING),
} static_ASN1_SEQUENCE_END(CK_MFG_SPKI)

/* Validity ::= SEQUENCE { notBefore Time, notAfter Time } */
typedef struct {
    ASN1_TIME *not_before;
    ASN1_TIME *not_after;
} CK_MFG_VALIDITY;

ASN1_SEQUENCE(CK_MFG_VALIDITY) = {
    ASN1_SIMPLE(CK_MFG_VALIDITY, not_before, ASN1_TIME),
    ASN1_SIMPLE(CK_MFG_VALIDITY, not_after, ASN1_TIME),
} static_ASN1_SEQUENCE_END(CK_MFG_VALIDITY)

/* TBSCertificate ::= SEQUENCE {
 *     version          [0] EXPLICIT Version DEFAULT v1,
 *     serialNumber         CertificateSerialNumber,
 *     signature            AlgorithmIdentifier,
 *     issuer               Name,
 *     validity             Validity,
 *     subject              Name,
 *     subjectPublicKeyInfo SubjectPublicKeyInfo,
 *     issuerUniqueID   [1] IMPLICIT UniqueIdentifier OPTIONAL,
 *     subjectUniqueID  [2] IMPLICIT UniqueIdentifier OPTIONAL,
 *     extensions       [3] EXPLICIT Extensions OPTIONAL }
 * The module (PKIX1Explicit88) is EXPLICIT TAGS; the unique IDs are marked IMPLICIT. The
 * same tagging as OpenSSL's X509_CINF. */
typedef struct {
    ASN1_INTEGER *version;
    ASN1_INTEGER *serial;
    X509_ALGOR *signature;
    X509_NAME *issuer;
    CK_MFG_VALIDITY *validity;
    X509_NAME *subject;
    CK_MFG_SPKI *spki;
    ASN1_BIT_STRING *issuer_uid;
    ASN1_BIT_STRING *subject_uid;
    STACK_OF(X509_EXTENSION) *extensions;
} CK_MFG_TBS;

ASN1_SEQUENCE(CK_MFG_TBS) = {
    ASN1_EXP_OPT(CK_MFG_TBS, version, ASN1_INTEGER, 0),
    ASN1_SIMPLE(CK_MFG_TBS, serial, ASN1_INTEGER),
    ASN1_SIMPLE(CK_MFG_TBS, signature, X509_ALGOR),
    ASN1_SIMPLE(CK_MFG_TBS, issuer, X509_NAME),
    ASN1_SIMPLE(CK_MFG_TBS, validity, CK_MFG_VALIDITY),
    ASN1_SIMPLE(CK_MFG_TBS, subject, X509_NAME),
    ASN1_SIMPLE(CK_MFG_TBS, spki, CK_MFG_SPKI),
    ASN1_IMP_OPT(CK_MFG_TBS, issuer_uid, ASN1_BIT_STRING, 1),
    ASN1_IMP_OPT(CK_MFG_TBS, subject_uid, ASN1_BIT_STRING, 2),
    ASN1_EXP_SEQUENCE_OF_OPT(CK_MFG_TBS, extensions, X509_EXTENSION, 3),
} static_ASN1_SEQUENCE_END(CK_MFG_TBS)

/* Certificate ::= SEQUENCE {
 *     tbsCertificate       TBSCertificate,
 *     signatureAlgorithm   AlgorithmIdentifier,
 *     signatureValue       BIT STRING } */
typedef struct ck_pki_mfg_cert CK_MFG_CERT;
struct ck_pki_mfg_cert {
    CK_MFG_TBS *tbs;
    X509_ALGOR *sig_alg;
    ASN1_BIT_STRING *signature;
};

ASN1_SEQUENCE(CK_MFG_CERT) = {
    ASN1_SIMPLE(CK_MFG_CERT, tbs, CK_MFG_TBS),
    ASN1_SIMPLE(CK_MFG_CERT, sig_alg, X509_ALGOR),
    ASN1_SIMPLE(CK_MFG_CERT, signature, ASN1_BIT_STRING),
} static_ASN1_SEQUENCE_END(CK_MFG_CERT)

void
ck_pki_mfg_cert_free(ck_pki_mfg_cert *c)
{
    ASN1_item_free((ASN1_VALUE *)c, ASN1_ITEM_rptr(CK_MFG_CERT));
}

int
ck_pki_mfg_cert_decode(const uint8_t *der, size_t len, ck_pki_mfg_cert **out)
{
    const unsigned char *p = der;
    CK_MFG_CERT *c = NULL;
    long version = 0;
    int ret = 0;

    *out = NULL;
    if (der == NULL || len == 0)
        return ck_error_set(CK_ERR_DECODE, "manufacturer certificate: empty");
    if (len > CK_PKI_MAX_FILE)
        return ck_error_set(CK_ERR_LIMIT, "manufacturer certificate: %zu bytes", len);
    c = (CK_MFG_CERT *)ASN1_item_d2i(NULL, &p, (long)len, ASN1_ITEM_rptr(CK_MFG_CERT));
    /* One certificate and nothing after it, as d2i_X509 plus the length check was. */
    if (c == NULL || p != der + len) {
        ret = ck_error_set(CK_ERR_DECODE, "manufacturer certificate: not one DER certificate");
        goto out;
    }
    /* v1, v2 or v3 (0..2); a larger or negative version is no X.509 certificate we know. */
    if (c->tbs->version != NULL)
        version = ASN1_INTEGER_get(c->tbs->version);
    if (version < 0 || version > 2) {
        ret = ck_error_set(CK_ERR_DECODE, "manufacturer certificate: version field %ld "
                                          "(0..2 expected)", version);
        goto out;
    }
    *out = c;
    c = NULL;
out:
    ERR_clear_error();
    ck_pki_mfg_cert_free(c);
    return ret;
}

const X509_NAME *
ck_pki_mfg_cert_subject(const ck_pki_mfg_cert *c)
{
    return c->tbs->subject;
}

/* A named curve OpenSSL implements: what decoding the key would have required. */
static bool
known_curve(int nid)
{
    EC_builtin_curve curves[128];
    size_t n = EC_get_builtin_curves(curves, sizeof(curves) / sizeof(curves[0]));

    for (size_t i = 0; nid != NID_undef && i < n && i < sizeof(curves) / sizeof(curves[0]); i++) {
        if (curves[i].nid == nid)
            return true;
    }
    return false;
}

int
ck_pki_mfg_cert_spki(const ck_pki_mfg_cert *c, X509_PUBKEY **out)
{
    const CK_MFG_SPKI *spki = c->tbs->spki;
    const ASN1_OBJECT *obj = NULL;
    const void *pval = NULL;
    ASN1_OBJECT *aobj = NULL, *curve = NULL;
    X509_PUBKEY *pk = NULL;
    unsigned char *bits = NULL;
    char name[80];
    int ptype = V_ASN1_UNDEF, nid, len, ret = 0;

    *out = NULL;
    X509_ALGOR_get0(&obj, &ptype, &pval, spki->algorithm);
    nid = OBJ_obj2nid(obj);
    if (nid == NID_rsaEncryption) {
        /* RFC 3279 writes NULL; some encoders leave it out, which OpenSSL's decoder accepts too.
         * Either is copied as it is. */
        if (ptype != V_ASN1_NULL && ptype != V_ASN1_UNDEF)
            return ck_error_set(CK_ERR_POLICY, "manufacturer certificate: rsaEncryption key "
                                               "with parameters");
    } else if (nid == NID_X9_62_id_ecPublicKey) {
        if (ptype != V_ASN1_OBJECT)
            return ck_error_set(CK_ERR_POLICY, "manufacturer certificate: EC key without a "
                                               "named curve");
        if (!known_curve(OBJ_obj2nid(pval))) {
            OBJ_obj2txt(name, sizeof(name), pval, 0);
            return ck_error_set(CK_ERR_POLICY, "manufacturer certificate: EC curve %s is not "
                                               "supported", name);
        }
    } else {
        OBJ_obj2txt(name, sizeof(name), obj, 0);
        return ck_error_set(CK_ERR_POLICY, "manufacturer certificate: %s keys are not accepted "
                                           "(RSA or EC only)", name);
    }
    len = ASN1_STRING_length(spki->public_key);
    /* RSA and EC public keys are whole octets: unused bits mean a malformed key. */
    if (len <= 0 || ((spki->public_key->flags & ASN1_STRING_FLAG_BITS_LEFT) &&
                     (spki->public_key->flags & 0x07) != 0))
        return ck_error_set(CK_ERR_DECODE, "manufacturer certificate: empty or partial public "
                                           "key");
    if ((aobj = OBJ_dup(obj)) == NULL || (ptype == V_ASN1_OBJECT && (curve = OBJ_dup(pval)) ==
                                          NULL) ||
        (bits = OPENSSL_memdup(ASN1_STRING_get0_data(spki->public_key), (size_t)len)) == NULL ||
        (pk = X509_PUBKEY_new()) == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "manufacturer certificate: public key");
        goto out;
    }
    if (!X509_PUBKEY_set0_param(pk, aobj, ptype, curve, bits, len)) {
        ret = ck_error_set_ssl(CK_ERR_NOMEM, "manufacturer certificate: public key");
        goto out;
    }
    /* Owned by pk now. */
    aobj = NULL;
    curve = NULL;
    bits = NULL;
    *out = pk;
    pk = NULL;
out:
    ERR_clear_error();
    X509_PUBKEY_free(pk);
    OPENSSL_free(bits);
    ASN1_OBJECT_free(curve);
    ASN1_OBJECT_free(aobj);
    return ret;
}
