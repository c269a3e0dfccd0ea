/* lib/esp: the Wireshark esp_sa record (ck_esp_wireshark_sa_format). Exact text for each
 * transform and family (the labels must be Wireshark's, byte for byte), appending after what a
 * buffer holds, the keys in the record being the ones that actually unprotect the SA's packets,
 * and refusals: names, wildcards, mixed families, quote injection, a bad offset, a buffer too
 * small (nothing left of the record). tests/interop/t_esp_tshark.sh feeds such records to
 * tshark. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/esp.h"
#include "cablekey/kmm.h"
#include "ck_test.h"

static const uint8_t auth20[20] = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa,
                                   0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x01, 0x02, 0x03, 0x04, 0x05};
static const uint8_t enc24[24] = {0xf0, 0xe1, 0xd2, 0xc3, 0xb4, 0xa5, 0x96, 0x87,
                                  0x78, 0x69, 0x5a, 0x4b, 0x3c, 0x2d, 0x1e, 0x0f,
                                  0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef};

static ck_esp_sa *
make_sa(uint8_t enc, uint8_t auth, uint32_t spi, const uint8_t *ekey, const uint8_t *akey)
{
    struct ck_esp_sa_params p = {
        .spi = spi,
        .enc = enc,
        .auth = auth,
        .enc_key = ekey,
        .enc_key_len = enc == CK_KMM_ENC_AES128 ? 16 : enc == CK_KMM_ENC_3DES ? 24 : 0,
        .auth_key = akey,
        .auth_key_len = auth == CK_KMM_AUTH_HMAC_SHA1_96 ? 20 : 16,
    };
    ck_esp_sa *sa = NULL;

    if (ck_esp_sa_new(&p, &sa) != 0)
        return NULL;
    return sa;
}

static void
test_records_exact(void)
{
    ck_esp_sa *a = make_sa(CK_KMM_ENC_AES128, CK_KMM_AUTH_HMAC_SHA1_96, 0x1000, enc24, auth20);
    ck_esp_sa *d = make_sa(CK_KMM_ENC_3DES, CK_KMM_AUTH_HMAC_MD5_96, 0xc0ffee01, enc24, auth20);
    ck_esp_sa *n = make_sa(CK_KMM_ENC_NULL, CK_KMM_AUTH_HMAC_SHA1_96, 0x100, NULL, auth20);
    static const char want_a[] =
        "\"IPv4\",\"10.0.0.2\",\"10.0.0.1\",\"0x00001000\",\"AES-CBC [RFC3602]\","
        "\"0xf0e1d2c3b4a5968778695a4b3c2d1e0f\",\"HMAC-SHA-1-96 [RFC2404]\","
        "\"0x112233445566778899aabbccddeeff0102030405\"\n";
    static const char want_d[] =
        "\"IPv6\",\"2001:db8::1\",\"2001:db8::2\",\"0xc0ffee01\",\"TripleDES-CBC [RFC2451]\","
        "\"0xf0e1d2c3b4a5968778695a4b3c2d1e0f0123456789abcdef\",\"HMAC-MD5-96 [RFC2403]\","
        "\"0x112233445566778899aabbccddeeff01\"\n";
    static const char want_n[] =
        "\"IPv4\",\"192.0.2.1\",\"192.0.2.2\",\"0x00000100\",\"NULL\",\"\","
        "\"HMAC-SHA-1-96 [RFC2404]\",\"0x112233445566778899aabbccddeeff0102030405\"\n";
    char buf[1024], want[1024];
    size_t used = 0;

    if (a == NULL || d == NULL || n == NULL) {
        CHECK(0);
        goto out;
    }
    CHECK_OK(ck_esp_wireshark_sa_format(a, "10.0.0.2", "10.0.0.1", buf, sizeof(buf), &used));
    CHECK(strcmp(buf, want_a) == 0);
    CHECK_INT_EQ(used, strlen(want_a));
    /* Appended after what is there: one file holds every SA, one record a line. */
    CHECK_OK(ck_esp_wireshark_sa_format(d, "2001:db8::1", "2001:db8::2", buf, sizeof(buf), &used));
    CHECK_OK(ck_esp_wireshark_sa_format(n, "192.0.2.1", "192.0.2.2", buf, sizeof(buf), &used));
    snprintf(want, sizeof(want), "%s%s%s", want_a, want_d, want_n);
    CHECK(strcmp(buf, want) == 0);
    CHECK_INT_EQ(used, strlen(want));
    /* The MD5 key is 16 bytes: nothing of the 20-byte buffer it was copied from leaks. */
    CHECK(strstr(buf, "0x112233445566778899aabbccddeeff01\"\n") != NULL);
out:
    ck_esp_sa_free(a);
    ck_esp_sa_free(d);
    ck_esp_sa_free(n);
}

/* Splits a record "f1","f2",...,"f8"\n in place into its 8 fields; false if it is not that. */
static bool
split_record(char *rec, char *field[8])
{
    size_t n = strlen(rec);
    int i = 0;

    if (n < 3 || rec[0] != '"' || strcmp(rec + n - 2, "\"\n") != 0)
        return false;
    rec[n - 2] = '\0';
    for (char *p = rec + 1; i < 8; i++) {
        char *end = strstr(p, "\",\"");

        field[i] = p;
        if (end == NULL)
            return i == 7;
        *end = '\0';
        p = end + 3;
    }
    return false;
}

/* Decodes "0x<hex>" into out: the number of bytes, 0 on anything else. */
static size_t
parse_key(const char *p, uint8_t *out, size_t cap)
{
    size_t n = 0;

    if (strncmp(p, "0x", 2) != 0 || strlen(p) % 2 != 0)
        return 0;
    for (p += 2; *p != '\0' && n < cap; p += 2) {
        unsigned v;

        if (sscanf(p, "%2x", &v) != 1)
            return 0;
        out[n++] = (uint8_t)v;
    }
    return *p == '\0' ? n : 0;
}

/* The record's keys are the SA's keys: an SA built from the text alone unprotects what the
 * original protected, for every transform (so tshark, given the record, can too). */
static void
test_record_keys_work(void)
{
    static const uint8_t aes[16] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                                    0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
    static const uint8_t enc_ids[] = {CK_KMM_ENC_AES128, CK_KMM_ENC_3DES, CK_KMM_ENC_NULL};
    static const uint8_t auth_ids[] = {CK_KMM_AUTH_HMAC_SHA1_96, CK_KMM_AUTH_HMAC_MD5_96};
    static const char msg[] = "RSIP 1 aaln/1@mta1.example.net MGCP 1.0 NCS 1.0\r\nRM: restart\r\n";
    ck_esp_engine *eng = NULL;

    CHECK_OK(ck_esp_engine_new(&eng));
    for (size_t e = 0; eng != NULL && e < sizeof(enc_ids); e++) {
        for (size_t h = 0; h < sizeof(auth_ids); h++) {
            const uint8_t *ek = enc_ids[e] == CK_KMM_ENC_AES128 ? aes : enc24;
            ck_esp_sa *out = make_sa(enc_ids[e], auth_ids[h], 0x2000, ek, auth20), *in = NULL;
            uint8_t pkt[256], plain[256], ekey[32], akey[32], nh = 0;
            size_t used = 0, plen = 0, elen = 0, alen = 0, pl = 0;
            char rec[512], *field[8];

            if (out == NULL) {
                CHECK(0);
                continue;
            }
            CHECK_OK(ck_esp_wireshark_sa_format(out, "10.0.0.2", "10.0.0.1", rec, sizeof(rec),
                                                &used));
            if (!split_record(rec, field)) {
                CHECK(0);
                ck_esp_sa_free(out);
                continue;
            }
            CHECK(strcmp(field[0], "IPv4") == 0 && strcmp(field[3], "0x00002000") == 0);
            /* Field 6 is the encryption key, field 8 the authentication key. */
            elen = enc_ids[e] == CK_KMM_ENC_NULL ? 0 : parse_key(field[5], ekey, sizeof(ekey));
            CHECK(enc_ids[e] == CK_KMM_ENC_NULL ? field[5][0] == '\0' : elen > 0);
            alen = parse_key(field[7], akey, sizeof(akey));
            {
                struct ck_esp_sa_params p = {.spi = 0x2000, .enc = enc_ids[e],
                                             .auth = auth_ids[h], .enc_key = ekey,
                                             .enc_key_len = elen, .auth_key = akey,
                                             .auth_key_len = alen};
                CHECK_OK(ck_esp_sa_new(&p, &in));
            }
            CHECK_OK(ck_esp_protect(eng, out, 17, (const uint8_t *)msg, sizeof(msg) - 1, 0, pkt,
                                    sizeof(pkt), &plen));
            if (in != NULL) {
                CHECK_OK(ck_esp_unprotect(eng, in, pkt, plen, 0, plain, sizeof(plain), &pl, &nh));
                CHECK_MEM_EQ(plain, pl, msg, sizeof(msg) - 1);
            }
            ck_esp_sa_free(out);
            ck_esp_sa_free(in);
        }
    }
    ck_esp_engine_free(eng);
}

static void
test_refusals(void)
{
    static const char *const bad[][2] = {
        {"mta1.example.net", "10.0.0.1"},  /* a name */
        {"*", "10.0.0.1"},                 /* Wireshark's wildcard: matches any SA */
        {"10.0.0.2", "*"},
        {"10.0.0.2", "2001:db8::1"},       /* mixed families */
        {"2001:db8::1", "10.0.0.1"},
        {"10.0.0.2\",\"x", "10.0.0.1"},    /* a quote would start another field */
        {"10.0.0.2", "10.0.0.1\n"},        /* a newline another record */
        {"", "10.0.0.1"},
        {NULL, "10.0.0.1"},
        {"10.0.0.2", NULL},
    };
    ck_esp_sa *a = make_sa(CK_KMM_ENC_AES128, CK_KMM_AUTH_HMAC_SHA1_96, 0x1000, enc24, auth20);
    char buf[512], one[256];
    size_t used, len = 0;

    if (a == NULL) {
        CHECK(0);
        return;
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memcpy(buf, "keep", 5);
        used = 4;
        CHECK_INT_EQ(ck_esp_wireshark_sa_format(a, bad[i][0], bad[i][1], buf, sizeof(buf), &used),
                     CK_ERR_INVAL);
        CHECK_INT_EQ(used, 4);
        CHECK(strcmp(buf, "keep") == 0);
    }
    /* An offset at or past the end is the caller's bug, not a short buffer. */
    used = sizeof(buf);
    CHECK_INT_EQ(ck_esp_wireshark_sa_format(a, "10.0.0.2", "10.0.0.1", buf, sizeof(buf), &used),
                 CK_ERR_INVAL);
    CHECK_INT_EQ(used, sizeof(buf));

    /* Exact fit (record + NUL) succeeds; one byte less leaves nothing of the record, and the
     * text before it intact. */
    CHECK_OK(ck_esp_wireshark_sa_format(a, "10.0.0.2", "10.0.0.1", one, sizeof(one), &len));
    memcpy(buf, "keep", 5);
    used = 4;
    CHECK_OK(ck_esp_wireshark_sa_format(a, "10.0.0.2", "10.0.0.1", buf, 4 + len + 1, &used));
    CHECK_INT_EQ(used, 4 + len);
    CHECK(strncmp(buf, "keep", 4) == 0 && strcmp(buf + 4, one) == 0);
    memset(buf, 'z', sizeof(buf));
    memcpy(buf, "keep", 5);
    used = 4;
    CHECK_INT_EQ(ck_esp_wireshark_sa_format(a, "10.0.0.2", "10.0.0.1", buf, 4 + len, &used),
                 CK_ERR_LIMIT);
    CHECK_INT_EQ(used, 4);
    CHECK(strcmp(buf, "keep") == 0);
    /* No key byte is left in the part of buf the call was given. */
    for (size_t i = 4; i < 4 + len; i++)
        CHECK(buf[i] == '\0');
    CHECK(buf[4 + len] == 'z');
    ck_esp_sa_free(a);
}

CK_TEST_MAIN("esp_export", CK_TEST_CASE(test_records_exact), CK_TEST_CASE(test_record_keys_work),
             CK_TEST_CASE(test_refusals))
