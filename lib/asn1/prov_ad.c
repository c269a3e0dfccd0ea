/* The restricted-calls authorization data (prov_ad.h, docs/PROTOCOL.md "Restricted calls
 * authorization data"). Same pipeline as the Kerberos types: DER pre-scan within a small cap ->
 * template d2i -> no trailing bytes -> field validation; and, because a service decides what a
 * device may call from these bytes, the decoded value must re-encode to exactly the input (one
 * encoding per value: DER, not merely BER the scanner let through). */
#include <string.h>

#include <openssl/asn1t.h>
#include <openssl/crypto.h>

#include "cablekey/error.h"
#include "cablekey/prov_ad.h"
#include "asn1/asn1_int.h"

#define STR_(x) #x
#define STR(x) STR_(x)

/* 16 numbers of 15 digits with their headers, the hashes and the wrappers fit in ~430 bytes. */
#define AD_RESTRICTED_MAX_DER 1024

/* OpenSSL has no ready-made stack type for IA5String. */
DEFINE_STACK_OF(ASN1_IA5STRING)

typedef struct {
    ASN1_INTEGER *version;               /* [0] */
    ASN1_OCTET_STRING *mac;              /* [1] */
    ASN1_OCTET_STRING *key_hash;         /* [2] */
    STACK_OF(ASN1_IA5STRING) *numbers;   /* [3] */
} CK_RESTRICTED_CALLS;

ASN1_SEQUENCE(CK_RESTRICTED_CALLS) = {
    ASN1_EXP(CK_RESTRICTED_CALLS, version, ASN1_INTEGER, 0),
    ASN1_EXP(CK_RESTRICTED_CALLS, mac, ASN1_OCTET_STRING, 1),
    ASN1_EXP(CK_RESTRICTED_CALLS, key_hash, ASN1_OCTET_STRING, 2),
    ASN1_EXP_SEQUENCE_OF(CK_RESTRICTED_CALLS, numbers, ASN1_IA5STRING, 3),
} static_ASN1_SEQUENCE_END(CK_RESTRICTED_CALLS)

static const struct ck_asn1_limits lim_restricted = {
    AD_RESTRICTED_MAX_DER, 32, 32,
};

static void
restricted_free(CK_RESTRICTED_CALLS *v)
{
    ASN1_item_free((ASN1_VALUE *)v, ASN1_ITEM_rptr(CK_RESTRICTED_CALLS));
}

static bool
digits_only(const unsigned char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

static int
v_restricted(const ck_vctx *c, const void *vv, int tag)
{
    const CK_RESTRICTED_CALLS *v = vv;
    int64_t version;
    int n;

    (void)tag;
    if (v->version == NULL || ASN1_INTEGER_get_int64(&version, v->version) != 1)
        return ck_asn1_fail(c, "version", "unreadable");
    if (version != 1)
        return ck_asn1_fail(c, "version", "is not 1");
    if (v->mac == NULL || ASN1_STRING_length(v->mac) != 6)
        return ck_asn1_fail(c, "mac", "is not 6 octets");
    if (v->key_hash == NULL || ASN1_STRING_length(v->key_hash) != 32)
        return ck_asn1_fail(c, "key-hash", "is not 32 octets");
    n = v->numbers == NULL ? 0 : sk_ASN1_IA5STRING_num(v->numbers);
    if (n < 1)
        return ck_asn1_fail(c, "numbers", "is empty");
    if (n > CK_AD_RESTRICTED_MAX_NUMBERS)
        return ck_asn1_fail(c, "numbers",
                            "has more than " STR(CK_AD_RESTRICTED_MAX_NUMBERS) " entries");
    for (int i = 0; i < n; i++) {
        const ASN1_IA5STRING *s = sk_ASN1_IA5STRING_value(v->numbers, i);
        int len = s == NULL ? 0 : ASN1_STRING_length(s);

        if (len < 1 || len > CK_AD_RESTRICTED_NUMBER_MAX)
            return ck_asn1_fail(c, "numbers", "has an entry of bad length");
        if (!digits_only(ASN1_STRING_get0_data(s), (size_t)len))
            return ck_asn1_fail(c, "numbers", "has an entry that is not all digits");
        /* A repeated number is harmless to enforce but says the encoder is confused. */
        for (int j = 0; j < i; j++) {
            const ASN1_IA5STRING *t = sk_ASN1_IA5STRING_value(v->numbers, j);

            if (ASN1_STRING_length(t) == len &&
                memcmp(ASN1_STRING_get0_data(t), ASN1_STRING_get0_data(s), (size_t)len) == 0)
                return ck_asn1_fail(c, "numbers", "has a duplicate entry");
        }
    }
    return 0;
}

int
ck_ad_restricted_encode(const ck_ad_restricted *r, uint8_t **der, size_t *len)
{
    CK_RESTRICTED_CALLS *v = NULL;
    ASN1_IA5STRING *s = NULL;
    int rc;

    if (der == NULL || len == NULL)
        return ck_error_set(CK_ERR_INVAL, "RestrictedCalls: no output");
    *der = NULL;
    *len = 0;
    if (r == NULL)
        return ck_error_set(CK_ERR_INVAL, "RestrictedCalls: nothing to encode");
    if (r->n_numbers > CK_AD_RESTRICTED_MAX_NUMBERS)
        return ck_error_set(CK_ERR_LIMIT, "RestrictedCalls: %zu numbers (at most %d)",
                            r->n_numbers, CK_AD_RESTRICTED_MAX_NUMBERS);
    if ((v = (CK_RESTRICTED_CALLS *)ASN1_item_new(ASN1_ITEM_rptr(CK_RESTRICTED_CALLS))) == NULL ||
        (v->numbers == NULL && (v->numbers = sk_ASN1_IA5STRING_new_null()) == NULL) ||
        !ASN1_INTEGER_set_int64(v->version, 1) ||
        (rc = ck_asn1_octets_set(&v->mac, r->mac, sizeof(r->mac))) != 0 ||
        (rc = ck_asn1_octets_set(&v->key_hash, r->key_sha256, sizeof(r->key_sha256))) != 0) {
        rc = ck_error_set(CK_ERR_NOMEM, "RestrictedCalls");
        goto out;
    }
    for (size_t i = 0; i < r->n_numbers; i++) {
        size_t n = strnlen(r->numbers[i], sizeof(r->numbers[i]));

        if (n == sizeof(r->numbers[i])) {
            rc = ck_error_set(CK_ERR_INVAL, "RestrictedCalls: number %zu is not terminated", i);
            goto out;
        }
        if ((s = ASN1_IA5STRING_new()) == NULL || !ASN1_STRING_set(s, r->numbers[i], (int)n) ||
            !sk_ASN1_IA5STRING_push(v->numbers, s)) {
            rc = ck_error_set(CK_ERR_NOMEM, "RestrictedCalls");
            goto out;
        }
        s = NULL;
    }
    rc = ck_asn1_encode_item(v, ASN1_ITEM_rptr(CK_RESTRICTED_CALLS), "RestrictedCalls",
                             &lim_restricted, v_restricted, 0, der, len);
out:
    ASN1_IA5STRING_free(s);
    restricted_free(v);
    return rc;
}

int
ck_ad_restricted_decode(const uint8_t *der, size_t len, ck_ad_restricted *out)
{
    CK_RESTRICTED_CALLS *v = NULL;
    unsigned char *again = NULL;
    int n, rc;

    if (out == NULL || (der == NULL && len > 0))
        return ck_error_set(CK_ERR_INVAL, "RestrictedCalls: no input or output");
    memset(out, 0, sizeof(*out));
    rc = ck_asn1_decode_item(der, len, ASN1_ITEM_rptr(CK_RESTRICTED_CALLS), "RestrictedCalls",
                             &lim_restricted, v_restricted, 0, (void **)&v);
    if (rc != 0)
        goto out;
    n = ASN1_item_i2d((const ASN1_VALUE *)v, &again, ASN1_ITEM_rptr(CK_RESTRICTED_CALLS));
    if (n <= 0 || (size_t)n != len || memcmp(again, der, len) != 0) {
        rc = ck_error_set(CK_ERR_DECODE, "RestrictedCalls: not DER (does not re-encode to "
                                         "the same bytes)");
        goto out;
    }
    memcpy(out->mac, ASN1_STRING_get0_data(v->mac), sizeof(out->mac));
    memcpy(out->key_sha256, ASN1_STRING_get0_data(v->key_hash), sizeof(out->key_sha256));
    out->n_numbers = (size_t)sk_ASN1_IA5STRING_num(v->numbers);
    for (size_t i = 0; i < out->n_numbers; i++) {
        const ASN1_IA5STRING *s = sk_ASN1_IA5STRING_value(v->numbers, (int)i);

        memcpy(out->numbers[i], ASN1_STRING_get0_data(s), (size_t)ASN1_STRING_length(s));
        out->numbers[i][ASN1_STRING_length(s)] = '\0';
    }
    rc = 0;
out:
    if (rc != 0)
        memset(out, 0, sizeof(*out));
    OPENSSL_free(again);
    restricted_free(v);
    return rc;
}

int
ck_ad_restricted_add(CK_AUTHORIZATION_DATA **ad, const ck_ad_restricted *r)
{
    CK_AUTHORIZATION_DATA *inner = NULL;
    uint8_t *elem = NULL, *wrapped = NULL;
    size_t elem_len = 0, wrapped_len = 0;
    int rc;

    if (ad == NULL)
        return ck_error_set(CK_ERR_INVAL, "RestrictedCalls: no authorization data");
    if ((rc = ck_ad_restricted_encode(r, &elem, &elem_len)) != 0 ||
        (rc = ck_asn1_ad_add(&inner, CK_AD_CABLEKEY_RESTRICTED, elem, elem_len)) != 0 ||
        (rc = ck_asn1_authorization_data_encode(inner, &wrapped, &wrapped_len)) != 0 ||
        (rc = ck_asn1_ad_add(ad, CK_AD_IF_RELEVANT, wrapped, wrapped_len)) != 0)
        goto out;
    rc = 0;
out:
    ck_asn1_free_der(elem, elem_len);
    ck_asn1_free_der(wrapped, wrapped_len);
    CK_AUTHORIZATION_DATA_free(inner);
    return rc;
}

/* One level of AuthorizationData: our element found directly (decoded into *out, counted in
 * *count); AD-IF-RELEVANT containers are opened when depth allows. A container inside a
 * container is opened too, but only to refuse our element there: the KDC never nests it, and a
 * restriction a service would not look for must not pass for "no restriction". */
static int
find_level(const CK_AUTHORIZATION_DATA *ad, int depth, ck_ad_restricted *out, int *count)
{
    int rc;

    for (int i = 0; i < sk_CK_AD_ENTRY_num(ad); i++) {
        const CK_AD_ENTRY *e = sk_CK_AD_ENTRY_value(ad, i);
        const uint8_t *data;
        size_t len;

        if (e == NULL || e->ad_data == NULL)
            return ck_error_set(CK_ERR_DECODE, "AuthorizationData: empty entry");
        data = ASN1_STRING_get0_data(e->ad_data);
        len = (size_t)ASN1_STRING_length(e->ad_data);
        if (e->ad_type == CK_AD_CABLEKEY_RESTRICTED) {
            if (depth > 1)
                return ck_error_set(CK_ERR_DECODE, "RestrictedCalls: nested deeper than one "
                                                   "AD-IF-RELEVANT");
            if (++*count > 1)
                return ck_error_set(CK_ERR_POLICY, "RestrictedCalls: present more than once");
            if ((rc = ck_ad_restricted_decode(data, len, out)) != 0)
                return rc;
        } else if (e->ad_type == CK_AD_IF_RELEVANT && depth < 2) {
            CK_AUTHORIZATION_DATA *inner = NULL;

            /* An unreadable container might hide the restriction: fail closed. */
            if (ck_asn1_authorization_data_decode(data, len, &inner) != 0)
                return ck_error_set(CK_ERR_DECODE, "AD-IF-RELEVANT: %s", ck_error_context());
            rc = find_level(inner, depth + 1, out, count);
            CK_AUTHORIZATION_DATA_free(inner);
            if (rc != 0)
                return rc;
        }
    }
    return 0;
}

int
ck_ad_restricted_find(const CK_AUTHORIZATION_DATA *ad, ck_ad_restricted *out, bool *found)
{
    ck_ad_restricted tmp;
    int count = 0, rc;

    if (out == NULL || found == NULL)
        return ck_error_set(CK_ERR_INVAL, "RestrictedCalls: no output");
    *found = false;
    memset(out, 0, sizeof(*out));
    if (ad == NULL)
        return 0;
    memset(&tmp, 0, sizeof(tmp));
    if ((rc = find_level(ad, 0, &tmp, &count)) != 0)
        return rc;
    if (count == 1) {
        *out = tmp;
        *found = true;
    }
    return 0;
}

bool
ck_ad_restricted_allows(const ck_ad_restricted *r, const char *number)
{
    size_t n;

    if (r == NULL || number == NULL)
        return false;
    n = strlen(number);
    if (n == 0 || n > CK_AD_RESTRICTED_NUMBER_MAX)
        return false;
    for (size_t i = 0; i < r->n_numbers && i < CK_AD_RESTRICTED_MAX_NUMBERS; i++)
        if (strncmp(r->numbers[i], number, sizeof(r->numbers[i])) == 0)
            return true;
    return false;
}
