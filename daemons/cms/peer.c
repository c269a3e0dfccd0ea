/* The controller-to-controller channel (CONTRACT8): for every peer controller a route names,
 * this controller is a KMM *client* of the peer, exactly like an endpoint (lib/endpoint), with
 * endpoint name "cms@<our host>" and a ticket for the peer's service principal that it gets with
 * its own keytab (AS exchange for its own service principal, then TGS). Our XSET/XANS/XREL go
 * out on that SA pair; the peer's answers come back on it (on_response_text) and go to the call
 * core. The peer's own commands arrive on the other SA pair, where we are the server
 * (signaling.c).
 *
 * One thread: it polls the peers' sockets, runs their timers and the call core's timer, and
 * (re)gets tickets and (re)starts a peer whose endpoint failed, every PEER_RETRY_MS. Each peer
 * has its own lock, because the call core sends commands from the signaling threads; responses
 * are collected under that lock and handed to the call core after it is released (the core
 * calls into peers under its own lock: one lock order, core -> peer). */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cablekey/client.h"
#include "cablekey/endpoint.h"
#include "cablekey/error.h"
#include "cablekey/keytab.h"
#include "cablekey/log.h"
#include "cablekey/net.h"
#include "cablekey/util.h"
#include "call.h"
#include "cms.h"
#include "peer.h"

#define PEER_RETRY_MS 5000
#define PEER_TICK_MS 20               /* the call core's timers are checked at least this often */
#define PEER_RESP_QUEUE 16
#define PEER_MAX_KDCS 8
#define PEER_RENEW_MS (300 * 1000)     /* a new ticket this long before the old one ends */

struct peer_resp {
    uint32_t txid;
    size_t len;
    char text[CK_ENDPOINT_MAX_SIGNAL + 1];
};

struct peer {
    struct cms_peers *owner;
    size_t route;                     /* canonical route index (call core's peer id) */
    char principal[CMS_MAX_PRINCIPAL];
    struct ck_endpoint_cms cms;
    int fd;
    pthread_mutex_t lock;
    ck_endpoint *ep;                  /* NULL until a ticket was had */
    ck_creds *creds;
    int64_t retry_at;
    struct peer_resp q[PEER_RESP_QUEUE];
    size_t nq;
    bool reported;                    /* the last failure was logged */
};

struct cms_peers {
    struct peer *p;
    size_t n;
    struct cms_call_core *core;
    char *keytab, *service, *kdc, self[CK_MGCP_MAX_ENDPOINT];
    int64_t retry_ms, tries;
    int stop_fd;
    pthread_t thread;
    bool running;
};

static int64_t
now_ms(void)
{
    return ck_endpoint_now_ms();
}

static void
on_response_text(void *arg, uint32_t txid, int code, const char *text, size_t len)
{
    struct peer *p = arg;

    (void)code;
    if (p->nq >= PEER_RESP_QUEUE || len > CK_ENDPOINT_MAX_SIGNAL) {
        ck_log_warn("peer %s: response %u dropped (queue full)", p->principal, txid);
        return;
    }
    p->q[p->nq].txid = txid;
    p->q[p->nq].len = len;
    memcpy(p->q[p->nq].text, text, len);
    p->nq++;
}

static void
on_event(void *arg, enum ck_endpoint_event ev, const char *detail)
{
    struct peer *p = arg;

    switch (ev) {
    case CK_ENDPOINT_EV_ESTABLISHED:
        ck_log_info("peer %s: SA pair up: %s", p->principal, detail);
        break;
    case CK_ENDPOINT_EV_FAILED:
    case CK_ENDPOINT_EV_REFUSED:
    case CK_ENDPOINT_EV_ERROR_REPLY:
    case CK_ENDPOINT_EV_SA_LOST:
        ck_log_warn("peer %s: %s", p->principal, detail != NULL ? detail : "");
        break;
    default:
        ck_log_debug("peer %s: %s", p->principal, detail != NULL ? detail : "");
        break;
    }
}

/* The realm part of a principal name. */
static const char *
realm_of(const char *principal)
{
    const char *at = strrchr(principal, '@');

    return at != NULL ? at + 1 : "";
}

/* Our own ticket for the peer: AS with the keytab for our service principal, then TGS. */
static int
get_ticket(struct cms_peers *ps, struct peer *p)
{
    char kbuf[1024], svc[CMS_MAX_PRINCIPAL];
    const char *kdcs[PEER_MAX_KDCS];
    size_t nk = 0;
    ck_kdc_transport t;
    ck_as_params as;
    ck_tgs_params tgs;
    ck_keytab *kt = NULL;
    ck_creds *tgt = NULL;
    const char *realm = realm_of(ps->service);
    char *at;
    int rc;

    memset(&t, 0, sizeof(t));
    if (ps->kdc != NULL) {
        const char *s = ps->kdc;
        size_t used = 0;
        while (*s != '\0' && nk < PEER_MAX_KDCS) {
            size_t len = strcspn(s, " \t,");
            if (len > 0 && used + len + 1 <= sizeof(kbuf)) {
                memcpy(kbuf + used, s, len);
                kbuf[used + len] = '\0';
                kdcs[nk++] = kbuf + used;
                used += len + 1;
            }
            s += len;
            while (*s == ' ' || *s == '\t' || *s == ',')
                s++;
        }
    } else if ((rc = ck_krb5conf_kdcs(realm, kbuf, sizeof(kbuf), kdcs, PEER_MAX_KDCS, &nk)) !=
               0) {
        return ck_error_set(rc, "no KDC for %s: give [cms] kdc or a krb5.conf", realm);
    }
    t.kdcs = kdcs;
    t.n_kdcs = nk;
    t.timeout_ms = 1000;
    t.max_tries = 2;
    ck_strlcpy(svc, ps->service, sizeof(svc));
    if ((at = strrchr(svc, '@')) != NULL)
        *at = '\0';
    memset(&as, 0, sizeof(as));
    as.realm = realm;
    as.client = svc;
    as.transport = &t;
    memset(&tgs, 0, sizeof(tgs));
    tgs.service = p->principal;
    tgs.transport = &t;
    if ((rc = ck_keytab_read(ps->keytab, &kt)) != 0 ||
        (rc = ck_client_as_keytab(&as, kt, &tgt)) != 0)
        goto out;
    tgs.tgt = tgt;
    ck_creds_free(p->creds);
    p->creds = NULL;
    rc = ck_client_tgs(&tgs, &p->creds);
out:
    ck_creds_free(tgt);
    ck_keytab_free(kt);
    return rc;
}

/* A ticket and a started endpoint for p (under p->lock). */
static int
peer_start(struct cms_peers *ps, struct peer *p, int64_t now)
{
    struct ck_endpoint_params ep;
    int rc;

    ck_endpoint_free(p->ep);
    p->ep = NULL;
    if (p->creds == NULL || p->creds->endtime * 1000 - now < PEER_RENEW_MS) {
        if ((rc = get_ticket(ps, p)) != 0)
            return rc;
    }
    memset(&ep, 0, sizeof(ep));
    ep.creds = p->creds;
    ep.cms = &p->cms;
    ep.n_cms = 1;
    ep.sig_timeout_ms = (int)ps->retry_ms;
    ep.sig_tries = (int)ps->tries;
    ep.backoff_nominal_ms = 1000;
    ep.backoff_max_ms = 4000;
    ep.no_rsip = true;
    ep.fd = p->fd;
    ep.endpoint_name = ps->self;
    ep.on_event = on_event;
    ep.on_response_text = on_response_text;
    ep.cb_arg = p;
    if ((rc = ck_endpoint_new(&ep, &p->ep)) != 0 || (rc = ck_endpoint_start(p->ep, now)) != 0) {
        ck_endpoint_free(p->ep);
        p->ep = NULL;
        return rc;
    }
    ck_log_notice("peer %s: keying with %s", p->principal, ps->self);
    return 0;
}

/* The queued responses of p, handed to the call core outside p->lock. */
static void
deliver(struct cms_peers *ps, struct peer *p, int64_t now)
{
    struct peer_resp *q;
    size_t n;

    pthread_mutex_lock(&p->lock);
    n = p->nq;
    if (n == 0) {
        pthread_mutex_unlock(&p->lock);
        return;
    }
    q = malloc(n * sizeof(*q));
    if (q != NULL)
        memcpy(q, p->q, n * sizeof(*q));
    ck_memzero(p->q, n * sizeof(*q));
    p->nq = 0;
    pthread_mutex_unlock(&p->lock);
    if (q == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        cms_call_on_peer_response(ps->core, p->route, q[i].txid, (const uint8_t *)q[i].text,
                                  q[i].len, now);
    ck_memzero(q, n * sizeof(*q));
    free(q);
}

static void *
peer_thread(void *arg)
{
    struct cms_peers *ps = arg;
    struct pollfd *pfd = calloc(ps->n + 1, sizeof(*pfd));
    uint8_t *buf = malloc(CK_ESP_MAX_PACKET);

    if (pfd == NULL || buf == NULL) {
        ck_log_err("peer thread: out of memory");
        goto out;
    }
    for (;;) {
        int64_t now = now_ms(), wait = PEER_TICK_MS, t;

        for (size_t i = 0; i < ps->n; i++) {
            struct peer *p = &ps->p[i];

            pthread_mutex_lock(&p->lock);
            /* A ticket near its end: a fresh one and a new SA pair, between commands (the
             * endpoint keeps its ticket for every re-key, so it cannot be swapped in place). */
            if (p->ep != NULL && p->creds != NULL && now >= p->retry_at &&
                p->creds->endtime * 1000 - now < PEER_RENEW_MS && ck_endpoint_pending(p->ep) == 0) {
                ck_log_notice("peer %s: ticket ends in %lld s: renewing", p->principal,
                              (long long)(p->creds->endtime - now / 1000));
                ck_creds_free(p->creds);
                p->creds = NULL;
                ck_endpoint_free(p->ep);
                p->ep = NULL;
            }
            if ((p->ep == NULL || ck_endpoint_state(p->ep) == CK_ENDPOINT_FAILED) &&
                now >= p->retry_at) {
                if (peer_start(ps, p, now) != 0) {
                    if (!p->reported)
                        ck_log_err("peer %s: %s; retrying every %d s", p->principal,
                                   ck_error_context(), PEER_RETRY_MS / 1000);
                    p->reported = true;
                    p->retry_at = now + PEER_RETRY_MS;
                } else {
                    p->reported = false;
                }
            }
            if (p->ep != NULL) {
                t = ck_endpoint_next_timeout_ms(p->ep, now);
                if (t == 0) {
                    ck_endpoint_on_timer(p->ep, now);
                    t = ck_endpoint_next_timeout_ms(p->ep, now);
                }
                if (t >= 0 && t < wait)
                    wait = t;
            }
            pthread_mutex_unlock(&p->lock);
            deliver(ps, p, now);
            pfd[i] = (struct pollfd){.fd = p->fd, .events = POLLIN};
        }
        if ((t = cms_call_next_timeout(ps->core, now)) == 0)
            cms_call_on_timer(ps->core, now);
        pfd[ps->n] = (struct pollfd){.fd = ps->stop_fd, .events = POLLIN};
        if (poll(pfd, ps->n + 1, (int)(wait < 1 ? 1 : wait)) < 0 && errno != EINTR) {
            ck_log_err("peer thread: poll: %s", strerror(errno));
            break;
        }
        if (pfd[ps->n].revents != 0)
            break;
        for (size_t i = 0; i < ps->n; i++) {
            struct peer *p = &ps->p[i];

            if (!(pfd[i].revents & POLLIN))
                continue;
            for (int k = 0; k < 64; k++) {
                struct sockaddr_storage from;
                socklen_t fl = sizeof(from);
                ssize_t r = recvfrom(p->fd, buf, CK_ESP_MAX_PACKET, MSG_DONTWAIT,
                                     (struct sockaddr *)&from, &fl);
                if (r < 0)
                    break;
                pthread_mutex_lock(&p->lock);
                if (p->ep != NULL)
                    ck_endpoint_on_datagram(p->ep, buf, (size_t)r, (struct sockaddr *)&from, fl,
                                            now_ms());
                pthread_mutex_unlock(&p->lock);
                deliver(ps, p, now_ms());
            }
        }
    }
out:
    free(pfd);
    free(buf);
    ck_crypto_thread_cleanup();
    return NULL;
}

/* ---- the call core's peer_command ----------------------------------------------------- */

int
cms_peers_command(void *arg, size_t route, const char *verb, const char *params, uint32_t *txid)
{
    struct cms_peers *ps = arg;
    int rc;

    for (size_t i = 0; i < ps->n; i++) {
        struct peer *p = &ps->p[i];

        if (p->route != route)
            continue;
        pthread_mutex_lock(&p->lock);
        rc = p->ep != NULL ? ck_endpoint_send_command(p->ep, verb, params, now_ms(), txid)
                           : ck_error_set(CK_ERR_TIMEOUT, "peer %s: no channel yet",
                                          p->principal);
        pthread_mutex_unlock(&p->lock);
        return rc;
    }
    return ck_error_set(CK_ERR_NOTFOUND, "no peer for route %zu", route);
}

/* ---- life ------------------------------------------------------------------------------- */

static int
resolve(const char *spec, uint16_t sig_port, struct ck_endpoint_cms *out)
{
    struct addrinfo hints, *res = NULL;
    char host[256], port[8];
    uint16_t p;
    int g;

    if (ck_net_parse_listen(spec, CK_KMM_PORT, host, sizeof(host), &p) != 0)
        return ck_error_set(CK_ERR_CONFIG, "route address %s", spec);
    snprintf(port, sizeof(port), "%u", (unsigned)p);
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = AI_NUMERICSERV;
    if ((g = getaddrinfo(host, port, &hints, &res)) != 0 || res == NULL)
        return ck_error_set(CK_ERR_CONFIG, "route address %s: %s", spec, gai_strerror(g));
    memset(out, 0, sizeof(*out));
    memcpy(&out->kmm, res->ai_addr, res->ai_addrlen);
    out->kmm_len = (socklen_t)res->ai_addrlen;
    out->sig_port = sig_port;
    freeaddrinfo(res);
    return 0;
}

static char *
dup_or_null(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

int
cms_peers_new(const struct cms_config *cfg, const char *service, const char *self,
              struct cms_call_core *core, struct cms_peers **out)
{
    struct cms_peers *ps = calloc(1, sizeof(*ps));
    int rc = 0;

    *out = NULL;
    if (ps == NULL)
        return ck_error_set(CK_ERR_NOMEM, "peers");
    ps->stop_fd = -1;
    ps->core = core;
    ps->retry_ms = cfg->call_retry_ms;
    ps->tries = cfg->call_tries;
    ck_strlcpy(ps->self, self, sizeof(ps->self));
    ps->keytab = dup_or_null(cfg->keytab);
    ps->service = dup_or_null(service);
    ps->kdc = dup_or_null(cfg->kdc);
    ps->p = calloc(cfg->n_routes + 1, sizeof(*ps->p));
    if (ps->keytab == NULL || ps->service == NULL || ps->p == NULL ||
        (cfg->kdc != NULL && ps->kdc == NULL)) {
        rc = ck_error_set(CK_ERR_NOMEM, "peers");
        goto out;
    }
    for (size_t i = 0; i < cfg->n_routes; i++) {
        struct peer *p;
        bool seen = false;

        for (size_t j = 0; j < i; j++)
            if (strcmp(cfg->routes[j].principal, cfg->routes[i].principal) == 0)
                seen = true;
        if (seen)
            continue;
        p = &ps->p[ps->n];
        p->owner = ps;
        p->route = i;
        p->fd = -1;
        ck_strlcpy(p->principal, cfg->routes[i].principal, sizeof(p->principal));
        pthread_mutex_init(&p->lock, NULL);
        ps->n++;
        if ((rc = resolve(cfg->routes[i].kmm, cfg->routes[i].sig_port, &p->cms)) != 0)
            goto out;
        p->fd = socket(p->cms.kmm.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (p->fd < 0) {
            rc = ck_error_set(CK_ERR_IO, "peer %s: socket: %s", p->principal, strerror(errno));
            goto out;
        }
    }
out:
    if (rc != 0) {
        cms_peers_free(ps);
        return rc;
    }
    *out = ps;
    return 0;
}

int
cms_peers_run(struct cms_peers *ps)
{
    int e;

    if ((ps->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
        return ck_error_set(CK_ERR_IO, "eventfd: %s", strerror(errno));
    if ((e = pthread_create(&ps->thread, NULL, peer_thread, ps)) != 0)
        return ck_error_set(CK_ERR_IO, "peer thread: %s", strerror(e));
    ps->running = true;
    return 0;
}

void
cms_peers_free(struct cms_peers *ps)
{
    if (ps == NULL)
        return;
    if (ps->running) {
        uint64_t one = 1;
        if (write(ps->stop_fd, &one, sizeof(one)) < 0)
            ck_log_warn("peers: stop: %s", strerror(errno));
        pthread_join(ps->thread, NULL);
    }
    if (ps->stop_fd >= 0)
        close(ps->stop_fd);
    for (size_t i = 0; i < ps->n; i++) {
        struct peer *p = &ps->p[i];
        ck_endpoint_free(p->ep);
        ck_creds_free(p->creds);
        if (p->fd >= 0)
            close(p->fd);
        ck_memzero(p->q, sizeof(p->q));
        pthread_mutex_destroy(&p->lock);
    }
    free(ps->p);
    free(ps->keytab);
    free(ps->service);
    free(ps->kdc);
    free(ps);
}

/* "cms@<host>" from "cms/<host>@REALM" (the service principal's instance), else the principal's
 * first component. */
void
cms_peers_self_name(const char *service, char *buf, size_t size)
{
    const char *slash = strchr(service, '/'), *at = strrchr(service, '@');
    const char *h = slash != NULL ? slash + 1 : service;
    size_t len = at != NULL && at > h ? (size_t)(at - h) : strlen(h);

    snprintf(buf, size, "cms@%.*s", (int)(len > 100 ? 100 : len), h);
}
