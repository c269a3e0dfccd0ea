/* The back process of cablekey-prov: the only one with the store. It forks the signer first
 * (while it holds nothing: no store, no keytab, no socket but the channel), then becomes the
 * service user, opens its log and the store, starts the MTA-FQDN and device-channel servers and
 * the webhook deliveries (each on its own store connection), and serves the front's requests
 * one at a time (flows.c). It never parses HTTP: the front sends validated JSON. When the
 * front closes the channel it stops everything and exits. */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

void
prov_back_main(const struct prov_config *cfg, int fd)
{
    struct prov_signer *signer = NULL;
    struct prov_fqdn_server *fqdn = NULL;
    struct prov_devchan_server *devchan = NULL;
    struct prov_webhooks *hooks = NULL;
    struct prov_flows fl = {.cfg = cfg, .now = system_now};
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
    ready(fd, "ok");
    for (;;) {
        json_t *req = NULL, *reply;
        const char *op;

        if ((rc = prov_ipc_next(fd, &req)) != 0) {
            if (rc != CK_ERR_NOTFOUND)
                ck_log_err("front channel: %s", ck_error_context());
            status = rc == CK_ERR_NOTFOUND ? 0 : 1;
            break;
        }
        op = json_string_value(json_object_get(req, "op"));
        reply = op != NULL && strcmp(op, "reload") == 0 ? reload(cfg)
                                                        : prov_flows_handle(&fl, req);
        json_decref(req);
        if (prov_ipc_answer(fd, reply) != 0) {
            ck_log_err("front channel: %s", ck_error_context());
            break;
        }
    }
    goto stop;
fail:
    ck_log_err("cannot start: %s", why);
    ready(fd, why);
stop:
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
