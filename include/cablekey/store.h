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
} ck_db_principal;

typedef struct ck_realm_info {
    char name[256];
    size_t n_enctypes;
    int32_t enctypes[CK_STORE_MAX_ENCTYPES]; /* default enctypes, in preference order */
    int64_t max_life;
    int64_t max_renew;
    uint32_t master_kvno;
} ck_realm_info;

typedef struct ck_store ck_store;

/* Creates a new realm: the database (schema, realm row, master key check value,
 * krbtgt/REALM@REALM with random keys for every enctype) and the stash file (mode 0600) holding a
 * fresh random aes256-cts-hmac-sha1-96 master key. Refuses (CK_ERR_EXISTS) if either file exists.
 * max_life/max_renew 0 select 10 hours / 7 days. */
int ck_store_init_realm(const char *db_path, const char *stash_path, const char *realm,
                        const int32_t *enctypes, size_t n_enctypes, int64_t max_life,
                        int64_t max_renew);

/* Opens an existing database; stash_path NULL means db_path + ".stash". The stash must be a
 * regular file owned by the current user with no group/other permission bits (else CK_ERR_PERM),
 * and must match the database's master key check (else CK_ERR_INTEGRITY). */
int ck_store_open(const char *db_path, const char *stash_path, unsigned flags, ck_store **out);
void ck_store_close(ck_store *store);

/* Realm parameters, read at open (the pointer lives as long as the store). */
const ck_realm_info *ck_store_realm(const ck_store *store);

/* Current value of the change counter (from the database, not the cache). */
int ck_store_generation(ck_store *store, uint64_t *out);

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
int ck_store_delete_principal(ck_store *store, const char *name);

/* Calls cb for every principal name in name order; a non-zero return from cb stops the walk and
 * is returned. */
typedef int (*ck_store_list_cb)(const char *name, void *arg);
int ck_store_list_principals(ck_store *store, ck_store_list_cb cb, void *arg);

/* Key rotation: stores keys as kvno current+1 (the keys' kvno fields are ignored), makes it the
 * current kvno, and keeps only the newest `keep` kvnos (0 = CK_STORE_KEEP_KVNOS). Fails with
 * CK_ERR_POLICY if someone else changed the kvno concurrently. *new_kvno may be NULL. */
int ck_store_rotate_keys(ck_store *store, const char *name, const ck_db_key *keys, size_t n_keys,
                         unsigned keep, uint32_t *new_kvno);

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
 * Call ck_store_cache_begin once at the start of each request: it releases records retired by
 * earlier flushes and, at most every CK_STORE_CACHE_CHECK_MS, checks the change counter and drops
 * entries for principals changed elsewhere (all entries if the change log is not conclusive).
 * ck_store_get_principal_cached then returns a read-only record owned by the cache, valid until
 * the next ck_store_cache_begin (or ck_store_close): no copies and no key decryption per hit.
 * Absent principals are cached too (CK_ERR_NOTFOUND). */
void ck_store_cache_begin(ck_store *store);
int ck_store_get_principal_cached(ck_store *store, const char *name,
                                  const ck_db_principal **out);
/* Drops every cache entry (they stay valid until the next ck_store_cache_begin). */
void ck_store_cache_flush(ck_store *store);
/* Tuning (tests): entry limit and check interval (0 = check on every begin). */
void ck_store_cache_configure(ck_store *store, size_t max_entries, int64_t check_ms);

typedef struct ck_store_cache_stats {
    uint64_t hits, misses, flushes, evictions;
    size_t entries;
} ck_store_cache_stats;
void ck_store_cache_get_stats(const ck_store *store, ck_store_cache_stats *out);

#endif
