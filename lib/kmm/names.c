/* KMM names, ciphersuite support, rank and key lengths (code points: PROTOCOL-NOTES §1.4). */
#include <string.h>

#include "cablekey/error.h"
#include "cablekey/kmm.h"

const char *
ck_kmm_type_name(uint8_t type)
{
    switch (type) {
    case CK_KMM_WAKE_UP: return "Wake Up";
    case CK_KMM_AP_REQ: return "AP Request";
    case CK_KMM_AP_REP: return "AP Reply";
    case CK_KMM_SP_RECOVERED: return "Security Parameter Recovered";
    case CK_KMM_REKEY: return "Rekey";
    case CK_KMM_ERROR_REPLY: return "Error Reply";
    default: return "unknown";
    }
}

const char *
ck_kmm_doi_name(uint8_t doi)
{
    switch (doi) {
    case CK_KMM_DOI_IPSEC: return "IPsec";
    case CK_KMM_DOI_SNMPV3: return "SNMPv3";
    default: return "unknown";
    }
}

const char *
ck_kmm_auth_name(uint8_t doi, uint8_t auth)
{
    if (doi == CK_KMM_DOI_IPSEC) {
        switch (auth) {
        case CK_KMM_AUTH_HMAC_MD5_96: return "HMAC-MD5-96";
        case CK_KMM_AUTH_HMAC_SHA1_96: return "HMAC-SHA-1-96";
        default: break;
        }
    } else if (doi == CK_KMM_DOI_SNMPV3) {
        switch (auth) {
        case CK_KMM_SNMP_AUTH_MD5: return "HMAC-MD5";
        case CK_KMM_SNMP_AUTH_SHA1: return "HMAC-SHA1";
        default: break;
        }
    }
    return "unknown";
}

const char *
ck_kmm_enc_name(uint8_t doi, uint8_t enc)
{
    if (doi == CK_KMM_DOI_IPSEC) {
        switch (enc) {
        case CK_KMM_ENC_3DES: return "3DES-CBC";
        case CK_KMM_ENC_RC5: return "RC5";
        case CK_KMM_ENC_IDEA: return "IDEA";
        case CK_KMM_ENC_CAST: return "CAST";
        case CK_KMM_ENC_BLOWFISH: return "Blowfish";
        case CK_KMM_ENC_NULL: return "NULL";
        case CK_KMM_ENC_AES128: return "AES-128-CBC";
        default: break;
        }
    } else if (doi == CK_KMM_DOI_SNMPV3) {
        switch (enc) {
        case CK_KMM_SNMP_PRIV_NULL: return "NULL";
        case CK_KMM_SNMP_PRIV_DES: return "DES-CBC";
        default: break;
        }
    }
    return "unknown";
}

/* Rank of the privacy half: encryption outranks none, AES outranks 3DES (and DES). 0 = not
 * implemented. */
static int
enc_rank(uint8_t doi, uint8_t enc)
{
    if (doi == CK_KMM_DOI_IPSEC) {
        switch (enc) {
        case CK_KMM_ENC_AES128: return 3;
        case CK_KMM_ENC_3DES: return 2;
        case CK_KMM_ENC_NULL: return 1;
        default: return 0;
        }
    }
    if (doi == CK_KMM_DOI_SNMPV3) {
        switch (enc) {
        case CK_KMM_SNMP_PRIV_DES: return 2;
        case CK_KMM_SNMP_PRIV_NULL: return 1;
        default: return 0;
        }
    }
    return 0;
}

static int
auth_rank(uint8_t doi, uint8_t auth)
{
    if (doi == CK_KMM_DOI_IPSEC)
        return auth == CK_KMM_AUTH_HMAC_SHA1_96 ? 2 : auth == CK_KMM_AUTH_HMAC_MD5_96 ? 1 : 0;
    if (doi == CK_KMM_DOI_SNMPV3)
        return auth == CK_KMM_SNMP_AUTH_SHA1 ? 2 : auth == CK_KMM_SNMP_AUTH_MD5 ? 1 : 0;
    return 0;
}

/* Confidentiality first, then the MAC: SHA1+NULL ranks below MD5+3DES. */
int
ck_kmm_suite_rank(uint8_t doi, struct ck_kmm_suite s)
{
    int e = enc_rank(doi, s.enc), a = auth_rank(doi, s.auth);

    return e == 0 || a == 0 ? 0 : (e - 1) * 2 + a;
}

bool
ck_kmm_suite_supported(uint8_t doi, struct ck_kmm_suite s)
{
    return ck_kmm_suite_rank(doi, s) > 0;
}

int
ck_kmm_suite_key_lengths(uint8_t doi, struct ck_kmm_suite s, size_t *enc_len, size_t *auth_len)
{
    size_t e = 0, a = 0;

    if (!ck_kmm_suite_supported(doi, s))
        return ck_error_set(CK_ERR_UNSUPPORTED, "KMM: ciphersuite %s/%s (DOI %s) not implemented",
                            ck_kmm_auth_name(doi, s.auth), ck_kmm_enc_name(doi, s.enc),
                            ck_kmm_doi_name(doi));
    if (doi == CK_KMM_DOI_IPSEC) {
        e = s.enc == CK_KMM_ENC_AES128 ? 16 : s.enc == CK_KMM_ENC_3DES ? 24 : 0;
        a = s.auth == CK_KMM_AUTH_HMAC_SHA1_96 ? 20 : 16;
    } else {
        /* DES privacy: 8 bytes of key and 8 of pre-IV (RFC 3414 §8.1.1.1). */
        e = s.enc == CK_KMM_SNMP_PRIV_DES ? 16 : 0;
        a = s.auth == CK_KMM_SNMP_AUTH_SHA1 ? 20 : 16;
    }
    if (enc_len != NULL)
        *enc_len = e;
    if (auth_len != NULL)
        *auth_len = a;
    return 0;
}

static const struct {
    uint8_t doi;
    struct ck_kmm_suite suite;
    const char *name;
} short_names[] = {
    {CK_KMM_DOI_IPSEC, {CK_KMM_AUTH_HMAC_SHA1_96, CK_KMM_ENC_AES128}, "sha1-aes128"},
    {CK_KMM_DOI_IPSEC, {CK_KMM_AUTH_HMAC_SHA1_96, CK_KMM_ENC_3DES}, "sha1-3des"},
    {CK_KMM_DOI_IPSEC, {CK_KMM_AUTH_HMAC_SHA1_96, CK_KMM_ENC_NULL}, "sha1-null"},
    {CK_KMM_DOI_IPSEC, {CK_KMM_AUTH_HMAC_MD5_96, CK_KMM_ENC_AES128}, "md5-aes128"},
    {CK_KMM_DOI_IPSEC, {CK_KMM_AUTH_HMAC_MD5_96, CK_KMM_ENC_3DES}, "md5-3des"},
    {CK_KMM_DOI_IPSEC, {CK_KMM_AUTH_HMAC_MD5_96, CK_KMM_ENC_NULL}, "md5-null"},
    {CK_KMM_DOI_SNMPV3, {CK_KMM_SNMP_AUTH_SHA1, CK_KMM_SNMP_PRIV_DES}, "sha1-des"},
    {CK_KMM_DOI_SNMPV3, {CK_KMM_SNMP_AUTH_SHA1, CK_KMM_SNMP_PRIV_NULL}, "sha1-null"},
    {CK_KMM_DOI_SNMPV3, {CK_KMM_SNMP_AUTH_MD5, CK_KMM_SNMP_PRIV_DES}, "md5-des"},
    {CK_KMM_DOI_SNMPV3, {CK_KMM_SNMP_AUTH_MD5, CK_KMM_SNMP_PRIV_NULL}, "md5-null"},
};

const char *
ck_kmm_suite_short_name(uint8_t doi, struct ck_kmm_suite s)
{
    for (size_t i = 0; i < sizeof(short_names) / sizeof(short_names[0]); i++)
        if (short_names[i].doi == doi && short_names[i].suite.auth == s.auth &&
            short_names[i].suite.enc == s.enc)
            return short_names[i].name;
    return "unknown";
}

int
ck_kmm_suite_from_short_name(uint8_t doi, const char *name, struct ck_kmm_suite *out)
{
    if (name == NULL || out == NULL)
        return ck_error_set(CK_ERR_INVAL, "KMM suite name: missing argument");
    for (size_t i = 0; i < sizeof(short_names) / sizeof(short_names[0]); i++)
        if (short_names[i].doi == doi && strcmp(short_names[i].name, name) == 0) {
            *out = short_names[i].suite;
            return 0;
        }
    return ck_error_set(CK_ERR_UNSUPPORTED, "KMM: unknown %s ciphersuite name", ck_kmm_doi_name(doi));
}
