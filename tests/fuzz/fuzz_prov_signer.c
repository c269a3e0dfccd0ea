/* Fuzzes cablekey-prov's signer as a hostile back process would reach it: one message on its
 * socket (daemons/prov/signer_int.h). The request decoder's bounds, then the whole handler with
 * a throw-away EC CA and phone-ID key (the embedded manufacturer certificate is decoded without
 * its key by ck_pki_operator_issue_der, its MAC compared, a certificate issued): every answer
 * must be a well-formed response of the request's type, and an issued certificate must carry the
 * MAC, as many phone IDs as asked and the manufacturer's SubjectPublicKeyInfo as it was (when
 * OpenSSL's own d2i_X509 reads the manufacturer certificate too). The seed
 * corpus (tests/fuzz/corpus/prov_signer) holds a valid ISSUE (validity around FUZZ_NOW) and a
 * valid PHONE_ID request. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "cablekey/pki.h"
#include "cablekey/util.h"
#include "signer_int.h"

#define FUZZ_NOW 1767225600 /* 2026-01-01: the seed's validity starts there */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct prov_signer_keys *keys;

static void
init(void)
{
    ck_pki_cert_spec s = {0};
    EVP_PKEY *k = NULL;
    X509 *ca = NULL;
    uint8_t phone_key[32];

    memset(phone_key, 0x42, sizeof(phone_key));
    s.profile = CK_PKI_PROFILE_ROOT_CA;
    s.org = "Fuzz Cable";
    s.common_name = "Fuzz Provisioning CA";
    s.path_len = 0;
    s.not_before = FUZZ_NOW - 86400;
    s.not_after = FUZZ_NOW + 10 * 365 * 86400;
    if (ck_pki_key_generate(CK_PKI_KEY_EC_P256, &k) != 0 ||
        ck_pki_cert_issue(&s, k, NULL, k, &ca) != 0 ||
        prov_signer_keys_new(ca, k, phone_key, 366 * 86400, &keys) != 0)
        abort();
    X509_free(ca);
    EVP_PKEY_free(k);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct prov_signer_request q;
    uint8_t *resp = NULL;
    size_t resp_len = 0;
    bool decoded;

    if (keys == NULL)
        init();
    decoded = prov_signer_request_decode(data, size, &q) == 0;
    if (decoded) {
        if (q.n_numbers > CK_PROV_MAX_NUMBERS)
            abort();
        for (size_t i = 0; i < q.n_numbers; i++) {
            size_t n = strlen(q.numbers[i]);
            if (n == 0 || n > CK_PROV_NUMBER_MAX || strspn(q.numbers[i], "0123456789") != n)
                abort();
        }
        if (q.type == PROV_SIGNER_ISSUE &&
            (q.cert < data || q.cert + q.cert_len > data + size || q.cert_len == 0))
            abort();
    }
    if (prov_signer_answer(keys, data, size, FUZZ_NOW, &resp, &resp_len) != 0)
        abort(); /* only out of memory may fail, and libFuzzer's limits stop short of it */
    if (resp_len < PROV_SIGNER_HDR || resp_len > PROV_SIGNER_MSG_MAX || resp[0] != 1 ||
        !(resp[1] & 0x80) || ck_get_be32(resp + 4) != resp_len - PROV_SIGNER_HDR)
        abort();
    if (resp[2] == 0) {
        /* Success only for a request the decoder accepted. */
        if (!decoded || resp[1] != (q.type | 0x80))
            abort();
        if (q.type == PROV_SIGNER_PHONE_ID && resp_len != PROV_SIGNER_HDR + 32)
            abort();
        if (q.type == PROV_SIGNER_ISSUE) {
            const unsigned char *p = resp + PROV_SIGNER_HDR;
            X509 *x = d2i_X509(NULL, &p, (long)(resp_len - PROV_SIGNER_HDR)), *mfg;
            uint8_t mac[6], ids[CK_PKI_MAX_PHONE_IDS][32];
            size_t n = 0;
            if (x == NULL || ck_pki_cert_device_mac(x, mac) != 0 || memcmp(mac, q.mac, 6) != 0 ||
                ck_pki_cert_phone_ids(x, ids, CK_PKI_MAX_PHONE_IDS, &n) != 0 ||
                n != q.n_numbers)
                abort();
            p = q.cert;
            mfg = d2i_X509(NULL, &p, (long)q.cert_len);
            if (mfg != NULL && p == q.cert + q.cert_len) {
                unsigned char *want = NULL, *got = NULL;
                int want_len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(mfg), &want);
                int got_len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &got);
                if (want_len <= 0 || want_len != got_len || memcmp(want, got, (size_t)got_len))
                    abort();
                OPENSSL_free(want);
                OPENSSL_free(got);
            }
            X509_free(mfg);
            X509_free(x);
        }
    } else if (resp_len > PROV_SIGNER_HDR + PROV_SIGNER_ERRMSG_MAX) {
        abort();
    }
    free(resp);
    ERR_clear_error();
    return 0;
}
