/* cablekey-kdc's service-key rotation thread (see rotation.h). The engine's steps are store
 * transactions that re-check their preconditions, so every KDC of a fleet may run this thread
 * at once; `rotation = false` turns it off on a KDC. It uses its own store connection: the
 * workers' connections and caches are never touched from here (they learn of each step through
 * the change counter like of any administrative write). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cablekey/error.h"
#include "cablekey/log.h"
#include "cablekey/rotation.h"
#include "cablekey/store.h"
#include "cablekey/util.h"
#include "rotation.h"

struct kdc_rotation {
    pthread_t thread;
    int64_t skew;                /* CK_KDC_ROTATION_CLOCK_SKEW: tests only, 0 in production */
    pthread_mutex_t lock;
    pthread_cond_t cond;         /* CLOCK_MONOTONIC: a wall clock step neither skips nor
                                  * repeats ticks */
    bool stop;
    char *db_path, *stash_path;
    int64_t interval;
    struct ck_alarm_mgr *alarms;
};

/* ---- crash points (tests: CK_KDC_CRASH=rot-after-stage:N kills the KDC at the N-th stage) */

static char crash_point[32];
static unsigned long crash_at, crash_seen;

static void
crash_init(void)
{
    const char *v = getenv("CK_KDC_CRASH");
    const char *colon;
    int64_t n;

    crash_point[0] = '\0';
    if (v == NULL || strncmp(v, "rot-", 4) != 0 || (colon = strchr(v, ':')) == NULL ||
        (size_t)(colon - v) >= sizeof(crash_point) ||
        ck_parse_int64(colon + 1, 1, 1000000000, &n) != 0)
        return;
    memcpy(crash_point, v, (size_t)(colon - v));
    crash_point[colon - v] = '\0';
    crash_at = (unsigned long)n;
    crash_seen = 0;
}

/* The engine's hook, on this thread only. */
static void
on_step(const char *step, const char *principal, uint32_t kvno, void *arg)
{
    char point[32];

    (void)arg;
    if (crash_point[0] == '\0')
        return;
    snprintf(point, sizeof(point), "rot-after-%s", step);
    if (strcmp(point, crash_point) != 0 || ++crash_seen < crash_at)
        return;
    ck_log_err("crash point %s:%lu reached (principal=%s kvno=%u): killing the KDC", point,
               crash_at, principal, kvno);
    kill(getpid(), SIGKILL);
}

/* ---- the thread ---- */

static bool
wait_interval(struct kdc_rotation *r)
{
    struct timespec until;
    bool stop;

    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)r->interval;
    pthread_mutex_lock(&r->lock);
    while (!r->stop) {
        if (pthread_cond_timedwait(&r->cond, &r->lock, &until) == ETIMEDOUT)
            break;
    }
    stop = r->stop;
    pthread_mutex_unlock(&r->lock);
    return !stop;
}

static void *
run(void *arg)
{
    struct kdc_rotation *r = arg;
    ck_store *st = NULL;
    bool open_failed = false;

    do {
        ck_rotation_report rep;
        int64_t now = 0;

        if (st == NULL) {
            if (ck_store_open(r->db_path, r->stash_path, 0, &st) != 0) {
                /* Said once per outage, not every interval. */
                if (!open_failed)
                    ck_log_err("rotation: cannot open the database (%s); retrying every %llds",
                               ck_error_context(), (long long)r->interval);
                open_failed = true;
                st = NULL;
                continue;
            }
            if (open_failed)
                ck_log_notice("rotation: database open again");
            open_failed = false;
            ck_store_set_actor(st, "cablekey-kdc rotation");
        }
        ck_now(&now, NULL);
        if (ck_rotation_tick(st, now + r->skew, r->alarms, &rep) != 0) {
            ck_log_err("rotation: tick failed: %s", ck_error_context());
            /* A fresh connection next time (the backend reconnects too; this also covers a
             * database file replaced under us). */
            ck_store_close(st);
            st = NULL;
        } else if (rep.errors > 0) {
            ck_log_warn("rotation tick staged=%zu activated=%zu purged=%zu unconfirmed=%zu "
                        "errors=%zu", rep.staged, rep.activated, rep.purged, rep.unconfirmed,
                        rep.errors);
        }
    } while (wait_interval(r));
    ck_store_close(st);
    return NULL;
}

int
kdc_rotation_start(const char *db_path, const char *stash_path, int64_t interval,
                   struct ck_alarm_mgr *alarms, struct kdc_rotation **out)
{
    struct kdc_rotation *r;
    pthread_condattr_t ca;
    int ret = 0;

    *out = NULL;
    if (interval < 1)
        return ck_error_set(CK_ERR_CONFIG, "rotation_interval must be at least 1s");
    if ((r = calloc(1, sizeof(*r))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "rotation");
    r->interval = interval;
    r->alarms = alarms;
    if ((r->db_path = strdup(db_path)) == NULL ||
        (stash_path != NULL && (r->stash_path = strdup(stash_path)) == NULL)) {
        ret = ck_error_set(CK_ERR_NOMEM, "rotation");
        goto fail;
    }
    pthread_mutex_init(&r->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cond, &ca);
    pthread_condattr_destroy(&ca);
    crash_init();
    /* The engine's clock, moved forward for tests that must see a period or old_valid pass
     * (the KDC itself keeps the real clock). Injected like the crash points. */
    {
        const char *v = getenv("CK_KDC_ROTATION_CLOCK_SKEW");

        if (v != NULL && ck_parse_int64(v, 0, 10LL * 366 * 86400, &r->skew) != 0) {
            ret = ck_error_set(CK_ERR_CONFIG, "CK_KDC_ROTATION_CLOCK_SKEW: \"%s\" is not a "
                               "number of seconds", v);
            pthread_cond_destroy(&r->cond);
            pthread_mutex_destroy(&r->lock);
            goto fail;
        }
    }
    ck_rotation_set_hook(on_step, NULL);
    if (pthread_create(&r->thread, NULL, run, r) != 0) {
        ret = ck_error_set(CK_ERR_NOMEM, "rotation: cannot start its thread");
        pthread_cond_destroy(&r->cond);
        pthread_mutex_destroy(&r->lock);
        ck_rotation_set_hook(NULL, NULL);
        goto fail;
    }
    ck_log_notice("rotation: engine running every %llds%s%s", (long long)interval,
                  crash_point[0] != '\0' ? " (crash point armed)" : "",
                  r->skew != 0 ? " (test clock skew)" : "");
    *out = r;
    return 0;
fail:
    free(r->db_path);
    free(r->stash_path);
    free(r);
    return ret;
}

void
kdc_rotation_stop(struct kdc_rotation *r)
{
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->lock);
    r->stop = true;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->lock);
    pthread_join(r->thread, NULL);
    ck_rotation_set_hook(NULL, NULL);
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->lock);
    free(r->db_path);
    free(r->stash_path);
    free(r);
}
