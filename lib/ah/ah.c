/* RFC 4302 AH over IPv4 with HMAC-SHA-1-96, in userspace (contract: cablekey/ah.h).
 *
 * Each SA keeps its own keyed EVP_MAC context and restarts it per packet with
 * EVP_MAC_init(ctx, NULL, ...), as lib/esp does: re-keying HMAC per packet costs two extra
 * compression-function calls for nothing. The replay window is a plain bit array shifted on
 * every new highest sequence number: at most 1024 bits (16 words), so the shift is cheaper than
 * the HMAC it follows. */
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "cablekey/ah.h"
#include "cablekey/error.h"
#include "cablekey/kmm.h"
#include "cablekey/util.h"

#define WORDS (CK_AH_MAX_WINDOW / 64)
#define SHA1_LEN 20

struct ck_ah_sa {
    uint32_t spi;
    uint32_t seq;             /* outbound: last sent; inbound: highest accepted */
    uint32_t window;
    bool exhausted;
    uint64_t packets, bytes, replayed, bad_icv;
    uint64_t bits[WORDS];     /* bit i set: seq - i was accepted (i < window) */
    uint8_t key[CK_AH_KEY_LEN];
    EVP_MAC_CTX *mac;         /* keyed with key */
};

static EVP_MAC_CTX *
mac_new(const uint8_t *key, size_t key_len)
{
    EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = NULL;
    OSSL_PARAM params[2];

    if (hmac == NULL)
        return NULL;
    ctx = EVP_MAC_CTX_new(hmac);
    EVP_MAC_free(hmac);        /* the context holds its own reference */
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA1", 0);
    params[1] = OSSL_PARAM_construct_end();
    if (ctx == NULL || !EVP_MAC_init(ctx, key, key_len, params)) {
        EVP_MAC_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

int
ck_ah_sa_new(const struct ck_ah_sa_params *p, ck_ah_sa **out)
{
    ck_ah_sa *sa;
    uint32_t w;

    *out = NULL;
    if (p == NULL || p->spi < CK_AH_SPI_MIN)
        return ck_error_set(CK_ERR_INVAL, "AH SA: SPI must be >= %u", CK_AH_SPI_MIN);
    if (p->key == NULL || p->key_len != CK_AH_KEY_LEN)
        return ck_error_set(CK_ERR_INVAL, "AH SA: the HMAC-SHA-1 key must be %d bytes",
                            CK_AH_KEY_LEN);
    w = p->replay_window == 0 ? CK_AH_DEFAULT_WINDOW : p->replay_window;
    if (w < CK_AH_MIN_WINDOW || w > CK_AH_MAX_WINDOW)
        return ck_error_set(CK_ERR_INVAL, "AH SA: replay window %u outside %d..%d", w,
                            CK_AH_MIN_WINDOW, CK_AH_MAX_WINDOW);
    if ((sa = calloc(1, sizeof(*sa))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "AH SA");
    sa->spi = p->spi;
    sa->window = w;
    memcpy(sa->key, p->key, CK_AH_KEY_LEN);
    if ((sa->mac = mac_new(sa->key, CK_AH_KEY_LEN)) == NULL) {
        ck_ah_sa_free(sa);
        return ck_error_set(CK_ERR_CRYPTO, "AH SA: HMAC-SHA-1 context");
    }
    *out = sa;
    return 0;
}

void
ck_ah_sa_free(ck_ah_sa *sa)
{
    if (sa == NULL)
        return;
    EVP_MAC_CTX_free(sa->mac);
    ck_memzero(sa, sizeof(*sa));
    free(sa);
}

uint32_t
ck_ah_sa_spi(const ck_ah_sa *sa)
{
    return sa->spi;
}

void
ck_ah_sa_stats(const ck_ah_sa *sa, struct ck_ah_sa_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->packets = sa->packets;
    out->bytes = sa->bytes;
    out->replayed = sa->replayed;
    out->bad_icv = sa->bad_icv;
    out->last_seq = sa->seq;
}

/* ---- parsing ------------------------------------------------------------------------------ */

static uint16_t
get16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t
get32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void
put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void
put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

int
ck_ah_parse_ipv4(const uint8_t *pkt, size_t len, struct ck_ah_info *out)
{
    const uint8_t *ah;

    memset(out, 0, sizeof(*out));
    if (pkt == NULL || len < 1)
        return ck_error_set(CK_ERR_DECODE, "AH: empty packet");
    if ((pkt[0] >> 4) != 4)
        return ck_error_set((pkt[0] >> 4) == 6 ? CK_ERR_UNSUPPORTED : CK_ERR_DECODE,
                            "AH: IP version %u (IPv4 only)", pkt[0] >> 4);
    if (len < CK_AH_IPV4_HDR_LEN)
        return ck_error_set(CK_ERR_DECODE, "AH: %zu bytes, shorter than an IPv4 header", len);
    if ((pkt[0] & 0x0f) < 5)
        return ck_error_set(CK_ERR_DECODE, "AH: IPv4 header length %u words", pkt[0] & 0x0f);
    if ((pkt[0] & 0x0f) != 5)
        return ck_error_set(CK_ERR_UNSUPPORTED, "AH: IPv4 options are not supported");
    if (len > CK_AH_MAX_PACKET || get16(pkt + 2) != len)
        return ck_error_set(CK_ERR_DECODE, "AH: IPv4 total length %u but %zu bytes",
                            get16(pkt + 2), len);
    if ((get16(pkt + 6) & 0x3fff) != 0)
        return ck_error_set(CK_ERR_UNSUPPORTED, "AH: a fragment (verify after reassembly)");
    if (pkt[9] != CK_AH_PROTO)
        return ck_error_set(CK_ERR_DECODE, "AH: IP protocol %u is not AH", pkt[9]);
    if (len < CK_AH_IPV4_HDR_LEN + CK_AH_HDR_LEN)
        return ck_error_set(CK_ERR_DECODE, "AH: truncated AH header (%zu bytes)", len);
    ah = pkt + CK_AH_IPV4_HDR_LEN;
    if (ah[1] != CK_AH_PAYLOAD_LEN_FIELD)
        return ck_error_set(CK_ERR_UNSUPPORTED, "AH: payload length %u (HMAC-SHA-1-96 needs %d)",
                            ah[1], CK_AH_PAYLOAD_LEN_FIELD);
    if (get16(ah + 2) != 0)
        return ck_error_set(CK_ERR_DECODE, "AH: reserved field not zero");
    memcpy(out->src, pkt + 12, 4);
    memcpy(out->dst, pkt + 16, 4);
    out->id = get16(pkt + 4);
    out->next_header = ah[0];
    out->spi = get32(ah + 4);
    out->seq = get32(ah + 8);
    out->payload_off = CK_AH_IPV4_HDR_LEN + CK_AH_HDR_LEN;
    out->payload_len = len - out->payload_off;
    return 0;
}

/* ---- ICV ---------------------------------------------------------------------------------- */

/* HMAC over the packet with the mutable IPv4 fields and the ICV zeroed; pkt was parsed. */
static int
icv_compute(EVP_MAC_CTX *mac, const uint8_t *pkt, size_t len, uint8_t icv[CK_AH_ICV_LEN])
{
    uint8_t hdr[CK_AH_IPV4_HDR_LEN + CK_AH_HDR_LEN], full[SHA1_LEN];
    size_t n = 0;
    int rc = 0;

    memcpy(hdr, pkt, sizeof(hdr));
    hdr[1] = 0;                               /* TOS (DSCP, ECN) */
    hdr[6] = hdr[7] = 0;                      /* flags, fragment offset */
    hdr[8] = 0;                               /* TTL */
    hdr[10] = hdr[11] = 0;                    /* header checksum */
    memset(hdr + CK_AH_IPV4_HDR_LEN + 12, 0, CK_AH_ICV_LEN);
    if (!EVP_MAC_init(mac, NULL, 0, NULL) || !EVP_MAC_update(mac, hdr, sizeof(hdr)) ||
        !EVP_MAC_update(mac, pkt + sizeof(hdr), len - sizeof(hdr)) ||
        !EVP_MAC_final(mac, full, &n, sizeof(full)) || n != SHA1_LEN)
        rc = ck_error_set(CK_ERR_CRYPTO, "AH: HMAC-SHA-1");
    else
        memcpy(icv, full, CK_AH_ICV_LEN);
    ck_memzero(full, sizeof(full));
    return rc;
}

int
ck_ah_icv_ipv4(const uint8_t key[CK_AH_KEY_LEN], const uint8_t *pkt, size_t len,
               uint8_t icv[CK_AH_ICV_LEN])
{
    struct ck_ah_info info;
    EVP_MAC_CTX *mac;
    int rc;

    if ((rc = ck_ah_parse_ipv4(pkt, len, &info)) != 0)
        return rc;
    if ((mac = mac_new(key, CK_AH_KEY_LEN)) == NULL)
        return ck_error_set(CK_ERR_CRYPTO, "AH: HMAC-SHA-1 context");
    rc = icv_compute(mac, pkt, len, icv);
    EVP_MAC_CTX_free(mac);
    return rc;
}

/* ---- outbound ----------------------------------------------------------------------------- */

static uint16_t
ipv4_checksum(const uint8_t *h)
{
    uint32_t sum = 0;

    for (size_t i = 0; i < CK_AH_IPV4_HDR_LEN; i += 2)
        sum += get16(h + i);
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

int
ck_ah_protect_ipv4(ck_ah_sa *sa, const uint8_t src[4], const uint8_t dst[4], uint16_t id,
                   uint8_t ttl, uint8_t next_header, const uint8_t *payload, size_t payload_len,
                   uint8_t *out, size_t cap, size_t *out_len)
{
    size_t total = CK_AH_IPV4_HDR_LEN + CK_AH_HDR_LEN + payload_len;
    uint8_t *ah = out + CK_AH_IPV4_HDR_LEN;
    int rc;

    *out_len = 0;
    if (payload == NULL && payload_len > 0)
        return ck_error_set(CK_ERR_INVAL, "AH: no payload");
    if (total > CK_AH_MAX_PACKET || total > cap)
        return ck_error_set(CK_ERR_LIMIT, "AH: %zu bytes do not fit (%zu, max %d)", total, cap,
                            CK_AH_MAX_PACKET);
    if (sa->exhausted || sa->seq == UINT32_MAX) {
        sa->exhausted = true;
        return ck_error_set(CK_ERR_EXPIRED, "AH SA 0x%08x: sequence numbers used up", sa->spi);
    }
    out[0] = 0x45;
    out[1] = 0;
    put16(out + 2, (uint16_t)total);
    put16(out + 4, id);
    put16(out + 6, 0);
    out[8] = ttl;
    out[9] = CK_AH_PROTO;
    put16(out + 10, 0);
    memcpy(out + 12, src, 4);
    memcpy(out + 16, dst, 4);
    ah[0] = next_header;
    ah[1] = CK_AH_PAYLOAD_LEN_FIELD;
    put16(ah + 2, 0);
    put32(ah + 4, sa->spi);
    put32(ah + 8, sa->seq + 1);
    memset(ah + 12, 0, CK_AH_ICV_LEN);
    if (payload_len > 0)
        memmove(out + CK_AH_IPV4_HDR_LEN + CK_AH_HDR_LEN, payload, payload_len);
    if ((rc = icv_compute(sa->mac, out, total, ah + 12)) != 0)
        return rc;
    put16(out + 10, ipv4_checksum(out));
    sa->seq++;
    sa->packets++;
    sa->bytes += payload_len;
    *out_len = total;
    return 0;
}

/* ---- inbound ------------------------------------------------------------------------------ */

static bool
window_get(const ck_ah_sa *sa, uint32_t i)
{
    return (sa->bits[i / 64] >> (i % 64)) & 1u;
}

/* 0 if seq may be new, else CK_ERR_REPLAY (RFC 4302 §3.4.3). */
static int
replay_check(const ck_ah_sa *sa, uint32_t seq)
{
    if (seq == 0)
        return ck_error_set(CK_ERR_REPLAY, "AH SA 0x%08x: sequence number 0", sa->spi);
    if (seq > sa->seq)
        return 0;
    if (sa->seq - seq >= sa->window)
        return ck_error_set(CK_ERR_REPLAY, "AH SA 0x%08x: sequence number %u left of the window",
                            sa->spi, seq);
    if (window_get(sa, sa->seq - seq))
        return ck_error_set(CK_ERR_REPLAY, "AH SA 0x%08x: sequence number %u replayed", sa->spi,
                            seq);
    return 0;
}

/* Shifts the window up by n (bit i moves to bit i + n). */
static void
window_shift(ck_ah_sa *sa, uint32_t n)
{
    uint32_t words = n / 64, bits = n % 64;

    if (n >= CK_AH_MAX_WINDOW) {
        memset(sa->bits, 0, sizeof(sa->bits));
        return;
    }
    for (int i = WORDS - 1; i >= 0; i--) {
        uint64_t v = 0;
        int from = i - (int)words;
        if (from >= 0) {
            v = sa->bits[from] << bits;
            if (bits != 0 && from >= 1)
                v |= sa->bits[from - 1] >> (64 - bits);
        }
        sa->bits[i] = v;
    }
}

static void
replay_update(ck_ah_sa *sa, uint32_t seq)
{
    uint32_t i;

    if (seq > sa->seq) {
        window_shift(sa, seq - sa->seq);
        sa->seq = seq;
    }
    i = sa->seq - seq;
    sa->bits[i / 64] |= (uint64_t)1 << (i % 64);
}

int
ck_ah_verify_ipv4(ck_ah_sa *sa, const uint8_t *pkt, size_t len, struct ck_ah_info *info)
{
    struct ck_ah_info local;
    uint8_t icv[CK_AH_ICV_LEN];
    int rc;

    if (info == NULL)
        info = &local;
    if ((rc = ck_ah_parse_ipv4(pkt, len, info)) != 0)
        return rc;
    if (info->spi != sa->spi)
        return ck_error_set(CK_ERR_INVAL, "AH: SPI 0x%08x is not this SA's (0x%08x)", info->spi,
                            sa->spi);
    if ((rc = replay_check(sa, info->seq)) != 0) {
        sa->replayed++;
        return rc;
    }
    if ((rc = icv_compute(sa->mac, pkt, len, icv)) != 0)
        return rc;
    if (!ck_ct_equal(icv, pkt + CK_AH_IPV4_HDR_LEN + 12, CK_AH_ICV_LEN)) {
        sa->bad_icv++;
        return ck_error_set(CK_ERR_INTEGRITY, "AH SA 0x%08x: ICV does not verify", sa->spi);
    }
    replay_update(sa, info->seq);
    sa->packets++;
    sa->bytes += info->payload_len;
    return 0;
}

/* ---- keys --------------------------------------------------------------------------------- */

int
ck_ah_derive_keys(const ck_key *subkey, uint32_t spi_device, uint32_t spi_router,
                  struct ck_ah_keys *out)
{
    uint8_t seed[8], block[2 * CK_AH_KEY_LEN];
    int rc;

    memset(out, 0, sizeof(*out));
    if (subkey == NULL || subkey->length == 0 || subkey->length > CK_KEY_MAX)
        return ck_error_set(CK_ERR_INVAL, "AH keys: no sub-key");
    if (spi_device < CK_AH_SPI_MIN || spi_router < CK_AH_SPI_MIN)
        return ck_error_set(CK_ERR_INVAL, "AH keys: SPI below %u", CK_AH_SPI_MIN);
    put32(seed, spi_device);
    put32(seed + 4, spi_router);
    rc = ck_kmm_prf(subkey->contents, subkey->length, CK_AH_KEYS_LABEL, seed, sizeof(seed),
                    block, sizeof(block));
    if (rc == 0) {
        out->spi_device = spi_device;
        out->spi_router = spi_router;
        memcpy(out->key_d2r, block, CK_AH_KEY_LEN);
        memcpy(out->key_r2d, block + CK_AH_KEY_LEN, CK_AH_KEY_LEN);
    }
    ck_memzero(block, sizeof(block));
    return rc;
}

void
ck_ah_keys_clear(struct ck_ah_keys *k)
{
    if (k != NULL)
        ck_memzero(k, sizeof(*k));
}
