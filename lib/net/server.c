/* epoll server core: per-worker loops, batched UDP, TCP split by the protocol's framing.
 *
 * Ownership: the server owns the workers; each worker owns its epoll fd, its sockets, its
 * connections and its batch buffers, and is touched only by its own thread between start and
 * stop. The stop eventfd is shared: it is never read, so once written it stays readable and
 * every worker's level-triggered epoll sees it. */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "cablekey/error.h"
#include "cablekey/net.h"
#include "cablekey/util.h"

#define UDP_BATCH 32
/* The largest UDP payload (IPv6 without jumbograms; IPv4's is 65507): no UDP reply can be longer,
 * whatever max_reply says, so the batch's reply slots are never larger. */
#define UDP_MAX_PAYLOAD 65527
#define UDP_BATCHES_PER_WAKEUP 8   /* then let the other sockets of this worker have a turn */
#define MAX_EVENTS 64
#define ACCEPTS_PER_WAKEUP 32
#define TCP_REQS_PER_WAKEUP 16

enum ev_kind { EV_UDP, EV_LISTEN, EV_CONN, EV_TIMER, EV_STOP, EV_STEER };

/* First member of everything registered with epoll, so data.ptr can be dispatched on kind. */
struct ev_src {
    enum ev_kind kind;
    int fd;
};

struct sock {
    struct ev_src ev;
    bool wildcard;               /* bound to 0.0.0.0 or ::, so replies need an explicit source */
    struct sockaddr_storage local;
    socklen_t local_len;
};

struct worker;

struct conn {
    struct ev_src ev;
    struct conn *prev, *next;    /* activity list, head = least recently active */
    int64_t last_ms;
    struct ck_peer peer;
    struct sockaddr_storage local;
    socklen_t local_len;
    uint8_t hdr[CK_NET_FRAME_HEADER_MAX];  /* the next message's header as far as read */
    size_t hdr_got, hdr_need;   /* hdr_need 0: ask the framing */
    bool have_len;
    uint8_t *body;
    size_t body_len, body_got;
    uint8_t *out;                /* unsent rest of a reply */
    size_t out_len, out_pos;
    bool close_after_write;
};

/* Room for one IP_PKTINFO or IPV6_PKTINFO message and, with admission control, a receive
 * timestamp (checked in worker_setup). The alignment member is not struct cmsghdr because glibc
 * gives it a flexible array member. */
#define CTRL_SIZE 128

union ctrl_buf {
    size_t align;
    uint8_t buf[CTRL_SIZE];
};

struct udp_slot {
    struct ck_peer peer;         /* msg_name points at peer.addr */
    union ctrl_buf rctrl;
    union ctrl_buf sctrl;
    struct iovec riov, siov;
};

struct worker {
    struct ck_net_server *srv;
    int index;
    pthread_t thread;
    bool thread_started;
    bool state_ready;
    void *state;
    int epfd;
    int reserve_fd;              /* spare fd given up to shed a connection on EMFILE */
    struct ev_src timer;
    struct ev_src stop;          /* fd borrowed from the server */
    int64_t timer_deadline;      /* 0: disarmed */
    struct sock *udp, *tcp;      /* one per address (fd -1 when that transport is off) */
    size_t n_socks;
    uint8_t *rbufs;              /* UDP_BATCH * max_dgram */
    uint8_t *sbufs;              /* UDP_BATCH * udp_reply_cap */
    size_t udp_reply_cap;        /* min(max_reply, UDP_MAX_PAYLOAD) */
    uint8_t *tcp_reply;          /* framing's reply prefix + max_reply */
    struct udp_slot *slots;
    struct mmsghdr *rmsg, *smsg;
    const struct sock *rmsg_for;  /* socket the receive headers are set up for (NULL: none) */
    _Atomic uint64_t udp_requests; /* datagrams received (read by worker 0's steering check) */
    int rmsg_dirty;               /* leading headers the last recvmmsg may have written */
    struct ck_admission *adm;     /* admission control (admission.c); NULL: off */
    struct conn *lru_head, *lru_tail;
    struct conn *graveyard;      /* closed during this event batch, freed after it */
    int n_conns;
};

struct ck_net_server {
    struct ck_net_config cfg;
    char **listen;
    struct ck_net_callbacks cb;
    ck_net_idle_fn idle;
    int n_workers;
    struct worker *workers;
    struct sockaddr_storage addrs[CK_NET_MAX_ADDRS];
    socklen_t addr_lens[CK_NET_MAX_ADDRS];
    size_t n_addrs;
    bool any_port0;              /* some listen entry asked for a kernel-chosen port */
    int stop_fd;
    bool running;
    /* CPU steering (see "CPU steering" below). steer: in effect when the workers started (worker
     * i pinned to CPU i). steer_on: the BPF program is attached now. Both are touched only by
     * worker 0 after start. */
    bool steer, steer_on;
    cpu_set_t cpus;              /* the process's CPUs, restored when steering is suspended */
    struct ev_src steer_timer;   /* worker 0's check timer */
    int64_t steer_check_ms;
    int steer_strikes;           /* consecutive checks that found the load concentrated */
    int64_t steer_resume_ms;     /* when suspended: monotonic time to try again */
    int64_t steer_backoff_ms;
    uint64_t steer_cpu_ns[CK_NET_MAX_WORKERS]; /* each worker's CPU time at the last check */
    uint64_t steer_reqs[CK_NET_MAX_WORKERS];   /* and its datagram count */
    uint64_t steer_suspensions;
    /* Admission reports (admission_report): drops counted by the workers, those reported, when
     * last reported (monotonic ms), who is reporting, the totals then. */
    _Atomic uint64_t adm_drops, adm_drops_reported;
    _Atomic int64_t adm_report_ms;
    atomic_flag adm_reporting;
    struct ck_admission_stats adm_last;
};

/* ---- helpers ---------------------------------------------------------------------------- */

static bool
addr_is_wildcard(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
    if (ss->ss_family == AF_INET6)
        return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
    return false;
}

static uint16_t
addr_port(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

static void
addr_set_port(struct sockaddr_storage *ss, uint16_t port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

static int
set_int_opt(int fd, int level, int name, int value, const char *what, const char *addr)
{
    if (setsockopt(fd, level, name, &value, sizeof(value)) != 0)
        return ck_error_set(CK_ERR_IO, "%s %s: %s", what, addr, strerror(errno));
    return 0;
}

/* Enlarges a UDP socket's receive queue: a burst of requests larger than the default queue
 * (~200 KB, a few hundred datagrams) is otherwise dropped by the kernel before a worker sees it.
 * Best effort: without the privilege for SO_RCVBUFFORCE the kernel caps SO_RCVBUF at
 * net.core.rmem_max, and a refusal leaves the default, as without the option. */
static void
set_rcvbuf(int fd, int bytes)
{
    if (bytes <= 0)
        return;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof(bytes)) == 0)
        return;
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes));
}

/* errno of the last failed bind on this thread (ck_net_server_start retries EADDRINUSE on
 * kernel-chosen ports). */
static _Thread_local int bind_errno;

/* Makes a non-blocking socket bound to ss. reuseport: join the workers' SO_REUSEPORT group. */
static int
open_bound(const struct sockaddr_storage *ss, socklen_t len, int type, bool reuseport,
           int *out_fd)
{
    char a[CK_NET_ADDRSTRLEN];
    const char *proto = type == SOCK_DGRAM ? "udp" : "tcp";
    int fd, rc;

    *out_fd = -1;
    ck_net_addr_format((const struct sockaddr *)ss, a, sizeof(a));
    fd = socket(ss->ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return ck_error_set(CK_ERR_IO, "socket %s/%s: %s", proto, a, strerror(errno));
    /* TCP: allow restarting while old connections sit in TIME_WAIT; an active listener of
     * another process still makes bind fail. */
    if (type == SOCK_STREAM &&
        (rc = set_int_opt(fd, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR", a)) != 0)
        goto fail;
    if (reuseport && (rc = set_int_opt(fd, SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT", a)) != 0)
        goto fail;
    /* Wildcard IPv4 and IPv6 are bound separately, so v6 sockets must not take v4 traffic. */
    if (ss->ss_family == AF_INET6 &&
        (rc = set_int_opt(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1, "IPV6_V6ONLY", a)) != 0)
        goto fail;
    if (type == SOCK_DGRAM && addr_is_wildcard(ss)) {
        if (ss->ss_family == AF_INET)
            rc = set_int_opt(fd, IPPROTO_IP, IP_PKTINFO, 1, "IP_PKTINFO", a);
        else
            rc = set_int_opt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1, "IPV6_RECVPKTINFO", a);
        if (rc != 0)
            goto fail;
    }
    if (bind(fd, (const struct sockaddr *)ss, len) != 0) {
        bind_errno = errno;
        rc = ck_error_set(CK_ERR_IO, "bind %s/%s: %s", proto, a, strerror(errno));
        goto fail;
    }
    *out_fd = fd;
    return 0;
fail:
    close(fd);
    return rc;
}

/* Checks that nobody else holds the address (SO_REUSEPORT would otherwise let a second daemon
 * silently share the port) and resolves port 0 to one port free for both UDP and TCP. */
static int
probe_addr(struct ck_net_server *srv, size_t i)
{
    struct sockaddr_storage *ss = &srv->addrs[i];
    int ufd = -1, tfd = -1, rc = 0;

    if (!srv->cfg.no_udp) {
        if ((rc = open_bound(ss, srv->addr_lens[i], SOCK_DGRAM, false, &ufd)) != 0)
            goto out;
        if (addr_port(ss) == 0) {
            struct sockaddr_storage got;
            socklen_t len = sizeof(got);
            if (getsockname(ufd, (struct sockaddr *)&got, &len) != 0) {
                rc = ck_error_set(CK_ERR_IO, "getsockname: %s", strerror(errno));
                goto out;
            }
            addr_set_port(ss, addr_port(&got));
        }
    }
    if (!srv->cfg.no_tcp) {
        if ((rc = open_bound(ss, srv->addr_lens[i], SOCK_STREAM, false, &tfd)) != 0)
            goto out;
        if (addr_port(ss) == 0) {
            struct sockaddr_storage got;
            socklen_t len = sizeof(got);
            if (getsockname(tfd, (struct sockaddr *)&got, &len) != 0) {
                rc = ck_error_set(CK_ERR_IO, "getsockname: %s", strerror(errno));
                goto out;
            }
            addr_set_port(ss, addr_port(&got));
        }
    }
out:
    if (ufd >= 0)
        close(ufd);
    if (tfd >= 0)
        close(tfd);
    return rc;
}

static int
add_addr(struct ck_net_server *srv, const struct sockaddr *sa, socklen_t len, const char *spec)
{
    if (len > sizeof(struct sockaddr_storage))
        return ck_error_set(CK_ERR_CONFIG, "listen address \"%s\": odd address size", spec);
    for (size_t i = 0; i < srv->n_addrs; i++)
        if (srv->addr_lens[i] == len && memcmp(&srv->addrs[i], sa, len) == 0)
            return 0;
    if (srv->n_addrs >= CK_NET_MAX_ADDRS)
        return ck_error_set(CK_ERR_LIMIT, "more than %d listen addresses", CK_NET_MAX_ADDRS);
    memset(&srv->addrs[srv->n_addrs], 0, sizeof(srv->addrs[0]));
    memcpy(&srv->addrs[srv->n_addrs], sa, len);
    srv->addr_lens[srv->n_addrs] = len;
    srv->n_addrs++;
    return 0;
}

static int
resolve_addrs(struct ck_net_server *srv)
{
    srv->n_addrs = 0;
    srv->any_port0 = false;
    for (size_t i = 0; i < srv->cfg.n_listen; i++) {
        const char *spec = srv->listen[i];
        char host[256], port_str[8];
        uint16_t port;
        struct addrinfo hints, *res = NULL;
        int rc, grc;

        rc = ck_net_parse_listen(spec, srv->cfg.default_port, host, sizeof(host), &port);
        if (rc != 0)
            return rc;
        srv->any_port0 |= port == 0;
        snprintf(port_str, sizeof(port_str), "%u", port);
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_DGRAM;
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
        grc = getaddrinfo(host[0] != '\0' ? host : NULL, port_str, &hints, &res);
        if (grc != 0)
            return ck_error_set(CK_ERR_CONFIG, "listen address \"%s\": %s", spec,
                                gai_strerror(grc));
        for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
            if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
                continue;
            /* "Every address" on a host without IPv6 means every IPv4 address. */
            if (host[0] == '\0' && ai->ai_family == AF_INET6) {
                int t = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
                if (t < 0 && errno == EAFNOSUPPORT)
                    continue;
                if (t >= 0)
                    close(t);
            }
            if ((rc = add_addr(srv, ai->ai_addr, ai->ai_addrlen, spec)) != 0) {
                freeaddrinfo(res);
                return rc;
            }
        }
        freeaddrinfo(res);
    }
    if (srv->n_addrs == 0)
        return ck_error_set(CK_ERR_CONFIG, "no usable listen address");
    return 0;
}

/* ---- connections ------------------------------------------------------------------------ */

static void
lru_unlink(struct worker *w, struct conn *c)
{
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        w->lru_head = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    else
        w->lru_tail = c->prev;
    c->prev = c->next = NULL;
}

static void
lru_append(struct worker *w, struct conn *c)
{
    c->prev = w->lru_tail;
    c->next = NULL;
    if (w->lru_tail != NULL)
        w->lru_tail->next = c;
    else
        w->lru_head = c;
    w->lru_tail = c;
}

static void
timer_arm(struct worker *w, int64_t deadline_ms)
{
    struct itimerspec its;

    memset(&its, 0, sizeof(its));
    if (deadline_ms > 0) {
        its.it_value.tv_sec = deadline_ms / 1000;
        its.it_value.tv_nsec = (long)(deadline_ms % 1000) * 1000000L;
    }
    /* A disarmed (all-zero) value stops the timer; failure only delays idle expiry. */
    (void)timerfd_settime(w->timer.fd, TFD_TIMER_ABSTIME, &its, NULL);
    w->timer_deadline = deadline_ms;
}

/* Records activity: the connection moves to the most-recent end. The timer is re-armed lazily:
 * when it fires early it simply finds nothing expired and re-arms for the new oldest. */
static void
conn_touch(struct worker *w, struct conn *c)
{
    c->last_ms = ck_monotonic_ms();
    if (w->lru_tail != c) {
        lru_unlink(w, c);
        lru_append(w, c);
    }
    if (w->timer_deadline == 0)
        timer_arm(w, c->last_ms + w->srv->cfg.tcp_idle_timeout_ms);
}

static void
conn_free(struct conn *c)
{
    free(c->body);
    free(c->out);
    free(c);
}

static void
conn_close(struct worker *w, struct conn *c)
{
    if (c->ev.fd < 0)
        return;
    close(c->ev.fd);
    c->ev.fd = -1;
    lru_unlink(w, c);
    w->n_conns--;
    /* Later events of the current epoll batch may still point at c. */
    c->next = w->graveyard;
    w->graveyard = c;
}

static int
conn_set_events(struct worker *w, struct conn *c, uint32_t events)
{
    struct epoll_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.events = events;
    ev.data.ptr = &c->ev;
    return epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->ev.fd, &ev);
}

/* Sends a framed reply whose payload follows the framing's prefix in w->tcp_reply. Returns -1 if
 * c was closed. */
static int
conn_send_reply(struct worker *w, struct conn *c, size_t len)
{
    const struct ck_net_framing *f = w->srv->cfg.tcp_framing;
    uint8_t *p = w->tcp_reply;
    size_t total = f->reply_prefix + len, sent = 0;

    if (f->write_prefix != NULL)
        f->write_prefix(p, len);
    while (sent < total) {
        ssize_t r = send(c->ev.fd, p + sent, total - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            conn_close(w, c);
            return -1;
        }
        sent += (size_t)r;
    }
    if (sent == total) {
        if (c->close_after_write) {
            conn_close(w, c);
            return -1;
        }
        return 0;
    }
    /* The peer reads slowly: keep the rest and stop reading requests until it is gone, which
     * bounds the per-connection buffering to one reply. */
    c->out_len = total - sent;
    c->out_pos = 0;
    c->out = malloc(c->out_len);
    if (c->out == NULL || conn_set_events(w, c, EPOLLOUT) != 0) {
        conn_close(w, c);
        return -1;
    }
    memcpy(c->out, p + sent, c->out_len);
    return 0;
}

static void
conn_flush(struct worker *w, struct conn *c)
{
    while (c->out_pos < c->out_len) {
        ssize_t r = send(c->ev.fd, c->out + c->out_pos, c->out_len - c->out_pos,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            conn_close(w, c);
            return;
        }
        c->out_pos += (size_t)r;
        conn_touch(w, c);
    }
    free(c->out);
    c->out = NULL;
    c->out_len = c->out_pos = 0;
    if (c->close_after_write || conn_set_events(w, c, EPOLLIN) != 0)
        conn_close(w, c);
}

/* Runs the handler on a complete (or oversized) request. Returns -1 if c was closed. */
static int
conn_dispatch(struct worker *w, struct conn *c, const uint8_t *data, size_t len, unsigned flags)
{
    struct ck_net_request req;
    size_t reply_len = 0;
    int rc;

    memset(&req, 0, sizeof(req));
    req.data = data;
    req.len = len;
    req.transport = CK_NET_TCP;
    req.flags = flags;
    req.peer = (const struct sockaddr *)&c->peer.addr;
    req.peer_len = c->peer.addr_len;
    req.remote = &c->peer;
    req.local = (const struct sockaddr *)&c->local;
    req.local_len = c->local_len;
    rc = w->srv->cb.handler(w->state, &req, w->tcp_reply + w->srv->cfg.tcp_framing->reply_prefix,
                            w->srv->cfg.max_reply, &reply_len);
    if (rc < 0 || reply_len == 0 || reply_len > w->srv->cfg.max_reply) {
        conn_close(w, c);
        return -1;
    }
    return conn_send_reply(w, c, reply_len);
}

/* Reads one step; returns 1 to go on, 0 to wait for more input, -1 if c was closed. */
static int
conn_read_some(struct worker *w, struct conn *c, uint8_t *dst, size_t want, size_t *got)
{
    ssize_t r;

    do {
        r = read(c->ev.fd, dst, want);
    } while (r < 0 && errno == EINTR);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 0;
    if (r <= 0) {
        conn_close(w, c);
        return -1;
    }
    *got += (size_t)r;
    conn_touch(w, c);
    return 1;
}

static void
conn_read(struct worker *w, struct conn *c)
{
    const struct ck_net_framing *f = w->srv->cfg.tcp_framing;

    for (int nreq = 0; nreq < TCP_REQS_PER_WAKEUP;) {
        int rc;

        if (!c->have_len) {
            size_t need = 0, off = 0, len = 0;
            enum ck_net_frame fr;

            if (c->hdr_need > c->hdr_got) {
                rc = conn_read_some(w, c, c->hdr + c->hdr_got, c->hdr_need - c->hdr_got,
                                    &c->hdr_got);
                if (rc <= 0)
                    return;
                if (c->hdr_got < c->hdr_need)
                    continue;
            }
            fr = f->parse(c->hdr, c->hdr_got, w->srv->cfg.max_request, &need, &off, &len);
            if (fr == CK_NET_FRAME_NEED) {
                /* A framing asking for nothing more, or for more than the header room, is a
                 * bug: end the connection rather than spin or overflow. */
                if (need <= c->hdr_got || need > sizeof(c->hdr)) {
                    conn_close(w, c);
                    return;
                }
                c->hdr_need = need;
                continue;
            }
            /* The message is refused from its header alone (over the limit, or invalid like
             * RFC 4120's reserved bit) without reading its body, and the connection ends
             * after the one reply. */
            if (fr != CK_NET_FRAME_MESSAGE || off > c->hdr_got || len > w->srv->cfg.max_request ||
                c->hdr_got - off > len) {
                c->close_after_write = true;
                conn_dispatch(w, c, NULL, len, CK_NET_REQ_OVERSIZED);
                return;
            }
            c->have_len = true;
            c->body_len = len;
            c->body_got = c->hdr_got - off;
            if (len > 0) {
                if ((c->body = malloc(len)) == NULL) {
                    conn_close(w, c);
                    return;
                }
                memcpy(c->body, c->hdr + off, c->body_got);
            }
        }
        if (c->body_got < c->body_len) {
            rc = conn_read_some(w, c, c->body + c->body_got, c->body_len - c->body_got,
                                &c->body_got);
            if (rc <= 0)
                return;
            if (c->body_got < c->body_len)
                continue;
        }
        {
            uint8_t *body = c->body;
            size_t len = c->body_len;

            c->body = NULL;
            c->have_len = false;
            c->hdr_got = c->hdr_need = 0;
            c->body_len = c->body_got = 0;
            rc = conn_dispatch(w, c, body != NULL ? body : c->hdr, len, 0);
            free(body);
        }
        nreq++;
        if (rc < 0 || c->out != NULL)
            return;
    }
}

static void
accept_ready(struct worker *w, struct sock *l)
{
    for (int k = 0; k < ACCEPTS_PER_WAKEUP; k++) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof(peer);
        struct epoll_event ev;
        struct conn *c;
        int fd;

        fd = accept4(l->ev.fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if ((errno == EMFILE || errno == ENFILE) && w->reserve_fd >= 0) {
                /* Out of descriptors: accept and drop this one using the spare, so the
                 * listener does not stay readable forever. */
                close(w->reserve_fd);
                fd = accept4(l->ev.fd, NULL, NULL, SOCK_CLOEXEC);
                if (fd >= 0)
                    close(fd);
                w->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                continue;
            }
            return;
        }
        /* Full: the least recently active connection makes room (a slow or idle client
         * cannot lock newcomers out). */
        if (w->n_conns >= w->srv->cfg.tcp_max_conns && w->lru_head != NULL)
            conn_close(w, w->lru_head);
        c = calloc(1, sizeof(*c));
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->ev.kind = EV_CONN;
        c->ev.fd = fd;
        ck_peer_set(&c->peer, (const struct sockaddr *)&peer, plen);
        c->local_len = sizeof(c->local);
        if (getsockname(fd, (struct sockaddr *)&c->local, &c->local_len) != 0) {
            c->local = l->local;
            c->local_len = l->local_len;
        }
        memset(&ev, 0, sizeof(ev));
        ev.events = EPOLLIN;
        ev.data.ptr = &c->ev;
        if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            close(fd);
            free(c);
            continue;
        }
        w->n_conns++;
        lru_append(w, c);
        conn_touch(w, c);
    }
}

static void
timer_ready(struct worker *w)
{
    uint64_t ticks;
    int64_t now = ck_monotonic_ms();
    int64_t idle = w->srv->cfg.tcp_idle_timeout_ms;

    if (read(w->timer.fd, &ticks, sizeof(ticks)) < 0) {
        /* Spurious wake-up (EAGAIN); the checks below are still correct. */
    }
    while (w->lru_head != NULL && w->lru_head->last_ms + idle <= now)
        conn_close(w, w->lru_head);
    timer_arm(w, w->lru_head != NULL ? w->lru_head->last_ms + idle : 0);
}

/* ---- UDP -------------------------------------------------------------------------------- */

/* Finds the destination address of a datagram received on a wildcard socket. */
static bool
udp_local_addr(const struct msghdr *mh, const struct sock *s, struct sockaddr_storage *local,
               socklen_t *local_len, unsigned *ifindex)
{
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm != NULL;
         cm = CMSG_NXTHDR((struct msghdr *)mh, cm)) {
        if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO) {
            struct in_pktinfo pi;
            struct sockaddr_in *sin = (struct sockaddr_in *)local;

            memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
            memset(sin, 0, sizeof(*sin));
            sin->sin_family = AF_INET;
            sin->sin_port = ((const struct sockaddr_in *)&s->local)->sin_port;
            /* A broadcast or multicast destination cannot be a source: use the address
             * the kernel would pick for the reply instead. */
            if (IN_MULTICAST(ntohl(pi.ipi_addr.s_addr)) ||
                pi.ipi_addr.s_addr == htonl(INADDR_BROADCAST))
                sin->sin_addr = pi.ipi_spec_dst;
            else
                sin->sin_addr = pi.ipi_addr;
            *local_len = sizeof(*sin);
            *ifindex = 0;
            return true;
        }
        if (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_PKTINFO) {
            struct in6_pktinfo pi;
            struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)local;

            memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
            if (IN6_IS_ADDR_MULTICAST(&pi.ipi6_addr))
                return false;
            memset(sin6, 0, sizeof(*sin6));
            sin6->sin6_family = AF_INET6;
            sin6->sin6_port = ((const struct sockaddr_in6 *)&s->local)->sin6_port;
            sin6->sin6_addr = pi.ipi6_addr;
            if (IN6_IS_ADDR_LINKLOCAL(&pi.ipi6_addr))
                sin6->sin6_scope_id = (uint32_t)pi.ipi6_ifindex;
            *local_len = sizeof(*sin6);
            *ifindex = (unsigned)pi.ipi6_ifindex;
            return true;
        }
    }
    return false;
}

static void
udp_set_source(struct msghdr *mh, union ctrl_buf *cb, const struct sockaddr_storage *local,
               unsigned ifindex)
{
    struct cmsghdr *cm;

    memset(cb, 0, sizeof(*cb));
    mh->msg_control = cb->buf;
    if (local->ss_family == AF_INET) {
        struct in_pktinfo pi;

        memset(&pi, 0, sizeof(pi));
        pi.ipi_spec_dst = ((const struct sockaddr_in *)local)->sin_addr;
        mh->msg_controllen = CMSG_SPACE(sizeof(pi));
        cm = CMSG_FIRSTHDR(mh);
        cm->cmsg_level = IPPROTO_IP;
        cm->cmsg_type = IP_PKTINFO;
        cm->cmsg_len = CMSG_LEN(sizeof(pi));
        memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
    } else {
        struct in6_pktinfo pi;

        memset(&pi, 0, sizeof(pi));
        pi.ipi6_addr = ((const struct sockaddr_in6 *)local)->sin6_addr;
        pi.ipi6_ifindex = ifindex;
        mh->msg_controllen = CMSG_SPACE(sizeof(pi));
        cm = CMSG_FIRSTHDR(mh);
        cm->cmsg_level = IPPROTO_IPV6;
        cm->cmsg_type = IPV6_PKTINFO;
        cm->cmsg_len = CMSG_LEN(sizeof(pi));
        memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
    }
}

/* ---- admission control hooks (admission.c decides) --------------------------------------- */

#define ADM_REPORT_MS 1000

static int64_t
clock_ns(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The kernel's receive time of a datagram (SO_TIMESTAMPNS, CLOCK_REALTIME), 0 if absent. */
static int64_t
udp_arrival_ns(const struct msghdr *mh)
{
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm != NULL;
         cm = CMSG_NXTHDR((struct msghdr *)mh, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
            struct timespec ts;

            memcpy(&ts, CMSG_DATA(cm), sizeof(ts));
            return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
        }
    }
    return 0;
}

/* Calls the report function with what was dropped since the last report, at most once per
 * ADM_REPORT_MS, by one worker at a time. */
static void
admission_report(struct ck_net_server *srv)
{
    struct ck_admission_stats tot, since;
    int64_t now = ck_monotonic_ms();
    uint64_t drops = atomic_load_explicit(&srv->adm_drops, memory_order_relaxed);

    if (srv->cfg.admission.report == NULL ||
        drops == atomic_load_explicit(&srv->adm_drops_reported, memory_order_relaxed) ||
        now - atomic_load_explicit(&srv->adm_report_ms, memory_order_relaxed) < ADM_REPORT_MS ||
        atomic_flag_test_and_set(&srv->adm_reporting))
        return;
    ck_net_server_admission_stats(srv, &tot);
    since = tot;
    since.admitted -= srv->adm_last.admitted;
    since.dropped_stale -= srv->adm_last.dropped_stale;
    since.dropped_share -= srv->adm_last.dropped_share;
    since.evicted -= srv->adm_last.evicted;
    srv->adm_last = tot;
    atomic_store_explicit(&srv->adm_drops_reported, drops, memory_order_relaxed);
    atomic_store_explicit(&srv->adm_report_ms, now, memory_order_relaxed);
    srv->cfg.admission.report(srv->cfg.admission.report_arg, &since, &tot);
    atomic_flag_clear(&srv->adm_reporting);
}

/* How long the worker may sleep so that drops not yet reported are reported in time. */
static int
admission_idle(struct worker *w, int timeout)
{
    struct ck_net_server *srv = w->srv;
    int64_t left;

    if (w->adm == NULL || srv->cfg.admission.report == NULL ||
        atomic_load_explicit(&srv->adm_drops, memory_order_relaxed) ==
            atomic_load_explicit(&srv->adm_drops_reported, memory_order_relaxed))
        return timeout;
    left = ADM_REPORT_MS - (ck_monotonic_ms() -
                            atomic_load_explicit(&srv->adm_report_ms, memory_order_relaxed));
    if (left <= 0) {
        admission_report(srv);
        left = ADM_REPORT_MS;
    }
    return timeout < 0 || timeout > left ? (int)left : timeout;
}

static void
udp_ready(struct worker *w, struct sock *s)
{
    for (int batch = 0; batch < UDP_BATCHES_PER_WAKEUP; batch++) {
        int n, nsend = 0, off = 0, prep;

        /* The headers point at fixed slots: only what recvmmsg wrote (name and control
         * lengths, flags) needs resetting, and only in the entries it used. One request per
         * wake-up is the common case at low load, and rewriting all UDP_BATCH headers each time
         * cost a few cache lines per request. */
        bool ctrl = s->wildcard || w->adm != NULL;
        int64_t now_rt = 0, t0 = 0;
        unsigned admitted = 0, dropped = 0;

        prep = w->rmsg_for == s ? w->rmsg_dirty : UDP_BATCH;
        for (int i = 0; i < prep; i++) {
            struct msghdr *mh = &w->rmsg[i].msg_hdr;

            mh->msg_name = &w->slots[i].peer.addr;
            mh->msg_namelen = sizeof(w->slots[i].peer.addr);
            mh->msg_iov = &w->slots[i].riov;
            mh->msg_iovlen = 1;
            mh->msg_control = ctrl ? w->slots[i].rctrl.buf : NULL;
            mh->msg_controllen = ctrl ? sizeof(w->slots[i].rctrl.buf) : 0;
            mh->msg_flags = 0;
            w->rmsg[i].msg_len = 0;
        }
        w->rmsg_for = s;
        n = recvmmsg(s->ev.fd, w->rmsg, UDP_BATCH, MSG_DONTWAIT, NULL);
        /* The entry after the last one received may have been written before the kernel
         * found the queue empty. */
        w->rmsg_dirty = n <= 0 ? 1 : n < UDP_BATCH ? n + 1 : UDP_BATCH;
        if (n <= 0)
            return;
        atomic_fetch_add_explicit(&w->udp_requests, (uint64_t)n, memory_order_relaxed);
        if (w->adm != NULL) {
            now_rt = clock_ns(CLOCK_REALTIME);
            t0 = clock_ns(CLOCK_MONOTONIC);
        }
        for (int i = 0; i < n; i++) {
            struct msghdr *mh = &w->rmsg[i].msg_hdr;
            struct msghdr *sh = &w->smsg[nsend].msg_hdr;
            struct sockaddr_storage local;
            socklen_t local_len = s->local_len;
            struct ck_net_request req;
            uint8_t *reply = w->sbufs + (size_t)nsend * w->udp_reply_cap;
            size_t reply_len = 0;
            unsigned ifindex = 0;
            bool have_src = false;

            /* Longer than max_dgram: not a request we would accept. */
            if ((mh->msg_flags & MSG_TRUNC) != 0)
                continue;
            /* Admission control: shed before anything is decoded. */
            if (w->adm != NULL) {
                w->slots[i].peer.addr_len = mh->msg_namelen;
                if (ck_admission_check(w->adm, (const struct sockaddr *)&w->slots[i].peer.addr,
                                       udp_arrival_ns(mh), now_rt) != CK_ADMIT) {
                    dropped++;
                    continue;
                }
                admitted++;
            }
            if (s->wildcard)
                have_src = udp_local_addr(mh, s, &local, &local_len, &ifindex);
            if (!have_src) {
                local = s->local;
                local_len = s->local_len;
            }
            memset(&req, 0, sizeof(req));
            req.data = w->slots[i].riov.iov_base;
            req.len = w->rmsg[i].msg_len;
            req.transport = CK_NET_UDP;
            w->slots[i].peer.addr_len = mh->msg_namelen;
            req.peer = (const struct sockaddr *)&w->slots[i].peer.addr;
            req.peer_len = mh->msg_namelen;
            req.remote = &w->slots[i].peer;
            req.local = (const struct sockaddr *)&local;
            req.local_len = local_len;
            if (w->srv->cb.handler(w->state, &req, reply, w->udp_reply_cap, &reply_len) < 0 ||
                reply_len == 0 || reply_len > w->udp_reply_cap)
                continue;
            memset(sh, 0, sizeof(*sh));
            sh->msg_name = &w->slots[i].peer.addr;
            sh->msg_namelen = mh->msg_namelen;
            w->slots[nsend].siov.iov_base = reply;
            w->slots[nsend].siov.iov_len = reply_len;
            sh->msg_iov = &w->slots[nsend].siov;
            sh->msg_iovlen = 1;
            if (have_src)
                udp_set_source(sh, &w->slots[nsend].sctrl, &local, ifindex);
            nsend++;
        }
        while (off < nsend) {
            int r = sendmmsg(s->ev.fd, w->smsg + off, (unsigned)(nsend - off), MSG_DONTWAIT);
            if (r < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    break;  /* socket buffer full: UDP replies may be lost like requests */
                off++;      /* the error belongs to the first message: skip it */
                continue;
            }
            off += r;
        }
        if (w->adm != NULL) {
            ck_admission_served(w->adm, admitted, clock_ns(CLOCK_MONOTONIC) - t0);
            if (dropped > 0) {
                atomic_fetch_add_explicit(&w->srv->adm_drops, dropped, memory_order_relaxed);
                admission_report(w->srv);
            }
        }
        if (n < UDP_BATCH)
            return;
    }
}

/* ---- CPU steering ------------------------------------------------------------------------ */

/* With one worker per CPU, worker i runs on CPU i and a BPF program attached to each address's
 * SO_REUSEPORT group hands a datagram to the socket of the CPU it arrived on. A request is then
 * received, answered, and its sender woken on one CPU: no cross-CPU wake-up (an inter-processor
 * interrupt, dear in a VM) and warm caches. Under one-request-in-flight load (libkrb5 clients)
 * this cut the KDC CPU per exchange by ~20-35 % on the 2-vCPU VM of docs/PERFORMANCE.md.
 *
 * It assumes arrivals spread over the CPUs (NIC receive queues, RPS, or local clients on several
 * CPUs). Where they do not (one receive queue without RPS), one worker would get everything while
 * the others idle. Worker 0 therefore checks every steer_check_ms: when for STEER_STRIKES checks
 * in a row (each with at least STEER_MIN_REQS datagrams) a worker was busy at least STEER_BUSY of
 * the time while another got at most STEER_STARVED of the datagrams, steering is suspended (BPF
 * detached, workers unpinned: the address hash spreads the datagrams again) and retried after a
 * backoff that doubles up to STEER_BACKOFF_MAX. Busy is CPU time over wall time, which a machine
 * shared with other work keeps well below 1 even for a saturated worker: hence the low bar. */
#define STEER_CHECK_MS 1000
#define STEER_STRIKES 3
#define STEER_MIN_REQS 50
#define STEER_BUSY 0.4
#define STEER_STARVED 0.05
#define STEER_BACKOFF_MIN_MS (30 * 1000)
#define STEER_BACKOFF_MAX_MS (3600 * 1000)

/* Whether the workers are exactly the CPUs this process may run on, numbered 0..n-1 (the
 * classic BPF program below can only compute "CPU number modulo n"). */
static bool
steering_possible(const struct ck_net_server *srv)
{
    cpu_set_t set;

    if (sched_getaffinity(0, sizeof(set), &set) != 0 || CPU_COUNT(&set) != srv->n_workers)
        return false;
    for (int i = 0; i < srv->n_workers; i++)
        if (!CPU_ISSET(i, &set))
            return false;
    return true;
}

/* Makes the kernel pick, in each address's SO_REUSEPORT group of UDP sockets, the socket of the
 * worker whose index is the number of the CPU the datagram arrived on. Workers bind in index
 * order, so a socket's place in its group is its worker's index. */
static int
attach_steering(struct ck_net_server *srv, bool attach)
{
    struct sock_filter code[] = {
        {BPF_LD | BPF_W | BPF_ABS, 0, 0, (uint32_t)(SKF_AD_OFF + SKF_AD_CPU)},
        {BPF_ALU | BPF_MOD | BPF_K, 0, 0, (uint32_t)srv->n_workers},
        {BPF_RET | BPF_A, 0, 0, 0},
    };
    struct sock_fprog prog = {(unsigned short)(sizeof(code) / sizeof(code[0])), code};

    for (size_t i = 0; i < srv->n_addrs; i++) {
        int fd = srv->workers[0].udp[i].ev.fd, rc;

        if (fd < 0)
            continue;
        if (attach)
            rc = setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof(prog));
        else /* the value is ignored, but the kernel wants an int's worth */
            rc = setsockopt(fd, SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, &(int){0}, sizeof(int));
        if (rc != 0)
            return ck_error_set(CK_ERR_IO, "%s: %s",
                                attach ? "SO_ATTACH_REUSEPORT_CBPF" : "SO_DETACH_REUSEPORT_BPF",
                                strerror(errno));
    }
    srv->steer_on = attach;
    return 0;
}

static void
pin_workers(struct ck_net_server *srv, bool pin)
{
    for (int i = 0; i < srv->n_workers; i++) {
        cpu_set_t one;

        CPU_ZERO(&one);
        CPU_SET(i, &one);
        /* Best effort: unpinned, a worker still gets its CPU's datagrams, only from afar. */
        (void)pthread_setaffinity_np(srv->workers[i].thread, sizeof(cpu_set_t),
                                     pin ? &one : &srv->cpus);
    }
}

static uint64_t
thread_cpu_ns(pthread_t t)
{
    struct timespec ts;
    clockid_t c;

    if (pthread_getcpuclockid(t, &c) != 0 || clock_gettime(c, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void
steer_timer_arm(struct ck_net_server *srv)
{
    struct itimerspec its;

    memset(&its, 0, sizeof(its));
    its.it_value.tv_sec = srv->steer_check_ms / 1000;
    its.it_value.tv_nsec = (long)(srv->steer_check_ms % 1000) * 1000000L;
    its.it_interval = its.it_value;
    (void)timerfd_settime(srv->steer_timer.fd, 0, &its, NULL);
}

/* Worker 0, every steer_check_ms while steering is configured. */
static void
steer_check(struct worker *w)
{
    struct ck_net_server *srv = w->srv;
    double busy_max = 0, interval = (double)srv->steer_check_ms * 1e6;
    uint64_t ticks, total = 0, d_reqs[CK_NET_MAX_WORKERS];
    bool starved = false;
    int64_t now = ck_monotonic_ms();

    if (read(srv->steer_timer.fd, &ticks, sizeof(ticks)) < 0) {
        /* Spurious wake-up: the check below is still correct. */
    }
    for (int i = 0; i < srv->n_workers; i++) {
        uint64_t ns = thread_cpu_ns(srv->workers[i].thread);
        uint64_t reqs = atomic_load_explicit(&srv->workers[i].udp_requests, memory_order_relaxed);
        double busy = (double)(ns - srv->steer_cpu_ns[i]) / interval;

        d_reqs[i] = reqs - srv->steer_reqs[i];
        total += d_reqs[i];
        srv->steer_cpu_ns[i] = ns;
        srv->steer_reqs[i] = reqs;
        busy_max = busy > busy_max ? busy : busy_max;
    }
    for (int i = 0; i < srv->n_workers; i++)
        starved |= (double)d_reqs[i] <= STEER_STARVED * (double)total;
    if (!srv->steer_on) {
        if (now < srv->steer_resume_ms)
            return;
        if (attach_steering(srv, true) == 0)
            pin_workers(srv, true);
        srv->steer_strikes = 0;
        return;
    }
    if (total >= STEER_MIN_REQS && busy_max >= STEER_BUSY && starved)
        srv->steer_strikes++;
    else
        srv->steer_strikes = 0;
    if (srv->steer_strikes < STEER_STRIKES)
        return;
    if (attach_steering(srv, false) != 0)
        return;
    pin_workers(srv, false);
    srv->steer_strikes = 0;
    srv->steer_suspensions++;
    srv->steer_backoff_ms = srv->steer_backoff_ms == 0 ? STEER_BACKOFF_MIN_MS
                            : srv->steer_backoff_ms >= STEER_BACKOFF_MAX_MS / 2
                                ? STEER_BACKOFF_MAX_MS
                                : srv->steer_backoff_ms * 2;
    srv->steer_resume_ms = now + srv->steer_backoff_ms;
}

/* ---- worker ----------------------------------------------------------------------------- */

static void *
worker_main(void *arg)
{
    struct worker *w = arg;
    struct epoll_event evs[MAX_EVENTS];


    for (;;) {
        int timeout = admission_idle(w, w->srv->idle != NULL ? w->srv->idle(w->state) : -1);
        int n = epoll_wait(w->epfd, evs, MAX_EVENTS, timeout);
        bool stop = false;

        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (int i = 0; i < n; i++) {
            struct ev_src *src = evs[i].data.ptr;

            switch (src->kind) {
            case EV_STOP:
                stop = true;
                break;
            case EV_UDP:
                udp_ready(w, (struct sock *)src);
                break;
            case EV_LISTEN:
                accept_ready(w, (struct sock *)src);
                break;
            case EV_TIMER:
                timer_ready(w);
                break;
            case EV_STEER:
                steer_check(w);
                break;
            case EV_CONN: {
                struct conn *c = (struct conn *)src;
                if (c->ev.fd < 0)
                    break;
                if (c->out != NULL) {
                    if ((evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) != 0)
                        conn_flush(w, c);
                } else {
                    conn_read(w, c);
                }
                break;
            }
            }
        }
        while (w->graveyard != NULL) {
            struct conn *c = w->graveyard;
            w->graveyard = c->next;
            conn_free(c);
        }
        if (stop)
            break;
    }
    return NULL;
}

static void
close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* Frees everything a worker owns; safe on a partly set-up worker. */
static void
worker_cleanup(struct worker *w)
{
    while (w->lru_head != NULL)
        conn_close(w, w->lru_head);
    while (w->graveyard != NULL) {
        struct conn *c = w->graveyard;
        w->graveyard = c->next;
        conn_free(c);
    }
    for (size_t i = 0; i < w->n_socks; i++) {
        close_fd(&w->udp[i].ev.fd);
        close_fd(&w->tcp[i].ev.fd);
    }
    free(w->udp);
    free(w->tcp);
    w->udp = w->tcp = NULL;
    w->n_socks = 0;
    close_fd(&w->timer.fd);
    close_fd(&w->epfd);
    close_fd(&w->reserve_fd);
    free(w->rbufs);
    free(w->sbufs);
    free(w->tcp_reply);
    free(w->slots);
    free(w->rmsg);
    free(w->smsg);
    ck_admission_free(w->adm);
    w->adm = NULL;
    w->rbufs = w->sbufs = w->tcp_reply = NULL;
    w->slots = NULL;
    w->rmsg = w->smsg = NULL;
}

static int
epoll_add(struct worker *w, struct ev_src *src)
{
    struct epoll_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.ptr = src;
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, src->fd, &ev) != 0)
        return ck_error_set(CK_ERR_IO, "epoll_ctl: %s", strerror(errno));
    return 0;
}

static int
worker_setup(struct ck_net_server *srv, struct worker *w)
{
    const struct ck_net_config *cfg = &srv->cfg;
    int rc;

    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (w->epfd < 0)
        return ck_error_set(CK_ERR_IO, "epoll_create1: %s", strerror(errno));
    w->timer.kind = EV_TIMER;
    w->timer.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (w->timer.fd < 0)
        return ck_error_set(CK_ERR_IO, "timerfd_create: %s", strerror(errno));
    w->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    w->stop.kind = EV_STOP;
    w->stop.fd = srv->stop_fd;
    if ((rc = epoll_add(w, &w->timer)) != 0 || (rc = epoll_add(w, &w->stop)) != 0)
        return rc;

    w->udp = calloc(srv->n_addrs, sizeof(*w->udp));
    w->tcp = calloc(srv->n_addrs, sizeof(*w->tcp));
    if (w->udp == NULL || w->tcp == NULL)
        return ck_error_set(CK_ERR_NOMEM, "worker sockets");
    w->n_socks = srv->n_addrs;
    for (size_t i = 0; i < srv->n_addrs; i++) {
        w->udp[i].ev.fd = w->tcp[i].ev.fd = -1;
    }
    for (size_t i = 0; i < srv->n_addrs; i++) {
        struct sock *u = &w->udp[i], *t = &w->tcp[i];

        u->ev.kind = EV_UDP;
        t->ev.kind = EV_LISTEN;
        u->local = t->local = srv->addrs[i];
        u->local_len = t->local_len = srv->addr_lens[i];
        u->wildcard = t->wildcard = addr_is_wildcard(&srv->addrs[i]);
        if (!cfg->no_udp) {
            rc = open_bound(&srv->addrs[i], srv->addr_lens[i], SOCK_DGRAM, true, &u->ev.fd);
            if (rc != 0)
                return rc;
            set_rcvbuf(u->ev.fd, cfg->udp_rcvbuf);
            /* Admission control needs each datagram's arrival time. */
            if (cfg->admission.enabled &&
                (rc = set_int_opt(u->ev.fd, SOL_SOCKET, SO_TIMESTAMPNS, 1, "SO_TIMESTAMPNS",
                                  "udp")) != 0)
                return rc;
            if ((rc = epoll_add(w, &u->ev)) != 0)
                return rc;
        }
        if (!cfg->no_tcp) {
            rc = open_bound(&srv->addrs[i], srv->addr_lens[i], SOCK_STREAM, true, &t->ev.fd);
            if (rc != 0)
                return rc;
            if (listen(t->ev.fd, cfg->tcp_backlog) != 0) {
                char a[CK_NET_ADDRSTRLEN];
                ck_net_addr_format((struct sockaddr *)&srv->addrs[i], a, sizeof(a));
                return ck_error_set(CK_ERR_IO, "listen tcp/%s: %s", a, strerror(errno));
            }
            if ((rc = epoll_add(w, &t->ev)) != 0)
                return rc;
        }
    }

    if (!cfg->no_udp) {
        if (CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(struct timespec)) >
                CTRL_SIZE ||
            CMSG_SPACE(sizeof(struct in_pktinfo)) + CMSG_SPACE(sizeof(struct timespec)) >
                CTRL_SIZE)
            return ck_error_set(CK_ERR_UNSUPPORTED, "pktinfo control message too large");
        if (cfg->admission.enabled && (rc = ck_admission_new(&cfg->admission, 0, &w->adm)) != 0)
            return rc;
        w->udp_reply_cap = cfg->max_reply < UDP_MAX_PAYLOAD ? cfg->max_reply : UDP_MAX_PAYLOAD;
        /* Both limits are checked in ck_net_server_new; the products are checked again here
         * because an overflow would make every slot after the first point past the buffer. */
        if (cfg->max_dgram == 0 || cfg->max_dgram > SIZE_MAX / UDP_BATCH ||
            w->udp_reply_cap == 0 || w->udp_reply_cap > SIZE_MAX / UDP_BATCH)
            return ck_error_set(CK_ERR_LIMIT, "UDP batch buffers: %zu-byte datagrams, "
                                "%zu-byte replies", cfg->max_dgram, w->udp_reply_cap);
        w->rbufs = malloc(UDP_BATCH * cfg->max_dgram);
        w->sbufs = malloc(UDP_BATCH * w->udp_reply_cap);
        w->slots = calloc(UDP_BATCH, sizeof(*w->slots));
        w->rmsg = calloc(UDP_BATCH, sizeof(*w->rmsg));
        w->smsg = calloc(UDP_BATCH, sizeof(*w->smsg));
        if (w->rbufs == NULL || w->sbufs == NULL || w->slots == NULL || w->rmsg == NULL ||
            w->smsg == NULL)
            return ck_error_set(CK_ERR_NOMEM, "UDP batch buffers");
        for (int i = 0; i < UDP_BATCH; i++) {
            w->slots[i].riov.iov_base = w->rbufs + (size_t)i * cfg->max_dgram;
            w->slots[i].riov.iov_len = cfg->max_dgram;
        }
    }
    if (!cfg->no_tcp &&
        (w->tcp_reply = malloc(cfg->tcp_framing->reply_prefix + cfg->max_reply)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "TCP reply buffer");
    return 0;
}

/* ---- public API ------------------------------------------------------------------------- */

static int
online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    if (n < 1)
        return 1;
    return n > CK_NET_MAX_WORKERS ? CK_NET_MAX_WORKERS : (int)n;
}

int
ck_net_server_new(const struct ck_net_config *cfg, const struct ck_net_callbacks *cb,
                  struct ck_net_server **out)
{
    struct ck_net_server *srv = NULL;
    int rc = 0;

    *out = NULL;
    if (cfg == NULL || cb == NULL || cb->handler == NULL)
        return ck_error_set(CK_ERR_INVAL, "net server: missing handler");
    if (cfg->n_listen == 0 || cfg->listen == NULL)
        return ck_error_set(CK_ERR_CONFIG, "no listen address");
    if (cfg->no_udp && cfg->no_tcp)
        return ck_error_set(CK_ERR_CONFIG, "neither UDP nor TCP enabled");
    /* lib/net knows no protocol's stream framing: TCP needs the one the protocol uses. */
    if (!cfg->no_tcp && (cfg->tcp_framing == NULL || cfg->tcp_framing->parse == NULL ||
                         cfg->tcp_framing->reply_prefix > CK_NET_FRAME_HEADER_MAX ||
                         (cfg->tcp_framing->reply_prefix > 0 &&
                          cfg->tcp_framing->write_prefix == NULL)))
        return ck_error_set(CK_ERR_CONFIG, "TCP without a stream framing (set tcp_framing or "
                            "no_tcp)");
    if (cfg->workers < 0 || cfg->workers > CK_NET_MAX_WORKERS)
        return ck_error_set(CK_ERR_CONFIG, "workers must be 1..%d", CK_NET_MAX_WORKERS);
    if (cfg->max_request > CK_NET_MAX_REQUEST_LIMIT || cfg->max_reply > CK_NET_MAX_REQUEST_LIMIT)
        return ck_error_set(CK_ERR_CONFIG, "message size limit above %u", CK_NET_MAX_REQUEST_LIMIT);
    if (cfg->udp_rcvbuf < 0 || cfg->udp_rcvbuf > CK_NET_MAX_RCVBUF)
        return ck_error_set(CK_ERR_CONFIG, "UDP receive buffer of %d bytes (at most %d)",
                            cfg->udp_rcvbuf, CK_NET_MAX_RCVBUF);
    if (cfg->max_dgram > 65535)
        return ck_error_set(CK_ERR_CONFIG, "max datagram size above 65535");
    if (cfg->tcp_max_conns < 0 || cfg->tcp_idle_timeout_ms < 0 || cfg->tcp_backlog < 0)
        return ck_error_set(CK_ERR_CONFIG, "negative TCP limit");
    if (cfg->admission.enabled && (rc = ck_admission_config_check(&cfg->admission)) != 0)
        return rc;

    srv = calloc(1, sizeof(*srv));
    if (srv == NULL)
        return ck_error_set(CK_ERR_NOMEM, "net server");
    srv->stop_fd = -1;
    srv->steer_timer.fd = -1;
    atomic_flag_clear(&srv->adm_reporting);
    srv->cfg = *cfg;
    srv->cb = *cb;
    srv->listen = calloc(cfg->n_listen, sizeof(char *));
    if (srv->listen == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "net server");
        goto out;
    }
    for (size_t i = 0; i < cfg->n_listen; i++) {
        if (cfg->listen[i] == NULL || (srv->listen[i] = strdup(cfg->listen[i])) == NULL) {
            srv->cfg.n_listen = i;
            rc = ck_error_set(CK_ERR_NOMEM, "net server");
            goto out;
        }
    }
    srv->cfg.listen = (const char *const *)srv->listen;
    if (srv->cfg.max_request == 0)
        srv->cfg.max_request = CK_NET_DEFAULT_MAX_REQUEST;
    if (srv->cfg.max_dgram == 0)
        srv->cfg.max_dgram = CK_NET_DEFAULT_MAX_DGRAM;
    if (srv->cfg.max_reply == 0)
        srv->cfg.max_reply = CK_NET_DEFAULT_MAX_REPLY;
    if (srv->cfg.tcp_max_conns == 0)
        srv->cfg.tcp_max_conns = CK_NET_DEFAULT_TCP_MAX_CONNS;
    if (srv->cfg.tcp_idle_timeout_ms == 0)
        srv->cfg.tcp_idle_timeout_ms = CK_NET_DEFAULT_TCP_IDLE_MS;
    if (srv->cfg.tcp_backlog == 0)
        srv->cfg.tcp_backlog = CK_NET_DEFAULT_TCP_BACKLOG;
    srv->n_workers = cfg->workers > 0 ? cfg->workers : online_cpus();
    /* Validate the syntax now so configuration mistakes surface before anything is bound. */
    for (size_t i = 0; i < srv->cfg.n_listen; i++) {
        char host[256];
        uint16_t port;
        if ((rc = ck_net_parse_listen(srv->listen[i], cfg->default_port, host, sizeof(host),
                                      &port)) != 0)
            goto out;
    }
    *out = srv;
    srv = NULL;
out:
    ck_net_server_free(srv);
    return rc;
}

static void
stop_and_join(struct ck_net_server *srv)
{
    uint64_t one = 1;

    if (srv->stop_fd >= 0 && write(srv->stop_fd, &one, sizeof(one)) < 0) {
        /* An eventfd write fails only on counter overflow, which still leaves it readable. */
    }
    for (int i = 0; i < srv->n_workers; i++) {
        struct worker *w = &srv->workers[i];
        if (w->thread_started)
            pthread_join(w->thread, NULL);
        w->thread_started = false;
    }
}

static void
teardown(struct ck_net_server *srv)
{
    for (int i = 0; srv->workers != NULL && i < srv->n_workers; i++) {
        struct worker *w = &srv->workers[i];
        if (w->state_ready && srv->cb.worker_fini != NULL)
            srv->cb.worker_fini(i, srv->cb.arg, w->state);
        w->state_ready = false;
        w->state = NULL;
        worker_cleanup(w);
    }
    free(srv->workers);
    srv->workers = NULL;
    if (srv->stop_fd >= 0)
        close(srv->stop_fd);
    srv->stop_fd = -1;
    if (srv->steer_timer.fd >= 0)
        close(srv->steer_timer.fd);
    srv->steer_timer.fd = -1;
    srv->steer = srv->steer_on = false;
    srv->steer_strikes = 0;
    srv->steer_backoff_ms = 0;
    memset(srv->steer_cpu_ns, 0, sizeof(srv->steer_cpu_ns));
    memset(srv->steer_reqs, 0, sizeof(srv->steer_reqs));
}

/* Resolves, probes and binds every worker's sockets (no thread, no worker state yet). */
static int
bind_all(struct ck_net_server *srv)
{
    int rc;

    if ((rc = resolve_addrs(srv)) != 0)
        return rc;
    for (size_t i = 0; i < srv->n_addrs; i++)
        if ((rc = probe_addr(srv, i)) != 0)
            return rc;
    srv->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (srv->stop_fd < 0)
        return ck_error_set(CK_ERR_IO, "eventfd: %s", strerror(errno));
    srv->workers = calloc((size_t)srv->n_workers, sizeof(*srv->workers));
    if (srv->workers == NULL)
        return ck_error_set(CK_ERR_NOMEM, "workers");
    for (int i = 0; i < srv->n_workers; i++) {
        struct worker *w = &srv->workers[i];
        w->srv = srv;
        w->index = i;
        w->epfd = w->timer.fd = w->reserve_fd = -1;
    }
    for (int i = 0; i < srv->n_workers; i++)
        if ((rc = worker_setup(srv, &srv->workers[i])) != 0)
            return rc;
    return 0;
}

#define PORT0_ATTEMPTS 8

static int
check_handler(void *state, const struct ck_net_request *req, uint8_t *reply, size_t reply_cap,
              size_t *reply_len)
{
    *reply_len = 0;
    return 0;
}

int
ck_net_server_bind(struct ck_net_server *srv)
{
    int rc = 0;

    if (srv == NULL || srv->running || srv->workers != NULL)
        return ck_error_set(CK_ERR_INVAL, "net server already bound");
    /* A kernel-chosen port is free for UDP and TCP when probed, but between the probe and the
     * workers' binds any other socket on the machine may take it (outgoing TCP connections get
     * their ports from the same range): then choose again. */
    for (int attempt = 1;; attempt++) {
        bind_errno = 0;
        if ((rc = bind_all(srv)) == 0)
            return 0;
        teardown(srv);
        if (!(srv->any_port0 && bind_errno == EADDRINUSE && attempt < PORT0_ATTEMPTS))
            return rc;
    }
}

int
ck_net_server_run(struct ck_net_server *srv)
{
    int rc = 0;

    if (srv == NULL || srv->running || srv->workers == NULL)
        return ck_error_set(CK_ERR_INVAL, "net server not bound, or already running");
    srv->steer = srv->cfg.cpu_affinity && !srv->cfg.no_udp && srv->n_workers > 1 &&
                 sched_getaffinity(0, sizeof(srv->cpus), &srv->cpus) == 0 &&
                 steering_possible(srv);
    if (srv->steer && attach_steering(srv, true) != 0)
        srv->steer = false; /* hashing still works: run without */
    if (srv->steer) {
        srv->steer_check_ms = srv->cfg.steer_check_ms > 0 ? srv->cfg.steer_check_ms
                                                          : STEER_CHECK_MS;
        srv->steer_timer.kind = EV_STEER;
        srv->steer_timer.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (srv->steer_timer.fd < 0 || epoll_add(&srv->workers[0], &srv->steer_timer) != 0) {
            rc = ck_error_set(CK_ERR_IO, "steering timer: %s", strerror(errno));
            goto out;
        }
    }
    for (int i = 0; i < srv->n_workers; i++) {
        struct worker *w = &srv->workers[i];
        if (srv->cb.worker_init != NULL) {
            if ((rc = srv->cb.worker_init(i, srv->cb.arg, &w->state)) != 0)
                goto out;
        }
        w->state_ready = true;
    }
    for (int i = 0; i < srv->n_workers; i++) {
        struct worker *w = &srv->workers[i];
        int prc = pthread_create(&w->thread, NULL, worker_main, w);
        if (prc != 0) {
            rc = ck_error_set(CK_ERR_IO, "pthread_create: %s", strerror(prc));
            goto out;
        }
        w->thread_started = true;
    }
    if (srv->steer) {
        pin_workers(srv, true);
        steer_timer_arm(srv);
    }
    srv->running = true;
out:
    if (rc != 0) {
        stop_and_join(srv);
        teardown(srv);
    }
    return rc;
}

int
ck_net_server_start(struct ck_net_server *srv)
{
    int rc;

    if ((rc = ck_net_server_bind(srv)) != 0)
        return rc;
    return ck_net_server_run(srv);
}

/* Reads whether the process may bind ports below ip_unprivileged_port_start: root's effective
 * capability set, or CAP_NET_BIND_SERVICE (bit 10) alone. */
static bool
may_bind_privileged(uint16_t port)
{
    char line[256];
    long start = 1024;
    bool ok = false;
    FILE *f;

    if ((f = fopen("/proc/sys/net/ipv4/ip_unprivileged_port_start", "re")) != NULL) {
        if (fgets(line, sizeof(line), f) != NULL) {
            int64_t v;
            line[strcspn(line, "\n")] = '\0';
            if (ck_parse_int64(line, 0, 65536, &v) == 0)
                start = (long)v;
        }
        fclose(f);
    }
    if (port == 0 || port >= start)
        return true;
    if ((f = fopen("/proc/self/status", "re")) == NULL)
        return geteuid() == 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "CapEff:", 7) == 0) {
            unsigned long long caps = strtoull(line + 7, NULL, 16);
            ok = (caps >> 10) & 1;
            break;
        }
    }
    fclose(f);
    return ok;
}

int
ck_net_check_listen(const struct ck_net_config *cfg, char *desc, size_t desc_size)
{
    struct ck_net_server *srv = NULL;
    struct ck_net_callbacks cb;
    size_t used = 0;
    int rc;

    if (desc_size > 0)
        desc[0] = '\0';
    memset(&cb, 0, sizeof(cb));
    cb.handler = check_handler;
    if ((rc = ck_net_server_new(cfg, &cb, &srv)) != 0)
        return rc;
    if ((rc = resolve_addrs(srv)) != 0)
        goto out;
    for (size_t i = 0; i < srv->n_addrs; i++) {
        struct sockaddr_storage ss = srv->addrs[i];
        uint16_t port = addr_port(&ss);
        char a[CK_NET_ADDRSTRLEN];
        const char *note = "";
        int fd = -1, n;

        ck_net_addr_format((struct sockaddr *)&ss, a, sizeof(a));
        if (!may_bind_privileged(port)) {
            rc = ck_error_set(CK_ERR_PERM, "listen %s: port %u needs root or "
                              "CAP_NET_BIND_SERVICE", a, port);
            goto out;
        }
        /* The real port first; when it is taken (by the running daemon, typically) a
         * kernel-chosen port on the same address still proves the address is local. */
        for (int type = 0; type < 2; type++) {
            int t = type == 0 ? SOCK_DGRAM : SOCK_STREAM;
            if ((type == 0 && srv->cfg.no_udp) || (type == 1 && srv->cfg.no_tcp))
                continue;
            bind_errno = 0;
            if (open_bound(&ss, srv->addr_lens[i], t, false, &fd) == 0) {
                close(fd);
                continue;
            }
            if (bind_errno != EADDRINUSE) {
                rc = ck_error_set(CK_ERR_CONFIG, "listen %s: %s%s", a, ck_error_context(),
                                  bind_errno == EADDRNOTAVAIL ? " (not an address of this host)"
                                                              : "");
                goto out;
            }
            note = " (port in use now)";
            addr_set_port(&ss, 0);
            if ((rc = open_bound(&ss, srv->addr_lens[i], t, false, &fd)) != 0)
                goto out;
            close(fd);
            addr_set_port(&ss, port);
        }
        n = snprintf(desc + used, desc_size > used ? desc_size - used : 0, "%s%s%s",
                     i > 0 ? " " : "", a, note);
        if (n > 0 && used + (size_t)n < desc_size)
            used += (size_t)n;
    }
out:
    ck_net_server_free(srv);
    return rc;
}

void
ck_net_server_stop(struct ck_net_server *srv)
{
    if (srv == NULL || srv->workers == NULL)
        return;
    stop_and_join(srv);
    teardown(srv);
    srv->running = false;
}

void
ck_net_server_free(struct ck_net_server *srv)
{
    if (srv == NULL)
        return;
    ck_net_server_stop(srv);
    if (srv->listen != NULL) {
        for (size_t i = 0; i < srv->cfg.n_listen; i++)
            free(srv->listen[i]);
        free(srv->listen);
    }
    free(srv);
}

size_t
ck_net_server_n_addrs(const struct ck_net_server *srv)
{
    return srv->n_addrs;
}

int
ck_net_server_addr(const struct ck_net_server *srv, size_t i, struct sockaddr_storage *ss,
                   socklen_t *len)
{
    if (i >= srv->n_addrs)
        return ck_error_set(CK_ERR_INVAL, "address index %zu out of range", i);
    *ss = srv->addrs[i];
    *len = srv->addr_lens[i];
    return 0;
}

void
ck_net_server_describe(const struct ck_net_server *srv, char *buf, size_t size)
{
    size_t used = 0;

    if (size == 0)
        return;
    buf[0] = '\0';
    for (size_t i = 0; srv != NULL && i < srv->n_addrs; i++) {
        char a[CK_NET_ADDRSTRLEN];
        int n;

        ck_net_addr_format((const struct sockaddr *)&srv->addrs[i], a, sizeof(a));
        n = snprintf(buf + used, size - used, "%s%s", i > 0 ? " " : "", a);
        if (n < 0 || (size_t)n >= size - used)
            break;
        used += (size_t)n;
    }
}

void
ck_net_server_set_idle(struct ck_net_server *srv, ck_net_idle_fn idle)
{
    if (srv != NULL && !srv->running)
        srv->idle = idle;
}

int
ck_net_server_workers(const struct ck_net_server *srv)
{
    return srv->n_workers;
}

bool
ck_net_server_steering(const struct ck_net_server *srv, uint64_t *suspensions)
{
    if (suspensions != NULL)
        *suspensions = srv->steer_suspensions;
    return srv->steer;
}

void
ck_net_server_admission_stats(const struct ck_net_server *srv, struct ck_admission_stats *st)
{
    memset(st, 0, sizeof(*st));
    for (int i = 0; srv != NULL && srv->workers != NULL && i < srv->n_workers; i++) {
        struct ck_admission_stats one;

        ck_admission_get_stats(srv->workers[i].adm, &one);
        st->admitted += one.admitted;
        st->dropped_stale += one.dropped_stale;
        st->dropped_share += one.dropped_share;
        st->evicted += one.evicted;
        st->sources += one.sources;
        if (one.service_ns > st->service_ns)
            st->service_ns = one.service_ns;
    }
}
