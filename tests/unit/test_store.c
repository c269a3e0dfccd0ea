#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "ck_test.h"
#include "cablekey/principal.h"
#include "cablekey/store.h"
#include "cablekey/util.h"

#define REALM "TEST.REALM"
#define TGS "krbtgt/TEST.REALM@TEST.REALM"

static const int32_t all_enctypes[] = {
    CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96,
    CK_ENCTYPE_AES256_CTS_HMAC_SHA384_192, CK_ENCTYPE_AES128_CTS_HMAC_SHA256_128};
#define N_ENCTYPES (sizeof(all_enctypes) / sizeof(all_enctypes[0]))

static char dir[64], db[128], stash[128];

static void
fixture_up(void)
{
    ck_strlcpy(dir, "/tmp/ck-store-XXXXXX", sizeof(dir));
    if (mkdtemp(dir) == NULL)
        abort();
    snprintf(db, sizeof(db), "%s/principal.db", dir);
    snprintf(stash, sizeof(stash), "%s/principal.db.stash", dir);
    CHECK_OK(ck_store_init_realm(db, stash, REALM, all_enctypes, N_ENCTYPES, 0, 0));
}

static void
fixture_down(void)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "  could not remove %s\n", dir);
}

static ck_store *
open_store(void)
{
    ck_store *s = NULL;

    CHECK_OK(ck_store_open(db, NULL, 0, &s));
    if (s == NULL)
        abort();
    return s;
}

/* Creates name with password-derived keys for all enctypes. */
static void
add_user(ck_store *s, const char *name, const char *pw, uint32_t attrs)
{
    ck_db_principal *p = NULL;

    CHECK_OK(ck_db_principal_new(name, &p));
    if (p == NULL)
        return;
    p->kvno = 1;
    p->attributes = attrs;
    CHECK_OK(ck_db_keys_make(name, pw, pw ? strlen(pw) : 0, all_enctypes, N_ENCTYPES, 1,
                             &p->keys, &p->n_keys));
    CHECK_OK(ck_store_create_principal(s, p));
    ck_db_principal_free(p);
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
    s = open_store();
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
    CHECK(q != NULL && sqlite3_step(q) == SQLITE_ROW && sqlite3_column_int(q, 0) == 2);
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
    s = open_store();
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
    s = open_store();
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
    CHECK_OK(ck_store_open(db, NULL, CK_STORE_READONLY, &s));
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
    s = open_store();
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
    s = open_store();
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
    s = open_store();
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
    s = open_store();
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
    a = open_store();
    b = open_store();
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

    /* Within the interval the old record is still served and still valid. */
    CHECK_OK(ck_store_get_principal_cached(a, "alice@" REALM, &r2));
    CHECK(r2 != NULL && r2->kvno == 1);
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

CK_TEST_MAIN("store", CK_TEST_CASE(init_realm), CK_TEST_CASE(stash_checks),
             CK_TEST_CASE(principal_crud), CK_TEST_CASE(rotation),
             CK_TEST_CASE(no_plaintext_keys), CK_TEST_CASE(key_binding), CK_TEST_CASE(cache))
