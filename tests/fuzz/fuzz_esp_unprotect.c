/* Fuzzes ESP decapsulation with fixed SA keys: RFC 3948 classification of the datagram, then
 * ck_esp_unprotect, then the inner UDP header. The first input byte picks the suite (bits 0-2)
 * and whether the harness re-signs the packet (bit 3): a fuzzer cannot forge an HMAC, so in that
 * mode the SPI and ICV are rewritten to valid values and the decryption, padding and trailer
 * checks behind the ICV get exercised too. Anything accepted must re-protect and round-trip. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/error.h"
#include "cablekey/esp.h"
#include "cablekey/kmm.h"
#include "esp/esp_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_SPI 0x00001000u

static const uint8_t enc_key[24] = {0x10, 0x21, 0x32, 0x43, 0x54, 0x65, 0x76, 0x87,
                                    0x98, 0xa9, 0xba, 0xcb, 0xdc, 0xed, 0xfe, 0x0f,
                                    0x01, 0x12, 0x23, 0x34, 0x45, 0x56, 0x67, 0x78};
static const uint8_t auth_key[20] = {0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9,
                                     0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf, 0xb0, 0xb1, 0xb2, 0xb3};

static ck_esp_sa *
fuzz_sa(uint8_t enc, uint8_t auth)
{
    struct ck_esp_sa_params p = {
        .spi = FUZZ_SPI, .enc = enc, .auth = auth, .enc_key = enc_key,
        .enc_key_len = enc == CK_KMM_ENC_AES128 ? 16 : enc == CK_KMM_ENC_3DES ? 24 : 0,
        .auth_key = auth_key, .auth_key_len = auth == CK_KMM_AUTH_HMAC_SHA1_96 ? 20 : 16,
        .life_bytes = 1 << 20};
    ck_esp_sa *sa = NULL;

    return ck_esp_sa_new(&p, &sa) == 0 ? sa : NULL;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t encs[3] = {CK_KMM_ENC_AES128, CK_KMM_ENC_3DES, CK_KMM_ENC_NULL};
    static ck_esp_engine *eng;
    static uint8_t pkt[CK_ESP_MAX_PACKET + 1], out[CK_ESP_MAX_PACKET], again[CK_ESP_MAX_PACKET],
        back[CK_ESP_MAX_PACKET];
    ck_esp_sa *in = NULL, *o = NULL, *in2 = NULL;
    size_t len, out_len = 0, again_len = 0, back_len = 0, inner_len;
    const uint8_t *inner;
    uint16_t sp, dp;
    uint32_t spi = 0;
    uint8_t nh = 0, nh2 = 0, enc, auth;

    if (eng == NULL && ck_esp_engine_new(&eng) != 0)
        abort();
    if (size < 1 || size - 1 > CK_ESP_MAX_PACKET + 1)
        return 0;
    enc = encs[(data[0] & 7) % 3];
    auth = (data[0] & 7) >= 3 ? CK_KMM_AUTH_HMAC_MD5_96 : CK_KMM_AUTH_HMAC_SHA1_96;
    len = size - 1;
    memcpy(pkt, data + 1, len);

    (void)ck_esp_udp_classify(pkt, len, &spi);
    (void)ck_esp_udp_unwrap(pkt, len, &sp, &dp, &inner, &inner_len);
    if ((in = fuzz_sa(enc, auth)) == NULL || (o = fuzz_sa(enc, auth)) == NULL ||
        (in2 = fuzz_sa(enc, auth)) == NULL)
        abort();
    if ((data[0] & 8) && len >= 4 + CK_ESP_ICV_LEN) {
        pkt[0] = 0, pkt[1] = 0, pkt[2] = FUZZ_SPI >> 8, pkt[3] = 0;
        if (ck_esp_test_icv(eng, in, pkt, len - CK_ESP_ICV_LEN, pkt + len - CK_ESP_ICV_LEN) != 0)
            abort();
    }
    if (ck_esp_unprotect(eng, in, pkt, len, 0, out, sizeof(out), &out_len, &nh) == 0) {
        if (out_len >= len)
            abort();
        (void)ck_esp_udp_unwrap(out, out_len, &sp, &dp, &inner, &inner_len);
        /* Accepted once, refused as a replay the second time, with the window intact. */
        if (ck_esp_unprotect(eng, in, pkt, len, 0, back, sizeof(back), &back_len, &nh2) !=
            CK_ERR_REPLAY)
            abort();
        if (ck_esp_protect(eng, o, nh, out, out_len, 0, again, sizeof(again), &again_len) != 0 ||
            ck_esp_unprotect(eng, in2, again, again_len, 0, back, sizeof(back), &back_len,
                             &nh2) != 0 ||
            back_len != out_len || nh2 != nh || memcmp(back, out, out_len) != 0)
            abort();
    } else if (out_len != 0) {
        abort();
    }
    ck_esp_sa_free(in);
    ck_esp_sa_free(o);
    ck_esp_sa_free(in2);
    return 0;
}
