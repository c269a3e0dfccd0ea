/* Master-key rotation (lib/store/mkey.c, the stash handling in store.c) on a SQLite realm: stash
 * format 2 and the format-1 stashes still read, hostile stash files, the whole rotation with
 * a second store standing for a running KDC (it re-reads its stash once, rate-limited, and
 * follows the new active key for its writes), the refusals (retire while in use, the active
 * key, a key written under a retired kvno), and every interrupted step resumed. The backend
 * ops themselves are in test_store_conformance (both backends). */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ck_test.h"
#include "store_fixture.h"
#include "cablekey/error.h"
#include "cablekey/store.h"
#include "cablekey/util.h"

static const int32_t enctypes[] = {CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96,
                                   CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96};
#define NE (sizeof(enctypes) / sizeof(enctypes[0]))
#define REALM "MKEY.TEST"

/* ---- helpers ---- */

static size_t
read_file(const char *path, uint8_t *buf, size_t size)
{
    FILE *f = fopen(path, "rb");
    size_t n;

    if (f == NULL)
        return 0;
    n = fread(buf, 1, size, f);
    fclose(f);
    return n;
}

static void
write_file(const char *path, const uint8_t *buf, size_t len, mode_t mode)
{
    int fd;

    unlink(path);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    CHECK(write(fd, buf, len) == (ssize_t)len);
    fchmod(fd, mode);
    close(fd);
}

static void
add_principal(ck_store *s, const char *name, const char *pw)
{
    ck_db_principal *p = fixture_principal(name, pw, 0, enctypes, NE);

    CHECK_OK(ck_store_create_principal(s, p));
    ck_db_principal_free(p);
}

/* A realm with three principals; carol has a policy remembering passwords and two changes,
 * so the password history holds keys too. */
static void
make_realm(void)
{
    ck_store *s;
    ck_policy pol;

    store_fixture_up("mkey", REALM, enctypes, NE);
    s = fixture_open(db);
    add_principal(s, "alice@" REALM, "alice password");
    add_principal(s, "bob@" REALM, NULL);
    add_principal(s, "carol@" REALM, "carol password 1");
    memset(&pol, 0, sizeof(pol));
    ck_strlcpy(pol.name, "remember", sizeof(pol.name));
    pol.history = 5;
    CHECK_OK(ck_store_create_policy(s, &pol));
    CHECK_OK(ck_store_set_principal_policy(s, "carol@" REALM, "remember"));
    CHECK_OK(ck_store_change_password(s, "carol@" REALM, "carol password 2", 16, CK_PW_ADMIN,
                                      1800000000, NULL));
    CHECK_OK(ck_store_change_password(s, "carol@" REALM, "carol password 3", 16, CK_PW_ADMIN,
                                      1800000100, NULL));
    ck_store_close(s);
}

/* The key bytes of a principal's first key, for comparison across re-encryptions. */
static void
first_key(ck_store *s, const char *name, ck_key *out)
{
    ck_db_principal *p = NULL;

    memset(out, 0, sizeof(*out));
    CHECK_OK(ck_store_get_principal(s, name, &p));
    if (p != NULL && p->n_keys > 0)
        CHECK_OK(ck_key_copy(out, &p->keys[0].key));
    ck_db_principal_free(p);
}

static bool
same_key(const ck_key *a, const ck_key *b)
{
    return a->enctype == b->enctype && a->length == b->length &&
           memcmp(a->contents, b->contents, a->length) == 0;
}

static size_t
stash_kvnos(uint32_t *kvnos, size_t max)
{
    uint8_t buf[2048];
    size_t len = read_file(stash, buf, sizeof(buf)), off = 8, n = 0;

    if (len < 8 || memcmp(buf, "CKMK\x00\x02", 6) != 0)
        return 0;
    for (unsigned i = 0; i < (unsigned)(buf[6] << 8 | buf[7]) && off + 10 <= len && n < max;
         i++) {
        uint16_t klen = (uint16_t)(buf[off + 8] << 8 | buf[off + 9]);
        kvnos[n++] = (uint32_t)buf[off] << 24 | (uint32_t)buf[off + 1] << 16 |
                     (uint32_t)buf[off + 2] << 8 | buf[off + 3];
        off += 10 + klen;
    }
    return n;
}

static void
check_db_ok(void)
{
    ck_store_check_result res;

    memset(&res, 0, sizeof(res));
    CHECK_OK(ck_store_check(db, stash, NULL, NULL, &res));
    CHECK(res.keys_checked);
    CHECK_INT_EQ(res.problems, 0);
}

/* ---- stash format ---- */

/* A new realm writes format 2; a format-1 stash (one key, no count) still opens the realm. */
static void
stash_v1_still_read(void)
{
    uint8_t buf[256], v1[256];
    size_t len, n = 0;
    ck_store *s = NULL;
    ck_key before, after;

    make_realm();
    s = fixture_open(db);
    first_key(s, "alice@" REALM, &before);
    ck_store_close(s);
    len = read_file(stash, buf, sizeof(buf));
    CHECK_INT_EQ(len, 8 + 10 + 32);
    CHECK(memcmp(buf, "CKMK\x00\x02\x00\x01", 8) == 0);
    /* Format 1: magic, version 1, then the one entry as format 2 stores it. */
    memcpy(v1, "CKMK\x00\x01", 6);
    n = 6;
    memcpy(v1 + n, buf + 8, len - 8);
    n += len - 8;
    write_file(stash, v1, n, 0600);
    CHECK_OK(ck_store_open(db, stash, 0, &s));
    if (s != NULL) {
        first_key(s, "alice@" REALM, &after);
        CHECK(same_key(&before, &after));
        ck_key_clear(&after);
    }
    ck_store_close(s);
    ck_key_clear(&before);
    fixture_down();
}

/* Damaged or hostile stash files: one clear error each, nothing opened, no crash. */
static void
stash_hostile(void)
{
    uint8_t good[256], bad[2048];
    size_t len;
    ck_store *s = NULL;

    make_realm();
    len = read_file(stash, good, sizeof(good));
    CHECK_INT_EQ(len, 50);
    struct {
        const char *what;
        size_t len;
        void (*edit)(uint8_t *b);
        int err;
    } cases[] = {
        {"truncated", 30, NULL, CK_ERR_DECODE},
        {"empty", 0, NULL, CK_ERR_DECODE},
        {"trailing byte", 51, NULL, CK_ERR_DECODE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memcpy(bad, good, len);
        bad[50] = 0;
        write_file(stash, bad, cases[i].len, 0600);
        CHECK_INT_EQ(ck_store_open(db, stash, 0, &s), cases[i].err);
        CHECK(s == NULL);
    }
    /* count 0, count 9, version 3, kvno 0, two entries with one kvno, a key of the wrong
     * length for its enctype, a count promising more than the file holds. */
    memcpy(bad, good, len);
    bad[7] = 0;
    write_file(stash, bad, len, 0600);
    CHECK_INT_EQ(ck_store_open(db, stash, 0, &s), CK_ERR_DECODE);
    bad[7] = 9;
    write_file(stash, bad, len, 0600);
    CHECK_INT_EQ(ck_store_open(db, stash, 0, &s), CK_ERR_DECODE);
    memcpy(bad, good, len);
    bad[5] = 3;
    write_file(stash, bad, len, 0600);
    CHECK_INT_EQ(ck_store_open(db, stash, 0, &s), CK_ERR_UNSUPPORTED);
    memcpy(bad, good, len);
    memset(bad + 8, 0, 4);
    write_file(stash, bad, len, 0600);
    CHECK_INT_EQ(ck_store_open(db, stash, 0, &s), CK_ERR_DECODE);
    memcpy(bad, good, len);
    bad[7] = 2;
    memcpy(bad + len, good + 8, len - 8);
    write_file(stash, bad, len + len - 8, 0600);
    CHECK_INT_EQ(ck_store_open(db, stash, 0, &s), CK_ERR_DECODE);
    CHECK(strstr(ck_error_context(), "twice") != NULL);
    memcpy(bad, good, len);
    bad[17] = 16; /* aes256 with a 16-byte key */
    write_file(stash, bad, 8 + 10 + 16, 0600);
    CHECK(ck_store_open(db, stash, 0, &s) != 0);
    memcpy(bad, good, len);
    bad[7] = 2;
    write_file(stash, bad, len, 0600);
    CHECK_INT_EQ(ck_store_open(db, stash, 0, &s), CK_ERR_DECODE);
    /* Too large: refused before parsing. */
    memset(bad, 'A', sizeof(bad));
    memcpy(bad, good, 8);
    write_file(stash, bad, sizeof(bad), 0600);
    CHECK_INT_EQ(ck_store_open(db, stash, 0, &s), CK_ERR_DECODE);
    CHECK(strstr(ck_error_context(), "too large") != NULL);
    /* A readable stash is refused whatever it holds. */
    write_file(stash, good, len, 0644);
    CHECK_INT_EQ(ck_store_open(db, stash, 0, &s), CK_ERR_PERM);
    /* The good one still opens. */
    write_file(stash, good, len, 0600);
    CHECK_OK(ck_store_open(db, stash, 0, &s));
    ck_store_close(s);
    fixture_down();
}

/* ---- the rotation ---- */

static int
count_progress(uint64_t done, void *arg)
{
    (*(int *)arg)++;
    CHECK(done > 0);
    return 0;
}

struct audit_seen {
    int rows, four;
};

static int
audit_cb(const ck_audit_entry *e, void *arg)
{
    struct audit_seen *a = arg;

    a->rows++;
    if (strcmp(e->detail, "4 keys to master key kvno 2") == 0)
        a->four++;
    return 0;
}

/* add -> activate -> reencrypt -> retire while a second store (a running KDC) serves: it keeps
 * reading every principal, re-reads its stash once when it meets the new kvno, and the keys it
 * sees never change. */
static void
full_rotation_online(void)
{
    ck_store *cli = NULL, *kdc = NULL;
    const ck_db_principal *rec = NULL;
    ck_key alice, bob, k;
    ck_mkey_status st;
    uint32_t kvno = 0, kvnos[8];
    uint64_t done = 0;
    bool created = false;
    size_t n = 0;
    int batches = 0;
    uint8_t old_stash[256];
    size_t old_len;

    make_realm();
    old_len = read_file(stash, old_stash, sizeof(old_stash));
    kdc = fixture_open(db);
    ck_store_cache_configure(kdc, 1000, 0);
    ck_store_mkey_set_reread_interval(kdc, 0);
    first_key(kdc, "alice@" REALM, &alice);
    first_key(kdc, "bob@" REALM, &bob);
    ck_store_cache_begin(kdc);
    CHECK_OK(ck_store_get_principal_cached(kdc, "alice@" REALM, &rec));

    cli = fixture_open(db);
    CHECK_OK(ck_store_mkey_status(cli, &st));
    CHECK_INT_EQ(st.active, 1);
    CHECK_INT_EQ(st.n, 1);
    CHECK_INT_EQ(st.pending, 0);
    CHECK(st.keys[0].in_db && st.keys[0].in_stash && st.keys[0].active);
    CHECK_INT_EQ(st.keys[0].keys, 6 * NE); /* krbtgt, alice, bob: 1 kvno; carol 3 */
    CHECK_INT_EQ(st.keys[0].history, 2);

    /* add: stash first (format 2, 0600, two keys), then the row; nothing uses it yet. */
    CHECK_OK(ck_store_mkey_add(cli, 0, &kvno, &created));
    CHECK_INT_EQ(kvno, 2);
    CHECK(created);
    n = stash_kvnos(kvnos, 8);
    CHECK_INT_EQ(n, 2);
    CHECK(n == 2 && kvnos[0] == 1 && kvnos[1] == 2);
    {
        struct stat sb;
        CHECK(stat(stash, &sb) == 0 && (sb.st_mode & 0777) == 0600);
    }
    /* A second add returns the same pending key. */
    CHECK_OK(ck_store_mkey_add(cli, 0, &kvno, &created));
    CHECK_INT_EQ(kvno, 2);
    CHECK(!created);
    CHECK_OK(ck_store_mkey_status(cli, &st));
    CHECK_INT_EQ(st.n, 2);
    CHECK_INT_EQ(st.active, 1);
    CHECK_INT_EQ(st.pending, 0);

    /* activate: new writes go under kvno 2, old keys still read. */
    CHECK_OK(ck_store_mkey_activate(cli, 0));
    CHECK_INT_EQ(ck_store_realm(cli)->master_kvno, 2);
    CHECK_OK(ck_store_mkey_status(cli, &st));
    CHECK_INT_EQ(st.active, 2);
    CHECK_INT_EQ(st.pending, 6 * NE + 2);
    /* The KDC writes a new principal: it follows the active key (re-reading its stash). */
    add_principal(kdc, "dave@" REALM, "dave password");
    CHECK_OK(ck_store_mkey_status(cli, &st));
    CHECK_INT_EQ(st.keys[1].keys, NE);
    CHECK_INT_EQ(ck_store_mkey_rereads(kdc), 1);
    /* Retiring now is refused: keys are still under kvno 1. The active one never. */
    CHECK_INT_EQ(ck_store_mkey_retire(cli, 1, NULL), CK_ERR_POLICY);
    CHECK(strstr(ck_error_context(), "reencrypt first") != NULL);
    CHECK_INT_EQ(ck_store_mkey_retire(cli, 2, NULL), CK_ERR_POLICY);

    /* reencrypt in batches of 4, the progress called after each; one audit row per batch,
     * counting its keys (a batch spans principals). */
    CHECK_OK(ck_store_mkey_reencrypt(cli, 4, count_progress, &batches, &done));
    CHECK_INT_EQ(done, 6 * NE + 2);
    CHECK_INT_EQ(batches, (6 * NE + 2 + 3) / 4);
    {
        ck_audit_filter f = {.since = 0, .object = NULL, .action = "mkey.reencrypt",
                             .limit = 100};
        struct audit_seen a = {0, 0};
        CHECK_OK(ck_store_audit_list(cli, &f, audit_cb, &a));
        CHECK_INT_EQ(a.rows, batches);
        CHECK_INT_EQ(a.four, (6 * NE + 2) / 4);
    }
    CHECK_OK(ck_store_mkey_status(cli, &st));
    CHECK_INT_EQ(st.pending, 0);
    CHECK_INT_EQ(st.keys[0].keys + st.keys[0].history, 0);
    CHECK_INT_EQ(st.keys[1].history, 2);
    /* The KDC's cache drops alice (change log) and reloads her under kvno 2: same key. */
    ck_store_cache_begin(kdc);
    CHECK_OK(ck_store_get_principal_cached(kdc, "alice@" REALM, &rec));
    CHECK(rec != NULL && rec->n_keys > 0 && same_key(&rec->keys[0].key, &alice));
    first_key(kdc, "bob@" REALM, &k);
    CHECK(same_key(&k, &bob));
    ck_key_clear(&k);
    /* The password history still works: an old password is refused as reused. */
    CHECK_INT_EQ(ck_store_change_password(cli, "carol@" REALM, "carol password 1", 16,
                                          CK_PW_ADMIN, 1800000200, NULL), CK_ERR_POLICY);

    /* retire: row first, then the stash without kvno 1. */
    CHECK_OK(ck_store_mkey_retire(cli, 0, &n));
    CHECK_INT_EQ(n, 1);
    n = stash_kvnos(kvnos, 8);
    CHECK(n == 1 && kvnos[0] == 2);
    CHECK_OK(ck_store_mkey_status(cli, &st));
    CHECK_INT_EQ(st.n, 1);
    CHECK_INT_EQ(st.active, 2);
    check_db_ok();
    /* The KDC, still open, and a fresh store read every key. */
    first_key(kdc, "bob@" REALM, &k);
    CHECK(same_key(&k, &bob));
    ck_key_clear(&k);
    ck_store_close(cli);
    cli = fixture_open(db);
    first_key(cli, "alice@" REALM, &k);
    CHECK(same_key(&k, &alice));
    ck_key_clear(&k);
    ck_store_close(cli);
    cli = NULL;
    /* The old stash cannot open the realm any more. */
    {
        char old[sizeof(stash) + 8];
        snprintf(old, sizeof(old), "%s.old", stash);
        write_file(old, old_stash, old_len, 0600);
        CHECK_INT_EQ(ck_store_open(db, old, 0, &cli), CK_ERR_INTEGRITY);
        CHECK(cli == NULL);
    }
    /* A second rotation: kvno 3. */
    cli = fixture_open(db);
    CHECK_OK(ck_store_mkey_add(cli, CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96, &kvno, &created));
    CHECK_INT_EQ(kvno, 3);
    CHECK_OK(ck_store_mkey_activate(cli, 3));
    CHECK_OK(ck_store_mkey_reencrypt(cli, 0, NULL, NULL, &done));
    CHECK_OK(ck_store_mkey_retire(cli, 0, NULL));
    first_key(kdc, "alice@" REALM, &k);
    CHECK(same_key(&k, &alice));
    ck_key_clear(&k);
    check_db_ok();
    ck_store_close(cli);
    ck_store_close(kdc);
    ck_key_clear(&alice);
    ck_key_clear(&bob);
    fixture_down();
}

/* A copy of the realm's stash for a store that stands for a KDC on another host (the CLI
 * rotates on this one: that host's stash changes only when the operator copies it over). */
static void
host_stash_copy(const char *path)
{
    uint8_t buf[4096];
    size_t len = read_file(stash, buf, sizeof(buf));

    CHECK(len > 0);
    write_file(path, buf, len, 0600);
}

/* A store meets a kvno its stash lacks: it re-reads once, then not again within the interval
 * while the file is unchanged (a row under a kvno nobody holds must not make every request
 * read a file); a stash replaced since is read again at once. */
static void
reread_rate_limited(void)
{
    char host[sizeof(stash) + 8];
    ck_store *cli, *kdc;
    ck_db_principal *p = NULL;
    uint32_t kvno = 0;

    make_realm();
    snprintf(host, sizeof(host), "%s.host", stash);
    host_stash_copy(host);
    CHECK_OK(ck_store_open(db, host, 0, &kdc));
    ck_store_mkey_set_reread_interval(kdc, INT64_C(1000000000));
    cli = fixture_open(db);
    /* Rotation 1 -> 2 here: the other host's first miss re-reads (none before), in vain. */
    CHECK_OK(ck_store_mkey_add(cli, 0, &kvno, NULL));
    CHECK_OK(ck_store_mkey_activate(cli, kvno));
    CHECK_OK(ck_store_mkey_reencrypt(cli, 0, NULL, NULL, NULL));
    CHECK_INT_EQ(ck_store_get_principal(kdc, "alice@" REALM, &p), CK_ERR_UNSUPPORTED);
    CHECK(strstr(ck_error_context(), "master kvno 2") != NULL);
    CHECK_INT_EQ(ck_store_mkey_rereads(kdc), 1);
    /* Its stash unchanged, within the interval: refused again, no file read. */
    CHECK_INT_EQ(ck_store_get_principal(kdc, "alice@" REALM, &p), CK_ERR_UNSUPPORTED);
    CHECK_INT_EQ(ck_store_mkey_rereads(kdc), 1);
    /* The operator copies the new stash over: read at once, the interval notwithstanding. */
    host_stash_copy(host);
    CHECK_OK(ck_store_get_principal(kdc, "alice@" REALM, &p));
    ck_db_principal_free(p);
    p = NULL;
    CHECK_INT_EQ(ck_store_mkey_rereads(kdc), 2);
    ck_store_close(kdc);
    unlink(host);
    /* A store on this host: rotation 2 -> 3 right after 1 -> 2 (the t_mkey case) costs no
     * refusal, since the CLI replaced the stash before any row moved to kvno 3. */
    kdc = fixture_open(db);
    ck_store_mkey_set_reread_interval(kdc, INT64_C(1000000000));
    CHECK_OK(ck_store_get_principal(kdc, "alice@" REALM, &p));
    ck_db_principal_free(p);
    p = NULL;
    CHECK_OK(ck_store_mkey_add(cli, 0, &kvno, NULL));
    CHECK_OK(ck_store_mkey_activate(cli, kvno));
    CHECK_OK(ck_store_mkey_reencrypt(cli, 0, NULL, NULL, NULL));
    CHECK_OK(ck_store_get_principal(kdc, "alice@" REALM, &p));
    ck_db_principal_free(p);
    CHECK_INT_EQ(ck_store_mkey_rereads(kdc), 1);
    ck_store_close(cli);
    ck_store_close(kdc);
    fixture_down();
}

/* A store that could not learn the new key keeps encrypting under the old kvno; once that kvno
 * is retired its write is refused cleanly: no key is ever stored under a key nobody has. */
static void
write_under_retired_refused(void)
{
    char host[sizeof(stash) + 8];
    ck_store *cli, *stale;
    ck_db_principal *p = NULL;
    ck_mkey_status st;
    uint32_t kvno = 0;

    make_realm();
    /* A KDC on another host: its stash is a copy the CLI's rotation here does not update. */
    snprintf(host, sizeof(host), "%s.host", stash);
    host_stash_copy(host);
    CHECK_OK(ck_store_open(db, host, 0, &stale));
    /* Its one re-read is used up now, before the new key exists. */
    CHECK_OK(ck_store_mkey_status(stale, &st));
    ck_store_mkey_set_reread_interval(stale, INT64_C(1000000000));
    cli = fixture_open(db);
    CHECK_OK(ck_store_mkey_add(cli, 0, &kvno, NULL));
    CHECK_OK(ck_store_mkey_activate(cli, kvno));
    CHECK_OK(ck_store_mkey_reencrypt(cli, 0, NULL, NULL, NULL));
    CHECK_OK(ck_store_mkey_retire(cli, 0, NULL));
    /* The stale store still encrypts under kvno 1, which is gone: refused, nothing written. */
    p = fixture_principal("erin@" REALM, NULL, 0, enctypes, NE);
    CHECK_INT_EQ(ck_store_create_principal(stale, p), CK_ERR_POLICY);
    CHECK(strstr(ck_error_context(), "master key kvno 1 is not in the database") != NULL);
    ck_db_principal_free(p);
    p = NULL;
    CHECK_INT_EQ(ck_store_get_principal(cli, "erin@" REALM, &p), CK_ERR_NOTFOUND);
    /* Once its host has the new stash, it follows kvno 2 and the write goes through. */
    host_stash_copy(host);
    add_principal(stale, "erin@" REALM, NULL);
    CHECK_OK(ck_store_mkey_status(cli, &st));
    CHECK_INT_EQ(st.pending, 0);
    check_db_ok();
    ck_store_close(stale);
    unlink(host);
    ck_store_close(cli);
    fixture_down();
}

/* ---- interrupted steps, resumed ---- */

static const char *stop_at;
static int stop_hits;

static int
stop_hook(const char *point, void *arg)
{
    (void)arg;
    if (stop_at != NULL && strcmp(point, stop_at) == 0) {
        stop_hits++;
        return CK_ERR_IO;
    }
    return 0;
}

static void
resume_after_each_point(void)
{
    ck_store *cli;
    ck_mkey_status st;
    uint32_t kvno = 0, kvnos[8];
    uint64_t done = 0;
    bool created = false;
    size_t n;

    make_realm();
    cli = fixture_open(db);
    ck_store_mkey_set_hook(stop_hook, NULL);

    /* Stopped between the stash and the row: the next add adopts the stash's key. */
    stop_at = "add-stash";
    CHECK_INT_EQ(ck_store_mkey_add(cli, 0, &kvno, &created), CK_ERR_IO);
    CHECK_INT_EQ(stop_hits, 1);
    CHECK_OK(ck_store_mkey_status(cli, &st));
    CHECK_INT_EQ(st.n, 2);
    CHECK(st.n == 2 && !st.keys[1].in_db && st.keys[1].in_stash);
    stop_at = NULL;
    CHECK_OK(ck_store_mkey_add(cli, 0, &kvno, &created));
    CHECK_INT_EQ(kvno, 2);
    CHECK(created);
    CHECK_OK(ck_store_mkey_status(cli, &st));
    CHECK(st.n == 2 && st.keys[1].in_db && st.keys[1].in_stash);
    CHECK_OK(ck_store_mkey_activate(cli, 2));

    /* Stopped after the first batch: part re-encrypted, the rest on the next run. */
    stop_at = "mid-reencrypt";
    CHECK_INT_EQ(ck_store_mkey_reencrypt(cli, 3, NULL, NULL, &done), CK_ERR_IO);
    CHECK_INT_EQ(done, 3);
    CHECK_OK(ck_store_mkey_status(cli, &st));
    CHECK_INT_EQ(st.pending, 6 * NE + 2 - 3);
    check_db_ok(); /* a half-done rotation is a consistent database */
    stop_at = NULL;
    CHECK_OK(ck_store_mkey_reencrypt(cli, 3, NULL, NULL, &done));
    CHECK_INT_EQ(done, 6 * NE + 2 - 3);

    /* Stopped between the row's deletion and the stash rewrite: retire again finishes. */
    stop_at = "retire-db";
    CHECK_INT_EQ(ck_store_mkey_retire(cli, 0, NULL), CK_ERR_IO);
    CHECK_OK(ck_store_mkey_status(cli, &st));
    CHECK(st.n == 2 && !st.keys[0].in_db && st.keys[0].in_stash);
    stop_at = NULL;
    CHECK_OK(ck_store_mkey_retire(cli, 0, &n));
    n = stash_kvnos(kvnos, 8);
    CHECK(n == 1 && kvnos[0] == 2);
    CHECK_OK(ck_store_mkey_status(cli, &st));
    CHECK_INT_EQ(st.n, 1);

    /* Stopped before retire: nothing changed. */
    stop_at = "before-retire";
    CHECK_OK(ck_store_mkey_add(cli, 0, &kvno, NULL));
    CHECK_OK(ck_store_mkey_activate(cli, kvno));
    CHECK_OK(ck_store_mkey_reencrypt(cli, 0, NULL, NULL, NULL));
    CHECK_INT_EQ(ck_store_mkey_retire(cli, 0, NULL), CK_ERR_IO);
    CHECK_OK(ck_store_mkey_status(cli, &st));
    CHECK_INT_EQ(st.n, 2);
    stop_at = NULL;
    CHECK_OK(ck_store_mkey_retire(cli, 0, NULL));
    check_db_ok();
    ck_store_mkey_set_hook(NULL, NULL);
    ck_store_close(cli);
    fixture_down();
}

/* Refusals: unknown kvnos, an added key missing from the stash, two rotations at once. */
static void
refusals(void)
{
    ck_store *cli;
    uint32_t kvno = 0;
    char lock[sizeof(stash) + 8];
    int fd;

    make_realm();
    cli = fixture_open(db);
    CHECK_INT_EQ(ck_store_mkey_activate(cli, 0), CK_ERR_NOTFOUND); /* nothing added */
    CHECK_INT_EQ(ck_store_mkey_activate(cli, 7), CK_ERR_NOTFOUND);
    CHECK_OK(ck_store_mkey_activate(cli, 1));                      /* already active */
    CHECK_INT_EQ(ck_store_mkey_retire(cli, 1, NULL), CK_ERR_POLICY);
    CHECK_INT_EQ(ck_store_mkey_retire(cli, 9, NULL), CK_ERR_NOTFOUND);
    CHECK_INT_EQ(ck_store_mkey_reencrypt(cli, CK_MKEY_BATCH_MAX + 1, NULL, NULL, NULL),
                 CK_ERR_LIMIT);
    CHECK_INT_EQ(ck_store_mkey_add(cli, 9999, &kvno, NULL), CK_ERR_UNSUPPORTED);
    /* Another process holds the rotation lock. */
    snprintf(lock, sizeof(lock), "%s.lock", stash);
    fd = open(lock, O_RDWR | O_CREAT, 0600);
    CHECK(fd >= 0 && flock(fd, LOCK_EX) == 0);
    CHECK_INT_EQ(ck_store_mkey_add(cli, 0, &kvno, NULL), CK_ERR_POLICY);
    CHECK(strstr(ck_error_context(), "another master-key rotation") != NULL);
    close(fd);
    /* Added, then the stash loses it (a KDC's copy restored from before): activate refuses,
     * and so does add, naming the way out. */
    {
        uint8_t before[256];
        size_t len = read_file(stash, before, sizeof(before));
        CHECK_OK(ck_store_mkey_add(cli, 0, &kvno, NULL));
        write_file(stash, before, len, 0600);
        CHECK_INT_EQ(ck_store_mkey_activate(cli, kvno), CK_ERR_NOTFOUND);
        CHECK_INT_EQ(ck_store_mkey_add(cli, 0, &kvno, NULL), CK_ERR_NOTFOUND);
        CHECK(strstr(ck_error_context(), "retire kvno 2") != NULL);
        /* Retiring the unused row recovers. */
        CHECK_OK(ck_store_mkey_retire(cli, 2, NULL));
        CHECK_OK(ck_store_mkey_add(cli, 0, &kvno, NULL));
        CHECK_INT_EQ(kvno, 2);
    }
    ck_store_close(cli);
    fixture_down();
}

/* An added key abandoned (retired before activation) and its kvno used again by the next add:
 * a store that still holds the abandoned key re-reads the stash when a row does not decrypt. */
static void
reused_kvno_reread(void)
{
    ck_store *cli, *kdc;
    ck_db_principal *p = NULL;
    ck_mkey_status st;
    uint8_t before[256];
    size_t len;
    uint32_t kvno = 0;

    make_realm();
    len = read_file(stash, before, sizeof(before));
    cli = fixture_open(db);
    kdc = fixture_open(db);
    ck_store_mkey_set_reread_interval(kdc, 0);
    CHECK_OK(ck_store_mkey_add(cli, 0, &kvno, NULL));
    CHECK_INT_EQ(kvno, 2);
    CHECK_OK(ck_store_mkey_status(kdc, &st)); /* the KDC now holds this kvno 2 */
    write_file(stash, before, len, 0600);     /* the add is abandoned ... */
    CHECK_OK(ck_store_mkey_retire(cli, 2, NULL));
    CHECK_OK(ck_store_mkey_add(cli, 0, &kvno, NULL)); /* ... and kvno 2 made again */
    CHECK_INT_EQ(kvno, 2);
    CHECK_OK(ck_store_mkey_activate(cli, 2));
    CHECK_OK(ck_store_mkey_reencrypt(cli, 0, NULL, NULL, NULL));
    CHECK_OK(ck_store_get_principal(kdc, "alice@" REALM, &p));
    ck_db_principal_free(p);
    ck_store_close(cli);
    ck_store_close(kdc);
    fixture_down();
}

CK_TEST_MAIN("mkey", CK_TEST_CASE(stash_v1_still_read), CK_TEST_CASE(stash_hostile),
             CK_TEST_CASE(full_rotation_online), CK_TEST_CASE(reread_rate_limited),
             CK_TEST_CASE(write_under_retired_refused), CK_TEST_CASE(resume_after_each_point),
             CK_TEST_CASE(refusals), CK_TEST_CASE(reused_kvno_reread))
