/* cablekey-prov's HTTP API, the socket-free part: routing (method + path -> operation and ACL
 * letter), the strict decoding of query parameters and JSON bodies (every refusal names its
 * field), and the request hash of the idempotency records. The front calls it per request;
 * test_prov_api and fuzz_prov_json call it directly. The API is documented in
 * docs/cablekey-prov.md. */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "admin/admin_int.h"
#include "admin/httpd.h"
#include "cablekey/admin.h"
#include "cablekey/error.h"
#include "cablekey/util.h"
#include "provd.h"

#define REASON_MAX 256

static const char *const q_none[] = {NULL};
static const char *const q_devices[] = {"mac", "ip", "number", "customer", "state", "after",
                                        "limit", NULL};
static const char *const q_customers[] = {"q", "after", "limit", NULL};
static const char *const q_lines[] = {"after", "wait", NULL};
static const char *const q_deliveries[] = {"before", "limit", NULL};

/* The device actions: path segment, ACL letter, whether it signs a certificate. */
static const struct {
    const char *name;
    unsigned perm;
} actions[] = {
    {"provision", PROV_PERM_PROVISION}, {"change-service", PROV_PERM_PROVISION},
    {"deprovision", PROV_PERM_PROVISION}, {"move", PROV_PERM_PROVISION},
    {"repair", PROV_PERM_PROVISION},    {"return", PROV_PERM_PROVISION},
    {"loaner", PROV_PERM_PROVISION},    {"revoke", PROV_PERM_REVOKE},
    {"reinstate", PROV_PERM_REVOKE},
};

static int
route_back(struct prov_route *rt, const char *op, unsigned perm, const char *const *query)
{
    rt->kind = PROV_R_BACK;
    rt->op = op;
    rt->perm = perm;
    rt->query = query;
    return 0;
}

int
prov_route(const char *method, const char *path, struct prov_route *rt, char *why,
           size_t why_size)
{
    char buf[1024], *seg[PROV_MAX_SEGMENTS], *save = NULL, *s;
    size_t n = 0;
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    bool post = strcmp(method, "POST") == 0, patch = strcmp(method, "PATCH") == 0;
    bool del = strcmp(method, "DELETE") == 0;

    memset(rt, 0, sizeof(*rt));
    rt->query = q_none;
    snprintf(why, why_size, "no such resource");
    if (ck_strlcpy(buf, path, sizeof(buf)) >= sizeof(buf) || buf[0] != '/')
        return 404;
    if (strcmp(buf, "/") == 0 || strcmp(buf, "/index.html") == 0 ||
        strcmp(buf, "/console.js") == 0 || strcmp(buf, "/console.css") == 0) {
        rt->kind = PROV_R_STATIC;
        rt->op = "static";
        rt->allow = "GET";
        return get ? 0 : 405;
    }
    for (s = strtok_r(buf, "/", &save); s != NULL; s = strtok_r(NULL, "/", &save)) {
        if (n == PROV_MAX_SEGMENTS || ck_admin_pct_decode(s) != 0)
            return 404;
        seg[n++] = s;
    }
    if (n < 3 || strcmp(seg[0], "api") != 0 || strcmp(seg[1], "v1") != 0)
        return 404;
    if (n == 3 && strcmp(seg[2], "session") == 0) {
        rt->kind = PROV_R_SESSION;
        rt->op = "session";
        rt->allow = "GET, POST, DELETE";
        rt->body = post;
        return get || post || del ? 0 : 405;
    }
    if (strcmp(seg[2], "devices") == 0) {
        if (n == 3) {
            rt->allow = "GET";
            return get ? route_back(rt, "device.list", PROV_PERM_READ, q_devices) : 405;
        }
        if (n == 4 && strcmp(seg[3], "report") == 0) {
            rt->allow = "POST";
            if (!post)
                return 405;
            rt->body = true;
            return route_back(rt, "device.report", PROV_PERM_CONTROLLER, q_none);
        }
        if (n > 5)
            return 404;
        if (ck_mac_canonical(seg[3], rt->mac) != 0) {
            snprintf(why, why_size, "mac: not a MAC address");
            return 400;
        }
        if (n == 4) {
            rt->allow = "GET";
            return get ? route_back(rt, "device.get", PROV_PERM_READ, q_none) : 405;
        }
        for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++) {
            if (strcmp(seg[4], actions[i].name) != 0)
                continue;
            rt->allow = "POST";
            if (!post)
                return 405;
            rt->action = actions[i].name;
            rt->body = true;
            rt->idempotent = true;
            return route_back(rt, "device.act", actions[i].perm, q_none);
        }
        return 404;
    }
    if (strcmp(seg[2], "customers") == 0 && n <= 4) {
        if (n == 3) {
            rt->allow = "GET, POST";
            if (get)
                return route_back(rt, "customer.list", PROV_PERM_READ, q_customers);
            if (!post)
                return 405;
            rt->body = rt->idempotent = rt->created = true;
            rt->action = "customer-add";
            return route_back(rt, "customer.add", PROV_PERM_CUSTOMER, q_none);
        }
        if (ck_parse_int64(seg[3], 1, INT64_MAX, &rt->customer) != 0) {
            snprintf(why, why_size, "customer: not a customer id");
            return 400;
        }
        rt->allow = "GET, PATCH";
        if (get)
            return route_back(rt, "customer.get", PROV_PERM_READ, q_none);
        if (!patch)
            return 405;
        rt->body = rt->idempotent = true;
        rt->action = "customer-modify";
        return route_back(rt, "customer.modify", PROV_PERM_CUSTOMER, q_none);
    }
    if (n == 3 && strcmp(seg[2], "lines") == 0) {
        rt->allow = "GET";
        return get ? route_back(rt, "lines", PROV_PERM_CONTROLLER, q_lines) : 405;
    }
    if (n == 4 && strcmp(seg[2], "webhooks") == 0 && strcmp(seg[3], "deliveries") == 0) {
        rt->allow = "GET";
        return get ? route_back(rt, "deliveries", PROV_PERM_READ, q_deliveries) : 405;
    }
    if (n == 3 && strcmp(seg[2], "pools") == 0) {
        rt->allow = "GET";
        return get ? route_back(rt, "pools", PROV_PERM_READ, q_none) : 405;
    }
    return 404;
}

/* ===================================================================== JSON input */

/* Nesting depth of JSON text, counted before jansson parses it (its own limit is 2048 levels
 * of recursion: far more than a request needs). Strings are skipped with their escapes. */
static size_t
json_depth(const char *t, size_t len)
{
    size_t depth = 0, max = 0;
    bool in_str = false;

    for (size_t i = 0; i < len; i++) {
        char c = t[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
            continue;
        }
        if (c == '"') {
            in_str = true;
        } else if (c == '{' || c == '[') {
            if (++depth > max)
                max = depth;
        } else if ((c == '}' || c == ']') && depth > 0) {
            depth--;
        }
    }
    return max;
}

int
prov_json_parse(const char *text, size_t len, json_t **out, char *why, size_t why_size)
{
    json_error_t jerr;
    json_t *o;

    *out = NULL;
    if (len > PROV_MAX_MAX_BODY) {
        snprintf(why, why_size, "request body larger than %d bytes", PROV_MAX_MAX_BODY);
        return CK_ERR_LIMIT;
    }
    if (len == 0) {
        snprintf(why, why_size, "a JSON object body is required");
        return CK_ERR_DECODE;
    }
    if (json_depth(text, len) > PROV_JSON_MAX_DEPTH) {
        snprintf(why, why_size, "JSON nested deeper than %d levels", PROV_JSON_MAX_DEPTH);
        return CK_ERR_DECODE;
    }
    o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (o == NULL) {
        snprintf(why, why_size, "malformed JSON at line %d column %d: %.80s", jerr.line,
                 jerr.column, jerr.text);
        return CK_ERR_DECODE;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        snprintf(why, why_size, "the body must be a JSON object");
        return CK_ERR_DECODE;
    }
    *out = o;
    return 0;
}

int
prov_request_hash(const char *action, const json_t *body, uint8_t out[32])
{
    char *text = prov_json_text(body, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENSURE_ASCII);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int n = 0;
    int rc = CK_ERR_CRYPTO;

    if (text == NULL || md == NULL) {
        rc = CK_ERR_NOMEM;
        goto out;
    }
    if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
        EVP_DigestUpdate(md, action, strlen(action)) == 1 && EVP_DigestUpdate(md, "\n", 1) == 1 &&
        EVP_DigestUpdate(md, text, strlen(text)) == 1 && EVP_DigestFinal_ex(md, out, &n) == 1 &&
        n == 32)
        rc = 0;
out:
    EVP_MD_CTX_free(md);
    free(text);
    return rc;
}

/* A field decoder failure: the error body names the field. */
struct dec {
    json_t *err;
};

static int
fail(struct dec *d, const char *field, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int
fail(struct dec *d, const char *field, const char *fmt, ...)
{
    char msg[400];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    d->err = prov_error(400, "invalid_field", field, "%s: %s", field, msg);
    return 400;
}

/* Refuses a member not in allowed (first one named). */
static int
only(struct dec *d, const json_t *o, const char *const *allowed)
{
    const char *k;
    json_t *v;

    json_object_foreach((json_t *)o, k, v) {
        bool ok = false;
        (void)v;
        for (size_t i = 0; allowed[i] != NULL && !ok; i++)
            ok = strcmp(k, allowed[i]) == 0;
        if (!ok) {
            char name[64];
            ck_strlcpy(name, k, sizeof(name));
            for (char *p = name; *p != '\0'; p++)
                if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '"')
                    *p = '?';
            return fail(d, name, "unknown member");
        }
    }
    return 0;
}

static bool
printable(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

/* A text member: absent (NULL, unless required), or a string of 1..max bytes without control
 * characters. */
static int
text(struct dec *d, const json_t *o, const char *m, size_t max, bool required, const char **out)
{
    const json_t *v = json_object_get(o, m);

    *out = NULL;
    if (v == NULL || json_is_null(v))
        return required ? fail(d, m, "required") : 0;
    if (!json_is_string(v))
        return fail(d, m, "expected a string");
    if (json_string_length(v) == 0 || json_string_length(v) > max)
        return fail(d, m, "expected 1..%zu bytes", max);
    if (strlen(json_string_value(v)) != json_string_length(v) || !printable(json_string_value(v)))
        return fail(d, m, "control characters are not allowed");
    *out = json_string_value(v);
    return 0;
}

static int
id(struct dec *d, const json_t *o, const char *m, bool required, int64_t *out)
{
    const json_t *v = json_object_get(o, m);

    *out = 0;
    if (v == NULL || json_is_null(v))
        return required ? fail(d, m, "required") : 0;
    if (!json_is_integer(v) || json_integer_value(v) < 1)
        return fail(d, m, "expected a positive integer id");
    *out = json_integer_value(v);
    return 0;
}

bool
prov_token_ok(const char *s, size_t max)
{
    size_t n = strlen(s);

    if (n == 0 || n > max)
        return false;
    for (; *s != '\0'; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '_' || *s == '-'))
            return false;
    return true;
}

bool
prov_digits_ok(const char *s, size_t max)
{
    size_t n = strlen(s);

    if (n == 0 || n > max)
        return false;
    return strspn(s, "0123456789") == n;
}

static int
segment(struct dec *d, const json_t *o, const char *m, bool required, const char **out)
{
    int st;

    if ((st = text(d, o, m, CK_PROV_SEGMENT_MAX, required, out)) != 0)
        return st;
    if (*out != NULL && !prov_token_ok(*out, CK_PROV_SEGMENT_MAX))
        return fail(d, m, "expected 1..%d of A-Z a-z 0-9 . _ -", CK_PROV_SEGMENT_MAX);
    return 0;
}

static int
number(struct dec *d, const json_t *o, const char *m, const char **out)
{
    int st;

    if ((st = text(d, o, m, CK_PROV_NUMBER_MAX, false, out)) != 0)
        return st;
    if (*out != NULL && !prov_digits_ok(*out, CK_PROV_NUMBER_MAX))
        return fail(d, m, "expected 1..%d digits (E.164 without '+')", CK_PROV_NUMBER_MAX);
    return 0;
}

static int
services(struct dec *d, const json_t *o, bool required, json_t **out)
{
    json_t *v = json_object_get(o, "services");
    char *t;
    size_t n;

    *out = NULL;
    if (v == NULL)
        return required ? fail(d, "services", "required") : 0;
    if (!json_is_object(v))
        return fail(d, "services", "expected an object");
    if ((t = prov_json_text(v, JSON_COMPACT | JSON_SORT_KEYS)) == NULL)
        return fail(d, "services", "cannot be encoded");
    n = strlen(t);
    free(t);
    if (n > CK_PROV_SERVICES_MAX)
        return fail(d, "services", "larger than %d bytes", CK_PROV_SERVICES_MAX);
    *out = v;
    return 0;
}

static int
set_str(json_t *req, const char *m, const char *v)
{
    return v == NULL ? 0 : json_object_set_new(req, m, json_string(v));
}

static int
set_int(json_t *req, const char *m, int64_t v)
{
    return v == 0 ? 0 : json_object_set_new(req, m, json_integer(v));
}

/* The body of a device action -> the validated request for the back. */
static int
decode_action(struct dec *d, const char *action, const json_t *b, json_t *req)
{
    const char *s1 = NULL, *s2 = NULL;
    int64_t n1 = 0;
    json_t *sv = NULL;
    int st;

    if (strcmp(action, "provision") == 0) {
        static const char *const m[] = {"customer", "number", "segment", NULL};
        if ((st = only(d, b, m)) != 0 || (st = id(d, b, "customer", true, &n1)) != 0 ||
            (st = number(d, b, "number", &s1)) != 0 ||
            (st = segment(d, b, "segment", false, &s2)) != 0)
            return st;
        return set_int(req, "customer", n1) | set_str(req, "number", s1) |
               set_str(req, "segment", s2);
    }
    if (strcmp(action, "change-service") == 0) {
        static const char *const m[] = {"services", "reissue", NULL};
        const json_t *r = json_object_get(b, "reissue");
        if ((st = only(d, b, m)) != 0 || (st = services(d, b, true, &sv)) != 0)
            return st;
        if (r != NULL && !json_is_boolean(r))
            return fail(d, "reissue", "expected true or false");
        return json_object_set(req, "services", sv) |
               json_object_set_new(req, "reissue", json_boolean(json_is_true(r)));
    }
    if (strcmp(action, "deprovision") == 0 || strcmp(action, "revoke") == 0 ||
        strcmp(action, "reinstate") == 0) {
        static const char *const m[] = {"reason", NULL};
        if ((st = only(d, b, m)) != 0 || (st = text(d, b, "reason", REASON_MAX, false, &s1)) != 0)
            return st;
        return set_str(req, "reason", s1);
    }
    if (strcmp(action, "move") == 0) {
        static const char *const m[] = {"segment", "number", NULL};
        if ((st = only(d, b, m)) != 0 || (st = segment(d, b, "segment", true, &s1)) != 0 ||
            (st = number(d, b, "number", &s2)) != 0)
            return st;
        return set_str(req, "segment", s1) | set_str(req, "number", s2);
    }
    if (strcmp(action, "repair") == 0) {
        static const char *const m[] = {"facility", NULL};
        if ((st = only(d, b, m)) != 0 || (st = id(d, b, "facility", true, &n1)) != 0)
            return st;
        return set_int(req, "customer", n1);
    }
    if (strcmp(action, "return") == 0) {
        static const char *const m[] = {NULL};
        return only(d, b, m);
    }
    if (strcmp(action, "loaner") == 0) {
        static const char *const m[] = {"customer", "for", NULL};
        char mac[CK_MAC_TEXT];
        if ((st = only(d, b, m)) != 0 || (st = id(d, b, "customer", true, &n1)) != 0 ||
            (st = text(d, b, "for", 64, true, &s1)) != 0)
            return st;
        if (ck_mac_canonical(s1, mac) != 0)
            return fail(d, "for", "not a MAC address");
        return set_int(req, "customer", n1) | set_str(req, "for", mac);
    }
    return fail(d, "action", "unknown action");
}

static bool
email_ok(const char *s)
{
    const char *at = strchr(s, '@');

    return at != NULL && at != s && at[1] != '\0' && strchr(at + 1, '@') == NULL &&
           strchr(s, ' ') == NULL;
}

static int
decode_customer(struct dec *d, bool modify, const json_t *b, json_t *req)
{
    static const char *const add_m[] = {"name", "address", "email", "segment", "type",
                                        "services", NULL};
    static const char *const mod_m[] = {"name", "address", "email", "services", NULL};
    const char *name, *address, *email, *seg = NULL, *type = NULL;
    json_t *sv;
    int st;

    if ((st = only(d, b, modify ? mod_m : add_m)) != 0 ||
        (st = text(d, b, "name", CK_PROV_NAME_MAX, !modify, &name)) != 0 ||
        (st = text(d, b, "address", CK_PROV_ADDRESS_MAX, !modify, &address)) != 0 ||
        (st = text(d, b, "email", CK_PROV_EMAIL_MAX, false, &email)) != 0 ||
        (st = services(d, b, false, &sv)) != 0)
        return st;
    if (email != NULL && !email_ok(email))
        return fail(d, "email", "not an e-mail address");
    if (!modify) {
        if ((st = segment(d, b, "segment", true, &seg)) != 0 ||
            (st = text(d, b, "type", 16, false, &type)) != 0)
            return st;
        if (type != NULL && strcmp(type, "customer") != 0 && strcmp(type, "repair") != 0)
            return fail(d, "type", "expected \"customer\" or \"repair\"");
    } else if (name == NULL && address == NULL && email == NULL && sv == NULL) {
        return fail(d, "name", "give at least one of name, address, email, services");
    }
    if (set_str(req, "name", name) != 0 || set_str(req, "address", address) != 0 ||
        set_str(req, "email", email) != 0 || set_str(req, "segment", seg) != 0 ||
        set_str(req, "type", type != NULL ? type : modify ? NULL : "customer") != 0 ||
        (sv != NULL && json_object_set(req, "services", sv) != 0))
        return fail(d, "body", "out of memory");
    return 0;
}

/* 0 when s is an IPv4 or IPv6 address in text form. */
static int
inet_pton_any(const char *s, unsigned char buf[16])
{
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1 ? 0 : -1;
}

static bool
hex64_ok(const char *s)
{
    if (strlen(s) != 64)
        return false;
    for (; *s != '\0'; s++)
        if (ck_hex_digit((unsigned char)*s) < 0)
            return false;
    return true;
}

static int
decode_report(struct dec *d, const json_t *b, json_t *req)
{
    static const char *const m[] = {"mac", "key_sha256", "ip", "controller", NULL};
    const char *mac_in, *key, *ip, *ctl;
    char mac[CK_MAC_TEXT];
    int st;

    if ((st = only(d, b, m)) != 0 || (st = text(d, b, "mac", 64, true, &mac_in)) != 0 ||
        (st = text(d, b, "key_sha256", 64, false, &key)) != 0 ||
        (st = text(d, b, "ip", 63, true, &ip)) != 0 ||
        (st = text(d, b, "controller", CK_PROV_ACTOR_MAX, false, &ctl)) != 0)
        return st;
    if (ck_mac_canonical(mac_in, mac) != 0)
        return fail(d, "mac", "not a MAC address");
    if (key != NULL && !hex64_ok(key))
        return fail(d, "key_sha256", "expected 64 hex digits");
    {
        /* An address in text form (IPv4 or IPv6), as the controller saw it. */
        unsigned char buf[16];
        if (inet_pton_any(ip, buf) != 0)
            return fail(d, "ip", "not an IP address");
    }
    return set_str(req, "mac", mac) | set_str(req, "key_sha256", key) | set_str(req, "ip", ip) |
           set_str(req, "controller", ctl);
}

/* ----------------------------------------------------------------- query parameters */

/* A query value: NULL if absent; a value with control characters or empty is refused. */
static int
qval(struct dec *d, prov_query_fn q, void *qarg, const char *key, char *buf, size_t size,
     const char **out)
{
    const char *v = q(qarg, key);

    *out = NULL;
    if (v == NULL)
        return 0;
    if (ck_strlcpy(buf, v, size) >= size || ck_admin_pct_decode(buf) != 0 || buf[0] == '\0' ||
        !printable(buf))
        return fail(d, key, "bad value");
    *out = buf;
    return 0;
}

static int
qint(struct dec *d, prov_query_fn q, void *qarg, const char *key, int64_t min, int64_t max,
     int64_t *out)
{
    char buf[32];
    const char *v;
    int st;

    if ((st = qval(d, q, qarg, key, buf, sizeof(buf), &v)) != 0)
        return st;
    if (v != NULL && ck_parse_int64(v, min, max, out) != 0)
        return fail(d, key, "expected an integer %lld..%lld", (long long)min, (long long)max);
    return 0;
}

static int
decode_query(struct dec *d, const struct prov_route *rt, prov_query_fn q, void *qarg,
             json_t *req)
{
    char b1[128], b2[128];
    const char *v;
    int64_t limit = 100, n = 0;
    int st, given = 0;

    if (strcmp(rt->op, "device.list") == 0) {
        if ((st = qval(d, q, qarg, "mac", b1, sizeof(b1), &v)) != 0)
            return st;
        if (v != NULL) {
            char mac[CK_MAC_TEXT];
            if (ck_mac_canonical(v, mac) != 0)
                return fail(d, "mac", "not a MAC address");
            json_object_set_new(req, "mac", json_string(mac));
            given++;
        }
        if ((st = qval(d, q, qarg, "ip", b1, sizeof(b1), &v)) != 0)
            return st;
        if (v != NULL) {
            unsigned char buf[16];
            if (inet_pton_any(v, buf) != 0)
                return fail(d, "ip", "not an IP address");
            json_object_set_new(req, "ip", json_string(v));
            given++;
        }
        if ((st = qval(d, q, qarg, "number", b1, sizeof(b1), &v)) != 0)
            return st;
        if (v != NULL) {
            if (!prov_digits_ok(v, CK_PROV_NUMBER_MAX))
                return fail(d, "number", "expected digits");
            json_object_set_new(req, "number", json_string(v));
            given++;
        }
        if ((st = qint(d, q, qarg, "customer", 1, INT64_MAX, &n)) != 0)
            return st;
        if (n > 0) {
            json_object_set_new(req, "customer", json_integer(n));
            given++;
        }
        if ((st = qval(d, q, qarg, "state", b1, sizeof(b1), &v)) != 0)
            return st;
        if (v != NULL) {
            /* The names of enum ck_prov_state (parsed here: the front never links the store). */
            static const char *const names[] = {"unprovisioned", "provisioned", "repair",
                                                "revoked"};
            int s = 0;
            for (int k = 0; k < 4 && s == 0; k++)
                if (strcmp(v, names[k]) == 0)
                    s = k + 1;
            if (s == 0)
                return fail(d, "state", "expected unprovisioned, provisioned, repair or revoked");
            json_object_set_new(req, "state", json_integer(s));
            given++;
        }
        if (given > 1)
            return fail(d, "mac", "give at most one of mac, ip, number, customer, state");
        if ((st = qval(d, q, qarg, "after", b2, sizeof(b2), &v)) != 0)
            return st;
        if (v != NULL) {
            char mac[CK_MAC_TEXT];
            if (ck_mac_canonical(v, mac) != 0)
                return fail(d, "after", "not a MAC address");
            json_object_set_new(req, "after", json_string(mac));
        }
    } else if (strcmp(rt->op, "customer.list") == 0) {
        if ((st = qval(d, q, qarg, "q", b1, sizeof(b1), &v)) != 0)
            return st;
        if (v != NULL)
            json_object_set_new(req, "q", json_string(v));
        if ((st = qint(d, q, qarg, "after", 0, INT64_MAX, &n)) != 0)
            return st;
        json_object_set_new(req, "after", json_integer(n));
    } else if (strcmp(rt->op, "lines") == 0) {
        int64_t wait = 0;
        if ((st = qint(d, q, qarg, "after", 0, INT64_MAX, &n)) != 0 ||
            (st = qint(d, q, qarg, "wait", 0, 30, &wait)) != 0)
            return st;
        json_object_set_new(req, "after", json_integer(n));
        json_object_set_new(req, "wait", json_integer(wait));
        return 0;
    } else if (strcmp(rt->op, "deliveries") == 0) {
        if ((st = qint(d, q, qarg, "before", 0, INT64_MAX, &n)) != 0)
            return st;
        json_object_set_new(req, "before", json_integer(n));
    } else {
        return 0;
    }
    if ((st = qint(d, q, qarg, "limit", 1, CK_PROV_LIST_MAX, &limit)) != 0)
        return st;
    json_object_set_new(req, "limit", json_integer(limit));
    return 0;
}

static bool
idem_key_ok(const char *k)
{
    size_t n = strlen(k);

    if (n == 0 || n > CK_PROV_IDEM_KEY_MAX)
        return false;
    for (; *k != '\0'; k++)
        if (!((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') || (*k >= '0' && *k <= '9') ||
              *k == '.' || *k == '_' || *k == ':' || *k == '-'))
            return false;
    return true;
}

int
prov_api_build(const struct prov_route *rt, const char *actor, prov_query_fn q, void *qarg,
               const char *body, size_t body_len, const char *idem_key, json_t **msg,
               json_t **err)
{
    struct dec d = {NULL};
    json_t *m = NULL, *req = NULL, *b = NULL;
    char why[256];
    int st = 0, rc;

    *msg = *err = NULL;
    if ((m = json_pack("{s:s,s:s}", "op", rt->op, "actor", actor)) == NULL ||
        (req = json_object()) == NULL) {
        st = 500;
        d.err = prov_error(500, "internal", NULL, "out of memory");
        goto out;
    }
    if (rt->mac[0] != '\0')
        json_object_set_new(m, "mac", json_string(rt->mac));
    if (rt->customer > 0)
        json_object_set_new(m, "customer", json_integer(rt->customer));
    if (rt->action != NULL)
        json_object_set_new(m, "action", json_string(rt->action));
    if ((st = decode_query(&d, rt, q, qarg, req)) != 0)
        goto out;
    if (!rt->body) {
        if (body_len > 0) {
            st = fail(&d, "body", "this request takes no body");
            goto out;
        }
    } else {
        if ((rc = prov_json_parse(body, body_len, &b, why, sizeof(why))) != 0) {
            st = rc == CK_ERR_LIMIT ? 413 : 400;
            d.err = prov_error(st, rc == CK_ERR_LIMIT ? "too_large" : "invalid_json", NULL,
                               "%s", why);
            goto out;
        }
        if (strcmp(rt->op, "device.act") == 0)
            st = decode_action(&d, rt->action, b, req);
        else if (strcmp(rt->op, "device.report") == 0)
            st = decode_report(&d, b, req);
        else if (strcmp(rt->op, "customer.add") == 0 || strcmp(rt->op, "customer.modify") == 0)
            st = decode_customer(&d, strcmp(rt->op, "customer.modify") == 0, b, req);
        if (st < 0) { /* a jansson allocation */
            st = 500;
            d.err = prov_error(500, "internal", NULL, "out of memory");
        }
        if (st != 0)
            goto out;
    }
    if (idem_key != NULL) {
        uint8_t h[32];
        char hex[65];
        if (!rt->idempotent) {
            st = fail(&d, "Idempotency-Key", "not accepted on this request");
            goto out;
        }
        if (!idem_key_ok(idem_key)) {
            st = fail(&d, "Idempotency-Key", "expected 1..%d of A-Z a-z 0-9 . _ : -",
                      CK_PROV_IDEM_KEY_MAX);
            goto out;
        }
        /* The hash covers what the request means: the action, the target and the body. */
        json_object_set(req, "_target", json_object_get(m, rt->mac[0] != '\0' ? "mac"
                                                                               : "customer"));
        rc = prov_request_hash(rt->action != NULL ? rt->action : rt->op, req, h);
        json_object_del(req, "_target");
        if (rc != 0) {
            st = 500;
            d.err = prov_error(500, "internal", NULL, "request hash");
            goto out;
        }
        for (size_t i = 0; i < 32; i++)
            snprintf(hex + 2 * i, 3, "%02x", h[i]);
        json_object_set_new(m, "idem", json_string(idem_key));
        json_object_set_new(m, "hash", json_string(hex));
    }
    json_object_set(m, "req", req);
    *msg = m;
    m = NULL;
out:
    json_decref(m);
    json_decref(req);
    json_decref(b);
    if (st != 0) {
        *err = d.err != NULL ? d.err : prov_error(st, "internal", NULL, "out of memory");
        return st;
    }
    return 0;
}

int
prov_api_login_body(const char *t, size_t len, char **principal, char **password, char *field,
                    size_t field_size, char *why, size_t why_size)
{
    static const char *const m[] = {"principal", "password", NULL};
    struct dec d = {NULL};
    const char *p = NULL, *pw = NULL;
    json_t *b = NULL;
    int rc, st;

    *principal = *password = NULL;
    field[0] = '\0';
    if ((rc = prov_json_parse(t, len, &b, why, why_size)) != 0)
        return rc == CK_ERR_LIMIT ? 413 : 400;
    if ((st = only(&d, b, m)) != 0 || (st = text(&d, b, "principal", 256, true, &p)) != 0 ||
        (st = text(&d, b, "password", 1024, true, &pw)) != 0) {
        const json_t *e = json_object_get(d.err, "error");
        ck_strlcpy(field, json_string_value(json_object_get(e, "field")) != NULL
                              ? json_string_value(json_object_get(e, "field")) : "body",
                   field_size);
        snprintf(why, why_size, "%s", json_string_value(json_object_get(e, "message")) != NULL
                                          ? json_string_value(json_object_get(e, "message"))
                                          : "invalid");
        json_decref(d.err);
        json_decref(b);
        return st;
    }
    *principal = strdup(p);
    *password = strdup(pw);
    json_decref(b); /* the secure allocator wipes the password copy */
    if (*principal == NULL || *password == NULL) {
        free(*principal);
        if (*password != NULL)
            ck_free_secret(*password, strlen(*password));
        *principal = *password = NULL;
        snprintf(why, why_size, "out of memory");
        return 500;
    }
    return 0;
}
