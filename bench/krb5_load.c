/* krb5_load: MIT's own client library as the load on a KDC (ours or MIT's), one request in flight
 * per client process, as real clients arrive: the shape kdc_loadgen's batched raw requests hide.
 *
 * P client processes (default 8), each looping for the run's duration:
 *   --mode as:  krb5_get_init_creds_keytab(), which is two KDC round trips with a principal that
 *               requires pre-authentication (AS-REQ -> PREAUTH_REQUIRED, AS-REQ with
 *               PA-ENC-TIMESTAMP -> AS-REP), as kinit -k does;
 *   --mode tgs: krb5_get_credentials(KRB5_GC_NO_STORE) for the service with a TGT obtained once,
 *               one TGS round trip per call (NO_STORE: the ticket is never cached, so every call
 *               asks the KDC).
 * What the client does besides the KDC round trips is kept off the disk and cheap: the key is
 * derived once from the password into a MEMORY: keytab, the TGT lives in a MEMORY: ccache,
 * KRB5CCNAME and KRB5_CONFIG point at nothing on disk but this run's own krb5.conf (written to a
 * temp file and read once per process at krb5_init_context), and no replay cache is involved
 * (clients use none for AS/TGS). libkrb5 opens, connects and closes one UDP socket per request,
 * as every MIT client does.
 *
 * An exchange is one library call (AS: two KDC requests). KDC CPU per exchange = the change of
 * utime+stime of every --kdc-pid and its direct children (/proc/PID/stat, also the nanosecond
 * schedstat sum) between the start signal and the last client's end, over the successful calls.
 *
 * Usage: krb5_load --kdc 127.0.0.1:PORT --realm R --client NAME --password PW
 *                  [--mode as|tgs] [--service NAME] [--enctype NAME] [--procs P]
 *                  [--duration S] [--kdc-pid PID]... [--label NAME]
 * Output: a summary and one line
 *   RESULT impl=… mode=… shape=krb5 procs=… ok=… errors=… wall_s=… rps=… mean_us=…
 *          cpu_us_per_req=… sched_us_per_req=… gen_cpu_us_per_req=… other_cores=…
 *
 * Links only libkrb5 (never libcablekey): it measures other people's client code against ours. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <krb5.h>

#include "proc_cpu.h"

#define KL_MAX_PROCS 64

struct kl_opts {
    const char *kdc, *realm, *client, *password, *service, *enctype, *label;
    int tgs;
    int procs;
    double duration;
    struct proc_pids kdc_pids;
};

/* What a client process reports when its loop ends. */
struct kl_result {
    long ok, errors;
    double cpu_us;           /* its own CPU during the loop */
    char first_error[160];
};

static double
now_s(clockid_t c)
{
    struct timespec t;

    clock_gettime(c, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int
write_all(int fd, const void *buf, size_t len)
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

static int
read_all(int fd, void *buf, size_t len)
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

static void
kerr(krb5_context ctx, const char *what, krb5_error_code code, char *buf, size_t size)
{
    const char *m = krb5_get_error_message(ctx, code);

    snprintf(buf, size, "%s: %s", what, m);
    krb5_free_error_message(ctx, m);
}

/* The client process: set up, report ready, wait for the start byte, loop, report. */
static int
client_main(const struct kl_opts *o, int ready_fd, int start_fd, int result_fd)
{
    struct kl_result res;
    krb5_context ctx = NULL;
    krb5_principal client = NULL, service = NULL;
    krb5_keytab kt = NULL;
    krb5_ccache cc = NULL;
    krb5_get_init_creds_opt *gopt = NULL;
    krb5_keytab_entry ent;
    krb5_keyblock key;
    krb5_data salt = {0}, pw;
    krb5_enctype etype;
    krb5_creds creds;
    krb5_error_code code;
    char ktname[64], ready = 'r', start;
    double t0, c0, deadline;
    int status = 1;

    memset(&res, 0, sizeof(res));
    memset(&key, 0, sizeof(key));
    memset(&creds, 0, sizeof(creds));
    if ((code = krb5_init_context(&ctx)) != 0) {
        fprintf(stderr, "krb5_load: krb5_init_context: %d\n", (int)code);
        return 1;
    }
    if ((code = krb5_parse_name(ctx, o->client, &client)) != 0 ||
        (code = krb5_parse_name(ctx, o->service, &service)) != 0 ||
        (code = krb5_string_to_enctype((char *)o->enctype, &etype)) != 0) {
        kerr(ctx, "principal/enctype", code, res.first_error, sizeof(res.first_error));
        goto out;
    }
    /* The long-term key, derived once (PBKDF2 per call would be client CPU on the shared cores,
     * and a real keytab client does not derive either). */
    pw.data = (char *)o->password;
    pw.length = (unsigned int)strlen(o->password);
    snprintf(ktname, sizeof(ktname), "MEMORY:krb5_load_%ld", (long)getpid());
    if ((code = krb5_principal2salt(ctx, client, &salt)) != 0 ||
        (code = krb5_c_string_to_key(ctx, etype, &pw, &salt, &key)) != 0 ||
        (code = krb5_kt_resolve(ctx, ktname, &kt)) != 0) {
        kerr(ctx, "key", code, res.first_error, sizeof(res.first_error));
        goto out;
    }
    memset(&ent, 0, sizeof(ent));
    ent.principal = client;
    ent.vno = 1;
    ent.key = key;
    if ((code = krb5_kt_add_entry(ctx, kt, &ent)) != 0 ||
        (code = krb5_get_init_creds_opt_alloc(ctx, &gopt)) != 0) {
        kerr(ctx, "keytab", code, res.first_error, sizeof(res.first_error));
        goto out;
    }
    if (o->tgs) {
        if ((code = krb5_cc_new_unique(ctx, "MEMORY", NULL, &cc)) != 0 ||
            (code = krb5_cc_initialize(ctx, cc, client)) != 0 ||
            (code = krb5_get_init_creds_keytab(ctx, &creds, client, kt, 0, NULL, gopt)) != 0 ||
            (code = krb5_cc_store_cred(ctx, cc, &creds)) != 0) {
            kerr(ctx, "TGT", code, res.first_error, sizeof(res.first_error));
            goto out;
        }
        krb5_free_cred_contents(ctx, &creds);
        memset(&creds, 0, sizeof(creds));
    }

    if (write_all(ready_fd, &ready, 1) != 0 || read_all(start_fd, &start, 1) != 0)
        goto out;
    t0 = now_s(CLOCK_MONOTONIC);
    c0 = now_s(CLOCK_PROCESS_CPUTIME_ID);
    deadline = t0 + o->duration;
    while (now_s(CLOCK_MONOTONIC) < deadline) {
        if (o->tgs) {
            krb5_creds in, *out = NULL;

            memset(&in, 0, sizeof(in));
            in.client = client;
            in.server = service;
            code = krb5_get_credentials(ctx, KRB5_GC_NO_STORE, cc, &in, &out);
            krb5_free_creds(ctx, out);
        } else {
            code = krb5_get_init_creds_keytab(ctx, &creds, client, kt, 0, NULL, gopt);
            krb5_free_cred_contents(ctx, &creds);
            memset(&creds, 0, sizeof(creds));
        }
        if (code == 0) {
            res.ok++;
        } else {
            if (res.errors++ == 0)
                kerr(ctx, o->tgs ? "krb5_get_credentials" : "krb5_get_init_creds_keytab", code,
                     res.first_error, sizeof(res.first_error));
        }
    }
    res.cpu_us = (now_s(CLOCK_PROCESS_CPUTIME_ID) - c0) * 1e6;
    status = 0;
out:
    if (write_all(result_fd, &res, sizeof(res)) != 0)
        status = 1;
    krb5_get_init_creds_opt_free(ctx, gopt);
    if (cc != NULL)
        krb5_cc_destroy(ctx, cc);
    if (kt != NULL)
        krb5_kt_close(ctx, kt);
    krb5_free_keyblock_contents(ctx, &key);
    krb5_free_data_contents(ctx, &salt);
    krb5_free_principal(ctx, client);
    krb5_free_principal(ctx, service);
    krb5_free_context(ctx);
    return status;
}

static void
usage(void)
{
    fprintf(stderr,
            "usage: krb5_load --kdc HOST:PORT --realm R --client NAME --password PW\n"
            "                 [--mode as|tgs] [--service NAME] [--enctype NAME] [--procs P]\n"
            "                 [--duration S] [--kdc-pid PID]... [--label NAME]\n");
}

static int
parse_args(int argc, char **argv, struct kl_opts *o)
{
    static const struct option longopts[] = {
        {"kdc", required_argument, NULL, 'k'},      {"realm", required_argument, NULL, 'r'},
        {"client", required_argument, NULL, 'c'},   {"password", required_argument, NULL, 'p'},
        {"service", required_argument, NULL, 's'},  {"mode", required_argument, NULL, 'm'},
        {"enctype", required_argument, NULL, 'e'},  {"procs", required_argument, NULL, 'n'},
        {"duration", required_argument, NULL, 'd'}, {"kdc-pid", required_argument, NULL, 'P'},
        {"label", required_argument, NULL, 'l'},    {NULL, 0, NULL, 0},
    };
    char *end;
    long v;
    int c;

    memset(o, 0, sizeof(*o));
    o->procs = 8;
    o->duration = 5;
    o->enctype = "aes256-cts-hmac-sha1-96";
    o->label = "kdc";
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'k': o->kdc = optarg; break;
        case 'r': o->realm = optarg; break;
        case 'c': o->client = optarg; break;
        case 'p': o->password = optarg; break;
        case 's': o->service = optarg; break;
        case 'e': o->enctype = optarg; break;
        case 'l': o->label = optarg; break;
        case 'm':
            if (strcmp(optarg, "as") != 0 && strcmp(optarg, "tgs") != 0)
                return -1;
            o->tgs = strcmp(optarg, "tgs") == 0;
            break;
        case 'n':
            v = strtol(optarg, &end, 10);
            if (*end != '\0' || v < 1 || v > KL_MAX_PROCS)
                return -1;
            o->procs = (int)v;
            break;
        case 'd':
            o->duration = strtod(optarg, &end);
            if (*end != '\0' || !(o->duration > 0 && o->duration <= 600))
                return -1;
            break;
        case 'P':
            v = strtol(optarg, &end, 10);
            if (*end != '\0' || v < 1 || v > (1L << 30) || proc_pids_add(&o->kdc_pids, (int)v) != 0)
                return -1;
            break;
        default:
            return -1;
        }
    }
    if (o->kdc == NULL || o->realm == NULL || o->client == NULL || o->password == NULL ||
        (o->tgs && o->service == NULL) || optind != argc)
        return -1;
    if (o->service == NULL)
        o->service = "host/unused";
    return 0;
}

/* The run's krb5.conf: only this KDC, nothing from DNS, UDP (libkrb5's default below 1465 bytes). */
static int
write_krb5_conf(const struct kl_opts *o, char *path, size_t size)
{
    FILE *f;
    int fd;

    snprintf(path, size, "/tmp/krb5_load-XXXXXX");
    if ((fd = mkstemp(path)) < 0 || (f = fdopen(fd, "w")) == NULL) {
        perror("krb5_load: krb5.conf");
        return -1;
    }
    fprintf(f,
            "[libdefaults]\n"
            "    default_realm = %s\n"
            "    dns_lookup_kdc = false\n"
            "    dns_lookup_realm = false\n"
            "    dns_canonicalize_hostname = false\n"
            "    rdns = false\n"
            "[realms]\n"
            "    %s = {\n"
            "        kdc = %s\n"
            "    }\n",
            o->realm, o->realm, o->kdc);
    return fclose(f) == 0 ? 0 : -1;
}

int
main(int argc, char **argv)
{
    struct kl_opts o;
    char conf[64];
    int ready[2], start[2], result[2];
    pid_t kids[KL_MAX_PROCS];
    int nkids = 0, status = 1, have_cpu = 0, have_ns = 0, have_machine = 0;
    unsigned long long cpu0 = 0, cpu1 = 0, ns0 = 0, ns1 = 0, mb0 = 0, mt0 = 0, mb1 = 0, mt1 = 0;
    long ok = 0, errors = 0;
    double t0, t1, gen_cpu_us = 0;
    char first_error[160] = "";

    if (parse_args(argc, argv, &o) != 0) {
        usage();
        return 2;
    }
    if (write_krb5_conf(&o, conf, sizeof(conf)) != 0)
        return 1;
    setenv("KRB5_CONFIG", conf, 1);
    setenv("KRB5CCNAME", "MEMORY:krb5_load", 1);
    setenv("KRB5_KTNAME", "MEMORY:krb5_load_default", 1);
    unsetenv("KRB5_TRACE");
    if (pipe(ready) != 0 || pipe(start) != 0 || pipe(result) != 0) {
        perror("krb5_load: pipe");
        goto out;
    }
    for (int i = 0; i < o.procs; i++) {
        pid_t p = fork();

        if (p < 0) {
            perror("krb5_load: fork");
            goto out;
        }
        if (p == 0) {
            close(ready[0]);
            close(start[1]);
            close(result[0]);
            _exit(client_main(&o, ready[1], start[0], result[1]));
        }
        kids[nkids++] = p;
    }
    close(ready[1]);
    close(start[0]);
    close(result[1]);
    ready[1] = start[0] = result[1] = -1;
    for (int i = 0; i < nkids; i++) {
        char c;

        /* A client that failed its setup reports a result instead of ready. */
        if (read_all(ready[0], &c, 1) != 0) {
            fprintf(stderr, "krb5_load: a client process failed during setup\n");
            break;
        }
    }

    if (o.kdc_pids.n > 0) {
        proc_pids_add_children(&o.kdc_pids);
        have_cpu = proc_pids_ticks(&o.kdc_pids, &cpu0) == 0;
        have_ns = proc_pids_sched_ns(&o.kdc_pids, &ns0) == 0;
    }
    have_machine = proc_machine_ticks(&mb0, &mt0) == 0;
    t0 = now_s(CLOCK_MONOTONIC);
    for (int i = 0; i < nkids; i++)
        if (write_all(start[1], "s", 1) != 0)
            break;
    for (int i = 0; i < nkids; i++) {
        struct kl_result r;

        if (read_all(result[0], &r, sizeof(r)) != 0) {
            fprintf(stderr, "krb5_load: a client process died\n");
            errors++;
            continue;
        }
        ok += r.ok;
        errors += r.errors;
        gen_cpu_us += r.cpu_us;
        if (first_error[0] == '\0' && r.first_error[0] != '\0')
            snprintf(first_error, sizeof(first_error), "%s", r.first_error);
    }
    t1 = now_s(CLOCK_MONOTONIC);
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
        double mean_us = ok > 0 ? wall * 1e6 * o.procs / (double)ok : -1;
        double other = -1;

        printf("%s %s: %d client processes (libkrb5), %.2f s: %ld ok, %ld errors, %.0f "
               "exchanges/s, mean %.0f us\n",
               o.label, o.tgs ? "tgs" : "as", o.procs, wall, ok, errors, rps, mean_us);
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
                   "other processes %.2f\n",
                   busy, ncpu, kdc, gen, gen_per, other);
        }
        printf("RESULT impl=%s mode=%s shape=krb5 procs=%d requests=%ld ok=%ld errors=%ld lost=0 "
               "wall_s=%.3f rps=%.1f mean_us=%.0f p50_us=%.0f p99_us=0 cpu_us_per_req=%.1f "
               "sched_us_per_req=%.1f gen_cpu_us_per_req=%.1f other_cores=%.2f\n",
               o.label, o.tgs ? "tgs" : "as", o.procs, ok + errors, ok, errors, wall, rps, mean_us,
               mean_us, cpu_per, ns_per, gen_per, other);
        status = ok > 0 && errors == 0 ? 0 : 1;
    }
out:
    for (int i = 0; i < nkids; i++) {
        int st;

        if (waitpid(kids[i], &st, 0) < 0)
            kill(kids[i], SIGKILL);
    }
    unlink(conf);
    return status;
}
