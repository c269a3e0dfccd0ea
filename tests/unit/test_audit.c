/* The audit log: one row per administrative change with actor, action, object and a detail
 * that never holds a secret; no row when the change rolls back or is not administrative; a
 * generic row for a write nobody named; retention by rows and by age; the read filters. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "ck_test.h"
#include "store_fixture.h"
#include "cablekey/store.h"
#include "cablekey/util.h"
#include "store/store_int.h"

#define REALM "AUDIT.TEST"
#define PASSWORD "Correct-Horse-Battery-Staple-9"
#define MAC "00:aa:bb:cc:dd:01"

static const int32_t enctypes[] = {CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96,
                                   CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96};
#define N_ENCTYPES (sizeof(enctypes) / sizeof(enctypes[0]))

static void
fixture_up(void)
{
    store_fixture_up("audit", REALM, enctypes, N_ENCTYPES);
}

static ck_store *
open_store(const char *actor)
{
    ck_store *s = fixture_open(db);

    if (actor != NULL)
        ck_store_set_actor(s, actor);
    return s;
}

static void
sql(const char *stmt)
{
    sqlite3 *raw = NULL;
    char *err = NULL;

    CHECK(sqlite3_open(db, &raw) == SQLITE_OK);
    if (sqlite3_exec(raw, stmt, NULL, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "  sql %s: %s\n", stmt, err ? err : "?");
        ck_test_case_failed = 1;
    }
    sqlite3_free(err);
    sqlite3_close(raw);
}

struct rows {
    char text[16384];  /* "actor|action|object|detail\n" per row */
    int n;
    int64_t first_id, last_id;
};

static int
collect(const ck_audit_entry *e, void *arg)
{
    struct rows *r = arg;
    size_t n = strlen(r->text);

    snprintf(r->text + n, sizeof(r->text) - n, "%s|%s|%s|%s\n", e->actor, e->action, e->object,
             e->detail);
    if (r->n++ == 0)
        r->first_id = e->id;
    r->last_id = e->id;
    return 0;
}

static void
list(ck_store *s, const ck_audit_filter *f, struct rows *r)
{
    ck_audit_filter all = {.limit = CK_AUDIT_LIST_MAX};

    memset(r, 0, sizeof(*r));
    CHECK_OK(ck_store_audit_list(s, f != NULL ? f : &all, collect, r));
}

static bool
has_row(const struct rows *r, const char *line)
{
    if (strstr(r->text, line) != NULL)
        return true;
    fprintf(stderr, "  no audit row '%s' in:\n%s", line, r->text);
    return false;
}

static int64_t
row_count(void)
{
    sqlite3 *raw = NULL;
    sqlite3_stmt *st = NULL;
    int64_t n = -1;

    if (sqlite3_open(db, &raw) == SQLITE_OK &&
        sqlite3_prepare_v2(raw, "SELECT count(*) FROM audit", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(raw);
    return n;
}

static void
add_princ(ck_store *s, const char *name, const char *pw)
{
    ck_db_principal *p = fixture_principal(name, pw, CK_ATTR_REQUIRES_PREAUTH, enctypes,
                                           N_ENCTYPES);

    CHECK_OK(ck_store_create_principal(s, p));
    ck_db_principal_free(p);
}

static void
hexify(const uint8_t *p, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[p[i] >> 4];
        out[2 * i + 1] = hx[p[i] & 15];
    }
    out[2 * n] = '\0';
}

/* The whole audit table, every column as text, holds neither the password nor any key. */
static void
check_no_secrets(ck_store *s, const char *name)
{
    ck_db_principal *p = NULL;
    sqlite3 *raw = NULL;
    sqlite3_stmt *st = NULL;
    char hex[2 * CK_KEY_MAX + 1];

    CHECK_OK(ck_store_get_principal(s, name, &p));
    CHECK(sqlite3_open(db, &raw) == SQLITE_OK);
    CHECK(sqlite3_prepare_v2(raw, "SELECT group_concat(time || actor || action || object ||"
                                  " detail || generation, '|') FROM audit", -1, &st, NULL) ==
          SQLITE_OK);
    if (st != NULL && sqlite3_step(st) == SQLITE_ROW && p != NULL) {
        const char *all = (const char *)sqlite3_column_text(st, 0);
        size_t len = (size_t)sqlite3_column_bytes(st, 0);
        CHECK(all != NULL && len > 0);
        CHECK(strstr(all, PASSWORD) == NULL);
        for (size_t i = 0; all != NULL && i < p->n_keys; i++) {
            hexify(p->keys[i].key.contents, p->keys[i].key.length, hex);
            CHECK(memmem(all, len, p->keys[i].key.contents, p->keys[i].key.length) == NULL);
            CHECK(strstr(all, hex) == NULL);
            /* Upper case hex too. */
            for (char *c = hex; *c; c++)
                *c = (char)(*c >= 'a' && *c <= 'f' ? *c - 32 : *c);
            CHECK(strstr(all, hex) == NULL);
        }
    }
    sqlite3_finalize(st);
    sqlite3_close(raw);
    ck_db_principal_free(p);
}

static void
every_kind_of_change(void)
{
    static const uint8_t pin[CK_DEVICE_SPKI_HASH_LEN] = {0xab, 0xcd};
    enum ck_device_pin_result res;
    ck_db_principal *p = NULL;
    ck_db_key *keys = NULL;
    ck_db_device d;
    ck_audit_retention r;
    struct rows rows;
    ck_store *s;
    size_t n = 0;

    fixture_up();
    s = open_store("uid 0 (root) via sudo alice");
    add_princ(s, "bob@" REALM, PASSWORD);

    CHECK_OK(ck_store_get_principal(s, "bob@" REALM, &p));
    if (p != NULL) {
        p->attributes = (p->attributes & ~CK_ATTR_REQUIRES_PREAUTH) | CK_ATTR_DISALLOW_ALL_TIX;
        p->max_life = 3600;
        p->expires = 1893456000; /* 2030-01-01 */
        CHECK_OK(ck_store_update_principal(s, p));
    }
    ck_db_principal_free(p);
    /* A password change is a rotation with password-derived keys. */
    CHECK_OK(ck_db_keys_make("bob@" REALM, PASSWORD, strlen(PASSWORD), enctypes, N_ENCTYPES, 0,
                             &keys, &n));
    CHECK_OK(ck_store_rotate_keys(s, "bob@" REALM, keys, n, 2, NULL));
    ck_db_keys_free(keys, n);

    memset(&d, 0, sizeof(d));
    ck_strlcpy(d.mac, MAC, sizeof(d.mac));
    d.principal = "bob@" REALM;
    d.comment = "lab";
    d.state = CK_DEVICE_ACTIVE;
    CHECK_OK(ck_store_add_device(s, &d));
    CHECK_OK(ck_store_set_device_state(s, MAC, CK_DEVICE_REVOKED, NULL));
    CHECK_OK(ck_store_set_device_state(s, MAC, CK_DEVICE_ACTIVE, NULL));
    CHECK_OK(ck_store_set_device_pin(s, MAC, pin));
    CHECK_OK(ck_store_set_device_pin(s, MAC, NULL));
    /* The KDC's trust on first use: a change too, by whatever actor the KDC's store has. */
    ck_store_set_actor(s, NULL);
    CHECK_OK(ck_store_device_pin_check(s, MAC, pin, &res, NULL));
    CHECK_INT_EQ(res, CK_DEVICE_PIN_SET);
    /* A check that changes nothing writes nothing. */
    CHECK_OK(ck_store_device_pin_check(s, MAC, pin, &res, NULL));
    ck_store_set_actor(s, "admin/ops@" REALM);
    CHECK_OK(ck_store_delete_device(s, MAC));
    r.keep_rows = 5000;
    r.keep_days = 30;
    CHECK_OK(ck_store_audit_set_retention(s, &r));
    check_no_secrets(s, "bob@" REALM);
    CHECK_OK(ck_store_delete_principal(s, "bob@" REALM));

    list(s, NULL, &rows);
    {
        char uid_actor[64];
        snprintf(uid_actor, sizeof(uid_actor), "uid %u|", (unsigned)geteuid());
        /* init: the realm and its krbtgt, by the process's uid */
        CHECK(has_row(&rows, "|realm.create|" REALM "|2 enctypes, master key kvno 1\n"));
        CHECK(strncmp(rows.text, uid_actor, strlen(uid_actor)) == 0);
    }
    CHECK(has_row(&rows, "|principal.add|krbtgt/" REALM "@" REALM "|kvno 1, 2 keys"));
    CHECK(has_row(&rows, "uid 0 (root) via sudo alice|principal.add|bob@" REALM "|kvno 1, 2 keys"
                         " (aes256-cts-hmac-sha1-96,aes128-cts-hmac-sha1-96), attributes"
                         " +REQUIRES_PREAUTH\n"));
    CHECK(has_row(&rows, "uid 0 (root) via sudo alice|principal.modify|bob@" REALM "|attributes"
                         " +DISALLOW_ALL_TIX -REQUIRES_PREAUTH; max_life 0 -> 3600; expires"
                         " never -> 2030-01-01T00:00:00Z\n"));
    CHECK(has_row(&rows, "|principal.rotate|bob@" REALM "|kvno 1 -> 2, 2 keys"));
    CHECK(has_row(&rows, "|device.add|" MAC "|principal bob@" REALM ", not pinned, comment lab\n"));
    CHECK(has_row(&rows, "|device.revoke|" MAC "|\n"));
    CHECK(has_row(&rows, "|device.reinstate|" MAC "|\n"));
    CHECK(has_row(&rows, "|device.pin|" MAC "|SPKI SHA-256 abcd0000"));
    CHECK(has_row(&rows, "|device.unpin|" MAC "|\n"));
    CHECK(has_row(&rows, "|device.pin|" MAC "|first login (trust on first use), SPKI SHA-256 "
                         "abcd00"));
    CHECK(has_row(&rows, "admin/ops@" REALM "|device.delete|" MAC "|\n"));
    CHECK(has_row(&rows, "admin/ops@" REALM "|audit.retention||rows 100000 -> 5000, days 365 -> "
                         "30\n"));
    CHECK(has_row(&rows, "admin/ops@" REALM "|principal.delete|bob@" REALM "|\n"));
    CHECK_INT_EQ(rows.n, 14);
    ck_store_close(s);
    fixture_down();
}

/* A change that fails inside its transaction, after the bump wrote the row, leaves no row. */
static void
rollback_leaves_no_row(void)
{
    ck_db_device d;
    ck_store *s;
    uint64_t gen0 = 0, gen1 = 0;
    int64_t n0;

    fixture_up();
    s = open_store("tester");
    add_princ(s, "mta@" REALM, NULL);
    /* The device insert comes after the bump in its transaction: make it fail there. */
    sql("CREATE TRIGGER boom BEFORE INSERT ON device WHEN NEW.comment = 'boom'"
        " BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END");
    n0 = row_count();
    CHECK_OK(ck_store_generation(s, &gen0));
    memset(&d, 0, sizeof(d));
    ck_strlcpy(d.mac, MAC, sizeof(d.mac));
    d.principal = "mta@" REALM;
    d.comment = "boom";
    d.state = CK_DEVICE_ACTIVE;
    CHECK(ck_store_add_device(s, &d) != 0);
    CHECK_INT_EQ(row_count(), n0);
    CHECK_OK(ck_store_generation(s, &gen1));
    CHECK_INT_EQ(gen1, gen0);
    /* Refused before anything is written (a device maps to it; unknown principal). */
    d.comment = "ok";
    CHECK_OK(ck_store_add_device(s, &d));
    n0 = row_count();
    CHECK_INT_EQ(ck_store_delete_principal(s, "mta@" REALM), CK_ERR_POLICY);
    CHECK_INT_EQ(ck_store_delete_principal(s, "nobody@" REALM), CK_ERR_NOTFOUND);
    CHECK_INT_EQ(row_count(), n0);
    /* The failed op's pending action does not label the next write. */
    CHECK_OK(ck_store_delete_device(s, MAC));
    {
        struct rows rows;
        ck_audit_filter f = {.limit = 1};
        list(s, &f, &rows);
        CHECK_INT_EQ(rows.n, 1);
        CHECK(strcmp(rows.text, "tester|device.delete|" MAC "|\n") == 0);
    }
    ck_store_close(s);
    fixture_down();
}

/* store_audit_skip for bookkeeping writes; a generic row for a write nobody named. */
static void
skip_and_unnamed(void)
{
    struct ck_store_princ_row row;
    struct rows rows;
    ck_store *s;
    int64_t n0;

    fixture_up();
    s = open_store("tester");
    add_princ(s, "a@" REALM, NULL);
    memset(&row, 0, sizeof(row));
    CHECK_OK(s->ops->get(s->be, "a@" REALM, &row));
    row.max_life = 60;

    n0 = row_count();
    store_audit_skip(s);
    CHECK_OK(s->ops->put(s->be, &row, CK_PUT_UPDATE_FIELDS, 1));
    CHECK_INT_EQ(row_count(), n0);

    /* Nobody named this one: it is still on record. */
    row.max_life = 120;
    CHECK_OK(s->ops->put(s->be, &row, CK_PUT_UPDATE_FIELDS, 2));
    CHECK_INT_EQ(row_count(), n0 + 1);
    {
        ck_audit_filter f = {.limit = 1};
        list(s, &f, &rows);
        CHECK(strcmp(rows.text, "tester|principal.change|a@" REALM "|\n") == 0);
    }
    /* A transaction that bumps twice (a rename: old and new name) writes one row. */
    store_audit_begin(s, "principal.rename", "a@" REALM, "to b@%s", REALM);
    CHECK_OK(s->ops->put(s->be, &row, CK_PUT_UPDATE_FIELDS, 3));
    CHECK_INT_EQ(row_count(), n0 + 2);
    ck_store_princ_row_clear(&row);

    /* Control characters in the actor cannot forge a line. */
    ck_store_set_actor(s, "evil\nuid 0|x\x1b[2J");
    add_princ(s, "c@" REALM, NULL);
    {
        ck_audit_filter f = {.limit = 1};
        list(s, &f, &rows);
        CHECK(strncmp(rows.text, "evil?uid 0|x?[2J|principal.add|c@" REALM, 34) == 0);
    }
    ck_store_close(s);
    fixture_down();
}

static void
retention(void)
{
    ck_audit_retention r;
    struct rows rows;
    ck_store *s;
    char name[64];

    fixture_up();
    s = open_store("tester");
    CHECK_OK(ck_store_audit_get_retention(s, &r));
    CHECK_INT_EQ(r.keep_rows, CK_AUDIT_KEEP_ROWS);
    CHECK_INT_EQ(r.keep_days, CK_AUDIT_KEEP_DAYS);
    r.keep_rows = 0;
    CHECK_INT_EQ(ck_store_audit_set_retention(s, &r), CK_ERR_INVAL);
    r.keep_rows = CK_AUDIT_KEEP_ROWS_MAX + 1;
    CHECK_INT_EQ(ck_store_audit_set_retention(s, &r), CK_ERR_INVAL);
    r.keep_rows = 5;
    r.keep_days = -1;
    CHECK_INT_EQ(ck_store_audit_set_retention(s, &r), CK_ERR_INVAL);
    r.keep_days = 0;
    CHECK_OK(ck_store_audit_set_retention(s, &r));

    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof(name), "p%02d@%s", i, REALM);
        add_princ(s, name, NULL);
    }
    list(s, NULL, &rows);
    CHECK_INT_EQ(rows.n, 5);
    CHECK_INT_EQ(row_count(), 5);
    /* The newest five, oldest first. */
    CHECK(strstr(rows.text, "|p05@") != NULL && strstr(rows.text, "|p09@") != NULL &&
          strstr(rows.text, "|p04@") == NULL);
    CHECK(strstr(rows.text, "|p05@") < strstr(rows.text, "|p09@"));

    /* By age: rows older than keep_days go at the next change. */
    r.keep_rows = 1000;
    r.keep_days = 30;
    CHECK_OK(ck_store_audit_set_retention(s, &r));
    sql("UPDATE audit SET time = time - 31 * 86400 WHERE object LIKE 'p0%'");
    CHECK_INT_EQ(row_count(), 6);
    add_princ(s, "fresh@" REALM, NULL);
    list(s, NULL, &rows);
    CHECK_INT_EQ(rows.n, 2);
    CHECK(strstr(rows.text, "audit.retention") != NULL && strstr(rows.text, "|fresh@") != NULL);
    ck_store_close(s);
    fixture_down();
}

static void
list_filters(void)
{
    ck_audit_filter f;
    struct rows rows;
    ck_store *s;

    fixture_up();
    s = open_store("tester");
    add_princ(s, "a@" REALM, NULL);
    add_princ(s, "b@" REALM, NULL);
    CHECK_OK(ck_store_delete_principal(s, "a@" REALM));
    sql("UPDATE audit SET time = 1000 WHERE action = 'realm.create'");

    memset(&f, 0, sizeof(f));
    f.limit = 100;
    f.object = "a@" REALM;
    list(s, &f, &rows);
    CHECK_INT_EQ(rows.n, 2);
    CHECK(strcmp(rows.text, "tester|principal.add|a@" REALM "|kvno 1, 2 keys (aes256-cts-hmac-"
                            "sha1-96,aes128-cts-hmac-sha1-96), attributes +REQUIRES_PREAUTH\n"
                            "tester|principal.delete|a@" REALM "|\n") == 0);
    f.object = NULL;
    f.action = "principal.";
    list(s, &f, &rows);
    CHECK_INT_EQ(rows.n, 4); /* krbtgt, a, b added; a deleted */
    f.action = "principal.delete";
    list(s, &f, &rows);
    CHECK_INT_EQ(rows.n, 1);
    /* LIKE wildcards in a family are literal. */
    f.action = "%.";
    list(s, &f, &rows);
    CHECK_INT_EQ(rows.n, 0);
    f.action = NULL;
    f.since = 2000;
    list(s, &f, &rows);
    CHECK_INT_EQ(rows.n, 4);
    f.since = 0;
    f.limit = 2;
    list(s, &f, &rows);
    CHECK_INT_EQ(rows.n, 2);
    CHECK(rows.first_id < rows.last_id && strstr(rows.text, "principal.delete") != NULL);
    f.limit = 0;
    CHECK_INT_EQ(ck_store_audit_list(s, &f, collect, &rows), CK_ERR_INVAL);
    f.limit = CK_AUDIT_LIST_MAX + 1;
    CHECK_INT_EQ(ck_store_audit_list(s, &f, collect, &rows), CK_ERR_INVAL);
    ck_store_close(s);
    fixture_down();
}

/* The verbs added with the CLI's realm and rename commands name their actions. */
static void
rename_and_realm_modify(void)
{
    ck_audit_filter f;
    ck_realm_mod mod;
    struct rows rows;
    ck_store *s;

    fixture_up();
    s = open_store("tester");
    add_princ(s, "old@" REALM, NULL);
    CHECK_OK(ck_store_rename_principal(s, "old@" REALM, "new@" REALM));
    memset(&mod, 0, sizeof(mod));
    mod.mask = CK_REALM_MOD_MAX_LIFE;
    mod.max_life = 7200;
    CHECK_OK(ck_store_realm_modify(s, &mod));

    memset(&f, 0, sizeof(f));
    f.limit = 100;
    f.action = "principal.rename";
    list(s, &f, &rows);
    CHECK_INT_EQ(rows.n, 1);
    CHECK(strcmp(rows.text, "tester|principal.rename|old@" REALM "|to new@" REALM "\n") == 0);
    f.action = "realm.modify";
    list(s, &f, &rows);
    CHECK_INT_EQ(rows.n, 1);
    CHECK(strstr(rows.text, "tester|realm.modify|" REALM "|max_life 36000 -> 7200") != NULL);
    ck_store_close(s);
    fixture_down();
}

CK_TEST_MAIN("audit", CK_TEST_CASE(every_kind_of_change), CK_TEST_CASE(rollback_leaves_no_row),
             CK_TEST_CASE(skip_and_unnamed), CK_TEST_CASE(retention), CK_TEST_CASE(list_filters),
             CK_TEST_CASE(rename_and_realm_modify))
