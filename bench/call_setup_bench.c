/* Call setups per second through one source controller (cablekey-cms's call core, in process):
 * for each call, the caller's off-hook and dialled digits in, then CRCX to the caller, K_call and
 * SPI from the CSPRNG, XSET to the destination controller (a second core in the same process),
 * CRCX to the callee there, the destination ACK checked, MDCX with the keys to the caller, the
 * source ACK checked, and the escrow written (a real intercept database with an order on the
 * callee, so every call is escrowed: CMS AuthEnvelopedData to the order's certificate, RSA-2048
 * (RSA-OAEP key transport) in one run and P-256 (ECDH key agreement) in another, one SQLite
 * row and one audit row);
 * then answer and hang-up, which are not timed. The endpoints are the fakes of
 * tests/unit/call_world.h (real ACK computation).
 *
 * Reported: setups per CPU-second of the source controller's core (its thread's CPU time: the
 * "per controller core" rate, undisturbed by waits), setups/s and p50/p99 of the wall time
 * spent inside that core per setup (what key distribution adds to call setup on that
 * controller: no network, no ESP; escrow's disk waits included); and, for context, the whole
 * in-process setup (both controllers and both fake endpoints). Once with escrow, once without.
 *
 * Usage: call_setup_bench [calls (default 5000)] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "call_world.h"

static struct world w;

static int
cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return x < y ? -1 : x > y;
}

static int
run(long n, bool escrow, bool rsa, const char *dir)
{
    char db[256], key[256];
    int64_t *ca = calloc((size_t)n, sizeof(*ca)), *all = calloc((size_t)n, sizeof(*all));
    int64_t ca_total = 0, all_total = 0, order = 0, cpu0;
    ck_li *li = NULL;
    char *pem = NULL;
    int rc = 1;

    if (ca == NULL || all == NULL || w_init(&w, false, escrow, 500, 4) != 0)
        goto out;
    w.quiet_log = true;
    if (escrow) {
        snprintf(db, sizeof(db), "%s/li.db", dir);
        snprintf(key, sizeof(key), "%s/lea.key", dir);
        unlink(db);
        /* A fresh database for each run: a WAL file left by the previous run must not be
         * replayed into it. */
        for (size_t k = 0; k < 2; k++) {
            char aux[300];

            snprintf(aux, sizeof(aux), "%s%s", db, k == 0 ? "-wal" : "-shm");
            unlink(aux);
        }
        if ((pem = w_lea_make_key(w.now / 1000, key, rsa)) == NULL ||
            ck_li_open(db, CK_LI_CREATE, &li) != 0 ||
            ck_li_order_add(li, CK_LI_TARGET_NUMBER, "5552001", w.now / 1000 - 60,
                            w.now / 1000 + 86400, "bench", pem, "bench", w.now / 1000,
                            &order) != 0) {
            fprintf(stderr, "call_setup_bench: intercept db: %s\n", ck_error_context());
            goto out;
        }
        w.esc.li = li;
    }
    cpu0 = w.ca_cpu_ns;
    for (long i = 0; i < n; i++) {
        int64_t t0 = w_ns(), c0 = w.ca_ns;

        w_dial(&w, 0, "5552001");
        w_pump(&w);
        all[i] = w_ns() - t0;
        ca[i] = w.ca_ns - c0;
        if (!w.ph[0].have_key || !w.ph[3].have_key) {
            fprintf(stderr, "call_setup_bench: call %ld did not set up\n", i);
            goto out;
        }
        ca_total += ca[i];
        all_total += all[i];
        /* Answer and hang-up are not setup: their core time is taken out of the CPU count. */
        {
            int64_t c1 = w.ca_cpu_ns;
            w_ntfy(&w, 3, "hd");
            w_pump(&w);
            w_ntfy(&w, 0, "hu");
            w_pump(&w);
            cpu0 += w.ca_cpu_ns - c1;
        }
        w_pump(&w);
        w.now += 10;
        if (i % 256 == 0)
            w_run_until(&w, w.now);
    }
    if (escrow && (size_t)w.esc.calls != (size_t)n) {
        fprintf(stderr, "call_setup_bench: %d escrows for %ld calls\n", w.esc.calls, n);
        goto out;
    }
    qsort(ca, (size_t)n, sizeof(*ca), cmp64);
    qsort(all, (size_t)n, sizeof(*all), cmp64);
    printf("%-34s %10.0f %10.0f %10.1f %10.1f %12.0f %10.1f %10.1f\n",
           !escrow ? "without escrow" : rsa ? "escrow to an RSA-2048 certificate"
                                            : "escrow to a P-256 certificate",
           (double)n / ((double)(w.ca_cpu_ns - cpu0) / 1e9), (double)n / ((double)ca_total / 1e9),
           (double)ca[n / 2] / 1e3,
           (double)ca[n * 99 / 100] / 1e3, (double)n / ((double)all_total / 1e9),
           (double)all[n / 2] / 1e3, (double)all[n * 99 / 100] / 1e3);
    rc = 0;
out:
    w_fini(&w);
    ck_li_close(li);
    free(pem);
    free(ca);
    free(all);
    return rc;
}

int
main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 5000;
    char dir[] = "/tmp/ck-call-bench.XXXXXX";
    char path[256];
    int rc;

    if (n < 100 || n > 10000000) {
        fprintf(stderr, "usage: call_setup_bench [calls, 100..10000000]\n");
        return 2;
    }
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    printf("call setup through one source controller core, %ld calls (goal: >= 5000 setups/s "
           "per core with escrow, < 2 ms p99 added)\n", n);
    printf("%-34s %10s %10s %10s %10s %12s %10s %10s\n", "", "CA/CPU-s", "CA set/s", "CA p50 us",
           "CA p99 us", "world set/s", "p50 us", "p99 us");
    rc = run(n, true, true, dir) | run(n, true, false, dir) | run(n, false, false, dir);
    snprintf(path, sizeof(path), "%s/li.db", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/li.db-wal", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/li.db-shm", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/lea.key", dir);
    unlink(path);
    rmdir(dir);
    return rc;
}
