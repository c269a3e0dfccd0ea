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
                       .max_renew = 604800, .master_kvno = 1};
    ck_realm_info s;
    char *text = NULL;

    ck_strlcpy(r.name, "TEST.REALM", sizeof(r.name));
    CHECK_OK(ck_admin_json_encode_realm(&r, &text));
    CHECK_OK(ck_admin_json_decode_realm(text, strlen(text), &s));
    CHECK(strcmp(s.name, "TEST.REALM") == 0);
    CHECK_INT_EQ(s.n_enctypes, 2);
    CHECK_INT_EQ(s.enctypes[1], 17);
    CHECK_INT_EQ(s.max_renew, 604800);
    CHECK_INT_EQ(s.master_kvno, 1);
    free(text);
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
    free(text);
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
             CK_TEST_CASE(test_secure_alloc))
