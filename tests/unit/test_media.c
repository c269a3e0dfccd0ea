/* lib/media: SRTP AES-CM/HMAC-SHA1-80 output checked against an independent computation on
 * OpenSSL (RFC 3711 §4.3 key derivation, checked with the RFC's Appendix B.3 vector, §4.1.1
 * AES-CM, §4.2 HMAC-SHA1 over header, ciphertext and ROC); round trips of both profiles; replay,
 * forged tag, wrong key, malformed packets refused and counted; RTP parser refusals; G.711
 * µ-law table values and round trips. RTP-3DES (compatibility, weak) against the independent
 * vectors of tests/vectors/media/rtp3des_ref.py, its MAC, padding and replay window; media
 * contexts of every mode in source/destination pairs; WAV files. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "cablekey/kmm.h"
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

/* ---- RTP-3DES (compatibility mode, weak) ---- */

#define VEC_LINE 8192

struct vec {
    char name[64];
    uint8_t *key, *mac_key, *in, *out, *back;
    size_t key_len, mac_key_len, in_len, out_len, back_len;
};

static void
vec_clear(struct vec *v)
{
    free(v->key);
    free(v->mac_key);
    free(v->in);
    free(v->out);
    free(v->back);
    memset(v, 0, sizeof(*v));
}

static uint8_t *
vec_field(const char *line, const char *name, size_t *len)
{
    size_t n = strlen(name);

    if (strncmp(line, name, n) != 0 || strncmp(line + n, " = ", 3) != 0)
        return NULL;
    if (strcmp(line + n + 3, "-") == 0) {
        *len = 0;
        return NULL;
    }
    return ck_test_hex(line + n + 3, len);
}

/* Reads the next vector; false at the end of the file. */
static bool
vec_next(FILE *f, struct vec *v)
{
    static char line[VEC_LINE];
    int fields = 0;

    vec_clear(v);
    while (fields < 6 && fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0] == '#' || line[0] == '\0')
            continue;
        if (strncmp(line, "name = ", 7) == 0)
            ck_strlcpy(v->name, line + 7, sizeof(v->name));
        else if (strncmp(line, "key = ", 6) == 0)
            v->key = vec_field(line, "key", &v->key_len);
        else if (strncmp(line, "mac_key = ", 10) == 0)
            v->mac_key = vec_field(line, "mac_key", &v->mac_key_len);
        else if (strncmp(line, "in = ", 5) == 0)
            v->in = vec_field(line, "in", &v->in_len);
        else if (strncmp(line, "out = ", 6) == 0)
            v->out = vec_field(line, "out", &v->out_len);
        else if (strncmp(line, "back = ", 7) == 0)
            v->back = vec_field(line, "back", &v->back_len);
        else
            abort();
        fields++;
    }
    if (fields == 0)
        return false;
    if (fields != 6 || v->key == NULL || v->in == NULL || v->out == NULL || v->back == NULL)
        abort();
    return true;
}

static void
test_rtp3des_vectors(void)
{
    FILE *f = fopen("vectors/media/rtp3des.txt", "r");
    struct vec v = {0};
    int count = 0, with_mac = 0;

    CHECK(f != NULL);
    if (f == NULL)
        return;
    while (vec_next(f, &v)) {
        uint8_t buf[CK_RTP_MAX_PACKET + CK_MEDIA_MAX_OVERHEAD];
        ck_rtp3des *tx = NULL, *rx = NULL;
        size_t len = v.in_len;

        CHECK_INT_EQ(v.key_len, CK_RTP3DES_KEY_LEN);
        CHECK(v.mac_key == NULL || v.mac_key_len == CK_RTP3DES_MAC_KEY_LEN);
        with_mac += v.mac_key != NULL;
        CHECK_OK(ck_rtp3des_new(CK_SRTP_SEND, v.key, v.mac_key, &tx));
        CHECK_OK(ck_rtp3des_new(CK_SRTP_RECV, v.key, v.mac_key, &rx));
        memcpy(buf, v.in, v.in_len);
        CHECK_OK(ck_rtp3des_protect(tx, buf, &len, sizeof(buf)));
        if (len != v.out_len || memcmp(buf, v.out, len) != 0)
            fprintf(stderr, "  vector %s: protect differs\n", v.name);
        CHECK_MEM_EQ(buf, len, v.out, v.out_len);
        memcpy(buf, v.out, v.out_len);
        len = v.out_len;
        CHECK_OK(ck_rtp3des_unprotect(rx, buf, &len));
        if (len != v.back_len || memcmp(buf, v.back, len) != 0)
            fprintf(stderr, "  vector %s: unprotect differs\n", v.name);
        CHECK_MEM_EQ(buf, len, v.back, v.back_len);
        ck_rtp3des_free(tx);
        ck_rtp3des_free(rx);
        if (strcmp(v.name, "call-source-sd-mac") == 0) {
            /* The media context picks the s->d half of ck_call_derive_3des for a source's send
             * direction and a destination's receive direction (K_call and SPI of the "Call
             * keys" vectors). */
            uint8_t k_call[CK_CALL_KEY_LEN];
            ck_media_ctx *src_tx = NULL, *dst_rx = NULL;

            for (size_t i = 0; i < sizeof(k_call); i++)
                k_call[i] = (uint8_t)(0x40 + i);
            CHECK_OK(ck_media_ctx_new(CK_MEDIA_RTP_3DES_MAC, CK_SRTP_SEND, true, k_call,
                                      sizeof(k_call), 0xc0de, &src_tx));
            CHECK_OK(ck_media_ctx_new(CK_MEDIA_RTP_3DES_MAC, CK_SRTP_RECV, false, k_call,
                                      sizeof(k_call), 0xc0de, &dst_rx));
            memcpy(buf, v.in, v.in_len);
            len = v.in_len;
            CHECK_OK(ck_media_protect(src_tx, buf, &len, sizeof(buf)));
            CHECK_MEM_EQ(buf, len, v.out, v.out_len);
            CHECK_OK(ck_media_unprotect(dst_rx, buf, &len));
            CHECK_MEM_EQ(buf, len, v.back, v.back_len);
            ck_media_ctx_free(src_tx);
            ck_media_ctx_free(dst_rx);
            count += 100;
        }
        count++;
    }
    vec_clear(&v);
    fclose(f);
    CHECK_INT_EQ(count, 6 + 100);
    CHECK_INT_EQ(with_mac, 4);
}

static const uint8_t des_key[24] = {0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe,
                                    0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
                                    0x31, 0x41, 0x59, 0x26, 0x53, 0x58, 0x97, 0x93};
static const uint8_t des_mac_key[20] = {0x5a, 0x5a, 0x5a, 0x5a, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06,
                                        0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10};

static void
des_pair(bool with_mac, ck_rtp3des **tx, ck_rtp3des **rx)
{
    CHECK_OK(ck_rtp3des_new(CK_SRTP_SEND, des_key, with_mac ? des_mac_key : NULL, tx));
    CHECK_OK(ck_rtp3des_new(CK_SRTP_RECV, des_key, with_mac ? des_mac_key : NULL, rx));
    if (*tx == NULL || *rx == NULL)
        abort();
}

/* 3DES-CBC, IV 0, no padding, straight from EVP: crafts ciphertexts the sender would not. */
static void
des3_iv0(const uint8_t *in, size_t n, uint8_t *out)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    static const uint8_t iv[8];
    int l1 = 0, l2 = 0;

    if (c == NULL || EVP_EncryptInit_ex(c, EVP_des_ede3_cbc(), NULL, des_key, iv) != 1 ||
        EVP_CIPHER_CTX_set_padding(c, 0) != 1 || EVP_EncryptUpdate(c, out, &l1, in, (int)n) != 1 ||
        EVP_EncryptFinal_ex(c, out + l1, &l2) != 1 || (size_t)(l1 + l2) != n)
        abort();
    EVP_CIPHER_CTX_free(c);
}

static void
test_rtp3des_mac_and_tamper(void)
{
    uint8_t pay[160], buf[CK_RTP_MAX_PACKET + CK_MEDIA_MAX_OVERHEAD], orig[400];
    ck_rtp3des *tx = NULL, *rx = NULL, *rx_nomac = NULL, *tx_nomac = NULL;
    struct ck_srtp_stats st;
    size_t len, olen;

    des_pair(true, &tx, &rx);
    des_pair(false, &tx_nomac, &rx_nomac);
    frame(3, pay);
    len = make_rtp(5, 0x01020304, pay, sizeof(pay), buf, sizeof(buf));
    CHECK_OK(ck_rtp3des_protect(tx, buf, &len, sizeof(buf)));
    CHECK_INT_EQ(len, 12 + 168 + CK_RTP3DES_MAC_LEN);
    CHECK(memcmp(buf + 12, pay, sizeof(pay)) != 0);
    memcpy(orig, buf, len);
    olen = len;

    /* MAC on: any modified byte (header, ciphertext, tag) or a truncation is refused. */
    for (size_t i = 0; i < olen; i += 7) {
        memcpy(buf, orig, olen);
        len = olen;
        buf[i] ^= 0x04;
        if (i == 0)
            continue; /* byte 0 would change the version or the CC: not RTP, checked below */
        CHECK_INT_EQ(ck_rtp3des_unprotect(rx, buf, &len), CK_ERR_INTEGRITY);
    }
    memcpy(buf, orig, olen);
    len = olen - 1;
    CHECK_INT_EQ(ck_rtp3des_unprotect(rx, buf, &len), CK_ERR_DECODE); /* 167-byte ciphertext */
    memcpy(buf, orig, olen);
    len = olen - 8;
    CHECK_INT_EQ(ck_rtp3des_unprotect(rx, buf, &len), CK_ERR_INTEGRITY);
    /* A packet without the MAC, to a receiver that expects one, and the reverse. */
    memcpy(buf, orig, olen - CK_RTP3DES_MAC_LEN);
    len = olen - CK_RTP3DES_MAC_LEN;
    CHECK(ck_rtp3des_unprotect(rx, buf, &len) < 0);
    memcpy(buf, orig, olen);
    len = olen;
    CHECK_INT_EQ(ck_rtp3des_unprotect(rx_nomac, buf, &len), CK_ERR_DECODE); /* 178 bytes */
    /* The genuine packet is still accepted: refusals left the window alone. */
    memcpy(buf, orig, olen);
    len = olen;
    CHECK_OK(ck_rtp3des_unprotect(rx, buf, &len));
    CHECK_INT_EQ(len, 172);
    CHECK_MEM_EQ(buf + 12, len - 12, pay, sizeof(pay));
    CHECK_INT_EQ(buf[0], 0x80);
    ck_rtp3des_get_stats(rx, &st);
    CHECK_INT_EQ(st.packets, 1);
    CHECK(st.bad_auth >= 26);
    CHECK_INT_EQ(st.malformed, 2);

    /* MAC off: the same packet is header || ciphertext only, and identical in those bytes (the
     * MAC is appended, it changes nothing else). */
    len = make_rtp(5, 0x01020304, pay, sizeof(pay), buf, sizeof(buf));
    CHECK_OK(ck_rtp3des_protect(tx_nomac, buf, &len, sizeof(buf)));
    CHECK_INT_EQ(len, 180);
    CHECK_MEM_EQ(buf, len, orig, (size_t)180);
    /* Without the MAC a modified ciphertext block goes unnoticed (the mode's weakness): only
     * the padding block is checked. */
    buf[20] ^= 0x01;
    CHECK_OK(ck_rtp3des_unprotect(rx_nomac, buf, &len));
    CHECK(memcmp(buf + 12, pay, sizeof(pay)) != 0);
    ck_rtp3des_free(tx);
    ck_rtp3des_free(rx);
    ck_rtp3des_free(tx_nomac);
    ck_rtp3des_free(rx_nomac);
}

static void
test_rtp3des_padding(void)
{
    /* Last plaintext bytes 0 and 9 are not a count of 1..8: refused as INTEGRITY, counted, and
     * the sequence number is not consumed. */
    static const uint8_t lasts[] = {0x00, 0x09, 0xff};
    uint8_t pkt[12 + 16 + CK_MEDIA_MAX_OVERHEAD], block[16];
    ck_rtp3des *tx = NULL, *rx = NULL;
    struct ck_srtp_stats st;
    size_t len;

    des_pair(false, &tx, &rx);
    for (size_t i = 0; i < sizeof(lasts); i++) {
        memset(block, 0x41, sizeof(block));
        block[15] = lasts[i];
        len = make_rtp(100, 0x55667788, NULL, 0, pkt, sizeof(pkt));
        pkt[0] |= 0x20;
        des3_iv0(block, sizeof(block), pkt + 12);
        len += 16;
        CHECK_INT_EQ(ck_rtp3des_unprotect(rx, pkt, &len), CK_ERR_INTEGRITY);
    }
    /* A count of 8 in a 16-byte ciphertext is fine: 8 bytes of payload. */
    memset(block, 0x41, sizeof(block));
    block[15] = 8;
    len = make_rtp(100, 0x55667788, NULL, 0, pkt, sizeof(pkt));
    pkt[0] |= 0x20;
    des3_iv0(block, sizeof(block), pkt + 12);
    len += 16;
    CHECK_OK(ck_rtp3des_unprotect(rx, pkt, &len));
    CHECK_INT_EQ(len, 20);
    CHECK_INT_EQ(pkt[0], 0x80);
    /* Structure: P bit clear, no ciphertext, ciphertext not whole blocks. */
    len = make_rtp(101, 1, block, 16, pkt, sizeof(pkt));
    CHECK_INT_EQ(ck_rtp3des_unprotect(rx, pkt, &len), CK_ERR_DECODE);
    len = make_rtp(102, 1, NULL, 0, pkt, sizeof(pkt));
    pkt[0] |= 0x20;
    CHECK_INT_EQ(ck_rtp3des_unprotect(rx, pkt, &len), CK_ERR_DECODE);
    len = make_rtp(103, 1, block, 12, pkt, sizeof(pkt));
    pkt[0] |= 0x20;
    CHECK_INT_EQ(ck_rtp3des_unprotect(rx, pkt, &len), CK_ERR_DECODE);
    len = 5;
    CHECK_INT_EQ(ck_rtp3des_unprotect(rx, pkt, &len), CK_ERR_DECODE);
    ck_rtp3des_get_stats(rx, &st);
    CHECK_INT_EQ(st.bad_auth, 3);
    CHECK_INT_EQ(st.malformed, 4);
    CHECK_INT_EQ(st.packets, 1);
    /* Parameter refusals. */
    len = make_rtp(1, 1, block, 16, pkt, sizeof(pkt));
    CHECK_INT_EQ(ck_rtp3des_protect(tx, pkt, &len, len + 8), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_rtp3des_protect(rx, pkt, &len, sizeof(pkt)), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_rtp3des_unprotect(tx, pkt, &len), CK_ERR_INVAL);
    ck_rtp3des_free(rx);
    CHECK_INT_EQ(ck_rtp3des_new((enum ck_srtp_direction)0, des_key, NULL, &rx), CK_ERR_INVAL);
    CHECK(rx == NULL);
    CHECK_INT_EQ(ck_rtp3des_new(CK_SRTP_SEND, NULL, NULL, &rx), CK_ERR_INVAL);
    ck_rtp3des_free(tx);
    ck_rtp3des_free(NULL);
    {
        /* The largest payload whose padded packet fits CK_RTP_MAX_PACKET (12 + 1383 + 1 = 1396:
         * the encrypted part is whole blocks), and one byte more (12 + 1384 + 8). */
        static uint8_t big[CK_RTP_MAX_PACKET + CK_MEDIA_MAX_OVERHEAD];
        static uint8_t zeros[CK_RTP_MAX_PACKET];

        des_pair(true, &tx, &rx);
        len = make_rtp(1, 1, zeros, 1383, big, sizeof(big));
        CHECK_OK(ck_rtp3des_protect(tx, big, &len, sizeof(big)));
        CHECK_INT_EQ(len, 1396 + CK_RTP3DES_MAC_LEN);
        CHECK_OK(ck_rtp3des_unprotect(rx, big, &len));
        CHECK_INT_EQ(len, 12 + 1383);
        len = make_rtp(2, 1, zeros, 1384, big, sizeof(big));
        CHECK_INT_EQ(ck_rtp3des_protect(tx, big, &len, sizeof(big)), CK_ERR_LIMIT);
        ck_rtp3des_free(tx);
        ck_rtp3des_free(rx);
    }
}

static int
des_send(ck_rtp3des *tx, ck_rtp3des *rx, uint16_t seq, uint8_t *saved, size_t *saved_len)
{
    uint8_t pay[160], buf[CK_RTP_MAX_PACKET + CK_MEDIA_MAX_OVERHEAD];
    size_t len;
    int rc;

    frame((uint8_t)seq, pay);
    len = make_rtp(seq, 0x99, pay, sizeof(pay), buf, sizeof(buf));
    if (ck_rtp3des_protect(tx, buf, &len, sizeof(buf)) != 0)
        abort();
    if (saved != NULL) {
        memcpy(saved, buf, len);
        *saved_len = len;
    }
    if (rx == NULL)
        return 0;
    rc = ck_rtp3des_unprotect(rx, buf, &len);
    if (rc == 0 && (len != 172 || memcmp(buf + 12, pay, sizeof(pay)) != 0))
        return -1000;
    return rc;
}

static int
des_resend(ck_rtp3des *rx, const uint8_t *saved, size_t saved_len)
{
    uint8_t buf[CK_RTP_MAX_PACKET + CK_MEDIA_MAX_OVERHEAD];
    size_t len = saved_len;

    memcpy(buf, saved, saved_len);
    return ck_rtp3des_unprotect(rx, buf, &len);
}

static void
test_rtp3des_replay(void)
{
    for (int m = 0; m < 2; m++) {
        uint8_t p5[256], p68[256], p70[256], pwrap[256];
        size_t l5 = 0, l68 = 0, l70 = 0, lwrap = 0;
        ck_rtp3des *tx = NULL, *rx = NULL;
        struct ck_srtp_stats st;

        des_pair(m == 1, &tx, &rx);
        for (uint16_t seq = 1; seq <= 70; seq++) {
            if (seq == 68) {
                CHECK_OK(des_send(tx, NULL, seq, p68, &l68)); /* held back: arrives late */
                continue;
            }
            CHECK_OK(des_send(tx, rx, seq, seq == 5 ? p5 : seq == 70 ? p70 : NULL,
                              seq == 5 ? &l5 : &l70));
        }
        CHECK_INT_EQ(des_resend(rx, p70, l70), CK_ERR_REPLAY);   /* the newest, again */
        CHECK_INT_EQ(des_resend(rx, p5, l5), CK_ERR_REPLAY);     /* 65 behind: out of window */
        CHECK_OK(des_resend(rx, p68, l68));                      /* late but inside: accepted */
        CHECK_INT_EQ(des_resend(rx, p68, l68), CK_ERR_REPLAY);   /* once */
        /* Sequence numbers wrap: 65530..65535 then 0..5 are all new (skip ahead first). */
        for (uint32_t s = 65530; s <= 65535 + 6; s++) {
            if ((s & 0xffff) == 3) {
                CHECK_OK(des_send(tx, rx, (uint16_t)s, pwrap, &lwrap));
            } else {
                CHECK_OK(des_send(tx, rx, (uint16_t)s, NULL, NULL));
            }
        }
        CHECK_INT_EQ(des_resend(rx, pwrap, lwrap), CK_ERR_REPLAY);
        ck_rtp3des_get_stats(rx, &st);
        CHECK_INT_EQ(st.replayed, 4);
        CHECK_INT_EQ(st.packets, 70 + 12);
        ck_rtp3des_free(tx);
        ck_rtp3des_free(rx);
    }
}

/* ---- Media contexts ---- */

static const enum ck_media_mode all_modes[] = {CK_MEDIA_RTP, CK_MEDIA_SRTP_AES_CM, CK_MEDIA_SRTP_GCM,
                                               CK_MEDIA_RTP_3DES, CK_MEDIA_RTP_3DES_MAC};

static int
ctx_send(ck_media_ctx *tx, ck_media_ctx *rx, uint16_t seq, uint32_t ssrc, size_t *wire_len)
{
    uint8_t pay[160], buf[CK_RTP_MAX_PACKET + CK_MEDIA_MAX_OVERHEAD];
    size_t len;
    int rc;

    frame((uint8_t)(seq + ssrc), pay);
    len = make_rtp(seq, ssrc, pay, sizeof(pay), buf, sizeof(buf));
    if ((rc = ck_media_protect(tx, buf, &len, sizeof(buf))) != 0)
        return rc;
    if (wire_len != NULL)
        *wire_len = len;
    if ((rc = ck_media_unprotect(rx, buf, &len)) != 0)
        return rc;
    if (len != 172 || memcmp(buf + 12, pay, sizeof(pay)) != 0)
        return -1000; /* accepted but not the audio that was sent */
    return 0;
}

static void
test_media_ctx_pairs(void)
{
    uint8_t k_call[CK_CALL_KEY_LEN], k_other[CK_CALL_KEY_LEN];
    const uint32_t spi = 0x00012340;
    static const size_t wire[] = {0, 172, 182, 188, 180, 190};

    for (size_t i = 0; i < sizeof(k_call); i++) {
        k_call[i] = (uint8_t)(0x40 + i);
        k_other[i] = (uint8_t)(0x40 + i);
    }
    k_other[31] ^= 1;
    for (size_t k = 0; k < sizeof(all_modes) / sizeof(all_modes[0]); k++) {
        enum ck_media_mode m = all_modes[k];
        bool keyed = m != CK_MEDIA_RTP;
        const uint8_t *kc = keyed ? k_call : NULL;
        size_t kl = keyed ? sizeof(k_call) : 0;
        ck_media_ctx *src_tx = NULL, *src_rx = NULL, *dst_tx = NULL, *dst_rx = NULL;
        ck_media_ctx *src_tx2 = NULL, *other_rx = NULL, *spi_rx = NULL;
        struct ck_srtp_stats st;
        size_t wl = 0;
        int rc;

        CHECK_OK(ck_media_ctx_new(m, CK_SRTP_SEND, true, kc, kl, spi, &src_tx));
        CHECK_OK(ck_media_ctx_new(m, CK_SRTP_RECV, true, kc, kl, spi, &src_rx));
        CHECK_OK(ck_media_ctx_new(m, CK_SRTP_SEND, false, kc, kl, spi, &dst_tx));
        CHECK_OK(ck_media_ctx_new(m, CK_SRTP_RECV, false, kc, kl, spi, &dst_rx));
        CHECK_OK(ck_media_ctx_new(m, CK_SRTP_SEND, true, kc, kl, spi, &src_tx2));
        CHECK_OK(ck_media_ctx_new(m, CK_SRTP_RECV, false, keyed ? k_other : NULL, kl, spi,
                                  &other_rx));
        CHECK_OK(ck_media_ctx_new(m, CK_SRTP_RECV, false, kc, kl, spi + 2, &spi_rx));
        if (src_tx == NULL || src_rx == NULL || dst_tx == NULL || dst_rx == NULL ||
            src_tx2 == NULL || other_rx == NULL || spi_rx == NULL)
            abort();
        /* Both directions work between the two ends. */
        for (uint16_t seq = 1; seq <= 20; seq++) {
            CHECK_OK(ctx_send(src_tx, dst_rx, seq, 0xa1a1a1a1, &wl));
            CHECK_INT_EQ(wl, wire[m]);
            CHECK_OK(ctx_send(dst_tx, src_rx, seq, 0xb2b2b2b2, NULL));
        }
        if (keyed) {
            /* The source's packets do not open in the source's own receive context (the d->s
             * keys), nor under another K_call or SPI; a send context cannot unprotect. A
             * MAC-less 3DES receiver has no integrity check beyond the padding, so it may accept
             * garbage: what it must not give back is the audio. */
            rc = ctx_send(src_tx2, src_rx, 21, 0xa1a1a1a1, NULL);
            CHECK(m == CK_MEDIA_RTP_3DES ? rc != 0 : rc == CK_ERR_INTEGRITY);
            rc = ctx_send(src_tx2, other_rx, 22, 0xa1a1a1a1, NULL);
            CHECK(m == CK_MEDIA_RTP_3DES ? rc != 0 : rc == CK_ERR_INTEGRITY);
            rc = ctx_send(src_tx2, spi_rx, 23, 0xa1a1a1a1, NULL);
            CHECK(m == CK_MEDIA_RTP_3DES ? rc != 0 : rc == CK_ERR_INTEGRITY);
            /* Replays are refused in every protected mode. */
            {
                uint8_t pay[160], buf[CK_RTP_MAX_PACKET + CK_MEDIA_MAX_OVERHEAD], copy[400];
                size_t len, clen;

                frame(1, pay);
                len = make_rtp(30, 0xa1a1a1a1, pay, sizeof(pay), buf, sizeof(buf));
                CHECK_OK(ck_media_protect(src_tx, buf, &len, sizeof(buf)));
                memcpy(copy, buf, len);
                clen = len;
                CHECK_OK(ck_media_unprotect(dst_rx, buf, &len));
                memcpy(buf, copy, clen);
                len = clen;
                CHECK_INT_EQ(ck_media_unprotect(dst_rx, buf, &len), CK_ERR_REPLAY);
            }
            ck_media_get_stats(dst_rx, &st);
            CHECK_INT_EQ(st.packets, 21);
            CHECK_INT_EQ(st.replayed, 1);
        } else {
            /* RTP passes through, still parsed. */
            uint8_t bad[CK_MEDIA_MAX_OVERHEAD + 16] = {0x40};
            size_t len = 12;

            CHECK_INT_EQ(ck_media_unprotect(dst_rx, bad, &len), CK_ERR_DECODE);
            CHECK_INT_EQ(ck_media_protect(src_tx, bad, &len, sizeof(bad)), CK_ERR_DECODE);
            ck_media_get_stats(dst_rx, &st);
            CHECK_INT_EQ(st.packets, 20);
            CHECK_INT_EQ(st.malformed, 1);
        }
        {
            uint8_t buf[CK_RTP_MAX_PACKET + CK_MEDIA_MAX_OVERHEAD] = {0};
            size_t len = make_rtp(40, 1, NULL, 0, buf, sizeof(buf));

            CHECK_INT_EQ(ck_media_unprotect(src_tx, buf, &len), CK_ERR_INVAL);
            CHECK_INT_EQ(ck_media_protect(src_rx, buf, &len, sizeof(buf)), CK_ERR_INVAL);
            CHECK_INT_EQ(ck_media_protect(src_tx, buf, &len, len + CK_MEDIA_MAX_OVERHEAD - 1),
                         CK_ERR_INVAL);
        }
        ck_media_ctx_free(src_tx);
        ck_media_ctx_free(src_rx);
        ck_media_ctx_free(dst_tx);
        ck_media_ctx_free(dst_rx);
        ck_media_ctx_free(src_tx2);
        ck_media_ctx_free(other_rx);
        ck_media_ctx_free(spi_rx);
    }
    ck_media_ctx_free(NULL);
}

/* The context takes the half of ck_call_derive_srtp's output that the contract names: the
 * source's send context equals a bare SRTP context on key_sd/salt_sd. */
static void
test_media_ctx_key_halves(void)
{
    uint8_t k_call[CK_CALL_KEY_LEN];
    struct ck_call_srtp_keys keys;
    struct ck_call_3des_keys dk;
    ck_media_ctx *src_tx = NULL, *dst_tx = NULL;
    ck_srtp *bare_sd = NULL, *bare_ds = NULL;
    ck_rtp3des *des_sd = NULL;
    const uint32_t spi = 0x1000;
    uint8_t pay[160], a[CK_RTP_MAX_PACKET + CK_MEDIA_MAX_OVERHEAD], b[sizeof(a)];
    size_t la, lb;

    memset(k_call, 0x77, sizeof(k_call));
    frame(2, pay);
    CHECK_OK(ck_call_derive_srtp(k_call, sizeof(k_call), CK_CALL_SRTP_AEAD_AES_128_GCM, spi, &keys));
    CHECK_OK(ck_srtp_new(CK_SRTP_AEAD_AES_128_GCM, CK_SRTP_SEND, keys.key_sd, 16, keys.salt_sd, 12,
                         &bare_sd));
    CHECK_OK(ck_srtp_new(CK_SRTP_AEAD_AES_128_GCM, CK_SRTP_SEND, keys.key_ds, 16, keys.salt_ds, 12,
                         &bare_ds));
    CHECK_OK(ck_media_ctx_new(CK_MEDIA_SRTP_GCM, CK_SRTP_SEND, true, k_call, 32, spi, &src_tx));
    CHECK_OK(ck_media_ctx_new(CK_MEDIA_SRTP_GCM, CK_SRTP_SEND, false, k_call, 32, spi, &dst_tx));
    la = make_rtp(9, 0x1234, pay, sizeof(pay), a, sizeof(a));
    lb = make_rtp(9, 0x1234, pay, sizeof(pay), b, sizeof(b));
    CHECK_OK(ck_media_protect(src_tx, a, &la, sizeof(a)));
    CHECK_OK(ck_srtp_protect(bare_sd, b, &lb, sizeof(b)));
    CHECK_MEM_EQ(a, la, b, lb);
    la = make_rtp(9, 0x1234, pay, sizeof(pay), a, sizeof(a));
    lb = make_rtp(9, 0x1234, pay, sizeof(pay), b, sizeof(b));
    CHECK_OK(ck_media_protect(dst_tx, a, &la, sizeof(a)));
    CHECK_OK(ck_srtp_protect(bare_ds, b, &lb, sizeof(b)));
    CHECK_MEM_EQ(a, la, b, lb);
    ck_media_ctx_free(src_tx);
    ck_media_ctx_free(dst_tx);
    ck_srtp_free(bare_sd);
    ck_srtp_free(bare_ds);
    ck_call_keys_clear(&keys, sizeof(keys));

    CHECK_OK(ck_call_derive_3des(k_call, sizeof(k_call), spi, true, &dk));
    CHECK_OK(ck_rtp3des_new(CK_SRTP_SEND, dk.key_sd, dk.mac_sd, &des_sd));
    CHECK_OK(ck_media_ctx_new(CK_MEDIA_RTP_3DES_MAC, CK_SRTP_SEND, true, k_call, 32, spi, &src_tx));
    la = make_rtp(9, 0x1234, pay, sizeof(pay), a, sizeof(a));
    lb = make_rtp(9, 0x1234, pay, sizeof(pay), b, sizeof(b));
    CHECK_OK(ck_media_protect(src_tx, a, &la, sizeof(a)));
    CHECK_OK(ck_rtp3des_protect(des_sd, b, &lb, sizeof(b)));
    CHECK_MEM_EQ(a, la, b, lb);
    ck_media_ctx_free(src_tx);
    ck_rtp3des_free(des_sd);
    ck_call_keys_clear(&dk, sizeof(dk));

    /* Refusals: keyed modes need a K_call of the right length and a valid SPI. */
    CHECK_INT_EQ(ck_media_ctx_new(CK_MEDIA_SRTP_AES_CM, CK_SRTP_SEND, true, NULL, 0, spi, &src_tx),
                 CK_ERR_INVAL);
    CHECK(src_tx == NULL);
    CHECK_INT_EQ(ck_media_ctx_new(CK_MEDIA_RTP_3DES, CK_SRTP_SEND, true, k_call, 31, spi, &src_tx),
                 CK_ERR_INVAL);
    CHECK_INT_EQ(ck_media_ctx_new(CK_MEDIA_SRTP_GCM, CK_SRTP_SEND, true, k_call, 32, 5, &src_tx),
                 CK_ERR_INVAL);
    CHECK_INT_EQ(ck_media_ctx_new((enum ck_media_mode)0, CK_SRTP_SEND, true, k_call, 32, spi,
                                  &src_tx), CK_ERR_UNSUPPORTED);
    CHECK_INT_EQ(ck_media_ctx_new(CK_MEDIA_RTP, (enum ck_srtp_direction)3, true, NULL, 0, spi,
                                  &src_tx), CK_ERR_INVAL);
    CHECK(src_tx == NULL);
}

static void
test_media_mode_names(void)
{
    static const char *names[] = {"rtp", "srtp-aes-cm", "srtp-gcm", "rtp-3des", "rtp-3des-mac"};
    enum ck_media_mode m;

    for (size_t i = 0; i < sizeof(all_modes) / sizeof(all_modes[0]); i++) {
        CHECK(strcmp(ck_media_mode_name(all_modes[i]), names[i]) == 0);
        m = (enum ck_media_mode)0;
        CHECK_OK(ck_media_mode_parse(names[i], &m));
        CHECK_INT_EQ(m, all_modes[i]);
    }
    CHECK(strcmp(ck_media_mode_name((enum ck_media_mode)42), "unknown") == 0);
    CHECK_INT_EQ(ck_media_mode_parse("SRTP-GCM", &m), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_media_mode_parse("srtp", &m), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_media_mode_parse("", &m), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_media_mode_parse(NULL, &m), CK_ERR_INVAL);
}

/* ---- WAV ---- */

static void
put16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void
put32(uint8_t *p, uint32_t v)
{
    put16(p, v & 0xffff);
    put16(p + 2, v >> 16);
}

/* A WAV file built here from the RIFF layout: fmt fields as given, then n samples of data. */
static size_t
make_wav(uint8_t *out, unsigned tag, unsigned channels, uint32_t rate, unsigned bits,
         const int16_t *s, size_t n)
{
    unsigned align = channels * bits / 8;

    memcpy(out, "RIFF", 4);
    put32(out + 4, (uint32_t)(36 + 2 * n));
    memcpy(out + 8, "WAVEfmt ", 8);
    put32(out + 16, 16);
    put16(out + 20, tag);
    put16(out + 22, channels);
    put32(out + 24, rate);
    put32(out + 28, rate * align);
    put16(out + 32, align);
    put16(out + 34, bits);
    memcpy(out + 36, "data", 4);
    put32(out + 40, (uint32_t)(2 * n));
    for (size_t i = 0; i < n; i++)
        put16(out + 44 + 2 * i, (uint16_t)s[i]);
    return 44 + 2 * n;
}

static void
test_wav(void)
{
    char dir[] = "/tmp/ck-test-wav.XXXXXX", path[128];
    int16_t ref[1000], *got = NULL;
    uint8_t file[44 + 2000 + 64], *disk;
    size_t n = 0, flen, dlen;
    struct stat st;
    FILE *f;

    for (int i = 0; i < 1000; i++)
        ref[i] = (int16_t)((i * 7919) % 65536 - 32768);
    ref[0] = -32768;
    ref[1] = 32767;
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/a.wav", dir);

    /* Round trip through the file, and the exact bytes of the canonical 44-byte header. */
    CHECK_OK(ck_wav_write(path, ref, 1000));
    CHECK_OK(ck_wav_read(path, &got, &n));
    CHECK_MEM_EQ(got, n * 2, ref, sizeof(ref));
    free(got);
    got = NULL;
    CHECK(stat(path, &st) == 0 && (st.st_mode & 07777) == 0644);
    flen = make_wav(file, 1, 1, 8000, 16, ref, 1000);
    f = fopen(path, "rb");
    disk = malloc(flen + 1);
    dlen = f != NULL && disk != NULL ? fread(disk, 1, flen + 1, f) : 0;
    CHECK_MEM_EQ(disk, dlen, file, flen);
    free(disk);
    if (f != NULL)
        fclose(f);
    /* Replaces; empty file; not found. */
    CHECK_OK(ck_wav_write(path, NULL, 0));
    CHECK_OK(ck_wav_read(path, &got, &n));
    CHECK_INT_EQ(n, 0);
    free(got);
    got = NULL;
    CHECK_INT_EQ(ck_wav_read("/nonexistent/x.wav", &got, &n), CK_ERR_NOTFOUND);
    CHECK_INT_EQ(ck_wav_write(path, ref, CK_WAV_MAX_SAMPLES + 1ul), CK_ERR_LIMIT);
    unlink(path);
    rmdir(dir);

    /* Formats refused with what they are: stereo, 44.1 kHz, 8-bit, A-law/float tags. */
    flen = make_wav(file, 1, 2, 8000, 16, ref, 100);
    CHECK_INT_EQ(ck_wav_parse(file, flen, &got, &n), CK_ERR_UNSUPPORTED);
    CHECK(strstr(ck_error_context(), "2 channel") != NULL);
    flen = make_wav(file, 1, 1, 44100, 16, ref, 100);
    CHECK_INT_EQ(ck_wav_parse(file, flen, &got, &n), CK_ERR_UNSUPPORTED);
    CHECK(strstr(ck_error_context(), "44100 Hz") != NULL);
    flen = make_wav(file, 1, 1, 8000, 8, ref, 100);
    CHECK_INT_EQ(ck_wav_parse(file, flen, &got, &n), CK_ERR_UNSUPPORTED);
    flen = make_wav(file, 7, 1, 8000, 16, ref, 100);
    CHECK_INT_EQ(ck_wav_parse(file, flen, &got, &n), CK_ERR_UNSUPPORTED);
    flen = make_wav(file, 0xfffe, 1, 8000, 16, ref, 100);
    CHECK_INT_EQ(ck_wav_parse(file, flen, &got, &n), CK_ERR_UNSUPPORTED);
    CHECK(got == NULL && n == 0);

    /* Every truncation of a good file is refused; trailing bytes after the RIFF are ignored. */
    flen = make_wav(file, 1, 1, 8000, 16, ref, 100);
    for (size_t cut = 0; cut < flen; cut++)
        CHECK_INT_EQ(ck_wav_parse(file, cut, &got, &n), CK_ERR_DECODE);
    memset(file + flen, 0xee, 9);
    CHECK_OK(ck_wav_parse(file, flen + 9, &got, &n));
    CHECK_INT_EQ(n, 100);
    free(got);
    got = NULL;
    /* A data chunk longer than the RIFF says, an odd data length, a bad block align. */
    put32(file + 40, 202);
    CHECK_INT_EQ(ck_wav_parse(file, flen, &got, &n), CK_ERR_DECODE);
    put32(file + 40, 199);
    CHECK_INT_EQ(ck_wav_parse(file, flen, &got, &n), CK_ERR_DECODE);
    put32(file + 40, 200);
    put16(file + 32, 4);
    CHECK_INT_EQ(ck_wav_parse(file, flen, &got, &n), CK_ERR_DECODE);
    put16(file + 32, 2);
    memcpy(file + 8, "AVI ", 4);
    CHECK_INT_EQ(ck_wav_parse(file, flen, &got, &n), CK_ERR_DECODE);
    memcpy(file + 8, "WAVE", 4);
    memcpy(file + 36, "junk", 4); /* no data chunk */
    CHECK_INT_EQ(ck_wav_parse(file, flen, &got, &n), CK_ERR_DECODE);

    /* Chunks other than fmt and data are skipped, an odd one with its pad byte. */
    {
        uint8_t x[44 + 200 + 16];
        size_t xl;

        make_wav(x, 1, 1, 8000, 16, ref, 100);
        /* RIFF hdr (12) | LIST chunk: 8 + 3 + pad | fmt (24) | data (8 + 200) */
        memcpy(file, x, 12);
        memcpy(file + 12, "LIST", 4);
        put32(file + 16, 3);
        memcpy(file + 20, "abc\0", 4);
        memcpy(file + 24, x + 12, 24 + 8 + 200);
        xl = 24 + 24 + 8 + 200;
        put32(file + 4, (uint32_t)(xl - 8));
        CHECK_OK(ck_wav_parse(file, xl, &got, &n));
        CHECK_MEM_EQ(got, n * 2, ref, 200);
        free(got);
        got = NULL;
        /* data before fmt */
        memcpy(file + 12, x + 36, 8 + 200);
        memcpy(file + 12 + 208, x + 12, 24);
        put32(file + 4, 4 + 208 + 24);
        CHECK_INT_EQ(ck_wav_parse(file, 12 + 208 + 24, &got, &n), CK_ERR_DECODE);
    }
    CHECK(got == NULL);
}

CK_TEST_MAIN("media", CK_TEST_CASE(test_kdf_rfc3711_b3), CK_TEST_CASE(test_aes_cm_cross_check),
             CK_TEST_CASE(test_round_trip_and_replay), CK_TEST_CASE(test_tamper_and_wrong_key),
             CK_TEST_CASE(test_srtp_refusals), CK_TEST_CASE(test_rtp_build_parse),
             CK_TEST_CASE(test_ulaw), CK_TEST_CASE(test_rtp3des_vectors),
             CK_TEST_CASE(test_rtp3des_mac_and_tamper), CK_TEST_CASE(test_rtp3des_padding),
             CK_TEST_CASE(test_rtp3des_replay), CK_TEST_CASE(test_media_ctx_pairs),
             CK_TEST_CASE(test_media_ctx_key_halves), CK_TEST_CASE(test_media_mode_names),
             CK_TEST_CASE(test_wav))
