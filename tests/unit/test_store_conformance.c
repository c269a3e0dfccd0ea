/* The store backend conformance suite: the same cases against every backend (SQLite and
 * PostgreSQL), through struct ck_store_ops, so that a KDC sees one behaviour whatever its
 * database: open/create, principal CRUD, keys that stay encrypted at rest, kvno bump in one
 * transaction (a failed one leaves nothing), change counter + change log + audit row with each
 * write, devices and policies, a wrong schema version refused. PostgreSQL only: change
 * notification to a second connection, a refused login as one clear error, read-only opens.
 *
 * PostgreSQL comes from tests/interop/pg_run.sh: run without CK_PG_URI in the environment, this
 * binary re-executes itself through that script, which starts a throw-away server (initdb in a
 * temp dir, private socket) and removes it afterwards. A missing PostgreSQL fails the run. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "ck_test.h"
#include "cablekey/rotation.h"
#include "cablekey/store.h"
#include "cablekey/util.h"
#include "store/store_int.h"

struct target {
    const char *name;
    const struct ck_store_ops *ops;
    char path[256];
};

static char tmpdir[64];
static struct target t_sqlite = {.name = "sqlite", .ops = &ck_store_sqlite_ops};
static struct target t_pg = {.name = "postgresql", .ops = &ck_store_postgresql_ops};
static struct target *T; /* the backend of the running case */

/* ---- per-backend raw access (what only a test does: bypass the backend) ---- */

static int
raw_sql(const char *sql)
{
    int ok = 0;

    if (T == &t_sqlite) {
        sqlite3 *db = NULL;

        ok = sqlite3_open(T->path, &db) == SQLITE_OK &&
             sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK;
        if (!ok)
            fprintf(stderr, "  raw sqlite: %s\n", db != NULL ? sqlite3_errmsg(db) : "open");
        sqlite3_close(db);
    } else {
        PGconn *c = PQconnectdb(T->path);
        PGresult *r = NULL;

        if (PQstatus(c) == CONNECTION_OK) {
            r = PQexec(c, sql);
            ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
        }
        if (!ok)
            fprintf(stderr, "  raw pg: %s", PQerrorMessage(c));
        PQclear(r);
        PQfinish(c);
    }
    return ok ? 0 : -1;
}

/* An empty database for the running backend. */
static void
reset_db(void)
{
    if (T == &t_sqlite) {
        char p[300];

        for (const char *sfx = ""; sfx != NULL;
             sfx = *sfx == '\0' ? "-wal" : strcmp(sfx, "-wal") == 0 ? "-shm" : NULL) {
            snprintf(p, sizeof(p), "%s%s", T->path, sfx);
            unlink(p);
        }
        /* open(create) makes the file itself (exclusively, 0600). */
    } else {
        /* The role owns the database, hence its public schema. */
        if (raw_sql("SET client_min_messages = warning; DROP SCHEMA public CASCADE;"
                    " CREATE SCHEMA public") != 0)
            abort();
    }
}

static const int32_t enctypes[] = {CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96,
                                   CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96};

/* A new realm in an empty database, opened. */
static void *
make_realm(void)
{
    static const uint8_t check[] = {0x00, 0x01, 0xfe, 0xff, 0x00, 0x42};
    struct ck_store_mkey_row mk = {.kvno = 1, .enctype = CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96,
                                   .check = (uint8_t *)check, .check_len = sizeof(check)};
    ck_realm_info realm;
    void *be = NULL;

    memset(&realm, 0, sizeof(realm));
    ck_strlcpy(realm.name, "CONF.TEST", sizeof(realm.name));
    realm.enctypes[0] = enctypes[0];
    realm.enctypes[1] = enctypes[1];
    realm.n_enctypes = 2;
    realm.max_life = 36000;
    realm.max_renew = 604800;
    realm.master_kvno = 1;
    reset_db();
    CHECK_OK(T->ops->open(T->path, 0, true, &be));
    if (be == NULL)
        abort();
    CHECK_OK(T->ops->init_schema(be, &realm, &mk, 1700000000));
    return be;
}

static void *
reopen(unsigned flags)
{
    void *be = NULL;

    CHECK_OK(T->ops->open(T->path, flags, false, &be));
    if (be == NULL)
        abort();
    return be;
}

/* A key row whose encrypted blob holds NUL and 0xff bytes (binary safety). */
static struct ck_store_key_row
key_row(uint32_t kvno, int32_t enctype, uint8_t fill, uint8_t *buf, size_t len)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(i % 3 == 0 ? 0 : fill + i);
    return (struct ck_store_key_row){.kvno = kvno, .enctype = enctype, .salt_type = 3,
                                     .salt = (uint8_t *)"CONF.TESTuser", .salt_len = 13,
                                     .mkvno = 1, .key_enc = buf, .key_enc_len = len};
}

static int
put_simple(void *be, const char *name, uint32_t kvno, enum ck_store_put_mode mode)
{
    uint8_t b1[60], b2[44];
    struct ck_store_key_row keys[2] = {key_row(kvno, enctypes[0], 0x10, b1, sizeof(b1)),
                                       key_row(kvno, enctypes[1], 0x20, b2, sizeof(b2))};
    struct ck_store_princ_row row = {.name = (char *)name, .attributes = 0x80,
                                     .max_life = 3600, .max_renew = 7200, .expires = 0,
                                     .pw_expires = 1800000000, .kvno = kvno, .n_keys = 2,
                                     .keys = keys};

    return T->ops->put(be, &row, mode, 1700000100);
}

static uint64_t
gen_of(void *be)
{
    uint64_t g = 0;

    CHECK_OK(T->ops->generation(be, &g));
    return g;
}

struct seen {
    int n, all;
    char last[128];
};

static void
on_change(enum ck_store_change_kind kind, const char *key, void *arg)
{
    struct seen *s = arg;

    s->n++;
    if (kind == CK_CHANGE_ALL)
        s->all++;
    else
        ck_strlcpy(s->last, key, sizeof(s->last));
}

static int
count_audit(const ck_audit_entry *e, void *arg)
{
    (void)e;
    (*(int *)arg)++;
    return 0;
}

static int
audit_rows(void *be, const char *object)
{
    ck_audit_filter f = {.since = 0, .object = object, .action = NULL, .limit = 1000};
    int n = 0;

    CHECK_OK(T->ops->audit_list(be, &f, count_audit, &n));
    return n;
}

static int
collect_name(const char *name, void *arg)
{
    char *buf = arg;
    size_t n = strlen(buf);

    snprintf(buf + n, 256 - n, "%s;", name);
    return 0;
}

/* ---- cases, each run against every backend ---- */

static void
create_open(void)
{
    struct ck_store_mkey_row mk;
    ck_realm_info realm;
    void *be = make_realm(), *be2 = NULL;
    int ret;

    T->ops->close(be);
    be = reopen(0);
    memset(&realm, 0, sizeof(realm));
    CHECK_OK(T->ops->load_realm(be, &realm, &mk));
    CHECK(strcmp(realm.name, "CONF.TEST") == 0);
    CHECK_INT_EQ(realm.n_enctypes, 2);
    CHECK_INT_EQ(realm.enctypes[0], enctypes[0]);
    CHECK_INT_EQ(realm.enctypes[1], enctypes[1]);
    CHECK_INT_EQ(realm.max_life, 36000);
    CHECK_INT_EQ(realm.max_renew, 604800);
    CHECK_INT_EQ(realm.master_kvno, 1);
    CHECK_INT_EQ(realm.default_attributes, 128);
    CHECK_INT_EQ(mk.kvno, 1);
    CHECK_MEM_EQ(mk.check, mk.check_len, "\x00\x01\xfe\xff\x00\x42", 6);
    ck_store_mkey_row_clear(&mk);
    CHECK_INT_EQ(gen_of(be), 1);
    T->ops->close(be);
    /* A second realm on the same database is refused, and changes nothing. */
    ret = T->ops->open(T->path, 0, true, &be2);
    if (ret == 0) {
        ck_realm_info r2 = realm;
        struct ck_store_mkey_row m2 = {.kvno = 1, .enctype = 18, .check = (uint8_t *)"x",
                                       .check_len = 1};
        ret = T->ops->init_schema(be2, &r2, &m2, 1);
        T->ops->close(be2);
    }
    CHECK(ret != 0);
    be = reopen(0);
    CHECK_INT_EQ(gen_of(be), 1);
    T->ops->close(be);
}

static void
principal_crud(void)
{
    void *be = make_realm();
    struct ck_store_princ_row row;
    struct ck_store_princ_row upd = {.name = "alice@CONF.TEST", .attributes = 0x1,
                                     .max_life = 10, .max_renew = 20, .expires = 30,
                                     .pw_expires = 40};
    char names[256] = "";
    uint64_t g0 = gen_of(be);

    CHECK_OK(put_simple(be, "alice@CONF.TEST", 1, CK_PUT_CREATE));
    CHECK_OK(put_simple(be, "bob@CONF.TEST", 1, CK_PUT_CREATE));
    CHECK_INT_EQ(put_simple(be, "alice@CONF.TEST", 1, CK_PUT_CREATE), CK_ERR_EXISTS);
    CHECK_INT_EQ(gen_of(be), g0 + 2);
    CHECK_OK(T->ops->get(be, "alice@CONF.TEST", &row));
    CHECK(row.name != NULL && strcmp(row.name, "alice@CONF.TEST") == 0);
    CHECK_INT_EQ(row.attributes, 0x80);
    CHECK_INT_EQ(row.max_life, 3600);
    CHECK_INT_EQ(row.pw_expires, 1800000000);
    CHECK_INT_EQ(row.kvno, 1);
    CHECK_INT_EQ(row.created, 1700000100);
    CHECK_INT_EQ(row.n_keys, 2);
    if (row.n_keys == 2) {
        uint8_t b1[60], b2[44];
        struct ck_store_key_row k1 = key_row(1, enctypes[0], 0x10, b1, sizeof(b1));
        struct ck_store_key_row k2 = key_row(1, enctypes[1], 0x20, b2, sizeof(b2));

        /* Insertion order within a kvno; binary blobs intact. */
        CHECK_INT_EQ(row.keys[0].enctype, enctypes[0]);
        CHECK_INT_EQ(row.keys[1].enctype, enctypes[1]);
        CHECK_MEM_EQ(row.keys[0].key_enc, row.keys[0].key_enc_len, k1.key_enc, k1.key_enc_len);
        CHECK_MEM_EQ(row.keys[1].key_enc, row.keys[1].key_enc_len, k2.key_enc, k2.key_enc_len);
        CHECK_MEM_EQ(row.keys[0].salt, row.keys[0].salt_len, "CONF.TESTuser", 13);
        CHECK_INT_EQ(row.keys[0].salt_type, 3);
        CHECK_INT_EQ(row.keys[0].mkvno, 1);
    }
    ck_store_princ_row_clear(&row);
    CHECK_INT_EQ(T->ops->get(be, "nobody@CONF.TEST", &row), CK_ERR_NOTFOUND);

    CHECK_OK(T->ops->put(be, &upd, CK_PUT_UPDATE_FIELDS, 1700000200));
    CHECK_OK(T->ops->get(be, "alice@CONF.TEST", &row));
    CHECK_INT_EQ(row.attributes, 1);
    CHECK_INT_EQ(row.expires, 30);
    CHECK_INT_EQ(row.modified, 1700000200);
    CHECK_INT_EQ(row.n_keys, 2); /* fields only */
    ck_store_princ_row_clear(&row);
    upd.name = "nobody@CONF.TEST";
    CHECK_INT_EQ(T->ops->put(be, &upd, CK_PUT_UPDATE_FIELDS, 1), CK_ERR_NOTFOUND);

    CHECK_OK(put_simple(be, "alice@CONF.TEST", 7, CK_PUT_REPLACE));
    CHECK_OK(T->ops->get(be, "alice@CONF.TEST", &row));
    CHECK_INT_EQ(row.kvno, 7);
    CHECK_INT_EQ(row.n_keys, 2);
    CHECK(row.n_keys == 2 && row.keys[0].kvno == 7 && row.keys[1].kvno == 7);
    ck_store_princ_row_clear(&row);

    CHECK_OK(T->ops->list(be, collect_name, names));
    CHECK(strcmp(names, "alice@CONF.TEST;bob@CONF.TEST;") == 0);
    CHECK_OK(T->ops->del(be, "bob@CONF.TEST"));
    CHECK_INT_EQ(T->ops->del(be, "bob@CONF.TEST"), CK_ERR_NOTFOUND);
    CHECK_INT_EQ(T->ops->get(be, "bob@CONF.TEST", &row), CK_ERR_NOTFOUND);
    T->ops->close(be);
}

static void
rotate_one_transaction(void)
{
    void *be = make_realm();
    struct ck_store_princ_row row;
    struct seen s;
    uint8_t b1[40], b2[40], b3[40];
    struct ck_store_key_row k2[2] = {key_row(2, enctypes[0], 0x30, b1, sizeof(b1)),
                                     key_row(2, enctypes[1], 0x40, b2, sizeof(b2))};
    struct ck_store_key_row k3 = key_row(3, enctypes[0], 0x50, b3, sizeof(b3));
    uint64_t g0, cur = 0;
    int a0;

    CHECK_OK(put_simple(be, "svc/host@CONF.TEST", 1, CK_PUT_CREATE));
    g0 = gen_of(be);
    a0 = audit_rows(be, "svc/host@CONF.TEST");
    CHECK_OK(T->ops->rotate(be, "svc/host@CONF.TEST", 1, 2, k2, 2, 2, 1700000300));
    CHECK_INT_EQ(gen_of(be), g0 + 1);
    CHECK_INT_EQ(audit_rows(be, "svc/host@CONF.TEST"), a0 + 1);
    memset(&s, 0, sizeof(s));
    CHECK_OK(T->ops->changes_since(be, g0, &cur, on_change, &s));
    CHECK_INT_EQ(cur, g0 + 1);
    CHECK_INT_EQ(s.n, 1);
    CHECK_INT_EQ(s.all, 0);
    CHECK(strcmp(s.last, "svc/host@CONF.TEST") == 0);
    CHECK_OK(T->ops->get(be, "svc/host@CONF.TEST", &row));
    CHECK_INT_EQ(row.kvno, 2);
    CHECK_INT_EQ(row.n_keys, 4); /* kvno 2 first, then kvno 1 (keep 2) */
    CHECK(row.n_keys == 4 && row.keys[0].kvno == 2 && row.keys[2].kvno == 1);
    ck_store_princ_row_clear(&row);

    /* A writer that read kvno 1 comes second: refused, nothing written. */
    CHECK_INT_EQ(T->ops->rotate(be, "svc/host@CONF.TEST", 1, 2, k2, 2, 2, 1), CK_ERR_POLICY);
    CHECK_INT_EQ(gen_of(be), g0 + 1);

    /* keep 1: only kvno 3 stays. */
    CHECK_OK(T->ops->rotate(be, "svc/host@CONF.TEST", 2, 3, &k3, 1, 1, 1700000400));
    CHECK_OK(T->ops->get(be, "svc/host@CONF.TEST", &row));
    CHECK_INT_EQ(row.kvno, 3);
    CHECK_INT_EQ(row.n_keys, 1);
    ck_store_princ_row_clear(&row);
    CHECK_INT_EQ(gen_of(be), g0 + 2);
    T->ops->close(be);
}

/* A rotation whose key insert fails half-way (a duplicate enctype within the kvno violates the
 * key table's primary key) leaves the principal, the counter and the audit log as they were. */
static void
rotate_failure_atomic(void)
{
    void *be = make_realm();
    struct ck_store_princ_row row;
    uint8_t b1[40], b2[40];
    struct ck_store_key_row dup[2] = {key_row(2, enctypes[0], 0x30, b1, sizeof(b1)),
                                      key_row(2, enctypes[0], 0x40, b2, sizeof(b2))};
    uint64_t g0;
    int a0;

    CHECK_OK(put_simple(be, "svc/host@CONF.TEST", 1, CK_PUT_CREATE));
    g0 = gen_of(be);
    a0 = audit_rows(be, NULL);
    CHECK_INT_EQ(T->ops->rotate(be, "svc/host@CONF.TEST", 1, 2, dup, 2, 2, 1), CK_ERR_DB);
    CHECK_INT_EQ(gen_of(be), g0);
    CHECK_INT_EQ(audit_rows(be, NULL), a0);
    CHECK_OK(T->ops->get(be, "svc/host@CONF.TEST", &row));
    CHECK_INT_EQ(row.kvno, 1);
    CHECK_INT_EQ(row.n_keys, 2);
    CHECK(row.n_keys == 2 && row.keys[0].kvno == 1 && row.keys[1].kvno == 1);
    ck_store_princ_row_clear(&row);
    /* The connection is usable after the rollback. */
    CHECK_OK(T->ops->rotate(be, "svc/host@CONF.TEST", 1, 2, dup, 1, 2, 1));
    CHECK_INT_EQ(gen_of(be), g0 + 1);
    T->ops->close(be);
}

/* What the backend stores is the master-key ciphertext the generic layer made: the plaintext
 * key appears nowhere in it, and it decrypts only for its own principal. The master key is a
 * throw-away SQLite realm's (ck_store_init_realm), the backend under test only stores. */
static void
keys_encrypted_at_rest(void)
{
    char kdb[128], kstash[160];
    ck_store *ks = NULL;
    ck_db_principal *p = NULL;
    struct ck_store_key_row *rows = NULL;
    struct ck_store_princ_row row;
    ck_db_key k;
    void *be = make_realm();

    snprintf(kdb, sizeof(kdb), "%s/mkey.db", tmpdir);
    snprintf(kstash, sizeof(kstash), "%s/mkey.db.stash", tmpdir);
    unlink(kdb);
    unlink(kstash);
    CHECK_OK(ck_store_init_realm(kdb, kstash, "CONF.TEST", enctypes, 2, 0, 0));
    CHECK_OK(ck_store_open(kdb, kstash, 0, &ks));
    CHECK_OK(ck_db_principal_new("carol@CONF.TEST", &p));
    if (ks == NULL || p == NULL)
        abort();
    CHECK_OK(ck_db_keys_make("carol@CONF.TEST", "s3cret-pw", 9, enctypes, 2, 1, &p->keys,
                             &p->n_keys));
    CHECK_OK(ck_store_encrypt_keys_int(ks, "carol@CONF.TEST", p->keys, p->n_keys, 0, &rows));
    {
        struct ck_store_princ_row in = {.name = "carol@CONF.TEST", .kvno = 1,
                                        .n_keys = p->n_keys, .keys = rows};
        CHECK_OK(T->ops->put(be, &in, CK_PUT_CREATE, 1));
    }
    CHECK_OK(T->ops->get(be, "carol@CONF.TEST", &row));
    CHECK_INT_EQ(row.n_keys, p->n_keys);
    for (size_t i = 0; i < row.n_keys && i < p->n_keys; i++) {
        const ck_key *plain = &p->keys[i].key;

        CHECK_MEM_EQ(row.keys[i].key_enc, row.keys[i].key_enc_len, rows[i].key_enc,
                     rows[i].key_enc_len);
        CHECK(memmem(row.keys[i].key_enc, row.keys[i].key_enc_len, plain->contents,
                     plain->length) == NULL);
        memset(&k, 0, sizeof(k));
        CHECK_OK(ck_store_decrypt_key_row(ks, "carol@CONF.TEST", &row.keys[i], &k));
        CHECK_MEM_EQ(k.key.contents, k.key.length, plain->contents, plain->length);
        free(k.salt);
        ck_key_clear(&k.key);
        /* Bound to its principal: the same blob under another name does not decrypt. */
        memset(&k, 0, sizeof(k));
        CHECK_INT_EQ(ck_store_decrypt_key_row(ks, "mallory@CONF.TEST", &row.keys[i], &k),
                     CK_ERR_INTEGRITY);
        free(k.salt);
        ck_key_clear(&k.key);
    }
    ck_store_princ_row_clear(&row);
    ck_store_free_key_rows_int(rows, p->n_keys);
    ck_db_principal_free(p);
    ck_store_close(ks);
    T->ops->close(be);
}

static int
count_dev(const struct ck_store_device_row *row, void *arg)
{
    (void)row;
    (*(int *)arg)++;
    return 0;
}

static void
devices_and_policies(void)
{
    void *be = make_realm();
    struct ck_store_device_row d = {.mac = "00:11:22:33:44:55", .principal = "mta@CONF.TEST",
                                    .state = CK_DEVICE_ACTIVE, .comment = "lab"};
    struct ck_store_device_row got;
    ck_policy pol, pget;
    enum ck_device_pin_result pr;
    uint8_t pin[CK_DEVICE_SPKI_HASH_LEN];
    uint64_t gen = 0;
    size_t n = 0;
    bool changed = false;
    int count = 0;

    memset(pin, 0xa5, sizeof(pin));
    CHECK_INT_EQ(T->ops->device_add(be, &d, 5), CK_ERR_NOTFOUND); /* no such principal */
    CHECK_OK(put_simple(be, "mta@CONF.TEST", 1, CK_PUT_CREATE));
    CHECK_OK(T->ops->device_add(be, &d, 5));
    CHECK_INT_EQ(T->ops->device_add(be, &d, 5), CK_ERR_EXISTS);
    CHECK_OK(T->ops->device_get(be, d.mac, &got));
    CHECK(strcmp(got.principal, "mta@CONF.TEST") == 0 && strcmp(got.comment, "lab") == 0);
    CHECK(!got.has_pin);
    CHECK_INT_EQ(got.generation, gen_of(be));
    ck_store_device_row_clear(&got);
    CHECK_OK(T->ops->device_pin_check(be, d.mac, pin, &pr, &gen, 6));
    CHECK_INT_EQ(pr, CK_DEVICE_PIN_SET);
    CHECK_OK(T->ops->device_pin_check(be, d.mac, pin, &pr, &gen, 7));
    CHECK_INT_EQ(pr, CK_DEVICE_PIN_MATCH);
    pin[0] ^= 1;
    CHECK_OK(T->ops->device_pin_check(be, d.mac, pin, &pr, &gen, 7));
    CHECK_INT_EQ(pr, CK_DEVICE_PIN_MISMATCH);
    CHECK_OK(T->ops->device_update(be, d.mac, CK_DEV_SET_STATE, CK_DEVICE_REVOKED, NULL, 8,
                                   &changed));
    CHECK(changed);
    CHECK_OK(T->ops->device_update(be, d.mac, CK_DEV_SET_STATE, CK_DEVICE_REVOKED, NULL, 9,
                                   &changed));
    CHECK(!changed);
    CHECK_OK(T->ops->device_get(be, d.mac, &got));
    CHECK_INT_EQ(got.revoked, 8);
    CHECK(got.has_pin);
    ck_store_device_row_clear(&got);
    CHECK_OK(T->ops->device_list(be, "mta@CONF.TEST", NULL, 10, count_dev, &count, &n));
    CHECK_INT_EQ(n, 1);
    CHECK_INT_EQ(T->ops->del(be, "mta@CONF.TEST"), CK_ERR_POLICY); /* a device maps to it */
    CHECK_OK(T->ops->device_del(be, d.mac));
    CHECK_INT_EQ(T->ops->device_del(be, d.mac), CK_ERR_NOTFOUND);

    memset(&pol, 0, sizeof(pol));
    ck_strlcpy(pol.name, "strict", sizeof(pol.name));
    pol.min_length = 12;
    pol.max_failure = 5;
    pol.failure_interval = 60;
    pol.lockout_duration = 600;
    CHECK_OK(T->ops->policy_put(be, &pol, true, 10));
    CHECK_INT_EQ(T->ops->policy_put(be, &pol, true, 10), CK_ERR_EXISTS);
    CHECK_OK(T->ops->set_policy(be, "mta@CONF.TEST", "strict", 11));
    CHECK_OK(T->ops->policy_get(be, "strict", &pget));
    CHECK_INT_EQ(pget.min_length, 12);
    CHECK_INT_EQ(pget.ref_count, 1);
    CHECK_INT_EQ(T->ops->policy_del(be, "strict"), CK_ERR_POLICY); /* in use */
    {
        struct ck_store_princ_row row;

        CHECK_OK(T->ops->get(be, "mta@CONF.TEST", &row));
        CHECK(row.policy != NULL && strcmp(row.policy, "strict") == 0);
        CHECK_INT_EQ(row.lockout.max_failure, 5);
        ck_store_princ_row_clear(&row);
    }
    CHECK_OK(T->ops->set_policy(be, "mta@CONF.TEST", NULL, 12));
    CHECK_OK(T->ops->policy_del(be, "strict"));
    CHECK_INT_EQ(T->ops->policy_get(be, "strict", &pget), CK_ERR_NOTFOUND);
    T->ops->close(be);
}

/* The KDC's lockout counters (no generation bump, merged with concurrent writers), the
 * administrative unlock, a password change with history, a rename, realm settings and the
 * audit retention: the same results on every backend. */
static void
lockout_password_rename_realm(void)
{
    void *be = make_realm();
    struct ck_store_princ_row row;
    struct ck_store_key_row *hist = NULL;
    size_t n_hist = 0;
    uint8_t b1[40];
    struct ck_store_key_row k2 = key_row(2, enctypes[0], 0x60, b1, sizeof(b1));
    ck_lockout_update u;
    ck_realm_info realm;
    struct ck_store_mkey_row mk;
    ck_audit_retention ret_in = {.keep_rows = 500, .keep_days = 30}, ret_out;
    uint64_t g0;

    CHECK_OK(put_simple(be, "henry@CONF.TEST", 1, CK_PUT_CREATE));
    CHECK_OK(T->ops->get(be, "henry@CONF.TEST", &row));
    memset(&u, 0, sizeof(u));
    u.name = "henry@CONF.TEST";
    u.created = row.created;
    u.epoch = row.lockout.epoch;
    u.fails = 2;
    u.first_failed = 1700000500;
    u.last_failed = 1700000510;
    ck_store_princ_row_clear(&row);
    g0 = gen_of(be);
    CHECK_OK(T->ops->record_auth(be, &u, 1));
    CHECK_OK(T->ops->record_auth(be, &u, 1)); /* adds up */
    CHECK_INT_EQ(gen_of(be), g0);
    CHECK_OK(T->ops->get(be, "henry@CONF.TEST", &row));
    CHECK_INT_EQ(row.lockout.fail_count, 4);
    CHECK_INT_EQ(row.lockout.last_failed, 1700000510);
    ck_store_princ_row_clear(&row);
    CHECK_OK(T->ops->unlock(be, "henry@CONF.TEST", 1700000600));
    CHECK_INT_EQ(gen_of(be), g0 + 1);
    CHECK_OK(T->ops->record_auth(be, &u, 1)); /* stale epoch: void */
    CHECK_OK(T->ops->get(be, "henry@CONF.TEST", &row));
    CHECK_INT_EQ(row.lockout.fail_count, 0);
    CHECK_INT_EQ(row.lockout.epoch, 1);
    ck_store_princ_row_clear(&row);

    /* Password change: kvno 1's first key joins the history; CK_ERR_DB on a stale kvno. */
    CHECK_OK(T->ops->change_password(be, "henry@CONF.TEST", 1, 2, &k2, 1, 1, 3, 1800000000,
                                     0x80, 1700000700));
    CHECK(T->ops->change_password(be, "henry@CONF.TEST", 1, 2, &k2, 1, 1, 3, 0, 0, 1) ==
          CK_ERR_DB);
    CHECK_OK(T->ops->get(be, "henry@CONF.TEST", &row));
    CHECK_INT_EQ(row.kvno, 2);
    CHECK_INT_EQ(row.n_keys, 1);
    CHECK_INT_EQ(row.attributes, 0);
    CHECK_INT_EQ(row.last_pwd_change, 1700000700);
    ck_store_princ_row_clear(&row);
    CHECK_OK(T->ops->pw_history(be, "henry@CONF.TEST", 10, &hist, &n_hist));
    CHECK_INT_EQ(n_hist, 1);
    if (n_hist == 1) {
        uint8_t b0[60];
        struct ck_store_key_row k1 = key_row(1, enctypes[0], 0x10, b0, sizeof(b0));

        CHECK_INT_EQ(hist[0].kvno, 1);
        CHECK_MEM_EQ(hist[0].key_enc, hist[0].key_enc_len, k1.key_enc, k1.key_enc_len);
    }

    /* Rename with its device, keys and history re-encrypted (here: the same blobs). */
    {
        struct ck_store_device_row d = {.mac = "00:11:22:33:44:66",
                                        .principal = "henry@CONF.TEST",
                                        .state = CK_DEVICE_ACTIVE, .comment = ""};
        struct ck_store_device_row got;

        CHECK_OK(T->ops->device_add(be, &d, 5));
        CHECK_OK(put_simple(be, "ivy@CONF.TEST", 1, CK_PUT_CREATE));
        CHECK_INT_EQ(T->ops->rename(be, "henry@CONF.TEST", "ivy@CONF.TEST", 2, &k2, 1, hist,
                                    n_hist, 1700000800), CK_ERR_EXISTS);
        CHECK_INT_EQ(T->ops->rename(be, "henry@CONF.TEST", "jack@CONF.TEST", 1, &k2, 1, hist,
                                    n_hist, 1700000800), CK_ERR_POLICY);
        CHECK_OK(T->ops->rename(be, "henry@CONF.TEST", "jack@CONF.TEST", 2, &k2, 1, hist,
                                n_hist, 1700000800));
        CHECK_INT_EQ(T->ops->get(be, "henry@CONF.TEST", &row), CK_ERR_NOTFOUND);
        CHECK_OK(T->ops->get(be, "jack@CONF.TEST", &row));
        CHECK_INT_EQ(row.kvno, 2);
        ck_store_princ_row_clear(&row);
        CHECK_OK(T->ops->device_get(be, d.mac, &got));
        CHECK(strcmp(got.principal, "jack@CONF.TEST") == 0);
        CHECK_INT_EQ(got.generation, gen_of(be));
        ck_store_device_row_clear(&got);
    }
    ck_store_free_key_rows_int(hist, n_hist);

    CHECK_OK(T->ops->load_realm(be, &realm, &mk));
    ck_store_mkey_row_clear(&mk);
    realm.max_life = 1234;
    realm.n_enctypes = 1;
    realm.default_attributes = 0;
    CHECK_OK(T->ops->realm_modify(be, &realm));
    memset(&realm, 0, sizeof(realm));
    CHECK_OK(T->ops->load_realm(be, &realm, &mk));
    ck_store_mkey_row_clear(&mk);
    CHECK_INT_EQ(realm.max_life, 1234);
    CHECK_INT_EQ(realm.n_enctypes, 1);
    CHECK_INT_EQ(realm.default_attributes, 0);
    g0 = gen_of(be);
    CHECK_OK(T->ops->audit_set_retention(be, &ret_in));
    CHECK_OK(T->ops->audit_get_retention(be, &ret_out));
    CHECK_INT_EQ(ret_out.keep_rows, 500);
    CHECK_INT_EQ(ret_out.keep_days, 30);
    CHECK_INT_EQ(gen_of(be), g0); /* audited, nothing cached changed */
    T->ops->close(be);
}

/* A process that holds the database's write lock from outside the backend (raw connection)
 * until told to let go, so that two writers started meanwhile really run at the same time once
 * it does. A process of its own: an SQLite lock must not cross a fork. */
struct locker {
    pid_t pid;
    int release_fd;
};

static struct locker
hold_write_lock(void)
{
    struct locker l = {.pid = -1, .release_fd = -1};
    int ready[2], release[2];
    char c = 0;

    if (pipe(ready) != 0 || pipe(release) != 0)
        abort();
    fflush(NULL);
    l.pid = fork();
    if (l.pid == 0) {
        int ok;

        close(ready[0]);
        close(release[1]);
        if (T == &t_sqlite) {
            sqlite3 *db = NULL;

            ok = sqlite3_open(T->path, &db) == SQLITE_OK &&
                 sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK;
            if (write(ready[1], ok ? "y" : "n", 1) != 1 || read(release[0], &c, 1) != 1)
                _exit(1);
            sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
            sqlite3_close(db);
        } else {
            PGconn *pc = PQconnectdb(T->path);
            PGresult *r = PQexec(pc, "BEGIN; LOCK TABLE generation, principal, key IN "
                                     "EXCLUSIVE MODE");

            ok = PQresultStatus(r) == PGRES_COMMAND_OK;
            PQclear(r);
            if (write(ready[1], ok ? "y" : "n", 1) != 1 || read(release[0], &c, 1) != 1)
                _exit(1);
            PQclear(PQexec(pc, "COMMIT"));
            PQfinish(pc);
        }
        _exit(ok ? 0 : 1);
    }
    if (l.pid < 0)
        abort();
    close(ready[1]);
    close(release[0]);
    CHECK(read(ready[0], &c, 1) == 1 && c == 'y');
    close(ready[0]);
    l.release_fd = release[1];
    return l;
}

static void
release_write_lock(struct locker l)
{
    int st = 0;

    CHECK(write(l.release_fd, "r", 1) == 1);
    close(l.release_fd);
    waitpid(l.pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* Two processes rotate the same principal from the same kvno, released at the same moment,
 * ten times: each time exactly one wins and the other is refused (CK_ERR_POLICY), never both,
 * never a half-applied rotation; the counter moves once per round. */
#define RACE_ROUNDS 10
static void
concurrent_rotation(void)
{
    void *be = make_realm();
    struct ck_store_princ_row row;
    uint8_t b1[40];
    uint64_t g0;
    int wins = 0, refused = 0, other = 0;

    CHECK_OK(put_simple(be, "race@CONF.TEST", 1, CK_PUT_CREATE));
    g0 = gen_of(be);
    for (uint32_t k = 1; k <= RACE_ROUNDS; k++) {
        struct ck_store_key_row key = key_row(k + 1, enctypes[0], (uint8_t)k, b1, sizeof(b1));
        struct locker lock = hold_write_lock();
        pid_t pid[2];

        fflush(NULL);
        for (int i = 0; i < 2; i++) {
            pid[i] = fork();
            if (pid[i] == 0) {
                void *mine = NULL;
                int ret;

                /* Never the parent's connection: each its own. */
                if (T->ops->open(T->path, 0, false, &mine) != 0)
                    _exit(3);
                ret = T->ops->rotate(mine, "race@CONF.TEST", k, k + 1, &key, 1, 3, 1);
                if (ret != 0 && ret != CK_ERR_POLICY)
                    fprintf(stderr, "  round %u: %s\n", k, ck_error_context());
                T->ops->close(mine);
                _exit(ret == 0 ? 0 : ret == CK_ERR_POLICY ? 1 : 2);
            }
            if (pid[i] < 0)
                abort();
        }
        usleep(300000); /* both connected and blocked on the lock */
        release_write_lock(lock);
        for (int i = 0; i < 2; i++) {
            int st = 0, r;

            waitpid(pid[i], &st, 0);
            r = WIFEXITED(st) ? WEXITSTATUS(st) : 2;
            wins += r == 0;
            refused += r == 1;
            other += r > 1;
        }
    }
    CHECK_INT_EQ(wins, RACE_ROUNDS);
    CHECK_INT_EQ(refused, RACE_ROUNDS);
    CHECK_INT_EQ(other, 0);
    CHECK_INT_EQ(gen_of(be), g0 + RACE_ROUNDS);
    CHECK_OK(T->ops->get(be, "race@CONF.TEST", &row));
    CHECK_INT_EQ(row.kvno, RACE_ROUNDS + 1);
    CHECK_INT_EQ(row.n_keys, 3); /* keep 3 */
    ck_store_princ_row_clear(&row);
    T->ops->close(be);
}

static void
wrong_schema_refused(void)
{
    void *be = make_realm(), *be2 = NULL;

    T->ops->close(be);
    CHECK(raw_sql("UPDATE schema_version SET version = 99") == 0);
    CHECK_INT_EQ(T->ops->open(T->path, 0, false, &be2), CK_ERR_UNSUPPORTED);
    CHECK(strstr(ck_error_context(), "99") != NULL);
    CHECK(be2 == NULL);
    /* A database without the schema at all: not a cablekey database. */
    reset_db();
    CHECK(T->ops->open(T->path, 0, false, &be2) != 0);
    CHECK(be2 == NULL);
}

/* ---- PostgreSQL only ---- */

static int64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A write on one connection reaches another one's wait_change without polling; generous
 * timeout, the latency is only reported. */
static void
pg_change_notification(void)
{
    void *a = make_realm(), *b = reopen(0);
    struct seen s;
    uint64_t since, cur = 0;
    bool changed = true;
    int64_t t0, t1;

    CHECK(T->ops->change_fd != NULL && T->ops->wait_change != NULL);
    CHECK(T->ops->change_fd(b) >= 0);
    since = gen_of(b);
    CHECK_OK(T->ops->wait_change(b, 0, &changed));
    CHECK(!changed);
    t0 = now_ms();
    CHECK_OK(put_simple(a, "dave@CONF.TEST", 1, CK_PUT_CREATE));
    CHECK_OK(T->ops->wait_change(b, 10000, &changed));
    t1 = now_ms();
    CHECK(changed);
    fprintf(stderr, "  # notification after %lld ms\n", (long long)(t1 - t0));
    memset(&s, 0, sizeof(s));
    CHECK_OK(T->ops->changes_since(b, since, &cur, on_change, &s));
    CHECK_INT_EQ(s.n, 1);
    CHECK(strcmp(s.last, "dave@CONF.TEST") == 0);
    /* Nothing else pending; a failed write notifies nobody. */
    CHECK_OK(T->ops->wait_change(b, 0, &changed));
    CHECK(!changed);
    CHECK_INT_EQ(put_simple(a, "dave@CONF.TEST", 1, CK_PUT_CREATE), CK_ERR_EXISTS);
    CHECK_OK(T->ops->wait_change(b, 300, &changed));
    CHECK(!changed);
    T->ops->close(a);
    T->ops->close(b);
}

static void
pg_login_refused(void)
{
    void *be = NULL;

    T->ops->close(make_realm());
    CHECK_INT_EQ(T->ops->open("user=ck_no_such_role", 0, false, &be), CK_ERR_PERM);
    CHECK(be == NULL);
    CHECK(strstr(ck_error_context(), "refused login for user ck_no_such_role") != NULL);
    fprintf(stderr, "  # %s\n", ck_error_context());
    /* The role exists, the password file's password for it is wrong. */
    CHECK_INT_EQ(T->ops->open("user=ck_wrongpw", 0, false, &be), CK_ERR_PERM);
    CHECK(strstr(ck_error_context(), "password authentication failed") != NULL);
    fprintf(stderr, "  # %s\n", ck_error_context());
    /* A password typed into the URI is refused before any connection. */
    CHECK_INT_EQ(T->ops->open("postgresql://cablekey:pw@localhost/cablekey", 0, false, &be),
                 CK_ERR_CONFIG);
    CHECK_INT_EQ(T->ops->open("password=pw", 0, false, &be), CK_ERR_CONFIG);
    CHECK(be == NULL);
    /* No server there: a connection error, not a login refusal. */
    CHECK_INT_EQ(T->ops->open("host=/nonexistent-ck-dir port=1", 0, false, &be), CK_ERR_DB);
    CHECK(strstr(ck_error_context(), "cannot connect") != NULL);
    CHECK_INT_EQ(T->ops->open("not a conninfo ===", 0, false, &be), CK_ERR_CONFIG);
}

/* The server drops the connections (restart, failover, an idle cut): reads and writes go on
 * over a new connection, and a waiting cache is told that it may have missed changes. */
static void
pg_reconnect_after_loss(void)
{
    void *a = make_realm(), *b = reopen(0);
    struct ck_store_princ_row row;
    char kill[256];
    const char *su = getenv("CK_PG_SUPERUSER");
    PGconn *c;
    PGresult *r;
    bool changed = false;

    CHECK_OK(put_simple(a, "frank@CONF.TEST", 1, CK_PUT_CREATE));
    CHECK_OK(T->ops->wait_change(b, 5000, &changed));
    CHECK(changed);
    snprintf(kill, sizeof(kill), "user=%s dbname=postgres", su != NULL ? su : "");
    c = PQconnectdb(kill);
    r = PQexec(c, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                  " WHERE application_name = 'cablekey'");
    CHECK(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 2);
    PQclear(r);
    PQfinish(c);
    changed = false;
    CHECK_OK(T->ops->wait_change(b, 5000, &changed));
    CHECK(changed);
    CHECK_OK(T->ops->get(a, "frank@CONF.TEST", &row));
    ck_store_princ_row_clear(&row);
    CHECK_OK(put_simple(a, "grace@CONF.TEST", 1, CK_PUT_CREATE));
    changed = false;
    CHECK_OK(T->ops->wait_change(b, 5000, &changed)); /* b LISTENs again */
    CHECK(changed);
    T->ops->close(a);
    T->ops->close(b);
}

static void
pg_readonly(void)
{
    void *be;

    T->ops->close(make_realm());
    be = reopen(CK_STORE_READONLY);
    CHECK_INT_EQ(put_simple(be, "eve@CONF.TEST", 1, CK_PUT_CREATE), CK_ERR_PERM);
    CHECK_INT_EQ(gen_of(be), 1);
    T->ops->close(be);
}

/* ==== service-key rotation (k9rot): rotation_policy, key_version, key_confirm ==== */

static void
rot_policy_fill(ck_rotation_policy *pol, const char *name)
{
    memset(pol, 0, sizeof(*pol));
    ck_strlcpy(pol->principal, name, sizeof(pol->principal));
    pol->period = 86400;
    pol->old_valid = 7 * 86400;
    pol->confirm_timeout = 3600;
    pol->settle = 0;
    pol->confirm = CK_ROT_CONFIRM_AGENT;
    pol->keep_min = 2;
    pol->n_hosts = 2;
    ck_strlcpy(pol->hosts[0], "cms1.conf.test", CK_ROT_HOST_MAX);
    ck_strlcpy(pol->hosts[1], "cms2.conf.test", CK_ROT_HOST_MAX);
}

static int
collect_rot(const ck_rotation_policy *pol, void *arg)
{
    char *buf = arg;
    size_t n = strlen(buf);

    snprintf(buf + n, 256 - n, "%s%s;", pol->principal, pol->paused ? "(p)" : "");
    return 0;
}

static void
rotation_policies(void)
{
    void *be = make_realm();
    ck_rotation_policy *pol = calloc(1, sizeof(*pol)), *got = calloc(1, sizeof(*got));
    ck_rotation_status *st = calloc(1, sizeof(*st));
    char names[256] = "";
    uint64_t g0;
    int a0;

    if (pol == NULL || got == NULL || st == NULL)
        abort();
    CHECK_OK(put_simple(be, "svc/host@CONF.TEST", 1, CK_PUT_CREATE));
    CHECK_OK(put_simple(be, "other@CONF.TEST", 4, CK_PUT_CREATE));
    rot_policy_fill(pol, "nobody@CONF.TEST");
    CHECK_INT_EQ(T->ops->rot_policy_put(be, pol, 1700001000), CK_ERR_NOTFOUND);
    CHECK_INT_EQ(T->ops->rot_policy_get(be, "svc/host@CONF.TEST", got), CK_ERR_NOTFOUND);

    rot_policy_fill(pol, "svc/host@CONF.TEST");
    g0 = gen_of(be);
    a0 = audit_rows(be, "svc/host@CONF.TEST");
    CHECK_OK(T->ops->rot_policy_put(be, pol, 1700001000));
    CHECK_INT_EQ(gen_of(be), g0 + 1);
    CHECK_INT_EQ(audit_rows(be, "svc/host@CONF.TEST"), a0 + 1);
    CHECK_OK(T->ops->rot_policy_get(be, "svc/host@CONF.TEST", got));
    CHECK(strcmp(got->principal, "svc/host@CONF.TEST") == 0);
    CHECK_INT_EQ(got->period, 86400);
    CHECK_INT_EQ(got->old_valid, 7 * 86400);
    CHECK_INT_EQ(got->confirm_timeout, 3600);
    CHECK_INT_EQ(got->confirm, CK_ROT_CONFIRM_AGENT);
    CHECK_INT_EQ(got->keep_min, 2);
    CHECK(!got->paused);
    CHECK_INT_EQ(got->n_hosts, 2);
    CHECK(strcmp(got->hosts[0], "cms1.conf.test") == 0 &&
          strcmp(got->hosts[1], "cms2.conf.test") == 0);

    /* Replace: one row, new values; the current kvno's reference time is not moved. */
    pol->confirm = CK_ROT_CONFIRM_NONE;
    pol->n_hosts = 0;
    pol->settle = 300;
    CHECK_OK(T->ops->rot_policy_put(be, pol, 1700002000));
    CHECK_OK(T->ops->rot_policy_get(be, "svc/host@CONF.TEST", got));
    CHECK_INT_EQ(got->confirm, CK_ROT_CONFIRM_NONE);
    CHECK_INT_EQ(got->settle, 300);
    CHECK_INT_EQ(got->n_hosts, 0);
    CHECK_OK(T->ops->rot_status(be, "svc/host@CONF.TEST", st));
    CHECK(st->has_policy);
    CHECK_INT_EQ(st->current_kvno, 1);
    CHECK_INT_EQ(st->staged_kvno, 0);
    CHECK_INT_EQ(st->n_kvnos, 1);
    CHECK(st->n_kvnos == 1 && st->kvnos[0].kvno == 1 && st->kvnos[0].activated == 1700001000 &&
          st->kvnos[0].staged == 0 && st->kvnos[0].retired == 0);

    rot_policy_fill(pol, "other@CONF.TEST");
    CHECK_OK(T->ops->rot_policy_put(be, pol, 1700003000));
    g0 = gen_of(be);
    CHECK_OK(T->ops->rot_pause(be, "other@CONF.TEST", true, 1700003100));
    CHECK_INT_EQ(gen_of(be), g0 + 1);
    CHECK_OK(T->ops->rot_policy_list(be, collect_rot, names));
    CHECK(strcmp(names, "other@CONF.TEST(p);svc/host@CONF.TEST;") == 0);
    CHECK_OK(T->ops->rot_pause(be, "other@CONF.TEST", false, 1700003200));
    CHECK_OK(T->ops->rot_policy_get(be, "other@CONF.TEST", got));
    CHECK(!got->paused);

    /* A rename keeps the policy; a delete drops it with the principal. */
    CHECK_OK(T->ops->rename(be, "other@CONF.TEST", "renamed@CONF.TEST", 4, NULL, 0, NULL, 0,
                            1700003300));
    CHECK_OK(T->ops->rot_policy_get(be, "renamed@CONF.TEST", got));
    CHECK_OK(T->ops->del(be, "renamed@CONF.TEST"));
    names[0] = '\0';
    CHECK_OK(T->ops->rot_policy_list(be, collect_rot, names));
    CHECK(strcmp(names, "svc/host@CONF.TEST;") == 0);

    g0 = gen_of(be);
    CHECK_OK(T->ops->rot_policy_del(be, "svc/host@CONF.TEST"));
    CHECK_INT_EQ(gen_of(be), g0 + 1);
    CHECK_INT_EQ(T->ops->rot_policy_del(be, "svc/host@CONF.TEST"), CK_ERR_NOTFOUND);
    CHECK_INT_EQ(T->ops->rot_pause(be, "svc/host@CONF.TEST", true, 1), CK_ERR_NOTFOUND);
    CHECK_INT_EQ(gen_of(be), g0 + 1);
    CHECK_INT_EQ(T->ops->rot_status(be, "nobody@CONF.TEST", st), CK_ERR_NOTFOUND);
    free(pol);
    free(got);
    free(st);
    T->ops->close(be);
}

static void
rotation_steps(void)
{
    void *be = make_realm();
    ck_rotation_status *st = calloc(1, sizeof(*st));
    struct ck_store_princ_row row;
    uint8_t b1[40], b2[40], b3[40];
    struct ck_store_key_row k2[2] = {key_row(2, enctypes[0], 0x30, b1, sizeof(b1)),
                                     key_row(2, enctypes[1], 0x40, b2, sizeof(b2))};
    struct ck_store_key_row k3 = key_row(3, enctypes[0], 0x50, b3, sizeof(b3));
    const char *svc = "svc/host@CONF.TEST";
    uint32_t staged = 0, purge1[] = {1}, purge3[] = {3};
    uint64_t g0;
    int a0;

    if (st == NULL)
        abort();
    CHECK_OK(put_simple(be, svc, 1, CK_PUT_CREATE));
    CHECK_INT_EQ(T->ops->key_stage(be, "nobody@CONF.TEST", 1, 2, k2, 2, 1, &staged),
                 CK_ERR_NOTFOUND);
    CHECK_INT_EQ(T->ops->key_stage(be, svc, 5, 6, k2, 2, 1, &staged), CK_ERR_POLICY);

    /* Stage: a second kvno beside the current one, which stays current. */
    g0 = gen_of(be);
    a0 = audit_rows(be, svc);
    CHECK_OK(T->ops->key_stage(be, svc, 1, 2, k2, 2, 1700010000, &staged));
    CHECK_INT_EQ(gen_of(be), g0 + 1);
    CHECK_INT_EQ(audit_rows(be, svc), a0 + 1);
    CHECK_OK(T->ops->get(be, svc, &row));
    CHECK_INT_EQ(row.kvno, 1);
    CHECK(row.n_keys == 4 && row.keys[0].kvno == 2 && row.keys[3].kvno == 1);
    ck_store_princ_row_clear(&row);
    /* A second KDC of the fleet stages too: told which kvno is staged, nothing written. */
    CHECK_INT_EQ(T->ops->key_stage(be, svc, 1, 2, k2, 2, 1700010001, &staged), CK_ERR_EXISTS);
    CHECK_INT_EQ(staged, 2);
    CHECK_INT_EQ(gen_of(be), g0 + 1);
    CHECK_OK(T->ops->rot_status(be, svc, st));
    CHECK_INT_EQ(st->current_kvno, 1);
    CHECK_INT_EQ(st->staged_kvno, 2);
    CHECK(st->n_kvnos == 2 && st->kvnos[0].kvno == 2 && st->kvnos[0].staged == 1700010000 &&
          st->kvnos[0].activated == 0 && st->kvnos[1].kvno == 1);
    CHECK(!st->has_policy);

    /* Confirm: an audit row, no counter bump; older kvnos do not move a host back. */
    a0 = audit_rows(be, svc);
    CHECK_OK(T->ops->key_confirm(be, svc, "cms1.conf.test", 2, 1700010100));
    CHECK_INT_EQ(gen_of(be), g0 + 1);
    CHECK_INT_EQ(audit_rows(be, svc), a0 + 1);
    CHECK_OK(T->ops->key_confirm(be, svc, "cms1.conf.test", 1, 1700010200));
    CHECK_INT_EQ(T->ops->key_confirm(be, svc, "cms1.conf.test", 9, 1700010300), CK_ERR_NOTFOUND);
    CHECK_OK(T->ops->rot_status(be, svc, st));
    CHECK_INT_EQ(st->n_confirmations, 1);
    CHECK(st->n_confirmations == 1 && strcmp(st->confirmations[0].host, "cms1.conf.test") == 0 &&
          st->confirmations[0].kvno == 2 && st->confirmations[0].confirmed == 1700010100);

    /* Activate: only the staged kvno, once. */
    CHECK_INT_EQ(T->ops->key_activate(be, svc, 3, 1700011000), CK_ERR_POLICY);
    CHECK_INT_EQ(T->ops->key_activate(be, svc, 1, 1700011000), CK_ERR_POLICY);
    g0 = gen_of(be);
    CHECK_OK(T->ops->key_activate(be, svc, 2, 1700011000));
    CHECK_INT_EQ(gen_of(be), g0 + 1);
    CHECK_INT_EQ(T->ops->key_activate(be, svc, 2, 1700011001), CK_ERR_POLICY);
    CHECK_OK(T->ops->get(be, svc, &row));
    CHECK_INT_EQ(row.kvno, 2);
    ck_store_princ_row_clear(&row);
    CHECK_OK(T->ops->rot_status(be, svc, st));
    CHECK_INT_EQ(st->current_kvno, 2);
    CHECK_INT_EQ(st->staged_kvno, 0);
    CHECK(st->n_kvnos == 2 && st->kvnos[0].activated == 1700011000 &&
          st->kvnos[0].retired == 0 && st->kvnos[1].retired == 1700011000);

    /* Purge: retired kvnos only, against the kvno it was computed for, all or nothing. */
    CHECK_OK(T->ops->key_stage(be, svc, 2, 3, &k3, 1, 1700012000, &staged));
    CHECK_OK(T->ops->key_activate(be, svc, 3, 1700013000));
    CHECK_INT_EQ(T->ops->key_purge(be, svc, 2, purge1, 1), CK_ERR_POLICY);
    CHECK_INT_EQ(T->ops->key_purge(be, svc, 3, purge3, 1), CK_ERR_POLICY);
    g0 = gen_of(be);
    CHECK_OK(T->ops->key_purge(be, svc, 3, purge1, 1));
    CHECK_INT_EQ(gen_of(be), g0 + 1);
    CHECK_OK(T->ops->get(be, svc, &row));
    CHECK_INT_EQ(row.kvno, 3);
    CHECK(row.n_keys == 3 && row.keys[0].kvno == 3 && row.keys[1].kvno == 2 &&
          row.keys[2].kvno == 2);
    ck_store_princ_row_clear(&row);
    CHECK_OK(T->ops->rot_status(be, svc, st));
    CHECK(st->n_kvnos == 2 && st->kvnos[0].kvno == 3 && st->kvnos[1].kvno == 2 &&
          st->kvnos[1].retired == 1700013000);

    /* Confirmation rows stay bounded: the least recently confirmed host goes. */
    for (int i = 0; i < CK_ROT_HOSTS_MAX + 5; i++) {
        char host[32];

        snprintf(host, sizeof(host), "h%03d.conf.test", i);
        CHECK_OK(T->ops->key_confirm(be, svc, host, 3, 1700020000 + i));
    }
    CHECK_OK(T->ops->rot_status(be, svc, st));
    CHECK_INT_EQ(st->n_confirmations, CK_ROT_HOSTS_MAX);
    CHECK(strcmp(st->confirmations[0].host, "h005.conf.test") == 0);
    free(st);
    T->ops->close(be);
}
/* ==== end of service-key rotation cases ==== */

/* ---- master-key rotation (k9mkey): the mkey_* ops ---- */

struct fake_rewrap {
    int calls, fail_at;
    uint32_t mkvno;
    char names[512];
};

/* Stands for the generic layer: a new blob (the old one with its first byte flipped) under
 * mkvno; fail_at makes the n-th call fail. */
static int
fake_rewrap(void *arg, const char *name, const struct ck_store_key_row *in,
            struct ck_store_key_row *out)
{
    struct fake_rewrap *f = arg;
    size_t n = strlen(f->names);

    if (++f->calls == f->fail_at)
        return ck_error_set(CK_ERR_INTEGRITY, "rewrap refused");
    memset(out, 0, sizeof(*out));
    out->kvno = in->kvno;
    out->enctype = in->enctype;
    out->mkvno = f->mkvno;
    out->key_enc = malloc(in->key_enc_len);
    if (out->key_enc == NULL)
        return CK_ERR_NOMEM;
    memcpy(out->key_enc, in->key_enc, in->key_enc_len);
    out->key_enc[0] ^= 0xff;
    out->key_enc_len = in->key_enc_len;
    snprintf(f->names + n, sizeof(f->names) - n, "%s;", name);
    return 0;
}

static uint64_t
not_under(void *be, uint32_t mkvno)
{
    uint64_t k = 0, h = 0;

    CHECK_OK(T->ops->mkey_count(be, mkvno, 0, &k, &h));
    return k + h;
}

static void
mkey_ops(void)
{
    static const uint8_t check2[] = {0xff, 0x00, 0x02};
    struct ck_store_mkey_row mk2 = {.kvno = 2, .enctype = CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96,
                                    .check = (uint8_t *)check2, .check_len = sizeof(check2)};
    struct ck_store_mkey_row *rows = NULL, mrow;
    struct ck_store_princ_row row;
    struct fake_rewrap f;
    ck_realm_info realm;
    void *be = make_realm(), *other = reopen(0);
    uint64_t k = 0, h = 0, g;
    size_t n = 0, done = 0;
    struct seen seen;
    uint8_t b1[60], b2[44];
    struct ck_store_key_row nk[2];

    CHECK_OK(put_simple(be, "alice@CONF.TEST", 1, CK_PUT_CREATE));
    CHECK_OK(put_simple(be, "bob@CONF.TEST", 1, CK_PUT_CREATE));
    /* A password change puts alice's kvno-1 key into the history (also under mkvno 1). */
    nk[0] = key_row(2, enctypes[0], 0x30, b1, sizeof(b1));
    nk[1] = key_row(2, enctypes[1], 0x40, b2, sizeof(b2));
    CHECK_OK(T->ops->change_password(be, "alice@CONF.TEST", 1, 2, nk, 2, 3, 5, 0, 0,
                                     1700000300));
    CHECK_OK(T->ops->mkey_list(be, &rows, &n));
    CHECK_INT_EQ(n, 1);
    CHECK(n == 1 && rows[0].kvno == 1 && rows[0].created == 1700000000);
    ck_store_mkey_rows_free(rows, n);

    /* add: a row, one generation, one audit row; the same kvno twice is refused. */
    g = gen_of(be);
    CHECK_OK(T->ops->mkey_add(be, &mk2, 1700000400));
    CHECK_INT_EQ(gen_of(be), g + 1);
    CHECK_INT_EQ(T->ops->mkey_add(be, &mk2, 1700000401), CK_ERR_EXISTS);
    CHECK_INT_EQ(gen_of(be), g + 1);
    CHECK_OK(T->ops->mkey_list(be, &rows, &n));
    CHECK_INT_EQ(n, 2);
    if (n == 2) {
        CHECK_INT_EQ(rows[1].kvno, 2);
        CHECK_INT_EQ(rows[1].enctype, CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96);
        CHECK_INT_EQ(rows[1].created, 1700000400);
        CHECK_MEM_EQ(rows[1].check, rows[1].check_len, check2, sizeof(check2));
    }
    ck_store_mkey_rows_free(rows, n);

    /* activate: only a kvno with a row; load_realm then gives the new row. */
    CHECK_INT_EQ(T->ops->mkey_activate(be, 3, 1700000500), CK_ERR_NOTFOUND);
    CHECK_OK(T->ops->mkey_activate(be, 2, 1700000500));
    CHECK_INT_EQ(gen_of(be), g + 2);
    memset(&realm, 0, sizeof(realm));
    CHECK_OK(T->ops->load_realm(other, &realm, &mrow));
    CHECK_INT_EQ(realm.master_kvno, 2);
    CHECK_INT_EQ(mrow.kvno, 2);
    ck_store_mkey_row_clear(&mrow);

    /* count: 4 keys of alice (kvnos 1, 2), 2 of bob, 1 history row, all under mkvno 1. */
    CHECK_OK(T->ops->mkey_count(be, 0, 1, &k, &h));
    CHECK_INT_EQ(k, 6);
    CHECK_INT_EQ(h, 1);
    CHECK_INT_EQ(not_under(be, 2), 7);
    CHECK_INT_EQ(not_under(be, 1), 0);
    /* retire: not the active kvno, not one still in use, not an unknown one. */
    CHECK_INT_EQ(T->ops->mkey_retire(be, 2, 1700000600), CK_ERR_POLICY);
    CHECK_INT_EQ(T->ops->mkey_retire(be, 1, 1700000600), CK_ERR_POLICY);
    CHECK_INT_EQ(T->ops->mkey_retire(be, 9, 1700000600), CK_ERR_NOTFOUND);
    CHECK_INT_EQ(gen_of(be), g + 2);

    /* A failing rewrap rolls its whole batch back. */
    memset(&f, 0, sizeof(f));
    f.mkvno = 2;
    f.fail_at = 3;
    CHECK(T->ops->mkey_reencrypt(be, 2, 5, fake_rewrap, &f, &done, 1700000700) != 0);
    CHECK_INT_EQ(done, 0);
    CHECK_INT_EQ(not_under(be, 2), 7);
    CHECK_INT_EQ(gen_of(be), g + 2);

    /* Batches of 3: 3 + 3 + 1, then nothing left; each touched principal's cache entry is
     * announced through the change log. */
    memset(&f, 0, sizeof(f));
    f.mkvno = 2;
    CHECK_OK(T->ops->mkey_reencrypt(be, 2, 3, fake_rewrap, &f, &done, 1700000700));
    CHECK_INT_EQ(done, 3);
    CHECK_INT_EQ(not_under(be, 2), 4);
    memset(&seen, 0, sizeof(seen));
    CHECK_OK(T->ops->changes_since(other, g + 2, &k, on_change, &seen));
    CHECK(seen.n >= 1 && seen.all == 0);
    CHECK_OK(T->ops->mkey_reencrypt(be, 2, 3, fake_rewrap, &f, &done, 1700000701));
    CHECK_INT_EQ(done, 3);
    CHECK_OK(T->ops->mkey_reencrypt(be, 2, 3, fake_rewrap, &f, &done, 1700000702));
    CHECK_INT_EQ(done, 1);
    g = gen_of(be);
    CHECK_OK(T->ops->mkey_reencrypt(be, 2, 3, fake_rewrap, &f, &done, 1700000703));
    CHECK_INT_EQ(done, 0);
    CHECK_INT_EQ(gen_of(be), g);
    CHECK_INT_EQ(f.calls, 7);
    CHECK(strstr(f.names, "alice@CONF.TEST") != NULL && strstr(f.names, "bob@CONF.TEST") != NULL);
    CHECK_INT_EQ(not_under(be, 2), 0);
    /* The rows were rewritten: new mkvno, new blob, nothing else. */
    CHECK_OK(T->ops->get(other, "bob@CONF.TEST", &row));
    CHECK_INT_EQ(row.n_keys, 2);
    if (row.n_keys == 2) {
        uint8_t e1[60];
        struct ck_store_key_row k1 = key_row(1, enctypes[0], 0x10, e1, sizeof(e1));
        k1.key_enc[0] ^= 0xff;
        CHECK_INT_EQ(row.keys[0].mkvno, 2);
        CHECK_MEM_EQ(row.keys[0].key_enc, row.keys[0].key_enc_len, k1.key_enc, k1.key_enc_len);
        CHECK_MEM_EQ(row.keys[0].salt, row.keys[0].salt_len, "CONF.TESTuser", 13);
    }
    ck_store_princ_row_clear(&row);

    /* retire kvno 1 now: the row goes, one generation; a key under it can no longer be
     * written (the schema refuses it), and nothing of the refused write stays. */
    g = gen_of(be);
    CHECK_OK(T->ops->mkey_retire(be, 1, 1700000800));
    CHECK_INT_EQ(gen_of(be), g + 1);
    CHECK_OK(T->ops->mkey_list(be, &rows, &n));
    CHECK(n == 1 && rows[0].kvno == 2);
    ck_store_mkey_rows_free(rows, n);
    CHECK(put_simple(be, "carol@CONF.TEST", 1, CK_PUT_CREATE) != 0); /* key_row: mkvno 1 */
    CHECK_INT_EQ(T->ops->get(be, "carol@CONF.TEST", &row), CK_ERR_NOTFOUND);
    CHECK_INT_EQ(gen_of(be), g + 1);
    CHECK(audit_rows(be, NULL) >= 1);
    T->ops->close(other);
    T->ops->close(be);
}

#define ON(target, fn)                                                                        \
    static void fn##_##target(void)                                                          \
    {                                                                                        \
        T = &t_##target;                                                                     \
        fn();                                                                                \
    }
#define BOTH(fn) ON(sqlite, fn) ON(pg, fn)
BOTH(create_open)
BOTH(principal_crud)
BOTH(rotate_one_transaction)
BOTH(rotate_failure_atomic)
BOTH(keys_encrypted_at_rest)
BOTH(devices_and_policies)
BOTH(lockout_password_rename_realm)
BOTH(concurrent_rotation)
BOTH(wrong_schema_refused)
ON(pg, pg_change_notification)
ON(pg, pg_login_refused)
ON(pg, pg_readonly)
ON(pg, pg_reconnect_after_loss)
BOTH(rotation_policies) /* k9rot */
BOTH(rotation_steps)    /* k9rot */
BOTH(mkey_ops) /* master-key rotation (k9mkey) */

/* ---- alarm table (k9alarmw) ---- */

struct alarm_seen {
    int n;
    ck_alarm_row rows[8];
};

static int
collect_alarm(const ck_alarm_row *r, void *arg)
{
    struct alarm_seen *s = arg;

    if (s->n < 8)
        s->rows[s->n] = *r;
    s->n++;
    return 0;
}

static ck_alarm_row
alarm_row(const char *code, const char *subject, const char *host, int64_t t, uint64_t count)
{
    ck_alarm_row r;

    memset(&r, 0, sizeof(r));
    ck_strlcpy(r.code, code, sizeof(r.code));
    ck_strlcpy(r.severity, "major", sizeof(r.severity));
    ck_strlcpy(r.subject, subject, sizeof(r.subject));
    ck_strlcpy(r.host, host, sizeof(r.host));
    snprintf(r.cause, sizeof(r.cause), "cause at %lld", (long long)t);
    r.first_seen = 1700000000000 + t;
    r.last_seen = 1700000000000 + t;
    r.count = count;
    return r;
}

static struct alarm_seen
alarm_query(void *be, int64_t id, const char *code, const char *subject, bool active,
            int64_t since, size_t limit)
{
    ck_alarm_filter f = {.id = id, .code = code, .subject = subject, .active_only = active,
                         .since = since, .limit = limit};
    struct alarm_seen s;

    memset(&s, 0, sizeof(s));
    CHECK_OK(T->ops->alarm_list(be, &f, collect_alarm, &s));
    return s;
}

/* The sink's writes: one active row per code + subject + host, updated in place; a clear closes
 * it, a later raise opens a new row; nothing of it is an administrative change. */
static void
alarm_record_list(void)
{
    void *be = make_realm();
    uint64_t g0 = gen_of(be);
    ck_alarm_row r = alarm_row("kvno-missing", "HTTP/a@CONF.TEST", "kdc1", 0, 1);
    struct alarm_seen s;

    CHECK_OK(T->ops->alarm_record(be, &r, 100));
    r.count = 3;
    r.last_seen += 5000;
    ck_strlcpy(r.cause, "client 10.0.0.1 asked for kvno 4", sizeof(r.cause));
    CHECK_OK(T->ops->alarm_record(be, &r, 100));
    s = alarm_query(be, 0, NULL, NULL, false, 0, 100);
    CHECK_INT_EQ(s.n, 1);
    CHECK_INT_EQ(s.rows[0].count, 3);
    CHECK_INT_EQ(s.rows[0].first_seen, 1700000000000);
    CHECK_INT_EQ(s.rows[0].last_seen, 1700000005000);
    CHECK(strcmp(s.rows[0].cause, "client 10.0.0.1 asked for kvno 4") == 0);
    CHECK(!s.rows[0].cleared);
    /* Another KDC raising the same alarm has its own row. */
    r = alarm_row("kvno-missing", "HTTP/a@CONF.TEST", "kdc2", 10, 1);
    CHECK_OK(T->ops->alarm_record(be, &r, 100));
    /* The condition is gone on kdc1: its row closes; a clear without an active row is a
     * no-op. */
    r = alarm_row("kvno-missing", "HTTP/a@CONF.TEST", "kdc1", 20, 3);
    r.cleared = true;
    CHECK_OK(T->ops->alarm_record(be, &r, 100));
    r = alarm_row("clock-skew", "CONF.TEST", "kdc1", 20, 1);
    r.cleared = true;
    CHECK_OK(T->ops->alarm_record(be, &r, 100));
    s = alarm_query(be, 0, NULL, NULL, false, 0, 100);
    CHECK_INT_EQ(s.n, 2);
    CHECK(s.rows[0].cleared);
    CHECK(strcmp(s.rows[0].cleared_by, "condition") == 0);
    CHECK_INT_EQ(s.rows[0].cleared_at, 1700000000020);
    /* Raised again after the clear: a new occurrence, a new row. */
    r = alarm_row("kvno-missing", "HTTP/a@CONF.TEST", "kdc1", 30, 1);
    CHECK_OK(T->ops->alarm_record(be, &r, 100));
    r = alarm_row("preauth-spike", "bob@CONF.TEST", "kdc1", 40, 1);
    CHECK_OK(T->ops->alarm_record(be, &r, 100));
    s = alarm_query(be, 0, NULL, NULL, false, 0, 100);
    CHECK_INT_EQ(s.n, 4);
    CHECK(s.rows[0].id < s.rows[1].id && s.rows[1].id < s.rows[2].id &&
          s.rows[2].id < s.rows[3].id);
    /* Filters. */
    CHECK_INT_EQ(alarm_query(be, 0, NULL, NULL, true, 0, 100).n, 3);
    CHECK_INT_EQ(alarm_query(be, 0, "kvno-missing", NULL, false, 0, 100).n, 3);
    CHECK_INT_EQ(alarm_query(be, 0, "kvno-missing", NULL, true, 0, 100).n, 2);
    CHECK_INT_EQ(alarm_query(be, 0, NULL, "bob@CONF.TEST", false, 0, 100).n, 1);
    CHECK_INT_EQ(alarm_query(be, 0, NULL, NULL, false, 1700000000030, 100).n, 3); /* kdc1 seen at +5 s */
    CHECK_INT_EQ(alarm_query(be, 0, NULL, NULL, false, 1700000005001, 100).n, 0);
    CHECK_INT_EQ(alarm_query(be, s.rows[3].id, NULL, NULL, false, 0, 100).n, 1);
    CHECK_INT_EQ(alarm_query(be, 999999, NULL, NULL, false, 0, 100).n, 0);
    s = alarm_query(be, 0, NULL, NULL, false, 0, 2); /* the newest two, oldest first */
    CHECK_INT_EQ(s.n, 2);
    CHECK(strcmp(s.rows[0].code, "kvno-missing") == 0);
    CHECK(strcmp(s.rows[1].code, "preauth-spike") == 0);
    /* Text survives as given (quotes, percent, backslash). */
    r = alarm_row("cert-expiry", "/etc/k'dc\\%_.pem", "kdc1", 50, 1);
    CHECK_OK(T->ops->alarm_record(be, &r, 100));
    s = alarm_query(be, 0, "cert-expiry", NULL, false, 0, 100);
    CHECK_INT_EQ(s.n, 1);
    CHECK(strcmp(s.rows[0].subject, "/etc/k'dc\\%_.pem") == 0);
    CHECK_INT_EQ(gen_of(be), g0);
    T->ops->close(be);
}

/* An operator's clear: one transaction, counter bump, audit row; only active rows; cleared rows
 * beyond the retention are trimmed by the next record. */
static void
alarm_clear_trim(void)
{
    void *be = make_realm();
    struct ck_store_audit audit;
    ck_alarm_filter f;
    ck_alarm_row r;
    uint64_t g0, n = 99;

    for (int i = 0; i < 3; i++) {
        char subj[32];

        snprintf(subj, sizeof(subj), "svc%d@CONF.TEST", i);
        r = alarm_row("kvno-missing", subj, "kdc1", i, 1);
        CHECK_OK(T->ops->alarm_record(be, &r, 100));
    }
    r = alarm_row("kdc-down", "kdc9.example.net", "kdc1", 5, 1);
    CHECK_OK(T->ops->alarm_record(be, &r, 100));
    memset(&audit, 0, sizeof(audit));
    ck_strlcpy(audit.actor, "alice/admin", sizeof(audit.actor));
    audit.pending = true;
    ck_strlcpy(audit.action, "alarm.clear", sizeof(audit.action));
    ck_strlcpy(audit.object, "svc1@CONF.TEST", sizeof(audit.object));
    T->ops->audit_attach(be, &audit);
    g0 = gen_of(be);
    memset(&f, 0, sizeof(f));
    f.code = "kvno-missing";
    f.subject = "svc1@CONF.TEST";
    CHECK_OK(T->ops->alarm_clear(be, &f, "alice/admin", 1700000009000, &n));
    CHECK_INT_EQ(n, 1);
    CHECK_INT_EQ(gen_of(be), g0 + 1);
    CHECK_INT_EQ(audit_rows(be, "svc1@CONF.TEST"), 1);
    {
        struct alarm_seen s = alarm_query(be, 0, NULL, "svc1@CONF.TEST", false, 0, 100);
        CHECK_INT_EQ(s.n, 1);
        CHECK(s.rows[0].cleared);
        CHECK(strcmp(s.rows[0].cleared_by, "alice/admin") == 0);
        CHECK_INT_EQ(s.rows[0].cleared_at, 1700000009000);
    }
    /* Again: nothing active matches, nothing written. */
    CHECK_OK(T->ops->alarm_clear(be, &f, "alice/admin", 1700000009000, &n));
    CHECK_INT_EQ(n, 0);
    CHECK_INT_EQ(gen_of(be), g0 + 1);
    /* By code: the two other kvno-missing rows, not kdc-down. */
    f.subject = NULL;
    CHECK_OK(T->ops->alarm_clear(be, &f, "alice/admin", 1700000009500, &n));
    CHECK_INT_EQ(n, 2);
    CHECK_INT_EQ(alarm_query(be, 0, NULL, NULL, true, 0, 100).n, 1);
    /* Retention: keep 1 cleared row (by id distance); the next record trims the older. */
    r = alarm_row("clock-skew", "CONF.TEST", "kdc1", 60, 1);
    CHECK_OK(T->ops->alarm_record(be, &r, 1));
    CHECK_INT_EQ(alarm_query(be, 0, NULL, NULL, false, 0, 100).n, 2);
    CHECK_INT_EQ(alarm_query(be, 0, NULL, NULL, true, 0, 100).n, 2);
    T->ops->close(be);
}

BOTH(alarm_record_list)
BOTH(alarm_clear_trim)
/* ---- end of the alarm table block ---- */

int
main(int argc, char **argv)
{
    static const struct ck_test_case cases[] = {
        CK_TEST_CASE(create_open_sqlite),
        CK_TEST_CASE(create_open_pg),
        CK_TEST_CASE(principal_crud_sqlite),
        CK_TEST_CASE(principal_crud_pg),
        CK_TEST_CASE(rotate_one_transaction_sqlite),
        CK_TEST_CASE(rotate_one_transaction_pg),
        CK_TEST_CASE(rotate_failure_atomic_sqlite),
        CK_TEST_CASE(rotate_failure_atomic_pg),
        CK_TEST_CASE(keys_encrypted_at_rest_sqlite),
        CK_TEST_CASE(keys_encrypted_at_rest_pg),
        CK_TEST_CASE(devices_and_policies_sqlite),
        CK_TEST_CASE(devices_and_policies_pg),
        CK_TEST_CASE(lockout_password_rename_realm_sqlite),
        CK_TEST_CASE(lockout_password_rename_realm_pg),
        CK_TEST_CASE(concurrent_rotation_sqlite),
        CK_TEST_CASE(concurrent_rotation_pg),
        CK_TEST_CASE(wrong_schema_refused_sqlite),
        CK_TEST_CASE(wrong_schema_refused_pg),
        CK_TEST_CASE(pg_change_notification_pg),
        CK_TEST_CASE(pg_login_refused_pg),
        CK_TEST_CASE(pg_readonly_pg),
        CK_TEST_CASE(pg_reconnect_after_loss_pg),
        /* service-key rotation (k9rot) */
        CK_TEST_CASE(rotation_policies_sqlite),
        CK_TEST_CASE(rotation_policies_pg),
        CK_TEST_CASE(rotation_steps_sqlite),
        CK_TEST_CASE(rotation_steps_pg),
        /* master-key rotation (k9mkey) */
        CK_TEST_CASE(mkey_ops_sqlite),
        CK_TEST_CASE(mkey_ops_pg),
        /* alarm table (k9alarmw) */
        CK_TEST_CASE(alarm_record_list_sqlite),
        CK_TEST_CASE(alarm_record_list_pg),
        CK_TEST_CASE(alarm_clear_trim_sqlite),
        CK_TEST_CASE(alarm_clear_trim_pg),
    };
    char cmd[128];
    int rc;

    (void)argc;
    if (getenv("CK_PG_URI") == NULL) {
        /* Run again under a throw-away server; a second time without one is a failure. */
        if (getenv("CK_PG_REEXEC") != NULL) {
            printf("not ok 1 - store conformance: no PostgreSQL server (CK_PG_URI unset)\n");
            return 1;
        }
        setenv("CK_PG_REEXEC", "1", 1);
        execl("/bin/bash", "bash", "interop/pg_run.sh", argv[0], (char *)NULL);
        printf("not ok 1 - store conformance: cannot run interop/pg_run.sh (cwd must be "
               "tests/)\n");
        return 1;
    }
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/ck-conformance-XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        abort();
    snprintf(t_sqlite.path, sizeof(t_sqlite.path), "%s/kdc.db", tmpdir);
    /* The role, database, socket and password file come from libpq's environment. */
    t_pg.path[0] = '\0';
    rc = ck_test_run("store conformance", cases, sizeof(cases) / sizeof(cases[0]));
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return rc;
}
