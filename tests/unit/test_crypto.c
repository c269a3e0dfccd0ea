/* Kerberos crypto: published known-answer vectors (RFC 3962 App. B, RFC 8009 App. A, RFC 3961
 * A.3, MIT krb5's crypto_tests for what the RFCs leave out), round trips and negative cases. */
#include <pthread.h>
#include <stdint.h>

#include "ck_test.h"

#include "cablekey/crypto.h"
#include "cablekey/error.h"
#include "crypto/crypto_int.h"

static const int32_t all_enctypes[] = {
    CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96, CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96,
    CK_ENCTYPE_AES128_CTS_HMAC_SHA256_128, CK_ENCTYPE_AES256_CTS_HMAC_SHA384_192};
#define N_ENCTYPES (sizeof(all_enctypes) / sizeof(all_enctypes[0]))

/* Builds a key from a hex vector (aborts on a malformed vector, which is a test bug). */
static void
hex_key(ck_key *key, int32_t enctype, const char *hex)
{
    size_t len = 0;
    unsigned char *b = ck_test_hex(hex, &len);

    if (ck_key_init(key, enctype, b, len) != 0)
        abort();
    free(b);
}

/* ---- RFC 3962 Appendix B: string-to-key ---- */

struct s2k_vector {
    const char *password;
    const char *salt_hex; /* NULL: salt is salt_str */
    const char *salt_str;
    uint32_t iter;
    const char *aes128;
    const char *aes256;
};

static const struct s2k_vector rfc3962_s2k[] = {
    {"password", NULL, "ATHENA.MIT.EDUraeburn", 1, "42263c6e89f4fc28b8df68ee09799f15",
     "fe697b52bc0d3ce14432ba036a92e65bbb52280990a2fa27883998d72af30161"},
    {"password", NULL, "ATHENA.MIT.EDUraeburn", 2, "c651bf29e2300ac27fa469d693bdda13",
     "a2e16d16b36069c135d5e9d2e25f896102685618b95914b467c67622225824ff"},
    {"password", NULL, "ATHENA.MIT.EDUraeburn", 1200, "4c01cd46d632d01e6dbe230a01ed642a",
     "55a6ac740ad17b4846941051e1e8b0a7548d93b0ab30a8bc3ff16280382b8c2a"},
    {"password", "1234567878563412", NULL, 5, "e9b23d52273747dd5c35cb55be619d8e",
     "97a4e786be20d81a382d5ebc96d5909cabcdadc87ca48f574504159f16c36e31"},
    {"XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX", NULL,
     "pass phrase equals block size", 1200, "59d1bb789a828b1aa54ef9c2883f69ed",
     "89adee3608db8bc71f1bfbfe459486b05618b70cbae22092534e56c553ba4b34"},
    {"XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX", NULL,
     "pass phrase exceeds block size", 1200, "cb8005dc5f90179a7f02104c0018751d",
     "d78c5c9cb872a8c9dad4697f0bb5b2d21496c82beb2caeda2112fceea057401b"},
    /* U+1D11E MUSICAL SYMBOL G CLEF in UTF-8. */
    {"\xf0\x9d\x84\x9e", NULL, "EXAMPLE.COMpianist", 50, "f149c1f2e154a73452d43e7fe62a56e5",
     "4b6d9839f84406df1f09cc166db4b83c571848b784a3d6bdc346589a3e393f9e"},
};

static void
rfc3962_string_to_key(void)
{
    for (size_t i = 0; i < sizeof(rfc3962_s2k) / sizeof(rfc3962_s2k[0]); i++) {
        const struct s2k_vector *v = &rfc3962_s2k[i];
        uint8_t params[4] = {(uint8_t)(v->iter >> 24), (uint8_t)(v->iter >> 16),
                             (uint8_t)(v->iter >> 8), (uint8_t)v->iter};
        size_t salt_len = 0, l128 = 0, l256 = 0;
        unsigned char *salt = NULL;
        unsigned char *e128 = ck_test_hex(v->aes128, &l128);
        unsigned char *e256 = ck_test_hex(v->aes256, &l256);
        ck_key k;

        if (v->salt_hex != NULL) {
            salt = ck_test_hex(v->salt_hex, &salt_len);
        } else {
            salt_len = strlen(v->salt_str);
            salt = (unsigned char *)strdup(v->salt_str);
        }
        CHECK_OK(ck_string_to_key(CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96, v->password,
                                  strlen(v->password), salt, salt_len, params, 4, &k));
        CHECK_INT_EQ(k.enctype, CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96);
        CHECK_MEM_EQ(k.contents, k.length, e128, l128);
        CHECK_OK(ck_string_to_key(CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, v->password,
                                  strlen(v->password), salt, salt_len, params, 4, &k));
        CHECK_INT_EQ(k.enctype, CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96);
        CHECK_MEM_EQ(k.contents, k.length, e256, l256);
        free(salt);
        free(e128);
        free(e256);
    }
}

/* ---- RFC 3962 Appendix B: AES-CTS with key "chicken teriyaki" and a zero IV ---- */

static void
rfc3962_cts(void)
{
    static const char input[] = "I would like the General Gau's Chicken, please, and wonton soup.";
    static const struct {
        size_t len;
        const char *out;
    } v[] = {
        {17, "c6353568f2bf8cb4d8a580362da7ff7f97"},
        {31, "fc00783e0efdb2c1d445d4c8eff7ed2297687268d6ecccc0c07b25e25ecfe5"},
        {32, "39312523a78662d5be7fcbcc98ebf5a897687268d6ecccc0c07b25e25ecfe584"},
        {47, "97687268d6ecccc0c07b25e25ecfe584b3fffd940c16a18c1b5549d2f838029e"
             "39312523a78662d5be7fcbcc98ebf5"},
        {48, "97687268d6ecccc0c07b25e25ecfe5849dad8bbb96c4cdc03bc103e1a194bbd8"
             "39312523a78662d5be7fcbcc98ebf5a8"},
        {64, "97687268d6ecccc0c07b25e25ecfe58439312523a78662d5be7fcbcc98ebf5a8"
             "4807efe836ee89a526730dbc2f7bc8409dad8bbb96c4cdc03bc103e1a194bbd8"},
    };
    size_t key_len = 0;
    unsigned char *key = ck_test_hex("636869636b656e207465726979616b69", &key_len);
    uint8_t buf[64], back[64];

    CHECK_INT_EQ(strlen(input), 64);
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        size_t elen = 0;
        unsigned char *expect = ck_test_hex(v[i].out, &elen);

        CHECK_OK(ck_crypto_aes_cts(key, key_len, true, (const uint8_t *)input, v[i].len, buf));
        CHECK_MEM_EQ(buf, v[i].len, expect, elen);
        CHECK_OK(ck_crypto_aes_cts(key, key_len, false, expect, elen, back));
        CHECK_MEM_EQ(back, v[i].len, input, v[i].len);
        free(expect);
    }
    /* RFC 3962 §5: a single block is plain CBC (= ECB with a zero IV). AES-128("I would like
     * the ") is the block the 32-byte vector moves to the end. */
    {
        size_t elen = 0;
        unsigned char *expect = ck_test_hex("97687268d6ecccc0c07b25e25ecfe584", &elen);

        CHECK_OK(ck_crypto_aes_cts(key, key_len, true, (const uint8_t *)input, 16, buf));
        CHECK_MEM_EQ(buf, 16, expect, elen);
        free(expect);
    }
    /* Shorter than a block cannot occur in Kerberos and is refused. */
    CHECK_INT_EQ(ck_crypto_aes_cts(key, key_len, true, (const uint8_t *)input, 15, buf),
                 CK_ERR_INVAL);
    CHECK_INT_EQ(ck_crypto_aes_cts(key, 24, true, (const uint8_t *)input, 16, buf),
                 CK_ERR_INVAL);
    free(key);
}

/* ---- RFC 8009 Appendix A ---- */

static void
rfc8009_string_to_key(void)
{
    static const uint8_t iter32768[4] = {0x00, 0x00, 0x80, 0x00};
    size_t slen = 0, l128 = 0, l256 = 0, plen = 0;
    unsigned char *prefix = ck_test_hex("10DF9DD783E5BC8ACEA1730E74355F61", &plen);
    unsigned char *e128 = ck_test_hex("089BCA48B105EA6EA77CA5D2F39DC5E7", &l128);
    unsigned char *e256 = ck_test_hex("45BD806DBF6A833A9CFFC1C94589A222"
                                      "367A79BC21C413718906E9F578A78467", &l256);
    const char *realm = "ATHENA.MIT.EDUraeburn";
    uint8_t salt[64];
    ck_key k;

    memcpy(salt, prefix, plen);
    memcpy(salt + plen, realm, strlen(realm));
    slen = plen + strlen(realm);
    /* Default iteration count (NULL params) is 32768, the value of the RFC vector. */
    CHECK_OK(ck_string_to_key(CK_ENCTYPE_AES128_CTS_HMAC_SHA256_128, "password", 8, salt, slen,
                              NULL, 0, &k));
    CHECK_MEM_EQ(k.contents, k.length, e128, l128);
    CHECK_OK(ck_string_to_key(CK_ENCTYPE_AES128_CTS_HMAC_SHA256_128, "password", 8, salt, slen,
                              iter32768, 4, &k));
    CHECK_MEM_EQ(k.contents, k.length, e128, l128);
    CHECK_OK(ck_string_to_key(CK_ENCTYPE_AES256_CTS_HMAC_SHA384_192, "password", 8, salt, slen,
                              iter32768, 4, &k));
    CHECK_INT_EQ(k.enctype, CK_ENCTYPE_AES256_CTS_HMAC_SHA384_192);
    CHECK_MEM_EQ(k.contents, k.length, e256, l256);
    free(prefix);
    free(e128);
    free(e256);
}

#define RFC8009_BASE128 "3705D96080C17728A0E800EAB6E0D23C"
#define RFC8009_BASE256 "6D404D37FAF79F9DF0D33568D320669800EB4836472EA8A026D16B7182460C52"

static void
check_derived(const ck_key *base, uint8_t kind, const char *hex)
{
    uint8_t out[CK_KEY_MAX];
    size_t len = 0, elen = 0;
    unsigned char *expect = ck_test_hex(hex, &elen);

    CHECK_OK(ck_crypto_derive_key(base, 2, kind, out, &len));
    CHECK_MEM_EQ(out, len, expect, elen);
    free(expect);
}

static void
rfc8009_key_derivation(void)
{
    ck_key b128, b256;

    hex_key(&b128, CK_ENCTYPE_AES128_CTS_HMAC_SHA256_128, RFC8009_BASE128);
    hex_key(&b256, CK_ENCTYPE_AES256_CTS_HMAC_SHA384_192, RFC8009_BASE256);
    check_derived(&b128, CK_KDF_CHECKSUM, "B31A018A48F54776F403E9A396325DC3");
    check_derived(&b128, CK_KDF_ENCRYPT, "9B197DD1E8C5609D6E67C3E37C62C72E");
    check_derived(&b128, CK_KDF_INTEGRITY, "9FDA0E56AB2D85E1569A688696C26A6C");
    check_derived(&b256, CK_KDF_CHECKSUM, "EF5718BE86CC84963D8BBB5031E9F5C4BA41F28FAF69E73D");
    check_derived(&b256, CK_KDF_ENCRYPT,
                  "56AB22BEE63D82D7BC5227F6773F8EA7A5EB1C825160C38312980C442E5C7E49");
    check_derived(&b256, CK_KDF_INTEGRITY, "69B16514E3CD8E56B82010D5C73012B622C4D00FFC23ED1F");
    /* A second round comes from the derived-key cache and must give the same bytes. */
    check_derived(&b128, CK_KDF_ENCRYPT, "9B197DD1E8C5609D6E67C3E37C62C72E");
    check_derived(&b256, CK_KDF_INTEGRITY, "69B16514E3CD8E56B82010D5C73012B622C4D00FFC23ED1F");
}

static void
rfc8009_prf(void)
{
    static const struct {
        int32_t enctype;
        const char *base, *out;
    } v[] = {
        {CK_ENCTYPE_AES128_CTS_HMAC_SHA256_128, RFC8009_BASE128,
         "9D188616F63852FE86915BB840B4A886FF3E6BB0F819B49B893393D393854295"},
        {CK_ENCTYPE_AES256_CTS_HMAC_SHA384_192, RFC8009_BASE256,
         "9801F69A368C2BF675E59521E177D9A07F67EFE1CFDE8D3C"
         "8D6F6A0256E3B17DB3C1B62AD1B8553360D17367EB1514D2"},
    };

    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        uint8_t out[CK_PRF_MAX];
        size_t len = 0, elen = 0;
        unsigned char *expect = ck_test_hex(v[i].out, &elen);
        ck_key k;

        hex_key(&k, v[i].enctype, v[i].base);
        CHECK_OK(ck_prf(&k, (const uint8_t *)"test", 4, out, sizeof(out), &len));
        CHECK_MEM_EQ(out, len, expect, elen);
        /* Twice: the KBKDF context is reused and must not keep stale label/context. */
        CHECK_OK(ck_prf(&k, (const uint8_t *)"test", 4, out, sizeof(out), &len));
        CHECK_MEM_EQ(out, len, expect, elen);
        CHECK_INT_EQ(ck_prf(&k, (const uint8_t *)"test", 4, out, elen - 1, &len), CK_ERR_INVAL);
        free(expect);
    }
}

struct enc_vector {
    int32_t enctype;
    const char *base, *confounder, *plain, *cipher;
};

static const struct enc_vector rfc8009_enc[] = {
    {CK_ENCTYPE_AES128_CTS_HMAC_SHA256_128, RFC8009_BASE128, "7E5895EAF2672435BAD817F545A37148", "",
     "EF85FB890BB8472F4DAB20394DCA781DAD877EDA39D50C870C0D5A0A8E48C718"},
    {CK_ENCTYPE_AES128_CTS_HMAC_SHA256_128, RFC8009_BASE128, "7BCA285E2FD4130FB55B1A5C83BC5B24",
     "000102030405",
     "84D7F30754ED987BAB0BF3506BEB09CFB55402CEF7E6877CE99E247E52D16ED4421DFDF8976C"},
    {CK_ENCTYPE_AES128_CTS_HMAC_SHA256_128, RFC8009_BASE128, "56AB21713FF62C0A1457200F6FA9948F",
     "000102030405060708090A0B0C0D0E0F",
     "3517D640F50DDC8AD3628722B3569D2AE07493FA8263254080EA65C1008E8FC2"
     "95FB4852E7D83E1E7C48C37EEBE6B0D3"},
    {CK_ENCTYPE_AES128_CTS_HMAC_SHA256_128, RFC8009_BASE128, "A7A4E29A4728CE10664FB64E49AD3FAC",
     "000102030405060708090A0B0C0D0E0F1011121314",
     "720F73B18D9859CD6CCB4346115CD336C70F58EDC0C4437C5573544C31C813BC"
     "E1E6D072C186B39A413C2F92CA9B8334A287FFCBFC"},
    {CK_ENCTYPE_AES256_CTS_HMAC_SHA384_192, RFC8009_BASE256, "F764E9FA15C276478B2C7D0C4E5F58E4", "",
     "41F53FA5BFE7026D91FAF9BE959195A058707273A96A40F0A01960621AC612748B9BBFBE7EB4CE3C"},
    {CK_ENCTYPE_AES256_CTS_HMAC_SHA384_192, RFC8009_BASE256, "B80D3251C1F6471494256FFE712D0B9A",
     "000102030405",
     "4ED7B37C2BCAC8F74F23C1CF07E62BC7B75FB3F637B9F559C7F664F69EAB7B60"
     "92237526EA0D1F61CB20D69D10F2"},
    {CK_ENCTYPE_AES256_CTS_HMAC_SHA384_192, RFC8009_BASE256, "53BF8A0D105265D4E276428624CE5E63",
     "000102030405060708090A0B0C0D0E0F",
     "BC47FFEC7998EB91E8115CF8D19DAC4BBBE2E163E87DD37F49BECA92027764F6"
     "8CF51F14D798C2273F35DF574D1F932E40C4FF255B36A266"},
    {CK_ENCTYPE_AES256_CTS_HMAC_SHA384_192, RFC8009_BASE256, "763E65367E864F02F55153C7E3B58AF1",
     "000102030405060708090A0B0C0D0E0F1011121314",
     "40013E2DF58E8751957D2878BCD2D6FE101CCFD556CB1EAE79DB3C3EE86429F2"
     "B2A602AC86FEF6ECB647D6295FAE077A1FEB517508D2C16B4192E01F62"},
};

static void
rfc8009_encryption(void)
{
    for (size_t i = 0; i < sizeof(rfc8009_enc) / sizeof(rfc8009_enc[0]); i++) {
        const struct enc_vector *v = &rfc8009_enc[i];
        size_t clen = 0, plen = 0, elen = 0, olen = 0;
        unsigned char *conf = ck_test_hex(v->confounder, &clen);
        unsigned char *plain = ck_test_hex(v->plain, &plen);
        unsigned char *expect = ck_test_hex(v->cipher, &elen);
        uint8_t out[128], back[128];
        ck_key k;

        hex_key(&k, v->enctype, v->base);
        CHECK_INT_EQ(ck_encrypt_length(v->enctype, plen), elen);
        CHECK_OK(ck_crypto_encrypt_with_confounder(&k, 2, conf, plain, plen, out, sizeof(out),
                                                   &olen));
        CHECK_MEM_EQ(out, olen, expect, elen);
        CHECK_OK(ck_decrypt(&k, 2, expect, elen, back, sizeof(back), &olen));
        CHECK_MEM_EQ(back, olen, plain, plen);
        free(conf);
        free(plain);
        free(expect);
    }
}

static void
rfc8009_checksum(void)
{
    size_t mlen = 0, e128l = 0, e256l = 0, len = 0;
    unsigned char *msg = ck_test_hex("000102030405060708090A0B0C0D0E0F1011121314", &mlen);
    unsigned char *e128 = ck_test_hex("D78367186643D67B411CBA9139FC1DEE", &e128l);
    unsigned char *e256 = ck_test_hex("45EE791567EEFCA37F4AC1E0222DE80D43C3BFA06699672A", &e256l);
    uint8_t out[CK_CHECKSUM_MAX];
    ck_key b128, b256;

    hex_key(&b128, CK_ENCTYPE_AES128_CTS_HMAC_SHA256_128, RFC8009_BASE128);
    hex_key(&b256, CK_ENCTYPE_AES256_CTS_HMAC_SHA384_192, RFC8009_BASE256);
    CHECK_OK(ck_make_checksum(&b128, CK_CKSUMTYPE_HMAC_SHA256_128_AES128, 2, msg, mlen, out,
                              sizeof(out), &len));
    CHECK_MEM_EQ(out, len, e128, e128l);
    CHECK_OK(ck_make_checksum(&b128, 0, 2, msg, mlen, out, sizeof(out), &len));
    CHECK_MEM_EQ(out, len, e128, e128l);
    CHECK_OK(ck_verify_checksum(&b128, CK_CKSUMTYPE_HMAC_SHA256_128_AES128, 2, msg, mlen, e128,
                                e128l));
    CHECK_OK(ck_make_checksum(&b256, CK_CKSUMTYPE_HMAC_SHA384_192_AES256, 2, msg, mlen, out,
                              sizeof(out), &len));
    CHECK_MEM_EQ(out, len, e256, e256l);
    CHECK_OK(ck_verify_checksum(&b256, 0, 2, msg, mlen, e256, e256l));
    free(msg);
    free(e128);
    free(e256);
}

/* ---- RFC 3961 A.1: n-fold (used by the AES DK hot path) ---- */

static void
rfc3961_nfold(void)
{
    static const struct {
        const char *in;
        size_t bits;
        const char *out;
    } v[] = {
        {"012345", 64, "be072631276b1955"},
        {"password", 56, "78a07b6caf85fa"},
        {"Rough Consensus, and Running Code", 64, "bb6ed30870b7f0e0"},
        {"password", 168, "59e4a8ca7c0385c3c37b3f6d2000247cb6e6bd5b3e"},
        {"MASSACHVSETTS INSTITVTE OF TECHNOLOGY", 192,
         "db3b0d8f0b061e603282b308a50841229ad798fab9540c1b"},
        {"Q", 168, "518a54a215a8452a518a54a215a8452a518a54a215"},
        {"ba", 168, "fb25d531ae8974499f52fd92ea9857c4ba24cf297e"},
        {"kerberos", 64, "6b65726265726f73"},
        {"kerberos", 128, "6b65726265726f737b9b5b2b93132b93"},
        {"kerberos", 168, "8372c236344e5f1550cd0747e15d62ca7a5a3bcea4"},
        {"kerberos", 256, "6b65726265726f737b9b5b2b93132b935c9bdcdad95c9899c4cae4dee6d6cae4"},
    };

    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        size_t elen = 0;
        unsigned char *expect = ck_test_hex(v[i].out, &elen);
        uint8_t out[32];

        CHECK_INT_EQ(elen, v[i].bits / 8);
        ck_crypto_nfold((const uint8_t *)v[i].in, strlen(v[i].in), out, v[i].bits / 8);
        CHECK_MEM_EQ(out, v[i].bits / 8, expect, elen);
        free(expect);
    }
}

/* ---- RFC 3961 A.3: DK with des3, through OpenSSL KRB5KDF (our reference DK) ---- */

static void
rfc3961_dk_des3(void)
{
    static const struct {
        const char *key, *constant, *dk;
    } v[] = {
        {"dce06b1f64c857a11c3db57c51899b2cc1791008ce973b92", "0000000155",
         "925179d04591a79b5d3192c4a7e9c289b049c71f6ee604cd"},
        {"5e13d31c70ef765746578531cb51c15bf11ca82c97cee9f2", "00000001aa",
         "9e58e5a146d9942a101c469845d67a20e3c4259ed913f207"},
        {"98e6fd8a04a4b6859b75a176540b9752bad3ecd610a252bc", "0000000155",
         "13fef80d763e94ec6d13fd2ca1d085070249dad39808eabf"},
        {"622aec25a2fe2cad7094680b7c64940280084c1a7cec92b5", "00000001aa",
         "f8dfbf04b097e6d9dc0702686bcb3489d91fd9a4516b703e"},
        {"d3f8298ccb166438dcb9b93ee5a7629286a491f838f802fb", "6b65726265726f73",
         "2370da575d2a3da864cebfdc5204d56df779a7df43d9da43"},
        {"c1081649ada74362e6a1459d01dfd30d67c2234c940704da", "0000000155",
         "348057ec98fdc48016161c2a4c7a943e92ae492c989175f7"},
        {"5d154af238f46713155719d55e2f1f790dd661f279a7917c", "00000001aa",
         "a8808ac267dada3dcbe9a7c84626fbc761c294b01315e5c1"},
        {"798562e049852f57dc8c343ba17f2ca1d97394efc8adc443", "0000000155",
         "c813f88a3be3b334f75425ce9175fbe3c8493b89c8703b49"},
        {"26dce334b545292f2feab9a8701a89a4b99eb9942cecd016", "00000001aa",
         "f48ffd6e83f83e7354e694fd252cf83bfe58f7d5ba37ec5d"},
    };

    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        size_t klen = 0, clen = 0, elen = 0;
        unsigned char *key = ck_test_hex(v[i].key, &klen);
        unsigned char *constant = ck_test_hex(v[i].constant, &clen);
        unsigned char *expect = ck_test_hex(v[i].dk, &elen);
        uint8_t out[24];

        CHECK_OK(ck_crypto_krb5kdf("DES-EDE3-CBC", key, klen, constant, clen, out, sizeof(out)));
        CHECK_MEM_EQ(out, sizeof(out), expect, elen);
        free(key);
        free(constant);
        free(expect);
    }
}

/* The hot-path KDFs (n-fold + AES, one HMAC) agree with OpenSSL's KRB5KDF and KBKDF on random
 * keys, for every constant shape we use. */
static void
kdf_fast_matches_openssl(void)
{
    static const char *const labels[] = {"kerberos", "prf"};

    for (int round = 0; round < 50; round++) {
        uint8_t key[32], constant[5], fast[48], ref[48];
        uint32_t usage = 0;

        CHECK_OK(ck_random_bytes(key, sizeof(key)));
        CHECK_OK(ck_random_bytes(&usage, sizeof(usage)));
        constant[0] = (uint8_t)(usage >> 24);
        constant[1] = (uint8_t)(usage >> 16);
        constant[2] = (uint8_t)(usage >> 8);
        constant[3] = (uint8_t)usage;
        constant[4] = (const uint8_t[]){0x99, 0xAA, 0x55}[round % 3];
        for (size_t klen = 16; klen <= 32; klen += 16) {
            const char *cipher = klen == 16 ? "AES-128-CBC" : "AES-256-CBC";

            CHECK_OK(ck_crypto_dk_aes(key, klen, constant, 5, fast));
            CHECK_OK(ck_crypto_krb5kdf(cipher, key, klen, constant, 5, ref, klen));
            CHECK_MEM_EQ(fast, klen, ref, klen);
            for (size_t l = 0; l < 2; l++) {
                const uint8_t *lab = (const uint8_t *)labels[l];

                CHECK_OK(ck_crypto_dk_aes(key, klen, lab, strlen(labels[l]), fast));
                CHECK_OK(ck_crypto_krb5kdf(cipher, key, klen, lab, strlen(labels[l]), ref, klen));
                CHECK_MEM_EQ(fast, klen, ref, klen);
            }
        }
        for (int md = CK_MD_SHA256; md <= CK_MD_SHA384; md++) {
            size_t klen = md == CK_MD_SHA256 ? 16 : 32;
            static const size_t outs[] = {16, 24, 32, 48};

            for (size_t o = 0; o < sizeof(outs) / sizeof(outs[0]); o++) {
                if (md == CK_MD_SHA256 && outs[o] > 32)
                    continue;
                CHECK_OK(ck_crypto_kdf_sha2(md, key, klen, constant, 5, NULL, 0, fast, outs[o]));
                CHECK_OK(ck_crypto_kbkdf_sha2(md, key, klen, constant, 5, NULL, 0, ref, outs[o]));
                CHECK_MEM_EQ(fast, outs[o], ref, outs[o]);
                /* With a context (the PRF input). */
                CHECK_OK(ck_crypto_kdf_sha2(md, key, klen, (const uint8_t *)"prf", 3, key + 3,
                                            (size_t)round % 29, fast, outs[o]));
                CHECK_OK(ck_crypto_kbkdf_sha2(md, key, klen, (const uint8_t *)"prf", 3, key + 3,
                                              (size_t)round % 29, ref, outs[o]));
                CHECK_MEM_EQ(fast, outs[o], ref, outs[o]);
            }
        }
    }
    {
        uint8_t out[48];

        /* Outputs longer than one HMAC block are refused rather than silently wrong. */
        CHECK_INT_EQ(ck_crypto_kdf_sha2(CK_MD_SHA256, out, 16, (const uint8_t *)"prf", 3, NULL, 0,
                                        out, 48),
                     CK_ERR_INVAL);
        CHECK_INT_EQ(ck_crypto_dk_aes(out, 16, out, 17, out), CK_ERR_INVAL);
    }
}

/* Buffered randomness: distinct outputs, both pools, and large requests bypass the buffer. */
static void
random_buffers(void)
{
    uint8_t seen[200][16], big[1000];
    ck_key a, b;

    for (int i = 0; i < 200; i++) {
        CHECK_OK(ck_random_bytes(seen[i], 16));
        for (int j = 0; j < i; j++)
            CHECK(memcmp(seen[i], seen[j], 16) != 0);
    }
    CHECK_OK(ck_random_bytes(big, sizeof(big)));
    CHECK_OK(ck_random_bytes(big, 0));
    for (int i = 0; i < 100; i++) {
        CHECK_OK(ck_random_key(CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, &a));
        CHECK_OK(ck_random_key(CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, &b));
        CHECK(memcmp(a.contents, b.contents, 32) != 0);
    }
}

/* ---- aes-sha1 vectors the RFCs do not publish: MIT krb5 src/lib/crypto/crypto_tests ---- */

static void
mit_aes_sha1_decrypt(void)
{
    /* t_decrypt.c: key, usage, plaintext, ciphertext (confounder included). */
    static const struct {
        int32_t enctype;
        int32_t usage;
        const char *plain, *key, *cipher;
    } v[] = {
        {CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96, 0, "", "5A5C0F0BA54F3828B2195E66CA24A289",
         "49FF8E11C173D9583A3254FBE7B1F1DF36C538E8416784A1672E6676"},
        {CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96, 1, "1", "98450E3F3BAA13F5C99BEB936981B06F",
         "F86742F537B35DC2174A4DBAA920FAF9042090B065E1EBB1CAD9A65394"},
        {CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96, 2, "9 bytesss", "9062430C8CDA3388922E6D6A509F5B7A",
         "68FB9679601F45C78857B2BF820FD6E53ECA8D42FD4B1D7024A09205ABB7CD2EC26C355D2F"},
        {CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96, 3, "13 bytes byte", "033EE6502C54FD23E27791E987983827",
         "EC366D0327A933BF49330E650E49BC6B974637FE80BF532FE51795B4809718E6194724DB948D1FD637"},
        {CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96, 4, "30 bytes bytes bytes bytes byt",
         "DCEEB70B3DE76562E689226C76429148",
         "C96081032D5D8EEB7E32B4089F789D0FAA481DEA74C0F97CBF3146DDFCF8E800"
         "156ECB532FC203E30FF600B63B350939FECE510F02D7FF1E7BAC"},
        {CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, 0, "",
         "17F275F2954F2ED1F90C377BA7F4D6A369AA0136E0BF0C927AD6133C693759A9",
         "E5094C55EE7B38262E2B044280B069379A95BF95BD8376FB3281B435"},
        {CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, 1, "1",
         "B9477E1FF0329C0050E20CE6C72D2DFF27E8FE541AB0954429A9CB5B4F7B1E2A",
         "406150B97AEB76D43B36B62CC1ECDFBE6F40E95755E0BEB5C27825F3A4"},
    };

    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        size_t clen = 0, olen = 0;
        unsigned char *cipher = ck_test_hex(v[i].cipher, &clen);
        uint8_t out[128];
        ck_key k;

        hex_key(&k, v[i].enctype, v[i].key);
        CHECK_OK(ck_decrypt(&k, v[i].usage, cipher, clen, out, sizeof(out), &olen));
        CHECK_MEM_EQ(out, olen, v[i].plain, strlen(v[i].plain));
        /* Another usage fails; decrypting in place (out == cipher) works. */
        CHECK_INT_EQ(ck_decrypt(&k, v[i].usage + 1, cipher, clen, out, sizeof(out), &olen),
                     CK_ERR_INTEGRITY);
        CHECK_OK(ck_decrypt(&k, v[i].usage, cipher, clen, cipher, clen, &olen));
        CHECK_MEM_EQ(cipher, olen, v[i].plain, strlen(v[i].plain));
        free(cipher);
    }
}

static void
mit_aes_sha1_checksum_and_prf(void)
{
    /* t_cksums.c */
    static const struct {
        int32_t enctype, cksumtype, usage;
        const char *data, *key, *cksum;
    } c[] = {
        {CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96, CK_CKSUMTYPE_HMAC_SHA1_96_AES128, 3,
         "eight nine ten eleven twelve thirteen", "9062430C8CDA3388922E6D6A509F5B7A",
         "01A4B088D45628F6946614E3"},
        {CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, CK_CKSUMTYPE_HMAC_SHA1_96_AES256, 4, "fourteen",
         "B1AE4CD8462AFF1677053CC9279AAC30B796FB81CE21474DD3DDBCFEA4EC76D7",
         "E08739E3279E2903EC8E3836"},
    };
    /* t_prf.c: exercises our reading of RFC 3962 §6 (SHA-1, truncate to a block, encrypt with
     * DK(key, "prf")). */
    static const struct {
        int32_t enctype;
        const char *key, *in, *out;
    } p[] = {
        {CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96, "AE272E7CDEC86AC5138CDB196D8E297D", "0161",
         "77B39A37A868920F2A51F9DD150C5717"},
        {CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96, "67AB1CFEF35E4C27FFDEAC60385A3E9C", "0162",
         "E06C0DD31FF02091994F2EF5178BFE3D"},
        {CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96,
         "C01F157211F7B77EAAF457C3E156690127EE127D810BA6392E97BAA243EB0616", "0161",
         "B2628C788E2E9C4A9BB4644678C29F2F"},
        {CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96,
         "C01F157211F7B77EAAF457C3E156690127EE127D810BA6392E97BAA243EB0616", "0261",
         "B406373350CEE8A6126F4A9B65A0CD21"},
        {CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96,
         "9D520D2D980AA7CB6B693682B62DA258B333867951642CE647AE62B1E5E0B5E9", "0162",
         "FF0E289EA756C0559A0E911856961A49"},
        {CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96,
         "9D520D2D980AA7CB6B693682B62DA258B333867951642CE647AE62B1E5E0B5E9", "0262",
         "0D674DD0F9A6806525A4D92E828BD15A"},
    };

    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        size_t elen = 0, len = 0;
        unsigned char *expect = ck_test_hex(c[i].cksum, &elen);
        uint8_t out[CK_CHECKSUM_MAX];
        ck_key k;

        hex_key(&k, c[i].enctype, c[i].key);
        CHECK_OK(ck_make_checksum(&k, c[i].cksumtype, c[i].usage, (const uint8_t *)c[i].data,
                                  strlen(c[i].data), out, sizeof(out), &len));
        CHECK_MEM_EQ(out, len, expect, elen);
        CHECK_OK(ck_verify_checksum(&k, c[i].cksumtype, c[i].usage, (const uint8_t *)c[i].data,
                                    strlen(c[i].data), expect, elen));
        free(expect);
    }
    for (size_t i = 0; i < sizeof(p) / sizeof(p[0]); i++) {
        size_t ilen = 0, elen = 0, len = 0;
        unsigned char *in = ck_test_hex(p[i].in, &ilen);
        unsigned char *expect = ck_test_hex(p[i].out, &elen);
        uint8_t out[CK_PRF_MAX];
        ck_key k;

        hex_key(&k, p[i].enctype, p[i].key);
        CHECK_OK(ck_prf(&k, in, ilen, out, sizeof(out), &len));
        CHECK_MEM_EQ(out, len, expect, elen);
        free(in);
        free(expect);
    }
}

/* ---- Round trips and negative cases ---- */

static void
round_trips(void)
{
    static const size_t lens[] = {0, 1, 15, 16, 17, 31, 32, 33, 1000};
    uint8_t plain[1000], cipher[1100], back[1100];

    for (size_t i = 0; i < sizeof(plain); i++)
        plain[i] = (uint8_t)(i * 7 + 3);
    for (size_t e = 0; e < N_ENCTYPES; e++) {
        ck_key k, other;

        CHECK_OK(ck_random_key(all_enctypes[e], &k));
        CHECK_OK(ck_random_key(all_enctypes[e], &other));
        CHECK_INT_EQ(k.length, ck_enctype_key_length(all_enctypes[e]));
        CHECK(memcmp(k.contents, other.contents, k.length) != 0);
        for (size_t j = 0; j < sizeof(lens) / sizeof(lens[0]); j++) {
            size_t n = lens[j], clen = 0, plen = 0, clen2 = 0;
            uint8_t cipher2[1100];

            CHECK_OK(ck_encrypt(&k, 7, plain, n, cipher, sizeof(cipher), &clen));
            CHECK_INT_EQ(clen, ck_encrypt_length(all_enctypes[e], n));
            CHECK(clen <= n + CK_ENC_OVERHEAD_MAX);
            /* A fresh confounder each time. */
            CHECK_OK(ck_encrypt(&k, 7, plain, n, cipher2, sizeof(cipher2), &clen2));
            CHECK(clen2 == clen && memcmp(cipher, cipher2, clen) != 0);
            CHECK_OK(ck_decrypt(&k, 7, cipher, clen, back, sizeof(back), &plen));
            CHECK_MEM_EQ(back, plen, plain, n);
            CHECK_INT_EQ(ck_decrypt(&other, 7, cipher, clen, back, sizeof(back), &plen),
                         CK_ERR_INTEGRITY);
            CHECK_INT_EQ(ck_decrypt(&k, 8, cipher, clen, back, sizeof(back), &plen),
                         CK_ERR_INTEGRITY);
            CHECK_INT_EQ(plen, 0);
            /* Output buffer too small for the ciphertext. */
            CHECK_INT_EQ(ck_encrypt(&k, 7, plain, n, cipher, clen - 1, &clen2), CK_ERR_INVAL);
        }
        ck_key_clear(&k);
        CHECK_INT_EQ(k.length, 0);
    }
}

static void
tampering(void)
{
    uint8_t plain[33], cipher[128], back[128];

    memset(plain, 0x5a, sizeof(plain));
    for (size_t e = 0; e < N_ENCTYPES; e++) {
        size_t clen = 0, plen = 0;
        ck_key k;

        CHECK_OK(ck_random_key(all_enctypes[e], &k));
        CHECK_OK(ck_encrypt(&k, 3, plain, sizeof(plain), cipher, sizeof(cipher), &clen));
        /* Every single-bit flip anywhere in the ciphertext or tag is detected. */
        for (size_t bit = 0; bit < clen * 8; bit++) {
            uint8_t mod[128];

            memcpy(mod, cipher, clen);
            mod[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            CHECK_INT_EQ(ck_decrypt(&k, 3, mod, clen, back, sizeof(back), &plen),
                         CK_ERR_INTEGRITY);
        }
        /* Every truncation, down to nothing, is rejected (too short or bad MAC). */
        for (size_t n = 0; n < clen; n++) {
            int ret = ck_decrypt(&k, 3, cipher, n, back, sizeof(back), &plen);

            CHECK(ret == CK_ERR_INTEGRITY || ret == CK_ERR_DECODE);
        }
        /* Appended garbage too. */
        cipher[clen] = 0;
        CHECK_INT_EQ(ck_decrypt(&k, 3, cipher, clen + 1, back, sizeof(back), &plen),
                     CK_ERR_INTEGRITY);
        /* Output buffer smaller than the ciphertext minus the tag. */
        CHECK_INT_EQ(ck_decrypt(&k, 3, cipher, clen, back, 16, &plen), CK_ERR_INVAL);
    }
}

static void
checksum_negative(void)
{
    const uint8_t data[] = "KDC-REQ-BODY bytes";
    uint8_t sum[CK_CHECKSUM_MAX];

    for (size_t e = 0; e < N_ENCTYPES; e++) {
        size_t len = 0, expect_len = 0;
        ck_key k, other;
        uint8_t mod[CK_CHECKSUM_MAX];

        CHECK_OK(ck_random_key(all_enctypes[e], &k));
        CHECK_OK(ck_random_key(all_enctypes[e], &other));
        CHECK_OK(ck_make_checksum(&k, 0, 6, data, sizeof(data), sum, sizeof(sum), &len));
        CHECK_OK(ck_checksum_length(ck_enctype_checksum_type(all_enctypes[e]), &expect_len));
        CHECK_INT_EQ(len, expect_len);
        CHECK_OK(ck_verify_checksum(&k, 0, 6, data, sizeof(data), sum, len));
        CHECK_INT_EQ(ck_verify_checksum(&k, 0, 7, data, sizeof(data), sum, len),
                     CK_ERR_INTEGRITY);
        CHECK_INT_EQ(ck_verify_checksum(&other, 0, 6, data, sizeof(data), sum, len),
                     CK_ERR_INTEGRITY);
        CHECK_INT_EQ(ck_verify_checksum(&k, 0, 6, data, sizeof(data) - 1, sum, len),
                     CK_ERR_INTEGRITY);
        CHECK_INT_EQ(ck_verify_checksum(&k, 0, 6, data, sizeof(data), sum, len - 1),
                     CK_ERR_INTEGRITY);
        CHECK_INT_EQ(ck_verify_checksum(&k, 0, 6, data, sizeof(data), NULL, 0),
                     CK_ERR_INTEGRITY);
        for (size_t bit = 0; bit < len * 8; bit++) {
            memcpy(mod, sum, len);
            mod[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            CHECK_INT_EQ(ck_verify_checksum(&k, 0, 6, data, sizeof(data), mod, len),
                         CK_ERR_INTEGRITY);
        }
        /* A checksum type of another enctype, unknown types, and a short output buffer. */
        CHECK_INT_EQ(ck_make_checksum(&k, ck_enctype_checksum_type(all_enctypes[(e + 1) % 4]), 6,
                                      data, sizeof(data), sum, sizeof(sum), &len),
                     CK_ERR_UNSUPPORTED);
        CHECK_INT_EQ(ck_verify_checksum(&k, 7 /* rsa-md5 */, 6, data, sizeof(data), sum, 16),
                     CK_ERR_UNSUPPORTED);
        CHECK_INT_EQ(ck_make_checksum(&k, 0, 6, data, sizeof(data), sum, expect_len - 1, &len),
                     CK_ERR_INVAL);
    }
    CHECK(!ck_checksum_is_keyed_supported(-138));
    CHECK(ck_checksum_is_keyed_supported(CK_CKSUMTYPE_HMAC_SHA384_192_AES256));
    {
        size_t len = 0;

        CHECK_INT_EQ(ck_checksum_length(12, &len), CK_ERR_UNSUPPORTED);
        CHECK_OK(ck_checksum_length(CK_CKSUMTYPE_HMAC_SHA1_96_AES256, &len));
        CHECK_INT_EQ(len, 12);
        CHECK_OK(ck_checksum_length(CK_CKSUMTYPE_HMAC_SHA384_192_AES256, &len));
        CHECK_INT_EQ(len, 24);
    }
}

static void
unsupported_and_bad_params(void)
{
    static const uint8_t key16[16] = {1, 2, 3};
    static const uint8_t iter0[4] = {0, 0, 0, 0};
    static const uint8_t iter_huge[4] = {0x01, 0x00, 0x00, 0x01};
    static const uint8_t iter1[4] = {0, 0, 0, 1};
    uint8_t buf[64];
    size_t len = 0;
    ck_key k;

    CHECK(!ck_enctype_is_supported(23));
    CHECK_INT_EQ(ck_key_init(&k, 23, key16, 16), CK_ERR_UNSUPPORTED);
    CHECK_INT_EQ(ck_key_init(&k, CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, key16, 16), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_random_key(23, &k), CK_ERR_UNSUPPORTED);
    CHECK_INT_EQ(ck_string_to_key(23, "pw", 2, (const uint8_t *)"salt", 4, NULL, 0, &k),
                 CK_ERR_UNSUPPORTED);
    CHECK_INT_EQ(ck_encrypt_length(23, 10), 0);
    CHECK_INT_EQ(ck_enctype_key_length(23), 0);
    CHECK_INT_EQ(ck_enctype_checksum_type(23), 0);
    /* A key object claiming rc4-hmac. */
    memset(&k, 0, sizeof(k));
    k.enctype = 23;
    k.length = 16;
    CHECK_INT_EQ(ck_encrypt(&k, 1, key16, 16, buf, sizeof(buf), &len), CK_ERR_UNSUPPORTED);
    CHECK_INT_EQ(ck_decrypt(&k, 1, buf, 44, buf, sizeof(buf), &len), CK_ERR_UNSUPPORTED);
    CHECK_INT_EQ(ck_make_checksum(&k, 0, 1, key16, 16, buf, sizeof(buf), &len),
                 CK_ERR_UNSUPPORTED);
    CHECK_INT_EQ(ck_prf(&k, key16, 16, buf, sizeof(buf), &len), CK_ERR_UNSUPPORTED);
    /* A key whose length does not match its enctype. */
    k.enctype = CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96;
    CHECK_INT_EQ(ck_encrypt(&k, 1, key16, 16, buf, sizeof(buf), &len), CK_ERR_INVAL);

    for (size_t e = 0; e < N_ENCTYPES; e++) {
        int32_t et = all_enctypes[e];

        CHECK_INT_EQ(ck_string_to_key(et, "pw", 2, (const uint8_t *)"salt", 4, iter1, 3, &k),
                     CK_ERR_INVAL);
        CHECK_INT_EQ(ck_string_to_key(et, "pw", 2, (const uint8_t *)"salt", 4, buf, 5, &k),
                     CK_ERR_INVAL);
        CHECK_INT_EQ(ck_string_to_key(et, "pw", 2, (const uint8_t *)"salt", 4, iter0, 4, &k),
                     CK_ERR_INVAL);
        CHECK_INT_EQ(
            ck_string_to_key(et, "pw", 2, (const uint8_t *)"salt", 4, iter_huge, 4, &k),
            CK_ERR_INVAL);
        CHECK_INT_EQ(k.length, 0);
        /* Empty password and empty salt are legal inputs. */
        CHECK_OK(ck_string_to_key(et, "", 0, NULL, 0, iter1, 4, &k));
        CHECK_INT_EQ(k.length, ck_enctype_key_length(et));
    }
}

static void
enctype_names(void)
{
    static const struct {
        const char *name;
        int32_t enctype;
    } v[] = {
        {"aes256-cts-hmac-sha1-96", 18},   {"aes256-cts", 18},  {"AES256-CTS-HMAC-SHA1-96", 18},
        {"aes128-cts-hmac-sha1-96", 17},   {"aes128-cts", 17},  {"aes128-cts-hmac-sha256-128", 19},
        {"aes128-sha2", 19},               {"aes256-cts-hmac-sha384-192", 20},
        {"aes256-sha2", 20},               {"17", 17},          {"20", 20},
    };
    int32_t et = 0;

    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        et = 0;
        CHECK_OK(ck_enctype_from_name(v[i].name, &et));
        CHECK_INT_EQ(et, v[i].enctype);
    }
    CHECK(strcmp(ck_enctype_name(18), "aes256-cts-hmac-sha1-96") == 0);
    CHECK(strcmp(ck_enctype_name(17), "aes128-cts-hmac-sha1-96") == 0);
    CHECK(strcmp(ck_enctype_name(19), "aes128-cts-hmac-sha256-128") == 0);
    CHECK(strcmp(ck_enctype_name(20), "aes256-cts-hmac-sha384-192") == 0);
    CHECK(strcmp(ck_enctype_name(23), "unknown") == 0);
    CHECK_INT_EQ(ck_enctype_from_name("arcfour-hmac", &et), CK_ERR_UNSUPPORTED);
    CHECK_INT_EQ(ck_enctype_from_name("23", &et), CK_ERR_UNSUPPORTED);
    CHECK_INT_EQ(ck_enctype_from_name("18x", &et), CK_ERR_UNSUPPORTED);
    CHECK_INT_EQ(ck_enctype_from_name("", &et), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_enctype_checksum_type(18), CK_CKSUMTYPE_HMAC_SHA1_96_AES256);
    CHECK_INT_EQ(ck_enctype_checksum_type(19), CK_CKSUMTYPE_HMAC_SHA256_128_AES128);
}

static void
key_objects(void)
{
    ck_key *h = ck_key_new(), copy;

    CHECK(h != NULL);
    CHECK_INT_EQ(h->length, 0);
    CHECK_OK(ck_random_key(CK_ENCTYPE_AES256_CTS_HMAC_SHA384_192, h));
    CHECK_OK(ck_key_copy(&copy, h));
    CHECK_MEM_EQ(copy.contents, copy.length, h->contents, h->length);
    CHECK_INT_EQ(copy.enctype, CK_ENCTYPE_AES256_CTS_HMAC_SHA384_192);
    ck_key_free(h);
    ck_key_free(NULL);
    ck_key_clear(&copy);
    CHECK_INT_EQ(copy.enctype, 0);
}

/* The derived-key cache is used, bounded, and keyed on the whole (key, enctype, usage). */
static void
derived_key_cache(void)
{
    uint64_t hits0 = 0, misses0 = 0, hits1 = 0, misses1 = 0;
    size_t entries = 0, len = 0;
    uint8_t a[CK_KEY_MAX], b[CK_KEY_MAX];
    ck_key k;

    CHECK_OK(ck_random_key(CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96, &k));
    CHECK_OK(ck_crypto_derive_key(&k, 11, CK_KDF_ENCRYPT, a, &len));
    ck_crypto_cache_stats(&hits0, &misses0, &entries);
    CHECK_OK(ck_crypto_derive_key(&k, 11, CK_KDF_ENCRYPT, b, &len));
    ck_crypto_cache_stats(&hits1, &misses1, &entries);
    CHECK_INT_EQ(hits1, hits0 + 1);
    CHECK_INT_EQ(misses1, misses0);
    CHECK_MEM_EQ(a, len, b, len);
    /* Same key bytes under another enctype of the same length: a different derived key. */
    k.enctype = CK_ENCTYPE_AES128_CTS_HMAC_SHA256_128;
    CHECK_OK(ck_crypto_derive_key(&k, 11, CK_KDF_ENCRYPT, b, &len));
    CHECK(memcmp(a, b, 16) != 0);
    for (int i = 0; i < 100; i++)
        CHECK_OK(ck_crypto_derive_key(&k, i, CK_KDF_INTEGRITY, b, &len));
    ck_crypto_cache_stats(&hits1, &misses1, &entries);
    CHECK(entries > 0 && entries <= 32);
    ck_crypto_thread_cleanup();
    ck_crypto_cache_stats(&hits1, &misses1, &entries);
    CHECK_INT_EQ(entries, 0);
    /* Usable again after cleanup. */
    k.enctype = CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96;
    CHECK_OK(ck_crypto_derive_key(&k, 11, CK_KDF_ENCRYPT, b, &len));
    CHECK_MEM_EQ(a, 16, b, len);
}

static void *
thread_main(void *arg)
{
    const ck_key *k = arg;
    uint8_t cipher[64], back[64];
    size_t clen = 0, plen = 0;
    int ok = 1;

    for (int i = 0; i < 200 && ok; i++) {
        ok = ck_encrypt(k, i % 5, (const uint8_t *)"thread", 6, cipher, sizeof(cipher),
                        &clen) == 0 &&
             ck_decrypt(k, i % 5, cipher, clen, back, sizeof(back), &plen) == 0 && plen == 6 &&
             memcmp(back, "thread", 6) == 0;
    }
    return ok ? arg : NULL;
}

/* Per-thread state is created and destroyed (wiped) with threads; ASan checks for leaks. */
static void
threads(void)
{
    pthread_t t[4];
    ck_key k;

    CHECK_OK(ck_random_key(CK_ENCTYPE_AES256_CTS_HMAC_SHA384_192, &k));
    for (int i = 0; i < 4; i++)
        CHECK(pthread_create(&t[i], NULL, thread_main, &k) == 0);
    for (int i = 0; i < 4; i++) {
        void *r = NULL;

        CHECK(pthread_join(t[i], &r) == 0);
        CHECK(r == &k);
    }
}

CK_TEST_MAIN("crypto", CK_TEST_CASE(rfc3962_string_to_key), CK_TEST_CASE(rfc3962_cts),
             CK_TEST_CASE(rfc8009_string_to_key), CK_TEST_CASE(rfc8009_key_derivation),
             CK_TEST_CASE(rfc8009_prf), CK_TEST_CASE(rfc8009_encryption),
             CK_TEST_CASE(rfc8009_checksum), CK_TEST_CASE(rfc3961_nfold),
             CK_TEST_CASE(rfc3961_dk_des3), CK_TEST_CASE(kdf_fast_matches_openssl),
             CK_TEST_CASE(random_buffers),
             CK_TEST_CASE(mit_aes_sha1_decrypt), CK_TEST_CASE(mit_aes_sha1_checksum_and_prf),
             CK_TEST_CASE(round_trips), CK_TEST_CASE(tampering), CK_TEST_CASE(checksum_negative),
             CK_TEST_CASE(unsupported_and_bad_params), CK_TEST_CASE(enctype_names),
             CK_TEST_CASE(key_objects), CK_TEST_CASE(derived_key_cache), CK_TEST_CASE(threads))
