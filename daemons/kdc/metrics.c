/* The KDC's metrics (alarms.h, docs/alarms.md "Metrics"): registered once at start, counted by
 * the workers through lib/metrics' sharded atomics, served on /metrics.
 *
 * Every label has a fixed list of values (request type, result class, cache, database
 * operation): nothing a client sends can add a series, and no label names a principal.
 *
 * Per-worker state (the last cache statistics seen, the database observer's memory) is
 * thread-local: a network worker runs on one thread for its whole life, and a reload's new
 * worker replaces the old one on that same thread (main.c, slot_worker) after the old one's
 * store is closed. */
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "cablekey/alarm.h"
#include "cablekey/error.h"
#include "cablekey/log.h"
#include "cablekey/metrics.h"
#include "cablekey/store.h"
#include "cablekey/util.h"
#include "admission.h"
#include "alarms.h"
#include "config.h"
#include "kdc_int.h"

enum req_type { T_AS, T_TGS, T_OTHER, T_COUNT };
static const char *const type_values[] = {"as", "tgs", "other", NULL};

enum req_result {
    R_OK, R_RETRANSMIT, R_PREAUTH_REQUIRED, R_PREAUTH_FAILED, R_CLIENT_UNKNOWN,
    R_SERVER_UNKNOWN, R_SKEW, R_KVNO_MISSING, R_REVOKED, R_MALFORMED, R_REFUSED, R_ERROR,
    R_SILENT, R_COUNT
};
static const char *const result_values[] = {
    "ok", "retransmit", "preauth_required", "preauth_failed", "client_unknown",
    "server_unknown", "skew", "kvno_missing", "revoked", "malformed", "refused", "error",
    "silent", NULL};

static const char *const cache_values[] = {"principal", "device", NULL};
static const char *const outcome_values[] = {"hit", "miss", NULL};

/* The store's observed calls (enum ck_store_db_op order), then the KDC's own. */
enum { OP_ALARM_WRITE = CK_STORE_DB_OP_COUNT, OP_COUNT };
static const char *const op_values[] = {"principal_load", "device_load", "change_check",
                                        "change_read", "change_wait", "alarm_write", NULL};

static const double req_buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                      0.025,  0.05,    0.1,    0.25,  0.5,    1,    2.5};
static const double db_buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                     0.025,  0.05,    0.1,    0.25,  0.5,    1,    5};

static struct {
    struct ck_metrics *reg;
    struct ck_metrics_http *http;
    struct ck_alarm_mgr *alarms;
    struct ck_metric *requests, *latency, *cache, *db, *db_errors, *staleness, *alarms_active;
    atomic_int_fast64_t last_db_ok_ms;   /* monotonic; 0: never */
    atomic_int_fast64_t last_db_fail_ms; /* monotonic; 0: never */
    const struct ck_net_server *srv;     /* admission control's counters (NULL: none) */
} M;

int64_t
kdc_metrics_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
db_observe(unsigned op, int64_t ns, int rc)
{
    bool contact = op != OP_ALARM_WRITE;

    if (M.db == NULL)
        return;
    /* Draining push notices reads a socket buffer, not the database: no latency to show. */
    if (op != CK_STORE_DB_CHANGE_WAIT)
        ck_metric_observe(M.db, op, (double)ns / 1e9);
    if (rc != 0) {
        ck_metric_inc(M.db_errors, op);
        if (contact)
            atomic_store_explicit(&M.last_db_fail_ms, ck_monotonic_ms(), memory_order_relaxed);
    } else if (contact && op != CK_STORE_DB_CHANGE_WAIT) {
        atomic_store_explicit(&M.last_db_ok_ms, ck_monotonic_ms(), memory_order_relaxed);
    }
}

static void
store_observer(void *arg, enum ck_store_db_op op, int64_t ns, int rc)
{
    (void)arg;
    db_observe((unsigned)op, ns, rc);
}

void
kdc_metrics_db(const char *op, int64_t ns, int rc)
{
    if (op != NULL && strcmp(op, "alarm_write") == 0)
        db_observe(OP_ALARM_WRITE, ns, rc);
}

/* ---- the request hook ------------------------------------------------------------------- */

static _Thread_local struct {
    const ck_store *store;
    ck_store_cache_stats p, d;
    ck_store_db_observer obs;
} W;

static enum req_result
classify(const struct kdc_request *r)
{
    if (r->status != NULL && strcmp(r->status, "LOOKASIDE") == 0)
        return R_RETRANSMIT;
    if (r->error_code == 0 && r->reply != NULL)
        return R_OK;
    if (r->silent)
        return R_SILENT;
    switch (r->error_code) {
    case CK_KDC_ERR_PREAUTH_REQUIRED: return R_PREAUTH_REQUIRED;
    case CK_KDC_ERR_PREAUTH_FAILED: return R_PREAUTH_FAILED;
    case CK_KDC_ERR_C_PRINCIPAL_UNKNOWN: return R_CLIENT_UNKNOWN;
    case CK_KDC_ERR_S_PRINCIPAL_UNKNOWN: return R_SERVER_UNKNOWN;
    case CK_KRB_AP_ERR_SKEW: return R_SKEW;
    case CK_KRB_AP_ERR_BADKEYVER:
    case CK_KRB_AP_ERR_NOKEY: return R_KVNO_MISSING;
    case CK_KDC_ERR_CLIENT_REVOKED: return R_REVOKED;
    case CK_KRB_ERR_FIELD_TOOLONG:
    case CK_KRB_AP_ERR_MSG_TYPE: return R_MALFORMED;
    case CK_KRB_ERR_GENERIC:
        if (r->status != NULL && strcmp(r->status, "DECODE_ERROR") == 0)
            return R_MALFORMED;
        return R_ERROR;
    default: return R_REFUSED;
    }
}

/* Adds what the worker's caches counted since the last request (a new store starts at 0). */
static void
count_cache(struct kdc_worker *w)
{
    ck_store_cache_stats p, d;

    if (W.store != w->store) {
        memset(&W, 0, sizeof(W));
        W.store = w->store;
        W.obs.fn = store_observer;
    }
    /* Installs the observer on a store that has none yet: also a reload's new store that
     * malloc placed where the old one was (same pointer, counters from zero). */
    ck_store_observe_db(w->store, &W.obs);
    ck_store_cache_get_stats(w->store, &p);
    ck_store_device_cache_get_stats(w->store, &d);
    if (p.hits < W.p.hits || p.misses < W.p.misses || d.hits < W.d.hits ||
        d.misses < W.d.misses) {
        memset(&W.p, 0, sizeof(W.p));
        memset(&W.d, 0, sizeof(W.d));
    }
    if (p.hits > W.p.hits)
        ck_metric_add(M.cache, 0, p.hits - W.p.hits);
    if (p.misses > W.p.misses)
        ck_metric_add(M.cache, 1, p.misses - W.p.misses);
    if (d.hits > W.d.hits)
        ck_metric_add(M.cache, 2, d.hits - W.d.hits);
    if (d.misses > W.d.misses)
        ck_metric_add(M.cache, 3, d.misses - W.d.misses);
    W.p = p;
    W.d = d;
}

void
kdc_metrics_request(struct kdc_worker *w, const struct kdc_request *r, int64_t t0_ns)
{
    enum req_type t;
    unsigned pos[2];

    if (w->metrics == NULL || M.requests == NULL)
        return;
    t = strcmp(r->kind, "AS_REQ") == 0 ? T_AS : strcmp(r->kind, "TGS_REQ") == 0 ? T_TGS : T_OTHER;
    pos[0] = t;
    pos[1] = classify(r);
    ck_metric_inc(M.requests, ck_metric_series_idx(M.requests, pos));
    ck_metric_observe(M.latency, t, (double)(kdc_metrics_now() - t0_ns) / 1e9);
    if (w->store != NULL)
        count_cache(w);
}

void
kdc_metrics_admission(const struct ck_net_server *srv)
{
    M.srv = srv;
}

/* ---- scrape-time gauges ----------------------------------------------------------------- */

static void
collect(void *arg)
{
    int64_t ok = atomic_load_explicit(&M.last_db_ok_ms, memory_order_relaxed);
    int64_t fail = atomic_load_explicit(&M.last_db_fail_ms, memory_order_relaxed);

    (void)arg;
    /* As ck_store_cache_staleness says it for one store, for the whole KDC: 0 while the
     * database answers; since the last successful contact of any worker when the newest
     * access failed (the caches serve from memory for at most db_max_staleness). Computed
     * from what the workers' observers saw: a worker's store is its own thread's. */
    ck_metric_set(M.staleness, 0, fail > ok ? (double)(ck_monotonic_ms() - ok) / 1000.0 : 0);
    if (M.alarms != NULL) {
        struct ck_alarm_stats st;
        ck_alarm_mgr_stats(M.alarms, &st);
        ck_metric_set(M.alarms_active, 0, (double)st.active);
    }
    if (M.srv != NULL)
        kdc_admission_metrics_collect(M.srv);
}

/* ---- start and stop --------------------------------------------------------------------- */

static int
reg(struct ck_metrics *r, const char *name, const char *help, enum ck_metric_type type,
    const struct ck_metric_label *labels, size_t n_labels, const double *buckets,
    size_t n_buckets, struct ck_metric **out)
{
    struct ck_metric_desc d = {.name = name, .help = help, .type = type, .labels = labels,
                               .n_labels = n_labels, .buckets = buckets,
                               .n_buckets = n_buckets};

    return ck_metrics_register(r, &d, out);
}

int
kdc_metrics_start(const struct kdc_daemon_config *dc, struct ck_alarm_mgr *alarms,
                  struct ck_metrics **out)
{
    static const struct ck_metric_label req_labels[] = {{"type", type_values},
                                                        {"result", result_values}};
    static const struct ck_metric_label type_label[] = {{"type", type_values}};
    static const struct ck_metric_label cache_labels[] = {{"cache", cache_values},
                                                          {"result", outcome_values}};
    static const struct ck_metric_label op_label[] = {{"op", op_values}};
    struct ck_metrics *r = NULL;
    int rc;

    *out = NULL;
    if (dc->alarm.metrics_off)
        return 0;
    if ((rc = ck_metrics_new(&r)) != 0 ||
        (rc = reg(r, "kdc_requests_total", "KDC requests by message type and result class",
                  CK_METRIC_COUNTER, req_labels, 2, NULL, 0, &M.requests)) != 0 ||
        (rc = reg(r, "kdc_request_duration_seconds",
                  "Time from a request's arrival to its answer, by message type",
                  CK_METRIC_HISTOGRAM, type_label, 1, req_buckets,
                  sizeof(req_buckets) / sizeof(req_buckets[0]), &M.latency)) != 0 ||
        (rc = reg(r, "kdc_cache_lookups_total",
                  "Principal and device cache lookups, hits and misses (a miss reads the "
                  "database)", CK_METRIC_COUNTER, cache_labels, 2, NULL, 0, &M.cache)) != 0 ||
        (rc = reg(r, "kdc_db_duration_seconds", "Database calls of the KDC by operation",
                  CK_METRIC_HISTOGRAM, op_label, 1, db_buckets,
                  sizeof(db_buckets) / sizeof(db_buckets[0]), &M.db)) != 0 ||
        (rc = reg(r, "kdc_db_errors_total", "Database calls that failed, by operation",
                  CK_METRIC_COUNTER, op_label, 1, NULL, 0, &M.db_errors)) != 0 ||
        (rc = reg(r, "kdc_db_staleness_seconds",
                  "While the database is unreachable: seconds since the last successful contact "
                  "(0 while it answers)",
                  CK_METRIC_GAUGE, NULL, 0, NULL, 0, &M.staleness)) != 0 ||
        (rc = reg(r, "kdc_alarms_active", "Alarms raised by this KDC and not cleared",
                  CK_METRIC_GAUGE, NULL, 0, NULL, 0, &M.alarms_active)) != 0 ||
        (rc = kdc_admission_metrics_register(r)) != 0) /* k9storm's admission.c */
        goto out;
    M.alarms = alarms;
    M.reg = r;
    ck_metrics_set_collect(r, collect, NULL);
    if ((rc = ck_metrics_http_start(r, dc->alarm.metrics_listen, &M.http)) != 0) {
        rc = ck_error_set(rc, "metrics_listen %s: %s",
                          dc->alarm.metrics_listen != NULL ? dc->alarm.metrics_listen
                                                           : CK_METRICS_DEFAULT_BIND,
                          ck_error_context());
        /* The default port taken (another KDC on this host) must not stop a KDC that nobody
         * asked to serve metrics: it counts, and says that nobody can read them. An address
         * the operator configured is a promise: failing it fails the start. */
        if (dc->alarm.metrics_listen != NULL)
            goto out;
        ck_log_err("%s: /metrics is not served (set metrics_listen, or none)",
                   ck_error_context());
        rc = 0;
    } else {
        ck_log_notice("metrics: serving /metrics on port %d", ck_metrics_http_port(M.http));
    }
    *out = r;
    r = NULL;
out:
    if (r != NULL) {
        memset(&M, 0, sizeof(M));
        ck_metrics_free(r);
    }
    return rc;
}

int
kdc_metrics_port(void)
{
    return M.http != NULL ? ck_metrics_http_port(M.http) : 0;
}

void
kdc_metrics_stop(struct ck_metrics *m)
{
    if (m == NULL)
        return;
    ck_metrics_http_stop(M.http);
    memset(&M, 0, sizeof(M));
    ck_metrics_free(m);
}
