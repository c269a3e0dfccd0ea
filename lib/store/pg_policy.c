/* PostgreSQL backend: password policies, password history, lockout state, realm settings,
 * renames and the audit log, with the semantics of sqlite_policy.c, sqlite_admin.c and
 * sqlite_audit.c. Administrative writes bump the change counter in their transaction
 * (pg_bump_generation, which also writes the audit row); the KDC's lockout counters
 * (pg_record_auth) deliberately do not. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "cablekey/error.h"
#include "cablekey/util.h"
#include "store/pg_int.h"

#define POLICY_COLUMNS                                                                         \
    "name, min_length, min_classes, history, min_life, max_life, max_failure,"                \
    " failure_interval, lockout_duration, created, modified"
#define POLICY_SELECT                                                                          \
    "SELECT " POLICY_COLUMNS ", (SELECT count(*) FROM principal WHERE principal.policy ="     \
    " policy.name) FROM policy"

static void
read_policy_row(const PGresult *r, int i, ck_policy *pol)
{
    memset(pol, 0, sizeof(*pol));
    ck_strlcpy(pol->name, PQgetvalue(r, i, 0), sizeof(pol->name));
    pol->min_length = (uint32_t)pg_col_i64(r, i, 1);
    pol->min_classes = (uint32_t)pg_col_i64(r, i, 2);
    pol->history = (uint32_t)pg_col_i64(r, i, 3);
    pol->min_life = pg_col_i64(r, i, 4);
    pol->max_life = pg_col_i64(r, i, 5);
    pol->max_failure = (uint32_t)pg_col_i64(r, i, 6);
    pol->failure_interval = pg_col_i64(r, i, 7);
    pol->lockout_duration = pg_col_i64(r, i, 8);
    pol->created = pg_col_i64(r, i, 9);
    pol->modified = pg_col_i64(r, i, 10);
    pol->ref_count = (uint64_t)pg_col_i64(r, i, 11);
}

/* A single integer from a query with at most one result row (0 if none). */
static int
query_int(struct pg_be *be, const char *what, const char *sql, const struct pg_arg *a, size_t n,
          int64_t *out)
{
    PGresult *r = NULL;
    int ret;

    *out = 0;
    if ((ret = pg_query(be, what, sql, a, n, &r)) != 0)
        return ret;
    if (PQntuples(r) > 0)
        *out = pg_col_i64(r, 0, 0);
    PQclear(r);
    return 0;
}

int
pg_policy_exists(struct pg_be *be, const char *name)
{
    int64_t n = 0;
    int ret;

    if ((ret = query_int(be, "policy", "SELECT count(*) FROM policy WHERE name = $1",
                         PARGS(P_TEXT(name)), &n)) != 0)
        return ret;
    return n > 0 ? 0 : ck_error_set(CK_ERR_NOTFOUND, "policy %s does not exist", name);
}

int
pg_policy_put(void *arg, const ck_policy *pol, bool create, int64_t now)
{
    struct pg_be *be = arg;
    int64_t n = 0;
    int ret;

    if ((ret = pg_begin_write(be)) != 0)
        return ret;
    if ((ret = query_int(be, "policy", "SELECT count(*) FROM policy WHERE name = $1",
                         PARGS(P_TEXT(pol->name)), &n)) != 0)
        goto out;
    if (create && n > 0) {
        ret = ck_error_set(CK_ERR_EXISTS, "policy %s already exists", pol->name);
        goto out;
    }
    if (!create && n == 0) {
        ret = ck_error_set(CK_ERR_NOTFOUND, "policy %s does not exist", pol->name);
        goto out;
    }
    if (create)
        ret = pg_run(be, "create policy",
                     "INSERT INTO policy(" POLICY_COLUMNS ") VALUES ($1, $2, $3, $4, $5, $6, $7,"
                     " $8, $9, $10, $11)",
                     PARGS(P_TEXT(pol->name), P_INT(pol->min_length), P_INT(pol->min_classes),
                           P_INT(pol->history), P_INT(pol->min_life), P_INT(pol->max_life),
                           P_INT(pol->max_failure), P_INT(pol->failure_interval),
                           P_INT(pol->lockout_duration), P_INT(now), P_INT(now)), NULL);
    else
        ret = pg_run(be, "modify policy",
                     "UPDATE policy SET min_length = $1, min_classes = $2, history = $3,"
                     " min_life = $4, max_life = $5, max_failure = $6, failure_interval = $7,"
                     " lockout_duration = $8, modified = $9 WHERE name = $10",
                     PARGS(P_INT(pol->min_length), P_INT(pol->min_classes), P_INT(pol->history),
                           P_INT(pol->min_life), P_INT(pol->max_life), P_INT(pol->max_failure),
                           P_INT(pol->failure_interval), P_INT(pol->lockout_duration),
                           P_INT(now), P_TEXT(pol->name)), NULL);
    if (ret != 0)
        goto out;
    ret = pg_bump_generation(be, CK_CHANGE_POLICY, pol->name, NULL);
out:
    return pg_end_write(be, ret);
}

int
pg_policy_get(void *arg, const char *name, ck_policy *out)
{
    struct pg_be *be = arg;
    PGresult *r = NULL;
    int ret;

    memset(out, 0, sizeof(*out));
    if ((ret = pg_query(be, "get policy", POLICY_SELECT " WHERE name = $1", PARGS(P_TEXT(name)),
                        &r)) != 0)
        return ret;
    if (PQntuples(r) == 1)
        read_policy_row(r, 0, out);
    else
        ret = ck_error_set(CK_ERR_NOTFOUND, "policy %s does not exist", name);
    PQclear(r);
    return ret;
}

int
pg_policy_del(void *arg, const char *name)
{
    struct pg_be *be = arg;
    int64_t users = 0;
    int ret;

    if ((ret = pg_begin_write(be)) != 0)
        return ret;
    if ((ret = pg_policy_exists(be, name)) != 0 ||
        (ret = query_int(be, "delete policy", "SELECT count(*) FROM principal WHERE policy = $1",
                         PARGS(P_TEXT(name)), &users)) != 0)
        goto out;
    if (users > 0) {
        ret = ck_error_set(CK_ERR_POLICY,
                           "policy %s is in use by %lld principal(s); clear it from them first",
                           name, (long long)users);
        goto out;
    }
    if ((ret = pg_run(be, "delete policy", "DELETE FROM policy WHERE name = $1",
                      PARGS(P_TEXT(name)), NULL)) != 0)
        goto out;
    ret = pg_bump_generation(be, CK_CHANGE_POLICY, name, NULL);
out:
    return pg_end_write(be, ret);
}

int
pg_policy_list(void *arg, ck_store_policy_cb cb, void *cb_arg)
{
    struct pg_be *be = arg;
    PGresult *r = NULL;
    ck_policy pol;
    int ret;

    if ((ret = pg_query(be, "list policies",
                        POLICY_SELECT " ORDER BY name COLLATE \"C\" LIMIT $1",
                        PARGS(P_INT(CK_POLICY_LIST_MAX)), &r)) != 0)
        return ret;
    for (int i = 0; i < PQntuples(r) && ret == 0; i++) {
        read_policy_row(r, i, &pol);
        ret = cb(&pol, cb_arg);
    }
    PQclear(r);
    return ret;
}

int
pg_set_policy(void *arg, const char *name, const char *policy, int64_t now)
{
    struct pg_be *be = arg;
    int64_t id = 0;
    int ret;

    if ((ret = pg_begin_principal_write(be, name, 0, 0, &id)) != 0)
        return ret;
    if (policy != NULL && (ret = pg_policy_exists(be, policy)) != 0)
        goto out;
    if ((ret = pg_run(be, "set policy", "UPDATE principal SET policy = $1, modified = $2"
                      " WHERE id = $3", PARGS(P_TEXT(policy), P_INT(now), P_INT(id)),
                      NULL)) != 0)
        goto out;
    ret = pg_bump_generation(be, CK_CHANGE_PRINCIPAL, name, NULL);
out:
    return pg_end_write(be, ret);
}

int
pg_pw_history(void *arg, const char *name, size_t max, struct ck_store_key_row **rows_out,
              size_t *n_out)
{
    struct pg_be *be = arg;
    struct ck_store_key_row *rows = NULL;
    PGresult *r = NULL;
    size_t n = 0;
    int ret;

    *rows_out = NULL;
    *n_out = 0;
    if (max == 0)
        return 0;
    if (max > CK_POLICY_MAX_HISTORY)
        max = CK_POLICY_MAX_HISTORY;
    if ((rows = calloc(max, sizeof(*rows))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "password history");
    if ((ret = pg_query(be, "password history",
                        "SELECT h.kvno, h.enctype, h.salt_type, h.salt, h.mkvno, h.key_enc"
                        " FROM pw_history h JOIN principal p ON p.id = h.principal_id"
                        " WHERE p.name = $1 ORDER BY h.id DESC LIMIT $2",
                        PARGS(P_TEXT(name), P_INT(max)), &r)) != 0)
        goto out;
    for (int i = 0; i < PQntuples(r) && n < max; i++) {
        if ((ret = pg_col_key_row(r, i, 0, name, "password history row", &rows[n++])) != 0)
            goto out;
    }
out:
    PQclear(r);
    if (ret != 0) {
        for (size_t i = 0; i < n; i++) {
            free(rows[i].salt);
            free(rows[i].key_enc);
        }
        free(rows);
        return ret;
    }
    *rows_out = rows;
    *n_out = n;
    return 0;
}

int
pg_change_password(void *arg, const char *name, uint32_t old_kvno, uint32_t new_kvno,
                   const struct ck_store_key_row *keys, size_t n_keys, unsigned keep,
                   unsigned hist_keep, int64_t pw_expires, uint32_t clear_attrs, int64_t now)
{
    struct pg_be *be = arg;
    int64_t id = 0;
    int ret;

    /* CK_ERR_DB, not CK_ERR_POLICY: kpasswd reports a policy error as the user's fault. */
    if ((ret = pg_begin_principal_write(be, name, old_kvno, CK_ERR_DB, &id)) != 0)
        return ret;
    if (hist_keep > 0 &&
        (ret = pg_run(be, "password history",
                      "INSERT INTO pw_history(principal_id, kvno, enctype, salt_type, salt, mkvno,"
                      " key_enc) SELECT principal_id, kvno, enctype, salt_type, salt, mkvno,"
                      " key_enc FROM key WHERE principal_id = $1 AND kvno = $2 ORDER BY ord"
                      " LIMIT 1", PARGS(P_INT(id), P_INT(old_kvno)), NULL)) != 0)
        goto out;
    if ((ret = pg_run(be, "trim password history",
                      "DELETE FROM pw_history WHERE principal_id = $1 AND id NOT IN"
                      " (SELECT id FROM pw_history WHERE principal_id = $1 ORDER BY id DESC"
                      "  LIMIT $2)", PARGS(P_INT(id), P_INT(hist_keep)), NULL)) != 0 ||
        (ret = pg_run(be, "change password",
                      "DELETE FROM key WHERE principal_id = $1 AND kvno = $2",
                      PARGS(P_INT(id), P_INT(new_kvno)), NULL)) != 0 ||
        (ret = pg_insert_keys(be, id, keys, n_keys)) != 0 ||
        (ret = pg_run(be, "change password",
                      "UPDATE principal SET kvno = $1, last_pwd_change = $2, pw_expires = $3,"
                      " attributes = attributes & ~$4::bigint, modified = $5 WHERE id = $6",
                      PARGS(P_INT(new_kvno), P_INT(now), P_INT(pw_expires), P_INT(clear_attrs),
                            P_INT(now), P_INT(id)), NULL)) != 0 ||
        (ret = pg_run(be, "purge old kvnos",
                      "DELETE FROM key WHERE principal_id = $1 AND kvno NOT IN"
                      " (SELECT DISTINCT kvno FROM key WHERE principal_id = $1"
                      "  ORDER BY kvno DESC LIMIT $2)", PARGS(P_INT(id), P_INT(keep)),
                      NULL)) != 0)
        goto out;
    ret = pg_bump_generation(be, CK_CHANGE_PRINCIPAL, name, NULL);
out:
    return pg_end_write(be, ret);
}

/* As sqlite_policy.c's RECORD_AUTH_SQL: merges one principal's batched events with what other
 * workers and KDCs wrote meanwhile; an unlock (epoch moved) or a re-created principal voids
 * them. */
static const char RECORD_AUTH_SQL[] =
    "INSERT INTO lockout AS l(principal_id, fail_count, last_failed, last_success, epoch)"
    " SELECT id, $4, $6, $7, 0 FROM principal WHERE name = $1 AND created = $2"
    "  AND $3 = coalesce((SELECT epoch FROM lockout WHERE principal_id = principal.id), 0)"
    " ON CONFLICT (principal_id) DO UPDATE SET"
    "  fail_count = CASE"
    "   WHEN $8 <> 0 THEN $4"
    "   WHEN $4 = 0 THEN l.fail_count"
    "   WHEN $9 > 0 AND $5 > l.last_failed + $9 THEN $4"
    "   ELSE l.fail_count + $4 END,"
    "  last_failed = greatest(l.last_failed, $6),"
    "  last_success = greatest(l.last_success, $7)"
    " WHERE l.epoch = $3";

int
pg_record_auth(void *arg, const ck_lockout_update *u, size_t n)
{
    struct pg_be *be = arg;
    int ret;

    if (n == 0)
        return 0;
    /* No generation lock: these writes are upserts, and a KDC worker must not queue behind
     * an administrative transaction. */
    if ((ret = pg_begin_plain(be)) != 0)
        return ret;
    for (size_t i = 0; i < n && ret == 0; i++)
        ret = pg_run(be, "record authentication", RECORD_AUTH_SQL,
                     PARGS(P_TEXT(u[i].name), P_INT(u[i].created), P_INT(u[i].epoch),
                           P_INT(u[i].fails), P_INT(u[i].first_failed), P_INT(u[i].last_failed),
                           P_INT(u[i].last_success), P_INT(u[i].success ? 1 : 0),
                           P_INT(u[i].failure_interval)), NULL);
    return pg_end_write(be, ret);
}

int
pg_unlock(void *arg, const char *name, int64_t now)
{
    struct pg_be *be = arg;
    int64_t id = 0;
    int ret;

    if ((ret = pg_begin_principal_write(be, name, 0, 0, &id)) != 0)
        return ret;
    if ((ret = pg_run(be, "unlock",
                      "INSERT INTO lockout AS l(principal_id, epoch) VALUES ($1, 1)"
                      " ON CONFLICT (principal_id) DO UPDATE SET fail_count = 0,"
                      " epoch = l.epoch + 1", PARGS(P_INT(id)), NULL)) != 0 ||
        (ret = pg_run(be, "unlock", "UPDATE principal SET modified = $1 WHERE id = $2",
                      PARGS(P_INT(now), P_INT(id)), NULL)) != 0)
        goto out;
    ret = pg_bump_generation(be, CK_CHANGE_PRINCIPAL, name, NULL);
out:
    return pg_end_write(be, ret);
}

/* ---- realm settings and renames ---- */

int
pg_realm_modify(void *arg, const ck_realm_info *realm)
{
    struct pg_be *be = arg;
    char enctypes[CK_STORE_MAX_ENCTYPES * 12 + 1];
    size_t pos = 0;
    uint64_t n = 0;
    int ret;

    enctypes[0] = '\0';
    for (size_t i = 0; i < realm->n_enctypes && i < CK_STORE_MAX_ENCTYPES; i++) {
        int w = snprintf(enctypes + pos, sizeof(enctypes) - pos, "%s%d", i ? "," : "",
                         (int)realm->enctypes[i]);
        if (w < 0 || (size_t)w >= sizeof(enctypes) - pos)
            return ck_error_set(CK_ERR_LIMIT, "enctype list");
        pos += (size_t)w;
    }
    if ((ret = pg_begin_write(be)) != 0)
        return ret;
    if ((ret = pg_run(be, "modify realm",
                      "UPDATE realm SET enctypes = $1, max_life = $2, max_renew = $3,"
                      " default_attributes = $4 WHERE id = 1",
                      PARGS(P_TEXT(enctypes), P_INT(realm->max_life), P_INT(realm->max_renew),
                            P_INT(realm->default_attributes)), &n)) != 0)
        goto out;
    if (n != 1) {
        ret = ck_error_set(CK_ERR_DB, "realm row missing");
        goto out;
    }
    ret = pg_bump_generation(be, CK_CHANGE_ALL, NULL, NULL);
out:
    return pg_end_write(be, ret);
}

static int
rename_history(struct pg_be *be, int64_t id, const struct ck_store_key_row *hist, size_t n_hist)
{
    uint64_t n = 0;
    int ret = 0;

    for (size_t i = 0; i < n_hist && ret == 0; i++) {
        ret = pg_run(be, "rename password history",
                     "UPDATE pw_history SET mkvno = $1, key_enc = $2 WHERE id ="
                     " (SELECT id FROM pw_history WHERE principal_id = $3 ORDER BY id DESC"
                     "  LIMIT 1 OFFSET $4) AND kvno = $5 AND enctype = $6",
                     PARGS(P_INT(hist[i].mkvno), P_BLOB(hist[i].key_enc, hist[i].key_enc_len),
                           P_INT(id), P_INT(i), P_INT(hist[i].kvno), P_INT(hist[i].enctype)),
                     &n);
        if (ret == 0 && n != 1)
            ret = ck_error_set(CK_ERR_POLICY, "password history changed during the rename; "
                               "retry");
    }
    if (ret == 0)
        ret = pg_run(be, "rename password history",
                     "DELETE FROM pw_history WHERE principal_id = $1 AND id NOT IN"
                     " (SELECT id FROM pw_history WHERE principal_id = $1 ORDER BY id DESC"
                     "  LIMIT $2)", PARGS(P_INT(id), P_INT(n_hist)), NULL);
    return ret;
}

int
pg_rename(void *arg, const char *old_name, const char *new_name, uint32_t kvno,
          const struct ck_store_key_row *keys, size_t n_keys,
          const struct ck_store_key_row *hist, size_t n_hist, int64_t now)
{
    struct pg_be *be = arg;
    int64_t id = 0, other = 0;
    uint64_t gen = 0;
    int ret;

    if ((ret = pg_begin_principal_write(be, old_name, kvno, CK_ERR_POLICY, &id)) != 0)
        return ret;
    if ((ret = pg_lookup_id(be, new_name, &other, NULL)) != 0)
        goto out;
    if (other != 0) {
        ret = ck_error_set(CK_ERR_EXISTS, "principal %s already exists", new_name);
        goto out;
    }
    /* The device rows point at the name: checked at commit, once both carry the new name. */
    if ((ret = pg_run(be, "rename principal", "SET CONSTRAINTS ALL DEFERRED", PNOARGS,
                      NULL)) != 0 ||
        (ret = pg_run(be, "rename principal",
                      "UPDATE principal SET name = $1, modified = $2 WHERE id = $3",
                      PARGS(P_TEXT(new_name), P_INT(now), P_INT(id)), NULL)) != 0 ||
        (ret = pg_run(be, "rename principal", "DELETE FROM key WHERE principal_id = $1",
                      PARGS(P_INT(id)), NULL)) != 0 ||
        (ret = pg_insert_keys(be, id, keys, n_keys)) != 0 ||
        (ret = rename_history(be, id, hist, n_hist)) != 0)
        goto out;
    if ((ret = pg_bump_generation(be, CK_CHANGE_ALL, NULL, &gen)) != 0)
        goto out;
    ret = pg_run(be, "rename principal",
                 "UPDATE device SET principal = $1, modified = $2, generation = $3"
                 " WHERE principal = $4",
                 PARGS(P_TEXT(new_name), P_INT(now), P_INT(gen), P_TEXT(old_name)), NULL);
out:
    return pg_end_write(be, ret);
}

/* ---- audit log ---- */

static const char *
generic_action(enum ck_store_change_kind kind)
{
    switch (kind) {
    case CK_CHANGE_PRINCIPAL: return "principal.change";
    case CK_CHANGE_DEVICE: return "device.change";
    case CK_CHANGE_POLICY: return "policy.change";
    case CK_CHANGE_ALL: break;
    }
    return "realm.change";
}

int
pg_audit_write(struct pg_be *be, enum ck_store_change_kind kind, const char *key, uint64_t gen)
{
    const struct ck_store_audit *a = be->audit;
    char uid_actor[32];
    const char *actor, *action, *object, *detail;
    int64_t now = 0;
    int ret;

    if (be->audit_written)
        return 0;
    be->audit_written = true;
    if (a != NULL && a->pending && a->skip)
        return 0;
    if (a != NULL && a->actor[0] != '\0') {
        actor = a->actor;
    } else {
        snprintf(uid_actor, sizeof(uid_actor), "uid %u", (unsigned)geteuid());
        actor = uid_actor;
    }
    if (a != NULL && a->pending) {
        action = a->action;
        object = a->object;
        detail = a->detail;
    } else {
        action = generic_action(key != NULL ? kind : CK_CHANGE_ALL);
        object = key != NULL ? key : "";
        detail = "";
    }
    ck_now(&now, NULL);
    if ((ret = pg_run(be, "audit",
                      "INSERT INTO audit(time, actor, action, object, detail, generation)"
                      " VALUES ($1, $2, $3, $4, $5, $6)",
                      PARGS(P_INT(now), P_TEXT(actor), P_TEXT(action), P_TEXT(object),
                            P_TEXT(detail), P_INT(gen)), NULL)) != 0 ||
        (ret = pg_run(be, "trim audit",
                      "DELETE FROM audit WHERE id <= (SELECT max(id) FROM audit) -"
                      " (SELECT keep_rows FROM audit_retention WHERE id = 1)",
                      PNOARGS, NULL)) != 0 ||
        (ret = pg_run(be, "trim audit",
                      "DELETE FROM audit WHERE time < $1 - 86400 *"
                      " (SELECT keep_days FROM audit_retention WHERE id = 1)"
                      " AND (SELECT keep_days FROM audit_retention WHERE id = 1) > 0",
                      PARGS(P_INT(now)), NULL)) != 0)
        return ret;
    return 0;
}

void
pg_audit_attach(void *arg, struct ck_store_audit *audit)
{
    struct pg_be *be = arg;

    be->audit = audit;
}

int
pg_audit_list(void *arg, const ck_audit_filter *f, ck_store_audit_cb cb, void *cb_arg)
{
    struct pg_be *be = arg;
    PGresult *r = NULL;
    char like[CK_AUDIT_ACTION_MAX * 2 + 2];
    const char *action = f->action;
    bool family = false;
    int ret;

    if (action != NULL) {
        size_t n = strlen(action), o = 0;

        family = n > 0 && action[n - 1] == '.';
        if (family) {
            for (size_t i = 0; i < n && o + 3 < sizeof(like); i++) {
                if (action[i] == '%' || action[i] == '_' || action[i] == '\\')
                    like[o++] = '\\';
                like[o++] = action[i];
            }
            like[o++] = '%';
            like[o] = '\0';
            action = like;
        }
    }
    ret = pg_query(be, "audit list",
                   "SELECT id, time, generation, actor, action, object, detail FROM"
                   " (SELECT * FROM audit WHERE time >= $1 AND ($2::text IS NULL OR object = $2)"
                   "  AND ($3::text IS NULL OR ($4 <> 0 AND action LIKE $3 ESCAPE '\\')"
                   "       OR ($4 = 0 AND action = $3))"
                   "  ORDER BY id DESC LIMIT $5) a ORDER BY id",
                   PARGS(P_INT(f->since), P_TEXT(f->object), P_TEXT(action), P_INT(family),
                         P_INT(f->limit)), &r);
    if (ret != 0)
        return ret;
    for (int i = 0; i < PQntuples(r) && ret == 0; i++) {
        ck_audit_entry e;

        e.id = pg_col_i64(r, i, 0);
        e.time = pg_col_i64(r, i, 1);
        e.generation = (uint64_t)pg_col_i64(r, i, 2);
        e.actor = PQgetvalue(r, i, 3);
        e.action = PQgetvalue(r, i, 4);
        e.object = PQgetvalue(r, i, 5);
        e.detail = PQgetvalue(r, i, 6);
        ret = cb(&e, cb_arg);
    }
    PQclear(r);
    return ret;
}

int
pg_audit_get_retention(void *arg, ck_audit_retention *r)
{
    struct pg_be *be = arg;
    PGresult *res = NULL;
    int ret;

    if ((ret = pg_query(be, "audit retention",
                        "SELECT keep_rows, keep_days FROM audit_retention WHERE id = 1", PNOARGS,
                        &res)) != 0)
        return ret;
    if (PQntuples(res) == 1) {
        r->keep_rows = pg_col_i64(res, 0, 0);
        r->keep_days = pg_col_i64(res, 0, 1);
    } else {
        ret = ck_error_set(CK_ERR_DB, "audit retention row missing");
    }
    PQclear(res);
    return ret;
}

int
pg_audit_set_retention(void *arg, const ck_audit_retention *r)
{
    struct pg_be *be = arg;
    uint64_t gen = 0;
    int ret;

    if ((ret = pg_begin_write(be)) != 0)
        return ret;
    /* Audited, but no generation bump: nothing a KDC caches changed. */
    if ((ret = pg_run(be, "audit retention",
                      "UPDATE audit_retention SET keep_rows = $1, keep_days = $2 WHERE id = 1",
                      PARGS(P_INT(r->keep_rows), P_INT(r->keep_days)), NULL)) != 0 ||
        (ret = pg_generation(be, &gen)) != 0)
        goto out;
    ret = pg_audit_write(be, CK_CHANGE_ALL, NULL, gen);
out:
    return pg_end_write(be, ret);
}
