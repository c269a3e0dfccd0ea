/* The lawful-intercept database (its own SQLite file, never the KDC store): orders, escrowed
 * records and the audit of every access; and the controller's per-call escrow. The database's
 * file mode is part of the role separation (docs/cablekey-intercept.md): it is created 0600 and
 * refused when others may read or write it. One connection per handle, serialized by a mutex
 * (a controller's signaling threads share one handle). A controller asks for every call:
 * the active orders are kept in memory and reloaded only when PRAGMA data_version says another
 * connection changed the file, so a call that no order covers costs one PRAGMA and a scan. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <sqlite3.h>

#include "cablekey/error.h"
#include "cablekey/util.h"
#include "intercept/li_int.h"

#define LI_SCHEMA_VERSION 1
#define LI_APPLICATION_ID 0x434b4c49 /* "CKLI": this file is an intercept database */
#define LI_BUSY_TIMEOUT_MS 5000
#define LI_MAX_ORDERS 100000         /* active orders held in memory */
#define LI_MAX_NUMBER 15             /* digits of a number (as cms.conf lines) */

static const char *const li_schema_v1[] = {
    "CREATE TABLE schema_version(version INTEGER NOT NULL)",
    "CREATE TABLE orders("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " kind INTEGER NOT NULL CHECK (kind IN (1, 2)),"
    " target TEXT NOT NULL,"
    " not_before INTEGER NOT NULL,"
    " not_after INTEGER NOT NULL CHECK (not_after > not_before),"
    " authority TEXT NOT NULL,"
    " cert_pem TEXT NOT NULL,"
    " cert_subject TEXT NOT NULL,"
    " cert_sha256 TEXT NOT NULL,"
    " created INTEGER NOT NULL,"
    " created_by TEXT NOT NULL,"
    " revoked INTEGER NOT NULL DEFAULT 0,"
    " revoked_by TEXT NOT NULL DEFAULT '')",
    "CREATE INDEX orders_target ON orders(target)",
    "CREATE TABLE records("
    " order_id INTEGER NOT NULL REFERENCES orders(id),"
    " call_id TEXT NOT NULL,"
    " created INTEGER NOT NULL,"
    " expires INTEGER NOT NULL,"
    " der BLOB NOT NULL,"
    " PRIMARY KEY (order_id, call_id))",
    "CREATE INDEX records_expires ON records(expires)",
    "CREATE TABLE audit("
    " id INTEGER PRIMARY KEY,"
    " time INTEGER NOT NULL,"
    " actor TEXT NOT NULL,"
    " action TEXT NOT NULL,"
    " detail TEXT NOT NULL DEFAULT '')",
    "CREATE INDEX audit_time ON audit(time)",
    "INSERT INTO schema_version(version) VALUES (1)",
    NULL,
};

struct li_snap {
    int64_t id;
    enum ck_li_target_kind kind;
    char target[CK_LI_MAX_TARGET + 1];
    int64_t not_before, not_after;
    X509 *cert;
};

struct ck_li {
    pthread_mutex_t mu;
    sqlite3 *db;
    char *path;
    bool readonly;
    struct li_snap *snap;
    size_t n_snap;
    bool snap_valid;
    int64_t data_version;
    sqlite3_stmt *st_version;
    /* Prepared once: the statements every escrowed call runs (a controller escrows thousands of
     * calls a second under a busy order; preparing them per call costs more than the insert). */
    sqlite3_stmt *st_escrow, *st_audit;
};

static int
li_sq_error(ck_li *li, const char *what)
{
    int code = sqlite3_errcode(li->db) & 0xff;

    switch (code) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return ck_error_set(CK_ERR_DB, "intercept database %s is busy; retry", li->path);
    case SQLITE_READONLY:
        return ck_error_set(CK_ERR_PERM, "%s: intercept database %s is read-only (every "
                                         "access is audited: it needs write access)",
                            what, li->path);
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
        return ck_error_set(CK_ERR_DB, "%s is not an intact intercept database", li->path);
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
        return ck_error_set(CK_ERR_PERM, "intercept database %s: cannot open", li->path);
    default:
        return ck_error_set(CK_ERR_DB, "%s: intercept database %s: %s", what, li->path,
                            sqlite3_errmsg(li->db));
    }
}

static int
li_exec(ck_li *li, const char *sql)
{
    if (sqlite3_exec(li->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return li_sq_error(li, "database");
    return 0;
}

static int
li_prepare(ck_li *li, const char *sql, sqlite3_stmt **st)
{
    if (sqlite3_prepare_v2(li->db, sql, -1, st, NULL) != SQLITE_OK)
        return li_sq_error(li, "database");
    return 0;
}

static int64_t
li_scalar(ck_li *li, const char *sql, int64_t dflt)
{
    sqlite3_stmt *st = NULL;
    int64_t v = dflt;

    if (sqlite3_prepare_v2(li->db, sql, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* Who may see the file is the role boundary: others (not owner, not group) get nothing. */
static int
li_check_file(const char *path, bool create, bool *created)
{
    struct stat sb;
    int fd;

    *created = false;
    if (lstat(path, &sb) != 0) {
        if (errno != ENOENT)
            return ck_error_set(CK_ERR_IO, "intercept database %s: %s", path, strerror(errno));
        if (!create)
            return ck_error_set(CK_ERR_NOTFOUND, "intercept database %s does not exist", path);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
            return ck_error_set(CK_ERR_IO, "intercept database %s: create: %s", path,
                                strerror(errno));
        /* The umask could only have made it stricter; make it exactly 0600 anyway. */
        if (fchmod(fd, 0600) != 0) {
            int e = errno;
            close(fd);
            unlink(path);
            return ck_error_set(CK_ERR_IO, "intercept database %s: chmod: %s", path,
                                strerror(e));
        }
        close(fd);
        *created = true;
        return 0;
    }
    if (!S_ISREG(sb.st_mode))
        return ck_error_set(CK_ERR_PERM, "intercept database %s is not a regular file", path);
    if (sb.st_mode & 0007)
        return ck_error_set(CK_ERR_PERM,
                            "intercept database %s has mode %04o: others may access it; it "
                            "must be 0600 (or 0660 for a controller's group): chmod o= %s",
                            path, (unsigned)(sb.st_mode & 07777), path);
    return 0;
}

static int
li_schema(ck_li *li, bool created)
{
    char pragma[64];
    int64_t version, appid;
    int ret;

    appid = li_scalar(li, "PRAGMA application_id", 0);
    version = li_scalar(li, "SELECT version FROM schema_version", -1);
    if (version == -1) {
        /* Only a file we just created (or an empty one) gets a schema: never someone
         * else's SQLite file, the KDC store least of all. */
        if (appid != 0 || li_scalar(li, "SELECT count(*) FROM sqlite_master", 1) != 0)
            return ck_error_set(CK_ERR_DB, "%s is not an intercept database", li->path);
        if (li->readonly)
            return ck_error_set(CK_ERR_DB, "intercept database %s is empty", li->path);
        if (!created)
            return ck_error_set(CK_ERR_DB, "%s is an empty file, not an intercept database "
                                           "(create it with 'cablekey intercept add')",
                                li->path);
        if ((ret = li_exec(li, "BEGIN IMMEDIATE")) != 0)
            return ret;
        for (size_t i = 0; li_schema_v1[i] != NULL; i++)
            if ((ret = li_exec(li, li_schema_v1[i])) != 0) {
                sqlite3_exec(li->db, "ROLLBACK", NULL, NULL, NULL);
                return ret;
            }
        snprintf(pragma, sizeof(pragma), "PRAGMA application_id = %d", LI_APPLICATION_ID);
        if ((ret = li_exec(li, pragma)) != 0 || (ret = li_exec(li, "COMMIT")) != 0) {
            sqlite3_exec(li->db, "ROLLBACK", NULL, NULL, NULL);
            return ret;
        }
        return 0;
    }
    if (appid != LI_APPLICATION_ID)
        return ck_error_set(CK_ERR_DB, "%s is not an intercept database", li->path);
    if (version != LI_SCHEMA_VERSION)
        return ck_error_set(CK_ERR_DB, "intercept database %s has schema version %" PRId64
                                       "; this program knows %d",
                            li->path, version, LI_SCHEMA_VERSION);
    return 0;
}

int
ck_li_open(const char *path, unsigned flags, ck_li **out)
{
    ck_li *li = NULL;
    bool created = false;
    int ret, oflags;

    *out = NULL;
    if (path == NULL || *path == '\0')
        return ck_error_set(CK_ERR_INVAL, "intercept database: no path");
    if ((flags & CK_LI_CREATE) && (flags & CK_LI_READONLY))
        return ck_error_set(CK_ERR_INVAL, "intercept database: create and read-only");
    if ((ret = li_check_file(path, (flags & CK_LI_CREATE) != 0, &created)) != 0)
        return ret;
    if ((li = calloc(1, sizeof(*li))) == NULL || (li->path = strdup(path)) == NULL) {
        free(li);
        return ck_error_set(CK_ERR_NOMEM, "intercept database: out of memory");
    }
    pthread_mutex_init(&li->mu, NULL);
    li->readonly = (flags & CK_LI_READONLY) != 0;
    oflags = (li->readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) |
             SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW;
    if (sqlite3_open_v2(path, &li->db, oflags, NULL) != SQLITE_OK) {
        ret = li->db != NULL ? li_sq_error(li, "open")
                             : ck_error_set(CK_ERR_NOMEM, "intercept database: out of memory");
        goto out;
    }
    sqlite3_busy_timeout(li->db, LI_BUSY_TIMEOUT_MS);
    sqlite3_extended_result_codes(li->db, 0);
    if ((ret = li_exec(li, "PRAGMA trusted_schema = OFF")) != 0 ||
        (ret = li_exec(li, "PRAGMA foreign_keys = ON")) != 0)
        goto out;
    /* The schema check first: a file that is not ours is left exactly as it was. */
    if ((ret = li_schema(li, created)) != 0)
        goto out;
    if (!li->readonly && ((ret = li_exec(li, "PRAGMA journal_mode = WAL")) != 0 ||
                          (ret = li_exec(li, "PRAGMA synchronous = NORMAL")) != 0))
        goto out;
    if ((ret = li_prepare(li, "PRAGMA data_version", &li->st_version)) != 0)
        goto out;
    *out = li;
    li = NULL;
out:
    if (ret != 0 && created)
        unlink(path);
    ck_li_close(li);
    return ret;
}

static void
snap_clear(ck_li *li)
{
    for (size_t i = 0; i < li->n_snap; i++)
        X509_free(li->snap[i].cert);
    free(li->snap);
    li->snap = NULL;
    li->n_snap = 0;
    li->snap_valid = false;
}

void
ck_li_close(ck_li *li)
{
    if (li == NULL)
        return;
    snap_clear(li);
    sqlite3_finalize(li->st_version);
    sqlite3_finalize(li->st_escrow);
    sqlite3_finalize(li->st_audit);
    sqlite3_close(li->db);
    pthread_mutex_destroy(&li->mu);
    free(li->path);
    free(li);
}

/* ---- validation ---- */

static int
check_text(const char *what, const char *s, size_t max)
{
    size_t n;

    if (s == NULL || *s == '\0')
        return ck_error_set(CK_ERR_INVAL, "%s is empty", what);
    n = strnlen(s, max + 1);
    if (n > max)
        return ck_error_set(CK_ERR_INVAL, "%s is longer than %zu bytes", what, max);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return ck_error_set(CK_ERR_INVAL, "%s has a control character", what);
    return 0;
}

static bool
is_number(const char *s)
{
    size_t n = strnlen(s, LI_MAX_NUMBER + 1);

    if (n == 0 || n > LI_MAX_NUMBER)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* A MAC in any syntax ck_mac_parse accepts, as 12 lower-case hex digits; "" if not a MAC. */
static void
mac_hex(const char *s, char out[13])
{
    uint8_t mac[CK_MAC_LEN];
    static const char hex[] = "0123456789abcdef";

    out[0] = '\0';
    if (s == NULL || *s == '\0' || strnlen(s, CK_LI_MAX_TARGET + 1) > CK_LI_MAX_TARGET ||
        ck_mac_parse(s, mac) != 0) {
        ck_error_clear();
        return;
    }
    for (size_t i = 0; i < CK_MAC_LEN; i++) {
        out[2 * i] = hex[mac[i] >> 4];
        out[2 * i + 1] = hex[mac[i] & 0xf];
    }
    out[12] = '\0';
}

/* Call ids name drop files: letters, digits, '.', '_', '-', not starting with '.'. */
static int
check_call_id(const char *id)
{
    size_t n = strnlen(id, CK_CALL_MAX_ID + 1);

    if (n == 0 || n > CK_CALL_MAX_ID || id[0] == '.')
        return ck_error_set(CK_ERR_INVAL, "intercept: bad call id");
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              c == '.' || c == '_' || c == '-'))
            return ck_error_set(CK_ERR_INVAL, "intercept: bad call id");
    }
    return 0;
}

/* ---- audit ---- */

static int
li_audit(ck_li *li, int64_t now, const char *actor, const char *action, const char *detail)
{
    sqlite3_stmt *st;
    int ret = 0;

    if (li->st_audit == NULL &&
        (ret = li_prepare(li, "INSERT INTO audit(time, actor, action, detail) "
                              "VALUES (?, ?, ?, ?)", &li->st_audit)) != 0)
        return ret;
    st = li->st_audit;
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_text(st, 2, actor, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, action, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, detail, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        ret = li_sq_error(li, "audit");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return ret;
}

static int
li_begin(ck_li *li)
{
    if (li->readonly)
        return ck_error_set(CK_ERR_PERM, "intercept database %s is open read-only: every "
                                         "access is audited, which needs write access",
                            li->path);
    return li_exec(li, "BEGIN IMMEDIATE");
}

static int
li_end(ck_li *li, int ret)
{
    if (ret == 0 && (ret = li_exec(li, "COMMIT")) == 0)
        return 0;
    sqlite3_exec(li->db, "ROLLBACK", NULL, NULL, NULL);
    return ret;
}

/* Every operator read or write is one IMMEDIATE transaction holding the access and its audit
 * row, so neither commits without the other. li_op_begin takes the lock (only on success);
 * li_op_end writes the audit row when the body succeeded (ret 0), commits or rolls back,
 * finalizes the body's statement and unlocks. */
static int
li_op_begin(ck_li *li, const char *actor)
{
    int ret;

    if ((ret = check_text("intercept: actor", actor, CK_LI_MAX_ACTOR)) != 0)
        return ret;
    pthread_mutex_lock(&li->mu);
    if ((ret = li_begin(li)) != 0)
        pthread_mutex_unlock(&li->mu);
    return ret;
}

static int
li_op_end(ck_li *li, int ret, sqlite3_stmt *st, int64_t now, const char *actor,
          const char *action, const char *detail)
{
    if (ret == 0)
        ret = li_audit(li, now, actor, action, detail);
    ret = li_end(li, ret);
    sqlite3_finalize(st);
    pthread_mutex_unlock(&li->mu);
    return ret;
}

/* The array v (of *cap elements) with a zeroed element at index count, grown by doubling when
 * full; NULL (error set, v untouched) when out of memory. */
static void *
li_grow(void *v, size_t *cap, size_t count, size_t elem)
{
    if (count == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;

        if ((v = realloc(v, ncap * elem)) == NULL) {
            ck_error_set(CK_ERR_NOMEM, "intercept: out of memory");
            return NULL;
        }
        *cap = ncap;
    }
    memset((char *)v + count * elem, 0, elem);
    return v;
}

/* ---- orders ---- */

static int
load_cert(const char *pem, X509 **out)
{
    BIO *b = NULL;
    X509 *cert = NULL, *extra = NULL;
    size_t n = strnlen(pem, CK_LI_MAX_CERT + 1);
    int ret = 0;

    *out = NULL;
    if (n == 0 || n > CK_LI_MAX_CERT)
        return ck_error_set(CK_ERR_INVAL, "law-enforcement certificate: empty or larger than "
                                          "%d bytes", CK_LI_MAX_CERT);
    if ((b = BIO_new_mem_buf(pem, (int)n)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "out of memory");
    if ((cert = PEM_read_bio_X509(b, NULL, NULL, NULL)) == NULL) {
        ret = ck_error_set_ssl(CK_ERR_INVAL, "law-enforcement certificate: not a PEM "
                                             "certificate");
        goto out;
    }
    /* One certificate: an order names exactly one holder. */
    if ((extra = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        ret = ck_error_set(CK_ERR_INVAL, "law-enforcement certificate: the file holds more "
                                         "than one certificate");
        goto out;
    }
    ERR_clear_error();
    *out = cert;
    cert = NULL;
out:
    X509_free(cert);
    X509_free(extra);
    BIO_free(b);
    return ret;
}

/* The certificate must be usable for the rest of the window (records are only ever made from
 * now on): a record made near the end of the window is still encrypted to a valid
 * certificate. */
static int
cert_covers(X509 *cert, int64_t nb, int64_t na)
{
    time_t t_nb = (time_t)nb, t_na = (time_t)na;

    if (X509_cmp_time(X509_get0_notBefore(cert), &t_nb) > 0 ||
        X509_cmp_time(X509_get0_notAfter(cert), &t_na) < 0)
        return ck_error_set(CK_ERR_INVAL, "law-enforcement certificate: not valid over the "
                                          "whole window of the order");
    return 0;
}

static void
cert_describe(X509 *cert, char *subject, size_t subject_size, char sha256[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    BIO *b = BIO_new(BIO_s_mem());
    char *data = NULL;
    long n = 0;

    subject[0] = '\0';
    if (b != NULL &&
        X509_NAME_print_ex(b, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) >= 0 &&
        (n = BIO_get_mem_data(b, &data)) > 0) {
        size_t m = (size_t)n < subject_size - 1 ? (size_t)n : subject_size - 1;
        memcpy(subject, data, m);
        subject[m] = '\0';
    }
    BIO_free(b);
    sha256[0] = '\0';
    if (X509_digest(cert, EVP_sha256(), md, &mdlen) && mdlen == sizeof(md))
        for (size_t i = 0; i < sizeof(md); i++)
            snprintf(sha256 + 2 * i, 3, "%02x", md[i]);
}

int
ck_li_order_add(ck_li *li, enum ck_li_target_kind kind, const char *target, int64_t not_before,
                int64_t not_after, const char *authority, const char *cert_pem,
                const char *actor, int64_t now, int64_t *id)
{
    char canon[CK_LI_MAX_TARGET + 1], subject[256], sha256[65], detail[1024];
    sqlite3_stmt *st = NULL;
    X509 *cert = NULL;
    int ret;

    if (id != NULL)
        *id = 0;
    if (li == NULL || target == NULL || id == NULL)
        return ck_error_set(CK_ERR_INVAL, "intercept order: missing argument");
    if (kind == CK_LI_TARGET_NUMBER) {
        if (!is_number(target))
            return ck_error_set(CK_ERR_INVAL, "intercept order: a target number is 1 to %d "
                                              "digits", LI_MAX_NUMBER);
        ck_strlcpy(canon, target, sizeof(canon));
    } else if (kind == CK_LI_TARGET_MAC) {
        mac_hex(target, canon);
        if (canon[0] == '\0')
            return ck_error_set(CK_ERR_INVAL, "intercept order: the target is not a MAC "
                                              "address");
    } else {
        return ck_error_set(CK_ERR_INVAL, "intercept order: unknown target kind");
    }
    if (not_before < 0 || not_after <= not_before)
        return ck_error_set(CK_ERR_INVAL, "intercept order: the window ends before it starts");
    if ((ret = check_text("intercept order: authority", authority, CK_LI_MAX_AUTHORITY)) != 0 ||
        (ret = check_text("intercept order: actor", actor, CK_LI_MAX_ACTOR)) != 0)
        return ret;
    if (cert_pem == NULL)
        return ck_error_set(CK_ERR_INVAL, "intercept order: no certificate");
    if ((ret = load_cert(cert_pem, &cert)) != 0 || (ret = ck_li_cert_check(cert)) != 0 ||
        (ret = cert_covers(cert, not_before > now ? not_before : now, not_after)) != 0)
        goto out;
    cert_describe(cert, subject, sizeof(subject), sha256);

    if ((ret = li_op_begin(li, actor)) != 0)
        goto out;
    if ((ret = li_prepare(li, "INSERT INTO orders(kind, target, not_before, not_after, "
                              "authority, cert_pem, cert_subject, cert_sha256, created, "
                              "created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", &st)) != 0)
        goto txn;
    sqlite3_bind_int(st, 1, (int)kind);
    sqlite3_bind_text(st, 2, canon, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, not_before);
    sqlite3_bind_int64(st, 4, not_after);
    sqlite3_bind_text(st, 5, authority, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, cert_pem, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, subject, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 8, sha256, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 9, now);
    sqlite3_bind_text(st, 10, actor, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) {
        ret = li_sq_error(li, "add order");
        goto txn;
    }
    *id = sqlite3_last_insert_rowid(li->db);
    snprintf(detail, sizeof(detail),
             "order %" PRId64 " %s %s window %" PRId64 "..%" PRId64 " authority \"%s\" cert "
             "sha256 %s",
             *id, kind == CK_LI_TARGET_NUMBER ? "number" : "mac", canon, not_before, not_after,
             authority, sha256);
txn:
    li->snap_valid = false; /* our own commit: data_version does not change for it */
    ret = li_op_end(li, ret, st, now, actor, "order.add", detail);
    if (ret != 0)
        *id = 0;
out:
    X509_free(cert);
    return ret;
}

int
ck_li_order_revoke(ck_li *li, int64_t id, const char *actor, int64_t now)
{
    sqlite3_stmt *st = NULL;
    char detail[64];
    int64_t revoked;
    int ret;

    if (li == NULL)
        return ck_error_set(CK_ERR_INVAL, "intercept: no database");
    if ((ret = li_op_begin(li, actor)) != 0)
        return ret;
    if ((ret = li_prepare(li, "SELECT revoked FROM orders WHERE id = ?", &st)) != 0)
        goto txn;
    sqlite3_bind_int64(st, 1, id);
    if (sqlite3_step(st) != SQLITE_ROW) {
        ret = ck_error_set(CK_ERR_NOTFOUND, "intercept order %" PRId64 " does not exist", id);
        goto txn;
    }
    revoked = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    st = NULL;
    if (revoked != 0) {
        ret = ck_error_set(CK_ERR_EXISTS, "intercept order %" PRId64 " is already revoked", id);
        goto txn;
    }
    if ((ret = li_prepare(li, "UPDATE orders SET revoked = ?, revoked_by = ? WHERE id = ?",
                          &st)) != 0)
        goto txn;
    /* 0 means active: a revocation at time 0 (tests with tiny clocks) still counts. */
    sqlite3_bind_int64(st, 1, now > 0 ? now : 1);
    sqlite3_bind_text(st, 2, actor, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, id);
    if (sqlite3_step(st) != SQLITE_DONE) {
        ret = li_sq_error(li, "revoke order");
        goto txn;
    }
    snprintf(detail, sizeof(detail), "order %" PRId64, id);
txn:
    li->snap_valid = false; /* our own commit: data_version does not change for it */
    return li_op_end(li, ret, st, now, actor, "order.revoke", detail);
}

static void
col_text(sqlite3_stmt *st, int col, char *dst, size_t size)
{
    const unsigned char *s = sqlite3_column_text(st, col);

    ck_strlcpy(dst, s != NULL ? (const char *)s : "", size);
}

/* An audited list: every row of sql, each read by row into a zeroed element of elem bytes;
 * the audit detail counts them as noun. */
struct li_list {
    const char *sql, *what, *action, *noun;
    size_t elem;
    void (*row)(sqlite3_stmt *st, void *dst);
};

static int
li_list(ck_li *li, const struct li_list *l, const char *actor, int64_t now, void **out,
        size_t *n)
{
    sqlite3_stmt *st = NULL;
    void *v = NULL, *tmp;
    size_t count = 0, cap = 0;
    char detail[64];
    int ret, rc;

    *out = NULL;
    *n = 0;
    if (li == NULL)
        return ck_error_set(CK_ERR_INVAL, "intercept: no database");
    if ((ret = li_op_begin(li, actor)) != 0)
        return ret;
    if ((ret = li_prepare(li, l->sql, &st)) != 0)
        goto txn;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if ((tmp = li_grow(v, &cap, count, l->elem)) == NULL) {
            ret = CK_ERR_NOMEM;
            goto txn;
        }
        v = tmp;
        l->row(st, (char *)v + count++ * l->elem);
    }
    if (rc != SQLITE_DONE) {
        ret = li_sq_error(li, l->what);
        goto txn;
    }
    snprintf(detail, sizeof(detail), "%zu %s", count, l->noun);
txn:
    if ((ret = li_op_end(li, ret, st, now, actor, l->action, detail)) != 0) {
        free(v);
        return ret;
    }
    *out = v;
    *n = count;
    return 0;
}

static void
order_row(sqlite3_stmt *st, void *dst)
{
    struct ck_li_order *o = dst;

    o->id = sqlite3_column_int64(st, 0);
    o->kind = (enum ck_li_target_kind)sqlite3_column_int(st, 1);
    col_text(st, 2, o->target, sizeof(o->target));
    o->not_before = sqlite3_column_int64(st, 3);
    o->not_after = sqlite3_column_int64(st, 4);
    col_text(st, 5, o->authority, sizeof(o->authority));
    col_text(st, 6, o->cert_subject, sizeof(o->cert_subject));
    col_text(st, 7, o->cert_sha256, sizeof(o->cert_sha256));
    o->created = sqlite3_column_int64(st, 8);
    o->revoked = sqlite3_column_int64(st, 9);
    col_text(st, 10, o->created_by, sizeof(o->created_by));
}

int
ck_li_order_list(ck_li *li, const char *actor, int64_t now, struct ck_li_order **out,
                 size_t *n)
{
    static const struct li_list l = {
        .sql = "SELECT id, kind, target, not_before, not_after, authority, cert_subject, "
               "cert_sha256, created, revoked, created_by FROM orders ORDER BY id",
        .what = "list orders",
        .action = "order.list",
        .noun = "orders",
        .elem = sizeof(struct ck_li_order),
        .row = order_row,
    };

    void *v;
    int ret = li_list(li, &l, actor, now, &v, n);

    *out = v;
    return ret;
}

/* ---- escrow ---- */

static int
snap_reload(ck_li *li)
{
    sqlite3_stmt *st = NULL;
    struct li_snap *v = NULL, *tmp;
    size_t count = 0, cap = 0;
    int ret = 0, rc;

    if ((ret = li_prepare(li, "SELECT id, kind, target, not_before, not_after, cert_pem "
                              "FROM orders WHERE revoked = 0 ORDER BY id", &st)) != 0)
        return ret;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *pem = (const char *)sqlite3_column_text(st, 5);
        struct li_snap *s;

        if (count == LI_MAX_ORDERS) {
            ret = ck_error_set(CK_ERR_LIMIT, "intercept: more than %d active orders",
                               LI_MAX_ORDERS);
            goto out;
        }
        if ((tmp = li_grow(v, &cap, count, sizeof(*v))) == NULL) {
            ret = CK_ERR_NOMEM;
            goto out;
        }
        v = tmp;
        s = &v[count];
        s->id = sqlite3_column_int64(st, 0);
        s->kind = (enum ck_li_target_kind)sqlite3_column_int(st, 1);
        col_text(st, 2, s->target, sizeof(s->target));
        s->not_before = sqlite3_column_int64(st, 3);
        s->not_after = sqlite3_column_int64(st, 4);
        /* A row altered behind our back must fail loudly rather than escrow nothing. */
        if (pem == NULL || (ret = load_cert(pem, &s->cert)) != 0) {
            ret = ck_error_set(CK_ERR_DB, "intercept order %" PRId64 ": its certificate does "
                                          "not load", s->id);
            goto out;
        }
        count++;
    }
    if (rc != SQLITE_DONE) {
        ret = li_sq_error(li, "load orders");
        goto out;
    }
    snap_clear(li);
    li->snap = v;
    li->n_snap = count;
    li->snap_valid = true;
    v = NULL;
    count = 0;
out:
    for (size_t i = 0; i < count; i++)
        X509_free(v[i].cert);
    free(v);
    sqlite3_finalize(st);
    return ret;
}

/* The snapshot, current as of now: data_version changes when another connection commits;
 * our own commits clear snap_valid. */
static int
snap_refresh(ck_li *li)
{
    int64_t dv;

    if (sqlite3_step(li->st_version) != SQLITE_ROW) {
        sqlite3_reset(li->st_version);
        return li_sq_error(li, "data_version");
    }
    dv = sqlite3_column_int64(li->st_version, 0);
    sqlite3_reset(li->st_version);
    if (li->snap_valid && dv == li->data_version)
        return 0;
    li->data_version = dv;
    return snap_reload(li);
}

static bool
snap_matches(const struct li_snap *s, const char *caller, const char *callee,
             const char *mac1, const char *mac2, int64_t now)
{
    if (now < s->not_before || now >= s->not_after)
        return false;
    if (s->kind == CK_LI_TARGET_NUMBER)
        return (caller[0] != '\0' && strcmp(s->target, caller) == 0) ||
               (callee[0] != '\0' && strcmp(s->target, callee) == 0);
    return (mac1[0] != '\0' && strcmp(s->target, mac1) == 0) ||
           (mac2[0] != '\0' && strcmp(s->target, mac2) == 0);
}

static int
drop_write(const char *dir, int64_t order_id, const char *call_id, const uint8_t *der,
           size_t len)
{
    char path[4096];
    int n = snprintf(path, sizeof(path), "%s/%" PRId64 "-%s.p7m", dir, order_id, call_id);

    if (n < 0 || (size_t)n >= sizeof(path))
        return ck_error_set(CK_ERR_INVAL, "intercept: escrow directory path too long");
    return ck_file_write_atomic(path, der, len, CK_WRITE_REPLACE);
}

static void
drop_unlink(const char *dir, int64_t order_id, const char *call_id)
{
    char path[4096];
    int n = snprintf(path, sizeof(path), "%s/%" PRId64 "-%s.p7m", dir, order_id, call_id);

    if (n > 0 && (size_t)n < sizeof(path))
        unlink(path);
}

int
ck_li_escrow(ck_li *li, const struct ck_li_call *call, int64_t now, int64_t retention,
             const char *drop_dir, size_t *n_escrowed)
{
    char mac1[13], mac2[13], detail[256];
    char caller[CK_LI_MAX_TARGET + 1], callee[CK_LI_MAX_TARGET + 1];
    size_t *hits = NULL, n_hits = 0, written = 0;
    uint8_t *pt = NULL, *der = NULL;
    size_t pt_len = 0, der_len = 0;
    sqlite3_stmt *st = NULL;
    bool in_txn = false;
    int ret;

    if (n_escrowed != NULL)
        *n_escrowed = 0;
    if (li == NULL || call == NULL || n_escrowed == NULL)
        return ck_error_set(CK_ERR_INVAL, "intercept escrow: missing argument");
    if (retention <= 0 || retention > INT64_MAX - now)
        return ck_error_set(CK_ERR_INVAL, "intercept escrow: bad retention");
    ck_strlcpy(caller, call->caller, sizeof(caller));
    ck_strlcpy(callee, call->callee, sizeof(callee));
    mac_hex(call->caller_mac, mac1);
    mac_hex(call->callee_mac, mac2);

    pthread_mutex_lock(&li->mu);
    if ((ret = snap_refresh(li)) != 0)
        goto out;
    for (size_t i = 0; i < li->n_snap; i++) {
        if (!snap_matches(&li->snap[i], caller, callee, mac1, mac2, now))
            continue;
        if (hits == NULL && (hits = calloc(li->n_snap, sizeof(*hits))) == NULL) {
            ret = ck_error_set(CK_ERR_NOMEM, "intercept: out of memory");
            goto out;
        }
        hits[n_hits++] = i;
    }
    if (n_hits == 0)
        goto out; /* the common case: nothing written, nothing kept */
    if ((ret = check_call_id(call->call_id)) != 0 ||
        (ret = ck_li_record_encode(call, &pt, &pt_len)) != 0)
        goto out;
    if ((ret = li_begin(li)) != 0)
        goto out;
    in_txn = true;
    if (li->st_escrow == NULL &&
        (ret = li_prepare(li, "INSERT OR REPLACE INTO records(order_id, call_id, created, "
                              "expires, der) VALUES (?, ?, ?, ?, ?)", &li->st_escrow)) != 0)
        goto out;
    st = li->st_escrow;
    for (size_t h = 0; h < n_hits; h++) {
        const struct li_snap *s = &li->snap[hits[h]];

        if ((ret = ck_li_envelope(pt, pt_len, s->cert, &der, &der_len)) != 0)
            goto out;
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, s->id);
        sqlite3_bind_text(st, 2, call->call_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, now);
        sqlite3_bind_int64(st, 4, now + retention);
        sqlite3_bind_blob(st, 5, der, (int)der_len, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE) {
            ret = li_sq_error(li, "escrow");
            goto out;
        }
        sqlite3_reset(st);
        sqlite3_clear_bindings(st); /* der is freed below: no binding may outlive it */
        snprintf(detail, sizeof(detail), "order %" PRId64 " call %s", s->id, call->call_id);
        if ((ret = li_audit(li, now, "controller", "record.escrow", detail)) != 0)
            goto out;
        /* The drop file before the commit: a failed write leaves no record that was never
         * delivered. */
        if (drop_dir != NULL && (ret = drop_write(drop_dir, s->id, call->call_id, der,
                                                   der_len)) != 0)
            goto out;
        OPENSSL_free(der);
        der = NULL;
        written++;
    }
    /* A failed commit rolls back: in_txn stays, for the drop files. The snapshot stays valid:
     * this transaction wrote records and audit rows, never orders (reloading it here would
     * re-parse every order's certificate on every escrowed call). */
    ret = li_end(li, 0);
    if (ret == 0) {
        in_txn = false;
        *n_escrowed = written;
    }
out:
    if (in_txn) {
        li_end(li, ret != 0 ? ret : CK_ERR_DB);
        /* Rolled back: the drop files already written would be records the database does
         * not know (nor purge). */
        for (size_t h = 0; drop_dir != NULL && h < written; h++)
            drop_unlink(drop_dir, li->snap[hits[h]].id, call->call_id);
    }
    if (st != NULL) { /* the cached statement: reset, never finalized here */
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
    pthread_mutex_unlock(&li->mu);
    OPENSSL_free(der);
    if (pt != NULL)
        OPENSSL_clear_free(pt, pt_len);
    free(hits);
    return ret;
}

int
ck_li_purge(ck_li *li, const char *actor, int64_t now, size_t *n_purged)
{
    sqlite3_stmt *st = NULL;
    char detail[64];
    int ret;

    if (n_purged != NULL)
        *n_purged = 0;
    if (li == NULL || n_purged == NULL)
        return ck_error_set(CK_ERR_INVAL, "intercept: missing argument");
    if ((ret = li_op_begin(li, actor)) != 0)
        return ret;
    if ((ret = li_prepare(li, "DELETE FROM records WHERE expires <= ?", &st)) != 0)
        goto txn;
    sqlite3_bind_int64(st, 1, now);
    if (sqlite3_step(st) != SQLITE_DONE) {
        ret = li_sq_error(li, "purge");
        goto txn;
    }
    *n_purged = (size_t)sqlite3_changes(li->db);
    snprintf(detail, sizeof(detail), "%zu records", *n_purged);
txn:
    if ((ret = li_op_end(li, ret, st, now, actor, "record.purge", detail)) != 0)
        *n_purged = 0;
    return ret;
}

int
ck_li_record_get(ck_li *li, int64_t order_id, const char *call_id, const char *actor,
                 int64_t now, uint8_t **der, size_t *der_len)
{
    sqlite3_stmt *st = NULL;
    char detail[128];
    const void *blob;
    int ret, len;

    *der = NULL;
    *der_len = 0;
    if (li == NULL || call_id == NULL)
        return ck_error_set(CK_ERR_INVAL, "intercept: missing argument");
    if ((ret = check_text("intercept: actor", actor, CK_LI_MAX_ACTOR)) != 0 ||
        (ret = check_call_id(call_id)) != 0 || (ret = li_op_begin(li, actor)) != 0)
        return ret;
    if ((ret = li_prepare(li, "SELECT der FROM records WHERE order_id = ? AND call_id = ?",
                          &st)) != 0)
        goto txn;
    sqlite3_bind_int64(st, 1, order_id);
    sqlite3_bind_text(st, 2, call_id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) {
        ret = ck_error_set(CK_ERR_NOTFOUND, "no record for order %" PRId64 " and call %s",
                           order_id, call_id);
        goto txn;
    }
    blob = sqlite3_column_blob(st, 0);
    len = sqlite3_column_bytes(st, 0);
    if (blob == NULL || len <= 0 || len > CK_LI_MAX_RECORD ||
        (*der = ck_memdup(blob, (size_t)len)) == NULL) {
        ret = ck_error_set(blob == NULL || len <= 0 || len > CK_LI_MAX_RECORD ? CK_ERR_DB
                                                                              : CK_ERR_NOMEM,
                           "record for order %" PRId64 " and call %s: unreadable", order_id,
                           call_id);
        goto txn;
    }
    *der_len = (size_t)len;
    snprintf(detail, sizeof(detail), "order %" PRId64 " call %s", order_id, call_id);
txn:
    if ((ret = li_op_end(li, ret, st, now, actor, "record.get", detail)) != 0) {
        free(*der);
        *der = NULL;
        *der_len = 0;
    }
    return ret;
}

static void
record_row(sqlite3_stmt *st, void *dst)
{
    struct ck_li_record_info *r = dst;

    r->order_id = sqlite3_column_int64(st, 0);
    col_text(st, 1, r->call_id, sizeof(r->call_id));
    r->created = sqlite3_column_int64(st, 2);
    r->expires = sqlite3_column_int64(st, 3);
    r->der_len = (size_t)sqlite3_column_int64(st, 4);
}

int
ck_li_record_list(ck_li *li, const char *actor, int64_t now, struct ck_li_record_info **out,
                  size_t *n)
{
    static const struct li_list l = {
        .sql = "SELECT order_id, call_id, created, expires, length(der) FROM records "
               "ORDER BY created, order_id, call_id",
        .what = "list records",
        .action = "record.list",
        .noun = "records",
        .elem = sizeof(struct ck_li_record_info),
        .row = record_row,
    };

    void *v;
    int ret = li_list(li, &l, actor, now, &v, n);

    *out = v;
    return ret;
}

int
ck_li_purge_drops(ck_li *li, const char *actor, int64_t now, const char *drop_dir,
                  size_t *n_purged, size_t *n_files)
{
    struct ck_li_record_info *v = NULL;
    size_t n = 0;
    char path[4096];
    int ret, failed = 0;

    *n_files = 0;
    /* The drop files of what is about to expire: the same rule as ck_li_purge (expires <=
     * now). A record written between the two calls expires later, so is not touched. */
    if (drop_dir != NULL && (ret = ck_li_record_list(li, actor, now, &v, &n)) != 0)
        return ret;
    if ((ret = ck_li_purge(li, actor, now, n_purged)) != 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        if (v[i].expires > now)
            continue;
        snprintf(path, sizeof(path), "%s/%" PRId64 "-%s.p7m", drop_dir, v[i].order_id,
                 v[i].call_id);
        if (unlink(path) == 0)
            (*n_files)++;
        else if (errno != ENOENT && failed++ == 0)
            ret = ck_error_set(CK_ERR_IO, "intercept purge: %s: %s", path, strerror(errno));
    }
out:
    free(v);
    return ret;
}
