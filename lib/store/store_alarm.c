/* Generic store layer of the alarm table (store.h "alarm table"): checks what the daemons and the
 * CLI hand in, then the backend's alarm operations do the storage (sqlite_alarm.c,
 * pg_alarm.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cablekey/alarm.h"
#include "cablekey/error.h"
#include "cablekey/store.h"
#include "cablekey/util.h"
#include "store/store_int.h"

static int
unsupported(const ck_store *store, const char *what)
{
    return ck_error_set(CK_ERR_UNSUPPORTED, "the %s backend has no alarm table (%s)",
                        store->ops->name, what);
}

/* A terminated field of printable ASCII (what alarm.h produces; anything else did not come from
 * an alarm manager). empty_ok: may be "". */
static int
check_text(const char *field, const char *v, size_t size, bool empty_ok)
{
    size_t n = strnlen(v, size);

    if (n == size)
        return ck_error_set(CK_ERR_INVAL, "alarm %s: not terminated", field);
    if (n == 0 && !empty_ok)
        return ck_error_set(CK_ERR_INVAL, "alarm %s: empty", field);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c < 0x20 || c >= 0x7f)
            return ck_error_set(CK_ERR_INVAL, "alarm %s: not printable ASCII", field);
    }
    return 0;
}

static int
check_code(const char *code)
{
    if (ck_alarm_code_from_name(code) < 0)
        return ck_error_set(CK_ERR_INVAL, "unknown alarm code \"%.40s\"", code);
    return 0;
}

int
ck_store_alarm_record(ck_store *store, const ck_alarm_row *row)
{
    bool sev_ok = false;
    int ret;

    if (store->ops->alarm_record == NULL)
        return unsupported(store, "record");
    if (store->readonly)
        return ck_error_set(CK_ERR_PERM, "database opened read-only");
    if ((ret = check_text("code", row->code, sizeof(row->code), false)) != 0 ||
        (ret = check_code(row->code)) != 0 ||
        (ret = check_text("severity", row->severity, sizeof(row->severity), false)) != 0 ||
        (ret = check_text("subject", row->subject, sizeof(row->subject), false)) != 0 ||
        (ret = check_text("host", row->host, sizeof(row->host), false)) != 0 ||
        (ret = check_text("cause", row->cause, sizeof(row->cause), true)) != 0)
        return ret;
    for (int s = 0; s < CK_ALARM_SEVERITY_COUNT; s++)
        sev_ok = sev_ok || strcmp(row->severity, ck_alarm_severity_name(s)) == 0;
    if (!sev_ok)
        return ck_error_set(CK_ERR_INVAL, "unknown alarm severity \"%s\"", row->severity);
    if (row->first_seen < 0 || row->last_seen < row->first_seen)
        return ck_error_set(CK_ERR_INVAL, "alarm times out of order");
    return store->ops->alarm_record(store->be, row, CK_ALARM_TABLE_KEEP);
}

static int
check_filter(const ck_alarm_filter *f)
{
    int ret;

    if (f->id < 0 || f->since < 0)
        return ck_error_set(CK_ERR_INVAL, "alarm filter: negative id or time");
    if (f->code != NULL && (ret = check_code(f->code)) != 0)
        return ret;
    if (f->subject != NULL &&
        (ret = check_text("subject", f->subject, CK_ALARM_ROW_SUBJECT_MAX, false)) != 0)
        return ret;
    if (f->limit > CK_ALARM_LIST_MAX)
        return ck_error_set(CK_ERR_INVAL, "alarm list limit above %d", CK_ALARM_LIST_MAX);
    return 0;
}

int
ck_store_alarm_list(ck_store *store, const ck_alarm_filter *filter, ck_store_alarm_cb cb,
                    void *arg)
{
    ck_alarm_filter f = *filter;
    int ret;

    if (store->ops->alarm_list == NULL)
        return unsupported(store, "list");
    if (cb == NULL)
        return ck_error_set(CK_ERR_INVAL, "no callback");
    if ((ret = check_filter(&f)) != 0)
        return ret;
    if (f.limit == 0)
        f.limit = CK_ALARM_LIST_MAX;
    return store->ops->alarm_list(store->be, &f, cb, arg);
}

int
ck_store_alarm_clear(ck_store *store, const ck_alarm_filter *filter, uint64_t *n)
{
    ck_alarm_filter f = *filter;
    uint64_t cleared = 0;
    int64_t sec;
    int32_t usec;
    int ret;

    if (n != NULL)
        *n = 0;
    if (store->ops->alarm_clear == NULL)
        return unsupported(store, "clear");
    if (store->readonly)
        return ck_error_set(CK_ERR_PERM, "database opened read-only");
    if ((ret = check_filter(&f)) != 0)
        return ret;
    if (f.id == 0 && f.code == NULL)
        return ck_error_set(CK_ERR_INVAL, "alarm clear: name an alarm id or a code");
    f.active_only = true;
    if (f.id != 0)
        store_audit_begin(store, "alarm.clear", f.subject != NULL ? f.subject : "",
                          "alarm %lld", (long long)f.id);
    else
        store_audit_begin(store, "alarm.clear", f.subject != NULL ? f.subject : "", "code %s",
                          f.code);
    ck_now(&sec, &usec);
    ret = store->ops->alarm_clear(store->be, &f, store->audit.actor, sec * 1000 + usec / 1000,
                                  &cleared);
    store_audit_end(store);
    if (ret == 0 && cleared == 0)
        ret = ck_error_set(CK_ERR_NOTFOUND, "no active alarm matches");
    if (n != NULL)
        *n = cleared;
    return ret;
}

/* ---- database latency observer ---- */

/* What the observer's private area holds: the caches' original sources, so the wrappers can
 * call through. */
struct observed {
    ck_store_db_observer *obs;
    struct ck_cache_source principal, device;
};
_Static_assert(sizeof(struct observed) <= sizeof(((ck_store_db_observer *)0)->priv),
               "ck_store_db_observer.priv too small");

static int64_t
mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
report(const struct observed *o, enum ck_store_db_op op, int64_t t0, int rc)
{
    if (o->obs->fn != NULL)
        o->obs->fn(o->obs->arg, op, mono_ns() - t0, rc);
}

static int
obs_load_principal(void *ctx, const char *key, void **rec)
{
    struct observed *o = ctx;
    int64_t t0 = mono_ns();
    int rc = o->principal.load(o->principal.ctx, key, rec);

    report(o, CK_STORE_DB_PRINCIPAL_LOAD, t0, rc == CK_ERR_NOTFOUND ? 0 : rc);
    return rc;
}

static int
obs_load_device(void *ctx, const char *key, void **rec)
{
    struct observed *o = ctx;
    int64_t t0 = mono_ns();
    int rc = o->device.load(o->device.ctx, key, rec);

    report(o, CK_STORE_DB_DEVICE_LOAD, t0, rc == CK_ERR_NOTFOUND ? 0 : rc);
    return rc;
}

/* Both caches share one feed (the store's), so the generation and change-log wrappers call the
 * principal cache's original. */
static int
obs_generation(void *ctx, uint64_t *gen)
{
    struct observed *o = ctx;
    int64_t t0 = mono_ns();
    int rc = o->principal.generation(o->principal.ctx, gen);

    report(o, CK_STORE_DB_CHANGE_CHECK, t0, rc);
    return rc;
}

static int
obs_wait_change(void *ctx, int timeout_ms, bool *changed)
{
    struct observed *o = ctx;
    int64_t t0 = mono_ns();
    int rc = o->principal.wait_change(o->principal.ctx, timeout_ms, changed);

    report(o, CK_STORE_DB_CHANGE_WAIT, t0, rc);
    return rc;
}

static int
obs_changes(void *ctx, uint64_t since, uint64_t *current, ck_store_change_cb changed,
            void *changed_arg)
{
    struct observed *o = ctx;
    int64_t t0 = mono_ns();
    int rc = o->principal.changes(o->principal.ctx, since, current, changed, changed_arg);

    report(o, CK_STORE_DB_CHANGE_READ, t0, rc);
    return rc;
}

void
ck_store_observe_db(ck_store *store, ck_store_db_observer *obs)
{
    struct observed *o = (struct observed *)(void *)obs->priv;

    /* Installed once per observer memory: a second call only changes fn/arg. */
    if (store->cache.src.load == obs_load_principal) {
        struct observed *cur = store->cache.src.ctx;
        cur->obs->fn = obs->fn;
        cur->obs->arg = obs->arg;
        return;
    }
    memset(o, 0, sizeof(*o));
    o->obs = obs;
    o->principal = store->cache.src;
    o->device = store->dev_cache.src;
    store->cache.src.ctx = o;
    store->cache.src.load = obs_load_principal;
    store->cache.src.generation = obs_generation;
    store->cache.src.changes = obs_changes;
    if (o->principal.wait_change != NULL)
        store->cache.src.wait_change = obs_wait_change;
    store->dev_cache.src.ctx = o;
    store->dev_cache.src.load = obs_load_device;
    store->dev_cache.src.generation = obs_generation;
    store->dev_cache.src.changes = obs_changes;
    /* Every callback sees ctx = o now: one the wrapper does not know would get the wrong
     * context, so the device cache's push callback goes through the same wrapper. */
    store->dev_cache.src.wait_change = o->device.wait_change != NULL ? obs_wait_change : NULL;
}
