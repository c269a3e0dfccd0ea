/* The back process of cablekey-prov: the only one with the store. It forks the signer first
 * (while it holds nothing: no store, no keytab, no socket but the channel), then becomes the
 * service user, opens its log and the store, starts the MTA-FQDN and device-channel servers and
 * the webhook deliveries (each on its own store connection), and serves the front's requests
 * (flows.c) on `workers` channels, each served by a thread, so that one worker waits for the
 * signer while another reads and commits (the first channel is the one
 * ck_daemon_split_run made; the others are handed to the front at start, "channels"). It never
 * parses HTTP: the front sends validated JSON. When the front closes the first channel it
 * stops everything and exits. */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cablekey/daemon.h"
#include "cablekey/error.h"
#include "cablekey/log.h"
#include "cablekey/store.h"
#include "cablekey/util.h"
#include "provd.h"

static int64_t
system_now(void)
{
    return (int64_t)time(NULL);
}

static void
ready(int fd, const char *what)
{
    json_t *m = json_pack("{s:s}", "ready", what);

    (void)prov_ipc_answer(fd, m);
}

/* The configured pools and webhook targets, recorded in the store at start (both are
 * idempotent: an existing number or target is left as it is). */
static int
apply_config(const struct prov_config *cfg, ck_store *store)
{
    const char *names[PROV_MAX_WEBHOOKS];
    ck_prov_actor who = {.actor = PROV_PROG};
    int rc;

    for (size_t i = 0; i < cfg->n_webhooks; i++)
        names[i] = cfg->webhooks[i].name;
    if ((rc = ck_prov_outbox_targets(store, names, cfg->n_webhooks)) != 0)
        return ck_error_set(rc, "webhook targets: %s", ck_error_context());
    for (size_t i = 0; i < cfg->n_pools; i++) {
        size_t added = 0;
        if ((rc = ck_prov_pool_add(store, &who, cfg->pools[i].segment, cfg->pools[i].first,
                                   cfg->pools[i].last, &added)) != 0)
            return ck_error_set(rc, "pool %s %s..%s: %s", cfg->pools[i].segment,
                                cfg->pools[i].first, cfg->pools[i].last, ck_error_context());
        if (added > 0)
            ck_log_notice("pool %s: %zu new numbers %s..%s", cfg->pools[i].segment, added,
                          cfg->pools[i].first, cfg->pools[i].last);
    }
    return 0;
}

/* "reload": the log settings of the re-read configuration, nothing else (the front cannot name
 * a file for this process to open). */
static json_t *
reload(const struct prov_config *cfg)
{
    struct prov_config nc;
    json_t *r;

    if (cfg->opts == NULL || prov_config_load(cfg->opts, &nc) != 0) {
        r = prov_error(500, "internal", NULL, "configuration: %s", ck_error_context());
        prov_config_free(&nc);
        return r;
    }
    if (ck_log_reconfigure(nc.log.dest, nc.log.path, nc.log_level) != 0)
        r = prov_error(500, "internal", NULL, "log: %s", ck_error_context());
    else
        r = json_pack("{s:i,s:{}}", "status", 200, "body");
    prov_config_free(&nc);
    return r;
}

/* A worker beyond the first: its channel (the back's end), its own store connection. */
struct back_worker {
    pthread_t thread;
    int fd;
    struct prov_flows fl;
};

struct back {
    const struct prov_config *cfg;
    int fd;                                   /* the first channel */
    struct prov_flows fl;                     /* worker 0, this thread */
    struct prov_workers_shared shared;
    struct back_worker workers[PROV_MAX_WORKERS];
    size_t n_workers;                         /* started beyond the first */
    int front_ends[PROV_MAX_WORKERS];         /* the channels' other ends, until sent */
    bool channels_done;
};

static void
workers_stop(struct back *b)
{
    /* The front has closed its ends at a normal stop; shutdown wakes a worker whose front
     * end is still open (the back stopping on an error). */
    for (size_t i = 0; i < b->n_workers; i++)
        (void)shutdown(b->workers[i].fd, SHUT_RDWR);
    for (size_t i = 0; i < b->n_workers; i++) {
        pthread_join(b->workers[i].thread, NULL);
        close(b->workers[i].fd);
    }
    b->n_workers = 0;
}

static void *worker_run(void *arg);

/* The write-ahead log is copied into the database by this thread on a connection of its own,
 * every CKPT_INTERVAL_MS, instead of by the commit that fills it: that copy ends with fsyncs,
 * and a commit holds the workers' store connection (provd.h) while it waits for them. Once the
 * log is CKPT_RESTART_FRAMES long, a restart with the workers' lock held makes the next write
 * start it from its beginning instead of letting it grow (a reader that started after the last
 * write would otherwise keep it from restarting); by then little is left to copy. */
#define CKPT_INTERVAL_MS 100
#define CKPT_RESTART_FRAMES 4096 /* 16 MB of 4 KB pages */

struct checkpointer {
    pthread_t thread;
    bool running, stop;
    ck_store *store;
    pthread_mutex_t lock;
    pthread_cond_t cv;
    pthread_mutex_t *store_lock;
};

static void *
ckpt_run(void *arg)
{
    struct checkpointer *c = arg;
    int64_t last_err = 0;

    pthread_mutex_lock(&c->lock);
    while (!c->stop) {
        struct timespec until;
        bool complete = true;
        int rc, frames = 0;

        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += CKPT_INTERVAL_MS * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        (void)pthread_cond_timedwait(&c->cv, &c->lock, &until);
        if (c->stop)
            break;
        pthread_mutex_unlock(&c->lock);
        /* The bulk of the copy (and its fsyncs) without the workers' lock; once the log is
         * long, a restart with the lock held, which has little left to copy. */
        if ((rc = ck_store_checkpoint(c->store, false, &complete, &frames)) == 0 &&
            frames >= CKPT_RESTART_FRAMES) {
            pthread_mutex_lock(c->store_lock);
            rc = ck_store_checkpoint(c->store, true, &complete, &frames);
            pthread_mutex_unlock(c->store_lock);
        }
        if (rc != 0 && time(NULL) - last_err >= 60) { /* a full disk: once a minute */
            ck_log_err("database checkpoint: %s", ck_error_context());
            last_err = time(NULL);
        }
        pthread_mutex_lock(&c->lock);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

/* 0, or an error and the workers' connection keeps checkpointing by itself. */
static int
ckpt_start(struct checkpointer *c, const struct prov_config *cfg, ck_store *workers_store,
           pthread_mutex_t *store_lock)
{
    int rc;

    memset(c, 0, sizeof(*c));
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->store_lock = store_lock;
    if ((rc = ck_store_open(cfg->database, cfg->stash, 0, &c->store)) != 0)
        return ck_error_set(rc, "checkpoint connection: %s", ck_error_context());
    if ((rc = pthread_create(&c->thread, NULL, ckpt_run, c)) != 0) {
        ck_store_close(c->store);
        c->store = NULL;
        return ck_error_set(CK_ERR_IO, "checkpoint thread: %s", strerror(rc));
    }
    c->running = true;
    if ((rc = ck_store_wal_manual(workers_store)) != 0)
        ck_log_warn("the workers' commits keep checkpointing: %s", ck_error_context());
    return 0;
}

static void
ckpt_stop(struct checkpointer *c)
{
    if (c->running) {
        pthread_mutex_lock(&c->lock);
        c->stop = true;
        pthread_cond_signal(&c->cv);
        pthread_mutex_unlock(&c->lock);
        pthread_join(c->thread, NULL);
        c->running = false;
    }
    ck_store_close(c->store);
    c->store = NULL;
}

/* "channels" (once, on the first channel): start workers 1..workers-1, each on a new socket
 * pair and its own store connection, and answer how many; channels_send then hands the front
 * their other ends. */
static json_t *
channels(struct back *b)
{
    size_t want = b->cfg->workers > 0 ? b->cfg->workers - 1 : 0;
    int rc;

    if (b->channels_done)
        return prov_error(500, "internal", NULL, "channels: already handed out");
    b->channels_done = true;
    for (size_t i = 0; i < want; i++) {
        struct back_worker *w = &b->workers[b->n_workers];
        int sv[2];

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
            rc = ck_error_set(CK_ERR_IO, "socketpair: %s", strerror(errno));
            goto fail;
        }
        w->fl = b->fl;
        w->fl.worker = i + 1;
        w->fd = sv[0];
        if ((rc = pthread_create(&w->thread, NULL, worker_run, w)) != 0) {
            ck_error_set(CK_ERR_IO, "worker %zu: pthread_create: %s", i + 1, strerror(rc));
            close(sv[0]);
            close(sv[1]);
            goto fail;
        }
        b->front_ends[b->n_workers++] = sv[1];
    }
    ck_log_notice("%zu request workers", b->n_workers + 1);
    return json_pack("{s:i,s:{s:I}}", "status", 200, "body", "channels",
                     (json_int_t)b->n_workers);
fail:
    ck_log_err("request workers: %s", ck_error_context());
    for (size_t i = 0; i < b->n_workers; i++)
        close(b->front_ends[i]);
    workers_stop(b);
    return prov_error(500, "internal", NULL, "request workers: %s", ck_error_context());
}

static int
channels_send(struct back *b)
{
    int rc = 0;

    if (b->n_workers > 0)
        rc = prov_ipc_send_fds(b->fd, b->front_ends, b->n_workers);
    for (size_t i = 0; i < b->n_workers; i++)
        close(b->front_ends[i]);
    return rc;
}

/* Serves one channel until the front closes it: 0 at a clean end. b: the first channel's
 * (the only one that hands out the others), NULL for a worker's. */
static int
serve(const struct prov_config *cfg, int fd, struct prov_flows *fl, struct back *b)
{
    for (;;) {
        json_t *req = NULL, *reply;
        const char *op;
        bool handed = false;
        int rc;

        if ((rc = prov_ipc_next(fd, &req)) != 0) {
            if (rc != CK_ERR_NOTFOUND)
                ck_log_err("front channel: %s", ck_error_context());
            return rc == CK_ERR_NOTFOUND ? 0 : rc;
        }
        op = json_string_value(json_object_get(req, "op"));
        if (op != NULL && strcmp(op, "reload") == 0) {
            reply = reload(cfg);
        } else if (op != NULL && strcmp(op, "channels") == 0) {
            reply = b != NULL ? channels(b)
                              : prov_error(500, "internal", NULL, "channels: first channel only");
            handed = b != NULL && json_integer_value(json_object_get(reply, "status")) == 200;
        } else {
            if (fl->shared != NULL)
                pthread_mutex_lock(&fl->shared->store_lock);
            reply = prov_flows_handle(fl, req);
            if (fl->shared != NULL)
                pthread_mutex_unlock(&fl->shared->store_lock);
        }
        json_decref(req);
        if ((rc = prov_ipc_answer(fd, reply)) != 0 || (handed && (rc = channels_send(b)) != 0)) {
            ck_log_err("front channel: %s", ck_error_context());
            return rc;
        }
    }
}

static void *
worker_run(void *arg)
{
    struct back_worker *w = arg;

    (void)serve(w->fl.cfg, w->fd, &w->fl, NULL);
    return NULL;
}

void
prov_back_main(const struct prov_config *cfg, int fd)
{
    struct prov_signer *signer = NULL;
    struct prov_fqdn_server *fqdn = NULL;
    struct prov_devchan_server *devchan = NULL;
    struct prov_webhooks *hooks = NULL;
    struct prov_flows fl = {.cfg = cfg, .now = system_now};
    static struct back b; /* the workers' table: one per process, not on the stack */
    static struct checkpointer ckpt;
    ck_store *store = NULL;
    char why[600];
    int rc, status = 1;

    /* Every action allocates and frees a few hundred KB (JSON, rows, certificates): without
     * this glibc may give the top of the heap back to the kernel after a request and fault it
     * in again on the next. The signer inherits the setting. */
    (void)mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
    (void)mallopt(M_MMAP_THRESHOLD, 16 * 1024 * 1024);
    /* The signer first: it inherits nothing worth having. */
    if ((rc = prov_signer_start(cfg, &signer)) != 0) {
        snprintf(why, sizeof(why), "signer: %s", ck_error_context());
        goto fail;
    }
    if (cfg->user != NULL) {
        struct ck_daemon_user u;
        if ((rc = ck_daemon_user_lookup(cfg->user, &u)) != 0 ||
            (rc = ck_daemon_drop_privileges(&u)) != 0) {
            snprintf(why, sizeof(why), "user %s: %s", cfg->user, ck_error_context());
            goto fail;
        }
    }
    if ((rc = ck_log_reconfigure(cfg->log.dest, cfg->log.path, cfg->log_level)) != 0) {
        snprintf(why, sizeof(why), "log: %s", ck_error_context());
        goto fail;
    }
    if ((rc = ck_store_open(cfg->database, cfg->stash, 0, &store)) != 0) {
        snprintf(why, sizeof(why), "database %s: %s", cfg->database, ck_error_context());
        goto fail;
    }
    if (cfg->realm != NULL && strcmp(ck_store_realm(store)->name, cfg->realm) != 0) {
        snprintf(why, sizeof(why), "database %s holds realm %s, not %s", cfg->database,
                 ck_store_realm(store)->name, cfg->realm);
        goto fail;
    }
    if ((rc = apply_config(cfg, store)) != 0) {
        snprintf(why, sizeof(why), "%s", ck_error_context());
        goto fail;
    }
    if ((rc = prov_fqdn_start(cfg, &fqdn)) != 0) {
        snprintf(why, sizeof(why), "MTA-FQDN server: %s", ck_error_context());
        goto fail;
    }
    if ((rc = prov_devchan_start(cfg, &devchan)) != 0) {
        snprintf(why, sizeof(why), "device channel: %s", ck_error_context());
        goto fail;
    }
    if ((rc = prov_webhooks_start(cfg, NULL, &hooks)) != 0) {
        snprintf(why, sizeof(why), "webhooks: %s", ck_error_context());
        goto fail;
    }
    fl.store = store;
    fl.signer = signer;
    fl.webhooks = hooks;
    ck_log_info("back process %ld: store %s (realm %s) open", (long)getpid(), cfg->database,
                ck_store_realm(store)->name);
    b.cfg = cfg;
    b.fd = fd;
    b.fl = fl;
    pthread_mutex_init(&b.shared.store_lock, NULL);
    pthread_mutex_init(&b.shared.picks_lock, NULL);
    b.fl.shared = &b.shared;
    if (ckpt_start(&ckpt, cfg, store, &b.shared.store_lock) != 0)
        ck_log_warn("%s: commits checkpoint the database themselves", ck_error_context());
    ready(fd, "ok");
    status = serve(cfg, fd, &b.fl, &b) == 0 ? 0 : 1;
    goto stop;
fail:
    ck_log_err("cannot start: %s", why);
    ready(fd, why);
stop:
    workers_stop(&b);
    ckpt_stop(&ckpt);
    if (hooks != NULL)
        prov_webhooks_stop(hooks);
    if (devchan != NULL)
        prov_devchan_stop(devchan);
    if (fqdn != NULL)
        prov_fqdn_stop(fqdn);
    ck_store_close(store);
    close(fd);
    if (signer != NULL)
        prov_signer_stop(signer); /* after the store: the signer never needed it */
    ck_log_close();
    _exit(status);
}
