/* RFC 3961 operations for the AES enctypes: string-to-key, random keys, encryption with key
 * usage, keyed checksums and the PRF, for RFC 3962 (aes-sha1) and RFC 8009 (aes-sha2). */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cablekey/error.h"
#include "cablekey/util.h"
#include "crypto/crypto_int.h"

/* Limits on string-to-key inputs: real passwords and salts (realm + principal) are far shorter,
 * and the iteration cap keeps one call below a few seconds. */
#define CK_S2K_MAX_PASSWORD 4096
#define CK_S2K_MAX_SALT 4096
#define CK_S2K_MAX_ITER (16u * 1024 * 1024)

/* Largest message we encrypt or decrypt in one call (the CTS update takes an int length). */
#define CK_CRYPT_MAX ((size_t)INT_MAX - 64)

static int
key_info(const ck_key *key, const ck_enctype_info **out)
{
    const ck_enctype_info *info;

    if (key == NULL)
        return ck_error_set(CK_ERR_INVAL, "no key");
    info = ck_crypto_enctype_info(key->enctype);
    if (info == NULL)
        return ck_error_set(CK_ERR_UNSUPPORTED, "unsupported enctype %d", (int)key->enctype);
    if (key->length != info->key_len)
        return ck_error_set(CK_ERR_INVAL, "%s key has length %u", info->name, key->length);
    *out = info;
    return 0;
}

int
ck_random_bytes(void *buf, size_t len)
{
    return ck_crypto_random(buf, len, false);
}

int
ck_random_key(int32_t enctype, ck_key *out)
{
    const ck_enctype_info *info = ck_crypto_enctype_info(enctype);
    int ret;

    ck_key_clear(out);
    if (info == NULL)
        return ck_error_set(CK_ERR_UNSUPPORTED, "unsupported enctype %d", (int)enctype);
    /* AES random-to-key is the identity (RFC 3962 §6, RFC 8009 §5). Keys come from the private
     * DRBG, kept apart from the one that produces public nonces and confounders. */
    if ((ret = ck_crypto_random(out->contents, info->key_len, true)) != 0) {
        ck_key_clear(out);
        return ret;
    }
    out->enctype = enctype;
    out->length = (uint32_t)info->key_len;
    return 0;
}

int
ck_string_to_key(int32_t enctype, const char *password, size_t password_len, const uint8_t *salt,
                 size_t salt_len, const uint8_t *s2kparams, size_t s2kparams_len, ck_key *out)
{
    const ck_enctype_info *info = ck_crypto_enctype_info(enctype);
    uint8_t tkey[CK_KEY_MAX], *saltp = NULL;
    size_t saltp_len = 0, name_len;
    uint32_t iter;
    int ret;

    ck_key_clear(out);
    if (info == NULL)
        return ck_error_set(CK_ERR_UNSUPPORTED, "string-to-key: unsupported enctype %d",
                            (int)enctype);
    if ((password == NULL && password_len > 0) || (salt == NULL && salt_len > 0))
        return ck_error_set(CK_ERR_INVAL, "string-to-key: missing input");
    if (password_len > CK_S2K_MAX_PASSWORD || salt_len > CK_S2K_MAX_SALT)
        return ck_error_set(CK_ERR_LIMIT, "string-to-key: password or salt too long");
    if (s2kparams == NULL || s2kparams_len == 0) {
        iter = info->default_iter;
    } else {
        /* RFC 3962 §4 / RFC 8009 §4: exactly a 4-byte big-endian iteration count. */
        if (s2kparams_len != 4)
            return ck_error_set(CK_ERR_INVAL, "string-to-key: s2kparams of %zu bytes",
                                s2kparams_len);
        iter = ((uint32_t)s2kparams[0] << 24) | ((uint32_t)s2kparams[1] << 16) |
               ((uint32_t)s2kparams[2] << 8) | s2kparams[3];
        if (iter < 1 || iter > CK_S2K_MAX_ITER)
            return ck_error_set(CK_ERR_INVAL, "string-to-key: iteration count %u refused",
                                (unsigned)iter);
    }

    if (info->family == CK_FAMILY_RFC3962) {
        /* RFC 3962 §4: tkey = random2key(PBKDF2(pass, salt, iter, keylen)),
         * key = DK(tkey, "kerberos"). */
        ret = ck_crypto_pbkdf2(info->md, password, password_len, salt, salt_len, iter, tkey,
                               info->key_len);
        if (ret == 0)
            ret = ck_crypto_dk_aes(tkey, info->key_len, (const uint8_t *)"kerberos", 8,
                                   out->contents);
    } else {
        /* RFC 8009 §4: saltp = enctype-name | 0x00 | salt;
         * tkey = PBKDF2-HMAC-SHA2(pass, saltp, iter, keylen);
         * key = KDF-HMAC-SHA2(tkey, "kerberos", keylen). */
        name_len = strlen(info->name);
        saltp_len = name_len + 1 + salt_len;
        if ((saltp = malloc(saltp_len)) == NULL)
            return ck_error_set(CK_ERR_NOMEM, "string-to-key: salt");
        memcpy(saltp, info->name, name_len);
        saltp[name_len] = 0x00;
        if (salt_len > 0)
            memcpy(saltp + name_len + 1, salt, salt_len);
        ret = ck_crypto_pbkdf2(info->md, password, password_len, saltp, saltp_len, iter, tkey,
                               info->key_len);
        if (ret == 0)
            ret = ck_crypto_kdf_sha2(info->md, tkey, info->key_len, (const uint8_t *)"kerberos",
                                     8, NULL, 0, out->contents, info->key_len);
    }
    ck_memzero(tkey, sizeof(tkey));
    ck_free_secret(saltp, saltp_len);
    if (ret != 0) {
        ck_key_clear(out);
        return ret;
    }
    out->enctype = enctype;
    out->length = (uint32_t)info->key_len;
    return 0;
}

size_t
ck_encrypt_length(int32_t enctype, size_t plain_len)
{
    const ck_enctype_info *info = ck_crypto_enctype_info(enctype);

    if (info == NULL || plain_len > CK_CRYPT_MAX)
        return 0;
    return CK_CONFOUNDER_LEN + plain_len + info->mac_len;
}

int
ck_crypto_encrypt_with_confounder(const ck_key *key, int32_t usage,
                                  const uint8_t confounder[CK_CONFOUNDER_LEN],
                                  const uint8_t *plain, size_t plain_len, uint8_t *out,
                                  size_t out_size, size_t *out_len)
{
    static const uint8_t zero_iv[CK_AES_BLOCK];
    const ck_enctype_info *info = NULL;
    uint8_t ke[CK_KEY_MAX], ki[CK_KEY_MAX], mac[64];
    size_t ke_len = 0, ki_len = 0, mac_len = 0, clen;
    int ret;

    *out_len = 0;
    if ((ret = key_info(key, &info)) != 0)
        return ret;
    if (plain == NULL && plain_len > 0)
        return ck_error_set(CK_ERR_INVAL, "encrypt: no plaintext");
    if (plain_len > CK_CRYPT_MAX)
        return ck_error_set(CK_ERR_LIMIT, "encrypt: %zu bytes", plain_len);
    clen = CK_CONFOUNDER_LEN + plain_len;
    if (out_size < clen + info->mac_len)
        return ck_error_set(CK_ERR_INVAL, "encrypt: output buffer %zu < %zu", out_size,
                            clen + info->mac_len);
    if ((ret = ck_crypto_derive_key(key, usage, CK_KDF_ENCRYPT, ke, &ke_len)) != 0 ||
        (ret = ck_crypto_derive_key(key, usage, CK_KDF_INTEGRITY, ki, &ki_len)) != 0)
        goto out;
    /* out = confounder | plaintext, then encrypted in place (memmove: out may alias plain). */
    if (plain_len > 0)
        memmove(out + CK_CONFOUNDER_LEN, plain, plain_len);
    memcpy(out, confounder, CK_CONFOUNDER_LEN);
    if (info->family == CK_FAMILY_RFC3962) {
        /* RFC 3962 / RFC 3961 §5.3: MAC-then-encrypt; H = HMAC-SHA1(Ki, conf | plain)[0..12]. */
        if ((ret = ck_crypto_hmac(info->md, ki, ki_len, out, clen, NULL, 0, mac, &mac_len)) != 0 ||
            (ret = ck_crypto_aes_cts(ke, ke_len, true, out, clen, out)) != 0)
            goto out;
    } else {
        /* RFC 8009 §5: encrypt-then-MAC; H = HMAC(Ki, IV | C) truncated, IV = zero cipher
         * state. */
        if ((ret = ck_crypto_aes_cts(ke, ke_len, true, out, clen, out)) != 0 ||
            (ret = ck_crypto_hmac(info->md, ki, ki_len, zero_iv, sizeof(zero_iv), out, clen, mac,
                                  &mac_len)) != 0)
            goto out;
    }
    memcpy(out + clen, mac, info->mac_len);
    *out_len = clen + info->mac_len;
out:
    if (ret != 0)
        ck_memzero(out, clen + info->mac_len); /* out_size was checked above */
    ck_memzero(ke, sizeof(ke));
    ck_memzero(ki, sizeof(ki));
    ck_memzero(mac, sizeof(mac));
    return ret;
}

int
ck_encrypt(const ck_key *key, int32_t usage, const uint8_t *plain, size_t plain_len, uint8_t *out,
           size_t out_size, size_t *out_len)
{
    uint8_t confounder[CK_CONFOUNDER_LEN];
    int ret;

    *out_len = 0;
    if ((ret = ck_random_bytes(confounder, sizeof(confounder))) != 0)
        return ret;
    ret = ck_crypto_encrypt_with_confounder(key, usage, confounder, plain, plain_len, out,
                                            out_size, out_len);
    ck_memzero(confounder, sizeof(confounder));
    return ret;
}

int
ck_decrypt(const ck_key *key, int32_t usage, const uint8_t *cipher, size_t cipher_len,
           uint8_t *out, size_t out_size, size_t *out_len)
{
    static const uint8_t zero_iv[CK_AES_BLOCK];
    const ck_enctype_info *info = NULL;
    uint8_t ke[CK_KEY_MAX], ki[CK_KEY_MAX], mac[64];
    size_t ke_len = 0, ki_len = 0, mac_len = 0, clen = 0;
    const uint8_t *tag;
    int ret;

    *out_len = 0;
    if ((ret = key_info(key, &info)) != 0)
        return ret;
    if (cipher == NULL)
        return ck_error_set(CK_ERR_INVAL, "decrypt: no ciphertext");
    if (cipher_len < CK_CONFOUNDER_LEN + info->mac_len)
        return ck_error_set(CK_ERR_DECODE, "decrypt: %s ciphertext of %zu bytes is too short",
                            info->name, cipher_len);
    if (cipher_len > CK_CRYPT_MAX)
        return ck_error_set(CK_ERR_LIMIT, "decrypt: %zu bytes", cipher_len);
    clen = cipher_len - info->mac_len;
    tag = cipher + clen;
    /* The whole confounder|plaintext is decrypted into out before the confounder is dropped. */
    if (out_size < clen)
        return ck_error_set(CK_ERR_INVAL, "decrypt: output buffer %zu < %zu", out_size, clen);
    if ((ret = ck_crypto_derive_key(key, usage, CK_KDF_ENCRYPT, ke, &ke_len)) != 0 ||
        (ret = ck_crypto_derive_key(key, usage, CK_KDF_INTEGRITY, ki, &ki_len)) != 0)
        goto out;
    if (info->family == CK_FAMILY_RFC8009) {
        /* Verify before decrypting anything. */
        if ((ret = ck_crypto_hmac(info->md, ki, ki_len, zero_iv, sizeof(zero_iv), cipher, clen,
                                  mac, &mac_len)) != 0)
            goto out;
        if (CRYPTO_memcmp(mac, tag, info->mac_len) != 0) {
            ret = ck_error_set(CK_ERR_INTEGRITY, "decrypt: %s integrity check failed",
                               info->name);
            goto out;
        }
        if ((ret = ck_crypto_aes_cts(ke, ke_len, false, cipher, clen, out)) != 0)
            goto out;
    } else {
        if ((ret = ck_crypto_aes_cts(ke, ke_len, false, cipher, clen, out)) != 0 ||
            (ret = ck_crypto_hmac(info->md, ki, ki_len, out, clen, NULL, 0, mac, &mac_len)) != 0)
            goto out;
        if (CRYPTO_memcmp(mac, tag, info->mac_len) != 0) {
            ret = ck_error_set(CK_ERR_INTEGRITY, "decrypt: %s integrity check failed",
                               info->name);
            goto out;
        }
    }
    memmove(out, out + CK_CONFOUNDER_LEN, clen - CK_CONFOUNDER_LEN);
    ck_memzero(out + clen - CK_CONFOUNDER_LEN, CK_CONFOUNDER_LEN);
    *out_len = clen - CK_CONFOUNDER_LEN;
out:
    /* Never hand back unauthenticated plaintext. */
    if (ret != 0 && clen > 0 && out_size >= clen)
        ck_memzero(out, clen);
    ck_memzero(ke, sizeof(ke));
    ck_memzero(ki, sizeof(ki));
    ck_memzero(mac, sizeof(mac));
    return ret;
}

int
ck_checksum_length(int32_t cksumtype, size_t *len)
{
    const ck_enctype_info *info = ck_crypto_cksum_info(cksumtype);

    if (info == NULL)
        return ck_error_set(CK_ERR_UNSUPPORTED, "unsupported checksum type %d", (int)cksumtype);
    *len = info->mac_len;
    return 0;
}

bool
ck_checksum_is_keyed_supported(int32_t cksumtype)
{
    return ck_crypto_cksum_info(cksumtype) != NULL;
}

/* Computes the full (untruncated) HMAC(Kc, data) after checking that cksumtype fits the key. */
static int
checksum_mac(const ck_key *key, int32_t cksumtype, int32_t usage, const uint8_t *data,
             size_t data_len, uint8_t *mac, size_t *trunc_len)
{
    const ck_enctype_info *info = NULL;
    uint8_t kc[CK_KEY_MAX];
    size_t kc_len = 0, mac_len = 0;
    int ret;

    if ((ret = key_info(key, &info)) != 0)
        return ret;
    if (cksumtype == 0)
        cksumtype = info->cksumtype;
    if (!ck_checksum_is_keyed_supported(cksumtype))
        return ck_error_set(CK_ERR_UNSUPPORTED, "unsupported checksum type %d", (int)cksumtype);
    /* RFC 3961 §4: a keyed checksum is only defined with keys of its associated enctype. */
    if (cksumtype != info->cksumtype)
        return ck_error_set(CK_ERR_UNSUPPORTED, "checksum type %d cannot use a %s key",
                            (int)cksumtype, info->name);
    if (data == NULL && data_len > 0)
        return ck_error_set(CK_ERR_INVAL, "checksum: no data");
    /* RFC 3961 §5.4 / RFC 8009 §5: Kc = KDF(base, usage | 0x99); HMAC(Kc, data) truncated. */
    if ((ret = ck_crypto_derive_key(key, usage, CK_KDF_CHECKSUM, kc, &kc_len)) == 0)
        ret = ck_crypto_hmac(info->md, kc, kc_len, data, data_len, NULL, 0, mac, &mac_len);
    ck_memzero(kc, sizeof(kc));
    if (ret == 0)
        *trunc_len = info->mac_len;
    return ret;
}

int
ck_make_checksum(const ck_key *key, int32_t cksumtype, int32_t usage, const uint8_t *data,
                 size_t data_len, uint8_t *out, size_t out_size, size_t *out_len)
{
    uint8_t mac[64];
    size_t len = 0;
    int ret;

    *out_len = 0;
    if ((ret = checksum_mac(key, cksumtype, usage, data, data_len, mac, &len)) != 0)
        goto out;
    if (out_size < len) {
        ret = ck_error_set(CK_ERR_INVAL, "checksum: output buffer %zu < %zu", out_size, len);
        goto out;
    }
    memcpy(out, mac, len);
    *out_len = len;
out:
    ck_memzero(mac, sizeof(mac));
    return ret;
}

int
ck_verify_checksum(const ck_key *key, int32_t cksumtype, int32_t usage, const uint8_t *data,
                   size_t data_len, const uint8_t *cksum, size_t cksum_len)
{
    uint8_t mac[64];
    size_t len = 0;
    int ret;

    if ((ret = checksum_mac(key, cksumtype, usage, data, data_len, mac, &len)) != 0)
        goto out;
    /* The length is public (it follows from the type); only the value is compared in constant
     * time. */
    if (cksum == NULL || cksum_len != len || CRYPTO_memcmp(mac, cksum, len) != 0)
        ret = ck_error_set(CK_ERR_INTEGRITY, "checksum verification failed");
out:
    ck_memzero(mac, sizeof(mac));
    return ret;
}

int
ck_prf(const ck_key *key, const uint8_t *in, size_t in_len, uint8_t *out, size_t out_size,
       size_t *out_len)
{
    const ck_enctype_info *info = NULL;
    uint8_t tmp[64], pkey[CK_KEY_MAX];
    size_t tmp_len = 0, pkey_len = 0;
    int ret;

    *out_len = 0;
    if ((ret = key_info(key, &info)) != 0)
        return ret;
    if (in == NULL && in_len > 0)
        return ck_error_set(CK_ERR_INVAL, "PRF: no input");
    if (out_size < info->prf_len)
        return ck_error_set(CK_ERR_INVAL, "PRF: output buffer %zu < %zu", out_size,
                            info->prf_len);
    if (info->family == CK_FAMILY_RFC3962) {
        /* RFC 3962 §6: tmp1 = SHA-1(octet-string); tmp2 = truncate tmp1 to a multiple of the
         * block size (16 bytes); PRF = E(DK(key, "prf"), tmp2, initial cipher state), one AES
         * block with a zero IV. */
        if ((ret = ck_crypto_digest(CK_MD_SHA1, in, in_len, tmp, &tmp_len)) != 0 ||
            (ret = ck_crypto_prf_key(key, pkey, &pkey_len)) != 0 ||
            (ret = ck_crypto_aes_cts(pkey, pkey_len, true, tmp, CK_AES_BLOCK, out)) != 0)
            goto out;
    } else {
        /* RFC 8009 §5: PRF = KDF-HMAC-SHA2(base-key, "prf", octet-string, 256 or 384). */
        if ((ret = ck_crypto_kdf_sha2(info->md, key->contents, key->length,
                                      (const uint8_t *)"prf", 3, in, in_len, out,
                                      info->prf_len)) != 0)
            goto out;
    }
    *out_len = info->prf_len;
out:
    if (ret != 0)
        ck_memzero(out, info->prf_len);
    ck_memzero(tmp, sizeof(tmp));
    ck_memzero(pkey, sizeof(pkey));
    return ret;
}
