/* ESP (RFC 4303, transport mode, the packet as a UDP payload as lib/esp frames it) for the
 * transforms a KSV topology configures and lib/esp does not run: AES-GCM-16 (RFC 4106),
 * ChaCha20-Poly1305 (RFC 7634), AES-CBC and NULL with HMAC-SHA2 (RFC 4868). Everything on
 * OpenSSL EVP; ICVs compared in constant time before anything is decrypted; the replay window
 * (lib/util ck_replay_*) moves only for packets that verified. */
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "cablekey/error.h"
#include "cablekey/ksv_node.h"
#include "cablekey/util.h"

#define ESP_HDR 8u
#define WINDOW 64u
#define RING_BITS 128u

enum kind { K_AEAD, K_CBC_HMAC, K_NULL_HMAC };

struct ck_ksvnode_esp {
    uint32_t spi;
    enum kind kind;
    const char *cipher;           /* EVP cipher name (AEAD, CBC) */
    const char *digest;           /* EVP digest name (HMAC) */
    uint8_t enc_key[32], salt[4], auth_key[CK_KSV_MAX_KEY];
    size_t enc_key_len, auth_key_len, iv_len, icv_len, block;
    uint32_t seq;                 /* outbound: last sent */
    uint64_t ring[RING_BITS / 64];
    uint32_t top;                 /* inbound: highest accepted */
};

int
ck_ksvnode_esp_new(const struct ck_ksv_sa *sa, ck_ksvnode_esp **out)
{
    ck_ksvnode_esp *e;

    *out = NULL;
    if (sa->proto != CK_KSV_PROTO_ESP || sa->spi == 0)
        return ck_error_set(CK_ERR_UNSUPPORTED, "node ESP: not an ESP SA");
    if ((e = calloc(1, sizeof(*e))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "node ESP");
    e->spi = sa->spi;
    switch (sa->enc_alg) {
    case 20: /* AES-GCM with a 16-byte ICV: key then 4-byte salt */
    case 28: /* ChaCha20-Poly1305: 32-byte key then 4-byte salt */
        if (sa->auth_alg != 0 || sa->enc_key_len < 4)
            goto unsupported;
        e->kind = K_AEAD;
        e->enc_key_len = sa->enc_key_len - 4u;
        if (sa->enc_alg == 28)
            e->cipher = e->enc_key_len == 32 ? "ChaCha20-Poly1305" : NULL;
        else
            e->cipher = e->enc_key_len == 16 ? "AES-128-GCM"
                        : e->enc_key_len == 32 ? "AES-256-GCM" : NULL;
        if (e->cipher == NULL)
            goto unsupported;
        memcpy(e->enc_key, sa->enc_key, e->enc_key_len);
        memcpy(e->salt, sa->enc_key + e->enc_key_len, 4);
        e->iv_len = 8;
        e->icv_len = 16;
        e->block = 4;
        break;
    case 12:
    case 11:
        if (sa->enc_alg == 12) {
            e->kind = K_CBC_HMAC;
            e->cipher = sa->enc_key_len == 16 ? "AES-128-CBC"
                        : sa->enc_key_len == 32 ? "AES-256-CBC" : NULL;
            if (e->cipher == NULL)
                goto unsupported;
            e->enc_key_len = sa->enc_key_len;
            memcpy(e->enc_key, sa->enc_key, e->enc_key_len);
            e->iv_len = 16;
            e->block = 16;
        } else {
            e->kind = K_NULL_HMAC;
            e->block = 4;
        }
        switch (sa->auth_alg) {
        case 2: e->digest = "SHA1"; e->icv_len = 12; break;
        case 12: e->digest = "SHA256"; e->icv_len = 16; break;
        case 13: e->digest = "SHA384"; e->icv_len = 24; break;
        case 14: e->digest = "SHA512"; e->icv_len = 32; break;
        default: goto unsupported;
        }
        if (sa->auth_key_len == 0)
            goto unsupported;
        e->auth_key_len = sa->auth_key_len;
        memcpy(e->auth_key, sa->auth_key, e->auth_key_len);
        break;
    default: goto unsupported;
    }
    *out = e;
    return 0;
unsupported:
    ck_ksvnode_esp_free(e);
    return ck_error_set(CK_ERR_UNSUPPORTED, "node ESP: transform enc %u auth %u key %u",
                        sa->enc_alg, sa->auth_alg, sa->enc_key_len);
}

void
ck_ksvnode_esp_free(ck_ksvnode_esp *e)
{
    if (e != NULL)
        ck_free_secret(e, sizeof(*e));
}

static int
hmac(const ck_ksvnode_esp *e, const uint8_t *data, size_t len, uint8_t out[64])
{
    size_t out_len = 0;
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
    OSSL_PARAM params[2];
    int ret = 0;

    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)e->digest, 0);
    params[1] = OSSL_PARAM_construct_end();
    if (ctx == NULL || EVP_MAC_init(ctx, e->auth_key, e->auth_key_len, params) != 1 ||
        EVP_MAC_update(ctx, data, len) != 1 || EVP_MAC_final(ctx, out, &out_len, 64) != 1 ||
        out_len < e->icv_len)
        ret = ck_error_set_ssl(CK_ERR_CRYPTO, "node ESP: HMAC");
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return ret;
}

/* One pass of the cipher over in (AEAD: aad first, tag set or read). */
static int
cipher(const ck_ksvnode_esp *e, bool enc, const uint8_t *iv, const uint8_t *aad, size_t aad_len,
       const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag)
{
    EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, e->cipher, NULL);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    uint8_t nonce[12];
    const uint8_t *use_iv = iv;
    int l = 0, l2 = 0, ret = 0;

    if (e->kind == K_AEAD) {
        memcpy(nonce, e->salt, 4);
        memcpy(nonce + 4, iv, 8);
        use_iv = nonce;
    }
    if (c == NULL || ctx == NULL ||
        EVP_CipherInit_ex2(ctx, c, e->enc_key, use_iv, enc ? 1 : 0, NULL) != 1) {
        ret = ck_error_set_ssl(CK_ERR_CRYPTO, "node ESP: %s", e->cipher);
        goto out;
    }
    if (e->kind != K_AEAD)
        EVP_CIPHER_CTX_set_padding(ctx, 0);
    if (e->kind == K_AEAD &&
        ((aad_len > 0 && EVP_CipherUpdate(ctx, NULL, &l, aad, (int)aad_len) != 1) ||
         (!enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, (int)e->icv_len, tag) != 1))) {
        ret = ck_error_set_ssl(CK_ERR_CRYPTO, "node ESP: AEAD");
        goto out;
    }
    if (EVP_CipherUpdate(ctx, out, &l, in, (int)len) != 1) {
        ret = ck_error_set_ssl(CK_ERR_CRYPTO, "node ESP: %s", e->cipher);
        goto out;
    }
    if (EVP_CipherFinal_ex(ctx, out + l, &l2) != 1) {
        ret = ck_error_set(enc ? CK_ERR_CRYPTO : CK_ERR_INTEGRITY, "node ESP: %s",
                           enc ? "encryption" : "ICV");
        goto out;
    }
    if (enc && e->kind == K_AEAD &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, (int)e->icv_len, tag) != 1)
        ret = ck_error_set_ssl(CK_ERR_CRYPTO, "node ESP: tag");
out:
    EVP_CIPHER_CTX_free(ctx);
    EVP_CIPHER_free(c);
    return ret;
}

int
ck_ksvnode_esp_protect(ck_ksvnode_esp *e, uint8_t next_header, const uint8_t *payload,
                       size_t len, uint8_t *pkt, size_t cap, size_t *pkt_len)
{
    size_t body = len + 2, pad, total;
    uint8_t *iv, *ct, *plain = NULL, icv[64];
    int ret;

    pad = (e->block - body % e->block) % e->block;
    body += pad;
    total = ESP_HDR + e->iv_len + body + e->icv_len;
    if (len > 65535 || total > cap)
        return ck_error_set(CK_ERR_LIMIT, "node ESP: %zu bytes do not fit", len);
    if (e->seq == UINT32_MAX)
        return ck_error_set(CK_ERR_EXPIRED, "node ESP: sequence numbers used up");
    if ((plain = malloc(body)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "node ESP");
    memcpy(plain, payload, len);
    for (size_t i = 0; i < pad; i++)
        plain[len + i] = (uint8_t)(i + 1);
    plain[len + pad] = (uint8_t)pad;
    plain[len + pad + 1] = next_header;
    e->seq++;
    ck_put_be32(pkt, e->spi);
    ck_put_be32(pkt + 4, e->seq);
    iv = pkt + ESP_HDR;
    ct = iv + e->iv_len;
    if (e->kind == K_AEAD) {
        /* RFC 4106 §3.1: the IV only needs to be unique per key; the sequence number is. */
        memset(iv, 0, 4);
        ck_put_be32(iv + 4, e->seq);
        ret = cipher(e, true, iv, pkt, ESP_HDR, plain, body, ct, ct + body);
    } else {
        if (e->iv_len > 0 && RAND_bytes(iv, (int)e->iv_len) != 1) {
            ret = ck_error_set_ssl(CK_ERR_CRYPTO, "node ESP: IV");
            goto out;
        }
        if (e->kind == K_CBC_HMAC)
            ret = cipher(e, true, iv, NULL, 0, plain, body, ct, NULL);
        else {
            memcpy(ct, plain, body);
            ret = 0;
        }
        if (ret == 0 && (ret = hmac(e, pkt, ESP_HDR + e->iv_len + body, icv)) == 0)
            memcpy(ct + body, icv, e->icv_len);
    }
    if (ret == 0)
        *pkt_len = total;
out:
    ck_free_secret(plain, body);
    ck_memzero(icv, sizeof(icv));
    return ret;
}

int
ck_ksvnode_esp_unprotect(ck_ksvnode_esp *e, const uint8_t *pkt, size_t len, uint8_t *payload,
                         size_t cap, size_t *payload_len, uint8_t *next_header)
{
    size_t body;
    uint32_t seq;
    uint8_t *plain = NULL, icv[64];
    const uint8_t *iv, *ct;
    int ret;

    if (len < ESP_HDR + e->iv_len + e->block + e->icv_len)
        return ck_error_set(CK_ERR_DECODE, "node ESP: %zu bytes", len);
    body = len - ESP_HDR - e->iv_len - e->icv_len;
    if (body % e->block != 0)
        return ck_error_set(CK_ERR_DECODE, "node ESP: not a whole number of blocks");
    if (ck_get_be32(pkt) != e->spi)
        return ck_error_set(CK_ERR_DECODE, "node ESP: SPI 0x%08x is not this SA's",
                            ck_get_be32(pkt));
    seq = ck_get_be32(pkt + 4);
    if (seq == 0 || ck_replay_check(e->ring, RING_BITS, e->top, WINDOW, seq) != CK_REPLAY_NEW)
        return ck_error_set(CK_ERR_REPLAY, "node ESP: sequence number %u", seq);
    iv = pkt + ESP_HDR;
    ct = iv + e->iv_len;
    if ((plain = malloc(body)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "node ESP");
    if (e->kind == K_AEAD) {
        uint8_t tag[16];
        memcpy(tag, ct + body, 16);
        ret = cipher(e, false, iv, pkt, ESP_HDR, ct, body, plain, tag);
    } else {
        if ((ret = hmac(e, pkt, ESP_HDR + e->iv_len + body, icv)) != 0)
            goto out;
        if (!ck_ct_equal(icv, ct + body, e->icv_len)) {
            ret = ck_error_set(CK_ERR_INTEGRITY, "node ESP: ICV");
            goto out;
        }
        if (e->kind == K_CBC_HMAC)
            ret = cipher(e, false, iv, NULL, 0, ct, body, plain, NULL);
        else
            memcpy(plain, ct, body);
    }
    if (ret != 0)
        goto out;
    {
        size_t pad = plain[body - 2];
        if (pad + 2 > body) {
            ret = ck_error_set(CK_ERR_DECODE, "node ESP: padding");
            goto out;
        }
        for (size_t i = 0; i < pad; i++)
            if (plain[body - 2 - pad + i] != (uint8_t)(i + 1)) {
                ret = ck_error_set(CK_ERR_DECODE, "node ESP: padding");
                goto out;
            }
        if (body - 2 - pad > cap) {
            ret = ck_error_set(CK_ERR_LIMIT, "node ESP: payload over %zu bytes", cap);
            goto out;
        }
        memcpy(payload, plain, body - 2 - pad);
        *payload_len = body - 2 - pad;
        *next_header = plain[body - 1];
    }
    ck_replay_update(e->ring, RING_BITS, &e->top, seq);
out:
    ck_free_secret(plain, body);
    ck_memzero(icv, sizeof(icv));
    return ret;
}
