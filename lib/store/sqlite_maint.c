/* SQLite backend: backup (the online backup API), restore (validate a private copy, then replace
 * the live content in one write transaction) and the database-level integrity checks. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "cablekey/error.h"
#include "cablekey/util.h"
#include "store/sqlite_int.h"

#define MAINT_BUSY_TIMEOUT_MS 5000
#define BACKUP_BUSY_TRIES 20       /* backup_step retries after the busy handler gave up */
#define CHECK_INTEGRITY_ROWS 100   /* problems PRAGMA integrity_check reports at most */
#define CHECK_FK_ROWS 100

/* The unix VFS's dead-man-switch byte in the -shm file: every connection to a WAL database
 * holds a shared POSIX lock on it while open (SQLite's walformat.html, "the DMS lock"). */
#define SHM_DMS_BYTE 128

static int
raw_error(sqlite3 *db, int rc, const char *what, const char *path)
{
    const char *msg = db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc);

    switch (rc) {
    case SQLITE_CANTOPEN:
        return ck_error_set(CK_ERR_NOTFOUND, "%s %s: cannot open (%s)", what, path,
                            strerror(errno ? errno : ENOENT));
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
        return ck_error_set(CK_ERR_INTEGRITY, "%s %s: not a database, or damaged (%s)", what,
                            path, msg);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return ck_error_set(CK_ERR_DB, "%s %s: busy (another process holds a lock); retry",
                            what, path);
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
        return ck_error_set(CK_ERR_PERM, "%s %s: no permission (%s)", what, path, msg);
    case SQLITE_NOMEM:
        return ck_error_set(CK_ERR_NOMEM, "%s %s", what, path);
    default:
        return ck_error_set(CK_ERR_DB, "%s %s: %s", what, path, msg);
    }
}

/* A plain connection without the store's schema handling. The file must exist. */
static int
raw_open(const char *path, bool readonly, sqlite3 **db)
{
    int rc;

    *db = NULL;
    errno = 0;
    rc = sqlite3_open_v2(path, db, SQLITE_OPEN_NOMUTEX |
                                       (readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE),
                         NULL);
    if (rc != SQLITE_OK) {
        int ret = raw_error(*db, rc, "database", path);
        sqlite3_close(*db);
        *db = NULL;
        return ret;
    }
    sqlite3_extended_result_codes(*db, 0);
    sqlite3_busy_timeout(*db, MAINT_BUSY_TIMEOUT_MS);
    /* Files checked or restored here may come from anywhere: their schema gets no trust. */
    sqlite3_exec(*db, "PRAGMA trusted_schema = OFF", NULL, NULL, NULL);
    return 0;
}

static int
raw_exec(sqlite3 *db, const char *path, const char *sql)
{
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

    return rc == SQLITE_OK ? 0 : raw_error(db, rc, "database", path);
}

/* One integer from a one-row query; CK_ERR_NOTFOUND when no row. */
static int
raw_int64(sqlite3 *db, const char *path, const char *sql, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc, ret = 0;

    rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return raw_error(db, rc, "database", path);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    else if (rc == SQLITE_DONE)
        ret = ck_error_set(CK_ERR_NOTFOUND, "database %s: no row for %s", path, sql);
    else
        ret = raw_error(db, rc, "database", path);
    sqlite3_finalize(st);
    return ret;
}

static int
raw_schema_version(sqlite3 *db, const char *path, int *version)
{
    int64_t v = 0;
    int ret = raw_int64(db, path, "SELECT version FROM schema_version", &v);

    if (ret == CK_ERR_NOTFOUND || (ret == CK_ERR_DB && sqlite3_errcode(db) == SQLITE_ERROR))
        return ck_error_set(CK_ERR_DB, "%s is not a cablekey database", path);
    if (ret != 0)
        return ret;
    if (v < 1 || v > INT32_MAX)
        return ck_error_set(CK_ERR_DB, "%s: schema version %lld is not a cablekey version", path,
                            (long long)v);
    *version = (int)v;
    return 0;
}

static bool
raw_has_table(sqlite3 *db, const char *name)
{
    sqlite3_stmt *st = NULL;
    bool found = false;

    if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                           -1, &st, NULL) != SQLITE_OK)
        return false;
    if (sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC) == SQLITE_OK)
        found = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    return found;
}

/* PRAGMA integrity_check: "ok", or up to `max` problems passed to cb. Returns how many. */
static size_t
integrity_problems(sqlite3 *db, const char *path, int max, ck_store_check_cb cb, void *arg)
{
    char sql[64], line[600];
    sqlite3_stmt *st = NULL;
    size_t n = 0;
    int rc;

    snprintf(sql, sizeof(sql), "PRAGMA integrity_check(%d)", max);
    rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        raw_error(db, rc, "integrity check of", path);
        if (cb != NULL)
            cb(ck_error_context(), arg);
        return 1;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        if (t != NULL && strcmp(t, "ok") == 0)
            continue;
        snprintf(line, sizeof(line), "SQLite integrity: %s", t != NULL ? t : "?");
        if (cb != NULL)
            cb(line, arg);
        n++;
    }
    if (rc != SQLITE_DONE) {
        raw_error(db, rc, "integrity check of", path);
        if (cb != NULL)
            cb(ck_error_context(), arg);
        n++;
    }
    sqlite3_finalize(st);
    return n;
}

/* PRAGMA foreign_key_check: each row that points at a missing parent. */
static size_t
foreign_key_problems(sqlite3 *db, const char *path, ck_store_check_cb cb, void *arg)
{
    char line[600];
    sqlite3_stmt *st = NULL;
    size_t n = 0;
    int rc;

    rc = sqlite3_prepare_v2(db, "PRAGMA foreign_key_check", -1, &st, NULL);
    if (rc != SQLITE_OK) {
        raw_error(db, rc, "foreign key check of", path);
        if (cb != NULL)
            cb(ck_error_context(), arg);
        return 1;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n < CHECK_FK_ROWS) {
            snprintf(line, sizeof(line), "foreign key: table %s row %lld refers to a missing %s",
                     (const char *)sqlite3_column_text(st, 0),
                     (long long)sqlite3_column_int64(st, 1),
                     (const char *)sqlite3_column_text(st, 2));
            if (cb != NULL)
                cb(line, arg);
        }
        n++;
    }
    if (rc != SQLITE_DONE) {
        raw_error(db, rc, "foreign key check of", path);
        if (cb != NULL)
            cb(ck_error_context(), arg);
        n++;
    }
    sqlite3_finalize(st);
    return n;
}

/* First problem only, for the validations that refuse rather than report. */
struct first_problem {
    char text[600];
    size_t n;
};

static void
keep_first(const char *problem, void *arg)
{
    struct first_problem *fp = arg;

    if (fp->n++ == 0)
        ck_strlcpy(fp->text, problem, sizeof(fp->text));
}

static void
sync_dir_of(const char *path)
{
    char *copy = strdup(path);
    int fd;

    if (copy == NULL)
        return;
    fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(copy);
}

static int
fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC), ret = 0;

    if (fd < 0)
        return ck_error_set(CK_ERR_IO, "%s: %s", path, strerror(errno));
    if (fsync(fd) != 0)
        ret = ck_error_set(CK_ERR_IO, "%s: fsync: %s", path, strerror(errno));
    close(fd);
    return ret;
}

/* path + suffix, malloc'd. */
static char *
path_with(const char *path, const char *suffix)
{
    size_t a = strlen(path), b = strlen(suffix);
    char *p = malloc(a + b + 1);

    if (p != NULL) {
        memcpy(p, path, a);
        memcpy(p + a, suffix, b + 1);
    }
    return p;
}

static void
unlink_with_journals(const char *path)
{
    static const char *const suffix[] = {"", "-journal", "-wal", "-shm"};

    for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
        char *p = path_with(path, suffix[i]);
        if (p != NULL)
            unlink(p);
        free(p);
    }
}

/* Copies all of src into dst with the online backup API: one read transaction on the source,
 * so the copy is one consistent state however the source is being written meanwhile. */
static int
copy_database(sqlite3 *src, const char *src_path, sqlite3 *dst, const char *dst_path)
{
    sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
    int rc, tries = 0;

    if (b == NULL)
        return raw_error(dst, sqlite3_errcode(dst), "backup into", dst_path);
    do {
        rc = sqlite3_backup_step(b, -1);
        /* The source's busy handler has already waited MAINT_BUSY_TIMEOUT_MS. */
        if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
            sqlite3_sleep(100);
    } while ((rc == SQLITE_BUSY || rc == SQLITE_LOCKED) && ++tries < BACKUP_BUSY_TRIES);
    sqlite3_backup_finish(b);
    if (rc != SQLITE_DONE)
        return raw_error(rc == SQLITE_BUSY || rc == SQLITE_LOCKED ? src : dst, rc,
                         "backup of", src_path);
    if (sqlite3_errcode(dst) != SQLITE_OK)
        return raw_error(dst, sqlite3_errcode(dst), "backup into", dst_path);
    return 0;
}

/* A new empty file next to `near` (mode 0600); *tmp malloc'd. */
static int
make_temp_near(const char *near, const char *tag, char **tmp)
{
    char *t;
    int fd;

    *tmp = NULL;
    t = path_with(near, tag);
    if (t == NULL)
        return ck_error_set(CK_ERR_NOMEM, "temporary file name");
    fd = mkstemp(t);
    if (fd < 0) {
        int ret = ck_error_set(errno == EACCES ? CK_ERR_PERM : CK_ERR_IO,
                               "cannot create a temporary file next to %s: %s", near,
                               strerror(errno));
        free(t);
        return ret;
    }
    if (fchmod(fd, 0600) != 0) {
        int ret = ck_error_set(CK_ERR_IO, "%s: chmod: %s", t, strerror(errno));
        close(fd);
        unlink(t);
        free(t);
        return ret;
    }
    close(fd);
    *tmp = t;
    return 0;
}

static int
read_info(sqlite3 *db, const char *path, ck_store_backup_info *info)
{
    sqlite3_stmt *st = NULL;
    int64_t v = 0;
    int ret;

    memset(info, 0, sizeof(*info));
    if ((ret = raw_schema_version(db, path, &info->schema_version)) != 0)
        return ret;
    if (sqlite3_prepare_v2(db, "SELECT name FROM realm WHERE id = 1", -1, &st, NULL) ==
            SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) != NULL)
        ck_strlcpy(info->realm, (const char *)sqlite3_column_text(st, 0), sizeof(info->realm));
    sqlite3_finalize(st);
    if ((ret = raw_int64(db, path, "SELECT value FROM generation WHERE id = 1", &v)) != 0)
        return ret;
    info->generation = (uint64_t)v;
    if ((ret = raw_int64(db, path, "SELECT count(*) FROM principal", &info->principals)) != 0)
        return ret;
    if (raw_has_table(db, "device") &&
        (ret = raw_int64(db, path, "SELECT count(*) FROM device", &info->devices)) != 0)
        return ret;
    if (raw_has_table(db, "audit") &&
        (ret = raw_int64(db, path, "SELECT count(*) FROM audit", &info->audit_rows)) != 0)
        return ret;
    return 0;
}

static bool
same_file(const char *a, const char *b)
{
    struct stat sa, sb;

    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

int
sqlite_backup(const char *db_path, const char *out_path, bool overwrite,
              ck_store_backup_info *info)
{
    sqlite3 *src = NULL, *dst = NULL;
    struct first_problem fp;
    struct stat st;
    char *tmp = NULL;
    int version = 0, ret;

    memset(&fp, 0, sizeof(fp));
    if (lstat(out_path, &st) == 0) {
        if (same_file(db_path, out_path))
            return ck_error_set(CK_ERR_INVAL, "%s is the database itself", out_path);
        if (!overwrite)
            return ck_error_set(CK_ERR_EXISTS, "%s already exists", out_path);
        if (!S_ISREG(st.st_mode))
            return ck_error_set(CK_ERR_INVAL, "%s exists and is not a regular file", out_path);
    }
    if ((ret = raw_open(db_path, false, &src)) != 0 ||
        (ret = raw_schema_version(src, db_path, &version)) != 0)
        goto out;
    if ((ret = make_temp_near(out_path, ".tmp-XXXXXX", &tmp)) != 0)
        goto out;
    if ((ret = raw_open(tmp, false, &dst)) != 0 ||
        (ret = copy_database(src, db_path, dst, tmp)) != 0)
        goto out;
    sqlite3_close(src);
    src = NULL;
    /* One self-contained file: no -wal beside the backup to lose when it is copied away. */
    if ((ret = raw_exec(dst, tmp, "PRAGMA journal_mode = DELETE")) != 0)
        goto out;
    if (integrity_problems(dst, tmp, 1, keep_first, &fp) != 0) {
        ret = ck_error_set(CK_ERR_INTEGRITY, "the copy of %s fails its integrity check (%s): "
                           "run 'cablekey db check'", db_path, fp.text);
        goto out;
    }
    if (info != NULL && (ret = read_info(dst, tmp, info)) != 0)
        goto out;
    if (sqlite3_close(dst) != SQLITE_OK) {
        ret = ck_error_set(CK_ERR_DB, "backup %s: close failed", tmp);
        goto out;
    }
    dst = NULL;
    if ((ret = fsync_path(tmp)) != 0)
        goto out;
    /* link() refuses to replace a file that appeared meanwhile; rename() replaces it. */
    if (overwrite ? rename(tmp, out_path) != 0 : link(tmp, out_path) != 0) {
        ret = ck_error_set(errno == EEXIST ? CK_ERR_EXISTS : CK_ERR_IO, "%s: %s", out_path,
                           strerror(errno));
        goto out;
    }
    if (!overwrite)
        unlink(tmp);
    sync_dir_of(out_path);
out:
    sqlite3_close(src);
    sqlite3_close(dst);
    if (tmp != NULL) {
        if (ret != 0)
            unlink_with_journals(tmp);
        free(tmp);
    }
    return ret;
}

int
sqlite_holder(const char *db_path, long *pid)
{
    struct flock lk;
    char *shm;
    int fd, ret = 0;

    *pid = 0;
    shm = path_with(db_path, "-shm");
    if (shm == NULL)
        return ck_error_set(CK_ERR_NOMEM, "shm path");
    /* Opening and closing our own descriptor would drop this process's POSIX locks on the
     * file: the caller has no connection to db_path yet, so there are none to drop. */
    fd = open(shm, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno != ENOENT)
            ret = ck_error_set(CK_ERR_IO, "%s: %s", shm, strerror(errno));
        goto out;
    }
    memset(&lk, 0, sizeof(lk));
    lk.l_type = F_WRLCK;
    lk.l_whence = SEEK_SET;
    lk.l_start = SHM_DMS_BYTE;
    lk.l_len = 1;
    if (fcntl(fd, F_GETLK, &lk) != 0)
        ret = ck_error_set(CK_ERR_IO, "%s: %s", shm, strerror(errno));
    else if (lk.l_type != F_UNLCK)
        *pid = lk.l_pid > 0 ? (long)lk.l_pid : -1;
    close(fd);
out:
    free(shm);
    return ret;
}

/* ---- check ---- */

static void
report(ck_store_check_cb cb, void *arg, ck_store_check_result *res, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
report(ck_store_check_cb cb, void *arg, ck_store_check_result *res, const char *fmt, ...)
{
    char line[700];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    res->problems++;
    if (cb != NULL)
        cb(line, arg);
}

static void
check_rows(sqlite3 *db, const char *path, ck_store_check_cb cb, void *arg,
           ck_store_check_result *res)
{
    sqlite3_stmt *st = NULL;
    int64_t v = 0, mk = 0;
    int rc;

    if (raw_int64(db, path, "SELECT count(*) FROM realm", &v) != 0 || v != 1)
        report(cb, arg, res, "realm: %lld rows, expected 1", (long long)v);
    else if (raw_int64(db, path, "SELECT master_kvno FROM realm WHERE id = 1", &mk) != 0 ||
             raw_int64(db, path, "SELECT count(*) FROM master_key WHERE kvno ="
                                 " (SELECT master_kvno FROM realm WHERE id = 1)", &v) != 0 ||
             v != 1)
        report(cb, arg, res, "master key: no row for the realm's master key kvno %lld",
               (long long)mk);
    if (raw_int64(db, path, "SELECT value FROM generation WHERE id = 1", &v) != 0)
        report(cb, arg, res, "generation: the change counter row is missing");
    else
        res->generation = (uint64_t)v;
    if (raw_int64(db, path, "SELECT count(*) FROM principal", &res->principals) != 0)
        report(cb, arg, res, "principal table unreadable: %s", ck_error_context());
    if (raw_int64(db, path, "SELECT count(*) FROM key", &res->keys) != 0)
        report(cb, arg, res, "key table unreadable: %s", ck_error_context());
    if (!raw_has_table(db, "device"))
        return;
    if (raw_int64(db, path, "SELECT count(*) FROM device", &res->devices) != 0)
        report(cb, arg, res, "device table unreadable: %s", ck_error_context());
    /* A state this version does not know is refused at login; say so here too. */
    rc = sqlite3_prepare_v2(db, "SELECT mac, state FROM device WHERE state NOT IN (1, 2)"
                                " ORDER BY mac LIMIT 100", -1, &st, NULL);
    while (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        report(cb, arg, res, "device %s: state %d unknown to this version (refused at login)",
               (const char *)sqlite3_column_text(st, 0), sqlite3_column_int(st, 1));
    sqlite3_finalize(st);
}

int
sqlite_check_db(const char *db_path, ck_store_check_cb cb, void *arg, ck_store_check_result *res)
{
    sqlite3 *db = NULL;
    struct stat st;
    int version = 0, ret;

    if (stat(db_path, &st) != 0)
        return ck_error_set(errno == ENOENT ? CK_ERR_NOTFOUND : CK_ERR_IO, "database %s: %s",
                            db_path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return ck_error_set(CK_ERR_INVAL, "database %s is not a regular file", db_path);
    if ((ret = raw_open(db_path, true, &db)) != 0) {
        report(cb, arg, res, "%s", ck_error_context());
        return 0;
    }
    /* A damaged header or page 1 fails every statement: say it once. */
    if ((ret = raw_schema_version(db, db_path, &version)) != 0) {
        report(cb, arg, res, "%s", ck_error_context());
        if (ret == CK_ERR_DB)
            res->problems += integrity_problems(db, db_path, CHECK_INTEGRITY_ROWS, cb, arg);
        goto out;
    }
    res->schema_version = version;
    if (version > sqlite_schema_version())
        report(cb, arg, res, "schema version %d is newer than this cablekey's %d: check it "
               "with the newer cablekey", version, sqlite_schema_version());
    res->problems += integrity_problems(db, db_path, CHECK_INTEGRITY_ROWS, cb, arg);
    res->problems += foreign_key_problems(db, db_path, cb, arg);
    check_rows(db, db_path, cb, arg, res);
out:
    sqlite3_close(db);
    return 0;
}

/* ---- restore ---- */

int
sqlite_restore_prepare(const char *in_path, const char *tmp_path, int *schema_version)
{
    sqlite3 *src = NULL, *dst = NULL;
    struct sqlite_be *be = NULL;
    struct first_problem fp;
    size_t n;
    int version = 0, ret;

    memset(&fp, 0, sizeof(fp));
    *schema_version = 0;
    if ((ret = raw_open(in_path, true, &src)) != 0 || (ret = raw_open(tmp_path, false, &dst)) != 0)
        goto out;
    if ((ret = copy_database(src, in_path, dst, tmp_path)) != 0) {
        ret = ck_error_set(ret, "backup %s: %s", in_path, ck_error_context());
        goto out;
    }
    sqlite3_close(src);
    src = NULL;
    if ((ret = raw_exec(dst, tmp_path, "PRAGMA journal_mode = DELETE")) != 0)
        goto out;
    if ((n = integrity_problems(dst, tmp_path, 10, keep_first, &fp)) != 0) {
        ret = ck_error_set(CK_ERR_INTEGRITY, "backup %s is damaged (%s%s)", in_path, fp.text,
                           n > 1 ? ", and more" : "");
        goto out;
    }
    if ((n = foreign_key_problems(dst, tmp_path, keep_first, &fp)) != 0) {
        ret = ck_error_set(CK_ERR_INTEGRITY, "backup %s is inconsistent (%s)", in_path, fp.text);
        goto out;
    }
    if ((ret = raw_schema_version(dst, in_path, &version)) != 0)
        goto out;
    /* cablekey creates no triggers or views: a backup that has some was not made by it, and
     * would run its own SQL on every later write of the restored database. */
    {
        int64_t n_code = 0;
        if ((ret = raw_int64(dst, in_path, "SELECT count(*) FROM sqlite_master WHERE type IN"
                                           " ('trigger', 'view')", &n_code)) != 0)
            goto out;
        if (n_code != 0) {
            ret = ck_error_set(CK_ERR_INTEGRITY, "backup %s holds %lld trigger(s) or view(s), "
                               "which no cablekey database has: not restoring", in_path,
                               (long long)n_code);
            goto out;
        }
    }
    if (version > sqlite_schema_version()) {
        ret = ck_error_set(CK_ERR_UNSUPPORTED, "backup %s has schema version %d, newer than "
                           "this cablekey's %d: restore it with the cablekey that made it",
                           in_path, version, sqlite_schema_version());
        goto out;
    }
    sqlite3_close(dst);
    dst = NULL;
    /* The ordinary open upgrades an older schema, in one transaction, on the private copy. */
    if ((ret = sqlite_open_path(tmp_path, 0, &be)) != 0) {
        ret = ck_error_set(ret, "backup %s: %s", in_path, ck_error_context());
        goto out;
    }
    *schema_version = version;
out:
    sqlite_close_be(be);
    sqlite3_close(src);
    sqlite3_close(dst);
    return ret;
}

/* The restored state replaces the live one; the audit log is the live one's own history and
 * stays (restore_commit). */
static bool
restored_table(const char *name)
{
    if (strncmp(name, "sqlite_", 7) == 0 || strcmp(name, "audit") == 0 ||
        strcmp(name, "audit_retention") == 0)
        return false;
    return true;
}

static bool
plain_identifier(const char *s)
{
    if (s == NULL || *s == '\0')
        return false;
    for (; *s != '\0'; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return false;
    }
    return true;
}

#define MAX_TABLES 64

/* Inside the write transaction: the tables of src replace those of main. */
static int
copy_tables(struct sqlite_be *be)
{
    char *names[MAX_TABLES];
    char sql[256];
    sqlite3_stmt *st = NULL;
    size_t n = 0;
    int rc, ret;

    if ((ret = sq_prepare(be, "SELECT name FROM src.sqlite_master WHERE type = 'table'"
                              " ORDER BY rowid", &st)) != 0)
        return ret;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        if (name == NULL || !restored_table(name))
            continue;
        if (!plain_identifier(name) || n == MAX_TABLES) {
            ret = ck_error_set(CK_ERR_DB, "restore: unexpected table %s", name ? name : "?");
            break;
        }
        if ((names[n] = strdup(name)) == NULL) {
            ret = ck_error_set(CK_ERR_NOMEM, "restore");
            break;
        }
        n++;
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = sq_error(be, "restore: list tables");
    sqlite3_finalize(st);
    /* Creation order is parents first except for policy, which principal references through a
     * column added later (schema 5): SQLite's deferred foreign-key count does not recover from a
     * parent deleted before its children, so policy goes first. */
    for (size_t i = 1; ret == 0 && i < n; i++) {
        if (strcmp(names[i], "policy") == 0) {
            char *pol = names[i];
            memmove(&names[1], &names[0], i * sizeof(names[0]));
            names[0] = pol;
            break;
        }
    }
    /* Children before parents out, parents before children in; the foreign keys are checked at
     * commit (defer_foreign_keys). */
    for (size_t i = n; ret == 0 && i > 0; i--) {
        snprintf(sql, sizeof(sql), "DELETE FROM main.\"%s\"", names[i - 1]);
        ret = sq_exec(be, sql);
    }
    for (size_t i = 0; ret == 0 && i < n; i++) {
        snprintf(sql, sizeof(sql), "INSERT INTO main.\"%s\" SELECT * FROM src.\"%s\"",
                 names[i], names[i]);
        ret = sq_exec(be, sql);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    return ret;
}

/* In the transaction: the counter moves past both the replaced and the restored value, the
 * change log says "everything changed" (a KDC's cache flushes whatever it had seen), devices
 * take the new value (so no thumbprint cache entry of the replaced realm stays valid), and the
 * bump writes the audit row. */
static int
finish_restore(struct sqlite_be *be, uint64_t old_gen, ck_store_restore_info *info)
{
    uint64_t restored = 0, gen = 0;
    int ret;

    if ((ret = sqlite_generation(be, &restored)) != 0 ||
        (ret = sq_run(be, "restore", "UPDATE generation SET value = max(value, ?) WHERE id = 1",
                      ARGS(A_INT(old_gen)))) != 0 ||
        (ret = sq_exec(be, "DELETE FROM changelog")) != 0 ||
        (ret = sq_bump_generation(be, CK_CHANGE_ALL, NULL, &gen)) != 0 ||
        (ret = sq_run(be, "restore", "UPDATE device SET generation = ?", ARGS(A_INT(gen)))) != 0)
        return ret;
    info->backup_generation = restored;
    info->old_generation = old_gen;
    info->generation = gen;
    return 0;
}

static int
count_rows(struct sqlite_be *be, ck_store_restore_info *info)
{
    sqlite3_stmt *st = NULL;
    int ret;

    if ((ret = sq_prepare(be, "SELECT (SELECT count(*) FROM principal),"
                              " (SELECT count(*) FROM device)", &st)) != 0)
        return ret;
    if (sqlite3_step(st) == SQLITE_ROW) {
        info->principals = sqlite3_column_int64(st, 0);
        info->devices = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    return 0;
}

/* No database at db_path yet: the prepared copy becomes it. */
static int
restore_new(const char *db_path, const char *tmp_path, struct ck_store_audit *audit,
            ck_store_restore_info *info)
{
    struct sqlite_be *be = NULL;
    struct stat st;
    int ret;

    /* A -wal left without its database would be replayed into the restored one. */
    for (const char *sfx = "-wal"; sfx != NULL; sfx = strcmp(sfx, "-wal") == 0 ? "-shm" : NULL) {
        char *p = path_with(db_path, sfx);
        bool exists = p != NULL && lstat(p, &st) == 0;
        if (exists)
            ret = ck_error_set(CK_ERR_EXISTS, "%s exists without its database: move it away "
                               "first", p);
        free(p);
        if (exists)
            return ret;
    }
    if ((ret = sqlite_open_path(tmp_path, 0, &be)) != 0)
        return ret;
    sqlite_audit_attach(be, audit);
    if ((ret = sq_begin_write(be)) != 0)
        goto out;
    ret = finish_restore(be, 0, info);
    if ((ret = sq_end_write(be, ret)) != 0 || (ret = count_rows(be, info)) != 0)
        goto out;
    if ((ret = sq_exec(be, "PRAGMA journal_mode = WAL")) != 0)
        goto out;
    sqlite_close_be(be);
    be = NULL;
    if ((ret = fsync_path(tmp_path)) != 0)
        goto out;
    if (link(tmp_path, db_path) != 0) {
        ret = ck_error_set(errno == EEXIST ? CK_ERR_EXISTS : CK_ERR_IO, "database %s: %s",
                           db_path, strerror(errno));
        goto out;
    }
    unlink(tmp_path);
    sync_dir_of(db_path);
    info->created = true;
out:
    sqlite_close_be(be);
    return ret;
}

/* The live database and the prepared copy must have the same schema (both are at this
 * binary's version) for the table-by-table copy to be meaningful. */
static int
same_schema(struct sqlite_be *be)
{
    sqlite3_stmt *st = NULL;
    int64_t diff = -1;
    int ret;

    if ((ret = sq_prepare(be,
                          "SELECT (SELECT count(*) FROM (SELECT type, name, sql FROM"
                          " main.sqlite_master EXCEPT SELECT type, name, sql FROM"
                          " src.sqlite_master)) + (SELECT count(*) FROM (SELECT type, name, sql"
                          " FROM src.sqlite_master EXCEPT SELECT type, name, sql FROM"
                          " main.sqlite_master))", &st)) != 0)
        return ret;
    if (sqlite3_step(st) == SQLITE_ROW)
        diff = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (diff != 0)
        return ck_error_set(CK_ERR_UNSUPPORTED, "the backup's tables differ from the database's "
                            "(same schema version, other definitions): not restoring");
    return 0;
}

int
sqlite_restore_commit(const char *db_path, const char *tmp_path, struct ck_store_audit *audit,
                      ck_store_restore_info *info)
{
    struct sqlite_be *be = NULL;
    struct stat st;
    uint64_t old_gen = 0;
    bool attached = false;
    int ret;

    if (lstat(db_path, &st) != 0) {
        if (errno != ENOENT)
            return ck_error_set(CK_ERR_IO, "database %s: %s", db_path, strerror(errno));
        return restore_new(db_path, tmp_path, audit, info);
    }
    if ((ret = sqlite_open_path(db_path, 0, &be)) != 0) {
        ret = ck_error_set(ret, "%s; if it is damaged beyond use, move it (and its -wal and -shm "
                           "files) away and restore into the empty path", ck_error_context());
        goto out;
    }
    sqlite_audit_attach(be, audit);
    if ((ret = sq_run(be, "attach backup", "ATTACH DATABASE ? AS src",
                      ARGS(A_TEXT(tmp_path)))) != 0)
        goto out;
    attached = true;
    if ((ret = same_schema(be)) != 0)
        goto out;
    /* Everything from reading the old counter to the new one is one write transaction: no
     * writer can slip a change in between that a KDC might have seen. */
    if ((ret = sq_begin_write(be)) != 0)
        goto out;
    if ((ret = sq_exec(be, "PRAGMA defer_foreign_keys = ON")) == 0 &&
        (ret = sqlite_generation(be, &old_gen)) == 0 && (ret = copy_tables(be)) == 0)
        ret = finish_restore(be, old_gen, info);
    if ((ret = sq_end_write(be, ret)) != 0)
        goto out;
    ret = count_rows(be, info);
out:
    if (attached)
        sqlite3_exec(be->db, "DETACH DATABASE src", NULL, NULL, NULL);
    sqlite_close_be(be);
    return ret;
}
