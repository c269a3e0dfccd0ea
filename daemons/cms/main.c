/* cablekey-cms: the signaling controller's key-management daemon, on the shared daemon layer
 * (include/cablekey/daemon.h) in its start-up order: flags -> configuration -> --check? -> log ->
 * signals -> pid file -> bind (KMM on lib/net, UDP only; the signaling port) -> drop privileges
 * -> keytab -> workers -> READY=1 -> ck_daemon_loop (SIGHUP: configuration, keytab, log) ->
 * STOPPING=1. SIGUSR1 makes the maintenance thread send Rekey to every SA; that thread also polls
 * the keytab once a second, removes expired SAs and sends Rekey near expiry.
 *
 * Server-started KMM messages (Wake Up, Rekey) must leave from the KMM port, where the endpoint
 * expects them. lib/net owns the workers' sockets, so the daemon binds one more socket per KMM
 * address into the same SO_REUSEPORT group and connects it to the discard port of the loopback:
 * a connected UDP socket receives only from its peer, so it never takes a request from the
 * workers, and sendto() with an explicit destination still sends from the KMM address and port.
 * Operator documentation: docs/cablekey-cms.md. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cablekey/daemon.h"
#include "cablekey/error.h"
#include "cablekey/intercept.h"
#include "cablekey/log.h"
#include "cablekey/net.h"
#include "cablekey/util.h"
#include "call.h"
#include "cms.h"
#include "peer.h"
#include "provclient.h"
#include "provhttp.h"

#include <curl/curl.h>

#define LISTEN_LOG_MAX 1024

enum {
    OPT_KEYTAB = 256, OPT_LISTEN, OPT_SIGNALING_LISTEN, OPT_SERVICE, OPT_EXPORT_XFRM,
    OPT_FOREGROUND, OPT_LOG_FLUSH_MS, OPT_EXPORT_WIRESHARK
};

struct send_sock {
    int fd;
    int family;
};

/* What call control's callbacks reach: the signaling sockets, the peer channels, the intercept
 * database. */
struct call_glue {
    struct cms_sig_out out;
    struct cms_peers *peers;
    ck_li *li;
    int64_t retention;
    const char *escrow_dir;
};

struct daemon {
    struct cms_flags flags;
    struct cms_config cfg;
    struct ck_daemon_user user;
    bool have_user;
    struct ck_net_server *net;
    struct cms_sig_server *sig;
    struct send_sock send[CK_NET_MAX_ADDRS];
    size_t n_send;
    ck_keyset *keys;
    struct cms_server srv;
    bool srv_up;
    pthread_t maint;
    bool maint_up;
    int64_t next_purge;                /* maintenance thread only */
    atomic_bool purge_now;             /* SIGHUP: purge at the next maintenance round */
    atomic_bool stopping;
    int64_t log_flush_ms;
    struct call_glue glue;
    struct cms_call_core *calls;
    /* provisioning_url: reports and lines (provclient.h), one HTTP transport per thread */
    struct cms_prov *prov;
    struct cms_prov_http *http_rep, *http_lines;
    atomic_bool prov_stop;
};

static void
usage(FILE *out)
{
    fprintf(out, "usage: " CMS_PROG " --keytab FILE [--listen ADDR:PORT] [options]\n");
    ck_daemon_usage_common(out, CMS_DEFAULT_CONFIG);
    fprintf(out,
            "      --keytab FILE       service keys (every kvno in it is accepted; re-read when\n"
            "                          the file changes)\n"
            "      --listen ADDR[:PORT] key management, UDP (repeatable; default port 1293)\n"
            "      --signaling-listen ADDR[:PORT] UDP-encapsulated ESP signaling (repeatable;\n"
            "                          default port 4500)\n"
            "      --service PRINCIPAL the service (default: the keytab's first principal)\n"
            "      --export-xfrm FILE  append `ip xfrm` commands for every SA (0600)\n"
            "      --export-wireshark FILE append Wireshark esp_sa records for every SA (0600)\n"
            "      --foreground        accepted for compatibility (never forks)\n"
            "      --log-flush-ms MS   write request lines in batches at most MS late\n"
            "                          (default 0: each line at once)\n"
            "SIGHUP re-reads the configuration and the keytab, reopens the log and purges expired\n"
            "escrow records; SIGUSR1 sends Rekey to every SA; SIGTERM stops.\n");
}

static void
print_error(const char *what)
{
    ck_daemon_print_error(CMS_PROG, what);
}

static int
parse_args(int argc, char **argv, struct cms_flags *f, int64_t *log_flush_ms)
{
    static const struct option longopts[] = {
        CK_DAEMON_LONGOPTS,
        {"keytab", required_argument, NULL, OPT_KEYTAB},
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"signaling-listen", required_argument, NULL, OPT_SIGNALING_LISTEN},
        {"service", required_argument, NULL, OPT_SERVICE},
        {"export-xfrm", required_argument, NULL, OPT_EXPORT_XFRM},
        {"export-wireshark", required_argument, NULL, OPT_EXPORT_WIRESHARK},
        {"foreground", no_argument, NULL, OPT_FOREGROUND},
        {"log-flush-ms", required_argument, NULL, OPT_LOG_FLUSH_MS},
        {NULL, 0, NULL, 0},
    };
    int c;

    memset(f, 0, sizeof(*f));
    while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        if (ck_daemon_opt(&f->common, c, optarg))
            continue;
        switch (c) {
        case OPT_KEYTAB: f->keytab = optarg; break;
        case OPT_SERVICE: f->service = optarg; break;
        case OPT_EXPORT_XFRM: f->export_xfrm = optarg; break;
        case OPT_EXPORT_WIRESHARK: f->export_wireshark = optarg; break;
        case OPT_FOREGROUND: f->foreground = true; break;
        case OPT_LOG_FLUSH_MS:
            if (ck_parse_int64(optarg, 0, 1000, log_flush_ms) != 0) {
                fprintf(stderr, CMS_PROG ": --log-flush-ms %s: expected 0..1000\n", optarg);
                return 2;
            }
            break;
        case OPT_LISTEN:
            if (f->n_listen >= CMS_MAX_LISTEN) {
                fprintf(stderr, CMS_PROG ": more than %d --listen options\n", CMS_MAX_LISTEN);
                return 2;
            }
            f->listen[f->n_listen++] = optarg;
            break;
        case OPT_SIGNALING_LISTEN:
            if (f->n_signaling_listen >= CMS_MAX_LISTEN) {
                fprintf(stderr, CMS_PROG ": more than %d --signaling-listen options\n",
                        CMS_MAX_LISTEN);
                return 2;
            }
            f->signaling_listen[f->n_signaling_listen++] = optarg;
            break;
        default:
            usage(stderr);
            return 2;
        }
    }
    return ck_daemon_opts_finish(&f->common, CMS_PROG, usage, argc, argv, optind);
}

/* Receive queue asked for each KMM socket (bytes). */
#define CMS_UDP_RCVBUF (4 * 1024 * 1024)

static void
net_config(const struct cms_config *cfg, struct ck_net_config *n)
{
    memset(n, 0, sizeof(*n));
    n->listen = (const char *const *)cfg->listen;
    n->n_listen = cfg->n_listen;
    n->default_port = CK_KMM_PORT;
    n->no_tcp = true;
    n->max_dgram = CK_KMM_MAX_MSG;
    n->max_reply = CK_KMM_MAX_MSG;
    /* Endpoints key in bursts (a plant restart re-keys thousands at once): the default queue
     * of ~200 KB overflowed with 256 requests in flight and the kernel dropped 0.4-2 % of them,
     * each costing its endpoint a 1 s retransmission. */
    n->udp_rcvbuf = CMS_UDP_RCVBUF;
}

static void
print_suites(const struct cms_config *cfg, FILE *out)
{
    char b[32];

    fprintf(out, "suites:");
    for (size_t i = 0; i < cfg->n_suites; i++)
        fprintf(out, " %s", cms_suite_name(CK_KMM_DOI_IPSEC, cfg->suites[i], b, sizeof(b)));
    fprintf(out, "\n");
}

static int
check_file(const char *what, const char *path)
{
    struct ck_log_target t = {.dest = CK_LOG_FILE, .level = -1};

    ck_strlcpy(t.path, path, sizeof(t.path));
    if (ck_log_target_check(&t) != 0) {
        print_error(what);
        return 1;
    }
    return 0;
}

/* The call settings of --check (issue 8). */
static int
check_calls(const struct cms_config *cfg)
{
    char b[32];

    printf("call_mode: %s, media: %s, call_ipsec_suite: %s%s, compat_seq: %s\n",
           cfg->call_mode == CMS_CALL_SGCP ? "sgcp" : "ncs", cms_media_name(cfg->media),
           cms_suite_name(CK_KMM_DOI_IPSEC, cfg->call_suite, b, sizeof(b)),
           cfg->call_mode == CMS_CALL_SGCP ? " (unused: sgcp)" : "",
           cfg->compat_seq ? "true" : "false");
    printf("call_retry_ms: %lld, call_tries: %lld\n", (long long)cfg->call_retry_ms,
           (long long)cfg->call_tries);
    printf("kdc: %s\n", cfg->kdc != NULL ? cfg->kdc : "(krb5.conf)");
    printf("lines: %zu\n", cfg->n_lines);
    for (size_t i = 0; i < cfg->n_lines; i++)
        printf("line: %s %s%s%s%s\n", cfg->lines[i].number, cfg->lines[i].principal,
               cfg->lines[i].mac[0] != '\0' ? " mac=" : "", cfg->lines[i].mac,
               cfg->lines[i].server ? " server" : "");
    printf("routes: %zu\n", cfg->n_routes);
    for (size_t i = 0; i < cfg->n_routes; i++)
        printf("route: %s %s %s sig=%u\n", cfg->routes[i].prefix, cfg->routes[i].principal,
               cfg->routes[i].kmm, (unsigned)cfg->routes[i].sig_port);
    if (cfg->intercept_db != NULL) {
        if (access(cfg->intercept_db, R_OK | W_OK) != 0) {
            fprintf(stderr, CMS_PROG ": intercept_db %s: %s\n", cfg->intercept_db,
                    strerror(errno));
            return 1;
        }
        printf("intercept_db: %s, escrow_retention: %llds, escrow_dir: %s\n", cfg->intercept_db,
               (long long)cfg->escrow_retention,
               cfg->escrow_dir != NULL ? cfg->escrow_dir : "(none)");
        if (cfg->escrow_dir != NULL && access(cfg->escrow_dir, W_OK | X_OK) != 0) {
            fprintf(stderr, CMS_PROG ": escrow_dir %s: %s\n", cfg->escrow_dir, strerror(errno));
            return 1;
        }
    } else {
        printf("intercept_db: (none: lawful intercept off)\n");
    }
    if (cfg->export_wireshark != NULL) {
        if (check_file("export_wireshark", cfg->export_wireshark) != 0)
            return 1;
        printf("export-wireshark: %s\n", cfg->export_wireshark);
    }
    if (cfg->provisioning_url != NULL)
        printf("provisioning: %s%s%s, lines %s\n", cfg->provisioning_url,
               cfg->provisioning_ca != NULL ? ", ca " : "",
               cfg->provisioning_ca != NULL ? cfg->provisioning_ca : "",
               cfg->provisioning_lines ? "learnt from it" : "off");
    if (cfg->provisioning_url != NULL)
        printf("provisioning_retry_max: %llds\n", (long long)cfg->provisioning_retry_max);
    else
        printf("provisioning: off\n");
    return 0;
}

/* --check: what a start needs, in start-up order, as the user the daemon would run as. */
static int
check_config(struct daemon *d)
{
    const struct cms_config *cfg = &d->cfg;
    struct ck_net_config ncfg;
    struct cms_sig_server *sig = NULL;
    ck_keyset *ks = NULL;
    char listen[4200], logd[4200];
    size_t n_keys = 0;
    uint32_t kvno = 0;

    printf("config: %s\n", cfg->config_path != NULL ? cfg->config_path : "(none: defaults)");
    net_config(cfg, &ncfg);
    if (ck_net_check_listen(&ncfg, listen, sizeof(listen)) != 0) {
        print_error("listen");
        return 1;
    }
    printf("listen: %s (udp)\n", listen);
    if (cms_sig_server_bind((const char *const *)cfg->signaling_listen, cfg->n_signaling_listen,
                            &sig) != 0) {
        /* A running daemon holds the port: that is no reason to fail a check (as for listen). */
        if (strstr(ck_error_context(), "Address already in use") == NULL) {
            print_error("signaling listen");
            return 1;
        }
        printf("signaling listen: %s (port in use now)\n", ck_error_context());
    } else {
        cms_sig_server_describe(sig, listen, sizeof(listen));
        cms_sig_server_free(sig);
        printf("signaling listen: %s (udp)\n", listen);
    }
    if (cfg->pid_file != NULL && ck_daemon_check_pidfile(CMS_PROG, cfg->pid_file) != 0)
        return 1;
    if (cfg->user != NULL && ck_daemon_check_user(CMS_PROG, cfg->user, true, NULL) != 0)
        return 1;
    if (ck_keyset_new(cfg->keytab, cfg->service, &ks) != 0) {
        print_error("keytab");
        return 1;
    }
    ck_keyset_describe(ks, &n_keys, &kvno);
    printf("keytab: %s\nservice: %s (%zu key%s, newest kvno %u)\n", cfg->keytab,
           ck_keyset_service(ks), n_keys, n_keys == 1 ? "" : "s", kvno);
    ck_keyset_free(ks);
    print_suites(cfg, stdout);
    printf("sa_lifetime: %llds, grace: %llds, rekey margin: %llds, ack_required: %s\n",
           (long long)cfg->sa_lifetime, (long long)cfg->grace,
           (long long)cms_config_rekey_margin(cfg), cfg->ack_required ? "true" : "false");
    printf("max_sas: %lld, replay_cache_size: %lld, clockskew: %llds\n", (long long)cfg->max_sas,
           (long long)cfg->replay_cache_size, (long long)cfg->clockskew);
    printf("log: %s, level %s\n", ck_log_target_describe(&cfg->log, logd, sizeof(logd)),
           ck_log_level_name(cfg->log_level));
    if (ck_log_target_check(&cfg->log) != 0) {
        print_error("log");
        return 1;
    }
    if (cfg->export_xfrm != NULL) {
        struct ck_log_target t = {.dest = CK_LOG_FILE, .level = -1};
        ck_strlcpy(t.path, cfg->export_xfrm, sizeof(t.path));
        if (ck_log_target_check(&t) != 0) {
            print_error("--export-xfrm");
            return 1;
        }
        printf("export-xfrm: %s\n", cfg->export_xfrm);
    }
    if (check_calls(cfg) != 0)
        return 1;
    printf("configuration OK\n");
    return 0;
}

/* ---- server-started KMM messages -------------------------------------------------------- */

static int
send_kmm(void *arg, const struct sockaddr *peer, socklen_t peer_len, const uint8_t *msg,
         size_t len)
{
    struct daemon *d = arg;

    for (size_t i = 0; i < d->n_send; i++) {
        if (d->send[i].family != peer->sa_family)
            continue;
        if (sendto(d->send[i].fd, msg, len, MSG_DONTWAIT, peer, peer_len) < 0)
            return ck_error_set(CK_ERR_IO, "sendto: %s", strerror(errno));
        return 0;
    }
    return ck_error_set(CK_ERR_UNSUPPORTED, "no KMM socket of the peer's family");
}

static int
open_send_sockets(struct daemon *d)
{
    size_t n = ck_net_server_n_addrs(d->net);

    for (size_t i = 0; i < n && d->n_send < CK_NET_MAX_ADDRS; i++) {
        struct sockaddr_storage ss, sink;
        socklen_t len = sizeof(ss), sink_len;
        int fd, one = 1;
        char a[CK_NET_ADDRSTRLEN];

        if (ck_net_server_addr(d->net, i, &ss, &len) != 0)
            return -1;
        ck_net_addr_format((struct sockaddr *)&ss, a, sizeof(a));
        memset(&sink, 0, sizeof(sink));
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *s4 = (struct sockaddr_in *)(void *)&sink;
            s4->sin_family = AF_INET;
            s4->sin_port = htons(9);
            s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            sink_len = sizeof(*s4);
        } else {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)(void *)&sink;
            s6->sin6_family = AF_INET6;
            s6->sin6_port = htons(9);
            s6->sin6_addr = in6addr_loopback;
            sink_len = sizeof(*s6);
        }
        fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
            (ss.ss_family == AF_INET6 &&
             setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) ||
            bind(fd, (struct sockaddr *)&ss, len) != 0 ||
            connect(fd, (struct sockaddr *)&sink, sink_len) != 0) {
            ck_error_set(CK_ERR_IO, "KMM send socket %s: %s", a, strerror(errno));
            if (fd >= 0)
                close(fd);
            return -1;
        }
        d->send[d->n_send].fd = fd;
        d->send[d->n_send].family = ss.ss_family;
        d->n_send++;
    }
    return 0;
}

/* ---- network glue ----------------------------------------------------------------------- */

/* Per KMM worker: with --log-flush-ms MS, request lines are batched (one write per batch, at
 * most MS late), as cablekey-kdc does: at 100,000 endpoints keying, a write per line costs more
 * than the exchange. The default (0) writes each line at once, in order with the others. */
struct kmm_worker {
    struct daemon *d;
    int64_t first_ms;          /* when the oldest unflushed line was added (0: none) */
    struct ck_log_batch batch;
};

static int
handle(void *state, const struct ck_net_request *req, uint8_t *reply, size_t reply_cap,
       size_t *reply_len)
{
    struct kmm_worker *w = state;
    char line[768];
    int level;
    /* Every line is info or debug: below info none would be written, so none is formatted. */
    bool want = ck_log_level() >= LOG_INFO;

    line[0] = '\0';
    cms_kmm_handle(&w->d->srv, req->data, req->len, req->peer, req->local, reply, reply_cap,
                   reply_len, want ? line : NULL, want ? sizeof(line) : 0);
    if (line[0] == '\0')
        return 0;
    level = strstr(line, ": dropped") != NULL ? LOG_DEBUG : LOG_INFO;
    if (level > ck_log_level())
        return 0;
    if (w->d->log_flush_ms == 0) {
        ck_log(level, "%s", line);
        return 0;
    }
    if (w->first_ms == 0)
        w->first_ms = ck_monotonic_ms();
    ck_log_batch_add_str(&w->batch, level, line, strlen(line));
    return 0;
}

static int
idle(void *state)
{
    struct kmm_worker *w = state;
    int64_t wait;

    if (w == NULL || w->first_ms == 0)
        return -1;
    wait = w->first_ms + w->d->log_flush_ms - ck_monotonic_ms();
    if (wait > 0)
        return (int)wait;
    ck_log_batch_flush(&w->batch);
    w->first_ms = 0;
    return -1;
}

static int
worker_init(int index, void *arg, void **state)
{
    struct kmm_worker *w = calloc(1, sizeof(*w));

    (void)index;
    *state = NULL;
    if (w == NULL)
        return ck_error_set(CK_ERR_NOMEM, "KMM worker");
    w->d = arg;
    ck_log_batch_init(&w->batch);
    *state = w;
    return 0;
}

static void
worker_fini(int index, void *arg, void *state)
{
    struct kmm_worker *w = state;

    (void)index;
    (void)arg;
    if (w != NULL) {
        ck_log_batch_flush(&w->batch);
        free(w);
    }
    ck_crypto_thread_cleanup();
}

/* ---- maintenance: keytab poll, expiry, Rekey, SIGUSR1 ----------------------------------- */

static void
keytab_poll(struct daemon *d, bool force)
{
    bool changed = false;
    size_t n = 0;
    uint32_t kvno = 0;

    if (ck_keyset_refresh(d->keys, force, &changed) != 0) {
        ck_log_err("keytab %s: %s; the keys in use are kept", d->cfg.keytab, ck_error_context());
        return;
    }
    if (changed) {
        ck_keyset_describe(d->keys, &n, &kvno);
        ck_log_notice("keytab %s re-read: %zu key%s of %s, newest kvno %u", d->cfg.keytab, n,
                      n == 1 ? "" : "s", ck_keyset_service(d->keys), kvno);
    }
}

/* Escrow records are kept for escrow_retention only: the first maintenance round, every
 * CMS_ESCROW_PURGE_INTERVAL seconds after it, and the round after a SIGHUP delete what has
 * expired, drop files included. */
#define CMS_ESCROW_PURGE_INTERVAL 600

static void
escrow_purge(struct daemon *d)
{
    int64_t now = (int64_t)time(NULL);
    size_t records = 0, files = 0;

    if (d->glue.li == NULL || (now < d->next_purge && !atomic_exchange(&d->purge_now, false)))
        return;
    d->next_purge = now + CMS_ESCROW_PURGE_INTERVAL;
    if (ck_li_purge_drops(d->glue.li, CMS_PROG, now, d->glue.escrow_dir, &records, &files) != 0)
        ck_log_err("intercept: retention purge: %s", ck_error_context());
    else if (records > 0 || files > 0)
        ck_log_notice("intercept: retention purge: %zu record%s, %zu drop file%s removed", records,
                      records == 1 ? "" : "s", files, files == 1 ? "" : "s");
}

static void *
maintenance(void *arg)
{
    struct daemon *d = arg;
    sigset_t set;
    struct timespec one = {1, 0};

    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    while (!atomic_load(&d->stopping)) {
        int sig = sigtimedwait(&set, NULL, &one);

        if (atomic_load(&d->stopping))
            break;
        if (sig == SIGUSR1) {
            size_t n;
            ck_log_notice("SIGUSR1: sending Rekey to every SA (%zu)",
                          cms_sa_table_count(d->srv.sas));
            n = cms_maintenance(&d->srv, true);
            ck_log_notice("SIGUSR1: %zu Rekey message%s sent", n, n == 1 ? "" : "s");
            continue;
        }
        keytab_poll(d, false);
        (void)cms_maintenance(&d->srv, false);
        escrow_purge(d);
    }
    ck_crypto_thread_cleanup();
    return NULL;
}

/* ---- SIGHUP ----------------------------------------------------------------------------- */

static bool
same_list(char *const *a, size_t na, char *const *b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (strcmp(a[i], b[i]) != 0)
            return false;
    return true;
}

static bool
same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static int
reload(void *arg, char *status, size_t status_size)
{
    struct daemon *d = arg;
    struct cms_config nc;
    struct cms_params p;
    int rc, restart = 0;

    ck_log_notice("SIGHUP: re-reading the configuration and the keytab");
    if ((rc = cms_config_load(&d->flags, &nc)) != 0) {
        ck_log_err("SIGHUP: configuration refused, the running one is kept: %s",
                   ck_error_context());
        snprintf(status, status_size, "reload refused: %s", ck_error_context());
        cms_config_free(&nc);
        return rc;
    }
#define RESTART(cond, what)                                                                  \
    do {                                                                                     \
        if (cond) {                                                                          \
            ck_log_warn("SIGHUP: %s changed: needs a restart, not applied", what);           \
            restart++;                                                                       \
        }                                                                                    \
    } while (0)
    RESTART(!same_list(d->cfg.listen, d->cfg.n_listen, nc.listen, nc.n_listen), "listen");
    RESTART(!same_list(d->cfg.signaling_listen, d->cfg.n_signaling_listen, nc.signaling_listen,
                       nc.n_signaling_listen), "signaling_listen");
    RESTART(!same_str(d->cfg.keytab, nc.keytab), "keytab path");
    RESTART(!same_str(d->cfg.service, nc.service), "service");
    RESTART(!same_str(d->cfg.user, nc.user), "user");
    RESTART(d->cfg.max_sas != nc.max_sas, "max_sas");
    RESTART(d->cfg.replay_cache_size != nc.replay_cache_size, "replay_cache_size");
    RESTART(d->cfg.solicited_key_timeout != nc.solicited_key_timeout, "solicited_key_timeout");
    RESTART(d->cfg.n_lines != nc.n_lines || d->cfg.n_routes != nc.n_routes ||
            (nc.n_lines > 0 &&
             memcmp(d->cfg.lines, nc.lines, nc.n_lines * sizeof(*nc.lines)) != 0) ||
            (nc.n_routes > 0 &&
             memcmp(d->cfg.routes, nc.routes, nc.n_routes * sizeof(*nc.routes)) != 0) ||
            d->cfg.call_mode != nc.call_mode || d->cfg.media != nc.media ||
            d->cfg.call_suite.auth != nc.call_suite.auth ||
            d->cfg.call_suite.enc != nc.call_suite.enc || d->cfg.compat_seq != nc.compat_seq ||
            d->cfg.call_retry_ms != nc.call_retry_ms || d->cfg.call_tries != nc.call_tries ||
            !same_str(d->cfg.kdc, nc.kdc) || !same_str(d->cfg.intercept_db, nc.intercept_db) ||
            !same_str(d->cfg.escrow_dir, nc.escrow_dir) ||
            d->cfg.escrow_retention != nc.escrow_retention ||
            !same_str(d->cfg.export_wireshark, nc.export_wireshark),
            "call settings (call_mode, media, lines, routes, intercept ...)");
    RESTART(!same_str(d->cfg.provisioning_url, nc.provisioning_url) ||
            !same_str(d->cfg.provisioning_ca, nc.provisioning_ca) ||
            d->cfg.provisioning_lines != nc.provisioning_lines ||
            d->cfg.provisioning_retry_max != nc.provisioning_retry_max,
            "provisioning (provisioning_url, provisioning_ca, provisioning_lines)");
#undef RESTART
    if ((rc = ck_log_reconfigure(nc.log.dest, nc.log.path, nc.log_level)) != 0) {
        ck_log_err("SIGHUP: log: %s; the running configuration is kept", ck_error_context());
        snprintf(status, status_size, "reload refused: %s", ck_error_context());
        cms_config_free(&nc);
        return rc;
    }
    cms_params_from_config(&p, &nc);
    cms_server_set_params(&d->srv, &p);
    d->cfg.log = nc.log;
    d->cfg.log_level = nc.log_level;
    d->cfg.clockskew = nc.clockskew;
    d->cfg.sa_lifetime = nc.sa_lifetime;
    d->cfg.grace = nc.grace;
    d->cfg.ack_required = nc.ack_required;
    d->cfg.rekey_margin = nc.rekey_margin;
    d->cfg.sa_life_kbytes = nc.sa_life_kbytes;
    memcpy(d->cfg.suites, nc.suites, sizeof(nc.suites));
    d->cfg.n_suites = nc.n_suites;
    cms_config_free(&nc);
    keytab_poll(d, true);
    atomic_store(&d->purge_now, true); /* the maintenance thread purges expired escrow now */
    ck_log_notice("SIGHUP: configuration reloaded (%d setting%s needing a restart)", restart,
                  restart == 1 ? "" : "s");
    snprintf(status, status_size, "serving; reloaded (%d need a restart)", restart);
    return 0;
}

/* ---- call control ----------------------------------------------------------------------- */

static int
glue_send_sa(void *arg, const char *client, uint32_t spi, const char *text, size_t len)
{
    return cms_sig_send_text(&((struct call_glue *)arg)->out, client, spi, text, len);
}

static int
glue_peer_command(void *arg, size_t route, const char *verb, const char *params, uint32_t *txid)
{
    struct call_glue *g = arg;

    if (g->peers == NULL)
        return ck_error_set(CK_ERR_NOTFOUND, "no peer channels");
    return cms_peers_command(g->peers, route, verb, params, txid);
}

static int
glue_escrow(void *arg, const struct ck_li_call *call, int64_t now_s, size_t *n)
{
    struct call_glue *g = arg;

    return ck_li_escrow(g->li, call, now_s, g->retention, g->escrow_dir, n);
}

/* Call control when lines or routes are configured (otherwise every command gets 200, as in
 * issue 7). The peer thread starts later, with the workers. */
static int
calls_init(struct daemon *d)
{
    struct cms_call_io io;
    char self[CK_MGCP_MAX_ENDPOINT];
    const char *service = ck_keyset_service(d->keys);
    int rc;

    if (d->cfg.n_lines == 0 && d->cfg.n_routes == 0 &&
        !(d->cfg.provisioning_url != NULL && d->cfg.provisioning_lines))
        return 0;
    d->glue.out.s = &d->srv;
    d->glue.out.ss = d->sig;
    if ((rc = ck_esp_engine_new(&d->glue.out.eng)) != 0)
        return rc;
    memset(&io, 0, sizeof(io));
    io.send_sa = glue_send_sa;
    io.peer_command = glue_peer_command;
    io.arg = &d->glue;
    if (d->cfg.intercept_db != NULL) {
        if ((rc = ck_li_open(d->cfg.intercept_db, 0, &d->glue.li)) != 0)
            return ck_error_set(rc, "intercept_db %s: %s", d->cfg.intercept_db,
                                ck_error_context());
        d->glue.retention = d->cfg.escrow_retention;
        d->glue.escrow_dir = d->cfg.escrow_dir;
        io.escrow = glue_escrow;
    }
    cms_peers_self_name(service, self, sizeof(self));
    if ((rc = cms_call_core_new(&d->cfg, self, &io, &d->calls)) != 0 ||
        (rc = cms_peers_new(&d->cfg, service, self, d->calls, &d->glue.peers)) != 0)
        return rc;
    d->srv.calls = d->calls;
    ck_log_notice("calls: %zu line%s, %zu route%s, %s, media %s, as %s, lawful intercept %s",
                  d->cfg.n_lines, d->cfg.n_lines == 1 ? "" : "s", d->cfg.n_routes,
                  d->cfg.n_routes == 1 ? "" : "s",
                  d->cfg.call_mode == CMS_CALL_SGCP ? "sgcp" : "ncs", cms_media_name(d->cfg.media),
                  self, d->glue.li != NULL ? "on" : "off");
    return 0;
}

static void
calls_fini(struct daemon *d)
{
    struct cms_call_stats st;

    cms_peers_free(d->glue.peers);
    d->glue.peers = NULL;
    if (d->calls != NULL) {
        cms_call_get_stats(d->calls, &st);
        ck_log_notice("calls: started %llu connected %llu released %llu failed %llu dropped %llu "
                      "retransmissions %llu spi-retries %llu ack-mismatch %llu escrowed %llu",
                      (unsigned long long)st.started, (unsigned long long)st.connected,
                      (unsigned long long)st.released, (unsigned long long)st.failed,
                      (unsigned long long)st.dropped, (unsigned long long)st.retransmissions,
                      (unsigned long long)st.spi_retries, (unsigned long long)st.ack_mismatch,
                      (unsigned long long)st.escrowed);
    }
    d->srv.calls = NULL;
    cms_call_core_free(d->calls);
    d->calls = NULL;
    ck_li_close(d->glue.li);
    d->glue.li = NULL;
    ck_esp_engine_free(d->glue.out.eng);
    d->glue.out.eng = NULL;
}

/* ---- provisioning (cablekey-prov) ------------------------------------------------------- */

static int
prov_init(struct daemon *d)
{
    struct cms_prov_opts o;
    struct cms_prov_transport rep, lines;
    int rc;

    if (d->cfg.provisioning_url == NULL)
        return 0;
    if ((rc = cms_prov_http_new(d->cfg.provisioning_url, d->cfg.provisioning_ca, d->cfg.keytab,
                                "report", &d->prov_stop, &d->http_rep)) != 0 ||
        (d->cfg.provisioning_lines &&
         (rc = cms_prov_http_new(d->cfg.provisioning_url, d->cfg.provisioning_ca,
                                 d->cfg.keytab, "lines", &d->prov_stop, &d->http_lines)) != 0))
        return ck_error_set(rc, "provisioning_url: %s", ck_error_context());
    memset(&o, 0, sizeof(o));
    o.controller = cms_prov_http_principal(d->http_rep);
    o.lines = d->cfg.provisioning_lines;
    o.backoff_min_ms = 1000;
    o.backoff_max_ms = d->cfg.provisioning_retry_max * 1000;
    rep = (struct cms_prov_transport){cms_prov_http_request, d->http_rep};
    lines = (struct cms_prov_transport){cms_prov_http_request, d->http_lines};
    if ((rc = cms_prov_new(&o, &rep, o.lines ? &lines : NULL, NULL, NULL, d->calls,
                           &d->prov)) != 0)
        return rc;
    d->srv.prov = d->prov;
    ck_log_notice("provisioning: %s as %s, reports on, lines %s", d->cfg.provisioning_url,
                  o.controller, o.lines ? "learnt from it" : "off");
    return 0;
}

static void
prov_fini(struct daemon *d)
{
    struct cms_prov_stats st;

    if (d->prov != NULL) {
        cms_prov_stop(d->prov);
        cms_prov_get_stats(d->prov, &st);
        ck_log_notice("provisioning: reports queued %llu coalesced %llu ok %llu retries %llu "
                      "dropped %llu pending %zu; line polls %llu errors %llu, %zu lines, "
                      "cursor %lld", (unsigned long long)st.queued,
                      (unsigned long long)st.coalesced, (unsigned long long)st.ok,
                      (unsigned long long)st.retries, (unsigned long long)st.dropped, st.pending,
                      (unsigned long long)st.polls, (unsigned long long)st.poll_errors, st.lines,
                      (long long)st.cursor);
    }
    d->srv.prov = NULL;
    cms_prov_free(d->prov);
    d->prov = NULL;
    cms_prov_http_free(d->http_rep);
    cms_prov_http_free(d->http_lines);
    d->http_rep = d->http_lines = NULL;
}

/* ---- start ------------------------------------------------------------------------------ */

static int
open_log(struct daemon *d, bool dropped)
{
    if (d->have_user && !dropped)
        return ck_log_open(CMS_PROG, d->cfg.log.dest == CK_LOG_FILE ? CK_LOG_STDERR : d->cfg.log.dest,
                           NULL, d->cfg.log_level);
    if (!d->have_user)
        return ck_log_open(CMS_PROG, d->cfg.log.dest, d->cfg.log.path, d->cfg.log_level);
    return ck_log_reconfigure(d->cfg.log.dest, d->cfg.log.path, d->cfg.log_level);
}

/* What one endpoint costs, measured on a probe SA pair with placeholder keys. */
static void
log_footprint(struct daemon *d)
{
    static const uint8_t zero[CK_ESP_MAX_KEY];
    struct ck_esp_sa_params p = {.spi = 256, .enc = CK_KMM_ENC_AES128,
                                 .auth = CK_KMM_AUTH_HMAC_SHA1_96, .enc_key = zero,
                                 .enc_key_len = 16, .auth_key = zero, .auth_key_len = 20};
    struct cms_sa *sa = cms_sa_alloc("mta/endpoint.example.net@EXAMPLE.NET");

    if (sa == NULL || ck_esp_sa_new(&p, &sa->in) != 0 || ck_esp_sa_new(&p, &sa->out) != 0) {
        cms_sa_free(sa);
        return;
    }
    ck_log_info("SA table: %lld SA pairs at most, about %zu bytes per endpoint",
                (long long)d->cfg.max_sas, cms_sa_footprint(d->srv.sas, sa));
    cms_sa_free(sa);
}

static void
log_stats(struct cms_server *s)
{
    struct cms_stats *st = &s->stats;

    ck_log_notice("stats: kmm ok %llu error %llu dropped %llu sp-recovered %llu bad %llu; esp ok "
                  "%llu unknown-spi %llu replay %llu bad-icv %llu expired %llu other %llu; "
                  "answered %llu pending %llu rqnt %llu/%llu; wakeups %llu (limited %llu) "
                  "rekeys %llu expired-sas %llu",
                  st->kmm_ok, st->kmm_error, st->kmm_dropped, st->spr_ok, st->spr_bad, st->esp_ok,
                  st->esp_unknown_spi, st->esp_replay, st->esp_bad_icv, st->esp_expired,
                  st->esp_other, st->sig_answered, st->esp_pending, st->rqnt_acked, st->rqnt_sent,
                  st->wakeups, st->wakeups_limited, st->rekeys, st->sa_expired);
}

int
main(int argc, char **argv)
{
    static struct daemon dm;
    struct daemon *d = &dm;
    struct ck_net_config ncfg;
    struct ck_net_callbacks cb;
    char kmm_addrs[LISTEN_LOG_MAX], sig_addrs[LISTEN_LOG_MAX];
    bool pid_written = false, served = false;
    sigset_t usr1;
    int sfd = -1, rc, status = 1, workers;

    if ((rc = parse_args(argc, argv, &d->flags, &d->log_flush_ms)) >= 0)
        return rc;
    ck_log_open(CMS_PROG, CK_LOG_STDERR, NULL, LOG_INFO);
    /* Before any thread: libcurl's global state (the provisioning client). */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (cms_config_load(&d->flags, &d->cfg) != 0) {
        print_error("configuration");
        goto out;
    }
    if (d->flags.common.check) {
        status = check_config(d);
        goto out;
    }
    if (d->cfg.user != NULL) {
        if (ck_daemon_user_lookup(d->cfg.user, &d->user) != 0) {
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
    /* SIGUSR1 is taken by the maintenance thread with sigtimedwait: blocked everywhere. */
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &usr1, NULL);
    if (d->cfg.pid_file != NULL) {
        if (ck_daemon_pidfile_write(d->cfg.pid_file) != 0) {
            ck_log_err("%s", ck_error_context());
            goto out;
        }
        pid_written = true;
    }

    /* 1. Bind (may need privileges for ports below 1024). */
    net_config(&d->cfg, &ncfg);
    memset(&cb, 0, sizeof(cb));
    cb.handler = handle;
    cb.worker_init = worker_init;
    cb.worker_fini = worker_fini;
    cb.arg = d;
    if (ck_net_server_new(&ncfg, &cb, &d->net) != 0 || ck_net_server_bind(d->net) != 0 ||
        open_send_sockets(d) != 0 ||
        cms_sig_server_bind((const char *const *)d->cfg.signaling_listen,
                            d->cfg.n_signaling_listen, &d->sig) != 0) {
        ck_log_err("%s", ck_error_context());
        goto out;
    }
    ck_net_server_set_idle(d->net, idle);

    /* 2. Drop privileges before the keytab is read. */
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

    /* 3. Keys, state, workers. */
    if (ck_keyset_new(d->cfg.keytab, d->cfg.service, &d->keys) != 0 ||
        cms_server_init(&d->srv, &d->cfg, d->keys) != 0) {
        ck_log_err("%s", ck_error_context());
        goto out;
    }
    d->srv_up = true;
    d->srv.send_kmm = send_kmm;
    d->srv.send_arg = d;
    d->srv.signaling_port = cms_sig_server_port(d->sig);
    if (d->cfg.export_xfrm != NULL) {
        d->srv.xfrm_fd = open(d->cfg.export_xfrm, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (d->srv.xfrm_fd < 0) {
            ck_log_err("--export-xfrm %s: %s", d->cfg.export_xfrm, strerror(errno));
            goto out;
        }
    }
    if (d->cfg.export_wireshark != NULL) {
        d->srv.wireshark_fd = open(d->cfg.export_wireshark,
                                   O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (d->srv.wireshark_fd < 0) {
            ck_log_err("export_wireshark %s: %s", d->cfg.export_wireshark, strerror(errno));
            goto out;
        }
    }
    if (calls_init(d) != 0) {
        ck_log_err("calls: %s", ck_error_context());
        goto out;
    }
    if (prov_init(d) != 0) {
        ck_log_err("%s", ck_error_context());
        goto out;
    }
    log_footprint(d);
    if (ck_net_server_run(d->net) != 0) {
        ck_log_err("%s", ck_error_context());
        goto out;
    }
    workers = ck_net_server_workers(d->net);
    if (cms_sig_server_run(d->sig, &d->srv, workers) != 0) {
        ck_log_err("%s", ck_error_context());
        goto out;
    }
    if (d->glue.peers != NULL && cms_peers_run(d->glue.peers) != 0) {
        ck_log_err("%s", ck_error_context());
        goto out;
    }
    if (d->prov != NULL && cms_prov_start(d->prov, &d->prov_stop) != 0) {
        ck_log_err("%s", ck_error_context());
        goto out;
    }
    if ((rc = pthread_create(&d->maint, NULL, maintenance, d)) != 0) {
        ck_log_err("maintenance thread: %s", strerror(rc));
        goto out;
    }
    d->maint_up = true;
    ck_net_server_describe(d->net, kmm_addrs, sizeof(kmm_addrs));
    cms_sig_server_describe(d->sig, sig_addrs, sizeof(sig_addrs));
    ck_log_notice("service %s, keytab %s, %d workers", ck_keyset_service(d->keys),
                  d->cfg.keytab, workers);
    ck_log_notice(CMS_PROG " ready: kmm %s signaling %s", kmm_addrs, sig_addrs);
    if (ck_daemon_notify("READY=1\nSTATUS=kmm %s signaling %s", kmm_addrs, sig_addrs) != 0)
        ck_log_warn("%s", ck_error_context());
    served = true;
    status = ck_daemon_loop(sfd, reload, d) < 0 ? 1 : 0;
out:
    atomic_store(&d->stopping, true);
    if (d->maint_up) {
        pthread_kill(d->maint, SIGUSR1);
        pthread_join(d->maint, NULL);
    }
    ck_net_server_free(d->net);
    cms_sig_server_free(d->sig);
    prov_fini(d);
    calls_fini(d);
    for (size_t i = 0; i < d->n_send; i++)
        close(d->send[i].fd);
    if (d->srv_up) {
        if (served)
            log_stats(&d->srv);
        cms_server_fini(&d->srv);
    }
    ck_keyset_free(d->keys);
    if (pid_written)
        ck_daemon_pidfile_remove(d->cfg.pid_file);
    if (sfd >= 0)
        close(sfd);
    cms_config_free(&d->cfg);
    if (served)
        ck_log_notice("stopped");
    ck_log_close();
    curl_global_cleanup();
    return status;
}
