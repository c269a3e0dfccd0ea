/* The seed's RTP encryption: 3-key 3DES-CBC over the RTP payload with IV 0 per packet, RFC 3550
 * padding, an optional truncated HMAC-SHA-1 (see cablekey/media.h and docs/PROTOCOL.md "Media").
 *
 * COMPATIBILITY ONLY, WEAK: a 64-bit block cipher, the same IV for every packet (equal payload
 * prefixes give equal ciphertext), and without the MAC no integrity at all: a forged packet is
 * caught only when its decrypted padding happens to be wrong, which also makes the receiver a
 * padding oracle. SRTP is the default; this exists for equipment built to the seed.
 *
 * Packet on the wire: RTP header (P bit set, CSRCs and extension in clear, unchanged) ||
 * 3DES-CBC(payload || pad) [|| HMAC-SHA-1(mac_key, header || ciphertext)[0..9]], pad being 1..8
 * bytes that bring the payload to a multiple of 8, the last one the count, the others zero. */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "cablekey/error.h"
#include "cablekey/media.h"
#include "cablekey/util.h"

#define DES_BLOCK 8
#define RTP_P_BIT 0x20
#define REPLAY_WINDOW 64
#define SEQ_SPAN 0x10000u
#define SEQ_HALF 0x8000u

_Static_assert(DES_BLOCK + CK_RTP3DES_MAC_LEN <= CK_RTP3DES_MAX_OVERHEAD, "overhead bound");
_Static_assert(CK_RTP3DES_MAX_OVERHEAD <= CK_MEDIA_MAX_OVERHEAD, "media overhead bound");

struct ck_rtp3des {
    enum ck_srtp_direction dir;
    EVP_CIPHER_CTX *cipher;       /* keyed once; the IV is reset to 0 for every packet */
    EVP_MAC_CTX *mac;             /* NULL: no MAC; keyed once, re-initialised per packet */
    /* Receive window: extended index (rollovers * 2^16 + seq) of the newest accepted packet and
     * a bitmap of the REPLAY_WINDOW indices at and below it (bit 0 = top). */
    bool have_top;
    uint64_t top;
    uint64_t bitmap;
    struct ck_srtp_stats stats;
};

static const uint8_t zero_iv[DES_BLOCK];

int
ck_rtp3des_new(enum ck_srtp_direction dir, const uint8_t key[CK_RTP3DES_KEY_LEN],
               const uint8_t *mac_key, ck_rtp3des **out)
{
    EVP_CIPHER *des3 = NULL;
    EVP_MAC *hmac = NULL;
    ck_rtp3des *c = NULL;
    int rc;

    if (out == NULL)
        return ck_error_set(CK_ERR_INVAL, "RTP-3DES: no output");
    *out = NULL;
    if (dir != CK_SRTP_SEND && dir != CK_SRTP_RECV)
        return ck_error_set(CK_ERR_INVAL, "RTP-3DES: unknown direction %d", (int)dir);
    if (key == NULL)
        return ck_error_set(CK_ERR_INVAL, "RTP-3DES: no key");
    if ((c = calloc(1, sizeof(*c))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "RTP-3DES: context");
    c->dir = dir;
    /* des-ede3-cbc is in OpenSSL 3's default provider (only single DES moved to legacy). */
    if ((des3 = EVP_CIPHER_fetch(NULL, "DES-EDE3-CBC", NULL)) == NULL ||
        (c->cipher = EVP_CIPHER_CTX_new()) == NULL ||
        !EVP_CipherInit_ex2(c->cipher, des3, key, zero_iv, dir == CK_SRTP_SEND, NULL) ||
        !EVP_CIPHER_CTX_set_padding(c->cipher, 0)) {
        rc = ck_error_set_ssl(CK_ERR_CRYPTO, "RTP-3DES: cipher");
        goto out;
    }
    if (mac_key != NULL) {
        OSSL_PARAM params[] = {
            OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA1", 0),
            OSSL_PARAM_construct_end(),
        };

        if ((hmac = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL ||
            (c->mac = EVP_MAC_CTX_new(hmac)) == NULL ||
            !EVP_MAC_init(c->mac, mac_key, CK_RTP3DES_MAC_KEY_LEN, params)) {
            rc = ck_error_set_ssl(CK_ERR_CRYPTO, "RTP-3DES: HMAC-SHA-1");
            goto out;
        }
    }
    *out = c;
    c = NULL;
    rc = 0;
out:
    EVP_CIPHER_free(des3);
    EVP_MAC_free(hmac);
    ck_rtp3des_free(c);
    return rc;
}

/* 3DES-CBC from IV 0 over n bytes (a multiple of 8), in place. */
static int
cbc(ck_rtp3des *c, uint8_t *p, size_t n)
{
    int l = 0;

    if (!EVP_CipherInit_ex2(c->cipher, NULL, NULL, zero_iv, -1, NULL) ||
        !EVP_CipherUpdate(c->cipher, p, &l, p, (int)n) || (size_t)l != n)
        return ck_error_set_ssl(CK_ERR_CRYPTO, "RTP-3DES: 3DES-CBC");
    return 0;
}

static int
mac(ck_rtp3des *c, const uint8_t *p, size_t n, uint8_t out[CK_RTP3DES_MAC_LEN])
{
    uint8_t full[EVP_MAX_MD_SIZE];
    size_t l = 0;
    int rc = 0;

    if (!EVP_MAC_init(c->mac, NULL, 0, NULL) || !EVP_MAC_update(c->mac, p, n) ||
        !EVP_MAC_final(c->mac, full, &l, sizeof(full)) || l < CK_RTP3DES_MAC_LEN)
        rc = ck_error_set_ssl(CK_ERR_CRYPTO, "RTP-3DES: HMAC-SHA-1");
    else
        memcpy(out, full, CK_RTP3DES_MAC_LEN);
    OPENSSL_cleanse(full, sizeof(full));
    return rc;
}

int
ck_rtp3des_protect(ck_rtp3des *c, uint8_t *buf, size_t *len, size_t cap)
{
    struct ck_rtp_packet pkt;
    size_t hdr_len, pad, total;
    int rc;

    if (c == NULL || buf == NULL || len == NULL || c->dir != CK_SRTP_SEND)
        return ck_error_set(CK_ERR_INVAL, "RTP-3DES protect: not a send context");
    if ((rc = ck_rtp_parse(buf, *len, &pkt)) != 0)
        return rc;
    if (cap < *len + CK_RTP3DES_MAX_OVERHEAD)
        return ck_error_set(CK_ERR_INVAL, "RTP-3DES protect: buffer of %zu bytes, need %zu", cap,
                            *len + CK_RTP3DES_MAX_OVERHEAD);
    hdr_len = (size_t)(pkt.payload - buf);
    /* The sender's own padding, if any, is replaced by the cipher's. Always at least one byte,
     * so the P bit is always set and the receiver always finds a count. */
    pad = DES_BLOCK - pkt.payload_len % DES_BLOCK;
    total = hdr_len + pkt.payload_len + pad;
    if (total > CK_RTP_MAX_PACKET)
        return ck_error_set(CK_ERR_LIMIT, "RTP-3DES protect: padded packet of %zu bytes", total);
    memset(buf + hdr_len + pkt.payload_len, 0, pad - 1);
    buf[total - 1] = (uint8_t)pad;
    buf[0] |= RTP_P_BIT;
    if ((rc = cbc(c, buf + hdr_len, total - hdr_len)) != 0)
        return rc;
    if (c->mac != NULL) {
        if ((rc = mac(c, buf, total, buf + total)) != 0)
            return rc;
        total += CK_RTP3DES_MAC_LEN;
    }
    *len = total;
    c->stats.packets++;
    return 0;
}

/* The extended index of seq closest to the window's top (RFC 3711 §3.3.1's estimate). */
static uint64_t
estimate_index(const ck_rtp3des *c, uint16_t seq)
{
    uint64_t v;

    if (!c->have_top)
        return seq;
    v = (c->top & ~(uint64_t)0xffff) | seq;
    if (v + SEQ_HALF < c->top)
        v += SEQ_SPAN;
    else if (v > c->top + SEQ_HALF && v >= SEQ_SPAN)
        v -= SEQ_SPAN;
    return v;
}

static bool
is_replay(const ck_rtp3des *c, uint64_t idx)
{
    uint64_t back;

    if (!c->have_top || idx > c->top)
        return false;
    back = c->top - idx;
    return back >= REPLAY_WINDOW || (c->bitmap >> back) & 1;
}

static void
accept_index(ck_rtp3des *c, uint64_t idx)
{
    if (!c->have_top) {
        c->have_top = true;
        c->top = idx;
        c->bitmap = 1;
    } else if (idx > c->top) {
        uint64_t shift = idx - c->top;

        c->bitmap = shift >= REPLAY_WINDOW ? 1 : (c->bitmap << shift) | 1;
        c->top = idx;
    } else {
        c->bitmap |= (uint64_t)1 << (c->top - idx);
    }
}

int
ck_rtp3des_unprotect(ck_rtp3des *c, uint8_t *buf, size_t *len)
{
    struct ck_rtp_packet pkt;
    size_t n, hdr_len, ct_len, pad;
    uint64_t idx;
    uint8_t b0;
    int rc;

    if (c == NULL || buf == NULL || len == NULL || c->dir != CK_SRTP_RECV)
        return ck_error_set(CK_ERR_INVAL, "RTP-3DES unprotect: not a receive context");
    n = *len;
    if (c->mac != NULL) {
        if (n < CK_RTP3DES_MAC_LEN) {
            c->stats.malformed++;
            return ck_error_set(CK_ERR_DECODE, "RTP-3DES: packet of %zu bytes", n);
        }
        n -= CK_RTP3DES_MAC_LEN;
    }
    /* The header is judged with P cleared: the padding count is still encrypted. */
    b0 = n > 0 ? buf[0] : 0;
    if (n > 0)
        buf[0] = (uint8_t)(b0 & ~RTP_P_BIT);
    rc = ck_rtp_parse(buf, n, &pkt);
    if (n > 0)
        buf[0] = b0;
    if (rc != 0) {
        c->stats.malformed++;
        return rc;
    }
    hdr_len = (size_t)(pkt.payload - buf);
    ct_len = n - hdr_len;
    if (!(b0 & RTP_P_BIT) || ct_len == 0 || ct_len % DES_BLOCK != 0) {
        c->stats.malformed++;
        return ck_error_set(CK_ERR_DECODE,
                            "RTP-3DES: %zu bytes of ciphertext%s, expected a multiple of 8 and P",
                            ct_len, (b0 & RTP_P_BIT) ? "" : " without the P bit");
    }
    idx = estimate_index(c, pkt.hdr.seq);
    if (is_replay(c, idx)) {
        c->stats.replayed++;
        return ck_error_set(CK_ERR_REPLAY, "RTP-3DES: sequence number %u replayed or too old",
                            (unsigned)pkt.hdr.seq);
    }
    if (c->mac != NULL) {
        uint8_t want[CK_RTP3DES_MAC_LEN];

        if ((rc = mac(c, buf, n, want)) != 0)
            return rc;
        if (!ck_ct_equal(want, buf + n, CK_RTP3DES_MAC_LEN)) {
            c->stats.bad_auth++;
            return ck_error_set(CK_ERR_INTEGRITY, "RTP-3DES: MAC does not verify");
        }
    }
    if ((rc = cbc(c, buf + hdr_len, ct_len)) != 0)
        return rc;
    pad = buf[n - 1];
    if (pad == 0 || pad > DES_BLOCK) {
        /* The buffer now holds the (garbage) decryption; a refused packet is dropped. */
        c->stats.bad_auth++;
        return ck_error_set(CK_ERR_INTEGRITY, "RTP-3DES: bad padding (wrong key or modified)");
    }
    accept_index(c, idx);
    buf[0] = (uint8_t)(b0 & ~RTP_P_BIT);
    *len = n - pad;
    c->stats.packets++;
    return 0;
}

void
ck_rtp3des_get_stats(const ck_rtp3des *c, struct ck_srtp_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (c != NULL)
        *out = c->stats;
}

void
ck_rtp3des_free(ck_rtp3des *c)
{
    if (c == NULL)
        return;
    /* EVP_CIPHER_CTX_free and EVP_MAC_CTX_free cleanse the key schedules. */
    EVP_CIPHER_CTX_free(c->cipher);
    EVP_MAC_CTX_free(c->mac);
    ck_memzero(c, sizeof(*c));
    free(c);
}
