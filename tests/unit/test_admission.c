/* UDP admission control (lib/net/admission.c): configuration limits, what is stale, sources cut
 * to their prefixes, a bounded source table under a million sources, fairness in a simulated
 * overload (a flooding source against light ones, with and without fair shares), and the hook in
 * the epoll server over loopback (datagrams that waited past the window are dropped before the
 * handler sees them, and reported). The engine runs on a simulated clock: nothing here depends on
 * how fast the machine is, except the server case, which only waits for "at least" conditions. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "admission.h"
#include "cablekey/metrics.h"
#include "cablekey/net.h"
#include "cablekey/profile.h"
#include "ck_test.h"
#include "config.h"

#define MS 1000000LL
#define SEC 1000000000LL

static struct sockaddr_in
v4(const char *a)
{
    struct sockaddr_in sin;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(40000);
    inet_pton(AF_INET, a, &sin.sin_addr);
    return sin;
}

static struct sockaddr_in6
v6(const char *a)
{
    struct sockaddr_in6 sin6;

    memset(&sin6, 0, sizeof(sin6));
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(40000);
    inet_pton(AF_INET6, a, &sin6.sin6_addr);
    return sin6;
}

static void
test_config_limits(void)
{
    struct ck_admission_config c;
    struct ck_admission *a = NULL;

    memset(&c, 0, sizeof(c));
    c.enabled = true;
    CHECK_OK(ck_admission_config_check(&c));
    c.window_ms = -1;
    CHECK_INT_EQ(ck_admission_config_check(&c), CK_ERR_CONFIG);
    c.window_ms = CK_ADMISSION_MAX_WINDOW_MS + 1;
    CHECK_INT_EQ(ck_admission_config_check(&c), CK_ERR_CONFIG);
    c.window_ms = 500;
    c.congest_ms = 501;  /* congestion is a queue shorter than the window */
    CHECK_INT_EQ(ck_admission_config_check(&c), CK_ERR_CONFIG);
    c.congest_ms = 500;
    CHECK_OK(ck_admission_config_check(&c));
    c.prefix4 = 33;
    CHECK_INT_EQ(ck_admission_config_check(&c), CK_ERR_CONFIG);
    c.prefix4 = 32;
    c.prefix6 = 129;
    CHECK_INT_EQ(ck_admission_config_check(&c), CK_ERR_CONFIG);
    c.prefix6 = 128;
    c.max_sources = 15;
    CHECK_INT_EQ(ck_admission_config_check(&c), CK_ERR_CONFIG);
    c.max_sources = CK_ADMISSION_MAX_SOURCES + 1;
    CHECK_INT_EQ(ck_admission_config_check(&c), CK_ERR_CONFIG);
    CHECK_INT_EQ(ck_admission_new(&c, 1, &a), CK_ERR_CONFIG);
    CHECK(a == NULL);
    c.max_sources = 16;
    CHECK_OK(ck_admission_new(&c, 0, &a));
    CHECK(a != NULL);
    ck_admission_free(a);
    ck_admission_free(NULL);
}

/* A datagram is dropped as stale when, with the measured cost of an answer, it could no longer
 * be answered within the window of its arrival; one that did not wait is always taken. */
static void
test_stale(void)
{
    struct ck_admission_config c;
    struct ck_admission *a = NULL;
    struct ck_admission_stats st;
    struct sockaddr_in s = v4("192.0.2.1");
    const struct sockaddr *sa = (const struct sockaddr *)&s;
    int64_t now = 1000 * SEC;

    memset(&c, 0, sizeof(c));
    c.enabled = true;
    c.window_ms = 1000;
    CHECK_OK(ck_admission_new(&c, 7, &a));
    if (a == NULL)
        return;
    /* No estimate yet: the window alone decides. */
    CHECK_INT_EQ(ck_admission_check(a, sa, now - 999 * MS, now), CK_ADMIT);
    CHECK_INT_EQ(ck_admission_check(a, sa, now - 1001 * MS, now), CK_DROP_STALE);
    /* 10 ms per answer: one that waited 995 ms would be answered after the window. */
    ck_admission_served(a, 10, 100 * MS);
    CHECK_INT_EQ(ck_admission_check(a, sa, now - 995 * MS, now), CK_DROP_STALE);
    CHECK_INT_EQ(ck_admission_check(a, sa, now - 980 * MS, now), CK_ADMIT);
    /* Arrival unknown (0) or in the future (a clock step): as if it had not waited. */
    CHECK_INT_EQ(ck_admission_check(a, sa, 0, now), CK_ADMIT);
    CHECK_INT_EQ(ck_admission_check(a, sa, now + 5 * SEC, now), CK_ADMIT);
    /* One absurd sample (a blocked handler) must not make fresh datagrams look late. */
    ck_admission_served(a, 1, 30 * SEC);
    CHECK_INT_EQ(ck_admission_check(a, sa, now, now), CK_ADMIT);
    CHECK_INT_EQ(ck_admission_check(a, sa, now - 400 * MS, now), CK_ADMIT);
    CHECK_INT_EQ(ck_admission_check(a, sa, now - 600 * MS, now), CK_DROP_STALE);
    ck_admission_get_stats(a, &st);
    CHECK_INT_EQ(st.admitted, 6);
    CHECK_INT_EQ(st.dropped_stale, 3);
    CHECK_INT_EQ(st.dropped_share, 0);
    CHECK(st.service_ns > 0);
    ck_admission_free(a);
}

/* Sources are addresses cut to /prefix4 or /prefix6; IPv4-mapped IPv6 is IPv4. */
static void
test_prefixes(void)
{
    struct ck_admission_config c;
    struct ck_admission *a = NULL;
    struct ck_admission_stats st;
    int64_t now = 5 * SEC;

    memset(&c, 0, sizeof(c));
    c.enabled = true;
    CHECK_OK(ck_admission_new(&c, 11, &a));
    if (a == NULL)
        return;
    {
        struct sockaddr_in a1 = v4("10.1.2.3"), a2 = v4("10.1.2.250"), a3 = v4("10.1.3.3");
        struct sockaddr_in6 m = v6("::ffff:10.1.2.77"), b1 = v6("2001:db8:0:1::1"),
                            b2 = v6("2001:db8:0:1:ffff:ffff:ffff:ffff"), b3 = v6("2001:db8:0:2::1");

        ck_admission_check(a, (struct sockaddr *)&a1, now, now);
        ck_admission_check(a, (struct sockaddr *)&a2, now, now);
        ck_admission_check(a, (struct sockaddr *)&m, now, now);
        ck_admission_get_stats(a, &st);
        CHECK_INT_EQ(st.sources, 1);
        ck_admission_check(a, (struct sockaddr *)&a3, now, now);
        ck_admission_get_stats(a, &st);
        CHECK_INT_EQ(st.sources, 2);
        ck_admission_check(a, (struct sockaddr *)&b1, now, now);
        ck_admission_check(a, (struct sockaddr *)&b2, now, now);
        ck_admission_get_stats(a, &st);
        CHECK_INT_EQ(st.sources, 3);
        ck_admission_check(a, (struct sockaddr *)&b3, now, now);
        ck_admission_check(a, NULL, now, now);
        ck_admission_get_stats(a, &st);
        CHECK_INT_EQ(st.sources, 5);
        CHECK_INT_EQ(ck_admission_table_size(a), 5);
    }
    ck_admission_free(a);

    /* /32: every address its own source. */
    c.prefix4 = 32;
    CHECK_OK(ck_admission_new(&c, 11, &a));
    if (a == NULL)
        return;
    {
        struct sockaddr_in a1 = v4("10.1.2.3"), a2 = v4("10.1.2.4");

        ck_admission_check(a, (struct sockaddr *)&a1, now, now);
        ck_admission_check(a, (struct sockaddr *)&a2, now, now);
        ck_admission_get_stats(a, &st);
        CHECK_INT_EQ(st.sources, 2);
    }
    ck_admission_free(a);
}

/* A million distinct sources through a 64-entry table: it never holds more than 64, every
 * datagram is still decided, and reusing entries of sources seen within the window is counted. */
static void
test_bounded_table(void)
{
    struct ck_admission_config c;
    struct ck_admission *a = NULL;
    struct ck_admission_stats st;
    size_t most = 0;
    int64_t now = 10 * SEC;

    memset(&c, 0, sizeof(c));
    c.enabled = true;
    c.max_sources = 64;
    CHECK_OK(ck_admission_new(&c, 3, &a));
    if (a == NULL)
        return;
    ck_admission_served(a, 1, 100000);
    for (uint32_t i = 0; i < 1000000; i++) {
        struct sockaddr_in6 s6;
        enum ck_admission_verdict v;

        memset(&s6, 0, sizeof(s6));
        s6.sin6_family = AF_INET6;
        s6.sin6_addr.s6_addr[0] = 0x20;
        s6.sin6_addr.s6_addr[1] = 0x01;
        memcpy(&s6.sin6_addr.s6_addr[4], &i, sizeof(i));  /* a /64 of its own */
        now += 1000;  /* 1 us apart: all within one window */
        v = ck_admission_check(a, (struct sockaddr *)&s6, now, now);
        CHECK(v == CK_ADMIT);
        if (ck_admission_table_size(a) > most)
            most = ck_admission_table_size(a);
    }
    CHECK_INT_EQ(most, 64);
    ck_admission_get_stats(a, &st);
    CHECK_INT_EQ(st.admitted, 1000000);
    CHECK(st.evicted >= 1000000 - 64);
    ck_admission_free(a);
}

/* ---- simulated overload ---------------------------------------------------------------------
 *
 * One worker answering in SVC ns per admitted datagram (DROP ns per dropped one), reading
 * batches of 32 from a FIFO kernel queue of QCAP datagrams that drops arrivals when full. One
 * flooding source sends FLOOD_X times what the worker can answer; LIGHT sources (each its own
 * /24) together send a fifth of it, evenly spaced. A light request succeeds when it is answered
 * within the window of its arrival (the client would have retried otherwise). */
#define SVC (1 * MS)
#define DROP 1000
#define QCAP 4096
#define FLOOD_X 20
#define LIGHT 10
#define SIM_NS (20 * SEC)
#define WINDOW_MS 1000  /* a light request answered later than this counts as failed */

struct sim_pkt {
    int src;        /* -1: the flooder */
    int64_t arrival;
};

struct sim_result {
    uint64_t light_sent, light_ok, flood_admitted, admitted, tail_drops;
    struct ck_admission_stats st;
};

static void
simulate(bool fair, struct sim_result *r)
{
    struct ck_admission_config c;
    struct ck_admission *a = NULL;
    struct sim_pkt *q = calloc(QCAP, sizeof(*q));
    size_t head = 0, len = 0;
    int64_t now = 0, flood_gap = SVC / FLOOD_X, light_gap = SVC * 5 * LIGHT;
    int64_t next_flood = 0, next_light[LIGHT];
    struct sockaddr_in flood = v4("198.51.100.7");

    memset(r, 0, sizeof(*r));
    memset(&c, 0, sizeof(c));
    c.enabled = true;
    c.window_ms = WINDOW_MS;
    c.no_fairness = !fair;
    if (q == NULL || ck_admission_new(&c, 99, &a) != 0) {
        CHECK(!"simulation set-up");
        free(q);
        return;
    }
    for (int i = 0; i < LIGHT; i++)
        next_light[i] = light_gap * i / LIGHT + 1;
    while (now < SIM_NS) {
        unsigned admitted = 0;
        int64_t start = now;

        /* Arrivals up to now. */
        for (;;) {
            int who = -2;
            int64_t t = next_flood;

            for (int i = 0; i < LIGHT; i++)
                if (next_light[i] < t) {
                    t = next_light[i];
                    who = i;
                }
            if (t > now)
                break;
            if (who == -2) {
                who = -1;
                next_flood += flood_gap;
            } else {
                next_light[who] += light_gap;
                r->light_sent++;
            }
            if (len == QCAP) {
                r->tail_drops++;
                continue;
            }
            q[(head + len) % QCAP] = (struct sim_pkt){who, t};
            len++;
        }
        if (len == 0) {
            now += 10000;  /* idle: wait for the next arrival */
            continue;
        }
        for (int k = 0; k < 32 && len > 0; k++) {
            struct sim_pkt p = q[head];
            struct sockaddr_in lsrc;
            char addr[32];
            const struct sockaddr *sa = (const struct sockaddr *)&flood;

            head = (head + 1) % QCAP;
            len--;
            if (p.src >= 0) {
                snprintf(addr, sizeof(addr), "203.0.%d.9", p.src);
                lsrc = v4(addr);
                sa = (const struct sockaddr *)&lsrc;
            }
            if (ck_admission_check(a, sa, p.arrival, now) == CK_ADMIT) {
                now += SVC;
                admitted++;
                r->admitted++;
                if (p.src < 0)
                    r->flood_admitted++;
                else if (now - p.arrival <= WINDOW_MS * MS)
                    r->light_ok++;
            } else {
                now += DROP;
            }
        }
        ck_admission_served(a, admitted, now - start);
    }
    ck_admission_get_stats(a, &r->st);
    ck_admission_free(a);
    free(q);
}

static void
test_fairness(void)
{
    struct sim_result fair, unfair;
    uint64_t capacity = SIM_NS / SVC;

    simulate(true, &fair);
    simulate(false, &unfair);
    printf("# fair: light %llu/%llu answered in time, flooder %llu, total %llu of %llu\n",
           (unsigned long long)fair.light_ok, (unsigned long long)fair.light_sent,
           (unsigned long long)fair.flood_admitted, (unsigned long long)fair.admitted,
           (unsigned long long)capacity);
    printf("# staleness only: light %llu/%llu answered in time, flooder %llu, total %llu\n",
           (unsigned long long)unfair.light_ok, (unsigned long long)unfair.light_sent,
           (unsigned long long)unfair.flood_admitted, (unsigned long long)unfair.admitted);
    /* The light sources are barely touched by the flood... */
    CHECK(fair.light_sent > 1000);
    CHECK(fair.light_ok * 100 >= fair.light_sent * 95);
    /* ...while without fair shares the flood crowds them out of the queue. */
    CHECK(unfair.light_ok * 100 <= unfair.light_sent * 50);
    /* It is the fair share that did it: drops for share with it, none without. */
    CHECK(fair.st.dropped_share > 0);
    CHECK_INT_EQ(unfair.st.dropped_share, 0);
    /* Fair shares do not idle the worker: the flooder gets what the light ones leave. */
    CHECK(fair.admitted * 100 >= capacity * 80);
    CHECK(fair.flood_admitted * 100 >= capacity * 50);
}

/* ---- the hook in the server ------------------------------------------------------------- */

static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool gate_open, gate_entered;
static atomic_int handled;
static atomic_ullong reported_stale;
static atomic_int reports;

/* Echoes; the first request ("hold") waits until the test opens the gate. */
static int
gate_handler(void *state, const struct ck_net_request *req, uint8_t *reply, size_t cap,
             size_t *reply_len)
{
    (void)state;
    if (req->len == 4 && memcmp(req->data, "hold", 4) == 0) {
        pthread_mutex_lock(&gate_lock);
        gate_entered = true;
        pthread_cond_broadcast(&gate_cond);
        while (!gate_open)
            pthread_cond_wait(&gate_cond, &gate_lock);
        pthread_mutex_unlock(&gate_lock);
    }
    atomic_fetch_add(&handled, 1);
    *reply_len = req->len < cap ? req->len : cap;
    memcpy(reply, req->data, *reply_len);
    return 0;
}

static void
on_report(void *arg, const struct ck_admission_stats *since, const struct ck_admission_stats *tot)
{
    (void)arg;
    (void)tot;
    atomic_fetch_add(&reported_stale, since->dropped_stale);
    atomic_fetch_add(&reports, 1);
}

static int64_t
realtime_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * SEC + ts.tv_nsec;
}

static bool
recv_echo(int fd, const char *want)
{
    struct pollfd pfd = {fd, POLLIN, 0};
    char buf[64];
    ssize_t n;

    if (poll(&pfd, 1, 5000) != 1)
        return false;
    n = recv(fd, buf, sizeof(buf), 0);
    return n == (ssize_t)strlen(want) && memcmp(buf, want, (size_t)n) == 0;
}

static void
test_server_hook(void)
{
    static const char *const listen[] = {"127.0.0.1:0"};
    struct ck_net_config cfg;
    struct ck_net_callbacks cb;
    struct ck_net_server *srv = NULL;
    struct ck_admission_stats st;
    struct sockaddr_storage ss;
    socklen_t sl;
    int fd = -1;
    int64_t sent;

    memset(&cfg, 0, sizeof(cfg));
    cfg.listen = listen;
    cfg.n_listen = 1;
    cfg.workers = 1;
    cfg.no_tcp = true;
    cfg.admission.enabled = true;
    cfg.admission.window_ms = 100;
    cfg.admission.report = on_report;
    memset(&cb, 0, sizeof(cb));
    cb.handler = gate_handler;
    CHECK_OK(ck_net_server_new(&cfg, &cb, &srv));
    if (srv == NULL)
        return;
    CHECK_OK(ck_net_server_start(srv));
    CHECK_OK(ck_net_server_addr(srv, 0, &ss, &sl));
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&ss, sl) == 0);

    /* A request answered normally. */
    CHECK(send(fd, "ping", 4, 0) == 4);
    CHECK(recv_echo(fd, "ping"));
    /* Block the worker, queue 20 requests behind it and let them age past the window. */
    CHECK(send(fd, "hold", 4, 0) == 4);
    pthread_mutex_lock(&gate_lock);
    while (!gate_entered)
        pthread_cond_wait(&gate_cond, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
    for (int i = 0; i < 20; i++)
        CHECK(send(fd, "late", 4, 0) == 4);
    sent = realtime_ns();
    while (realtime_ns() < sent + 2 * 100 * MS)
        usleep(20000);
    pthread_mutex_lock(&gate_lock);
    gate_open = true;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
    CHECK(recv_echo(fd, "hold"));
    /* The next fresh request is answered: nothing aged is, before or after it. */
    CHECK(send(fd, "next", 4, 0) == 4);
    CHECK(recv_echo(fd, "next"));
    /* The report comes after the batch's replies are sent: wait for it (bounded). */
    for (int i = 0; i < 500 && atomic_load(&reports) == 0; i++)
        usleep(10000);
    ck_net_server_admission_stats(srv, &st);
    CHECK_INT_EQ(st.dropped_stale, 20);
    CHECK_INT_EQ(st.dropped_share, 0);
    CHECK_INT_EQ(st.admitted, 3);
    CHECK_INT_EQ(atomic_load(&handled), 3);
    CHECK_INT_EQ(atomic_load(&reported_stale), 20);
    CHECK_INT_EQ(atomic_load(&reports), 1);
    ck_net_server_free(srv);
    if (fd >= 0)
        close(fd);
}

/* ---- the KDC's settings ------------------------------------------------------------------- */

static int
load_conf(const char *text, struct kdc_daemon_config *dc)
{
    struct ck_profile *p = NULL;
    int rc;

    kdc_daemon_config_init(dc);
    if ((rc = ck_profile_parse_string(text, "t.conf", &p)) != 0)
        return rc;
    rc = kdc_daemon_config_load(dc, p, NULL);
    ck_profile_free(p);
    return rc;
}

static void
test_kdc_config(void)
{
    struct kdc_daemon_config dc;
    struct ck_net_config n;
    char desc[256];

    /* Defaults: on, 8 s, /24 and /64, a larger queue. */
    CHECK_OK(load_conf("[kdcdefaults]\n kdc_workers = 1\n", &dc));
    memset(&n, 0, sizeof(n));
    kdc_admission_net_config(&dc, &n);
    CHECK(n.admission.enabled);
    CHECK_INT_EQ(n.admission.window_ms, 8000);
    CHECK_INT_EQ(n.admission.prefix4, 24);
    CHECK_INT_EQ(n.admission.prefix6, 64);
    CHECK_INT_EQ(n.udp_rcvbuf, KDC_DEFAULT_UDP_RCVBUF);
    CHECK(n.admission.report != NULL);
    CHECK_OK(ck_admission_config_check(&n.admission));
    kdc_daemon_config_free(&dc);

    CHECK_OK(load_conf("[kdcdefaults]\n kdc_admission_window_ms = 2500\n"
                       " kdc_admission_congest_ms = 1000\n"
                       " kdc_admission_prefix4 = 32\n kdc_admission_prefix6 = 56\n"
                       " kdc_admission_sources = 100\n kdc_udp_rcvbuf = 0\n", &dc));
    memset(&n, 0, sizeof(n));
    kdc_admission_net_config(&dc, &n);
    CHECK_INT_EQ(n.admission.window_ms, 2500);
    CHECK_INT_EQ(n.admission.congest_ms, 1000);
    CHECK_INT_EQ(n.admission.prefix4, 32);
    CHECK_INT_EQ(n.admission.prefix6, 56);
    CHECK_INT_EQ(n.admission.max_sources, 100);
    CHECK_INT_EQ(n.udp_rcvbuf, 0);
    kdc_admission_describe(&dc, desc, sizeof(desc));
    CHECK(strstr(desc, "window 2500 ms, congestion 1000 ms") != NULL &&
          strstr(desc, "/32 /56") != NULL);
    kdc_daemon_config_free(&dc);

    CHECK_OK(load_conf("[kdcdefaults]\n kdc_admission = false\n", &dc));
    memset(&n, 0, sizeof(n));
    kdc_admission_net_config(&dc, &n);
    CHECK(!n.admission.enabled);
    kdc_admission_describe(&dc, desc, sizeof(desc));
    CHECK(strncmp(desc, "off", 3) == 0);
    kdc_daemon_config_free(&dc);

    /* Out of range: a clear error naming the key. */
    CHECK_INT_EQ(load_conf("[kdcdefaults]\n kdc_admission_window_ms = 5\n", &dc), CK_ERR_CONFIG);
    CHECK(strstr(ck_error_context(), "kdc_admission_window_ms") != NULL);
    kdc_daemon_config_free(&dc);
    CHECK_INT_EQ(load_conf("[kdcdefaults]\n kdc_admission_prefix4 = 33\n", &dc), CK_ERR_CONFIG);
    kdc_daemon_config_free(&dc);
    CHECK_INT_EQ(load_conf("[kdcdefaults]\n kdc_admission_window_ms = 500\n"
                           " kdc_admission_congest_ms = 501\n", &dc), CK_ERR_CONFIG);
    CHECK(strstr(ck_error_context(), "kdc_admission_congest_ms") != NULL);
    kdc_daemon_config_free(&dc);
    CHECK_INT_EQ(load_conf("[kdcdefaults]\n kdc_admission_sources = 8\n", &dc), CK_ERR_CONFIG);
    kdc_daemon_config_free(&dc);
    CHECK_INT_EQ(load_conf("[kdcdefaults]\n kdc_admission = maybe\n", &dc), CK_ERR_CONFIG);
    kdc_daemon_config_free(&dc);
}

/* The drop counters reach /metrics through the collect call. */
static void
test_kdc_metrics(void)
{
    static const char *const listen[] = {"127.0.0.1:0"};
    struct ck_metrics *m = NULL;
    struct ck_net_config cfg;
    struct ck_net_callbacks cb;
    struct ck_net_server *srv = NULL;
    char *text = NULL;
    size_t len = 0;

    CHECK_OK(ck_metrics_new(&m));
    if (m == NULL)
        return;
    CHECK_OK(kdc_admission_metrics_register(m));
    memset(&cfg, 0, sizeof(cfg));
    cfg.listen = listen;
    cfg.n_listen = 1;
    cfg.workers = 1;
    cfg.no_tcp = true;
    cfg.admission.enabled = true;
    memset(&cb, 0, sizeof(cb));
    cb.handler = gate_handler;
    CHECK_OK(ck_net_server_new(&cfg, &cb, &srv));
    CHECK_OK(ck_net_server_start(srv));
    {
        struct sockaddr_storage ss;
        socklen_t sl;
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

        CHECK_OK(ck_net_server_addr(srv, 0, &ss, &sl));
        CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&ss, sl) == 0);
        CHECK(send(fd, "ping", 4, 0) == 4);
        CHECK(recv_echo(fd, "ping"));
        close(fd);
    }
    kdc_admission_metrics_collect(srv);
    CHECK_OK(ck_metrics_render(m, &text, &len));
    CHECK(text != NULL && strstr(text, "kdc_admission_dropped_total{reason=\"stale\"} 0") != NULL);
    CHECK(text != NULL && strstr(text, "kdc_admission_dropped_total{reason=\"share\"} 0") != NULL);
    CHECK(text != NULL && strstr(text, "kdc_admission_admitted_total 1") != NULL);
    free(text);
    ck_net_server_free(srv);
    ck_metrics_free(m);
}

CK_TEST_MAIN("admission", CK_TEST_CASE(test_config_limits), CK_TEST_CASE(test_stale),
             CK_TEST_CASE(test_prefixes), CK_TEST_CASE(test_bounded_table),
             CK_TEST_CASE(test_fairness), CK_TEST_CASE(test_server_hook),
             CK_TEST_CASE(test_kdc_config), CK_TEST_CASE(test_kdc_metrics))
