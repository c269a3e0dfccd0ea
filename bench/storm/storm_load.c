/* storm_load: a reset storm against one or more KDCs (issue 9, the mass reset).
 *
 * N clients (MTAs after a segment reboot) start at evenly spaced instants within --ramp seconds.
 * Each sends one AS-REQ over UDP from an address of its own (client i from 127.(1 + i / 65536).
 * (i / 256 % 256).(i % 256): a KDC's fair share sees them as hosts of ~N/256 /24s) and retries
 * on MIT's schedule (lib/krb5/os/sendto_kdc.c, k5_sendto): three passes over the --kdc list,
 * each KDC given --timeout-ms (1000) before the next, and at the end of pass 1, 2, 3 a further
 * 2, 4, 8 times that; late answers to any earlier send are taken (the socket stays open). With
 * one KDC: sends at 0, 3 and 8 s, given up at 17 s. A client that gives up starts the exchange
 * again at once (an MTA keeps trying; the same request bytes), until an answer arrives or
 * --deadline passes. Client i starts its list at KDC i mod n (as SRV weights or differently
 * ordered krb5.conf files would spread them). An AS-REP (first byte 0x6b) means the client holds
 * its ticket; a KRB-ERROR (0x7e) is counted as an error (its code kept) and ends the client.
 *
 * Requests are built before the clock starts, with lib/client's own code (the first AS-REQ of
 * ck_client_as_key / ck_client_as_pkinit with preauth_first, captured through a transport
 * callback instead of the network): each is distinct (nonce, timestamp; PKINIT: a fresh ECDH key
 * and signature), so nothing is answered from a replay or lookaside cache.
 *   --mode keytab: PA-ENC-TIMESTAMP with the key of --password (aes256-cts-hmac-sha1-96);
 *   --mode pkinit: PA-PK-AS-REQ, --identity FILE:cert,key (repeatable: client i uses identity
 *                  i mod n), --anchors PEM, --kx p256 (default) | p384 | modp2048 | rsa.
 *
 * One socket per waiting client: the per-process descriptor limit (20,000 on the build VM and
 * not raisable without CAP_SYS_RESOURCE) is met by forking --procs processes (default: N / 15000
 * rounded up), each with its share of the clients (client i in process i mod P). The parent
 * samples the KDCs' CPU (--kdc-pid) and the machine's busy time between the start and the last
 * answer, and prints a summary and
 *   RESULT label=… mode=… clients=… ok=… errors=… unanswered=… ramp_s=… all_s=… p50_ms=…
 *          p99_ms=… max_ms=… sends=… retries=… kdc_cpu_s=… kdc_cpu_us_per_ok=… gen_cpu_s=…
 *          other_cores=… prep_s=…
 * (all_s: from the first client's start to the last client's ticket; p50/p99/max: per client,
 * from its first send to its answer). --calibrate K: instead of the storm, the same clients one
 * after another with K in flight (no overload), for the KDC CPU per exchange of an unloaded KDC.
 *
 * Usage: storm_load --kdc HOST:PORT [--kdc ...] --realm R --client NAME
 *                   (--mode keytab --password PW | --mode pkinit --identity ID... --anchors PEM)
 *                   [--clients N] [--ramp S] [--timeout-ms MS]
 *                   [--deadline S] [--procs P] [--kdc-pid PID]... [--calibrate K] [--label L] */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cablekey/client.h"
#include "cablekey/crypto.h"
#include "cablekey/error.h"
#include "cablekey/pki.h"
#include "cablekey/pkinit.h"
#include "cablekey/pkinit_client.h"
#include "cablekey/util.h"
#include "../proc_cpu.h"

#define MAX_KDCS 8
#define MAX_IDS 1024
#define MAX_PASS 3
#define N_WAITS (1 + MAX_PASS)   /* the per-KDC wait, and each pass's end */
#define PER_PROC 15000
#define MAX_CLIENTS 1000000

struct opts {
    const char *kdcs[MAX_KDCS];
    int n_kdcs;
    const char *realm, *client, *password, *anchors, *label;
    const char *ids[MAX_IDS];
    int n_ids;
    bool pkinit;
    ck_pkinit_kx kx;
    ck_pkinit_group group;
    long clients;
    double ramp, deadline;
    int timeout_ms, procs, calibrate;
    struct proc_pids kdc_pids;
};

static struct opts o;

/* What a child reports per client (ms from the storm's start; -1: never). */
struct outcome {
    float first_ms, done_ms;
    uint8_t tries;
    uint8_t ok;
    uint16_t err;       /* KRB-ERROR code + 1, 0: none */
};

struct client {
    uint8_t *req;
    size_t req_len;
    int fd;
    int tries;          /* datagrams sent */
    int step;           /* sends in the current exchange (0 .. MAX_PASS * n_kdcs) */
    int64_t next_ns;    /* when to send again (monotonic) */
    int64_t start_ns;   /* scheduled start */
    struct outcome out;
};

static int64_t
mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double
proc_cpu_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
parse_hostport(const char *s, struct sockaddr_in *sin)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    int64_t port;
    size_t n;

    if (colon == NULL || (n = (size_t)(colon - s)) >= sizeof(host))
        return -1;
    memcpy(host, s, n);
    host[n] = '\0';
    memset(sin, 0, sizeof(*sin));
    sin->sin_family = AF_INET;
    if (ck_parse_int64(colon + 1, 1, 65535, &port) != 0)
        return -1;
    sin->sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, host, &sin->sin_addr) == 1 ? 0 : -1;
}

/* ---- building the requests ---------------------------------------------------------------- */

struct capture {
    uint8_t *req;
    size_t len;
};

/* The transport callback that keeps the first request and ends the exchange there. */
static int
capture_send(void *arg, const uint8_t *req, size_t req_len, uint8_t **reply, size_t *reply_len)
{
    struct capture *c = arg;

    *reply = NULL;
    *reply_len = 0;
    if (c->req == NULL && (c->req = malloc(req_len)) != NULL) {
        memcpy(c->req, req, req_len);
        c->len = req_len;
    }
    return ck_error_set(CK_ERR_TIMEOUT, "captured");
}

struct builder {
    ck_key key;
    ck_pki_identity *ids[MAX_IDS];
    ck_pkinit_anchors *anchors;
};

static void
builder_free(struct builder *b)
{
    ck_key_clear(&b->key);
    for (int i = 0; i < o.n_ids; i++)
        ck_pki_identity_free(b->ids[i]);
    ck_pkinit_anchors_free(b->anchors);
}

static int
builder_init(struct builder *b)
{
    memset(b, 0, sizeof(*b));
    if (!o.pkinit) {
        uint8_t salt[512];
        size_t rl = strlen(o.realm), sl = rl;

        if (rl >= sizeof(salt))
            return -1;
        memcpy(salt, o.realm, rl);
        for (const char *p = o.client; *p != '\0' && *p != '@' && sl < sizeof(salt); p++)
            if (*p != '/')
                salt[sl++] = (uint8_t)*p;
        if (ck_string_to_key(CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, o.password, strlen(o.password),
                             salt, sl, NULL, 0, &b->key) != 0) {
            fprintf(stderr, "storm_load: string-to-key: %s\n", ck_error_context());
            return -1;
        }
        return 0;
    }
    for (int i = 0; i < o.n_ids; i++)
        if (ck_pki_identity_load(o.ids[i], NULL, &b->ids[i]) != 0) {
            fprintf(stderr, "storm_load: %s: %s\n", o.ids[i], ck_error_context());
            return -1;
        }
    if (ck_pkinit_anchors_new(&b->anchors) != 0 ||
        ck_pkinit_anchors_add_file(b->anchors, o.anchors, 0, NULL) != 0) {
        fprintf(stderr, "storm_load: --anchors %s: %s\n", o.anchors, ck_error_context());
        return -1;
    }
    return 0;
}

/* The AS-REQ client i sends (first request, preauth included). transport NULL: captured. */
static int
build_or_run(struct builder *b, long i, const ck_kdc_transport *real, struct capture *cap)
{
    ck_kdc_transport t;
    ck_as_params as;
    ck_creds *creds = NULL;
    int rc;

    memset(&t, 0, sizeof(t));
    if (real != NULL) {
        t = *real;
    } else {
        t.send_fn = capture_send;
        t.send_arg = cap;
    }
    memset(&as, 0, sizeof(as));
    as.realm = o.realm;
    as.client = o.client;
    as.preauth_first = true;
    as.transport = &t;
    if (!o.pkinit) {
        static const int32_t et[] = {CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96};
        as.enctypes = et;
        as.n_enctypes = 1;
        rc = ck_client_as_key(&as, &b->key, &creds);
    } else {
        ck_pkinit_client_params p;

        memset(&p, 0, sizeof(p));
        p.as = &as;
        p.identity = b->ids[i % o.n_ids];
        p.anchors = b->anchors;
        p.kx = o.kx;
        p.group = o.group;
        rc = ck_client_as_pkinit(&p, &creds, NULL);
    }
    ck_creds_free(creds);
    return rc;
}

/* ---- one process's clients ------------------------------------------------------------------ */

/* Clients waiting for a retry, per try number: each list is in deadline order because every
 * client of try k waited the same timeout. */
struct fifo {
    long *v;
    size_t head, len, cap;
};

static int
fifo_push(struct fifo *f, long x)
{
    if (f->len == f->cap) {
        size_t nc = f->cap ? f->cap * 2 : 1024;
        long *nv = malloc(nc * sizeof(*nv));

        if (nv == NULL)
            return -1;
        for (size_t k = 0; k < f->len; k++)
            nv[k] = f->v[(f->head + k) % f->cap];
        free(f->v);
        f->v = nv;
        f->head = 0;
        f->cap = nc;
    }
    f->v[(f->head + f->len) % f->cap] = x;
    f->len++;
    return 0;
}

/* After the send numbered step (0-based) of an exchange: which wait (FIFO) and how long. */
static int
wait_after(int step, int *q)
{
    int pass = step / o.n_kdcs, last = step % o.n_kdcs == o.n_kdcs - 1;

    *q = last ? 1 + pass : 0;
    return o.timeout_ms + (last ? (o.timeout_ms * 2) << pass : 0);
}

static void
src_addr(long i, struct sockaddr_in *sin)
{
    memset(sin, 0, sizeof(*sin));
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl((127u << 24) | ((uint32_t)(1 + i / 65536) << 16) |
                                 ((uint32_t)(i / 256 % 256) << 8) | (uint32_t)(i % 256));
}

static int
client_send(struct client *c, long gi, const struct sockaddr_in *kdcs, int epfd, long li)
{
    const struct sockaddr_in *k = &kdcs[(gi + c->step) % o.n_kdcs];

    if (c->fd < 0) {
        struct sockaddr_in src;
        struct epoll_event ev;

        c->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        src_addr(gi, &src);
        if (c->fd < 0 || bind(c->fd, (struct sockaddr *)&src, sizeof(src)) != 0) {
            fprintf(stderr, "storm_load: socket/bind for client %ld: %s\n", gi, strerror(errno));
            return -1;
        }
        memset(&ev, 0, sizeof(ev));
        ev.events = EPOLLIN;
        ev.data.u64 = (uint64_t)li;
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0)
            return -1;
    }
    /* Unconnected: a late answer from any KDC of the list is still taken. */
    if (sendto(c->fd, c->req, c->req_len, 0, (const struct sockaddr *)k, sizeof(*k)) < 0 &&
        errno != EAGAIN && errno != ENOBUFS)
        return -1;
    c->tries++;
    c->step++;
    return 0;
}

/* Sends (a new exchange after the last wait of the previous one) and queues the next wait. */
static int
client_step(struct client *c, long gi, const struct sockaddr_in *kdcs, int epfd, long li,
            struct fifo *waits, int64_t now)
{
    int q, ms;

    if (c->step >= MAX_PASS * o.n_kdcs)
        c->step = 0;  /* given up: the device starts over */
    if (client_send(c, gi, kdcs, epfd, li) != 0)
        return -1;
    ms = wait_after(c->step - 1, &q);
    c->next_ns = now + (int64_t)ms * 1000000;
    return fifo_push(&waits[q], li);
}

/* Runs this process's clients (global indexes proc, proc + P, ...) from start_ns; writes the
 * outcomes to fd. */
static int
child_run(int proc, int nprocs, int ready_fd, int go_fd, int out_fd)
{
    struct sockaddr_in kdcs[MAX_KDCS];
    struct builder b;
    struct client *cl = NULL;
    struct fifo retry[N_WAITS];
    long n = 0, next_start = 0, active = 0, finished = 0;
    int epfd = -1, rc = 1;
    int64_t start_ns, end_ns;
    double prep0 = proc_cpu_s();
    char msg[64];

    memset(retry, 0, sizeof(retry));
    for (int k = 0; k < o.n_kdcs; k++)
        if (parse_hostport(o.kdcs[k], &kdcs[k]) != 0)
            return 1;
    if (builder_init(&b) != 0)
        return 1;
    for (long gi = proc; gi < o.clients; gi += nprocs)
        n++;
    if ((cl = calloc((size_t)(n > 0 ? n : 1), sizeof(*cl))) == NULL)
        goto out;
    for (long li = 0; li < n; li++) {
        struct capture cap = {NULL, 0};

        build_or_run(&b, proc + li * nprocs, NULL, &cap);
        if (cap.req == NULL) {
            fprintf(stderr, "storm_load: building request %ld: %s\n", proc + li * nprocs,
                    ck_error_context());
            goto out;
        }
        cl[li].req = cap.req;
        cl[li].req_len = cap.len;
        cl[li].fd = -1;
        cl[li].out.first_ms = cl[li].out.done_ms = -1;
    }
    if ((epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
        goto out;
    snprintf(msg, sizeof(msg), "%.3f\n", proc_cpu_s() - prep0);
    if (write(ready_fd, msg, strlen(msg)) < 0)
        goto out;
    if (read(go_fd, &start_ns, sizeof(start_ns)) != (ssize_t)sizeof(start_ns))
        goto out;
    {
        struct timespec at = {(time_t)(start_ns / 1000000000), (long)(start_ns % 1000000000)};

        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, NULL) == EINTR)
            ;
    }
    end_ns = start_ns + (int64_t)(o.deadline * 1e9);
    for (long li = 0; li < n; li++) {
        long gi = proc + li * nprocs;
        cl[li].start_ns = o.calibrate > 0 ? 0
                                           : start_ns + (int64_t)((double)gi / (double)o.clients *
                                                                  o.ramp * 1e9);
    }
    while (finished < n) {
        struct epoll_event evs[256];
        int64_t now = mono_ns(), wake = end_ns;
        int ne, limit = o.calibrate > 0 ? (o.calibrate + nprocs - 1) / nprocs : 0;

        if (now >= end_ns)
            break;
        /* Starts due (or, calibrating, as many as fit in flight). */
        while (next_start < n && (limit > 0 ? active < limit : cl[next_start].start_ns <= now)) {
            struct client *c = &cl[next_start];

            c->out.first_ms = (float)((double)(now - start_ns) / 1e6);
            if (client_step(c, proc + next_start * nprocs, kdcs, epfd, next_start, retry, now) != 0)
                goto out;
            next_start++;
            active++;
        }
        if (next_start < n && limit == 0 && cl[next_start].start_ns < wake)
            wake = cl[next_start].start_ns;
        /* Retries due. */
        for (int k = 0; k < N_WAITS; k++) {
            struct fifo *f = &retry[k];

            /* One entry per waiting client (the one its last send queued): in deadline order
             * within a FIFO, since all its entries waited as long. */
            while (f->len > 0) {
                long li = f->v[f->head];
                struct client *c = &cl[li];

                if (c->fd < 0) {  /* answered */
                    f->head = (f->head + 1) % f->cap;
                    f->len--;
                    continue;
                }
                if (c->next_ns > now) {
                    if (c->next_ns < wake)
                        wake = c->next_ns;
                    break;
                }
                f->head = (f->head + 1) % f->cap;
                f->len--;
                if (client_step(c, proc + li * nprocs, kdcs, epfd, li, retry, now) != 0)
                    goto out;
            }
        }
        ne = epoll_wait(epfd, evs, 256,
                        (int)((wake - now) / 1000000 > 0 ? (wake - now) / 1000000 : 0) + 0);
        now = mono_ns();
        for (int e = 0; e < ne; e++) {
            long li = (long)evs[e].data.u64;
            struct client *c = &cl[li];
            uint8_t buf[65536];
            ssize_t r;

            if (c->fd < 0)
                continue;
            while ((r = recv(c->fd, buf, sizeof(buf), 0)) > 0) {
                if (buf[0] == 0x7e) {
                    /* error-code [6] Int32: found by its tag in the first bytes. */
                    for (ssize_t p = 0; p + 4 < r && p < 64; p++)
                        if (buf[p] == 0xa6 && buf[p + 2] == 0x02 && buf[p + 3] == 0x01) {
                            c->out.err = (uint16_t)(buf[p + 4] + 1);
                            break;
                        }
                    if (c->out.err == 0)
                        c->out.err = 1000;
                }
                c->out.ok = buf[0] == 0x6b;
                c->out.done_ms = (float)((double)(now - start_ns) / 1e6);
                c->out.tries = (uint8_t)(c->tries < 255 ? c->tries : 255);
                epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                c->fd = -1;
                active--;
                finished++;
                break;
            }
        }
    }
    for (long li = 0; li < n; li++) {
        if (cl[li].fd >= 0)
            close(cl[li].fd);
        cl[li].out.tries = (uint8_t)(cl[li].tries < 255 ? cl[li].tries : 255);
    }
    {
        double cpu = proc_cpu_s();

        if (write(out_fd, &n, sizeof(n)) != (ssize_t)sizeof(n) ||
            write(out_fd, &cpu, sizeof(cpu)) != (ssize_t)sizeof(cpu))
            goto out;
        for (long li = 0; li < n; li++)
            if (write(out_fd, &cl[li].out, sizeof(cl[li].out)) != (ssize_t)sizeof(cl[li].out))
                goto out;
    }
    rc = 0;
out:
    if (cl != NULL)
        for (long li = 0; li < n; li++)
            free(cl[li].req);
    free(cl);
    for (int k = 0; k < N_WAITS; k++)
        free(retry[k].v);
    if (epfd >= 0)
        close(epfd);
    builder_free(&b);
    return rc;
}

/* ---- the parent ------------------------------------------------------------------------------ */

static int
cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;

    return x < y ? -1 : x > y;
}

static int
read_all(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;

    while (len > 0) {
        ssize_t r = read(fd, p, len);
        if (r <= 0)
            return -1;
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

static void
usage(void)
{
    fprintf(stderr,
            "usage: storm_load --kdc HOST:PORT [--kdc ...] --realm R --client NAME\n"
            "                  (--mode keytab --password PW | --mode pkinit --identity ID... "
            "--anchors PEM [--kx p256|p384|modp2048|rsa])\n"
            "                  [--clients N] [--ramp S] [--timeout-ms MS]\n"
            "                  [--deadline S] [--procs P] [--kdc-pid PID]... [--calibrate K] "
            "[--label L]\n");
}

static int
parse_args(int argc, char **argv)
{
    static const struct option lo[] = {
        {"kdc", required_argument, NULL, 'k'},      {"realm", required_argument, NULL, 'r'},
        {"client", required_argument, NULL, 'c'},   {"mode", required_argument, NULL, 'm'},
        {"password", required_argument, NULL, 'p'}, {"identity", required_argument, NULL, 'i'},
        {"anchors", required_argument, NULL, 'a'},  {"kx", required_argument, NULL, 'x'},
        {"clients", required_argument, NULL, 'n'},  {"ramp", required_argument, NULL, 'R'},
        {"timeout-ms", required_argument, NULL, 't'},
        {"deadline", required_argument, NULL, 'd'}, {"procs", required_argument, NULL, 'P'},
        {"kdc-pid", required_argument, NULL, 'K'},  {"calibrate", required_argument, NULL, 'C'},
        {"label", required_argument, NULL, 'l'},    {NULL, 0, NULL, 0},
    };
    int64_t v;
    int c;

    o.clients = 100000;
    o.ramp = 10;
    o.deadline = 300;
    o.timeout_ms = 1000;
    o.kx = CK_PKINIT_KX_DH;
    o.group = CK_PKINIT_GROUP_P256;
    o.label = "cablekey";
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'k':
            if (o.n_kdcs >= MAX_KDCS)
                return -1;
            o.kdcs[o.n_kdcs++] = optarg;
            break;
        case 'r': o.realm = optarg; break;
        case 'c': o.client = optarg; break;
        case 'm':
            if (strcmp(optarg, "pkinit") == 0)
                o.pkinit = true;
            else if (strcmp(optarg, "keytab") != 0)
                return -1;
            break;
        case 'p': o.password = optarg; break;
        case 'i':
            if (o.n_ids >= MAX_IDS)
                return -1;
            o.ids[o.n_ids++] = optarg;
            break;
        case 'a': o.anchors = optarg; break;
        case 'x':
            if (strcmp(optarg, "p256") == 0) {
                o.kx = CK_PKINIT_KX_DH;
                o.group = CK_PKINIT_GROUP_P256;
            } else if (strcmp(optarg, "p384") == 0) {
                o.kx = CK_PKINIT_KX_DH;
                o.group = CK_PKINIT_GROUP_P384;
            } else if (strcmp(optarg, "modp2048") == 0) {
                o.kx = CK_PKINIT_KX_DH;
                o.group = CK_PKINIT_GROUP_MODP2048;
            } else if (strcmp(optarg, "rsa") == 0) {
                o.kx = CK_PKINIT_KX_RSA;
                o.group = CK_PKINIT_GROUP_NONE;
            } else {
                return -1;
            }
            break;
        case 'n':
            if (ck_parse_int64(optarg, 1, MAX_CLIENTS, &v) != 0)
                return -1;
            o.clients = (long)v;
            break;
        case 'R': o.ramp = atof(optarg); break;
        case 't':
            if (ck_parse_int64(optarg, 1, INT_MAX, &v) != 0)
                return -1;
            o.timeout_ms = (int)v;
            break;
        case 'd': o.deadline = atof(optarg); break;
        case 'P':
            if (ck_parse_int64(optarg, 0, INT_MAX, &v) != 0)
                return -1;
            o.procs = (int)v;
            break;
        case 'K':
            if (ck_parse_int64(optarg, 1, INT_MAX, &v) != 0 ||
                proc_pids_add(&o.kdc_pids, (int)v) != 0)
                return -1;
            break;
        case 'C':
            if (ck_parse_int64(optarg, 0, INT_MAX, &v) != 0)
                return -1;
            o.calibrate = (int)v;
            break;
        case 'l': o.label = optarg; break;
        default: return -1;
        }
    }
    if (optind != argc || o.n_kdcs == 0 || o.realm == NULL || o.client == NULL ||
        o.clients < 1 || o.clients > MAX_CLIENTS || o.ramp < 0 || o.deadline <= 0 ||
        o.timeout_ms < 10 || o.procs < 0 || o.procs > 256 ||
        o.calibrate < 0 || (o.pkinit ? (o.n_ids == 0 || o.anchors == NULL) : o.password == NULL))
        return -1;
    if (o.procs == 0)
        o.procs = (int)((o.clients + PER_PROC - 1) / PER_PROC);
    if (o.procs > o.clients)
        o.procs = (int)o.clients;
    return 0;
}

/* One real exchange with the first KDC, so that a wrong setup fails with the KDC's error. */
static int
check_setup(void)
{
    struct builder b;
    const char *kdcs[1] = {o.kdcs[0]};
    ck_kdc_transport t;
    int rc;

    if (builder_init(&b) != 0)
        return -1;
    memset(&t, 0, sizeof(t));
    t.kdcs = kdcs;
    t.n_kdcs = 1;
    rc = build_or_run(&b, 0, &t, NULL);
    if (rc != 0)
        fprintf(stderr, "storm_load: check exchange with %s: %s\n", o.kdcs[0],
                ck_error_context());
    builder_free(&b);
    return rc;
}

int
main(int argc, char **argv)
{
    int ready[2], go[2], outp[256][2];
    pid_t pids[256];
    int nprocs, status = 1;
    double prep_max = 0, gen_cpu = 0;
    unsigned long long k0 = 0, k1 = 0, m0b = 0, m0t = 0, m1b = 0, m1t = 0;
    int64_t start_ns;
    float *lat = NULL, last_ms = 0;
    long ok = 0, errors = 0, unanswered = 0, sends = 0, nlat = 0, errcode[256] = {0};
    long tp = sysconf(_SC_CLK_TCK);

    if (parse_args(argc, argv) != 0) {
        usage();
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (check_setup() != 0)
        return 1;
    nprocs = o.procs;
    if (pipe(ready) != 0 || pipe(go) != 0)
        return 1;
    for (int p = 0; p < nprocs; p++) {
        if (pipe(outp[p]) != 0)
            return 1;
        if ((pids[p] = fork()) == 0) {
            close(ready[0]);
            close(go[1]);
            close(outp[p][0]);
            _exit(child_run(p, nprocs, ready[1], go[0], outp[p][1]));
        }
        close(outp[p][1]);
    }
    close(ready[1]);
    close(go[0]);
    /* Wait until every process has built its requests. */
    for (int p = 0; p < nprocs; p++) {
        char line[64];
        size_t got = 0;

        while (got < sizeof(line) - 1) {
            ssize_t r = read(ready[0], line + got, 1);
            if (r <= 0)
                break;
            if (line[got++] == '\n')
                break;
        }
        if (got == 0) {
            fprintf(stderr, "storm_load: a client process failed while building requests\n");
            goto out;
        }
        line[got] = '\0';
        if (atof(line) > prep_max)
            prep_max = atof(line);
    }
    for (int p = 0; p < o.kdc_pids.n; p++)
        proc_pids_add_children(&o.kdc_pids);
    proc_pids_ticks(&o.kdc_pids, &k0);
    proc_machine_ticks(&m0b, &m0t);
    start_ns = mono_ns() + 200000000;  /* every process is waiting on the pipe by then */
    for (int p = 0; p < nprocs; p++)
        if (write(go[1], &start_ns, sizeof(start_ns)) != (ssize_t)sizeof(start_ns))
            goto out;
    if ((lat = malloc((size_t)o.clients * sizeof(*lat))) == NULL)
        goto out;
    for (int p = 0; p < nprocs; p++) {
        long n;
        double cpu;

        if (read_all(outp[p][0], &n, sizeof(n)) != 0 || read_all(outp[p][0], &cpu, sizeof(cpu)))
            continue;
        gen_cpu += cpu;
        for (long i = 0; i < n; i++) {
            struct outcome oc;

            if (read_all(outp[p][0], &oc, sizeof(oc)) != 0)
                break;
            sends += oc.tries;
            if (oc.done_ms < 0) {
                unanswered++;
                continue;
            }
            if (oc.done_ms > last_ms)
                last_ms = oc.done_ms;
            if (oc.ok) {
                ok++;
                lat[nlat++] = oc.done_ms - oc.first_ms;
            } else {
                errors++;
                errcode[oc.err < 256 ? oc.err : 255]++;
            }
        }
        if (p == 0) {
            /* The KDC's CPU up to the end of the storm (process 0 ends with the others). */
        }
    }
    proc_pids_ticks(&o.kdc_pids, &k1);
    proc_machine_ticks(&m1b, &m1t);
    for (int p = 0; p < nprocs; p++) {
        int st;
        waitpid(pids[p], &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fprintf(stderr, "storm_load: client process %d failed\n", p);
    }
    qsort(lat, (size_t)nlat, sizeof(*lat), cmp_float);
    {
        double kdc_cpu = (double)(k1 - k0) / (double)tp;
        double wall = (double)(mono_ns() - start_ns) / 1e9;
        double busy = (double)(m1b - m0b) / (double)tp;
        double other = wall > 0 ? (busy - kdc_cpu) / wall : 0;
        float p50 = nlat ? lat[(size_t)(0.50 * (double)(nlat - 1))] : 0;
        float p99 = nlat ? lat[(size_t)(0.99 * (double)(nlat - 1))] : 0;
        float mx = nlat ? lat[nlat - 1] : 0;

        printf("storm_load: %s %s: %ld clients over %.1f s from %d processes (requests built in "
               "%.1f s of CPU each)\n",
               o.label, o.pkinit ? "pkinit" : "keytab", o.clients, o.ramp, nprocs, prep_max);
        printf("  tickets %ld, errors %ld, unanswered %ld; all held after %.2f s; per client "
               "p50 %.0f ms, p99 %.0f ms, max %.0f ms\n",
               ok, errors, unanswered, last_ms / 1000.0, p50, p99, mx);
        printf("  datagrams sent %ld (%ld retries); KDC CPU %.1f s = %.0f us per ticket; "
               "generator CPU %.1f s; machine busy %.1f cores, of it others' and the generator's "
               "%.2f\n",
               sends, sends - o.clients, kdc_cpu, ok ? kdc_cpu * 1e6 / (double)ok : 0, gen_cpu,
               wall > 0 ? busy / wall : 0, other);
        for (int e = 1; e < 256; e++)
            if (errcode[e] > 0)
                printf("  KRB-ERROR %d: %ld\n", e == 255 ? -1 : e - 1, errcode[e]);
        printf("RESULT label=%s mode=%s clients=%ld ok=%ld errors=%ld unanswered=%ld ramp_s=%.1f "
               "all_s=%.2f p50_ms=%.0f p99_ms=%.0f max_ms=%.0f sends=%ld retries=%ld "
               "kdc_cpu_s=%.2f kdc_cpu_us_per_ok=%.0f gen_cpu_s=%.1f other_cores=%.2f "
               "prep_s=%.1f\n",
               o.label, o.pkinit ? "pkinit" : "keytab", o.clients, ok, errors, unanswered,
               o.ramp, last_ms / 1000.0, p50, p99, mx, sends, sends - o.clients, kdc_cpu,
               ok ? kdc_cpu * 1e6 / (double)ok : 0, gen_cpu, other, prep_max);
    }
    status = ok == o.clients ? 0 : 1;
out:
    free(lat);
    return status;
}
