/* ksv_forge: hostile and replayed group rekey datagrams for tests/interop/t_ksv_alarms.sh.
 *
 *   ksv_forge forge GROUP_ID EPOCH DEGREE CAPACITY OUT
 *       a well-formed rekey datagram (lkh_rekey_pack) for the group: real wraps of a revoke in a
 *       full tree of its own of the group's shape (degree, capacity: `cablekey ksv groups`), so
 *       that its leaf range covers every member, signed with a fresh Ed25519 key (not the
 *       KSV's): members must take it for theirs and then refuse its signature (SIGN_FAILED)
 *   ksv_forge send IN GROUP:PORT IFADDR [LEN]
 *       sends the bytes of IN (only the first LEN with LEN) to the multicast group through the
 *       interface with address IFADDR (a truncated copy: MALFORMED_PACKET; a captured datagram
 *       sent again: a replay)
 *   ksv_forge capture GROUP:PORT IFADDR OUT SECONDS
 *       joins the group, writes the first rekey datagram that arrives within SECONDS to OUT and
 *       prints "captured group=G epoch=E bytes=N"; exit 1 on timeout
 * IPv4 only (the tests' groups are 239.x on loopback in a network namespace). */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cablekey/error.h"
#include "cablekey/lkh.h"
#include "cablekey/lkh_rekey.h"
#include "cablekey/util.h"

#define FORGE_MAX_FILE 65536

static int
usage(void)
{
    fprintf(stderr, "usage: ksv_forge forge GROUP_ID EPOCH DEGREE CAPACITY OUT\n"
                    "       ksv_forge send IN GROUP:PORT IFADDR [LEN]\n"
                    "       ksv_forge capture GROUP:PORT IFADDR OUT SECONDS\n");
    return 2;
}

static int
fail(const char *what, int err)
{
    const char *ctx = ck_error_context();

    fprintf(stderr, "ksv_forge: %s: %s\n", what, (ctx && *ctx) ? ctx : ck_strerror(err));
    return 1;
}

static int
parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    int64_t v;

    if (ck_parse_int64(s, 0, max > INT64_MAX ? INT64_MAX : (int64_t)max, &v) != 0)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

static int
parse_group(const char *s, struct sockaddr_in *sa)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    uint64_t port;

    memset(sa, 0, sizeof(*sa));
    if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    if (inet_pton(AF_INET, host, &sa->sin_addr) != 1 || parse_u64(colon + 1, 65535, &port) != 0 ||
        port == 0)
        return -1;
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    return 0;
}

static int
write_file(const char *path, const uint8_t *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    int ok;

    if (f == NULL) {
        fprintf(stderr, "ksv_forge: %s: %s\n", path, strerror(errno));
        return 1;
    }
    ok = fwrite(buf, 1, len, f) == len;
    ok = (fclose(f) == 0) && ok;
    if (!ok) {
        fprintf(stderr, "ksv_forge: %s: write failed\n", path);
        return 1;
    }
    return 0;
}

static int
do_forge(char **argv)
{
    struct lkh_tree *t = NULL;
    struct lkh_signer *signer = NULL;
    struct lkh_batch_result res;
    struct lkh_rekey_out out;
    struct lkh_rekey_params p;
    uint8_t gkey[LKH_KEY_LEN];
    uint64_t gid, epoch, degree, capacity;
    uint32_t leave = 0, version = 0;
    int ret, rc = 1;

    memset(&res, 0, sizeof(res));
    memset(&out, 0, sizeof(out));
    if (parse_u64(argv[0], UINT32_MAX, &gid) != 0 || parse_u64(argv[1], INT64_MAX, &epoch) != 0 ||
        parse_u64(argv[2], LKH_MAX_DEGREE, &degree) != 0 || degree < 2 ||
        parse_u64(argv[3], 1u << 16, &capacity) != 0 || capacity < 2)
        return usage();
    /* Real wraps of a revoke in a full tree of the group's shape: the datagram is well-formed in
     * every field and serves every leaf; only the keys and the signer are not the KSV's. */
    if ((ret = lkh_tree_new((uint32_t)degree, (uint32_t)capacity, &t)) != 0 ||
        (ret = lkh_tree_populate(t, (uint32_t)capacity)) != 0 ||
        (ret = lkh_batch(t, &leave, 1, 0, &res)) != 0 ||
        (ret = lkh_group_key(t, gkey, &version)) != 0) {
        rc = fail("tree", ret);
        goto out;
    }
    ck_memzero(gkey, sizeof(gkey));
    if ((ret = lkh_signer_generate(&signer)) != 0) {
        rc = fail("signer", ret);
        goto out;
    }
    memset(&p, 0, sizeof(p));
    p.group_id = (uint32_t)gid;
    p.epoch = epoch;
    p.root_version = version;
    p.degree = lkh_tree_degree(t);
    p.height = lkh_tree_height(t);
    if ((ret = lkh_rekey_pack(&p, res.wraps, res.n_wraps, signer, &out)) != 0) {
        rc = fail("pack", ret);
        goto out;
    }
    if (out.n < 1) {
        fprintf(stderr, "ksv_forge: pack gave no datagram\n");
        goto out;
    }
    rc = write_file(argv[4], out.dgrams[0], out.lens[0]);
    if (rc == 0)
        printf("forged group=%" PRIu64 " epoch=%" PRIu64 " root_version=%" PRIu32
               " wraps=%zu datagrams=%zu bytes=%zu\n", gid, epoch, version, res.n_wraps, out.n,
               out.lens[0]);
out:
    lkh_rekey_out_clear(&out);
    lkh_batch_result_clear(&res);
    lkh_signer_free(signer);
    lkh_tree_free(t);
    return rc;
}

static int
mcast_socket(const char *ifaddr, struct in_addr *ifa)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);

    if (fd < 0 || inet_pton(AF_INET, ifaddr, ifa) != 1) {
        fprintf(stderr, "ksv_forge: socket or interface address %s\n", ifaddr);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static int
do_send(int argc, char **argv)
{
    static uint8_t buf[FORGE_MAX_FILE];
    struct sockaddr_in to;
    struct in_addr ifa;
    uint64_t lim = FORGE_MAX_FILE;
    unsigned char ttl = 1;
    size_t len;
    FILE *f;
    int fd, rc = 1;

    if (parse_group(argv[1], &to) != 0 || (argc > 3 && parse_u64(argv[3], FORGE_MAX_FILE, &lim)))
        return usage();
    if ((f = fopen(argv[0], "rb")) == NULL) {
        fprintf(stderr, "ksv_forge: %s: %s\n", argv[0], strerror(errno));
        return 1;
    }
    len = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    if (len > lim)
        len = (size_t)lim;
    if ((fd = mcast_socket(argv[2], &ifa)) < 0)
        return 1;
    if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &ifa, sizeof(ifa)) != 0 ||
        setsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof(ttl)) != 0) {
        fprintf(stderr, "ksv_forge: multicast options: %s\n", strerror(errno));
        goto out;
    }
    if (sendto(fd, buf, len, 0, (struct sockaddr *)&to, sizeof(to)) != (ssize_t)len) {
        fprintf(stderr, "ksv_forge: sendto %s: %s\n", argv[1], strerror(errno));
        goto out;
    }
    printf("sent bytes=%zu to=%s\n", len, argv[1]);
    rc = 0;
out:
    close(fd);
    return rc;
}

static int
do_capture(char **argv)
{
    static uint8_t buf[FORGE_MAX_FILE];
    struct sockaddr_in grp;
    struct ip_mreq mreq;
    struct lkh_rekey_view v;
    struct in_addr ifa;
    uint64_t secs;
    int fd, one = 1, rc = 1;
    time_t end;

    if (parse_group(argv[0], &grp) != 0 || parse_u64(argv[3], 3600, &secs) != 0)
        return usage();
    if ((fd = mcast_socket(argv[1], &ifa)) < 0)
        return 1;
    /* The members are bound to the same group and port: share it whichever option they use. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    memset(&mreq, 0, sizeof(mreq));
    mreq.imr_multiaddr = grp.sin_addr;
    mreq.imr_interface = ifa;
    if (bind(fd, (struct sockaddr *)&grp, sizeof(grp)) != 0 ||
        setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq, sizeof(mreq)) != 0) {
        fprintf(stderr, "ksv_forge: join %s: %s\n", argv[0], strerror(errno));
        goto out;
    }
    printf("listening %s\n", argv[0]);
    fflush(stdout);
    end = time(NULL) + (time_t)secs;
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        time_t now = time(NULL);
        ssize_t n;

        if (now >= end) {
            fprintf(stderr, "ksv_forge: no rekey datagram on %s within %" PRIu64 " s\n", argv[0],
                    secs);
            goto out;
        }
        if (poll(&pfd, 1, (int)(end - now) * 1000) <= 0)
            continue;
        if ((n = recv(fd, buf, sizeof(buf), 0)) <= 0)
            continue;
        memset(&v, 0, sizeof(v));
        if (lkh_rekey_parse(buf, (size_t)n, &v) != 0)
            continue;
        rc = write_file(argv[2], buf, (size_t)n);
        if (rc == 0)
            printf("captured group=%" PRIu32 " epoch=%" PRIu64 " bytes=%zd\n", v.group_id,
                   v.epoch, n);
        lkh_rekey_view_clear(&v);
        break;
    }
out:
    close(fd);
    return rc;
}

int
main(int argc, char **argv)
{
    if (argc == 7 && strcmp(argv[1], "forge") == 0)
        return do_forge(argv + 2);
    if (argc >= 5 && argc <= 6 && strcmp(argv[1], "send") == 0)
        return do_send(argc - 2, argv + 2);
    if (argc == 6 && strcmp(argv[1], "capture") == 0)
        return do_capture(argv + 2);
    return usage();
}
