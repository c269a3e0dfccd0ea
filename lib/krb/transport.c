/* Client transport to a KDC list: UDP with per-round exponential backoff, TCP with the RFC 4120
 * §7.2.2 4-byte length framing when the request is too long for UDP or the KDC answers
 * KRB_ERR_RESPONSE_TOO_BIG. Replies are only read from the connected socket that sent the
 * request, so a datagram from any other address is never mistaken for the answer. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cablekey/client.h"
#include "cablekey/error.h"
#include "cablekey/krb5_asn1.h"
#include "cablekey/net.h"
#include "cablekey/util.h"

#define KRB_TCP_PREFIX 4

static enum ck_net_frame
krb_tcp_parse(const uint8_t *buf, size_t have, size_t max_len, size_t *need, size_t *off,
              size_t *len)
{
    uint32_t v;

    if (have < KRB_TCP_PREFIX) {
        *need = KRB_TCP_PREFIX;
        return CK_NET_FRAME_NEED;
    }
    v = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 | (uint32_t)buf[2] << 8 | buf[3];
    *len = v;
    /* RFC 4120 7.2.2: the high bit is reserved (a server that does not know the extension
     * refuses it), and the length is bounded before any of the body is read. */
    if ((v & 0x80000000u) != 0 || v > max_len)
        return CK_NET_FRAME_REFUSE;
    *off = KRB_TCP_PREFIX;
    return CK_NET_FRAME_MESSAGE;
}

static void
krb_tcp_write_prefix(uint8_t *p, size_t len)
{
    p[0] = (uint8_t)(len >> 24);
    p[1] = (uint8_t)(len >> 16);
    p[2] = (uint8_t)(len >> 8);
    p[3] = (uint8_t)len;
}

const struct ck_net_framing ck_krb_tcp_framing = {
    .parse = krb_tcp_parse,
    .write_prefix = krb_tcp_write_prefix,
    .reply_prefix = KRB_TCP_PREFIX,
};

int
ck_kdc_backoff_ms(int nominal_ms, int max_ms, int attempt)
{
    int64_t t = nominal_ms;

    if (nominal_ms <= 0)
        return 0;
    if (max_ms < nominal_ms)
        max_ms = nominal_ms;
    /* Doubling stops at the cap, so the loop is short and cannot overflow. */
    for (int i = 0; i < attempt && t < max_ms; i++)
        t *= 2;
    if (t > max_ms)
        t = max_ms;
    return (int)t;
}

struct kdc_slot {
    struct sockaddr_storage addr;
    socklen_t addr_len;
    int udp_fd;     /* -1 until used */
    bool dead;      /* refused (ICMP unreachable / RST) */
    bool tcp;       /* answered "too big": use TCP from now on */
};

static int
resolve(const char *spec, struct kdc_slot *slot)
{
    char host[256];
    uint16_t port = 0;
    struct addrinfo hints, *res = NULL;
    int rc;

    if ((rc = ck_net_parse_listen(spec, CK_KDC_DEFAULT_PORT, host, sizeof(host), &port)) != 0)
        return ck_error_set(CK_ERR_INVAL, "bad KDC address \"%s\"", spec);
    if (host[0] == '\0' || port == 0)
        return ck_error_set(CK_ERR_INVAL, "KDC address \"%s\": host and port required", spec);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    if ((rc = getaddrinfo(host, NULL, &hints, &res)) != 0 || res == NULL)
        return ck_error_set(CK_ERR_INVAL, "KDC address \"%s\": %s", spec, gai_strerror(rc));
    if (res->ai_addrlen > sizeof(slot->addr)) {
        freeaddrinfo(res);
        return ck_error_set(CK_ERR_INVAL, "KDC address \"%s\": address too long", spec);
    }
    memcpy(&slot->addr, res->ai_addr, res->ai_addrlen);
    slot->addr_len = (socklen_t)res->ai_addrlen;
    freeaddrinfo(res);
    if (slot->addr.ss_family == AF_INET)
        ((struct sockaddr_in *)&slot->addr)->sin_port = htons(port);
    else if (slot->addr.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&slot->addr)->sin6_port = htons(port);
    else
        return ck_error_set(CK_ERR_INVAL, "KDC address \"%s\": not IPv4/IPv6", spec);
    return 0;
}

static int
open_socket(const struct kdc_slot *slot, int type)
{
    int fd = socket(slot->addr.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    if (connect(fd, (const struct sockaddr *)&slot->addr, slot->addr_len) != 0 &&
        errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* Waits for events on one fd until deadline; 0 = ready, CK_ERR_TIMEOUT, CK_ERR_IO. */
static int
wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        struct pollfd pfd = { .fd = fd, .events = events };
        int64_t left = deadline - ck_monotonic_ms();
        int n;

        if (left <= 0)
            return CK_ERR_TIMEOUT;
        n = poll(&pfd, 1, (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return ck_error_set(CK_ERR_IO, "poll: %s", strerror(errno));
        if (n > 0)
            return 0;
    }
}

/* One framed TCP exchange bounded by deadline. */
static int
tcp_exchange(const struct kdc_slot *slot, const uint8_t *req, size_t req_len, int64_t deadline,
             uint8_t **reply, size_t *reply_len)
{
    uint8_t hdr[4];
    uint8_t *buf = NULL;
    size_t off = 0, total = req_len + 4, want;
    uint32_t n;
    int fd, rc, soerr = 0;
    socklen_t sl = sizeof(soerr);

    if (req_len > 0x7fffffffu)
        return ck_error_set(CK_ERR_LIMIT, "request too long for TCP");
    if ((fd = open_socket(slot, SOCK_STREAM)) < 0)
        return ck_error_set(CK_ERR_IO, "TCP connect: %s", strerror(errno));
    if ((rc = wait_fd(fd, POLLOUT, deadline)) != 0)
        goto out;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr != 0) {
        rc = ck_error_set(CK_ERR_IO, "TCP connect: %s", strerror(soerr ? soerr : errno));
        goto out;
    }
    hdr[0] = (uint8_t)(req_len >> 24);
    hdr[1] = (uint8_t)(req_len >> 16);
    hdr[2] = (uint8_t)(req_len >> 8);
    hdr[3] = (uint8_t)req_len;
    while (off < total) {
        ssize_t w;
        if (off < 4)
            w = send(fd, hdr + off, 4 - off, MSG_NOSIGNAL | MSG_MORE);
        else
            w = send(fd, req + (off - 4), total - off, MSG_NOSIGNAL);
        if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            if ((rc = wait_fd(fd, POLLOUT, deadline)) != 0)
                goto out;
            continue;
        }
        if (w < 0) {
            rc = ck_error_set(CK_ERR_IO, "TCP send: %s", strerror(errno));
            goto out;
        }
        off += (size_t)w;
    }
    /* Length prefix, then the body. */
    off = 0;
    want = 4;
    for (int phase = 0; phase < 2; phase++) {
        uint8_t *dst = phase == 0 ? hdr : buf;
        while (off < want) {
            ssize_t r = recv(fd, dst + off, want - off, 0);
            if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
                if ((rc = wait_fd(fd, POLLIN, deadline)) != 0)
                    goto out;
                continue;
            }
            if (r < 0) {
                rc = ck_error_set(CK_ERR_IO, "TCP receive: %s", strerror(errno));
                goto out;
            }
            if (r == 0) {
                rc = ck_error_set(CK_ERR_PROTO, "TCP: KDC closed the connection");
                goto out;
            }
            off += (size_t)r;
        }
        if (phase == 0) {
            n = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
            if (n & 0x80000000u) {
                rc = ck_error_set(CK_ERR_PROTO, "TCP: reserved length bit set");
                goto out;
            }
            if (n == 0 || n > CK_KDC_MAX_REPLY) {
                rc = ck_error_set(CK_ERR_LIMIT, "TCP: reply length %u out of range", n);
                goto out;
            }
            if ((buf = malloc(n)) == NULL) {
                rc = ck_error_set(CK_ERR_NOMEM, "TCP reply");
                goto out;
            }
            off = 0;
            want = n;
        }
    }
    *reply = buf;
    *reply_len = want;
    buf = NULL;
    rc = 0;
out:
    if (rc == CK_ERR_TIMEOUT)
        ck_error_set(CK_ERR_TIMEOUT, "TCP: no reply in time");
    free(buf);
    close(fd);
    return rc;
}

/* True if a UDP reply is KRB-ERROR 52. */
static bool
is_too_big(const uint8_t *msg, size_t len)
{
    CK_KRB_ERROR_MSG *err = NULL;
    bool r = false;

    if (ck_asn1_msg_type(msg, len) != CK_KRB_ERROR)
        return false;
    if (ck_asn1_krb_error_decode(msg, len, &err) == 0)
        r = err->error_code == CK_KRB_ERR_RESPONSE_TOO_BIG;
    CK_KRB_ERROR_MSG_free(err);
    ck_error_clear();
    return r;
}

static int
send_tcp_rounds(struct kdc_slot *slots, size_t n, const uint8_t *req, size_t req_len,
                int nominal, int maxt, int tries, uint8_t **reply, size_t *reply_len,
                ck_kdc_send_info *info)
{
    int rc = CK_ERR_TIMEOUT;

    for (int a = 0; a < tries; a++) {
        for (size_t i = 0; i < n; i++) {
            int64_t deadline = ck_monotonic_ms() + ck_kdc_backoff_ms(nominal, maxt, a);
            info->tries++;
            rc = tcp_exchange(&slots[i], req, req_len, deadline, reply, reply_len);
            if (rc == 0) {
                info->tcp = true;
                info->kdc_index = (int)i;
                return 0;
            }
        }
    }
    if (rc == CK_ERR_TIMEOUT)
        return ck_error_set(CK_ERR_TIMEOUT, "no KDC answered over TCP after %d rounds", tries);
    return rc;
}

int
ck_kdc_send(const ck_kdc_transport *t, const uint8_t *req, size_t req_len, uint8_t **reply,
            size_t *reply_len, ck_kdc_send_info *info_out)
{
    struct kdc_slot slots[CK_KDC_MAX_KDCS];
    ck_kdc_send_info info = { .kdc_index = -1 };
    uint8_t *buf = NULL;
    size_t n = 0, udp_limit;
    int nominal, maxt, tries, rc = CK_ERR_TIMEOUT;

    if (t == NULL || req == NULL || req_len == 0 || reply == NULL || reply_len == NULL)
        return ck_error_set(CK_ERR_INVAL, "ck_kdc_send: missing argument");
    *reply = NULL;
    *reply_len = 0;
    if (t->send_fn != NULL) {
        rc = t->send_fn(t->send_arg, req, req_len, reply, reply_len);
        if (info_out != NULL)
            *info_out = (ck_kdc_send_info){ .tries = 1, .kdc_index = 0 };
        return rc;
    }
    if (t->n_kdcs == 0 || t->kdcs == NULL)
        return ck_error_set(CK_ERR_INVAL, "no KDC address");
    if (t->n_kdcs > CK_KDC_MAX_KDCS)
        return ck_error_set(CK_ERR_LIMIT, "more than %d KDC addresses", CK_KDC_MAX_KDCS);
    nominal = t->timeout_ms > 0 ? t->timeout_ms : CK_KDC_DEFAULT_TIMEOUT_MS;
    maxt = t->max_timeout_ms > 0 ? t->max_timeout_ms : CK_KDC_DEFAULT_MAX_TIMEOUT_MS;
    tries = t->max_tries > 0 ? t->max_tries : CK_KDC_DEFAULT_MAX_TRIES;
    if (tries > CK_KDC_MAX_TRIES)
        tries = CK_KDC_MAX_TRIES;
    udp_limit = t->udp_limit > 0 ? t->udp_limit : CK_KDC_DEFAULT_UDP_LIMIT;

    for (n = 0; n < t->n_kdcs; n++) {
        memset(&slots[n], 0, sizeof(slots[n]));
        slots[n].udp_fd = -1;
        if ((rc = resolve(t->kdcs[n], &slots[n])) != 0)
            goto out;
    }

    if (t->tcp_only || req_len > udp_limit) {
        rc = send_tcp_rounds(slots, n, req, req_len, nominal, maxt, tries, reply, reply_len,
                             &info);
        goto out;
    }

    if ((buf = malloc(CK_KDC_MAX_REPLY)) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "UDP reply buffer");
        goto out;
    }
    for (int a = 0; a < tries; a++) {
        int timeout = ck_kdc_backoff_ms(nominal, maxt, a);
        size_t alive_kdcs = 0;

        for (size_t i = 0; i < n; i++)
            alive_kdcs += slots[i].dead ? 0 : 1;
        if (alive_kdcs == 0) {
            rc = ck_error_set(CK_ERR_IO, "every KDC refused the request");
            goto out;
        }
        for (size_t i = 0; i < n; i++) {
            struct pollfd pfds[CK_KDC_MAX_KDCS];
            size_t idx[CK_KDC_MAX_KDCS], np = 0, alive = 0;
            int64_t deadline;

            if (slots[i].dead)
                continue;
            if (slots[i].tcp) {
                /* This KDC said "too big": it gets TCP for the rest of the exchange. */
                deadline = ck_monotonic_ms() + timeout;
                info.tries++;
                rc = tcp_exchange(&slots[i], req, req_len, deadline, reply, reply_len);
                if (rc == 0) {
                    info.tcp = true;
                    info.kdc_index = (int)i;
                    goto out;
                }
                continue;
            }
            if (slots[i].udp_fd < 0 && (slots[i].udp_fd = open_socket(&slots[i], SOCK_DGRAM)) < 0) {
                slots[i].dead = true;
                continue;
            }
            info.tries++;
            if (send(slots[i].udp_fd, req, req_len, MSG_NOSIGNAL) < 0) {
                close(slots[i].udp_fd);
                slots[i].udp_fd = -1;
                slots[i].dead = true;
                continue;
            }
            deadline = ck_monotonic_ms() + timeout;
            for (;;) {
                int64_t left = deadline - ck_monotonic_ms();
                int pn;

                np = 0;
                alive = 0;
                for (size_t j = 0; j < n; j++) {
                    if (!slots[j].dead)
                        alive++;
                    if (slots[j].udp_fd >= 0 && !slots[j].dead && !slots[j].tcp) {
                        pfds[np] = (struct pollfd){ .fd = slots[j].udp_fd, .events = POLLIN };
                        idx[np++] = j;
                    }
                }
                if (alive == 0) {
                    rc = ck_error_set(CK_ERR_IO, "every KDC refused the request");
                    goto out;
                }
                if (left <= 0 || np == 0)
                    break;
                pn = poll(pfds, np, (int)left);
                if (pn < 0 && errno == EINTR)
                    continue;
                if (pn < 0) {
                    rc = ck_error_set(CK_ERR_IO, "poll: %s", strerror(errno));
                    goto out;
                }
                for (size_t k = 0; k < np && pn > 0; k++) {
                    struct kdc_slot *s = &slots[idx[k]];
                    ssize_t r;

                    if (pfds[k].revents == 0)
                        continue;
                    r = recv(s->udp_fd, buf, CK_KDC_MAX_REPLY, MSG_TRUNC);
                    if (r < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                            continue;
                        /* ECONNREFUSED: the ICMP port unreachable of a dead KDC. */
                        close(s->udp_fd);
                        s->udp_fd = -1;
                        s->dead = true;
                        continue;
                    }
                    /* Oversized (truncated) or non-Kerberos datagrams are ignored. */
                    if (r == 0 || (size_t)r > CK_KDC_MAX_REPLY || ck_asn1_msg_type(buf, (size_t)r) < 0) {
                        ck_error_clear();
                        continue;
                    }
                    if (is_too_big(buf, (size_t)r)) {
                        int64_t tdl = ck_monotonic_ms() + maxt;
                        s->tcp = true;
                        info.too_big = true;
                        info.tries++;
                        rc = tcp_exchange(s, req, req_len, tdl, reply, reply_len);
                        if (rc == 0) {
                            info.tcp = true;
                            info.kdc_index = (int)idx[k];
                            goto out;
                        }
                        continue;
                    }
                    if ((*reply = malloc((size_t)r)) == NULL) {
                        rc = ck_error_set(CK_ERR_NOMEM, "UDP reply");
                        goto out;
                    }
                    memcpy(*reply, buf, (size_t)r);
                    *reply_len = (size_t)r;
                    info.kdc_index = (int)idx[k];
                    rc = 0;
                    goto out;
                }
            }
        }
    }
    rc = ck_error_set(CK_ERR_TIMEOUT, "no KDC answered after %d rounds (%d sends)", tries,
                      info.tries);
out:
    for (size_t i = 0; i < n; i++) {
        if (slots[i].udp_fd >= 0)
            close(slots[i].udp_fd);
    }
    free(buf);
    if (info_out != NULL)
        *info_out = info;
    return rc;
}
