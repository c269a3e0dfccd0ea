/* Protected signaling: the second UDP port (signaling_listen, default 4500) where endpoints send
 * RFC 3948 UDP-encapsulated ESP (transport mode, next header 17: an inner UDP header from port
 * 2427 to 2727, then NCS/MGCP-shaped text). cablekey-cms answers as a minimal call agent would:
 * `200 <txid> OK` to every command, under the SA pair's outbound SA, to the packet's source; and
 * after it acknowledged an SA's first RSIP it sends one RQNT, whose 200 it accepts, so signaling
 * flows both ways. An ESP packet for an SPI the table does not hold gets a Wake Up from the KMM
 * port (rate-limited per source address): the endpoint lost nothing it can use, or the server
 * restarted, and one AP exchange puts things right.
 *
 * This listener has its own sockets and threads rather than lib/net: a packet here may need two
 * datagrams sent back (the 200 and the RQNT), which a request/reply handler cannot express. Each
 * thread owns a ck_esp_engine; an SA is used under its SA-table stripe lock. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cablekey/endpoint.h"
#include "cablekey/error.h"
#include "cablekey/log.h"
#include "cablekey/net.h"
#include "cablekey/util.h"
#include "call.h"
#include "cms.h"

#define SIG_MAX_SOCKS 32
#define SIG_MAX_THREADS 64
#define SIG_MAX_TEXT 1400               /* signaling text we answer: one MTU */
#define XFRM_BUF 4096

/* ---- xfrm export ------------------------------------------------------------------------ */

static void
xfrm_write(struct cms_server *s, const char *text, size_t len)
{
    pthread_mutex_lock(&s->xfrm_lock);
    if (s->xfrm_fd >= 0 && ck_fd_write_all(s->xfrm_fd, text, len) != 0)
        ck_log_warn("--export-xfrm: %s", ck_error_context());
    pthread_mutex_unlock(&s->xfrm_lock);
}

void
cms_xfrm_export(struct cms_server *s, const struct cms_sa *sa)
{
    char ep[64], local[64], buf[XFRM_BUF];
    size_t used = 0, n = 0;
    struct ck_esp_xfrm_desc in, out;

    if (s->xfrm_fd < 0)
        return;
    cms_addr_host(&sa->ep, ep, sizeof(ep));
    if (sa->local.family != 0)
        cms_addr_host(&sa->local, local, sizeof(local));
    else
        ck_strlcpy(local, sa->ep.family == 6 ? "::" : "0.0.0.0", sizeof(local));
    /* Inbound: endpoint -> us, encapsulated from its port to the signaling port. */
    in = (struct ck_esp_xfrm_desc){ep, local, sa->ep.port, s->signaling_port, CMS_MGCP_GW_PORT,
                                   CMS_MGCP_CA_PORT, sa->spi_in};
    out = (struct ck_esp_xfrm_desc){local, ep, s->signaling_port, sa->ep.port, CMS_MGCP_CA_PORT,
                                    CMS_MGCP_GW_PORT, sa->spi_out};
    n = (size_t)snprintf(buf, sizeof(buf), "# SA %s %s spi in 0x%08x out 0x%08x\n", sa->client,
                         ep, sa->spi_in, sa->spi_out);
    used = n < sizeof(buf) ? n : 0;
    if (ck_esp_xfrm_format(sa->in, &in, buf, sizeof(buf), &used) != 0)
        goto out;
    /* ck_esp_xfrm_format writes the sender's policy (dir out); on this host the endpoint's SA
     * is inbound. */
    for (char *p = buf + n; (p = strstr(p, " dir out ")) != NULL; p += 8)
        memcpy(p, " dir in  ", 9);
    if (ck_esp_xfrm_format(sa->out, &out, buf, sizeof(buf), &used) != 0)
        goto out;
    xfrm_write(s, buf, used);
out:
    ck_memzero(buf, sizeof(buf));
}

/* Wireshark's esp_sa records for both SAs of the pair, so that a capture of the signaling port
 * decrypts (tshark -o "uat:esp_sa:..." or the esp_sa file of a profile). */
void
cms_wireshark_export(struct cms_server *s, const struct cms_sa *sa)
{
    char ep[64], local[64], buf[XFRM_BUF];
    size_t used = 0;

    if (s->wireshark_fd < 0)
        return;
    cms_addr_host(&sa->ep, ep, sizeof(ep));
    if (sa->local.family != 0)
        cms_addr_host(&sa->local, local, sizeof(local));
    else
        ck_strlcpy(local, sa->ep.family == 6 ? "::1" : "127.0.0.1", sizeof(local));
    buf[0] = '\0';
    if (ck_esp_wireshark_sa_format(sa->in, ep, local, buf, sizeof(buf), &used) == 0 &&
        ck_esp_wireshark_sa_format(sa->out, local, ep, buf, sizeof(buf), &used) == 0) {
        pthread_mutex_lock(&s->xfrm_lock);
        if (s->wireshark_fd >= 0 && ck_fd_write_all(s->wireshark_fd, buf, used) != 0)
            ck_log_warn("export_wireshark: %s", ck_error_context());
        pthread_mutex_unlock(&s->xfrm_lock);
    }
    ck_memzero(buf, sizeof(buf));
}

void
cms_xfrm_delete(struct cms_server *s, const struct cms_sa *sa)
{
    char ep[64], local[64], buf[512];
    int n;

    if (s->xfrm_fd < 0)
        return;
    cms_addr_host(&sa->ep, ep, sizeof(ep));
    if (sa->local.family != 0)
        cms_addr_host(&sa->local, local, sizeof(local));
    else
        ck_strlcpy(local, sa->ep.family == 6 ? "::" : "0.0.0.0", sizeof(local));
    n = snprintf(buf, sizeof(buf),
                 "ip xfrm state delete src %s dst %s proto esp spi 0x%08x\n"
                 "ip xfrm state delete src %s dst %s proto esp spi 0x%08x\n",
                 ep, local, sa->spi_in, local, ep, sa->spi_out);
    if (n > 0 && (size_t)n < sizeof(buf))
        xfrm_write(s, buf, (size_t)n);
}

/* ---- one packet ------------------------------------------------------------------------- */

struct sig_ctx {
    struct cms_server *s;
    ck_esp_engine *eng;
    const uint8_t *pkt;
    size_t len;
    int64_t now;
    uint8_t *reply, *extra;
    size_t cap, extra_cap, *reply_len, *extra_len;
    cms_sig_send_fn send;
    void *send_arg;
    char log[256];
    /* For call control, handled once the SA lock is released: */
    bool to_calls;
    bool restricted;                  /* the SA's ticket restricts calls (restriction) */
    ck_ad_restricted restriction;
    uint32_t spi;
    char client[CMS_MAX_PRINCIPAL];
    char text[SIG_MAX_TEXT];
    size_t text_len;
};

/* The first line's verb, transaction id and (for commands) endpoint name. */
struct mgcp_line {
    char verb[8];
    uint32_t txid;
    char endpoint[128];
};

static bool
is_token_char(uint8_t c)
{
    return c > 0x20 && c < 0x7f;
}

/* "VERB txid endpoint MGCP 1.0 ..." or "200 txid OK": CK_ERR_DECODE for anything else. */
static int
parse_first_line(const uint8_t *t, size_t len, struct mgcp_line *out)
{
    size_t i = 0, k;
    uint64_t txid = 0;

    memset(out, 0, sizeof(*out));
    for (k = 0; i < len && is_token_char(t[i]); i++, k++) {
        if (k >= sizeof(out->verb) - 1)
            return CK_ERR_DECODE;
        out->verb[k] = (char)t[i];
    }
    if (k == 0 || i >= len || t[i] != ' ')
        return CK_ERR_DECODE;
    i++;
    for (k = 0; i < len && t[i] >= '0' && t[i] <= '9'; i++, k++) {
        if (k >= 9)
            return CK_ERR_DECODE;
        txid = txid * 10 + (uint64_t)(t[i] - '0');
    }
    if (k == 0 || txid == 0 || i >= len || (t[i] != ' ' && t[i] != '\r'))
        return CK_ERR_DECODE;
    out->txid = (uint32_t)txid;
    if (t[i] == ' ') {
        i++;
        for (k = 0; i < len && is_token_char(t[i]); i++, k++) {
            if (k >= sizeof(out->endpoint) - 1)
                return CK_ERR_DECODE;
            out->endpoint[k] = (char)t[i];
        }
    }
    /* The rest of the line: printable text up to CRLF. */
    for (; i < len && t[i] != '\r'; i++)
        if (t[i] < 0x20 || t[i] >= 0x7f)
            return CK_ERR_DECODE;
    if (i + 1 >= len || t[i + 1] != '\n')
        return CK_ERR_DECODE;
    return 0;
}

static bool
is_response(const struct mgcp_line *l)
{
    return l->verb[0] >= '0' && l->verb[0] <= '9';
}

/* Wraps text in the inner UDP header and protects it under sa->out into out. */
static int
protect_text(struct sig_ctx *c, struct cms_sa *sa, const char *text, size_t len, uint8_t *out,
             size_t cap, size_t *out_len)
{
    uint8_t inner[SIG_MAX_TEXT + 8];
    size_t inner_len = 0;
    int rc;

    if ((rc = ck_esp_udp_wrap(CMS_MGCP_CA_PORT, CMS_MGCP_GW_PORT, (const uint8_t *)text, len,
                              inner, sizeof(inner), &inner_len)) != 0)
        return rc;
    rc = ck_esp_protect(c->eng, sa->out, CK_ESP_NEXT_HEADER_UDP, inner, inner_len, c->now, out,
                        cap, out_len);
    ck_memzero(inner, inner_len); /* a CRCX/MDCX carries the call's sub-key */
    return rc;
}

static int
sig_on_sa(struct cms_sa *sa, void *arg)
{
    static _Thread_local uint8_t plain[CK_ESP_MAX_PACKET];
    struct sig_ctx *c = arg;
    struct cms_server *s = c->s;
    struct mgcp_line l;
    const uint8_t *text;
    size_t plain_len = 0, text_len = 0;
    uint16_t sport, dport;
    uint8_t nh = 0;
    char msg[SIG_MAX_TEXT];
    int rc, n;

    rc = ck_esp_unprotect(c->eng, sa->in, c->pkt, c->len, c->now, plain, sizeof(plain),
                          &plain_len, &nh);
    if (rc != 0) {
        atomic_fetch_add(rc == CK_ERR_REPLAY      ? &s->stats.esp_replay
                         : rc == CK_ERR_INTEGRITY ? &s->stats.esp_bad_icv
                         : rc == CK_ERR_EXPIRED   ? &s->stats.esp_expired
                                                  : &s->stats.esp_other,
                         1);
        snprintf(c->log, sizeof(c->log), "ESP spi 0x%08x: dropped (%s)", sa->spi_in,
                 ck_strerror(rc));
        return 0;
    }
    atomic_fetch_add(&s->stats.esp_ok, 1);
    if (nh != CK_ESP_NEXT_HEADER_UDP ||
        ck_esp_udp_unwrap(plain, plain_len, &sport, &dport, &text, &text_len) != 0 ||
        parse_first_line(text, text_len, &l) != 0) {
        atomic_fetch_add(&s->stats.esp_other, 1);
        snprintf(c->log, sizeof(c->log), "ESP spi 0x%08x: not MGCP-shaped text, dropped",
                 sa->spi_in);
        goto out;
    }
    if (is_response(&l)) {
        if ((sa->flags & CMS_SA_RQNT_SENT) && l.txid == sa->rqnt_txid &&
            strcmp(l.verb, "200") == 0 && !(sa->flags & CMS_SA_RQNT_ACKED)) {
            sa->flags |= CMS_SA_RQNT_ACKED;
            atomic_fetch_add(&s->stats.rqnt_acked, 1);
            snprintf(c->log, sizeof(c->log), "SIG %s spi 0x%08x: %s %u (RQNT acknowledged)",
                     sa->client, sa->spi_in, l.verb, l.txid);
        } else if (s->calls != NULL && cms_call_is_party_sa(s->calls, sa->client, sa->restriction != NULL)) {
            goto calls;
        }
        goto out;
    }
    if (sa->flags & CMS_SA_PENDING) {
        /* ACK-required: nothing goes out on this SA before SP Recovered. */
        atomic_fetch_add(&s->stats.esp_pending, 1);
        snprintf(c->log, sizeof(c->log), "SIG %s spi 0x%08x: %s %u not answered (SA pending "
                 "SP Recovered)", sa->client, sa->spi_in, l.verb, l.txid);
        goto out;
    }
    /* A call party's commands go to call control, which answers them itself (after this SA's
     * lock is released: it may send under other SAs). RSIP keeps its answer and RQNT here,
     * and call control learns where the line is from it. */
    if (s->calls != NULL && strcmp(l.verb, "RSIP") != 0 &&
        cms_call_is_party_sa(s->calls, sa->client, sa->restriction != NULL))
        goto calls;
    if (s->calls != NULL && cms_call_is_party_sa(s->calls, sa->client, sa->restriction != NULL)) {
        c->to_calls = true;
        c->spi = sa->spi_in;
        ck_strlcpy(c->client, sa->client, sizeof(c->client));
        if ((c->restricted = sa->restriction != NULL))
            c->restriction = *sa->restriction;
        memcpy(c->text, text, text_len);
        c->text_len = text_len;
    }
    n = snprintf(msg, sizeof(msg), "200 %u OK\r\n", l.txid);
    if ((rc = protect_text(c, sa, msg, (size_t)n, c->reply, c->cap, c->reply_len)) != 0) {
        *c->reply_len = 0;
        snprintf(c->log, sizeof(c->log), "SIG %s spi 0x%08x: %s %u: cannot answer: %s",
                 sa->client, sa->spi_in, l.verb, l.txid, ck_strerror(rc));
        goto out;
    }
    atomic_fetch_add(&s->stats.sig_answered, 1);
    snprintf(c->log, sizeof(c->log), "SIG %s spi 0x%08x: %s %u -> 200", sa->client, sa->spi_in,
             l.verb, l.txid);
    if (strcmp(l.verb, "RSIP") == 0 && !(sa->flags & CMS_SA_RQNT_SENT)) {
        uint32_t txid = 0, x = 0;

        if (ck_random_bytes(&txid, sizeof(txid)) != 0 || ck_random_bytes(&x, sizeof(x)) != 0)
            goto out;
        txid = txid % 999999999u + 1;
        n = snprintf(msg, sizeof(msg), "RQNT %u %s MGCP 1.0 NCS 1.0\r\nX: %x\r\nR: hd\r\n", txid,
                     l.endpoint[0] != '\0' ? l.endpoint : "aaln/1", x);
        if (n > 0 && (size_t)n < sizeof(msg) &&
            protect_text(c, sa, msg, (size_t)n, c->extra, c->extra_cap, c->extra_len) == 0) {
            sa->flags |= CMS_SA_RSIP_ACKED | CMS_SA_RQNT_SENT;
            sa->rqnt_txid = txid;
            atomic_fetch_add(&s->stats.rqnt_sent, 1);
        } else {
            *c->extra_len = 0;
        }
    }
    goto out;
calls:
    if (text_len > sizeof(c->text)) {
        atomic_fetch_add(&s->stats.esp_other, 1);
        goto out;
    }
    c->to_calls = true;
    c->spi = sa->spi_in;
    ck_strlcpy(c->client, sa->client, sizeof(c->client));
    if ((c->restricted = sa->restriction != NULL))
        c->restriction = *sa->restriction;
    memcpy(c->text, text, text_len);
    c->text_len = text_len;
    snprintf(c->log, sizeof(c->log), "SIG %s spi 0x%08x: %s %u (call control)", sa->client,
             sa->spi_in, l.verb, l.txid);
out:
    if (c->send != NULL && *c->reply_len > 0)
        c->send(c->send_arg, c->reply, *c->reply_len);
    if (c->send != NULL && *c->extra_len > 0)
        c->send(c->send_arg, c->extra, *c->extra_len);
    ck_memzero(plain, plain_len);
    return 0;
}

int
cms_sig_handle(struct cms_server *s, ck_esp_engine *eng, const uint8_t *pkt, size_t len,
               const struct sockaddr *peer, uint8_t *reply, size_t cap, size_t *reply_len,
               uint8_t *extra, size_t extra_cap, size_t *extra_len, cms_sig_send_fn send,
               void *send_arg)
{
    struct sig_ctx c = {.s = s, .eng = eng, .pkt = pkt, .len = len, .reply = reply,
                        .cap = cap, .reply_len = reply_len, .extra = extra,
                        .extra_cap = extra_cap, .extra_len = extra_len, .send = send,
                        .send_arg = send_arg};
    struct cms_addr from;
    char p[CMS_ADDRSTRLEN];
    uint32_t spi = 0;

    *reply_len = 0;
    *extra_len = 0;
    if (cms_addr_from_sockaddr(peer, &from) != 0)
        return 0;
    switch (ck_esp_udp_classify(pkt, len, &spi)) {
    case CK_ESP_UDP_ESP:
        break;
    case CK_ESP_UDP_KEEPALIVE:
        return 0;
    default:
        atomic_fetch_add(&s->stats.esp_other, 1);
        ck_log_debug("ESP %s: not ESP (%zu bytes), dropped", cms_addr_format(&from, p, sizeof(p)),
                     len);
        return 0;
    }
    c.now = cms_now(s);
    if (cms_sa_table_with(s->sas, spi, sig_on_sa, &c) == CK_ERR_NOTFOUND) {
        /* No more bytes out than in (a spoofed source gains nothing); a real ESP packet, with
         * its IV and ICV, is always larger than a Wake Up. */
        int rc = len >= 3 + 4 + strlen(s->service) + 1 ? cms_send_wakeup(s, &from, false) : 1;

        atomic_fetch_add(&s->stats.esp_unknown_spi, 1);
        cms_addr_format(&from, p, sizeof(p));
        if (rc < 0)
            ck_log_warn("ESP %s spi 0x%08x: unknown SPI; Wake Up not sent: %s", p, spi,
                        ck_error_context());
        else if (rc == 0)
            ck_log_info("ESP %s spi 0x%08x: unknown SPI, Wake Up sent", p, spi);
        else
            ck_log_debug("ESP %s spi 0x%08x: unknown SPI (Wake Up rate-limited)", p, spi);
        return 0;
    }
    if (c.log[0] != '\0')
        ck_log(*reply_len > 0 ? LOG_INFO : LOG_DEBUG, "%s from %s", c.log,
               cms_addr_format(&from, p, sizeof(p)));
    if (c.to_calls) {
        cms_call_set_restriction(s->calls, c.client, c.restricted ? &c.restriction : NULL);
        cms_call_on_message(s->calls, c.client, c.spi, (const uint8_t *)c.text, c.text_len,
                            s->fixed_now != 0 ? s->fixed_now * 1000 : ck_endpoint_now_ms());
        ck_memzero(c.text, c.text_len);
    }
    return 0;
}

/* ---- the listener ----------------------------------------------------------------------- */

struct cms_sig_server {
    int fds[SIG_MAX_SOCKS];
    size_t n_fds;
    char desc[1024];
    uint16_t port;
    int stop_fd;
    struct cms_server *s;
    pthread_t threads[SIG_MAX_THREADS];
    int n_threads;
};

static int
bind_one(struct cms_sig_server *ss, const struct addrinfo *ai)
{
    struct sockaddr_storage got;
    socklen_t gl = sizeof(got);
    char a[CK_NET_ADDRSTRLEN];
    int fd, one = 1;

    if (ss->n_fds >= SIG_MAX_SOCKS)
        return ck_error_set(CK_ERR_LIMIT, "signaling: more than %d sockets", SIG_MAX_SOCKS);
    ck_net_addr_format(ai->ai_addr, a, sizeof(a));
    fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return ck_error_set(CK_ERR_IO, "signaling %s: socket: %s", a, strerror(errno));
    if (ai->ai_family == AF_INET6)
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        int e = errno;
        close(fd);
        return ck_error_set(CK_ERR_IO, "signaling %s: bind: %s", a, strerror(e));
    }
    if (getsockname(fd, (struct sockaddr *)&got, &gl) == 0) {
        ck_net_addr_format((struct sockaddr *)&got, a, sizeof(a));
        if (ss->port == 0)
            ss->port = ntohs(got.ss_family == AF_INET
                                 ? ((struct sockaddr_in *)(void *)&got)->sin_port
                                 : ((struct sockaddr_in6 *)(void *)&got)->sin6_port);
    }
    if (ss->desc[0] != '\0')
        strncat(ss->desc, " ", sizeof(ss->desc) - strlen(ss->desc) - 1);
    strncat(ss->desc, a, sizeof(ss->desc) - strlen(ss->desc) - 1);
    ss->fds[ss->n_fds++] = fd;
    return 0;
}

int
cms_sig_server_bind(const char *const *listen, size_t n, struct cms_sig_server **out)
{
    struct cms_sig_server *ss = calloc(1, sizeof(*ss));
    int rc = 0;

    *out = NULL;
    if (ss == NULL)
        return ck_error_set(CK_ERR_NOMEM, "signaling");
    ss->stop_fd = -1;
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct addrinfo hints, *res = NULL;
        char host[256], port[8];
        uint16_t p;
        int g;

        if ((rc = ck_net_parse_listen(listen[i], CMS_SIGNALING_PORT, host, sizeof(host), &p)) != 0)
            break;
        snprintf(port, sizeof(port), "%u", (unsigned)p);
        memset(&hints, 0, sizeof(hints));
        hints.ai_socktype = SOCK_DGRAM;
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
        if ((g = getaddrinfo(host[0] != '\0' && strcmp(host, "*") != 0 ? host : NULL, port,
                             &hints, &res)) != 0) {
            rc = ck_error_set(CK_ERR_CONFIG, "signaling %s: %s", listen[i], gai_strerror(g));
            break;
        }
        for (struct addrinfo *ai = res; ai != NULL && rc == 0; ai = ai->ai_next) {
            if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
                continue;
            rc = bind_one(ss, ai);
            /* A host without IPv6 still serves IPv4 on a wildcard entry. */
            if (rc != 0 && ai->ai_family == AF_INET6 && host[0] == '\0' && ss->n_fds > 0)
                rc = 0;
        }
        freeaddrinfo(res);
    }
    if (rc == 0 && ss->n_fds == 0)
        rc = ck_error_set(CK_ERR_CONFIG, "signaling: no address to listen on");
    if (rc != 0) {
        cms_sig_server_free(ss);
        return rc;
    }
    *out = ss;
    return 0;
}

void
cms_sig_server_describe(const struct cms_sig_server *ss, char *buf, size_t size)
{
    ck_strlcpy(buf, ss != NULL ? ss->desc : "", size);
}

uint16_t
cms_sig_server_port(const struct cms_sig_server *ss)
{
    return ss != NULL ? ss->port : 0;
}

struct sig_dest {
    int fd;
    const struct sockaddr *peer;
    socklen_t peer_len;
};

static void
sig_send(void *arg, const uint8_t *pkt, size_t len)
{
    const struct sig_dest *d = arg;

    (void)sendto(d->fd, pkt, len, MSG_DONTWAIT, d->peer, d->peer_len);
}

static void *
sig_thread(void *arg)
{
    struct cms_sig_server *ss = arg;
    struct pollfd pfd[SIG_MAX_SOCKS + 1];
    ck_esp_engine *eng = NULL;
    uint8_t *in = malloc(CK_ESP_MAX_PACKET), *out = malloc(CK_ESP_MAX_PACKET);
    uint8_t *extra = malloc(CK_ESP_MAX_PACKET);

    if (in == NULL || out == NULL || extra == NULL || ck_esp_engine_new(&eng) != 0) {
        ck_log_err("signaling worker: %s", ck_error_context());
        goto out;
    }
    for (size_t i = 0; i < ss->n_fds; i++)
        pfd[i] = (struct pollfd){.fd = ss->fds[i], .events = POLLIN};
    pfd[ss->n_fds] = (struct pollfd){.fd = ss->stop_fd, .events = POLLIN};
    for (;;) {
        if (poll(pfd, ss->n_fds + 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            ck_log_err("signaling: poll: %s", strerror(errno));
            break;
        }
        if (pfd[ss->n_fds].revents != 0)
            break;
        for (size_t i = 0; i < ss->n_fds; i++) {
            if (!(pfd[i].revents & POLLIN))
                continue;
            /* A bounded batch per socket, so that one busy socket cannot starve the others. */
            for (int k = 0; k < 64; k++) {
                struct sockaddr_storage peer;
                socklen_t pl = sizeof(peer);
                size_t rl = 0, el = 0;
                ssize_t r = recvfrom(ss->fds[i], in, CK_ESP_MAX_PACKET, MSG_DONTWAIT,
                                     (struct sockaddr *)&peer, &pl);
                if (r < 0)
                    break;
                struct sig_dest dest = {ss->fds[i], (struct sockaddr *)&peer, pl};

                cms_sig_handle(ss->s, eng, in, (size_t)r, (struct sockaddr *)&peer, out,
                               CK_ESP_MAX_PACKET, &rl, extra, CK_ESP_MAX_PACKET, &el, sig_send,
                               &dest);
            }
        }
    }
out:
    ck_esp_engine_free(eng);
    free(in);
    free(out);
    free(extra);
    ck_crypto_thread_cleanup();
    return NULL;
}

int
cms_sig_server_run(struct cms_sig_server *ss, struct cms_server *s, int threads)
{
    if (threads < 1)
        threads = 1;
    if (threads > SIG_MAX_THREADS)
        threads = SIG_MAX_THREADS;
    ss->s = s;
    if ((ss->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
        return ck_error_set(CK_ERR_IO, "eventfd: %s", strerror(errno));
    for (int i = 0; i < threads; i++) {
        int e = pthread_create(&ss->threads[i], NULL, sig_thread, ss);
        if (e != 0)
            return ck_error_set(CK_ERR_IO, "signaling thread: %s", strerror(e));
        ss->n_threads++;
    }
    return 0;
}

void
cms_sig_server_free(struct cms_sig_server *ss)
{
    if (ss == NULL)
        return;
    if (ss->stop_fd >= 0) {
        uint64_t one = 1;
        if (write(ss->stop_fd, &one, sizeof(one)) < 0)
            ck_log_warn("signaling: stop: %s", strerror(errno));
    }
    for (int i = 0; i < ss->n_threads; i++)
        pthread_join(ss->threads[i], NULL);
    for (size_t i = 0; i < ss->n_fds; i++)
        close(ss->fds[i]);
    if (ss->stop_fd >= 0)
        close(ss->stop_fd);
    free(ss);
}

/* ---- call control's sends --------------------------------------------------------------- */

struct sig_out_ctx {
    struct cms_sig_out *o;
    const char *text;
    size_t len;
};

static int
sig_out_on_sa(struct cms_sa *sa, void *arg)
{
    static _Thread_local uint8_t pkt[SIG_MAX_TEXT + 256];
    struct sig_out_ctx *x = arg;
    struct cms_sig_out *o = x->o;
    struct sig_ctx c = {.s = o->s, .eng = o->eng, .now = cms_now(o->s)};
    struct sockaddr_storage to;
    socklen_t tl;
    size_t len = 0;
    int rc, fd = -1;

    if (sa->flags & CMS_SA_PENDING)
        return ck_error_set(CK_ERR_EXPIRED, "SA 0x%08x pending SP Recovered", sa->spi_in);
    if ((rc = protect_text(&c, sa, x->text, x->len, pkt, sizeof(pkt), &len)) != 0)
        return rc;
    tl = cms_addr_to_sockaddr(&sa->ep, &to);
    for (size_t i = 0; i < o->ss->n_fds && fd < 0; i++) {
        struct sockaddr_storage b;
        socklen_t bl = sizeof(b);
        if (getsockname(o->ss->fds[i], (struct sockaddr *)&b, &bl) == 0 &&
            b.ss_family == to.ss_family)
            fd = o->ss->fds[i];
    }
    if (fd < 0)
        return ck_error_set(CK_ERR_UNSUPPORTED, "no signaling socket of the family");
    /* Sent under the SA's lock: what one SA protects leaves in sequence-number order. */
    if (sendto(fd, pkt, len, MSG_DONTWAIT, (struct sockaddr *)&to, tl) < 0)
        return ck_error_set(CK_ERR_IO, "sendto: %s", strerror(errno));
    atomic_fetch_add(&o->s->stats.sig_answered, 1);
    return 0;
}

struct newest_ctx {
    const char *client;
    uint32_t spi;
    int64_t created;
};

static int
newest_of_client(struct cms_sa *sa, void *arg)
{
    struct newest_ctx *n = arg;

    if (!(sa->flags & (CMS_SA_SUPERSEDED | CMS_SA_PENDING)) &&
        strcmp(sa->client, n->client) == 0 && (n->spi == 0 || sa->created > n->created)) {
        n->spi = sa->spi_in;
        n->created = sa->created;
    }
    return 0;
}

int
cms_sig_send_text(void *arg, const char *client, uint32_t spi, const char *text, size_t len)
{
    struct cms_sig_out *o = arg;
    struct sig_out_ctx x = {arg, text, len};
    struct newest_ctx n = {client, 0, 0};
    int rc;

    if (len > SIG_MAX_TEXT)
        return ck_error_set(CK_ERR_LIMIT, "signaling text of %zu bytes", len);
    rc = cms_sa_table_with(o->s->sas, spi, sig_out_on_sa, &x);
    if (rc != CK_ERR_NOTFOUND || client == NULL)
        return rc;
    /* Rare (an idle party whose old SA pair expired after it re-keyed): one walk of the table. */
    (void)cms_sa_table_scan(o->s->sas, newest_of_client, NULL, &n);
    if (n.spi == 0)
        return ck_error_set(CK_ERR_NOTFOUND, "no SA of %s", client);
    return cms_sa_table_with(o->s->sas, n.spi, sig_out_on_sa, &x);
}
