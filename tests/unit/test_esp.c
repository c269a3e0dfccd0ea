/* lib/esp: RFC 3602 §4 ESP packets and RFC 2202 (= RFC 2403/2404) HMAC vectors reproduced
 * exactly, round trips for every suite, the anti-replay window's edges, sequence exhaustion,
 * lifetimes, refusals of forged/truncated/misaddressed/badly padded packets (window and output
 * untouched), RFC 3948 classification, the inner UDP header and the ip xfrm text. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "cablekey/esp.h"
#include "cablekey/kmm.h"
#include "ck_test.h"
#include "esp/esp_int.h"

static const uint8_t auth20[20] = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa,
                                   0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x01, 0x02, 0x03, 0x04, 0x05};
static const uint8_t enc24[24] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
                                  13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24};

static ck_esp_sa *
make_sa(uint8_t enc, uint8_t auth, uint32_t spi, const uint8_t *ekey, uint32_t window)
{
    struct ck_esp_sa_params p = {
        .spi = spi,
        .enc = enc,
        .auth = auth,
        .enc_key = ekey != NULL ? ekey : enc24,
        .enc_key_len = enc == CK_KMM_ENC_AES128 ? 16 : enc == CK_KMM_ENC_3DES ? 24 : 0,
        .auth_key = auth20,
        .auth_key_len = auth == CK_KMM_AUTH_HMAC_SHA1_96 ? 20 : 16,
        .replay_window = window,
    };
    ck_esp_sa *sa = NULL;

    if (ck_esp_sa_new(&p, &sa) != 0)
        return NULL;
    return sa;
}

/* RFC 3602 §4 cases 5-8: the ESP part (SPI through the last ciphertext block) of each sample
 * packet; the RFC's packets carry no ICV, so ours is checked against an independent HMAC. */
struct rfc3602_case {
    const char *key, *iv, *payload, *esp;
    uint32_t seq;
    uint8_t next_header;
};

static const struct rfc3602_case rfc3602[] = {
    {"90d382b410eeba7ad938c46cec1a82bf", "e96e8c08ab465763fd098d45dd3ff893",
     "08000ebda70a00008e9c083db95b070008090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
     "202122232425262728292a2b2c2d2e2f3031323334353637",
     "0000432100000001e96e8c08ab465763fd098d45dd3ff893f663c25d325c18c6a9453e194e120849"
     "a4870b66cc6b9965330013b4898dc856a4699e523a55db080b59ec3a8e4b7e52775b07d1db34ed9c"
     "538ab50c551b874aa269add047ad2d5913ac19b7cfbad4a6",
     1, 1},
    {"90d382b410eeba7ad938c46cec1a82bf", "69d08df7d203329db093fc4924e5bd80",
     "0800b5e8a80a0500a69c083d0b660e00777777777777777777777777",
     "000043210000000869d08df7d203329db093fc4924e5bd80f51995881ec4e0c4488987ce742e8109"
     "689bb379d2d750c0d915dca346a89f75",
     8, 1},
    {"0123456789abcdef0123456789abcdef", "f4e765244f6407adf13dc1380f673f37",
     "45000054090400004001f988c0a87b03c0a87bc808009f76a90a0100b49c083d02a2040008090a0b"
     "0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f30313233"
     "34353637",
     "0000876500000002f4e765244f6407adf13dc1380f673f37773b5241a4c449225e4f3ce5ed611b0c"
     "237ca96cf74a93013c1b0ea1a0cf70f8e4ecaec78ac53aad7a0f022b859243c647752e94a859352b"
     "8a4d4d2decd136e5c177f132ad3fbfb2201ac9904c74ee0a109e0ca1e4dfe9d5a100b842f1c22f0d",
     2, 4},
    {"0123456789abcdef0123456789abcdef", "85d47224b5f3dd5d2101d4ea8dffab22",
     "45000044090c00004001f990c0a87b03c0a87bc80800d63caa0a0200c69c083da3de0300ffffffff"
     "ffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
     "000087650000000585d47224b5f3dd5d2101d4ea8dffab2215b92683819596a8047232cc00f7048f"
     "e45318e11f8a0f62ede3c3fc61203bb50f980a08c9843fd3a1b06d5c07ff9639b7eb7dfb3512e5de"
     "435e7207ed971ef3d2726d9b5ef6affc6d17a0decbb13892",
     5, 4},
};

static void
test_rfc3602_packets(void)
{
    ck_esp_engine *eng = NULL;

    CHECK_OK(ck_esp_engine_new(&eng));
    for (size_t i = 0; eng != NULL && i < sizeof(rfc3602) / sizeof(rfc3602[0]); i++) {
        const struct rfc3602_case *c = &rfc3602[i];
        size_t klen, ivlen, plen, elen, pkt_len = 0, out_len = 0, mac_len = 0;
        uint8_t *key = ck_test_hex(c->key, &klen), *iv = ck_test_hex(c->iv, &ivlen);
        uint8_t *payload = ck_test_hex(c->payload, &plen), *esp = ck_test_hex(c->esp, &elen);
        uint8_t pkt[256], out[256], mac[EVP_MAX_MD_SIZE], nh = 0;
        uint32_t spi = (uint32_t)esp[2] << 8 | esp[3];
        ck_esp_sa *o = make_sa(CK_KMM_ENC_AES128, CK_KMM_AUTH_HMAC_SHA1_96, spi, key, 0);
        ck_esp_sa *in = make_sa(CK_KMM_ENC_AES128, CK_KMM_AUTH_HMAC_SHA1_96, spi, key, 0);

        CHECK(o != NULL && in != NULL);
        if (o == NULL || in == NULL)
            goto next;
        ck_esp_test_set_seq(o, c->seq - 1);
        ck_esp_test_set_next_iv(eng, iv, ivlen);
        CHECK_INT_EQ(ck_esp_protected_size(o, plen), elen + CK_ESP_ICV_LEN);
        CHECK_OK(ck_esp_protect(eng, o, c->next_header, payload, plen, 0, pkt, sizeof(pkt),
                                &pkt_len));
        CHECK_MEM_EQ(pkt, pkt_len > 12 ? pkt_len - 12 : 0, esp, elen);
        /* The ICV: HMAC-SHA-1 over the whole ESP packet, first 96 bits (RFC 2404). */
        CHECK(EVP_Q_mac(NULL, "HMAC", NULL, "SHA1", NULL, auth20, sizeof(auth20), esp, elen, mac,
                        sizeof(mac), &mac_len) != NULL);
        CHECK_MEM_EQ(pkt + elen, pkt_len - elen, mac, (size_t)CK_ESP_ICV_LEN);
        CHECK_OK(ck_esp_unprotect(eng, in, pkt, pkt_len, 0, out, sizeof(out), &out_len, &nh));
        CHECK_MEM_EQ(out, out_len, payload, plen);
        CHECK_INT_EQ(nh, c->next_header);
next:
        ck_esp_sa_free(o);
        ck_esp_sa_free(in);
        free(key);
        free(iv);
        free(payload);
        free(esp);
    }
    ck_esp_engine_free(eng);
}

/* RFC 2202 test cases 1, 3 and 5 for HMAC-SHA-1 and HMAC-MD5 (the ones with full-length keys),
 * truncated to 96 bits as RFC 2404 / RFC 2403 use them. */
static void
test_hmac_96_vectors(void)
{
    static const struct {
        uint8_t auth;
        uint8_t key_byte;
        const char *data; /* NULL: 50 bytes of 0xdd */
        const char *icv;
    } v[] = {
        {CK_KMM_AUTH_HMAC_SHA1_96, 0x0b, "Hi There", "b617318655057264e28bc0b6"},
        {CK_KMM_AUTH_HMAC_SHA1_96, 0xaa, NULL, "125d7342b9ac11cd91a39af4"},
        {CK_KMM_AUTH_HMAC_SHA1_96, 0x0c, "Test With Truncation", "4c1a03424b55e07fe7f27be1"},
        {CK_KMM_AUTH_HMAC_MD5_96, 0x0b, "Hi There", "9294727a3638bb1c13f48ef8"},
        {CK_KMM_AUTH_HMAC_MD5_96, 0xaa, NULL, "56be34521d144c88dbb8c733"},
        {CK_KMM_AUTH_HMAC_MD5_96, 0x0c, "Test With Truncation", "56461ef2342edc00f9bab995"},
    };
    ck_esp_engine *eng = NULL;

    CHECK_OK(ck_esp_engine_new(&eng));
    for (size_t i = 0; eng != NULL && i < sizeof(v) / sizeof(v[0]); i++) {
        uint8_t key[20], dd[50], icv[CK_ESP_ICV_LEN];
        size_t klen = v[i].auth == CK_KMM_AUTH_HMAC_SHA1_96 ? 20 : 16, want_len;
        unsigned char *want = ck_test_hex(v[i].icv, &want_len);
        struct ck_esp_sa_params p = {.spi = 0x1000, .enc = CK_KMM_ENC_NULL, .auth = v[i].auth,
                                     .auth_key = key, .auth_key_len = klen};
        ck_esp_sa *sa = NULL;

        memset(key, v[i].key_byte, sizeof(key));
        memset(dd, 0xdd, sizeof(dd));
        CHECK_OK(ck_esp_sa_new(&p, &sa));
        if (sa != NULL) {
            /* Twice: the second ICV comes from the reused keyed state. */
            for (int round = 0; round < 2; round++) {
                if (v[i].data != NULL)
                    CHECK_OK(ck_esp_test_icv(eng, sa, (const uint8_t *)v[i].data,
                                             strlen(v[i].data), icv));
                else
                    CHECK_OK(ck_esp_test_icv(eng, sa, dd, sizeof(dd), icv));
                CHECK_MEM_EQ(icv, sizeof(icv), want, want_len);
            }
        }
        ck_esp_sa_free(sa);
        free(want);
    }
    ck_esp_engine_free(eng);
}

static void
test_round_trip_all_suites(void)
{
    static const uint8_t encs[] = {CK_KMM_ENC_AES128, CK_KMM_ENC_3DES, CK_KMM_ENC_NULL};
    static const uint8_t auths[] = {CK_KMM_AUTH_HMAC_SHA1_96, CK_KMM_AUTH_HMAC_MD5_96};
    static const size_t iv_len[] = {16, 8, 0}, block[] = {16, 8, 4};
    ck_esp_engine *eng = NULL;
    uint8_t payload[1500], pkt[1600], pkt2[1600], out[1600];

    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i * 7 + 3);
    CHECK_OK(ck_esp_engine_new(&eng));
    for (size_t e = 0; eng != NULL && e < sizeof(encs); e++) {
        for (size_t a = 0; a < sizeof(auths); a++) {
            ck_esp_sa *o = make_sa(encs[e], auths[a], 0x12345678, NULL, 0);
            ck_esp_sa *in = make_sa(encs[e], auths[a], 0x12345678, NULL, 0);
            struct ck_esp_sa_stats st;
            uint32_t n = 0;
            uint64_t bytes = 0;

            CHECK(o != NULL && in != NULL);
            if (o == NULL || in == NULL) {
                ck_esp_sa_free(o);
                ck_esp_sa_free(in);
                continue;
            }
            CHECK(ck_esp_sa_footprint(o) <= 300);
            for (size_t len = 0; len <= 1400; len += len < 40 ? 1 : 137) {
                size_t pkt_len = 0, out_len = 0;
                uint8_t nh = 0;
                int ret;

                n++;
                bytes += len;
                ret = ck_esp_protect(eng, o, 17, payload, len, 100, pkt, sizeof(pkt), &pkt_len);
                CHECK_OK(ret);
                if (ret != 0)
                    break;
                CHECK_INT_EQ(pkt_len, ck_esp_protected_size(o, len));
                CHECK_INT_EQ((pkt_len - 8 - iv_len[e] - 12) % block[e], 0);
                CHECK_INT_EQ((pkt_len - 8 - iv_len[e] - 12) - len - 2 < block[e], 1);
                CHECK_INT_EQ(pkt[4] << 24 | pkt[5] << 16 | pkt[6] << 8 | pkt[7], n);
                CHECK_OK(ck_esp_unprotect(eng, in, pkt, pkt_len, 100, out, sizeof(out), &out_len,
                                          &nh));
                CHECK_MEM_EQ(out, out_len, payload, len);
                CHECK_INT_EQ(nh, 17);
            }
            /* Two packets of the same payload differ (fresh IV) except under NULL. */
            if (iv_len[e] > 0) {
                size_t l1 = 0, l2 = 0;

                CHECK_OK(ck_esp_protect(eng, o, 17, payload, 100, 100, pkt, sizeof(pkt), &l1));
                CHECK_OK(ck_esp_protect(eng, o, 17, payload, 100, 100, pkt2, sizeof(pkt2), &l2));
                CHECK(l1 == l2 && memcmp(pkt + 8, pkt2 + 8, iv_len[e]) != 0);
                n += 2;
                bytes += 200;
            }
            ck_esp_sa_stats(o, &st);
            CHECK_INT_EQ(st.packets, n);
            CHECK_INT_EQ(st.bytes, bytes);
            CHECK_INT_EQ(st.last_seq, n);
            ck_esp_sa_stats(in, &st);
            CHECK_INT_EQ(st.bytes, bytes - (iv_len[e] > 0 ? 200 : 0));
            ck_esp_sa_free(o);
            ck_esp_sa_free(in);
        }
    }
    ck_esp_engine_free(eng);
}

/* A protected packet carrying sequence number seq (the outbound counter is set to seq - 1). */
static size_t
packet_with_seq(ck_esp_engine *eng, ck_esp_sa *o, uint32_t seq, uint8_t *pkt, size_t cap)
{
    static const uint8_t msg[] = "NTFY 1 aaln/1@mta MGCP 1.0 NCS 1.0\r\n";
    size_t len = 0;

    ck_esp_test_set_seq(o, seq - 1);
    if (ck_esp_protect(eng, o, 17, msg, sizeof(msg) - 1, 0, pkt, cap, &len) != 0)
        return 0;
    return len;
}

static int
deliver(ck_esp_engine *eng, ck_esp_sa *o, ck_esp_sa *in, uint32_t seq)
{
    uint8_t pkt[256], out[256], nh;
    size_t len = packet_with_seq(eng, o, seq, pkt, sizeof(pkt)), out_len;

    if (len == 0)
        return -1000;
    return ck_esp_unprotect(eng, in, pkt, len, 0, out, sizeof(out), &out_len, &nh);
}

static void
test_replay_window_edges(void)
{
    ck_esp_engine *eng = NULL;
    ck_esp_sa *o = make_sa(CK_KMM_ENC_AES128, CK_KMM_AUTH_HMAC_SHA1_96, 0x300, NULL, 0);
    ck_esp_sa *in = make_sa(CK_KMM_ENC_AES128, CK_KMM_AUTH_HMAC_SHA1_96, 0x300, NULL, 0);
    struct ck_esp_sa_stats st;

    CHECK_OK(ck_esp_engine_new(&eng));
    CHECK(o != NULL && in != NULL);
    if (eng == NULL || o == NULL || in == NULL)
        goto out;
    CHECK_INT_EQ(deliver(eng, o, in, 1), 0);                      /* first packet */
    CHECK_INT_EQ(deliver(eng, o, in, 1), CK_ERR_REPLAY);          /* duplicate */
    CHECK_INT_EQ(deliver(eng, o, in, 1000), 0);                   /* jump ahead */
    /* Window 128: (1000 - 128, 1000] is inside. */
    CHECK_INT_EQ(deliver(eng, o, in, 1000 - 128), CK_ERR_REPLAY); /* just outside (left) */
    CHECK_INT_EQ(deliver(eng, o, in, 1000 - 127), 0);             /* left edge, inside */
    CHECK_INT_EQ(deliver(eng, o, in, 1000 - 127), CK_ERR_REPLAY);
    CHECK_INT_EQ(deliver(eng, o, in, 999), 0);                    /* just inside, late */
    CHECK_INT_EQ(deliver(eng, o, in, 1000), CK_ERR_REPLAY);
    CHECK_INT_EQ(deliver(eng, o, in, 1001), 0);                   /* next */
    CHECK_INT_EQ(deliver(eng, o, in, 1000 - 127), CK_ERR_REPLAY); /* now left of the window */
    /* A jump of more than the window forgets everything before it... */
    CHECK_INT_EQ(deliver(eng, o, in, 5000000), 0);
    CHECK_INT_EQ(deliver(eng, o, in, 1001), CK_ERR_REPLAY);
    /* ...and a jump of less keeps what is still inside: 4999990 was never seen. */
    CHECK_INT_EQ(deliver(eng, o, in, 5000050), 0);
    CHECK_INT_EQ(deliver(eng, o, in, 4999990), 0);
    CHECK_INT_EQ(deliver(eng, o, in, 5000000), CK_ERR_REPLAY);
    /* The ring reuses slots: a number 128 ahead of a seen one lands in its slot and is new. */
    CHECK_INT_EQ(deliver(eng, o, in, 5000050 + 128), 0);
    CHECK_INT_EQ(deliver(eng, o, in, 5000050 + 127), 0);
    CHECK_INT_EQ(deliver(eng, o, in, 5000050 + 1), 0);
    CHECK_INT_EQ(deliver(eng, o, in, 5000050), CK_ERR_REPLAY);    /* left of the window now */
    ck_esp_sa_stats(in, &st);
    CHECK_INT_EQ(st.last_seq, 5000050 + 128);
    CHECK_INT_EQ(st.replayed, 8);
    CHECK_INT_EQ(st.packets, 11);
    /* The top of the sequence space is accepted once. */
    CHECK_INT_EQ(deliver(eng, o, in, UINT32_MAX), 0);
    CHECK_INT_EQ(deliver(eng, o, in, UINT32_MAX), CK_ERR_REPLAY);
out:
    ck_esp_sa_free(o);
    ck_esp_sa_free(in);
    ck_esp_engine_free(eng);
}

static void
test_replay_window_1024(void)
{
    ck_esp_engine *eng = NULL;
    ck_esp_sa *o = make_sa(CK_KMM_ENC_NULL, CK_KMM_AUTH_HMAC_SHA1_96, 0x301, NULL, 1024);
    ck_esp_sa *in = make_sa(CK_KMM_ENC_NULL, CK_KMM_AUTH_HMAC_SHA1_96, 0x301, NULL, 1024);
    ck_esp_sa *bad = make_sa(CK_KMM_ENC_NULL, CK_KMM_AUTH_HMAC_SHA1_96, 0x301, NULL, 1025);
    int ok = 1;

    CHECK(bad == NULL);
    CHECK_OK(ck_esp_engine_new(&eng));
    CHECK(o != NULL && in != NULL);
    if (eng == NULL || o == NULL || in == NULL)
        goto out;
    CHECK(ck_esp_sa_footprint(in) <= 300);
    /* Every other number of 2..3000, then the gaps: only those inside the window are new. */
    for (uint32_t s = 2; s <= 3000; s += 2)
        ok &= deliver(eng, o, in, s) == 0;
    CHECK(ok);
    for (uint32_t s = 1; s < 3000; s += 2) {
        int want = 3000 - s < 1024 ? 0 : CK_ERR_REPLAY;

        if (deliver(eng, o, in, s) != want) {
            fprintf(stderr, "  seq %u\n", s);
            ok = 0;
        }
    }
    CHECK(ok);
    CHECK_INT_EQ(deliver(eng, o, in, 3000 - 1023), CK_ERR_REPLAY); /* seen just now */
    CHECK_INT_EQ(deliver(eng, o, in, 3000 - 1024), CK_ERR_REPLAY); /* outside */
    CHECK_INT_EQ(deliver(eng, o, in, 3000 + 1024), 0);
    CHECK_INT_EQ(deliver(eng, o, in, 3001), 0);  /* inside: 4024 - 3001 = 1023 */
    CHECK_INT_EQ(deliver(eng, o, in, 3000), CK_ERR_REPLAY);
out:
    ck_esp_sa_free(o);
    ck_esp_sa_free(in);
    ck_esp_engine_free(eng);
}

static void
test_sequence_exhaustion(void)
{
    ck_esp_engine *eng = NULL;
    ck_esp_sa *o = make_sa(CK_KMM_ENC_AES128, CK_KMM_AUTH_HMAC_SHA1_96, 0x400, NULL, 0);
    uint8_t pkt[128];
    size_t len = 0;
    struct ck_esp_sa_stats st;

    CHECK_OK(ck_esp_engine_new(&eng));
    CHECK(o != NULL);
    if (eng == NULL || o == NULL)
        goto out;
    ck_esp_test_set_seq(o, UINT32_MAX - 1);
    CHECK_OK(ck_esp_protect(eng, o, 17, (const uint8_t *)"x", 1, 0, pkt, sizeof(pkt), &len));
    CHECK(len > 8 && memcmp(pkt + 4, "\xff\xff\xff\xff", 4) == 0);
    len = 99;
    CHECK_INT_EQ(ck_esp_protect(eng, o, 17, (const uint8_t *)"x", 1, 0, pkt, sizeof(pkt), &len),
                 CK_ERR_EXPIRED);
    CHECK_INT_EQ(len, 0);
    ck_esp_sa_stats(o, &st);
    CHECK_INT_EQ(st.last_seq, UINT32_MAX);
    CHECK_INT_EQ(st.expired, 1);
out:
    ck_esp_sa_free(o);
    ck_esp_engine_free(eng);
}

static void
test_lifetimes(void)
{
    struct ck_esp_sa_params p = {.spi = 0x500, .enc = CK_KMM_ENC_AES128,
                                 .auth = CK_KMM_AUTH_HMAC_SHA1_96, .enc_key = enc24,
                                 .enc_key_len = 16, .auth_key = auth20, .auth_key_len = 20,
                                 .expires = 1000, .life_bytes = 250};
    ck_esp_engine *eng = NULL;
    ck_esp_sa *o = NULL, *in = NULL;
    uint8_t data[200] = {0}, pkt[300], pkt2[300], out[300], nh;
    size_t len = 0, len2 = 0, out_len = 0;

    CHECK_OK(ck_esp_engine_new(&eng));
    CHECK_OK(ck_esp_sa_new(&p, &o));
    CHECK_OK(ck_esp_sa_new(&p, &in));
    if (eng == NULL || o == NULL || in == NULL)
        goto out;
    /* Time: valid before expires, refused from it on, both directions. */
    CHECK_OK(ck_esp_protect(eng, o, 17, data, 100, 999, pkt, sizeof(pkt), &len));
    CHECK_INT_EQ(ck_esp_protect(eng, o, 17, data, 1, 1000, pkt2, sizeof(pkt2), &len2),
                 CK_ERR_EXPIRED);
    CHECK_INT_EQ(ck_esp_unprotect(eng, in, pkt, len, 1000, out, sizeof(out), &out_len, &nh),
                 CK_ERR_EXPIRED);
    CHECK_OK(ck_esp_unprotect(eng, in, pkt, len, 999, out, sizeof(out), &out_len, &nh));
    /* Bytes: 100 used of 250; 150 more fit exactly, one more byte does not. */
    CHECK_INT_EQ(ck_esp_protect(eng, o, 17, data, 151, 0, pkt2, sizeof(pkt2), &len2),
                 CK_ERR_EXPIRED);
    CHECK_OK(ck_esp_protect(eng, o, 17, data, 150, 0, pkt2, sizeof(pkt2), &len2));
    CHECK_INT_EQ(ck_esp_protect(eng, o, 17, data, 0, 0, pkt, sizeof(pkt), &len),
                 CK_ERR_EXPIRED);
    CHECK_OK(ck_esp_unprotect(eng, in, pkt2, len2, 0, out, sizeof(out), &out_len, &nh));
    CHECK_INT_EQ(out_len, 150);
    /* Inbound, a packet that would take the SA over its byte lifetime is refused. */
    {
        ck_esp_sa *o2 = make_sa(CK_KMM_ENC_AES128, CK_KMM_AUTH_HMAC_SHA1_96, 0x500, enc24, 0);
        struct ck_esp_sa_stats st;

        CHECK(o2 != NULL);
        if (o2 != NULL) {
            ck_esp_test_set_seq(o2, 10);
            CHECK_OK(ck_esp_protect(eng, o2, 17, data, 1, 0, pkt, sizeof(pkt), &len));
            memset(out, 0xa5, sizeof(out));
            CHECK_INT_EQ(ck_esp_unprotect(eng, in, pkt, len, 0, out, sizeof(out), &out_len, &nh),
                         CK_ERR_EXPIRED);
            CHECK(out[0] == 0xa5);
            ck_esp_sa_stats(in, &st);
            CHECK_INT_EQ(st.last_seq, 2);
            CHECK_INT_EQ(st.expired, 2);
        }
        ck_esp_sa_free(o2);
    }
out:
    ck_esp_sa_free(o);
    ck_esp_sa_free(in);
    ck_esp_engine_free(eng);
}

/* Encrypts plain (whole blocks, trailer included) as a packet of in's SA and appends a valid
 * ICV: what only a buggy or malicious key holder could send. */
static size_t
forge_aes(ck_esp_engine *eng, const ck_esp_sa *in, const uint8_t key[16], uint32_t seq,
          const uint8_t *plain, size_t plen, uint8_t *pkt)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n = 0;
    size_t len;

    pkt[0] = (uint8_t)(ck_esp_sa_spi(in) >> 24);
    pkt[1] = (uint8_t)(ck_esp_sa_spi(in) >> 16);
    pkt[2] = (uint8_t)(ck_esp_sa_spi(in) >> 8);
    pkt[3] = (uint8_t)ck_esp_sa_spi(in);
    pkt[4] = (uint8_t)(seq >> 24);
    pkt[5] = (uint8_t)(seq >> 16);
    pkt[6] = (uint8_t)(seq >> 8);
    pkt[7] = (uint8_t)seq;
    memset(pkt + 8, 0x5c, 16);
    if (c == NULL || !EVP_EncryptInit_ex2(c, EVP_aes_128_cbc(), key, pkt + 8, NULL) ||
        !EVP_CIPHER_CTX_set_padding(c, 0) ||
        !EVP_EncryptUpdate(c, pkt + 24, &n, plain, (int)plen)) {
        EVP_CIPHER_CTX_free(c);
        return 0;
    }
    EVP_CIPHER_CTX_free(c);
    len = 24 + plen;
    if (ck_esp_test_icv(eng, in, pkt, len, pkt + len) != 0)
        return 0;
    return len + CK_ESP_ICV_LEN;
}

static void
test_refusals_leave_state(void)
{
    static const uint8_t key[16] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6};
    ck_esp_engine *eng = NULL;
    ck_esp_sa *o = make_sa(CK_KMM_ENC_AES128, CK_KMM_AUTH_HMAC_SHA1_96, 0x600, key, 0);
    ck_esp_sa *in = make_sa(CK_KMM_ENC_AES128, CK_KMM_AUTH_HMAC_SHA1_96, 0x600, key, 0);
    uint8_t good[256], pkt[600], out[600], plain[512], nh = 0;
    size_t glen, len, out_len = 0;
    struct ck_esp_sa_stats st;

    CHECK_OK(ck_esp_engine_new(&eng));
    CHECK(o != NULL && in != NULL);
    if (eng == NULL || o == NULL || in == NULL)
        goto out;
    glen = packet_with_seq(eng, o, 7, good, sizeof(good));
    CHECK(glen > 0);
    memset(out, 0xa5, sizeof(out));
#define REFUSED(p, l, err)                                                                  \
    do {                                                                                    \
        out_len = 77;                                                                       \
        CHECK_INT_EQ(ck_esp_unprotect(eng, in, p, l, 0, out, sizeof(out), &out_len, &nh), err); \
        CHECK_INT_EQ(out_len, 0);                                                           \
        CHECK(out[0] == 0xa5 && out[100] == 0xa5);                                         \
    } while (0)

    /* Forged ICV (each of its bytes), and a flipped ciphertext bit. */
    for (size_t i = glen - 12; i < glen; i++) {
        memcpy(pkt, good, glen);
        pkt[i] ^= 0x01;
        REFUSED(pkt, glen, CK_ERR_INTEGRITY);
    }
    memcpy(pkt, good, glen);
    pkt[30] ^= 0x80;
    REFUSED(pkt, glen, CK_ERR_INTEGRITY);
    /* Truncated anywhere, or a block short. */
    for (size_t l = 0; l < glen; l++)
        REFUSED(good, l, l >= 8 + 16 + 16 + 12 && (l - 36) % 16 == 0 ? CK_ERR_INTEGRITY
                                                                       : CK_ERR_DECODE);
    /* Wrong SPI. */
    memcpy(pkt, good, glen);
    pkt[3] ^= 1;
    REFUSED(pkt, glen, CK_ERR_DECODE);
    /* Bad padding under a valid ICV: a wrong pad byte, a pad length over the packet. */
    memset(plain, 0x41, 32);
    memcpy(plain + 26, "\x01\x02\x04\x04\x04\x11", 6);
    len = forge_aes(eng, in, key, 7, plain, 32, pkt);
    CHECK(len > 0);
    REFUSED(pkt, len, CK_ERR_DECODE);
    plain[28] = 0x03;
    plain[30] = 0x22; /* pad length 34 in a 32-byte ciphertext */
    len = forge_aes(eng, in, key, 7, plain, 32, pkt);
    REFUSED(pkt, len, CK_ERR_DECODE);
    /* Sequence number 0 is never sent (RFC 4303 §3.3.3), even under a valid ICV. */
    memcpy(plain + 26, "\x01\x02\x03\x04\x04\x11", 6);
    len = forge_aes(eng, in, key, 0, plain, 32, pkt);
    REFUSED(pkt, len, CK_ERR_REPLAY);
    /* Output buffer too small. */
    out_len = 77;
    CHECK_INT_EQ(ck_esp_unprotect(eng, in, good, glen, 0, out, 3, &out_len, &nh), CK_ERR_LIMIT);
    CHECK(out[0] == 0xa5);

    ck_esp_sa_stats(in, &st);
    CHECK_INT_EQ(st.packets, 0);
    CHECK_INT_EQ(st.last_seq, 0);
    CHECK_INT_EQ(st.bad_icv, 15);
    /* The window did not move: the genuine packet is still accepted, once. */
    CHECK_OK(ck_esp_unprotect(eng, in, good, glen, 0, out, sizeof(out), &out_len, &nh));
    CHECK_INT_EQ(ck_esp_unprotect(eng, in, good, glen, 0, out, sizeof(out), &out_len, &nh),
                 CK_ERR_REPLAY);

    /* Another sender's longer padding (RFC 4303 allows up to 255 bytes) is accepted: 5 payload
     * bytes, 249 pad bytes, pad length, next header = 256 bytes, spanning 16 blocks. */
    memcpy(plain, "hello", 5);
    for (int i = 0; i < 249; i++)
        plain[5 + i] = (uint8_t)(i + 1);
    plain[254] = 249;
    plain[255] = 17;
    len = forge_aes(eng, in, key, 8, plain, 256, pkt);
    CHECK_OK(ck_esp_unprotect(eng, in, pkt, len, 0, out, sizeof(out), &out_len, &nh));
    CHECK_MEM_EQ(out, out_len, "hello", (size_t)5);
    /* 255 bytes of padding: the trailer alone is 257 bytes. */
    memset(plain, 0x42, 15);
    for (int i = 0; i < 255; i++)
        plain[15 + i] = (uint8_t)(i + 1);
    plain[270] = 255;
    plain[271] = 4;
    len = forge_aes(eng, in, key, 9, plain, 272, pkt);
    CHECK_OK(ck_esp_unprotect(eng, in, pkt, len, 0, out, sizeof(out), &out_len, &nh));
    CHECK_INT_EQ(out_len, 15);
    CHECK_INT_EQ(nh, 4);
    /* The same with one pad byte wrong far from the end. */
    plain[20] ^= 0xff;
    len = forge_aes(eng, in, key, 10, plain, 272, pkt);
    memset(out, 0xa5, sizeof(out));
    REFUSED(pkt, len, CK_ERR_DECODE);
#undef REFUSED
out:
    ck_esp_sa_free(o);
    ck_esp_sa_free(in);
    ck_esp_engine_free(eng);
}

static void
test_null_bad_padding(void)
{
    ck_esp_engine *eng = NULL;
    ck_esp_sa *o = make_sa(CK_KMM_ENC_NULL, CK_KMM_AUTH_HMAC_MD5_96, 0x700, NULL, 0);
    ck_esp_sa *in = make_sa(CK_KMM_ENC_NULL, CK_KMM_AUTH_HMAC_MD5_96, 0x700, NULL, 0);
    uint8_t pkt[64], out[64], nh;
    size_t len = 0, out_len = 0;

    CHECK_OK(ck_esp_engine_new(&eng));
    if (eng == NULL || o == NULL || in == NULL)
        goto out;
    /* "abc" + pad 1,2,3 + 3 + 17: 8 bytes, 4-byte aligned, in clear. */
    CHECK_OK(ck_esp_protect(eng, o, 17, (const uint8_t *)"abcde", 5, 0, pkt, sizeof(pkt), &len));
    CHECK_INT_EQ(len, 8 + 8 + 12);
    CHECK_MEM_EQ(pkt + 8, (size_t)8, "abcde\x01\x01\x11", (size_t)8);
    pkt[13] = 0x02; /* pad byte 2 where 1 belongs, ICV recomputed */
    CHECK_OK(ck_esp_test_icv(eng, in, pkt, len - 12, pkt + len - 12));
    memset(out, 0xa5, sizeof(out));
    CHECK_INT_EQ(ck_esp_unprotect(eng, in, pkt, len, 0, out, sizeof(out), &out_len, &nh),
                 CK_ERR_DECODE);
    CHECK(out[0] == 0xa5);
    /* Not 4-byte aligned. */
    CHECK_INT_EQ(ck_esp_unprotect(eng, in, pkt, len - 1, 0, out, sizeof(out), &out_len, &nh),
                 CK_ERR_DECODE);
out:
    ck_esp_sa_free(o);
    ck_esp_sa_free(in);
    ck_esp_engine_free(eng);
}

static void
test_params_refused(void)
{
    struct ck_esp_sa_params p = {.spi = 1, .enc = CK_KMM_ENC_AES128,
                                 .auth = CK_KMM_AUTH_HMAC_SHA1_96, .enc_key = enc24,
                                 .enc_key_len = 16, .auth_key = auth20, .auth_key_len = 20};
    ck_esp_sa *sa = NULL;

    CHECK_OK(ck_esp_sa_new(&p, &sa));
    ck_esp_sa_free(sa);
    ck_esp_sa_free(NULL);
    p.enc = CK_KMM_ENC_RC5;
    CHECK_INT_EQ(ck_esp_sa_new(&p, &sa), CK_ERR_UNSUPPORTED);
    p.enc = CK_KMM_ENC_AES128;
    p.auth = 0x07;
    CHECK_INT_EQ(ck_esp_sa_new(&p, &sa), CK_ERR_UNSUPPORTED);
    p.auth = CK_KMM_AUTH_HMAC_SHA1_96;
    p.enc_key_len = 24;
    CHECK_INT_EQ(ck_esp_sa_new(&p, &sa), CK_ERR_INVAL);
    p.enc_key_len = 16;
    p.auth_key_len = 16;
    CHECK_INT_EQ(ck_esp_sa_new(&p, &sa), CK_ERR_INVAL);
    p.auth_key_len = 20;
    p.spi = 0;
    CHECK_INT_EQ(ck_esp_sa_new(&p, &sa), CK_ERR_INVAL);
    p.spi = 1;
    p.replay_window = CK_ESP_MAX_WINDOW + 1;
    CHECK_INT_EQ(ck_esp_sa_new(&p, &sa), CK_ERR_INVAL);
    CHECK(sa == NULL);
}

/* An SA freed and a new one allocated (likely at the same address, with other keys): the engine
 * must re-key, not reuse the old SA's contexts. */
static void
test_engine_rekeys_for_new_sa(void)
{
    static const uint8_t k1[16] = {1}, k2[16] = {2};
    ck_esp_engine *eng = NULL;
    ck_esp_sa *o, *in;
    uint8_t pkt[128], out[128], nh;
    size_t len = 0, out_len = 0;

    CHECK_OK(ck_esp_engine_new(&eng));
    if (eng == NULL)
        return;
    for (int round = 0; round < 4; round++) {
        const uint8_t *k = round % 2 ? k2 : k1;

        o = make_sa(CK_KMM_ENC_AES128, CK_KMM_AUTH_HMAC_SHA1_96, 0x800, k, 0);
        CHECK_OK(ck_esp_protect(eng, o, 17, (const uint8_t *)"rekey", 5, 0, pkt, sizeof(pkt),
                                &len));
        ck_esp_sa_free(o);
        /* A fresh engine decrypts with the right key only. */
        in = make_sa(CK_KMM_ENC_AES128, CK_KMM_AUTH_HMAC_SHA1_96, 0x800, k, 0);
        CHECK_OK(ck_esp_unprotect(eng, in, pkt, len, 0, out, sizeof(out), &out_len, &nh));
        CHECK_MEM_EQ(out, out_len, "rekey", (size_t)5);
        ck_esp_sa_free(in);
    }
    ck_esp_engine_free(eng);
}

/* An engine used on both sides of fork() must not give parent and child the same IVs. */
static void
test_fork_fresh_ivs(void)
{
    ck_esp_engine *eng = NULL;
    ck_esp_sa *o = make_sa(CK_KMM_ENC_AES128, CK_KMM_AUTH_HMAC_SHA1_96, 0xa00, NULL, 0);
    uint8_t pkt[128], child_iv[16];
    size_t len = 0;
    int fds[2], status = 0;
    pid_t pid;

    CHECK_OK(ck_esp_engine_new(&eng));
    if (eng == NULL || o == NULL || pipe(fds) != 0) {
        CHECK(0);
        goto out;
    }
    CHECK_OK(ck_esp_protect(eng, o, 17, (const uint8_t *)"x", 1, 0, pkt, sizeof(pkt), &len));
    pid = fork();
    if (pid == 0) {
        int ok = ck_esp_protect(eng, o, 17, (const uint8_t *)"x", 1, 0, pkt, sizeof(pkt),
                                &len) == 0 && write(fds[1], pkt + 8, 16) == 16;
        _exit(ok ? 0 : 1);
    }
    CHECK(pid > 0);
    CHECK_OK(ck_esp_protect(eng, o, 17, (const uint8_t *)"x", 1, 0, pkt, sizeof(pkt), &len));
    CHECK(read(fds[0], child_iv, sizeof(child_iv)) == (ssize_t)sizeof(child_iv));
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
          WEXITSTATUS(status) == 0);
    CHECK(memcmp(child_iv, pkt + 8, 16) != 0);
    close(fds[0]);
    close(fds[1]);
out:
    ck_esp_sa_free(o);
    ck_esp_engine_free(eng);
}

static void
test_protect_limits(void)
{
    ck_esp_engine *eng = NULL;
    ck_esp_sa *o = make_sa(CK_KMM_ENC_AES128, CK_KMM_AUTH_HMAC_SHA1_96, 0x900, NULL, 0);
    static uint8_t big[CK_ESP_MAX_PACKET + 100], pkt[CK_ESP_MAX_PACKET + 200];
    size_t len = 5;

    CHECK_OK(ck_esp_engine_new(&eng));
    if (eng == NULL || o == NULL)
        goto out;
    CHECK_INT_EQ(ck_esp_protect(eng, o, 17, big, 100, 0, pkt, 100 + 8 + 16 + 12, &len),
                 CK_ERR_LIMIT);
    CHECK_INT_EQ(len, 0);
    CHECK_INT_EQ(ck_esp_protect(eng, o, 17, big, CK_ESP_MAX_PACKET, 0, pkt, sizeof(pkt), &len),
                 CK_ERR_LIMIT);
    /* The largest payload that fits: 65507 - 8 - 16 - 12 = 65471 -> 65456 of ciphertext. */
    CHECK_OK(ck_esp_protect(eng, o, 17, big, 65454, 0, pkt, sizeof(pkt), &len));
    CHECK(len <= CK_ESP_MAX_PACKET);
    CHECK_INT_EQ(ck_esp_protect(eng, o, 17, big, 65455, 0, pkt, sizeof(pkt), &len),
                 CK_ERR_LIMIT);
    /* An empty payload (e.g. an RFC 4303 dummy packet, next header 59) needs no buffer. */
    {
        ck_esp_sa *in = make_sa(CK_KMM_ENC_AES128, CK_KMM_AUTH_HMAC_SHA1_96, 0x900, NULL, 0);
        size_t out_len = 9;
        uint8_t nh = 0;

        CHECK_OK(ck_esp_protect(eng, o, 59, NULL, 0, 0, pkt, sizeof(pkt), &len));
        CHECK_INT_EQ(len, 8 + 16 + 16 + 12);
        if (in != NULL)
            CHECK_OK(ck_esp_unprotect(eng, in, pkt, len, 0, big, 0, &out_len, &nh));
        CHECK(out_len == 0 && nh == 59);
        ck_esp_sa_free(in);
    }
out:
    ck_esp_sa_free(o);
    ck_esp_engine_free(eng);
}

static void
test_udp_classify(void)
{
    uint32_t spi = 0;

    CHECK_INT_EQ(ck_esp_udp_classify((const uint8_t *)"\xff", 1, &spi), CK_ESP_UDP_KEEPALIVE);
    CHECK_INT_EQ(ck_esp_udp_classify((const uint8_t *)"\xfe", 1, &spi), CK_ESP_UDP_INVALID);
    CHECK_INT_EQ(ck_esp_udp_classify((const uint8_t *)"", 0, &spi), CK_ESP_UDP_INVALID);
    CHECK_INT_EQ(ck_esp_udp_classify((const uint8_t *)"\0\0\0\0", 4, &spi), CK_ESP_UDP_NON_ESP);
    CHECK_INT_EQ(ck_esp_udp_classify((const uint8_t *)"\0\0\0\0IKEv2...", 12, &spi),
                 CK_ESP_UDP_NON_ESP);
    CHECK_INT_EQ(ck_esp_udp_classify((const uint8_t *)"\0\0\0", 3, &spi), CK_ESP_UDP_INVALID);
    CHECK_INT_EQ(ck_esp_udp_classify((const uint8_t *)"\0\0\1\0\0\0\0", 7, &spi),
                 CK_ESP_UDP_INVALID);
    CHECK_INT_EQ(ck_esp_udp_classify((const uint8_t *)"\xff\xff", 2, &spi), CK_ESP_UDP_INVALID);
    CHECK_INT_EQ(ck_esp_udp_classify((const uint8_t *)"\x12\x34\x56\x78\0\0\0\1", 8, &spi),
                 CK_ESP_UDP_ESP);
    CHECK_INT_EQ(spi, 0x12345678);
}

static void
test_udp_wrap(void)
{
    uint8_t out[64];
    const uint8_t *data = NULL;
    size_t len = 0, dlen = 0;
    uint16_t sp = 0, dp = 0;

    CHECK_OK(ck_esp_udp_wrap(2427, 2727, (const uint8_t *)"RSIP", 4, out, sizeof(out), &len));
    CHECK_MEM_EQ(out, len, "\x09\x7b\x0a\xa7\x00\x0c\x00\x00RSIP", (size_t)12);
    CHECK_OK(ck_esp_udp_unwrap(out, len, &sp, &dp, &data, &dlen));
    CHECK(sp == 2427 && dp == 2727 && dlen == 4 && data == out + 8);
    CHECK_INT_EQ(ck_esp_udp_unwrap(out, len - 1, &sp, &dp, &data, &dlen), CK_ERR_DECODE);
    CHECK_INT_EQ(ck_esp_udp_unwrap(out, 7, &sp, &dp, &data, &dlen), CK_ERR_DECODE);
    out[5] = 13;
    CHECK_INT_EQ(ck_esp_udp_unwrap(out, len, &sp, &dp, &data, &dlen), CK_ERR_DECODE);
    CHECK_INT_EQ(ck_esp_udp_wrap(1, 2, out, 57, out, sizeof(out), &len), CK_ERR_LIMIT);
    CHECK_OK(ck_esp_udp_wrap(1, 2, out, 56, out, sizeof(out), &len));
    CHECK_INT_EQ(ck_esp_udp_wrap(1, 2, out, 65528, NULL, SIZE_MAX, &len), CK_ERR_LIMIT);
}

static void
test_xfrm_format(void)
{
    static const uint8_t aes[16] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                                    0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
    ck_esp_sa *a = make_sa(CK_KMM_ENC_AES128, CK_KMM_AUTH_HMAC_SHA1_96, 0xc0ffee01, aes, 0);
    ck_esp_sa *n = make_sa(CK_KMM_ENC_NULL, CK_KMM_AUTH_HMAC_MD5_96, 0x100, NULL, 0);
    ck_esp_sa *d = make_sa(CK_KMM_ENC_3DES, CK_KMM_AUTH_HMAC_SHA1_96, 0x101, NULL, 0);
    struct ck_esp_xfrm_desc x = {.src = "192.0.2.1", .dst = "192.0.2.2", .src_port = 4500,
                                 .dst_port = 40000, .inner_src_port = 2727,
                                 .inner_dst_port = 2427, .reqid = 7};
    char buf[1024];
    size_t used = 0;

    if (a == NULL || n == NULL || d == NULL) {
        CHECK(0);
        goto out;
    }
    CHECK_OK(ck_esp_xfrm_format(a, &x, buf, sizeof(buf), &used));
    CHECK_INT_EQ(used, strlen(buf));
    CHECK(strcmp(buf,
                 "ip xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0xc0ffee01 reqid 7 "
                 "mode transport auth-trunc 'hmac(sha1)' "
                 "0x112233445566778899aabbccddeeff0102030405 96 enc 'cbc(aes)' "
                 "0x00112233445566778899aabbccddeeff encap espinudp 4500 40000 0.0.0.0\n"
                 "ip xfrm policy add src 192.0.2.1/32 dst 192.0.2.2/32 proto udp sport 2727 "
                 "dport 2427 dir out tmpl src 192.0.2.1 dst 192.0.2.2 proto esp reqid 7 mode "
                 "transport\n") == 0);
    /* Appended after what is there. */
    x.src = "2001:db8::1";
    x.dst = "2001:db8::2";
    x.inner_src_port = 0;
    CHECK_OK(ck_esp_xfrm_format(n, &x, buf, sizeof(buf), &used));
    CHECK(strstr(buf, "spi 0x00000100 reqid 7 mode transport auth-trunc 'hmac(md5)' "
                      "0x112233445566778899aabbccddeeff01 96 enc 'ecb(cipher_null)' \"\" "
                      "encap espinudp 4500 40000 ::\n") != NULL);
    CHECK(strstr(buf, "policy add src 2001:db8::1/128 dst 2001:db8::2/128 proto udp dport 2427 "
                      "dir out") != NULL);
    CHECK_INT_EQ(used, strlen(buf));
    used = 0;
    CHECK_OK(ck_esp_xfrm_format(d, &x, buf, sizeof(buf), &used));
    CHECK(strstr(buf, "enc 'cbc(des3_ede)' 0x0102030405060708090a0b0c0d0e0f101112131415161718 "
                      "encap") != NULL);
    /* Refused: names, mixed families, injection, a buffer too small (nothing left in it). */
    used = 0;
    x.src = "host.example";
    CHECK_INT_EQ(ck_esp_xfrm_format(a, &x, buf, sizeof(buf), &used), CK_ERR_INVAL);
    x.src = "192.0.2.1";
    CHECK_INT_EQ(ck_esp_xfrm_format(a, &x, buf, sizeof(buf), &used), CK_ERR_INVAL);
    x.dst = "192.0.2.2; rm -rf /";
    CHECK_INT_EQ(ck_esp_xfrm_format(a, &x, buf, sizeof(buf), &used), CK_ERR_INVAL);
    x.dst = "192.0.2.2";
    memset(buf, 'z', sizeof(buf));
    CHECK_INT_EQ(ck_esp_xfrm_format(a, &x, buf, 200, &used), CK_ERR_LIMIT);
    CHECK_INT_EQ(used, 0);
    CHECK(buf[0] == '\0' && memchr(buf, '0', 200) == NULL);
out:
    ck_esp_sa_free(a);
    ck_esp_sa_free(n);
    ck_esp_sa_free(d);
}

CK_TEST_MAIN("esp", CK_TEST_CASE(test_rfc3602_packets), CK_TEST_CASE(test_hmac_96_vectors),
             CK_TEST_CASE(test_round_trip_all_suites), CK_TEST_CASE(test_replay_window_edges),
             CK_TEST_CASE(test_replay_window_1024), CK_TEST_CASE(test_sequence_exhaustion),
             CK_TEST_CASE(test_lifetimes), CK_TEST_CASE(test_refusals_leave_state),
             CK_TEST_CASE(test_null_bad_padding), CK_TEST_CASE(test_params_refused),
             CK_TEST_CASE(test_engine_rekeys_for_new_sa), CK_TEST_CASE(test_fork_fresh_ivs),
             CK_TEST_CASE(test_protect_limits),
             CK_TEST_CASE(test_udp_classify), CK_TEST_CASE(test_udp_wrap),
             CK_TEST_CASE(test_xfrm_format))
