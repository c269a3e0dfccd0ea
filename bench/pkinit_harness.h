/* The closed-loop harness of the PKINIT load clients (krb5_pkinit_load: MIT's libkrb5;
 * pkinit_load: our lib/pkinit client). Header only, libc and proc_cpu.h only, so that a program
 * linking libkrb5 and one linking libcablekey can share it.
 *
 * P client processes (fork), each: set up (load identities, warm up with one exchange so that a
 * wrong configuration fails before the clock starts, with the KDC's own error), report ready,
 * wait for the start byte, loop over exchanges until the deadline with one request in flight,
 * report its counts. The parent samples the KDC's CPU (/proc utime+stime and schedstat of every
 * --kdc-pid and its direct children) and the whole machine's busy time right before the start
 * byte and right after the last client reports, and prints one summary and one line
 *   RESULT impl=… shape=… client=… procs=… identities=… ok=… errors=… wall_s=… rps=… mean_us=…
 *          cpu_us_per_req=… sched_us_per_req=… gen_cpu_us_per_req=… other_cores=… loadavg=…
 * (cpu_us_per_req: KDC CPU per successful exchange; other_cores: CPU that neither the KDC nor
 * the clients used during the run, i.e. other tenants of the machine; loadavg: /proc/loadavg's
 * one-minute figure at the start).
 *
 * Identity selection: client process i, iteration k uses identity (i + k * P) mod n, so with n
 * identities every one of them is used in turn and no two processes use the same one at the same
 * time (the cold-cache shape gives each exchange a certificate the KDC has not seen lately). */
#ifndef CK_BENCH_PKINIT_HARNESS_H
#define CK_BENCH_PKINIT_HARNESS_H

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proc_cpu.h"

#define PKH_MAX_PROCS 64
#define PKH_MAX_IDENTITIES 4096
#define PKH_ERR_LEN 200

struct pkh_opts {
    const char *label;         /* impl= (the KDC: "mit", "cablekey") */
    const char *shape;         /* shape= ("rsa-dh", "rsa-kt", "ec-ecdh", ...) */
    const char *client;        /* client= ("libkrb5", "cablekey") */
    int procs;
    double duration;           /* seconds */
    struct proc_pids kdc_pids;
    const char *identities[PKH_MAX_IDENTITIES];
    int n_identities;
};

/* A client's callbacks. setup: per process, before the clock; *state is handed to one() and
 * done(). one: one exchange with identity idx; 0 on success, else an error text in err. Both
 * return 0 or -1. */
struct pkh_client {
    int (*setup)(const struct pkh_opts *o, int proc, void **state, char *err, size_t errlen);
    int (*one)(void *state, int idx, char *err, size_t errlen);
    void (*done)(void *state);
};

struct pkh_result {
    long ok, errors;
    double cpu_us;             /* the process's own CPU during the loop */
    char first_error[PKH_ERR_LEN];
};

static inline double
pkh_now(clockid_t c)
{
    struct timespec t;

    clock_gettime(c, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static inline int
pkh_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t r = write(fd, p, len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

static inline int
pkh_read_all(int fd, void *buf, size_t len)
{
    char *p = buf;

    while (len > 0) {
        ssize_t r = read(fd, p, len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

/* Adds one identity; -1 when the table is full. */
static inline int
pkh_add_identity(struct pkh_opts *o, const char *id)
{
    if (o->n_identities >= PKH_MAX_IDENTITIES)
        return -1;
    o->identities[o->n_identities++] = id;
    return 0;
}

/* Adds every non-empty line of a file as an identity (the strings are kept for the program's
 * lifetime). -1 on error. */
static inline int
pkh_add_identity_list(struct pkh_opts *o, const char *path)
{
    char line[4096];
    FILE *f = fopen(path, "r");
    int rc = 0;

    if (f == NULL) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }
    while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
        char *copy;

        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0' || line[0] == '#')
            continue;
        if ((copy = strdup(line)) == NULL || pkh_add_identity(o, copy) != 0) {
            free(copy);
            fprintf(stderr, "%s: more than %d identities\n", path, PKH_MAX_IDENTITIES);
            rc = -1;
        }
    }
    fclose(f);
    return rc;
}

/* The options every client shares; 1 if c was one of them, 0 if not, -1 if its value is bad. */
static inline int
pkh_common_opt(struct pkh_opts *o, int c, const char *arg)
{
    char *end;
    long v;

    switch (c) {
    case 'L': o->label = arg; return 1;
    case 'S': o->shape = arg; return 1;
    case 'I': return pkh_add_identity(o, arg) == 0 ? 1 : -1;
    case 'J': return pkh_add_identity_list(o, arg) == 0 ? 1 : -1;
    case 'N':
        v = strtol(arg, &end, 10);
        if (*end != '\0' || v < 1 || v > PKH_MAX_PROCS)
            return -1;
        o->procs = (int)v;
        return 1;
    case 'D':
        o->duration = strtod(arg, &end);
        return *end == '\0' && o->duration > 0 && o->duration <= 600 ? 1 : -1;
    case 'P':
        v = strtol(arg, &end, 10);
        if (*end != '\0' || v < 1 || v > (1L << 30) || proc_pids_add(&o->kdc_pids, (int)v) != 0)
            return -1;
        return 1;
    default:
        return 0;
    }
}

/* getopt_long entries for pkh_common_opt. */
#define PKH_LONGOPTS                                                                           \
    {"label", required_argument, NULL, 'L'}, {"shape", required_argument, NULL, 'S'},          \
        {"identity", required_argument, NULL, 'I'},                                            \
        {"identity-list", required_argument, NULL, 'J'},                                       \
        {"procs", required_argument, NULL, 'N'}, {"duration", required_argument, NULL, 'D'},   \
        {"kdc-pid", required_argument, NULL, 'P'}

#define PKH_USAGE                                                                              \
    "  --identity ID (repeatable) | --identity-list FILE (one ID a line)\n"                     \
    "  [--procs P (8)] [--duration S (5)] [--kdc-pid PID]... [--label KDC] [--shape NAME]\n"

static inline void
pkh_defaults(struct pkh_opts *o, const char *client)
{
    memset(o, 0, sizeof(*o));
    o->label = "kdc";
    o->shape = "pkinit";
    o->client = client;
    o->procs = 8;
    o->duration = 5;
}

static inline int
pkh_child(const struct pkh_opts *o, const struct pkh_client *cl, int proc, int ready_fd,
          int start_fd, int result_fd)
{
    struct pkh_result res;
    void *state = NULL;
    char ready = 'r', start;
    double c0, deadline;
    long k = 0;
    int status = 1;

    memset(&res, 0, sizeof(res));
    /* The warm-up exchange: outside the measurement, and it fails fast on a bad configuration
     * with the KDC's own error. A failure is announced as 'f' so that the parent stops waiting. */
    if (cl->setup(o, proc, &state, res.first_error, sizeof(res.first_error)) != 0 ||
        cl->one(state, proc % o->n_identities, res.first_error, sizeof(res.first_error)) != 0) {
        res.errors = 1;
        ready = 'f';
    }
    if (pkh_write_all(ready_fd, &ready, 1) != 0 || ready != 'r' ||
        pkh_read_all(start_fd, &start, 1) != 0)
        goto out;
    c0 = pkh_now(CLOCK_PROCESS_CPUTIME_ID);
    deadline = pkh_now(CLOCK_MONOTONIC) + o->duration;
    while (pkh_now(CLOCK_MONOTONIC) < deadline) {
        char err[PKH_ERR_LEN];
        int idx = (int)((proc + k * o->procs) % o->n_identities);

        k++;
        err[0] = '\0';
        if (cl->one(state, idx, err, sizeof(err)) == 0) {
            res.ok++;
        } else if (res.errors++ == 0) {
            snprintf(res.first_error, sizeof(res.first_error), "%s", err);
        }
    }
    res.cpu_us = (pkh_now(CLOCK_PROCESS_CPUTIME_ID) - c0) * 1e6;
    status = 0;
out:
    if (pkh_write_all(result_fd, &res, sizeof(res)) != 0)
        status = 1;
    if (state != NULL)
        cl->done(state);
    return status;
}

static inline double
pkh_loadavg(void)
{
    double v = -1;
    FILE *f = fopen("/proc/loadavg", "r");

    if (f != NULL) {
        if (fscanf(f, "%lf", &v) != 1)
            v = -1;
        fclose(f);
    }
    return v;
}

/* Runs the measurement and prints the summary and the RESULT line. Returns the exit status:
 * 0 when every exchange succeeded, 1 otherwise. */
static inline int
pkh_run(const struct pkh_opts *o_in, const struct pkh_client *cl)
{
    struct pkh_opts o = *o_in;
    int ready[2] = {-1, -1}, start[2] = {-1, -1}, result[2] = {-1, -1};
    pid_t kids[PKH_MAX_PROCS];
    int nkids = 0, nready = 0, status = 1, have_cpu = 0, have_ns = 0, have_machine = 0;
    unsigned long long cpu0 = 0, cpu1 = 0, ns0 = 0, ns1 = 0, mb0 = 0, mt0 = 0, mb1 = 0, mt1 = 0;
    long ok = 0, errors = 0;
    double t0, t1, gen_cpu_us = 0, load;
    char first_error[PKH_ERR_LEN] = "";

    if (o.n_identities == 0) {
        fprintf(stderr, "no --identity given\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (pipe(ready) != 0 || pipe(start) != 0 || pipe(result) != 0) {
        perror("pipe");
        goto out;
    }
    fflush(NULL);
    for (int i = 0; i < o.procs; i++) {
        pid_t p = fork();

        if (p < 0) {
            perror("fork");
            break;
        }
        if (p == 0) {
            close(ready[0]);
            close(start[1]);
            close(result[0]);
            _exit(pkh_child(&o, cl, i, ready[1], start[0], result[1]));
        }
        kids[nkids++] = p;
    }
    close(ready[1]);
    close(start[0]);
    close(result[1]);
    ready[1] = start[0] = result[1] = -1;
    /* Every client answers 'r' (ready) or 'f' (its setup or warm-up failed). */
    for (int i = 0; i < nkids; i++) {
        char c;

        if (pkh_read_all(ready[0], &c, 1) != 0)
            break;
        nready += c == 'r';
    }

    if (o.kdc_pids.n > 0) {
        proc_pids_add_children(&o.kdc_pids);
        have_cpu = proc_pids_ticks(&o.kdc_pids, &cpu0) == 0;
        have_ns = proc_pids_sched_ns(&o.kdc_pids, &ns0) == 0;
    }
    have_machine = proc_machine_ticks(&mb0, &mt0) == 0;
    load = pkh_loadavg();
    t0 = pkh_now(CLOCK_MONOTONIC);
    /* After a failed setup nobody starts: the waiting clients read end-of-file and report. */
    for (int i = 0; nready == nkids && i < nkids; i++)
        if (pkh_write_all(start[1], "s", 1) != 0)
            break;
    close(start[1]);
    start[1] = -1;
    for (int i = 0; i < nkids; i++) {
        struct pkh_result r;

        if (pkh_read_all(result[0], &r, sizeof(r)) != 0) {
            fprintf(stderr, "a client process died\n");
            errors++;
            continue;
        }
        ok += r.ok;
        errors += r.errors;
        gen_cpu_us += r.cpu_us;
        if (first_error[0] == '\0' && r.first_error[0] != '\0')
            snprintf(first_error, sizeof(first_error), "%s", r.first_error);
    }
    t1 = pkh_now(CLOCK_MONOTONIC);
    if (have_cpu && proc_pids_ticks(&o.kdc_pids, &cpu1) != 0)
        have_cpu = 0;
    if (have_ns && proc_pids_sched_ns(&o.kdc_pids, &ns1) != 0)
        have_ns = 0;
    if (have_machine && proc_machine_ticks(&mb1, &mt1) != 0)
        have_machine = 0;

    {
        long hz = sysconf(_SC_CLK_TCK);
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        double wall = t1 - t0, rps = ok > 0 ? (double)ok / wall : 0;
        double cpu_us = have_cpu ? (double)(cpu1 - cpu0) * 1e6 / (double)hz : -1;
        double cpu_per = have_cpu && ok > 0 ? cpu_us / (double)ok : -1;
        double ns_per = have_ns && ok > 0 ? (double)(ns1 - ns0) / 1e3 / (double)ok : -1;
        double gen_per = ok > 0 ? gen_cpu_us / (double)ok : -1;
        double mean_us = ok > 0 ? wall * 1e6 * nkids / (double)ok : -1;
        double other = -1;

        printf("%s %s (%s client, %d processes, %d identit%s): %.2f s: %ld ok, %ld errors, "
               "%.0f exchanges/s, mean %.0f us\n",
               o.label, o.shape, o.client, nkids, o.n_identities,
               o.n_identities == 1 ? "y" : "ies", wall, ok, errors, rps, mean_us);
        if (nready < nkids)
            printf("  %d of %d client processes failed their setup or warm-up exchange\n",
                   nkids - nready, nkids);
        if (first_error[0] != '\0')
            printf("  first error: %s\n", first_error);
        if (have_cpu)
            printf("  KDC CPU %.0f ms (%d pid%s) = %.1f us/exchange; schedstat %.1f us/exchange\n",
                   cpu_us / 1e3, o.kdc_pids.n, o.kdc_pids.n == 1 ? "" : "s", cpu_per, ns_per);
        if (have_machine && mt1 > mt0) {
            double busy = (double)(mb1 - mb0) / (double)(mt1 - mt0) * (double)ncpu;
            double kdc = have_ns ? (double)(ns1 - ns0) / 1e9 / wall
                                 : have_cpu ? cpu_us / 1e6 / wall : 0;
            double gen = gen_cpu_us / 1e6 / wall;

            other = busy - kdc - gen;
            if (other < 0)
                other = 0;
            printf("  machine: %.2f of %ld CPUs busy: KDC %.2f, clients %.2f (%.1f us/exchange), "
                   "other processes %.2f; load average %.2f\n",
                   busy, ncpu, kdc, gen, gen_per, other, load);
        }
        printf("RESULT impl=%s shape=%s client=%s procs=%d identities=%d ok=%ld errors=%ld "
               "wall_s=%.3f rps=%.1f mean_us=%.0f cpu_us_per_req=%.1f sched_us_per_req=%.1f "
               "gen_cpu_us_per_req=%.1f other_cores=%.2f loadavg=%.2f\n",
               o.label, o.shape, o.client, nkids, o.n_identities, ok, errors, wall, rps, mean_us,
               cpu_per, ns_per, gen_per, other, load);
        fflush(stdout);
        status = ok > 0 && errors == 0 && nready == nkids && nkids == o.procs ? 0 : 1;
    }
out:
    for (int i = 0; i < 2; i++) {
        if (ready[i] >= 0)
            close(ready[i]);
        if (start[i] >= 0)
            close(start[i]);
        if (result[i] >= 0)
            close(result[i]);
    }
    for (int i = 0; i < nkids; i++) {
        int st;

        if (waitpid(kids[i], &st, 0) < 0)
            kill(kids[i], SIGKILL);
    }
    return status;
}

#endif
