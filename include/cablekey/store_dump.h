/* Text dump and load of a realm (`cablekey db dump` / `db load`; format: docs/dump-format.md).
 *
 * A dump is a versioned, line-oriented text file holding everything of the realm's state that a
 * KDC fleet needs: realm settings, audit retention, policies, principals with their attributes,
 * their keys STILL ENCRYPTED under the master key (the stored ciphertext byte for byte: a dump
 * never holds a clear key), lockout state, password history, devices; and a trailer with record
 * counts and a SHA-256 over everything before it. Not in a dump: the master key itself (the stash
 * file), the audit log and the change log (the history of one database, not realm state), and
 * the change-counter values devices carry (local to a database's counter).
 *
 * A load is the reverse into a NEW database: the whole file is checked first (syntax, order,
 * counts, checksum, the stash against the dump's master key check value, every key and history
 * key decrypting under it and belonging to its row), then written in one transaction; on any
 * error nothing is left behind. The master key is not changed by a load: the target's stash must
 * be the source realm's (copy it); a stash holding another key is refused before anything is
 * written. Re-encrypting under a new master key is master-key rotation's job. */
#ifndef CABLEKEY_STORE_DUMP_H
#define CABLEKEY_STORE_DUMP_H

#include <stdint.h>
#include <stdio.h>

#include "cablekey/store.h"

/* 2 (issue 10): device records carry cert=, the provisioning tables' prov-* records follow the
 * devices, the end record counts them (prov=). Version 1 dumps still load. */
#define CK_DUMP_FORMAT_VERSION 2
#define CK_DUMP_LINE_MAX 65536      /* bytes per line, newline included */
#define CK_DUMP_MAX_RECORDS 100000000 /* per record type */

typedef struct ck_store_dump_info {
    char realm[256];
    uint32_t master_kvno;
    int64_t created;             /* when the dump was written (header) */
    uint64_t generation;         /* the source's change counter at the dump (header) */
    int64_t policies, principals, keys, lockouts, history, devices;
    int64_t prov_rows;           /* rows of the provisioning tables (format 2) */
} ck_store_dump_info;

/* Writes a dump of store to out, from one consistent snapshot of the database (KDCs and the CLI
 * keep working meanwhile). CK_ERR_IO if out fails. info may be NULL. */
int ck_store_dump(ck_store *store, FILE *out, ck_store_dump_info *info);

/* Creates the database db_path (it must not exist: CK_ERR_EXISTS) from the dump in_path, with
 * the stash stash_path (NULL: db_path + ".stash"), which must hold the master key the dump was
 * made under. Every check runs before db_path is created; the records go in in one
 * transaction; on failure db_path does not exist afterwards. The audit log of the new database
 * starts with a "db.load" row by actor (NULL: "uid N"). Errors name the dump's line:
 * CK_ERR_DECODE (syntax, order, limits), CK_ERR_UNSUPPORTED (format version),
 * CK_ERR_INTEGRITY (truncated, checksum or counts wrong, stash or a key not matching). */
int ck_store_load(const char *db_uri, const char *stash_path, const char *in_path,
                  const char *actor, ck_store_dump_info *info);

/* `db load --replace`: replaces the realm at db_path (which must exist) by the dump, through a
 * new database loaded beside it (ck_store_load, with db_path's stash) and ck_store_restore of that
 * (restore_flags: CK_RESTORE_FORCE), so the replacement has the restore's guarantees: every check
 * before any write, one write transaction on the live file, the change counter moved past both
 * states (running KDCs drop every cached record), the live audit log kept with a "db.restore"
 * row. The temporary database is removed. rinfo may be NULL. */
int ck_store_load_replace(const char *db_path, const char *stash_path, const char *in_path,
                          unsigned restore_flags, const char *actor, ck_store_dump_info *info,
                          ck_store_restore_info *rinfo);

#endif
