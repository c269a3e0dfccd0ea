/* Shared pieces of the daemons' HTTP fronts (admin/httpd.h). */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "admin/httpd.h"
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
