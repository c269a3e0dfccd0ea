/* The lawful-intercept record: its plaintext (LiCallRecord, an OpenSSL ASN.1 template; layout in
 * docs/PROTOCOL.md "Lawful intercept record") and its envelope (CMS AuthEnvelopedData with
 * AES-256-GCM to the order's certificate), and the opening side (PEM key or PKCS#12). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/asn1t.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include "cablekey/error.h"
#include "cablekey/pki.h"
#include "cablekey/util.h"
#include "asn1/asn1_int.h"
#include "intercept/li_int.h"

/* LiCallRecord ::= SEQUENCE { version [0] INTEGER (1), callId [1] UTF8String, ... } — every
 * field of struct ck_li_call, EXPLICIT context tags, none optional (an unknown MAC or an absent
 * IPsec suite is an empty string). */
typedef struct {
    int32_t version;
    ASN1_UTF8STRING *call_id;
    ASN1_UTF8STRING *caller, *callee;
    ASN1_UTF8STRING *caller_mac, *callee_mac;
    int64_t started;
    uint32_t spi;
    ASN1_UTF8STRING *media;
    ASN1_UTF8STRING *ipsec_suite;
    ASN1_BOOLEAN compat_seq;
    ASN1_UTF8STRING *src_media_addr, *dst_media_addr;
    ASN1_OCTET_STRING *k_call;
} CK_LI_RECORD;

DECLARE_ASN1_ITEM(CK_LI_RECORD)

ASN1_SEQUENCE(CK_LI_RECORD) = {
    ASN1_EXP_EMBED(CK_LI_RECORD, version, INT32, 0),
    ASN1_EXP(CK_LI_RECORD, call_id, ASN1_UTF8STRING, 1),
    ASN1_EXP(CK_LI_RECORD, caller, ASN1_UTF8STRING, 2),
    ASN1_EXP(CK_LI_RECORD, callee, ASN1_UTF8STRING, 3),
    ASN1_EXP(CK_LI_RECORD, caller_mac, ASN1_UTF8STRING, 4),
    ASN1_EXP(CK_LI_RECORD, callee_mac, ASN1_UTF8STRING, 5),
    ASN1_EXP_EMBED(CK_LI_RECORD, started, INT64, 6),
    ASN1_EXP_EMBED(CK_LI_RECORD, spi, UINT32, 7),
    ASN1_EXP(CK_LI_RECORD, media, ASN1_UTF8STRING, 8),
    ASN1_EXP(CK_LI_RECORD, ipsec_suite, ASN1_UTF8STRING, 9),
    ASN1_EXP(CK_LI_RECORD, compat_seq, ASN1_BOOLEAN, 10),
    ASN1_EXP(CK_LI_RECORD, src_media_addr, ASN1_UTF8STRING, 11),
    ASN1_EXP(CK_LI_RECORD, dst_media_addr, ASN1_UTF8STRING, 12),
    ASN1_EXP(CK_LI_RECORD, k_call, ASN1_OCTET_STRING, 13),
} ASN1_SEQUENCE_END(CK_LI_RECORD)

static const struct ck_asn1_limits li_limits = {CK_LI_MAX_PLAINTEXT, CK_CALL_KEY_LEN, 0};

static void
record_free(CK_LI_RECORD *r)
{
    if (r == NULL)
        return;
    if (r->k_call != NULL && r->k_call->data != NULL)
        OPENSSL_cleanse(r->k_call->data, (size_t)r->k_call->length);
    ASN1_item_free((ASN1_VALUE *)r, ASN1_ITEM_rptr(CK_LI_RECORD));
}

/* Text fields: printable ASCII only (a space allowed where space_ok: media addresses are
 * "addr port"), at most max bytes, at least min. */
static int
v_text(const ck_vctx *c, const char *field, const ASN1_UTF8STRING *s, size_t min, size_t max,
       bool space_ok)
{
    if (s == NULL)
        return ck_asn1_fail(c, field, "missing");
    if ((size_t)s->length < min)
        return ck_asn1_fail(c, field, "empty");
    if ((size_t)s->length > max)
        return ck_asn1_fail(c, field, "too long");
    for (int i = 0; i < s->length; i++) {
        unsigned char ch = s->data[i];
        if (ch < 0x20 || ch > 0x7e || (ch == ' ' && !space_ok))
            return ck_asn1_fail(c, field, "has a character outside printable ASCII");
    }
    return 0;
}

static int
v_record(const ck_vctx *c, const void *v, int tag)
{
    const CK_LI_RECORD *r = v;
    const struct ck_li_call *z = NULL; /* field sizes only */
    int rc;

    (void)tag;
    if (r->version != CK_LI_RECORD_VERSION)
        return ck_asn1_fail(c, "version", "is not 1");
    if ((rc = v_text(c, "callId", r->call_id, 1, sizeof(z->call_id) - 1, false)) != 0 ||
        (rc = v_text(c, "caller", r->caller, 0, sizeof(z->caller) - 1, false)) != 0 ||
        (rc = v_text(c, "callee", r->callee, 0, sizeof(z->callee) - 1, false)) != 0 ||
        (rc = v_text(c, "callerMac", r->caller_mac, 0, sizeof(z->caller_mac) - 1, false)) != 0 ||
        (rc = v_text(c, "calleeMac", r->callee_mac, 0, sizeof(z->callee_mac) - 1, false)) != 0 ||
        (rc = v_text(c, "media", r->media, 1, sizeof(z->media) - 1, false)) != 0 ||
        (rc = v_text(c, "ipsecSuite", r->ipsec_suite, 0, sizeof(z->ipsec_suite) - 1, false)) !=
            0 ||
        (rc = v_text(c, "srcMediaAddr", r->src_media_addr, 0, sizeof(z->src_media_addr) - 1,
                     true)) != 0 ||
        (rc = v_text(c, "dstMediaAddr", r->dst_media_addr, 0, sizeof(z->dst_media_addr) - 1,
                     true)) != 0)
        return rc;
    if (r->started < 0)
        return ck_asn1_fail(c, "started", "is negative");
    /* OpenSSL keeps a BOOLEAN's content octet as it came; DER allows only 0x00 and 0xff. */
    if (r->compat_seq != 0 && r->compat_seq != 0xff)
        return ck_asn1_fail(c, "compatSeq", "is not a DER boolean");
    if (r->k_call == NULL || r->k_call->length != CK_CALL_KEY_LEN)
        return ck_asn1_fail(c, "kCall", "is not 32 bytes");
    return 0;
}

/* ASN1_item_new has already allocated every mandatory field: set it in place. */
static int
set_text(ASN1_UTF8STRING **dst, const char *s)
{
    if ((*dst == NULL && (*dst = ASN1_UTF8STRING_new()) == NULL) ||
        !ASN1_STRING_set(*dst, s, (int)strlen(s)))
        return ck_error_set(CK_ERR_NOMEM, "intercept record: out of memory");
    return 0;
}

int
ck_li_record_encode(const struct ck_li_call *call, uint8_t **der, size_t *len)
{
    CK_LI_RECORD *r = NULL;
    int ret;

    *der = NULL;
    *len = 0;
    if ((r = (CK_LI_RECORD *)ASN1_item_new(ASN1_ITEM_rptr(CK_LI_RECORD))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "intercept record: out of memory");
    r->version = CK_LI_RECORD_VERSION;
    r->started = call->started;
    r->spi = call->spi;
    r->compat_seq = call->compat_seq ? 0xff : 0; /* written as is: DER's TRUE */
    /* The struct's strings are NUL-terminated by contract; a missing terminator is cut by
     * the encoder's length check rather than read past. */
    if ((ret = set_text(&r->call_id, call->call_id)) != 0 ||
        (ret = set_text(&r->caller, call->caller)) != 0 ||
        (ret = set_text(&r->callee, call->callee)) != 0 ||
        (ret = set_text(&r->caller_mac, call->caller_mac)) != 0 ||
        (ret = set_text(&r->callee_mac, call->callee_mac)) != 0 ||
        (ret = set_text(&r->media, call->media)) != 0 ||
        (ret = set_text(&r->ipsec_suite, call->ipsec_suite)) != 0 ||
        (ret = set_text(&r->src_media_addr, call->src_media_addr)) != 0 ||
        (ret = set_text(&r->dst_media_addr, call->dst_media_addr)) != 0)
        goto out;
    if ((r->k_call == NULL && (r->k_call = ASN1_OCTET_STRING_new()) == NULL) ||
        !ASN1_OCTET_STRING_set(r->k_call, call->k_call, CK_CALL_KEY_LEN)) {
        ret = ck_error_set(CK_ERR_NOMEM, "intercept record: out of memory");
        goto out;
    }
    ret = ck_asn1_encode_item(r, ASN1_ITEM_rptr(CK_LI_RECORD), "LiCallRecord", &li_limits,
                              v_record, 0, der, len);
out:
    record_free(r);
    return ret;
}

static void
copy_text(char *dst, size_t size, const ASN1_UTF8STRING *s)
{
    /* v_record has checked the length against size and that there is no NUL. */
    memcpy(dst, s->data, (size_t)s->length);
    dst[s->length] = '\0';
    (void)size;
}

int
ck_li_record_decode(const uint8_t *der, size_t len, struct ck_li_call *out)
{
    CK_LI_RECORD *r = NULL;
    int ret;

    memset(out, 0, sizeof(*out));
    ret = ck_asn1_decode_item(der, len, ASN1_ITEM_rptr(CK_LI_RECORD), "LiCallRecord",
                              &li_limits, v_record, 0, (void **)&r);
    if (ret != 0)
        return ret;
    copy_text(out->call_id, sizeof(out->call_id), r->call_id);
    copy_text(out->caller, sizeof(out->caller), r->caller);
    copy_text(out->callee, sizeof(out->callee), r->callee);
    copy_text(out->caller_mac, sizeof(out->caller_mac), r->caller_mac);
    copy_text(out->callee_mac, sizeof(out->callee_mac), r->callee_mac);
    copy_text(out->media, sizeof(out->media), r->media);
    copy_text(out->ipsec_suite, sizeof(out->ipsec_suite), r->ipsec_suite);
    copy_text(out->src_media_addr, sizeof(out->src_media_addr), r->src_media_addr);
    copy_text(out->dst_media_addr, sizeof(out->dst_media_addr), r->dst_media_addr);
    out->started = r->started;
    out->spi = r->spi;
    out->compat_seq = r->compat_seq != 0;
    memcpy(out->k_call, r->k_call->data, CK_CALL_KEY_LEN);
    record_free(r);
    return 0;
}

void
ck_li_call_clear(struct ck_li_call *c)
{
    if (c != NULL)
        ck_memzero(c, sizeof(*c));
}

int
ck_li_cert_check(X509 *cert)
{
    EVP_PKEY *pk = X509_get0_pubkey(cert);
    uint32_t ku = X509_get_key_usage(cert);
    int type = pk != NULL ? EVP_PKEY_get_base_id(pk) : 0;

    if (type == EVP_PKEY_RSA) {
        if (ku != UINT32_MAX && !(ku & KU_KEY_ENCIPHERMENT))
            return ck_error_set(CK_ERR_INVAL, "law-enforcement certificate: its key usage "
                                              "does not allow keyEncipherment");
        return 0;
    }
    if (type == EVP_PKEY_EC) {
        if (ku != UINT32_MAX && !(ku & KU_KEY_AGREEMENT))
            return ck_error_set(CK_ERR_INVAL, "law-enforcement certificate: its key usage "
                                              "does not allow keyAgreement");
        return 0;
    }
    return ck_error_set(CK_ERR_INVAL, "law-enforcement certificate: the key must be RSA or EC");
}

int
ck_li_envelope(const uint8_t *pt, size_t pt_len, X509 *cert, uint8_t **der, size_t *len)
{
    CMS_ContentInfo *cms = NULL;
    CMS_RecipientInfo *ri;
    EVP_PKEY_CTX *pctx;
    BIO *in = NULL;
    unsigned char *p = NULL;
    int n, ret;

    *der = NULL;
    *len = 0;
    if ((ret = ck_li_cert_check(cert)) != 0)
        return ret;
    /* An AEAD cipher makes OpenSSL build AuthEnvelopedData (RFC 5083): altering a record is
     * detected by the tag, not only by a plaintext that fails to parse. */
    if ((in = BIO_new_mem_buf(pt, (int)pt_len)) == NULL ||
        (cms = CMS_encrypt(NULL, NULL, EVP_aes_256_gcm(), CMS_BINARY | CMS_PARTIAL)) == NULL) {
        ret = ck_error_set_ssl(CK_ERR_CRYPTO, "intercept record: CMS setup");
        goto out;
    }
    if ((ri = CMS_add1_recipient_cert(cms, cert, CMS_KEY_PARAM)) == NULL) {
        ret = ck_error_set_ssl(CK_ERR_CRYPTO, "intercept record: recipient");
        goto out;
    }
    if (EVP_PKEY_get_base_id(X509_get0_pubkey(cert)) == EVP_PKEY_RSA) {
        /* RSA-OAEP (RFC 8017) rather than PKCS#1 v1.5 key transport. */
        if ((pctx = CMS_RecipientInfo_get0_pkey_ctx(ri)) == NULL ||
            EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_OAEP_PADDING) <= 0 ||
            EVP_PKEY_CTX_set_rsa_oaep_md(pctx, EVP_sha256()) <= 0 ||
            EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) <= 0) {
            ret = ck_error_set_ssl(CK_ERR_CRYPTO, "intercept record: RSA-OAEP");
            goto out;
        }
    }
    if (!CMS_final(cms, in, NULL, CMS_BINARY)) {
        ret = ck_error_set_ssl(CK_ERR_CRYPTO, "intercept record: encryption");
        goto out;
    }
    if ((n = i2d_CMS_ContentInfo(cms, &p)) <= 0 || (size_t)n > CK_LI_MAX_RECORD) {
        ret = ck_error_set_ssl(CK_ERR_ENCODE, "intercept record: encoding");
        goto out;
    }
    *der = p;
    *len = (size_t)n;
    p = NULL;
    ret = 0;
out:
    OPENSSL_free(p);
    CMS_ContentInfo_free(cms);
    BIO_free(in);
    return ret;
}

int
ck_li_unenvelope(const uint8_t *der, size_t len, EVP_PKEY *key, X509 *cert, uint8_t **pt,
                 size_t *pt_len)
{
    CMS_ContentInfo *cms = NULL;
    BIO *out = NULL;
    const unsigned char *p = der;
    const uint8_t *data;
    long n;
    int nid, ret;

    *pt = NULL;
    *pt_len = 0;
    if (len == 0 || len > CK_LI_MAX_RECORD)
        return ck_error_set(CK_ERR_DECODE, "intercept record: %zu bytes (at most %d)", len,
                            CK_LI_MAX_RECORD);
    if ((cms = d2i_CMS_ContentInfo(NULL, &p, (long)len)) == NULL || p != der + len) {
        ret = ck_error_set_ssl(CK_ERR_DECODE, "intercept record: not a CMS message");
        goto out;
    }
    nid = OBJ_obj2nid(CMS_get0_type(cms));
    if (nid != NID_id_smime_ct_authEnvelopedData && nid != NID_pkcs7_enveloped) {
        ret = ck_error_set(CK_ERR_DECODE, "intercept record: not an EnvelopedData");
        goto out;
    }
    if ((out = BIO_new(BIO_s_mem())) == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "intercept record: out of memory");
        goto out;
    }
    /* With no certificate OpenSSL tries every recipient and, for RSA, goes on with a random key
     * when none opens (the Bleichenbacher countermeasure): the AEAD tag then fails. Either way
     * a wrong key and an altered record are the same answer. */
    if (!CMS_decrypt(cms, key, cert, NULL, out, CMS_BINARY)) {
        ret = ck_error_set_ssl(CK_ERR_INTEGRITY, "intercept record: cannot be opened with this "
                                                 "key (not its recipient, or altered)");
        goto out;
    }
    n = BIO_get_mem_data(out, (char **)&data);
    if (n <= 0 || n > CK_LI_MAX_PLAINTEXT) {
        ret = ck_error_set(CK_ERR_DECODE, "intercept record: plaintext of %ld bytes", n);
        goto out;
    }
    if ((*pt = ck_memdup(data, (size_t)n)) == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "intercept record: out of memory");
        goto out;
    }
    *pt_len = (size_t)n;
    ret = 0;
out:
    if (out != NULL) {
        BUF_MEM *bm = NULL;
        BIO_get_mem_ptr(out, &bm);
        if (bm != NULL && bm->data != NULL)
            OPENSSL_cleanse(bm->data, bm->max);
    }
    BIO_free(out);
    CMS_ContentInfo_free(cms);
    return ret;
}

/* The key file: PKCS#12 (by its DER magic, whatever the name) or PEM. */
static int
load_key(const char *path, const char *passphrase, EVP_PKEY **key, X509 **cert)
{
    uint8_t *buf = NULL;
    size_t n = 0;
    ck_pki_identity *id = NULL;
    int fd = -1, ret;

    *key = NULL;
    *cert = NULL;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return ck_error_set(errno == ENOENT ? CK_ERR_NOTFOUND : CK_ERR_IO, "%s: %s", path,
                            strerror(errno));
    if ((buf = malloc(CK_PKI_MAX_FILE + 1)) == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "%s: out of memory", path);
        goto out;
    }
    if ((ret = ck_fd_read_all(fd, buf, CK_PKI_MAX_FILE + 1, &n)) != 0) {
        ret = ck_error_set(CK_ERR_IO, "%s: %s", path, ck_error_context());
        goto out;
    }
    if (n > CK_PKI_MAX_FILE) {
        ret = ck_error_set(CK_ERR_LIMIT, "%s: larger than %d bytes", path, CK_PKI_MAX_FILE);
        goto out;
    }
    if (n > 0 && buf[0] == 0x30) {
        if ((ret = ck_pki_identity_from_p12(buf, n, passphrase != NULL ? passphrase : "",
                                            &id)) != 0)
            goto out;
        *key = id->key;
        *cert = id->cert;
        id->key = NULL;
        id->cert = NULL;
    } else {
        ret = ck_pki_key_load_pem(path, passphrase, key);
    }
out:
    if (buf != NULL)
        ck_free_secret(buf, CK_PKI_MAX_FILE + 1);
    if (fd >= 0)
        close(fd);
    ck_pki_identity_free(id);
    return ret;
}

int
ck_li_record_open(const uint8_t *der, size_t der_len, const char *key_path,
                  const char *passphrase, struct ck_li_call *out)
{
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    uint8_t *pt = NULL;
    size_t pt_len = 0;
    int ret;

    memset(out, 0, sizeof(*out));
    if (der == NULL || key_path == NULL)
        return ck_error_set(CK_ERR_INVAL, "intercept record: no record or no key");
    if ((ret = load_key(key_path, passphrase, &key, &cert)) != 0)
        goto out;
    if ((ret = ck_li_unenvelope(der, der_len, key, cert, &pt, &pt_len)) != 0)
        goto out;
    ret = ck_li_record_decode(pt, pt_len, out);
out:
    if (pt != NULL)
        ck_free_secret(pt, pt_len);
    EVP_PKEY_free(key);
    X509_free(cert);
    return ret;
}
