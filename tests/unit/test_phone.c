/* The phone adapter (lib/endpoint/phone.c) driven through virtual time with its controller channel
 * replaced by the test: the test plays both controllers (CRCX/MDCX/DLCX built with lib/mgcp,
 * keys from ck_call_*), two phones run in-process and their media and direct-signaling datagrams
 * are delivered by port. Checks the answers (SDP, ACKs verified by the controller's function),
 * 533 on every kind of SPI collision, keys installed once and wiped at DLCX, sample-exact audio
 * both ways for every media mode, and hostile commands and datagrams dropped and counted. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ck_test.h"
#include "cablekey/error.h"
#include "cablekey/kmm.h"
#include "cablekey/media.h"
#include "cablekey/mgcp.h"
#include "cablekey/phone.h"
#include "cablekey/util.h"

#define MAX_OUT 4096
#define PKT_MAX 2048
#define MAX_CMDS 64
#define AUDIO_LEN 1000                 /* not a multiple of 160: the loop crosses frames */

struct pkt {
    int from;                          /* phone index */
    enum ck_phone_sock sock;
    struct sockaddr_storage to;
    uint8_t data[PKT_MAX];
    size_t len;
};

struct fake {
    ck_phone *ph;
    uint16_t media_port, direct_port;
    /* what the phone sent its controller */
    char verbs[MAX_CMDS][8];
    char params[MAX_CMDS][256];
    uint32_t txids[MAX_CMDS];
    size_t n_cmds;
    uint32_t next_txid;
    /* calls it reported */
    struct ck_phone_call_info info;
    int16_t rec[8000 * 10];
    size_t n_rec;
    int calls;
};

static struct pkt *outbox;
static size_t n_out;
static struct fake ph[3];
static int64_t vnow;
static int16_t audio[2][AUDIO_LEN];
static uint32_t ctl_txid = 100;

static int
ph_send(void *arg, enum ck_phone_sock sock, const struct sockaddr *to, socklen_t to_len,
        const uint8_t *buf, size_t len)
{
    struct fake *f = arg;

    if (n_out >= MAX_OUT || len > PKT_MAX)
        return 0;
    memset(&outbox[n_out], 0, sizeof(outbox[n_out]));
    outbox[n_out].from = (int)(f - ph);
    outbox[n_out].sock = sock;
    memcpy(&outbox[n_out].to, to, to_len);
    memcpy(outbox[n_out].data, buf, len);
    outbox[n_out].len = len;
    n_out++;
    return 0;
}

static int
ch_send(void *arg, const char *verb, const char *params, int64_t now, uint32_t *txid)
{
    struct fake *f = arg;

    (void)now;
    CHECK(f->n_cmds < MAX_CMDS);
    if (f->n_cmds >= MAX_CMDS)
        return CK_ERR_LIMIT;
    snprintf(f->verbs[f->n_cmds], sizeof(f->verbs[0]), "%s", verb);
    snprintf(f->params[f->n_cmds], sizeof(f->params[0]), "%s", params);
    f->txids[f->n_cmds] = ++f->next_txid;
    *txid = f->txids[f->n_cmds];
    f->n_cmds++;
    return 0;
}

static void
on_call(void *arg, const struct ck_phone_call_info *info)
{
    struct fake *f = arg;

    f->info = *info;
    f->info.recorded = NULL;
    f->calls++;
    f->n_rec = info->n_recorded < sizeof(f->rec) / 2 ? info->n_recorded : sizeof(f->rec) / 2;
    if (info->recorded != NULL)
        memcpy(f->rec, info->recorded, f->n_rec * sizeof(int16_t));
}

static uint16_t
port_of(const struct sockaddr_storage *ss)
{
    return ntohs(((const struct sockaddr_in *)(const void *)ss)->sin_port);
}

static void
addr_of(uint16_t port, struct sockaddr_storage *ss)
{
    struct sockaddr_in *a = (struct sockaddr_in *)(void *)ss;

    memset(ss, 0, sizeof(*ss));
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

/* Delivers everything in the outbox to the phone owning the destination port. Returns how many
 * were delivered. */
static size_t
pump(void)
{
    size_t delivered = 0;

    for (size_t i = 0; i < n_out; i++) {
        struct pkt *p = &outbox[i];
        struct sockaddr_storage from;
        uint16_t dport = port_of(&p->to);
        for (int k = 0; k < 3; k++) {
            if (ph[k].ph == NULL)
                continue;
            if (dport == ph[k].media_port && p->sock == CK_PHONE_SOCK_MEDIA) {
                addr_of(ph[p->from].media_port, &from);
            } else if (dport == ph[k].direct_port && p->sock == CK_PHONE_SOCK_DIRECT) {
                addr_of(ph[p->from].direct_port, &from);
            } else {
                continue;
            }
            CHECK_OK(ck_phone_on_datagram(ph[k].ph, p->sock, p->data, p->len,
                                          (struct sockaddr *)&from, sizeof(struct sockaddr_in),
                                          vnow));
            delivered++;
        }
    }
    n_out = 0;
    return delivered;
}

static void
advance(int64_t ms)
{
    int64_t end = vnow + ms;

    for (int guard = 0; guard < 1000000; guard++) {
        int64_t next = -1;
        for (int k = 0; k < 3; k++) {
            int64_t w;
            if (ph[k].ph == NULL || (w = ck_phone_next_timeout_ms(ph[k].ph, vnow)) < 0)
                continue;
            if (next < 0 || w < next)
                next = w;
        }
        if (next < 0 || vnow + next > end)
            break;
        vnow += next;
        for (int k = 0; k < 3; k++)
            if (ph[k].ph != NULL)
                CHECK_OK(ck_phone_on_timer(ph[k].ph, vnow));
        pump();
    }
    vnow = end;
    for (int k = 0; k < 3; k++)
        if (ph[k].ph != NULL)
            CHECK_OK(ck_phone_on_timer(ph[k].ph, vnow));
    pump();
}

struct opts {
    const char *dial;
    bool server;
    int64_t answer_after;
    const uint32_t *hold;
    size_t n_hold;
};

static void
phone_up(int k, const struct opts *o)
{
    struct ck_phone_params p;
    struct fake *f = &ph[k];

    memset(f, 0, sizeof(*f));
    f->media_port = (uint16_t)(16000 + 2 * k);
    f->direct_port = (uint16_t)(17000 + k);
    memset(&p, 0, sizeof(p));
    p.channel.send_command = ch_send;
    p.channel.arg = f;
    p.send = ph_send;
    p.send_arg = f;
    p.media_addr = "127.0.0.1";
    p.media_port = f->media_port;
    p.direct_port = f->direct_port;
    p.dial = o->dial;
    p.server = o->server;
    p.talk_ms = 1000;
    p.answer_after_ms = o->answer_after;
    p.audio = audio[k % 2];
    p.audio_len = AUDIO_LEN;
    p.record = true;
    p.hold_spi = o->hold;
    p.n_hold = o->n_hold;
    p.on_call = on_call;
    p.cb_arg = f;
    CHECK_OK(ck_phone_new(&p, &f->ph));
    CHECK_OK(ck_phone_start(f->ph, vnow));
}

static void
phones_down(void)
{
    for (int k = 0; k < 3; k++) {
        ck_phone_free(ph[k].ph);
        ph[k].ph = NULL;
    }
    n_out = 0;
}

/* ---- the controller's side ---- */

struct delivery {
    uint8_t key[CK_CALL_KEY_LEN];
    uint32_t spi;
    enum ck_sdp_media_mode media;
    bool ipsec, compat_seq, keyless;
};

/* SDP for a party: the peer's address and the key lines for role. */
static void
key_sdp(const struct delivery *d, int peer, enum ck_call_ack_role role, char *buf, size_t size)
{
    struct ck_sdp s;
    size_t len;

    memset(&s, 0, sizeof(s));
    s.family = 4;
    snprintf(s.addr, sizeof(s.addr), "127.0.0.1");
    s.media_port = ph[peer].media_port;
    s.sig_port = ph[peer].direct_port;
    s.media = d->media;
    if (!d->keyless) {
        s.has_key = true;
        memcpy(s.key, d->key, sizeof(s.key));
        s.has_spi = true;
        s.spi = d->spi;
        s.role = role;
    }
    if (d->ipsec) {
        s.has_ipsec = true;
        s.ipsec_suite = (struct ck_kmm_suite){CK_KMM_AUTH_HMAC_SHA1_96, CK_KMM_ENC_AES128};
        s.compat_seq = d->compat_seq;
    }
    CHECK_OK(ck_sdp_build(&s, buf, size, &len));
    ck_sdp_clear(&s);
}

/* Sends a command to phone k; the response is parsed into *resp. */
static uint32_t
command(int k, const char *verb, const char *callid, const char *mode, const char *reason,
        const char *sdp, struct ck_mgcp_msg *resp)
{
    struct ck_mgcp_param p[3];
    size_t n = 0;
    ck_writer w, r;
    uint32_t txid = ++ctl_txid;

    memset(p, 0, sizeof(p));
    if (callid != NULL) {
        snprintf(p[n].name, sizeof(p[n].name), "C");
        snprintf(p[n++].value, sizeof(p[0].value), "%s", callid);
    }
    if (mode != NULL) {
        snprintf(p[n].name, sizeof(p[n].name), "M");
        snprintf(p[n++].value, sizeof(p[0].value), "%s", mode);
    }
    if (reason != NULL) {
        snprintf(p[n].name, sizeof(p[n].name), "X-CK-Reason");
        snprintf(p[n++].value, sizeof(p[0].value), "%s", reason);
    }
    ck_writer_init(&w, CK_MGCP_MAX_MSG, true);
    ck_writer_init(&r, CK_ENDPOINT_MAX_SIGNAL, false);
    CHECK_OK(ck_mgcp_build_command(verb, txid, "aaln/1@phone.test", p, n, sdp, &w));
    ck_phone_on_command(ph[k].ph, (const char *)w.data, w.len, vnow, &r);
    CHECK(r.len > 0);
    memset(resp, 0, sizeof(*resp));
    if (r.len > 0)
        CHECK_OK(ck_mgcp_parse(r.data, r.len, resp));
    CHECK_INT_EQ(resp->txid, txid);
    ck_writer_free(&w);
    ck_writer_free(&r);
    return txid;
}

/* The phone's last command to its controller is an NTFY with O: value; the controller
 * answers code. */
static void
expect_ntfy(int k, const char *observed, int code)
{
    struct fake *f = &ph[k];
    char want[64];

    CHECK(f->n_cmds > 0);
    if (f->n_cmds == 0)
        return;
    CHECK(strcmp(f->verbs[f->n_cmds - 1], "NTFY") == 0);
    snprintf(want, sizeof(want), "O: %s\r\n", observed);
    CHECK(strstr(f->params[f->n_cmds - 1], want) != NULL);
    CHECK(strstr(f->params[f->n_cmds - 1], "X: ") != NULL);
    ck_phone_on_response(f->ph, f->txids[f->n_cmds - 1], code, "", 0, vnow);
}

static void
ack_of(const struct ck_mgcp_msg *m, uint8_t ack[CK_CALL_ACK_LEN], bool *has)
{
    struct ck_sdp s;

    *has = false;
    CHECK(m->has_sdp);
    if (!m->has_sdp)
        return;
    CHECK_OK(ck_sdp_parse(m->sdp, m->sdp_len, &s));
    *has = s.has_ack;
    memcpy(ack, s.ack, CK_CALL_ACK_LEN);
    ck_sdp_clear(&s);
}

/* The reference: what the other end sent, µ-law quantised, frame by frame from the start. */
static bool
audio_matches(const int16_t *rec, size_t n, const int16_t *ref)
{
    for (size_t i = 0; i < n; i++)
        if (rec[i] != ck_ulaw_decode(ck_ulaw_encode(ref[i % AUDIO_LEN])))
            return false;
    return true;
}

/* A whole call A (phone 0) -> B (phone 1) in one media mode; returns with both reported. */
static void
full_call(const char *callid, const struct delivery *d)
{
    struct ck_mgcp_msg m;
    char sdp[CK_MGCP_MAX_MSG];
    uint8_t ack[CK_CALL_ACK_LEN];
    bool has_ack;
    struct opts oa = {.dial = "5552001"}, ob = {.answer_after = 300};
    struct ck_phone_stats st;

    phone_up(0, &oa);
    phone_up(1, &ob);
    expect_ntfy(0, "hd", 200);
    expect_ntfy(0, "5,5,5,2,0,0,1", 200);
    /* CRCX to A: no keys yet, A answers with its addresses and no ACK. */
    command(0, "CRCX", callid, "recvonly", NULL, NULL, &m);
    CHECK_INT_EQ(m.code, 200);
    ack_of(&m, ack, &has_ack);
    CHECK(!has_ack);
    {
        struct ck_sdp s;
        CHECK_OK(ck_sdp_parse(m.sdp, m.sdp_len, &s));
        CHECK_INT_EQ(s.media_port, ph[0].media_port);
        CHECK_INT_EQ(s.sig_port, ph[0].direct_port);
        CHECK(strcmp(s.addr, "127.0.0.1") == 0);
        ck_sdp_clear(&s);
    }
    ck_mgcp_msg_clear(&m);
    /* CRCX to B with the keys: 200 + the destination ACK. */
    key_sdp(d, 0, CK_CALL_ACK_DESTINATION, sdp, sizeof(sdp));
    command(1, "CRCX", callid, "sendrecv", NULL, sdp, &m);
    CHECK_INT_EQ(m.code, 200);
    ack_of(&m, ack, &has_ack);
    CHECK(has_ack == !d->keyless);
    if (!d->keyless)
        CHECK_OK(ck_call_ack_verify(d->key, sizeof(d->key), CK_CALL_ACK_DESTINATION, d->spi,
                                    (const uint8_t *)callid, strlen(callid), ack,
                                    CK_CALL_ACK_LEN));
    ck_mgcp_msg_clear(&m);
    /* MDCX to A with the keys: the source ACK (not the destination's: the role is bound). */
    key_sdp(d, 1, CK_CALL_ACK_SOURCE, sdp, sizeof(sdp));
    command(0, "MDCX", callid, "recvonly", NULL, sdp, &m);
    CHECK_INT_EQ(m.code, 200);
    ack_of(&m, ack, &has_ack);
    if (!d->keyless) {
        CHECK_OK(ck_call_ack_verify(d->key, sizeof(d->key), CK_CALL_ACK_SOURCE, d->spi,
                                    (const uint8_t *)callid, strlen(callid), ack,
                                    CK_CALL_ACK_LEN));
        CHECK(ck_call_ack_verify(d->key, sizeof(d->key), CK_CALL_ACK_DESTINATION, d->spi,
                                 (const uint8_t *)callid, strlen(callid), ack,
                                 CK_CALL_ACK_LEN) == CK_ERR_INTEGRITY);
    }
    ck_mgcp_msg_clear(&m);
    CHECK_INT_EQ(ck_phone_live_keys(ph[0].ph), d->ipsec ? 4 : 2);
    CHECK_INT_EQ(ck_phone_live_keys(ph[1].ph), d->ipsec ? 4 : 2);
    /* HELLO each way (A sent at installation). Nothing else is sent before B answers. */
    pump();
    advance(299);
    CHECK_INT_EQ(ph[1].n_cmds, 0);
    advance(1);
    expect_ntfy(1, "hd", 200);
    /* The controller tells A the call is answered. */
    command(0, "MDCX", callid, "sendrecv", NULL, NULL, &m);
    CHECK_INT_EQ(m.code, 200);
    ck_mgcp_msg_clear(&m);
    advance(1000);
    /* A hung up after talk_ms (1000 ms). */
    expect_ntfy(0, "hu", 200);
    advance(200);
    command(0, "DLCX", callid, NULL, NULL, NULL, &m);
    CHECK_INT_EQ(m.code, 250);
    ck_mgcp_msg_clear(&m);
    command(1, "DLCX", callid, NULL, "hangup", NULL, &m);
    CHECK_INT_EQ(m.code, 250);
    ck_mgcp_msg_clear(&m);
    for (int k = 0; k < 2; k++) {
        struct ck_phone_call_info *i = &ph[k].info;
        CHECK_INT_EQ(ph[k].calls, 1);
        CHECK(i->connected && i->released);
        CHECK(strcmp(i->reason, "hangup") == 0);
        CHECK(strcmp(i->callid, callid) == 0);
        CHECK(strcmp(i->media, ck_sdp_media_name(d->media)) == 0);
        CHECK_INT_EQ(i->ipsec, d->ipsec);
        CHECK_INT_EQ(i->direct_ok, d->ipsec);
        CHECK_INT_EQ(i->lost, 0);
        CHECK_INT_EQ(i->replayed, 0);
        CHECK_INT_EQ(i->dropped, 0);
        if (getenv("CK_TEST_VERBOSE") != NULL)
            fprintf(stderr, "  phone %d: sent %llu received %llu rec %zu direct %d\n", k,
                    (unsigned long long)i->sent, (unsigned long long)i->received, ph[k].n_rec,
                    i->direct_ok);
        CHECK(i->sent >= 45);
        CHECK(i->received >= 40);
        CHECK_INT_EQ(ph[k].n_rec, i->received * 160);
        CHECK(audio_matches(ph[k].rec, ph[k].n_rec, audio[1 - k]));
        CHECK_INT_EQ(ck_phone_live_keys(ph[k].ph), 0);
        CHECK_INT_EQ(ck_phone_active_calls(ph[k].ph), 0);
        ck_phone_get_stats(ph[k].ph, &st);
        CHECK_INT_EQ(st.refused, 0);
    }
    /* Every frame A sent reached B (B was up until after A stopped). */
    CHECK_INT_EQ(ph[1].info.received, ph[0].info.sent);
}

static void
test_call_modes(void)
{
    static const struct {
        enum ck_sdp_media_mode media;
        bool ipsec, compat;
    } modes[] = {
        {CK_SDP_MEDIA_SRTP_AES_CM, true, false}, {CK_SDP_MEDIA_SRTP_GCM, true, false},
        {CK_SDP_MEDIA_RTP_3DES_MAC, true, true}, {CK_SDP_MEDIA_RTP_3DES, true, false},
        {CK_SDP_MEDIA_SRTP_AES_CM, false, false}, /* SGCP: media keys only */
    };

    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        struct delivery d;
        char id[33];

        memset(&d, 0, sizeof(d));
        CHECK_OK(ck_random_bytes(d.key, sizeof(d.key)));
        d.spi = 0x1000 + (uint32_t)i * 2;
        d.media = modes[i].media;
        d.ipsec = modes[i].ipsec;
        d.compat_seq = modes[i].compat;
        snprintf(id, sizeof(id), "c0ffee%02zu", i);
        full_call(id, &d);
        phones_down();
    }
}

/* SGCP call to a media gateway: no key at all (a=X-ck-media:rtp), no ACK, plain RTP. */
static void
test_keyless_server(void)
{
    struct delivery d;
    struct ck_mgcp_msg m;
    char sdp[CK_MGCP_MAX_MSG];
    uint8_t ack[CK_CALL_ACK_LEN];
    bool has_ack;
    struct opts os = {.server = true};

    memset(&d, 0, sizeof(d));
    d.media = CK_SDP_MEDIA_RTP;
    d.keyless = true;
    phone_up(2, &os);
    phone_up(0, &(struct opts){.dial = "5559000"});
    key_sdp(&d, 0, CK_CALL_ACK_DESTINATION, sdp, sizeof(sdp));
    command(2, "CRCX", "feed01", "sendrecv", NULL, sdp, &m);
    CHECK_INT_EQ(m.code, 200);
    ack_of(&m, ack, &has_ack);
    CHECK(!has_ack);
    ck_mgcp_msg_clear(&m);
    CHECK_INT_EQ(ck_phone_live_keys(ph[2].ph), 2); /* two plain-RTP contexts */
    /* Keys in a keyless mode are refused. */
    d.keyless = false;
    CHECK_OK(ck_random_bytes(d.key, sizeof(d.key)));
    d.spi = 0x5000;
    key_sdp(&d, 0, CK_CALL_ACK_DESTINATION, sdp, sizeof(sdp));
    command(2, "CRCX", "feed02", "sendrecv", NULL, sdp, &m);
    CHECK_INT_EQ(m.code, 524);
    ck_mgcp_msg_clear(&m);
    CHECK_INT_EQ(ck_phone_active_calls(ph[2].ph), 1);
    command(2, "DLCX", "feed01", NULL, NULL, NULL, &m);
    CHECK_INT_EQ(m.code, 250);
    ck_mgcp_msg_clear(&m);
    CHECK_INT_EQ(ph[2].calls, 1);
    CHECK(!ph[2].info.connected);           /* never answered: the caller never connected */
    CHECK_INT_EQ(ck_phone_live_keys(ph[2].ph), 0);
    phones_down();
}

/* 533 when SPI or SPI+1 is held, or used by another call; nothing installed. */
static void
test_spi_collision(void)
{
    static const uint32_t held[] = {0x7000};
    struct delivery d;
    struct ck_mgcp_msg m;
    char sdp[CK_MGCP_MAX_MSG];
    struct ck_phone_stats st;

    memset(&d, 0, sizeof(d));
    CHECK_OK(ck_random_bytes(d.key, sizeof(d.key)));
    d.media = CK_SDP_MEDIA_SRTP_AES_CM;
    d.ipsec = true;
    phone_up(0, &(struct opts){.dial = "5552001"});
    phone_up(2, &(struct opts){.server = true, .hold = held, .n_hold = 1});
    d.spi = 0x7000;                          /* SPI itself held */
    key_sdp(&d, 0, CK_CALL_ACK_DESTINATION, sdp, sizeof(sdp));
    command(2, "CRCX", "a1", "sendrecv", NULL, sdp, &m);
    CHECK_INT_EQ(m.code, 533);
    CHECK(!m.has_sdp);
    ck_mgcp_msg_clear(&m);
    d.spi = 0x6fff;                          /* SPI+1 held */
    key_sdp(&d, 0, CK_CALL_ACK_DESTINATION, sdp, sizeof(sdp));
    command(2, "CRCX", "a2", "sendrecv", NULL, sdp, &m);
    CHECK_INT_EQ(m.code, 533);
    ck_mgcp_msg_clear(&m);
    CHECK_INT_EQ(ck_phone_active_calls(ph[2].ph), 0);
    CHECK_INT_EQ(ck_phone_live_keys(ph[2].ph), 0);
    /* A call on 0x8000/0x8001, then another wanting 0x8001 (its SPI) or 0x7fff (its SPI+1 =
     * 0x8000): both refused; 0x8002 is free. */
    d.spi = 0x8000;
    key_sdp(&d, 0, CK_CALL_ACK_DESTINATION, sdp, sizeof(sdp));
    command(2, "CRCX", "b1", "sendrecv", NULL, sdp, &m);
    CHECK_INT_EQ(m.code, 200);
    ck_mgcp_msg_clear(&m);
    d.spi = 0x8001;
    key_sdp(&d, 0, CK_CALL_ACK_DESTINATION, sdp, sizeof(sdp));
    command(2, "CRCX", "b2", "sendrecv", NULL, sdp, &m);
    CHECK_INT_EQ(m.code, 533);
    ck_mgcp_msg_clear(&m);
    d.spi = 0x7fff;
    key_sdp(&d, 0, CK_CALL_ACK_DESTINATION, sdp, sizeof(sdp));
    command(2, "CRCX", "b3", "sendrecv", NULL, sdp, &m);
    CHECK_INT_EQ(m.code, 533);
    ck_mgcp_msg_clear(&m);
    d.spi = 0x8002;
    key_sdp(&d, 0, CK_CALL_ACK_DESTINATION, sdp, sizeof(sdp));
    command(2, "CRCX", "b4", "sendrecv", NULL, sdp, &m);
    CHECK_INT_EQ(m.code, 200);
    ck_mgcp_msg_clear(&m);
    ck_phone_get_stats(ph[2].ph, &st);
    CHECK_INT_EQ(st.spi_in_use, 4);
    CHECK_INT_EQ(ck_phone_active_calls(ph[2].ph), 2);
    /* Keys for a keyed call again (a new txid, not a retransmission): refused, the installed
     * keys stay (no second installation). */
    d.spi = 0x9000;
    key_sdp(&d, 0, CK_CALL_ACK_DESTINATION, sdp, sizeof(sdp));
    command(2, "MDCX", "b1", "sendrecv", NULL, sdp, &m);
    CHECK_INT_EQ(m.code, 501);
    ck_mgcp_msg_clear(&m);
    CHECK_INT_EQ(ck_phone_live_keys(ph[2].ph), 8);
    /* After b1's DLCX, its SPI is free again. */
    command(2, "DLCX", "b1", NULL, NULL, NULL, &m);
    CHECK_INT_EQ(m.code, 250);
    ck_mgcp_msg_clear(&m);
    CHECK_INT_EQ(ck_phone_live_keys(ph[2].ph), 4);
    d.spi = 0x8000;
    key_sdp(&d, 0, CK_CALL_ACK_DESTINATION, sdp, sizeof(sdp));
    command(2, "CRCX", "b5", "sendrecv", NULL, sdp, &m);
    CHECK_INT_EQ(m.code, 200);
    ck_mgcp_msg_clear(&m);
    phones_down();
}

/* After DLCX, packets under the call's keys are dropped: the keys are gone. */
static void
test_keys_wiped(void)
{
    struct delivery d;
    struct ck_mgcp_msg m;
    char sdp[CK_MGCP_MAX_MSG];
    struct ck_phone_stats st;
    struct pkt *saved;
    size_t n_saved;
    struct sockaddr_storage from;

    memset(&d, 0, sizeof(d));
    CHECK_OK(ck_random_bytes(d.key, sizeof(d.key)));
    d.media = CK_SDP_MEDIA_SRTP_GCM;
    d.ipsec = true;
    d.spi = 0xabc0;
    phone_up(0, &(struct opts){.dial = "5552001"});
    phone_up(1, &(struct opts){.answer_after = 0});
    expect_ntfy(0, "hd", 200);
    expect_ntfy(0, "5,5,5,2,0,0,1", 200);
    command(0, "CRCX", "dead01", "recvonly", NULL, NULL, &m);
    ck_mgcp_msg_clear(&m);
    key_sdp(&d, 0, CK_CALL_ACK_DESTINATION, sdp, sizeof(sdp));
    command(1, "CRCX", "dead01", "sendrecv", NULL, sdp, &m);
    ck_mgcp_msg_clear(&m);
    key_sdp(&d, 1, CK_CALL_ACK_SOURCE, sdp, sizeof(sdp));
    command(0, "MDCX", "dead01", "recvonly", NULL, sdp, &m);
    ck_mgcp_msg_clear(&m);
    /* Keep A's HELLO and first media for B, deliver nothing yet. */
    command(0, "MDCX", "dead01", "sendrecv", NULL, NULL, &m);
    ck_mgcp_msg_clear(&m);
    CHECK_OK(ck_phone_on_timer(ph[0].ph, vnow));
    CHECK(n_out >= 2);
    n_saved = n_out;
    saved = malloc(n_saved * sizeof(*saved));
    memcpy(saved, outbox, n_saved * sizeof(*saved));
    n_out = 0;
    command(1, "DLCX", "dead01", NULL, NULL, NULL, &m);
    CHECK_INT_EQ(m.code, 250);
    ck_mgcp_msg_clear(&m);
    CHECK_INT_EQ(ck_phone_live_keys(ph[1].ph), 0);
    for (size_t i = 0; i < n_saved; i++) {
        addr_of(saved[i].sock == CK_PHONE_SOCK_MEDIA ? ph[0].media_port : ph[0].direct_port,
                &from);
        CHECK_OK(ck_phone_on_datagram(ph[1].ph, saved[i].sock, saved[i].data, saved[i].len,
                                      (struct sockaddr *)&from, sizeof(struct sockaddr_in), vnow));
    }
    ck_phone_get_stats(ph[1].ph, &st);
    CHECK_INT_EQ(st.direct_dropped + st.media_dropped, n_saved);
    CHECK(st.direct_dropped >= 1);
    CHECK(st.media_dropped >= 1);
    CHECK_INT_EQ(ph[1].calls, 1);
    free(saved);
    phones_down();
}

/* Commands that do not fit are answered with an error and counted; datagrams from nowhere or
 * forged are dropped and counted; nothing is installed. */
static void
test_hostile(void)
{
    static const char *const junk[] = {
        "CRCX 5 aaln/1@x MGCP 1.0\r\nC: zz\r\n",                     /* call id not hex */
        "CRCX 6 aaln/1@x MGCP 1.0\r\nM: sendrecv\r\n",               /* no call id */
        "MDCX 7 aaln/1@x MGCP 1.0\r\nC: 1234\r\nM: sendrecv\r\n",    /* unknown call */
        "DLCX 8 aaln/1@x MGCP 1.0\r\nC: 1234\r\n",                   /* unknown call */
        "FOO 9 aaln/1@x MGCP 1.0\r\n",                               /* unknown verb */
        "CRCX 10 aaln/1@x MGCP 9.9\r\nC: 12\r\n",                    /* version */
        "CRCX 11 aaln/1@x MGCP 1.0\r\nC: 12\r\n\r\nv=0\r\nm=audio 1 RTP/AVP 0\r\n"
        "a=X-ck-secret:base64:AAAA\r\n",                              /* short key */
        "CRCX 12 aaln/1@x MGCP 1.0\r\nC: 12\r\n\r\nv=0\r\nc=IN IP4 127.0.0.1\r\n"
        "m=audio 9 RTP/AVP 0\r\na=X-ck-media:srtp-aes-cm\r\n",        /* media, no key */
        "CRCX 13 aaln/1@x MGCP 1.0\r\nC: 13\r\n",                    /* no SDP, not dialling */
    };
    struct ck_phone_stats st;
    struct sockaddr_storage from;
    uint8_t garbage[200];

    phone_up(1, &(struct opts){.answer_after = 0});
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
        ck_writer r;
        ck_writer_init(&r, CK_ENDPOINT_MAX_SIGNAL, false);
        ck_phone_on_command(ph[1].ph, junk[i], strlen(junk[i]), vnow, &r);
        CHECK(r.len > 4 && r.data[0] >= '4' && r.data[0] <= '5');
        ck_writer_free(&r);
    }
    /* Not even a first line: no answer possible, counted. */
    {
        ck_writer r;
        ck_writer_init(&r, CK_ENDPOINT_MAX_SIGNAL, false);
        ck_phone_on_command(ph[1].ph, "\x01\x02", 2, vnow, &r);
        CHECK_INT_EQ(r.len, 0);
        ck_writer_free(&r);
    }
    ck_phone_get_stats(ph[1].ph, &st);
    CHECK_INT_EQ(st.refused, sizeof(junk) / sizeof(junk[0]) + 1);
    CHECK_INT_EQ(ck_phone_active_calls(ph[1].ph), 0);
    CHECK_INT_EQ(ck_phone_live_keys(ph[1].ph), 0);
    memset(garbage, 0x41, sizeof(garbage));
    addr_of(40000, &from);
    CHECK_OK(ck_phone_on_datagram(ph[1].ph, CK_PHONE_SOCK_MEDIA, garbage, sizeof(garbage),
                                  (struct sockaddr *)&from, sizeof(struct sockaddr_in), vnow));
    CHECK_OK(ck_phone_on_datagram(ph[1].ph, CK_PHONE_SOCK_DIRECT, garbage, sizeof(garbage),
                                  (struct sockaddr *)&from, sizeof(struct sockaddr_in), vnow));
    CHECK_OK(ck_phone_on_datagram(ph[1].ph, CK_PHONE_SOCK_DIRECT, garbage, 3,
                                  (struct sockaddr *)&from, sizeof(struct sockaddr_in), vnow));
    ck_phone_get_stats(ph[1].ph, &st);
    CHECK_INT_EQ(st.media_dropped, 1);
    CHECK_INT_EQ(st.direct_dropped, 2);
    CHECK_INT_EQ(n_out, 0);
    phones_down();

    /* The caller: a DLCX with a reason before any CRCX ends the attempt (unknown number). */
    phone_up(0, &(struct opts){.dial = "5550000"});
    expect_ntfy(0, "hd", 200);
    expect_ntfy(0, "5,5,5,0,0,0,0", 200);
    {
        struct ck_mgcp_msg m;
        command(0, "DLCX", NULL, NULL, "unknown-number", NULL, &m);
        CHECK_INT_EQ(m.code, 250);
        ck_mgcp_msg_clear(&m);
    }
    CHECK_INT_EQ(ph[0].calls, 1);
    CHECK(!ph[0].info.connected);
    CHECK(strcmp(ph[0].info.reason, "unknown-number") == 0);
    phones_down();
}

static void
test_params(void)
{
    struct ck_phone_params p;
    ck_phone *x = NULL;

    memset(&p, 0, sizeof(p));
    CHECK(ck_phone_new(&p, &x) == CK_ERR_INVAL);
    p.send = ph_send;
    p.media_addr = "phone.example";          /* not numeric */
    p.media_port = 1;
    p.direct_port = 2;
    p.channel.send_command = ch_send;
    CHECK(ck_phone_new(&p, &x) == CK_ERR_INVAL);
    p.media_addr = "::1";
    p.dial = "55a";
    CHECK(ck_phone_new(&p, &x) == CK_ERR_INVAL);
    p.dial = "5551";
    p.server = true;
    CHECK(ck_phone_new(&p, &x) == CK_ERR_INVAL);
    CHECK(x == NULL);
    ck_phone_free(NULL);
}

static void
setup_audio(void)
{
    if (outbox != NULL)
        return;
    /* Two different signals so that a swapped direction shows. */
    for (int i = 0; i < AUDIO_LEN; i++) {
        audio[0][i] = (int16_t)((i * 97) % 20000 - 10000);
        audio[1][i] = (int16_t)((i / 7) % 2 ? 12000 - i : -9000 + i * 3);
    }
    outbox = calloc(MAX_OUT, sizeof(*outbox));
    vnow = 1700000000000;
}

static void
test_setup(void)
{
    setup_audio();
    CHECK(outbox != NULL);
}

static void
test_teardown(void)
{
    free(outbox);
    outbox = NULL;
}

CK_TEST_MAIN("phone", CK_TEST_CASE(test_setup), CK_TEST_CASE(test_params),
             CK_TEST_CASE(test_call_modes), CK_TEST_CASE(test_keyless_server),
             CK_TEST_CASE(test_spi_collision), CK_TEST_CASE(test_keys_wiped),
             CK_TEST_CASE(test_hostile), CK_TEST_CASE(test_teardown))
