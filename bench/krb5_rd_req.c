/* krb5_rd_req: the per-core reference for a Kerberized key-management server. One thread runs
 * MIT's server side of an AP exchange over a set of AP-REQs, as a server would run it:
 *
 *   krb5_auth_con_init + KRB5_AUTH_CONTEXT_USE_SUBKEY   (the reply carries a fresh sub-key, as
 *                                                        cablekey-cms's AP-REP always does)
 *   krb5_rd_req(server principal, keytab)               (ticket + authenticator, clock skew, and
 *                                                        MIT's default replay cache: with a server
 *                                                        principal, rd_req opens "dfl:", the file2
 *                                                        cache in KRB5RCACHEDIR)
 *   krb5_mk_rep                                         (EncAPRepPart with the new sub-key)
 *
 * The AP-REQs come from a file written by kmm_load --write-apreq (the same tickets and
 * authenticators it sends to cablekey-cms): records of a 4-byte big-endian length and the DER
 * AP-REQ. With the replay cache on, each authenticator is accepted once per run (a second pass
 * over the file gets KRB_AP_ERR_REPEAT), so the loop makes exactly one pass.
 *
 * Usage: krb5_rd_req --keytab FILE --reqs FILE --service PRINCIPAL [--count N] [--no-subkey]
 *                    [--label NAME]
 * Environment: KRB5_CONFIG (clock skew, default realm), KRB5RCACHEDIR (where the replay cache
 * file goes; the harness points it at an empty temp dir), KRB5RCACHENAME (e.g. "none:" to
 * measure without a replay cache). KRB5_TRACE should be unset: MIT formats every trace message
 * even for /dev/null, which costs it about a quarter more CPU here (the output says trace=1).
 * Output: a summary and one line
 *   RESULT impl=mit-rd-req n=… ok=… errors=… cpu_s=… wall_s=… us_per_pair=… pairs_per_s=…
 *          wall_pairs_per_s=… rcache=… subkey=… trace=…
 * us_per_pair and pairs_per_s are per CPU-second of this (single-threaded) process, so they are
 * per core whatever else the machine runs.
 *
 * Links only libkrb5 (never libcablekey). */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <krb5.h>

#define RR_MAX_REQ (64u * 1024)       /* one AP-REQ record, at most */
#define RR_MAX_COUNT 10000000L

struct rr_blob {
    unsigned char *data;
    unsigned int len;
};

static double
now_s(clockid_t c)
{
    struct timespec t;

    clock_gettime(c, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Reads every record of the file (at most max, 0 = all). */
static int
load_blobs(const char *path, long max, struct rr_blob **out, long *n_out)
{
    struct rr_blob *v = NULL;
    long n = 0, cap = 0;
    unsigned char hdr[4];
    FILE *f;
    int rc = -1;

    if ((f = fopen(path, "rb")) == NULL) {
        fprintf(stderr, "krb5_rd_req: %s: %s\n", path, strerror(errno));
        return -1;
    }
    while ((max == 0 || n < max) && fread(hdr, 1, 4, f) == 4) {
        unsigned int len = (unsigned int)hdr[0] << 24 | (unsigned int)hdr[1] << 16 |
                           (unsigned int)hdr[2] << 8 | hdr[3];

        if (len == 0 || len > RR_MAX_REQ || n >= RR_MAX_COUNT) {
            fprintf(stderr, "krb5_rd_req: %s: bad record %ld (length %u)\n", path, n, len);
            goto out;
        }
        if (n == cap) {
            long ncap = cap ? cap * 2 : 1024;
            struct rr_blob *nv = realloc(v, (size_t)ncap * sizeof(*v));

            if (nv == NULL)
                goto out;
            v = nv;
            cap = ncap;
        }
        if ((v[n].data = malloc(len)) == NULL)
            goto out;
        v[n].len = len;
        n++;
        if (fread(v[n - 1].data, 1, len, f) != len) {
            fprintf(stderr, "krb5_rd_req: %s: truncated record %ld\n", path, n - 1);
            goto out;
        }
    }
    rc = 0;
out:
    fclose(f);
    if (rc != 0) {
        for (long i = 0; i < n; i++)
            free(v[i].data);
        free(v);
        return rc;
    }
    *out = v;
    *n_out = n;
    return 0;
}

static void
usage(void)
{
    fprintf(stderr, "usage: krb5_rd_req --keytab FILE --reqs FILE --service PRINCIPAL "
                    "[--count N] [--no-subkey] [--label NAME]\n");
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"keytab", required_argument, NULL, 'k'}, {"reqs", required_argument, NULL, 'r'},
        {"service", required_argument, NULL, 's'}, {"count", required_argument, NULL, 'n'},
        {"no-subkey", no_argument, NULL, 'S'},     {"label", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
    const char *ktpath = NULL, *reqs = NULL, *service = NULL, *label = "mit-rd-req";
    const char *rcname = getenv("KRB5RCACHENAME"), *trace = getenv("KRB5_TRACE");
    char ktname[4096], first_error[256] = "";
    krb5_context ctx = NULL;
    krb5_principal server = NULL;
    krb5_keytab kt = NULL;
    krb5_error_code code;
    struct rr_blob *blobs = NULL;
    long n = 0, count = 0, ok = 0, errors = 0;
    int subkey = 1, c, status = 1;
    double w0, c0, wall, cpu;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'k': ktpath = optarg; break;
        case 'r': reqs = optarg; break;
        case 's': service = optarg; break;
        case 'n': {
            char *end;
            errno = 0;
            count = strtol(optarg, &end, 10);
            if (errno != 0 || *end != '\0' || count < 0 || count > RR_MAX_COUNT) {
                fprintf(stderr, "krb5_rd_req: bad --count '%s'\n", optarg);
                return 2;
            }
            break;
        }
        case 'S': subkey = 0; break;
        case 'l': label = optarg; break;
        default: usage(); return 2;
        }
    }
    if (ktpath == NULL || reqs == NULL || service == NULL || optind != argc) {
        usage();
        return 2;
    }
    if (load_blobs(reqs, count, &blobs, &n) != 0)
        return 1;
    if (n == 0) {
        fprintf(stderr, "krb5_rd_req: %s: no AP-REQ records\n", reqs);
        goto out;
    }
    if (snprintf(ktname, sizeof(ktname), "FILE:%s", ktpath) >= (int)sizeof(ktname)) {
        fprintf(stderr, "krb5_rd_req: keytab path too long\n");
        goto out;
    }
    if ((code = krb5_init_context(&ctx)) != 0) {
        fprintf(stderr, "krb5_rd_req: krb5_init_context: %d\n", (int)code);
        goto out;
    }
    if ((code = krb5_parse_name(ctx, service, &server)) != 0 ||
        (code = krb5_kt_resolve(ctx, ktname, &kt)) != 0) {
        const char *m = krb5_get_error_message(ctx, code);
        fprintf(stderr, "krb5_rd_req: %s: %s\n", service, m);
        krb5_free_error_message(ctx, m);
        goto out;
    }

    w0 = now_s(CLOCK_MONOTONIC);
    c0 = now_s(CLOCK_PROCESS_CPUTIME_ID);
    for (long i = 0; i < n; i++) {
        krb5_auth_context ac = NULL;
        krb5_ticket *ticket = NULL;
        krb5_flags ap_opts = 0;
        krb5_data in, rep = {0};

        in.magic = KV5M_DATA;
        in.data = (char *)blobs[i].data;
        in.length = blobs[i].len;
        code = krb5_auth_con_init(ctx, &ac);
        if (code == 0 && subkey)
            code = krb5_auth_con_setflags(ctx, ac,
                                          KRB5_AUTH_CONTEXT_DO_TIME | KRB5_AUTH_CONTEXT_USE_SUBKEY);
        if (code == 0)
            code = krb5_rd_req(ctx, &ac, &in, server, kt, &ap_opts, &ticket);
        if (code == 0)
            code = krb5_mk_rep(ctx, ac, &rep);
        if (code == 0) {
            ok++;
        } else {
            if (errors++ == 0) {
                const char *m = krb5_get_error_message(ctx, code);
                snprintf(first_error, sizeof(first_error), "record %ld: %s", i, m);
                krb5_free_error_message(ctx, m);
            }
        }
        krb5_free_data_contents(ctx, &rep);
        krb5_free_ticket(ctx, ticket);
        krb5_auth_con_free(ctx, ac);
    }
    cpu = now_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
    wall = now_s(CLOCK_MONOTONIC) - w0;

    printf("%s: %ld AP-REQs, %ld rd_req+mk_rep pairs ok, %ld errors, %.3f s CPU, %.3f s wall\n",
           label, n, ok, errors, cpu, wall);
    if (errors > 0)
        printf("%s: first error: %s\n", label, first_error);
    printf("%s: %.1f us CPU per pair, %.0f pairs per CPU-second (one core)\n", label,
           ok > 0 ? cpu * 1e6 / (double)ok : 0.0, cpu > 0 ? (double)ok / cpu : 0.0);
    printf("RESULT impl=%s n=%ld ok=%ld errors=%ld cpu_s=%.3f wall_s=%.3f us_per_pair=%.2f "
           "pairs_per_s=%.0f wall_pairs_per_s=%.0f rcache=%s subkey=%d trace=%d\n",
           label, n, ok, errors, cpu, wall, ok > 0 ? cpu * 1e6 / (double)ok : 0.0,
           cpu > 0 ? (double)ok / cpu : 0.0, wall > 0 ? (double)ok / wall : 0.0,
           rcname != NULL && *rcname != '\0' ? rcname : "dfl", subkey,
           trace != NULL && *trace != '\0');
    status = errors == 0 ? 0 : 1;
out:
    if (kt != NULL)
        krb5_kt_close(ctx, kt);
    krb5_free_principal(ctx, server);
    if (ctx != NULL)
        krb5_free_context(ctx);
    for (long i = 0; i < n; i++)
        free(blobs[i].data);
    free(blobs);
    return status;
}
