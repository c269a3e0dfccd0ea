/* cablekey-kdc: the daemon shell around the KDC protocol core, on the shared daemon layer
 * (include/cablekey/daemon.h). It reads and validates the configuration, binds the sockets, drops
 * to the service user, opens the database through one kdc_worker per network worker thread, and
 * handles signals: SIGTERM and SIGINT stop, SIGHUP re-reads the configuration and reopens the log.
 * It stays in the foreground and speaks the systemd notify protocol when $NOTIFY_SOCKET is set.
 * Operator documentation: docs/cablekey-kdc.md.
 *
 * Reload: what a worker holds (ticket lifetimes, enctypes, clock skew, lookaside, PKINIT identity
 * and anchors) is applied by building a fresh kdc_worker per network worker on the main thread
 * and handing it over through the worker's slot; the worker thread takes it before its next
 * request (or when it goes idle) and frees the old one. Sockets, worker count, database and user
 * stay as started: a change to them is logged as needing a restart, never half-applied. */
#include <errno.h>
#include <getopt.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cablekey/client.h"
#include "cablekey/daemon.h"
#include "cablekey/error.h"
#include "cablekey/log.h"
#include "cablekey/net.h"
#include "cablekey/profile.h"
#include "cablekey/store.h"
#include "cablekey/util.h"
#include "admission.h"
#include "alarms.h"
#include "config.h"
#include "kdc.h"
#include "keyagent.h"
#include "kpasswd.h"
#include "pkinit_kdc.h"
#include "rotation.h" /* k9rot */

#define PROG "cablekey-kdc"
#define LISTEN_LOG_MAX 1024
#define KDC_LOG_FLUSH_MS 100     /* request log lines are at most this late */

struct options {
    struct ck_daemon_opts common;
    const char *realm;
    const char *db;
    const char *stash;
    const char *workers;
    const char *log_flush_ms;
    const char *listen[KDC_MAX_LISTEN];
    size_t n_listen;
    const char *kpasswd_listen[KDC_MAX_LISTEN];
    size_t n_kpasswd_listen;
    const char *keyagent_listen;  /* keyagent.c */
    /* PKINIT flags: kdc.conf key and value, applied over the file's settings. */
    struct {
        const char *key, *value;
    } pkinit[8];
    size_t n_pkinit;
};

enum {
    OPT_LISTEN = 256, OPT_DB, OPT_STASH, OPT_WORKERS, OPT_PKINIT_IDENTITY,
    OPT_PKINIT_PASSWORD_FILE, OPT_PKINIT_ANCHORS, OPT_PKINIT_DEVICE_ANCHORS,
    OPT_PKINIT_PACKETCABLE_ANCHORS, OPT_PKINIT_POOL, OPT_LOG_FLUSH_MS, OPT_KPASSWD_LISTEN,
    OPT_KEYAGENT_LISTEN
};

static void
usage(FILE *out)
{
    fprintf(out, "usage: " PROG " [options]\n");
    ck_daemon_usage_common(out, KDC_DEFAULT_CONFIG);
    fprintf(out,
            "  -r, --realm REALM       realm to serve when [realms] lists several\n"
            "      --listen ADDR[:PORT] listen address (repeatable; default port 88)\n"
            "      --kpasswd-listen ADDR[:PORT] serve kpasswd here (repeatable; default port\n"
            "                          464; default: kpasswd off)\n"
            "      --keyagent-listen ADDR[:PORT][,...]|none key version service (default:\n"
            "                          port 7464 on the --listen hosts)\n"
            "      --db PATH|URI       principal database: PATH or sqlite:PATH (SQLite), or\n"
            "                          postgresql://HOST/DB (password from PGPASSFILE)\n"
            "      --stash FILE        master key stash (default for SQLite: PATH.stash)\n"
            "      --workers N         worker threads (default: one per CPU)\n"
            "      --log-flush-ms MS   request lines are written in batches at most MS late\n"
            "                          (default 100; 0 writes each line at once, in order)\n"
            "      --pkinit-identity FILE.p12      KDC certificate and key (or FILE:cert,key)\n"
            "      --pkinit-password-file FILE     password of the PKINIT identity\n"
            "      --pkinit-anchors PEM[,PEM...]   client trust anchors (id-pkinit-san)\n"
            "      --pkinit-device-anchors PEM[,PEM...]      device anchors (device table)\n"
            "      --pkinit-packetcable-anchors PEM[,PEM...] device anchors that may use\n"
            "                                      the PacketCable draft forms\n"
            "      --pkinit-pool PEM[,PEM...]      intermediate CA certificates\n"
            "SIGHUP re-reads the configuration and reopens the log; SIGTERM stops.\n");
}

/* Errors before logging is set up (and in --check mode): one line on stderr. */
static void
print_error(const char *what)
{
    ck_daemon_print_error(PROG, what);
}

static int
parse_args(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        CK_DAEMON_LONGOPTS,
        {"realm", required_argument, NULL, 'r'},
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"kpasswd-listen", required_argument, NULL, OPT_KPASSWD_LISTEN},
        {"keyagent-listen", required_argument, NULL, OPT_KEYAGENT_LISTEN},
        {"db", required_argument, NULL, OPT_DB},
        {"stash", required_argument, NULL, OPT_STASH},
        {"workers", required_argument, NULL, OPT_WORKERS},
        {"log-flush-ms", required_argument, NULL, OPT_LOG_FLUSH_MS},
        {"pkinit-identity", required_argument, NULL, OPT_PKINIT_IDENTITY},
        {"pkinit-password-file", required_argument, NULL, OPT_PKINIT_PASSWORD_FILE},
        {"pkinit-anchors", required_argument, NULL, OPT_PKINIT_ANCHORS},
        {"pkinit-device-anchors", required_argument, NULL, OPT_PKINIT_DEVICE_ANCHORS},
        {"pkinit-packetcable-anchors", required_argument, NULL, OPT_PKINIT_PACKETCABLE_ANCHORS},
        {"pkinit-pool", required_argument, NULL, OPT_PKINIT_POOL},
        {NULL, 0, NULL, 0},
    };
    int c;

    memset(o, 0, sizeof(*o));
    while ((c = getopt_long(argc, argv, "c:r:h", longopts, NULL)) != -1) {
        if (ck_daemon_opt(&o->common, c, optarg))
            continue;
        switch (c) {
        case 'r': o->realm = optarg; break;
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
        case OPT_KEYAGENT_LISTEN: o->keyagent_listen = optarg; break;
        case OPT_DB: o->db = optarg; break;
        case OPT_STASH: o->stash = optarg; break;
        case OPT_WORKERS: o->workers = optarg; break;
        case OPT_LOG_FLUSH_MS: o->log_flush_ms = optarg; break;
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
        default:
            usage(stderr);
            return 2;
        }
    }
    return ck_daemon_opts_finish(&o->common, PROG, usage, argc, argv, optind);
}

static int
set_path(char **dst, const char *value)
{
    char *copy = strdup(value);

    if (copy == NULL)
        return ck_error_set(CK_ERR_NOMEM, "config");
    free(*dst);
    *dst = copy;
    return 0;
}

/* Builds the configuration: defaults, then the file, then the flags. Used at start and again on
 * every SIGHUP, with the same flags. */
static int
build_config(const struct options *o, struct kdc_daemon_config *dc)
{
    struct ck_profile *prof = NULL;
    const char *path = o->common.config != NULL ? o->common.config : KDC_DEFAULT_CONFIG;
    int rc;

    kdc_daemon_config_init(dc);
    rc = ck_profile_load(path, &prof);
    /* Without -c a missing default file is fine: flags and defaults suffice. */
    if (rc == CK_ERR_NOTFOUND && o->common.config == NULL)
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
    if (o->n_listen > 0)
        dc->listen_note[0] = '\0';
    if ((o->db != NULL && (rc = set_path(&dc->kdc.db_path, o->db)) != 0) ||
        (o->stash != NULL && (rc = set_path(&dc->kdc.stash_path, o->stash)) != 0) ||
        (o->common.user != NULL && (rc = set_path(&dc->user, o->common.user)) != 0) ||
        (o->keyagent_listen != NULL &&
         (rc = set_path(&dc->keyagent_listen, o->keyagent_listen)) != 0))
        goto out;
    if (o->common.log != NULL && (rc = kdc_config_set_log(dc, o->common.log)) != 0) {
        rc = ck_error_set(rc, "--log %s", ck_error_context());
        goto out;
    }
    /* A flag replaces the file's list of the same kind (as --listen does). */
    for (size_t i = 0; i < o->n_pkinit; i++) {
        bool first = true;
        for (size_t j = 0; j < i; j++)
            first = first && strcmp(o->pkinit[j].key, o->pkinit[i].key) != 0;
        if ((rc = kdc_pkinit_config_set(&dc->kdc.pkinit, o->pkinit[i].key, o->pkinit[i].value,
                                        first)) != 0)
            goto out;
    }
    if (o->common.log_level != NULL) {
        int l = ck_log_level_from_name(o->common.log_level);
        if (l < 0) {
            rc = ck_error_set(CK_ERR_CONFIG, "--log-level %s: unknown level",
                              o->common.log_level);
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

/* ---- worker generations ----------------------------------------------------------------- */

/* One configuration of the protocol core, shared by the workers built from it (kdc_worker keeps
 * pointers into it), freed when the last of them is. */
struct kdc_gen {
    struct kdc_config cfg;
    atomic_int refs;
};

/* A worker and the generation it was built from. */
struct kdc_unit {
    struct kdc_worker *w;
    struct kdc_gen *gen;
};

/* Per network worker: the unit in use (touched by that worker's thread only) and the one a
 * reload prepared for it. Aligned so that workers do not share cache lines. */
struct kdc_slot {
    _Alignas(64) struct kdc_unit *cur;
    _Atomic(struct kdc_unit *) next;
};

struct daemon {
    struct options opts;
    struct kdc_daemon_config dc;  /* as started; dc.kdc is moved into the first generation */
    struct kdc_gen *gen;          /* the current generation (one reference held here) */
    struct ck_daemon_user user;
    bool have_user;
    struct ck_net_server *srv;
    struct kdc_slot *slots;
    int workers;
    /* kpasswd (kpasswd.c): its own network server, and the generation it started with, held
     * for its lifetime (its settings change only with a restart). */
    struct kpasswd_server *kpw;
    struct kdc_gen *kpw_gen;
    struct keyagent_server *kas;  /* key version service (keyagent.c); NULL: off */
    struct kdc_rotation *rot; /* k9rot: the service-key rotation thread (NULL: off) */
    /* Alarms and metrics (alarms.c, metrics.c), shared by every generation's workers. */
    struct ck_alarm_mgr *alarms;
    struct ck_metrics *metrics;
};

static void
gen_unref(struct kdc_gen *g)
{
    if (g != NULL && atomic_fetch_sub(&g->refs, 1) == 1) {
        kdc_config_free_contents(&g->cfg);
        free(g);
    }
}

/* Takes the contents of cfg (left empty). */
static int
gen_new(struct kdc_config *cfg, struct kdc_gen **out)
{
    struct kdc_gen *g = calloc(1, sizeof(*g));

    *out = NULL;
    if (g == NULL)
        return ck_error_set(CK_ERR_NOMEM, "config");
    g->cfg = *cfg;
    memset(cfg, 0, sizeof(*cfg));
    atomic_init(&g->refs, 1);
    *out = g;
    return 0;
}

static void
unit_free(struct kdc_unit *u)
{
    if (u == NULL)
        return;
    kdc_worker_free(u->w);
    gen_unref(u->gen);
    free(u);
}

static int
unit_new(struct kdc_gen *g, int index, struct kdc_unit **out)
{
    struct kdc_unit *u = calloc(1, sizeof(*u));
    int rc;

    *out = NULL;
    if (u == NULL)
        return ck_error_set(CK_ERR_NOMEM, "kdc worker");
    if ((rc = kdc_worker_new(&g->cfg, &u->w)) != 0) {
        free(u);
        return ck_error_set(rc, "worker %d: %s", index, ck_error_context());
    }
    atomic_fetch_add(&g->refs, 1);
    u->gen = g;
    *out = u;
    return 0;
}

/* On the worker's thread: switches to the unit a reload prepared, if any. The relaxed load keeps
 * the common case to one plain read. */
static struct kdc_worker *
slot_worker(struct kdc_slot *s)
{
    if (atomic_load_explicit(&s->next, memory_order_relaxed) != NULL) {
        struct kdc_unit *n = atomic_exchange_explicit(&s->next, NULL, memory_order_acquire);
        if (n != NULL) {
            unit_free(s->cur);
            s->cur = n;
        }
    }
    return s->cur->w;
}

/* ---- network glue ----------------------------------------------------------------------- */

static int
worker_init(int index, void *arg, void **state)
{
    struct daemon *d = arg;
    struct kdc_slot *s = &d->slots[index];
    int rc;

    *state = NULL;
    if ((rc = unit_new(d->gen, index, &s->cur)) != 0)
        return rc;
    *state = s;
    return 0;
}

static void
worker_fini(int index, void *arg, void *state)
{
    struct kdc_slot *s = state;

    if (s == NULL)
        return;
    unit_free(atomic_exchange(&s->next, NULL));
    unit_free(s->cur);
    s->cur = NULL;
}

static int
handle(void *state, const struct ck_net_request *req, uint8_t *reply, size_t reply_cap,
       size_t *reply_len)
{
    struct kdc_worker *w = slot_worker(state);

    *reply_len = 0;
    if (req->flags & CK_NET_REQ_OVERSIZED)
        return kdc_handle_oversized(w, req->len, req->remote, reply, reply_cap, reply_len);
    return kdc_handle_request(w, req->data, req->len,
                              req->transport == CK_NET_TCP ? KDC_TRANSPORT_TCP
                                                           : KDC_TRANSPORT_UDP,
                              req->remote, reply, reply_cap, reply_len);
}

static int
idle(void *state)
{
    return kdc_worker_idle(slot_worker(state));
}

static void
net_config(const struct kdc_daemon_config *dc, int workers, struct ck_net_config *ncfg)
{
    memset(ncfg, 0, sizeof(*ncfg));
    ncfg->listen = (const char *const *)dc->listen;
    ncfg->n_listen = dc->n_listen;
    ncfg->default_port = KDC_DEFAULT_PORT;
    ncfg->workers = workers;
    ncfg->max_request = dc->kdc.max_request;
    ncfg->max_dgram = dc->kdc.max_request < 65535 ? dc->kdc.max_request : 65535;
    ncfg->max_reply = CK_NET_DEFAULT_MAX_REPLY;
    ncfg->tcp_framing = &ck_krb_tcp_framing;
    ncfg->tcp_idle_timeout_ms = (int)(dc->tcp_idle_timeout * 1000);
    ncfg->cpu_affinity = dc->cpu_affinity;
    /* kdc_tcp_max_connections is for the whole process; each worker gets its share. */
    ncfg->tcp_max_conns = (dc->tcp_max_connections + workers - 1) / workers;
    kdc_admission_net_config(dc, ncfg);  /* issue 9: mass reset (admission.c) */
}

static int
worker_count(const struct kdc_daemon_config *dc)
{
    long n;

    if (dc->workers > 0)
        return dc->workers;
    n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > CK_NET_MAX_WORKERS ? CK_NET_MAX_WORKERS : (int)n;
}

/* ---- the database's caps ------------------------------------------------------------------ */

static const char *
fmt_duration(int64_t s, char *buf, size_t size)
{
    if (s % 86400 == 0)
        snprintf(buf, size, "%lldd", (long long)(s / 86400));
    else if (s % 3600 == 0)
        snprintf(buf, size, "%lldh", (long long)(s / 3600));
    else if (s % 60 == 0)
        snprintf(buf, size, "%lldm", (long long)(s / 60));
    else
        snprintf(buf, size, "%llds", (long long)s);
    return buf;
}

/* kdc.conf may lower the realm's caps but not raise them (the stricter wins in the worker):
 * says so when kdc.conf asks for more, since the setting then has no effect. out: where to say
 * it (stdout for --check) or NULL for the log. */
static void
say_cap(FILE *out, const char *key, int64_t asked, int64_t cap)
{
    char a[32], b[32];

    fmt_duration(asked, a, sizeof(a));
    fmt_duration(cap, b, sizeof(b));
    if (out != NULL)
        fprintf(out, "warning: %s = %s in kdc.conf is more than the database allows (%s): "
                "tickets get at most %s; raise the realm's cap with `cablekey realm modify` "
                "or lower %s\n", key, a, b, b, key);
    else
        ck_log_warn("%s = %s in kdc.conf is more than the database allows (%s): tickets get "
                    "at most %s; raise the realm's cap with `cablekey realm modify` or lower %s",
                    key, a, b, b, key);
}

/* kdc.conf may lower the realm's caps but not raise them (the stricter wins in the worker):
 * says so when kdc.conf asks for more, since the setting then has no effect. out: where to say
 * it (stdout for --check) or NULL for the log. */
static void
warn_caps(const struct kdc_daemon_config *dc, const struct kdc_config *cfg, FILE *out)
{
    const ck_realm_info *ri;
    ck_store *st = NULL;

    if (ck_store_open(cfg->db_path, cfg->stash_path, 0, &st) != 0)
        return;
    ri = ck_store_realm(st);
    if (dc->max_life_set && ri->max_life > 0 && cfg->max_life > ri->max_life)
        say_cap(out, "max_life", cfg->max_life, ri->max_life);
    if (dc->max_renew_set && ri->max_renew > 0 && cfg->max_renewable_life > ri->max_renew)
        say_cap(out, "max_renewable_life", cfg->max_renewable_life, ri->max_renew);
    ck_store_close(st);
}

/* ---- --check ---------------------------------------------------------------------------- */

/* Tests, in start-up order, what a start needs, printing what it will use; stops at the first
 * failure with one line on stderr. */
static int
check_config(const struct options *o, struct kdc_daemon_config *dc)
{
    struct ck_net_config ncfg;
    struct ck_daemon_user u;
    struct kdc_worker *w = NULL;
    char listen[LISTEN_LOG_MAX], logd[4200];
    int rc;

    if (o->common.config == NULL && access(KDC_DEFAULT_CONFIG, F_OK) != 0)
        printf("config: none (" KDC_DEFAULT_CONFIG " absent: defaults and flags)\n");
    else
        printf("config: %s\n", o->common.config != NULL ? o->common.config : KDC_DEFAULT_CONFIG);
    printf("database: %s\n", dc->kdc.db_path);
    printf("stash: %s\n", dc->kdc.stash_path);
    net_config(dc, worker_count(dc), &ncfg);
    if (ck_net_check_listen(&ncfg, listen, sizeof(listen)) != 0) {
        print_error("listen");
        return 1;
    }
    printf("listen: %s (udp+tcp)\n", listen);
    if (dc->listen_note[0] != '\0')
        printf("note: %s\n", dc->listen_note);
    kdc_admission_describe(dc, logd, sizeof(logd));  /* issue 9: mass reset (admission.c) */
    printf("admission: %s\n", logd);
    if (dc->n_kpasswd_listen > 0) {
        memset(&ncfg, 0, sizeof(ncfg));
        ncfg.listen = (const char *const *)dc->kpasswd_listen;
        ncfg.n_listen = dc->n_kpasswd_listen;
        ncfg.default_port = KPASSWD_DEFAULT_PORT;
        ncfg.tcp_framing = &ck_krb_tcp_framing;
        if (ck_net_check_listen(&ncfg, listen, sizeof(listen)) != 0) {
            print_error("kpasswd listen");
            return 1;
        }
        printf("kpasswd listen: %s (udp+tcp)\n", listen);
    } else {
        printf("kpasswd: off (no kpasswd_listen)\n");
    }
    if (keyagent_check(dc, stdout) != 0) { /* keyagent.c */
        print_error("keyagent listen");
        return 1;
    }
    printf("log: %s, level %s\n", ck_log_target_describe(&dc->log, logd, sizeof(logd)),
           ck_log_level_name(dc->log_level));
    if (ck_log_target_check(&dc->log) != 0) {
        print_error("log");
        return 1;
    }
    if (o->common.pid_file != NULL && ck_daemon_check_pidfile(PROG, o->common.pid_file) != 0)
        return 1;
    /* From here on as the service user, as the daemon will be once the sockets are bound. */
    if (dc->user != NULL) {
        if (ck_daemon_check_user(PROG, dc->user, true, &u) != 0)
            return 1;
        if (ck_log_target_check(&dc->log) != 0) {
            rc = ck_error_set(CK_ERR_PERM, "%s (as user %s)", ck_error_context(), u.name);
            print_error("log");
            return 1;
        }
    }
    /* A worker opens the database and the stash, and loads the PKINIT identity and anchors,
     * exactly as the running daemon will. */
    if (kdc_worker_new(&dc->kdc, &w) != 0) {
        if (dc->user != NULL)
            ck_error_set(CK_ERR_PERM, "%s (as user %s)", ck_error_context(), dc->user);
        print_error(dc->kdc.pkinit != NULL ? "database or PKINIT" : "database");
        return 1;
    }
    printf("realm: %s\n", kdc_worker_realm(w));
    warn_caps(dc, &dc->kdc, stdout);
    rc = kdc_pkinit_config_check(dc->kdc.pkinit, kdc_worker_realm(w), stdout);
    kdc_worker_free(w);
    if (rc != 0) {
        print_error("PKINIT");
        return 1;
    }
    if (dc->n_kpasswd_listen > 0) {
        struct kpasswd_server *ks = NULL;
        struct kpasswd_worker *kw = NULL;

        /* kadmin/changepw must exist; the check names the command that creates it. */
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
    if (kdc_alarms_check(dc, stdout) != 0) { /* alarms.h: sinks and metrics_listen */
        print_error("alarms");
        return 1;
    }
    printf("configuration OK\n");
    return 0;
}

/* ---- SIGHUP ----------------------------------------------------------------------------- */

static bool
same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static void
join_listen(char *const *listen, size_t n_listen, char *buf, size_t size)
{
    size_t used = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < n_listen; i++) {
        int n = snprintf(buf + used, size - used, "%s%s", i > 0 ? " " : "", listen[i]);
        if (n < 0 || (size_t)n >= size - used)
            break;
        used += (size_t)n;
    }
}

/* Logs each setting that differs but cannot change without a restart; returns how many. */
static int
report_restart_only(const struct daemon *d, const struct kdc_daemon_config *nd)
{
    const struct kdc_daemon_config *od = &d->dc;
    const struct kdc_config *oc = &d->gen->cfg, *nc = &nd->kdc;
    char a[LISTEN_LOG_MAX], b[LISTEN_LOG_MAX];
    int n = 0;

#define RESTART(what, olds, news)                                                            \
    do {                                                                                     \
        ck_log_warn("SIGHUP: %s changed (%s -> %s): needs a restart, not applied", what,      \
                    olds, news);                                                             \
        n++;                                                                                 \
    } while (0)
    join_listen(od->listen, od->n_listen, a, sizeof(a));
    join_listen(nd->listen, nd->n_listen, b, sizeof(b));
    if (strcmp(a, b) != 0)
        RESTART("listen addresses", a, b);
    join_listen(od->kpasswd_listen, od->n_kpasswd_listen, a, sizeof(a));
    join_listen(nd->kpasswd_listen, nd->n_kpasswd_listen, b, sizeof(b));
    if (strcmp(a, b) != 0)
        RESTART("kpasswd listen addresses", a[0] != '\0' ? a : "(off)", b[0] != '\0' ? b : "(off)");
    if (!same_str(od->kpasswd_admins, nd->kpasswd_admins))
        RESTART("kpasswd_admins", od->kpasswd_admins != NULL ? od->kpasswd_admins : "(none)",
                nd->kpasswd_admins != NULL ? nd->kpasswd_admins : "(none)");
    if (!same_str(oc->db_path, nc->db_path))
        RESTART("database", oc->db_path, nc->db_path);
    if (!same_str(oc->stash_path, nc->stash_path))
        RESTART("stash", oc->stash_path, nc->stash_path);
    if (!same_str(oc->realm, nc->realm))
        RESTART("realm", oc->realm != NULL ? oc->realm : "(database)",
                nc->realm != NULL ? nc->realm : "(database)");
    if (!same_str(od->user, nd->user))
        RESTART("user", od->user != NULL ? od->user : "(none)",
                nd->user != NULL ? nd->user : "(none)");
    if (worker_count(od) != worker_count(nd) || od->tcp_max_connections != nd->tcp_max_connections ||
        od->tcp_idle_timeout != nd->tcp_idle_timeout || od->cpu_affinity != nd->cpu_affinity ||
        oc->max_request != nc->max_request)
        RESTART("workers or TCP/request limits", "...", "...");
    if (od->rotation != nd->rotation || od->rotation_interval != nd->rotation_interval) /* k9rot */
        RESTART("rotation or rotation_interval", "...", "...");
#undef RESTART
    return n;
}

/* Logs the settings a reload applies (the worker-held ones are all applied; these are named).
 * nc: the new protocol core configuration (already moved out of nd). */
static int
report_applied(const struct daemon *d, const struct kdc_daemon_config *nd,
               const struct kdc_config *nc)
{
    const struct kdc_daemon_config *od = &d->dc;
    const struct kdc_config *oc = &d->gen->cfg;
    char a[4200], b[4200];
    int n = 0;

    if (od->log.dest != nd->log.dest || strcmp(od->log.path, nd->log.path) != 0) {
        ck_log_notice("SIGHUP: log %s -> %s", ck_log_target_describe(&od->log, a, sizeof(a)),
                      ck_log_target_describe(&nd->log, b, sizeof(b)));
        n++;
    }
    if (od->log_level != nd->log_level) {
        ck_log_notice("SIGHUP: log level %s -> %s", ck_log_level_name(od->log_level),
                      ck_log_level_name(nd->log_level));
        n++;
    }
    if (oc->max_life != nc->max_life) {
        ck_log_notice("SIGHUP: max_life %s -> %s", fmt_duration(oc->max_life, a, 32),
                      fmt_duration(nc->max_life, b, 32));
        n++;
    }
    if (oc->max_renewable_life != nc->max_renewable_life) {
        ck_log_notice("SIGHUP: max_renewable_life %s -> %s",
                      fmt_duration(oc->max_renewable_life, a, 32),
                      fmt_duration(nc->max_renewable_life, b, 32));
        n++;
    }
    if (oc->clockskew != nc->clockskew) {
        ck_log_notice("SIGHUP: clockskew %s -> %s", fmt_duration(oc->clockskew, a, 32),
                      fmt_duration(nc->clockskew, b, 32));
        n++;
    }
    if (oc->n_enctypes != nc->n_enctypes ||
        memcmp(oc->enctypes, nc->enctypes, nc->n_enctypes * sizeof(nc->enctypes[0])) != 0) {
        ck_log_notice("SIGHUP: supported_enctypes changed");
        n++;
    }
    if (oc->lookaside != nc->lookaside) {
        ck_log_notice("SIGHUP: lookaside %s", nc->lookaside ? "on" : "off");
        n++;
    }
    return n;
}

static int
reload(void *arg, char *status, size_t status_size)
{
    struct daemon *d = arg;
    struct kdc_daemon_config nd;
    struct kdc_gen *g = NULL;
    struct kdc_unit **units = NULL;
    int rc, restart = 0, applied = 0;

    ck_log_notice("SIGHUP: re-reading the configuration");
    if ((rc = build_config(&d->opts, &nd)) != 0)
        goto refused;
    restart = report_restart_only(d, &nd);
    /* What only a restart can change stays as started, in the new generation too. */
    if ((rc = set_path(&nd.kdc.db_path, d->gen->cfg.db_path)) != 0 ||
        (rc = set_path(&nd.kdc.stash_path, d->gen->cfg.stash_path)) != 0)
        goto refused;
    free(nd.kdc.realm);
    nd.kdc.realm = NULL;
    if (d->gen->cfg.realm != NULL && (rc = set_path(&nd.kdc.realm, d->gen->cfg.realm)) != 0)
        goto refused;
    nd.kdc.max_request = d->gen->cfg.max_request;
    nd.kdc.alarms = d->alarms; /* alarms.h: the same manager and registry */
    nd.kdc.metrics = d->metrics;
    /* Every step that can fail comes before anything is swapped in: new workers (database,
     * PKINIT identity and anchors as the service user), then the log destination. */
    if ((units = calloc((size_t)d->workers, sizeof(*units))) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "reload");
        goto refused;
    }
    if ((rc = gen_new(&nd.kdc, &g)) != 0)
        goto refused;
    for (int i = 0; i < d->workers; i++)
        if ((rc = unit_new(g, i, &units[i])) != 0)
            goto refused;
    /* Said at the old log level, before a new level may hide these notices. */
    applied = report_applied(d, &nd, &g->cfg);
    if ((rc = ck_log_reconfigure(nd.log.dest, nd.log.path, nd.log_level)) != 0)
        goto refused;
    for (int i = 0; i < d->workers; i++) {
        unit_free(atomic_exchange_explicit(&d->slots[i].next, units[i], memory_order_release));
        units[i] = NULL;
    }
    gen_unref(d->gen);
    d->gen = g;
    g = NULL;
    d->dc.log = nd.log;
    d->dc.log_level = nd.log_level;
    d->dc.max_life_set = nd.max_life_set;
    d->dc.max_renew_set = nd.max_renew_set;
    warn_caps(&d->dc, &d->gen->cfg, NULL);
    kdc_alarms_reload(&nd); /* alarms.h: thresholds, certificates, peers */
    /* report_applied logs the scalar settings one by one; the PKINIT (provisioning included)
     * and alarm settings are rebuilt whole from the file, so they are not in the count. */
    ck_log_notice("SIGHUP: configuration reloaded and log reopened (%d change%s logged above, "
                  "PKINIT and alarm settings rebuilt from the file, %d needing a restart)",
                  applied, applied == 1 ? "" : "s", restart);
    snprintf(status, status_size, "serving; reloaded (%d applied, %d need a restart)", applied,
             restart);
    goto out;
refused:
    ck_log_err("SIGHUP: configuration refused, the running one is kept: %s", ck_error_context());
    snprintf(status, status_size, "reload refused: %s", ck_error_context());
out:
    if (units != NULL) {
        for (int i = 0; i < d->workers; i++)
            unit_free(units[i]);
        free(units);
    }
    gen_unref(g);
    kdc_daemon_config_free(&nd);
    return rc;
}

/* ---- start ------------------------------------------------------------------------------ */

/* With a service user the log file is opened once privileges are dropped, as that user, so
 * that the start and every reopen (SIGHUP, rotation) are made by the same identity and need no
 * root-only capability (the hardened unit has no CAP_DAC_OVERRIDE or CAP_CHOWN); until then
 * messages go to stderr, which a service manager collects. */
static int
open_log(struct daemon *d, bool dropped)
{
    if (d->have_user && !dropped)
        return ck_log_open(PROG, d->dc.log.dest == CK_LOG_FILE ? CK_LOG_STDERR : d->dc.log.dest,
                           NULL, d->dc.log_level);
    if (!d->have_user)
        return ck_log_open(PROG, d->dc.log.dest, d->dc.log.path, d->dc.log_level);
    return ck_log_reconfigure(d->dc.log.dest, d->dc.log.path, d->dc.log_level);
}

int
main(int argc, char **argv)
{
    static struct daemon dm;
    struct daemon *d = &dm;
    struct ck_net_config ncfg;
    struct ck_net_callbacks cb;
    char listeners[LISTEN_LOG_MAX];
    bool pid_written = false, served = false;
    int sfd = -1, rc, status = 1;

    rc = parse_args(argc, argv, &d->opts);
    if (rc >= 0)
        return rc;
    ck_log_open(PROG, CK_LOG_STDERR, NULL, LOG_INFO);
    if (build_config(&d->opts, &d->dc) != 0) {
        print_error("configuration");
        goto out;
    }
    if (d->opts.common.check) {
        status = check_config(&d->opts, &d->dc);
        goto out;
    }
    if (d->dc.user != NULL) {
        if (ck_daemon_user_lookup(d->dc.user, &d->user) != 0) {
            print_error("user");
            goto out;
        }
        d->have_user = true;
    }
    if (open_log(d, false) != 0) {
        print_error("log");
        goto out;
    }
    if (ck_daemon_signals_init(&sfd) != 0 || kdc_loglevel_signals_block() != 0) {
        ck_log_err("%s", ck_error_context());
        goto out;
    }
    /* The pid file is written before the sockets answer, so whoever sees the KDC answering can
     * also find its pid; it is removed again if startup fails. */
    if (d->opts.common.pid_file != NULL) {
        if (ck_daemon_pidfile_write(d->opts.common.pid_file) != 0) {
            ck_log_err("%s", ck_error_context());
            goto out;
        }
        pid_written = true;
    }
    if (d->dc.listen_note[0] != '\0')
        ck_log_notice("listen: %s", d->dc.listen_note);

    /* 1. Bind (may need privileges: port 88, 464). kpasswd has its own ck_net_server and
     *    listen list. */
    d->workers = worker_count(&d->dc);
    net_config(&d->dc, d->workers, &ncfg);
    memset(&cb, 0, sizeof(cb));
    cb.handler = handle;
    cb.worker_init = worker_init;
    cb.worker_fini = worker_fini;
    cb.arg = d;
    if (ck_net_server_new(&ncfg, &cb, &d->srv) != 0 || ck_net_server_bind(d->srv) != 0) {
        ck_log_err("%s", ck_error_context());
        goto out;
    }
    ck_net_server_set_idle(d->srv, idle);
    if (d->dc.n_kpasswd_listen > 0 &&
        kpasswd_server_bind((const char *const *)d->dc.kpasswd_listen, d->dc.n_kpasswd_listen,
                            &d->kpw) != 0) {
        ck_log_err("%s", ck_error_context());
        goto out;
    }
    if (keyagent_server_bind(&d->dc, &d->kas) != 0) {
        ck_log_err("%s", ck_error_context());
        goto out;
    }

    /* 2. Drop privileges, before the database, the stash and any key is opened. */
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

    /* Alarms, metrics and the SIGUSR1/SIGUSR2 log level (alarms.h), before the workers, which
     * carry the manager and the registry. */
    if (kdc_alarms_start(&d->dc, d->dc.kdc.realm, &d->alarms) != 0 ||
        kdc_metrics_start(&d->dc, d->alarms, &d->metrics) != 0 ||
        kdc_loglevel_signals_start() != 0) {
        ck_log_err("%s", ck_error_context());
        goto out;
    }
    kdc_metrics_admission(d->srv); /* admission control's counters on /metrics */
    d->dc.kdc.alarms = d->alarms;
    d->dc.kdc.metrics = d->metrics;

    /* 3. Open the database through the workers and start them. */
    /* The slots' alignment keeps workers off each other's cache lines: calloc does not give it. */
    if ((d->slots = aligned_alloc(_Alignof(struct kdc_slot),
                                  (size_t)d->workers * sizeof(*d->slots))) == NULL ||
        gen_new(&d->dc.kdc, &d->gen) != 0) {
        ck_log_err("out of memory");
        goto out;
    }
    memset(d->slots, 0, (size_t)d->workers * sizeof(*d->slots));
    warn_caps(&d->dc, &d->gen->cfg, NULL);
    if (ck_net_server_run(d->srv) != 0) {
        ck_log_err("%s%s%s", ck_error_context(), d->have_user ? " as user " : "",
                   d->have_user ? d->user.name : "");
        goto out;
    }
    ck_net_server_describe(d->srv, listeners, sizeof(listeners));
    ck_log_notice("started: realm %s, listening on %s (udp+tcp), %d workers",
                  d->gen->cfg.realm != NULL ? d->gen->cfg.realm : "(from database)", listeners,
                  d->workers);
    if (d->kpw != NULL) {
        char kl[LISTEN_LOG_MAX];

        d->kpw_gen = d->gen;
        atomic_fetch_add(&d->kpw_gen->refs, 1);
        if (kpasswd_server_run(d->kpw, &d->kpw_gen->cfg, d->dc.kpasswd_admins) != 0) {
            ck_log_err("%s", ck_error_context());
            goto out;
        }
        kpasswd_server_describe(d->kpw, kl, sizeof(kl));
        ck_log_notice("kpasswd: listening on %s (udp+tcp)", kl);
    }
    if (d->kas != NULL) {
        char kl[LISTEN_LOG_MAX];

        if (keyagent_server_run(d->kas, &d->gen->cfg) != 0) {
            ck_log_err("%s", ck_error_context());
            goto out;
        }
        keyagent_server_describe(d->kas, kl, sizeof(kl));
        ck_log_notice("keyagent: listening on %s (tcp)", kl);
    }
    /* k9rot: service-key rotation, on its own thread and store connection. */
    if (d->dc.rotation &&
        kdc_rotation_start(d->gen->cfg.db_path, d->gen->cfg.stash_path, d->dc.rotation_interval,
                           d->gen->cfg.alarms, &d->rot) != 0) {
        ck_log_err("%s", ck_error_context());
        goto out;
    }
    if (ck_daemon_notify("READY=1\nSTATUS=serving on %s", listeners) != 0)
        ck_log_warn("%s", ck_error_context());

    served = true;
    status = ck_daemon_loop(sfd, reload, d) < 0 ? 1 : 0;
out:
    keyagent_server_free(d->kas);
    kdc_rotation_stop(d->rot); /* k9rot */
    kpasswd_server_free(d->kpw);
    gen_unref(d->kpw_gen);
    ck_net_server_free(d->srv);
    kdc_metrics_stop(d->metrics); /* alarms.h */
    kdc_alarms_stop(d->alarms);
    free(d->slots);
    gen_unref(d->gen);
    if (pid_written)
        ck_daemon_pidfile_remove(d->opts.common.pid_file);
    if (sfd >= 0)
        close(sfd);
    kdc_daemon_config_free(&d->dc);
    if (served)
        ck_log_notice("stopped");
    ck_log_close();
    return status;
}
