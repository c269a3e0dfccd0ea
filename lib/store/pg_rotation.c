/* PostgreSQL backend: service-key rotation, with the semantics of sqlite_rotation.c (the tables
 * and their meaning are described there). Every write takes the generation lock first
 * (pg_begin_write), so two KDCs of a fleet running the engine at once serialize: the second one
 * sees the first one's staged kvno (CK_ERR_EXISTS) or activation (CK_ERR_POLICY). */
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "cablekey/error.h"
#include "cablekey/util.h"
#include "store/pg_int.h"
#include "store/rotation_int.h"

const char *const pg_schema_rotation[] = {
    "CREATE TABLE rotation_policy("
    " principal_id BIGINT PRIMARY KEY REFERENCES principal(id) ON DELETE CASCADE,"
    " period BIGINT NOT NULL,"
    " old_valid BIGINT NOT NULL,"
    " confirm_timeout BIGINT NOT NULL,"
    " settle BIGINT NOT NULL,"
    " confirm INTEGER NOT NULL CHECK (confirm IN (0, 1)),"
    " keep_min BIGINT NOT NULL,"
    " paused INTEGER NOT NULL DEFAULT 0,"
    " hosts TEXT NOT NULL DEFAULT '',"
    " created BIGINT NOT NULL,"
    " modified BIGINT NOT NULL)",
    "CREATE TABLE key_version("
    " principal_id BIGINT NOT NULL REFERENCES principal(id) ON DELETE CASCADE,"
    " kvno BIGINT NOT NULL,"
    " staged BIGINT NOT NULL DEFAULT 0,"
    " activated BIGINT NOT NULL DEFAULT 0,"
    " retired BIGINT NOT NULL DEFAULT 0,"
    " PRIMARY KEY (principal_id, kvno))",
    "CREATE TABLE key_confirm("
    " principal_id BIGINT NOT NULL REFERENCES principal(id) ON DELETE CASCADE,"
    " host TEXT NOT NULL,"
    " kvno BIGINT NOT NULL,"
    " confirmed BIGINT NOT NULL,"
    " PRIMARY KEY (principal_id, host))",
    NULL,
};

#define ROT_SELECT                                                                             \
    "SELECT p.name, r.period, r.old_valid, r.confirm_timeout, r.settle, r.confirm, r.keep_min," \
    " r.paused, r.hosts FROM rotation_policy r JOIN principal p ON p.id = r.principal_id"

static int
read_rot_row(const PGresult *r, int i, ck_rotation_policy *pol)
{
    memset(pol, 0, sizeof(*pol));
    ck_strlcpy(pol->principal, PQgetvalue(r, i, 0), sizeof(pol->principal));
    pol->period = pg_col_i64(r, i, 1);
    pol->old_valid = pg_col_i64(r, i, 2);
    pol->confirm_timeout = pg_col_i64(r, i, 3);
    pol->settle = pg_col_i64(r, i, 4);
    pol->confirm = pg_col_i64(r, i, 5) == CK_ROT_CONFIRM_NONE ? CK_ROT_CONFIRM_NONE
                                                                : CK_ROT_CONFIRM_AGENT;
    pol->keep_min = (unsigned)pg_col_i64(r, i, 6);
    pol->paused = pg_col_i64(r, i, 7) != 0;
    return ck_rot_hosts_split(PQgetvalue(r, i, 8), pol);
}

static int
lookup(struct pg_be *be, const char *name, int64_t *id, uint32_t *kvno)
{
    int ret = pg_lookup_id(be, name, id, kvno);

    if (ret == 0 && *id == 0)
        ret = ck_error_set(CK_ERR_NOTFOUND, "principal %s not found", name);
    return ret;
}

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
pg_rot_policy_put(void *arg, const ck_rotation_policy *pol, int64_t now)
{
    struct pg_be *be = arg;
    char hosts[CK_ROT_HOSTS_TEXT_MAX];
    int64_t id = 0;
    uint32_t kvno = 0;
    int ret;

    if ((ret = ck_rot_hosts_join(pol, hosts, sizeof(hosts))) != 0)
        return ret;
    if ((ret = pg_begin_write(be)) != 0)
        return ret;
    if ((ret = lookup(be, pol->principal, &id, &kvno)) != 0)
        goto out;
    if ((ret = pg_run(be, "rotation policy",
                      "INSERT INTO rotation_policy(principal_id, period, old_valid,"
                      " confirm_timeout, settle, confirm, keep_min, paused, hosts, created,"
                      " modified) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)"
                      " ON CONFLICT (principal_id) DO UPDATE SET period = $2, old_valid = $3,"
                      " confirm_timeout = $4, settle = $5, confirm = $6, keep_min = $7,"
                      " paused = $8, hosts = $9, modified = $10",
                      PARGS(P_INT(id), P_INT(pol->period), P_INT(pol->old_valid),
                            P_INT(pol->confirm_timeout), P_INT(pol->settle), P_INT(pol->confirm),
                            P_INT(pol->keep_min), P_INT(pol->paused ? 1 : 0), P_TEXT(hosts),
                            P_INT(now)), NULL)) != 0 ||
        (ret = pg_run(be, "rotation policy",
                      "INSERT INTO key_version(principal_id, kvno, activated) VALUES ($1, $2, $3)"
                      " ON CONFLICT (principal_id, kvno) DO UPDATE SET activated = $3"
                      " WHERE key_version.activated = 0",
                      PARGS(P_INT(id), P_INT(kvno), P_INT(now)), NULL)) != 0)
        goto out;
    ret = pg_bump_generation(be, CK_CHANGE_PRINCIPAL, pol->principal, NULL);
out:
    return pg_end_write(be, ret);
}

int
pg_rot_policy_get(void *arg, const char *name, ck_rotation_policy *out)
{
    struct pg_be *be = arg;
    PGresult *r = NULL;
    int ret;

    memset(out, 0, sizeof(*out));
    if ((ret = pg_query(be, "get rotation policy", ROT_SELECT " WHERE p.name = $1",
                        PARGS(P_TEXT(name)), &r)) != 0)
        return ret;
    if (PQntuples(r) == 1)
        ret = read_rot_row(r, 0, out);
    else
        ret = ck_error_set(CK_ERR_NOTFOUND, "%s has no rotation policy", name);
    PQclear(r);
    return ret;
}

int
pg_rot_policy_del(void *arg, const char *name)
{
    struct pg_be *be = arg;
    int64_t id = 0;
    uint32_t kvno = 0;
    uint64_t n = 0;
    int ret;

    if ((ret = pg_begin_write(be)) != 0)
        return ret;
    if ((ret = lookup(be, name, &id, &kvno)) != 0 ||
        (ret = pg_run(be, "delete rotation policy",
                      "DELETE FROM rotation_policy WHERE principal_id = $1", PARGS(P_INT(id)),
                      &n)) != 0)
        goto out;
    if (n == 0) {
        ret = ck_error_set(CK_ERR_NOTFOUND, "%s has no rotation policy", name);
        goto out;
    }
    ret = pg_bump_generation(be, CK_CHANGE_PRINCIPAL, name, NULL);
out:
    return pg_end_write(be, ret);
}

int
pg_rot_pause(void *arg, const char *name, bool paused, int64_t now)
{
    struct pg_be *be = arg;
    int64_t id = 0;
    uint32_t kvno = 0;
    uint64_t n = 0;
    int ret;

    if ((ret = pg_begin_write(be)) != 0)
        return ret;
    if ((ret = lookup(be, name, &id, &kvno)) != 0 ||
        (ret = pg_run(be, "pause rotation",
                      "UPDATE rotation_policy SET paused = $2, modified = $3"
                      " WHERE principal_id = $1",
                      PARGS(P_INT(id), P_INT(paused ? 1 : 0), P_INT(now)), &n)) != 0)
        goto out;
    if (n == 0) {
        ret = ck_error_set(CK_ERR_NOTFOUND, "%s has no rotation policy", name);
        goto out;
    }
    ret = pg_bump_generation(be, CK_CHANGE_PRINCIPAL, name, NULL);
out:
    return pg_end_write(be, ret);
}

int
pg_rot_policy_list(void *arg, ck_store_rotation_cb cb, void *cb_arg)
{
    struct pg_be *be = arg;
    PGresult *r = NULL;
    ck_rotation_policy *pol;
    int ret;

    if ((pol = malloc(sizeof(*pol))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "rotation policy");
    if ((ret = pg_query(be, "list rotation policies", ROT_SELECT " ORDER BY p.name LIMIT $1",
                        PARGS(P_INT(CK_ROT_LIST_MAX)), &r)) != 0)
        goto out;
    for (int i = 0; i < PQntuples(r) && ret == 0; i++) {
        if ((ret = read_rot_row(r, i, pol)) == 0)
            ret = cb(pol, cb_arg);
    }
out:
    PQclear(r);
    free(pol);
    return ret;
}

int
pg_key_stage(void *arg, const char *name, uint32_t cur_kvno, uint32_t new_kvno,
             const struct ck_store_key_row *keys, size_t n_keys, int64_t now, uint32_t *staged)
{
    struct pg_be *be = arg;
    int64_t id = 0, top = 0;
    uint32_t kvno = 0;
    int ret;

    *staged = 0;
    if ((ret = pg_begin_write(be)) != 0)
        return ret;
    if ((ret = lookup(be, name, &id, &kvno)) != 0)
        goto out;
    if (kvno != cur_kvno) {
        ret = ck_error_set(CK_ERR_POLICY, "principal %s changed concurrently (kvno %u -> %u); "
                           "retry", name, cur_kvno, kvno);
        goto out;
    }
    if ((ret = query_int(be, "stage key", "SELECT coalesce(max(kvno), 0) FROM key"
                         " WHERE principal_id = $1", PARGS(P_INT(id)), &top)) != 0)
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
    if ((ret = pg_insert_keys(be, id, keys, n_keys)) != 0 ||
        (ret = pg_run(be, "stage key",
                      "INSERT INTO key_version(principal_id, kvno, staged) VALUES ($1, $2, $3)"
                      " ON CONFLICT (principal_id, kvno) DO UPDATE SET staged = $3,"
                      " activated = 0, retired = 0",
                      PARGS(P_INT(id), P_INT(new_kvno), P_INT(now)), NULL)) != 0)
        goto out;
    ret = pg_bump_generation(be, CK_CHANGE_PRINCIPAL, name, NULL);
out:
    return pg_end_write(be, ret);
}

int
pg_key_confirm(void *arg, const char *name, const char *host, uint32_t kvno, int64_t now)
{
    struct pg_be *be = arg;
    int64_t id = 0, n = 0, known = 0, gen = 0;
    uint32_t cur = 0;
    int ret;

    if ((ret = pg_begin_write(be)) != 0)
        return ret;
    if ((ret = lookup(be, name, &id, &cur)) != 0 ||
        (ret = query_int(be, "confirm key", "SELECT count(*) FROM key WHERE principal_id = $1"
                         " AND kvno = $2", PARGS(P_INT(id), P_INT(kvno)), &n)) != 0)
        goto out;
    if (n == 0) {
        ret = ck_error_set(CK_ERR_NOTFOUND, "principal %s has no kvno %u", name, kvno);
        goto out;
    }
    if ((ret = query_int(be, "confirm key", "SELECT count(*) FROM key_confirm"
                         " WHERE principal_id = $1 AND host = $2",
                         PARGS(P_INT(id), P_TEXT(host)), &known)) != 0)
        goto out;
    if (known == 0 &&
        (ret = pg_run(be, "confirm key",
                      "DELETE FROM key_confirm WHERE principal_id = $1 AND host IN"
                      " (SELECT host FROM key_confirm WHERE principal_id = $1"
                      "  ORDER BY confirmed DESC, host OFFSET $2)",
                      PARGS(P_INT(id), P_INT(CK_ROT_CONFIRM_ROWS - 1)), NULL)) != 0)
        goto out;
    if ((ret = pg_run(be, "confirm key",
                      "INSERT INTO key_confirm(principal_id, host, kvno, confirmed)"
                      " VALUES ($1, $2, $3, $4) ON CONFLICT (principal_id, host) DO UPDATE SET"
                      " kvno = $3, confirmed = $4 WHERE key_confirm.kvno < $3",
                      PARGS(P_INT(id), P_TEXT(host), P_INT(kvno), P_INT(now)), NULL)) != 0 ||
        (ret = query_int(be, "confirm key", "SELECT value FROM generation WHERE id = 1",
                         PNOARGS, &gen)) != 0)
        goto out;
    /* Not an administrative change (caches keep their records), but the audit log names it. */
    ret = pg_audit_write(be, CK_CHANGE_PRINCIPAL, name, (uint64_t)gen);
out:
    return pg_end_write(be, ret);
}

int
pg_key_activate(void *arg, const char *name, uint32_t kvno, int64_t now)
{
    struct pg_be *be = arg;
    int64_t id = 0, top = 0;
    uint32_t cur = 0;
    int ret;

    if ((ret = pg_begin_write(be)) != 0)
        return ret;
    if ((ret = lookup(be, name, &id, &cur)) != 0 ||
        (ret = query_int(be, "activate key", "SELECT coalesce(max(kvno), 0) FROM key"
                         " WHERE principal_id = $1", PARGS(P_INT(id)), &top)) != 0)
        goto out;
    if (kvno <= cur || (int64_t)kvno != top) {
        ret = ck_error_set(CK_ERR_POLICY, "principal %s: kvno %u is not the staged kvno "
                           "(current %u)", name, kvno, cur);
        goto out;
    }
    if ((ret = pg_run(be, "activate key", "UPDATE principal SET kvno = $1, modified = $2"
                      " WHERE id = $3", PARGS(P_INT(kvno), P_INT(now), P_INT(id)), NULL)) != 0 ||
        (ret = pg_run(be, "activate key",
                      "INSERT INTO key_version(principal_id, kvno, retired) VALUES ($1, $2, $3)"
                      " ON CONFLICT (principal_id, kvno) DO UPDATE SET retired = $3",
                      PARGS(P_INT(id), P_INT(cur), P_INT(now)), NULL)) != 0 ||
        (ret = pg_run(be, "activate key",
                      "INSERT INTO key_version(principal_id, kvno, activated) VALUES ($1, $2, $3)"
                      " ON CONFLICT (principal_id, kvno) DO UPDATE SET activated = $3,"
                      " retired = 0",
                      PARGS(P_INT(id), P_INT(kvno), P_INT(now)), NULL)) != 0)
        goto out;
    ret = pg_bump_generation(be, CK_CHANGE_PRINCIPAL, name, NULL);
out:
    return pg_end_write(be, ret);
}

int
pg_key_purge(void *arg, const char *name, uint32_t cur_kvno, const uint32_t *kvnos, size_t n)
{
    struct pg_be *be = arg;
    int64_t id = 0;
    uint32_t cur = 0;
    int ret;

    if ((ret = pg_begin_write(be)) != 0)
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
        if ((ret = pg_run(be, "purge key", "DELETE FROM key WHERE principal_id = $1 AND"
                          " kvno = $2", PARGS(P_INT(id), P_INT(kvnos[i])), NULL)) == 0)
            ret = pg_run(be, "purge key",
                         "DELETE FROM key_version WHERE principal_id = $1 AND kvno = $2",
                         PARGS(P_INT(id), P_INT(kvnos[i])), NULL);
    }
    if (ret == 0)
        ret = pg_bump_generation(be, CK_CHANGE_PRINCIPAL, name, NULL);
out:
    return pg_end_write(be, ret);
}

int
pg_rot_status(void *arg, const char *name, ck_rotation_status *out)
{
    struct pg_be *be = arg;
    PGresult *r = NULL;
    int64_t id = 0;
    int ret;

    memset(out, 0, sizeof(*out));
    /* One statement reads the current kvno with the kvnos, so the two agree. */
    if ((ret = pg_query(be, "rotation status",
                        "SELECT p.id, p.kvno, k.kvno, coalesce(v.staged, 0),"
                        " coalesce(v.activated, 0), coalesce(v.retired, 0) FROM principal p"
                        " LEFT JOIN LATERAL (SELECT DISTINCT kvno FROM key"
                        "  WHERE principal_id = p.id) k ON true LEFT JOIN key_version v"
                        " ON v.principal_id = p.id AND v.kvno = k.kvno WHERE p.name = $1"
                        " ORDER BY k.kvno DESC LIMIT $2",
                        PARGS(P_TEXT(name), P_INT(CK_STORE_MAX_KEYS)), &r)) != 0)
        return ret;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return ck_error_set(CK_ERR_NOTFOUND, "principal %s not found", name);
    }
    ck_strlcpy(out->principal, name, sizeof(out->principal));
    id = pg_col_i64(r, 0, 0);
    out->current_kvno = (uint32_t)pg_col_i64(r, 0, 1);
    for (int i = 0; i < PQntuples(r) && out->n_kvnos < CK_STORE_MAX_KEYS; i++) {
        ck_rotation_kvno *k;

        if (pg_col_null(r, i, 2))
            continue;
        k = &out->kvnos[out->n_kvnos++];
        k->kvno = (uint32_t)pg_col_i64(r, i, 2);
        k->staged = pg_col_i64(r, i, 3);
        k->activated = pg_col_i64(r, i, 4);
        k->retired = pg_col_i64(r, i, 5);
    }
    PQclear(r);
    r = NULL;
    if (out->n_kvnos > 0 && out->kvnos[0].kvno > out->current_kvno)
        out->staged_kvno = out->kvnos[0].kvno;
    ret = pg_rot_policy_get(be, name, &out->policy);
    if (ret == 0)
        out->has_policy = true;
    else if (ret == CK_ERR_NOTFOUND)
        ck_error_clear();
    else
        return ret;
    if ((ret = pg_query(be, "rotation status",
                        "SELECT host, kvno, confirmed FROM key_confirm WHERE principal_id = $1"
                        " ORDER BY host LIMIT $2", PARGS(P_INT(id), P_INT(CK_ROT_HOSTS_MAX)),
                        &r)) != 0)
        return ret;
    for (int i = 0; i < PQntuples(r) && out->n_confirmations < CK_ROT_HOSTS_MAX; i++) {
        ck_rotation_confirmation *c = &out->confirmations[out->n_confirmations++];

        ck_strlcpy(c->host, PQgetvalue(r, i, 0), sizeof(c->host));
        c->kvno = (uint32_t)pg_col_i64(r, i, 1);
        c->confirmed = pg_col_i64(r, i, 2);
    }
    PQclear(r);
    return 0;
}
