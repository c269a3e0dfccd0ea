/* The alarm manager: records keyed by code+subject, deduplicated per window, delivered to every
 * sink by one background thread with a bounded queue and a retry schedule per sink.
 *
 * Locking: one mutex guards the records, the queues and the statistics. A worker's raise holds it
 * for a hash lookup (records are chained by a hash of code+subject, so a KDC raising an alarm per
 * request does not scan every record) and a copy into each sink's queue; only creating a record
 * when all max_alarms are in use scans them, for the least recently seen. The delivery thread
 * never holds it while a sink runs: it copies the head entry out, unlocks, delivers, relocks and
 * pops the head only if it is still the same entry (a raise may have dropped it meanwhile). */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "cablekey/alarm.h"
#include "cablekey/error.h"
#include "cablekey/log.h"
#include "cablekey/util.h"

#define MAX_SINKS 8
#define NONE SIZE_MAX

static const char *const code_names[CK_ALARM_CODE_COUNT] = {
    [CK_ALARM_KVNO_MISSING] = "kvno-missing",     [CK_ALARM_CLOCK_SKEW] = "clock-skew",
    [CK_ALARM_DB_UNREACHABLE] = "db-unreachable", [CK_ALARM_CERT_EXPIRY] = "cert-expiry",
    [CK_ALARM_PREAUTH_SPIKE] = "preauth-spike",   [CK_ALARM_KDC_DOWN] = "kdc-down",
    [CK_ALARM_KEY_UNCONFIRMED] = "key-unconfirmed",
};

static const char *const severity_names[CK_ALARM_SEVERITY_COUNT] = {
    [CK_ALARM_CRITICAL] = "critical", [CK_ALARM_MAJOR] = "major",
    [CK_ALARM_MINOR] = "minor",       [CK_ALARM_WARNING] = "warning",
};

struct rec {
    struct ck_alarm a;
    uint64_t hash;
    size_t next;           /* next record in the hash chain, or NONE */
    bool used;
    bool pending;          /* raised inside the window since the last delivery */
    int64_t delivered_ms;  /* when the last copy was queued */
};

struct qent {
    struct ck_alarm a;
    uint64_t seq;
    unsigned attempts;
    int64_t next_ms;       /* not before (injected clock) */
};

struct sinkq {
    struct ck_alarm_sink s;
    struct qent *q;        /* ring of queue_max entries */
    size_t head, len;
    uint64_t next_seq;
    struct ck_alarm_sink_stats st;
};

struct ck_alarm_mgr {
    struct ck_alarm_conf conf;
    char host[CK_ALARM_HOST_MAX];
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_t thread;
    bool started, stopping;
    struct rec *recs;
    size_t *chains;        /* n_chains heads, each a record index or NONE */
    size_t n_chains;       /* a power of two >= max_alarms */
    struct sinkq sinks[MAX_SINKS];
    size_t n_sinks;
    struct ck_alarm_stats st;
};

const char *
ck_alarm_code_name(enum ck_alarm_code code)
{
    if ((unsigned)code >= CK_ALARM_CODE_COUNT)
        return "?";
    return code_names[code];
}

int
ck_alarm_code_from_name(const char *name)
{
    for (int i = 0; name != NULL && i < CK_ALARM_CODE_COUNT; i++)
        if (strcmp(code_names[i], name) == 0)
            return i;
    return ck_error_set(CK_ERR_INVAL, "unknown alarm code");
}

const char *
ck_alarm_severity_name(enum ck_alarm_severity s)
{
    if ((unsigned)s >= CK_ALARM_SEVERITY_COUNT)
        return "?";
    return severity_names[s];
}

int
ck_alarm_severity_syslog(enum ck_alarm_severity s)
{
    switch (s) {
    case CK_ALARM_CRITICAL: return LOG_CRIT;
    case CK_ALARM_MAJOR: return LOG_ERR;
    case CK_ALARM_MINOR: return LOG_WARNING;
    default: return LOG_NOTICE;
    }
}

/* Printable ASCII only, cut to size: see the header. */
static void
copy_clean(char *dst, size_t size, const char *src)
{
    size_t i = 0;

    for (; src != NULL && src[i] != '\0' && i + 1 < size; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    dst[i] = '\0';
}

static int64_t
now_ms(const struct ck_alarm_mgr *m)
{
    int64_t sec;
    int32_t usec;

    if (m->conf.clock.now_ms != NULL)
        return m->conf.clock.now_ms(m->conf.clock.arg);
    ck_now(&sec, &usec);
    return sec * 1000 + usec / 1000;
}

int
ck_alarm_mgr_new(const struct ck_alarm_conf *conf, struct ck_alarm_mgr **out)
{
    struct ck_alarm_mgr *m;
    char host[CK_ALARM_HOST_MAX] = "";

    *out = NULL;
    m = calloc(1, sizeof(*m));
    if (m == NULL)
        return ck_error_set(CK_ERR_NOMEM, "alarm manager");
    if (conf != NULL)
        m->conf = *conf;
    if (m->conf.window_ms <= 0)
        m->conf.window_ms = 60000;
    if (m->conf.max_alarms == 0)
        m->conf.max_alarms = 1024;
    if (m->conf.queue_max == 0)
        m->conf.queue_max = 256;
    if (m->conf.retry_base_ms <= 0)
        m->conf.retry_base_ms = 1000;
    if (m->conf.retry_max_ms <= 0)
        m->conf.retry_max_ms = 60000;
    if (m->conf.max_attempts == 0)
        m->conf.max_attempts = 8;
    if (m->conf.shutdown_ms <= 0)
        m->conf.shutdown_ms = 2000;
    if (m->conf.poll_ms <= 0)
        m->conf.poll_ms = 100;
    if (m->conf.max_alarms > 1000000 || m->conf.queue_max > 1000000) {
        free(m);
        return ck_error_set(CK_ERR_LIMIT, "alarm manager: max_alarms/queue_max above 10^6");
    }
    if (m->conf.host != NULL)
        ck_strlcpy(host, m->conf.host, sizeof(host));
    else if (gethostname(host, sizeof(host) - 1) != 0)
        ck_strlcpy(host, "unknown", sizeof(host));
    copy_clean(m->host, sizeof(m->host), host);
    m->conf.host = NULL; /* the caller's string may go away; m->host is the copy */
    m->recs = calloc(m->conf.max_alarms, sizeof(*m->recs));
    for (m->n_chains = 1; m->n_chains < m->conf.max_alarms; m->n_chains *= 2)
        ;
    m->chains = malloc(m->n_chains * sizeof(*m->chains));
    if (m->recs == NULL || m->chains == NULL) {
        free(m->recs);
        free(m->chains);
        free(m);
        return ck_error_set(CK_ERR_NOMEM, "alarm records");
    }
    for (size_t i = 0; i < m->n_chains; i++)
        m->chains[i] = NONE;
    pthread_mutex_init(&m->lock, NULL);
    {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&m->cond, &ca);
        pthread_condattr_destroy(&ca);
    }
    *out = m;
    return 0;
}

int
ck_alarm_mgr_add_sink(struct ck_alarm_mgr *m, const struct ck_alarm_sink *sink)
{
    struct sinkq *sq;
    int rc = 0;

    if (m == NULL || sink == NULL || sink->deliver == NULL) {
        rc = ck_error_set(CK_ERR_INVAL, "alarm sink: missing deliver function");
        goto out;
    }
    if (m->started) {
        rc = ck_error_set(CK_ERR_INVAL, "alarm sink added after start");
        goto out;
    }
    if (m->n_sinks == MAX_SINKS) {
        rc = ck_error_set(CK_ERR_LIMIT, "more than %d alarm sinks", MAX_SINKS);
        goto out;
    }
    sq = &m->sinks[m->n_sinks];
    memset(sq, 0, sizeof(*sq));
    sq->q = calloc(m->conf.queue_max, sizeof(*sq->q));
    if (sq->q == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "alarm sink queue");
        goto out;
    }
    sq->s = *sink;
    if (sq->s.name == NULL)
        sq->s.name = "sink";
    m->n_sinks++;
    return 0;
out:
    if (sink != NULL && sink->free != NULL)
        sink->free(sink->arg);
    return rc;
}

/* Under the lock. */
static void
enqueue_all(struct ck_alarm_mgr *m, const struct ck_alarm *a, int64_t now)
{
    for (size_t i = 0; i < m->n_sinks; i++) {
        struct sinkq *sq = &m->sinks[i];
        struct qent *e;

        if (sq->len == m->conf.queue_max) {
            /* The newest state of an alarm matters more than an old one: drop the oldest. */
            sq->head = (sq->head + 1) % m->conf.queue_max;
            sq->len--;
            sq->st.dropped_full++;
        }
        e = &sq->q[(sq->head + sq->len) % m->conf.queue_max];
        e->a = *a;
        e->seq = ++sq->next_seq;
        e->attempts = 0;
        e->next_ms = now;
        sq->len++;
    }
    pthread_cond_signal(&m->cond);
}

/* FNV-1a over the code and the subject: the table is bounded, so a collision costs a longer
 * chain, never memory. */
static uint64_t
rec_hash(enum ck_alarm_code code, const char *subject)
{
    uint64_t h = 0xcbf29ce484222325ull;

    h = (h ^ (uint64_t)code) * 0x100000001b3ull;
    for (const unsigned char *p = (const unsigned char *)subject; *p != '\0'; p++)
        h = (h ^ *p) * 0x100000001b3ull;
    return h;
}

static struct rec *
find_rec(struct ck_alarm_mgr *m, enum ck_alarm_code code, const char *subject, uint64_t h)
{
    for (size_t i = m->chains[h & (m->n_chains - 1)]; i != NONE; i = m->recs[i].next) {
        struct rec *r = &m->recs[i];
        if (r->hash == h && r->a.code == code && strcmp(r->a.subject, subject) == 0)
            return r;
    }
    return NULL;
}

static void
unlink_rec(struct ck_alarm_mgr *m, size_t idx)
{
    size_t *link = &m->chains[m->recs[idx].hash & (m->n_chains - 1)];

    while (*link != NONE && *link != idx)
        link = &m->recs[*link].next;
    if (*link == idx)
        *link = m->recs[idx].next;
}

/* A free record, else the least recently seen one (cleared ones first), cleared and chained
 * under h. */
static struct rec *
take_rec(struct ck_alarm_mgr *m, uint64_t h)
{
    size_t victim = NONE;
    struct rec *r;

    for (size_t i = 0; i < m->conf.max_alarms; i++) {
        const struct rec *c = &m->recs[i], *v = victim != NONE ? &m->recs[victim] : NULL;
        if (!c->used) {
            victim = i;
            break;
        }
        if (v == NULL || (c->a.cleared && !v->a.cleared) ||
            (c->a.cleared == v->a.cleared && c->a.last_seen_ms < v->a.last_seen_ms))
            victim = i;
    }
    r = &m->recs[victim];
    if (r->used) {
        unlink_rec(m, victim);
        m->st.evicted++;
    }
    memset(r, 0, sizeof(*r));
    r->used = true;
    r->hash = h;
    r->next = m->chains[h & (m->n_chains - 1)];
    m->chains[h & (m->n_chains - 1)] = victim;
    return r;
}

int
ck_alarm_raise(struct ck_alarm_mgr *m, enum ck_alarm_code code, enum ck_alarm_severity sev,
               const char *subject, const char *cause_fmt, ...)
{
    char subj[CK_ALARM_SUBJECT_MAX], raw[CK_ALARM_CAUSE_MAX], cause[CK_ALARM_CAUSE_MAX];
    struct rec *r;
    uint64_t h;
    int64_t now;
    va_list ap;

    if (m == NULL || (unsigned)code >= CK_ALARM_CODE_COUNT ||
        (unsigned)sev >= CK_ALARM_SEVERITY_COUNT || subject == NULL || subject[0] == '\0')
        return ck_error_set(CK_ERR_INVAL, "alarm: bad code, severity or subject");
    copy_clean(subj, sizeof(subj), subject);
    va_start(ap, cause_fmt);
    vsnprintf(raw, sizeof(raw), cause_fmt, ap);
    va_end(ap);
    copy_clean(cause, sizeof(cause), raw);
    h = rec_hash(code, subj);

    pthread_mutex_lock(&m->lock);
    now = now_ms(m);
    m->st.raised++;
    r = find_rec(m, code, subj, h);
    if (r != NULL && !r->a.cleared) {
        r->a.count++;
        r->a.last_seen_ms = now;
        r->a.severity = sev;
        ck_strlcpy(r->a.cause, cause, sizeof(r->a.cause));
        if (now - r->delivered_ms < m->conf.window_ms) {
            r->pending = true;
            m->st.suppressed++;
        } else {
            r->pending = false;
            r->delivered_ms = now;
            enqueue_all(m, &r->a, now);
        }
        goto out;
    }
    if (r == NULL) {
        r = take_rec(m, h);
        r->a.code = code;
        ck_strlcpy(r->a.subject, subj, sizeof(r->a.subject));
        ck_strlcpy(r->a.host, m->host, sizeof(r->a.host));
    }
    /* New, or raised again after a clear: a state change, delivered now. */
    r->a.severity = sev;
    r->a.cleared = false;
    r->a.count = 1;
    r->a.first_seen_ms = r->a.last_seen_ms = now;
    ck_strlcpy(r->a.cause, cause, sizeof(r->a.cause));
    r->pending = false;
    r->delivered_ms = now;
    enqueue_all(m, &r->a, now);
out:
    pthread_mutex_unlock(&m->lock);
    return 0;
}

int
ck_alarm_clear(struct ck_alarm_mgr *m, enum ck_alarm_code code, const char *subject,
               const char *cause_fmt, ...)
{
    char subj[CK_ALARM_SUBJECT_MAX], raw[CK_ALARM_CAUSE_MAX];
    struct rec *r;
    int64_t now;
    va_list ap;
    int rc = 0;

    if (m == NULL || (unsigned)code >= CK_ALARM_CODE_COUNT || subject == NULL)
        return ck_error_set(CK_ERR_INVAL, "alarm: bad code or subject");
    copy_clean(subj, sizeof(subj), subject);
    va_start(ap, cause_fmt);
    vsnprintf(raw, sizeof(raw), cause_fmt, ap);
    va_end(ap);

    pthread_mutex_lock(&m->lock);
    r = find_rec(m, code, subj, rec_hash(code, subj));
    if (r == NULL || r->a.cleared) {
        rc = ck_error_set(CK_ERR_NOTFOUND, "alarm %s for %s is not active",
                          ck_alarm_code_name(code), subj);
        goto out;
    }
    now = now_ms(m);
    r->a.cleared = true;
    r->a.last_seen_ms = now;
    copy_clean(r->a.cause, sizeof(r->a.cause), raw);
    r->pending = false;
    r->delivered_ms = now;
    enqueue_all(m, &r->a, now);
out:
    pthread_mutex_unlock(&m->lock);
    return rc;
}

int
ck_alarm_get(struct ck_alarm_mgr *m, enum ck_alarm_code code, const char *subject,
             struct ck_alarm *out)
{
    char subj[CK_ALARM_SUBJECT_MAX];
    struct rec *r;
    int rc = 0;

    copy_clean(subj, sizeof(subj), subject);
    pthread_mutex_lock(&m->lock);
    r = find_rec(m, code, subj, rec_hash(code, subj));
    if (r == NULL)
        rc = ck_error_set(CK_ERR_NOTFOUND, "no alarm %s for %s", ck_alarm_code_name(code), subj);
    else
        *out = r->a;
    pthread_mutex_unlock(&m->lock);
    return rc;
}

void
ck_alarm_mgr_stats(struct ck_alarm_mgr *m, struct ck_alarm_stats *out)
{
    pthread_mutex_lock(&m->lock);
    *out = m->st;
    out->active = 0;
    for (size_t i = 0; i < m->conf.max_alarms; i++)
        if (m->recs[i].used && !m->recs[i].a.cleared)
            out->active++;
    pthread_mutex_unlock(&m->lock);
}

int
ck_alarm_sink_stats(struct ck_alarm_mgr *m, size_t i, struct ck_alarm_sink_stats *out)
{
    if (i >= m->n_sinks)
        return ck_error_set(CK_ERR_NOTFOUND, "no alarm sink %zu", i);
    pthread_mutex_lock(&m->lock);
    *out = m->sinks[i].st;
    out->queued = m->sinks[i].len;
    pthread_mutex_unlock(&m->lock);
    return 0;
}

void
ck_alarm_mgr_kick(struct ck_alarm_mgr *m)
{
    pthread_mutex_lock(&m->lock);
    pthread_cond_signal(&m->cond);
    pthread_mutex_unlock(&m->lock);
}

static int64_t
backoff_ms(const struct ck_alarm_mgr *m, unsigned attempts)
{
    int64_t d = m->conf.retry_base_ms;

    for (unsigned i = 1; i < attempts && d < m->conf.retry_max_ms; i++)
        d *= 2;
    return d < m->conf.retry_max_ms ? d : m->conf.retry_max_ms;
}

/* Under the lock: windows that ended with raises folded in get their aggregated update. */
static void
flush_windows(struct ck_alarm_mgr *m, int64_t now)
{
    for (size_t i = 0; i < m->conf.max_alarms; i++) {
        struct rec *r = &m->recs[i];
        if (r->used && r->pending && now - r->delivered_ms >= m->conf.window_ms) {
            r->pending = false;
            r->delivered_ms = now;
            enqueue_all(m, &r->a, now);
        }
    }
}

/* Under the lock, which it drops while the sink runs: one attempt at the head of sink i if it is
 * due (or stopping). True if an attempt was made. */
static bool
attempt_one(struct ck_alarm_mgr *m, size_t i, int64_t now, int64_t budget_ms)
{
    struct sinkq *sq = &m->sinks[i];
    struct qent e;
    int rc;

    if (sq->len == 0 || (!m->stopping && sq->q[sq->head].next_ms > now))
        return false;
    e = sq->q[sq->head];
    pthread_mutex_unlock(&m->lock);
    rc = sq->s.deliver(sq->s.arg, &e.a, budget_ms);
    pthread_mutex_lock(&m->lock);
    if (sq->len == 0 || sq->q[sq->head].seq != e.seq)
        return true; /* dropped while it was being delivered */
    if (rc == 0) {
        sq->st.delivered++;
    } else {
        struct qent *h = &sq->q[sq->head];
        sq->st.failed_attempts++;
        h->attempts++;
        if (h->attempts < m->conf.max_attempts) {
            h->next_ms = now_ms(m) + backoff_ms(m, h->attempts);
            return true;
        }
        sq->st.dropped_attempts++;
    }
    sq->head = (sq->head + 1) % m->conf.queue_max;
    sq->len--;
    return true;
}

static void *
run(void *arg)
{
    struct ck_alarm_mgr *m = arg;
    int64_t deadline = -1;

    pthread_mutex_lock(&m->lock);
    for (;;) {
        int64_t now = now_ms(m), wait = m->conf.poll_ms, budget = 0;
        bool worked = false, any = false;
        struct timespec ts;

        if (m->stopping) {
            if (deadline < 0)
                deadline = ck_monotonic_ms() + m->conf.shutdown_ms;
            budget = deadline - ck_monotonic_ms();
            if (budget <= 0)
                break;
        } else {
            flush_windows(m, now);
        }
        for (size_t i = 0; i < m->n_sinks; i++) {
            if (attempt_one(m, i, now, budget))
                worked = true;
            if (m->sinks[i].len > 0) {
                int64_t d = m->sinks[i].q[m->sinks[i].head].next_ms - now;
                any = true;
                if (d < wait)
                    wait = d;
            }
        }
        if (m->stopping && !any)
            break;
        if (worked || m->stopping)
            continue;
        for (size_t i = 0; i < m->conf.max_alarms; i++) {
            const struct rec *r = &m->recs[i];
            if (r->used && r->pending && r->delivered_ms + m->conf.window_ms - now < wait)
                wait = r->delivered_ms + m->conf.window_ms - now;
        }
        if (wait < 1)
            wait = 1;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += wait / 1000;
        ts.tv_nsec += (long)(wait % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&m->cond, &m->lock, &ts);
    }
    for (size_t i = 0; i < m->n_sinks; i++) {
        m->sinks[i].st.dropped_shutdown += m->sinks[i].len;
        m->sinks[i].len = 0;
    }
    pthread_mutex_unlock(&m->lock);
    return NULL;
}

int
ck_alarm_mgr_start(struct ck_alarm_mgr *m)
{
    int err;

    if (m->started)
        return ck_error_set(CK_ERR_INVAL, "alarm manager already started");
    err = pthread_create(&m->thread, NULL, run, m);
    if (err != 0)
        return ck_error_set(CK_ERR_IO, "alarm thread: %s", strerror(err));
    m->started = true;
    return 0;
}

void
ck_alarm_mgr_free(struct ck_alarm_mgr *m)
{
    if (m == NULL)
        return;
    if (m->started) {
        pthread_mutex_lock(&m->lock);
        m->stopping = true;
        pthread_cond_signal(&m->cond);
        pthread_mutex_unlock(&m->lock);
        pthread_join(m->thread, NULL);
    }
    for (size_t i = 0; i < m->n_sinks; i++) {
        if (m->sinks[i].s.free != NULL)
            m->sinks[i].s.free(m->sinks[i].s.arg);
        free(m->sinks[i].q);
    }
    pthread_cond_destroy(&m->cond);
    pthread_mutex_destroy(&m->lock);
    free(m->recs);
    free(m->chains);
    free(m);
}

/* ---- the log sink ---------------------------------------------------------------------- */

static int
log_deliver(void *arg, const struct ck_alarm *a, int64_t budget_ms)
{
    ck_log(a->cleared ? LOG_NOTICE : ck_alarm_severity_syslog(a->severity),
           "alarm %s %s subject=%s host=%s count=%llu%s: %s", ck_alarm_code_name(a->code),
           ck_alarm_severity_name(a->severity), a->subject, a->host,
           (unsigned long long)a->count, a->cleared ? " cleared" : "", a->cause);
    return 0;
}

void
ck_alarm_sink_log(struct ck_alarm_sink *out)
{
    memset(out, 0, sizeof(*out));
    out->name = "syslog";
    out->deliver = log_deliver;
}

/* ---- the callback (table) sink --------------------------------------------------------- */

struct cb_sink {
    int (*fn)(void *arg, const struct ck_alarm *a);
    void *arg;
    void (*arg_free)(void *arg);
};

static int
cb_deliver(void *arg, const struct ck_alarm *a, int64_t budget_ms)
{
    struct cb_sink *c = arg;
    return c->fn(c->arg, a);
}

static void
cb_free(void *arg)
{
    struct cb_sink *c = arg;

    if (c == NULL)
        return;
    if (c->arg_free != NULL)
        c->arg_free(c->arg);
    free(c);
}

void
ck_alarm_sink_callback(struct ck_alarm_sink *out, const char *name,
                       int (*fn)(void *arg, const struct ck_alarm *a), void *arg,
                       void (*arg_free)(void *arg))
{
    struct cb_sink *c = calloc(1, sizeof(*c));

    memset(out, 0, sizeof(*out));
    out->name = name != NULL ? name : "table";
    if (c == NULL) {
        /* ck_alarm_mgr_add_sink refuses a sink without deliver and frees arg through free. */
        if (arg_free != NULL)
            arg_free(arg);
        return;
    }
    c->fn = fn;
    c->arg = arg;
    c->arg_free = arg_free;
    out->deliver = fn != NULL ? cb_deliver : NULL;
    out->free = cb_free;
    out->arg = c;
}
