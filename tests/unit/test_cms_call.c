/* cablekey-cms call core (CONTRACT8 call flow) driven without sockets: two controller cores
 * wired together, fake endpoints with real ACKs, an injected clock (call_world.h). */
#include <unistd.h>

#include "ck_test.h"
#include "call_world.h"

enum { A = 0, A2 = 1, GW = 2, B = 3 };

static struct world w;

/* The one live call id of core (from the key hook, through the log otherwise). */
static bool
call_id_from_log(const struct world *wd, int core, char *id)
{
    for (size_t i = 0; i < wd->n_log[core]; i++)
        if (sscanf(wd->log[core][i], "call %32s ", id) == 1)
            return true;
    return false;
}

static void
test_remote_call(void)
{
    char id[40] = "";
    uint8_t k[CK_CALL_KEY_LEN], zero[CK_CALL_KEY_LEN] = {0};
    bool keyed = true;
    struct cms_call_stats st;

    CHECK_OK(w_init(&w, false, true, 500, 4));
    w.esc.target = "5552001";
    CHECK_OK(w_dial(&w, A, "5552001"));
    w_pump(&w);
    /* B rings with the keys; A got them in MDCX; both hold the same key and SPI. */
    CHECK_INT_EQ(w.ph[B].crcx, 1);
    CHECK(w.ph[B].have_key && w.ph[A].have_key);
    CHECK_MEM_EQ(w.ph[A].key, CK_CALL_KEY_LEN, w.ph[B].key, CK_CALL_KEY_LEN);
    CHECK_INT_EQ(w.ph[A].spi_call, w.ph[B].spi_call);
    CHECK(w.ph[A].spi_call >= CK_CALL_SPI_MIN && w.ph[A].spi_call <= CK_CALL_SPI_MAX);
    CHECK_INT_EQ(w.ph[A].role, CK_CALL_ACK_SOURCE);
    CHECK_INT_EQ(w.ph[B].role, CK_CALL_ACK_DESTINATION);
    CHECK(w.ph[A].ipsec_line && w.ph[B].ipsec_line);
    CHECK_INT_EQ(w.ph[A].media, CK_SDP_MEDIA_SRTP_AES_CM);
    /* Each end learnt the other's media and direct-signaling address. */
    CHECK_INT_EQ(w.ph[A].peer_port, 50000);
    CHECK_INT_EQ(w.ph[A].peer_sig, 50001);
    CHECK_INT_EQ(w.ph[B].peer_port, 40000);
    CHECK_INT_EQ(w.ph[B].peer_sig, 40001);
    /* Escrow once, after both ACKs, with the call's key. */
    CHECK_INT_EQ(w.esc.calls, 1);
    CHECK_INT_EQ(w.esc.after_both_acks, 1);
    CHECK_MEM_EQ(w.esc.key, CK_CALL_KEY_LEN, w.ph[A].key, CK_CALL_KEY_LEN);
    /* B answers: XANS, MDCX sendrecv to A. */
    CHECK_INT_EQ(w.ph[A].mdcx, 1);
    CHECK_OK(w_ntfy(&w, B, "hd"));
    w_pump(&w);
    CHECK_INT_EQ(w.ph[A].mdcx, 2);
    cms_call_get_stats(w.core[0], &st);
    CHECK_INT_EQ(st.connected, 1);
    CHECK_INT_EQ(cms_call_live(w.core[0]), 1);
    CHECK_INT_EQ(cms_call_live(w.core[1]), 1);
    /* A hangs up: DLCX to both ends, keys gone, one summary line each side. */
    w.now += 1500;
    CHECK_OK(w_ntfy(&w, A, "hu"));
    w_pump(&w);
    CHECK_INT_EQ(w.ph[A].dlcx, 1);
    CHECK_INT_EQ(w.ph[B].dlcx, 1);
    CHECK(strcmp(w.ph[B].last_reason, "hangup") == 0);
    CHECK(!w.ph[A].have_key && !w.ph[B].have_key);
    CHECK_INT_EQ(cms_call_live(w.core[0]), 0);
    CHECK_INT_EQ(cms_call_live(w.core[1]), 0);
    CHECK_INT_EQ(w.n_log[0], 1);
    CHECK_INT_EQ(w.n_log[1], 1);
    CHECK_INT_EQ(w_log_count(&w, 0, "from 5551001 to 5552001 result connected reason=hangup "), 1);
    CHECK_INT_EQ(w_log_count(&w, 0, "media=srtp-aes-cm ipsec=sha1-aes128 escrow=1"), 1);
    CHECK_INT_EQ(w_log_count(&w, 1, "result connected reason=hangup"), 1);
    CHECK_INT_EQ(w_log_count(&w, 1, "escrow=0"), 1);
    /* K_call is wiped at release (the call lingers as a tombstone). */
    CHECK(call_id_from_log(&w, 0, id));
    CHECK(cms_call_test_key(w.core[0], id, k, &keyed));
    CHECK(!keyed);
    CHECK_MEM_EQ(k, sizeof(k), zero, sizeof(zero));
    CHECK(cms_call_test_key(w.core[1], id, k, &keyed));
    CHECK(!keyed);
    CHECK_MEM_EQ(k, sizeof(k), zero, sizeof(zero));
    /* No secret in any log line. */
    for (size_t i = 0; i < w.n_log[0]; i++)
        CHECK(strstr(w.log[0][i], "secret") == NULL);
    /* Tombstones expire. */
    w_run_until(&w, w.now + CMS_CALL_LINGER_MS + 1000);
    CHECK(!cms_call_test_key(w.core[0], id, k, &keyed));
    w_fini(&w);
}

/* The escrow is written outside call control's lock: a hang-up processed meanwhile (another
 * thread) releases the call at once (keys wiped, DLCX/XREL out), and the summary line waits for
 * the escrow count. */
static void
test_release_during_escrow(void)
{
    uint8_t k[CK_CALL_KEY_LEN];
    char id[40] = "";
    bool keyed = true;

    CHECK_OK(w_init(&w, false, true, 500, 4));
    w.esc.target = "5552001";
    w.esc.hangup_inside = true;
    CHECK_OK(w_dial(&w, A, "5552001"));
    w_pump(&w);
    CHECK_INT_EQ(w.esc.calls, 1);
    CHECK_INT_EQ(w.esc.after_both_acks, 1);
    CHECK_INT_EQ(w_log_count(&w, 0, "result released reason=hangup"), 1);
    CHECK_INT_EQ(w_log_count(&w, 0, "escrow=1"), 1);
    CHECK_INT_EQ(w.n_log[0], 1);
    CHECK_INT_EQ(w.ph[A].dlcx, 1);
    CHECK_INT_EQ(w.ph[B].dlcx, 1);
    CHECK(call_id_from_log(&w, 0, id));
    CHECK(cms_call_test_key(w.core[0], id, k, &keyed) && !keyed);
    w_fini(&w);
}

/* The callee hangs up: XREL to CA, DLCX to A with the reason. A second call works after. */
static void
test_remote_callee_hangs_up(void)
{
    CHECK_OK(w_init(&w, false, false, 500, 4));
    CHECK_OK(w_dial(&w, A, "5552001"));
    w_pump(&w);
    CHECK_OK(w_ntfy(&w, B, "hd"));
    w_pump(&w);
    CHECK_OK(w_ntfy(&w, B, "hu"));
    w_pump(&w);
    CHECK_INT_EQ(w.ph[A].dlcx, 1);
    CHECK(strcmp(w.ph[A].last_reason, "hangup") == 0);
    CHECK_INT_EQ(w_log_count(&w, 0, "result connected reason=hangup"), 1);
    CHECK_INT_EQ(w_log_count(&w, 0, "escrow=0"), 1);
    CHECK_OK(w_ntfy(&w, A, "hu"));
    w_pump(&w);
    CHECK_OK(w_dial(&w, A, "5552001"));
    w_pump(&w);
    CHECK_INT_EQ(w.ph[B].crcx, 2);
    CHECK_INT_EQ(cms_call_live(w.core[0]), 1);
    w_fini(&w);
}

static void
test_local_call(void)
{
    CHECK_OK(w_init(&w, false, true, 500, 4));
    CHECK_OK(w_dial(&w, A, "5551002"));
    w_pump(&w);
    CHECK(w.ph[A].have_key && w.ph[A2].have_key);
    CHECK_MEM_EQ(w.ph[A].key, CK_CALL_KEY_LEN, w.ph[A2].key, CK_CALL_KEY_LEN);
    CHECK_INT_EQ(w.ph[A2].role, CK_CALL_ACK_DESTINATION);
    CHECK_INT_EQ(w.esc.after_both_acks, 1);
    CHECK_INT_EQ(w.ph[B].crcx, 0);            /* nothing went to CB */
    CHECK_OK(w_ntfy(&w, A2, "hd"));
    w_pump(&w);
    CHECK_INT_EQ(w.ph[A].mdcx, 2);
    CHECK_OK(w_ntfy(&w, A2, "hu"));
    w_pump(&w);
    CHECK_INT_EQ(w.ph[A].dlcx, 1);
    CHECK_INT_EQ(w.ph[A2].dlcx, 1);
    CHECK_INT_EQ(w_log_count(&w, 0, "to 5551002 result connected reason=hangup"), 1);
    /* Busy: a call to a line in a call. */
    CHECK_OK(w_ntfy(&w, A, "hu"));
    CHECK_OK(w_dial(&w, A, "5551002"));
    w_pump(&w);
    CHECK_OK(w_dial(&w, GW, "5551002"));
    w_pump(&w);
    CHECK_INT_EQ(w_log_count(&w, 0, "from 5559000 to 5551002 result failed reason=busy"), 1);
    CHECK(strcmp(w.ph[GW].last_reason, "busy") == 0);
    w_fini(&w);
}

/* NCS: a media gateway line gets a CTA-to-server sub-key through the same flow. */
static void
test_mg_call(void)
{
    CHECK_OK(w_init(&w, false, false, 500, 4));
    CHECK_OK(w_dial(&w, A, "5559000"));
    w_pump(&w);
    CHECK(w.ph[GW].have_key && w.ph[GW].secret_line);
    CHECK_MEM_EQ(w.ph[A].key, CK_CALL_KEY_LEN, w.ph[GW].key, CK_CALL_KEY_LEN);
    CHECK_OK(w_ntfy(&w, GW, "hd"));
    w_pump(&w);
    CHECK_OK(w_ntfy(&w, A, "hu"));
    w_pump(&w);
    CHECK_INT_EQ(w_log_count(&w, 0, "to 5559000 result connected reason=hangup setup_ms="), 1);
    w_fini(&w);
}

/* SGCP: no a=X-ck-ipsec between CTAs; no key at all to a server line. */
static void
test_sgcp(void)
{
    CHECK_OK(w_init(&w, true, true, 500, 4));
    CHECK_OK(w_dial(&w, A, "5552001"));
    w_pump(&w);
    CHECK(w.ph[A].have_key && w.ph[B].have_key);
    CHECK(!w.ph[A].ipsec_line && !w.ph[B].ipsec_line);
    CHECK_OK(w_ntfy(&w, B, "hd"));
    w_pump(&w);
    CHECK_OK(w_ntfy(&w, A, "hu"));
    w_pump(&w);
    CHECK_INT_EQ(w_log_count(&w, 0, "result connected reason=hangup"), 1);
    CHECK_INT_EQ(w_log_count(&w, 0, "ipsec=none"), 1);
    /* To the gateway: plain RTP, no secret, no ACK asked for, and the call still connects. */
    CHECK_OK(w_dial(&w, A, "5559000"));
    w_pump(&w);
    CHECK(!w.ph[GW].secret_line && !w.ph[GW].have_key && !w.ph[A].have_key);
    CHECK_INT_EQ(w.ph[GW].media, CK_SDP_MEDIA_RTP);
    CHECK_INT_EQ(w.ph[A].media, CK_SDP_MEDIA_RTP);
    CHECK_INT_EQ(w.ph[A].peer_port, 40020);
    CHECK_OK(w_ntfy(&w, GW, "hd"));
    w_pump(&w);
    CHECK_OK(w_ntfy(&w, GW, "hu"));
    w_pump(&w);
    CHECK_INT_EQ(w_log_count(&w, 0, "to 5559000 result connected reason=hangup"), 1);
    CHECK_INT_EQ(w_log_count(&w, 0, "media=rtp ipsec=none"), 1);
    w_fini(&w);
}

static void
test_ack_mismatch(void)
{
    CHECK_OK(w_init(&w, false, true, 500, 4));
    w.esc.target = "5551001";
    w.ph[B].forge_ack = true;
    CHECK_OK(w_dial(&w, A, "5552001"));
    w_pump(&w);
    /* A never got the keys; B is told to drop them; nothing escrowed. */
    CHECK_INT_EQ(w.ph[A].mdcx, 0);
    CHECK(!w.ph[A].have_key && !w.ph[B].have_key);
    CHECK_INT_EQ(w.ph[A].dlcx, 1);
    CHECK(strcmp(w.ph[A].last_reason, "ack-mismatch") == 0);
    CHECK_INT_EQ(w.ph[B].dlcx, 1);
    CHECK(strcmp(w.ph[B].last_reason, "ack-mismatch") == 0);
    CHECK_INT_EQ(w.esc.calls, 0);
    CHECK_INT_EQ(w_log_count(&w, 0, "result failed reason=ack-mismatch"), 1);
    CHECK_INT_EQ(w_log_count(&w, 1, "result failed reason=ack-mismatch"), 1);
    CHECK_INT_EQ(cms_call_live(w.core[0]), 0);
    w_fini(&w);

    /* The source end's ACK wrong: the same abort after B installed. */
    CHECK_OK(w_init(&w, false, true, 500, 4));
    w.ph[A].forge_ack = true;
    CHECK_OK(w_dial(&w, A, "5551002"));
    w_pump(&w);
    CHECK_INT_EQ(w.esc.calls, 0);
    CHECK(!w.ph[A].have_key && !w.ph[A2].have_key);
    CHECK_INT_EQ(w_log_count(&w, 0, "result failed reason=ack-mismatch"), 1);
    w_fini(&w);
}

/* The destination's 200 (its ACK) is lost once: CB retransmits CRCX with the same txid, B
 * answers from its cache (one installation), and the call proceeds. */
static void
test_lost_ack_retried(void)
{
    CHECK_OK(w_init(&w, false, true, 500, 4));
    w.ph[B].drop_responses = 1;
    CHECK_OK(w_dial(&w, A, "5552001"));
    w_pump(&w);
    CHECK(!w.ph[A].have_key);
    w_run_until(&w, w.now + 600);
    CHECK(w.ph[A].have_key);
    CHECK_INT_EQ(w.ph[B].installs, 1);
    CHECK_INT_EQ(w.esc.after_both_acks, 1);
    CHECK_OK(w_ntfy(&w, B, "hd"));
    w_pump(&w);
    CHECK_OK(w_ntfy(&w, B, "hu"));
    w_pump(&w);
    CHECK_INT_EQ(w_log_count(&w, 0, "result connected reason=hangup"), 1);
    w_fini(&w);

    /* The source's ACK lost twice: MDCX retried, still one installation. */
    CHECK_OK(w_init(&w, false, true, 500, 4));
    w.ph[A].drop_mdcx_key_responses = 2;
    CHECK_OK(w_dial(&w, A, "5552001"));
    w_run_until(&w, w.now + 1200);
    CHECK_INT_EQ(w.esc.calls, 1);
    CHECK_INT_EQ(w.ph[A].installs, 1);
    w_fini(&w);
}

/* Out of tries: clean teardown with the reason, on both sides. */
static void
test_lost_ack_exhausted(void)
{
    struct cms_call_stats st;

    CHECK_OK(w_init(&w, false, true, 500, 4));
    w.ph[A].drop_mdcx_key_responses = 100;
    CHECK_OK(w_dial(&w, A, "5552001"));
    w_run_until(&w, w.now + 1999);
    CHECK_INT_EQ(w_log_count(&w, 0, "reason="), 0);
    w_run_until(&w, w.now + 2);
    CHECK_INT_EQ(w_log_count(&w, 0, "result failed reason=no-ack-source"), 1);
    CHECK_INT_EQ(w.ph[B].dlcx, 1);                 /* XREL reached CB, DLCX to B */
    CHECK_INT_EQ(w_log_count(&w, 1, "result failed reason=no-ack-source"), 1);
    CHECK_INT_EQ(w.esc.calls, 0);
    cms_call_get_stats(w.core[0], &st);
    CHECK_INT_EQ(st.retransmissions, 3);           /* 4 transmissions in all */
    w_run_until(&w, w.now + 5000);
    CHECK_INT_EQ(cms_call_live(w.core[0]), 0);
    CHECK_INT_EQ(cms_call_live(w.core[1]), 0);
    w_fini(&w);

    /* The destination never answers: CB gives up, answers XSET with the reason. */
    CHECK_OK(w_init(&w, false, true, 500, 4));
    w.ph[B].drop_responses = 100;
    CHECK_OK(w_dial(&w, A, "5552001"));
    w_run_until(&w, w.now + 3000);
    CHECK_INT_EQ(w_log_count(&w, 1, "result failed reason=no-ack-destination"), 1);
    CHECK_INT_EQ(w_log_count(&w, 0, "result failed reason=no-ack-destination"), 1);
    CHECK(strcmp(w.ph[A].last_reason, "no-ack-destination") == 0);
    w_fini(&w);

    /* The peer controller never answers. */
    CHECK_OK(w_init(&w, false, true, 500, 4));
    w.drop_to_cb = 100;
    CHECK_OK(w_dial(&w, A, "5552001"));
    w_run_until(&w, w.now + 5000);
    CHECK_INT_EQ(w_log_count(&w, 0, "result failed reason=peer-timeout"), 1);
    CHECK_INT_EQ(w.ph[A].dlcx, 1);
    w_fini(&w);
}

/* 533 from B: a new SPI and a new K_call each time; after 3 retries, reason spi. */
static void
test_spi_collision(void)
{
    CHECK_OK(w_init(&w, false, true, 500, 4));
    w.ph[B].refuse_spi = 2;
    CHECK_OK(w_dial(&w, A, "5552001"));
    w_pump(&w);
    CHECK_INT_EQ(w.ph[B].n_refused, 2);
    CHECK(w.ph[B].have_key && w.ph[A].have_key);
    CHECK(w.ph[B].spi_call != w.ph[B].refused_spi[0]);
    CHECK(w.ph[B].spi_call != w.ph[B].refused_spi[1]);
    CHECK(w.ph[B].refused_spi[0] != w.ph[B].refused_spi[1]);
    CHECK(memcmp(w.ph[B].key, w.ph[B].refused_key[0], CK_CALL_KEY_LEN) != 0);
    CHECK(memcmp(w.ph[B].key, w.ph[B].refused_key[1], CK_CALL_KEY_LEN) != 0);
    CHECK(memcmp(w.ph[B].refused_key[0], w.ph[B].refused_key[1], CK_CALL_KEY_LEN) != 0);
    CHECK_MEM_EQ(w.ph[A].key, CK_CALL_KEY_LEN, w.ph[B].key, CK_CALL_KEY_LEN);
    CHECK_INT_EQ(w.esc.after_both_acks, 1);
    w_fini(&w);

    CHECK_OK(w_init(&w, false, true, 500, 4));
    w.ph[B].refuse_spi = 100;
    CHECK_OK(w_dial(&w, A, "5552001"));
    w_pump(&w);
    CHECK_INT_EQ(w.ph[B].n_refused, 1 + CMS_CALL_MAX_SPI_RETRIES);
    CHECK_INT_EQ(w_log_count(&w, 0, "result failed reason=spi"), 1);
    CHECK(strcmp(w.ph[A].last_reason, "spi") == 0);
    CHECK_INT_EQ(cms_call_live(w.core[0]), 0);
    w_fini(&w);
}

/* A retransmitted XSET gets the cached answer, never a second CRCX to B. */
static void
test_xset_retransmission(void)
{
    char text[CK_MGCP_MAX_MSG + 64];
    size_t len;

    CHECK_OK(w_init(&w, false, false, 500, 4));
    CHECK_OK(w_dial(&w, A, "5552001"));
    w_pump(&w);
    CHECK_INT_EQ(w.ph[B].crcx, 1);
    len = w.last_xset_len;
    memcpy(text, w.last_xset, len);
    CHECK_OK(cms_call_on_message(w.core[1], "cms/ca@R", 0x4001, (const uint8_t *)text, len,
                                 w.now));
    w_pump(&w);
    CHECK_INT_EQ(w.ph[B].crcx, 1);
    CHECK_INT_EQ(w.ph[B].installs, 1);
    ck_memzero(text, sizeof(text));
    w_fini(&w);
}

static void
test_unknown_number_and_junk(void)
{
    struct cms_call_stats st;
    static const char *junk[] = {
        "200 999 OK\r\n",                                  /* answers nothing we sent */
        "XANS 7 cms@ca MGCP 1.0\r\nC: 0123\r\n",            /* from a line, not a peer */
        "NTFY 77 aaln/1@a MGCP 1.0\r\nO: zz\r\n",
        "garbage",
    };

    CHECK_OK(w_init(&w, false, false, 500, 4));
    CHECK_OK(w_dial(&w, A, "4441234"));
    w_pump(&w);
    CHECK_INT_EQ(w.ph[A].crcx, 0);
    CHECK_INT_EQ(w.ph[A].dlcx, 1);
    CHECK(strcmp(w.ph[A].last_reason, "unknown-number") == 0);
    CHECK_INT_EQ(w_log_count(&w, 0, "to 4441234 result failed reason=unknown-number"), 1);
    /* CB has no such line: it refuses the XSET, CA tears down with the reason. */
    CHECK_OK(w_ntfy(&w, A, "hu"));
    CHECK_OK(w_dial(&w, A, "5552999"));
    w_pump(&w);
    CHECK_INT_EQ(w_log_count(&w, 0, "to 5552999 result failed reason=unknown-number"), 1);
    /* '*' and '#', or more than 15 digits: unknown too, never a prefix match. */
    CHECK_OK(w_ntfy(&w, A, "hu"));
    CHECK_OK(w_dial(&w, A, "5552*01"));
    w_pump(&w);
    CHECK_OK(w_ntfy(&w, A, "hu"));
    CHECK_OK(w_dial(&w, A, "5552001000000000"));
    w_pump(&w);
    CHECK_INT_EQ(w_log_count(&w, 0, "result failed reason=unknown-number"), 4);
    CHECK_INT_EQ(w.ph[B].crcx, 0);
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
        CHECK_OK(cms_call_on_message(w.core[0], "mta/a@R", 0x1001, (const uint8_t *)junk[i],
                                     strlen(junk[i]), w.now));
    CHECK_OK(cms_call_on_message(w.core[0], "mta/stranger@R", 0x9999,
                                 (const uint8_t *)"NTFY 1 x MGCP 1.0\r\nO: hd\r\n", 26, w.now));
    CHECK_OK(cms_call_on_peer_response(w.core[0], 0, 12345, (const uint8_t *)"200 12345 OK\r\n",
                                       14, w.now));
    CHECK_OK(cms_call_on_peer_response(w.core[0], 7, 1, (const uint8_t *)"200 1 OK\r\n", 10,
                                       w.now));
    cms_call_get_stats(w.core[0], &st);
    CHECK(st.dropped >= 6);
    CHECK(!cms_call_is_party(w.core[0], "mta/stranger@R"));
    CHECK(cms_call_is_party(w.core[0], "mta/a@R"));
    CHECK(cms_call_is_party(w.core[0], "cms/cb@R"));
    w_fini(&w);
}

/* The real lawful-intercept database: a call with a party under an order is escrowed once,
 * after both ACKs, and the record opens with the law-enforcement key to this call's K_call; a
 * call outside every order leaves no record. */
static void
test_intercept_real(void)
{
    char dir[] = "/tmp/ck-cms-call.XXXXXX", db[128], key[128];
    char *pem = NULL;
    uint8_t *der = NULL;
    size_t der_len = 0;
    int64_t order = 0;
    struct ck_li_call rec;
    char id[40] = "";
    ck_li *li = NULL;

    CHECK(mkdtemp(dir) != NULL);
    snprintf(db, sizeof(db), "%s/li.db", dir);
    snprintf(key, sizeof(key), "%s/lea.key", dir);
    CHECK_OK(w_init(&w, false, true, 500, 4));
    CHECK((pem = w_lea_make(w.now / 1000, key)) != NULL);
    CHECK_OK(ck_li_open(db, CK_LI_CREATE, &li));
    CHECK_OK(ck_li_order_add(li, CK_LI_TARGET_NUMBER, "5552001", w.now / 1000 - 60,
                             w.now / 1000 + 3600, "court 42", pem, "test", w.now / 1000, &order));
    w.esc.li = li;
    /* Outside the order: no record. */
    CHECK_OK(w_dial(&w, A, "5551002"));
    w_pump(&w);
    CHECK_INT_EQ(w.esc.calls, 1);
    CHECK_OK(w_ntfy(&w, A, "hu"));
    w_pump(&w);
    CHECK_INT_EQ(w_log_count(&w, 0, "to 5551002 result released reason=hangup"), 1);
    CHECK_INT_EQ(w_log_count(&w, 0, "escrow=0"), 1);
    /* Under the order. */
    CHECK_OK(w_dial(&w, A, "5552001"));
    w_pump(&w);
    CHECK_INT_EQ(w.esc.after_both_acks, 2);
    CHECK_OK(w_ntfy(&w, B, "hd"));
    w_pump(&w);
    CHECK_OK(w_ntfy(&w, A, "hu"));
    w_pump(&w);
    CHECK_INT_EQ(w_log_count(&w, 0, "to 5552001 result connected reason=hangup"), 1);
    CHECK_INT_EQ(w_log_count(&w, 0, "escrow=1"), 1);
    CHECK(w.n_log[0] == 2 && sscanf(w.log[0][1], "call %32s ", id) == 1);
    CHECK_OK(ck_li_record_get(li, order, id, "test", w.now / 1000, &der, &der_len));
    memset(&rec, 0, sizeof(rec));
    CHECK_OK(ck_li_record_open(der, der_len, key, NULL, &rec));
    CHECK(strcmp(rec.call_id, id) == 0 && strcmp(rec.callee, "5552001") == 0);
    CHECK(strcmp(rec.caller_mac, "0011223344aa") == 0);
    CHECK_MEM_EQ(rec.k_call, CK_CALL_KEY_LEN, w.esc.key, CK_CALL_KEY_LEN);
    CHECK(rec.spi >= CK_CALL_SPI_MIN);
    CHECK(strcmp(rec.media, "srtp-aes-cm") == 0 && strcmp(rec.ipsec_suite, "sha1-aes128") == 0);
    ck_li_call_clear(&rec);
    free(der);
    free(pem);
    w_fini(&w);
    ck_li_close(li);
    unlink(db);
    unlink(key);
    rmdir(dir);
}

CK_TEST_MAIN("cms_call", CK_TEST_CASE(test_intercept_real), CK_TEST_CASE(test_remote_call),
             CK_TEST_CASE(test_release_during_escrow),
             CK_TEST_CASE(test_remote_callee_hangs_up),
             CK_TEST_CASE(test_local_call), CK_TEST_CASE(test_mg_call), CK_TEST_CASE(test_sgcp),
             CK_TEST_CASE(test_ack_mismatch), CK_TEST_CASE(test_lost_ack_retried),
             CK_TEST_CASE(test_lost_ack_exhausted), CK_TEST_CASE(test_spi_collision),
             CK_TEST_CASE(test_xset_retransmission), CK_TEST_CASE(test_unknown_number_and_junk))
