/* PostgreSQL backend of `db dump` / `db load` (dump.c; the SQLite side is sqlite_dump.c).
 *
 * A dump reads through the ordinary read ops inside one REPEATABLE READ, READ ONLY transaction:
 * every statement sees the snapshot its first statement took, so a dump taken while KDCs and
 * administrators write is still one consistent state, and it blocks none of them.
 *
 * A load is one transaction with the schema itself: ck_store_load opens its target with
 * CK_STORE_OPEN_LOAD_TARGET, pg_init_schema then leaves its transaction open (DDL is
 * transactional in PostgreSQL), and load_dump writes every record into it and commits once.
 * A refused record, a lost connection, a killed `cablekey db load`: the server rolls back, and
 * the database is as empty as before, without even the tables. The records arrive checked by
 * dump.c; the schema's constraints (foreign keys, uniqueness) are the last line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "cablekey/error.h"
#include "cablekey/util.h"
#include "store/pg_int.h"

int
pg_snapshot(void *arg, int (*fn)(void *arg), void *fn_arg)
{
    struct pg_be *be = arg;
    int ret;

    if (be->in_tx)
        return ck_error_set(CK_ERR_INVAL, "dump: the connection is inside a transaction");
    /* Outside a transaction, so a connection lost since the last statement is re-established
     * here; inside it, a loss fails the dump (in_tx), never mixes two snapshots. */
    if ((ret = pg_run(be, "dump: begin snapshot",
                      "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", PNOARGS, NULL)) != 0)
        return ret;
    be->in_tx = true;
    ret = fn(fn_arg);
    if (ret == 0)
        ret = pg_run(be, "dump: end snapshot", "COMMIT", PNOARGS, NULL);
    else
        PQclear(PQexec(be->conn, "ROLLBACK"));
    be->in_tx = false;
    return ret;
}

/* The load's state: the generation every loaded device carries, and the principal written
 * last, whose lockout and history records follow it (dump order). */
struct load_be {
    struct pg_be *be;
    uint64_t gen;
    int64_t cur_id;
    char *cur_name;
};

static int
load_policy(void *arg, const ck_policy *pol)
{
    struct load_be *lb = arg;

    return pg_run(lb->be, "load policy",
                  "INSERT INTO policy(name, min_length, min_classes, history, min_life, max_life,"
                  " max_failure, failure_interval, lockout_duration, created, modified)"
                  " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                  PARGS(P_TEXT(pol->name), P_INT(pol->min_length), P_INT(pol->min_classes),
                        P_INT(pol->history), P_INT(pol->min_life), P_INT(pol->max_life),
                        P_INT(pol->max_failure), P_INT(pol->failure_interval),
                        P_INT(pol->lockout_duration), P_INT(pol->created),
                        P_INT(pol->modified)), NULL);
}

static int
load_principal(void *arg, const struct ck_store_princ_row *row)
{
    struct load_be *lb = arg;
    PGresult *r = NULL;
    int64_t id = 0;
    int ret;

    if ((ret = pg_query(lb->be, "load principal",
                        "INSERT INTO principal(name, attributes, max_life, max_renew, expires,"
                        " pw_expires, kvno, created, modified, policy, last_pwd_change)"
                        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
                        PARGS(P_TEXT(row->name), P_INT(row->attributes), P_INT(row->max_life),
                              P_INT(row->max_renew), P_INT(row->expires),
                              P_INT(row->pw_expires), P_INT(row->kvno), P_INT(row->created),
                              P_INT(row->modified), P_TEXT(row->policy),
                              P_INT(row->last_pwd_change)), &r)) != 0)
        return ret;
    if (PQntuples(r) != 1 || pg_col_int(r, 0, 0, &id) != 0) {
        PQclear(r);
        return ck_error_set(CK_ERR_DB, "load principal %s: no row id", row->name);
    }
    PQclear(r);
    free(lb->cur_name);
    lb->cur_id = 0;
    if ((lb->cur_name = strdup(row->name)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "load");
    lb->cur_id = id;
    return pg_insert_keys(lb->be, id, row->keys, row->n_keys);
}

/* The row id of name: the principal just written (dump.c feeds lockout and history right after
 * their principal); anything else is a caller's bug, refused rather than guessed. */
static int
principal_id(struct load_be *lb, const char *name, const char *what, int64_t *id)
{
    if (lb->cur_name == NULL || strcmp(lb->cur_name, name) != 0)
        return ck_error_set(CK_ERR_INVAL, "load %s: principal %s was not written just before",
                            what, name);
    *id = lb->cur_id;
    return 0;
}

static int
load_lockout(void *arg, const char *name, const ck_db_lockout *l)
{
    struct load_be *lb = arg;
    int64_t id = 0;
    int ret;

    if ((ret = principal_id(lb, name, "lockout", &id)) != 0)
        return ret;
    return pg_run(lb->be, "load lockout",
                  "INSERT INTO lockout(principal_id, fail_count, last_failed, last_success, epoch)"
                  " VALUES ($1, $2, $3, $4, $5)",
                  PARGS(P_INT(id), P_INT(l->fail_count), P_INT(l->last_failed),
                        P_INT(l->last_success), P_INT(l->epoch)), NULL);
}

static int
load_history(void *arg, const char *name, const struct ck_store_key_row *k)
{
    struct load_be *lb = arg;
    int64_t id = 0;
    int ret;

    if ((ret = principal_id(lb, name, "password history", &id)) != 0)
        return ret;
    /* Oldest first: the identity column keeps the order pw_history reads back (id DESC). */
    return pg_run(lb->be, "load password history",
                  "INSERT INTO pw_history(principal_id, kvno, enctype, salt_type, salt, mkvno,"
                  " key_enc) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                  PARGS(P_INT(id), P_INT(k->kvno), P_INT(k->enctype), P_INT(k->salt_type),
                        k->salt_len > 0 ? P_BLOB(k->salt, k->salt_len) : P_NULL,
                        P_INT(k->mkvno), P_BLOB(k->key_enc, k->key_enc_len)), NULL);
}

static int
load_device(void *arg, const struct ck_store_device_row *row)
{
    struct load_be *lb = arg;

    return pg_run(lb->be, "load device",
                  "INSERT INTO device(mac, principal, state, spki_sha256, created, modified,"
                  " revoked, generation, comment, cert_sha256) VALUES ($1, $2, $3, $4, $5, $6,"
                  " $7, $8, $9, $10)",
                  PARGS(P_TEXT(row->mac), P_TEXT(row->principal), P_INT(row->state),
                        row->has_pin ? P_BLOB(row->spki_sha256, CK_DEVICE_SPKI_HASH_LEN)
                                     : P_NULL,
                        P_INT(row->created), P_INT(row->modified), P_INT(row->revoked),
                        P_INT(lb->gen), P_TEXT(row->comment != NULL ? row->comment : ""),
                        row->has_cert ? P_BLOB(row->cert_sha256, 32) : P_NULL),
                  NULL);
}

/* issue 10: a provisioning table's row (store_prov.c's statement), and afterwards the identity
 * columns moved past the loaded ids (rows given an id do not advance them). */
static int
load_prov(void *arg, const char *sql, const struct ck_prov_arg *a, size_t n)
{
    struct load_be *lb = arg;

    return pg_prov_exec(lb->be, "load provisioning row", sql, a, n, NULL);
}

static int
load_prov_done(void *arg)
{
    struct load_be *lb = arg;

    return pg_prov_after_load(lb->be);
}

static const struct ck_store_load_sink pg_sink = {
    .policy = load_policy,
    .principal = load_principal,
    .lockout = load_lockout,
    .history = load_history,
    .device = load_device,
    .prov = load_prov,
    .prov_done = load_prov_done,
};

#define PG_LOAD_ENCTYPE_LIST_SIZE (CK_STORE_MAX_ENCTYPES * 12 + 1)

static int
format_enctypes(const ck_realm_info *realm, char *buf, size_t size)
{
    size_t pos = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < realm->n_enctypes && i < CK_STORE_MAX_ENCTYPES; i++) {
        int n = snprintf(buf + pos, size - pos, "%s%d", i ? "," : "", (int)realm->enctypes[i]);
        if (n < 0 || (size_t)n >= size - pos)
            return ck_error_set(CK_ERR_LIMIT, "enctype list");
        pos += (size_t)n;
    }
    return 0;
}

int
pg_load_dump(void *arg, const ck_realm_info *realm, const ck_audit_retention *retention,
             int (*feed)(void *arg, const struct ck_store_load_sink *sink, void *sink_be),
             void *feed_arg)
{
    struct load_be lb = {.be = arg};
    struct pg_be *be = arg;
    char enctypes[PG_LOAD_ENCTYPE_LIST_SIZE];
    PGresult *r = NULL;
    int ret;

    if ((ret = format_enctypes(realm, enctypes, sizeof(enctypes))) != 0)
        return be->schema_open ? pg_end_write(be, ret) : ret;
    if (be->schema_open) {
        /* Continuing pg_init_schema's transaction (see the file comment): the load writes its
         * own audit row after the realm's creation row. */
        be->schema_open = false;
        be->audit_written = false;
        if ((ret = pg_run(be, "begin write",
                          "SELECT value FROM generation WHERE id = 1 FOR UPDATE", PNOARGS,
                          NULL)) != 0)
            goto out;
    } else if ((ret = pg_begin_write(be)) != 0) {
        return ret;
    }
    /* A load goes into an empty realm only: the caller just created it, but say so if not. */
    if ((ret = pg_query(be, "load", "SELECT count(*) FROM principal", PNOARGS, &r)) != 0)
        goto out;
    if (PQntuples(r) != 1 || pg_col_i64(r, 0, 0) != 0) {
        ret = ck_error_set(CK_ERR_EXISTS, "the target database is not empty");
        goto out;
    }
    /* The bump first: its value is the generation of every loaded device. */
    if ((ret = pg_bump_generation(be, CK_CHANGE_ALL, NULL, &lb.gen)) != 0 ||
        (ret = pg_run(be, "load realm",
                      "UPDATE realm SET enctypes = $1, max_life = $2, max_renew = $3,"
                      " default_attributes = $4 WHERE id = 1",
                      PARGS(P_TEXT(enctypes), P_INT(realm->max_life), P_INT(realm->max_renew),
                            P_INT(realm->default_attributes)), NULL)) != 0 ||
        (ret = pg_run(be, "load audit retention",
                      "UPDATE audit_retention SET keep_rows = $1, keep_days = $2 WHERE id = 1",
                      PARGS(P_INT(retention->keep_rows), P_INT(retention->keep_days)),
                      NULL)) != 0)
        goto out;
    ret = feed(feed_arg, &pg_sink, &lb);
out:
    PQclear(r);
    free(lb.cur_name);
    return pg_end_write(be, ret);
}
