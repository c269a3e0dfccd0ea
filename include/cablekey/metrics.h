/* Metrics: counters, gauges and fixed-bucket histograms, rendered in the Prometheus text
 * exposition format 0.0.4 and served on /metrics (issue 9, item 4).
 *
 * Cardinality is fixed when a metric is registered: each label is declared with the complete
 * list of its values (an enum: request type, result, cache outcome...), and the metric's series
 * are every combination, allocated then. Nothing at run time can add a label or a value (a value
 * that was not declared is refused by ck_metric_series, and an index out of range is ignored and
 * counted), so a request can never create a series: a principal name cannot become a label.
 * Label names that would name a principal or a client are refused at registration.
 *
 * Hot path: ck_metric_inc/add/observe are a few relaxed atomic operations on a cell that belongs
 * to one of CK_METRICS_SHARDS shards, chosen per thread (each shard's cells sit on their own cache
 * lines), so KDC workers do not contend; rendering sums the shards. Sums are exact: no increment
 * is ever lost. Gauges are one cell per series (set by whoever samples them). bench/metrics_bench
 * measures the cost.
 *
 * Memory: a counter or histogram takes CK_METRICS_SHARDS x series x cells x 8 bytes (a histogram
 * series has buckets + 2 cells): 16 x 8 x 15 x 8 = 15 KiB for 8 series of 13 buckets.
 *
 * Register everything before serving (registration and rendering share a lock; the increments
 * take none). A metric lives as long as its registry. */
#ifndef CABLEKEY_METRICS_H
#define CABLEKEY_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define CK_METRICS_SHARDS 16
#define CK_METRICS_MAX_LABELS 4
#define CK_METRICS_MAX_VALUES 64    /* declared values per label */
#define CK_METRICS_MAX_SERIES 4096  /* combinations per metric */
#define CK_METRICS_MAX_BUCKETS 64   /* histogram buckets, +Inf not counted */
#define CK_METRICS_MAX_FAMILIES 256
#define CK_METRICS_DEFAULT_BIND "127.0.0.1:9188"

enum ck_metric_type { CK_METRIC_COUNTER, CK_METRIC_GAUGE, CK_METRIC_HISTOGRAM };

/* One label and all the values it may take (NULL-terminated). Values: 1..64 bytes of printable
 * ASCII, distinct. */
struct ck_metric_label {
    const char *name;
    const char *const *values;
};

struct ck_metric_desc {
    const char *name;     /* [a-zA-Z_:][a-zA-Z0-9_:]*, unique in the registry */
    const char *help;     /* one line of text; escaped when rendered */
    enum ck_metric_type type;
    const struct ck_metric_label *labels;
    size_t n_labels;      /* 0..CK_METRICS_MAX_LABELS */
    const double *buckets; /* histogram: upper bounds, finite, strictly ascending */
    size_t n_buckets;     /* histogram: 1..CK_METRICS_MAX_BUCKETS (+Inf is implicit) */
};

struct ck_metrics;
struct ck_metric;

int ck_metrics_new(struct ck_metrics **out);
void ck_metrics_free(struct ck_metrics *r); /* accepts NULL */

/* Copies what it needs from d. CK_ERR_INVAL for a bad name, help, label or bucket list,
 * CK_ERR_POLICY for a label name that would identify a principal or client ("principal",
 * "client", "cname", "sname", "server", "user", "host", "address", "ip") or a reserved one ("le",
 * "quantile", "__..."), CK_ERR_LIMIT past a limit above, CK_ERR_EXISTS for a name registered
 * already. */
int ck_metrics_register(struct ck_metrics *r, const struct ck_metric_desc *d,
                        struct ck_metric **out);

/* The series index of a combination of label values, given as strings in the declared label
 * order; CK_ERR_POLICY (naming the label) for a value that was not declared. For start-up code:
 * the hot path keeps the index (or uses ck_metric_series_idx). */
int ck_metric_series(const struct ck_metric *m, const char *const *values, size_t *out);
/* The same from value positions (the enums' numbers): mixed radix, first label most significant.
 * SIZE_MAX if a position is out of range. */
size_t ck_metric_series_idx(const struct ck_metric *m, const unsigned *pos);
size_t ck_metric_n_series(const struct ck_metric *m);

/* Hot path. A series out of range (or a call of the wrong type) is ignored and counted in
 * ck_metrics_rejected. */
void ck_metric_inc(struct ck_metric *m, size_t series);
void ck_metric_add(struct ck_metric *m, size_t series, uint64_t n);      /* counter */
void ck_metric_observe(struct ck_metric *m, size_t series, double v);    /* histogram */
void ck_metric_set(struct ck_metric *m, size_t series, double v);        /* gauge */
void ck_metric_gauge_add(struct ck_metric *m, size_t series, double d);  /* gauge */

/* Reading (tests, `cablekey` status): the summed value of a counter or gauge series, a
 * histogram's count and sum. */
double ck_metric_value(const struct ck_metric *m, size_t series);
uint64_t ck_metric_hist_count(const struct ck_metric *m, size_t series);
double ck_metric_hist_sum(const struct ck_metric *m, size_t series);
uint64_t ck_metrics_rejected(const struct ck_metrics *r);

/* Called at the start of every render, before anything is read: the place to sample gauges
 * (cache size, queued alarms) instead of keeping them current on the hot path. It runs on the
 * rendering thread (the HTTP server's), outside the registry's lock; one hook, set before
 * serving (NULL removes it). */
void ck_metrics_set_collect(struct ck_metrics *r, void (*fn)(void *arg), void *arg);

/* The whole registry in the text format 0.0.4, families in registration order: a malloc'd
 * NUL-terminated string (*len without the NUL). */
int ck_metrics_render(struct ck_metrics *r, char **out, size_t *len);

/* ---- the /metrics endpoint (libmicrohttpd, its own thread) ------------------------------- */

#define CK_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct ck_metrics_http;

/* Serves GET (and HEAD) /metrics on bind: "ADDR:PORT" or "[V6ADDR]:PORT", numeric; NULL:
 * CK_METRICS_DEFAULT_BIND (loopback: exposing it further is the operator's explicit choice).
 * Port 0 takes a free port (ck_metrics_http_port tells which). Other paths answer 404, other
 * methods 405. The registry must outlive the server. */
int ck_metrics_http_start(struct ck_metrics *r, const char *bind, struct ck_metrics_http **out);
int ck_metrics_http_port(const struct ck_metrics_http *h);
void ck_metrics_http_stop(struct ck_metrics_http *h); /* accepts NULL */

#endif
