/* cablekey-ksv: the keying server daemon (issue 11), on the shared daemon layer in its start-up
 * order: flags -> topology -> --check? -> log -> signals -> pid file -> bind (UDP, IPv4 and
 * IPv6; the multicast send sockets) -> drop privileges -> keytab, store -> core -> READY=1 ->
 * one thread: epoll over the UDP sockets, a timerfd set from the core's next timeout, and the
 * signalfd (SIGHUP: reload the topology and reopen the log; SIGTERM/SIGINT: stop) -> STOPPING=1.
 * The core (core.c, links.c, groups.c) owns every decision; this file owns the sockets and the
 * clock. Operator documentation: docs/cablekey-ksv.md. */
#define KSV_INTERNAL
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "cablekey/daemon.h"
#include "cablekey/error.h"
#include "cablekey/log.h"
#include "cablekey/net.h"
#include "cablekey/util.h"
#include "ksv.h"

#define KSV_MAX_LISTEN 8

enum {
    OPT_DB = 256, OPT_LISTEN, OPT_NAME, OPT_KEYTAB, OPT_SERVICE, OPT_NODE_PORT, OPT_MCAST_PORT,
    OPT_MCAST_IF, OPT_MCAST_TTL, OPT_BATCH_INTERVAL, OPT_BATCH_SIZE, OPT_FOREGROUND,
};

struct flags {
    struct ck_daemon_opts common;
    const char *db, *name, *keytab, *service, *mcast_if;
    const char *listen[KSV_MAX_LISTEN];
    size_t n_listen;
    int64_t node_port, mcast_port, mcast_ttl, batch_interval_ms, batch_size;
    bool foreground;
};

struct daemon {
    struct flags f;
    struct ck_log_target log;
    int log_level;
    struct ck_daemon_user user;
    bool have_user;
    int fds[KSV_MAX_LISTEN];
    int fams[KSV_MAX_LISTEN];
    size_t n_fds;
    int mcast4, mcast6;
    ck_keyset *keys;
    struct ck_ksv_store *store;
    struct ksv_core *core;
};

static void
usage(FILE *out)
{
    fprintf(out, "usage: " KSV_PROG " --config TOPOLOGY --db PATH|URI --listen ADDR:PORT "
                 "--name KSVNAME --keytab FILE [options]\n");
    ck_daemon_usage_common(out, "(none: --config is required)");
    fprintf(out,
            "      --db PATH|URI       the KSV store (sqlite:PATH; created with its key file)\n"
            "      --listen ADDR[:PORT] UDP, repeatable (IPv4 and IPv6; default port 7441)\n"
            "      --name KSVNAME      this KSV's name in the topology\n"
            "      --keytab FILE       service keys (re-read when the file changes)\n"
            "      --service PRINCIPAL ksv/host@REALM (default: the keytab's first principal)\n"
            "      --node-port N       node agents' port for NUDGE (default 7442)\n"
            "      --mcast-port N      group rekey port (default 7443)\n"
            "      --mcast-if ADDR     local address of the multicast interface\n"
            "      --mcast-ttl N       multicast TTL / hop limit (default 1)\n"
            "      --batch-interval-ms N  rekey batch interval (default 1000)\n"
            "      --batch-size N      rekey batch size trigger (default 256)\n"
            "  -f, --foreground        accepted for compatibility (never forks)\n"
            "SIGHUP reloads the topology (only what changed is pushed) and reopens the log;\n"
            "SIGTERM stops. CK_KSV_CRASH=POINT:N kills the daemon at a crash point (tests).\n");
}

static void
print_error(const char *what)
{
    ck_daemon_print_error(KSV_PROG, what);
}

static int
num(const char *flag, const char *arg, int64_t min, int64_t max, int64_t *out)
{
    if (ck_parse_int64(arg, min, max, out) != 0) {
        fprintf(stderr, KSV_PROG ": %s %s: expected %lld..%lld\n", flag, arg, (long long)min,
                (long long)max);
        return 2;
    }
    return 0;
}

static int
parse_args(int argc, char **argv, struct flags *f)
{
    static const struct option longopts[] = {
        CK_DAEMON_LONGOPTS,
        {"db", required_argument, NULL, OPT_DB},
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"name", required_argument, NULL, OPT_NAME},
        {"keytab", required_argument, NULL, OPT_KEYTAB},
        {"service", required_argument, NULL, OPT_SERVICE},
        {"node-port", required_argument, NULL, OPT_NODE_PORT},
        {"mcast-port", required_argument, NULL, OPT_MCAST_PORT},
        {"mcast-if", required_argument, NULL, OPT_MCAST_IF},
        {"mcast-ttl", required_argument, NULL, OPT_MCAST_TTL},
        {"batch-interval-ms", required_argument, NULL, OPT_BATCH_INTERVAL},
        {"batch-size", required_argument, NULL, OPT_BATCH_SIZE},
        {"foreground", no_argument, NULL, OPT_FOREGROUND},
        {NULL, 0, NULL, 0},
    };
    int c, rc;

    memset(f, 0, sizeof(*f));
    f->node_port = KSV_DEFAULT_NODE_PORT;
    f->mcast_port = KSV_DEFAULT_MCAST_PORT;
    f->mcast_ttl = 1;
    f->batch_interval_ms = KSV_DEFAULT_BATCH_INTERVAL_MS;
    f->batch_size = KSV_DEFAULT_BATCH_SIZE;
    while ((c = getopt_long(argc, argv, "c:hf", longopts, NULL)) != -1) {
        if (ck_daemon_opt(&f->common, c, optarg))
            continue;
        rc = 0;
        switch (c) {
        case OPT_DB: f->db = optarg; break;
        case OPT_NAME: f->name = optarg; break;
        case OPT_KEYTAB: f->keytab = optarg; break;
        case OPT_SERVICE: f->service = optarg; break;
        case OPT_MCAST_IF: f->mcast_if = optarg; break;
        case 'f':
        case OPT_FOREGROUND: f->foreground = true; break;
        case OPT_NODE_PORT: rc = num("--node-port", optarg, 1, 65535, &f->node_port); break;
        case OPT_MCAST_PORT: rc = num("--mcast-port", optarg, 1, 65535, &f->mcast_port); break;
        case OPT_MCAST_TTL: rc = num("--mcast-ttl", optarg, 0, 255, &f->mcast_ttl); break;
        case OPT_BATCH_INTERVAL:
            rc = num("--batch-interval-ms", optarg, 1, 3600000, &f->batch_interval_ms);
            break;
        case OPT_BATCH_SIZE: rc = num("--batch-size", optarg, 1, 1000000, &f->batch_size); break;
        case OPT_LISTEN:
            if (f->n_listen >= KSV_MAX_LISTEN) {
                fprintf(stderr, KSV_PROG ": more than %d --listen options\n", KSV_MAX_LISTEN);
                return 2;
            }
            f->listen[f->n_listen++] = optarg;
            break;
        default:
            usage(stderr);
            return 2;
        }
        if (rc != 0)
            return rc;
    }
    if ((rc = ck_daemon_opts_finish(&f->common, KSV_PROG, usage, argc, argv, optind)) >= 0)
        return rc;
    if (f->common.config == NULL) {
        fprintf(stderr, KSV_PROG ": --config TOPOLOGY is required\n");
        return 2;
    }
    if (!f->common.check &&
        (f->db == NULL || f->name == NULL || f->keytab == NULL || f->n_listen == 0)) {
        fprintf(stderr, KSV_PROG ": --db, --name, --keytab and --listen are required\n");
        return 2;
    }
    return -1;
}

/* ---- topology ------------------------------------------------------------------------------ */

static void
print_report(FILE *out, const struct ck_ksvtopo_report *rep)
{
    for (size_t i = 0; i < rep->n; i++)
        fprintf(out, "%s\n", rep->err[i].msg);
    if (rep->dropped > 0)
        fprintf(out, "... and %zu more error%s\n", rep->dropped, rep->dropped == 1 ? "" : "s");
}

/* Warnings for what the daemon runs differently than written (not errors). */
static void
topology_warnings(const struct ck_ksvtopo *t, FILE *out)
{
    for (size_t i = 0; i < ck_ksvtopo_n_groups(t); i++) {
        const struct ck_ksvtopo_group *g = ck_ksvtopo_group_at(t, i);
        if (g->keying == CK_KSVTOPO_HYBRID)
            fprintf(out, "warning: group %s: keying hybrid runs as lkh in the daemon\n",
                    g->name);
        if (g->degree > CK_KSV_MAX_DEGREE)
            fprintf(out, "warning: group %s: degree %u over %u: the group is skipped\n", g->name,
                    g->degree, CK_KSV_MAX_DEGREE);
    }
}

static int
check(struct daemon *d)
{
    struct ck_ksvtopo_report rep;
    struct ck_ksvtopo *t = NULL;
    size_t n_links = 0;

    memset(&rep, 0, sizeof(rep));
    if (ck_ksvtopo_load(d->f.common.config, &t, &rep) != 0) {
        print_report(stdout, &rep);
        if (rep.n == 0)
            printf("%s\n", ck_error_context());
        return 1;
    }
    for (size_t i = 0; i < ck_ksvtopo_n_nodes(t); i++) {
        struct ck_ksvtopo_view v;
        if (ck_ksvtopo_node_view(t, ck_ksvtopo_node_at(t, i)->name, &v) == 0)
            n_links += v.n_sa;
    }
    printf("topology: %s: %zu nodes, %zu directed links, %zu groups\n", d->f.common.config,
           ck_ksvtopo_n_nodes(t), n_links / 2, ck_ksvtopo_n_groups(t));
    topology_warnings(t, stdout);
    ck_ksvtopo_free(t);
    if (d->f.keytab != NULL) {
        size_t n_keys = 0;
        uint32_t kvno = 0;
        if (ck_keyset_new(d->f.keytab, d->f.service, &d->keys) != 0) {
            print_error("keytab");
            return 1;
        }
        ck_keyset_describe(d->keys, &n_keys, &kvno);
        printf("keytab: %s, service %s (%zu key%s, newest kvno %u)\n", d->f.keytab,
               ck_keyset_service(d->keys), n_keys, n_keys == 1 ? "" : "s", kvno);
    }
    if (d->f.common.pid_file != NULL && ck_daemon_check_pidfile(KSV_PROG, d->f.common.pid_file))
        return 1;
    printf("OK\n");
    return 0;
}

/* ---- sockets -------------------------------------------------------------------------------- */

static int
bind_listen(struct daemon *d)
{
    for (size_t i = 0; i < d->f.n_listen; i++) {
        char host[256];
        uint16_t port = 0;
        struct sockaddr_storage ss;
        socklen_t len;
        int fd, one = 1;

        if (ck_net_parse_listen(d->f.listen[i], CK_KSV_DEFAULT_PORT, host, sizeof(host),
                                &port) != 0)
            return ck_error_set(CK_ERR_CONFIG, "--listen %s: %s", d->f.listen[i],
                                ck_error_context());
        if (ksv_sockaddr_from_text(host[0] != '\0' ? host : "0.0.0.0", port, &ss, &len) != 0)
            return ck_error_set(CK_ERR_CONFIG, "--listen %s: a numeric address is needed",
                                d->f.listen[i]);
        fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0 ||
            (ss.ss_family == AF_INET6 &&
             setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) ||
            bind(fd, (struct sockaddr *)&ss, len) != 0) {
            int e = errno;
            if (fd >= 0)
                close(fd);
            return ck_error_set(CK_ERR_IO, "--listen %s: %s", d->f.listen[i], strerror(e));
        }
        d->fds[d->n_fds] = fd;
        d->fams[d->n_fds] = ss.ss_family;
        d->n_fds++;
    }
    return 0;
}

static unsigned
ifindex_of(const char *addr)
{
    struct ifaddrs *ifa = NULL, *p;
    struct in6_addr want;
    unsigned ix = 0;

    if (inet_pton(AF_INET6, addr, &want) != 1 || getifaddrs(&ifa) != 0)
        return 0;
    for (p = ifa; p != NULL && ix == 0; p = p->ifa_next)
        if (p->ifa_addr != NULL && p->ifa_addr->sa_family == AF_INET6 &&
            memcmp(&((struct sockaddr_in6 *)(void *)p->ifa_addr)->sin6_addr, &want,
                   sizeof(want)) == 0)
            ix = if_nametoindex(p->ifa_name);
    freeifaddrs(ifa);
    return ix;
}

static int
open_mcast(struct daemon *d)
{
    int one = 1, ttl = (int)d->f.mcast_ttl;
    unsigned char ttl4 = (unsigned char)d->f.mcast_ttl, loop4 = 1;

    d->mcast4 = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (d->mcast4 < 0 ||
        setsockopt(d->mcast4, IPPROTO_IP, IP_MULTICAST_TTL, &ttl4, sizeof(ttl4)) != 0 ||
        setsockopt(d->mcast4, IPPROTO_IP, IP_MULTICAST_LOOP, &loop4, sizeof(loop4)) != 0)
        return ck_error_set(CK_ERR_IO, "multicast socket: %s", strerror(errno));
    if (d->f.mcast_if != NULL) {
        struct in_addr a;
        if (inet_pton(AF_INET, d->f.mcast_if, &a) == 1) {
            if (setsockopt(d->mcast4, IPPROTO_IP, IP_MULTICAST_IF, &a, sizeof(a)) != 0)
                return ck_error_set(CK_ERR_IO, "--mcast-if %s: %s", d->f.mcast_if,
                                    strerror(errno));
        }
    }
    /* IPv6 is optional: a host without it still serves IPv4 groups. */
    d->mcast6 = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (d->mcast6 >= 0) {
        unsigned ix = d->f.mcast_if != NULL ? ifindex_of(d->f.mcast_if) : 0;
        (void)setsockopt(d->mcast6, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &ttl, sizeof(ttl));
        (void)setsockopt(d->mcast6, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &one, sizeof(one));
        if (ix != 0)
            (void)setsockopt(d->mcast6, IPPROTO_IPV6, IPV6_MULTICAST_IF, &ix, sizeof(ix));
    }
    return 0;
}

static int
cb_send(void *arg, const struct sockaddr *to, socklen_t to_len, const uint8_t *buf, size_t len)
{
    struct daemon *d = arg;

    for (size_t i = 0; i < d->n_fds; i++) {
        if (d->fams[i] != to->sa_family)
            continue;
        if (sendto(d->fds[i], buf, len, MSG_DONTWAIT, to, to_len) < 0)
            return ck_error_set(CK_ERR_IO, "sendto: %s", strerror(errno));
        return 0;
    }
    return ck_error_set(CK_ERR_UNSUPPORTED, "no --listen socket of the node's family");
}

static int
cb_send_mcast(void *arg, const struct sockaddr *to, socklen_t to_len, const uint8_t *buf,
              size_t len)
{
    struct daemon *d = arg;
    int fd = to->sa_family == AF_INET ? d->mcast4 : d->mcast6;

    if (fd < 0)
        return ck_error_set(CK_ERR_UNSUPPORTED, "no multicast socket of the group's family");
    if (sendto(fd, buf, len, 0, to, to_len) < 0)
        return ck_error_set(CK_ERR_IO, "multicast sendto: %s", strerror(errno));
    return 0;
}

static void
cb_log(void *arg, int level, const char *line)
{
    (void)arg;
    ck_log(level, "%s", line);
}

static int64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
arm_timer(struct daemon *d, int tfd)
{
    int64_t ms = ksv_core_next_timeout_ms(d->core, now_ms());
    struct itimerspec its;

    memset(&its, 0, sizeof(its));
    if (ms >= 0) {
        if (ms == 0)
            ms = 1;
        its.it_value.tv_sec = ms / 1000;
        its.it_value.tv_nsec = (ms % 1000) * 1000000;
    }
    (void)timerfd_settime(tfd, 0, &its, NULL);
}

static int
open_log(struct daemon *d, bool dropped)
{
    if (d->have_user && !dropped)
        return ck_log_open(KSV_PROG, d->log.dest == CK_LOG_FILE ? CK_LOG_STDERR : d->log.dest,
                           NULL, d->log_level);
    if (!d->have_user)
        return ck_log_open(KSV_PROG, d->log.dest, d->log.path, d->log_level);
    return ck_log_reconfigure(d->log.dest, d->log.path, d->log_level);
}

static void
reload(struct daemon *d)
{
    struct ck_ksvtopo_report rep;
    struct ck_ksvtopo *t = NULL;
    bool changed;

    (void)ck_daemon_notify("RELOADING=1");
    (void)ck_log_reopen();
    if (ck_keyset_refresh(d->keys, true, &changed) != 0)
        ck_log_warn("keytab: %s (the old keys stay)", ck_error_context());
    memset(&rep, 0, sizeof(rep));
    if (ck_ksvtopo_load(d->f.common.config, &t, &rep) != 0) {
        for (size_t i = 0; i < rep.n; i++)
            ck_log_err("reload refused: %s", rep.err[i].msg);
        if (rep.n == 0)
            ck_log_err("reload refused: %s", ck_error_context());
        (void)ck_daemon_notify("READY=1\nSTATUS=reload refused: the old topology runs");
        return;
    }
    if (ksv_core_reload(d->core, t, now_ms()) != 0)
        ck_log_err("reload: %s", ck_error_context());
    (void)ck_daemon_notify("READY=1\nSTATUS=topology reloaded");
}

static int
serve(struct daemon *d, int sfd)
{
    struct epoll_event ev, evs[16];
    int ep = epoll_create1(EPOLL_CLOEXEC), tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    int status = 1;
    int64_t last_keytab = 0;
    static uint8_t buf[CK_KSV_MAX_DGRAM + 1];

    if (ep < 0 || tfd < 0) {
        ck_log_err("epoll/timerfd: %s", strerror(errno));
        goto out;
    }
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    for (size_t i = 0; i < d->n_fds; i++) {
        ev.data.fd = d->fds[i];
        epoll_ctl(ep, EPOLL_CTL_ADD, d->fds[i], &ev);
    }
    ev.data.fd = tfd;
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
    ev.data.fd = sfd;
    epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);
    for (;;) {
        int n;
        arm_timer(d, tfd);
        n = epoll_wait(ep, evs, 16, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            ck_log_err("epoll_wait: %s", strerror(errno));
            goto out;
        }
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == sfd) {
                struct signalfd_siginfo si;
                if (read(sfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
                    continue;
                if (si.ssi_signo == SIGHUP) {
                    reload(d);
                    continue;
                }
                ck_log_notice("signal %u: stopping", si.ssi_signo);
                (void)ck_daemon_notify("STOPPING=1");
                status = 0;
                goto out;
            }
            if (fd == tfd) {
                uint64_t ticks;
                int64_t t = now_ms();
                if (read(tfd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
                    ck_log_debug("timerfd: %s", strerror(errno));
                if (t - last_keytab >= 1000) {
                    bool changed = false;
                    last_keytab = t;
                    if (ck_keyset_refresh(d->keys, false, &changed) == 0 && changed)
                        ck_log_notice("keytab %s reloaded", d->f.keytab);
                }
                if (ksv_core_on_timer(d->core, t) != 0)
                    ck_log_err("timer: %s", ck_error_context());
                continue;
            }
            for (int burst = 0; burst < 64; burst++) {
                struct sockaddr_storage from;
                socklen_t from_len = sizeof(from);
                ssize_t r = recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT,
                                     (struct sockaddr *)&from, &from_len);
                if (r < 0)
                    break;
                if ((size_t)r > CK_KSV_MAX_DGRAM)
                    continue;
                if (ksv_core_on_datagram(d->core, buf, (size_t)r, (struct sockaddr *)&from,
                                         from_len, now_ms()) != 0)
                    ck_log_err("datagram: %s", ck_error_context());
            }
        }
    }
out:
    if (ep >= 0)
        close(ep);
    if (tfd >= 0)
        close(tfd);
    return status;
}

int
main(int argc, char **argv)
{
    static struct daemon dm;
    struct daemon *d = &dm;
    struct ck_ksvtopo_report rep;
    struct ck_ksvtopo *topo = NULL;
    struct ksv_params p;
    bool pid_written = false, served = false;
    int sfd = -1, rc, status = 1;
    char desc[512];

    d->mcast4 = d->mcast6 = -1;
    if ((rc = parse_args(argc, argv, &d->f)) >= 0)
        return rc;
    ck_log_open(KSV_PROG, CK_LOG_STDERR, NULL, LOG_INFO);
    if (d->f.common.check) {
        status = check(d);
        goto out;
    }
    d->log.dest = CK_LOG_STDERR;
    d->log.level = -1;
    if (d->f.common.log != NULL && ck_log_target_parse(d->f.common.log, true, &d->log) != 0) {
        print_error("--log");
        goto out;
    }
    d->log_level = LOG_INFO;
    if (d->f.common.log_level != NULL &&
        (d->log_level = ck_log_level_from_name(d->f.common.log_level)) < 0) {
        fprintf(stderr, KSV_PROG ": --log-level %s: unknown level\n", d->f.common.log_level);
        goto out;
    }
    memset(&rep, 0, sizeof(rep));
    if (ck_ksvtopo_load(d->f.common.config, &topo, &rep) != 0) {
        print_report(stderr, &rep);
        print_error("topology");
        goto out;
    }
    topology_warnings(topo, stderr);
    if (d->f.common.user != NULL) {
        if (ck_daemon_user_lookup(d->f.common.user, &d->user) != 0) {
            print_error("user");
            goto out;
        }
        d->have_user = true;
    }
    if (open_log(d, false) != 0) {
        print_error("log");
        goto out;
    }
    if (ck_daemon_signals_init(&sfd) != 0) {
        ck_log_err("%s", ck_error_context());
        goto out;
    }
    if (d->f.common.pid_file != NULL) {
        if (ck_daemon_pidfile_write(d->f.common.pid_file) != 0) {
            ck_log_err("%s", ck_error_context());
            goto out;
        }
        pid_written = true;
    }
    /* 1. Bind. */
    if (bind_listen(d) != 0 || open_mcast(d) != 0) {
        ck_log_err("%s", ck_error_context());
        goto out;
    }
    /* 2. Drop privileges before the keytab and the store are opened. */
    if (d->have_user) {
        if (ck_daemon_drop_privileges(&d->user) != 0) {
            ck_log_err("%s", ck_error_context());
            goto out;
        }
        if (open_log(d, true) != 0) {
            ck_log_err("%s (as user %s)", ck_error_context(), d->user.name);
            goto out;
        }
        ck_log_notice("running as user %s (uid %u, gid %u)", d->user.name,
                      (unsigned)d->user.uid, (unsigned)d->user.gid);
    }
    /* 3. Keys, store, core. */
    if (ck_keyset_new(d->f.keytab, d->f.service, &d->keys) != 0 ||
        ck_ksv_store_open(d->f.db, NULL, true, &d->store) != 0) {
        ck_log_err("%s", ck_error_context());
        goto out;
    }
    memset(&p, 0, sizeof(p));
    p.name = d->f.name;
    p.service = ck_keyset_service(d->keys);
    p.key_fn = ck_keyset_key_fn;
    p.key_arg = d->keys;
    p.store = d->store;
    p.node_port = (uint16_t)d->f.node_port;
    p.mcast_port = (uint16_t)d->f.mcast_port;
    p.batch_interval_ms = d->f.batch_interval_ms;
    p.batch_size = (size_t)d->f.batch_size;
    p.crash = getenv("CK_KSV_CRASH");
    p.cb.arg = d;
    p.cb.send = cb_send;
    p.cb.send_mcast = cb_send_mcast;
    p.cb.log = cb_log;
    rc = ksv_core_new(&p, topo, &d->core);
    topo = NULL;
    if (rc != 0 || ksv_core_start(d->core, now_ms()) != 0) {
        ck_log_err("%s", ck_error_context());
        goto out;
    }
    desc[0] = '\0';
    for (size_t i = 0; i < d->f.n_listen; i++) {
        size_t l = strlen(desc);
        snprintf(desc + l, sizeof(desc) - l, "%s%s", i ? " " : "", d->f.listen[i]);
    }
    ck_log_notice(KSV_PROG " ready: name %s, service %s, listen %s, store %s", d->f.name,
                  ck_keyset_service(d->keys), desc, d->f.db);
    if (ck_daemon_notify("READY=1\nSTATUS=listening on %s", desc) != 0)
        ck_log_warn("%s", ck_error_context());
    served = true;
    status = serve(d, sfd);
out:
    /* Every store write is its own transaction: stopping between two leaves nothing half done;
     * sessions are dropped (nodes re-register on the next KSV's NUDGE answer). */
    if (served && d->core != NULL) {
        struct ksv_stats st;
        ksv_core_stats(d->core, &st);
        ck_log_notice("stats: datagrams %llu dropped %llu hellos ok %llu refused %llu sealed ok "
                      "%llu bad %llu nudges %llu registers %llu deletes %llu retransmits %llu "
                      "acks %llu no-acks %llu alarms %llu rekey batches %llu datagrams %llu "
                      "group acks %llu recoveries %llu sa rekeys %llu sa deletes %llu",
                      (unsigned long long)st.dgrams_in, (unsigned long long)st.dropped,
                      (unsigned long long)st.hellos_ok, (unsigned long long)st.hellos_refused,
                      (unsigned long long)st.sealed_ok, (unsigned long long)st.sealed_bad,
                      (unsigned long long)st.nudges_sent, (unsigned long long)st.registers_sent,
                      (unsigned long long)st.deletes_sent, (unsigned long long)st.retransmits,
                      (unsigned long long)st.acks, (unsigned long long)st.no_acks,
                      (unsigned long long)st.alarms, (unsigned long long)st.rekey_batches,
                      (unsigned long long)st.rekey_dgrams, (unsigned long long)st.group_acks,
                      (unsigned long long)st.recoveries, (unsigned long long)st.sa_rekeys,
                      (unsigned long long)st.sa_deletes);
    }
    ksv_core_free(d->core);
    ck_ksvtopo_free(topo);
    ck_ksv_store_close(d->store);
    ck_keyset_free(d->keys);
    for (size_t i = 0; i < d->n_fds; i++)
        close(d->fds[i]);
    if (d->mcast4 >= 0)
        close(d->mcast4);
    if (d->mcast6 >= 0)
        close(d->mcast6);
    if (pid_written)
        ck_daemon_pidfile_remove(d->f.common.pid_file);
    if (sfd >= 0)
        close(sfd);
    if (served)
        ck_log_notice("stopped");
    ck_log_close();
    return status;
}
