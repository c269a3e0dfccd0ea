/* Operator device certificates and phone IDs (issue 10): what the provisioning CA's signer
 * issues and what the KDC, the CLI and the tests read back. The extension is built and parsed
 * with an OpenSSL ASN.1 template (SEQUENCE OF OCTET STRING), never by hand. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/asn1t.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "cablekey/error.h"
#include "cablekey/pki.h"
#include "cablekey/util.h"
#include "pki/pki_int.h"

#define PHONE_ID_LABEL "cablekey phone-id v1"
/* The extension's DER is at most 2 + 8 * (2 + 32) bytes; anything much larger is hostile. */
#define PHONE_IDS_DER_MAX 1024

/* OpenSSL declares no stack of OCTET STRINGs; the template needs one. */
DEFINE_STACK_OF(ASN1_OCTET_STRING)
typedef STACK_OF(ASN1_OCTET_STRING) CK_PHONE_IDS;
DECLARE_ASN1_FUNCTIONS(CK_PHONE_IDS)

ASN1_ITEM_TEMPLATE(CK_PHONE_IDS) =
    ASN1_EX_TEMPLATE_TYPE(ASN1_TFLG_SEQUENCE_OF, 0, PhoneIds, ASN1_OCTET_STRING)
ASN1_ITEM_TEMPLATE_END(CK_PHONE_IDS)
IMPLEMENT_ASN1_FUNCTIONS(CK_PHONE_IDS)

static bool
number_ok(const char *number)
{
    size_t len = number != NULL ? strlen(number) : 0;

    if (len == 0 || len > CK_PKI_NUMBER_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (number[i] < '0' || number[i] > '9')
            return false;
    }
    return true;
}

int
ck_pki_phone_id(const uint8_t key[CK_PKI_PHONE_ID_KEY_LEN], const char *number,
                uint8_t out[CK_PKI_PHONE_ID_LEN])
{
    EVP_MAC *mac = NULL;
    EVP_MAC_CTX *ctx = NULL;
    OSSL_PARAM params[2];
    size_t len = 0;
    int ret = 0;

    memset(out, 0, CK_PKI_PHONE_ID_LEN);
    if (!number_ok(number))
        return ck_error_set(CK_ERR_INVAL, "phone number: 1..%d digits expected",
                            CK_PKI_NUMBER_MAX);
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();
    if ((mac = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL ||
        (ctx = EVP_MAC_CTX_new(mac)) == NULL ||
        !EVP_MAC_init(ctx, key, CK_PKI_PHONE_ID_KEY_LEN, params) ||
        !EVP_MAC_update(ctx, (const uint8_t *)PHONE_ID_LABEL, strlen(PHONE_ID_LABEL)) ||
        !EVP_MAC_update(ctx, (const uint8_t *)number, strlen(number)) ||
        !EVP_MAC_final(ctx, out, &len, CK_PKI_PHONE_ID_LEN) || len != CK_PKI_PHONE_ID_LEN) {
        memset(out, 0, CK_PKI_PHONE_ID_LEN);
        ret = ck_error_set_ssl(CK_ERR_CRYPTO, "phone ID (HMAC-SHA-256)");
    }
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return ret;
}

int
ck_pki_phone_id_key_load(const char *path, uint8_t key[CK_PKI_PHONE_ID_KEY_LEN])
{
    uint8_t buf[CK_PKI_PHONE_ID_KEY_LEN + 1];
    struct stat st;
    size_t len = 0;
    int fd, ret;

    memset(key, 0, CK_PKI_PHONE_ID_KEY_LEN);
    if (path == NULL || *path == '\0')
        return ck_error_set(CK_ERR_INVAL, "phone-ID key: no file name");
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
    if (fd < 0)
        return ck_error_set(errno == ENOENT ? CK_ERR_NOTFOUND : CK_ERR_IO, "phone-ID key %s: %s",
                            path, strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ret = ck_error_set(CK_ERR_INVAL, "phone-ID key %s is not a regular file", path);
        goto out;
    }
    if ((st.st_mode & 077) != 0 || st.st_uid != geteuid()) {
        ret = ck_error_set(CK_ERR_PERM, "phone-ID key %s: mode %04o, owner uid %u (must be 0600 "
                                        "and this user's)", path,
                           (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid);
        goto out;
    }
    if ((ret = ck_fd_read_all(fd, buf, sizeof(buf), &len)) != 0) {
        ret = ck_error_set(ret, "phone-ID key %s: %s", path, ck_error_context());
        goto out;
    }
    if (len != CK_PKI_PHONE_ID_KEY_LEN) {
        ret = ck_error_set(CK_ERR_INVAL, "phone-ID key %s: %s %d bytes", path,
                           len > CK_PKI_PHONE_ID_KEY_LEN ? "more than" : "not",
                           CK_PKI_PHONE_ID_KEY_LEN);
        goto out;
    }
    memcpy(key, buf, CK_PKI_PHONE_ID_KEY_LEN);
    ret = 0;
out:
    ck_memzero(buf, sizeof(buf));
    close(fd);
    return ret;
}

int
ck_pki_phone_id_key_create(const char *path)
{
    uint8_t key[CK_PKI_PHONE_ID_KEY_LEN];
    int ret;

    if (RAND_priv_bytes(key, sizeof(key)) != 1)
        return ck_error_set_ssl(CK_ERR_CRYPTO, "phone-ID key: random bytes");
    /* Linked into place without replacing: an existing key (which would orphan every phone ID
     * already issued) is never overwritten. */
    ret = ck_file_write_atomic(path, key, sizeof(key), 0);
    ck_memzero(key, sizeof(key));
    return ret;
}

/* ------------------------------------------------------------------------------------------- */

int
ck_pki_phone_ids_ext(X509 *x, const uint8_t (*ids)[CK_PKI_PHONE_ID_LEN], size_t n)
{
    CK_PHONE_IDS *seq = NULL;
    ASN1_OCTET_STRING *os = NULL, *value = NULL;
    ASN1_OBJECT *oid = NULL;
    X509_EXTENSION *ext = NULL;
    unsigned char *der = NULL;
    int der_len, ret = 0;

    if (n > CK_PKI_MAX_PHONE_IDS)
        return ck_error_set(CK_ERR_LIMIT, "more than %d phone IDs", CK_PKI_MAX_PHONE_IDS);
    if (n > 0 && ids == NULL)
        return ck_error_set(CK_ERR_INVAL, "phone IDs missing");
    if ((seq = CK_PHONE_IDS_new()) == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "phone IDs");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if ((os = ASN1_OCTET_STRING_new()) == NULL ||
            !ASN1_OCTET_STRING_set(os, ids[i], CK_PKI_PHONE_ID_LEN) ||
            !sk_ASN1_OCTET_STRING_push(seq, os)) {
            ret = ck_error_set(CK_ERR_NOMEM, "phone IDs");
            goto out;
        }
        os = NULL;
    }
    if ((der_len = i2d_CK_PHONE_IDS(seq, &der)) <= 0) {
        ret = ck_error_set_ssl(CK_ERR_ENCODE, "phone IDs extension");
        goto out;
    }
    if ((oid = OBJ_txt2obj(CK_PKI_PHONE_IDS_OID, 1)) == NULL ||
        (value = ASN1_OCTET_STRING_new()) == NULL ||
        !ASN1_OCTET_STRING_set(value, der, der_len) ||
        (ext = X509_EXTENSION_create_by_OBJ(NULL, oid, 0, value)) == NULL ||
        !X509_add_ext(x, ext, -1)) {
        ret = ck_error_set_ssl(CK_ERR_ENCODE, "phone IDs extension");
        goto out;
    }
out:
    X509_EXTENSION_free(ext);
    ASN1_OCTET_STRING_free(value);
    ASN1_OBJECT_free(oid);
    OPENSSL_free(der);
    ASN1_OCTET_STRING_free(os);
    sk_ASN1_OCTET_STRING_pop_free(seq, ASN1_OCTET_STRING_free);
    return ret;
}

int
ck_pki_cert_phone_ids(X509 *cert, uint8_t (*ids)[CK_PKI_PHONE_ID_LEN], size_t max, size_t *n)
{
    ASN1_OBJECT *oid = NULL;
    CK_PHONE_IDS *seq = NULL;
    unsigned char *re = NULL;
    const unsigned char *p;
    const ASN1_OCTET_STRING *value;
    int idx, len, re_len, ret = 0;

    *n = 0;
    if (cert == NULL)
        return ck_error_set(CK_ERR_INVAL, "phone IDs: no certificate");
    if ((oid = OBJ_txt2obj(CK_PKI_PHONE_IDS_OID, 1)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "phone IDs");
    idx = X509_get_ext_by_OBJ(cert, oid, -1);
    if (idx < 0) {
        ret = ck_error_set(CK_ERR_NOTFOUND, "the certificate has no phone-ID extension");
        goto out;
    }
    if (X509_get_ext_by_OBJ(cert, oid, idx) >= 0) {
        ret = ck_error_set(CK_ERR_DECODE, "the phone-ID extension appears twice");
        goto out;
    }
    value = X509_EXTENSION_get_data(X509_get_ext(cert, idx));
    len = ASN1_STRING_length(value);
    if (len <= 0 || len > PHONE_IDS_DER_MAX) {
        ret = ck_error_set(len > 0 ? CK_ERR_LIMIT : CK_ERR_DECODE,
                           "phone-ID extension: %d bytes", len);
        goto out;
    }
    p = ASN1_STRING_get0_data(value);
    if ((seq = d2i_CK_PHONE_IDS(NULL, &p, len)) == NULL ||
        p != ASN1_STRING_get0_data(value) + len) {
        ret = ck_error_set(CK_ERR_DECODE, "phone-ID extension: not a SEQUENCE OF OCTET STRING");
        goto out;
    }
    /* Strict DER: the encoding must be the one we would write (no BER lengths, no padding). */
    if ((re_len = i2d_CK_PHONE_IDS(seq, &re)) != len ||
        memcmp(re, ASN1_STRING_get0_data(value), (size_t)len) != 0) {
        ret = ck_error_set(CK_ERR_DECODE, "phone-ID extension: not DER");
        goto out;
    }
    if ((size_t)sk_ASN1_OCTET_STRING_num(seq) > max ||
        sk_ASN1_OCTET_STRING_num(seq) > CK_PKI_MAX_PHONE_IDS) {
        ret = ck_error_set(CK_ERR_LIMIT, "phone-ID extension: %d IDs (at most %zu)",
                           sk_ASN1_OCTET_STRING_num(seq),
                           max < CK_PKI_MAX_PHONE_IDS ? max : (size_t)CK_PKI_MAX_PHONE_IDS);
        goto out;
    }
    for (int i = 0; i < sk_ASN1_OCTET_STRING_num(seq); i++) {
        const ASN1_OCTET_STRING *os = sk_ASN1_OCTET_STRING_value(seq, i);
        if (ASN1_STRING_length(os) != CK_PKI_PHONE_ID_LEN) {
            ret = ck_error_set(CK_ERR_DECODE, "phone-ID extension: ID %d is %d bytes, not %d",
                               i, ASN1_STRING_length(os), CK_PKI_PHONE_ID_LEN);
            *n = 0;
            goto out;
        }
        memcpy(ids[i], ASN1_STRING_get0_data(os), CK_PKI_PHONE_ID_LEN);
        *n = (size_t)i + 1;
    }
out:
    ERR_clear_error();
    OPENSSL_free(re);
    sk_ASN1_OCTET_STRING_pop_free(seq, ASN1_OCTET_STRING_free);
    ASN1_OBJECT_free(oid);
    return ret;
}

/* The value of the first entry of nid in name, or NULL (a CA subject always has O). */
static const char *
name_entry(const X509_NAME *name, int nid, char *buf, size_t size)
{
    int idx = X509_NAME_get_index_by_NID(name, nid, -1);
    const ASN1_STRING *s;
    int len;

    if (idx < 0)
        return NULL;
    s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
    len = ASN1_STRING_length(s);
    if (len <= 0 || (size_t)len >= size || memchr(ASN1_STRING_get0_data(s), 0, (size_t)len))
        return NULL;
    memcpy(buf, ASN1_STRING_get0_data(s), (size_t)len);
    buf[len] = '\0';
    return buf;
}

/* The manufacturer certificate must be for the MAC asked for (the subject's one CN). */
static int
check_mfg_mac(const X509_NAME *subject, const uint8_t mac[6])
{
    uint8_t cert_mac[6];

    if (ck_pki_name_device_mac(subject, cert_mac) != 0)
        return ck_error_set(CK_ERR_POLICY, "manufacturer certificate: %s", ck_error_context());
    if (!ck_ct_equal(cert_mac, mac, 6)) {
        char want[CK_PKI_MAC_TEXT], got[CK_PKI_MAC_TEXT];
        ck_pki_mac_format(mac, want);
        ck_pki_mac_format(cert_mac, got);
        return ck_error_set(CK_ERR_POLICY, "manufacturer certificate is for MAC %s, not %s", got,
                            want);
    }
    return 0;
}

/* The OPERATOR_DEVICE profile, for both entry points: spki is the manufacturer's
 * SubjectPublicKeyInfo, copied as it is; pub its decoded key, or NULL when only spki is known. */
static int
operator_issue(const X509_PUBKEY *spki, EVP_PKEY *pub, const uint8_t mac[6],
               const uint8_t (*phone_ids)[CK_PKI_PHONE_ID_LEN], size_t n_phone_ids,
               int64_t not_before, int64_t not_after, X509 *issuer, EVP_PKEY *issuer_key,
               X509 **out)
{
    ck_pki_cert_spec spec = {0};
    char cn[CK_PKI_MAC_TEXT], c[8], o[80], ou[80];
    const X509_NAME *iname = X509_get_subject_name(issuer);

    ck_pki_mac_format(mac, cn);
    spec.profile = CK_PKI_PROFILE_OPERATOR_DEVICE;
    spec.country = name_entry(iname, NID_countryName, c, sizeof(c));
    spec.org = name_entry(iname, NID_organizationName, o, sizeof(o));
    spec.org_unit = name_entry(iname, NID_organizationalUnitName, ou, sizeof(ou));
    spec.common_name = cn;
    spec.path_len = -1;
    spec.not_before = not_before;
    spec.not_after = not_after;
    spec.phone_ids = phone_ids;
    spec.n_phone_ids = n_phone_ids;
    spec.spki = spki; /* the same key, as the manufacturer wrote it */
    if (spec.org == NULL)
        return ck_error_set(CK_ERR_INVAL, "provisioning CA subject has no organization");
    return ck_pki_cert_issue(&spec, pub, issuer, issuer_key, out);
}

int
ck_pki_operator_issue(X509 *mfg_cert, const uint8_t mac[6],
                      const uint8_t (*phone_ids)[CK_PKI_PHONE_ID_LEN], size_t n_phone_ids,
                      int64_t not_before, int64_t not_after, X509 *issuer, EVP_PKEY *issuer_key,
                      X509 **out)
{
    EVP_PKEY *pub;
    int ret;

    *out = NULL;
    if (mfg_cert == NULL || issuer == NULL || issuer_key == NULL || mac == NULL)
        return ck_error_set(CK_ERR_INVAL, "operator certificate: missing argument");
    if ((ret = check_mfg_mac(X509_get_subject_name(mfg_cert), mac)) != 0)
        return ret;
    if ((pub = X509_get0_pubkey(mfg_cert)) == NULL) {
        ERR_clear_error();
        return ck_error_set(CK_ERR_DECODE, "manufacturer certificate: unreadable public key");
    }
    return operator_issue(X509_get_X509_PUBKEY(mfg_cert), pub, mac, phone_ids, n_phone_ids,
                          not_before, not_after, issuer, issuer_key, out);
}

/* Why certifying a key nobody decoded here is safe: the signer only issues for a device the KDC
 * has admitted, and the KDC admits a device only after its PKINIT signature verified with this
 * very key; the store keeps the manufacturer certificate as it was admitted, byte for byte. A
 * key that does not decode could not have signed, so it does not get here through the
 * provisioning server; a caller that forges one (the signer verifies no manufacturer signature,
 * with or without this path) gets a certificate for a key nobody can use. What is checked is
 * what the new certificate's content depends on: the MAC, and an algorithm (RSA, or EC on a
 * named curve) the profile knows. */
int
ck_pki_operator_issue_der(const uint8_t *mfg_der, size_t mfg_len, const uint8_t mac[6],
                          const uint8_t (*phone_ids)[CK_PKI_PHONE_ID_LEN], size_t n_phone_ids,
                          int64_t not_before, int64_t not_after, X509 *issuer,
                          EVP_PKEY *issuer_key, X509 **out)
{
    ck_pki_mfg_cert *mfg = NULL;
    X509_PUBKEY *spki = NULL;
    int ret;

    *out = NULL;
    if (mfg_der == NULL || issuer == NULL || issuer_key == NULL || mac == NULL)
        return ck_error_set(CK_ERR_INVAL, "operator certificate: missing argument");
    if ((ret = ck_pki_mfg_cert_decode(mfg_der, mfg_len, &mfg)) != 0 ||
        (ret = check_mfg_mac(ck_pki_mfg_cert_subject(mfg), mac)) != 0 ||
        (ret = ck_pki_mfg_cert_spki(mfg, &spki)) != 0)
        goto out;
    ret = operator_issue(spki, NULL, mac, phone_ids, n_phone_ids, not_before, not_after, issuer,
                         issuer_key, out);
out:
    X509_PUBKEY_free(spki);
    ck_pki_mfg_cert_free(mfg);
    return ret;
}
