/* cablekey-prov's API without sockets: routing (method + path -> operation, ACL letter),
 * strict body and query validation naming the refused field, the idempotency request hash, the
 * JSON depth limit, the console login body, the [prov] configuration and the ACL letter r. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cablekey/admin.h"
#include "ck_test.h"
#include "provd.h"

struct q {
    const char *k[4], *v[4];
};

static const char *
qfn(void *arg, const char *key)
{
    struct q *q = arg;

    for (size_t i = 0; q != NULL && i < 4 && q->k[i] != NULL; i++)
        if (strcmp(q->k[i], key) == 0)
            return q->v[i];
    return NULL;
}

/* Routes and builds; returns the status; *field the refused field ("" none). */
static int
build(const char *method, const char *path, const char *body, struct q *q, const char *idem,
      json_t **msg, char *field, size_t fsize)
{
    struct prov_route rt;
    char why[256];
    json_t *err = NULL;
    int st;

    *msg = NULL;
    field[0] = '\0';
    if ((st = prov_route(method, path, &rt, why, sizeof(why))) != 0)
        return st;
    st = prov_api_build(&rt, "csr1@R", qfn, q, body, body != NULL ? strlen(body) : 0, idem, msg,
                        &err);
    if (st != 0) {
        const json_t *e = json_object_get(err, "error");
        const char *fl = json_string_value(json_object_get(e, "field"));
        const char *code = json_string_value(json_object_get(e, "code"));
        snprintf(field, fsize, "%s", fl != NULL ? fl : code != NULL ? code : "?");
        json_decref(err);
    }
    return st;
}

static void
test_routes(void)
{
    static const struct {
        const char *method, *path;
        int status;
        const char *op;
        unsigned perm;
    } cases[] = {
        {"GET", "/api/v1/devices", 0, "device.list", PROV_PERM_READ},
        {"GET", "/api/v1/devices/00-11-22-33-44-55", 0, "device.get", PROV_PERM_READ},
        {"POST", "/api/v1/devices/001122334455/provision", 0, "device.act", PROV_PERM_PROVISION},
        {"POST", "/api/v1/devices/00:11:22:33:44:55/revoke", 0, "device.act", PROV_PERM_REVOKE},
        {"POST", "/api/v1/devices/00:11:22:33:44:55/reinstate", 0, "device.act",
         PROV_PERM_REVOKE},
        {"POST", "/api/v1/devices/report", 0, "device.report", PROV_PERM_CONTROLLER},
        {"GET", "/api/v1/lines", 0, "lines", PROV_PERM_CONTROLLER},
        {"POST", "/api/v1/customers", 0, "customer.add", PROV_PERM_CUSTOMER},
        {"PATCH", "/api/v1/customers/7", 0, "customer.modify", PROV_PERM_CUSTOMER},
        {"GET", "/api/v1/customers/7", 0, "customer.get", PROV_PERM_READ},
        {"GET", "/api/v1/webhooks/deliveries", 0, "deliveries", PROV_PERM_READ},
        {"GET", "/api/v1/pools", 0, "pools", PROV_PERM_READ},
        {"GET", "/api/v1/session", 0, "session", 0},
        {"GET", "/", 0, "static", 0},
        {"DELETE", "/api/v1/devices/00:11:22:33:44:55", 405, NULL, 0},
        {"GET", "/api/v1/devices/00:11:22:33:44:55/provision", 405, NULL, 0},
        {"POST", "/api/v1/devices/00:11:22:33:44:55/explode", 404, NULL, 0},
        {"GET", "/api/v1/devices/zz:11:22:33:44:55", 400, NULL, 0},
        {"GET", "/api/v1/customers/-1", 400, NULL, 0},
        {"GET", "/api/v2/devices", 404, NULL, 0},
        {"GET", "/etc/passwd", 404, NULL, 0},
        {"GET", "/api/v1/devices/%00", 404, NULL, 0},
        {"PUT", "/api/v1/pools", 405, NULL, 0},
    };
    struct prov_route rt;
    char why[256];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int st = prov_route(cases[i].method, cases[i].path, &rt, why, sizeof(why));
        if (st != cases[i].status)
            fprintf(stderr, "  %s %s -> %d\n", cases[i].method, cases[i].path, st);
        CHECK_INT_EQ(st, cases[i].status);
        if (st == 0) {
            CHECK(strcmp(rt.op, cases[i].op) == 0);
            CHECK_INT_EQ(rt.perm, cases[i].perm);
        }
    }
    CHECK_INT_EQ(prov_route("GET", "/api/v1/devices/001122334455", &rt, why, sizeof(why)), 0);
    CHECK(strcmp(rt.mac, "00:11:22:33:44:55") == 0);
}

static void
test_action_bodies(void)
{
    static const struct {
        const char *action, *body;
        int status;
        const char *field;
    } cases[] = {
        {"provision", "{\"customer\":5}", 0, ""},
        {"provision", "{\"customer\":5,\"number\":\"15551230001\",\"segment\":\"north-1\"}", 0,
         ""},
        {"provision", "{}", 400, "customer"},
        {"provision", "{\"customer\":\"5\"}", 400, "customer"},
        {"provision", "{\"customer\":0}", 400, "customer"},
        {"provision", "{\"customer\":5,\"number\":\"+1555\"}", 400, "number"},
        {"provision", "{\"customer\":5,\"number\":\"1234567890123456\"}", 400, "number"},
        {"provision", "{\"customer\":5,\"segment\":\"a b\"}", 400, "segment"},
        {"provision", "{\"customer\":5,\"colour\":\"red\"}", 400, "colour"},
        {"provision", "{\"customer\":5", 400, "invalid_json"},
        {"provision", "[1]", 400, "invalid_json"},
        {"provision", "{\"customer\":5,\"customer\":6}", 400, "invalid_json"},
        {"provision", "", 400, "invalid_json"},
        {"change-service", "{\"services\":{\"cw\":true},\"reissue\":true}", 0, ""},
        {"change-service", "{\"services\":[]}", 400, "services"},
        {"change-service", "{\"services\":{},\"reissue\":1}", 400, "reissue"},
        {"deprovision", "{\"reason\":\"moved out\"}", 0, ""},
        {"deprovision", "{\"reason\":\"a\\nb\"}", 400, "reason"},
        {"move", "{\"segment\":\"south\"}", 0, ""},
        {"move", "{}", 400, "segment"},
        {"repair", "{\"facility\":3}", 0, ""},
        {"repair", "{\"facility\":null}", 400, "facility"},
        {"return", "{}", 0, ""},
        {"return", "{\"x\":1}", 400, "x"},
        {"loaner", "{\"customer\":5,\"for\":\"001122334466\"}", 0, ""},
        {"loaner", "{\"customer\":5,\"for\":\"nope\"}", 400, "for"},
        {"revoke", "{}", 0, ""},
        {"reinstate", "{\"reason\":\"found\"}", 0, ""},
    };
    char path[128], field[64];
    json_t *msg;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int st;
        snprintf(path, sizeof(path), "/api/v1/devices/00:11:22:33:44:55/%s", cases[i].action);
        st = build("POST", path, cases[i].body, NULL, NULL, &msg, field, sizeof(field));
        if (st != cases[i].status || strcmp(field, cases[i].field) != 0)
            fprintf(stderr, "  %s %s -> %d %s\n", cases[i].action, cases[i].body, st, field);
        CHECK_INT_EQ(st, cases[i].status);
        CHECK(strcmp(field, cases[i].field) == 0);
        if (st == 0) {
            CHECK(strcmp(json_string_value(json_object_get(msg, "action")), cases[i].action) ==
                  0);
            CHECK(strcmp(json_string_value(json_object_get(msg, "mac")), "00:11:22:33:44:55") ==
                  0);
            CHECK(strcmp(json_string_value(json_object_get(msg, "actor")), "csr1@R") == 0);
        }
        json_decref(msg);
    }
    /* The loaner's "for" is returned canonical. */
    CHECK_INT_EQ(build("POST", "/api/v1/devices/001122334455/loaner",
                       "{\"customer\":5,\"for\":\"00-11-22-33-44-66\"}", NULL, NULL, &msg, field,
                       sizeof(field)),
                 0);
    CHECK(strcmp(json_string_value(json_object_get(json_object_get(msg, "req"), "for")),
                 "00:11:22:33:44:66") == 0);
    json_decref(msg);
}

static void
test_customer_report_bodies(void)
{
    char field[64];
    json_t *msg;

    CHECK_INT_EQ(build("POST", "/api/v1/customers",
                       "{\"name\":\"Ann\",\"address\":\"1 Main St\",\"segment\":\"north\"}", NULL,
                       NULL, &msg, field, sizeof(field)),
                 0);
    CHECK(strcmp(json_string_value(json_object_get(json_object_get(msg, "req"), "type")),
                 "customer") == 0);
    json_decref(msg);
    CHECK_INT_EQ(build("POST", "/api/v1/customers", "{\"name\":\"Ann\",\"segment\":\"north\"}",
                       NULL, NULL, &msg, field, sizeof(field)),
                 400);
    CHECK(strcmp(field, "address") == 0);
    CHECK_INT_EQ(build("POST", "/api/v1/customers",
                       "{\"name\":\"Ann\",\"address\":\"x\",\"segment\":\"n\",\"email\":\"ann\"}",
                       NULL, NULL, &msg, field, sizeof(field)),
                 400);
    CHECK(strcmp(field, "email") == 0);
    CHECK_INT_EQ(build("POST", "/api/v1/customers",
                       "{\"name\":\"Ann\",\"address\":\"x\",\"segment\":\"n\",\"type\":\"vip\"}",
                       NULL, NULL, &msg, field, sizeof(field)),
                 400);
    CHECK(strcmp(field, "type") == 0);
    CHECK_INT_EQ(build("PATCH", "/api/v1/customers/4", "{}", NULL, NULL, &msg, field,
                       sizeof(field)),
                 400);
    CHECK_INT_EQ(build("PATCH", "/api/v1/customers/4", "{\"segment\":\"s\"}", NULL, NULL, &msg,
                       field, sizeof(field)),
                 400);
    CHECK(strcmp(field, "segment") == 0); /* a move is a device action, not a PATCH */
    CHECK_INT_EQ(build("PATCH", "/api/v1/customers/4", "{\"email\":\"a@b.example\"}", NULL,
                       NULL, &msg, field, sizeof(field)),
                 0);
    CHECK_INT_EQ(json_integer_value(json_object_get(msg, "customer")), 4);
    json_decref(msg);
    CHECK_INT_EQ(build("POST", "/api/v1/devices/report",
                       "{\"mac\":\"001122334455\",\"ip\":\"192.0.2.7\",\"key_sha256\":\""
                       "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\"}",
                       NULL, NULL, &msg, field, sizeof(field)),
                 0);
    CHECK(strcmp(json_string_value(json_object_get(json_object_get(msg, "req"), "mac")),
                 "00:11:22:33:44:55") == 0);
    json_decref(msg);
    CHECK_INT_EQ(build("POST", "/api/v1/devices/report",
                       "{\"mac\":\"001122334455\",\"ip\":\"192.0.2.300\"}", NULL, NULL, &msg,
                       field, sizeof(field)),
                 400);
    CHECK(strcmp(field, "ip") == 0);
    CHECK_INT_EQ(build("POST", "/api/v1/devices/report",
                       "{\"mac\":\"001122334455\",\"ip\":\"::1\",\"key_sha256\":\"abc\"}", NULL,
                       NULL, &msg, field, sizeof(field)),
                 400);
    CHECK(strcmp(field, "key_sha256") == 0);
}

static void
test_queries(void)
{
    char field[64];
    json_t *msg;
    struct q ok_q = {{"ip", "limit"}, {"10.1.2.3", "50"}};
    struct q two = {{"ip", "mac"}, {"10.1.2.3", "001122334455"}};
    struct q bad_limit = {{"limit"}, {"0"}};
    struct q bad_state = {{"state"}, {"happy"}};
    struct q wait = {{"after", "wait"}, {"12", "31"}};
    struct q esc = {{"q"}, {"Ann%20Lee"}};

    CHECK_INT_EQ(build("GET", "/api/v1/devices", NULL, &ok_q, NULL, &msg, field, sizeof(field)),
                 0);
    CHECK(strcmp(json_string_value(json_object_get(json_object_get(msg, "req"), "ip")),
                 "10.1.2.3") == 0);
    CHECK_INT_EQ(json_integer_value(json_object_get(json_object_get(msg, "req"), "limit")), 50);
    json_decref(msg);
    CHECK_INT_EQ(build("GET", "/api/v1/devices", NULL, &two, NULL, &msg, field, sizeof(field)),
                 400);
    CHECK_INT_EQ(build("GET", "/api/v1/devices", NULL, &bad_limit, NULL, &msg, field,
                       sizeof(field)),
                 400);
    CHECK(strcmp(field, "limit") == 0);
    CHECK_INT_EQ(build("GET", "/api/v1/devices", NULL, &bad_state, NULL, &msg, field,
                       sizeof(field)),
                 400);
    CHECK(strcmp(field, "state") == 0);
    CHECK_INT_EQ(build("GET", "/api/v1/lines", NULL, &wait, NULL, &msg, field, sizeof(field)),
                 400);
    CHECK(strcmp(field, "wait") == 0);
    CHECK_INT_EQ(build("GET", "/api/v1/customers", NULL, &esc, NULL, &msg, field, sizeof(field)),
                 0);
    CHECK(strcmp(json_string_value(json_object_get(json_object_get(msg, "req"), "q")),
                 "Ann Lee") == 0);
    json_decref(msg);
    /* A GET takes no body. */
    CHECK_INT_EQ(build("GET", "/api/v1/pools", "{}", NULL, NULL, &msg, field, sizeof(field)),
                 400);
}

static void
test_idempotency(void)
{
    char field[64];
    json_t *a, *b, *c;

    CHECK_INT_EQ(build("POST", "/api/v1/devices/001122334455/provision",
                       "{\"customer\":5,\"number\":\"15551230001\"}", NULL, "key-1", &a, field,
                       sizeof(field)),
                 0);
    /* The same meaning in another member order and MAC form: the same hash. */
    CHECK_INT_EQ(build("POST", "/api/v1/devices/00-11-22-33-44-55/provision",
                       "{ \"number\":\"15551230001\", \"customer\":5 }", NULL, "key-1", &b,
                       field, sizeof(field)),
                 0);
    CHECK_INT_EQ(build("POST", "/api/v1/devices/001122334455/provision",
                       "{\"customer\":6,\"number\":\"15551230001\"}", NULL, "key-1", &c, field,
                       sizeof(field)),
                 0);
    CHECK(strcmp(json_string_value(json_object_get(a, "hash")),
                 json_string_value(json_object_get(b, "hash"))) == 0);
    CHECK(strcmp(json_string_value(json_object_get(a, "hash")),
                 json_string_value(json_object_get(c, "hash"))) != 0);
    CHECK(strcmp(json_string_value(json_object_get(a, "idem")), "key-1") == 0);
    CHECK(json_object_get(json_object_get(a, "req"), "_target") == NULL);
    json_decref(a);
    json_decref(b);
    json_decref(c);
    /* Another device, same body: another hash. */
    CHECK_INT_EQ(build("POST", "/api/v1/devices/001122334456/provision",
                       "{\"customer\":5,\"number\":\"15551230001\"}", NULL, "key-1", &b, field,
                       sizeof(field)),
                 0);
    CHECK_INT_EQ(build("POST", "/api/v1/devices/001122334455/provision",
                       "{\"customer\":5,\"number\":\"15551230001\"}", NULL, "key-1", &a, field,
                       sizeof(field)),
                 0);
    CHECK(strcmp(json_string_value(json_object_get(a, "hash")),
                 json_string_value(json_object_get(b, "hash"))) != 0);
    json_decref(a);
    json_decref(b);
    CHECK_INT_EQ(build("POST", "/api/v1/devices/001122334455/return", "{}", NULL, "bad key!",
                       &a, field, sizeof(field)),
                 400);
    CHECK(strcmp(field, "Idempotency-Key") == 0);
    CHECK_INT_EQ(build("POST", "/api/v1/devices/report", "{\"mac\":\"001122334455\",\"ip\":"
                       "\"10.0.0.1\"}", NULL, "k", &a, field, sizeof(field)),
                 400);
    CHECK(strcmp(field, "Idempotency-Key") == 0);
}

static void
test_limits(void)
{
    char deep[256], field[64], *big;
    json_t *msg;
    size_t n = 0;

    n += (size_t)snprintf(deep + n, sizeof(deep) - n, "{\"services\":");
    for (int i = 0; i < 10; i++)
        n += (size_t)snprintf(deep + n, sizeof(deep) - n, "{\"a\":");
    n += (size_t)snprintf(deep + n, sizeof(deep) - n, "1");
    for (int i = 0; i < 11; i++)
        n += (size_t)snprintf(deep + n, sizeof(deep) - n, "}");
    CHECK_INT_EQ(build("POST", "/api/v1/devices/001122334455/change-service", deep, NULL, NULL,
                       &msg, field, sizeof(field)),
                 400);
    CHECK(strcmp(field, "invalid_json") == 0);
    /* Brackets inside strings are not nesting. */
    CHECK_INT_EQ(build("POST", "/api/v1/devices/001122334455/deprovision",
                       "{\"reason\":\"[[[[[[[[[[[[{{{{{{{{{{\"}", NULL, NULL, &msg, field,
                       sizeof(field)),
                 0);
    json_decref(msg);
    /* services larger than the store keeps. */
    big = malloc(CK_PROV_SERVICES_MAX + 64);
    CHECK(big != NULL);
    if (big != NULL) {
        n = (size_t)snprintf(big, 64, "{\"services\":{\"x\":\"");
        memset(big + n, 'a', CK_PROV_SERVICES_MAX);
        memcpy(big + n + CK_PROV_SERVICES_MAX, "\"}}", 4);
        CHECK_INT_EQ(build("POST", "/api/v1/devices/001122334455/change-service", big, NULL,
                           NULL, &msg, field, sizeof(field)),
                     400);
        CHECK(strcmp(field, "services") == 0);
        free(big);
    }
}

static void
test_login_body(void)
{
    char *p = NULL, *pw = NULL, field[32], why[128];

    static const char ok_body[] = "{\"principal\":\"csr1\",\"password\":\"s3cret\"}";

    CHECK_INT_EQ(prov_api_login_body(ok_body, sizeof(ok_body) - 1, &p, &pw, field, sizeof(field),
                                     why, sizeof(why)),
                 0);
    CHECK(p != NULL && strcmp(p, "csr1") == 0);
    CHECK(pw != NULL && strcmp(pw, "s3cret") == 0);
    free(p);
    free(pw);
    CHECK_INT_EQ(prov_api_login_body("{\"principal\":\"csr1\"}", 20, &p, &pw, field,
                                     sizeof(field), why, sizeof(why)),
                 400);
    CHECK(strcmp(field, "password") == 0);
    CHECK(p == NULL && pw == NULL);
    CHECK_INT_EQ(prov_api_login_body("nope", 4, &p, &pw, field, sizeof(field), why, sizeof(why)),
                 400);
    CHECK(field[0] == '\0');
}

static void
test_hash_vector(void)
{
    /* SHA-256("provision\n{\"customer\":5}") computed independently (sha256sum). */
    static const uint8_t want[32] = {
        0x9f, 0x2c, 0xd8, 0x43, 0xee, 0xc9, 0x82, 0xde, 0x6c, 0xda, 0xc0, 0x6c, 0x2b, 0x5c, 0x0f,
        0x8b, 0x30, 0xaf, 0x55, 0xe9, 0x5b, 0xef, 0x50, 0xb6, 0xdf, 0xee, 0x29, 0xf7, 0xa3, 0xdb,
        0x2b, 0x4d};
    json_t *o = json_pack("{s:i}", "customer", 5);
    uint8_t h[32];

    CHECK_OK(prov_request_hash("provision", o, h));
    CHECK_MEM_EQ(h, 32, want, 32);
    json_decref(o);
}

static void
test_config(void)
{
    char path[] = "/tmp/test_prov_api_XXXXXX";
    int fd = mkstemp(path);
    struct ck_daemon_opts o = {.config = path};
    struct prov_config cfg;
    static const char good[] =
        "[prov]\n database = /tmp/x.db\n keytab = /tmp/k\n acl_file = /tmp/a\n"
        " ca_cert = c\n ca_key = k\n phone_id_key = p\n fqdn_domain = mta.example.net\n"
        " pool = north 15550000000 15550000999\n webhook = billing http://127.0.0.1:9/h /tmp/s\n"
        " cert_days = 30\n session_lifetime = 2h\n";
    static const char *const bad[] = {
        "[prov]\n database = /tmp/x.db\n keytab = k\n acl_file = a\n ca_cert = c\n ca_key = k\n"
        " phone_id_key = p\n fqdn_domain = d\n lisen = 127.0.0.1\n",
        "[prov]\n database = /tmp/x.db\n keytab = k\n acl_file = a\n ca_cert = c\n ca_key = k\n"
        " phone_id_key = p\n",
        "[prov]\n database = /tmp/x.db\n keytab = k\n acl_file = a\n ca_cert = c\n ca_key = k\n"
        " phone_id_key = p\n fqdn_domain = d\n pool = north 200 1999\n",
        "[prov]\n database = /tmp/x.db\n keytab = k\n acl_file = a\n ca_cert = c\n ca_key = k\n"
        " phone_id_key = p\n fqdn_domain = d\n webhook = b ftp://x /s\n",
        "[prov]\n database = /tmp/x.db\n keytab = k\n acl_file = a\n ca_cert = c\n ca_key = k\n"
        " phone_id_key = p\n fqdn_domain = d\n cert_days = 0\n",
    };

    CHECK(fd >= 0);
    CHECK((size_t)write(fd, good, sizeof(good) - 1) == sizeof(good) - 1);
    close(fd);
    CHECK_OK(prov_config_load(&o, &cfg));
    CHECK_INT_EQ(cfg.n_pools, 1);
    CHECK(cfg.n_pools == 1 && strcmp(cfg.pools[0].last, "15550000999") == 0);
    CHECK(cfg.n_webhooks == 1 && strcmp(cfg.webhooks[0].name, "billing") == 0);
    CHECK_INT_EQ(cfg.cert_days, 30);
    CHECK_INT_EQ(cfg.repair_cert_hours, PROV_DEFAULT_REPAIR_CERT_HOURS);
    CHECK_INT_EQ(cfg.session_lifetime, 7200);
    CHECK_OK(prov_listen_validate(&cfg)); /* the loopback default */
    prov_config_free(&cfg);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        FILE *fp = fopen(path, "w");
        CHECK(fp != NULL);
        if (fp == NULL)
            break;
        fputs(bad[i], fp);
        fclose(fp);
        CHECK(prov_config_load(&o, &cfg) != 0);
        prov_config_free(&cfg);
    }
    /* A non-loopback address without TLS is refused before anything starts. */
    {
        FILE *fp = fopen(path, "w");
        if (fp != NULL) {
            fputs("[prov]\n database = /tmp/x.db\n keytab = k\n acl_file = a\n ca_cert = c\n"
                  " ca_key = k\n phone_id_key = p\n fqdn_domain = d\n listen = 0.0.0.0:8088\n",
                  fp);
            fclose(fp);
        }
        CHECK_OK(prov_config_load(&o, &cfg));
        CHECK(prov_listen_validate(&cfg) != 0);
        CHECK(strstr(ck_error_context(), "tls_identity") != NULL);
        prov_config_free(&cfg);
    }
    unlink(path);
}

static void
test_acl_revoke_letter(void)
{
    static const char text[] = "ops@R pr\nsupport@R ip\nadmin@R x\n";
    struct ck_admin_acl *acl = NULL;

    CHECK_OK(ck_admin_acl_parse(text, sizeof(text) - 1, "t", "R", &acl));
    CHECK(ck_admin_acl_check(acl, "ops@R", NULL, PROV_PERM_REVOKE, NULL));
    CHECK(!ck_admin_acl_check(acl, "support@R", NULL, PROV_PERM_REVOKE, NULL));
    CHECK(ck_admin_acl_check(acl, "support@R", NULL, PROV_PERM_PROVISION, NULL));
    /* x grants admind's letters, not revoke: that is granted by name. */
    CHECK(!ck_admin_acl_check(acl, "admin@R", NULL, PROV_PERM_REVOKE, NULL));
    ck_admin_acl_free(acl);
}

CK_TEST_MAIN("prov_api", CK_TEST_CASE(test_routes), CK_TEST_CASE(test_action_bodies),
             CK_TEST_CASE(test_customer_report_bodies), CK_TEST_CASE(test_queries),
             CK_TEST_CASE(test_idempotency), CK_TEST_CASE(test_limits),
             CK_TEST_CASE(test_login_body), CK_TEST_CASE(test_hash_vector),
             CK_TEST_CASE(test_config), CK_TEST_CASE(test_acl_revoke_letter))
