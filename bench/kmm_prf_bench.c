/* Micro-benchmark of lib/kmm's key derivation and message HMACs (what cablekey-cms pays per AP
 * exchange: four PRF calls and two HMACs), next to the OpenSSL building blocks they can be made
 * of, so that a change to lib/kmm/kdf.c can be judged by numbers.
 *
 * Usage: kmm_prf_bench [iterations [operation]]   (default 20000, every operation)
 *
 * Instructions per call (no hardware counters needed):
 *   valgrind --tool=callgrind --toggle-collect=ck_kmm_prf kmm_prf_bench 2000 hmac_key
 * and divide the "Collected" count by the calls (the iterations plus one warm-up call). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "cablekey/crypto.h"
#include "cablekey/error.h"
#include "cablekey/kmm.h"
#include "cablekey/util.h"

static ck_key subkey;
static uint8_t msg[500], hkey[CK_KMM_HMAC_KEY_LEN], out[1024];
static EVP_KDF *tls1_prf;
static EVP_MAC_CTX *keyed; /* HMAC-SHA-1, keyed once: the restart comparison */

static int
op_hmac_key(void)
{
    return ck_kmm_hmac_key(CK_KMM_HMAC_AP_REP, &subkey, hkey);
}

static int
op_ipsec(void)
{
    struct ck_kmm_keys k;
    struct ck_kmm_suite s = {CK_KMM_AUTH_HMAC_SHA1_96, CK_KMM_ENC_AES128};
    int ret = ck_kmm_derive_ipsec(&subkey, s, 0x1001, 0x2002, &k);

    ck_kmm_keys_clear(&k);
    return ret;
}

static int
op_prf_1024(void)
{
    return ck_kmm_prf(subkey.contents, subkey.length, "cablekey kmm bench", msg, 8, out, 1024);
}

static int
op_seal(void)
{
    return ck_kmm_seal(msg, sizeof(msg), hkey);
}

static int
op_sp_recovered_seal(void)
{
    return ck_kmm_sp_recovered_seal(msg, out, hkey);
}

/* What ck_kmm_prf did before it computed P_SHA-1 itself: a TLS1-PRF context per call. */
static int
op_evp_kdf_tls1_prf(void)
{
    OSSL_PARAM p[4];
    EVP_KDF_CTX *ctx = EVP_KDF_CTX_new(tls1_prf);
    int ok;

    p[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA1", 0);
    p[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SECRET, subkey.contents,
                                             subkey.length);
    p[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SEED, (char *)"cablekey kmm x", 14);
    p[3] = OSSL_PARAM_construct_end();
    ok = ctx != NULL && EVP_KDF_derive(ctx, out, 20, p) == 1;
    EVP_KDF_CTX_free(ctx);
    return ok ? 0 : CK_ERR_CRYPTO;
}

/* Two ways to compute one more HMAC under a key already set: restart the keyed context... */
static int
op_hmac_restart_init_null(void)
{
    size_t n = 0;

    return EVP_MAC_init(keyed, NULL, 0, NULL) == 1 && EVP_MAC_update(keyed, msg, 20) == 1 &&
                   EVP_MAC_final(keyed, out, &n, 20) == 1
               ? 0
               : CK_ERR_CRYPTO;
}

/* ...or duplicate it and free the copy. */
static int
op_hmac_restart_dup(void)
{
    EVP_MAC_CTX *c = EVP_MAC_CTX_dup(keyed);
    size_t n = 0;
    int ok = c != NULL && EVP_MAC_update(c, msg, 20) == 1 && EVP_MAC_final(c, out, &n, 20) == 1;

    EVP_MAC_CTX_free(c);
    return ok ? 0 : CK_ERR_CRYPTO;
}

/* Setting a key (what each PRF call and each KMM HMAC pays once). */
static int
op_hmac_rekey(void)
{
    return EVP_MAC_init(keyed, hkey, sizeof(hkey), NULL) == 1 ? 0 : CK_ERR_CRYPTO;
}

static const struct {
    const char *name, *what;
    int (*fn)(void);
} ops[] = {
    {"hmac_key", "ck_kmm_hmac_key (PRF, 20 bytes)", op_hmac_key},
    {"ipsec", "ck_kmm_derive_ipsec (PRF, 80 bytes)", op_ipsec},
    {"prf1024", "ck_kmm_prf, 1024 bytes", op_prf_1024},
    {"seal", "ck_kmm_seal, 500-byte message", op_seal},
    {"spr_seal", "ck_kmm_sp_recovered_seal", op_sp_recovered_seal},
    {"evp_kdf", "EVP_KDF TLS1-PRF SHA1, 20 bytes, ctx/call", op_evp_kdf_tls1_prf},
    {"init_null", "HMAC restart: EVP_MAC_init(NULL key)", op_hmac_restart_init_null},
    {"dup", "HMAC restart: EVP_MAC_CTX_dup + free", op_hmac_restart_dup},
    {"rekey", "HMAC: EVP_MAC_init with a 20-byte key", op_hmac_rekey},
};

static double
now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

int
main(int argc, char **argv)
{
    int64_t iters = 20000;
    const char *only = argc > 2 ? argv[2] : NULL;
    OSSL_PARAM p[2];
    EVP_MAC *mac = NULL;
    bool found = false;
    int ret, status = 1;

    if (argc > 1 && ck_parse_int64(argv[1], 1, 100000000, &iters) != 0) {
        fprintf(stderr, "usage: kmm_prf_bench [iterations [operation]]\n");
        return 2;
    }
    if ((ret = ck_random_key(CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, &subkey)) != 0) {
        fprintf(stderr, "kmm_prf_bench: key: %s\n", ck_strerror(ret));
        return 1;
    }
    memset(msg, 0x5a, sizeof(msg));
    memset(hkey, 0x11, sizeof(hkey));
    p[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA1", 0);
    p[1] = OSSL_PARAM_construct_end();
    tls1_prf = EVP_KDF_fetch(NULL, "TLS1-PRF", NULL);
    mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    keyed = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
    if (tls1_prf == NULL || keyed == NULL || EVP_MAC_init(keyed, hkey, sizeof(hkey), p) != 1) {
        fprintf(stderr, "kmm_prf_bench: OpenSSL has no TLS1-PRF or HMAC-SHA-1\n");
        goto out;
    }
    printf("%-12s %-44s %10s\n", "operation", "", "µs/call");
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        double t0;

        if (only != NULL && strcmp(only, ops[i].name) != 0)
            continue;
        found = true;
        if ((ret = ops[i].fn()) != 0) { /* warm-up: per-thread state, fetches */
            fprintf(stderr, "kmm_prf_bench: %s: %s: %s\n", ops[i].name, ck_strerror(ret),
                    ck_error_context());
            goto out;
        }
        t0 = now_us();
        for (int64_t n = 0; n < iters; n++)
            if ((ret = ops[i].fn()) != 0) {
                fprintf(stderr, "kmm_prf_bench: %s failed\n", ops[i].name);
                goto out;
            }
        printf("%-12s %-44s %10.3f\n", ops[i].name, ops[i].what, (now_us() - t0) / (double)iters);
    }
    if (!found) {
        fprintf(stderr, "kmm_prf_bench: no operation %s\n", only);
        goto out;
    }
    status = 0;
out:
    EVP_MAC_CTX_free(keyed);
    EVP_MAC_free(mac);
    EVP_KDF_free(tls1_prf);
    ck_key_clear(&subkey);
    ck_crypto_thread_cleanup();
    return status;
}
