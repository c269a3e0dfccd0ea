/* The /metrics endpoint: libmicrohttpd with its own polling thread, a small connection limit and
 * short timeouts (a scraper is one client every few seconds; anything more is not a scraper). */
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "cablekey/error.h"
#include "cablekey/metrics.h"
#include "cablekey/util.h"

#define HTTP_CONNECTIONS 16
#define HTTP_TIMEOUT_S 10

struct ck_metrics_http {
    struct ck_metrics *reg;
    struct MHD_Daemon *d;
    int port;
};

static enum MHD_Result
answer(struct MHD_Connection *c, unsigned status, const char *text)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;

    resp = MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
    if (resp == NULL)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", "text/plain; charset=utf-8");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(resp, "Allow", "GET, HEAD");
    ret = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result
handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
       const char *version, const char *upload, size_t *upload_size, void **state)
{
    struct ck_metrics_http *h = cls;
    struct MHD_Response *resp;
    enum MHD_Result ret;
    char *text = NULL;
    size_t len = 0;

    if (*state == NULL) { /* first call: headers only; answer on the next */
        *state = (void *)1;
        return MHD_YES;
    }
    if (*upload_size != 0) {
        *upload_size = 0; /* a body is ignored; the request is refused below */
        return MHD_YES;
    }
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return answer(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
    if (strcmp(url, "/metrics") != 0)
        return answer(c, MHD_HTTP_NOT_FOUND, "not found; try /metrics\n");
    if (ck_metrics_render(h->reg, &text, &len) != 0)
        return answer(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "metrics unavailable\n");
    resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", CK_METRICS_CONTENT_TYPE);
    ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void
quiet(void *cls, const char *fmt, va_list ap)
{
    /* Library code does not log; a failed start is reported through the error context. */
}

/* "ADDR:PORT" or "[V6]:PORT", numeric only. */
static int
parse_bind(const char *bind, struct sockaddr_storage *ss, socklen_t *ss_len)
{
    char host[128], port[16];
    const char *colon;
    struct addrinfo hints, *res = NULL;
    size_t hl;
    int rc = 0, g;

    if (bind[0] == '[') {
        const char *close = strchr(bind, ']');
        if (close == NULL || close[1] != ':')
            return ck_error_set(CK_ERR_CONFIG, "metrics listen address: expected [V6ADDR]:PORT");
        hl = (size_t)(close - bind - 1);
        if (hl >= sizeof(host))
            return ck_error_set(CK_ERR_CONFIG, "metrics listen address too long");
        memcpy(host, bind + 1, hl);
        host[hl] = '\0';
        colon = close + 1;
    } else {
        colon = strrchr(bind, ':');
        if (colon == NULL || memchr(bind, ':', (size_t)(colon - bind)) != NULL)
            return ck_error_set(CK_ERR_CONFIG, "metrics listen address: expected ADDR:PORT "
                                "or [V6ADDR]:PORT");
        hl = (size_t)(colon - bind);
        if (hl >= sizeof(host) || hl == 0)
            return ck_error_set(CK_ERR_CONFIG, "metrics listen address: bad host part");
        memcpy(host, bind, hl);
        host[hl] = '\0';
    }
    {
        int64_t p;
        if (ck_parse_int64(colon + 1, 0, 65535, &p) != 0)
            return ck_error_set(CK_ERR_CONFIG, "metrics listen address: bad port");
        ck_strlcpy(port, colon + 1, sizeof(port));
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
    hints.ai_socktype = SOCK_STREAM;
    g = getaddrinfo(host, port, &hints, &res);
    if (g != 0 || res == NULL || res->ai_addrlen > sizeof(*ss)) {
        rc = ck_error_set(CK_ERR_CONFIG, "metrics listen address %s: not a numeric address", bind);
        goto out;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *ss_len = res->ai_addrlen;
out:
    if (res != NULL)
        freeaddrinfo(res);
    return rc;
}

int
ck_metrics_http_start(struct ck_metrics *r, const char *bind, struct ck_metrics_http **out)
{
    struct ck_metrics_http *h = NULL;
    struct sockaddr_storage ss;
    socklen_t ss_len = 0;
    const union MHD_DaemonInfo *info;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
    int rc;

    *out = NULL;
    if ((rc = parse_bind(bind != NULL ? bind : CK_METRICS_DEFAULT_BIND, &ss, &ss_len)) != 0)
        return rc;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    h = calloc(1, sizeof(*h));
    if (h == NULL)
        return ck_error_set(CK_ERR_NOMEM, "metrics endpoint");
    h->reg = r;
    h->d = MHD_start_daemon(flags, 0, NULL, NULL, handle, h, MHD_OPTION_EXTERNAL_LOGGER, quiet,
                            NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_CONNECTIONS,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_TIMEOUT_S,
                            MHD_OPTION_END);
    if (h->d == NULL) {
        free(h);
        return ck_error_set(CK_ERR_IO, "metrics endpoint: cannot listen on %s",
                            bind != NULL ? bind : CK_METRICS_DEFAULT_BIND);
    }
    info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info != NULL ? info->port : 0;
    *out = h;
    return 0;
}

int
ck_metrics_http_port(const struct ck_metrics_http *h)
{
    return h->port;
}

void
ck_metrics_http_stop(struct ck_metrics_http *h)
{
    if (h == NULL)
        return;
    MHD_stop_daemon(h->d);
    free(h);
}
