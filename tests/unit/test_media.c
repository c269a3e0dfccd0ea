/* lib/media: SRTP AES-CM/HMAC-SHA1-80 output checked against an independent computation on
 * OpenSSL (RFC 3711 §4.3 key derivation, checked with the RFC's Appendix B.3 vector, §4.1.1
 * AES-CM, §4.2 HMAC-SHA1 over header, ciphertext and ROC); round trips of both profiles; replay,
 * forged tag, wrong key, malformed packets refused and counted; RTP parser refusals; G.711
 * µ-law table values and round trips. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "cablekey/media.h"
#include "cablekey/util.h"
#include "ck_test.h"

static const uint8_t mkey[16] = {0xe1, 0xf9, 0x7a, 0x0d, 0x3e, 0x01, 0x8b, 0xe0,
                                 0xd6, 0x4f, 0xa3, 0x2c, 0x06, 0xde, 0x41, 0x39};
static const uint8_t msalt[14] = {0x0e, 0xc6, 0x75, 0xad, 0x49, 0x8a, 0xfe,
                                  0xeb, 0xb6, 0x96, 0x0b, 0x3a, 0xab, 0xe6};

/* AES-128 in counter mode from a 16-byte initial block, as SRTP uses it. */
static void
aes_ctr(const uint8_t key[16], const uint8_t iv[16], const uint8_t *in, size_t n, uint8_t *out)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int l1 = 0, l2 = 0;

    if (c == NULL || EVP_EncryptInit_ex(c, EVP_aes_128_ctr(), NULL, key, iv) != 1 ||
        EVP_EncryptUpdate(c, out, &l1, in, (int)n) != 1 || EVP_EncryptFinal_ex(c, out + l1, &l2) != 1)
        abort();
    EVP_CIPHER_CTX_free(c);
}

/* RFC 3711 §4.3.1 with key_derivation_rate 0: x = label at byte 7 XOR the master salt, and the
 * PRF is AES-CM keystream from x * 2^16. */
static void
srtp_kdf(uint8_t label, uint8_t *out, size_t n)
{
    uint8_t iv[16] = {0}, zero[32] = {0};

    memcpy(iv, msalt, 14);
    iv[7] ^= label;
    aes_ctr(mkey, iv, zero, n, out);
}

static void
test_kdf_rfc3711_b3(void)
{
    uint8_t ck[16], cs[14], ak[20];
    size_t l1, l2, l3;
    uint8_t *e_ck = ck_test_hex("C61E7A93744F39EE10734AFE3FF7A087", &l1);
    uint8_t *e_cs = ck_test_hex("30CBBC08863D8C85D49DB34A9AE1", &l2);
    uint8_t *e_ak = ck_test_hex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4", &l3);

    srtp_kdf(0, ck, sizeof(ck));
    srtp_kdf(2, cs, sizeof(cs));
    srtp_kdf(1, ak, sizeof(ak));
    CHECK_MEM_EQ(ck, sizeof(ck), e_ck, l1);
    CHECK_MEM_EQ(cs, sizeof(cs), e_cs, l2);
    CHECK_MEM_EQ(ak, sizeof(ak), e_ak, l3);
    free(e_ck);
    free(e_cs);
    free(e_ak);
}

static size_t
make_rtp(uint16_t seq, uint32_t ssrc, const uint8_t *payload, size_t n, uint8_t *buf, size_t cap)
{
    struct ck_rtp_header h = {.payload_type = CK_RTP_PT_PCMU, .seq = seq,
                              .timestamp = 160u * seq, .ssrc = ssrc};
    ck_writer w;
    uint8_t *p;
    size_t len = 0;

    ck_writer_init(&w, CK_RTP_MAX_PACKET, false);
    if (ck_rtp_build(&h, payload, n, 0, &w) != 0)
        abort();
    p = ck_writer_take(&w, &len);
    if (p == NULL || len > cap)
        abort();
    memcpy(buf, p, len);
    free(p);
    return len;
}

static void
frame(uint8_t seed, uint8_t out[160])
{
    for (int i = 0; i < 160; i++)
        out[i] = (uint8_t)(seed * 31 + i * 7);
}

/* libsrtp2's packet equals header || AES-CM(payload) || HMAC-SHA1-80(header || ciphertext ||
 * ROC) computed here from the RFC's formulas alone. */
static void
test_aes_cm_cross_check(void)
{
    uint8_t ck[16], cs[14], ak[20], iv[16] = {0}, pay[160], buf[CK_RTP_MAX_PACKET + CK_SRTP_TRAILER_ROOM];
    uint8_t expect[12 + 160 + 14], mac[20];
    const uint16_t seq = 0x1234;
    const uint32_t ssrc = 0xdecafbad;
    unsigned int maclen = 0;
    ck_srtp *tx = NULL;
    size_t len;

    srtp_kdf(0, ck, sizeof(ck));
    srtp_kdf(2, cs, sizeof(cs));
    srtp_kdf(1, ak, sizeof(ak));
    frame(5, pay);
    len = make_rtp(seq, ssrc, pay, sizeof(pay), buf, sizeof(buf));
    CHECK_INT_EQ(len, 172);

    /* IV = salt * 2^16 XOR SSRC * 2^64 XOR index * 2^16, index = ROC (0) * 2^16 + SEQ. */
    memcpy(iv, cs, 14);
    iv[4] ^= (uint8_t)(ssrc >> 24);
    iv[5] ^= (uint8_t)(ssrc >> 16);
    iv[6] ^= (uint8_t)(ssrc >> 8);
    iv[7] ^= (uint8_t)ssrc;
    iv[12] ^= (uint8_t)(seq >> 8);
    iv[13] ^= (uint8_t)seq;
    memcpy(expect, buf, 12);
    aes_ctr(ck, iv, pay, sizeof(pay), expect + 12);
    memset(expect + 172, 0, 4); /* ROC, authenticated but not sent */
    if (HMAC(EVP_sha1(), ak, sizeof(ak), expect, 176, mac, &maclen) == NULL)
        abort();
    memcpy(expect + 172, mac, 10);

    CHECK_OK(ck_srtp_new(CK_SRTP_AES128_CM_HMAC_SHA1_80, CK_SRTP_SEND, mkey, 16, msalt, 14, &tx));
    CHECK_OK(ck_srtp_protect(tx, buf, &len, sizeof(buf)));
    CHECK_MEM_EQ(buf, len, expect, (size_t)182);
    ck_srtp_free(tx);
}

struct profile_case {
    enum ck_srtp_profile p;
    size_t salt_len, tag_len;
};

static const struct profile_case profiles[] = {
    {CK_SRTP_AES128_CM_HMAC_SHA1_80, CK_SRTP_AES_CM_SALT_LEN, 10},
    {CK_SRTP_AEAD_AES_128_GCM, CK_SRTP_GCM_SALT_LEN, 16},
};

static void
pair(const struct profile_case *pc, ck_srtp **tx, ck_srtp **rx)
{
    CHECK_OK(ck_srtp_new(pc->p, CK_SRTP_SEND, mkey, 16, msalt, pc->salt_len, tx));
    CHECK_OK(ck_srtp_new(pc->p, CK_SRTP_RECV, mkey, 16, msalt, pc->salt_len, rx));
    if (*tx == NULL || *rx == NULL)
        abort();
}

static void
test_round_trip_and_replay(void)
{
    for (size_t k = 0; k < sizeof(profiles) / sizeof(profiles[0]); k++) {
        uint8_t pay[160], buf[CK_RTP_MAX_PACKET + CK_SRTP_TRAILER_ROOM], saved[400];
        ck_srtp *tx = NULL, *rx = NULL;
        struct ck_srtp_stats st;
        struct ck_rtp_packet pkt;
        size_t len, saved_len = 0;

        pair(&profiles[k], &tx, &rx);
        for (uint16_t seq = 1; seq <= 50; seq++) {
            frame((uint8_t)seq, pay);
            len = make_rtp(seq, 0x11223344, pay, sizeof(pay), buf, sizeof(buf));
            CHECK_OK(ck_srtp_protect(tx, buf, &len, sizeof(buf)));
            CHECK_INT_EQ(len, 172 + profiles[k].tag_len);
            /* No plaintext audio on the wire. */
            CHECK(memcmp(buf + 12, pay, sizeof(pay)) != 0);
            if (seq == 10) {
                memcpy(saved, buf, len);
                saved_len = len;
            }
            CHECK_OK(ck_srtp_unprotect(rx, buf, &len));
            CHECK_INT_EQ(len, 172);
            CHECK_OK(ck_rtp_parse(buf, len, &pkt));
            CHECK_INT_EQ(pkt.hdr.seq, seq);
            CHECK_MEM_EQ(pkt.payload, pkt.payload_len, pay, sizeof(pay));
        }
        /* Replay of an accepted packet. */
        len = saved_len;
        CHECK_INT_EQ(ck_srtp_unprotect(rx, saved, &len), CK_ERR_REPLAY);
        /* A sender never reuses a sequence number. */
        len = make_rtp(50, 0x11223344, pay, sizeof(pay), buf, sizeof(buf));
        CHECK_INT_EQ(ck_srtp_protect(tx, buf, &len, sizeof(buf)), CK_ERR_REPLAY);
        ck_srtp_get_stats(rx, &st);
        CHECK_INT_EQ(st.packets, 50);
        CHECK_INT_EQ(st.replayed, 1);
        CHECK_INT_EQ(st.bad_auth, 0);
        ck_srtp_free(tx);
        ck_srtp_free(rx);
    }
}

static void
test_tamper_and_wrong_key(void)
{
    for (size_t k = 0; k < sizeof(profiles) / sizeof(profiles[0]); k++) {
        uint8_t pay[160], buf[CK_RTP_MAX_PACKET + CK_SRTP_TRAILER_ROOM], orig[400], other[16];
        ck_srtp *tx = NULL, *rx = NULL, *rx2 = NULL;
        struct ck_srtp_stats st;
        size_t len, olen;

        pair(&profiles[k], &tx, &rx);
        frame(9, pay);
        len = make_rtp(7, 0xabcdef01, pay, sizeof(pay), buf, sizeof(buf));
        CHECK_OK(ck_srtp_protect(tx, buf, &len, sizeof(buf)));
        memcpy(orig, buf, len);
        olen = len;

        buf[len - 1] ^= 0x01; /* tag */
        CHECK_INT_EQ(ck_srtp_unprotect(rx, buf, &len), CK_ERR_INTEGRITY);
        memcpy(buf, orig, olen);
        len = olen;
        buf[20] ^= 0x80; /* ciphertext */
        CHECK_INT_EQ(ck_srtp_unprotect(rx, buf, &len), CK_ERR_INTEGRITY);
        memcpy(buf, orig, olen);
        len = olen;
        buf[3] ^= 0x01; /* sequence number in the authenticated header */
        CHECK_INT_EQ(ck_srtp_unprotect(rx, buf, &len), CK_ERR_INTEGRITY);
        memcpy(buf, orig, olen);
        len = olen - profiles[k].tag_len + 2; /* truncated tag */
        CHECK_INT_EQ(ck_srtp_unprotect(rx, buf, &len), CK_ERR_INTEGRITY);

        /* Another master key. */
        memcpy(other, mkey, 16);
        other[0] ^= 1;
        CHECK_OK(ck_srtp_new(profiles[k].p, CK_SRTP_RECV, other, 16, msalt, profiles[k].salt_len,
                             &rx2));
        memcpy(buf, orig, olen);
        len = olen;
        CHECK_INT_EQ(ck_srtp_unprotect(rx2, buf, &len), CK_ERR_INTEGRITY);

        /* The refusals left the window alone: the genuine packet is still accepted once. */
        memcpy(buf, orig, olen);
        len = olen;
        CHECK_OK(ck_srtp_unprotect(rx, buf, &len));
        CHECK_MEM_EQ(buf + 12, len - 12, pay, sizeof(pay));
        ck_srtp_get_stats(rx, &st);
        CHECK_INT_EQ(st.bad_auth, 4);
        CHECK_INT_EQ(st.packets, 1);
        ck_srtp_free(tx);
        ck_srtp_free(rx);
        ck_srtp_free(rx2);
    }
}

static void
test_srtp_refusals(void)
{
    uint8_t buf[CK_RTP_MAX_PACKET + CK_SRTP_TRAILER_ROOM] = {0}, pay[160] = {0};
    ck_srtp *tx = NULL, *rx = NULL;
    size_t len;

    CHECK_INT_EQ(ck_srtp_new(CK_SRTP_AES128_CM_HMAC_SHA1_80, CK_SRTP_SEND, mkey, 16, msalt, 12, &tx),
                 CK_ERR_INVAL);
    CHECK(tx == NULL);
    CHECK_INT_EQ(ck_srtp_new(CK_SRTP_AEAD_AES_128_GCM, CK_SRTP_SEND, mkey, 15, msalt, 12, &tx),
                 CK_ERR_INVAL);
    CHECK_INT_EQ(ck_srtp_new((enum ck_srtp_profile)9, CK_SRTP_SEND, mkey, 16, msalt, 14, &tx),
                 CK_ERR_UNSUPPORTED);
    pair(&profiles[0], &tx, &rx);
    len = make_rtp(1, 1, pay, sizeof(pay), buf, sizeof(buf));
    CHECK_INT_EQ(ck_srtp_protect(tx, buf, &len, len + 10), CK_ERR_INVAL);   /* no room */
    CHECK_INT_EQ(ck_srtp_protect(rx, buf, &len, sizeof(buf)), CK_ERR_INVAL); /* wrong direction */
    CHECK_INT_EQ(ck_srtp_unprotect(tx, buf, &len), CK_ERR_INVAL);
    len = 11;
    CHECK_INT_EQ(ck_srtp_unprotect(rx, buf, &len), CK_ERR_DECODE);
    len = 100;
    buf[0] = 0x8f; /* 15 CSRCs = 72 bytes, then nothing: fine; claim an extension past the end */
    buf[0] = 0x90;
    buf[12] = 0;
    buf[13] = 0;
    buf[14] = 0xff;
    buf[15] = 0xff;
    CHECK_INT_EQ(ck_srtp_unprotect(rx, buf, &len), CK_ERR_DECODE);
    len = CK_RTP_MAX_PACKET + 17;
    CHECK_INT_EQ(ck_srtp_unprotect(rx, buf, &len), CK_ERR_LIMIT);
    {
        struct ck_srtp_stats st;

        ck_srtp_get_stats(rx, &st);
        CHECK_INT_EQ(st.malformed, 3);
    }
    ck_srtp_free(tx);
    ck_srtp_free(rx);
    ck_srtp_free(NULL);
}

static void
test_rtp_build_parse(void)
{
    static const uint8_t ext[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    uint8_t pay[3] = {0xaa, 0xbb, 0xcc};
    struct ck_rtp_header h = {.marker = true, .payload_type = 96, .seq = 0xfffe,
                              .timestamp = 0x01020304, .ssrc = 0x05060708, .csrc_count = 2,
                              .csrc = {0x11111111, 0x22222222}, .has_ext = true,
                              .ext_profile = 0xbede, .ext_data = ext, .ext_len = 8};
    struct ck_rtp_packet p;
    ck_writer w;
    uint8_t *buf;
    size_t len = 0;
    size_t ehl;
    uint8_t *expect = ck_test_hex("b2e0fffe 01020304 05060708 11111111 22222222 bede0002"
                                  "0102030405060708 aabbcc 00000004", &ehl);

    ck_writer_init(&w, CK_RTP_MAX_PACKET, false);
    CHECK_OK(ck_rtp_build(&h, pay, sizeof(pay), 4, &w));
    buf = ck_writer_take(&w, &len);
    CHECK_MEM_EQ(buf, len, expect, ehl);
    CHECK_OK(ck_rtp_parse(buf, len, &p));
    CHECK(p.hdr.marker);
    CHECK_INT_EQ(p.hdr.payload_type, 96);
    CHECK_INT_EQ(p.hdr.seq, 0xfffe);
    CHECK_INT_EQ(p.hdr.timestamp, 0x01020304);
    CHECK_INT_EQ(p.hdr.ssrc, 0x05060708);
    CHECK_INT_EQ(p.hdr.csrc_count, 2);
    CHECK_INT_EQ(p.hdr.csrc[1], 0x22222222);
    CHECK(p.hdr.has_ext);
    CHECK_INT_EQ(p.hdr.ext_profile, 0xbede);
    CHECK_MEM_EQ(p.hdr.ext_data, p.hdr.ext_len, ext, sizeof(ext));
    CHECK_MEM_EQ(p.payload, p.payload_len, pay, sizeof(pay));
    CHECK_INT_EQ(p.padding_len, 4);

    /* Refusals: every truncation, wrong version, zero or oversized padding, length limit. */
    for (size_t n = 0; n < 12 + 8 + 4 + 8; n++)
        CHECK_INT_EQ(ck_rtp_parse(buf, n, &p), CK_ERR_DECODE);
    buf[0] = 0x72; /* version 1 */
    CHECK_INT_EQ(ck_rtp_parse(buf, len, &p), CK_ERR_DECODE);
    buf[0] = 0xb2;
    buf[len - 1] = 0;
    CHECK_INT_EQ(ck_rtp_parse(buf, len, &p), CK_ERR_DECODE);
    buf[len - 1] = 8; /* 7 bytes follow the header */
    CHECK_INT_EQ(ck_rtp_parse(buf, len, &p), CK_ERR_DECODE);
    buf[len - 1] = 7; /* exactly what follows: empty payload */
    CHECK_OK(ck_rtp_parse(buf, len, &p));
    CHECK_INT_EQ(p.payload_len, 0);
    CHECK(p.hdr.seq == 0xfffe);
    buf[len - 1] = 4;
    {
        uint8_t big[CK_RTP_MAX_PACKET + 1] = {0x80};

        CHECK_OK(ck_rtp_parse(big, CK_RTP_MAX_PACKET, &p));
        CHECK_INT_EQ(ck_rtp_parse(big, sizeof(big), &p), CK_ERR_LIMIT);
        CHECK_INT_EQ(p.payload_len, 0);
    }
    free(buf);
    free(expect);

    /* Builder refusals. */
    ck_writer_init(&w, CK_RTP_MAX_PACKET, false);
    h.payload_type = 128;
    CHECK_INT_EQ(ck_rtp_build(&h, pay, sizeof(pay), 0, &w), CK_ERR_INVAL);
    h.payload_type = 0;
    h.csrc_count = 16;
    CHECK_INT_EQ(ck_rtp_build(&h, pay, sizeof(pay), 0, &w), CK_ERR_INVAL);
    h.csrc_count = 0;
    h.ext_len = 6;
    CHECK_INT_EQ(ck_rtp_build(&h, pay, sizeof(pay), 0, &w), CK_ERR_INVAL);
    h.has_ext = false;
    {
        static uint8_t huge[CK_RTP_MAX_PACKET];

        CHECK_INT_EQ(ck_rtp_build(&h, huge, sizeof(huge) - 12, 1, &w), CK_ERR_LIMIT);
        CHECK_OK(ck_rtp_build(&h, huge, sizeof(huge) - 12, 0, &w));
    }
    ck_writer_free(&w);
    ck_writer_init(&w, 20, false);
    CHECK_INT_EQ(ck_rtp_build(&h, pay, 9, 0, &w), CK_ERR_LIMIT);
    ck_writer_free(&w);
}

static void
test_ulaw(void)
{
    /* ITU-T G.711 µ-law values (16-bit scale): decision points and reconstruction levels. */
    CHECK_INT_EQ(ck_ulaw_encode(0), 0xff);
    CHECK_INT_EQ(ck_ulaw_encode(-32124), 0x00);
    CHECK_INT_EQ(ck_ulaw_encode(32124), 0x80);
    CHECK_INT_EQ(ck_ulaw_encode(32767), 0x80);
    CHECK_INT_EQ(ck_ulaw_encode(-32768), 0x00);
    CHECK_INT_EQ(ck_ulaw_encode(-1), 0x7f);
    CHECK_INT_EQ(ck_ulaw_encode(4), 0xfe);
    CHECK_INT_EQ(ck_ulaw_encode(3), 0xff);
    CHECK_INT_EQ(ck_ulaw_encode(-3), 0x7f);
    CHECK_INT_EQ(ck_ulaw_encode(-4), 0x7e);
    CHECK_INT_EQ(ck_ulaw_encode(1000), 0xce);
    CHECK_INT_EQ(ck_ulaw_decode(0xff), 0);
    CHECK_INT_EQ(ck_ulaw_decode(0x7f), 0);
    CHECK_INT_EQ(ck_ulaw_decode(0x00), -32124);
    CHECK_INT_EQ(ck_ulaw_decode(0x80), 32124);
    CHECK_INT_EQ(ck_ulaw_decode(0xfe), 8);
    CHECK_INT_EQ(ck_ulaw_decode(0xef), 132);
    CHECK_INT_EQ(ck_ulaw_decode(0xce), 988); /* middle of [956, 1020) */
    /* Every code: decode then encode gives it back (0x7f, negative zero, becomes 0xff), and the
     * decoded levels are strictly monotonic within each sign. */
    for (int c = 0; c < 256; c++) {
        uint8_t code = (uint8_t)c;

        CHECK_INT_EQ(ck_ulaw_encode(ck_ulaw_decode(code)), code == 0x7f ? 0xff : code);
        if (c != 0x7f && c != 0xff)
            CHECK(c < 0x80 ? ck_ulaw_decode(code) < ck_ulaw_decode((uint8_t)(c + 1))
                           : ck_ulaw_decode(code) > ck_ulaw_decode((uint8_t)(c + 1)));
    }
    /* Every linear sample: quantising is idempotent, and the error stays within half a step of
     * the largest segment (1024/2) plus the clip. */
    for (int v = -32768; v <= 32767; v++) {
        int16_t q = ck_ulaw_decode(ck_ulaw_encode((int16_t)v));
        int err = v - q;

        CHECK(ck_ulaw_decode(ck_ulaw_encode(q)) == q);
        if (err < -1024 || err > 1024) {
            CHECK(err >= -1024 && err <= 1024);
            break;
        }
    }
    {
        int16_t in[5] = {0, 1000, -1000, 32767, -32768}, back[5];
        uint8_t codes[5];

        ck_ulaw_encode_buf(in, 5, codes);
        ck_ulaw_decode_buf(codes, 5, back);
        CHECK_INT_EQ(codes[1], 0xce);
        CHECK_INT_EQ(back[1], 988);
        CHECK_INT_EQ(back[2], -988);
        CHECK_INT_EQ(back[3], 32124);
    }
}

CK_TEST_MAIN("media", CK_TEST_CASE(test_kdf_rfc3711_b3), CK_TEST_CASE(test_aes_cm_cross_check),
             CK_TEST_CASE(test_round_trip_and_replay), CK_TEST_CASE(test_tamper_and_wrong_key),
             CK_TEST_CASE(test_srtp_refusals), CK_TEST_CASE(test_rtp_build_parse),
             CK_TEST_CASE(test_ulaw))
