/* Generic store layer for password policies, the policy-checked password change and the lockout
 * state (see store.h). No SQL here: the backend's policy operations do the storage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cablekey/error.h"
#include "cablekey/store.h"
#include "cablekey/util.h"
#include "store/store_int.h"

/* Upper bound of any policy duration: 100 years, far beyond any sensible rule, and far from
 * overflowing now + duration. */
#define POLICY_MAX_SECONDS (100LL * 366 * 86400)

int
ck_policy_name_check(const char *name)
{
    size_t len;

    if (name == NULL || (len = strlen(name)) == 0)
        return ck_error_set(CK_ERR_INVAL, "empty policy name");
    if (len > CK_POLICY_NAME_MAX)
        return ck_error_set(CK_ERR_INVAL, "policy name longer than %d bytes", CK_POLICY_NAME_MAX);
    for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++) {
        if (*p <= 0x20 || *p >= 0x7f)
            return ck_error_set(CK_ERR_INVAL,
                                "policy name: only printable ASCII without spaces is allowed");
    }
    return 0;
}

static int
check_seconds(const char *field, int64_t v)
{
    if (v < 0 || v > POLICY_MAX_SECONDS)
        return ck_error_set(CK_ERR_INVAL, "policy %s: %lld seconds is out of range (0..%lld)",
                            field, (long long)v, (long long)POLICY_MAX_SECONDS);
    return 0;
}

int
ck_policy_check(const ck_policy *pol)
{
    int ret;

    if (pol == NULL)
        return ck_error_set(CK_ERR_INVAL, "no policy");
    if (memchr(pol->name, '\0', sizeof(pol->name)) == NULL)
        return ck_error_set(CK_ERR_INVAL, "policy name not terminated");
    if ((ret = ck_policy_name_check(pol->name)) != 0)
        return ret;
    if (pol->min_length > 1024)
        return ck_error_set(CK_ERR_INVAL, "policy min-length: %u is out of range (0..1024)",
                            pol->min_length);
    if (pol->min_classes > CK_POLICY_MAX_CLASSES)
        return ck_error_set(CK_ERR_INVAL, "policy min-classes: %u is out of range (0..%d)",
                            pol->min_classes, CK_POLICY_MAX_CLASSES);
    if (pol->history > CK_POLICY_MAX_HISTORY)
        return ck_error_set(CK_ERR_INVAL, "policy history: %u is out of range (0..%d)",
                            pol->history, CK_POLICY_MAX_HISTORY);
    if (pol->max_failure > 1000000)
        return ck_error_set(CK_ERR_INVAL, "policy max-failure: %u is out of range (0..1000000)",
                            pol->max_failure);
    if ((ret = check_seconds("min-life", pol->min_life)) != 0 ||
        (ret = check_seconds("max-life", pol->max_life)) != 0 ||
        (ret = check_seconds("failure-interval", pol->failure_interval)) != 0 ||
        (ret = check_seconds("lockout-duration", pol->lockout_duration)) != 0)
        return ret;
    if (pol->max_life != 0 && pol->min_life >= pol->max_life)
        return ck_error_set(CK_ERR_INVAL, "policy min-life must be shorter than max-life");
    return 0;
}

static int
policy_write(ck_store *store, const ck_policy *pol, bool create)
{
    int ret;

    if (store->readonly)
        return ck_error_set(CK_ERR_PERM, "database opened read-only");
    if ((ret = ck_policy_check(pol)) != 0)
        return ret;
    store_audit_begin(store, create ? "policy.add" : "policy.modify", pol->name,
                      "min-length %u, min-classes %u, history %u, min-life %llds, max-life %llds, "
                      "max-failure %u, failure-interval %llds, lockout-duration %llds",
                      pol->min_length, pol->min_classes, pol->history, (long long)pol->min_life,
                      (long long)pol->max_life, pol->max_failure,
                      (long long)pol->failure_interval, (long long)pol->lockout_duration);
    ret = store->ops->policy_put(store->be, pol, create, ck_store_now_int());
    store_audit_end(store);
    if (ret != 0)
        return ret;
    /* Cached principals carry their policy's lockout parameters. */
    ck_store_cache_flush(store);
    return 0;
}

int
ck_store_create_policy(ck_store *store, const ck_policy *pol)
{
    return policy_write(store, pol, true);
}

int
ck_store_modify_policy(ck_store *store, const ck_policy *pol)
{
    return policy_write(store, pol, false);
}

int
ck_store_get_policy(ck_store *store, const char *name, ck_policy *out)
{
    int ret;

    memset(out, 0, sizeof(*out));
    if ((ret = ck_policy_name_check(name)) != 0)
        return ret;
    return store->ops->policy_get(store->be, name, out);
}

int
ck_store_delete_policy(ck_store *store, const char *name)
{
    int ret;

    if (store->readonly)
        return ck_error_set(CK_ERR_PERM, "database opened read-only");
    if ((ret = ck_policy_name_check(name)) != 0)
        return ret;
    store_audit_begin(store, "policy.delete", name, NULL);
    ret = store->ops->policy_del(store->be, name);
    store_audit_end(store);
    if (ret != 0)
        return ret;
    ck_store_cache_flush(store);
    return 0;
}

int
ck_store_list_policies(ck_store *store, ck_store_policy_cb cb, void *arg)
{
    if (cb == NULL)
        return ck_error_set(CK_ERR_INVAL, "no callback");
    return store->ops->policy_list(store->be, cb, arg);
}

int
ck_store_set_principal_policy(ck_store *store, const char *name, const char *policy)
{
    int ret;

    if (store->readonly)
        return ck_error_set(CK_ERR_PERM, "database opened read-only");
    if ((ret = ck_store_check_name_int(store, name)) != 0)
        return ret;
    if (policy != NULL && (ret = ck_policy_name_check(policy)) != 0)
        return ret;
    store_audit_begin(store, "principal.policy", name, policy != NULL ? "policy %s" : "no policy",
                      policy);
    ret = store->ops->set_policy(store->be, name, policy, ck_store_now_int());
    store_audit_end(store);
    if (ret == 0)
        ck_store_cache_invalidate(&store->cache, name);
    return ret;
}

/* ---- password rules ---- */

/* MIT's five classes: lower case, upper case, digits, punctuation, and everything else (spaces,
 * control characters, bytes of non-ASCII characters). */
static unsigned
password_classes(const char *pw, size_t len)
{
    bool seen[CK_POLICY_MAX_CLASSES] = {false, false, false, false, false};
    unsigned n = 0;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)pw[i];
        int cls;

        if (c >= 'a' && c <= 'z')
            cls = 0;
        else if (c >= 'A' && c <= 'Z')
            cls = 1;
        else if (c >= '0' && c <= '9')
            cls = 2;
        else if (c > 0x20 && c < 0x7f)
            cls = 3;
        else
            cls = 4;
        seen[cls] = true;
    }
    for (int i = 0; i < CK_POLICY_MAX_CLASSES; i++)
        n += seen[i] ? 1 : 0;
    return n;
}

/* True if the password derives key k (with k's own enctype and salt); constant-time compare. */
static int
derives_key(const char *pw, size_t len, const ck_db_key *k, bool *match)
{
    ck_key d;
    int ret;

    *match = false;
    ck_key_clear(&d);
    if (!ck_enctype_is_supported(k->enctype))
        return 0;
    ret = ck_string_to_key(k->enctype, pw, len, k->salt, k->salt_len, NULL, 0, &d);
    if (ret == 0)
        *match = d.length == k->key.length && ck_ct_equal(d.contents, k->key.contents, d.length);
    ck_key_clear(&d);
    return ret;
}

/* History rule: the current password (kvno's first key) and history-1 remembered ones. */
static int
check_history(ck_store *store, const ck_db_principal *cur, const ck_policy *pol, const char *pw,
              size_t len)
{
    struct ck_store_key_row *rows = NULL;
    size_t n = 0;
    bool match = false;
    int ret = 0;

    if (pol->history <= 1)
        return 0;
    for (size_t i = 0; i < cur->n_keys && !match; i++) {
        if (cur->keys[i].kvno != cur->kvno)
            continue;
        if ((ret = derives_key(pw, len, &cur->keys[i], &match)) != 0)
            return ret;
        break; /* one key per password is enough, as the history keeps */
    }
    if (!match) {
        if ((ret = store->ops->pw_history(store->be, cur->name, pol->history - 1, &rows, &n)) != 0)
            return ret;
        for (size_t i = 0; i < n && !match && ret == 0; i++) {
            ck_db_key k;

            /* A row under an older master key cannot be compared; it ages out. */
            if (ck_store_decrypt_key_row(store, cur->name, &rows[i], &k) != 0) {
                ck_error_clear();
                continue;
            }
            ret = derives_key(pw, len, &k, &match);
            ck_key_clear(&k.key);
            free(k.salt);
        }
        ck_store_free_key_rows_int(rows, n);
        if (ret != 0)
            return ret;
    }
    if (match)
        return ck_error_set(CK_ERR_POLICY,
                            "password was used before (the policy remembers %u passwords)",
                            pol->history);
    return 0;
}

static int
check_rules(const ck_policy *pol, const char *pw, size_t len)
{
    unsigned classes;

    if (pol->min_length > 0 && len < pol->min_length)
        return ck_error_set(CK_ERR_POLICY,
                            "password is too short (%zu characters, the policy asks for at least "
                            "%u)", len, pol->min_length);
    classes = password_classes(pw, len);
    if (pol->min_classes > 1 && classes < pol->min_classes)
        return ck_error_set(CK_ERR_POLICY,
                            "password has %u character classes, the policy asks for %u (lower "
                            "case, upper case, digits, punctuation, other)", classes,
                            pol->min_classes);
    return 0;
}

int
ck_store_check_password(ck_store *store, const char *name, const ck_policy *pol, const char *pw,
                        size_t len)
{
    ck_db_principal *cur = NULL;
    int ret;

    if (pw == NULL || len == 0)
        return ck_error_set(CK_ERR_INVAL, "empty password");
    if (pol == NULL)
        return 0;
    if ((ret = check_rules(pol, pw, len)) != 0 || name == NULL)
        return ret;
    if ((ret = ck_store_get_principal(store, name, &cur)) != 0)
        return ret;
    ret = check_history(store, cur, pol, pw, len);
    ck_db_principal_free(cur);
    return ret;
}

static void
format_utc(int64_t t, char *buf, size_t size)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (gmtime_r(&tt, &tm) == NULL || strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
        snprintf(buf, size, "%lld", (long long)t);
}

int
ck_store_change_password(ck_store *store, const char *name, const char *password,
                         size_t password_len, unsigned flags, int64_t now, uint32_t *new_kvno)
{
    ck_db_principal *cur = NULL;
    ck_policy pol;
    ck_db_key *keys = NULL;
    struct ck_store_key_row *rows = NULL;
    int32_t enctypes[CK_STORE_MAX_ENCTYPES];
    size_t n_keys = 0, n_enc = 0;
    bool has_policy = false;
    int64_t pw_expires = 0;
    uint32_t next;
    int ret;

    if (store->readonly)
        return ck_error_set(CK_ERR_PERM, "database opened read-only");
    if ((flags & ~(unsigned)CK_PW_ADMIN) != 0)
        return ck_error_set(CK_ERR_INVAL, "unknown password change flags 0x%x", flags);
    if (password == NULL || password_len == 0)
        return ck_error_set(CK_ERR_INVAL, "empty password");
    if ((ret = ck_store_check_name_int(store, name)) != 0)
        return ret;
    if ((ret = ck_store_get_principal(store, name, &cur)) != 0)
        return ret;
    if (cur->policy != NULL) {
        if ((ret = store->ops->policy_get(store->be, cur->policy, &pol)) != 0)
            goto out;
        has_policy = true;
        if ((ret = check_rules(&pol, password, password_len)) != 0)
            goto out;
        /* MIT exempts a required change; an expired password is one too (else its owner could
         * not log in again before min_life passes). */
        bool must_change = (cur->attributes & CK_ATTR_REQUIRES_PWCHANGE) ||
                           (cur->pw_expires != 0 && cur->pw_expires <= now);

        if (!(flags & CK_PW_ADMIN) && !must_change && pol.min_life > 0 &&
            now < cur->last_pwd_change + pol.min_life) {
            char when[64];

            format_utc(cur->last_pwd_change + pol.min_life, when, sizeof(when));
            ret = ck_error_set(CK_ERR_POLICY,
                               "password changed too recently: it may be changed again after %s",
                               when);
            goto out;
        }
        if ((ret = check_history(store, cur, &pol, password, password_len)) != 0)
            goto out;
        if (pol.max_life > 0)
            pw_expires = now + pol.max_life;
    }
    next = cur->kvno + 1;
    if (next == 0) /* kvno 0 is "no kvno" on the wire */
        next = 1;
    /* The enctypes the principal has now (an operator may have narrowed them), else the
     * realm's. */
    for (size_t i = 0; i < cur->n_keys && n_enc < CK_STORE_MAX_ENCTYPES; i++)
        if (cur->keys[i].kvno == cur->kvno && ck_enctype_is_supported(cur->keys[i].enctype))
            enctypes[n_enc++] = cur->keys[i].enctype;
    if (n_enc == 0) {
        n_enc = store->realm.n_enctypes;
        memcpy(enctypes, store->realm.enctypes, n_enc * sizeof(enctypes[0]));
    }
    if ((ret = ck_db_keys_make(name, password, password_len, enctypes, n_enc, next, &keys,
                               &n_keys)) != 0 ||
        (ret = ck_store_encrypt_keys_int(store, name, keys, n_keys, 0, &rows)) != 0)
        goto out;
    store_audit_begin(store, "principal.password", name, "kvno %u -> %u, set by %s%s%s", cur->kvno,
                      next, (flags & CK_PW_ADMIN) ? "an administrator" : "the user",
                      has_policy ? ", policy " : "", has_policy ? pol.name : "");
    ret = store->ops->change_password(store->be, name, cur->kvno, next, rows, n_keys,
                                      CK_STORE_KEEP_KVNOS,
                                      has_policy && pol.history > 1 ? pol.history - 1 : 0,
                                      pw_expires, CK_ATTR_REQUIRES_PWCHANGE, now);
    store_audit_end(store);
    if (ret != 0)
        goto out;
    ck_store_cache_invalidate(&store->cache, name);
    if (new_kvno != NULL)
        *new_kvno = next;
out:
    ck_store_free_key_rows_int(rows, n_keys);
    ck_db_keys_free(keys, n_keys);
    ck_db_principal_free(cur);
    return ret;
}

/* ---- lockout ---- */

bool
ck_lockout_is_locked(const ck_db_lockout *l, int64_t now)
{
    if (l->max_failure == 0 || l->fail_count < l->max_failure)
        return false;
    return l->lockout_duration == 0 || now < l->last_failed + l->lockout_duration;
}

void
ck_lockout_failure(ck_db_lockout *l, int64_t now)
{
    if (l->failure_interval > 0 && now > l->last_failed + l->failure_interval)
        l->fail_count = 0;
    if (l->fail_count < UINT32_MAX)
        l->fail_count++;
    l->last_failed = now;
}

int
ck_store_record_auth(ck_store *store, const ck_lockout_update *u, size_t n)
{
    int ret;

    if (store->readonly)
        return ck_error_set(CK_ERR_PERM, "database opened read-only");
    if (n == 0)
        return 0;
    if (u == NULL)
        return ck_error_set(CK_ERR_INVAL, "no updates");
    for (size_t i = 0; i < n; i++)
        if (u[i].name == NULL)
            return ck_error_set(CK_ERR_INVAL, "lockout update without a name");
    /* The KDC's counters: not an administrative change (and no generation bump). */
    store_audit_skip(store);
    ret = store->ops->record_auth(store->be, u, n);
    store_audit_end(store);
    if (ret != 0)
        return ret;
    /* Our next lookup must see the merged count, not the record read before. */
    for (size_t i = 0; i < n; i++)
        if (u[i].fails > 0 || u[i].success)
            ck_store_cache_invalidate(&store->cache, u[i].name);
    return 0;
}

int
ck_store_unlock_principal(ck_store *store, const char *name)
{
    int ret;

    if (store->readonly)
        return ck_error_set(CK_ERR_PERM, "database opened read-only");
    if ((ret = ck_store_check_name_int(store, name)) != 0)
        return ret;
    store_audit_begin(store, "principal.unlock", name, NULL);
    ret = store->ops->unlock(store->be, name, ck_store_now_int());
    store_audit_end(store);
    if (ret == 0)
        ck_store_cache_invalidate(&store->cache, name);
    return ret;
}
