/* Enctype registry and key objects. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cablekey/error.h"
#include "cablekey/util.h"
#include "crypto/crypto_int.h"

/* Parameters from RFC 3962 §6/§7 and RFC 8009 §2/§5/§8. Names and aliases as MIT krb5 spells
 * them (krb5.conf "permitted_enctypes" etc.), so that configs written for MIT work unchanged. */
static const ck_enctype_info enctypes[] = {
    {CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96, "aes128-cts-hmac-sha1-96", "aes128-cts",
     CK_FAMILY_RFC3962, CK_MD_SHA1, 16, 16, 12, 16, CK_CKSUMTYPE_HMAC_SHA1_96_AES128, 4096},
    {CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, "aes256-cts-hmac-sha1-96", "aes256-cts",
     CK_FAMILY_RFC3962, CK_MD_SHA1, 32, 32, 12, 16, CK_CKSUMTYPE_HMAC_SHA1_96_AES256, 4096},
    {CK_ENCTYPE_AES128_CTS_HMAC_SHA256_128, "aes128-cts-hmac-sha256-128", "aes128-sha2",
     CK_FAMILY_RFC8009, CK_MD_SHA256, 16, 16, 16, 32, CK_CKSUMTYPE_HMAC_SHA256_128_AES128, 32768},
    {CK_ENCTYPE_AES256_CTS_HMAC_SHA384_192, "aes256-cts-hmac-sha384-192", "aes256-sha2",
     CK_FAMILY_RFC8009, CK_MD_SHA384, 32, 24, 24, 48, CK_CKSUMTYPE_HMAC_SHA384_192_AES256, 32768},
};

#define N_ENCTYPES (sizeof(enctypes) / sizeof(enctypes[0]))

const ck_enctype_info *
ck_crypto_enctype_info(int32_t enctype)
{
    for (size_t i = 0; i < N_ENCTYPES; i++)
        if (enctypes[i].enctype == enctype)
            return &enctypes[i];
    return NULL;
}

const ck_enctype_info *
ck_crypto_cksum_info(int32_t cksumtype)
{
    for (size_t i = 0; i < N_ENCTYPES; i++)
        if (enctypes[i].cksumtype == cksumtype)
            return &enctypes[i];
    return NULL;
}

bool
ck_enctype_is_supported(int32_t enctype)
{
    return ck_crypto_enctype_info(enctype) != NULL;
}

const char *
ck_enctype_name(int32_t enctype)
{
    const ck_enctype_info *info = ck_crypto_enctype_info(enctype);

    return info != NULL ? info->name : "unknown";
}

int
ck_enctype_from_name(const char *name, int32_t *enctype)
{
    int64_t num = 0;

    if (name == NULL || *name == '\0')
        return ck_error_set(CK_ERR_INVAL, "empty enctype name");
    /* MIT compares enctype names case-insensitively. */
    for (size_t i = 0; i < N_ENCTYPES; i++) {
        if (strcasecmp(name, enctypes[i].name) == 0 || strcasecmp(name, enctypes[i].alias) == 0) {
            *enctype = enctypes[i].enctype;
            return 0;
        }
    }
    if (ck_parse_int64(name, INT32_MIN, INT32_MAX, &num) == 0) {
        if (!ck_enctype_is_supported((int32_t)num))
            return ck_error_set(CK_ERR_UNSUPPORTED, "unsupported enctype %lld", (long long)num);
        *enctype = (int32_t)num;
        return 0;
    }
    ck_error_clear();
    return ck_error_set(CK_ERR_UNSUPPORTED, "unknown enctype name");
}

size_t
ck_enctype_key_length(int32_t enctype)
{
    const ck_enctype_info *info = ck_crypto_enctype_info(enctype);

    return info != NULL ? info->key_len : 0;
}

int32_t
ck_enctype_checksum_type(int32_t enctype)
{
    const ck_enctype_info *info = ck_crypto_enctype_info(enctype);

    return info != NULL ? info->cksumtype : 0;
}

int
ck_key_init(ck_key *key, int32_t enctype, const uint8_t *data, size_t len)
{
    const ck_enctype_info *info = ck_crypto_enctype_info(enctype);

    ck_key_clear(key);
    if (info == NULL)
        return ck_error_set(CK_ERR_UNSUPPORTED, "unsupported enctype %d", (int)enctype);
    if (len != info->key_len)
        return ck_error_set(CK_ERR_INVAL, "%s key must be %zu bytes, not %zu", info->name,
                            info->key_len, len);
    key->enctype = enctype;
    key->length = (uint32_t)len;
    memcpy(key->contents, data, len);
    return 0;
}

void
ck_key_clear(ck_key *key)
{
    if (key != NULL)
        ck_memzero(key, sizeof(*key));
}

ck_key *
ck_key_new(void)
{
    return calloc(1, sizeof(ck_key));
}

void
ck_key_free(ck_key *key)
{
    ck_free_secret(key, sizeof(*key));
}

int
ck_key_copy(ck_key *dst, const ck_key *src)
{
    if (src->length > CK_KEY_MAX)
        return ck_error_set(CK_ERR_INVAL, "key length %u", src->length);
    if (dst != src)
        memcpy(dst, src, sizeof(*dst));
    return 0;
}
