/* SQLite backend: the only file that speaks SQL. WAL journal, synchronous=NORMAL, a busy timeout,
 * one connection per backend object (SQLITE_OPEN_NOMUTEX: the caller serializes). The hot-path
 * statements (principal and key lookup, generation) are prepared once at open. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "cablekey/error.h"
#include "cablekey/util.h"
#include "store/store_int.h"

#define SQLITE_SCHEMA_VERSION 1
#define SQLITE_BUSY_TIMEOUT_MS 5000
/* Change log rows kept; a cache further behind than this flushes everything. */
#define SQLITE_CHANGELOG_KEEP 10000
/* A cache that sees more changes than this at once flushes everything instead. */
#define SQLITE_CHANGES_MAX 1000

struct sqlite_be {
    sqlite3 *db;
    bool readonly;
    sqlite3_stmt *get_princ;
    sqlite3_stmt *get_keys;
    sqlite3_stmt *get_gen;
};

static const char *const schema_sql[] = {
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
};

static int
db_error(struct sqlite_be *be, const char *what)
{
    int code = sqlite3_errcode(be->db);

    if (code == SQLITE_READONLY)
        return ck_error_set(CK_ERR_PERM, "%s: database is read-only", what);
    return ck_error_set(CK_ERR_DB, "%s: %s", what, sqlite3_errmsg(be->db));
}

static int
exec_sql(struct sqlite_be *be, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(be->db, sql, NULL, NULL, &msg);

    if (rc != SQLITE_OK) {
        int ret = ck_error_set(rc == SQLITE_READONLY ? CK_ERR_PERM : CK_ERR_DB, "%s: %s", sql,
                               msg != NULL ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return ret;
    }
    return 0;
}

static int
prepare(struct sqlite_be *be, const char *sql, sqlite3_stmt **st)
{
    if (sqlite3_prepare_v2(be->db, sql, -1, st, NULL) != SQLITE_OK)
        return db_error(be, "prepare");
    return 0;
}

static int
begin_write(struct sqlite_be *be)
{
    if (be->readonly)
        return ck_error_set(CK_ERR_PERM, "database opened read-only");
    /* IMMEDIATE takes the write lock now, so read-then-write sequences cannot deadlock. */
    return exec_sql(be, "BEGIN IMMEDIATE");
}

static int
end_write(struct sqlite_be *be, int ret)
{
    if (ret == 0)
        return exec_sql(be, "COMMIT");
    sqlite3_exec(be->db, "ROLLBACK", NULL, NULL, NULL);
    return ret;
}

/* Bumps the generation and logs the change, inside the caller's transaction. */
static int
bump_generation(struct sqlite_be *be, const char *name)
{
    sqlite3_stmt *st = NULL;
    int ret = 0;

    if ((ret = exec_sql(be, "UPDATE generation SET value = value + 1 WHERE id = 1")) != 0)
        return ret;
    if ((ret = prepare(be, "INSERT INTO changelog(generation, name) "
                           "SELECT value, ? FROM generation WHERE id = 1", &st)) != 0)
        return ret;
    if (name != NULL)
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 1);
    if (sqlite3_step(st) != SQLITE_DONE)
        ret = db_error(be, "changelog");
    sqlite3_finalize(st);
    if (ret != 0)
        return ret;
    if ((ret = prepare(be, "DELETE FROM changelog WHERE generation <= "
                           "(SELECT value FROM generation WHERE id = 1) - ?", &st)) != 0)
        return ret;
    sqlite3_bind_int(st, 1, SQLITE_CHANGELOG_KEEP);
    if (sqlite3_step(st) != SQLITE_DONE)
        ret = db_error(be, "trim changelog");
    sqlite3_finalize(st);
    return ret;
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
    sqlite3_close(be->db);
    free(be);
}

static int
check_schema_version(struct sqlite_be *be)
{
    sqlite3_stmt *st = NULL;
    int ret = 0;

    if (sqlite3_prepare_v2(be->db, "SELECT version FROM schema_version", -1, &st, NULL) !=
        SQLITE_OK) {
        ret = ck_error_set(CK_ERR_DB, "not a cablekey database (%s)", sqlite3_errmsg(be->db));
        goto out;
    }
    if (sqlite3_step(st) != SQLITE_ROW) {
        ret = ck_error_set(CK_ERR_DB, "schema_version missing");
        goto out;
    }
    if (sqlite3_column_int(st, 0) != SQLITE_SCHEMA_VERSION)
        ret = ck_error_set(CK_ERR_UNSUPPORTED, "database schema version %d, expected %d",
                           sqlite3_column_int(st, 0), SQLITE_SCHEMA_VERSION);
out:
    sqlite3_finalize(st);
    return ret;
}

static int
sqlite_open(const char *path, unsigned flags, bool create, void **out)
{
    struct sqlite_be *be = NULL;
    int oflags = SQLITE_OPEN_NOMUTEX;
    int rc, ret = 0;

    *out = NULL;
    be = calloc(1, sizeof(*be));
    if (be == NULL)
        return ck_error_set(CK_ERR_NOMEM, "sqlite backend");
    be->readonly = (flags & CK_STORE_READONLY) != 0 && !create;
    oflags |= be->readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
    rc = sqlite3_open_v2(path, &be->db, oflags, NULL);
    if (rc != SQLITE_OK) {
        if (rc == SQLITE_CANTOPEN)
            ret = ck_error_set(CK_ERR_NOTFOUND, "database %s: cannot open", path);
        else
            ret = ck_error_set(CK_ERR_DB, "database %s: %s", path,
                               be->db ? sqlite3_errmsg(be->db) : sqlite3_errstr(rc));
        goto out;
    }
    sqlite3_extended_result_codes(be->db, 0);
    sqlite3_busy_timeout(be->db, SQLITE_BUSY_TIMEOUT_MS);
    if ((ret = exec_sql(be, "PRAGMA foreign_keys = ON")) != 0)
        goto out;
    if (create && (ret = exec_sql(be, "PRAGMA journal_mode = WAL")) != 0)
        goto out;
    if ((ret = exec_sql(be, "PRAGMA synchronous = NORMAL")) != 0)
        goto out;
    if (!create) {
        if ((ret = check_schema_version(be)) != 0)
            goto out;
        if ((ret = prepare(be,
                           "SELECT id, name, attributes, max_life, max_renew, expires, pw_expires,"
                           " kvno, created, modified FROM principal WHERE name = ?",
                           &be->get_princ)) != 0 ||
            (ret = prepare(be,
                           "SELECT kvno, enctype, salt_type, salt, mkvno, key_enc FROM key"
                           " WHERE principal_id = ? ORDER BY kvno DESC, ord ASC",
                           &be->get_keys)) != 0 ||
            (ret = prepare(be, "SELECT value FROM generation WHERE id = 1", &be->get_gen)) != 0)
            goto out;
    }
    *out = be;
    be = NULL;
out:
    sqlite_close(be);
    return ret;
}

static int
sqlite_init_schema(void *arg, const ck_realm_info *realm, const struct ck_store_mkey_row *mkey,
                   int64_t now)
{
    struct sqlite_be *be = arg;
    sqlite3_stmt *st = NULL;
    char enctypes[CK_STORE_MAX_ENCTYPES * 12 + 1];
    size_t pos = 0;
    int ret;

    enctypes[0] = '\0';
    for (size_t i = 0; i < realm->n_enctypes && i < CK_STORE_MAX_ENCTYPES; i++) {
        int n = snprintf(enctypes + pos, sizeof(enctypes) - pos, "%s%d", i ? "," : "",
                         (int)realm->enctypes[i]);
        if (n < 0 || (size_t)n >= sizeof(enctypes) - pos)
            return ck_error_set(CK_ERR_LIMIT, "enctype list");
        pos += (size_t)n;
    }
    if ((ret = begin_write(be)) != 0)
        return ret;
    for (size_t i = 0; i < sizeof(schema_sql) / sizeof(schema_sql[0]); i++) {
        if ((ret = exec_sql(be, schema_sql[i])) != 0)
            goto out;
    }
    if ((ret = prepare(be, "INSERT INTO schema_version(version) VALUES (?)", &st)) != 0)
        goto out;
    sqlite3_bind_int(st, 1, SQLITE_SCHEMA_VERSION);
    if (sqlite3_step(st) != SQLITE_DONE) {
        ret = db_error(be, "schema_version");
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    if ((ret = prepare(be, "INSERT INTO realm(id, name, enctypes, max_life, max_renew,"
                           " master_kvno) VALUES (1, ?, ?, ?, ?, ?)", &st)) != 0)
        goto out;
    sqlite3_bind_text(st, 1, realm->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, enctypes, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, realm->max_life);
    sqlite3_bind_int64(st, 4, realm->max_renew);
    sqlite3_bind_int64(st, 5, mkey->kvno);
    if (sqlite3_step(st) != SQLITE_DONE) {
        ret = db_error(be, "realm");
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    if ((ret = prepare(be, "INSERT INTO master_key(kvno, enctype, check_value, created)"
                           " VALUES (?, ?, ?, ?)", &st)) != 0)
        goto out;
    sqlite3_bind_int64(st, 1, mkey->kvno);
    sqlite3_bind_int(st, 2, mkey->enctype);
    sqlite3_bind_blob(st, 3, mkey->check, (int)mkey->check_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, now);
    if (sqlite3_step(st) != SQLITE_DONE) {
        ret = db_error(be, "master_key");
        goto out;
    }
    ret = bump_generation(be, NULL);
out:
    sqlite3_finalize(st);
    ret = end_write(be, ret);
    if (ret != 0)
        return ret;
    /* Now that the tables exist, prepare the hot-path statements as a normal open does. */
    if ((ret = prepare(be,
                       "SELECT id, name, attributes, max_life, max_renew, expires, pw_expires,"
                       " kvno, created, modified FROM principal WHERE name = ?",
                       &be->get_princ)) != 0 ||
        (ret = prepare(be,
                       "SELECT kvno, enctype, salt_type, salt, mkvno, key_enc FROM key"
                       " WHERE principal_id = ? ORDER BY kvno DESC, ord ASC",
                       &be->get_keys)) != 0 ||
        (ret = prepare(be, "SELECT value FROM generation WHERE id = 1", &be->get_gen)) != 0)
        return ret;
    return 0;
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
    if ((ret = prepare(be, "SELECT name, enctypes, max_life, max_renew, master_kvno FROM realm"
                           " WHERE id = 1", &st)) != 0)
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
    sqlite3_finalize(st);
    st = NULL;

    if ((ret = prepare(be, "SELECT kvno, enctype, check_value FROM master_key WHERE kvno = ?",
                       &st)) != 0)
        goto out;
    sqlite3_bind_int64(st, 1, realm->master_kvno);
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

static int
read_keys(struct sqlite_be *be, int64_t id, struct ck_store_princ_row *row)
{
    sqlite3_stmt *st = be->get_keys;
    int rc, ret = 0;

    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, id);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct ck_store_key_row *k, *nk;
        const void *salt = sqlite3_column_blob(st, 3);
        int salt_len = sqlite3_column_bytes(st, 3);
        const void *enc = sqlite3_column_blob(st, 5);
        int enc_len = sqlite3_column_bytes(st, 5);

        if (row->n_keys >= CK_STORE_MAX_KEYS) {
            ret = ck_error_set(CK_ERR_LIMIT, "principal %s: more than %d keys", row->name,
                               CK_STORE_MAX_KEYS);
            goto out;
        }
        if (enc == NULL || enc_len <= 0 || salt_len < 0 || salt_len > CK_STORE_MAX_SALT) {
            ret = ck_error_set(CK_ERR_DB, "principal %s: malformed key row", row->name);
            goto out;
        }
        nk = realloc(row->keys, (row->n_keys + 1) * sizeof(*nk));
        if (nk == NULL) {
            ret = ck_error_set(CK_ERR_NOMEM, "key rows");
            goto out;
        }
        row->keys = nk;
        k = &row->keys[row->n_keys];
        memset(k, 0, sizeof(*k));
        row->n_keys++;
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
        if (k->key_enc == NULL || (salt_len > 0 && k->salt == NULL)) {
            ret = ck_error_set(CK_ERR_NOMEM, "key rows");
            goto out;
        }
    }
    if (rc != SQLITE_DONE)
        ret = db_error(be, "read keys");
out:
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
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
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        ret = ck_error_set(CK_ERR_NOTFOUND, "principal %s not found", name);
        goto out;
    }
    if (rc != SQLITE_ROW) {
        ret = db_error(be, "get principal");
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
    sqlite3_reset(st);
    ret = read_keys(be, id, row);
out:
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (ret != 0)
        ck_store_princ_row_clear(row);
    return ret;
}

static int
insert_keys(struct sqlite_be *be, int64_t id, const struct ck_store_key_row *keys, size_t n)
{
    sqlite3_stmt *st = NULL;
    int ret;

    if ((ret = prepare(be, "INSERT INTO key(principal_id, kvno, enctype, ord, salt_type, salt,"
                           " mkvno, key_enc) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", &st)) != 0)
        return ret;
    for (size_t i = 0; i < n; i++) {
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, keys[i].kvno);
        sqlite3_bind_int(st, 3, keys[i].enctype);
        sqlite3_bind_int64(st, 4, (int64_t)i);
        sqlite3_bind_int(st, 5, keys[i].salt_type);
        if (keys[i].salt_len > 0)
            sqlite3_bind_blob(st, 6, keys[i].salt, (int)keys[i].salt_len, SQLITE_STATIC);
        else
            sqlite3_bind_null(st, 6);
        sqlite3_bind_int64(st, 7, keys[i].mkvno);
        sqlite3_bind_blob(st, 8, keys[i].key_enc, (int)keys[i].key_enc_len, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE) {
            ret = db_error(be, "insert key");
            break;
        }
    }
    sqlite3_finalize(st);
    return ret;
}

/* Looks up a principal's row id and kvno inside a write transaction; 0 id if absent. */
static int
lookup_id(struct sqlite_be *be, const char *name, int64_t *id, uint32_t *kvno)
{
    sqlite3_stmt *st = NULL;
    int rc, ret;

    *id = 0;
    if ((ret = prepare(be, "SELECT id, kvno FROM principal WHERE name = ?", &st)) != 0)
        return ret;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *id = sqlite3_column_int64(st, 0);
        if (kvno != NULL)
            *kvno = (uint32_t)sqlite3_column_int64(st, 1);
    } else if (rc != SQLITE_DONE) {
        ret = db_error(be, "lookup principal");
    }
    sqlite3_finalize(st);
    return ret;
}

static int
sqlite_put(void *arg, const struct ck_store_princ_row *row, enum ck_store_put_mode mode,
           int64_t now)
{
    struct sqlite_be *be = arg;
    sqlite3_stmt *st = NULL;
    int64_t id = 0;
    int ret;

    if ((ret = begin_write(be)) != 0)
        return ret;
    if ((ret = lookup_id(be, row->name, &id, NULL)) != 0)
        goto out;
    if (mode == CK_PUT_CREATE && id != 0) {
        ret = ck_error_set(CK_ERR_EXISTS, "%s already exists", row->name);
        goto out;
    }
    if (mode == CK_PUT_UPDATE_FIELDS) {
        if (id == 0) {
            ret = ck_error_set(CK_ERR_NOTFOUND, "principal %s not found", row->name);
            goto out;
        }
        if ((ret = prepare(be, "UPDATE principal SET attributes = ?, max_life = ?,"
                               " max_renew = ?, expires = ?, pw_expires = ?, modified = ?"
                               " WHERE id = ?", &st)) != 0)
            goto out;
        sqlite3_bind_int64(st, 1, row->attributes);
        sqlite3_bind_int64(st, 2, row->max_life);
        sqlite3_bind_int64(st, 3, row->max_renew);
        sqlite3_bind_int64(st, 4, row->expires);
        sqlite3_bind_int64(st, 5, row->pw_expires);
        sqlite3_bind_int64(st, 6, now);
        sqlite3_bind_int64(st, 7, id);
        if (sqlite3_step(st) != SQLITE_DONE) {
            ret = db_error(be, "update principal");
            goto out;
        }
        ret = bump_generation(be, row->name);
        goto out;
    }
    if (id != 0) {
        /* Replace: drop the old keys, keep the row id and creation time. */
        if ((ret = prepare(be, "DELETE FROM key WHERE principal_id = ?", &st)) != 0)
            goto out;
        sqlite3_bind_int64(st, 1, id);
        if (sqlite3_step(st) != SQLITE_DONE) {
            ret = db_error(be, "replace keys");
            goto out;
        }
        sqlite3_finalize(st);
        st = NULL;
        if ((ret = prepare(be, "UPDATE principal SET attributes = ?, max_life = ?,"
                               " max_renew = ?, expires = ?, pw_expires = ?, kvno = ?,"
                               " modified = ? WHERE id = ?", &st)) != 0)
            goto out;
        sqlite3_bind_int64(st, 8, id);
    } else {
        if ((ret = prepare(be, "INSERT INTO principal(attributes, max_life, max_renew, expires,"
                               " pw_expires, kvno, modified, name, created)"
                               " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", &st)) != 0)
            goto out;
        sqlite3_bind_text(st, 8, row->name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 9, now);
    }
    sqlite3_bind_int64(st, 1, row->attributes);
    sqlite3_bind_int64(st, 2, row->max_life);
    sqlite3_bind_int64(st, 3, row->max_renew);
    sqlite3_bind_int64(st, 4, row->expires);
    sqlite3_bind_int64(st, 5, row->pw_expires);
    sqlite3_bind_int64(st, 6, row->kvno);
    sqlite3_bind_int64(st, 7, now);
    if (sqlite3_step(st) != SQLITE_DONE) {
        ret = db_error(be, "store principal");
        goto out;
    }
    if (id == 0)
        id = sqlite3_last_insert_rowid(be->db);
    if ((ret = insert_keys(be, id, row->keys, row->n_keys)) != 0)
        goto out;
    ret = bump_generation(be, row->name);
out:
    sqlite3_finalize(st);
    return end_write(be, ret);
}

static int
sqlite_del(void *arg, const char *name)
{
    struct sqlite_be *be = arg;
    sqlite3_stmt *st = NULL;
    int ret;

    if ((ret = begin_write(be)) != 0)
        return ret;
    if ((ret = prepare(be, "DELETE FROM principal WHERE name = ?", &st)) != 0)
        goto out;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) {
        ret = db_error(be, "delete principal");
        goto out;
    }
    if (sqlite3_changes(be->db) == 0) {
        ret = ck_error_set(CK_ERR_NOTFOUND, "principal %s not found", name);
        goto out;
    }
    ret = bump_generation(be, name);
out:
    sqlite3_finalize(st);
    return end_write(be, ret);
}

static int
sqlite_list(void *arg, ck_store_list_cb cb, void *cb_arg)
{
    struct sqlite_be *be = arg;
    sqlite3_stmt *st = NULL;
    int rc, ret;

    if ((ret = prepare(be, "SELECT name FROM principal ORDER BY name", &st)) != 0)
        return ret;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if ((ret = cb((const char *)sqlite3_column_text(st, 0), cb_arg)) != 0)
            break;
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = db_error(be, "list principals");
    sqlite3_finalize(st);
    return ret;
}

static int
sqlite_rotate(void *arg, const char *name, uint32_t old_kvno, uint32_t new_kvno,
              const struct ck_store_key_row *keys, size_t n_keys, unsigned keep, int64_t now)
{
    struct sqlite_be *be = arg;
    sqlite3_stmt *st = NULL;
    uint32_t cur = 0;
    int64_t id = 0;
    int ret;

    if ((ret = begin_write(be)) != 0)
        return ret;
    if ((ret = lookup_id(be, name, &id, &cur)) != 0)
        goto out;
    if (id == 0) {
        ret = ck_error_set(CK_ERR_NOTFOUND, "principal %s not found", name);
        goto out;
    }
    if (cur != old_kvno) {
        ret = ck_error_set(CK_ERR_POLICY, "principal %s: kvno changed concurrently (%u -> %u)",
                           name, old_kvno, cur);
        goto out;
    }
    /* Keys of the new kvno left from an earlier life of the counter would collide. */
    if ((ret = prepare(be, "DELETE FROM key WHERE principal_id = ? AND kvno = ?", &st)) != 0)
        goto out;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, new_kvno);
    if (sqlite3_step(st) != SQLITE_DONE) {
        ret = db_error(be, "rotate");
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    if ((ret = insert_keys(be, id, keys, n_keys)) != 0)
        goto out;
    if ((ret = prepare(be, "UPDATE principal SET kvno = ?, modified = ? WHERE id = ?", &st)) != 0)
        goto out;
    sqlite3_bind_int64(st, 1, new_kvno);
    sqlite3_bind_int64(st, 2, now);
    sqlite3_bind_int64(st, 3, id);
    if (sqlite3_step(st) != SQLITE_DONE) {
        ret = db_error(be, "rotate");
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    if ((ret = prepare(be, "DELETE FROM key WHERE principal_id = ?1 AND kvno NOT IN"
                           " (SELECT DISTINCT kvno FROM key WHERE principal_id = ?1"
                           "  ORDER BY kvno DESC LIMIT ?2)", &st)) != 0)
        goto out;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, keep);
    if (sqlite3_step(st) != SQLITE_DONE) {
        ret = db_error(be, "purge old kvnos");
        goto out;
    }
    ret = bump_generation(be, name);
out:
    sqlite3_finalize(st);
    return end_write(be, ret);
}

static int
sqlite_generation(void *arg, uint64_t *gen)
{
    struct sqlite_be *be = arg;
    sqlite3_stmt *st = be->get_gen;
    int ret = 0;

    sqlite3_reset(st);
    if (sqlite3_step(st) == SQLITE_ROW)
        *gen = (uint64_t)sqlite3_column_int64(st, 0);
    else
        ret = db_error(be, "generation");
    sqlite3_reset(st);
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
        cb(NULL, cb_arg);
        return 0;
    }
    if ((ret = prepare(be, "SELECT generation, name FROM changelog WHERE generation > ? AND"
                           " generation <= ? ORDER BY generation", &st)) != 0)
        return ret;
    sqlite3_bind_int64(st, 1, (int64_t)since);
    sqlite3_bind_int64(st, 2, (int64_t)cur);
    expect = since + 1;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        /* A gap means the log was trimmed past us: we cannot know what changed. */
        if ((uint64_t)sqlite3_column_int64(st, 0) != expect ||
            sqlite3_column_type(st, 1) == SQLITE_NULL) {
            cb(NULL, cb_arg);
            goto out;
        }
        cb((const char *)sqlite3_column_text(st, 1), cb_arg);
        expect++;
        n++;
    }
    if (rc != SQLITE_DONE)
        ret = db_error(be, "changelog");
    else if (n != cur - since)
        cb(NULL, cb_arg);
out:
    sqlite3_finalize(st);
    return ret;
}

const struct ck_store_ops ck_store_sqlite_ops = {
    .name = "sqlite",
    .open = sqlite_open,
    .close = sqlite_close,
    .init_schema = sqlite_init_schema,
    .load_realm = sqlite_load_realm,
    .get = sqlite_get,
    .put = sqlite_put,
    .del = sqlite_del,
    .list = sqlite_list,
    .rotate = sqlite_rotate,
    .generation = sqlite_generation,
    .changes_since = sqlite_changes_since,
};
