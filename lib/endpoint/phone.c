/* The phone adapter (include/cablekey/phone.h): NCS call signaling with its controller on top of
 * ck_endpoint, the call keys the controller delivers, direct ESP with the other end and G.711
 * audio over RTP/SRTP. No threads, no clock, no sockets: every entry point carries `now`. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/endpoint.h"
#include "cablekey/error.h"
#include "cablekey/esp.h"
#include "cablekey/kmm.h"
#include "cablekey/media.h"
#include "cablekey/mgcp.h"
#include "cablekey/phone.h"
#include "cablekey/util.h"

#define HELLO_MAX 64
#define MAX_FRAMES (CK_WAV_MAX_SAMPLES / CK_PHONE_FRAME_SAMPLES)
#define MEDIA_BUF (CK_RTP_MAX_PACKET + CK_MEDIA_MAX_OVERHEAD)
#define DIRECT_BUF 512
#define CATCH_UP_MS 200                /* later than this, the frame clock restarts from now */
#define DEFAULT_TALK_MS 3000

enum dial_state {
    DIAL_NONE,                         /* not a caller, or not started */
    DIAL_OFFHOOK,                      /* NTFY O: hd sent */
    DIAL_DIGITS,                       /* NTFY with the number sent */
    DIAL_DONE,                         /* the call ended (or failed) */
};

struct call {
    bool used;
    char callid[CK_MGCP_MAX_CALLID + 1];
    bool caller;                       /* created by a CRCX without SDP (we dialled) */
    bool keyed;                        /* media contexts installed */
    bool is_source;
    enum ck_sdp_media_mode sdp_media;
    ck_media_ctx *tx, *rx;
    bool ipsec;
    struct ck_kmm_suite suite;
    uint32_t spi;
    ck_esp_sa *sa_in, *sa_out;
    struct sockaddr_storage peer_media, peer_direct;
    socklen_t peer_len;
    char peer_addr[64];
    uint64_t sdp_session;
    /* progress */
    bool sendrecv;                     /* the controller said M: sendrecv */
    bool answered;                     /* callee: off-hook sent (caller: always) */
    int64_t answer_at_ms;              /* callee: when to answer (-1: not ringing) */
    bool peer_ready;                   /* the peer's HELLO or media arrived */
    bool connected;
    bool media_on;
    int64_t next_frame_ms;
    int64_t hangup_at_ms;              /* caller: -1 none */
    bool onhook_sent;
    /* direct signaling */
    bool hello_rx;
    int hello_tries;
    int64_t hello_next_ms;
    /* RTP out */
    uint32_t ssrc, ts;
    uint16_t seq;
    uint64_t sent;
    size_t audio_pos;
    /* RTP in */
    bool rx_started;
    uint32_t rx_ssrc;
    uint64_t first_ext, high_ext;
    uint64_t received, replayed, dropped;
    int16_t *rec;                      /* record: frames placed by sequence number */
    uint8_t *have;                     /* frames received, by index */
    size_t frames_cap;
};

struct ck_phone {
    struct ck_phone_params p;
    ck_endpoint *ep;
    ck_endpoint_event_fn user_event;
    void *user_event_arg;
    ck_esp_engine *eng;
    char media_addr[64];
    int family;
    uint32_t hold[CK_PHONE_MAX_HOLD];
    char dial[CK_MGCP_MAX_DIGITS + 1];
    enum dial_state dial_state;
    uint32_t offhook_txid, digits_txid;
    char reqid[33];                    /* the X: of the controller's last RQNT */
    uint32_t next_reqid;
    struct call calls[CK_PHONE_MAX_CALLS];
    size_t ended;
    struct ck_phone_stats st;
    int64_t now;
    int deferred_rc;
    int lose_acks;                     /* test hook budget */
    bool registered;                   /* the controller acknowledged the restart */                   /* a send failure inside an endpoint callback */
    struct ck_mgcp_msg msg;            /* scratch (large) */
};

static void
plog(ck_phone *ph, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
plog(ck_phone *ph, const char *fmt, ...)
{
    char buf[200];
    va_list ap;

    if (ph->p.on_log == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    ph->p.on_log(ph->p.cb_arg, buf);
}

static socklen_t
ss_len(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET ? (socklen_t)sizeof(struct sockaddr_in)
                                    : (socklen_t)sizeof(struct sockaddr_in6);
}

/* A numeric address and port into *out. */
static int
make_addr(const char *addr, uint16_t port, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof(*out));
    if (strchr(addr, ':') == NULL) {
        struct sockaddr_in *a = (struct sockaddr_in *)(void *)out;
        a->sin_family = AF_INET;
        a->sin_port = htons(port);
        if (inet_pton(AF_INET, addr, &a->sin_addr) != 1)
            return ck_error_set(CK_ERR_DECODE, "not an IPv4 address");
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)(void *)out;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(port);
        if (inet_pton(AF_INET6, addr, &a->sin6_addr) != 1)
            return ck_error_set(CK_ERR_DECODE, "not an IPv6 address");
    }
    return 0;
}

static bool
same_sockaddr(const struct sockaddr *a, socklen_t alen, const struct sockaddr_storage *b)
{
    if (a->sa_family != b->ss_family)
        return false;
    if (a->sa_family == AF_INET && alen >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_addr.s_addr == y->sin_addr.s_addr && x->sin_port == y->sin_port;
    }
    if (a->sa_family == AF_INET6 && alen >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0 &&
               x->sin6_port == y->sin6_port;
    }
    return false;
}

static int
psend(ck_phone *ph, enum ck_phone_sock sock, const struct sockaddr_storage *to,
      const uint8_t *buf, size_t len)
{
    return ph->p.send(ph->p.send_arg, sock, (const struct sockaddr *)to, ss_len(to), buf, len);
}

static int
send_command(ck_phone *ph, const char *verb, const char *params, int64_t now, uint32_t *txid)
{
    if (ph->p.channel.send_command != NULL)
        return ph->p.channel.send_command(ph->p.channel.arg, verb, params, now, txid);
    return ck_endpoint_send_command(ph->ep, verb, params, now, txid);
}

static bool
channel_ready(const ck_phone *ph)
{
    if (ph->p.channel.send_command != NULL)
        return ph->p.channel.ready == NULL || ph->p.channel.ready(ph->p.channel.arg);
    return ck_endpoint_restarted(ph->ep);
}

/* The NTFY X: value: the request id of the controller's last RQNT, else one of ours. */
static const char *
reqid(ck_phone *ph)
{
    if (ph->reqid[0] == '\0')
        snprintf(ph->reqid, sizeof(ph->reqid), "%x", ++ph->next_reqid);
    return ph->reqid;
}

static int
ntfy(ck_phone *ph, const char *observed, int64_t now, uint32_t *txid)
{
    char params[160];
    uint32_t t = 0;

    snprintf(params, sizeof(params), "X: %s\r\nO: %s\r\n", reqid(ph), observed);
    return send_command(ph, "NTFY", params, now, txid != NULL ? txid : &t);
}

/* ---------------------------------------------------------------------------------------------
 * Calls.
 */

static struct call *
call_find(ck_phone *ph, const char *callid)
{
    for (size_t i = 0; i < CK_PHONE_MAX_CALLS; i++)
        if (ph->calls[i].used && strcmp(ph->calls[i].callid, callid) == 0)
            return &ph->calls[i];
    return NULL;
}

static size_t
call_keys(const struct call *c)
{
    return (c->tx != NULL) + (c->rx != NULL) + (c->sa_in != NULL) + (c->sa_out != NULL);
}

/* Destroys every key of the call and the call itself. */
static void
call_wipe(struct call *c)
{
    ck_media_ctx_free(c->tx);
    ck_media_ctx_free(c->rx);
    ck_esp_sa_free(c->sa_in);
    ck_esp_sa_free(c->sa_out);
    free(c->rec);
    free(c->have);
    ck_memzero(c, sizeof(*c));
}

static const char *
media_name(const struct call *c)
{
    if (!c->keyed)
        return "none";
    return ck_sdp_media_name(c->sdp_media);
}

/* Reports the call (released by a DLCX, or failed) and wipes it. */
static void
call_end(ck_phone *ph, struct call *c, bool released, const char *reason)
{
    struct ck_phone_call_info info;
    size_t n_rec = 0;

    memset(&info, 0, sizeof(info));
    snprintf(info.callid, sizeof(info.callid), "%s", c->callid);
    info.connected = c->connected;
    info.released = released;
    snprintf(info.reason, sizeof(info.reason), "%s", reason);
    info.media = media_name(c);
    info.ipsec = c->ipsec;
    info.suite = c->suite;
    info.spi = c->spi;
    info.direct_ok = c->ipsec && c->hello_rx;
    info.sent = c->sent;
    info.received = c->received;
    if (c->rx_started)
        info.lost = (c->high_ext - c->first_ext + 1) - c->received;
    info.replayed = c->replayed;
    info.dropped = c->dropped;
    if (c->rx != NULL) {
        struct ck_srtp_stats s;
        ck_media_get_stats(c->rx, &s);
        info.replayed += s.replayed;
        info.dropped += s.bad_auth + s.malformed;
    }
    if (c->rx_started && c->rec != NULL)
        n_rec = (size_t)(c->high_ext - c->first_ext + 1) * CK_PHONE_FRAME_SAMPLES;
    info.recorded = c->rec;
    info.n_recorded = n_rec;
    if (c->connected)
        ph->st.calls_released++;
    else
        ph->st.calls_failed++;
    ph->ended++;
    if (c->caller)
        ph->dial_state = DIAL_DONE;
    plog(ph, "call %s ended: %s", c->callid[0] != '\0' ? c->callid : "-", reason);
    if (ph->p.on_call != NULL)
        ph->p.on_call(ph->p.cb_arg, &info);
    call_wipe(c);
}

/* The caller's attempt failed before any CRCX named a call. */
static void
dial_failed(ck_phone *ph, const char *reason)
{
    struct call c;

    memset(&c, 0, sizeof(c));
    c.caller = true;
    call_end(ph, &c, false, reason);
}

static bool
spi_in_use(const ck_phone *ph, uint32_t spi)
{
    struct ck_endpoint_sa_info sa;

    for (size_t i = 0; i < ph->p.n_hold; i++)
        if (ph->hold[i] == spi)
            return true;
    if (ph->ep != NULL && ck_endpoint_sa_info(ph->ep, &sa) && (sa.spi_in == spi || sa.spi_out == spi))
        return true;
    for (size_t i = 0; i < CK_PHONE_MAX_CALLS; i++) {
        const struct call *c = &ph->calls[i];
        if (c->used && c->keyed && c->spi != 0 && (c->spi == spi || c->spi + 1 == spi))
            return true;
    }
    return false;
}

static enum ck_media_mode
media_mode(enum ck_sdp_media_mode m)
{
    switch (m) {
    case CK_SDP_MEDIA_SRTP_AES_CM: return CK_MEDIA_SRTP_AES_CM;
    case CK_SDP_MEDIA_SRTP_GCM: return CK_MEDIA_SRTP_GCM;
    case CK_SDP_MEDIA_RTP_3DES: return CK_MEDIA_RTP_3DES;
    case CK_SDP_MEDIA_RTP_3DES_MAC: return CK_MEDIA_RTP_3DES_MAC;
    case CK_SDP_MEDIA_RTP: return CK_MEDIA_RTP;
    default: return 0;
    }
}

static int
make_sa(const struct ck_call_esp_keys *k, bool sd, ck_esp_sa **out)
{
    struct ck_esp_sa_params p;

    memset(&p, 0, sizeof(p));
    p.spi = sd ? k->spi_sd : k->spi_ds;
    p.enc = k->suite.enc;
    p.auth = k->suite.auth;
    p.enc_key = sd ? k->enc_sd : k->enc_ds;
    p.enc_key_len = k->enc_len;
    p.auth_key = sd ? k->auth_sd : k->auth_ds;
    p.auth_key_len = k->auth_len;
    p.first_seq = sd ? k->seq_sd : k->seq_ds;
    return ck_esp_sa_new(&p, out);
}

/* Installs what the SDP delivers into c. Returns an MGCP response code (200 on success) and
 * sets *ack when an ACK is due. The SDP's key is wiped by the caller. */
static int
call_install(ck_phone *ph, struct call *c, const struct ck_sdp *s, uint8_t ack[CK_CALL_ACK_LEN],
             bool *has_ack)
{
    struct ck_call_esp_keys ek;
    enum ck_media_mode mode = media_mode(s->media);
    const uint8_t *key = s->has_key ? s->key : NULL;
    size_t key_len = s->has_key ? CK_CALL_KEY_LEN : 0;
    ck_media_ctx *tx = NULL, *rx = NULL;
    ck_esp_sa *in = NULL, *out = NULL;
    int code = 524;

    *has_ack = false;
    memset(&ek, 0, sizeof(ek));
    if (mode == 0 || s->media_port == 0 || s->family == 0)
        return 524;                         /* no media mode or no address */
    if (mode == CK_MEDIA_RTP) {
        if (s->has_key || s->has_ipsec)
            return 524;                     /* keys for an unprotected call make no sense */
    } else if (!s->has_key || !s->has_spi || s->role == 0 ||
               (s->has_ipsec && s->sig_port == 0)) {
        return 524;
    }
    if (s->has_spi && (spi_in_use(ph, s->spi) || spi_in_use(ph, s->spi + 1))) {
        ph->st.spi_in_use++;
        return 533;
    }
    if (make_addr(s->addr, s->media_port, &c->peer_media) != 0 ||
        (s->sig_port != 0 && make_addr(s->addr, s->sig_port, &c->peer_direct) != 0))
        return 524;
    c->is_source = s->role == CK_CALL_ACK_SOURCE;
    if (ck_media_ctx_new(mode, CK_SRTP_SEND, c->is_source, key, key_len, s->spi, &tx) != 0 ||
        ck_media_ctx_new(mode, CK_SRTP_RECV, c->is_source, key, key_len, s->spi, &rx) != 0) {
        code = 502;
        goto out;
    }
    if (s->has_ipsec) {
        if (ck_call_derive_esp(key, key_len, s->ipsec_suite, s->spi, s->compat_seq, &ek) != 0 ||
            make_sa(&ek, !c->is_source, &in) != 0 || make_sa(&ek, c->is_source, &out) != 0) {
            code = 502;
            goto out;
        }
    }
    if (s->has_key) {
        if (ck_call_ack_compute(key, key_len, s->role, s->spi, (const uint8_t *)c->callid,
                                strlen(c->callid), ack) != 0) {
            code = 502;
            goto out;
        }
        *has_ack = true;
    }
    c->tx = tx;
    c->rx = rx;
    c->sa_in = in;
    c->sa_out = out;
    tx = rx = NULL;
    in = out = NULL;
    c->keyed = true;
    c->sdp_media = s->media;
    c->spi = s->has_spi ? s->spi : 0;
    c->ipsec = s->has_ipsec;
    c->suite = s->ipsec_suite;
    snprintf(c->peer_addr, sizeof(c->peer_addr), "%s", s->addr);
    c->peer_len = ss_len(&c->peer_media);
    code = 200;
out:
    ck_call_keys_clear(&ek, sizeof(ek));
    ck_media_ctx_free(tx);
    ck_media_ctx_free(rx);
    ck_esp_sa_free(in);
    ck_esp_sa_free(out);
    return code;
}

/* ---------------------------------------------------------------------------------------------
 * Direct signaling and media.
 */

static int
send_hello(ck_phone *ph, struct call *c, int64_t now)
{
    char text[HELLO_MAX];
    uint8_t inner[DIRECT_BUF], pkt[DIRECT_BUF + 128];
    size_t inner_len, pkt_len;
    int n, rc;

    if (c->sa_out == NULL)
        return 0;
    n = snprintf(text, sizeof(text), "HELLO %s", c->callid);
    if ((rc = ck_esp_udp_wrap(CK_PHONE_DIRECT_PORT, CK_PHONE_DIRECT_PORT, (const uint8_t *)text,
                              (size_t)n, inner, sizeof(inner), &inner_len)) != 0 ||
        (rc = ck_esp_protect(ph->eng, c->sa_out, CK_ESP_NEXT_HEADER_UDP, inner, inner_len,
                             now / 1000, pkt, sizeof(pkt), &pkt_len)) != 0)
        return rc;
    c->hello_tries++;
    c->hello_next_ms = now + CK_PHONE_HELLO_RETRY_MS;
    return psend(ph, CK_PHONE_SOCK_DIRECT, &c->peer_direct, pkt, pkt_len);
}

static int
send_frame(ck_phone *ph, struct call *c)
{
    int16_t pcm[CK_PHONE_FRAME_SAMPLES];
    uint8_t payload[CK_PHONE_FRAME_SAMPLES], buf[MEDIA_BUF];
    struct ck_rtp_header h;
    ck_writer w;
    size_t len;
    int rc;

    for (size_t i = 0; i < CK_PHONE_FRAME_SAMPLES; i++) {
        if (ph->p.audio != NULL && ph->p.audio_len > 0) {
            pcm[i] = ph->p.audio[c->audio_pos];
            c->audio_pos = (c->audio_pos + 1) % ph->p.audio_len;
        } else {
            pcm[i] = 0;
        }
    }
    ck_ulaw_encode_buf(pcm, CK_PHONE_FRAME_SAMPLES, payload);
    memset(&h, 0, sizeof(h));
    h.marker = c->sent == 0;
    h.payload_type = CK_RTP_PT_PCMU;
    h.seq = c->seq;
    h.timestamp = c->ts;
    h.ssrc = c->ssrc;
    ck_writer_init(&w, CK_RTP_MAX_PACKET, false);
    if ((rc = ck_rtp_build(&h, payload, sizeof(payload), 0, &w)) != 0) {
        ck_writer_free(&w);
        return rc;
    }
    memcpy(buf, w.data, w.len);
    len = w.len;
    ck_writer_free(&w);
    if ((rc = ck_media_protect(c->tx, buf, &len, sizeof(buf))) != 0)
        return rc;
    c->seq++;
    c->ts += CK_PHONE_FRAME_SAMPLES;
    c->sent++;
    return psend(ph, CK_PHONE_SOCK_MEDIA, &c->peer_media, buf, len);
}

static int
media_start(ck_phone *ph, struct call *c, int64_t now)
{
    int rc;

    if (c->media_on || c->tx == NULL)
        return 0;
    if ((rc = ck_random_bytes(&c->ssrc, sizeof(c->ssrc))) != 0 ||
        (rc = ck_random_bytes(&c->seq, sizeof(c->seq))) != 0 ||
        (rc = ck_random_bytes(&c->ts, sizeof(c->ts))) != 0)
        return rc;
    /* Keep the 16-bit counter away from wrapping in the first seconds (no functional need;
     * easier captures to read). */
    c->seq &= 0x7fff;
    c->media_on = true;
    c->connected = true;
    c->next_frame_ms = now;
    ph->st.calls_connected++;
    if (c->caller)
        c->hangup_at_ms = now + (ph->p.talk_ms > 0 ? ph->p.talk_ms : DEFAULT_TALK_MS);
    plog(ph, "call %s connected", c->callid);
    return 0;
}

/* Places one decoded frame. The RTP packet in buf has been unprotected. */
static void
media_frame(ck_phone *ph, struct call *c, const uint8_t *buf, size_t len)
{
    struct ck_rtp_packet pkt;
    uint64_t ext, idx;

    if (ck_rtp_parse(buf, len, &pkt) != 0 || pkt.hdr.payload_type != CK_RTP_PT_PCMU ||
        pkt.payload_len != CK_PHONE_FRAME_SAMPLES) {
        c->dropped++;
        return;
    }
    if (!c->rx_started) {
        c->rx_started = true;
        c->rx_ssrc = pkt.hdr.ssrc;
        c->first_ext = c->high_ext = (uint64_t)pkt.hdr.seq + 65536u * 4;
        ext = c->first_ext;
    } else {
        int16_t d;
        if (pkt.hdr.ssrc != c->rx_ssrc) {
            c->dropped++;
            return;
        }
        d = (int16_t)(uint16_t)(pkt.hdr.seq - (uint16_t)c->high_ext);
        ext = (uint64_t)((int64_t)c->high_ext + d);
        if (ext < c->first_ext) {
            c->dropped++;                   /* older than the first frame kept */
            return;
        }
    }
    idx = ext - c->first_ext;
    if (idx >= MAX_FRAMES) {
        c->dropped++;
        return;
    }
    if (idx >= c->frames_cap) {
        size_t cap = c->frames_cap > 0 ? c->frames_cap : 256;
        uint8_t *have;
        while (cap <= idx)
            cap *= 2;
        if (cap > MAX_FRAMES)
            cap = MAX_FRAMES;
        if ((have = realloc(c->have, cap)) == NULL) {
            c->dropped++;
            return;
        }
        memset(have + c->frames_cap, 0, cap - c->frames_cap);
        c->have = have;
        if (ph->p.record) {
            int16_t *rec = realloc(c->rec, cap * CK_PHONE_FRAME_SAMPLES * sizeof(int16_t));
            if (rec == NULL) {
                c->dropped++;
                return;
            }
            memset(rec + c->frames_cap * CK_PHONE_FRAME_SAMPLES, 0,
                   (cap - c->frames_cap) * CK_PHONE_FRAME_SAMPLES * sizeof(int16_t));
            c->rec = rec;
        }
        c->frames_cap = cap;
    }
    if (c->have[idx]) {
        c->replayed++;                      /* a duplicate that got through (plain RTP) */
        return;
    }
    c->have[idx] = 1;
    c->received++;
    if (ext > c->high_ext)
        c->high_ext = ext;
    if (c->rec != NULL)
        ck_ulaw_decode_buf(pkt.payload, CK_PHONE_FRAME_SAMPLES,
                           c->rec + idx * CK_PHONE_FRAME_SAMPLES);
    c->peer_ready = true;
}

static void
on_media(ck_phone *ph, const uint8_t *data, size_t len, const struct sockaddr *from,
         socklen_t from_len)
{
    uint8_t buf[MEDIA_BUF];
    struct call *c = NULL;
    int rc;

    for (size_t i = 0; i < CK_PHONE_MAX_CALLS; i++) {
        struct call *x = &ph->calls[i];
        if (x->used && x->rx != NULL && same_sockaddr(from, from_len, &x->peer_media)) {
            c = x;
            break;
        }
    }
    if (c == NULL || len > CK_RTP_MAX_PACKET) {
        ph->st.media_dropped++;
        return;
    }
    memcpy(buf, data, len);
    /* The media context counts its own refusals (replays, bad tags, malformed). */
    if ((rc = ck_media_unprotect(c->rx, buf, &len)) != 0)
        return;
    media_frame(ph, c, buf, len);
}

static int
on_direct(ck_phone *ph, const uint8_t *buf, size_t len, int64_t now)
{
    uint8_t payload[DIRECT_BUF];
    const uint8_t *data;
    char want[HELLO_MAX];
    size_t plen, dlen;
    uint16_t sp, dp;
    uint32_t spi;
    uint8_t nh;
    struct call *c = NULL;
    int n;

    if (ck_esp_udp_classify(buf, len, &spi) != CK_ESP_UDP_ESP) {
        ph->st.direct_dropped++;
        return 0;
    }
    for (size_t i = 0; i < CK_PHONE_MAX_CALLS; i++) {
        struct call *x = &ph->calls[i];
        if (x->used && x->sa_in != NULL && ck_esp_sa_spi(x->sa_in) == spi) {
            c = x;
            break;
        }
    }
    if (c == NULL) {
        ph->st.direct_dropped++;
        return 0;
    }
    if (ck_esp_unprotect(ph->eng, c->sa_in, buf, len, now / 1000, payload, sizeof(payload), &plen,
                         &nh) != 0 ||
        nh != CK_ESP_NEXT_HEADER_UDP ||
        ck_esp_udp_unwrap(payload, plen, &sp, &dp, &data, &dlen) != 0 ||
        sp != CK_PHONE_DIRECT_PORT || dp != CK_PHONE_DIRECT_PORT) {
        ph->st.direct_dropped++;
        c->dropped++;
        return 0;
    }
    n = snprintf(want, sizeof(want), "HELLO %s", c->callid);
    if (dlen != (size_t)n || memcmp(data, want, dlen) != 0) {
        ph->st.direct_dropped++;
        c->dropped++;
        return 0;
    }
    c->hello_rx = true;
    c->peer_ready = true;
    /* The destination answers every HELLO, so the source's retries end as soon as one of ours
     * gets through. */
    if (!c->is_source)
        return send_hello(ph, c, now);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * The controller's commands.
 */

static void
respond(ck_writer *w, int code, uint32_t txid, const char *comment, const char *sdp)
{
    w->len = 0;
    if (ck_mgcp_build_response(code, txid, comment, NULL, 0, sdp, w) != 0) {
        char line[64];
        int n = snprintf(line, sizeof(line), "%d %u %s\r\n", code, txid, comment);
        w->len = 0;
        (void)ck_writer_bytes(w, line, (size_t)n);
    }
}

static void
refuse(ck_phone *ph, ck_writer *w, int code, uint32_t txid, const char *why)
{
    ph->st.refused++;
    plog(ph, "refused %d: %s", code, why);
    respond(w, code, txid, why, NULL);
}

/* Our SDP: media address and port, direct-signaling port, the ACK when there is one. */
static int
our_sdp(const ck_phone *ph, const struct call *c, const uint8_t *ack, char *buf, size_t size)
{
    struct ck_sdp s;
    size_t len;
    int rc;

    memset(&s, 0, sizeof(s));
    s.family = ph->family;
    snprintf(s.addr, sizeof(s.addr), "%s", ph->media_addr);
    s.media_port = ph->p.media_port;
    s.secure_profile = c->keyed && c->sdp_media != CK_SDP_MEDIA_RTP;
    s.session_id = c->sdp_session;
    s.sig_port = ph->p.direct_port;
    if (ack != NULL) {
        s.has_ack = true;
        memcpy(s.ack, ack, CK_CALL_ACK_LEN);
    }
    rc = ck_sdp_build(&s, buf, size, &len);
    ck_sdp_clear(&s);
    return rc;
}

static bool
callid_ok(const char *v)
{
    size_t n = strlen(v);

    if (n == 0 || n > CK_MGCP_MAX_CALLID)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((v[i] >= '0' && v[i] <= '9') || (v[i] >= 'a' && v[i] <= 'f') ||
              (v[i] >= 'A' && v[i] <= 'F')))
            return false;
    return true;
}

/* CRCX or MDCX carrying an SDP: install what it delivers and answer. */
static void
answer_with_install(ck_phone *ph, struct call *c, const struct ck_mgcp_msg *m, bool created,
                    ck_writer *w)
{
    struct ck_sdp s;
    uint8_t ack[CK_CALL_ACK_LEN];
    char sdp[CK_MGCP_MAX_MSG];
    bool has_ack = false, installed = false;
    int code = 200;

    memset(&s, 0, sizeof(s));
    if (m->has_sdp) {
        if (ck_sdp_parse(m->sdp, m->sdp_len, &s) != 0) {
            code = 524;
        } else if (c->keyed) {
            code = 501;                     /* keys twice for one call: never reinstalled */
        } else {
            code = call_install(ph, c, &s, ack, &has_ack);
            installed = code == 200;
            if (has_ack && ph->p.test_bad_ack)
                ack[0] ^= 0x01;
        }
        ck_sdp_clear(&s);
    }
    if (code == 200 && our_sdp(ph, c, has_ack ? ack : NULL, sdp, sizeof(sdp)) != 0)
        code = 502;
    ck_memzero(&s, sizeof(s));
    if (code != 200) {
        if (created)
            call_wipe(c);
        refuse(ph, w, code, m->txid,
               code == 533 ? "SPI in use" : code == 501 ? "already keyed" : "bad SDP");
        return;
    }
    respond(w, 200, m->txid, "OK", sdp);
    if (has_ack && ph->lose_acks > 0 && ph->ep != NULL) {
        ck_endpoint_drop_reply(ph->ep, (unsigned)ph->lose_acks);
        plog(ph, "test: answer to txid %u lost %d times", m->txid, ph->lose_acks);
        ph->lose_acks = 0;
    }
    if (installed && c->ipsec && ph->p.on_sas != NULL)
        ph->p.on_sas(ph->p.cb_arg, c->callid, c->sa_in, c->sa_out, ph->media_addr, c->peer_addr);
    plog(ph, "call %s: %s%s", c->callid, c->keyed ? "keys installed, media " : "created",
         c->keyed ? media_name(c) : "");
}

static void
on_crcx(ck_phone *ph, const struct ck_mgcp_msg *m, const char *callid, int64_t now,
        ck_writer *w)
{
    struct call *c = NULL;

    if (call_find(ph, callid) != NULL) {
        refuse(ph, w, 501, m->txid, "call exists");
        return;
    }
    for (size_t i = 0; i < CK_PHONE_MAX_CALLS; i++) {
        if (!ph->calls[i].used) {
            c = &ph->calls[i];
            break;
        }
    }
    /* A caller takes no call it did not dial; a plain phone has one line. */
    if (c == NULL || (!m->has_sdp && ph->dial_state != DIAL_DIGITS) ||
        (m->has_sdp && (ph->p.dial != NULL && !ph->p.server))) {
        refuse(ph, w, 502, m->txid, "no line free");
        return;
    }
    memset(c, 0, sizeof(*c));
    c->used = true;
    snprintf(c->callid, sizeof(c->callid), "%s", callid);
    c->hangup_at_ms = -1;
    c->answer_at_ms = -1;
    c->caller = !m->has_sdp;
    c->answered = c->caller;
    if (ck_random_bytes(&c->sdp_session, sizeof(c->sdp_session)) != 0)
        c->sdp_session = 1;
    c->sdp_session &= INT64_MAX;
    answer_with_install(ph, c, m, true, w);
    if (!c->used)
        return;
    if (!c->caller) {
        const char *mode = ck_mgcp_param(m, "M");
        c->sendrecv = mode != NULL && strcmp(mode, "sendrecv") == 0;
        c->answer_at_ms = now + (ph->p.answer_after_ms > 0 ? ph->p.answer_after_ms : 0);
        plog(ph, "ringing %s", c->callid);
    }
}

static void
on_mdcx(ck_phone *ph, const struct ck_mgcp_msg *m, struct call *c, int64_t now, ck_writer *w)
{
    const char *mode = ck_mgcp_param(m, "M");
    bool sendrecv = mode != NULL && strcmp(mode, "sendrecv") == 0;

    if (!m->has_sdp && sendrecv && !c->keyed) {
        refuse(ph, w, 501, m->txid, "no media yet");
        return;
    }
    answer_with_install(ph, c, m, false, w);
    if (w->len < 3 || memcmp(w->data, "200", 3) != 0)
        return;
    if (m->has_sdp && c->keyed && c->ipsec && c->is_source && c->hello_tries == 0)
        (void)send_hello(ph, c, now);
    if (sendrecv) {
        c->sendrecv = true;
        if (c->caller)
            (void)media_start(ph, c, now);
    }
}

void
ck_phone_on_command(ck_phone *ph, const char *text, size_t len, int64_t now, ck_writer *w)
{
    struct ck_mgcp_msg *m = &ph->msg;
    struct ck_endpoint_signal sig;
    const char *callid;
    struct call *c;

    ph->now = now;
    if (ck_endpoint_signal_parse((const uint8_t *)text, len, &sig) != 0 || sig.is_response) {
        ph->st.refused++;                   /* no transaction id to answer */
        return;
    }
    ph->st.commands++;
    if (ck_mgcp_parse((const uint8_t *)text, len, m) != 0) {
        refuse(ph, w, 510, sig.txid, "protocol error");
        goto out;
    }
    if (strcmp(m->verb, "RQNT") == 0 || strcmp(m->verb, "AUEP") == 0) {
        const char *x = ck_mgcp_param(m, "X");
        if (x != NULL && strlen(x) < sizeof(ph->reqid) && strpbrk(x, " \t") == NULL)
            snprintf(ph->reqid, sizeof(ph->reqid), "%s", x);
        respond(w, 200, m->txid, "OK", NULL);
        goto out;
    }
    if (strcmp(m->verb, "CRCX") != 0 && strcmp(m->verb, "MDCX") != 0 &&
        strcmp(m->verb, "DLCX") != 0) {
        refuse(ph, w, 504, m->txid, "unknown command");
        goto out;
    }
    callid = ck_mgcp_param(m, "C");
    if (strcmp(m->verb, "DLCX") == 0) {
        const char *why = ck_mgcp_param(m, "X-CK-Reason");
        char reason[32];
        snprintf(reason, sizeof(reason), "%s",
                 why != NULL && *why != '\0' && strpbrk(why, " \t") == NULL ? why : "hangup");
        if (callid != NULL && (c = call_find(ph, callid)) != NULL) {
            respond(w, 250, m->txid, "OK", NULL);
            call_end(ph, c, true, reason);
        } else if (ph->dial_state == DIAL_OFFHOOK || ph->dial_state == DIAL_DIGITS) {
            /* The controller gave up on our attempt before a connection existed
             * (unknown-number, ...). */
            respond(w, 250, m->txid, "OK", NULL);
            dial_failed(ph, reason);
        } else {
            refuse(ph, w, 516, m->txid, "unknown call");
        }
        goto out;
    }
    if (callid == NULL || !callid_ok(callid)) {
        refuse(ph, w, 516, m->txid, "bad call id");
        goto out;
    }
    if (strcmp(m->verb, "CRCX") == 0) {
        on_crcx(ph, m, callid, now, w);
    } else if ((c = call_find(ph, callid)) != NULL) {
        on_mdcx(ph, m, c, now, w);
    } else {
        refuse(ph, w, 516, m->txid, "unknown call");
    }
out:
    ck_mgcp_msg_clear(m);
}

void
ck_phone_on_response(ck_phone *ph, uint32_t txid, int code, const char *text, size_t len,
                     int64_t now)
{
    char obs[2 * CK_MGCP_MAX_DIGITS + 1];

    (void)text;
    (void)len;
    ph->now = now;
    if (code >= 400)
        ph->st.ntfy_refused++;
    if (txid == ph->offhook_txid && ph->dial_state == DIAL_OFFHOOK) {
        if (code != 200) {
            dial_failed(ph, "offhook-refused");
            return;
        }
        if (ck_mgcp_format_digits(ph->dial, obs, sizeof(obs)) != 0 ||
            ntfy(ph, obs, now, &ph->digits_txid) != 0) {
            ph->deferred_rc = CK_ERR_INVAL;
            dial_failed(ph, "dial");
            return;
        }
        ph->dial_state = DIAL_DIGITS;
        plog(ph, "dialled %s", ph->dial);
    } else if (txid == ph->digits_txid && ph->dial_state == DIAL_DIGITS && code != 200) {
        dial_failed(ph, "dial-refused");
    }
}

/* ---------------------------------------------------------------------------------------------
 * Time.
 */

static int
progress(ck_phone *ph, int64_t now)
{
    int rc;

    if (!ph->registered && channel_ready(ph)) {
        ph->registered = true;
        plog(ph, "registered");
    }
    if (ph->p.dial != NULL && ph->dial_state == DIAL_NONE && channel_ready(ph)) {
        if ((rc = ntfy(ph, "hd", now, &ph->offhook_txid)) != 0)
            return rc;
        ph->dial_state = DIAL_OFFHOOK;
        plog(ph, "offhook");
    }
    for (size_t i = 0; i < CK_PHONE_MAX_CALLS; i++) {
        struct call *c = &ph->calls[i];
        if (!c->used)
            continue;
        if (!c->caller && !c->answered && c->answer_at_ms >= 0 && now >= c->answer_at_ms) {
            if ((rc = ntfy(ph, "hd", now, NULL)) != 0)
                return rc;
            c->answered = true;
            plog(ph, "answered %s", c->callid);
        }
        /* The callee talks once the caller is proven ready: its HELLO (keys installed) or its
         * first media packet (connected). */
        if (!c->caller && c->answered && c->peer_ready && c->keyed && !c->media_on &&
            (rc = media_start(ph, c, now)) != 0)
            return rc;
        if (c->ipsec && c->is_source && c->keyed && !c->hello_rx && c->hello_tries > 0 &&
            c->hello_tries < CK_PHONE_HELLO_TRIES && now >= c->hello_next_ms &&
            (rc = send_hello(ph, c, now)) != 0)
            return rc;
        if (c->media_on) {
            int burst = 0;
            if (now - c->next_frame_ms > CATCH_UP_MS)
                c->next_frame_ms = now;
            while (c->media_on && now >= c->next_frame_ms && burst++ < 16) {
                if ((rc = send_frame(ph, c)) != 0)
                    return rc;
                c->next_frame_ms += CK_PHONE_FRAME_MS;
            }
        }
        if (c->caller && c->hangup_at_ms >= 0 && now >= c->hangup_at_ms && !c->onhook_sent) {
            c->media_on = false;
            c->onhook_sent = true;
            if ((rc = ntfy(ph, "hu", now, NULL)) != 0)
                return rc;
            plog(ph, "onhook %s", c->callid);
        }
    }
    return 0;
}

int64_t
ck_phone_next_timeout_ms(const ck_phone *ph, int64_t now)
{
    int64_t t = -1, w;

    for (size_t i = 0; i < CK_PHONE_MAX_CALLS; i++) {
        const struct call *c = &ph->calls[i];
        if (!c->used)
            continue;
        if (!c->caller && !c->answered && c->answer_at_ms >= 0)
            t = ck_deadline_min(t, c->answer_at_ms);
        if (c->media_on)
            t = ck_deadline_min(t, c->next_frame_ms);
        if (c->caller && c->hangup_at_ms >= 0 && !c->onhook_sent)
            t = ck_deadline_min(t, c->hangup_at_ms);
        if (c->ipsec && c->is_source && !c->hello_rx && c->hello_tries > 0 &&
            c->hello_tries < CK_PHONE_HELLO_TRIES)
            t = ck_deadline_min(t, c->hello_next_ms);
    }
    if (t >= 0)
        t = t > now ? t - now : 0;
    if (ph->ep != NULL && (w = ck_endpoint_next_timeout_ms(ph->ep, now)) >= 0)
        t = t < 0 ? w : (w < t ? w : t);
    return t;
}

int
ck_phone_on_timer(ck_phone *ph, int64_t now)
{
    int rc;

    ph->now = now;
    if (ph->ep != NULL && (rc = ck_endpoint_on_timer(ph->ep, now)) != 0)
        return rc;
    return progress(ph, now);
}

int
ck_phone_on_datagram(ck_phone *ph, enum ck_phone_sock sock, const uint8_t *buf, size_t len,
                     const struct sockaddr *from, socklen_t from_len, int64_t now)
{
    int rc = 0;

    ph->now = now;
    ph->deferred_rc = 0;
    if (buf == NULL || from == NULL)
        return 0;
    switch (sock) {
    case CK_PHONE_SOCK_SIG:
        if (ph->ep != NULL)
            rc = ck_endpoint_on_datagram(ph->ep, buf, len, from, from_len, now);
        break;
    case CK_PHONE_SOCK_MEDIA:
        on_media(ph, buf, len, from, from_len);
        break;
    case CK_PHONE_SOCK_DIRECT:
        rc = on_direct(ph, buf, len, now);
        break;
    }
    if (rc == 0)
        rc = ph->deferred_rc;
    if (rc == 0)
        rc = progress(ph, now);
    return rc;
}

int
ck_phone_hangup(ck_phone *ph, int64_t now)
{
    int rc;

    for (size_t i = 0; i < CK_PHONE_MAX_CALLS; i++) {
        struct call *c = &ph->calls[i];
        if (!c->used || c->onhook_sent)
            continue;
        c->media_on = false;
        c->onhook_sent = true;
        if ((rc = ntfy(ph, "hu", now, NULL)) != 0)
            return rc;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Endpoint glue.
 */

static int
ep_send(void *arg, const struct sockaddr *to, socklen_t to_len, const uint8_t *buf, size_t len)
{
    ck_phone *ph = arg;

    return ph->p.send(ph->p.send_arg, CK_PHONE_SOCK_SIG, to, to_len, buf, len);
}

static void
ep_event(void *arg, enum ck_endpoint_event ev, const char *detail)
{
    ck_phone *ph = arg;

    if (ph->user_event != NULL)
        ph->user_event(ph->user_event_arg, ev, detail);
}

static void
ep_command(void *arg, const char *verb, uint32_t txid, const char *text, size_t len,
           ck_writer *reply)
{
    ck_phone *ph = arg;

    (void)verb;
    (void)txid;
    ck_phone_on_command(ph, text, len, ph->now, reply);
}

static void
ep_response(void *arg, uint32_t txid, int code, const char *text, size_t len)
{
    ck_phone *ph = arg;

    ck_phone_on_response(ph, txid, code, text, len, ph->now);
}

/* ---------------------------------------------------------------------------------------------
 * Life cycle and queries.
 */

int
ck_phone_new(const struct ck_phone_params *p, ck_phone **out)
{
    ck_phone *ph = NULL;
    struct ck_endpoint_params ep;
    struct sockaddr_storage probe;
    int rc;

    *out = NULL;
    if (p == NULL || p->send == NULL || p->media_addr == NULL || p->media_port == 0 ||
        p->direct_port == 0)
        return ck_error_set(CK_ERR_INVAL, "phone: send, media address and ports are required");
    if (p->n_hold > CK_PHONE_MAX_HOLD)
        return ck_error_set(CK_ERR_LIMIT, "phone: more than %d held SPIs", CK_PHONE_MAX_HOLD);
    if (p->dial != NULL && p->server)
        return ck_error_set(CK_ERR_INVAL, "phone: a server does not dial");
    if ((ph = calloc(1, sizeof(*ph))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "phone");
    ph->p = *p;
    if (ck_strlcpy(ph->media_addr, p->media_addr, sizeof(ph->media_addr)) >=
            sizeof(ph->media_addr) ||
        make_addr(ph->media_addr, p->media_port, &probe) != 0) {
        rc = ck_error_set(CK_ERR_INVAL, "phone: the media address must be numeric");
        goto fail;
    }
    ph->p.media_addr = ph->media_addr;
    ph->lose_acks = p->test_lose_acks;
    ph->family = probe.ss_family == AF_INET ? 4 : 6;
    if (p->n_hold > 0)
        memcpy(ph->hold, p->hold_spi, p->n_hold * sizeof(ph->hold[0]));
    ph->p.hold_spi = ph->hold;
    if (p->dial != NULL) {
        char tmp[2 * CK_MGCP_MAX_DIGITS + 1];
        if (ck_strlcpy(ph->dial, p->dial, sizeof(ph->dial)) >= sizeof(ph->dial) ||
            ck_mgcp_format_digits(ph->dial, tmp, sizeof(tmp)) != 0) {
            rc = ck_error_set(CK_ERR_INVAL, "phone: bad number to dial");
            goto fail;
        }
        ph->p.dial = ph->dial;
    }
    ph->p.audio = NULL;
    ph->p.audio_len = 0;
    if (p->audio != NULL && p->audio_len > 0) {
        int16_t *a = malloc(p->audio_len * sizeof(int16_t));
        if (a == NULL) {
            rc = ck_error_set(CK_ERR_NOMEM, "phone: audio");
            goto fail;
        }
        memcpy(a, p->audio, p->audio_len * sizeof(int16_t));
        ph->p.audio = a;
        ph->p.audio_len = p->audio_len;
    }
    if ((rc = ck_esp_engine_new(&ph->eng)) != 0)
        goto fail;
    if (p->channel.send_command == NULL) {
        ep = p->ep;
        ph->user_event = p->ep.on_event;
        ph->user_event_arg = p->ep.cb_arg;
        ep.send = ep_send;
        ep.send_arg = ph;
        ep.on_event = ep_event;
        ep.on_response = NULL;
        ep.on_command = NULL;
        ep.on_response_text = ep_response;
        ep.on_command_reply = ep_command;
        ep.cb_arg = ph;
        if ((rc = ck_endpoint_new(&ep, &ph->ep)) != 0)
            goto fail;
    }
    *out = ph;
    return 0;
fail:
    ck_phone_free(ph);
    return rc;
}

void
ck_phone_free(ck_phone *ph)
{
    if (ph == NULL)
        return;
    for (size_t i = 0; i < CK_PHONE_MAX_CALLS; i++)
        if (ph->calls[i].used)
            call_wipe(&ph->calls[i]);
    ck_endpoint_free(ph->ep);
    ck_esp_engine_free(ph->eng);
    free((void *)ph->p.audio);
    ck_mgcp_msg_clear(&ph->msg);
    ck_memzero(ph, sizeof(*ph));
    free(ph);
}

int
ck_phone_start(ck_phone *ph, int64_t now)
{
    int rc;

    ph->now = now;
    if (ph->ep != NULL && (rc = ck_endpoint_start(ph->ep, now)) != 0)
        return rc;
    return progress(ph, now);
}

size_t
ck_phone_calls_ended(const ck_phone *ph)
{
    return ph->ended;
}

size_t
ck_phone_active_calls(const ck_phone *ph)
{
    size_t n = 0;

    for (size_t i = 0; i < CK_PHONE_MAX_CALLS; i++)
        n += ph->calls[i].used;
    return n;
}

size_t
ck_phone_live_keys(const ck_phone *ph)
{
    size_t n = 0;

    for (size_t i = 0; i < CK_PHONE_MAX_CALLS; i++)
        if (ph->calls[i].used)
            n += call_keys(&ph->calls[i]);
    return n;
}

void
ck_phone_get_stats(const ck_phone *ph, struct ck_phone_stats *out)
{
    *out = ph->st;
}

ck_endpoint *
ck_phone_endpoint(ck_phone *ph)
{
    return ph->ep;
}
