/* `db dump` / `db load` (lib/store/dump.c, sqlite_dump.c): a dump loaded into a new database
 * dumps again to the same text (but for the header's time and change counter and so the
 * checksum), every record type included, the keys as the same ciphertext; and every damaged,
 * edited, reordered or mismatched dump is refused with nothing written. Some negative cases
 * re-seal the edited text with a correct SHA-256, so that the check behind the checksum (order,
 * counts, key binding) is what refuses it.
 *
 * PostgreSQL (the k9pgdump block at the end): SQLite -> PostgreSQL -> SQLite round trip, the
 * refusals against a PostgreSQL target (each leaves no table), a load that fails or is killed
 * half-way leaves nothing, the dump's snapshot. Run without CK_PG_URI, this binary re-executes
 * itself through interop/pg_run.sh (a throw-away server); no server is a failure. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <openssl/evp.h>

#include "ck_test.h"
#include "store_fixture.h"
#include "cablekey/store.h"
#include "cablekey/store_dump.h"
#include "cablekey/util.h"
#include "store/store_int.h"

#define REALM "DUMP.TEST"

static const int32_t enctypes[] = {CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96,
                                   CK_ENCTYPE_AES128_CTS_HMAC_SHA256_128};
#define N_ENCTYPES (sizeof(enctypes) / sizeof(enctypes[0]))

static const uint8_t pin_a[CK_DEVICE_SPKI_HASH_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};

static char path_dump[160], path_dump2[160], path_db2[160], path_bad[160];

/* ---- helpers ---- */

static char *
dupn(const char *p, size_t n)
{
    char *s = malloc(n + 1);

    if (s == NULL)
        abort();
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

/* text with the line `line` (and its newline) moved before the first line starting with
 * prefix. */
static char *
move_line(const char *text, const char *line, const char *prefix)
{
    size_t n = strlen(text), m = strlen(line);
    const char *at = strstr(text, line), *to = strstr(text, prefix);
    char *out = malloc(n + 1), *o = out;

    if (at == NULL || to == NULL || out == NULL || to > at)
        abort();
    memcpy(o, text, (size_t)(to - text));
    o += to - text;
    memcpy(o, line, m);
    o += m;
    *o++ = '\n';
    memcpy(o, to, (size_t)(at - to));
    o += at - to;
    memcpy(o, at + m + 1, n - (size_t)(at - text) - m - 1 + 1);
    return out;
}

static char *
slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n)
        abort();
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void
spit(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");

    if (f == NULL || fwrite(text, 1, len, f) != len)
        abort();
    fclose(f);
}

static bool
exists(const char *path)
{
    struct stat st;

    return lstat(path, &st) == 0;
}

static void
copy_file(const char *from, const char *to, mode_t mode)
{
    char *t = slurp(from);
    struct stat st;

    CHECK(t != NULL);
    CHECK(stat(from, &st) == 0);
    spit(to, t, (size_t)st.st_size);
    chmod(to, mode);
    free(t);
}

static void
dump_to(const char *dbpath, const char *out, ck_store_dump_info *info)
{
    ck_store *s = NULL;
    FILE *f;

    CHECK_OK(ck_store_open(dbpath, NULL, CK_STORE_READONLY, &s));
    f = fopen(out, "wb");
    CHECK(f != NULL);
    CHECK_OK(ck_store_dump(s, f, info));
    fclose(f);
    ck_store_close(s);
}

/* The text without its first and last lines (the header and the trailer). */
static char *
body(const char *text)
{
    const char *a = strchr(text, '\n'), *b = strstr(text, "\nend ");

    CHECK(a != NULL && b != NULL && b >= a);
    return dupn(a + 1, (size_t)(b - a));
}

/* Rewrites the trailer's sha256 to match the text before it. */
static void
reseal(char *text)
{
    char *end = strstr(text, "\nend "), *sum;
    uint8_t md[32];
    unsigned mdlen = 0;

    CHECK(end != NULL);
    end++;
    CHECK(EVP_Digest(text, (size_t)(end - text), md, &mdlen, EVP_sha256(), NULL) == 1);
    sum = strstr(end, "sha256=");
    CHECK(sum != NULL);
    sum += 7;
    for (size_t i = 0; i < 32; i++) {
        static const char hex[] = "0123456789abcdef";
        sum[2 * i] = hex[md[i] >> 4];
        sum[2 * i + 1] = hex[md[i] & 15];
    }
}

/* Loads text into a new database at path_db2 (with the source stash); returns the result and
 * checks that a refusal left nothing behind. */
static int
load_text(const char *text, const char *stash_path)
{
    int ret;

    spit(path_bad, text, strlen(text));
    ret = ck_store_load(path_db2, stash_path, path_bad, "test", NULL);
    if (ret != 0)
        CHECK(!exists(path_db2));
    return ret;
}

/* The line of text starting with prefix, as a new string without its newline. */
static char *
line_with(const char *text, const char *prefix)
{
    const char *p = text;

    while (p != NULL && *p != '\0') {
        const char *nl = strchr(p, '\n');
        if (strncmp(p, prefix, strlen(prefix)) == 0)
            return dupn(p, (size_t)(nl - p));
        p = nl != NULL ? nl + 1 : NULL;
    }
    return NULL;
}

/* Replaces the first occurrence of from by to (same text, new buffer). */
static char *
replace(const char *text, const char *from, const char *to)
{
    const char *p = strstr(text, from);
    size_t a, b = strlen(from), c = strlen(to), n = strlen(text);
    char *out;

    CHECK(p != NULL);
    if (p == NULL)
        abort();
    a = (size_t)(p - text);
    out = malloc(n - b + c + 1);
    memcpy(out, text, a);
    memcpy(out + a, to, c);
    memcpy(out + a + c, p + b, n - a - b + 1);
    return out;
}

/* ---- the realm ---- */

static void
add_princ(ck_store *s, const char *name, const char *pw)
{
    ck_db_principal *p = fixture_principal(name, pw, CK_ATTR_REQUIRES_PREAUTH, enctypes,
                                           N_ENCTYPES);

    p->expires = 2000000000;
    p->max_life = 3600;
    CHECK_OK(ck_store_create_principal(s, p));
    ck_db_principal_free(p);
}

/* Every record type: policy, principals with several kvnos and odd names, lockout state,
 * password history, devices active/revoked/pinned/commented; realm settings changed. */
static void
build_realm(void)
{
    ck_store *s;
    ck_policy pol;
    ck_realm_mod mod;
    ck_lockout_update u;
    ck_db_key *keys = NULL;
    size_t n = 0;

    store_fixture_up("dump", REALM, enctypes, N_ENCTYPES);
    snprintf(path_dump, sizeof(path_dump), "%s/a.dump", dir);
    snprintf(path_dump2, sizeof(path_dump2), "%s/b.dump", dir);
    snprintf(path_db2, sizeof(path_db2), "%s/b.db", dir);
    snprintf(path_bad, sizeof(path_bad), "%s/bad.dump", dir);
    s = fixture_open(db);
    memset(&mod, 0, sizeof(mod));
    mod.mask = CK_REALM_MOD_MAX_LIFE | CK_REALM_MOD_DEFAULT_ATTRIBUTES;
    mod.max_life = 7200;
    mod.default_attributes = CK_ATTR_REQUIRES_PREAUTH | CK_ATTR_DISALLOW_PROXIABLE;
    CHECK_OK(ck_store_realm_modify(s, &mod));
    memset(&pol, 0, sizeof(pol));
    ck_strlcpy(pol.name, "users", sizeof(pol.name));
    pol.min_length = 6;
    pol.history = 3;
    pol.max_failure = 5;
    pol.failure_interval = 600;
    CHECK_OK(ck_store_create_policy(s, &pol));
    ck_strlcpy(pol.name, "services", sizeof(pol.name));
    pol.history = 0;
    CHECK_OK(ck_store_create_policy(s, &pol));

    add_princ(s, "alice@" REALM, "alice pw 1");
    CHECK_OK(ck_store_set_principal_policy(s, "alice@" REALM, "users"));
    CHECK_OK(ck_store_change_password(s, "alice@" REALM, "alice pw 2", 10, CK_PW_ADMIN,
                                      1900000000, NULL));
    CHECK_OK(ck_store_change_password(s, "alice@" REALM, "alice pw 3", 10, CK_PW_ADMIN,
                                      1900000100, NULL));
    add_princ(s, "host/mta 1.example.com@" REALM, NULL);
    add_princ(s, "svc/100%-@" REALM, NULL);
    add_princ(s, "-@" REALM, NULL);
    CHECK_OK(ck_db_keys_make("host/mta 1.example.com@" REALM, NULL, 0, enctypes, N_ENCTYPES, 0,
                             &keys, &n));
    CHECK_OK(ck_store_rotate_keys(s, "host/mta 1.example.com@" REALM, keys, n, 0, NULL));
    ck_db_keys_free(keys, n);

    memset(&u, 0, sizeof(u));
    {
        ck_db_principal *p = NULL;
        CHECK_OK(ck_store_get_principal(s, "alice@" REALM, &p));
        u.name = "alice@" REALM;
        u.created = p->created;
        u.epoch = p->lockout.epoch;
        u.fails = 2;
        u.first_failed = 1900000200;
        u.last_failed = 1900000300;
        u.failure_interval = 600;
        ck_db_principal_free(p);
    }
    CHECK_OK(ck_store_record_auth(s, &u, 1));
    CHECK_OK(ck_store_unlock_principal(s, "svc/100%-@" REALM));

    CHECK_OK(fixture_add_device(s, "00:11:22:33:44:01", "host/mta 1.example.com@" REALM, pin_a,
                                "lab rack 3, \xc3\xa9tag\xc3\xa8re 2"));
    CHECK_OK(fixture_add_device(s, "00:11:22:33:44:02", "alice@" REALM, NULL, NULL));
    CHECK_OK(fixture_add_device(s, "00:11:22:33:44:03", "alice@" REALM, NULL, "-"));
    CHECK_OK(ck_store_set_device_state(s, "00:11:22:33:44:02", CK_DEVICE_REVOKED, NULL));
    ck_store_close(s);
    dump_to(db, path_dump, NULL);
}

/* The target's stash: a copy of the source's, where ck_store_load looks by default. */
static void
copy_stash(void)
{
    char target[200];

    snprintf(target, sizeof(target), "%s.stash", path_db2);
    unlink(target);
    copy_file(stash, target, 0600);
}

/* ---- tests ---- */

static void
round_trip(void)
{
    ck_store_dump_info a, b, l;
    char *t1, *t2, *b1, *b2;
    ck_store *s1 = NULL, *s2 = NULL;

    build_realm();
    dump_to(db, path_dump, &a);
    copy_stash();
    CHECK_OK(ck_store_load(path_db2, NULL, path_dump, "test", &l));
    dump_to(path_db2, path_dump2, &b);
    t1 = slurp(path_dump);
    t2 = slurp(path_dump2);
    /* Every record type is there. */
    CHECK_INT_EQ(a.policies, 2);
    CHECK_INT_EQ(a.principals, 5);
    CHECK(a.keys > 2 * 5);
    CHECK_INT_EQ(a.lockouts, 2);
    CHECK_INT_EQ(a.history, 2);
    CHECK_INT_EQ(a.devices, 3);
    CHECK(strstr(t1, "\nprincipal name=host/mta%201.example.com@" REALM " ") != NULL);
    CHECK(strstr(t1, "\nprincipal name=-@" REALM " ") != NULL);
    CHECK(strstr(t1, "name=svc/100%25-@" REALM " ") != NULL);
    CHECK(strstr(t1, "comment=%2D cert=-\n") != NULL);
    CHECK(strstr(t1, "\nlockout fail-count=2 last-failed=1900000300 ") != NULL);
    CHECK(strstr(t1, "\nlockout fail-count=0 last-failed=0 last-success=0 epoch=1\n") != NULL);
    CHECK(strstr(t1, "\nrealm enctypes=18,19 max-life=7200 ") != NULL);
    /* Identical but for the header and the trailer's checksum; the counts agree. */
    b1 = body(t1);
    b2 = body(t2);
    CHECK(strcmp(b1, b2) == 0);
    CHECK_INT_EQ(memcmp(&a.policies, &b.policies, 6 * sizeof(int64_t)), 0);
    CHECK_INT_EQ(memcmp(&a.policies, &l.policies, 6 * sizeof(int64_t)), 0);
    /* The loaded realm works through the ordinary API: the same clear keys, lockout, pins. */
    CHECK_OK(ck_store_open(db, NULL, CK_STORE_READONLY, &s1));
    CHECK_OK(ck_store_open(path_db2, NULL, CK_STORE_READONLY, &s2));
    {
        ck_db_principal *p1 = NULL, *p2 = NULL;
        ck_db_device *d = NULL;
        CHECK_OK(ck_store_get_principal(s1, "alice@" REALM, &p1));
        CHECK_OK(ck_store_get_principal(s2, "alice@" REALM, &p2));
        CHECK_INT_EQ(p1->n_keys, p2->n_keys);
        for (size_t i = 0; i < p1->n_keys && i < p2->n_keys; i++)
            CHECK_MEM_EQ(p1->keys[i].key.contents, p1->keys[i].key.length,
                         p2->keys[i].key.contents, p2->keys[i].key.length);
        CHECK_INT_EQ(p2->lockout.fail_count, 2);
        CHECK_INT_EQ(p2->lockout.max_failure, 5);
        CHECK(p2->policy != NULL && strcmp(p2->policy, "users") == 0);
        ck_db_principal_free(p1);
        ck_db_principal_free(p2);
        CHECK_OK(ck_store_get_device(s2, "00:11:22:33:44:01", &d));
        CHECK(d != NULL && d->has_pin && memcmp(d->spki_sha256, pin_a, 32) == 0);
        ck_db_device_free(d);
        /* History: a former password is refused in the loaded realm too. */
        {
            ck_policy pol;
            CHECK_OK(ck_store_get_policy(s2, "users", &pol));
            CHECK_INT_EQ(ck_store_check_password(s2, "alice@" REALM, &pol, "alice pw 2", 10),
                         CK_ERR_POLICY);
            CHECK_OK(ck_store_check_password(s2, "alice@" REALM, &pol, "alice pw 9", 10));
        }
    }
    ck_store_close(s1);
    ck_store_close(s2);
    {
        ck_store_check_result res;
        CHECK_OK(ck_store_check(path_db2, NULL, NULL, NULL, &res));
        CHECK_INT_EQ(res.history_keys, 2);
    }
    free(b1);
    free(b2);
    free(t1);
    free(t2);
    fixture_down();
}

static void
refusals(void)
{
    char *t, *bad, *line, *line2, other_stash[200];

    build_realm();
    t = slurp(path_dump);
    copy_stash();

    /* Sanity: the untouched text loads (then goes away again for the next cases). */
    CHECK_OK(load_text(t, NULL));
    {
        static const char *const suffix[] = {"", "-wal", "-shm"};
        char p[sizeof(path_db2) + 8];
        for (size_t i = 0; i < 3; i++) {
            snprintf(p, sizeof(p), "%s%s", path_db2, suffix[i]);
            unlink(p);
        }
    }

    /* Truncated: no trailer; a last line cut short; empty. */
    bad = dupn(t, (size_t)(strstr(t, "\nend ") - t + 1));
    CHECK_INT_EQ(load_text(bad, NULL), CK_ERR_INTEGRITY);
    CHECK(strstr(ck_error_context(), "truncated") != NULL);
    free(bad);
    bad = dupn(t, strlen(t) - 1);
    CHECK_INT_EQ(load_text(bad, NULL), CK_ERR_INTEGRITY);
    free(bad);
    CHECK_INT_EQ(load_text("", NULL), CK_ERR_INTEGRITY);

    /* One byte edited: a key's ciphertext, an attribute. */
    line = line_with(t, "key ");
    CHECK(line != NULL);
    {
        char *edited = dupn(line, strlen(line));
        char *d = strstr(edited, "data=") + 5;
        *d = *d == '0' ? '1' : '0';
        bad = replace(t, line, edited);
        /* The key is checked on its line, before the trailer, and does not decrypt; re-sealed
         * the same. */
        CHECK_INT_EQ(load_text(bad, NULL), CK_ERR_INTEGRITY);
        CHECK(strstr(ck_error_context(), "does not decrypt") != NULL);
        reseal(bad);
        CHECK_INT_EQ(load_text(bad, NULL), CK_ERR_INTEGRITY);
        CHECK(strstr(ck_error_context(), "does not decrypt") != NULL);
        free(bad);
        free(edited);
    }
    free(line);
    bad = replace(t, "attributes=128 ", "attributes=0 ");
    CHECK_INT_EQ(load_text(bad, NULL), CK_ERR_INTEGRITY);
    CHECK(strstr(ck_error_context(), "SHA-256 mismatch") != NULL);
    free(bad);

    /* A key row copied over another principal's, re-sealed: the encryption binds it to its
     * owner, kvno and enctype. */
    {
        char *from = line_with(strstr(t, "\nprincipal name=-@") + 1, "key ");
        char *to = line_with(strstr(t, "\nprincipal name=krbtgt/") + 1, "key ");
        CHECK(from != NULL && to != NULL && strcmp(from, to) != 0);
        bad = replace(t, to, from);
        reseal(bad);
        CHECK_INT_EQ(load_text(bad, NULL), CK_ERR_INTEGRITY);
        CHECK(strstr(ck_error_context(), "does not belong") != NULL);
        free(bad);
        free(from);
        free(to);
    }

    /* Reordered: two devices swapped, re-sealed; two principals' blocks likewise. */
    line = line_with(t, "device mac=00:11:22:33:44:01");
    line2 = line_with(t, "device mac=00:11:22:33:44:02");
    CHECK(line != NULL && line2 != NULL);
    {
        char *tmp = replace(t, line, "@@SWAP@@"), *tmp2 = replace(tmp, line2, line);
        bad = replace(tmp2, "@@SWAP@@", line2);
        /* The order is checked line by line, before the trailer; sealed or not. */
        CHECK_INT_EQ(load_text(bad, NULL), CK_ERR_DECODE);
        reseal(bad);
        CHECK_INT_EQ(load_text(bad, NULL), CK_ERR_DECODE);
        CHECK(strstr(ck_error_context(), "out of order") != NULL);
        free(tmp);
        free(tmp2);
        free(bad);
    }
    free(line2);
    /* A device before the principals; a key moved before its principal's line, which makes it
     * the previous principal's key: its encryption says whose it is. */
    bad = move_line(t, line, "principal ");
    reseal(bad);
    CHECK_INT_EQ(load_text(bad, NULL), CK_ERR_DECODE);
    CHECK(strstr(ck_error_context(), "out of order") != NULL);
    free(bad);
    {
        char *k = line_with(strstr(t, "\nprincipal name=svc/") + 1, "key ");
        CHECK(k != NULL);
        bad = move_line(t, k, "principal name=svc/");
        reseal(bad);
        CHECK_INT_EQ(load_text(bad, NULL), CK_ERR_INTEGRITY);
        CHECK(strstr(ck_error_context(), "does not belong") != NULL);
        free(bad);
        free(k);
    }
    free(line);

    /* Wrong version, unknown record, wrong checksum, counts, trailing data. */
    bad = replace(t, "version=2 ", "version=3 ");
    CHECK_INT_EQ(load_text(bad, NULL), CK_ERR_UNSUPPORTED);
    CHECK(strstr(ck_error_context(), "version 3") != NULL);
    free(bad);
    /* Format 1 (before the provisioning tables): no cert= on devices, no prov= count; it loads.
     * A format 2 header over format 1 records is refused. */
    {
        char *v1 = replace(t, "version=2 ", "version=1 "), *next;

        while (strstr(v1, " cert=-\n") != NULL) {
            next = replace(v1, " cert=-\n", "\n");
            free(v1);
            v1 = next;
        }
        next = replace(v1, " prov=0 ", " ");
        free(v1);
        v1 = next;
        reseal(v1);
        CHECK_OK(load_text(v1, NULL));
        unlink(path_db2);
        next = replace(v1, "version=1 ", "version=2 ");
        reseal(next);
        CHECK_INT_EQ(load_text(next, NULL), CK_ERR_DECODE);
        free(next);
        free(v1);
    }
    bad = replace(t, "\nrealm ", "\nrealm2 ");
    reseal(bad);
    CHECK_INT_EQ(load_text(bad, NULL), CK_ERR_DECODE);
    free(bad);
    line = line_with(t, "end ");
    {
        char *sum = strstr(line, "sha256=") + 7, *edited = dupn(line, strlen(line));
        edited[sum - line] = sum[0] == 'a' ? 'b' : 'a';
        bad = replace(t, line, edited);
        CHECK_INT_EQ(load_text(bad, NULL), CK_ERR_INTEGRITY);
        free(bad);
        free(edited);
    }
    free(line);
    bad = replace(t, " devices=3 ", " devices=2 ");
    CHECK_INT_EQ(load_text(bad, NULL), CK_ERR_INTEGRITY);
    CHECK(strstr(ck_error_context(), "counts") != NULL);
    free(bad);
    {
        size_t n = strlen(t);
        bad = malloc(n + 8);
        memcpy(bad, t, n);
        memcpy(bad + n, "extra\n", 7);
        CHECK_INT_EQ(load_text(bad, NULL), CK_ERR_DECODE);
        free(bad);
    }

    /* Another realm's stash (another master key): refused before anything is created. */
    snprintf(other_stash, sizeof(other_stash), "%s/other.db.stash", dir);
    {
        char other_db[200];
        snprintf(other_db, sizeof(other_db), "%s/other.db", dir);
        CHECK_OK(ck_store_init_realm(other_db, other_stash, REALM, enctypes, N_ENCTYPES, 0, 0));
    }
    CHECK_INT_EQ(load_text(t, other_stash), CK_ERR_INTEGRITY);
    CHECK(strstr(ck_error_context(), "master key") != NULL);

    /* An existing database is never touched. */
    {
        char *t1, *t2, *before, *after;
        dump_to(db, path_dump2, NULL);
        t1 = slurp(path_dump2);
        CHECK_INT_EQ(ck_store_load(db, NULL, path_dump, "test", NULL), CK_ERR_EXISTS);
        dump_to(db, path_dump2, NULL);
        t2 = slurp(path_dump2);
        before = body(t1);
        after = body(t2);
        CHECK(strcmp(before, after) == 0);
        free(before);
        free(after);
        free(t1);
        free(t2);
    }
    free(t);
    fixture_down();
}

/* More devices than one page of the backend's device listing: all of them, in order, once. */
static void
many_devices(void)
{
    ck_store_dump_info info, l;
    ck_store *s;
    char *t1, *t2, *b1, *b2;

    build_realm();
    s = fixture_open(db);
    for (int i = 0; i < 2100; i++) {
        char mac[CK_DEVICE_MAC_LEN + 1];
        snprintf(mac, sizeof(mac), "02:00:00:00:%02x:%02x", (i >> 8) & 0xff, i & 0xff);
        CHECK_OK(fixture_add_device(s, mac, "alice@" REALM, NULL, NULL));
    }
    ck_store_close(s);
    dump_to(db, path_dump, &info);
    CHECK_INT_EQ(info.devices, 2103);
    copy_stash();
    CHECK_OK(ck_store_load(path_db2, NULL, path_dump, "test", &l));
    CHECK_INT_EQ(l.devices, 2103);
    dump_to(path_db2, path_dump2, NULL);
    t1 = slurp(path_dump);
    t2 = slurp(path_dump2);
    b1 = body(t1);
    b2 = body(t2);
    CHECK(strcmp(b1, b2) == 0);
    free(b1);
    free(b2);
    free(t1);
    free(t2);
    fixture_down();
}

/* --replace: the live realm becomes the dump's (a principal added after the dump is gone, one
 * deleted is back), the change counter moves past both, no temporary is left; a dump under
 * another master key is refused and the live realm is unchanged. */
static void
replace_live(void)
{
    ck_store_restore_info r;
    ck_store_dump_info info;
    ck_store *s;
    ck_db_principal *p = NULL;
    uint64_t gen_before = 0;
    char other_db[200], other_dump[200], *t0, *t1, *b0, *b1;

    build_realm();
    s = fixture_open(db);
    add_princ(s, "late@" REALM, NULL);
    CHECK_OK(ck_store_delete_principal(s, "-@" REALM));
    CHECK_OK(ck_store_generation(s, &gen_before));
    ck_store_close(s);

    /* Another realm's dump (same name, other master key): refused, live realm untouched. */
    snprintf(other_db, sizeof(other_db), "%s/other.db", dir);
    snprintf(other_dump, sizeof(other_dump), "%s/other.dump", dir);
    CHECK_OK(ck_store_init_realm(other_db, NULL, REALM, enctypes, N_ENCTYPES, 0, 0));
    dump_to(other_db, other_dump, NULL);
    dump_to(db, path_dump2, NULL);
    t0 = slurp(path_dump2);
    CHECK_INT_EQ(ck_store_load_replace(db, NULL, other_dump, 0, "test", NULL, NULL),
                 CK_ERR_INTEGRITY);
    dump_to(db, path_dump2, NULL);
    t1 = slurp(path_dump2);
    b0 = body(t0);
    b1 = body(t1);
    CHECK(strcmp(b0, b1) == 0);
    free(b0);
    free(b1);
    free(t0);
    free(t1);

    CHECK_OK(ck_store_load_replace(db, NULL, path_dump, 0, "test", &info, &r));
    CHECK(r.generation > gen_before);
    s = fixture_open(db);
    CHECK_INT_EQ(ck_store_get_principal(s, "late@" REALM, &p), CK_ERR_NOTFOUND);
    CHECK_OK(ck_store_get_principal(s, "-@" REALM, &p));
    ck_db_principal_free(p);
    ck_store_close(s);
    dump_to(db, path_dump2, NULL);
    t0 = slurp(path_dump);
    t1 = slurp(path_dump2);
    b0 = body(t0);
    b1 = body(t1);
    CHECK(strcmp(b0, b1) == 0);
    free(b0);
    free(b1);
    free(t0);
    free(t1);
    {
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "ls '%s' | grep -q load-", dir);
        CHECK(system(cmd) != 0);
    }
    fixture_down();
}

/* Regression (found through --replace): a plain db restore of a realm whose principals use a
 * policy failed at COMMIT on the foreign key principal.policy -> policy. */
static void
restore_with_policies(void)
{
    char bak[200];
    ck_store_restore_info r;

    build_realm();
    snprintf(bak, sizeof(bak), "%s/backup.db", dir);
    CHECK_OK(ck_store_backup(db, bak, false, NULL));
    CHECK_OK(ck_store_restore(db, NULL, bak, 0, "test", &r));
    CHECK_INT_EQ(r.principals, 5);
    fixture_down();
}

/* ---- PostgreSQL (k9pgdump): SQLite -> PostgreSQL -> SQLite, and a load that fails or is
 * killed leaves no table behind. The server comes from interop/pg_run.sh (see main). ---- */

/* Runs sql as the test role (libpq's environment from pg_run.sh); the first cell of the result
 * into out (if not NULL). -1 on any failure. */
static int
pg_raw(const char *sql, char *out, size_t size)
{
    PGconn *c = PQconnectdb("");
    PGresult *r = NULL;
    int ok = 0;

    if (PQstatus(c) == CONNECTION_OK) {
        r = PQexec(c, sql);
        ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
        if (ok && out != NULL)
            ck_strlcpy(out, PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "", size);
    }
    if (!ok)
        fprintf(stderr, "  raw pg: %s", PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    return ok ? 0 : -1;
}

/* An empty database: the role owns it, hence its public schema. */
static void
pg_reset(void)
{
    if (pg_raw("SET client_min_messages = warning; DROP SCHEMA public CASCADE;"
               " CREATE SCHEMA public", NULL, 0) != 0)
        abort();
}

/* Tables in the database (0: nothing was left behind). */
static long
pg_tables(void)
{
    char v[32] = "";

    CHECK_OK(pg_raw("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", v,
                    sizeof(v)));
    return strtol(v, NULL, 10);
}

/* A fresh stash path for a realm made directly in PostgreSQL (init refuses an existing one). */
static char pg_stash_dir[64];

static const char *
stash_pg_tmp(void)
{
    static char path[128];
    static int n;

    snprintf(path, sizeof(path), "%s/s%d.stash", pg_stash_dir, ++n);
    return path;
}

static const char *
pg_uri(void)
{
    return getenv("CK_PG_URI");
}

/* CK_PG_URI with its user= replaced. */
static void
pg_uri_user(const char *user, char *out, size_t size)
{
    char *u = replace(pg_uri(), "user=cablekey", "user=");

    snprintf(out, size, "%s%s", u, user);
    free(u);
}

static void
pg_dump_to(const char *out, ck_store_dump_info *info)
{
    ck_store *s = NULL;
    FILE *f;

    CHECK_OK(ck_store_open(pg_uri(), stash, CK_STORE_READONLY, &s));
    if (s == NULL)
        return;
    f = fopen(out, "wb");
    CHECK(f != NULL);
    CHECK_OK(ck_store_dump(s, f, info));
    fclose(f);
    ck_store_close(s);
}

/* Loads text into the (empty) PostgreSQL database; a refusal must leave no table. */
static int
pg_load_text(const char *text, const char *stash_path)
{
    int ret;

    spit(path_bad, text, strlen(text));
    ret = ck_store_load(pg_uri(), stash_path, path_bad, "test", NULL);
    if (ret != 0)
        CHECK_INT_EQ(pg_tables(), 0);
    return ret;
}

static void
pg_round_trip(void)
{
    ck_store_dump_info a, b, l;
    char *t1, *t2, *t3, *b1, *b2, *b3, actions[256] = "";
    ck_store *s1 = NULL, *s2 = NULL;

    build_realm();
    pg_reset();
    dump_to(db, path_dump, &a);
    CHECK_OK(ck_store_load(pg_uri(), stash, path_dump, "test", &l));
    CHECK_INT_EQ(memcmp(&a.policies, &l.policies, 6 * sizeof(int64_t)), 0);
    pg_dump_to(path_dump2, &b);
    t1 = slurp(path_dump);
    t2 = slurp(path_dump2);
    CHECK(t1 != NULL && t2 != NULL);
    b1 = body(t1);
    b2 = body(t2);
    /* Every principal, key, policy, device, lockout and history row: byte for byte. */
    CHECK(strcmp(b1, b2) == 0);
    CHECK_INT_EQ(memcmp(&a.policies, &b.policies, 6 * sizeof(int64_t)), 0);
    /* The realm creation and the load are in the audit log, as one transaction made them. */
    CHECK_OK(pg_raw("SELECT string_agg(action, ',' ORDER BY id) FROM audit", actions,
                    sizeof(actions)));
    CHECK(strcmp(actions, "realm.create,db.load") == 0);

    /* The loaded realm works through the ordinary API: the same clear keys, lockout, pins,
     * password history. */
    CHECK_OK(ck_store_open(db, NULL, CK_STORE_READONLY, &s1));
    CHECK_OK(ck_store_open(pg_uri(), stash, 0, &s2));
    if (s1 != NULL && s2 != NULL) {
        ck_db_principal *p1 = NULL, *p2 = NULL;
        ck_db_device *d = NULL;
        ck_policy pol;

        CHECK_OK(ck_store_get_principal(s1, "host/mta 1.example.com@" REALM, &p1));
        CHECK_OK(ck_store_get_principal(s2, "host/mta 1.example.com@" REALM, &p2));
        CHECK(p1 != NULL && p2 != NULL && p1->n_keys == p2->n_keys && p2->kvno == 2);
        for (size_t i = 0; p1 != NULL && p2 != NULL && i < p1->n_keys && i < p2->n_keys; i++)
            CHECK_MEM_EQ(p1->keys[i].key.contents, p1->keys[i].key.length,
                         p2->keys[i].key.contents, p2->keys[i].key.length);
        ck_db_principal_free(p1);
        ck_db_principal_free(p2);
        p2 = NULL;
        CHECK_OK(ck_store_get_principal(s2, "alice@" REALM, &p2));
        CHECK(p2 != NULL && p2->lockout.fail_count == 2 && p2->lockout.max_failure == 5);
        ck_db_principal_free(p2);
        CHECK_OK(ck_store_get_device(s2, "00:11:22:33:44:01", &d));
        CHECK(d != NULL && d->has_pin && memcmp(d->spki_sha256, pin_a, 32) == 0);
        ck_db_device_free(d);
        CHECK_OK(ck_store_get_policy(s2, "users", &pol));
        CHECK_INT_EQ(ck_store_check_password(s2, "alice@" REALM, &pol, "alice pw 2", 10),
                     CK_ERR_POLICY);
        CHECK_OK(ck_store_check_password(s2, "alice@" REALM, &pol, "alice pw 9", 10));
        /* And takes writes: a kvno bump on the loaded realm. */
        CHECK_OK(ck_store_change_password(s2, "alice@" REALM, "alice pw 4", 10, CK_PW_ADMIN,
                                          1900000200, NULL));
    }
    ck_store_close(s1);
    ck_store_close(s2);

    /* Back: PostgreSQL (with that change) -> a new SQLite file -> the same text again. */
    pg_dump_to(path_dump2, NULL);
    copy_stash();
    CHECK_OK(ck_store_load(path_db2, NULL, path_dump2, "test", NULL));
    dump_to(path_db2, path_dump, NULL);
    free(t2);
    t2 = slurp(path_dump2);
    t3 = slurp(path_dump);
    CHECK(t2 != NULL && t3 != NULL);
    free(b2);
    b2 = body(t2);
    b3 = body(t3);
    CHECK(strcmp(b2, b3) == 0);
    CHECK(strcmp(b1, b2) != 0); /* the password change is in both */

    /* A second load into the realm that now exists: refused, the realm untouched. */
    CHECK_INT_EQ(ck_store_load(pg_uri(), stash, path_dump, "test", NULL), CK_ERR_EXISTS);
    CHECK(strstr(ck_error_context(), "new database only") != NULL);
    pg_dump_to(path_bad, NULL);
    free(t3);
    t3 = slurp(path_bad);
    free(b3);
    b3 = body(t3);
    CHECK(strcmp(b2, b3) == 0);
    free(b1);
    free(b2);
    free(b3);
    free(t1);
    free(t2);
    free(t3);
    fixture_down();
}

static void
pg_refusals(void)
{
    char *t, *bad, *line, uri[512], other_stash[200], other_db[200], v[32];

    build_realm();
    pg_reset();
    t = slurp(path_dump);
    CHECK(t != NULL);

    /* Caught by the first reading, before any connection: truncated, a byte changed. */
    bad = dupn(t, (size_t)(strstr(t, "\nend ") - t + 1));
    CHECK_INT_EQ(pg_load_text(bad, stash), CK_ERR_INTEGRITY);
    CHECK(strstr(ck_error_context(), "truncated") != NULL);
    free(bad);
    bad = dupn(t, strlen(t) / 2);
    CHECK_INT_EQ(pg_load_text(bad, stash), CK_ERR_INTEGRITY);
    free(bad);
    bad = replace(t, "attributes=128 ", "attributes=0 ");
    CHECK_INT_EQ(pg_load_text(bad, stash), CK_ERR_INTEGRITY);
    CHECK(strstr(ck_error_context(), "SHA-256 mismatch") != NULL);
    free(bad);

    /* Edited and re-sealed so that only the database can refuse it: a principal naming a
     * policy the dump does not hold, a device of a principal it does not hold. Refused inside
     * the load's transaction, which held the schema too: no table is left. */
    bad = replace(t, "policy=users ", "policy=ghost ");
    reseal(bad);
    CHECK_INT_EQ(pg_load_text(bad, stash), CK_ERR_DB);
    CHECK(strstr(ck_error_context(), "refused by the database") != NULL);
    CHECK(strstr(ck_error_context(), "nothing was loaded") != NULL);
    fprintf(stderr, "  # %s\n", ck_error_context());
    free(bad);
    line = line_with(t, "device mac=00:11:22:33:44:03");
    CHECK(line != NULL);
    {
        char *edited = replace(line, "principal=alice@", "principal=nobody@");
        bad = replace(t, line, edited);
        reseal(bad);
        CHECK_INT_EQ(pg_load_text(bad, stash), CK_ERR_DB);
        free(bad);
        free(edited);
    }
    free(line);

    /* Another master key: refused before anything is created. */
    snprintf(other_db, sizeof(other_db), "%s/other.db", dir);
    snprintf(other_stash, sizeof(other_stash), "%s/other.db.stash", dir);
    CHECK_OK(ck_store_init_realm(other_db, other_stash, REALM, enctypes, N_ENCTYPES, 0, 0));
    CHECK_INT_EQ(pg_load_text(t, other_stash), CK_ERR_INTEGRITY);
    CHECK(strstr(ck_error_context(), "master key") != NULL);
    /* PostgreSQL has no stash beside the database: one must be named. */
    CHECK_INT_EQ(pg_load_text(t, NULL), CK_ERR_INVAL);
    CHECK(strstr(ck_error_context(), "--stash") != NULL);

    /* An unknown scheme; a login refused (wrong password in PGPASSFILE, unknown user). */
    CHECK_INT_EQ(ck_store_load("mysql://db.example/cablekey", stash, path_dump, "test", NULL),
                 CK_ERR_UNSUPPORTED);
    CHECK(strstr(ck_error_context(), "unknown database scheme \"mysql\"") != NULL);
    pg_uri_user("ck_wrongpw", uri, sizeof(uri));
    CHECK_INT_EQ(ck_store_load(uri, stash, path_dump, "test", NULL), CK_ERR_PERM);
    CHECK(strstr(ck_error_context(), "refused login for user ck_wrongpw") != NULL);
    fprintf(stderr, "  # %s\n", ck_error_context());
    pg_uri_user("ck_nosuchuser", uri, sizeof(uri));
    CHECK_INT_EQ(ck_store_load(uri, stash, path_dump, "test", NULL), CK_ERR_PERM);
    CHECK(strstr(ck_error_context(), "refused login") != NULL);
    CHECK_INT_EQ(pg_tables(), 0);

    /* A schema of another version: opening, dumping and loading over it all refuse. */
    CHECK_OK(pg_load_text(t, stash));
    CHECK_OK(pg_raw("UPDATE schema_version SET version = 99", NULL, 0));
    {
        ck_store *s = NULL;
        CHECK_INT_EQ(ck_store_open(pg_uri(), stash, CK_STORE_READONLY, &s), CK_ERR_UNSUPPORTED);
        CHECK(strstr(ck_error_context(), "schema version 99") != NULL);
        CHECK(s == NULL);
    }
    CHECK_INT_EQ(ck_store_load(pg_uri(), stash, path_dump, "test", NULL), CK_ERR_EXISTS);
    CHECK_OK(pg_raw("SELECT count(*) FROM principal", v, sizeof(v)));
    CHECK(strcmp(v, "5") == 0);

    /* The SQLite file operations say what to use instead. */
    CHECK_INT_EQ(ck_store_backup(pg_uri(), path_bad, true, NULL), CK_ERR_UNSUPPORTED);
    CHECK(strstr(ck_error_context(), "db dump") != NULL);
    CHECK_INT_EQ(ck_store_restore(pg_uri(), stash, path_dump, 0, "test", NULL),
                 CK_ERR_UNSUPPORTED);
    CHECK(strstr(ck_error_context(), "db load") != NULL);
    CHECK_INT_EQ(ck_store_check(pg_uri(), NULL, NULL, NULL, NULL), CK_ERR_UNSUPPORTED);
    CHECK(strstr(ck_error_context(), "db dump") != NULL);
    CHECK_INT_EQ(ck_store_load_replace(pg_uri(), stash, path_dump, 0, "test", NULL, NULL),
                 CK_ERR_UNSUPPORTED);
    CHECK(strstr(ck_error_context(), "new, empty database") != NULL);
    free(t);
    fixture_down();
}

/* A feed that writes a policy and then fails (in-process), or then is killed (child). */
static int
feed_fail(void *arg, const struct ck_store_load_sink *sink, void *sink_be)
{
    ck_policy pol;

    memset(&pol, 0, sizeof(pol));
    ck_strlcpy(pol.name, "half", sizeof(pol.name));
    CHECK_OK(sink->policy(sink_be, &pol));
    if (arg != NULL)
        raise(SIGKILL);
    return ck_error_set(CK_ERR_DECODE, "feed failed");
}

/* open(load target) + init_schema + load_dump, as ck_store_load runs them. */
static int
pg_backend_load(void *kill)
{
    static const uint8_t check[] = {1, 2, 3};
    struct ck_store_mkey_row mk = {.kvno = 1, .enctype = CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96,
                                   .check = (uint8_t *)check, .check_len = sizeof(check)};
    const struct ck_store_ops *ops = &ck_store_postgresql_ops;
    ck_audit_retention rt = {.keep_rows = 10, .keep_days = 1};
    ck_realm_info realm;
    void *be = NULL;
    int ret;

    memset(&realm, 0, sizeof(realm));
    ck_strlcpy(realm.name, REALM, sizeof(realm.name));
    realm.enctypes[0] = enctypes[0];
    realm.n_enctypes = 1;
    realm.master_kvno = 1;
    if ((ret = ops->open(pg_uri(), CK_STORE_OPEN_LOAD_TARGET, true, &be)) != 0)
        return ret;
    if ((ret = ops->init_schema(be, &realm, &mk, 1700000000)) == 0)
        ret = ops->load_dump(be, &realm, &rt, feed_fail, kill);
    ops->close(be);
    return ret;
}

/* The schema and the records are one transaction: a load that fails after writing, or whose
 * process is killed while writing, leaves the database as empty as it was. */
static void
pg_load_atomic(void)
{
    pid_t pid;
    int status = 0;

    pg_reset();
    CHECK_INT_EQ(pg_backend_load(NULL), CK_ERR_DECODE);
    CHECK_INT_EQ(pg_tables(), 0);
    fflush(NULL);
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0)
        _exit(pg_backend_load((void *)1) == 0 ? 0 : 3);
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    /* The server notices the dead client and rolls back; until then its locks hide nothing
     * from a catalog read. */
    {
        long n = -1;
        for (int i = 0; i < 500 && n != 0; i++) {
            char v[32] = "";
            CHECK_OK(pg_raw("SELECT count(*) FROM pg_stat_activity WHERE application_name ="
                            " 'cablekey' AND state <> 'idle'", v, sizeof(v)));
            n = strtol(v, NULL, 10);
            if (n != 0)
                usleep(10000);
        }
        CHECK_INT_EQ(n, 0);
    }
    CHECK_INT_EQ(pg_tables(), 0);
    /* A plain init after both still works: nothing half-made is in the way. */
    CHECK_OK(ck_store_init_realm(pg_uri(), stash_pg_tmp(), REALM, enctypes, N_ENCTYPES, 0, 0));
    CHECK(pg_tables() > 0);
    pg_reset();
}

/* The dump's transaction sees one state: a commit by another connection during it is not
 * seen, neither the counter nor the record. */
struct snap_ctx {
    void *reader, *writer;
    uint64_t g1, g2;
    size_t names;
};

static int
count_name(const char *name, void *arg)
{
    (void)name;
    ((struct snap_ctx *)arg)->names++;
    return 0;
}

static int
snap_fn(void *arg)
{
    static uint8_t blob[] = {0, 1, 2, 3, 0xff};
    const struct ck_store_ops *ops = &ck_store_postgresql_ops;
    struct snap_ctx *sc = arg;
    struct ck_store_key_row k = {.kvno = 1, .enctype = enctypes[0], .salt_type = 3,
                                 .mkvno = 1, .key_enc = blob, .key_enc_len = sizeof(blob)};
    struct ck_store_princ_row row = {.name = (char *)"new@" REALM, .kvno = 1, .n_keys = 1,
                                     .keys = &k};
    int ret;

    if ((ret = ops->generation(sc->reader, &sc->g1)) != 0 ||
        (ret = ops->put(sc->writer, &row, CK_PUT_CREATE, 1700000000)) != 0 ||
        (ret = ops->generation(sc->reader, &sc->g2)) != 0)
        return ret;
    return ops->list(sc->reader, count_name, sc);
}

static void
pg_snapshot_consistent(void)
{
    const struct ck_store_ops *ops = &ck_store_postgresql_ops;
    struct snap_ctx sc;
    uint64_t g3 = 0;

    memset(&sc, 0, sizeof(sc));
    pg_reset();
    CHECK_OK(ck_store_init_realm(pg_uri(), stash_pg_tmp(), REALM, enctypes, N_ENCTYPES, 0, 0));
    CHECK_OK(ops->open(pg_uri(), CK_STORE_READONLY, false, &sc.reader));
    CHECK_OK(ops->open(pg_uri(), 0, false, &sc.writer));
    if (sc.reader != NULL && sc.writer != NULL) {
        CHECK_OK(ops->snapshot(sc.reader, snap_fn, &sc));
        CHECK_INT_EQ(sc.g1, sc.g2);
        CHECK_INT_EQ(sc.names, 1); /* krbtgt only */
        CHECK_OK(ops->generation(sc.reader, &g3));
        CHECK_INT_EQ(g3, sc.g1 + 1);
        /* A read-only snapshot refuses a write made through it. */
        {
            ck_policy pol;
            memset(&pol, 0, sizeof(pol));
            ck_strlcpy(pol.name, "p", sizeof(pol.name));
            CHECK_INT_EQ(ops->policy_put(sc.reader, &pol, true, 1), CK_ERR_PERM);
        }
    }
    ops->close(sc.reader);
    ops->close(sc.writer);
    pg_reset();
}

int
main(int argc, char **argv)
{
    static const struct ck_test_case cases[] = {
        CK_TEST_CASE(round_trip),         CK_TEST_CASE(refusals),
        CK_TEST_CASE(many_devices),       CK_TEST_CASE(replace_live),
        CK_TEST_CASE(restore_with_policies),
        /* k9pgdump */
        CK_TEST_CASE(pg_round_trip),      CK_TEST_CASE(pg_refusals),
        CK_TEST_CASE(pg_load_atomic),     CK_TEST_CASE(pg_snapshot_consistent),
    };
    int rc;

    (void)argc;
    /* PostgreSQL: run again under a throw-away server (as test_store_conformance does); a
     * second time without one is a failure, never a skip. */
    if (getenv("CK_PG_URI") == NULL) {
        if (getenv("CK_PG_REEXEC") != NULL) {
            printf("not ok 1 - store_dump: no PostgreSQL server (CK_PG_URI unset)\n");
            return 1;
        }
        setenv("CK_PG_REEXEC", "1", 1);
        execl("/bin/bash", "bash", "interop/pg_run.sh", argv[0], (char *)NULL);
        printf("not ok 1 - store_dump: cannot run interop/pg_run.sh (cwd must be tests/)\n");
        return 1;
    }
    snprintf(pg_stash_dir, sizeof(pg_stash_dir), "/tmp/ck-dumppg-XXXXXX");
    if (mkdtemp(pg_stash_dir) == NULL)
        abort();
    rc = ck_test_run("store_dump", cases, sizeof(cases) / sizeof(cases[0]));
    {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", pg_stash_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", pg_stash_dir);
    }
    return rc;
}
