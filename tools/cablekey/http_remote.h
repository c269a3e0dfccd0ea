/* The transport both API clients of the CLI share (admin_remote.c for cablekey-admind,
 * prov_remote.c for cablekey-prov): libcurl with HTTP Negotiate (the user's Kerberos ticket, as
 * `curl --negotiate -u :`), https with the server certificate verified (the system store or
 * --ca FILE), or plain http to a loopback address only, checked on the URL and again on every
 * address libcurl is about to connect to; never a proxy, never a redirect. */
#ifndef CABLEKEY_CLI_HTTP_REMOTE_H
#define CABLEKEY_CLI_HTTP_REMOTE_H

#include <stdbool.h>
#include <stddef.h>

/* What differs between the two servers. */
struct http_remote_def {
    const char *service;       /* "cablekey-admind": named in the hints */
    const char *default_port;  /* when the URL gives none */
    const char *carries;       /* why plain http must stay on loopback: "passwords and ..." */
    size_t max_answer;         /* bytes; a larger answer is refused */
};

struct http_remote {
    const struct http_remote_def *def;
    char *base;                /* "https://host:port", no trailing slash */
    char *ca_file;             /* NULL: the system store */
    bool tls;
    bool refused_addr;         /* the socket callback refused a non-loopback address */
};

/* One answer: status and body (NUL-terminated). */
struct http_answer {
    long status;
    char *body;
    size_t len;
    bool too_large;
};

/* Checks --server URL (reduced to scheme://host:port) and --ca FILE (NULL: the system store).
 * CK_ERR_INVAL is a usage error (the message says what is wrong); other errors are failures. */
int http_remote_open(const struct http_remote_def *def, const char *url, const char *ca_file,
                     struct http_remote **out);
void http_remote_close(struct http_remote *r);

/* One request: method on base + path (already escaped), with extra headers (NULL-terminated
 * list, may be NULL) and an optional JSON body. A fresh handle per request: the servers
 * authenticate every request, while libcurl would send no token on a reused Negotiate
 * connection. 0 with the answer (any HTTP status; http_answer_clear it), or an error for a
 * transfer that did not complete (message says why, with what to do). */
int http_remote_perform(struct http_remote *r, const char *method, const char *path,
                        const char *const *headers, const char *body, size_t body_len,
                        struct http_answer *a);
void http_answer_clear(struct http_answer *a);

#endif
