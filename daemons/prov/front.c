/* The front process of cablekey-prov: HTTP (libmicrohttpd, one thread per connection so that a
 * lines long poll or a console login waiting for the KDC holds only its own connection), the
 * operators' authentication (SPNEGO through lib/admin/spnego.c, or a console session), the ACL
 * (lib/admin/acl.c), CSRF and origin checks, JSON validation (api.c). It never opens the store
 * or the CA key: every store operation is a message to the back process (see prov.h).
 *
 * Request path: size limits (libmicrohttpd bounds the request line and headers; the body is
 * bounded here) -> routing -> authentication -> CSRF/origin -> ACL -> decoding -> back ->
 * response; exactly one summary log line per request (never a body, a password or a cookie). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/rand.h>

#include "admin/admin_int.h"
#include "admin/httpd.h"
#include "admin/spnego.h"
#include "cablekey/admin.h"
#include "cablekey/ap.h"
#include "cablekey/client.h"
#include "cablekey/endpoint.h"
#include "cablekey/keytab.h"
#include "cablekey/krb5_asn1.h"
#include "cablekey/error.h"
#include "cablekey/net.h"
#include "cablekey/principal.h"
#include "cablekey/util.h"
#include "provd.h"

#include "console.h"

#define HEADER_MEMORY (64 * 1024)
#define COOKIE "ck_session"
#define SESSION_ID_LEN 32
#define SESSION_SLOT_BYTES 3 /* max_sessions <= 100000 < 2^24 */
#define LINES_POLL_MS 250      /* the long poll looks again this often */
#define LOGIN_TIMEOUT_MS 3000

struct session {
    bool used;
    uint8_t id[SESSION_ID_LEN];
    char csrf[2 * SESSION_ID_LEN + 1];
    char *principal;
    int64_t expires;
};

struct front {
    const struct prov_config *cfg;
    struct prov_config *live;    /* SIGHUP (main thread) changes the ACL and the log */
    char realm[256];             /* the store's realm, from the back */
    struct ck_spnego_acceptor acc;
    pthread_mutex_t lock;        /* the back channels' use and the ACL pointer */
    struct ck_admin_acl *acl;
    int back_fd, back_pid;
    bool back_broken;
    /* One channel per back worker (chan[0] is back_fd): a request takes a free one. */
    int chan[PROV_MAX_WORKERS];
    bool chan_busy[PROV_MAX_WORKERS];
    size_t n_chan;
    pthread_cond_t chan_free;
    pthread_mutex_t slock;       /* the session table */
    struct session *sessions;
    size_t n_sessions;
    int lfd[PROV_MAX_LISTEN];
    size_t n_lfd;
    struct MHD_Daemon *mhd[PROV_MAX_LISTEN];
    char *tls_cert, *tls_key;    /* PEM, from the PKCS#12 identity */
    size_t tls_key_len;
    char **kdcs;                 /* console logins: the `kdc` addresses, or NULL: krb5.conf */
    size_t n_kdcs;
    ck_keytab *kt;               /* the same keys, to verify the console logins' tickets */
    char login_service[CK_PRINCIPAL_MAX_TEXT]; /* "HTTP/host": the AS tickets' service */
};


/* ===================================================================== listening */

static int
setup_listen(struct front *f, bool bind_them)
{
    const struct prov_config *cfg = f->cfg;
    static const char *const defaults[] = {PROV_DEFAULT_HTTP};
    const struct ck_admin_listen_set ls = {
        .specs = (const char *const *)cfg->listen, .n_specs = cfg->n_listen,
        .defaults = defaults, .n_defaults = 1, .default_port = PROV_DEFAULT_PORT,
        .tls = cfg->tls_identity != NULL,
        .cleartext_why = "The API carries console passwords, session cookies and Kerberos "
                         "authenticators: set tls_identity",
        .cleartext_note = " (loopback, no TLS)"};

    return ck_admin_listen_setup(&ls, bind_them, f->lfd, PROV_MAX_LISTEN, &f->n_lfd);
}

/* ===================================================================== TLS identity */

static int
read_small(const char *path, size_t max, uint8_t **out, size_t *len)
{
    uint8_t *buf = malloc(max + 1);
    int fd, rc;

    *out = NULL;
    if (buf == NULL)
        return CK_ERR_NOMEM;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        free(buf);
        return ck_error_set(CK_ERR_IO, "%s: %s", path, strerror(errno));
    }
    rc = ck_fd_read_all(fd, buf, max + 1, len);
    close(fd);
    if (rc != 0 || *len == 0 || *len > max) {
        ck_free_secret(buf, max + 1);
        return ck_error_set(CK_ERR_IO, "%s: unreadable, empty or too large", path);
    }
    *out = buf;
    return 0;
}

static char *
bio_text(BIO *b, size_t *len)
{
    char *data = NULL, *out;
    long n = BIO_get_mem_data(b, &data);

    if (n <= 0 || (out = malloc((size_t)n + 1)) == NULL)
        return NULL;
    memcpy(out, data, (size_t)n);
    out[n] = '\0';
    *len = (size_t)n;
    return out;
}

/* The PKCS#12 identity (password from tls_password_file, first line; none: empty) as the PEM
 * certificate chain and key libmicrohttpd takes. */
static int
setup_tls(struct front *f)
{
    uint8_t *p12buf = NULL, *pw = NULL;
    size_t p12len = 0, pwlen = 0, n;
    const unsigned char *p;
    PKCS12 *p12 = NULL;
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    STACK_OF(X509) *ca = NULL;
    BIO *bc = NULL, *bk = NULL;
    int rc;

    if (f->cfg->tls_identity == NULL)
        return 0;
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
        return ck_error_set(CK_ERR_UNSUPPORTED, "this libmicrohttpd has no TLS support");
    if ((rc = read_small(f->cfg->tls_identity, 1024 * 1024, &p12buf, &p12len)) != 0)
        goto out;
    if (f->cfg->tls_password_file != NULL) {
        if ((rc = read_small(f->cfg->tls_password_file, 1024, &pw, &pwlen)) != 0)
            goto out;
        pw[strcspn((char *)pw, "\r\n")] = '\0';
    }
    p = p12buf;
    rc = ck_error_set(CK_ERR_CONFIG, "tls_identity %s: not a PKCS#12 file, or a wrong password",
                      f->cfg->tls_identity);
    if ((p12 = d2i_PKCS12(NULL, &p, (long)p12len)) == NULL ||
        !PKCS12_parse(p12, pw != NULL ? (char *)pw : "", &key, &cert, &ca) || key == NULL ||
        cert == NULL)
        goto out;
    if ((bc = BIO_new(BIO_s_mem())) == NULL || (bk = BIO_new(BIO_s_mem())) == NULL ||
        !PEM_write_bio_X509(bc, cert) ||
        !PEM_write_bio_PrivateKey(bk, key, NULL, NULL, 0, NULL, NULL))
        goto out;
    for (int i = 0; ca != NULL && i < sk_X509_num(ca); i++)
        if (!PEM_write_bio_X509(bc, sk_X509_value(ca, i)))
            goto out;
    if ((f->tls_cert = bio_text(bc, &n)) == NULL ||
        (f->tls_key = bio_text(bk, &f->tls_key_len)) == NULL)
        goto out;
    rc = 0;
out:
    if (p12buf != NULL)
        ck_free_secret(p12buf, 1024 * 1024 + 1);
    if (pw != NULL)
        ck_free_secret(pw, 1024 + 1);
    PKCS12_free(p12);
    EVP_PKEY_free(key);
    X509_free(cert);
    sk_X509_pop_free(ca, X509_free);
    BIO_free(bc);
    if (bk != NULL) {
        char *data = NULL;
        long len = BIO_get_mem_data(bk, &data);
        if (len > 0)
            ck_memzero(data, (size_t)len);
        BIO_free(bk);
    }
    return rc;
}

/* ===================================================================== responses */

static void
common_headers(struct MHD_Response *resp)
{
    ck_admin_http_common_headers(resp, true);
}

static enum MHD_Result
respond(struct MHD_Connection *c, int status, json_t *body, const char *mutual,
        const char *allow, const char *cookie)
{
    const struct ck_admin_http_reply r = {
        .content_type = "application/json; charset=utf-8", .mutual = mutual, .allow = allow,
        .cookie = cookie, .hardened = true};

    return ck_admin_http_respond(c, status, body, &r);
}

/* The error body of the API: {"error":{"code","field"?,"message"}} from a prov_error reply. */
static json_t *
error_body_of(json_t *reply)
{
    json_t *e = json_object_get(reply, "error"), *b;

    b = e != NULL ? json_pack("{s:O}", "error", e) : NULL;
    json_decref(reply);
    return b;
}

static json_t *
error_body(int status, const char *code, const char *field, const char *msg)
{
    return error_body_of(prov_error(status, code, field, "%s", msg));
}

static enum MHD_Result
serve_static(struct MHD_Connection *c, const char *url)
{
    const struct prov_asset *a = prov_console_asset(url);

    if (a != NULL) {
        struct MHD_Response *resp = MHD_create_response_from_buffer(
            a->len, (void *)a->data, MHD_RESPMEM_PERSISTENT);
        enum MHD_Result ret;
        if (resp == NULL)
            return MHD_NO;
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, a->content_type);
        MHD_add_response_header(resp, "Content-Security-Policy", prov_console_csp);
        common_headers(resp);
        ret = MHD_queue_response(c, 200, resp);
        MHD_destroy_response(resp);
        return ret;
    }
    return respond(c, 404, error_body(404, "not_found", NULL, "no such resource"), NULL, NULL,
                   NULL);
}

/* ===================================================================== the back channel */

/* The back's reply to msg (new reference): {"status", "body"|"error"}, on the first free
 * channel. A broken channel is fatal for the daemon: the back is killed, the watcher stops the
 * main loop, this gets 503. */
static json_t *
back_call(struct front *f, const json_t *msg)
{
    json_t *r = NULL;
    size_t i = 0;
    int rc;

    pthread_mutex_lock(&f->lock);
    for (;;) {
        if (f->back_broken)
            break;
        for (i = 0; i < f->n_chan && f->chan_busy[i]; i++)
            ;
        if (i < f->n_chan)
            break;
        pthread_cond_wait(&f->chan_free, &f->lock);
    }
    if (!f->back_broken) {
        f->chan_busy[i] = true;
        pthread_mutex_unlock(&f->lock);
        rc = prov_ipc_call(f->chan[i], msg, &r);
        pthread_mutex_lock(&f->lock);
        f->chan_busy[i] = false;
        if (rc != 0) {
            r = NULL;
            if (!f->back_broken) {
                ck_log_err("back process channel: %s; stopping",
                           rc == CK_ERR_NOTFOUND ? "closed by the back process"
                                                 : ck_error_context());
                f->back_broken = true;
                kill(f->back_pid, SIGKILL);
            }
        }
        /* One channel is free again: one waiter can have it (all of them when broken). */
        if (f->back_broken)
            pthread_cond_broadcast(&f->chan_free);
        else
            pthread_cond_signal(&f->chan_free);
    }
    pthread_mutex_unlock(&f->lock);
    if (r == NULL)
        r = prov_error(503, "unavailable", NULL, "the store process is not available");
    return r;
}

static int
reply_status(const json_t *r)
{
    json_int_t s = json_integer_value(json_object_get(r, "status"));

    return s >= 200 && s <= 599 ? (int)s : 500;
}

/* ===================================================================== sessions */

static void
hex_encode(const uint8_t *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static int64_t
now_s(void)
{
    return (int64_t)time(NULL);
}

static void
session_clear(struct session *s)
{
    free(s->principal);
    ck_memzero(s, sizeof(*s));
}

/* The value of cookie COOKIE in the Cookie header, as 32 bytes; -1 if absent or malformed. */
static int
cookie_id(struct MHD_Connection *c, uint8_t id[SESSION_ID_LEN])
{
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_COOKIE);

    while (h != NULL && *h != '\0') {
        while (*h == ' ' || *h == ';')
            h++;
        if (strncmp(h, COOKIE "=", sizeof(COOKIE)) == 0) {
            const char *v = h + sizeof(COOKIE);
            size_t n = strcspn(v, "; ");
            if (n != 2 * SESSION_ID_LEN)
                return -1;
            for (size_t i = 0; i < SESSION_ID_LEN; i++) {
                int hi = ck_hex_digit((unsigned char)v[2 * i]);
                int lo = ck_hex_digit((unsigned char)v[2 * i + 1]);
                if (hi < 0 || lo < 0)
                    return -1;
                id[i] = (uint8_t)(hi << 4 | lo);
            }
            return 0;
        }
        h += strcspn(h, ";");
    }
    return -1;
}

/* The session of this request: its principal (copy) and CSRF token; every slot is compared
 * (constant time) so that the time taken says nothing about which bytes matched. */
static int
session_find(struct front *f, struct MHD_Connection *c, char **who, char csrf[65], size_t *slot)
{
    uint8_t id[SESSION_ID_LEN];
    int64_t now = now_s();
    size_t found = SIZE_MAX, slot_of;

    *who = NULL;
    if (cookie_id(c, id) != 0)
        return -1;
    /* The id names its slot (session_new): one constant-time comparison, not one per slot. */
    slot_of = (size_t)id[0] << 16 | (size_t)id[1] << 8 | id[2];
    pthread_mutex_lock(&f->slock);
    if (slot_of < f->n_sessions) {
        struct session *s = &f->sessions[slot_of];
        bool eq = ck_ct_equal(s->id, id, SESSION_ID_LEN);
        if (s->used && s->expires <= now)
            session_clear(s);
        else if (s->used && eq)
            found = slot_of;
    }
    if (found != SIZE_MAX) {
        *who = strdup(f->sessions[found].principal);
        memcpy(csrf, f->sessions[found].csrf, 65);
        *slot = found;
    }
    pthread_mutex_unlock(&f->slock);
    ck_memzero(id, sizeof(id));
    return *who != NULL ? 0 : -1;
}

/* A new session; the table full of live sessions gives up the one closest to expiry. */
static int
session_new(struct front *f, const char *principal, char cookie_hex[65], char csrf[65],
            int64_t *expires)
{
    uint8_t id[SESSION_ID_LEN], tok[SESSION_ID_LEN];
    size_t pick = SIZE_MAX;
    int64_t now = now_s();
    char *p = strdup(principal);

    if (p == NULL || RAND_bytes(id, sizeof(id)) != 1 || RAND_bytes(tok, sizeof(tok)) != 1) {
        free(p);
        return CK_ERR_CRYPTO;
    }
    pthread_mutex_lock(&f->slock);
    /* Every expired session is wiped here (a login is rare: the whole table is walked), a
     * free slot taken, else the one closest to expiry. */
    for (size_t i = 0; i < f->n_sessions; i++) {
        struct session *s = &f->sessions[i];
        if (s->used && s->expires <= now)
            session_clear(s);
        if (pick != SIZE_MAX && !f->sessions[pick].used)
            continue;
        if (!s->used || pick == SIZE_MAX || s->expires < f->sessions[pick].expires)
            pick = i;
    }
    /* The first SESSION_SLOT_BYTES of the id are the slot (not secret; the other 29 bytes
     * are), so that a request finds its session without comparing against every slot. */
    id[0] = (uint8_t)(pick >> 16);
    id[1] = (uint8_t)(pick >> 8);
    id[2] = (uint8_t)pick;
    if (f->sessions[pick].used)
        ck_log_notice("console sessions: table full (%zu), the oldest is ended", f->n_sessions);
    session_clear(&f->sessions[pick]);
    f->sessions[pick].used = true;
    memcpy(f->sessions[pick].id, id, sizeof(id));
    hex_encode(tok, sizeof(tok), f->sessions[pick].csrf);
    f->sessions[pick].principal = p;
    f->sessions[pick].expires = *expires = now + f->cfg->session_lifetime;
    memcpy(csrf, f->sessions[pick].csrf, 65);
    pthread_mutex_unlock(&f->slock);
    hex_encode(id, sizeof(id), cookie_hex);
    ck_memzero(id, sizeof(id));
    ck_memzero(tok, sizeof(tok));
    return 0;
}

static void
session_end(struct front *f, size_t slot)
{
    pthread_mutex_lock(&f->slock);
    if (slot < f->n_sessions)
        session_clear(&f->sessions[slot]);
    pthread_mutex_unlock(&f->slock);
}

/* A reply that decrypts with the password proves only that whoever answered knew the
 * password, or chose it: a forged KDC could answer any password. The AS exchange therefore asks
 * for a ticket to our own HTTP/ service, and the login counts only if that ticket decrypts with
 * our keytab (an AP-REQ built with it verifies), which only the real KDC could have made. */
static int
verify_login_ticket(struct front *f, const ck_creds *cr)
{
    CK_TICKET *ticket = NULL;
    CK_PRINCIPAL_NAME *cname = NULL;
    ck_ap_req_result res;
    uint8_t *der = NULL;
    size_t der_len = 0;
    int rc;

    memset(&res, 0, sizeof(res));
    if ((rc = ck_asn1_ticket_decode(cr->ticket, cr->ticket_len, &ticket)) != 0 ||
        (rc = ck_asn1_principal_new(cr->client->name_type,
                                    (const char *const *)cr->client->components,
                                    cr->client->n_components, &cname)) != 0 ||
        (rc = ck_ap_req_build(ticket, &cr->session_key, cr->client->realm, cname, 0, NULL,
                              CK_KU_AP_REQ_AUTH, NULL, NULL, NULL, NULL, &der, &der_len)) != 0)
        goto out;
    if ((rc = ck_ap_req_verify(der, der_len, ck_ap_keytab_key_fn, f->kt, NULL, NULL,
                               f->cfg->clockskew, CK_KU_AP_REQ_AUTH, &res)) != 0)
        rc = ck_error_set(CK_ERR_INTEGRITY, "the KDC's ticket for %s does not decrypt with our "
                          "keytab (a forged KDC reply?)", f->login_service);
out:
    ck_ap_req_result_clear(&res);
    ck_asn1_free_der(der, der_len);
    CK_PRINCIPAL_NAME_free(cname);
    CK_TICKET_free(ticket);
    return rc;
}

/* The console logins' service: the keytab's first HTTP/ key of the realm (else its first key
 * of the realm). */
static int
setup_login_keys(struct front *f)
{
    const ck_keytab_entry *pick = NULL;
    size_t n;
    int rc;

    if ((rc = ck_keytab_read(f->cfg->keytab, &f->kt)) != 0)
        return ck_error_set(rc, "keytab %s: %s", f->cfg->keytab, ck_error_context());
    for (size_t i = 0; i < f->kt->n_entries; i++) {
        const ck_principal *p = f->kt->entries[i].principal;
        if (strcmp(p->realm, f->realm) != 0 || p->n_components == 0)
            continue;
        if (pick == NULL || (strcmp(pick->principal->components[0], "HTTP") != 0 &&
                             strcmp(p->components[0], "HTTP") == 0))
            pick = &f->kt->entries[i];
    }
    if (pick == NULL)
        return ck_error_set(CK_ERR_CONFIG, "keytab %s: no key of realm %s", f->cfg->keytab,
                            f->realm);
    return ck_principal_unparse_buf(pick->principal, CK_PRINCIPAL_UNPARSE_NO_REALM,
                                    f->login_service, sizeof(f->login_service), &n);
}

/* The console password check: an AS exchange with the KDC for the principal (our own client,
 * lib/krb). Success means the KDC accepted the password and its reply decrypted with it. */
static int
password_check(struct front *f, const char *principal, const char *password, char *canon,
               size_t canon_size)
{
    ck_principal *p = NULL;
    ck_creds *cr = NULL;
    ck_kdc_transport t = {.kdcs = (const char *const *)f->kdcs, .n_kdcs = f->n_kdcs,
                          .timeout_ms = 1000, .max_timeout_ms = LOGIN_TIMEOUT_MS,
                          .max_tries = 2};
    ck_as_params ap = {.realm = f->realm, .transport = &t, .lifetime = 300};
    size_t n;
    int rc;

    if ((rc = ck_principal_parse(principal, f->realm, 0, &p)) != 0)
        return rc;
    if (strcmp(p->realm, f->realm) != 0 ||
        ck_principal_unparse_buf(p, 0, canon, canon_size, &n) != 0) {
        ck_principal_free(p);
        return CK_ERR_INVAL;
    }
    ck_principal_free(p);
    ap.client = canon;
    ap.service = f->login_service;
    if ((rc = ck_client_as_password(&ap, password, &cr)) == 0)
        rc = verify_login_ticket(f, cr);
    ck_creds_free(cr);
    return rc;
}

/* ===================================================================== logging */

static void
log_request(struct MHD_Connection *c, const char *who, const char *method, const char *url,
            const struct prov_route *rt, int status, const char *detail, int64_t ms)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char addr[CK_NET_ADDRSTRLEN] = "?", who_s[256], url_s[160], op_s[48], d_s[320];
    bool write = strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0;

    if (ci != NULL && ci->client_addr != NULL)
        ck_net_addr_format(ci->client_addr, addr, sizeof(addr));
    ck_log(status >= 400 || write ? LOG_NOTICE : LOG_INFO,
           "request client=%s principal=%s method=%s path=%s op=%s status=%d time=%lldms%s%s",
           addr, ck_admin_log_safe(who_s, sizeof(who_s), who), ck_admin_log_safe(op_s, sizeof(op_s), method),
           ck_admin_log_safe(url_s, sizeof(url_s), url),
           ck_admin_log_safe(op_s, sizeof(op_s),
                    rt != NULL && rt->op != NULL
                        ? (rt->action != NULL ? rt->action : rt->op) : "-"),
           status, (long long)ms, detail != NULL && detail[0] != '\0' ? ": " : "",
           ck_admin_log_safe(d_s, sizeof(d_s), detail != NULL ? detail : ""));
}

static int64_t
mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ===================================================================== handlers */

static const char *
query_fn(void *arg, const char *key)
{
    return MHD_lookup_connection_value(arg, MHD_GET_ARGUMENT_KIND, key);
}

/* A browser names the page that sent a request in Origin: a cross-site page must not drive the
 * API with the operator's ambient credentials (the cookie is SameSite=Strict; a browser may
 * also send Negotiate on its own). Non-browser clients send no Origin. */
static bool
origin_ok(struct MHD_Connection *c)
{
    const char *o = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    const char *p;

    if (o == NULL)
        return true;
    if (h == NULL)
        return false;
    if ((p = strstr(o, "://")) == NULL)
        return false;
    return strcmp(p + 3, h) == 0;
}

/* POST/GET/DELETE /api/v1/session. */
static enum MHD_Result
handle_session(struct front *f, struct MHD_Connection *c, const char *method, const char *url,
               const struct ck_admin_http_body *req, const struct prov_route *rt, int64_t t0)
{
    char *who = NULL, csrf[65] = "", cookie[65], hdr[256], canon[CK_PRINCIPAL_MAX_TEXT];
    char *principal = NULL, *password = NULL, field[64], why[256];
    size_t slot = SIZE_MAX;
    int64_t expires = 0;
    enum MHD_Result ret;
    int st, rc;

    if (strcmp(method, "POST") == 0) {
        if (!origin_ok(c)) {
            log_request(c, NULL, method, url, rt, 403, "cross-origin login", mono_ms() - t0);
            return respond(c, 403, error_body(403, "forbidden", NULL, "cross-origin request"),
                           NULL, NULL, NULL);
        }
        if ((st = prov_api_login_body(req->body != NULL ? req->body : "", req->len, &principal,
                                      &password, field, sizeof(field), why,
                                      sizeof(why))) != 0) {
            log_request(c, NULL, method, url, rt, st, why, mono_ms() - t0);
            return respond(c, st,
                           error_body(st, st == 413 ? "too_large" : field[0] != '\0'
                                          ? "invalid_field" : "invalid_json",
                                      field[0] != '\0' ? field : NULL, why),
                           NULL, NULL, NULL);
        }
        rc = password_check(f, principal, password, canon, sizeof(canon));
        ck_free_secret(password, strlen(password));
        if (rc != 0) {
            /* The client learns nothing of which part was wrong; the log says more. */
            snprintf(why, sizeof(why), "console login refused: %s", ck_strerror(rc));
            log_request(c, principal, method, url, rt, 401, why, mono_ms() - t0);
            free(principal);
            return respond(c, 401, error_body(401, "unauthenticated", NULL,
                                              "wrong principal or password"),
                           NULL, NULL, NULL);
        }
        free(principal);
        if (session_new(f, canon, cookie, csrf, &expires) != 0) {
            log_request(c, canon, method, url, rt, 500, "session", mono_ms() - t0);
            return respond(c, 500, error_body(500, "internal", NULL, "session"), NULL, NULL,
                           NULL);
        }
        snprintf(hdr, sizeof(hdr), COOKIE "=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%lld%s",
                 cookie, (long long)f->cfg->session_lifetime,
                 f->cfg->tls_identity != NULL ? "; Secure" : "");
        ck_memzero(cookie, sizeof(cookie));
        log_request(c, canon, method, url, rt, 200, "console session opened", mono_ms() - t0);
        ret = respond(c, 200, json_pack("{s:s,s:s,s:I}", "principal", canon, "csrf", csrf,
                                        "expires", (json_int_t)expires),
                      NULL, NULL, hdr);
        ck_memzero(hdr, sizeof(hdr));
        ck_memzero(csrf, sizeof(csrf));
        return ret;
    }
    if (session_find(f, c, &who, csrf, &slot) != 0) {
        log_request(c, NULL, method, url, rt, 401, "no session", mono_ms() - t0);
        return respond(c, 401, error_body(401, "unauthenticated", NULL, "no console session"),
                       NULL, NULL, NULL);
    }
    if (strcmp(method, "DELETE") == 0) {
        const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-CK-CSRF");
        if (h == NULL || strlen(h) != 64 || !ck_ct_equal(h, csrf, 64)) {
            log_request(c, who, method, url, rt, 403, "CSRF token missing or wrong",
                        mono_ms() - t0);
            free(who);
            return respond(c, 403, error_body(403, "forbidden", "X-CK-CSRF",
                                              "X-CK-CSRF: missing or wrong"), NULL, NULL, NULL);
        }
        session_end(f, slot);
        log_request(c, who, method, url, rt, 200, "console session closed", mono_ms() - t0);
        free(who);
        return respond(c, 200, json_pack("{s:b}", "logged_out", 1), NULL, NULL,
                       COOKIE "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    }
    log_request(c, who, method, url, rt, 200, "", mono_ms() - t0);
    ret = respond(c, 200, json_pack("{s:s,s:s,s:s}", "principal", who, "csrf", csrf, "auth",
                                    "session"), NULL, NULL, NULL);
    free(who);
    ck_memzero(csrf, sizeof(csrf));
    return ret;
}

/* GET /api/v1/lines: the back answers at once; the wait happens here, between looks, so that
 * the back (one request at a time) is never held by a poll. */
static json_t *
lines_poll(struct front *f, json_t *msg)
{
    json_t *req = json_object_get(msg, "req");
    int64_t wait = json_integer_value(json_object_get(req, "wait"));
    int64_t after = json_integer_value(json_object_get(req, "after"));
    int64_t deadline = mono_ms() + wait * 1000;
    json_t *r;

    for (;;) {
        r = back_call(f, msg);
        if (reply_status(r) != 200 || after == 0 || mono_ms() >= deadline ||
            json_array_size(json_object_get(json_object_get(r, "body"), "lines")) > 0 ||
            json_is_true(json_object_get(json_object_get(r, "body"), "full")))
            return r;
        json_decref(r);
        poll(NULL, 0, LINES_POLL_MS);
    }
}

static enum MHD_Result
handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
       const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    struct front *f = cls;
    struct ck_admin_http_body *req = NULL;
    struct prov_route rt;
    char why[512] = "", *who = NULL, *mutual = NULL, csrf[65] = "";
    json_t *msg = NULL, *reply = NULL, *err = NULL;
    enum MHD_Result ret;
    int status, rc;
    unsigned line = 0;
    int64_t t0 = mono_ms();
    size_t slot;
    bool by_session = false;

    (void)version;
    switch (ck_admin_http_body(c, con_cls, upload_data, upload_data_size, f->cfg->max_body,
                               &req)) {
    case CK_ADMIN_BODY_MORE:
        return MHD_YES;
    case CK_ADMIN_BODY_NOMEM:
        return MHD_NO;
    case CK_ADMIN_BODY_TOO_LARGE:
        log_request(c, NULL, method, url, NULL, 413, "body too large", mono_ms() - t0);
        snprintf(why, sizeof(why), "request body larger than %zu bytes", f->cfg->max_body);
        return respond(c, 413, error_body(413, "too_large", NULL, why), NULL, NULL, NULL);
    default:
        break;
    }
    if ((status = prov_route(method, url, &rt, why, sizeof(why))) != 0 &&
        rt.kind != PROV_R_BACK) {
        /* Unknown paths: 404 before authentication would tell the API's shape to anyone, but
         * the shape is public (docs); what is protected is the data. */
        log_request(c, NULL, method, url, &rt, status, why, mono_ms() - t0);
        return respond(c, status,
                       status == 405 ? error_body(405, "method_not_allowed", NULL, rt.allow)
                       : status == 400 ? error_body(400, "invalid_field", NULL, why)
                                       : error_body(404, "not_found", NULL, why),
                       NULL, status == 405 ? rt.allow : NULL, NULL);
    }
    if (status == 0 && rt.kind == PROV_R_STATIC)
        return serve_static(c, url);
    if (status == 0 && rt.kind == PROV_R_SESSION)
        return handle_session(f, c, method, url, req, &rt, t0);

    /* Authentication: Negotiate, else the console session cookie. */
    rc = ck_spnego_accept(&f->acc,
                          MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                      MHD_HTTP_HEADER_AUTHORIZATION),
                          &who, &mutual, why, sizeof(why));
    if (rc > 0 && session_find(f, c, &who, csrf, &slot) == 0) {
        rc = 0;
        by_session = true;
    }
    if (rc != 0) {
        log_request(c, NULL, method, url, &rt, 401,
                    rc > 0 ? "no Negotiate credentials or session" : why, mono_ms() - t0);
        return respond(c, 401, error_body(401, "unauthenticated", NULL,
                                          rc > 0 ? "authenticate with HTTP Negotiate (curl "
                                                   "--negotiate -u :) or a console session"
                                                 : "Negotiate authentication failed"),
                       NULL, NULL, NULL);
    }
    if (status != 0) { /* a back route refused by its path (bad MAC, bad id) */
        err = error_body(400, "invalid_field", strncmp(why, "mac", 3) == 0 ? "mac" : "customer",
                         why);
        goto refuse;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-CK-CSRF");
        if (!origin_ok(c)) {
            status = 403;
            snprintf(why, sizeof(why), "cross-origin request");
            err = error_body(403, "forbidden", NULL, why);
            goto refuse;
        }
        if (by_session && (h == NULL || strlen(h) != 64 || !ck_ct_equal(h, csrf, 64))) {
            status = 403;
            snprintf(why, sizeof(why), "X-CK-CSRF: missing or wrong");
            err = error_body(403, "forbidden", "X-CK-CSRF", why);
            goto refuse;
        }
    }
    {
        const char *unknown = ck_admin_http_unknown_query(c, rt.query);
        if (unknown != NULL) {
            status = 400;
            snprintf(why, sizeof(why), "unknown query parameter \"%.64s\"", unknown);
            err = error_body(400, "invalid_field", NULL, why);
            goto refuse;
        }
    }
    pthread_mutex_lock(&f->lock);
    rc = ck_admin_acl_check(f->acl, who, NULL, rt.perm, &line);
    pthread_mutex_unlock(&f->lock);
    if (!rc) {
        char letters[16];
        status = 403;
        snprintf(why, sizeof(why), "not permitted by the ACL (needs '%s'%s)",
                 ck_admin_perm_letters(rt.perm, letters, sizeof(letters)),
                 line != 0 ? ", refused by an entry" : ", no matching entry");
        err = error_body(403, "forbidden", NULL, why);
        goto refuse;
    }
    if ((status = prov_api_build(&rt, who, query_fn, c, req->body, req->len,
                                 MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                             "Idempotency-Key"),
                                 &msg, &reply)) != 0) {
        const json_t *e = json_object_get(reply, "error");
        snprintf(why, sizeof(why), "%s", json_string_value(json_object_get(e, "message")) != NULL
                                             ? json_string_value(json_object_get(e, "message"))
                                             : "invalid request");
        err = error_body_of(reply);
        reply = NULL;
        goto refuse;
    }
    reply = strcmp(rt.op, "lines") == 0 ? lines_poll(f, msg) : back_call(f, msg);
    status = reply_status(reply);
    {
        const json_t *e = json_object_get(reply, "error");
        const json_t *b = json_object_get(reply, "body");
        log_request(c, who, method, url, &rt, status,
                    e != NULL ? json_string_value(json_object_get(e, "message"))
                    : json_is_true(json_object_get(b, "replayed")) ? "replayed" : "",
                    mono_ms() - t0);
        ret = respond(c, status, e != NULL ? error_body_of(reply) : json_incref((json_t *)b),
                      mutual, NULL, NULL);
        if (e == NULL)
            json_decref(reply);
    }
    goto done;
refuse:
    log_request(c, who, method, url, &rt, status, why, mono_ms() - t0);
    ret = respond(c, status, err, mutual, NULL, NULL);
done:
    json_decref(msg);
    free(who);
    free(mutual);
    ck_memzero(csrf, sizeof(csrf));
    return ret;
}

static int
start_http(struct front *f)
{
    const struct ck_admin_http_server srv = {
        .handler = handle, .arg = f, .thread_per_connection = true,
        .max_connections = f->cfg->max_connections, .timeout = f->cfg->timeout,
        .header_memory = HEADER_MEMORY, .tls_cert = f->tls_cert, .tls_key = f->tls_key,
        .tls_hint = "; check the TLS identity"};

    return ck_admin_http_start(&srv, f->lfd, f->n_lfd, f->mhd);
}

/* ===================================================================== setup */

static int
setup_kdcs(struct front *f)
{
    const char *p = f->cfg->kdc;

    if (p == NULL) {
        /* The realm's KDCs in krb5.conf (as MIT's tools find them), looked up once. */
        const char *k[8];
        char buf[2048];
        size_t n = 0;
        if (f->realm[0] == '\0')
            return 0; /* --check: the realm is the store's, not known here */
        if (ck_krb5conf_kdcs(f->realm, buf, sizeof(buf), k, 8, &n) != 0 || n == 0) {
            ck_log_warn("no KDC for realm %s in krb5.conf and no kdc key: console logins "
                        "will fail", f->realm);
            return 0;
        }
        if ((f->kdcs = calloc(n, sizeof(*f->kdcs))) == NULL)
            return CK_ERR_NOMEM;
        for (size_t i = 0; i < n; i++)
            if ((f->kdcs[f->n_kdcs++] = strdup(k[i])) == NULL)
                return CK_ERR_NOMEM;
        return 0;
    }
    while (*p != '\0') {
        size_t n;
        char **nk;
        while (*p == ' ' || *p == ',')
            p++;
        if ((n = strcspn(p, " ,")) == 0)
            break;
        if (f->n_kdcs == 8)
            return ck_error_set(CK_ERR_CONFIG, "kdc: at most 8 addresses");
        if ((nk = realloc(f->kdcs, (f->n_kdcs + 1) * sizeof(*nk))) == NULL)
            return CK_ERR_NOMEM;
        f->kdcs = nk;
        if ((f->kdcs[f->n_kdcs] = strndup(p, n)) == NULL)
            return CK_ERR_NOMEM;
        f->n_kdcs++;
        p += n;
    }
    return 0;
}

static void
front_free(struct front *f)
{
    ck_spnego_acceptor_free(&f->acc);
    ck_admin_acl_free(f->acl);
    free(f->tls_cert);
    if (f->tls_key != NULL)
        ck_free_secret(f->tls_key, f->tls_key_len + 1);
    ck_keytab_free(f->kt);
    for (size_t i = 0; i < f->n_kdcs; i++)
        free(f->kdcs[i]);
    free(f->kdcs);
    for (size_t i = 0; f->sessions != NULL && i < f->n_sessions; i++)
        session_clear(&f->sessions[i]);
    free(f->sessions);
}

int
prov_listen_validate(const struct prov_config *cfg)
{
    struct front f = {.cfg = cfg};

    return setup_listen(&f, false);
}

int
prov_front_check(const struct prov_config *cfg)
{
    struct front f = {.cfg = cfg};
    struct ck_admin_acl *acl = NULL;
    int rc;

    /* The realm comes from the store later; names without one are checked as local. */
    if ((rc = ck_admin_acl_load(cfg->acl_file, cfg->realm != NULL ? cfg->realm : "LOCAL",
                                &acl)) != 0)
        return rc;
    printf("acl: %s (%zu entries)\n", cfg->acl_file, ck_admin_acl_entries(acl));
    ck_admin_acl_free(acl);
    if ((rc = ck_spnego_acceptor_init(cfg->keytab, PROV_PROG, &f.acc)) != 0)
        goto out;
    printf("keytab: %s\n", cfg->keytab);
    if ((rc = setup_listen(&f, false)) != 0 || (rc = setup_tls(&f)) != 0 ||
        (rc = setup_kdcs(&f)) != 0)
        goto out;
    for (size_t i = 0; i < (cfg->n_listen > 0 ? cfg->n_listen : 1); i++)
        printf("listen: %s%s\n", cfg->n_listen > 0 ? cfg->listen[i] : PROV_DEFAULT_HTTP,
               cfg->tls_identity != NULL ? " (TLS)" : " (loopback, no TLS)");
out:
    front_free(&f);
    return rc;
}

/* ===================================================================== SIGHUP */

static int
reload(void *arg, char *status, size_t status_size)
{
    struct front *f = arg;
    struct prov_config nc;
    struct ck_admin_acl *acl = NULL;
    json_t *m, *r;
    int rc;

    ck_log_notice("SIGHUP: re-reading the configuration");
    if ((rc = prov_config_load(f->live->opts, &nc)) != 0 ||
        (rc = ck_admin_acl_load(nc.acl_file, f->realm, &acl)) != 0 ||
        (rc = ck_log_reconfigure(nc.log.dest, nc.log.path, nc.log_level)) != 0) {
        ck_log_err("SIGHUP: configuration refused, the running one is kept: %s",
                   ck_error_context());
        snprintf(status, status_size, "reload refused: %s", ck_error_context());
        ck_admin_acl_free(acl);
        prov_config_free(&nc);
        return rc;
    }
    pthread_mutex_lock(&f->lock);
    ck_admin_acl_free(f->acl);
    f->acl = acl;
    pthread_mutex_unlock(&f->lock);
    f->live->log = nc.log;
    f->live->log_level = nc.log_level;
    if ((m = json_pack("{s:s}", "op", "reload")) != NULL) {
        r = back_call(f, m);
        if (reply_status(r) != 200)
            ck_log_err("SIGHUP: the back process keeps its previous log");
        json_decref(r);
        json_decref(m);
    }
    ck_log_notice("SIGHUP: ACL %s (%zu entries) and log reloaded (other keys need a restart)",
                  nc.acl_file, ck_admin_acl_entries(f->acl));
    snprintf(status, status_size, "serving; reloaded");
    prov_config_free(&nc);
    return 0;
}

/* ===================================================================== run */

static int
fetch_realm(struct front *f)
{
    json_t *m = json_pack("{s:s}", "op", "realm"), *r;
    const char *realm;
    int rc = 0;

    if (m == NULL)
        return CK_ERR_NOMEM;
    r = back_call(f, m);
    json_decref(m);
    realm = json_string_value(json_object_get(json_object_get(r, "body"), "realm"));
    if (realm == NULL || ck_strlcpy(f->realm, realm, sizeof(f->realm)) >= sizeof(f->realm))
        rc = ck_error_set(CK_ERR_IO, "the back process did not name the realm");
    json_decref(r);
    return rc;
}

/* The back's other workers' channels (cfg->workers - 1), once at start. */
static int
fetch_channels(struct front *f)
{
    json_t *m, *r;
    json_int_t n;
    int rc;

    if (f->cfg->workers <= 1)
        return 0;
    if ((m = json_pack("{s:s}", "op", "channels")) == NULL)
        return CK_ERR_NOMEM;
    r = back_call(f, m);
    json_decref(m);
    n = json_integer_value(json_object_get(json_object_get(r, "body"), "channels"));
    if (reply_status(r) != 200 || n < 0 || (size_t)n + 1 > PROV_MAX_WORKERS) {
        const char *why = json_string_value(json_object_get(json_object_get(r, "error"),
                                                            "message"));
        rc = ck_error_set(CK_ERR_IO, "the back process started no request workers: %s",
                          why != NULL ? why : "no answer");
        json_decref(r);
        return rc;
    }
    json_decref(r);
    if (n > 0 && (rc = prov_ipc_recv_fds(f->back_fd, f->chan + 1, (size_t)n)) != 0)
        return rc;
    f->n_chan = 1 + (size_t)n;
    return 0;
}

int
prov_front_run(struct prov_config *cfg, int sfd, int back_fd, int back_pid)
{
    struct front f = {.cfg = cfg, .live = cfg, .back_fd = back_fd, .back_pid = back_pid};
    struct ck_admin_watch w = {0}; /* the back hanging up stops the daemon */
    int status = 1, rc, st;

    pthread_mutex_init(&f.lock, NULL);
    pthread_mutex_init(&f.slock, NULL);
    pthread_cond_init(&f.chan_free, NULL);
    f.chan[0] = back_fd;
    f.n_chan = 1;
    for (size_t i = 0; i < PROV_MAX_LISTEN; i++)
        f.lfd[i] = -1;
    f.n_sessions = cfg->max_sessions;
    if ((f.sessions = calloc(f.n_sessions, sizeof(*f.sessions))) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "sessions");
        goto fail;
    }
    if ((rc = fetch_realm(&f)) != 0 || (rc = fetch_channels(&f)) != 0 ||
        (rc = ck_admin_acl_load(cfg->acl_file, f.realm, &f.acl)) != 0 ||
        (rc = ck_spnego_acceptor_init(cfg->keytab, PROV_PROG, &f.acc)) != 0 ||
        (rc = setup_login_keys(&f)) != 0 || (rc = setup_tls(&f)) != 0 ||
        (rc = setup_kdcs(&f)) != 0 || (rc = setup_listen(&f, true)) != 0)
        goto fail;
    (void)prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    if (cfg->user != NULL) {
        struct ck_daemon_user u;
        if ((rc = ck_daemon_user_lookup(cfg->user, &u)) != 0 ||
            (rc = ck_daemon_drop_privileges(&u)) != 0)
            goto fail;
    }
    if ((rc = ck_log_reconfigure(cfg->log.dest, cfg->log.path, cfg->log_level)) != 0)
        goto fail;
    if ((rc = start_http(&f)) != 0)
        goto fail;
    if ((rc = ck_admin_watch_start(&w, back_fd)) != 0)
        goto fail;
    ck_log_notice("serving realm %s (ACL %s, %zu entries; back process %d)", f.realm,
                  cfg->acl_file, ck_admin_acl_entries(f.acl), back_pid);
    if (ck_daemon_notify("READY=1\nSTATUS=serving realm %s", f.realm) != 0)
        ck_log_warn("%s", ck_error_context());
    status = ck_daemon_loop(sfd, reload, &f) < 0 || atomic_load(&w.fired) ? 1 : 0;
    goto stop;
fail:
    ck_log_err("cannot start: %s", ck_error_context());
    if (cfg->log.dest != CK_LOG_STDERR)
        fprintf(stderr, PROV_PROG ": cannot start: %s\n", ck_error_context());
stop:
    for (size_t i = 0; i < PROV_MAX_LISTEN; i++) {
        if (f.mhd[i] != NULL)
            MHD_stop_daemon(f.mhd[i]);
        if (f.lfd[i] >= 0)
            close(f.lfd[i]);
    }
    ck_admin_watch_stop(&w);
    for (size_t i = 1; i < f.n_chan; i++)
        close(f.chan[i]);
    close(back_fd); /* the back closes the store, stops its servers and the signer, exits */
    if (back_pid > 0 && waitpid(back_pid, &st, 0) == back_pid && st != 0 && status == 0)
        ck_log_warn("the back process exited with status %d", st);
    front_free(&f);
    pthread_mutex_destroy(&f.lock);
    pthread_mutex_destroy(&f.slock);
    pthread_cond_destroy(&f.chan_free);
    return status;
}
