/* The temporary realm the store-level unit tests share: a fresh directory under /tmp holding a
 * new realm's database (db) and its stash (stash = db + ".stash", where ck_store_open looks by
 * default), removed with everything in it by fixture_down. One realm at a time per test binary.
 * Include after ck_test.h. */
#ifndef CK_STORE_FIXTURE_H
#define CK_STORE_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "cablekey/store.h"
#include "cablekey/util.h"
#include "pg_fixture.h"

static char dir[64], db[128], stash[sizeof(db) + sizeof(".stash")];

/* PostgreSQL mode (pg_fixture.h, k9pgdump): the realm goes into the throw-away server's
 * database instead of a file (db holds the URI, the stash stays in the temp dir), emptied
 * before the realm is made and by fixture_down. */
/* tag names the directory (/tmp/ck-TAG-XXXXXX), so a leftover says which test left it. */
static inline void
store_fixture_up(const char *tag, const char *realm, const int32_t *enctypes, size_t n)
{
    snprintf(dir, sizeof(dir), "/tmp/ck-%s-XXXXXX", tag);
    if (mkdtemp(dir) == NULL)
        abort();
    snprintf(db, sizeof(db), "%s/kdc.db", dir);
    snprintf(stash, sizeof(stash), "%s.stash", db);
    ck_test_store_location(db, sizeof(db));
    CHECK_OK(ck_store_init_realm(db, stash, realm, enctypes, n, 0, 0));
}

static inline void
fixture_down(void)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "  could not remove %s\n", dir);
    if (ck_test_store_pg())
        ck_test_store_pg_reset();
}

/* The database at path, read-write with its default stash (the fixture's stash for the
 * fixture's PostgreSQL database, which has no default); a test cannot go on without it. */
static inline ck_store *
fixture_open(const char *path)
{
    ck_store *s = NULL;

    CHECK_OK(ck_store_open(path, ck_test_store_pg() && strcmp(path, db) == 0 ? stash : NULL, 0,
                           &s));
    if (s == NULL)
        abort();
    return s;
}

/* A new record for name: kvno 1, attrs, keys derived from pw (random keys if pw is NULL) for
 * each enctype. The caller sets what else it needs, creates it and frees it. */
static inline ck_db_principal *
fixture_principal(const char *name, const char *pw, uint32_t attrs, const int32_t *enctypes,
                  size_t n)
{
    ck_db_principal *p = NULL;

    CHECK_OK(ck_db_principal_new(name, &p));
    if (p == NULL)
        abort();
    p->kvno = 1;
    p->attributes = attrs;
    CHECK_OK(ck_db_keys_make(name, pw, pw ? strlen(pw) : 0, enctypes, n, 1, &p->keys,
                             &p->n_keys));
    return p;
}

/* Adds an active device of principal; pin NULL = unpinned. Returns the store's result. */
static inline int
fixture_add_device(ck_store *s, const char *mac, const char *principal, const uint8_t *pin,
                   const char *comment)
{
    ck_db_device d;

    memset(&d, 0, sizeof(d));
    ck_strlcpy(d.mac, mac, sizeof(d.mac));
    d.principal = (char *)principal;
    d.comment = (char *)comment;
    d.state = CK_DEVICE_ACTIVE;
    if (pin != NULL) {
        d.has_pin = true;
        memcpy(d.spki_sha256, pin, sizeof(d.spki_sha256));
    }
    return ck_store_add_device(s, &d);
}

/* Puts the database file `from` (a hand-made older schema) in place of db, with no -wal or
 * -shm of the old one left to be replayed onto it. */
static inline void
fixture_replace_db(const char *from)
{
    char path[sizeof(db) + 8];

    snprintf(path, sizeof(path), "%s-wal", db);
    unlink(path);
    snprintf(path, sizeof(path), "%s-shm", db);
    unlink(path);
    CHECK(rename(from, db) == 0);
}

/* Rewrites the fixture database as one of an older schema (the n statements of schema, version
 * `version`) holding the same realm, principals and keys; changelog_cols: the change-log columns
 * that version has. */
static inline void
fixture_old_schema(const char *file, const char *const *schema, size_t n, int version,
                   const char *changelog_cols)
{
    char path[160], sql[1024];
    sqlite3 *raw = NULL;

    snprintf(path, sizeof(path), "%s/%s", dir, file);
    CHECK(sqlite3_open(path, &raw) == SQLITE_OK);
    for (size_t i = 0; i < n; i++)
        CHECK(sqlite3_exec(raw, schema[i], NULL, NULL, NULL) == SQLITE_OK);
    snprintf(sql, sizeof(sql), "ATTACH '%s' AS cur", db);
    CHECK(sqlite3_exec(raw, sql, NULL, NULL, NULL) == SQLITE_OK);
    snprintf(sql, sizeof(sql),
             "INSERT INTO schema_version VALUES (%d);"
             "INSERT INTO realm SELECT id, name, enctypes, max_life, max_renew,"
             " master_kvno FROM cur.realm;"
             "INSERT INTO master_key SELECT * FROM cur.master_key;"
             "INSERT INTO generation SELECT * FROM cur.generation;"
             "INSERT INTO changelog SELECT %s FROM cur.changelog;"
             "INSERT INTO principal SELECT id, name, attributes, max_life, max_renew,"
             " expires, pw_expires, kvno, created, modified FROM cur.principal;"
             "INSERT INTO key SELECT * FROM cur.key;"
             "DETACH cur; PRAGMA journal_mode = WAL;",
             version, changelog_cols);
    CHECK(sqlite3_exec(raw, sql, NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(raw);
    fixture_replace_db(path);
}

/* sqlite_master of a database, one line per object, for comparing schemas; free() it. */
static inline char *
schema_dump(const char *path)
{
    enum { DUMP_SIZE = 32768 };
    sqlite3 *raw = NULL;
    sqlite3_stmt *q = NULL;
    char *out = calloc(1, DUMP_SIZE);
    size_t n = 0;

    if (out == NULL)
        abort();
    CHECK(sqlite3_open_v2(path, &raw, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK);
    CHECK(sqlite3_prepare_v2(raw, "SELECT type, name, sql FROM sqlite_master ORDER BY name", -1,
                             &q, NULL) == SQLITE_OK);
    while (q != NULL && sqlite3_step(q) == SQLITE_ROW && n < DUMP_SIZE - 768)
        n += (size_t)snprintf(out + n, DUMP_SIZE - n, "%s %s %s\n", sqlite3_column_text(q, 0),
                              sqlite3_column_text(q, 1),
                              sqlite3_column_text(q, 2) ? (const char *)sqlite3_column_text(q, 2)
                                                        : "-");
    sqlite3_finalize(q);
    sqlite3_close(raw);
    return out;
}

#endif
