/* Call keys (docs/PROTOCOL.md "Call keys"): the vectors computed independently by
 * tests/vectors/kmm/kmm_ref.py (Python hmac, no OpenSSL), byte for byte, and the refusals: SPIs
 * whose SPI+1 is not a usable SPI, wrong sub-key lengths, ACK mismatch and truncated ACKs. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ck_test.h"
#include "cablekey/error.h"
#include "cablekey/kmm.h"

#define SPI 0x0000c0deu
#define CALL_ID "a1b2c3d4e5f6"

static uint8_t k_call[CK_CALL_KEY_LEN];

static void
init_key(void)
{
    for (int i = 0; i < CK_CALL_KEY_LEN; i++)
        k_call[i] = (uint8_t)(0x40 + i);
}

static void
check_hex(const uint8_t *got, size_t got_len, const char *hex)
{
    size_t n = 0;
    unsigned char *want = ck_test_hex(hex, &n);

    CHECK_MEM_EQ(got, got_len, want, n);
    free(want);
}

static bool
all_zero(const void *p, size_t n)
{
    const uint8_t *b = p;

    for (size_t i = 0; i < n; i++)
        if (b[i] != 0)
            return false;
    return true;
}

static const struct {
    struct ck_kmm_suite suite;
    const char *hex[4]; /* enc s->d, auth s->d, enc d->s, auth d->s */
} esp_vectors[] = {
    {{CK_KMM_AUTH_HMAC_SHA1_96, CK_KMM_ENC_AES128},
     {"ef8fb5bbc386d3918e1212fc4d4a178a",
      "38da2892032181ca527d53d5d7c349ac1d0e9aae",
      "9442f27d11f5b74a7cb02f9a54c11a27",
      "2a32f94aef2141611cd5df158f9fea75bca49746"}},
    {{CK_KMM_AUTH_HMAC_SHA1_96, CK_KMM_ENC_3DES},
     {"ef8fb5bbc386d3918e1212fc4d4a178a38da2892032181ca",
      "527d53d5d7c349ac1d0e9aae9442f27d11f5b74a",
      "7cb02f9a54c11a272a32f94aef2141611cd5df158f9fea75",
      "bca497462351899823f2bbb2cc5b1c4f467d884f"}},
    {{CK_KMM_AUTH_HMAC_SHA1_96, CK_KMM_ENC_NULL},
     {"",
      "ef8fb5bbc386d3918e1212fc4d4a178a38da2892",
      "",
      "032181ca527d53d5d7c349ac1d0e9aae9442f27d"}},
    {{CK_KMM_AUTH_HMAC_MD5_96, CK_KMM_ENC_AES128},
     {"ef8fb5bbc386d3918e1212fc4d4a178a",
      "38da2892032181ca527d53d5d7c349ac",
      "1d0e9aae9442f27d11f5b74a7cb02f9a",
      "54c11a272a32f94aef2141611cd5df15"}},
    {{CK_KMM_AUTH_HMAC_MD5_96, CK_KMM_ENC_3DES},
     {"ef8fb5bbc386d3918e1212fc4d4a178a38da2892032181ca",
      "527d53d5d7c349ac1d0e9aae9442f27d",
      "11f5b74a7cb02f9a54c11a272a32f94aef2141611cd5df15",
      "8f9fea75bca497462351899823f2bbb2"}},
    {{CK_KMM_AUTH_HMAC_MD5_96, CK_KMM_ENC_NULL},
     {"",
      "ef8fb5bbc386d3918e1212fc4d4a178a",
      "",
      "38da2892032181ca527d53d5d7c349ac"}},
};

static void
test_esp_keys(void)
{
    struct ck_call_esp_keys k;

    init_key();
    for (size_t i = 0; i < sizeof(esp_vectors) / sizeof(esp_vectors[0]); i++) {
        CHECK_OK(ck_call_derive_esp(k_call, sizeof(k_call), esp_vectors[i].suite, SPI, false, &k));
        CHECK_INT_EQ(k.spi_sd, SPI);
        CHECK_INT_EQ(k.spi_ds, SPI + 1);
        CHECK_INT_EQ(k.seq_sd, 1);
        CHECK_INT_EQ(k.seq_ds, 1);
        check_hex(k.enc_sd, k.enc_len, esp_vectors[i].hex[0]);
        check_hex(k.auth_sd, k.auth_len, esp_vectors[i].hex[1]);
        check_hex(k.enc_ds, k.enc_len, esp_vectors[i].hex[2]);
        check_hex(k.auth_ds, k.auth_len, esp_vectors[i].hex[3]);
        ck_call_keys_clear(&k, sizeof(k));
        CHECK(all_zero(&k, sizeof(k)));
    }
}

static void
test_compat_seq(void)
{
    struct ck_kmm_suite s = {CK_KMM_AUTH_HMAC_SHA1_96, CK_KMM_ENC_AES128};
    struct ck_call_esp_keys k;

    init_key();
    CHECK_OK(ck_call_derive_esp(k_call, sizeof(k_call), s, SPI, true, &k));
    CHECK_INT_EQ(k.seq_sd, 0x5f47435fu);
    CHECK_INT_EQ(k.seq_ds, 0x70b403ecu);
    /* The keys do not depend on the mode. */
    check_hex(k.enc_sd, k.enc_len, "ef8fb5bbc386d3918e1212fc4d4a178a");
    ck_call_keys_clear(&k, sizeof(k));
}

static void
test_srtp_keys(void)
{
    struct ck_call_srtp_keys k;

    init_key();
    CHECK_OK(ck_call_derive_srtp(k_call, sizeof(k_call), CK_CALL_SRTP_AES_CM_128_HMAC_SHA1_80, SPI,
                                 &k));
    CHECK_INT_EQ(k.key_len, 16);
    CHECK_INT_EQ(k.salt_len, 14);
    check_hex(k.key_sd, k.key_len, "3a73bed09cd25933d594ba8dcb5c45d6");
    check_hex(k.salt_sd, k.salt_len, "2143eb80e1f041f6f04dada5aa80");
    check_hex(k.key_ds, k.key_len, "fc93d4d7b808d71b0cd7c5bcd891e079");
    check_hex(k.salt_ds, k.salt_len, "f8171e69b387e1cd60132abb5e03");
    CHECK_OK(ck_call_derive_srtp(k_call, sizeof(k_call), CK_CALL_SRTP_AEAD_AES_128_GCM, SPI, &k));
    CHECK_INT_EQ(k.key_len, 16);
    CHECK_INT_EQ(k.salt_len, 12);
    check_hex(k.key_sd, k.key_len, "d92605c56b18b4b520b10cd72dd92d37");
    check_hex(k.salt_sd, k.salt_len, "5e219e6f8127370b9374caf7");
    check_hex(k.key_ds, k.key_len, "f62725750904675b8e1221bbfe2f921d");
    check_hex(k.salt_ds, k.salt_len, "88e3c2bc8ca53e442b760bed");
    CHECK_INT_EQ(ck_call_derive_srtp(k_call, sizeof(k_call), (enum ck_call_srtp_profile)3, SPI, &k),
                 CK_ERR_UNSUPPORTED);
    ck_call_keys_clear(&k, sizeof(k));
}

static void
test_3des_keys(void)
{
    struct ck_call_3des_keys k;

    init_key();
    CHECK_OK(ck_call_derive_3des(k_call, sizeof(k_call), SPI, false, &k));
    CHECK(!k.mac);
    check_hex(k.key_sd, sizeof(k.key_sd), "fda09cbe26127a0cb8854c02a92e1a8a961d56c18d84305a");
    check_hex(k.key_ds, sizeof(k.key_ds), "7c29658b95118dcb29864d18bab317c7ac8c96090b125884");
    CHECK(all_zero(k.mac_sd, sizeof(k.mac_sd)) && all_zero(k.mac_ds, sizeof(k.mac_ds)));
    CHECK_OK(ck_call_derive_3des(k_call, sizeof(k_call), SPI, true, &k));
    CHECK(k.mac);
    check_hex(k.key_sd, sizeof(k.key_sd), "adca0520d69003917e2bf7f9032e2ead923c265da8616cb3");
    check_hex(k.key_ds, sizeof(k.key_ds), "d752900767a6c3601fb1cff4f8d9f912647c2b87978e7997");
    check_hex(k.mac_sd, sizeof(k.mac_sd), "81ee30c188a2d2b8d7c3a649b653263471f160af");
    check_hex(k.mac_ds, sizeof(k.mac_ds), "8b6872f6d7c69f518eccb4fc47c04834fc006c21");
    ck_call_keys_clear(&k, sizeof(k));
}

static void
test_ack(void)
{
    const uint8_t *id = (const uint8_t *)CALL_ID;
    size_t id_len = strlen(CALL_ID);
    uint8_t ack[CK_CALL_ACK_LEN], other[CK_CALL_KEY_LEN];

    init_key();
    CHECK_OK(ck_call_ack_compute(k_call, sizeof(k_call), CK_CALL_ACK_DESTINATION, SPI, id, id_len,
                                 ack));
    check_hex(ack, sizeof(ack), "3f84fc108e453ffbecb288996307c3fd2065678e");
    CHECK_OK(ck_call_ack_verify(k_call, sizeof(k_call), CK_CALL_ACK_DESTINATION, SPI, id, id_len,
                                ack, sizeof(ack)));
    /* Reflected to the other role, another SPI, another call id, another key: refused. */
    CHECK_INT_EQ(ck_call_ack_verify(k_call, sizeof(k_call), CK_CALL_ACK_SOURCE, SPI, id, id_len,
                                    ack, sizeof(ack)),
                 CK_ERR_INTEGRITY);
    CHECK_INT_EQ(ck_call_ack_verify(k_call, sizeof(k_call), CK_CALL_ACK_DESTINATION, SPI + 2, id,
                                    id_len, ack, sizeof(ack)),
                 CK_ERR_INTEGRITY);
    CHECK_INT_EQ(ck_call_ack_verify(k_call, sizeof(k_call), CK_CALL_ACK_DESTINATION, SPI, id,
                                    id_len - 1, ack, sizeof(ack)),
                 CK_ERR_INTEGRITY);
    memcpy(other, k_call, sizeof(other));
    other[31] ^= 1;
    CHECK_INT_EQ(ck_call_ack_verify(other, sizeof(other), CK_CALL_ACK_DESTINATION, SPI, id,
                                    id_len, ack, sizeof(ack)),
                 CK_ERR_INTEGRITY);
    /* Each bit of the ACK matters. */
    for (size_t i = 0; i < sizeof(ack) * 8; i++) {
        ack[i / 8] ^= (uint8_t)(1u << (i % 8));
        CHECK_INT_EQ(ck_call_ack_verify(k_call, sizeof(k_call), CK_CALL_ACK_DESTINATION, SPI, id,
                                        id_len, ack, sizeof(ack)),
                     CK_ERR_INTEGRITY);
        ack[i / 8] ^= (uint8_t)(1u << (i % 8));
    }
    /* Truncated or overlong ACKs are refused before any comparison. */
    CHECK_INT_EQ(ck_call_ack_verify(k_call, sizeof(k_call), CK_CALL_ACK_DESTINATION, SPI, id,
                                    id_len, ack, sizeof(ack) - 1),
                 CK_ERR_DECODE);
    CHECK_INT_EQ(ck_call_ack_verify(k_call, sizeof(k_call), CK_CALL_ACK_DESTINATION, SPI, id,
                                    id_len, ack, 12),
                 CK_ERR_DECODE);
    CHECK_INT_EQ(ck_call_ack_verify(k_call, sizeof(k_call), CK_CALL_ACK_DESTINATION, SPI, id,
                                    id_len, ack, 0),
                 CK_ERR_DECODE);
    CHECK_INT_EQ(ck_call_ack_verify(k_call, sizeof(k_call), CK_CALL_ACK_DESTINATION, SPI, id,
                                    id_len, NULL, sizeof(ack)),
                 CK_ERR_DECODE);
    CHECK_OK(ck_call_ack_compute(k_call, sizeof(k_call), CK_CALL_ACK_SOURCE, SPI, id, id_len, ack));
    check_hex(ack, sizeof(ack), "4b73c1bb9253c23aad411cae64f7927b0ce37a71");
    CHECK_OK(ck_call_ack_verify(k_call, sizeof(k_call), CK_CALL_ACK_SOURCE, SPI, id, id_len, ack,
                                sizeof(ack)));
    /* Bad call ids and roles. */
    CHECK_INT_EQ(ck_call_ack_compute(k_call, sizeof(k_call), CK_CALL_ACK_SOURCE, SPI, id, 0, ack),
                 CK_ERR_INVAL);
    CHECK_INT_EQ(ck_call_ack_compute(k_call, sizeof(k_call), CK_CALL_ACK_SOURCE, SPI, id,
                                     CK_CALL_MAX_ID + 1, ack),
                 CK_ERR_INVAL);
    CHECK_INT_EQ(ck_call_ack_compute(k_call, sizeof(k_call), (enum ck_call_ack_role)3, SPI, id,
                                     id_len, ack),
                 CK_ERR_INVAL);
}

static void
test_refusals(void)
{
    static const uint32_t bad_spis[] = {0, 1, 255, 0xffffffffu};
    struct ck_kmm_suite s = {CK_KMM_AUTH_HMAC_SHA1_96, CK_KMM_ENC_AES128};
    struct ck_call_esp_keys e;
    struct ck_call_srtp_keys r;
    struct ck_call_3des_keys d;
    uint8_t ack[CK_CALL_ACK_LEN];
    const uint8_t *id = (const uint8_t *)CALL_ID;

    init_key();
    for (size_t i = 0; i < sizeof(bad_spis) / sizeof(bad_spis[0]); i++) {
        uint32_t spi = bad_spis[i];

        memset(&e, 0xa5, sizeof(e));
        CHECK_INT_EQ(ck_call_derive_esp(k_call, sizeof(k_call), s, spi, false, &e), CK_ERR_INVAL);
        CHECK(all_zero(&e, sizeof(e)));
        CHECK_INT_EQ(ck_call_derive_srtp(k_call, sizeof(k_call),
                                         CK_CALL_SRTP_AES_CM_128_HMAC_SHA1_80, spi, &r),
                     CK_ERR_INVAL);
        CHECK_INT_EQ(ck_call_derive_3des(k_call, sizeof(k_call), spi, true, &d), CK_ERR_INVAL);
        CHECK_INT_EQ(ck_call_ack_compute(k_call, sizeof(k_call), CK_CALL_ACK_SOURCE, spi, id, 4,
                                         ack),
                     CK_ERR_INVAL);
    }
    /* The extremes that are valid: SPI+1 still fits. */
    CHECK_OK(ck_call_derive_esp(k_call, sizeof(k_call), s, 256, false, &e));
    CHECK_OK(ck_call_derive_esp(k_call, sizeof(k_call), s, 0xfffffffeu, false, &e));
    CHECK_INT_EQ(e.spi_ds, 0xffffffffu);
    /* Sub-keys that are not 32 bytes, a missing key, an unsupported suite. */
    CHECK_INT_EQ(ck_call_derive_esp(k_call, 16, s, SPI, false, &e), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_call_derive_srtp(k_call, 33, CK_CALL_SRTP_AEAD_AES_128_GCM, SPI, &r),
                 CK_ERR_INVAL);
    CHECK_INT_EQ(ck_call_derive_3des(NULL, sizeof(k_call), SPI, false, &d), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_call_derive_esp(k_call, sizeof(k_call),
                                    (struct ck_kmm_suite){CK_KMM_AUTH_HMAC_SHA1_96, CK_KMM_ENC_RC5},
                                    SPI, false, &e),
                 CK_ERR_UNSUPPORTED);
    ck_call_keys_clear(&e, sizeof(e));
    ck_call_keys_clear(&r, sizeof(r));
    ck_call_keys_clear(&d, sizeof(d));
    ck_call_keys_clear(NULL, 10);
}

CK_TEST_MAIN("kmm_callkeys", CK_TEST_CASE(test_esp_keys), CK_TEST_CASE(test_compat_seq),
             CK_TEST_CASE(test_srtp_keys), CK_TEST_CASE(test_3des_keys), CK_TEST_CASE(test_ack),
             CK_TEST_CASE(test_refusals))
