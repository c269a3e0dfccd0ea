/* MTA-FQDN and the device channel (prov_wire.h): payload codecs with every limit, the datagram
 * split, a full request/reply through ck_mtafqdn_serve, the AP failures (wrong key, replay,
 * another client than the KDC, skew), KRB-ERROR replies; the device channel's codecs and an
 * in-process exchange through ck_provdev_serve, DROP included. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ck_test.h"
#include "store_fixture.h"

#include <poll.h>
#include <pthread.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "cablekey/ap.h"
#include "cablekey/apenv.h"
#include "cablekey/client.h"
#include "cablekey/error.h"
#include "cablekey/keytab.h"
#include "cablekey/krb5_asn1.h"
#include "cablekey/principal.h"
#include "cablekey/prov_wire.h"
#include "cablekey/util.h"
#include "kdc.h"
#include "mta_fqdn.h"
#include "wiresrv.h"

#define REALM "TEST.REALM"
#define FQDN_SVC "mtafqdn/prov.test@" REALM
#define PROV_SVC "prov/prov.test@" REALM
#define KDC_CLIENT "krbtgt/" REALM "@" REALM
#define DEVICE "mta-001122334455@" REALM

static const uint8_t MAC[6] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55};

/* ---- payload codec ----------------------------------------------------------------------- */

static void
fill_req(ck_mtafqdn_msg *m)
{
    memset(m, 0, sizeof(*m));
    m->type = CK_MTAFQDN_REQUEST;
    m->enterprise = CK_MTAFQDN_ENTERPRISE;
    m->version = CK_MTAFQDN_VERSION;
    memcpy(m->mac, MAC, 6);
    for (int i = 0; i < 20; i++)
        m->spki_sha1[i] = (uint8_t)(0xa0 + i);
    m->mfg_revoked = 0;
}

static void
test_payload_request(void)
{
    ck_mtafqdn_msg m, d;
    uint8_t *der = NULL;
    size_t len = 0;
    /* The layout of PROTOCOL-NOTES §3.5 byte by byte. */
    static const uint8_t want_head[] = {1, 0, 0, 0x11, 0x8b, 1, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55};

    fill_req(&m);
    m.mfg_revoked = 0x01020304;
    CHECK_OK(ck_mtafqdn_payload_encode(&m, &der, &len));
    CHECK_INT_EQ(len, 36);
    CHECK(memcmp(der, want_head, sizeof(want_head)) == 0);
    CHECK(der[12] == 0xa0 && der[31] == 0xb3);
    CHECK(der[32] == 1 && der[35] == 4);
    CHECK_OK(ck_mtafqdn_payload_decode(der, len, &d));
    CHECK(memcmp(&m, &d, sizeof(m)) == 0);
    /* One byte short, one trailing byte. */
    CHECK(ck_mtafqdn_payload_decode(der, len - 1, &d) == CK_ERR_DECODE);
    {
        uint8_t longer[37];
        memcpy(longer, der, 36);
        longer[36] = 0;
        CHECK(ck_mtafqdn_payload_decode(longer, 37, &d) == CK_ERR_DECODE);
    }
    /* Wrong enterprise, wrong version, unknown type. */
    der[4] = 0x8c;
    CHECK(ck_mtafqdn_payload_decode(der, len, &d) == CK_ERR_UNSUPPORTED);
    der[4] = 0x8b;
    der[5] = 2;
    CHECK(ck_mtafqdn_payload_decode(der, len, &d) == CK_ERR_UNSUPPORTED);
    der[5] = 1;
    der[0] = 4;
    CHECK(ck_mtafqdn_payload_decode(der, len, &d) == CK_ERR_DECODE);
    der[0] = 0;
    CHECK(ck_mtafqdn_payload_decode(der, len, &d) == CK_ERR_DECODE);
    CHECK(ck_mtafqdn_payload_decode(der, 5, &d) == CK_ERR_DECODE);
    CHECK(ck_mtafqdn_payload_decode(NULL, 0, &d) == CK_ERR_DECODE);
    free(der);
}

static void
test_payload_reply(void)
{
    ck_mtafqdn_msg m, d;
    uint8_t *der = NULL;
    size_t len = 0;
    char longest[CK_MTAFQDN_FQDN_MAX + 2];

    memset(&m, 0, sizeof(m));
    m.type = CK_MTAFQDN_REPLY;
    m.enterprise = CK_MTAFQDN_ENTERPRISE;
    m.version = CK_MTAFQDN_VERSION;
    ck_strlcpy(m.fqdn, "mta-001122334455.mta.example.net", sizeof(m.fqdn));
    m.ipv4[0] = 10;
    m.ipv4[3] = 7;
    CHECK_OK(ck_mtafqdn_payload_encode(&m, &der, &len));
    CHECK_INT_EQ(len, 6 + strlen(m.fqdn) + 4);
    CHECK(memcmp(der + 6, m.fqdn, strlen(m.fqdn)) == 0);
    CHECK(der[len - 4] == 10 && der[len - 1] == 7);
    CHECK_OK(ck_mtafqdn_payload_decode(der, len, &d));
    CHECK(memcmp(&m, &d, sizeof(m)) == 0);
    /* No FQDN at all (only the address). */
    CHECK(ck_mtafqdn_payload_decode(der, 10, &d) == CK_ERR_DECODE);
    /* A NUL or a space inside the FQDN. */
    der[8] = 0;
    CHECK(ck_mtafqdn_payload_decode(der, len, &d) == CK_ERR_DECODE);
    der[8] = ' ';
    CHECK(ck_mtafqdn_payload_decode(der, len, &d) == CK_ERR_DECODE);
    free(der);

    /* 253 bytes is the longest name, 254 is refused both ways. */
    memset(longest, 'a', sizeof(longest));
    for (size_t i = 60; i < CK_MTAFQDN_FQDN_MAX; i += 61)
        longest[i] = '.';
    longest[CK_MTAFQDN_FQDN_MAX] = '\0';
    CHECK(ck_mtafqdn_fqdn_ok(longest));
    ck_strlcpy(m.fqdn, longest, sizeof(m.fqdn));
    CHECK_OK(ck_mtafqdn_payload_encode(&m, &der, &len));
    CHECK_INT_EQ(len, 6 + 253 + 4);
    CHECK_OK(ck_mtafqdn_payload_decode(der, len, &d));
    CHECK_INT_EQ(strlen(d.fqdn), 253);
    {
        uint8_t *big = malloc(len + 1);
        memcpy(big, der, 6);
        big[6] = 'b';
        memcpy(big + 7, der + 6, len - 6);
        CHECK(ck_mtafqdn_payload_decode(big, len + 1, &d) == CK_ERR_DECODE);
        free(big);
    }
    free(der);
    longest[CK_MTAFQDN_FQDN_MAX] = 'a';
    longest[CK_MTAFQDN_FQDN_MAX + 1] = '\0';
    CHECK(!ck_mtafqdn_fqdn_ok(longest));
    /* Empty labels, a 64-byte label, a bad character. */
    CHECK(!ck_mtafqdn_fqdn_ok(""));
    CHECK(!ck_mtafqdn_fqdn_ok("a..b"));
    CHECK(!ck_mtafqdn_fqdn_ok(".a"));
    CHECK(!ck_mtafqdn_fqdn_ok("a."));
    CHECK(!ck_mtafqdn_fqdn_ok("a_b.c"));
    memset(longest, 'x', 64);
    longest[64] = '\0';
    CHECK(!ck_mtafqdn_fqdn_ok(longest));
    longest[63] = '\0';
    CHECK(ck_mtafqdn_fqdn_ok(longest));
    ck_strlcpy(m.fqdn, "bad name", sizeof(m.fqdn));
    CHECK(ck_mtafqdn_payload_encode(&m, &der, &len) == CK_ERR_INVAL);
}

static void
test_payload_error(void)
{
    ck_mtafqdn_msg m, d;
    uint8_t *der = NULL;
    size_t len = 0;

    memset(&m, 0, sizeof(m));
    m.type = CK_MTAFQDN_ERROR;
    m.enterprise = CK_MTAFQDN_ENTERPRISE;
    m.version = CK_MTAFQDN_VERSION;
    m.error = CK_MTAFQDN_ERR_UNKNOWN_DEVICE;
    ck_strlcpy(m.text, "unknown device", sizeof(m.text));
    CHECK_OK(ck_mtafqdn_payload_encode(&m, &der, &len));
    CHECK_INT_EQ(len, 10 + 14);
    CHECK_OK(ck_mtafqdn_payload_decode(der, len, &d));
    CHECK(memcmp(&m, &d, sizeof(m)) == 0);
    CHECK(ck_mtafqdn_payload_decode(der, 9, &d) == CK_ERR_DECODE);
    der[12] = 0x07;
    CHECK(ck_mtafqdn_payload_decode(der, len, &d) == CK_ERR_DECODE);
    free(der);
    /* Empty text; the longest text. */
    m.text[0] = '\0';
    CHECK_OK(ck_mtafqdn_payload_encode(&m, &der, &len));
    CHECK_INT_EQ(len, 10);
    CHECK_OK(ck_mtafqdn_payload_decode(der, len, &d));
    free(der);
    memset(m.text, 'e', CK_MTAFQDN_TEXT_MAX);
    m.text[CK_MTAFQDN_TEXT_MAX] = '\0';
    CHECK_OK(ck_mtafqdn_payload_encode(&m, &der, &len));
    CHECK_INT_EQ(len, 10 + CK_MTAFQDN_TEXT_MAX);
    CHECK_OK(ck_mtafqdn_payload_decode(der, len, &d));
    {
        uint8_t *big = malloc(len + 1);
        memcpy(big, der, len);
        big[len] = 'e';
        CHECK(ck_mtafqdn_payload_decode(big, len + 1, &d) == CK_ERR_DECODE);
        free(big);
    }
    free(der);
    m.text[0] = '\n';
    CHECK(ck_mtafqdn_payload_encode(&m, &der, &len) == CK_ERR_INVAL);
    m.type = 9;
    CHECK(ck_mtafqdn_payload_encode(&m, &der, &len) == CK_ERR_INVAL);
}

/* ---- the exchange ------------------------------------------------------------------------ */

struct world {
    ck_keytab *kt;
    ck_key service_key;
    ck_rcache *rc;
    CK_TICKET *ticket;
    ck_key session_key;
    int64_t now;
    int lookups;
    bool lookup_fails;
};

#define FIXED_NOW INT64_C(1500000000) /* 2017-07-14: not today, whatever today is */

static void
world_up_at(struct world *w, const char *service, const char *client, int64_t now)
{
    ck_principal *p = NULL;

    memset(w, 0, sizeof(*w));
    w->now = now;
    CHECK_OK(ck_random_key(CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, &w->service_key));
    CHECK_OK(ck_keytab_new(&w->kt));
    CHECK_OK(ck_principal_parse(service, NULL, 0, &p));
    CHECK_OK(ck_keytab_add(w->kt, p, 3, 0, &w->service_key));
    ck_principal_free(p);
    CHECK_OK(ck_rcache_new(0, 600, &w->rc));
    CHECK_OK(ck_mtafqdn_ticket_mint(service, &w->service_key, 3, client, w->now, 300,
                                    &w->ticket, &w->session_key));
}

/* MTA-FQDN worlds run at a fixed time years from the calendar: every exchange passes only if no
 * part of the request, the server or the reply reads the system clock instead of the time
 * given. (The device channel's client is a device: it reads its own clock, world_up_at.) */
static void
world_up(struct world *w, const char *service, const char *client)
{
    world_up_at(w, service, client, FIXED_NOW);
}

static void
world_down(struct world *w)
{
    ck_keytab_free(w->kt);
    ck_key_clear(&w->service_key);
    ck_key_clear(&w->session_key);
    ck_rcache_free(w->rc);
    CK_TICKET_free(w->ticket);
}

static int
lookup(void *arg, const ck_mtafqdn_msg *req, ck_mtafqdn_msg *rep)
{
    struct world *w = arg;

    w->lookups++;
    if (w->lookup_fails)
        return CK_ERR_DB;
    if (memcmp(req->mac, MAC, 6) != 0) {
        rep->type = CK_MTAFQDN_ERROR;
        rep->error = CK_MTAFQDN_ERR_UNKNOWN_DEVICE;
        ck_strlcpy(rep->text, "unknown device", sizeof(rep->text));
        return 0;
    }
    rep->type = CK_MTAFQDN_REPLY;
    ck_strlcpy(rep->fqdn, "mta-001122334455.mta.example.net", sizeof(rep->fqdn));
    rep->ipv4[0] = 192;
    rep->ipv4[1] = 0;
    rep->ipv4[2] = 2;
    rep->ipv4[3] = 9;
    return 0;
}

static int
serve(struct world *w, const uint8_t *req, size_t len, uint8_t **rep, size_t *rep_len)
{
    return ck_mtafqdn_serve(req, len, ck_ap_keytab_key_fn, w->kt, FQDN_SVC, w->rc, 300, w->now,
                            lookup, w, rep, rep_len);
}

static void
test_exchange(void)
{
    struct world w;
    ck_mtafqdn_client st;
    ck_mtafqdn_msg req, rep;
    uint8_t *dg = NULL, *ans = NULL;
    size_t dg_len = 0, ans_len = 0, first = 0;

    world_up(&w, FQDN_SVC, KDC_CLIENT);
    fill_req(&req);
    CHECK_OK(ck_mtafqdn_request_build(w.ticket, &w.session_key, REALM, "krbtgt/" REALM, &req,
                                      w.now, &st, &dg, &dg_len));
    CHECK_OK(ck_mtafqdn_split(dg, dg_len, &first));
    CHECK(dg[0] == 0x6e && dg[first] == 0x74);
    CHECK_OK(serve(&w, dg, dg_len, &ans, &ans_len));
    CHECK_INT_EQ(w.lookups, 1);
    CHECK_OK(ck_mtafqdn_split(ans, ans_len, &first));
    CHECK(ans[0] == 0x6f && ans[first] == 0x74);
    CHECK_OK(ck_mtafqdn_reply_read(ans, ans_len, &st, 300, w.now, &rep));
    CHECK_INT_EQ(rep.type, CK_MTAFQDN_REPLY);
    CHECK(strcmp(rep.fqdn, "mta-001122334455.mta.example.net") == 0);
    CHECK(rep.ipv4[0] == 192 && rep.ipv4[3] == 9);

    /* A modified reply (a byte of the FQDN in the KRB-SAFE user data) does not verify. */
    {
        uint8_t *bad = malloc(ans_len);
        uint8_t *hit;
        memcpy(bad, ans, ans_len);
        hit = memmem(bad, ans_len, "mta-0011", 8);
        CHECK(hit != NULL);
        if (hit != NULL)
            hit[0] = 'n';
        CHECK(ck_mtafqdn_reply_read(bad, ans_len, &st, 300, w.now, &rep) == CK_ERR_INTEGRITY);
        free(bad);
    }
    /* A reply read with another request's state does not verify. */
    {
        ck_mtafqdn_client other;
        uint8_t *dg2 = NULL;
        size_t dg2_len = 0;
        CHECK_OK(ck_mtafqdn_request_build(w.ticket, &w.session_key, REALM, "krbtgt/" REALM,
                                          &req, w.now, &other, &dg2, &dg2_len));
        CHECK(ck_mtafqdn_reply_read(ans, ans_len, &other, 300, w.now, &rep) ==
              CK_ERR_INTEGRITY);
        /* The request itself, reflected back, is not a reply. */
        CHECK(ck_mtafqdn_reply_read(dg2, dg2_len, &other, 300, w.now, &rep) == CK_ERR_PROTO);
        ck_mtafqdn_client_clear(&other);
        free(dg2);
    }
    free(ans);
    ans = NULL;

    /* The same datagram again: the replay cache refuses it with KRB-ERROR 34. */
    CHECK_OK(serve(&w, dg, dg_len, &ans, &ans_len));
    CHECK_INT_EQ(w.lookups, 1);
    CHECK(ans_len > 0 && ans[0] == 0x7e);
    CHECK(ck_mtafqdn_reply_read(ans, ans_len, &st, 300, w.now, &rep) == CK_ERR_KRB);
    CHECK_INT_EQ(ck_error_krb_code(), CK_KRB_AP_ERR_REPEAT);
    free(ans);
    ans = NULL;
    free(dg);
    dg = NULL;
    ck_mtafqdn_client_clear(&st);

    /* An unknown MAC: an authenticated Error Reply. */
    req.mac[5] = 0x56;
    CHECK_OK(ck_mtafqdn_request_build(w.ticket, &w.session_key, REALM, "krbtgt/" REALM, &req,
                                      w.now, &st, &dg, &dg_len));
    CHECK_OK(serve(&w, dg, dg_len, &ans, &ans_len));
    CHECK_OK(ck_mtafqdn_reply_read(ans, ans_len, &st, 300, w.now, &rep));
    CHECK_INT_EQ(rep.type, CK_MTAFQDN_ERROR);
    CHECK_INT_EQ(rep.error, CK_MTAFQDN_ERR_UNKNOWN_DEVICE);
    CHECK(strcmp(rep.text, "unknown device") == 0);
    free(ans);
    free(dg);
    ck_mtafqdn_client_clear(&st);

    /* The lookup fails: INTERNAL. */
    w.lookup_fails = true;
    CHECK_OK(ck_mtafqdn_request_build(w.ticket, &w.session_key, REALM, "krbtgt/" REALM, &req,
                                      w.now, &st, &dg, &dg_len));
    CHECK_OK(serve(&w, dg, dg_len, &ans, &ans_len));
    CHECK_OK(ck_mtafqdn_reply_read(ans, ans_len, &st, 300, w.now, &rep));
    CHECK_INT_EQ(rep.type, CK_MTAFQDN_ERROR);
    CHECK_INT_EQ(rep.error, CK_MTAFQDN_ERR_INTERNAL);
    free(ans);
    free(dg);
    ck_mtafqdn_client_clear(&st);
    world_down(&w);
}

/* A request whose KRB-SAFE payload is no MTA-FQDN request gets a MALFORMED Error Reply. */
static void
test_malformed_payload(void)
{
    struct world w;
    ck_mtafqdn_client st;
    ck_mtafqdn_msg req, rep;
    uint8_t *dg = NULL, *ans = NULL;
    size_t dg_len = 0, ans_len = 0;

    world_up(&w, FQDN_SVC, KDC_CLIENT);
    fill_req(&req);
    req.enterprise = 9; /* the builder keeps a non-zero enterprise: the server refuses it */
    CHECK_OK(ck_mtafqdn_request_build(w.ticket, &w.session_key, REALM, "krbtgt/" REALM, &req,
                                      w.now, &st, &dg, &dg_len));
    CHECK_OK(serve(&w, dg, dg_len, &ans, &ans_len));
    CHECK_INT_EQ(w.lookups, 0);
    CHECK_OK(ck_mtafqdn_reply_read(ans, ans_len, &st, 300, w.now, &rep));
    CHECK_INT_EQ(rep.type, CK_MTAFQDN_ERROR);
    CHECK_INT_EQ(rep.error, CK_MTAFQDN_ERR_MALFORMED);
    free(ans);
    free(dg);
    ck_mtafqdn_client_clear(&st);
    world_down(&w);
}

static void
test_ap_failures(void)
{
    struct world w, other;
    ck_mtafqdn_client st;
    ck_mtafqdn_msg req, rep;
    uint8_t *dg = NULL, *ans = NULL;
    size_t dg_len = 0, ans_len = 0;

    fill_req(&req);
    /* A ticket sealed under another key: KRB-ERROR BAD_INTEGRITY, no lookup. */
    world_up(&w, FQDN_SVC, KDC_CLIENT);
    world_up(&other, FQDN_SVC, KDC_CLIENT);
    CHECK_OK(ck_mtafqdn_request_build(other.ticket, &other.session_key, REALM, "krbtgt/" REALM,
                                      &req, w.now, &st, &dg, &dg_len));
    CHECK_OK(serve(&w, dg, dg_len, &ans, &ans_len));
    CHECK_INT_EQ(w.lookups, 0);
    CHECK(ck_mtafqdn_reply_read(ans, ans_len, &st, 300, w.now, &rep) == CK_ERR_KRB);
    CHECK_INT_EQ(ck_error_krb_code(), CK_KRB_AP_ERR_BAD_INTEGRITY);
    free(ans);
    free(dg);
    ck_mtafqdn_client_clear(&st);
    world_down(&other);
    world_down(&w);

    /* A ticket for another client than the realm's krbtgt: POLICY. */
    world_up(&w, FQDN_SVC, "alice/x@" REALM);
    CHECK_OK(ck_mtafqdn_request_build(w.ticket, &w.session_key, REALM, "alice/x", &req, w.now,
                                      &st, &dg, &dg_len));
    CHECK_OK(serve(&w, dg, dg_len, &ans, &ans_len));
    CHECK_INT_EQ(w.lookups, 0);
    CHECK(ck_mtafqdn_reply_read(ans, ans_len, &st, 300, w.now, &rep) == CK_ERR_KRB);
    CHECK_INT_EQ(ck_error_krb_code(), CK_KDC_ERR_POLICY);
    free(ans);
    free(dg);
    ck_mtafqdn_client_clear(&st);
    world_down(&w);

    /* A ticket for another service: NOT_US. */
    world_up(&w, "mtafqdn/other.test@" REALM, KDC_CLIENT);
    CHECK_OK(ck_mtafqdn_request_build(w.ticket, &w.session_key, REALM, "krbtgt/" REALM, &req,
                                      w.now, &st, &dg, &dg_len));
    CHECK_OK(serve(&w, dg, dg_len, &ans, &ans_len));
    CHECK(ck_mtafqdn_reply_read(ans, ans_len, &st, 300, w.now, &rep) == CK_ERR_KRB);
    CHECK_INT_EQ(ck_error_krb_code(), CK_KRB_AP_ERR_NOT_US);
    free(ans);
    free(dg);
    ck_mtafqdn_client_clear(&st);

    /* The server's clock an hour ahead: SKEW. */
    CHECK_OK(ck_mtafqdn_request_build(w.ticket, &w.session_key, REALM, "krbtgt/" REALM, &req,
                                      w.now, &st, &dg, &dg_len));
    CHECK_OK(ck_mtafqdn_serve(dg, dg_len, ck_ap_keytab_key_fn, w.kt, NULL, w.rc, 300,
                              w.now + 3600, lookup, &w, &ans, &ans_len));
    CHECK(ck_mtafqdn_reply_read(ans, ans_len, &st, 300, w.now, &rep) == CK_ERR_KRB);
    CHECK(ck_error_krb_code() == CK_KRB_AP_ERR_SKEW ||
          ck_error_krb_code() == CK_KRB_AP_ERR_TKT_EXPIRED);
    free(ans);
    free(dg);
    ck_mtafqdn_client_clear(&st);
    world_down(&w);
}

/* The authenticator's time is the one the client side was given: at a fixed injected server
 * time, a request built 400 s earlier (skew 300) is refused with KRB_AP_ERR_SKEW before any
 * lookup, one built 250 s later is answered, and its authenticator carries exactly that time. */
static void
test_authenticator_injected_clock(void)
{
    struct world w;
    ck_mtafqdn_client st;
    ck_mtafqdn_msg req, rep;
    uint8_t *dg = NULL, *ans = NULL;
    size_t dg_len = 0, ans_len = 0;

    world_up(&w, FQDN_SVC, KDC_CLIENT);
    fill_req(&req);
    CHECK_OK(ck_mtafqdn_request_build(w.ticket, &w.session_key, REALM, "krbtgt/" REALM, &req,
                                      FIXED_NOW - 400, &st, &dg, &dg_len));
    CHECK(st.ctime == FIXED_NOW - 400);
    CHECK_OK(serve(&w, dg, dg_len, &ans, &ans_len));
    CHECK_INT_EQ(w.lookups, 0);
    CHECK(ans_len > 0 && ans[0] == 0x7e);
    CHECK(ck_mtafqdn_reply_read(ans, ans_len, &st, 300, FIXED_NOW, &rep) == CK_ERR_KRB);
    CHECK_INT_EQ(ck_error_krb_code(), CK_KRB_AP_ERR_SKEW);
    free(ans);
    ans = NULL;
    free(dg);
    dg = NULL;
    ck_mtafqdn_client_clear(&st);

    CHECK_OK(ck_mtafqdn_request_build(w.ticket, &w.session_key, REALM, "krbtgt/" REALM, &req,
                                      FIXED_NOW + 250, &st, &dg, &dg_len));
    CHECK(st.ctime == FIXED_NOW + 250);
    CHECK_OK(serve(&w, dg, dg_len, &ans, &ans_len));
    CHECK_INT_EQ(w.lookups, 1);
    CHECK_OK(ck_mtafqdn_reply_read(ans, ans_len, &st, 300, FIXED_NOW + 250, &rep));
    CHECK_INT_EQ(rep.type, CK_MTAFQDN_REPLY);
    free(ans);
    free(dg);
    ck_mtafqdn_client_clear(&st);
    world_down(&w);
}

/* Garbage gets no answer; a KRB-SAFE that does not verify gets a KRB-ERROR. */
static void
test_split_and_garbage(void)
{
    struct world w;
    ck_mtafqdn_client st;
    ck_mtafqdn_msg req, rep;
    uint8_t *dg = NULL, *ans = NULL, *tmp;
    size_t dg_len = 0, ans_len = 0, first = 0;
    static const uint8_t noise[] = {0x41, 0x41, 0x41, 0x41};
    static const uint8_t krberr_trailing[] = {0x7e, 0x00, 0x00};

    CHECK(ck_mtafqdn_split(noise, sizeof(noise), &first) == CK_ERR_DECODE);
    CHECK(ck_mtafqdn_split(krberr_trailing, sizeof(krberr_trailing), &first) == CK_ERR_DECODE);
    CHECK(ck_mtafqdn_split(noise, 0, &first) == CK_ERR_DECODE);
    world_up(&w, FQDN_SVC, KDC_CLIENT);
    fill_req(&req);
    CHECK_OK(ck_mtafqdn_request_build(w.ticket, &w.session_key, REALM, "krbtgt/" REALM, &req,
                                      w.now, &st, &dg, &dg_len));
    CHECK(serve(&w, noise, sizeof(noise), &ans, &ans_len) < 0 && ans == NULL);
    /* A trailing byte, a truncated datagram, the AP-REQ alone. */
    tmp = malloc(dg_len + 1);
    memcpy(tmp, dg, dg_len);
    tmp[dg_len] = 0;
    CHECK(ck_mtafqdn_split(tmp, dg_len + 1, &first) == CK_ERR_DECODE);
    CHECK(serve(&w, tmp, dg_len + 1, &ans, &ans_len) < 0 && ans == NULL);
    CHECK(serve(&w, tmp, dg_len - 1, &ans, &ans_len) < 0 && ans == NULL);
    CHECK_OK(ck_mtafqdn_split(dg, dg_len, &first));
    CHECK(serve(&w, tmp, first, &ans, &ans_len) < 0 && ans == NULL);
    /* An oversized datagram. */
    CHECK(ck_mtafqdn_split(tmp, CK_MTAFQDN_MAX_DGRAM + 1, &first) == CK_ERR_DECODE);
    /* The last byte of the KRB-SAFE's checksum flipped: KRB-ERROR MODIFIED. */
    memcpy(tmp, dg, dg_len);
    tmp[dg_len - 1] ^= 1;
    CHECK_OK(serve(&w, tmp, dg_len, &ans, &ans_len));
    CHECK(ans[0] == 0x7e);
    CHECK(ck_mtafqdn_reply_read(ans, ans_len, &st, 300, w.now, &rep) == CK_ERR_KRB);
    CHECK(ck_error_krb_code() == CK_KRB_AP_ERR_MODIFIED ||
          ck_error_krb_code() == CK_KRB_AP_ERR_BAD_INTEGRITY);
    free(ans);
    free(tmp);
    free(dg);
    ck_mtafqdn_client_clear(&st);
    world_down(&w);
}

/* ---- the device channel ------------------------------------------------------------------ */

static const uint8_t CERT1[] = {0x30, 0x03, 0x02, 0x01, 0x05};
static const uint8_t CERT2[] = {0x30, 0x06, 0x02, 0x01, 0x06, 0x02, 0x01, 0x07};

static void
test_provdev_codec(void)
{
    ck_provdev_req req, d;
    ck_provdev_rep rep, r;
    uint8_t *der = NULL;
    size_t len = 0;

    memset(&req, 0, sizeof(req));
    req.type = CK_PROVDEV_CHECK;
    req.cert_id = 0x0102030405060708LL;
    memset(req.sha256, 0x5a, 32);
    CHECK_OK(ck_provdev_req_encode(&req, &der, &len));
    CHECK_INT_EQ(len, 41);
    CHECK(der[0] == 3 && der[1] == 1 && der[8] == 8 && der[9] == 0x5a);
    CHECK_OK(ck_provdev_req_decode(der, len, &d));
    CHECK(memcmp(&req, &d, sizeof(req)) == 0);
    CHECK(ck_provdev_req_decode(der, len - 1, &d) == CK_ERR_DECODE);
    {
        uint8_t longer[42];
        memcpy(longer, der, 41);
        longer[41] = 0;
        CHECK(ck_provdev_req_decode(longer, 42, &d) == CK_ERR_DECODE);
    }
    der[0] = 4;
    CHECK(ck_provdev_req_decode(der, len, &d) == CK_ERR_DECODE);
    der[0] = 2;
    der[1] = 0x80;
    CHECK(ck_provdev_req_decode(der, len, &d) == CK_ERR_DECODE);
    free(der);
    req.type = 0;
    CHECK(ck_provdev_req_encode(&req, &der, &len) == CK_ERR_INVAL);

    memset(&rep, 0, sizeof(rep));
    rep.result = CK_PROVDEV_OK;
    ck_strlcpy(rep.text, "here it is", sizeof(rep.text));
    rep.cert_id = 42;
    rep.n_certs = 2;
    rep.certs[0] = (uint8_t *)CERT1;
    rep.cert_lens[0] = sizeof(CERT1);
    rep.certs[1] = (uint8_t *)CERT2;
    rep.cert_lens[1] = sizeof(CERT2);
    CHECK_OK(ck_provdev_rep_encode(&rep, &der, &len));
    CHECK_INT_EQ(len, 2 + 2 + 10 + 1 + 8 + 1 + 2 + 5 + 2 + 8);
    CHECK_OK(ck_provdev_rep_decode(der, len, &r));
    CHECK_INT_EQ(r.result, 0);
    CHECK(strcmp(r.text, "here it is") == 0);
    CHECK_INT_EQ(r.cert_id, 42);
    CHECK_INT_EQ(r.n_certs, 2);
    CHECK_MEM_EQ(r.certs[1], r.cert_lens[1], CERT2, sizeof(CERT2));
    ck_provdev_rep_clear(&r);
    /* Trailing byte, truncation at every length. */
    {
        uint8_t *longer = malloc(len + 1);
        memcpy(longer, der, len);
        longer[len] = 0;
        CHECK(ck_provdev_rep_decode(longer, len + 1, &r) == CK_ERR_DECODE);
        free(longer);
    }
    for (size_t i = 0; i < len; i++)
        CHECK(ck_provdev_rep_decode(der, i, &r) == CK_ERR_DECODE);
    /* Instruction 2, 5 certificates, a certificate that is no single SEQUENCE. */
    der[2 + 2 + 10] = 2;
    CHECK(ck_provdev_rep_decode(der, len, &r) == CK_ERR_DECODE);
    der[2 + 2 + 10] = 0;
    der[2 + 2 + 10 + 1 + 8] = 5;
    CHECK(ck_provdev_rep_decode(der, len, &r) == CK_ERR_DECODE);
    der[2 + 2 + 10 + 1 + 8] = 2;
    der[2 + 2 + 10 + 1 + 8 + 1 + 2] = 0x31;
    CHECK(ck_provdev_rep_decode(der, len, &r) == CK_ERR_DECODE);
    free(der);
    rep.n_certs = CK_PROVDEV_MAX_CERTS + 1;
    CHECK(ck_provdev_rep_encode(&rep, &der, &len) == CK_ERR_LIMIT);
    rep.n_certs = 1;
    rep.cert_lens[0] = 4;
    CHECK(ck_provdev_rep_encode(&rep, &der, &len) == CK_ERR_LIMIT);
    /* Text over the limit in the wire form. */
    {
        uint8_t big[2 + 2 + CK_PROVDEV_TEXT_MAX + 1 + 1 + 8 + 1];
        memset(big, 'a', sizeof(big));
        big[0] = 0;
        big[1] = 0;
        big[2] = (CK_PROVDEV_TEXT_MAX + 1) >> 8;
        big[3] = (CK_PROVDEV_TEXT_MAX + 1) & 0xff;
        CHECK(ck_provdev_rep_decode(big, sizeof(big), &r) == CK_ERR_DECODE);
    }
    CHECK(strcmp(ck_provdev_result_name(CK_PROVDEV_NO_CERT), "no certificate issued") == 0);

    /* The largest certificates: 3 of 8192 bytes fit one KRB-PRIV, 4 do not (32768 bytes). */
    {
        uint8_t *big = calloc(1, CK_PROVDEV_CERT_MAX);
        big[0] = 0x30;
        big[1] = 0x82;
        big[2] = (CK_PROVDEV_CERT_MAX - 4) >> 8;
        big[3] = (CK_PROVDEV_CERT_MAX - 4) & 0xff;
        memset(&rep, 0, sizeof(rep));
        for (int i = 0; i < CK_PROVDEV_MAX_CERTS; i++) {
            rep.certs[i] = big;
            rep.cert_lens[i] = CK_PROVDEV_CERT_MAX;
        }
        rep.n_certs = 3;
        CHECK_OK(ck_provdev_rep_encode(&rep, &der, &len));
        CHECK_OK(ck_provdev_rep_decode(der, len, &r));
        CHECK_INT_EQ(r.n_certs, 3);
        CHECK_MEM_EQ(r.certs[2], r.cert_lens[2], big, CK_PROVDEV_CERT_MAX);
        ck_provdev_rep_clear(&r);
        free(der);
        rep.n_certs = 4;
        CHECK(ck_provdev_rep_encode(&rep, &der, &len) == CK_ERR_LIMIT);
        rep.cert_lens[0] = CK_PROVDEV_CERT_MAX + 1;
        rep.n_certs = 1;
        CHECK(ck_provdev_rep_encode(&rep, &der, &len) == CK_ERR_LIMIT);
        free(big);
        big = calloc(1, 32769);
        CHECK(ck_provdev_rep_decode(big, 32769, &r) == CK_ERR_DECODE);
        free(big);
    }
}

struct dev_world {
    struct world w;
    int64_t server_now;
    int calls;
    char client[256];
    ck_provdev_req last;
};

static int
handle(void *arg, const char *client, const ck_provdev_req *req, ck_provdev_rep *rep)
{
    struct dev_world *d = arg;

    d->calls++;
    ck_strlcpy(d->client, client, sizeof(d->client));
    d->last = *req;
    switch (req->type) {
    case CK_PROVDEV_FETCH:
        rep->cert_id = 7;
        rep->n_certs = 1;
        if ((rep->certs[0] = malloc(sizeof(CERT1))) == NULL)
            return CK_ERR_NOMEM;
        memcpy(rep->certs[0], CERT1, sizeof(CERT1));
        rep->cert_lens[0] = sizeof(CERT1);
        return 0;
    case CK_PROVDEV_ACK:
        rep->result = req->cert_id == 7 ? CK_PROVDEV_OK : CK_PROVDEV_NOTFOUND;
        return 0;
    default:
        rep->instruction = req->sha256[0] == 0xdd ? CK_PROVDEV_DROP : CK_PROVDEV_KEEP;
        return 0;
    }
}

static int
send_dev(void *arg, const uint8_t *req, size_t req_len, uint8_t **reply, size_t *reply_len)
{
    struct dev_world *d = arg;
    int rc = ck_provdev_serve(req, req_len, ck_ap_keytab_key_fn, d->w.kt, PROV_SVC, d->w.rc,
                              300, d->server_now, handle, d, reply, reply_len);

    return rc != 0 ? CK_ERR_TIMEOUT : 0;
}

static void
dev_creds(struct dev_world *d, ck_creds *c)
{
    uint8_t *der = NULL;
    size_t len = 0;

    memset(c, 0, sizeof(*c));
    CHECK_OK(ck_principal_parse(DEVICE, NULL, 0, &c->client));
    CHECK_OK(ck_key_copy(&c->session_key, &d->w.session_key));
    CHECK_OK(ck_asn1_ticket_encode(d->w.ticket, &der, &len));
    c->ticket = malloc(len);
    memcpy(c->ticket, der, len);
    c->ticket_len = len;
    ck_asn1_free_der(der, len);
}

static void
test_provdev_exchange(void)
{
    struct dev_world d;
    ck_kdc_transport t;
    ck_creds c;
    ck_provdev_req req;
    ck_provdev_rep rep;

    memset(&d, 0, sizeof(d));
    world_up_at(&d.w, PROV_SVC, DEVICE, time(NULL));
    d.server_now = d.w.now;
    dev_creds(&d, &c);
    memset(&t, 0, sizeof(t));
    t.send_fn = send_dev;
    t.send_arg = &d;

    memset(&req, 0, sizeof(req));
    req.type = CK_PROVDEV_FETCH;
    CHECK_OK(ck_provdev_exchange(&t, &c, &req, 300, &rep));
    CHECK_INT_EQ(d.calls, 1);
    CHECK(strcmp(d.client, DEVICE) == 0);
    CHECK_INT_EQ(rep.result, CK_PROVDEV_OK);
    CHECK_INT_EQ(rep.cert_id, 7);
    CHECK_INT_EQ(rep.n_certs, 1);
    CHECK_MEM_EQ(rep.certs[0], rep.cert_lens[0], CERT1, sizeof(CERT1));
    ck_provdev_rep_clear(&rep);

    req.type = CK_PROVDEV_ACK;
    req.cert_id = 8;
    CHECK_OK(ck_provdev_exchange(&t, &c, &req, 300, &rep));
    CHECK_INT_EQ(rep.result, CK_PROVDEV_NOTFOUND);
    CHECK_INT_EQ(d.last.cert_id, 8);

    req.type = CK_PROVDEV_CHECK;
    memset(req.sha256, 0xdd, 32);
    CHECK_OK(ck_provdev_exchange(&t, &c, &req, 300, &rep));
    CHECK_INT_EQ(rep.instruction, CK_PROVDEV_DROP);
    memset(req.sha256, 0x11, 32);
    CHECK_OK(ck_provdev_exchange(&t, &c, &req, 300, &rep));
    CHECK_INT_EQ(rep.instruction, CK_PROVDEV_KEEP);

    /* The server's clock an hour off: a KRB-ERROR, never an instruction. */
    d.server_now = d.w.now + 3600;
    CHECK(ck_provdev_exchange(&t, &c, &req, 300, &rep) == CK_ERR_KRB);
    CHECK_INT_EQ(d.calls, 4);
    d.server_now = d.w.now;
    ck_principal_free(c.client);
    ck_key_clear(&c.session_key);
    free(c.ticket);
    world_down(&d.w);
}

/* Server side, direct: noise is not answered, another version gets BAD_PVNO, a ticket under
 * another key gets a KRB-ERROR with no call to the handler. */
static void
test_provdev_serve_direct(void)
{
    struct dev_world d, other;
    uint8_t noise[16], *out = NULL;
    size_t out_len = 0;
    ck_kdc_transport t;
    ck_creds c;
    ck_provdev_req req;
    ck_provdev_rep rep;

    memset(&d, 0, sizeof(d));
    memset(&other, 0, sizeof(other));
    world_up_at(&d.w, PROV_SVC, DEVICE, time(NULL));
    world_up_at(&other.w, PROV_SVC, DEVICE, time(NULL));
    memset(noise, 0x41, sizeof(noise));
    CHECK(ck_provdev_serve(noise, sizeof(noise), ck_ap_keytab_key_fn, d.w.kt, PROV_SVC, d.w.rc,
                           300, d.w.now, handle, &d, &out, &out_len) < 0 &&
          out == NULL);
    noise[0] = 0;
    noise[1] = sizeof(noise);
    CHECK_OK(ck_provdev_serve(noise, sizeof(noise), ck_ap_keytab_key_fn, d.w.kt, PROV_SVC,
                              d.w.rc, 300, d.w.now, handle, &d, &out, &out_len));
    CHECK(out_len > 6 && out[6] == 0x7e);
    free(out);
    out = NULL;
    noise[2] = 0xcb;
    noise[3] = 0x01;
    CHECK_OK(ck_provdev_serve(noise, sizeof(noise), ck_ap_keytab_key_fn, d.w.kt, PROV_SVC,
                              d.w.rc, 300, d.w.now, handle, &d, &out, &out_len));
    CHECK(out_len > 6 && out[2] == 0xcb && out[3] == 0x02 && out[6] == 0x7e);
    free(out);

    /* other's ticket against d's keytab. */
    other.server_now = other.w.now;
    dev_creds(&other, &c);
    memset(&t, 0, sizeof(t));
    t.send_fn = send_dev;
    t.send_arg = &d;
    d.server_now = d.w.now;
    memset(&req, 0, sizeof(req));
    req.type = CK_PROVDEV_FETCH;
    CHECK(ck_provdev_exchange(&t, &c, &req, 300, &rep) == CK_ERR_KRB);
    CHECK_INT_EQ(ck_error_krb_code(), CK_KRB_AP_ERR_BAD_INTEGRITY);
    CHECK_INT_EQ(d.calls, 0);
    ck_principal_free(c.client);
    ck_key_clear(&c.session_key);
    free(c.ticket);
    world_down(&other.w);
    world_down(&d.w);
}

/* ---- the KDC's client against a loopback UDP responder built on ck_mtafqdn_serve ---------- */

enum resp_mode { RESP_NORMAL, RESP_SILENT, RESP_WRONG_FQDN };

struct responder {
    int fd;
    uint16_t port;
    pthread_t thread;
    volatile int stop;
    volatile enum resp_mode mode;
    volatile int received;
    ck_keytab *kt;
    ck_rcache *rc;
    uint8_t spki_sha1[20];
};

static int
resp_lookup(void *arg, const ck_mtafqdn_msg *req, ck_mtafqdn_msg *rep)
{
    struct responder *r = arg;

    if (memcmp(req->mac, MAC, 6) != 0) {
        rep->type = CK_MTAFQDN_ERROR;
        rep->error = CK_MTAFQDN_ERR_UNKNOWN_DEVICE;
        ck_strlcpy(rep->text, "unknown device", sizeof(rep->text));
    } else if (memcmp(req->spki_sha1, r->spki_sha1, 20) != 0) {
        rep->type = CK_MTAFQDN_ERROR;
        rep->error = CK_MTAFQDN_ERR_KEY_MISMATCH;
        ck_strlcpy(rep->text, "key", sizeof(rep->text));
    } else {
        rep->type = CK_MTAFQDN_REPLY;
        ck_strlcpy(rep->fqdn,
                   r->mode == RESP_WRONG_FQDN ? "mta-00112233445f.mta.example.net"
                                              : "MTA-001122334455.mta.example.net",
                   sizeof(rep->fqdn));
        rep->ipv4[0] = 10;
    }
    return 0;
}

static void *
resp_main(void *arg)
{
    struct responder *r = arg;
    uint8_t buf[CK_MTAFQDN_MAX_DGRAM];

    while (!r->stop) {
        struct pollfd pfd = {.fd = r->fd, .events = POLLIN};
        struct sockaddr_in from;
        socklen_t fl = sizeof(from);
        uint8_t *out = NULL;
        size_t out_len = 0;
        ssize_t n;

        if (poll(&pfd, 1, 50) <= 0)
            continue;
        n = recvfrom(r->fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
        if (n <= 0)
            continue;
        r->received++;
        if (r->mode == RESP_SILENT)
            continue;
        if (ck_mtafqdn_serve(buf, (size_t)n, ck_ap_keytab_key_fn, r->kt, NULL, r->rc, 300,
                             time(NULL), resp_lookup, r, &out, &out_len) == 0)
            (void)sendto(r->fd, out, out_len, 0, (struct sockaddr *)&from, fl);
        free(out);
    }
    return NULL;
}

static void
responder_up(struct responder *r, ck_store *store, const char *service)
{
    struct sockaddr_in a;
    socklen_t al = sizeof(a);
    ck_db_principal *p = NULL;
    ck_principal *pp = NULL;

    memset(r, 0, sizeof(*r));
    CHECK_OK(ck_keytab_new(&r->kt));
    CHECK_OK(ck_store_get_principal(store, service, &p));
    CHECK_OK(ck_principal_parse(service, NULL, 0, &pp));
    for (size_t i = 0; p != NULL && i < p->n_keys; i++)
        CHECK_OK(ck_keytab_add(r->kt, pp, p->keys[i].kvno, 0, &p->keys[i].key));
    ck_db_principal_free(p);
    ck_principal_free(pp);
    CHECK_OK(ck_rcache_new(0, 600, &r->rc));
    r->fd = socket(AF_INET, SOCK_DGRAM, 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(r->fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    CHECK(getsockname(r->fd, (struct sockaddr *)&a, &al) == 0);
    r->port = ntohs(a.sin_port);
    CHECK(pthread_create(&r->thread, NULL, resp_main, r) == 0);
}

static void
responder_down(struct responder *r)
{
    r->stop = 1;
    pthread_join(r->thread, NULL);
    close(r->fd);
    ck_keytab_free(r->kt);
    ck_rcache_free(r->rc);
}

static X509 *
device_cert(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();

    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"00:11:22:33:44:55", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, k);
    X509_sign(x, k, EVP_sha256());
    EVP_PKEY_free(k);
    return x;
}

static void
kdc_config_for(struct kdc_mta_fqdn_config *c, char *server, size_t size, uint16_t port,
               int64_t timeout_ms)
{
    snprintf(server, size, "127.0.0.1:%u", (unsigned)port);
    c->server = server;
    c->timeout_ms = timeout_ms;
    c->cache_seconds = 60;
}

static void
test_kdc_client(void)
{
    static const int32_t et[] = {CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96};
    struct responder r;
    struct kdc_mta_fqdn_config c;
    struct kdc_mta_fqdn *m = NULL;
    struct kdc_mta_fqdn_query q;
    struct kdc_mta_fqdn_result res;
    char server[64];
    ck_store *store;
    ck_db_principal *p;
    X509 *cert = device_cert();
    uint8_t *der = NULL;
    int der_len = i2d_X509(cert, &der);
    int64_t now = time(NULL);

    store_fixture_up("provwire", REALM, et, 1);
    store = fixture_open(db);
    p = fixture_principal("mtafqdn/127.0.0.1@" REALM, NULL, 0, et, 1);
    CHECK_OK(ck_store_create_principal(store, p));
    ck_db_principal_free(p);
    responder_up(&r, store, "mtafqdn/127.0.0.1@" REALM);
    CHECK_OK(ck_mtafqdn_spki_sha1(der, (size_t)der_len, r.spki_sha1));
    kdc_config_for(&c, server, sizeof(server), r.port, 1000);
    CHECK_OK(kdc_mta_fqdn_new_from(&c, &m));
    CHECK(m != NULL);
    memset(&q, 0, sizeof(q));
    q.mac = "00-11-22-33-44-55";
    q.principal = DEVICE;
    q.cert = cert;
    q.generation = 7;

    /* Confirmed (the label compares without regard to case), then from the cache. */
    CHECK_OK(kdc_mta_fqdn_confirm(m, store, &q, now, &res));
    CHECK(res.confirmed && !res.cached);
    CHECK(strcmp(res.reason, KDC_MTA_FQDN_R_CONFIRMED) == 0);
    CHECK(strcmp(res.fqdn, "MTA-001122334455.mta.example.net") == 0);
    CHECK_INT_EQ(r.received, 1);
    CHECK_OK(kdc_mta_fqdn_confirm(m, store, &q, now + 10, &res));
    CHECK(res.confirmed && res.cached);
    CHECK_INT_EQ(r.received, 1);
    /* Expired, or another generation of the device row: asked again. */
    CHECK_OK(kdc_mta_fqdn_confirm(m, store, &q, now + 61, &res));
    CHECK(res.confirmed && !res.cached);
    CHECK_INT_EQ(r.received, 2);
    q.generation = 8;
    CHECK_OK(kdc_mta_fqdn_confirm(m, store, &q, now + 61, &res));
    CHECK(res.confirmed && !res.cached);
    CHECK_INT_EQ(r.received, 3);

    /* A FQDN naming another device. */
    r.mode = RESP_WRONG_FQDN;
    q.generation = 9;
    CHECK_OK(kdc_mta_fqdn_confirm(m, store, &q, now, &res));
    CHECK(!res.confirmed);
    CHECK(strcmp(res.reason, KDC_MTA_FQDN_R_FQDN) == 0);
    /* Refusals are not cached. */
    r.mode = RESP_NORMAL;
    q.mac = "001122334456";
    CHECK_OK(kdc_mta_fqdn_confirm(m, store, &q, now, &res));
    CHECK(!res.confirmed);
    CHECK(strcmp(res.reason, KDC_MTA_FQDN_R_UNKNOWN) == 0);
    CHECK(strstr(res.detail, "unknown device") != NULL);
    CHECK_INT_EQ(r.received, 5);

    /* Silence: one retry, then PROV_TIMEOUT. */
    kdc_mta_fqdn_free(m);
    kdc_config_for(&c, server, sizeof(server), r.port, 100);
    CHECK_OK(kdc_mta_fqdn_new_from(&c, &m));
    r.mode = RESP_SILENT;
    q.mac = "00:11:22:33:44:55";
    q.generation = 10;
    CHECK_OK(kdc_mta_fqdn_confirm(m, store, &q, now, &res));
    CHECK(!res.confirmed);
    CHECK(strcmp(res.reason, KDC_MTA_FQDN_R_TIMEOUT) == 0);
    CHECK_INT_EQ(r.received, 7);

    /* The prov keytab holds another key: its KRB-ERROR refuses. */
    r.mode = RESP_NORMAL;
    {
        ck_key other;
        CHECK_OK(ck_random_key(CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, &other));
        for (size_t i = 0; i < r.kt->n_entries; i++)
            ck_key_copy(&r.kt->entries[i].key, &other);
        ck_key_clear(&other);
    }
    CHECK_OK(kdc_mta_fqdn_confirm(m, store, &q, now, &res));
    CHECK(!res.confirmed);
    CHECK(strcmp(res.reason, KDC_MTA_FQDN_R_REFUSED) == 0);
    kdc_mta_fqdn_free(m);

    /* No mtafqdn/<host> principal in the database. */
    snprintf(server, sizeof(server), "localhost:%u", (unsigned)r.port);
    CHECK_OK(kdc_mta_fqdn_new_from(&c, &m));
    CHECK_OK(kdc_mta_fqdn_confirm(m, store, &q, now, &res));
    CHECK(!res.confirmed);
    CHECK(strcmp(res.reason, KDC_MTA_FQDN_R_NOKEY) == 0);
    CHECK(kdc_mta_fqdn_confirm(m, store, NULL, now, &res) == CK_ERR_INVAL);
    CHECK(strcmp(res.reason, KDC_MTA_FQDN_R_ERROR) == 0);
    kdc_mta_fqdn_free(m);

    responder_down(&r);
    OPENSSL_free(der);
    X509_free(cert);
    ck_store_close(store);
    fixture_down();
}

static void
test_kdc_config(void)
{
    struct ck_profile *prof = NULL;
    struct kdc_mta_fqdn_config *c = NULL;
    struct kdc_mta_fqdn *m = NULL;

    CHECK_OK(ck_profile_parse_string("[realms]\n " REALM " = {\n"
                                     "  pkinit_mta_fqdn_server = prov.example.net\n"
                                     "  pkinit_mta_fqdn_cache_seconds = 0\n }\n",
                                     "t", &prof));
    CHECK_OK(kdc_mta_fqdn_config_load(&c, prof, REALM));
    CHECK(c != NULL && strcmp(c->server, "prov.example.net") == 0);
    CHECK(c != NULL && c->timeout_ms == KDC_MTA_FQDN_DEFAULT_TIMEOUT_MS && c->cache_seconds == 0);
    CHECK_OK(kdc_mta_fqdn_new_from(c, &m));
    CHECK(m != NULL);
    kdc_mta_fqdn_free(m);
    kdc_mta_fqdn_config_free(c);
    c = NULL;
    CHECK_OK(kdc_mta_fqdn_config_load(&c, prof, "OTHER.REALM"));
    CHECK(c == NULL);
    ck_profile_free(prof);
    CHECK_OK(ck_profile_parse_string("[realms]\n " REALM " = {\n"
                                     "  pkinit_mta_fqdn_server = prov:2246\n"
                                     "  pkinit_mta_fqdn_timeout_ms = 0\n }\n",
                                     "t", &prof));
    CHECK(kdc_mta_fqdn_config_load(&c, prof, REALM) == CK_ERR_CONFIG);
    CHECK(c == NULL);
    ck_profile_free(prof);
}

/* cablekey-prov's server frame (wiresrv.c) on loopback UDP with an MTA-FQDN handler, asked by
 * the KDC's client: keytab keys, a store per worker, the shared replay cache. */
static int
wire_handler(struct prov_wire_ctx *ctx, const uint8_t *req, size_t len,
             const struct ck_peer *peer, int64_t now, uint8_t **out, size_t *out_len)
{
    struct responder *r = ctx->arg;

    (void)peer;
    r->received++;
    CHECK(ctx->store != NULL);
    return ck_mtafqdn_serve(req, len, ck_keyset_key_fn, ctx->keys, ctx->service, ctx->rcache,
                            ctx->clockskew, now, resp_lookup, r, out, out_len);
}

static void
test_wire_server(void)
{
    static const int32_t et[] = {CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96};
    struct responder r;
    struct prov_config cfg;
    struct prov_wire_def def;
    struct prov_wire_server *srv = NULL;
    struct kdc_mta_fqdn_config c;
    struct kdc_mta_fqdn *m = NULL;
    struct kdc_mta_fqdn_query q;
    struct kdc_mta_fqdn_result res;
    char keytab[256], server[64], desc[128], name[256];
    char *listen[1] = {"127.0.0.1:0"}, *none[1] = {"none"};
    const char *colon;
    ck_store *store;
    ck_db_principal *p;
    ck_keytab *kt = NULL;
    ck_principal *pp = NULL;
    X509 *cert = device_cert();
    int64_t port = 0;

    store_fixture_up("provwire-srv", REALM, et, 1);
    store = fixture_open(db);
    p = fixture_principal("mtafqdn/127.0.0.1@" REALM, NULL, 0, et, 1);
    CHECK_OK(ck_store_create_principal(store, p));
    CHECK_OK(ck_keytab_new(&kt));
    CHECK_OK(ck_principal_parse(p->name, NULL, 0, &pp));
    for (size_t i = 0; i < p->n_keys; i++)
        CHECK_OK(ck_keytab_add(kt, pp, p->keys[i].kvno, 0, &p->keys[i].key));
    snprintf(keytab, sizeof(keytab), "%s/prov.keytab", dir);
    CHECK_OK(ck_keytab_write(keytab, kt));
    ck_keytab_free(kt);
    ck_principal_free(pp);
    ck_db_principal_free(p);

    memset(&r, 0, sizeof(r));
    CHECK_OK(ck_mtafqdn_spki_sha1_cert(cert, r.spki_sha1));
    CHECK_OK(prov_wire_keytab_service(keytab, "mtafqdn", NULL, name, sizeof(name)));
    CHECK(strcmp(name, "mtafqdn/127.0.0.1@" REALM) == 0);
    CHECK(prov_wire_keytab_service(keytab, "prov", NULL, name, sizeof(name)) == CK_ERR_NOTFOUND);

    memset(&cfg, 0, sizeof(cfg));
    cfg.database = db;
    cfg.stash = stash;
    cfg.keytab = keytab;
    memset(&def, 0, sizeof(def));
    def.what = "mtafqdn-test";
    def.service = CK_MTAFQDN_SERVICE;
    def.port = CK_MTAFQDN_PORT;
    def.max_request = CK_MTAFQDN_MAX_DGRAM;
    def.max_reply = CK_MTAFQDN_MAX_DGRAM;
    def.handler = wire_handler;
    def.arg = &r;
    CHECK_OK(prov_wire_start(&cfg, &def, none, 1, &srv));
    CHECK(srv == NULL);
    def.service = CK_PROVDEV_SERVICE; /* the keytab has no prov/ key */
    CHECK(prov_wire_start(&cfg, &def, listen, 1, &srv) == CK_ERR_NOTFOUND && srv == NULL);
    def.service = CK_MTAFQDN_SERVICE;
    CHECK_OK(prov_wire_start(&cfg, &def, listen, 1, &srv));
    prov_wire_describe(srv, desc, sizeof(desc));
    colon = strrchr(desc, ':');
    CHECK(colon != NULL && ck_parse_int64(colon + 1, 1, 65535, &port) == 0);

    memset(&c, 0, sizeof(c));
    c.server = server;
    snprintf(server, sizeof(server), "127.0.0.1:%u", (unsigned)port);
    c.timeout_ms = 2000;
    CHECK_OK(kdc_mta_fqdn_new_from(&c, &m));
    memset(&q, 0, sizeof(q));
    q.mac = "00:11:22:33:44:55";
    q.principal = DEVICE;
    q.cert = cert;
    CHECK_OK(kdc_mta_fqdn_confirm(m, store, &q, time(NULL), &res));
    CHECK(res.confirmed);
    CHECK(strcmp(res.reason, KDC_MTA_FQDN_R_CONFIRMED) == 0);
    CHECK_INT_EQ(r.received, 1);
    /* Another key for the same MAC: KEY_MISMATCH from the server, refused. */
    {
        X509 *other = device_cert();
        q.cert = other;
        CHECK_OK(kdc_mta_fqdn_confirm(m, store, &q, time(NULL), &res));
        CHECK(!res.confirmed);
        CHECK(strcmp(res.reason, KDC_MTA_FQDN_R_KEY) == 0);
        X509_free(other);
    }
    kdc_mta_fqdn_free(m);
    prov_wire_stop(srv);
    X509_free(cert);
    ck_store_close(store);
    fixture_down();
}

/* One datagram to 127.0.0.1:port and its answer (the device channel's UDP side). */
static int
udp_roundtrip(void *arg, const uint8_t *req, size_t req_len, uint8_t **reply, size_t *reply_len)
{
    const int64_t *port = arg;
    struct sockaddr_in a;
    struct pollfd pfd;
    uint8_t buf[CK_PROVDEV_MAX_MSG];
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    ssize_t n = -1;

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)*port);
    pfd.fd = fd;
    pfd.events = POLLIN;
    if (sendto(fd, req, req_len, 0, (struct sockaddr *)&a, sizeof(a)) == (ssize_t)req_len &&
        poll(&pfd, 1, 3000) == 1)
        n = recv(fd, buf, sizeof(buf), 0);
    close(fd);
    if (n <= 0)
        return CK_ERR_TIMEOUT;
    *reply = ck_memdup(buf, (size_t)n);
    *reply_len = (size_t)n;
    return 0;
}

/* The same frame serving the device channel over TCP and UDP. */
static int
devchan_handler(struct prov_wire_ctx *ctx, const uint8_t *req, size_t len,
                const struct ck_peer *peer, int64_t now, uint8_t **out, size_t *out_len)
{
    (void)peer;
    return ck_provdev_serve(req, len, ck_keyset_key_fn, ctx->keys, ctx->service, ctx->rcache,
                            ctx->clockskew, now, handle, ctx->arg, out, out_len);
}

static void
test_wire_server_devchan(void)
{
    static const int32_t et[] = {CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96};
    struct dev_world d;
    struct prov_config cfg;
    struct prov_wire_def def;
    struct prov_wire_server *srv = NULL;
    char keytab[256], desc[128], addr[64];
    char *listen[1] = {"127.0.0.1:0"};
    const char *kdcs[1] = {addr};
    const char *colon;
    ck_store *store;
    ck_db_principal *p;
    ck_keytab *kt = NULL;
    ck_principal *pp = NULL;
    ck_kdc_transport t;
    ck_creds c;
    ck_provdev_req req;
    ck_provdev_rep rep;
    int64_t port = 0;

    memset(&d, 0, sizeof(d));
    store_fixture_up("provwire-dev", REALM, et, 1);
    store = fixture_open(db);
    p = fixture_principal("prov/127.0.0.1@" REALM, NULL, 0, et, 1);
    CHECK_OK(ck_store_create_principal(store, p));
    CHECK_OK(ck_keytab_new(&kt));
    CHECK_OK(ck_principal_parse(p->name, NULL, 0, &pp));
    CHECK_OK(ck_keytab_add(kt, pp, p->keys[0].kvno, 0, &p->keys[0].key));
    snprintf(keytab, sizeof(keytab), "%s/prov.keytab", dir);
    CHECK_OK(ck_keytab_write(keytab, kt));
    d.w.now = time(NULL);
    CHECK_OK(ck_mtafqdn_ticket_mint(p->name, &p->keys[0].key, p->keys[0].kvno, DEVICE, d.w.now,
                                    300, &d.w.ticket, &d.w.session_key));
    ck_keytab_free(kt);
    ck_principal_free(pp);
    ck_db_principal_free(p);

    memset(&cfg, 0, sizeof(cfg));
    cfg.database = db;
    cfg.stash = stash;
    cfg.keytab = keytab;
    memset(&def, 0, sizeof(def));
    def.what = "devchan-test";
    def.service = CK_PROVDEV_SERVICE;
    def.port = CK_PROVDEV_PORT;
    def.tcp = true;
    def.max_request = CK_PROVDEV_MAX_MSG;
    def.max_reply = CK_PROVDEV_MAX_MSG;
    def.handler = devchan_handler;
    def.arg = &d;
    CHECK_OK(prov_wire_start(&cfg, &def, listen, 1, &srv));
    prov_wire_describe(srv, desc, sizeof(desc));
    colon = strrchr(desc, ':');
    CHECK(colon != NULL && ck_parse_int64(colon + 1, 1, 65535, &port) == 0);
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", (unsigned)port);

    dev_creds(&d, &c);
    memset(&t, 0, sizeof(t));
    t.kdcs = kdcs;
    t.n_kdcs = 1;
    t.timeout_ms = 2000;
    memset(&req, 0, sizeof(req));
    req.type = CK_PROVDEV_FETCH;
    for (int tcp = 0; tcp < 2; tcp++) {
        t.send_fn = tcp ? NULL : udp_roundtrip;
        t.send_arg = &port;
        CHECK_OK(ck_provdev_exchange(&t, &c, &req, 300, &rep));
        CHECK_INT_EQ(rep.result, CK_PROVDEV_OK);
        CHECK_INT_EQ(rep.cert_id, 7);
        CHECK_MEM_EQ(rep.certs[0], rep.cert_lens[0], CERT1, sizeof(CERT1));
        ck_provdev_rep_clear(&rep);
    }
    CHECK_INT_EQ(d.calls, 2);
    CHECK(strcmp(d.client, DEVICE) == 0);
    ck_principal_free(c.client);
    ck_key_clear(&c.session_key);
    free(c.ticket);
    prov_wire_stop(srv);
    CK_TICKET_free(d.w.ticket);
    ck_key_clear(&d.w.session_key);
    ck_store_close(store);
    fixture_down();
}

CK_TEST_MAIN("provwire", CK_TEST_CASE(test_payload_request), CK_TEST_CASE(test_payload_reply),
             CK_TEST_CASE(test_payload_error), CK_TEST_CASE(test_exchange),
             CK_TEST_CASE(test_malformed_payload), CK_TEST_CASE(test_ap_failures),
             CK_TEST_CASE(test_authenticator_injected_clock),
             CK_TEST_CASE(test_split_and_garbage), CK_TEST_CASE(test_provdev_codec),
             CK_TEST_CASE(test_provdev_exchange), CK_TEST_CASE(test_provdev_serve_direct),
             CK_TEST_CASE(test_kdc_client), CK_TEST_CASE(test_kdc_config),
             CK_TEST_CASE(test_wire_server), CK_TEST_CASE(test_wire_server_devchan))
