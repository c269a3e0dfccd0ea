/* RFC 4303 ESP in transport mode, on OpenSSL EVP (see cablekey/esp.h for the packet and the
 * contract).
 *
 * Cost model (bench/esp_bench.c): at 1000 bytes a packet has ~2.7 us at 3 Gbit/s, and the
 * AES-128-CBC + HMAC-SHA-1 work alone takes ~1.6 us, so nothing else may cost much. Hence:
 * algorithms fetched once per process; an engine per thread keeps keyed cipher and MAC contexts
 * for the last SA it served in each direction (AES has different encryption and decryption key
 * schedules, and a server alternates inbound and outbound SAs); the HMAC is restarted from its
 * keyed state with EVP_MAC_init(ctx, NULL, ...) instead of being re-keyed; IVs come from a
 * per-engine buffer of DRBG output, because one RAND_bytes call costs about as much as
 * encrypting the packet.
 *
 * An SA is identified by a process-unique 64-bit id, never by its address: a freed SA whose
 * memory is reused for a new one must not inherit the engine's keyed contexts. */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "cablekey/error.h"
#include "cablekey/esp.h"
#include "cablekey/kmm.h"
#include "cablekey/util.h"
#include "esp/esp_int.h"

#define ESP_HDR_LEN CK_ESP_HDR_LEN
#define ESP_MAX_IV 16
#define ESP_MAX_BLOCK 16
#define ESP_NULL_ALIGN 4      /* RFC 4303 §2.4: the ICV starts on a 4-byte boundary */
#define ESP_MAX_PAD 255
/* Decrypted trailer buffer: the longest padding (255) + pad length + next header, rounded up to
 * whole blocks of either cipher (272 = 17 AES blocks = 34 3DES blocks). */
#define ESP_TAIL_MAX 272
/* IV bytes drawn from the DRBG at a time: 256 AES IVs per RAND_bytes call. */
#define ESP_RAND_POOL 4096
#define ESP_MAX_DIGEST 20

enum { AUTH_MD5 = 0, AUTH_SHA1 = 1, AUTH_COUNT = 2 };
enum { DIR_OUT = 0, DIR_IN = 1 };

struct ck_esp_sa {
    uint64_t id;              /* process-unique, see the file comment */
    uint32_t spi;
    uint32_t seq;             /* outbound: last sent; inbound: highest accepted */
    int64_t expires;
    uint64_t life_bytes;
    uint64_t packets, bytes, replayed, bad_icv, expired;
    uint16_t window;          /* replay window in packets */
    uint16_t bitmap_bits;     /* power of two >= window, multiple of 64 */
    uint8_t enc, auth;
    uint8_t enc_key_len, auth_key_len;
    uint8_t iv_len, block;    /* block: the padding granularity (4 for NULL) */
    uint8_t enc_key[24];
    uint8_t auth_key[20];
    /* Inbound replay window as a ring of bits indexed by seq mod bitmap_bits (RFC 6479's layout,
     * which avoids shifting the whole bitmap on every new packet): a bit is set for every
     * accepted sequence number in (seq - window, seq]. */
    uint64_t bitmap[];
};

struct esp_dir {
    uint64_t sa_id;           /* SA the contexts are keyed for; 0 = none */
    EVP_CIPHER_CTX *cipher;
    EVP_MAC_CTX *mac[AUTH_COUNT];
};

struct ck_esp_engine {
    struct esp_dir dir[2];
    size_t rand_pos;
    unsigned rand_fork_gen;   /* fork_gen when rand_pool was filled */
    size_t test_iv_len;       /* ck_esp_test_set_next_iv, 0 = none */
    uint8_t test_iv[ESP_MAX_IV];
    uint8_t rand_pool[ESP_RAND_POOL];
};

static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;
static EVP_CIPHER *aes_cbc, *des3_cbc;
static EVP_MAC *hmac;
static _Atomic uint64_t next_sa_id = 1;
/* Bumped in a forked child, so that an engine inherited across fork() discards its buffered
 * random bytes instead of handing the child the IVs the parent will also use. */
static _Atomic unsigned fork_gen;

static void
forked_child(void)
{
    atomic_fetch_add(&fork_gen, 1);
}

static void
fetch_algorithms(void)
{
    pthread_atfork(NULL, NULL, forked_child);
    aes_cbc = EVP_CIPHER_fetch(NULL, "AES-128-CBC", NULL);
    des3_cbc = EVP_CIPHER_fetch(NULL, "DES-EDE3-CBC", NULL);
    hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

static int
algorithms(void)
{
    if (pthread_once(&fetch_once, fetch_algorithms) != 0 || aes_cbc == NULL || hmac == NULL)
        return ck_error_set_ssl(CK_ERR_CRYPTO, "ESP: fetching AES-128-CBC/HMAC");
    return 0;
}

int
ck_esp_sa_new(const struct ck_esp_sa_params *p, ck_esp_sa **out)
{
    size_t want_enc, want_auth;
    uint16_t window = 0, bits = 0;
    uint8_t iv_len, block;
    ck_esp_sa *sa;
    int ret;

    *out = NULL;
    switch (p->enc) {
    case CK_KMM_ENC_AES128:
        want_enc = 16, iv_len = 16, block = 16;
        break;
    case CK_KMM_ENC_3DES:
        want_enc = 24, iv_len = 8, block = 8;
        break;
    case CK_KMM_ENC_NULL:
        want_enc = 0, iv_len = 0, block = ESP_NULL_ALIGN;
        break;
    default:
        return ck_error_set(CK_ERR_UNSUPPORTED, "ESP: encryption transform 0x%02x", p->enc);
    }
    switch (p->auth) {
    case CK_KMM_AUTH_HMAC_SHA1_96:
        want_auth = 20;
        break;
    case CK_KMM_AUTH_HMAC_MD5_96:
        want_auth = 16;
        break;
    default:
        return ck_error_set(CK_ERR_UNSUPPORTED, "ESP: authentication transform 0x%02x", p->auth);
    }
    if (p->enc_key_len != want_enc || (want_enc > 0 && p->enc_key == NULL))
        return ck_error_set(CK_ERR_INVAL, "ESP: encryption key of %zu bytes, expected %zu",
                            p->enc_key_len, want_enc);
    if (p->auth_key_len != want_auth || p->auth_key == NULL)
        return ck_error_set(CK_ERR_INVAL, "ESP: authentication key of %zu bytes, expected %zu",
                            p->auth_key_len, want_auth);
    if (p->spi == 0)
        return ck_error_set(CK_ERR_INVAL, "ESP: SPI 0 is reserved");
    if ((ret = ck_esp_int_window(p->replay_window, &window, &bits)) != 0)
        return ret;
    sa = calloc(1, sizeof(*sa) + bits / 8);
    if (sa == NULL)
        return ck_error_set(CK_ERR_NOMEM, "ESP: SA");
    sa->id = atomic_fetch_add(&next_sa_id, 1);
    sa->spi = p->spi;
    sa->expires = p->expires;
    sa->life_bytes = p->life_bytes;
    sa->window = window;
    sa->bitmap_bits = bits;
    sa->enc = p->enc;
    sa->auth = p->auth;
    sa->enc_key_len = (uint8_t)want_enc;
    sa->auth_key_len = (uint8_t)want_auth;
    sa->iv_len = iv_len;
    sa->block = block;
    if (want_enc > 0)
        memcpy(sa->enc_key, p->enc_key, want_enc);
    memcpy(sa->auth_key, p->auth_key, want_auth);
    /* Sequence number 0 is never sent (RFC 4303 §3.3.3): marking it seen makes it a replay. */
    sa->bitmap[0] = 1;
    /* A call's compatibility mode starts elsewhere: the counter holds the last one "sent". */
    if (p->first_seq > 1)
        sa->seq = p->first_seq - 1;
    *out = sa;
    return 0;
}

void
ck_esp_sa_free(ck_esp_sa *sa)
{
    if (sa == NULL)
        return;
    ck_free_secret(sa, sizeof(*sa) + sa->bitmap_bits / 8);
}

uint32_t
ck_esp_sa_spi(const ck_esp_sa *sa)
{
    return sa->spi;
}

size_t
ck_esp_sa_footprint(const ck_esp_sa *sa)
{
    return sizeof(*sa) + sa->bitmap_bits / 8;
}

void
ck_esp_sa_stats(const ck_esp_sa *sa, struct ck_esp_sa_stats *out)
{
    out->packets = sa->packets;
    out->bytes = sa->bytes;
    out->replayed = sa->replayed;
    out->bad_icv = sa->bad_icv;
    out->expired = sa->expired;
    out->last_seq = sa->seq;
}

int
ck_esp_engine_new(ck_esp_engine **out)
{
    static const char *const digests[AUTH_COUNT] = {"MD5", "SHA1"};
    ck_esp_engine *eng;
    int ret;

    *out = NULL;
    if ((ret = algorithms()) != 0)
        return ret;
    eng = calloc(1, sizeof(*eng));
    if (eng == NULL)
        return ck_error_set(CK_ERR_NOMEM, "ESP: engine");
    eng->rand_pos = ESP_RAND_POOL;
    eng->rand_fork_gen = atomic_load(&fork_gen);
    for (int d = 0; d < 2; d++) {
        if ((eng->dir[d].cipher = EVP_CIPHER_CTX_new()) == NULL) {
            ret = ck_error_set(CK_ERR_NOMEM, "ESP: cipher context");
            goto out;
        }
        for (int a = 0; a < AUTH_COUNT; a++) {
            OSSL_PARAM params[2];

            params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                         (char *)digests[a], 0);
            params[1] = OSSL_PARAM_construct_end();
            eng->dir[d].mac[a] = EVP_MAC_CTX_new(hmac);
            if (eng->dir[d].mac[a] == NULL || !EVP_MAC_CTX_set_params(eng->dir[d].mac[a], params)) {
                ret = ck_error_set_ssl(CK_ERR_CRYPTO, "ESP: HMAC-%s context", digests[a]);
                goto out;
            }
        }
    }
    *out = eng;
    eng = NULL;
    ret = 0;
out:
    ck_esp_engine_free(eng);
    return ret;
}

void
ck_esp_engine_free(ck_esp_engine *eng)
{
    if (eng == NULL)
        return;
    for (int d = 0; d < 2; d++) {
        EVP_CIPHER_CTX_free(eng->dir[d].cipher);
        for (int a = 0; a < AUTH_COUNT; a++)
            EVP_MAC_CTX_free(eng->dir[d].mac[a]);
    }
    ck_free_secret(eng, sizeof(*eng));
}

static inline int
auth_index(const ck_esp_sa *sa)
{
    return sa->auth == CK_KMM_AUTH_HMAC_SHA1_96 ? AUTH_SHA1 : AUTH_MD5;
}

/* Keys the engine's contexts for direction d with sa's keys, unless they already are. */
static int
engine_key(ck_esp_engine *eng, int d, const ck_esp_sa *sa)
{
    struct esp_dir *dir = &eng->dir[d];

    if (dir->sa_id == sa->id)
        return 0;
    dir->sa_id = 0;
    if (sa->enc != CK_KMM_ENC_NULL) {
        const EVP_CIPHER *c = sa->enc == CK_KMM_ENC_AES128 ? aes_cbc : des3_cbc;

        if (c == NULL)
            return ck_error_set(CK_ERR_UNSUPPORTED, "ESP: 3DES-CBC not available");
        if (!EVP_CipherInit_ex2(dir->cipher, c, sa->enc_key, NULL, d == DIR_OUT, NULL))
            return ck_error_set_ssl(CK_ERR_CRYPTO, "ESP: cipher key");
        /* ESP pads itself; EVP's PKCS#7 padding would also hold back the last block. */
        EVP_CIPHER_CTX_set_padding(dir->cipher, 0);
    }
    if (!EVP_MAC_init(dir->mac[auth_index(sa)], sa->auth_key, sa->auth_key_len, NULL))
        return ck_error_set_ssl(CK_ERR_CRYPTO, "ESP: HMAC key");
    dir->sa_id = sa->id;
    return 0;
}

/* The 12-byte ICV of data, from the keyed MAC context of direction d. */
static int
compute_icv(ck_esp_engine *eng, int d, const ck_esp_sa *sa, const uint8_t *data, size_t len,
            uint8_t icv[CK_ESP_ICV_LEN])
{
    EVP_MAC_CTX *mac = eng->dir[d].mac[auth_index(sa)];
    uint8_t full[ESP_MAX_DIGEST];
    size_t n = 0;

    if (!EVP_MAC_init(mac, NULL, 0, NULL) || !EVP_MAC_update(mac, data, len) ||
        !EVP_MAC_final(mac, full, &n, sizeof(full)) || n < CK_ESP_ICV_LEN) {
        eng->dir[d].sa_id = 0;
        return ck_error_set_ssl(CK_ERR_CRYPTO, "ESP: HMAC");
    }
    memcpy(icv, full, CK_ESP_ICV_LEN);
    ck_memzero(full, sizeof(full));
    return 0;
}

/* Runs the direction's cipher over len bytes (a multiple of the block), starting a new chain
 * from iv, or continuing the previous call's chain when iv is NULL. */
static int
cbc(ck_esp_engine *eng, int d, const uint8_t *iv, const uint8_t *in, size_t len, uint8_t *out)
{
    EVP_CIPHER_CTX *c = eng->dir[d].cipher;
    int n = 0;

    if ((iv != NULL && !EVP_CipherInit_ex2(c, NULL, NULL, iv, -1, NULL)) ||
        (len > 0 && (!EVP_CipherUpdate(c, out, &n, in, (int)len) || (size_t)n != len))) {
        eng->dir[d].sa_id = 0;
        return ck_error_set_ssl(CK_ERR_CRYPTO, "ESP: CBC");
    }
    return 0;
}

static int
next_iv(ck_esp_engine *eng, uint8_t *iv, size_t len)
{
    if (eng->test_iv_len != 0) {
        size_t have = eng->test_iv_len;

        eng->test_iv_len = 0;
        if (have != len)
            return ck_error_set(CK_ERR_INVAL, "ESP: test IV of %zu bytes, expected %zu", have,
                                len);
        memcpy(iv, eng->test_iv, len);
        return 0;
    }
    if (ESP_RAND_POOL - eng->rand_pos < len || eng->rand_fork_gen != atomic_load(&fork_gen)) {
        eng->rand_fork_gen = atomic_load(&fork_gen);
        if (RAND_bytes(eng->rand_pool, ESP_RAND_POOL) != 1) {
            eng->rand_pos = ESP_RAND_POOL;
            return ck_error_set_ssl(CK_ERR_CRYPTO, "ESP: RAND_bytes");
        }
        eng->rand_pos = 0;
    }
    memcpy(iv, eng->rand_pool + eng->rand_pos, len);
    /* Each IV is handed out once, and is not left behind for a later memory disclosure. */
    ck_memzero(eng->rand_pool + eng->rand_pos, len);
    eng->rand_pos += len;
    return 0;
}

void
ck_esp_int_header(uint8_t *pkt, uint32_t spi, uint32_t seq)
{
    ck_put_be32(pkt, spi);
    ck_put_be32(pkt + 4, seq);
}

size_t
ck_esp_int_padded_len(size_t len, size_t block)
{
    return (len + 2 + block - 1) / block * block;
}

void
ck_esp_int_trailer(uint8_t *dst, size_t pad, uint8_t next_header)
{
    for (size_t i = 0; i < pad; i++)
        dst[i] = (uint8_t)(i + 1);
    dst[pad] = (uint8_t)pad;
    dst[pad + 1] = next_header;
}

int
ck_esp_int_check_trailer(const uint8_t *tail, size_t tail_len, size_t *pad)
{
    size_t n;

    *pad = 0;
    if (tail_len < 2)
        return ck_error_set(CK_ERR_DECODE, "ESP: no trailer");
    n = tail[tail_len - 2];
    if (n + 2 > tail_len)
        return ck_error_set(CK_ERR_DECODE, "ESP: pad length %zu over the packet", n);
    /* RFC 4303 §2.4: the default padding is 1, 2, 3...; anything else is refused. */
    for (size_t i = 0; i < n; i++)
        if (tail[tail_len - 2 - n + i] != (uint8_t)(i + 1))
            return ck_error_set(CK_ERR_DECODE, "ESP: bad padding");
    *pad = n;
    return 0;
}

int
ck_esp_int_window(uint32_t requested, uint16_t *window, uint16_t *bits)
{
    uint32_t w = requested == 0 ? CK_ESP_DEFAULT_WINDOW : requested, b;

    if (w > CK_ESP_MAX_WINDOW)
        return ck_error_set(CK_ERR_INVAL, "ESP: replay window %u over %u", w, CK_ESP_MAX_WINDOW);
    for (b = 64; b < w; b <<= 1)
        ;
    *window = (uint16_t)w;
    *bits = (uint16_t)b;
    return 0;
}

static size_t
padded_len(const ck_esp_sa *sa, size_t len)
{
    return ck_esp_int_padded_len(len, sa->block);
}

size_t
ck_esp_protected_size(const ck_esp_sa *sa, size_t len)
{
    return ESP_HDR_LEN + sa->iv_len + padded_len(sa, len) + CK_ESP_ICV_LEN;
}

static bool
expired(ck_esp_sa *sa, int64_t now)
{
    if (sa->expires != 0 && now >= sa->expires) {
        sa->expired++;
        return true;
    }
    return false;
}

int
ck_esp_protect(ck_esp_engine *eng, ck_esp_sa *sa, uint8_t next_header, const uint8_t *payload,
               size_t len, int64_t now, uint8_t *pkt, size_t cap, size_t *pkt_len)
{
    uint8_t tail[2 * ESP_MAX_BLOCK];
    size_t need, ct_len, full, rest, pad, off;
    int ret;

    *pkt_len = 0;
    if (len > CK_ESP_MAX_PACKET)
        return ck_error_set(CK_ERR_LIMIT, "ESP: payload of %zu bytes", len);
    need = ck_esp_protected_size(sa, len);
    if (need > CK_ESP_MAX_PACKET)
        return ck_error_set(CK_ERR_LIMIT, "ESP: packet of %zu bytes over %d", need,
                            CK_ESP_MAX_PACKET);
    if (need > cap)
        return ck_error_set(CK_ERR_LIMIT, "ESP: packet of %zu bytes, buffer of %zu", need, cap);
    if (expired(sa, now))
        return ck_error_set(CK_ERR_EXPIRED, "ESP: SA 0x%08x past its lifetime", sa->spi);
    if (sa->life_bytes != 0 && (sa->bytes >= sa->life_bytes || len > sa->life_bytes - sa->bytes)) {
        sa->expired++;
        return ck_error_set(CK_ERR_EXPIRED, "ESP: SA 0x%08x byte lifetime reached", sa->spi);
    }
    if (sa->seq == UINT32_MAX) {
        sa->expired++;
        return ck_error_set(CK_ERR_EXPIRED, "ESP: SA 0x%08x sequence numbers exhausted", sa->spi);
    }
    if ((ret = engine_key(eng, DIR_OUT, sa)) != 0)
        return ret;

    ct_len = padded_len(sa, len);
    full = len - len % sa->block;
    rest = len - full;
    pad = ct_len - len - 2;
    off = ESP_HDR_LEN + sa->iv_len;
    /* The partial last block of payload, the padding 1, 2, 3... and the trailer. */
    if (rest > 0)
        memcpy(tail, payload + full, rest);
    ck_esp_int_trailer(tail + rest, pad, next_header);

    ck_esp_int_header(pkt, sa->spi, sa->seq + 1);
    if (sa->enc == CK_KMM_ENC_NULL) {
        if (len > 0)
            memmove(pkt + off, payload, len);
        memcpy(pkt + off + full, tail, ct_len - full);
    } else {
        uint8_t *iv = pkt + ESP_HDR_LEN;

        if ((ret = next_iv(eng, iv, sa->iv_len)) != 0)
            goto out;
        if ((ret = cbc(eng, DIR_OUT, iv, payload, full, pkt + off)) != 0)
            goto out;
        if ((ret = cbc(eng, DIR_OUT, NULL, tail, ct_len - full, pkt + off + full)) != 0)
            goto out;
    }
    if ((ret = compute_icv(eng, DIR_OUT, sa, pkt, off + ct_len, pkt + off + ct_len)) != 0)
        goto out;
    sa->seq++;
    sa->packets++;
    sa->bytes += len;
    *pkt_len = need;
    ret = 0;
out:
    ck_memzero(tail, sizeof(tail));
    return ret;
}

int
ck_esp_unprotect(ck_esp_engine *eng, ck_esp_sa *sa, const uint8_t *pkt, size_t len,
                 int64_t now, uint8_t *payload, size_t cap, size_t *payload_len,
                 uint8_t *next_header)
{
    uint8_t icv[CK_ESP_ICV_LEN], tbuf[ESP_TAIL_MAX];
    const uint8_t *ct, *iv, *trailer;
    size_t ct_len, tail_len, pad, plen, head;
    uint32_t seq;
    bool wrote = false;
    int ret;

    *payload_len = 0;
    if (len > CK_ESP_MAX_PACKET)
        return ck_error_set(CK_ERR_DECODE, "ESP: packet of %zu bytes", len);
    if (len < ESP_HDR_LEN + (size_t)sa->iv_len + CK_ESP_ICV_LEN + sa->block)
        return ck_error_set(CK_ERR_DECODE, "ESP: truncated packet (%zu bytes)", len);
    ct_len = len - ESP_HDR_LEN - sa->iv_len - CK_ESP_ICV_LEN;
    if (ct_len % sa->block != 0)
        return ck_error_set(CK_ERR_DECODE, "ESP: ciphertext of %zu bytes is not whole blocks",
                            ct_len);
    if (ck_get_be32(pkt) != sa->spi)
        return ck_error_set(CK_ERR_DECODE, "ESP: SPI 0x%08x, expected 0x%08x", ck_get_be32(pkt),
                            sa->spi);
    if (expired(sa, now))
        return ck_error_set(CK_ERR_EXPIRED, "ESP: SA 0x%08x past its lifetime", sa->spi);
    seq = ck_get_be32(pkt + 4);
    /* RFC 4303 §3.4.3: the cheap duplicate check first, the window update only after the ICV
     * (and everything else) verified. */
    if (ck_replay_check(sa->bitmap, sa->bitmap_bits, sa->seq, sa->window, seq) !=
        CK_REPLAY_NEW) {
        sa->replayed++;
        return ck_error_set(CK_ERR_REPLAY, "ESP: SA 0x%08x sequence number %u replayed or too old",
                            sa->spi, seq);
    }
    if ((ret = engine_key(eng, DIR_IN, sa)) != 0)
        return ret;
    if ((ret = compute_icv(eng, DIR_IN, sa, pkt, len - CK_ESP_ICV_LEN, icv)) != 0)
        return ret;
    if (!ck_ct_equal(icv, pkt + len - CK_ESP_ICV_LEN, CK_ESP_ICV_LEN)) {
        sa->bad_icv++;
        return ck_error_set(CK_ERR_INTEGRITY, "ESP: SA 0x%08x ICV mismatch", sa->spi);
    }

    iv = pkt + ESP_HDR_LEN;
    ct = iv + sa->iv_len;
    /* Decrypt the end first (CBC decrypts any block given the one before it), so that padding
     * and length are checked before anything is written to the caller's buffer. */
    if (sa->enc == CK_KMM_ENC_NULL) {
        tail_len = ct_len < ESP_TAIL_MAX ? ct_len : ESP_TAIL_MAX;
        trailer = ct + ct_len - tail_len;
    } else {
        size_t bs = sa->block;

        tail_len = bs;
        if ((ret = cbc(eng, DIR_IN, ct_len > bs ? ct + ct_len - 2 * bs : iv, ct + ct_len - bs, bs,
                       tbuf + ESP_TAIL_MAX - bs)) != 0)
            goto out;
        pad = tbuf[ESP_TAIL_MAX - 2];
        if (pad + 2 > bs && pad + 2 <= ct_len) {
            size_t more = (pad + 2 + bs - 1) / bs * bs;

            if ((ret = cbc(eng, DIR_IN, ct_len > more ? ct + ct_len - more - bs : iv,
                           ct + ct_len - more, more - bs, tbuf + ESP_TAIL_MAX - more)) != 0)
                goto out;
            tail_len = more;
        }
        trailer = tbuf + ESP_TAIL_MAX - tail_len;
    }
    if ((ret = ck_esp_int_check_trailer(trailer, tail_len, &pad)) != 0)
        goto out;
    plen = ct_len - 2 - pad;
    if (plen > cap) {
        ret = ck_error_set(CK_ERR_LIMIT, "ESP: payload of %zu bytes, buffer of %zu", plen, cap);
        goto out;
    }
    if (sa->life_bytes != 0 && (sa->bytes >= sa->life_bytes || plen > sa->life_bytes - sa->bytes)) {
        sa->expired++;
        ret = ck_error_set(CK_ERR_EXPIRED, "ESP: SA 0x%08x byte lifetime reached", sa->spi);
        goto out;
    }
    head = ct_len - tail_len;
    wrote = true;
    if (sa->enc == CK_KMM_ENC_NULL) {
        if (plen > 0)
            memmove(payload, ct, plen);
    } else {
        if (head > 0 && (ret = cbc(eng, DIR_IN, iv, ct, head, payload)) != 0)
            goto out;
        if (plen > head)
            memcpy(payload + head, trailer, plen - head);
    }
    *next_header = trailer[tail_len - 1];
    *payload_len = plen;
    ck_replay_update(sa->bitmap, sa->bitmap_bits, &sa->seq, seq);
    sa->packets++;
    sa->bytes += plen;
    ret = 0;
out:
    if (ret != 0 && wrote)
        ck_memzero(payload, plen);
    ck_memzero(tbuf, sizeof(tbuf));
    return ret;
}

enum ck_esp_udp_kind
ck_esp_udp_classify(const uint8_t *buf, size_t len, uint32_t *spi)
{
    if (len == 1 && buf[0] == 0xff)
        return CK_ESP_UDP_KEEPALIVE;
    if (len >= 4 && ck_get_be32(buf) == 0)
        return CK_ESP_UDP_NON_ESP;
    if (len < ESP_HDR_LEN)
        return CK_ESP_UDP_INVALID;
    *spi = ck_get_be32(buf);
    return CK_ESP_UDP_ESP;
}

int
ck_esp_udp_wrap(uint16_t src_port, uint16_t dst_port, const uint8_t *data, size_t len,
                uint8_t *out, size_t cap, size_t *out_len)
{
    *out_len = 0;
    if (len > 65535 - 8 || len + 8 > cap)
        return ck_error_set(CK_ERR_LIMIT, "UDP: %zu bytes do not fit", len);
    if (len > 0)
        memmove(out + 8, data, len);
    out[0] = (uint8_t)(src_port >> 8);
    out[1] = (uint8_t)src_port;
    out[2] = (uint8_t)(dst_port >> 8);
    out[3] = (uint8_t)dst_port;
    out[4] = (uint8_t)((len + 8) >> 8);
    out[5] = (uint8_t)(len + 8);
    /* Checksum 0: the ESP ICV already covers the payload (RFC 3948 §3.1.2 lets a transport-mode
     * receiver skip the check, since NAT changes the pseudo-header). */
    out[6] = 0;
    out[7] = 0;
    *out_len = len + 8;
    return 0;
}

int
ck_esp_udp_unwrap(const uint8_t *buf, size_t len, uint16_t *src_port, uint16_t *dst_port,
                  const uint8_t **data, size_t *data_len)
{
    size_t ulen;

    if (len < 8)
        return ck_error_set(CK_ERR_DECODE, "UDP: header truncated (%zu bytes)", len);
    ulen = (size_t)buf[4] << 8 | buf[5];
    if (ulen != len)
        return ck_error_set(CK_ERR_DECODE, "UDP: length field %zu, datagram of %zu bytes", ulen,
                            len);
    *src_port = (uint16_t)(buf[0] << 8 | buf[1]);
    *dst_port = (uint16_t)(buf[2] << 8 | buf[3]);
    *data = buf + 8;
    *data_len = len - 8;
    return 0;
}

/* Appends formatted text at buf + *used; CK_ERR_LIMIT when it does not fit. */
static int __attribute__((format(printf, 4, 5)))
append(char *buf, size_t size, size_t *used, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf + *used, size - *used, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= size - *used)
        return CK_ERR_LIMIT;
    *used += (size_t)n;
    return 0;
}

static int
append_hex(char *buf, size_t size, size_t *used, const uint8_t *p, size_t n)
{
    int ret = append(buf, size, used, "0x");

    for (size_t i = 0; ret == 0 && i < n; i++)
        ret = append(buf, size, used, "%02x", p[i]);
    return ret;
}

/* AF_INET or AF_INET6 when src and dst are both numeric addresses of that family, else 0. */
static int
numeric_family(const char *src, const char *dst)
{
    uint8_t a[16];
    int fam;

    if (src == NULL || dst == NULL)
        return 0;
    fam = inet_pton(AF_INET, src, a) == 1    ? AF_INET
          : inet_pton(AF_INET6, src, a) == 1 ? AF_INET6 : 0;
    if (fam == 0 || inet_pton(fam, dst, a) != 1)
        return 0;
    return fam;
}

int
ck_esp_xfrm_format(const ck_esp_sa *sa, const struct ck_esp_xfrm_desc *d, char *buf, size_t size,
                   size_t *used)
{
    const char *auth, *enc, *plen;
    size_t start = *used;
    int fam, ret;

    if (start >= size)
        return ck_error_set(CK_ERR_INVAL, "xfrm: buffer offset %zu of %zu", start, size);
    /* The text is a shell command: only well-formed numeric addresses go into it. */
    if ((fam = numeric_family(d->src, d->dst)) == 0)
        return ck_error_set(CK_ERR_INVAL, "xfrm: addresses are not numeric of one family");
    plen = fam == AF_INET ? "32" : "128";
    auth = sa->auth == CK_KMM_AUTH_HMAC_SHA1_96 ? "hmac(sha1)" : "hmac(md5)";
    enc = sa->enc == CK_KMM_ENC_AES128 ? "cbc(aes)"
          : sa->enc == CK_KMM_ENC_3DES ? "cbc(des3_ede)" : "ecb(cipher_null)";

    ret = append(buf, size, used,
                 "ip xfrm state add src %s dst %s proto esp spi 0x%08x reqid %u mode transport "
                 "auth-trunc '%s' ",
                 d->src, d->dst, sa->spi, d->reqid, auth);
    if (ret == 0)
        ret = append_hex(buf, size, used, sa->auth_key, sa->auth_key_len);
    if (ret == 0)
        ret = append(buf, size, used, " 96 enc '%s' ", enc);
    if (ret == 0)
        ret = sa->enc_key_len > 0 ? append_hex(buf, size, used, sa->enc_key, sa->enc_key_len)
                                  : append(buf, size, used, "\"\"");
    if (ret == 0)
        ret = append(buf, size, used, " encap espinudp %u %u %s\n", d->src_port, d->dst_port,
                     fam == AF_INET ? "0.0.0.0" : "::");
    if (ret == 0)
        ret = append(buf, size, used, "ip xfrm policy add src %s/%s dst %s/%s proto udp", d->src,
                     plen, d->dst, plen);
    if (ret == 0 && d->inner_src_port != 0)
        ret = append(buf, size, used, " sport %u", d->inner_src_port);
    if (ret == 0 && d->inner_dst_port != 0)
        ret = append(buf, size, used, " dport %u", d->inner_dst_port);
    if (ret == 0)
        ret = append(buf, size, used,
                     " dir out tmpl src %s dst %s proto esp reqid %u mode transport\n", d->src,
                     d->dst, d->reqid);
    if (ret != 0) {
        /* Leave no partial command (it holds key bytes) behind. */
        ck_memzero(buf + start, size - start);
        *used = start;
        return ck_error_set(CK_ERR_LIMIT, "xfrm: buffer of %zu bytes too small", size);
    }
    return 0;
}

int
ck_esp_wireshark_sa_format(const ck_esp_sa *sa, const char *src, const char *dst, char *buf,
                           size_t size, size_t *used)
{
    const char *auth, *enc;
    size_t start = *used;
    int fam, ret;

    if (start >= size)
        return ck_error_set(CK_ERR_INVAL, "esp_sa: buffer offset %zu of %zu", start, size);
    /* Fields are quoted, and the addresses are SA selectors: a name (or Wireshark's "*"
     * wildcard) would silently match other traffic, or a '"' break the record. */
    if ((fam = numeric_family(src, dst)) == 0)
        return ck_error_set(CK_ERR_INVAL, "esp_sa: addresses are not numeric of one family");
    /* The exact labels of Wireshark's esp_sa table (packet-ipsec.c): any other spelling makes
     * the record unreadable. */
    enc = sa->enc == CK_KMM_ENC_AES128 ? "AES-CBC [RFC3602]"
          : sa->enc == CK_KMM_ENC_3DES ? "TripleDES-CBC [RFC2451]" : "NULL";
    auth = sa->auth == CK_KMM_AUTH_HMAC_SHA1_96 ? "HMAC-SHA-1-96 [RFC2404]"
                                                 : "HMAC-MD5-96 [RFC2403]";

    ret = append(buf, size, used, "\"%s\",\"%s\",\"%s\",\"0x%08x\",\"%s\",\"",
                 fam == AF_INET ? "IPv4" : "IPv6", src, dst, sa->spi, enc);
    if (ret == 0 && sa->enc_key_len > 0)
        ret = append_hex(buf, size, used, sa->enc_key, sa->enc_key_len);
    if (ret == 0)
        ret = append(buf, size, used, "\",\"%s\",\"", auth);
    if (ret == 0)
        ret = append_hex(buf, size, used, sa->auth_key, sa->auth_key_len);
    if (ret == 0)
        ret = append(buf, size, used, "\"\n");
    if (ret != 0) {
        ck_memzero(buf + start, size - start);
        *used = start;
        return ck_error_set(CK_ERR_LIMIT, "esp_sa: buffer of %zu bytes too small", size);
    }
    return 0;
}

void
ck_esp_test_set_next_iv(ck_esp_engine *eng, const uint8_t *iv, size_t len)
{
    if (len > sizeof(eng->test_iv))
        len = sizeof(eng->test_iv);
    memcpy(eng->test_iv, iv, len);
    eng->test_iv_len = len;
}

void
ck_esp_test_set_seq(ck_esp_sa *sa, uint32_t seq)
{
    memset(sa->bitmap, 0, sa->bitmap_bits / 8);
    sa->seq = seq;
    ck_replay_update(sa->bitmap, sa->bitmap_bits, &sa->seq, seq);
}

int
ck_esp_test_icv(ck_esp_engine *eng, const ck_esp_sa *sa, const uint8_t *data, size_t len,
                uint8_t icv[CK_ESP_ICV_LEN])
{
    int ret = engine_key(eng, DIR_IN, sa);

    return ret != 0 ? ret : compute_icv(eng, DIR_IN, sa, data, len, icv);
}
