/* Per-call keys from a CTA-to-CTA or CTA-to-server sub-key: cablekey's own definitions (kmm.h,
 * docs/PROTOCOL.md "Call keys"), on the KMM PRF and OpenSSL's HMAC-SHA-1. */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "cablekey/error.h"
#include "cablekey/kmm.h"
#include "cablekey/util.h"

#define SRTP_MAX_KEY 16
#define SRTP_MAX_SALT 14

/* SPI and SPI+1 must both be usable SPIs: 0..255 are reserved (RFC 4303 §2.1) and SPI+1 must not
 * wrap. */
static int
check_inputs(const uint8_t *k_call, size_t k_len, uint32_t spi, const void *out)
{
    if (k_call == NULL || out == NULL)
        return ck_error_set(CK_ERR_INVAL, "call keys: missing argument");
    if (k_len != CK_CALL_KEY_LEN)
        return ck_error_set(CK_ERR_INVAL, "call keys: sub-key of %zu bytes, %d needed", k_len,
                            CK_CALL_KEY_LEN);
    if (spi < CK_CALL_SPI_MIN || spi > CK_CALL_SPI_MAX)
        return ck_error_set(CK_ERR_INVAL, "call keys: SPI 0x%08x refused (SPI and SPI+1 must "
                                          "both lie in 0x%08x..0xffffffff)",
                            spi, CK_CALL_SPI_MIN);
    return 0;
}

/* First sequence number from a derived word: below 2^31 + 1, so at least 2^31 packets fit
 * before the 32-bit counter would cycle (RFC 4303 §3.3.3), and never 0. */
static uint32_t
compat_seq(const uint8_t *p)
{
    return (ck_get_be32(p) & 0x7fffffffu) + 1;
}

int
ck_call_derive_esp(const uint8_t *k_call, size_t k_len, struct ck_kmm_suite suite, uint32_t spi,
                   bool compat, struct ck_call_esp_keys *out)
{
    uint8_t seed[8], block[4 * CK_KMM_MAX_KEY], seq[8];
    size_t e = 0, a = 0, off = 0;
    int rc;

    if (out != NULL)
        memset(out, 0, sizeof(*out));
    if ((rc = check_inputs(k_call, k_len, spi, out)) != 0 ||
        (rc = ck_kmm_suite_key_lengths(CK_KMM_DOI_IPSEC, suite, &e, &a)) != 0)
        return rc;
    ck_put_be32(seed, spi);
    ck_put_be32(seed + 4, spi + 1);
    if ((rc = ck_kmm_prf(k_call, k_len, "cablekey call esp keys", seed, sizeof(seed), block,
                         2 * (e + a))) != 0)
        goto out;
    out->suite = suite;
    out->spi_sd = spi;
    out->spi_ds = spi + 1;
    out->enc_len = e;
    out->auth_len = a;
    memcpy(out->enc_sd, block + off, e);
    off += e;
    memcpy(out->auth_sd, block + off, a);
    off += a;
    memcpy(out->enc_ds, block + off, e);
    off += e;
    memcpy(out->auth_ds, block + off, a);
    out->seq_sd = out->seq_ds = 1;
    if (compat) {
        if ((rc = ck_kmm_prf(k_call, k_len, "cablekey call compat seq", seed, sizeof(seed), seq,
                             sizeof(seq))) != 0)
            goto out;
        out->seq_sd = compat_seq(seq);
        out->seq_ds = compat_seq(seq + 4);
    }
out:
    if (rc != 0)
        OPENSSL_cleanse(out, sizeof(*out));
    OPENSSL_cleanse(block, sizeof(block));
    return rc;
}

int
ck_call_derive_srtp(const uint8_t *k_call, size_t k_len, enum ck_call_srtp_profile profile,
                    uint32_t spi, struct ck_call_srtp_keys *out)
{
    uint8_t seed[5], block[2 * (SRTP_MAX_KEY + SRTP_MAX_SALT)];
    size_t k, s;
    int rc;

    if (out != NULL)
        memset(out, 0, sizeof(*out));
    if ((rc = check_inputs(k_call, k_len, spi, out)) != 0)
        return rc;
    switch (profile) {
    case CK_CALL_SRTP_AES_CM_128_HMAC_SHA1_80:
        k = 16, s = 14;
        break;
    case CK_CALL_SRTP_AEAD_AES_128_GCM:
        k = 16, s = 12;
        break;
    default:
        return ck_error_set(CK_ERR_UNSUPPORTED, "call keys: SRTP profile %d", (int)profile);
    }
    /* The profile is in the seed so that the two profiles' keys never overlap. */
    ck_put_be32(seed, spi);
    seed[4] = (uint8_t)profile;
    if ((rc = ck_kmm_prf(k_call, k_len, "cablekey call srtp keys", seed, sizeof(seed), block,
                         2 * (k + s))) != 0)
        goto out;
    out->profile = profile;
    out->key_len = k;
    out->salt_len = s;
    memcpy(out->key_sd, block, k);
    memcpy(out->salt_sd, block + k, s);
    memcpy(out->key_ds, block + k + s, k);
    memcpy(out->salt_ds, block + 2 * k + s, s);
out:
    OPENSSL_cleanse(block, sizeof(block));
    return rc;
}

int
ck_call_derive_3des(const uint8_t *k_call, size_t k_len, uint32_t spi, bool mac,
                    struct ck_call_3des_keys *out)
{
    uint8_t seed[5], block[2 * (CK_CALL_3DES_KEY_LEN + CK_CALL_3DES_MAC_KEY_LEN)];
    size_t n = 2 * CK_CALL_3DES_KEY_LEN + (mac ? 2 * CK_CALL_3DES_MAC_KEY_LEN : 0);
    int rc;

    if (out != NULL)
        memset(out, 0, sizeof(*out));
    if ((rc = check_inputs(k_call, k_len, spi, out)) != 0)
        return rc;
    ck_put_be32(seed, spi);
    seed[4] = mac ? 1 : 0;
    if ((rc = ck_kmm_prf(k_call, k_len, "cablekey call rtp-3des keys", seed, sizeof(seed), block,
                         n)) != 0)
        goto out;
    out->mac = mac;
    memcpy(out->key_sd, block, CK_CALL_3DES_KEY_LEN);
    memcpy(out->key_ds, block + CK_CALL_3DES_KEY_LEN, CK_CALL_3DES_KEY_LEN);
    if (mac) {
        memcpy(out->mac_sd, block + 2 * CK_CALL_3DES_KEY_LEN, CK_CALL_3DES_MAC_KEY_LEN);
        memcpy(out->mac_ds, block + 2 * CK_CALL_3DES_KEY_LEN + CK_CALL_3DES_MAC_KEY_LEN,
               CK_CALL_3DES_MAC_KEY_LEN);
    }
out:
    OPENSSL_cleanse(block, sizeof(block));
    return rc;
}

int
ck_call_ack_compute(const uint8_t *k_call, size_t k_len, enum ck_call_ack_role role, uint32_t spi,
                    const uint8_t *call_id, size_t call_id_len, uint8_t out[CK_CALL_ACK_LEN])
{
    uint8_t key[CK_KMM_HMAC_KEY_LEN], msg[1 + 4 + 1 + CK_CALL_MAX_ID];
    size_t mac_len = 0;
    int rc;

    if ((rc = check_inputs(k_call, k_len, spi, out)) != 0)
        return rc;
    if (role != CK_CALL_ACK_DESTINATION && role != CK_CALL_ACK_SOURCE)
        return ck_error_set(CK_ERR_INVAL, "call ACK: unknown role %d", (int)role);
    if (call_id == NULL || call_id_len == 0 || call_id_len > CK_CALL_MAX_ID)
        return ck_error_set(CK_ERR_INVAL, "call ACK: call id of 1..%d bytes needed",
                            CK_CALL_MAX_ID);
    msg[0] = (uint8_t)role;
    ck_put_be32(msg + 1, spi);
    msg[5] = (uint8_t)call_id_len;
    memcpy(msg + 6, call_id, call_id_len);
    if ((rc = ck_kmm_prf(k_call, k_len, "cablekey call ack", NULL, 0, key, sizeof(key))) != 0)
        goto out;
    if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA1", NULL, key, sizeof(key), msg, 6 + call_id_len, out,
                  CK_CALL_ACK_LEN, &mac_len) == NULL ||
        mac_len != CK_CALL_ACK_LEN)
        rc = ck_error_set(CK_ERR_CRYPTO, "call ACK: HMAC-SHA-1 failed");
out:
    OPENSSL_cleanse(key, sizeof(key));
    return rc;
}

int
ck_call_ack_verify(const uint8_t *k_call, size_t k_len, enum ck_call_ack_role role, uint32_t spi,
                   const uint8_t *call_id, size_t call_id_len, const uint8_t *ack, size_t ack_len)
{
    uint8_t want[CK_CALL_ACK_LEN];
    int rc;

    if (ack == NULL || ack_len != CK_CALL_ACK_LEN)
        return ck_error_set(CK_ERR_DECODE, "call ACK: %zu bytes, %d expected",
                            ack == NULL ? (size_t)0 : ack_len, CK_CALL_ACK_LEN);
    if ((rc = ck_call_ack_compute(k_call, k_len, role, spi, call_id, call_id_len, want)) != 0)
        goto out;
    if (!ck_ct_equal(want, ack, CK_CALL_ACK_LEN))
        rc = ck_error_set(CK_ERR_INTEGRITY, "call ACK does not match the sub-key, SPI and call "
                                            "id sent");
out:
    OPENSSL_cleanse(want, sizeof(want));
    return rc;
}

void
ck_call_keys_clear(void *keys, size_t size)
{
    if (keys != NULL)
        OPENSSL_cleanse(keys, size);
}
