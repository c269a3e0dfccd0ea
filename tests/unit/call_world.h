/* A world for the cablekey-cms call core without sockets (test_cms_call, call_setup_bench): two
 * controller cores (CA and CB) wired to each other through a message queue, and fake endpoints
 * ("phones", one a media gateway) that answer CRCX/MDCX/DLCX as CONTRACT8 says, compute real
 * ACKs with ck_call_ack_compute, cache their responses by txid, and can misbehave on request
 * (drop answers, forge the ACK, refuse SPIs with 533). Time is a variable the test moves.
 *
 * Parties and the server-side SPIs the cores see them on:
 *   CA: A 5551001 mta/a@R (0x1001), A2 5551002 mta/a2@R (0x1002), MG 5559000 mg/gw@R server
 *       (0x1003); CB's client channel cms/cb@R (0x3001); route 5552 -> cms/cb@R
 *   CB: B 5552001 mta/b@R (0x2001); CA's client channel cms/ca@R (0x4001); route 5551 -> cms/ca@R
 * Functions return 0 or -1 (no test harness inside: the benchmark uses them too). */
#ifndef CALL_WORLD_H
#define CALL_WORLD_H

/* Each user takes what it needs. */
#pragma GCC diagnostic ignored "-Wunused-function"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "cablekey/error.h"
#include "cablekey/kmm.h"
#include "cablekey/mgcp.h"
#include "cablekey/util.h"
#include "call.h"
#include "cms.h"

#define W_QUEUE 256
#define W_LOG 64
#ifndef W_PHONES
#define W_PHONES 4
#endif

enum w_dest { W_TO_CORE, W_TO_CORE_PEER_RESP, W_TO_PHONE };

struct w_msg {
    enum w_dest dest;
    int core;                        /* 0 = CA, 1 = CB */
    int phone;
    char client[64];
    uint32_t spi, txid;
    size_t route;
    char text[CK_MGCP_MAX_MSG + 64];
    size_t len;
};

struct w_phone {
    const char *name, *principal, *number;
    int core;
    uint32_t spi;
    uint16_t media_port, sig_port;
    /* state */
    uint32_t next_txid;
    uint32_t last_cmd_txid;
    char last_callid[CMS_CALL_ID_HEX + 1];
    char last_resp[CK_MGCP_MAX_MSG];
    size_t last_resp_len;
    bool last_keyed_mdcx;
    bool have_key;
    uint8_t key[CK_CALL_KEY_LEN];
    uint32_t spi_call;
    enum ck_call_ack_role role;
    char peer_addr[64];
    uint16_t peer_port, peer_sig;
    bool ipsec_line, secret_line;
    enum ck_sdp_media_mode media;
    int installs, crcx, mdcx, dlcx;
    char last_reason[32];
    /* misbehaviour */
    int drop_responses;              /* drop this many of the next responses we send */
    int drop_mdcx_key_responses;     /* drop every response to a keyed MDCX (this many) */
    bool forge_ack;
    int refuse_spi;                  /* answer this many keyed CRCX with 533 */
    uint32_t refused_spi[8];
    uint8_t refused_key[8][CK_CALL_KEY_LEN];
    int n_refused;
};

struct w_escrow {
    int calls;
    int after_both_acks;             /* escrow calls made when both ends held the keys */
    const char *target;              /* number under an order (NULL: none) */
    uint8_t key[CK_CALL_KEY_LEN];
    ck_li *li;                       /* a real intercept database (then target is unused) */
    bool hangup_inside;              /* A hangs up while its escrow is being written */
    const char *drop_dir;
};

struct world {
    struct cms_config cfg[2];
    struct cms_call_core *core[2];
    struct w_msg *q;
    size_t q_head, q_tail;
    uint32_t peer_txid;
    int64_t now;
    struct w_phone ph[W_PHONES];
    size_t n_ph;
    char log[2][W_LOG][512];
    size_t n_log[2];
    struct w_escrow esc;
    int drop_to_cb;                  /* drop this many messages CA -> CB (XSET ...) */
    char last_xset[CK_MGCP_MAX_MSG + 64];
    size_t last_xset_len;
    bool quiet_log;
    int64_t ca_ns;                   /* time spent inside CA's core (w_pump) */
    int64_t ca_cpu_ns;               /* CPU time of this thread inside CA's core */
};

static int64_t
w_cpu_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t
w_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

struct w_io_arg {
    struct world *w;
    int core;
};

static struct w_io_arg w_args[2];

static struct w_msg *
w_push(struct world *w)
{
    struct w_msg *m;

    if (w->q_tail - w->q_head >= W_QUEUE)
        return NULL;
    m = &w->q[w->q_tail++ % W_QUEUE];
    memset(m, 0, offsetof(struct w_msg, text));
    return m;
}

static int
w_phone_by_spi(struct world *w, int core, uint32_t spi)
{
    for (size_t i = 0; i < w->n_ph; i++)
        if (w->ph[i].core == core && w->ph[i].spi == spi)
            return (int)i;
    return -1;
}

static int
w_send_sa(void *arg, const char *client, uint32_t spi, const char *text, size_t len)
{
    struct w_io_arg *a = arg;
    struct world *w = a->w;
    struct w_msg *m;
    int p = w_phone_by_spi(w, a->core, spi);

    (void)client;
    if (len > CK_MGCP_MAX_MSG || (m = w_push(w)) == NULL)
        return ck_error_set(CK_ERR_LIMIT, "world: queue");
    if (p >= 0) {
        m->dest = W_TO_PHONE;
        m->phone = p;
    } else if ((a->core == 0 && spi == 0x3001) || (a->core == 1 && spi == 0x4001)) {
        /* An answer to the other controller's command, on its client channel. */
        m->dest = W_TO_CORE_PEER_RESP;
        m->core = 1 - a->core;
        m->route = 0;
        m->txid = (uint32_t)strtoul(strchr(text, ' ') != NULL ? strchr(text, ' ') + 1 : "0",
                                    NULL, 10);
    } else {
        w->q_tail--;
        return ck_error_set(CK_ERR_NOTFOUND, "world: no SA 0x%08x", spi);
    }
    memcpy(m->text, text, len);
    m->len = len;
    return 0;
}

static int
w_peer_command(void *arg, size_t route, const char *verb, const char *params, uint32_t *txid)
{
    struct w_io_arg *a = arg;
    struct world *w = a->w;
    struct w_msg *m;
    int n;

    (void)route;
    *txid = ++w->peer_txid;
    if (a->core == 0 && w->drop_to_cb > 0) {
        w->drop_to_cb--;
        return 0;
    }
    if ((m = w_push(w)) == NULL)
        return ck_error_set(CK_ERR_LIMIT, "world: queue");
    m->dest = W_TO_CORE;
    m->core = 1 - a->core;
    snprintf(m->client, sizeof(m->client), "%s", a->core == 0 ? "cms/ca@R" : "cms/cb@R");
    m->spi = a->core == 0 ? 0x4001 : 0x3001;
    n = snprintf(m->text, sizeof(m->text), "%s %u %s MGCP 1.0 NCS 1.0\r\n%s", verb, *txid,
                 a->core == 0 ? "cms@ca" : "cms@cb", params);
    if (n < 0 || (size_t)n >= sizeof(m->text)) {
        w->q_tail--;
        return ck_error_set(CK_ERR_LIMIT, "world: peer command too long");
    }
    m->len = (size_t)n;
    if (strcmp(verb, "XSET") == 0) {
        memcpy(w->last_xset, m->text, m->len);
        w->last_xset_len = m->len;
    }
    return 0;
}

static int
w_escrow(void *arg, const struct ck_li_call *call, int64_t now_s, size_t *n)
{
    struct w_io_arg *a = arg;
    struct world *w = a->w;
    bool both = true;

    (void)now_s;
    *n = 0;
    w->esc.calls++;
    /* Both ends must hold this very key already (A's ACK and B's ACK were checked). */
    for (size_t i = 0; i < w->n_ph; i++)
        if ((strcmp(w->ph[i].number, call->caller) == 0 ||
             strcmp(w->ph[i].number, call->callee) == 0) &&
            (!w->ph[i].have_key || memcmp(w->ph[i].key, call->k_call, CK_CALL_KEY_LEN) != 0))
            both = false;
    if (both)
        w->esc.after_both_acks++;
    memcpy(w->esc.key, call->k_call, CK_CALL_KEY_LEN);
    if (w->esc.hangup_inside) {
        /* Another thread's work while the escrow is written outside the core's lock. */
        static const char hu[] = "NTFY 900 aaln/1@a MGCP 1.0 NCS 1.0\r\nX: 1\r\nO: hu\r\n";
        w->esc.hangup_inside = false;
        cms_call_on_message(w->core[0], "mta/a@R", 0x1001, (const uint8_t *)hu,
                            sizeof(hu) - 1, w->now);
    }
    if (w->esc.li != NULL)
        return ck_li_escrow(w->esc.li, call, now_s, 86400, w->esc.drop_dir, n);
    if (w->esc.target != NULL && (strcmp(call->caller, w->esc.target) == 0 ||
                                  strcmp(call->callee, w->esc.target) == 0))
        *n = 1;
    return 0;
}

static void
w_log(void *arg, const char *line)
{
    struct w_io_arg *a = arg;
    struct world *w = a->w;

    if (!w->quiet_log)
        fprintf(stderr, "# %s: %s\n", a->core == 0 ? "CA" : "CB", line);
    if (w->n_log[a->core] < W_LOG)
        snprintf(w->log[a->core][w->n_log[a->core]++], sizeof(w->log[0][0]), "%s", line);
}

/* The number of summary lines of core containing needle. */
static int
w_log_count(const struct world *w, int core, const char *needle)
{
    int n = 0;

    for (size_t i = 0; i < w->n_log[core]; i++)
        if (strstr(w->log[core][i], needle) != NULL)
            n++;
    return n;
}

/* ---- fake endpoints ---- */

static void
w_phone_send(struct world *w, int p, const char *text, size_t len)
{
    struct w_phone *ph = &w->ph[p];
    struct w_msg *m;

    if ((m = w_push(w)) == NULL)
        return;
    m->dest = W_TO_CORE;
    m->core = ph->core;
    snprintf(m->client, sizeof(m->client), "%s", ph->principal);
    m->spi = ph->spi;
    memcpy(m->text, text, len);
    m->len = len;
}

static int
w_ntfy(struct world *w, int p, const char *observed)
{
    struct w_phone *ph = &w->ph[p];
    char text[256];
    int n = snprintf(text, sizeof(text), "NTFY %u aaln/1@%s MGCP 1.0 NCS 1.0\r\nX: 1\r\nO: %s\r\n",
                     ph->next_txid++, ph->name, observed);

    w_phone_send(w, p, text, (size_t)n);
    return 0;
}

static int
w_dial(struct world *w, int p, const char *number)
{
    char o[64];

    if (ck_mgcp_format_digits(number, o, sizeof(o)) != 0)
        return -1;
    w_ntfy(w, p, "hd");
    return w_ntfy(w, p, o);
}

static void
w_phone_on_command(struct world *w, int p, const struct ck_mgcp_msg *m)
{
    struct w_phone *ph = &w->ph[p];
    struct ck_sdp in, out;
    char sdp[CK_MGCP_MAX_MSG];
    const char *reason;
    ck_writer wr;
    size_t sl = 0;
    int code = 200;
    bool keyed_mdcx = false, with_sdp = false;

    memset(&in, 0, sizeof(in));
    memset(&out, 0, sizeof(out));
    if (m->txid == ph->last_cmd_txid && ph->last_resp_len > 0) {
        /* A retransmission: the cached answer, no second installation. */
        if (ph->last_keyed_mdcx && ph->drop_mdcx_key_responses > 0)
            ph->drop_mdcx_key_responses--;
        else if (ph->drop_responses > 0)
            ph->drop_responses--;
        else
            w_phone_send(w, p, ph->last_resp, ph->last_resp_len);
        return;
    }
    if (ck_mgcp_param(m, "C") != NULL)
        ck_strlcpy(ph->last_callid, ck_mgcp_param(m, "C"), sizeof(ph->last_callid));
    if (m->has_sdp && ck_sdp_parse(m->sdp, m->sdp_len, &in) != 0)
        code = 400;
    out.family = 4;
    ck_strlcpy(out.addr, "127.0.0.1", sizeof(out.addr));
    out.media_port = ph->media_port;
    out.sig_port = ph->sig_port;
    if (code != 200) {
        /* answer 400 */
    } else if (strcmp(m->verb, "CRCX") == 0 || strcmp(m->verb, "MDCX") == 0) {
        if (strcmp(m->verb, "CRCX") == 0)
            ph->crcx++;
        else
            ph->mdcx++;
        if (in.has_key && in.role == CK_CALL_ACK_DESTINATION && ph->refuse_spi > 0) {
            ph->refuse_spi--;
            if (ph->n_refused < 8) {
                ph->refused_spi[ph->n_refused] = in.spi;
                memcpy(ph->refused_key[ph->n_refused], in.key, CK_CALL_KEY_LEN);
                ph->n_refused++;
            }
            code = 533;
        } else if (m->has_sdp) {
            ph->media = in.media;
            ph->ipsec_line = in.has_ipsec;
            ph->secret_line = in.has_key;
            ck_strlcpy(ph->peer_addr, in.addr, sizeof(ph->peer_addr));
            ph->peer_port = in.media_port;
            ph->peer_sig = in.sig_port;
            if (in.has_key) {
                memcpy(ph->key, in.key, CK_CALL_KEY_LEN);
                ph->spi_call = in.spi;
                ph->role = in.role;
                ph->have_key = true;
                ph->installs++;
                out.has_ack = true;
                ck_call_ack_compute(in.key, CK_CALL_KEY_LEN, in.role, in.spi,
                                    (const uint8_t *)ph->last_callid, strlen(ph->last_callid),
                                    out.ack);
                if (ph->forge_ack)
                    out.ack[0] ^= 1;
                keyed_mdcx = strcmp(m->verb, "MDCX") == 0;
            }
            with_sdp = strcmp(m->verb, "CRCX") == 0 || in.has_key;
        } else {
            with_sdp = strcmp(m->verb, "CRCX") == 0;
        }
    } else if (strcmp(m->verb, "DLCX") == 0) {
        ph->dlcx++;
        code = 250;
        reason = ck_mgcp_param(m, "X-CK-Reason");
        ck_strlcpy(ph->last_reason, reason != NULL ? reason : "", sizeof(ph->last_reason));
        ck_memzero(ph->key, sizeof(ph->key));
        ph->have_key = false;
    }
    if (with_sdp && ck_sdp_build(&out, sdp, sizeof(sdp), &sl) != 0)
        code = 510;
    ck_writer_init(&wr, CK_MGCP_MAX_MSG, false);
    if (ck_mgcp_build_response(code, m->txid, code == 533 ? "SPI in use" : "OK", NULL, 0,
                               code == 200 && with_sdp ? sdp : NULL, &wr) == 0) {
        ph->last_cmd_txid = m->txid;
        memcpy(ph->last_resp, wr.data, wr.len);
        ph->last_resp_len = wr.len;
        ph->last_keyed_mdcx = keyed_mdcx;
        if (keyed_mdcx && ph->drop_mdcx_key_responses > 0)
            ph->drop_mdcx_key_responses--;
        else if (ph->drop_responses > 0)
            ph->drop_responses--;
        else
            w_phone_send(w, p, (const char *)wr.data, wr.len);
    }
    ck_writer_free(&wr);
    ck_sdp_clear(&in);
    ck_sdp_clear(&out);
}

/* Delivers queued messages until none is left. */
static int
w_pump(struct world *w)
{
    static struct ck_mgcp_msg m;
    int guard = 0;

    while (w->q_head < w->q_tail && guard++ < 10000) {
        struct w_msg *x = &w->q[w->q_head++ % W_QUEUE];
        struct w_msg cp = *x;

        switch (cp.dest) {
        case W_TO_CORE: {
            int64_t t0 = cp.core == 0 ? w_ns() : 0, c0 = cp.core == 0 ? w_cpu_ns() : 0;
            cms_call_on_message(w->core[cp.core], cp.client, cp.spi, (const uint8_t *)cp.text,
                                cp.len, w->now);
            if (cp.core == 0) {
                w->ca_ns += w_ns() - t0;
                w->ca_cpu_ns += w_cpu_ns() - c0;
            }
            break;
        }
        case W_TO_CORE_PEER_RESP: {
            int64_t t0 = cp.core == 0 ? w_ns() : 0, c0 = cp.core == 0 ? w_cpu_ns() : 0;
            cms_call_on_peer_response(w->core[cp.core], cp.route, cp.txid,
                                      (const uint8_t *)cp.text, cp.len, w->now);
            if (cp.core == 0) {
                w->ca_ns += w_ns() - t0;
                w->ca_cpu_ns += w_cpu_ns() - c0;
            }
            break;
        }
        case W_TO_PHONE:
            if (ck_mgcp_parse((const uint8_t *)cp.text, cp.len, &m) == 0 && !m.is_response)
                w_phone_on_command(w, cp.phone, &m);
            ck_mgcp_msg_clear(&m);
            break;
        }
        ck_memzero(&cp, sizeof(cp));
    }
    return 0;
}

/* Runs timers and the queue until virtual time reaches until (ms). */
static void
w_run_until(struct world *w, int64_t until)
{
    w_pump(w);
    for (;;) {
        int64_t t0 = cms_call_next_timeout(w->core[0], w->now);
        int64_t t1 = cms_call_next_timeout(w->core[1], w->now);
        int64_t t = t0 < 0 ? t1 : t1 < 0 ? t0 : (t0 < t1 ? t0 : t1);

        if (t < 0 || w->now + t > until)
            break;
        w->now += t;
        cms_call_on_timer(w->core[0], w->now);
        cms_call_on_timer(w->core[1], w->now);
        w_pump(w);
    }
    if (w->now < until)
        w->now = until;
}

static int
w_add_line(struct cms_config *cfg, const char *number, const char *principal, const char *mac,
           bool server)
{
    struct cms_line *n = realloc(cfg->lines, (cfg->n_lines + 1) * sizeof(*n));

    if (n == NULL)
        return -1;
    cfg->lines = n;
    memset(&n[cfg->n_lines], 0, sizeof(*n));
    ck_strlcpy(n[cfg->n_lines].number, number, sizeof(n->number));
    ck_strlcpy(n[cfg->n_lines].principal, principal, sizeof(n->principal));
    ck_strlcpy(n[cfg->n_lines].mac, mac, sizeof(n->mac));
    n[cfg->n_lines].server = server;
    cfg->n_lines++;
    return 0;
}

static int
w_add_route(struct cms_config *cfg, const char *prefix, const char *principal)
{
    struct cms_route *n = realloc(cfg->routes, (cfg->n_routes + 1) * sizeof(*n));

    if (n == NULL)
        return -1;
    cfg->routes = n;
    memset(&n[cfg->n_routes], 0, sizeof(*n));
    ck_strlcpy(n[cfg->n_routes].prefix, prefix, sizeof(n->prefix));
    ck_strlcpy(n[cfg->n_routes].principal, principal, sizeof(n->principal));
    ck_strlcpy(n[cfg->n_routes].kmm, "127.0.0.1:1293", sizeof(n->kmm));
    n[cfg->n_routes].sig_port = 4500;
    cfg->n_routes++;
    return 0;
}

static void
w_phone_init(struct world *w, const char *name, const char *principal, const char *number,
             int core, uint32_t spi, uint16_t port)
{
    struct w_phone *ph = &w->ph[w->n_ph++];

    memset(ph, 0, sizeof(*ph));
    ph->name = name;
    ph->principal = principal;
    ph->number = number;
    ph->core = core;
    ph->spi = spi;
    ph->media_port = port;
    ph->sig_port = (uint16_t)(port + 1);
    ph->next_txid = 1;
}

/* The world; sgcp selects call_mode = sgcp on both controllers; escrow on CA when escrow. */
static int
w_init(struct world *w, bool sgcp, bool escrow, int64_t retry_ms, int tries)
{
    struct cms_call_io io;

    memset(w, 0, sizeof(*w));
    if ((w->q = calloc(W_QUEUE, sizeof(*w->q))) == NULL)
        return -1;
    w->now = INT64_C(1767225600000);
    for (int i = 0; i < 2; i++) {
        cms_config_init(&w->cfg[i]);
        w->cfg[i].call_mode = sgcp ? CMS_CALL_SGCP : CMS_CALL_NCS;
        w->cfg[i].call_retry_ms = retry_ms;
        w->cfg[i].call_tries = tries;
    }
    if (w_add_line(&w->cfg[0], "5551001", "mta/a@R", "0011223344aa", false) != 0 ||
        w_add_line(&w->cfg[0], "5551002", "mta/a2@R", "", false) != 0 ||
        w_add_line(&w->cfg[0], "5559000", "mg/gw@R", "", true) != 0 ||
        w_add_route(&w->cfg[0], "5552", "cms/cb@R") != 0 ||
        w_add_line(&w->cfg[1], "5552001", "mta/b@R", "0011223344bb", false) != 0 ||
        w_add_route(&w->cfg[1], "5551", "cms/ca@R") != 0)
        return -1;
    for (int i = 0; i < 2; i++) {
        w_args[i].w = w;
        w_args[i].core = i;
        memset(&io, 0, sizeof(io));
        io.send_sa = w_send_sa;
        io.peer_command = w_peer_command;
        io.escrow = i == 0 && escrow ? w_escrow : NULL;
        io.log = w_log;
        io.arg = &w_args[i];
        if (cms_call_core_new(&w->cfg[i], i == 0 ? "cms@ca" : "cms@cb", &io, &w->core[i]) != 0)
            return -1;
    }
    w_phone_init(w, "a", "mta/a@R", "5551001", 0, 0x1001, 40000);
    w_phone_init(w, "a2", "mta/a2@R", "5551002", 0, 0x1002, 40010);
    w_phone_init(w, "gw", "mg/gw@R", "5559000", 0, 0x1003, 40020);
    w_phone_init(w, "b", "mta/b@R", "5552001", 1, 0x2001, 50000);
    /* Every end registers (RSIP), so the controllers know where to reach it. */
    for (size_t i = 0; i < w->n_ph; i++) {
        char text[128];
        int n = snprintf(text, sizeof(text), "RSIP %u aaln/1@%s MGCP 1.0 NCS 1.0\r\n",
                         w->ph[i].next_txid++, w->ph[i].name);
        w_phone_send(w, (int)i, text, (size_t)n);
    }
    w_pump(w);
    return 0;
}

/* A self-signed law-enforcement certificate (EC P-256, or RSA-2048 when rsa; no key usage)
 * valid around now_s, its key written to key_path (0600). Returns the PEM (malloc'd) or NULL. */
static char *
w_lea_make_key(int64_t now_s, const char *key_path, bool rsa)
{
    EVP_PKEY *key = rsa ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)
                        : EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *cert = X509_new();
    X509_NAME *n;
    BIO *b = BIO_new(BIO_s_mem());
    char *data, *pem = NULL;
    long len;
    FILE *f;

    if (key == NULL || cert == NULL || b == NULL)
        goto out;
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 11);
    X509_time_adj_ex(X509_getm_notBefore(cert), 0, 0, &(time_t){(time_t)(now_s - 86400)});
    X509_time_adj_ex(X509_getm_notAfter(cert), 30, 0, &(time_t){(time_t)now_s});
    n = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"LEA test", -1, -1,
                               0);
    X509_set_issuer_name(cert, n);
    X509_set_pubkey(cert, key);
    if (!X509_sign(cert, key, EVP_sha256()) || !PEM_write_bio_X509(b, cert))
        goto out;
    len = BIO_get_mem_data(b, &data);
    if ((pem = calloc(1, (size_t)len + 1)) == NULL)
        goto out;
    memcpy(pem, data, (size_t)len);
    if ((f = fopen(key_path, "w")) != NULL) {
        chmod(key_path, 0600);
        PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
        fclose(f);
    }
out:
    BIO_free(b);
    X509_free(cert);
    EVP_PKEY_free(key);
    return pem;
}

static char *
w_lea_make(int64_t now_s, const char *key_path)
{
    return w_lea_make_key(now_s, key_path, false);
}

static void
w_fini(struct world *w)
{
    for (int i = 0; i < 2; i++) {
        cms_call_core_free(w->core[i]);
        cms_config_free(&w->cfg[i]);
    }
    if (w->q != NULL) {
        ck_memzero(w->q, W_QUEUE * sizeof(*w->q));
        free(w->q);
    }
    ck_memzero(w->ph, sizeof(w->ph));
}

#endif
