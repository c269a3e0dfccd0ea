/* Internal interface of the PostgreSQL backend (lib/store/pg*.c): the connection object and the
 * checked statement helpers. All SQL of this backend lives in those files.
 *
 * Conventions (the SQLite backend's semantics, carried over):
 * - Every statement is a server-side prepared statement: pg_query prepares each distinct SQL
 *   text once per connection (keyed by the address of its string literal) and then only
 *   executes it. Parameters are bound by type (integers as text, text, bytea in binary); no
 *   value is ever spliced into SQL.
 * - Every administrative write is one transaction that takes the generation row's lock first
 *   (pg_begin_write), so writers are serialized as SQLite's BEGIN IMMEDIATE serializes them
 *   and read-then-write checks cannot race another KDC or CLI; it ends with
 *   pg_bump_generation (counter + change-log row + audit row + NOTIFY), committed together.
 * - The KDC's lockout counters (record_auth) take no generation lock and bump nothing.
 * - NOTIFY ck_change (payload: the new generation) is delivered at commit to every connection
 *   that LISTENs, which every backend connection does from open on: ck_store_ops.wait_change
 *   and .change_fd let a cache learn of a change in milliseconds instead of polling. */
#ifndef CK_PG_INT_H
#define CK_PG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "store/store_int.h"

/* 2 (issue 10): the provisioning tables; pg_open upgrades a version 1 database. */
#define PG_SCHEMA_VERSION 2
#define PG_NOTIFY_CHANNEL "ck_change"
/* Distinct statements a connection prepares (each SQL literal of lib/store/pg*.c at most once). */
#define PG_MAX_STATEMENTS 256
/* Parameters of one statement. */
#define PG_MAX_PARAMS 24

struct pg_be {
    PGconn *conn;
    bool readonly;
    bool in_tx;
    const char *stmt_sql[PG_MAX_STATEMENTS]; /* the literal each prepared "ckN" stands for */
    size_t n_stmt;
    struct ck_store_audit *audit;   /* the store's actor and pending action (NULL: none) */
    bool audit_written;             /* the current write transaction has its audit row */
    bool missed;                    /* reconnected: notifications may have been lost */
    bool reconnecting;              /* inside pg_reconnect's session setup */
    char *conninfo;                 /* k9fleet: the caller's string, for reconnections */
    /* pg_dump.c: opened by ck_store_load (CK_STORE_OPEN_LOAD_TARGET); schema_open: init_schema
     * left its transaction open for load_dump. */
    bool load_target;
    bool schema_open;
};

enum pg_type { PG_INT, PG_TEXT, PG_BLOB, PG_NULL };

struct pg_arg {
    enum pg_type type;
    int64_t i;
    const char *s;  /* PG_TEXT: NUL-terminated; NULL binds SQL NULL */
    const void *p;  /* PG_BLOB */
    size_t len;
};

#define P_INT(v) ((struct pg_arg){.type = PG_INT, .i = (int64_t)(v)})
#define P_TEXT(v) ((struct pg_arg){.type = PG_TEXT, .s = (v)})
#define P_BLOB(v, n) ((struct pg_arg){.type = PG_BLOB, .p = (v), .len = (n)})
#define P_NULL ((struct pg_arg){.type = PG_NULL})
#define PARGS(...)                                                                              \
    (const struct pg_arg[]){__VA_ARGS__},                                                       \
        sizeof((const struct pg_arg[]){__VA_ARGS__}) / sizeof(struct pg_arg)
#define PNOARGS NULL, 0

/* Runs a statement (prepared once per connection, then executed). *res (may be NULL: the
 * result is dropped) receives a successful result the caller PQclear()s. Errors name `what`
 * in the operator's terms: CK_ERR_DB (unreachable, refused by a constraint, ...), CK_ERR_PERM
 * (read-only). */
int pg_query(struct pg_be *be, const char *what, const char *sql, const struct pg_arg *a,
             size_t n, PGresult **res);
/* Like pg_query, and *affected receives the number of rows the statement changed. */
int pg_run(struct pg_be *be, const char *what, const char *sql, const struct pg_arg *a,
           size_t n, uint64_t *affected);
/* Transaction control. pg_begin_write refuses a read-only connection and locks the generation
 * row; pg_end_write commits if ret == 0, else rolls back, and returns ret or the commit error. */
int pg_begin_write(struct pg_be *be);
int pg_begin_plain(struct pg_be *be);
int pg_end_write(struct pg_be *be, int ret);
/* Inside the write transaction: counter + change log + audit row + NOTIFY; *gen may be NULL. */
int pg_bump_generation(struct pg_be *be, enum ck_store_change_kind kind, const char *key,
                       uint64_t *gen);
int pg_audit_write(struct pg_be *be, enum ck_store_change_kind kind, const char *key,
                   uint64_t gen);

/* Column readers for text-format results. */
int pg_col_int(const PGresult *r, int row, int col, int64_t *out);
int64_t pg_col_i64(const PGresult *r, int row, int col); /* 0 on NULL or malformed */
bool pg_col_null(const PGresult *r, int row, int col);
char *pg_col_strdup(const PGresult *r, int row, int col); /* NULL for SQL NULL or no memory */
/* A bytea column, unescaped into a malloc'd buffer; *p NULL and *len 0 for SQL NULL. */
int pg_col_bytea(const PGresult *r, int row, int col, uint8_t **p, size_t *len);
/* Reads kvno, enctype, salt_type, salt, mkvno, key_enc from column `first` on. */
int pg_col_key_row(const PGresult *r, int row, int first, const char *name, const char *what,
                   struct ck_store_key_row *k);

/* Inside a write transaction: a principal's id (0 if absent) and kvno (may be NULL), locked. */
int pg_lookup_id(struct pg_be *be, const char *name, int64_t *id, uint32_t *kvno);
int pg_insert_keys(struct pg_be *be, int64_t id, const struct ck_store_key_row *keys, size_t n);
/* Begins a write transaction on principal name if its kvno is still kvno (conflict 0: any). */
int pg_begin_principal_write(struct pg_be *be, const char *name, uint32_t kvno, int conflict,
                             int64_t *id);
int pg_generation(void *be, uint64_t *gen);

/* pg_device.c */
int pg_device_get(void *be, const char *mac, struct ck_store_device_row *row);
int pg_device_add(void *be, const struct ck_store_device_row *row, int64_t now);
int pg_device_update(void *be, const char *mac, enum ck_store_device_update what, int state,
                     const uint8_t *hash, int64_t now, bool *changed);
int pg_device_del(void *be, const char *mac);
int pg_device_list(void *be, const char *principal, const char *after, size_t limit,
                   int (*cb)(const struct ck_store_device_row *row, void *arg), void *arg,
                   size_t *n_out);
int pg_device_pin_check(void *be, const char *mac, const uint8_t *hash,
                        enum ck_device_pin_result *result, uint64_t *generation, int64_t now);

/* pg_policy.c: policies, password history, lockout, realm settings, renames, audit log. */
int pg_policy_exists(struct pg_be *be, const char *name);
int pg_policy_put(void *be, const ck_policy *pol, bool create, int64_t now);
int pg_policy_get(void *be, const char *name, ck_policy *out);
int pg_policy_del(void *be, const char *name);
int pg_policy_list(void *be, ck_store_policy_cb cb, void *arg);
int pg_set_policy(void *be, const char *name, const char *policy, int64_t now);
int pg_pw_history(void *be, const char *name, size_t max, struct ck_store_key_row **rows,
                  size_t *n);
int pg_change_password(void *be, const char *name, uint32_t old_kvno, uint32_t new_kvno,
                       const struct ck_store_key_row *keys, size_t n_keys, unsigned keep,
                       unsigned hist_keep, int64_t pw_expires, uint32_t clear_attrs,
                       int64_t now);
int pg_record_auth(void *be, const ck_lockout_update *u, size_t n);
int pg_unlock(void *be, const char *name, int64_t now);
int pg_realm_modify(void *be, const ck_realm_info *realm);
int pg_rename(void *be, const char *old_name, const char *new_name, uint32_t kvno,
              const struct ck_store_key_row *keys, size_t n_keys,
              const struct ck_store_key_row *hist, size_t n_hist, int64_t now);
void pg_audit_attach(void *be, struct ck_store_audit *audit);
int pg_audit_list(void *be, const ck_audit_filter *f, ck_store_audit_cb cb, void *arg);
int pg_audit_get_retention(void *be, ck_audit_retention *r);
int pg_audit_set_retention(void *be, const ck_audit_retention *r);

/* pg_dump.c: the snapshot of `db dump` and the one transaction of `db load`. */
int pg_snapshot(void *be, int (*fn)(void *arg), void *arg);
int pg_load_dump(void *be, const ck_realm_info *realm, const ck_audit_retention *retention,
                 int (*feed)(void *arg, const struct ck_store_load_sink *sink, void *sink_be),
                 void *arg);
/* pg_rotation.c: service-key rotation (k9rot). pg_init_schema runs pg_schema_rotation after
 * pg_schema. */
extern const char *const pg_schema_rotation[];
int pg_rot_policy_put(void *be, const ck_rotation_policy *pol, int64_t now);
int pg_rot_policy_get(void *be, const char *principal, ck_rotation_policy *out);
int pg_rot_policy_del(void *be, const char *principal);
int pg_rot_pause(void *be, const char *principal, bool paused, int64_t now);
int pg_rot_policy_list(void *be, ck_store_rotation_cb cb, void *arg);
int pg_key_stage(void *be, const char *name, uint32_t cur_kvno, uint32_t new_kvno,
                 const struct ck_store_key_row *keys, size_t n_keys, int64_t now,
                 uint32_t *staged);
int pg_key_confirm(void *be, const char *name, const char *host, uint32_t kvno, int64_t now);
int pg_key_activate(void *be, const char *name, uint32_t kvno, int64_t now);
int pg_key_purge(void *be, const char *name, uint32_t cur_kvno, const uint32_t *kvnos, size_t n);
int pg_rot_status(void *be, const char *name, ck_rotation_status *out);
/* pg_mkey.c: master-key rotation (ck_store_ops.mkey_*) and its schema step, which
 * pg_init_schema runs after pg_schema. */
extern const char *const pg_schema_mkey[];
int pg_mkey_list(void *be, struct ck_store_mkey_row **rows, size_t *n);
int pg_mkey_add(void *be, const struct ck_store_mkey_row *row, int64_t now);
int pg_mkey_activate(void *be, uint32_t kvno, int64_t now);
int pg_mkey_count(void *be, uint32_t mkvno, uint32_t only, uint64_t *keys, uint64_t *hist);
int pg_mkey_reencrypt(void *be, uint32_t mkvno, size_t limit,
                      int (*rewrap)(void *arg, const char *name,
                                    const struct ck_store_key_row *in,
                                    struct ck_store_key_row *out),
                      void *arg, size_t *done, int64_t now);
int pg_mkey_retire(void *be, uint32_t kvno, int64_t now);

/* pg_alarm.c (k9alarmw): the alarm table; pg_init_schema runs pg_schema_alarm after pg_schema. */
extern const char *const pg_schema_alarm[];
int pg_alarm_record(void *be, const ck_alarm_row *row, int64_t keep);
int pg_alarm_list(void *be, const ck_alarm_filter *f, ck_store_alarm_cb cb, void *arg);
int pg_alarm_clear(void *be, const ck_alarm_filter *f, const char *by, int64_t now_ms,
                   uint64_t *n);
/* pg_prov.c (issue 10): the customer database; pg_init_schema runs pg_schema_prov last. */
extern const char *const pg_schema_prov[];
int pg_prov_begin(void *be);
int pg_prov_end(void *be, int ret);
int pg_prov_bump(void *be, enum ck_store_change_kind kind, const char *key, uint64_t *gen);
int pg_prov_audit(void *be, const char *object);
int pg_prov_exec(void *be, const char *what, const char *sql, const struct ck_prov_arg *a,
                 size_t n, uint64_t *affected);
int pg_prov_query(void *be, const char *what, const char *sql, const struct ck_prov_arg *a,
                  size_t n, int (*cb)(const struct ck_prov_row *r, void *arg), void *arg);
/* After a load: the identity columns of the provisioning tables past their largest id. */
int pg_prov_after_load(struct pg_be *be);
int pg_prov_principal_ensure(void *be, const struct ck_store_princ_row *row, int64_t now,
                             bool *created);
#endif
