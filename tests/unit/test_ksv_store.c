/* The keying server's store (lib/ksvstore): every function, SPI uniqueness, the epoch rules, keys
 * at rest, the master key file, a second connection, the load time of a large group, and the
 * atomicity of a group commit under kill -9 (with a control run that proves the check sees a
 * torn batch). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "cablekey/ksv_store.h"
#include "cablekey/util.h"
#include "ck_test.h"
#include "ksvstore/ksvstore_int.h"

static char tmpdir[64];

static void
tmp_path(char *buf, size_t size, const char *name)
{
    char side[300];

    if (tmpdir[0] == '\0') {
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/ck-ksvstore-XXXXXX");
        if (mkdtemp(tmpdir) == NULL)
            abort();
    }
    snprintf(buf, size, "%s/%s", tmpdir, name);
    unlink(buf);
    snprintf(side, sizeof(side), "%s.key", buf);
    unlink(side);
    snprintf(side, sizeof(side), "%s-wal", buf);
    unlink(side);
    snprintf(side, sizeof(side), "%s-shm", buf);
    unlink(side);
}

static struct ck_ksv_store *
fresh(const char *name, char *path, size_t size)
{
    struct ck_ksv_store *st = NULL;

    tmp_path(path, size, name);
    if (ck_ksv_store_open(path, NULL, true, &st) != 0) {
        fprintf(stderr, "open %s: %s\n", path, ck_error_context());
        abort();
    }
    return st;
}

static bool
mem_contains(const uint8_t *hay, size_t n, const uint8_t *needle, size_t m)
{
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(hay + i, needle, m) == 0)
            return true;
    return false;
}

/* Reads a whole file (the database, for the at-rest checks). */
static uint8_t *
slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    long n;

    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    if (buf != NULL && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static mode_t
file_mode(const char *path)
{
    struct stat sb;

    if (stat(path, &sb) != 0)
        return (mode_t)-1;
    return sb.st_mode & 07777;
}

/* ---- open, files, master key -------------------------------------------------------------- */

static void
test_open_create(void)
{
    char path[256], key[300], uri[300];
    struct ck_ksv_store *st = NULL;
    size_t len = 0;
    uint8_t *k;

    st = fresh("open.db", path, sizeof(path));
    snprintf(key, sizeof(key), "%s.key", path);
    CHECK_INT_EQ(file_mode(path), 0600);
    CHECK_INT_EQ(file_mode(key), 0600);
    k = slurp(key, &len);
    CHECK(k != NULL && len == 32);
    free(k);
    /* Crash safety rests on these two. */
    {
        sqlite3_stmt *q = NULL;
        CHECK(sqlite3_prepare_v2(st->db, "PRAGMA journal_mode", -1, &q, NULL) == SQLITE_OK);
        CHECK(sqlite3_step(q) == SQLITE_ROW &&
              strcmp((const char *)sqlite3_column_text(q, 0), "wal") == 0);
        sqlite3_finalize(q);
        CHECK(sqlite3_prepare_v2(st->db, "PRAGMA synchronous", -1, &q, NULL) == SQLITE_OK);
        CHECK(sqlite3_step(q) == SQLITE_ROW && sqlite3_column_int(q, 0) == 2); /* FULL */
        sqlite3_finalize(q);
    }
    ck_ksv_store_close(st);
    st = NULL;
    /* Reopen, with and without the scheme, without create. */
    CHECK_OK(ck_ksv_store_open(path, NULL, false, &st));
    ck_ksv_store_close(st);
    st = NULL;
    snprintf(uri, sizeof(uri), "sqlite:%s", path);
    CHECK_OK(ck_ksv_store_open(uri, key, false, &st));
    ck_ksv_store_close(st);
    st = NULL;
    /* create on an existing store opens it. */
    CHECK_OK(ck_ksv_store_open(path, NULL, true, &st));
    ck_ksv_store_close(st);
    st = NULL;

    /* A creation killed before its first commit: an empty file, maybe a key file. */
    tmp_path(path, sizeof(path), "empty.db");
    CHECK_OK(ck_file_write_atomic(path, "", 0, 0));
    CHECK_INT_EQ(ck_ksv_store_open(path, NULL, false, &st), CK_ERR_NOTFOUND); /* no key */
    CHECK_OK(ck_ksv_store_open(path, NULL, true, &st));
    ck_ksv_store_close(st);
    st = NULL;
    CHECK_OK(ck_ksv_store_open(path, NULL, false, &st));
    ck_ksv_store_close(st);
    st = NULL;

    /* A creation that fails (no directory for the key file) leaves nothing behind. */
    tmp_path(path, sizeof(path), "nokey.db");
    CHECK(ck_ksv_store_open(path, "/nonexistent-ck-dir/k", true, &st) != 0);
    CHECK(st == NULL);
    CHECK(access(path, F_OK) != 0);

    tmp_path(path, sizeof(path), "absent.db");
    CHECK_INT_EQ(ck_ksv_store_open(path, NULL, false, &st), CK_ERR_NOTFOUND);
    CHECK(st == NULL);
    CHECK_INT_EQ(ck_ksv_store_open("", NULL, true, &st), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_ksv_store_open("sqlite:", NULL, true, &st), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_ksv_store_open(NULL, NULL, true, &st), CK_ERR_INVAL);
    ck_ksv_store_close(NULL);
}

static void
test_not_a_store(void)
{
    char path[256], key[300];
    struct ck_ksv_store *st = NULL;
    sqlite3 *db = NULL;

    /* Someone else's SQLite file (0600, a key file beside it) is refused and left alone. */
    tmp_path(path, sizeof(path), "foreign.db");
    snprintf(key, sizeof(key), "%s.key", path);
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    CHECK(sqlite3_exec(db, "CREATE TABLE t(x)", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);
    chmod(path, 0600);
    CHECK_OK(ck_file_write_atomic(key, "0123456789abcdef0123456789abcdef", 32, 0));
    CHECK_INT_EQ(ck_ksv_store_open(path, NULL, true, &st), CK_ERR_DB);
    CHECK(st == NULL);
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    CHECK(sqlite3_exec(db, "SELECT x FROM t", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);
}

static void
test_key_file_mode(void)
{
    char path[256], key[300];
    struct ck_ksv_store *st = fresh("mode.db", path, sizeof(path));
    static const mode_t bad[] = {0640, 0604, 0644, 0660};

    ck_ksv_store_close(st);
    st = NULL;
    snprintf(key, sizeof(key), "%s.key", path);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(chmod(key, bad[i]) == 0);
        CHECK_INT_EQ(ck_ksv_store_open(path, NULL, false, &st), CK_ERR_PERM);
        CHECK(st == NULL);
    }
    CHECK(chmod(key, 0400) == 0); /* stricter is fine */
    CHECK_OK(ck_ksv_store_open(path, NULL, false, &st));
    ck_ksv_store_close(st);
    st = NULL;
    CHECK(chmod(key, 0600) == 0);
    /* The database itself, too. */
    CHECK(chmod(path, 0644) == 0);
    CHECK_INT_EQ(ck_ksv_store_open(path, NULL, false, &st), CK_ERR_PERM);
    CHECK(chmod(path, 0600) == 0);
    /* No key file: not found, and the database is left alone. */
    CHECK(unlink(key) == 0);
    CHECK_INT_EQ(ck_ksv_store_open(path, NULL, false, &st), CK_ERR_NOTFOUND);
    CHECK(file_mode(path) == 0600);
    /* A key file of the wrong size. */
    CHECK_OK(ck_file_write_atomic(key, "short", 5, 0));
    CHECK_INT_EQ(ck_ksv_store_open(path, NULL, false, &st), CK_ERR_DECODE);
    CHECK(st == NULL);
}

static void
test_wrong_master_key(void)
{
    char a[256], b[256], bkey[300], akey[300];
    struct ck_ksv_store *st = fresh("a.db", a, sizeof(a)), *sb = NULL;
    struct ck_ksv_sa_row row = {0};
    struct ck_ksv_sa_row *rows = NULL;
    uint8_t priv[32], tmp[32];
    size_t n = 0;

    snprintf(row.src, sizeof(row.src), "n1");
    snprintf(row.dst, sizeof(row.dst), "n2");
    snprintf(row.policy, sizeof(row.policy), "p");
    row.enc_key_len = 16;
    memset(row.enc_key, 0x11, 16);
    CHECK_OK(ck_ksv_store_sa_put(st, &row));
    CHECK_OK(ck_ksv_store_signing_key(st, priv));
    ck_ksv_store_close(st);
    st = NULL;
    sb = fresh("b.db", b, sizeof(b));
    ck_ksv_store_close(sb);
    snprintf(bkey, sizeof(bkey), "%s.key", b);
    snprintf(akey, sizeof(akey), "%s.key", a);
    /* Another store's key file: refused at open. */
    CHECK_INT_EQ(ck_ksv_store_open(a, bkey, false, &st), CK_ERR_INTEGRITY);
    CHECK(st == NULL);
    /* A store whose check value passes but whose key rows were sealed under another key (the
     * check row copied from b): every key read fails integrity, never returns garbage. */
    {
        sqlite3 *db = NULL;
        char sql[600];

        CHECK(sqlite3_open(a, &db) == SQLITE_OK);
        snprintf(sql, sizeof(sql),
                 "ATTACH '%s' AS b; UPDATE master_check SET sealed = "
                 "(SELECT sealed FROM b.master_check WHERE id = 1); DETACH b", b);
        CHECK(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK);
        sqlite3_close(db);
        CHECK_OK(ck_ksv_store_open(a, bkey, false, &st));
        CHECK_INT_EQ(ck_ksv_store_sa_list(st, NULL, &rows, &n), CK_ERR_INTEGRITY);
        CHECK(rows == NULL && n == 0);
        CHECK_INT_EQ(ck_ksv_store_signing_key(st, tmp), CK_ERR_INTEGRITY);
        ck_ksv_store_close(st);
        st = NULL;
    }
    (void)akey;
}

/* ---- signing key ---------------------------------------------------------------------------- */

static void
test_signing_key(void)
{
    char path[256];
    struct ck_ksv_store *st = fresh("sign.db", path, sizeof(path));
    uint8_t k1[32], k2[32], zero[32] = {0};
    uint8_t *raw;
    size_t len = 0;

    CHECK_OK(ck_ksv_store_signing_key(st, k1));
    CHECK(memcmp(k1, zero, 32) != 0);
    CHECK_OK(ck_ksv_store_signing_key(st, k2));
    CHECK_MEM_EQ(k1, 32, k2, 32);
    ck_ksv_store_close(st);
    CHECK_OK(ck_ksv_store_open(path, NULL, false, &st));
    CHECK_OK(ck_ksv_store_signing_key(st, k2));
    CHECK_MEM_EQ(k1, 32, k2, 32);
    ck_ksv_store_close(st);
    /* Not in the file in the clear (database and WAL checkpointed by the close). */
    raw = slurp(path, &len);
    CHECK(raw != NULL && len > 0);
    CHECK(!mem_contains(raw, len, k1, 32));
    free(raw);
}

/* ---- link SAs ------------------------------------------------------------------------------- */

static void
sa_fill(struct ck_ksv_sa_row *r, const char *src, const char *dst, uint32_t gen, uint8_t fill)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->src, sizeof(r->src), "%s", src);
    snprintf(r->dst, sizeof(r->dst), "%s", dst);
    snprintf(r->policy, sizeof(r->policy), "esp-gcm");
    r->enc_key_len = 36;
    r->auth_key_len = 20;
    for (size_t i = 0; i < 36; i++)
        r->enc_key[i] = (uint8_t)(fill + i);
    for (size_t i = 0; i < 20; i++)
        r->auth_key[i] = (uint8_t)(fill ^ (0x80 + i));
    r->created = 1000;
    r->expires = 4600;
    r->generation = gen;
}

static void
test_sa(void)
{
    char path[256];
    struct ck_ksv_store *st = fresh("sa.db", path, sizeof(path));
    struct ck_ksv_sa_row a, b, c, d, *rows = NULL;
    size_t n = 0;

    sa_fill(&a, "n1", "n2", 1, 0x10);
    sa_fill(&b, "n2", "n1", 1, 0x20);
    sa_fill(&c, "n3", "n4", 1, 0x30);
    CHECK_OK(ck_ksv_store_sa_put(st, &a));
    CHECK_OK(ck_ksv_store_sa_put(st, &b));
    CHECK_OK(ck_ksv_store_sa_put(st, &c));
    CHECK(a.id > 0 && b.id > a.id && c.id > b.id);
    CHECK(a.spi >= 256 && a.spi <= CK_KSV_STORE_SPI_MAX);
    CHECK(b.spi >= 256 && c.spi >= 256);

    CHECK_OK(ck_ksv_store_sa_list(st, "n1", &rows, &n));
    CHECK_INT_EQ(n, 2);
    if (n == 2) {
        CHECK_INT_EQ(rows[0].id, a.id); /* oldest first */
        CHECK_INT_EQ(rows[0].spi, a.spi);
        CHECK(strcmp(rows[0].src, "n1") == 0 && strcmp(rows[0].dst, "n2") == 0);
        CHECK(strcmp(rows[0].policy, "esp-gcm") == 0);
        CHECK_MEM_EQ(rows[0].enc_key, rows[0].enc_key_len, a.enc_key, 36);
        CHECK_MEM_EQ(rows[0].auth_key, rows[0].auth_key_len, a.auth_key, 20);
        CHECK_INT_EQ(rows[0].created, 1000);
        CHECK_INT_EQ(rows[0].expires, 4600);
        CHECK_INT_EQ(rows[0].generation, 1);
        CHECK_INT_EQ(rows[1].id, b.id);
        CHECK_MEM_EQ(rows[1].enc_key, rows[1].enc_key_len, b.enc_key, 36);
    }
    ck_ksv_store_sa_free(rows, n);
    CHECK_OK(ck_ksv_store_sa_list(st, NULL, &rows, &n));
    CHECK_INT_EQ(n, 3);
    ck_ksv_store_sa_free(rows, n);
    CHECK_OK(ck_ksv_store_sa_list(st, "nobody", &rows, &n));
    CHECK_INT_EQ(n, 0);
    ck_ksv_store_sa_free(rows, n);

    /* A chosen SPI: taken for this receiver, free for another; out of range. */
    sa_fill(&d, "n5", "n2", 1, 0x40);
    d.spi = a.spi;
    CHECK_INT_EQ(ck_ksv_store_sa_put(st, &d), CK_ERR_EXISTS);
    CHECK_INT_EQ(d.id, 0);
    sa_fill(&d, "n5", "n9", 1, 0x40);
    d.spi = a.spi;
    CHECK_OK(ck_ksv_store_sa_put(st, &d));
    CHECK_INT_EQ(d.spi, a.spi);
    sa_fill(&d, "n5", "n8", 1, 0x40);
    d.spi = 255;
    CHECK_INT_EQ(ck_ksv_store_sa_put(st, &d), CK_ERR_INVAL);
    d.spi = CK_KSV_STORE_GROUP_SPI_MIN;
    CHECK_INT_EQ(ck_ksv_store_sa_put(st, &d), CK_ERR_INVAL);
    /* The same generation of a link twice; the next generation is a new row. */
    sa_fill(&d, "n1", "n2", 1, 0x50);
    CHECK_INT_EQ(ck_ksv_store_sa_put(st, &d), CK_ERR_EXISTS);
    sa_fill(&d, "n1", "n2", 2, 0x50);
    CHECK_OK(ck_ksv_store_sa_put(st, &d));
    CHECK(d.spi != a.spi);
    /* Bad rows. */
    sa_fill(&d, "", "n2", 3, 0);
    CHECK_INT_EQ(ck_ksv_store_sa_put(st, &d), CK_ERR_INVAL);
    sa_fill(&d, "n1", "n2", 3, 0);
    memset(d.dst, 'x', sizeof(d.dst));
    CHECK_INT_EQ(ck_ksv_store_sa_put(st, &d), CK_ERR_INVAL);
    sa_fill(&d, "n1", "n2", 3, 0);
    d.enc_key_len = CK_KSV_STORE_KEY + 1;
    CHECK_INT_EQ(ck_ksv_store_sa_put(st, &d), CK_ERR_INVAL);

    CHECK_OK(ck_ksv_store_sa_delete(st, a.id));
    CHECK_INT_EQ(ck_ksv_store_sa_delete(st, a.id), CK_ERR_NOTFOUND);
    CHECK_OK(ck_ksv_store_sa_list(st, "n2", &rows, &n));
    CHECK_INT_EQ(n, 2); /* b (n2 -> n1) and generation 2 of n1 -> n2 */
    ck_ksv_store_sa_free(rows, n);
    ck_ksv_store_sa_free(NULL, 0);
    ck_ksv_store_close(st);
}

static void
test_sa_key_at_rest(void)
{
    char path[256];
    struct ck_ksv_store *st = fresh("rest.db", path, sizeof(path));
    struct ck_ksv_sa_row a, b, *rows = NULL;
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    size_t n = 0;
    int seen = 0;

    sa_fill(&a, "n1", "n2", 1, 0x61);
    sa_fill(&b, "n2", "n1", 1, 0x72);
    CHECK_OK(ck_ksv_store_sa_put(st, &a));
    CHECK_OK(ck_ksv_store_sa_put(st, &b));
    /* The raw column, read past the store: neither key appears in it. */
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    CHECK(sqlite3_prepare_v2(db, "SELECT sealed FROM sa", -1, &q, NULL) == SQLITE_OK);
    while (sqlite3_step(q) == SQLITE_ROW) {
        const uint8_t *p = sqlite3_column_blob(q, 0);
        size_t len = (size_t)sqlite3_column_bytes(q, 0);

        CHECK(len == 2 + 36 + 20 + 28);
        CHECK(!mem_contains(p, len, a.enc_key, 16));
        CHECK(!mem_contains(p, len, a.auth_key, 16));
        CHECK(!mem_contains(p, len, b.enc_key, 16));
        CHECK(!mem_contains(p, len, b.auth_key, 16));
        seen++;
    }
    sqlite3_finalize(q);
    CHECK_INT_EQ(seen, 2);
    /* a's sealed keys copied onto b's row: b no longer opens. */
    CHECK(sqlite3_exec(db, "UPDATE sa SET sealed = (SELECT sealed FROM sa WHERE src = 'n1')"
                           " WHERE src = 'n2'", NULL, NULL, NULL) == SQLITE_OK);
    CHECK_INT_EQ(ck_ksv_store_sa_list(st, "n2", &rows, &n), CK_ERR_INTEGRITY);
    CHECK(rows == NULL && n == 0);
    /* One flipped bit in a ciphertext. */
    CHECK(sqlite3_exec(db, "DELETE FROM sa WHERE src = 'n2'", NULL, NULL, NULL) == SQLITE_OK);
    CHECK_OK(ck_ksv_store_sa_list(st, NULL, &rows, &n));
    CHECK_INT_EQ(n, 1);
    ck_ksv_store_sa_free(rows, n);
    /* The 21st byte replaced by another value (x'00', or x'01' where it was x'00' already:
     * a fixed x'00' left one ciphertext in 256 unchanged and the check below failing). */
    CHECK(sqlite3_exec(db, "UPDATE sa SET sealed = CAST(substr(sealed, 1, 20) AS BLOB) ||"
                           " CASE WHEN substr(sealed, 21, 1) = x'00' THEN x'01' ELSE x'00' END"
                           " || substr(sealed, 22)", NULL, NULL, NULL) == SQLITE_OK);
    CHECK_INT_EQ(ck_ksv_store_sa_list(st, NULL, &rows, &n), CK_ERR_INTEGRITY);
    sqlite3_close(db);
    ck_ksv_store_close(st);
}

static int
cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

static void
test_spi_unique(void)
{
    enum { N = 20000 };
    char path[256];
    struct ck_ksv_store *st = fresh("spi.db", path, sizeof(path));
    struct ck_ksv_sa_row r, *rows = NULL;
    uint32_t *spis = calloc(N, sizeof(*spis));
    size_t n = 0, dups = 0, bad = 0;

    /* Durability is not what this case measures: 20,000 fsyncs would take minutes. */
    CHECK(sqlite3_exec(st->db, "PRAGMA synchronous = OFF", NULL, NULL, NULL) == SQLITE_OK);
    for (uint32_t i = 0; i < N; i++) {
        char src[32];

        snprintf(src, sizeof(src), "s%u", i % 97);
        sa_fill(&r, src, "hub", i / 97 + 1, (uint8_t)i);
        if (ck_ksv_store_sa_put(st, &r) != 0) {
            fprintf(stderr, "  put %u: %s\n", i, ck_error_context());
            bad++;
            break;
        }
        spis[i] = r.spi;
        if (r.spi < CK_KSV_STORE_SPI_MIN || r.spi > CK_KSV_STORE_SPI_MAX)
            bad++;
    }
    CHECK_INT_EQ(bad, 0);
    qsort(spis, N, sizeof(*spis), cmp_u32);
    for (size_t i = 1; i < N; i++)
        if (spis[i] == spis[i - 1])
            dups++;
    CHECK_INT_EQ(dups, 0);
    /* What the store holds agrees, and the random SPIs are not a counter. */
    CHECK_OK(ck_ksv_store_sa_list(st, "hub", &rows, &n));
    CHECK_INT_EQ(n, N);
    if (n == N) {
        size_t ascending = 0;
        for (size_t i = 1; i < n; i++)
            if (rows[i].spi > rows[i - 1].spi)
                ascending++;
        CHECK(ascending > N / 4 && ascending < 3 * N / 4);
    }
    ck_ksv_store_sa_free(rows, n);
    free(spis);
    ck_ksv_store_close(st);
}

/* Two connections (the daemon and a CLI, or two daemons by mistake) and two threads on each
 * handle allocate SPIs for one receiver at once: every put succeeds and no SPI repeats. */
#define PAR_THREADS 4
#define PAR_PUTS 300

struct par_arg {
    struct ck_ksv_store *st;
    int idx;
    uint32_t spis[PAR_PUTS];
    int errors;
};

static void *
par_worker(void *p)
{
    struct par_arg *a = p;
    struct ck_ksv_sa_row r;

    for (int i = 0; i < PAR_PUTS; i++) {
        char src[32];

        snprintf(src, sizeof(src), "t%d", a->idx);
        sa_fill(&r, src, "hub", (uint32_t)i + 1, (uint8_t)i);
        if (ck_ksv_store_sa_put(a->st, &r) != 0) {
            fprintf(stderr, "  thread %d put %d: %s\n", a->idx, i, ck_error_context());
            a->errors++;
        }
        a->spis[i] = r.spi;
    }
    return NULL;
}

static void
test_spi_concurrent(void)
{
    char path[256];
    struct ck_ksv_store *st[2] = {fresh("par.db", path, sizeof(path)), NULL};
    static struct par_arg args[PAR_THREADS];
    pthread_t th[PAR_THREADS];
    uint32_t all[PAR_THREADS * PAR_PUTS];
    size_t dups = 0;
    int errors = 0;

    CHECK_OK(ck_ksv_store_open(path, NULL, false, &st[1]));
    for (int i = 0; i < 2; i++)
        CHECK(sqlite3_exec(st[i]->db, "PRAGMA synchronous = OFF", NULL, NULL, NULL) ==
              SQLITE_OK);
    for (int i = 0; i < PAR_THREADS; i++) {
        memset(&args[i], 0, sizeof(args[i]));
        args[i].st = st[i % 2];
        args[i].idx = i;
        CHECK(pthread_create(&th[i], NULL, par_worker, &args[i]) == 0);
    }
    for (int i = 0; i < PAR_THREADS; i++) {
        pthread_join(th[i], NULL);
        errors += args[i].errors;
        memcpy(all + i * PAR_PUTS, args[i].spis, sizeof(args[i].spis));
    }
    CHECK_INT_EQ(errors, 0);
    qsort(all, PAR_THREADS * PAR_PUTS, sizeof(all[0]), cmp_u32);
    for (size_t i = 1; i < PAR_THREADS * PAR_PUTS; i++)
        if (all[i] == all[i - 1])
            dups++;
    CHECK_INT_EQ(dups, 0);
    ck_ksv_store_close(st[0]);
    ck_ksv_store_close(st[1]);
}

/* ---- groups --------------------------------------------------------------------------------- */

static void
node_fill(struct lkh_node_state *s, uint32_t node, uint32_t version, uint8_t fill)
{
    memset(s, 0, sizeof(*s));
    s->node = node;
    s->version = version;
    s->present = 1;
    for (int i = 0; i < LKH_KEY_LEN; i++)
        s->key[i] = (uint8_t)(fill * 7 + i * 13 + node);
}

static void
member_fill(struct ck_ksv_member_row *m, const char *node, uint32_t id, uint32_t leaf, int state)
{
    memset(m, 0, sizeof(*m));
    snprintf(m->node, sizeof(m->node), "%s", node);
    m->member_id = id;
    m->leaf = leaf;
    m->state = state;
}

static void
test_group_get_list(void)
{
    char path[256];
    struct ck_ksv_store *st = fresh("grp.db", path, sizeof(path));
    struct ck_ksv_group_row g1, g2, again, *rows = NULL;
    size_t n = 0;

    CHECK_OK(ck_ksv_store_group_get(st, "media", 4, 64, 0, &g1));
    CHECK(g1.group_id >= 1);
    CHECK(strcmp(g1.name, "media") == 0);
    CHECK_INT_EQ(g1.epoch, 0);
    CHECK_INT_EQ(g1.degree, 4);
    CHECK_INT_EQ(g1.capacity, 64);
    CHECK_INT_EQ(g1.keying, 0);
    CHECK(g1.spi >= CK_KSV_STORE_GROUP_SPI_MIN);
    CHECK_OK(ck_ksv_store_group_get(st, "kdcs", 2, 128, 1, &g2));
    CHECK(g2.group_id != g1.group_id && g2.spi != g1.spi);
    CHECK(g2.spi >= CK_KSV_STORE_GROUP_SPI_MIN);
    /* Existing: same ID and SPI, stored parameters win. */
    CHECK_OK(ck_ksv_store_group_get(st, "media", 8, 999, 2, &again));
    CHECK_INT_EQ(again.group_id, g1.group_id);
    CHECK_INT_EQ(again.spi, g1.spi);
    CHECK_INT_EQ(again.degree, 4);
    ck_ksv_store_close(st);
    CHECK_OK(ck_ksv_store_open(path, NULL, false, &st));
    CHECK_OK(ck_ksv_store_group_get(st, "media", 4, 64, 0, &again));
    CHECK_INT_EQ(again.group_id, g1.group_id);
    CHECK_INT_EQ(again.spi, g1.spi);
    CHECK_INT_EQ(ck_ksv_store_group_get(st, "bad", 1, 64, 0, &again), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_ksv_store_group_get(st, "bad", 17, 64, 0, &again), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_ksv_store_group_get(st, "bad", 4, 0, 0, &again), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_ksv_store_group_get(st, "bad", 4, 64, 3, &again), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_ksv_store_group_get(st, "", 4, 64, 0, &again), CK_ERR_INVAL);
    CHECK_OK(ck_ksv_store_group_list(st, &rows, &n));
    CHECK_INT_EQ(n, 2);
    if (n == 2) {
        CHECK_INT_EQ(rows[0].group_id, g1.group_id);
        CHECK(strcmp(rows[1].name, "kdcs") == 0);
        CHECK_INT_EQ(rows[1].keying, 1);
    }
    free(rows);
    ck_ksv_store_close(st);
}

struct walk_count {
    size_t seen, stop_at;
    char first[CK_KSV_STORE_NAME];
};

static int
walk_cb(void *arg, const struct ck_ksv_member_row *m)
{
    struct walk_count *w = arg;

    if (w->seen == 0)
        snprintf(w->first, sizeof(w->first), "%s", m->node);
    if (++w->seen == w->stop_at)
        return CK_ERR_LIMIT;
    return 0;
}

static void
test_group_commit_load(void)
{
    char path[256];
    struct ck_ksv_store *st = fresh("commit.db", path, sizeof(path));
    struct ck_ksv_group_row g, *gl = NULL;
    struct lkh_node_state nodes[5], *ln = NULL;
    struct ck_ksv_member_row mem[3], *lm = NULL;
    uint8_t d0[100], d1[1400], **dg = NULL;
    uint8_t *dgrams[2] = {d0, d1};
    size_t lens[2] = {sizeof(d0), sizeof(d1)}, *dl = NULL, nn = 0, nm = 0, nd = 0;
    struct ck_ksv_group_commit c;

    memset(d0, 0xd0, sizeof(d0));
    memset(d1, 0xd1, sizeof(d1));
    CHECK_OK(ck_ksv_store_group_get(st, "g", 4, 64, 0, &g));
    /* Empty group: no rows. */
    CHECK_OK(ck_ksv_store_group_load(st, g.group_id, &ln, &nn, &lm, &nm));
    CHECK_INT_EQ(nn, 0);
    CHECK_INT_EQ(nm, 0);
    ck_ksv_store_nodes_free(ln, nn);
    free(lm);

    /* Initial population at epoch 0: nodes and members, no datagram. */
    for (uint32_t i = 0; i < 5; i++)
        node_fill(&nodes[i], i, 1, 1);
    member_fill(&mem[0], "a", 0, 1, CK_KSV_MEMBER_ACTIVE);
    member_fill(&mem[1], "b", 1, 2, CK_KSV_MEMBER_ACTIVE);
    member_fill(&mem[2], "c", 2, 3, CK_KSV_MEMBER_ACTIVE);
    memset(&c, 0, sizeof(c));
    c.group_id = g.group_id;
    c.epoch = 0;
    c.nodes = nodes;
    c.n_nodes = 5;
    c.members = mem;
    c.n_members = 3;
    CHECK_OK(ck_ksv_store_group_commit(st, &c));
    CHECK_OK(ck_ksv_store_group_load(st, g.group_id, &ln, &nn, &lm, &nm));
    CHECK_INT_EQ(nn, 5);
    CHECK_INT_EQ(nm, 3);
    if (nn == 5 && nm == 3) {
        for (size_t i = 0; i < 5; i++) {
            CHECK_INT_EQ(ln[i].node, i);
            CHECK_INT_EQ(ln[i].version, 1);
            CHECK_INT_EQ(ln[i].present, 1);
            CHECK_MEM_EQ(ln[i].key, 16, nodes[i].key, 16);
        }
        CHECK(strcmp(lm[1].node, "b") == 0);
        CHECK_INT_EQ(lm[1].member_id, 1);
        CHECK_INT_EQ(lm[1].leaf, 2);
        CHECK_INT_EQ(lm[1].state, CK_KSV_MEMBER_ACTIVE);
    }
    ck_ksv_store_nodes_free(ln, nn);
    free(lm);

    /* A batch: epoch 1, b leaves, node 2 empties, nodes 0 and 1 rekeyed, two datagrams. */
    node_fill(&nodes[0], 0, 2, 2);
    node_fill(&nodes[1], 1, 2, 2);
    memset(&nodes[2], 0, sizeof(nodes[2]));
    nodes[2].node = 2;
    nodes[2].version = 1;
    member_fill(&mem[0], "b", 1, 2, CK_KSV_MEMBER_LEFT);
    memset(&c, 0, sizeof(c));
    c.group_id = g.group_id;
    c.epoch = 1;
    c.nodes = nodes;
    c.n_nodes = 3;
    c.members = mem;
    c.n_members = 1;
    c.dgrams = dgrams;
    c.dgram_lens = lens;
    c.n_dgrams = 2;
    CHECK_OK(ck_ksv_store_group_commit(st, &c));
    CHECK_OK(ck_ksv_store_group_load(st, g.group_id, &ln, &nn, &lm, &nm));
    CHECK_INT_EQ(nn, 5);
    CHECK_INT_EQ(nm, 3);
    if (nn == 5 && nm == 3) {
        CHECK_INT_EQ(ln[0].version, 2);
        CHECK_MEM_EQ(ln[0].key, 16, nodes[0].key, 16);
        CHECK_INT_EQ(ln[2].present, 0);
        CHECK_INT_EQ(ln[3].version, 1); /* untouched rows stay */
        CHECK_INT_EQ(lm[1].state, CK_KSV_MEMBER_LEFT);
        CHECK_INT_EQ(lm[0].state, CK_KSV_MEMBER_ACTIVE);
    }
    ck_ksv_store_nodes_free(ln, nn);
    free(lm);
    CHECK_OK(ck_ksv_store_group_list(st, &gl, &nd));
    CHECK(nd == 1 && gl[0].epoch == 1);
    free(gl);
    CHECK_OK(ck_ksv_store_epoch_dgrams(st, g.group_id, 1, &dg, &dl, &nd));
    CHECK_INT_EQ(nd, 2);
    if (nd == 2) {
        CHECK_MEM_EQ(dg[0], dl[0], d0, sizeof(d0));
        CHECK_MEM_EQ(dg[1], dl[1], d1, sizeof(d1));
        free(dg[0]);
        free(dg[1]);
    }
    free(dg);
    free(dl);
    CHECK_OK(ck_ksv_store_epoch_dgrams(st, g.group_id, 0, &dg, &dl, &nd));
    CHECK_INT_EQ(nd, 0);
    free(dg);
    free(dl);
    CHECK_INT_EQ(ck_ksv_store_epoch_dgrams(st, 9999, 1, &dg, &dl, &nd), CK_ERR_NOTFOUND);

    /* A join at the same epoch (no datagram): allowed. */
    member_fill(&mem[0], "d", 1, 2, CK_KSV_MEMBER_ACTIVE);
    node_fill(&nodes[0], 2, 2, 3);
    memset(&c, 0, sizeof(c));
    c.group_id = g.group_id;
    c.epoch = 1;
    c.nodes = nodes;
    c.n_nodes = 1;
    c.members = mem;
    c.n_members = 1;
    CHECK_OK(ck_ksv_store_group_commit(st, &c));
    CHECK_OK(ck_ksv_store_group_load(st, g.group_id, &ln, &nn, &lm, &nm));
    CHECK_INT_EQ(nm, 4);
    CHECK(nn == 5 && ln[2].present == 1 && ln[2].version == 2);
    ck_ksv_store_nodes_free(ln, nn);
    free(lm);
    /* The walk: nodes and members, members only, stopped by the callback. */
    {
        struct walk_count w = {0};
        CHECK_OK(ck_ksv_store_group_walk(st, g.group_id, &ln, &nn, walk_cb, &w));
        CHECK(nn == 5 && w.seen == 4 && strcmp(w.first, "a") == 0);
        ck_ksv_store_nodes_free(ln, nn);
        memset(&w, 0, sizeof(w));
        CHECK_OK(ck_ksv_store_group_walk(st, g.group_id, NULL, NULL, walk_cb, &w));
        CHECK_INT_EQ(w.seen, 4);
        memset(&w, 0, sizeof(w));
        w.stop_at = 2;
        ln = (struct lkh_node_state *)1;
        CHECK_INT_EQ(ck_ksv_store_group_walk(st, g.group_id, &ln, &nn, walk_cb, &w),
                     CK_ERR_LIMIT);
        CHECK(ln == NULL && nn == 0 && w.seen == 2);
        CHECK_INT_EQ(ck_ksv_store_group_walk(st, g.group_id, NULL, NULL, NULL, NULL),
                     CK_ERR_INVAL);
        CHECK_INT_EQ(ck_ksv_store_group_walk(st, 777, NULL, NULL, walk_cb, &w),
                     CK_ERR_NOTFOUND);
    }
    ck_ksv_store_close(st);
}

static void
test_epoch_monotonic(void)
{
    char path[256];
    struct ck_ksv_store *st = fresh("epoch.db", path, sizeof(path));
    struct ck_ksv_group_row g, *gl = NULL;
    struct lkh_node_state node;
    struct ck_ksv_member_row m;
    uint8_t d[10] = {1}, *dgrams[1] = {d}, *nulld[1] = {NULL}, **dg = NULL;
    size_t lens[1] = {sizeof(d)}, zero[1] = {0}, big[1] = {65536}, *dl = NULL, n = 0;
    struct ck_ksv_group_commit c;

    CHECK_OK(ck_ksv_store_group_get(st, "g", 4, 64, 0, &g));
    node_fill(&node, 0, 1, 1);
    memset(&c, 0, sizeof(c));
    c.group_id = g.group_id;
    c.nodes = &node;
    c.n_nodes = 1;
    c.dgrams = dgrams;
    c.dgram_lens = lens;
    c.n_dgrams = 1;
    /* Datagrams at the stored epoch (0): refused. */
    c.epoch = 0;
    CHECK_INT_EQ(ck_ksv_store_group_commit(st, &c), CK_ERR_INVAL);
    c.epoch = 5;
    CHECK_OK(ck_ksv_store_group_commit(st, &c));
    /* Replaying epoch 5 with datagrams, or any older epoch: refused, and nothing written. */
    node_fill(&node, 0, 99, 9);
    CHECK_INT_EQ(ck_ksv_store_group_commit(st, &c), CK_ERR_INVAL);
    c.epoch = 4;
    CHECK_INT_EQ(ck_ksv_store_group_commit(st, &c), CK_ERR_INVAL);
    c.n_dgrams = 0;
    CHECK_INT_EQ(ck_ksv_store_group_commit(st, &c), CK_ERR_INVAL); /* older even without */
    c.epoch = 0;
    CHECK_INT_EQ(ck_ksv_store_group_commit(st, &c), CK_ERR_INVAL);
    {
        struct lkh_node_state *ln = NULL;
        struct ck_ksv_member_row *lm = NULL;
        size_t nn = 0, nm = 0;
        CHECK_OK(ck_ksv_store_group_load(st, g.group_id, &ln, &nn, &lm, &nm));
        CHECK(nn == 1 && ln[0].version == 1);
        ck_ksv_store_nodes_free(ln, nn);
        free(lm);
    }
    CHECK_OK(ck_ksv_store_group_list(st, &gl, &n));
    CHECK(n == 1 && gl[0].epoch == 5);
    free(gl);
    /* An epoch step without datagrams (EK mode): allowed. */
    c.epoch = 6;
    CHECK_OK(ck_ksv_store_group_commit(st, &c));
    /* Malformed commits. */
    c.epoch = 7;
    c.n_dgrams = 1;
    c.dgrams = nulld;
    CHECK_INT_EQ(ck_ksv_store_group_commit(st, &c), CK_ERR_INVAL);
    c.dgrams = dgrams;
    c.dgram_lens = zero;
    CHECK_INT_EQ(ck_ksv_store_group_commit(st, &c), CK_ERR_INVAL);
    c.dgram_lens = big;
    CHECK_INT_EQ(ck_ksv_store_group_commit(st, &c), CK_ERR_INVAL);
    c.dgram_lens = lens;
    member_fill(&m, "x", 0, 0, 3);
    c.members = &m;
    c.n_members = 1;
    CHECK_INT_EQ(ck_ksv_store_group_commit(st, &c), CK_ERR_INVAL);
    member_fill(&m, "", 0, 0, CK_KSV_MEMBER_ACTIVE);
    CHECK_INT_EQ(ck_ksv_store_group_commit(st, &c), CK_ERR_INVAL);
    c.n_members = 0;
    node.present = 2;
    CHECK_INT_EQ(ck_ksv_store_group_commit(st, &c), CK_ERR_INVAL);
    node.present = 1;
    c.epoch = (uint64_t)INT64_MAX + 1;
    CHECK_INT_EQ(ck_ksv_store_group_commit(st, &c), CK_ERR_INVAL);
    c.epoch = 7;
    c.group_id = 4242;
    CHECK_INT_EQ(ck_ksv_store_group_commit(st, &c), CK_ERR_NOTFOUND);

    /* Datagram retention: after epoch 7 + 20, only the last KEEP_EPOCHS epochs remain. */
    c.group_id = g.group_id;
    for (uint64_t e = 7; e <= 27; e++) {
        c.epoch = e;
        d[0] = (uint8_t)e;
        CHECK_OK(ck_ksv_store_group_commit(st, &c));
    }
    for (uint64_t e = 5; e <= 27; e++) {
        CHECK_OK(ck_ksv_store_epoch_dgrams(st, g.group_id, e, &dg, &dl, &n));
        CHECK_INT_EQ(n, e > 27 - CK_KSV_STORE_KEEP_EPOCHS ? 1 : 0);
        if (n == 1) {
            CHECK_INT_EQ(dg[0][0], (uint8_t)e);
            free(dg[0]);
        }
        free(dg);
        free(dl);
    }
    ck_ksv_store_close(st);
}

static void
test_group_key_at_rest(void)
{
    char path[256];
    struct ck_ksv_store *st = fresh("grest.db", path, sizeof(path));
    struct ck_ksv_group_row g;
    struct lkh_node_state nodes[3], *ln = NULL;
    struct ck_ksv_member_row *lm = NULL;
    struct ck_ksv_group_commit c;
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    size_t nn = 0, nm = 0;
    int seen = 0;

    CHECK_OK(ck_ksv_store_group_get(st, "g", 4, 64, 0, &g));
    for (uint32_t i = 0; i < 3; i++)
        node_fill(&nodes[i], i, 7, (uint8_t)(0x40 + i));
    memset(&c, 0, sizeof(c));
    c.group_id = g.group_id;
    c.nodes = nodes;
    c.n_nodes = 3;
    CHECK_OK(ck_ksv_store_group_commit(st, &c));
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    CHECK(sqlite3_prepare_v2(db, "SELECT sealed FROM lkh_node", -1, &q, NULL) == SQLITE_OK);
    while (sqlite3_step(q) == SQLITE_ROW) {
        const uint8_t *p = sqlite3_column_blob(q, 0);
        size_t len = (size_t)sqlite3_column_bytes(q, 0);
        for (int i = 0; i < 3; i++)
            CHECK(!mem_contains(p, len, nodes[i].key, 8));
        seen++;
    }
    sqlite3_finalize(q);
    CHECK_INT_EQ(seen, 3);
    /* Node 0's sealed key moved onto node 1: refused. */
    CHECK(sqlite3_exec(db, "UPDATE lkh_node SET sealed = (SELECT sealed FROM lkh_node WHERE"
                           " node = 0) WHERE node = 1", NULL, NULL, NULL) == SQLITE_OK);
    CHECK_INT_EQ(ck_ksv_store_group_load(st, g.group_id, &ln, &nn, &lm, &nm), CK_ERR_INTEGRITY);
    CHECK(ln == NULL && lm == NULL);
    {
        /* Listing members decrypts nothing, so it still works. */
        struct walk_count w = {0};
        CHECK_OK(ck_ksv_store_group_walk(st, g.group_id, NULL, NULL, walk_cb, &w));
    }
    /* Put back, but with the version changed (an old key replayed as a newer one): refused. */
    CHECK_OK(ck_ksv_store_group_commit(st, &c));
    CHECK_OK(ck_ksv_store_group_load(st, g.group_id, &ln, &nn, &lm, &nm));
    ck_ksv_store_nodes_free(ln, nn);
    free(lm);
    CHECK(sqlite3_exec(db, "UPDATE lkh_node SET version = 8 WHERE node = 2", NULL, NULL, NULL) ==
          SQLITE_OK);
    CHECK_INT_EQ(ck_ksv_store_group_load(st, g.group_id, &ln, &nn, &lm, &nm), CK_ERR_INTEGRITY);
    sqlite3_close(db);
    ck_ksv_store_close(st);
}

/* ---- revocations, alarms, nodes, changes ---------------------------------------------------- */

static void
test_revocations(void)
{
    char path[256];
    struct ck_ksv_store *st = fresh("rev.db", path, sizeof(path));
    struct ck_ksv_revocation *rows = NULL;
    size_t n = 0;
    bool r = true;

    CHECK_OK(ck_ksv_store_is_revoked(st, "g", "n1", &r));
    CHECK(!r);
    CHECK_OK(ck_ksv_store_revoke(st, "g", "n1", "alice", 100));
    CHECK_OK(ck_ksv_store_revoke(st, "g", "n2", "bob", 200));
    CHECK_OK(ck_ksv_store_revoke(st, "h", "n1", "bob", 300));
    CHECK_INT_EQ(ck_ksv_store_revoke(st, "g", "n1", "alice", 400), CK_ERR_EXISTS);
    CHECK_INT_EQ(ck_ksv_store_revoke(st, "g", "", "alice", 400), CK_ERR_INVAL);
    CHECK_OK(ck_ksv_store_is_revoked(st, "g", "n1", &r));
    CHECK(r);
    CHECK_OK(ck_ksv_store_revoke_mark_applied(st, "g", "n1"));
    CHECK_INT_EQ(ck_ksv_store_revoke_mark_applied(st, "g", "n9"), CK_ERR_NOTFOUND);
    /* Persist across a restart. */
    ck_ksv_store_close(st);
    CHECK_OK(ck_ksv_store_open(path, NULL, false, &st));
    CHECK_OK(ck_ksv_store_revocations(st, &rows, &n));
    CHECK_INT_EQ(n, 3);
    if (n == 3) {
        CHECK(strcmp(rows[0].group, "g") == 0 && strcmp(rows[0].node, "n1") == 0);
        CHECK_INT_EQ(rows[0].when, 100);
        CHECK(strcmp(rows[0].actor, "alice") == 0);
        CHECK(rows[0].applied);
        CHECK(!rows[1].applied);
        CHECK(strcmp(rows[2].group, "h") == 0);
    }
    free(rows);
    CHECK_OK(ck_ksv_store_revoke_lift(st, "g", "n1"));
    CHECK_INT_EQ(ck_ksv_store_revoke_lift(st, "g", "n1"), CK_ERR_NOTFOUND);
    CHECK_OK(ck_ksv_store_is_revoked(st, "g", "n1", &r));
    CHECK(!r);
    CHECK_OK(ck_ksv_store_is_revoked(st, "h", "n1", &r));
    CHECK(r);
    CHECK_OK(ck_ksv_store_revocations(st, &rows, &n));
    CHECK_INT_EQ(n, 2);
    free(rows);
    ck_ksv_store_close(st);
}

static void
test_alarms(void)
{
    char path[256], longd[400];
    struct ck_ksv_store *st = fresh("alarm.db", path, sizeof(path));
    struct ck_ksv_alarm_row *rows = NULL;
    size_t n = 0;

    CHECK_OK(ck_ksv_store_alarm_list(st, 10, &rows, &n));
    CHECK_INT_EQ(n, 0);
    free(rows);
    CHECK_OK(ck_ksv_store_alarm_add(st, 10, "n1", "SA_EXPIRED", "spi=0x1234"));
    CHECK_OK(ck_ksv_store_alarm_add(st, 20, "n2", "NO_ACK", NULL));
    memset(longd, 'z', sizeof(longd) - 1);
    longd[sizeof(longd) - 1] = '\0';
    CHECK_OK(ck_ksv_store_alarm_add(st, 30, "n3", "SIGN_FAILED", longd));
    CHECK_INT_EQ(ck_ksv_store_alarm_add(st, 40, "n3", "", "x"), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_ksv_store_alarm_add(st, 40, "n3", "0123456789012345678901234567890123",
                                        "x"), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_ksv_store_alarm_add(st, 40, NULL, "X", "x"), CK_ERR_INVAL);
    CHECK_OK(ck_ksv_store_alarm_list(st, 2, &rows, &n));
    CHECK_INT_EQ(n, 2);
    if (n == 2) {
        CHECK_INT_EQ(rows[0].when, 30); /* newest first */
        CHECK(strcmp(rows[0].type, "SIGN_FAILED") == 0);
        CHECK_INT_EQ(strlen(rows[0].detail), 255);
        CHECK(strcmp(rows[1].node, "n2") == 0);
        CHECK(strcmp(rows[1].detail, "") == 0);
        CHECK(rows[0].id > rows[1].id);
    }
    free(rows);
    CHECK_OK(ck_ksv_store_alarm_list(st, 100, &rows, &n));
    CHECK(n == 3 && strcmp(rows[2].detail, "spi=0x1234") == 0);
    free(rows);
    /* Bounded: with KEEP_ALARMS rows present (written past the store, for speed), one more
     * drops the oldest. */
    CHECK(sqlite3_exec(st->db, "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c"
                               " WHERE i < 100000) INSERT INTO alarm(time, node, type, detail)"
                               " SELECT 100 + i, 'bulk', 'X', '' FROM c", NULL, NULL,
                       NULL) == SQLITE_OK);
    CHECK_OK(ck_ksv_store_alarm_add(st, 999999, "last", "NO_ACK", "newest"));
    {
        sqlite3_stmt *q = NULL;
        CHECK(sqlite3_prepare_v2(st->db, "SELECT count(*), min(time) FROM alarm", -1, &q,
                                 NULL) == SQLITE_OK);
        CHECK(sqlite3_step(q) == SQLITE_ROW);
        CHECK_INT_EQ(sqlite3_column_int64(q, 0), CK_KSV_STORE_KEEP_ALARMS);
        CHECK_INT_EQ(sqlite3_column_int64(q, 1), 102); /* the first 3 and bulk row 1 gone */
        sqlite3_finalize(q);
    }
    CHECK_OK(ck_ksv_store_alarm_list(st, 1, &rows, &n));
    CHECK(n == 1 && strcmp(rows[0].node, "last") == 0);
    free(rows);
    ck_ksv_store_close(st);
}

static void
test_nodes(void)
{
    char path[256];
    struct ck_ksv_store *st = fresh("nodes.db", path, sizeof(path));
    struct ck_ksv_node_row r, *rows = NULL;
    size_t n = 0;

    memset(&r, 0, sizeof(r));
    snprintf(r.node, sizeof(r.node), "gw2");
    snprintf(r.addr, sizeof(r.addr), "192.0.2.2:7442");
    r.registered = 100;
    r.last_seen = 100;
    r.key_id = 0xdeadbeef;
    r.n_sas = 4;
    CHECK_OK(ck_ksv_store_node_seen(st, &r));
    snprintf(r.node, sizeof(r.node), "gw1");
    CHECK_OK(ck_ksv_store_node_seen(st, &r));
    r.last_seen = 150;
    r.n_sas = 6;
    snprintf(r.addr, sizeof(r.addr), "192.0.2.9:7442");
    CHECK_OK(ck_ksv_store_node_seen(st, &r)); /* upsert */
    r.node[0] = '\0';
    CHECK_INT_EQ(ck_ksv_store_node_seen(st, &r), CK_ERR_INVAL);
    CHECK_OK(ck_ksv_store_node_list(st, &rows, &n));
    CHECK_INT_EQ(n, 2);
    if (n == 2) {
        CHECK(strcmp(rows[0].node, "gw1") == 0);
        CHECK(strcmp(rows[0].addr, "192.0.2.9:7442") == 0);
        CHECK_INT_EQ(rows[0].last_seen, 150);
        CHECK_INT_EQ(rows[0].n_sas, 6);
        CHECK_INT_EQ(rows[0].key_id, 0xdeadbeef);
        CHECK_INT_EQ(rows[1].n_sas, 4);
    }
    free(rows);
    ck_ksv_store_close(st);
}

static void
test_changed(void)
{
    char path[256];
    struct ck_ksv_store *daemon = fresh("chg.db", path, sizeof(path)), *cli = NULL;
    bool changed = true, r = false;

    CHECK_OK(ck_ksv_store_open(path, NULL, false, &cli));
    CHECK_OK(ck_ksv_store_changed(daemon, &changed));
    CHECK(!changed);
    /* The daemon's own writes do not count. */
    CHECK_OK(ck_ksv_store_alarm_add(daemon, 1, "n", "NO_ACK", ""));
    CHECK_OK(ck_ksv_store_changed(daemon, &changed));
    CHECK(!changed);
    /* The CLI revokes: the daemon sees a change once, and the revocation. */
    CHECK_OK(ck_ksv_store_revoke(cli, "g", "n7", "op", 5));
    CHECK_OK(ck_ksv_store_changed(daemon, &changed));
    CHECK(changed);
    CHECK_OK(ck_ksv_store_changed(daemon, &changed));
    CHECK(!changed);
    CHECK_OK(ck_ksv_store_is_revoked(daemon, "g", "n7", &r));
    CHECK(r);
    CHECK_OK(ck_ksv_store_revoke_lift(cli, "g", "n7"));
    CHECK_OK(ck_ksv_store_changed(daemon, &changed));
    CHECK(changed);
    /* And the other way round. */
    CHECK_OK(ck_ksv_store_changed(cli, &changed));
    CHECK(changed); /* the daemon's alarm */
    CHECK_OK(ck_ksv_store_changed(cli, &changed));
    CHECK(!changed);
    ck_ksv_store_close(cli);
    ck_ksv_store_close(daemon);
}

/* ---- a large group -------------------------------------------------------------------------- */

static double
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* A full tree of degree 4 with `members` leaves (synthetic rows: the store does not care where
 * they come from), committed at once and loaded back; the times go to stderr for the report.
 * CK_KSV_STORE_MEMBERS overrides the size (10^6 for the figure in the docs). */
static void
test_load_large(void)
{
    char path[256];
    struct ck_ksv_store *st = fresh("large.db", path, sizeof(path));
    struct ck_ksv_group_row g;
    struct ck_ksv_group_commit c;
    struct lkh_node_state *nodes, *ln = NULL;
    struct ck_ksv_member_row *mem, *lm = NULL;
    const char *env = getenv("CK_KSV_STORE_MEMBERS");
    size_t members = 100000, internal = 0, level = 1, n_nodes, nn = 0, nm = 0, bad = 0;
    double t0, t1, t2;

    if (env != NULL) {
        int64_t v = 0;
        if (ck_parse_int64(env, 1, 20000000, &v) != 0)
            abort();
        members = (size_t)v;
    }
    /* Internal nodes of a degree-4 tree over `members` leaves: sum of 4^k below 4^h. */
    while (level < members) {
        internal += level;
        level *= 4;
    }
    n_nodes = internal + members;
    nodes = calloc(n_nodes, sizeof(*nodes));
    mem = calloc(members, sizeof(*mem));
    if (nodes == NULL || mem == NULL)
        abort();
    for (size_t i = 0; i < n_nodes; i++)
        node_fill(&nodes[i], (uint32_t)i, 1, 5);
    for (size_t i = 0; i < members; i++)
        member_fill(&mem[i], "", (uint32_t)i, (uint32_t)(internal + i), CK_KSV_MEMBER_ACTIVE),
            snprintf(mem[i].node, sizeof(mem[i].node), "node-%07zu", i);
    CHECK_OK(ck_ksv_store_group_get(st, "big", 4, (uint32_t)members, 0, &g));
    memset(&c, 0, sizeof(c));
    c.group_id = g.group_id;
    c.nodes = nodes;
    c.n_nodes = n_nodes;
    c.members = mem;
    c.n_members = members;
    t0 = now_ms();
    CHECK_OK(ck_ksv_store_group_commit(st, &c));
    t1 = now_ms();
    CHECK_OK(ck_ksv_store_group_load(st, g.group_id, &ln, &nn, &lm, &nm));
    t2 = now_ms();
    CHECK_INT_EQ(nn, n_nodes);
    CHECK_INT_EQ(nm, members);
    if (nn == n_nodes && nm == members) {
        for (size_t i = 0; i < nn; i++)
            if (ln[i].node != i || memcmp(ln[i].key, nodes[i].key, 16) != 0)
                bad++;
        for (size_t i = 0; i < nm; i++)
            if (lm[i].member_id != i || lm[i].leaf != internal + i)
                bad++;
    }
    CHECK_INT_EQ(bad, 0);
    fprintf(stderr, "# ksv store: %zu members, %zu nodes: commit %.0f ms, load %.0f ms\n",
            members, n_nodes, t1 - t0, t2 - t1);
    /* 10^6 members must load in a few seconds; 10^5 get a tenth of a generous budget. */
    CHECK(t2 - t1 < (double)members / 1e6 * 10000.0 + 1000.0);
    /* A batch of 1,000 leaves at 10^6 rewrites about 18,500 nodes and 1,000 member rows and
     * stores a few dozen datagrams: the same shape, scaled to this tree. */
    {
        size_t bn = n_nodes * 18500 / 1349525 + 1, bm = members / 1000 + 1;
        uint8_t dg[1400], *dgs[40];
        size_t dls[40];

        memset(dg, 0x5a, sizeof(dg));
        for (size_t i = 0; i < 40; i++) {
            dgs[i] = dg;
            dls[i] = sizeof(dg);
        }
        for (size_t i = 0; i < bn; i++)
            nodes[i * (n_nodes / bn)].version = 2;
        for (size_t i = 0; i < bn; i++)
            nodes[i] = nodes[i * (n_nodes / bn)];
        for (size_t i = 0; i < bm; i++)
            mem[i].state = CK_KSV_MEMBER_LEFT;
        c.epoch = 1;
        c.n_nodes = bn;
        c.n_members = bm;
        c.dgrams = dgs;
        c.dgram_lens = dls;
        c.n_dgrams = 40;
        t0 = now_ms();
        CHECK_OK(ck_ksv_store_group_commit(st, &c));
        t1 = now_ms();
        fprintf(stderr, "# ksv store: batch commit of %zu nodes, %zu members, 40 datagrams: "
                        "%.0f ms\n", bn, bm, t1 - t0);
    }

    ck_ksv_store_nodes_free(ln, nn);
    free(lm);
    free(nodes);
    free(mem);
    ck_ksv_store_close(st);
    unlink(path);
}


/* ---- kill -9 during group commits ----------------------------------------------------------
 *
 * A child commits batches to three groups in a loop; every batch rewrites all the group's node
 * rows (version = the batch's epoch, keys derived from group, epoch and node), all its member
 * rows (leaf = the epoch) and epoch % 4 datagrams naming the epoch. The parent kills it with
 * SIGKILL at seeded random moments, reopens the store and checks that each group is exactly at
 * its stored epoch: every node, member and datagram of that epoch and nothing of the next. A torn
 * batch leaves rows of two epochs, which the check reports; the control run splits the commit in
 * two transactions (test-only flag) and must be caught. */

#define CRASH_GROUPS 3
#define CRASH_NODES 40
#define CRASH_MEMBERS 12
#define CRASH_DGRAM 200

static uint64_t
mix64(uint64_t x)
{
    x += UINT64_C(0x9e3779b97f4a7c15);
    x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
    return x ^ (x >> 31);
}

static void
crash_key(uint32_t g, uint64_t epoch, uint32_t node, uint8_t key[LKH_KEY_LEN])
{
    uint64_t a = mix64((uint64_t)g << 48 ^ epoch << 16 ^ node), b = mix64(a);

    memcpy(key, &a, 8);
    memcpy(key + 8, &b, 8);
}

static size_t
crash_n_dgrams(uint64_t epoch)
{
    return (size_t)(epoch % 4);
}

static void
crash_dgram(uint32_t g, uint64_t epoch, size_t seq, uint8_t out[CRASH_DGRAM])
{
    memset(out, (int)(seq + 1), CRASH_DGRAM);
    snprintf((char *)out, CRASH_DGRAM, "g=%u e=%llu s=%zu", g, (unsigned long long)epoch, seq);
}

/* Reports on fd: 'o' once open, then 'c' after each commit. */
static void
crash_child(const char *path, bool split, int fd)
{
    struct ck_ksv_store *st = NULL;
    struct ck_ksv_group_row *groups = NULL;
    struct lkh_node_state nodes[CRASH_NODES];
    struct ck_ksv_member_row mem[CRASH_MEMBERS];
    uint8_t dbuf[3][CRASH_DGRAM], *dgrams[3] = {dbuf[0], dbuf[1], dbuf[2]};
    size_t lens[3] = {CRASH_DGRAM, CRASH_DGRAM, CRASH_DGRAM}, n = 0;

    alarm(30); /* never outlive a parent that failed to kill */
    if (ck_ksv_store_open(path, NULL, false, &st) != 0 ||
        ck_ksv_store_group_list(st, &groups, &n) != 0 || n != CRASH_GROUPS)
        _exit(2);
    ck_ksv_store_test_split_commit(st, split);
    if (write(fd, "o", 1) != 1)
        _exit(2);
    for (uint64_t i = 0;; i++) {
        struct ck_ksv_group_row *g = &groups[i % CRASH_GROUPS];
        struct ck_ksv_group_commit c;
        uint64_t e = g->epoch + 1;

        for (uint32_t k = 0; k < CRASH_NODES; k++) {
            nodes[k].node = k;
            nodes[k].version = (uint32_t)e;
            nodes[k].present = 1;
            crash_key(g->group_id, e, k, nodes[k].key);
        }
        for (uint32_t k = 0; k < CRASH_MEMBERS; k++) {
            snprintf(mem[k].node, sizeof(mem[k].node), "m%u", k);
            mem[k].member_id = k;
            mem[k].leaf = (uint32_t)e;
            mem[k].state = CK_KSV_MEMBER_ACTIVE;
        }
        for (size_t k = 0; k < crash_n_dgrams(e); k++)
            crash_dgram(g->group_id, e, k, dbuf[k]);
        memset(&c, 0, sizeof(c));
        c.group_id = g->group_id;
        c.epoch = e;
        c.nodes = nodes;
        c.n_nodes = CRASH_NODES;
        c.members = mem;
        c.n_members = CRASH_MEMBERS;
        c.dgrams = dgrams;
        c.dgram_lens = lens;
        c.n_dgrams = crash_n_dgrams(e);
        if (ck_ksv_store_group_commit(st, &c) != 0)
            _exit(3);
        g->epoch = e;
        if (write(fd, "c", 1) != 1 && errno != EAGAIN)
            _exit(2);
    }
}

/* 0 when the group is exactly at its stored epoch; else 1 (a torn batch), and why on stderr. */
static int
crash_check_group(struct ck_ksv_store *st, const struct ck_ksv_group_row *g, bool quiet)
{
    struct lkh_node_state *ln = NULL;
    struct ck_ksv_member_row *lm = NULL;
    uint8_t **dg = NULL, key[LKH_KEY_LEN], want[CRASH_DGRAM];
    size_t nn = 0, nm = 0, nd = 0, *dl = NULL;
    uint64_t e = g->epoch;
    int torn = 0, ret;

    ret = ck_ksv_store_group_load(st, g->group_id, &ln, &nn, &lm, &nm);
    if (ret != 0) {
        fprintf(stderr, "  group %u: load: %s\n", g->group_id, ck_error_context());
        return 1;
    }
    if (nn != (e ? CRASH_NODES : 0) || nm != (e ? CRASH_MEMBERS : 0))
        torn = 1;
    for (size_t i = 0; i < nn && !torn; i++) {
        crash_key(g->group_id, e, ln[i].node, key);
        if (ln[i].version != (uint32_t)e || !ln[i].present || memcmp(ln[i].key, key, 16) != 0)
            torn = 1;
    }
    for (size_t i = 0; i < nm && !torn; i++)
        if (lm[i].leaf != (uint32_t)e)
            torn = 1;
    ck_ksv_store_nodes_free(ln, nn);
    free(lm);
    /* The stored epoch's datagrams, all of them; and none of the next epoch. */
    for (uint64_t de = e; de <= e + 1 && !torn; de++) {
        if (ck_ksv_store_epoch_dgrams(st, g->group_id, de, &dg, &dl, &nd) != 0)
            return 1;
        if (nd != (de == e && e != 0 ? crash_n_dgrams(e) : 0))
            torn = 1;
        for (size_t i = 0; i < nd; i++) {
            crash_dgram(g->group_id, de, i, want);
            if (dl[i] != CRASH_DGRAM || memcmp(dg[i], want, CRASH_DGRAM) != 0)
                torn = 1;
            free(dg[i]);
        }
        free(dg);
        free(dl);
    }
    if (torn && !quiet)
        fprintf(stderr, "  group %u at epoch %llu: rows of another epoch (torn batch)\n",
                g->group_id, (unsigned long long)e);
    return torn;
}

struct crash_result {
    int kills, torn, regressions, child_errors, verify_errors;
    uint64_t commits;                 /* commits the children reported */
    uint64_t epochs;                  /* batches that survived, summed over groups */
};

/* Runs up to `kills` fork/kill rounds (stops at the first torn batch when stop_on_torn). */
static void
crash_run(const char *name, bool split, int kills, uint64_t seed, bool stop_on_torn,
          struct crash_result *res)
{
    char path[256];
    struct ck_ksv_store *st = fresh(name, path, sizeof(path));
    struct ck_ksv_group_row g, *groups = NULL;
    uint64_t last[CRASH_GROUPS] = {0}, rng = seed;
    size_t n = 0;

    memset(res, 0, sizeof(*res));
    for (int i = 0; i < CRASH_GROUPS; i++) {
        char gname[32];
        snprintf(gname, sizeof(gname), "crash%d", i);
        if (ck_ksv_store_group_get(st, gname, 4, 64, 0, &g) != 0)
            abort();
    }
    ck_ksv_store_close(st);
    for (int k = 0; k < kills; k++) {
        struct pollfd pfd;
        int status = 0, fds[2];
        char buf[256];
        ssize_t got;
        pid_t pid;
        useconds_t delay;

        rng = mix64(rng);
        /* Counted from the child's open: anywhere from before its first batch to dozens of
         * batches in. Every other round first waits for 1..4 commits, so that however loaded
         * the machine, half the kills land in a child that is deep in its commit loop. */
        delay = (useconds_t)(rng % 40000);
        if (pipe(fds) != 0)
            abort();
        fflush(NULL);
        pid = fork();
        if (pid < 0)
            abort();
        if (pid == 0) {
            close(fds[0]);
            fcntl(fds[1], F_SETFL, O_NONBLOCK);
            crash_child(path, split, fds[1]);
        }
        close(fds[1]);
        pfd.fd = fds[0];
        pfd.events = POLLIN;
        if (poll(&pfd, 1, 20000) != 1 || read(fds[0], buf, 1) != 1 || buf[0] != 'o')
            res->child_errors++;
        if (k % 2 == 1) {
            uint64_t want = 1 + (rng >> 32) % 4;
            for (uint64_t seen = 0; seen < want;) {
                if (poll(&pfd, 1, 20000) != 1 || read(fds[0], buf, 1) != 1) {
                    res->child_errors++;
                    break;
                }
                seen++;
                res->commits++;
            }
            delay %= 5000;
        }
        usleep(delay);
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        while ((got = read(fds[0], buf, sizeof(buf))) > 0)
            for (ssize_t i = 0; i < got; i++)
                res->commits += buf[i] == 'c';
        close(fds[0]);
        res->kills++;
        if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
            fprintf(stderr, "  child ended on its own (status %d)\n", status);
            res->child_errors++;
        }
        /* Reopen as the restarted daemon would. */
        st = NULL;
        if (ck_ksv_store_open(path, NULL, false, &st) != 0 ||
            ck_ksv_store_group_list(st, &groups, &n) != 0 || n != CRASH_GROUPS) {
            fprintf(stderr, "  reopen: %s\n", ck_error_context());
            res->verify_errors++;
            ck_ksv_store_close(st);
            break;
        }
        for (size_t i = 0; i < n; i++) {
            if (groups[i].epoch < last[i])
                res->regressions++;
            res->epochs += groups[i].epoch - (groups[i].epoch >= last[i] ? last[i] : 0);
            last[i] = groups[i].epoch;
            res->torn += crash_check_group(st, &groups[i], split);
        }
        free(groups);
        groups = NULL;
        ck_ksv_store_close(st);
        if (stop_on_torn && res->torn > 0)
            break;
    }
}

static void
test_crash_atomic(void)
{
    const char *env = getenv("CK_KSV_STORE_KILLS"); /* more for a soak run */
    int64_t kills = 30;
    struct crash_result r;

    if (env != NULL && ck_parse_int64(env, 1, 1000000, &kills) != 0)
        abort();
    crash_run("crash.db", false, (int)kills, UINT64_C(0x6b73746f7265), false, &r);
    fprintf(stderr, "# ksv store crash: %d kills, %llu commits reported, %llu batches found, "
                    "%d torn\n", r.kills, (unsigned long long)r.commits,
            (unsigned long long)r.epochs, r.torn);
    CHECK_INT_EQ(r.kills, kills);
    CHECK_INT_EQ(r.child_errors, 0);
    CHECK_INT_EQ(r.verify_errors, 0);
    CHECK_INT_EQ(r.regressions, 0);
    CHECK_INT_EQ(r.torn, 0);
    /* Not vacuous: the children got batches in between the kills, and every batch a child
     * saw committed is there (a commit that returned is durable; some more may have
     * committed without the child getting to report it). */
    CHECK(r.commits >= (uint64_t)kills / 2);
    CHECK(r.epochs >= r.commits);
}

/* The control: the same check on a commit split in two transactions finds the torn batch. */
static void
test_crash_control(void)
{
    struct crash_result r;

    /* About one kill in three lands between the two halves; stops at the first seen. */
    crash_run("control.db", true, 100, UINT64_C(0x636f6e74726f6c), true, &r);
    fprintf(stderr, "# ksv store crash control (split commit): torn batch seen after %d kills\n",
            r.kills);
    CHECK_INT_EQ(r.child_errors, 0);
    CHECK_INT_EQ(r.verify_errors, 0);
    CHECK(r.torn > 0);
}

static void
test_zz_cleanup(void)
{
    char cmd[128];

    if (tmpdir[0] != '\0') {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        CHECK(system(cmd) == 0);
    }
}

CK_TEST_MAIN("ksv_store", CK_TEST_CASE(test_open_create), CK_TEST_CASE(test_not_a_store),
             CK_TEST_CASE(test_key_file_mode), CK_TEST_CASE(test_wrong_master_key),
             CK_TEST_CASE(test_signing_key), CK_TEST_CASE(test_sa),
             CK_TEST_CASE(test_sa_key_at_rest), CK_TEST_CASE(test_spi_unique),
             CK_TEST_CASE(test_spi_concurrent),
             CK_TEST_CASE(test_group_get_list), CK_TEST_CASE(test_group_commit_load),
             CK_TEST_CASE(test_epoch_monotonic), CK_TEST_CASE(test_group_key_at_rest),
             CK_TEST_CASE(test_revocations), CK_TEST_CASE(test_alarms), CK_TEST_CASE(test_nodes),
             CK_TEST_CASE(test_changed), CK_TEST_CASE(test_load_large),
             CK_TEST_CASE(test_crash_atomic), CK_TEST_CASE(test_crash_control),
             CK_TEST_CASE(test_zz_cleanup))
