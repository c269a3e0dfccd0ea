/* cablekey-kdc: the daemon shell around the KDC protocol core. It reads the configuration, binds
 * the sockets, runs one kdc_worker per network worker thread, and handles signals: SIGTERM and
 * SIGINT stop, SIGHUP reopens the log file. It stays in the foreground and speaks the systemd
 * notify protocol when $NOTIFY_SOCKET is set. Operator documentation: docs/cablekey-kdc.md. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cablekey/error.h"
#include "cablekey/log.h"
#include "cablekey/net.h"
#include "cablekey/profile.h"
#include "cablekey/util.h"
#include "config.h"
#include "kdc.h"
#include "kpasswd.h"
#include "pkinit_kdc.h"

#define PROG "cablekey-kdc"
#define LISTEN_LOG_MAX 1024
#define KDC_LOG_FLUSH_MS 100     /* request log lines are at most this late */

struct options {
    const char *config;
    const char *realm;
    const char *db;
    const char *stash;
    const char *log;
    const char *log_level;
    const char *workers;
    const char *log_flush_ms;
    const char *pid_file;
    const char *listen[KDC_MAX_LISTEN];
    size_t n_listen;
    const char *kpasswd_listen[KDC_MAX_LISTEN];
    size_t n_kpasswd_listen;
    bool check;
    /* PKINIT flags: kdc.conf key and value, applied over the file's settings. */
    struct {
        const char *key, *value;
    } pkinit[8];
    size_t n_pkinit;
};

enum {
    OPT_CHECK = 256, OPT_LISTEN, OPT_DB, OPT_STASH, OPT_LOG_LEVEL, OPT_LOG, OPT_WORKERS,
    OPT_PID_FILE, OPT_VERSION, OPT_HELP, OPT_PKINIT_IDENTITY, OPT_PKINIT_PASSWORD_FILE,
    OPT_PKINIT_ANCHORS, OPT_PKINIT_DEVICE_ANCHORS, OPT_PKINIT_PACKETCABLE_ANCHORS, OPT_PKINIT_POOL,
    OPT_LOG_FLUSH_MS, OPT_KPASSWD_LISTEN
};

static void
usage(FILE *out)
{
    fprintf(out,
            "usage: " PROG " [options]\n"
            "  -c, --config FILE       configuration (default " KDC_DEFAULT_CONFIG ")\n"
            "  -r, --realm REALM       realm to serve when [realms] lists several\n"
            "      --check             validate the configuration and database, then exit\n"
            "      --listen ADDR[:PORT] listen address (repeatable; default port 88)\n"
            "      --kpasswd-listen ADDR[:PORT] serve kpasswd here (repeatable; default port\n"
            "                          464; default: kpasswd off)\n"
            "      --db FILE           principal database\n"
            "      --stash FILE        master key stash (default: database + .stash)\n"
            "      --log DEST          stderr, syslog or a file name\n"
            "      --log-level LEVEL   err, warning, notice, info or debug\n"
            "      --workers N         worker threads (default: one per CPU)\n"
            "      --log-flush-ms MS   request lines are written in batches at most MS late\n"
            "                          (default 100; 0 writes each line at once, in order)\n"
            "      --pid-file FILE     write the process id here\n"
            "      --pkinit-identity FILE.p12      KDC certificate and key (or FILE:cert,key)\n"
            "      --pkinit-password-file FILE     password of the PKINIT identity\n"
            "      --pkinit-anchors PEM[,PEM...]   client trust anchors (id-pkinit-san)\n"
            "      --pkinit-device-anchors PEM[,PEM...]      device anchors (device table)\n"
            "      --pkinit-packetcable-anchors PEM[,PEM...] device anchors that may use\n"
            "                                      the PacketCable draft forms\n"
            "      --pkinit-pool PEM[,PEM...]      intermediate CA certificates\n"
            "      --version           print the version\n"
            "  -h, --help              this text\n");
}

/* Errors before logging is set up (and in --check mode): one line on stderr. */
static void
print_error(const char *what)
{
    const char *ctx = ck_error_context();

    if (ctx[0] != '\0')
        fprintf(stderr, PROG ": %s: %s\n", what, ctx);
    else
        fprintf(stderr, PROG ": %s\n", what);
}

static int
parse_args(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"realm", required_argument, NULL, 'r'},
        {"check", no_argument, NULL, OPT_CHECK},
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"kpasswd-listen", required_argument, NULL, OPT_KPASSWD_LISTEN},
        {"db", required_argument, NULL, OPT_DB},
        {"stash", required_argument, NULL, OPT_STASH},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"log", required_argument, NULL, OPT_LOG},
        {"workers", required_argument, NULL, OPT_WORKERS},
        {"log-flush-ms", required_argument, NULL, OPT_LOG_FLUSH_MS},
        {"pid-file", required_argument, NULL, OPT_PID_FILE},
        {"pkinit-identity", required_argument, NULL, OPT_PKINIT_IDENTITY},
        {"pkinit-password-file", required_argument, NULL, OPT_PKINIT_PASSWORD_FILE},
        {"pkinit-anchors", required_argument, NULL, OPT_PKINIT_ANCHORS},
        {"pkinit-device-anchors", required_argument, NULL, OPT_PKINIT_DEVICE_ANCHORS},
        {"pkinit-packetcable-anchors", required_argument, NULL, OPT_PKINIT_PACKETCABLE_ANCHORS},
        {"pkinit-pool", required_argument, NULL, OPT_PKINIT_POOL},
        {"version", no_argument, NULL, OPT_VERSION},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    memset(o, 0, sizeof(*o));
    while ((c = getopt_long(argc, argv, "c:r:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': o->config = optarg; break;
        case 'r': o->realm = optarg; break;
        case OPT_CHECK: o->check = true; break;
        case OPT_LISTEN:
            if (o->n_listen >= KDC_MAX_LISTEN) {
                fprintf(stderr, PROG ": more than %d --listen options\n", KDC_MAX_LISTEN);
                return 2;
            }
            o->listen[o->n_listen++] = optarg;
            break;
        case OPT_KPASSWD_LISTEN:
            if (o->n_kpasswd_listen >= KDC_MAX_LISTEN) {
                fprintf(stderr, PROG ": more than %d --kpasswd-listen options\n", KDC_MAX_LISTEN);
                return 2;
            }
            o->kpasswd_listen[o->n_kpasswd_listen++] = optarg;
            break;
        case OPT_DB: o->db = optarg; break;
        case OPT_STASH: o->stash = optarg; break;
        case OPT_LOG_LEVEL: o->log_level = optarg; break;
        case OPT_LOG: o->log = optarg; break;
        case OPT_WORKERS: o->workers = optarg; break;
        case OPT_LOG_FLUSH_MS: o->log_flush_ms = optarg; break;
        case OPT_PID_FILE: o->pid_file = optarg; break;
        case OPT_PKINIT_IDENTITY:
        case OPT_PKINIT_PASSWORD_FILE:
        case OPT_PKINIT_ANCHORS:
        case OPT_PKINIT_DEVICE_ANCHORS:
        case OPT_PKINIT_PACKETCABLE_ANCHORS:
        case OPT_PKINIT_POOL: {
            static const char *const keys[] = {
                "pkinit_identity", "pkinit_password_file", "pkinit_anchors",
                "pkinit_device_anchors", "pkinit_packetcable_anchors", "pkinit_pool"};
            if (o->n_pkinit >= sizeof(o->pkinit) / sizeof(o->pkinit[0])) {
                fprintf(stderr, PROG ": too many --pkinit options\n");
                return 2;
            }
            o->pkinit[o->n_pkinit].key = keys[c - OPT_PKINIT_IDENTITY];
            o->pkinit[o->n_pkinit].value = optarg;
            o->n_pkinit++;
            break;
        }
        case OPT_VERSION:
            printf(PROG " 0.1.0\n");
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, PROG ": unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    return -1;
}

/* Builds the configuration: defaults, then the file, then the flags. */
static int
build_config(const struct options *o, struct kdc_daemon_config *dc)
{
    struct ck_profile *prof = NULL;
    const char *path = o->config != NULL ? o->config : KDC_DEFAULT_CONFIG;
    int rc;

    kdc_daemon_config_init(dc);
    rc = ck_profile_load(path, &prof);
    /* Without -c a missing default file is fine: flags and defaults suffice. */
    if (rc == CK_ERR_NOTFOUND && o->config == NULL)
        rc = 0;
    if (rc != 0)
        goto out;
    if ((rc = kdc_daemon_config_load(dc, prof, o->realm)) != 0)
        goto out;
    if (o->realm != NULL && prof == NULL)
        rc = kdc_daemon_config_load(dc, NULL, o->realm);
    for (size_t i = 0; rc == 0 && i < o->n_listen; i++)
        rc = kdc_config_set_listen(dc, o->listen[i], i == 0);
    for (size_t i = 0; rc == 0 && i < o->n_kpasswd_listen; i++)
        rc = kdc_config_set_kpasswd_listen(dc, o->kpasswd_listen[i], i == 0);
    if (rc != 0)
        goto out;
    if (o->db != NULL) {
        free(dc->kdc.db_path);
        if ((dc->kdc.db_path = strdup(o->db)) == NULL) {
            rc = ck_error_set(CK_ERR_NOMEM, "config");
            goto out;
        }
    }
    if (o->stash != NULL) {
        free(dc->kdc.stash_path);
        if ((dc->kdc.stash_path = strdup(o->stash)) == NULL) {
            rc = ck_error_set(CK_ERR_NOMEM, "config");
            goto out;
        }
    }
    if (o->log != NULL && (rc = kdc_config_set_log(dc, o->log)) != 0)
        goto out;
    /* A flag replaces the file's list of the same kind (as --listen does). */
    for (size_t i = 0; i < o->n_pkinit; i++) {
        bool first = true;
        for (size_t j = 0; j < i; j++)
            first = first && strcmp(o->pkinit[j].key, o->pkinit[i].key) != 0;
        if ((rc = kdc_pkinit_config_set(&dc->kdc.pkinit, o->pkinit[i].key, o->pkinit[i].value,
                                        first)) != 0)
            goto out;
    }
    if (o->log_level != NULL) {
        int l = ck_log_level_from_name(o->log_level);
        if (l < 0) {
            rc = ck_error_set(CK_ERR_CONFIG, "--log-level %s: unknown level", o->log_level);
            goto out;
        }
        dc->log_level = l;
    }
    if (o->workers != NULL) {
        int64_t n;
        if (ck_parse_int64(o->workers, 1, CK_NET_MAX_WORKERS, &n) != 0) {
            rc = ck_error_set(CK_ERR_CONFIG, "--workers %s: expected 1..%d", o->workers,
                              CK_NET_MAX_WORKERS);
            goto out;
        }
        dc->workers = (int)n;
    }
    /* Request lines are written in batches: one write per batch instead of one per request. */
    dc->kdc.log_flush_ms = KDC_LOG_FLUSH_MS;
    if (o->log_flush_ms != NULL) {
        int64_t n;
        if (ck_parse_int64(o->log_flush_ms, 0, 1000, &n) != 0) {
            rc = ck_error_set(CK_ERR_CONFIG, "--log-flush-ms %s: expected 0..1000",
                              o->log_flush_ms);
            goto out;
        }
        dc->kdc.log_flush_ms = n;
    }
    rc = kdc_daemon_config_finish(dc);
out:
    ck_profile_free(prof);
    return rc;
}

/* ---- logging ---------------------------------------------------------------------------- */

/* A log file is reached through stderr: the file is opened and dup2'ed over fd 2, so SIGHUP can
 * swap in a new file atomically while worker threads keep logging (the log module's own FILE
 * handle could not be replaced safely under them). */
static int
open_log_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);

    if (fd < 0)
        return ck_error_set(CK_ERR_IO, "log file %s: %s", path, strerror(errno));
    if (fd != STDERR_FILENO) {
        if (dup2(fd, STDERR_FILENO) < 0) {
            int e = errno;
            close(fd);
            return ck_error_set(CK_ERR_IO, "log file %s: %s", path, strerror(e));
        }
        close(fd);
    }
    return 0;
}

static int
setup_logging(const struct kdc_daemon_config *dc)
{
    int rc;

    if (dc->log_dest == CK_LOG_FILE && (rc = open_log_file(dc->log_path)) != 0)
        return rc;
    return ck_log_open(PROG, dc->log_dest == CK_LOG_SYSLOG ? CK_LOG_SYSLOG : CK_LOG_STDERR,
                       NULL, dc->log_level);
}

/* ---- systemd notify --------------------------------------------------------------------- */

/* sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET ('@' = abstract socket). */
static void
notify(const char *msg)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sun;
    size_t len;
    int fd;

    if (path == NULL || (path[0] != '/' && path[0] != '@'))
        return;
    len = strlen(path);
    if (len < 2 || len >= sizeof(sun.sun_path))
        return;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, path, len);
    if (sun.sun_path[0] == '@')
        sun.sun_path[0] = '\0';
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sun,
               (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0)
        ck_log_warn("NOTIFY_SOCKET %s: %s", path, strerror(errno));
    close(fd);
}

/* ---- network glue ----------------------------------------------------------------------- */

static int
worker_init(int index, void *arg, void **state)
{
    const struct kdc_config *cfg = arg;
    struct kdc_worker *w = NULL;
    int rc = kdc_worker_new(cfg, &w);

    *state = w;
    if (rc != 0)
        return ck_error_set(rc, "worker %d: %s", index, ck_error_context());
    return 0;
}

static void
worker_fini(int index, void *arg, void *state)
{
    kdc_worker_free(state);
}

static int
handle(void *state, const struct ck_net_request *req, uint8_t *reply, size_t reply_cap,
       size_t *reply_len)
{
    *reply_len = 0;
    if (req->flags & CK_NET_REQ_OVERSIZED)
        return kdc_handle_oversized(state, req->len, req->peer, reply, reply_cap, reply_len);
    return kdc_handle_request(state, req->data, req->len,
                              req->transport == CK_NET_TCP ? KDC_TRANSPORT_TCP
                                                           : KDC_TRANSPORT_UDP,
                              req->peer, reply, reply_cap, reply_len);
}

static int
idle(void *state)
{
    return kdc_worker_idle(state);
}

static int
write_pid_file(const char *path)
{
    char buf[32];
    int fd, n;

    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return ck_error_set(CK_ERR_IO, "pid file %s: %s", path, strerror(errno));
    n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
    if (write(fd, buf, (size_t)n) != n) {
        int e = errno;
        close(fd);
        return ck_error_set(CK_ERR_IO, "pid file %s: %s", path, strerror(e));
    }
    close(fd);
    return 0;
}

static int
check_config(const struct kdc_daemon_config *dc)
{
    struct kdc_worker *w = NULL;
    int rc;

    /* A worker opens the database and the stash, and loads the PKINIT identity and anchors,
     * exactly as the running daemon will. */
    rc = kdc_worker_new(&dc->kdc, &w);
    if (rc != 0) {
        print_error(dc->kdc.pkinit != NULL ? "database or PKINIT" : "database");
        return 1;
    }
    rc = kdc_pkinit_config_check(dc->kdc.pkinit, kdc_worker_realm(w), stdout);
    kdc_worker_free(w);
    if (rc != 0) {
        print_error("PKINIT");
        return 1;
    }
    if (dc->n_kpasswd_listen > 0) {
        struct kpasswd_server *ks = NULL;
        struct kpasswd_worker *kw = NULL;

        rc = kpasswd_server_new(&dc->kdc, dc->kpasswd_admins, &ks);
        if (rc == 0)
            rc = kpasswd_worker_new(ks, &kw);
        kpasswd_worker_free(kw);
        kpasswd_server_free(ks);
        if (rc != 0) {
            print_error("kpasswd");
            return 1;
        }
    }
    printf("configuration OK\n");
    return 0;
}

/* Blocks until SIGTERM or SIGINT; SIGHUP reopens the log file. */
static void
wait_for_signals(int sfd, const struct kdc_daemon_config *dc)
{
    for (;;) {
        struct signalfd_siginfo si;
        ssize_t r = read(sfd, &si, sizeof(si));

        if (r < 0 && errno == EINTR)
            continue;
        if (r != (ssize_t)sizeof(si)) {
            ck_log_err("signalfd: %s", r < 0 ? strerror(errno) : "short read");
            return;
        }
        if (si.ssi_signo == SIGHUP) {
            if (dc->log_dest == CK_LOG_FILE) {
                if (open_log_file(dc->log_path) != 0)
                    ck_log_err("%s", ck_error_context());
                else
                    ck_log_notice("SIGHUP: reopened log file %s", dc->log_path);
            } else {
                ck_log_notice("SIGHUP: nothing to reopen");
            }
            continue;
        }
        ck_log_notice("%s: shutting down", si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
        return;
    }
}

static void
describe_listeners(struct ck_net_server *srv, char *buf, size_t size)
{
    size_t used = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < ck_net_server_n_addrs(srv); i++) {
        struct sockaddr_storage ss;
        socklen_t len;
        char a[CK_NET_ADDRSTRLEN];
        int n;

        if (ck_net_server_addr(srv, i, &ss, &len) != 0)
            break;
        ck_net_addr_format((struct sockaddr *)&ss, a, sizeof(a));
        n = snprintf(buf + used, size - used, "%s%s", i > 0 ? " " : "", a);
        if (n < 0 || (size_t)n >= size - used)
            break;
        used += (size_t)n;
    }
}

int
main(int argc, char **argv)
{
    struct options opts;
    struct kdc_daemon_config dc;
    struct ck_net_config ncfg;
    struct ck_net_callbacks cb;
    struct ck_net_server *srv = NULL;
    struct kpasswd_server *kpw = NULL;
    sigset_t sigs;
    char listeners[LISTEN_LOG_MAX];
    bool pid_written = false, served = false;
    int sfd = -1, rc, status = 1, workers;

    rc = parse_args(argc, argv, &opts);
    if (rc >= 0)
        return rc;
    ck_log_open(PROG, CK_LOG_STDERR, NULL, LOG_INFO);
    if (build_config(&opts, &dc) != 0) {
        print_error("configuration");
        goto out;
    }
    if (opts.check) {
        status = check_config(&dc);
        goto out;
    }
    if (setup_logging(&dc) != 0) {
        print_error("logging");
        goto out;
    }

    /* Block the signals before any thread exists so every worker inherits the mask and only
     * the signalfd below ever sees them. SIGPIPE stays blocked for good: sockets report EPIPE. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGPIPE);
    if ((rc = pthread_sigmask(SIG_BLOCK, &sigs, NULL)) != 0) {
        ck_log_err("pthread_sigmask: %s", strerror(rc));
        goto out;
    }
    sigdelset(&sigs, SIGPIPE);
    sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
    if (sfd < 0) {
        ck_log_err("signalfd: %s", strerror(errno));
        goto out;
    }

    memset(&ncfg, 0, sizeof(ncfg));
    ncfg.listen = (const char *const *)dc.listen;
    ncfg.n_listen = dc.n_listen;
    ncfg.default_port = KDC_DEFAULT_PORT;
    ncfg.workers = dc.workers;
    ncfg.max_request = dc.kdc.max_request;
    ncfg.max_dgram = dc.kdc.max_request < 65535 ? dc.kdc.max_request : 65535;
    ncfg.max_reply = CK_NET_DEFAULT_MAX_REPLY;
    ncfg.tcp_idle_timeout_ms = (int)(dc.tcp_idle_timeout * 1000);
    ncfg.cpu_affinity = dc.cpu_affinity;
    memset(&cb, 0, sizeof(cb));
    cb.handler = handle;
    cb.worker_init = worker_init;
    cb.worker_fini = worker_fini;
    cb.arg = &dc.kdc;
    if ((workers = dc.workers) == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        workers = n < 1 ? 1 : n > CK_NET_MAX_WORKERS ? CK_NET_MAX_WORKERS : (int)n;
    }
    ncfg.workers = workers;
    /* kdc_tcp_max_connections is for the whole process; each worker gets its share. */
    ncfg.tcp_max_conns = (dc.tcp_max_connections + workers - 1) / workers;
    /* The pid file is written before the sockets answer, so whoever sees the KDC answering
     * can also find its pid; it is removed again if startup fails. */
    if (opts.pid_file != NULL) {
        if (write_pid_file(opts.pid_file) != 0) {
            ck_log_err("%s", ck_error_context());
            goto out;
        }
        pid_written = true;
    }
    if (ck_net_server_new(&ncfg, &cb, &srv) == 0)
        ck_net_server_set_idle(srv, idle);
    if (srv == NULL || ck_net_server_start(srv) != 0) {
        ck_log_err("%s", ck_error_context());
        goto out;
    }
    describe_listeners(srv, listeners, sizeof(listeners));
    ck_log_notice("started: realm %s, listening on %s (udp+tcp), %d workers",
                  dc.kdc.realm != NULL ? dc.kdc.realm : "(from database)", listeners, workers);
    if (dc.n_kpasswd_listen > 0) {
        if (kpasswd_server_start(&dc.kdc, (const char *const *)dc.kpasswd_listen,
                                 dc.n_kpasswd_listen, dc.kpasswd_admins, &kpw) != 0) {
            ck_log_err("%s", ck_error_context());
            goto out;
        }
        kpasswd_server_describe(kpw, listeners, sizeof(listeners));
        ck_log_notice("kpasswd: listening on %s (udp+tcp)", listeners);
    }
    notify("READY=1");

    wait_for_signals(sfd, &dc);
    notify("STOPPING=1");
    served = true;
    status = 0;
out:
    kpasswd_server_free(kpw);
    ck_net_server_free(srv);
    if (pid_written)
        unlink(opts.pid_file);
    if (sfd >= 0)
        close(sfd);
    kdc_daemon_config_free(&dc);
    if (served)
        ck_log_notice("stopped");
    ck_log_close();
    return status;
}
