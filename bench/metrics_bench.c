/* The cost of a metric update on the KDC hot path: ns per ck_metric_inc and per
 * ck_metric_observe, from 1 and from N threads at once (each thread on its own shard; a second
 * run with every thread on the same series shows that series sharing does not matter, the shards
 * do). Also one render of the registry. Times are each thread's CPU time (the machine is
 * shared), so contention shows as cache-line transfers, not as waiting for a core.
 *
 *   metrics_bench [ITERATIONS [THREADS]]     (default 10^7 per thread, 2 threads) */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cablekey/metrics.h"
#include "cablekey/util.h"

static const char *const types[] = {"as", "tgs", "kpasswd", NULL};
static const char *const results[] = {"ok", "error", "dropped", NULL};
static const struct ck_metric_label labels[] = {{"type", types}, {"result", results}};
static const double buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                 0.05, 0.1, 0.25, 0.5, 1};

struct job {
    struct ck_metric *m;
    int op; /* 0 inc, 1 observe */
    long n;
    size_t series;
    double ns;
};

/* Thread CPU time: on a shared machine, wall time would measure the other users. */
static double
cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static double
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void *
run(void *arg)
{
    struct job *j = arg;
    double t = cpu_ns();

    if (j->op == 0)
        for (long i = 0; i < j->n; i++)
            ck_metric_inc(j->m, j->series);
    else
        for (long i = 0; i < j->n; i++)
            ck_metric_observe(j->m, j->series, (double)(i & 1023) * 1e-5);
    j->ns = (cpu_ns() - t) / (double)j->n;
    return NULL;
}

static void
measure(const char *what, struct ck_metric *m, int op, long n, int threads, int same_series)
{
    pthread_t t[64];
    struct job j[64];
    double worst = 0;

    for (int i = 0; i < threads; i++) {
        j[i] = (struct job){m, op, n, same_series ? 0 : (size_t)i % ck_metric_n_series(m), 0};
        if (pthread_create(&t[i], NULL, run, &j[i]) != 0)
            exit(1);
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        if (j[i].ns > worst)
            worst = j[i].ns;
    }
    printf("%-10s threads=%-2d %-14s %6.2f ns/op CPU (slowest thread)\n", what, threads,
           same_series ? "same series" : "own series", worst);
}

int
main(int argc, char **argv)
{
    struct ck_metrics *r = NULL;
    struct ck_metric *c = NULL, *h = NULL;
    struct ck_metric_desc dc = {"ck_kdc_requests_total", "KDC requests", CK_METRIC_COUNTER,
                                labels, 2, NULL, 0};
    struct ck_metric_desc dh = {"ck_kdc_request_seconds", "KDC latency", CK_METRIC_HISTOGRAM,
                                labels, 1, buckets, sizeof(buckets) / sizeof(buckets[0])};
    long n = 10000000;
    int threads = 2;
    int64_t v;
    char *text;
    size_t len;
    double t;

    if (argc > 1 && ck_parse_int64(argv[1], 1000, 1000000000, &v) == 0)
        n = (long)v;
    if (argc > 2 && ck_parse_int64(argv[2], 1, 64, &v) == 0)
        threads = (int)v;
    if (ck_metrics_new(&r) != 0 || ck_metrics_register(r, &dc, &c) != 0 ||
        ck_metrics_register(r, &dh, &h) != 0)
        return 1;
    measure("inc", c, 0, n, 1, 1);
    measure("inc", c, 0, n, threads, 1);
    measure("inc", c, 0, n, threads, 0);
    measure("observe", h, 1, n, 1, 1);
    measure("observe", h, 1, n, threads, 1);
    t = now_ns();
    if (ck_metrics_render(r, &text, &len) != 0)
        return 1;
    printf("render     %zu bytes in %.1f us\n", len, (now_ns() - t) / 1e3);
    free(text);
    ck_metrics_free(r);
    return 0;
}
