#include <stdlib.h>
#include <string.h>

#include "ck_test.h"
#include "cablekey/principal.h"

static void
parse_simple(void)
{
    ck_principal *p = NULL;
    char *s = NULL;

    CHECK_OK(ck_principal_parse("host/kdc.example.com@EXAMPLE.COM", NULL, 0, &p));
    if (p == NULL)
        return;
    CHECK_INT_EQ(p->n_components, 2);
    CHECK(strcmp(p->components[0], "host") == 0);
    CHECK(strcmp(p->components[1], "kdc.example.com") == 0);
    CHECK(strcmp(p->realm, "EXAMPLE.COM") == 0);
    CHECK_INT_EQ(p->name_type, CK_NT_PRINCIPAL);
    CHECK_OK(ck_principal_unparse(p, 0, &s));
    CHECK(s != NULL && strcmp(s, "host/kdc.example.com@EXAMPLE.COM") == 0);
    free(s);
    CHECK_OK(ck_principal_unparse(p, CK_PRINCIPAL_UNPARSE_NO_REALM, &s));
    CHECK(s != NULL && strcmp(s, "host/kdc.example.com") == 0);
    free(s);
    ck_principal_free(p);
}

static void
default_realm(void)
{
    ck_principal *p = NULL;

    CHECK_OK(ck_principal_parse("alice", "TEST.REALM", 0, &p));
    CHECK(p != NULL && strcmp(p->realm, "TEST.REALM") == 0);
    ck_principal_free(p);
    p = NULL;
    CHECK_INT_EQ(ck_principal_parse("alice", NULL, 0, &p), CK_ERR_INVAL);
    CHECK(p == NULL);
    CHECK_INT_EQ(ck_principal_parse("alice", "R", CK_PRINCIPAL_PARSE_REQUIRE_REALM, &p),
                 CK_ERR_INVAL);
    CHECK_INT_EQ(ck_principal_parse("alice@R", "R", CK_PRINCIPAL_PARSE_NO_REALM, &p),
                 CK_ERR_INVAL);
}

static void
escapes_roundtrip(void)
{
    const char *name = "a\\/b/c\\@d\\\\e\\n\\t\\b@RE\\@AL\\/M";
    ck_principal *p = NULL, *q = NULL;
    char *s = NULL;

    CHECK_OK(ck_principal_parse(name, NULL, 0, &p));
    if (p == NULL)
        return;
    CHECK_INT_EQ(p->n_components, 2);
    CHECK(strcmp(p->components[0], "a/b") == 0);
    CHECK(strcmp(p->components[1], "c@d\\e\n\t\b") == 0);
    CHECK(strcmp(p->realm, "RE@AL/M") == 0);
    CHECK_OK(ck_principal_unparse(p, 0, &s));
    CHECK(s != NULL && strcmp(s, name) == 0);
    CHECK_OK(ck_principal_parse(s, NULL, 0, &q));
    CHECK(ck_principal_equal(p, q));
    /* A needless escape of an ordinary character means that character. */
    ck_principal_free(q);
    q = NULL;
    CHECK_OK(ck_principal_parse("\\x@R", NULL, 0, &q));
    CHECK(q != NULL && strcmp(q->components[0], "x") == 0);
    free(s);
    ck_principal_free(p);
    ck_principal_free(q);
}

static void
malformed(void)
{
    ck_principal *p = NULL;
    char big[600];

    CHECK(ck_principal_parse("", "R", 0, &p) != 0);
    CHECK(ck_principal_parse("@R", "R", 0, &p) != 0);
    CHECK(ck_principal_parse("a@", "R", 0, &p) != 0);
    CHECK(ck_principal_parse("a@b@R", "R", 0, &p) != 0);
    CHECK(ck_principal_parse("a@R/x", "R", 0, &p) != 0);
    CHECK(ck_principal_parse("a\\", "R", 0, &p) != 0);
    CHECK_INT_EQ(ck_principal_parse("a\\0b@R", NULL, 0, &p), CK_ERR_UNSUPPORTED);
    memset(big, 'x', 256);
    big[256] = '\0';
    CHECK_INT_EQ(ck_principal_parse(big, "R", 0, &p), CK_ERR_LIMIT);
    big[255] = '\0';
    CHECK_OK(ck_principal_parse(big, "R", 0, &p));
    ck_principal_free(p);
    p = NULL;
    /* 17 components. */
    for (int i = 0; i < 17; i++) {
        big[2 * i] = 'c';
        big[2 * i + 1] = '/';
    }
    big[33] = '\0';
    CHECK_INT_EQ(ck_principal_parse(big, "R", 0, &p), CK_ERR_LIMIT);
    big[strlen(big) - 2] = '\0';
    CHECK_OK(ck_principal_parse(big, "R", 0, &p));
    CHECK(p != NULL && p->n_components == 16);
    ck_principal_free(p);
    p = NULL;
    memset(big, 'R', 256);
    big[256] = '\0';
    CHECK_INT_EQ(ck_principal_parse("a", big, 0, &p), CK_ERR_LIMIT);
    CHECK(p == NULL);
}

static void
enterprise(void)
{
    ck_principal *p = NULL;
    char *s = NULL;

    CHECK_OK(ck_principal_parse("alice@example.com@EXAMPLE.COM", NULL,
                                CK_PRINCIPAL_PARSE_ENTERPRISE, &p));
    if (p == NULL)
        return;
    CHECK_INT_EQ(p->name_type, CK_NT_ENTERPRISE);
    CHECK_INT_EQ(p->n_components, 1);
    CHECK(strcmp(p->components[0], "alice@example.com") == 0);
    CHECK(strcmp(p->realm, "EXAMPLE.COM") == 0);
    CHECK_OK(ck_principal_unparse(p, 0, &s));
    CHECK(s != NULL && strcmp(s, "alice\\@example.com@EXAMPLE.COM") == 0);
    free(s);
    ck_principal_free(p);
}

static void
compare_copy_salt(void)
{
    ck_principal *a = NULL, *b = NULL, *c = NULL;
    uint8_t *salt = NULL;
    size_t salt_len = 0;

    CHECK_OK(ck_principal_parse("host/h.example.com@EXAMPLE.COM", NULL, 0, &a));
    CHECK_OK(ck_principal_copy(a, &b));
    CHECK_OK(ck_principal_parse("host/h.example.com@OTHER", NULL, 0, &c));
    if (a == NULL || b == NULL || c == NULL)
        goto out;
    CHECK(ck_principal_equal(a, b));
    CHECK(!ck_principal_equal(a, c));
    CHECK(ck_principal_equal_no_realm(a, c));
    b->name_type = CK_NT_SRV_HST;
    CHECK(ck_principal_equal(a, b));
    CHECK_OK(ck_principal_default_salt(a, &salt, &salt_len));
    CHECK_MEM_EQ(salt, salt_len, "EXAMPLE.COMhosth.example.com", 28);
out:
    free(salt);
    ck_principal_free(a);
    ck_principal_free(b);
    ck_principal_free(c);
}

static void
tgs(void)
{
    ck_principal *p = NULL, *x = NULL, *b = NULL;
    const char *comps[] = {"krbtgt", "TEST.REALM"};

    CHECK_OK(ck_principal_parse("krbtgt/TEST.REALM@TEST.REALM", NULL, 0, &p));
    CHECK_OK(ck_principal_parse("krbtgt/OTHER@TEST.REALM", NULL, 0, &x));
    CHECK_OK(ck_principal_build("TEST.REALM", CK_NT_SRV_INST, comps, 2, &b));
    CHECK(p != NULL && p->name_type == CK_NT_SRV_INST);
    CHECK(ck_principal_is_tgs(p, "TEST.REALM"));
    CHECK(ck_principal_is_tgs(p, NULL));
    CHECK(!ck_principal_is_tgs(p, "OTHER"));
    CHECK(!ck_principal_is_tgs(x, NULL));
    CHECK(ck_principal_is_any_tgs(x));
    CHECK(ck_principal_equal(p, b));
    ck_principal_free(p);
    ck_principal_free(x);
    ck_principal_free(b);
}

static void
unparse_small_buffer(void)
{
    ck_principal *p = NULL;
    char buf[8];
    size_t len = 0;

    CHECK_OK(ck_principal_parse("alice@TEST.REALM", NULL, 0, &p));
    if (p == NULL)
        return;
    CHECK_INT_EQ(ck_principal_unparse_buf(p, 0, buf, sizeof(buf), &len), CK_ERR_LIMIT);
    CHECK_OK(ck_principal_unparse_buf(p, CK_PRINCIPAL_UNPARSE_NO_REALM, buf, sizeof(buf), &len));
    CHECK_INT_EQ(len, 5);
    ck_principal_free(p);
}

CK_TEST_MAIN("principal", CK_TEST_CASE(parse_simple), CK_TEST_CASE(default_realm),
             CK_TEST_CASE(escapes_roundtrip), CK_TEST_CASE(malformed), CK_TEST_CASE(enterprise),
             CK_TEST_CASE(compare_copy_salt), CK_TEST_CASE(tgs),
             CK_TEST_CASE(unparse_small_buffer))
