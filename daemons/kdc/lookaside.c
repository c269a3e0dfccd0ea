/* Lookaside cache for UDP retransmits (as MIT's dispatch.c does): a client that retransmits a
 * request gets the same reply bytes again instead of a second, different ticket; the reply is
 * computed once. Bounded by entry count and total bytes; entries expire after a fixed lifetime
 * and the oldest is evicted first. Requests are hashed with SipHash-2-4 under a random per-cache
 * key, so a remote sender cannot aim many requests at one bucket; a hit also compares the whole
 * request. One cache per worker thread: no locking.
 *
 * Storage is one ring of max_bytes: entries are appended at the head and, since eviction is
 * oldest first, removed at the tail, so there is no allocation per request and what a request
 * writes is contiguous. The ring is mapped once and asked for transparent huge pages: with one
 * entry per request cycling through megabytes, the 4 KiB-page version spent more on TLB misses
 * and page faults (its blocks came from malloc) than on the copies themselves (see
 * docs/PERFORMANCE.md). */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "cablekey/crypto.h"
#include "cablekey/error.h"
#include "kdc_int.h"

#define LA_ALIGN 64                  /* records start on cache lines */
#define LA_HUGE (2u << 20)           /* rings this large are aligned for 2 MiB pages */

/* One entry, or padding up to the end of the ring (pad = 1). */
struct la_rec {
    uint64_t hash;
    int64_t created_ms;
    uint32_t size;                   /* bytes occupied in the ring, LA_ALIGN multiple */
    uint32_t pad;
    uint32_t req_len, reply_len;
    uint8_t data[];                  /* request bytes then reply bytes */
};

/* The index: open addressing with linear probing, the full hash beside each record pointer, so
 * a lookup that misses (nearly all of them) reads one table line and no record. */
struct la_slot {
    uint64_t hash;
    struct la_rec *rec;              /* NULL: empty */
};

struct kdc_lookaside {
    uint64_t k0, k1;
    size_t max_entries, count;
    int64_t lifetime_ms;
    size_t n_slots;                  /* power of two, at least twice max_entries */
    struct la_slot *slots;
    uint8_t *ring;                   /* ring_size bytes inside the mapping */
    size_t ring_size;
    void *map;                       /* the mapping (ring plus alignment slack) */
    size_t map_len;
    size_t head, tail, used;         /* records live in [tail, head) around the ring */
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

static size_t
rec_size(size_t req_len, size_t reply_len)
{
    return (sizeof(struct la_rec) + req_len + reply_len + LA_ALIGN - 1) / LA_ALIGN * LA_ALIGN;
}

int
kdc_lookaside_new(size_t max_entries, size_t max_bytes, int64_t lifetime_ms,
                  struct kdc_lookaside **out)
{
    struct kdc_lookaside *la;
    uint64_t k[2];
    size_t align;
    int rc;

    *out = NULL;
    if (max_entries == 0 || max_entries > (1u << 22) || lifetime_ms <= 0 ||
        max_bytes < LA_ALIGN || max_bytes > (1u << 30))
        return ck_error_set(CK_ERR_INVAL, "lookaside: bad limits");
    if ((rc = ck_random_bytes(k, sizeof(k))) != 0)
        return rc;
    if ((la = calloc(1, sizeof(*la))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "lookaside");
    la->k0 = k[0];
    la->k1 = k[1];
    la->max_entries = max_entries;
    la->lifetime_ms = lifetime_ms;
    for (la->n_slots = 16; la->n_slots < 2 * max_entries; la->n_slots <<= 1)
        ;
    la->ring_size = max_bytes / LA_ALIGN * LA_ALIGN;
    align = la->ring_size >= LA_HUGE ? LA_HUGE : LA_ALIGN;
    la->map_len = la->ring_size + align;
    /* Only address space until a request writes there. */
    la->map = mmap(NULL, la->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (la->map == MAP_FAILED) {
        la->map = NULL;
        rc = ck_error_set(CK_ERR_NOMEM, "lookaside: %zu-byte ring", la->ring_size);
        kdc_lookaside_free(la);
        return rc;
    }
    la->ring = (uint8_t *)(((uintptr_t)la->map + align - 1) & ~(uintptr_t)(align - 1));
#ifdef MADV_HUGEPAGE
    if (align == LA_HUGE)
        (void)madvise(la->ring, la->ring_size, MADV_HUGEPAGE); /* a hint: 4 KiB pages work too */
#endif
    if ((la->slots = calloc(la->n_slots, sizeof(*la->slots))) == NULL) {
        kdc_lookaside_free(la);
        return ck_error_set(CK_ERR_NOMEM, "lookaside");
    }
    *out = la;
    return 0;
}

/* Removes rec from the index (backward-shift deletion: no tombstones, so probe runs stay as
 * short as the load factor makes them). */
static void
index_remove(struct kdc_lookaside *la, const struct la_rec *rec)
{
    size_t mask = la->n_slots - 1, i = rec->hash & mask, j;

    while (la->slots[i].rec != rec) {
        if (la->slots[i].rec == NULL)
            return; /* not indexed: cannot happen */
        i = (i + 1) & mask;
    }
    for (j = i;;) {
        size_t k;

        j = (j + 1) & mask;
        if (la->slots[j].rec == NULL)
            break;
        /* Move j back into the hole at i unless its home k lies cyclically in (i, j]. */
        k = la->slots[j].hash & mask;
        if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
            continue;
        la->slots[i] = la->slots[j];
        i = j;
    }
    la->slots[i].rec = NULL;
}

/* Removes the oldest record (an entry, or the padding before a wrap). */
static void
la_pop(struct kdc_lookaside *la)
{
    struct la_rec *e = (struct la_rec *)(la->ring + la->tail);

    if (!e->pad) {
        index_remove(la, e);
        la->count--;
    }
    la->used -= e->size;
    la->tail += e->size;
    if (la->tail == la->ring_size)
        la->tail = 0;
    if (la->used == 0)
        la->head = la->tail = 0;
}

void
kdc_lookaside_free(struct kdc_lookaside *la)
{
    if (la == NULL)
        return;
    if (la->map != NULL)
        munmap(la->map, la->map_len);
    free(la->slots);
    free(la);
}

static void
la_expire(struct kdc_lookaside *la, int64_t now_ms)
{
    while (la->used > 0) {
        const struct la_rec *e = (const struct la_rec *)(la->ring + la->tail);

        if (!e->pad && now_ms - e->created_ms < la->lifetime_ms)
            break;
        la_pop(la);
    }
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
    for (size_t mask = la->n_slots - 1, i = h & mask; la->slots[i].rec != NULL;
         i = (i + 1) & mask) {
        const struct la_rec *e = la->slots[i].rec;

        if (la->slots[i].hash == h && e->req_len == req_len &&
            memcmp(e->data, req, req_len) == 0) {
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
    struct la_rec *e;
    size_t size, need, tail_room, i, mask = la != NULL ? la->n_slots - 1 : 0;

    if (la == NULL || req_len == 0 || reply_len == 0 || req_len > UINT32_MAX ||
        reply_len > UINT32_MAX)
        return;
    size = rec_size(req_len, reply_len);
    if (size > la->ring_size)
        return;
    la_expire(la, now_ms);
    /* Records never straddle the end: one that does not fit before it goes to the start, behind
     * a padding record. The free space is the run from head to tail, so enough free bytes means
     * enough contiguous ones; an empty ring starts over at 0, so any record up to the ring's
     * size fits once the others are gone. */
    tail_room = la->ring_size - la->head;
    need = size <= tail_room ? size : tail_room + size;
    while (la->used > 0 && (la->count >= la->max_entries || la->ring_size - la->used < need)) {
        la_pop(la);
        tail_room = la->ring_size - la->head;
        need = size <= tail_room ? size : tail_room + size;
    }
    if (size > tail_room) {
        e = (struct la_rec *)(la->ring + la->head);
        e->pad = 1;
        e->size = (uint32_t)tail_room;
        la->used += tail_room;
        la->head = 0;
    }
    e = (struct la_rec *)(la->ring + la->head);
    e->pad = 0;
    e->size = (uint32_t)size;
    e->hash = h;
    e->created_ms = now_ms;
    e->req_len = (uint32_t)req_len;
    e->reply_len = (uint32_t)reply_len;
    memcpy(e->data, req, req_len);
    memcpy(e->data + req_len, reply, reply_len);
    for (i = h & mask; la->slots[i].rec != NULL; i = (i + 1) & mask)
        ;
    la->slots[i].hash = h;
    la->slots[i].rec = e;
    la->head += size;
    if (la->head == la->ring_size)
        la->head = 0;
    la->used += size;
    la->count++;
}

size_t
kdc_lookaside_count(const struct kdc_lookaside *la)
{
    return la == NULL ? 0 : la->count;
}
