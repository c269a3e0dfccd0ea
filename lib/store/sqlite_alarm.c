/* SQLite backend: the alarm table (store.h "alarm table").
 *
 * One row per occurrence: while an alarm is active its code + subject + host has exactly one row
 * with cleared = 0 (a partial unique index says so), which the alarm sink's writes update; a
 * clear closes it and a later raise starts a new row. The sink's writes are not administrative
 * (no change-counter bump: a KDC's alarms must not flush every KDC's caches); an operator's
 * clear is. */
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "cablekey/error.h"
#include "cablekey/util.h"
#include "store/sqlite_int.h"

const char *const sq_schema_alarm[] = {
    "CREATE TABLE alarm("
    " id INTEGER PRIMARY KEY,"
    " code TEXT NOT NULL,"
    " severity TEXT NOT NULL,"
    " subject TEXT NOT NULL,"
    " host TEXT NOT NULL,"
    " cause TEXT NOT NULL,"
    " first_seen INTEGER NOT NULL,"
    " last_seen INTEGER NOT NULL,"
    " count INTEGER NOT NULL,"
    " cleared INTEGER NOT NULL DEFAULT 0,"
    " cleared_at INTEGER NOT NULL DEFAULT 0,"
    " cleared_by TEXT NOT NULL DEFAULT '')",
    "CREATE UNIQUE INDEX alarm_active ON alarm(code, subject, host) WHERE cleared = 0",
    "CREATE INDEX alarm_last_seen ON alarm(last_seen)",
    NULL,
};

#define ALARM_COLUMNS                                                                          \
    "id, code, severity, subject, host, cause, first_seen, last_seen, count, cleared,"         \
    " cleared_at, cleared_by"

static void
col_text(sqlite3_stmt *st, int col, char *dst, size_t size)
{
    const unsigned char *v = sqlite3_column_text(st, col);

    ck_strlcpy(dst, v != NULL ? (const char *)v : "", size);
}

int
sq_alarm_record(void *arg, const ck_alarm_row *a, int64_t keep)
{
    struct sqlite_be *be = arg;
    int ret;

    if ((ret = sq_begin_write(be)) != 0)
        return ret;
    if (a->cleared) {
        ret = sq_run(be, "alarm clear",
                     "UPDATE alarm SET cleared = 1, cleared_at = ?1, cleared_by = 'condition',"
                     " cause = ?2, last_seen = max(last_seen, ?1)"
                     " WHERE code = ?3 AND subject = ?4 AND host = ?5 AND cleared = 0",
                     ARGS(A_INT(a->last_seen), A_TEXT(a->cause), A_TEXT(a->code),
                          A_TEXT(a->subject), A_TEXT(a->host)));
        goto out;
    }
    if ((ret = sq_run(be, "alarm update",
                      "UPDATE alarm SET severity = ?1, cause = ?2, last_seen = max(last_seen, ?3),"
                      " count = max(count, ?4)"
                      " WHERE code = ?5 AND subject = ?6 AND host = ?7 AND cleared = 0",
                      ARGS(A_TEXT(a->severity), A_TEXT(a->cause), A_INT(a->last_seen),
                           A_INT(a->count), A_TEXT(a->code), A_TEXT(a->subject),
                           A_TEXT(a->host)))) != 0)
        goto out;
    if (sqlite3_changes(be->db) == 0 &&
        (ret = sq_run(be, "alarm insert",
                      "INSERT INTO alarm(code, severity, subject, host, cause, first_seen,"
                      " last_seen, count) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                      ARGS(A_TEXT(a->code), A_TEXT(a->severity), A_TEXT(a->subject),
                           A_TEXT(a->host), A_TEXT(a->cause), A_INT(a->first_seen),
                           A_INT(a->last_seen), A_INT(a->count)))) != 0)
        goto out;
    ret = sq_run(be, "alarm trim",
                 "DELETE FROM alarm WHERE cleared = 1 AND id <= (SELECT max(id) FROM alarm) - ?",
                 ARGS(A_INT(keep)));
out:
    return sq_end_write(be, ret);
}

int
sq_alarm_list(void *arg, const ck_alarm_filter *f, ck_store_alarm_cb cb, void *cb_arg)
{
    struct sqlite_be *be = arg;
    sqlite3_stmt *st = NULL;
    int rc, ret;

    /* The newest `limit` rows that match, handed out oldest first. */
    ret = sq_query(be, "alarm list",
                   "SELECT " ALARM_COLUMNS " FROM"
                   " (SELECT * FROM alarm WHERE (?1 = 0 OR id = ?1) AND (?2 IS NULL OR code = ?2)"
                   "  AND (?3 IS NULL OR subject = ?3) AND (NOT ?4 OR cleared = 0)"
                   "  AND last_seen >= ?5 ORDER BY id DESC LIMIT ?6) ORDER BY id",
                   ARGS(A_INT(f->id), A_TEXT(f->code), A_TEXT(f->subject),
                        A_INT(f->active_only ? 1 : 0), A_INT(f->since), A_INT(f->limit)),
                   &st);
    if (ret != 0)
        return ret;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        ck_alarm_row r;

        memset(&r, 0, sizeof(r));
        r.id = sqlite3_column_int64(st, 0);
        col_text(st, 1, r.code, sizeof(r.code));
        col_text(st, 2, r.severity, sizeof(r.severity));
        col_text(st, 3, r.subject, sizeof(r.subject));
        col_text(st, 4, r.host, sizeof(r.host));
        col_text(st, 5, r.cause, sizeof(r.cause));
        r.first_seen = sqlite3_column_int64(st, 6);
        r.last_seen = sqlite3_column_int64(st, 7);
        r.count = (uint64_t)sqlite3_column_int64(st, 8);
        r.cleared = sqlite3_column_int64(st, 9) != 0;
        r.cleared_at = sqlite3_column_int64(st, 10);
        col_text(st, 11, r.cleared_by, sizeof(r.cleared_by));
        if ((ret = cb(&r, cb_arg)) != 0)
            break;
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = sq_error(be, "alarm list");
    sqlite3_finalize(st);
    return ret;
}

int
sq_alarm_clear(void *arg, const ck_alarm_filter *f, const char *by, int64_t now_ms,
               uint64_t *n)
{
    struct sqlite_be *be = arg;
    int ret;

    *n = 0;
    if ((ret = sq_begin_write(be)) != 0)
        return ret;
    if ((ret = sq_run(be, "alarm clear",
                      "UPDATE alarm SET cleared = 1, cleared_at = ?1, cleared_by = ?2"
                      " WHERE cleared = 0 AND (?3 = 0 OR id = ?3) AND (?4 IS NULL OR code = ?4)"
                      " AND (?5 IS NULL OR subject = ?5)",
                      ARGS(A_INT(now_ms), A_TEXT(by), A_INT(f->id), A_TEXT(f->code),
                           A_TEXT(f->subject)))) != 0)
        goto out;
    *n = (uint64_t)sqlite3_changes(be->db);
    /* Nothing cleared: nothing to record (the transaction commits no change). */
    if (*n > 0)
        ret = sq_bump_generation(be, CK_CHANGE_ALL, NULL, NULL);
out:
    ret = sq_end_write(be, ret);
    if (ret != 0)
        *n = 0;
    return ret;
}
