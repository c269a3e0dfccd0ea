/* Profile parser: good files, every syntax error with its line number, limits, includes, and the
 * duration and boolean value parsers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cablekey/profile.h"
#include "ck_test.h"

static const char good[] =
    "# leading comment\n"
    "; another comment\n"
    "[kdcdefaults]\n"
    "    kdc_listen = 127.0.0.1:88 [::1]:88   \n"
    "\tkdc_max_request_size=4096\n"
    "\n"
    "[realms]*\n"
    "    EXAMPLE.TEST = {\n"
    "        database_name = /var/lib/cablekey/kdc.db\n"
    "        max_life = 10h\n"
    "        supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts:normal\n"
    "        supported_enctypes = aes256-sha2\n"
    "        final* = yes\n"
    "        quoted = \"a \\\"b\\\"\\tc\"\n"
    "        nested = {\n"
    "            deep = 1\n"
    "        }*\n"
    "    }\n"
    "    OTHER.TEST =\n"
    "    {\n"
    "        max_life = 1h\n"
    "    }\n"
    "[logging]\n"
    "    kdc = FILE:/var/log/cablekey-kdc.log\n"
    "[realms]\n"
    "    THIRD.TEST = {\n"
    "    }\n"
    "    EXAMPLE.TEST = {\n"
    "        max_life = 20h\n"
    "    }\n";

static void
test_good(void)
{
    struct ck_profile *p = NULL;
    const char *vals[4], *names[8];

    CHECK_OK(ck_profile_parse_string(good, "good.conf", &p));
    CHECK(p != NULL);
    if (p == NULL)
        return;
    CHECK(strcmp(ck_profile_get(p, "kdcdefaults", "kdc_listen", NULL),
                 "127.0.0.1:88 [::1]:88") == 0);
    CHECK(strcmp(ck_profile_get(p, "kdcdefaults", "kdc_max_request_size", NULL), "4096") == 0);
    CHECK(strcmp(ck_profile_get(p, "realms", "EXAMPLE.TEST", "max_life", NULL), "10h") == 0);
    CHECK(strcmp(ck_profile_get(p, "realms", "OTHER.TEST", "max_life", NULL), "1h") == 0);
    CHECK(strcmp(ck_profile_get(p, "realms", "EXAMPLE.TEST", "final", NULL), "yes") == 0);
    CHECK(strcmp(ck_profile_get(p, "realms", "EXAMPLE.TEST", "quoted", NULL), "a \"b\"\tc") == 0);
    CHECK(strcmp(ck_profile_get(p, "realms", "EXAMPLE.TEST", "nested", "deep", NULL), "1") == 0);
    CHECK(strcmp(ck_profile_get(p, "logging", "kdc", NULL), "FILE:/var/log/cablekey-kdc.log") == 0);
    CHECK(ck_profile_get(p, "realms", "EXAMPLE.TEST", "missing", NULL) == NULL);
    CHECK(ck_profile_get(p, "nosuch", "x", NULL) == NULL);
    /* A subsection is not a value. */
    CHECK(ck_profile_get(p, "realms", "EXAMPLE.TEST", NULL) == NULL);

    CHECK_INT_EQ(ck_profile_get_all(p, vals, 4, "realms", "EXAMPLE.TEST", "supported_enctypes",
                                    NULL), 2);
    CHECK(strcmp(vals[0], "aes256-cts-hmac-sha1-96:normal aes128-cts:normal") == 0);
    CHECK(strcmp(vals[1], "aes256-sha2") == 0);
    /* The repeated EXAMPLE.TEST block adds a second max_life after the first. */
    CHECK_INT_EQ(ck_profile_get_all(p, vals, 4, "realms", "EXAMPLE.TEST", "max_life", NULL), 2);
    CHECK(strcmp(vals[1], "20h") == 0);
    CHECK_INT_EQ(ck_profile_get_all(p, vals, 1, "realms", "EXAMPLE.TEST", "max_life", NULL), 2);

    CHECK_INT_EQ(ck_profile_subsections(p, names, 8, "realms", NULL), 3);
    CHECK(strcmp(names[0], "EXAMPLE.TEST") == 0);
    CHECK(strcmp(names[1], "OTHER.TEST") == 0);
    CHECK(strcmp(names[2], "THIRD.TEST") == 0);
    /* Top level: the sections, [realms] merged. */
    CHECK_INT_EQ(ck_profile_subsections(p, names, 8, NULL), 3);
    CHECK(strcmp(names[1], "realms") == 0);
    CHECK_INT_EQ(ck_profile_relations(p, names, 8, "realms", "EXAMPLE.TEST", NULL), 5);
    ck_profile_free(p);
    ck_profile_free(NULL);
}

/* Parses text, expects failure with code and "name:line:" in the context. */
static void
expect_error(const char *text, int code, int line)
{
    struct ck_profile *p = NULL;
    char want[64];
    int rc = ck_profile_parse_string(text, "bad.conf", &p);

    snprintf(want, sizeof(want), "bad.conf:%d:", line);
    CHECK_INT_EQ(rc, code);
    CHECK(p == NULL);
    if (strncmp(ck_error_context(), want, strlen(want)) != 0) {
        fprintf(stderr, "  context \"%s\", expected prefix \"%s\"\n", ck_error_context(), want);
        ck_test_case_failed = 1;
    }
    ck_profile_free(p);
}

static void
test_errors(void)
{
    expect_error("[realms]\n  R = {\n    a = 1\n", CK_ERR_CONFIG, 2);     /* unclosed brace */
    expect_error("a = 1\n[realms]\n", CK_ERR_CONFIG, 1);                /* outside a section */
    expect_error("[libdefaults]\n}\n", CK_ERR_CONFIG, 2);               /* stray brace */
    expect_error("[libdefaults\n", CK_ERR_CONFIG, 1);
    expect_error("[]\n", CK_ERR_CONFIG, 1);
    expect_error("[a] x\n", CK_ERR_CONFIG, 1);
    expect_error("[a]\nno equals sign\n", CK_ERR_CONFIG, 2);
    expect_error("[a]\n = value\n", CK_ERR_CONFIG, 2);
    expect_error("[a]\ntwo words = value\n", CK_ERR_CONFIG, 2);
    expect_error("[a]\nx = \"unterminated\n", CK_ERR_CONFIG, 2);
    expect_error("[a]\nx = {junk\n", CK_ERR_CONFIG, 2);
    expect_error("[a]\nx =\ny = 1\n", CK_ERR_CONFIG, 3);                /* '{' expected */
    expect_error("[a]\nx =\n", CK_ERR_CONFIG, 2);
    expect_error("[a]\nx = {\n[b]\n}\n", CK_ERR_CONFIG, 3);             /* header in braces */
    expect_error("[a]\n\n\n\ninclude\n", CK_ERR_CONFIG, 5);
}

static void
test_limits(void)
{
    char *text = malloc(CK_PROFILE_MAX_FILE + 64);
    size_t n = 0;

    if (text == NULL)
        abort();
    /* Nine nested braces: one too deep. */
    n = (size_t)snprintf(text, 64, "[a]\n");
    for (int i = 0; i < CK_PROFILE_MAX_DEPTH + 1; i++)
        n += (size_t)snprintf(text + n, 64, "t%d = {\n", i);
    expect_error(text, CK_ERR_LIMIT, 1 + CK_PROFILE_MAX_DEPTH + 1);
    /* Eight levels are fine. */
    {
        struct ck_profile *p = NULL;
        n = (size_t)snprintf(text, 64, "[a]\n");
        for (int i = 0; i < CK_PROFILE_MAX_DEPTH; i++)
            n += (size_t)snprintf(text + n, 64, "t%d = {\n", i);
        n += (size_t)snprintf(text + n, 64, "v = deep\n");
        for (int i = 0; i < CK_PROFILE_MAX_DEPTH; i++)
            n += (size_t)snprintf(text + n, 64, "}\n");
        CHECK_OK(ck_profile_parse_string(text, "ok", &p));
        CHECK(p != NULL &&
              strcmp(ck_profile_get(p, "a", "t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7", "v",
                                    NULL), "deep") == 0);
        ck_profile_free(p);
    }
    /* A line of 4097 bytes on line 3. */
    n = (size_t)snprintf(text, 64, "[a]\n# ok\nx = ");
    memset(text + n, 'v', CK_PROFILE_MAX_LINE + 1 - 4);
    n += CK_PROFILE_MAX_LINE + 1 - 4;
    memcpy(text + n, "\n", 2);
    expect_error(text, CK_ERR_LIMIT, 3);
    /* Exactly 4096 is accepted. */
    {
        struct ck_profile *p = NULL;
        text[n - 1] = '\n';
        text[n] = '\0';
        CHECK_OK(ck_profile_parse_string(text, "ok", &p));
        ck_profile_free(p);
    }
    /* Over 1 MiB. */
    memset(text, '#', CK_PROFILE_MAX_FILE + 1);
    text[CK_PROFILE_MAX_FILE + 1] = '\0';
    {
        struct ck_profile *p = NULL;
        CHECK_INT_EQ(ck_profile_parse_string(text, "big", &p), CK_ERR_LIMIT);
        CHECK(p == NULL);
    }
    free(text);
}

static void
write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        abort();
    }
}

static void
test_files_and_includes(void)
{
    char dir[] = "/tmp/ck_profile_XXXXXX";
    char path[256], buf[512];
    struct ck_profile *p = NULL;
    const char *vals[8];

    if (mkdtemp(dir) == NULL)
        abort();
    snprintf(path, sizeof(path), "%s/conf.d", dir);
    mkdir(path, 0700);
    snprintf(path, sizeof(path), "%s/conf.d/10-a.conf", dir);
    write_file(path, "[realms]\n R = {\n  max_life = 1h\n }\n");
    snprintf(path, sizeof(path), "%s/conf.d/20_b", dir);
    write_file(path, "[realms]\n R = {\n  max_life = 2h\n }\n");
    snprintf(path, sizeof(path), "%s/conf.d/30-c.conf~", dir);  /* skipped: editor backup */
    write_file(path, "this is not a profile\n");
    snprintf(path, sizeof(path), "%s/extra.conf", dir);
    write_file(path, "[logging]\n kdc = STDERR\n");
    snprintf(path, sizeof(path), "%s/main.conf", dir);
    write_file(path, "[kdcdefaults]\n kdc_workers = 2\ninclude extra.conf\nincludedir conf.d\n");

    CHECK_OK(ck_profile_load(path, &p));
    CHECK(p != NULL && strcmp(ck_profile_get(p, "kdcdefaults", "kdc_workers", NULL), "2") == 0);
    CHECK(p != NULL && strcmp(ck_profile_get(p, "logging", "kdc", NULL), "STDERR") == 0);
    CHECK_INT_EQ(ck_profile_get_all(p, vals, 8, "realms", "R", "max_life", NULL), 2);
    CHECK(strcmp(vals[0], "1h") == 0 && strcmp(vals[1], "2h") == 0);
    ck_profile_free(p);
    p = NULL;

    /* An error inside an included file names that file. */
    snprintf(path, sizeof(path), "%s/extra.conf", dir);
    write_file(path, "[logging]\n kdc = {\n");
    snprintf(path, sizeof(path), "%s/main.conf", dir);
    CHECK_INT_EQ(ck_profile_load(path, &p), CK_ERR_CONFIG);
    snprintf(buf, sizeof(buf), "%s/extra.conf:2:", dir);
    CHECK(strncmp(ck_error_context(), buf, strlen(buf)) == 0);

    /* A file including itself stops at the depth limit. */
    snprintf(path, sizeof(path), "%s/loop.conf", dir);
    write_file(path, "[a]\ninclude loop.conf\n");
    CHECK_INT_EQ(ck_profile_load(path, &p), CK_ERR_LIMIT);
    CHECK(p == NULL);

    /* Missing files. */
    snprintf(path, sizeof(path), "%s/missing.conf", dir);
    CHECK_INT_EQ(ck_profile_load(path, &p), CK_ERR_NOTFOUND);
    snprintf(path, sizeof(path), "%s/main.conf", dir);
    write_file(path, "[a]\ninclude nonexistent.conf\n");
    CHECK_INT_EQ(ck_profile_load(path, &p), CK_ERR_NOTFOUND);
    snprintf(buf, sizeof(buf), "%s:2:", path);
    CHECK(strncmp(ck_error_context(), buf, strlen(buf)) == 0);

    snprintf(buf, sizeof(buf), "rm -rf '%s'", dir);
    if (system(buf) != 0)
        fprintf(stderr, "  (could not remove %s)\n", dir);
}

static void
test_duration(void)
{
    static const struct {
        const char *s;
        int64_t secs;
    } ok[] = {
        {"36000", 36000}, {"10h", 36000},   {"7d", 604800},       {"1d2h30m", 95400},
        {"1d 2h 30m 10s", 95410}, {"30s", 30}, {"10:00:00", 36000}, {"1:30", 5400},
        {" 5m ", 300},    {"0", 0},         {"2147483647", 2147483647},
    };
    static const char *const bad[] = {
        "", "   ", "h", "10x", "-5", "1h2d", "1h1h", "10:60", "1:2:3:4", "2147483648",
        "24856d", "1.5h", "10 h x", ":30", "10:",
    };
    int64_t v;

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        v = -1;
        CHECK_OK(ck_parse_duration(ok[i].s, &v));
        CHECK_INT_EQ(v, ok[i].secs);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (ck_parse_duration(bad[i], &v) != CK_ERR_INVAL) {
            fprintf(stderr, "  duration \"%s\" accepted\n", bad[i]);
            ck_test_case_failed = 1;
        }
    }
}

static void
test_bool(void)
{
    bool b = false;

    CHECK_OK(ck_parse_bool("true", &b));
    CHECK(b);
    CHECK_OK(ck_parse_bool("No", &b));
    CHECK(!b);
    CHECK_OK(ck_parse_bool("ON", &b));
    CHECK(b);
    CHECK_OK(ck_parse_bool("0", &b));
    CHECK(!b);
    CHECK_INT_EQ(ck_parse_bool("maybe", &b), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_parse_bool("", &b), CK_ERR_INVAL);
}

CK_TEST_MAIN("profile", CK_TEST_CASE(test_good), CK_TEST_CASE(test_errors),
             CK_TEST_CASE(test_limits), CK_TEST_CASE(test_files_and_includes),
             CK_TEST_CASE(test_duration), CK_TEST_CASE(test_bool))
