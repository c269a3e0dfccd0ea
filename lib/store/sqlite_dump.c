/* SQLite backend of `db dump` / `db load` (dump.c): a read snapshot, and the one write
 * transaction a load is. The records arrive checked by dump.c; the database's own constraints
 * (foreign keys, uniqueness) are the last line, and any refusal rolls the whole load back. */
#include <string.h>

#include <sqlite3.h>

#include "cablekey/error.h"
#include "cablekey/util.h"
#include "store/sqlite_int.h"

int
sq_snapshot(void *arg, int (*fn)(void *arg), void *fn_arg)
{
    struct sqlite_be *be = arg;
    int ret;

    /* A deferred transaction: the first read fixes the snapshot, writers are not blocked (WAL). */
    if ((ret = sq_exec(be, "BEGIN")) != 0)
        return ret;
    ret = fn(fn_arg);
    if (ret == 0)
        ret = sq_exec(be, "COMMIT");
    else
        sqlite3_exec(be->db, "ROLLBACK", NULL, NULL, NULL);
    return ret;
}

/* The load's state: the generation every loaded device carries. */
struct load_be {
    struct sqlite_be *be;
    uint64_t gen;
};

static int
load_policy(void *arg, const ck_policy *pol)
{
    struct load_be *lb = arg;

    return sq_run(lb->be, "load policy",
                  "INSERT INTO policy(name, min_length, min_classes, history, min_life, max_life,"
                  " max_failure, failure_interval, lockout_duration, created, modified)"
                  " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                  ARGS(A_TEXT(pol->name), A_INT(pol->min_length), A_INT(pol->min_classes),
                       A_INT(pol->history), A_INT(pol->min_life), A_INT(pol->max_life),
                       A_INT(pol->max_failure), A_INT(pol->failure_interval),
                       A_INT(pol->lockout_duration), A_INT(pol->created),
                       A_INT(pol->modified)));
}

static int
load_principal(void *arg, const struct ck_store_princ_row *row)
{
    struct load_be *lb = arg;
    int ret;

    if ((ret = sq_run(lb->be, "load principal",
                      "INSERT INTO principal(name, attributes, max_life, max_renew, expires,"
                      " pw_expires, kvno, created, modified, policy, last_pwd_change)"
                      " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      ARGS(A_TEXT(row->name), A_INT(row->attributes), A_INT(row->max_life),
                           A_INT(row->max_renew), A_INT(row->expires), A_INT(row->pw_expires),
                           A_INT(row->kvno), A_INT(row->created), A_INT(row->modified),
                           A_TEXT(row->policy), A_INT(row->last_pwd_change)))) != 0)
        return ret;
    return sq_insert_keys(lb->be, sqlite3_last_insert_rowid(lb->be->db), row->keys, row->n_keys);
}

static int
load_lockout(void *arg, const char *name, const ck_db_lockout *l)
{
    struct load_be *lb = arg;

    return sq_run(lb->be, "load lockout",
                  "INSERT INTO lockout(principal_id, fail_count, last_failed, last_success, epoch)"
                  " SELECT id, ?, ?, ?, ? FROM principal WHERE name = ?",
                  ARGS(A_INT(l->fail_count), A_INT(l->last_failed), A_INT(l->last_success),
                       A_INT(l->epoch), A_TEXT(name)));
}

static int
load_history(void *arg, const char *name, const struct ck_store_key_row *k)
{
    struct load_be *lb = arg;

    return sq_run(lb->be, "load password history",
                  "INSERT INTO pw_history(principal_id, kvno, enctype, salt_type, salt, mkvno,"
                  " key_enc) SELECT id, ?, ?, ?, ?, ?, ? FROM principal WHERE name = ?",
                  ARGS(A_INT(k->kvno), A_INT(k->enctype), A_INT(k->salt_type),
                       k->salt_len > 0 ? A_BLOB(k->salt, k->salt_len) : A_NULL,
                       A_INT(k->mkvno), A_BLOB(k->key_enc, k->key_enc_len), A_TEXT(name)));
}

static int
load_device(void *arg, const struct ck_store_device_row *row)
{
    struct load_be *lb = arg;

    return sq_run(lb->be, "load device",
                  "INSERT INTO device(mac, principal, state, spki_sha256, created, modified,"
                  " revoked, generation, comment, cert_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?,"
                  " ?)",
                  ARGS(A_TEXT(row->mac), A_TEXT(row->principal), A_INT(row->state),
                       row->has_pin ? A_BLOB(row->spki_sha256, CK_DEVICE_SPKI_HASH_LEN) : A_NULL,
                       A_INT(row->created), A_INT(row->modified), A_INT(row->revoked),
                       A_INT(lb->gen), A_TEXT(row->comment != NULL ? row->comment : ""),
                       row->has_cert ? A_BLOB(row->cert_sha256, 32) : A_NULL));
}

/* issue 10: a provisioning table's row (store_prov.c's statement). */
static int
load_prov(void *arg, const char *sql, const struct ck_prov_arg *a, size_t n)
{
    struct load_be *lb = arg;

    return sq_prov_exec(lb->be, "load provisioning row", sql, a, n, NULL);
}

static const struct ck_store_load_sink sqlite_sink = {
    .policy = load_policy,
    .principal = load_principal,
    .lockout = load_lockout,
    .history = load_history,
    .device = load_device,
    .prov = load_prov,
};

int
sq_load_dump(void *arg, const ck_realm_info *realm, const ck_audit_retention *retention,
             int (*feed)(void *arg, const struct ck_store_load_sink *sink, void *sink_be),
             void *feed_arg)
{
    struct load_be lb = {.be = arg, .gen = 0};
    char enctypes[SQ_ENCTYPE_LIST_SIZE];
    sqlite3_stmt *st = NULL;
    int ret;

    if ((ret = sq_format_enctypes(realm->enctypes, realm->n_enctypes, enctypes,
                                  sizeof(enctypes))) != 0)
        return ret;
    if ((ret = sq_begin_write(lb.be)) != 0)
        return ret;
    /* A load goes into an empty realm only: the caller just created it, but say so if not. */
    if ((ret = sq_query(lb.be, "load", "SELECT count(*) FROM principal", NULL, 0, &st)) != 0)
        goto out;
    if (sqlite3_step(st) != SQLITE_ROW) {
        ret = sq_error(lb.be, "load");
        goto out;
    }
    if (sqlite3_column_int64(st, 0) != 0) {
        ret = ck_error_set(CK_ERR_EXISTS, "the target database is not empty");
        goto out;
    }
    /* The bump first: its value is the generation of every loaded device. */
    if ((ret = sq_bump_generation(lb.be, CK_CHANGE_ALL, NULL, &lb.gen)) != 0 ||
        (ret = sq_run(lb.be, "load realm",
                      "UPDATE realm SET enctypes = ?, max_life = ?, max_renew = ?,"
                      " default_attributes = ? WHERE id = 1",
                      ARGS(A_TEXT(enctypes), A_INT(realm->max_life), A_INT(realm->max_renew),
                           A_INT(realm->default_attributes)))) != 0 ||
        (ret = sq_run(lb.be, "load audit retention",
                      "UPDATE audit_retention SET keep_rows = ?, keep_days = ? WHERE id = 1",
                      ARGS(A_INT(retention->keep_rows), A_INT(retention->keep_days)))) != 0)
        goto out;
    ret = feed(feed_arg, &sqlite_sink, &lb);
out:
    sqlite3_finalize(st);
    return sq_end_write(lb.be, ret);
}
