/* The cablekey-admind ACL: parser (fail closed, file:line) and matcher (MIT kadm5.acl
 * semantics: component wildcards, first match decides, upper case denies, backreferences). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cablekey/admin.h"
#include "ck_test.h"

#define R "TEST.REALM"

static struct ck_admin_acl *
acl_of(const char *text)
{
    struct ck_admin_acl *acl = NULL;
    int rc = ck_admin_acl_parse(text, strlen(text), "t.acl", R, &acl);

    if (rc != 0)
        fprintf(stderr, "  acl parse: %s\n", ck_error_context());
    return acl;
}

/* Parsing must fail with CK_ERR_CONFIG (or LIMIT) and the context must name file:line. */
static void
expect_bad(const char *text, const char *where)
{
    struct ck_admin_acl *acl = NULL;
    int rc = ck_admin_acl_parse(text, strlen(text), "t.acl", R, &acl);

    CHECK(rc == CK_ERR_CONFIG || rc == CK_ERR_LIMIT);
    CHECK(acl == NULL);
    if (strstr(ck_error_context(), where) == NULL) {
        fprintf(stderr, "  context \"%s\" lacks \"%s\"\n", ck_error_context(), where);
        ck_test_case_failed = 1;
    }
}

static void
test_parse_ok(void)
{
    struct ck_admin_acl *acl = acl_of("# comment\n\n   \n*/admin@TEST.REALM *\n"
                                      "alice@TEST.REALM  il\t*@TEST.REALM\r\n"
                                      "bob li\n");
    CHECK(acl != NULL);
    CHECK_INT_EQ(ck_admin_acl_entries(acl), 3);
    ck_admin_acl_free(acl);
    ck_admin_acl_free(NULL);
    acl = acl_of("");
    CHECK(acl != NULL);
    CHECK_INT_EQ(ck_admin_acl_entries(acl), 0);
    CHECK(!ck_admin_acl_check(acl, "alice@" R, NULL, CK_ADMIN_PERM_LIST, NULL));
    ck_admin_acl_free(acl);
}

static void
test_parse_errors(void)
{
    expect_bad("alice@TEST.REALM\n", "t.acl:1:");
    expect_bad("# ok\nalice@TEST.REALM q\n", "t.acl:2:");
    expect_bad("alice il\nbob ail x@R -maxlife 1h\n", "t.acl:2: restrictions");
    expect_bad("alice il\n\nbob ai *3@R\n", "t.acl:3: target refers to wildcard 3");
    expect_bad("*/admin a *2@R\n", "wildcard 2");
    expect_bad("x@* a *1/y@R\n", "wildcard 1");        /* the realm wildcard is not counted */
    expect_bad("*/*@R a x@*1\n", "not to the realm");
    expect_bad("* a *1\n", "wildcard 1");
    expect_bad("a/b il *x@R\n", "bad wildcard");
    expect_bad("al\\ ice i\n", "t.acl:1:");           /* trailing escape in a pattern */
    expect_bad("alice i\nbob i\nca\x01rl i\n", "t.acl:3: control character");
    {
        char text[] = "alice i\nbob\0 i\n";
        struct ck_admin_acl *acl = NULL;
        CHECK(ck_admin_acl_parse(text, sizeof(text) - 1, "t.acl", R, &acl) == CK_ERR_CONFIG);
        CHECK(strstr(ck_error_context(), "t.acl:2: NUL") != NULL);
    }
    {
        char *big = malloc(CK_ADMIN_ACL_MAX_LINE + 100);
        memset(big, 'a', CK_ADMIN_ACL_MAX_LINE + 10);
        memcpy(big + CK_ADMIN_ACL_MAX_LINE + 10, " i\n", 4);
        expect_bad(big, "t.acl:1: line longer");
        free(big);
    }
    {
        struct ck_admin_acl *acl = NULL;
        CHECK(ck_admin_acl_parse("a i\n", 4, "t.acl", NULL, &acl) == CK_ERR_INVAL);
    }
}

static void
test_match_basic(void)
{
    struct ck_admin_acl *acl = acl_of("*/admin@TEST.REALM *\n"
                                      "alice@TEST.REALM il\n"
                                      "carol ai  svc/*@TEST.REALM\n"
                                      "*@OTHER.REALM l\n");
    unsigned line;

    CHECK(acl != NULL);
    CHECK(ck_admin_acl_check(acl, "joe/admin@" R, "bob@" R, CK_ADMIN_PERM_ADD, &line));
    CHECK_INT_EQ(line, 1);
    CHECK(ck_admin_acl_check(acl, "joe/admin@" R, "bob@" R,
                             CK_ADMIN_PERM_ALL, NULL));
    /* x/'*' do not include e (MIT). */
    CHECK(!ck_admin_acl_check(acl, "joe/admin@" R, "bob@" R, CK_ADMIN_PERM_EXTRACT, NULL));
    /* Component-wise: three components are not "*" + "admin". */
    CHECK(!ck_admin_acl_check(acl, "joe/admin/x@" R, NULL, CK_ADMIN_PERM_LIST, NULL));
    CHECK(!ck_admin_acl_check(acl, "admin@" R, NULL, CK_ADMIN_PERM_LIST, NULL));
    CHECK(!ck_admin_acl_check(acl, "joe/admin@EVIL.REALM", NULL, CK_ADMIN_PERM_LIST, NULL));
    CHECK(!ck_admin_acl_check(acl, "joe/administrator@" R, NULL, CK_ADMIN_PERM_LIST, NULL));
    CHECK(ck_admin_acl_check(acl, "alice@" R, "x@" R, CK_ADMIN_PERM_INQUIRE, &line));
    CHECK_INT_EQ(line, 2);
    CHECK(ck_admin_acl_check(acl, "alice@" R, NULL, CK_ADMIN_PERM_LIST, NULL));
    CHECK(!ck_admin_acl_check(acl, "alice@" R, "x@" R, CK_ADMIN_PERM_MODIFY, &line));
    CHECK_INT_EQ(line, 2);
    CHECK(!ck_admin_acl_check(acl, "alice@" R, "x@" R,
                              CK_ADMIN_PERM_INQUIRE | CK_ADMIN_PERM_MODIFY, NULL));
    /* Target patterns. */
    CHECK(ck_admin_acl_check(acl, "carol@" R, "svc/web@" R, CK_ADMIN_PERM_ADD, NULL));
    CHECK(!ck_admin_acl_check(acl, "carol@" R, "svc/web/x@" R, CK_ADMIN_PERM_ADD, NULL));
    CHECK(!ck_admin_acl_check(acl, "carol@" R, "alice@" R, CK_ADMIN_PERM_INQUIRE, &line));
    CHECK_INT_EQ(line, 0);
    /* No target (list): an entry restricted to targets does not apply, as in MIT. */
    CHECK(!ck_admin_acl_check(acl, "carol@" R, NULL, CK_ADMIN_PERM_INQUIRE, &line));
    CHECK_INT_EQ(line, 0);
    /* Realm wildcard and other realms. */
    CHECK(ck_admin_acl_check(acl, "x@OTHER.REALM", NULL, CK_ADMIN_PERM_LIST, NULL));
    CHECK(!ck_admin_acl_check(acl, "x/y@OTHER.REALM", NULL, CK_ADMIN_PERM_LIST, NULL));
    /* Unparseable callers and targets are refused. */
    CHECK(!ck_admin_acl_check(acl, "joe/admin", NULL, CK_ADMIN_PERM_LIST, NULL));
    CHECK(!ck_admin_acl_check(acl, "joe/admin@" R, "bad\\", CK_ADMIN_PERM_ADD, NULL));
    CHECK(!ck_admin_acl_check(acl, "joe/admin@" R, NULL, 0, NULL));
    CHECK(!ck_admin_acl_check(NULL, "joe/admin@" R, NULL, CK_ADMIN_PERM_LIST, NULL));
    ck_admin_acl_free(acl);
}

static void
test_first_match_and_deny(void)
{
    /* The first matching entry decides, even if a later one would grant more. */
    struct ck_admin_acl *acl = acl_of("bad/admin@TEST.REALM D\n"
                                      "*/admin@TEST.REALM xD  krbtgt/*@TEST.REALM\n"
                                      "*/admin@TEST.REALM x\n"
                                      "* i\n");
    unsigned line;

    CHECK(acl != NULL);
    CHECK(!ck_admin_acl_check(acl, "bad/admin@" R, "u@" R, CK_ADMIN_PERM_INQUIRE, &line));
    CHECK_INT_EQ(line, 1);
    CHECK(!ck_admin_acl_check(acl, "joe/admin@" R, "krbtgt/" R "@" R, CK_ADMIN_PERM_DELETE,
                              &line));
    CHECK_INT_EQ(line, 2);
    CHECK(ck_admin_acl_check(acl, "joe/admin@" R, "krbtgt/" R "@" R, CK_ADMIN_PERM_MODIFY,
                             NULL));
    CHECK(ck_admin_acl_check(acl, "joe/admin@" R, "u@" R, CK_ADMIN_PERM_DELETE, &line));
    CHECK_INT_EQ(line, 3);
    /* "*" alone: every principal of every realm. */
    CHECK(ck_admin_acl_check(acl, "u@ELSEWHERE", "v@" R, CK_ADMIN_PERM_INQUIRE, &line));
    CHECK_INT_EQ(line, 4);
    CHECK(!ck_admin_acl_check(acl, "u@ELSEWHERE", "v@" R, CK_ADMIN_PERM_LIST, NULL));
    ck_admin_acl_free(acl);
}

static void
test_backreference(void)
{
    struct ck_admin_acl *acl = acl_of("*/admin@TEST.REALM c *1@TEST.REALM\n"
                                      "*/*@* i *2/*1@*\n");

    CHECK(acl != NULL);
    CHECK(ck_admin_acl_check(acl, "joe/admin@" R, "joe@" R, CK_ADMIN_PERM_CHANGEPW, NULL));
    CHECK(!ck_admin_acl_check(acl, "joe/admin@" R, "ann@" R, CK_ADMIN_PERM_CHANGEPW, NULL));
    CHECK(!ck_admin_acl_check(acl, "joe/admin@" R, "joe/x@" R, CK_ADMIN_PERM_CHANGEPW, NULL));
    CHECK(ck_admin_acl_check(acl, "a/b@X", "b/a@X", CK_ADMIN_PERM_INQUIRE, NULL));
    CHECK(ck_admin_acl_check(acl, "a/b@X", "b/a@Y", CK_ADMIN_PERM_INQUIRE, NULL));
    CHECK(!ck_admin_acl_check(acl, "a/b@X", "a/b@X", CK_ADMIN_PERM_INQUIRE, NULL));
    /* An entry with a target does not serve an operation without one. */
    CHECK(!ck_admin_acl_check(acl, "joe/admin@" R, NULL, CK_ADMIN_PERM_CHANGEPW, NULL));
    ck_admin_acl_free(acl);
    /* A target of "*" is no restriction: it serves operations without a target too. */
    acl = acl_of("*/admin@TEST.REALM il *\n");
    CHECK(acl != NULL);
    CHECK(ck_admin_acl_check(acl, "joe/admin@" R, NULL, CK_ADMIN_PERM_LIST, NULL));
    CHECK(ck_admin_acl_check(acl, "joe/admin@" R, "a/b/c@ELSEWHERE", CK_ADMIN_PERM_INQUIRE,
                             NULL));
    ck_admin_acl_free(acl);
}

static void
test_load_file(void)
{
    char path[] = "/tmp/ck-acl-XXXXXX";
    int fd = mkstemp(path);
    struct ck_admin_acl *acl = NULL;
    const char text[] = "alice i\nbob zz\n";

    CHECK(fd >= 0);
    CHECK(write(fd, text, sizeof(text) - 1) == (ssize_t)(sizeof(text) - 1));
    close(fd);
    CHECK(chmod(path, 0646) == 0);
    CHECK(ck_admin_acl_load(path, R, &acl) == CK_ERR_PERM);
    CHECK(strstr(ck_error_context(), "writable by every user") != NULL);
    CHECK(chmod(path, 0644) == 0);
    CHECK(ck_admin_acl_load(path, R, &acl) == CK_ERR_CONFIG);
    CHECK(strstr(ck_error_context(), ":2: unknown permission") != NULL);
    unlink(path);
    CHECK(ck_admin_acl_load(path, R, &acl) == CK_ERR_NOTFOUND);
    CHECK(ck_admin_acl_load("/tmp", R, &acl) == CK_ERR_IO);
}

static void
test_perm_letters(void)
{
    char buf[16];

    CHECK(strcmp(ck_admin_perm_letters(CK_ADMIN_PERM_ALL, buf, sizeof(buf)), "admcilps") == 0);
    CHECK(strcmp(ck_admin_perm_letters(CK_ADMIN_PERM_EXTRACT, buf, sizeof(buf)), "e") == 0);
}

CK_TEST_MAIN("admin_acl", CK_TEST_CASE(test_parse_ok), CK_TEST_CASE(test_parse_errors),
             CK_TEST_CASE(test_match_basic), CK_TEST_CASE(test_first_match_and_deny),
             CK_TEST_CASE(test_backreference), CK_TEST_CASE(test_load_file),
             CK_TEST_CASE(test_perm_letters))
