/* ESP (RFC 4303, transport mode) for transforms named by IKEv2 transform IDs: the ones a KSV
 * topology configures beyond KMM's (see cablekey/esp.h, "IKEv2 transforms"). The framing
 * (header, padding, trailer checks, replay window sizing) is esp.c's, through esp_int.h; only the
 * cryptography differs: AEAD (RFC 4106 / RFC 7634: the 8-byte IV is the sequence number, the
 * header is the AAD) or CBC/NULL with a truncated HMAC-SHA1/SHA2 (RFC 2404 / RFC 4868).
 *
 * Algorithms are fetched once per SA and the HMAC keyed once (restarted per packet from its keyed
 * state, as esp.c does); the cipher context is keyed for the direction last used, since AES-CBC
 * decryption has its own key schedule. */
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "cablekey/error.h"
#include "cablekey/esp.h"
#include "cablekey/util.h"
#include "esp/esp_int.h"

#define XF_SALT_LEN 4
#define XF_AEAD_IV_LEN 8
#define XF_AEAD_TAG_LEN 16
#define XF_NULL_ALIGN 4       /* RFC 4303 §2.4: the ICV starts on a 4-byte boundary */
#define XF_MAX_ICV 32
#define XF_MAX_DIGEST 64

enum xf_kind { XF_AEAD, XF_CBC_HMAC, XF_NULL_HMAC };
enum { XF_DIR_NONE = -1, XF_DIR_OUT = 1, XF_DIR_IN = 0 };

struct ck_esp_xf {
    uint32_t spi;
    uint16_t enc_alg, auth_alg;
    enum xf_kind kind;
    EVP_CIPHER *cipher;       /* AEAD or CBC; NULL for NULL encryption */
    EVP_CIPHER_CTX *cctx;
    int cctx_dir;             /* XF_DIR_*: the direction cctx is keyed for */
    EVP_MAC *mac;             /* HMAC, keyed once in mctx */
    EVP_MAC_CTX *mctx;
    uint8_t enc_key[32], salt[XF_SALT_LEN];
    size_t enc_key_len, iv_len, icv_len, block;
    uint32_t seq;             /* outbound: last sent; inbound: highest accepted */
    uint64_t packets, bytes, replayed, bad_icv, expired;
    uint16_t window, bitmap_bits;
    uint64_t bitmap[];        /* inbound replay ring (lib/util ck_replay_*) */
};

/* Accepted transforms: encryption ID and its key (without the salt), or an authentication ID and
 * its HMAC key and ICV lengths. */
static int
pick_enc(struct ck_esp_xf *x, const struct ck_esp_xf_params *p, const char **name)
{
    size_t kl = p->enc_key_len;

    *name = NULL;
    switch (p->enc_alg) {
    case CK_ESP_XF_ENC_AES_GCM_16:
    case CK_ESP_XF_ENC_CHACHA20_POLY1305:
        if (kl < XF_SALT_LEN)
            return CK_ERR_UNSUPPORTED;
        kl -= XF_SALT_LEN;
        if (p->enc_alg == CK_ESP_XF_ENC_CHACHA20_POLY1305)
            *name = kl == 32 ? "ChaCha20-Poly1305" : NULL;
        else
            *name = kl == 16 ? "AES-128-GCM" : kl == 32 ? "AES-256-GCM" : NULL;
        x->kind = XF_AEAD;
        x->iv_len = XF_AEAD_IV_LEN;
        x->icv_len = XF_AEAD_TAG_LEN;
        x->block = XF_NULL_ALIGN;
        break;
    case CK_ESP_XF_ENC_AES_CBC:
        *name = kl == 16 ? "AES-128-CBC" : kl == 32 ? "AES-256-CBC" : NULL;
        x->kind = XF_CBC_HMAC;
        x->iv_len = 16;
        x->block = 16;
        break;
    case CK_ESP_XF_ENC_NULL:
        if (kl != 0)
            return CK_ERR_UNSUPPORTED;
        x->kind = XF_NULL_HMAC;
        x->block = XF_NULL_ALIGN;
        return 0;
    default:
        return CK_ERR_UNSUPPORTED;
    }
    if (*name == NULL || p->enc_key == NULL)
        return CK_ERR_UNSUPPORTED;
    x->enc_key_len = kl;
    memcpy(x->enc_key, p->enc_key, kl);
    if (x->kind == XF_AEAD)
        memcpy(x->salt, p->enc_key + kl, XF_SALT_LEN);
    return 0;
}

static int
pick_auth(struct ck_esp_xf *x, const struct ck_esp_xf_params *p, const char **digest)
{
    *digest = NULL;
    if (x->kind == XF_AEAD)
        return p->auth_alg == CK_ESP_XF_AUTH_NONE && p->auth_key_len == 0 ? 0
                                                                          : CK_ERR_UNSUPPORTED;
    switch (p->auth_alg) {
    case CK_ESP_XF_AUTH_HMAC_SHA1_96: *digest = "SHA1", x->icv_len = 12; break;
    case CK_ESP_XF_AUTH_HMAC_SHA2_256_128: *digest = "SHA256", x->icv_len = 16; break;
    case CK_ESP_XF_AUTH_HMAC_SHA2_384_192: *digest = "SHA384", x->icv_len = 24; break;
    case CK_ESP_XF_AUTH_HMAC_SHA2_512_256: *digest = "SHA512", x->icv_len = 32; break;
    default: return CK_ERR_UNSUPPORTED;
    }
    /* RFC 2104 allows any key length; an empty one is a configuration mistake. */
    if (p->auth_key_len == 0 || p->auth_key_len > CK_ESP_XF_MAX_KEY || p->auth_key == NULL)
        return CK_ERR_UNSUPPORTED;
    return 0;
}

int
ck_esp_xf_new(const struct ck_esp_xf_params *p, ck_esp_xf **out)
{
    struct ck_esp_xf probe;
    const char *cname, *digest;
    uint16_t window = 0, bits = 0;
    ck_esp_xf *x = NULL;
    int ret;

    *out = NULL;
    memset(&probe, 0, sizeof(probe));
    if (p->spi == 0)
        return ck_error_set(CK_ERR_INVAL, "ESP: SPI 0 is reserved");
    if ((ret = ck_esp_int_window(p->replay_window, &window, &bits)) != 0)
        return ret;
    if (pick_enc(&probe, p, &cname) != 0 || pick_auth(&probe, p, &digest) != 0) {
        ck_memzero(&probe, sizeof(probe));
        return ck_error_set(CK_ERR_UNSUPPORTED, "ESP: transform enc %u (key %zu) auth %u (key %zu)",
                            p->enc_alg, p->enc_key_len, p->auth_alg, p->auth_key_len);
    }
    if ((x = calloc(1, sizeof(*x) + bits / 8)) == NULL) {
        ck_memzero(&probe, sizeof(probe));
        return ck_error_set(CK_ERR_NOMEM, "ESP: SA");
    }
    memcpy(x, &probe, sizeof(probe));
    ck_memzero(&probe, sizeof(probe));
    x->spi = p->spi;
    x->enc_alg = p->enc_alg;
    x->auth_alg = p->auth_alg;
    x->cctx_dir = XF_DIR_NONE;
    x->window = window;
    x->bitmap_bits = bits;
    /* Sequence number 0 is never sent (RFC 4303 §3.3.3): seen already, so a replay. */
    x->bitmap[0] = 1;
    if (cname != NULL &&
        ((x->cipher = EVP_CIPHER_fetch(NULL, cname, NULL)) == NULL ||
         (x->cctx = EVP_CIPHER_CTX_new()) == NULL)) {
        ret = ck_error_set_ssl(CK_ERR_CRYPTO, "ESP: %s", cname);
        goto out;
    }
    if (digest != NULL) {
        OSSL_PARAM params[2];

        params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)digest, 0);
        params[1] = OSSL_PARAM_construct_end();
        if ((x->mac = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL ||
            (x->mctx = EVP_MAC_CTX_new(x->mac)) == NULL ||
            EVP_MAC_init(x->mctx, p->auth_key, p->auth_key_len, params) != 1) {
            ret = ck_error_set_ssl(CK_ERR_CRYPTO, "ESP: HMAC-%s", digest);
            goto out;
        }
    }
    *out = x;
    x = NULL;
    ret = 0;
out:
    ck_esp_xf_free(x);
    return ret;
}

void
ck_esp_xf_free(ck_esp_xf *x)
{
    if (x == NULL)
        return;
    /* The contexts hold key schedules; their free functions cleanse them. */
    EVP_CIPHER_CTX_free(x->cctx);
    EVP_CIPHER_free(x->cipher);
    EVP_MAC_CTX_free(x->mctx);
    EVP_MAC_free(x->mac);
    ck_free_secret(x, sizeof(*x) + x->bitmap_bits / 8);
}

uint32_t
ck_esp_xf_spi(const ck_esp_xf *x)
{
    return x->spi;
}

void
ck_esp_xf_stats(const ck_esp_xf *x, struct ck_esp_sa_stats *out)
{
    out->packets = x->packets;
    out->bytes = x->bytes;
    out->replayed = x->replayed;
    out->bad_icv = x->bad_icv;
    out->expired = x->expired;
    out->last_seq = x->seq;
}

size_t
ck_esp_xf_protected_size(const ck_esp_xf *x, size_t len)
{
    return CK_ESP_HDR_LEN + x->iv_len + ck_esp_int_padded_len(len, x->block) + x->icv_len;
}

/* The truncated HMAC of data into icv (icv_len bytes). */
static int
xf_icv(ck_esp_xf *x, const uint8_t *data, size_t len, uint8_t *icv)
{
    uint8_t full[XF_MAX_DIGEST];
    size_t n = 0;
    int ret = 0;

    if (EVP_MAC_init(x->mctx, NULL, 0, NULL) != 1 || EVP_MAC_update(x->mctx, data, len) != 1 ||
        EVP_MAC_final(x->mctx, full, &n, sizeof(full)) != 1 || n < x->icv_len)
        ret = ck_error_set_ssl(CK_ERR_CRYPTO, "ESP: HMAC");
    else
        memcpy(icv, full, x->icv_len);
    ck_memzero(full, sizeof(full));
    return ret;
}

/* Starts the cipher for one packet in direction dir, keying it only when the direction changed. */
static int
xf_cipher_start(ck_esp_xf *x, int dir, const uint8_t *iv)
{
    uint8_t nonce[XF_SALT_LEN + XF_AEAD_IV_LEN];
    const uint8_t *key = x->cctx_dir == dir ? NULL : x->enc_key;
    int ok;

    if (x->kind == XF_AEAD) {
        /* RFC 4106 §4 / RFC 7634 §2: nonce = salt | IV. */
        memcpy(nonce, x->salt, XF_SALT_LEN);
        memcpy(nonce + XF_SALT_LEN, iv, XF_AEAD_IV_LEN);
        iv = nonce;
    }
    ok = EVP_CipherInit_ex2(x->cctx, key != NULL ? x->cipher : NULL, key, iv, dir, NULL);
    ck_memzero(nonce, sizeof(nonce));
    if (ok != 1) {
        x->cctx_dir = XF_DIR_NONE;
        return ck_error_set_ssl(CK_ERR_CRYPTO, "ESP: cipher");
    }
    x->cctx_dir = dir;
    /* ESP pads itself; EVP's PKCS#7 padding would also hold back the last block. */
    if (x->kind == XF_CBC_HMAC)
        EVP_CIPHER_CTX_set_padding(x->cctx, 0);
    return 0;
}

/* One pass over len bytes (a multiple of the block); AEAD: aad first, the tag set (decrypting)
 * or read (encrypting). A tag that does not verify is CK_ERR_INTEGRITY. */
static int
xf_crypt(ck_esp_xf *x, int dir, const uint8_t *iv, const uint8_t *aad, size_t aad_len,
         const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag)
{
    int l = 0, l2 = 0, ret;

    if ((ret = xf_cipher_start(x, dir, iv)) != 0)
        return ret;
    if (x->kind == XF_AEAD &&
        (EVP_CipherUpdate(x->cctx, NULL, &l, aad, (int)aad_len) != 1 ||
         (dir == XF_DIR_IN &&
          EVP_CIPHER_CTX_ctrl(x->cctx, EVP_CTRL_AEAD_SET_TAG, (int)x->icv_len, tag) != 1)))
        goto crypto;
    if (len > 0 && (EVP_CipherUpdate(x->cctx, out, &l, in, (int)len) != 1 || (size_t)l != len))
        goto crypto;
    if (EVP_CipherFinal_ex(x->cctx, out + l, &l2) != 1 || l2 != 0) {
        if (dir == XF_DIR_IN && x->kind == XF_AEAD) {
            x->bad_icv++;
            return ck_error_set(CK_ERR_INTEGRITY, "ESP: SA 0x%08x ICV mismatch", x->spi);
        }
        goto crypto;
    }
    if (dir == XF_DIR_OUT && x->kind == XF_AEAD &&
        EVP_CIPHER_CTX_ctrl(x->cctx, EVP_CTRL_AEAD_GET_TAG, (int)x->icv_len, tag) != 1)
        goto crypto;
    return 0;
crypto:
    x->cctx_dir = XF_DIR_NONE;
    return ck_error_set_ssl(CK_ERR_CRYPTO, "ESP: SA 0x%08x cipher", x->spi);
}

int
ck_esp_xf_protect(ck_esp_xf *x, uint8_t next_header, const uint8_t *payload, size_t len,
                  uint8_t *pkt, size_t cap, size_t *pkt_len)
{
    size_t body, need, off;
    uint8_t *iv, *ct, *plain = NULL;
    uint32_t seq;
    int ret;

    *pkt_len = 0;
    if (len > CK_ESP_MAX_PACKET)
        return ck_error_set(CK_ERR_LIMIT, "ESP: payload of %zu bytes", len);
    body = ck_esp_int_padded_len(len, x->block);
    need = ck_esp_xf_protected_size(x, len);
    if (need > CK_ESP_MAX_PACKET || need > cap)
        return ck_error_set(CK_ERR_LIMIT, "ESP: packet of %zu bytes, buffer of %zu", need, cap);
    if (x->seq == UINT32_MAX) {
        x->expired++;
        return ck_error_set(CK_ERR_EXPIRED, "ESP: SA 0x%08x sequence numbers exhausted", x->spi);
    }
    /* The body is built apart: payload may be anywhere, and AEAD/CBC want it whole. */
    if ((plain = malloc(body)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "ESP: packet");
    if (len > 0)
        memcpy(plain, payload, len);
    ck_esp_int_trailer(plain + len, body - len - 2, next_header);
    seq = x->seq + 1;
    ck_esp_int_header(pkt, x->spi, seq);
    iv = pkt + CK_ESP_HDR_LEN;
    off = CK_ESP_HDR_LEN + x->iv_len;
    ct = pkt + off;
    if (x->kind == XF_AEAD) {
        /* RFC 4106 §3.1: the IV must only never repeat under a key; the sequence number, which
         * never wraps, is such a counter. */
        memset(iv, 0, 4);
        ck_put_be32(iv + 4, seq);
        ret = xf_crypt(x, XF_DIR_OUT, iv, pkt, CK_ESP_HDR_LEN, plain, body, ct, ct + body);
    } else {
        ret = 0;
        if (x->kind == XF_CBC_HMAC) {
            if (RAND_bytes(iv, (int)x->iv_len) != 1)
                ret = ck_error_set_ssl(CK_ERR_CRYPTO, "ESP: IV");
            else
                ret = xf_crypt(x, XF_DIR_OUT, iv, NULL, 0, plain, body, ct, NULL);
        } else {
            memcpy(ct, plain, body);
        }
        if (ret == 0)
            ret = xf_icv(x, pkt, off + body, ct + body);
    }
    if (ret == 0) {
        x->seq = seq;
        x->packets++;
        x->bytes += len;
        *pkt_len = need;
    }
    ck_free_secret(plain, body);
    return ret;
}

int
ck_esp_xf_unprotect(ck_esp_xf *x, const uint8_t *pkt, size_t len, uint8_t *payload, size_t cap,
                    size_t *payload_len, uint8_t *next_header)
{
    size_t body, pad, plen, off;
    uint32_t seq;
    uint8_t *plain = NULL, icv[XF_MAX_ICV], tag[XF_AEAD_TAG_LEN];
    const uint8_t *iv, *ct;
    int ret;

    *payload_len = 0;
    if (len > CK_ESP_MAX_PACKET)
        return ck_error_set(CK_ERR_DECODE, "ESP: packet of %zu bytes", len);
    off = CK_ESP_HDR_LEN + x->iv_len;
    if (len < off + x->block + x->icv_len)
        return ck_error_set(CK_ERR_DECODE, "ESP: truncated packet (%zu bytes)", len);
    body = len - off - x->icv_len;
    if (body % x->block != 0)
        return ck_error_set(CK_ERR_DECODE, "ESP: ciphertext of %zu bytes is not whole blocks",
                            body);
    if (ck_get_be32(pkt) != x->spi)
        return ck_error_set(CK_ERR_DECODE, "ESP: SPI 0x%08x, expected 0x%08x", ck_get_be32(pkt),
                            x->spi);
    seq = ck_get_be32(pkt + 4);
    /* RFC 4303 §3.4.3: the cheap duplicate check first, the window update only after the
     * packet verified entirely. */
    if (ck_replay_check(x->bitmap, x->bitmap_bits, x->seq, x->window, seq) != CK_REPLAY_NEW) {
        x->replayed++;
        return ck_error_set(CK_ERR_REPLAY, "ESP: SA 0x%08x sequence number %u replayed or too old",
                            x->spi, seq);
    }
    iv = pkt + CK_ESP_HDR_LEN;
    ct = pkt + off;
    if (x->kind != XF_AEAD) {
        /* Integrity before anything is decrypted, compared in constant time. */
        if ((ret = xf_icv(x, pkt, off + body, icv)) != 0)
            return ret;
        if (!ck_ct_equal(icv, ct + body, x->icv_len)) {
            x->bad_icv++;
            ck_memzero(icv, sizeof(icv));
            return ck_error_set(CK_ERR_INTEGRITY, "ESP: SA 0x%08x ICV mismatch", x->spi);
        }
    }
    if ((plain = malloc(body)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "ESP: packet");
    if (x->kind == XF_AEAD) {
        memcpy(tag, ct + body, XF_AEAD_TAG_LEN);
        ret = xf_crypt(x, XF_DIR_IN, iv, pkt, CK_ESP_HDR_LEN, ct, body, plain, tag);
    } else if (x->kind == XF_CBC_HMAC) {
        ret = xf_crypt(x, XF_DIR_IN, iv, NULL, 0, ct, body, plain, NULL);
    } else {
        memcpy(plain, ct, body);
        ret = 0;
    }
    if (ret != 0)
        goto out;
    if ((ret = ck_esp_int_check_trailer(plain, body, &pad)) != 0)
        goto out;
    plen = body - 2 - pad;
    if (plen > cap) {
        ret = ck_error_set(CK_ERR_LIMIT, "ESP: payload of %zu bytes, buffer of %zu", plen, cap);
        goto out;
    }
    if (plen > 0)
        memcpy(payload, plain, plen);
    *payload_len = plen;
    *next_header = plain[body - 1];
    ck_replay_update(x->bitmap, x->bitmap_bits, &x->seq, seq);
    x->packets++;
    x->bytes += plen;
out:
    ck_free_secret(plain, body);
    ck_memzero(icv, sizeof(icv));
    ck_memzero(tag, sizeof(tag));
    return ret;
}

void
ck_esp_test_xf_set_seq(ck_esp_xf *x, uint32_t seq)
{
    memset(x->bitmap, 0, x->bitmap_bits / 8);
    x->seq = seq;
    ck_replay_update(x->bitmap, x->bitmap_bits, &x->seq, seq);
}
