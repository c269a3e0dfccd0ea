/* The operator's side of the keying server's store: revocations (persist until lifted; the
 * daemon never re-admits a revoked node), alarms (bounded, newest first) and node
 * registrations. Written by the daemon and by `cablekey ksv`; the daemon sees the CLI's writes
 * through ck_ksv_store_changed. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/error.h"
#include "cablekey/util.h"
#include "ksvstore/ksvstore_int.h"

#define KS_ALARM_DETAIL (sizeof(((struct ck_ksv_alarm_row *)0)->detail))
#define KS_ALARM_TYPE (sizeof(((struct ck_ksv_alarm_row *)0)->type))
#define KS_NODE_ADDR (sizeof(((struct ck_ksv_node_row *)0)->addr))

/* One parameter of a single-statement write. */
struct ks_arg {
    const char *s; /* text when non-NULL, else i */
    int64_t i;
};
#define KS_S(v) ((struct ks_arg){.s = (v)})
#define KS_I(v) ((struct ks_arg){.i = (int64_t)(v)})

/* Runs one statement (a single statement is its own transaction). *changes: rows changed. */
static int
ks_write(struct ck_ksv_store *st, const char *what, const char *sql, const struct ks_arg *a,
         int n, int *changes)
{
    sqlite3_stmt *q = NULL;
    int ret;

    if ((ret = ks_prepare(st, sql, &q)) != 0)
        return ret;
    for (int i = 0; i < n; i++) {
        if (a[i].s != NULL)
            sqlite3_bind_text(q, i + 1, a[i].s, -1, SQLITE_STATIC);
        else
            sqlite3_bind_int64(q, i + 1, a[i].i);
    }
    if (sqlite3_step(q) != SQLITE_DONE) {
        if ((sqlite3_errcode(st->db) & 0xff) == SQLITE_CONSTRAINT)
            ret = ck_error_set(CK_ERR_EXISTS, "%s: already present", what);
        else
            ret = ks_error(st, what);
    } else if (changes != NULL) {
        *changes = sqlite3_changes(st->db);
    }
    sqlite3_finalize(q);
    return ret;
}

/* ---- revocations ------------------------------------------------------------------------------ */

int
ck_ksv_store_revoke(struct ck_ksv_store *st, const char *group, const char *node,
                    const char *actor, int64_t now)
{
    int ret;

    if (st == NULL)
        return ck_error_set(CK_ERR_INVAL, "revoke: no store");
    if ((ret = ks_check_name("revoke group", group)) != 0 ||
        (ret = ks_check_name("revoke node", node)) != 0 ||
        (ret = ks_check_name("revoke actor", actor)) != 0)
        return ret;
    ks_lock(st);
    ret = ks_write(st, "revoke",
                   "INSERT INTO revocation(grp, node, time, actor, applied) VALUES (?, ?, ?, ?, 0)",
                   (const struct ks_arg[]){KS_S(group), KS_S(node), KS_I(now), KS_S(actor)}, 4,
                   NULL);
    ks_unlock(st);
    if (ret == CK_ERR_EXISTS)
        ret = ck_error_set(CK_ERR_EXISTS, "%s is already revoked from group %s", node, group);
    return ret;
}

static int
ks_revocation_update(struct ck_ksv_store *st, const char *what, const char *sql,
                     const char *group, const char *node)
{
    int changes = 0, ret;

    if (st == NULL)
        return ck_error_set(CK_ERR_INVAL, "%s: no store", what);
    if ((ret = ks_check_name("group", group)) != 0 || (ret = ks_check_name("node", node)) != 0)
        return ret;
    ks_lock(st);
    ret = ks_write(st, what, sql, (const struct ks_arg[]){KS_S(group), KS_S(node)}, 2, &changes);
    ks_unlock(st);
    if (ret == 0 && changes == 0)
        ret = ck_error_set(CK_ERR_NOTFOUND, "%s: %s is not revoked from group %s", what, node,
                           group);
    return ret;
}

int
ck_ksv_store_revoke_lift(struct ck_ksv_store *st, const char *group, const char *node)
{
    return ks_revocation_update(st, "revoke lift",
                                "DELETE FROM revocation WHERE grp = ? AND node = ?", group, node);
}

int
ck_ksv_store_revoke_mark_applied(struct ck_ksv_store *st, const char *group, const char *node)
{
    return ks_revocation_update(st, "revoke mark applied",
                                "UPDATE revocation SET applied = 1 WHERE grp = ? AND node = ?",
                                group, node);
}

int
ck_ksv_store_is_revoked(struct ck_ksv_store *st, const char *group, const char *node,
                        bool *revoked)
{
    sqlite3_stmt *q = NULL;
    int rc, ret;

    if (st == NULL || revoked == NULL)
        return ck_error_set(CK_ERR_INVAL, "is revoked: no store");
    *revoked = false;
    if ((ret = ks_check_name("group", group)) != 0 || (ret = ks_check_name("node", node)) != 0)
        return ret;
    ks_lock(st);
    if ((ret = ks_prepare(st, "SELECT 1 FROM revocation WHERE grp = ? AND node = ?", &q)) != 0)
        goto out;
    sqlite3_bind_text(q, 1, group, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, node, -1, SQLITE_STATIC);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        *revoked = true;
    else if (rc != SQLITE_DONE)
        ret = ks_error(st, "is revoked");
out:
    sqlite3_finalize(q);
    ks_unlock(st);
    return ret;
}

/* Reads every row of a query into a growing array; row() fills one element. */
static int
ks_list(struct ck_ksv_store *st, const char *what, sqlite3_stmt *q, size_t elem,
        void (*row)(sqlite3_stmt *q, void *dst), void **out, size_t *n)
{
    uint8_t *v = NULL;
    size_t count = 0, cap = 0;
    int rc, ret = 0;

    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (count == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            uint8_t *nv = realloc(v, ncap * elem);
            if (nv == NULL) {
                ret = ck_error_set(CK_ERR_NOMEM, "%s: out of memory", what);
                goto out;
            }
            v = nv;
            cap = ncap;
        }
        memset(v + count * elem, 0, elem);
        row(q, v + count * elem);
        count++;
    }
    if (rc != SQLITE_DONE) {
        ret = ks_error(st, what);
        goto out;
    }
    *out = v;
    *n = count;
    v = NULL;
out:
    free(v);
    return ret;
}

static void
ks_revocation_row(sqlite3_stmt *q, void *dst)
{
    struct ck_ksv_revocation *r = dst;

    ks_col_text(q, 0, r->group, sizeof(r->group));
    ks_col_text(q, 1, r->node, sizeof(r->node));
    r->when = sqlite3_column_int64(q, 2);
    ks_col_text(q, 3, r->actor, sizeof(r->actor));
    r->applied = sqlite3_column_int(q, 4) != 0;
}

int
ck_ksv_store_revocations(struct ck_ksv_store *st, struct ck_ksv_revocation **rows, size_t *n)
{
    sqlite3_stmt *q = NULL;
    void *v = NULL;
    int ret;

    if (st == NULL || rows == NULL || n == NULL)
        return ck_error_set(CK_ERR_INVAL, "revocations: no store");
    *rows = NULL;
    *n = 0;
    ks_lock(st);
    if ((ret = ks_prepare(st, "SELECT grp, node, time, actor, applied FROM revocation"
                              " ORDER BY grp, node", &q)) == 0 &&
        (ret = ks_list(st, "revocations", q, sizeof(**rows), ks_revocation_row, &v, n)) == 0)
        *rows = v;
    sqlite3_finalize(q);
    ks_unlock(st);
    return ret;
}

/* ---- alarms ----------------------------------------------------------------------------------- */

int
ck_ksv_store_alarm_add(struct ck_ksv_store *st, int64_t when, const char *node,
                       const char *type, const char *detail)
{
    char t[KS_ALARM_TYPE], d[KS_ALARM_DETAIL];
    int ret;

    if (st == NULL)
        return ck_error_set(CK_ERR_INVAL, "alarm: no store");
    if ((ret = ks_check_name("alarm node", node)) != 0)
        return ret;
    if (type == NULL || *type == '\0' || strnlen(type, sizeof(t)) >= sizeof(t))
        return ck_error_set(CK_ERR_INVAL, "alarm type: empty or longer than %zu bytes",
                            sizeof(t) - 1);
    ck_strlcpy(t, type, sizeof(t));
    /* The detail is informative: a longer one is cut rather than losing the alarm. */
    ck_strlcpy(d, detail != NULL ? detail : "", sizeof(d));
    ks_lock(st);
    if ((ret = ks_begin(st)) != 0)
        goto unlock;
    if ((ret = ks_write(st, "alarm", "INSERT INTO alarm(time, node, type, detail)"
                                     " VALUES (?, ?, ?, ?)",
                        (const struct ks_arg[]){KS_I(when), KS_S(node), KS_S(t), KS_S(d)}, 4,
                        NULL)) != 0)
        goto out;
    /* Bounded: a node flooding alarms cannot grow the file without end. */
    ret = ks_write(st, "alarm", "DELETE FROM alarm WHERE id <= ?",
                   (const struct ks_arg[]){KS_I(sqlite3_last_insert_rowid(st->db) -
                                                CK_KSV_STORE_KEEP_ALARMS)},
                   1, NULL);
out:
    ret = ks_end(st, ret);
unlock:
    ks_unlock(st);
    return ret;
}

static void
ks_alarm_row(sqlite3_stmt *q, void *dst)
{
    struct ck_ksv_alarm_row *a = dst;

    a->id = sqlite3_column_int64(q, 0);
    a->when = sqlite3_column_int64(q, 1);
    ks_col_text(q, 2, a->node, sizeof(a->node));
    ks_col_text(q, 3, a->type, sizeof(a->type));
    ks_col_text(q, 4, a->detail, sizeof(a->detail));
}

int
ck_ksv_store_alarm_list(struct ck_ksv_store *st, size_t max, struct ck_ksv_alarm_row **rows,
                        size_t *n)
{
    sqlite3_stmt *q = NULL;
    void *v = NULL;
    int ret;

    if (st == NULL || rows == NULL || n == NULL)
        return ck_error_set(CK_ERR_INVAL, "alarms: no store");
    *rows = NULL;
    *n = 0;
    if (max > CK_KSV_STORE_KEEP_ALARMS)
        max = CK_KSV_STORE_KEEP_ALARMS;
    ks_lock(st);
    if ((ret = ks_prepare(st, "SELECT id, time, node, type, detail FROM alarm"
                              " ORDER BY id DESC LIMIT ?", &q)) != 0)
        goto out;
    sqlite3_bind_int64(q, 1, (int64_t)max);
    if ((ret = ks_list(st, "alarms", q, sizeof(**rows), ks_alarm_row, &v, n)) == 0)
        *rows = v;
out:
    sqlite3_finalize(q);
    ks_unlock(st);
    return ret;
}

/* ---- registrations ---------------------------------------------------------------------------- */

int
ck_ksv_store_node_seen(struct ck_ksv_store *st, const struct ck_ksv_node_row *row)
{
    int ret;

    if (st == NULL || row == NULL)
        return ck_error_set(CK_ERR_INVAL, "node seen: no store");
    if ((ret = ks_check_name("node", row->node)) != 0)
        return ret;
    if (strnlen(row->addr, sizeof(row->addr)) >= sizeof(row->addr))
        return ck_error_set(CK_ERR_INVAL, "node %s: address not terminated", row->node);
    ks_lock(st);
    ret = ks_write(st, "node seen",
                   "INSERT INTO node(name, addr, registered, last_seen, key_id, n_sas)"
                   " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
                   " addr = excluded.addr, registered = excluded.registered,"
                   " last_seen = excluded.last_seen, key_id = excluded.key_id,"
                   " n_sas = excluded.n_sas",
                   (const struct ks_arg[]){KS_S(row->node), KS_S(row->addr), KS_I(row->registered),
                                           KS_I(row->last_seen), KS_I(row->key_id),
                                           KS_I(row->n_sas)},
                   6, NULL);
    ks_unlock(st);
    return ret;
}

static void
ks_node_row(sqlite3_stmt *q, void *dst)
{
    struct ck_ksv_node_row *r = dst;

    ks_col_text(q, 0, r->node, sizeof(r->node));
    ks_col_text(q, 1, r->addr, sizeof(r->addr));
    r->registered = sqlite3_column_int64(q, 2);
    r->last_seen = sqlite3_column_int64(q, 3);
    r->key_id = (uint32_t)sqlite3_column_int64(q, 4);
    r->n_sas = (uint32_t)sqlite3_column_int64(q, 5);
}

int
ck_ksv_store_node_list(struct ck_ksv_store *st, struct ck_ksv_node_row **rows, size_t *n)
{
    sqlite3_stmt *q = NULL;
    void *v = NULL;
    int ret;

    if (st == NULL || rows == NULL || n == NULL)
        return ck_error_set(CK_ERR_INVAL, "nodes: no store");
    *rows = NULL;
    *n = 0;
    ks_lock(st);
    if ((ret = ks_prepare(st, "SELECT name, addr, registered, last_seen, key_id, n_sas"
                              " FROM node ORDER BY name", &q)) == 0 &&
        (ret = ks_list(st, "nodes", q, sizeof(**rows), ks_node_row, &v, n)) == 0)
        *rows = v;
    sqlite3_finalize(q);
    ks_unlock(st);
    return ret;
}
