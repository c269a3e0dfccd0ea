/* Shared pieces of the daemons' HTTP fronts (admin/httpd.h). */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin/admin_int.h"
#include "admin/httpd.h"
#include "admin/spnego.h"
#include "cablekey/error.h"
#include "cablekey/log.h"
#include "cablekey/net.h"
#include "cablekey/util.h"

int
ck_admin_listen_resolve(const char *spec, uint16_t default_port, bool tls,
                        const char *cleartext_why, struct sockaddr_storage *ss, socklen_t *sslen)
{
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE,
                             .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    char host[256], port_s[8];
    uint16_t port;
    int rc;

    if ((rc = ck_net_parse_listen(spec, default_port, host, sizeof(host), &port)) != 0)
        return ck_error_set(CK_ERR_CONFIG, "listen \"%s\": %s", spec, ck_error_context());
    snprintf(port_s, sizeof(port_s), "%u", port);
    if (host[0] == '\0' || getaddrinfo(host, port_s, &hints, &ai) != 0 || ai == NULL)
        return ck_error_set(CK_ERR_CONFIG, "listen \"%s\": give a numeric address "
                            "(127.0.0.1, [::1], or a local address with TLS)", spec);
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *sslen = ai->ai_addrlen;
    freeaddrinfo(ai);
    if (!tls && !ck_net_addr_is_loopback((struct sockaddr *)ss))
        return ck_error_set(CK_ERR_CONFIG,
                            "listen \"%s\": not a loopback address and TLS is not configured. "
                            "%s, or listen on 127.0.0.1 / [::1]", spec, cleartext_why);
    return 0;
}

int
ck_admin_listen_bind(const struct sockaddr_storage *ss, socklen_t sslen, int *fd_out)
{
    char buf[CK_NET_ADDRSTRLEN];
    int fd, one = 1;

    fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return ck_error_set(CK_ERR_IO, "socket: %s", strerror(errno));
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ss->ss_family == AF_INET6)
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)ss, sslen) != 0 || listen(fd, 64) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return ck_error_set(CK_ERR_IO, "listen on %s: %s",
                            ck_net_addr_format((const struct sockaddr *)ss, buf, sizeof(buf)),
                            strerror(e));
    }
    *fd_out = fd;
    return 0;
}

int
ck_admin_pct_decode(char *s)
{
    char *o = s;

    for (char *p = s; *p != '\0'; p++) {
        if (*p == '%') {
            int hi = ck_hex_digit((unsigned char)p[1]);
            int lo = hi < 0 ? -1 : ck_hex_digit((unsigned char)p[2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return -1;
            *o++ = (char)(hi << 4 | lo);
            p += 2;
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
    return 0;
}

/* libmicrohttpd's own messages (TLS handshake failures, connection limits, oversized headers)
 * go to our log at info level, not to stderr. */
void
ck_admin_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    size_t n;

    (void)cls;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    for (char *p = msg; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    ck_log_info("http: %s", msg);
}

const char *
ck_admin_log_safe(char *dst, size_t size, const char *src)
{
    ck_strlcpy(dst, src != NULL ? src : "-", size);
    for (char *p = dst; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return dst;
}

int
ck_admin_http_body(struct MHD_Connection *c, void **con_cls, const char *upload,
                   size_t *upload_size, size_t max, struct ck_admin_http_body **out)
{
    struct ck_admin_http_body *req = *con_cls;

    *out = req;
    if (req == NULL) {
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        int64_t n;

        if ((req = calloc(1, sizeof(*req))) == NULL)
            return CK_ADMIN_BODY_NOMEM;
        *con_cls = *out = req;
        /* Refuse a declared oversize body before reading it (and before 100-continue). */
        if (cl != NULL && (ck_parse_int64(cl, 0, INT64_MAX, &n) != 0 || (uint64_t)n > max)) {
            req->too_large = true;
            return CK_ADMIN_BODY_TOO_LARGE;
        }
        return CK_ADMIN_BODY_MORE;
    }
    if (*upload_size > 0) {
        if (!req->too_large && req->len + *upload_size <= max) {
            char *nb = realloc(req->body, req->len + *upload_size + 1);
            if (nb == NULL)
                return CK_ADMIN_BODY_NOMEM;
            req->body = nb;
            memcpy(req->body + req->len, upload, *upload_size);
            req->len += *upload_size;
            req->body[req->len] = '\0';
        } else {
            req->too_large = true;
        }
        *upload_size = 0;
        return CK_ADMIN_BODY_MORE;
    }
    return req->too_large ? CK_ADMIN_BODY_TOO_LARGE : CK_ADMIN_BODY_DONE;
}

void
ck_admin_http_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                        enum MHD_RequestTerminationCode t)
{
    struct ck_admin_http_body *req = *con_cls;

    (void)cls;
    (void)c;
    (void)t;
    if (req == NULL)
        return;
    if (req->body != NULL)
        ck_free_secret(req->body, req->len + 1); /* may hold a password */
    free(req);
    *con_cls = NULL;
}

size_t
ck_admin_http_no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return strlen(s);
}

struct query_check {
    const char *const *allowed;
    const char *unknown;
};

static enum MHD_Result
query_iter(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    struct query_check *qc = cls;

    (void)kind;
    if (value == NULL) { /* "?pattern" alone must not mean "no pattern" */
        qc->unknown = key;
        return MHD_NO;
    }
    for (size_t i = 0; qc->allowed[i] != NULL; i++)
        if (strcmp(key, qc->allowed[i]) == 0)
            return MHD_YES;
    qc->unknown = key;
    return MHD_NO;
}

const char *
ck_admin_http_unknown_query(struct MHD_Connection *c, const char *const *allowed)
{
    struct query_check qc = {.allowed = allowed};

    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, query_iter, &qc);
    return qc.unknown;
}

static void *
watch_back(void *arg)
{
    struct ck_admin_watch *w = arg;
    struct pollfd p[2] = {{.fd = w->fd, .events = 0}, {.fd = w->stop[0], .events = POLLIN}};

    for (;;) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return NULL;
        }
        if (p[1].revents != 0)
            return NULL;
        if (p[0].revents & (POLLHUP | POLLERR | POLLNVAL)) {
            ck_log_err("the back (store) process is gone; stopping");
            atomic_store(&w->fired, true);
            kill(getpid(), SIGTERM);
            return NULL;
        }
    }
}

int
ck_admin_watch_start(struct ck_admin_watch *w, int fd)
{
    int rc;

    w->fd = fd;
    atomic_store(&w->fired, false);
    if (pipe2(w->stop, O_CLOEXEC) != 0)
        return ck_error_set(CK_ERR_IO, "pipe: %s", strerror(errno));
    if ((rc = pthread_create(&w->thread, NULL, watch_back, w)) != 0) {
        close(w->stop[0]);
        close(w->stop[1]);
        return ck_error_set(CK_ERR_IO, "pthread_create: %s", strerror(rc));
    }
    w->running = true;
    return 0;
}

void
ck_admin_watch_stop(struct ck_admin_watch *w)
{
    if (!w->running)
        return;
    (void)!write(w->stop[1], "x", 1);
    pthread_join(w->thread, NULL);
    close(w->stop[0]);
    close(w->stop[1]);
    w->running = false;
}

void
ck_admin_http_common_headers(struct MHD_Response *resp, bool hardened)
{
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (hardened) {
        MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
        MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    }
}

enum MHD_Result
ck_admin_http_respond(struct MHD_Connection *c, int status, json_t *body,
                      const struct ck_admin_http_reply *r)
{
    static const struct ck_admin_http_reply none;
    struct MHD_Response *resp;
    enum MHD_Result ret;
    char *text = NULL, hdr[CK_SPNEGO_MAX_TOKEN + 16];
    size_t len = 0;

    if (r == NULL)
        r = &none;
    if (body != NULL && ck_admin_json_dump(body, &text, &len) == 0) {
        text[len] = '\n'; /* the NUL's place: curl output ends with a newline */
        resp = MHD_create_response_from_buffer(len + 1, text, MHD_RESPMEM_MUST_FREE);
    } else {
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        free(text);
    }
    json_decref(body);
    if (resp == NULL)
        return MHD_NO;
    if (status != 204)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                r->content_type != NULL ? r->content_type : "application/json");
    ck_admin_http_common_headers(resp, r->hardened);
    if (status == 401) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Negotiate");
    } else if (r->mutual != NULL) {
        snprintf(hdr, sizeof(hdr), "Negotiate %s", r->mutual);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, hdr);
    }
    if (r->allow != NULL)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    if (r->cookie != NULL)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_SET_COOKIE, r->cookie);
    ret = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

int
ck_admin_listen_setup(const struct ck_admin_listen_set *ls, bool bind_them, int *lfd,
                      size_t max, size_t *n_lfd)
{
    bool dflt = ls->n_specs == 0;
    const char *const *specs = dflt ? ls->defaults : ls->specs;
    size_t n = dflt ? ls->n_defaults : ls->n_specs;
    char buf[CK_NET_ADDRSTRLEN];

    for (size_t i = 0; i < n; i++) {
        struct sockaddr_storage ss;
        socklen_t sslen = 0;
        int rc, fd = -1;

        if ((rc = ck_admin_listen_resolve(specs[i], ls->default_port, ls->tls,
                                          ls->cleartext_why, &ss, &sslen)) != 0)
            return rc;
        if (!bind_them)
            continue;
        if (*n_lfd >= max)
            return ck_error_set(CK_ERR_LIMIT, "more than %zu listen addresses", max);
        rc = ck_admin_listen_bind(&ss, sslen, &fd);
        if (rc != 0 && dflt && ss.ss_family == AF_INET6) {
            ck_log_notice("no IPv6 loopback (%s); listening on IPv4 only", ck_error_context());
            continue;
        }
        if (rc != 0)
            return rc;
        lfd[(*n_lfd)++] = fd;
        ck_log_info("listening on %s%s",
                    ck_net_addr_format((struct sockaddr *)&ss, buf, sizeof(buf)),
                    ls->tls ? " (TLS)" : ls->cleartext_note);
    }
    return 0;
}

int
ck_admin_http_start(const struct ck_admin_http_server *srv, int *lfd, size_t n,
                    struct MHD_Daemon **mhd)
{
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;

    if (srv->thread_per_connection)
        flags |= MHD_USE_THREAD_PER_CONNECTION;
    if (srv->tls_cert != NULL)
        flags |= MHD_USE_TLS;
    for (size_t i = 0; i < n; i++) {
        mhd[i] = MHD_start_daemon(
            flags, 0, NULL, NULL, srv->handler, srv->arg, MHD_OPTION_EXTERNAL_LOGGER,
            ck_admin_mhd_log, NULL, MHD_OPTION_LISTEN_SOCKET, lfd[i],
            MHD_OPTION_CONNECTION_LIMIT, srv->max_connections,
            MHD_OPTION_CONNECTION_TIMEOUT, srv->timeout,
            MHD_OPTION_CONNECTION_MEMORY_LIMIT, srv->header_memory,
            MHD_OPTION_NOTIFY_COMPLETED, ck_admin_http_completed, srv->arg,
            MHD_OPTION_UNESCAPE_CALLBACK, ck_admin_http_no_unescape, NULL,
            srv->tls_cert != NULL ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, srv->tls_cert,
            MHD_OPTION_HTTPS_MEM_KEY, srv->tls_key, MHD_OPTION_END);
        if (mhd[i] == NULL)
            return ck_error_set(CK_ERR_IO, "cannot start the HTTP server (libmicrohttpd)%s",
                                srv->tls_cert != NULL && srv->tls_hint != NULL ? srv->tls_hint
                                                                               : "");
        lfd[i] = -1; /* libmicrohttpd owns it now */
    }
    return 0;
}
