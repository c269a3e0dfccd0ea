/* The keying server's store: opening (files, key file, schema), the at-rest sealing of keys, the
 * SQLite helpers of the module, the signing key and the link SAs. Groups live in group.c,
 * revocations, alarms and registrations in ops.c.
 *
 * The database and its key file are the KSV's secrets: both are created 0600 and refused when
 * group or others may read them. The master key never enters the database; a check value
 * sealed under it does, so a wrong key file is refused at open (CK_ERR_INTEGRITY) rather than
 * at the first key read. One connection per handle, serialized by a mutex. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cablekey/crypto.h"
#include "cablekey/error.h"
#include "cablekey/util.h"
#include "ksvstore/ksvstore_int.h"

#define KS_SCHEMA_VERSION 1
#define KS_APPLICATION_ID 0x434b5356 /* "CKSV": this file is a keying server store */
#define KS_BUSY_TIMEOUT_MS 5000
#define KS_SPI_TRIES 64              /* random SPIs tried before giving up (space is 2^31) */
#define KS_CHECK_PLAIN "cablekey ksv store master key check"
#define KS_SA_PLAIN_MAX (2 + 2 * CK_KSV_STORE_KEY)

static const char *const ks_schema_v1[] = {
    "CREATE TABLE schema_version(version INTEGER NOT NULL)",
    /* A constant sealed under the master key: tells a wrong key file at open. */
    "CREATE TABLE master_check(id INTEGER PRIMARY KEY CHECK (id = 1), sealed BLOB NOT NULL)",
    "CREATE TABLE signing_key("
    " id INTEGER PRIMARY KEY CHECK (id = 1),"
    " sealed BLOB NOT NULL,"
    " created INTEGER NOT NULL)",
    /* Link SPIs are the receiver's: unique per dst; group SPIs (grp.spi) come from the upper
     * half of the space so they never meet a link SPI. */
    "CREATE TABLE sa("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " src TEXT NOT NULL,"
    " dst TEXT NOT NULL,"
    " policy TEXT NOT NULL,"
    " spi INTEGER NOT NULL CHECK (spi BETWEEN 256 AND 2147483647),"
    " sealed BLOB NOT NULL,"
    " created INTEGER NOT NULL,"
    " expires INTEGER NOT NULL,"
    " generation INTEGER NOT NULL CHECK (generation BETWEEN 0 AND 4294967295),"
    " UNIQUE (dst, spi),"
    " UNIQUE (src, dst, generation))",
    "CREATE INDEX sa_src ON sa(src)",
    "CREATE TABLE grp("
    " id INTEGER PRIMARY KEY AUTOINCREMENT CHECK (id BETWEEN 1 AND 4294967295),"
    " name TEXT NOT NULL UNIQUE,"
    " epoch INTEGER NOT NULL CHECK (epoch >= 0),"
    " degree INTEGER NOT NULL,"
    " capacity INTEGER NOT NULL,"
    " keying INTEGER NOT NULL,"
    " spi INTEGER NOT NULL UNIQUE CHECK (spi BETWEEN 2147483648 AND 4294967295))",
    "CREATE TABLE lkh_node("
    " group_id INTEGER NOT NULL REFERENCES grp(id),"
    " node INTEGER NOT NULL,"
    " version INTEGER NOT NULL,"
    " sealed BLOB,"                     /* NULL: an empty node (no key) */
    " epoch INTEGER NOT NULL,"          /* the commit that last wrote the row */
    " PRIMARY KEY (group_id, node)) WITHOUT ROWID",
    "CREATE TABLE member("
    " group_id INTEGER NOT NULL REFERENCES grp(id),"
    " node TEXT NOT NULL,"
    " member_id INTEGER NOT NULL,"
    " leaf INTEGER NOT NULL,"
    " state INTEGER NOT NULL CHECK (state IN (1, 2)),"
    " epoch INTEGER NOT NULL,"
    " PRIMARY KEY (group_id, node)) WITHOUT ROWID",
    "CREATE TABLE dgram("
    " group_id INTEGER NOT NULL REFERENCES grp(id),"
    " epoch INTEGER NOT NULL,"
    " seq INTEGER NOT NULL,"
    " data BLOB NOT NULL,"
    " PRIMARY KEY (group_id, epoch, seq)) WITHOUT ROWID",
    "CREATE TABLE revocation("
    " grp TEXT NOT NULL,"
    " node TEXT NOT NULL,"
    " time INTEGER NOT NULL,"
    " actor TEXT NOT NULL,"
    " applied INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (grp, node)) WITHOUT ROWID",
    "CREATE TABLE alarm("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " time INTEGER NOT NULL,"
    " node TEXT NOT NULL,"
    " type TEXT NOT NULL,"
    " detail TEXT NOT NULL)",
    "CREATE TABLE node("
    " name TEXT NOT NULL PRIMARY KEY,"
    " addr TEXT NOT NULL,"
    " registered INTEGER NOT NULL,"
    " last_seen INTEGER NOT NULL,"
    " key_id INTEGER NOT NULL,"
    " n_sas INTEGER NOT NULL) WITHOUT ROWID",
    "INSERT INTO schema_version(version) VALUES (1)",
    NULL,
};

/* ---- helpers shared by the module ----------------------------------------------------------- */

void
ks_lock(struct ck_ksv_store *st)
{
    pthread_mutex_lock(&st->mu);
}

void
ks_unlock(struct ck_ksv_store *st)
{
    pthread_mutex_unlock(&st->mu);
}

int
ks_error(struct ck_ksv_store *st, const char *what)
{
    int code = sqlite3_errcode(st->db) & 0xff;
    int sys = sqlite3_system_errno(st->db);

    switch (code) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return ck_error_set(CK_ERR_DB, "%s: keying server store %s is busy (another writer "
                                       "holds it); retry", what, st->path);
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
        return ck_error_set(CK_ERR_PERM, "%s: keying server store %s: no write permission",
                            what, st->path);
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
        return ck_error_set(CK_ERR_DB, "keying server store %s is damaged or not a store",
                            st->path);
    case SQLITE_CANTOPEN:
        return ck_error_set(sys == EACCES || sys == EPERM ? CK_ERR_PERM : CK_ERR_IO,
                            "keying server store %s: cannot open%s%s", st->path,
                            sys ? ": " : "", sys ? strerror(sys) : "");
    case SQLITE_FULL:
        return ck_error_set(CK_ERR_IO, "keying server store %s: the disk is full", st->path);
    case SQLITE_IOERR:
        return ck_error_set(CK_ERR_IO, "keying server store %s: I/O error%s%s", st->path,
                            sys ? ": " : "", sys ? strerror(sys) : "");
    default:
        return ck_error_set(CK_ERR_DB, "%s: keying server store %s: %s", what, st->path,
                            sqlite3_errmsg(st->db));
    }
}

int
ks_exec(struct ck_ksv_store *st, const char *sql)
{
    if (sqlite3_exec(st->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return ks_error(st, "database");
    return 0;
}

int
ks_prepare(struct ck_ksv_store *st, const char *sql, sqlite3_stmt **out)
{
    *out = NULL;
    if (sqlite3_prepare_v2(st->db, sql, -1, out, NULL) != SQLITE_OK)
        return ks_error(st, "database");
    return 0;
}

int
ks_begin(struct ck_ksv_store *st)
{
    return ks_exec(st, "BEGIN IMMEDIATE");
}

int
ks_end(struct ck_ksv_store *st, int ret)
{
    if (ret == 0 && (ret = ks_exec(st, "COMMIT")) == 0)
        return 0;
    if (!sqlite3_get_autocommit(st->db))
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    return ret;
}

int
ks_check_name(const char *what, const char *s)
{
    size_t n;

    if (s == NULL || *s == '\0')
        return ck_error_set(CK_ERR_INVAL, "%s: empty", what);
    n = strnlen(s, CK_KSV_STORE_NAME);
    if (n >= CK_KSV_STORE_NAME)
        return ck_error_set(CK_ERR_INVAL, "%s: longer than %d bytes", what,
                            CK_KSV_STORE_NAME - 1);
    return 0;
}

void
ks_col_text(sqlite3_stmt *q, int col, char *dst, size_t size)
{
    const unsigned char *s = sqlite3_column_text(q, col);

    ck_strlcpy(dst, s != NULL ? (const char *)s : "", size);
}

int
ks_random_spi(uint32_t lo, uint32_t hi, uint32_t *spi)
{
    uint64_t span = (uint64_t)hi - lo + 1;
    uint32_t r;
    int ret;

    /* Rejection sampling: the spans used are powers of two or close to them. */
    for (;;) {
        if ((ret = ck_random_bytes(&r, sizeof(r))) != 0)
            return ret;
        if (span == (UINT64_C(1) << 32)) {
            *spi = r;
            return 0;
        }
        uint64_t lim = (UINT64_C(1) << 32) - ((UINT64_C(1) << 32) % span);
        if (r < lim) {
            *spi = lo + (uint32_t)(r % span);
            return 0;
        }
    }
}

void
ks_aad_init(struct ks_aad *a, const char *table)
{
    a->len = 0;
    ks_aad_str(a, "cablekey ksv store v1");
    ks_aad_str(a, table);
}

void
ks_aad_str(struct ks_aad *a, const char *s)
{
    size_t n = strnlen(s, CK_KSV_STORE_NAME);

    /* Names are checked (< CK_KSV_STORE_NAME) before they get here; the bound keeps the buffer
     * safe whatever happens. */
    if (a->len + 1 + n > sizeof(a->buf))
        abort();
    a->buf[a->len++] = (uint8_t)n;
    memcpy(a->buf + a->len, s, n);
    a->len += n;
}

void
ks_aad_u64(struct ks_aad *a, uint64_t v)
{
    if (a->len + 8 > sizeof(a->buf))
        abort();
    for (int i = 7; i >= 0; i--)
        a->buf[a->len++] = (uint8_t)(v >> (8 * i));
}

int
ks_seal(struct ck_ksv_store *st, const struct ks_aad *aad, const uint8_t *pt, size_t pt_len,
        uint8_t *out)
{
    uint8_t *nonce = out, *ct = out + KS_NONCE_LEN, *tag = out + KS_NONCE_LEN + pt_len;
    int len = 0, fin = 0;

    if (pt_len > INT32_MAX)
        return ck_error_set(CK_ERR_LIMIT, "seal: value too long");
    if (ck_random_bytes(nonce, KS_NONCE_LEN) != 0)
        return ck_error_set(CK_ERR_CRYPTO, "seal: no random nonce");
    if (EVP_EncryptInit_ex(st->enc, NULL, NULL, NULL, nonce) != 1 ||
        EVP_EncryptUpdate(st->enc, NULL, &len, aad->buf, (int)aad->len) != 1 ||
        EVP_EncryptUpdate(st->enc, ct, &len, pt, (int)pt_len) != 1 ||
        EVP_EncryptFinal_ex(st->enc, ct + len, &fin) != 1 ||
        EVP_CIPHER_CTX_ctrl(st->enc, EVP_CTRL_GCM_GET_TAG, KS_TAG_LEN, tag) != 1)
        return ck_error_set_ssl(CK_ERR_CRYPTO, "seal");
    return 0;
}

int
ks_open(struct ck_ksv_store *st, const struct ks_aad *aad, const uint8_t *ct, size_t ct_len,
        uint8_t *pt)
{
    size_t pt_len;
    int len = 0, fin = 0;

    if (ct_len < KS_SEAL_OVERHEAD || ct_len - KS_SEAL_OVERHEAD > INT32_MAX)
        return ck_error_set(CK_ERR_INTEGRITY, "sealed value of %zu bytes", ct_len);
    pt_len = ct_len - KS_SEAL_OVERHEAD;
    if (EVP_DecryptInit_ex(st->dec, NULL, NULL, NULL, ct) != 1 ||
        EVP_DecryptUpdate(st->dec, NULL, &len, aad->buf, (int)aad->len) != 1 ||
        EVP_DecryptUpdate(st->dec, pt, &len, ct + KS_NONCE_LEN, (int)pt_len) != 1 ||
        EVP_CIPHER_CTX_ctrl(st->dec, EVP_CTRL_GCM_SET_TAG, KS_TAG_LEN,
                            (void *)(ct + KS_NONCE_LEN + pt_len)) != 1)
        return ck_error_set_ssl(CK_ERR_CRYPTO, "open sealed value");
    if (EVP_DecryptFinal_ex(st->dec, pt + len, &fin) != 1) {
        ck_memzero(pt, pt_len);
        return ck_error_set(CK_ERR_INTEGRITY, "a stored key does not decrypt");
    }
    return 0;
}

void
ck_ksv_store_test_split_commit(struct ck_ksv_store *st, bool split)
{
    st->split_commit = split;
}

/* ---- files ---------------------------------------------------------------------------------- */

/* The database file: created 0600 when create and absent; refused when group or others may
 * access it (it holds every sealed key and the topology's state). */
static int
ks_check_db_file(const char *path, bool create, bool *created)
{
    struct stat sb;
    int fd;

    *created = false;
    if (lstat(path, &sb) != 0) {
        if (errno != ENOENT)
            return ck_error_set(CK_ERR_IO, "keying server store %s: %s", path, strerror(errno));
        if (!create)
            return ck_error_set(CK_ERR_NOTFOUND, "keying server store %s does not exist", path);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
            return ck_error_set(CK_ERR_IO, "keying server store %s: create: %s", path,
                                strerror(errno));
        /* The umask could only have made it stricter; make it exactly 0600 anyway. */
        if (fchmod(fd, 0600) != 0) {
            int e = errno;
            close(fd);
            unlink(path);
            return ck_error_set(CK_ERR_IO, "keying server store %s: chmod: %s", path,
                                strerror(e));
        }
        close(fd);
        *created = true;
        return 0;
    }
    if (!S_ISREG(sb.st_mode))
        return ck_error_set(CK_ERR_PERM, "keying server store %s is not a regular file", path);
    if (sb.st_mode & 077)
        return ck_error_set(CK_ERR_PERM,
                            "keying server store %s has mode %04o: group or others may access "
                            "it; it must be 0600: chmod go= %s",
                            path, (unsigned)(sb.st_mode & 07777), path);
    if (sb.st_size == 0 && create) {
        /* A creation killed before its first commit leaves an empty file (the WAL switch
         * writes the header, so a store with anything committed is never empty, even with
         * its pages still in the WAL): finish the creation instead of refusing forever. */
        char wal[4096];
        struct stat wb;

        snprintf(wal, sizeof(wal), "%s-wal", path);
        if (lstat(wal, &wb) != 0 || wb.st_size == 0)
            *created = true;
    }
    return 0;
}

static int
ks_read_key_file(const char *path, uint8_t key[KS_MASTER_KEY_LEN])
{
    uint8_t buf[KS_MASTER_KEY_LEN + 1];
    size_t len = 0;
    struct stat sb;
    int fd, ret = 0;

    fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return ck_error_set(errno == ENOENT ? CK_ERR_NOTFOUND : CK_ERR_IO,
                            "keying server key file %s: %s", path, strerror(errno));
    if (fstat(fd, &sb) != 0) {
        ret = ck_error_set(CK_ERR_IO, "keying server key file %s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        ret = ck_error_set(CK_ERR_PERM, "keying server key file %s is not a regular file", path);
        goto out;
    }
    if (sb.st_uid != geteuid()) {
        ret = ck_error_set(CK_ERR_PERM, "keying server key file %s is owned by uid %u, not %u",
                           path, (unsigned)sb.st_uid, (unsigned)geteuid());
        goto out;
    }
    if (sb.st_mode & 077) {
        ret = ck_error_set(CK_ERR_PERM,
                           "keying server key file %s has mode %04o; it must be 0600: chmod "
                           "go= %s", path, (unsigned)(sb.st_mode & 07777), path);
        goto out;
    }
    if ((ret = ck_fd_read_all(fd, buf, sizeof(buf), &len)) != 0) {
        ret = ck_error_set(ret, "keying server key file %s: %s", path, ck_error_context());
        goto out;
    }
    if (len != KS_MASTER_KEY_LEN) {
        ret = ck_error_set(CK_ERR_DECODE, "keying server key file %s: %zu bytes, expected %d",
                           path, len, KS_MASTER_KEY_LEN);
        goto out;
    }
    memcpy(key, buf, KS_MASTER_KEY_LEN);
out:
    ck_memzero(buf, sizeof(buf));
    close(fd);
    return ret;
}

/* With a new database: an existing key file is used (an operator may provision it), else a
 * new random key is written (0600, never replacing anything). */
static int
ks_create_key_file(const char *path, uint8_t key[KS_MASTER_KEY_LEN], bool *created)
{
    int ret;

    *created = false;
    ret = ks_read_key_file(path, key);
    if (ret != CK_ERR_NOTFOUND)
        return ret;
    ck_error_clear();
    if ((ret = ck_random_bytes(key, KS_MASTER_KEY_LEN)) != 0)
        return ret;
    if ((ret = ck_file_write_atomic(path, key, KS_MASTER_KEY_LEN, 0)) != 0)
        return ck_error_set(ret, "keying server key file %s: %s", path, ck_error_context());
    *created = true;
    return 0;
}

/* ---- open / close --------------------------------------------------------------------------- */

static int64_t
ks_scalar(struct ck_ksv_store *st, const char *sql, int64_t dflt)
{
    sqlite3_stmt *q = NULL;
    int64_t v = dflt;

    if (sqlite3_prepare_v2(st->db, sql, -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW)
        v = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return v;
}

static void
ks_check_aad(struct ks_aad *a)
{
    ks_aad_init(a, "master_check");
    ks_aad_u64(a, 1);
}

static int
ks_schema_create(struct ck_ksv_store *st)
{
    uint8_t sealed[sizeof(KS_CHECK_PLAIN) - 1 + KS_SEAL_OVERHEAD];
    struct ks_aad aad;
    sqlite3_stmt *q = NULL;
    char pragma[64];
    int ret;

    if ((ret = ks_begin(st)) != 0)
        return ret;
    for (size_t i = 0; ks_schema_v1[i] != NULL; i++)
        if ((ret = ks_exec(st, ks_schema_v1[i])) != 0)
            goto out;
    ks_check_aad(&aad);
    if ((ret = ks_seal(st, &aad, (const uint8_t *)KS_CHECK_PLAIN, sizeof(KS_CHECK_PLAIN) - 1,
                       sealed)) != 0 ||
        (ret = ks_prepare(st, "INSERT INTO master_check(id, sealed) VALUES (1, ?)", &q)) != 0)
        goto out;
    sqlite3_bind_blob(q, 1, sealed, (int)sizeof(sealed), SQLITE_STATIC);
    if (sqlite3_step(q) != SQLITE_DONE) {
        ret = ks_error(st, "create store");
        goto out;
    }
    snprintf(pragma, sizeof(pragma), "PRAGMA application_id = %d", KS_APPLICATION_ID);
    ret = ks_exec(st, pragma);
out:
    sqlite3_finalize(q);
    return ks_end(st, ret);
}

static int
ks_schema_check(struct ck_ksv_store *st)
{
    uint8_t plain[sizeof(KS_CHECK_PLAIN) - 1];
    struct ks_aad aad;
    sqlite3_stmt *q = NULL;
    int64_t version;
    int ret;

    if (ks_scalar(st, "PRAGMA application_id", 0) != KS_APPLICATION_ID)
        return ck_error_set(CK_ERR_DB, "%s is not a keying server store", st->path);
    version = ks_scalar(st, "SELECT version FROM schema_version", -1);
    if (version != KS_SCHEMA_VERSION)
        return ck_error_set(CK_ERR_DB, "keying server store %s has schema version %" PRId64
                                       "; this program knows %d",
                            st->path, version, KS_SCHEMA_VERSION);
    if ((ret = ks_prepare(st, "SELECT sealed FROM master_check WHERE id = 1", &q)) != 0)
        return ret;
    if (sqlite3_step(q) != SQLITE_ROW ||
        (size_t)sqlite3_column_bytes(q, 0) != sizeof(plain) + KS_SEAL_OVERHEAD) {
        ret = ck_error_set(CK_ERR_DB, "keying server store %s: no master key check", st->path);
        goto out;
    }
    ks_check_aad(&aad);
    if ((ret = ks_open(st, &aad, sqlite3_column_blob(q, 0), sizeof(plain) + KS_SEAL_OVERHEAD,
                       plain)) != 0 ||
        memcmp(plain, KS_CHECK_PLAIN, sizeof(plain)) != 0)
        ret = ck_error_set(CK_ERR_INTEGRITY,
                           "the key file does not hold the master key of keying server store "
                           "%s (wrong key file?)", st->path);
out:
    sqlite3_finalize(q);
    return ret;
}

int
ck_ksv_store_open(const char *uri, const char *key_file, bool create,
                  struct ck_ksv_store **out)
{
    struct ck_ksv_store *st = NULL;
    const char *path;
    char *kpath = NULL;
    bool db_created = false, key_created = false;
    int ret;

    if (out == NULL)
        return ck_error_set(CK_ERR_INVAL, "keying server store: no output");
    *out = NULL;
    if (uri == NULL || *uri == '\0')
        return ck_error_set(CK_ERR_INVAL, "keying server store: no path");
    path = strncmp(uri, "sqlite:", 7) == 0 ? uri + 7 : uri;
    if (*path == '\0')
        return ck_error_set(CK_ERR_INVAL, "keying server store: no path in %s", uri);
    if (key_file != NULL && *key_file == '\0')
        return ck_error_set(CK_ERR_INVAL, "keying server store: empty key file name");

    if ((st = calloc(1, sizeof(*st))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "keying server store: out of memory");
    pthread_mutex_init(&st->mu, NULL);
    if ((st->path = strdup(path)) == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "keying server store: out of memory");
        goto out;
    }
    if (key_file != NULL) {
        kpath = strdup(key_file);
    } else if ((kpath = malloc(strlen(path) + sizeof(".key"))) != NULL) {
        memcpy(kpath, path, strlen(path));
        memcpy(kpath + strlen(path), ".key", sizeof(".key"));
    }
    if (kpath == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "keying server store: out of memory");
        goto out;
    }

    if ((ret = ks_check_db_file(path, create, &db_created)) != 0)
        goto out;
    ret = db_created ? ks_create_key_file(kpath, st->mkey, &key_created)
                     : ks_read_key_file(kpath, st->mkey);
    if (ret != 0)
        goto out;
    if ((st->enc = EVP_CIPHER_CTX_new()) == NULL || (st->dec = EVP_CIPHER_CTX_new()) == NULL ||
        EVP_EncryptInit_ex(st->enc, EVP_aes_256_gcm(), NULL, st->mkey, NULL) != 1 ||
        EVP_DecryptInit_ex(st->dec, EVP_aes_256_gcm(), NULL, st->mkey, NULL) != 1) {
        ret = ck_error_set_ssl(CK_ERR_CRYPTO, "keying server store: AES-256-GCM");
        goto out;
    }
    if (sqlite3_open_v2(path, &st->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW,
                        NULL) != SQLITE_OK) {
        ret = st->db != NULL ? ks_error(st, "open")
                             : ck_error_set(CK_ERR_NOMEM, "keying server store: out of memory");
        goto out;
    }
    sqlite3_busy_timeout(st->db, KS_BUSY_TIMEOUT_MS);
    sqlite3_extended_result_codes(st->db, 0);
    /* mmap for reads: a restart loads every node row of every group (1.35 M rows for 10^6
     * members), and reading them through the map halves the time against read() per page. */
    if ((ret = ks_exec(st, "PRAGMA trusted_schema = OFF")) != 0 ||
        (ret = ks_exec(st, "PRAGMA foreign_keys = ON")) != 0 ||
        (ret = ks_exec(st, "PRAGMA mmap_size = 268435456")) != 0)
        goto out;
    if (db_created) {
        /* WAL before the schema: the very first transaction is already crash safe. */
        if ((ret = ks_exec(st, "PRAGMA journal_mode = WAL")) != 0 ||
            (ret = ks_exec(st, "PRAGMA synchronous = FULL")) != 0 ||
            (ret = ks_schema_create(st)) != 0)
            goto out;
    } else {
        /* The check first: a file that is not ours is left exactly as it was. */
        if ((ret = ks_schema_check(st)) != 0 ||
            (ret = ks_exec(st, "PRAGMA journal_mode = WAL")) != 0 ||
            (ret = ks_exec(st, "PRAGMA synchronous = FULL")) != 0)
            goto out;
    }
    if ((ret = ks_prepare(st, "PRAGMA data_version", &st->st_version)) != 0)
        goto out;
    if (sqlite3_step(st->st_version) != SQLITE_ROW) {
        ret = ks_error(st, "data version");
        goto out;
    }
    st->data_version = sqlite3_column_int64(st->st_version, 0);
    sqlite3_reset(st->st_version);
    *out = st;
    st = NULL;
out:
    ck_ksv_store_close(st);
    if (ret != 0 && db_created) {
        /* Nothing half-made is left behind for the next start to trip over. */
        char side[4096];
        unlink(path);
        snprintf(side, sizeof(side), "%s-wal", path);
        unlink(side);
        snprintf(side, sizeof(side), "%s-shm", path);
        unlink(side);
        if (key_created)
            unlink(kpath);
    }
    free(kpath);
    return ret;
}

void
ck_ksv_store_close(struct ck_ksv_store *st)
{
    if (st == NULL)
        return;
    sqlite3_finalize(st->st_version);
    sqlite3_close(st->db);
    EVP_CIPHER_CTX_free(st->enc);
    EVP_CIPHER_CTX_free(st->dec);
    ck_memzero(st->mkey, sizeof(st->mkey));
    pthread_mutex_destroy(&st->mu);
    free(st->path);
    free(st);
}

int
ck_ksv_store_changed(struct ck_ksv_store *st, bool *changed)
{
    int64_t dv;
    int ret = 0;

    if (st == NULL || changed == NULL)
        return ck_error_set(CK_ERR_INVAL, "store changed: no store");
    *changed = false;
    ks_lock(st);
    if (sqlite3_step(st->st_version) != SQLITE_ROW) {
        ret = ks_error(st, "data version");
        sqlite3_reset(st->st_version);
        goto out;
    }
    dv = sqlite3_column_int64(st->st_version, 0);
    sqlite3_reset(st->st_version);
    if (dv != st->data_version) {
        st->data_version = dv;
        *changed = true;
    }
out:
    ks_unlock(st);
    return ret;
}

/* ---- signing key ---------------------------------------------------------------------------- */

static void
ks_signing_aad(struct ks_aad *a)
{
    ks_aad_init(a, "signing_key");
    ks_aad_u64(a, 1);
}

int
ck_ksv_store_signing_key(struct ck_ksv_store *st, uint8_t priv[32])
{
    uint8_t sealed[32 + KS_SEAL_OVERHEAD], key[32];
    struct ks_aad aad;
    sqlite3_stmt *q = NULL;
    int64_t now;
    int rc, ret;

    if (st == NULL || priv == NULL)
        return ck_error_set(CK_ERR_INVAL, "signing key: no store");
    ks_lock(st);
    ks_signing_aad(&aad);
    if ((ret = ks_begin(st)) != 0)
        goto unlock;
    if ((ret = ks_prepare(st, "SELECT sealed FROM signing_key WHERE id = 1", &q)) != 0)
        goto out;
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        if ((size_t)sqlite3_column_bytes(q, 0) != sizeof(sealed)) {
            ret = ck_error_set(CK_ERR_INTEGRITY, "signing key: malformed row");
            goto out;
        }
        if ((ret = ks_open(st, &aad, sqlite3_column_blob(q, 0), sizeof(sealed), key)) != 0) {
            ret = ck_error_set(ret, "signing key does not decrypt (wrong master key?)");
            goto out;
        }
        goto done;
    }
    if (rc != SQLITE_DONE) {
        ret = ks_error(st, "signing key");
        goto out;
    }
    sqlite3_finalize(q);
    q = NULL;
    /* An Ed25519 private key is 32 uniformly random bytes (RFC 8032 section 5.1.5). */
    if ((ret = ck_random_bytes(key, sizeof(key))) != 0 ||
        (ret = ks_seal(st, &aad, key, sizeof(key), sealed)) != 0 ||
        (ret = ks_prepare(st, "INSERT INTO signing_key(id, sealed, created) VALUES (1, ?, ?)",
                          &q)) != 0)
        goto out;
    ck_now(&now, NULL);
    sqlite3_bind_blob(q, 1, sealed, (int)sizeof(sealed), SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, now);
    if (sqlite3_step(q) != SQLITE_DONE) {
        ret = ks_error(st, "signing key");
        goto out;
    }
done:
    memcpy(priv, key, sizeof(key));
out:
    sqlite3_finalize(q);
    ret = ks_end(st, ret);
    if (ret != 0)
        ck_memzero(priv, 32);
unlock:
    ck_memzero(key, sizeof(key));
    ks_unlock(st);
    return ret;
}

/* ---- link SAs ------------------------------------------------------------------------------- */

/* The identity a link SA's keys are bound to: receiver and SPI (unique together), sender and
 * generation, so keys copied onto another SA's row do not open. */
static void
ks_sa_aad(struct ks_aad *a, const char *src, const char *dst, uint32_t spi, uint32_t gen)
{
    ks_aad_init(a, "sa");
    ks_aad_str(a, dst);
    ks_aad_u64(a, spi);
    ks_aad_str(a, src);
    ks_aad_u64(a, gen);
}

static int
ks_sa_exists(struct ck_ksv_store *st, const char *dst, uint32_t spi, bool *exists)
{
    sqlite3_stmt *q = NULL;
    int rc, ret;

    if ((ret = ks_prepare(st, "SELECT 1 FROM sa WHERE dst = ? AND spi = ?", &q)) != 0)
        return ret;
    sqlite3_bind_text(q, 1, dst, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, spi);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        *exists = rc == SQLITE_ROW;
    else
        ret = ks_error(st, "sa spi");
    sqlite3_finalize(q);
    return ret;
}

int
ck_ksv_store_sa_put(struct ck_ksv_store *st, struct ck_ksv_sa_row *row)
{
    uint8_t plain[KS_SA_PLAIN_MAX], sealed[KS_SA_PLAIN_MAX + KS_SEAL_OVERHEAD];
    size_t plain_len = 0;
    struct ks_aad aad;
    sqlite3_stmt *q = NULL;
    uint32_t spi;
    int64_t new_id = 0;
    bool exists = false;
    int ret;

    if (st == NULL || row == NULL)
        return ck_error_set(CK_ERR_INVAL, "sa put: no store or row");
    if ((ret = ks_check_name("sa src", row->src)) != 0 ||
        (ret = ks_check_name("sa dst", row->dst)) != 0 ||
        (ret = ks_check_name("sa policy", row->policy)) != 0)
        return ret;
    if (row->enc_key_len > CK_KSV_STORE_KEY || row->auth_key_len > CK_KSV_STORE_KEY)
        return ck_error_set(CK_ERR_INVAL, "sa put: key longer than %d bytes", CK_KSV_STORE_KEY);
    if (row->spi != 0 && (row->spi < CK_KSV_STORE_SPI_MIN || row->spi > CK_KSV_STORE_SPI_MAX))
        return ck_error_set(CK_ERR_INVAL, "sa put: link SPI 0x%08x outside [0x%x, 0x%x]",
                            row->spi, CK_KSV_STORE_SPI_MIN, CK_KSV_STORE_SPI_MAX);
    plain[plain_len++] = row->enc_key_len;
    plain[plain_len++] = row->auth_key_len;
    memcpy(plain + plain_len, row->enc_key, row->enc_key_len);
    plain_len += row->enc_key_len;
    memcpy(plain + plain_len, row->auth_key, row->auth_key_len);
    plain_len += row->auth_key_len;

    ks_lock(st);
    if ((ret = ks_begin(st)) != 0)
        goto unlock;
    spi = row->spi;
    if (spi != 0) {
        if ((ret = ks_sa_exists(st, row->dst, spi, &exists)) != 0)
            goto out;
        if (exists) {
            ret = ck_error_set(CK_ERR_EXISTS, "sa put: %s already receives SPI 0x%08x",
                               row->dst, spi);
            goto out;
        }
    } else {
        /* Inside the write transaction: no other writer can take the SPI between the check
         * and the insert; UNIQUE (dst, spi) is the backstop. */
        int tries;
        for (tries = 0; tries < KS_SPI_TRIES; tries++) {
            if ((ret = ks_random_spi(CK_KSV_STORE_SPI_MIN, CK_KSV_STORE_SPI_MAX, &spi)) != 0 ||
                (ret = ks_sa_exists(st, row->dst, spi, &exists)) != 0)
                goto out;
            if (!exists)
                break;
        }
        if (tries == KS_SPI_TRIES) {
            ret = ck_error_set(CK_ERR_FULL, "sa put: no free SPI for %s", row->dst);
            goto out;
        }
    }
    ks_sa_aad(&aad, row->src, row->dst, spi, row->generation);
    if ((ret = ks_seal(st, &aad, plain, plain_len, sealed)) != 0)
        goto out;
    if ((ret = ks_prepare(st, "INSERT INTO sa(src, dst, policy, spi, sealed, created, expires,"
                              " generation) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", &q)) != 0)
        goto out;
    sqlite3_bind_text(q, 1, row->src, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, row->dst, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, row->policy, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 4, spi);
    sqlite3_bind_blob(q, 5, sealed, (int)(plain_len + KS_SEAL_OVERHEAD), SQLITE_STATIC);
    sqlite3_bind_int64(q, 6, row->created);
    sqlite3_bind_int64(q, 7, row->expires);
    sqlite3_bind_int64(q, 8, row->generation);
    if (sqlite3_step(q) != SQLITE_DONE) {
        /* The SPI was checked free: a constraint here is the link's generation. */
        if ((sqlite3_errcode(st->db) & 0xff) == SQLITE_CONSTRAINT)
            ret = ck_error_set(CK_ERR_EXISTS, "sa put: link %s => %s already has generation %u",
                               row->src, row->dst, row->generation);
        else
            ret = ks_error(st, "sa put");
        goto out;
    }
    new_id = sqlite3_last_insert_rowid(st->db);
out:
    sqlite3_finalize(q);
    if ((ret = ks_end(st, ret)) == 0) {
        row->id = new_id;
        row->spi = spi;
    }
unlock:
    ks_unlock(st);
    ck_memzero(plain, sizeof(plain));
    return ret;
}

static int
ks_sa_read(struct ck_ksv_store *st, sqlite3_stmt *q, struct ck_ksv_sa_row *r)
{
    uint8_t plain[KS_SA_PLAIN_MAX];
    const uint8_t *sealed;
    struct ks_aad aad;
    size_t n;
    int64_t spi, gen;
    int ret;

    memset(r, 0, sizeof(*r));
    r->id = sqlite3_column_int64(q, 0);
    ks_col_text(q, 1, r->src, sizeof(r->src));
    ks_col_text(q, 2, r->dst, sizeof(r->dst));
    ks_col_text(q, 3, r->policy, sizeof(r->policy));
    spi = sqlite3_column_int64(q, 4);
    r->created = sqlite3_column_int64(q, 6);
    r->expires = sqlite3_column_int64(q, 7);
    gen = sqlite3_column_int64(q, 8);
    r->spi = (uint32_t)spi;
    r->generation = (uint32_t)gen;
    sealed = sqlite3_column_blob(q, 5);
    n = (size_t)sqlite3_column_bytes(q, 5);
    if (sealed == NULL || n < KS_SEAL_OVERHEAD + 2 || n > sizeof(plain) + KS_SEAL_OVERHEAD)
        return ck_error_set(CK_ERR_INTEGRITY, "sa %" PRId64 ": malformed keys", r->id);
    ks_sa_aad(&aad, r->src, r->dst, r->spi, r->generation);
    if ((ret = ks_open(st, &aad, sealed, n, plain)) != 0)
        return ck_error_set(ret, "sa %" PRId64 " (%s => %s spi 0x%08x): keys do not decrypt "
                                 "(wrong master key, or moved from another row)",
                            r->id, r->src, r->dst, r->spi);
    n -= KS_SEAL_OVERHEAD;
    if (plain[0] > CK_KSV_STORE_KEY || plain[1] > CK_KSV_STORE_KEY ||
        (size_t)2 + plain[0] + plain[1] != n) {
        ck_memzero(plain, sizeof(plain));
        return ck_error_set(CK_ERR_INTEGRITY, "sa %" PRId64 ": malformed keys", r->id);
    }
    r->enc_key_len = plain[0];
    r->auth_key_len = plain[1];
    memcpy(r->enc_key, plain + 2, r->enc_key_len);
    memcpy(r->auth_key, plain + 2 + r->enc_key_len, r->auth_key_len);
    ck_memzero(plain, sizeof(plain));
    return 0;
}

int
ck_ksv_store_sa_list(struct ck_ksv_store *st, const char *node, struct ck_ksv_sa_row **rows,
                     size_t *n)
{
    struct ck_ksv_sa_row *v = NULL, *nv;
    size_t count = 0, cap = 0;
    sqlite3_stmt *q = NULL;
    int rc, ret;

    if (st == NULL || rows == NULL || n == NULL)
        return ck_error_set(CK_ERR_INVAL, "sa list: no store");
    *rows = NULL;
    *n = 0;
    if (node != NULL && (ret = ks_check_name("sa list node", node)) != 0)
        return ret;
    ks_lock(st);
    ret = ks_prepare(st, node != NULL
                             ? "SELECT id, src, dst, policy, spi, sealed, created, expires,"
                               " generation FROM sa WHERE src = ?1 OR dst = ?1 ORDER BY id"
                             : "SELECT id, src, dst, policy, spi, sealed, created, expires,"
                               " generation FROM sa ORDER BY id",
                     &q);
    if (ret != 0)
        goto out;
    if (node != NULL)
        sqlite3_bind_text(q, 1, node, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (count == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            if ((nv = malloc(ncap * sizeof(*nv))) == NULL) {
                ret = ck_error_set(CK_ERR_NOMEM, "sa list: out of memory");
                goto out;
            }
            /* A copy, not realloc: the old block held keys and is wiped before it goes. */
            if (count != 0)
                memcpy(nv, v, count * sizeof(*nv));
            ck_free_secret(v, cap * sizeof(*v));
            v = nv;
            cap = ncap;
        }
        if ((ret = ks_sa_read(st, q, &v[count])) != 0)
            goto out;
        count++;
    }
    if (rc != SQLITE_DONE) {
        ret = ks_error(st, "sa list");
        goto out;
    }
    *rows = v;
    *n = count;
    v = NULL;
    cap = 0;
out:
    sqlite3_finalize(q);
    ks_unlock(st);
    ck_free_secret(v, cap * sizeof(*v));
    return ret;
}

int
ck_ksv_store_sa_delete(struct ck_ksv_store *st, int64_t id)
{
    sqlite3_stmt *q = NULL;
    int ret;

    if (st == NULL)
        return ck_error_set(CK_ERR_INVAL, "sa delete: no store");
    ks_lock(st);
    if ((ret = ks_prepare(st, "DELETE FROM sa WHERE id = ?", &q)) != 0)
        goto out;
    sqlite3_bind_int64(q, 1, id);
    if (sqlite3_step(q) != SQLITE_DONE)
        ret = ks_error(st, "sa delete");
    else if (sqlite3_changes(st->db) == 0)
        ret = ck_error_set(CK_ERR_NOTFOUND, "sa %" PRId64 " not found", id);
out:
    sqlite3_finalize(q);
    ks_unlock(st);
    return ret;
}

void
ck_ksv_store_sa_free(struct ck_ksv_sa_row *rows, size_t n)
{
    ck_free_secret(rows, n * sizeof(*rows));
}
