/* The endpoint state machine (include/cablekey/endpoint.h): KMM AP exchanges with a CMS, the
 * ESP SA pair they key, and NCS/MGCP-shaped signaling inside it. No threads, no clock: every
 * call carries `now` (wall-clock ms), and datagrams leave through one send function. */
#include <errno.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/ap.h"
#include "cablekey/endpoint.h"
#include "cablekey/error.h"
#include "cablekey/esp.h"
#include "cablekey/krb5_asn1.h"
#include "cablekey/net.h"
#include "cablekey/principal.h"
#include "cablekey/util.h"

#define MAX_TRIES 32               /* AP Request transmissions remembered per exchange */
#define WAKEUP_MIN_INTERVAL_MS 1000
/* How long a server nonce (Wake Up, Rekey) is worth echoing: the server accepts its nonces for
 * one or two windows of solicited_key_timeout (30 s by default); later retries start afresh. */
#define SOLICITED_KEY_TIMEOUT_MS 30000
/* With ACK-required, signaling on a new SA waits this long after SP Recovered: the server answers
 * on the SA only once it has processed SP Recovered, which arrives on its other port and may be
 * handled by another thread after a command sent at the same moment. */
#define ACK_SETTLE_MS 50
#define MAX_TXID 999999999u
#define KMM_BUF 16384              /* AP Request: ticket (authorization data too), authenticator */
#define ESP_BUF (CK_ENDPOINT_MAX_SIGNAL + 128)
#define CK_ENDPOINT_MAX_NAME 255

enum why {
    WHY_START,                     /* first exchange, or after a failover or an expiry */
    WHY_REKEY,                     /* lifetime - grace reached, or bytes/sequence exhausted */
    WHY_REKEY_MSG,                 /* the server's Rekey */
    WHY_WAKEUP,
    WHY_LOST,                      /* signaling went unanswered: the SA is presumed lost */
};

struct sa_pair {
    bool live;
    size_t cms;
    struct ck_kmm_suite suite;
    ck_esp_sa *in, *out;
    uint32_t spi_in, spi_out;
    uint8_t rekey_key[CK_KMM_HMAC_KEY_LEN];
    int64_t expires_ms, rekey_at_ms;
    bool ack_pending;
    int64_t hold_until_ms;         /* no signaling before (ACK_SETTLE_MS after SP Recovered) */
    uint8_t sp_recovered[3 + CK_KMM_HMAC_LEN];
};

struct exchange {
    bool active;
    size_t cms;
    uint32_t nonce;
    uint32_t spi_in;
    bool reestablish;
    bool drop_old;                 /* a Rekey with Re-establish: keep no other SA afterwards */
    enum why why;
    int tries;
    int64_t started_ms;
    int64_t next_ms;
    /* Each transmission has a fresh authenticator (a retransmitted one would be a replay to the
     * server); an AP Reply may answer any of them. */
    int64_t ctime[MAX_TRIES];
    int32_t cusec[MAX_TRIES];
};

struct command {
    uint32_t txid;
    char *text;
    size_t len;
    bool sent;                     /* on the current SA */
    bool ever_sent;
    int tries;                     /* transmissions on the current SA */
    int64_t next_ms;
};

/* The response given to one server command, for its retransmissions (RFC 3435 §3.5). */
struct reply_entry {
    uint32_t txid;
    unsigned drops;                /* transmissions still to lose (ck_endpoint_drop_reply) */
    char *text;
    size_t len;
};

struct ck_endpoint {
    struct ck_endpoint_params p;
    char name[CK_ENDPOINT_MAX_NAME + 1];
    struct ck_endpoint_cms cms[CK_ENDPOINT_MAX_CMS];
    struct ck_kmm_suite suites[CK_KMM_MAX_SUITES];
    char host[256];
    ck_creds *creds;
    char service[CK_KMM_MAX_PRINCIPAL + 1];
    CK_TICKET *ticket;
    CK_PRINCIPAL_NAME *cname;
    uint8_t apreq_key[CK_KMM_HMAC_KEY_LEN];
    ck_esp_engine *eng;

    enum ck_endpoint_state state;
    size_t cur_cms;
    size_t failed_in_row;          /* CMSes given up on since the last protected packet */
    int lost_in_row;               /* re-establishments without a protected packet between */
    struct exchange ex;
    struct sa_pair sa;
    ck_esp_sa *prev_in;            /* the replaced SA's inbound half, until it expires */
    int64_t prev_in_expires_ms;
    int64_t last_wakeup_ms;
    bool have_last_rekey;
    uint32_t last_rekey_nonce;
    int64_t last_rekey_ts;

    struct command cmds[CK_ENDPOINT_MAX_PENDING];
    size_t n_cmds;
    uint32_t next_txid;
    bool rsip_queued, restarted;
    uint32_t rsip_txid;
    struct reply_entry replies[CK_ENDPOINT_REPLY_CACHE];
    size_t next_reply;             /* the slot the next answered command overwrites */
    unsigned drop_reply;           /* ck_endpoint_drop_reply during on_command_reply */
    struct ck_endpoint_stats st;
    char failure[256];
};

/* ---------------------------------------------------------------------------------------------
 * Small helpers.
 */

static void
event(ck_endpoint *ep, enum ck_endpoint_event ev, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
event(ck_endpoint *ep, enum ck_endpoint_event ev, const char *fmt, ...)
{
    char buf[256];
    va_list ap;

    if (ep->p.on_event == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    ep->p.on_event(ep->p.cb_arg, ev, buf);
}

static bool
same_addr(const struct sockaddr *a, socklen_t alen, const struct sockaddr *b, uint16_t port)
{
    if (a->sa_family != b->sa_family)
        return false;
    if (a->sa_family == AF_INET && alen >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_addr.s_addr == y->sin_addr.s_addr && ntohs(x->sin_port) == port;
    }
    if (a->sa_family == AF_INET6 && alen >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0 &&
               ntohs(x->sin6_port) == port;
    }
    return false;
}

static uint16_t
addr_port(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)(const void *)ss)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)(const void *)ss)->sin6_port);
}

static void
addr_with_port(const struct ck_endpoint_cms *c, uint16_t port, struct sockaddr_storage *out)
{
    *out = c->kmm;
    if (out->ss_family == AF_INET)
        ((struct sockaddr_in *)(void *)out)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)(void *)out)->sin6_port = htons(port);
}

static const char *
cms_name(const ck_endpoint *ep, size_t i, char *buf, size_t size)
{
    return ck_net_addr_format((const struct sockaddr *)&ep->cms[i].kmm, buf, size);
}

/* Which CMS (KMM address) a datagram came from, or -1. */
static int
kmm_source(const ck_endpoint *ep, const struct sockaddr *from, socklen_t len)
{
    for (size_t i = 0; i < ep->p.n_cms; i++)
        if (same_addr(from, len, (const struct sockaddr *)&ep->cms[i].kmm,
                      addr_port(&ep->cms[i].kmm)))
            return (int)i;
    return -1;
}

static int
sig_source(const ck_endpoint *ep, const struct sockaddr *from, socklen_t len)
{
    for (size_t i = 0; i < ep->p.n_cms; i++)
        if (same_addr(from, len, (const struct sockaddr *)&ep->cms[i].kmm, ep->cms[i].sig_port))
            return (int)i;
    return -1;
}

static int
send_to(ck_endpoint *ep, const struct sockaddr_storage *to, const uint8_t *buf, size_t len)
{
    socklen_t tl = to->ss_family == AF_INET ? (socklen_t)sizeof(struct sockaddr_in)
                                            : (socklen_t)sizeof(struct sockaddr_in6);

    if (ep->p.send != NULL)
        return ep->p.send(ep->p.send_arg, (const struct sockaddr *)to, tl, buf, len);
    if (sendto(ep->p.fd, buf, len, 0, (const struct sockaddr *)to, tl) < 0) {
        /* A full socket buffer or an ICMP error from an earlier datagram is a lost packet,
         * which the retry timers already handle. */
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNREFUSED ||
            errno == EHOSTUNREACH || errno == ENETUNREACH || errno == EINTR)
            return 0;
        return ck_error_set(CK_ERR_IO, "sendto: %s", strerror(errno));
    }
    return 0;
}

static int
random_spi(const ck_endpoint *ep, uint32_t *spi)
{
    int rc;

    for (int i = 0; i < 64; i++) {
        if ((rc = ck_random_bytes(spi, sizeof(*spi))) != 0)
            return rc;
        if (*spi < 256 || (ep->sa.live && *spi == ep->sa.spi_in) ||
            (ep->prev_in != NULL && *spi == ck_esp_sa_spi(ep->prev_in)))
            continue;
        return 0;
    }
    return ck_error_set(CK_ERR_CRYPTO, "no usable SPI");
}

/* ---------------------------------------------------------------------------------------------
 * Suites.
 */

int
ck_endpoint_suites_parse(const char *list, struct ck_kmm_suite *out, size_t max, size_t *n)
{
    char name[32];
    const char *p = list;
    int rc;

    *n = 0;
    while (*p != '\0') {
        size_t l = strcspn(p, ", \t");
        if (l == 0) {
            p++;
            continue;
        }
        if (l >= sizeof(name))
            return ck_error_set(CK_ERR_UNSUPPORTED, "unknown suite '%.*s'", (int)l, p);
        memcpy(name, p, l);
        name[l] = '\0';
        if (*n >= max)
            return ck_error_set(CK_ERR_LIMIT, "more than %zu suites", max);
        if ((rc = ck_kmm_suite_from_short_name(CK_KMM_DOI_IPSEC, name, &out[*n])) != 0)
            return ck_error_set(rc, "unknown suite '%s' (sha1-aes128, sha1-3des, sha1-null, "
                                    "md5-aes128, md5-3des, md5-null)", name);
        (*n)++;
        p += l;
    }
    if (*n == 0)
        return ck_error_set(CK_ERR_INVAL, "empty suite list");
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Life cycle.
 */

static void
sa_clear(struct sa_pair *sa)
{
    ck_esp_sa_free(sa->in);
    ck_esp_sa_free(sa->out);
    ck_memzero(sa, sizeof(*sa));
}

/* A command may carry a call's sub-key (a controller's XSET): its text is wiped when dropped. */
static void
command_drop(ck_endpoint *ep, size_t i)
{
    ck_free_secret(ep->cmds[i].text, ep->cmds[i].len);
    memmove(&ep->cmds[i], &ep->cmds[i + 1], (ep->n_cmds - i - 1) * sizeof(ep->cmds[0]));
    ep->n_cmds--;
}

void
ck_endpoint_free(ck_endpoint *ep)
{
    if (ep == NULL)
        return;
    sa_clear(&ep->sa);
    ck_esp_sa_free(ep->prev_in);
    ck_esp_engine_free(ep->eng);
    ck_creds_free(ep->creds);
    CK_TICKET_free(ep->ticket);
    CK_PRINCIPAL_NAME_free(ep->cname);
    while (ep->n_cmds > 0)
        command_drop(ep, ep->n_cmds - 1);
    for (size_t i = 0; i < CK_ENDPOINT_REPLY_CACHE; i++)
        ck_free_secret(ep->replies[i].text, ep->replies[i].len);
    ck_memzero(ep, sizeof(*ep));
    free(ep);
}

int
ck_endpoint_new(const struct ck_endpoint_params *p, ck_endpoint **out)
{
    static const struct ck_kmm_suite dflt[] = {
        {CK_KMM_AUTH_HMAC_SHA1_96, CK_KMM_ENC_AES128},
        {CK_KMM_AUTH_HMAC_SHA1_96, CK_KMM_ENC_3DES},
        {CK_KMM_AUTH_HMAC_SHA1_96, CK_KMM_ENC_NULL},
    };
    ck_endpoint *ep = NULL;
    const ck_principal *c;
    int rc;

    *out = NULL;
    if (p == NULL || p->creds == NULL || p->cms == NULL || p->n_cms == 0)
        return ck_error_set(CK_ERR_INVAL, "endpoint: credentials and a CMS are required");
    if (p->n_cms > CK_ENDPOINT_MAX_CMS)
        return ck_error_set(CK_ERR_LIMIT, "endpoint: more than %d CMS", CK_ENDPOINT_MAX_CMS);
    if (p->n_suites > CK_KMM_MAX_SUITES)
        return ck_error_set(CK_ERR_LIMIT, "endpoint: more than %d suites", CK_KMM_MAX_SUITES);
    if ((ep = calloc(1, sizeof(*ep))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "endpoint");
    ep->p = *p;
    if (ep->p.suites == NULL || ep->p.n_suites == 0) {
        ep->p.suites = dflt;
        ep->p.n_suites = sizeof(dflt) / sizeof(dflt[0]);
    }
    for (size_t i = 0; i < ep->p.n_suites; i++) {
        if (!ck_kmm_suite_supported(CK_KMM_DOI_IPSEC, ep->p.suites[i])) {
            rc = ck_error_set(CK_ERR_UNSUPPORTED, "endpoint: suite %s is not implemented",
                              ck_kmm_suite_short_name(CK_KMM_DOI_IPSEC, ep->p.suites[i]));
            goto fail;
        }
        ep->suites[i] = ep->p.suites[i];
    }
    ep->p.suites = ep->suites;
    for (size_t i = 0; i < p->n_cms; i++) {
        sa_family_t f = p->cms[i].kmm.ss_family;
        if (f != AF_INET && f != AF_INET6) {
            rc = ck_error_set(CK_ERR_INVAL, "endpoint: CMS %zu is not an IP address", i + 1);
            goto fail;
        }
        ep->cms[i] = p->cms[i];
        if (ep->cms[i].sig_port == 0)
            ep->cms[i].sig_port = CK_ENDPOINT_DEFAULT_SIG_PORT;
    }
    ep->p.cms = ep->cms;
    if (ep->p.backoff_nominal_ms <= 0)
        ep->p.backoff_nominal_ms = CK_KDC_DEFAULT_TIMEOUT_MS;
    if (ep->p.backoff_max_ms <= 0)
        ep->p.backoff_max_ms = CK_KDC_DEFAULT_MAX_TIMEOUT_MS;
    if (ep->p.backoff_tries <= 0)
        ep->p.backoff_tries = CK_KDC_DEFAULT_MAX_TRIES;
    if (ep->p.backoff_tries > MAX_TRIES)
        ep->p.backoff_tries = MAX_TRIES;
    if (ep->p.sig_timeout_ms <= 0)
        ep->p.sig_timeout_ms = CK_ENDPOINT_DEFAULT_SIG_TIMEOUT_MS;
    if (ep->p.sig_tries <= 0)
        ep->p.sig_tries = CK_ENDPOINT_DEFAULT_SIG_TRIES;
    if (ep->p.clockskew <= 0)
        ep->p.clockskew = CK_ENDPOINT_DEFAULT_CLOCKSKEW;
    if (ck_strlcpy(ep->host, p->host != NULL ? p->host : "localhost", sizeof(ep->host)) >=
            sizeof(ep->host) ||
        strpbrk(ep->host, " \r\n") != NULL) {
        rc = ck_error_set(CK_ERR_INVAL, "endpoint: bad host name");
        goto fail;
    }
    ep->p.host = ep->host;
    {
        int n = p->endpoint_name != NULL
                    ? snprintf(ep->name, sizeof(ep->name), "%s", p->endpoint_name)
                    : snprintf(ep->name, sizeof(ep->name), "aaln/1@%s", ep->host);
        if (n <= 0 || (size_t)n >= sizeof(ep->name) || strpbrk(ep->name, " \t\r\n") != NULL) {
            rc = ck_error_set(CK_ERR_INVAL, "endpoint: bad endpoint name");
            goto fail;
        }
    }
    ep->p.endpoint_name = ep->name;
    if ((rc = ck_creds_copy(p->creds, &ep->creds)) != 0)
        goto fail;
    ep->p.creds = ep->creds;
    if ((rc = ck_principal_unparse_buf(ep->creds->server, 0, ep->service, sizeof(ep->service),
                                       NULL)) != 0 ||
        (rc = ck_asn1_ticket_decode(ep->creds->ticket, ep->creds->ticket_len, &ep->ticket)) != 0)
        goto fail;
    c = ep->creds->client;
    if ((rc = ck_asn1_principal_new(c->name_type, (const char *const *)c->components,
                                    c->n_components, &ep->cname)) != 0 ||
        (rc = ck_kmm_hmac_key(CK_KMM_HMAC_AP_REQ, &ep->creds->session_key, ep->apreq_key)) != 0 ||
        (rc = ck_esp_engine_new(&ep->eng)) != 0)
        goto fail;
    if (ck_random_bytes(&ep->next_txid, sizeof(ep->next_txid)) != 0)
        ep->next_txid = 1;
    ep->next_txid = ep->next_txid % 1000000 + 1;
    ep->state = CK_ENDPOINT_IDLE;
    *out = ep;
    return 0;
fail:
    ck_endpoint_free(ep);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * AP exchange.
 */

static int
send_ap_req(ck_endpoint *ep, int64_t now)
{
    struct exchange *x = &ep->ex;
    struct ck_kmm_msg m;
    uint8_t *der = NULL, buf[KMM_BUF];
    size_t der_len = 0, len;
    char name[CK_NET_ADDRSTRLEN];
    int rc, i = x->tries;

    if (x->nonce != 0 && now - x->started_ms >= SOLICITED_KEY_TIMEOUT_MS)
        x->nonce = 0;
    if ((rc = ck_ap_req_build(ep->ticket, &ep->creds->session_key, ep->creds->client->realm,
                              ep->cname, CK_AP_OPT_MUTUAL_REQUIRED, NULL, CK_KU_AP_REQ_AUTH, NULL,
                              NULL, &x->ctime[i], &x->cusec[i], &der, &der_len)) != 0)
        return rc;
    memset(&m, 0, sizeof(m));
    m.type = CK_KMM_AP_REQ;
    m.doi = CK_KMM_DOI_IPSEC;
    m.version = CK_KMM_VERSION;
    m.krb = der;
    m.krb_len = der_len;
    m.server_nonce = x->nonce;
    m.spi = x->spi_in;
    m.n_suites = (uint8_t)ep->p.n_suites;
    memcpy(m.suites, ep->p.suites, ep->p.n_suites * sizeof(m.suites[0]));
    m.reestablish = x->reestablish ? 1 : 0;
    if ((rc = ck_kmm_encode(&m, buf, sizeof(buf), &len)) != 0 ||
        (rc = ck_kmm_seal(buf, len, ep->apreq_key)) != 0)
        goto out;
    if ((rc = send_to(ep, &ep->cms[x->cms].kmm, buf, len)) != 0)
        goto out;
    x->tries++;
    x->next_ms = now + ck_kdc_backoff_ms(ep->p.backoff_nominal_ms, ep->p.backoff_max_ms, i);
    ep->st.ap_req_sent++;
    event(ep, CK_ENDPOINT_EV_AP_REQ_SENT, "cms %s nonce %u reestablish %d try %d",
          cms_name(ep, x->cms, name, sizeof(name)), x->nonce, m.reestablish, x->tries);
out:
    ck_asn1_free_der(der, der_len);
    return rc;
}

/* Starts (or restarts) an exchange with CMS cms. */
static int
exchange_start(ck_endpoint *ep, size_t cms, uint32_t nonce, bool reestablish, enum why why,
               int64_t now)
{
    struct exchange *x = &ep->ex;
    int rc;

    memset(x, 0, sizeof(*x));
    if ((rc = random_spi(ep, &x->spi_in)) != 0)
        return rc;
    x->active = true;
    x->cms = cms;
    x->nonce = nonce;
    x->reestablish = reestablish;
    x->why = why;
    x->started_ms = now;
    ep->cur_cms = cms;
    if (!ep->sa.live)
        ep->state = CK_ENDPOINT_KEYING;
    return send_ap_req(ep, now);
}

static void
fail_endpoint(ck_endpoint *ep, const char *why)
{
    ep->state = CK_ENDPOINT_FAILED;
    ep->ex.active = false;
    sa_clear(&ep->sa);
    snprintf(ep->failure, sizeof(ep->failure), "%s", why);
    event(ep, CK_ENDPOINT_EV_FAILED, "%s", why);
}

/* The CMS in use stopped answering: the next one, with no SA and a fresh exchange. */
static int
failover(ck_endpoint *ep, int64_t now)
{
    char name[CK_NET_ADDRSTRLEN];
    size_t next;

    ep->failed_in_row++;
    if (ep->failed_in_row >= ep->p.n_cms) {
        char why[200];
        snprintf(why, sizeof(why), "no CMS answered (last tried %s)",
                 cms_name(ep, ep->cur_cms, name, sizeof(name)));
        fail_endpoint(ep, why);
        return 0;
    }
    next = (ep->cur_cms + 1) % ep->p.n_cms;
    ep->st.failovers++;
    event(ep, CK_ENDPOINT_EV_FAILOVER, "cms %s", cms_name(ep, next, name, sizeof(name)));
    sa_clear(&ep->sa);
    ck_esp_sa_free(ep->prev_in);
    ep->prev_in = NULL;
    ep->lost_in_row = 0;
    for (size_t i = 0; i < ep->n_cmds; i++) {
        ep->cmds[i].sent = false;
        ep->cmds[i].tries = 0;
    }
    ep->state = CK_ENDPOINT_KEYING;
    return exchange_start(ep, next, 0, false, WHY_START, now);
}

static bool
suite_offered(const ck_endpoint *ep, struct ck_kmm_suite s)
{
    for (size_t i = 0; i < ep->p.n_suites; i++)
        if (ep->p.suites[i].auth == s.auth && ep->p.suites[i].enc == s.enc)
            return true;
    return false;
}

static void
refuse(ck_endpoint *ep, const char *why)
{
    ep->st.kmm_ignored++;
    event(ep, CK_ENDPOINT_EV_REFUSED, "%s", why);
}

static int send_pending(ck_endpoint *ep, int64_t now);

static int
make_sa(const struct ck_kmm_keys *k, uint32_t spi, bool inbound, int64_t expires_s,
        ck_esp_sa **out)
{
    struct ck_esp_sa_params sp = {
        .spi = spi,
        .enc = k->suite.enc,
        .auth = k->suite.auth,
        .enc_key = inbound ? k->enc_s2c : k->enc_c2s,
        .enc_key_len = k->enc_len,
        .auth_key = inbound ? k->auth_s2c : k->auth_c2s,
        .auth_key_len = k->auth_len,
        .expires = expires_s,
    };
    return ck_esp_sa_new(&sp, out);
}

static int
on_ap_rep(ck_endpoint *ep, const uint8_t *buf, const struct ck_kmm_msg *m, size_t src,
          int64_t now)
{
    struct exchange *x = &ep->ex;
    ck_ap_rep_result res;
    struct ck_kmm_keys keys;
    struct sa_pair sa;
    uint8_t key[CK_KMM_HMAC_KEY_LEN];
    char name[CK_NET_ADDRSTRLEN];
    bool ok = false, had_sa = ep->sa.live;
    int64_t life_ms, grace_ms;
    int rc = 0;

    memset(&res, 0, sizeof(res));
    memset(&keys, 0, sizeof(keys));
    memset(&sa, 0, sizeof(sa));
    if (!x->active || src != x->cms || m->doi != CK_KMM_DOI_IPSEC) {
        refuse(ep, "AP Reply with no AP Request outstanding to its sender");
        return 0;
    }
    /* Latest authenticator first: it is the one most likely answered. */
    for (int i = x->tries - 1; i >= 0 && !ok; i--) {
        ck_ap_rep_result_clear(&res);
        ok = ck_ap_rep_verify(m->krb, m->krb_len, &ep->creds->session_key, x->ctime[i],
                              x->cusec[i], &res) == 0;
    }
    if (!ok) {
        refuse(ep, "AP Reply: KRB AP-REP does not verify");
        goto out;
    }
    if (!res.has_subkey) {
        refuse(ep, "AP Reply without a sub-key");
        goto out;
    }
    if (ck_kmm_hmac_key(CK_KMM_HMAC_AP_REP, &res.subkey, key) != 0 ||
        ck_kmm_verify(buf, m, key) != 0) {
        refuse(ep, "AP Reply: bad HMAC");
        goto out;
    }
    if (m->n_suites != 1 || !suite_offered(ep, m->suites[0])) {
        refuse(ep, "AP Reply: not exactly one suite that was offered");
        goto out;
    }
    if (m->spi < 256 || m->lifetime == 0) {
        refuse(ep, "AP Reply: bad SPI or zero lifetime");
        goto out;
    }
    if ((rc = ck_kmm_derive_ipsec(&res.subkey, m->suites[0], x->spi_in, m->spi, &keys)) != 0)
        goto out;
    life_ms = (int64_t)m->lifetime * 1000;
    grace_ms = (int64_t)m->grace * 1000;
    sa.live = true;
    sa.cms = src;
    sa.suite = m->suites[0];
    sa.spi_in = x->spi_in;
    sa.spi_out = m->spi;
    sa.expires_ms = now + life_ms;
    sa.rekey_at_ms = now + (grace_ms < life_ms ? life_ms - grace_ms : life_ms / 2);
    if ((rc = make_sa(&keys, sa.spi_in, true, (now + life_ms) / 1000 + 1, &sa.in)) != 0 ||
        (rc = make_sa(&keys, sa.spi_out, false, (now + life_ms) / 1000 + 1, &sa.out)) != 0 ||
        (rc = ck_kmm_hmac_key(CK_KMM_HMAC_REKEY, &res.subkey, sa.rekey_key)) != 0)
        goto out;
    if (m->ack_required) {
        uint8_t sk[CK_KMM_HMAC_KEY_LEN];

        sa.sp_recovered[0] = CK_KMM_SP_RECOVERED;
        sa.sp_recovered[1] = CK_KMM_DOI_IPSEC;
        sa.sp_recovered[2] = CK_KMM_VERSION;
        rc = ck_kmm_hmac_key(CK_KMM_HMAC_SP_RECOVERED, &res.subkey, sk);
        if (rc == 0)
            rc = ck_kmm_sp_recovered_seal(sa.sp_recovered, m->hmac, sk);
        ck_memzero(sk, sizeof(sk));
        if (rc != 0)
            goto out;
        sa.ack_pending = true;
        sa.hold_until_ms = now + ACK_SETTLE_MS;
    }
    /* The replaced SA's inbound half keeps accepting what the server already sent on it,
     * unless the server asked us to drop every other SA with it. */
    ck_esp_sa_free(ep->prev_in);
    ep->prev_in = NULL;
    if (ep->sa.live && !m->reestablish && !x->drop_old && ep->sa.cms == src) {
        ep->prev_in = ep->sa.in;
        ep->prev_in_expires_ms = ep->sa.expires_ms;
        ep->sa.in = NULL;
    }
    sa_clear(&ep->sa);
    ep->sa = sa;
    memset(&sa, 0, sizeof(sa));
    x->active = false;
    ep->state = CK_ENDPOINT_ESTABLISHED;
    ep->st.exchanges++;
    if (x->why == WHY_LOST)
        ep->st.reestablished++;
    else if (had_sa || x->why == WHY_REKEY || x->why == WHY_REKEY_MSG)
        ep->st.rekeys++;
    event(ep, CK_ENDPOINT_EV_ESTABLISHED,
          "cms %s suite %s spi in 0x%08x out 0x%08x lifetime %u grace %u%s",
          cms_name(ep, src, name, sizeof(name)),
          ck_kmm_suite_short_name(CK_KMM_DOI_IPSEC, ep->sa.suite), ep->sa.spi_in,
          ep->sa.spi_out, m->lifetime, m->grace, m->ack_required ? " ack-required" : "");
    if (ep->sa.ack_pending &&
        (rc = send_to(ep, &ep->cms[src].kmm, ep->sa.sp_recovered, sizeof(ep->sa.sp_recovered))) !=
            0)
        goto out;
    /* RSIP goes first (sent at once, before what was queued): it announces the endpoint to
     * the call agent. */
    if (!ep->p.no_rsip && !ep->rsip_queued) {
        ep->rsip_queued = true;
        if ((rc = ck_endpoint_send_command(ep, "RSIP", "RM: restart\r\n", now,
                                           &ep->rsip_txid)) != 0)
            goto out;
    }
    rc = send_pending(ep, now);
out:
    sa_clear(&sa);
    ck_kmm_keys_clear(&keys);
    ck_memzero(key, sizeof(key));
    ck_ap_rep_result_clear(&res);
    return rc;
}

static void
on_error_reply(ck_endpoint *ep, const struct ck_kmm_msg *m, size_t src)
{
    CK_KRB_ERROR_MSG *e = NULL;
    int code = -1;

    ep->st.error_replies++;
    if (ck_asn1_krb_error_decode(m->krb, m->krb_len, &e) == 0)
        code = e->error_code;
    CK_KRB_ERROR_MSG_free(e);
    event(ep, CK_ENDPOINT_EV_ERROR_REPLY, "KRB-ERROR %d", code);
    /* Advisory only (it carries no HMAC): the exchange keeps its retries and failover. */
    if (ep->ex.active && src == ep->ex.cms)
        snprintf(ep->failure, sizeof(ep->failure), "last Error Reply: KRB-ERROR %d", code);
}

static int
on_wakeup(ck_endpoint *ep, const struct ck_kmm_msg *m, size_t src, int64_t now)
{
    if (m->doi != CK_KMM_DOI_IPSEC || strcmp(m->server_principal, ep->service) != 0) {
        refuse(ep, "Wake Up for another service");
        return 0;
    }
    if (ep->state == CK_ENDPOINT_FAILED)
        return 0;
    if (ep->ex.active && ep->ex.cms == src && ep->ex.nonce == m->server_nonce) {
        ep->st.kmm_ignored++;
        return 0;
    }
    /* Wake Ups are not authenticated: at most one AP Request per second because of them. */
    if (ep->last_wakeup_ms != 0 && now - ep->last_wakeup_ms < WAKEUP_MIN_INTERVAL_MS) {
        refuse(ep, "Wake Up too soon after the last one");
        return 0;
    }
    ep->last_wakeup_ms = now;
    ep->st.wakeups++;
    /* The server woke us because it has no SA for what we send: it lost ours. */
    return exchange_start(ep, src, m->server_nonce, ep->sa.live && ep->sa.cms == src,
                          WHY_WAKEUP, now);
}

static int
on_rekey(ck_endpoint *ep, const uint8_t *buf, const struct ck_kmm_msg *m, size_t src,
         int64_t now)
{
    int64_t now_s = now / 1000;
    int rc;

    if (!ep->sa.live || src != ep->sa.cms || m->doi != CK_KMM_DOI_IPSEC) {
        refuse(ep, "Rekey without an SA with its sender");
        return 0;
    }
    if (ck_kmm_verify(buf, m, ep->sa.rekey_key) != 0) {
        refuse(ep, "Rekey: bad HMAC");
        return 0;
    }
    if (strcmp(m->server_principal, ep->service) != 0) {
        refuse(ep, "Rekey for another service");
        return 0;
    }
    if (m->timestamp < now_s - ep->p.clockskew || m->timestamp > now_s + ep->p.clockskew) {
        refuse(ep, "Rekey: timestamp outside the clock skew");
        return 0;
    }
    if (ep->have_last_rekey && ep->last_rekey_nonce == m->server_nonce &&
        ep->last_rekey_ts == m->timestamp) {
        refuse(ep, "Rekey: a repeat of the last one");
        return 0;
    }
    ep->have_last_rekey = true;
    ep->last_rekey_nonce = m->server_nonce;
    ep->last_rekey_ts = m->timestamp;
    ep->st.rekey_msgs++;
    /* We still hold the SA, so our AP Request is no re-establishment; the Rekey's flag asks us
     * to keep no other SA with this server once the new one is up. */
    if ((rc = exchange_start(ep, src, m->server_nonce, false, WHY_REKEY_MSG, now)) == 0)
        ep->ex.drop_old = m->reestablish != 0;
    return rc;
}

static int
on_kmm(ck_endpoint *ep, const uint8_t *buf, size_t len, size_t src, int64_t now)
{
    struct ck_kmm_msg m;

    if (ck_kmm_decode(buf, len, &m) != 0) {
        ep->st.dropped++;
        return 0;
    }
    switch (m.type) {
    case CK_KMM_AP_REP: return on_ap_rep(ep, buf, &m, src, now);
    case CK_KMM_WAKE_UP: return on_wakeup(ep, &m, src, now);
    case CK_KMM_REKEY: return on_rekey(ep, buf, &m, src, now);
    case CK_KMM_ERROR_REPLY: on_error_reply(ep, &m, src); return 0;
    default: refuse(ep, "KMM message an endpoint does not take"); return 0;
    }
}

/* ---------------------------------------------------------------------------------------------
 * Signaling.
 */

static int
esp_send(ck_endpoint *ep, const char *text, size_t len, int64_t now)
{
    uint8_t inner[ESP_BUF], pkt[ESP_BUF + 128];
    size_t inner_len, pkt_len;
    struct sockaddr_storage to;
    int rc;

    /* A command that came in on an old SA while no current one exists goes unanswered; the
     * server retransmits it once keys are up again. */
    if (!ep->sa.live)
        return 0;
    if ((rc = ck_esp_udp_wrap(CK_ENDPOINT_MGCP_GW_PORT, CK_ENDPOINT_MGCP_CA_PORT,
                              (const uint8_t *)text, len, inner, sizeof(inner), &inner_len)) != 0)
        return rc;
    rc = ck_esp_protect(ep->eng, ep->sa.out, CK_ESP_NEXT_HEADER_UDP, inner, inner_len, now / 1000,
                        pkt, sizeof(pkt), &pkt_len);
    ck_memzero(inner, inner_len); /* the plaintext may carry a call's sub-key */
    if (rc != 0)
        return rc;
    addr_with_port(&ep->cms[ep->sa.cms], ep->cms[ep->sa.cms].sig_port, &to);
    ep->st.esp_out++;
    return send_to(ep, &to, pkt, pkt_len);
}

/* Re-keys now because the outbound SA is used up (bytes, sequence numbers or time). */
static int
rekey_now(ck_endpoint *ep, enum why why, int64_t now)
{
    if (ep->ex.active)
        return 0;
    return exchange_start(ep, ep->sa.cms, 0, false, why, now);
}

static int
send_command_now(ck_endpoint *ep, struct command *c, int64_t now)
{
    int rc = esp_send(ep, c->text, c->len, now);

    if (rc == CK_ERR_EXPIRED) {
        c->sent = false;
        return rekey_now(ep, WHY_REKEY, now);
    }
    if (rc != 0)
        return rc;
    if (!c->ever_sent)
        ep->st.commands_sent++;
    else
        ep->st.retransmissions++;
    c->ever_sent = true;
    c->sent = true;
    c->tries++;
    c->next_ms = now + ep->p.sig_timeout_ms;
    return 0;
}

static int
send_pending(ck_endpoint *ep, int64_t now)
{
    int rc;

    if (!ep->sa.live || now < ep->sa.hold_until_ms)
        return 0;
    ep->sa.hold_until_ms = 0;
    for (size_t i = 0; i < ep->n_cmds; i++) {
        if (!ep->cmds[i].sent && (rc = send_command_now(ep, &ep->cmds[i], now)) != 0)
            return rc;
        if (!ep->sa.live)
            break;
    }
    return 0;
}

int
ck_endpoint_send_command(ck_endpoint *ep, const char *verb, const char *params, int64_t now,
                         uint32_t *txid)
{
    struct command *c;
    char buf[CK_ENDPOINT_MAX_SIGNAL + 1];
    int n;

    if (ep->n_cmds >= CK_ENDPOINT_MAX_PENDING)
        return ck_error_set(CK_ERR_LIMIT, "more than %d unanswered commands",
                            CK_ENDPOINT_MAX_PENDING);
    if (verb == NULL || *verb == '\0' || strpbrk(verb, " \r\n") != NULL)
        return ck_error_set(CK_ERR_INVAL, "bad command verb");
    n = snprintf(buf, sizeof(buf), "%s %u %s MGCP 1.0 NCS 1.0\r\n%s", verb, ep->next_txid,
                 ep->name, params != NULL ? params : "");
    if (n < 0 || (size_t)n >= sizeof(buf))
        return ck_error_set(CK_ERR_LIMIT, "command longer than %d bytes", CK_ENDPOINT_MAX_SIGNAL);
    c = &ep->cmds[ep->n_cmds];
    memset(c, 0, sizeof(*c));
    c->text = ck_memdup(buf, (size_t)n);
    ck_memzero(buf, sizeof(buf)); /* it may hold a call's sub-key */
    if (c->text == NULL)
        return ck_error_set(CK_ERR_NOMEM, "command");
    c->len = (size_t)n;
    c->txid = ep->next_txid;
    ep->n_cmds++;
    ep->next_txid = ep->next_txid >= MAX_TXID ? 1 : ep->next_txid + 1;
    if (txid != NULL)
        *txid = c->txid;
    if (ep->sa.live && now >= ep->sa.hold_until_ms)
        return send_command_now(ep, c, now);
    return 0;
}

void
ck_endpoint_drop_reply(ck_endpoint *ep, unsigned times)
{
    ep->drop_reply = times;
}

int
ck_endpoint_signal_parse(const uint8_t *data, size_t len, struct ck_endpoint_signal *out)
{
    const char *text = (const char *)data, *eol, *sp1, *sp2;
    size_t line, vlen;

    memset(out, 0, sizeof(*out));
    if (len == 0 || len > CK_ENDPOINT_MAX_SIGNAL || memchr(data, '\0', len) != NULL)
        return ck_error_set(CK_ERR_DECODE, "signaling: empty, too long or binary");
    eol = memchr(text, '\r', len);
    line = eol != NULL ? (size_t)(eol - text) : len;
    if (eol != NULL && (line + 1 >= len || text[line + 1] != '\n'))
        return ck_error_set(CK_ERR_DECODE, "signaling: bare CR");
    if ((sp1 = memchr(text, ' ', line)) == NULL)
        return ck_error_set(CK_ERR_DECODE, "signaling: no transaction id");
    vlen = (size_t)(sp1 - text);
    sp2 = memchr(sp1 + 1, ' ', line - vlen - 1);
    if (sp2 == NULL)
        sp2 = text + line;
    {
        const char *t = sp1 + 1;
        size_t tl = (size_t)(sp2 - t);
        uint64_t v = 0;

        if (tl == 0 || tl > 9)
            return ck_error_set(CK_ERR_DECODE, "signaling: bad transaction id");
        for (size_t i = 0; i < tl; i++) {
            if (t[i] < '0' || t[i] > '9')
                return ck_error_set(CK_ERR_DECODE, "signaling: bad transaction id");
            v = v * 10 + (uint64_t)(t[i] - '0');
        }
        if (v == 0 || v > MAX_TXID)
            return ck_error_set(CK_ERR_DECODE, "signaling: transaction id out of range");
        out->txid = (uint32_t)v;
    }
    if (vlen == 3 && text[0] >= '0' && text[0] <= '9' && text[1] >= '0' && text[1] <= '9' &&
        text[2] >= '0' && text[2] <= '9') {
        out->is_response = true;
        out->code = (text[0] - '0') * 100 + (text[1] - '0') * 10 + (text[2] - '0');
        return 0;
    }
    if (vlen == 0 || vlen >= sizeof(out->verb))
        return ck_error_set(CK_ERR_DECODE, "signaling: bad verb");
    for (size_t i = 0; i < vlen; i++)
        if (text[i] < 'A' || text[i] > 'Z')
            return ck_error_set(CK_ERR_DECODE, "signaling: bad verb");
    memcpy(out->verb, text, vlen);
    out->verb[vlen] = '\0';
    return 0;
}

/* The cached response to server command txid, or NULL. */
static struct reply_entry *
reply_find(ck_endpoint *ep, uint32_t txid)
{
    for (size_t i = 0; i < CK_ENDPOINT_REPLY_CACHE; i++)
        if (ep->replies[i].text != NULL && ep->replies[i].txid == txid)
            return &ep->replies[i];
    return NULL;
}

/* Remembers the response to txid, replacing the oldest one. A failed allocation only costs a
 * retransmission a second callback. */
static void
reply_remember(ck_endpoint *ep, uint32_t txid, const char *text, size_t len, unsigned drops)
{
    struct reply_entry *r = &ep->replies[ep->next_reply];
    char *copy = ck_memdup(text, len);

    if (copy == NULL)
        return;
    ck_free_secret(r->text, r->len);
    r->txid = txid;
    r->drops = drops;
    r->text = copy;
    r->len = len;
    ep->next_reply = (ep->next_reply + 1) % CK_ENDPOINT_REPLY_CACHE;
}

/* A command from the server: the callbacks see it once, every retransmission (same txid) gets
 * the response given the first time. */
static int
on_server_command(ck_endpoint *ep, const struct ck_endpoint_signal *sig, const uint8_t *data,
                  size_t len, int64_t now)
{
    struct reply_entry *cached = reply_find(ep, sig->txid);
    ck_writer w;
    char dflt[32];
    const char *text = dflt;
    size_t tlen;
    int n, rc;

    if (cached != NULL) {
        ep->st.commands_repeated++;
        if (cached->drops > 0) {
            cached->drops--;
            return 0;
        }
        return esp_send(ep, cached->text, cached->len, now);
    }
    ep->st.commands_received++;
    if (strcmp(sig->verb, "RQNT") == 0)
        ep->st.rqnt_received++;
    if (ep->p.on_command != NULL)
        ep->p.on_command(ep->p.cb_arg, sig->verb, sig->txid, (const char *)data, len);
    n = snprintf(dflt, sizeof(dflt), "200 %u OK\r\n", sig->txid);
    tlen = (size_t)n;
    /* The reply may carry a call's SDP: not secret, but wiped all the same. */
    ck_writer_init(&w, CK_ENDPOINT_MAX_SIGNAL, true);
    ep->drop_reply = 0;
    if (ep->p.on_command_reply != NULL) {
        ep->p.on_command_reply(ep->p.cb_arg, sig->verb, sig->txid, (const char *)data, len, &w);
        if (w.len > 0) {
            text = (const char *)w.data;
            tlen = w.len;
        }
    }
    reply_remember(ep, sig->txid, text, tlen, ep->drop_reply > 0 ? ep->drop_reply - 1 : 0);
    rc = ep->drop_reply > 0 ? 0 : esp_send(ep, text, tlen, now);
    ep->drop_reply = 0;
    ck_writer_free(&w);
    return rc;
}

/* A signaling message that arrived under ESP: a response to ours, or a command to answer. */
static int
on_signal(ck_endpoint *ep, const uint8_t *data, size_t len, int64_t now)
{
    struct ck_endpoint_signal sig;

    if (ck_endpoint_signal_parse(data, len, &sig) != 0) {
        ep->st.dropped++;
        return 0;
    }
    if (sig.is_response) {
        for (size_t i = 0; i < ep->n_cmds; i++) {
            if (ep->cmds[i].txid != sig.txid || !ep->cmds[i].sent)
                continue;
            if (ep->rsip_queued && sig.txid == ep->rsip_txid)
                ep->restarted = true;
            command_drop(ep, i);
            ep->st.responses++;
            if (ep->p.on_response != NULL)
                ep->p.on_response(ep->p.cb_arg, sig.txid, sig.code);
            if (ep->p.on_response_text != NULL)
                ep->p.on_response_text(ep->p.cb_arg, sig.txid, sig.code, (const char *)data,
                                       len);
            return 0;
        }
        return 0; /* a duplicate or late response */
    }
    return on_server_command(ep, &sig, data, len, now);
}

static int
on_esp(ck_endpoint *ep, const uint8_t *buf, size_t len, int64_t now)
{
    uint8_t payload[CK_ESP_MAX_PACKET];
    const uint8_t *data;
    size_t plen, dlen;
    uint8_t nh;
    uint16_t sport, dport;
    uint32_t spi;
    ck_esp_sa *sa = NULL;
    bool current = false;
    int rc;

    if (ck_esp_udp_classify(buf, len, &spi) != CK_ESP_UDP_ESP) {
        ep->st.dropped++;
        return 0;
    }
    if (ep->sa.live && spi == ep->sa.spi_in) {
        sa = ep->sa.in;
        current = true;
    } else if (ep->prev_in != NULL && spi == ck_esp_sa_spi(ep->prev_in)) {
        sa = ep->prev_in;
    }
    if (sa == NULL) {
        ep->st.esp_dropped++;
        event(ep, CK_ENDPOINT_EV_ESP_DROPPED, "unknown SPI 0x%08x", spi);
        return 0;
    }
    rc = ck_esp_unprotect(ep->eng, sa, buf, len, now / 1000, payload, sizeof(payload), &plen,
                          &nh);
    if (rc != 0) {
        ep->st.esp_dropped++;
        event(ep, CK_ENDPOINT_EV_ESP_DROPPED, "SPI 0x%08x: %s", spi, ck_strerror(rc));
        return 0;
    }
    ep->st.esp_in++;
    if (current) {
        /* The server uses the new SA: it has our SP Recovered, and the SA works. */
        ep->sa.ack_pending = false;
        ep->lost_in_row = 0;
        ep->failed_in_row = 0;
    }
    if (nh != CK_ESP_NEXT_HEADER_UDP ||
        ck_esp_udp_unwrap(payload, plen, &sport, &dport, &data, &dlen) != 0 ||
        dport != CK_ENDPOINT_MGCP_GW_PORT) {
        ep->st.dropped++;
        rc = 0;
        goto out;
    }
    rc = on_signal(ep, data, dlen, now);
out:
    ck_memzero(payload, plen); /* a CRCX/MDCX carries the call's sub-key */
    return rc;
}

int
ck_endpoint_on_datagram(ck_endpoint *ep, const uint8_t *buf, size_t len,
                        const struct sockaddr *from, socklen_t from_len, int64_t now)
{
    int src;

    if (ep->state == CK_ENDPOINT_FAILED || buf == NULL || from == NULL) {
        ep->st.dropped++;
        return 0;
    }
    if ((src = kmm_source(ep, from, from_len)) >= 0)
        return on_kmm(ep, buf, len, (size_t)src, now);
    if ((src = sig_source(ep, from, from_len)) >= 0)
        return on_esp(ep, buf, len, now);
    ep->st.dropped++;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Timers.
 */

int
ck_endpoint_start(ck_endpoint *ep, int64_t now)
{
    if (ep->state != CK_ENDPOINT_IDLE)
        return ck_error_set(CK_ERR_INVAL, "endpoint already started");
    return exchange_start(ep, 0, 0, false, WHY_START, now);
}

/* The absolute time of the next thing to do, or -1. */
static int64_t
next_deadline(const ck_endpoint *ep)
{
    int64_t t = -1;

    if (ep->state == CK_ENDPOINT_FAILED || ep->state == CK_ENDPOINT_IDLE)
        return -1;
    if (ep->ex.active)
        t = ck_deadline_min(t, ep->ex.next_ms);
    if (ep->sa.live) {
        if (!ep->ex.active)
            t = ck_deadline_min(t, ep->sa.rekey_at_ms);
        t = ck_deadline_min(t, ep->sa.expires_ms);
        for (size_t i = 0; i < ep->n_cmds; i++) {
            if (ep->cmds[i].sent)
                t = ck_deadline_min(t, ep->cmds[i].next_ms);
            else if (ep->sa.hold_until_ms > 0)
                t = ck_deadline_min(t, ep->sa.hold_until_ms);
        }
    }
    if (ep->prev_in != NULL)
        t = ck_deadline_min(t, ep->prev_in_expires_ms);
    return t;
}

int64_t
ck_endpoint_next_timeout_ms(const ck_endpoint *ep, int64_t now)
{
    int64_t t = next_deadline(ep);

    if (t < 0)
        return -1;
    return t > now ? t - now : 0;
}

/* A command ran out of retransmissions: the SA is presumed lost. */
static int
sa_lost(ck_endpoint *ep, int64_t now)
{
    size_t cms = ep->sa.cms;

    event(ep, CK_ENDPOINT_EV_SA_LOST, "signaling unanswered on SPI 0x%08x", ep->sa.spi_out);
    sa_clear(&ep->sa);
    ck_esp_sa_free(ep->prev_in);
    ep->prev_in = NULL;
    for (size_t i = 0; i < ep->n_cmds; i++) {
        ep->cmds[i].sent = false;
        ep->cmds[i].tries = 0;
    }
    ep->state = CK_ENDPOINT_KEYING;
    if (++ep->lost_in_row > CK_ENDPOINT_MAX_REESTABLISH) {
        /* Keys come up but nothing protected ever comes back: treat the CMS as silent. */
        ep->lost_in_row = 0;
        return failover(ep, now);
    }
    return exchange_start(ep, cms, 0, true, WHY_LOST, now);
}

int
ck_endpoint_on_timer(ck_endpoint *ep, int64_t now)
{
    bool sp_sent = false;
    int rc;

    if (ep->state == CK_ENDPOINT_FAILED || ep->state == CK_ENDPOINT_IDLE)
        return 0;
    if (ep->prev_in != NULL && now >= ep->prev_in_expires_ms) {
        ck_esp_sa_free(ep->prev_in);
        ep->prev_in = NULL;
    }
    if (ep->ex.active && now >= ep->ex.next_ms) {
        if (ep->ex.tries >= ep->p.backoff_tries) {
            /* A re-key that got no answer while the SA still works: the CMS is gone all the
             * same, so go to the next one now rather than at expiry. */
            if ((rc = failover(ep, now)) != 0 || ep->state == CK_ENDPOINT_FAILED)
                return rc;
        } else if ((rc = send_ap_req(ep, now)) != 0) {
            return rc;
        }
    }
    if (ep->sa.live && now >= ep->sa.expires_ms) {
        /* Expired without a successful re-key. */
        size_t cms = ep->sa.cms;
        sa_clear(&ep->sa);
        for (size_t i = 0; i < ep->n_cmds; i++) {
            ep->cmds[i].sent = false;
            ep->cmds[i].tries = 0;
        }
        ep->state = CK_ENDPOINT_KEYING;
        if (!ep->ex.active && (rc = exchange_start(ep, cms, 0, false, WHY_START, now)) != 0)
            return rc;
    }
    if (ep->sa.live && !ep->ex.active && now >= ep->sa.rekey_at_ms) {
        if ((rc = rekey_now(ep, WHY_REKEY, now)) != 0)
            return rc;
    }
    if (!ep->sa.live)
        return 0;
    if ((rc = send_pending(ep, now)) != 0 || !ep->sa.live)
        return rc;
    for (size_t i = 0; i < ep->n_cmds; i++) {
        struct command *c = &ep->cmds[i];
        if (!c->sent || now < c->next_ms)
            continue;
        if (c->tries >= ep->p.sig_tries)
            return sa_lost(ep, now);
        /* While the server may be waiting for SP Recovered, repeat it (once per pass). */
        if (ep->sa.ack_pending && !sp_sent) {
            if ((rc = send_to(ep, &ep->cms[ep->sa.cms].kmm, ep->sa.sp_recovered,
                              sizeof(ep->sa.sp_recovered))) != 0)
                return rc;
            sp_sent = true;
        }
        if ((rc = send_command_now(ep, c, now)) != 0)
            return rc;
        if (!ep->sa.live)
            break;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Queries.
 */

enum ck_endpoint_state
ck_endpoint_state(const ck_endpoint *ep)
{
    return ep->state;
}

void
ck_endpoint_get_stats(const ck_endpoint *ep, struct ck_endpoint_stats *out)
{
    *out = ep->st;
}

size_t
ck_endpoint_pending(const ck_endpoint *ep)
{
    return ep->n_cmds;
}

bool
ck_endpoint_restarted(const ck_endpoint *ep)
{
    return ep->restarted;
}

bool
ck_endpoint_sa_info(const ck_endpoint *ep, struct ck_endpoint_sa_info *out)
{
    memset(out, 0, sizeof(*out));
    if (!ep->sa.live)
        return false;
    out->cms_index = ep->sa.cms;
    out->suite = ep->sa.suite;
    out->spi_in = ep->sa.spi_in;
    out->spi_out = ep->sa.spi_out;
    out->expires_ms = ep->sa.expires_ms;
    out->rekey_at_ms = ep->sa.rekey_at_ms;
    out->ack_pending = ep->sa.ack_pending;
    return true;
}

size_t
ck_endpoint_cms_index(const ck_endpoint *ep)
{
    return ep->cur_cms;
}

const char *
ck_endpoint_failure(const ck_endpoint *ep)
{
    return ep->state == CK_ENDPOINT_FAILED ? ep->failure : "";
}

int
ck_endpoint_forget_sa(ck_endpoint *ep, int64_t now)
{
    size_t cms = ep->sa.live ? ep->sa.cms : ep->cur_cms;

    if (ep->state != CK_ENDPOINT_ESTABLISHED)
        return 0;
    sa_clear(&ep->sa);
    ck_esp_sa_free(ep->prev_in);
    ep->prev_in = NULL;
    ep->state = CK_ENDPOINT_KEYING;
    for (size_t i = 0; i < ep->n_cmds; i++) {
        ep->cmds[i].sent = false;
        ep->cmds[i].tries = 0;
    }
    return exchange_start(ep, cms, 0, true, WHY_LOST, now);
}
