/* SQLite backend: password policies, password history and lockout state (schema 3).
 *
 * Tables (sq_schema_policy):
 *   policy      one row per named policy (MIT kadm5 policy fields)
 *   principal   gains `policy` (REFERENCES policy) and `last_pwd_change`
 *   lockout     one row per principal that ever had an authentication event recorded: a side
 *               table, so that the KDC's batched counter writes touch neither the principal row
 *               nor the change counter (principal caches keep their records)
 *   pw_history  one key per former password (the first enctype's, still encrypted under the
 *               master key exactly as it was in the key table), newest = highest id
 * Administrative writes bump the change counter in their transaction (sq_bump_generation); the
 * KDC's lockout writes (sq_record_auth) deliberately do not. */
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "cablekey/error.h"
#include "cablekey/util.h"
#include "store/sqlite_int.h"

const char *const sq_schema_policy[] = {
    "CREATE TABLE policy("
    " name TEXT NOT NULL PRIMARY KEY,"
    " min_length INTEGER NOT NULL,"
    " min_classes INTEGER NOT NULL,"
    " history INTEGER NOT NULL,"
    " min_life INTEGER NOT NULL,"
    " max_life INTEGER NOT NULL,"
    " max_failure INTEGER NOT NULL,"
    " failure_interval INTEGER NOT NULL,"
    " lockout_duration INTEGER NOT NULL,"
    " created INTEGER NOT NULL,"
    " modified INTEGER NOT NULL) WITHOUT ROWID",
    /* ADD COLUMN with REFERENCES needs a NULL default, which is "no policy". */
    "ALTER TABLE principal ADD COLUMN policy TEXT REFERENCES policy(name)",
    "ALTER TABLE principal ADD COLUMN last_pwd_change INTEGER NOT NULL DEFAULT 0",
    "CREATE INDEX principal_policy ON principal(policy) WHERE policy IS NOT NULL",
    "CREATE TABLE lockout("
    " principal_id INTEGER PRIMARY KEY REFERENCES principal(id) ON DELETE CASCADE,"
    " fail_count INTEGER NOT NULL DEFAULT 0,"
    " last_failed INTEGER NOT NULL DEFAULT 0,"
    " last_success INTEGER NOT NULL DEFAULT 0,"
    " epoch INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE pw_history("
    " id INTEGER PRIMARY KEY,"
    " principal_id INTEGER NOT NULL REFERENCES principal(id) ON DELETE CASCADE,"
    " kvno INTEGER NOT NULL,"
    " enctype INTEGER NOT NULL,"
    " salt_type INTEGER NOT NULL,"
    " salt BLOB,"
    " mkvno INTEGER NOT NULL,"
    " key_enc BLOB NOT NULL)",
    "CREATE INDEX pw_history_principal ON pw_history(principal_id, id)",
    NULL,
};

#define POLICY_COLUMNS                                                                         \
    "name, min_length, min_classes, history, min_life, max_life, max_failure,"                \
    " failure_interval, lockout_duration, created, modified"

int
sq_read_principal_policy(sqlite3_stmt *st, int first, struct ck_store_princ_row *row)
{
    if (sqlite3_column_type(st, first) != SQLITE_NULL) {
        row->policy = sq_column_strdup(st, first);
        if (row->policy == NULL)
            return ck_error_set(CK_ERR_NOMEM, "principal row");
    }
    row->last_pwd_change = sqlite3_column_int64(st, first + 1);
    row->lockout.fail_count = (uint32_t)sqlite3_column_int64(st, first + 2);
    row->lockout.last_failed = sqlite3_column_int64(st, first + 3);
    row->lockout.last_success = sqlite3_column_int64(st, first + 4);
    row->lockout.epoch = (uint64_t)sqlite3_column_int64(st, first + 5);
    row->lockout.max_failure = (uint32_t)sqlite3_column_int64(st, first + 6);
    row->lockout.failure_interval = sqlite3_column_int64(st, first + 7);
    row->lockout.lockout_duration = sqlite3_column_int64(st, first + 8);
    return 0;
}

static void
read_policy_row(sqlite3_stmt *st, ck_policy *pol)
{
    const unsigned char *name = sqlite3_column_text(st, 0);

    memset(pol, 0, sizeof(*pol));
    ck_strlcpy(pol->name, name != NULL ? (const char *)name : "", sizeof(pol->name));
    pol->min_length = (uint32_t)sqlite3_column_int64(st, 1);
    pol->min_classes = (uint32_t)sqlite3_column_int64(st, 2);
    pol->history = (uint32_t)sqlite3_column_int64(st, 3);
    pol->min_life = sqlite3_column_int64(st, 4);
    pol->max_life = sqlite3_column_int64(st, 5);
    pol->max_failure = (uint32_t)sqlite3_column_int64(st, 6);
    pol->failure_interval = sqlite3_column_int64(st, 7);
    pol->lockout_duration = sqlite3_column_int64(st, 8);
    pol->created = sqlite3_column_int64(st, 9);
    pol->modified = sqlite3_column_int64(st, 10);
    pol->ref_count = (uint64_t)sqlite3_column_int64(st, 11);
}

/* A single integer from a query with one result row. */
static int
query_int(struct sqlite_be *be, const char *what, const char *sql, const struct sql_arg *a,
          size_t n, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc, ret;

    *out = 0;
    if ((ret = sq_query(be, what, sql, a, n, &st)) != 0)
        return ret;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    else if (rc != SQLITE_DONE)
        ret = sq_error(be, what);
    sqlite3_finalize(st);
    return ret;
}

int
sq_policy_exists(struct sqlite_be *be, const char *name)
{
    int64_t n = 0;
    int ret;

    if ((ret = query_int(be, "policy", "SELECT count(*) FROM policy WHERE name = ?",
                         ARGS(A_TEXT(name)), &n)) != 0)
        return ret;
    return n > 0 ? 0 : ck_error_set(CK_ERR_NOTFOUND, "policy %s does not exist", name);
}

int
sq_policy_put(void *arg, const ck_policy *pol, bool create, int64_t now)
{
    struct sqlite_be *be = arg;
    int64_t n = 0;
    int ret;

    if ((ret = sq_begin_write(be)) != 0)
        return ret;
    if ((ret = query_int(be, "policy", "SELECT count(*) FROM policy WHERE name = ?",
                         ARGS(A_TEXT(pol->name)), &n)) != 0)
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
        ret = sq_run(be, "create policy",
                     "INSERT INTO policy(" POLICY_COLUMNS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?,"
                     " ?, ?)",
                     ARGS(A_TEXT(pol->name), A_INT(pol->min_length), A_INT(pol->min_classes),
                          A_INT(pol->history), A_INT(pol->min_life), A_INT(pol->max_life),
                          A_INT(pol->max_failure), A_INT(pol->failure_interval),
                          A_INT(pol->lockout_duration), A_INT(now), A_INT(now)));
    else
        ret = sq_run(be, "modify policy",
                     "UPDATE policy SET min_length = ?, min_classes = ?, history = ?,"
                     " min_life = ?, max_life = ?, max_failure = ?, failure_interval = ?,"
                     " lockout_duration = ?, modified = ? WHERE name = ?",
                     ARGS(A_INT(pol->min_length), A_INT(pol->min_classes), A_INT(pol->history),
                          A_INT(pol->min_life), A_INT(pol->max_life), A_INT(pol->max_failure),
                          A_INT(pol->failure_interval), A_INT(pol->lockout_duration),
                          A_INT(now), A_TEXT(pol->name)));
    if (ret != 0)
        goto out;
    ret = sq_bump_generation(be, CK_CHANGE_POLICY, pol->name, NULL);
out:
    return sq_end_write(be, ret);
}

#define POLICY_SELECT                                                                          \
    "SELECT " POLICY_COLUMNS ", (SELECT count(*) FROM principal WHERE principal.policy ="     \
    " policy.name) FROM policy"

int
sq_policy_get(void *arg, const char *name, ck_policy *out)
{
    struct sqlite_be *be = arg;
    sqlite3_stmt *st = NULL;
    int rc, ret;

    memset(out, 0, sizeof(*out));
    if ((ret = sq_query(be, "get policy", POLICY_SELECT " WHERE name = ?", ARGS(A_TEXT(name)),
                        &st)) != 0)
        return ret;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        read_policy_row(st, out);
    else if (rc == SQLITE_DONE)
        ret = ck_error_set(CK_ERR_NOTFOUND, "policy %s does not exist", name);
    else
        ret = sq_error(be, "get policy");
    sqlite3_finalize(st);
    return ret;
}

int
sq_policy_del(void *arg, const char *name)
{
    struct sqlite_be *be = arg;
    int64_t users = 0;
    int ret;

    if ((ret = sq_begin_write(be)) != 0)
        return ret;
    if ((ret = sq_policy_exists(be, name)) != 0 ||
        (ret = query_int(be, "delete policy", "SELECT count(*) FROM principal WHERE policy = ?",
                         ARGS(A_TEXT(name)), &users)) != 0)
        goto out;
    if (users > 0) {
        ret = ck_error_set(CK_ERR_POLICY,
                           "policy %s is in use by %lld principal(s); clear it from them first",
                           name, (long long)users);
        goto out;
    }
    if ((ret = sq_run(be, "delete policy", "DELETE FROM policy WHERE name = ?",
                      ARGS(A_TEXT(name)))) != 0)
        goto out;
    ret = sq_bump_generation(be, CK_CHANGE_POLICY, name, NULL);
out:
    return sq_end_write(be, ret);
}

int
sq_policy_list(void *arg, ck_store_policy_cb cb, void *cb_arg)
{
    struct sqlite_be *be = arg;
    sqlite3_stmt *st = NULL;
    ck_policy pol;
    int rc, ret;

    if ((ret = sq_query(be, "list policies", POLICY_SELECT " ORDER BY name LIMIT ?",
                        ARGS(A_INT(CK_POLICY_LIST_MAX)), &st)) != 0)
        return ret;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        read_policy_row(st, &pol);
        if ((ret = cb(&pol, cb_arg)) != 0)
            break;
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = sq_error(be, "list policies");
    sqlite3_finalize(st);
    return ret;
}

int
sq_set_policy(void *arg, const char *name, const char *policy, int64_t now)
{
    struct sqlite_be *be = arg;
    int64_t id = 0;
    int ret;

    if ((ret = sq_begin_principal_write(be, name, 0, 0, &id)) != 0)
        return ret;
    if (policy != NULL && (ret = sq_policy_exists(be, policy)) != 0)
        goto out;
    if ((ret = sq_run(be, "set policy", "UPDATE principal SET policy = ?, modified = ?"
                      " WHERE id = ?", ARGS(A_TEXT(policy), A_INT(now), A_INT(id)))) != 0)
        goto out;
    ret = sq_bump_generation(be, CK_CHANGE_PRINCIPAL, name, NULL);
out:
    return sq_end_write(be, ret);
}

int
sq_pw_history(void *arg, const char *name, size_t max, struct ck_store_key_row **rows_out,
              size_t *n_out)
{
    struct sqlite_be *be = arg;
    struct ck_store_key_row *rows = NULL;
    sqlite3_stmt *st = NULL;
    size_t n = 0;
    int rc = SQLITE_DONE, ret;

    *rows_out = NULL;
    *n_out = 0;
    if (max == 0)
        return 0;
    if (max > CK_POLICY_MAX_HISTORY)
        max = CK_POLICY_MAX_HISTORY;
    if ((rows = calloc(max, sizeof(*rows))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "password history");
    if ((ret = sq_query(be, "password history",
                        "SELECT h.kvno, h.enctype, h.salt_type, h.salt, h.mkvno, h.key_enc"
                        " FROM pw_history h JOIN principal p ON p.id = h.principal_id"
                        " WHERE p.name = ? ORDER BY h.id DESC LIMIT ?",
                        ARGS(A_TEXT(name), A_INT(max)), &st)) != 0)
        goto out;
    while (n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if ((ret = sq_column_key_row(st, name, "password history row", &rows[n++])) != 0)
            goto out;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        ret = sq_error(be, "password history");
out:
    sqlite3_finalize(st);
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
sq_change_password(void *arg, const char *name, uint32_t old_kvno, uint32_t new_kvno,
                   const struct ck_store_key_row *keys, size_t n_keys, unsigned keep,
                   unsigned hist_keep, int64_t pw_expires, uint32_t clear_attrs, int64_t now)
{
    struct sqlite_be *be = arg;
    int64_t id = 0;
    int ret;

    /* CK_ERR_DB, not CK_ERR_POLICY: kpasswd reports a policy error as the user's fault. */
    if ((ret = sq_begin_principal_write(be, name, old_kvno, CK_ERR_DB, &id)) != 0)
        return ret;
    /* The former password's key joins the history before the key table forgets it. */
    if (hist_keep > 0 &&
        (ret = sq_run(be, "password history",
                      "INSERT INTO pw_history(principal_id, kvno, enctype, salt_type, salt, mkvno,"
                      " key_enc) SELECT principal_id, kvno, enctype, salt_type, salt, mkvno,"
                      " key_enc FROM key WHERE principal_id = ? AND kvno = ? ORDER BY ord LIMIT 1",
                      ARGS(A_INT(id), A_INT(old_kvno)))) != 0)
        goto out;
    if ((ret = sq_run(be, "trim password history",
                      "DELETE FROM pw_history WHERE principal_id = ?1 AND id NOT IN"
                      " (SELECT id FROM pw_history WHERE principal_id = ?1 ORDER BY id DESC"
                      "  LIMIT ?2)", ARGS(A_INT(id), A_INT(hist_keep)))) != 0 ||
        (ret = sq_run(be, "change password", "DELETE FROM key WHERE principal_id = ? AND kvno = ?",
                      ARGS(A_INT(id), A_INT(new_kvno)))) != 0 ||
        (ret = sq_insert_keys(be, id, keys, n_keys)) != 0 ||
        (ret = sq_run(be, "change password",
                      "UPDATE principal SET kvno = ?, last_pwd_change = ?, pw_expires = ?,"
                      " attributes = attributes & ~?, modified = ? WHERE id = ?",
                      ARGS(A_INT(new_kvno), A_INT(now), A_INT(pw_expires), A_INT(clear_attrs),
                           A_INT(now), A_INT(id)))) != 0 ||
        (ret = sq_run(be, "purge old kvnos",
                      "DELETE FROM key WHERE principal_id = ?1 AND kvno NOT IN"
                      " (SELECT DISTINCT kvno FROM key WHERE principal_id = ?1"
                      "  ORDER BY kvno DESC LIMIT ?2)", ARGS(A_INT(id), A_INT(keep)))) != 0)
        goto out;
    ret = sq_bump_generation(be, CK_CHANGE_PRINCIPAL, name, NULL);
out:
    return sq_end_write(be, ret);
}

/* One principal's batched events, merged with what other workers and KDCs wrote meanwhile:
 * failures add to the stored count unless a success came first here (the count restarts), or the
 * stored count expired (failure_interval) before the first of them. An unlock since the events'
 * record was read (epoch moved) or a principal re-created (created differs) voids them. */
static const char RECORD_AUTH_SQL[] =
    "INSERT INTO lockout(principal_id, fail_count, last_failed, last_success, epoch)"
    " SELECT id, ?4, ?6, ?7, 0 FROM principal WHERE name = ?1 AND created = ?2"
    "  AND ?3 = coalesce((SELECT epoch FROM lockout WHERE principal_id = principal.id), 0)"
    " ON CONFLICT(principal_id) DO UPDATE SET"
    "  fail_count = CASE"
    "   WHEN ?8 THEN ?4"
    "   WHEN ?4 = 0 THEN fail_count"
    "   WHEN ?9 > 0 AND ?5 > last_failed + ?9 THEN ?4"
    "   ELSE fail_count + ?4 END,"
    "  last_failed = max(last_failed, ?6),"
    "  last_success = max(last_success, ?7)"
    " WHERE epoch = ?3";

/* The KDC writes from a worker thread: waiting the usual busy timeout for another writer would
 * stall its requests, so it waits briefly and keeps the events for the next attempt instead. */
#define RECORD_AUTH_BUSY_MS 100
#define NORMAL_BUSY_MS 5000 /* sqlite.c's SQLITE_BUSY_TIMEOUT_MS */

int
sq_record_auth(void *arg, const ck_lockout_update *u, size_t n)
{
    struct sqlite_be *be = arg;
    sqlite3_stmt *st = NULL;
    int ret;

    if (n == 0)
        return 0;
    sqlite3_busy_timeout(be->db, RECORD_AUTH_BUSY_MS);
    ret = sq_begin_write(be);
    sqlite3_busy_timeout(be->db, NORMAL_BUSY_MS);
    if (ret != 0)
        return ret;
    if ((ret = sq_prepare(be, RECORD_AUTH_SQL, &st)) != 0)
        goto out;
    for (size_t i = 0; i < n && ret == 0; i++) {
        if ((ret = sq_reuse(be, st, "record authentication",
                            ARGS(A_TEXT(u[i].name), A_INT(u[i].created), A_INT(u[i].epoch),
                                 A_INT(u[i].fails), A_INT(u[i].first_failed),
                                 A_INT(u[i].last_failed), A_INT(u[i].last_success),
                                 A_INT(u[i].success ? 1 : 0), A_INT(u[i].failure_interval)))) ==
                0 &&
            sqlite3_step(st) != SQLITE_DONE)
            ret = sq_error(be, "record authentication");
    }
out:
    sqlite3_finalize(st);
    return sq_end_write(be, ret);
}

int
sq_unlock(void *arg, const char *name, int64_t now)
{
    struct sqlite_be *be = arg;
    int64_t id = 0;
    int ret;

    if ((ret = sq_begin_principal_write(be, name, 0, 0, &id)) != 0)
        return ret;
    if ((ret = sq_run(be, "unlock",
                      "INSERT INTO lockout(principal_id, epoch) VALUES (?1, 1)"
                      " ON CONFLICT(principal_id) DO UPDATE SET fail_count = 0, epoch = epoch + 1",
                      ARGS(A_INT(id)))) != 0 ||
        (ret = sq_run(be, "unlock", "UPDATE principal SET modified = ? WHERE id = ?",
                      ARGS(A_INT(now), A_INT(id)))) != 0)
        goto out;
    ret = sq_bump_generation(be, CK_CHANGE_PRINCIPAL, name, NULL);
out:
    return sq_end_write(be, ret);
}
