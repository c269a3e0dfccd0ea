#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ck_test.h"
#include "cablekey/keytab.h"
#include "cablekey/util.h"

#define GOLDEN_PASSWORD "Secret-Pa55word"

static char tmpdir[64];

static void
make_tmpdir(void)
{
    ck_strlcpy(tmpdir, "/tmp/ck-keytab-XXXXXX", sizeof(tmpdir));
    if (mkdtemp(tmpdir) == NULL)
        abort();
}

static void
remove_tmpdir(void)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "  could not remove %s\n", tmpdir);
}

/* A keytab with two principals, three entries, one kvno above 255. */
static ck_keytab *
sample_keytab(void)
{
    ck_keytab *kt = NULL;
    ck_principal *a = NULL, *h = NULL;
    ck_key k1, k2, k3;
    uint8_t b32[32], b16[16];

    for (int i = 0; i < 32; i++)
        b32[i] = (uint8_t)(0xa0 + i);
    for (int i = 0; i < 16; i++)
        b16[i] = (uint8_t)(0x10 + i);
    CHECK_OK(ck_keytab_new(&kt));
    CHECK_OK(ck_principal_parse("alice@TEST.REALM", NULL, 0, &a));
    CHECK_OK(ck_principal_parse("host/h.test.realm@TEST.REALM", NULL, 0, &h));
    if (kt == NULL || a == NULL || h == NULL)
        abort();
    h->name_type = 3;
    /* Filled directly so this test does not depend on the crypto module. */
    memset(&k1, 0, sizeof(k1));
    k1.enctype = 18;
    k1.length = 32;
    memcpy(k1.contents, b32, 32);
    k2 = k1;
    k2.enctype = 17;
    k2.length = 16;
    memcpy(k2.contents, b16, 16);
    k3 = k1;
    k3.enctype = 20;
    k3.contents[0] ^= 0xff;
    CHECK_OK(ck_keytab_add(kt, a, 3, 1700000000, &k1));
    CHECK_OK(ck_keytab_add(kt, a, 3, 1700000000, &k2));
    CHECK_OK(ck_keytab_add(kt, h, 300, 0, &k3));
    ck_principal_free(a);
    ck_principal_free(h);
    return kt;
}

static void
check_same(const ck_keytab *a, const ck_keytab *b)
{
    CHECK_INT_EQ(a->n_entries, b->n_entries);
    for (size_t i = 0; i < a->n_entries && i < b->n_entries; i++) {
        CHECK(ck_principal_equal(a->entries[i].principal, b->entries[i].principal));
        CHECK_INT_EQ(a->entries[i].principal->name_type, b->entries[i].principal->name_type);
        CHECK_INT_EQ(a->entries[i].kvno, b->entries[i].kvno);
        CHECK_INT_EQ(a->entries[i].timestamp, b->entries[i].timestamp);
        CHECK_INT_EQ(a->entries[i].key.enctype, b->entries[i].key.enctype);
        CHECK_MEM_EQ(a->entries[i].key.contents, a->entries[i].key.length,
                     b->entries[i].key.contents, b->entries[i].key.length);
    }
}

static void
roundtrip(void)
{
    ck_keytab *kt = sample_keytab(), *back = NULL, *file = NULL;
    uint8_t *img = NULL;
    size_t len = 0;
    char path[128];
    struct stat st;

    CHECK_OK(ck_keytab_encode(kt, &img, &len));
    CHECK(len > 2 && img[0] == 0x05 && img[1] == 0x02);
    CHECK_OK(ck_keytab_decode(img, len, &back));
    if (back != NULL)
        check_same(kt, back);

    make_tmpdir();
    snprintf(path, sizeof(path), "%s/test.keytab", tmpdir);
    CHECK_OK(ck_keytab_write(path, kt));
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
    /* Overwrite atomically with the same content, then read. */
    CHECK_OK(ck_keytab_write(path, kt));
    CHECK_OK(ck_keytab_read(path, &file));
    if (file != NULL) {
        const ck_keytab_entry *e;
        check_same(kt, file);
        e = ck_keytab_find(file, kt->entries[0].principal, 0, 17);
        CHECK(e != NULL && e->kvno == 3 && e->key.length == 16);
        e = ck_keytab_find(file, kt->entries[2].principal, 0, 0);
        CHECK(e != NULL && e->kvno == 300);
        CHECK(ck_keytab_find(file, kt->entries[0].principal, 4, 0) == NULL);
    }
    snprintf(path, sizeof(path), "%s/absent.keytab", tmpdir);
    {
        ck_keytab *none = NULL;
        CHECK_INT_EQ(ck_keytab_read(path, &none), CK_ERR_NOTFOUND);
    }
    remove_tmpdir();
    ck_free_secret(img, len);
    ck_keytab_free(kt);
    ck_keytab_free(back);
    ck_keytab_free(file);
}

static void
mit_golden(void)
{
    ck_keytab *kt = NULL;
    ck_principal *alice = NULL, *host = NULL;
    const ck_keytab_entry *e;
    uint8_t *salt = NULL;
    size_t salt_len = 0;
    ck_key k;

    CHECK_OK(ck_keytab_read("vectors/keytab/mit_alice.keytab", &kt));
    CHECK_OK(ck_principal_parse("alice@TEST.REALM", NULL, 0, &alice));
    if (kt == NULL || alice == NULL)
        goto out;
    CHECK_INT_EQ(kt->n_entries, 1);
    e = ck_keytab_find(kt, alice, 3, CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96);
    CHECK(e != NULL);
    if (e == NULL)
        goto out;
    CHECK_INT_EQ(e->principal->name_type, 1);
    {
        size_t n = 0;
        unsigned char *want = ck_test_hex("f12b93b81bc520a1c7b6031f100b9f445a4c6809afb0abe4ad90323170a07d34", &n);
        CHECK_MEM_EQ(e->key.contents, e->key.length, want, n);
        free(want);
    }
    /* Our string-to-key of the README's password must give MIT's key. */
    CHECK_OK(ck_principal_default_salt(alice, &salt, &salt_len));
    memset(&k, 0, sizeof(k));
    CHECK_OK(ck_string_to_key(e->key.enctype, GOLDEN_PASSWORD, strlen(GOLDEN_PASSWORD), salt,
                              salt_len, NULL, 0, &k));
    CHECK_MEM_EQ(k.contents, k.length, e->key.contents, e->key.length);
    ck_key_clear(&k);
    free(salt);
    salt = NULL;
    ck_keytab_free(kt);
    kt = NULL;

    /* Two sha2 enctypes and a 32-bit kvno. */
    CHECK_OK(ck_keytab_read("vectors/keytab/mit_multi.keytab", &kt));
    CHECK_OK(ck_principal_parse("host/h.test.realm@TEST.REALM", NULL, 0, &host));
    if (kt == NULL || host == NULL)
        goto out;
    CHECK_INT_EQ(kt->n_entries, 2);
    for (size_t i = 0; i < kt->n_entries; i++) {
        e = &kt->entries[i];
        CHECK_OK(ck_principal_default_salt(e->principal, &salt, &salt_len));
        memset(&k, 0, sizeof(k));
        CHECK_OK(ck_string_to_key(e->key.enctype, GOLDEN_PASSWORD, strlen(GOLDEN_PASSWORD),
                                  salt, salt_len, NULL, 0, &k));
        CHECK_MEM_EQ(k.contents, k.length, e->key.contents, e->key.length);
        ck_key_clear(&k);
        free(salt);
        salt = NULL;
    }
    e = ck_keytab_find(kt, host, 0, 0);
    CHECK(e != NULL && e->kvno == 300 && e->key.enctype == CK_ENCTYPE_AES256_CTS_HMAC_SHA384_192);
    e = ck_keytab_find(kt, alice, 0, 0);
    CHECK(e != NULL && e->kvno == 4 && e->key.enctype == CK_ENCTYPE_AES128_CTS_HMAC_SHA256_128);
out:
    free(salt);
    ck_principal_free(alice);
    ck_principal_free(host);
    ck_keytab_free(kt);
}

/* MIT's klist must list a keytab we wrote, with the same keys. */
static void
mit_reads_ours(void)
{
    ck_keytab *kt = sample_keytab();
    char path[128], cmd[256], line[512];
    int found_a = 0, found_h = 0;
    FILE *p;

    if (access("/usr/bin/klist", X_OK) != 0) {
        /* A missing third-party tool is a failure, never a silent pass. */
        fprintf(stderr, "  mit_reads_ours: /usr/bin/klist not installed (scripts/install-deps.sh)\n");
        ck_test_case_failed = 1;
        ck_keytab_free(kt);
        return;
    }
    make_tmpdir();
    snprintf(path, sizeof(path), "%s/ours.keytab", tmpdir);
    CHECK_OK(ck_keytab_write(path, kt));
    snprintf(cmd, sizeof(cmd), "/usr/bin/klist -k -e -K '%s' 2>&1", path);
    p = popen(cmd, "r");
    CHECK(p != NULL);
    while (p != NULL && fgets(line, sizeof(line), p) != NULL) {
        if (strstr(line, "alice@TEST.REALM (aes256-cts-hmac-sha1-96)") != NULL &&
            strstr(line, "(0xa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf)"))
            found_a++;
        if (strstr(line, "host/h.test.realm@TEST.REALM (aes256-cts-hmac-sha384-192)") &&
            strstr(line, " 300 ") != NULL && strstr(line, "(0x5fa1a2a3"))
            found_h++;
        if (strstr(line, "alice@TEST.REALM (aes128-cts-hmac-sha1-96)") != NULL &&
            strstr(line, "(0x101112131415161718191a1b1c1d1e1f)"))
            found_a++;
    }
    CHECK(p != NULL && pclose(p) == 0);
    CHECK_INT_EQ(found_a, 2);
    CHECK_INT_EQ(found_h, 1);
    remove_tmpdir();
    ck_keytab_free(kt);
}

static void
hostile(void)
{
    ck_keytab *kt = sample_keytab(), *out = NULL;
    uint8_t *img = NULL, *buf;
    size_t len = 0, first_entry_end;
    int ret;

    CHECK_OK(ck_keytab_encode(kt, &img, &len));
    if (img == NULL)
        goto done;
    first_entry_end = 2 + 4 + ((size_t)img[2] << 24 | (size_t)img[3] << 16 |
                               (size_t)img[4] << 8 | img[5]);
    /* Every truncation is refused, except exactly at an entry boundary. */
    for (size_t n = 0; n < len; n++) {
        bool boundary = false;
        for (size_t b = 2; b <= n; b += 4 + ((size_t)img[b] << 24 | (size_t)img[b + 1] << 16 |
                                               (size_t)img[b + 2] << 8 | img[b + 3])) {
            if (b == n)
                boundary = true;
            if (b + 4 > len)
                break;
        }
        ret = ck_keytab_decode(img, n, &out);
        if (boundary) {
            CHECK_OK(ret);
        } else if (ret != CK_ERR_DECODE) {
            fprintf(stderr, "  truncation at %zu: %d\n", n, ret);
            CHECK(ret == CK_ERR_DECODE);
        }
        ck_keytab_free(out);
        out = NULL;
    }
    /* Bad version. */
    buf = ck_memdup(img, len);
    buf[1] = 0x03;
    CHECK_INT_EQ(ck_keytab_decode(buf, len, &out), CK_ERR_DECODE);
    buf[1] = 0x01;
    CHECK(ck_keytab_decode(buf, len, &out) != 0);
    buf[1] = 0x02;
    /* First entry size far too large. */
    buf[2] = 0x7f;
    CHECK_INT_EQ(ck_keytab_decode(buf, len, &out), CK_ERR_DECODE);
    /* Entry size larger than the remaining data. */
    buf[2] = 0x00;
    buf[4] = 0x01;
    CHECK_INT_EQ(ck_keytab_decode(buf, len, &out), CK_ERR_DECODE);
    memcpy(buf, img, len);
    /* Component count 0, then too many. */
    buf[7] = 0;
    CHECK_INT_EQ(ck_keytab_decode(buf, len, &out), CK_ERR_DECODE);
    buf[7] = 200;
    CHECK_INT_EQ(ck_keytab_decode(buf, len, &out), CK_ERR_DECODE);
    memcpy(buf, img, len);
    /* Realm length pointing beyond the entry. */
    buf[9] = 0xff;
    CHECK_INT_EQ(ck_keytab_decode(buf, len, &out), CK_ERR_DECODE);
    memcpy(buf, img, len);
    /* Turning the first entry into a hole hides it. */
    {
        uint32_t sz = (uint32_t)(first_entry_end - 6);
        uint32_t neg = (uint32_t)(-(int32_t)sz);
        buf[2] = (uint8_t)(neg >> 24);
        buf[3] = (uint8_t)(neg >> 16);
        buf[4] = (uint8_t)(neg >> 8);
        buf[5] = (uint8_t)neg;
        CHECK_OK(ck_keytab_decode(buf, len, &out));
        CHECK(out != NULL && out->n_entries == 2);
        ck_keytab_free(out);
        out = NULL;
    }
    /* Garbage: deterministic pseudo-random bytes behind a valid version never crash. */
    {
        uint32_t x = 12345;
        for (int round = 0; round < 2000; round++) {
            size_t n = 2 + (size_t)(round % 200);
            uint8_t g[256];
            g[0] = 5;
            g[1] = 2;
            for (size_t i = 2; i < n; i++) {
                x = x * 1103515245u + 12345u;
                g[i] = (uint8_t)(x >> 16);
            }
            if ((round & 1) == 0 && n > 6) {
                g[2] = g[3] = 0;
                g[4] = 0;
                g[5] = (uint8_t)(n - 6);
            }
            ret = ck_keytab_decode(g, n, &out);
            CHECK(ret == 0 || ret == CK_ERR_DECODE);
            ck_keytab_free(out);
            out = NULL;
        }
    }
    free(buf);
done:
    ck_free_secret(img, len);
    ck_keytab_free(kt);
}

/* The entry limit holds, and a file at the limit decodes in linear time. */
static void
many_entries(void)
{
    static const uint8_t entry[] = {0, 0, 0, 21, 0, 1, 0, 1, 'R', 0, 1, 'a', 0, 0, 0, 1,
                                    0, 0, 0, 0, 7, 0, 18, 0, 0};
    size_t n = CK_KEYTAB_MAX_ENTRIES + 1, len = 2 + n * sizeof(entry);
    uint8_t *img = malloc(len);
    ck_keytab *kt = NULL;
    int64_t t0 = ck_monotonic_ms();

    img[0] = 5;
    img[1] = 2;
    for (size_t i = 0; i < n; i++)
        memcpy(img + 2 + i * sizeof(entry), entry, sizeof(entry));
    CHECK_INT_EQ(ck_keytab_decode(img, len, &kt), CK_ERR_DECODE);
    CHECK(kt == NULL);
    CHECK_OK(ck_keytab_decode(img, len - sizeof(entry), &kt));
    CHECK(kt != NULL && kt->n_entries == CK_KEYTAB_MAX_ENTRIES);
    CHECK(kt != NULL && kt->entries[100].kvno == 7 && kt->entries[100].key.length == 0);
    CHECK(ck_monotonic_ms() - t0 < 5000);
    ck_keytab_free(kt);
    free(img);
}

CK_TEST_MAIN("keytab", CK_TEST_CASE(many_entries), CK_TEST_CASE(roundtrip), CK_TEST_CASE(mit_golden),
             CK_TEST_CASE(mit_reads_ours), CK_TEST_CASE(hostile))
