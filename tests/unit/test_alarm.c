/* lib/alarm: deduplication and rate limiting per code+subject, the per-sink queue bound, retries
 * with backoff on an injected clock (against a local webhook receiver that checks the HMAC and
 * refuses the first deliveries), the log sink, concurrent raises and the shutdown bound. */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cablekey/alarm.h"
#include "cablekey/error.h"
#include "cablekey/log.h"
#include "cablekey/util.h"
#include "ck_test.h"

#define T0 1700000000000LL
#define WINDOW 60000

static _Atomic int64_t fake_now = T0;

static int64_t
fake_clock(void *arg)
{
    return atomic_load(&fake_now);
}

static void
sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- a collecting sink ---------------------------------------------------------------- */

struct collector {
    pthread_mutex_t lock;
    struct ck_alarm got[64];
    size_t n;       /* delivered (successful calls) */
    size_t calls;   /* every call */
    bool fail;      /* every call fails */
    int delay_ms;   /* each call takes this long (bounded by the budget) */
};

static int
collect(void *arg, const struct ck_alarm *a)
{
    struct collector *c = arg;
    int delay;
    bool fail;

    pthread_mutex_lock(&c->lock);
    c->calls++;
    delay = c->delay_ms;
    fail = c->fail;
    pthread_mutex_unlock(&c->lock);
    if (delay > 0)
        sleep_ms(delay);
    if (fail)
        return ck_error_set(CK_ERR_IO, "collector refuses");
    pthread_mutex_lock(&c->lock);
    if (c->n < 64)
        c->got[c->n] = *a;
    c->n++;
    pthread_mutex_unlock(&c->lock);
    return 0;
}

static size_t
collected(struct collector *c)
{
    size_t n;
    pthread_mutex_lock(&c->lock);
    n = c->n;
    pthread_mutex_unlock(&c->lock);
    return n;
}

/* Waits (real time, at most 5 s) until the collector holds n. */
static bool
wait_collected(struct ck_alarm_mgr *m, struct collector *c, size_t n)
{
    for (int i = 0; i < 500; i++) {
        if (collected(c) >= n)
            return collected(c) == n;
        if (m != NULL)
            ck_alarm_mgr_kick(m);
        sleep_ms(10);
    }
    return false;
}

static struct ck_alarm_mgr *
new_mgr(struct collector *c, struct ck_alarm_conf *conf)
{
    struct ck_alarm_mgr *m = NULL;
    struct ck_alarm_sink s;

    conf->host = "kdc1.example.net";
    conf->clock.now_ms = fake_clock;
    if (conf->poll_ms == 0)
        conf->poll_ms = 10;
    if (ck_alarm_mgr_new(conf, &m) != 0)
        abort();
    if (c != NULL) {
        pthread_mutex_init(&c->lock, NULL);
        ck_alarm_sink_callback(&s, "table", collect, c, NULL);
        if (ck_alarm_mgr_add_sink(m, &s) != 0)
            abort();
    }
    return m;
}

/* ---- names and arguments ----------------------------------------------------------------- */

static void
names_and_arguments(void)
{
    static const char *const codes[] = {"kvno-missing",  "clock-skew",    "db-unreachable",
                                        "cert-expiry",   "preauth-spike", "kdc-down",
                                        "key-unconfirmed"};
    struct ck_alarm_conf conf = {0};
    struct ck_alarm_mgr *m = new_mgr(NULL, &conf);
    struct ck_alarm a;
    struct ck_alarm_sink bad = {0};

    for (int i = 0; i < CK_ALARM_CODE_COUNT; i++) {
        CHECK(strcmp(ck_alarm_code_name((enum ck_alarm_code)i), codes[i]) == 0);
        CHECK_INT_EQ(ck_alarm_code_from_name(codes[i]), i);
    }
    CHECK_INT_EQ(ck_alarm_code_from_name("kvno"), CK_ERR_INVAL);
    CHECK(strcmp(ck_alarm_code_name(CK_ALARM_CODE_COUNT), "?") == 0);
    CHECK(strcmp(ck_alarm_severity_name(CK_ALARM_MAJOR), "major") == 0);
    CHECK_INT_EQ(ck_alarm_severity_syslog(CK_ALARM_CRITICAL), LOG_CRIT);
    CHECK_INT_EQ(ck_alarm_raise(m, CK_ALARM_CODE_COUNT, CK_ALARM_MAJOR, "x", "y"), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_alarm_raise(m, CK_ALARM_KDC_DOWN, (enum ck_alarm_severity)9, "x", "y"),
                 CK_ERR_INVAL);
    CHECK_INT_EQ(ck_alarm_raise(m, CK_ALARM_KDC_DOWN, CK_ALARM_MAJOR, "", "y"), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_alarm_raise(m, CK_ALARM_KDC_DOWN, CK_ALARM_MAJOR, NULL, "y"), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_alarm_mgr_add_sink(m, &bad), CK_ERR_INVAL);
    /* Hostile text: control characters, bytes above ASCII, overlong: cleaned and cut. */
    CHECK_OK(ck_alarm_raise(m, CK_ALARM_KVNO_MISSING, CK_ALARM_MAJOR, "a\nb\x1b\xff",
                            "cause\r\n%s", "x\x7f"));
    CHECK_OK(ck_alarm_get(m, CK_ALARM_KVNO_MISSING, "a\nb\x1b\xff", &a));
    CHECK(strcmp(a.subject, "a?b??") == 0);
    CHECK(strcmp(a.cause, "cause??x?") == 0);
    CHECK(strcmp(a.host, "kdc1.example.net") == 0);
    {
        char big[2000];
        memset(big, 'A', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        CHECK_OK(ck_alarm_raise(m, CK_ALARM_KDC_DOWN, CK_ALARM_MINOR, big, "%s", big));
        CHECK_OK(ck_alarm_get(m, CK_ALARM_KDC_DOWN, big, &a));
        CHECK_INT_EQ(strlen(a.subject), CK_ALARM_SUBJECT_MAX - 1);
        CHECK_INT_EQ(strlen(a.cause), CK_ALARM_CAUSE_MAX - 1);
    }
    CHECK_INT_EQ(ck_alarm_get(m, CK_ALARM_CLOCK_SKEW, "a", &a), CK_ERR_NOTFOUND);
    ck_alarm_mgr_free(m);
    ck_alarm_mgr_free(NULL);
}

/* ---- dedup and rate limit ---------------------------------------------------------------- */

static void
dedup_and_rate_limit(void)
{
    static struct collector c;
    struct ck_alarm_conf conf = {.window_ms = WINDOW};
    struct ck_alarm_mgr *m;
    struct ck_alarm_stats st;
    struct ck_alarm_sink_stats ss;
    struct ck_alarm a;
    const char *svc = "HTTP/cms1.example.net@EXAMPLE.NET";

    memset(&c, 0, sizeof(c));
    atomic_store(&fake_now, T0);
    m = new_mgr(&c, &conf);
    for (int i = 0; i < 5; i++)
        CHECK_OK(ck_alarm_raise(m, CK_ALARM_KVNO_MISSING, CK_ALARM_MAJOR, svc,
                                "kvno %d requested, keytab holds 3..4", i + 1));
    atomic_store(&fake_now, T0 + WINDOW - 1);
    CHECK_OK(ck_alarm_raise(m, CK_ALARM_KVNO_MISSING, CK_ALARM_MAJOR, svc, "kvno 2 requested"));
    ck_alarm_mgr_stats(m, &st);
    CHECK_INT_EQ(st.raised, 6);
    CHECK_INT_EQ(st.suppressed, 5);
    CHECK_INT_EQ(st.active, 1);
    CHECK_OK(ck_alarm_sink_stats(m, 0, &ss));
    CHECK_INT_EQ(ss.queued, 1); /* one alarm per code+subject per window */
    CHECK_INT_EQ(ck_alarm_sink_stats(m, 1, &ss), CK_ERR_NOTFOUND);
    CHECK_OK(ck_alarm_get(m, CK_ALARM_KVNO_MISSING, svc, &a));
    CHECK_INT_EQ(a.count, 6);
    CHECK_INT_EQ(a.first_seen_ms, T0);
    CHECK_INT_EQ(a.last_seen_ms, T0 + WINDOW - 1);
    CHECK(strcmp(a.cause, "kvno 2 requested") == 0);

    CHECK_OK(ck_alarm_mgr_start(m));
    CHECK_INT_EQ(ck_alarm_mgr_start(m), CK_ERR_INVAL);
    CHECK(wait_collected(m, &c, 1));
    CHECK_INT_EQ(c.got[0].count, 1); /* the copy queued at the first raise */
    sleep_ms(100);
    CHECK_INT_EQ(collected(&c), 1); /* the window has not ended */
    /* The window ends with raises folded in: one update with the aggregated count. */
    atomic_store(&fake_now, T0 + WINDOW);
    CHECK(wait_collected(m, &c, 2));
    CHECK_INT_EQ(c.got[1].count, 6);
    CHECK_INT_EQ(c.got[1].first_seen_ms, T0);
    CHECK(!c.got[1].cleared);
    /* Inside the new window: folded again; a window with nothing folded sends nothing. */
    atomic_store(&fake_now, T0 + WINDOW + 1);
    CHECK_OK(ck_alarm_raise(m, CK_ALARM_KVNO_MISSING, CK_ALARM_MAJOR, svc, "again"));
    sleep_ms(100);
    CHECK_INT_EQ(collected(&c), 2);
    atomic_store(&fake_now, T0 + 2 * WINDOW);
    CHECK(wait_collected(m, &c, 3));
    CHECK_INT_EQ(c.got[2].count, 7);
    atomic_store(&fake_now, T0 + 5 * WINDOW);
    ck_alarm_mgr_kick(m);
    sleep_ms(100);
    CHECK_INT_EQ(collected(&c), 3);

    /* Another subject is another alarm, delivered at once. */
    CHECK_OK(ck_alarm_raise(m, CK_ALARM_KVNO_MISSING, CK_ALARM_MAJOR, "host/x@EXAMPLE.NET", "k"));
    CHECK(wait_collected(m, &c, 4));
    CHECK(strcmp(c.got[3].subject, "host/x@EXAMPLE.NET") == 0);
    /* A clear is delivered at once, once. */
    CHECK_OK(ck_alarm_clear(m, CK_ALARM_KVNO_MISSING, svc, "keytab updated to kvno %d", 5));
    CHECK(wait_collected(m, &c, 5));
    CHECK(c.got[4].cleared);
    CHECK(strcmp(c.got[4].cause, "keytab updated to kvno 5") == 0);
    CHECK_INT_EQ(ck_alarm_clear(m, CK_ALARM_KVNO_MISSING, svc, "x"), CK_ERR_NOTFOUND);
    CHECK_INT_EQ(ck_alarm_clear(m, CK_ALARM_CLOCK_SKEW, svc, "x"), CK_ERR_NOTFOUND);
    /* Raised again after the clear: a new alarm, at once, counted from 1. */
    atomic_store(&fake_now, T0 + 5 * WINDOW + 7);
    CHECK_OK(ck_alarm_raise(m, CK_ALARM_KVNO_MISSING, CK_ALARM_CRITICAL, svc, "back"));
    CHECK(wait_collected(m, &c, 6));
    CHECK(!c.got[5].cleared);
    CHECK_INT_EQ(c.got[5].count, 1);
    CHECK_INT_EQ(c.got[5].first_seen_ms, T0 + 5 * WINDOW + 7);
    CHECK_INT_EQ(c.got[5].severity, CK_ALARM_CRITICAL);
    ck_alarm_mgr_stats(m, &st);
    CHECK_INT_EQ(st.active, 2);
    ck_alarm_mgr_free(m);
}

static void
eviction(void)
{
    struct ck_alarm_conf conf = {.max_alarms = 2};
    struct ck_alarm_mgr *m;
    struct ck_alarm_stats st;
    struct ck_alarm a;

    atomic_store(&fake_now, T0);
    m = new_mgr(NULL, &conf);
    CHECK_OK(ck_alarm_raise(m, CK_ALARM_KDC_DOWN, CK_ALARM_MAJOR, "kdc1", "no answer"));
    atomic_store(&fake_now, T0 + 1);
    CHECK_OK(ck_alarm_raise(m, CK_ALARM_KDC_DOWN, CK_ALARM_MAJOR, "kdc2", "no answer"));
    atomic_store(&fake_now, T0 + 2);
    CHECK_OK(ck_alarm_raise(m, CK_ALARM_KDC_DOWN, CK_ALARM_MAJOR, "kdc1", "still"));
    CHECK_OK(ck_alarm_raise(m, CK_ALARM_KDC_DOWN, CK_ALARM_MAJOR, "kdc3", "no answer"));
    ck_alarm_mgr_stats(m, &st);
    CHECK_INT_EQ(st.evicted, 1);
    CHECK_INT_EQ(ck_alarm_get(m, CK_ALARM_KDC_DOWN, "kdc2", &a), CK_ERR_NOTFOUND);
    CHECK_OK(ck_alarm_get(m, CK_ALARM_KDC_DOWN, "kdc1", &a));
    CHECK_OK(ck_alarm_get(m, CK_ALARM_KDC_DOWN, "kdc3", &a));
    ck_alarm_mgr_free(m);

    /* Many subjects through a small table: the hash chains stay consistent under eviction. */
    conf = (struct ck_alarm_conf){.max_alarms = 64};
    m = new_mgr(NULL, &conf);
    for (int i = 0; i < 500; i++) {
        char subj[32];
        snprintf(subj, sizeof(subj), "svc/%d@R", i);
        atomic_store(&fake_now, T0 + i);
        CHECK_OK(ck_alarm_raise(m, (enum ck_alarm_code)(i % CK_ALARM_CODE_COUNT),
                                CK_ALARM_MINOR, subj, "c"));
    }
    ck_alarm_mgr_stats(m, &st);
    CHECK_INT_EQ(st.evicted, 500 - 64);
    CHECK_INT_EQ(st.active, 64);
    for (int i = 0; i < 500; i++) {
        char subj[32];
        snprintf(subj, sizeof(subj), "svc/%d@R", i);
        CHECK_INT_EQ(ck_alarm_get(m, (enum ck_alarm_code)(i % CK_ALARM_CODE_COUNT), subj, &a),
                     i < 500 - 64 ? CK_ERR_NOTFOUND : 0);
    }
    CHECK_OK(ck_alarm_raise(m, (enum ck_alarm_code)(499 % CK_ALARM_CODE_COUNT), CK_ALARM_MINOR,
                            "svc/499@R", "again"));
    CHECK_OK(ck_alarm_get(m, (enum ck_alarm_code)(499 % CK_ALARM_CODE_COUNT), "svc/499@R", &a));
    CHECK_INT_EQ(a.count, 2);
    ck_alarm_mgr_free(m);
}

/* ---- queue bound ------------------------------------------------------------------------- */

static void
queue_bound(void)
{
    static struct collector c;
    struct ck_alarm_conf conf = {.queue_max = 4};
    struct ck_alarm_mgr *m;
    struct ck_alarm_sink_stats ss;
    char subj[32];

    memset(&c, 0, sizeof(c));
    atomic_store(&fake_now, T0);
    m = new_mgr(&c, &conf);
    for (int i = 0; i < 10; i++) {
        snprintf(subj, sizeof(subj), "svc%d", i);
        CHECK_OK(ck_alarm_raise(m, CK_ALARM_KEY_UNCONFIRMED, CK_ALARM_MAJOR, subj,
                                "no confirmation of kvno 7"));
    }
    CHECK_OK(ck_alarm_sink_stats(m, 0, &ss));
    CHECK_INT_EQ(ss.queued, 4);
    CHECK_INT_EQ(ss.dropped_full, 6);
    CHECK_OK(ck_alarm_mgr_start(m));
    CHECK(wait_collected(m, &c, 4));
    /* The oldest were dropped: the newest four arrive, in order. */
    for (int i = 0; i < 4; i++) {
        snprintf(subj, sizeof(subj), "svc%d", i + 6);
        CHECK(strcmp(c.got[i].subject, subj) == 0);
    }
    CHECK_OK(ck_alarm_sink_stats(m, 0, &ss));
    CHECK_INT_EQ(ss.delivered, 4);
    CHECK_INT_EQ(ss.queued, 0);
    ck_alarm_mgr_free(m);
}

/* ---- concurrent raises ------------------------------------------------------------------- */

struct raiser {
    struct ck_alarm_mgr *m;
    int id;
};

static void *
raise_many(void *arg)
{
    struct raiser *r = arg;
    char subj[32];

    for (int i = 0; i < 1000; i++) {
        snprintf(subj, sizeof(subj), "principal%d", (r->id + i) % 4);
        if (ck_alarm_raise(r->m, CK_ALARM_PREAUTH_SPIKE, CK_ALARM_MINOR, subj,
                           "preauth failures above threshold") != 0)
            abort();
    }
    return NULL;
}

static void
concurrent_raises(void)
{
    static struct collector c;
    struct ck_alarm_conf conf = {0};
    struct ck_alarm_mgr *m;
    struct ck_alarm_stats st;
    struct ck_alarm a;
    pthread_t t[8];
    struct raiser r[8];
    uint64_t total = 0;
    char subj[32];

    memset(&c, 0, sizeof(c));
    atomic_store(&fake_now, T0);
    m = new_mgr(&c, &conf);
    CHECK_OK(ck_alarm_mgr_start(m));
    for (int i = 0; i < 8; i++) {
        r[i] = (struct raiser){m, i};
        if (pthread_create(&t[i], NULL, raise_many, &r[i]) != 0)
            abort();
    }
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    ck_alarm_mgr_stats(m, &st);
    CHECK_INT_EQ(st.raised, 8000);
    CHECK_INT_EQ(st.suppressed, 8000 - 4);
    for (int i = 0; i < 4; i++) {
        snprintf(subj, sizeof(subj), "principal%d", i);
        CHECK_OK(ck_alarm_get(m, CK_ALARM_PREAUTH_SPIKE, subj, &a));
        total += a.count;
    }
    CHECK_INT_EQ(total, 8000);
    CHECK(wait_collected(m, &c, 4));
    ck_alarm_mgr_free(m);
}

/* ---- retries and shutdown ---------------------------------------------------------------- */

static void
retry_schedule(void)
{
    static struct collector c;
    struct ck_alarm_conf conf = {.retry_base_ms = 100, .retry_max_ms = 250, .max_attempts = 4};
    struct ck_alarm_mgr *m;
    struct ck_alarm_sink_stats ss;

    memset(&c, 0, sizeof(c));
    c.fail = true;
    atomic_store(&fake_now, T0);
    m = new_mgr(&c, &conf);
    CHECK_OK(ck_alarm_mgr_start(m));
    CHECK_OK(ck_alarm_raise(m, CK_ALARM_DB_UNREACHABLE, CK_ALARM_CRITICAL, "pg1:5432",
                            "connection refused"));
    /* Attempts at T0, T0+100, T0+300 (200), T0+550 (250: the cap), then given up. */
    static const int64_t at[] = {0, 100, 300, 550};
    for (int i = 0; i < 4; i++) {
        if (i > 0) { /* one ms before the attempt is due: nothing */
            atomic_store(&fake_now, T0 + at[i] - 1);
            ck_alarm_mgr_kick(m);
            sleep_ms(60);
            pthread_mutex_lock(&c.lock);
            CHECK_INT_EQ(c.calls, (size_t)i);
            pthread_mutex_unlock(&c.lock);
        }
        atomic_store(&fake_now, T0 + at[i]);
        for (int k = 0; k < 100; k++) {
            size_t calls;
            pthread_mutex_lock(&c.lock);
            calls = c.calls;
            pthread_mutex_unlock(&c.lock);
            if (calls >= (size_t)i + 1)
                break;
            ck_alarm_mgr_kick(m);
            sleep_ms(10);
        }
        pthread_mutex_lock(&c.lock);
        CHECK_INT_EQ(c.calls, (size_t)i + 1);
        pthread_mutex_unlock(&c.lock);
    }
    sleep_ms(50);
    CHECK_OK(ck_alarm_sink_stats(m, 0, &ss));
    CHECK_INT_EQ(ss.failed_attempts, 4);
    CHECK_INT_EQ(ss.dropped_attempts, 1);
    CHECK_INT_EQ(ss.queued, 0);
    CHECK_INT_EQ(ss.delivered, 0);
    ck_alarm_mgr_free(m);
}

static void
shutdown_flush(void)
{
    static struct collector c;
    struct ck_alarm_conf conf = {0};
    struct ck_alarm_mgr *m;
    char subj[32];

    memset(&c, 0, sizeof(c));
    atomic_store(&fake_now, T0);
    m = new_mgr(&c, &conf);
    CHECK_OK(ck_alarm_mgr_start(m));
    for (int i = 0; i < 20; i++) {
        snprintf(subj, sizeof(subj), "cert%d.pem", i);
        CHECK_OK(ck_alarm_raise(m, CK_ALARM_CERT_EXPIRY, CK_ALARM_WARNING, subj,
                                "expires in 10 days"));
    }
    ck_alarm_mgr_free(m);
    CHECK_INT_EQ(c.n, 20); /* everything queued is delivered before free returns */
}

struct slow_sink {
    _Atomic int calls, done;
};

/* Takes 100 ms per alarm, or the budget it is given when that is shorter. */
static int
slow_deliver(void *arg, const struct ck_alarm *a, int64_t budget_ms)
{
    struct slow_sink *s = arg;

    atomic_fetch_add(&s->calls, 1);
    sleep_ms(budget_ms > 0 && budget_ms < 100 ? (int)budget_ms : 100);
    atomic_fetch_add(&s->done, 1);
    return 0;
}

static void
shutdown_bound(void)
{
    static struct collector failing;
    static struct slow_sink slow;
    struct ck_alarm_conf conf = {.shutdown_ms = 250, .retry_base_ms = 1000000,
                                 .max_attempts = 3};
    struct ck_alarm_mgr *m;
    struct ck_alarm_sink s = {"slow", slow_deliver, NULL, &slow};
    int64_t t;
    char subj[32];

    memset(&failing, 0, sizeof(failing));
    memset(&slow, 0, sizeof(slow));
    failing.fail = true;
    atomic_store(&fake_now, T0);
    m = new_mgr(&failing, &conf);
    CHECK_OK(ck_alarm_mgr_add_sink(m, &s));
    for (int i = 0; i < 20; i++) {
        snprintf(subj, sizeof(subj), "kdc%d", i);
        CHECK_OK(ck_alarm_raise(m, CK_ALARM_KDC_DOWN, CK_ALARM_MAJOR, subj, "no answer"));
    }
    CHECK_OK(ck_alarm_mgr_start(m));
    sleep_ms(20);
    t = ck_monotonic_ms();
    ck_alarm_mgr_free(m);
    t = ck_monotonic_ms() - t;
    /* 250 ms of flush plus the one 100 ms delivery under way when it began, and scheduling. */
    CHECK(t < 250 + 100 + 150);
    CHECK(t >= 200);
    CHECK(atomic_load(&slow.done) < 20);
    CHECK(atomic_load(&slow.done) >= 2);
    /* The failing sink: retried without backoff while flushing, at most max_attempts each. */
    CHECK(failing.calls <= 20 * 3);
    CHECK(failing.calls >= 3);
    CHECK_INT_EQ(failing.n, 0);
}

/* ---- the log sink ------------------------------------------------------------------------ */

static void
log_sink(void)
{
    char dir[] = "/tmp/ck_alarm_log_XXXXXX", path[128], buf[4096];
    struct ck_alarm_conf conf = {0};
    struct ck_alarm_mgr *m;
    struct ck_alarm_sink s;
    size_t len = 0;
    int fd;

    if (mkdtemp(dir) == NULL)
        abort();
    snprintf(path, sizeof(path), "%s/log", dir);
    CHECK_OK(ck_log_open("test_alarm", CK_LOG_FILE, path, LOG_INFO));
    atomic_store(&fake_now, T0);
    m = new_mgr(NULL, &conf);
    ck_alarm_sink_log(&s);
    CHECK_OK(ck_alarm_mgr_add_sink(m, &s));
    CHECK_OK(ck_alarm_mgr_start(m));
    CHECK_OK(ck_alarm_raise(m, CK_ALARM_CLOCK_SKEW, CK_ALARM_MINOR, "10.0.0.7",
                            "%d requests outside the skew of 300 s", 17));
    CHECK_OK(ck_alarm_clear(m, CK_ALARM_CLOCK_SKEW, "10.0.0.7", "skew below threshold"));
    ck_alarm_mgr_free(m);
    ck_log_open("test_alarm", CK_LOG_STDERR, NULL, LOG_INFO);
    fd = open(path, O_RDONLY);
    CHECK(fd >= 0);
    if (fd >= 0) {
        CHECK_OK(ck_fd_read_all(fd, buf, sizeof(buf) - 1, &len));
        close(fd);
    }
    buf[len] = '\0';
    CHECK(strstr(buf, "alarm clock-skew minor subject=10.0.0.7 host=kdc1.example.net count=1: "
                      "17 requests outside the skew of 300 s\n") != NULL);
    CHECK(strstr(buf, "alarm clock-skew minor subject=10.0.0.7 host=kdc1.example.net count=1 "
                      "cleared: skew below threshold\n") != NULL);
    unlink(path);
    rmdir(dir);
}

/* ---- the webhook ------------------------------------------------------------------------- */

#define SECRET "0123456789abcdef-webhook-secret"

struct receiver {
    _Atomic int requests, good_sig, bad_sig;
    int fail_first;
    pthread_mutex_t lock;
    char last_code[64], last_subject[256];
};

struct upload {
    char buf[8192];
    size_t len;
    bool overflow;
};

static enum MHD_Result
reply(struct MHD_Connection *c, unsigned status)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* The receiver recomputes the MAC with OpenSSL's one-shot EVP_Q_mac, not the library's code. */
static enum MHD_Result
receive(void *cls, struct MHD_Connection *c, const char *url, const char *method,
        const char *version, const char *data, size_t *data_size, void **state)
{
    struct receiver *rv = cls;
    struct upload *u = *state;
    const char *ts, *sig;
    unsigned char mac[32];
    size_t mac_len = 0;
    char hex[65], *msg;
    json_t *j;
    int n;

    if (u == NULL) {
        if ((u = calloc(1, sizeof(*u))) == NULL)
            return MHD_NO;
        *state = u;
        return MHD_YES;
    }
    if (*data_size > 0) {
        if (u->len + *data_size >= sizeof(u->buf))
            u->overflow = true;
        else {
            memcpy(u->buf + u->len, data, *data_size);
            u->len += *data_size;
        }
        *data_size = 0;
        return MHD_YES;
    }
    n = atomic_fetch_add(&rv->requests, 1) + 1;
    ts = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Cablekey-Timestamp");
    sig = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Cablekey-Signature");
    if (ts == NULL || sig == NULL || u->overflow || strcmp(method, "POST") != 0) {
        atomic_fetch_add(&rv->bad_sig, 1);
        return reply(c, 400);
    }
    msg = malloc(strlen(ts) + 1 + u->len + 1);
    if (msg == NULL)
        return MHD_NO;
    snprintf(msg, strlen(ts) + 2 + u->len, "%s.%.*s", ts, (int)u->len, u->buf);
    if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, SECRET, strlen(SECRET),
                  (unsigned char *)msg, strlen(msg), mac, sizeof(mac), &mac_len) == NULL)
        abort();
    free(msg);
    for (size_t i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    if (strncmp(sig, "sha256=", 7) != 0 || strlen(sig + 7) != 64 ||
        CRYPTO_memcmp(sig + 7, hex, 64) != 0) {
        atomic_fetch_add(&rv->bad_sig, 1);
        return reply(c, 401);
    }
    atomic_fetch_add(&rv->good_sig, 1);
    u->buf[u->len] = '\0';
    j = json_loads(u->buf, 0, NULL);
    pthread_mutex_lock(&rv->lock);
    if (j != NULL) {
        const char *code = json_string_value(json_object_get(j, "code"));
        const char *subject = json_string_value(json_object_get(j, "subject"));
        snprintf(rv->last_code, sizeof(rv->last_code), "%s", code != NULL ? code : "");
        snprintf(rv->last_subject, sizeof(rv->last_subject), "%s", subject ? subject : "");
        json_decref(j);
    }
    pthread_mutex_unlock(&rv->lock);
    return reply(c, n <= rv->fail_first ? 503 : 204);
}

static void
receive_done(void *cls, struct MHD_Connection *c, void **state, enum MHD_RequestTerminationCode t)
{
    free(*state);
    *state = NULL;
}

static int
write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    int rc;

    if (fd < 0)
        return -1;
    rc = ck_fd_write_all(fd, text, strlen(text));
    fchmod(fd, mode);
    close(fd);
    return rc;
}

static int
wait_requests(struct receiver *rv, struct ck_alarm_mgr *m, int n)
{
    for (int i = 0; i < 500 && atomic_load(&rv->requests) < n; i++) {
        ck_alarm_mgr_kick(m);
        sleep_ms(10);
    }
    return atomic_load(&rv->requests);
}

static void
webhook(void)
{
    static struct receiver rv;
    char dir[] = "/tmp/ck_alarm_hook_XXXXXX", secret[128], loose[128], shortf[128], url[128];
    struct ck_alarm_conf conf = {.retry_base_ms = 1000, .retry_max_ms = 60000, .max_attempts = 5};
    struct ck_alarm_webhook_conf wc = {0};
    struct ck_alarm_sink s;
    struct ck_alarm_sink_stats ss;
    struct ck_alarm_mgr *m = NULL;
    struct MHD_Daemon *d;
    const union MHD_DaemonInfo *info;
    int port;

    memset(&rv, 0, sizeof(rv));
    pthread_mutex_init(&rv.lock, NULL);
    rv.fail_first = 2;
    if (mkdtemp(dir) == NULL)
        abort();
    snprintf(secret, sizeof(secret), "%s/secret", dir);
    snprintf(loose, sizeof(loose), "%s/loose", dir);
    snprintf(shortf, sizeof(shortf), "%s/short", dir);
    CHECK_INT_EQ(write_file(secret, SECRET "\n", 0600), 0);
    CHECK_INT_EQ(write_file(loose, SECRET "\n", 0640), 0);
    CHECK_INT_EQ(write_file(shortf, "short\n", 0600), 0);
    d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL, NULL, receive,
                         &rv, MHD_OPTION_NOTIFY_COMPLETED, receive_done, NULL, MHD_OPTION_END);
    if (d == NULL)
        abort();
    info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    port = info->port;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", port);

    /* Configuration errors. */
    wc.url = url;
    wc.secret_file = loose;
    CHECK_INT_EQ(ck_alarm_sink_webhook(&wc, &s), CK_ERR_PERM);
    wc.secret_file = shortf;
    CHECK_INT_EQ(ck_alarm_sink_webhook(&wc, &s), CK_ERR_INVAL);
    wc.secret_file = "/nonexistent/secret";
    CHECK_INT_EQ(ck_alarm_sink_webhook(&wc, &s), CK_ERR_IO);
    wc.secret_file = secret;
    wc.url = "ftp://127.0.0.1/x";
    CHECK_INT_EQ(ck_alarm_sink_webhook(&wc, &s), CK_ERR_CONFIG);
    wc.url = url;

    /* The receiver's check can fail: a wrong signature is refused (and counted). */
    {
        CURL *cu = curl_easy_init();
        struct curl_slist *h = NULL;
        long status = 0;
        h = curl_slist_append(h, "X-Cablekey-Timestamp: 1");
        h = curl_slist_append(h, "X-Cablekey-Signature: sha256=00");
        curl_easy_setopt(cu, CURLOPT_URL, url);
        curl_easy_setopt(cu, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(cu, CURLOPT_POSTFIELDS, "{}");
        curl_easy_setopt(cu, CURLOPT_NOPROXY, "*");
        CHECK_INT_EQ(curl_easy_perform(cu), CURLE_OK);
        curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, &status);
        CHECK_INT_EQ(status, 401);
        curl_slist_free_all(h);
        curl_easy_cleanup(cu);
        CHECK_INT_EQ(atomic_load(&rv.bad_sig), 1);
        atomic_store(&rv.bad_sig, 0);
        atomic_store(&rv.requests, 0);
    }

    atomic_store(&fake_now, T0);
    m = new_mgr(NULL, &conf);
    CHECK_OK(ck_alarm_sink_webhook(&wc, &s));
    CHECK_OK(ck_alarm_mgr_add_sink(m, &s));
    CHECK_OK(ck_alarm_mgr_start(m));
    CHECK_OK(ck_alarm_raise(m, CK_ALARM_KEY_UNCONFIRMED, CK_ALARM_MAJOR,
                            "host/cms1.example.net@EXAMPLE.NET",
                            "kvno 8 distributed 2 h ago, never confirmed by cms1.example.net"));
    /* Attempt 1 at once (refused), attempt 2 after 1000 ms, attempt 3 after 2000 more, on the
     * injected clock: nothing happens in real time until the clock moves. */
    CHECK_INT_EQ(wait_requests(&rv, m, 1), 1);
    sleep_ms(150);
    CHECK_INT_EQ(atomic_load(&rv.requests), 1);
    atomic_store(&fake_now, T0 + 999);
    ck_alarm_mgr_kick(m);
    sleep_ms(150);
    CHECK_INT_EQ(atomic_load(&rv.requests), 1);
    atomic_store(&fake_now, T0 + 1000);
    CHECK_INT_EQ(wait_requests(&rv, m, 2), 2);
    atomic_store(&fake_now, T0 + 2999);
    ck_alarm_mgr_kick(m);
    sleep_ms(150);
    CHECK_INT_EQ(atomic_load(&rv.requests), 2);
    atomic_store(&fake_now, T0 + 3000);
    CHECK_INT_EQ(wait_requests(&rv, m, 3), 3);
    for (int i = 0; i < 100; i++) {
        CHECK_OK(ck_alarm_sink_stats(m, 0, &ss));
        if (ss.delivered == 1)
            break;
        sleep_ms(10);
    }
    CHECK_INT_EQ(ss.delivered, 1);
    CHECK_INT_EQ(ss.failed_attempts, 2);
    CHECK_INT_EQ(ss.queued, 0);
    CHECK_INT_EQ(atomic_load(&rv.good_sig), 3);
    CHECK_INT_EQ(atomic_load(&rv.bad_sig), 0);
    pthread_mutex_lock(&rv.lock);
    CHECK(strcmp(rv.last_code, "key-unconfirmed") == 0);
    CHECK(strcmp(rv.last_subject, "host/cms1.example.net@EXAMPLE.NET") == 0);
    pthread_mutex_unlock(&rv.lock);
    ck_alarm_mgr_free(m);

    /* The webhook's queue bound: five alarms queued before start into two places, the two
     * newest reach the receiver, three are counted as dropped. */
    {
        struct ck_alarm_conf c1 = {.queue_max = 2};
        char subj[16];
        m = new_mgr(NULL, &c1);
        CHECK_OK(ck_alarm_sink_webhook(&wc, &s));
        CHECK_OK(ck_alarm_mgr_add_sink(m, &s));
        for (int i = 0; i < 5; i++) {
            snprintf(subj, sizeof(subj), "q%d", i);
            CHECK_OK(ck_alarm_raise(m, CK_ALARM_CERT_EXPIRY, CK_ALARM_WARNING, subj, "soon"));
        }
        CHECK_OK(ck_alarm_sink_stats(m, 0, &ss));
        CHECK_INT_EQ(ss.dropped_full, 3);
        CHECK_OK(ck_alarm_mgr_start(m));
        CHECK_INT_EQ(wait_requests(&rv, m, 5), 5);
        sleep_ms(100);
        CHECK_INT_EQ(atomic_load(&rv.requests), 5);
        CHECK_INT_EQ(atomic_load(&rv.good_sig), 5);
        pthread_mutex_lock(&rv.lock);
        CHECK(strcmp(rv.last_subject, "q4") == 0);
        pthread_mutex_unlock(&rv.lock);
        ck_alarm_mgr_free(m);
    }

    /* A receiver that is gone: each attempt fails fast; shutdown stays within its bound. */
    MHD_stop_daemon(d);
    {
        struct ck_alarm_conf c2 = {.shutdown_ms = 300};
        int64_t t;
        m = new_mgr(NULL, &c2);
        CHECK_OK(ck_alarm_sink_webhook(&wc, &s));
        CHECK_OK(ck_alarm_mgr_add_sink(m, &s));
        CHECK_OK(ck_alarm_mgr_start(m));
        CHECK_OK(ck_alarm_raise(m, CK_ALARM_KDC_DOWN, CK_ALARM_MAJOR, "kdc2", "no answer"));
        for (int i = 0; i < 100; i++) {
            CHECK_OK(ck_alarm_sink_stats(m, 0, &ss));
            if (ss.failed_attempts > 0)
                break;
            sleep_ms(10);
        }
        CHECK(ss.failed_attempts > 0);
        t = ck_monotonic_ms();
        ck_alarm_mgr_free(m);
        CHECK(ck_monotonic_ms() - t < 300 + 200);
    }
    unlink(secret);
    unlink(loose);
    unlink(shortf);
    rmdir(dir);
}

static void
json_and_signature(void)
{
    struct ck_alarm a = {.code = CK_ALARM_CERT_EXPIRY, .severity = CK_ALARM_WARNING,
                         .first_seen_ms = T0, .last_seen_ms = T0 + 5, .count = 3};
    char *s, hex[65];
    unsigned char mac[32];
    size_t mac_len;
    char expect[65];
    json_t *j;

    ck_strlcpy(a.subject, "kdc.pem \"q\"", sizeof(a.subject));
    ck_strlcpy(a.host, "kdc1", sizeof(a.host));
    ck_strlcpy(a.cause, "expires 2027-01-01", sizeof(a.cause));
    s = ck_alarm_to_json(&a);
    CHECK(s != NULL);
    if (s == NULL)
        return;
    CHECK(strcmp(s, "{\"version\":1,\"code\":\"cert-expiry\",\"severity\":\"warning\","
                    "\"subject\":\"kdc.pem \\\"q\\\"\",\"host\":\"kdc1\",\"cause\":"
                    "\"expires 2027-01-01\",\"first_seen\":1700000000000,\"last_seen\":"
                    "1700000000005,\"count\":3,\"cleared\":false}") == 0);
    j = json_loads(s, 0, NULL);
    CHECK(j != NULL);
    json_decref(j);
    CHECK_OK(ck_alarm_webhook_sign((const uint8_t *)SECRET, strlen(SECRET), "1700000000", s,
                                   strlen(s), hex));
    {
        size_t n = strlen(s) + 12;
        char *msg = malloc(n);
        snprintf(msg, n, "1700000000.%s", s);
        EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, SECRET, strlen(SECRET),
                  (unsigned char *)msg, strlen(msg), mac, sizeof(mac), &mac_len);
        free(msg);
    }
    for (size_t i = 0; i < 32; i++)
        snprintf(expect + 2 * i, 3, "%02x", mac[i]);
    CHECK(strcmp(hex, expect) == 0);
    /* A known answer computed outside cablekey (python3 hmac.new(..., hashlib.sha256)). */
    CHECK_OK(ck_alarm_webhook_sign((const uint8_t *)SECRET, strlen(SECRET), "1700000000",
                                   "{\"a\":1}", 7, hex));
    CHECK(strcmp(hex, "52e90d1dd12a13a24573e24995f6e44f18bdf63a33560576f69ed7770bee5a3c") == 0);
    free(s);
}

CK_TEST_MAIN("alarm", CK_TEST_CASE(names_and_arguments), CK_TEST_CASE(dedup_and_rate_limit),
             CK_TEST_CASE(eviction), CK_TEST_CASE(queue_bound), CK_TEST_CASE(concurrent_raises),
             CK_TEST_CASE(retry_schedule), CK_TEST_CASE(shutdown_flush),
             CK_TEST_CASE(shutdown_bound), CK_TEST_CASE(log_sink), CK_TEST_CASE(webhook),
             CK_TEST_CASE(json_and_signature))
