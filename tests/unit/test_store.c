#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "ck_test.h"
#include "store_fixture.h"
#include "cablekey/principal.h"
#include "cablekey/store.h"
#include "cablekey/util.h"
#include "store/sqlite_int.h" /* sqlite_schema_version() */

#define REALM "TEST.REALM"
#define TGS "krbtgt/TEST.REALM@TEST.REALM"

static const int32_t all_enctypes[] = {
    CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96,
    CK_ENCTYPE_AES256_CTS_HMAC_SHA384_192, CK_ENCTYPE_AES128_CTS_HMAC_SHA256_128};
#define N_ENCTYPES (sizeof(all_enctypes) / sizeof(all_enctypes[0]))

static void
fixture_up(void)
{
    store_fixture_up("store", REALM, all_enctypes, N_ENCTYPES);
}

/* Creates name with password-derived keys for all enctypes. */
static void
add_user(ck_store *s, const char *name, const char *pw, uint32_t attrs)
{
    ck_db_principal *p = fixture_principal(name, pw, attrs, all_enctypes, N_ENCTYPES);

    CHECK_OK(ck_store_create_principal(s, p));
    ck_db_principal_free(p);
}

/* ========================================================================= locations (--db) */

#ifdef CK_STORE_WITH_POSTGRESQL
#define PG_OK 0
#else
#define PG_OK CK_ERR_UNSUPPORTED /* "backend not built" */
#endif

static void
uri_parse(void)
{
    static const struct {
        const char *uri;
        int ret;
        const char *backend, *location; /* when ret == 0 */
        const char *context;            /* when ret != 0: a substring of the error context */
    } t[] = {
        /* Bare paths: SQLite, the default; a ':' after a '/' or a leading '.' is a path. */
        {"/var/lib/cablekey/kdc.db", 0, "sqlite", "/var/lib/cablekey/kdc.db", NULL},
        {"kdc.db", 0, "sqlite", "kdc.db", NULL},
        {"./a:b.db", 0, "sqlite", "./a:b.db", NULL},
        {"/srv/a:b", 0, "sqlite", "/srv/a:b", NULL},
        {"1x:y", 0, "sqlite", "1x:y", NULL}, /* a scheme starts with a letter */
        /* sqlite: */
        {"sqlite:/x/kdc.db", 0, "sqlite", "/x/kdc.db", NULL},
        {"sqlite:rel.db", 0, "sqlite", "rel.db", NULL},
        {"SQLite:/x", 0, "sqlite", "/x", NULL},
        {"sqlite:///x/kdc.db", 0, "sqlite", "/x/kdc.db", NULL},
        {"sqlite://host/x", CK_ERR_INVAL, NULL, NULL, "local file"},
        {"sqlite:", CK_ERR_INVAL, NULL, NULL, "file name"},
        /* Bad and unknown. */
        {"", CK_ERR_INVAL, NULL, NULL, NULL},
        {"a\nb", CK_ERR_INVAL, NULL, NULL, "control"},
        {"foo:bar", CK_ERR_UNSUPPORTED, NULL, NULL, "\"foo\""},
        {"mysql://h/db", CK_ERR_UNSUPPORTED, NULL, NULL, "\"mysql\""},
        {"ldap:x", CK_ERR_UNSUPPORTED, NULL, NULL, "known: sqlite, postgresql"},
        /* PostgreSQL: checked whether or not the backend is built. */
        {"postgresql://db.example/kdc", PG_OK, "postgresql", "postgresql://db.example/kdc",
         "not built"},
        {"postgres://kdc@db.example:5432/kdc?sslmode=verify-full", PG_OK, "postgresql",
         "postgres://kdc@db.example:5432/kdc?sslmode=verify-full", "not built"},
        {"postgresql://[::1]:5432/kdc", PG_OK, "postgresql", "postgresql://[::1]:5432/kdc",
         "not built"},
        {"postgresql:///kdc?host=/run/pg&passfile=/etc/ck/pgpass", PG_OK, "postgresql",
         "postgresql:///kdc?host=/run/pg&passfile=/etc/ck/pgpass", "not built"},
        {"PostgreSQL://h/kdc", PG_OK, "postgresql", "PostgreSQL://h/kdc", "not built"},
        {"postgresql:kdc", CK_ERR_INVAL, NULL, NULL, "postgresql://"},
        /* Passwords are refused (and never repeated in the message). */
        {"postgresql://kdc:s3cret@h/kdc", CK_ERR_POLICY, NULL, NULL, "PGPASSFILE"},
        {"postgres://kdc:@h/kdc", CK_ERR_POLICY, NULL, NULL, "PGPASSFILE"},
        {"postgresql://h/kdc?password=s3cret", CK_ERR_POLICY, NULL, NULL, "password="},
        {"postgresql://h/kdc?sslmode=require&%70assword=s3cret", CK_ERR_POLICY, NULL, NULL,
         "password="},
    };
    char long_uri[CK_STORE_URI_MAX + 2];
    ck_store_uri u;
    char *st = NULL;

    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        int ret = ck_store_uri_parse(t[i].uri, &u);
        if (ret != t[i].ret)
            fprintf(stderr, "  uri %zu '%s': %d (%s)\n", i, t[i].uri, ret, ck_error_context());
        CHECK_INT_EQ(ret, t[i].ret);
        if (ret == 0 && t[i].ret == 0) {
            CHECK(strcmp(u.backend, t[i].backend) == 0);
            CHECK(strcmp(u.location, t[i].location) == 0);
            CHECK(u.ops != NULL);
        } else if (ret != 0) {
            CHECK(u.location == NULL && u.ops == NULL);
            if (t[i].context != NULL)
                CHECK(strstr(ck_error_context(), t[i].context) != NULL);
            CHECK(strstr(ck_error_context(), "s3cret") == NULL);
        }
        ck_store_uri_clear(&u);
    }
    CHECK_INT_EQ(ck_store_uri_parse(NULL, &u), CK_ERR_INVAL);
    memset(long_uri, 'a', sizeof(long_uri) - 1);
    long_uri[sizeof(long_uri) - 1] = '\0';
    CHECK_INT_EQ(ck_store_uri_parse(long_uri, &u), CK_ERR_LIMIT);
    long_uri[CK_STORE_URI_MAX] = '\0';
    CHECK_OK(ck_store_uri_parse(long_uri, &u));
    ck_store_uri_clear(&u);
    ck_store_uri_clear(NULL);

    /* The default stash is the backend's rule: beside an SQLite file, none for PostgreSQL. */
    CHECK_OK(ck_store_default_stash("sqlite:/x/kdc.db", &st));
    CHECK(st != NULL && strcmp(st, "/x/kdc.db.stash") == 0);
    free(st);
    CHECK_OK(ck_store_default_stash("/x/a:b", &st));
    CHECK(st != NULL && strcmp(st, "/x/a:b.stash") == 0);
    free(st);
    CHECK(ck_store_default_stash("postgresql://h/kdc", &st) != 0);
    CHECK(st == NULL);
    CHECK_INT_EQ(ck_store_default_stash("nosuch:x", &st), CK_ERR_UNSUPPORTED);
}

/* The store opens, creates and checks through locations. */
static void
uri_open(void)
{
    char uri[200], file[160], fstash[200];
    ck_store *s = NULL;
    struct stat sb;
    ck_store_check_result res;

    fixture_up();
    snprintf(uri, sizeof(uri), "sqlite:%s", db);
    CHECK_OK(ck_store_open(uri, NULL, CK_STORE_READONLY, &s)); /* default stash: db.stash */
    CHECK(s != NULL && strcmp(ck_store_realm(s)->name, REALM) == 0);
    ck_store_close(s);
    s = NULL;
    snprintf(uri, sizeof(uri), "sqlite://%s", db); /* db is absolute: sqlite:///... */
    CHECK_OK(ck_store_open(uri, NULL, 0, &s));
    ck_store_close(s);
    s = NULL;
    CHECK_INT_EQ(ck_store_open("nosuch:/x", NULL, 0, &s), CK_ERR_UNSUPPORTED);
    CHECK(s == NULL);
    CHECK_INT_EQ(ck_store_open("postgresql://u:pw@h/kdc", stash, 0, &s), CK_ERR_POLICY);
#ifndef CK_STORE_WITH_POSTGRESQL
    CHECK_INT_EQ(ck_store_open("postgresql://h/kdc", stash, 0, &s), CK_ERR_UNSUPPORTED);
    CHECK(strstr(ck_error_context(), "not built") != NULL);
#endif
    /* Without a stash, a PostgreSQL location has no default to fall back on. */
    CHECK(ck_store_open("postgresql://h/kdc", NULL, 0, &s) != 0);
    CHECK(s == NULL);

    /* init through a URI; the stash defaults beside the file. */
    snprintf(file, sizeof(file), "%s/uri.db", dir);
    snprintf(fstash, sizeof(fstash), "%s.stash", file);
    snprintf(uri, sizeof(uri), "sqlite:%s", file);
    CHECK_OK(ck_store_init_realm(uri, NULL, "URI.REALM", all_enctypes, 1, 0, 0));
    CHECK(stat(file, &sb) == 0 && (sb.st_mode & 0077) == 0);
    CHECK(stat(fstash, &sb) == 0 && (sb.st_mode & 0777) == 0600);
    /* Again: refused (the database exists), and the existing stash is untouched. */
    CHECK_INT_EQ(ck_store_init_realm(uri, NULL, "URI.REALM", all_enctypes, 1, 0, 0),
                 CK_ERR_EXISTS);
    CHECK_OK(ck_store_open(file, NULL, 0, &s));
    ck_store_close(s);
    s = NULL;
    /* A stash that exists stops init, and the database it had begun is removed. */
    snprintf(file, sizeof(file), "%s/second.db", dir);
    snprintf(uri, sizeof(uri), "sqlite:%s", file);
    CHECK_INT_EQ(ck_store_init_realm(uri, fstash, "X.REALM", all_enctypes, 1, 0, 0),
                 CK_ERR_EXISTS);
    CHECK(stat(file, &sb) != 0);
    CHECK_INT_EQ(ck_store_init_realm("nosuch:x", NULL, "X.REALM", all_enctypes, 1, 0, 0),
                 CK_ERR_UNSUPPORTED);
    /* Maintenance takes locations too. */
    snprintf(uri, sizeof(uri), "sqlite:%s", db);
    CHECK_OK(ck_store_check(uri, NULL, NULL, NULL, &res));
    CHECK(res.keys_checked);
    CHECK_INT_EQ(ck_store_check("nosuch:x", NULL, NULL, NULL, &res), CK_ERR_UNSUPPORTED);
    fixture_down();
}

static void
init_realm(void)
{
    ck_store *s;
    ck_db_principal *tgs = NULL;
    const ck_realm_info *ri;
    struct stat st;
    sqlite3 *raw = NULL;
    sqlite3_stmt *q = NULL;
    uint64_t gen = 0;

    fixture_up();
    CHECK(stat(stash, &st) == 0 && (st.st_mode & 0777) == 0600);
    CHECK(stat(db, &st) == 0 && (st.st_mode & 0077) == 0);
    /* Refuses to overwrite. */
    CHECK_INT_EQ(ck_store_init_realm(db, stash, REALM, all_enctypes, N_ENCTYPES, 0, 0),
                 CK_ERR_EXISTS);
    s = fixture_open(db);
    ri = ck_store_realm(s);
    CHECK(strcmp(ri->name, REALM) == 0);
    CHECK_INT_EQ(ri->n_enctypes, N_ENCTYPES);
    CHECK_INT_EQ(ri->enctypes[2], CK_ENCTYPE_AES256_CTS_HMAC_SHA384_192);
    CHECK_INT_EQ(ri->max_life, 36000);
    CHECK_INT_EQ(ri->max_renew, 7 * 86400);
    CHECK_INT_EQ(ri->master_kvno, 1);
    CHECK_OK(ck_store_generation(s, &gen));
    CHECK(gen >= 2);

    CHECK_OK(ck_store_get_principal(s, TGS, &tgs));
    if (tgs != NULL) {
        CHECK_INT_EQ(tgs->kvno, 1);
        CHECK_INT_EQ(tgs->n_keys, N_ENCTYPES);
        for (size_t i = 0; i < N_ENCTYPES; i++) {
            const ck_db_key *k = ck_db_principal_find_key(tgs, 0, all_enctypes[i]);
            CHECK(k != NULL);
            if (k != NULL) {
                CHECK_INT_EQ(k->key.length, ck_enctype_key_length(all_enctypes[i]));
                CHECK_INT_EQ(k->kvno, 1);
            }
        }
        /* Keys are in realm enctype order. */
        CHECK_INT_EQ(tgs->keys[0].enctype, all_enctypes[0]);
        CHECK_INT_EQ(tgs->keys[3].enctype, all_enctypes[3]);
        /* Random keys differ. */
        CHECK(!ck_ct_equal(tgs->keys[0].key.contents, tgs->keys[2].key.contents, 32));
    }
    ck_db_principal_free(tgs);
    ck_store_close(s);

    /* Schema version table. */
    CHECK(sqlite3_open_v2(db, &raw, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK);
    CHECK(sqlite3_prepare_v2(raw, "SELECT version FROM schema_version", -1, &q, NULL) ==
          SQLITE_OK);
    CHECK(q != NULL && sqlite3_step(q) == SQLITE_ROW &&
          sqlite3_column_int(q, 0) == sqlite_schema_version());
    sqlite3_finalize(q);
    sqlite3_close(raw);

    /* Bad parameters leave nothing behind. */
    {
        char db2[160];
        const int32_t bad[] = {23};
        snprintf(db2, sizeof(db2), "%s/bad.db", dir);
        CHECK(ck_store_init_realm(db2, NULL, REALM, bad, 1, 0, 0) != 0);
        CHECK(access(db2, F_OK) != 0);
        CHECK(ck_store_init_realm(db2, NULL, "", all_enctypes, 1, 0, 0) != 0);
        CHECK(access(db2, F_OK) != 0);
    }
    fixture_down();
}

static void
stash_checks(void)
{
    ck_store *s = NULL;
    char db2[160], stash2[160];

    fixture_up();
    CHECK(chmod(stash, 0644) == 0);
    CHECK_INT_EQ(ck_store_open(db, stash, 0, &s), CK_ERR_PERM);
    CHECK(s == NULL);
    CHECK(strstr(ck_error_context(), "0644") != NULL);
    CHECK(chmod(stash, 0640) == 0);
    CHECK_INT_EQ(ck_store_open(db, stash, 0, &s), CK_ERR_PERM);
    CHECK(chmod(stash, 0400) == 0);
    CHECK_OK(ck_store_open(db, stash, 0, &s));
    ck_store_close(s);
    s = NULL;
    CHECK(chmod(stash, 0600) == 0);

    /* Another realm's stash is detected. */
    snprintf(db2, sizeof(db2), "%s/other.db", dir);
    snprintf(stash2, sizeof(stash2), "%s/other.stash", dir);
    CHECK_OK(ck_store_init_realm(db2, stash2, "OTHER.REALM", all_enctypes, 1, 0, 0));
    CHECK_INT_EQ(ck_store_open(db, stash2, 0, &s), CK_ERR_INTEGRITY);
    CHECK(s == NULL);
    /* A missing or garbage stash too. */
    snprintf(stash2, sizeof(stash2), "%s/none.stash", dir);
    CHECK_INT_EQ(ck_store_open(db, stash2, 0, &s), CK_ERR_NOTFOUND);
    {
        FILE *f;
        snprintf(stash2, sizeof(stash2), "%s/garbage.stash", dir);
        f = fopen(stash2, "wb");
        fputs("garbage", f);
        fclose(f);
        chmod(stash2, 0600);
        CHECK_INT_EQ(ck_store_open(db, stash2, 0, &s), CK_ERR_DECODE);
    }
    /* A missing database. */
    snprintf(db2, sizeof(db2), "%s/none.db", dir);
    CHECK_INT_EQ(ck_store_open(db2, stash, 0, &s), CK_ERR_NOTFOUND);
    fixture_down();
}

static int
collect(const char *name, void *arg)
{
    char *buf = arg;
    size_t n = strlen(buf);

    snprintf(buf + n, 512 - n, "%s;", name);
    return 0;
}

static void
principal_crud(void)
{
    ck_store *s;
    ck_db_principal *p = NULL, *q = NULL;
    char names[512] = "";
    uint8_t *salt = NULL;
    size_t salt_len = 0;
    ck_principal *pr = NULL;
    ck_key k;

    fixture_up();
    s = fixture_open(db);
    add_user(s, "alice@" REALM, "pw-alice", CK_ATTR_REQUIRES_PREAUTH);
    CHECK_OK(ck_db_principal_new("alice@" REALM, &p));
    p->kvno = 1;
    CHECK_INT_EQ(ck_store_create_principal(s, p), CK_ERR_EXISTS);
    ck_db_principal_free(p);
    p = NULL;

    CHECK_OK(ck_store_get_principal(s, "alice@" REALM, &p));
    if (p != NULL) {
        const ck_db_key *kk = ck_db_principal_find_key(p, 1, 18);
        CHECK_INT_EQ(p->attributes, CK_ATTR_REQUIRES_PREAUTH);
        CHECK_INT_EQ(p->kvno, 1);
        CHECK_INT_EQ(p->n_keys, N_ENCTYPES);
        CHECK(p->created > 0 && p->modified >= p->created);
        CHECK(kk != NULL);
        /* The stored key is s2k(password, default salt), salt recorded. */
        CHECK_OK(ck_principal_parse("alice@" REALM, NULL, 0, &pr));
        CHECK_OK(ck_principal_default_salt(pr, &salt, &salt_len));
        if (kk != NULL) {
            CHECK_MEM_EQ(kk->salt, kk->salt_len, salt, salt_len);
            CHECK_INT_EQ(kk->salt_type, CK_SALTTYPE_NORMAL);
            memset(&k, 0, sizeof(k));
            CHECK_OK(ck_string_to_key(18, "pw-alice", 8, salt, salt_len, NULL, 0, &k));
            CHECK_MEM_EQ(kk->key.contents, kk->key.length, k.contents, k.length);
            ck_key_clear(&k);
        }
    }
    CHECK_INT_EQ(ck_store_get_principal(s, "nobody@" REALM, &q), CK_ERR_NOTFOUND);
    CHECK(q == NULL);

    /* Non-canonical, other-realm and malformed names are refused on write. */
    CHECK_OK(ck_db_principal_new("bob@OTHER.REALM", &q));
    q->kvno = 1;
    CHECK_INT_EQ(ck_store_create_principal(s, q), CK_ERR_INVAL);
    ck_db_principal_free(q);
    CHECK_OK(ck_db_principal_new("a\\x@" REALM, &q));
    q->kvno = 1;
    CHECK_INT_EQ(ck_store_create_principal(s, q), CK_ERR_INVAL);
    ck_db_principal_free(q);
    q = NULL;

    /* Attributes and times persist across connections. */
    if (p != NULL) {
        p->attributes = CK_ATTR_DISALLOW_ALL_TIX | CK_ATTR_DISALLOW_FORWARDABLE;
        p->expires = 2000000000;
        p->pw_expires = 1900000000;
        p->max_life = 3600;
        p->max_renew = 7200;
        CHECK_OK(ck_store_update_principal(s, p));
    }
    ck_store_close(s);
    s = fixture_open(db);
    CHECK_OK(ck_store_get_principal(s, "alice@" REALM, &q));
    if (q != NULL) {
        CHECK_INT_EQ(q->attributes, CK_ATTR_DISALLOW_ALL_TIX | CK_ATTR_DISALLOW_FORWARDABLE);
        CHECK_INT_EQ(q->expires, 2000000000);
        CHECK_INT_EQ(q->pw_expires, 1900000000);
        CHECK_INT_EQ(q->max_life, 3600);
        CHECK_INT_EQ(q->max_renew, 7200);
        CHECK_INT_EQ(q->n_keys, N_ENCTYPES); /* update leaves keys alone */
    }
    ck_db_principal_free(q);
    q = NULL;

    add_user(s, "host/h.test.realm@" REALM, NULL, 0);
    CHECK_OK(ck_store_list_principals(s, collect, names));
    CHECK(strcmp(names, "alice@TEST.REALM;host/h.test.realm@TEST.REALM;" TGS ";") == 0);

    CHECK_OK(ck_store_delete_principal(s, "alice@" REALM));
    CHECK_INT_EQ(ck_store_get_principal(s, "alice@" REALM, &q), CK_ERR_NOTFOUND);
    CHECK_INT_EQ(ck_store_delete_principal(s, "alice@" REALM), CK_ERR_NOTFOUND);
    if (p != NULL)
        CHECK_INT_EQ(ck_store_update_principal(s, p), CK_ERR_NOTFOUND);

    /* put replaces a whole record. */
    if (p != NULL) {
        p->kvno = 7;
        for (size_t i = 0; i < p->n_keys; i++)
            p->keys[i].kvno = 7;
        CHECK_OK(ck_store_put_principal(s, p));
        CHECK_OK(ck_store_get_principal(s, "alice@" REALM, &q));
        CHECK(q != NULL && q->kvno == 7 && q->n_keys == N_ENCTYPES);
        ck_db_principal_free(q);
        q = NULL;
    }
    ck_store_close(s);

    /* Read-only connections cannot write. */
    CHECK_OK(ck_store_open(db, stash, CK_STORE_READONLY, &s));
    if (s != NULL) {
        CHECK_OK(ck_store_get_principal(s, TGS, &q));
        ck_db_principal_free(q);
        q = NULL;
        CHECK_INT_EQ(ck_store_delete_principal(s, TGS), CK_ERR_PERM);
        ck_store_close(s);
    }
    free(salt);
    ck_principal_free(pr);
    ck_db_principal_free(p);
    fixture_down();
}

static void
rotation(void)
{
    ck_store *s;
    ck_db_principal *p = NULL, *orig = NULL;
    ck_db_key *keys = NULL;
    size_t n = 0;
    uint32_t kvno = 0;

    fixture_up();
    s = fixture_open(db);
    add_user(s, "svc@" REALM, "pw", 0);
    CHECK_OK(ck_store_get_principal(s, "svc@" REALM, &orig));
    for (int i = 0; i < 4; i++) {
        CHECK_OK(ck_db_keys_make("svc@" REALM, NULL, 0, all_enctypes, 2, 0, &keys, &n));
        CHECK_OK(ck_store_rotate_keys(s, "svc@" REALM, keys, n, 0, &kvno));
        CHECK_INT_EQ(kvno, (uint32_t)i + 2);
        if (i == 0) {
            CHECK_OK(ck_store_get_principal(s, "svc@" REALM, &p));
            if (p != NULL && orig != NULL) {
                const ck_db_key *old = ck_db_principal_find_key(p, 1, 18);
                const ck_db_key *cur = ck_db_principal_find_key(p, 0, 18);
                CHECK_INT_EQ(p->kvno, 2);
                CHECK_INT_EQ(p->n_keys, N_ENCTYPES + 2);
                CHECK_INT_EQ(p->keys[0].kvno, 2); /* newest first */
                CHECK(old != NULL && cur != NULL);
                if (old != NULL)
                    CHECK_MEM_EQ(old->key.contents, old->key.length,
                                 orig->keys[0].key.contents, orig->keys[0].key.length);
                if (cur != NULL)
                    CHECK_MEM_EQ(cur->key.contents, cur->key.length, keys[0].key.contents,
                                 keys[0].key.length);
            }
            ck_db_principal_free(p);
            p = NULL;
        }
        ck_db_keys_free(keys, n);
        keys = NULL;
    }
    CHECK_OK(ck_store_get_principal(s, "svc@" REALM, &p));
    if (p != NULL) {
        CHECK_INT_EQ(p->kvno, 5);
        CHECK_INT_EQ(p->n_keys, 6);
        CHECK(ck_db_principal_find_key(p, 5, 18) != NULL);
        CHECK(ck_db_principal_find_key(p, 4, 17) != NULL);
        CHECK(ck_db_principal_find_key(p, 3, 18) != NULL);
        CHECK(ck_db_principal_find_key(p, 2, 18) == NULL);
        CHECK(ck_db_principal_find_key(p, 1, 18) == NULL);
    }
    ck_db_principal_free(p);
    p = NULL;
    /* keep = 1 drops everything but the new kvno; krbtgt rotates the same way. */
    CHECK_OK(ck_db_keys_make(TGS, NULL, 0, all_enctypes, N_ENCTYPES, 0, &keys, &n));
    CHECK_OK(ck_store_rotate_keys(s, TGS, keys, n, 1, &kvno));
    CHECK_INT_EQ(kvno, 2);
    CHECK_OK(ck_store_get_principal(s, TGS, &p));
    CHECK(p != NULL && p->n_keys == N_ENCTYPES && p->kvno == 2);
    ck_db_principal_free(p);
    ck_db_keys_free(keys, n);
    CHECK_INT_EQ(ck_store_rotate_keys(s, "nobody@" REALM, NULL, 0, 0, NULL), CK_ERR_INVAL);
    ck_db_principal_free(orig);
    ck_store_close(s);
    fixture_down();
}

static bool
file_contains(const char *path, const uint8_t *needle, size_t n)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    size_t len;
    bool found = false;

    if (f == NULL)
        return false;
    buf = malloc(64 << 20);
    len = fread(buf, 1, 64 << 20, f);
    fclose(f);
    for (size_t i = 0; i + n <= len && !found; i++)
        found = memcmp(buf + i, needle, n) == 0;
    free(buf);
    return found;
}

static void
no_plaintext_keys(void)
{
    ck_store *s;
    ck_db_principal *p = NULL, *t = NULL;
    char wal[160];
    int checked = 0;

    fixture_up();
    s = fixture_open(db);
    add_user(s, "alice@" REALM, "pw-alice", 0);
    CHECK_OK(ck_store_get_principal(s, "alice@" REALM, &p));
    CHECK_OK(ck_store_get_principal(s, TGS, &t));
    snprintf(wal, sizeof(wal), "%s-wal", db);
    for (int pass = 0; pass < 2; pass++) {
        const ck_db_principal *r = pass ? t : p;
        for (size_t i = 0; r != NULL && i < r->n_keys; i++) {
            /* 8 bytes are enough to make an accidental match impossible. */
            CHECK(!file_contains(db, r->keys[i].key.contents, 8));
            CHECK(!file_contains(wal, r->keys[i].key.contents, 8));
            CHECK(!file_contains(stash, r->keys[i].key.contents, 8));
            checked++;
        }
    }
    CHECK_INT_EQ(checked, 2 * N_ENCTYPES);
    /* The scan itself works: the salt is stored in the clear. */
    CHECK(file_contains(db, (const uint8_t *)"TEST.REALMalice", 15) ||
          file_contains(wal, (const uint8_t *)"TEST.REALMalice", 15));
    ck_db_principal_free(p);
    ck_db_principal_free(t);
    ck_store_close(s);
    fixture_down();
}

/* A key row moved onto another principal must not load. */
static void
key_binding(void)
{
    ck_store *s;
    ck_db_principal *p = NULL;
    sqlite3 *raw = NULL;

    fixture_up();
    s = fixture_open(db);
    add_user(s, "alice@" REALM, "pw-alice", 0);
    add_user(s, "mallory@" REALM, "pw-mallory", 0);
    ck_store_close(s);
    CHECK(sqlite3_open(db, &raw) == SQLITE_OK);
    CHECK(sqlite3_exec(raw,
                       "UPDATE key SET key_enc = (SELECT k.key_enc FROM key k JOIN principal p"
                       " ON p.id = k.principal_id WHERE p.name = 'alice@TEST.REALM' AND"
                       " k.enctype = 18) WHERE enctype = 18 AND principal_id = (SELECT id FROM"
                       " principal WHERE name = 'mallory@TEST.REALM')",
                       NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(raw);
    s = fixture_open(db);
    CHECK_INT_EQ(ck_store_get_principal(s, "mallory@" REALM, &p), CK_ERR_INTEGRITY);
    CHECK(p == NULL);
    CHECK_OK(ck_store_get_principal(s, "alice@" REALM, &p));
    ck_db_principal_free(p);
    ck_store_close(s);
    fixture_down();
}

static void
sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

static void
cache(void)
{
    ck_store *a, *b;
    const ck_db_principal *r = NULL, *r2 = NULL;
    ck_db_key *keys = NULL;
    size_t n = 0;
    ck_store_cache_stats st;

    fixture_up();
    a = fixture_open(db);
    b = fixture_open(db);
    /* A long interval first, so slow key derivation under ASan cannot trigger a check. */
    ck_store_cache_configure(a, 1000, 60000);
    add_user(b, "alice@" REALM, "pw", 0);

    ck_store_cache_begin(a);
    CHECK_OK(ck_store_get_principal_cached(a, "alice@" REALM, &r));
    CHECK(r != NULL && r->kvno == 1);
    CHECK_OK(ck_store_get_principal_cached(a, "alice@" REALM, &r2));
    CHECK(r2 == r); /* a hit returns the same record: no copy */
    CHECK_INT_EQ(ck_store_get_principal_cached(a, "bob@" REALM, &r2), CK_ERR_NOTFOUND);
    CHECK_INT_EQ(ck_store_get_principal_cached(a, "bob@" REALM, &r2), CK_ERR_NOTFOUND);
    ck_store_cache_get_stats(a, &st);
    CHECK_INT_EQ(st.hits, 2);
    CHECK_INT_EQ(st.misses, 2);
    CHECK_INT_EQ(st.entries, 2);

    /* Another connection rotates alice and creates bob. */
    CHECK_OK(ck_db_keys_make("alice@" REALM, NULL, 0, all_enctypes, N_ENCTYPES, 0, &keys, &n));
    CHECK_OK(ck_store_rotate_keys(b, "alice@" REALM, keys, n, 0, NULL));
    ck_db_keys_free(keys, n);
    add_user(b, "bob@" REALM, "pw", 0);

    /* Within the interval the old record is still served and still valid (SQLite: polled).
     * PostgreSQL pushes the change (LISTEN/NOTIFY): the next lookup already has kvno 2. */
    CHECK_OK(ck_store_get_principal_cached(a, "alice@" REALM, &r2));
    CHECK(r2 != NULL && r2->kvno == (ck_test_store_pg() ? 2u : 1u));
    ck_store_cache_configure(a, 1000, 100);
    sleep_ms(150);
    /* The check runs inside the lookup too; the old pointer stays valid until begin. */
    CHECK_OK(ck_store_get_principal_cached(a, "alice@" REALM, &r2));
    CHECK(r2 != NULL && r2->kvno == 2);
    CHECK(r->kvno == 1 && r->n_keys == N_ENCTYPES); /* retired, not yet freed (ASan checks) */
    ck_store_cache_begin(a);
    CHECK_OK(ck_store_get_principal_cached(a, "bob@" REALM, &r2));
    CHECK(r2 != NULL && strcmp(r2->name, "bob@" REALM) == 0);
    ck_store_cache_get_stats(a, &st);
    CHECK_INT_EQ(st.flushes, 0); /* per-name invalidation, not a full flush */

    /* "Check now": within a long interval, begin keeps serving the old record; refresh reads
     * the change log at once (the KDC's re-check before a refusal). */
    ck_store_cache_configure(a, 1000, 60000);
    ck_store_cache_begin(a);
    CHECK_OK(ck_store_get_principal_cached(a, "alice@" REALM, &r2));
    CHECK(r2 != NULL && r2->kvno == 2);
    CHECK_OK(ck_db_keys_make("alice@" REALM, NULL, 0, all_enctypes, N_ENCTYPES, 0, &keys, &n));
    CHECK_OK(ck_store_rotate_keys(b, "alice@" REALM, keys, n, 0, NULL));
    ck_db_keys_free(keys, n);
    ck_store_cache_begin(a);
    CHECK_OK(ck_store_get_principal_cached(a, "alice@" REALM, &r2));
    CHECK(r2 != NULL && r2->kvno == (ck_test_store_pg() ? 3u : 2u)); /* PostgreSQL: pushed */
    ck_store_cache_refresh(a);
    CHECK_OK(ck_store_get_principal_cached(a, "alice@" REALM, &r2));
    CHECK(r2 != NULL && r2->kvno == 3);
    ck_store_cache_configure(a, 1000, 100);

    /* Deleting through the same connection is seen at once. */
    CHECK_OK(ck_store_delete_principal(a, "bob@" REALM));
    CHECK_INT_EQ(ck_store_get_principal_cached(a, "bob@" REALM, &r2), CK_ERR_NOTFOUND);

    /* Bounded: with 2 entries the oldest are evicted, records stay valid until begin. */
    ck_store_cache_begin(a);
    ck_store_cache_configure(a, 2, 100);
    CHECK_OK(ck_store_get_principal_cached(a, "alice@" REALM, &r));
    CHECK_OK(ck_store_get_principal_cached(a, TGS, &r2));
    CHECK_INT_EQ(ck_store_get_principal_cached(a, "x@" REALM, &r2), CK_ERR_NOTFOUND);
    CHECK_INT_EQ(ck_store_get_principal_cached(a, "y@" REALM, &r2), CK_ERR_NOTFOUND);
    ck_store_cache_get_stats(a, &st);
    CHECK(st.entries <= 2);
    CHECK(st.evictions >= 2);
    CHECK(strcmp(r->name, "alice@" REALM) == 0);
    ck_store_cache_begin(a);

    ck_store_close(a);
    ck_store_close(b);
    fixture_down();
}

/* ===================================================================================== devices */

#define MAC1 "00:10:18:aa:bb:01"
#define MAC2 "00:10:18:aa:bb:02"
#define MAC3 "00:10:18:aa:bb:03"

static const uint8_t pin_a[CK_DEVICE_SPKI_HASH_LEN] = {
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10,
    0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20};
static const uint8_t pin_b[CK_DEVICE_SPKI_HASH_LEN] = {
    0xf1, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10,
    0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x21};

static void
mac_parse(void)
{
    static const char *const good[][2] = {
        {"00:10:18:aa:bb:cc", "00:10:18:aa:bb:cc"}, {"00:10:18:AA:BB:CC", "00:10:18:aa:bb:cc"},
        {"00-10-18-Aa-bB-cc", "00:10:18:aa:bb:cc"}, {"001018AABBCC", "00:10:18:aa:bb:cc"},
        {"ffffffffffff", "ff:ff:ff:ff:ff:ff"},      {"0a:0B:0c:0D:0e:0F", "0a:0b:0c:0d:0e:0f"},
    };
    static const char *const bad[] = {
        "", "00:10:18:aa:bb", "00:10:18:aa:bb:cc:", "00:10:18:aa:bb:cc:dd", "00:10:18-aa:bb:cc",
        "00-10-18-aa-bb:cc", "00.10.18.aa.bb.cc", "0010.18aa.bbcc", "00:10:18:aa:bb:cg",
        "0:10:18:aa:bb:ccc", "001018aabbc", "001018aabbccd", " 00:10:18:aa:bb:cc",
        "00:10:18:aa:bb:cc ", "00 10 18 aa bb cc", "00:10:18:aa:bb:c\n", "+0:10:18:aa:bb:cc",
        "0x1018aabbcc", "00:10:18:aa:bb:\xc3\xa9", "001018aabb\0cc",
    };
    char out[CK_DEVICE_MAC_LEN + 1];

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        CHECK_OK(ck_device_mac_parse(good[i][0], out));
        CHECK(strcmp(out, good[i][1]) == 0);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int ret = ck_device_mac_parse(bad[i], out);
        if (ret != CK_ERR_INVAL)
            fprintf(stderr, "  accepted bad MAC #%zu\n", i);
        CHECK_INT_EQ(ret, CK_ERR_INVAL);
        CHECK(out[0] == '\0');
        /* The error never echoes the input (it may be attacker-chosen and end up in logs). */
        if (strlen(bad[i]) >= 5)
            CHECK(strstr(ck_error_context(), bad[i]) == NULL);
    }
    CHECK_INT_EQ(ck_device_mac_parse(NULL, out), CK_ERR_INVAL);
    CHECK(strcmp(ck_device_state_name(CK_DEVICE_ACTIVE), "active") == 0);
    CHECK(strcmp(ck_device_state_name(CK_DEVICE_REVOKED), "revoked") == 0);
    CHECK(strcmp(ck_device_state_name(CK_DEVICE_UNPROVISIONED), "unprovisioned") == 0);
    CHECK(strcmp(ck_device_state_name((enum ck_device_state)9), "unknown") == 0);
}

static void
pin_hex(void)
{
    uint8_t out[CK_DEVICE_SPKI_HASH_LEN];
    char hex[2 * CK_DEVICE_SPKI_HASH_LEN + 1], grouped[3 * CK_DEVICE_SPKI_HASH_LEN];
    static const char *const bad[] = {
        "", "0102", "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f2",
        "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f2021",
        "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f2g",
        "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f 20",
        " 102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20",
        "01:02:03:04:05:06:07:08:09:0a:0b:0c:0d:0e:0f:10:"
        "11:12:13:14:15:16:17:18:19:1a:1b:1c:1d:1e:1f-20",
        "01:02:03:04:05:06:07:08:09:0a:0b:0c:0d:0e:0f:10:"
        "11:12:13:14:15:16:17:18:19:1a:1b:1c:1d:1e:1f:2",
        "0x02030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20",
    };

    ck_device_pin_format_hex(pin_a, hex);
    CHECK(strcmp(hex, "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20") == 0);
    CHECK_OK(ck_device_pin_parse_hex(hex, out));
    CHECK_MEM_EQ(out, sizeof(out), pin_a, sizeof(pin_a));
    /* Upper case and openssl's colon-separated fingerprint form. */
    for (size_t i = 0; i < CK_DEVICE_SPKI_HASH_LEN; i++)
        snprintf(grouped + 3 * i, sizeof(grouped) - 3 * i, "%02X%s", pin_b[i],
                 i + 1 < CK_DEVICE_SPKI_HASH_LEN ? ":" : "");
    CHECK_OK(ck_device_pin_parse_hex(grouped, out));
    CHECK_MEM_EQ(out, sizeof(out), pin_b, sizeof(pin_b));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (ck_device_pin_parse_hex(bad[i], out) != CK_ERR_INVAL)
            fprintf(stderr, "  accepted bad hex #%zu\n", i);
        CHECK_INT_EQ(ck_device_pin_parse_hex(bad[i], out), CK_ERR_INVAL);
    }
    CHECK_INT_EQ(ck_device_pin_parse_hex(NULL, out), CK_ERR_INVAL);
}

struct dev_list {
    char macs[16][CK_DEVICE_MAC_LEN + 1];
    size_t n;
    int stop_after; /* 0: never */
};

static int
collect_dev(const ck_db_device *d, void *arg)
{
    struct dev_list *l = arg;

    if (l->n < 16)
        ck_strlcpy(l->macs[l->n], d->mac, sizeof(l->macs[0]));
    l->n++;
    return l->stop_after != 0 && (int)l->n >= l->stop_after ? 42 : 0;
}

static void
device_crud(void)
{
    ck_store *s, *ro = NULL;
    ck_db_device *d = NULL;
    ck_db_principal *p = NULL;
    struct dev_list l;
    uint64_t gen0 = 0, gen1 = 0;
    size_t n = 0;
    bool changed = false;

    fixture_up();
    s = fixture_open(db);
    add_user(s, "mta1@" REALM, NULL, 0);
    add_user(s, "mta2@" REALM, NULL, 0);
    CHECK_OK(ck_store_generation(s, &gen0));

    /* Add with a pin and a comment, given in another accepted form. */
    CHECK_OK(fixture_add_device(s, "00-10-18-AA-BB-02", "mta1@" REALM, pin_a, "rack 7, port 3"));
    CHECK_OK(ck_store_get_device(s, "001018aabb02", &d));
    if (d != NULL) {
        CHECK(strcmp(d->mac, MAC2) == 0);
        CHECK(strcmp(d->principal, "mta1@" REALM) == 0);
        CHECK(strcmp(d->comment, "rack 7, port 3") == 0);
        CHECK_INT_EQ(d->state, CK_DEVICE_ACTIVE);
        CHECK(d->has_pin);
        CHECK_MEM_EQ(d->spki_sha256, 32, pin_a, 32);
        CHECK(d->created > 0 && d->modified == d->created && d->revoked == 0);
        CHECK(d->generation > gen0);
        gen1 = d->generation;
    }
    ck_db_device_free(d);
    d = NULL;
    CHECK_OK(ck_store_generation(s, &gen0));
    CHECK_INT_EQ(gen0, gen1); /* the record's generation is the counter of its change */

    /* Without pin or comment. */
    CHECK_OK(fixture_add_device(s, MAC1, "mta2@" REALM, NULL, NULL));
    CHECK_OK(ck_store_get_device(s, MAC1, &d));
    CHECK(d != NULL && !d->has_pin && strcmp(d->comment, "") == 0 && d->generation > gen1);
    ck_db_device_free(d);
    d = NULL;

    /* Refusals: duplicate MAC (any spelling), unknown / foreign / non-canonical principal,
     * a state other than active, a bad MAC, NULL. */
    CHECK_INT_EQ(fixture_add_device(s, "00:10:18:AA:BB:02", "mta2@" REALM, NULL, NULL), CK_ERR_EXISTS);
    CHECK(strstr(ck_error_context(), MAC2) != NULL);
    CHECK_INT_EQ(fixture_add_device(s, MAC3, "nobody@" REALM, NULL, NULL), CK_ERR_NOTFOUND);
    CHECK(strstr(ck_error_context(), "nobody@" REALM) != NULL);
    CHECK_INT_EQ(fixture_add_device(s, MAC3, "mta1@OTHER.REALM", NULL, NULL), CK_ERR_INVAL);
    CHECK_INT_EQ(fixture_add_device(s, MAC3, "mta1", NULL, NULL), CK_ERR_INVAL);
    CHECK(fixture_add_device(s, MAC3, NULL, NULL, NULL) != 0);
    CHECK_INT_EQ(fixture_add_device(s, "00:10:18:aa:bb", "mta1@" REALM, NULL, NULL), CK_ERR_INVAL);
    {
        ck_db_device r;
        memset(&r, 0, sizeof(r));
        ck_strlcpy(r.mac, MAC3, sizeof(r.mac));
        r.principal = "mta1@" REALM;
        r.state = CK_DEVICE_REVOKED;
        CHECK_INT_EQ(ck_store_add_device(s, &r), CK_ERR_INVAL);
        CHECK_INT_EQ(ck_store_add_device(s, NULL), CK_ERR_INVAL);
    }
    CHECK_INT_EQ(ck_store_get_device(s, MAC3, &d), CK_ERR_NOTFOUND);
    CHECK(d == NULL);

    /* List: MAC order, bounded, paged, filtered by principal; cb can stop the walk. */
    CHECK_OK(fixture_add_device(s, MAC3, "mta1@" REALM, NULL, NULL));
    memset(&l, 0, sizeof(l));
    CHECK_OK(ck_store_list_devices(s, NULL, NULL, 100, collect_dev, &l, &n));
    CHECK_INT_EQ(n, 3);
    CHECK(strcmp(l.macs[0], MAC1) == 0 && strcmp(l.macs[1], MAC2) == 0 &&
          strcmp(l.macs[2], MAC3) == 0);
    memset(&l, 0, sizeof(l));
    CHECK_OK(ck_store_list_devices(s, NULL, NULL, 2, collect_dev, &l, &n));
    CHECK_INT_EQ(n, 2);
    CHECK_OK(ck_store_list_devices(s, NULL, l.macs[1], 2, collect_dev, &l, &n));
    CHECK_INT_EQ(n, 1);
    CHECK(strcmp(l.macs[2], MAC3) == 0);
    memset(&l, 0, sizeof(l));
    CHECK_OK(ck_store_list_devices(s, "mta1@" REALM, NULL, 100, collect_dev, &l, &n));
    CHECK_INT_EQ(n, 2);
    CHECK(strcmp(l.macs[0], MAC2) == 0 && strcmp(l.macs[1], MAC3) == 0);
    memset(&l, 0, sizeof(l));
    CHECK_OK(ck_store_list_devices(s, "mta1@" REALM, MAC2, 100, collect_dev, &l, &n));
    CHECK(n == 1 && strcmp(l.macs[0], MAC3) == 0);
    memset(&l, 0, sizeof(l));
    CHECK_OK(ck_store_list_devices(s, TGS, NULL, 100, collect_dev, &l, &n));
    CHECK_INT_EQ(n, 0);
    memset(&l, 0, sizeof(l));
    l.stop_after = 1;
    CHECK_INT_EQ(ck_store_list_devices(s, NULL, NULL, 100, collect_dev, &l, &n), 42);
    CHECK_INT_EQ(l.n, 1);
    CHECK_INT_EQ(ck_store_list_devices(s, NULL, NULL, 0, collect_dev, &l, &n), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_store_list_devices(s, NULL, NULL, CK_DEVICE_LIST_MAX + 1, collect_dev, &l,
                                       &n), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_store_list_devices(s, NULL, "zz", 10, collect_dev, &l, &n), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_store_list_devices(s, "bad@OTHER.REALM", NULL, 10, collect_dev, &l, &n),
                 CK_ERR_INVAL);

    /* Revoke keeps the record and the pin; again is a no-op; reinstate clears revoked. */
    CHECK_OK(ck_store_set_device_state(s, "00:10:18:AA:BB:02", CK_DEVICE_REVOKED, &changed));
    CHECK(changed);
    CHECK_OK(ck_store_get_device(s, MAC2, &d));
    if (d != NULL) {
        CHECK_INT_EQ(d->state, CK_DEVICE_REVOKED);
        CHECK(d->revoked > 0 && d->has_pin && d->generation > gen1);
        CHECK_MEM_EQ(d->spki_sha256, 32, pin_a, 32);
        gen1 = d->generation;
    }
    ck_db_device_free(d);
    d = NULL;
    CHECK_OK(ck_store_set_device_state(s, MAC2, CK_DEVICE_REVOKED, &changed));
    CHECK(!changed);
    CHECK_OK(ck_store_get_device(s, MAC2, &d));
    CHECK(d != NULL && d->generation == gen1); /* nothing written */
    ck_db_device_free(d);
    d = NULL;
    CHECK_OK(ck_store_set_device_state(s, MAC2, CK_DEVICE_ACTIVE, &changed));
    CHECK(changed);
    CHECK_OK(ck_store_get_device(s, MAC2, &d));
    CHECK(d != NULL && d->state == CK_DEVICE_ACTIVE && d->revoked == 0 && d->generation > gen1);
    ck_db_device_free(d);
    d = NULL;
    CHECK_INT_EQ(ck_store_set_device_state(s, "00:10:18:00:00:00", CK_DEVICE_REVOKED, NULL),
                 CK_ERR_NOTFOUND);
    CHECK_INT_EQ(ck_store_set_device_state(s, MAC2, (enum ck_device_state)3, NULL), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_store_set_device_state(s, "nonsense", CK_DEVICE_REVOKED, NULL), CK_ERR_INVAL);

    /* Set, replace and clear the pin. */
    CHECK_OK(ck_store_set_device_pin(s, MAC1, pin_b));
    CHECK_OK(ck_store_get_device(s, MAC1, &d));
    CHECK(d != NULL && d->has_pin && memcmp(d->spki_sha256, pin_b, 32) == 0);
    ck_db_device_free(d);
    d = NULL;
    CHECK_OK(ck_store_set_device_pin(s, MAC1, NULL));
    CHECK_OK(ck_store_get_device(s, MAC1, &d));
    CHECK(d != NULL && !d->has_pin);
    ck_db_device_free(d);
    d = NULL;
    CHECK_INT_EQ(ck_store_set_device_pin(s, MAC3 "0", pin_a), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_store_set_device_pin(s, "00:10:18:00:00:00", pin_a), CK_ERR_NOTFOUND);

    /* A principal with devices cannot be deleted; after its devices are gone it can. */
    CHECK_INT_EQ(ck_store_delete_principal(s, "mta1@" REALM), CK_ERR_POLICY);
    CHECK(strstr(ck_error_context(), "device") != NULL);
    CHECK_OK(ck_store_get_principal(s, "mta1@" REALM, &p));
    ck_db_principal_free(p);
    p = NULL;
    CHECK_OK(ck_store_delete_device(s, MAC2));
    CHECK_OK(ck_store_delete_device(s, "00-10-18-aa-bb-03"));
    CHECK_INT_EQ(ck_store_delete_device(s, MAC2), CK_ERR_NOTFOUND);
    CHECK_INT_EQ(ck_store_get_device(s, MAC2, &d), CK_ERR_NOTFOUND);
    CHECK_OK(ck_store_delete_principal(s, "mta1@" REALM));
    /* Re-adding a deleted MAC works and gets a new generation. */
    CHECK_OK(fixture_add_device(s, MAC2, "mta2@" REALM, NULL, NULL));
    CHECK_OK(ck_store_get_device(s, MAC2, &d));
    CHECK(d != NULL && d->generation > gen1 && !d->has_pin);
    ck_db_device_free(d);
    d = NULL;
    ck_store_close(s);

    /* Survives reopening; a read-only connection reads but cannot write. */
    CHECK_OK(ck_store_open(db, stash, CK_STORE_READONLY, &ro));
    if (ro != NULL) {
        uint8_t h[32];
        enum ck_device_pin_result res;
        CHECK_OK(ck_store_get_device(ro, MAC1, &d));
        CHECK(d != NULL && strcmp(d->principal, "mta2@" REALM) == 0);
        ck_db_device_free(d);
        d = NULL;
        memset(h, 1, sizeof(h));
        CHECK_INT_EQ(fixture_add_device(ro, MAC3, "mta2@" REALM, NULL, NULL), CK_ERR_PERM);
        CHECK_INT_EQ(ck_store_set_device_state(ro, MAC1, CK_DEVICE_REVOKED, NULL), CK_ERR_PERM);
        CHECK_INT_EQ(ck_store_set_device_pin(ro, MAC1, h), CK_ERR_PERM);
        CHECK_INT_EQ(ck_store_delete_device(ro, MAC1), CK_ERR_PERM);
        CHECK_INT_EQ(ck_store_device_pin_check(ro, MAC1, h, &res, NULL), CK_ERR_PERM);
        ck_store_close(ro);
    }
    fixture_down();
}

static void
device_pin_tofu(void)
{
    ck_store *s;
    ck_db_device *d = NULL;
    enum ck_device_pin_result res = CK_DEVICE_PIN_MATCH;
    uint64_t gen = 0, gen2 = 0;

    fixture_up();
    s = fixture_open(db);
    add_user(s, "mta@" REALM, NULL, 0);
    CHECK_OK(fixture_add_device(s, MAC1, "mta@" REALM, NULL, NULL));

    /* First login pins; the returned generation is the record's new one. */
    CHECK_OK(ck_store_device_pin_check(s, MAC1, pin_a, &res, &gen));
    CHECK_INT_EQ(res, CK_DEVICE_PIN_SET);
    CHECK_OK(ck_store_get_device(s, MAC1, &d));
    CHECK(d != NULL && d->has_pin && memcmp(d->spki_sha256, pin_a, 32) == 0 &&
          d->generation == gen);
    ck_db_device_free(d);
    d = NULL;
    /* The same key again: match, nothing written. */
    CHECK_OK(ck_store_device_pin_check(s, "00:10:18:AA:BB:01", pin_a, &res, &gen2));
    CHECK_INT_EQ(res, CK_DEVICE_PIN_MATCH);
    CHECK_INT_EQ(gen2, gen);
    /* Another key for the same MAC: a clone; the pin stays. */
    CHECK_OK(ck_store_device_pin_check(s, MAC1, pin_b, &res, &gen2));
    CHECK_INT_EQ(res, CK_DEVICE_PIN_MISMATCH);
    CHECK_INT_EQ(gen2, gen);
    CHECK_OK(ck_store_get_device(s, MAC1, &d));
    CHECK(d != NULL && memcmp(d->spki_sha256, pin_a, 32) == 0);
    ck_db_device_free(d);
    d = NULL;
    /* A pin given up front is compared the same way. */
    CHECK_OK(fixture_add_device(s, MAC2, "mta@" REALM, pin_b, NULL));
    CHECK_OK(ck_store_device_pin_check(s, MAC2, pin_a, &res, NULL));
    CHECK_INT_EQ(res, CK_DEVICE_PIN_MISMATCH);
    CHECK_OK(ck_store_device_pin_check(s, MAC2, pin_b, &res, NULL));
    CHECK_INT_EQ(res, CK_DEVICE_PIN_MATCH);
    /* Revoked: refused, even with the right key, and an unpinned revoked device is not pinned. */
    CHECK_OK(ck_store_set_device_state(s, MAC2, CK_DEVICE_REVOKED, NULL));
    CHECK_INT_EQ(ck_store_device_pin_check(s, MAC2, pin_b, &res, NULL), CK_ERR_POLICY);
    CHECK_INT_EQ(res, CK_DEVICE_PIN_MISMATCH);
    CHECK_OK(ck_store_set_device_pin(s, MAC2, NULL));
    CHECK_INT_EQ(ck_store_device_pin_check(s, MAC2, pin_b, &res, NULL), CK_ERR_POLICY);
    CHECK_OK(ck_store_get_device(s, MAC2, &d));
    CHECK(d != NULL && !d->has_pin);
    ck_db_device_free(d);
    d = NULL;
    /* Unknown and malformed. */
    CHECK_INT_EQ(ck_store_device_pin_check(s, MAC3, pin_a, &res, NULL), CK_ERR_NOTFOUND);
    CHECK_INT_EQ(ck_store_device_pin_check(s, "nonsense", pin_a, &res, NULL), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_store_device_pin_check(s, MAC1, NULL, &res, NULL), CK_ERR_INVAL);
    /* The operator replaced the device's key: unpin, and the next login pins the new key. */
    CHECK_OK(ck_store_set_device_pin(s, MAC1, NULL));
    CHECK_OK(ck_store_device_pin_check(s, MAC1, pin_b, &res, &gen2));
    CHECK_INT_EQ(res, CK_DEVICE_PIN_SET);
    CHECK(gen2 > gen);
    ck_store_close(s);
    fixture_down();
}

/* Two connections (two KDC workers) race to pin the same fresh devices with different keys:
 * for each device exactly one wins and the other sees a mismatch. */
#define RACE_DEVICES 24

struct racer {
    const uint8_t *pin;
    int set, mismatch, errors;
};

static void *
race_pin(void *arg)
{
    struct racer *r = arg;
    ck_store *s = NULL;
    char mac[CK_DEVICE_MAC_LEN + 1];

    if (ck_store_open(db, stash, 0, &s) != 0) {
        r->errors++;
        return NULL;
    }
    for (int i = 0; i < RACE_DEVICES; i++) {
        enum ck_device_pin_result res;
        snprintf(mac, sizeof(mac), "00:10:18:00:01:%02x", i);
        if (ck_store_device_pin_check(s, mac, r->pin, &res, NULL) != 0)
            r->errors++;
        else if (res == CK_DEVICE_PIN_SET)
            r->set++;
        else if (res == CK_DEVICE_PIN_MISMATCH)
            r->mismatch++;
        else
            r->errors++;
    }
    ck_store_close(s);
    return NULL;
}

static void
device_pin_race(void)
{
    struct racer ra = {pin_a, 0, 0, 0}, rb = {pin_b, 0, 0, 0};
    ck_store *s;
    pthread_t ta, tb;
    char mac[CK_DEVICE_MAC_LEN + 1];
    int a_won = 0;

    fixture_up();
    s = fixture_open(db);
    add_user(s, "mta@" REALM, NULL, 0);
    for (int i = 0; i < RACE_DEVICES; i++) {
        snprintf(mac, sizeof(mac), "00:10:18:00:01:%02x", i);
        CHECK_OK(fixture_add_device(s, mac, "mta@" REALM, NULL, NULL));
    }
    CHECK(pthread_create(&ta, NULL, race_pin, &ra) == 0);
    CHECK(pthread_create(&tb, NULL, race_pin, &rb) == 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CHECK_INT_EQ(ra.errors + rb.errors, 0);
    CHECK_INT_EQ(ra.set + rb.set, RACE_DEVICES);
    CHECK_INT_EQ(ra.mismatch + rb.mismatch, RACE_DEVICES);
    for (int i = 0; i < RACE_DEVICES; i++) {
        ck_db_device *d = NULL;
        snprintf(mac, sizeof(mac), "00:10:18:00:01:%02x", i);
        CHECK_OK(ck_store_get_device(s, mac, &d));
        CHECK(d != NULL && d->has_pin);
        if (d != NULL && memcmp(d->spki_sha256, pin_a, 32) == 0)
            a_won++;
        ck_db_device_free(d);
    }
    CHECK_INT_EQ(a_won, ra.set);
    ck_store_close(s);
    fixture_down();
}

/* The KDC worker's view (connection a, with its caches) of what the CLI (connection b) does:
 * every device change is visible at the very next lookup, with no interval and no restart. */
static void
device_revocation_live(void)
{
    ck_store *a, *b;
    const ck_db_device *r = NULL, *r2 = NULL;
    ck_store_cache_stats st;
    uint64_t gen_before = 0;
    ck_db_device *d = NULL;

    fixture_up();
    a = fixture_open(db);
    b = fixture_open(db);
    /* The principal cache would not look for a minute: devices must not depend on it. */
    ck_store_cache_configure(a, 1000, 60000);
    add_user(b, "mta@" REALM, NULL, 0);
    CHECK_OK(fixture_add_device(b, MAC1, "mta@" REALM, pin_a, NULL));

    ck_store_cache_begin(a);
    CHECK_OK(ck_store_get_device_cached(a, MAC1, &r));
    CHECK(r != NULL && r->state == CK_DEVICE_ACTIVE);
    CHECK_OK(ck_store_get_device_cached(a, "00-10-18-AA-BB-01", &r2));
    CHECK(r2 == r); /* a hit: the same record, no copy */
    CHECK_INT_EQ(ck_store_get_device_cached(a, MAC2, &r2), CK_ERR_NOTFOUND);
    CHECK_INT_EQ(ck_store_get_device_cached(a, MAC2, &r2), CK_ERR_NOTFOUND);
    CHECK_INT_EQ(ck_store_get_device_cached(a, "bogus", &r2), CK_ERR_INVAL);
    ck_store_device_cache_get_stats(a, &st);
    CHECK_INT_EQ(st.hits, 2);
    CHECK_INT_EQ(st.misses, 2);
    CHECK_INT_EQ(st.entries, 2);
    if (r != NULL)
        gen_before = r->generation;

    /* The CLI revokes; the worker's next lookup, in the same request even, sees it. */
    CHECK_OK(ck_store_set_device_state(b, MAC1, CK_DEVICE_REVOKED, NULL));
    CHECK_OK(ck_store_get_device_cached(a, MAC1, &r2));
    CHECK(r2 != NULL && r2->state == CK_DEVICE_REVOKED && r2->generation > gen_before);
    /* The record handed out before stays valid until the next begin (ASan checks). */
    CHECK(r != NULL && r->state == CK_DEVICE_ACTIVE);
    ck_store_cache_begin(a);

    /* A principal change elsewhere does not flush the device cache. */
    ck_store_device_cache_get_stats(a, &st);
    {
        uint64_t hits = st.hits, flushes = st.flushes;
        add_user(b, "other@" REALM, NULL, 0);
        CHECK_OK(ck_store_get_device_cached(a, MAC1, &r));
        ck_store_device_cache_get_stats(a, &st);
        CHECK_INT_EQ(st.hits, hits + 1);
        CHECK_INT_EQ(st.flushes, flushes);
    }

    /* Reinstate, unknown -> added (negative entry dropped), pin by login, delete. */
    CHECK_OK(ck_store_set_device_state(b, MAC1, CK_DEVICE_ACTIVE, NULL));
    CHECK_OK(ck_store_get_device_cached(a, MAC1, &r));
    CHECK(r != NULL && r->state == CK_DEVICE_ACTIVE);
    CHECK_OK(fixture_add_device(b, MAC2, "mta@" REALM, NULL, NULL));
    CHECK_OK(ck_store_get_device_cached(a, MAC2, &r2));
    CHECK(r2 != NULL && !r2->has_pin);
    {
        enum ck_device_pin_result res;
        uint64_t g = 0;
        CHECK_OK(ck_store_device_pin_check(b, MAC2, pin_b, &res, &g));
        CHECK_INT_EQ(res, CK_DEVICE_PIN_SET);
        CHECK_OK(ck_store_get_device_cached(a, MAC2, &r2));
        CHECK(r2 != NULL && r2->has_pin && r2->generation == g);
    }
    CHECK_OK(ck_store_delete_device(b, MAC1));
    CHECK_INT_EQ(ck_store_get_device_cached(a, MAC1, &r), CK_ERR_NOTFOUND);
    /* Deleted and added again: the generation never repeats. */
    CHECK_OK(fixture_add_device(b, MAC1, "mta@" REALM, pin_a, NULL));
    CHECK_OK(ck_store_get_device_cached(a, MAC1, &r));
    CHECK(r != NULL && r->generation > gen_before);
    ck_store_cache_begin(a);

    /* Writes through a's own connection are seen by a at once too. */
    CHECK_OK(ck_store_set_device_state(a, MAC1, CK_DEVICE_REVOKED, NULL));
    CHECK_OK(ck_store_get_device_cached(a, MAC1, &r));
    CHECK(r != NULL && r->state == CK_DEVICE_REVOKED);

    /* More changes than the change log replays: everything is dropped, answers stay right. */
    ck_store_cache_begin(a);
    for (int i = 0; i < 1001; i++)
        CHECK_OK(ck_store_set_device_pin(b, MAC2, (i & 1) ? pin_a : pin_b));
    CHECK_OK(ck_store_set_device_state(b, MAC1, CK_DEVICE_ACTIVE, NULL));
    ck_store_device_cache_get_stats(a, &st);
    {
        uint64_t flushes = st.flushes;
        CHECK_OK(ck_store_get_device_cached(a, MAC1, &r));
        CHECK(r != NULL && r->state == CK_DEVICE_ACTIVE);
        ck_store_device_cache_get_stats(a, &st);
        CHECK_INT_EQ(st.flushes, flushes + 1);
    }
    CHECK_OK(ck_store_get_device(b, MAC2, &d));
    CHECK_OK(ck_store_get_device_cached(a, MAC2, &r2));
    CHECK(d != NULL && r2 != NULL && memcmp(r2->spki_sha256, d->spki_sha256, 32) == 0 &&
          memcmp(d->spki_sha256, pin_b, 32) == 0);
    ck_db_device_free(d);
    ck_store_cache_begin(a);
    ck_store_close(a);
    ck_store_close(b);
    fixture_down();
}

/* Hostile or malformed input: clear errors, no crash, nothing stored. */
static void
device_hostile(void)
{
    ck_store *s;
    ck_db_device *d = NULL;
    const ck_db_device *cr = NULL;
    char comment[CK_DEVICE_COMMENT_MAX + 2], *longname;
    sqlite3 *raw = NULL;
    static const char *const bad_comments[] = {
        "line\nbreak", "esc\x1b[2J", "tab\there", "del\x7f", "c1 \xc2\x9b", "bad \xff utf8",
        "overlong \xc0\xaf", "surrogate \xed\xa0\x80", "truncated \xe2\x82", "cr\r",
        "past max \xf4\x90\x80\x80",
    };

    fixture_up();
    s = fixture_open(db);
    add_user(s, "mta@" REALM, NULL, 0);

    /* An overlong principal name is refused before any SQL. */
    longname = malloc(70016);
    memset(longname, 'a', 69990);
    memcpy(longname + 69990, "@" REALM, sizeof("@" REALM));
    CHECK(fixture_add_device(s, MAC1, longname, NULL, NULL) < 0);
    CHECK(ck_store_list_devices(s, longname, NULL, 10, collect_dev, NULL, NULL) < 0);
    free(longname);

    /* Comments: at most CK_DEVICE_COMMENT_MAX bytes of printable UTF-8. */
    memset(comment, 'x', sizeof(comment));
    comment[CK_DEVICE_COMMENT_MAX + 1] = '\0';
    CHECK_INT_EQ(fixture_add_device(s, MAC1, "mta@" REALM, NULL, comment), CK_ERR_LIMIT);
    comment[CK_DEVICE_COMMENT_MAX] = '\0';
    CHECK_OK(fixture_add_device(s, MAC1, "mta@" REALM, NULL, comment));
    for (size_t i = 0; i < sizeof(bad_comments) / sizeof(bad_comments[0]); i++) {
        int ret = fixture_add_device(s, MAC2, "mta@" REALM, NULL, bad_comments[i]);
        if (ret != CK_ERR_INVAL)
            fprintf(stderr, "  accepted bad comment #%zu\n", i);
        CHECK_INT_EQ(ret, CK_ERR_INVAL);
    }
    CHECK_OK(fixture_add_device(s, MAC2, "mta@" REALM, NULL, "B\xc3\xbcro \xe2\x80\x93 \xf0\x9f\x93\x9e"));
    CHECK_OK(ck_store_get_device(s, MAC2, &d));
    CHECK(d != NULL && strcmp(d->comment, "B\xc3\xbcro \xe2\x80\x93 \xf0\x9f\x93\x9e") == 0);
    ck_db_device_free(d);
    d = NULL;
    ck_store_close(s);

    /* A hand-edited database: a state this version does not know (9, say) fails closed; so does a non-canonical MAC. The KDC refuses both. */
    CHECK(sqlite3_open(db, &raw) == SQLITE_OK);
    CHECK(sqlite3_exec(raw, "UPDATE device SET state = 9 WHERE mac = '" MAC1 "';"
                            "INSERT INTO device(mac, principal, state, created, modified,"
                            " generation) VALUES ('00:10:18:AA:BB:03', 'mta@TEST.REALM', 1, 1, 1,"
                            " 1)",
                       NULL, NULL, NULL) == SQLITE_OK);
    /* The schema itself refuses a pin of the wrong length. */
    CHECK(sqlite3_exec(raw, "UPDATE device SET spki_sha256 = x'0102' WHERE mac = '" MAC2 "'",
                       NULL, NULL, NULL) != SQLITE_OK);
    sqlite3_close(raw);
    s = fixture_open(db);
    CHECK_INT_EQ(ck_store_get_device(s, MAC1, &d), CK_ERR_UNSUPPORTED);
    CHECK(d == NULL);
    ck_store_cache_begin(s);
    CHECK_INT_EQ(ck_store_get_device_cached(s, MAC1, &cr), CK_ERR_UNSUPPORTED);
    CHECK(cr == NULL);
    CHECK_INT_EQ(ck_store_get_device_cached(s, "00:10:18:aa:bb:03", &cr), CK_ERR_NOTFOUND);
    CHECK_INT_EQ(ck_store_list_devices(s, NULL, NULL, 10, collect_dev, &(struct dev_list){0},
                                       NULL), CK_ERR_DB);
    ck_store_cache_begin(s);
    ck_store_close(s);
    fixture_down();
}

/* The schema as version 1 (the foundation) created it, verbatim. */
static const char *const v1_schema[] = {
    "CREATE TABLE schema_version(version INTEGER NOT NULL)",
    "CREATE TABLE realm( id INTEGER PRIMARY KEY CHECK (id = 1), name TEXT NOT NULL, enctypes TEXT"
    " NOT NULL, max_life INTEGER NOT NULL, max_renew INTEGER NOT NULL, master_kvno INTEGER NOT"
    " NULL)",
    "CREATE TABLE master_key( kvno INTEGER PRIMARY KEY, enctype INTEGER NOT NULL, check_value"
    " BLOB NOT NULL, created INTEGER NOT NULL)",
    "CREATE TABLE generation(id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL)",
    "CREATE TABLE changelog(generation INTEGER PRIMARY KEY, name TEXT)",
    "CREATE TABLE principal( id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, attributes"
    " INTEGER NOT NULL, max_life INTEGER NOT NULL, max_renew INTEGER NOT NULL, expires INTEGER"
    " NOT NULL, pw_expires INTEGER NOT NULL, kvno INTEGER NOT NULL, created INTEGER NOT NULL,"
    " modified INTEGER NOT NULL)",
    "CREATE TABLE key( principal_id INTEGER NOT NULL REFERENCES principal(id) ON DELETE CASCADE,"
    " kvno INTEGER NOT NULL, enctype INTEGER NOT NULL, ord INTEGER NOT NULL, salt_type INTEGER"
    " NOT NULL, salt BLOB, mkvno INTEGER NOT NULL, key_enc BLOB NOT NULL, PRIMARY KEY"
    " (principal_id, kvno, enctype))",
};

/* Rewrites the fixture database as a version-1 database holding the same rows. */
static void
make_v1_database(void)
{
    fixture_old_schema("v1.db", v1_schema, sizeof(v1_schema) / sizeof(v1_schema[0]), 1,
                       "generation, name");
}

static int
schema_version_of(const char *path)
{
    sqlite3 *raw = NULL;
    sqlite3_stmt *q = NULL;
    int v = -1;

    if (sqlite3_open_v2(path, &raw, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(raw, "SELECT version FROM schema_version", -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW)
        v = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    sqlite3_close(raw);
    return v;
}

static void
schema_migration(void)
{
    ck_store *s = NULL, *s2 = NULL;
    ck_db_principal *p = NULL;
    ck_db_device *d = NULL;
    const ck_db_principal *cp = NULL;
    char *fresh = NULL, *migrated = NULL, fresh_db[160];
    uint64_t gen_v1 = 0, gen = 0;
    sqlite3 *raw = NULL;

    fixture_up();
    snprintf(fresh_db, sizeof(fresh_db), "%s/fresh.db", dir);
    CHECK_OK(ck_store_init_realm(fresh_db, NULL, REALM, all_enctypes, N_ENCTYPES, 0, 0));
    fresh = schema_dump(fresh_db);

    s = fixture_open(db);
    add_user(s, "alice@" REALM, "pw-alice", CK_ATTR_REQUIRES_PREAUTH);
    CHECK_OK(ck_store_generation(s, &gen_v1));
    ck_store_close(s);
    make_v1_database();
    CHECK_INT_EQ(schema_version_of(db), 1);

    /* A read-only open cannot upgrade, and says what to do. */
    CHECK_INT_EQ(ck_store_open(db, NULL, CK_STORE_READONLY, &s), CK_ERR_UNSUPPORTED);
    CHECK(s == NULL);
    CHECK(strstr(ck_error_context(), "version 1") != NULL);
    CHECK_INT_EQ(schema_version_of(db), 1);

    /* A read-write open upgrades, keeping every row; then a second connection opens normally. */
    CHECK_OK(ck_store_open(db, NULL, 0, &s));
    CHECK_INT_EQ(schema_version_of(db), sqlite_schema_version()); /* the newest */
    CHECK_OK(ck_store_open(db, NULL, 0, &s2));
    if (s != NULL && s2 != NULL) {
        CHECK_OK(ck_store_generation(s, &gen));
        CHECK_INT_EQ(gen, gen_v1);
        CHECK_OK(ck_store_get_principal(s, "alice@" REALM, &p));
        CHECK(p != NULL && p->n_keys == N_ENCTYPES && p->attributes == CK_ATTR_REQUIRES_PREAUTH);
        ck_db_principal_free(p);
        /* The change log written at version 1 still drives the principal cache. */
        ck_store_cache_configure(s2, 100, 0);
        ck_store_cache_begin(s2);
        CHECK_OK(ck_store_get_principal_cached(s2, "alice@" REALM, &cp));
        CHECK_OK(ck_store_delete_principal(s, "alice@" REALM));
        ck_store_cache_begin(s2);
        CHECK_INT_EQ(ck_store_get_principal_cached(s2, "alice@" REALM, &cp), CK_ERR_NOTFOUND);
        add_user(s, "mta@" REALM, NULL, 0);
        CHECK_OK(fixture_add_device(s, MAC1, "mta@" REALM, pin_a, "migrated"));
        CHECK_OK(ck_store_get_device(s2, MAC1, &d));
        CHECK(d != NULL && d->generation > gen_v1);
        ck_db_device_free(d);
    }
    ck_store_close(s);
    ck_store_close(s2);
    /* Upgraded and fresh databases have the same schema. */
    migrated = schema_dump(db);
    CHECK(strcmp(fresh, migrated) == 0);
    if (strcmp(fresh, migrated) != 0)
        fprintf(stderr, "  fresh:\n%s  migrated:\n%s", fresh, migrated);
    CHECK(strstr(migrated, "index device_principal CREATE INDEX device_principal ON "
                           "device(principal, mac)") != NULL);

    /* A database from a newer cablekey is refused, read-write too, and left alone. */
    CHECK(sqlite3_open(db, &raw) == SQLITE_OK);
    CHECK(sqlite3_exec(raw, "UPDATE schema_version SET version = 99", NULL, NULL, NULL) ==
          SQLITE_OK);
    sqlite3_close(raw);
    s = NULL;
    CHECK_INT_EQ(ck_store_open(db, NULL, 0, &s), CK_ERR_UNSUPPORTED);
    CHECK(s == NULL && strstr(ck_error_context(), "version 99") != NULL);
    CHECK_INT_EQ(schema_version_of(db), 99);
    free(fresh);
    free(migrated);
    fixture_down();
}

/* Renames keep keys and salts, repoint devices, bump their generation, and refuse the TGS,
 * clashes and absent names; realm settings round-trip through a new connection. */
static void
rename_and_realm(void)
{
    ck_store *s, *s2;
    ck_db_principal *p = NULL;
    ck_db_device *d = NULL;
    ck_realm_mod mod;
    uint64_t gen_before = 0;

    fixture_up();
    s = fixture_open(db);
    CHECK_INT_EQ(ck_store_realm(s)->default_attributes, CK_REALM_DEFAULT_ATTRIBUTES);
    add_user(s, "old@" REALM, "pw-old", CK_ATTR_REQUIRES_PREAUTH);
    add_user(s, "other@" REALM, "pw-other", 0);
    CHECK_OK(fixture_add_device(s, MAC1, "old@" REALM, pin_a, NULL));
    CHECK_OK(ck_store_get_device(s, MAC1, &d));
    if (d != NULL)
        gen_before = d->generation;
    ck_db_device_free(d);
    d = NULL;
    CHECK_INT_EQ(ck_store_rename_principal(s, "old@" REALM, "other@" REALM), CK_ERR_EXISTS);
    CHECK_INT_EQ(ck_store_rename_principal(s, "nosuch@" REALM, "x@" REALM), CK_ERR_NOTFOUND);
    CHECK_INT_EQ(ck_store_rename_principal(s, TGS, "x@" REALM), CK_ERR_POLICY);
    CHECK_INT_EQ(ck_store_rename_principal(s, "old@" REALM, TGS), CK_ERR_POLICY);
    CHECK_INT_EQ(ck_store_rename_principal(s, "old@" REALM, "x@OTHER.REALM"), CK_ERR_INVAL);
    CHECK_OK(ck_store_rename_principal(s, "old@" REALM, "new@" REALM));
    CHECK_INT_EQ(ck_store_get_principal(s, "old@" REALM, &p), CK_ERR_NOTFOUND);
    CHECK_OK(ck_store_get_principal(s, "new@" REALM, &p));
    /* The stored salt is still the old name's: the same password gives the same key. */
    if (p != NULL && p->n_keys > 0)
        CHECK(p->keys[0].salt_len == strlen(REALM "old") &&
              memcmp(p->keys[0].salt, REALM "old", p->keys[0].salt_len) == 0);
    ck_db_principal_free(p);
    CHECK_OK(ck_store_get_device(s, MAC1, &d));
    CHECK(d != NULL && strcmp(d->principal, "new@" REALM) == 0 && d->generation > gen_before);
    ck_db_device_free(d);

    memset(&mod, 0, sizeof(mod));
    CHECK_INT_EQ(ck_store_realm_modify(s, &mod), CK_ERR_INVAL);
    mod.mask = CK_REALM_MOD_MAX_LIFE;
    mod.max_life = 0;
    CHECK_INT_EQ(ck_store_realm_modify(s, &mod), CK_ERR_INVAL);
    mod.mask = CK_REALM_MOD_ENCTYPES;
    mod.n_enctypes = 2;
    mod.enctypes[0] = mod.enctypes[1] = CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96;
    CHECK_INT_EQ(ck_store_realm_modify(s, &mod), CK_ERR_INVAL);
    mod.mask = CK_REALM_MOD_MAX_LIFE | CK_REALM_MOD_MAX_RENEW | CK_REALM_MOD_ENCTYPES |
               CK_REALM_MOD_DEFAULT_ATTRIBUTES;
    mod.max_life = 30 * 3600;
    mod.max_renew = 14 * 86400;
    mod.n_enctypes = 1;
    mod.default_attributes = CK_ATTR_REQUIRES_PREAUTH | CK_ATTR_DISALLOW_PROXIABLE;
    CHECK_OK(ck_store_realm_modify(s, &mod));
    CHECK_INT_EQ(ck_store_realm(s)->max_life, 30 * 3600);
    CHECK_OK(ck_store_open(db, stash, CK_STORE_READONLY, &s2));
    if (s2 != NULL) {
        const ck_realm_info *ri = ck_store_realm(s2);
        CHECK_INT_EQ(ri->max_life, 30 * 3600);
        CHECK_INT_EQ(ri->max_renew, 14 * 86400);
        CHECK(ri->n_enctypes == 1 && ri->enctypes[0] == CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96);
        CHECK_INT_EQ(ri->default_attributes,
                     CK_ATTR_REQUIRES_PREAUTH | CK_ATTR_DISALLOW_PROXIABLE);
        CHECK_INT_EQ(ck_store_realm_modify(s2, &mod), CK_ERR_PERM);
    }
    ck_store_close(s2);
    ck_store_close(s);
    fixture_down();
}

/* Checkpoints off the writer's path (cablekey-prov's back): a connection in manual mode leaves
 * its commits in the write-ahead log; another connection copies them (passive: *complete, the
 * log's length); a restart makes the next write start the log over. Both connections read every
 * principal throughout. PostgreSQL: nothing to do, complete. */
static void
wal_checkpoint(void)
{
    ck_store *w, *c;
    ck_db_principal *p = NULL;
    char name[64];
    bool complete = false;
    int frames = -1, before;

    fixture_up();
    w = fixture_open(db);
    c = fixture_open(db);
    CHECK_OK(ck_store_wal_manual(w));
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof(name), "user%02d@" REALM, i);
        add_user(w, name, "pw", 0);
    }
    CHECK_OK(ck_store_checkpoint(c, false, &complete, &frames));
    CHECK(complete);
    if (ck_test_store_pg()) {
        CHECK_INT_EQ(frames, 0);
        add_user(w, "after-restart@" REALM, "pw", 0);
    } else {
        struct stat st;
        char wal[sizeof(db) + 8];
        snprintf(wal, sizeof(wal), "%s-wal", db);
        /* 40 principals and their audit rows: far beyond one page each, none copied by the
         * writer (its automatic checkpoint would have reset the log at 1,000 pages: it never
         * reached that, so check the log holds them all instead). */
        CHECK(frames >= 40);
        CHECK(stat(wal, &st) == 0 && st.st_size > 40 * 1024);
        before = frames;
        CHECK_OK(ck_store_checkpoint(c, true, &complete, &frames));
        CHECK(complete && frames == before);
        add_user(w, "after-restart@" REALM, "pw", 0);
        CHECK_OK(ck_store_checkpoint(c, false, &complete, &frames));
        CHECK(complete);
        if (!(frames > 0 && frames < before))
            fprintf(stderr, "  the log did not start over: %d frames, was %d\n", frames, before);
        CHECK(frames > 0 && frames < before);
    }
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof(name), "user%02d@" REALM, i);
        CHECK_OK(ck_store_get_principal(c, name, &p));
        ck_db_principal_free(p);
        p = NULL;
    }
    CHECK_OK(ck_store_get_principal(c, "after-restart@" REALM, &p));
    ck_db_principal_free(p);
    ck_store_close(w);
    ck_store_close(c);
    /* Reopened from the files alone: every commit is in the database. */
    w = fixture_open(db);
    CHECK_OK(ck_store_get_principal(w, "user39@" REALM, &p));
    ck_db_principal_free(p);
    ck_store_close(w);
    fixture_down();
}

CK_TEST_MAIN("store", CK_TEST_CASE(uri_parse), CK_TEST_CASE(uri_open), CK_TEST_CASE(init_realm), CK_TEST_CASE(stash_checks),
             CK_TEST_CASE(principal_crud), CK_TEST_CASE(rotation),
             CK_TEST_CASE(no_plaintext_keys), CK_TEST_CASE(key_binding), CK_TEST_CASE(cache),
             CK_TEST_CASE(mac_parse), CK_TEST_CASE(pin_hex), CK_TEST_CASE(device_crud),
             CK_TEST_CASE(device_pin_tofu), CK_TEST_CASE(device_pin_race),
             CK_TEST_CASE(device_revocation_live), CK_TEST_CASE(device_hostile),
             CK_TEST_CASE(schema_migration), CK_TEST_CASE(rename_and_realm),
             CK_TEST_CASE(wal_checkpoint))
