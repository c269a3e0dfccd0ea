/* SQLite backend: the schema, its migrations, principals, keys and devices. SQL lives only in the
 * lib/store/sqlite*.c files (helpers in sqlite_int.h). WAL journal, synchronous=NORMAL, a busy
 * timeout, one connection per backend object (SQLITE_OPEN_NOMUTEX: the caller serializes). The
 * hot-path statements (principal and key lookup, generation) are prepared once at open. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <string.h>

#include <sqlite3.h>

#include "cablekey/error.h"
#include "cablekey/util.h"
#include "store/sqlite_int.h"

#define SQLITE_SCHEMA_VERSION 8
#define SQLITE_BUSY_TIMEOUT_MS 5000
/* Change log rows kept; a cache further behind than this flushes everything. */
#define SQLITE_CHANGELOG_KEEP 10000
/* A cache that sees more changes than this at once flushes everything instead. */
#define SQLITE_CHANGES_MAX 1000



/* Schema history. New databases are created at version 1 and migrated in the same transaction,
 * so a fresh database and an upgraded one are the same by construction. Never edit a released
 * step: add one. */
static const char *const schema_v1[] = {
    "CREATE TABLE schema_version(version INTEGER NOT NULL)",
    "CREATE TABLE realm("
    " id INTEGER PRIMARY KEY CHECK (id = 1),"
    " name TEXT NOT NULL,"
    " enctypes TEXT NOT NULL,"          /* comma-separated enctype numbers, preference order */
    " max_life INTEGER NOT NULL,"
    " max_renew INTEGER NOT NULL,"
    " master_kvno INTEGER NOT NULL)",
    "CREATE TABLE master_key("
    " kvno INTEGER PRIMARY KEY,"
    " enctype INTEGER NOT NULL,"
    " check_value BLOB NOT NULL,"       /* a constant encrypted under the master key */
    " created INTEGER NOT NULL)",
    "CREATE TABLE generation(id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL)",
    "CREATE TABLE changelog(generation INTEGER PRIMARY KEY, name TEXT)",
    "CREATE TABLE principal("
    " id INTEGER PRIMARY KEY,"
    " name TEXT NOT NULL UNIQUE,"
    " attributes INTEGER NOT NULL,"
    " max_life INTEGER NOT NULL,"
    " max_renew INTEGER NOT NULL,"
    " expires INTEGER NOT NULL,"
    " pw_expires INTEGER NOT NULL,"
    " kvno INTEGER NOT NULL,"
    " created INTEGER NOT NULL,"
    " modified INTEGER NOT NULL)",
    "CREATE TABLE key("
    " principal_id INTEGER NOT NULL REFERENCES principal(id) ON DELETE CASCADE,"
    " kvno INTEGER NOT NULL,"
    " enctype INTEGER NOT NULL,"
    " ord INTEGER NOT NULL,"            /* position within the kvno (enctype preference) */
    " salt_type INTEGER NOT NULL,"
    " salt BLOB,"
    " mkvno INTEGER NOT NULL,"
    " key_enc BLOB NOT NULL,"
    " PRIMARY KEY (principal_id, kvno, enctype))",
    "INSERT INTO generation(id, value) VALUES (1, 0)",
    "INSERT INTO schema_version(version) VALUES (1)",
    NULL,
};

/* 1 -> 2: the device table. The change log learns what an entry names; rows written before
 * (and by a version-1 binary still running against the upgraded file) name principals, hence
 * the default. */
static const char *const schema_1_to_2[] = {
    "ALTER TABLE changelog ADD COLUMN kind INTEGER NOT NULL DEFAULT 1",
    "CREATE TABLE device("
    " mac TEXT NOT NULL PRIMARY KEY CHECK (length(mac) = 17),"
    " principal TEXT NOT NULL REFERENCES principal(name),"
    " state INTEGER NOT NULL,"
    " spki_sha256 BLOB CHECK (spki_sha256 IS NULL OR length(spki_sha256) = 32),"
    " created INTEGER NOT NULL,"
    " modified INTEGER NOT NULL,"
    " revoked INTEGER NOT NULL DEFAULT 0,"
    " generation INTEGER NOT NULL,"     /* the change counter at the row's last change */
    " comment TEXT NOT NULL DEFAULT '') WITHOUT ROWID",
    "CREATE INDEX device_principal ON device(principal, mac)",
    NULL,
};

/* 2 -> 3: the audit log (sqlite_audit.c), bounded by audit_retention (defaults as in store.h:
 * CK_AUDIT_KEEP_ROWS rows, CK_AUDIT_KEEP_DAYS days). */
static const char *const schema_2_to_3[] = {
    "CREATE TABLE audit("
    " id INTEGER PRIMARY KEY,"
    " time INTEGER NOT NULL,"
    " actor TEXT NOT NULL,"
    " action TEXT NOT NULL,"
    " object TEXT NOT NULL DEFAULT '',"
    " detail TEXT NOT NULL DEFAULT '',"
    " generation INTEGER NOT NULL)",
    "CREATE INDEX audit_time ON audit(time)",
    "CREATE INDEX audit_object ON audit(object, id)",
    "CREATE TABLE audit_retention("
    " id INTEGER PRIMARY KEY CHECK (id = 1),"
    " keep_rows INTEGER NOT NULL CHECK (keep_rows BETWEEN 1 AND 10000000),"
    " keep_days INTEGER NOT NULL CHECK (keep_days BETWEEN 0 AND 36500))",
    "INSERT INTO audit_retention(id, keep_rows, keep_days) VALUES (1, 100000, 365)",
    NULL,
};

/* 3 -> 4: realm defaults for new principals (`cablekey realm modify`). 128 is
 * CK_ATTR_REQUIRES_PREAUTH, what `principal add` always gave before. */
static const char *const schema_3_to_4[] = {
    "ALTER TABLE realm ADD COLUMN default_attributes INTEGER NOT NULL DEFAULT 128",
    NULL,
};

/* migrations[v - 1] takes a database from version v to v + 1. */
static const char *const *const migrations[] = {schema_1_to_2, schema_2_to_3, schema_3_to_4,
                                                sq_schema_policy,
                                                sq_schema_rotation /* k9rot */,
                                                sq_schema_alarm /* 6 -> 7: alarms (k9alarmw) */,
                                                sq_schema_prov /* 7 -> 8: provisioning (issue 10) */};
_Static_assert(sizeof(migrations) / sizeof(migrations[0]) + 1 == SQLITE_SCHEMA_VERSION,
               "one migration per schema version");

/* What the operator should know about a failed statement, in their terms: the database file
 * and what to do, never SQL or SQLite's internal wording. code is the primary result code. */
static int
sq_describe(struct sqlite_be *be, int code, const char *what, const char *detail)
{
    const char *path = be->db != NULL ? sqlite3_db_filename(be->db, "main") : NULL;
    int sys = be->db != NULL ? sqlite3_system_errno(be->db) : 0;

    if (path == NULL || *path == '\0')
        path = "(unnamed)";
    switch (code) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return ck_error_set(CK_ERR_DB,
                            "database %s is busy: another writer holds it; retry, or stop the "
                            "other writer", path);
    case SQLITE_NOTADB:
        return ck_error_set(CK_ERR_DB, "%s is not a cablekey database (not an SQLite file)",
                            path);
    case SQLITE_CORRUPT:
        return ck_error_set(CK_ERR_DB, "database %s is damaged: restore it from a backup", path);
    case SQLITE_READONLY:
        return ck_error_set(CK_ERR_PERM,
                            "%s: database %s is read-only (opened read-only, or no write "
                            "permission on the file or its directory)", what, path);
    case SQLITE_PERM:
    case SQLITE_AUTH:
        return ck_error_set(CK_ERR_PERM, "database %s: permission denied", path);
    case SQLITE_CANTOPEN:
        return ck_error_set(sys == EACCES || sys == EPERM ? CK_ERR_PERM : CK_ERR_IO,
                            "database %s: cannot open: %s", path,
                            sys != 0 ? strerror(sys) : "no reason given");
    case SQLITE_FULL:
        return ck_error_set(CK_ERR_IO, "database %s: the disk is full", path);
    case SQLITE_IOERR:
        if (sys == EACCES || sys == EPERM)
            return ck_error_set(CK_ERR_PERM,
                                "database %s: permission denied (%s; the database needs read "
                                "and write access to the file and its directory)", path,
                                strerror(sys));
        return ck_error_set(CK_ERR_IO, "database %s: I/O error%s%s", path, sys ? ": " : "",
                            sys ? strerror(sys) : "");
    case SQLITE_CONSTRAINT:
        return ck_error_set(CK_ERR_DB, "%s: refused by the database (%s)", what, detail);
    default:
        return ck_error_set(CK_ERR_DB, "%s: database error in %s: %s", what, path, detail);
    }
}

int
sq_error(struct sqlite_be *be, const char *what)
{
    return sq_describe(be, sqlite3_errcode(be->db), what, sqlite3_errmsg(be->db));
}

int
sq_exec(struct sqlite_be *be, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(be->db, sql, NULL, NULL, &msg);

    if (rc != SQLITE_OK) {
        /* The statement text is internal: only the unexpected cases (a bug, a schema that is
         * not ours) keep it, after the message, for whoever debugs it. */
        char detail[512];
        int ret;

        snprintf(detail, sizeof(detail), "%s [%s]", msg != NULL ? msg : sqlite3_errstr(rc),
                 sql);
        ret = sq_describe(be, rc & 0xff, "database", detail);
        sqlite3_free(msg);
        return ret;
    }
    return 0;
}

int
sq_prepare(struct sqlite_be *be, const char *sql, sqlite3_stmt **st)
{
    if (sqlite3_prepare_v2(be->db, sql, -1, st, NULL) != SQLITE_OK)
        return sq_error(be, "prepare");
    return 0;
}

int
sq_bind(struct sqlite_be *be, sqlite3_stmt *st, const char *what, const struct sql_arg *a,
        size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int idx = (int)i + 1, rc;

        switch (a[i].type) {
        case SQL_INT:
            rc = sqlite3_bind_int64(st, idx, a[i].i);
            break;
        case SQL_TEXT:
            rc = a[i].s != NULL ? sqlite3_bind_text(st, idx, a[i].s, -1, SQLITE_STATIC)
                                : sqlite3_bind_null(st, idx);
            break;
        case SQL_BLOB:
            /* SQLite lengths are ints; nothing cablekey stores comes close. */
            if (a[i].len > (size_t)INT32_MAX)
                return ck_error_set(CK_ERR_LIMIT, "%s: parameter %d too large", what, idx);
            rc = sqlite3_bind_blob(st, idx, a[i].p, (int)a[i].len, SQLITE_STATIC);
            break;
        case SQL_NULL:
        default:
            rc = sqlite3_bind_null(st, idx);
            break;
        }
        if (rc != SQLITE_OK)
            return ck_error_set(rc == SQLITE_NOMEM ? CK_ERR_NOMEM : CK_ERR_DB,
                                "%s: bind parameter %d: %s", what, idx, sqlite3_errstr(rc));
    }
    return 0;
}

int
sq_reuse(struct sqlite_be *be, sqlite3_stmt *st, const char *what, const struct sql_arg *a,
         size_t n)
{
    int ret;

    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if ((ret = sq_bind(be, st, what, a, n)) != 0)
        sqlite3_clear_bindings(st);
    return ret;
}

void
sq_release(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

int
sq_run(struct sqlite_be *be, const char *what, const char *sql, const struct sql_arg *a,
       size_t n)
{
    return sq_run_cached(be, what, sql, a, n);
}

int
sq_query(struct sqlite_be *be, const char *what, const char *sql, const struct sql_arg *a,
         size_t n, sqlite3_stmt **out)
{
    int ret;

    *out = NULL;
    if ((ret = sq_prepare(be, sql, out)) != 0)
        return ret;
    if ((ret = sq_bind(be, *out, what, a, n)) != 0) {
        sqlite3_finalize(*out);
        *out = NULL;
    }
    return ret;
}

int
sq_begin_write(struct sqlite_be *be)
{
    if (be->readonly)
        return ck_error_set(CK_ERR_PERM, "database opened read-only");
    be->audit_written = false;
    /* IMMEDIATE takes the write lock now, so read-then-write sequences cannot deadlock. */
    return sq_exec(be, "BEGIN IMMEDIATE");
}

int
sq_end_write(struct sqlite_be *be, int ret)
{
    /* The pending audit action named this transaction only. */
    if (be->audit != NULL)
        be->audit->pending = false;
    if (ret == 0)
        return sq_exec(be, "COMMIT");
    sqlite3_exec(be->db, "ROLLBACK", NULL, NULL, NULL);
    return ret;
}


/* The counter after the bump; init_schema bumps before the kept statements exist. */
static int
bumped_value(struct sqlite_be *be, uint64_t *value)
{
    sqlite3_stmt *st = NULL;
    int ret = 0;

    if (be->get_gen != NULL)
        return sqlite_generation(be, value);
    if ((ret = sq_prepare(be, "SELECT value FROM generation WHERE id = 1", &st)) != 0)
        return ret;
    if (sqlite3_step(st) == SQLITE_ROW)
        *value = (uint64_t)sqlite3_column_int64(st, 0);
    else
        ret = sq_error(be, "generation");
    sqlite3_finalize(st);
    return ret;
}

int
sq_bump_generation(struct sqlite_be *be, enum ck_store_change_kind kind, const char *key,
                   uint64_t *gen)
{
    uint64_t value = 0;
    int ret;

    if ((ret = sq_run(be, "generation", "UPDATE generation SET value = value + 1 WHERE id = 1",
                      NULL, 0)) != 0 ||
        (ret = sq_run(be, "changelog",
                       "INSERT INTO changelog(generation, name, kind) "
                       "SELECT value, ?, ? FROM generation WHERE id = 1",
                       ARGS(A_TEXT(key), A_INT(key != NULL ? kind : CK_CHANGE_ALL)))) != 0 ||
        (ret = sq_run(be, "trim changelog",
                       "DELETE FROM changelog WHERE generation <= "
                       "(SELECT value FROM generation WHERE id = 1) - ?",
                       ARGS(A_INT(SQLITE_CHANGELOG_KEEP)))) != 0 ||
        (ret = bumped_value(be, &value)) != 0 ||
        (ret = sq_audit_write(be, kind, key, value)) != 0)
        return ret;
    if (gen != NULL)
        *gen = value;
    return 0;
}

static void
sqlite_close(void *arg)
{
    struct sqlite_be *be = arg;

    if (be == NULL)
        return;
    sqlite3_finalize(be->get_princ);
    sqlite3_finalize(be->get_keys);
    sqlite3_finalize(be->get_gen);
    sqlite3_finalize(be->get_dev);
    sq_prov_cache_free(be);
    sqlite3_close(be->db);
    free(be);
}

static int
read_schema_version(struct sqlite_be *be, int *version)
{
    sqlite3_stmt *st = NULL;
    int rc, ret = 0;

    if (sqlite3_prepare_v2(be->db, "SELECT version FROM schema_version", -1, &st, NULL) !=
        SQLITE_OK) {
        /* SQLITE_ERROR here is "no such table": an SQLite file, but not ours. */
        if (sqlite3_errcode(be->db) == SQLITE_ERROR)
            ret = ck_error_set(CK_ERR_DB, "%s is not a cablekey database (no cablekey schema)",
                               sqlite3_db_filename(be->db, "main"));
        else
            ret = sq_error(be, "schema version");
        goto out;
    }
    if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
        if (rc == SQLITE_DONE)
            ret = ck_error_set(CK_ERR_DB, "%s is not a cablekey database (no schema version)",
                               sqlite3_db_filename(be->db, "main"));
        else
            ret = sq_error(be, "schema version");
        goto out;
    }
    *version = sqlite3_column_int(st, 0);
out:
    sqlite3_finalize(st);
    return ret;
}

/* Runs the migrations from `from` to the current version inside the caller's transaction. */
static int
apply_migrations(struct sqlite_be *be, int from)
{
    int ret;

    for (int v = from; v < SQLITE_SCHEMA_VERSION; v++) {
        for (const char *const *sql = migrations[v - 1]; *sql != NULL; sql++) {
            if ((ret = sq_exec(be, *sql)) != 0)
                return ret;
        }
    }
    return sq_run(be, "schema_version", "UPDATE schema_version SET version = ?",
                   ARGS(A_INT(SQLITE_SCHEMA_VERSION)));
}

/* Brings an older database to the current schema, in one transaction; refuses newer ones. */
static int
upgrade_schema(struct sqlite_be *be)
{
    int version = 0, ret;

    if ((ret = read_schema_version(be, &version)) != 0)
        return ret;
    if (version == SQLITE_SCHEMA_VERSION)
        return 0;
    if (version < 1 || version > SQLITE_SCHEMA_VERSION)
        return ck_error_set(CK_ERR_UNSUPPORTED,
                            "database schema version %d, this cablekey knows 1 to %d", version,
                            SQLITE_SCHEMA_VERSION);
    if (be->readonly)
        return ck_error_set(CK_ERR_UNSUPPORTED,
                            "database schema version %d needs an upgrade to %d, which a "
                            "read-only open cannot do: run a cablekey command that writes, or "
                            "start cablekey-kdc, once", version, SQLITE_SCHEMA_VERSION);
    if ((ret = sq_begin_write(be)) != 0)
        return ret;
    /* Another process may have upgraded it while we waited for the lock. */
    if ((ret = read_schema_version(be, &version)) == 0 && version != SQLITE_SCHEMA_VERSION)
        ret = apply_migrations(be, version);
    if (ret != 0)
        ret = ck_error_set(ret, "upgrading the database schema from version %d to %d: %s",
                           version, SQLITE_SCHEMA_VERSION, ck_error_context());
    return sq_end_write(be, ret);
}

/* The statements every lookup uses, prepared once per connection. */
static int
prepare_hot(struct sqlite_be *be)
{
    int ret;

    if ((ret = sq_prepare(be,
                       "SELECT p.id, p.name, p.attributes, p.max_life, p.max_renew, p.expires,"
                       " p.pw_expires, p.kvno, p.created, p.modified, " SQ_PRINCIPAL_POLICY_COLUMNS
                       " FROM principal p " SQ_PRINCIPAL_POLICY_JOIN " WHERE p.name = ?",
                       &be->get_princ)) != 0 ||
        (ret = sq_prepare(be,
                       "SELECT kvno, enctype, salt_type, salt, mkvno, key_enc FROM key"
                       " WHERE principal_id = ? ORDER BY kvno DESC, ord ASC",
                       &be->get_keys)) != 0 ||
        (ret = sq_prepare(be, "SELECT value FROM generation WHERE id = 1", &be->get_gen)) != 0 ||
        (ret = sq_prepare(be,
                       "SELECT mac, principal, state, spki_sha256, created, modified, revoked,"
                       " generation, comment, cert_sha256 FROM device WHERE mac = ?",
                       &be->get_dev)) != 0)
        return ret;
    return 0;
}

static int
check_db_file(const char *path, bool readonly)
{
    struct stat st;

    if (stat(path, &st) != 0)
        return ck_error_set(errno == ENOENT ? CK_ERR_NOTFOUND
                            : errno == EACCES ? CK_ERR_PERM : CK_ERR_IO,
                            "database %s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return ck_error_set(CK_ERR_IO, "database %s: cannot open: not a regular file", path);
    if (access(path, readonly ? R_OK : R_OK | W_OK) != 0)
        return ck_error_set(errno == EACCES || errno == EPERM ? CK_ERR_PERM : CK_ERR_IO,
                            "database %s: cannot open%s: %s (uid %u)", path,
                            readonly ? "" : " for writing", strerror(errno),
                            (unsigned)geteuid());
    return 0;
}

/* A new database file: O_EXCL closes the race with a concurrent init (and refuses a symlink
 * planted at the name), and mode 0600 keeps even the encrypted keys away from other users. */
static int
create_db_file(const char *path)
{
    struct stat st;
    int fd;

    if (lstat(path, &st) == 0)
        return ck_error_set(CK_ERR_EXISTS, "database %s already exists", path);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return ck_error_set(errno == EEXIST ? CK_ERR_EXISTS : CK_ERR_IO, "database %s: %s", path,
                            strerror(errno));
    close(fd);
    return 0;
}

/* Undoes create_db_file after a failed init: the file and what SQLite put beside it. */
static void
sqlite_discard(const char *path)
{
    static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
    size_t n = strlen(path);
    char *p = malloc(n + 16);

    if (p == NULL)
        return;
    for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
        memcpy(p, path, n);
        memcpy(p + n, suffix[i], strlen(suffix[i]) + 1);
        unlink(p);
    }
    free(p);
}

/* The stash beside the file: PATH.stash. */
static int
sqlite_default_stash(const char *path, char **out)
{
    size_t n = strlen(path);
    char *st = malloc(n + sizeof(".stash"));

    *out = NULL;
    if (st == NULL)
        return ck_error_set(CK_ERR_NOMEM, "stash path");
    memcpy(st, path, n);
    memcpy(st + n, ".stash", sizeof(".stash"));
    *out = st;
    return 0;
}

static int
sqlite_open(const char *path, unsigned flags, bool create, void **out)
{
    struct sqlite_be *be = NULL;
    int oflags = SQLITE_OPEN_NOMUTEX;
    int rc, ret = 0;

    *out = NULL;
    if (create && (ret = create_db_file(path)) != 0)
        return ret; /* not ours: nothing to discard */
    be = calloc(1, sizeof(*be));
    if (be == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "sqlite backend");
        goto out;
    }
    be->readonly = (flags & CK_STORE_READONLY) != 0 && !create;
    oflags |= be->readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
    /* SQLite opens lazily and says only "unable to open database file": ask the system first,
     * so the operator reads the reason (missing, permission, a directory...). */
    if (!create && (ret = check_db_file(path, be->readonly)) != 0)
        goto out;
    rc = sqlite3_open_v2(path, &be->db, oflags, NULL);
    if (rc != SQLITE_OK) {
        int sys = be->db != NULL ? sqlite3_system_errno(be->db) : 0;
        ret = ck_error_set(sys == ENOENT ? CK_ERR_NOTFOUND
                           : (sys == EACCES || sys == EPERM) ? CK_ERR_PERM : CK_ERR_DB,
                           "database %s: cannot open: %s", path,
                           sys != 0 ? strerror(sys) : sqlite3_errstr(rc));
        goto out;
    }
    sqlite3_extended_result_codes(be->db, 0);
    sqlite3_busy_timeout(be->db, SQLITE_BUSY_TIMEOUT_MS);
    if ((ret = sq_exec(be, "PRAGMA foreign_keys = ON")) != 0)
        goto out;
    if (create && (ret = sq_exec(be, "PRAGMA journal_mode = WAL")) != 0)
        goto out;
    if ((ret = sq_exec(be, "PRAGMA synchronous = NORMAL")) != 0)
        goto out;
    if (!create) {
        if ((ret = upgrade_schema(be)) != 0 || (ret = prepare_hot(be)) != 0)
            goto out;
    }
    *out = be;
    be = NULL;
out:
    sqlite_close(be);
    if (ret != 0 && create)
        sqlite_discard(path);
    return ret;
}

int
sq_format_enctypes(const int32_t *enctypes, size_t n_enctypes, char *buf, size_t size)
{
    size_t pos = 0;

    if (size == 0)
        return ck_error_set(CK_ERR_LIMIT, "enctype list");
    buf[0] = '\0';
    for (size_t i = 0; i < n_enctypes && i < CK_STORE_MAX_ENCTYPES; i++) {
        int n = snprintf(buf + pos, size - pos, "%s%d", i ? "," : "", (int)enctypes[i]);
        if (n < 0 || (size_t)n >= size - pos)
            return ck_error_set(CK_ERR_LIMIT, "enctype list");
        pos += (size_t)n;
    }
    return 0;
}

static int
sqlite_init_schema(void *arg, const ck_realm_info *realm, const struct ck_store_mkey_row *mkey,
                   int64_t now)
{
    struct sqlite_be *be = arg;
    char enctypes[SQ_ENCTYPE_LIST_SIZE];
    int ret;

    if ((ret = sq_format_enctypes(realm->enctypes, realm->n_enctypes, enctypes,
                                  sizeof(enctypes))) != 0)
        return ret;
    if ((ret = sq_begin_write(be)) != 0)
        return ret;
    for (const char *const *sql = schema_v1; *sql != NULL; sql++) {
        if ((ret = sq_exec(be, *sql)) != 0)
            goto out;
    }
    if ((ret = apply_migrations(be, 1)) != 0 ||
        (ret = sq_run(be, "realm",
                       "INSERT INTO realm(id, name, enctypes, max_life, max_renew, master_kvno)"
                       " VALUES (1, ?, ?, ?, ?, ?)",
                       ARGS(A_TEXT(realm->name), A_TEXT(enctypes), A_INT(realm->max_life),
                            A_INT(realm->max_renew), A_INT(mkey->kvno)))) != 0 ||
        (ret = sq_run(be, "master_key",
                       "INSERT INTO master_key(kvno, enctype, check_value, created)"
                       " VALUES (?, ?, ?, ?)",
                       ARGS(A_INT(mkey->kvno), A_INT(mkey->enctype),
                            A_BLOB(mkey->check, mkey->check_len), A_INT(now)))) != 0)
        goto out;
    ret = sq_bump_generation(be, CK_CHANGE_ALL, NULL, NULL);
out:
    ret = sq_end_write(be, ret);
    if (ret != 0)
        return ret;
    /* Now that the tables exist, prepare the hot-path statements as a normal open does. */
    return prepare_hot(be);
}

static int
parse_enctype_list(const char *s, ck_realm_info *realm)
{
    realm->n_enctypes = 0;
    while (s != NULL && *s != '\0') {
        const char *comma = strchr(s, ',');
        size_t n = comma ? (size_t)(comma - s) : strlen(s);
        char num[16];
        int64_t v;

        if (n == 0 || n >= sizeof(num) || realm->n_enctypes >= CK_STORE_MAX_ENCTYPES)
            return ck_error_set(CK_ERR_DB, "realm enctype list malformed");
        memcpy(num, s, n);
        num[n] = '\0';
        if (ck_parse_int64(num, INT32_MIN, INT32_MAX, &v) != 0)
            return ck_error_set(CK_ERR_DB, "realm enctype list malformed");
        realm->enctypes[realm->n_enctypes++] = (int32_t)v;
        s = comma ? comma + 1 : NULL;
    }
    return 0;
}

static int
sqlite_load_realm(void *arg, ck_realm_info *realm, struct ck_store_mkey_row *mkey)
{
    struct sqlite_be *be = arg;
    sqlite3_stmt *st = NULL;
    const char *name, *enc;
    const void *blob;
    int ret = 0, n;

    memset(mkey, 0, sizeof(*mkey));
    if ((ret = sq_prepare(be, "SELECT name, enctypes, max_life, max_renew, master_kvno,"
                           " default_attributes FROM realm WHERE id = 1", &st)) != 0)
        return ret;
    if (sqlite3_step(st) != SQLITE_ROW) {
        ret = ck_error_set(CK_ERR_DB, "realm row missing");
        goto out;
    }
    name = (const char *)sqlite3_column_text(st, 0);
    enc = (const char *)sqlite3_column_text(st, 1);
    if (name == NULL || enc == NULL || ck_strlcpy(realm->name, name, sizeof(realm->name)) >=
                                           sizeof(realm->name)) {
        ret = ck_error_set(CK_ERR_DB, "realm row malformed");
        goto out;
    }
    if ((ret = parse_enctype_list(enc, realm)) != 0)
        goto out;
    realm->max_life = sqlite3_column_int64(st, 2);
    realm->max_renew = sqlite3_column_int64(st, 3);
    realm->master_kvno = (uint32_t)sqlite3_column_int64(st, 4);
    realm->default_attributes = (uint32_t)sqlite3_column_int64(st, 5);
    sqlite3_finalize(st);
    st = NULL;

    if ((ret = sq_query(be, "master key", "SELECT kvno, enctype, check_value FROM master_key"
                         " WHERE kvno = ?", ARGS(A_INT(realm->master_kvno)), &st)) != 0)
        goto out;
    if (sqlite3_step(st) != SQLITE_ROW) {
        ret = ck_error_set(CK_ERR_DB, "master key kvno %u missing", realm->master_kvno);
        goto out;
    }
    mkey->kvno = (uint32_t)sqlite3_column_int64(st, 0);
    mkey->enctype = sqlite3_column_int(st, 1);
    blob = sqlite3_column_blob(st, 2);
    n = sqlite3_column_bytes(st, 2);
    if (blob == NULL || n <= 0) {
        ret = ck_error_set(CK_ERR_DB, "master key check value missing");
        goto out;
    }
    mkey->check = ck_memdup(blob, (size_t)n);
    if (mkey->check == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "master key row");
        goto out;
    }
    mkey->check_len = (size_t)n;
out:
    sqlite3_finalize(st);
    return ret;
}

int
sq_column_key_row(sqlite3_stmt *st, const char *name, const char *what,
                  struct ck_store_key_row *k)
{
    const void *salt = sqlite3_column_blob(st, 3);
    int salt_len = sqlite3_column_bytes(st, 3);
    const void *enc = sqlite3_column_blob(st, 5);
    int enc_len = sqlite3_column_bytes(st, 5);

    memset(k, 0, sizeof(*k));
    if (enc == NULL || enc_len <= 0 || salt_len < 0 || salt_len > CK_STORE_MAX_SALT)
        return ck_error_set(CK_ERR_DB, "principal %s: malformed %s", name, what);
    k->kvno = (uint32_t)sqlite3_column_int64(st, 0);
    k->enctype = sqlite3_column_int(st, 1);
    k->salt_type = sqlite3_column_int(st, 2);
    k->mkvno = (uint32_t)sqlite3_column_int64(st, 4);
    if (salt != NULL && salt_len > 0) {
        k->salt = ck_memdup(salt, (size_t)salt_len);
        k->salt_len = (size_t)salt_len;
    }
    k->key_enc = ck_memdup(enc, (size_t)enc_len);
    k->key_enc_len = (size_t)enc_len;
    if (k->key_enc == NULL || (salt_len > 0 && k->salt == NULL))
        return ck_error_set(CK_ERR_NOMEM, "principal %s: %s", name, what);
    return 0;
}

static int
read_keys(struct sqlite_be *be, int64_t id, struct ck_store_princ_row *row)
{
    sqlite3_stmt *st = be->get_keys;
    int rc, ret;

    if ((ret = sq_reuse(be, st, "read keys", ARGS(A_INT(id)))) != 0)
        return ret;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct ck_store_key_row *nk;

        if (row->n_keys >= CK_STORE_MAX_KEYS) {
            ret = ck_error_set(CK_ERR_LIMIT, "principal %s: more than %d keys", row->name,
                               CK_STORE_MAX_KEYS);
            goto out;
        }
        nk = realloc(row->keys, (row->n_keys + 1) * sizeof(*nk));
        if (nk == NULL) {
            ret = ck_error_set(CK_ERR_NOMEM, "key rows");
            goto out;
        }
        row->keys = nk;
        /* Counted before it is filled: on error, the row's clear frees what it took. */
        if ((ret = sq_column_key_row(st, row->name, "key row", &row->keys[row->n_keys++])) != 0)
            goto out;
    }
    if (rc != SQLITE_DONE)
        ret = sq_error(be, "read keys");
out:
    sq_release(st);
    return ret;
}

static int
sqlite_get(void *arg, const char *name, struct ck_store_princ_row *row)
{
    struct sqlite_be *be = arg;
    sqlite3_stmt *st = be->get_princ;
    int64_t id = 0;
    int rc, ret = 0;

    memset(row, 0, sizeof(*row));
    if ((ret = sq_reuse(be, st, "get principal", ARGS(A_TEXT(name)))) != 0)
        return ret;
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        ret = ck_error_set(CK_ERR_NOTFOUND, "principal %s not found", name);
        goto out;
    }
    if (rc != SQLITE_ROW) {
        ret = sq_error(be, "get principal");
        goto out;
    }
    id = sqlite3_column_int64(st, 0);
    if (sqlite3_column_text(st, 1) != NULL)
        row->name = strdup((const char *)sqlite3_column_text(st, 1));
    if (row->name == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "principal row");
        goto out;
    }
    row->attributes = (uint32_t)sqlite3_column_int64(st, 2);
    row->max_life = sqlite3_column_int64(st, 3);
    row->max_renew = sqlite3_column_int64(st, 4);
    row->expires = sqlite3_column_int64(st, 5);
    row->pw_expires = sqlite3_column_int64(st, 6);
    row->kvno = (uint32_t)sqlite3_column_int64(st, 7);
    row->created = sqlite3_column_int64(st, 8);
    row->modified = sqlite3_column_int64(st, 9);
    if ((ret = sq_read_principal_policy(st, 10, row)) != 0)
        goto out;
    sq_release(st);
    ret = read_keys(be, id, row);
out:
    sq_release(st);
    if (ret != 0)
        ck_store_princ_row_clear(row);
    return ret;
}

int
sq_insert_keys(struct sqlite_be *be, int64_t id, const struct ck_store_key_row *keys, size_t n)
{
    sqlite3_stmt *st = NULL;
    int ret;

    if ((ret = sq_mkey_guard(be, keys, n)) != 0) /* master-key rotation: no key under a retired kvno */
        return ret;
    if ((ret = sq_prepare(be, "INSERT INTO key(principal_id, kvno, enctype, ord, salt_type, salt,"
                           " mkvno, key_enc) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", &st)) != 0)
        return ret;
    for (size_t i = 0; i < n && ret == 0; i++) {
        sqlite3_reset(st);
        ret = sq_bind(be, st, "insert key",
                        ARGS(A_INT(id), A_INT(keys[i].kvno), A_INT(keys[i].enctype), A_INT(i),
                             A_INT(keys[i].salt_type),
                             keys[i].salt_len > 0 ? A_BLOB(keys[i].salt, keys[i].salt_len)
                                                  : A_NULL,
                             A_INT(keys[i].mkvno), A_BLOB(keys[i].key_enc, keys[i].key_enc_len)));
        if (ret == 0 && sqlite3_step(st) != SQLITE_DONE)
            ret = sq_error(be, "insert key");
    }
    sqlite3_finalize(st);
    return ret;
}

int
sq_lookup_id(struct sqlite_be *be, const char *name, int64_t *id, uint32_t *kvno)
{
    sqlite3_stmt *st = NULL;
    int rc, ret;

    *id = 0;
    if ((ret = sq_query(be, "lookup principal", "SELECT id, kvno FROM principal WHERE name = ?",
                         ARGS(A_TEXT(name)), &st)) != 0)
        return ret;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *id = sqlite3_column_int64(st, 0);
        if (kvno != NULL)
            *kvno = (uint32_t)sqlite3_column_int64(st, 1);
    } else if (rc != SQLITE_DONE) {
        ret = sq_error(be, "lookup principal");
    }
    sqlite3_finalize(st);
    return ret;
}

int
sq_begin_principal_write(struct sqlite_be *be, const char *name, uint32_t kvno, int conflict,
                         int64_t *id)
{
    uint32_t cur = 0;
    int ret;

    *id = 0;
    if ((ret = sq_begin_write(be)) != 0)
        return ret;
    if ((ret = sq_lookup_id(be, name, id, &cur)) == 0 && *id == 0)
        ret = ck_error_set(CK_ERR_NOTFOUND, "principal %s not found", name);
    /* The caller computed its change from the record at kvno: another writer came first. */
    else if (ret == 0 && conflict != 0 && cur != kvno)
        ret = ck_error_set(conflict, "principal %s changed concurrently (kvno %u -> %u); retry",
                           name, kvno, cur);
    return ret == 0 ? 0 : sq_end_write(be, ret);
}

static int
sqlite_put(void *arg, const struct ck_store_princ_row *row, enum ck_store_put_mode mode,
           int64_t now)
{
    struct sqlite_be *be = arg;
    int64_t id = 0;
    int ret;

    if ((ret = sq_begin_write(be)) != 0)
        return ret;
    if ((ret = sq_lookup_id(be, row->name, &id, NULL)) != 0)
        goto out;
    if (mode == CK_PUT_CREATE && id != 0) {
        ret = ck_error_set(CK_ERR_EXISTS, "%s already exists", row->name);
        goto out;
    }
    if (mode == CK_PUT_CREATE && row->policy != NULL &&
        (ret = sq_policy_exists(be, row->policy)) != 0)
        goto out;
    if (mode == CK_PUT_UPDATE_FIELDS) {
        if (id == 0) {
            ret = ck_error_set(CK_ERR_NOTFOUND, "principal %s not found", row->name);
            goto out;
        }
        if ((ret = sq_run(be, "update principal",
                           "UPDATE principal SET attributes = ?, max_life = ?, max_renew = ?,"
                           " expires = ?, pw_expires = ?, modified = ? WHERE id = ?",
                           ARGS(A_INT(row->attributes), A_INT(row->max_life),
                                A_INT(row->max_renew), A_INT(row->expires),
                                A_INT(row->pw_expires), A_INT(now), A_INT(id)))) != 0)
            goto out;
        ret = sq_bump_generation(be, CK_CHANGE_PRINCIPAL, row->name, NULL);
        goto out;
    }
    if (id != 0) {
        /* Replace: drop the old keys, keep the row id and creation time. */
        if ((ret = sq_run(be, "replace keys", "DELETE FROM key WHERE principal_id = ?",
                           ARGS(A_INT(id)))) != 0 ||
            (ret = sq_run(be, "store principal",
                           "UPDATE principal SET attributes = ?, max_life = ?, max_renew = ?,"
                           " expires = ?, pw_expires = ?, kvno = ?, modified = ? WHERE id = ?",
                           ARGS(A_INT(row->attributes), A_INT(row->max_life),
                                A_INT(row->max_renew), A_INT(row->expires),
                                A_INT(row->pw_expires), A_INT(row->kvno), A_INT(now),
                                A_INT(id)))) != 0)
            goto out;
    } else {
        if ((ret = sq_run(be, "store principal",
                           "INSERT INTO principal(attributes, max_life, max_renew, expires,"
                           " pw_expires, kvno, modified, name, created, policy,"
                           " last_pwd_change) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           ARGS(A_INT(row->attributes), A_INT(row->max_life),
                                A_INT(row->max_renew), A_INT(row->expires),
                                A_INT(row->pw_expires), A_INT(row->kvno), A_INT(now),
                                A_TEXT(row->name), A_INT(now),
                                A_TEXT(mode == CK_PUT_CREATE ? row->policy : NULL),
                                A_INT(mode == CK_PUT_CREATE ? row->last_pwd_change : 0)))) != 0)
            goto out;
        id = sqlite3_last_insert_rowid(be->db);
    }
    if ((ret = sq_insert_keys(be, id, row->keys, row->n_keys)) != 0)
        goto out;
    ret = sq_bump_generation(be, CK_CHANGE_PRINCIPAL, row->name, NULL);
out:
    return sq_end_write(be, ret);
}

static int
sqlite_del(void *arg, const char *name)
{
    struct sqlite_be *be = arg;
    sqlite3_stmt *st = NULL;
    int rc, ret;

    if ((ret = sq_begin_write(be)) != 0)
        return ret;
    /* The foreign key would refuse it too, with a message that does not say why. */
    if ((ret = sq_query(be, "delete principal",
                         "SELECT count(*), min(mac) FROM device WHERE principal = ?",
                         ARGS(A_TEXT(name)), &st)) != 0)
        goto out;
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        ret = sq_error(be, "delete principal");
        goto out;
    }
    if (sqlite3_column_int64(st, 0) > 0) {
        ret = ck_error_set(CK_ERR_POLICY,
                           "principal %s: %lld device(s) map to it (first %s); delete them first",
                           name, (long long)sqlite3_column_int64(st, 0),
                           (const char *)sqlite3_column_text(st, 1));
        goto out;
    }
    if ((ret = sq_run(be, "delete principal", "DELETE FROM principal WHERE name = ?",
                       ARGS(A_TEXT(name)))) != 0)
        goto out;
    if (sqlite3_changes(be->db) == 0) {
        ret = ck_error_set(CK_ERR_NOTFOUND, "principal %s not found", name);
        goto out;
    }
    ret = sq_bump_generation(be, CK_CHANGE_PRINCIPAL, name, NULL);
out:
    sqlite3_finalize(st);
    return sq_end_write(be, ret);
}

static int
sqlite_list(void *arg, ck_store_list_cb cb, void *cb_arg)
{
    struct sqlite_be *be = arg;
    sqlite3_stmt *st = NULL;
    int rc, ret;

    if ((ret = sq_prepare(be, "SELECT name FROM principal ORDER BY name", &st)) != 0)
        return ret;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if ((ret = cb((const char *)sqlite3_column_text(st, 0), cb_arg)) != 0)
            break;
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = sq_error(be, "list principals");
    sqlite3_finalize(st);
    return ret;
}

static int
sqlite_rotate(void *arg, const char *name, uint32_t old_kvno, uint32_t new_kvno,
              const struct ck_store_key_row *keys, size_t n_keys, unsigned keep, int64_t now)
{
    struct sqlite_be *be = arg;
    int64_t id = 0;
    int ret;

    if ((ret = sq_begin_principal_write(be, name, old_kvno, CK_ERR_POLICY, &id)) != 0)
        return ret;
    /* Keys of the new kvno left from an earlier life of the counter would collide. */
    if ((ret = sq_run(be, "rotate", "DELETE FROM key WHERE principal_id = ? AND kvno = ?",
                       ARGS(A_INT(id), A_INT(new_kvno)))) != 0 ||
        (ret = sq_insert_keys(be, id, keys, n_keys)) != 0 ||
        (ret = sq_run(be, "rotate", "UPDATE principal SET kvno = ?, modified = ? WHERE id = ?",
                       ARGS(A_INT(new_kvno), A_INT(now), A_INT(id)))) != 0 ||
        (ret = sq_run(be, "purge old kvnos",
                       "DELETE FROM key WHERE principal_id = ?1 AND kvno NOT IN"
                       " (SELECT DISTINCT kvno FROM key WHERE principal_id = ?1"
                       "  ORDER BY kvno DESC LIMIT ?2)",
                       ARGS(A_INT(id), A_INT(keep)))) != 0)
        goto out;
    ret = sq_bump_generation(be, CK_CHANGE_PRINCIPAL, name, NULL);
out:
    return sq_end_write(be, ret);
}

int
sqlite_generation(void *arg, uint64_t *gen)
{
    struct sqlite_be *be = arg;
    sqlite3_stmt *st = be->get_gen;
    int ret = 0;

    sqlite3_reset(st);
    if (sqlite3_step(st) == SQLITE_ROW)
        *gen = (uint64_t)sqlite3_column_int64(st, 0);
    else
        ret = sq_error(be, "generation");
    sq_release(st);
    return ret;
}

static int
sqlite_changes_since(void *arg, uint64_t since, uint64_t *current, ck_store_change_cb cb,
                     void *cb_arg)
{
    struct sqlite_be *be = arg;
    sqlite3_stmt *st = NULL;
    uint64_t cur = 0, expect;
    size_t n = 0;
    int rc, ret;

    /* Reading the counter first means every logged change up to it is visible below. */
    if ((ret = sqlite_generation(be, &cur)) != 0)
        return ret;
    *current = cur;
    if (cur == since)
        return 0;
    if (cur < since || cur - since > SQLITE_CHANGES_MAX) {
        cb(CK_CHANGE_ALL, NULL, cb_arg);
        return 0;
    }
    if ((ret = sq_query(be, "changelog",
                         "SELECT generation, name, kind FROM changelog WHERE generation > ? AND"
                         " generation <= ? ORDER BY generation",
                         ARGS(A_INT(since), A_INT(cur)), &st)) != 0)
        return ret;
    expect = since + 1;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int kind = sqlite3_column_int(st, 2);

        /* A gap means the log was trimmed past us: we cannot know what changed. An entry that
         * names nothing, or a kind this version does not know, may be anything. */
        if ((uint64_t)sqlite3_column_int64(st, 0) != expect ||
            sqlite3_column_type(st, 1) == SQLITE_NULL ||
            (kind != CK_CHANGE_PRINCIPAL && kind != CK_CHANGE_DEVICE)) {
            cb(CK_CHANGE_ALL, NULL, cb_arg);
            goto out;
        }
        cb((enum ck_store_change_kind)kind, (const char *)sqlite3_column_text(st, 1), cb_arg);
        expect++;
        n++;
    }
    if (rc != SQLITE_DONE)
        ret = sq_error(be, "changelog");
    else if (n != cur - since)
        cb(CK_CHANGE_ALL, NULL, cb_arg);
out:
    sqlite3_finalize(st);
    return ret;
}

/* ---- devices ---- */

#define DEVICE_INSERT_COLUMNS                                                                  \
    "mac, principal, state, spki_sha256, created, modified, revoked, generation, comment"
/* What a read returns: the inserted columns and the operator certificate's hash (prov.h). */
#define DEVICE_COLUMNS DEVICE_INSERT_COLUMNS ", cert_sha256"

char *
sq_column_strdup(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);

    return t != NULL ? strdup((const char *)t) : NULL;
}

/* Reads the DEVICE_COLUMNS of the current row; *row is cleared on failure. */
static int
read_device_row(sqlite3_stmt *st, struct ck_store_device_row *row)
{
    const void *pin = sqlite3_column_blob(st, 3);
    int pin_len = sqlite3_column_bytes(st, 3);

    memset(row, 0, sizeof(*row));
    row->mac = sq_column_strdup(st, 0);
    row->principal = sq_column_strdup(st, 1);
    row->comment = sq_column_strdup(st, 8);
    if (row->mac == NULL || row->principal == NULL || row->comment == NULL) {
        ck_store_device_row_clear(row);
        return ck_error_set(CK_ERR_NOMEM, "device row");
    }
    if (pin != NULL) {
        if (pin_len != CK_DEVICE_SPKI_HASH_LEN) {
            ck_store_device_row_clear(row);
            return ck_error_set(CK_ERR_DB, "device row: malformed key pin");
        }
        memcpy(row->spki_sha256, pin, CK_DEVICE_SPKI_HASH_LEN);
        row->has_pin = true;
    }
    if (sqlite3_column_type(st, 9) != SQLITE_NULL) {
        if (sqlite3_column_bytes(st, 9) != 32) {
            ck_store_device_row_clear(row);
            return ck_error_set(CK_ERR_DB, "device row: malformed certificate hash");
        }
        memcpy(row->cert_sha256, sqlite3_column_blob(st, 9), 32);
        row->has_cert = true;
    }
    row->state = sqlite3_column_int(st, 2);
    row->created = sqlite3_column_int64(st, 4);
    row->modified = sqlite3_column_int64(st, 5);
    row->revoked = sqlite3_column_int64(st, 6);
    row->generation = (uint64_t)sqlite3_column_int64(st, 7);
    return 0;
}

static int
sqlite_device_get(void *arg, const char *mac, struct ck_store_device_row *row)
{
    struct sqlite_be *be = arg;
    sqlite3_stmt *st = be->get_dev;
    int rc, ret;

    memset(row, 0, sizeof(*row));
    if ((ret = sq_reuse(be, st, "get device", ARGS(A_TEXT(mac)))) != 0)
        return ret;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        ret = read_device_row(st, row);
    else if (rc == SQLITE_DONE)
        ret = ck_error_set(CK_ERR_NOTFOUND, "device %s not found", mac);
    else
        ret = sq_error(be, "get device");
    sq_release(st);
    return ret;
}

/* Inside a write transaction: the state, pin and generation of a device (CK_ERR_NOTFOUND). */
static int
device_lock_row(struct sqlite_be *be, const char *mac, int *state, bool *has_pin,
                uint8_t pin[CK_DEVICE_SPKI_HASH_LEN], uint64_t *generation)
{
    sqlite3_stmt *st = NULL;
    int rc, ret;

    if ((ret = sq_query(be, "device", "SELECT state, spki_sha256, generation FROM device"
                         " WHERE mac = ?", ARGS(A_TEXT(mac)), &st)) != 0)
        return ret;
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        ret = ck_error_set(CK_ERR_NOTFOUND, "device %s not found", mac);
    } else if (rc != SQLITE_ROW) {
        ret = sq_error(be, "device");
    } else {
        const void *p = sqlite3_column_blob(st, 1);
        *state = sqlite3_column_int(st, 0);
        *has_pin = p != NULL;
        if (p != NULL && sqlite3_column_bytes(st, 1) != CK_DEVICE_SPKI_HASH_LEN)
            ret = ck_error_set(CK_ERR_DB, "device %s: malformed key pin", mac);
        else if (p != NULL)
            memcpy(pin, p, CK_DEVICE_SPKI_HASH_LEN);
        *generation = (uint64_t)sqlite3_column_int64(st, 2);
    }
    sqlite3_finalize(st);
    return ret;
}

static int
sqlite_device_add(void *arg, const struct ck_store_device_row *row, int64_t now)
{
    struct sqlite_be *be = arg;
    uint8_t pin[CK_DEVICE_SPKI_HASH_LEN];
    uint64_t gen = 0;
    int64_t pid = 0;
    bool has_pin = false;
    int state = 0, ret;

    if ((ret = sq_begin_write(be)) != 0)
        return ret;
    ret = device_lock_row(be, row->mac, &state, &has_pin, pin, &gen);
    if (ret == 0) {
        ret = ck_error_set(CK_ERR_EXISTS, "device %s already exists", row->mac);
        goto out;
    }
    if (ret != CK_ERR_NOTFOUND)
        goto out;
    if ((ret = sq_lookup_id(be, row->principal, &pid, NULL)) != 0)
        goto out;
    if (pid == 0) {
        ret = ck_error_set(CK_ERR_NOTFOUND, "principal %s not found", row->principal);
        goto out;
    }
    if ((ret = sq_bump_generation(be, CK_CHANGE_DEVICE, row->mac, &gen)) != 0 ||
        (ret = sq_run(be, "add device",
                       "INSERT INTO device(" DEVICE_INSERT_COLUMNS ") VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)",
                       ARGS(A_TEXT(row->mac), A_TEXT(row->principal), A_INT(row->state),
                            row->has_pin ? A_BLOB(row->spki_sha256, CK_DEVICE_SPKI_HASH_LEN)
                                         : A_NULL,
                            A_INT(now), A_INT(now), A_INT(gen), A_TEXT(row->comment)))) != 0)
        goto out;
out:
    return sq_end_write(be, ret);
}

static int
sqlite_device_update(void *arg, const char *mac, enum ck_store_device_update what, int state,
                     const uint8_t *hash, int64_t now, bool *changed)
{
    struct sqlite_be *be = arg;
    uint8_t pin[CK_DEVICE_SPKI_HASH_LEN];
    uint64_t gen = 0;
    bool has_pin = false;
    int cur = 0, ret;

    *changed = false;
    if ((ret = sq_begin_write(be)) != 0)
        return ret;
    if ((ret = device_lock_row(be, mac, &cur, &has_pin, pin, &gen)) != 0)
        goto out;
    if (what == CK_DEV_SET_STATE) {
        if (cur == state)
            goto out;
        if ((ret = sq_bump_generation(be, CK_CHANGE_DEVICE, mac, &gen)) != 0 ||
            (ret = sq_run(be, "device state",
                           "UPDATE device SET state = ?, revoked = ?, modified = ?,"
                           " generation = ? WHERE mac = ?",
                           ARGS(A_INT(state), A_INT(state == CK_DEVICE_REVOKED ? now : 0),
                                A_INT(now), A_INT(gen), A_TEXT(mac)))) != 0)
            goto out;
    } else {
        if (hash == NULL ? !has_pin
                         : (has_pin && memcmp(pin, hash, CK_DEVICE_SPKI_HASH_LEN) == 0))
            goto out;
        if ((ret = sq_bump_generation(be, CK_CHANGE_DEVICE, mac, &gen)) != 0 ||
            (ret = sq_run(be, "device pin",
                           "UPDATE device SET spki_sha256 = ?, modified = ?, generation = ?"
                           " WHERE mac = ?",
                           ARGS(hash != NULL ? A_BLOB(hash, CK_DEVICE_SPKI_HASH_LEN) : A_NULL,
                                A_INT(now), A_INT(gen), A_TEXT(mac)))) != 0)
            goto out;
    }
    *changed = true;
out:
    ret = sq_end_write(be, ret);
    if (ret != 0)
        *changed = false;
    return ret;
}

static int
sqlite_device_del(void *arg, const char *mac)
{
    struct sqlite_be *be = arg;
    int ret;

    if ((ret = sq_begin_write(be)) != 0)
        return ret;
    if ((ret = sq_run(be, "delete device", "DELETE FROM device WHERE mac = ?",
                       ARGS(A_TEXT(mac)))) != 0)
        goto out;
    if (sqlite3_changes(be->db) == 0) {
        ret = ck_error_set(CK_ERR_NOTFOUND, "device %s not found", mac);
        goto out;
    }
    ret = sq_bump_generation(be, CK_CHANGE_DEVICE, mac, NULL);
out:
    return sq_end_write(be, ret);
}

static int
sqlite_device_list(void *arg, const char *principal, const char *after, size_t limit,
                   int (*cb)(const struct ck_store_device_row *row, void *cb_arg), void *cb_arg,
                   size_t *n_out)
{
    struct sqlite_be *be = arg;
    struct ck_store_device_row row;
    sqlite3_stmt *st = NULL;
    size_t n = 0;
    int rc, ret;

    *n_out = 0;
    /* Two statements rather than "? IS NULL OR ...", so each uses its index. */
    if (principal != NULL)
        ret = sq_query(be, "list devices",
                        "SELECT " DEVICE_COLUMNS " FROM device WHERE principal = ? AND mac > ?"
                        " ORDER BY mac LIMIT ?",
                        ARGS(A_TEXT(principal), A_TEXT(after != NULL ? after : ""),
                             A_INT(limit)), &st);
    else
        ret = sq_query(be, "list devices",
                        "SELECT " DEVICE_COLUMNS " FROM device WHERE mac > ? ORDER BY mac"
                        " LIMIT ?",
                        ARGS(A_TEXT(after != NULL ? after : ""), A_INT(limit)), &st);
    if (ret != 0)
        return ret;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if ((ret = read_device_row(st, &row)) != 0)
            break;
        ret = cb(&row, cb_arg);
        ck_store_device_row_clear(&row);
        n++;
        if (ret != 0)
            break;
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = sq_error(be, "list devices");
    sqlite3_finalize(st);
    *n_out = n;
    return ret;
}

static int
sqlite_device_pin_check(void *arg, const char *mac, const uint8_t *hash,
                        enum ck_device_pin_result *result, uint64_t *generation, int64_t now)
{
    struct sqlite_be *be = arg;
    uint8_t pin[CK_DEVICE_SPKI_HASH_LEN];
    uint64_t gen = 0;
    bool has_pin = false;
    int state = 0, ret;

    *result = CK_DEVICE_PIN_MISMATCH;
    if ((ret = sq_begin_write(be)) != 0)
        return ret;
    if ((ret = device_lock_row(be, mac, &state, &has_pin, pin, &gen)) != 0)
        goto out;
    if (state != CK_DEVICE_ACTIVE) {
        ret = ck_error_set(CK_ERR_POLICY, "device %s is not active (state %d)", mac, state);
        goto out;
    }
    if (has_pin) {
        *result = ck_ct_equal(pin, hash, CK_DEVICE_SPKI_HASH_LEN) ? CK_DEVICE_PIN_MATCH
                                                                  : CK_DEVICE_PIN_MISMATCH;
        goto out;
    }
    if ((ret = sq_bump_generation(be, CK_CHANGE_DEVICE, mac, &gen)) != 0 ||
        (ret = sq_run(be, "pin device",
                       "UPDATE device SET spki_sha256 = ?, modified = ?, generation = ?"
                       " WHERE mac = ?",
                       ARGS(A_BLOB(hash, CK_DEVICE_SPKI_HASH_LEN), A_INT(now), A_INT(gen),
                            A_TEXT(mac)))) != 0)
        goto out;
    *result = CK_DEVICE_PIN_SET;
out:
    ret = sq_end_write(be, ret);
    if (ret != 0)
        *result = CK_DEVICE_PIN_MISMATCH;
    else if (generation != NULL)
        *generation = gen;
    return ret;
}

static int
sqlite_wal_manual(void *arg)
{
    struct sqlite_be *be = arg;
    char sql[64];

    snprintf(sql, sizeof(sql), "PRAGMA wal_autocheckpoint = %d", CK_STORE_WAL_SAFETY_PAGES);
    return sq_exec(be, sql);
}

/* restart: also wait (briefly: the caller tries again later) for the readers of the log to
 * move to the database file, so that the next write starts the log from its beginning; a
 * reader that began after the last write and is still reading otherwise keeps the log growing.
 * *frames: the log's length before. */
#define CKPT_RESTART_WAIT_MS 20

static int
sqlite_checkpoint(void *arg, bool restart, bool *complete, int *frames)
{
    struct sqlite_be *be = arg;
    int log = 0, done = 0, rc;

    *complete = false;
    *frames = 0;
    if (restart)
        sqlite3_busy_timeout(be->db, CKPT_RESTART_WAIT_MS);
    rc = sqlite3_wal_checkpoint_v2(be->db, NULL,
                                   restart ? SQLITE_CHECKPOINT_RESTART : SQLITE_CHECKPOINT_PASSIVE,
                                   &log, &done);
    if (restart)
        sqlite3_busy_timeout(be->db, SQLITE_BUSY_TIMEOUT_MS);
    if (rc == SQLITE_BUSY) /* another checkpoint, or readers still on the log: later */
        return 0;
    if (rc != SQLITE_OK)
        return ck_error_set(CK_ERR_DB, "checkpoint: %s", sqlite3_errmsg(be->db));
    *complete = log >= 0 && done == log;
    *frames = log > 0 ? log : 0;
    return 0;
}

const struct ck_store_ops ck_store_sqlite_ops = {
    .name = "sqlite",
    .open = sqlite_open,
    .close = sqlite_close,
    .discard = sqlite_discard,
    .default_stash = sqlite_default_stash,
    .init_schema = sqlite_init_schema,
    .load_realm = sqlite_load_realm,
    .get = sqlite_get,
    .put = sqlite_put,
    .del = sqlite_del,
    .list = sqlite_list,
    .rotate = sqlite_rotate,
    .realm_modify = sqlite_realm_modify,
    .rename = sqlite_rename,
    .generation = sqlite_generation,
    .wal_manual = sqlite_wal_manual,
    .checkpoint = sqlite_checkpoint,
    .changes_since = sqlite_changes_since,
    .device_get = sqlite_device_get,
    .device_add = sqlite_device_add,
    .device_update = sqlite_device_update,
    .device_del = sqlite_device_del,
    .device_list = sqlite_device_list,
    .device_pin_check = sqlite_device_pin_check,
    .audit_attach = sqlite_audit_attach,
    .audit_list = sqlite_audit_list,
    .audit_get_retention = sqlite_audit_get_retention,
    .audit_set_retention = sqlite_audit_set_retention,
    .backup = sqlite_backup,
    .holder = sqlite_holder,
    .check_db = sqlite_check_db,
    .restore_tmp = sqlite_restore_tmp,
    .restore_prepare = sqlite_restore_prepare,
    .restore_commit = sqlite_restore_commit,
    .policy_put = sq_policy_put,
    .policy_get = sq_policy_get,
    .policy_del = sq_policy_del,
    .policy_list = sq_policy_list,
    .set_policy = sq_set_policy,
    .pw_history = sq_pw_history,
    .change_password = sq_change_password,
    .record_auth = sq_record_auth,
    /* the alarm table (sqlite_alarm.c) */
    .alarm_record = sq_alarm_record,
    .alarm_list = sq_alarm_list,
    .alarm_clear = sq_alarm_clear,
    .prov_begin = sq_prov_begin,
    .prov_end = sq_prov_end,
    .prov_bump = sq_prov_bump,
    .prov_audit = sq_prov_audit,
    .prov_exec = sq_prov_exec,
    .prov_query = sq_prov_query,
    .prov_principal_ensure = sq_prov_principal_ensure,
    .unlock = sq_unlock,
    .snapshot = sq_snapshot,
    .load_dump = sq_load_dump,
    /* Service-key rotation (k9rot, sqlite_rotation.c). */
    .rot_policy_put = sq_rot_policy_put,
    .rot_policy_get = sq_rot_policy_get,
    .rot_policy_del = sq_rot_policy_del,
    .rot_pause = sq_rot_pause,
    .rot_policy_list = sq_rot_policy_list,
    .key_stage = sq_key_stage,
    .key_confirm = sq_key_confirm,
    .key_activate = sq_key_activate,
    .key_purge = sq_key_purge,
    .rot_status = sq_rot_status,
    /* Master-key rotation (sqlite_mkey.c). */
    .mkey_list = sq_mkey_list,
    .mkey_add = sq_mkey_add,
    .mkey_activate = sq_mkey_activate,
    .mkey_count = sq_mkey_count,
    .mkey_reencrypt = sq_mkey_reencrypt,
    .mkey_retire = sq_mkey_retire,
};

/* For sqlite_maint.c: an ordinary open (schema upgraded unless read-only), and the schema
 * version this binary writes. */
int
sqlite_open_path(const char *path, unsigned flags, struct sqlite_be **out)
{
    return sqlite_open(path, flags, false, (void **)out);
}

void
sqlite_close_be(struct sqlite_be *be)
{
    sqlite_close(be);
}

int
sqlite_schema_version(void)
{
    return SQLITE_SCHEMA_VERSION;
}
