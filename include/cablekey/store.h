/* Principal database: one interface over pluggable backends (SQLite now; PostgreSQL later).
 *
 * Long-term keys are stored encrypted under the realm master key, which lives only in the stash
 * file (mode 0600, owned by the current user). Records returned by this API hold DECRYPTED keys;
 * ck_db_principal_free wipes them.
 *
 * Threads: a ck_store is one database connection and must be used by one thread at a time; the KDC
 * opens one per worker thread. Every write bumps a monotonic generation counter in the same
 * transaction; the per-store principal cache uses it to see changes made through other
 * connections or processes. */
#ifndef CABLEKEY_STORE_H
#define CABLEKEY_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cablekey/crypto.h"

/* ck_store_open flags. */
#define CK_STORE_CREATE 0x1   /* reserved for backends that create lazily; see ck_store_init_realm */
#define CK_STORE_READONLY 0x2 /* open the database read-only (all writes fail with CK_ERR_PERM) */

/* Principal attributes. The values are MIT's KRB5_KDB_* flag bits, so dumps map one to one. */
#define CK_ATTR_DISALLOW_POSTDATED 0x00000001u
#define CK_ATTR_DISALLOW_FORWARDABLE 0x00000002u
#define CK_ATTR_DISALLOW_TGT_BASED 0x00000004u
#define CK_ATTR_DISALLOW_RENEWABLE 0x00000008u
#define CK_ATTR_DISALLOW_PROXIABLE 0x00000010u
#define CK_ATTR_DISALLOW_DUP_SKEY 0x00000020u
#define CK_ATTR_DISALLOW_ALL_TIX 0x00000040u
#define CK_ATTR_REQUIRES_PREAUTH 0x00000080u
#define CK_ATTR_REQUIRES_HW_AUTH 0x00000100u
#define CK_ATTR_REQUIRES_PWCHANGE 0x00000200u
#define CK_ATTR_DISALLOW_SVR 0x00001000u
#define CK_ATTR_PWCHANGE_SERVICE 0x00002000u
#define CK_ATTR_OK_AS_DELEGATE 0x00100000u
#define CK_ATTR_OK_TO_AUTH_AS_DELEGATE 0x00200000u
#define CK_ATTR_NO_AUTH_DATA_REQUIRED 0x00400000u
#define CK_ATTR_LOCKDOWN_KEYS 0x00800000u

/* Salt types (MIT KRB5_KDB_SALTTYPE_*). NORMAL: the principal's default salt, stored explicitly. */
#define CK_SALTTYPE_NORMAL 0
#define CK_SALTTYPE_SPECIAL 4

#define CK_STORE_MAX_ENCTYPES 8
#define CK_STORE_KEEP_KVNOS 3     /* rotation keeps this many kvnos by default */
#define CK_STORE_MAX_KEYS 64      /* keys per principal record */
#define CK_STORE_MAX_SALT 1024
#define CK_STORE_CACHE_MAX_ENTRIES 100000
#define CK_STORE_CACHE_CHECK_MS 200
/* Pushed change notices (PostgreSQL) are drained at most this often per cache: under load a
 * drain per request (a poll system call) cost more than the cache saved; a change still reaches
 * a busy worker within a few milliseconds. */
#define CK_STORE_CACHE_PUSH_MS 2

/* Key usage numbers for master-key encryption (application range, RFC 4120 §7.5.1 leaves
 * 1024+ to applications). */
#define CK_USAGE_DB_KEY 1026
#define CK_USAGE_MASTER_KEY_CHECK 1027

typedef struct ck_db_key {
    uint32_t kvno;
    int32_t enctype;
    int32_t salt_type;
    uint8_t *salt;      /* salt_len bytes (may be NULL if 0) */
    size_t salt_len;
    ck_key key;         /* decrypted; key.enctype == enctype */
} ck_db_key;

/* A principal's failed-authentication state (MIT's fail_auth_count, last_failed, last_success)
 * and the lockout parameters of its policy, as read with the record. */
typedef struct ck_db_lockout {
    uint32_t fail_count;      /* failed pre-authentications counted (see ck_lockout_*) */
    int64_t last_failed;      /* epoch seconds; 0 = never */
    int64_t last_success;     /* epoch seconds; 0 = never (or not recorded) */
    uint64_t epoch;           /* bumped by every ck_store_unlock_principal: failures counted
                               * before an unlock are void (MIT's last admin unlock) */
    uint32_t max_failure;     /* from the policy (0: no policy, or lockout off) */
    int64_t failure_interval; /* seconds; 0: failures never expire */
    int64_t lockout_duration; /* seconds; 0: locked until an administrator unlocks */
} ck_db_lockout;

typedef struct ck_db_principal {
    char *name;         /* unparsed, canonical ("alice@TEST.REALM") */
    uint32_t attributes;/* CK_ATTR_* */
    int64_t max_life;   /* seconds; 0 = realm default */
    int64_t max_renew;  /* seconds; 0 = realm default */
    int64_t expires;    /* epoch seconds; 0 = never */
    int64_t pw_expires; /* epoch seconds; 0 = never */
    uint32_t kvno;      /* current key version */
    int64_t created;    /* set by the store */
    int64_t modified;   /* set by the store */
    size_t n_keys;
    ck_db_key *keys;    /* all stored keys, newest kvno first, then in realm enctype order */
    /* Since schema 3 (policies and lockout). */
    char *policy;       /* password policy name, NULL = none. ck_store_create_principal applies
                         * it; put/update leave the stored one alone: change it with
                         * ck_store_set_principal_policy */
    int64_t last_pwd_change; /* epoch seconds of the last password change (set by
                              * ck_store_change_password, or given to create); 0 = never */
    ck_db_lockout lockout;   /* read-only: stored lockout state and the policy's lockout
                              * parameters, as they were when the record was read */
} ck_db_principal;

typedef struct ck_realm_info {
    char name[256];
    size_t n_enctypes;
    int32_t enctypes[CK_STORE_MAX_ENCTYPES]; /* default enctypes, in preference order */
    int64_t max_life;
    int64_t max_renew;
    uint32_t master_kvno;
    uint32_t default_attributes; /* CK_ATTR_* that `principal add` starts from */
} ck_realm_info;

/* The realm settings an operator changes (ck_store_realm_modify); mask says which. */
#define CK_REALM_MOD_MAX_LIFE 0x1
#define CK_REALM_MOD_MAX_RENEW 0x2
#define CK_REALM_MOD_ENCTYPES 0x4
#define CK_REALM_MOD_DEFAULT_ATTRIBUTES 0x8
#define CK_REALM_DEFAULT_ATTRIBUTES CK_ATTR_REQUIRES_PREAUTH /* a new realm's default */
#define CK_REALM_LIFE_MAX INT64_C(0x7fffffff) /* seconds (about 68 years) */

typedef struct ck_realm_mod {
    unsigned mask;                           /* CK_REALM_MOD_* */
    int64_t max_life, max_renew;             /* seconds, 1..CK_REALM_LIFE_MAX */
    size_t n_enctypes;                       /* 1..CK_STORE_MAX_ENCTYPES, all supported */
    int32_t enctypes[CK_STORE_MAX_ENCTYPES];
    uint32_t default_attributes;
} ck_realm_mod;

typedef struct ck_store ck_store;

/* ---- where the store lives: `--db PATH|URI` ----
 *
 * Every function below that takes db_path takes a location:
 *   PATH, sqlite:PATH, sqlite:///ABSOLUTE/PATH   an SQLite file (a bare path is the default)
 *   postgresql://[USER@]HOST[:PORT]/DBNAME[?PARAMS] (or postgres://)   PostgreSQL via libpq
 * A scheme is letters, digits, '+', '-', '.' before the first ':' (so "/srv/a:b" is a path).
 * Errors: CK_ERR_UNSUPPORTED for an unknown scheme (named) or a backend not built into this
 * binary; CK_ERR_POLICY for a PostgreSQL URI with a password (user:pw@ or password=): passwords
 * come from libpq's PGPASSFILE or a service file, never from a command line. */
#define CK_STORE_URI_MAX 4096

struct ck_store_ops;
typedef struct ck_store_uri {
    const char *backend;            /* registry name: "sqlite", "postgresql" (static string) */
    char *location;                 /* what the backend opens: the file for sqlite, the whole URI
                                     * for postgresql */
    const struct ck_store_ops *ops; /* the backend (lib/store internal) */
} ck_store_uri;

int ck_store_uri_parse(const char *uri, ck_store_uri *out);
void ck_store_uri_clear(ck_store_uri *u);
/* The stash file a location uses when none is named (sqlite: PATH + ".stash"); CK_ERR_INVAL for
 * a backend without files (PostgreSQL: name the stash). The caller frees *out. */
int ck_store_default_stash(const char *uri, char **out);

/* Creates a new realm: the database (schema, realm row, master key check value,
 * krbtgt/REALM@REALM with random keys for every enctype) and the stash file (mode 0600) holding a
 * fresh random aes256-cts-hmac-sha1-96 master key. Refuses (CK_ERR_EXISTS) if either file exists.
 * max_life/max_renew 0 select 10 hours / 7 days. */
int ck_store_init_realm(const char *db_path, const char *stash_path, const char *realm,
                        const int32_t *enctypes, size_t n_enctypes, int64_t max_life,
                        int64_t max_renew);

/* Opens an existing database (db_path: a location, see above); stash_path NULL means the
 * backend's default (ck_store_default_stash). The stash must be a
 * regular file owned by the current user with no group/other permission bits (else CK_ERR_PERM),
 * and must match the database's master key check (else CK_ERR_INTEGRITY). */
int ck_store_open(const char *db_path, const char *stash_path, unsigned flags, ck_store **out);
void ck_store_close(ck_store *store);

/* Realm parameters, read at open (the pointer lives as long as the store). */
const ck_realm_info *ck_store_realm(const ck_store *store);

/* Changes the realm settings mod->mask names, in one transaction that bumps the change counter,
 * and updates this store's ck_store_realm copy. Other connections (a running KDC) read realm
 * settings when they open the store: the KDC applies them at its next start. The name and the
 * master key are not settings. CK_ERR_INVAL for values out of range. */
int ck_store_realm_modify(ck_store *store, const ck_realm_mod *mod);

/* Current value of the change counter (from the database, not the cache). */
int ck_store_generation(ck_store *store, uint64_t *out);
/* Checkpoints off a busy writer's path (SQLite; PostgreSQL has none: both return 0 and do
 * nothing). ck_store_wal_manual: this connection's commits stop copying the write-ahead log into
 * the database file (SQLite's automatic checkpoint, with its fsyncs), except as a safety net
 * when the log passes CK_STORE_WAL_SAFETY_PAGES; another connection then calls
 * ck_store_checkpoint, which copies what it can without blocking writers; *complete when
 * nothing was left, *frames the log's length in pages. restart: also wait a few milliseconds
 * for the log's readers to move on, so that the next write starts the log from its beginning
 * (blocks writers meanwhile; not complete if they did not). */
#define CK_STORE_WAL_SAFETY_PAGES 20000
int ck_store_wal_manual(ck_store *store);
int ck_store_checkpoint(ck_store *store, bool restart, bool *complete, int *frames);

/* --- principal records (all copies; the caller frees with ck_db_principal_free) --- */

/* Looks up by canonical unparsed name; CK_ERR_NOTFOUND if absent. */
int ck_store_get_principal(ck_store *store, const char *name, ck_db_principal **out);

/* Creates a principal with its keys (kvno = p->kvno, which must be >= 1 and match every key's
 * kvno or be older). name must parse and be in the store's realm. CK_ERR_EXISTS if present. */
int ck_store_create_principal(ck_store *store, const ck_db_principal *p);
/* Creates or replaces a whole record, keys included. */
int ck_store_put_principal(ck_store *store, const ck_db_principal *p);
/* Updates the non-key fields (attributes, max_life, max_renew, expires, pw_expires) of an
 * existing principal; keys and kvno are untouched. */
int ck_store_update_principal(ck_store *store, const ck_db_principal *p);
/* CK_ERR_POLICY while a device (revoked or not) maps to the principal: delete those first. */
int ck_store_delete_principal(ck_store *store, const char *name);

/* Renames a principal: the record, its keys (which keep their stored salts, so a password
 * still gives the same keys) and the devices that map to it, in one transaction. Both names
 * canonical, in the store's realm. CK_ERR_NOTFOUND if old_name is absent, CK_ERR_EXISTS if
 * new_name is present, CK_ERR_POLICY for the realm's own krbtgt on either side. */
int ck_store_rename_principal(ck_store *store, const char *old_name, const char *new_name);

/* Calls cb for every principal name in name order; a non-zero return from cb stops the walk and
 * is returned. */
typedef int (*ck_store_list_cb)(const char *name, void *arg);
int ck_store_list_principals(ck_store *store, ck_store_list_cb cb, void *arg);

/* Key rotation: stores keys as kvno current+1 (the keys' kvno fields are ignored), makes it the
 * current kvno, and keeps only the newest `keep` kvnos (0 = CK_STORE_KEEP_KVNOS). Fails with
 * CK_ERR_POLICY if someone else changed the kvno concurrently. *new_kvno may be NULL. */
int ck_store_rotate_keys(ck_store *store, const char *name, const ck_db_key *keys, size_t n_keys,
                         unsigned keep, uint32_t *new_kvno);

/* ============================================================================ password policies
 *
 * MIT kadm5 policies: a named set of password rules and lockout parameters, attached to
 * principals (ck_db_principal.policy). Every administrative write below commits in one
 * transaction with a change-counter bump (the audit hook); a policy change makes every
 * connection's caches reload (the lockout parameters are part of cached principal records). */

#define CK_POLICY_NAME_MAX 128       /* bytes; printable ASCII without spaces */
#define CK_POLICY_MAX_CLASSES 5      /* lower, upper, digit, punctuation, other */
#define CK_POLICY_MAX_HISTORY 100    /* MIT's limit too */
#define CK_POLICY_LIST_MAX 10000

typedef struct ck_policy {
    char name[CK_POLICY_NAME_MAX + 1];
    uint32_t min_length;       /* password characters (bytes); 0 = no minimum */
    uint32_t min_classes;      /* 0..5 character classes; 0 and 1 = no rule */
    uint32_t history;          /* passwords remembered, the current one included (MIT's
                                * pw_history_num): a new password must differ from the current
                                * and the history-1 before it; 0 and 1 = no rule */
    int64_t min_life;          /* seconds between password changes by the user; 0 = none */
    int64_t max_life;          /* password lifetime: each change sets pw_expires = now + max_life;
                                * 0 = passwords do not expire (pw_expires = 0) */
    uint32_t max_failure;      /* failed pre-authentications that lock; 0 = lockout off */
    int64_t failure_interval;  /* failures older than this do not count; 0 = never reset */
    int64_t lockout_duration;  /* lock time; 0 = until ck_store_unlock_principal */
    /* Read-only (filled by get/list). */
    uint64_t ref_count;        /* principals using the policy */
    int64_t created, modified;
} ck_policy;

/* A policy name: 1..CK_POLICY_NAME_MAX bytes of printable ASCII without spaces (CK_ERR_INVAL). */
int ck_policy_name_check(const char *name);
/* Name rules and field ranges (CK_ERR_INVAL with the field named). */
int ck_policy_check(const ck_policy *pol);
/* CK_ERR_EXISTS if the name is taken. */
int ck_store_create_policy(ck_store *store, const ck_policy *pol);
/* CK_ERR_NOTFOUND if absent. */
int ck_store_get_policy(ck_store *store, const char *name, ck_policy *out);
/* Replaces every rule of an existing policy (get, change, modify). */
int ck_store_modify_policy(ck_store *store, const ck_policy *pol);
/* CK_ERR_POLICY while a principal uses it (MIT refuses too): clear it from them first. */
int ck_store_delete_policy(ck_store *store, const char *name);
/* Calls cb for every policy in name order (the record is valid during the call only); a
 * non-zero return stops the walk and is returned. */
typedef int (*ck_store_policy_cb)(const ck_policy *pol, void *arg);
int ck_store_list_policies(ck_store *store, ck_store_policy_cb cb, void *arg);
/* Attaches policy (must exist: CK_ERR_NOTFOUND) to a principal, or detaches with NULL. Does
 * not touch the password or its expiry (MIT: the rules apply from the next change). */
int ck_store_set_principal_policy(ck_store *store, const char *name, const char *policy);

/* ck_store_change_password flags. */
#define CK_PW_ADMIN 0x1  /* an administrator sets it: the minimum password age does not apply
                          * (MIT: kadmin cpw / addprinc -pw, the set-password protocol); length,
                          * classes and history still do */

/* THE password-change step (CLI `principal add/rotate --password`, the kpasswd service).
 *
 * Checks the password against the principal's policy, if any, in this order, each rejection
 * being CK_ERR_POLICY with an operator/user-readable context (no password material):
 *   - "password is too short (N characters, the policy asks for at least M)"
 *   - "password has N character classes, the policy asks for M (lower case, upper case,
 *      digits, punctuation, other)"
 *   - "password changed too recently: it may be changed again after <UTC time>": unless
 *     CK_PW_ADMIN, or the principal has CK_ATTR_REQUIRES_PWCHANGE (MIT) or an expired password
 *     (pw_expires <= now: its owner must be able to change it), now < last_pwd_change +
 *     min_life
 *   - "password was used before (the policy remembers N passwords)": the keys the new password
 *     derives, with each remembered key's own enctype and salt, equal (constant-time compare)
 *     the current key or one of the history-1 remembered ones. History keeps one key (the
 *     first enctype's) per former password, encrypted under the master key as any key; no
 *     plaintext password is ever stored.
 * Then, in one transaction with a change-counter bump: keys derived from the password for the
 * enctypes of the principal's current keys (the realm's if it has none) become kvno current+1
 * (CK_STORE_KEEP_KVNOS kvnos kept, as rotation), the
 * former current key joins the history (trimmed to history-1), last_pwd_change = now,
 * pw_expires = now + max_life (0 without policy or max_life: MIT), CK_ATTR_REQUIRES_PWCHANGE
 * cleared. CK_ERR_NOTFOUND if the principal is absent, CK_ERR_INVAL for an empty password or
 * unknown flags, CK_ERR_DB ("changed concurrently, retry") if another writer changed the keys
 * meanwhile. now: epoch seconds (the caller's clock; tests inject one). *new_kvno may be NULL. */
int ck_store_change_password(ck_store *store, const char *name, const char *password,
                             size_t password_len, unsigned flags, int64_t now,
                             uint32_t *new_kvno);
/* The policy checks alone (length, classes; history when name is not NULL), for a caller that
 * wants to test a password before asking for confirmation. Same errors. */
int ck_store_check_password(ck_store *store, const char *name, const ck_policy *pol,
                            const char *password, size_t password_len);

/* ============================================================================ lockout
 *
 * MIT's semantics, as pure functions on a ck_db_lockout (the KDC applies them to its in-memory
 * view, `principal show` to the stored state):
 *   locked  <=> max_failure > 0 && fail_count >= max_failure &&
 *               (lockout_duration == 0 || now < last_failed + lockout_duration)
 *   failure:  if failure_interval > 0 && now > last_failed + failure_interval: fail_count = 0;
 *             fail_count++, last_failed = now (also for principals without a policy: counted,
 *             never locked)
 *   success (pre-authenticated, REQUIRES_PREAUTH principals only, as MIT): fail_count = 0,
 *             last_success = now */
bool ck_lockout_is_locked(const ck_db_lockout *l, int64_t now);
void ck_lockout_failure(ck_db_lockout *l, int64_t now);

/* One principal's authentication events not yet written (the KDC batches them). */
typedef struct ck_lockout_update {
    const char *name;
    int64_t created;         /* the record's `created`: a principal deleted and re-added since
                              * is another principal, and is left alone */
    uint64_t epoch;          /* the record's lockout epoch: after an unlock the events are void */
    bool success;            /* a pre-authenticated success came after the stored count: the
                              * stored count is replaced by `fails` (else fails are added) */
    uint32_t fails;          /* failures after that success (or since the record was read) */
    int64_t first_failed, last_failed; /* times of the first and last of those failures */
    int64_t last_success;    /* 0: nothing to record */
    int64_t failure_interval;/* the policy's, to expire the stored count as MIT would */
} ck_lockout_update;
/* Writes a batch of events in one transaction WITHOUT bumping the change counter (not an
 * administrative change: no audit entry, and other connections' caches keep their records, see
 * docs/cablekey-kdc.md "Lockout"); this connection's cache drops the names written, so its next
 * lookup reads the merged count. */
int ck_store_record_auth(ck_store *store, const ck_lockout_update *u, size_t n);
/* `principal unlock`: fail_count = 0 and a new lockout epoch, with a change-counter bump so that
 * every KDC worker reloads the record at its next change check. */
int ck_store_unlock_principal(ck_store *store, const char *name);

/* --- helpers --- */

/* Allocates an empty record with the given name. */
int ck_db_principal_new(const char *name, ck_db_principal **out);
void ck_db_principal_free(ck_db_principal *p);
/* Deep copy (keys included). */
int ck_db_principal_copy(const ck_db_principal *src, ck_db_principal **out);
/* Finds the key for (kvno, enctype); kvno 0 = current kvno. NULL if none. */
const ck_db_key *ck_db_principal_find_key(const ck_db_principal *p, uint32_t kvno,
                                          int32_t enctype);

/* Derives one key per enctype for principal `name` (canonical text form) with kvno: from the
 * password with the default salt (salt type NORMAL, salt bytes stored), or random keys when
 * password is NULL (salt still recorded, for ETYPE-INFO2). *keys is freed with ck_db_keys_free. */
int ck_db_keys_make(const char *name, const char *password, size_t password_len,
                    const int32_t *enctypes, size_t n_enctypes, uint32_t kvno, ck_db_key **keys,
                    size_t *n_keys);
void ck_db_keys_free(ck_db_key *keys, size_t n_keys);

/* --- per-connection principal cache (the KDC hot path) ---
 *
 * Call ck_store_cache_begin once at the start of each request: it releases records (principals
 * and devices) retired by earlier flushes and, at most every CK_STORE_CACHE_CHECK_MS, checks the
 * change counter and drops entries for principals changed elsewhere (all entries if the change
 * log is not conclusive).
 * ck_store_get_principal_cached then returns a read-only record owned by the cache, valid until
 * the next ck_store_cache_begin (or ck_store_close): no copies and no key decryption per hit.
 * Absent principals are cached too (CK_ERR_NOTFOUND). */
void ck_store_cache_begin(ck_store *store);
int ck_store_get_principal_cached(ck_store *store, const char *name,
                                  const ck_db_principal **out);
/* As ck_store_cache_begin, but reads the change counter now whatever the interval ("check
 * now"): the KDC's re-check before a refusal that a stale entry could explain. Records obtained
 * before are invalid afterwards. */
void ck_store_cache_refresh(ck_store *store);
/* Drops every cache entry, principals and devices (they stay valid until the next
 * ck_store_cache_begin). */
void ck_store_cache_flush(ck_store *store);
/* Tuning (tests) of the principal cache: entry limit and check interval (0 = check on every
 * begin). The device cache has no interval: it checks on every lookup. */
void ck_store_cache_configure(ck_store *store, size_t max_entries, int64_t check_ms);

typedef struct ck_store_cache_stats {
    uint64_t hits, misses, flushes, evictions;
    size_t entries;
} ck_store_cache_stats;
void ck_store_cache_get_stats(const ck_store *store, ck_store_cache_stats *out);
/* The same counters for the device cache (ck_store_get_device_cached). */
void ck_store_device_cache_get_stats(const ck_store *store, ck_store_cache_stats *out);

/* --- KDC fleet: change notices and database contact (k9fleet; docs/fleet.md) ---
 *
 * On a backend that pushes change notices (PostgreSQL LISTEN/NOTIFY) ck_store_cache_begin drains
 * them without waiting and re-reads the change log at once when one arrived; the interval check
 * remains as a heartbeat. SQLite has no push: its caches poll the counter as before.
 *
 * Every read the caches make is a contact with the database. When one fails the caches keep
 * their records and serve them for at most the staleness limit after the last successful
 * contact (db_max_staleness: a revocation made through another KDC cannot reach this one
 * meanwhile); after that, and for a record not cached, lookups fail with CK_ERR_DB. The database
 * is tried again on a doubling backoff (CK_STORE_RECONNECT_MIN_MS .. MAX_MS), never per request,
 * and the caches catch up from the change log when it answers. All of these act on the calling
 * thread's store: a store is used by one thread at a time. */
#define CK_STORE_DEFAULT_MAX_STALENESS_S 300
#define CK_STORE_RECONNECT_MIN_MS 100
#define CK_STORE_RECONNECT_MAX_MS 5000

typedef struct ck_store_contact_info {
    bool push;                   /* the backend pushes change notices */
    bool reachable;              /* the last access to the database succeeded */
    bool serving;                /* cached records may be served (reachable, or within the limit) */
    int64_t since_contact_ms;    /* since the last successful access */
    int64_t down_ms;             /* since the first failure of the current outage (0: none) */
    int64_t next_attempt_ms;     /* until the next reconnection attempt (0: none pending) */
    int64_t max_staleness_ms;
    uint64_t failures;           /* failed accesses */
    uint64_t recoveries;         /* outages ended */
    char error[160];             /* why the last access failed ("" if none did) */
} ck_store_contact_info;
void ck_store_cache_contact(const ck_store *store, ck_store_contact_info *out);
/* For the staleness gauge: ms since the last successful contact while the database is
 * unreachable, 0 while it is reachable. */
int64_t ck_store_cache_staleness(const ck_store *store);
/* The staleness limit in ms (0: refuse as soon as the database is unreachable). */
void ck_store_cache_set_max_staleness(ck_store *store, int64_t ms);
/* The reconnection backoff (tests; 0 keeps a value). */
void ck_store_cache_set_backoff(ck_store *store, int64_t min_ms, int64_t max_ms);
/* The caches' monotonic clock in ms (tests; NULL: the system's). Counts as a contact now. */
void ck_store_cache_set_clock(ck_store *store, int64_t (*now_ms)(void *ctx), void *ctx);
/* The idle step of a long-lived reader (a KDC worker): drains change notices, runs the heartbeat
 * or a due reconnection attempt. Returns the ms until it is due again (>= 1). */
int ck_store_cache_idle(ck_store *store);

/* ===================================================================================== audit log
 *
 * Every administrative change (principals: add, modify, delete, rotate, password change,
 * rename, unlock; devices; realm settings; policies; restores) writes one row to the audit
 * table IN THE SAME TRANSACTION as the change: a change and its row commit together, a rolled
 * back change leaves no row, and a backup carries both. A row says who (the store's actor),
 * what (an action such as "principal.modify", the object it changed and a short detail such as
 * "attributes +REQUIRES_PREAUTH" or "kvno 3 -> 4"), when (epoch seconds) and the change counter
 * value of the change. Rows never hold a secret: no password, key, or hash of either.
 * The KDC's own bookkeeping (lockout counters) is not administrative and writes no rows.
 *
 * Retention: the table keeps at most keep_rows rows (default CK_AUDIT_KEEP_ROWS) and, if
 * keep_days > 0, drops rows older than keep_days (default CK_AUDIT_KEEP_DAYS); the oldest rows
 * go first, at each new row. The table is never unbounded. */

#define CK_AUDIT_KEEP_ROWS 100000
#define CK_AUDIT_KEEP_ROWS_MAX 10000000
#define CK_AUDIT_KEEP_DAYS 365
#define CK_AUDIT_KEEP_DAYS_MAX 36500
#define CK_AUDIT_LIST_MAX 100000     /* rows per ck_store_audit_list call */

/* Who makes the changes of this store from now on, as the audit log shows it: the CLI passes
 * the OS user ("uid 0 (root) via sudo alice"), the admin daemon the authenticated principal.
 * Control characters are replaced by '?'; longer than 255 bytes is truncated. Default:
 * "uid N" of the process. */
void ck_store_set_actor(ck_store *store, const char *actor);

typedef struct ck_audit_entry {
    int64_t id;            /* increasing */
    int64_t time;          /* epoch seconds */
    uint64_t generation;   /* the change counter value of the change */
    const char *actor;
    const char *action;
    const char *object;    /* "" when the change concerns the realm as a whole */
    const char *detail;
} ck_audit_entry;

typedef struct ck_audit_filter {
    int64_t since;         /* rows with time >= since (0: all) */
    const char *object;    /* NULL: all objects */
    const char *action;    /* NULL: all; "principal." (trailing dot) matches a family */
    size_t limit;          /* the newest `limit` matching rows (1..CK_AUDIT_LIST_MAX) */
} ck_audit_filter;

/* Calls cb for the matching rows, oldest first; the entry is valid during the call only. */
typedef int (*ck_store_audit_cb)(const ck_audit_entry *e, void *arg);
int ck_store_audit_list(ck_store *store, const ck_audit_filter *filter, ck_store_audit_cb cb,
                        void *arg);

typedef struct ck_audit_retention {
    int64_t keep_rows;     /* 1..CK_AUDIT_KEEP_ROWS_MAX */
    int64_t keep_days;     /* 0 (no age limit) .. CK_AUDIT_KEEP_DAYS_MAX */
} ck_audit_retention;
int ck_store_audit_get_retention(ck_store *store, ck_audit_retention *r);
/* Changes the retention (itself an audited change); trims at the next row. */
int ck_store_audit_set_retention(ck_store *store, const ck_audit_retention *r);

/* ============================================================= backup, restore, integrity check
 *
 * A backup is a single SQLite file holding everything of the realm EXCEPT the master key:
 * principal keys in it are encrypted under the master key, which lives only in the stash file.
 * A backup without its stash is useless; the stash must be backed up separately (it changes
 * only when the master key does) and protected like the key it is: not next to the backups. */

typedef struct ck_store_backup_info {
    char realm[256];
    int schema_version;
    uint64_t generation;   /* the change counter of the copied state */
    int64_t principals, devices, audit_rows;
} ck_store_backup_info;

/* Copies the database at db_path into out_path through SQLite's online backup: one consistent
 * snapshot, taken while KDCs and the CLI keep reading and writing. The copy is written to a
 * temporary file in out_path's directory (mode 0600), checked (PRAGMA integrity_check), synced,
 * and renamed into place, so out_path is either absent or complete. CK_ERR_EXISTS if out_path
 * exists and overwrite is false; out_path may never be the database itself. info may be NULL. */
int ck_store_backup(const char *db_path, const char *out_path, bool overwrite,
                    ck_store_backup_info *info);

#define CK_RESTORE_FORCE 0x1  /* restore even while other processes have the database open */

typedef struct ck_store_restore_info {
    char realm[256];
    int backup_schema_version;  /* as found in the backup (it is upgraded on restore) */
    uint64_t backup_generation; /* the change counter in the backup */
    uint64_t old_generation;    /* the replaced database's (0 if there was none) */
    uint64_t generation;        /* after the restore: greater than both */
    int64_t principals, devices, keys_checked;
    bool created;               /* db_path did not exist */
} ck_store_restore_info;

/* Replaces the realm at db_path by the backup in_path. The backup is validated first, on a
 * private copy (the backup file is only read): SQLite integrity and foreign keys, a schema
 * version not newer than this binary (older ones are upgraded), the master key check value
 * against the stash (stash_path NULL: db_path + ".stash"), and that every key decrypts.
 * Refused (CK_ERR_POLICY, naming the process) while another process has db_path open, unless
 * flags has CK_RESTORE_FORCE. The replacement is one write transaction on the live database
 * (its file, owner and mode are kept), so a running KDC sees either the old or the restored
 * realm: the change counter moves past both the old and the restored value with a "flush
 * everything" change-log entry, so no KDC serves a cached record of the replaced realm. The
 * live audit log is kept (it records what really happened, including what the restore undoes)
 * and gains a "db.restore" row by actor; when db_path does not exist, it is created from the
 * backup (the backup's audit rows included). info may be NULL. */
int ck_store_restore(const char *db_path, const char *stash_path, const char *in_path,
                     unsigned flags, const char *actor, ck_store_restore_info *info);

typedef struct ck_store_check_result {
    size_t problems;
    int schema_version;
    uint64_t generation;
    int64_t principals, keys, devices;
    int64_t history_keys;  /* password history rows decrypted (with keys_checked) */
    bool keys_checked;     /* the stash opened and every key was decrypted */
} ck_store_check_result;

/* Each problem as one line of text. */
typedef void (*ck_store_check_cb)(const char *problem, void *arg);
/* Checks a database without changing it: PRAGMA integrity_check and foreign_key_check, the
 * schema version, the realm and master key rows, and, with the stash (stash_path NULL: db_path
 * + ".stash"), that the master key decrypts every stored key and password history key and each
 * belongs to its row.
 * Every problem is passed to cb (may be NULL). Returns 0 if none, CK_ERR_INTEGRITY if any
 * (context: how many), another error if the check could not run (no such file). */
int ck_store_check(const char *db_path, const char *stash_path, ck_store_check_cb cb, void *arg,
                   ck_store_check_result *res);

/* ===================================================================================== devices
 *
 * The device table maps a PacketCable device (an MTA, identified by the MAC address its
 * manufacturer certificate carries) to the principal it logs in as, and pins the device's key.
 * It is the "customer database" devices are checked against instead of CRLs: a device the table
 * does not know, or marks revoked, is refused.
 *
 * Record:
 *   mac        canonical "aa:bb:cc:dd:ee:ff" (primary key; see ck_device_mac_parse)
 *   principal  canonical "name@REALM" of the store's realm; must exist when the device is added,
 *              and a principal some device maps to cannot be deleted (CK_ERR_POLICY)
 *   state      CK_DEVICE_ACTIVE or CK_DEVICE_REVOKED (revocation keeps the record)
 *   pin        SHA-256 of the DER SubjectPublicKeyInfo of the device certificate, exactly the bytes
 *              i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert)) writes (the same as
 *              `openssl x509 -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum`).
 *              Optional: an unpinned device is pinned by its first successful PKINIT login (trust
 *              on first use). The key, not the certificate, is pinned: the operator certificate
 *              issued at provisioning certifies the same key, so the pin survives it.
 *   created, modified, revoked   epoch seconds set by the store (revoked 0: not revoked)
 *   generation the store's change counter (ck_store_generation) at the record's last change. The
 *              counter only grows, so a generation is never reused, not even by a device deleted
 *              and added again: a cache entry that remembers it can tell the record changed.
 *   comment    free text for the operator, at most CK_DEVICE_COMMENT_MAX bytes, no control chars
 *
 * Every device write (add, revoke, reinstate, delete, pin, unpin, the login-time pin) commits in
 * one transaction that also bumps the change counter and logs the MAC in the change log, so other
 * connections (KDC workers, other processes) see it at their next read.
 *
 * ---- What the KDC does per PKINIT login with a device certificate ----
 *
 *  1. mac = the MAC address from the certificate subject, through ck_device_mac_parse.
 *  2. ck_store_get_device_cached(store, mac, &dev). This reads the change counter on EVERY call
 *     (one SELECT of a one-row table; there is no poll interval for devices), so a revocation
 *     committed before the call is always seen. Nothing changed: the cached record is returned
 *     with no further query. Something changed: the change log says which MACs (a second small
 *     query), those entries are dropped, and a miss costs one SELECT by primary key.
 *       CK_ERR_NOTFOUND  unknown device: refuse and log "unknown device". HOOK for the
 *                        provisioning issue: this is where a manufacturer-certified device the
 *                        table does not know may later be admitted in a restricted
 *                        "unprovisioned" state; today the answer is always no.
 *       other error      refuse (fail closed); the database is unavailable.
 *     dev->state != CK_DEVICE_ACTIVE: refuse and log "device revoked". Treat any state the KDC
 *     does not know the same way (future states, e.g. CK_DEVICE_UNPROVISIONED, are refusals until
 *     the KDC is taught them).
 *  3. spki = SHA-256 of the certificate's SubjectPublicKeyInfo (as above). If dev->has_pin and
 *     !ck_ct_equal(spki, dev->spki_sha256, 32): another key presents this MAC: refuse and log a
 *     possible clone (MAC, principal, both hashes) before any expensive verification.
 *  4. Thumbprint cache (the KDC's): an entry keyed by the certificate's hash may skip chain
 *     verification only while entry.device_generation == dev->generation and the certificate is
 *     within its validity. Any change to the device record (revoke, reinstate, pin, unpin,
 *     delete and re-add) changes dev->generation, so the entry is dead. The AuthPack signature is
 *     verified on every login regardless.
 *  5. If !dev->has_pin, and only after the chain and the signature verified (or an unverified
 *     certificate could pin its key first): ck_store_device_pin_check(store, mac, spki, &res,
 *     &gen). CK_DEVICE_PIN_MISMATCH: another key won the race to pin: refuse as a clone.
 *     CK_ERR_NOTFOUND / CK_ERR_POLICY (deleted / revoked meanwhile): refuse. Remember `gen`,
 *     not dev->generation, in the thumbprint cache entry: pinning changed the record.
 *  6. The client principal is dev->principal (looked up through ck_store_get_principal_cached as
 *     any client).
 *
 * Liveness: `cablekey device revoke` returns only after its transaction committed; the next
 * ck_store_get_device_cached call on any connection reads the new counter, drops the MAC and
 * re-reads the row, so the next login of that device is refused without a restart and without
 * waiting for an interval. This holds because the store never keeps a read transaction open
 * between calls (each statement is reset after use); do not wrap these calls in your own
 * transaction. Records returned by ck_store_get_device_cached stay valid until the next
 * ck_store_cache_begin (or ck_store_close), like cached principals. */

#define CK_DEVICE_MAC_LEN 17          /* "aa:bb:cc:dd:ee:ff" without the NUL */
#define CK_DEVICE_SPKI_HASH_LEN 32    /* SHA-256 */
#define CK_DEVICE_COMMENT_MAX 256     /* bytes */
#define CK_DEVICE_LIST_MAX 10000      /* rows per ck_store_list_devices call */
#define CK_STORE_DEVICE_CACHE_MAX_ENTRIES 100000

/* Stored as these integers; never renumber. */
enum ck_device_state {
    CK_DEVICE_ACTIVE = 1,  /* may log in */
    CK_DEVICE_REVOKED = 2, /* refused; the record (and its pin) is kept for the audit trail */
    /* A device known only from its manufacturer certificate (prov.h): admitted with
     * restricted tickets (prov_ad.h). Written by ck_prov_admit_unprovisioned and the
     * provisioning actions; a record holding a state this version does not know loads as
     * CK_ERR_UNSUPPORTED, which the KDC refuses. */
    CK_DEVICE_UNPROVISIONED = 3,
};

typedef struct ck_db_device {
    char mac[CK_DEVICE_MAC_LEN + 1];
    char *principal;
    enum ck_device_state state;
    bool has_pin;
    uint8_t spki_sha256[CK_DEVICE_SPKI_HASH_LEN]; /* valid if has_pin */
    int64_t created, modified, revoked;
    uint64_t generation;
    char *comment;                                /* never NULL in records the store returns */
    /* The one operator certificate (SHA-256 of its DER) the KDC accepts for this device's full
     * service (prov.h); has_cert false: none. Written only by the provisioning actions. */
    bool has_cert;
    uint8_t cert_sha256[32];
} ck_db_device;

enum ck_device_pin_result {
    CK_DEVICE_PIN_MATCH = 0,    /* already pinned to this key */
    CK_DEVICE_PIN_SET = 1,      /* was unpinned; pinned to this key now (trust on first use) */
    CK_DEVICE_PIN_MISMATCH = 2, /* pinned to another key: a possible clone; nothing changed */
};

/* Normalises a MAC address to "aa:bb:cc:dd:ee:ff". Accepts exactly six two-digit hex groups
 * separated all by ':' or all by '-', or 12 hex digits with no separator, in either case.
 * Anything else (other separators, spaces, short groups, extra characters): CK_ERR_INVAL. */
int ck_device_mac_parse(const char *in, char out[CK_DEVICE_MAC_LEN + 1]);
const char *ck_device_state_name(enum ck_device_state state); /* "active", "revoked", "unknown" */
/* A key pin as text: exactly 64 hex digits, or 32 two-digit groups separated by ':' (openssl's
 * fingerprint style), either case. Anything else: CK_ERR_INVAL. */
int ck_device_pin_parse_hex(const char *hex, uint8_t out[CK_DEVICE_SPKI_HASH_LEN]);
/* A device comment: NULL, or at most CK_DEVICE_COMMENT_MAX bytes of UTF-8 without control
 * characters (C0, DEL, C1); else CK_ERR_LIMIT / CK_ERR_INVAL. ck_store_add_device applies it. */
int ck_device_comment_check(const char *comment);
/* 64 lower-case hex digits and a NUL. */
void ck_device_pin_format_hex(const uint8_t pin[CK_DEVICE_SPKI_HASH_LEN],
                              char out[2 * CK_DEVICE_SPKI_HASH_LEN + 1]);

/* Adds a device: mac (any form ck_device_mac_parse accepts), principal (canonical, of the
 * store's realm, must exist: else CK_ERR_NOTFOUND), comment (NULL = none), has_pin/spki_sha256.
 * state must be CK_DEVICE_ACTIVE; the timestamps and generation of dev are ignored.
 * CK_ERR_EXISTS if the MAC is already in the table (revoked or not). */
int ck_store_add_device(ck_store *store, const ck_db_device *dev);
/* A copy of one record (uncached; for the CLI); free with ck_db_device_free. */
int ck_store_get_device(ck_store *store, const char *mac, ck_db_device **out);
/* Calls cb for the devices with MAC > after (NULL: from the first), in MAC order, at most
 * limit of them (1..CK_DEVICE_LIST_MAX), only those of `principal` if not NULL. The record is
 * valid during the call only. *n_out (may be NULL) is the number of records passed to cb; a
 * caller pages on with after = the last MAC it saw. A non-zero return from cb stops the walk
 * and is returned. */
typedef int (*ck_store_device_cb)(const ck_db_device *dev, void *arg);
int ck_store_list_devices(ck_store *store, const char *principal, const char *after,
                          size_t limit, ck_store_device_cb cb, void *arg, size_t *n_out);
/* Sets the state: CK_DEVICE_REVOKED (revoke: the record and its pin stay, revoked = now) or
 * CK_DEVICE_ACTIVE (reinstate: revoked = 0). *changed (may be NULL) is false if the device was
 * already in that state, in which case nothing is written. CK_ERR_NOTFOUND if absent. */
int ck_store_set_device_state(ck_store *store, const char *mac, enum ck_device_state state,
                              bool *changed);
int ck_store_delete_device(ck_store *store, const char *mac);
/* Sets (spki_sha256 != NULL) or clears (NULL: the next successful login pins again) the pin,
 * whatever it was. For the operator; the KDC uses ck_store_device_pin_check. */
int ck_store_set_device_pin(ck_store *store, const char *mac, const uint8_t *spki_sha256);
/* The KDC's atomic trust-on-first-use step, in one write transaction: an active device with no
 * pin is pinned to spki_sha256 (CK_DEVICE_PIN_SET), one pinned to the same key gives
 * CK_DEVICE_PIN_MATCH, one pinned to another CK_DEVICE_PIN_MISMATCH (the hashes are compared in
 * constant time; nothing is written). CK_ERR_NOTFOUND if the device is absent, CK_ERR_POLICY if
 * it is not active. *generation (may be NULL) receives the record's generation afterwards. */
int ck_store_device_pin_check(ck_store *store, const char *mac, const uint8_t *spki_sha256,
                              enum ck_device_pin_result *result, uint64_t *generation);
/* The KDC's per-login lookup (see above): read-only record owned by the cache, valid until the
 * next ck_store_cache_begin. Absent devices are cached too (CK_ERR_NOTFOUND). */
int ck_store_get_device_cached(ck_store *store, const char *mac, const ck_db_device **out);
void ck_db_device_free(ck_db_device *dev);

/* ---- Master-key rotation (lib/store/mkey.c; docs/master-key.md) ----
 * The stash may hold several master keys. A rotation goes: add (a new key into the stash and a
 * master_key row, not used yet) -> activate (realm.master_kvno: new writes go under it) ->
 * reencrypt (online, batches of one transaction each: principal keys and password history;
 * the principals' cache entries are invalidated everywhere) -> retire (the old key leaves the
 * database and the stash; refused while any stored key is still under it). Every step is
 * resumable: run again after a crash, it continues where it stopped. A running store meeting
 * a key under a kvno its stash copy lacks re-reads the stash (at most once a second). */
#define CK_MKEY_LIST_MAX 16            /* master keys a status reports (database and stash) */
#define CK_MKEY_BATCH_DEFAULT 100      /* stored keys per re-encryption transaction */
#define CK_MKEY_BATCH_MAX 10000

typedef struct ck_mkey_info {
    uint32_t kvno;
    int32_t enctype;
    int64_t created;          /* when its row was added (0: no database row) */
    bool in_db, in_stash;     /* a master_key row; a key in this store's stash */
    bool active;              /* realm.master_kvno */
    uint64_t keys, history;   /* stored keys under it (principal keys, password history) */
} ck_mkey_info;

typedef struct ck_mkey_status {
    uint32_t active;
    size_t n;
    ck_mkey_info keys[CK_MKEY_LIST_MAX]; /* kvno ascending */
    uint64_t pending;                    /* stored keys not under the active kvno */
} ck_mkey_status;

/* Database rows, the stash (re-read now) and the use of each master key. */
int ck_store_mkey_status(ck_store *store, ck_mkey_status *out);
/* Makes a new master key of enctype (0: aes256-cts-hmac-sha1-96) with the next kvno: stash
 * first (atomic rewrite, 0600), then its row. A key added before and not activated yet (kvno
 * above the active one, also one a crash left in the stash only) is returned instead with
 * *created false. */
int ck_store_mkey_add(ck_store *store, int32_t enctype, uint32_t *kvno, bool *created);
/* realm.master_kvno = kvno (0: the newest added key); this store's stash must hold it.
 * Activating the active kvno does nothing. */
int ck_store_mkey_activate(ck_store *store, uint32_t kvno);
/* Re-encrypts every stored key not under the active master key, batch (0: default) keys per
 * transaction, until none is left; progress (may be NULL) after each committed batch with the
 * running total (non-zero stops with that value). *done (may be NULL): keys re-encrypted. */
typedef int (*ck_mkey_progress_cb)(uint64_t done, void *arg);
int ck_store_mkey_reencrypt(ck_store *store, size_t batch, ck_mkey_progress_cb progress,
                            void *arg, uint64_t *done);
/* Retires kvno (0: every master key older than the active one): its row and its stash entry
 * go. CK_ERR_POLICY for the active kvno or while any stored key is still under it. *n (may be
 * NULL): keys retired. */
int ck_store_mkey_retire(ck_store *store, uint32_t kvno, size_t *n);
/* Test and crash hook: called at the named points of the steps above ("add-stash": the new
 * key is in the stash, not yet in the database; "after-add", "after-activate",
 * "mid-reencrypt": after each committed batch; "before-retire"; "retire-db": the row is gone,
 * the stash not yet rewritten). A non-zero return makes the step return it at once, as if the
 * process had died there. Process-wide; NULL removes it. */
typedef int (*ck_mkey_hook)(const char *point, void *arg);
void ck_store_mkey_set_hook(ck_mkey_hook hook, void *arg);
/* Test support: the store's minimum interval between stash re-reads (default 1000 ms) and the
 * number of re-reads done. */
void ck_store_mkey_set_reread_interval(ck_store *store, int64_t ms);
uint64_t ck_store_mkey_rereads(const ck_store *store);
/* ============================================================= alarm table (k9alarmw)
 *
 * What the daemons' alarm managers delivered (include/cablekey/alarm.h, sink "table"), for
 * `cablekey alarms`. One row per occurrence of an alarm: code + subject + host while it is
 * active; a raise after a clear starts a new row, so the table is also the alarms' history.
 * Codes and severities are the names of alarm.h ("kvno-missing", "major"). Times are ms since
 * the epoch. Recording is not an administrative change (like the KDC's lockout counters: no
 * change-counter bump, no audit row); an operator's clear is (one transaction, bump, audit row
 * "alarm.clear"). Cleared rows beyond the newest CK_ALARM_TABLE_KEEP are trimmed at the next
 * record. */
#define CK_ALARM_TABLE_KEEP 10000
#define CK_ALARM_LIST_MAX 100000
#define CK_ALARM_ROW_CODE_MAX 32
#define CK_ALARM_ROW_SEVERITY_MAX 16
#define CK_ALARM_ROW_SUBJECT_MAX 256
#define CK_ALARM_ROW_HOST_MAX 128
#define CK_ALARM_ROW_CAUSE_MAX 512
#define CK_ALARM_ROW_BY_MAX 256

typedef struct ck_alarm_row {
    int64_t id;                               /* increasing; 0 in a record call */
    char code[CK_ALARM_ROW_CODE_MAX];
    char severity[CK_ALARM_ROW_SEVERITY_MAX];
    char subject[CK_ALARM_ROW_SUBJECT_MAX];
    char host[CK_ALARM_ROW_HOST_MAX];         /* the host that raised it */
    char cause[CK_ALARM_ROW_CAUSE_MAX];       /* the newest cause */
    int64_t first_seen, last_seen;
    uint64_t count;
    bool cleared;
    int64_t cleared_at;                       /* 0 while active */
    char cleared_by[CK_ALARM_ROW_BY_MAX];     /* "condition" or the operator (store actor) */
} ck_alarm_row;

typedef struct ck_alarm_filter {
    int64_t id;            /* one row (0: any) */
    const char *code;      /* NULL: any */
    const char *subject;   /* NULL: any */
    bool active_only;      /* only rows not cleared */
    int64_t since;         /* rows with last_seen >= since (ms; 0: all) */
    size_t limit;          /* list: the newest `limit` rows (1..CK_ALARM_LIST_MAX; 0: max) */
} ck_alarm_filter;

/* The alarm sink's write: a row that is not cleared updates the active row of its code +
 * subject + host (count, last_seen, cause, severity) or starts a new one; a cleared row closes
 * the active one (cleared_by "condition"; nothing to close: nothing written). Text fields must
 * be printable ASCII (alarm.h cleans them); CK_ERR_INVAL otherwise. */
int ck_store_alarm_record(ck_store *store, const ck_alarm_row *row);
/* Calls cb for the matching rows, oldest first (valid during the call only). */
typedef int (*ck_store_alarm_cb)(const ck_alarm_row *row, void *arg);
int ck_store_alarm_list(ck_store *store, const ck_alarm_filter *filter, ck_store_alarm_cb cb,
                        void *arg);
/* The operator's clear of the active rows that match (id, code, subject; at least one of id
 * and code must be given: CK_ERR_INVAL), cleared_by = the store's actor. *n (may be NULL): rows
 * cleared; none is CK_ERR_NOTFOUND. */
int ck_store_alarm_clear(ck_store *store, const ck_alarm_filter *filter, uint64_t *n);

/* Database latency for /metrics (k9alarmw): once installed, every database call the store's two
 * caches make (record loads on a miss, the change-counter check, the change-log read, draining
 * push notices) is timed
 * and reported to fn (on the calling thread) with its outcome. obs is the caller's memory and
 * must stay in place until ck_store_close; fn must be cheap and must not use the store. One
 * observer per store (a second call replaces the first); NULL fn: reporting stops. */
enum ck_store_db_op {
    CK_STORE_DB_PRINCIPAL_LOAD = 0,
    CK_STORE_DB_DEVICE_LOAD,
    CK_STORE_DB_CHANGE_CHECK,
    CK_STORE_DB_CHANGE_READ,
    CK_STORE_DB_CHANGE_WAIT, /* draining push notices (not a round trip: errors only matter) */
    CK_STORE_DB_OP_COUNT
};
typedef struct ck_store_db_observer {
    void (*fn)(void *arg, enum ck_store_db_op op, int64_t ns, int rc);
    void *arg;
    void *priv[24]; /* the store's own: the wrapped sources */
} ck_store_db_observer;
void ck_store_observe_db(ck_store *store, ck_store_db_observer *obs);

#endif
