/* The endpoint state machine (lib/endpoint) driven through virtual time against an in-process
 * fake CMS built from lib/kmm, lib/esp and the AP exchange: no sockets, no waiting. Datagrams the
 * endpoint sends go to an outbox; pump() hands each to the fake server at its address, whose
 * replies go back through ck_endpoint_on_datagram. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ck_test.h"
#include "cablekey/ap.h"
#include "cablekey/client.h"
#include "cablekey/endpoint.h"
#include "cablekey/esp.h"
#include "cablekey/kmm.h"
#include "cablekey/krb5_asn1.h"
#include "cablekey/principal.h"
#include "cablekey/util.h"

#define REALM "TEST.REALM"
#define SERVICE "cms/cms.test@" REALM
#define MAX_OUT 64
#define PKT_MAX 8192

/* ---------------------------------------------------------------------------------------------
 * The network: an outbox of datagrams from the endpoint.
 */
struct pkt {
    struct sockaddr_storage to;
    uint8_t data[PKT_MAX];
    size_t len;
    int64_t at;
};

static struct pkt outbox[MAX_OUT];
static size_t n_out;
static int64_t vnow;                    /* virtual wall clock, ms */

static int
ep_send(void *arg, const struct sockaddr *to, socklen_t to_len, const uint8_t *buf, size_t len)
{
    (void)arg;
    if (n_out >= MAX_OUT || len > PKT_MAX)
        return 0; /* the network drops it */
    memset(&outbox[n_out], 0, sizeof(outbox[n_out]));
    memcpy(&outbox[n_out].to, to, to_len);
    memcpy(outbox[n_out].data, buf, len);
    outbox[n_out].len = len;
    outbox[n_out].at = vnow;
    n_out++;
    return 0;
}

static uint16_t
port_of(const struct sockaddr_storage *ss)
{
    return ntohs(((const struct sockaddr_in *)(const void *)ss)->sin_port);
}

static void
set_addr(struct sockaddr_storage *ss, uint16_t port)
{
    struct sockaddr_in *s = (struct sockaddr_in *)(void *)ss;

    memset(ss, 0, sizeof(*ss));
    s->sin_family = AF_INET;
    s->sin_port = htons(port);
    s->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

/* ---------------------------------------------------------------------------------------------
 * Credentials: a ticket for SERVICE, client mta1@REALM.
 */
static ck_key service_key;

static ck_creds *
make_creds(void)
{
    static const char *const svc[] = {"cms", "cms.test"};
    static const char *const mta[] = {"mta1"};
    CK_ENC_TICKET_PART *etp = CK_ENC_TICKET_PART_new();
    CK_TICKET *tkt = CK_TICKET_new();
    ck_creds *c = calloc(1, sizeof(*c));
    uint8_t *der = NULL;
    size_t der_len = 0;
    int64_t now;

    ck_now(&now, NULL);
    CHECK(etp != NULL && tkt != NULL && c != NULL);
    CHECK_OK(ck_random_key(CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, &service_key));
    CHECK_OK(ck_random_key(CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, &c->session_key));
    CHECK_OK(ck_asn1_flags_set(&etp->flags, 0));
    CHECK_OK(ck_key_to_asn1(&c->session_key, &etp->key));
    CHECK_OK(ck_asn1_kstring_set(&etp->crealm, REALM));
    CHECK_OK(ck_asn1_principal_set(etp->cname, CK_NT_PRINCIPAL, mta, 1));
    etp->transited->tr_type = 1;
    CHECK_OK(ck_asn1_time_set(&etp->authtime, now - 10));
    CHECK_OK(ck_asn1_time_set(&etp->endtime, now + 86400));
    CHECK_OK(ck_asn1_kstring_set(&tkt->realm, REALM));
    CHECK_OK(ck_asn1_principal_set(tkt->sname, CK_NT_SRV_INST, svc, 2));
    CHECK_OK(ck_ticket_seal(tkt, etp, &service_key, 2));
    CHECK_OK(ck_asn1_ticket_encode(tkt, &der, &der_len));
    c->ticket = ck_memdup(der, der_len);
    c->ticket_len = der_len;
    c->ticket_etype = CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96;
    c->authtime = c->starttime = now - 10;
    c->endtime = now + 86400;
    CHECK_OK(ck_principal_build(REALM, CK_NT_PRINCIPAL, mta, 1, &c->client));
    CHECK_OK(ck_principal_build(REALM, CK_NT_SRV_INST, svc, 2, &c->server));
    ck_asn1_free_der(der, der_len);
    CK_TICKET_free(tkt);
    CK_ENC_TICKET_PART_free(etp);
    return c;
}

static int
key_fn(void *arg, const CK_TICKET *ticket, int32_t etype, uint32_t kvno, ck_key *key,
       int32_t *krb_error)
{
    (void)arg;
    (void)ticket;
    (void)kvno;
    if (etype != service_key.enctype) {
        *krb_error = CK_KRB_AP_ERR_NOKEY;
        return CK_ERR_NOTFOUND;
    }
    return ck_key_copy(key, &service_key);
}

/* ---------------------------------------------------------------------------------------------
 * The fake CMS.
 */
enum rep_fault { FAULT_NONE, FAULT_NO_SUBKEY, FAULT_UNOFFERED_SUITE, FAULT_TWO_SUITES,
                 FAULT_BAD_HMAC };

struct fake_cms {
    uint16_t kmm_port, sig_port;
    bool up;                          /* answers anything at all */
    bool wake_on_unknown_spi;
    bool send_rqnt;
    bool ack_required;
    int drop_sp;                      /* SP Recovered messages to lose */
    enum rep_fault fault;
    uint32_t lifetime, grace;
    /* SA */
    bool has_sa;
    uint32_t spi_s, spi_c;
    ck_key subkey;
    ck_esp_sa *in, *out;
    ck_esp_sa *old_out;               /* the SA before the last exchange (re-key tests) */
    uint8_t ap_rep_hmac[CK_KMM_HMAC_LEN];
    ck_esp_engine *eng;
    uint32_t next_rqnt;
    /* what it saw */
    int ap_reqs, ap_reps, sp_recovered, commands, responses, unknown_spi, esp_bad;
    uint32_t last_nonce;
    int last_reestablish;
    int rsips, ntfys;
    const char *name;                 /* the endpoint name commands must carry */
    const char *ntfy_body;            /* appended to its 200s to NTFY (response text test) */
    char last_response[PKT_MAX];      /* the text of the last response it received */
    uint8_t last_esp[PKT_MAX];        /* last ESP packet it sent (replay test) */
    size_t last_esp_len;
    bool sa_active;                   /* ACK-required: SP Recovered received for the SA */
    uint8_t last_rep[PKT_MAX];        /* last AP Reply it sent */
    size_t last_rep_len;
};

static struct fake_cms cms[2];
static ck_endpoint *ep;

static void
cms_init(struct fake_cms *c, uint16_t kmm_port, uint16_t sig_port)
{
    memset(c, 0, sizeof(*c));
    c->kmm_port = kmm_port;
    c->sig_port = sig_port;
    c->up = true;
    c->lifetime = 3600;
    c->grace = 600;
    c->send_rqnt = true;
    c->next_rqnt = 500;
    CHECK_OK(ck_esp_engine_new(&c->eng));
}

static void
cms_drop_sa(struct fake_cms *c)
{
    ck_esp_sa_free(c->in);
    ck_esp_sa_free(c->out);
    c->in = c->out = NULL;
    c->has_sa = false;
}

static void
cms_fini(struct fake_cms *c)
{
    cms_drop_sa(c);
    ck_esp_sa_free(c->old_out);
    ck_esp_engine_free(c->eng);
    ck_key_clear(&c->subkey);
    memset(c, 0, sizeof(*c));
}

static void
to_endpoint(struct fake_cms *c, uint16_t from_port, const uint8_t *buf, size_t len)
{
    struct sockaddr_storage from;

    (void)c;
    set_addr(&from, from_port);
    CHECK_OK(ck_endpoint_on_datagram(ep, buf, len, (struct sockaddr *)&from,
                                     sizeof(struct sockaddr_in), vnow));
}

static void
cms_esp_send(struct fake_cms *c, ck_esp_sa *sa, const char *text)
{
    uint8_t inner[PKT_MAX];
    size_t inner_len;

    CHECK_OK(ck_esp_udp_wrap(2727, 2427, (const uint8_t *)text, strlen(text), inner,
                             sizeof(inner), &inner_len));
    CHECK_OK(ck_esp_protect(c->eng, sa, CK_ESP_NEXT_HEADER_UDP, inner, inner_len, 0,
                            c->last_esp, sizeof(c->last_esp), &c->last_esp_len));
    to_endpoint(c, c->sig_port, c->last_esp, c->last_esp_len);
}

static void
cms_on_ap_req(struct fake_cms *c, const uint8_t *buf, size_t len)
{
    struct ck_kmm_msg m, r;
    ck_ap_req_result res;
    struct ck_kmm_keys keys;
    ck_key subkey;
    uint8_t key[CK_KMM_HMAC_KEY_LEN], out[PKT_MAX], *der = NULL;
    size_t der_len = 0, out_len;
    struct ck_kmm_suite suite;

    memset(&res, 0, sizeof(res));
    memset(&subkey, 0, sizeof(subkey));
    memset(&keys, 0, sizeof(keys));
    CHECK_OK(ck_kmm_decode(buf, len, &m));
    CHECK_INT_EQ(m.type, CK_KMM_AP_REQ);
    c->ap_reqs++;
    c->last_nonce = m.server_nonce;
    c->last_reestablish = m.reestablish;
    CHECK_OK(ck_ap_req_verify(m.krb, m.krb_len, key_fn, NULL, SERVICE, NULL, 300,
                              CK_KU_AP_REQ_AUTH, &res));
    CHECK(res.ap_options & CK_AP_OPT_MUTUAL_REQUIRED);
    CHECK_OK(ck_kmm_hmac_key(CK_KMM_HMAC_AP_REQ, &res.session_key, key));
    CHECK_OK(ck_kmm_verify(buf, &m, key));
    CHECK(m.n_suites >= 1);
    suite = m.suites[0];
    CHECK_OK(ck_random_key(res.session_key.enctype, &subkey));
    CHECK_OK(ck_ap_rep_build(&res.session_key, res.ctime, res.cusec,
                             c->fault == FAULT_NO_SUBKEY ? NULL : &subkey, NULL, &der, &der_len));
    memset(&r, 0, sizeof(r));
    r.type = CK_KMM_AP_REP;
    r.doi = CK_KMM_DOI_IPSEC;
    r.version = CK_KMM_VERSION;
    r.krb = der;
    r.krb_len = der_len;
    do {
        CHECK_OK(ck_random_bytes(&r.spi, 4));
    } while (r.spi < 256);
    r.n_suites = 1;
    r.suites[0] = suite;
    if (c->fault == FAULT_UNOFFERED_SUITE)
        r.suites[0] = (struct ck_kmm_suite){CK_KMM_AUTH_HMAC_MD5_96, CK_KMM_ENC_NULL};
    r.lifetime = c->lifetime;
    r.grace = c->grace;
    r.ack_required = c->ack_required;
    CHECK_OK(ck_kmm_encode(&r, out, sizeof(out), &out_len));
    if (c->fault == FAULT_TWO_SUITES) {
        /* The encoder refuses it, so splice a second pair in after the first:
         * ... n(1) suite(2) | lifetime(4) grace(4) re(1) ack(1) hmac(20). */
        size_t at = out_len - 30;
        memmove(out + at + 2, out + at, 30);
        out[at] = suite.auth;
        out[at + 1] = suite.enc;
        out[at - 3] = 2;
        out_len += 2;
    }
    CHECK_OK(ck_kmm_hmac_key(CK_KMM_HMAC_AP_REP, &subkey, key));
    if (c->fault == FAULT_BAD_HMAC)
        key[0] ^= 1;
    CHECK_OK(ck_kmm_seal(out, out_len, key));
    memcpy(c->ap_rep_hmac, out + out_len - CK_KMM_HMAC_LEN, CK_KMM_HMAC_LEN);
    if (c->fault == FAULT_NONE) {
        struct ck_esp_sa_params in = {0}, o = {0};
        CHECK_OK(ck_kmm_derive_ipsec(&subkey, suite, m.spi, r.spi, &keys));
        in.spi = r.spi;
        in.enc = suite.enc;
        in.auth = suite.auth;
        in.enc_key = keys.enc_c2s;
        in.enc_key_len = keys.enc_len;
        in.auth_key = keys.auth_c2s;
        in.auth_key_len = keys.auth_len;
        o = in;
        o.spi = m.spi;
        o.enc_key = keys.enc_s2c;
        o.auth_key = keys.auth_s2c;
        ck_esp_sa_free(c->old_out);
        c->old_out = c->out;
        c->out = NULL;
        ck_esp_sa_free(c->in);
        c->in = NULL;
        CHECK_OK(ck_esp_sa_new(&in, &c->in));
        CHECK_OK(ck_esp_sa_new(&o, &c->out));
        c->has_sa = true;
        c->sa_active = false;
        c->spi_s = r.spi;
        c->spi_c = m.spi;
        CHECK_OK(ck_key_copy(&c->subkey, &subkey));
    }
    c->ap_reps++;
    memcpy(c->last_rep, out, out_len);
    c->last_rep_len = out_len;
    to_endpoint(c, c->kmm_port, out, out_len);
    ck_asn1_free_der(der, der_len);
    ck_kmm_keys_clear(&keys);
    ck_key_clear(&subkey);
    ck_ap_req_result_clear(&res);
}

static void
cms_wakeup(struct fake_cms *c, uint32_t nonce, const char *principal)
{
    struct ck_kmm_msg w;
    uint8_t out[512];
    size_t len;

    memset(&w, 0, sizeof(w));
    w.type = CK_KMM_WAKE_UP;
    w.doi = CK_KMM_DOI_IPSEC;
    w.version = CK_KMM_VERSION;
    w.server_nonce = nonce;
    snprintf(w.server_principal, sizeof(w.server_principal), "%s", principal);
    CHECK_OK(ck_kmm_encode(&w, out, sizeof(out), &len));
    to_endpoint(c, c->kmm_port, out, len);
}

/* A Rekey keyed by the current SA's sub-key (or a corrupted key), timestamped ts (seconds). */
static void
cms_rekey(struct fake_cms *c, uint32_t nonce, int64_t ts, bool bad_key)
{
    struct ck_kmm_msg k;
    uint8_t out[512], key[CK_KMM_HMAC_KEY_LEN];
    size_t len;

    memset(&k, 0, sizeof(k));
    k.type = CK_KMM_REKEY;
    k.doi = CK_KMM_DOI_IPSEC;
    k.version = CK_KMM_VERSION;
    k.server_nonce = nonce;
    snprintf(k.server_principal, sizeof(k.server_principal), "%s", SERVICE);
    k.timestamp = ts;
    k.spi = c->spi_s;
    k.n_suites = 1;
    k.suites[0] = (struct ck_kmm_suite){CK_KMM_AUTH_HMAC_SHA1_96, CK_KMM_ENC_AES128};
    k.lifetime = c->lifetime;
    k.grace = c->grace;
    CHECK_OK(ck_kmm_encode(&k, out, sizeof(out), &len));
    CHECK_OK(ck_kmm_hmac_key(CK_KMM_HMAC_REKEY, &c->subkey, key));
    if (bad_key)
        key[5] ^= 0x80;
    CHECK_OK(ck_kmm_seal(out, len, key));
    to_endpoint(c, c->kmm_port, out, len);
}

static void
cms_on_esp(struct fake_cms *c, const uint8_t *buf, size_t len)
{
    uint8_t payload[PKT_MAX];
    const uint8_t *data;
    size_t plen, dlen;
    uint16_t sp, dp;
    uint8_t nh;
    uint32_t spi, txid;
    char text[PKT_MAX], verb[16], reply[512];

    if (ck_esp_udp_classify(buf, len, &spi) != CK_ESP_UDP_ESP) {
        c->esp_bad++;
        return;
    }
    if (!c->has_sa || spi != c->spi_s) {
        c->unknown_spi++;
        if (c->wake_on_unknown_spi)
            cms_wakeup(c, 0x5eed0001u + (uint32_t)c->unknown_spi, SERVICE);
        return;
    }
    if (ck_esp_unprotect(c->eng, c->in, buf, len, 0, payload, sizeof(payload), &plen, &nh) != 0) {
        c->esp_bad++;
        return;
    }
    CHECK_INT_EQ(nh, 17);
    CHECK_OK(ck_esp_udp_unwrap(payload, plen, &sp, &dp, &data, &dlen));
    CHECK_INT_EQ(sp, 2427);
    CHECK_INT_EQ(dp, 2727);
    CHECK(dlen < sizeof(text));
    memcpy(text, data, dlen);
    text[dlen] = '\0';
    if (sscanf(text, "%15s %u", verb, &txid) != 2) {
        CHECK(0);
        return;
    }
    if (verb[0] >= '1' && verb[0] <= '9') {
        c->responses++;
        snprintf(c->last_response, sizeof(c->last_response), "%s", text);
        return;
    }
    c->commands++;
    {
        char want[128];
        snprintf(want, sizeof(want), "%s %u %s MGCP 1.0 NCS 1.0\r\n", verb, txid,
                 c->name != NULL ? c->name : "aaln/1@mta1.test");
        CHECK(strncmp(text, want, strlen(want)) == 0);
    }
    if (strcmp(verb, "RSIP") == 0) {
        c->rsips++;
        CHECK(strstr(text, "RM: restart\r\n") != NULL);
    } else if (strcmp(verb, "NTFY") == 0) {
        c->ntfys++;
    }
    /* ACK-required: the SA stays pending (inbound only) until SP Recovered. */
    if (c->ack_required && !c->sa_active)
        return;
    snprintf(reply, sizeof(reply), "200 %u OK\r\n%s", txid,
             strcmp(verb, "NTFY") == 0 && c->ntfy_body != NULL ? c->ntfy_body : "");
    cms_esp_send(c, c->out, reply);
    if (strcmp(verb, "RSIP") == 0) {
        if (c->send_rqnt) {
            snprintf(reply, sizeof(reply), "RQNT %u aaln/1@mta1.test MGCP 1.0 NCS 1.0\r\n"
                                           "X: 1\r\nR: hd\r\n", c->next_rqnt++);
            cms_esp_send(c, c->out, reply);
        }
    }
}

static void
cms_on_kmm(struct fake_cms *c, const uint8_t *buf, size_t len)
{
    if (len > 0 && buf[0] == CK_KMM_AP_REQ) {
        cms_on_ap_req(c, buf, len);
    } else if (len > 0 && buf[0] == CK_KMM_SP_RECOVERED) {
        uint8_t key[CK_KMM_HMAC_KEY_LEN];
        if (c->drop_sp > 0) {
            c->drop_sp--;
            return;
        }
        CHECK_OK(ck_kmm_hmac_key(CK_KMM_HMAC_SP_RECOVERED, &c->subkey, key));
        CHECK_OK(ck_kmm_sp_recovered_verify(buf, len, c->ap_rep_hmac, key));
        c->sp_recovered++;
        c->sa_active = true;
    } else {
        CHECK(0);
    }
}

/* Delivers everything in the outbox (and what the answers cause) to the fake servers. */
static void
pump(void)
{
    for (int rounds = 0; n_out > 0 && rounds < 1000; rounds++) {
        struct pkt p = outbox[0];
        memmove(&outbox[0], &outbox[1], (n_out - 1) * sizeof(outbox[0]));
        n_out--;
        for (int i = 0; i < 2; i++) {
            uint16_t port = port_of(&p.to);
            if (!cms[i].up)
                continue;
            if (port == cms[i].kmm_port)
                cms_on_kmm(&cms[i], p.data, p.len);
            else if (port == cms[i].sig_port)
                cms_on_esp(&cms[i], p.data, p.len);
        }
    }
}

/* Moves virtual time to t, running the endpoint's timers as they fall due and delivering. */
static void
advance_to(int64_t t)
{
    for (int guard = 0; guard < 100000; guard++) {
        int64_t wait = ck_endpoint_next_timeout_ms(ep, vnow);
        if (wait < 0 || vnow + wait > t)
            break;
        vnow += wait;
        CHECK_OK(ck_endpoint_on_timer(ep, vnow));
        pump();
    }
    vnow = t;
    CHECK_OK(ck_endpoint_on_timer(ep, vnow));
    pump();
}

/* ---------------------------------------------------------------------------------------------
 * Set-up.
 */
static ck_creds *creds;
static struct ck_endpoint_stats st;
static int responses_200;
static uint32_t last_response_txid;
static int events[16];
static char last_detail[16][256];

static void
on_response(void *arg, uint32_t txid, int code)
{
    (void)arg;
    if (code == 200)
        responses_200++;
    last_response_txid = txid;
}

static void
on_event(void *arg, enum ck_endpoint_event ev, const char *detail)
{
    (void)arg;
    (void)detail;
    if ((int)ev < 16) {
        events[ev]++;
        snprintf(last_detail[ev], sizeof(last_detail[ev]), "%s", detail);
    }
    if (getenv("CK_TEST_VERBOSE") != NULL)
        fprintf(stderr, "  [%lld] event %d: %s\n", (long long)vnow, (int)ev, detail);
}

/* Lets a case set the issue-8 parameters before the endpoint is made. */
static void (*setup_hook)(struct ck_endpoint_params *p);

static void
setup(size_t n_cms, bool start)
{
    struct ck_endpoint_cms list[2];
    struct ck_endpoint_params p;

    n_out = 0;
    vnow = ck_endpoint_now_ms();
    responses_200 = 0;
    memset(events, 0, sizeof(events));
    cms_init(&cms[0], 1293, 4500);
    cms_init(&cms[1], 11293, 14500);
    memset(list, 0, sizeof(list));
    set_addr(&list[0].kmm, 1293);
    list[0].kmm_len = sizeof(struct sockaddr_in);
    list[0].sig_port = 4500;
    set_addr(&list[1].kmm, 11293);
    list[1].kmm_len = sizeof(struct sockaddr_in);
    list[1].sig_port = 14500;
    creds = make_creds();
    memset(&p, 0, sizeof(p));
    p.creds = creds;
    p.cms = list;
    p.n_cms = n_cms;
    p.host = "mta1.test";
    p.send = ep_send;
    p.on_event = on_event;
    p.on_response = on_response;
    if (setup_hook != NULL)
        setup_hook(&p);
    CHECK_OK(ck_endpoint_new(&p, &ep));
    if (start) {
        CHECK_OK(ck_endpoint_start(ep, vnow));
        pump();
    }
}

static void
teardown(void)
{
    ck_endpoint_free(ep);
    ep = NULL;
    ck_creds_free(creds);
    creds = NULL;
    cms_fini(&cms[0]);
    cms_fini(&cms[1]);
    ck_key_clear(&service_key);
}

/* ---------------------------------------------------------------------------------------------
 * Cases.
 */

static void
test_backoff_values(void)
{
    static const int want[] = {3000, 6000, 12000, 20000, 20000};

    for (int i = 0; i < 5; i++)
        CHECK_INT_EQ(ck_kdc_backoff_ms(3000, 20000, i), want[i]);
}

/* CMS 1 silent: AP Requests at 0, 3, 9, 21, 41 s (intervals 3, 6, 12, 20, 20), then at 61 s
 * the endpoint fails over to CMS 2, which answers. */
static void
test_backoff_failover(void)
{
    static const int64_t want[] = {0, 3000, 9000, 21000, 41000};
    int64_t t0;
    size_t seen = 0;

    setup(2, false);
    cms[0].up = false;
    t0 = vnow;
    CHECK_OK(ck_endpoint_start(ep, vnow));
    for (int guard = 0; guard < 100 && seen < 6; guard++) {
        int64_t wait = ck_endpoint_next_timeout_ms(ep, vnow);
        /* Look at what went out before delivering it. */
        for (size_t i = 0; i < n_out; i++) {
            if (port_of(&outbox[i].to) == 1293 && seen < 5) {
                CHECK_INT_EQ(outbox[i].at - t0, want[seen]);
                seen++;
            } else if (port_of(&outbox[i].to) == 11293 && seen == 5) {
                CHECK_INT_EQ(outbox[i].at - t0, 61000);
                seen++;
            }
        }
        pump();
        if (seen == 6 || wait < 0)
            break;
        vnow += wait;
        CHECK_OK(ck_endpoint_on_timer(ep, vnow));
    }
    pump();
    CHECK_INT_EQ(seen, 6);
    ck_endpoint_get_stats(ep, &st);
    CHECK_INT_EQ(st.failovers, 1);
    CHECK_INT_EQ(st.ap_req_sent, 6);
    CHECK_INT_EQ(ck_endpoint_state(ep), CK_ENDPOINT_ESTABLISHED);
    CHECK_INT_EQ(ck_endpoint_cms_index(ep), 1);
    CHECK_INT_EQ(cms[1].ap_reqs, 1);
    CHECK_INT_EQ(cms[1].rsips, 1);
    teardown();

    /* Every CMS silent: FAILED after both schedules, and nothing more is sent. */
    setup(2, false);
    cms[0].up = cms[1].up = false;
    CHECK_OK(ck_endpoint_start(ep, vnow));
    advance_to(vnow + 200000);
    CHECK_INT_EQ(ck_endpoint_state(ep), CK_ENDPOINT_FAILED);
    CHECK(strstr(ck_endpoint_failure(ep), "no CMS answered") != NULL);
    ck_endpoint_get_stats(ep, &st);
    CHECK_INT_EQ(st.ap_req_sent, 10);
    CHECK_INT_EQ(ck_endpoint_next_timeout_ms(ep, vnow), -1);
    teardown();
}

/* One exchange, RSIP, the server's RQNT answered, NTFYs answered, all under ESP; a replayed ESP
 * packet is dropped and not answered twice. */
static void
test_establish_and_signal(void)
{
    struct ck_endpoint_sa_info sa;
    uint32_t txid;
    int answered;

    setup(1, true);
    CHECK_INT_EQ(ck_endpoint_state(ep), CK_ENDPOINT_ESTABLISHED);
    CHECK(ck_endpoint_sa_info(ep, &sa));
    CHECK_INT_EQ(sa.spi_in, cms[0].spi_c);
    CHECK_INT_EQ(sa.spi_out, cms[0].spi_s);
    CHECK_INT_EQ(sa.suite.enc, CK_KMM_ENC_AES128);
    CHECK_INT_EQ(cms[0].last_nonce, 0);
    CHECK_INT_EQ(cms[0].last_reestablish, 0);
    CHECK(ck_endpoint_restarted(ep));
    CHECK_INT_EQ(cms[0].rsips, 1);
    CHECK_INT_EQ(cms[0].responses, 1); /* our 200 to its RQNT */
    for (int i = 0; i < 3; i++) {
        CHECK_OK(ck_endpoint_send_command(ep, "NTFY", "X: 1\r\nO: hd\r\n", vnow, &txid));
        pump();
        CHECK_INT_EQ(last_response_txid, txid);
    }
    CHECK_INT_EQ(cms[0].ntfys, 3);
    CHECK_INT_EQ(responses_200, 4);
    CHECK_INT_EQ(ck_endpoint_pending(ep), 0);
    ck_endpoint_get_stats(ep, &st);
    CHECK_INT_EQ(st.rqnt_received, 1);
    CHECK_INT_EQ(st.commands_sent, 4);
    CHECK_INT_EQ(st.retransmissions, 0);
    CHECK_INT_EQ(st.esp_dropped, 0);

    /* Replay the server's last packet (a 200): dropped, counted. */
    answered = responses_200;
    to_endpoint(&cms[0], 4500, cms[0].last_esp, cms[0].last_esp_len);
    ck_endpoint_get_stats(ep, &st);
    CHECK_INT_EQ(st.esp_dropped, 1);
    CHECK_INT_EQ(responses_200, answered);
    /* A forged ICV: dropped too. */
    cms[0].last_esp[cms[0].last_esp_len - 1] ^= 1;
    to_endpoint(&cms[0], 4500, cms[0].last_esp, cms[0].last_esp_len);
    ck_endpoint_get_stats(ep, &st);
    CHECK_INT_EQ(st.esp_dropped, 2);
    /* A server command replayed is not answered twice. */
    {
        int before = cms[0].responses;
        cms_esp_send(&cms[0], cms[0].out, "RQNT 77 aaln/1@mta1.test MGCP 1.0 NCS 1.0\r\n");
        pump();
        CHECK_INT_EQ(cms[0].responses, before + 1);
        to_endpoint(&cms[0], 4500, cms[0].last_esp, cms[0].last_esp_len);
        pump();
        CHECK_INT_EQ(cms[0].responses, before + 1);
    }
    /* Datagrams from an unknown port are dropped. */
    {
        uint64_t before;
        ck_endpoint_get_stats(ep, &st);
        before = st.dropped;
        to_endpoint(&cms[0], 999, cms[0].last_esp, cms[0].last_esp_len);
        ck_endpoint_get_stats(ep, &st);
        CHECK_INT_EQ(st.dropped, before + 1);
    }
    teardown();
}

/* Re-key at lifetime - grace: nothing before, one AP exchange at it, signaling on the new SA,
 * and the old inbound SA still accepted until it expires. */
static void
test_rekey_timer(void)
{
    struct ck_endpoint_sa_info a, b;
    int64_t t0;
    uint32_t txid;

    setup(1, true);
    t0 = vnow;
    CHECK(ck_endpoint_sa_info(ep, &a));
    CHECK_INT_EQ(a.rekey_at_ms - t0, 3000 * 1000);
    CHECK_INT_EQ(a.expires_ms - t0, 3600 * 1000);
    advance_to(t0 + 2999 * 1000);
    CHECK_INT_EQ(cms[0].ap_reqs, 1);
    advance_to(t0 + 3000 * 1000);
    CHECK_INT_EQ(cms[0].ap_reqs, 2);
    CHECK_INT_EQ(cms[0].last_reestablish, 0);
    CHECK(ck_endpoint_sa_info(ep, &b));
    CHECK(b.spi_in != a.spi_in);
    CHECK(b.spi_out != a.spi_out);
    CHECK_INT_EQ(b.rekey_at_ms - vnow, 3000 * 1000);
    ck_endpoint_get_stats(ep, &st);
    CHECK_INT_EQ(st.exchanges, 2);
    CHECK_INT_EQ(st.rekeys, 1);
    CHECK_INT_EQ(cms[0].rsips, 1); /* RSIP only once */
    CHECK_OK(ck_endpoint_send_command(ep, "NTFY", "X: 2\r\nO: hd\r\n", vnow, &txid));
    pump();
    CHECK_INT_EQ(last_response_txid, txid);
    /* The server still sends on the old SA for a moment: accepted. */
    cms_esp_send(&cms[0], cms[0].old_out, "RQNT 900 aaln/1@mta1.test MGCP 1.0 NCS 1.0\r\n");
    pump();
    ck_endpoint_get_stats(ep, &st);
    CHECK_INT_EQ(st.esp_dropped, 0);
    CHECK_INT_EQ(st.rqnt_received, 2);
    /* After the old SA's expiry it is gone. */
    advance_to(t0 + 3601 * 1000);
    cms_esp_send(&cms[0], cms[0].old_out, "RQNT 901 aaln/1@mta1.test MGCP 1.0 NCS 1.0\r\n");
    ck_endpoint_get_stats(ep, &st);
    CHECK_INT_EQ(st.esp_dropped, 1);
    CHECK_INT_EQ(st.rqnt_received, 2);
    teardown();
}

/* Wake Up: answered with the nonce echoed, only when it names our service. */
static void
test_wakeup(void)
{
    setup(1, true);
    cms_wakeup(&cms[0], 0xabcdef01u, "cms/other.test@" REALM);
    pump();
    CHECK_INT_EQ(cms[0].ap_reqs, 1);
    cms_wakeup(&cms[0], 0xabcdef01u, SERVICE);
    pump();
    CHECK_INT_EQ(cms[0].ap_reqs, 2);
    CHECK_INT_EQ(cms[0].last_nonce, 0xabcdef01u);
    CHECK_INT_EQ(ck_endpoint_state(ep), CK_ENDPOINT_ESTABLISHED);
    /* A flood of Wake Ups: at most one AP Request a second. */
    cms_wakeup(&cms[0], 0x01020304u, SERVICE);
    pump();
    CHECK_INT_EQ(cms[0].ap_reqs, 2);
    vnow += 1000;
    cms_wakeup(&cms[0], 0x01020304u, SERVICE);
    pump();
    CHECK_INT_EQ(cms[0].ap_reqs, 3);
    CHECK_INT_EQ(cms[0].last_nonce, 0x01020304u);
    ck_endpoint_get_stats(ep, &st);
    CHECK_INT_EQ(st.wakeups, 2);
    CHECK(st.kmm_ignored >= 2);
    teardown();

    /* A server nonce is echoed while the server still takes it (30 s); later retries of the
     * same exchange start afresh with nonce 0. */
    setup(1, true);
    cms[0].up = false;
    vnow += 1000;
    cms_wakeup(&cms[0], 0x0badcafeu, SERVICE);
    CHECK_INT_EQ(n_out, 1);
    pump();
    advance_to(vnow + 21000);       /* tries at 0, 3, 9, 21 s */
    cms[0].up = true;
    advance_to(vnow + 20000);       /* the try at 41 s */
    CHECK_INT_EQ(cms[0].ap_reqs, 2);
    CHECK_INT_EQ(cms[0].last_nonce, 0);
    CHECK_INT_EQ(ck_endpoint_state(ep), CK_ENDPOINT_ESTABLISHED);
    teardown();
}

/* Rekey: acted on with its nonce when authentic and fresh; a bad HMAC, a stale timestamp or a
 * repeat is ignored and counted. */
static void
test_rekey_message(void)
{
    int64_t now_s;

    setup(1, true);
    now_s = vnow / 1000;
    cms_rekey(&cms[0], 0x11111111u, now_s, true);
    pump();
    CHECK_INT_EQ(cms[0].ap_reqs, 1);
    cms_rekey(&cms[0], 0x22222222u, now_s - 301, false);
    pump();
    CHECK_INT_EQ(cms[0].ap_reqs, 1);
    cms_rekey(&cms[0], 0x22222222u, now_s + 301, false);
    pump();
    CHECK_INT_EQ(cms[0].ap_reqs, 1);
    ck_endpoint_get_stats(ep, &st);
    CHECK_INT_EQ(st.kmm_ignored, 3);
    CHECK_INT_EQ(st.rekey_msgs, 0);
    /* A good one while the server's KMM port is deaf: the AP Request goes out... */
    cms[0].up = false;
    cms_rekey(&cms[0], 0x33333333u, now_s - 10, false);
    CHECK_INT_EQ(n_out, 1);
    pump();
    /* ...and the same Rekey again (a replay) is ignored. */
    cms_rekey(&cms[0], 0x33333333u, now_s - 10, false);
    CHECK_INT_EQ(n_out, 0);
    ck_endpoint_get_stats(ep, &st);
    CHECK_INT_EQ(st.kmm_ignored, 4);
    cms[0].up = true;
    advance_to(vnow + 3000);
    CHECK_INT_EQ(cms[0].ap_reqs, 2);
    CHECK_INT_EQ(cms[0].last_nonce, 0x33333333u);
    CHECK_INT_EQ(cms[0].last_reestablish, 0);
    ck_endpoint_get_stats(ep, &st);
    CHECK_INT_EQ(st.rekey_msgs, 1);
    CHECK_INT_EQ(st.rekeys, 1);
    teardown();
}

/* AP Replies the endpoint must refuse: no sub-key, a suite it did not offer, two suites, a bad
 * HMAC. It stays without an SA and keeps retrying. */
static void
test_ap_rep_refused(void)
{
    static const enum rep_fault faults[] = {FAULT_NO_SUBKEY, FAULT_UNOFFERED_SUITE,
                                            FAULT_TWO_SUITES, FAULT_BAD_HMAC};

    for (size_t i = 0; i < sizeof(faults) / sizeof(faults[0]); i++) {
        setup(1, false);
        cms[0].fault = faults[i];
        CHECK_OK(ck_endpoint_start(ep, vnow));
        pump();
        CHECK_INT_EQ(cms[0].ap_reps, 1);
        CHECK_INT_EQ(ck_endpoint_state(ep), CK_ENDPOINT_KEYING);
        ck_endpoint_get_stats(ep, &st);
        /* Two suites do not even decode (the codec's rule): dropped rather than refused. */
        if (faults[i] == FAULT_TWO_SUITES) {
            CHECK_INT_EQ(st.dropped, 1);
        } else {
            CHECK_INT_EQ(st.kmm_ignored, 1);
            CHECK_INT_EQ(events[CK_ENDPOINT_EV_REFUSED], 1);
        }
        CHECK_INT_EQ(st.exchanges, 0);
        /* Once the server behaves, the next retry succeeds. */
        cms[0].fault = FAULT_NONE;
        advance_to(vnow + 3000);
        CHECK_INT_EQ(ck_endpoint_state(ep), CK_ENDPOINT_ESTABLISHED);
        CHECK_INT_EQ(cms[0].ap_reqs, 2);
        teardown();
    }
}

/* The server lost the SA (restarted). With a Wake Up on the unknown SPI: one AP round trip, then
 * the unanswered NTFY goes out again on the new SA. Without: the NTFY's retries run out, and one
 * AP round trip with Re-establish = 1 recovers. */
static void
test_lost_sa(void)
{
    uint32_t txid;
    int reqs;

    setup(1, true);
    cms_drop_sa(&cms[0]);
    cms[0].wake_on_unknown_spi = true;
    reqs = cms[0].ap_reqs;
    CHECK_OK(ck_endpoint_send_command(ep, "NTFY", "X: 3\r\nO: hd\r\n", vnow, &txid));
    pump();
    CHECK_INT_EQ(cms[0].unknown_spi, 1);
    CHECK_INT_EQ(cms[0].ap_reqs, reqs + 1);
    CHECK_INT_EQ(cms[0].last_reestablish, 1);
    CHECK(cms[0].last_nonce != 0);
    CHECK_INT_EQ(ck_endpoint_state(ep), CK_ENDPOINT_ESTABLISHED);
    advance_to(vnow + 1000); /* the NTFY's retransmission, now on the new SA */
    CHECK_INT_EQ(last_response_txid, txid);
    CHECK_INT_EQ(ck_endpoint_pending(ep), 0);
    teardown();

    setup(1, true);
    cms_drop_sa(&cms[0]);
    reqs = cms[0].ap_reqs;
    CHECK_OK(ck_endpoint_send_command(ep, "NTFY", "X: 4\r\nO: hd\r\n", vnow, &txid));
    pump();
    advance_to(vnow + 3999);
    CHECK_INT_EQ(cms[0].unknown_spi, 4);
    CHECK_INT_EQ(cms[0].ap_reqs, reqs);
    advance_to(vnow + 1);
    CHECK_INT_EQ(events[CK_ENDPOINT_EV_SA_LOST], 1);
    CHECK_INT_EQ(cms[0].ap_reqs, reqs + 1);
    CHECK_INT_EQ(cms[0].last_reestablish, 1);
    CHECK_INT_EQ(ck_endpoint_state(ep), CK_ENDPOINT_ESTABLISHED);
    CHECK_INT_EQ(last_response_txid, txid);
    ck_endpoint_get_stats(ep, &st);
    CHECK_INT_EQ(st.reestablished, 1);
    teardown();

    /* The endpoint itself lost it: one round trip with Re-establish = 1. */
    setup(1, true);
    reqs = cms[0].ap_reqs;
    CHECK_OK(ck_endpoint_forget_sa(ep, vnow));
    pump();
    CHECK_INT_EQ(cms[0].ap_reqs, reqs + 1);
    CHECK_INT_EQ(cms[0].last_reestablish, 1);
    CHECK_INT_EQ(ck_endpoint_state(ep), CK_ENDPOINT_ESTABLISHED);
    teardown();
}

/* ACK-required: SP Recovered right after the AP Reply, verified by the server. */
static void
test_ack_required(void)
{
    setup(1, false);
    cms[0].ack_required = true;
    CHECK_OK(ck_endpoint_start(ep, vnow));
    pump();
    CHECK_INT_EQ(cms[0].sp_recovered, 1);
    CHECK_INT_EQ(ck_endpoint_state(ep), CK_ENDPOINT_ESTABLISHED);
    /* Signaling waits a moment, so that SP Recovered is processed first. */
    CHECK_INT_EQ(cms[0].rsips, 0);
    CHECK_INT_EQ(ck_endpoint_next_timeout_ms(ep, vnow), 50);
    advance_to(vnow + 50);
    CHECK_INT_EQ(cms[0].rsips, 1);
    CHECK(ck_endpoint_restarted(ep));
    CHECK_INT_EQ(cms[0].sp_recovered, 1);
    ck_endpoint_get_stats(ep, &st);
    CHECK_INT_EQ(st.retransmissions, 0);
    /* Then the next timer is the re-key, not a busy loop. */
    CHECK(ck_endpoint_next_timeout_ms(ep, vnow) > 1000);
    teardown();

    /* SP Recovered lost: the server keeps the SA pending and answers nothing; with the RSIP's
     * retransmission SP Recovered goes again, and then the RSIP is answered. */
    setup(1, false);
    cms[0].ack_required = true;
    cms[0].drop_sp = 1;
    CHECK_OK(ck_endpoint_start(ep, vnow));
    pump();
    advance_to(vnow + 50);
    CHECK_INT_EQ(cms[0].rsips, 1);
    CHECK(!ck_endpoint_restarted(ep));
    advance_to(vnow + 1000);
    CHECK_INT_EQ(cms[0].sp_recovered, 1);
    CHECK_INT_EQ(cms[0].rsips, 2);
    CHECK(ck_endpoint_restarted(ep));
    {
        struct ck_endpoint_sa_info sa;
        CHECK(ck_endpoint_sa_info(ep, &sa));
        CHECK(!sa.ack_pending);
    }
    teardown();
}

static void
test_suites(void)
{
    struct ck_kmm_suite s[8];
    size_t n;

    CHECK_OK(ck_endpoint_suites_parse("sha1-aes128, sha1-3des sha1-null", s, 8, &n));
    CHECK_INT_EQ(n, 3);
    CHECK_INT_EQ(s[1].enc, CK_KMM_ENC_3DES);
    CHECK(strcmp(ck_kmm_suite_short_name(CK_KMM_DOI_IPSEC, s[2]), "sha1-null") == 0);
    CHECK(ck_endpoint_suites_parse("sha1-rc5", s, 8, &n) != 0);
    CHECK(ck_endpoint_suites_parse("", s, 8, &n) != 0);
}

static void
test_signal_parse(void)
{
    static const char *const bad[] = {
        "", "NTFY", "NTFY  aaln", "NTFY 0 x", "NTFY 1000000000 x", "NTFY 12a x", "ntfy 1 x",
        "NTFYNTFYNTFYNTFYX 1 x", "200", "200 x OK", "NTFY 1\rX", " 1 x",
    };
    struct ck_endpoint_signal sig;

    CHECK_OK(ck_endpoint_signal_parse((const uint8_t *)"200 17 OK\r\n", 11, &sig));
    CHECK(sig.is_response);
    CHECK_INT_EQ(sig.code, 200);
    CHECK_INT_EQ(sig.txid, 17);
    {
        const char *t = "RQNT 999999999 aaln/1@h MGCP 1.0 NCS 1.0\r\nX: 1\r\n";
        CHECK_OK(ck_endpoint_signal_parse((const uint8_t *)t, strlen(t), &sig));
    }
    CHECK(!sig.is_response);
    CHECK(strcmp(sig.verb, "RQNT") == 0);
    CHECK_INT_EQ(sig.txid, 999999999);
    CHECK_OK(ck_endpoint_signal_parse((const uint8_t *)"500 3", 5, &sig));
    CHECK_INT_EQ(sig.code, 500);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (ck_endpoint_signal_parse((const uint8_t *)bad[i], strlen(bad[i]), &sig) == 0) {
            fprintf(stderr, "  accepted \"%s\"\n", bad[i]);
            CHECK(0);
        }
    }
    CHECK(ck_endpoint_signal_parse((const uint8_t *)"NTFY 1 \0", 8, &sig) != 0);
}

static void
cms_error_reply(struct fake_cms *c, int32_t code)
{
    static const char *const svc[] = {"cms", "cms.test"};
    CK_KRB_ERROR_MSG *e = CK_KRB_ERROR_MSG_new();
    struct ck_kmm_msg m;
    uint8_t *der = NULL, out[1024];
    size_t der_len = 0, len;

    CHECK(e != NULL);
    e->pvno = 5;
    e->msg_type = CK_KRB_ERROR;
    e->error_code = code;
    CHECK_OK(ck_asn1_time_set(&e->stime, vnow / 1000));
    CHECK_OK(ck_asn1_kstring_set(&e->realm, REALM));
    CHECK_OK(ck_asn1_principal_set(e->sname, CK_NT_SRV_INST, svc, 2));
    CHECK_OK(ck_asn1_krb_error_encode(e, &der, &der_len));
    memset(&m, 0, sizeof(m));
    m.type = CK_KMM_ERROR_REPLY;
    m.doi = CK_KMM_DOI_IPSEC;
    m.version = CK_KMM_VERSION;
    m.krb = der;
    m.krb_len = der_len;
    CHECK_OK(ck_kmm_encode(&m, out, sizeof(out), &len));
    to_endpoint(c, c->kmm_port, out, len);
    ck_asn1_free_der(der, der_len);
    CK_KRB_ERROR_MSG_free(e);
}

/* An Error Reply is advisory: counted, never drops a working SA, never stops the retries. */
static void
test_error_reply(void)
{
    setup(1, true);
    cms_error_reply(&cms[0], 41);
    ck_endpoint_get_stats(ep, &st);
    CHECK_INT_EQ(st.error_replies, 1);
    CHECK(strcmp(last_detail[CK_ENDPOINT_EV_ERROR_REPLY], "KRB-ERROR 41") == 0);
    CHECK_INT_EQ(ck_endpoint_state(ep), CK_ENDPOINT_ESTABLISHED);
    teardown();

    setup(1, false);
    cms[0].up = false;
    CHECK_OK(ck_endpoint_start(ep, vnow));
    pump();
    cms_error_reply(&cms[0], 60);
    CHECK_INT_EQ(ck_endpoint_state(ep), CK_ENDPOINT_KEYING);
    cms[0].up = true;
    advance_to(vnow + 3000);
    CHECK_INT_EQ(ck_endpoint_state(ep), CK_ENDPOINT_ESTABLISHED);
    teardown();
}

/* A re-key that gets no answer: the CMS is gone, so after the backoff the endpoint fails over
 * (dropping the SA it still had) and keys with the second CMS. Stale AP Replies are refused. */
static void
test_rekey_failover(void)
{
    struct ck_endpoint_sa_info sa;
    int64_t t0;

    setup(2, true);
    t0 = vnow;
    CHECK_INT_EQ(ck_endpoint_cms_index(ep), 0);
    cms[0].up = false;
    advance_to(t0 + 3000 * 1000);          /* the re-key AP Request, unanswered */
    CHECK(ck_endpoint_sa_info(ep, &sa));   /* the SA still works meanwhile */
    advance_to(t0 + 3060 * 1000);
    CHECK(ck_endpoint_sa_info(ep, &sa));
    CHECK_INT_EQ(sa.cms_index, 0);
    advance_to(t0 + 3061 * 1000);
    CHECK(ck_endpoint_sa_info(ep, &sa));
    CHECK_INT_EQ(sa.cms_index, 1);
    CHECK_INT_EQ(cms[1].ap_reqs, 1);
    ck_endpoint_get_stats(ep, &st);
    CHECK_INT_EQ(st.failovers, 1);
    /* CMS 1's AP Reply from long ago, and CMS 2's last one replayed: neither answers an
     * outstanding exchange, so both are refused and the SA stays. */
    {
        uint64_t before = st.kmm_ignored;
        to_endpoint(&cms[0], cms[0].kmm_port, cms[0].last_rep, cms[0].last_rep_len);
        to_endpoint(&cms[1], cms[1].kmm_port, cms[1].last_rep, cms[1].last_rep_len);
        ck_endpoint_get_stats(ep, &st);
        CHECK_INT_EQ(st.kmm_ignored, before + 2);
        CHECK_INT_EQ(st.exchanges, 2);
        CHECK(ck_endpoint_sa_info(ep, &sa));
        CHECK_INT_EQ(sa.spi_out, cms[1].spi_s);
    }
    teardown();
}

/* ccache round trip through lib/krb's writer, the ticket lookup, and krb5.conf KDCs. */
static void
test_ccache_and_krb5conf(void)
{
    char path[] = "/tmp/ck_test_ep_XXXXXX", conf[] = "/tmp/ck_test_krb5_XXXXXX";
    ck_creds *c = make_creds(), *got = NULL, **list = NULL;
    const ck_creds *one = c;
    ck_kdc_transport t = {0};
    const char *kdcs[4];
    char buf[256];
    size_t n = 0;
    bool from_tgs = true;
    int fd;
    FILE *f;

    CHECK((fd = mkstemp(path)) >= 0);
    close(fd);
    CHECK_OK(ck_ccache_write(path, &one, 1));
    CHECK_OK(ck_ccache_read(path, &list, &n, NULL));
    CHECK_INT_EQ(n, 1);
    if (n == 1) {
        CHECK(ck_principal_equal(list[0]->server, c->server));
        CHECK_MEM_EQ(list[0]->ticket, list[0]->ticket_len, c->ticket, c->ticket_len);
        CHECK_MEM_EQ(list[0]->session_key.contents, list[0]->session_key.length,
                     c->session_key.contents, c->session_key.length);
        CHECK_INT_EQ(list[0]->endtime, c->endtime);
    }
    ck_ccache_creds_free(list, n);
    CHECK_OK(ck_endpoint_get_ticket(path, SERVICE, &t, c->authtime + 100, &got, &from_tgs));
    CHECK(!from_tgs);
    CHECK(got != NULL && ck_principal_equal(got->server, c->server));
    ck_creds_free(got);
    /* Another service and no TGT: a clear error. */
    CHECK(ck_endpoint_get_ticket(path, "cms/x.test", &t, c->authtime + 100, &got, &from_tgs) ==
          CK_ERR_NOTFOUND);
    /* Truncated files are refused. */
    CHECK(truncate(path, 40) == 0);
    CHECK(ck_ccache_read(path, &list, &n, NULL) != 0);
    unlink(path);

    CHECK((fd = mkstemp(conf)) >= 0);
    CHECK((f = fdopen(fd, "w")) != NULL);
    fprintf(f, "[libdefaults]\n default_realm = " REALM "\n[realms]\n " REALM " = {\n"
               "  kdc = 127.0.0.1:8888\n  kdc = 127.0.0.2\n }\n");
    fclose(f);
    setenv("KRB5_CONFIG", conf, 1);
    CHECK_OK(ck_krb5conf_kdcs(REALM, buf, sizeof(buf), kdcs, 4, &n));
    CHECK_INT_EQ(n, 2);
    if (n == 2) {
        CHECK(strcmp(kdcs[0], "127.0.0.1:8888") == 0);
        CHECK(strcmp(kdcs[1], "127.0.0.2") == 0);
    }
    CHECK(ck_krb5conf_kdcs("OTHER.REALM", buf, sizeof(buf), kdcs, 4, &n) == CK_ERR_NOTFOUND);
    unsetenv("KRB5_CONFIG");
    unlink(conf);
    ck_creds_free(c);
    ck_key_clear(&service_key);
}

/* ---------------------------------------------------------------------------------------------
 * Issue 8: endpoint_name, on_response_text, on_command_reply and its reply cache.
 */
static int replies_made, commands_seen, text_responses;
static char last_text[PKT_MAX];
static int last_text_code;
static bool reply_empty, reply_drop;

static void
call_on_command(void *arg, const char *verb, uint32_t txid, const char *text, size_t len)
{
    (void)arg;
    (void)verb;
    (void)txid;
    (void)text;
    (void)len;
    commands_seen++;
}

static void
call_on_reply(void *arg, const char *verb, uint32_t txid, const char *text, size_t len,
              ck_writer *reply)
{
    char buf[256];
    int n;

    (void)arg;
    CHECK(len > 4 && memcmp(text, verb, strlen(verb)) == 0);
    replies_made++;
    if (reply_drop)
        ck_endpoint_drop_reply(ep);
    if (reply_empty)
        return;
    /* A different body every time, so a cached answer is told from a fresh one. */
    n = snprintf(buf, sizeof(buf), "200 %u OK\r\n\r\nv=0\r\nm=audio %d RTP/AVP 0\r\n", txid,
                 4000 + replies_made);
    CHECK_OK(ck_writer_bytes(reply, buf, (size_t)n));
}

static void
call_on_response_text(void *arg, uint32_t txid, int code, const char *text, size_t len)
{
    (void)arg;
    (void)txid;
    text_responses++;
    last_text_code = code;
    CHECK(len < sizeof(last_text));
    memcpy(last_text, text, len);
    last_text[len] = '\0';
}

static void
call_hook(struct ck_endpoint_params *p)
{
    p->endpoint_name = "cms@ca.test";
    p->on_response_text = call_on_response_text;
    p->on_command_reply = call_on_reply;
    p->on_command = call_on_command;
}

static void
bad_name_hook(struct ck_endpoint_params *p)
{
    p->endpoint_name = "cms@ca test";
}

static void
test_call_api(void)
{
    char cmd[128], first[PKT_MAX];
    uint32_t txid;
    int before;

    replies_made = commands_seen = text_responses = 0;
    reply_empty = false;
    setup_hook = call_hook;
    setup(1, false);
    cms[0].name = "cms@ca.test";
    cms[0].send_rqnt = false;
    cms[0].ntfy_body = "\r\nv=0\r\nm=audio 5004 RTP/AVP 0\r\n";
    CHECK_OK(ck_endpoint_start(ep, vnow));
    pump();
    CHECK_INT_EQ(ck_endpoint_state(ep), CK_ENDPOINT_ESTABLISHED);
    CHECK_INT_EQ(cms[0].rsips, 1); /* under the configured name (the fake checks it) */
    CHECK_INT_EQ(text_responses, 1);

    /* A response's whole text reaches on_response_text, after on_response. */
    CHECK_OK(ck_endpoint_send_command(ep, "NTFY", "X: 1\r\nO: hd\r\n", vnow, &txid));
    pump();
    CHECK_INT_EQ(last_response_txid, txid);
    CHECK_INT_EQ(text_responses, 2);
    CHECK_INT_EQ(last_text_code, 200);
    CHECK(strstr(last_text, "m=audio 5004 RTP/AVP 0\r\n") != NULL);

    /* A server command is answered with what on_command_reply wrote. */
    snprintf(cmd, sizeof(cmd), "CRCX 600 cms@ca.test MGCP 1.0\r\nC: 0123abcd\r\n");
    cms_esp_send(&cms[0], cms[0].out, cmd);
    pump();
    CHECK_INT_EQ(replies_made, 1);
    CHECK_INT_EQ(commands_seen, 1);
    CHECK(strcmp(cms[0].last_response, "200 600 OK\r\n\r\nv=0\r\nm=audio 4001 RTP/AVP 0\r\n") ==
          0);
    snprintf(first, sizeof(first), "%s", cms[0].last_response);
    /* Its retransmission (a new ESP packet, the same txid) gets the same response again without
     * a second callback. */
    before = cms[0].responses;
    cms_esp_send(&cms[0], cms[0].out, cmd);
    pump();
    CHECK_INT_EQ(cms[0].responses, before + 1);
    CHECK_INT_EQ(replies_made, 1);
    CHECK_INT_EQ(commands_seen, 1);
    CHECK(strcmp(cms[0].last_response, first) == 0);
    ck_endpoint_get_stats(ep, &st);
    CHECK_INT_EQ(st.commands_repeated, 1);
    CHECK_INT_EQ(st.commands_received, 1);

    /* A lost answer (test hook): nothing sent, but the retransmission gets the cached one. */
    reply_drop = true;
    before = cms[0].responses;
    cms_esp_send(&cms[0], cms[0].out, "MDCX 650 cms@ca.test MGCP 1.0\r\n");
    pump();
    reply_drop = false;
    CHECK_INT_EQ(cms[0].responses, before);
    CHECK_INT_EQ(replies_made, 2);
    cms_esp_send(&cms[0], cms[0].out, "MDCX 650 cms@ca.test MGCP 1.0\r\n");
    pump();
    CHECK_INT_EQ(cms[0].responses, before + 1);
    CHECK_INT_EQ(replies_made, 2);
    CHECK(strcmp(cms[0].last_response, "200 650 OK\r\n\r\nv=0\r\nm=audio 4002 RTP/AVP 0\r\n") ==
          0);

    /* A callback that writes nothing: the default "200 <txid> OK". */
    reply_empty = true;
    cms_esp_send(&cms[0], cms[0].out, "MDCX 601 cms@ca.test MGCP 1.0\r\n");
    pump();
    CHECK(strcmp(cms[0].last_response, "200 601 OK\r\n") == 0);
    CHECK_INT_EQ(replies_made, 3);
    reply_empty = false;

    /* The cache is bounded: after CK_ENDPOINT_REPLY_CACHE other commands, txid 600 is
     * forgotten and a repeat of it is a new command. 650 and 601 went in after it. */
    for (int i = 0; i < CK_ENDPOINT_REPLY_CACHE - 2; i++) {
        snprintf(cmd, sizeof(cmd), "RQNT %d cms@ca.test MGCP 1.0\r\n", 700 + i);
        cms_esp_send(&cms[0], cms[0].out, cmd);
        pump();
    }
    CHECK_INT_EQ(replies_made, 3 + CK_ENDPOINT_REPLY_CACHE - 2);
    /* 600 is gone, 601 still there (the oldest remembered). */
    cms_esp_send(&cms[0], cms[0].out, "MDCX 601 cms@ca.test MGCP 1.0\r\n");
    pump();
    CHECK_INT_EQ(replies_made, 3 + CK_ENDPOINT_REPLY_CACHE - 2);
    CHECK(strcmp(cms[0].last_response, "200 601 OK\r\n") == 0);
    cms_esp_send(&cms[0], cms[0].out, "CRCX 600 cms@ca.test MGCP 1.0\r\nC: 0123abcd\r\n");
    pump();
    CHECK_INT_EQ(replies_made, 2 + CK_ENDPOINT_REPLY_CACHE);
    CHECK(strcmp(cms[0].last_response, first) != 0);
    ck_endpoint_get_stats(ep, &st);
    CHECK_INT_EQ(st.commands_repeated, 3);
    CHECK_INT_EQ(st.commands_received, 2 + CK_ENDPOINT_REPLY_CACHE);
    teardown();
    setup_hook = NULL;

    /* An endpoint name with a blank would break the first line: refused. */
    {
        struct ck_endpoint_cms list[1];
        struct ck_endpoint_params p;
        ck_endpoint *bad = NULL;
        ck_creds *c = make_creds();

        memset(list, 0, sizeof(list));
        set_addr(&list[0].kmm, 1293);
        list[0].kmm_len = sizeof(struct sockaddr_in);
        memset(&p, 0, sizeof(p));
        p.creds = c;
        p.cms = list;
        p.n_cms = 1;
        bad_name_hook(&p);
        CHECK(ck_endpoint_new(&p, &bad) == CK_ERR_INVAL);
        CHECK(bad == NULL);
        ck_creds_free(c);
        ck_key_clear(&service_key);
    }
}

CK_TEST_MAIN("endpoint", CK_TEST_CASE(test_backoff_values), CK_TEST_CASE(test_backoff_failover),
             CK_TEST_CASE(test_establish_and_signal), CK_TEST_CASE(test_rekey_timer),
             CK_TEST_CASE(test_wakeup), CK_TEST_CASE(test_rekey_message),
             CK_TEST_CASE(test_ap_rep_refused), CK_TEST_CASE(test_lost_sa),
             CK_TEST_CASE(test_rekey_failover), CK_TEST_CASE(test_error_reply),
             CK_TEST_CASE(test_ack_required), CK_TEST_CASE(test_suites),
             CK_TEST_CASE(test_signal_parse), CK_TEST_CASE(test_ccache_and_krb5conf),
             CK_TEST_CASE(test_call_api))
