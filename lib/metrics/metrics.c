/* Metric registry, sharded cells and the text exposition format 0.0.4.
 *
 * Cell layout of a counter or histogram: CK_METRICS_SHARDS blocks, each holding every series'
 * cells and padded to a multiple of 64 bytes, so two threads on different shards never write the
 * same cache line. A histogram series has n_buckets+1 bucket cells (the last is +Inf; counts are
 * per bucket and made cumulative when rendered) and one cell with the sum's bits. A gauge has one
 * block (it is set, not incremented, and summing shards would not mean anything). */
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/error.h"
#include "cablekey/metrics.h"
#include "cablekey/util.h"

#define NAME_MAX_LEN 128
#define HELP_MAX_LEN 1024
#define VALUE_MAX_LEN 64
#define CELLS_PER_LINE 8 /* 64-byte lines of uint64_t */
#define RENDER_MAX (64u << 20)

struct ck_metric {
    struct ck_metrics *reg;
    char name[NAME_MAX_LEN];
    char *help;
    enum ck_metric_type type;
    size_t n_labels;
    char label_names[CK_METRICS_MAX_LABELS][NAME_MAX_LEN];
    char **values[CK_METRICS_MAX_LABELS];
    size_t n_values[CK_METRICS_MAX_LABELS];
    size_t n_series;
    size_t n_buckets;
    double buckets[CK_METRICS_MAX_BUCKETS];
    size_t cells_per_series;
    size_t stride; /* cells per shard block */
    unsigned n_shards;
    _Atomic uint64_t *cells;
};

struct ck_metrics {
    pthread_mutex_t lock;
    struct ck_metric *fam[CK_METRICS_MAX_FAMILIES];
    size_t n_fam;
    _Atomic uint64_t rejected;
    void (*collect)(void *arg);
    void *collect_arg;
};

static _Atomic unsigned shard_next;
static _Thread_local int shard_mine = -1;

static inline unsigned
my_shard(void)
{
    if (shard_mine < 0)
        shard_mine = (int)(atomic_fetch_add_explicit(&shard_next, 1, memory_order_relaxed) %
                           CK_METRICS_SHARDS);
    return (unsigned)shard_mine;
}

static inline uint64_t
dbits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof(u));
    return u;
}

static inline double
bitsd(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof(d));
    return d;
}

static inline void
add_double(_Atomic uint64_t *c, double d)
{
    uint64_t old = atomic_load_explicit(c, memory_order_relaxed);

    while (!atomic_compare_exchange_weak_explicit(c, &old, dbits(bitsd(old) + d),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

int
ck_metrics_new(struct ck_metrics **out)
{
    struct ck_metrics *r = calloc(1, sizeof(*r));

    *out = NULL;
    if (r == NULL)
        return ck_error_set(CK_ERR_NOMEM, "metrics registry");
    pthread_mutex_init(&r->lock, NULL);
    *out = r;
    return 0;
}

static void
metric_free(struct ck_metric *m)
{
    if (m == NULL)
        return;
    for (size_t l = 0; l < CK_METRICS_MAX_LABELS; l++) {
        for (size_t v = 0; m->values[l] != NULL && v < m->n_values[l]; v++)
            free(m->values[l][v]);
        free(m->values[l]);
    }
    free(m->help);
    free((void *)m->cells);
    free(m);
}

void
ck_metrics_free(struct ck_metrics *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n_fam; i++)
        metric_free(r->fam[i]);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

static bool
valid_name(const char *s, bool colon)
{
    size_t n = s != NULL ? strlen(s) : 0;

    if (n == 0 || n >= NAME_MAX_LEN)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (colon && c == ':') || (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

static bool
printable(const char *s, size_t max)
{
    size_t n = s != NULL ? strlen(s) : 0;

    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

/* Label names that would carry per-principal or per-client values: refused whatever values are
 * declared, because a later change could then declare principals as values. */
static const char *const forbidden_labels[] = {"principal", "client", "cname", "sname", "server",
                                               "user", "host", "address", "ip", "quantile", "le"};

static int
check_label(const struct ck_metric_label *l, size_t *n_values)
{
    size_t n = 0;

    if (!valid_name(l->name, false))
        return ck_error_set(CK_ERR_INVAL, "metric label name invalid");
    if (strncmp(l->name, "__", 2) == 0)
        return ck_error_set(CK_ERR_POLICY, "metric label %s: reserved", l->name);
    for (size_t i = 0; i < sizeof(forbidden_labels) / sizeof(forbidden_labels[0]); i++)
        if (strcmp(l->name, forbidden_labels[i]) == 0)
            return ck_error_set(CK_ERR_POLICY, "metric label %s: would identify a client or is "
                                "reserved; labels must have a small fixed set of values", l->name);
    for (; l->values != NULL && l->values[n] != NULL; n++) {
        if (n == CK_METRICS_MAX_VALUES)
            return ck_error_set(CK_ERR_LIMIT, "metric label %s: more than %d values", l->name,
                                CK_METRICS_MAX_VALUES);
        if (!printable(l->values[n], VALUE_MAX_LEN))
            return ck_error_set(CK_ERR_INVAL, "metric label %s: value %zu invalid", l->name, n);
        for (size_t j = 0; j < n; j++)
            if (strcmp(l->values[j], l->values[n]) == 0)
                return ck_error_set(CK_ERR_INVAL, "metric label %s: value %s declared twice",
                                    l->name, l->values[n]);
    }
    if (n == 0)
        return ck_error_set(CK_ERR_INVAL, "metric label %s: no values declared", l->name);
    *n_values = n;
    return 0;
}

int
ck_metrics_register(struct ck_metrics *r, const struct ck_metric_desc *d, struct ck_metric **out)
{
    struct ck_metric *m = NULL;
    size_t cells;
    int rc = 0;

    *out = NULL;
    if (d == NULL || !valid_name(d->name, true))
        return ck_error_set(CK_ERR_INVAL, "metric name invalid");
    if (d->help == NULL || strlen(d->help) > HELP_MAX_LEN)
        return ck_error_set(CK_ERR_INVAL, "metric %s: help missing or too long", d->name);
    if (d->type != CK_METRIC_COUNTER && d->type != CK_METRIC_GAUGE &&
        d->type != CK_METRIC_HISTOGRAM)
        return ck_error_set(CK_ERR_INVAL, "metric %s: bad type", d->name);
    if (d->n_labels > CK_METRICS_MAX_LABELS || (d->n_labels > 0 && d->labels == NULL))
        return ck_error_set(CK_ERR_LIMIT, "metric %s: more than %d labels", d->name,
                            CK_METRICS_MAX_LABELS);
    m = calloc(1, sizeof(*m));
    if (m == NULL || (m->help = strdup(d->help)) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "metric %s", d->name);
        goto out;
    }
    ck_strlcpy(m->name, d->name, sizeof(m->name));
    m->type = d->type;
    m->n_labels = d->n_labels;
    m->n_series = 1;
    for (size_t l = 0; l < d->n_labels; l++) {
        size_t nv = 0;
        if ((rc = check_label(&d->labels[l], &nv)) != 0) {
            ck_error_set(rc, "metric %s: %s", d->name, ck_error_context());
            goto out;
        }
        for (size_t j = 0; j < l; j++)
            if (strcmp(d->labels[j].name, d->labels[l].name) == 0) {
                rc = ck_error_set(CK_ERR_INVAL, "metric %s: label %s twice", d->name,
                                  d->labels[l].name);
                goto out;
            }
        ck_strlcpy(m->label_names[l], d->labels[l].name, sizeof(m->label_names[l]));
        m->values[l] = calloc(nv, sizeof(char *));
        if (m->values[l] == NULL) {
            rc = ck_error_set(CK_ERR_NOMEM, "metric %s", d->name);
            goto out;
        }
        m->n_values[l] = nv;
        for (size_t v = 0; v < nv; v++)
            if ((m->values[l][v] = strdup(d->labels[l].values[v])) == NULL) {
                rc = ck_error_set(CK_ERR_NOMEM, "metric %s", d->name);
                goto out;
            }
        m->n_series *= nv;
        if (m->n_series > CK_METRICS_MAX_SERIES) {
            rc = ck_error_set(CK_ERR_LIMIT, "metric %s: more than %d label combinations",
                              d->name, CK_METRICS_MAX_SERIES);
            goto out;
        }
    }
    if (d->type == CK_METRIC_HISTOGRAM) {
        if (d->n_buckets == 0 || d->n_buckets > CK_METRICS_MAX_BUCKETS || d->buckets == NULL) {
            rc = ck_error_set(CK_ERR_LIMIT, "histogram %s: 1 to %d buckets", d->name,
                              CK_METRICS_MAX_BUCKETS);
            goto out;
        }
        for (size_t b = 0; b < d->n_buckets; b++) {
            if (!isfinite(d->buckets[b]) || (b > 0 && !(d->buckets[b] > d->buckets[b - 1]))) {
                rc = ck_error_set(CK_ERR_INVAL, "histogram %s: buckets must be finite and "
                                  "strictly ascending", d->name);
                goto out;
            }
            m->buckets[b] = d->buckets[b];
        }
        m->n_buckets = d->n_buckets;
        m->cells_per_series = d->n_buckets + 2;
    } else if (d->n_buckets != 0) {
        rc = ck_error_set(CK_ERR_INVAL, "metric %s: buckets on a non-histogram", d->name);
        goto out;
    } else {
        m->cells_per_series = 1;
    }
    m->n_shards = d->type == CK_METRIC_GAUGE ? 1 : CK_METRICS_SHARDS;
    cells = m->n_series * m->cells_per_series;
    m->stride = (cells + CELLS_PER_LINE - 1) / CELLS_PER_LINE * CELLS_PER_LINE;
    m->cells = aligned_alloc(64, m->n_shards * m->stride * sizeof(uint64_t));
    if (m->cells == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "metric %s", d->name);
        goto out;
    }
    for (size_t i = 0; i < m->n_shards * m->stride; i++)
        atomic_init(&m->cells[i], 0);
    m->reg = r;

    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->n_fam; i++)
        if (strcmp(r->fam[i]->name, m->name) == 0)
            rc = ck_error_set(CK_ERR_EXISTS, "metric %s registered twice", m->name);
    if (rc == 0 && r->n_fam == CK_METRICS_MAX_FAMILIES)
        rc = ck_error_set(CK_ERR_LIMIT, "more than %d metrics", CK_METRICS_MAX_FAMILIES);
    if (rc == 0)
        r->fam[r->n_fam++] = m;
    pthread_mutex_unlock(&r->lock);
    if (rc == 0) {
        *out = m;
        m = NULL;
    }
out:
    metric_free(m);
    return rc;
}

int
ck_metric_series(const struct ck_metric *m, const char *const *values, size_t *out)
{
    size_t idx = 0;

    for (size_t l = 0; l < m->n_labels; l++) {
        size_t v = 0;
        while (v < m->n_values[l] && (values[l] == NULL || strcmp(m->values[l][v], values[l]) != 0))
            v++;
        if (v == m->n_values[l])
            return ck_error_set(CK_ERR_POLICY, "metric %s: label %s has no declared value like "
                                "that", m->name, m->label_names[l]);
        idx = idx * m->n_values[l] + v;
    }
    *out = idx;
    return 0;
}

size_t
ck_metric_series_idx(const struct ck_metric *m, const unsigned *pos)
{
    size_t idx = 0;

    for (size_t l = 0; l < m->n_labels; l++) {
        if (pos[l] >= m->n_values[l])
            return SIZE_MAX;
        idx = idx * m->n_values[l] + pos[l];
    }
    return idx;
}

size_t
ck_metric_n_series(const struct ck_metric *m)
{
    return m->n_series;
}

static inline bool
reject(struct ck_metric *m, size_t series, enum ck_metric_type type)
{
    if (series < m->n_series && m->type == type)
        return false;
    atomic_fetch_add_explicit(&m->reg->rejected, 1, memory_order_relaxed);
    return true;
}

void
ck_metric_add(struct ck_metric *m, size_t series, uint64_t n)
{
    if (reject(m, series, CK_METRIC_COUNTER))
        return;
    atomic_fetch_add_explicit(&m->cells[my_shard() * m->stride + series], n, memory_order_relaxed);
}

void
ck_metric_inc(struct ck_metric *m, size_t series)
{
    ck_metric_add(m, series, 1);
}

void
ck_metric_observe(struct ck_metric *m, size_t series, double v)
{
    _Atomic uint64_t *c;
    size_t b = 0;

    if (reject(m, series, CK_METRIC_HISTOGRAM))
        return;
    c = &m->cells[my_shard() * m->stride + series * m->cells_per_series];
    /* NaN matches no bound and lands in +Inf, as in the reference client. */
    while (b < m->n_buckets && !(v <= m->buckets[b]))
        b++;
    atomic_fetch_add_explicit(&c[b], 1, memory_order_relaxed);
    add_double(&c[m->n_buckets + 1], v);
}

void
ck_metric_set(struct ck_metric *m, size_t series, double v)
{
    if (reject(m, series, CK_METRIC_GAUGE))
        return;
    atomic_store_explicit(&m->cells[series], dbits(v), memory_order_relaxed);
}

void
ck_metric_gauge_add(struct ck_metric *m, size_t series, double d)
{
    if (reject(m, series, CK_METRIC_GAUGE))
        return;
    add_double(&m->cells[series], d);
}

static uint64_t
sum_cell(const struct ck_metric *m, size_t cell)
{
    uint64_t s = 0;

    for (unsigned sh = 0; sh < m->n_shards; sh++)
        s += atomic_load_explicit(&m->cells[sh * m->stride + cell], memory_order_relaxed);
    return s;
}

static double
sum_cell_double(const struct ck_metric *m, size_t cell)
{
    double s = 0;

    for (unsigned sh = 0; sh < m->n_shards; sh++)
        s += bitsd(atomic_load_explicit(&m->cells[sh * m->stride + cell], memory_order_relaxed));
    return s;
}

double
ck_metric_value(const struct ck_metric *m, size_t series)
{
    if (series >= m->n_series || m->type == CK_METRIC_HISTOGRAM)
        return NAN;
    if (m->type == CK_METRIC_GAUGE)
        return bitsd(atomic_load_explicit(&m->cells[series], memory_order_relaxed));
    return (double)sum_cell(m, series);
}

uint64_t
ck_metric_hist_count(const struct ck_metric *m, size_t series)
{
    uint64_t n = 0;

    if (series >= m->n_series || m->type != CK_METRIC_HISTOGRAM)
        return 0;
    for (size_t b = 0; b <= m->n_buckets; b++)
        n += sum_cell(m, series * m->cells_per_series + b);
    return n;
}

double
ck_metric_hist_sum(const struct ck_metric *m, size_t series)
{
    if (series >= m->n_series || m->type != CK_METRIC_HISTOGRAM)
        return NAN;
    return sum_cell_double(m, series * m->cells_per_series + m->n_buckets + 1);
}

uint64_t
ck_metrics_rejected(const struct ck_metrics *r)
{
    return atomic_load_explicit(&((struct ck_metrics *)r)->rejected, memory_order_relaxed);
}

/* ---- rendering ------------------------------------------------------------------------- */

static int
put(ck_writer *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
put(ck_writer *w, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(buf))
        return ck_error_set(CK_ERR_LIMIT, "metrics: line too long");
    return ck_writer_bytes(w, buf, (size_t)n);
}

/* Shortest decimal that reads back as the same double; the format's spellings of the specials. */
static void
fmt_double(char *buf, size_t size, double v)
{
    if (isnan(v)) {
        ck_strlcpy(buf, "NaN", size);
        return;
    }
    if (isinf(v)) {
        ck_strlcpy(buf, v > 0 ? "+Inf" : "-Inf", size);
        return;
    }
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, size, "%.*g", p, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

/* Escapes for HELP (backslash, newline) or a label value (also the double quote). */
static int
put_escaped(ck_writer *w, const char *s, bool quote)
{
    int rc = 0;

    for (; *s != '\0' && rc == 0; s++) {
        if (*s == '\\')
            rc = ck_writer_bytes(w, "\\\\", 2);
        else if (*s == '\n')
            rc = ck_writer_bytes(w, "\\n", 2);
        else if (quote && *s == '"')
            rc = ck_writer_bytes(w, "\\\"", 2);
        else
            rc = ck_writer_u8(w, (uint8_t)*s);
    }
    return rc;
}

/* {a="x",b="y"[,le="0.5"]}, or nothing without labels and le. */
static int
put_labels(ck_writer *w, const struct ck_metric *m, size_t series, const char *le)
{
    size_t pos[CK_METRICS_MAX_LABELS], rest = series;
    int rc = 0;

    if (m->n_labels == 0 && le == NULL)
        return 0;
    for (size_t l = m->n_labels; l-- > 0;) {
        pos[l] = rest % m->n_values[l];
        rest /= m->n_values[l];
    }
    rc = ck_writer_u8(w, '{');
    for (size_t l = 0; l < m->n_labels && rc == 0; l++) {
        if ((rc = put(w, "%s%s=\"", l > 0 ? "," : "", m->label_names[l])) == 0 &&
            (rc = put_escaped(w, m->values[l][pos[l]], true)) == 0)
            rc = ck_writer_u8(w, '"');
    }
    if (rc == 0 && le != NULL)
        rc = put(w, "%sle=\"%s\"", m->n_labels > 0 ? "," : "", le);
    if (rc == 0)
        rc = ck_writer_u8(w, '}');
    return rc;
}

static int
render_one(ck_writer *w, const struct ck_metric *m)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    char num[64];
    int rc;

    if ((rc = put(w, "# HELP %s ", m->name)) != 0 || (rc = put_escaped(w, m->help, false)) != 0 ||
        (rc = put(w, "\n# TYPE %s %s\n", m->name, types[m->type])) != 0)
        return rc;
    for (size_t s = 0; s < m->n_series && rc == 0; s++) {
        if (m->type == CK_METRIC_COUNTER) {
            if ((rc = put(w, "%s", m->name)) == 0 && (rc = put_labels(w, m, s, NULL)) == 0)
                rc = put(w, " %llu\n", (unsigned long long)sum_cell(m, s));
        } else if (m->type == CK_METRIC_GAUGE) {
            fmt_double(num, sizeof(num), ck_metric_value(m, s));
            if ((rc = put(w, "%s", m->name)) == 0 && (rc = put_labels(w, m, s, NULL)) == 0)
                rc = put(w, " %s\n", num);
        } else {
            uint64_t cum = 0;
            for (size_t b = 0; b <= m->n_buckets && rc == 0; b++) {
                cum += sum_cell(m, s * m->cells_per_series + b);
                if (b < m->n_buckets)
                    fmt_double(num, sizeof(num), m->buckets[b]);
                else
                    ck_strlcpy(num, "+Inf", sizeof(num));
                if ((rc = put(w, "%s_bucket", m->name)) == 0 &&
                    (rc = put_labels(w, m, s, num)) == 0)
                    rc = put(w, " %llu\n", (unsigned long long)cum);
            }
            fmt_double(num, sizeof(num), ck_metric_hist_sum(m, s));
            if (rc == 0 && (rc = put(w, "%s_sum", m->name)) == 0 &&
                (rc = put_labels(w, m, s, NULL)) == 0)
                rc = put(w, " %s\n", num);
            /* _count is the +Inf bucket, so the two always agree in one scrape. */
            if (rc == 0 && (rc = put(w, "%s_count", m->name)) == 0 &&
                (rc = put_labels(w, m, s, NULL)) == 0)
                rc = put(w, " %llu\n", (unsigned long long)cum);
        }
    }
    return rc;
}

void
ck_metrics_set_collect(struct ck_metrics *r, void (*fn)(void *arg), void *arg)
{
    pthread_mutex_lock(&r->lock);
    r->collect = fn;
    r->collect_arg = arg;
    pthread_mutex_unlock(&r->lock);
}

int
ck_metrics_render(struct ck_metrics *r, char **out, size_t *len)
{
    void (*collect)(void *arg);
    void *collect_arg;
    ck_writer w;
    int rc = 0;

    *out = NULL;
    *len = 0;
    pthread_mutex_lock(&r->lock);
    collect = r->collect;
    collect_arg = r->collect_arg;
    pthread_mutex_unlock(&r->lock);
    if (collect != NULL)
        collect(collect_arg);
    ck_writer_init(&w, RENDER_MAX, false);
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->n_fam && rc == 0; i++)
        rc = render_one(&w, r->fam[i]);
    pthread_mutex_unlock(&r->lock);
    if (rc == 0)
        rc = ck_writer_u8(&w, '\0');
    if (rc != 0) {
        ck_writer_free(&w);
        return rc;
    }
    *out = (char *)ck_writer_take(&w, len);
    (*len)--;
    return 0;
}
