/* SQLite backend: service-key rotation (cablekey/rotation.h; the generic side is
 * store_rotation.c).
 *
 * Tables (sq_schema_rotation), all keyed by the principal's row id so that a rename keeps them
 * and a delete drops them (ON DELETE CASCADE):
 *   rotation_policy  one row per service with a policy (hosts: comma-joined names)
 *   key_version      when each kvno was staged, activated and retired. The key table stays the
 *                    truth about which kvnos exist; a kvno rotation never saw has no row
 *   key_confirm      the newest kvno each host of the service confirmed, and when
 * The staged kvno is the one above principal.kvno: the KDC selects keys at principal.kvno and
 * finds the staged one by kvno, so staging changes nothing for clients. */
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "cablekey/error.h"
#include "cablekey/util.h"
#include "store/rotation_int.h"
#include "store/sqlite_int.h"

const char *const sq_schema_rotation[] = {
    "CREATE TABLE rotation_policy("
    " principal_id INTEGER PRIMARY KEY REFERENCES principal(id) ON DELETE CASCADE,"
    " period INTEGER NOT NULL,"
    " old_valid INTEGER NOT NULL,"
    " confirm_timeout INTEGER NOT NULL,"
    " settle INTEGER NOT NULL,"
    " confirm INTEGER NOT NULL CHECK (confirm IN (0, 1)),"
    " keep_min INTEGER NOT NULL,"
    " paused INTEGER NOT NULL DEFAULT 0,"
    " hosts TEXT NOT NULL DEFAULT '',"
    " created INTEGER NOT NULL,"
    " modified INTEGER NOT NULL)",
    "CREATE TABLE key_version("
    " principal_id INTEGER NOT NULL REFERENCES principal(id) ON DELETE CASCADE,"
    " kvno INTEGER NOT NULL,"
    " staged INTEGER NOT NULL DEFAULT 0,"
    " activated INTEGER NOT NULL DEFAULT 0,"
    " retired INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (principal_id, kvno))",
    "CREATE TABLE key_confirm("
    " principal_id INTEGER NOT NULL REFERENCES principal(id) ON DELETE CASCADE,"
    " host TEXT NOT NULL,"
    " kvno INTEGER NOT NULL,"
    " confirmed INTEGER NOT NULL,"
    " PRIMARY KEY (principal_id, host))",
    NULL,
};

#define ROT_COLUMNS                                                                            \
    "p.name, r.period, r.old_valid, r.confirm_timeout, r.settle, r.confirm, r.keep_min,"      \
    " r.paused, r.hosts"
#define ROT_SELECT                                                                             \
    "SELECT " ROT_COLUMNS " FROM rotation_policy r JOIN principal p ON p.id = r.principal_id"

static int
read_rot_row(sqlite3_stmt *st, ck_rotation_policy *pol)
{
    const unsigned char *name = sqlite3_column_text(st, 0);
    const unsigned char *hosts = sqlite3_column_text(st, 8);

    memset(pol, 0, sizeof(*pol));
    ck_strlcpy(pol->principal, name != NULL ? (const char *)name : "", sizeof(pol->principal));
    pol->period = sqlite3_column_int64(st, 1);
    pol->old_valid = sqlite3_column_int64(st, 2);
    pol->confirm_timeout = sqlite3_column_int64(st, 3);
    pol->settle = sqlite3_column_int64(st, 4);
    pol->confirm = sqlite3_column_int64(st, 5) == CK_ROT_CONFIRM_NONE ? CK_ROT_CONFIRM_NONE
                                                                       : CK_ROT_CONFIRM_AGENT;
    pol->keep_min = (unsigned)sqlite3_column_int64(st, 6);
    pol->paused = sqlite3_column_int64(st, 7) != 0;
    return ck_rot_hosts_split(hosts != NULL ? (const char *)hosts : "", pol);
}

/* Inside a write transaction: the principal's id and kvno, CK_ERR_NOTFOUND if absent. */
static int
lookup(struct sqlite_be *be, const char *name, int64_t *id, uint32_t *kvno)
{
    int ret = sq_lookup_id(be, name, id, kvno);

    if (ret == 0 && *id == 0)
        ret = ck_error_set(CK_ERR_NOTFOUND, "principal %s not found", name);
    return ret;
}

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
sq_rot_policy_put(void *arg, const ck_rotation_policy *pol, int64_t now)
{
    struct sqlite_be *be = arg;
    char hosts[CK_ROT_HOSTS_TEXT_MAX];
    int64_t id = 0;
    uint32_t kvno = 0;
    int ret;

    if ((ret = ck_rot_hosts_join(pol, hosts, sizeof(hosts))) != 0)
        return ret;
    if ((ret = sq_begin_write(be)) != 0)
        return ret;
    if ((ret = lookup(be, pol->principal, &id, &kvno)) != 0)
        goto out;
    if ((ret = sq_run(be, "rotation policy",
                      "INSERT INTO rotation_policy(principal_id, period, old_valid,"
                      " confirm_timeout, settle, confirm, keep_min, paused, hosts, created,"
                      " modified) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)"
                      " ON CONFLICT(principal_id) DO UPDATE SET period = ?2, old_valid = ?3,"
                      " confirm_timeout = ?4, settle = ?5, confirm = ?6, keep_min = ?7,"
                      " paused = ?8, hosts = ?9, modified = ?10",
                      ARGS(A_INT(id), A_INT(pol->period), A_INT(pol->old_valid),
                           A_INT(pol->confirm_timeout), A_INT(pol->settle), A_INT(pol->confirm),
                           A_INT(pol->keep_min), A_INT(pol->paused ? 1 : 0), A_TEXT(hosts),
                           A_INT(now)))) != 0 ||
        /* The first period counts from now for a key rotation never saw activated. */
        (ret = sq_run(be, "rotation policy",
                      "INSERT INTO key_version(principal_id, kvno, activated) VALUES (?1, ?2, ?3)"
                      " ON CONFLICT(principal_id, kvno) DO UPDATE SET activated = ?3"
                      " WHERE activated = 0",
                      ARGS(A_INT(id), A_INT(kvno), A_INT(now)))) != 0)
        goto out;
    ret = sq_bump_generation(be, CK_CHANGE_PRINCIPAL, pol->principal, NULL);
out:
    return sq_end_write(be, ret);
}

int
sq_rot_policy_get(void *arg, const char *name, ck_rotation_policy *out)
{
    struct sqlite_be *be = arg;
    sqlite3_stmt *st = NULL;
    int rc, ret;

    memset(out, 0, sizeof(*out));
    if ((ret = sq_query(be, "get rotation policy", ROT_SELECT " WHERE p.name = ?",
                        ARGS(A_TEXT(name)), &st)) != 0)
        return ret;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        ret = read_rot_row(st, out);
    else if (rc == SQLITE_DONE)
        ret = ck_error_set(CK_ERR_NOTFOUND, "%s has no rotation policy", name);
    else
        ret = sq_error(be, "get rotation policy");
    sqlite3_finalize(st);
    return ret;
}

/* Runs a one-row change on the policy of name, CK_ERR_NOTFOUND if it has none. */
static int
policy_change(struct sqlite_be *be, const char *name, const char *what, const char *sql,
              const struct sql_arg *a, size_t n)
{
    int64_t id = 0;
    uint32_t kvno = 0;
    int ret;

    if ((ret = sq_begin_write(be)) != 0)
        return ret;
    if ((ret = lookup(be, name, &id, &kvno)) != 0)
        goto out;
    /* Every statement here binds the principal id as ?1. */
    {
        struct sql_arg args[4];

        if (n + 1 > sizeof(args) / sizeof(args[0])) {
            ret = ck_error_set(CK_ERR_INVAL, "%s: too many arguments", what);
            goto out;
        }
        args[0] = A_INT(id);
        if (n > 0)
            memcpy(args + 1, a, n * sizeof(*a));
        if ((ret = sq_run(be, what, sql, args, n + 1)) != 0)
            goto out;
    }
    if (sqlite3_changes(be->db) == 0) {
        ret = ck_error_set(CK_ERR_NOTFOUND, "%s has no rotation policy", name);
        goto out;
    }
    ret = sq_bump_generation(be, CK_CHANGE_PRINCIPAL, name, NULL);
out:
    return sq_end_write(be, ret);
}

int
sq_rot_policy_del(void *arg, const char *name)
{
    return policy_change(arg, name, "delete rotation policy",
                         "DELETE FROM rotation_policy WHERE principal_id = ?1", NULL, 0);
}

int
sq_rot_pause(void *arg, const char *name, bool paused, int64_t now)
{
    return policy_change(arg, name, "pause rotation",
                         "UPDATE rotation_policy SET paused = ?2, modified = ?3"
                         " WHERE principal_id = ?1",
                         ARGS(A_INT(paused ? 1 : 0), A_INT(now)));
}

int
sq_rot_policy_list(void *arg, ck_store_rotation_cb cb, void *cb_arg)
{
    struct sqlite_be *be = arg;
    sqlite3_stmt *st = NULL;
    ck_rotation_policy *pol;
    int rc = SQLITE_DONE, ret;

    if ((pol = malloc(sizeof(*pol))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "rotation policy");
    if ((ret = sq_query(be, "list rotation policies", ROT_SELECT " ORDER BY p.name LIMIT ?",
                        ARGS(A_INT(CK_ROT_LIST_MAX)), &st)) != 0)
        goto out;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if ((ret = read_rot_row(st, pol)) != 0 || (ret = cb(pol, cb_arg)) != 0)
            break;
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = sq_error(be, "list rotation policies");
out:
    sqlite3_finalize(st);
    free(pol);
    return ret;
}

int
sq_key_stage(void *arg, const char *name, uint32_t cur_kvno, uint32_t new_kvno,
             const struct ck_store_key_row *keys, size_t n_keys, int64_t now, uint32_t *staged)
{
    struct sqlite_be *be = arg;
    int64_t id = 0, top = 0;
    uint32_t kvno = 0;
    int ret;

    *staged = 0;
    if ((ret = sq_begin_write(be)) != 0)
        return ret;
    if ((ret = lookup(be, name, &id, &kvno)) != 0)
        goto out;
    if (kvno != cur_kvno) {
        ret = ck_error_set(CK_ERR_POLICY, "principal %s changed concurrently (kvno %u -> %u); "
                           "retry", name, cur_kvno, kvno);
        goto out;
    }
    if ((ret = query_int(be, "stage key", "SELECT coalesce(max(kvno), 0) FROM key"
                         " WHERE principal_id = ?", ARGS(A_INT(id)), &top)) != 0)
        goto out;
    if (top > (int64_t)kvno) {
        *staged = (uint32_t)top;
        ret = ck_error_set(CK_ERR_EXISTS, "principal %s: kvno %u is already staged", name,
                           (unsigned)top);
        goto out;
    }
    for (size_t i = 0; i < n_keys; i++) {
        if (keys[i].kvno != new_kvno) {
            ret = ck_error_set(CK_ERR_INVAL, "principal %s: staged key of kvno %u, not %u", name,
                               keys[i].kvno, new_kvno);
            goto out;
        }
    }
    if ((ret = sq_insert_keys(be, id, keys, n_keys)) != 0 ||
        (ret = sq_run(be, "stage key",
                      "INSERT INTO key_version(principal_id, kvno, staged) VALUES (?1, ?2, ?3)"
                      " ON CONFLICT(principal_id, kvno) DO UPDATE SET staged = ?3,"
                      " activated = 0, retired = 0",
                      ARGS(A_INT(id), A_INT(new_kvno), A_INT(now)))) != 0)
        goto out;
    ret = sq_bump_generation(be, CK_CHANGE_PRINCIPAL, name, NULL);
out:
    return sq_end_write(be, ret);
}

int
sq_key_confirm(void *arg, const char *name, const char *host, uint32_t kvno, int64_t now)
{
    struct sqlite_be *be = arg;
    int64_t id = 0, n = 0, known = 0;
    uint32_t cur = 0;
    uint64_t gen = 0;
    int ret;

    if ((ret = sq_begin_write(be)) != 0)
        return ret;
    if ((ret = lookup(be, name, &id, &cur)) != 0 ||
        (ret = query_int(be, "confirm key", "SELECT count(*) FROM key WHERE principal_id = ?"
                         " AND kvno = ?", ARGS(A_INT(id), A_INT(kvno)), &n)) != 0)
        goto out;
    if (n == 0) {
        ret = ck_error_set(CK_ERR_NOTFOUND, "principal %s has no kvno %u", name, kvno);
        goto out;
    }
    if ((ret = query_int(be, "confirm key", "SELECT count(*) FROM key_confirm"
                         " WHERE principal_id = ? AND host = ?", ARGS(A_INT(id), A_TEXT(host)),
                         &known)) != 0)
        goto out;
    /* A new host beyond the bound replaces the one that confirmed least recently (a host taken
     * out of service stops confirming). */
    if (known == 0 &&
        (ret = sq_run(be, "confirm key",
                      "DELETE FROM key_confirm WHERE principal_id = ?1 AND host IN"
                      " (SELECT host FROM key_confirm WHERE principal_id = ?1"
                      "  ORDER BY confirmed DESC, host LIMIT -1 OFFSET ?2)",
                      ARGS(A_INT(id), A_INT(CK_ROT_CONFIRM_ROWS - 1)))) != 0)
        goto out;
    if ((ret = sq_run(be, "confirm key",
                      "INSERT INTO key_confirm(principal_id, host, kvno, confirmed)"
                      " VALUES (?1, ?2, ?3, ?4) ON CONFLICT(principal_id, host) DO UPDATE SET"
                      " kvno = ?3, confirmed = ?4 WHERE kvno < ?3",
                      ARGS(A_INT(id), A_TEXT(host), A_INT(kvno), A_INT(now)))) != 0)
        goto out;
    /* Not an administrative change (caches keep their records), but the audit log names it. */
    if ((ret = sqlite_generation(be, &gen)) != 0)
        goto out;
    ret = sq_audit_write(be, CK_CHANGE_PRINCIPAL, name, gen);
out:
    return sq_end_write(be, ret);
}

int
sq_key_activate(void *arg, const char *name, uint32_t kvno, int64_t now)
{
    struct sqlite_be *be = arg;
    int64_t id = 0, top = 0;
    uint32_t cur = 0;
    int ret;

    if ((ret = sq_begin_write(be)) != 0)
        return ret;
    if ((ret = lookup(be, name, &id, &cur)) != 0 ||
        (ret = query_int(be, "activate key", "SELECT coalesce(max(kvno), 0) FROM key"
                         " WHERE principal_id = ?", ARGS(A_INT(id)), &top)) != 0)
        goto out;
    if (kvno <= cur || (int64_t)kvno != top) {
        ret = ck_error_set(CK_ERR_POLICY, "principal %s: kvno %u is not the staged kvno "
                           "(current %u)", name, kvno, cur);
        goto out;
    }
    if ((ret = sq_run(be, "activate key", "UPDATE principal SET kvno = ?, modified = ?"
                      " WHERE id = ?", ARGS(A_INT(kvno), A_INT(now), A_INT(id)))) != 0 ||
        (ret = sq_run(be, "activate key",
                      "INSERT INTO key_version(principal_id, kvno, retired) VALUES (?1, ?2, ?3)"
                      " ON CONFLICT(principal_id, kvno) DO UPDATE SET retired = ?3",
                      ARGS(A_INT(id), A_INT(cur), A_INT(now)))) != 0 ||
        (ret = sq_run(be, "activate key",
                      "INSERT INTO key_version(principal_id, kvno, activated) VALUES (?1, ?2, ?3)"
                      " ON CONFLICT(principal_id, kvno) DO UPDATE SET activated = ?3, retired = 0",
                      ARGS(A_INT(id), A_INT(kvno), A_INT(now)))) != 0)
        goto out;
    ret = sq_bump_generation(be, CK_CHANGE_PRINCIPAL, name, NULL);
out:
    return sq_end_write(be, ret);
}

int
sq_key_purge(void *arg, const char *name, uint32_t cur_kvno, const uint32_t *kvnos, size_t n)
{
    struct sqlite_be *be = arg;
    int64_t id = 0;
    uint32_t cur = 0;
    int ret;

    if ((ret = sq_begin_write(be)) != 0)
        return ret;
    if ((ret = lookup(be, name, &id, &cur)) != 0)
        goto out;
    if (cur != cur_kvno) {
        ret = ck_error_set(CK_ERR_POLICY, "principal %s changed concurrently (kvno %u -> %u); "
                           "retry", name, cur_kvno, cur);
        goto out;
    }
    for (size_t i = 0; i < n && ret == 0; i++) {
        if (kvnos[i] >= cur) {
            ret = ck_error_set(CK_ERR_POLICY, "principal %s: kvno %u is not retired", name,
                               kvnos[i]);
            break;
        }
        if ((ret = sq_run(be, "purge key", "DELETE FROM key WHERE principal_id = ? AND kvno = ?",
                          ARGS(A_INT(id), A_INT(kvnos[i])))) == 0)
            ret = sq_run(be, "purge key",
                         "DELETE FROM key_version WHERE principal_id = ? AND kvno = ?",
                         ARGS(A_INT(id), A_INT(kvnos[i])));
    }
    if (ret == 0)
        ret = sq_bump_generation(be, CK_CHANGE_PRINCIPAL, name, NULL);
out:
    return sq_end_write(be, ret);
}

static int
read_status(struct sqlite_be *be, const char *name, ck_rotation_status *out)
{
    sqlite3_stmt *st = NULL;
    int64_t id = 0;
    uint32_t cur = 0;
    int rc, ret;

    if ((ret = lookup(be, name, &id, &cur)) != 0)
        return ret;
    ck_strlcpy(out->principal, name, sizeof(out->principal));
    out->current_kvno = cur;
    ret = sq_rot_policy_get(be, name, &out->policy);
    if (ret == 0)
        out->has_policy = true;
    else if (ret == CK_ERR_NOTFOUND)
        ck_error_clear();
    else
        return ret;
    if ((ret = sq_query(be, "rotation status",
                        "SELECT k.kvno, coalesce(v.staged, 0), coalesce(v.activated, 0),"
                        " coalesce(v.retired, 0) FROM (SELECT DISTINCT kvno FROM key"
                        " WHERE principal_id = ?1) k LEFT JOIN key_version v"
                        " ON v.principal_id = ?1 AND v.kvno = k.kvno ORDER BY k.kvno DESC"
                        " LIMIT ?2", ARGS(A_INT(id), A_INT(CK_STORE_MAX_KEYS)), &st)) != 0)
        return ret;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && out->n_kvnos < CK_STORE_MAX_KEYS) {
        ck_rotation_kvno *k = &out->kvnos[out->n_kvnos++];

        k->kvno = (uint32_t)sqlite3_column_int64(st, 0);
        k->staged = sqlite3_column_int64(st, 1);
        k->activated = sqlite3_column_int64(st, 2);
        k->retired = sqlite3_column_int64(st, 3);
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        ret = sq_error(be, "rotation status");
    sqlite3_finalize(st);
    st = NULL;
    if (ret != 0)
        return ret;
    if (out->n_kvnos > 0 && out->kvnos[0].kvno > cur)
        out->staged_kvno = out->kvnos[0].kvno;
    if ((ret = sq_query(be, "rotation status",
                        "SELECT host, kvno, confirmed FROM key_confirm WHERE principal_id = ?"
                        " ORDER BY host LIMIT ?", ARGS(A_INT(id), A_INT(CK_ROT_HOSTS_MAX)),
                        &st)) != 0)
        return ret;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && out->n_confirmations < CK_ROT_HOSTS_MAX) {
        ck_rotation_confirmation *c = &out->confirmations[out->n_confirmations++];
        const unsigned char *h = sqlite3_column_text(st, 0);

        ck_strlcpy(c->host, h != NULL ? (const char *)h : "", sizeof(c->host));
        c->kvno = (uint32_t)sqlite3_column_int64(st, 1);
        c->confirmed = sqlite3_column_int64(st, 2);
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        ret = sq_error(be, "rotation status");
    sqlite3_finalize(st);
    return ret;
}

int
sq_rot_status(void *arg, const char *name, ck_rotation_status *out)
{
    struct sqlite_be *be = arg;
    int ret;

    memset(out, 0, sizeof(*out));
    /* One read transaction: the kvnos, the current kvno and the confirmations agree. */
    if ((ret = sq_exec(be, "BEGIN")) != 0)
        return ret;
    ret = read_status(be, name, out);
    sqlite3_exec(be->db, ret == 0 ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL);
    return ret;
}
