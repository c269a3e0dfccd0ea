/* Listen-address syntax and socket address formatting. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "cablekey/error.h"
#include "cablekey/net.h"
#include "cablekey/util.h"

static bool
all_digits(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

static int
parse_port(const char *s, const char *spec, uint16_t *port)
{
    int64_t v;

    if (!all_digits(s) || ck_parse_int64(s, 0, 65535, &v) != 0)
        return ck_error_set(CK_ERR_CONFIG, "listen address \"%s\": bad port \"%s\"", spec, s);
    *port = (uint16_t)v;
    return 0;
}

static int
set_host(char *host, size_t host_size, const char *p, size_t n, const char *spec)
{
    if (n >= host_size)
        return ck_error_set(CK_ERR_CONFIG, "listen address \"%s\": host too long", spec);
    memcpy(host, p, n);
    host[n] = '\0';
    /* "*" is the conventional spelling of "every address". */
    if (strcmp(host, "*") == 0)
        host[0] = '\0';
    return 0;
}

/* Accepted forms: "88" (every address), "host", "host:port", "*:port", "[v6]", "[v6]:port" and
 * a bare IPv6 address (more than one colon, so it cannot carry a port). */
int
ck_net_parse_listen(const char *spec, uint16_t default_port, char *host, size_t host_size,
                    uint16_t *port)
{
    const char *colon;

    if (spec == NULL || *spec == '\0' || host == NULL || host_size == 0)
        return ck_error_set(CK_ERR_CONFIG, "empty listen address");
    if (all_digits(spec)) {
        host[0] = '\0';
        return parse_port(spec, spec, port);
    }
    if (spec[0] == '[') {
        const char *close = strchr(spec, ']');
        int rc;

        if (close == NULL || close == spec + 1)
            return ck_error_set(CK_ERR_CONFIG, "listen address \"%s\": bad brackets", spec);
        if ((rc = set_host(host, host_size, spec + 1, (size_t)(close - spec - 1), spec)) != 0)
            return rc;
        if (close[1] == '\0') {
            *port = default_port;
            return 0;
        }
        if (close[1] != ':')
            return ck_error_set(CK_ERR_CONFIG, "listen address \"%s\": junk after ']'", spec);
        return parse_port(close + 2, spec, port);
    }
    colon = strchr(spec, ':');
    if (colon == NULL) {
        *port = default_port;
        return set_host(host, host_size, spec, strlen(spec), spec);
    }
    if (strchr(colon + 1, ':') != NULL) {
        /* Bare IPv6 address. */
        *port = default_port;
        return set_host(host, host_size, spec, strlen(spec), spec);
    }
    if (colon == spec)
        return ck_error_set(CK_ERR_CONFIG, "listen address \"%s\": missing host", spec);
    {
        int rc = set_host(host, host_size, spec, (size_t)(colon - spec), spec);
        if (rc != 0)
            return rc;
    }
    return parse_port(colon + 1, spec, port);
}

const char *
ck_net_addr_format(const struct sockaddr *sa, char *buf, size_t size)
{
    char a[INET6_ADDRSTRLEN];

    if (size == 0)
        return buf;
    buf[0] = '\0';
    if (sa == NULL) {
        snprintf(buf, size, "-");
    } else if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        if (inet_ntop(AF_INET, &sin->sin_addr, a, sizeof(a)) == NULL)
            snprintf(a, sizeof(a), "?");
        snprintf(buf, size, "%s:%u", a, ntohs(sin->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        if (inet_ntop(AF_INET6, &sin6->sin6_addr, a, sizeof(a)) == NULL)
            snprintf(a, sizeof(a), "?");
        if (sin6->sin6_scope_id != 0)
            snprintf(buf, size, "[%s%%%u]:%u", a, (unsigned)sin6->sin6_scope_id,
                     ntohs(sin6->sin6_port));
        else
            snprintf(buf, size, "[%s]:%u", a, ntohs(sin6->sin6_port));
    } else {
        snprintf(buf, size, "(family %d)", sa->sa_family);
    }
    return buf;
}

bool
ck_net_addr_is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return false;
}

void
ck_peer_set(struct ck_peer *p, const struct sockaddr *sa, socklen_t len)
{
    memset(p, 0, sizeof(*p));
    if (sa == NULL || len == 0)
        return;
    if ((size_t)len > sizeof(p->addr))
        len = (socklen_t)sizeof(p->addr);
    memcpy(&p->addr, sa, len);
    p->addr_len = len;
}

const struct sockaddr *
ck_peer_sockaddr(const struct ck_peer *p, socklen_t *len)
{
    if (len != NULL)
        *len = p != NULL ? p->addr_len : 0;
    if (p == NULL || p->addr_len == 0)
        return NULL;
    return (const struct sockaddr *)&p->addr;
}

const char *
ck_peer_format(const struct ck_peer *p, char *buf, size_t size)
{
    return ck_net_addr_format(ck_peer_sockaddr(p, NULL), buf, size);
}

const char *
ck_peer_format_host(const struct ck_peer *p, char *buf, size_t size)
{
    const struct sockaddr *sa = ck_peer_sockaddr(p, NULL);
    const void *a;

    if (sa == NULL)
        return "-";
    if (sa->sa_family == AF_INET)
        a = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
    else if (sa->sa_family == AF_INET6)
        a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
    else
        return "unknown";
    if (inet_ntop(sa->sa_family, a, buf, (socklen_t)size) == NULL)
        return "unknown";
    return buf;
}
