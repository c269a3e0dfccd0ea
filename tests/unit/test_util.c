#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cablekey/error.h"
#include "cablekey/util.h"
#include "ck_test.h"

static void
reader_bounds(void)
{
    const uint8_t data[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07};
    ck_reader r;
    uint8_t b;
    uint16_t s;
    uint32_t w;
    const uint8_t *p;

    ck_reader_init(&r, data, sizeof(data));
    CHECK_OK(ck_reader_u8(&r, &b));
    CHECK_INT_EQ(b, 1);
    CHECK_OK(ck_reader_u16be(&r, &s));
    CHECK_INT_EQ(s, 0x0203);
    CHECK_OK(ck_reader_u32be(&r, &w));
    CHECK_INT_EQ(w, 0x04050607);
    CHECK_INT_EQ(ck_reader_remaining(&r), 0);
    CHECK_INT_EQ(ck_reader_u8(&r, &b), CK_ERR_DECODE);
    ck_reader_init(&r, data, sizeof(data));
    CHECK_INT_EQ(ck_reader_bytes(&r, SIZE_MAX, &p), CK_ERR_DECODE);
    CHECK_INT_EQ(r.pos, 0);
}

static void
writer_limit(void)
{
    ck_writer w;
    uint8_t *out;
    size_t len;

    ck_writer_init(&w, 6, true);
    CHECK_OK(ck_writer_u16be(&w, 0xabcd));
    CHECK_OK(ck_writer_u32be(&w, 0x01020304));
    CHECK_INT_EQ(ck_writer_u8(&w, 0), CK_ERR_LIMIT);
    out = ck_writer_take(&w, &len);
    CHECK_MEM_EQ(out, len, "\xab\xcd\x01\x02\x03\x04", 6);
    free(out);
    ck_writer_free(&w);
}

static void
parse_int(void)
{
    int64_t v = 0;

    CHECK_OK(ck_parse_int64("88", 1, 65535, &v));
    CHECK_INT_EQ(v, 88);
    CHECK_INT_EQ(ck_parse_int64("88x", 1, 65535, &v), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_parse_int64("70000", 1, 65535, &v), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_parse_int64("", 1, 65535, &v), CK_ERR_INVAL);
}

static void
error_context(void)
{
    int rc = ck_error_set(CK_ERR_DECODE, "field %s", "nonce");

    CHECK_INT_EQ(rc, CK_ERR_DECODE);
    CHECK(strcmp(ck_error_context(), "field nonce") == 0);
    CHECK(ck_ct_equal("abc", "abc", 3));
    CHECK(!ck_ct_equal("abc", "abd", 3));
}

static bool
file_is(const char *path, const char *content)
{
    char buf[64];
    FILE *f = fopen(path, "rb");
    size_t n;

    if (f == NULL)
        return false;
    n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    return n == strlen(content) && memcmp(buf, content, n) == 0;
}

/* ck_file_write_atomic: 0600 for new files, no replace without the flag (dangling symlinks
 * included), PRESERVE keeps owner/group/mode and writes through symlinks, plain REPLACE puts a
 * file where a symlink was. */
static void
atomic_write(void)
{
    char dir[] = "/tmp/ck-io-XXXXXX", a[64], b[64], l1[64], l2[64], d[64], cmd[96];
    struct stat st;
    mode_t old_umask = umask(0);

    if (mkdtemp(dir) == NULL)
        abort();
    snprintf(a, sizeof(a), "%s/a", dir);
    snprintf(b, sizeof(b), "%s/sub/b", dir);
    snprintf(l1, sizeof(l1), "%s/l1", dir);
    snprintf(l2, sizeof(l2), "%s/l2", dir);
    snprintf(d, sizeof(d), "%s/d", dir);

    CHECK_OK(ck_file_write_atomic(a, "one", 3, 0));
    CHECK(stat(a, &st) == 0 && (st.st_mode & 07777) == 0600 && file_is(a, "one"));
    CHECK_INT_EQ(ck_file_write_atomic(a, "two", 3, 0), CK_ERR_EXISTS);
    CHECK(file_is(a, "one"));

    /* PRESERVE over a 0640 file of another owner and group. */
    CHECK(chmod(a, 0640) == 0);
    if (geteuid() == 0)
        CHECK(chown(a, 65534, 65534) == 0);
    CHECK_OK(ck_file_write_atomic(a, "two", 3, CK_WRITE_PRESERVE));
    CHECK(stat(a, &st) == 0 && (st.st_mode & 07777) == 0640 && file_is(a, "two"));
    if (geteuid() == 0)
        CHECK(st.st_uid == 65534 && st.st_gid == 65534);

    /* Symlink chain l2 -> l1 -> sub/b (relative), b in a subdirectory. */
    CHECK(mkdir(d, 0700) == 0);
    snprintf(cmd, sizeof(cmd), "%s/sub", dir);
    CHECK(mkdir(cmd, 0700) == 0);
    CHECK(symlink("sub/b", l1) == 0);
    CHECK(symlink("l1", l2) == 0);
    /* No replace: even a dangling symlink's name is taken. */
    CHECK_INT_EQ(ck_file_write_atomic(l2, "x", 1, 0), CK_ERR_EXISTS);
    CHECK_OK(ck_file_write_atomic(l2, "three", 5, CK_WRITE_PRESERVE));
    CHECK(lstat(l2, &st) == 0 && S_ISLNK(st.st_mode));
    CHECK(lstat(l1, &st) == 0 && S_ISLNK(st.st_mode));
    CHECK(stat(b, &st) == 0 && (st.st_mode & 07777) == 0600 && file_is(b, "three"));
    CHECK(chmod(b, 0644) == 0);
    CHECK_OK(ck_file_write_atomic(l2, "four", 4, CK_WRITE_PRESERVE));
    CHECK(stat(b, &st) == 0 && (st.st_mode & 07777) == 0644 && file_is(b, "four"));
    /* Plain REPLACE replaces the link itself by a 0600 file. */
    CHECK_OK(ck_file_write_atomic(l2, "five", 4, CK_WRITE_REPLACE));
    CHECK(lstat(l2, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0600);
    CHECK(file_is(b, "four"));
    /* A directory is never replaced. */
    CHECK_INT_EQ(ck_file_write_atomic(d, "x", 1, CK_WRITE_PRESERVE), CK_ERR_IO);
    CHECK(stat(d, &st) == 0 && S_ISDIR(st.st_mode));
    /* A loop of links is an error, not a hang. */
    snprintf(a, sizeof(a), "%s/loop", dir);
    CHECK(symlink("loop", a) == 0);
    CHECK_INT_EQ(ck_file_write_atomic(a, "x", 1, CK_WRITE_PRESERVE), CK_ERR_IO);

    umask(old_umask);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "  could not remove %s\n", dir);
}

CK_TEST_MAIN("util", CK_TEST_CASE(reader_bounds), CK_TEST_CASE(writer_limit),
             CK_TEST_CASE(parse_int), CK_TEST_CASE(error_context), CK_TEST_CASE(atomic_write))
