/* The remote executor of the admin verbs (admin_ops.h): the same table as cli_admin_local,
 * carried out by cablekey-admind over its JSON API (docs/cablekey-admind.md) with libcurl.
 *
 * Authentication is the user's Kerberos ticket through HTTP Negotiate, as `curl --negotiate -u :`
 * does; the records come back through the same codec the daemon encodes with
 * (lib/admin/json.c) into ck_db_principal / ck_realm_info, so the CLI's printers show a remote
 * principal exactly as a local one.
 *
 * Transport rules, which mirror the daemon's: https with the server certificate verified (the
 * system store or --ca FILE, e.g. the operator PKI's CA), or plain http to a loopback address
 * only — requests carry passwords and Kerberos authenticators. The loopback rule is checked on
 * the URL and again on every address libcurl is about to connect to (a name such as
 * "localhost" must not resolve elsewhere), and no proxy is ever used. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cablekey/admin.h"
#include "cablekey/error.h"
#include "cablekey/net.h"
#include "cablekey/store.h"
#include "cablekey/util.h"
#include "admin_ops.h"
#include "cli.h"
#include "http_remote.h"

#define REMOTE_DEFAULT_PORT "8749"   /* cablekey-admind's default */
#define REMOTE_MAX_ANSWER CK_ADMIN_JSON_PAGE_MAX /* the largest answer: a page of names */
#define REMOTE_PAGE_LIMIT 1000       /* names asked per list page */
#define REMOTE_MAX_PAGES 100000      /* a listing that never ends is the server's fault */

struct cli_remote {
    struct http_remote *h;
    const char *base;    /* h->base: "https://host:port", no trailing slash */
};

#define answer http_answer
#define answer_clear http_answer_clear

static const struct http_remote_def admind_def = {
    .service = "cablekey-admind", .default_port = REMOTE_DEFAULT_PORT,
    .carries = "passwords and Kerberos authenticators", .max_answer = REMOTE_MAX_ANSWER};

int
cli_remote_open(const char *url, const char *ca_file, struct cli_remote **out)
{
    struct cli_remote *r;
    int rc;

    *out = NULL;
    if ((r = calloc(1, sizeof(*r))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "remote");
    /* Request bodies hold passwords: every buffer jansson frees is wiped. Nothing in a remote
     * run has used JSON before this point. */
    ck_admin_json_secure_alloc();
    if ((rc = http_remote_open(&admind_def, url, ca_file, &r->h)) != 0) {
        free(r);
        return rc;
    }
    r->base = r->h->base;
    *out = r;
    return 0;
}

void
cli_remote_close(struct cli_remote *r)
{
    if (r == NULL)
        return;
    http_remote_close(r->h);
    free(r);
}

/* One request (http_remote.c): 0 with the answer (any HTTP status), or an error for a transfer
 * that did not complete. */
static int
perform(struct cli_remote *r, const char *method, const char *path, const char *body,
        size_t body_len, struct answer *a)
{
    return http_remote_perform(r->h, method, path, NULL, body, body_len, a);
}

/* An answer that is not 2xx, as an error: the daemon's {"error": {code, message}} mapped to the
 * CK_ERR_* a local store would have returned, with what the operator can do about it. */
static int
status_error(const struct cli_remote *r, const struct answer *a)
{
    char code[64], msg[512];
    bool decoded = a->body != NULL &&
                   ck_admin_json_decode_error(a->body, a->len, code, sizeof(code), msg,
                                              sizeof(msg)) == 0;

    if (!decoded) {
        code[0] = '\0';
        snprintf(msg, sizeof(msg), "not an answer of the admin API (a proxy, or another server?)");
    }
    switch (a->status) {
    case 401:
        /* The daemon's hint for a request without a token is meant for curl users. */
        if (strstr(msg, "curl --negotiate") != NULL)
            return ck_error_set(CK_ERR_PERM, "no valid Kerberos ticket: run kinit (%s asks for "
                                "Kerberos authentication)", r->base);
        return ck_error_set(CK_ERR_PERM, "no valid Kerberos ticket: run kinit (%s: %s)",
                            r->base, msg);
    case 403: {
        static const char prefix[] = "not permitted by the ACL ";
        const char *why = strncmp(msg, prefix, sizeof(prefix) - 1) == 0
                              ? msg + sizeof(prefix) - 1 : msg;
        return ck_error_set(CK_ERR_PERM, "not allowed by the ACL of %s %s%s%s", r->base,
                            why == msg ? "(" : "", why, why == msg ? ")" : "");
    }
    case 404:
        if (strcmp(code, "not_found") == 0 && strcmp(msg, "no such resource") != 0)
            return ck_error_set(CK_ERR_NOTFOUND, "%s", msg);
        return ck_error_set(CK_ERR_UNSUPPORTED, "%s does not offer this operation (%s): is it "
                            "a cablekey-admind of this version?", r->base, msg);
    case 405:
        return ck_error_set(CK_ERR_UNSUPPORTED, "%s does not offer this operation (%s): is it "
                            "a cablekey-admind of this version?", r->base, msg);
    case 409:
        return ck_error_set(strcmp(code, "exists") == 0 ? CK_ERR_EXISTS : CK_ERR_POLICY, "%s",
                            msg);
    case 400:
        return ck_error_set(CK_ERR_INVAL, "%s", msg);
    case 413:
        return ck_error_set(CK_ERR_LIMIT, "%s", msg);
    default:
        return ck_error_set(CK_ERR_IO, "%s: HTTP %ld: %s", r->base, a->status, msg);
    }
}

/* perform() and, unless the status is want, the error it stands for. */
static int
call(struct cli_remote *r, const char *method, const char *path, const char *body,
     size_t body_len, long want, struct answer *a)
{
    int rc = perform(r, method, path, body, body_len, a);

    if (rc == 0 && a->status != want) {
        rc = status_error(r, a);
        answer_clear(a);
    }
    return rc;
}

/* "/v1/principals/<name escaped>[suffix]"; malloc'd. */
static int
principal_path(const char *name, const char *suffix, char **out)
{
    char *esc = curl_easy_escape(NULL, name, 0);
    size_t n;

    *out = NULL;
    if (esc == NULL)
        return ck_error_set(CK_ERR_NOMEM, "URL");
    n = strlen("/v1/principals/") + strlen(esc) + strlen(suffix) + 1;
    if ((*out = malloc(n)) != NULL)
        snprintf(*out, n, "/v1/principals/%s%s", esc, suffix);
    curl_free(esc);
    return *out != NULL ? 0 : ck_error_set(CK_ERR_NOMEM, "URL");
}

/* A principal record answered with status want; NULL out when not wanted. */
static int
principal_call(struct cli_remote *r, const char *method, const char *name, const char *suffix,
               const char *body, size_t body_len, long want, ck_db_principal **out)
{
    struct answer a;
    char *path = NULL;
    ck_db_principal *p = NULL;
    int rc;

    if (out != NULL)
        *out = NULL;
    if ((rc = principal_path(name, suffix, &path)) != 0)
        return rc;
    if ((rc = call(r, method, path, body, body_len, want, &a)) != 0)
        goto out;
    if ((rc = ck_admin_json_decode_principal(a.body != NULL ? a.body : "", a.len, &p)) != 0) {
        rc = ck_error_set(CK_ERR_PROTO, "%s: unexpected answer: %s", r->base,
                          ck_error_context());
        goto out;
    }
    if (out != NULL) {
        *out = p;
        p = NULL;
    }
out:
    ck_db_principal_free(p);
    answer_clear(&a);
    free(path);
    return rc;
}

/* ===================================================================== the executor */

static int
remote_realm_answer(struct cli_remote *r, const struct answer *a, ck_realm_info *out)
{
    if (ck_admin_json_decode_realm(a->body != NULL ? a->body : "", a->len, out) != 0)
        return ck_error_set(CK_ERR_PROTO, "%s: unexpected answer: %s", r->base,
                            ck_error_context());
    return 0;
}

static int
remote_realm_get(void *ctx, ck_realm_info *out)
{
    struct answer a;
    int rc;

    if ((rc = call(ctx, "GET", "/v1/realm", NULL, 0, 200, &a)) == 0)
        rc = remote_realm_answer(ctx, &a, out);
    answer_clear(&a);
    return rc;
}

static int
remote_realm_modify(void *ctx, const ck_realm_mod *mod, ck_realm_info *out)
{
    struct answer a = {0};
    ck_realm_info ri;
    char *body = NULL;
    int rc;

    if (mod->mask == 0)
        return ck_error_set(CK_ERR_INVAL, "realm modify: nothing to change");
    if ((rc = ck_admin_json_encode_realm_mod(mod, &body)) != 0)
        return ck_error_set(rc, "realm modify: cannot encode the request");
    if ((rc = call(ctx, "PATCH", "/v1/realm", body, strlen(body), 200, &a)) == 0 &&
        (rc = remote_realm_answer(ctx, &a, &ri)) == 0 && out != NULL)
        *out = ri;
    answer_clear(&a);
    free(body);
    return rc;
}

static int
remote_princ_get(void *ctx, const char *name, ck_db_principal **out)
{
    return principal_call(ctx, "GET", name, "", NULL, 0, 200, out);
}

static int
remote_princ_list(void *ctx, const char *pattern, cli_name_cb cb, void *arg)
{
    struct cli_remote *r = ctx;
    struct ck_admin_name_page pg = {0};
    struct answer a = {0};
    char *pat = curl_easy_escape(NULL, pattern != NULL ? pattern : "*", 0);
    char *after = NULL, *path = NULL, *prev = NULL;
    size_t n;
    int rc = 0;

    if (pat == NULL)
        return ck_error_set(CK_ERR_NOMEM, "URL");
    for (unsigned page = 0; rc == 0; page++) {
        if (page == REMOTE_MAX_PAGES) {
            rc = ck_error_set(CK_ERR_LIMIT, "%s: listing longer than %d pages", r->base,
                              REMOTE_MAX_PAGES);
            break;
        }
        n = strlen(pat) + (after != NULL ? strlen(after) : 0) + 64;
        free(path);
        if ((path = malloc(n)) == NULL) {
            rc = ck_error_set(CK_ERR_NOMEM, "URL");
            break;
        }
        snprintf(path, n, "/v1/principals?pattern=%s&limit=%d%s%s", pat, REMOTE_PAGE_LIMIT,
                 after != NULL ? "&after=" : "", after != NULL ? after : "");
        if ((rc = call(r, "GET", path, NULL, 0, 200, &a)) != 0)
            break;
        if ((rc = ck_admin_json_decode_name_page(a.body != NULL ? a.body : "", a.len, &pg)) != 0) {
            rc = ck_error_set(CK_ERR_PROTO, "%s: unexpected answer: %s", r->base,
                              ck_error_context());
            break;
        }
        answer_clear(&a);
        for (size_t i = 0; i < pg.n && rc == 0; i++)
            rc = cb(pg.names[i], arg);
        if (rc != 0 || pg.next == NULL)
            break;
        /* Each page must end past the previous one, or the listing could go round for ever. */
        if (pg.n == 0 || strcmp(pg.next, pg.names[pg.n - 1]) < 0 ||
            (prev != NULL && strcmp(pg.next, prev) <= 0)) {
            rc = ck_error_set(CK_ERR_PROTO, "%s: the listing does not advance", r->base);
            break;
        }
        curl_free(after);
        free(prev);
        prev = pg.next;
        pg.next = NULL;
        if ((after = curl_easy_escape(NULL, prev, 0)) == NULL)
            rc = ck_error_set(CK_ERR_NOMEM, "URL");
        ck_admin_name_page_clear(&pg);
    }
    ck_admin_name_page_clear(&pg);
    answer_clear(&a);
    curl_free(after);
    curl_free(pat);
    free(prev);
    free(path);
    return rc;
}

/* The request body of add/modify/rotate; *body holds the password when the request does:
 * freed by the caller with ck_free_secret(*body, *len + 1). */
static int
encode_req(const struct cli_princ_req *req, enum ck_admin_req_kind kind, char **body,
           size_t *len)
{
    struct ck_admin_principal_req r = {0};
    int rc;

    r.kind = kind;
    if (kind != CK_ADMIN_REQ_KEYS) {
        if (req->mask & CLI_PRINC_MAX_LIFE) {
            r.present |= CK_ADMIN_REQ_MAX_LIFE;
            r.max_life = req->max_life;
        }
        if (req->mask & CLI_PRINC_MAX_RENEW) {
            r.present |= CK_ADMIN_REQ_MAX_RENEW;
            r.max_renew = req->max_renew;
        }
        if (req->mask & CLI_PRINC_EXPIRES) {
            r.present |= CK_ADMIN_REQ_EXPIRES;
            r.expires = req->expires;
        }
        if (req->mask & CLI_PRINC_PW_EXPIRES) {
            r.present |= CK_ADMIN_REQ_PW_EXPIRES;
            r.pw_expires = req->pw_expires;
        }
        if (req->attr_set != 0 || req->attr_clear != 0) {
            r.present |= CK_ADMIN_REQ_FLAGS;
            r.flags_set = req->attr_set;
            r.flags_clear = req->attr_clear;
        }
        if (req->mask & CLI_PRINC_POLICY) {
            if (req->policy != NULL && (rc = ck_policy_name_check(req->policy)) != 0)
                return rc;
            r.present |= CK_ADMIN_REQ_POLICY;
            ck_strlcpy(r.policy, req->policy != NULL ? req->policy : "", sizeof(r.policy));
        }
    }
    if (kind != CK_ADMIN_REQ_MODIFY) {
        if (req->keys == CLI_KEYS_RANDOM) {
            r.random_key = true;
        } else if (req->keys == CLI_KEYS_PASSWORD && req->password != NULL &&
                   req->password_len > 0) {
            /* Only read by the encoder; the caller owns (and wipes) it. */
            r.password = (char *)req->password;
            r.password_len = req->password_len;
        } else {
            return ck_error_set(CK_ERR_INVAL, "principal %s: no key source", req->name);
        }
        if (req->n_enctypes > 0) {
            r.present |= CK_ADMIN_REQ_ENCTYPES;
            r.n_enctypes = req->n_enctypes;
            memcpy(r.enctypes, req->enctypes, req->n_enctypes * sizeof(r.enctypes[0]));
        }
    }
    if (kind == CK_ADMIN_REQ_KEYS && req->keep != 0) {
        r.present |= CK_ADMIN_REQ_KEEP;
        r.keep = req->keep;
    }
    if (kind == CK_ADMIN_REQ_MODIFY && r.present == 0)
        return ck_error_set(CK_ERR_INVAL, "principal %s: nothing to change", req->name);
    rc = ck_admin_json_encode_request(&r, body, len);
    if (rc != 0)
        rc = ck_error_set(rc, "principal %s: cannot encode the request", req->name);
    return rc;
}

static int
req_call(void *ctx, const struct cli_princ_req *req, enum ck_admin_req_kind kind,
         const char *method, const char *suffix, long want, ck_db_principal **out)
{
    char *body = NULL;
    size_t len = 0;
    int rc;

    if ((rc = encode_req(req, kind, &body, &len)) != 0)
        return rc;
    rc = principal_call(ctx, method, req->name, suffix, body, len, want, out);
    ck_free_secret(body, len + 1);
    return rc;
}

static int
remote_princ_add(void *ctx, const struct cli_princ_req *req)
{
    return req_call(ctx, req, CK_ADMIN_REQ_CREATE, "POST", "", 201, NULL);
}

static int
remote_princ_modify(void *ctx, const struct cli_princ_req *req)
{
    return req_call(ctx, req, CK_ADMIN_REQ_MODIFY, "PATCH", "", 200, NULL);
}

static int
remote_princ_rotate(void *ctx, const struct cli_princ_req *req, uint32_t *new_kvno)
{
    ck_db_principal *p = NULL;
    int rc = req_call(ctx, req, CK_ADMIN_REQ_KEYS, "POST", "/keys", 200, &p);

    if (rc == 0 && new_kvno != NULL)
        *new_kvno = p->kvno;
    ck_db_principal_free(p);
    return rc;
}

static int
remote_princ_unlock(void *ctx, const char *name)
{
    return principal_call(ctx, "POST", name, "/unlock", "", 0, 200, NULL);
}

static int
remote_princ_delete(void *ctx, const char *name)
{
    struct answer a;
    char *path = NULL;
    int rc;

    if ((rc = principal_path(name, "", &path)) != 0)
        return rc;
    rc = call(ctx, "DELETE", path, NULL, 0, 204, &a);
    answer_clear(&a);
    free(path);
    return rc;
}

static int
remote_princ_rename(void *ctx, const char *old_name, const char *new_name)
{
    char *body = NULL;
    int rc;

    if ((rc = ck_admin_json_encode_rename(new_name, &body)) != 0)
        return ck_error_set(rc, "principal %s: cannot encode the request", old_name);
    rc = principal_call(ctx, "POST", old_name, "/rename", body, strlen(body), 200, NULL);
    free(body);
    return rc;
}

/* ---- password policies ---- */

_Static_assert(CLI_POL_MIN_LENGTH == CK_ADMIN_POL_MIN_LENGTH &&
               CLI_POL_LOCKOUT_DURATION == CK_ADMIN_POL_LOCKOUT_DURATION,
               "the CLI's policy rule bits are the admin API's");

/* "/v1/policies/<name escaped>"; malloc'd. */
static int
policy_path(const char *name, char **out)
{
    char *esc = curl_easy_escape(NULL, name, 0);
    size_t n;

    *out = NULL;
    if (esc == NULL)
        return ck_error_set(CK_ERR_NOMEM, "URL");
    n = strlen("/v1/policies/") + strlen(esc) + 1;
    if ((*out = malloc(n)) != NULL)
        snprintf(*out, n, "/v1/policies/%s", esc);
    curl_free(esc);
    return *out != NULL ? 0 : ck_error_set(CK_ERR_NOMEM, "URL");
}

/* One policy request answered with status want and, unless want is 204, a policy record (in
 * *out if not NULL). */
static int
policy_call(struct cli_remote *r, const char *method, const char *name, const char *body,
            long want, ck_policy *out)
{
    struct answer a = {0};
    char *path = NULL;
    ck_policy pol;
    int rc;

    if ((rc = policy_path(name, &path)) != 0)
        return rc;
    if ((rc = call(r, method, path, body, body != NULL ? strlen(body) : 0, want, &a)) != 0)
        goto out;
    if (want != 204 &&
        ck_admin_json_decode_policy(a.body != NULL ? a.body : "", a.len, &pol) != 0) {
        rc = ck_error_set(CK_ERR_PROTO, "%s: unexpected answer: %s", r->base,
                          ck_error_context());
        goto out;
    }
    if (want != 204 && out != NULL)
        *out = pol;
out:
    answer_clear(&a);
    free(path);
    return rc;
}

static int
remote_policy_get(void *ctx, const char *name, ck_policy *out)
{
    return policy_call(ctx, "GET", name, NULL, 200, out);
}

static int
remote_policy_list(void *ctx, cli_name_cb cb, void *arg)
{
    struct cli_remote *r = ctx;
    struct ck_admin_name_page pg = {0};
    struct answer a = {0};
    int rc;

    if ((rc = call(r, "GET", "/v1/policies", NULL, 0, 200, &a)) != 0)
        goto out;
    if (ck_admin_json_decode_policy_names(a.body != NULL ? a.body : "", a.len, &pg) != 0) {
        rc = ck_error_set(CK_ERR_PROTO, "%s: unexpected answer: %s", r->base,
                          ck_error_context());
        goto out;
    }
    for (size_t i = 0; i < pg.n && rc == 0; i++)
        rc = cb(pg.names[i], arg);
out:
    ck_admin_name_page_clear(&pg);
    answer_clear(&a);
    return rc;
}

static int
remote_policy_add(void *ctx, const ck_policy *pol)
{
    char *body = NULL;
    int rc;

    if ((rc = ck_admin_json_encode_policy_rules(pol, CLI_POL_ALL, &body)) != 0)
        return ck_error_set(rc, "policy %s: cannot encode the request", pol->name);
    rc = policy_call(ctx, "POST", pol->name, body, 201, NULL);
    free(body);
    return rc;
}

static int
remote_policy_modify(void *ctx, const char *name, const ck_policy *rules, unsigned present)
{
    char *body = NULL;
    int rc;

    if (present == 0)
        return ck_error_set(CK_ERR_INVAL, "policy %s: nothing to change", name);
    if ((rc = ck_admin_json_encode_policy_rules(rules, present, &body)) != 0)
        return ck_error_set(rc, "policy %s: cannot encode the request", name);
    rc = policy_call(ctx, "PATCH", name, body, 200, NULL);
    free(body);
    return rc;
}

static int
remote_policy_delete(void *ctx, const char *name)
{
    return policy_call(ctx, "DELETE", name, NULL, 204, NULL);
}

/* ---- devices (read only) ---- */

static int
remote_device_get(void *ctx, const char *mac, ck_db_device **out)
{
    struct cli_remote *r = ctx;
    struct answer a = {0};
    char path[64];
    int rc;

    *out = NULL;
    /* mac is canonical (aa:bb:...): nothing to escape. */
    snprintf(path, sizeof(path), "/v1/devices/%s", mac);
    if ((rc = call(r, "GET", path, NULL, 0, 200, &a)) == 0 &&
        ck_admin_json_decode_device(a.body != NULL ? a.body : "", a.len, out) != 0)
        rc = ck_error_set(CK_ERR_PROTO, "%s: unexpected answer: %s", r->base,
                          ck_error_context());
    answer_clear(&a);
    return rc;
}

/* The server's pages hold at most CK_ADMIN_DEVICE_PAGE_MAX devices: a larger limit takes
 * several requests, each starting after the last MAC of the one before. */
static int
remote_device_list(void *ctx, const char *principal, const char *after, size_t limit,
                   ck_store_device_cb cb, void *arg, size_t *n)
{
    struct cli_remote *r = ctx;
    struct ck_admin_device_page pg = {0};
    struct answer a = {0};
    char cursor[CK_DEVICE_MAC_LEN + 1] = "", *esc = NULL, path[1200];
    int rc = 0;

    *n = 0;
    if (after != NULL)
        ck_strlcpy(cursor, after, sizeof(cursor));
    if (principal != NULL && (esc = curl_easy_escape(NULL, principal, 0)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "URL");
    while (rc == 0 && *n < limit) {
        size_t want = limit - *n < CK_ADMIN_DEVICE_PAGE_MAX ? limit - *n
                                                             : CK_ADMIN_DEVICE_PAGE_MAX;
        int len = snprintf(path, sizeof(path), "/v1/devices?limit=%zu%s%s%s%s", want,
                           cursor[0] != '\0' ? "&after=" : "", cursor,
                           esc != NULL ? "&principal=" : "", esc != NULL ? esc : "");

        if (len < 0 || (size_t)len >= sizeof(path)) {
            rc = ck_error_set(CK_ERR_LIMIT, "principal name too long");
            break;
        }
        if ((rc = call(r, "GET", path, NULL, 0, 200, &a)) != 0)
            break;
        if (ck_admin_json_decode_device_page(a.body != NULL ? a.body : "", a.len, &pg) != 0 ||
            pg.n > want) {
            rc = ck_error_set(CK_ERR_PROTO, "%s: unexpected answer: %s", r->base,
                              pg.n > want ? "more devices than asked for" : ck_error_context());
            break;
        }
        for (size_t i = 0; i < pg.n && rc == 0; i++) {
            /* In MAC order after the cursor, or the listing could go round for ever. */
            if (strcmp(pg.devices[i]->mac, cursor) <= 0) {
                rc = ck_error_set(CK_ERR_PROTO, "%s: the device listing does not advance",
                                  r->base);
                break;
            }
            ck_strlcpy(cursor, pg.devices[i]->mac, sizeof(cursor));
            rc = cb(pg.devices[i], arg);
            (*n)++;
        }
        if (pg.n < want || pg.next[0] == '\0')
            break;
        ck_admin_device_page_clear(&pg);
        answer_clear(&a);
    }
    ck_admin_device_page_clear(&pg);
    answer_clear(&a);
    curl_free(esc);
    return rc;
}

const struct cli_admin_ops cli_admin_remote = {
    .realm_get = remote_realm_get,
    .realm_modify = remote_realm_modify,
    .princ_get = remote_princ_get,
    .princ_list = remote_princ_list,
    .princ_add = remote_princ_add,
    .princ_modify = remote_princ_modify,
    .princ_rotate = remote_princ_rotate,
    .princ_delete = remote_princ_delete,
    .princ_rename = remote_princ_rename,
    .princ_unlock = remote_princ_unlock,
    .policy_get = remote_policy_get,
    .policy_list = remote_policy_list,
    .policy_add = remote_policy_add,
    .policy_modify = remote_policy_modify,
    .policy_delete = remote_policy_delete,
    .device_get = remote_device_get,
    .device_list = remote_device_list,
};

/* ===================================================================== choosing the executor */

const char *cli_global_server, *cli_global_ca;

int
cli_executor_open(const char *what, const char *db, const char *stash, const char *server,
                  const char *ca, bool readonly, struct cli_executor *out)
{
    int ret, rc;

    memset(out, 0, sizeof(*out));
    if (server != NULL && cli_global_server != NULL)
        return cli_usage_error(what, "--server given twice (before the command and after it)");
    if (ca != NULL && cli_global_ca != NULL)
        return cli_usage_error(what, "--ca given twice (before the command and after it)");
    if (server == NULL)
        server = cli_global_server;
    if (ca == NULL)
        ca = cli_global_ca;
    if (server != NULL && db != NULL)
        return cli_usage_error(what, "--server and --db exclude each other: --db PATH|URI runs the "
                               "verb on a local database, --server URL on cablekey-admind");
    if (server != NULL && stash != NULL)
        return cli_usage_error(what, "--stash applies to a local database (--db) only");
    if (ca != NULL && server == NULL)
        return cli_usage_error(what, "--ca applies to --server https://... only");
    if (server == NULL) {
        if ((rc = cli_open_store(what, db, stash, readonly, &out->store)) != CLI_OK)
            return rc;
        out->ops = &cli_admin_local;
        out->ctx = out->store;
        return CLI_OK;
    }
    if ((ret = cli_remote_open(server, ca, &out->remote)) != 0) {
        if (ret == CK_ERR_INVAL)
            return cli_usage_error(what, "%s", ck_error_context());
        return cli_fail(what, ret);
    }
    out->ops = &cli_admin_remote;
    out->ctx = out->remote;
    return CLI_OK;
}

void
cli_executor_close(struct cli_executor *e)
{
    if (e == NULL)
        return;
    ck_store_close(e->store);
    cli_remote_close(e->remote);
    memset(e, 0, sizeof(*e));
}
