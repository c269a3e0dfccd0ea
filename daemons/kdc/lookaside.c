/* Lookaside cache for UDP retransmits (as MIT's dispatch.c does): a client that retransmits a
 * request gets the same reply bytes again instead of a second, different ticket; the reply is
 * computed once. Bounded by entry count and total bytes; entries expire after a fixed lifetime
 * and the oldest is evicted first. Requests are hashed with SipHash-2-4 under a random per-cache
 * key, so a remote sender cannot aim many requests at one bucket; a hit also compares the whole
 * request. One cache per worker thread: no locking. */
#include <stdlib.h>
#include <string.h>

#include "cablekey/crypto.h"
#include "cablekey/error.h"
#include "kdc_int.h"

#define LA_SPARES 8
#define LA_ROUND 512                 /* capacity granule, so blocks fit the next requests */

struct la_entry {
    struct la_entry *next_bucket;
    struct la_entry *older, *newer;  /* age list */
    uint64_t hash;
    int64_t created_ms;
    size_t req_len, reply_len;
    size_t cap;                      /* bytes available in data[] */
    uint8_t data[];                  /* request bytes then reply bytes */
};

struct kdc_lookaside {
    uint64_t k0, k1;
    size_t max_entries, max_bytes, count, bytes;
    int64_t lifetime_ms;
    size_t n_buckets;                /* power of two */
    struct la_entry **buckets;
    struct la_entry *oldest, *newest;
    /* Blocks of evicted entries, reused by the next stores: under load every store evicts
     * one, and a fresh ~1 KB malloc/free pair per request made glibc consolidate its fast
     * bins each time. */
    struct la_entry *spare[LA_SPARES];
    size_t n_spare;
};

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                           \
    do {                                                                                   \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);                          \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                             \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                             \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);                          \
    } while (0)

/* SipHash-2-4 (Aumasson and Bernstein), written from the paper's description. */
static uint64_t
siphash(uint64_t k0, uint64_t k1, const uint8_t *in, size_t len)
{
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
    uint64_t b = (uint64_t)len << 56, m;
    size_t i, end = len - (len % 8);

    for (i = 0; i < end; i += 8) {
        /* One 8-byte load per word (SipHash reads words little-endian). */
        memcpy(&m, in + i, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        m = __builtin_bswap64(m);
#endif
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    for (int j = 0; i + (size_t)j < len; j++)
        b |= (uint64_t)in[i + (size_t)j] << (8 * j);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

int
kdc_lookaside_new(size_t max_entries, size_t max_bytes, int64_t lifetime_ms,
                  struct kdc_lookaside **out)
{
    struct kdc_lookaside *la;
    uint64_t k[2];
    int rc;

    *out = NULL;
    if (max_entries == 0 || max_entries > (1u << 22) || lifetime_ms <= 0)
        return ck_error_set(CK_ERR_INVAL, "lookaside: bad limits");
    if ((rc = ck_random_bytes(k, sizeof(k))) != 0)
        return rc;
    if ((la = calloc(1, sizeof(*la))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "lookaside");
    la->k0 = k[0];
    la->k1 = k[1];
    la->max_entries = max_entries;
    la->max_bytes = max_bytes;
    la->lifetime_ms = lifetime_ms;
    for (la->n_buckets = 16; la->n_buckets < max_entries; la->n_buckets <<= 1)
        ;
    if ((la->buckets = calloc(la->n_buckets, sizeof(*la->buckets))) == NULL) {
        free(la);
        return ck_error_set(CK_ERR_NOMEM, "lookaside");
    }
    *out = la;
    return 0;
}

static void
la_remove(struct kdc_lookaside *la, struct la_entry *e)
{
    struct la_entry **link = &la->buckets[e->hash & (la->n_buckets - 1)];

    while (*link != NULL && *link != e)
        link = &(*link)->next_bucket;
    if (*link == e)
        *link = e->next_bucket;
    if (e->older != NULL)
        e->older->newer = e->newer;
    else
        la->oldest = e->newer;
    if (e->newer != NULL)
        e->newer->older = e->older;
    else
        la->newest = e->older;
    la->count--;
    la->bytes -= e->req_len + e->reply_len;
    if (la->n_spare < LA_SPARES)
        la->spare[la->n_spare++] = e;
    else
        free(e);
}

void
kdc_lookaside_free(struct kdc_lookaside *la)
{
    if (la == NULL)
        return;
    while (la->oldest != NULL)
        la_remove(la, la->oldest);
    while (la->n_spare > 0)
        free(la->spare[--la->n_spare]);
    free(la->buckets);
    free(la);
}

static void
la_expire(struct kdc_lookaside *la, int64_t now_ms)
{
    while (la->oldest != NULL && now_ms - la->oldest->created_ms >= la->lifetime_ms)
        la_remove(la, la->oldest);
}

uint64_t
kdc_lookaside_hash(const struct kdc_lookaside *la, const uint8_t *req, size_t req_len)
{
    return la == NULL ? 0 : siphash(la->k0, la->k1, req, req_len);
}

bool
kdc_lookaside_find(struct kdc_lookaside *la, const uint8_t *req, size_t req_len, int64_t now_ms,
                   const uint8_t **reply, size_t *reply_len)
{
    return kdc_lookaside_find_h(la, kdc_lookaside_hash(la, req, req_len), req, req_len, now_ms,
                                reply, reply_len);
}

bool
kdc_lookaside_find_h(struct kdc_lookaside *la, uint64_t h, const uint8_t *req, size_t req_len,
                     int64_t now_ms, const uint8_t **reply, size_t *reply_len)
{
    if (la == NULL)
        return false;
    la_expire(la, now_ms);
    if (la->count == 0)
        return false;
    for (struct la_entry *e = la->buckets[h & (la->n_buckets - 1)]; e; e = e->next_bucket) {
        if (e->hash == h && e->req_len == req_len && memcmp(e->data, req, req_len) == 0) {
            *reply = e->data + e->req_len;
            *reply_len = e->reply_len;
            return true;
        }
    }
    return false;
}

void
kdc_lookaside_store(struct kdc_lookaside *la, const uint8_t *req, size_t req_len,
                    const uint8_t *reply, size_t reply_len, int64_t now_ms)
{
    kdc_lookaside_store_h(la, kdc_lookaside_hash(la, req, req_len), req, req_len, reply,
                          reply_len, now_ms);
}

void
kdc_lookaside_store_h(struct kdc_lookaside *la, uint64_t h, const uint8_t *req, size_t req_len,
                      const uint8_t *reply, size_t reply_len, int64_t now_ms)
{
    struct la_entry *e;
    size_t b, need = req_len + reply_len;

    if (la == NULL || req_len == 0 || reply_len == 0 || need > la->max_bytes)
        return;
    la_expire(la, now_ms);
    while (la->oldest != NULL && (la->count >= la->max_entries || la->bytes + need > la->max_bytes))
        la_remove(la, la->oldest);
    e = NULL;
    for (size_t i = la->n_spare; i-- > 0;) {
        if (la->spare[i]->cap >= need) {
            e = la->spare[i];
            la->spare[i] = la->spare[--la->n_spare];
            break;
        }
    }
    if (e == NULL) {
        size_t cap = (need + LA_ROUND - 1) / LA_ROUND * LA_ROUND;

        if ((e = malloc(sizeof(*e) + cap)) == NULL)
            return;
        e->cap = cap;
    }
    e->hash = h;
    e->created_ms = now_ms;
    e->req_len = req_len;
    e->reply_len = reply_len;
    memcpy(e->data, req, req_len);
    memcpy(e->data + req_len, reply, reply_len);
    b = e->hash & (la->n_buckets - 1);
    e->next_bucket = la->buckets[b];
    la->buckets[b] = e;
    e->newer = NULL;
    e->older = la->newest;
    if (la->newest != NULL)
        la->newest->newer = e;
    else
        la->oldest = e;
    la->newest = e;
    la->count++;
    la->bytes += need;
}

size_t
kdc_lookaside_count(const struct kdc_lookaside *la)
{
    return la == NULL ? 0 : la->count;
}
