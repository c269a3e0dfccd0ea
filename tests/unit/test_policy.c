/* Password policies (store), the policy-checked password change, the migration of a schema-2
 * database (every later step, the policy one included), and the KDC's lockout counting driven
 * in-process with an injected clock: lockout after N failures, automatic unlock after the
 * duration, failure_interval expiry, administrative unlock, and the batching bound with two
 * workers on one database. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "ck_test.h"
#include "store_fixture.h"
#include "cablekey/log.h"
#include "cablekey/net.h"
#include "cablekey/store.h"
#include "cablekey/util.h"
#include "kdc_int.h"

#define REALM "TEST.REALM"
#define ALICE "alice@TEST.REALM"
#define ALICE_PW "Alice-pw-1"

static const int32_t all_enctypes[] = {
    CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96,
    CK_ENCTYPE_AES256_CTS_HMAC_SHA384_192, CK_ENCTYPE_AES128_CTS_HMAC_SHA256_128};
#define N_ENCTYPES (sizeof(all_enctypes) / sizeof(all_enctypes[0]))
#define T0 1800000000LL /* 2027-01-15: the injected "now" */

static uint8_t reply[65536];

static void
fixture_up(void)
{
    ck_log_set_level(LOG_ERR);
    store_fixture_up("policy", REALM, all_enctypes, N_ENCTYPES);
}

static void
add_user(ck_store *s, const char *name, const char *pw, uint32_t attrs, const char *policy)
{
    ck_db_principal *p = fixture_principal(name, pw, attrs, all_enctypes, N_ENCTYPES);

    if (policy != NULL)
        p->policy = strdup(policy);
    CHECK_OK(ck_store_create_principal(s, p));
    ck_db_principal_free(p);
}

static ck_policy
make_policy(const char *name)
{
    ck_policy pol;

    memset(&pol, 0, sizeof(pol));
    ck_strlcpy(pol.name, name, sizeof(pol.name));
    return pol;
}

static int
count_cb(const ck_policy *pol, void *arg)
{
    (void)pol;
    (*(int *)arg)++;
    return 0;
}

/* ---- policies ---- */

static void
policy_crud(void)
{
    ck_store *s;
    ck_policy pol = make_policy("users"), got, bad;
    ck_db_principal *p = NULL;
    int n = 0;

    fixture_up();
    s = fixture_open(db);
    pol.min_length = 8;
    pol.min_classes = 3;
    pol.history = 4;
    pol.min_life = 3600;
    pol.max_life = 90 * 86400;
    pol.max_failure = 5;
    pol.failure_interval = 600;
    pol.lockout_duration = 1800;
    CHECK_OK(ck_store_create_policy(s, &pol));
    CHECK_INT_EQ(ck_store_create_policy(s, &pol), CK_ERR_EXISTS);
    CHECK_OK(ck_store_get_policy(s, "users", &got));
    CHECK(strcmp(got.name, "users") == 0);
    CHECK_INT_EQ(got.min_length, 8);
    CHECK_INT_EQ(got.min_classes, 3);
    CHECK_INT_EQ(got.history, 4);
    CHECK_INT_EQ(got.min_life, 3600);
    CHECK_INT_EQ(got.max_life, 90 * 86400);
    CHECK_INT_EQ(got.max_failure, 5);
    CHECK_INT_EQ(got.failure_interval, 600);
    CHECK_INT_EQ(got.lockout_duration, 1800);
    CHECK_INT_EQ(got.ref_count, 0);
    CHECK(got.created > 0);
    CHECK_INT_EQ(ck_store_get_policy(s, "nope", &got), CK_ERR_NOTFOUND);

    /* Refusals: names and ranges. */
    bad = make_policy("has space");
    CHECK_INT_EQ(ck_store_create_policy(s, &bad), CK_ERR_INVAL);
    bad = make_policy("");
    CHECK_INT_EQ(ck_store_create_policy(s, &bad), CK_ERR_INVAL);
    bad = make_policy("x");
    bad.min_classes = 6;
    CHECK_INT_EQ(ck_store_create_policy(s, &bad), CK_ERR_INVAL);
    bad = make_policy("x");
    bad.lockout_duration = -1;
    CHECK_INT_EQ(ck_store_create_policy(s, &bad), CK_ERR_INVAL);
    bad = make_policy("x");
    bad.min_life = 100;
    bad.max_life = 50;
    CHECK_INT_EQ(ck_store_create_policy(s, &bad), CK_ERR_INVAL);
    bad = make_policy("x");
    bad.history = CK_POLICY_MAX_HISTORY + 1;
    CHECK_INT_EQ(ck_store_create_policy(s, &bad), CK_ERR_INVAL);

    /* Modify replaces the rules; modify of an absent policy is NOTFOUND. */
    pol.min_length = 12;
    CHECK_OK(ck_store_modify_policy(s, &pol));
    CHECK_OK(ck_store_get_policy(s, "users", &got));
    CHECK_INT_EQ(got.min_length, 12);
    bad = make_policy("ghost");
    CHECK_INT_EQ(ck_store_modify_policy(s, &bad), CK_ERR_NOTFOUND);

    /* Attached at creation, or later; an unknown policy is refused either way. */
    add_user(s, ALICE, ALICE_PW, 0, "users");
    add_user(s, "bob@" REALM, "bob", 0, NULL);
    {
        ck_db_principal *q = NULL;
        CHECK_OK(ck_db_principal_new("carol@" REALM, &q));
        q->kvno = 1;
        q->policy = strdup("ghost");
        CHECK_INT_EQ(ck_store_create_principal(s, q), CK_ERR_NOTFOUND);
        ck_db_principal_free(q);
    }
    CHECK_INT_EQ(ck_store_set_principal_policy(s, "bob@" REALM, "ghost"), CK_ERR_NOTFOUND);
    CHECK_OK(ck_store_set_principal_policy(s, "bob@" REALM, "users"));
    CHECK_OK(ck_store_get_principal(s, ALICE, &p));
    CHECK(p != NULL && p->policy != NULL && strcmp(p->policy, "users") == 0);
    CHECK(p != NULL && p->lockout.max_failure == 5 && p->lockout.lockout_duration == 1800);
    /* An update of the other fields keeps the policy. */
    if (p != NULL) {
        p->max_life = 3600;
        CHECK_OK(ck_store_update_principal(s, p));
    }
    ck_db_principal_free(p);
    p = NULL;
    CHECK_OK(ck_store_get_principal(s, ALICE, &p));
    CHECK(p != NULL && p->policy != NULL && p->max_life == 3600);
    ck_db_principal_free(p);
    p = NULL;
    CHECK_OK(ck_store_get_policy(s, "users", &got));
    CHECK_INT_EQ(got.ref_count, 2);

    /* MIT: no delete while in use. */
    CHECK_INT_EQ(ck_store_delete_policy(s, "users"), CK_ERR_POLICY);
    CHECK(strstr(ck_error_context(), "in use by 2") != NULL);
    CHECK_OK(ck_store_set_principal_policy(s, ALICE, NULL));
    CHECK_OK(ck_store_set_principal_policy(s, "bob@" REALM, NULL));
    CHECK_OK(ck_store_get_principal(s, ALICE, &p));
    CHECK(p != NULL && p->policy == NULL && p->lockout.max_failure == 0);
    ck_db_principal_free(p);
    pol = make_policy("aaa");
    CHECK_OK(ck_store_create_policy(s, &pol));
    CHECK_OK(ck_store_list_policies(s, count_cb, &n));
    CHECK_INT_EQ(n, 2);
    CHECK_OK(ck_store_delete_policy(s, "users"));
    CHECK_INT_EQ(ck_store_delete_policy(s, "users"), CK_ERR_NOTFOUND);
    n = 0;
    CHECK_OK(ck_store_list_policies(s, count_cb, &n));
    CHECK_INT_EQ(n, 1);
    ck_store_close(s);
    fixture_down();
}

/* A policy change reaches other connections' cached records (they carry its lockout rules). */
static void
policy_change_reaches_caches(void)
{
    ck_store *s, *s2;
    ck_policy pol = make_policy("lock");
    const ck_db_principal *cp = NULL;

    fixture_up();
    s = fixture_open(db);
    s2 = fixture_open(db);
    pol.max_failure = 3;
    CHECK_OK(ck_store_create_policy(s, &pol));
    add_user(s, ALICE, ALICE_PW, CK_ATTR_REQUIRES_PREAUTH, "lock");
    ck_store_cache_configure(s2, 100, 0);
    ck_store_cache_begin(s2);
    CHECK_OK(ck_store_get_principal_cached(s2, ALICE, &cp));
    CHECK(cp != NULL && cp->lockout.max_failure == 3);
    pol.max_failure = 7;
    CHECK_OK(ck_store_modify_policy(s, &pol));
    ck_store_cache_begin(s2);
    CHECK_OK(ck_store_get_principal_cached(s2, ALICE, &cp));
    CHECK(cp != NULL && cp->lockout.max_failure == 7);
    CHECK_OK(ck_store_set_principal_policy(s, ALICE, NULL));
    ck_store_cache_begin(s2);
    CHECK_OK(ck_store_get_principal_cached(s2, ALICE, &cp));
    CHECK(cp != NULL && cp->lockout.max_failure == 0 && cp->policy == NULL);
    ck_store_close(s2);
    ck_store_close(s);
    fixture_down();
}

/* True if the principal's current aes256 key derives from pw. */
static bool
has_password(ck_store *s, const char *name, const char *pw)
{
    ck_db_principal *p = NULL;
    const ck_db_key *k;
    ck_key d;
    bool ok = false;

    CHECK_OK(ck_store_get_principal(s, name, &p));
    if (p == NULL)
        return false;
    k = ck_db_principal_find_key(p, 0, CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96);
    if (k != NULL &&
        ck_string_to_key(k->enctype, pw, strlen(pw), k->salt, k->salt_len, NULL, 0, &d) == 0) {
        ok = ck_ct_equal(d.contents, k->key.contents, d.length);
        ck_key_clear(&d);
    }
    ck_db_principal_free(p);
    return ok;
}

static void
password_change(void)
{
    ck_store *s;
    ck_policy pol = make_policy("strict");
    ck_db_principal *p = NULL;
    uint32_t kvno = 0;
    int64_t t = T0;

    fixture_up();
    s = fixture_open(db);
    pol.min_length = 10;
    pol.min_classes = 3;
    pol.history = 3;
    pol.min_life = 3600;
    pol.max_life = 30 * 86400;
    CHECK_OK(ck_store_create_policy(s, &pol));
    add_user(s, ALICE, ALICE_PW, CK_ATTR_REQUIRES_PWCHANGE | CK_ATTR_REQUIRES_PREAUTH, "strict");

    /* Each rejection, with its reason, and nothing written. */
    CHECK_INT_EQ(ck_store_change_password(s, ALICE, "Sh0rt!", 6, 0, t, NULL), CK_ERR_POLICY);
    CHECK(strstr(ck_error_context(), "too short") != NULL);
    CHECK_INT_EQ(ck_store_change_password(s, ALICE, "alllowercaseletters", 19, 0, t, NULL),
                 CK_ERR_POLICY);
    CHECK(strstr(ck_error_context(), "character classes") != NULL);
    CHECK_INT_EQ(ck_store_change_password(s, ALICE, "lower-and-punct", 15, 0, t, NULL),
                 CK_ERR_POLICY);
    CHECK_INT_EQ(ck_store_change_password(s, ALICE, "", 0, 0, t, NULL), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_store_change_password(s, ALICE, "x", 1, 0x80, t, NULL), CK_ERR_INVAL);
    CHECK(has_password(s, ALICE, ALICE_PW));

    /* The current password is remembered too (history 3 = it and the 2 before). REQUIRES_PWCHANGE
     * lifts the minimum age (MIT). */
    CHECK_INT_EQ(ck_store_change_password(s, ALICE, ALICE_PW, strlen(ALICE_PW), 0, t, NULL),
                 CK_ERR_POLICY);
    CHECK(strstr(ck_error_context(), "used before") != NULL);
    CHECK_OK(ck_store_change_password(s, ALICE, "Second-pw-2", 11, 0, t, &kvno));
    CHECK_INT_EQ(kvno, 2);
    CHECK(has_password(s, ALICE, "Second-pw-2"));
    CHECK_OK(ck_store_get_principal(s, ALICE, &p));
    if (p != NULL) {
        CHECK_INT_EQ(p->last_pwd_change, t);
        CHECK_INT_EQ(p->pw_expires, t + 30 * 86400);
        CHECK(!(p->attributes & CK_ATTR_REQUIRES_PWCHANGE));
        CHECK(p->attributes & CK_ATTR_REQUIRES_PREAUTH);
        CHECK_INT_EQ(p->kvno, 2);
    }
    ck_db_principal_free(p);
    p = NULL;

    /* Too soon for the user; an administrator may. */
    CHECK_INT_EQ(ck_store_change_password(s, ALICE, "Third-pw-33", 11, 0, t + 60, NULL),
                 CK_ERR_POLICY);
    CHECK(strstr(ck_error_context(), "too recently") != NULL);
    CHECK(has_password(s, ALICE, "Second-pw-2"));
    CHECK_OK(ck_store_change_password(s, ALICE, "Third-pw-33", 11, CK_PW_ADMIN, t + 60, NULL));
    t += 7200;
    /* History: the first and second passwords are remembered, in either order. */
    CHECK_INT_EQ(ck_store_change_password(s, ALICE, ALICE_PW, strlen(ALICE_PW), 0, t, NULL),
                 CK_ERR_POLICY);
    CHECK_INT_EQ(ck_store_change_password(s, ALICE, "Second-pw-2", 11, 0, t, NULL),
                 CK_ERR_POLICY);
    CHECK_INT_EQ(ck_store_change_password(s, ALICE, "Third-pw-33", 11, CK_PW_ADMIN, t, NULL),
                 CK_ERR_POLICY);
    CHECK_OK(ck_store_change_password(s, ALICE, "Fourth-pw-4", 11, 0, t, NULL));
    t += 7200;
    /* Three remembered: the current (4th) and the 2 before (3rd, 2nd); the 1st has aged out. */
    CHECK_INT_EQ(ck_store_change_password(s, ALICE, "Second-pw-2", 11, 0, t, NULL),
                 CK_ERR_POLICY);
    CHECK_OK(ck_store_change_password(s, ALICE, ALICE_PW, strlen(ALICE_PW), 0, t, &kvno));
    CHECK_INT_EQ(kvno, 5);
    CHECK(has_password(s, ALICE, ALICE_PW));

    /* An expired password may be changed before min-life (its owner could not log in
     * otherwise); once changed, min-life applies again. */
    add_user(s, "erin@" REALM, "Erin-pw-001", 0, "strict");
    CHECK_OK(ck_store_change_password(s, "erin@" REALM, "Erin-pw-002", 11, CK_PW_ADMIN, t, NULL));
    CHECK_OK(ck_store_get_principal(s, "erin@" REALM, &p));
    if (p != NULL) {
        p->pw_expires = t + 10;
        CHECK_OK(ck_store_update_principal(s, p));
    }
    ck_db_principal_free(p);
    p = NULL;
    CHECK_INT_EQ(ck_store_change_password(s, "erin@" REALM, "Erin-pw-003", 11, 0, t + 5, NULL),
                 CK_ERR_POLICY);
    CHECK_OK(ck_store_change_password(s, "erin@" REALM, "Erin-pw-003", 11, 0, t + 10, NULL));
    CHECK_INT_EQ(ck_store_change_password(s, "erin@" REALM, "Erin-pw-004", 11, 0, t + 20, NULL),
                 CK_ERR_POLICY);

    /* ck_store_check_password alone. */
    CHECK_OK(ck_store_get_policy(s, "strict", &pol));
    CHECK_INT_EQ(ck_store_check_password(s, NULL, &pol, "short", 5), CK_ERR_POLICY);
    CHECK_INT_EQ(ck_store_check_password(s, ALICE, &pol, ALICE_PW, strlen(ALICE_PW)),
                 CK_ERR_POLICY);
    CHECK_OK(ck_store_check_password(s, ALICE, &pol, "Brand-new-99", 12));

    /* No policy: anything goes, pw_expires is cleared (MIT), no history is kept. */
    add_user(s, "bob@" REALM, "bob", 0, NULL);
    CHECK_OK(ck_store_change_password(s, "bob@" REALM, "bob", 3, 0, t, NULL));
    CHECK_OK(ck_store_get_principal(s, "bob@" REALM, &p));
    CHECK(p != NULL && p->pw_expires == 0 && p->kvno == 2 && p->last_pwd_change == t);
    ck_db_principal_free(p);
    CHECK_INT_EQ(ck_store_change_password(s, "nobody@" REALM, "x", 1, 0, t, NULL),
                 CK_ERR_NOTFOUND);
    /* A principal narrowed to some enctypes keeps them. */
    {
        static const int32_t one[] = {CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96};
        ck_db_principal *q = NULL;
        size_t n_new = 0;

        CHECK_OK(ck_db_principal_new("carol@" REALM, &q));
        if (q == NULL)
            abort();
        q->kvno = 1;
        CHECK_OK(ck_db_keys_make("carol@" REALM, "c", 1, one, 1, 1, &q->keys, &q->n_keys));
        CHECK_OK(ck_store_create_principal(s, q));
        ck_db_principal_free(q);
        q = NULL;
        CHECK_OK(ck_store_change_password(s, "carol@" REALM, "c2", 2, 0, t, NULL));
        CHECK_OK(ck_store_get_principal(s, "carol@" REALM, &q));
        for (size_t i = 0; q != NULL && i < q->n_keys; i++)
            if (q->keys[i].kvno == 2) {
                n_new++;
                CHECK_INT_EQ(q->keys[i].enctype, CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96);
            }
        CHECK_INT_EQ(n_new, 1);
        ck_db_principal_free(q);
    }
    ck_store_close(s);
    fixture_down();
}

/* ---- schema 2 -> 3 ---- */

/* The schema as versions 1 and 2 created it, verbatim (lib/store/sqlite.c). */
static const char *const v2_schema[] = {
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
    "ALTER TABLE changelog ADD COLUMN kind INTEGER NOT NULL DEFAULT 1",
    "CREATE TABLE device( mac TEXT NOT NULL PRIMARY KEY CHECK (length(mac) = 17), principal TEXT"
    " NOT NULL REFERENCES principal(name), state INTEGER NOT NULL, spki_sha256 BLOB CHECK"
    " (spki_sha256 IS NULL OR length(spki_sha256) = 32), created INTEGER NOT NULL, modified"
    " INTEGER NOT NULL, revoked INTEGER NOT NULL DEFAULT 0, generation INTEGER NOT NULL, comment"
    " TEXT NOT NULL DEFAULT '') WITHOUT ROWID",
    "CREATE INDEX device_principal ON device(principal, mac)",
};

static void
make_v2_database(void)
{
    fixture_old_schema("v2.db", v2_schema, sizeof(v2_schema) / sizeof(v2_schema[0]), 2,
                       "generation, name, kind");
}

/* A rename re-encrypts the password history for the new name: the history check still reads it,
 * so a remembered password stays refused under the new name. */
static void
rename_keeps_history(void)
{
    ck_store *s;
    ck_policy pol = make_policy("remember");
    const char *bob = "bob@" REALM;

    fixture_up();
    s = fixture_open(db);
    pol.history = 3;
    CHECK_OK(ck_store_create_policy(s, &pol));
    add_user(s, ALICE, ALICE_PW, 0, "remember");
    CHECK_OK(ck_store_change_password(s, ALICE, "Second-pw-2", 11, 0, T0, NULL));
    CHECK_OK(ck_store_change_password(s, ALICE, "Third-pw-33", 11, 0, T0, NULL));
    CHECK_OK(ck_store_rename_principal(s, ALICE, bob));
    CHECK(has_password(s, bob, "Third-pw-33"));
    /* Both remembered passwords (history rows) and the current one (key rows). */
    CHECK_INT_EQ(ck_store_change_password(s, bob, ALICE_PW, strlen(ALICE_PW), 0, T0, NULL),
                 CK_ERR_POLICY);
    CHECK(strstr(ck_error_context(), "used before") != NULL);
    CHECK_INT_EQ(ck_store_change_password(s, bob, "Second-pw-2", 11, 0, T0, NULL),
                 CK_ERR_POLICY);
    CHECK_INT_EQ(ck_store_change_password(s, bob, "Third-pw-33", 11, 0, T0, NULL),
                 CK_ERR_POLICY);
    CHECK(has_password(s, bob, "Third-pw-33"));
    CHECK_OK(ck_store_change_password(s, bob, "Fourth-pw-4", 11, 0, T0, NULL));
    ck_store_close(s);
    /* Every history row decrypts under its new name. */
    CHECK_OK(ck_store_check(db, NULL, NULL, NULL, NULL));
    fixture_down();
}

static void
migration_2_to_3(void)
{
    ck_store *s;
    ck_db_principal *p = NULL;
    ck_policy pol = make_policy("users");
    char fresh_db[160], *fresh, *migrated;

    fixture_up();
    snprintf(fresh_db, sizeof(fresh_db), "%s/fresh.db", dir);
    CHECK_OK(ck_store_init_realm(fresh_db, NULL, REALM, all_enctypes, N_ENCTYPES, 0, 0));
    fresh = schema_dump(fresh_db);
    s = fixture_open(db);
    add_user(s, ALICE, ALICE_PW, CK_ATTR_REQUIRES_PREAUTH, NULL);
    ck_store_close(s);
    make_v2_database();
    /* Read-only cannot upgrade; read-write does, keeping the rows. */
    s = NULL;
    CHECK_INT_EQ(ck_store_open(db, NULL, CK_STORE_READONLY, &s), CK_ERR_UNSUPPORTED);
    CHECK(strstr(ck_error_context(), "version 2") != NULL);
    s = fixture_open(db);
    CHECK_OK(ck_store_get_principal(s, ALICE, &p));
    CHECK(p != NULL && p->policy == NULL && p->last_pwd_change == 0 &&
          p->lockout.fail_count == 0 && p->attributes == CK_ATTR_REQUIRES_PREAUTH);
    ck_db_principal_free(p);
    CHECK(has_password(s, ALICE, ALICE_PW));
    /* The new tables work on the upgraded file. */
    pol.min_length = 4;
    CHECK_OK(ck_store_create_policy(s, &pol));
    CHECK_OK(ck_store_set_principal_policy(s, ALICE, "users"));
    CHECK_OK(ck_store_change_password(s, ALICE, "Newer-pw-1", 10, 0, T0, NULL));
    CHECK_OK(ck_store_unlock_principal(s, ALICE));
    ck_store_close(s);
    migrated = schema_dump(db);
    CHECK(strcmp(fresh, migrated) == 0);
    if (strcmp(fresh, migrated) != 0)
        fprintf(stderr, "  fresh:\n%s  migrated:\n%s", fresh, migrated);
    free(fresh);
    free(migrated);
    fixture_down();
}

/* ---- KDC lockout ---- */

static void
fixed_clock(void *ctx, int64_t *sec, int32_t *usec)
{
    *sec = *(const int64_t *)ctx;
    *usec = 0;
}

static int64_t kdc_now;

static struct kdc_worker *
lockout_worker(void)
{
    struct kdc_config cfg;
    struct kdc_worker *w = NULL;

    kdc_config_defaults(&cfg);
    cfg.db_path = db;
    cfg.stash_path = stash; /* SQLite: the default; PostgreSQL has none (store_fixture.h) */
    cfg.clock = fixed_clock;
    cfg.clock_ctx = &kdc_now;
    cfg.lockout_flush_ms = 3600 * 1000; /* only the explicit flushes below write */
    CHECK_OK(kdc_worker_new(&cfg, &w));
    if (w == NULL)
        abort();
    w->cache_check_ms = 0;
    ck_store_cache_configure(w->store, w->cache_max, 0);
    return w;
}

/* An AS-REQ for alice with PA-ENC-TIMESTAMP under pw's key, stamped with the KDC's clock. */
static size_t
as_exchange(struct kdc_worker *w, const char *pw)
{
    CK_AS_REQ *req = CK_AS_REQ_new();
    CK_KDC_REQ_BODY *b = req->req_body;
    ASN1_GENERALSTRING *realm = NULL;
    CK_PA_ENC_TS_ENC *ts = CK_PA_ENC_TS_ENC_new();
    CK_ENCRYPTED_DATA *ed = CK_ENCRYPTED_DATA_new();
    uint8_t *plain = NULL, *edder = NULL, *der = NULL;
    size_t plain_len = 0, edlen = 0, len = 0, n = 0;
    const int32_t et[] = {CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96};
    struct sockaddr_in sin;
    struct ck_peer peer;
    ck_key k;

    CHECK_OK(ck_string_to_key(et[0], pw, strlen(pw), (const uint8_t *)"TEST.REALMalice", 15,
                              NULL, 0, &k));
    req->pvno = 5;
    req->msg_type = CK_KRB_AS_REQ;
    CHECK_OK(ck_asn1_flags_set(&b->kdc_options, 0));
    CHECK_OK(ck_asn1_principal_parse("alice", CK_NT_PRINCIPAL, &b->cname, &realm));
    ASN1_STRING_free(realm);
    realm = NULL;
    CHECK_OK(ck_asn1_principal_parse("krbtgt/" REALM, CK_NT_SRV_INST, &b->sname, &realm));
    ASN1_STRING_free(realm);
    CHECK_OK(ck_asn1_kstring_set(&b->realm, REALM));
    CHECK_OK(ck_asn1_time_set(&b->till, kdc_now + 3600));
    CHECK_OK(ck_asn1_nonce_set(&b->nonce, 4242));
    CHECK_OK(ck_asn1_etypes_set(b, et, 1));
    CHECK_OK(ck_asn1_time_set(&ts->patimestamp, kdc_now));
    CHECK_OK(ck_asn1_int32_set(&ts->pausec, 0));
    CHECK_OK(ck_asn1_pa_enc_ts_enc_encode(ts, &plain, &plain_len));
    CHECK_OK(ck_enc_data_seal(ed, &k, CK_KU_PA_ENC_TS, NULL, plain, plain_len));
    CHECK_OK(ck_asn1_encrypted_data_encode(ed, &edder, &edlen));
    CHECK_OK(ck_asn1_padata_add(&req->padata, CK_PA_ENC_TIMESTAMP, edder, edlen));
    CHECK_OK(ck_asn1_as_req_encode(req, &der, &len));
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(0x7f000001);
    ck_peer_set(&peer, (const struct sockaddr *)&sin, sizeof(sin));
    CHECK_OK(kdc_handle_request(w, der, len, KDC_TRANSPORT_TCP, &peer, reply,
                                sizeof(reply), &n));
    ck_asn1_free_der(plain, plain_len);
    ck_asn1_free_der(edder, edlen);
    ck_asn1_free_der(der, len);
    CK_PA_ENC_TS_ENC_free(ts);
    CK_ENCRYPTED_DATA_free(ed);
    CK_AS_REQ_free(req);
    ck_key_clear(&k);
    return n;
}

/* 0 for an AS-REP, else the KRB-ERROR code. */
static int
outcome(struct kdc_worker *w, const char *pw)
{
    size_t n = as_exchange(w, pw);
    CK_KRB_ERROR_MSG *e = NULL;
    int code;

    if (n > 0 && ck_asn1_msg_type(reply, n) == CK_KRB_AS_REP)
        return 0;
    if (ck_asn1_krb_error_decode(reply, n, &e) != 0)
        return -1;
    code = e->error_code;
    CK_KRB_ERROR_MSG_free(e);
    return code;
}

static ck_db_lockout
stored_lockout(ck_store *s)
{
    ck_db_principal *p = NULL;
    ck_db_lockout l;

    memset(&l, 0, sizeof(l));
    CHECK_OK(ck_store_get_principal(s, ALICE, &p));
    if (p != NULL)
        l = p->lockout;
    ck_db_principal_free(p);
    return l;
}

static ck_store *
lockout_realm(uint32_t max_failure, int64_t interval, int64_t duration)
{
    ck_policy pol = make_policy("lock");
    ck_store *s;

    fixture_up();
    s = fixture_open(db);
    pol.max_failure = max_failure;
    pol.failure_interval = interval;
    pol.lockout_duration = duration;
    CHECK_OK(ck_store_create_policy(s, &pol));
    add_user(s, ALICE, ALICE_PW, CK_ATTR_REQUIRES_PREAUTH, "lock");
    kdc_now = T0;
    return s;
}

#define WRONG "wrong-password"

static void
lockout_and_duration(void)
{
    ck_store *s = lockout_realm(3, 60, 300);
    struct kdc_worker *w = lockout_worker();
    ck_db_lockout l;

    CHECK_INT_EQ(outcome(w, ALICE_PW), 0);
    for (int i = 0; i < 3; i++) {
        kdc_now++;
        CHECK_INT_EQ(outcome(w, WRONG), CK_KDC_ERR_PREAUTH_FAILED);
    }
    /* Locked: even the right password is refused, as MIT does. */
    CHECK_INT_EQ(outcome(w, ALICE_PW), CK_KDC_ERR_CLIENT_REVOKED);
    CHECK_INT_EQ(outcome(w, WRONG), CK_KDC_ERR_CLIENT_REVOKED);
    /* Batched: nothing written yet. */
    l = stored_lockout(s);
    CHECK_INT_EQ(l.fail_count, 0);
    CHECK_INT_EQ(kdc_lockout_pending(w), 1);
    CHECK_OK(kdc_lockout_flush(w));
    CHECK_INT_EQ(kdc_lockout_pending(w), 0);
    l = stored_lockout(s);
    CHECK_INT_EQ(l.fail_count, 3);
    CHECK_INT_EQ(l.last_failed, T0 + 3);
    CHECK_INT_EQ(l.last_success, T0);
    CHECK(ck_lockout_is_locked(&l, T0 + 3));
    /* Still locked from the stored state (the worker re-read the record after its write). */
    kdc_now = T0 + 3 + 299;
    CHECK_INT_EQ(outcome(w, ALICE_PW), CK_KDC_ERR_CLIENT_REVOKED);
    /* The duration passes: unlocked, and a success restarts the count. */
    kdc_now = T0 + 3 + 300;
    CHECK_INT_EQ(outcome(w, ALICE_PW), 0);
    CHECK_OK(kdc_lockout_flush(w));
    l = stored_lockout(s);
    CHECK_INT_EQ(l.fail_count, 0);
    CHECK_INT_EQ(l.last_success, T0 + 303);
    kdc_worker_free(w);
    ck_store_close(s);
    fixture_down();
}

static void
interval_reset(void)
{
    ck_store *s = lockout_realm(3, 60, 0);
    struct kdc_worker *w = lockout_worker();

    CHECK_INT_EQ(outcome(w, WRONG), CK_KDC_ERR_PREAUTH_FAILED);
    CHECK_INT_EQ(outcome(w, WRONG), CK_KDC_ERR_PREAUTH_FAILED);
    CHECK_OK(kdc_lockout_flush(w));
    CHECK_INT_EQ(stored_lockout(s).fail_count, 2);
    /* Older than failure_interval: they no longer count. */
    kdc_now += 61;
    CHECK_INT_EQ(outcome(w, WRONG), CK_KDC_ERR_PREAUTH_FAILED);
    CHECK_INT_EQ(outcome(w, WRONG), CK_KDC_ERR_PREAUTH_FAILED);
    CHECK_INT_EQ(outcome(w, ALICE_PW), 0);
    CHECK_OK(kdc_lockout_flush(w));
    CHECK_INT_EQ(stored_lockout(s).fail_count, 0);
    /* The same within one batch, and the write re-checks the stored time. */
    CHECK_INT_EQ(outcome(w, WRONG), CK_KDC_ERR_PREAUTH_FAILED);
    CHECK_INT_EQ(outcome(w, WRONG), CK_KDC_ERR_PREAUTH_FAILED);
    CHECK_OK(kdc_lockout_flush(w));
    kdc_now += 61;
    CHECK_INT_EQ(outcome(w, WRONG), CK_KDC_ERR_PREAUTH_FAILED);
    CHECK_OK(kdc_lockout_flush(w));
    CHECK_INT_EQ(stored_lockout(s).fail_count, 1);
    CHECK_INT_EQ(outcome(w, WRONG), CK_KDC_ERR_PREAUTH_FAILED);
    CHECK_INT_EQ(outcome(w, WRONG), CK_KDC_ERR_PREAUTH_FAILED);
    /* lockout_duration 0: locked until an administrator unlocks, however long it takes. */
    kdc_now += 10 * 365 * 86400LL;
    CHECK_INT_EQ(outcome(w, ALICE_PW), CK_KDC_ERR_CLIENT_REVOKED);
    CHECK_OK(kdc_lockout_flush(w));
    CHECK_OK(ck_store_unlock_principal(s, ALICE));
    CHECK_INT_EQ(outcome(w, ALICE_PW), 0);
    kdc_worker_free(w);
    ck_store_close(s);
    fixture_down();
}

static void
admin_unlock(void)
{
    ck_store *s = lockout_realm(2, 0, 0);
    struct kdc_worker *w = lockout_worker();
    ck_db_lockout l;

    /* Unlock while the failures are still unwritten: they are void, here and in the write. */
    CHECK_INT_EQ(outcome(w, WRONG), CK_KDC_ERR_PREAUTH_FAILED);
    CHECK_INT_EQ(outcome(w, WRONG), CK_KDC_ERR_PREAUTH_FAILED);
    CHECK_INT_EQ(outcome(w, ALICE_PW), CK_KDC_ERR_CLIENT_REVOKED);
    CHECK_OK(ck_store_unlock_principal(s, ALICE));
    CHECK_INT_EQ(outcome(w, ALICE_PW), 0);
    CHECK_OK(kdc_lockout_flush(w));
    l = stored_lockout(s);
    CHECK_INT_EQ(l.fail_count, 0);
    CHECK_INT_EQ(l.epoch, 1);
    /* Unlock after the write. */
    CHECK_INT_EQ(outcome(w, WRONG), CK_KDC_ERR_PREAUTH_FAILED);
    CHECK_INT_EQ(outcome(w, WRONG), CK_KDC_ERR_PREAUTH_FAILED);
    CHECK_OK(kdc_lockout_flush(w));
    CHECK_INT_EQ(stored_lockout(s).fail_count, 2);
    CHECK_INT_EQ(outcome(w, ALICE_PW), CK_KDC_ERR_CLIENT_REVOKED);
    CHECK_OK(ck_store_unlock_principal(s, ALICE));
    CHECK_INT_EQ(ck_store_unlock_principal(s, "nobody@" REALM), CK_ERR_NOTFOUND);
    CHECK_INT_EQ(outcome(w, ALICE_PW), 0);
    l = stored_lockout(s);
    CHECK_INT_EQ(l.fail_count, 0);
    CHECK_INT_EQ(l.epoch, 2);
    /* No policy: failures are counted, never locked. */
    CHECK_OK(kdc_lockout_flush(w));
    CHECK_OK(ck_store_set_principal_policy(s, ALICE, NULL));
    for (int i = 0; i < 5; i++)
        CHECK_INT_EQ(outcome(w, WRONG), CK_KDC_ERR_PREAUTH_FAILED);
    CHECK_INT_EQ(outcome(w, ALICE_PW), 0);
    CHECK_OK(kdc_lockout_flush(w));
    CHECK_INT_EQ(stored_lockout(s).fail_count, 0);
    kdc_worker_free(w);
    ck_store_close(s);
    fixture_down();
}

/* The documented bound: each worker admits at most max_failure failures before it refuses,
 * whatever the others did and whenever they write; W workers at most W * max_failure. */
static void
batching_bound(void)
{
    ck_store *s = lockout_realm(3, 0, 0);
    struct kdc_worker *w1 = lockout_worker(), *w2 = lockout_worker();
    int admitted1 = 0, admitted2 = 0;

    for (int i = 0; i < 10; i++) {
        if (outcome(w1, WRONG) == CK_KDC_ERR_PREAUTH_FAILED)
            admitted1++;
        if (outcome(w2, WRONG) == CK_KDC_ERR_PREAUTH_FAILED)
            admitted2++;
    }
    CHECK_INT_EQ(admitted1, 3);
    CHECK_INT_EQ(admitted2, 3);
    CHECK_OK(kdc_lockout_flush(w1));
    CHECK_OK(kdc_lockout_flush(w2));
    /* The writes merge: the stored count is every failure, fleet-wide. */
    CHECK_INT_EQ(stored_lockout(s).fail_count, 6);
    CHECK_INT_EQ(outcome(w1, ALICE_PW), CK_KDC_ERR_CLIENT_REVOKED);
    CHECK_INT_EQ(outcome(w2, ALICE_PW), CK_KDC_ERR_CLIENT_REVOKED);

    /* A worker that wrote sees the others' written failures: after w1's write of 2, w2 (which
     * re-reads) admits only 1 more. */
    CHECK_OK(ck_store_unlock_principal(s, ALICE));
    CHECK_INT_EQ(outcome(w1, WRONG), CK_KDC_ERR_PREAUTH_FAILED);
    CHECK_INT_EQ(outcome(w1, WRONG), CK_KDC_ERR_PREAUTH_FAILED);
    CHECK_OK(kdc_lockout_flush(w1));
    ck_store_cache_flush(w2->store); /* as a write of its own, or a change check, would */
    CHECK_INT_EQ(outcome(w2, WRONG), CK_KDC_ERR_PREAUTH_FAILED);
    CHECK_INT_EQ(outcome(w2, WRONG), CK_KDC_ERR_CLIENT_REVOKED);
    /* Idle writes only when due; kdc_worker_free writes what is left. */
    CHECK(kdc_worker_idle(w2) > 0);
    CHECK_INT_EQ(kdc_lockout_pending(w2), 1);
    kdc_worker_free(w2);
    CHECK_INT_EQ(stored_lockout(s).fail_count, 3);
    kdc_worker_free(w1);
    ck_store_close(s);
    fixture_down();
}

/* Another writer holds the database: the write gives up quickly, the events are kept (the
 * worker still refuses from its view) and written at the next attempt. */
static void
busy_database(void)
{
    ck_store *s = lockout_realm(2, 0, 0);
    struct kdc_worker *w = lockout_worker();
    sqlite3 *raw = NULL;
    int64_t t0, t1;

    CHECK_INT_EQ(outcome(w, WRONG), CK_KDC_ERR_PREAUTH_FAILED);
    CHECK_INT_EQ(outcome(w, WRONG), CK_KDC_ERR_PREAUTH_FAILED);
    CHECK(sqlite3_open(db, &raw) == SQLITE_OK);
    CHECK(sqlite3_exec(raw, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK);
    t0 = ck_monotonic_ms();
    CHECK(kdc_lockout_flush(w) != 0);
    t1 = ck_monotonic_ms();
    CHECK(t1 - t0 < 2000); /* not the 5 s busy timeout of administrative writes */
    CHECK_INT_EQ(kdc_lockout_pending(w), 1);
    CHECK_INT_EQ(outcome(w, ALICE_PW), CK_KDC_ERR_CLIENT_REVOKED);
    CHECK(sqlite3_exec(raw, "ROLLBACK", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(raw);
    CHECK_OK(kdc_lockout_flush(w));
    CHECK_INT_EQ(kdc_lockout_pending(w), 0);
    CHECK_INT_EQ(stored_lockout(s).fail_count, 2);
    kdc_worker_free(w);
    ck_store_close(s);
    fixture_down();
}

/* disable_lockout: no counting, no locking, nothing written. */
static void
lockout_disabled(void)
{
    ck_store *s = lockout_realm(1, 0, 0);
    struct kdc_config cfg;
    struct kdc_worker *w = NULL;

    kdc_config_defaults(&cfg);
    cfg.db_path = db;
    cfg.stash_path = stash; /* SQLite: the default; PostgreSQL has none (store_fixture.h) */
    cfg.clock = fixed_clock;
    cfg.clock_ctx = &kdc_now;
    cfg.disable_lockout = true;
    CHECK_OK(kdc_worker_new(&cfg, &w));
    if (w == NULL)
        abort();
    for (int i = 0; i < 3; i++)
        CHECK_INT_EQ(outcome(w, WRONG), CK_KDC_ERR_PREAUTH_FAILED);
    CHECK_INT_EQ(outcome(w, ALICE_PW), 0);
    CHECK_INT_EQ(kdc_lockout_pending(w), 0);
    kdc_worker_free(w);
    CHECK_INT_EQ(stored_lockout(s).fail_count, 0);
    ck_store_close(s);
    fixture_down();
}

CK_TEST_MAIN("policy", CK_TEST_CASE(policy_crud), CK_TEST_CASE(policy_change_reaches_caches),
             CK_TEST_CASE(password_change), CK_TEST_CASE(rename_keeps_history),
             CK_TEST_CASE(migration_2_to_3), CK_TEST_CASE(lockout_and_duration),
             CK_TEST_CASE(interval_reset), CK_TEST_CASE(admin_unlock),
             CK_TEST_CASE(batching_bound), CK_TEST_CASE(busy_database),
             CK_TEST_CASE(lockout_disabled))
