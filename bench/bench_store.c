/* Micro-benchmark of the store's KDC hot path (formerly a timing assertion in test_store, which
 * flaked on loaded machines): µs per cached principal lookup, per cached device lookup (which
 * reads the change counter every time), per uncached device read, and per change-counter read,
 * on a temporary realm. Usage: bench_store [iterations] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cablekey/crypto.h"
#include "cablekey/error.h"
#include "cablekey/store.h"
#include "cablekey/util.h"

#define REALM "BENCH.TEST"
#define N_NAMES 50

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
    fprintf(stderr, "bench_store: %s: %s: %s\n", what, ck_strerror(ret), ck_error_context());
    return 1;
}

static int
setup(ck_store *s)
{
    static const int32_t et[] = {CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96};
    char name[64];
    int ret;

    for (int i = 0; i < N_NAMES; i++) {
        ck_db_principal *p = NULL;
        ck_db_device d;

        snprintf(name, sizeof(name), "user%d@%s", i, REALM);
        if ((ret = ck_db_principal_new(name, &p)) != 0)
            return ret;
        p->kvno = 1;
        ret = ck_db_keys_make(name, NULL, 0, et, 1, 1, &p->keys, &p->n_keys);
        if (ret == 0)
            ret = ck_store_create_principal(s, p);
        ck_db_principal_free(p);
        if (ret != 0)
            return ret;
        memset(&d, 0, sizeof(d));
        snprintf(d.mac, sizeof(d.mac), "00:10:18:00:00:%02x", i);
        d.principal = name;
        d.state = CK_DEVICE_ACTIVE;
        if ((ret = ck_store_add_device(s, &d)) != 0)
            return ret;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    char dir[] = "/tmp/ck-bench-store-XXXXXX", db[128], cmd[160], name[64], mac[24];
    ck_store *s = NULL;
    int64_t iters = 200000;
    double t0, t_princ, t_dev, t_dev_get, t_gen;
    uint64_t gen = 0;
    int ret, rc = 1;

    if (argc > 1 && ck_parse_int64(argv[1], 1, 100000000, &iters) != 0) {
        fprintf(stderr, "usage: bench_store [iterations]\n");
        return 2;
    }
    if (mkdtemp(dir) == NULL) {
        perror("bench_store: mkdtemp");
        return 1;
    }
    snprintf(db, sizeof(db), "%s/bench.db", dir);
    if ((ret = ck_store_init_realm(db, NULL, REALM, (const int32_t[]){18}, 1, 0, 0)) != 0 ||
        (ret = ck_store_open(db, NULL, 0, &s)) != 0 || (ret = setup(s)) != 0) {
        fail("setup", ret);
        goto out;
    }

    ck_store_cache_begin(s);
    t0 = now_us();
    for (int64_t i = 0; i < iters; i++) {
        const ck_db_principal *r = NULL;
        snprintf(name, sizeof(name), "user%d@%s", (int)(i % N_NAMES), REALM);
        if (i % 1000 == 0)
            ck_store_cache_begin(s);
        if ((ret = ck_store_get_principal_cached(s, name, &r)) != 0) {
            fail("principal lookup", ret);
            goto out;
        }
    }
    t_princ = (now_us() - t0) / (double)iters;

    t0 = now_us();
    for (int64_t i = 0; i < iters; i++) {
        const ck_db_device *d = NULL;
        snprintf(mac, sizeof(mac), "00:10:18:00:00:%02x", (int)(i % N_NAMES));
        if (i % 1000 == 0)
            ck_store_cache_begin(s);
        if ((ret = ck_store_get_device_cached(s, mac, &d)) != 0) {
            fail("device lookup", ret);
            goto out;
        }
    }
    t_dev = (now_us() - t0) / (double)iters;

    t0 = now_us();
    for (int64_t i = 0; i < iters / 10 + 1; i++) {
        ck_db_device *d = NULL;
        snprintf(mac, sizeof(mac), "00:10:18:00:00:%02x", (int)(i % N_NAMES));
        if ((ret = ck_store_get_device(s, mac, &d)) != 0) {
            fail("device read", ret);
            goto out;
        }
        ck_db_device_free(d);
    }
    t_dev_get = (now_us() - t0) / (double)(iters / 10 + 1);

    t0 = now_us();
    for (int64_t i = 0; i < iters; i++) {
        if ((ret = ck_store_generation(s, &gen)) != 0) {
            fail("generation", ret);
            goto out;
        }
    }
    t_gen = (now_us() - t0) / (double)iters;

    printf("%-48s %10s\n", "operation", "µs/op");
    printf("%-48s %10.3f\n", "cached principal lookup (hit)", t_princ);
    printf("%-48s %10.3f\n", "cached device lookup (hit, counter read each)", t_dev);
    printf("%-48s %10.3f\n", "uncached device read (SELECT by MAC + copy)", t_dev_get);
    printf("%-48s %10.3f\n", "change counter read", t_gen);
    rc = 0;
out:
    ck_store_close(s);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_store: could not remove %s\n", dir);
    return rc;
}
