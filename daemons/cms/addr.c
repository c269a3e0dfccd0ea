/* Compact endpoint addresses: what the SA table keeps per endpoint instead of a sockaddr. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "cablekey/error.h"
#include "cms.h"

int
cms_addr_from_sockaddr(const struct sockaddr *sa, struct cms_addr *out)
{
    memset(out, 0, sizeof(*out));
    if (sa == NULL)
        return ck_error_set(CK_ERR_INVAL, "no address");
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        out->family = 4;
        out->port = ntohs(in->sin_port);
        memcpy(out->addr, &in->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        out->family = 6;
        out->port = ntohs(in6->sin6_port);
        memcpy(out->addr, &in6->sin6_addr, 16);
        return 0;
    }
    return ck_error_set(CK_ERR_UNSUPPORTED, "address family %d", (int)sa->sa_family);
}

socklen_t
cms_addr_to_sockaddr(const struct cms_addr *a, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (a->family == 4) {
        struct sockaddr_in *in = (struct sockaddr_in *)(void *)ss;
        in->sin_family = AF_INET;
        in->sin_port = htons(a->port);
        memcpy(&in->sin_addr, a->addr, 4);
        return sizeof(*in);
    }
    if (a->family == 6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)(void *)ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(a->port);
        memcpy(&in6->sin6_addr, a->addr, 16);
        return sizeof(*in6);
    }
    return 0;
}

bool
cms_addr_equal(const struct cms_addr *a, const struct cms_addr *b)
{
    return a->family == b->family && a->port == b->port &&
           memcmp(a->addr, b->addr, a->family == 4 ? 4 : 16) == 0;
}

const char *
cms_addr_host(const struct cms_addr *a, char *buf, size_t size)
{
    if (a->family == 0 ||
        inet_ntop(a->family == 4 ? AF_INET : AF_INET6, a->addr, buf, (socklen_t)size) == NULL)
        snprintf(buf, size, "-");
    return buf;
}

const char *
cms_addr_format(const struct cms_addr *a, char *buf, size_t size)
{
    char host[INET6_ADDRSTRLEN];

    cms_addr_host(a, host, sizeof(host));
    if (a->family == 6)
        snprintf(buf, size, "[%s]:%u", host, (unsigned)a->port);
    else
        snprintf(buf, size, "%s:%u", host, (unsigned)a->port);
    return buf;
}
