/* lib/esp xform.c (ck_esp_xf_*, IKEv2 transforms): packets made independently (Python
 * `cryptography`, RFC 4106 / 7634 / 3602 + 4868 framing) are opened and the deterministic ones
 * (AEAD, NULL) produced byte for byte; every transform round-trips; tampering, truncation,
 * replays, a wrong SPI, bad padding behind a valid ICV and sequence exhaustion are refused with
 * the window and the output untouched; transforms and key lengths it does not run are refused. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "cablekey/error.h"
#include "cablekey/esp.h"
#include "cablekey/util.h"
#include "ck_test.h"
#include "esp/esp_int.h"

static uint8_t k16[16], k32[32], ak[32], ak64[64];
static const uint8_t salt[4] = {0xca, 0xfe, 0xba, 0xbe};

static void
init_keys(void)
{
    for (int i = 0; i < 16; i++)
        k16[i] = (uint8_t)(0x10 + i);
    for (int i = 0; i < 32; i++) {
        k32[i] = (uint8_t)(0x40 + i);
        ak[i] = (uint8_t)(0x60 + i);
    }
    for (int i = 0; i < 64; i++)
        ak64[i] = (uint8_t)i;
}

/* An SA of the given transform with the test keys (AEAD: key then salt). */
static ck_esp_xf *
make_xf(uint16_t enc, uint16_t auth, size_t el, size_t al, int *err)
{
    struct ck_esp_xf_params p;
    uint8_t ek[40];
    ck_esp_xf *x = NULL;

    memset(&p, 0, sizeof(p));
    if (enc == CK_ESP_XF_ENC_AES_GCM_16 || enc == CK_ESP_XF_ENC_CHACHA20_POLY1305) {
        size_t kl = el >= 4 ? el - 4 : 0;
        memcpy(ek, kl <= 16 ? k16 : k32, kl <= 16 ? kl : (kl <= 32 ? kl : 32));
        if (el >= 4 && kl <= 32)
            memcpy(ek + kl, salt, 4);
    } else {
        memcpy(ek, k32, el <= 32 ? el : 32);
    }
    p.spi = 0x1234;
    p.enc_alg = enc;
    p.auth_alg = auth;
    p.enc_key = ek;
    p.enc_key_len = el;
    p.auth_key = al > sizeof(ak) ? ak64 : ak;
    p.auth_key_len = al;
    *err = ck_esp_xf_new(&p, &x);
    ck_memzero(ek, sizeof(ek));
    return x;
}

static const struct {
    uint16_t enc, auth;
    size_t el, al;
    bool deterministic;
    const char *hex; /* SPI 0x1234, sequence 1, "hello esp", next header 17 */
} vectors[] = {
    {20, 0, 20, 0, true,
     "0000123400000001000000000000000103eb0e87c303cc0ce18e69eae5fbb546227cd3585b9a7e2305606a81"},
    {28, 0, 36, 0, true,
     "00001234000000010000000000000001201cadd9ca02a96e87fea668dbef4031ca1227e3fe55cc8b3fa60b32"},
    {12, 12, 32, 32, false,
     "0000123400000001a0a1a2a3a4a5a6a7a8a9aaabacadaeaf2e13365a916107cf8e114d9245308f3173a41bbb"
     "a70fe704577eaf0c0a9ac01b"},
    {11, 14, 0, 64, true,
     "000012340000000168656c6c6f20657370010111fdd72303c896ec08d08d3959ceeb6787618467027aa9d54b"
     "eabb3e1baf9840ea"},
};

static void
test_independent_vectors(void)
{
    uint8_t out[256], pkt[256];

    init_keys();
    for (size_t t = 0; t < sizeof(vectors) / sizeof(vectors[0]); t++) {
        int err = 0;
        ck_esp_xf *rx = make_xf(vectors[t].enc, vectors[t].auth, vectors[t].el, vectors[t].al,
                                &err);
        ck_esp_xf *tx = make_xf(vectors[t].enc, vectors[t].auth, vectors[t].el, vectors[t].al,
                                &err);
        size_t len, plen = 0, olen = 0;
        uint8_t nh = 0, *ref = ck_test_hex(vectors[t].hex, &len);
        struct ck_esp_sa_stats st;

        CHECK(rx != NULL && tx != NULL);
        if (rx == NULL || tx == NULL) {
            ck_esp_xf_free(rx);
            ck_esp_xf_free(tx);
            free(ref);
            continue;
        }
        CHECK_OK(ck_esp_xf_unprotect(rx, ref, len, out, sizeof(out), &plen, &nh));
        CHECK_MEM_EQ(out, plen, "hello esp", 9);
        CHECK_INT_EQ(nh, 17);
        /* The same packet again: a replay. */
        CHECK_INT_EQ(ck_esp_xf_unprotect(rx, ref, len, out, sizeof(out), &plen, &nh),
                     CK_ERR_REPLAY);
        CHECK_OK(ck_esp_xf_protect(tx, 17, (const uint8_t *)"hello esp", 9, pkt, sizeof(pkt),
                                   &olen));
        CHECK_INT_EQ(olen, len);
        CHECK_INT_EQ(ck_esp_xf_protected_size(tx, 9), len);
        if (vectors[t].deterministic)
            CHECK_MEM_EQ(pkt, olen, ref, len);
        /* Sequence 2 from our sender opens; a flipped bit anywhere does not. */
        CHECK_OK(ck_esp_xf_protect(tx, 17, (const uint8_t *)"second", 6, pkt, sizeof(pkt),
                                   &olen));
        for (size_t b = 8; b < olen; b += 7) {
            pkt[b] ^= 0x01;
            CHECK_INT_EQ(ck_esp_xf_unprotect(rx, pkt, olen, out, sizeof(out), &plen, &nh),
                         CK_ERR_INTEGRITY);
            pkt[b] ^= 0x01;
        }
        CHECK(ck_esp_xf_unprotect(rx, pkt, olen - 1, out, sizeof(out), &plen, &nh) < 0);
        /* Too small an output buffer: refused, and the packet still opens after. */
        CHECK_INT_EQ(ck_esp_xf_unprotect(rx, pkt, olen, out, 5, &plen, &nh), CK_ERR_LIMIT);
        CHECK_OK(ck_esp_xf_unprotect(rx, pkt, olen, out, sizeof(out), &plen, &nh));
        CHECK_MEM_EQ(out, plen, "second", 6);
        pkt[3] ^= 1;
        CHECK_INT_EQ(ck_esp_xf_unprotect(rx, pkt, olen, out, sizeof(out), &plen, &nh),
                     CK_ERR_DECODE);
        ck_esp_xf_stats(rx, &st);
        CHECK_INT_EQ(st.packets, 2);
        CHECK_INT_EQ(st.last_seq, 2);
        CHECK_INT_EQ(st.replayed, 1);
        CHECK(st.bad_icv >= 1);
        ck_esp_xf_free(rx);
        ck_esp_xf_free(tx);
        free(ref);
    }
}

/* Every transform, every payload length 0..300: what is protected opens to the same bytes, in
 * order and out of order within the window. */
static void
test_round_trip_all(void)
{
    static const struct {
        uint16_t enc, auth;
        size_t el, al;
    } xf[] = {
        {20, 0, 20, 0},  {20, 0, 36, 0},  {28, 0, 36, 0},  {12, 2, 16, 20},
        {12, 12, 16, 32}, {12, 13, 32, 48}, {12, 14, 32, 64}, {11, 2, 0, 20},
        {11, 12, 0, 32},  {11, 13, 0, 48},  {11, 14, 0, 64},
    };
    uint8_t payload[300], pkt[400], out[400], held[400];
    size_t held_len = 0;

    init_keys();
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i * 7 + 3);
    for (size_t t = 0; t < sizeof(xf) / sizeof(xf[0]); t++) {
        int err = 0, bad = 0;
        ck_esp_xf *tx = make_xf(xf[t].enc, xf[t].auth, xf[t].el, xf[t].al, &err);
        ck_esp_xf *rx = make_xf(xf[t].enc, xf[t].auth, xf[t].el, xf[t].al, &err);

        CHECK(tx != NULL && rx != NULL);
        if (tx == NULL || rx == NULL) {
            ck_esp_xf_free(tx);
            ck_esp_xf_free(rx);
            continue;
        }
        for (size_t n = 0; n <= sizeof(payload); n++) {
            size_t olen = 0, plen = 0;
            uint8_t nh = 0;

            if (ck_esp_xf_protect(tx, 59, payload, n, pkt, sizeof(pkt), &olen) != 0 ||
                olen != ck_esp_xf_protected_size(tx, n)) {
                bad++;
                continue;
            }
            /* Hold back packet 10, deliver it after the others: still in the window. */
            if (n == 10) {
                memcpy(held, pkt, olen);
                held_len = olen;
                continue;
            }
            if (ck_esp_xf_unprotect(rx, pkt, olen, out, sizeof(out), &plen, &nh) != 0 ||
                plen != n || nh != 59 || (n > 0 && memcmp(out, payload, n) != 0))
                bad++;
        }
        {
            size_t plen = 0;
            uint8_t nh = 0;
            /* 290 packets later: left of the 128-packet window. */
            CHECK_INT_EQ(ck_esp_xf_unprotect(rx, held, held_len, out, sizeof(out), &plen, &nh),
                         CK_ERR_REPLAY);
        }
        CHECK_INT_EQ(bad, 0);
        ck_esp_xf_free(tx);
        ck_esp_xf_free(rx);
    }
}

/* A NULL-encryption packet whose HMAC is valid but whose padding is not 1, 2, 3...: refused
 * after the ICV, nothing written, the window unmoved (the same sequence number then opens). */
static void
test_bad_padding_behind_icv(void)
{
    uint8_t pkt[64], out[64], mac[64];
    size_t len, ml = 0, plen = 0;
    uint8_t nh = 0;
    int err = 0;
    ck_esp_xf *rx;

    init_keys();
    rx = make_xf(CK_ESP_XF_ENC_NULL, CK_ESP_XF_AUTH_HMAC_SHA2_256_128, 0, 32, &err);
    CHECK(rx != NULL);
    if (rx == NULL)
        return;
    /* SPI, seq 1, a body of 8 bytes: "ab", padding 01 02 07 04 (the third byte wrong), pad
     * length 4, next header 17. */
    ck_put_be32(pkt, 0x1234);
    ck_put_be32(pkt + 4, 1);
    memcpy(pkt + 8, "ab\x01\x02\x07\x04\x04\x11", 8);
    len = 16;
    CHECK(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, ak, 32, pkt, len, mac, sizeof(mac),
                    &ml) != NULL);
    memcpy(pkt + len, mac, 16);
    len += 16;
    memset(out, 0xee, sizeof(out));
    CHECK_INT_EQ(ck_esp_xf_unprotect(rx, pkt, len, out, sizeof(out), &plen, &nh), CK_ERR_DECODE);
    CHECK_INT_EQ(plen, 0);
    CHECK_INT_EQ(out[0], 0xee);
    /* Fixed padding, same sequence number: accepted (the window had not moved). */
    pkt[12] = 0x03;
    CHECK(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, ak, 32, pkt, 16, mac, sizeof(mac),
                    &ml) != NULL);
    memcpy(pkt + 16, mac, 16);
    CHECK_OK(ck_esp_xf_unprotect(rx, pkt, len, out, sizeof(out), &plen, &nh));
    CHECK_MEM_EQ(out, plen, "ab", 2);
    CHECK_INT_EQ(nh, 17);
    ck_esp_xf_free(rx);
}

static void
test_sequence_exhaustion(void)
{
    uint8_t pkt[128];
    size_t olen = 0;
    int err = 0;
    ck_esp_xf *tx;

    init_keys();
    tx = make_xf(CK_ESP_XF_ENC_AES_GCM_16, 0, 20, 0, &err);
    CHECK(tx != NULL);
    if (tx == NULL)
        return;
    ck_esp_test_xf_set_seq(tx, UINT32_MAX - 1);
    CHECK_OK(ck_esp_xf_protect(tx, 17, (const uint8_t *)"x", 1, pkt, sizeof(pkt), &olen));
    CHECK_INT_EQ(ck_get_be32(pkt + 4), UINT32_MAX);
    /* The GCM IV is the sequence number: it must never be used twice under the key. */
    CHECK_INT_EQ(ck_esp_xf_protect(tx, 17, (const uint8_t *)"x", 1, pkt, sizeof(pkt), &olen),
                 CK_ERR_EXPIRED);
    CHECK_INT_EQ(ck_esp_xf_protect(tx, 17, (const uint8_t *)"x", 1, pkt, 10, &olen),
                 CK_ERR_LIMIT);
    ck_esp_xf_free(tx);
}

static void
test_refused_params(void)
{
    int err = 0;
    struct ck_esp_xf_params p;
    ck_esp_xf *x = NULL;

    init_keys();
    /* AEAD with an HMAC; CBC without integrity; AES-192; ChaCha20 with a 16-byte key; NULL with
     * a key; an unknown encryption; an unknown integrity; an empty HMAC key. */
    CHECK(make_xf(20, 12, 20, 32, &err) == NULL && err == CK_ERR_UNSUPPORTED);
    CHECK(make_xf(12, 0, 16, 0, &err) == NULL && err == CK_ERR_UNSUPPORTED);
    CHECK(make_xf(12, 12, 24, 32, &err) == NULL && err == CK_ERR_UNSUPPORTED);
    CHECK(make_xf(20, 0, 28, 0, &err) == NULL && err == CK_ERR_UNSUPPORTED);
    CHECK(make_xf(28, 0, 20, 0, &err) == NULL && err == CK_ERR_UNSUPPORTED);
    CHECK(make_xf(20, 0, 3, 0, &err) == NULL && err == CK_ERR_UNSUPPORTED);
    CHECK(make_xf(11, 12, 16, 32, &err) == NULL && err == CK_ERR_UNSUPPORTED);
    CHECK(make_xf(3, 2, 24, 20, &err) == NULL && err == CK_ERR_UNSUPPORTED);
    CHECK(make_xf(12, 1, 16, 16, &err) == NULL && err == CK_ERR_UNSUPPORTED);
    CHECK(make_xf(12, 12, 16, 0, &err) == NULL && err == CK_ERR_UNSUPPORTED);
    memset(&p, 0, sizeof(p));
    p.enc_alg = CK_ESP_XF_ENC_NULL;
    p.auth_alg = CK_ESP_XF_AUTH_HMAC_SHA1_96;
    p.auth_key = ak;
    p.auth_key_len = 20;
    CHECK_INT_EQ(ck_esp_xf_new(&p, &x), CK_ERR_INVAL); /* SPI 0 */
    p.spi = 1;
    p.replay_window = CK_ESP_MAX_WINDOW + 1;
    CHECK_INT_EQ(ck_esp_xf_new(&p, &x), CK_ERR_INVAL);
    CHECK(x == NULL);
    p.replay_window = CK_ESP_MAX_WINDOW;
    CHECK_OK(ck_esp_xf_new(&p, &x));
    CHECK_INT_EQ(ck_esp_xf_spi(x), 1);
    ck_esp_xf_free(x);
    ck_esp_xf_free(NULL);
}

CK_TEST_MAIN("esp_xform", CK_TEST_CASE(test_independent_vectors),
             CK_TEST_CASE(test_round_trip_all), CK_TEST_CASE(test_bad_padding_behind_icv),
             CK_TEST_CASE(test_sequence_exhaustion), CK_TEST_CASE(test_refused_params))
