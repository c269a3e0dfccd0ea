/* Backup, restore and the integrity check (lib/store/maint.c, sqlite_maint.c): a restored realm
 * is the backed-up realm record for record, keys included; every validation failure leaves the
 * live database untouched; a restore moves the change counter past both states so that an open
 * connection's cache drops what it held; the check finds a flipped byte in a key blob, a
 * missing or wrong stash and a dangling foreign key. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "ck_test.h"
#include "store_fixture.h"
#include "cablekey/store.h"
#include "cablekey/util.h"
#include "store/sqlite_int.h" /* sqlite_schema_version() */

#define REALM "MAINT.TEST"

static const int32_t enctypes[] = {CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96,
                                   CK_ENCTYPE_AES128_CTS_HMAC_SHA256_128};
#define N_ENCTYPES (sizeof(enctypes) / sizeof(enctypes[0]))

static const uint8_t pin_a[CK_DEVICE_SPKI_HASH_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};

static char bak[128];

static void
fixture_up(void)
{
    store_fixture_up("maint", REALM, enctypes, N_ENCTYPES);
    snprintf(bak, sizeof(bak), "%s/backup.db", dir);
}

static void
add_princ(ck_store *s, const char *name, const char *pw, uint32_t attrs, int64_t max_life)
{
    ck_db_principal *p = fixture_principal(name, pw, attrs, enctypes, N_ENCTYPES);

    p->max_life = max_life;
    p->expires = 2000000000;
    CHECK_OK(ck_store_create_principal(s, p));
    ck_db_principal_free(p);
}

static void
rotate(ck_store *s, const char *name)
{
    ck_db_key *keys = NULL;
    size_t n = 0;

    CHECK_OK(ck_db_keys_make(name, NULL, 0, enctypes, N_ENCTYPES, 0, &keys, &n));
    CHECK_OK(ck_store_rotate_keys(s, name, keys, n, 0, NULL));
    ck_db_keys_free(keys, n);
}

/* A realm with a bit of everything: several kvnos, attributes, lifetimes, devices in every
 * state. */
static void
populate(void)
{
    ck_store *s = fixture_open(db);

    add_princ(s, "alice@" REALM, "alice pw", CK_ATTR_REQUIRES_PREAUTH, 3600);
    add_princ(s, "bob@" REALM, "bob pw", CK_ATTR_DISALLOW_ALL_TIX, 0);
    add_princ(s, "host/a.example@" REALM, NULL, 0, 0);
    add_princ(s, "mta1@" REALM, NULL, 0, 0);
    rotate(s, "alice@" REALM);
    rotate(s, "host/a.example@" REALM);
    CHECK_OK(fixture_add_device(s, "00:11:22:33:44:01", "mta1@" REALM, pin_a, "pinned"));
    CHECK_OK(fixture_add_device(s, "00:11:22:33:44:02", "mta1@" REALM, NULL, ""));
    CHECK_OK(fixture_add_device(s, "00:11:22:33:44:03", "mta1@" REALM, NULL, "revoked one"));
    CHECK_OK(ck_store_set_device_state(s, "00:11:22:33:44:03", CK_DEVICE_REVOKED, NULL));
    ck_store_close(s);
}

static int
collect_name(const char *name, void *arg)
{
    char *buf = arg;
    size_t n = strlen(buf);

    snprintf(buf + n, 4096 - n, "%s\n", name);
    return 0;
}

static bool
same_principal(const ck_db_principal *a, const ck_db_principal *b)
{
    if (strcmp(a->name, b->name) != 0 || a->attributes != b->attributes ||
        a->max_life != b->max_life || a->max_renew != b->max_renew ||
        a->expires != b->expires || a->pw_expires != b->pw_expires || a->kvno != b->kvno ||
        a->created != b->created || a->modified != b->modified || a->n_keys != b->n_keys)
        return false;
    for (size_t i = 0; i < a->n_keys; i++) {
        const ck_db_key *x = &a->keys[i], *y = &b->keys[i];
        if (x->kvno != y->kvno || x->enctype != y->enctype || x->salt_type != y->salt_type ||
            x->salt_len != y->salt_len || (x->salt_len && memcmp(x->salt, y->salt, x->salt_len)) ||
            x->key.length != y->key.length ||
            memcmp(x->key.contents, y->key.contents, x->key.length) != 0)
            return false;
    }
    return true;
}

struct dev_list {
    char text[4096];
};

static int
collect_dev(const ck_db_device *d, void *arg)
{
    struct dev_list *l = arg;
    size_t n = strlen(l->text);
    char hex[2 * CK_DEVICE_SPKI_HASH_LEN + 1] = "-";

    if (d->has_pin)
        ck_device_pin_format_hex(d->spki_sha256, hex);
    /* Everything but the generation, which a restore moves on. */
    snprintf(l->text + n, sizeof(l->text) - n, "%s %s %d %s %lld %lld %lld %s\n", d->mac,
             d->principal, (int)d->state, hex, (long long)d->created, (long long)d->modified,
             (long long)d->revoked, d->comment);
    return 0;
}

/* Every principal (keys decrypted and compared) and every device of a equals b's. */
static void
check_same_realm(ck_store *a, ck_store *b)
{
    char la[4096] = "", lb[4096] = "", *save = NULL;
    struct dev_list da, dbl;
    size_t n = 0;

    CHECK_OK(ck_store_list_principals(a, collect_name, la));
    CHECK_OK(ck_store_list_principals(b, collect_name, lb));
    CHECK(strcmp(la, lb) == 0 && la[0] != '\0');
    for (char *name = strtok_r(la, "\n", &save); name != NULL; name = strtok_r(NULL, "\n", &save)) {
        ck_db_principal *pa = NULL, *pb = NULL;
        CHECK_OK(ck_store_get_principal(a, name, &pa));
        CHECK_OK(ck_store_get_principal(b, name, &pb));
        CHECK(pa != NULL && pb != NULL && same_principal(pa, pb));
        ck_db_principal_free(pa);
        ck_db_principal_free(pb);
        n++;
    }
    CHECK_INT_EQ(n, 5); /* krbtgt and the four added */
    memset(&da, 0, sizeof(da));
    memset(&dbl, 0, sizeof(dbl));
    CHECK_OK(ck_store_list_devices(a, NULL, NULL, 100, collect_dev, &da, NULL));
    CHECK_OK(ck_store_list_devices(b, NULL, NULL, 100, collect_dev, &dbl, NULL));
    CHECK(strcmp(da.text, dbl.text) == 0 && strstr(da.text, "revoked one") != NULL);
}

static int
count_dir_entries(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    int n = 0;

    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    }
    closedir(d);
    return n;
}

static void
sql(const char *path, const char *stmt)
{
    sqlite3 *raw = NULL;
    char *err = NULL;

    CHECK(sqlite3_open(path, &raw) == SQLITE_OK);
    if (sqlite3_exec(raw, stmt, NULL, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "  sql %s: %s\n", stmt, err ? err : "?");
        ck_test_case_failed = 1;
    }
    sqlite3_free(err);
    sqlite3_close(raw);
}

static void
copy_file(const char *from, const char *to)
{
    char cmd[512];

    snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", from, to);
    CHECK(system(cmd) == 0);
}

static void
backup_restore_identical(void)
{
    ck_store_backup_info bi;
    ck_store_restore_info ri;
    ck_store *a, *b;
    char restored[160], rstash[160];
    struct stat st;
    uint64_t gen = 0;

    fixture_up();
    populate();
    CHECK_OK(ck_store_backup(db, bak, false, &bi));
    CHECK(stat(bak, &st) == 0 && (st.st_mode & 0777) == 0600);
    CHECK(strcmp(bi.realm, REALM) == 0);
    CHECK_INT_EQ(bi.principals, 5);
    CHECK_INT_EQ(bi.devices, 3);
    CHECK(bi.audit_rows >= 10);
    /* No temporary file left beside it; a single file (no -wal). */
    CHECK_INT_EQ(count_dir_entries(dir), 3);
    {
        char wal[200];
        snprintf(wal, sizeof(wal), "%s-wal", bak);
        CHECK(access(wal, F_OK) != 0);
    }

    /* Into a new path, with the stash copied as an operator would. */
    snprintf(restored, sizeof(restored), "%s/restored.db", dir);
    snprintf(rstash, sizeof(rstash), "%s/restored.db.stash", dir);
    copy_file(stash, rstash);
    CHECK(chmod(rstash, 0600) == 0);
    CHECK_OK(ck_store_restore(restored, NULL, bak, 0, "tester", &ri));
    CHECK(ri.created);
    CHECK_INT_EQ(ri.principals, 5);
    CHECK_INT_EQ(ri.devices, 3);
    CHECK_INT_EQ(ri.keys_checked, 5 * 2 + 2 * 2); /* two kvnos for alice and host */
    CHECK_INT_EQ(ri.backup_generation, bi.generation);
    CHECK(ri.generation > bi.generation);
    CHECK(stat(restored, &st) == 0 && (st.st_mode & 0777) == 0600);
    a = fixture_open(db);
    b = fixture_open(restored);
    check_same_realm(a, b);
    CHECK_OK(ck_store_generation(b, &gen));
    CHECK_INT_EQ(gen, ri.generation);
    ck_store_close(a);
    ck_store_close(b);
    /* The restored file is a normal, checked database. */
    CHECK_OK(ck_store_check(restored, NULL, NULL, NULL, NULL));

    /* A backup from the previous schema version is upgraded on the way in. */
    {
        char old[160];
        snprintf(old, sizeof(old), "%s/v2.db", dir);
        copy_file(bak, old);
        /* Back to version 2: no audit tables, no policy tables or principal columns. */
        sql(old, "DROP TABLE key_confirm; DROP TABLE key_version; DROP TABLE rotation_policy;"
                 " DROP TABLE audit; DROP TABLE audit_retention;"
                 " ALTER TABLE realm DROP COLUMN default_attributes;"
                 " DROP TABLE pw_history; DROP TABLE lockout; DROP INDEX principal_policy;"
                 " CREATE TABLE principal_v2 AS SELECT id, name, attributes, max_life,"
                 " max_renew, expires, pw_expires, kvno, created, modified FROM principal;"
                 " DROP TABLE principal;"
                 " CREATE TABLE principal( id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
                 " attributes INTEGER NOT NULL, max_life INTEGER NOT NULL, max_renew INTEGER NOT"
                 " NULL, expires INTEGER NOT NULL, pw_expires INTEGER NOT NULL, kvno INTEGER NOT"
                 " NULL, created INTEGER NOT NULL, modified INTEGER NOT NULL);"
                 " INSERT INTO principal SELECT * FROM principal_v2; DROP TABLE principal_v2;"
                 " DROP TABLE policy; DROP TABLE alarm;"
                 " DROP TABLE prov_customer; DROP TABLE prov_device; DROP TABLE prov_number;"
                 " DROP TABLE prov_cert; DROP TABLE prov_event; DROP TABLE prov_idem;"
                 " DROP TABLE prov_outbox; ALTER TABLE device DROP COLUMN cert_sha256;"
                 " UPDATE schema_version SET version = 2");
        CHECK_OK(ck_store_restore(db, NULL, old, 0, "tester", &ri));
        CHECK_INT_EQ(ri.backup_schema_version, 2);
        a = fixture_open(db);
        b = fixture_open(restored);
        check_same_realm(a, b);
        ck_store_close(a);
        ck_store_close(b);
        CHECK_OK(ck_store_check(db, NULL, NULL, NULL, NULL));
        unlink(old);
    }

    /* Refusals: an existing output, the database itself; --overwrite replaces. */
    CHECK_INT_EQ(ck_store_backup(db, bak, false, NULL), CK_ERR_EXISTS);
    CHECK_INT_EQ(ck_store_backup(db, db, true, NULL), CK_ERR_INVAL);
    CHECK_OK(ck_store_backup(db, bak, true, NULL));
    CHECK_INT_EQ(ck_store_restore(db, NULL, db, CK_RESTORE_FORCE, NULL, NULL), CK_ERR_INVAL);
    fixture_down();
}

struct audit_find {
    const char *action, *object;
    int found;
};

static int
find_audit(const ck_audit_entry *e, void *arg)
{
    struct audit_find *f = arg;

    if (strcmp(e->action, f->action) == 0 && strcmp(e->object, f->object) == 0)
        f->found++;
    return 0;
}

static int
audit_count(ck_store *s, const char *action, const char *object)
{
    ck_audit_filter flt = {.limit = CK_AUDIT_LIST_MAX};
    struct audit_find f = {action, object, 0};

    CHECK_OK(ck_store_audit_list(s, &flt, find_audit, &f));
    return f.found;
}

/* Restoring into a database that another connection holds with a warm cache. */
static void
restore_live_flushes_cache(void)
{
    ck_store_restore_info ri;
    const ck_db_principal *cp = NULL;
    const ck_db_device *cd = NULL;
    ck_store *live, *w;
    uint64_t gen_before = 0, gen_after = 0;

    fixture_up();
    populate();
    CHECK_OK(ck_store_backup(db, bak, false, NULL));
    live = fixture_open(db);
    ck_store_cache_configure(live, 100, 0);
    /* Changes after the backup, seen and cached by `live`. */
    w = fixture_open(db);
    ck_store_set_actor(w, "after-backup");
    rotate(w, "alice@" REALM);
    add_princ(w, "carol@" REALM, "carol pw", 0, 0);
    CHECK_OK(ck_store_set_device_state(w, "00:11:22:33:44:03", CK_DEVICE_ACTIVE, NULL));
    ck_store_close(w);
    ck_store_cache_begin(live);
    CHECK_OK(ck_store_get_principal_cached(live, "alice@" REALM, &cp));
    CHECK(cp != NULL && cp->kvno == 3);
    CHECK_OK(ck_store_get_principal_cached(live, "carol@" REALM, &cp));
    CHECK_OK(ck_store_get_device_cached(live, "00:11:22:33:44:03", &cd));
    CHECK(cd != NULL && cd->state == CK_DEVICE_ACTIVE);
    CHECK_OK(ck_store_generation(live, &gen_before));

    /* Same process: the holder check cannot see our own connection, so no --force needed. */
    CHECK_OK(ck_store_restore(db, NULL, bak, 0, "uid 0 (root) via sudo alice", &ri));
    CHECK(!ri.created);
    CHECK_INT_EQ(ri.old_generation, gen_before);
    CHECK(ri.generation > gen_before && ri.generation > ri.backup_generation);
    CHECK_OK(ck_store_generation(live, &gen_after));
    CHECK_INT_EQ(gen_after, ri.generation);

    /* The warm cache serves the restored realm, not what it held. */
    ck_store_cache_begin(live);
    CHECK_OK(ck_store_get_principal_cached(live, "alice@" REALM, &cp));
    CHECK(cp != NULL && cp->kvno == 2);
    CHECK_INT_EQ(ck_store_get_principal_cached(live, "carol@" REALM, &cp), CK_ERR_NOTFOUND);
    CHECK_OK(ck_store_get_device_cached(live, "00:11:22:33:44:03", &cd));
    CHECK(cd != NULL && cd->state == CK_DEVICE_REVOKED && cd->generation == ri.generation);

    /* The audit log is the live one: the undone changes stay on record, and the restore. */
    CHECK_INT_EQ(audit_count(live, "principal.add", "carol@" REALM), 1);
    CHECK_INT_EQ(audit_count(live, "device.reinstate", "00:11:22:33:44:03"), 1);
    CHECK_INT_EQ(audit_count(live, "db.restore", REALM), 1);
    ck_store_close(live);
    CHECK_OK(ck_store_check(db, NULL, NULL, NULL, NULL));
    fixture_down();
}

/* Each refused restore leaves the live database as it was, and no file behind. */
static void
expect_refused(const char *in, const char *st, int want, const char *ctx_part)
{
    uint64_t before = 0, after = 0;
    ck_store *s = fixture_open(db);
    int n_files = count_dir_entries(dir), ret;

    CHECK_OK(ck_store_generation(s, &before));
    ret = ck_store_restore(db, st, in, 0, "tester", NULL);
    CHECK_INT_EQ(ret, want);
    if (ctx_part != NULL && strstr(ck_error_context(), ctx_part) == NULL) {
        fprintf(stderr, "  context '%s' lacks '%s'\n", ck_error_context(), ctx_part);
        ck_test_case_failed = 1;
    }
    CHECK_OK(ck_store_generation(s, &after));
    CHECK_INT_EQ(after, before);
    CHECK_INT_EQ(count_dir_entries(dir), n_files);
    ck_store_close(s);
}

static void
restore_validation(void)
{
    char path[160], other_db[160], other_stash[160];
    FILE *f;

    fixture_up();
    populate();
    CHECK_OK(ck_store_backup(db, bak, false, NULL));

    /* Not a database at all. */
    snprintf(path, sizeof(path), "%s/garbage.db", dir);
    f = fopen(path, "w");
    CHECK(f != NULL);
    if (f != NULL) {
        for (int i = 0; i < 4096; i++)
            fputc("garbage"[i % 7], f);
        fclose(f);
    }
    expect_refused(path, NULL, CK_ERR_INTEGRITY, "not a database");
    unlink(path);

    /* Truncated backup: the first pages only. */
    snprintf(path, sizeof(path), "%s/trunc.db", dir);
    {
        char cmd[512];
        snprintf(cmd, sizeof(cmd), "head -c 8192 '%s' > '%s'", bak, path);
        CHECK(system(cmd) == 0);
    }
    expect_refused(path, NULL, CK_ERR_INTEGRITY, NULL);
    unlink(path);

    /* A SQLite database that is not cablekey's. */
    snprintf(path, sizeof(path), "%s/other.sqlite", dir);
    sql(path, "CREATE TABLE t(x); INSERT INTO t VALUES (1)");
    expect_refused(path, NULL, CK_ERR_DB, "not a cablekey database");
    unlink(path);

    /* From a newer cablekey. */
    snprintf(path, sizeof(path), "%s/newer.db", dir);
    copy_file(bak, path);
    sql(path, "UPDATE schema_version SET version = 99");
    expect_refused(path, NULL, CK_ERR_UNSUPPORTED, "newer than");
    unlink(path);

    /* The stash of another realm (wrong master key). */
    snprintf(other_db, sizeof(other_db), "%s/other.db", dir);
    snprintf(other_stash, sizeof(other_stash), "%s/other.db.stash", dir);
    CHECK_OK(ck_store_init_realm(other_db, other_stash, "OTHER.TEST", enctypes, N_ENCTYPES, 0,
                                 0));
    expect_refused(bak, other_stash, CK_ERR_INTEGRITY, "master key");
    /* No stash at all. */
    snprintf(path, sizeof(path), "%s/none.stash", dir);
    expect_refused(bak, path, CK_ERR_NOTFOUND, "none.stash");

    /* One damaged key blob in an otherwise sound backup. */
    snprintf(path, sizeof(path), "%s/badkey.db", dir);
    copy_file(bak, path);
    sql(path, "UPDATE key SET key_enc = substr(key_enc, 1, 20) || "
              "(CASE WHEN substr(key_enc, 21, 1) = X'00' THEN X'01' ELSE X'00' END) || "
              "substr(key_enc, 22) WHERE rowid = (SELECT max(rowid) FROM key)");
    expect_refused(path, NULL, CK_ERR_INTEGRITY, "does not decrypt");
    unlink(path);

    /* A dangling device (foreign key). */
    snprintf(path, sizeof(path), "%s/fk.db", dir);
    copy_file(bak, path);
    sql(path, "PRAGMA foreign_keys = OFF; INSERT INTO device(mac, principal, state, created,"
              " modified, generation) VALUES ('00:11:22:33:44:99', 'ghost@" REALM "', 1, 0, 0,"
              " 1)");
    expect_refused(path, NULL, CK_ERR_INTEGRITY, "inconsistent");
    unlink(path);

    /* A trigger smuggled into a backup. */
    snprintf(path, sizeof(path), "%s/trigger.db", dir);
    copy_file(bak, path);
    sql(path, "CREATE TRIGGER t AFTER UPDATE ON principal BEGIN DELETE FROM key; END");
    expect_refused(path, NULL, CK_ERR_INTEGRITY, "trigger");
    unlink(path);

    /* Nothing refused above changed the database. */
    CHECK_OK(ck_store_check(db, NULL, NULL, NULL, NULL));
    fixture_down();
}

struct problems {
    char text[4096];
    int n;
};

static void
collect_problem(const char *p, void *arg)
{
    struct problems *ps = arg;
    size_t n = strlen(ps->text);

    snprintf(ps->text + n, sizeof(ps->text) - n, "%s\n", p);
    ps->n++;
}

static void
integrity_check(void)
{
    ck_store_check_result res;
    struct problems ps;
    char path[160];

    fixture_up();
    populate();
    memset(&ps, 0, sizeof(ps));
    CHECK_OK(ck_store_check(db, NULL, collect_problem, &ps, &res));
    CHECK_INT_EQ(ps.n, 0);
    CHECK(res.keys_checked);
    CHECK_INT_EQ(res.principals, 5);
    CHECK_INT_EQ(res.keys, 14);
    CHECK_INT_EQ(res.devices, 3);
    CHECK_INT_EQ(res.schema_version, sqlite_schema_version()); /* the newest */

    /* Missing stash: reported, with the reminder. */
    snprintf(path, sizeof(path), "%s/missing.stash", dir);
    memset(&ps, 0, sizeof(ps));
    CHECK_INT_EQ(ck_store_check(db, path, collect_problem, &ps, &res), CK_ERR_INTEGRITY);
    CHECK_INT_EQ(ps.n, 1);
    CHECK(!res.keys_checked && strstr(ps.text, "without its stash is useless") != NULL);

    /* One flipped byte in one key blob: exactly that key is reported. */
    sql(db, "UPDATE key SET key_enc = substr(key_enc, 1, 30) || "
            "(CASE WHEN substr(key_enc, 31, 1) = X'41' THEN X'42' ELSE X'41' END) || "
            "substr(key_enc, 32) WHERE principal_id = (SELECT id FROM principal WHERE"
            " name = 'bob@" REALM "') AND enctype = 19");
    memset(&ps, 0, sizeof(ps));
    CHECK_INT_EQ(ck_store_check(db, NULL, collect_problem, &ps, &res), CK_ERR_INTEGRITY);
    CHECK_INT_EQ(ps.n, 1);
    CHECK(strstr(ps.text, "bob@" REALM " kvno 1 enctype 19") != NULL);
    CHECK(strstr(ck_error_context(), "1 problem") != NULL);

    /* A key row moved onto another principal decrypts but does not belong there. */
    sql(db, "UPDATE key SET principal_id = (SELECT id FROM principal WHERE name = 'mta1@" REALM
            "'), kvno = 7 WHERE principal_id = (SELECT id FROM principal WHERE"
            " name = 'alice@" REALM "') AND kvno = 1 AND enctype = 18");
    memset(&ps, 0, sizeof(ps));
    CHECK_INT_EQ(ck_store_check(db, NULL, collect_problem, &ps, &res), CK_ERR_INTEGRITY);
    CHECK_INT_EQ(ps.n, 2);
    CHECK(strstr(ps.text, "mta1@" REALM " kvno 7 enctype 18: key row does not belong") != NULL);

    /* A dangling device, found by the foreign key check. */
    sql(db, "PRAGMA foreign_keys = OFF; INSERT INTO device(mac, principal, state, created,"
            " modified, generation) VALUES ('00:11:22:33:44:99', 'ghost@" REALM "', 1, 0, 0, 1)");
    memset(&ps, 0, sizeof(ps));
    CHECK_INT_EQ(ck_store_check(db, NULL, collect_problem, &ps, &res), CK_ERR_INTEGRITY);
    CHECK(strstr(ps.text, "foreign key: table device") != NULL);

    /* A file that is not a database; one that does not exist. */
    snprintf(path, sizeof(path), "%s/junk.db", dir);
    {
        FILE *f = fopen(path, "w");
        CHECK(f != NULL);
        if (f != NULL) {
            for (int i = 0; i < 2048; i++)
                fputc('x', f);
            fclose(f);
        }
    }
    memset(&ps, 0, sizeof(ps));
    CHECK_INT_EQ(ck_store_check(path, stash, collect_problem, &ps, &res), CK_ERR_INTEGRITY);
    CHECK(strstr(ps.text, "not a database") != NULL);
    snprintf(path, sizeof(path), "%s/absent.db", dir);
    CHECK_INT_EQ(ck_store_check(path, stash, NULL, NULL, NULL), CK_ERR_NOTFOUND);
    fixture_down();
}

/* Password history rows are checked like keys: each decrypts and belongs to its principal. */
static void
history_check(void)
{
    ck_store_check_result res;
    struct problems ps;
    ck_policy pol;
    ck_store *s;

    fixture_up();
    s = fixture_open(db);
    memset(&pol, 0, sizeof(pol));
    ck_strlcpy(pol.name, "remember", sizeof(pol.name));
    pol.history = 3;
    CHECK_OK(ck_store_create_policy(s, &pol));
    add_princ(s, "alice@" REALM, "alice pw", 0, 0);
    CHECK_OK(ck_store_set_principal_policy(s, "alice@" REALM, "remember"));
    CHECK_OK(ck_store_change_password(s, "alice@" REALM, "second pw", 9, CK_PW_ADMIN, 0, NULL));
    CHECK_OK(ck_store_change_password(s, "alice@" REALM, "third pw", 8, CK_PW_ADMIN, 0, NULL));
    ck_store_close(s);
    memset(&ps, 0, sizeof(ps));
    CHECK_OK(ck_store_check(db, NULL, collect_problem, &ps, &res));
    CHECK_INT_EQ(ps.n, 0);
    CHECK_INT_EQ(res.history_keys, 2);

    /* One flipped byte in the newest history row: exactly that row is reported. */
    sql(db, "UPDATE pw_history SET key_enc = substr(key_enc, 1, 30) || "
            "(CASE WHEN substr(key_enc, 31, 1) = X'41' THEN X'42' ELSE X'41' END) || "
            "substr(key_enc, 32) WHERE id = (SELECT max(id) FROM pw_history)");
    memset(&ps, 0, sizeof(ps));
    CHECK_INT_EQ(ck_store_check(db, NULL, collect_problem, &ps, &res), CK_ERR_INTEGRITY);
    CHECK_INT_EQ(ps.n, 1);
    CHECK(strstr(ps.text, "password history: principal alice@" REALM " kvno 2") != NULL);
    CHECK(strstr(ps.text, "does not decrypt") != NULL);

    /* A history row moved onto another principal decrypts but does not belong there. */
    s = fixture_open(db);
    add_princ(s, "bob@" REALM, "bob pw", 0, 0);
    ck_store_close(s);
    sql(db, "UPDATE pw_history SET principal_id = (SELECT id FROM principal WHERE"
            " name = 'bob@" REALM "') WHERE id = (SELECT min(id) FROM pw_history)");
    memset(&ps, 0, sizeof(ps));
    CHECK_INT_EQ(ck_store_check(db, NULL, collect_problem, &ps, &res), CK_ERR_INTEGRITY);
    CHECK_INT_EQ(ps.n, 2);
    CHECK(strstr(ps.text, "password history: principal bob@" REALM " kvno 1") != NULL);
    fixture_down();
}

/* A restore over a live realm whose principals use a password policy: the policy table is
 * emptied and refilled with them (SQLite's deferred foreign-key count must end at zero). */
static void
restore_with_policy(void)
{
    ck_store_restore_info ri;
    ck_policy pol;
    ck_store *s;

    fixture_up();
    s = fixture_open(db);
    memset(&pol, 0, sizeof(pol));
    ck_strlcpy(pol.name, "strict", sizeof(pol.name));
    pol.history = 2;
    CHECK_OK(ck_store_create_policy(s, &pol));
    add_princ(s, "alice@" REALM, "alice pw", 0, 0);
    CHECK_OK(ck_store_set_principal_policy(s, "alice@" REALM, "strict"));
    ck_store_close(s);
    CHECK_OK(ck_store_backup(db, bak, false, NULL));
    CHECK_OK(ck_store_restore(db, NULL, bak, CK_RESTORE_FORCE, "tester", &ri));
    CHECK_INT_EQ(ri.principals, 2); /* alice and the fixture's krbtgt */
    s = fixture_open(db);
    memset(&pol, 0, sizeof(pol));
    CHECK_OK(ck_store_get_policy(s, "strict", &pol));
    CHECK_INT_EQ(pol.ref_count, 1); /* alice still uses it */
    ck_store_close(s);
    fixture_down();
}

CK_TEST_MAIN("store_maint", CK_TEST_CASE(backup_restore_identical),
             CK_TEST_CASE(restore_live_flushes_cache), CK_TEST_CASE(restore_validation),
             CK_TEST_CASE(integrity_check), CK_TEST_CASE(history_check),
             CK_TEST_CASE(restore_with_policy))
