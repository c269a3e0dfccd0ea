/* ESP throughput per core: ck_esp_protect and ck_esp_unprotect of 1000-byte payloads for every
 * suite, beside raw OpenSSL numbers measured in the same run on the same buffers (AES-128-CBC
 * and HMAC-SHA-1 as `openssl speed -evp` runs them, and the two together, which is all the
 * cryptographic work one ESP packet needs), and the ratio between them.
 *
 * Times are the thread's CPU time (CLOCK_THREAD_CPUTIME_ID), so a busy shared machine lowers
 * the numbers less than wall time would; "Gbit/s" counts payload bits (1000 bytes a packet).
 *
 * Usage: esp_bench [seconds per measurement (default 0.5)] [payload bytes (default 1000)] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "cablekey/error.h"
#include "cablekey/esp.h"
#include "cablekey/kmm.h"
#include "esp/esp_int.h"

#define BATCH 256 /* packets protected, then unprotected, per round (fits in L2) */
#define MAX_PAYLOAD 9000

static double
cpu_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
fail(const char *what, int ret)
{
    fprintf(stderr, "esp_bench: %s: %s: %s\n", what, ck_strerror(ret), ck_error_context());
    return 1;
}

static void
row(const char *name, double ops, double secs, size_t bytes)
{
    double per = secs / ops;

    printf("%-40s %10.2f %10.3f %10.0f\n", name, (double)bytes * 8 / per / 1e9, per * 1e6,
           (double)bytes / per / 1e6);
}

struct suite {
    const char *name;
    uint8_t enc, auth;
};

static uint8_t *pkts; /* BATCH packets, stride bytes apart */
static size_t stride;
static size_t pkt_lens[BATCH];

/* Gbit/s of protect and of unprotect for one suite; returns 0 or an error. */
static int
bench_suite(ck_esp_engine *eng, const struct suite *s, const uint8_t *payload, size_t len,
            double seconds, double *gp, double *gu)
{
    static const uint8_t ek[24] = {7, 6, 5, 4, 3, 2, 1, 0, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2,
                                   3, 4, 5, 6};
    static const uint8_t ak[20] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18,
                                   19, 20};
    struct ck_esp_sa_params p = {
        .spi = 0x1001, .enc = s->enc, .auth = s->auth, .enc_key = ek,
        .enc_key_len = s->enc == CK_KMM_ENC_AES128 ? 16 : s->enc == CK_KMM_ENC_3DES ? 24 : 0,
        .auth_key = ak, .auth_key_len = s->auth == CK_KMM_AUTH_HMAC_SHA1_96 ? 20 : 16,
        .replay_window = 1024};
    ck_esp_sa *o = NULL, *in = NULL;
    uint8_t out[MAX_PAYLOAD + 64], nh;
    double tp = 0, tu = 0, t0;
    long n = 0;
    int ret;

    if ((ret = ck_esp_sa_new(&p, &o)) != 0 || (ret = ck_esp_sa_new(&p, &in)) != 0)
        goto out;
    /* One untimed round: page faults and the first keying are not what is measured. */
    for (int i = 0; i < BATCH; i++) {
        size_t out_len;

        if ((ret = ck_esp_protect(eng, o, 17, payload, len, 0, pkts + i * stride, stride,
                                  &pkt_lens[i])) != 0 ||
            (ret = ck_esp_unprotect(eng, in, pkts + i * stride, pkt_lens[i], 0, out, sizeof(out),
                                    &out_len, &nh)) != 0)
            goto out;
    }
    while (tp + tu < seconds) {
        t0 = cpu_seconds();
        for (int i = 0; i < BATCH; i++)
            if ((ret = ck_esp_protect(eng, o, 17, payload, len, 0, pkts + i * stride, stride,
                                      &pkt_lens[i])) != 0)
                goto out;
        tp += cpu_seconds() - t0;
        t0 = cpu_seconds();
        for (int i = 0; i < BATCH; i++) {
            size_t out_len;

            if ((ret = ck_esp_unprotect(eng, in, pkts + i * stride, pkt_lens[i], 0, out,
                                        sizeof(out), &out_len, &nh)) != 0)
                goto out;
        }
        tu += cpu_seconds() - t0;
        n += BATCH;
    }
    *gp = (double)len * 8 * (double)n / tp / 1e9;
    *gu = (double)len * 8 * (double)n / tu / 1e9;
    printf("%-40s %10.2f %10.3f %10.0f\n", s->name, *gp, tp / (double)n * 1e6,
           (double)len * (double)n / tp / 1e6);
    printf("%-40s %10.2f %10.3f %10.0f\n", "  unprotect", *gu, tu / (double)n * 1e6,
           (double)len * (double)n / tu / 1e6);
out:
    ck_esp_sa_free(o);
    ck_esp_sa_free(in);
    return ret;
}

int
main(int argc, char **argv)
{
    static const struct suite suites[] = {
        {"AES-128-CBC + HMAC-SHA-1-96  protect", CK_KMM_ENC_AES128, CK_KMM_AUTH_HMAC_SHA1_96},
        {"AES-128-CBC + HMAC-MD5-96    protect", CK_KMM_ENC_AES128, CK_KMM_AUTH_HMAC_MD5_96},
        {"3DES-CBC + HMAC-SHA-1-96     protect", CK_KMM_ENC_3DES, CK_KMM_AUTH_HMAC_SHA1_96},
        {"NULL + HMAC-SHA-1-96         protect", CK_KMM_ENC_NULL, CK_KMM_AUTH_HMAC_SHA1_96},
        {"NULL + HMAC-MD5-96           protect", CK_KMM_ENC_NULL, CK_KMM_AUTH_HMAC_MD5_96},
    };
    static uint8_t buf[MAX_PAYLOAD + 64], ct[MAX_PAYLOAD + 64];
    static const uint8_t key[20] = {42};
    uint8_t iv[16] = {0}, mac[20];
    double seconds = 0.5, t0, t, g_esp_p = 0, g_esp_u = 0, g_aes = 0, g_sha = 0, g_both = 0;
    size_t len = 1000, ct_len, n_mac;
    long n;
    ck_esp_engine *eng = NULL;
    EVP_CIPHER *aes = NULL;
    EVP_CIPHER_CTX *c = NULL;
    EVP_MAC *hmac = NULL;
    EVP_MAC_CTX *m = NULL, *dup;
    OSSL_PARAM params[2];
    int ret, outl;

    if (argc > 1)
        seconds = strtod(argv[1], NULL);
    if (argc > 2)
        len = (size_t)strtoul(argv[2], NULL, 10);
    if (seconds <= 0 || seconds > 60 || len == 0 || len > MAX_PAYLOAD) {
        fprintf(stderr, "usage: esp_bench [seconds 0..60] [payload bytes 1..%d]\n", MAX_PAYLOAD);
        return 2;
    }
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)i;
    ct_len = (len + 2 + 15) / 16 * 16; /* what ESP encrypts: payload + trailer, padded */
    stride = (len + 64 + 63) / 64 * 64;
    if ((pkts = malloc(BATCH * stride)) == NULL)
        return fail("packet buffers", CK_ERR_NOMEM);
    if ((ret = ck_esp_engine_new(&eng)) != 0)
        return fail("engine", ret);

    printf("ESP per core, %zu-byte payloads, single thread, CPU time (%s)\n", len,
           OpenSSL_version(OPENSSL_VERSION));
    printf("%-40s %10s %10s %10s\n", "operation", "Gbit/s", "us/packet", "MB/s");
    for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++) {
        double gp = 0, gu = 0;

        if ((ret = bench_suite(eng, &suites[i], buf, len, seconds, &gp, &gu)) != 0)
            return fail(suites[i].name, ret);
        if (i == 0) {
            g_esp_p = gp;
            g_esp_u = gu;
        }
    }

    /* A server serves many endpoints: every packet under another SA re-keys the engine (AES
     * key schedule, HMAC ipad/opad). 64 SA pairs, round robin. */
    {
        enum { NSA = 64 };
        static const uint8_t ek[16] = {3}, ak[20] = {4};
        ck_esp_sa *o[NSA] = {0}, *in[NSA] = {0};
        uint8_t out[MAX_PAYLOAD + 64], nh;
        double tp = 0, tu = 0;
        size_t out_len;

        for (int i = 0; i < NSA; i++) {
            struct ck_esp_sa_params p = {.spi = 0x2000 + (uint32_t)i, .enc = CK_KMM_ENC_AES128,
                                         .auth = CK_KMM_AUTH_HMAC_SHA1_96, .enc_key = ek,
                                         .enc_key_len = 16, .auth_key = ak, .auth_key_len = 20,
                                         .replay_window = 1024};

            if ((ret = ck_esp_sa_new(&p, &o[i])) != 0 || (ret = ck_esp_sa_new(&p, &in[i])) != 0)
                return fail("SA", ret);
        }
        for (n = 0; tp + tu < seconds; n += BATCH) {
            t0 = cpu_seconds();
            for (int i = 0; i < BATCH; i++)
                if ((ret = ck_esp_protect(eng, o[i % NSA], 17, buf, len, 0, pkts + i * stride,
                                          stride, &pkt_lens[i])) != 0)
                    return fail("protect", ret);
            tp += cpu_seconds() - t0;
            t0 = cpu_seconds();
            for (int i = 0; i < BATCH; i++)
                if ((ret = ck_esp_unprotect(eng, in[i % NSA], pkts + i * stride, pkt_lens[i], 0,
                                            out, sizeof(out), &out_len, &nh)) != 0)
                    return fail("unprotect", ret);
            tu += cpu_seconds() - t0;
        }
        row("AES+SHA1 protect, other SA each packet", (double)n, tp, len);
        row("  unprotect", (double)n, tu, len);
        for (int i = 0; i < NSA; i++) {
            ck_esp_sa_free(o[i]);
            ck_esp_sa_free(in[i]);
        }
    }

    /* References: the raw primitives on the same data, keyed once, as openssl speed -evp. */
    aes = EVP_CIPHER_fetch(NULL, "AES-128-CBC", NULL);
    hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    c = EVP_CIPHER_CTX_new();
    m = hmac != NULL ? EVP_MAC_CTX_new(hmac) : NULL;
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA1", 0);
    params[1] = OSSL_PARAM_construct_end();
    if (aes == NULL || c == NULL || m == NULL || !EVP_EncryptInit_ex2(c, aes, key, iv, NULL) ||
        !EVP_CIPHER_CTX_set_padding(c, 0) || !EVP_MAC_CTX_set_params(m, params) ||
        !EVP_MAC_init(m, key, 20, NULL))
        return fail("OpenSSL reference setup", CK_ERR_CRYPTO);
    printf("reference (raw OpenSSL, same run):\n");
    for (n = 0, t = 0; t < seconds; n += 1000) {
        t0 = cpu_seconds();
        for (int i = 0; i < 1000; i++)
            EVP_EncryptUpdate(c, ct, &outl, buf, (int)ct_len);
        t += cpu_seconds() - t0;
    }
    g_aes = (double)ct_len * 8 * (double)n / t / 1e9;
    row("AES-128-CBC encrypt (openssl speed)", (double)n, t, ct_len);
    for (n = 0, t = 0; t < seconds; n += 1000) {
        t0 = cpu_seconds();
        for (int i = 0; i < 1000; i++) {
            EVP_MAC_init(m, NULL, 0, NULL);
            EVP_MAC_update(m, buf, 8 + 16 + ct_len);
            EVP_MAC_final(m, mac, &n_mac, sizeof(mac));
        }
        t += cpu_seconds() - t0;
    }
    g_sha = (double)(8 + 16 + ct_len) * 8 * (double)n / t / 1e9;
    row("HMAC-SHA-1, EVP_MAC_init(NULL key)", (double)n, t, 8 + 16 + ct_len);
    for (n = 0, t = 0; t < seconds; n += 1000) {
        t0 = cpu_seconds();
        for (int i = 0; i < 1000; i++) {
            dup = EVP_MAC_CTX_dup(m);
            EVP_MAC_update(dup, buf, 8 + 16 + ct_len);
            EVP_MAC_final(dup, mac, &n_mac, sizeof(mac));
            EVP_MAC_CTX_free(dup);
        }
        t += cpu_seconds() - t0;
    }
    row("HMAC-SHA-1, EVP_MAC_CTX_dup template", (double)n, t, 8 + 16 + ct_len);
    /* Both, per 1000-byte payload: the crypto floor of one ESP packet. */
    for (n = 0, t = 0; t < seconds; n += 1000) {
        t0 = cpu_seconds();
        for (int i = 0; i < 1000; i++) {
            EVP_EncryptInit_ex2(c, NULL, NULL, iv, NULL);
            EVP_EncryptUpdate(c, ct, &outl, buf, (int)ct_len);
            EVP_MAC_init(m, NULL, 0, NULL);
            EVP_MAC_update(m, ct, 8 + 16 + ct_len);
            EVP_MAC_final(m, mac, &n_mac, sizeof(mac));
        }
        t += cpu_seconds() - t0;
    }
    g_both = (double)len * 8 * (double)n / t / 1e9;
    row("AES-128-CBC + HMAC-SHA-1 (crypto only)", (double)n, t, len);
    printf("ratio ESP AES-128-CBC+HMAC-SHA-1-96 / crypto only: protect %.2f, unprotect %.2f "
           "(AES alone %.2f, HMAC-SHA-1 alone %.2f Gbit/s)\n",
           g_esp_p / g_both, g_esp_u / g_both, g_aes, g_sha);

    EVP_MAC_CTX_free(m);
    EVP_MAC_free(hmac);
    EVP_CIPHER_CTX_free(c);
    EVP_CIPHER_free(aes);
    ck_esp_engine_free(eng);
    free(pkts);
    return 0;
}
