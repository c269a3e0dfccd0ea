/* Internal interface of the SQLite backend: the connection object and the checked statement
 * helpers that every lib/store/sqlite*.c file uses. All SQL lives in those files; a concern with
 * several statements of its own (policies, audit, maintenance) gets its own file, and its
 * operations are listed in ck_store_sqlite_ops (sqlite.c). */
#ifndef CK_SQLITE_INT_H
#define CK_SQLITE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "store/store_int.h"

struct sqlite_be {
    sqlite3 *db;
    bool readonly;
    sqlite3_stmt *get_princ;
    sqlite3_stmt *get_keys;
    sqlite3_stmt *get_gen;
    sqlite3_stmt *get_dev;
    struct ck_store_audit *audit;   /* the store's actor and pending action (NULL: none) */
    bool audit_written;             /* the current write transaction has its audit row */
    struct sq_prov_cache *prov;     /* sqlite_prov.c: its prepared statements */
};

/* ---- typed, checked parameter binding ----
 *
 * Every statement parameter goes through sq_bind, which checks each sqlite3_bind_* result; the
 * write path's "prepare, bind, step to the end, finalize" is sq_run. */

enum sql_type { SQL_INT, SQL_TEXT, SQL_BLOB, SQL_NULL };

struct sql_arg {
    enum sql_type type;
    int64_t i;
    const char *s;  /* SQL_TEXT: NUL-terminated; NULL binds SQL NULL */
    const void *p;  /* SQL_BLOB */
    size_t len;
};

#define A_INT(v) ((struct sql_arg){.type = SQL_INT, .i = (int64_t)(v)})
#define A_TEXT(v) ((struct sql_arg){.type = SQL_TEXT, .s = (v)})
#define A_BLOB(v, n) ((struct sql_arg){.type = SQL_BLOB, .p = (v), .len = (n)})
#define A_NULL ((struct sql_arg){.type = SQL_NULL})
/* An argument list: pointer and count of a compound literal. */
#define ARGS(...)                                                                               \
    (const struct sql_arg[]){__VA_ARGS__},                                                      \
        sizeof((const struct sql_arg[]){__VA_ARGS__}) / sizeof(struct sql_arg)

/* The connection's last error as CK_ERR_DB (CK_ERR_PERM when read-only), "what: message". */
int sq_error(struct sqlite_be *be, const char *what);
/* Runs statements without parameters (schema steps, transaction control). */
int sq_exec(struct sqlite_be *be, const char *sql);
int sq_prepare(struct sqlite_be *be, const char *sql, sqlite3_stmt **st);
int sq_bind(struct sqlite_be *be, sqlite3_stmt *st, const char *what, const struct sql_arg *a,
            size_t n);
/* Resets a statement prepared once and kept, and binds its parameters. */
int sq_reuse(struct sqlite_be *be, sqlite3_stmt *st, const char *what, const struct sql_arg *a,
             size_t n);
/* Ends a use of a kept statement: no read transaction may outlive the call. */
void sq_release(sqlite3_stmt *st);
/* Prepares sql, binds the arguments, steps it to completion (no rows expected), finalizes. */
int sq_run(struct sqlite_be *be, const char *what, const char *sql, const struct sql_arg *a,
           size_t n);
/* Prepares sql and binds the arguments; the caller steps and finalizes. */
int sq_query(struct sqlite_be *be, const char *what, const char *sql, const struct sql_arg *a,
             size_t n, sqlite3_stmt **out);
/* BEGIN IMMEDIATE (refused on a read-only connection) ... COMMIT if ret == 0, else ROLLBACK;
 * sq_end_write returns ret or the commit error. */
int sq_begin_write(struct sqlite_be *be);
int sq_end_write(struct sqlite_be *be, int ret);
/* Bumps the generation and logs what changed, inside the caller's write transaction; *gen (may
 * be NULL) receives the new value. key NULL: anything may have changed. Every administrative
 * write calls it in its transaction. */
int sq_bump_generation(struct sqlite_be *be, enum ck_store_change_kind kind, const char *key,
                       uint64_t *gen);
/* The audit row of the current write transaction (sqlite_audit.c), called by
 * sq_bump_generation: at most one row per transaction, from the pending action or, if no caller
 * named one, a generic one for kind; none if the action is marked not administrative. */
int sq_audit_write(struct sqlite_be *be, enum ck_store_change_kind kind, const char *key,
                   uint64_t gen);
/* Text column as a malloc'd string (NULL for SQL NULL or out of memory). */
char *sq_column_strdup(sqlite3_stmt *st, int col);
int sqlite_generation(void *arg, uint64_t *gen);
/* "17,18" for a realm enctype list; buf holds CK_STORE_MAX_ENCTYPES * 12 + 1 bytes. */
#define SQ_ENCTYPE_LIST_SIZE (CK_STORE_MAX_ENCTYPES * 12 + 1)
int sq_format_enctypes(const int32_t *enctypes, size_t n, char *buf, size_t size);

/* sqlite_admin.c: realm settings and renames (ck_store_ops.realm_modify, .rename). */
int sqlite_realm_modify(void *arg, const ck_realm_info *realm);
int sqlite_rename(void *arg, const char *old_name, const char *new_name, uint32_t kvno,
                  const struct ck_store_key_row *keys, size_t n_keys,
                  const struct ck_store_key_row *hist, size_t n_hist, int64_t now);
/* Inside a write transaction: a principal's row id (0 if absent) and current kvno (may be
 * NULL); inserts key rows for a principal id, in order. */
int sq_lookup_id(struct sqlite_be *be, const char *name, int64_t *id, uint32_t *kvno);
/* Reads a stored key of principal name from the current row of st, whose columns are kvno,
 * enctype, salt_type, salt, mkvno, key_enc: CK_ERR_DB (malformed `what`) or CK_ERR_NOMEM, and
 * then k holds what was copied so far, to free as a row. */
int sq_column_key_row(sqlite3_stmt *st, const char *name, const char *what,
                      struct ck_store_key_row *k);
int sq_insert_keys(struct sqlite_be *be, int64_t id, const struct ck_store_key_row *keys,
                   size_t n);
/* Begins a write transaction on principal name, whose row id goes to *id, if its kvno is still
 * kvno (conflict 0: whatever its kvno). On failure nothing is left open: CK_ERR_NOTFOUND,
 * `conflict` if the kvno moved, or the database's error. */
int sq_begin_principal_write(struct sqlite_be *be, const char *name, uint32_t kvno, int conflict,
                             int64_t *id);

/* ---- policies and lockout (sqlite_policy.c) ---- */

/* Schema step 4 -> 5 (self-contained, renumber freely when merging): the policy
 * table, principal.policy and last_pwd_change, the lockout and password history side tables. */
extern const char *const sq_schema_policy[];
/* What a principal lookup (table alias p) adds for ck_store_princ_row's schema-3 fields: the
 * columns, read by sq_read_principal_policy from column `first` on, and the joins. */
#define SQ_PRINCIPAL_POLICY_COLUMNS                                                            \
    "p.policy, p.last_pwd_change, coalesce(l.fail_count, 0), coalesce(l.last_failed, 0),"     \
    " coalesce(l.last_success, 0), coalesce(l.epoch, 0), coalesce(pol.max_failure, 0),"        \
    " coalesce(pol.failure_interval, 0), coalesce(pol.lockout_duration, 0)"
#define SQ_PRINCIPAL_POLICY_JOIN                                                               \
    "LEFT JOIN lockout l ON l.principal_id = p.id LEFT JOIN policy pol ON pol.name = p.policy"
int sq_read_principal_policy(sqlite3_stmt *st, int first, struct ck_store_princ_row *row);
/* CK_ERR_NOTFOUND unless the policy exists. */
int sq_policy_exists(struct sqlite_be *be, const char *name);
int sq_policy_put(void *be, const ck_policy *pol, bool create, int64_t now);
int sq_policy_get(void *be, const char *name, ck_policy *out);
int sq_policy_del(void *be, const char *name);
int sq_policy_list(void *be, ck_store_policy_cb cb, void *arg);
int sq_set_policy(void *be, const char *name, const char *policy, int64_t now);
int sq_pw_history(void *be, const char *name, size_t max, struct ck_store_key_row **rows,
                  size_t *n);
int sq_change_password(void *be, const char *name, uint32_t old_kvno, uint32_t new_kvno,
                       const struct ck_store_key_row *keys, size_t n_keys, unsigned keep,
                       unsigned hist_keep, int64_t pw_expires, uint32_t clear_attrs, int64_t now);
int sq_record_auth(void *be, const ck_lockout_update *u, size_t n);
int sq_unlock(void *be, const char *name, int64_t now);

/* Backend ops defined outside sqlite.c. */
void sqlite_audit_attach(void *arg, struct ck_store_audit *audit);
int sqlite_audit_list(void *arg, const ck_audit_filter *f, ck_store_audit_cb cb, void *cb_arg);
int sqlite_audit_get_retention(void *arg, ck_audit_retention *r);
int sqlite_audit_set_retention(void *arg, const ck_audit_retention *r);
int sqlite_backup(const char *db_path, const char *out_path, bool overwrite,
                  ck_store_backup_info *info);
int sqlite_holder(const char *db_path, long *pid);
int sqlite_check_db(const char *db_path, ck_store_check_cb cb, void *arg,
                    ck_store_check_result *res);
int sqlite_restore_tmp(const char *db_path, char **out);
int sqlite_restore_prepare(const char *in_path, const char *tmp_path, int *schema_version);
int sqlite_restore_commit(const char *db_path, const char *tmp_path,
                          struct ck_store_audit *audit, ck_store_restore_info *info);
/* sqlite_dump.c: ck_store_ops.snapshot and .load_dump. */
int sq_snapshot(void *be, int (*fn)(void *arg), void *arg);
int sq_load_dump(void *be, const ck_realm_info *realm, const ck_audit_retention *retention,
                 int (*feed)(void *arg, const struct ck_store_load_sink *sink, void *sink_be),
                 void *arg);
/* ---- service-key rotation (sqlite_rotation.c, k9rot) ---- */

/* Schema step (self-contained, renumber freely when merging): rotation_policy, key_version,
 * key_confirm. */
extern const char *const sq_schema_rotation[];
int sq_rot_policy_put(void *be, const ck_rotation_policy *pol, int64_t now);
int sq_rot_policy_get(void *be, const char *principal, ck_rotation_policy *out);
int sq_rot_policy_del(void *be, const char *principal);
int sq_rot_pause(void *be, const char *principal, bool paused, int64_t now);
int sq_rot_policy_list(void *be, ck_store_rotation_cb cb, void *arg);
int sq_key_stage(void *be, const char *name, uint32_t cur_kvno, uint32_t new_kvno,
                 const struct ck_store_key_row *keys, size_t n_keys, int64_t now,
                 uint32_t *staged);
int sq_key_confirm(void *be, const char *name, const char *host, uint32_t kvno, int64_t now);
int sq_key_activate(void *be, const char *name, uint32_t kvno, int64_t now);
int sq_key_purge(void *be, const char *name, uint32_t cur_kvno, const uint32_t *kvnos, size_t n);
int sq_rot_status(void *be, const char *name, ck_rotation_status *out);

/* sqlite_mkey.c: master-key rotation (ck_store_ops.mkey_*). sq_mkey_guard: inside a write
 * transaction, CK_ERR_POLICY if a key row names a master kvno without a master_key row. */
int sq_mkey_guard(struct sqlite_be *be, const struct ck_store_key_row *keys, size_t n);
int sq_mkey_list(void *be, struct ck_store_mkey_row **rows, size_t *n);
int sq_mkey_add(void *be, const struct ck_store_mkey_row *row, int64_t now);
int sq_mkey_activate(void *be, uint32_t kvno, int64_t now);
int sq_mkey_count(void *be, uint32_t mkvno, uint32_t only, uint64_t *keys, uint64_t *hist);
int sq_mkey_reencrypt(void *be, uint32_t mkvno, size_t limit,
                      int (*rewrap)(void *arg, const char *name,
                                    const struct ck_store_key_row *in,
                                    struct ck_store_key_row *out),
                      void *arg, size_t *done, int64_t now);
int sq_mkey_retire(void *be, uint32_t kvno, int64_t now);
/* sqlite.c's open and close, for the maintenance code. */
int sqlite_open_path(const char *path, unsigned flags, struct sqlite_be **out);
void sqlite_close_be(struct sqlite_be *be);
int sqlite_schema_version(void);

/* ---- alarm table (sqlite_alarm.c, k9alarmw) ---- */

/* Schema step: the alarm table (self-contained, renumber freely when merging). */
extern const char *const sq_schema_alarm[];
int sq_alarm_record(void *be, const ck_alarm_row *row, int64_t keep);
int sq_alarm_list(void *be, const ck_alarm_filter *f, ck_store_alarm_cb cb, void *arg);
int sq_alarm_clear(void *be, const ck_alarm_filter *f, const char *by, int64_t now_ms,
                   uint64_t *n);

/* ---- provisioning (sqlite_prov.c, issue 10) ---- */

/* Schema step 7 -> 8: the customer database and device.cert_sha256. */
extern const char *const sq_schema_prov[];
int sq_prov_begin(void *be);
int sq_prov_end(void *be, int ret);
int sq_prov_bump(void *be, enum ck_store_change_kind kind, const char *key, uint64_t *gen);
int sq_prov_audit(void *be, const char *object);
int sq_prov_exec(void *be, const char *what, const char *sql, const struct ck_prov_arg *a,
                 size_t n, uint64_t *affected);
int sq_prov_query(void *be, const char *what, const char *sql, const struct ck_prov_arg *a,
                  size_t n, int (*cb)(const struct ck_prov_row *r, void *arg), void *arg);
int sq_prov_principal_ensure(void *be, const struct ck_store_princ_row *row, int64_t now,
                             bool *created);
/* The statement cache of sqlite_prov.c, finalized by sqlite_close. */
void sq_prov_cache_free(struct sqlite_be *be);
/* sq_run on a statement kept prepared (sqlite_prov.c's cache) */
int sq_run_cached(struct sqlite_be *be, const char *what, const char *sql,
                  const struct sql_arg *a, size_t n);

#endif
