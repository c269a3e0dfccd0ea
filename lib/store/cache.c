/* Per-connection record caches for the KDC hot path: principals and devices. This file knows
 * nothing of the store: a cache reads through its source's "load" callback, learns of changes
 * through its source's change feed (polled by ck_store_cache_check, at once by
 * ck_store_cache_check_now), which calls ck_store_cache_changed, the "changed" callback.
 * store_cache.c wires both caches to a ck_store.
 *
 * Each is a chained hash table keyed by SipHash-2-4 of the name under a random key (names come
 * from the network, so an attacker must not be able to aim them all at one bucket), bounded
 * entries with FIFO eviction, negative entries for absent records, and invalidation driven by the
 * store's change log. Records handed out stay valid until the next ck_store_cache_begin: flushed and
 * evicted entries go to a "retired" list first, so a KDC request can hold the client and server
 * records while a concurrent change is noticed.
 *
 * The two caches differ only in when they look at the change counter: the principal cache at most
 * every check_ms (a few hundred milliseconds of staleness is the documented price of a KDC that
 * does no query per request), the device cache on every lookup, because a revoked device must be
 * refused at its very next login.
 *
 * KDC fleet (docs/fleet.md). A source that pushes notices (PostgreSQL LISTEN/NOTIFY) is drained
 * without waiting at every check, so the principal cache learns of a change in milliseconds and
 * the interval poll becomes a heartbeat. Every call to the source is also a contact with the
 * database: when one fails the cache keeps its entries and serves them for at most the
 * contact's max_stale_ms after the last successful call (a revocation made elsewhere cannot
 * reach it meanwhile, so past that it refuses), and calls the source again only on a doubling
 * backoff schedule: a KDC facing a dead database neither hammers it nor waits on it per
 * request. When a call succeeds again the change feed catches up from the last counter seen. */
#include <stdlib.h>
#include <string.h>

#include "cablekey/error.h"
#include "cablekey/util.h"
#include "store/store_int.h"

#define CACHE_INITIAL_BUCKETS 1024

struct ck_cache_entry {
    struct ck_cache_entry *hnext;          /* bucket chain */
    struct ck_cache_entry *older, *newer;  /* FIFO list; `older` links the retired list */
    uint64_t hash;
    size_t name_len;
    char *name;
    void *rec;                             /* NULL: the record does not exist */
};

/* ---- SipHash-2-4 (Aumasson & Bernstein), written from the paper's description ---- */

#define ROTL64(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static void
sip_round(uint64_t v[4])
{
    v[0] += v[1];
    v[1] = ROTL64(v[1], 13);
    v[1] ^= v[0];
    v[0] = ROTL64(v[0], 32);
    v[2] += v[3];
    v[3] = ROTL64(v[3], 16);
    v[3] ^= v[2];
    v[0] += v[3];
    v[3] = ROTL64(v[3], 21);
    v[3] ^= v[0];
    v[2] += v[1];
    v[1] = ROTL64(v[1], 17);
    v[1] ^= v[2];
    v[2] = ROTL64(v[2], 32);
}

static uint64_t
load_le64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t
siphash24(uint64_t k0, uint64_t k1, const uint8_t *in, size_t len)
{
    uint64_t v[4] = {k0 ^ 0x736f6d6570736575ULL, k1 ^ 0x646f72616e646f6dULL,
                     k0 ^ 0x6c7967656e657261ULL, k1 ^ 0x7465646279746573ULL};
    uint64_t m, b = (uint64_t)len << 56;
    size_t i, tail = len & 7;

    for (i = 0; i + 8 <= len; i += 8) {
        m = load_le64(in + i);
        v[3] ^= m;
        sip_round(v);
        sip_round(v);
        v[0] ^= m;
    }
    for (size_t j = 0; j < tail; j++)
        b |= (uint64_t)in[i + j] << (8 * j);
    v[3] ^= b;
    sip_round(v);
    sip_round(v);
    v[0] ^= b;
    v[2] ^= 0xff;
    for (int r = 0; r < 4; r++)
        sip_round(v);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* ---- table ---- */

static void
entry_free(const struct ck_store_cache *c, struct ck_cache_entry *e)
{
    if (e == NULL)
        return;
    if (e->rec != NULL)
        c->free_rec(e->rec);
    free(e->name);
    free(e);
}

static void
free_retired(struct ck_store_cache *c)
{
    while (c->retired != NULL) {
        struct ck_cache_entry *e = c->retired;
        c->retired = e->older;
        entry_free(c, e);
    }
}

/* ---- database contact ---- */

int64_t
ck_cache_contact_now(const struct ck_cache_contact *ct)
{
    return ct->now_ms != NULL ? ct->now_ms(ct->clock_ctx) : ck_monotonic_ms();
}

void
ck_cache_contact_init(struct ck_cache_contact *ct)
{
    memset(ct, 0, sizeof(*ct));
    ct->max_stale_ms = (int64_t)CK_STORE_DEFAULT_MAX_STALENESS_S * 1000;
    ct->backoff_min_ms = CK_STORE_RECONNECT_MIN_MS;
    ct->backoff_max_ms = CK_STORE_RECONNECT_MAX_MS;
    /* A store is opened by reading its realm: that was contact. */
    ct->last_ok_ms = ck_cache_contact_now(ct);
}

bool
ck_cache_contact_serving(const struct ck_cache_contact *ct, int64_t now)
{
    return !ct->down || (ct->max_stale_ms > 0 && now - ct->last_ok_ms <= ct->max_stale_ms);
}

static bool
contact_may_try(const struct ck_cache_contact *ct, int64_t now)
{
    return !ct->down || now >= ct->next_try_ms;
}

/* Errors that say the database was not reached (as opposed to a record it refused). */
static bool
contact_error(int ret)
{
    return ret == CK_ERR_DB || ret == CK_ERR_IO;
}

static void
contact_ok(struct ck_cache_contact *ct, int64_t now)
{
    if (ct->down) {
        ct->down = false;
        ct->recoveries++;
        ct->backoff_ms = 0;
    }
    ct->last_ok_ms = now;
}

static void
contact_fail(struct ck_cache_contact *ct, int64_t now)
{
    ct->failures++;
    ck_strlcpy(ct->error, ck_error_context(), sizeof(ct->error));
    if (!ct->down) {
        /* One failure may be a blip (a statement cut by a server restart): the next call may
         * try again at once; the backoff starts with the second. */
        ct->down = true;
        ct->down_since_ms = now;
        ct->backoff_ms = 0;
    } else if (ct->backoff_ms == 0) {
        ct->backoff_ms = ct->backoff_min_ms > 0 ? ct->backoff_min_ms : 1;
    } else {
        ct->backoff_ms = ct->backoff_ms > ct->backoff_max_ms / 2 ? ct->backoff_max_ms
                                                                 : ct->backoff_ms * 2;
    }
    ct->next_try_ms = now + ct->backoff_ms;
}

int
ck_store_cache_init(struct ck_store_cache *c, enum ck_store_change_kind kind,
                    const struct ck_cache_source *src, size_t max_entries)
{
    uint64_t k[2];

    memset(c, 0, sizeof(*c));
    c->kind = kind;
    c->src = *src;
    c->free_rec = src->free_rec;
    c->buckets = calloc(CACHE_INITIAL_BUCKETS, sizeof(*c->buckets));
    if (c->buckets == NULL)
        return ck_error_set(CK_ERR_NOMEM, "record cache");
    c->n_buckets = CACHE_INITIAL_BUCKETS;
    c->max_entries = max_entries;
    c->check_ms = CK_STORE_CACHE_CHECK_MS;
    if (src->contact != NULL) {
        c->contact = src->contact;
    } else {
        ck_cache_contact_init(&c->own_contact);
        c->contact = &c->own_contact;
    }
    if (ck_random_bytes(k, sizeof(k)) != 0) {
        free(c->buckets);
        c->buckets = NULL;
        return ck_error_set(CK_ERR_CRYPTO, "record cache: no random hash key");
    }
    c->sip_k0 = k[0];
    c->sip_k1 = k[1];
    return 0;
}

/* Unlinks e from its bucket and the FIFO list and retires it. */
static void
entry_retire(struct ck_store_cache *c, struct ck_cache_entry *e)
{
    struct ck_cache_entry **pp = &c->buckets[e->hash & (c->n_buckets - 1)];

    while (*pp != NULL && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp == e)
        *pp = e->hnext;
    if (e->older != NULL)
        e->older->newer = e->newer;
    else
        c->oldest = e->newer;
    if (e->newer != NULL)
        e->newer->older = e->older;
    else
        c->newest = e->older;
    e->hnext = e->newer = NULL;
    e->older = c->retired;
    c->retired = e;
    c->count--;
}

static void
cache_flush_all(struct ck_store_cache *c)
{
    /* Splice the whole FIFO list onto the retired list in one go. */
    if (c->oldest != NULL) {
        struct ck_cache_entry *e;
        for (e = c->oldest; e != NULL; e = e->newer)
            e->hnext = NULL;
        /* Re-link by `older`, which is what the retired list follows. */
        c->oldest->older = c->retired;
        c->retired = c->newest;
        c->oldest = c->newest = NULL;
    }
    if (c->buckets != NULL)
        memset(c->buckets, 0, c->n_buckets * sizeof(*c->buckets));
    if (c->count > 0)
        c->stats.flushes++;
    c->count = 0;
}

void
ck_store_cache_destroy(struct ck_store_cache *c)
{
    cache_flush_all(c);
    free_retired(c);
    free(c->buckets);
    c->buckets = NULL;
}

static struct ck_cache_entry *
cache_find(const struct ck_store_cache *c, const char *name, size_t len, uint64_t h)
{
    struct ck_cache_entry *e;

    for (e = c->buckets[h & (c->n_buckets - 1)]; e != NULL; e = e->hnext) {
        if (e->hash == h && e->name_len == len && memcmp(e->name, name, len) == 0)
            return e;
    }
    return NULL;
}

void
ck_store_cache_invalidate(struct ck_store_cache *c, const char *name)
{
    size_t len;
    uint64_t h;
    struct ck_cache_entry *e;

    if (c->buckets == NULL || name == NULL)
        return;
    len = strlen(name);
    h = siphash24(c->sip_k0, c->sip_k1, (const uint8_t *)name, len);
    e = cache_find(c, name, len, h);
    if (e != NULL)
        entry_retire(c, e);
}

static void
grow(struct ck_store_cache *c)
{
    size_t nb = c->n_buckets * 2;
    struct ck_cache_entry **b;

    b = calloc(nb, sizeof(*b));
    if (b == NULL)
        return; /* longer chains, still correct */
    for (struct ck_cache_entry *e = c->oldest; e != NULL; e = e->newer) {
        size_t i = e->hash & (nb - 1);
        e->hnext = b[i];
        b[i] = e;
    }
    free(c->buckets);
    c->buckets = b;
    c->n_buckets = nb;
}

/* The "changed" callback: what a change feed calls for each change it reports (a polled change
 * log today; a pushed notification is the same call). */
void
ck_store_cache_changed(enum ck_store_change_kind kind, const char *key, void *arg)
{
    struct ck_store_cache *c = arg;

    if (kind == CK_CHANGE_ALL || key == NULL)
        cache_flush_all(c);
    else if (kind == c->kind)
        ck_store_cache_invalidate(c, key);
}

void
ck_store_cache_flush_all(struct ck_store_cache *c)
{
    cache_flush_all(c);
}

void
ck_store_cache_release(struct ck_store_cache *c)
{
    free_retired(c);
}

/* Brings c up to date with its source's change feed (while the database is unreachable: only
 * when the backoff allows an attempt). */
void
ck_store_cache_check_now(struct ck_store_cache *c)
{
    struct ck_cache_contact *ct = c->contact;
    int64_t now = ck_cache_contact_now(ct);
    uint64_t cur = 0;
    int ret;

    c->last_check_ms = now;
    if (!contact_may_try(ct, now))
        return;
    if (!c->generation_known) {
        /* Everything cached so far predates a generation we never read: start clean. */
        if ((ret = c->src.generation(c->src.ctx, &cur)) == 0) {
            cache_flush_all(c);
            c->generation = cur;
            c->generation_known = true;
            contact_ok(ct, now);
        } else if (contact_error(ret)) {
            contact_fail(ct, now);
        }
        return;
    }
    if ((ret = c->src.changes(c->src.ctx, c->generation, &cur, ck_store_cache_changed, c)) != 0) {
        if (contact_error(ret)) {
            /* Unreachable: keep the entries (served within max_stale_ms) and the counter, from
             * which the feed catches up once the database answers again. */
            contact_fail(ct, now);
            return;
        }
        /* A change log we cannot read: serve nothing stale; read through until it recovers. */
        cache_flush_all(c);
        c->generation_known = false;
        return;
    }
    c->generation = cur;
    contact_ok(ct, now);
}

/* Drains pushed notices: 1 if the feed must be read now, 0 if none arrived (or the source has no
 * push), -1 if the connection is lost (a failed attempt: nothing more to try now). */
static int
push_pending(struct ck_store_cache *c, int64_t now)
{
    struct ck_cache_contact *ct = c->contact;
    bool changed = false;
    int ret;

    if (c->src.wait_change == NULL || !c->generation_known || !contact_may_try(ct, now))
        return 0;
    /* Healthy: at most one drain per CK_STORE_CACHE_PUSH_MS. Down: the backoff decides. */
    if (!ct->down && now - c->last_push_ms < CK_STORE_CACHE_PUSH_MS && now >= c->last_push_ms)
        return 0;
    c->last_push_ms = now;
    if ((ret = c->src.wait_change(c->src.ctx, 0, &changed)) != 0) {
        if (!contact_error(ret))
            return 0;
        contact_fail(ct, now);
        c->last_check_ms = now;
        return -1;
    }
    return changed ? 1 : 0;
}

/* The interval check: pushed notices at once, the feed at most every check_ms (always while the
 * counter is unknown). */
void
ck_store_cache_check(struct ck_store_cache *c)
{
    int64_t now = ck_cache_contact_now(c->contact);
    int push = push_pending(c, now);

    if (push < 0)
        return;
    if (push == 0 && c->generation_known && now - c->last_check_ms < c->check_ms)
        return;
    ck_store_cache_check_now(c);
}

int64_t
ck_store_cache_poll(struct ck_store_cache *c)
{
    struct ck_cache_contact *ct = c->contact;
    int64_t now = ck_cache_contact_now(ct);
    /* An idle heartbeat even when requests check on every begin (check_ms 0, tests). */
    int64_t interval = c->check_ms > 0 ? c->check_ms : CK_STORE_CACHE_CHECK_MS;
    int64_t wait;
    int push = push_pending(c, now);

    if (push > 0 || (push == 0 && now - c->last_check_ms >= interval))
        ck_store_cache_check_now(c);
    now = ck_cache_contact_now(ct);
    /* While unreachable only the next attempt matters (earlier checks are not made). */
    wait = ct->down ? ct->next_try_ms - now : c->last_check_ms + interval - now;
    return wait < 1 ? 1 : wait;
}

static void
cache_insert(struct ck_store_cache *c, struct ck_cache_entry *e)
{
    uint64_t h = e->hash;

    while (c->count >= c->max_entries && c->oldest != NULL) {
        entry_retire(c, c->oldest);
        c->stats.evictions++;
    }
    if (c->count >= c->n_buckets)
        grow(c);
    e->hnext = c->buckets[h & (c->n_buckets - 1)];
    c->buckets[h & (c->n_buckets - 1)] = e;
    e->older = c->newest;
    if (c->newest != NULL)
        c->newest->newer = e;
    else
        c->oldest = e;
    c->newest = e;
    c->count++;
}

/* Stores rec (NULL: absent) under key; when the counter is unknown the entry serves this
 * request only. */
static int
cache_add(struct ck_store_cache *c, const char *key, size_t len, uint64_t h, void *rec)
{
    struct ck_cache_entry *e;

    e = calloc(1, sizeof(*e));
    if (e == NULL || (e->name = ck_memdup(key, len + 1)) == NULL) {
        free(e);
        if (rec != NULL)
            c->free_rec(rec);
        return ck_error_set(CK_ERR_NOMEM, "record cache");
    }
    e->name_len = len;
    e->hash = h;
    e->rec = rec;
    if (!c->generation_known) {
        /* Cannot tell when it goes stale: hand it out for this request only. */
        e->older = c->retired;
        c->retired = e;
    } else {
        cache_insert(c, e);
    }
    return 0;
}

int
ck_store_cache_lookup(struct ck_store_cache *c, const char *key, size_t len, void **out)
{
    struct ck_cache_entry *e;
    void *rec = NULL;
    struct ck_cache_contact *ct = c->contact;
    int64_t now = 0;
    uint64_t h;
    int ret;

    *out = NULL;
    /* The clock is read only off the hit path or during an outage. */
    if (ct->down && !ck_cache_contact_serving(ct, now = ck_cache_contact_now(ct)))
        return ck_error_set(CK_ERR_DB, "database unreachable for %lld ms, last contact %lld ms "
                            "ago (staleness limit %lld ms): cached records not served",
                            (long long)(now - ct->down_since_ms),
                            (long long)(now - ct->last_ok_ms), (long long)ct->max_stale_ms);
    h = siphash24(c->sip_k0, c->sip_k1, (const uint8_t *)key, len);
    e = c->generation_known ? cache_find(c, key, len, h) : NULL;
    if (e != NULL) {
        c->stats.hits++;
        if (e->rec == NULL)
            return CK_ERR_NOTFOUND;
        *out = e->rec;
        return 0;
    }
    c->stats.misses++;
    now = ck_cache_contact_now(ct);
    if (!contact_may_try(ct, now))
        return ck_error_set(CK_ERR_DB, "database unreachable and record not cached (next "
                            "reconnection attempt in %lld ms)",
                            (long long)(ct->next_try_ms - now));
    ret = c->src.load(c->src.ctx, key, &rec);
    if (ret != 0 && ret != CK_ERR_NOTFOUND) {
        if (contact_error(ret))
            contact_fail(ct, now);
        return ret;
    }
    contact_ok(ct, now);
    if ((ret = cache_add(c, key, len, h, rec)) != 0)
        return ret;
    if (rec == NULL)
        return CK_ERR_NOTFOUND;
    *out = rec;
    return 0;
}
