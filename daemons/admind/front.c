/* The front process of cablekey-admind: HTTP (libmicrohttpd), SPNEGO (MIT GSSAPI), the ACL and
 * JSON decoding. It never opens the database or the stash (see admind.h for the split); every
 * store operation is a message to the back process.
 *
 * Request path: size limits (libmicrohttpd bounds the request line and headers; the body is
 * bounded here) -> Negotiate authentication -> routing -> ACL -> body decoding -> back process ->
 * response, and exactly one summary log line per request. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <microhttpd.h>

#include "admin/admin_int.h"
#include "admin/httpd.h"
#include "admin/spnego.h"
#include "admind.h"
#include "cablekey/error.h"
#include "cablekey/net.h"
#include "cablekey/principal.h"
#include "cablekey/util.h"

#define MAX_SEGMENTS 6

struct front {
    const struct admind_config *cfg;
    struct admind_config *live;  /* the same, writable: SIGHUP (main thread) changes acl_file and
                                    the log settings; NULL in --check */
    struct ck_spnego_acceptor acc; /* the HTTP/ service keys (lib/admin/spnego.c) */
    pthread_mutex_t lock;        /* the back channel and the ACL pointer */
    struct ck_admin_acl *acl;
    int back_fd;
    int back_pid;
    bool back_broken;
    int lfd[ADMIND_MAX_LISTEN];
    size_t n_lfd;
    struct MHD_Daemon *mhd[ADMIND_MAX_LISTEN];
    char *tls_cert, *tls_key;
    size_t tls_key_len;
};


/* ===================================================================== listen addresses */

/* Binds every listen address; with none configured, 127.0.0.1 and ::1 (the latter skipped if the
 * host has no IPv6 loopback). Numeric addresses only; a non-loopback one needs TLS
 * (lib/admin/httpd.c). */
static int
setup_listen(struct front *f, bool bind_them)
{
    const struct admind_config *cfg = f->cfg;
    static const char *const defaults[] = {"127.0.0.1", "[::1]"};
    const struct ck_admin_listen_set ls = {
        .specs = (const char *const *)cfg->listen, .n_specs = cfg->n_listen,
        .defaults = defaults, .n_defaults = 2, .default_port = ADMIND_DEFAULT_PORT,
        .tls = cfg->tls_certificate != NULL,
        .cleartext_why = "Admin requests carry passwords and Kerberos authenticators, which "
                         "must not cross a network in clear text: set tls_certificate and "
                         "tls_key",
        .cleartext_note = ""};

    return ck_admin_listen_setup(&ls, bind_them, f->lfd, ADMIND_MAX_LISTEN, &f->n_lfd);
}

/* ===================================================================== responses */

static enum MHD_Result
respond(struct MHD_Connection *c, int status, json_t *body, const char *mutual,
        const char *allow)
{
    const struct ck_admin_http_reply r = {.mutual = mutual, .allow = allow};

    return ck_admin_http_respond(c, status, body, &r);
}

static json_t *
error_body(const char *code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static json_t *
error_body(const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
}

/* ===================================================================== back channel */

/* Sends msg to the back process and returns its status and body or error (new references).
 * A broken channel is fatal for the daemon: the back process is killed, the watcher thread sees
 * the channel hang up and stops the main loop, and this request gets 503. */
static int
back_call(struct front *f, json_t *msg, json_t **body)
{
    char *text = NULL, *reply = NULL;
    size_t len = 0, rlen = 0;
    json_t *r = NULL;
    int status = 503, rc;

    *body = NULL;
    pthread_mutex_lock(&f->lock);
    if (f->back_broken)
        goto out;
    if ((rc = ck_admin_json_dump(msg, &text, &len)) != 0 ||
        (rc = admind_ipc_send(f->back_fd, text, len)) != 0 ||
        (rc = admind_ipc_recv(f->back_fd, ADMIND_IPC_MAX_REPLY, &reply, &rlen)) != 0 ||
        (rc = ck_admin_json_parse_object(reply, rlen, &r)) != 0) {
        ck_log_err("back process channel: %s; stopping", rc == CK_ERR_NOTFOUND
                   ? "closed by the back process" : ck_error_context());
        f->back_broken = true;
        kill(f->back_pid, SIGKILL);
        goto out;
    }
    status = (int)json_integer_value(json_object_get(r, "status"));
    if (status < 200 || status > 599) {
        status = 500;
        *body = error_body("internal", "internal error (see the daemon's log)");
        goto out;
    }
    if ((*body = json_object_get(r, "error")) != NULL) {
        json_incref(*body);
        json_t *wrap = json_pack("{s:o}", "error", *body);
        *body = wrap;
    } else if ((*body = json_object_get(r, "body")) != NULL && !json_is_null(*body)) {
        json_incref(*body);
    } else {
        *body = status >= 400 ? error_body("internal", "internal error (see the daemon's log)")
                              : NULL;
    }
out:
    pthread_mutex_unlock(&f->lock);
    if (text != NULL)
        ck_free_secret(text, len + 1); /* may hold a password */
    free(reply);
    json_decref(r);
    if (status == 503 && *body == NULL)
        *body = error_body("unavailable", "the store process is not available");
    return status;
}

/* ===================================================================== routing */

/* A query parameter, percent-decoded into buf; NULL if absent. *bad on a bad escape. */
static const char *
query(struct MHD_Connection *c, const char *key, char *buf, size_t size, bool *bad)
{
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key);

    if (v == NULL)
        return NULL;
    if (ck_strlcpy(buf, v, size) >= size || ck_admin_pct_decode(buf) != 0 || buf[0] == '\0') {
        *bad = true;
        return NULL;
    }
    for (const char *p = buf; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *bad = true;
    return buf;
}

/* One request, resolved: what the log line says and what the back process gets. */
struct route {
    const char *op;          /* back operation */
    unsigned perm;           /* ACL permission */
    enum ck_admin_req_kind body_kind; /* a principal request body; 0: see below */
    bool realm_body;         /* PATCH /v1/realm: a realm change */
    bool rename_body;        /* .../rename: {"new_name": ...} */
    bool policy_body;        /* POST, PATCH /v1/policies/NAME: policy rules */
    char policy[CK_POLICY_NAME_MAX + 1]; /* policy name, or "" (no ACL target: MIT's policy
                                            operations have none) */
    char target[CK_PRINCIPAL_MAX_TEXT]; /* canonical principal, or "" */
    char mac[CK_MAC_TEXT];
    const char *allow;       /* for 405 */
    const char *const *query;
};

static const char *const no_query[] = {NULL};
static const char *const list_query[] = {"pattern", "after", "limit", NULL};
static const char *const device_query[] = {"principal", "after", "limit", NULL};

static int
canonical_name(const struct front *f, const char *in, char *out, size_t size, char *why,
               size_t why_size)
{
    ck_principal *p = NULL;
    size_t n;
    int rc = -1;

    if (ck_principal_parse(in, f->cfg->realm, 0, &p) != 0) {
        snprintf(why, why_size, "bad principal name: %s", ck_error_context());
        goto out;
    }
    if (strcmp(p->realm, f->cfg->realm) != 0) {
        snprintf(why, why_size, "principal is not in realm %s", f->cfg->realm);
        goto out;
    }
    if (ck_principal_unparse_buf(p, 0, out, size, &n) != 0) {
        snprintf(why, why_size, "principal name too long");
        goto out;
    }
    rc = 0;
out:
    ck_principal_free(p);
    return rc;
}

/* Maps method + path to a route. Returns the HTTP status to answer with on error (404, 405,
 * 400), 0 on success. */
static int
route(const struct front *f, const char *method, const char *url, struct route *rt, char *why,
      size_t why_size)
{
    char path[2048], *seg[MAX_SEGMENTS], *save = NULL, *s;
    size_t n = 0;
    bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
    bool patch = strcmp(method, "PATCH") == 0, del = strcmp(method, "DELETE") == 0;

    memset(rt, 0, sizeof(*rt));
    rt->query = no_query;
    snprintf(why, why_size, "no such resource");
    if (ck_strlcpy(path, url, sizeof(path)) >= sizeof(path) || path[0] != '/')
        return 404;
    for (s = strtok_r(path, "/", &save); s != NULL; s = strtok_r(NULL, "/", &save)) {
        if (n == MAX_SEGMENTS || ck_admin_pct_decode(s) != 0)
            return 404;
        seg[n++] = s;
    }
    if (n < 2 || strcmp(seg[0], "v1") != 0)
        return 404;
    if (n == 2 && strcmp(seg[1], "realm") == 0) {
        rt->allow = "GET, PATCH";
        if (patch) {
            /* MIT's kadmind has no realm change (kdc.conf holds those settings); 'm' without
             * a target is the closest: an ACL entry with a TARGET never grants it. */
            rt->op = "realm.modify";
            rt->perm = CK_ADMIN_PERM_MODIFY;
            rt->realm_body = true;
            return 0;
        }
        if (!get)
            return 405;
        rt->op = "realm.get";
        rt->perm = CK_ADMIN_PERM_INQUIRE;
        return 0;
    }
    if (strcmp(seg[1], "principals") == 0) {
        if (n == 2) {
            rt->allow = "GET";
            if (!get)
                return 405;
            rt->op = "principal.list";
            rt->perm = CK_ADMIN_PERM_LIST;
            rt->query = list_query;
            return 0;
        }
        if (n > 4 || (n == 4 && strcmp(seg[3], "keys") != 0 && strcmp(seg[3], "rename") != 0 &&
                      strcmp(seg[3], "unlock") != 0))
            return 404;
        if (canonical_name(f, seg[2], rt->target, sizeof(rt->target), why, why_size) != 0)
            return 400;
        if (n == 4 && strcmp(seg[3], "rename") == 0) {
            /* As MIT's rename_principal: delete on the old name (here), add on the new one
             * (checked once the body names it). */
            rt->allow = "POST";
            if (!post)
                return 405;
            rt->op = "principal.rename";
            rt->perm = CK_ADMIN_PERM_DELETE;
            rt->rename_body = true;
            return 0;
        }
        if (n == 4 && strcmp(seg[3], "unlock") == 0) {
            /* MIT: modprinc -unlock, so 'm'. */
            rt->allow = "POST";
            if (!post)
                return 405;
            rt->op = "principal.unlock";
            rt->perm = CK_ADMIN_PERM_MODIFY;
            return 0;
        }
        if (n == 4) {
            rt->allow = "POST";
            if (!post)
                return 405;
            rt->op = "principal.keys";
            rt->perm = CK_ADMIN_PERM_CHANGEPW;
            rt->body_kind = CK_ADMIN_REQ_KEYS;
            return 0;
        }
        rt->allow = "GET, POST, PATCH, DELETE";
        if (get) {
            rt->op = "principal.get";
            rt->perm = CK_ADMIN_PERM_INQUIRE;
        } else if (post) {
            rt->op = "principal.create";
            rt->perm = CK_ADMIN_PERM_ADD;
            rt->body_kind = CK_ADMIN_REQ_CREATE;
        } else if (patch) {
            rt->op = "principal.modify";
            rt->perm = CK_ADMIN_PERM_MODIFY;
            rt->body_kind = CK_ADMIN_REQ_MODIFY;
        } else if (del) {
            rt->op = "principal.delete";
            rt->perm = CK_ADMIN_PERM_DELETE;
        } else {
            return 405;
        }
        return 0;
    }
    if (strcmp(seg[1], "policies") == 0 && n <= 3) {
        /* MIT kadmind's letters for policies, always without a target: 'a' add, 'm' modify,
         * 'd' delete, 'i' get, 'l' list. An ACL entry with a TARGET never grants them. */
        if (n == 2) {
            rt->allow = "GET";
            if (!get)
                return 405;
            rt->op = "policy.list";
            rt->perm = CK_ADMIN_PERM_LIST;
            return 0;
        }
        if (ck_strlcpy(rt->policy, seg[2], sizeof(rt->policy)) >= sizeof(rt->policy) ||
            ck_policy_name_check(rt->policy) != 0) {
            rt->policy[0] = '\0';
            snprintf(why, why_size, "bad policy name");
            return 400;
        }
        rt->allow = "GET, POST, PATCH, DELETE";
        if (get) {
            rt->op = "policy.get";
            rt->perm = CK_ADMIN_PERM_INQUIRE;
        } else if (post) {
            rt->op = "policy.create";
            rt->perm = CK_ADMIN_PERM_ADD;
            rt->policy_body = true;
        } else if (patch) {
            rt->op = "policy.modify";
            rt->perm = CK_ADMIN_PERM_MODIFY;
            rt->policy_body = true;
        } else if (del) {
            rt->op = "policy.delete";
            rt->perm = CK_ADMIN_PERM_DELETE;
        } else {
            return 405;
        }
        return 0;
    }
    if (strcmp(seg[1], "devices") == 0 && n <= 3) {
        rt->allow = "GET";
        if (!get)
            return 405;
        if (n == 2) {
            rt->op = "device.list";
            rt->perm = CK_ADMIN_PERM_LIST;
            rt->query = device_query;
            return 0;
        }
        if (ck_mac_canonical(seg[2], rt->mac) != 0) {
            snprintf(why, why_size, "bad MAC address");
            return 400;
        }
        rt->op = "device.get";
        rt->perm = CK_ADMIN_PERM_INQUIRE;
        return 0;
    }
    return 404;
}

/* Adds the list parameters (pattern, principal, after, limit) to msg. Returns 0 or 400. */
static int
add_list_query(const struct front *f, struct MHD_Connection *c, const struct route *rt,
               json_t *msg, char *why, size_t why_size)
{
    char pattern[1024], after[1024], limit_s[16], principal[1024], canon[CK_PRINCIPAL_MAX_TEXT];
    bool bad = false, devices = strcmp(rt->op, "device.list") == 0;
    const char *v;
    int64_t max = devices ? ADMIND_DEVICE_LIST_MAX : ADMIND_LIST_MAX, limit = max;

    if ((v = query(c, "limit", limit_s, sizeof(limit_s), &bad)) != NULL &&
        ck_parse_int64(v, 1, max, &limit) != 0)
        bad = true;
    json_object_set_new(msg, "limit", json_integer(limit));
    if ((v = query(c, "after", after, sizeof(after), &bad)) != NULL)
        json_object_set_new(msg, "after", json_string(v));
    if (strcmp(rt->op, "principal.list") == 0) {
        /* As MIT's listprincs: a pattern without a realm is in the daemon's realm. */
        char in[768];
        if ((v = query(c, "pattern", in, sizeof(in), &bad)) == NULL)
            v = "*";
        if (strchr(v, '@') == NULL)
            snprintf(pattern, sizeof(pattern), "%s@%s", v, f->cfg->realm);
        else
            ck_strlcpy(pattern, v, sizeof(pattern));
        v = pattern;
        json_object_set_new(msg, "pattern", json_string(v));
    } else if ((v = query(c, "principal", principal, sizeof(principal), &bad)) != NULL) {
        if (canonical_name(f, v, canon, sizeof(canon), why, why_size) != 0)
            return 400;
        json_object_set_new(msg, "principal", json_string(canon));
    }
    if (bad) {
        snprintf(why, why_size, "bad query parameter (limit is 1..%lld; no control characters)",
                 (long long)max);
        return 400;
    }
    return 0;
}

/* ===================================================================== the request handler */

static void
log_request(struct MHD_Connection *c, const char *who, const char *method, const char *url,
            const struct route *rt, int status, const char *detail)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c,
                                                                 MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char addr[CK_NET_ADDRSTRLEN] = "?";
    bool routed = rt != NULL && rt->op != NULL;
    const char *target = !routed ? url /* what was asked, when nothing matched */
                         : rt->target[0] != '\0' ? rt->target
                         : rt->mac[0] != '\0' ? rt->mac
                         : rt->policy[0] != '\0' ? rt->policy : "-";
    char who_s[256], op_s[32], target_s[256], detail_s[320];

    if (ci != NULL && ci->client_addr != NULL)
        ck_net_addr_format(ci->client_addr, addr, sizeof(addr));
    ck_log(status >= 400 || (rt != NULL && rt->perm != CK_ADMIN_PERM_INQUIRE &&
                             rt->perm != CK_ADMIN_PERM_LIST) ? LOG_NOTICE : LOG_INFO,
           "request client=%s principal=%s op=%s target=%s status=%d%s%s", addr,
           ck_admin_log_safe(who_s, sizeof(who_s), who != NULL ? who : "-"),
           ck_admin_log_safe(op_s, sizeof(op_s), routed ? rt->op : method),
           ck_admin_log_safe(target_s, sizeof(target_s), target), status, detail[0] != '\0' ? ": " : "",
           ck_admin_log_safe(detail_s, sizeof(detail_s), detail));
}

/* The bodies of the realm change and the rename, decoded and added to msg for the back process.
 * Returns 0 or the HTTP status to refuse with (why says why). */
static int
add_other_body(struct front *f, const struct route *rt, const struct ck_admin_http_body *req,
               const char *who, json_t *msg, char *why, size_t why_size)
{
    const char *text = req->body != NULL ? req->body : "";
    char canon[CK_PRINCIPAL_MAX_TEXT], *new_name = NULL;
    ck_realm_mod mod;
    json_t *b;
    unsigned line = 0;
    bool allowed;
    int rc;

    if (rt->realm_body) {
        if ((rc = ck_admin_json_decode_realm_mod(text, req->len, &mod)) != 0) {
            snprintf(why, why_size, "%s", req->len == 0 ? "a JSON body is required"
                                                        : ck_error_context());
            return rc == CK_ERR_LIMIT ? 413 : 400;
        }
        if ((b = ck_admin_realm_mod_to_json(&mod)) == NULL ||
            json_object_set_new(msg, "req", b) != 0) {
            snprintf(why, why_size, "out of memory");
            return 500;
        }
        return 0;
    }
    if ((rc = ck_admin_json_decode_rename(text, req->len, &new_name)) != 0) {
        snprintf(why, why_size, "%s", req->len == 0 ? "a JSON body is required"
                                                    : ck_error_context());
        return rc == CK_ERR_LIMIT ? 413 : 400;
    }
    rc = canonical_name(f, new_name, canon, sizeof(canon), why, why_size);
    free(new_name);
    if (rc != 0)
        return 400;
    pthread_mutex_lock(&f->lock);
    allowed = ck_admin_acl_check(f->acl, who, canon, CK_ADMIN_PERM_ADD, &line);
    pthread_mutex_unlock(&f->lock);
    if (!allowed) {
        snprintf(why, why_size, "not permitted by the ACL (rename needs 'a' on the new name "
                 "%.300s%s)", canon, line != 0 ? ", refused by an entry" : ", no matching entry");
        return 403;
    }
    if (json_object_set_new(msg, "new_name", json_string(canon)) != 0) {
        snprintf(why, why_size, "out of memory");
        return 500;
    }
    return 0;
}

static enum MHD_Result
handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
       const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    struct front *f = cls;
    struct ck_admin_http_body *req = *con_cls;
    struct route rt;
    struct ck_admin_principal_req body = {0};
    char why[512] = "", *who = NULL, *mutual = NULL;
    json_t *msg = NULL, *out = NULL;
    enum MHD_Result ret;
    int status, rc;
    unsigned line = 0;

    (void)version;
    switch (ck_admin_http_body(c, con_cls, upload_data, upload_data_size, f->cfg->max_body,
                               &req)) {
    case CK_ADMIN_BODY_MORE:
        return MHD_YES;
    case CK_ADMIN_BODY_NOMEM:
        return MHD_NO;
    case CK_ADMIN_BODY_TOO_LARGE:
        log_request(c, NULL, method, url, NULL, 413, "body too large");
        return respond(c, 413, error_body("too_large", "request body larger than %zu bytes",
                                          f->cfg->max_body), NULL, NULL);
    default:
        break;
    }

    /* Authentication first: nothing about the API is told to an unauthenticated client. */
    rc = ck_spnego_accept(&f->acc, MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                           MHD_HTTP_HEADER_AUTHORIZATION),
                          &who, &mutual, why, sizeof(why));
    if (rc != 0) {
        status = 401;
        log_request(c, NULL, method, url, NULL, 401, rc > 0 ? "no Negotiate credentials" : why);
        out = error_body("unauthorized", "%s", rc > 0 ? "authenticate with HTTP Negotiate "
                         "(Kerberos): curl --negotiate -u :" : "Negotiate authentication failed");
        ret = respond(c, status, out, NULL, NULL);
        goto done;
    }
    if ((status = route(f, method, url, &rt, why, sizeof(why))) != 0) {
        if (status == 405)
            snprintf(why, sizeof(why), "method not allowed (allowed: %s)", rt.allow);
        log_request(c, who, method, url, status == 400 ? &rt : NULL, status, why);
        out = status == 405 ? error_body("method_not_allowed", "allowed: %s", rt.allow)
              : status == 404 ? error_body("not_found", "no such resource")
                              : error_body("bad_request", "%s", why);
        ret = respond(c, status, out, mutual, status == 405 ? rt.allow : NULL);
        goto done;
    }
    {
        const char *unknown = ck_admin_http_unknown_query(c, rt.query);
        if (unknown != NULL) {
            snprintf(why, sizeof(why), "unknown query parameter or one without a value "
                     "\"%.64s\"", unknown);
            status = 400;
            goto refuse;
        }
    }
    pthread_mutex_lock(&f->lock);
    rc = ck_admin_acl_check(f->acl, who, rt.target[0] != '\0' ? rt.target : NULL, rt.perm, &line);
    pthread_mutex_unlock(&f->lock);
    if (!rc) {
        char letters[16];
        snprintf(why, sizeof(why), "not permitted by the ACL (needs '%s'%s)",
                 ck_admin_perm_letters(rt.perm, letters, sizeof(letters)),
                 line != 0 ? ", refused by an entry" : ", no matching entry");
        status = 403;
        goto refuse;
    }
    if ((msg = json_pack("{s:s,s:s}", "op", rt.op, "actor", who)) == NULL)
        goto oom;
    if (rt.target[0] != '\0')
        json_object_set_new(msg, "name", json_string(rt.target));
    if (rt.mac[0] != '\0')
        json_object_set_new(msg, "mac", json_string(rt.mac));
    if (rt.policy[0] != '\0')
        json_object_set_new(msg, "name", json_string(rt.policy));
    if (rt.query != no_query && (status = add_list_query(f, c, &rt, msg, why, sizeof(why))) != 0)
        goto refuse;
    if (rt.body_kind != 0) {
        json_t *b;
        if ((rc = ck_admin_json_decode_request(rt.body_kind, req->body != NULL ? req->body : "",
                                               req->len, &body)) != 0) {
            snprintf(why, sizeof(why), "%s", req->len == 0 ? "a JSON body is required"
                                                            : ck_error_context());
            status = rc == CK_ERR_LIMIT ? 413 : 400;
            goto refuse;
        }
        if ((b = ck_admin_request_to_json(&body)) == NULL ||
            json_object_set_new(msg, "req", b) != 0)
            goto oom;
    } else if (rt.policy_body) {
        ck_policy rules;
        unsigned present;
        json_t *b;
        if ((rc = ck_admin_json_decode_policy_rules(req->body != NULL ? req->body : "",
                                                    req->len,
                                                    strcmp(rt.op, "policy.modify") == 0,
                                                    &rules, &present)) != 0) {
            snprintf(why, sizeof(why), "%s", req->len == 0 ? "a JSON body is required"
                                                            : ck_error_context());
            status = rc == CK_ERR_LIMIT ? 413 : 400;
            goto refuse;
        }
        if ((b = ck_admin_policy_rules_to_json(&rules, present)) == NULL ||
            json_object_set_new(msg, "req", b) != 0)
            goto oom;
    } else if (rt.realm_body || rt.rename_body) {
        if ((status = add_other_body(f, &rt, req, who, msg, why, sizeof(why))) != 0)
            goto refuse;
    } else if (req->len > 0) {
        snprintf(why, sizeof(why), "this request takes no body");
        status = 400;
        goto refuse;
    }
    status = back_call(f, msg, &out);
    {
        const char *m = json_string_value(json_object_get(json_object_get(out, "error"),
                                                          "message"));
        log_request(c, who, method, url, &rt, status, m != NULL ? m : "");
    }
    ret = respond(c, status, out, mutual, NULL);
    goto done;
oom:
    snprintf(why, sizeof(why), "out of memory");
    status = 500;
refuse:
    log_request(c, who, method, url, &rt, status, why);
    ret = respond(c, status,
                  error_body(status == 403 ? "forbidden" : status == 413 ? "too_large"
                             : status == 500 ? "internal" : "bad_request", "%s", why),
                  mutual, NULL);
done:
    ck_admin_principal_req_clear(&body);
    json_decref(msg); /* the jansson allocator wipes the password copy */
    free(who);
    free(mutual);
    return ret;
}

/* ===================================================================== setup and main loop */

static int
read_pem(const char *path, char **out, size_t *len_out)
{
    char *buf = NULL;
    size_t len = 0;
    int fd, rc;

    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return ck_error_set(CK_ERR_IO, "%s: %s", path, strerror(errno));
    if ((buf = malloc(1024 * 1024 + 1)) == NULL) {
        close(fd);
        return CK_ERR_NOMEM;
    }
    rc = ck_fd_read_all(fd, buf, 1024 * 1024, &len);
    close(fd);
    if (rc != 0 || len == 0 || len >= 1024 * 1024) {
        ck_free_secret(buf, 1024 * 1024 + 1);
        return ck_error_set(CK_ERR_IO, "%s: unreadable, empty or too large", path);
    }
    buf[len] = '\0';
    *out = buf;
    *len_out = len;
    return 0;
}

static int
setup_tls(struct front *f)
{
    size_t n;
    int rc;

    if (f->cfg->tls_certificate == NULL)
        return 0;
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
        return ck_error_set(CK_ERR_UNSUPPORTED, "this libmicrohttpd has no TLS support");
    if ((rc = read_pem(f->cfg->tls_certificate, &f->tls_cert, &n)) != 0 ||
        (rc = read_pem(f->cfg->tls_key, &f->tls_key, &f->tls_key_len)) != 0)
        return rc;
    return 0;
}

static void
swap_acl(struct front *f, struct ck_admin_acl *acl)
{
    pthread_mutex_lock(&f->lock);
    ck_admin_acl_free(f->acl);
    f->acl = acl;
    pthread_mutex_unlock(&f->lock);
}

static int
start_http(struct front *f)
{
    const struct ck_admin_http_server srv = {
        .handler = handle, .arg = f, .max_connections = f->cfg->max_connections,
        .timeout = f->cfg->timeout, .header_memory = ADMIND_HEADER_MEMORY,
        .tls_cert = f->tls_cert, .tls_key = f->tls_key,
        .tls_hint = "; check the TLS certificate and key"};

    return ck_admin_http_start(&srv, f->lfd, f->n_lfd, f->mhd);
}

/* After binding: the front becomes front_user when one is set (then even code execution in the
 * front cannot read the stash from disk, which stays readable only by the service user), else
 * the service user, so that nothing keeps root once the sockets are bound. */
static int
drop_privileges(const struct front *f)
{
    const char *name = f->cfg->front_user != NULL ? f->cfg->front_user : f->cfg->user;
    struct ck_daemon_user u;
    int rc;

    (void)prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    if (name == NULL)
        return 0;
    if (f->cfg->front_user != NULL && geteuid() != 0)
        return ck_error_set(CK_ERR_CONFIG, "front_user is set but the daemon is not root");
    if ((rc = ck_daemon_user_lookup(name, &u)) != 0 || (rc = ck_daemon_drop_privileges(&u)) != 0)
        return ck_error_set(rc, "%s%s", f->cfg->front_user != NULL ? "front_user: " : "",
                            ck_error_context());
    ck_log_info("front running as user %s (uid %u)", u.name, (unsigned)u.uid);
    return 0;
}

int
admind_listen_validate(const struct admind_config *cfg)
{
    struct front f = {.cfg = cfg};

    return setup_listen(&f, false);
}

int
admind_front_check(const struct admind_config *cfg)
{
    struct front f = {.cfg = cfg};
    struct ck_admin_acl *acl = NULL;
    struct ck_spnego_acceptor acc; /* the HTTP/ service keys (lib/admin/spnego.c) */
    int rc;

    if ((rc = ck_admin_acl_load(cfg->acl_file, cfg->realm, &acl)) != 0)
        return rc;
    printf("acl: %s (%zu entries)\n", cfg->acl_file, ck_admin_acl_entries(acl));
    ck_admin_acl_free(acl);
    if ((rc = ck_spnego_acceptor_init(cfg->keytab, ADMIND_PROG, &acc)) != 0)
        return rc;
    ck_spnego_acceptor_free(&acc);
    printf("keytab: %s\n", cfg->keytab);
    if ((rc = setup_listen(&f, false)) != 0)
        return rc;
    for (size_t i = 0; i < (cfg->n_listen > 0 ? cfg->n_listen : 2); i++)
        printf("listen: %s%s\n", cfg->n_listen > 0 ? cfg->listen[i] : i == 0 ? "127.0.0.1" : "[::1]",
               cfg->tls_certificate != NULL ? " (TLS)" : " (loopback, no TLS)");
    if ((rc = setup_tls(&f)) != 0)
        goto out;
out:
    free(f.tls_cert);
    if (f.tls_key != NULL)
        ck_free_secret(f.tls_key, f.tls_key_len + 1);
    return rc;
}

/* ===================================================================== SIGHUP */

static bool
same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Logs each setting that differs but is fixed until a restart (bound sockets, keys read at
 * start, the users, libmicrohttpd's limits); returns how many. */
static int
report_restart_only(const struct admind_config *oc, const struct admind_config *nc)
{
    int n = 0;

#define RESTART_STR(key, a, b)                                                                 \
    do {                                                                                       \
        if (!same_str(a, b)) {                                                                 \
            ck_log_warn("SIGHUP: %s changed (%s -> %s): needs a restart, not applied", key,     \
                        (a) != NULL ? (a) : "(unset)", (b) != NULL ? (b) : "(unset)");         \
            n++;                                                                               \
        }                                                                                      \
    } while (0)
    RESTART_STR("realm", oc->realm, nc->realm);
    RESTART_STR("database", oc->database, nc->database);
    RESTART_STR("stash", oc->stash, nc->stash);
    RESTART_STR("keytab", oc->keytab, nc->keytab);
    RESTART_STR("tls_certificate", oc->tls_certificate, nc->tls_certificate);
    RESTART_STR("tls_key", oc->tls_key, nc->tls_key);
    RESTART_STR("pid_file", oc->pid_file, nc->pid_file);
    RESTART_STR("user", oc->user, nc->user);
    RESTART_STR("front_user", oc->front_user, nc->front_user);
#undef RESTART_STR
    {
        bool same = oc->n_listen == nc->n_listen;
        for (size_t i = 0; same && i < oc->n_listen; i++)
            same = strcmp(oc->listen[i], nc->listen[i]) == 0;
        if (!same) {
            ck_log_warn("SIGHUP: listen changed (%s%s -> %s%s): needs a restart, not applied",
                        oc->n_listen > 0 ? oc->listen[0] : "(loopback defaults)",
                        oc->n_listen > 1 ? " ..." : "",
                        nc->n_listen > 0 ? nc->listen[0] : "(loopback defaults)",
                        nc->n_listen > 1 ? " ..." : "");
            n++;
        }
    }
    if (oc->max_body != nc->max_body || oc->max_connections != nc->max_connections ||
        oc->timeout != nc->timeout) {
        ck_log_warn("SIGHUP: max_body, max_connections or timeout changed: needs a restart, "
                    "not applied");
        n++;
    }
    return n;
}

/* The back process re-reads the configuration and reopens its own log. */
static int
back_reload(struct front *f)
{
    json_t *msg = json_pack("{s:s}", "op", "reload"), *out = NULL;
    int status;

    if (msg == NULL)
        return ck_error_set(CK_ERR_NOMEM, "reload");
    status = back_call(f, msg, &out);
    json_decref(msg);
    if (status != 200) {
        const char *m = json_string_value(json_object_get(json_object_get(out, "error"),
                                                          "message"));
        json_decref(out);
        return ck_error_set(CK_ERR_IO, "the back process: %s", m != NULL ? m : "no answer");
    }
    json_decref(out);
    return 0;
}

/* SIGHUP (ck_daemon_loop): re-reads the configuration and reopens the logs. Applied: the ACL
 * (its file may move too), the log destination and level, in both processes; reported as
 * needing a restart: everything fixed at start. A configuration or ACL that does not load is
 * refused as a whole and the running one keeps serving. */
static int
reload(void *arg, char *status, size_t status_size)
{
    struct front *f = arg;
    struct admind_config nc;
    struct ck_admin_acl *acl = NULL;
    char a[4200], b[4200];
    int rc, applied = 0, restart;

    ck_log_notice("SIGHUP: re-reading the configuration");
    if ((rc = admind_config_load(f->live->opts, &nc)) != 0)
        goto refused;
    /* Same realm as the running daemon: a realm change is reported below, not applied. */
    if ((rc = ck_admin_acl_load(nc.acl_file, f->live->realm, &acl)) != 0)
        goto refused;
    restart = report_restart_only(f->live, &nc);
    /* Said at the old level, before a new level may hide them. */
    if (!same_str(f->live->acl_file, nc.acl_file))
        ck_log_notice("SIGHUP: acl_file %s -> %s", f->live->acl_file, nc.acl_file);
    if (f->live->log.dest != nc.log.dest || strcmp(f->live->log.path, nc.log.path) != 0) {
        ck_log_notice("SIGHUP: log %s -> %s", ck_log_target_describe(&f->live->log, a, sizeof(a)),
                      ck_log_target_describe(&nc.log, b, sizeof(b)));
        applied++;
    }
    if (f->live->log_level != nc.log_level) {
        ck_log_notice("SIGHUP: log level %s -> %s", ck_log_level_name(f->live->log_level),
                      ck_log_level_name(nc.log_level));
        applied++;
    }
    /* The last step that can fail: the new log opened (as this process's user) before the
     * running one is let go. */
    if ((rc = ck_log_reconfigure(nc.log.dest, nc.log.path, nc.log_level)) != 0) {
        rc = ck_error_set(rc, "log: %s", ck_error_context());
        goto refused;
    }
    f->live->log = nc.log;
    f->live->log_level = nc.log_level;
    {
        char *t = f->live->acl_file;
        f->live->acl_file = nc.acl_file;
        nc.acl_file = t;
    }
    swap_acl(f, acl);
    acl = NULL;
    applied++; /* the ACL, re-read */
    if (back_reload(f) != 0)
        ck_log_err("SIGHUP: %s; the back process keeps its previous log", ck_error_context());
    ck_log_notice("SIGHUP: configuration reloaded and logs reopened: ACL %s (%zu entries); %d "
                  "change%s applied, %d needing a restart", f->live->acl_file,
                  ck_admin_acl_entries(f->acl), applied, applied == 1 ? "" : "s", restart);
    snprintf(status, status_size, "serving; reloaded (%d applied, %d need a restart)", applied,
             restart);
    goto out;
refused:
    ck_log_err("SIGHUP: configuration refused, the running one is kept: %s", ck_error_context());
    snprintf(status, status_size, "reload refused: %s", ck_error_context());
out:
    ck_admin_acl_free(acl);
    admind_config_free(&nc);
    return rc;
}

/* ===================================================================== the back process */

int
admind_front_run(struct admind_config *cfg, int sfd, int back_fd, int back_pid)
{
    struct front f = {.cfg = cfg, .live = cfg, .back_fd = back_fd, .back_pid = back_pid};
    struct ck_admin_watch w = {0}; /* the back hanging up stops the daemon */
    int status = 1, rc, st;
    bool log_moved = false;      /* the log left stderr (until then errors are on stderr) */

    pthread_mutex_init(&f.lock, NULL);
    for (size_t i = 0; i < ADMIND_MAX_LISTEN; i++)
        f.lfd[i] = -1;
    /* As the starting user: the ACL, the keytab (copied into memory), the TLS files, the
     * sockets; then the drop, and the log opened as the final user. libmicrohttpd's threads
     * start after that, with the signal mask the daemon layer set. */
    if ((rc = ck_admin_acl_load(cfg->acl_file, cfg->realm, &f.acl)) != 0 ||
        (rc = ck_spnego_acceptor_init(cfg->keytab, ADMIND_PROG, &f.acc)) != 0 || (rc = setup_tls(&f)) != 0 ||
        (rc = setup_listen(&f, true)) != 0 || (rc = drop_privileges(&f)) != 0)
        goto fail;
    if ((rc = ck_log_reconfigure(cfg->log.dest, cfg->log.path, cfg->log_level)) != 0) {
        rc = ck_error_set(rc, "log: %s", ck_error_context());
        goto fail;
    }
    log_moved = cfg->log.dest != CK_LOG_STDERR;
    if ((rc = start_http(&f)) != 0 || (rc = ck_admin_watch_start(&w, f.back_fd)) != 0)
        goto fail;
    ck_log_notice("serving realm %s (ACL %s, %zu entries; back process %d)", cfg->realm,
                  cfg->acl_file, ck_admin_acl_entries(f.acl), back_pid);
    if (ck_daemon_notify("READY=1\nSTATUS=serving realm %s", cfg->realm) != 0)
        ck_log_warn("%s", ck_error_context());
    status = ck_daemon_loop(sfd, reload, &f) < 0 || atomic_load(&w.fired) ? 1 : 0;
    goto stop;
fail:
    ck_log_err("cannot start: %s", ck_error_context());
    if (log_moved) /* whoever started us is looking at the terminal */
        fprintf(stderr, ADMIND_PROG ": cannot start: %s\n", ck_error_context());
stop:
    for (size_t i = 0; i < ADMIND_MAX_LISTEN; i++) {
        if (f.mhd[i] != NULL)
            MHD_stop_daemon(f.mhd[i]);
        if (f.lfd[i] >= 0)
            close(f.lfd[i]);
    }
    ck_admin_watch_stop(&w);
    /* Closing the channel tells the back process to close the store and exit. */
    close(back_fd);
    if (f.back_pid > 0 && waitpid(f.back_pid, &st, 0) == f.back_pid && st != 0 && status == 0)
        ck_log_warn("the back process exited with status %d", st);
    ck_spnego_acceptor_free(&f.acc);
    ck_admin_acl_free(f.acl);
    free(f.tls_cert);
    if (f.tls_key != NULL)
        ck_free_secret(f.tls_key, f.tls_key_len + 1);
    pthread_mutex_destroy(&f.lock);
    return status;
}
