/* RFC 4302 AH over IPv4 and IPv6 with HMAC-SHA-1-96, in userspace (contract: cablekey/ah.h).
 *
 * Each SA keeps its own keyed EVP_MAC context and restarts it per packet with
 * EVP_MAC_init(ctx, NULL, ...), as lib/esp does: re-keying HMAC per packet costs two extra
 * compression-function calls for nothing. The replay window is the one ESP uses
 * (ck_replay_check in lib/util) over a ring of CK_AH_MAX_WINDOW bits. */
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
    uint64_t bits[WORDS];     /* the replay ring (ck_replay_check), CK_AH_MAX_WINDOW bits */
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

/* IPv6 extension headers that may precede AH (RFC 8200 §4): cablekey does not walk them. */
static bool
ipv6_ext_header(uint8_t nh)
{
    return nh == 0 || nh == 43 || nh == 44 || nh == 60 || nh == 135 || nh == 139 || nh == 140;
}

static int
parse_ipv4(const uint8_t *pkt, size_t len, struct ck_ah_info *out)
{
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
    out->ip_version = 4;
    out->addr_len = 4;
    out->ip_hdr_len = CK_AH_IPV4_HDR_LEN;
    memcpy(out->src, pkt + 12, 4);
    memcpy(out->dst, pkt + 16, 4);
    out->id = get16(pkt + 4);
    return 0;
}

static int
parse_ipv6(const uint8_t *pkt, size_t len, struct ck_ah_info *out)
{
    if (len < CK_AH_IPV6_HDR_LEN)
        return ck_error_set(CK_ERR_DECODE, "AH: %zu bytes, shorter than an IPv6 header", len);
    /* Payload length 0 is a jumbogram (RFC 2675), which needs a hop-by-hop option: refused. */
    if (len - CK_AH_IPV6_HDR_LEN > 0xffff || get16(pkt + 4) != len - CK_AH_IPV6_HDR_LEN ||
        get16(pkt + 4) == 0)
        return ck_error_set(CK_ERR_DECODE, "AH: IPv6 payload length %u but %zu bytes",
                            get16(pkt + 4), len);
    if (pkt[6] != CK_AH_PROTO)
        return ck_error_set(ipv6_ext_header(pkt[6]) ? CK_ERR_UNSUPPORTED : CK_ERR_DECODE,
                            "AH: IPv6 next header %u (AH must follow the IPv6 header)", pkt[6]);
    out->ip_version = 6;
    out->addr_len = 16;
    out->ip_hdr_len = CK_AH_IPV6_HDR_LEN;
    memcpy(out->src, pkt + 8, 16);
    memcpy(out->dst, pkt + 24, 16);
    return 0;
}

int
ck_ah_parse(const uint8_t *pkt, size_t len, struct ck_ah_info *out)
{
    const uint8_t *ah;
    int rc;

    memset(out, 0, sizeof(*out));
    if (pkt == NULL || len < 1)
        return ck_error_set(CK_ERR_DECODE, "AH: empty packet");
    if ((pkt[0] >> 4) == 4)
        rc = parse_ipv4(pkt, len, out);
    else if ((pkt[0] >> 4) == 6)
        rc = parse_ipv6(pkt, len, out);
    else
        rc = ck_error_set(CK_ERR_DECODE, "AH: IP version %u", pkt[0] >> 4);
    if (rc != 0) {
        memset(out, 0, sizeof(*out));
        return rc;
    }
    if (len < out->ip_hdr_len + CK_AH_HDR_LEN) {
        memset(out, 0, sizeof(*out));
        return ck_error_set(CK_ERR_DECODE, "AH: truncated AH header (%zu bytes)", len);
    }
    ah = pkt + out->ip_hdr_len;
    if (ah[1] != CK_AH_PAYLOAD_LEN_FIELD || get16(ah + 2) != 0) {
        rc = ah[1] != CK_AH_PAYLOAD_LEN_FIELD
                 ? ck_error_set(CK_ERR_UNSUPPORTED,
                                "AH: payload length %u (HMAC-SHA-1-96 needs %d)", ah[1],
                                CK_AH_PAYLOAD_LEN_FIELD)
                 : ck_error_set(CK_ERR_DECODE, "AH: reserved field not zero");
        memset(out, 0, sizeof(*out));
        return rc;
    }
    out->next_header = ah[0];
    out->spi = get32(ah + 4);
    out->seq = get32(ah + 8);
    out->payload_off = out->ip_hdr_len + CK_AH_HDR_LEN;
    out->payload_len = len - out->payload_off;
    return 0;
}

/* ---- ICV ---------------------------------------------------------------------------------- */

/* HMAC over the packet with the mutable IP fields and the ICV zeroed; pkt was parsed (hdr_len is
 * its IP header length). */
static int
icv_compute(EVP_MAC_CTX *mac, const uint8_t *pkt, size_t len, size_t hdr_len,
            uint8_t icv[CK_AH_ICV_LEN])
{
    uint8_t hdr[CK_AH_IPV6_HDR_LEN + CK_AH_HDR_LEN], full[SHA1_LEN];
    size_t n = 0, h = hdr_len + CK_AH_HDR_LEN;
    int rc = 0;

    memcpy(hdr, pkt, h);
    if (hdr_len == CK_AH_IPV4_HDR_LEN) {     /* RFC 4302 §3.3.3.1.1.1 */
        hdr[1] = 0;                          /* TOS (DSCP, ECN) */
        hdr[6] = hdr[7] = 0;                 /* flags, fragment offset */
        hdr[8] = 0;                          /* TTL */
        hdr[10] = hdr[11] = 0;               /* header checksum */
    } else {                                 /* RFC 4302 §3.3.3.1.2.1 */
        hdr[0] &= 0xf0;                      /* traffic class... */
        hdr[1] = hdr[2] = hdr[3] = 0;        /* ...and flow label */
        hdr[7] = 0;                          /* hop limit */
    }
    memset(hdr + hdr_len + 12, 0, CK_AH_ICV_LEN);
    if (!EVP_MAC_init(mac, NULL, 0, NULL) || !EVP_MAC_update(mac, hdr, h) ||
        !EVP_MAC_update(mac, pkt + h, len - h) || !EVP_MAC_final(mac, full, &n, sizeof(full)) ||
        n != SHA1_LEN)
        rc = ck_error_set(CK_ERR_CRYPTO, "AH: HMAC-SHA-1");
    else
        memcpy(icv, full, CK_AH_ICV_LEN);
    ck_memzero(full, sizeof(full));
    return rc;
}

int
ck_ah_icv(const uint8_t key[CK_AH_KEY_LEN], const uint8_t *pkt, size_t len,
          uint8_t icv[CK_AH_ICV_LEN])
{
    struct ck_ah_info info;
    EVP_MAC_CTX *mac;
    int rc;

    if ((rc = ck_ah_parse(pkt, len, &info)) != 0)
        return rc;
    if ((mac = mac_new(key, CK_AH_KEY_LEN)) == NULL)
        return ck_error_set(CK_ERR_CRYPTO, "AH: HMAC-SHA-1 context");
    rc = icv_compute(mac, pkt, len, info.ip_hdr_len, icv);
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

/* Writes AH and payload after the IP header already in out (hdr_len bytes) and computes the
 * ICV; total = hdr_len + AH + payload (checked by the caller). */
static int
fill_ah(ck_ah_sa *sa, size_t hdr_len, uint8_t next_header, const uint8_t *payload,
        size_t payload_len, uint8_t *out, size_t total)
{
    uint8_t *ah = out + hdr_len;

    ah[0] = next_header;
    ah[1] = CK_AH_PAYLOAD_LEN_FIELD;
    put16(ah + 2, 0);
    put32(ah + 4, sa->spi);
    put32(ah + 8, sa->seq + 1);
    memset(ah + 12, 0, CK_AH_ICV_LEN);
    if (payload_len > 0)
        memmove(out + hdr_len + CK_AH_HDR_LEN, payload, payload_len);
    return icv_compute(sa->mac, out, total, hdr_len, ah + 12);
}

static int
protect_check(ck_ah_sa *sa, const uint8_t *payload, size_t payload_len, size_t total,
              size_t max, size_t cap)
{
    if (payload == NULL && payload_len > 0)
        return ck_error_set(CK_ERR_INVAL, "AH: no payload");
    if (total > max || total > cap)
        return ck_error_set(CK_ERR_LIMIT, "AH: %zu bytes do not fit (%zu, max %zu)", total, cap,
                            max);
    if (sa->exhausted || sa->seq == UINT32_MAX) {
        sa->exhausted = true;
        return ck_error_set(CK_ERR_EXPIRED, "AH SA 0x%08x: sequence numbers used up", sa->spi);
    }
    return 0;
}

int
ck_ah_protect_ipv4(ck_ah_sa *sa, const uint8_t src[4], const uint8_t dst[4], uint16_t id,
                   uint8_t ttl, uint8_t next_header, const uint8_t *payload, size_t payload_len,
                   uint8_t *out, size_t cap, size_t *out_len)
{
    size_t total = CK_AH_IPV4_HDR_LEN + CK_AH_HDR_LEN + payload_len;
    int rc;

    *out_len = 0;
    if ((rc = protect_check(sa, payload, payload_len, total, CK_AH_MAX_PACKET, cap)) != 0)
        return rc;
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
    if ((rc = fill_ah(sa, CK_AH_IPV4_HDR_LEN, next_header, payload, payload_len, out, total)) != 0)
        return rc;
    put16(out + 10, ipv4_checksum(out));
    sa->seq++;
    sa->packets++;
    sa->bytes += payload_len;
    *out_len = total;
    return 0;
}

int
ck_ah_protect_ipv6(ck_ah_sa *sa, const uint8_t src[16], const uint8_t dst[16],
                   uint8_t hop_limit, uint8_t next_header, const uint8_t *payload,
                   size_t payload_len, uint8_t *out, size_t cap, size_t *out_len)
{
    size_t total = CK_AH_IPV6_HDR_LEN + CK_AH_HDR_LEN + payload_len;
    int rc;

    *out_len = 0;
    if ((rc = protect_check(sa, payload, payload_len, total, CK_AH_IPV6_HDR_LEN + 0xffff,
                            cap)) != 0)
        return rc;
    out[0] = 0x60;
    out[1] = out[2] = out[3] = 0;
    put16(out + 4, (uint16_t)(total - CK_AH_IPV6_HDR_LEN));
    out[6] = CK_AH_PROTO;
    out[7] = hop_limit;
    memcpy(out + 8, src, 16);
    memcpy(out + 24, dst, 16);
    if ((rc = fill_ah(sa, CK_AH_IPV6_HDR_LEN, next_header, payload, payload_len, out, total)) != 0)
        return rc;
    sa->seq++;
    sa->packets++;
    sa->bytes += payload_len;
    *out_len = total;
    return 0;
}

/* ---- inbound ------------------------------------------------------------------------------ */

/* 0 if seq may be new, else CK_ERR_REPLAY (RFC 4302 §3.4.3). */
static int
replay_check(const ck_ah_sa *sa, uint32_t seq)
{
    if (seq == 0)
        return ck_error_set(CK_ERR_REPLAY, "AH SA 0x%08x: sequence number 0", sa->spi);
    switch (ck_replay_check(sa->bits, CK_AH_MAX_WINDOW, sa->seq, sa->window, seq)) {
    case CK_REPLAY_TOO_OLD:
        return ck_error_set(CK_ERR_REPLAY, "AH SA 0x%08x: sequence number %u left of the window",
                            sa->spi, seq);
    case CK_REPLAY_SEEN:
        return ck_error_set(CK_ERR_REPLAY, "AH SA 0x%08x: sequence number %u replayed", sa->spi,
                            seq);
    default:
        return 0;
    }
}

int
ck_ah_verify(ck_ah_sa *sa, const uint8_t *pkt, size_t len, struct ck_ah_info *info)
{
    struct ck_ah_info local;
    uint8_t icv[CK_AH_ICV_LEN];
    int rc;

    if (info == NULL)
        info = &local;
    if ((rc = ck_ah_parse(pkt, len, info)) != 0)
        return rc;
    if (info->spi != sa->spi)
        return ck_error_set(CK_ERR_INVAL, "AH: SPI 0x%08x is not this SA's (0x%08x)", info->spi,
                            sa->spi);
    if ((rc = replay_check(sa, info->seq)) != 0) {
        sa->replayed++;
        return rc;
    }
    if ((rc = icv_compute(sa->mac, pkt, len, info->ip_hdr_len, icv)) != 0)
        return rc;
    if (!ck_ct_equal(icv, pkt + info->ip_hdr_len + 12, CK_AH_ICV_LEN)) {
        sa->bad_icv++;
        return ck_error_set(CK_ERR_INTEGRITY, "AH SA 0x%08x: ICV does not verify", sa->spi);
    }
    ck_replay_update(sa->bits, CK_AH_MAX_WINDOW, &sa->seq, info->seq);
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
