/* cablekey-cms -> cablekey-prov: device reports and the dynamic line table (provclient.h). */
#include "provclient.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cablekey/error.h"
#include "cablekey/log.h"
#include "cablekey/util.h"

struct rep {
    uint8_t mac[6];
    uint8_t key[32];
    char ip[64];
};

struct cms_prov {
    struct cms_prov_opts o;
    char controller[CMS_MAX_PRINCIPAL];
    struct cms_prov_transport report_tr, lines_tr;
    cms_prov_clock_fn clock;
    void *clock_arg;
    struct cms_call_core *calls;

    pthread_mutex_t lock;
    pthread_cond_t cond;              /* a report was queued, or stop */
    struct rep *q;                    /* FIFO, q[0] oldest */
    size_t n;
    int64_t next_try, backoff;        /* reports: the whole client backs off (prov is down) */
    int64_t lines_backoff;
    int64_t cursor;
    bool stopping;
    struct cms_prov_stats st;

    pthread_t rep_thread, lines_thread;
    bool rep_up, lines_up;
    atomic_bool *stop_flag;
};

static int64_t
mono_ms(void *arg)
{
    struct timespec ts;

    (void)arg;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t
now_ms(struct cms_prov *p)
{
    return p->clock(p->clock_arg);
}

int
cms_prov_new(const struct cms_prov_opts *opts, const struct cms_prov_transport *report,
             const struct cms_prov_transport *lines, cms_prov_clock_fn clock, void *clock_arg,
             struct cms_call_core *calls, struct cms_prov **out)
{
    struct cms_prov *p;
    pthread_condattr_t ca;

    *out = NULL;
    if (opts->lines && (calls == NULL || lines == NULL))
        return ck_error_set(CK_ERR_INVAL, "provisioning lines need call control");
    if ((p = calloc(1, sizeof(*p))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "provisioning client");
    p->o = *opts;
    if (p->o.max_queue == 0)
        p->o.max_queue = CMS_PROV_DEFAULT_QUEUE;
    if (p->o.backoff_min_ms <= 0)
        p->o.backoff_min_ms = CMS_PROV_DEFAULT_BACKOFF_MIN_MS;
    if (p->o.backoff_max_ms < p->o.backoff_min_ms)
        p->o.backoff_max_ms = p->o.backoff_min_ms > CMS_PROV_DEFAULT_BACKOFF_MAX_MS
                                  ? p->o.backoff_min_ms : CMS_PROV_DEFAULT_BACKOFF_MAX_MS;
    if (p->o.wait_s <= 0 || p->o.wait_s > 30)
        p->o.wait_s = CMS_PROV_DEFAULT_WAIT;
    ck_strlcpy(p->controller, opts->controller != NULL ? opts->controller : "",
               sizeof(p->controller));
    p->o.controller = p->controller;
    p->report_tr = *report;
    if (lines != NULL)
        p->lines_tr = *lines;
    p->clock = clock != NULL ? clock : mono_ms;
    p->clock_arg = clock_arg;
    p->calls = calls;
    if ((p->q = calloc(p->o.max_queue, sizeof(*p->q))) == NULL) {
        free(p);
        return ck_error_set(CK_ERR_NOMEM, "provisioning report queue");
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cond, &ca);
    pthread_condattr_destroy(&ca);
    *out = p;
    return 0;
}

void
cms_prov_free(struct cms_prov *p)
{
    if (p == NULL)
        return;
    cms_prov_stop(p);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
    free(p->q);
    free(p);
}

static void
mac_text(const uint8_t m[6], char out[18])
{
    snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

static void
log_result(const struct rep *r, const char *result, const char *why)
{
    char mac[18];

    mac_text(r->mac, mac);
    if (why != NULL && why[0] != '\0')
        ck_log_info("prov report mac=%s ip=%s result=%s (%s)", mac, r->ip, result, why);
    else
        ck_log_info("prov report mac=%s ip=%s result=%s", mac, r->ip, result);
}

static ssize_t
find_mac(const struct cms_prov *p, const uint8_t mac[6])
{
    for (size_t i = 0; i < p->n; i++)
        if (memcmp(p->q[i].mac, mac, 6) == 0)
            return (ssize_t)i;
    return -1;
}

void
cms_prov_report(struct cms_prov *p, const uint8_t mac[6], const char *ip,
                const uint8_t key_sha256[32])
{
    struct rep r;
    ssize_t i;

    if (p == NULL)
        return;
    memset(&r, 0, sizeof(r));
    memcpy(r.mac, mac, 6);
    memcpy(r.key, key_sha256, 32);
    ck_strlcpy(r.ip, ip, sizeof(r.ip));
    pthread_mutex_lock(&p->lock);
    if ((i = find_mac(p, mac)) >= 0) {
        /* One pending report per device: the newest address and key, in the old place. */
        p->q[i] = r;
        p->st.coalesced++;
    } else if (p->n < p->o.max_queue) {
        p->q[p->n++] = r;
        p->st.queued++;
        pthread_cond_signal(&p->cond);
    } else {
        p->st.dropped++;
        pthread_mutex_unlock(&p->lock);
        log_result(&r, "dropped", "report queue full");
        return;
    }
    pthread_mutex_unlock(&p->lock);
}

/* Whether an HTTP status is worth retrying: prov down or overloaded, or a credential or ACL
 * problem the operator may fix; anything else (400, 404, 409 ...) will not change. */
static bool
status_retryable(long st)
{
    return st == 401 || st == 403 || st == 408 || st == 429 || st >= 500;
}

static void
error_of_answer(long status, const char *answer, char *why, size_t size)
{
    json_t *j = answer != NULL ? json_loads(answer, 0, NULL) : NULL;
    const char *code = json_string_value(json_object_get(json_object_get(j, "error"), "code"));
    const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));

    snprintf(why, size, "HTTP %ld%s%s%s%.200s", status, code != NULL ? " " : "",
             code != NULL ? code : "", msg != NULL ? ": " : "", msg != NULL ? msg : "");
    /* Only printable characters reach the log. */
    for (char *c = why; *c != '\0'; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c == 0x7f)
            *c = '?';
    json_decref(j);
}

int64_t
cms_prov_report_step(struct cms_prov *p)
{
    struct rep r;
    char hex[65], mac[18], why[300] = "";
    char *body = NULL, *answer = NULL;
    size_t alen = 0;
    long status = 0;
    json_t *j;
    int64_t now = now_ms(p), due;
    int rc;
    enum { OK, RETRY, DROP } res;

    pthread_mutex_lock(&p->lock);
    if (p->n == 0) {
        pthread_mutex_unlock(&p->lock);
        return -1;
    }
    if (now < p->next_try) {
        due = p->next_try - now;
        pthread_mutex_unlock(&p->lock);
        return due;
    }
    r = p->q[0];
    memmove(p->q, p->q + 1, (p->n - 1) * sizeof(*p->q));
    p->n--;
    pthread_mutex_unlock(&p->lock);

    for (size_t i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", r.key[i]);
    mac_text(r.mac, mac);
    j = json_pack("{s:s,s:s,s:s,s:s}", "mac", mac, "ip", r.ip, "key_sha256", hex, "controller",
                  p->controller);
    if (j == NULL || (body = json_dumps(j, JSON_COMPACT)) == NULL) {
        json_decref(j);
        res = RETRY;
        snprintf(why, sizeof(why), "out of memory");
        goto done;
    }
    json_decref(j);
    rc = p->report_tr.request(p->report_tr.arg, "POST", "/api/v1/devices/report", body, 30,
                              &status, &answer, &alen);
    if (rc != 0) {
        res = RETRY;
        snprintf(why, sizeof(why), "%s", ck_error_context());
    } else if (status >= 200 && status <= 299) {
        res = OK;
    } else {
        res = status_retryable(status) ? RETRY : DROP;
        error_of_answer(status, answer, why, sizeof(why));
    }
done:
    free(body);
    free(answer);
    now = now_ms(p);
    pthread_mutex_lock(&p->lock);
    if (res == OK) {
        p->backoff = 0;
        p->next_try = 0;
        p->st.ok++;
    } else if (res == DROP) {
        p->st.dropped++;
    } else {
        p->backoff = p->backoff == 0 ? p->o.backoff_min_ms
                                     : (p->backoff >= p->o.backoff_max_ms / 2
                                            ? p->o.backoff_max_ms : 2 * p->backoff);
        p->next_try = now + p->backoff;
        p->st.retries++;
        /* Back at the head, unless a newer report of the device came meanwhile (it wins) or
         * the queue filled up. */
        if (find_mac(p, r.mac) >= 0) {
            snprintf(why + strlen(why), sizeof(why) - strlen(why), "; superseded");
        } else if (p->n < p->o.max_queue) {
            memmove(p->q + 1, p->q, p->n * sizeof(*p->q));
            p->q[0] = r;
            p->n++;
        } else {
            res = DROP;
            p->st.dropped++;
            snprintf(why + strlen(why), sizeof(why) - strlen(why), "; report queue full");
        }
    }
    due = p->n == 0 ? -1 : (p->next_try > now ? p->next_try - now : 0);
    pthread_mutex_unlock(&p->lock);
    log_result(&r, res == OK ? "ok" : res == RETRY ? "retry" : "dropped", why);
    return due;
}

/* ---- lines ------------------------------------------------------------------------------ */

static int
parse_fail(char *why, size_t size, const char *fmt, const char *what)
{
    snprintf(why, size, fmt, what);
    return ck_error_set(CK_ERR_PROTO, "lines answer: %s", why);
}

int
cms_prov_lines_parse(const char *text, size_t len, struct cms_dyn_line **v, size_t *n,
                     int64_t *cursor, bool *full, char *why, size_t why_size)
{
    json_error_t err;
    json_t *j = NULL, *arr, *cur, *fl;
    struct cms_dyn_line *out = NULL;
    size_t cnt = 0, i;
    int rc = 0;

    *v = NULL;
    *n = 0;
    *cursor = 0;
    *full = false;
    if (len > CMS_PROV_MAX_ANSWER)
        return parse_fail(why, why_size, "%s", "answer too large");
    /* jansson bounds the nesting depth; duplicates are refused. */
    if ((j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err)) == NULL)
        return parse_fail(why, why_size, "not JSON (%s)", err.text);
    if (!json_is_object(j)) {
        rc = parse_fail(why, why_size, "%s", "not a JSON object");
        goto out;
    }
    arr = json_object_get(j, "lines");
    cur = json_object_get(j, "cursor");
    fl = json_object_get(j, "full");
    if (!json_is_array(arr)) {
        rc = parse_fail(why, why_size, "\"%s\" is not an array", "lines");
        goto out;
    }
    if (!json_is_integer(cur) || json_integer_value(cur) < 0) {
        rc = parse_fail(why, why_size, "\"%s\" is not a non-negative integer", "cursor");
        goto out;
    }
    if (fl != NULL && !json_is_boolean(fl)) {
        rc = parse_fail(why, why_size, "\"%s\" is not a boolean", "full");
        goto out;
    }
    cnt = json_array_size(arr);
    if (cnt > CMS_PROV_MAX_LINES) {
        rc = parse_fail(why, why_size, "%s", "too many lines");
        goto out;
    }
    if (cnt > 0 && (out = calloc(cnt, sizeof(*out))) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "lines answer");
        snprintf(why, why_size, "out of memory");
        goto out;
    }
    for (i = 0; i < cnt; i++) {
        json_t *e = json_array_get(arr, i);
        const char *num = json_string_value(json_object_get(e, "number"));
        const char *pr = json_string_value(json_object_get(e, "principal"));
        const char *mac = json_string_value(json_object_get(e, "mac"));
        size_t k = 0;
        char what[64];

        snprintf(what, sizeof(what), "lines[%zu]", i);
        if (!json_is_object(e)) {
            rc = parse_fail(why, why_size, "%s is not an object", what);
            goto out;
        }
        if (num == NULL || strlen(num) == 0 || strlen(num) > CMS_MAX_NUMBER ||
            strspn(num, "0123456789") != strlen(num)) {
            rc = parse_fail(why, why_size, "%s.number is not 1..15 digits", what);
            goto out;
        }
        if (pr == NULL || pr[0] == '\0' || strlen(pr) >= CMS_MAX_PRINCIPAL ||
            strspn(pr, " \t\r\n") > 0 || strcspn(pr, "\r\n\t") != strlen(pr)) {
            rc = parse_fail(why, why_size, "%s.principal is not a principal name", what);
            goto out;
        }
        if (mac != NULL && strlen(mac) > 17) {
            rc = parse_fail(why, why_size, "%s.mac is not a MAC address", what);
            goto out;
        }
        ck_strlcpy(out[i].number, num, sizeof(out[i].number));
        ck_strlcpy(out[i].principal, pr, sizeof(out[i].principal));
        /* "aa:bb:cc:dd:ee:ff" -> "aabbccddeeff" (escrow records); anything else: unknown. */
        for (const char *c = mac; c != NULL && *c != '\0' && k < 12; c++)
            if ((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f'))
                out[i].mac[k++] = *c;
            else if (*c != ':')
                break;
        out[i].mac[k == 12 ? 12 : 0] = '\0';
    }
    *cursor = (int64_t)json_integer_value(cur);
    *full = json_is_true(fl);
    *v = out;
    *n = cnt;
    out = NULL;
out:
    free(out);
    json_decref(j);
    return rc;
}

static int64_t
lines_backoff(struct cms_prov *p)
{
    int64_t b;

    pthread_mutex_lock(&p->lock);
    p->lines_backoff = p->lines_backoff == 0 ? p->o.backoff_min_ms
                       : (p->lines_backoff >= p->o.backoff_max_ms / 2 ? p->o.backoff_max_ms
                                                                       : 2 * p->lines_backoff);
    b = p->lines_backoff;
    p->st.poll_errors++;
    pthread_mutex_unlock(&p->lock);
    return b;
}

int64_t
cms_prov_lines_step(struct cms_prov *p)
{
    char path[96], why[300] = "", *answer = NULL;
    size_t alen = 0, n = 0, added = 0, removed = 0;
    struct cms_dyn_line *v = NULL;
    int64_t cursor, start = now_ms(p), took, b;
    long status = 0;
    bool full = false;
    int rc;

    pthread_mutex_lock(&p->lock);
    cursor = p->cursor;
    p->st.polls++;
    pthread_mutex_unlock(&p->lock);
    snprintf(path, sizeof(path), "/api/v1/lines?after=%" PRId64 "&wait=%d", cursor,
             cursor == 0 ? 0 : p->o.wait_s);
    rc = p->lines_tr.request(p->lines_tr.arg, "GET", path, NULL, p->o.wait_s + 30, &status,
                             &answer, &alen);
    if (rc != 0) {
        b = lines_backoff(p);
        ck_log_warn("prov lines: %s; next poll in %lld ms", ck_error_context(), (long long)b);
        return b;
    }
    if (status != 200) {
        error_of_answer(status, answer, why, sizeof(why));
        free(answer);
        b = lines_backoff(p);
        ck_log_warn("prov lines: %s; next poll in %lld ms", why, (long long)b);
        return b;
    }
    rc = cms_prov_lines_parse(answer != NULL ? answer : "", answer != NULL ? alen : 0, &v, &n,
                              &cursor, &full, why, sizeof(why));
    free(answer);
    if (rc != 0) {
        b = lines_backoff(p);
        ck_log_warn("prov lines: unusable answer: %s; table kept, next poll in %lld ms", why,
                    (long long)b);
        return b;
    }
    if (full && (rc = cms_call_set_dynamic_lines(p->calls, v, n, &added, &removed)) != 0)
        ck_log_err("prov lines: %s", ck_error_context());
    free(v);
    pthread_mutex_lock(&p->lock);
    p->lines_backoff = 0;
    p->cursor = cursor;
    if (full)
        p->st.lines = n;
    p->st.lines_added += added;
    p->st.lines_removed += removed;
    pthread_mutex_unlock(&p->lock);
    if (added + removed > 0)
        ck_log_notice("prov lines synced count=%zu cursor=%lld", cms_call_dynamic_lines(p->calls),
                      (long long)cursor);
    /* An answer with nothing new that came back at once (a server that does not wait, or an
     * empty history whose cursor stays 0): do not spin on it. */
    took = now_ms(p) - start;
    if (added + removed == 0 && took < 1000)
        return 1000 - took;
    return 0;
}

/* ---- threads ---------------------------------------------------------------------------- */

static void
wait_ms(struct cms_prov *p, int64_t ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&p->cond, &p->lock, &ts);
}

static void *
report_thread(void *arg)
{
    struct cms_prov *p = arg;

    for (;;) {
        int64_t due;

        pthread_mutex_lock(&p->lock);
        if (p->stopping) {
            pthread_mutex_unlock(&p->lock);
            break;
        }
        pthread_mutex_unlock(&p->lock);
        due = cms_prov_report_step(p);
        if (due == 0)
            continue;
        pthread_mutex_lock(&p->lock);
        if (!p->stopping && (due > 0 || p->n == 0))
            wait_ms(p, due > 0 ? due : 60000);
        pthread_mutex_unlock(&p->lock);
    }
    return NULL;
}

static void *
lines_thread(void *arg)
{
    struct cms_prov *p = arg;

    for (;;) {
        int64_t due;

        pthread_mutex_lock(&p->lock);
        if (p->stopping) {
            pthread_mutex_unlock(&p->lock);
            break;
        }
        pthread_mutex_unlock(&p->lock);
        if ((due = cms_prov_lines_step(p)) > 0) {
            pthread_mutex_lock(&p->lock);
            if (!p->stopping)
                wait_ms(p, due);
            pthread_mutex_unlock(&p->lock);
        }
    }
    return NULL;
}

int
cms_prov_start(struct cms_prov *p, atomic_bool *stop)
{
    int rc;

    p->stop_flag = stop;
    if ((rc = pthread_create(&p->rep_thread, NULL, report_thread, p)) != 0)
        return ck_error_set(CK_ERR_IO, "provisioning report thread: %s", strerror(rc));
    p->rep_up = true;
    if (p->o.lines) {
        if ((rc = pthread_create(&p->lines_thread, NULL, lines_thread, p)) != 0) {
            cms_prov_stop(p);
            return ck_error_set(CK_ERR_IO, "provisioning lines thread: %s", strerror(rc));
        }
        p->lines_up = true;
    }
    return 0;
}

void
cms_prov_stop(struct cms_prov *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    if (p->stop_flag != NULL)
        atomic_store(p->stop_flag, true);
    if (p->rep_up)
        pthread_join(p->rep_thread, NULL);
    if (p->lines_up)
        pthread_join(p->lines_thread, NULL);
    p->rep_up = p->lines_up = false;
}

void
cms_prov_get_stats(struct cms_prov *p, struct cms_prov_stats *out)
{
    pthread_mutex_lock(&p->lock);
    *out = p->st;
    out->pending = p->n;
    out->cursor = p->cursor;
    pthread_mutex_unlock(&p->lock);
}
