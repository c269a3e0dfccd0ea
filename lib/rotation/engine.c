/* The rotation engine (cablekey/rotation.h): one pass over every rotation policy, making the
 * steps that are due on an injected clock. Every step is one store transaction that re-checks
 * its precondition, so several KDCs of a fleet may run passes at once: the loser of a race gets
 * CK_ERR_EXISTS (stage) or CK_ERR_POLICY (activate, purge) and leaves the service to the
 * winner. One log line per step taken; never a key. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "cablekey/alarm.h"
#include "cablekey/error.h"
#include "cablekey/log.h"
#include "cablekey/rotation.h"
#include "cablekey/store.h"
#include "cablekey/util.h"

static ck_rotation_step_hook step_hook;
static void *step_hook_arg;

void
ck_rotation_set_hook(ck_rotation_step_hook hook, void *arg)
{
    step_hook = hook;
    step_hook_arg = arg;
}

static void
stepped(const char *step, const char *principal, uint32_t kvno)
{
    if (step_hook != NULL)
        step_hook(step, principal, kvno, step_hook_arg);
}

/* Fresh random keys in the realm's enctypes, staged beside the current kvno. */
static int
stage_new(ck_store *store, const char *principal, int64_t now, uint32_t *kvno)
{
    const ck_realm_info *realm = ck_store_realm(store);
    ck_db_key *keys = NULL;
    size_t n = 0;
    int ret;

    if ((ret = ck_db_keys_make(principal, NULL, 0, realm->enctypes, realm->n_enctypes, 1, &keys,
                               &n)) != 0)
        return ret;
    ret = ck_store_key_stage(store, principal, keys, n, now, kvno);
    ck_db_keys_free(keys, n);
    return ret;
}

/* key-unconfirmed, naming the hosts that have not confirmed. */
static void
raise_unconfirmed(struct ck_alarm_mgr *alarms, const ck_rotation_status *st,
                  const ck_rotation_plan *plan)
{
    char hosts[CK_ALARM_CAUSE_MAX];
    size_t len = 0;

    hosts[0] = '\0';
    for (size_t i = 0; i < plan->n_missing && len < sizeof(hosts); i++) {
        int w = snprintf(hosts + len, sizeof(hosts) - len, "%s%s", i > 0 ? "," : "",
                         plan->missing[i]);

        if (w < 0)
            break;
        len += (size_t)w;
    }
    /* With an alarm manager its log sink says it, deduplicated; without one this line is the
     * operator's only signal, once per pass. */
    ck_log(alarms != NULL ? LOG_DEBUG : LOG_WARNING,
           "rotation unconfirmed principal=%s kvno=%u missing=%s", st->principal,
           st->staged_kvno, plan->n_missing > 0 ? hosts : "(any host)");
    if (alarms == NULL)
        return;
    if (plan->n_missing > 0)
        (void)ck_alarm_raise(alarms, CK_ALARM_KEY_UNCONFIRMED, CK_ALARM_MAJOR, st->principal,
                             "kvno %u not confirmed within %llds by host(s) %s: check their "
                             "keytab-agent", st->staged_kvno,
                             (long long)st->policy.confirm_timeout, hosts);
    else
        (void)ck_alarm_raise(alarms, CK_ALARM_KEY_UNCONFIRMED, CK_ALARM_MAJOR, st->principal,
                             "kvno %u not confirmed within %llds by any host (the policy names "
                             "none): is a keytab-agent running for this service?",
                             st->staged_kvno, (long long)st->policy.confirm_timeout);
}

/* The steps due for one service. A store error other than a lost race counts as an error of
 * this service; the pass goes on with the next. */
static void
rotate_one(ck_store *store, const char *principal, int64_t now, struct ck_alarm_mgr *alarms,
           ck_rotation_report *rep)
{
    ck_rotation_status *st = NULL;
    ck_rotation_plan plan;
    uint32_t kvno = 0;
    size_t n = 0;
    int ret;

    if ((st = calloc(1, sizeof(*st))) == NULL) {
        rep->errors++;
        return;
    }
    if ((ret = ck_store_rotation_status(store, principal, st)) != 0) {
        /* Deleted since the list: nothing to rotate. */
        if (ret != CK_ERR_NOTFOUND) {
            ck_log(LOG_ERR, "rotation status principal=%s error=%s", principal,
                   ck_error_context());
            rep->errors++;
        }
        goto out;
    }
    ck_rotation_plan_compute(st, now, &plan);
    if (plan.activate) {
        ret = ck_store_key_activate(store, principal, st->staged_kvno, now);
        if (ret == 0) {
            ck_log(LOG_NOTICE, "rotation activate principal=%s kvno=%u previous=%u", principal,
                   st->staged_kvno, st->current_kvno);
            rep->activated++;
            if (alarms != NULL &&
                ck_alarm_clear(alarms, CK_ALARM_KEY_UNCONFIRMED, principal,
                               "kvno %u confirmed and activated", st->staged_kvno) != 0)
                ck_error_clear();
            stepped("activate", principal, st->staged_kvno);
        } else if (ret != CK_ERR_POLICY) {
            ck_log(LOG_ERR, "rotation activate principal=%s kvno=%u error=%s", principal,
                   st->staged_kvno, ck_error_context());
            rep->errors++;
        }
    }
    if (plan.unconfirmed) {
        raise_unconfirmed(alarms, st, &plan);
        rep->unconfirmed++;
    }
    if (plan.n_purge > 0) {
        ret = ck_store_key_purge(store, principal, st->policy.old_valid, st->policy.keep_min, now,
                                 &n);
        if (ret == 0 && n > 0) {
            ck_log(LOG_NOTICE, "rotation purge principal=%s kvnos=%zu current=%u", principal, n,
                   st->current_kvno);
            rep->purged += n;
            stepped("purge", principal, st->current_kvno);
        } else if (ret != 0 && ret != CK_ERR_POLICY) {
            ck_log(LOG_ERR, "rotation purge principal=%s error=%s", principal,
                   ck_error_context());
            rep->errors++;
        }
    }
    if (plan.stage) {
        ret = stage_new(store, principal, now, &kvno);
        if (ret == 0) {
            ck_log(LOG_NOTICE, "rotation stage principal=%s kvno=%u current=%u confirm=%s",
                   principal, kvno, st->current_kvno,
                   st->policy.confirm == CK_ROT_CONFIRM_NONE ? "none" : "agent");
            rep->staged++;
            stepped("stage", principal, kvno);
        } else if (ret != CK_ERR_EXISTS && ret != CK_ERR_POLICY) {
            ck_log(LOG_ERR, "rotation stage principal=%s error=%s", principal,
                   ck_error_context());
            rep->errors++;
        }
    }
out:
    free(st);
}

struct names {
    char **v;
    size_t n, cap;
};

static int
collect(const ck_rotation_policy *pol, void *arg)
{
    struct names *ns = arg;

    if (ns->n == ns->cap) {
        size_t cap = ns->cap == 0 ? 64 : ns->cap * 2;
        char **v = realloc(ns->v, cap * sizeof(*v));

        if (v == NULL)
            return ck_error_set(CK_ERR_NOMEM, "rotation policy list");
        ns->v = v;
        ns->cap = cap;
    }
    if ((ns->v[ns->n] = strdup(pol->principal)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "rotation policy list");
    ns->n++;
    return 0;
}

int
ck_rotation_tick(ck_store *store, int64_t now, struct ck_alarm_mgr *alarms,
                 ck_rotation_report *report)
{
    struct names ns = {NULL, 0, 0};
    ck_rotation_report rep;
    int ret;

    memset(&rep, 0, sizeof(rep));
    /* The names first: each step is its own transaction, and a step must not run while the
     * list's statement still reads. */
    if ((ret = ck_store_rotation_policy_list(store, collect, &ns)) != 0)
        goto out;
    for (size_t i = 0; i < ns.n; i++)
        rotate_one(store, ns.v[i], now, alarms, &rep);
out:
    for (size_t i = 0; i < ns.n; i++)
        free(ns.v[i]);
    free(ns.v);
    if (report != NULL)
        *report = rep;
    return ret;
}

int
ck_rotation_tick_one(ck_store *store, const char *principal, int64_t now,
                     struct ck_alarm_mgr *alarms, ck_rotation_report *report)
{
    ck_rotation_policy *pol;
    ck_rotation_report rep;
    int ret;

    memset(&rep, 0, sizeof(rep));
    if ((pol = malloc(sizeof(*pol))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "rotation policy");
    /* The policy's absence is the caller's error here, unlike in a pass over all of them. */
    if ((ret = ck_store_rotation_policy_get(store, principal, pol)) == 0)
        rotate_one(store, principal, now, alarms, &rep);
    free(pol);
    if (report != NULL)
        *report = rep;
    return ret;
}

int
ck_rotation_force(ck_store *store, const char *principal, int64_t now)
{
    ck_rotation_policy *pol;
    uint32_t kvno = 0;
    int ret;

    if ((pol = malloc(sizeof(*pol))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "rotation policy");
    if ((ret = ck_store_rotation_policy_get(store, principal, pol)) != 0)
        goto out;
    if (pol->paused) {
        ret = ck_error_set(CK_ERR_POLICY, "rotation of %s is paused: resume it first",
                           principal);
        goto out;
    }
    if ((ret = stage_new(store, principal, now, &kvno)) != 0)
        goto out;
    ck_log(LOG_NOTICE, "rotation stage principal=%s kvno=%u forced=yes", principal, kvno);
    stepped("stage", principal, kvno);
out:
    free(pol);
    return ret;
}
