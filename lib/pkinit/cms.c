/* CMS for PKINIT on OpenSSL's CMS API (LIBRARIES.md §3): SignedData in the RFC 4556 form and in
 * the PacketCable draft form, and EnvelopedData for RSA key transport replies.
 *
 * Verification checks the signature only (CMS_NO_SIGNER_CERT_VERIFY): chain validation is
 * ck_pkinit_verify_chain, which the KDC caches per thumbprint, so a repeat login costs one
 * signature verification and no path building. Everything the peer controls is bounded before
 * OpenSSL works on it: input size, certificate count, signer count, content size, signer key
 * size.
 *
 * Certificates are not decoded by d2i_CMS_ContentInfo: in OpenSSL 3.0 each one costs ~180 us
 * (its public key goes through the provider decoder framework; a SignedData without
 * certificates decodes in ~6 us). The ContentInfo is first read with RAW_CONTENT_INFO below,
 * which keeps every certificate as raw DER; the certificates are counted, hashed and taken from
 * the caller's per-worker cache (decoded on a miss), and the SignedData is re-encoded without
 * them for OpenSSL's CMS code, which gets them back as the `certs` argument of CMS_verify. The
 * signature never covers the certificates field (RFC 5652 §5.4), and every other field is
 * passed through byte for byte (ANY keeps the encoding as received). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1t.h>
#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "cablekey/error.h"
#include "cablekey/pkinit.h"
#include "cablekey/pkinit_asn1.h"
#include "cablekey/util.h"
#include "pkinit/pkinit_int.h"

/* Most RecipientInfos a client accepts in the KDC's EnvelopedData (the KDC sends one). */
#define CK_PKINIT_MAX_RECIPIENTS 4

/* ContentInfo/SignedData with the certificates kept as raw DER (see the top of the file). SET OF
 * ANY keeps each element's exact encoding; only the SignedData's own header is re-encoded. */
typedef struct {
    ASN1_INTEGER *version;
    STACK_OF(ASN1_TYPE) *digest_algorithms;
    ASN1_TYPE *encap_content_info;
    STACK_OF(ASN1_TYPE) *certificates; /* [0] IMPLICIT OPTIONAL */
    STACK_OF(ASN1_TYPE) *crls;         /* [1] IMPLICIT OPTIONAL */
    STACK_OF(ASN1_TYPE) *signer_infos;
} RAW_SIGNED_DATA;

ASN1_SEQUENCE(RAW_SIGNED_DATA) = {
    ASN1_SIMPLE(RAW_SIGNED_DATA, version, ASN1_INTEGER),
    ASN1_SET_OF(RAW_SIGNED_DATA, digest_algorithms, ASN1_ANY),
    ASN1_SIMPLE(RAW_SIGNED_DATA, encap_content_info, ASN1_ANY),
    ASN1_IMP_SET_OF_OPT(RAW_SIGNED_DATA, certificates, ASN1_ANY, 0),
    ASN1_IMP_SET_OF_OPT(RAW_SIGNED_DATA, crls, ASN1_ANY, 1),
    ASN1_SET_OF(RAW_SIGNED_DATA, signer_infos, ASN1_ANY),
} static_ASN1_SEQUENCE_END(RAW_SIGNED_DATA)

typedef struct {
    ASN1_OBJECT *content_type;
    RAW_SIGNED_DATA *content; /* [0] EXPLICIT */
} RAW_CONTENT_INFO;

ASN1_SEQUENCE(RAW_CONTENT_INFO) = {
    ASN1_SIMPLE(RAW_CONTENT_INFO, content_type, ASN1_OBJECT),
    ASN1_EXP(RAW_CONTENT_INFO, content, RAW_SIGNED_DATA, 0),
} static_ASN1_SEQUENCE_END(RAW_CONTENT_INFO)

/* A ContentInfo whose content stays raw: takes a bare SignedData out of a ContentInfo and puts
 * one back. RFC 4556 §3.2.3.2's EnvelopedData encrypts the SignedData itself (eContentType
 * id-signedData); MIT 1.20 and Heimdal do so, and MIT's client refuses a ContentInfo there. */
typedef struct {
    ASN1_OBJECT *content_type;
    ASN1_TYPE *content; /* [0] EXPLICIT */
} ANY_CONTENT_INFO;

ASN1_SEQUENCE(ANY_CONTENT_INFO) = {
    ASN1_SIMPLE(ANY_CONTENT_INFO, content_type, ASN1_OBJECT),
    ASN1_EXP(ANY_CONTENT_INFO, content, ASN1_ANY, 0),
} static_ASN1_SEQUENCE_END(ANY_CONTENT_INFO)

static void
any_content_info_free(ANY_CONTENT_INFO *ci)
{
    /* The content may be a SignedData of a ReplyKeyPack. */
    if (ci != NULL && ci->content != NULL && ci->content->type == V_ASN1_SEQUENCE)
        OPENSSL_cleanse((unsigned char *)ASN1_STRING_get0_data(ci->content->value.sequence),
                        (size_t)ASN1_STRING_length(ci->content->value.sequence));
    ASN1_item_free((ASN1_VALUE *)ci, ASN1_ITEM_rptr(ANY_CONTENT_INFO));
}

/* The SignedData inside a DER ContentInfo of type signedData: *sd points into *ci. */
static int
unwrap_signed_data(const uint8_t *der, size_t len, ANY_CONTENT_INFO **ci, const uint8_t **sd,
                   size_t *sd_len)
{
    const unsigned char *p = der;

    *ci = (ANY_CONTENT_INFO *)ASN1_item_d2i(NULL, &p, (long)len,
                                            ASN1_ITEM_rptr(ANY_CONTENT_INFO));
    if (*ci == NULL || p != der + len || OBJ_obj2nid((*ci)->content_type) != NID_pkcs7_signed ||
        (*ci)->content->type != V_ASN1_SEQUENCE) {
        ERR_clear_error();
        any_content_info_free(*ci);
        *ci = NULL;
        return CK_ERR_DECODE;
    }
    *sd = ASN1_STRING_get0_data((*ci)->content->value.sequence);
    *sd_len = (size_t)ASN1_STRING_length((*ci)->content->value.sequence);
    return 0;
}

/* A DER ContentInfo {signedData, sd} around a bare SignedData (checked by the verifier). */
static int
wrap_signed_data(const uint8_t *sd, size_t sd_len, uint8_t **out, size_t *out_len)
{
    ANY_CONTENT_INFO *ci = (ANY_CONTENT_INFO *)ASN1_item_new(ASN1_ITEM_rptr(ANY_CONTENT_INFO));
    ASN1_STRING *seq = ASN1_STRING_type_new(V_ASN1_SEQUENCE);
    unsigned char *der = NULL;
    int n = 0, ret;

    *out = NULL;
    *out_len = 0;
    /* ASN1_item_new allocated the (mandatory) content already. */
    if (ci == NULL || seq == NULL || sd_len > CK_PKINIT_CMS_MAX ||
        !ASN1_STRING_set(seq, sd, (int)sd_len) ||
        (ci->content == NULL && (ci->content = ASN1_TYPE_new()) == NULL)) {
        ret = ck_error_set(CK_ERR_NOMEM, "EnvelopedData: out of memory");
        goto out;
    }
    ASN1_OBJECT_free(ci->content_type);
    ci->content_type = OBJ_nid2obj(NID_pkcs7_signed);
    ASN1_TYPE_set(ci->content, V_ASN1_SEQUENCE, seq);
    seq = NULL;
    n = ASN1_item_i2d((ASN1_VALUE *)ci, &der, ASN1_ITEM_rptr(ANY_CONTENT_INFO));
    if (n <= 0) {
        ret = ck_error_set_ssl(CK_ERR_ENCODE, "EnvelopedData: cannot wrap the SignedData");
        goto out;
    }
    *out = ck_memdup(der, (size_t)n);
    if (*out == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "EnvelopedData: out of memory");
        goto out;
    }
    *out_len = (size_t)n;
    ret = 0;
out:
    if (der != NULL)
        OPENSSL_clear_free(der, (size_t)n);
    if (seq != NULL)
        OPENSSL_cleanse((unsigned char *)ASN1_STRING_get0_data(seq),
                        (size_t)ASN1_STRING_length(seq));
    ASN1_STRING_free(seq);
    any_content_info_free(ci);
    return ret;
}

static pthread_once_t oid_once = PTHREAD_ONCE_INIT;
static ASN1_OBJECT *ctype_oid[4]; /* indexed by ck_pkinit_ctype */

static void
oid_init(void)
{
    ctype_oid[CK_PKINIT_CT_AUTH_DATA] = ck_pkinit_oid_new(CK_OID_PKINIT_AUTH_DATA);
    ctype_oid[CK_PKINIT_CT_DHKEY_DATA] = ck_pkinit_oid_new(CK_OID_PKINIT_DHKEY_DATA);
    ctype_oid[CK_PKINIT_CT_RKEY_DATA] = ck_pkinit_oid_new(CK_OID_PKINIT_RKEY_DATA);
}

static const ASN1_OBJECT *
ctype_obj(ck_pkinit_ctype ctype)
{
    if (ctype < CK_PKINIT_CT_AUTH_DATA || ctype > CK_PKINIT_CT_RKEY_DATA)
        return NULL;
    if (pthread_once(&oid_once, oid_init) != 0)
        return NULL;
    return ctype_oid[ctype];
}

/* Wipes the eContent held by a SignedData before it is freed: the content may be a
 * ReplyKeyPack (KDC signing it, client verifying it). */
static void
cms_wipe_content(CMS_ContentInfo *cms)
{
    ASN1_OCTET_STRING **pos;

    if (cms == NULL || OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed)
        return;
    pos = CMS_get0_content(cms);
    if (pos != NULL && *pos != NULL && ASN1_STRING_length(*pos) > 0)
        OPENSSL_cleanse((unsigned char *)ASN1_STRING_get0_data(*pos),
                        (size_t)ASN1_STRING_length(*pos));
}

/* Serializes a ContentInfo within CK_PKINIT_CMS_MAX. The encoding may hold a secret content,
 * so OpenSSL's copy is wiped. */
static int
cms_to_der(CMS_ContentInfo *cms, uint8_t **out, size_t *out_len)
{
    unsigned char *der = NULL;
    int n = i2d_CMS_ContentInfo(cms, &der);

    if (n <= 0)
        return ck_error_set_ssl(CK_ERR_ENCODE, "CMS: encoding failed");
    if ((size_t)n > CK_PKINIT_CMS_MAX) {
        OPENSSL_clear_free(der, (size_t)n);
        return ck_error_set(CK_ERR_LIMIT, "CMS: %d bytes exceed %d", n, CK_PKINIT_CMS_MAX);
    }
    *out = ck_memdup(der, (size_t)n);
    OPENSSL_clear_free(der, (size_t)n);
    if (*out == NULL)
        return ck_error_set(CK_ERR_NOMEM, "CMS: out of memory");
    *out_len = (size_t)n;
    return 0;
}

/* Parses exactly len bytes of DER/BER ContentInfo of the given outer type. */
static int
cms_from_der(const uint8_t *der, size_t len, int type_nid, const char *what,
             CMS_ContentInfo **out)
{
    const unsigned char *p = der;
    CMS_ContentInfo *cms;

    *out = NULL;
    if (der == NULL || len == 0)
        return ck_error_set(CK_ERR_DECODE, "%s: empty", what);
    if (len > CK_PKINIT_CMS_MAX)
        return ck_error_set(CK_ERR_LIMIT, "%s: %zu bytes exceed %d", what, len,
                            CK_PKINIT_CMS_MAX);
    cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
    if (cms == NULL)
        return ck_error_set_ssl(CK_ERR_DECODE, "%s: not a CMS ContentInfo", what);
    if (p != der + len) {
        CMS_ContentInfo_free(cms);
        return ck_error_set(CK_ERR_DECODE, "%s: %zu trailing bytes", what,
                            (size_t)(der + len - p));
    }
    if (OBJ_obj2nid(CMS_get0_type(cms)) != type_nid) {
        CMS_ContentInfo_free(cms);
        return ck_error_set(CK_ERR_DECODE, "%s: ContentInfo is not %s", what,
                            OBJ_nid2sn(type_nid));
    }
    *out = cms;
    return 0;
}

/* Copies a memory BIO's contents into a malloc'd buffer. */
static int
bio_take(BIO *b, size_t max, const char *what, uint8_t **out, size_t *out_len)
{
    char *data = NULL;
    long n = BIO_get_mem_data(b, &data);

    if (n < 0)
        return ck_error_set(CK_ERR_CRYPTO, "%s: no output", what);
    if ((size_t)n > max)
        return ck_error_set(CK_ERR_LIMIT, "%s: content of %ld bytes exceeds %zu", what, n, max);
    *out = ck_memdup(data, (size_t)n);
    if (*out == NULL)
        return ck_error_set(CK_ERR_NOMEM, "%s: out of memory", what);
    *out_len = (size_t)n;
    return 0;
}

/* Digest for the RFC form: SHA-256, or SHA-384 with a key stronger than 128 bits (P-384),
 * following the usual pairing of ECDSA curves with hashes of matching strength. */
static const EVP_MD *
rfc_digest(EVP_PKEY *key)
{
    if (EVP_PKEY_is_a(key, "EC") && EVP_PKEY_get_security_bits(key) > 128)
        return EVP_sha384();
    return EVP_sha256();
}

int
ck_pkinit_cms_sign(const ck_pki_identity *id, ck_pkinit_ctype ctype, const uint8_t *content,
                   size_t content_len, unsigned flags, uint8_t **out, size_t *out_len)
{
    CMS_ContentInfo *cms = NULL;
    BIO *in = NULL;
    const ASN1_OBJECT *oid = ctype_obj(ctype);
    const EVP_MD *md;
    unsigned si_flags = CMS_BINARY | CMS_NOSMIMECAP;
    int ret;

    if (out == NULL || out_len == NULL)
        return ck_error_set(CK_ERR_INVAL, "CMS sign: no output");
    *out = NULL;
    *out_len = 0;
    if (id == NULL || id->key == NULL || id->cert == NULL || oid == NULL ||
        (content == NULL && content_len > 0) || (flags & ~CK_PKINIT_SIGN_PACKETCABLE) != 0)
        return ck_error_set(CK_ERR_INVAL, "CMS sign: bad arguments");
    if (content_len > CK_PKINIT_CONTENT_MAX)
        return ck_error_set(CK_ERR_LIMIT, "CMS sign: content of %zu bytes exceeds %d",
                            content_len, CK_PKINIT_CONTENT_MAX);
    if (X509_check_private_key(id->cert, id->key) != 1)
        return ck_error_set_ssl(CK_ERR_INVAL, "CMS sign: key does not match certificate");
    if (flags & CK_PKINIT_SIGN_PACKETCABLE) {
        /* PROTOCOL-NOTES §3.2: id-sha1, rsaEncryption, no signed attributes. OpenSSL writes
         * rsaEncryption as the signatureAlgorithm of PKCS#1 v1.5 RSA signers and version 1
         * with issuerAndSerialNumber unless CMS_USE_KEYID is given. */
        if (!EVP_PKEY_is_a(id->key, "RSA"))
            return ck_error_set(CK_ERR_UNSUPPORTED, "CMS sign: the PacketCable form needs RSA");
        md = EVP_sha1();
        si_flags |= CMS_NOATTR;
    } else {
        md = rfc_digest(id->key);
    }

    cms = CMS_sign(NULL, NULL, NULL, NULL, CMS_PARTIAL | CMS_BINARY);
    if (cms == NULL) {
        ret = ck_error_set_ssl(CK_ERR_CRYPTO, "CMS sign: cannot create SignedData");
        goto out;
    }
    if (!CMS_set1_eContentType(cms, oid) ||
        CMS_add1_signer(cms, id->cert, id->key, md, si_flags) == NULL) {
        ret = ck_error_set_ssl(CK_ERR_CRYPTO, "CMS sign: cannot add the signer");
        goto out;
    }
    for (int i = 0; id->chain != NULL && i < sk_X509_num(id->chain); i++) {
        X509 *c = sk_X509_value(id->chain, i);
        if (X509_cmp(c, id->cert) == 0)
            continue;
        if (!CMS_add1_cert(cms, c)) {
            ret = ck_error_set_ssl(CK_ERR_CRYPTO, "CMS sign: cannot add chain certificate %d",
                                   i);
            goto out;
        }
    }
    in = BIO_new_mem_buf(content_len > 0 ? content : (const uint8_t *)"", (int)content_len);
    if (in == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "CMS sign: out of memory");
        goto out;
    }
    if (!CMS_final(cms, in, NULL, CMS_BINARY)) {
        ret = ck_error_set_ssl(CK_ERR_CRYPTO, "CMS sign: signing failed");
        goto out;
    }
    ret = cms_to_der(cms, out, out_len);
out:
    BIO_free(in);
    cms_wipe_content(cms);
    CMS_ContentInfo_free(cms);
    return ret;
}

/* Digests a verifier accepts: the SHA-2 family always, SHA-1 on request (PacketCable), nothing
 * older or unknown. */
static bool
digest_allowed(int nid, unsigned flags)
{
    switch (nid) {
    case NID_sha224:
    case NID_sha256:
    case NID_sha384:
    case NID_sha512:
        return true;
    case NID_sha1:
        return (flags & CK_PKINIT_VERIFY_ALLOW_SHA1) != 0;
    default:
        return false;
    }
}

void
ck_pkinit_signed_free(ck_pkinit_signed *s)
{
    if (s == NULL)
        return;
    /* The content may be a ReplyKeyPack (the client verifying an rkeyData reply). */
    ck_free_secret(s->content, s->content_len);
    X509_free(s->signer);
    sk_X509_pop_free(s->certs, X509_free);
    free(s->cert_hash);
    free(s);
}

bool
ck_pkinit_signed_is_packetcable(const ck_pkinit_signed *s)
{
    return s != NULL && (!s->signed_attrs || s->digest_nid == NID_sha1);
}

/* RFC 5652 §5.3: with signed attributes, the content-type attribute must be present and equal
 * the eContentType; the signature covers it, so this binds the signature to the PKINIT type. */
static int
check_content_type_attr(CMS_SignerInfo *si, const ASN1_OBJECT *want)
{
    const ASN1_OBJECT *got;
    int idx = CMS_signed_get_attr_by_NID(si, NID_pkcs9_contentType, -1);

    if (idx < 0 || CMS_signed_get_attr_by_NID(si, NID_pkcs9_contentType, idx) >= 0)
        return ck_error_set(CK_ERR_PROTO, "SignedData: need one content-type attribute");
    got = CMS_signed_get0_data_by_OBJ(si, OBJ_nid2obj(NID_pkcs9_contentType), -3,
                                      V_ASN1_OBJECT);
    if (got == NULL || OBJ_cmp(got, want) != 0)
        return ck_error_set(CK_ERR_PROTO, "SignedData: content-type attribute differs from "
                                          "eContentType");
    return 0;
}

/* Reads the raw SignedData, takes its certificates out (hashed, from the cache), and leaves
 * *cms_out decoded from the rest. s->certs and s->cert_hash are filled. */
static int
split_certificates(const uint8_t *der, size_t len, ck_pkinit_certcache *cache,
                   ck_pkinit_signed *s, CMS_ContentInfo **cms_out)
{
    const unsigned char *p = der;
    RAW_CONTENT_INFO *raw = NULL;
    unsigned char *rest = NULL;
    int ret, n, rest_len;

    *cms_out = NULL;
    if (der == NULL || len == 0)
        return ck_error_set(CK_ERR_DECODE, "SignedData: empty");
    if (len > CK_PKINIT_CMS_MAX)
        return ck_error_set(CK_ERR_LIMIT, "SignedData: %zu bytes exceed %d", len,
                            CK_PKINIT_CMS_MAX);
    raw = (RAW_CONTENT_INFO *)ASN1_item_d2i(NULL, &p, (long)len,
                                            ASN1_ITEM_rptr(RAW_CONTENT_INFO));
    if (raw == NULL || p != der + len) {
        ret = ck_error_set_ssl(CK_ERR_DECODE, "SignedData: not a CMS SignedData ContentInfo");
        goto out;
    }
    if (OBJ_obj2nid(raw->content_type) != NID_pkcs7_signed) {
        ret = ck_error_set(CK_ERR_DECODE, "SignedData: ContentInfo is not signedData");
        goto out;
    }
    /* Cheap refusals first: nothing is decoded for a request that breaks a limit. */
    if (sk_ASN1_TYPE_num(raw->content->signer_infos) != 1) {
        ret = ck_error_set(CK_ERR_PROTO, "SignedData: %d signers, need exactly 1",
                           sk_ASN1_TYPE_num(raw->content->signer_infos));
        goto out;
    }
    n = raw->content->certificates != NULL ? sk_ASN1_TYPE_num(raw->content->certificates) : 0;
    if (n > CK_PKINIT_MAX_CERTS) {
        ret = ck_error_set(CK_ERR_LIMIT, "SignedData: %d certificates, at most %d", n,
                           CK_PKINIT_MAX_CERTS);
        goto out;
    }
    s->certs = sk_X509_new_reserve(NULL, n > 0 ? n : 1);
    s->cert_hash = calloc(n > 0 ? (size_t)n : 1, sizeof(*s->cert_hash));
    if (s->certs == NULL || s->cert_hash == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "SignedData: out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        const ASN1_TYPE *t = sk_ASN1_TYPE_value(raw->content->certificates, i);
        const ASN1_STRING *c;
        X509 *x = NULL;

        /* CertificateChoices: only the plain certificate (a SEQUENCE) is used by PKINIT. */
        if (t->type != V_ASN1_SEQUENCE) {
            ret = ck_error_set(CK_ERR_PROTO, "SignedData: certificate %d is not X.509", i);
            goto out;
        }
        c = t->value.sequence;
        if ((ret = ck_pkinit_sha256(ASN1_STRING_get0_data(c), (size_t)ASN1_STRING_length(c),
                                    s->cert_hash[i])) != 0 ||
            (ret = ck_pkinit_certcache_get(cache, s->cert_hash[i], ASN1_STRING_get0_data(c),
                                           (size_t)ASN1_STRING_length(c), &x)) != 0) {
            ret = ck_error_set(ret, "SignedData certificate %d: %s", i, ck_error_context());
            goto out;
        }
        sk_X509_push(s->certs, x); /* cannot fail: reserved */
    }
    sk_ASN1_TYPE_pop_free(raw->content->certificates, ASN1_TYPE_free);
    raw->content->certificates = NULL;
    sk_ASN1_TYPE_pop_free(raw->content->crls, ASN1_TYPE_free);
    raw->content->crls = NULL;
    rest_len = ASN1_item_i2d((ASN1_VALUE *)raw, &rest, ASN1_ITEM_rptr(RAW_CONTENT_INFO));
    if (rest_len <= 0) {
        ret = ck_error_set_ssl(CK_ERR_ENCODE, "SignedData: re-encoding failed");
        goto out;
    }
    p = rest;
    *cms_out = d2i_CMS_ContentInfo(NULL, &p, rest_len);
    if (*cms_out == NULL || p != rest + rest_len) {
        CMS_ContentInfo_free(*cms_out);
        *cms_out = NULL;
        ret = ck_error_set_ssl(CK_ERR_DECODE, "SignedData: not a CMS SignedData");
        goto out;
    }
    ret = 0;
out:
    /* rest holds the eContent, which may be a ReplyKeyPack. */
    if (rest != NULL)
        OPENSSL_clear_free(rest, (size_t)rest_len);
    if (raw != NULL && raw->content != NULL && raw->content->encap_content_info != NULL &&
        raw->content->encap_content_info->type == V_ASN1_SEQUENCE) {
        ASN1_STRING *e = raw->content->encap_content_info->value.sequence;
        OPENSSL_cleanse((unsigned char *)ASN1_STRING_get0_data(e), (size_t)ASN1_STRING_length(e));
    }
    ASN1_item_free((ASN1_VALUE *)raw, ASN1_ITEM_rptr(RAW_CONTENT_INFO));
    return ret;
}

int
ck_pkinit_cms_verify(const uint8_t *der, size_t len, ck_pkinit_ctype ctype, unsigned flags,
                     ck_pkinit_certcache *cache, ck_pkinit_signed **out)
{
    CMS_ContentInfo *cms = NULL;
    STACK_OF(CMS_SignerInfo) *sis;
    CMS_SignerInfo *si;
    ASN1_OCTET_STRING **pos;
    X509_ALGOR *dig = NULL, *sig = NULL;
    EVP_PKEY *spk = NULL;
    X509 *signer = NULL;
    BIO *bout = NULL;
    ck_pkinit_signed *s = NULL;
    const ASN1_OBJECT *oid = ctype_obj(ctype);
    int ret, idx;

    if (out == NULL)
        return ck_error_set(CK_ERR_INVAL, "CMS verify: no output");
    *out = NULL;
    if (oid == NULL || (flags & ~CK_PKINIT_VERIFY_ALLOW_SHA1) != 0)
        return ck_error_set(CK_ERR_INVAL, "CMS verify: bad arguments");
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return ck_error_set(CK_ERR_NOMEM, "SignedData: out of memory");
    if ((ret = split_certificates(der, len, cache, s, &cms)) != 0)
        goto out;
    if (OBJ_cmp(CMS_get0_eContentType(cms), oid) != 0) {
        ret = ck_error_set(CK_ERR_PROTO, "SignedData: eContentType is not %s",
                           ctype == CK_PKINIT_CT_AUTH_DATA    ? "id-pkinit-authData"
                           : ctype == CK_PKINIT_CT_DHKEY_DATA ? "id-pkinit-DHKeyData"
                                                              : "id-pkinit-rkeyData");
        goto out;
    }
    pos = CMS_get0_content(cms);
    if (pos == NULL || *pos == NULL) {
        ret = ck_error_set(CK_ERR_DECODE, "SignedData: no embedded content");
        goto out;
    }
    if (ASN1_STRING_length(*pos) > CK_PKINIT_CONTENT_MAX) {
        ret = ck_error_set(CK_ERR_LIMIT, "SignedData: content of %d bytes exceeds %d",
                           ASN1_STRING_length(*pos), CK_PKINIT_CONTENT_MAX);
        goto out;
    }
    sis = CMS_get0_SignerInfos(cms);
    if (sk_CMS_SignerInfo_num(sis) != 1) {
        ret = ck_error_set(CK_ERR_PROTO, "SignedData: %d signers, need exactly 1",
                           sk_CMS_SignerInfo_num(sis));
        goto out;
    }
    si = sk_CMS_SignerInfo_value(sis, 0);
    CMS_SignerInfo_get0_algs(si, NULL, NULL, &dig, &sig);
    s->digest_nid = dig != NULL ? OBJ_obj2nid(dig->algorithm) : NID_undef;
    if (!digest_allowed(s->digest_nid, flags)) {
        ret = ck_error_set(CK_ERR_POLICY, "SignedData: digest %s not accepted",
                           s->digest_nid == NID_undef ? "(unknown)" : OBJ_nid2sn(s->digest_nid));
        goto out;
    }
    /* Matches the SignerInfo's sid against the carried certificates only. */
    if (CMS_set1_signers_certs(cms, s->certs, CMS_NOINTERN) < 0) {
        ret = ck_error_set_ssl(CK_ERR_PROTO, "SignedData: signer certificate lookup failed");
        goto out;
    }
    CMS_SignerInfo_get0_algs(si, &spk, &signer, NULL, NULL);
    idx = -1;
    for (int i = 0; idx < 0 && signer != NULL && i < sk_X509_num(s->certs); i++)
        if (sk_X509_value(s->certs, i) == signer)
            idx = i;
    if (signer == NULL || spk == NULL || idx < 0) {
        ret = ck_error_set(CK_ERR_PROTO, "SignedData: signer certificate not carried");
        goto out;
    }
    if (EVP_PKEY_get_bits(spk) > CK_PKINIT_MAX_KEY_BITS) {
        ret = ck_error_set(CK_ERR_PROTO, "SignedData: signer key of %d bits exceeds %d",
                           EVP_PKEY_get_bits(spk), CK_PKINIT_MAX_KEY_BITS);
        goto out;
    }
    s->signer_index = (size_t)idx;
    s->signed_attrs = CMS_signed_get_attr_count(si) > 0;
    if (s->signed_attrs && (ret = check_content_type_attr(si, oid)) != 0)
        goto out;
    bout = BIO_new(BIO_s_secmem()); /* wiped on free, see cms_wipe_content */
    if (bout == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "SignedData: out of memory");
        goto out;
    }
    if (CMS_verify(cms, s->certs, NULL, NULL, bout,
                   CMS_BINARY | CMS_NO_SIGNER_CERT_VERIFY | CMS_NOINTERN) != 1) {
        ret = ck_error_set_ssl(CK_ERR_INTEGRITY, "SignedData: signature does not verify");
        goto out;
    }
    if ((ret = bio_take(bout, CK_PKINIT_CONTENT_MAX, "SignedData", &s->content,
                        &s->content_len)) != 0)
        goto out;
    if (!X509_up_ref(signer)) {
        ret = ck_error_set(CK_ERR_CRYPTO, "SignedData: cannot reference the signer");
        goto out;
    }
    s->signer = signer;
    *out = s;
    s = NULL;
    ret = 0;
out:
    ERR_clear_error();
    BIO_free(bout);
    cms_wipe_content(cms);
    CMS_ContentInfo_free(cms);
    ck_pkinit_signed_free(s);
    return ret;
}

int
ck_pkinit_cms_pick_cipher(const STACK_OF(X509_ALGOR) *supported_cms_types)
{
    bool aes = false, des3 = false;

    for (int i = 0; i < sk_X509_ALGOR_num(supported_cms_types); i++) {
        const X509_ALGOR *alg = sk_X509_ALGOR_value(supported_cms_types, i);
        switch (OBJ_obj2nid(alg->algorithm)) {
        case NID_aes_128_cbc:
        case NID_aes_192_cbc:
        case NID_aes_256_cbc:
            aes = true;
            break;
        case NID_des_ede3_cbc:
            des3 = true;
            break;
        default:
            break;
        }
    }
    return des3 && !aes ? NID_des_ede3_cbc : NID_aes_256_cbc;
}

int
ck_pkinit_cms_envelope(X509 *recipient, const uint8_t *inner, size_t inner_len, int cipher_nid,
                       unsigned flags, uint8_t **out, size_t *out_len)
{
    STACK_OF(X509) *recips = NULL;
    CMS_ContentInfo *cms = NULL;
    ANY_CONTENT_INFO *ci = NULL;
    const EVP_CIPHER *cipher;
    const uint8_t *plain = inner;
    size_t plain_len = inner_len;
    EVP_PKEY *rk;
    BIO *in = NULL;
    int ret;

    if (out == NULL || out_len == NULL)
        return ck_error_set(CK_ERR_INVAL, "CMS envelope: no output");
    *out = NULL;
    *out_len = 0;
    if (recipient == NULL || inner == NULL || inner_len == 0 ||
        (flags & ~CK_PKINIT_ENVELOPE_CONTENTINFO) != 0)
        return ck_error_set(CK_ERR_INVAL, "CMS envelope: bad arguments");
    if (inner_len > CK_PKINIT_CMS_MAX)
        return ck_error_set(CK_ERR_LIMIT, "CMS envelope: %zu bytes exceed %d", inner_len,
                            CK_PKINIT_CMS_MAX);
    if (cipher_nid != NID_aes_256_cbc && cipher_nid != NID_aes_128_cbc &&
        cipher_nid != NID_des_ede3_cbc)
        return ck_error_set(CK_ERR_UNSUPPORTED, "CMS envelope: cipher %d not supported",
                            cipher_nid);
    rk = X509_get0_pubkey(recipient);
    if (rk == NULL || !EVP_PKEY_is_a(rk, "RSA"))
        return ck_error_set(CK_ERR_UNSUPPORTED, "CMS envelope: key transport needs an RSA "
                                                "recipient");
    if (EVP_PKEY_get_bits(rk) > CK_PKINIT_MAX_KEY_BITS)
        return ck_error_set(CK_ERR_LIMIT, "CMS envelope: recipient key too large");
    if (!(flags & CK_PKINIT_ENVELOPE_CONTENTINFO) &&
        unwrap_signed_data(inner, inner_len, &ci, &plain, &plain_len) != 0)
        return ck_error_set(CK_ERR_INVAL, "CMS envelope: inner is not a SignedData ContentInfo");
    cipher = EVP_get_cipherbynid(cipher_nid);
    recips = sk_X509_new_null();
    in = BIO_new_mem_buf(plain, (int)plain_len);
    if (cipher == NULL || recips == NULL || in == NULL || !sk_X509_push(recips, recipient)) {
        ret = ck_error_set(CK_ERR_NOMEM, "CMS envelope: out of memory");
        goto out;
    }
    cms = CMS_encrypt(recips, NULL, cipher, CMS_BINARY | CMS_PARTIAL);
    if (cms == NULL || !CMS_set1_eContentType(cms, OBJ_nid2obj(NID_pkcs7_signed)) ||
        !CMS_final(cms, in, NULL, CMS_BINARY)) {
        ret = ck_error_set_ssl(CK_ERR_CRYPTO, "CMS envelope: encryption failed");
        goto out;
    }
    ret = cms_to_der(cms, out, out_len);
out:
    BIO_free(in);
    sk_X509_free(recips); /* recipient is borrowed */
    CMS_ContentInfo_free(cms);
    any_content_info_free(ci);
    return ret;
}

int
ck_pkinit_cms_decrypt(const ck_pki_identity *id, const uint8_t *der, size_t len, uint8_t **out,
                      size_t *out_len)
{
    CMS_ContentInfo *cms = NULL;
    STACK_OF(CMS_RecipientInfo) *ris;
    ANY_CONTENT_INFO *ci = NULL;
    uint8_t *plain = NULL;
    const uint8_t *sd;
    size_t plain_len = 0, sd_len;
    BIO *bout = NULL;
    int ret, n;

    if (out == NULL || out_len == NULL)
        return ck_error_set(CK_ERR_INVAL, "CMS decrypt: no output");
    *out = NULL;
    *out_len = 0;
    if (id == NULL || id->key == NULL || id->cert == NULL)
        return ck_error_set(CK_ERR_INVAL, "CMS decrypt: bad arguments");
    if ((ret = cms_from_der(der, len, NID_pkcs7_enveloped, "EnvelopedData", &cms)) != 0)
        return ret;
    ris = CMS_get0_RecipientInfos(cms);
    n = sk_CMS_RecipientInfo_num(ris);
    if (n < 1 || n > CK_PKINIT_MAX_RECIPIENTS) {
        ret = ck_error_set(n < 1 ? CK_ERR_PROTO : CK_ERR_LIMIT,
                           "EnvelopedData: %d recipients, need 1..%d", n,
                           CK_PKINIT_MAX_RECIPIENTS);
        goto out;
    }
    if (OBJ_obj2nid(CMS_get0_eContentType(cms)) != NID_pkcs7_signed) {
        ret = ck_error_set(CK_ERR_PROTO, "EnvelopedData: content is not id-signedData");
        goto out;
    }
    bout = BIO_new(BIO_s_secmem()); /* the plaintext holds the ReplyKeyPack */
    if (bout == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "EnvelopedData: out of memory");
        goto out;
    }
    if (CMS_decrypt(cms, id->key, id->cert, NULL, bout, CMS_BINARY) != 1) {
        ret = ck_error_set_ssl(CK_ERR_INTEGRITY, "EnvelopedData: cannot decrypt");
        goto out;
    }
    if ((ret = bio_take(bout, CK_PKINIT_CMS_MAX, "EnvelopedData", &plain, &plain_len)) != 0)
        goto out;
    /* A bare SignedData (RFC 4556, MIT, Heimdal) gets its ContentInfo back; a ContentInfo
     * (pk-init drafts) is returned as it is. */
    if (unwrap_signed_data(plain, plain_len, &ci, &sd, &sd_len) == 0) {
        *out = plain;
        *out_len = plain_len;
        plain = NULL;
        ret = 0;
    } else {
        ret = wrap_signed_data(plain, plain_len, out, out_len);
    }
out:
    ck_free_secret(plain, plain_len);
    any_content_info_free(ci);
    BIO_free(bout);
    CMS_ContentInfo_free(cms);
    return ret;
}
