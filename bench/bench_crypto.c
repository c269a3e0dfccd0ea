/* Micro-benchmark of the Kerberos crypto: µs per encrypt, decrypt and checksum of a 300-byte
 * message for each enctype (hot derived-key cache), and per encrypt+decrypt with a fresh key
 * every time (cache misses, i.e. the KDF cost). Usage: bench_crypto [iterations] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cablekey/crypto.h"
#include "cablekey/error.h"
#include "cablekey/util.h"

static double
now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int
fail(const char *what, int ret)
{
    fprintf(stderr, "bench_crypto: %s: %s: %s\n", what, ck_strerror(ret), ck_error_context());
    return 1;
}

int
main(int argc, char **argv)
{
    static const int32_t enctypes[] = {17, 18, 19, 20};
    uint8_t plain[300], cipher[400], back[400], sum[CK_CHECKSUM_MAX];
    int64_t iters = 20000;
    int ret;

    if (argc > 1 && ck_parse_int64(argv[1], 1, 10000000, &iters) != 0) {
        fprintf(stderr, "usage: bench_crypto [iterations]\n");
        return 2;
    }
    memset(plain, 0xab, sizeof(plain));
    printf("%-28s %10s %10s %10s %14s\n", "enctype (300-byte message)", "enc µs", "dec µs",
           "cksum µs", "enc+dec new key");
    for (size_t e = 0; e < sizeof(enctypes) / sizeof(enctypes[0]); e++) {
        size_t clen = 0, plen = 0, slen = 0;
        double t0, t_enc, t_dec, t_sum, t_cold;
        ck_key k;

        if ((ret = ck_random_key(enctypes[e], &k)) != 0)
            return fail("random key", ret);
        /* Warm the per-thread contexts and the derived-key cache. */
        if ((ret = ck_encrypt(&k, 3, plain, sizeof(plain), cipher, sizeof(cipher), &clen)) != 0)
            return fail("encrypt", ret);
        t0 = now_us();
        for (int64_t i = 0; i < iters; i++)
            if ((ret = ck_encrypt(&k, 3, plain, sizeof(plain), cipher, sizeof(cipher), &clen)))
                return fail("encrypt", ret);
        t_enc = (now_us() - t0) / (double)iters;
        t0 = now_us();
        for (int64_t i = 0; i < iters; i++)
            if ((ret = ck_decrypt(&k, 3, cipher, clen, back, sizeof(back), &plen)) != 0)
                return fail("decrypt", ret);
        t_dec = (now_us() - t0) / (double)iters;
        t0 = now_us();
        for (int64_t i = 0; i < iters; i++)
            if ((ret = ck_make_checksum(&k, 0, 6, plain, sizeof(plain), sum, sizeof(sum),
                                        &slen)) != 0)
                return fail("checksum", ret);
        t_sum = (now_us() - t0) / (double)iters;
        /* A new key each round: every Ke/Ki is a cache miss (plus the DRBG for the key). */
        t0 = now_us();
        for (int64_t i = 0; i < iters / 4 + 1; i++) {
            if ((ret = ck_random_key(enctypes[e], &k)) != 0 ||
                (ret = ck_encrypt(&k, 3, plain, sizeof(plain), cipher, sizeof(cipher), &clen)) ||
                (ret = ck_decrypt(&k, 3, cipher, clen, back, sizeof(back), &plen)) != 0)
                return fail("cold encrypt/decrypt", ret);
        }
        t_cold = (now_us() - t0) / (double)(iters / 4 + 1);
        printf("%-28s %10.2f %10.2f %10.2f %14.2f\n", ck_enctype_name(enctypes[e]), t_enc, t_dec,
               t_sum, t_cold);
        ck_key_clear(&k);
    }
    ck_crypto_thread_cleanup();
    return 0;
}
