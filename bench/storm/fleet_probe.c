/* fleet_probe: cache-invalidation latency of a KDC fleet (issue 9): how long after a write
 * (disabling a principal) every KDC refuses it.
 *
 * 1. One real AS exchange for --client with each --kdc (each must issue a ticket: the principal
 *    is then in every KDC's cache, the case that matters).
 * 2. Runs the write (the command after "--", e.g. `cablekey principal modify --db URI P
 *    --disallow-all-tix`) and waits for it; t0 = the moment it has exited (committed).
 * 3. Asks every KDC again and again (a fresh AS-REQ with PA-ENC-TIMESTAMP each time, so no
 *    lookaside cache can answer; one request in flight per KDC) until each answers with a
 *    KRB-ERROR, or --max-wait-ms passes.
 * Prints per KDC the ms from t0 to its first refusal and
 *   RESULT write_ms=… kdcs=… refused=… max_ms=… each_ms=a,b,c polls=…
 * Exit 0 if every KDC refused in time.
 *
 * Usage: fleet_probe --kdc HOST:PORT [--kdc ...] --realm R --client NAME --password PW
 *                    [--max-wait-ms MS] -- COMMAND [ARGS...] */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cablekey/client.h"
#include "cablekey/crypto.h"
#include "cablekey/error.h"
#include "cablekey/util.h"

#define MAX_KDCS 8

static const char *kdcs[MAX_KDCS];
static int n_kdcs;
static const char *realm, *client, *password;
static ck_key key;

static int64_t
mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

struct capture {
    uint8_t *req;
    size_t len;
};

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

/* An AS exchange (real != NULL) or the capture of a fresh first AS-REQ. */
static int
as_exchange(const ck_kdc_transport *real, struct capture *cap)
{
    static const int32_t et[] = {CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96};
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
    as.realm = realm;
    as.client = client;
    as.preauth_first = true;
    as.enctypes = et;
    as.n_enctypes = 1;
    as.transport = &t;
    rc = ck_client_as_key(&as, &key, &creds);
    ck_creds_free(creds);
    return rc;
}

static int
connect_udp(const char *hp)
{
    struct sockaddr_in sin;
    char host[64];
    const char *colon = strrchr(hp, ':');
    int64_t port;
    size_t n;
    int fd;

    if (colon == NULL || (n = (size_t)(colon - hp)) >= sizeof(host))
        return -1;
    memcpy(host, hp, n);
    host[n] = '\0';
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    if (ck_parse_int64(colon + 1, 1, 65535, &port) != 0)
        return -1;
    sin.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1)
        return -1;
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int
main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"kdc", required_argument, NULL, 'k'},      {"realm", required_argument, NULL, 'r'},
        {"client", required_argument, NULL, 'c'},   {"password", required_argument, NULL, 'p'},
        {"max-wait-ms", required_argument, NULL, 'm'}, {NULL, 0, NULL, 0},
    };
    int c, fds[MAX_KDCS], status = 1, polls = 0, refused = 0;
    double each[MAX_KDCS];
    long max_wait_ms = 10000;
    int64_t t0, w0;
    pid_t pid;
    int st;

    while ((c = getopt_long(argc, argv, "+", lo, NULL)) != -1) {
        switch (c) {
        case 'k':
            if (n_kdcs >= MAX_KDCS)
                return 2;
            kdcs[n_kdcs++] = optarg;
            break;
        case 'r': realm = optarg; break;
        case 'c': client = optarg; break;
        case 'p': password = optarg; break;
        case 'm': {
            int64_t v;

            if (ck_parse_int64(optarg, 1, 3600000, &v) != 0)
                return 2;
            max_wait_ms = (long)v;
            break;
        }
        default: return 2;
        }
    }
    if (n_kdcs == 0 || realm == NULL || client == NULL || password == NULL || optind >= argc) {
        fprintf(stderr, "usage: fleet_probe --kdc HOST:PORT [--kdc ...] --realm R --client NAME "
                        "--password PW [--max-wait-ms MS] -- COMMAND [ARGS...]\n");
        return 2;
    }
    {
        uint8_t salt[512];
        size_t rl = strlen(realm), sl = rl;

        if (rl >= sizeof(salt))
            return 2;
        memcpy(salt, realm, rl);
        for (const char *p = client; *p != '\0' && *p != '@' && sl < sizeof(salt); p++)
            if (*p != '/')
                salt[sl++] = (uint8_t)*p;
        if (ck_string_to_key(CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, password, strlen(password), salt,
                             sl, NULL, 0, &key) != 0)
            return 1;
    }
    for (int k = 0; k < n_kdcs; k++) {
        const char *one[1] = {kdcs[k]};
        ck_kdc_transport t;

        memset(&t, 0, sizeof(t));
        t.kdcs = one;
        t.n_kdcs = 1;
        if (as_exchange(&t, NULL) != 0) {
            fprintf(stderr, "fleet_probe: %s does not issue a ticket for %s before the write: %s\n",
                    kdcs[k], client, ck_error_context());
            goto out;
        }
        if ((fds[k] = connect_udp(kdcs[k])) < 0)
            goto out;
        each[k] = -1;
    }
    w0 = mono_ns();
    if ((pid = fork()) == 0) {
        execvp(argv[optind], &argv[optind]);
        _exit(127);
    }
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "fleet_probe: the write command failed\n");
        goto out;
    }
    t0 = mono_ns();
    while (refused < n_kdcs && mono_ns() - t0 < max_wait_ms * 1000000) {
        struct pollfd pf[MAX_KDCS];
        int np = 0, idx[MAX_KDCS];

        for (int k = 0; k < n_kdcs; k++) {
            struct capture cap = {NULL, 0};

            if (each[k] >= 0)
                continue;
            as_exchange(NULL, &cap);
            if (cap.req == NULL || send(fds[k], cap.req, cap.len, 0) < 0) {
                free(cap.req);
                goto out;
            }
            free(cap.req);
            pf[np].fd = fds[k];
            pf[np].events = POLLIN;
            idx[np++] = k;
        }
        polls++;
        /* Every reply of this round (200 ms at most: a lost datagram is asked again). */
        for (int left = np; left > 0;) {
            int r = poll(pf, (nfds_t)np, 200);

            if (r <= 0)
                break;
            for (int i = 0; i < np; i++) {
                uint8_t buf[65536];
                ssize_t n;

                if (!(pf[i].revents & POLLIN))
                    continue;
                pf[i].fd = -pf[i].fd - 1;  /* answered this round */
                left--;
                n = recv(fds[idx[i]], buf, sizeof(buf), 0);
                if (n > 0 && buf[0] == 0x7e && each[idx[i]] < 0) {
                    each[idx[i]] = (double)(mono_ns() - t0) / 1e6;
                    refused++;
                }
            }
        }
    }
    {
        double mx = 0;

        printf("fleet_probe: write took %.1f ms;", (double)(t0 - w0) / 1e6);
        for (int k = 0; k < n_kdcs; k++) {
            printf(" %s %s%.1f ms", kdcs[k], each[k] < 0 ? "never, > " : "",
                   each[k] < 0 ? (double)max_wait_ms : each[k]);
            if (each[k] > mx)
                mx = each[k];
        }
        printf("\nRESULT write_ms=%.1f kdcs=%d refused=%d max_ms=%.1f polls=%d each_ms=",
               (double)(t0 - w0) / 1e6, n_kdcs, refused, refused == n_kdcs ? mx : -1.0, polls);
        for (int k = 0; k < n_kdcs; k++)
            printf("%s%.1f", k ? "," : "", each[k]);
        printf("\n");
    }
    status = refused == n_kdcs ? 0 : 1;
out:
    ck_key_clear(&key);
    return status;
}
