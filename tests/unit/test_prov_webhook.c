/* cablekey-prov's webhook deliveries (daemons/prov/webhook.c) on an in-memory outbox and an
 * injected clock, against a loopback HTTP receiver written here on plain sockets: the signature
 * a receiver recomputes (OpenSSL's one-shot HMAC, not the project's code), the event and
 * delivery headers, retries with the 1, 2, 4 ... 3600 s schedule while the receiver is down,
 * giving up after 72 hours, a slow target that delays no other delivery, the bounded stop, and
 * the configuration refusals. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "ck_test.h"
#include "cablekey/crypto.h"
#include "cablekey/prov.h"
#include "cablekey/store.h"
#include "cablekey/util.h"
#include "prov.h"
#include "webhook_int.h"

#define SECRET "billing-secret-0123456789"
#define T0 1700000000

static _Atomic int64_t fake_now;

static int64_t
clock_fn(void)
{
    return atomic_load(&fake_now);
}

static void
sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------------------------------- */
/* The outbox: rows and every attempt recorded on them. */

#define MAX_ROWS 32
#define MAX_HIST 128

struct row {
    ck_prov_delivery d;
    char body[512];
    int n_hist;
    int64_t at[MAX_HIST], next[MAX_HIST];
    int status[MAX_HIST];
};

static struct row rows[MAX_ROWS];
static size_t n_rows;
static int closed;
static pthread_mutex_t outbox_lock = PTHREAD_MUTEX_INITIALIZER;

static void
outbox_reset(void)
{
    pthread_mutex_lock(&outbox_lock);
    memset(rows, 0, sizeof(rows));
    n_rows = 0;
    closed = 0;
    pthread_mutex_unlock(&outbox_lock);
}

static void
outbox_add(int64_t id, const char *target, const char *event, int64_t created)
{
    struct row *r;

    pthread_mutex_lock(&outbox_lock);
    r = &rows[n_rows++];
    r->d.id = id;
    r->d.event_id = id;
    ck_strlcpy(r->d.target, target, sizeof(r->d.target));
    snprintf(r->body, sizeof(r->body),
             "{\"event\":\"%s\",\"id\":%lld,\"device\":{\"mac\":\"00:11:22:33:44:55\","
             "\"numbers\":[\"15551230001\"]}}", event, (long long)id);
    r->d.body = r->body;
    r->d.created = created;
    r->d.next_attempt = created;
    pthread_mutex_unlock(&outbox_lock);
}

static struct row *
row_of(int64_t id)
{
    for (size_t i = 0; i < n_rows; i++) {
        if (rows[i].d.id == id)
            return &rows[i];
    }
    return NULL;
}

static int
fake_due(void *arg, int64_t now, size_t limit, ck_prov_delivery_cb cb, void *cb_arg,
         size_t *n_out)
{
    size_t n = 0;

    pthread_mutex_lock(&outbox_lock);
    for (size_t i = 0; i < n_rows && n < limit; i++) {
        if (rows[i].d.delivered == 0 && rows[i].d.next_attempt <= now) {
            cb(&rows[i].d, cb_arg);
            n++;
        }
    }
    pthread_mutex_unlock(&outbox_lock);
    *n_out = n;
    return 0;
}

static int
fake_attempt(void *arg, int64_t id, int status, bool delivered, int64_t next, int64_t now)
{
    struct row *r;

    pthread_mutex_lock(&outbox_lock);
    r = row_of(id);
    if (r != NULL) {
        r->d.attempts++;
        r->d.last_status = status;
        r->d.next_attempt = next;
        if (delivered)
            r->d.delivered = now;
        if (r->n_hist < MAX_HIST) {
            r->at[r->n_hist] = now;
            r->next[r->n_hist] = next;
            r->status[r->n_hist] = status;
            r->n_hist++;
        }
    }
    pthread_mutex_unlock(&outbox_lock);
    return r != NULL ? 0 : CK_ERR_NOTFOUND;
}

static void
fake_close(void *arg)
{
    closed++;
}

static const struct prov_outbox_ops fake_ops = {fake_due, fake_attempt, fake_close, NULL};

static int
hist_of(int64_t id)
{
    int n;

    pthread_mutex_lock(&outbox_lock);
    n = row_of(id) != NULL ? row_of(id)->n_hist : -1;
    pthread_mutex_unlock(&outbox_lock);
    return n;
}

/* Waits (real time, bounded) until row id has more than n attempts recorded. */
static bool
wait_hist(struct prov_webhooks *w, int64_t id, int n, int ms)
{
    for (int i = 0; i < ms / 5; i++) {
        if (hist_of(id) > n)
            return true;
        if (i % 20 == 0)
            prov_webhooks_kick(w);
        sleep_ms(5);
    }
    return hist_of(id) > n;
}

/* ------------------------------------------------------------------------------------------- */
/* The receiver: accepts on 127.0.0.1, reads one request per connection (headers, then
 * Content-Length bytes), answers with the configured status and closes. */

struct request {
    char sig[160], event[80], delivery[32];
    char body[1024];
    size_t body_len;
};

static struct {
    int fd, port;
    pthread_t thread;
    atomic_bool stop;
    _Atomic int status;
    _Atomic int count;
    struct request last[8];
    pthread_mutex_t lock;
} rcv;

static void
header_value(const char *head, const char *name, char *out, size_t size)
{
    size_t nlen = strlen(name);

    out[0] = '\0';
    for (const char *p = head; p != NULL && *p; p = strstr(p, "\r\n")) {
        if (p[0] == '\r')
            p += 2;
        if (strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            const char *v = p + nlen + 1, *e;
            while (*v == ' ')
                v++;
            e = strstr(v, "\r\n");
            snprintf(out, size, "%.*s", (int)(e != NULL ? (size_t)(e - v) : strlen(v)), v);
            return;
        }
    }
}

static void
serve_one(int c)
{
    char buf[4096], *end = NULL, answer[128], clen[16];
    size_t len = 0, want = 0, head_len;
    int64_t deadline = ck_monotonic_ms() + 2000;
    struct request q;
    int n;

    memset(&q, 0, sizeof(q));
    while (len < sizeof(buf) - 1 && ck_monotonic_ms() < deadline) {
        struct pollfd p = {.fd = c, .events = POLLIN};
        ssize_t got;
        if (poll(&p, 1, 100) <= 0)
            continue;
        if ((got = read(c, buf + len, sizeof(buf) - 1 - len)) <= 0)
            break;
        len += (size_t)got;
        buf[len] = '\0';
        if (end == NULL && (end = strstr(buf, "\r\n\r\n")) != NULL) {
            header_value(buf, "Content-Length", clen, sizeof(clen));
            want = (size_t)strtoul(clen, NULL, 10);
        }
        if (end != NULL && len >= (size_t)(end + 4 - buf) + want)
            break;
    }
    if (end == NULL)
        return;
    head_len = (size_t)(end + 4 - buf);
    header_value(buf, "X-Cablekey-Signature", q.sig, sizeof(q.sig));
    header_value(buf, "X-Cablekey-Event", q.event, sizeof(q.event));
    header_value(buf, "X-Cablekey-Delivery", q.delivery, sizeof(q.delivery));
    q.body_len = len - head_len < sizeof(q.body) - 1 ? len - head_len : sizeof(q.body) - 1;
    memcpy(q.body, buf + head_len, q.body_len);
    pthread_mutex_lock(&rcv.lock);
    n = atomic_load(&rcv.count);
    rcv.last[n % 8] = q;
    atomic_store(&rcv.count, n + 1);
    pthread_mutex_unlock(&rcv.lock);
    n = snprintf(answer, sizeof(answer),
                 "HTTP/1.1 %d X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                 atomic_load(&rcv.status));
    if (write(c, answer, (size_t)n) < 0)
        return;
}

static void *
receiver_run(void *arg)
{
    while (!atomic_load(&rcv.stop)) {
        struct pollfd p = {.fd = rcv.fd, .events = POLLIN};
        int c;
        if (poll(&p, 1, 50) <= 0)
            continue;
        if ((c = accept(rcv.fd, NULL, NULL)) < 0)
            continue;
        serve_one(c);
        close(c);
    }
    return NULL;
}

/* A listening socket on an ephemeral loopback port. */
static int
listen_loopback(int *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) != 0)
        abort();
    *port = ntohs(a.sin_port);
    return fd;
}

static void
receiver_start(void)
{
    memset(&rcv, 0, sizeof(rcv));
    pthread_mutex_init(&rcv.lock, NULL);
    atomic_store(&rcv.status, 200);
    rcv.fd = listen_loopback(&rcv.port);
    if (pthread_create(&rcv.thread, NULL, receiver_run, NULL) != 0)
        abort();
}

static void
receiver_stop(void)
{
    atomic_store(&rcv.stop, true);
    pthread_join(rcv.thread, NULL);
    close(rcv.fd);
    pthread_mutex_destroy(&rcv.lock);
}

static struct request
received(int i)
{
    struct request q;

    pthread_mutex_lock(&rcv.lock);
    q = rcv.last[i % 8];
    pthread_mutex_unlock(&rcv.lock);
    return q;
}

/* ------------------------------------------------------------------------------------------- */
/* Configuration */

static char hook_dir[64], secret_path[128], url_ok[96], url_down[96], url_slow[96];
static struct prov_config cfg;

static void
write_file(const char *path, const char *text, mode_t mode)
{
    int fd;

    unlink(path);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0 || ck_fd_write_all(fd, text, strlen(text)) != 0 || fchmod(fd, mode) != 0)
        abort();
    close(fd);
}

static void
set_target(size_t i, const char *name, const char *url)
{
    cfg.webhooks[i].name = (char *)name;
    cfg.webhooks[i].url = (char *)url;
    cfg.webhooks[i].secret_file = secret_path;
    if (cfg.n_webhooks < i + 1)
        cfg.n_webhooks = i + 1;
}

static void
setup(void)
{
    int down_port, fd;

    if (hook_dir[0] != '\0')
        return;
    ck_strlcpy(hook_dir, "/tmp/ck-provhook-XXXXXX", sizeof(hook_dir));
    if (mkdtemp(hook_dir) == NULL)
        abort();
    snprintf(secret_path, sizeof(secret_path), "%s/secret", hook_dir);
    write_file(secret_path, SECRET "\n", 0600);
    /* Nothing listens on a port just released: connections are refused. */
    fd = listen_loopback(&down_port);
    close(fd);
    snprintf(url_down, sizeof(url_down), "http://127.0.0.1:%d/hook", down_port);
    /* Loopback deliveries never go through a proxy the environment may name. */
    unsetenv("http_proxy");
    unsetenv("HTTP_PROXY");
    unsetenv("all_proxy");
    unsetenv("ALL_PROXY");
}

/* ------------------------------------------------------------------------------------------- */

static void
backoff_schedule(void)
{
    static const int64_t want[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 3600,
                                   3600, 3600};
    for (int i = 0; i < (int)(sizeof(want) / sizeof(want[0])); i++)
        CHECK_INT_EQ(prov_webhook_backoff(i + 1), want[i]);
    CHECK_INT_EQ(prov_webhook_backoff(1000000), 3600);
    CHECK_INT_EQ(prov_webhook_backoff(0), 1);
}

/* What a receiver does with X-Cablekey-Signature (docs/prov-signer-webhooks.md). */
static bool
signature_valid(const struct request *q, const char *secret, int64_t *t_out)
{
    char msg[1200], hex[65];
    unsigned char md[32];
    size_t md_len = 0;
    const char *v1;
    long long t;
    int n;

    if (sscanf(q->sig, "t=%lld,", &t) != 1 || (v1 = strstr(q->sig, ",v1=")) == NULL ||
        strlen(v1 + 4) != 64)
        return false;
    n = snprintf(msg, sizeof(msg), "%lld.%.*s", t, (int)q->body_len, q->body);
    if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, secret, strlen(secret),
                  (unsigned char *)msg, (size_t)n, md, sizeof(md), &md_len) == NULL ||
        md_len != 32)
        return false;
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    *t_out = t;
    return CRYPTO_memcmp(hex, v1 + 4, 64) == 0;
}

static void
delivers_signed(void)
{
    struct prov_webhooks *w = NULL;
    struct request q;
    struct row r;
    int64_t t = 0;

    setup();
    outbox_reset();
    receiver_start();
    memset(&cfg, 0, sizeof(cfg));
    snprintf(url_ok, sizeof(url_ok), "http://127.0.0.1:%d/hooks/billing", rcv.port);
    set_target(0, "billing", url_ok);
    atomic_store(&fake_now, T0);
    outbox_add(1, "billing", "device.provisioned", T0);
    CHECK_OK(prov_webhooks_start_ops(&cfg, &fake_ops, clock_fn, 2000, &w));
    if (w == NULL)
        goto out;
    prov_webhooks_kick(w);
    CHECK(wait_hist(w, 1, 0, 5000));
    pthread_mutex_lock(&outbox_lock);
    r = *row_of(1);
    pthread_mutex_unlock(&outbox_lock);
    CHECK(r.d.delivered == T0);
    CHECK_INT_EQ(r.status[0], 200);
    CHECK_INT_EQ(atomic_load(&rcv.count), 1);
    q = received(0);
    CHECK(q.body_len == strlen(r.body) && memcmp(q.body, r.body, q.body_len) == 0);
    CHECK(strcmp(q.event, "device.provisioned") == 0);
    CHECK(strcmp(q.delivery, "1") == 0);
    CHECK(signature_valid(&q, SECRET, &t));
    CHECK_INT_EQ(t, T0);
    /* The check can fail: another secret, or a body changed by one byte. */
    CHECK(!signature_valid(&q, "another-secret-0123456789", &t));
    q.body[5] ^= 1;
    CHECK(!signature_valid(&q, SECRET, &t));
    /* Delivered once: more kicks send nothing. */
    prov_webhooks_kick(w);
    sleep_ms(200);
    CHECK_INT_EQ(atomic_load(&rcv.count), 1);

    /* A 503 is a failure: retried 1 s later (injected clock), then delivered. */
    atomic_store(&rcv.status, 503);
    outbox_add(2, "billing", "device.moved", T0);
    CHECK(wait_hist(w, 2, 0, 5000));
    CHECK_INT_EQ(row_of(2)->status[0], 503);
    CHECK_INT_EQ(row_of(2)->next[0], T0 + 1);
    CHECK(row_of(2)->d.delivered == 0);
    atomic_store(&rcv.status, 204);
    prov_webhooks_kick(w);
    sleep_ms(100);
    CHECK_INT_EQ(hist_of(2), 1);  /* not due until the clock moves */
    atomic_store(&fake_now, T0 + 1);
    CHECK(wait_hist(w, 2, 1, 5000));
    CHECK_INT_EQ(row_of(2)->status[1], 204);
    CHECK(row_of(2)->d.delivered == T0 + 1);
    q = received(atomic_load(&rcv.count) - 1);
    CHECK(strcmp(q.event, "device.moved") == 0);
    CHECK(signature_valid(&q, SECRET, &t) && t == T0 + 1);
    /* A body that names no event in the expected form goes out as "unknown". */
    outbox_add(3, "billing", "Bad Event\\r\\nX: y", T0 + 1);
    CHECK(wait_hist(w, 3, 0, 5000));
    q = received(atomic_load(&rcv.count) - 1);
    CHECK(strcmp(q.event, "unknown") == 0);
    prov_webhooks_stop(w);
    CHECK_INT_EQ(closed, 1);
out:
    receiver_stop();
}

static void
retries_and_gives_up(void)
{
    struct prov_webhooks *w = NULL;
    int64_t expect_next, created = T0 + 50;
    int n = 0;

    setup();
    outbox_reset();
    receiver_start();
    memset(&cfg, 0, sizeof(cfg));
    snprintf(url_ok, sizeof(url_ok), "http://127.0.0.1:%d/hooks/billing", rcv.port);
    set_target(0, "headend", url_down);
    set_target(1, "billing", url_ok);
    atomic_store(&fake_now, created);
    outbox_add(7, "headend", "device.provisioned", created);
    CHECK_OK(prov_webhooks_start_ops(&cfg, &fake_ops, clock_fn, 2000, &w));
    if (w == NULL)
        goto out;
    /* Each failed attempt schedules the next min(2^(n-1), 3600) s later; the test moves the
     * clock to exactly that time and kicks. */
    for (n = 0; n < MAX_HIST; n++) {
        int64_t at, next;
        if (!wait_hist(w, 7, n, 5000)) {
            fprintf(stderr, "  attempt %d never happened\n", n + 1);
            ck_test_case_failed = 1;
            break;
        }
        pthread_mutex_lock(&outbox_lock);
        at = row_of(7)->at[n];
        next = row_of(7)->next[n];
        CHECK_INT_EQ(row_of(7)->status[n], -1);
        pthread_mutex_unlock(&outbox_lock);
        CHECK_INT_EQ(at, atomic_load(&fake_now));
        if (next == PROV_WEBHOOK_GAVE_UP)
            break;
        expect_next = at + prov_webhook_backoff(n + 1);
        CHECK_INT_EQ(next, expect_next);
        if (n == 3) {
            /* Meanwhile, another target's delivery goes out at once. */
            outbox_add(8, "billing", "device.provisioned", at);
            CHECK(wait_hist(w, 8, 0, 5000));
            CHECK(row_of(8)->d.delivered == at);
        }
        atomic_store(&fake_now, next);
    }
    /* Given up on the first failure at or after 72 h, not before. */
    CHECK(n < MAX_HIST);
    CHECK(row_of(7)->at[n] - created >= PROV_WEBHOOK_GIVE_UP);
    CHECK(row_of(7)->at[n - 1] - created < PROV_WEBHOOK_GIVE_UP);
    CHECK_INT_EQ(n + 1, 12 + (PROV_WEBHOOK_GIVE_UP - 4095 + 3599) / 3600 + 1);
    CHECK(row_of(7)->d.delivered == 0);
    /* Kept as failed: never attempted again. */
    atomic_store(&fake_now, created + 30 * 86400);
    prov_webhooks_kick(w);
    sleep_ms(300);
    CHECK_INT_EQ(hist_of(7), n + 1);
    prov_webhooks_stop(w);
out:
    receiver_stop();
}

/* A target that accepts connections and never answers: its deliveries wait for the timeout in
 * their slots while another target's delivery goes through; stop is bounded meanwhile. */
static void
slow_target_blocks_nothing(void)
{
    struct prov_webhooks *w = NULL;
    int slow_port, slow_fd;
    int64_t t0, took;

    setup();
    outbox_reset();
    receiver_start();
    slow_fd = listen_loopback(&slow_port);
    memset(&cfg, 0, sizeof(cfg));
    snprintf(url_ok, sizeof(url_ok), "http://127.0.0.1:%d/hooks/billing", rcv.port);
    snprintf(url_slow, sizeof(url_slow), "http://127.0.0.1:%d/hook", slow_port);
    set_target(0, "slow", url_slow);
    set_target(1, "billing", url_ok);
    atomic_store(&fake_now, T0);
    for (int i = 0; i < 6; i++)
        outbox_add(20 + i, "slow", "device.provisioned", T0);
    outbox_add(30, "billing", "device.provisioned", T0);
    outbox_add(31, "gone", "device.provisioned", T0); /* no such target any more */
    CHECK_OK(prov_webhooks_start_ops(&cfg, &fake_ops, clock_fn, 10000, &w));
    if (w == NULL)
        goto out;
    t0 = ck_monotonic_ms();
    CHECK(wait_hist(w, 30, 0, 3000));
    CHECK(ck_monotonic_ms() - t0 < 3000);
    CHECK(row_of(30)->d.delivered == T0);
    CHECK(wait_hist(w, 31, 0, 3000));
    CHECK(row_of(31)->next[0] == PROV_WEBHOOK_GAVE_UP);
    for (int i = 0; i < 6; i++)
        CHECK_INT_EQ(hist_of(20 + i), 0);   /* still in flight or waiting for a slot */
    /* What an action does after its commit never waits, whatever the deliveries are doing. */
    t0 = ck_monotonic_ms();
    for (int i = 0; i < 1000; i++)
        prov_webhooks_kick(w);
    CHECK(ck_monotonic_ms() - t0 < 200);
    t0 = ck_monotonic_ms();
    prov_webhooks_stop(w);
    took = ck_monotonic_ms() - t0;
    CHECK(took < 2000);
    for (int i = 0; i < 6; i++) {
        CHECK_INT_EQ(hist_of(20 + i), 0);   /* abandoned, still due: sent after a restart */
        CHECK(row_of(20 + i)->d.delivered == 0);
    }
out:
    close(slow_fd);
    receiver_stop();
}

static void
start_failures(void)
{
    struct prov_webhooks *w = NULL;
    char loose[128], shortf[128];

    setup();
    snprintf(loose, sizeof(loose), "%s/loose", hook_dir);
    snprintf(shortf, sizeof(shortf), "%s/short", hook_dir);
    write_file(loose, SECRET "\n", 0644);
    write_file(shortf, "short\n", 0600);
    memset(&cfg, 0, sizeof(cfg));
    closed = 0;
    set_target(0, "billing", "http://127.0.0.1:9/x");
    cfg.webhooks[0].secret_file = loose;
    CHECK_INT_EQ(prov_webhooks_start_ops(&cfg, &fake_ops, clock_fn, 0, &w), CK_ERR_PERM);
    CHECK(strstr(ck_error_context(), "billing") != NULL);
    cfg.webhooks[0].secret_file = shortf;
    CHECK_INT_EQ(prov_webhooks_start_ops(&cfg, &fake_ops, clock_fn, 0, &w), CK_ERR_INVAL);
    cfg.webhooks[0].secret_file = "/nonexistent/secret";
    CHECK_INT_EQ(prov_webhooks_start_ops(&cfg, &fake_ops, clock_fn, 0, &w), CK_ERR_IO);
    cfg.webhooks[0].secret_file = secret_path;
    cfg.webhooks[0].url = "ftp://127.0.0.1/x";
    CHECK_INT_EQ(prov_webhooks_start_ops(&cfg, &fake_ops, clock_fn, 0, &w), CK_ERR_CONFIG);
    cfg.webhooks[0].url = "http://127.0.0.1:9/x";
    cfg.webhooks[0].name = "";
    CHECK_INT_EQ(prov_webhooks_start_ops(&cfg, &fake_ops, clock_fn, 0, &w), CK_ERR_CONFIG);
    CHECK(w == NULL);
    CHECK_INT_EQ(closed, 5);    /* the outbox is closed on every failure */
    /* No targets at all is fine (nothing is ever due for one). */
    memset(&cfg, 0, sizeof(cfg));
    CHECK_OK(prov_webhooks_start_ops(&cfg, &fake_ops, NULL, 0, &w));
    prov_webhooks_kick(w);
    prov_webhooks_stop(w);
    prov_webhooks_kick(NULL);
    prov_webhooks_stop(NULL);
}

/* The real outbox: an action in the store (a customer added) queues the row, the thread started
 * by prov_webhooks_start on its own connection delivers it on the system clock, and the store's
 * delivery log records each attempt. */
struct log_row {
    int64_t id, delivered, next_attempt;
    int attempts, last_status;
    char body[256];
};

static int
log_cb(const ck_prov_delivery *d, void *arg)
{
    struct log_row *r = arg;

    r->id = d->id;
    r->delivered = d->delivered;
    r->next_attempt = d->next_attempt;
    r->attempts = d->attempts;
    r->last_status = d->last_status;
    ck_strlcpy(r->body, d->body, sizeof(r->body));
    return 0;
}

/* The newest delivery of the log once it has at least attempts attempts (bounded wait). */
static struct log_row
wait_logged(ck_store *s, struct prov_webhooks *w, int attempts)
{
    struct log_row r;

    for (int i = 0; i < 500; i++) {
        size_t n = 0;
        memset(&r, 0, sizeof(r));
        CHECK_OK(ck_prov_outbox_list(s, 0, 1, log_cb, &r, &n));
        if (n > 0 && r.attempts >= attempts)
            break;
        if (i % 20 == 0)
            prov_webhooks_kick(w);
        sleep_ms(10);
    }
    return r;
}

static void
store_outbox(void)
{
    static const int32_t et[] = {CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96};
    static const char *const targets[] = {"billing"};
    ck_prov_actor who = {.actor = "csr1@PROV.TEST"};
    struct prov_webhooks *w = NULL;
    char db[160], stash[176];
    ck_prov_customer c;
    ck_store *s = NULL;
    struct log_row r;
    struct request q;
    int64_t t = 0, now;

    setup();
    receiver_start();
    snprintf(db, sizeof(db), "%s/realm.db", hook_dir);
    snprintf(stash, sizeof(stash), "%s.stash", db);
    CHECK_OK(ck_store_init_realm(db, stash, "PROV.TEST", et, 1, 0, 0));
    CHECK_OK(ck_store_open(db, stash, 0, &s));
    if (s == NULL)
        goto out;
    CHECK_OK(ck_prov_outbox_targets(s, targets, 1));
    memset(&cfg, 0, sizeof(cfg));
    cfg.database = db;
    cfg.stash = stash;
    snprintf(url_ok, sizeof(url_ok), "http://127.0.0.1:%d/hooks/billing", rcv.port);
    set_target(0, "billing", url_ok);
    CHECK_OK(prov_webhooks_start(&cfg, NULL, &w));
    if (w == NULL)
        goto out;

    memset(&c, 0, sizeof(c));
    c.type = CK_PROV_ACCOUNT_CUSTOMER;
    c.name = (char *)"Alice Example";
    c.address = (char *)"1 Main St";
    ck_strlcpy(c.segment, "seg-a", sizeof(c.segment));
    c.services = (char *)"{}";
    CHECK_OK(ck_prov_customer_add(s, &who, &c, NULL));
    prov_webhooks_kick(w);     /* what the back does after the action's commit */
    r = wait_logged(s, w, 1);
    now = (int64_t)time(NULL);
    CHECK_INT_EQ(r.attempts, 1);
    CHECK_INT_EQ(r.last_status, 200);
    CHECK(r.delivered > 0 && r.delivered <= now);
    CHECK_INT_EQ(atomic_load(&rcv.count), 1);
    q = received(0);
    CHECK(strcmp(q.event, "customer.added") == 0);
    CHECK(signature_valid(&q, SECRET, &t));
    CHECK(t >= now - 10 && t <= now);
    CHECK(strstr(q.body, "\"event\":\"customer.added\"") != NULL);
    {
        char id[32];
        snprintf(id, sizeof(id), "%lld", (long long)r.id);
        CHECK(strcmp(q.delivery, id) == 0);
    }

    /* The receiver fails: the log shows the attempt and the next one a second later. */
    atomic_store(&rcv.status, 500);
    c.name = (char *)"Bob Example";
    CHECK_OK(ck_prov_customer_add(s, &who, &c, NULL));
    prov_webhooks_kick(w);
    r = wait_logged(s, w, 1);
    CHECK_INT_EQ(r.attempts, 1);
    CHECK_INT_EQ(r.last_status, 500);
    CHECK(r.delivered == 0);
    CHECK(r.next_attempt > 0 && r.next_attempt <= (int64_t)time(NULL) + 1);
    atomic_store(&rcv.status, 200);
    r = wait_logged(s, w, 2);   /* due again within a second or two of real time */
    CHECK_INT_EQ(r.attempts, 2);
    CHECK_INT_EQ(r.last_status, 200);
    CHECK(r.delivered > 0);
    prov_webhooks_stop(w);
out:
    ck_store_close(s);
    receiver_stop();
}

static void
cleanup(void)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", hook_dir);
    CHECK(hook_dir[0] != '\0' && system(cmd) == 0);
}

CK_TEST_MAIN("prov_webhook", CK_TEST_CASE(backoff_schedule), CK_TEST_CASE(delivers_signed),
             CK_TEST_CASE(retries_and_gives_up), CK_TEST_CASE(slow_target_blocks_nothing),
             CK_TEST_CASE(start_failures), CK_TEST_CASE(store_outbox), CK_TEST_CASE(cleanup))
