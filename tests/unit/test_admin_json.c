/* The admin API's JSON codec: principal and realm records round-trip without key material,
 * requests are decoded strictly (unknown members, wrong types, ranges, duplicates refused). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/admin.h"
#include "cablekey/crypto.h"
#include "cablekey/util.h"
#include "ck_test.h"

static ck_db_principal *
sample_principal(void)
{
    ck_db_principal *p = NULL;

    if (ck_db_principal_new("host/web.test@TEST.REALM", &p) != 0)
        abort();
    p->attributes = CK_ATTR_REQUIRES_PREAUTH | CK_ATTR_OK_AS_DELEGATE | 0x40000000u;
    p->max_life = 36000;
    p->max_renew = 0;
    p->expires = 1900000000;
    p->pw_expires = 0;
    p->kvno = 3;
    p->created = 1700000000;
    p->modified = 1700000001;
    p->keys = calloc(2, sizeof(*p->keys));
    p->n_keys = 2;
    p->keys[0].kvno = 3;
    p->keys[0].enctype = 18;
    memset(p->keys[0].key.contents, 0xAB, 32);
    p->keys[0].key.length = 32;
    p->keys[0].key.enctype = 18;
    p->keys[1].kvno = 2;
    p->keys[1].enctype = 17;
    p->keys[1].salt_type = CK_SALTTYPE_SPECIAL;
    p->keys[1].salt = malloc(3);
    memcpy(p->keys[1].salt, "\x00\xffZ", 3);
    p->keys[1].salt_len = 3;
    p->policy = strdup("default");
    p->last_pwd_change = 1700000002;
    p->lockout.fail_count = 4;
    p->lockout.last_failed = 1700000003;
    p->lockout.max_failure = 5;
    p->lockout.failure_interval = 600;
    p->lockout.lockout_duration = 0;
    return p;
}

static void
test_principal_roundtrip(void)
{
    ck_db_principal *p = sample_principal(), *q = NULL;
    char *text = NULL;

    CHECK_OK(ck_admin_json_encode_principal(p, &text));
    CHECK(text != NULL);
    /* No key bytes: 0xAB... would show up as base64/hex "q6ur" or "abab". */
    CHECK(strstr(text, "abab") == NULL && strstr(text, "q6ur") == NULL &&
          strstr(text, "contents") == NULL);
    CHECK(strstr(text, "\"flags\":[\"requires_preauth\",\"ok_as_delegate\"]") != NULL);
    CHECK(strstr(text, "\"expires\":1900000000") != NULL);
    CHECK(strstr(text, "\"pw_expires\":null") != NULL);
    CHECK(strstr(text, "\"enctype\":\"aes256-cts-hmac-sha1-96\"") != NULL);
    CHECK_OK(ck_admin_json_decode_principal(text, strlen(text), &q));
    if (q != NULL) {
        CHECK(strcmp(q->name, p->name) == 0);
        CHECK_INT_EQ(q->attributes, p->attributes);
        CHECK_INT_EQ(q->max_life, 36000);
        CHECK_INT_EQ(q->expires, 1900000000);
        CHECK_INT_EQ(q->pw_expires, 0);
        CHECK_INT_EQ(q->kvno, 3);
        CHECK_INT_EQ(q->created, 1700000000);
        CHECK_INT_EQ(q->modified, 1700000001);
        CHECK_INT_EQ(q->n_keys, 2);
        CHECK_INT_EQ(q->keys[1].enctype, 17);
        CHECK_INT_EQ(q->keys[1].kvno, 2);
        CHECK_INT_EQ(q->keys[1].salt_type, CK_SALTTYPE_SPECIAL);
        CHECK_INT_EQ(q->keys[0].key.length, 0);
        /* Salts are public (ETYPE-INFO2) and printed by `principal show`: they travel. */
        CHECK_INT_EQ(q->keys[0].salt_len, 0);
        CHECK_MEM_EQ(q->keys[1].salt, q->keys[1].salt_len, "\x00\xffZ", 3);
    }
    CHECK(strstr(text, "\"salt\":\"00ff5a\"") != NULL);
    /* Policy and lockout state travel too (`principal show` prints them). */
    CHECK(strstr(text, "\"lockout\":{\"failed_attempts\":4,\"last_failed\":1700000003,"
                       "\"last_success\":null,\"max_failure\":5,\"failure_interval\":600,"
                       "\"lockout_duration\":0}") != NULL);
    if (q != NULL) {
        CHECK(q->policy != NULL && strcmp(q->policy, "default") == 0);
        CHECK_INT_EQ(q->last_pwd_change, 1700000002);
        CHECK_INT_EQ(q->lockout.fail_count, 4);
        CHECK_INT_EQ(q->lockout.last_failed, 1700000003);
        CHECK_INT_EQ(q->lockout.last_success, 0);
        CHECK_INT_EQ(q->lockout.max_failure, 5);
        CHECK_INT_EQ(q->lockout.failure_interval, 600);
    }
    ck_db_principal_free(q);
    free(text);
    ck_db_principal_free(p);
}

static void
expect_decode_fail(const char *text, const char *ctx)
{
    ck_db_principal *q = NULL;
    int rc = ck_admin_json_decode_principal(text, strlen(text), &q);

    CHECK(rc == CK_ERR_DECODE);
    CHECK(q == NULL);
    if (strstr(ck_error_context(), ctx) == NULL) {
        fprintf(stderr, "  context \"%s\" lacks \"%s\"\n", ck_error_context(), ctx);
        ck_test_case_failed = 1;
    }
}

#define PBASE "\"name\":\"a@R\",\"kvno\":1,\"flags\":[],\"max_life\":0,\"max_renew\":0," \
              "\"expires\":null,\"pw_expires\":null,\"created\":1,\"modified\":1"

static void
test_principal_decode_strict(void)
{
    ck_db_principal *q = NULL;
    const char ok[] = "{" PBASE ",\"keys\":[]}";

    CHECK_OK(ck_admin_json_decode_principal(ok, strlen(ok), &q));
    ck_db_principal_free(q);
    expect_decode_fail("{" PBASE ",\"keys\":[],\"extra\":1}", "unknown member \"extra\"");
    expect_decode_fail("{" PBASE "}", "\"keys\"");
    expect_decode_fail("{" PBASE ",\"keys\":[],\"kvno\":2}", "duplicate");
    expect_decode_fail("{" PBASE ",\"keys\":[{\"kvno\":1,\"enctype\":\"nope\",\"salt_type\":0}]}",
                       "enctype");
    expect_decode_fail("{" PBASE ",\"keys\":[{\"kvno\":1,\"enctype\":\"aes256-cts-hmac-sha1-96\","
                       "\"salt_type\":0,\"key\":\"AAAA\"}]}", "unknown member \"key\"");
    expect_decode_fail("{" PBASE ",\"keys\":[{\"kvno\":1,\"enctype\":\"aes256-cts-hmac-sha1-96\","
                       "\"salt_type\":0,\"salt\":\"abc\"}]}", "\"salt\"");
    expect_decode_fail("{" PBASE ",\"keys\":[{\"kvno\":1,\"enctype\":\"aes256-cts-hmac-sha1-96\","
                       "\"salt_type\":0,\"salt\":\"AB\"}]}", "lower-case");
    expect_decode_fail("{" PBASE ",\"keys\":[{\"kvno\":1,\"enctype\":\"aes256-cts-hmac-sha1-96\","
                       "\"salt_type\":0,\"salt\":\"zz\"}]}", "\"salt\"");
    expect_decode_fail("{" PBASE ",\"keys\":[{\"kvno\":1,\"enctype\":\"aes256-cts-hmac-sha1-96\","
                       "\"salt_type\":0,\"salt\":\"\"}]}", "\"salt\"");
    expect_decode_fail("{" PBASE ",\"keys\":[],\"policy\":\"a b\"}", "\"policy\"");
    expect_decode_fail("{" PBASE ",\"keys\":[],\"lockout\":{\"failed_attempts\":1}}", "\"last_failed\"");
    expect_decode_fail("{" PBASE ",\"keys\":[],\"lockout\":{\"failed_attempts\":1,\"last_failed\":null,"
                       "\"last_success\":null,\"max_failure\":0,\"failure_interval\":0,"
                       "\"lockout_duration\":0,\"epoch\":1}}", "unknown member \"epoch\"");
    expect_decode_fail("{" PBASE ",\"keys\":[],\"last_password_change\":-1}", "last_password_change");
    expect_decode_fail("{\"name\":\"a@R\",\"kvno\":1.5}", "kvno");
    expect_decode_fail("{\"name\":\"a\\u0000b@R\"}", "u0000");
    expect_decode_fail("[1,2]", "object");
    expect_decode_fail("{\"name\":", "malformed JSON");
    CHECK(ck_admin_json_decode_principal("{}", CK_ADMIN_JSON_MAX + 1, &q) == CK_ERR_LIMIT);
}

static void
test_realm_roundtrip(void)
{
    ck_realm_info r = {.n_enctypes = 2, .enctypes = {18, 17}, .max_life = 36000,
                       .max_renew = 604800, .master_kvno = 1,
                       .default_attributes = CK_ATTR_REQUIRES_PREAUTH | 0x40000000u};
    ck_realm_info s;
    char *text = NULL;

    ck_strlcpy(r.name, "TEST.REALM", sizeof(r.name));
    CHECK_OK(ck_admin_json_encode_realm(&r, &text));
    CHECK(text != NULL && strstr(text, "\"default_flags\":[\"requires_preauth\"]") != NULL);
    CHECK(text != NULL && strstr(text, "\"unknown_default_flags\":1073741824") != NULL);
    CHECK_OK(ck_admin_json_decode_realm(text, strlen(text), &s));
    CHECK(strcmp(s.name, "TEST.REALM") == 0);
    CHECK_INT_EQ(s.n_enctypes, 2);
    CHECK_INT_EQ(s.enctypes[1], 17);
    CHECK_INT_EQ(s.max_renew, 604800);
    CHECK_INT_EQ(s.master_kvno, 1);
    CHECK_INT_EQ(s.default_attributes, r.default_attributes);
    free(text);

#define RBASE "\"name\":\"R\",\"enctypes\":[\"aes256-cts-hmac-sha1-96\"],\"max_life\":1," \
              "\"max_renew\":1,\"master_kvno\":1"
    {
        static const char *const bad[] = {
            "{" RBASE "}",                                         /* default_flags missing */
            "{" RBASE ",\"default_flags\":[\"nope\"]}",
            "{" RBASE ",\"default_flags\":\"requires_preauth\"}",
            "{" RBASE ",\"default_flags\":[],\"unknown_default_flags\":128}", /* a named bit */
            "{" RBASE ",\"default_flags\":[],\"extra\":1}",
        };
        const char ok[] = "{" RBASE ",\"default_flags\":[]}";

        CHECK_OK(ck_admin_json_decode_realm(ok, strlen(ok), &s));
        CHECK_INT_EQ(s.default_attributes, 0);
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
            CHECK(ck_admin_json_decode_realm(bad[i], strlen(bad[i]), &s) == CK_ERR_DECODE);
    }
}

static int
realm_mod(const char *text, ck_realm_mod *m)
{
    return ck_admin_json_decode_realm_mod(text, strlen(text), m);
}

static void
test_realm_mod_and_rename(void)
{
    ck_realm_mod m = {.mask = CK_REALM_MOD_MAX_LIFE | CK_REALM_MOD_ENCTYPES |
                              CK_REALM_MOD_DEFAULT_ATTRIBUTES,
                      .max_life = 72000, .n_enctypes = 1, .enctypes = {17},
                      .default_attributes = CK_ATTR_DISALLOW_SVR | 0x40000000u};
    ck_realm_mod m2;
    char *text = NULL, *name = NULL;

    CHECK_OK(ck_admin_json_encode_realm_mod(&m, &text));
    CHECK(text != NULL && strstr(text, "max_renew") == NULL);
    CHECK_OK(ck_admin_json_decode_realm_mod(text, strlen(text), &m2));
    CHECK_INT_EQ(m2.mask, m.mask);
    CHECK_INT_EQ(m2.max_life, 72000);
    CHECK_INT_EQ(m2.n_enctypes, 1);
    CHECK_INT_EQ(m2.enctypes[0], 17);
    CHECK_INT_EQ(m2.default_attributes, m.default_attributes);
    free(text);
    /* The whole set of default flags: an empty list clears them all. */
    CHECK_OK(realm_mod("{\"default_flags\":[]}", &m2));
    CHECK_INT_EQ(m2.mask, CK_REALM_MOD_DEFAULT_ATTRIBUTES);
    CHECK_INT_EQ(m2.default_attributes, 0);
    CHECK_OK(realm_mod("{\"max_renew\":2147483647}", &m2));
    CHECK_INT_EQ(m2.max_renew, 2147483647);
    /* Refusals, with the member named. */
    CHECK(realm_mod("{}", &m2) == CK_ERR_DECODE);
    CHECK(strstr(ck_error_context(), "nothing to modify") != NULL);
    CHECK(m2.mask == 0);
    CHECK(realm_mod("{\"max_life\":0}", &m2) == CK_ERR_DECODE);
    CHECK(strstr(ck_error_context(), "max_life") != NULL);
    CHECK(realm_mod("{\"max_life\":2147483648}", &m2) == CK_ERR_DECODE);
    CHECK(realm_mod("{\"max_life\":\"10h\"}", &m2) == CK_ERR_DECODE);
    CHECK(realm_mod("{\"name\":\"OTHER\"}", &m2) == CK_ERR_DECODE);
    CHECK(strstr(ck_error_context(), "unknown member \"name\"") != NULL);
    CHECK(realm_mod("{\"master_kvno\":2}", &m2) == CK_ERR_DECODE);
    CHECK(realm_mod("{\"enctypes\":[]}", &m2) == CK_ERR_DECODE);
    CHECK(realm_mod("{\"enctypes\":[\"des-cbc-crc\"]}", &m2) == CK_ERR_DECODE);
    CHECK(realm_mod("{\"default_flags\":{\"requires_preauth\":true}}", &m2) == CK_ERR_DECODE);
    CHECK(realm_mod("{\"unknown_default_flags\":1073741824}", &m2) == CK_ERR_DECODE);
    CHECK(realm_mod("{\"max_life\":1,\"max_life\":2}", &m2) == CK_ERR_DECODE);
    CHECK(realm_mod("[]", &m2) == CK_ERR_DECODE);

    CHECK_OK(ck_admin_json_encode_rename("bob/x@R", &text));
    CHECK(text != NULL && strcmp(text, "{\"new_name\":\"bob/x@R\"}") == 0);
    CHECK_OK(ck_admin_json_decode_rename(text, strlen(text), &name));
    CHECK(name != NULL && strcmp(name, "bob/x@R") == 0);
    free(name);
    free(text);
    {
        static const char *const bad[] = {
            "{}", "{\"new_name\":\"\"}", "{\"new_name\":1}", "{\"new_name\":\"a\\u0000b\"}",
            "{\"new_name\":\"a\",\"old_name\":\"b\"}", "[\"a\"]",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            CHECK(ck_admin_json_decode_rename(bad[i], strlen(bad[i]), &name) == CK_ERR_DECODE);
            CHECK(name == NULL);
        }
    }
}

static void
test_error_and_page(void)
{
    struct ck_admin_name_page pg;
    char code[16], msg[32];
    const char err[] = "{\"error\":{\"code\":\"forbidden\",\"message\":\"no\\u001b[31m way\"}}";
    const char page[] = "{\"principals\":[\"a@R\",\"b@R\"],\"next\":\"b@R\"}";
    const char last[] = "{\"principals\":[],\"next\":null}";

    CHECK_OK(ck_admin_json_decode_error(err, strlen(err), code, sizeof(code), msg, sizeof(msg)));
    CHECK(strcmp(code, "forbidden") == 0);
    /* A terminal escape from the server is defused. */
    CHECK(strcmp(msg, "no?[31m way") == 0);
    {
        const char longer[] = "{\"error\":{\"code\":\"x\",\"message\":"
                              "\"0123456789012345678901234567890123456789\"}}";
        CHECK_OK(ck_admin_json_decode_error(longer, strlen(longer), code, sizeof(code), msg,
                                            sizeof(msg)));
        CHECK_INT_EQ(strlen(msg), sizeof(msg) - 1);
    }
    {
        static const char *const bad[] = {
            "{\"error\":\"x\"}",
            "{\"error\":{\"code\":1,\"message\":\"m\"}}",
            "{\"error\":{\"code\":\"c\"}}",
            "{\"error\":{\"code\":\"c\",\"message\":\"m\",\"x\":1}}",
            "<html>",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
            CHECK(ck_admin_json_decode_error(bad[i], strlen(bad[i]), code, sizeof(code), msg,
                                             sizeof(msg)) == CK_ERR_DECODE);
    }

    CHECK_OK(ck_admin_json_decode_name_page(page, strlen(page), &pg));
    CHECK_INT_EQ(pg.n, 2);
    CHECK(pg.n == 2 && strcmp(pg.names[1], "b@R") == 0);
    CHECK(pg.next != NULL && strcmp(pg.next, "b@R") == 0);
    ck_admin_name_page_clear(&pg);
    CHECK(pg.names == NULL && pg.next == NULL && pg.n == 0);
    CHECK_OK(ck_admin_json_decode_name_page(last, strlen(last), &pg));
    CHECK(pg.n == 0 && pg.next == NULL);
    ck_admin_name_page_clear(&pg);
    ck_admin_name_page_clear(NULL);
    {
        static const char *const bad[] = {
            "{\"principals\":[\"a@R\"]}",                     /* next missing */
            "{\"principals\":[\"a@R\",1],\"next\":null}",
            "{\"principals\":[\"\"],\"next\":null}",
            "{\"principals\":[\"a\\u0000@R\"],\"next\":null}",
            "{\"principals\":[],\"next\":5}",
            "{\"principals\":{},\"next\":null}",
            "{\"principals\":[],\"next\":null,\"more\":true}",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            CHECK(ck_admin_json_decode_name_page(bad[i], strlen(bad[i]), &pg) == CK_ERR_DECODE);
            CHECK(pg.names == NULL && pg.n == 0 && pg.next == NULL);
        }
    }
    /* Pages have their own bound, larger than a record's, and still a bound. */
    CHECK(ck_admin_json_decode_name_page(last, CK_ADMIN_JSON_PAGE_MAX + 1, &pg) == CK_ERR_LIMIT);
    {
        /* 10001 names: one more than a page may hold. */
        size_t n = 10001, cap = 32 + n * 8, len;
        char *big = malloc(cap);
        if (big != NULL) {
            len = (size_t)snprintf(big, cap, "{\"principals\":[");
            for (size_t i = 0; i < n; i++)
                len += (size_t)snprintf(big + len, cap - len, "%s\"a@R\"", i ? "," : "");
            len += (size_t)snprintf(big + len, cap - len, "],\"next\":null}");
            CHECK(ck_admin_json_decode_name_page(big, len, &pg) == CK_ERR_DECODE);
            free(big);
        }
    }
}

static int
req(enum ck_admin_req_kind kind, const char *text, struct ck_admin_principal_req *r)
{
    return ck_admin_json_decode_request(kind, text, strlen(text), r);
}

static void
test_requests(void)
{
    struct ck_admin_principal_req r = {0}, r2 = {0};
    char *text = NULL;
    size_t len = 0;

    CHECK_OK(req(CK_ADMIN_REQ_CREATE,
                 "{\"password\":\"s3cret\",\"max_life\":3600,\"expires\":null,"
                 "\"flags\":{\"requires_preauth\":true,\"disallow_svr\":false},"
                 "\"enctypes\":[\"aes128-cts-hmac-sha1-96\"]}", &r));
    CHECK(r.password != NULL && strcmp(r.password, "s3cret") == 0);
    CHECK_INT_EQ(r.password_len, 6);
    CHECK_INT_EQ(r.present, CK_ADMIN_REQ_MAX_LIFE | CK_ADMIN_REQ_EXPIRES | CK_ADMIN_REQ_FLAGS |
                                CK_ADMIN_REQ_ENCTYPES);
    CHECK_INT_EQ(r.expires, 0);
    CHECK_INT_EQ(r.flags_set, CK_ATTR_REQUIRES_PREAUTH);
    CHECK_INT_EQ(r.flags_clear, CK_ATTR_DISALLOW_SVR);
    CHECK_INT_EQ(r.n_enctypes, 1);
    CHECK_INT_EQ(r.enctypes[0], 17);
    /* Encode and decode again: the same request. */
    CHECK_OK(ck_admin_json_encode_request(&r, &text, &len));
    CHECK_OK(ck_admin_json_decode_request(CK_ADMIN_REQ_CREATE, text, len, &r2));
    CHECK_INT_EQ(r2.present, r.present);
    CHECK_INT_EQ(r2.flags_set, r.flags_set);
    CHECK_INT_EQ(r2.flags_clear, r.flags_clear);
    CHECK(r2.password != NULL && strcmp(r2.password, "s3cret") == 0);
    ck_free_secret(text, len + 1);
    ck_admin_principal_req_clear(&r);
    CHECK(r.password == NULL && r.present == 0);
    ck_admin_principal_req_clear(&r2);
    ck_admin_principal_req_clear(NULL);

    /* policy: a name attaches, null detaches ("" in the request); keys take none. */
    CHECK_OK(req(CK_ADMIN_REQ_MODIFY, "{\"policy\":\"strict\"}", &r));
    CHECK(r.present == CK_ADMIN_REQ_POLICY && strcmp(r.policy, "strict") == 0);
    CHECK_OK(ck_admin_json_encode_request(&r, &text, &len));
    CHECK(text != NULL && strcmp(text, "{\"policy\":\"strict\"}") == 0);
    ck_free_secret(text, len + 1);
    CHECK_OK(req(CK_ADMIN_REQ_CREATE, "{\"random_key\":true,\"policy\":null}", &r));
    CHECK(r.present == CK_ADMIN_REQ_POLICY && r.policy[0] == '\0');
    CHECK_OK(ck_admin_json_encode_request(&r, &text, &len));
    CHECK(text != NULL && strstr(text, "\"policy\":null") != NULL);
    ck_free_secret(text, len + 1);
    CHECK(req(CK_ADMIN_REQ_MODIFY, "{\"policy\":\"has space\"}", &r) == CK_ERR_DECODE);
    CHECK(req(CK_ADMIN_REQ_MODIFY, "{\"policy\":\"\"}", &r) == CK_ERR_DECODE);
    CHECK(req(CK_ADMIN_REQ_MODIFY, "{\"policy\":5}", &r) == CK_ERR_DECODE);
    CHECK(req(CK_ADMIN_REQ_KEYS, "{\"random_key\":true,\"policy\":\"x\"}", &r) == CK_ERR_DECODE);
    CHECK_OK(req(CK_ADMIN_REQ_KEYS, "{\"random_key\":true,\"keep\":2}", &r));
    CHECK(r.random_key && r.keep == 2 && r.password == NULL);
    CHECK_OK(req(CK_ADMIN_REQ_MODIFY, "{\"expires\":1900000000}", &r));
    CHECK_INT_EQ(r.expires, 1900000000);

    /* Refusals: each leaves no password behind. */
    CHECK(req(CK_ADMIN_REQ_CREATE, "{\"password\":\"x\",\"random_key\":true}", &r) ==
          CK_ERR_DECODE);
    CHECK(r.password == NULL);
    CHECK(req(CK_ADMIN_REQ_CREATE, "{}", &r) == CK_ERR_DECODE);
    CHECK(req(CK_ADMIN_REQ_CREATE, "{\"random_key\":false}", &r) == CK_ERR_DECODE);
    CHECK(req(CK_ADMIN_REQ_CREATE, "{\"password\":\"\"}", &r) == CK_ERR_DECODE);
    CHECK(req(CK_ADMIN_REQ_CREATE, "{\"password\":\"a\\u0000b\"}", &r) == CK_ERR_DECODE);
    CHECK(req(CK_ADMIN_REQ_CREATE, "{\"password\":\"x\",\"keep\":1}", &r) == CK_ERR_DECODE);
    CHECK(strstr(ck_error_context(), "unknown member \"keep\"") != NULL);
    CHECK(req(CK_ADMIN_REQ_MODIFY, "{}", &r) == CK_ERR_DECODE);
    CHECK(strstr(ck_error_context(), "nothing to modify") != NULL);
    CHECK(req(CK_ADMIN_REQ_MODIFY, "{\"password\":\"x\"}", &r) == CK_ERR_DECODE);
    CHECK(req(CK_ADMIN_REQ_MODIFY, "{\"max_life\":-1}", &r) == CK_ERR_DECODE);
    CHECK(req(CK_ADMIN_REQ_MODIFY, "{\"max_life\":\"10h\"}", &r) == CK_ERR_DECODE);
    CHECK(req(CK_ADMIN_REQ_MODIFY, "{\"expires\":0}", &r) == CK_ERR_DECODE);
    CHECK(req(CK_ADMIN_REQ_MODIFY, "{\"flags\":{\"bogus\":true}}", &r) == CK_ERR_DECODE);
    CHECK(req(CK_ADMIN_REQ_MODIFY, "{\"flags\":{}}", &r) == CK_ERR_DECODE);
    CHECK(req(CK_ADMIN_REQ_MODIFY, "{\"flags\":{\"requires_preauth\":1}}", &r) == CK_ERR_DECODE);
    CHECK(req(CK_ADMIN_REQ_MODIFY, "{\"max_life\":1,\"max_life\":2}", &r) == CK_ERR_DECODE);
    CHECK(req(CK_ADMIN_REQ_KEYS, "{\"random_key\":true,\"keep\":0}", &r) == CK_ERR_DECODE);
    CHECK(req(CK_ADMIN_REQ_KEYS, "{\"random_key\":true,\"enctypes\":[]}", &r) == CK_ERR_DECODE);
    CHECK(req(CK_ADMIN_REQ_KEYS,
              "{\"random_key\":true,\"enctypes\":[\"aes256-cts-hmac-sha1-96\","
              "\"aes256-cts-hmac-sha1-96\"]}", &r) == CK_ERR_DECODE);
    CHECK(req(CK_ADMIN_REQ_KEYS, "[]", &r) == CK_ERR_DECODE);
    {
        /* Longest password accepted; one byte more refused. */
        char body[CK_ADMIN_PASSWORD_MAX + 32];
        snprintf(body, sizeof(body), "{\"password\":\"%0*d\"}", CK_ADMIN_PASSWORD_MAX, 0);
        CHECK_OK(req(CK_ADMIN_REQ_KEYS, body, &r));
        snprintf(body, sizeof(body), "{\"password\":\"%0*d\"}", CK_ADMIN_PASSWORD_MAX + 1, 0);
        CHECK(req(CK_ADMIN_REQ_KEYS, body, &r) == CK_ERR_DECODE);
    }
    ck_admin_principal_req_clear(&r);
}

static void
test_flags_and_device(void)
{
    uint32_t bit = 0;
    ck_db_device dev = {.mac = "00:11:22:33:44:55", .state = CK_DEVICE_REVOKED,
                        .has_pin = true, .created = 5, .revoked = 7};
    char *text = NULL;

    CHECK_OK(ck_admin_flag_from_name("disallow_all_tix", &bit));
    CHECK_INT_EQ(bit, CK_ATTR_DISALLOW_ALL_TIX);
    CHECK(strcmp(ck_admin_flag_name(CK_ATTR_LOCKDOWN_KEYS), "lockdown_keys") == 0);
    CHECK(ck_admin_flag_name(0x40000000u) == NULL);
    CHECK(ck_admin_flag_from_name("Requires_Preauth", &bit) == CK_ERR_DECODE);
    dev.principal = "mta1@TEST.REALM";
    dev.comment = "rack \"4\"";
    memset(dev.spki_sha256, 0x01, sizeof(dev.spki_sha256));
    CHECK_OK(ck_admin_json_encode_device(&dev, &text));
    CHECK(text != NULL && strstr(text, "\"state\":\"revoked\"") != NULL);
    CHECK(text != NULL && strstr(text, "\"pin\":\"0101") != NULL);
    CHECK(text != NULL && strstr(text, "\"comment\":\"rack \\\"4\\\"\"") != NULL);
    {
        /* The client's decoder gives back what the printers need. */
        ck_db_device *d = NULL;

        CHECK_OK(ck_admin_json_decode_device(text, strlen(text), &d));
        CHECK(d != NULL && strcmp(d->mac, dev.mac) == 0 && d->state == CK_DEVICE_REVOKED &&
              d->has_pin && memcmp(d->spki_sha256, dev.spki_sha256, 32) == 0 &&
              d->created == 5 && d->modified == 0 && d->revoked == 7 &&
              strcmp(d->principal, "mta1@TEST.REALM") == 0 && strcmp(d->comment, "rack \"4\"") == 0);
        ck_db_device_free(d);
    }
    free(text);
}

static void
test_device_decode(void)
{
#define DEV(mac, state, pin, comment)                                                        \
    "{\"mac\":" mac ",\"principal\":\"m@R\",\"state\":" state ",\"pin\":" pin            \
    ",\"created\":1,\"modified\":2,\"revoked\":null,\"comment\":" comment "}"
    static const char *const bad[] = {
        DEV("\"00-11-22-33-44-55\"", "\"active\"", "null", "\"\""),   /* not canonical */
        DEV("\"00:11:22:33:44:5\"", "\"active\"", "null", "\"\""),
        DEV("\"00:11:22:33:44:55\"", "\"unprovisioned\"", "null", "\"\""),
        DEV("\"00:11:22:33:44:55\"", "3", "null", "\"\""),
        DEV("\"00:11:22:33:44:55\"", "\"active\"", "\"0101\"", "\"\""),
        DEV("\"00:11:22:33:44:55\"", "\"active\"", "false", "\"\""),
        DEV("\"00:11:22:33:44:55\"", "\"active\"", "null", "\"a\\u001b[2Jb\""),
        DEV("\"00:11:22:33:44:55\"", "\"active\"", "null", "null"),
        "{\"mac\":\"00:11:22:33:44:55\",\"principal\":\"m@R\",\"state\":\"active\",\"pin\":null,"
        "\"created\":1,\"modified\":2,\"revoked\":null,\"comment\":\"\",\"key\":\"00\"}",
        "{\"mac\":\"00:11:22:33:44:55\",\"principal\":\"\",\"state\":\"active\",\"pin\":null,"
        "\"created\":1,\"modified\":2,\"revoked\":null,\"comment\":\"\"}",
        "{\"mac\":\"00:11:22:33:44:55\",\"principal\":\"m@R\",\"state\":\"active\",\"pin\":null,"
        "\"created\":-1,\"modified\":2,\"revoked\":null,\"comment\":\"\"}",
    };
    const char *good = DEV("\"00:11:22:33:44:55\"", "\"active\"", "null", "\"c\"");
    struct ck_admin_device_page pg;
    ck_db_device *d = NULL;
    char page[2048];

    CHECK_OK(ck_admin_json_decode_device(good, strlen(good), &d));
    CHECK(d != NULL && !d->has_pin && d->state == CK_DEVICE_ACTIVE && d->revoked == 0);
    ck_db_device_free(d);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(ck_admin_json_decode_device(bad[i], strlen(bad[i]), &d) == CK_ERR_DECODE);
        CHECK(d == NULL);
    }
    snprintf(page, sizeof(page), "{\"devices\":[%s,%s],\"next\":\"00:11:22:33:44:55\"}", good, good);
    CHECK_OK(ck_admin_json_decode_device_page(page, strlen(page), &pg));
    CHECK(pg.n == 2 && strcmp(pg.next, "00:11:22:33:44:55") == 0);
    ck_admin_device_page_clear(&pg);
    snprintf(page, sizeof(page), "{\"devices\":[],\"next\":null}");
    CHECK_OK(ck_admin_json_decode_device_page(page, strlen(page), &pg));
    CHECK(pg.n == 0 && pg.next[0] == '\0');
    {
        static const char *const bad_pages[] = {
            "{\"devices\":[],\"next\":\"x\"}", "{\"devices\":[]}", "{\"devices\":{},\"next\":null}",
            "{\"devices\":[1],\"next\":null}", "{\"devices\":[],\"next\":null,\"more\":1}",
        };
        for (size_t i = 0; i < sizeof(bad_pages) / sizeof(bad_pages[0]); i++) {
            CHECK(ck_admin_json_decode_device_page(bad_pages[i], strlen(bad_pages[i]), &pg) ==
                  CK_ERR_DECODE);
            CHECK(pg.n == 0 && pg.devices == NULL);
        }
    }
    /* A bad record anywhere in the page refuses the page, nothing kept. */
    snprintf(page, sizeof(page), "{\"devices\":[%s,%s],\"next\":null}", good, bad[0]);
    CHECK(ck_admin_json_decode_device_page(page, strlen(page), &pg) == CK_ERR_DECODE);
    CHECK(pg.n == 0 && pg.devices == NULL);
#undef DEV
}

static int
pol_rules(const char *text, bool modify, ck_policy *rules, unsigned *present)
{
    return ck_admin_json_decode_policy_rules(text, strlen(text), modify, rules, present);
}

static void
test_policies(void)
{
    ck_policy pol = {.name = "strict", .min_length = 12, .min_classes = 3, .history = 5,
                     .min_life = 3600, .max_life = 7776000, .max_failure = 4,
                     .failure_interval = 600, .lockout_duration = 0, .ref_count = 7,
                     .created = 1700000000, .modified = 0};
    ck_policy q, rules;
    struct ck_admin_name_page pg;
    unsigned present;
    char *text = NULL;

    CHECK_OK(ck_admin_json_encode_policy(&pol, &text));
    CHECK(text != NULL && strstr(text, "\"modified\":null") != NULL &&
          strstr(text, "\"principals\":7") != NULL && strstr(text, "\"min_life\":3600") != NULL);
    CHECK_OK(ck_admin_json_decode_policy(text, strlen(text), &q));
    CHECK(strcmp(q.name, "strict") == 0);
    CHECK_INT_EQ(q.min_length, 12);
    CHECK_INT_EQ(q.min_classes, 3);
    CHECK_INT_EQ(q.history, 5);
    CHECK_INT_EQ(q.min_life, 3600);
    CHECK_INT_EQ(q.max_life, 7776000);
    CHECK_INT_EQ(q.max_failure, 4);
    CHECK_INT_EQ(q.failure_interval, 600);
    CHECK_INT_EQ(q.lockout_duration, 0);
    CHECK_INT_EQ(q.ref_count, 7);
    CHECK_INT_EQ(q.created, 1700000000);
    CHECK_INT_EQ(q.modified, 0);
    free(text);
    {
        /* A record: every member, checked name and ranges, nothing else. */
        static const char *const bad[] = {
            "{}",
            "{\"name\":\"p\",\"min_length\":1,\"min_classes\":1,\"history\":1,\"min_life\":0,"
            "\"max_life\":0,\"max_failure\":0,\"failure_interval\":0,\"principals\":0,"
            "\"created\":null,\"modified\":null}", /* lockout_duration missing */
            "{\"name\":\"a b\",\"min_length\":1,\"min_classes\":1,\"history\":1,\"min_life\":0,"
            "\"max_life\":0,\"max_failure\":0,\"failure_interval\":0,\"lockout_duration\":0,"
            "\"principals\":0,\"created\":null,\"modified\":null}",
            "{\"name\":\"p\",\"min_length\":1025,\"min_classes\":1,\"history\":1,\"min_life\":0,"
            "\"max_life\":0,\"max_failure\":0,\"failure_interval\":0,\"lockout_duration\":0,"
            "\"principals\":0,\"created\":null,\"modified\":null}",
            "{\"name\":\"p\",\"min_length\":1,\"min_classes\":1,\"history\":1,\"min_life\":0,"
            "\"max_life\":0,\"max_failure\":0,\"failure_interval\":0,\"lockout_duration\":0,"
            "\"principals\":-1,\"created\":null,\"modified\":null}",
            "{\"name\":\"p\",\"min_length\":1,\"min_classes\":1,\"history\":1,\"min_life\":0,"
            "\"max_life\":0,\"max_failure\":0,\"failure_interval\":0,\"lockout_duration\":0,"
            "\"principals\":0,\"created\":null,\"modified\":null,\"extra\":1}",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            CHECK(ck_admin_json_decode_policy(bad[i], strlen(bad[i]), &q) == CK_ERR_DECODE);
            CHECK(q.name[0] == '\0' && q.min_length == 0);
        }
    }

    /* Rule requests: only the rules given, ranges as the store's. */
    CHECK_OK(ck_admin_json_encode_policy_rules(&pol, CK_ADMIN_POL_MIN_LENGTH |
                                               CK_ADMIN_POL_LOCKOUT_DURATION, &text));
    CHECK(text != NULL && strcmp(text, "{\"min_length\":12,\"lockout_duration\":0}") == 0);
    CHECK_OK(pol_rules(text, true, &rules, &present));
    CHECK_INT_EQ(present, CK_ADMIN_POL_MIN_LENGTH | CK_ADMIN_POL_LOCKOUT_DURATION);
    CHECK_INT_EQ(rules.min_length, 12);
    CHECK(rules.name[0] == '\0');
    free(text);
    CHECK_OK(pol_rules("{}", false, &rules, &present));
    CHECK_INT_EQ(present, 0);
    CHECK(pol_rules("{}", true, &rules, &present) == CK_ERR_DECODE);
    CHECK(strstr(ck_error_context(), "no rule") != NULL);
    CHECK_OK(pol_rules("{\"max_life\":3162240000,\"history\":100,\"min_classes\":5}", true,
                       &rules, &present));
    CHECK_INT_EQ(rules.max_life, 3162240000LL);
    {
        static const char *const bad[] = {
            "{\"name\":\"x\"}", "{\"principals\":1}", "{\"min_length\":-1}",
            "{\"min_length\":1025}", "{\"min_classes\":6}", "{\"history\":101}",
            "{\"max_failure\":1000001}", "{\"max_life\":3162240001}", "{\"min_life\":-1}",
            "{\"lockout_duration\":\"1h\"}", "{\"failure_interval\":1.5}",
            "{\"min_length\":true}", "{\"min_length\":null}", "{\"min_length\":1,\"min_length\":2}",
            "[]", "{\"minlength\":8}",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            CHECK(pol_rules(bad[i], false, &rules, &present) == CK_ERR_DECODE);
            CHECK(present == 0 && rules.min_length == 0);
        }
    }
    CHECK(strstr(ck_error_context(), "minlength") != NULL);

    /* The listing. */
    {
        const char *ok = "{\"policies\":[\"a\",\"default\"]}";
        static const char *const bad[] = {
            "{\"policies\":[\"a b\"]}", "{\"policies\":[\"\"]}", "{\"policies\":[1]}",
            "{\"policies\":\"a\"}", "{\"policies\":[],\"next\":null}", "{}",
            "{\"policies\":[\"a\\u0000b\"]}",
        };
        CHECK_OK(ck_admin_json_decode_policy_names(ok, strlen(ok), &pg));
        CHECK_INT_EQ(pg.n, 2);
        CHECK(pg.n == 2 && strcmp(pg.names[1], "default") == 0 && pg.next == NULL);
        ck_admin_name_page_clear(&pg);
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            CHECK(ck_admin_json_decode_policy_names(bad[i], strlen(bad[i]), &pg) == CK_ERR_DECODE);
            CHECK(pg.n == 0 && pg.names == NULL);
        }
    }
}

static void
test_secure_alloc(void)
{
    struct ck_admin_principal_req r = {0};

    /* After the switch every jansson allocation goes through the wiping allocator; the decoders
     * must keep working (ASan checks the header arithmetic). */
    ck_admin_json_secure_alloc();
    CHECK_OK(req(CK_ADMIN_REQ_CREATE, "{\"password\":\"pw\",\"flags\":{\"requires_preauth\":true}}",
                 &r));
    ck_admin_principal_req_clear(&r);
    test_principal_roundtrip();
}

CK_TEST_MAIN("admin_json", CK_TEST_CASE(test_principal_roundtrip),
             CK_TEST_CASE(test_principal_decode_strict), CK_TEST_CASE(test_realm_roundtrip),
             CK_TEST_CASE(test_requests), CK_TEST_CASE(test_flags_and_device),
             CK_TEST_CASE(test_realm_mod_and_rename), CK_TEST_CASE(test_error_and_page),
             CK_TEST_CASE(test_policies), CK_TEST_CASE(test_device_decode),
             CK_TEST_CASE(test_secure_alloc))
