/* Admission control for UDP: drop early, before decoding, what cannot be answered in time, and
 * share what can be answered fairly between sources (see the section in net.h).
 *
 * One engine per worker, used by that worker's thread only; the counters are atomics so that the
 * server can sum them from any thread. Times are nanoseconds on the caller's clock, so tests
 * drive it with a simulated one. */
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "cablekey/crypto.h"
#include "cablekey/error.h"
#include "cablekey/net.h"

/* Slots looked at for a source before the least recently seen of them is evicted: bounds the
 * work per datagram whatever the table holds. */
#define PROBE 8
/* A source may always hold this many tokens: MIT sends two requests back to back for one AS
 * exchange (the first gets PREAUTH_REQUIRED), and a client should not be refused its second. */
#define BURST_MIN 4.0
/* Weight of a new batch in the cost estimate: 1/8, so that a single slow batch (a preempted
 * worker on a shared machine) does not halve the estimated capacity. */
#define EWMA_DIV 8.0
#define MAX_SAMPLE_NS 10000000000.0  /* 10 s per answer: anything above is a clock oddity */

struct src {
    uint64_t hi, lo;             /* masked address; IPv4 as IPv4-mapped IPv6 */
    int64_t last_ns;             /* last datagram seen */
    int64_t refill_ns;           /* tokens are current as of this time */
    double tokens;
    uint64_t window_no;          /* window in which it was last counted as active */
    bool used;
};

struct ck_admission {
    int64_t window_ns, congest_ns;
    int prefix4, prefix6;
    bool fair;
    uint64_t seed;
    struct src *tab;
    size_t cap, used;
    double service_ns;           /* estimated wall time per answer; 0 until measured */
    int64_t win_start;
    uint64_t win_no;
    uint64_t active_cur, active_prev;
    bool have_win;
    /* Written by the owning thread only (load + store), read by anyone. */
    _Atomic uint64_t admitted, dropped_stale, dropped_share, evicted, service_est, sources;
};

static void
bump(_Atomic uint64_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

int
ck_admission_config_check(const struct ck_admission_config *cfg)
{
    if (cfg->window_ms < 0 || cfg->window_ms > CK_ADMISSION_MAX_WINDOW_MS)
        return ck_error_set(CK_ERR_CONFIG, "admission window of %d ms (1..%d)", cfg->window_ms,
                            CK_ADMISSION_MAX_WINDOW_MS);
    if (cfg->congest_ms < 0 || cfg->congest_ms > CK_ADMISSION_MAX_WINDOW_MS ||
        (cfg->congest_ms > 0 &&
         cfg->congest_ms > (cfg->window_ms > 0 ? cfg->window_ms : CK_ADMISSION_DEFAULT_WINDOW_MS)))
        return ck_error_set(CK_ERR_CONFIG, "admission congestion delay of %d ms (at most the "
                            "window)", cfg->congest_ms);
    if (cfg->prefix4 < 0 || cfg->prefix4 > 32)
        return ck_error_set(CK_ERR_CONFIG, "admission IPv4 source prefix /%d (1..32)",
                            cfg->prefix4);
    if (cfg->prefix6 < 0 || cfg->prefix6 > 128)
        return ck_error_set(CK_ERR_CONFIG, "admission IPv6 source prefix /%d (1..128)",
                            cfg->prefix6);
    if (cfg->max_sources != 0 &&
        (cfg->max_sources < 16 || cfg->max_sources > CK_ADMISSION_MAX_SOURCES))
        return ck_error_set(CK_ERR_CONFIG, "admission source table of %zu entries (16..%u)",
                            cfg->max_sources, CK_ADMISSION_MAX_SOURCES);
    return 0;
}

int
ck_admission_new(const struct ck_admission_config *cfg, uint64_t seed, struct ck_admission **out)
{
    struct ck_admission *a;
    int rc;

    *out = NULL;
    if ((rc = ck_admission_config_check(cfg)) != 0)
        return rc;
    if ((a = calloc(1, sizeof(*a))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "admission control");
    a->window_ns = (int64_t)(cfg->window_ms > 0 ? cfg->window_ms
                                                : CK_ADMISSION_DEFAULT_WINDOW_MS) * 1000000;
    a->congest_ns = cfg->congest_ms > 0 ? (int64_t)cfg->congest_ms * 1000000
                    : a->window_ns / 2 < CK_ADMISSION_DEFAULT_CONGEST_MS * 1000000LL
                        ? a->window_ns / 2
                        : CK_ADMISSION_DEFAULT_CONGEST_MS * 1000000LL;
    a->prefix4 = cfg->prefix4 > 0 ? cfg->prefix4 : 24;
    a->prefix6 = cfg->prefix6 > 0 ? cfg->prefix6 : 64;
    a->fair = !cfg->no_fairness;
    a->cap = cfg->max_sources > 0 ? cfg->max_sources : CK_ADMISSION_DEFAULT_SOURCES;
    /* The seed keeps a remote sender from choosing addresses that all land in one probe
     * window; it is not a secret that protects anything else. */
    if (seed == 0 && (rc = ck_random_bytes(&seed, sizeof(seed))) != 0)
        goto out;
    a->seed = seed | 1;
    if ((a->tab = calloc(a->cap, sizeof(*a->tab))) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "admission source table (%zu entries)", a->cap);
        goto out;
    }
    *out = a;
    a = NULL;
out:
    ck_admission_free(a);
    return rc;
}

void
ck_admission_free(struct ck_admission *a)
{
    if (a == NULL)
        return;
    free(a->tab);
    free(a);
}

/* bits leading bits of a 64-bit half kept (0..64). */
static uint64_t
mask64(uint64_t v, int bits)
{
    if (bits <= 0)
        return 0;
    if (bits >= 64)
        return v;
    return v & ~(UINT64_MAX >> bits);
}

static uint64_t
load_be64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* The source a datagram counts for: its address cut to the configured prefix. */
static void
source_key(const struct ck_admission *a, const struct sockaddr *sa, uint64_t *hi, uint64_t *lo)
{
    uint32_t v4;

    if (sa != NULL && sa->sa_family == AF_INET) {
        memcpy(&v4, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        goto ipv4;
    }
    if (sa != NULL && sa->sa_family == AF_INET6) {
        const uint8_t *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;

        if (IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)sa)->sin6_addr)) {
            memcpy(&v4, b + 12, 4);
            goto ipv4;
        }
        *hi = mask64(load_be64(b), a->prefix6);
        *lo = mask64(load_be64(b + 8), a->prefix6 - 64);
        return;
    }
    *hi = *lo = UINT64_MAX;  /* no IPv6 address has this prefix with an all-ones suffix */
    return;
ipv4:
    *hi = 0;
    *lo = 0xffff00000000u | mask64((uint64_t)ntohl(v4) << 32, a->prefix4) >> 32;
}

/* A mixing function (not a cryptographic one): with the random seed, sources spread over the
 * table; a collision only makes two sources share a probe window, never more work. */
static uint64_t
mix(uint64_t x, uint64_t seed)
{
    x ^= seed;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdu;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53u;
    x ^= x >> 33;
    return x;
}

static void
roll_window(struct ck_admission *a, int64_t now)
{
    if (!a->have_win || now < a->win_start) {
        a->have_win = true;
        a->win_start = now;
        return;
    }
    if (now - a->win_start < a->window_ns)
        return;
    /* A window without traffic in between leaves nothing active from before. */
    a->active_prev = now - a->win_start < 2 * a->window_ns ? a->active_cur : 0;
    a->active_cur = 0;
    a->win_no++;
    a->win_start = now;
    atomic_store_explicit(&a->sources, 0, memory_order_relaxed);
}

static struct src *
find_source(struct ck_admission *a, uint64_t hi, uint64_t lo, int64_t now, bool *fresh)
{
    size_t idx = (size_t)(mix(hi * 0x9e3779b97f4a7c15u + lo, a->seed) % a->cap);
    struct src *victim = NULL;

    *fresh = false;
    for (int i = 0; i < PROBE; i++) {
        struct src *e = &a->tab[(idx + (size_t)i) % a->cap];

        if (e->used && e->hi == hi && e->lo == lo)
            return e;
        if (!e->used) {
            if (victim == NULL || victim->used)
                victim = e;
        } else if (victim == NULL || (victim->used && e->last_ns < victim->last_ns)) {
            victim = e;
        }
    }
    if (victim->used) {
        /* Reusing an entry of a source seen within the last window loses its bucket. */
        if (now - victim->last_ns < a->window_ns)
            bump(&a->evicted);
    } else {
        a->used++;
    }
    memset(victim, 0, sizeof(*victim));
    victim->used = true;
    victim->hi = hi;
    victim->lo = lo;
    victim->refill_ns = now;
    victim->window_no = a->win_no - 1;  /* not yet counted in this window */
    *fresh = true;
    return victim;
}

enum ck_admission_verdict
ck_admission_check(struct ck_admission *a, const struct sockaddr *src, int64_t arrival_ns,
                   int64_t now_ns)
{
    int64_t sojourn = arrival_ns != 0 && arrival_ns < now_ns ? now_ns - arrival_ns : 0;
    /* The cost estimate counts for at most half the window: one slow sample (a worker that was
     * preempted, a handler that blocked) must not make fresh datagrams look late, and a datagram
     * that did not wait is always taken, which also keeps the estimate learning. */
    int64_t cost = (int64_t)a->service_ns < a->window_ns / 2 ? (int64_t)a->service_ns
                                                              : a->window_ns / 2;
    bool stale = sojourn > 0 && sojourn + cost > a->window_ns;

    roll_window(a, now_ns);
    if (a->fair) {
        uint64_t hi, lo, active;
        bool fresh;
        struct src *e;
        double burst, rate;

        source_key(a, src, &hi, &lo);
        e = find_source(a, hi, lo, now_ns, &fresh);
        if (fresh)
            e->tokens = BURST_MIN;  /* the full bucket once the capacity is known, below */
        if (e->window_no != a->win_no) {
            e->window_no = a->win_no;
            a->active_cur++;
            atomic_store_explicit(&a->sources, a->active_cur, memory_order_relaxed);
        }
        e->last_ns = now_ns;
        active = a->active_cur > a->active_prev ? a->active_cur : a->active_prev;
        if (active == 0)
            active = 1;
        /* The fair share: the worker's capacity split evenly over the active sources, with a
         * bucket of one window's worth of it. Before the first measurement nothing limits. */
        if (a->service_ns > 0) {
            rate = 1.0 / (a->service_ns * (double)active);
            burst = rate * (double)a->window_ns;
            if (burst < BURST_MIN)
                burst = BURST_MIN;
            if (fresh) {
                e->tokens = burst;
            } else if (now_ns > e->refill_ns) {
                e->tokens += rate * (double)(now_ns - e->refill_ns);
                if (e->tokens > burst)
                    e->tokens = burst;
            }
            e->refill_ns = now_ns > e->refill_ns ? now_ns : e->refill_ns;
            /* One source alone has the whole worker: there is nobody to be fair to. */
            if (sojourn > a->congest_ns && active > 1 && e->tokens < 1.0) {
                bump(&a->dropped_share);
                return CK_DROP_SHARE;
            }
        }
        if (!stale) {
            /* Spent also without congestion, so a heavy source meets congestion with an empty
             * bucket rather than a window's worth of credit. */
            e->tokens = e->tokens >= 1.0 ? e->tokens - 1.0 : 0.0;
        }
    }
    if (stale) {
        bump(&a->dropped_stale);
        return CK_DROP_STALE;
    }
    bump(&a->admitted);
    return CK_ADMIT;
}

void
ck_admission_served(struct ck_admission *a, unsigned n, int64_t elapsed_ns)
{
    double x;

    if (a == NULL || n == 0 || elapsed_ns <= 0)
        return;
    x = (double)elapsed_ns / (double)n;
    if (x > MAX_SAMPLE_NS)
        x = MAX_SAMPLE_NS;
    if (a->service_ns <= 0)
        a->service_ns = x;
    else
        a->service_ns += (x - a->service_ns) / EWMA_DIV;
    atomic_store_explicit(&a->service_est, (uint64_t)a->service_ns, memory_order_relaxed);
}

void
ck_admission_get_stats(const struct ck_admission *a, struct ck_admission_stats *st)
{
    memset(st, 0, sizeof(*st));
    if (a == NULL)
        return;
    st->admitted = atomic_load_explicit(&a->admitted, memory_order_relaxed);
    st->dropped_stale = atomic_load_explicit(&a->dropped_stale, memory_order_relaxed);
    st->dropped_share = atomic_load_explicit(&a->dropped_share, memory_order_relaxed);
    st->evicted = atomic_load_explicit(&a->evicted, memory_order_relaxed);
    st->service_ns = atomic_load_explicit(&a->service_est, memory_order_relaxed);
    st->sources = atomic_load_explicit(&a->sources, memory_order_relaxed);
}

size_t
ck_admission_table_size(const struct ck_admission *a)
{
    return a != NULL ? a->used : 0;
}
