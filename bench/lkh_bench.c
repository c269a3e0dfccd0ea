/* LKH costs on the key server (issue 11's performance goals): revoke 1 of n, a batch of 1,000
 * leaves, an LKH+ join, a member's CPU per rekey, and the tree's memory per member. Server CPU
 * is lkh_batch plus lkh_rekey_pack (R-BFA packing into <= 1,400-byte datagrams and the one
 * Ed25519 signature over the batch's hash tree); the member's is lkh_rekey_member_apply (parse,
 * verify, unwrap) of the one datagram it needs. No store or network (bench/ksv_table2.c has
 * sockets).
 *
 * Times are the thread's CPU time (CLOCK_THREAD_CPUTIME_ID), so a busy shared machine lowers the
 * numbers less than wall time would. The tree stays at n members: every revoke is followed by a
 * join (timed separately), every 1,000-leave batch by a 1,000-join batch (untimed).
 *
 * Usage: lkh_bench [members (default 1000000)] [degree (default 4)] [revokes (default 2000)] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cablekey/error.h"
#include "cablekey/lkh.h"
#include "cablekey/util.h"
#include "cablekey/lkh_rekey.h"

#define BATCH_LEAVES 1000
#define BATCH_ROUNDS 11

static double
cpu_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long
rss_kib(void)
{
    char line[256];
    long kib = -1;
    FILE *f = fopen("/proc/self/status", "r");

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, "VmRSS:", 6) == 0)
            kib = strtol(line + 6, NULL, 10);
    fclose(f);
    return kib;
}

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static uint32_t
rng(uint32_t bound)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 33) % bound;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double
pct(double *v, size_t n, double p)
{
    qsort(v, n, sizeof(double), cmp_double);
    return v[(size_t)(p * (double)(n - 1))];
}

static int
fail(const char *what, int rc)
{
    fprintf(stderr, "lkh_bench: %s: %s: %s\n", what, ck_strerror(rc), ck_error_context());
    return 1;
}

/* A member ID currently in the group: IDs are dense below n_slots, probe until one exports. */
static uint32_t
random_member(const struct lkh_tree *t, uint32_t n_slots, struct lkh_member *m)
{
    for (;;) {
        uint32_t id = rng(n_slots);
        if (lkh_member_export(t, id, m) == 0)
            return id;
    }
}

int
main(int argc, char **argv)
{
    int64_t arg_n = 1000000, arg_degree = 4, arg_revokes = 2000;
    uint32_t n, degree;
    size_t revokes;
    struct lkh_tree *t = NULL;
    struct lkh_batch_result r;
    struct lkh_member m, victim;
    struct lkh_member sib;
    double *sib_cpu = NULL;
    size_t n_sib = 0;
    int have_sib;
    double *rev = NULL, *join = NULL, *mem_cpu = NULL, t0, build, bmin = 1e9, bsum = 0;
    double *pack = NULL, *vfy = NULL, bpack = 0, bcpu[BATCH_ROUNDS];
    size_t wraps_min = SIZE_MAX, wraps_max = 0, bwraps = 0, dg_min = SIZE_MAX, dg_max = 0;
    size_t bdgrams = 0, bbytes = 0, bdg_max = 0, multi = 0;
    struct lkh_signer *signer = NULL;
    struct lkh_rekey_out out;
    struct lkh_rekey_params rp;
    uint8_t pub[LKH_ED25519_PUB_LEN], gk[LKH_KEY_LEN];
    uint64_t epoch = 0;
    uint32_t *leave = NULL, slots;
    long rss0, rss1;
    int rc;

    if ((argc > 1 && ck_parse_int64(argv[1], 1, LKH_MAX_MEMBERS, &arg_n) != 0) ||
        (argc > 2 && ck_parse_int64(argv[2], 2, LKH_MAX_DEGREE, &arg_degree) != 0) ||
        (argc > 3 && ck_parse_int64(argv[3], 1, 100000000, &arg_revokes) != 0)) {
        fprintf(stderr, "usage: lkh_bench [members] [degree 2..%u] [revokes]\n", LKH_MAX_DEGREE);
        return 2;
    }
    n = (uint32_t)arg_n;
    degree = (uint32_t)arg_degree;
    revokes = (size_t)arg_revokes;
    if (n < 2 || revokes == 0)
        return fprintf(stderr, "usage: lkh_bench [members] [degree] [revokes]\n"), 2;
    rev = calloc(revokes, sizeof(double));
    join = calloc(revokes, sizeof(double));
    mem_cpu = calloc(revokes, sizeof(double));
    sib_cpu = calloc(revokes, sizeof(double));
    leave = calloc(BATCH_LEAVES, sizeof(uint32_t));
    pack = calloc(revokes, sizeof(double));
    vfy = calloc(revokes, sizeof(double));
    if (rev == NULL || join == NULL || mem_cpu == NULL || sib_cpu == NULL || leave == NULL ||
        pack == NULL || vfy == NULL)
        return fail("calloc", CK_ERR_NOMEM);
    if ((rc = lkh_signer_generate(&signer)) != 0 || (rc = lkh_signer_public(signer, pub)) != 0)
        return fail("signer", rc);
    memset(&rp, 0, sizeof(rp));
    rp.group_id = 1;

    rss0 = rss_kib();
    t0 = cpu_seconds();
    if ((rc = lkh_tree_new(degree, n, &t)) != 0 || (rc = lkh_tree_populate(t, n)) != 0)
        return fail("build", rc);
    build = cpu_seconds() - t0;
    rss1 = rss_kib();
    slots = n; /* member IDs are below max_members = n */

    /* revoke one (a batch of one leave), then an LKH+ join to keep n members */
    for (size_t i = 0; i < revokes; i++) {
        uint32_t id = random_member(t, slots, &victim), nid;
        double a;
        do
            random_member(t, slots, &m);
        while (m.member_id == id && n > 1);
        have_sib = lkh_member_export(t, id ^ 1, &sib) == 0 && sib.path[1].node == victim.path[1].node;
        a = cpu_seconds();
        if ((rc = lkh_batch(t, &id, 1, 0, &r)) != 0)
            return fail("revoke", rc);
        {
            double b = cpu_seconds();
            rp.epoch = ++epoch;
            rp.degree = degree;
            rp.height = lkh_tree_height(t);
            if ((rc = lkh_group_key(t, gk, &rp.root_version)) != 0 ||
                (rc = lkh_rekey_pack(&rp, r.wraps, r.n_wraps, signer, &out)) != 0)
                return fail("pack", rc);
            pack[i] = cpu_seconds() - b;
        }
        rev[i] = cpu_seconds() - a;
        if (r.n_wraps < wraps_min)
            wraps_min = r.n_wraps;
        if (r.n_wraps > wraps_max)
            wraps_max = r.n_wraps;
        for (size_t k = 0; k < out.n; k++) {
            dg_min = out.lens[k] < dg_min ? out.lens[k] : dg_min;
            dg_max = out.lens[k] > dg_max ? out.lens[k] : dg_max;
        }
        multi += out.n > 1;
        a = cpu_seconds();
        {
            /* the member's whole work: every datagram of the batch reaches it; it parses each
             * until the one serving its leaf, then verifies and unwraps */
            uint64_t last = epoch - 1;
            uint32_t rv;
            rc = CK_ERR_NOTFOUND;
            for (size_t k = 0; k < out.n && rc == CK_ERR_NOTFOUND; k++)
                rc = lkh_rekey_member_apply(&m, 1, pub, &last, out.dgrams[k], out.lens[k], &rv);
            if (rc != 0)
                return fail("member apply", rc);
        }
        mem_cpu[i] = cpu_seconds() - a;
        a = cpu_seconds();
        if ((rc = lkh_rekey_verify(out.dgrams[0], out.lens[0], pub)) != 0)
            return fail("verify", rc);
        vfy[i] = cpu_seconds() - a;
        lkh_rekey_out_clear(&out);
        if (have_sib) {
            /* the victim's sibling: every key of its path changes, the member's worst case */
            a = cpu_seconds();
            if ((rc = lkh_member_apply(&sib, r.wraps, r.n_wraps)) != 0)
                return fail("sibling apply", rc);
            sib_cpu[n_sib++] = cpu_seconds() - a;
        }
        lkh_member_clear(&sib);
        lkh_batch_result_clear(&r);
        a = cpu_seconds();
        if ((rc = lkh_join(t, &nid)) != 0)
            return fail("join", rc);
        join[i] = cpu_seconds() - a;
    }
    lkh_member_clear(&m);
    lkh_member_clear(&victim);

    /* batches of 1,000 random leaves, refilled by 1,000 joins (untimed) */
    for (int b = 0; b < BATCH_ROUNDS && n > 2 * BATCH_LEAVES; b++) {
        size_t k = 0;
        double a, d;
        while (k < BATCH_LEAVES) {
            uint32_t id = random_member(t, slots, &m), j;
            for (j = 0; j < k && leave[j] != id; j++)
                ;
            if (j == k)
                leave[k++] = id;
        }
        a = cpu_seconds();
        if ((rc = lkh_batch(t, leave, BATCH_LEAVES, 0, &r)) != 0)
            return fail("batch", rc);
        {
            double p0 = cpu_seconds();
            rp.epoch = ++epoch;
            if ((rc = lkh_group_key(t, gk, &rp.root_version)) != 0 ||
                (rc = lkh_rekey_pack(&rp, r.wraps, r.n_wraps, signer, &out)) != 0)
                return fail("pack", rc);
            bpack += cpu_seconds() - p0;
        }
        d = cpu_seconds() - a;
        bdgrams += out.n;
        for (size_t x = 0; x < out.n; x++) {
            bbytes += out.lens[x];
            bdg_max = out.lens[x] > bdg_max ? out.lens[x] : bdg_max;
        }
        lkh_rekey_out_clear(&out);
        bwraps += r.n_wraps;
        bsum += d;
        if (d < bmin)
            bmin = d;
        bcpu[b] = d;
        lkh_batch_result_clear(&r);
        if ((rc = lkh_batch(t, NULL, 0, BATCH_LEAVES, &r)) != 0)
            return fail("refill", rc);
        lkh_batch_result_clear(&r);
        epoch++; /* the refill's own epoch (not packed here) */
    }
    lkh_member_clear(&m);

    printf("LKH core, n = %u, degree %u, height %u, %zu revokes (CPU time of this thread)\n", n,
           degree, lkh_tree_height(t), revokes);
    printf("| measure | value |\n|---|---|\n");
    printf("| tree build (populate) | %.1f ms |\n", build * 1e3);
    printf("| tree arrays | %zu bytes = %.1f bytes/member |\n", lkh_tree_memory(t),
           (double)lkh_tree_memory(t) / n);
    printf("| process RSS growth | %ld KiB = %.1f bytes/member |\n", rss1 - rss0,
           (double)(rss1 - rss0) * 1024.0 / n);
    printf("| revoke 1: wraps | %zu..%zu |\n", wraps_min, wraps_max);
    printf("| revoke 1: datagrams | %s (%zu of %zu revokes needed more than one) |\n",
           multi == 0 ? "1" : "1..n", multi, revokes);
    printf("| revoke 1: datagram size, signed | %zu..%zu bytes |\n", dg_min, dg_max);
    printf("| revoke 1: server CPU (batch + pack + sign) p50 / p99 | %.1f / %.1f us |\n",
           pct(rev, revokes, 0.5) * 1e6, pct(rev, revokes, 0.99) * 1e6);
    printf("| revoke 1: of which pack + sign p50 | %.1f us |\n", pct(pack, revokes, 0.5) * 1e6);
    {
        double s = 0;
        for (size_t i = 0; i < revokes; i++)
            s += rev[i];
        printf("| revokes per CPU-second | %.0f |\n", (double)revokes / s);
    }
    printf("| LKH+ join: server CPU p50 / p99 | %.1f / %.1f us (0 multicast bytes) |\n",
           pct(join, revokes, 0.5) * 1e6, pct(join, revokes, 0.99) * 1e6);
    printf("| member CPU per revoke (parse + verify + apply) p50 | %.1f us |\n",
           pct(mem_cpu, revokes, 0.5) * 1e6);
    printf("| of which the signature check (lkh_rekey_verify) p50 | %.1f us |\n",
           pct(vfy, revokes, 0.5) * 1e6);
    if (n_sib > 0)
        printf("| member CPU per revoke, victim's sibling (%u unwraps) p50 | %.1f us |\n",
               lkh_tree_height(t), pct(sib_cpu, n_sib, 0.5) * 1e6);
    if (bsum > 0) {
        printf("| batch of %d leaves: wraps (mean) | %zu |\n", BATCH_LEAVES,
               bwraps / BATCH_ROUNDS);
        printf("| batch of %d leaves: datagrams (mean) / bytes (mean) / largest | %zu / %zu / %zu |\n",
               BATCH_LEAVES, bdgrams / BATCH_ROUNDS, bbytes / BATCH_ROUNDS, bdg_max);
        printf("| batch of %d leaves: server CPU (batch + pack + sign) min / p50 / mean of %d | "
               "%.2f / %.2f / %.2f ms |\n", BATCH_LEAVES, BATCH_ROUNDS, bmin * 1e3,
               pct(bcpu, BATCH_ROUNDS, 0.5) * 1e3, bsum / BATCH_ROUNDS * 1e3);
        printf("| batch of %d leaves: of which pack + sign (mean) | %.2f ms |\n", BATCH_LEAVES,
               bpack / BATCH_ROUNDS * 1e3);
    }
    lkh_tree_free(t);
    lkh_signer_free(signer);
    free(pack);
    free(vfy);
    free(rev);
    free(join);
    free(mem_cpu);
    free(sib_cpu);
    free(leave);
    return 0;
}
