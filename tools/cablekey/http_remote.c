/* The CLI's HTTP transport to cablekey-admind and cablekey-prov (http_remote.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cablekey/error.h"
#include "cablekey/net.h"
#include "http_remote.h"

#ifndef CK_VERSION
#define CK_VERSION "unknown"
#endif

#define CONNECT_TIMEOUT 10L  /* seconds */
#define TIMEOUT 60L          /* seconds for a whole request */

static int curl_users;

/* ===================================================================== URL */

static bool
literal_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;
    char buf[64];
    size_t n = strlen(host);

    if (strcmp(host, "localhost") == 0)
        return true;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    /* curl gives IPv6 hosts in brackets. */
    if (n > 2 && n < sizeof(buf) && host[0] == '[' && host[n - 1] == ']') {
        memcpy(buf, host + 1, n - 2);
        buf[n - 2] = '\0';
        if (inet_pton(AF_INET6, buf, &a6) == 1)
            return IN6_IS_ADDR_LOOPBACK(&a6) ||
                   (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
    }
    return false;
}

/* A part of the URL that must be absent. */
static bool
url_has(CURLU *u, CURLUPart part)
{
    char *v = NULL;
    bool has = curl_url_get(u, part, &v, 0) == CURLUE_OK && v != NULL && *v != '\0';

    curl_free(v);
    return has;
}

/* Checks the server URL and reduces it to scheme://host:port. CK_ERR_INVAL (a usage error) for
 * anything but a plain base URL, and for http to a host that is not loopback. */
static int
parse_url(const char *url, struct http_remote *r)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *path = NULL, *port = NULL, *base = NULL;
    int rc;

    if (u == NULL)
        return ck_error_set(CK_ERR_NOMEM, "URL");
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || *host == '\0') {
        rc = ck_error_set(CK_ERR_INVAL, "--server %s: not a URL (https://HOST[:PORT])", url);
        goto out;
    }
    if (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0) {
        rc = ck_error_set(CK_ERR_INVAL, "--server %s: the scheme must be https (or http to a "
                          "loopback address)", url);
        goto out;
    }
    r->tls = strcmp(scheme, "https") == 0;
    if (url_has(u, CURLUPART_USER) || url_has(u, CURLUPART_PASSWORD)) {
        rc = ck_error_set(CK_ERR_INVAL, "--server %s: no user or password in the URL: %s "
                          "authenticates you with your Kerberos ticket", url, r->def->service);
        goto out;
    }
    if (url_has(u, CURLUPART_QUERY) || url_has(u, CURLUPART_FRAGMENT) ||
        (curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK && path != NULL &&
         strcmp(path, "/") != 0 && *path != '\0')) {
        rc = ck_error_set(CK_ERR_INVAL, "--server %s: give the server's base URL "
                          "(https://HOST[:PORT]), without a path", url);
        goto out;
    }
    if (!r->tls && !literal_loopback(host)) {
        rc = ck_error_set(CK_ERR_INVAL,
                          "--server %s: plain http only to a loopback address (127.0.0.1, "
                          "[::1], localhost): %s serves without TLS only on loopback, because "
                          "requests carry %s; use https://", url, r->def->service,
                          r->def->carries);
        goto out;
    }
    if (curl_url_get(u, CURLUPART_PORT, &port, 0) != CURLUE_OK &&
        curl_url_set(u, CURLUPART_PORT, r->def->default_port, 0) != CURLUE_OK) {
        rc = ck_error_set(CK_ERR_NOMEM, "URL");
        goto out;
    }
    if (curl_url_set(u, CURLUPART_PATH, NULL, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_URL, &base, 0) != CURLUE_OK) {
        rc = ck_error_set(CK_ERR_INVAL, "--server %s: not a URL", url);
        goto out;
    }
    /* curl writes the empty path as "/": the API paths bring their own. */
    if (strlen(base) > 0 && base[strlen(base) - 1] == '/')
        base[strlen(base) - 1] = '\0';
    if ((r->base = strdup(base)) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "URL");
        goto out;
    }
    rc = 0;
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(path);
    curl_free(port);
    curl_free(base);
    curl_url_cleanup(u);
    return rc;
}

int
http_remote_open(const struct http_remote_def *def, const char *url, const char *ca_file,
                 struct http_remote **out)
{
    struct http_remote *r;
    int rc;

    *out = NULL;
    if ((r = calloc(1, sizeof(*r))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "remote");
    r->def = def;
    if (curl_users++ == 0 && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        curl_users--;
        free(r);
        return ck_error_set(CK_ERR_IO, "libcurl: initialisation failed");
    }
    if ((rc = parse_url(url, r)) != 0)
        goto fail;
    if (ca_file != NULL) {
        if (!r->tls) {
            rc = ck_error_set(CK_ERR_INVAL, "--ca applies to https:// servers only");
            goto fail;
        }
        if (access(ca_file, R_OK) != 0) {
            rc = ck_error_set(CK_ERR_IO, "--ca %s: %s", ca_file, strerror(errno));
            goto fail;
        }
        if ((r->ca_file = strdup(ca_file)) == NULL) {
            rc = ck_error_set(CK_ERR_NOMEM, "remote");
            goto fail;
        }
    }
    *out = r;
    return 0;
fail:
    http_remote_close(r);
    return rc;
}

void
http_remote_close(struct http_remote *r)
{
    if (r == NULL)
        return;
    free(r->base);
    free(r->ca_file);
    free(r);
    if (curl_users > 0 && --curl_users == 0)
        curl_global_cleanup();
}

/* ===================================================================== HTTP */

struct sink {
    struct http_answer *a;
    size_t max;
};

static size_t
write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
    struct sink *s = arg;
    struct http_answer *a = s->a;
    size_t n = size * nmemb;
    char *nb;

    if (n > s->max - a->len) {
        a->too_large = true;
        return 0; /* libcurl stops with CURLE_WRITE_ERROR */
    }
    if ((nb = realloc(a->body, a->len + n + 1)) == NULL)
        return 0;
    a->body = nb;
    memcpy(a->body + a->len, data, n);
    a->len += n;
    a->body[a->len] = '\0';
    return n;
}

/* Plain http: every address libcurl connects to must be loopback, whatever the name resolved
 * to (the URL check saw only the name). */
static curl_socket_t
open_socket_cb(void *arg, curlsocktype purpose, struct curl_sockaddr *addr)
{
    struct http_remote *r = arg;

    (void)purpose;
    if (!r->tls && !ck_net_addr_is_loopback(&addr->addr)) {
        r->refused_addr = true;
        return CURL_SOCKET_BAD;
    }
    return socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
}

void
http_answer_clear(struct http_answer *a)
{
    free(a->body);
    memset(a, 0, sizeof(*a));
}

/* Maps a failed transfer to a one-line error. */
static int
transfer_error(const struct http_remote *r, CURLcode cc, const char *errbuf,
               const struct http_answer *a)
{
    const char *detail = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(cc);

    if (r->refused_addr)
        return ck_error_set(CK_ERR_PERM, "%s: resolves to an address that is not loopback; "
                            "plain http is allowed only to loopback (use https://)", r->base);
    if (a->too_large || cc == CURLE_FILESIZE_EXCEEDED)
        return ck_error_set(CK_ERR_LIMIT, "%s: answer larger than %zu bytes", r->base,
                            r->def->max_answer);
    switch (cc) {
    case CURLE_OPERATION_TIMEDOUT:
        return ck_error_set(CK_ERR_TIMEOUT, "%s: no answer in time (%s)", r->base, detail);
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
        return ck_error_set(CK_ERR_IO, "cannot connect to %s: %s (is %s running there?)",
                            r->base, detail, r->def->service);
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
        return ck_error_set(CK_ERR_INTEGRITY, "%s: the server's TLS certificate is not "
                            "trusted: %s (give the CA that issued it with --ca FILE)", r->base,
                            detail);
    default:
        return ck_error_set(CK_ERR_IO, "%s: %s", r->base, detail);
    }
}

static bool
add_header(struct curl_slist **list, const char *h)
{
    struct curl_slist *n = curl_slist_append(*list, h);

    if (n == NULL)
        return false;
    *list = n;
    return true;
}

int
http_remote_perform(struct http_remote *r, const char *method, const char *path,
                    const char *const *headers, const char *body, size_t body_len,
                    struct http_answer *a)
{
    char errbuf[CURL_ERROR_SIZE] = "", *url = NULL;
    struct curl_slist *hdrs = NULL;
    struct sink sink = {a, r->def->max_answer};
    CURL *c = NULL;
    CURLcode cc;
    size_t n = strlen(r->base) + strlen(path) + 1;
    int rc;

    memset(a, 0, sizeof(*a));
    r->refused_addr = false;
    if ((url = malloc(n)) == NULL || (c = curl_easy_init()) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "request");
        goto out;
    }
    snprintf(url, n, "%s%s", r->base, path);
    /* No Expect: 100-continue (one round trip), JSON both ways. */
    if (!add_header(&hdrs, "Accept: application/json") || !add_header(&hdrs, "Expect:") ||
        (body != NULL && !add_header(&hdrs, "Content-Type: application/json"))) {
        rc = ck_error_set(CK_ERR_NOMEM, "request");
        goto out;
    }
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
        if (!add_header(&hdrs, headers[i])) {
            rc = ck_error_set(CK_ERR_NOMEM, "request");
            goto out;
        }
    if (curl_easy_setopt(c, CURLOPT_URL, url) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, r->tls ? "https" : "http") != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
        /* Never a proxy (not even from http_proxy): it would see the traffic, and the
         * loopback rule is about where the bytes go. */
        curl_easy_setopt(c, CURLOPT_PROXY, "") != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_NOPROXY, "*") != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_NEGOTIATE) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_USERPWD, ":") != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_TIMEOUT, TIMEOUT) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->def->max_answer) !=
            CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK ||
        (r->ca_file != NULL && curl_easy_setopt(c, CURLOPT_CAINFO, r->ca_file) != CURLE_OK) ||
        curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_socket_cb) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, r) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_USERAGENT, "cablekey/" CK_VERSION) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method) != CURLE_OK ||
        (body != NULL &&
         (curl_easy_setopt(c, CURLOPT_POSTFIELDS, body) != CURLE_OK ||
          curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len) != CURLE_OK))) {
        rc = ck_error_set(CK_ERR_UNSUPPORTED, "libcurl: an option this client needs is not "
                          "supported (%s)", errbuf);
        goto out;
    }
    if ((cc = curl_easy_perform(c)) != CURLE_OK) {
        rc = transfer_error(r, cc, errbuf, a);
        http_answer_clear(a);
        goto out;
    }
    (void)curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a->status);
    rc = 0;
out:
    curl_easy_cleanup(c);
    curl_slist_free_all(hdrs);
    free(url);
    return rc;
}
