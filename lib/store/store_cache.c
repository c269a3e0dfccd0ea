/* The store's two record caches (cache.c) wired to the store: records load through the backend
 * and the master key (store.c), changes come from the backend's change feed. The dependency runs
 * one way: this file and store.c use cache.c, cache.c uses only its ck_cache_source. */
#include <string.h>

#include "cablekey/error.h"
#include "cablekey/principal.h"
#include "cablekey/store.h"
#include "cablekey/util.h"
#include "store/store_int.h"

static int
load_principal(void *ctx, const char *key, void **rec)
{
    ck_db_principal *p = NULL;
    int ret = ck_store_load_principal(ctx, key, &p);

    *rec = p;
    return ret;
}

static int
load_device(void *ctx, const char *key, void **rec)
{
    ck_db_device *d = NULL;
    int ret = ck_store_load_device(ctx, key, &d);

    *rec = d;
    return ret;
}

static void
principal_free_rec(void *rec)
{
    ck_db_principal_free(rec);
}

static void
device_free_rec(void *rec)
{
    ck_db_device_free(rec);
}

static int
feed_generation(void *ctx, uint64_t *gen)
{
    ck_store *store = ctx;

    return store->ops->generation(store->be, gen);
}

static int
feed_changes(void *ctx, uint64_t since, uint64_t *current, ck_store_change_cb changed,
             void *changed_arg)
{
    ck_store *store = ctx;

    return store->ops->changes_since(store->be, since, current, changed, changed_arg);
}

static int
feed_wait_change(void *ctx, int timeout_ms, bool *changed)
{
    ck_store *store = ctx;

    return store->ops->wait_change(store->be, timeout_ms, changed);
}

int
ck_store_caches_init(ck_store *store)
{
    struct ck_cache_source src = {
        .ctx = store,
        .load = load_principal,
        .free_rec = principal_free_rec,
        .generation = feed_generation,
        .changes = feed_changes,
        .contact = &store->contact,
    };
    int ret;

    ck_cache_contact_init(&store->contact);
    /* Push where the backend has it and this connection can receive it. */
    if (store->ops->wait_change != NULL && store->ops->change_fd != NULL &&
        store->ops->change_fd(store->be) >= 0)
        src.wait_change = feed_wait_change;

    if ((ret = ck_store_cache_init(&store->cache, CK_CHANGE_PRINCIPAL, &src,
                                   CK_STORE_CACHE_MAX_ENTRIES)) != 0)
        return ret;
    src.load = load_device;
    src.free_rec = device_free_rec;
    return ck_store_cache_init(&store->dev_cache, CK_CHANGE_DEVICE, &src,
                               CK_STORE_DEVICE_CACHE_MAX_ENTRIES);
}

void
ck_store_cache_begin(ck_store *store)
{
    ck_store_cache_release(&store->cache);
    ck_store_cache_release(&store->dev_cache);
    ck_store_cache_check(&store->cache);
}

void
ck_store_cache_refresh(ck_store *store)
{
    ck_store_cache_release(&store->cache);
    ck_store_cache_release(&store->dev_cache);
    ck_store_cache_check_now(&store->cache);
}

void
ck_store_cache_flush(ck_store *store)
{
    ck_store_cache_flush_all(&store->cache);
    ck_store_cache_flush_all(&store->dev_cache);
}

void
ck_store_cache_configure(ck_store *store, size_t max_entries, int64_t check_ms)
{
    store->cache.max_entries = max_entries > 0 ? max_entries : 1;
    store->cache.check_ms = check_ms < 0 ? 0 : check_ms;
}

void
ck_store_cache_get_stats(const ck_store *store, ck_store_cache_stats *out)
{
    *out = store->cache.stats;
    out->entries = store->cache.count;
}

void
ck_store_device_cache_get_stats(const ck_store *store, ck_store_cache_stats *out)
{
    *out = store->dev_cache.stats;
    out->entries = store->dev_cache.count;
}

int
ck_store_get_principal_cached(ck_store *store, const char *name, const ck_db_principal **out)
{
    void *rec = NULL;
    size_t len;
    int ret;

    *out = NULL;
    if (name == NULL)
        return ck_error_set(CK_ERR_INVAL, "no principal name");
    len = strlen(name);
    if (len >= CK_PRINCIPAL_MAX_TEXT)
        return ck_error_set(CK_ERR_NOTFOUND, "principal name too long");
    ck_store_cache_check(&store->cache);
    ret = ck_store_cache_lookup(&store->cache, name, len, &rec);
    if (ret == CK_ERR_NOTFOUND)
        return ck_error_set(CK_ERR_NOTFOUND, "principal %s not found", name);
    *out = rec;
    return ret;
}

int
ck_store_get_device_cached(ck_store *store, const char *mac, const ck_db_device **out)
{
    char canon[CK_DEVICE_MAC_LEN + 1];
    void *rec = NULL;
    int ret;

    *out = NULL;
    if (mac == NULL)
        return ck_error_set(CK_ERR_INVAL, "no MAC address");
    if ((ret = ck_device_mac_parse(mac, canon)) != 0)
        return ret;
    /* Every lookup, no interval: this is what makes a revocation take effect at once. */
    ck_store_cache_check_now(&store->dev_cache);
    ret = ck_store_cache_lookup(&store->dev_cache, canon, CK_DEVICE_MAC_LEN, &rec);
    if (ret == CK_ERR_NOTFOUND)
        return ck_error_set(CK_ERR_NOTFOUND, "device %s not found", canon);
    *out = rec;
    return ret;
}

/* ---- KDC fleet: database contact (k9fleet) ---- */

void
ck_store_cache_contact(const ck_store *store, ck_store_contact_info *out)
{
    const struct ck_cache_contact *ct = &store->contact;
    int64_t now = ck_cache_contact_now(ct);

    memset(out, 0, sizeof(*out));
    out->push = store->cache.src.wait_change != NULL;
    out->reachable = !ct->down;
    out->serving = ck_cache_contact_serving(ct, now);
    out->since_contact_ms = now - ct->last_ok_ms;
    out->down_ms = ct->down ? now - ct->down_since_ms : 0;
    out->next_attempt_ms = ct->down && ct->next_try_ms > now ? ct->next_try_ms - now : 0;
    out->max_staleness_ms = ct->max_stale_ms;
    out->failures = ct->failures;
    out->recoveries = ct->recoveries;
    ck_strlcpy(out->error, ct->error, sizeof(out->error));
}

int64_t
ck_store_cache_staleness(const ck_store *store)
{
    const struct ck_cache_contact *ct = &store->contact;

    return ct->down ? ck_cache_contact_now(ct) - ct->last_ok_ms : 0;
}

void
ck_store_cache_set_max_staleness(ck_store *store, int64_t ms)
{
    store->contact.max_stale_ms = ms < 0 ? 0 : ms;
}

void
ck_store_cache_set_backoff(ck_store *store, int64_t min_ms, int64_t max_ms)
{
    if (min_ms > 0)
        store->contact.backoff_min_ms = min_ms;
    if (max_ms > 0)
        store->contact.backoff_max_ms = max_ms;
    if (store->contact.backoff_max_ms < store->contact.backoff_min_ms)
        store->contact.backoff_max_ms = store->contact.backoff_min_ms;
}

void
ck_store_cache_set_clock(ck_store *store, int64_t (*now_ms)(void *ctx), void *ctx)
{
    struct ck_cache_contact *ct = &store->contact;

    ct->now_ms = now_ms;
    ct->clock_ctx = ctx;
    ct->last_ok_ms = ck_cache_contact_now(ct);
    /* Times measured on the old clock mean nothing on the new one. */
    store->cache.last_check_ms = store->dev_cache.last_check_ms = ct->last_ok_ms;
    ct->next_try_ms = ct->down_since_ms = ct->last_ok_ms;
}

int
ck_store_cache_idle(ck_store *store)
{
    int64_t wait = ck_store_cache_poll(&store->cache);

    return wait > INT32_MAX ? INT32_MAX : (int)wait;
}
