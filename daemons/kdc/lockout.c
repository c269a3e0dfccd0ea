/* Failed pre-authentication counting and lockout (MIT semantics, see store.h "lockout"), kept off
 * the request path: no database write per request.
 *
 * Each worker keeps a table of the principals with authentication events not yet written. The
 * worker's view of a principal's state is its table entry if it has one, else the state read with
 * the cached record; every failure updates the entry at once, so a worker's view is exact for its
 * own events. The table is written in one transaction (ck_store_record_auth) from the worker's
 * idle callback once the oldest event is lockout_flush_ms old, or at once when the table is full;
 * the write merges with what other workers and KDCs wrote, then the worker's cache re-reads the
 * records written, so its view includes everyone's flushed failures.
 *
 * Bound (docs/cablekey-kdc.md "Lockout"): a worker refuses a principal once ITS view reaches
 * max_failure, and its view always includes its own failures since the last success or unlock;
 * so each worker admits at most max_failure failures per lockout, and W workers sharing a
 * database at most W * max_failure in total, (W - 1) * max_failure past the limit. Batching
 * itself adds nothing per worker; it only delays when the others see the count.
 *
 * An administrative unlock moves the record's lockout epoch (and bumps the change counter, so the
 * record is re-read): entries recorded under the former epoch are void, here and in the write. */
#include <stdlib.h>
#include <string.h>

#include "cablekey/error.h"
#include "cablekey/log.h"
#include "cablekey/util.h"
#include "kdc_int.h"

#define LOCKOUT_BUCKETS 4096 /* power of two */

struct lo_entry {
    struct lo_entry *next;
    uint64_t hash;
    int64_t created;         /* identity of the record the events belong to */
    uint64_t epoch;
    ck_db_lockout view;      /* this worker's view: stored state + its own events */
    bool success;            /* a success restarted the count after the stored state */
    uint32_t fails;          /* failures since then (or since the stored state) */
    int64_t first_failed, last_failed, last_success;
    char name[];
};

struct kdc_lockout {
    struct lo_entry *buckets[LOCKOUT_BUCKETS];
    size_t count, max_entries;
    int64_t flush_ms;
    int64_t first_ms;        /* monotonic time of the oldest unwritten event */
    bool last_success;       /* record last_success (MIT's !disable_last_success) */
    uint64_t seed;
    ck_lockout_update *batch;
};

int
kdc_lockout_new(size_t max_entries, int64_t flush_ms, bool last_success, struct kdc_lockout **out)
{
    struct kdc_lockout *lo;

    *out = NULL;
    if (max_entries == 0)
        return ck_error_set(CK_ERR_INVAL, "lockout table size 0");
    if ((lo = calloc(1, sizeof(*lo))) == NULL ||
        (lo->batch = calloc(max_entries, sizeof(*lo->batch))) == NULL) {
        free(lo);
        return ck_error_set(CK_ERR_NOMEM, "lockout table");
    }
    lo->max_entries = max_entries;
    lo->flush_ms = flush_ms;
    lo->last_success = last_success;
    /* Names are chosen by whoever creates principals, not by the network (only existing
     * principals get entries), but a random seed costs nothing. */
    if (ck_random_bytes(&lo->seed, sizeof(lo->seed)) != 0)
        ck_error_clear();
    *out = lo;
    return 0;
}

static void
drop_all(struct kdc_lockout *lo)
{
    for (size_t i = 0; i < LOCKOUT_BUCKETS; i++) {
        struct lo_entry *e = lo->buckets[i], *next;

        for (; e != NULL; e = next) {
            next = e->next;
            free(e);
        }
        lo->buckets[i] = NULL;
    }
    lo->count = 0;
}

void
kdc_lockout_free(struct kdc_lockout *lo)
{
    if (lo == NULL)
        return;
    drop_all(lo);
    free(lo->batch);
    free(lo);
}

static uint64_t
name_hash(const struct kdc_lockout *lo, const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ lo->seed;

    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return h ^ (h >> 29);
}

/* The entry for p if it holds events of this very record state; a stale one (an unlock or a
 * re-created principal since) is dropped. */
static struct lo_entry *
find(struct kdc_lockout *lo, const ck_db_principal *p, uint64_t *hash_out)
{
    size_t len = strlen(p->name);
    uint64_t h = name_hash(lo, p->name, len);
    struct lo_entry **pp = &lo->buckets[h & (LOCKOUT_BUCKETS - 1)];

    *hash_out = h;
    for (; *pp != NULL; pp = &(*pp)->next) {
        struct lo_entry *e = *pp;

        if (e->hash != h || strcmp(e->name, p->name) != 0)
            continue;
        if (e->created != p->created || e->epoch != p->lockout.epoch) {
            *pp = e->next;
            free(e);
            lo->count--;
            return NULL;
        }
        /* The policy may have changed since (its parameters come with the record). */
        e->view.max_failure = p->lockout.max_failure;
        e->view.failure_interval = p->lockout.failure_interval;
        e->view.lockout_duration = p->lockout.lockout_duration;
        return e;
    }
    return NULL;
}

static struct lo_entry *
find_or_add(struct kdc_worker *w, const ck_db_principal *p)
{
    struct kdc_lockout *lo = w->lockout;
    struct lo_entry *e;
    uint64_t h;
    size_t len;

    if ((e = find(lo, p, &h)) != NULL)
        return e;
    if (lo->count >= lo->max_entries) {
        /* Full: write now (rare: as many distinct principals with events as the table holds
         * within one flush interval). Our cache then re-reads the records, p included. */
        kdc_lockout_flush(w);
        if (lo->count >= lo->max_entries)
            return NULL;
    }
    len = strlen(p->name);
    if ((e = calloc(1, sizeof(*e) + len + 1)) == NULL)
        return NULL;
    memcpy(e->name, p->name, len + 1);
    e->hash = h;
    e->created = p->created;
    e->epoch = p->lockout.epoch;
    e->view = p->lockout;
    e->next = lo->buckets[h & (LOCKOUT_BUCKETS - 1)];
    lo->buckets[h & (LOCKOUT_BUCKETS - 1)] = e;
    if (lo->count++ == 0)
        lo->first_ms = ck_monotonic_ms();
    return e;
}

bool
kdc_lockout_locked(struct kdc_worker *w, const ck_db_principal *p, int64_t now)
{
    struct lo_entry *e;
    uint64_t h;

    /* The common case costs one comparison: no lockout policy. */
    if (w->lockout == NULL || p->lockout.max_failure == 0)
        return false;
    if (w->lockout->count > 0 && (e = find(w->lockout, p, &h)) != NULL)
        return ck_lockout_is_locked(&e->view, now);
    return ck_lockout_is_locked(&p->lockout, now);
}

void
kdc_lockout_event(struct kdc_worker *w, const ck_db_principal *p, bool success, int64_t now)
{
    struct lo_entry *e;
    uint64_t h;

    if (w->lockout == NULL || p == NULL)
        return;
    if (success) {
        const ck_db_lockout *v = &p->lockout;

        /* MIT: only a principal that requires pre-authentication proved anything. */
        if (!(p->attributes & CK_ATTR_REQUIRES_PREAUTH))
            return;
        if (w->lockout->count > 0 && (e = find(w->lockout, p, &h)) != NULL)
            v = &e->view;
        if (v->fail_count == 0 && !w->lockout->last_success)
            return;
        if ((e = find_or_add(w, p)) == NULL)
            return;
        if (e->view.fail_count != 0 || e->fails != 0)
            e->success = true;
        e->view.fail_count = 0;
        e->fails = 0;
        if (w->lockout->last_success) {
            e->last_success = now;
            e->view.last_success = now;
        }
        return;
    }
    if ((e = find_or_add(w, p)) == NULL) {
        ck_log_warn("lockout: cannot record a failure for %s (table full, database busy?)",
                    p->name);
        return;
    }
    /* MIT does not count further failures of a locked principal. */
    if (ck_lockout_is_locked(&e->view, now))
        return;
    if (e->view.failure_interval > 0 && now > e->view.last_failed + e->view.failure_interval)
        e->fails = 0; /* the earlier ones expired: the write re-checks against the stored time */
    ck_lockout_failure(&e->view, now);
    if (e->fails == 0)
        e->first_failed = now;
    if (e->fails < UINT32_MAX)
        e->fails++;
    e->last_failed = now;
}

int
kdc_lockout_flush(struct kdc_worker *w)
{
    struct kdc_lockout *lo = w->lockout;
    size_t n = 0;
    int rc;

    if (lo == NULL || lo->count == 0)
        return 0;
    for (size_t i = 0; i < LOCKOUT_BUCKETS; i++) {
        for (struct lo_entry *e = lo->buckets[i]; e != NULL && n < lo->max_entries; e = e->next) {
            lo->batch[n++] = (ck_lockout_update){
                .name = e->name,
                .created = e->created,
                .epoch = e->epoch,
                .success = e->success,
                .fails = e->fails,
                .first_failed = e->first_failed,
                .last_failed = e->last_failed,
                .last_success = e->last_success,
                .failure_interval = e->view.failure_interval,
            };
        }
    }
    rc = ck_store_record_auth(w->store, lo->batch, n);
    if (rc != 0) {
        /* Kept for the next attempt; the view stays exact meanwhile. */
        ck_log_warn("lockout: writing %zu principals' authentication events failed, will retry: "
                    "%s", n, ck_error_context());
        lo->first_ms = ck_monotonic_ms();
        return rc;
    }
    drop_all(lo);
    return 0;
}

int
kdc_lockout_idle(struct kdc_worker *w)
{
    struct kdc_lockout *lo = w->lockout;
    int64_t wait;

    if (lo == NULL || lo->count == 0)
        return -1;
    wait = lo->first_ms + lo->flush_ms - ck_monotonic_ms();
    if (wait <= 0) {
        kdc_lockout_flush(w);
        return lo->count > 0 ? (int)(lo->flush_ms > INT32_MAX ? INT32_MAX : lo->flush_ms) : -1;
    }
    return wait > INT32_MAX ? INT32_MAX : (int)wait;
}

size_t
kdc_lockout_pending(const struct kdc_worker *w)
{
    return w->lockout != NULL ? w->lockout->count : 0;
}
