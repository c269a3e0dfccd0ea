/* Generic store layer of service-key versioning (cablekey/rotation.h): validation, key
 * encryption under the master key, the audit naming of each step, and the plan (what is due
 * when) that status, purge and the engine share. No SQL here: the backends' rot_* and key_*
 * operations do the storage, each step in one transaction. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/crypto.h"
#include "cablekey/error.h"
#include "cablekey/rotation.h"
#include "cablekey/store.h"
#include "cablekey/util.h"
#include "store/rotation_int.h"
#include "store/store_int.h"

/* Far beyond any sensible rotation setting, and far from overflowing now + duration. */
#define ROT_MAX_SECONDS (100LL * 366 * 86400)

#define NEED_OP(store, op, what)                                                                 \
    do {                                                                                         \
        if ((store)->ops->op == NULL)                                                            \
            return ck_error_set(CK_ERR_UNSUPPORTED,                                              \
                                "the %s database backend has no service-key rotation (%s)",      \
                                (store)->ops->name, what);                                       \
    } while (0)

/* A host name as an agent reports it: printable ASCII without spaces or commas (the list
 * separator of `--hosts` and of the stored policy). */
static int
check_host(const char *host)
{
    size_t len;

    if (host == NULL || (len = strlen(host)) == 0)
        return ck_error_set(CK_ERR_INVAL, "empty host name");
    if (len >= CK_ROT_HOST_MAX)
        return ck_error_set(CK_ERR_INVAL, "host name longer than %d bytes", CK_ROT_HOST_MAX - 1);
    for (const unsigned char *p = (const unsigned char *)host; *p != '\0'; p++) {
        if (*p <= 0x20 || *p >= 0x7f || *p == ',')
            return ck_error_set(CK_ERR_INVAL, "host name: only printable ASCII without spaces or "
                                "commas is allowed");
    }
    return 0;
}

static int
check_seconds(const char *field, int64_t v, int64_t min)
{
    if (v < min || v > ROT_MAX_SECONDS)
        return ck_error_set(CK_ERR_INVAL, "rotation %s: %lld seconds is out of range (%lld..%lld)",
                            field, (long long)v, (long long)min, (long long)ROT_MAX_SECONDS);
    return 0;
}

static int
check_policy_fields(const ck_rotation_policy *pol)
{
    int ret;

    if (memchr(pol->principal, '\0', sizeof(pol->principal)) == NULL)
        return ck_error_set(CK_ERR_INVAL, "rotation policy: principal name not terminated");
    if ((ret = check_seconds("period", pol->period, CK_ROT_PERIOD_MIN)) != 0 ||
        (ret = check_seconds("old-valid", pol->old_valid, 0)) != 0 ||
        (ret = check_seconds("confirm-timeout", pol->confirm_timeout, 0)) != 0 ||
        (ret = check_seconds("settle", pol->settle, 0)) != 0)
        return ret;
    if (pol->confirm != CK_ROT_CONFIRM_AGENT && pol->confirm != CK_ROT_CONFIRM_NONE)
        return ck_error_set(CK_ERR_INVAL, "rotation confirm: unknown mode %d", (int)pol->confirm);
    if (pol->keep_min > CK_STORE_MAX_KEYS / 2)
        return ck_error_set(CK_ERR_INVAL, "rotation keep: %u is out of range (0..%d)",
                            pol->keep_min, CK_STORE_MAX_KEYS / 2);
    if (pol->n_hosts > CK_ROT_HOSTS_MAX)
        return ck_error_set(CK_ERR_INVAL, "rotation hosts: more than %d", CK_ROT_HOSTS_MAX);
    if (pol->confirm == CK_ROT_CONFIRM_NONE && pol->n_hosts > 0)
        return ck_error_set(CK_ERR_INVAL, "rotation hosts: confirm none names no hosts");
    for (size_t i = 0; i < pol->n_hosts; i++) {
        if (memchr(pol->hosts[i], '\0', CK_ROT_HOST_MAX) == NULL)
            return ck_error_set(CK_ERR_INVAL, "rotation hosts: name not terminated");
        if ((ret = check_host(pol->hosts[i])) != 0)
            return ret;
        for (size_t j = 0; j < i; j++)
            if (strcmp(pol->hosts[i], pol->hosts[j]) == 0)
                return ck_error_set(CK_ERR_INVAL, "rotation hosts: %s listed twice",
                                    pol->hosts[i]);
    }
    return 0;
}

/* The longest a ticket for this service can stay valid: its life, and its renewable life when
 * its tickets may be renewable (MIT bounds both by the realm's and the service's limits). */
static int64_t
ticket_bound(const ck_realm_info *realm, const ck_db_principal *p)
{
    int64_t life = realm->max_life, renew = realm->max_renew;

    if (p->max_life > 0 && p->max_life < life)
        life = p->max_life;
    if (p->max_renew > 0 && p->max_renew < renew)
        renew = p->max_renew;
    if (p->attributes & CK_ATTR_DISALLOW_RENEWABLE)
        renew = 0;
    return renew > life ? renew : life;
}

int
ck_store_rotation_policy_set(ck_store *store, const ck_rotation_policy *pol)
{
    ck_db_principal *p = NULL;
    int64_t bound;
    int ret;

    NEED_OP(store, rot_policy_put, "policy set");
    if (store->readonly)
        return ck_error_set(CK_ERR_PERM, "database opened read-only");
    if (pol == NULL)
        return ck_error_set(CK_ERR_INVAL, "no rotation policy");
    if ((ret = check_policy_fields(pol)) != 0 ||
        (ret = ck_store_check_name_int(store, pol->principal)) != 0)
        return ret;
    if ((ret = ck_store_get_principal(store, pol->principal, &p)) != 0)
        return ret;
    bound = ticket_bound(&store->realm, p);
    if (pol->old_valid < bound) {
        ret = ck_error_set(CK_ERR_POLICY,
                           "rotation old-valid %llds is shorter than the longest ticket for %s "
                           "(%llds: maximum ticket life, or renewable life): tickets issued "
                           "before a rotation would become undecryptable",
                           (long long)pol->old_valid, pol->principal, (long long)bound);
        goto out;
    }
    store_audit_begin(store, "rotation.policy", pol->principal,
                      "period %llds, old-valid %llds, confirm %s, %zu host(s), settle %llds, "
                      "confirm-timeout %llds, keep %u%s",
                      (long long)pol->period, (long long)pol->old_valid,
                      pol->confirm == CK_ROT_CONFIRM_NONE ? "none" : "agent", pol->n_hosts,
                      (long long)pol->settle, (long long)pol->confirm_timeout, pol->keep_min,
                      pol->paused ? ", paused" : "");
    ret = store->ops->rot_policy_put(store->be, pol, ck_store_now_int());
    store_audit_end(store);
out:
    ck_db_principal_free(p);
    return ret;
}

int
ck_store_rotation_policy_get(ck_store *store, const char *principal, ck_rotation_policy *out)
{
    int ret;

    memset(out, 0, sizeof(*out));
    NEED_OP(store, rot_policy_get, "policy show");
    if ((ret = ck_store_check_name_int(store, principal)) != 0)
        return ret;
    return store->ops->rot_policy_get(store->be, principal, out);
}

int
ck_store_rotation_policy_del(ck_store *store, const char *principal)
{
    int ret;

    NEED_OP(store, rot_policy_del, "policy delete");
    if (store->readonly)
        return ck_error_set(CK_ERR_PERM, "database opened read-only");
    if ((ret = ck_store_check_name_int(store, principal)) != 0)
        return ret;
    store_audit_begin(store, "rotation.policy-delete", principal, NULL);
    ret = store->ops->rot_policy_del(store->be, principal);
    store_audit_end(store);
    return ret;
}

int
ck_store_rotation_pause(ck_store *store, const char *principal, bool paused)
{
    int ret;

    NEED_OP(store, rot_pause, paused ? "pause" : "resume");
    if (store->readonly)
        return ck_error_set(CK_ERR_PERM, "database opened read-only");
    if ((ret = ck_store_check_name_int(store, principal)) != 0)
        return ret;
    store_audit_begin(store, paused ? "rotation.pause" : "rotation.resume", principal, NULL);
    ret = store->ops->rot_pause(store->be, principal, paused, ck_store_now_int());
    store_audit_end(store);
    return ret;
}

int
ck_store_rotation_policy_list(ck_store *store, ck_store_rotation_cb cb, void *arg)
{
    NEED_OP(store, rot_policy_list, "policy list");
    if (cb == NULL)
        return ck_error_set(CK_ERR_INVAL, "no callback");
    return store->ops->rot_policy_list(store->be, cb, arg);
}

/* ---- the steps ---- */

static int
check_stage_keys(const char *name, const ck_db_key *keys, size_t n)
{
    if (keys == NULL || n == 0)
        return ck_error_set(CK_ERR_INVAL, "principal %s: no keys to stage", name);
    if (n > CK_STORE_MAX_ENCTYPES)
        return ck_error_set(CK_ERR_LIMIT, "principal %s: more than %d keys in one kvno", name,
                            CK_STORE_MAX_ENCTYPES);
    for (size_t i = 0; i < n; i++) {
        if (keys[i].enctype != keys[i].key.enctype || !ck_enctype_is_supported(keys[i].enctype) ||
            keys[i].key.length != ck_enctype_key_length(keys[i].enctype))
            return ck_error_set(CK_ERR_INVAL, "principal %s: bad key for enctype %d", name,
                                (int)keys[i].enctype);
        if (keys[i].salt_len > CK_STORE_MAX_SALT)
            return ck_error_set(CK_ERR_LIMIT, "principal %s: salt too long", name);
        for (size_t j = 0; j < i; j++)
            if (keys[j].enctype == keys[i].enctype)
                return ck_error_set(CK_ERR_INVAL, "principal %s: enctype %d listed twice", name,
                                    (int)keys[i].enctype);
    }
    return 0;
}

int
ck_store_key_stage(ck_store *store, const char *principal, const ck_db_key *keys,
                   size_t n_keys, int64_t now, uint32_t *kvno)
{
    struct ck_store_key_row *rows = NULL;
    ck_db_principal *cur = NULL;
    uint32_t next, staged = 0;
    int ret;

    NEED_OP(store, key_stage, "stage");
    if (kvno != NULL)
        *kvno = 0;
    if (store->readonly)
        return ck_error_set(CK_ERR_PERM, "database opened read-only");
    if ((ret = ck_store_check_name_int(store, principal)) != 0 ||
        (ret = check_stage_keys(principal, keys, n_keys)) != 0)
        return ret;
    if ((ret = ck_store_get_principal(store, principal, &cur)) != 0)
        return ret;
    for (size_t i = 0; i < cur->n_keys; i++)
        if (cur->keys[i].kvno > cur->kvno && cur->keys[i].kvno > staged)
            staged = cur->keys[i].kvno;
    if (staged != 0) {
        if (kvno != NULL)
            *kvno = staged;
        ret = ck_error_set(CK_ERR_EXISTS, "principal %s: kvno %u is already staged", principal,
                           staged);
        goto out;
    }
    /* Staging never wraps the counter: kvno 0 is "no kvno" on the wire, and a wrapped kvno
     * would sort below the current one. */
    if (cur->kvno == UINT32_MAX) {
        ret = ck_error_set(CK_ERR_POLICY, "principal %s: kvno counter exhausted", principal);
        goto out;
    }
    next = cur->kvno + 1;
    if ((ret = ck_store_encrypt_keys_int(store, principal, keys, n_keys, next, &rows)) != 0)
        goto out;
    {
        char detail[CK_AUDIT_DETAIL_MAX];

        store_audit_describe_keys(detail, sizeof(detail), keys, n_keys);
        store_audit_begin(store, "rotation.stage", principal, "kvno %u staged beside %u, %s",
                          next, cur->kvno, detail);
    }
    ret = store->ops->key_stage(store->be, principal, cur->kvno, next, rows, n_keys, now,
                                &staged);
    store_audit_end(store);
    if (ret == CK_ERR_EXISTS && kvno != NULL)
        *kvno = staged;
    if (ret != 0)
        goto out;
    ck_store_cache_invalidate(&store->cache, principal);
    if (kvno != NULL)
        *kvno = next;
out:
    ck_store_free_key_rows_int(rows, n_keys);
    ck_db_principal_free(cur);
    return ret;
}

int
ck_store_key_confirm(ck_store *store, const char *principal, const char *host, uint32_t kvno,
                     int64_t now)
{
    int ret;

    NEED_OP(store, key_confirm, "confirm");
    if (store->readonly)
        return ck_error_set(CK_ERR_PERM, "database opened read-only");
    if ((ret = ck_store_check_name_int(store, principal)) != 0 || (ret = check_host(host)) != 0)
        return ret;
    if (kvno == 0)
        return ck_error_set(CK_ERR_INVAL, "kvno 0 cannot be confirmed");
    store_audit_begin(store, "rotation.confirm", principal, "host %s holds kvno %u", host, kvno);
    ret = store->ops->key_confirm(store->be, principal, host, kvno, now);
    store_audit_end(store);
    return ret;
}

int
ck_store_key_activate(ck_store *store, const char *principal, uint32_t kvno, int64_t now)
{
    int ret;

    NEED_OP(store, key_activate, "activate");
    if (store->readonly)
        return ck_error_set(CK_ERR_PERM, "database opened read-only");
    if ((ret = ck_store_check_name_int(store, principal)) != 0)
        return ret;
    store_audit_begin(store, "rotation.activate", principal, "kvno %u becomes current", kvno);
    ret = store->ops->key_activate(store->be, principal, kvno, now);
    store_audit_end(store);
    if (ret == 0)
        ck_store_cache_invalidate(&store->cache, principal);
    return ret;
}

/* The retired kvnos (below the current one) that may go at now: retired + old_valid + grace
 * passed, and not among the newest keep_min retired ones. A kvno whose retirement time rotation
 * never saw (keys rotated by hand) takes the activation time of the kvno after it; unknown
 * both, it is left to `principal rotate --keep`. *due: the earliest time another becomes
 * purgeable (0: none). */
static size_t
purge_candidates(const ck_rotation_status *st, int64_t old_valid, unsigned keep_min, int64_t now,
                 uint32_t *out, int64_t *due)
{
    size_t n = 0, retired_seen = 0;

    *due = 0;
    if (keep_min == 0)
        keep_min = 1;
    for (size_t i = 0; i < st->n_kvnos; i++) {
        const ck_rotation_kvno *k = &st->kvnos[i];
        int64_t when = k->retired, at;

        if (k->kvno >= st->current_kvno)
            continue;
        if (retired_seen++ < keep_min)
            continue;
        if (when == 0 && i > 0 && st->kvnos[i - 1].kvno <= st->current_kvno)
            when = st->kvnos[i - 1].activated;
        if (when == 0)
            continue;
        at = when + old_valid + CK_ROT_PURGE_GRACE;
        if (at <= now)
            out[n++] = k->kvno;
        else if (*due == 0 || at < *due)
            *due = at;
    }
    return n;
}

static int64_t
earliest(int64_t a, int64_t b)
{
    if (a == 0)
        return b;
    if (b == 0)
        return a;
    return a < b ? a : b;
}

static const ck_rotation_kvno *
find_kvno(const ck_rotation_status *st, uint32_t kvno)
{
    for (size_t i = 0; i < st->n_kvnos; i++)
        if (st->kvnos[i].kvno == kvno)
            return &st->kvnos[i];
    return NULL;
}

static bool
host_confirmed(const ck_rotation_status *st, const char *host, uint32_t kvno)
{
    for (size_t i = 0; i < st->n_confirmations; i++)
        if (strcmp(st->confirmations[i].host, host) == 0)
            return st->confirmations[i].kvno >= kvno;
    return false;
}

void
ck_rotation_plan_compute(const ck_rotation_status *st, int64_t now, ck_rotation_plan *plan)
{
    const ck_rotation_policy *pol = &st->policy;
    int64_t purge_due = 0, due = 0;

    memset(plan, 0, sizeof(*plan));
    if (!st->has_policy || pol->paused)
        return;
    plan->n_purge = purge_candidates(st, pol->old_valid, pol->keep_min, now, plan->purge,
                                     &purge_due);
    if (plan->n_purge > 0)
        purge_due = now;
    if (st->staged_kvno != 0) {
        const ck_rotation_kvno *k = find_kvno(st, st->staged_kvno);
        int64_t staged_at = k != NULL ? k->staged : 0;

        if (pol->confirm == CK_ROT_CONFIRM_NONE) {
            due = staged_at + pol->settle;
            plan->activate = due <= now;
        } else {
            bool any = false;

            for (size_t i = 0; i < pol->n_hosts; i++)
                if (!host_confirmed(st, pol->hosts[i], st->staged_kvno))
                    plan->missing[plan->n_missing++] = pol->hosts[i];
            if (pol->n_hosts == 0)
                for (size_t i = 0; i < st->n_confirmations; i++)
                    any = any || st->confirmations[i].kvno >= st->staged_kvno;
            plan->activate = pol->n_hosts > 0 ? plan->n_missing == 0 : any;
            if (plan->activate) {
                due = now;
            } else {
                due = staged_at + pol->confirm_timeout;
                plan->unconfirmed = due <= now;
                /* Raised already: the next step is the hosts', not a time. */
                if (plan->unconfirmed)
                    due = 0;
            }
        }
    } else {
        const ck_rotation_kvno *k = find_kvno(st, st->current_kvno);
        int64_t ref = k != NULL ? (k->activated != 0 ? k->activated : k->staged) : 0;

        due = ref + pol->period;
        plan->stage = due <= now;
    }
    plan->next_due = earliest(due, purge_due);
}

int
ck_store_key_purge(ck_store *store, const char *principal, int64_t old_valid, unsigned keep_min,
                   int64_t now, size_t *n_purged)
{
    ck_rotation_status *st = NULL;
    uint32_t kvnos[CK_STORE_MAX_KEYS];
    char detail[CK_AUDIT_DETAIL_MAX];
    size_t n, len = 0;
    int64_t due;
    int ret;

    NEED_OP(store, key_purge, "purge");
    if (n_purged != NULL)
        *n_purged = 0;
    if (store->readonly)
        return ck_error_set(CK_ERR_PERM, "database opened read-only");
    if (old_valid < 0 || old_valid > ROT_MAX_SECONDS)
        return ck_error_set(CK_ERR_INVAL, "rotation old-valid out of range");
    if ((st = calloc(1, sizeof(*st))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "rotation status");
    if ((ret = ck_store_rotation_status(store, principal, st)) != 0)
        goto out;
    n = purge_candidates(st, old_valid, keep_min, now, kvnos, &due);
    if (n == 0)
        goto out;
    detail[0] = '\0';
    for (size_t i = 0; i < n && len < sizeof(detail); i++) {
        int w = snprintf(detail + len, sizeof(detail) - len, "%s%u", i > 0 ? "," : "", kvnos[i]);

        if (w < 0)
            break;
        len += (size_t)w;
    }
    store_audit_begin(store, "rotation.purge", principal, "kvno %s removed (current %u)", detail,
                      st->current_kvno);
    ret = store->ops->key_purge(store->be, principal, st->current_kvno, kvnos, n);
    store_audit_end(store);
    if (ret != 0)
        goto out;
    ck_store_cache_invalidate(&store->cache, principal);
    if (n_purged != NULL)
        *n_purged = n;
out:
    free(st);
    return ret;
}

int
ck_store_rotation_status(ck_store *store, const char *principal, ck_rotation_status *out)
{
    ck_rotation_plan plan;
    int ret;

    memset(out, 0, sizeof(*out));
    NEED_OP(store, rot_status, "status");
    if ((ret = ck_store_check_name_int(store, principal)) != 0)
        return ret;
    if ((ret = store->ops->rot_status(store->be, principal, out)) != 0)
        return ret;
    ck_rotation_plan_compute(out, ck_store_now_int(), &plan);
    out->next_due = plan.next_due;
    return 0;
}

/* ---- for the backends (rotation_int.h) ---- */

int
ck_rot_hosts_join(const ck_rotation_policy *pol, char *buf, size_t size)
{
    size_t len = 0;

    if (size == 0)
        return ck_error_set(CK_ERR_INVAL, "host list buffer");
    buf[0] = '\0';
    for (size_t i = 0; i < pol->n_hosts; i++) {
        int w = snprintf(buf + len, size - len, "%s%s", i > 0 ? "," : "", pol->hosts[i]);

        if (w < 0 || (size_t)w >= size - len)
            return ck_error_set(CK_ERR_LIMIT, "rotation host list too long");
        len += (size_t)w;
    }
    return 0;
}

int
ck_rot_hosts_split(const char *text, ck_rotation_policy *pol)
{
    pol->n_hosts = 0;
    while (text != NULL && *text != '\0') {
        const char *comma = strchr(text, ',');
        size_t n = comma != NULL ? (size_t)(comma - text) : strlen(text);

        if (n == 0 || n >= CK_ROT_HOST_MAX || pol->n_hosts >= CK_ROT_HOSTS_MAX)
            return ck_error_set(CK_ERR_DB, "rotation policy of %s: host list malformed",
                                pol->principal);
        memcpy(pol->hosts[pol->n_hosts], text, n);
        pol->hosts[pol->n_hosts][n] = '\0';
        pol->n_hosts++;
        text = comma != NULL ? comma + 1 : text + n;
    }
    return 0;
}
