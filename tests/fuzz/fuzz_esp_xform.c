/* Fuzzes lib/esp's decapsulation for IKEv2 transforms (ck_esp_xf_unprotect, xform.c) for every
 * transform it runs. The first input byte picks the transform (bits 0-2) and whether the harness makes the
 * packet authentic (bit 3): a fuzzer cannot forge a tag or an HMAC, so in that mode the rest of
 * the input is the plaintext body (payload, padding, pad length, next header) sealed here with
 * the SA's keys, and the padding and trailer checks behind the ICV get exercised too. Anything
 * accepted must re-protect and round-trip. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "cablekey/error.h"
#include "cablekey/esp.h"
#include "cablekey/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_SPI 0x00001234u
#define MAX_PKT 4096

static const struct {
    uint16_t enc, auth;
    uint8_t el, al;
    const char *cipher, *digest; /* for the harness's own sealing */
    size_t iv, icv, block;
} xf[8] = {
    {20, 0, 20, 0, "AES-128-GCM", NULL, 8, 16, 4},
    {20, 0, 36, 0, "AES-256-GCM", NULL, 8, 16, 4},
    {28, 0, 36, 0, "ChaCha20-Poly1305", NULL, 8, 16, 4},
    {12, 12, 16, 32, "AES-128-CBC", "SHA256", 16, 16, 16},
    {12, 14, 32, 64, "AES-256-CBC", "SHA512", 16, 32, 16},
    {11, 13, 0, 48, NULL, "SHA384", 0, 24, 4},
    {12, 2, 16, 20, "AES-128-CBC", "SHA1", 16, 12, 16},
    {11, 12, 0, 32, NULL, "SHA256", 0, 16, 4},
};

static const uint8_t key[64] = {
    0x10, 0x21, 0x32, 0x43, 0x54, 0x65, 0x76, 0x87, 0x98, 0xa9, 0xba, 0xcb, 0xdc, 0xed, 0xfe,
    0x0f, 0x01, 0x12, 0x23, 0x34, 0x45, 0x56, 0x67, 0x78, 0x89, 0x9a, 0xab, 0xbc, 0xcd, 0xde,
    0xef, 0xf0, 0xca, 0xfe, 0xba, 0xbe, 0x55, 0x66, 0x77, 0x88, 0x99, 0x00, 0x11, 0x22, 0x33,
    0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x01, 0x02, 0x03,
    0x04, 0x05, 0x06, 0x07};

static EVP_CIPHER *
cipher_of(int t)
{
    static EVP_CIPHER *c[8];

    if (c[t] == NULL && (c[t] = EVP_CIPHER_fetch(NULL, xf[t].cipher, NULL)) == NULL)
        abort();
    return c[t];
}

/* Seals body (a whole plaintext, its length a multiple of the block) as sequence number 1. */
static size_t
seal(int t, const uint8_t *body, size_t len, uint8_t *pkt)
{
    uint8_t nonce[12], *iv = pkt + 8, *ct;
    int l = 0;

    ck_put_be32(pkt, FUZZ_SPI);
    ck_put_be32(pkt + 4, 1);
    memset(iv, 0x5a, xf[t].iv);
    ct = iv + xf[t].iv;
    if (xf[t].digest == NULL) {
        EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
        size_t kl = xf[t].el - 4u;
        memcpy(nonce, key + kl, 4);
        memcpy(nonce + 4, iv, 8);
        if (c == NULL ||
            EVP_EncryptInit_ex2(c, cipher_of(t), key, nonce, NULL) != 1 ||
            EVP_EncryptUpdate(c, NULL, &l, pkt, 8) != 1 ||
            EVP_EncryptUpdate(c, ct, &l, body, (int)len) != 1 ||
            EVP_EncryptFinal_ex(c, ct + l, &l) != 1 ||
            EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, 16, ct + len) != 1)
            abort();
        EVP_CIPHER_CTX_free(c);
    } else {
        size_t ml = 0;
        uint8_t mac[64];
        if (xf[t].cipher != NULL) {
            EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
            if (c == NULL ||
                EVP_EncryptInit_ex2(c, cipher_of(t), key, iv, NULL) != 1)
                abort();
            EVP_CIPHER_CTX_set_padding(c, 0);
            if (EVP_EncryptUpdate(c, ct, &l, body, (int)len) != 1 ||
                EVP_EncryptFinal_ex(c, ct + l, &l) != 1)
                abort();
            EVP_CIPHER_CTX_free(c);
        } else {
            memcpy(ct, body, len);
        }
        if (EVP_Q_mac(NULL, "HMAC", NULL, xf[t].digest, NULL, key, xf[t].al, pkt,
                      8 + xf[t].iv + len, mac, sizeof(mac), &ml) == NULL)
            abort();
        memcpy(ct + len, mac, xf[t].icv);
    }
    return 8 + xf[t].iv + len + xf[t].icv;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t pkt[MAX_PKT + 64], out[MAX_PKT], again[MAX_PKT + 64], back[MAX_PKT];
    struct ck_esp_xf_params sa;
    ck_esp_xf *rx = NULL, *tx = NULL;
    size_t len, out_len = 0, again_len = 0, back_len = 0;
    uint8_t nh = 0, nh2 = 0;
    int t;

    if (size < 1 || size - 1 > MAX_PKT)
        return 0;
    t = data[0] & 7;
    memset(&sa, 0, sizeof(sa));
    sa.spi = FUZZ_SPI;
    sa.enc_alg = xf[t].enc;
    sa.auth_alg = xf[t].auth;
    sa.enc_key = key;
    sa.enc_key_len = xf[t].el;
    sa.auth_key = key;
    sa.auth_key_len = xf[t].al;
    if (ck_esp_xf_new(&sa, &rx) != 0 || ck_esp_xf_new(&sa, &tx) != 0)
        abort();
    len = size - 1;
    if (data[0] & 8) {
        size_t body = len - len % xf[t].block;
        if (body == 0)
            goto out;
        len = seal(t, data + 1, body, pkt);
    } else {
        memcpy(pkt, data + 1, len);
    }
    if (ck_esp_xf_unprotect(rx, pkt, len, out, sizeof(out), &out_len, &nh) != 0)
        goto out;
    /* Accepted: the same payload sealed again opens to the same bytes. */
    if (ck_esp_xf_protect(tx, nh, out, out_len, again, sizeof(again), &again_len) != 0)
        abort();
    ck_esp_xf_free(rx);
    rx = NULL;
    if (ck_esp_xf_new(&sa, &rx) != 0 ||
        ck_esp_xf_unprotect(rx, again, again_len, back, sizeof(back), &back_len, &nh2) != 0 ||
        back_len != out_len || nh2 != nh || memcmp(back, out, out_len) != 0)
        abort();
out:
    ck_esp_xf_free(rx);
    ck_esp_xf_free(tx);
    return 0;
}
