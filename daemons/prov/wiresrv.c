/* The frame of cablekey-prov's MTA-FQDN and device-channel servers (wiresrv.h).
 *
 * Decisions:
 *   - Each server has its own ck_net_server, workers and store connections: a slow database
 *     answer to one never holds up the other, nor the HTTP side.
 *   - The keytab is checked for a new version at most once a second (a request triggers it):
 *     rotating prov/<host> or mtafqdn/<host> needs no restart, and a broken keytab keeps the
 *     keys in use (ck_keyset).
 *   - The replay cache is shared by a server's workers (it is thread-safe): a datagram replayed
 *     to another worker is still caught. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/client.h"
#include "cablekey/error.h"
#include "cablekey/keytab.h"
#include "cablekey/log.h"
#include "cablekey/principal.h"
#include "cablekey/util.h"
#include "wiresrv.h"

#define DEFAULT_SKEW 300

struct prov_wire_server {
    struct prov_wire_def def;
    char *database, *stash;
    char service[CK_KEYSET_MAX_NAME];
    ck_keyset *keys;
    ck_rcache *rcache;
    int64_t clockskew;
    _Atomic int64_t last_refresh;
    struct ck_net_server *net;
};

void
prov_wire_log_escape(const char *in, char *out, size_t size)
{
    size_t i;

    if (size == 0)
        return;
    for (i = 0; in != NULL && in[i] != '\0' && i + 1 < size; i++)
        out[i] = (in[i] >= 0x20 && in[i] < 0x7f) ? in[i] : '?';
    out[i] = '\0';
}

bool
prov_wire_log_unhandled(const char *tag, const struct ck_peer *peer, size_t len, int rc,
                        bool called, char *addr, size_t addr_size)
{
    char why[256];

    ck_peer_format(peer, addr, addr_size);
    prov_wire_log_escape(ck_error_context(), why, sizeof(why));
    if (rc != 0)
        ck_log_info("%s %s: %zu bytes not answered: %s", tag, addr, len, why);
    else if (!called)
        ck_log_notice("%s %s refused: %s", tag, addr, why[0] != '\0' ? why : "KRB-ERROR");
    return rc != 0 || !called;
}

int
prov_wire_keytab_service(const char *keytab, const char *service, const char *realm,
                         char *out, size_t size)
{
    ck_keytab *kt = NULL;
    size_t len = 0;
    int rc;

    out[0] = '\0';
    if (keytab == NULL)
        return ck_error_set(CK_ERR_CONFIG, "no keytab configured (keytab = FILE)");
    if ((rc = ck_keytab_read(keytab, &kt)) != 0)
        return ck_error_set(rc, "keytab %s: %s", keytab, ck_error_context());
    rc = ck_error_set(CK_ERR_NOTFOUND, "keytab %s holds no %s/<host>%s%s key", keytab, service,
                      realm != NULL ? "@" : "", realm != NULL ? realm : "");
    for (size_t i = 0; i < kt->n_entries; i++) {
        const ck_principal *p = kt->entries[i].principal;
        if (p->n_components == 2 && strcmp(p->components[0], service) == 0 &&
            (realm == NULL || strcmp(p->realm, realm) == 0)) {
            rc = ck_principal_unparse_buf(p, 0, out, size, &len);
            break;
        }
    }
    ck_keytab_free(kt);
    return rc;
}

static int
worker_init(int index, void *arg, void **state)
{
    struct prov_wire_server *srv = arg;
    struct prov_wire_ctx *ctx;
    int rc;

    *state = NULL;
    if ((ctx = calloc(1, sizeof(*ctx))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "%s worker", srv->def.what);
    ctx->srv = srv;
    ctx->keys = srv->keys;
    ctx->service = srv->service;
    ctx->rcache = srv->rcache;
    ctx->clockskew = srv->clockskew;
    ctx->arg = srv->def.arg;
    if ((rc = ck_store_open(srv->database, srv->stash, 0, &ctx->store)) != 0) {
        rc = ck_error_set(rc, "%s worker %d: %s", srv->def.what, index, ck_error_context());
        free(ctx);
        return rc;
    }
    *state = ctx;
    return 0;
}

static void
worker_fini(int index, void *arg, void *state)
{
    struct prov_wire_ctx *ctx = state;

    (void)index;
    (void)arg;
    if (ctx == NULL)
        return;
    ck_store_close(ctx->store);
    free(ctx);
}

static void
maybe_refresh(struct prov_wire_server *srv, int64_t now)
{
    int64_t last = atomic_load(&srv->last_refresh);
    bool changed = false;

    if (now == last || !atomic_compare_exchange_strong(&srv->last_refresh, &last, now))
        return;
    if (ck_keyset_refresh(srv->keys, false, &changed) != 0) {
        ck_log_warn("%s: keytab: %s (the keys in use stay)", srv->def.what, ck_error_context());
        ck_error_clear();
    } else if (changed) {
        ck_log_notice("%s: keytab re-read for %s", srv->def.what, srv->service);
    }
}

static int
net_handle(void *state, const struct ck_net_request *req, uint8_t *reply, size_t reply_cap,
           size_t *reply_len)
{
    struct prov_wire_ctx *ctx = state;
    uint8_t *out = NULL;
    size_t out_len = 0;
    int64_t now;
    int32_t usec;

    *reply_len = 0;
    if (req->flags & CK_NET_REQ_OVERSIZED)
        return 0;
    ck_now(&now, &usec);
    maybe_refresh(ctx->srv, now);
    if (ctx->srv->def.handler(ctx, req->data, req->len, req->remote, now, &out, &out_len) != 0 ||
        out == NULL) {
        ck_error_clear();
        free(out);
        return 0;
    }
    if (out_len <= reply_cap) {
        memcpy(reply, out, out_len);
        *reply_len = out_len;
    } else {
        ck_log_warn("%s: a %zu-byte reply does not fit (%zu): not sent", ctx->srv->def.what,
                    out_len, reply_cap);
    }
    free(out);
    return 0;
}

void
prov_wire_stop(struct prov_wire_server *s)
{
    if (s == NULL)
        return;
    ck_net_server_free(s->net);
    ck_keyset_free(s->keys);
    ck_rcache_free(s->rcache);
    free(s->database);
    free(s->stash);
    free(s);
}

void
prov_wire_describe(const struct prov_wire_server *s, char *buf, size_t size)
{
    ck_net_server_describe(s != NULL ? s->net : NULL, buf, size);
}

int
prov_wire_start(const struct prov_config *cfg, const struct prov_wire_def *def,
                char *const *listen, size_t n_listen, struct prov_wire_server **out)
{
    struct prov_wire_server *srv = NULL;
    struct ck_net_config ncfg;
    struct ck_net_callbacks cb;
    char port[8];
    const char *dflt[1] = {port};
    char desc[512];
    int rc;

    *out = NULL;
    if (n_listen == 1 && strcmp(listen[0], "none") == 0) {
        ck_log_notice("%s: off (listen = none)", def->what);
        return 0;
    }
    if (cfg->database == NULL)
        return ck_error_set(CK_ERR_CONFIG, "%s: no database", def->what);
    if ((srv = calloc(1, sizeof(*srv))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "%s", def->what);
    srv->def = *def;
    srv->clockskew = cfg->clockskew > 0 ? cfg->clockskew : DEFAULT_SKEW;
    atomic_init(&srv->last_refresh, 0);
    if ((srv->database = strdup(cfg->database)) == NULL ||
        (cfg->stash != NULL && (srv->stash = strdup(cfg->stash)) == NULL)) {
        rc = ck_error_set(CK_ERR_NOMEM, "%s", def->what);
        goto out;
    }
    if ((rc = prov_wire_keytab_service(cfg->keytab, def->service, cfg->realm, srv->service,
                                       sizeof(srv->service))) != 0 ||
        (rc = ck_keyset_new(cfg->keytab, srv->service, &srv->keys)) != 0 ||
        (rc = ck_rcache_new(0, 2 * srv->clockskew, &srv->rcache)) != 0)
        goto fail;
    snprintf(port, sizeof(port), "%u", (unsigned)def->port);
    memset(&ncfg, 0, sizeof(ncfg));
    ncfg.listen = n_listen > 0 ? (const char *const *)listen : dflt;
    ncfg.n_listen = n_listen > 0 ? n_listen : 1;
    ncfg.default_port = def->port;
    ncfg.workers = PROV_WIRE_WORKERS;
    ncfg.max_request = def->max_request;
    ncfg.max_dgram = def->max_request;
    ncfg.max_reply = def->max_reply;
    ncfg.no_tcp = !def->tcp;
    ncfg.tcp_framing = def->tcp ? &ck_krb_tcp_framing : NULL;
    memset(&cb, 0, sizeof(cb));
    cb.handler = net_handle;
    cb.worker_init = worker_init;
    cb.worker_fini = worker_fini;
    cb.arg = srv;
    if ((rc = ck_net_server_new(&ncfg, &cb, &srv->net)) != 0 ||
        (rc = ck_net_server_start(srv->net)) != 0)
        goto fail;
    ck_net_server_describe(srv->net, desc, sizeof(desc));
    ck_log_notice("%s: listening on %s (%s) for %s", def->what, desc,
                  def->tcp ? "udp+tcp" : "udp", srv->service);
    *out = srv;
    srv = NULL;
    goto out;
fail:
    rc = ck_error_set(rc, "%s: %s", def->what, ck_error_context());
out:
    prov_wire_stop(srv);
    return rc;
}
