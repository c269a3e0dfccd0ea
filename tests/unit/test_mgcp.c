/* MGCP/SDP codec (lib/mgcp): RFC 3435's example messages, the NCS call flow of
 * docs/PROTOCOL.md "Call signaling", every a=X-ck-* attribute, refusals and round trips. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "cablekey/mgcp.h"
#include "cablekey/util.h"
#include "ck_test.h"

static int
parse_str(const char *s, struct ck_mgcp_msg *m)
{
    return ck_mgcp_parse((const uint8_t *)s, strlen(s), m);
}

static int
sdp_str(const char *s, struct ck_sdp *out)
{
    return ck_sdp_parse(s, strlen(s), out);
}

/* RFC 3435 §2.3.5 / §3: a CreateConnection without SDP, LF line ends as printed in the RFC. */
static void
test_rfc3435_crcx(void)
{
    static struct ck_mgcp_msg m;

    CHECK_OK(parse_str("CRCX 1204 aaln/1@rgw-2567.whatever.net MGCP 1.0\n"
                       "C: A3C47F21456789F0\n"
                       "L: p:10, a:PCMU\n"
                       "M: recvonly\n",
                       &m));
    CHECK(!m.is_response);
    CHECK(strcmp(m.verb, "CRCX") == 0);
    CHECK_INT_EQ(m.txid, 1204);
    CHECK(strcmp(m.endpoint, "aaln/1@rgw-2567.whatever.net") == 0);
    CHECK_INT_EQ(m.n_params, 3);
    CHECK(ck_mgcp_param(&m, "C") != NULL && strcmp(ck_mgcp_param(&m, "c"), "A3C47F21456789F0") == 0);
    CHECK(strcmp(ck_mgcp_param(&m, "L"), "p:10, a:PCMU") == 0);
    CHECK(strcmp(ck_mgcp_param(&m, "M"), "recvonly") == 0);
    CHECK(ck_mgcp_param(&m, "X") == NULL);
    CHECK(!m.has_sdp);
}

/* The gateway's answer: ConnectionId without a space after the colon, then the SDP. */
static void
test_rfc3435_crcx_response(void)
{
    static struct ck_mgcp_msg m;
    struct ck_sdp s;

    CHECK_OK(parse_str("200 1204 OK\n"
                       "I:FDE234C8\n"
                       "\n"
                       "v=0\n"
                       "o=- 25678 753849 IN IP4 128.96.41.1\n"
                       "s=-\n"
                       "c=IN IP4 128.96.41.1\n"
                       "t=0 0\n"
                       "m=audio 3456 RTP/AVP 0\n",
                       &m));
    CHECK(m.is_response);
    CHECK_INT_EQ(m.code, 200);
    CHECK_INT_EQ(m.txid, 1204);
    CHECK(strcmp(m.comment, "OK") == 0);
    CHECK(strcmp(ck_mgcp_param(&m, "I"), "FDE234C8") == 0);
    CHECK(m.has_sdp);
    CHECK_OK(ck_sdp_parse(m.sdp, m.sdp_len, &s));
    CHECK_INT_EQ(s.family, 4);
    CHECK(strcmp(s.addr, "128.96.41.1") == 0);
    CHECK_INT_EQ(s.media_port, 3456);
    CHECK(!s.secure_profile);
    CHECK_INT_EQ(s.session_id, 25678);
    CHECK(!s.has_key && !s.has_spi && !s.has_ack && !s.has_ipsec);
    CHECK_INT_EQ(s.media, CK_SDP_MEDIA_NONE);
    CHECK_INT_EQ(s.sig_port, 0);
    ck_mgcp_msg_clear(&m);
}

/* ModifyConnection with the remote description, NotificationRequest parameters included. */
static void
test_rfc3435_mdcx(void)
{
    static struct ck_mgcp_msg m;
    struct ck_sdp s;

    CHECK_OK(parse_str("MDCX 1210 aaln/1@rgw-2567.whatever.net MGCP 1.0\n"
                       "C: A3C47F21456789F0\n"
                       "I: FDE234C8\n"
                       "N: ca@ca1.whatever.net\n"
                       "M: sendrecv\n"
                       "X: 0123456789AE\n"
                       "R: L/hu\n"
                       "S: G/rt\n"
                       "\n"
                       "v=0\n"
                       "o=- 4723891 7428910 IN IP4 128.96.63.25\n"
                       "s=-\n"
                       "c=IN IP4 128.96.63.25\n"
                       "t=0 0\n"
                       "m=audio 1296 RTP/AVP 0\n",
                       &m));
    CHECK(strcmp(m.verb, "MDCX") == 0);
    CHECK_INT_EQ(m.n_params, 7);
    CHECK(strcmp(ck_mgcp_param(&m, "N"), "ca@ca1.whatever.net") == 0);
    CHECK(strcmp(ck_mgcp_param(&m, "S"), "G/rt") == 0);
    CHECK_OK(ck_sdp_parse(m.sdp, m.sdp_len, &s));
    CHECK_INT_EQ(s.media_port, 1296);
    CHECK_INT_EQ(s.session_id, 4723891);
}

/* Notify shaped after RFC 3435's (its observed-event list cut to the package-qualified off-hook
 * event); DeleteConnection and its 250 with the connection parameters (the two-letter
 * sub-names live inside the value). */
static void
test_rfc3435_ntfy_dlcx(void)
{
    static struct ck_mgcp_msg m;
    enum ck_mgcp_event ev;
    char digits[CK_MGCP_MAX_DIGITS + 1];

    CHECK_OK(parse_str("NTFY 2002 aaln/1@rgw-2567.whatever.net MGCP 1.0\n"
                       "N: ca@ca1.whatever.net:5678\n"
                       "X: 0123456789AC\n"
                       "O: L/hd\n",
                       &m));
    CHECK(strcmp(m.verb, "NTFY") == 0);
    CHECK_INT_EQ(m.txid, 2002);
    CHECK_OK(ck_mgcp_parse_observed(ck_mgcp_param(&m, "O"), &ev, digits, sizeof(digits)));
    CHECK_INT_EQ(ev, CK_MGCP_EV_OFFHOOK);
    CHECK_OK(parse_str("200 2002 OK\n", &m));
    CHECK(m.is_response && m.code == 200 && m.txid == 2002 && m.n_params == 0);
    CHECK_OK(parse_str("DLCX 1210 aaln/1@rgw-2567.whatever.net MGCP 1.0\n"
                       "C: A3C47F21456789F0\n"
                       "I: FDE234C8\n",
                       &m));
    CHECK(strcmp(m.verb, "DLCX") == 0);
    CHECK_OK(parse_str("250 1210 OK\n"
                       "P: PS=1245, OS=62345, PR=780, OR=45123, PL=10, JI=27, LA=48\n",
                       &m));
    CHECK_INT_EQ(m.code, 250);
    CHECK(strcmp(ck_mgcp_param(&m, "P"), "PS=1245, OS=62345, PR=780, OR=45123, PL=10, JI=27, LA=48") ==
          0);
    /* Error responses: the text is free, the code is what counts. */
    CHECK_OK(parse_str("533 1211 SPI in use\r\n", &m));
    CHECK_INT_EQ(m.code, 533);
    CHECK(strcmp(m.comment, "SPI in use") == 0);
    CHECK_OK(parse_str("510 1212\r\n", &m));
    CHECK(m.comment[0] == '\0');
}

static const uint8_t test_key[CK_CALL_KEY_LEN] = {
    0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x4b, 0x4c, 0x4d, 0x4e, 0x4f,
    0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x5b, 0x5c, 0x5d, 0x5e, 0x5f};

static void
full_sdp(struct ck_sdp *s)
{
    memset(s, 0, sizeof(*s));
    s->family = 4;
    ck_strlcpy(s->addr, "127.0.0.1", sizeof(s->addr));
    s->media_port = 16384;
    s->secure_profile = true;
    s->session_id = 1;
    s->has_key = true;
    memcpy(s->key, test_key, sizeof(test_key));
    s->has_spi = true;
    s->spi = 0x0000c0de;
    s->role = CK_CALL_ACK_DESTINATION;
    s->media = CK_SDP_MEDIA_SRTP_AES_CM;
    s->has_ipsec = true;
    CHECK_OK(ck_kmm_suite_from_short_name(CK_KMM_DOI_IPSEC, "sha1-aes128", &s->ipsec_suite));
    s->sig_port = 12427;
    s->has_ack = false;
}

/* Every cablekey attribute, with its exact text, and the round trip. */
static void
test_sdp_attributes(void)
{
    struct ck_sdp s, t;
    char buf[CK_MGCP_MAX_MSG + 1];
    size_t len;
    static const char expect[] =
        "v=0\r\n"
        "o=- 1 1 IN IP4 127.0.0.1\r\n"
        "s=-\r\n"
        "c=IN IP4 127.0.0.1\r\n"
        "t=0 0\r\n"
        "m=audio 16384 RTP/SAVP 0\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
        "a=ptime:20\r\n"
        "a=X-ck-secret:base64:QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8=\r\n"
        "a=X-ck-spi:0000c0de\r\n"
        "a=X-ck-role:destination\r\n"
        "a=X-ck-media:srtp-aes-cm\r\n"
        "a=X-ck-ipsec:sha1-aes128\r\n"
        "a=X-ck-sig:12427\r\n";

    full_sdp(&s);
    CHECK_OK(ck_sdp_build(&s, buf, sizeof(buf), &len));
    CHECK_INT_EQ(len, strlen(buf));
    CHECK(strcmp(buf, expect) == 0);
    CHECK_OK(ck_sdp_parse(buf, len, &t));
    CHECK(memcmp(&s, &t, sizeof(s)) == 0);

    /* The ACK (the destination's 200) and the other values of each attribute. */
    memset(&s, 0, sizeof(s));
    s.family = 6;
    ck_strlcpy(s.addr, "::1", sizeof(s.addr));
    s.media_port = 40000;
    s.session_id = UINT64_MAX;
    s.has_ack = true;
    for (int i = 0; i < CK_CALL_ACK_LEN; i++)
        s.ack[i] = (uint8_t)(0xa0 + i);
    s.sig_port = 65535;
    s.role = CK_CALL_ACK_SOURCE;
    s.media = CK_SDP_MEDIA_RTP_3DES_MAC;
    s.has_ipsec = true;
    s.compat_seq = true;
    CHECK_OK(ck_kmm_suite_from_short_name(CK_KMM_DOI_IPSEC, "md5-3des", &s.ipsec_suite));
    CHECK_OK(ck_sdp_build(&s, buf, sizeof(buf), &len));
    CHECK(strstr(buf, "c=IN IP6 ::1\r\n") != NULL);
    CHECK(strstr(buf, "o=- 18446744073709551615 18446744073709551615 IN IP6 ::1\r\n") != NULL);
    CHECK(strstr(buf, "m=audio 40000 RTP/AVP 0\r\n") != NULL);
    CHECK(strstr(buf, "a=X-ck-ack:a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3\r\n") != NULL);
    CHECK(strstr(buf, "a=X-ck-role:source\r\n") != NULL);
    CHECK(strstr(buf, "a=X-ck-media:rtp-3des-mac\r\n") != NULL);
    CHECK(strstr(buf, "a=X-ck-ipsec:md5-3des compat-seq\r\n") != NULL);
    CHECK(strstr(buf, "a=X-ck-sig:65535\r\n") != NULL);
    CHECK(strstr(buf, "X-ck-secret") == NULL && strstr(buf, "X-ck-spi") == NULL);
    CHECK_OK(ck_sdp_parse(buf, len, &t));
    CHECK(memcmp(&s, &t, sizeof(s)) == 0);

    /* Media mode names, both ways. */
    for (int m = CK_SDP_MEDIA_RTP; m <= CK_SDP_MEDIA_RTP_3DES_MAC; m++) {
        enum ck_sdp_media_mode back;

        s.media = (enum ck_sdp_media_mode)m;
        CHECK_OK(ck_sdp_media_parse(ck_sdp_media_name(s.media), &back));
        CHECK_INT_EQ(back, m);
        CHECK_OK(ck_sdp_build(&s, buf, sizeof(buf), &len));
        CHECK_OK(ck_sdp_parse(buf, len, &t));
        CHECK_INT_EQ(t.media, m);
    }
    CHECK(strcmp(ck_sdp_media_name(CK_SDP_MEDIA_SRTP_GCM), "srtp-gcm") == 0);
    CHECK(strcmp(ck_sdp_media_name(CK_SDP_MEDIA_RTP), "rtp") == 0);
    CHECK(strcmp(ck_sdp_media_name((enum ck_sdp_media_mode)99), "unknown") == 0);
    {
        enum ck_sdp_media_mode back;

        CHECK(ck_sdp_media_parse("srtp", &back) != 0);
        CHECK(ck_sdp_media_parse("none", &back) != 0);
    }

    /* Foreign attributes and property attributes are ignored; attribute names are matched
     * without regard to case; the secret's SPI boundaries are accepted. */
    CHECK(sdp_str("v=0\r\ns=-\r\nt=0 0\r\nm=audio 5 RTP/AVP 0\r\nA=nothing\r\n", &t) ==
          CK_ERR_DECODE); /* line types are lower case */
    CHECK_OK(sdp_str("v=0\r\ns=-\r\nt=0 0\r\nm=audio 5 RTP/AVP 0 8 18\r\na=recvonly\r\n"
                     "a=fmtp:18 annexb=no\r\na=x-CK-spi:00000100\r\n",
                     &t));
    CHECK(t.has_spi && t.spi == CK_CALL_SPI_MIN);
    CHECK_OK(sdp_str("v=0\nm=audio 5 RTP/AVP 0\na=X-ck-spi:FFFFFFFE", &t));
    CHECK(t.has_spi && t.spi == CK_CALL_SPI_MAX);
    CHECK_INT_EQ(t.family, 0);
}

static int
sdp_refused(const char *body)
{
    struct ck_sdp s;
    int rc;

    memset(&s, 0xa5, sizeof(s));
    rc = sdp_str(body, &s);
    if (rc != 0) {
        static const struct ck_sdp zero;

        if (memcmp(&s, &zero, sizeof(s)) != 0)
            return 0; /* not wiped */
    }
    return rc == CK_ERR_DECODE;
}

#define SDP_HEAD "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"

static void
b64_line(const uint8_t *p, int n, char *out, size_t size)
{
    char b64[64];

    EVP_EncodeBlock((unsigned char *)b64, p, n);
    snprintf(out, size, SDP_HEAD "a=X-ck-secret:base64:%s\r\n", b64);
}

static void
test_sdp_refusals(void)
{
    uint8_t k[40];
    char body[512];

    memset(k, 0x11, sizeof(k));
    b64_line(k, 32, body, sizeof(body));
    CHECK(!sdp_refused(body));
    b64_line(k, 31, body, sizeof(body));
    CHECK(sdp_refused(body));
    b64_line(k, 33, body, sizeof(body));
    CHECK(sdp_refused(body));
    b64_line(k, 30, body, sizeof(body));
    CHECK(sdp_refused(body));
    b64_line(k, 0, body, sizeof(body));
    CHECK(sdp_refused(body));
    /* Bad base64: a foreign character, an extra pad, non-zero unused bits, no scheme. */
    CHECK(sdp_refused(SDP_HEAD "a=X-ck-secret:base64:QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl!=\r\n"));
    CHECK(sdp_refused(SDP_HEAD "a=X-ck-secret:base64:QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8==\r\n"));
    CHECK(sdp_refused(SDP_HEAD "a=X-ck-secret:base64:QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl9=\r\n"));
    CHECK(sdp_refused(SDP_HEAD "a=X-ck-secret:QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8=\r\n"));
    CHECK(sdp_refused(SDP_HEAD "a=X-ck-secret:base64: QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8=\r\n"));
    CHECK(sdp_refused(SDP_HEAD "a=X-ck-secret:base64:QEFCQ0RFRkdISUpL\nTE1OT1BRUlNUVVZXWFlaW1xdXl8=\r\n"));
    /* SPI: reserved, wrapping, wrong length, not hex. */
    CHECK(sdp_refused(SDP_HEAD "a=X-ck-spi:000000ff\r\n"));
    CHECK(sdp_refused(SDP_HEAD "a=X-ck-spi:00000000\r\n"));
    CHECK(sdp_refused(SDP_HEAD "a=X-ck-spi:ffffffff\r\n"));
    CHECK(sdp_refused(SDP_HEAD "a=X-ck-spi:c0de\r\n"));
    CHECK(sdp_refused(SDP_HEAD "a=X-ck-spi:0000c0de0\r\n"));
    CHECK(sdp_refused(SDP_HEAD "a=X-ck-spi:0x00c0de\r\n"));
    /* ACK of 19 and 21 bytes, not hex. */
    CHECK(sdp_refused(SDP_HEAD "a=X-ck-ack:a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2\r\n"));
    CHECK(sdp_refused(SDP_HEAD "a=X-ck-ack:a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4\r\n"));
    CHECK(sdp_refused(SDP_HEAD "a=X-ck-ack:a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2bg\r\n"));
    /* Unknown media mode, role, suite, option; bad ports. */
    CHECK(sdp_refused(SDP_HEAD "a=X-ck-media:srtp\r\n"));
    CHECK(sdp_refused(SDP_HEAD "a=X-ck-media:SRTP-AES-CM\r\n"));
    CHECK(sdp_refused(SDP_HEAD "a=X-ck-role:both\r\n"));
    CHECK(sdp_refused(SDP_HEAD "a=X-ck-ipsec:sha256-aes256\r\n"));
    CHECK(sdp_refused(SDP_HEAD "a=X-ck-ipsec:sha1-des\r\n")); /* an SNMPv3 suite */
    CHECK(sdp_refused(SDP_HEAD "a=X-ck-ipsec:sha1-aes128 fast\r\n"));
    CHECK(sdp_refused(SDP_HEAD "a=X-ck-ipsec:\r\n"));
    CHECK(sdp_refused(SDP_HEAD "a=X-ck-sig:0\r\n"));
    CHECK(sdp_refused(SDP_HEAD "a=X-ck-sig:65536\r\n"));
    CHECK(sdp_refused(SDP_HEAD "a=X-ck-sig:-1\r\n"));
    /* Duplicates, cablekey's and the base lines. */
    CHECK(sdp_refused(SDP_HEAD "a=X-ck-sig:1\r\na=X-ck-sig:1\r\n"));
    CHECK(sdp_refused(SDP_HEAD "a=X-ck-role:source\r\na=x-ck-role:source\r\n"));
    CHECK(sdp_refused(SDP_HEAD "m=audio 4000 RTP/AVP 0\r\n"));
    CHECK(sdp_refused(SDP_HEAD "c=IN IP4 127.0.0.1\r\n"));
    CHECK(sdp_refused(SDP_HEAD "v=0\r\n"));
    /* Structure: missing v= or m=, v= not first, other line types, bad m=/c=/o=. */
    CHECK(sdp_refused("o=- 1 1 IN IP4 127.0.0.1\r\nv=0\r\nm=audio 4000 RTP/AVP 0\r\n"));
    CHECK(sdp_refused("v=0\r\ns=-\r\n"));
    CHECK(sdp_refused(""));
    CHECK(sdp_refused("v=1\r\nm=audio 4000 RTP/AVP 0\r\n"));
    CHECK(sdp_refused(SDP_HEAD "k=clear:secret\r\n"));
    CHECK(sdp_refused(SDP_HEAD "b=AS:64\r\n"));
    CHECK(sdp_refused(SDP_HEAD "\r\n"));
    CHECK(sdp_refused("v=0\r\nm=audio 0 RTP/AVP 0\r\n"));
    CHECK(sdp_refused("v=0\r\nm=audio 65536 RTP/AVP 0\r\n"));
    CHECK(sdp_refused("v=0\r\nm=video 4000 RTP/AVP 0\r\n"));
    CHECK(sdp_refused("v=0\r\nm=audio 4000 UDP/TLS 0\r\n"));
    CHECK(sdp_refused("v=0\r\nm=audio 4000 RTP/AVP\r\n"));
    CHECK(sdp_refused("v=0\r\nm=audio 4000 RTP/AVP 128\r\n"));
    CHECK(sdp_refused("v=0\r\nm=audio  4000 RTP/AVP 0\r\n"));
    CHECK(sdp_refused("v=0\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP4 127.0.0.300\r\n"));
    CHECK(sdp_refused("v=0\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP4 ::1\r\n"));
    CHECK(sdp_refused("v=0\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP4 host.example.net\r\n"));
    CHECK(sdp_refused("v=0\r\nm=audio 4000 RTP/AVP 0\r\nc=ATM IP4 127.0.0.1\r\n"));
    CHECK(sdp_refused("v=0\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP4 127.0.0.1 x\r\n"));
    CHECK(sdp_refused("v=0\r\nm=audio 4000 RTP/AVP 0\r\no=- 18446744073709551616 1 IN IP4 1.2.3.4\r\n"));
    CHECK(sdp_refused("v=0\r\nm=audio 4000 RTP/AVP 0\r\no=- x 1 IN IP4 1.2.3.4\r\n"));
    CHECK(sdp_refused("v=0\r\nm=audio 4000 RTP/AVP 0\r\na=ptime:20\rx\r\n"));
    CHECK(sdp_refused("v=0\r\nm=audio 4000 RTP/AVP 0\r\n\ta=ptime:20\r\n"));
    {
        struct ck_sdp s;
        static const char nul[] = "v=0\r\nm=audio 4000 RTP/AVP 0\r\na=x\0y\r\n";
        static const char head[] = "v=0\r\nm=audio 4000 RTP/AVP 0\r\na=";
        char big[CK_MGCP_MAX_MSG + 2];

        CHECK_INT_EQ(ck_sdp_parse(nul, sizeof(nul) - 1, &s), CK_ERR_DECODE);
        memset(big, 'a', sizeof(big));
        memcpy(big, head, sizeof(head) - 1);
        CHECK_INT_EQ(ck_sdp_parse(big, sizeof(big), &s), CK_ERR_LIMIT);
        CHECK_INT_EQ(ck_sdp_parse(big, CK_MGCP_MAX_MSG, &s), 0); /* one long foreign a= */
    }
}

static void
test_sdp_build_refusals(void)
{
    struct ck_sdp s;
    char buf[CK_MGCP_MAX_MSG + 1], small[64];
    size_t len;

    full_sdp(&s);
    s.spi = 255;
    CHECK_INT_EQ(ck_sdp_build(&s, buf, sizeof(buf), &len), CK_ERR_INVAL);
    full_sdp(&s);
    s.spi = 0xffffffff;
    CHECK_INT_EQ(ck_sdp_build(&s, buf, sizeof(buf), &len), CK_ERR_INVAL);
    full_sdp(&s);
    s.media_port = 0;
    CHECK_INT_EQ(ck_sdp_build(&s, buf, sizeof(buf), &len), CK_ERR_INVAL);
    full_sdp(&s);
    ck_strlcpy(s.addr, "example.net", sizeof(s.addr));
    CHECK_INT_EQ(ck_sdp_build(&s, buf, sizeof(buf), &len), CK_ERR_INVAL);
    full_sdp(&s);
    s.family = 6; /* an IPv4 address */
    CHECK_INT_EQ(ck_sdp_build(&s, buf, sizeof(buf), &len), CK_ERR_INVAL);
    full_sdp(&s);
    s.media = (enum ck_sdp_media_mode)42;
    CHECK_INT_EQ(ck_sdp_build(&s, buf, sizeof(buf), &len), CK_ERR_INVAL);
    full_sdp(&s);
    s.role = (enum ck_call_ack_role)3;
    CHECK_INT_EQ(ck_sdp_build(&s, buf, sizeof(buf), &len), CK_ERR_INVAL);
    full_sdp(&s);
    s.ipsec_suite.enc = CK_KMM_ENC_RC5;
    CHECK_INT_EQ(ck_sdp_build(&s, buf, sizeof(buf), &len), CK_ERR_INVAL);
    full_sdp(&s);
    s.has_ipsec = false;
    s.compat_seq = true;
    CHECK_INT_EQ(ck_sdp_build(&s, buf, sizeof(buf), &len), CK_ERR_INVAL);
    /* Too small a buffer: refused and nothing of the key left in it. */
    full_sdp(&s);
    CHECK_INT_EQ(ck_sdp_build(&s, small, sizeof(small), &len), CK_ERR_LIMIT);
    for (size_t i = 0; i < sizeof(small); i++)
        CHECK(small[i] == 0);
    CHECK_OK(ck_sdp_build(&s, buf, sizeof(buf), &len));
    CHECK_INT_EQ(ck_sdp_build(&s, buf, len, &len), CK_ERR_LIMIT); /* no room for the NUL */
}

static int
mgcp_refused(const char *msg, int want)
{
    static struct ck_mgcp_msg m;
    int rc;

    rc = parse_str(msg, &m);
    return rc == want;
}

static void
test_mgcp_refusals(void)
{
    char buf[CK_MGCP_MAX_MSG + 64];

    /* First line. */
    CHECK(mgcp_refused("CRCXX 1 aaln/1@a MGCP 1.0\r\n", CK_ERR_DECODE));
    CHECK(mgcp_refused("CRC 1 aaln/1@a MGCP 1.0\r\n", CK_ERR_DECODE));
    CHECK(mgcp_refused("crcx 1 aaln/1@a MGCP 1.0\r\n", CK_ERR_DECODE));
    CHECK(mgcp_refused("CRCX 0 aaln/1@a MGCP 1.0\r\n", CK_ERR_DECODE));
    CHECK(mgcp_refused("CRCX 1000000000 aaln/1@a MGCP 1.0\r\n", CK_ERR_DECODE));
    CHECK(mgcp_refused("CRCX 0000000001 aaln/1@a MGCP 1.0\r\n", CK_ERR_DECODE));
    CHECK(mgcp_refused("CRCX -1 aaln/1@a MGCP 1.0\r\n", CK_ERR_DECODE));
    CHECK(mgcp_refused("CRCX 12a aaln/1@a MGCP 1.0\r\n", CK_ERR_DECODE));
    CHECK(mgcp_refused("CRCX 1 aaln/1@a\r\n", CK_ERR_DECODE));
    CHECK(mgcp_refused("CRCX 1 aaln/1@a MGCP\r\n", CK_ERR_DECODE));
    CHECK(mgcp_refused("CRCX 1 aaln/1@a MGCP 2.0\r\n", CK_ERR_DECODE));
    CHECK(mgcp_refused("CRCX 1 aaln/1@a SGCP 1.0\r\n", CK_ERR_DECODE));
    CHECK(mgcp_refused("CRCX 1 aaln/1@a MGCP 1.0 NCS\r\n", CK_ERR_DECODE));
    CHECK(mgcp_refused("CRCX 1 aaln/1@a MGCP 1.0 NCS 1.0 x\r\n", CK_ERR_DECODE));
    CHECK(mgcp_refused("CRCX 1 aaln/1 MGCP 1.0\r\n", CK_ERR_DECODE));
    CHECK(mgcp_refused("CRCX 1 @a MGCP 1.0\r\n", CK_ERR_DECODE));
    CHECK(mgcp_refused("CRCX 1 aaln/1@ MGCP 1.0\r\n", CK_ERR_DECODE));
    CHECK(mgcp_refused("99 1 OK\r\n", CK_ERR_DECODE));
    CHECK(mgcp_refused("1000 1 OK\r\n", CK_ERR_DECODE));
    CHECK(mgcp_refused("200\r\n", CK_ERR_DECODE));
    CHECK(mgcp_refused("200 0 OK\r\n", CK_ERR_DECODE));
    CHECK(mgcp_refused("\r\nCRCX 1 aaln/1@a MGCP 1.0\r\n", CK_ERR_DECODE));
    /* Lines: missing line end, NUL, bare CR, control characters. */
    CHECK(mgcp_refused("CRCX 1 aaln/1@a MGCP 1.0", CK_ERR_DECODE));
    CHECK(mgcp_refused("CRCX 1 aaln/1@a MGCP 1.0\r\nC: 1", CK_ERR_DECODE));
    CHECK(mgcp_refused("CRCX 1 aaln/1@a MGCP 1.0\rC: 1\r\n", CK_ERR_DECODE));
    CHECK(mgcp_refused("CRCX 1 aaln/1@a MGCP 1.0\r\nC: 1\x01\r\n", CK_ERR_DECODE));
    CHECK(mgcp_refused("CRCX 1 aaln/1@a MGCP 1.0\r\nC: caf\xc3\xa9\r\n", CK_ERR_DECODE));
    CHECK(mgcp_refused("", CK_ERR_DECODE));
    {
        static struct ck_mgcp_msg m;
        static const char nul[] = "CRCX 1 aaln/1@a MGCP 1.0\r\nC: 1\0\r\n";

        CHECK_INT_EQ(ck_mgcp_parse((const uint8_t *)nul, sizeof(nul) - 1, &m), CK_ERR_DECODE);
        CHECK_INT_EQ(ck_mgcp_parse(NULL, 1, &m), CK_ERR_INVAL);
    }
    /* Parameters: duplicate (either case), bad names, no colon. */
    CHECK(mgcp_refused("CRCX 1 aaln/1@a MGCP 1.0\r\nC: 1\r\nC: 2\r\n", CK_ERR_DECODE));
    CHECK(mgcp_refused("CRCX 1 aaln/1@a MGCP 1.0\r\nC: 1\r\nc: 1\r\n", CK_ERR_DECODE));
    CHECK(mgcp_refused("XSET 1 cms@ca MGCP 1.0\r\nX-CK-From: 1\r\nx-ck-from: 1\r\n", CK_ERR_DECODE));
    CHECK(mgcp_refused("CRCX 1 aaln/1@a MGCP 1.0\r\nCallId: 1\r\n", CK_ERR_DECODE));
    CHECK(mgcp_refused("CRCX 1 aaln/1@a MGCP 1.0\r\n: 1\r\n", CK_ERR_DECODE));
    CHECK(mgcp_refused("CRCX 1 aaln/1@a MGCP 1.0\r\nX-: 1\r\n", CK_ERR_DECODE));
    CHECK(mgcp_refused("CRCX 1 aaln/1@a MGCP 1.0\r\nX-a b: 1\r\n", CK_ERR_DECODE));
    CHECK(mgcp_refused("CRCX 1 aaln/1@a MGCP 1.0\r\nX-Very-Long-Name1: 1\r\n", CK_ERR_DECODE));
    CHECK(mgcp_refused("CRCX 1 aaln/1@a MGCP 1.0\r\nC 1\r\n", CK_ERR_DECODE));
    CHECK(mgcp_refused("CRCX 1 aaln/1@a MGCP 1.0\r\n.\r\n", CK_ERR_DECODE));
    /* Limits. */
    {
        size_t o;

        o = (size_t)snprintf(buf, sizeof(buf), "CRCX 1 aaln/1@a MGCP 1.0\r\n");
        for (char c = 'A'; c < 'A' + CK_MGCP_MAX_PARAMS + 1; c++)
            o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%c: 1\r\n", c);
        CHECK(mgcp_refused(buf, CK_ERR_LIMIT));
        o = (size_t)snprintf(buf, sizeof(buf), "CRCX 1 aaln/1@a MGCP 1.0\r\nC: ");
        memset(buf + o, '7', CK_MGCP_MAX_PARAM_VALUE);
        memcpy(buf + o + CK_MGCP_MAX_PARAM_VALUE, "\r\n", 3);
        CHECK(mgcp_refused(buf, CK_ERR_LIMIT));
        buf[o + CK_MGCP_MAX_PARAM_VALUE - 1] = '\r';
        buf[o + CK_MGCP_MAX_PARAM_VALUE] = '\n';
        buf[o + CK_MGCP_MAX_PARAM_VALUE + 1] = '\0';
        CHECK(mgcp_refused(buf, 0)); /* 255 bytes: the largest value */
        o = (size_t)snprintf(buf, sizeof(buf), "CRCX 1 a@");
        memset(buf + o, 'h', CK_MGCP_MAX_ENDPOINT);
        snprintf(buf + o + CK_MGCP_MAX_ENDPOINT - 2, sizeof(buf) - o - CK_MGCP_MAX_ENDPOINT,
                 " MGCP 1.0\r\n");
        CHECK(mgcp_refused(buf, CK_ERR_LIMIT));
        o = (size_t)snprintf(buf, sizeof(buf), "200 1 ");
        memset(buf + o, 'k', CK_MGCP_MAX_COMMENT);
        memcpy(buf + o + CK_MGCP_MAX_COMMENT, "\r\n", 3);
        CHECK(mgcp_refused(buf, CK_ERR_LIMIT));
        /* A whole message one byte over CK_MGCP_MAX_MSG; at the maximum it parses. */
        o = (size_t)snprintf(buf, sizeof(buf), "200 1 OK\r\n\r\n");
        memset(buf + o, 'v', CK_MGCP_MAX_MSG + 1 - o);
        buf[CK_MGCP_MAX_MSG + 1] = '\0';
        CHECK(mgcp_refused(buf, CK_ERR_LIMIT));
        buf[CK_MGCP_MAX_MSG] = '\0';
        CHECK(mgcp_refused(buf, 0));
    }
}

static int roundtrip(const uint8_t *buf, size_t len);

/* Bare LF, tabs and extra spaces between the first line's fields, values trimmed; names match
 * case-insensitively; an empty line with nothing after it is no body. */
static void
test_mgcp_lenient(void)
{
    static struct ck_mgcp_msg m;

    CHECK_OK(parse_str("RQNT\t7  aaln/1@a.example.net MGCP 1.0  NCS 1.0 \n"
                       "x:   0123 \r\n"
                       "x-ck-reason:\thangup\n"
                       "\n",
                       &m));
    CHECK(strcmp(m.verb, "RQNT") == 0);
    CHECK_INT_EQ(m.txid, 7);
    CHECK(strcmp(ck_mgcp_param(&m, "X"), "0123") == 0);
    CHECK(strcmp(ck_mgcp_param(&m, "X-CK-Reason"), "hangup") == 0);
    CHECK(!m.has_sdp);
    CHECK_OK(parse_str("200 000000009   OK  \n", &m));
    CHECK_INT_EQ(m.txid, 9);
    CHECK(strcmp(m.comment, "OK") == 0);
    CHECK_OK(parse_str("CRCX 999999999 a@b MGCP 1.0\n", &m));
    CHECK_INT_EQ(m.txid, CK_MGCP_MAX_TXID);
    CHECK_OK(parse_str("CRCX 1 a@b MGCP 1.0\nE:\n", &m));
    CHECK(strcmp(ck_mgcp_param(&m, "E"), "") == 0);
    /* RFC 3435's two-letter names (EventStates, RestartMethod...). */
    CHECK_OK(parse_str("RSIP 5 aaln/1@a MGCP 1.0\r\nRM: restart\r\nRD: 0\r\n", &m));
    CHECK(strcmp(ck_mgcp_param(&m, "rm"), "restart") == 0);
    CHECK(ck_mgcp_param(&m, "R") == NULL);
    CHECK(ck_mgcp_param(NULL, "R") == NULL);
    /* The largest endpoint name and parameter count. */
    {
        char buf[512];
        size_t o = (size_t)snprintf(buf, sizeof(buf), "CRCX 1 a@");

        memset(buf + o, 'h', CK_MGCP_MAX_ENDPOINT - 3);
        o += CK_MGCP_MAX_ENDPOINT - 3;
        o += (size_t)snprintf(buf + o, sizeof(buf) - o, " MGCP 1.0\r\n");
        for (char c = 'A'; c < 'A' + CK_MGCP_MAX_PARAMS; c++)
            o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%c: 1\r\n", c);
        CHECK_OK(parse_str(buf, &m));
        CHECK_INT_EQ(strlen(m.endpoint), CK_MGCP_MAX_ENDPOINT - 1);
        CHECK_INT_EQ(m.n_params, CK_MGCP_MAX_PARAMS);
        CHECK_OK(roundtrip((const uint8_t *)buf, strlen(buf)));
    }
}

static int
roundtrip(const uint8_t *buf, size_t len)
{
    static struct ck_mgcp_msg a, b;
    ck_writer w;
    uint8_t *out;
    size_t n;
    int rc, ok;

    if ((rc = ck_mgcp_parse(buf, len, &a)) != 0)
        return rc;
    ck_writer_init(&w, CK_MGCP_MAX_MSG, true);
    if (a.is_response)
        rc = ck_mgcp_build_response(a.code, a.txid, a.comment, a.params, a.n_params,
                                    a.has_sdp ? a.sdp : NULL, &w);
    else
        rc = ck_mgcp_build_command(a.verb, a.txid, a.endpoint, a.params, a.n_params,
                                   a.has_sdp ? a.sdp : NULL, &w);
    if (rc != 0) {
        ck_writer_free(&w);
        return rc;
    }
    out = ck_writer_take(&w, &n);
    rc = ck_mgcp_parse(out, n, &b);
    ok = rc == 0 && memcmp(&a, &b, sizeof(a)) == 0;
    ck_free_secret(out, n);
    return ok ? 0 : -100;
}

/* The messages of one call (docs/PROTOCOL.md "Call signaling"), built with the builders, each
 * parsed back to the same struct, the SDP to the same ck_sdp. */
static void
test_call_flow_roundtrip(void)
{
    struct ck_mgcp_param p[4];
    struct ck_sdp s, t;
    static struct ck_mgcp_msg m;
    char sdp[CK_MGCP_MAX_MSG + 1], dial[2 * CK_MGCP_MAX_DIGITS];
    ck_writer w;
    uint8_t *out;
    size_t n, len;
    enum ck_mgcp_event ev;
    char digits[CK_MGCP_MAX_DIGITS + 1];

    memset(p, 0, sizeof(p));
    ck_strlcpy(p[0].name, "C", sizeof(p[0].name));
    ck_strlcpy(p[0].value, "0123456789abcdef0123456789abcdef", sizeof(p[0].value));
    ck_strlcpy(p[1].name, "X-CK-From", sizeof(p[1].name));
    ck_strlcpy(p[1].value, "5551001", sizeof(p[1].value));
    ck_strlcpy(p[2].name, "X-CK-To", sizeof(p[2].name));
    ck_strlcpy(p[2].value, "5552001", sizeof(p[2].value));
    full_sdp(&s);
    s.role = 0;
    CHECK_OK(ck_sdp_build(&s, sdp, sizeof(sdp), &len));

    ck_writer_init(&w, CK_MGCP_MAX_MSG, true);
    CHECK_OK(ck_mgcp_build_command("XSET", 4711, "cms@ca.example.net", p, 3, sdp, &w));
    out = ck_writer_take(&w, &n);
    {
        static const char head[] = "XSET 4711 cms@ca.example.net MGCP 1.0 NCS 1.0\r\n"
                                   "C: 0123456789abcdef0123456789abcdef\r\n"
                                   "X-CK-From: 5551001\r\nX-CK-To: 5552001\r\n\r\nv=0\r\n";

        CHECK(n > sizeof(head) && memcmp(out, head, sizeof(head) - 1) == 0);
    }
    CHECK_OK(roundtrip(out, n));
    CHECK_OK(ck_mgcp_parse(out, n, &m));
    CHECK(m.has_sdp && m.sdp_len == len && strcmp(m.sdp, sdp) == 0);
    CHECK_OK(ck_sdp_parse(m.sdp, m.sdp_len, &t));
    CHECK(memcmp(&s, &t, sizeof(s)) == 0);
    ck_free_secret(out, n);

    /* NTFY with dialled digits; 200 with an SDP; 533; 250; DLCX with a reason. */
    CHECK_OK(ck_mgcp_format_digits("5552001", dial, sizeof(dial)));
    CHECK(strcmp(dial, "5,5,5,2,0,0,1") == 0);
    ck_strlcpy(p[0].name, "X", sizeof(p[0].name));
    ck_strlcpy(p[0].value, "1a", sizeof(p[0].value));
    ck_strlcpy(p[1].name, "O", sizeof(p[1].name));
    ck_strlcpy(p[1].value, dial, sizeof(p[1].value));
    ck_writer_init(&w, CK_MGCP_MAX_MSG, false);
    CHECK_OK(ck_mgcp_build_command("NTFY", 1, "aaln/1@a.example.net", p, 2, NULL, &w));
    CHECK_OK(ck_mgcp_build_response(200, 1, "OK", NULL, 0, sdp, &w));
    CHECK_OK(ck_mgcp_build_response(533, 2, "SPI in use", NULL, 0, NULL, &w));
    CHECK_OK(ck_mgcp_build_response(250, 3, NULL, NULL, 0, "", &w));
    out = ck_writer_take(&w, &n);
    {
        const char *first_end = strstr((const char *)out, "\r\n200 1 OK\r\n");
        size_t l1;

        CHECK(first_end != NULL);
        if (first_end != NULL) {
            l1 = (size_t)(first_end - (const char *)out) + 2;
            CHECK_OK(roundtrip(out, l1));
            CHECK_OK(ck_mgcp_parse(out, l1, &m));
            CHECK_OK(ck_mgcp_parse_observed(ck_mgcp_param(&m, "o"), &ev, digits, sizeof(digits)));
            CHECK_INT_EQ(ev, CK_MGCP_EV_DIGITS);
            CHECK(strcmp(digits, "5552001") == 0);
        }
    }
    CHECK(strstr((const char *)out, "533 2 SPI in use\r\n250 3\r\n") != NULL);
    free(out);
}

static void
test_build_refusals(void)
{
    struct ck_mgcp_param p[CK_MGCP_MAX_PARAMS + 1];
    ck_writer w;
    char big[CK_MGCP_MAX_MSG + 1];

    memset(p, 0, sizeof(p));
    ck_writer_init(&w, CK_MGCP_MAX_MSG, false);
    CHECK_INT_EQ(ck_mgcp_build_command("CRCXX", 1, "a@b", NULL, 0, NULL, &w), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_mgcp_build_command("Crcx", 1, "a@b", NULL, 0, NULL, &w), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_mgcp_build_command("CRCX", 0, "a@b", NULL, 0, NULL, &w), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_mgcp_build_command("CRCX", 1000000000, "a@b", NULL, 0, NULL, &w), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_mgcp_build_command("CRCX", 1, "ab", NULL, 0, NULL, &w), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_mgcp_build_command("CRCX", 1, "a@b c", NULL, 0, NULL, &w), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_mgcp_build_command("CRCX", 1, "a@b", NULL, 1, NULL, &w), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_mgcp_build_response(99, 1, "OK", NULL, 0, NULL, &w), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_mgcp_build_response(200, 1, "OK\r\nC: 1", NULL, 0, NULL, &w), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_mgcp_build_response(200, 1, " OK", NULL, 0, NULL, &w), CK_ERR_INVAL);
    /* Header injection through a value, a bad name, duplicates, too many. */
    ck_strlcpy(p[0].name, "C", sizeof(p[0].name));
    ck_strlcpy(p[0].value, "1\r\nM: sendrecv", sizeof(p[0].value));
    CHECK_INT_EQ(ck_mgcp_build_command("CRCX", 1, "a@b", p, 1, NULL, &w), CK_ERR_INVAL);
    ck_strlcpy(p[0].value, "1 ", sizeof(p[0].value));
    CHECK_INT_EQ(ck_mgcp_build_command("CRCX", 1, "a@b", p, 1, NULL, &w), CK_ERR_INVAL);
    ck_strlcpy(p[0].value, "1", sizeof(p[0].value));
    ck_strlcpy(p[1].name, "c", sizeof(p[1].name));
    ck_strlcpy(p[1].value, "2", sizeof(p[1].value));
    CHECK_INT_EQ(ck_mgcp_build_command("CRCX", 1, "a@b", p, 2, NULL, &w), CK_ERR_INVAL);
    ck_strlcpy(p[1].name, "C:", sizeof(p[1].name));
    CHECK_INT_EQ(ck_mgcp_build_command("CRCX", 1, "a@b", p, 2, NULL, &w), CK_ERR_INVAL);
    for (int i = 0; i < CK_MGCP_MAX_PARAMS + 1; i++) {
        snprintf(p[i].name, sizeof(p[i].name), "X-P%d", i);
        ck_strlcpy(p[i].value, "v", sizeof(p[i].value));
    }
    CHECK_OK(ck_mgcp_build_command("CRCX", 1, "a@b", p, CK_MGCP_MAX_PARAMS, NULL, &w));
    CHECK_INT_EQ(ck_mgcp_build_command("CRCX", 1, "a@b", p, CK_MGCP_MAX_PARAMS + 1, NULL, &w),
                 CK_ERR_INVAL);
    /* Past CK_MGCP_MAX_MSG: refused, the writer keeps what it had. */
    {
        size_t before = w.len;

        memset(big, 'a', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        CHECK_INT_EQ(ck_mgcp_build_command("CRCX", 1, "a@b", NULL, 0, big, &w), CK_ERR_LIMIT);
        CHECK_INT_EQ(w.len, before);
    }
    ck_writer_free(&w);
    /* The writer's own maximum. */
    ck_writer_init(&w, 10, false);
    CHECK_INT_EQ(ck_mgcp_build_response(200, 1, "OK", NULL, 0, NULL, &w), 0);
    CHECK_INT_EQ(ck_mgcp_build_response(200, 1, "OK", NULL, 0, NULL, &w), CK_ERR_LIMIT);
    ck_writer_free(&w);
}

static void
test_observed(void)
{
    enum ck_mgcp_event ev;
    char d[CK_MGCP_MAX_DIGITS + 1], small[4], list[2 * CK_MGCP_MAX_DIGITS];

    CHECK_OK(ck_mgcp_parse_observed("hd", &ev, d, sizeof(d)));
    CHECK_INT_EQ(ev, CK_MGCP_EV_OFFHOOK);
    CHECK_OK(ck_mgcp_parse_observed("hu", &ev, NULL, 0));
    CHECK_INT_EQ(ev, CK_MGCP_EV_ONHOOK);
    CHECK_OK(ck_mgcp_parse_observed("L/hu", &ev, NULL, 0));
    CHECK_INT_EQ(ev, CK_MGCP_EV_ONHOOK);
    CHECK_OK(ck_mgcp_parse_observed("5,5,5,2,0,0,1", &ev, d, sizeof(d)));
    CHECK_INT_EQ(ev, CK_MGCP_EV_DIGITS);
    CHECK(strcmp(d, "5552001") == 0);
    CHECK_OK(ck_mgcp_parse_observed("D/9, D/1,d/*,#", &ev, d, sizeof(d)));
    CHECK(strcmp(d, "91*#") == 0);
    CHECK_OK(ck_mgcp_parse_observed("1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9,0,1,2",
                                    &ev, d, sizeof(d)));
    CHECK_INT_EQ(strlen(d), CK_MGCP_MAX_DIGITS);
    CHECK_INT_EQ(ck_mgcp_parse_observed("1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9,0,1,2,3",
                                        &ev, d, sizeof(d)),
                 CK_ERR_LIMIT);
    CHECK_INT_EQ(ck_mgcp_parse_observed("1,2,3,4", &ev, small, sizeof(small)), CK_ERR_LIMIT);
    CHECK_INT_EQ(ck_mgcp_parse_observed("", &ev, d, sizeof(d)), CK_ERR_DECODE);
    CHECK_INT_EQ(ck_mgcp_parse_observed("55", &ev, d, sizeof(d)), CK_ERR_DECODE);
    CHECK_INT_EQ(ck_mgcp_parse_observed("5,,5", &ev, d, sizeof(d)), CK_ERR_DECODE);
    CHECK_INT_EQ(ck_mgcp_parse_observed("5,", &ev, d, sizeof(d)), CK_ERR_DECODE);
    CHECK_INT_EQ(ck_mgcp_parse_observed("5,a", &ev, d, sizeof(d)), CK_ERR_DECODE);
    CHECK_INT_EQ(ck_mgcp_parse_observed("hf", &ev, d, sizeof(d)), CK_ERR_DECODE);
    CHECK_OK(ck_mgcp_format_digits("*69#", list, sizeof(list)));
    CHECK(strcmp(list, "*,6,9,#") == 0);
    CHECK_OK(ck_mgcp_format_digits("5", list, 2));
    CHECK_INT_EQ(ck_mgcp_format_digits("55", list, 3), CK_ERR_LIMIT);
    CHECK_INT_EQ(ck_mgcp_format_digits("", list, sizeof(list)), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_mgcp_format_digits("555-1001", list, sizeof(list)), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_mgcp_format_digits("123456789012345678901234567890123", list, sizeof(list)),
                 CK_ERR_INVAL);
}

/* The clear functions leave nothing of the key. */
static void
test_clear(void)
{
    static struct ck_mgcp_msg m;
    static const uint8_t zero[sizeof(struct ck_mgcp_msg)];
    struct ck_sdp s;
    static const struct ck_sdp zs;
    char sdp[CK_MGCP_MAX_MSG];
    size_t len;

    full_sdp(&s);
    CHECK_OK(ck_sdp_build(&s, sdp, sizeof(sdp), &len));
    ck_sdp_clear(&s);
    CHECK(memcmp(&s, &zs, sizeof(s)) == 0);
    ck_sdp_clear(NULL);
    memcpy(m.sdp, sdp, len);
    m.has_sdp = true;
    ck_mgcp_msg_clear(&m);
    CHECK(memcmp(&m, zero, sizeof(m)) == 0);
    ck_mgcp_msg_clear(NULL);
    /* A refused message is wiped too, the body with the key included. */
    {
        char msg[CK_MGCP_MAX_MSG + 64];
        int n = snprintf(msg, sizeof(msg), "200 1 OK\r\nC: 1\r\nC: 1\r\n\r\n%s", sdp);

        memset(&m, 0x5a, sizeof(m));
        CHECK_INT_EQ(ck_mgcp_parse((const uint8_t *)msg, (size_t)n, &m), CK_ERR_DECODE);
        CHECK(memcmp(&m, zero, sizeof(m)) == 0);
    }
}

CK_TEST_MAIN("mgcp", CK_TEST_CASE(test_rfc3435_crcx), CK_TEST_CASE(test_rfc3435_crcx_response),
             CK_TEST_CASE(test_rfc3435_mdcx), CK_TEST_CASE(test_rfc3435_ntfy_dlcx),
             CK_TEST_CASE(test_sdp_attributes), CK_TEST_CASE(test_sdp_refusals),
             CK_TEST_CASE(test_sdp_build_refusals), CK_TEST_CASE(test_mgcp_refusals),
             CK_TEST_CASE(test_mgcp_lenient), CK_TEST_CASE(test_call_flow_roundtrip),
             CK_TEST_CASE(test_build_refusals), CK_TEST_CASE(test_observed),
             CK_TEST_CASE(test_clear))
