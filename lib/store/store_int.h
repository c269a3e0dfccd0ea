/* Internal interface between the generic store layer (store.c: validation, master-key
 * encryption, stash; store_cache.c; backend.c: locations and the registry) and database
 * backends (sqlite.c). Backends see only encrypted key
 * blobs and never the master key. Only the files in lib/store include this header. */
#ifndef CK_STORE_INT_H
#define CK_STORE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cablekey/rotation.h"
#include "cablekey/store.h"

/* One stored key as the backend sees it. */
struct ck_store_key_row {
    uint32_t kvno;
    int32_t enctype;
    int32_t salt_type;
    uint8_t *salt;
    size_t salt_len;
    uint32_t mkvno;       /* master key version that encrypted key_enc */
    uint8_t *key_enc;
    size_t key_enc_len;
};

struct ck_store_princ_row {
    char *name;
    uint32_t attributes;
    int64_t max_life, max_renew, expires, pw_expires;
    uint32_t kvno;
    int64_t created, modified;
    size_t n_keys;
    struct ck_store_key_row *keys; /* newest kvno first, then insertion order */
    char *policy;                  /* written by CK_PUT_CREATE only */
    int64_t last_pwd_change;       /* written by CK_PUT_CREATE only */
    ck_db_lockout lockout;         /* read only */
};

/* What a backend stores about the master key: never the key, only its kvno, enctype and a check
 * value (a constant encrypted under it). */
struct ck_store_mkey_row {
    uint32_t kvno;
    int32_t enctype;
    uint8_t *check;
    size_t check_len;
    int64_t created;      /* mkey_list only */
};

enum ck_store_put_mode {
    CK_PUT_CREATE,        /* fail with CK_ERR_EXISTS if present */
    CK_PUT_REPLACE,       /* create or replace everything, keys included */
    CK_PUT_UPDATE_FIELDS, /* existing principal: non-key fields only (CK_ERR_NOTFOUND if absent) */
};

/* What a change-log entry names. */
enum ck_store_change_kind {
    CK_CHANGE_ALL = 0,       /* anything may have changed (key is NULL) */
    CK_CHANGE_PRINCIPAL = 1, /* key: canonical principal name */
    CK_CHANGE_DEVICE = 2,    /* key: canonical MAC */
    CK_CHANGE_POLICY = 3,    /* key: policy name. Caches treat it as CK_CHANGE_ALL (cached
                              * principals carry their policy's lockout parameters) */
};

/* The audit log (audit.c, sqlite_audit.c). The generic layer names each administrative change
 * before it calls the backend op (store_audit_begin); the backend writes the row from
 * sq_bump_generation, inside the change's own transaction, so that a change and its audit row
 * commit or roll back together. A write no caller named is still recorded, under a generic
 * action ("principal.change"); a write that is not administrative says so (store_audit_skip). */
#define CK_AUDIT_ACTOR_MAX 256
#define CK_AUDIT_ACTION_MAX 64
#define CK_AUDIT_OBJECT_MAX 512
#define CK_AUDIT_DETAIL_MAX 512

struct ck_store_audit {
    char actor[CK_AUDIT_ACTOR_MAX];   /* ck_store_set_actor; default "uid N" */
    bool pending;                     /* action/object/detail name the next write transaction */
    bool skip;                        /* ... which is not administrative: no row */
    char action[CK_AUDIT_ACTION_MAX];
    char object[CK_AUDIT_OBJECT_MAX];
    char detail[CK_AUDIT_DETAIL_MAX];
};

/* Names the administrative change the next backend write transaction makes: action is
 * "object.verb" ("principal.rename"), object the canonical name or MAC it changes (NULL: the
 * realm), detail a short printf-style description that NEVER holds a secret (no password, no
 * key, no hash of either): "kvno 3 -> 4", "attributes +REQUIRES_PREAUTH". The backend forgets
 * it when that transaction ends, committed or not. */
void store_audit_begin(ck_store *store, const char *action, const char *object,
                       const char *detail_fmt, ...) __attribute__((format(printf, 4, 5)));
/* The next write transaction is not administrative (the KDC's lockout counters): no row. */
void store_audit_skip(ck_store *store);
/* Forgets a pending action the op did not consume (it failed before its transaction). */
void store_audit_end(ck_store *store);

/* Detail texts (audit.c): what changed, never a secret. */
void store_audit_describe_attributes(char *buf, size_t size, uint32_t old_attrs,
                                     uint32_t new_attrs);
struct ck_store_princ_row;
void store_audit_describe_fields(char *buf, size_t size, const struct ck_store_princ_row *old,
                                 const ck_db_principal *p);
void store_audit_describe_keys(char *buf, size_t size, const ck_db_key *keys, size_t n);

/* Change callback. */
typedef void (*ck_store_change_cb)(enum ck_store_change_kind kind, const char *key, void *arg);

/* Provisioning statements' parameters and result rows (store_prov.c; the backends convert). */
enum ck_prov_arg_type { CK_PA_INT, CK_PA_TEXT, CK_PA_BLOB, CK_PA_NULL };
struct ck_prov_arg {
    enum ck_prov_arg_type type;
    int64_t i;
    const char *s;  /* CK_PA_TEXT: NUL-terminated; NULL binds SQL NULL */
    const void *p;  /* CK_PA_BLOB (NULL binds SQL NULL) */
    size_t len;
};
/* One result row: integers (0 for NULL), NULL test, text and blobs as malloc'd copies (text
 * NULL for SQL NULL or no memory; blob: *p NULL, *len 0 for SQL NULL). */
struct ck_prov_row {
    const void *impl;
    int row;
    int64_t (*i64)(const struct ck_prov_row *r, int col);
    bool (*null)(const struct ck_prov_row *r, int col);
    char *(*text)(const struct ck_prov_row *r, int col);
    int (*blob)(const struct ck_prov_row *r, int col, uint8_t **p, size_t *len);
};

/* One device as the backend stores it (store.c validates before and after). */
struct ck_store_device_row {
    char *mac;
    char *principal;
    int state;                 /* enum ck_device_state, unchecked */
    bool has_pin;
    uint8_t spki_sha256[CK_DEVICE_SPKI_HASH_LEN];
    int64_t created, modified, revoked;
    uint64_t generation;
    char *comment;
    /* issue 10 (prov.h): the current operator certificate's SHA-256, written only by the
     * provisioning actions (store_prov.c); a load keeps it. */
    bool has_cert;
    uint8_t cert_sha256[32];
};

/* Device updates a backend applies in one transaction (with the generation bump). */
enum ck_store_device_update {
    CK_DEV_SET_STATE, /* state = arg state; revoked = now if REVOKED, 0 if ACTIVE */
    CK_DEV_SET_PIN,   /* pin = hash, or cleared if hash is NULL */
};

/* Where a load writes its records, inside load_dump's transaction (be: load_dump's sink_be).
 * principal: the row with its key rows as stored (created, modified, policy, last_pwd_change
 * kept; lockout ignored); lockout and history name a principal written before. */
struct ck_store_load_sink {
    int (*policy)(void *be, const ck_policy *pol);
    int (*principal)(void *be, const struct ck_store_princ_row *row);
    int (*lockout)(void *be, const char *name, const ck_db_lockout *l);
    int (*history)(void *be, const char *name, const struct ck_store_key_row *row);
    int (*device)(void *be, const struct ck_store_device_row *row); /* generation ignored */
    /* issue 10: one row of a provisioning table (sql: ck_prov_dump_tables[].insert_sql), and
     * after the last one (optional: NULL) whatever the backend must do once they are in. */
    int (*prov)(void *be, const char *sql, const struct ck_prov_arg *a, size_t n);
    int (*prov_done)(void *be);
};

struct ck_store_ops {
    const char *name;
    /* location: what the registry made of the URI (backend.c; the file for sqlite, the whole
     * URI for postgresql). create: make a new, empty database for init_schema, refusing
     * (CK_ERR_EXISTS) one that exists; the backend owns its naming and permission rules. */
    int (*open)(const char *location, unsigned flags, bool create, void **be);
    void (*close)(void *be);
    /* Removes what a create made, after a failed init (ck_store_init_realm). */
    void (*discard)(const char *location);
    /* The stash file used when none is named (malloc'd into *out); NULL: none, the operator
     * names one. */
    int (*default_stash)(const char *location, char **out);
    int (*init_schema)(void *be, const ck_realm_info *realm, const struct ck_store_mkey_row *mkey,
                       int64_t now);
    /* Fills realm (name, enctypes, lifetimes, master_kvno) and the active master key row. */
    int (*load_realm)(void *be, ck_realm_info *realm, struct ck_store_mkey_row *mkey);
    int (*get)(void *be, const char *name, struct ck_store_princ_row *row);
    int (*put)(void *be, const struct ck_store_princ_row *row, enum ck_store_put_mode mode,
               int64_t now);
    int (*del)(void *be, const char *name);
    int (*list)(void *be, ck_store_list_cb cb, void *arg);
    /* Adds keys as new_kvno if the current kvno is still old_kvno (else CK_ERR_POLICY), sets the
     * current kvno and purges all but the newest `keep` kvnos, in one transaction. */
    int (*rotate)(void *be, const char *name, uint32_t old_kvno, uint32_t new_kvno,
                  const struct ck_store_key_row *keys, size_t n_keys, unsigned keep, int64_t now);
    /* Writes the realm's settings (enctypes, lifetimes, default attributes; not the name or
     * master kvno) with a generation bump, in one transaction. */
    int (*realm_modify)(void *be, const ck_realm_info *realm);
    /* Renames a principal whose current kvno is still kvno (else CK_ERR_POLICY), replaces its
     * key rows by keys (the same keys, encrypted for the new name), the blobs of its password
     * history by hist (pw_history's rows, newest first, encrypted for the new name; older rows
     * are dropped) and repoints its devices, in one transaction (CK_ERR_NOTFOUND,
     * CK_ERR_EXISTS). */
    int (*rename)(void *be, const char *old_name, const char *new_name, uint32_t kvno,
                  const struct ck_store_key_row *keys, size_t n_keys,
                  const struct ck_store_key_row *hist, size_t n_hist, int64_t now);
    int (*generation)(void *be, uint64_t *gen);
    /* Optional (NULL: nothing to do, PostgreSQL). wal_manual: this connection's commits no
     * longer copy the write-ahead log into the database; checkpoint: copy it now (store.h). */
    int (*wal_manual)(void *be);
    int (*checkpoint)(void *be, bool restart, bool *complete, int *frames);
    /* Reports changes with generation in (since, current] and sets *current. Reads the counter
     * first and returns at once if it did not move. */
    int (*changes_since)(void *be, uint64_t since, uint64_t *current, ck_store_change_cb cb,
                         void *arg);

    /* Devices. mac and principal arrive canonical and validated. */
    int (*device_get)(void *be, const char *mac, struct ck_store_device_row *row);
    /* Inserts (CK_ERR_EXISTS if the MAC is present, CK_ERR_NOTFOUND if the principal is not). */
    int (*device_add)(void *be, const struct ck_store_device_row *row, int64_t now);
    /* *changed false: the record already was so and nothing was written. */
    int (*device_update)(void *be, const char *mac, enum ck_store_device_update what, int state,
                         const uint8_t *hash, int64_t now, bool *changed);
    int (*device_del)(void *be, const char *mac);
    /* Rows with mac > after (after NULL: all), principal filter if not NULL, MAC order, at most
     * limit; the row is valid during the callback only. */
    int (*device_list)(void *be, const char *principal, const char *after, size_t limit,
                       int (*cb)(const struct ck_store_device_row *row, void *arg), void *arg,
                       size_t *n_out);
    /* The login-time trust on first use (see ck_store_device_pin_check). */
    int (*device_pin_check)(void *be, const char *mac, const uint8_t *hash,
                            enum ck_device_pin_result *result, uint64_t *generation, int64_t now);

    /* Policies (sqlite_policy.c); pol arrives checked. create: CK_ERR_EXISTS if present, else
     * CK_ERR_NOTFOUND if absent. */
    int (*policy_put)(void *be, const ck_policy *pol, bool create, int64_t now);
    int (*policy_get)(void *be, const char *name, ck_policy *out);
    int (*policy_del)(void *be, const char *name);
    int (*policy_list)(void *be, ck_store_policy_cb cb, void *arg);
    int (*set_policy)(void *be, const char *name, const char *policy, int64_t now);
    /* The remembered keys of former passwords, newest first, at most max. */
    int (*pw_history)(void *be, const char *name, size_t max, struct ck_store_key_row **rows,
                      size_t *n);
    /* One transaction: if the kvno is still old_kvno, the old kvno's first key joins the history
     * (then trimmed to hist_keep rows), keys become new_kvno (keep kvnos kept), and the
     * principal gets last_pwd_change = now, pw_expires, attributes &= ~clear_attrs. */
    int (*change_password)(void *be, const char *name, uint32_t old_kvno, uint32_t new_kvno,
                           const struct ck_store_key_row *keys, size_t n_keys, unsigned keep,
                           unsigned hist_keep, int64_t pw_expires, uint32_t clear_attrs,
                           int64_t now);
    /* Lockout state: batched KDC events (no generation bump) and the administrative unlock. */
    int (*record_auth)(void *be, const ck_lockout_update *u, size_t n);
    int (*unlock)(void *be, const char *name, int64_t now);
    /* Audit log. audit_attach: the store's audit state, which every write transaction reads
     * (and whose pending action it clears when it ends). */
    void (*audit_attach)(void *be, struct ck_store_audit *audit);
    int (*audit_list)(void *be, const ck_audit_filter *filter, ck_store_audit_cb cb, void *arg);
    int (*audit_get_retention)(void *be, ck_audit_retention *r);
    int (*audit_set_retention)(void *be, const ck_audit_retention *r);

    /* Maintenance (sqlite_maint.c); these work on locations, not on an open backend. NULL: the
     * backend has no such operation (CK_ERR_UNSUPPORTED names it). */
    /* A consistent copy of db_path into out_path, mode 0600, atomic (see ck_store_backup). */
    int (*backup)(const char *db_path, const char *out_path, bool overwrite,
                  ck_store_backup_info *info);
    /* *pid: a process other than this one that has db_path open (0: none seen). Must be called
     * before this process opens db_path. */
    int (*holder)(const char *db_path, long *pid);
    /* The database-level checks of ck_store_check; every problem goes to cb. */
    int (*check_db)(const char *db_path, ck_store_check_cb cb, void *arg,
                    ck_store_check_result *res);
    /* Creates the empty private place (*out, malloc'd; a location of this backend, removed with
     * discard) that restore_prepare fills: for SQLite a 0600 file beside the database. */
    int (*restore_tmp)(const char *db_path, char **out);
    /* Makes a private, validated copy of a backup at tmp_path (created 0600) and upgrades it
     * to the current schema; refuses a damaged file or a newer schema. */
    int (*restore_prepare)(const char *in_path, const char *tmp_path, int *schema_version);
    /* Replaces the content of db_path by that of the prepared copy in one write transaction
     * (or moves the copy into place when db_path does not exist); moves the generation past
     * both the old and the restored value with a full-flush change-log entry and the audit
     * row `audit`. */
    int (*restore_commit)(const char *db_path, const char *tmp_path, struct ck_store_audit *audit,
                          ck_store_restore_info *info);

    /* Push notification of changes (optional: NULL for a backend that has none, such as
     * SQLite, whose caches poll `generation`). change_fd: a descriptor that becomes readable
     * (poll POLLIN) when another writer may have committed a change, -1 if none.
     * wait_change: waits at most timeout_ms (0: just looks) for such a notice and drains what
     * arrived; *changed says whether any did, after which the caller runs changes_since. A
     * notice may be spurious (the caller's own writes), never missing for a committed change
     * while the connection stays up; an error means the connection is lost. */
    int (*change_fd)(void *be);
    int (*wait_change)(void *be, int timeout_ms, bool *changed);

    /* Dump and load (dump.c; the SQLite side in sqlite_dump.c). snapshot: runs fn inside one
     * read transaction, so every read op it makes sees one consistent state. load_dump: one
     * write transaction on a database that init_schema just created: the realm settings and
     * audit retention, then whatever feed passes to the sink (records exactly as given:
     * timestamps, encrypted keys), a generation bump with a full-flush change-log entry and the
     * pending audit row; feed's error rolls everything back. */
    int (*snapshot)(void *be, int (*fn)(void *arg), void *arg);
    int (*load_dump)(void *be, const ck_realm_info *realm, const ck_audit_retention *retention,
                     int (*feed)(void *arg, const struct ck_store_load_sink *sink, void *sink_be),
                     void *arg);

    /* Service-key rotation (k9rot: store_rotation.c, sqlite_rotation.c, pg_rotation.c; see
     * cablekey/rotation.h). Rotation state lives in side tables keyed by the principal's row,
     * so a rename keeps it and a delete drops it. Every write below is one transaction; all
     * but key_confirm bump the change counter (CK_CHANGE_PRINCIPAL) with their audit row.
     * rot_policy_put: pol arrives checked; CK_ERR_NOTFOUND for an unknown principal; records
     * the current kvno's activation time as now if rotation never saw it (the reference of
     * the first period). */
    int (*rot_policy_put)(void *be, const ck_rotation_policy *pol, int64_t now);
    int (*rot_policy_get)(void *be, const char *principal, ck_rotation_policy *out);
    int (*rot_policy_del)(void *be, const char *principal);
    int (*rot_pause)(void *be, const char *principal, bool paused, int64_t now);
    int (*rot_policy_list)(void *be, ck_store_rotation_cb cb, void *arg);
    /* Adds keys (kvno new_kvno = cur_kvno + 1, encrypted for it) as the staged kvno if the
     * principal's kvno is still cur_kvno (else CK_ERR_POLICY) and no kvno above it exists
     * (else CK_ERR_EXISTS, *staged = that kvno). */
    int (*key_stage)(void *be, const char *name, uint32_t cur_kvno, uint32_t new_kvno,
                     const struct ck_store_key_row *keys, size_t n_keys, int64_t now,
                     uint32_t *staged);
    /* CK_ERR_NOTFOUND if the principal has no key of kvno; keeps the newest kvno per host. One
     * audit row, no counter bump. */
    int (*key_confirm)(void *be, const char *name, const char *host, uint32_t kvno, int64_t now);
    /* CK_ERR_POLICY unless kvno is the highest stored kvno and above the current one. */
    int (*key_activate)(void *be, const char *name, uint32_t kvno, int64_t now);
    /* Removes the key rows of kvnos (all below cur_kvno; CK_ERR_POLICY if the current kvno
     * moved or a kvno is not below it) and their rotation rows. */
    int (*key_purge)(void *be, const char *name, uint32_t cur_kvno, const uint32_t *kvnos,
                     size_t n);
    /* Fills principal, has_policy/policy, current/staged kvno, kvnos (newest first, those
     * with keys) and confirmations; next_due is the generic layer's. */
    int (*rot_status)(void *be, const char *name, ck_rotation_status *out);
    /* ---- Master-key rotation (k9mkey: mkey.c, sqlite_mkey.c, pg_mkey.c) ----
     * Every write is one transaction with a generation bump and the pending audit row. A key
     * row (principal key or password history) can only name a master kvno that has a
     * master_key row (the schema enforces it), so mkey_retire cannot strand a key. */
    /* Every master_key row, kvno ascending (*rows malloc'd; ck_store_mkey_rows_free). */
    int (*mkey_list)(void *be, struct ck_store_mkey_row **rows, size_t *n);
    /* Inserts a master key row that is not used yet (CK_ERR_EXISTS if the kvno has one). */
    int (*mkey_add)(void *be, const struct ck_store_mkey_row *row, int64_t now);
    /* realm.master_kvno = kvno (CK_ERR_NOTFOUND without its master_key row). */
    int (*mkey_activate)(void *be, uint32_t kvno, int64_t now);
    /* Stored keys (principal keys and password history) under a master kvno other than mkvno,
     * or under `only` if it is not 0. */
    int (*mkey_count)(void *be, uint32_t mkvno, uint32_t only, uint64_t *keys, uint64_t *hist);
    /* One transaction: at most limit stored keys not under mkvno, each handed to rewrap, which
     * fills out (under mkvno; the backend frees its key_enc and salt); the rows are rewritten,
     * each principal touched gets a change-log entry. *done: rows rewritten (0: none left). */
    int (*mkey_reencrypt)(void *be, uint32_t mkvno, size_t limit,
                          int (*rewrap)(void *arg, const char *name,
                                        const struct ck_store_key_row *in,
                                        struct ck_store_key_row *out),
                          void *arg, size_t *done, int64_t now);
    /* Deletes the master_key row of kvno: CK_ERR_POLICY while it is the realm's master kvno or
     * any stored key is under it; CK_ERR_NOTFOUND if there is none. */
    int (*mkey_retire)(void *be, uint32_t kvno, int64_t now);
    /* Alarm table (k9alarmw: store_alarm.c, sqlite_alarm.c, pg_alarm.c; see store.h). row and
     * filter arrive checked. alarm_record: not administrative (no bump, no audit row), one
     * transaction that also trims cleared rows beyond `keep`. alarm_clear: administrative (one
     * transaction, bump with a full flush, the pending audit row), by = who; *n rows cleared. */
    int (*alarm_record)(void *be, const ck_alarm_row *row, int64_t keep);
    int (*alarm_list)(void *be, const ck_alarm_filter *f, ck_store_alarm_cb cb, void *arg);
    int (*alarm_clear)(void *be, const ck_alarm_filter *f, const char *by, int64_t now_ms,
                       uint64_t *n);

    /* ---- Provisioning (issue 10, cablekey/prov.h: store_prov.c, sqlite_prov.c, pg_prov.c) ----
     * The generic layer holds every rule and every statement (a portable SQL subset with
     * numbered parameters $1..$n, see store_prov.c); a backend only runs them. prov_begin: a
     * write transaction serialized with every other writer (BEGIN IMMEDIATE / the generation
     * row's lock), so read-then-write sequences (the lowest free number) cannot race.
     * prov_end: commit if ret == 0, else roll back; returns ret or the commit's error.
     * prov_bump: inside it, the device change (counter, change log naming mac, the pending
     * audit row); *gen the new counter. prov_audit: the pending audit row without a bump (a
     * change the KDC does not read). prov_exec / prov_query: one statement; *affected (may be
     * NULL) the rows changed; cb gets each result row (a non-zero return stops and is
     * returned). prov_principal_ensure: inside the transaction, inserts row (a new principal,
     * keys encrypted) unless the name exists (*created false). */
    int (*prov_begin)(void *be);
    int (*prov_end)(void *be, int ret);
    int (*prov_bump)(void *be, enum ck_store_change_kind kind, const char *key, uint64_t *gen);
    int (*prov_audit)(void *be, const char *object);
    int (*prov_exec)(void *be, const char *what, const char *sql, const struct ck_prov_arg *a,
                     size_t n, uint64_t *affected);
    int (*prov_query)(void *be, const char *what, const char *sql, const struct ck_prov_arg *a,
                      size_t n, int (*cb)(const struct ck_prov_row *r, void *arg), void *arg);
    int (*prov_principal_ensure)(void *be, const struct ck_store_princ_row *row, int64_t now,
                                 bool *created);
};

/* open() flag of ck_store_load (dump.c), never public: the new database is a load's target.
 * A backend with transactional DDL (PostgreSQL) may then keep init_schema's transaction open
 * and commit it with load_dump's records, so that a failed or killed load leaves no tables. */
#define CK_STORE_OPEN_LOAD_TARGET 0x100

/* The backends. The registry (backend.c) is the only place that names them: add a backend
 * there, one line. */
extern const struct ck_store_ops ck_store_sqlite_ops;
#ifdef CK_STORE_WITH_POSTGRESQL
/* PostgreSQL (lib/store/pg*.c). open's path: a libpq URI (postgresql://...) or conninfo string;
 * "" uses libpq's environment (PGHOST, PGSERVICE...). A password in it is refused: passwords
 * come from PGPASSFILE or a service file. */
extern const struct ck_store_ops ck_store_postgresql_ops;
#endif
/* The ops registered under name ("sqlite"); NULL if unknown or not built. */
const struct ck_store_ops *ck_store_backend_find(const char *name);

void ck_store_princ_row_clear(struct ck_store_princ_row *row);
void ck_store_mkey_row_clear(struct ck_store_mkey_row *row);
void ck_store_device_row_clear(struct ck_store_device_row *row);

/* ---- KDC fleet (k9fleet): database contact, shared by a store's two caches (cache.c) ----
 * Every call a cache makes to its source either reaches the database (contact) or fails with a
 * database error (CK_ERR_DB, CK_ERR_IO). After a failure the source is called again only on a
 * backoff schedule (reconnection attempts, doubling from backoff_min_ms to backoff_max_ms), and
 * cached records keep being served for at most max_stale_ms after the last contact: the time
 * during which a revocation made elsewhere could have been missed. */
struct ck_cache_contact {
    int64_t (*now_ms)(void *ctx);   /* monotonic ms; NULL: ck_monotonic_ms (tests inject) */
    void *clock_ctx;
    int64_t max_stale_ms;           /* 0: refuse as soon as the database is unreachable */
    int64_t backoff_min_ms, backoff_max_ms;
    bool down;                      /* the last call to the source failed */
    int64_t last_ok_ms;             /* the last successful call */
    int64_t down_since_ms;          /* the first failure of the current outage */
    int64_t next_try_ms;            /* while down: no call to the source before this */
    int64_t backoff_ms;             /* the current delay between attempts */
    uint64_t failures, recoveries;  /* failed calls; outages ended */
    char error[160];                /* the last failure's message (no secret: libpq's reason) */
};

/* The record caches (cache.c): one for principals, one for devices, same structure. A cache
 * knows only its source; store_cache.c makes a ck_store the source of its two caches. */
struct ck_cache_source {
    void *ctx;
    /* "load": reads key's record into *rec (0), or CK_ERR_NOTFOUND (cached as absent), or
     * another error (nothing cached). */
    int (*load)(void *ctx, const char *key, void **rec);
    void (*free_rec)(void *rec);
    /* The change feed: the current counter, and the changes in (since, *current] reported to
     * changed (ck_store_cache_changed with the cache as arg). */
    int (*generation)(void *ctx, uint64_t *gen);
    int (*changes)(void *ctx, uint64_t since, uint64_t *current, ck_store_change_cb changed,
                   void *changed_arg);
    /* k9fleet: push notices (NULL: the source has none; the cache polls `generation` every
     * check_ms). wait_change looks for notices without waiting (timeout 0) and drains them; an
     * error means the connection is lost. contact: shared with the store's other cache (NULL:
     * the cache keeps its own). */
    int (*wait_change)(void *ctx, int timeout_ms, bool *changed);
    struct ck_cache_contact *contact;
};

struct ck_cache_entry;
struct ck_store_cache {
    enum ck_store_change_kind kind;  /* which change-log entries concern this cache */
    struct ck_cache_source src;
    void (*free_rec)(void *rec);
    struct ck_cache_entry **buckets;
    size_t n_buckets;             /* power of two */
    size_t count, max_entries;
    struct ck_cache_entry *oldest, *newest; /* FIFO eviction order */
    struct ck_cache_entry *retired;         /* freed at the next ck_store_cache_begin */
    uint64_t generation;
    bool generation_known;
    int64_t last_check_ms;
    int64_t last_push_ms;     /* last drain of pushed notices (at most every CK_STORE_CACHE_PUSH_MS) */
    int64_t check_ms;
    uint64_t sip_k0, sip_k1;      /* random hash key: principal names are attacker-chosen */
    ck_store_cache_stats stats;
    struct ck_cache_contact *contact; /* k9fleet: src.contact or own_contact */
    struct ck_cache_contact own_contact;
};

/* The master keys of a stash (store.c, k9mkey). The stash may hold several (rotation): keys
 * are encrypted under `active` and decrypted under the kvno their row names. A key under a kvno
 * the ring lacks makes the store re-read its stash, at most once per reread_ms. */
#define CK_STASH_MAX_KEYS 8
#define CK_MKEY_REREAD_MS 1000
struct ck_store_mkey {
    uint32_t kvno;
    ck_key key;
};
struct ck_store_keyring {
    size_t n;
    struct ck_store_mkey keys[CK_STASH_MAX_KEYS]; /* kvno ascending */
    uint32_t active;                              /* realm.master_kvno as last read */
    char *stash_path;
    int64_t last_reread_ms;                       /* ck_monotonic_ms of the last re-read */
    int64_t reread_ms;                            /* minimum interval (tests set 0) */
    uint64_t rereads;                             /* re-reads done */
    char reread_error[200];                       /* why the last re-read failed ("" ok) */
    /* The stash file as of the last re-read (device, inode, size, mtime): a file replaced
     * since then is read again at once, whatever reread_ms says. */
    uint64_t stash_dev, stash_ino;
    int64_t stash_size, stash_mtime_ns;
};

struct ck_store {
    const struct ck_store_ops *ops;
    void *be;
    bool readonly;
    /* Without a ring (dump.c's verification store): the one master key. */
    ck_key mkey;
    uint32_t mkvno;
    struct ck_store_keyring *ring;   /* every master key of the stash (ck_store_open) */
    ck_realm_info realm;
    struct ck_store_cache cache;     /* principals, checked at most every check_ms */
    struct ck_store_cache dev_cache; /* devices, checked on every lookup */
    struct ck_store_audit audit;     /* the actor and the pending audit action */
    struct ck_cache_contact contact; /* k9fleet: database contact of both caches */
    struct ck_store_prov *prov;      /* issue 10: the outbox targets (store_prov.c) */
};

/* Frees store->prov (ck_store_close). */
void ck_store_prov_free_int(ck_store *store);

/* The provisioning tables in a dump (store_prov.c; dump.c writes and reads them, format 2):
 * one record type per table, one field per column (the column's name as key), paged by the
 * first column (the primary key): page_sql takes $1 = the last key seen (integer keys: 0 first,
 * text keys: "" first) and $2 = a page size, and selects the columns in order. insert_sql takes
 * the columns in order. A text column that is not nullable reads "" for a dump's "-". */
struct ck_prov_dump_col {
    const char *name;
    enum ck_prov_arg_type type;
    bool nullable;
};
struct ck_prov_dump_table {
    const char *record;          /* "prov-customer" */
    const char *page_sql;
    const char *insert_sql;
    const struct ck_prov_dump_col *cols;
    size_t n_cols;
};
#define CK_PROV_DUMP_KEY_MAX 160 /* a text primary key (the idempotency key is the longest) */
extern const struct ck_prov_dump_table ck_prov_dump_tables[];
extern const size_t ck_prov_dump_n_tables;

int ck_store_cache_init(struct ck_store_cache *c, enum ck_store_change_kind kind,
                        const struct ck_cache_source *src, size_t max_entries);
void ck_store_cache_destroy(struct ck_store_cache *c);
/* Drops one key (after a write through this store). */
void ck_store_cache_invalidate(struct ck_store_cache *c, const char *key);
/* The "changed" callback (arg: the cache): drops key, or everything for CK_CHANGE_ALL. */
void ck_store_cache_changed(enum ck_store_change_kind kind, const char *key, void *arg);
/* Drops every entry (they stay valid until the next ck_store_cache_release). */
void ck_store_cache_flush_all(struct ck_store_cache *c);
/* Frees the entries retired since the last call (records handed out before become invalid). */
void ck_store_cache_release(struct ck_store_cache *c);
/* Reads the change feed if check_ms passed since the last look (ck_store_cache_check), or now
 * ("check now"). On a feed error the cache empties and reads through until it recovers. */
void ck_store_cache_check(struct ck_store_cache *c);
void ck_store_cache_check_now(struct ck_store_cache *c);
/* The record under key (len bytes, NUL-terminated), loaded through the source on a miss;
 * CK_ERR_NOTFOUND (no context set) for an absent record. Valid until ck_store_cache_release.
 * CK_ERR_DB while the database is unreachable and the record is not cached, or cached longer
 * ago than the contact's max_stale_ms allows. */
int ck_store_cache_lookup(struct ck_store_cache *c, const char *key, size_t len, void **out);
/* k9fleet. Push: drains the source's notices without waiting and checks now if any arrived,
 * else checks when check_ms passed (the heartbeat that also proves contact). Returns the ms
 * until the next heartbeat or reconnection attempt is due. */
int64_t ck_store_cache_poll(struct ck_store_cache *c);
/* The contact's clock, and whether cached records may be served now. */
int64_t ck_cache_contact_now(const struct ck_cache_contact *ct);
bool ck_cache_contact_serving(const struct ck_cache_contact *ct, int64_t now);
void ck_cache_contact_init(struct ck_cache_contact *ct);

/* Sets up store->cache and store->dev_cache on the store (store_cache.c). */
int ck_store_caches_init(ck_store *store);

/* store.c's helpers for store_policy.c: name check, key encryption under the master key. */
int ck_store_check_name_int(const ck_store *store, const char *name);
int ck_store_encrypt_keys_int(const ck_store *store, const char *name, const ck_db_key *keys,
                              size_t n, uint32_t kvno_override, struct ck_store_key_row **out);
void ck_store_free_key_rows_int(struct ck_store_key_row *rows, size_t n);
int64_t ck_store_now_int(void);

/* Reads the stash at stash_path and checks it against a master key row of realm (store.c,
 * for dump.c's load before anything exists): CK_ERR_INTEGRITY if it is not that key. */
int ck_store_stash_check_int(const char *stash_path, const ck_realm_info *realm,
                             const struct ck_store_mkey_row *row, ck_key *mkey, uint32_t *mkvno);

/* ---- master-key rotation (k9mkey): the stash and the keyring (store.c) ---- */
/* Reads a stash file (format 1 or 2) into ring->keys (not stash_path or active). */
int ck_store_stash_read_int(const char *path, struct ck_store_keyring *ring);
/* The bytes of a stash file (format 1 or 2; path names it in errors) into ring->keys, which
 * must be empty; and ring's keys as format 2 (*out: ck_free_secret it). */
int ck_store_stash_parse_int(const uint8_t *buf, size_t len, const char *path,
                             struct ck_store_keyring *ring);
int ck_store_stash_encode_int(const struct ck_store_keyring *ring, uint8_t **out,
                              size_t *out_len);
/* Wipes the keys of a ring (n = 0); stash_path and the rest stay. */
void ck_store_ring_clear_int(struct ck_store_keyring *ring);
/* Replaces the stash file atomically (format 2, 0600) with the keys of ring. */
int ck_store_stash_write_int(const char *path, const struct ck_store_keyring *ring);
/* The key of kvno in ring, or NULL. */
const ck_key *ck_store_ring_find(const struct ck_store_keyring *ring, uint32_t kvno);
/* The check value of a master key (a constant encrypted under it) and its verification
 * (CK_ERR_INTEGRITY: not that realm's key of that kvno). */
int ck_store_mkey_make_check_int(const ck_key *mkey, const char *realm, uint8_t **out,
                                 size_t *out_len);
int ck_store_mkey_verify_int(const ck_key *mkey, uint32_t mkvno, const char *realm,
                             const struct ck_store_mkey_row *row, const char *stash_path);
/* Encrypts one key for principal name under the master key of kvno mkvno (held by the ring). */
int ck_store_encrypt_key_under_int(const ck_store *store, const char *name, const ck_db_key *k,
                                   uint32_t mkvno, struct ck_store_key_row *row);
/* Re-reads the stash now (whatever the rate limit) and the realm's master kvno. */
int ck_store_mkey_reload_int(const ck_store *store);
void ck_store_mkey_rows_free(struct ck_store_mkey_row *rows, size_t n);

/* Reads a record through the backend and decrypts its keys (store.c). */
int ck_store_load_principal(ck_store *store, const char *name, ck_db_principal **out);
/* Decrypts one stored key of principal name (store.c); CK_ERR_INTEGRITY if it does not decrypt
 * under the master key or does not belong to that principal, kvno and enctype. */
int ck_store_decrypt_key_row(const ck_store *store, const char *name,
                             const struct ck_store_key_row *row, ck_db_key *k);
/* Reads a device through the backend into a validated record (store.c). */
int ck_store_load_device(ck_store *store, const char *mac, ck_db_device **out);

#endif
