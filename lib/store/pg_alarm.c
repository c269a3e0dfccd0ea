/* PostgreSQL backend: the alarm table (store.h "alarm table"), with the SQLite backend's
 * semantics (sqlite_alarm.c): one row per occurrence, one active row per code + subject + host,
 * the alarm sink's writes take no generation lock and bump nothing, an operator's clear is an
 * administrative write. */
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "cablekey/error.h"
#include "cablekey/util.h"
#include "store/pg_int.h"

/* Run by pg_init_schema after pg_schema, in the same transaction. */
const char *const pg_schema_alarm[] = {
    "CREATE TABLE alarm("
    " id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " code TEXT NOT NULL,"
    " severity TEXT NOT NULL,"
    " subject TEXT NOT NULL,"
    " host TEXT NOT NULL,"
    " cause TEXT NOT NULL,"
    " first_seen BIGINT NOT NULL,"
    " last_seen BIGINT NOT NULL,"
    " count BIGINT NOT NULL,"
    " cleared INTEGER NOT NULL DEFAULT 0,"
    " cleared_at BIGINT NOT NULL DEFAULT 0,"
    " cleared_by TEXT NOT NULL DEFAULT '')",
    "CREATE UNIQUE INDEX alarm_active ON alarm(code, subject, host) WHERE cleared = 0",
    "CREATE INDEX alarm_last_seen ON alarm(last_seen)",
    NULL,
};

#define ALARM_COLUMNS                                                                          \
    "id, code, severity, subject, host, cause, first_seen, last_seen, count, cleared,"         \
    " cleared_at, cleared_by"

int
pg_alarm_record(void *arg, const ck_alarm_row *a, int64_t keep)
{
    struct pg_be *be = arg;
    uint64_t n = 0;
    int ret;

    /* No generation lock: a KDC's alarm writes must not queue behind administrative
     * transactions. */
    if ((ret = pg_begin_plain(be)) != 0)
        return ret;
    if (a->cleared) {
        ret = pg_run(be, "alarm clear",
                     "UPDATE alarm SET cleared = 1, cleared_at = $1, cleared_by = 'condition',"
                     " cause = $2, last_seen = GREATEST(last_seen, $1)"
                     " WHERE code = $3 AND subject = $4 AND host = $5 AND cleared = 0",
                     PARGS(P_INT(a->last_seen), P_TEXT(a->cause), P_TEXT(a->code),
                           P_TEXT(a->subject), P_TEXT(a->host)), NULL);
        goto out;
    }
    if ((ret = pg_run(be, "alarm update",
                      "UPDATE alarm SET severity = $1, cause = $2,"
                      " last_seen = GREATEST(last_seen, $3), count = GREATEST(count, $4)"
                      " WHERE code = $5 AND subject = $6 AND host = $7 AND cleared = 0",
                      PARGS(P_TEXT(a->severity), P_TEXT(a->cause), P_INT(a->last_seen),
                            P_INT(a->count), P_TEXT(a->code), P_TEXT(a->subject),
                            P_TEXT(a->host)), &n)) != 0)
        goto out;
    if (n == 0 &&
        (ret = pg_run(be, "alarm insert",
                      "INSERT INTO alarm(code, severity, subject, host, cause, first_seen,"
                      " last_seen, count) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                      PARGS(P_TEXT(a->code), P_TEXT(a->severity), P_TEXT(a->subject),
                            P_TEXT(a->host), P_TEXT(a->cause), P_INT(a->first_seen),
                            P_INT(a->last_seen), P_INT(a->count)), NULL)) != 0)
        goto out;
    ret = pg_run(be, "alarm trim",
                 "DELETE FROM alarm WHERE cleared = 1 AND id <= (SELECT max(id) FROM alarm) - $1",
                 PARGS(P_INT(keep)), NULL);
out:
    return pg_end_write(be, ret);
}

int
pg_alarm_list(void *arg, const ck_alarm_filter *f, ck_store_alarm_cb cb, void *cb_arg)
{
    struct pg_be *be = arg;
    PGresult *r = NULL;
    int ret;

    ret = pg_query(be, "alarm list",
                   "SELECT " ALARM_COLUMNS " FROM"
                   " (SELECT * FROM alarm WHERE ($1 = 0 OR id = $1)"
                   "  AND ($2::text IS NULL OR code = $2) AND ($3::text IS NULL OR subject = $3)"
                   "  AND ($4 = 0 OR cleared = 0) AND last_seen >= $5"
                   "  ORDER BY id DESC LIMIT $6) a ORDER BY id",
                   PARGS(P_INT(f->id), P_TEXT(f->code), P_TEXT(f->subject),
                         P_INT(f->active_only ? 1 : 0), P_INT(f->since), P_INT(f->limit)),
                   &r);
    if (ret != 0)
        return ret;
    for (int i = 0; i < PQntuples(r) && ret == 0; i++) {
        ck_alarm_row row;

        memset(&row, 0, sizeof(row));
        row.id = pg_col_i64(r, i, 0);
        ck_strlcpy(row.code, PQgetvalue(r, i, 1), sizeof(row.code));
        ck_strlcpy(row.severity, PQgetvalue(r, i, 2), sizeof(row.severity));
        ck_strlcpy(row.subject, PQgetvalue(r, i, 3), sizeof(row.subject));
        ck_strlcpy(row.host, PQgetvalue(r, i, 4), sizeof(row.host));
        ck_strlcpy(row.cause, PQgetvalue(r, i, 5), sizeof(row.cause));
        row.first_seen = pg_col_i64(r, i, 6);
        row.last_seen = pg_col_i64(r, i, 7);
        row.count = (uint64_t)pg_col_i64(r, i, 8);
        row.cleared = pg_col_i64(r, i, 9) != 0;
        row.cleared_at = pg_col_i64(r, i, 10);
        ck_strlcpy(row.cleared_by, PQgetvalue(r, i, 11), sizeof(row.cleared_by));
        ret = cb(&row, cb_arg);
    }
    PQclear(r);
    return ret;
}

int
pg_alarm_clear(void *arg, const ck_alarm_filter *f, const char *by, int64_t now_ms, uint64_t *n)
{
    struct pg_be *be = arg;
    int ret;

    *n = 0;
    if ((ret = pg_begin_write(be)) != 0)
        return ret;
    if ((ret = pg_run(be, "alarm clear",
                      "UPDATE alarm SET cleared = 1, cleared_at = $1, cleared_by = $2"
                      " WHERE cleared = 0 AND ($3 = 0 OR id = $3)"
                      " AND ($4::text IS NULL OR code = $4) AND ($5::text IS NULL OR subject = $5)",
                      PARGS(P_INT(now_ms), P_TEXT(by), P_INT(f->id), P_TEXT(f->code),
                            P_TEXT(f->subject)), n)) != 0)
        goto out;
    if (*n > 0)
        ret = pg_bump_generation(be, CK_CHANGE_ALL, NULL, NULL);
out:
    ret = pg_end_write(be, ret);
    if (ret != 0)
        *n = 0;
    return ret;
}
