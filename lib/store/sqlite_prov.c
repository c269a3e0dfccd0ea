/* SQLite backend: the provisioning server's customer database (cablekey/prov.h). The rules and
 * the statements live in store_prov.c (one portable text per statement, parameters $1..$n);
 * this file keeps the schema step, runs those statements on the connection (each prepared once
 * and kept) and writes principals for the KDC's admission. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "cablekey/error.h"
#include "cablekey/util.h"
#include "store/sqlite_int.h"

/* Schema step 7 -> 8. The provisioning rows refer to the KDC's device row by MAC without a
 * foreign key: `cablekey device delete` must keep working on a provisioned device (its history
 * stays), and a load writes the tables in any order. */
const char *const sq_schema_prov[] = {
    "ALTER TABLE device ADD COLUMN cert_sha256 BLOB"
    " CHECK (cert_sha256 IS NULL OR length(cert_sha256) = 32)",
    "CREATE TABLE prov_customer("
    " id INTEGER PRIMARY KEY,"
    " type INTEGER NOT NULL,"
    " name TEXT NOT NULL,"
    " address TEXT NOT NULL,"
    " email TEXT,"
    " segment TEXT NOT NULL,"
    " services TEXT NOT NULL,"
    " created INTEGER NOT NULL,"
    " modified INTEGER NOT NULL)",
    "CREATE TABLE prov_device("
    " mac TEXT NOT NULL PRIMARY KEY CHECK (length(mac) = 17),"
    " state INTEGER NOT NULL,"
    " principal TEXT NOT NULL,"
    " customer_id INTEGER NOT NULL DEFAULT 0,"
    " owner_id INTEGER NOT NULL DEFAULT 0,"
    " loaner_for TEXT,"
    " segment TEXT NOT NULL DEFAULT '',"
    " fqdn TEXT NOT NULL DEFAULT '',"
    " ipv4 INTEGER NOT NULL DEFAULT 0,"
    " unprov_ip TEXT NOT NULL DEFAULT '',"
    " reported_by TEXT,"
    " mfg_cert BLOB,"
    " spki_sha256 BLOB,"
    " cert_id INTEGER NOT NULL DEFAULT 0,"
    " first_seen INTEGER NOT NULL,"
    " last_seen INTEGER NOT NULL,"
    " modified INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE INDEX prov_device_ip ON prov_device(unprov_ip, mac)",
    "CREATE INDEX prov_device_customer ON prov_device(customer_id, mac)",
    "CREATE INDEX prov_device_state ON prov_device(state, mac)",
    "CREATE TABLE prov_number("
    " number TEXT NOT NULL PRIMARY KEY,"
    " segment TEXT NOT NULL,"
    " mac TEXT,"
    " slot INTEGER NOT NULL DEFAULT 0,"
    " assigned INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID",
    "CREATE INDEX prov_number_free ON prov_number(segment, mac, number)",
    "CREATE INDEX prov_number_mac ON prov_number(mac, slot)",
    "CREATE TABLE prov_cert("
    " id INTEGER PRIMARY KEY,"
    " mac TEXT NOT NULL,"
    " der BLOB NOT NULL,"
    " sha256 BLOB NOT NULL CHECK (length(sha256) = 32),"
    " not_before INTEGER NOT NULL,"
    " not_after INTEGER NOT NULL,"
    " issued INTEGER NOT NULL,"
    " acked INTEGER NOT NULL DEFAULT 0,"
    " superseded INTEGER NOT NULL DEFAULT 0)",
    "CREATE INDEX prov_cert_mac ON prov_cert(mac, id)",
    "CREATE INDEX prov_cert_sha ON prov_cert(sha256)",
    "CREATE TABLE prov_event("
    " id INTEGER PRIMARY KEY,"
    " time INTEGER NOT NULL,"
    " mac TEXT NOT NULL DEFAULT '',"
    " customer_id INTEGER NOT NULL DEFAULT 0,"
    " action TEXT NOT NULL,"
    " actor TEXT NOT NULL,"
    " detail TEXT NOT NULL)",
    "CREATE INDEX prov_event_mac ON prov_event(mac, id)",
    "CREATE INDEX prov_event_customer ON prov_event(customer_id, id)",
    "CREATE TABLE prov_idem("
    " key TEXT NOT NULL PRIMARY KEY,"
    " request BLOB NOT NULL,"
    " event_id INTEGER NOT NULL,"
    " created INTEGER NOT NULL)",
    "CREATE INDEX prov_idem_created ON prov_idem(created)",
    "CREATE TABLE prov_outbox("
    " id INTEGER PRIMARY KEY,"
    " event_id INTEGER NOT NULL,"
    " target TEXT NOT NULL,"
    " body TEXT NOT NULL,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " next_attempt INTEGER NOT NULL,"
    " created INTEGER NOT NULL,"
    " delivered INTEGER NOT NULL DEFAULT 0,"
    " last_status INTEGER NOT NULL DEFAULT 0)",
    "CREATE INDEX prov_outbox_due ON prov_outbox(delivered, next_attempt, id)",
    NULL,
};

/* Prepared statements, keyed by the address of their SQL literal in store_prov.c (each text is
 * one literal, so the address names it) and checked against the statement's text (sq_run's
 * callers in sqlite*.c may pass a built buffer, whose address another text can reuse). Beyond
 * the cache's size a statement is prepared per use. The KDC's own writes in a provisioning
 * action (the device row, the generation, the changelog, the audit) come through sq_run: each
 * was prepared per call; with them cached the back's CPU per action fell by about a quarter
 * (docs/PERFORMANCE.md "Provisioning"). */
#define SQ_PROV_CACHE 160
struct sq_prov_cache {
    const char *sql[SQ_PROV_CACHE];
    sqlite3_stmt *st[SQ_PROV_CACHE];
    size_t n;
};

void
sq_prov_cache_free(struct sqlite_be *be)
{
    if (be == NULL || be->prov == NULL)
        return;
    for (size_t i = 0; i < be->prov->n; i++)
        sqlite3_finalize(be->prov->st[i]);
    free(be->prov);
    be->prov = NULL;
}

/* *cached: the statement stays in the cache (reset, not finalized, after use). */
static int
prov_prepare(struct sqlite_be *be, const char *sql, sqlite3_stmt **st, bool *cached)
{
    struct sq_prov_cache *c = be->prov;
    int ret;

    *cached = false;
    if (c == NULL && (c = be->prov = calloc(1, sizeof(*c))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "statement cache");
    for (size_t i = 0; i < c->n; i++) {
        if (c->sql[i] == sql && strcmp(sqlite3_sql(c->st[i]), sql) == 0) {
            *st = c->st[i];
            *cached = true;
            return 0;
        }
    }
    if ((ret = sq_prepare(be, sql, st)) != 0)
        return ret;
    if (c->n < SQ_PROV_CACHE) {
        c->sql[c->n] = sql;
        c->st[c->n++] = *st;
        *cached = true;
    }
    return 0;
}

static void
prov_done(sqlite3_stmt *st, bool cached)
{
    if (cached) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    } else {
        sqlite3_finalize(st);
    }
}

int
sq_run_cached(struct sqlite_be *be, const char *what, const char *sql, const struct sql_arg *a,
              size_t n)
{
    sqlite3_stmt *st = NULL;
    bool cached = false;
    int ret;

    if ((ret = prov_prepare(be, sql, &st, &cached)) != 0)
        return ret;
    if ((ret = sq_bind(be, st, what, a, n)) == 0 && sqlite3_step(st) != SQLITE_DONE)
        ret = sq_error(be, what);
    prov_done(st, cached);
    return ret;
}

/* Binds a[i] to the parameter named "$i+1"; every parameter must be used. */
static int
prov_bind(struct sqlite_be *be, sqlite3_stmt *st, const char *what, const struct ck_prov_arg *a,
          size_t n)
{
    if ((size_t)sqlite3_bind_parameter_count(st) != n)
        return ck_error_set(CK_ERR_INVAL, "%s: statement takes %d parameters, %zu given", what,
                            sqlite3_bind_parameter_count(st), n);
    for (size_t i = 0; i < n; i++) {
        char name[24];
        int idx, rc;

        snprintf(name, sizeof(name), "$%zu", i + 1);
        if ((idx = sqlite3_bind_parameter_index(st, name)) == 0)
            return ck_error_set(CK_ERR_INVAL, "%s: no parameter %s", what, name);
        switch (a[i].type) {
        case CK_PA_INT: rc = sqlite3_bind_int64(st, idx, a[i].i); break;
        case CK_PA_TEXT:
            rc = a[i].s != NULL ? sqlite3_bind_text(st, idx, a[i].s, -1, SQLITE_STATIC)
                                : sqlite3_bind_null(st, idx);
            break;
        case CK_PA_BLOB:
            rc = a[i].p != NULL && a[i].len <= INT32_MAX
                     ? sqlite3_bind_blob(st, idx, a[i].p, (int)a[i].len, SQLITE_STATIC)
                     : sqlite3_bind_null(st, idx);
            break;
        default: rc = sqlite3_bind_null(st, idx); break;
        }
        if (rc != SQLITE_OK)
            return sq_error(be, what);
    }
    return 0;
}

static int64_t
row_i64(const struct ck_prov_row *r, int col)
{
    return sqlite3_column_int64((sqlite3_stmt *)r->impl, col);
}

static bool
row_null(const struct ck_prov_row *r, int col)
{
    return sqlite3_column_type((sqlite3_stmt *)r->impl, col) == SQLITE_NULL;
}

static char *
row_text(const struct ck_prov_row *r, int col)
{
    return sq_column_strdup((sqlite3_stmt *)r->impl, col);
}

static int
row_blob(const struct ck_prov_row *r, int col, uint8_t **p, size_t *len)
{
    sqlite3_stmt *st = (sqlite3_stmt *)r->impl;
    const void *b;
    int n;

    *p = NULL;
    *len = 0;
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return 0;
    b = sqlite3_column_blob(st, col);
    n = sqlite3_column_bytes(st, col);
    if (n <= 0)
        return 0;
    if ((*p = ck_memdup(b, (size_t)n)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "blob column");
    *len = (size_t)n;
    return 0;
}

int
sq_prov_query(void *arg, const char *what, const char *sql, const struct ck_prov_arg *a,
              size_t n, int (*cb)(const struct ck_prov_row *r, void *cb_arg), void *cb_arg)
{
    struct sqlite_be *be = arg;
    struct ck_prov_row row = {.i64 = row_i64, .null = row_null, .text = row_text,
                              .blob = row_blob};
    sqlite3_stmt *st = NULL;
    bool cached = false;
    int rc, ret;

    if ((ret = prov_prepare(be, sql, &st, &cached)) != 0)
        return ret;
    if ((ret = prov_bind(be, st, what, a, n)) != 0)
        goto out;
    row.impl = st;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (cb != NULL && (ret = cb(&row, cb_arg)) != 0)
            goto out;
        row.row++;
    }
    if (rc != SQLITE_DONE)
        ret = sq_error(be, what);
out:
    prov_done(st, cached);
    return ret;
}

int
sq_prov_exec(void *arg, const char *what, const char *sql, const struct ck_prov_arg *a,
             size_t n, uint64_t *affected)
{
    struct sqlite_be *be = arg;
    int ret;

    if (affected != NULL)
        *affected = 0;
    if ((ret = sq_prov_query(be, what, sql, a, n, NULL, NULL)) != 0)
        return ret;
    if (affected != NULL)
        *affected = (uint64_t)sqlite3_changes(be->db);
    return 0;
}

int
sq_prov_begin(void *arg)
{
    return sq_begin_write(arg);
}

int
sq_prov_end(void *arg, int ret)
{
    return sq_end_write(arg, ret);
}

int
sq_prov_bump(void *arg, enum ck_store_change_kind kind, const char *key, uint64_t *gen)
{
    return sq_bump_generation(arg, kind, key, gen);
}

int
sq_prov_audit(void *arg, const char *object)
{
    struct sqlite_be *be = arg;
    uint64_t gen = 0;
    int ret;

    if ((ret = sqlite_generation(be, &gen)) != 0)
        return ret;
    return sq_audit_write(be, CK_CHANGE_DEVICE, object, gen);
}

int
sq_prov_principal_ensure(void *arg, const struct ck_store_princ_row *row, int64_t now,
                         bool *created)
{
    struct sqlite_be *be = arg;
    int64_t id = 0;
    int ret;

    *created = false;
    if ((ret = sq_lookup_id(be, row->name, &id, NULL)) != 0 || id != 0)
        return ret;
    if ((ret = sq_run(be, "store principal",
                      "INSERT INTO principal(attributes, max_life, max_renew, expires,"
                      " pw_expires, kvno, modified, name, created, policy, last_pwd_change)"
                      " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, 0)",
                      ARGS(A_INT(row->attributes), A_INT(row->max_life), A_INT(row->max_renew),
                           A_INT(row->expires), A_INT(row->pw_expires), A_INT(row->kvno),
                           A_INT(now), A_TEXT(row->name), A_INT(now)))) != 0)
        return ret;
    id = sqlite3_last_insert_rowid(be->db);
    if ((ret = sq_insert_keys(be, id, row->keys, row->n_keys)) != 0)
        return ret;
    *created = true;
    return 0;
}
