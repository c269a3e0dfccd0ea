/* The KDC as one of a fleet (docs/fleet.md): what a worker does about its database.
 *
 * The record caches (lib/store/cache.c) learn of changes by push where the backend has it
 * (PostgreSQL LISTEN/NOTIFY, drained at every request and at idle), and they remember when they
 * last reached the database. This file turns that into the KDC's behaviour:
 *   - the database goes away: one log line and the alarm db-unreachable for the whole process
 *     (the first worker to notice raises it, the last to see it back clears it); requests are
 *     answered from the caches for at most db_max_staleness after the last contact;
 *   - past that limit every AS/TGS request gets KDC_ERR_SVC_UNAVAILABLE with an e-text, since a
 *     revocation made through another KDC can no longer reach this one: MIT clients then try the
 *     next KDC of their krb5.conf;
 *   - the caches retry the database on a doubling backoff (never per request); when it answers
 *     they catch up from the change log, and service resumes without a restart.
 * Writes made by the KDC (lockout counters) fail while the database is away: lockout.c keeps them
 * and retries, logging each failed attempt.
 *
 * The process-wide counters are atomics: workers are threads of one process, each with its own
 * store connection and so its own view. */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "cablekey/alarm.h"
#include "cablekey/error.h"
#include "cablekey/log.h"
#include "cablekey/store.h"
#include "cablekey/util.h"
#include "kdc_int.h"

/* The e-text of the refusal: what an operator reading a client's error needs. */
#define FLEET_ETEXT "KDC database unreachable for longer than db_max_staleness; try another KDC"

static atomic_int fleet_down_workers;
static atomic_int fleet_refusing_workers;
/* Wall clock (ms since the epoch) of the last contact before the current outage. */
static _Atomic int64_t fleet_last_contact_ms;

static int64_t
wall_ms(void)
{
    int64_t sec = 0;
    int32_t usec = 0;

    ck_now(&sec, &usec);
    return sec * 1000 + usec / 1000;
}

void
kdc_fleet_init(struct kdc_worker *w, const struct kdc_config *cfg)
{
    int64_t ms = cfg->db_max_staleness_ms;

    ck_strlcpy(w->fleet_db, cfg->db_path != NULL ? cfg->db_path : "database",
               sizeof(w->fleet_db));
    ck_store_cache_set_max_staleness(
        w->store, ms == 0 ? (int64_t)CK_STORE_DEFAULT_MAX_STALENESS_S * 1000 : ms < 0 ? 0 : ms);
}

static void
note_refusing(struct kdc_worker *w, bool refusing, const ck_store_contact_info *ci)
{
    if (refusing == w->fleet_refusing)
        return;
    w->fleet_refusing = refusing;
    if (refusing) {
        if (atomic_fetch_add(&fleet_refusing_workers, 1) == 0)
            ck_log_err("fleet db-stale: database %s unreachable for %lld s, cached records older "
                       "than db_max_staleness (%lld s): refusing requests "
                       "(KDC_ERR_SVC_UNAVAILABLE) until it is back",
                       w->fleet_db, (long long)(ci->down_ms / 1000),
                       (long long)(ci->max_staleness_ms / 1000));
    } else {
        atomic_fetch_sub(&fleet_refusing_workers, 1);
    }
}

/* Follows the worker's contact state and reports the process's transitions once. */
static void
fleet_update(struct kdc_worker *w)
{
    ck_store_contact_info ci;

    ck_store_cache_contact(w->store, &ci);
    if (!ci.reachable && !w->fleet_down) {
        w->fleet_down = true;
        if (atomic_fetch_add(&fleet_down_workers, 1) == 0) {
            atomic_store(&fleet_last_contact_ms, wall_ms() - ci.since_contact_ms);
            ck_log_warn("fleet db-unreachable: database %s unreachable (%s); serving from the "
                        "caches for at most %lld s, reconnecting with backoff",
                        w->fleet_db, ci.error,
                        (long long)(ci.max_staleness_ms / 1000));
            if (w->alarms != NULL)
                ck_alarm_raise(w->alarms, CK_ALARM_DB_UNREACHABLE, CK_ALARM_CRITICAL,
                               w->fleet_db, "the KDC cannot reach its database; it serves "
                               "cached records for at most %lld s, then refuses",
                               (long long)(ci.max_staleness_ms / 1000));
        }
    } else if (ci.reachable && w->fleet_down) {
        w->fleet_down = false;
        if (atomic_fetch_sub(&fleet_down_workers, 1) == 1) {
            int64_t gone = wall_ms() - atomic_load(&fleet_last_contact_ms);

            ck_log_notice("fleet db-reachable: database %s reachable again after %lld ms",
                          w->fleet_db, (long long)gone);
            if (w->alarms != NULL)
                ck_alarm_clear(w->alarms, CK_ALARM_DB_UNREACHABLE, w->fleet_db,
                               "database reachable again after %lld ms", (long long)gone);
        }
    }
    note_refusing(w, !ci.serving, &ci);
}

void
kdc_fleet_fini(struct kdc_worker *w)
{
    if (w == NULL)
        return;
    /* A worker replaced by a reload hands its place to the new one, which counts itself. */
    if (w->fleet_down)
        atomic_fetch_sub(&fleet_down_workers, 1);
    if (w->fleet_refusing)
        atomic_fetch_sub(&fleet_refusing_workers, 1);
    w->fleet_down = w->fleet_refusing = false;
}

void
kdc_fleet_begin(struct kdc_worker *w)
{
    ck_store_cache_begin(w->store);
    fleet_update(w);
}

bool
kdc_fleet_refuse(struct kdc_request *r)
{
    ck_store_contact_info ci;

    if (!r->w->fleet_refusing)
        return false;
    ck_store_cache_contact(r->w->store, &ci);
    kdc_fail(r, CK_KDC_ERR_SVC_UNAVAILABLE, "DB_UNAVAILABLE",
             "database unreachable for %lld s, last contact %lld s ago, db_max_staleness %lld s",
             (long long)(ci.down_ms / 1000), (long long)(ci.since_contact_ms / 1000),
             (long long)(ci.max_staleness_ms / 1000));
    r->e_text = FLEET_ETEXT;
    return true;
}

int
kdc_fleet_idle(struct kdc_worker *w)
{
    int wait;

    if (w == NULL || w->store == NULL)
        return -1;
    wait = ck_store_cache_idle(w->store);
    fleet_update(w);
    return wait;
}

int64_t
kdc_fleet_staleness_ms(void)
{
    if (atomic_load(&fleet_down_workers) == 0)
        return 0;
    return wall_ms() - atomic_load(&fleet_last_contact_ms);
}
