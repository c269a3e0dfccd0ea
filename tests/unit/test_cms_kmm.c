/* cablekey-cms KMM handler and protected signaling, in-process: crafted AP Requests built as an
 * endpoint builds them (ck_ap_req_build over a ticket sealed under the keytab's service key),
 * answered by cms_kmm_handle; the endpoint's side of the AP Reply, the key derivation and ESP is
 * done here with the libraries, so that a wrong key, order or HMAC on either side fails. */
#include "ck_test.h"
#include "cms_fixture.h"
#include "call.h"

#include <time.h>

/* The server runs on a fixed clock (set per test); authenticators carry the wall clock. */
static int64_t
now0(void)
{
    static int64_t t;
    if (t == 0)
        t = (int64_t)time(NULL);
    return t;
}
#define NOW now0()
#define PEER "192.0.2.10"

static size_t
handle(struct fx *f, const uint8_t *req, size_t len, const char *ip, uint16_t port,
       uint8_t *reply, size_t cap)
{
    struct sockaddr_in sin;
    size_t reply_len = 99;
    char line[768];

    fx_peer(&sin, ip, port);
    CHECK_OK(cms_kmm_handle(&f->s, req, len, (struct sockaddr *)&sin, NULL, reply, cap,
                            &reply_len, line, sizeof(line)));
    if (getenv("CK_TEST_VERBOSE") != NULL)
        fprintf(stderr, "  log: %s\n", line);
    return reply_len;
}

/* The KRB-ERROR code of an Error Reply (-1: not one). */
static int
error_code(const uint8_t *reply, size_t len, uint8_t *doi)
{
    CK_KRB_ERROR_MSG *e = NULL;
    int code;

    if (len < 4 || reply[0] != CK_KMM_ERROR_REPLY)
        return -1;
    if (doi != NULL)
        *doi = reply[1];
    if (ck_asn1_krb_error_decode(reply + 3, len - 3, &e) != 0)
        return -1;
    code = e->error_code;
    CK_KRB_ERROR_MSG_free(e);
    return code;
}

/* The endpoint's view of an AP Reply: verified, its sub-key and the server's SPI. */
struct ep_view {
    ck_key subkey;
    uint32_t spi_s;
    struct ck_kmm_msg m;
    uint8_t hmac[CK_KMM_HMAC_LEN];
};

static int
accept_ap_reply(struct fx *f, const struct fx_req *q, const uint8_t *reply, size_t len,
                struct ep_view *v)
{
    ck_ap_rep_result rr;
    uint8_t hk[CK_KMM_HMAC_KEY_LEN];
    int rc;

    memset(v, 0, sizeof(*v));
    memset(&rr, 0, sizeof(rr));
    if ((rc = ck_kmm_decode(reply, len, &v->m)) != 0)
        return rc;
    if (v->m.type != CK_KMM_AP_REP)
        return CK_ERR_PROTO;
    if ((rc = ck_ap_rep_verify(v->m.krb, v->m.krb_len, &f->session_key, q->ctime, q->cusec,
                               &rr)) != 0)
        return rc;
    if (!rr.has_subkey) {
        ck_ap_rep_result_clear(&rr);
        return CK_ERR_PROTO;
    }
    rc = ck_key_copy(&v->subkey, &rr.subkey);
    ck_ap_rep_result_clear(&rr);
    if (rc != 0 || (rc = ck_kmm_hmac_key(CK_KMM_HMAC_AP_REP, &v->subkey, hk)) != 0 ||
        (rc = ck_kmm_verify(reply, &v->m, hk)) != 0)
        return rc;
    v->spi_s = v->m.spi;
    memcpy(v->hmac, v->m.hmac, sizeof(v->hmac));
    return 0;
}

/* The endpoint's ESP pair for an exchange (spi_c = its own inbound SPI). */
struct ep_esp {
    ck_esp_sa *out, *in;
    ck_esp_engine *eng;
};

static int
ep_esp_new(const struct ep_view *v, uint32_t spi_c, struct ep_esp *e)
{
    struct ck_kmm_keys k;
    struct ck_esp_sa_params po, pi;
    int rc;

    memset(e, 0, sizeof(*e));
    if ((rc = ck_kmm_derive_ipsec(&v->subkey, v->m.suites[0], spi_c, v->spi_s, &k)) != 0)
        return rc;
    po = (struct ck_esp_sa_params){.spi = v->spi_s, .enc = k.suite.enc, .auth = k.suite.auth,
                                   .enc_key = k.enc_c2s, .enc_key_len = k.enc_len,
                                   .auth_key = k.auth_c2s, .auth_key_len = k.auth_len};
    pi = po;
    pi.spi = spi_c;
    pi.enc_key = k.enc_s2c;
    pi.auth_key = k.auth_s2c;
    if ((rc = ck_esp_sa_new(&po, &e->out)) == 0 && (rc = ck_esp_sa_new(&pi, &e->in)) == 0)
        rc = ck_esp_engine_new(&e->eng);
    ck_kmm_keys_clear(&k);
    return rc;
}

static void
ep_esp_free(struct ep_esp *e)
{
    ck_esp_sa_free(e->out);
    ck_esp_sa_free(e->in);
    ck_esp_engine_free(e->eng);
}

static size_t
ep_protect(struct ep_esp *e, const char *text, uint8_t *pkt, size_t cap)
{
    uint8_t inner[2048];
    size_t il = 0, pl = 0;

    CHECK_OK(ck_esp_udp_wrap(CMS_MGCP_GW_PORT, CMS_MGCP_CA_PORT, (const uint8_t *)text,
                             strlen(text), inner, sizeof(inner), &il));
    CHECK_OK(ck_esp_protect(e->eng, e->out, CK_ESP_NEXT_HEADER_UDP, inner, il, NOW, pkt, cap,
                            &pl));
    return pl;
}

/* Decrypts a packet from the server into text (NUL-terminated); 0 on success. */
static int
ep_open(struct ep_esp *e, const uint8_t *pkt, size_t len, char *text, size_t size)
{
    uint8_t plain[2048];
    const uint8_t *data;
    size_t pl = 0, dl = 0;
    uint16_t sp, dp;
    uint8_t nh;
    int rc;

    if ((rc = ck_esp_unprotect(e->eng, e->in, pkt, len, NOW, plain, sizeof(plain), &pl, &nh)) != 0 ||
        (rc = ck_esp_udp_unwrap(plain, pl, &sp, &dp, &data, &dl)) != 0)
        return rc;
    if (nh != CK_ESP_NEXT_HEADER_UDP || sp != CMS_MGCP_CA_PORT || dp != CMS_MGCP_GW_PORT ||
        dl >= size)
        return CK_ERR_PROTO;
    memcpy(text, data, dl);
    text[dl] = '\0';
    return 0;
}

static size_t
sig(struct fx *f, const uint8_t *pkt, size_t len, const char *ip, uint16_t port, uint8_t *reply,
    uint8_t *extra, size_t *extra_len)
{
    static ck_esp_engine *eng;
    struct sockaddr_in sin;
    size_t rl = 0;

    if (eng == NULL)
        CHECK_OK(ck_esp_engine_new(&eng));
    fx_peer(&sin, ip, port);
    CHECK_OK(cms_sig_handle(&f->s, eng, pkt, len, (struct sockaddr *)&sin, reply, 2048, &rl,
                            extra, 2048, extra_len, NULL, NULL));
    return rl;
}

/* AP exchange, then RSIP -> 200 + RQNT -> 200 back, replay and forgery of ESP dropped. */
static void
test_happy_path_and_signaling(void)
{
    struct fx f;
    struct fx_req q = {0};
    struct ep_view v;
    struct ep_esp e;
    uint8_t req[4096], reply[4096], pkt[2048], rsip[2048], extra[2048];
    size_t len = 0, rl, pl, el = 0, rsip_len;
    char text[1024], txid[16];
    unsigned t = 0;

    CHECK_OK(fx_up(&f, NULL, NOW));
    q.spi = 0x2222;
    CHECK_OK(fx_apreq(&f, &q, req, sizeof(req), &len));
    rl = handle(&f, req, len, PEER, 40000, reply, sizeof(reply));
    CHECK(rl > 0);
    CHECK_OK(accept_ap_reply(&f, &q, reply, rl, &v));
    CHECK_INT_EQ(v.m.n_suites, 1);
    CHECK_INT_EQ(v.m.suites[0].enc, CK_KMM_ENC_AES128);
    CHECK_INT_EQ(v.m.lifetime, CMS_DEFAULT_SA_LIFETIME);
    CHECK_INT_EQ(v.m.grace, CMS_DEFAULT_GRACE);
    CHECK_INT_EQ(v.m.ack_required, 0);
    CHECK(v.spi_s >= 256);
    CHECK_INT_EQ(v.subkey.enctype, FX_ETYPE);
    CHECK_INT_EQ(cms_sa_table_count(f.s.sas), 1);
    CHECK(cms_sa_table_has(f.s.sas, v.spi_s));

    CHECK_OK(ep_esp_new(&v, 0x2222, &e));
    rsip_len = ep_protect(&e, "RSIP 7 aaln/1@mta1.test MGCP 1.0 NCS 1.0\r\nRM: restart\r\n", rsip,
                          sizeof(rsip));
    pl = sig(&f, rsip, rsip_len, PEER, 40000, pkt, extra, &el);
    CHECK(pl > 0);
    CHECK_OK(ep_open(&e, pkt, pl, text, sizeof(text)));
    CHECK(strcmp(text, "200 7 OK\r\n") == 0);
    CHECK(el > 0);
    CHECK_OK(ep_open(&e, extra, el, text, sizeof(text)));
    CHECK(strncmp(text, "RQNT ", 5) == 0 && strstr(text, " aaln/1@mta1.test MGCP 1.0") != NULL);
    CHECK(sscanf(text, "RQNT %u", &t) == 1 && t >= 1 && t <= 999999999u);
    /* The endpoint's 200 to the RQNT is accepted, not answered. */
    snprintf(txid, sizeof(txid), "%u", t);
    {
        char ok[64];
        snprintf(ok, sizeof(ok), "200 %s OK\r\n", txid);
        pl = ep_protect(&e, ok, pkt, sizeof(pkt));
        CHECK_INT_EQ(sig(&f, pkt, pl, PEER, 40000, reply, extra, &el), 0);
        CHECK_INT_EQ(el, 0);
        CHECK_INT_EQ(f.s.stats.rqnt_acked, 1);
    }
    /* NTFY: answered, no second RQNT. */
    pl = ep_protect(&e, "NTFY 8 aaln/1@mta1.test MGCP 1.0 NCS 1.0\r\nX: 1a\r\nO: hd\r\n", pkt,
                    sizeof(pkt));
    rl = sig(&f, pkt, pl, PEER, 40000, reply, extra, &el);
    CHECK(rl > 0);
    CHECK_INT_EQ(el, 0);
    CHECK_OK(ep_open(&e, reply, rl, text, sizeof(text)));
    CHECK(strcmp(text, "200 8 OK\r\n") == 0);
    /* A replayed packet and a forged ICV are dropped and counted. */
    CHECK_INT_EQ(sig(&f, rsip, rsip_len, PEER, 40000, reply, extra, &el), 0);
    CHECK_INT_EQ(f.s.stats.esp_replay, 1);
    pl = ep_protect(&e, "NTFY 9 aaln/1@mta1.test MGCP 1.0 NCS 1.0\r\nX: 1b\r\nO: hd\r\n", pkt,
                    sizeof(pkt));
    pkt[pl - 1] ^= 1;
    CHECK_INT_EQ(sig(&f, pkt, pl, PEER, 40000, reply, extra, &el), 0);
    CHECK_INT_EQ(f.s.stats.esp_bad_icv, 1);
    /* Garbage and keepalives: nothing. */
    CHECK_INT_EQ(sig(&f, (const uint8_t *)"\xff", 1, PEER, 40000, reply, extra, &el), 0);
    CHECK_INT_EQ(sig(&f, (const uint8_t *)"\x00\x00\x00\x00zz", 6, PEER, 40000, reply, extra, &el),
                 0);
    CHECK_INT_EQ(f.n_sent, 0);
    ep_esp_free(&e);
    ck_key_clear(&v.subkey);
    fx_down(&f);
}

/* An unknown SPI gets a Wake Up (once a second per address); the AP-REQ echoing its nonce is
 * accepted, a stale or foreign nonce refused with KRB_AP_ERR_MODIFIED. */
static void
test_wakeup_and_nonce(void)
{
    struct fx f;
    struct fx_req q = {0};
    struct ck_kmm_msg w;
    uint8_t req[4096], reply[4096], pkt[64] = {0, 0, 0x12, 0x34, 0, 0, 0, 1}, extra[2048];
    size_t len = 0, rl, el = 0;

    CHECK_OK(fx_up(&f, NULL, NOW));
    /* Shorter than the Wake Up it would cause: no Wake Up. */
    CHECK_INT_EQ(sig(&f, pkt, 16, "192.0.2.99", 40001, reply, extra, &el), 0);
    CHECK_INT_EQ(f.n_sent, 0);
    memset(pkt + 8, 0xab, 40);
    CHECK_INT_EQ(sig(&f, pkt, 48, PEER, 40001, reply, extra, &el), 0);
    CHECK_INT_EQ(f.n_sent, 1);
    CHECK_INT_EQ(sig(&f, pkt, 48, PEER, 40001, reply, extra, &el), 0);
    CHECK_INT_EQ(f.n_sent, 1); /* rate-limited */
    CHECK_INT_EQ(f.s.stats.wakeups_limited, 1);
    CHECK_OK(ck_kmm_decode(f.sent[0].msg, f.sent[0].len, &w));
    CHECK_INT_EQ(w.type, CK_KMM_WAKE_UP);
    CHECK(strcmp(w.server_principal, FX_SERVICE) == 0);
    CHECK(w.server_nonce != 0);
    /* Answered within the window (next epoch too). */
    f.s.fixed_now = NOW + f.cfg.solicited_key_timeout;
    q.nonce = w.server_nonce;
    CHECK_OK(fx_apreq(&f, &q, req, sizeof(req), &len));
    rl = handle(&f, req, len, PEER, 40001, reply, sizeof(reply));
    CHECK(rl > 0 && reply[0] == CK_KMM_AP_REP);
    /* From another port: not our nonce for that address. */
    CHECK_OK(fx_apreq(&f, &q, req, sizeof(req), &len));
    rl = handle(&f, req, len, PEER, 40002, reply, sizeof(reply));
    CHECK_INT_EQ(error_code(reply, rl, NULL), CK_KRB_AP_ERR_MODIFIED);
    /* Two windows later: stale. */
    f.s.fixed_now = NOW + 3 * f.cfg.solicited_key_timeout;
    CHECK_OK(fx_apreq(&f, &q, req, sizeof(req), &len));
    rl = handle(&f, req, len, PEER, 40001, reply, sizeof(reply));
    CHECK_INT_EQ(error_code(reply, rl, NULL), CK_KRB_AP_ERR_MODIFIED);
    fx_down(&f);
}

static void
test_negative(void)
{
    struct fx f;
    struct fx_req q = {0};
    uint8_t req[4096], reply[4096], bad[4096];
    size_t len = 0, rl;
    ck_key wrong;
    CK_TICKET *t = NULL;
    uint8_t doi = 0;

    CHECK_OK(fx_up(&f, NULL, NOW));
    /* Replayed AP Request. */
    CHECK_OK(fx_apreq(&f, &q, req, sizeof(req), &len));
    rl = handle(&f, req, len, PEER, 41000, reply, sizeof(reply));
    CHECK(rl > 0 && reply[0] == CK_KMM_AP_REP);
    rl = handle(&f, req, len, PEER, 41000, reply, sizeof(reply));
    CHECK_INT_EQ(error_code(reply, rl, NULL), CK_KRB_AP_ERR_REPEAT);
    /* Forged HMAC: refused, and the genuine request is still accepted afterwards (the replay
     * cache only stores what verified). */
    CHECK_OK(fx_apreq(&f, &q, req, sizeof(req), &len));
    memcpy(bad, req, len);
    bad[len - 1] ^= 0x80;
    rl = handle(&f, bad, len, PEER, 41001, reply, sizeof(reply));
    CHECK_INT_EQ(error_code(reply, rl, NULL), CK_KRB_AP_ERR_MODIFIED);
    rl = handle(&f, req, len, PEER, 41001, reply, sizeof(reply));
    CHECK(rl > 0 && reply[0] == CK_KMM_AP_REP);
    /* A changed suite list under the old HMAC. */
    CHECK_OK(fx_apreq(&f, &q, req, sizeof(req), &len));
    req[len - CK_KMM_HMAC_LEN - 2] = CK_KMM_ENC_3DES;
    rl = handle(&f, req, len, PEER, 41001, reply, sizeof(reply));
    CHECK_INT_EQ(error_code(reply, rl, NULL), CK_KRB_AP_ERR_MODIFIED);
    /* Truncated HMAC and every truncation: dropped, never answered. */
    CHECK_OK(fx_apreq(&f, &q, req, sizeof(req), &len));
    for (size_t n = 0; n < len; n++)
        CHECK_INT_EQ(handle(&f, req, n, PEER, 41002, reply, sizeof(reply)), 0);
    /* Ticket under a key the keytab does not have (same kvno and enctype). */
    CHECK_OK(ck_random_key(FX_ETYPE, &wrong));
    CHECK_OK(fx_ticket(&f, &wrong, FX_KVNO, NOW, &t));
    q.ticket = t;
    CHECK_OK(fx_apreq(&f, &q, req, sizeof(req), &len));
    rl = handle(&f, req, len, PEER, 41003, reply, sizeof(reply));
    CHECK_INT_EQ(error_code(reply, rl, NULL), CK_KRB_AP_ERR_BAD_INTEGRITY);
    CK_TICKET_free(t);
    t = NULL;
    /* A kvno the keytab does not hold. */
    CHECK_OK(fx_ticket(&f, &f.service_key, FX_KVNO + 5, NOW, &t));
    q.ticket = t;
    CHECK_OK(fx_apreq(&f, &q, req, sizeof(req), &len));
    rl = handle(&f, req, len, PEER, 41003, reply, sizeof(reply));
    CHECK_INT_EQ(error_code(reply, rl, NULL), CK_KRB_AP_ERR_BADKEYVER);
    CK_TICKET_free(t);
    q.ticket = NULL;
    ck_key_clear(&wrong);
    /* Clock skew. */
    CHECK_OK(fx_apreq(&f, &q, req, sizeof(req), &len));
    f.s.fixed_now = NOW + 3600;
    rl = handle(&f, req, len, PEER, 41004, reply, sizeof(reply));
    CHECK_INT_EQ(error_code(reply, rl, NULL), CK_KRB_AP_ERR_SKEW);
    f.s.fixed_now = NOW;
    /* Ciphersuite mismatch. */
    q.suites = "md5-null";
    CHECK_OK(fx_apreq(&f, &q, req, sizeof(req), &len));
    rl = handle(&f, req, len, PEER, 41005, reply, sizeof(reply));
    CHECK_INT_EQ(error_code(reply, rl, NULL), CK_KDC_ERR_ETYPE_NOSUPP);
    q.suites = NULL;
    /* Unknown DOI: Error Reply carrying that DOI; unknown KMMID: dropped. */
    CHECK_OK(fx_apreq(&f, &q, req, sizeof(req), &len));
    req[1] = 0x07;
    rl = handle(&f, req, len, PEER, 41006, reply, sizeof(reply));
    CHECK_INT_EQ(error_code(reply, rl, &doi), CK_KRB_AP_ERR_BADVERSION);
    CHECK_INT_EQ(doi, 0x07);
    /* ... but never a reply larger than the request (no amplification for spoofed sources). */
    CHECK_INT_EQ(handle(&f, (const uint8_t *)"\x02\x07\x10", 3, PEER, 41006, reply,
                        sizeof(reply)), 0);
    req[1] = CK_KMM_DOI_IPSEC;
    req[0] = 0x09;
    CHECK_INT_EQ(handle(&f, req, len, PEER, 41006, reply, sizeof(reply)), 0);
    /* Messages a server never receives: dropped. */
    req[0] = CK_KMM_AP_REP;
    CHECK_INT_EQ(handle(&f, req, len, PEER, 41006, reply, sizeof(reply)), 0);
    CHECK(f.s.stats.kmm_dropped >= len + 2);
    fx_down(&f);
}

static void
test_full_tables(void)
{
    struct fx f;
    struct fx_opts o = {.max_sas = 1};
    struct fx_req q = {0};
    uint8_t req[4096], reply[4096];
    size_t len = 0, rl;

    /* SA table of one. */
    CHECK_OK(fx_up(&f, &o, NOW));
    CHECK_OK(fx_apreq(&f, &q, req, sizeof(req), &len));
    rl = handle(&f, req, len, PEER, 42000, reply, sizeof(reply));
    CHECK(rl > 0 && reply[0] == CK_KMM_AP_REP);
    CHECK_OK(fx_apreq(&f, &q, req, sizeof(req), &len));
    rl = handle(&f, req, len, PEER, 42001, reply, sizeof(reply));
    CHECK_INT_EQ(error_code(reply, rl, NULL), CK_KRB_ERR_GENERIC);
    fx_down(&f);
    /* Replay cache of two: the third fresh authenticator is refused, not let through. */
    o = (struct fx_opts){.rcache = 2};
    CHECK_OK(fx_up(&f, &o, NOW));
    for (int i = 0; i < 3; i++) {
        CHECK_OK(fx_apreq(&f, &q, req, sizeof(req), &len));
        rl = handle(&f, req, len, PEER, (uint16_t)(42010 + i), reply, sizeof(reply));
        if (i < 2)
            CHECK(rl > 0 && reply[0] == CK_KMM_AP_REP);
        else
            CHECK_INT_EQ(error_code(reply, rl, NULL), CK_KRB_ERR_GENERIC);
    }
    CHECK_INT_EQ(ck_rcache_count(f.s.rcache), 2);
    fx_down(&f);
}

/* ACK-required: the SA stays pending (signaling unanswered) until a valid SP Recovered. */
static void
test_ack_required(void)
{
    struct fx f;
    struct fx_opts o = {.ack_required = true};
    struct fx_req q = {.spi = 0x3333};
    struct ep_view v;
    struct ep_esp e;
    uint8_t req[4096], reply[4096], pkt[2048], extra[2048], spr[3 + CK_KMM_HMAC_LEN];
    uint8_t hk[CK_KMM_HMAC_KEY_LEN];
    size_t len = 0, rl, pl, el = 0;
    struct ck_kmm_msg m;
    char text[256];

    CHECK_OK(fx_up(&f, &o, NOW));
    CHECK_OK(fx_apreq(&f, &q, req, sizeof(req), &len));
    rl = handle(&f, req, len, PEER, 43000, reply, sizeof(reply));
    CHECK_OK(accept_ap_reply(&f, &q, reply, rl, &v));
    CHECK_INT_EQ(v.m.ack_required, 1);
    CHECK_OK(ep_esp_new(&v, 0x3333, &e));
    pl = ep_protect(&e, "RSIP 1 aaln/1@mta1.test MGCP 1.0 NCS 1.0\r\nRM: restart\r\n", pkt,
                    sizeof(pkt));
    CHECK_INT_EQ(sig(&f, pkt, pl, PEER, 43000, reply, extra, &el), 0);
    CHECK_INT_EQ(f.s.stats.esp_pending, 1);
    /* SP Recovered under the wrong key: dropped, still pending. */
    memset(&m, 0, sizeof(m));
    m.type = CK_KMM_SP_RECOVERED;
    m.doi = CK_KMM_DOI_IPSEC;
    m.version = CK_KMM_VERSION;
    CHECK_OK(ck_kmm_encode(&m, spr, sizeof(spr), &len));
    CHECK_INT_EQ(len, sizeof(spr));
    CHECK_OK(ck_kmm_hmac_key(CK_KMM_HMAC_AP_REP, &v.subkey, hk));
    CHECK_OK(ck_kmm_sp_recovered_seal(spr, v.hmac, hk));
    CHECK_INT_EQ(handle(&f, spr, sizeof(spr), PEER, 43000, reply, sizeof(reply)), 0);
    CHECK_INT_EQ(f.s.stats.spr_bad, 1);
    CHECK_OK(ck_kmm_hmac_key(CK_KMM_HMAC_SP_RECOVERED, &v.subkey, hk));
    CHECK_OK(ck_kmm_sp_recovered_seal(spr, v.hmac, hk));
    CHECK_INT_EQ(handle(&f, spr, sizeof(spr), PEER, 43000, reply, sizeof(reply)), 0);
    CHECK_INT_EQ(f.s.stats.spr_ok, 1);
    pl = ep_protect(&e, "RSIP 2 aaln/1@mta1.test MGCP 1.0 NCS 1.0\r\nRM: restart\r\n", pkt,
                    sizeof(pkt));
    rl = sig(&f, pkt, pl, PEER, 43000, reply, extra, &el);
    CHECK(rl > 0);
    CHECK_OK(ep_open(&e, reply, rl, text, sizeof(text)));
    CHECK(strcmp(text, "200 2 OK\r\n") == 0);
    ep_esp_free(&e);
    ck_key_clear(&v.subkey);
    fx_down(&f);
}

/* Rekey (SIGUSR1's path and the margin timer), keyed by the SA it replaces; expiry. */
static void
test_rekey_and_expiry(void)
{
    struct fx f;
    struct fx_opts o = {.clockskew = 86400};
    struct fx_req q = {.spi = 0x4444};
    struct ep_view v;
    struct ck_kmm_msg m;
    uint8_t req[4096], reply[4096], hk[CK_KMM_HMAC_KEY_LEN];
    size_t len = 0, rl;

    char xfrm[] = "/tmp/ck-cms-xfrm.XXXXXX", text[8192];
    ssize_t tl;

    CHECK_OK(fx_up(&f, &o, NOW));
    CHECK((f.s.xfrm_fd = mkstemp(xfrm)) >= 0);
    CHECK_OK(fx_apreq(&f, &q, req, sizeof(req), &len));
    rl = handle(&f, req, len, PEER, 44000, reply, sizeof(reply));
    CHECK_OK(accept_ap_reply(&f, &q, reply, rl, &v));
    /* Not near expiry: the margin pass sends nothing; SIGUSR1 sends one. */
    CHECK_INT_EQ(cms_maintenance(&f.s, false), 0);
    CHECK_INT_EQ(cms_maintenance(&f.s, true), 1);
    CHECK_INT_EQ(f.n_sent, 1);
    CHECK_OK(ck_kmm_decode(f.sent[0].msg, f.sent[0].len, &m));
    CHECK_INT_EQ(m.type, CK_KMM_REKEY);
    CHECK_INT_EQ(m.spi, v.spi_s);
    CHECK_INT_EQ(m.timestamp, NOW);
    CHECK(m.server_nonce != 0);
    CHECK_OK(ck_kmm_hmac_key(CK_KMM_HMAC_REKEY, &v.subkey, hk));
    CHECK_OK(ck_kmm_verify(f.sent[0].msg, &m, hk));
    /* Near expiry (within grace/2): one Rekey, once. */
    f.s.fixed_now = NOW + CMS_DEFAULT_SA_LIFETIME - CMS_DEFAULT_GRACE / 2 + 1;
    CHECK_INT_EQ(cms_maintenance(&f.s, false), 1);
    CHECK_INT_EQ(cms_maintenance(&f.s, false), 0);
    /* The endpoint re-keys: the new SA supersedes the old, which gets no more Rekeys. */
    CHECK_OK(fx_apreq(&f, &q, req, sizeof(req), &len));
    rl = handle(&f, req, len, PEER, 44000, reply, sizeof(reply));
    CHECK(rl > 0 && reply[0] == CK_KMM_AP_REP);
    CHECK_INT_EQ(cms_sa_table_count(f.s.sas), 2);
    CHECK_INT_EQ(cms_maintenance(&f.s, true), 1);
    /* Past the old SA's lifetime: removed; the new one stays. */
    f.s.fixed_now = NOW + CMS_DEFAULT_SA_LIFETIME;
    (void)cms_maintenance(&f.s, false);
    CHECK_INT_EQ(cms_sa_table_count(f.s.sas), 1);
    CHECK(!cms_sa_table_has(f.s.sas, v.spi_s));
    CHECK_INT_EQ(f.s.stats.sa_expired, 1);
    /* --export-xfrm: both SA pairs added (state and policy, each direction), the expired one
     * deleted. */
    tl = pread(f.s.xfrm_fd, text, sizeof(text) - 1, 0);
    CHECK(tl > 0);
    text[tl > 0 ? tl : 0] = '\0';
    {
        char want[128];
        size_t adds = 0;
        for (const char *p = text; (p = strstr(p, "ip xfrm state add")) != NULL; p++)
            adds++;
        CHECK_INT_EQ(adds, 4);
        CHECK(strstr(text, "ip xfrm policy add") != NULL);
        snprintf(want, sizeof(want), "ip xfrm state delete src %s dst 0.0.0.0 proto esp spi 0x%08x",
                 PEER, v.spi_s);
        CHECK(strstr(text, want) != NULL);
        CHECK(strstr(text, "ip xfrm state delete") == strstr(text, want));
    }
    unlink(xfrm);
    ck_key_clear(&v.subkey);
    fx_down(&f);
}

/* DOI SNMPv3: an AP Reply whose HMAC verifies, with the strongest SNMPv3 suite. */
static void
test_snmpv3(void)
{
    struct fx f;
    struct fx_req q = {.doi = CK_KMM_DOI_SNMPV3};
    struct ep_view v;
    uint8_t req[4096], reply[4096];
    size_t len = 0, rl;

    CHECK_OK(fx_up(&f, NULL, NOW));
    CHECK_OK(fx_apreq(&f, &q, req, sizeof(req), &len));
    rl = handle(&f, req, len, PEER, 45000, reply, sizeof(reply));
    CHECK_OK(accept_ap_reply(&f, &q, reply, rl, &v));
    CHECK_INT_EQ(v.m.doi, CK_KMM_DOI_SNMPV3);
    CHECK_INT_EQ(v.m.suites[0].auth, CK_KMM_SNMP_AUTH_SHA1);
    CHECK_INT_EQ(v.m.suites[0].enc, CK_KMM_SNMP_PRIV_DES);
    CHECK(strcmp(v.m.snmp.user, "mta1-usm") == 0);
    CHECK_INT_EQ(cms_sa_table_count(f.s.sas), 0);
    CHECK_INT_EQ(f.s.stats.snmp_ok, 1);
    ck_key_clear(&v.subkey);
    fx_down(&f);
}

/* Service-key rotation: tickets under the old kvno keep working after the keytab is replaced. */
static void
test_key_rotation(void)
{
    struct fx f;
    struct fx_req q = {0};
    ck_key next;
    CK_TICKET *t = NULL;
    uint8_t req[4096], reply[4096];
    size_t len = 0, rl;
    bool changed = false;

    CHECK_OK(fx_up(&f, NULL, NOW));
    CHECK_OK(ck_random_key(FX_ETYPE, &next));
    /* kvno 4 new, kvno 3 (the old key) kept. */
    CHECK_OK(fx_write_keytab(f.keytab, &next, FX_KVNO + 1, &f.service_key));
    CHECK_OK(ck_keyset_refresh(f.ks, false, &changed));
    CHECK(changed);
    CHECK_OK(fx_apreq(&f, &q, req, sizeof(req), &len));
    rl = handle(&f, req, len, PEER, 46000, reply, sizeof(reply));
    CHECK(rl > 0 && reply[0] == CK_KMM_AP_REP);
    CHECK_OK(fx_ticket(&f, &next, FX_KVNO + 1, NOW, &t));
    q.ticket = t;
    CHECK_OK(fx_apreq(&f, &q, req, sizeof(req), &len));
    rl = handle(&f, req, len, PEER, 46001, reply, sizeof(reply));
    CHECK(rl > 0 && reply[0] == CK_KMM_AP_REP);
    CK_TICKET_free(t);
    ck_key_clear(&next);
    fx_down(&f);
}

/* With call control on, a configured line's commands go to the call core, which answers them
 * under the line's SA (here captured), RSIP keeps its synchronous 200 + RQNT, and an endpoint
 * that is no line is answered 200 as before. */
struct captured {
    uint32_t spi[8];
    char text[8][1024];
    size_t n;
};

static int
capture_send(void *arg, const char *client, uint32_t spi, const char *text, size_t len)
{
    struct captured *c = arg;

    (void)client;
    if (c->n < 8 && len < sizeof(c->text[0])) {
        c->spi[c->n] = spi;
        memcpy(c->text[c->n], text, len);
        c->text[c->n][len] = '\0';
        c->n++;
    }
    return 0;
}

static void
test_call_control_routing(void)
{
    struct fx f;
    struct fx_req q = {0};
    struct ep_view v;
    struct ep_esp e;
    struct cms_config cfg;
    struct cms_call_core *core = NULL;
    struct cms_call_io io = {.send_sa = capture_send};
    struct captured cap = {0};
    struct cms_line line = {.number = "5551001", .principal = FX_CLIENT "@" FX_REALM};
    uint8_t req[4096], reply[4096], pkt[2048], extra[2048];
    size_t len = 0, rl, pl, el = 0;
    char text[1024];

    CHECK_OK(fx_up(&f, NULL, NOW));
    q.spi = 0x3333;
    CHECK_OK(fx_apreq(&f, &q, req, sizeof(req), &len));
    rl = handle(&f, req, len, PEER, 40000, reply, sizeof(reply));
    CHECK_OK(accept_ap_reply(&f, &q, reply, rl, &v));
    CHECK_OK(ep_esp_new(&v, 0x3333, &e));
    cms_config_init(&cfg);
    cfg.lines = &line;
    cfg.n_lines = 1;
    io.arg = &cap;
    CHECK_OK(cms_call_core_new(&cfg, "cms@cms1.test", &io, &core));
    f.s.calls = core;
    /* RSIP: 200 and RQNT here, nothing from call control. */
    pl = ep_protect(&e, "RSIP 7 aaln/1@mta1.test MGCP 1.0 NCS 1.0\r\nRM: restart\r\n", pkt,
                    sizeof(pkt));
    rl = sig(&f, pkt, pl, PEER, 40000, reply, extra, &el);
    CHECK(rl > 0 && el > 0);
    CHECK_OK(ep_open(&e, reply, rl, text, sizeof(text)));
    CHECK(strcmp(text, "200 7 OK\r\n") == 0);
    CHECK_INT_EQ(cap.n, 0);
    /* NTFY: no synchronous answer; call control answers under the line's SA. */
    pl = ep_protect(&e, "NTFY 8 aaln/1@mta1.test MGCP 1.0 NCS 1.0\r\nX: 1\r\nO: hd\r\n", pkt,
                    sizeof(pkt));
    CHECK_INT_EQ(sig(&f, pkt, pl, PEER, 40000, reply, extra, &el), 0);
    CHECK_INT_EQ(el, 0);
    CHECK_INT_EQ(cap.n, 1);
    CHECK_INT_EQ(cap.spi[0], v.spi_s);
    CHECK(strcmp(cap.text[0], "200 8 OK\r\n") == 0);
    /* Dialling a number nobody serves: 200, then DLCX with the reason, to the line's name. */
    pl = ep_protect(&e, "NTFY 9 aaln/1@mta1.test MGCP 1.0 NCS 1.0\r\nX: 1\r\nO: 4,4,4\r\n",
                    pkt, sizeof(pkt));
    CHECK_INT_EQ(sig(&f, pkt, pl, PEER, 40000, reply, extra, &el), 0);
    CHECK_INT_EQ(cap.n, 3);
    CHECK(strcmp(cap.text[1], "200 9 OK\r\n") == 0);
    CHECK(strncmp(cap.text[2], "DLCX ", 5) == 0 &&
          strstr(cap.text[2], " aaln/1@mta1.test MGCP 1.0") != NULL &&
          strstr(cap.text[2], "\r\nX-CK-Reason: unknown-number\r\n") != NULL);
    /* An endpoint that is no line: answered 200 here, as in issue 7. */
    f.s.calls = NULL;
    cms_call_core_free(core);
    line.principal[0] = 'x';
    CHECK_OK(cms_call_core_new(&cfg, "cms@cms1.test", &io, &core));
    f.s.calls = core;
    pl = ep_protect(&e, "NTFY 10 aaln/1@mta1.test MGCP 1.0 NCS 1.0\r\nX: 1\r\nO: hd\r\n", pkt,
                    sizeof(pkt));
    rl = sig(&f, pkt, pl, PEER, 40000, reply, extra, &el);
    CHECK(rl > 0);
    CHECK_OK(ep_open(&e, reply, rl, text, sizeof(text)));
    CHECK(strcmp(text, "200 10 OK\r\n") == 0);
    CHECK_INT_EQ(cap.n, 3);
    f.s.calls = NULL;
    cms_call_core_free(core);
    cfg.lines = NULL;
    cfg.n_lines = 0;
    cms_config_free(&cfg);
    ep_esp_free(&e);
    ck_key_clear(&v.subkey);
    fx_down(&f);
}

CK_TEST_MAIN("cms_kmm", CK_TEST_CASE(test_call_control_routing),
             CK_TEST_CASE(test_happy_path_and_signaling),
             CK_TEST_CASE(test_wakeup_and_nonce), CK_TEST_CASE(test_negative),
             CK_TEST_CASE(test_full_tables), CK_TEST_CASE(test_ack_required),
             CK_TEST_CASE(test_rekey_and_expiry), CK_TEST_CASE(test_snmpv3),
             CK_TEST_CASE(test_key_rotation))
