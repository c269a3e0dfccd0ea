/* SQLite backend: the audit log. One row per administrative write transaction, inserted by
 * sq_bump_generation inside that transaction (so it commits and rolls back with the change), and
 * trimmed there to the retention in audit_retention. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "cablekey/error.h"
#include "cablekey/util.h"
#include "store/sqlite_int.h"

/* The action of a write no caller named: still recorded, by what it touched. */
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
sq_audit_write(struct sqlite_be *be, enum ck_store_change_kind kind, const char *key,
               uint64_t gen)
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
    if ((ret = sq_run(be, "audit",
                      "INSERT INTO audit(time, actor, action, object, detail, generation)"
                      " VALUES (?, ?, ?, ?, ?, ?)",
                      ARGS(A_INT(now), A_TEXT(actor), A_TEXT(action), A_TEXT(object),
                           A_TEXT(detail), A_INT(gen)))) != 0)
        return ret;
    /* The rowid of the row just written is the largest, so both bounds keep it. */
    if ((ret = sq_run(be, "trim audit",
                      "DELETE FROM audit WHERE id <= (SELECT max(id) FROM audit) -"
                      " (SELECT keep_rows FROM audit_retention WHERE id = 1)",
                      NULL, 0)) != 0 ||
        (ret = sq_run(be, "trim audit",
                      "DELETE FROM audit WHERE time < ?1 - 86400 *"
                      " (SELECT keep_days FROM audit_retention WHERE id = 1)"
                      " AND (SELECT keep_days FROM audit_retention WHERE id = 1) > 0",
                      ARGS(A_INT(now)))) != 0)
        return ret;
    return 0;
}

void
sqlite_audit_attach(void *arg, struct ck_store_audit *audit)
{
    struct sqlite_be *be = arg;

    be->audit = audit;
}

int
sqlite_audit_list(void *arg, const ck_audit_filter *f, ck_store_audit_cb cb, void *cb_arg)
{
    struct sqlite_be *be = arg;
    sqlite3_stmt *st = NULL;
    char like[CK_AUDIT_ACTION_MAX + 2];
    const char *action = f->action;
    bool family = false;
    int rc, ret;

    /* "principal." is a family: a LIKE prefix, with the wildcards of the name escaped. */
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
    /* The newest `limit` rows that match, handed out oldest first. */
    ret = sq_query(be, "audit list",
                   "SELECT id, time, generation, actor, action, object, detail FROM"
                   " (SELECT * FROM audit WHERE time >= ?1 AND (?2 IS NULL OR object = ?2)"
                   "  AND (?3 IS NULL OR (?4 AND action LIKE ?3 ESCAPE '\\')"
                   "       OR (NOT ?4 AND action = ?3))"
                   "  ORDER BY id DESC LIMIT ?5) ORDER BY id",
                   ARGS(A_INT(f->since), A_TEXT(f->object), A_TEXT(action), A_INT(family),
                        A_INT(f->limit)), &st);
    if (ret != 0)
        return ret;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        ck_audit_entry e;

        e.id = sqlite3_column_int64(st, 0);
        e.time = sqlite3_column_int64(st, 1);
        e.generation = (uint64_t)sqlite3_column_int64(st, 2);
        e.actor = (const char *)sqlite3_column_text(st, 3);
        e.action = (const char *)sqlite3_column_text(st, 4);
        e.object = (const char *)sqlite3_column_text(st, 5);
        e.detail = (const char *)sqlite3_column_text(st, 6);
        if (e.actor == NULL || e.action == NULL || e.object == NULL || e.detail == NULL) {
            ret = ck_error_set(CK_ERR_DB, "audit row %lld malformed", (long long)e.id);
            break;
        }
        if ((ret = cb(&e, cb_arg)) != 0)
            break;
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = sq_error(be, "audit list");
    sqlite3_finalize(st);
    return ret;
}

int
sqlite_audit_get_retention(void *arg, ck_audit_retention *r)
{
    struct sqlite_be *be = arg;
    sqlite3_stmt *st = NULL;
    int rc, ret;

    if ((ret = sq_prepare(be, "SELECT keep_rows, keep_days FROM audit_retention WHERE id = 1",
                          &st)) != 0)
        return ret;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        r->keep_rows = sqlite3_column_int64(st, 0);
        r->keep_days = sqlite3_column_int64(st, 1);
    } else if (rc == SQLITE_DONE) {
        ret = ck_error_set(CK_ERR_DB, "audit retention row missing");
    } else {
        ret = sq_error(be, "audit retention");
    }
    sqlite3_finalize(st);
    return ret;
}

int
sqlite_audit_set_retention(void *arg, const ck_audit_retention *r)
{
    struct sqlite_be *be = arg;
    uint64_t gen = 0;
    int ret;

    if ((ret = sq_begin_write(be)) != 0)
        return ret;
    /* Audited, but no generation bump: nothing a KDC caches changed, so no cache is flushed. */
    if ((ret = sq_run(be, "audit retention",
                      "UPDATE audit_retention SET keep_rows = ?, keep_days = ? WHERE id = 1",
                      ARGS(A_INT(r->keep_rows), A_INT(r->keep_days)))) != 0 ||
        (ret = sqlite_generation(be, &gen)) != 0)
        goto out;
    ret = sq_audit_write(be, CK_CHANGE_ALL, NULL, gen);
out:
    return sq_end_write(be, ret);
}
