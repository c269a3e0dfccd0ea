/* The client of cablekey-prov's API (prov_remote.h). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/rand.h>

#include "cablekey/error.h"
#include "cablekey/net.h"
#include "cablekey/prov.h"
#include "cablekey/util.h"
#include "cli.h"
#include "http_remote.h"
#include "prov_remote.h"

#define PROV_MAX_ANSWER (4 << 20)  /* a page of 1000 devices with their fields */

struct prov_client {
    struct http_remote *h;
    const char *base;  /* h->base: "scheme://host:port" */
};

static const struct http_remote_def prov_def = {
    .service = "cablekey-prov", .default_port = PROV_REMOTE_DEFAULT_PORT,
    .carries = "Kerberos authenticators and customer data", .max_answer = PROV_MAX_ANSWER};

int
prov_client_open(const char *what, const char *url, const char *ca, struct prov_client **out)
{
    struct prov_client *c;
    int rc;

    *out = NULL;
    if ((c = calloc(1, sizeof(*c))) == NULL)
        return cli_fail(what, ck_error_set(CK_ERR_NOMEM, "client"));
    if ((rc = http_remote_open(&prov_def, url, ca, &c->h)) != 0) {
        free(c);
        /* A --server or --ca the user got wrong is a usage error (exit 2). */
        return rc == CK_ERR_INVAL ? cli_usage_error(what, "%s", ck_error_context())
                                  : cli_fail(what, rc);
    }
    c->base = c->h->base;
    *out = c;
    return CLI_OK;
}

void
prov_client_close(struct prov_client *c)
{
    if (c == NULL)
        return;
    http_remote_close(c->h);
    free(c);
}

bool
prov_idem_key_valid(const char *k)
{
    size_t n = strlen(k);

    if (n == 0 || n > CK_PROV_IDEM_KEY_MAX)
        return false;
    return strspn(k, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-") == n;
}

int
prov_opt_limit(const char *what, const char *arg, int64_t *out)
{
    if (ck_parse_int64(arg, 1, CK_PROV_LIST_MAX, out) != 0)
        return cli_usage_error(what, "--limit: a number from 1 to %d", CK_PROV_LIST_MAX);
    return CLI_OK;
}

int
prov_opt_idem(const char *what, const char *arg, const char **out)
{
    if (!prov_idem_key_valid(arg))
        return cli_usage_error(what, "--idempotency-key: 1 to %d characters of "
                               "[A-Za-z0-9._:-]", CK_PROV_IDEM_KEY_MAX);
    *out = arg;
    return CLI_OK;
}

int
prov_opt_services(const char *what, const char *arg, json_t **out)
{
    json_error_t jerr;
    json_t *svc = json_loads(arg, JSON_REJECT_DUPLICATES, &jerr);

    *out = NULL;
    if (!json_is_object(svc)) {
        json_decref(svc);
        return cli_usage_error(what, "--services: a JSON object, e.g. '{\"voicemail\":true}'"
                               "%s%s", svc == NULL ? ": " : "", svc == NULL ? jerr.text : "");
    }
    *out = svc;
    return CLI_OK;
}

int
prov_opt_check(const char *what, const struct prov_opt_use *used, size_t n,
               const char *allowed, const char *required)
{
    char key[40];

    for (size_t i = 0; i < n; i++) {
        snprintf(key, sizeof(key), " %s ", used[i].name);
        if (used[i].set && strstr(allowed, key) == NULL)
            return cli_usage_error(what, "option --%s does not apply here", used[i].name);
        if (!used[i].set && strstr(required, key) != NULL)
            return cli_usage_error(what, "--%s is required", used[i].name);
    }
    return CLI_OK;
}

char *
prov_escape(const char *s)
{
    char *esc = curl_easy_escape(NULL, s, 0), *p;

    if (esc == NULL)
        return NULL;
    p = strdup(esc);
    curl_free(esc);
    return p;
}

/* A path segment: the unreserved characters and ':' as they are (a canonical MAC stays
 * readable in the server's logs), everything else %-escaped. */
char *
prov_path(const char *prefix, const char *item, const char *suffix)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen("/api/v1/") + strlen(prefix) + 1 + 3 * strlen(item) + strlen(suffix) + 1;
    char *p = malloc(n), *w;

    if (p == NULL)
        return NULL;
    w = p + snprintf(p, n, "/api/v1/%s/", prefix);
    for (const unsigned char *c = (const unsigned char *)item; *c != '\0'; c++) {
        if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
            strchr("-._~:", *c) != NULL) {
            *w++ = (char)*c;
        } else {
            *w++ = '%';
            *w++ = hex[*c >> 4];
            *w++ = hex[*c & 15];
        }
    }
    snprintf(w, n - (size_t)(w - p), "%s", suffix);
    return p;
}

/* The API's error answer on stderr. */
static void
print_api_error(const struct prov_client *c, const char *what, long status,
                const struct http_answer *b)
{
    json_t *j = b->body != NULL ? json_loadb(b->body, b->len, 0, NULL) : NULL;
    json_t *e = json_object_get(j, "error");
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    const char *field = json_string_value(json_object_get(e, "field"));

    if (msg == NULL) {
        fprintf(stderr, "cablekey: %s: %s: HTTP %ld, not an answer of cablekey-prov's API\n",
                what, c->base, status);
    } else {
        fprintf(stderr, "cablekey: %s: %s%s%s%s%s\n", what, msg, field != NULL ? " (field " : "",
                field != NULL ? field : "", field != NULL ? ")" : "",
                status == 401 ? " (no valid Kerberos ticket? run kinit)" : "");
        (void)code;
    }
    json_decref(j);
}

int
prov_client_call(struct prov_client *c, const char *what, const char *method,
                 const char *path, json_t *body, const char *idem, json_t **out)
{
    char *text = NULL, hdr[64 + CK_PROV_IDEM_KEY_MAX];
    const char *headers[2] = {NULL, NULL};
    struct http_answer b = {0};
    int rc = CLI_FAIL;

    *out = NULL;
    if (body != NULL && (text = json_dumps(body, JSON_COMPACT)) == NULL) {
        rc = cli_fail(what, ck_error_set(CK_ERR_NOMEM, "request"));
        goto out;
    }
    if (strcmp(method, "POST") == 0 || strcmp(method, "PATCH") == 0) {
        char key[40] = "cli-";
        uint8_t rnd[16];

        if (idem == NULL) {
            if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
                rc = cli_fail(what, ck_error_set(CK_ERR_CRYPTO, "random idempotency key"));
                goto out;
            }
            for (size_t i = 0; i < sizeof(rnd); i++)
                snprintf(key + 4 + 2 * i, 3, "%02x", rnd[i]);
            idem = key;
        }
        snprintf(hdr, sizeof(hdr), "Idempotency-Key: %s", idem);
        headers[0] = hdr;
    }
    if ((rc = http_remote_perform(c->h, method, path, headers, text,
                                  text != NULL ? strlen(text) : 0, &b)) != 0) {
        rc = cli_fail(what, rc);
        goto out;
    }
    if (b.status < 200 || b.status > 299) {
        print_api_error(c, what, b.status, &b);
        rc = CLI_FAIL;
        goto out;
    }
    if (b.len > 0 && (*out = json_loadb(b.body, b.len, 0, NULL)) == NULL) {
        rc = cli_fail(what, ck_error_set(CK_ERR_PROTO, "%s: the answer is not JSON", c->base));
        goto out;
    }
    rc = CLI_OK;
out:
    free(text);
    http_answer_clear(&b);
    return rc;
}

/* ===================================================================== printers */

static const char *
str_or(const json_t *o, const char *key, const char *dflt)
{
    const json_t *v = json_object_get(o, key);

    return json_is_string(v) && json_string_length(v) > 0 ? json_string_value(v) : dflt;
}

/* An id (integer) or "-". */
static void
print_id(const char *label, const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);

    if (json_is_integer(v))
        printf("%s: %lld\n", label, (long long)json_integer_value(v));
    else
        printf("%s: -\n", label);
}

static void
print_time(const char *label, const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    char buf[64];

    if (!json_is_integer(v) || json_integer_value(v) == 0) {
        printf("%s: -\n", label);
        return;
    }
    cli_format_time((int64_t)json_integer_value(v), buf, sizeof(buf));
    printf("%s: %s\n", label, buf);
}

static void
time_str(const json_t *o, const char *key, char *buf, size_t size)
{
    const json_t *v = json_object_get(o, key);

    if (!json_is_integer(v) || json_integer_value(v) == 0)
        snprintf(buf, size, "-");
    else
        cli_format_time((int64_t)json_integer_value(v), buf, size);
}

/* A flag the API gives as a boolean (or as the time it happened): "yes"/"no" or the time. */
static void
flag_str(const json_t *o, const char *key, char *buf, size_t size)
{
    const json_t *v = json_object_get(o, key);

    if (json_is_integer(v) && json_integer_value(v) > 0)
        cli_format_time((int64_t)json_integer_value(v), buf, size);
    else
        snprintf(buf, size, "%s", json_is_true(v) ? "yes" : "no");
}

/* The numbers as "a,b" or "-". */
static void
numbers_str(const json_t *d, char *buf, size_t size)
{
    const json_t *a = json_object_get(d, "numbers"), *v;
    size_t i, off = 0;

    buf[0] = '\0';
    json_array_foreach(a, i, v) {
        if (!json_is_string(v))
            continue;
        int w = snprintf(buf + off, size - off, "%s%s", off > 0 ? "," : "",
                         json_string_value(v));
        if (w < 0 || (size_t)w >= size - off)
            break;
        off += (size_t)w;
    }
    if (off == 0)
        snprintf(buf, size, "-");
}

static void
id_str(const json_t *o, const char *key, char *buf, size_t size)
{
    const json_t *v = json_object_get(o, key);

    if (json_is_integer(v))
        snprintf(buf, size, "%lld", (long long)json_integer_value(v));
    else
        snprintf(buf, size, "-");
}

void
prov_print_device_line(const json_t *d)
{
    char nums[512], cust[32];

    numbers_str(d, nums, sizeof(nums));
    id_str(d, "customer", cust, sizeof(cust));
    printf("%s\t%s\t%s\t%s\t%s\t%s\n", str_or(d, "mac", "-"), str_or(d, "state", "-"), nums,
           cust, str_or(d, "unprov_ip", "-"), str_or(d, "principal", "-"));
}

void
prov_print_device(const json_t *d)
{
    const json_t *cert = json_object_get(d, "cert");
    char nums[512];

    numbers_str(d, nums, sizeof(nums));
    printf("Device: %s\n", str_or(d, "mac", "-"));
    printf("State: %s\n", str_or(d, "state", "-"));
    printf("KDC state: %s\n", str_or(d, "kdc_state", "-"));
    printf("Principal: %s\n", str_or(d, "principal", "-"));
    print_id("Customer", d, "customer");
    print_id("Owner", d, "owner");
    printf("Loaner for: %s\n", str_or(d, "loaner_for", "-"));
    printf("Numbers: %s\n", nums);
    printf("Segment: %s\n", str_or(d, "segment", "-"));
    printf("FQDN: %s\n", str_or(d, "fqdn", "-"));
    printf("IPv4: %s\n", str_or(d, "ipv4", "-"));
    printf("Unprovisioned IP: %s\n", str_or(d, "unprov_ip", "-"));
    printf("Reported by: %s\n", str_or(d, "reported_by", "-"));
    print_time("First seen", d, "first_seen");
    print_time("Last seen", d, "last_seen");
    if (json_is_object(cert)) {
        char nb[64], na[64];

        time_str(cert, "not_before", nb, sizeof(nb));
        time_str(cert, "not_after", na, sizeof(na));
        printf("Certificate: #%lld SHA-256 %s, %s to %s, %s\n",
               (long long)json_integer_value(json_object_get(cert, "id")),
               str_or(cert, "sha256", "-"), nb, na,
               json_is_true(json_object_get(cert, "acked")) ||
                       (json_is_integer(json_object_get(cert, "acked")) &&
                        json_integer_value(json_object_get(cert, "acked")) != 0)
                   ? "fetched by the device" : "not yet fetched");
    } else {
        printf("Certificate: [none: manufacturer certificate only]\n");
    }
    if (json_is_true(json_object_get(d, "replayed")))
        printf("Replayed: yes (the same request was already done; nothing changed)\n");
}

void
prov_print_customer_line(const json_t *u)
{
    char id[32];

    id_str(u, "id", id, sizeof(id));
    printf("%s\t%s\t%s\t%s\t%s\n", id, str_or(u, "type", "-"), str_or(u, "segment", "-"),
           str_or(u, "name", "-"), str_or(u, "address", "-"));
}

void
prov_print_customer(const json_t *u)
{
    const json_t *devs = json_object_get(u, "devices"), *v;
    char *svc = json_dumps(json_object_get(u, "services"), JSON_COMPACT | JSON_SORT_KEYS);
    size_t i;

    print_id("Customer", u, "id");
    printf("Type: %s\n", str_or(u, "type", "-"));
    printf("Name: %s\n", str_or(u, "name", "-"));
    printf("Address: %s\n", str_or(u, "address", "-"));
    printf("E-mail: %s\n", str_or(u, "email", "-"));
    printf("Segment: %s\n", str_or(u, "segment", "-"));
    printf("Services: %s\n", svc != NULL ? svc : "{}");
    print_time("Created", u, "created");
    print_time("Last modified", u, "modified");
    if (json_is_array(devs)) {
        printf("Devices:");
        if (json_array_size(devs) == 0)
            printf(" -");
        json_array_foreach(devs, i, v)
            if (json_is_string(v))
                printf(" %s", json_string_value(v));
        printf("\n");
    }
    if (json_is_true(json_object_get(u, "replayed")))
        printf("Replayed: yes (the same request was already done; nothing changed)\n");
    free(svc);
}

/* TIME ACTION ACTOR MAC CUSTOMER DETAIL, tab separated, newest first. */
void
prov_print_history(const json_t *events)
{
    const json_t *e;
    size_t i;

    json_array_foreach(events, i, e) {
        char t[64], cust[32], *detail = json_dumps(json_object_get(e, "detail"),
                                                   JSON_COMPACT | JSON_SORT_KEYS);

        time_str(e, "time", t, sizeof(t));
        id_str(e, "customer", cust, sizeof(cust));
        printf("%s\t%s\t%s\t%s\t%s\t%s\n", t, str_or(e, "action", "-"), str_or(e, "actor", "-"),
               str_or(e, "mac", "-"), cust, detail != NULL ? detail : "{}");
        free(detail);
    }
}

/* ID SHA256 NOT_BEFORE NOT_AFTER ACKED SUPERSEDED. */
void
prov_print_certs(const json_t *certs)
{
    const json_t *c;
    size_t i;

    json_array_foreach(certs, i, c) {
        char id[32], nb[64], na[64], ack[64], sup[64];

        id_str(c, "id", id, sizeof(id));
        time_str(c, "not_before", nb, sizeof(nb));
        time_str(c, "not_after", na, sizeof(na));
        flag_str(c, "acked", ack, sizeof(ack));
        flag_str(c, "superseded", sup, sizeof(sup));
        printf("cert\t%s\t%s\t%s\t%s\t%s\t%s\n", id, str_or(c, "sha256", "-"), nb, na, ack, sup);
    }
}
