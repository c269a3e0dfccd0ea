/* Webhook deliveries: one thread in the back process POSTs the outbox rows that the actions
 * wrote in their own transactions, so an action never waits for a receiver: it commits its row
 * and kicks this thread. Transfers run side by side in one libcurl multi handle (at most
 * PROV_WEBHOOK_MAX_PER_TARGET per target), so a target that is down or slow delays only its own
 * deliveries. A failed delivery is retried with exponential backoff (1, 2, 4 ... 3600 s) and
 * given up after 72 hours; every attempt is recorded in the outbox (the delivery log). The clock
 * is injected for the tests. A delivery may reach its receiver twice (the process stopped after
 * the POST and before recording it): X-Cablekey-Delivery lets the receiver drop the repeat. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "cablekey/error.h"
#include "cablekey/log.h"
#include "cablekey/util.h"
#include "cablekey/webhook.h"
#include "provd.h"
#include "webhook_int.h"

#define FETCH_LIMIT 64
#define EVENT_MAX 64
#define STOP_WAIT_MS 2000

struct target {
    char name[64];
    char *url;
    uint8_t secret[CK_WEBHOOK_SECRET_MAX];
    size_t secret_len;
    int in_flight;
};

struct job {
    bool active;
    int64_t id, created;
    int attempts;
    size_t target;
    char *body;
    size_t body_len;
    CURL *easy;
    struct curl_slist *hdrs;
};

struct prov_webhooks {
    struct prov_outbox_ops ops;
    int64_t (*now)(void);
    int64_t timeout_ms;
    struct target targets[PROV_MAX_WEBHOOKS];
    size_t n_targets;
    struct job jobs[PROV_WEBHOOK_MAX_IN_FLIGHT];
    CURLM *multi;
    pthread_t thread;
    atomic_bool stop, kicked;
    pthread_mutex_t done_lock; /* the thread's exit, for the bounded stop */
    pthread_cond_t done_cond;
    bool done;
};

static int64_t
system_now(void)
{
    return (int64_t)time(NULL);
}

int64_t
prov_webhook_backoff(int attempts)
{
    if (attempts <= 1)
        return 1;
    if (attempts > 13) /* 2^12 = 4096 is past the cap already */
        return PROV_WEBHOOK_BACKOFF_MAX;
    int64_t d = (int64_t)1 << (attempts - 1);
    return d < PROV_WEBHOOK_BACKOFF_MAX ? d : PROV_WEBHOOK_BACKOFF_MAX;
}

/* The event's name from the body ({"event":"device.provisioned",...}); "unknown" when the body
 * does not name one in the expected form (the header value must stay a safe token). */
static void
event_name(const char *body, size_t len, char out[EVENT_MAX + 1])
{
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    const char *ev = json_string_value(json_object_get(j, "event"));
    size_t n = ev != NULL ? strlen(ev) : 0;
    bool ok = n > 0 && n <= EVENT_MAX;

    for (size_t i = 0; ok && i < n; i++) {
        char c = ev[i];
        ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
             c == '_';
    }
    ck_strlcpy(out, ok ? ev : "unknown", EVENT_MAX + 1);
    json_decref(j);
}

/* ------------------------------------------------------------------------------------------- */

static void
job_clear(struct prov_webhooks *w, struct job *j)
{
    if (j->easy != NULL) {
        curl_multi_remove_handle(w->multi, j->easy);
        curl_easy_cleanup(j->easy);
    }
    curl_slist_free_all(j->hdrs);
    free(j->body);
    if (j->active && j->target < w->n_targets)
        w->targets[j->target].in_flight--;
    memset(j, 0, sizeof(*j));
}

static int
record(struct prov_webhooks *w, int64_t id, int status, bool delivered, int64_t next,
       int64_t now)
{
    int rc = w->ops.attempt(w->ops.arg, id, status, delivered, next, now);

    if (rc != 0)
        ck_log_err("webhook delivery %" PRId64 ": recording the attempt: %s", id,
                   ck_error_context());
    return rc;
}

/* A delivery that cannot be attempted at all (its target is no longer configured, its body is
 * out of bounds) is given up rather than fetched again forever; recorded after the outbox query
 * has ended, never from inside its callback. */
struct give_up {
    int64_t id;
    int status;
};

static int
job_start(struct prov_webhooks *w, struct job *j, int64_t now)
{
    struct target *t = &w->targets[j->target];
    char ts[24], sig[65], h_sig[128], h_event[32 + EVENT_MAX], h_id[64], event[EVENT_MAX + 1];
    int rc;

    snprintf(ts, sizeof(ts), "%" PRId64, now);
    if ((rc = ck_webhook_sign(t->secret, t->secret_len, ts, j->body, j->body_len, sig)) != 0)
        return rc;
    event_name(j->body, j->body_len, event);
    snprintf(h_sig, sizeof(h_sig), "X-Cablekey-Signature: t=%s,v1=%s", ts, sig);
    snprintf(h_event, sizeof(h_event), "X-Cablekey-Event: %s", event);
    snprintf(h_id, sizeof(h_id), "X-Cablekey-Delivery: %" PRId64, j->id);
    {
        const char *lines[] = {"Content-Type: application/json", "User-Agent: cablekey-prov",
                               h_sig, h_event, h_id, "Expect:"};
        if ((rc = ck_webhook_headers(&j->hdrs, lines, sizeof(lines) / sizeof(lines[0]))) != 0)
            return rc;
    }
    OPENSSL_cleanse(sig, sizeof(sig));
    if ((j->easy = curl_easy_init()) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "webhook transfer");
    ck_webhook_easy_setup(j->easy, t->url, NULL, j->hdrs, j->body, j->body_len, w->timeout_ms);
    curl_easy_setopt(j->easy, CURLOPT_PRIVATE, j);
    if (curl_multi_add_handle(w->multi, j->easy) != CURLM_OK)
        return ck_error_set(CK_ERR_NOMEM, "webhook transfer");
    return 0;
}

struct fetch_ctx {
    struct prov_webhooks *w;
    int64_t now;
    struct give_up give_up[FETCH_LIMIT];
    size_t n_give_up;
};

static void
give_up_later(struct fetch_ctx *c, const ck_prov_delivery *d, const char *why)
{
    ck_log_warn("webhook delivery %" PRId64 " to '%s': given up: %s", d->id, d->target, why);
    if (c->n_give_up < FETCH_LIMIT) {
        c->give_up[c->n_give_up].id = d->id;
        c->give_up[c->n_give_up].status = d->last_status;
        c->n_give_up++;
    }
}

static bool
in_flight(const struct prov_webhooks *w, int64_t id)
{
    for (size_t i = 0; i < PROV_WEBHOOK_MAX_IN_FLIGHT; i++) {
        if (w->jobs[i].active && w->jobs[i].id == id)
            return true;
    }
    return false;
}

static int
fetch_one(const ck_prov_delivery *d, void *arg)
{
    struct fetch_ctx *c = arg;
    struct prov_webhooks *w = c->w;
    struct job *j = NULL;
    size_t t, len;

    if (in_flight(w, d->id))
        return 0;
    for (t = 0; t < w->n_targets && strcmp(w->targets[t].name, d->target) != 0; t++)
        ;
    if (t == w->n_targets) {
        give_up_later(c, d, "no such target in the configuration");
        return 0;
    }
    len = d->body != NULL ? strlen(d->body) : 0;
    if (len == 0 || len > CK_PROV_WEBHOOK_BODY_MAX) {
        give_up_later(c, d, "body empty or too large");
        return 0;
    }
    if (w->targets[t].in_flight >= PROV_WEBHOOK_MAX_PER_TARGET)
        return 0;
    for (size_t i = 0; i < PROV_WEBHOOK_MAX_IN_FLIGHT && j == NULL; i++) {
        if (!w->jobs[i].active)
            j = &w->jobs[i];
    }
    if (j == NULL)
        return 0; /* every slot busy: the next fetch sees it again */
    j->id = d->id;
    j->created = d->created;
    j->attempts = d->attempts;
    j->target = t;
    j->body_len = len;
    if ((j->body = ck_memdup(d->body, len + 1)) == NULL) {
        memset(j, 0, sizeof(*j));
        return 0;
    }
    j->active = true;
    w->targets[t].in_flight++;
    if (job_start(w, j, c->now) != 0) {
        ck_log_err("webhook delivery %" PRId64 ": %s", d->id, ck_error_context());
        job_clear(w, j);
        return 0;
    }
    return 0;
}

static void
fetch(struct prov_webhooks *w)
{
    struct fetch_ctx c = {.w = w, .now = w->now()};
    size_t n = 0;

    if (w->ops.due(w->ops.arg, c.now, FETCH_LIMIT, fetch_one, &c, &n) != 0)
        ck_log_err("webhook outbox: %s", ck_error_context());
    for (size_t i = 0; i < c.n_give_up; i++)
        record(w, c.give_up[i].id, c.give_up[i].status, false, PROV_WEBHOOK_GAVE_UP, c.now);
}

/* A transfer ended: a 2xx is a delivery; anything else is retried later or given up. Returns
 * whether the outcome was recorded (a row whose attempt could not be recorded is still due: it is
 * looked at again on the next poll, not at once, so a broken store is not hammered). */
static bool
finish(struct prov_webhooks *w, struct job *j, CURLcode cc)
{
    struct target *t = &w->targets[j->target];
    int64_t now = w->now();
    long http = 0;
    int status = -1, attempts = j->attempts + 1, rc;

    if (cc == CURLE_OK && curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &http) == CURLE_OK &&
        http > 0 && http < 1000)
        status = (int)http;
    if (status >= 200 && status <= 299) {
        /* The receiver has it and the outbox does not know yet: a crash here must lead to a
         * second delivery after the restart (at least once), never to a lost one. */
        prov_crash_point("webhook-before-mark");
        rc = record(w, j->id, status, true, 0, now);
    } else if (now - j->created >= PROV_WEBHOOK_GIVE_UP) {
        ck_log_warn("webhook delivery %" PRId64 " to '%s': given up after %d attempts in %" PRId64
                    " s (last: %s)", j->id, t->name, attempts, now - j->created,
                    cc != CURLE_OK ? curl_easy_strerror(cc) : "an HTTP error status");
        rc = record(w, j->id, status, false, PROV_WEBHOOK_GAVE_UP, now);
    } else {
        int64_t delay = prov_webhook_backoff(attempts);
        char why[96];
        if (cc != CURLE_OK)
            snprintf(why, sizeof(why), "%s", curl_easy_strerror(cc));
        else
            snprintf(why, sizeof(why), "HTTP status %ld", http);
        ck_log_info("webhook delivery %" PRId64 " to '%s': attempt %d failed (%s), next in %"
                    PRId64 " s", j->id, t->name, attempts, why, delay);
        rc = record(w, j->id, status, false, now + delay, now);
    }
    job_clear(w, j);
    return rc == 0;
}

static void *
run(void *arg)
{
    struct prov_webhooks *w = arg;
    int64_t last_fetch = ck_monotonic_ms() - PROV_WEBHOOK_POLL_MS;
    bool refetch = false;

    while (!atomic_load(&w->stop)) {
        int running = 0, left = 0;
        CURLMsg *m;

        if (atomic_exchange(&w->kicked, false) || refetch ||
            ck_monotonic_ms() - last_fetch >= PROV_WEBHOOK_POLL_MS) {
            refetch = false;
            last_fetch = ck_monotonic_ms();
            fetch(w);
        }
        curl_multi_perform(w->multi, &running);
        while ((m = curl_multi_info_read(w->multi, &left)) != NULL) {
            struct job *j = NULL;
            if (m->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&j);
            /* A slot is free: more may be due. */
            if (j != NULL && finish(w, j, m->data.result))
                refetch = true;
        }
        if (!refetch)
            curl_multi_poll(w->multi, NULL, 0, running > 0 ? 100 : PROV_WEBHOOK_POLL_MS, NULL);
    }
    pthread_mutex_lock(&w->done_lock);
    w->done = true;
    pthread_cond_signal(&w->done_cond);
    pthread_mutex_unlock(&w->done_lock);
    return NULL;
}

/* ------------------------------------------------------------------------------------------- */

static void
webhooks_free(struct prov_webhooks *w)
{
    for (size_t i = 0; i < PROV_WEBHOOK_MAX_IN_FLIGHT; i++)
        job_clear(w, &w->jobs[i]);
    for (size_t i = 0; i < w->n_targets; i++) {
        free(w->targets[i].url);
        OPENSSL_cleanse(w->targets[i].secret, sizeof(w->targets[i].secret));
    }
    if (w->multi != NULL)
        curl_multi_cleanup(w->multi);
    if (w->ops.close != NULL)
        w->ops.close(w->ops.arg);
    pthread_cond_destroy(&w->done_cond);
    pthread_mutex_destroy(&w->done_lock);
    free(w);
}

int
prov_webhooks_start_ops(const struct prov_config *cfg, const struct prov_outbox_ops *ops,
                        int64_t (*now_fn)(void), int64_t timeout_ms, struct prov_webhooks **out)
{
    struct prov_webhooks *w;
    int rc = 0;

    *out = NULL;
    if ((w = calloc(1, sizeof(*w))) == NULL) {
        if (ops->close != NULL)
            ops->close(ops->arg);
        return ck_error_set(CK_ERR_NOMEM, "webhooks");
    }
    w->ops = *ops;
    w->now = now_fn != NULL ? now_fn : system_now;
    w->timeout_ms = timeout_ms > 0 ? timeout_ms : PROV_WEBHOOK_TIMEOUT_MS;
    pthread_mutex_init(&w->done_lock, NULL);
    pthread_cond_init(&w->done_cond, NULL);
    if (cfg->n_webhooks > PROV_MAX_WEBHOOKS) {
        rc = ck_error_set(CK_ERR_LIMIT, "more than %d webhooks", PROV_MAX_WEBHOOKS);
        goto fail;
    }
    for (size_t i = 0; i < cfg->n_webhooks; i++) {
        const struct prov_webhook *h = &cfg->webhooks[i];
        struct target *t = &w->targets[i];
        if (h->name == NULL || h->name[0] == '\0' || strlen(h->name) >= sizeof(t->name)) {
            rc = ck_error_set(CK_ERR_CONFIG, "webhook %zu: a name of 1..63 bytes is required",
                              i + 1);
            goto fail;
        }
        ck_strlcpy(t->name, h->name, sizeof(t->name));
        w->n_targets = i + 1;
        if ((rc = ck_webhook_url_check(h->url)) != 0 ||
            (rc = ck_webhook_secret_read(h->secret_file != NULL ? h->secret_file : "",
                                         t->secret, &t->secret_len)) != 0) {
            rc = ck_error_set(rc, "webhook %s: %s", h->name, ck_error_context());
            goto fail;
        }
        if ((t->url = strdup(h->url)) == NULL) {
            rc = ck_error_set(CK_ERR_NOMEM, "webhooks");
            goto fail;
        }
    }
    if ((rc = ck_webhook_url_check("http://")) != 0)  /* libcurl initialised even without targets */
        goto fail;
    if ((w->multi = curl_multi_init()) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "webhooks: libcurl");
        goto fail;
    }
    if ((rc = pthread_create(&w->thread, NULL, run, w)) != 0) {
        rc = ck_error_set(CK_ERR_NOMEM, "webhooks: thread: %s", strerror(rc));
        goto fail;
    }
    *out = w;
    return 0;
fail:
    webhooks_free(w);
    return rc;
}

void
prov_webhooks_kick(struct prov_webhooks *w)
{
    /* No target: the outbox gets no rows, and waking the thread to look would cost every
     * action a query. */
    if (w == NULL || w->n_targets == 0)
        return;
    atomic_store(&w->kicked, true);
    curl_multi_wakeup(w->multi);
}

void
prov_webhooks_stop(struct prov_webhooks *w)
{
    struct timespec until;
    bool done;

    if (w == NULL)
        return;
    atomic_store(&w->stop, true);
    curl_multi_wakeup(w->multi);
    /* Transfers in flight are abandoned: their rows stay due and go out after a restart. The
     * thread only blocks in a store call; one stuck longer than the bound is left behind (the
     * process is exiting) rather than freed under it. */
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += STOP_WAIT_MS / 1000;
    pthread_mutex_lock(&w->done_lock);
    while (!w->done) {
        if (pthread_cond_timedwait(&w->done_cond, &w->done_lock, &until) == ETIMEDOUT)
            break;
    }
    done = w->done;
    pthread_mutex_unlock(&w->done_lock);
    if (!done) {
        ck_log_err("webhooks: the delivery thread did not stop within %d ms", STOP_WAIT_MS);
        pthread_detach(w->thread);
        return;
    }
    pthread_join(w->thread, NULL);
    webhooks_free(w);
}
