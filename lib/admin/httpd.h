/* Pieces shared by the daemons' HTTP fronts (cablekey-admind, cablekey-prov): listen addresses,
 * URL decoding, libmicrohttpd's log (lib/admin/httpd.c). */
#ifndef CABLEKEY_ADMIN_HTTPD_H
#define CABLEKEY_ADMIN_HTTPD_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <jansson.h>
#include <microhttpd.h>

/* Resolves one listen entry ("127.0.0.1", "[::1]:8088", ...): numeric addresses only (a name
 * could resolve to something else at the next start). Without tls a non-loopback address is
 * refused (CK_ERR_CONFIG), the message ending with cleartext_why. */
int ck_admin_listen_resolve(const char *spec, uint16_t default_port, bool tls,
                            const char *cleartext_why, struct sockaddr_storage *ss,
                            socklen_t *sslen);
/* A listening TCP socket (close-on-exec, SO_REUSEADDR, v6-only for IPv6). */
int ck_admin_listen_bind(const struct sockaddr_storage *ss, socklen_t sslen, int *fd_out);
/* Decodes %XX in place; -1 on a bad escape or an encoded NUL. */
int ck_admin_pct_decode(char *s);
/* MHD_OPTION_EXTERNAL_LOGGER: libmicrohttpd's messages to our log (info), control characters
 * replaced. */
void ck_admin_mhd_log(void *cls, const char *fmt, va_list ap);

/* A log-safe copy: cut to size, control characters replaced (client text must not forge a log
 * line). NULL src gives "-". Returns dst. */
const char *ck_admin_log_safe(char *dst, size_t size, const char *src);

/* ---- a request body, gathered across libmicrohttpd's calls (the connection's con_cls) ---- */
struct ck_admin_http_body {
    char *body;                  /* NUL-terminated; may hold a password: wiped on free */
    size_t len;
    bool too_large;
};
enum {
    CK_ADMIN_BODY_DONE = 0,      /* *out is the whole body: handle the request */
    CK_ADMIN_BODY_MORE = 1,      /* return MHD_YES */
    CK_ADMIN_BODY_TOO_LARGE = 2, /* answer 413 (declared or sent larger than max) */
    CK_ADMIN_BODY_NOMEM = -1,    /* return MHD_NO */
};
/* The start of a request callback: gathers the body up to max bytes (a Content-Length over max
 * is refused before anything is read). */
int ck_admin_http_body(struct MHD_Connection *c, void **con_cls, const char *upload,
                       size_t *upload_size, size_t max, struct ck_admin_http_body **out);
/* MHD_OPTION_NOTIFY_COMPLETED: frees (and wipes) the body. */
void ck_admin_http_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                             enum MHD_RequestTerminationCode t);
/* MHD_OPTION_UNESCAPE_CALLBACK: no unescaping (the daemons decode what they use). */
size_t ck_admin_http_no_unescape(void *cls, struct MHD_Connection *c, char *s);
/* The first query parameter not in allowed (NULL-terminated), or one without a value; NULL if
 * none. */
const char *ck_admin_http_unknown_query(struct MHD_Connection *c, const char *const *allowed);

/* ---- the listening sockets and the servers on them ---- */
struct ck_admin_listen_set {
    const char *const *specs;       /* the configured addresses; n_specs 0: the defaults */
    size_t n_specs;
    const char *const *defaults;    /* an IPv6 default the host cannot bind is skipped */
    size_t n_defaults;
    uint16_t default_port;
    bool tls;
    const char *cleartext_why;      /* ck_admin_listen_resolve's message without TLS */
    const char *cleartext_note;     /* after "listening on ADDR" without TLS ("" for none) */
};
/* Resolves every address (the check: bind_them false) or also binds them, appending the sockets
 * to lfd (room for max) and logging each. */
int ck_admin_listen_setup(const struct ck_admin_listen_set *ls, bool bind_them, int *lfd,
                          size_t max, size_t *n_lfd);
struct ck_admin_http_server {
    MHD_AccessHandlerCallback handler;
    void *arg;                      /* the handler's and ck_admin_http_completed's */
    bool thread_per_connection;     /* a long poll must not hold up the other requests */
    unsigned max_connections, timeout;
    size_t header_memory;           /* per connection: request line and headers */
    const char *tls_cert, *tls_key; /* PEM in memory, or NULL (no TLS) */
    const char *tls_hint;           /* added to the error when a TLS server does not start */
};
/* One libmicrohttpd server per listening socket (each socket then belongs to its server: its
 * lfd entry becomes -1). */
int ck_admin_http_start(const struct ck_admin_http_server *srv, int *lfd, size_t n,
                        struct MHD_Daemon **mhd);

/* ---- a JSON answer (both daemons' API) ---- */
struct ck_admin_http_reply {
    const char *content_type; /* NULL: "application/json" */
    const char *mutual;       /* the Negotiate token of a mutual authentication, or NULL */
    const char *allow;        /* Allow (a 405), or NULL */
    const char *cookie;       /* Set-Cookie, or NULL */
    bool hardened;            /* also X-Content-Type-Options: nosniff, X-Frame-Options: DENY */
};
/* Cache-Control: no-store, and with hardened the two headers a browser-facing server adds. */
void ck_admin_http_common_headers(struct MHD_Response *resp, bool hardened);
/* Queues status with body (taken: decref'd; NULL or unencodable: an empty body) followed by a
 * newline; a 401 carries "WWW-Authenticate: Negotiate", otherwise a mutual token is sent as
 * "Negotiate <token>". r may be NULL (no extra headers). */
enum MHD_Result ck_admin_http_respond(struct MHD_Connection *c, int status, json_t *body,
                                      const struct ck_admin_http_reply *r);

/* ---- the back process watch: a front whose back process hangs up stops (SIGTERM to itself,
 * so the signal loop ends; fired says why) ---- */
struct ck_admin_watch {
    int fd;
    int stop[2];
    pthread_t thread;
    bool running;
    atomic_bool fired;
};
int ck_admin_watch_start(struct ck_admin_watch *w, int fd);
void ck_admin_watch_stop(struct ck_admin_watch *w);

#endif
