/* PKINIT ASN.1 layer: captured MIT and Heimdal messages (decode, byte-identical re-encode, field
 * cross-checks), from-scratch construction of every type including both pk-init draft forms,
 * secret wiping on free, per-type limits and hostile inputs. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/cms.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>

#include "ck_test.h"
#include "cablekey/error.h"
#include "cablekey/krb5_asn1.h"
#include "cablekey/pkinit_asn1.h"
#include "cablekey/pkinit_kdf.h"

/* ---- secret-wipe observation ---------------------------------------------------------------
 * OpenSSL's allocator is replaced before main() so the test can look at a buffer at the moment
 * OpenSSL frees it: the watched buffer must be all zeros by then. */
static const void *watch_ptr;
static size_t watch_len;
static int watch_freed, watch_zero;

static void *
t_malloc(size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    return malloc(n);
}

static void *
t_realloc(void *p, size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    if (p != NULL && p == watch_ptr)
        watch_ptr = NULL; /* moved: stop watching rather than report garbage */
    return realloc(p, n);
}

static void
t_free(void *p, const char *file, int line)
{
    (void)file;
    (void)line;
    if (p != NULL && p == watch_ptr) {
        const volatile uint8_t *b = p;
        watch_freed = 1;
        watch_zero = 1;
        for (size_t i = 0; i < watch_len; i++)
            if (b[i] != 0)
                watch_zero = 0;
        watch_ptr = NULL;
    }
    free(p);
}

__attribute__((constructor)) static void
install_allocator(void)
{
    CRYPTO_set_mem_functions(t_malloc, t_realloc, t_free);
}

static void
watch(const void *p, size_t len)
{
    watch_ptr = p;
    watch_len = len;
    watch_freed = watch_zero = 0;
}

/* ---- helpers -------------------------------------------------------------------------------- */

static uint8_t *
load(const char *name, size_t *len)
{
    char path[256];
    FILE *f;
    uint8_t *buf = NULL;
    long n;

    snprintf(path, sizeof(path), "vectors/pkinit/%s", name);
    *len = 0;
    if ((f = fopen(path, "rb")) == NULL) {
        fprintf(stderr, "  cannot open %s\n", path);
        ck_test_case_failed = 1;
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)n)) != NULL && fread(buf, 1, (size_t)n, f) == (size_t)n) {
        *len = (size_t)n;
    } else {
        free(buf);
        buf = NULL;
        ck_test_case_failed = 1;
    }
    fclose(f);
    return buf;
}

/* Decodes a file with one decoder, re-encodes, compares the bytes. */
#define ROUNDTRIP(file, name, T)                                                            \
    do {                                                                                    \
        size_t n_ = 0, en_ = 0;                                                             \
        uint8_t *d_ = load(file, &n_), *e_ = NULL;                                          \
        T *v_ = NULL;                                                                       \
        if (d_ != NULL) {                                                                   \
            CHECK_OK(ck_asn1_##name##_decode(d_, n_, &v_));                                 \
            CHECK(v_ != NULL);                                                              \
            if (v_ != NULL) {                                                               \
                CHECK_OK(ck_asn1_##name##_encode(v_, &e_, &en_));                           \
                CHECK_MEM_EQ(e_, en_, d_, n_);                                              \
            }                                                                               \
        }                                                                                   \
        ck_asn1_free_der(e_, en_);                                                          \
        T##_free(v_);                                                                       \
        free(d_);                                                                           \
    } while (0)

/* Encodes v, decodes the result, re-encodes: the two encodings must match. */
#define REENCODE(name, T, v)                                                                \
    do {                                                                                    \
        uint8_t *e1_ = NULL, *e2_ = NULL;                                                   \
        size_t l1_ = 0, l2_ = 0;                                                            \
        T *w_ = NULL;                                                                       \
        CHECK_OK(ck_asn1_##name##_encode((v), &e1_, &l1_));                                 \
        if (e1_ != NULL) {                                                                  \
            CHECK_OK(ck_asn1_##name##_decode(e1_, l1_, &w_));                               \
            if (w_ != NULL) {                                                               \
                CHECK_OK(ck_asn1_##name##_encode(w_, &e2_, &l2_));                          \
                CHECK_MEM_EQ(e1_, l1_, e2_, l2_);                                           \
            }                                                                               \
        }                                                                                   \
        ck_asn1_free_der(e1_, l1_);                                                         \
        ck_asn1_free_der(e2_, l2_);                                                         \
        T##_free(w_);                                                                       \
    } while (0)

/* DER TLV with a minimal length header; returns the bytes written (out may be NULL). */
static size_t
tlv(uint8_t *out, uint8_t tag, const uint8_t *c, size_t n)
{
    uint8_t h[6];
    size_t hl = 0;

    h[hl++] = tag;
    if (n < 0x80) {
        h[hl++] = (uint8_t)n;
    } else if (n < 0x100) {
        h[hl++] = 0x81;
        h[hl++] = (uint8_t)n;
    } else if (n < 0x10000) {
        h[hl++] = 0x82;
        h[hl++] = (uint8_t)(n >> 8);
        h[hl++] = (uint8_t)n;
    } else {
        h[hl++] = 0x83;
        h[hl++] = (uint8_t)(n >> 16);
        h[hl++] = (uint8_t)(n >> 8);
        h[hl++] = (uint8_t)n;
    }
    if (out != NULL) {
        memmove(out + hl, c, n);
        memcpy(out, h, hl);
    }
    return hl + n;
}

static const uint8_t *
padata_value(const CK_KDC_REQ *req, int32_t type, size_t *len)
{
    const CK_PA_DATA *pa = req != NULL ? ck_asn1_padata_find(req->padata, type) : NULL;

    *len = pa != NULL ? (size_t)pa->padata_value->length : 0;
    return pa != NULL ? pa->padata_value->data : NULL;
}

/* eContent and eContentType of a DER ContentInfo(SignedData); signature not checked. */
static uint8_t *
cms_econtent(const uint8_t *der, size_t len, ck_pkinit_oid want, size_t *out_len)
{
    const unsigned char *p = der;
    CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
    ASN1_OCTET_STRING **pos;
    uint8_t *r = NULL;

    *out_len = 0;
    if (cms == NULL)
        return NULL;
    if (p == der + len && OBJ_obj2nid(CMS_get0_type(cms)) == NID_pkcs7_signed &&
        ck_pkinit_oid_eq(CMS_get0_eContentType(cms), want) &&
        (pos = CMS_get0_content(cms)) != NULL && *pos != NULL &&
        (r = malloc((size_t)(*pos)->length)) != NULL) {
        memcpy(r, (*pos)->data, (size_t)(*pos)->length);
        *out_len = (size_t)(*pos)->length;
    }
    CMS_ContentInfo_free(cms);
    return r;
}

/* ---- captured messages ---------------------------------------------------------------------- */

static void
golden_roundtrip(void)
{
    ROUNDTRIP("mit-as-req-dh.der", as_req, CK_AS_REQ);
    ROUNDTRIP("mit-as-req-rsa.der", as_req, CK_AS_REQ);
    ROUNDTRIP("heimdal-as-req.der", as_req, CK_AS_REQ);
    ROUNDTRIP("mit-as-rep-dh.der", as_rep, CK_AS_REP);
    ROUNDTRIP("mit-as-rep-rsa.der", as_rep, CK_AS_REP);
    ROUNDTRIP("mit-krb-error-preauth-required.der", krb_error, CK_KRB_ERROR_MSG);
    ROUNDTRIP("mit-krb-error-dh-params.der", krb_error, CK_KRB_ERROR_MSG);
    ROUNDTRIP("mit-as-req-dh.pa-pk-as-req.der", pa_pk_as_req, CK_PA_PK_AS_REQ_MSG);
    ROUNDTRIP("mit-as-req-rsa.pa-pk-as-req.der", pa_pk_as_req, CK_PA_PK_AS_REQ_MSG);
    ROUNDTRIP("heimdal-as-req.pa-pk-as-req.der", pa_pk_as_req, CK_PA_PK_AS_REQ_MSG);
    ROUNDTRIP("mit-as-req-dh.auth-pack.der", auth_pack, CK_AUTH_PACK);
    ROUNDTRIP("mit-as-req-rsa.auth-pack.der", auth_pack, CK_AUTH_PACK);
    ROUNDTRIP("heimdal-as-req.auth-pack.der", auth_pack, CK_AUTH_PACK);
    ROUNDTRIP("mit-as-rep-dh.pa-pk-as-rep.der", pa_pk_as_rep, CK_PA_PK_AS_REP_MSG);
    ROUNDTRIP("mit-as-rep-rsa.pa-pk-as-rep.der", pa_pk_as_rep, CK_PA_PK_AS_REP_MSG);
    ROUNDTRIP("mit-as-rep-dh.kdc-dh-key-info.der", kdc_dh_key_info, CK_KDC_DH_KEY_INFO);
    ROUNDTRIP("mit-as-rep-rsa.reply-key-pack.der", reply_key_pack, CK_REPLY_KEY_PACK);
    ROUNDTRIP("mit-krb-error-dh-params.typed-data.der", typed_data, CK_TYPED_DATA);
    ROUNDTRIP("mit-krb-error-dh-params.td-dh-parameters.der", td_dh_parameters,
              CK_ALGORITHM_IDENTIFIERS);
}

/* MIT's DH request: every PKINIT field cross-checked against the rest of the exchange. */
static void
mit_dh_request_fields(void)
{
    size_t rn = 0, en = 0, pn = 0, sn = 0, an = 0, bn = 0, vn = 0, fn = 0, tn = 0;
    uint8_t *rq = load("mit-as-req-dh.der", &rn), *er = load("mit-krb-error-preauth-required.der",
                                                              &en);
    uint8_t *apf = load("mit-as-req-dh.auth-pack.der", &an), *ap_der = NULL;
    const uint8_t *pv, *body, *fresh, *tok;
    CK_KDC_REQ *req = NULL;
    CK_KRB_ERROR_MSG *err = NULL;
    CK_METHOD_DATA *md = NULL;
    CK_PA_PK_AS_REQ_MSG *pk = NULL;
    CK_AUTH_PACK *ap = NULL;
    uint8_t sha1[20];
    unsigned int sl = 0;
    uint32_t n1 = 0, n2 = 0;
    int kdf = 0;

    CHECK_OK(ck_asn1_as_req_decode(rq, rn, &req));
    pv = padata_value(req, CK_PA_PK_AS_REQ, &pn);
    CHECK(pv != NULL);
    CHECK_OK(ck_asn1_pa_pk_as_req_decode(pv, pn, &pk));
    if (pk == NULL || req == NULL)
        goto out;
    /* MIT lists its anchors as trustedCertifiers: our CA's subject name. */
    CHECK(pk->kdc_pk_id == NULL);
    CHECK(pk->trusted_certifiers != NULL &&
          sk_CK_EXTERNAL_PRINCIPAL_IDENTIFIER_num(pk->trusted_certifiers) == 1);
    if (pk->trusted_certifiers != NULL &&
        sk_CK_EXTERNAL_PRINCIPAL_IDENTIFIER_num(pk->trusted_certifiers) == 1) {
        const CK_EXTERNAL_PRINCIPAL_IDENTIFIER *e =
            sk_CK_EXTERNAL_PRINCIPAL_IDENTIFIER_value(pk->trusted_certifiers, 0);
        FILE *f = fopen("vectors/pkinit/ca.pem", "r");
        X509 *ca = f != NULL ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
        unsigned char *nd = NULL;
        int nl = ca != NULL ? i2d_X509_NAME(X509_get_subject_name(ca), &nd) : -1;
        CHECK(e->subject_name != NULL && nl > 0);
        if (e->subject_name != NULL && nl > 0)
            CHECK_MEM_EQ(e->subject_name->data, (size_t)e->subject_name->length, nd, (size_t)nl);
        OPENSSL_free(nd);
        X509_free(ca);
        if (f != NULL)
            fclose(f);
    }
    /* signedAuthPack: a SignedData of id-pkinit-authData whose content is the AuthPack. */
    ap_der = cms_econtent(pk->signed_auth_pack->data, (size_t)pk->signed_auth_pack->length,
                          CK_OID_PKINIT_AUTH_DATA, &sn);
    CHECK(ap_der != NULL);
    CHECK_MEM_EQ(ap_der, sn, apf, an);
    CHECK_OK(ck_asn1_auth_pack_decode(ap_der, sn, &ap));
    if (ap == NULL)
        goto out;
    /* nonce = req-body nonce; paChecksum = SHA-1 of the received KDC-REQ-BODY. */
    CHECK_OK(ck_asn1_nonce_get(ap->pk_authenticator->nonce, &n1));
    CHECK_OK(ck_asn1_nonce_get(req->req_body->nonce, &n2));
    CHECK_INT_EQ(n1, n2);
    CHECK(ap->pk_authenticator->cusec >= 0 && ap->pk_authenticator->cusec <= 999999);
    CHECK_OK(ck_asn1_kdc_req_body_der(req, &body, &bn));
    CHECK(EVP_Digest(body, bn, sha1, &sl, EVP_sha1(), NULL) == 1);
    CHECK(ap->pk_authenticator->pa_checksum != NULL);
    if (ap->pk_authenticator->pa_checksum != NULL)
        CHECK_MEM_EQ(ap->pk_authenticator->pa_checksum->data,
                     (size_t)ap->pk_authenticator->pa_checksum->length, sha1, sl);
    /* RFC 8070: the request carries an empty PA-AS-FRESHNESS, and the token the KDC offered
     * in its KRB-ERROR travels signed, in PKAuthenticator.freshnessToken. */
    fresh = padata_value(req, CK_PA_AS_FRESHNESS, &fn);
    CHECK(ck_asn1_padata_find(req->padata, CK_PA_AS_FRESHNESS) != NULL && fn == 0);
    CHECK(ap->pk_authenticator->freshness_token != NULL);
    CHECK_OK(ck_asn1_krb_error_decode(er, en, &err));
    if (err != NULL && err->e_data != NULL) {
        const CK_PA_DATA *pa;
        CHECK_INT_EQ(err->error_code, CK_KDC_ERR_PREAUTH_REQUIRED);
        CHECK_OK(ck_asn1_method_data_decode(err->e_data->data, (size_t)err->e_data->length, &md));
        CHECK(ck_asn1_padata_find(md, CK_PA_PK_AS_REQ) != NULL);
        pa = ck_asn1_padata_find(md, CK_PA_AS_FRESHNESS);
        CHECK(pa != NULL);
        tok = pa != NULL ? pa->padata_value->data : NULL;
        tn = pa != NULL ? (size_t)pa->padata_value->length : 0;
        CHECK(tn > 0);
        if (tok != NULL && ap->pk_authenticator->freshness_token != NULL)
            CHECK_MEM_EQ(ap->pk_authenticator->freshness_token->data,
                         (size_t)ap->pk_authenticator->freshness_token->length, tok, tn);
    } else {
        CHECK(err != NULL && err->e_data != NULL);
    }
    /* A DH request: X9.42 public value in MODP 2048; supportedKDFs sha256, sha1, sha512. */
    CHECK(ap->client_public_value != NULL);
    if (ap->client_public_value != NULL) {
        EVP_PKEY *k = X509_PUBKEY_get0(ap->client_public_value);
        CHECK(k != NULL && EVP_PKEY_is_a(k, "DHX"));
        CHECK(k != NULL && EVP_PKEY_get_bits(k) == 2048);
    }
    CHECK(ap->supported_kdfs != NULL && sk_CK_KDF_ALGORITHM_ID_num(ap->supported_kdfs) == 3);
    if (ap->supported_kdfs != NULL && sk_CK_KDF_ALGORITHM_ID_num(ap->supported_kdfs) == 3) {
        CHECK_OK(ck_pkinit_kdf_id_get(sk_CK_KDF_ALGORITHM_ID_value(ap->supported_kdfs, 0), &kdf));
        CHECK_INT_EQ(kdf, CK_PKINIT_KDF_SHA256);
        CHECK_OK(ck_pkinit_kdf_id_get(sk_CK_KDF_ALGORITHM_ID_value(ap->supported_kdfs, 1), &kdf));
        CHECK_INT_EQ(kdf, CK_PKINIT_KDF_SHA1);
        CHECK_OK(ck_pkinit_kdf_id_get(sk_CK_KDF_ALGORITHM_ID_value(ap->supported_kdfs, 2), &kdf));
        CHECK_INT_EQ(kdf, CK_PKINIT_KDF_SHA512);
    }
    CHECK(ap->supported_cms_types != NULL &&
          sk_X509_ALGOR_num(ap->supported_cms_types) == 1 &&
          OBJ_obj2nid(sk_X509_ALGOR_value(ap->supported_cms_types, 0)->algorithm) ==
              NID_des_ede3_cbc);
    CHECK(ap->client_dh_nonce == NULL);
    CHECK(ap->pk_authenticator->pa_checksum2 == NULL);
out:
    (void)vn;
    (void)fresh;
    CK_AUTH_PACK_free(ap);
    CK_PA_PK_AS_REQ_MSG_free(pk);
    CK_KDC_REQ_free(req);
    CK_KRB_ERROR_MSG_free(err);
    sk_CK_PA_DATA_pop_free(md, CK_PA_DATA_free);
    free(ap_der);
    free(apf);
    free(rq);
    free(er);
}

/* MIT's DH reply: dhInfo with kdf sha256; KDCDHKeyInfo nonce = the AuthPack nonce. */
static void
mit_dh_reply_fields(void)
{
    size_t rn = 0, pn = 0, kn = 0, an = 0, xn = 0;
    uint8_t *rp = load("mit-as-rep-dh.der", &rn), *apd = load("mit-as-req-dh.auth-pack.der", &an);
    uint8_t *kfile = load("mit-as-rep-dh.kdc-dh-key-info.der", &kn), *kd = NULL;
    const CK_PA_DATA *pa;
    CK_KDC_REP *rep = NULL;
    CK_PA_PK_AS_REP_MSG *pk = NULL;
    CK_KDC_DH_KEY_INFO *ki = NULL;
    CK_AUTH_PACK *ap = NULL;
    uint32_t a = 0, b = 0;
    int kdf = 0;

    CHECK_OK(ck_asn1_as_rep_decode(rp, rn, &rep));
    pa = rep != NULL ? ck_asn1_padata_find(rep->padata, CK_PA_PK_AS_REP) : NULL;
    CHECK(pa != NULL);
    if (pa == NULL)
        goto out;
    pn = (size_t)pa->padata_value->length;
    CHECK_OK(ck_asn1_pa_pk_as_rep_decode(pa->padata_value->data, pn, &pk));
    if (pk == NULL)
        goto out;
    CHECK_INT_EQ(pk->type, CK_PA_PK_AS_REP_DH_INFO);
    if (pk->type != CK_PA_PK_AS_REP_DH_INFO)
        goto out;
    CHECK(pk->value.dh_info->server_dh_nonce == NULL);
    CHECK_OK(ck_pkinit_kdf_id_get(pk->value.dh_info->kdf, &kdf));
    CHECK_INT_EQ(kdf, CK_PKINIT_KDF_SHA256);
    kd = cms_econtent(pk->value.dh_info->dh_signed_data->data,
                      (size_t)pk->value.dh_info->dh_signed_data->length, CK_OID_PKINIT_DHKEY_DATA,
                      &xn);
    CHECK(kd != NULL);
    CHECK_MEM_EQ(kd, xn, kfile, kn);
    CHECK_OK(ck_asn1_kdc_dh_key_info_decode(kd, xn, &ki));
    CHECK_OK(ck_asn1_auth_pack_decode(apd, an, &ap));
    if (ki != NULL && ap != NULL) {
        CHECK_OK(ck_asn1_nonce_get(ki->nonce, &a));
        CHECK_OK(ck_asn1_nonce_get(ap->pk_authenticator->nonce, &b));
        CHECK_INT_EQ(a, b);
        /* y as a DER INTEGER inside the BIT STRING, 0 unused bits. */
        CHECK(ki->subject_public_key->length > 256 && ki->subject_public_key->data[0] == 0x02);
        CHECK((ki->subject_public_key->flags & 0x07) == 0);
        CHECK(ki->dh_key_expiration == NULL);
    }
out:
    CK_AUTH_PACK_free(ap);
    CK_KDC_DH_KEY_INFO_free(ki);
    CK_PA_PK_AS_REP_MSG_free(pk);
    CK_KDC_REP_free(rep);
    free(kd);
    free(kfile);
    free(apd);
    free(rp);
}

/* RSA key transport: AuthPack without a public value; reply encKeyPack; ReplyKeyPack fields. */
static void
mit_rsa_fields(void)
{
    size_t an = 0, pn = 0, kn = 0;
    uint8_t *apd = load("mit-as-req-rsa.auth-pack.der", &an);
    uint8_t *pd = load("mit-as-rep-rsa.pa-pk-as-rep.der", &pn);
    uint8_t *kd = load("mit-as-rep-rsa.reply-key-pack.der", &kn);
    CK_AUTH_PACK *ap = NULL;
    CK_PA_PK_AS_REP_MSG *pk = NULL;
    CK_REPLY_KEY_PACK *kp = NULL;

    CHECK_OK(ck_asn1_auth_pack_decode(apd, an, &ap));
    CHECK(ap != NULL && ap->client_public_value == NULL && ap->supported_kdfs != NULL);
    CHECK_OK(ck_asn1_pa_pk_as_rep_decode(pd, pn, &pk));
    CHECK(pk != NULL && pk->type == CK_PA_PK_AS_REP_ENC_KEY_PACK);
    if (pk != NULL && pk->type == CK_PA_PK_AS_REP_ENC_KEY_PACK) {
        /* An EnvelopedData ContentInfo. */
        const unsigned char *p = pk->value.enc_key_pack->data;
        CMS_ContentInfo *cms =
            d2i_CMS_ContentInfo(NULL, &p, pk->value.enc_key_pack->length);
        CHECK(cms != NULL && OBJ_obj2nid(CMS_get0_type(cms)) == NID_pkcs7_enveloped);
        CMS_ContentInfo_free(cms);
    }
    CHECK_OK(ck_asn1_reply_key_pack_decode(kd, kn, &kp));
    if (kp != NULL) {
        CHECK_INT_EQ(kp->reply_key->keytype, 18);
        CHECK_INT_EQ(kp->reply_key->keyvalue->length, 32);
        CHECK_INT_EQ(kp->as_checksum->cksumtype, 16); /* hmac-sha1-96-aes256 */
        CHECK_INT_EQ(kp->as_checksum->checksum->length, 12);
        /* The decoded reply key is wiped when the structure is freed. */
        watch(kp->reply_key->keyvalue->data, (size_t)kp->reply_key->keyvalue->length);
        CK_REPLY_KEY_PACK_free(kp);
        kp = NULL;
        CHECK(watch_freed && watch_zero);
    }
    CK_REPLY_KEY_PACK_free(kp);
    CK_PA_PK_AS_REP_MSG_free(pk);
    CK_AUTH_PACK_free(ap);
    free(apd);
    free(pd);
    free(kd);
}

/* Heimdal's request and the TD-DH-PARAMETERS answer MIT gave it. */
static void
heimdal_and_typed_data(void)
{
    size_t rn = 0, an = 0, tn = 0, dn = 0, pn = 0;
    uint8_t *rq = load("heimdal-as-req.der", &rn), *apd = load("heimdal-as-req.auth-pack.der", &an);
    uint8_t *td = load("mit-krb-error-dh-params.typed-data.der", &tn);
    uint8_t *dp = load("mit-krb-error-dh-params.td-dh-parameters.der", &dn);
    const uint8_t *pv;
    CK_KDC_REQ *req = NULL;
    CK_AUTH_PACK *ap = NULL;
    CK_TYPED_DATA *t = NULL;
    CK_ALGORITHM_IDENTIFIERS *params = NULL;
    const CK_TYPED_DATA_ENTRY *e;
    uint32_t a = 0, b = 0;

    CHECK_OK(ck_asn1_as_req_decode(rq, rn, &req));
    pv = padata_value(req, CK_PA_PK_AS_REQ, &pn);
    CHECK(pv != NULL);
    CHECK_OK(ck_asn1_auth_pack_decode(apd, an, &ap));
    if (ap != NULL && req != NULL) {
        CHECK_OK(ck_asn1_nonce_get(ap->pk_authenticator->nonce, &a));
        CHECK_OK(ck_asn1_nonce_get(req->req_body->nonce, &b));
        CHECK_INT_EQ(a, b);
        CHECK(ap->pk_authenticator->freshness_token == NULL);
        CHECK(ap->client_public_value != NULL &&
              EVP_PKEY_get_bits(X509_PUBKEY_get0(ap->client_public_value)) == 1024);
    }
    CHECK_OK(ck_asn1_typed_data_decode(td, tn, &t));
    e = ck_pkinit_typed_data_find(t, CK_TD_DH_PARAMETERS);
    CHECK(e != NULL && e->data_value != NULL);
    if (e != NULL && e->data_value != NULL)
        CHECK_MEM_EQ(e->data_value->data, (size_t)e->data_value->length, dp, dn);
    CHECK(ck_pkinit_typed_data_find(t, 133) != NULL);
    CHECK(ck_pkinit_typed_data_find(t, CK_TD_TRUSTED_CERTIFIERS) == NULL);
    CHECK_OK(ck_asn1_td_dh_parameters_decode(dp, dn, &params));
    CHECK(params != NULL && sk_X509_ALGOR_num(params) == 2);
    for (int i = 0; params != NULL && i < sk_X509_ALGOR_num(params); i++)
        CHECK(OBJ_obj2nid(sk_X509_ALGOR_value(params, i)->algorithm) == NID_dhpublicnumber);
    sk_X509_ALGOR_pop_free(params, X509_ALGOR_free);
    CK_TYPED_DATA_free(t);
    CK_AUTH_PACK_free(ap);
    CK_KDC_REQ_free(req);
    free(rq);
    free(apd);
    free(td);
    free(dp);
}

/* ---- from-scratch construction ------------------------------------------------------------- */

static const uint8_t fake_ci[] = {0x30, 0x03, 0x06, 0x01, 0x2a}; /* a DER SEQUENCE */

static CK_PK_AUTHENTICATOR *
make_pk_authenticator(void)
{
    CK_PK_AUTHENTICATOR *a = CK_PK_AUTHENTICATOR_new();
    static const uint8_t sum[20] = {1, 2, 3};

    if (a == NULL)
        return NULL;
    a->cusec = 999999;
    if (ck_asn1_time_set(&a->ctime, 1700000000) != 0 || ck_asn1_nonce_set(&a->nonce, 0x7ed0e1fa) ||
        ck_asn1_octets_set(&a->pa_checksum, sum, sizeof(sum)) != 0) {
        CK_PK_AUTHENTICATOR_free(a);
        return NULL;
    }
    return a;
}

static void
build_request_types(void)
{
    CK_PA_PK_AS_REQ_MSG *r = CK_PA_PK_AS_REQ_MSG_new();
    CK_EXTERNAL_PRINCIPAL_IDENTIFIER *id = CK_EXTERNAL_PRINCIPAL_IDENTIFIER_new();
    CK_AUTH_PACK *ap = CK_AUTH_PACK_new();
    CK_KDF_ALGORITHM_ID *k = NULL;
    X509_ALGOR *alg = X509_ALGOR_new();
    static const uint8_t ski[] = {0xaa, 0xbb, 0xcc};
    static const uint8_t nonce[32] = {9};
    uint8_t *der = NULL;
    size_t len = 0;
    int kdf = 0;

    CHECK(r != NULL && id != NULL && ap != NULL && alg != NULL);
    if (r == NULL || id == NULL || ap == NULL || alg == NULL)
        goto out;
    /* PA-PK-AS-REQ with every field. */
    CHECK_OK(ck_asn1_octets_set(&r->signed_auth_pack, fake_ci, sizeof(fake_ci)));
    CHECK_OK(ck_asn1_octets_set(&id->subject_key_identifier, ski, sizeof(ski)));
    r->trusted_certifiers = sk_CK_EXTERNAL_PRINCIPAL_IDENTIFIER_new_null();
    CHECK(sk_CK_EXTERNAL_PRINCIPAL_IDENTIFIER_push(r->trusted_certifiers, id) > 0);
    id = NULL;
    CHECK_OK(ck_asn1_octets_set(&r->kdc_pk_id, ski, sizeof(ski)));
    CHECK_OK(ck_asn1_pa_pk_as_req_encode(r, &der, &len));
    /* 30 len | 80 05 <ci> | a1 09 30 07 30 05 82 03 aa bb cc | 82 03 aa bb cc */
    {
        static const uint8_t want[] = {0x30, 0x17, 0x80, 0x05, 0x30, 0x03, 0x06, 0x01, 0x2a,
                                       0xa1, 0x09, 0x30, 0x07, 0x30, 0x05, 0x82, 0x03, 0xaa,
                                       0xbb, 0xcc, 0x82, 0x03, 0xaa, 0xbb, 0xcc};
        CHECK_MEM_EQ(der, len, want, sizeof(want));
    }
    ck_asn1_free_der(der, len);
    der = NULL;
    REENCODE(pa_pk_as_req, CK_PA_PK_AS_REQ_MSG, r);

    /* AuthPack with every field. */
    CK_PK_AUTHENTICATOR_free(ap->pk_authenticator); /* _new() pre-allocated it */
    ap->pk_authenticator = make_pk_authenticator();
    CHECK(ap->pk_authenticator != NULL);
    CHECK_OK(ck_asn1_octets_set(&ap->pk_authenticator->freshness_token, ski, sizeof(ski)));
    ap->pk_authenticator->pa_checksum2 = CK_PA_CHECKSUM2_new();
    CHECK_OK(ck_asn1_octets_set(&ap->pk_authenticator->pa_checksum2->checksum, ski, sizeof(ski)));
    CHECK(X509_ALGOR_set0(ap->pk_authenticator->pa_checksum2->algorithm_identifier,
                          OBJ_nid2obj(NID_sha256), V_ASN1_UNDEF, NULL) == 1);
    CHECK(X509_ALGOR_set0(alg, OBJ_nid2obj(NID_des_ede3_cbc), V_ASN1_UNDEF, NULL) == 1);
    ap->supported_cms_types = sk_X509_ALGOR_new_null();
    CHECK(sk_X509_ALGOR_push(ap->supported_cms_types, alg) > 0);
    alg = NULL;
    CHECK_OK(ck_asn1_octets_set(&ap->client_dh_nonce, nonce, sizeof(nonce)));
    ap->supported_kdfs = sk_CK_KDF_ALGORITHM_ID_new_null();
    for (int i = CK_PKINIT_KDF_SHA1; i <= CK_PKINIT_KDF_SHA384; i++) {
        k = NULL;
        CHECK_OK(ck_pkinit_kdf_id_set(&k, i));
        CHECK_OK(ck_pkinit_kdf_id_get(k, &kdf));
        CHECK_INT_EQ(kdf, i);
        CHECK(sk_CK_KDF_ALGORITHM_ID_push(ap->supported_kdfs, k) > 0);
    }
    REENCODE(auth_pack, CK_AUTH_PACK, ap);
    /* The MIT-captured SPKI goes into a built AuthPack and survives a round trip. */
    {
        size_t mn = 0;
        uint8_t *m = load("mit-as-req-dh.auth-pack.der", &mn);
        CK_AUTH_PACK *mit = NULL;
        CHECK_OK(ck_asn1_auth_pack_decode(m, mn, &mit));
        if (mit != NULL) {
            ap->client_public_value = mit->client_public_value;
            mit->client_public_value = NULL;
            REENCODE(auth_pack, CK_AUTH_PACK, ap);
        }
        CK_AUTH_PACK_free(mit);
        free(m);
    }
out:
    X509_ALGOR_free(alg);
    CK_EXTERNAL_PRINCIPAL_IDENTIFIER_free(id);
    CK_PA_PK_AS_REQ_MSG_free(r);
    CK_AUTH_PACK_free(ap);
}

static void
build_reply_types(void)
{
    CK_PA_PK_AS_REP_MSG *rep = CK_PA_PK_AS_REP_MSG_new();
    CK_DH_REP_INFO *dh = CK_DH_REP_INFO_new();
    CK_KDC_DH_KEY_INFO *ki = CK_KDC_DH_KEY_INFO_new();
    CK_REPLY_KEY_PACK *kp = CK_REPLY_KEY_PACK_new();
    CK_REPLY_KEY_PACK *kp2 = NULL;
    static const uint8_t y[] = {0x02, 0x03, 0x01, 0x00, 0x00}; /* trailing zero octets */
    static const uint8_t key[32] = {0x42, 0x42, 0x42};
    static const uint8_t sum[12] = {7};
    uint8_t *der = NULL;
    size_t len = 0;

    CHECK(rep != NULL && dh != NULL && ki != NULL && kp != NULL);
    if (rep == NULL || dh == NULL || ki == NULL || kp == NULL)
        goto out;
    CHECK_INT_EQ(rep->type, -1);
    CHECK_INT_EQ(ck_asn1_pa_pk_as_rep_encode(rep, &der, &len), CK_ERR_ENCODE); /* no choice */
    CHECK_OK(ck_asn1_octets_set(&dh->dh_signed_data, fake_ci, sizeof(fake_ci)));
    CHECK_OK(ck_pkinit_kdf_id_set(&dh->kdf, CK_PKINIT_KDF_SHA512));
    CHECK_OK(ck_pkinit_pa_pk_as_rep_set_dh(rep, dh));
    dh = NULL;
    /* a0 len 30 len 80 05 <ci> a2 0c 30 0a a0 08 06 06 ... */
    CHECK_OK(ck_asn1_pa_pk_as_rep_encode(rep, &der, &len));
    CHECK(len > 4 && der[0] == 0xa0 && der[2] == 0x30 && der[4] == 0x80);
    ck_asn1_free_der(der, len);
    der = NULL;
    REENCODE(pa_pk_as_rep, CK_PA_PK_AS_REP_MSG, rep);
    CHECK_OK(ck_pkinit_pa_pk_as_rep_set_enc_key_pack(rep, fake_ci, sizeof(fake_ci)));
    CHECK_OK(ck_asn1_pa_pk_as_rep_encode(rep, &der, &len));
    {
        static const uint8_t want[] = {0x81, 0x05, 0x30, 0x03, 0x06, 0x01, 0x2a};
        CHECK_MEM_EQ(der, len, want, sizeof(want));
    }
    ck_asn1_free_der(der, len);
    der = NULL;

    /* KDCDHKeyInfo: trailing zero octets of y survive (OpenSSL would trim them as bits). */
    CHECK_OK(ck_pkinit_bit_string_set(&ki->subject_public_key, y, sizeof(y)));
    CHECK_OK(ck_asn1_nonce_set(&ki->nonce, 0xfffffffe));
    CHECK_OK(ck_asn1_time_set(&ki->dh_key_expiration, 1700000000));
    CHECK_OK(ck_asn1_kdc_dh_key_info_encode(ki, &der, &len));
    {
        /* 30 .. a0 08 03 06 00 02 03 01 00 00 */
        static const uint8_t want[] = {0xa0, 0x08, 0x03, 0x06, 0x00, 0x02, 0x03, 0x01, 0x00, 0x00};
        CHECK(len > 2 + sizeof(want) && memcmp(der + 2, want, sizeof(want)) == 0);
    }
    ck_asn1_free_der(der, len);
    der = NULL;
    REENCODE(kdc_dh_key_info, CK_KDC_DH_KEY_INFO, ki);
    /* Set by hand without the helper: refused rather than silently trimmed. */
    ASN1_BIT_STRING_free(ki->subject_public_key);
    ki->subject_public_key = ASN1_BIT_STRING_new();
    CHECK(ASN1_BIT_STRING_set(ki->subject_public_key, (unsigned char *)y, sizeof(y)) == 1);
    ki->subject_public_key->flags &= ~(ASN1_STRING_FLAG_BITS_LEFT | 0x07);
    CHECK_INT_EQ(ck_asn1_kdc_dh_key_info_encode(ki, &der, &len), CK_ERR_ENCODE);

    /* ReplyKeyPack; wiped on free when built too. */
    CHECK_OK(ck_asn1_enc_key_set(kp->reply_key, 18, key, sizeof(key)));
    CHECK_OK(ck_asn1_checksum_set(kp->as_checksum, 16, sum, sizeof(sum)));
    REENCODE(reply_key_pack, CK_REPLY_KEY_PACK, kp);
    CHECK_OK(ck_asn1_reply_key_pack_encode(kp, &der, &len));
    CHECK_OK(ck_asn1_reply_key_pack_decode(der, len, &kp2));
    ck_asn1_free_der(der, len);
    der = NULL;
    watch(kp->reply_key->keyvalue->data, sizeof(key));
    CK_REPLY_KEY_PACK_free(kp);
    kp = NULL;
    CHECK(watch_freed && watch_zero);
    if (kp2 != NULL) {
        watch(kp2->reply_key->keyvalue->data, sizeof(key));
        CK_REPLY_KEY_PACK_free(kp2);
        kp2 = NULL;
        CHECK(watch_freed && watch_zero);
    }
out:
    CK_PA_PK_AS_REP_MSG_free(rep);
    CK_DH_REP_INFO_free(dh);
    CK_KDC_DH_KEY_INFO_free(ki);
    CK_REPLY_KEY_PACK_free(kp);
    CK_REPLY_KEY_PACK_free(kp2);
}

static void
build_misc_types(void)
{
    static const char *const tgs[] = {"krbtgt", "EXAMPLE.TEST"};
    CK_PRINCIPAL_NAME *name = NULL;
    CK_KRB5_PRINCIPAL_NAME *kpn = CK_KRB5_PRINCIPAL_NAME_new();
    CK_PKINIT_SUPP_PUB_INFO *pub = CK_PKINIT_SUPP_PUB_INFO_new();
    CK_PKINIT_OTHER_INFO *oi = CK_PKINIT_OTHER_INFO_new();
    CK_TYPED_DATA *td = NULL;
    CK_EXTERNAL_PRINCIPAL_IDENTIFIERS *ids = sk_CK_EXTERNAL_PRINCIPAL_IDENTIFIER_new_null();
    CK_EXTERNAL_PRINCIPAL_IDENTIFIER *id = CK_EXTERNAL_PRINCIPAL_IDENTIFIER_new();
    CK_ALGORITHM_IDENTIFIERS *algs = sk_X509_ALGOR_new_null();
    X509_ALGOR *alg = X509_ALGOR_new();
    ASN1_GENERALSTRING *loc = NULL, *loc2 = NULL;
    static const uint8_t blob[4] = {1, 2, 3, 4};
    uint8_t *der = NULL;
    size_t len = 0;

    CHECK(kpn != NULL && pub != NULL && oi != NULL && ids != NULL && id != NULL && algs != NULL &&
          alg != NULL);
    if (kpn == NULL || pub == NULL || oi == NULL || ids == NULL || id == NULL || algs == NULL ||
        alg == NULL)
        goto out;
    /* KRB5PrincipalName as it appears in a KDC certificate's id-pkinit-san. */
    CHECK_OK(ck_asn1_principal_new(CK_NT_SRV_INST, tgs, 2, &name));
    CHECK_OK(ck_pkinit_krb5_principal_set(kpn, name, "EXAMPLE.TEST"));
    REENCODE(krb5_principal_name, CK_KRB5_PRINCIPAL_NAME, kpn);
    CHECK_OK(ck_asn1_krb5_principal_name_encode(kpn, &der, &len));
    CHECK(len > 4 && der[0] == 0x30 && der[2] == 0xa0 && der[4] == 0x1b);
    ck_asn1_free_der(der, len);
    der = NULL;

    pub->enctype = 18;
    CHECK_OK(ck_asn1_octets_set(&pub->as_req, blob, sizeof(blob)));
    CHECK_OK(ck_asn1_octets_set(&pub->pk_as_rep, blob, sizeof(blob)));
    REENCODE(pkinit_supp_pub_info, CK_PKINIT_SUPP_PUB_INFO, pub);
    CHECK(X509_ALGOR_set0(oi->algorithm_id, ck_pkinit_oid_new(CK_OID_PKINIT_KDF_SHA256),
                          V_ASN1_UNDEF, NULL) == 1);
    CHECK_OK(ck_asn1_octets_set(&oi->party_u_info, blob, sizeof(blob)));
    CHECK_OK(ck_asn1_octets_set(&oi->party_v_info, blob, sizeof(blob)));
    CHECK_OK(ck_asn1_octets_set(&oi->supp_pub_info, blob, sizeof(blob)));
    REENCODE(pkinit_other_info, CK_PKINIT_OTHER_INFO, oi);
    /* OtherInfo starts with the untagged AlgorithmIdentifier with absent parameters. */
    CHECK_OK(ck_asn1_pkinit_other_info_encode(oi, &der, &len));
    {
        static const uint8_t want[] = {0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05,
                                       0x02, 0x03, 0x06, 0x02, 0xa0, 0x06, 0x04, 0x04};
        CHECK(len > 2 + sizeof(want) && memcmp(der + 2, want, sizeof(want)) == 0);
    }
    ck_asn1_free_der(der, len);
    der = NULL;

    /* TYPED-DATA, TD-TRUSTED-CERTIFIERS, TD-DH-PARAMETERS. */
    CHECK_INT_EQ(ck_asn1_typed_data_encode(td, &der, &len), CK_ERR_INVAL);
    CHECK_OK(ck_pkinit_typed_data_add(&td, CK_TD_TRUSTED_CERTIFIERS, blob, sizeof(blob)));
    CHECK_OK(ck_pkinit_typed_data_add(&td, CK_TD_INVALID_CERTIFICATES, NULL, 0));
    REENCODE(typed_data, CK_TYPED_DATA, td);
    CHECK(ck_pkinit_typed_data_find(td, CK_TD_INVALID_CERTIFICATES)->data_value == NULL);
    CHECK_OK(ck_asn1_octets_set(&id->issuer_and_serial_number, blob, sizeof(blob)));
    CHECK(sk_CK_EXTERNAL_PRINCIPAL_IDENTIFIER_push(ids, id) > 0);
    id = NULL;
    REENCODE(td_principal_ids, CK_EXTERNAL_PRINCIPAL_IDENTIFIERS, ids);
    CHECK_INT_EQ(ck_asn1_td_dh_parameters_encode(algs, &der, &len), CK_ERR_ENCODE); /* empty */
    CHECK(X509_ALGOR_set0(alg, OBJ_nid2obj(NID_dhpublicnumber), V_ASN1_UNDEF, NULL) == 1);
    CHECK(sk_X509_ALGOR_push(algs, alg) > 0);
    alg = NULL;
    REENCODE(td_dh_parameters, CK_ALGORITHM_IDENTIFIERS, algs);

    /* PA-PROV-SRV-LOCATION: a bare GeneralString. */
    CHECK_OK(ck_asn1_kstring_set(&loc, "prov.example.test"));
    CHECK_OK(ck_asn1_prov_srv_location_encode(loc, &der, &len));
    CHECK(len == 19 && der[0] == 0x1b && der[1] == 17);
    CHECK_OK(ck_asn1_prov_srv_location_decode(der, len, &loc2));
    CHECK(ck_asn1_kstring_eq(loc2, "prov.example.test"));
    ck_asn1_free_der(der, len);
    der = NULL;
    {
        static const uint8_t nul[] = {0x1b, 0x03, 'a', 0x00, 'b'};
        ASN1_GENERALSTRING *bad = NULL;
        CHECK_INT_EQ(ck_asn1_prov_srv_location_decode(nul, sizeof(nul), &bad), CK_ERR_DECODE);
        CHECK(bad == NULL);
    }
out:
    ASN1_GENERALSTRING_free(loc);
    ASN1_GENERALSTRING_free(loc2);
    X509_ALGOR_free(alg);
    sk_X509_ALGOR_pop_free(algs, X509_ALGOR_free);
    CK_EXTERNAL_PRINCIPAL_IDENTIFIER_free(id);
    sk_CK_EXTERNAL_PRINCIPAL_IDENTIFIER_pop_free(ids, CK_EXTERNAL_PRINCIPAL_IDENTIFIER_free);
    CK_TYPED_DATA_free(td);
    CK_PKINIT_OTHER_INFO_free(oi);
    CK_PKINIT_SUPP_PUB_INFO_free(pub);
    CK_KRB5_PRINCIPAL_NAME_free(kpn);
    CK_PRINCIPAL_NAME_free(name);
}

static void
oids(void)
{
    ASN1_OBJECT *o;

    CHECK(strcmp(ck_pkinit_oid_text(CK_OID_PKINIT_SAN), "1.3.6.1.5.2.2") == 0);
    CHECK(ck_pkinit_oid_text(CK_OID_PKINIT_COUNT) == NULL);
    for (int i = 0; i < CK_OID_PKINIT_COUNT; i++) {
        char txt[64];
        o = ck_pkinit_oid_new((ck_pkinit_oid)i);
        CHECK(o != NULL);
        CHECK(ck_pkinit_oid_eq(o, (ck_pkinit_oid)i));
        CHECK(!ck_pkinit_oid_eq(o, (ck_pkinit_oid)((i + 1) % CK_OID_PKINIT_COUNT)));
        CHECK(OBJ_obj2txt(txt, sizeof(txt), o, 1) > 0 &&
              strcmp(txt, ck_pkinit_oid_text((ck_pkinit_oid)i)) == 0);
        ASN1_OBJECT_free(o);
    }
    /* OpenSSL's own NIDs for the EKUs are the same OIDs. */
    CHECK(ck_pkinit_oid_eq(OBJ_nid2obj(NID_pkInitClientAuth), CK_OID_PKINIT_KP_CLIENT_AUTH));
    CHECK(ck_pkinit_oid_eq(OBJ_nid2obj(NID_pkInitKDC), CK_OID_PKINIT_KP_KDC));
    CHECK(!ck_pkinit_oid_eq(NULL, CK_OID_PKINIT_SAN));
    {
        CK_KDF_ALGORITHM_ID *k = CK_KDF_ALGORITHM_ID_new();
        int kdf = 0;
        CHECK_INT_EQ(ck_pkinit_kdf_id_set(&k, 7), CK_ERR_UNSUPPORTED);
        k->kdf_id = OBJ_nid2obj(NID_sha256); /* static object: free is a no-op */
        CHECK_INT_EQ(ck_pkinit_kdf_id_get(k, &kdf), CK_ERR_UNSUPPORTED);
        CK_KDF_ALGORITHM_ID_free(k);
    }
}

/* ---- pk-init draft forms --------------------------------------------------------------------- */

static void
draft_forms(void)
{
    CK_PA_PK_AS_REQ_DRAFT9 *r = CK_PA_PK_AS_REQ_DRAFT9_new(), *d = NULL;
    CK_PA_PK_AS_REP_DRAFT9 *p = CK_PA_PK_AS_REP_DRAFT9_new(), *q = NULL;
    uint8_t *der = NULL;
    size_t len = 0;
    static const uint8_t imp[] = {0x30, 0x07, 0x80, 0x05, 0x30, 0x03, 0x06, 0x01, 0x2a};
    static const uint8_t exp[] = {0x30, 0x07, 0xa0, 0x05, 0x30, 0x03, 0x06, 0x01, 0x2a};
    static const uint8_t rimp[] = {0x81, 0x05, 0x30, 0x03, 0x06, 0x01, 0x2a};
    static const uint8_t rexp[] = {0xa0, 0x05, 0x30, 0x03, 0x06, 0x01, 0x2a};

    CHECK(r != NULL && p != NULL);
    if (r == NULL || p == NULL)
        goto out;
    CHECK_OK(ck_asn1_octets_set(&r->signed_auth_pack, fake_ci, sizeof(fake_ci)));
    CHECK_INT_EQ(r->form, CK_PKINIT_FORM_IMPLICIT);
    CHECK_OK(ck_asn1_pa_pk_as_req_draft9_encode(r, &der, &len));
    CHECK_MEM_EQ(der, len, imp, sizeof(imp));
    ck_asn1_free_der(der, len);
    der = NULL;
    r->form = CK_PKINIT_FORM_EXPLICIT;
    CHECK_OK(ck_asn1_pa_pk_as_req_draft9_encode(r, &der, &len));
    CHECK_MEM_EQ(der, len, exp, sizeof(exp));
    ck_asn1_free_der(der, len);
    der = NULL;
    r->form = 7;
    CHECK_INT_EQ(ck_asn1_pa_pk_as_req_draft9_encode(r, &der, &len), CK_ERR_ENCODE);
    /* The decoder recognises each form and records it. */
    CHECK_OK(ck_asn1_pa_pk_as_req_draft9_decode(imp, sizeof(imp), &d));
    CHECK(d != NULL && d->form == CK_PKINIT_FORM_IMPLICIT &&
          d->signed_auth_pack->length == (int)sizeof(fake_ci));
    CK_PA_PK_AS_REQ_DRAFT9_free(d);
    d = NULL;
    CHECK_OK(ck_asn1_pa_pk_as_req_draft9_decode(exp, sizeof(exp), &d));
    CHECK(d != NULL && d->form == CK_PKINIT_FORM_EXPLICIT &&
          d->signed_auth_pack->length == (int)sizeof(fake_ci) &&
          memcmp(d->signed_auth_pack->data, fake_ci, sizeof(fake_ci)) == 0);
    CK_PA_PK_AS_REQ_DRAFT9_free(d);
    d = NULL;
    /* All fields, both forms, round trip. */
    for (int form = CK_PKINIT_FORM_IMPLICIT; form <= CK_PKINIT_FORM_EXPLICIT; form++) {
        ASN1_TYPE *tca = NULL;
        static const uint8_t tca_der[] = {0xa2, 0x05, 0x30, 0x03, 0x06, 0x01, 0x2a};
        const unsigned char *tp = tca_der;
        r->form = form;
        CHECK_OK(ck_asn1_octets_set(&r->kdc_cert, fake_ci, sizeof(fake_ci)));
        CHECK_OK(ck_asn1_octets_set(&r->encryption_cert, fake_ci, sizeof(fake_ci)));
        if (r->trusted_certifiers == NULL) {
            r->trusted_certifiers = sk_ASN1_TYPE_new_null();
            tca = d2i_ASN1_TYPE(NULL, &tp, sizeof(tca_der));
            CHECK(tca != NULL && tca->type == V_ASN1_OTHER);
            CHECK(sk_ASN1_TYPE_push(r->trusted_certifiers, tca) > 0);
        }
        REENCODE(pa_pk_as_req_draft9, CK_PA_PK_AS_REQ_DRAFT9, r);
    }
    /* EXPLICIT form needs one DER SEQUENCE in each raw field. */
    {
        static const uint8_t junk[] = {0x30, 0x03, 0x06, 0x01};
        CHECK_OK(ck_asn1_octets_set(&r->kdc_cert, junk, sizeof(junk)));
        CHECK_INT_EQ(ck_asn1_pa_pk_as_req_draft9_encode(r, &der, &len), CK_ERR_ENCODE);
    }

    /* PA-PK-AS-REP draft: encKeyPack [1] implicit, dhSignedData [0] explicit. */
    CHECK_INT_EQ(p->type, -1);
    CHECK_OK(ck_pkinit_pa_pk_as_rep_draft9_set(p, CK_PA_PK_AS_REP_DRAFT9_ENC_KEY_PACK,
                                               CK_PKINIT_FORM_IMPLICIT, fake_ci, sizeof(fake_ci)));
    CHECK_OK(ck_asn1_pa_pk_as_rep_draft9_encode(p, &der, &len));
    CHECK_MEM_EQ(der, len, rimp, sizeof(rimp));
    ck_asn1_free_der(der, len);
    der = NULL;
    CHECK_OK(ck_pkinit_pa_pk_as_rep_draft9_set(p, CK_PA_PK_AS_REP_DRAFT9_DH_SIGNED_DATA,
                                               CK_PKINIT_FORM_EXPLICIT, fake_ci, sizeof(fake_ci)));
    CHECK_OK(ck_asn1_pa_pk_as_rep_draft9_encode(p, &der, &len));
    CHECK_MEM_EQ(der, len, rexp, sizeof(rexp));
    ck_asn1_free_der(der, len);
    der = NULL;
    CHECK_OK(ck_asn1_pa_pk_as_rep_draft9_decode(rexp, sizeof(rexp), &q));
    CHECK(q != NULL && q->form == CK_PKINIT_FORM_EXPLICIT &&
          q->type == CK_PA_PK_AS_REP_DRAFT9_DH_SIGNED_DATA);
    CK_PA_PK_AS_REP_DRAFT9_free(q);
    q = NULL;
    CHECK_OK(ck_asn1_pa_pk_as_rep_draft9_decode(rimp, sizeof(rimp), &q));
    CHECK(q != NULL && q->form == CK_PKINIT_FORM_IMPLICIT &&
          q->type == CK_PA_PK_AS_REP_DRAFT9_ENC_KEY_PACK);
    CK_PA_PK_AS_REP_DRAFT9_free(q);
    q = NULL;
    CHECK_INT_EQ(ck_pkinit_pa_pk_as_rep_draft9_set(p, 2, 0, fake_ci, sizeof(fake_ci)),
                 CK_ERR_INVAL);
    /* Wrong tags: [2] choice, [1] first in the request, a universal tag. */
    {
        static const uint8_t bad1[] = {0xa2, 0x05, 0x30, 0x03, 0x06, 0x01, 0x2a};
        static const uint8_t bad2[] = {0x30, 0x07, 0x81, 0x05, 0x30, 0x03, 0x06, 0x01, 0x2a};
        static const uint8_t bad3[] = {0x04, 0x05, 0x30, 0x03, 0x06, 0x01, 0x2a};
        CHECK_INT_EQ(ck_asn1_pa_pk_as_rep_draft9_decode(bad1, sizeof(bad1), &q), CK_ERR_DECODE);
        CHECK_INT_EQ(ck_asn1_pa_pk_as_req_draft9_decode(bad2, sizeof(bad2), &d), CK_ERR_DECODE);
        CHECK_INT_EQ(ck_asn1_pa_pk_as_rep_draft9_decode(bad3, sizeof(bad3), &q), CK_ERR_DECODE);
        CHECK(q == NULL && d == NULL);
    }
out:
    CK_PA_PK_AS_REQ_DRAFT9_free(r);
    CK_PA_PK_AS_REP_DRAFT9_free(p);
}

static void
draft_auth_packs(void)
{
    static const char *const tgs[] = {"krbtgt", "EXAMPLE.TEST"};
    static const uint8_t md5[16] = {0xde, 0xad};
    static const uint8_t key[24] = {0x11};
    CK_AUTH_PACK_DRAFT9 *a = CK_AUTH_PACK_DRAFT9_new();
    CK_AUTH_PACK_PKTC *b = CK_AUTH_PACK_PKTC_new();
    CK_REPLY_KEY_PACK_DRAFT9 *k = CK_REPLY_KEY_PACK_DRAFT9_new(), *k2 = NULL;
    uint8_t *der = NULL;
    size_t len = 0;

    CHECK(a != NULL && b != NULL && k != NULL);
    if (a == NULL || b == NULL || k == NULL)
        goto out;
    /* draft 9: kdcName/kdcRealm first. */
    CHECK_OK(ck_asn1_principal_set(a->pk_authenticator->kdc_name, CK_NT_SRV_INST, tgs, 2));
    CHECK_OK(ck_asn1_kstring_set(&a->pk_authenticator->kdc_realm, "EXAMPLE.TEST"));
    a->pk_authenticator->cusec = 5;
    CHECK_OK(ck_asn1_time_set(&a->pk_authenticator->ctime, 1700000000));
    CHECK_OK(ck_asn1_nonce_set(&a->pk_authenticator->nonce, 12345));
    REENCODE(auth_pack_draft9, CK_AUTH_PACK_DRAFT9, a);
    CHECK_OK(ck_asn1_auth_pack_draft9_encode(a, &der, &len));
    /* 30 L a0 L 30 L a0 L 30 (kdcName PrincipalName) */
    CHECK(len > 10 && der[0] == 0x30 && der[2] == 0xa0 && der[4] == 0x30 && der[6] == 0xa0 &&
          der[8] == 0x30);
    ck_asn1_free_der(der, len);
    der = NULL;

    /* PacketCable: paChecksum is a Checksum (RSA-MD5). */
    b->pk_authenticator->cusec = 0;
    CHECK_OK(ck_asn1_time_set(&b->pk_authenticator->ctime, 1700000000));
    CHECK_OK(ck_asn1_nonce_set(&b->pk_authenticator->nonce, 12345));
    b->pk_authenticator->pa_checksum = CK_CHECKSUM_new();
    CHECK_OK(ck_asn1_checksum_set(b->pk_authenticator->pa_checksum, CK_CKSUMTYPE_RSA_MD5, md5,
                                  sizeof(md5)));
    REENCODE(auth_pack_pktc, CK_AUTH_PACK_PKTC, b);
    CHECK_OK(ck_asn1_auth_pack_pktc_encode(b, &der, &len));
    {
        /* ... a3 1b 30 19 a0 03 02 01 07 a1 12 04 10 de ad ... */
        static const uint8_t want[] = {0xa3, 0x1b, 0x30, 0x19, 0xa0, 0x03, 0x02, 0x01,
                                       0x07, 0xa1, 0x12, 0x04, 0x10, 0xde, 0xad};
        int found = 0;
        for (size_t i = 0; i + sizeof(want) <= len; i++)
            found |= memcmp(der + i, want, sizeof(want)) == 0;
        CHECK(found);
    }
    /* An RFC AuthPack decoder refuses it (paChecksum is an OCTET STRING there). */
    {
        CK_AUTH_PACK *rfc = NULL;
        CHECK_INT_EQ(ck_asn1_auth_pack_decode(der, len, &rfc), CK_ERR_DECODE);
        CHECK(rfc == NULL);
    }
    ck_asn1_free_der(der, len);
    der = NULL;

    /* ReplyKeyPack (draft): nonce instead of asChecksum; key wiped on free. */
    CHECK_OK(ck_asn1_enc_key_set(k->reply_key, 16, key, sizeof(key)));
    CHECK_OK(ck_asn1_nonce_set(&k->nonce, 0x7fffffff));
    REENCODE(reply_key_pack_draft9, CK_REPLY_KEY_PACK_DRAFT9, k);
    CHECK_OK(ck_asn1_reply_key_pack_draft9_encode(k, &der, &len));
    CHECK_OK(ck_asn1_reply_key_pack_draft9_decode(der, len, &k2));
    ck_asn1_free_der(der, len);
    der = NULL;
    if (k2 != NULL) {
        watch(k2->reply_key->keyvalue->data, sizeof(key));
        CK_REPLY_KEY_PACK_DRAFT9_free(k2);
        k2 = NULL;
        CHECK(watch_freed && watch_zero);
    }
out:
    CK_AUTH_PACK_DRAFT9_free(a);
    CK_AUTH_PACK_PKTC_free(b);
    CK_REPLY_KEY_PACK_DRAFT9_free(k);
    CK_REPLY_KEY_PACK_DRAFT9_free(k2);
}

/* ---- hostile input --------------------------------------------------------------------------- */

/* Re-frames the outer header of a DER message with a longer (non-minimal) length form. */
static uint8_t *
reframe(const uint8_t *d, size_t n, int extra_zero, size_t *out_len)
{
    size_t hl = d[1] < 0x80 ? 2 : 2 + (size_t)(d[1] & 0x7f);
    size_t cl = n - hl, nl;
    uint8_t *m = malloc(n + 8);

    if (m == NULL)
        abort();
    m[0] = d[0];
    nl = 0;
    for (size_t v = cl; v > 0; v >>= 8)
        nl++;
    nl += (size_t)extra_zero;
    m[1] = (uint8_t)(0x80 | nl);
    for (size_t i = 0; i < nl; i++) /* big-endian; the extra octets lead as zeros */
        m[2 + i] = (uint8_t)(cl >> (8 * (nl - 1 - i)));
    memcpy(m + 2 + nl, d + hl, cl);
    *out_len = 2 + nl + cl;
    return m;
}

static void
negative_der(void)
{
    size_t n = 0, mn = 0;
    uint8_t *d = load("mit-as-req-dh.pa-pk-as-req.der", &n), *m;
    CK_PA_PK_AS_REQ_MSG *r = NULL;
    CK_KRB5_PRINCIPAL_NAME *k = NULL;

    if (d == NULL)
        return;
    /* 30 82 0a 0d ... -> 30 83 00 0a 0d ...: a leading zero length octet. */
    m = reframe(d, n, 1, &mn);
    CHECK(m[1] == 0x83 && m[2] == 0x00);
    CHECK_INT_EQ(ck_asn1_pa_pk_as_req_decode(m, mn, &r), CK_ERR_DECODE);
    CHECK(strstr(ck_error_context(), "non-minimal") != NULL);
    CHECK(r == NULL);
    free(m);
    /* The original still decodes (sanity: the reframing itself is right). */
    m = reframe(d, n, 0, &mn);
    CHECK_MEM_EQ(m, mn, d, n);
    free(m);
    /* 81 xx for a length below 128, deep inside: KRB5PrincipalName realm [0]. */
    {
        static const uint8_t good[] = {0x30, 0x14, 0xa0, 0x03, 0x1b, 0x01, 'R', 0xa1, 0x0d, 0x30,
                                       0x0b, 0xa0, 0x03, 0x02, 0x01, 0x01, 0xa1, 0x04, 0x30,
                                       0x02, 0x1b, 0x00};
        static const uint8_t bad[] = {0x30, 0x15, 0xa0, 0x81, 0x03, 0x1b, 0x01, 'R', 0xa1, 0x0d,
                                      0x30, 0x0b, 0xa0, 0x03, 0x02, 0x01, 0x01, 0xa1, 0x04, 0x30,
                                      0x02, 0x1b, 0x00};
        /* 0x82 0x00 0x80 style: two octets where one (0x80) suffices. */
        uint8_t bad2[200];
        CHECK_OK(ck_asn1_krb5_principal_name_decode(good, sizeof(good), &k));
        CK_KRB5_PRINCIPAL_NAME_free(k);
        k = NULL;
        CHECK_INT_EQ(ck_asn1_krb5_principal_name_decode(bad, sizeof(bad), &k), CK_ERR_DECODE);
        CHECK(strstr(ck_error_context(), "non-minimal") != NULL);
        memset(bad2, 0, sizeof(bad2));
        bad2[0] = 0x1b;
        bad2[1] = 0x82;
        bad2[2] = 0x00;
        bad2[3] = 0x80;
        memset(bad2 + 4, 'a', 0x80);
        {
            ASN1_GENERALSTRING *s = NULL;
            CHECK_INT_EQ(ck_asn1_prov_srv_location_decode(bad2, 4 + 0x80, &s), CK_ERR_DECODE);
            CHECK(strstr(ck_error_context(), "non-minimal") != NULL);
            bad2[1] = 0x81;
            bad2[2] = 0x80;
            memmove(bad2 + 3, bad2 + 4, 0x80);
            CHECK_OK(ck_asn1_prov_srv_location_decode(bad2, 3 + 0x80, &s));
            ASN1_GENERALSTRING_free(s);
        }
    }
    /* BER constructed OCTET STRING for kdcPkId's universal counterpart: a constructed
     * universal string anywhere is refused (here TYPED-DATA's data-value). */
    {
        static const uint8_t cons[] = {0x30, 0x11, 0x30, 0x0f, 0xa0, 0x03, 0x02, 0x01, 0x68,
                                       0xa1, 0x08, 0x24, 0x06, 0x04, 0x01, 'a', 0x04, 0x01, 'b'};
        static const uint8_t prim[] = {0x30, 0x0d, 0x30, 0x0b, 0xa0, 0x03, 0x02, 0x01, 0x68,
                                       0xa1, 0x04, 0x04, 0x02, 'a', 'b'};
        CK_TYPED_DATA *t = NULL;
        CHECK_INT_EQ(ck_asn1_typed_data_decode(cons, sizeof(cons), &t), CK_ERR_DECODE);
        CHECK(strstr(ck_error_context(), "constructed") != NULL);
        CHECK_OK(ck_asn1_typed_data_decode(prim, sizeof(prim), &t));
        CK_TYPED_DATA_free(t);
        t = NULL;
        /* and a primitive SEQUENCE */
        {
            static const uint8_t pseq[] = {0x10, 0x00};
            CHECK_INT_EQ(ck_asn1_typed_data_decode(pseq, sizeof(pseq), &t), CK_ERR_DECODE);
        }
    }
    /* Trailing byte. */
    m = malloc(n + 1);
    memcpy(m, d, n);
    m[n] = 0;
    CHECK_INT_EQ(ck_asn1_pa_pk_as_req_decode(m, n + 1, &r), CK_ERR_DECODE);
    CHECK(r == NULL);
    free(m);
    /* Wrong tag: signedAuthPack as [1]. */
    m = malloc(n);
    memcpy(m, d, n);
    CHECK(m[4] == 0x80);
    m[4] = 0x81;
    CHECK_INT_EQ(ck_asn1_pa_pk_as_req_decode(m, n, &r), CK_ERR_DECODE);
    free(m);
    free(d);
}

/* AuthPack field values out of range, counts over the limits. */
static void
negative_values(void)
{
    CK_AUTH_PACK *ap = CK_AUTH_PACK_new();
    uint8_t *der = NULL, nonce_big[65] = {0};
    size_t len = 0;

    if (ap == NULL)
        return;
    CK_PK_AUTHENTICATOR_free(ap->pk_authenticator); /* _new() pre-allocated it */
    ap->pk_authenticator = make_pk_authenticator();
    CHECK_OK(ck_asn1_auth_pack_encode(ap, &der, &len));
    ck_asn1_free_der(der, len);
    der = NULL;
    /* cusec */
    ap->pk_authenticator->cusec = 1000000;
    CHECK_INT_EQ(ck_asn1_auth_pack_encode(ap, &der, &len), CK_ERR_ENCODE);
    ap->pk_authenticator->cusec = 0;
    /* nonce: 2^32-1 as an unsigned 5-octet INTEGER is fine; 2^32 and -2^31-1 are not. */
    {
        static const uint8_t max[] = {0x00, 0xff, 0xff, 0xff, 0xff};
        static const uint8_t over[] = {0x01, 0x00, 0x00, 0x00, 0x00};
        static const uint8_t under[] = {0xff, 0x7f, 0xff, 0xff, 0xff};
        ASN1_INTEGER *n = ap->pk_authenticator->nonce;
        CK_AUTH_PACK *w = NULL;
        uint32_t v = 0;

        CHECK(ASN1_STRING_set(n, max, sizeof(max)) == 1);
        n->type = V_ASN1_INTEGER;
        /* ASN1_STRING_set keeps the two's-complement bytes as magnitude: rebuild properly. */
        CHECK(ASN1_INTEGER_set_int64(n, 0xffffffffLL) == 1);
        CHECK_OK(ck_asn1_auth_pack_encode(ap, &der, &len));
        CHECK_OK(ck_asn1_auth_pack_decode(der, len, &w));
        CHECK(w != NULL && ck_asn1_nonce_get(w->pk_authenticator->nonce, &v) == 0 &&
              v == 0xffffffffu);
        CK_AUTH_PACK_free(w);
        w = NULL;
        ck_asn1_free_der(der, len);
        der = NULL;
        CHECK(ASN1_INTEGER_set_int64(n, 0x100000000LL) == 1);
        CHECK_INT_EQ(ck_asn1_auth_pack_encode(ap, &der, &len), CK_ERR_ENCODE);
        CHECK(ASN1_INTEGER_set_int64(n, -2147483649LL) == 1);
        CHECK_INT_EQ(ck_asn1_auth_pack_encode(ap, &der, &len), CK_ERR_ENCODE);
        (void)over;
        (void)under;
        /* Decode side: patch the nonce of a valid encoding to 5 octets 01 00 00 00 00. */
        CHECK(ASN1_INTEGER_set_int64(n, 0x80000000LL) == 1); /* encodes as 00 80 00 00 00 */
        CHECK_OK(ck_asn1_auth_pack_encode(ap, &der, &len));
        for (size_t i = 0; der != NULL && i + 7 <= len; i++) {
            if (der[i] == 0x02 && der[i + 1] == 0x05 && der[i + 2] == 0x00 && der[i + 3] == 0x80) {
                der[i + 2] = 0x01;
                der[i + 3] = 0x00;
                CHECK_INT_EQ(ck_asn1_auth_pack_decode(der, len, &w), CK_ERR_DECODE);
                CHECK(strstr(ck_error_context(), "nonce") != NULL);
                break;
            }
        }
        ck_asn1_free_der(der, len);
        der = NULL;
        CHECK(ASN1_INTEGER_set_int64(n, 42) == 1);
    }
    /* DH nonce: empty or longer than 64 octets */
    CHECK_OK(ck_asn1_octets_set(&ap->client_dh_nonce, nonce_big, 0));
    CHECK_INT_EQ(ck_asn1_auth_pack_encode(ap, &der, &len), CK_ERR_ENCODE);
    CHECK_OK(ck_asn1_octets_set(&ap->client_dh_nonce, nonce_big, sizeof(nonce_big)));
    CHECK_INT_EQ(ck_asn1_auth_pack_encode(ap, &der, &len), CK_ERR_ENCODE);
    ASN1_OCTET_STRING_free(ap->client_dh_nonce);
    ap->client_dh_nonce = NULL;
    /* too many KDFs */
    ap->supported_kdfs = sk_CK_KDF_ALGORITHM_ID_new_null();
    for (int i = 0; i <= CK_PKINIT_MAX_KDFS; i++) {
        CK_KDF_ALGORITHM_ID *k = NULL;
        CHECK_OK(ck_pkinit_kdf_id_set(&k, CK_PKINIT_KDF_SHA256));
        CHECK(sk_CK_KDF_ALGORITHM_ID_push(ap->supported_kdfs, k) > 0);
    }
    CHECK_INT_EQ(ck_asn1_auth_pack_encode(ap, &der, &len), CK_ERR_ENCODE);
    CK_KDF_ALGORITHM_ID_free(sk_CK_KDF_ALGORITHM_ID_pop(ap->supported_kdfs));
    CHECK_OK(ck_asn1_auth_pack_encode(ap, &der, &len));
    ck_asn1_free_der(der, len);
    der = NULL;
    /* too many CMS types */
    ap->supported_cms_types = sk_X509_ALGOR_new_null();
    for (int i = 0; i <= CK_PKINIT_MAX_CMS_TYPES; i++) {
        X509_ALGOR *a = X509_ALGOR_new();
        CHECK(X509_ALGOR_set0(a, OBJ_nid2obj(NID_sha256), V_ASN1_UNDEF, NULL) == 1);
        CHECK(sk_X509_ALGOR_push(ap->supported_cms_types, a) > 0);
    }
    CHECK_INT_EQ(ck_asn1_auth_pack_encode(ap, &der, &len), CK_ERR_ENCODE);
    /* ... and on the decode side: the same list encoded by the raw i2d is refused. */
    {
        unsigned char *raw = NULL;
        int rl = i2d_CK_AUTH_PACK(ap, &raw);
        CK_AUTH_PACK *w = NULL;
        CHECK(rl > 0);
        CHECK_INT_EQ(ck_asn1_auth_pack_decode(raw, (size_t)rl, &w), CK_ERR_DECODE);
        CHECK(w == NULL);
        OPENSSL_free(raw);
    }
    CK_AUTH_PACK_free(ap);
}

/* Per-type limits: PKINIT messages may be large, ordinary Kerberos messages may not. */
static void
limits(void)
{
    size_t big = 200 * 1024, n;
    uint8_t *blob = calloc(1, CK_PKINIT_MAX_MSG + 16), *der = NULL;
    CK_PA_PK_AS_REQ_MSG *r = CK_PA_PK_AS_REQ_MSG_new(), *w = NULL;
    CK_KDC_REQ *req = NULL, *back = NULL;
    CK_AUTH_PACK *ap = NULL;
    uint8_t *pk = NULL, *asr = NULL;
    size_t pkl = 0, asrl = 0, len = 0;

    CHECK(blob != NULL && r != NULL);
    if (blob == NULL || r == NULL)
        goto out;
    /* A 200 KiB signedAuthPack (a long certificate chain) is a valid PA-PK-AS-REQ ... */
    n = tlv(blob, 0x30, blob, big - 8);
    CHECK_OK(ck_asn1_octets_set(&r->signed_auth_pack, blob, n));
    CHECK_OK(ck_asn1_pa_pk_as_req_encode(r, &pk, &pkl));
    CHECK_OK(ck_asn1_pa_pk_as_req_decode(pk, pkl, &w));
    CK_PA_PK_AS_REQ_MSG_free(w);
    w = NULL;
    /* ... and fits in an AS-REQ, which round-trips through the AS-REQ codec. */
    {
        size_t mn = 0;
        uint8_t *m = load("mit-as-req-dh.der", &mn);
        CK_PA_DATA *pa;
        CHECK_OK(ck_asn1_as_req_decode(m, mn, &req));
        free(m);
        if (req != NULL) {
            pa = (CK_PA_DATA *)ck_asn1_padata_find(req->padata, CK_PA_PK_AS_REQ);
            CHECK_OK(ck_asn1_octets_set(&pa->padata_value, pk, pkl));
            CHECK_OK(ck_asn1_as_req_encode(req, &asr, &asrl));
            CHECK(asrl > CK_ASN1_MAX_MSG);
            CHECK_OK(ck_asn1_as_req_decode(asr, asrl, &back));
            /* The same request as a TGS-REQ keeps the tight Kerberos limits. */
            req->msg_type = CK_KRB_TGS_REQ;
            CHECK_INT_EQ(ck_asn1_tgs_req_encode(req, &der, &len), CK_ERR_ENCODE);
            req->msg_type = CK_KRB_AS_REQ;
        }
    }
    /* Over CK_PKINIT_MAX_MSG: refused before any parsing. */
    blob[0] = 0x30;
    blob[1] = 0x83;
    blob[2] = (uint8_t)((CK_PKINIT_MAX_MSG + 6) >> 16);
    blob[3] = (uint8_t)((CK_PKINIT_MAX_MSG + 6) >> 8);
    blob[4] = (uint8_t)(CK_PKINIT_MAX_MSG + 6);
    CHECK_INT_EQ(ck_asn1_pa_pk_as_req_decode(blob, CK_PKINIT_MAX_MSG + 11, &w), CK_ERR_DECODE);
    CHECK(strstr(ck_error_context(), "exceeds") != NULL);
    /* A CMS-sized input is far over the AuthPack cap. */
    CHECK_INT_EQ(ck_asn1_auth_pack_decode(pk, pkl, &ap), CK_ERR_DECODE);
    CHECK(strstr(ck_error_context(), "exceeds") != NULL);
    /* Too many trusted certifiers */
    r->trusted_certifiers = sk_CK_EXTERNAL_PRINCIPAL_IDENTIFIER_new_null();
    for (int i = 0; i <= CK_PKINIT_MAX_IDS; i++)
        CHECK(sk_CK_EXTERNAL_PRINCIPAL_IDENTIFIER_push(r->trusted_certifiers,
                                                       CK_EXTERNAL_PRINCIPAL_IDENTIFIER_new()) >
              0);
    CHECK_INT_EQ(ck_asn1_pa_pk_as_req_encode(r, &der, &len), CK_ERR_ENCODE);
out:
    ck_asn1_free_der(pk, pkl);
    ck_asn1_free_der(asr, asrl);
    CK_KDC_REQ_free(req);
    CK_KDC_REQ_free(back);
    CK_PA_PK_AS_REQ_MSG_free(r);
    free(blob);
}

CK_TEST_MAIN("pkinit_asn1", CK_TEST_CASE(golden_roundtrip), CK_TEST_CASE(mit_dh_request_fields),
             CK_TEST_CASE(mit_dh_reply_fields), CK_TEST_CASE(mit_rsa_fields),
             CK_TEST_CASE(heimdal_and_typed_data), CK_TEST_CASE(build_request_types),
             CK_TEST_CASE(build_reply_types), CK_TEST_CASE(build_misc_types), CK_TEST_CASE(oids),
             CK_TEST_CASE(draft_forms), CK_TEST_CASE(draft_auth_packs), CK_TEST_CASE(negative_der),
             CK_TEST_CASE(negative_values), CK_TEST_CASE(limits))
