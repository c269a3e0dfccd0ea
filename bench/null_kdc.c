/* null_kdc: a UDP responder that answers every datagram with a fixed 700-byte "AS-REP" (first byte
 * 0x6b, the rest filler) and does no Kerberos work at all. Driving it with
 * `kdc_loadgen --skip-check` measures the generator's own ceiling and CPU cost per exchange, i.e.
 * how much of the shared CPUs the measurement itself takes.
 *
 * Usage: null_kdc --listen 127.0.0.1:PORT [--duration S]   (stops by itself after S seconds)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cablekey/util.h"

#define NK_BATCH 64
#define NK_REPLY_LEN 700

int
main(int argc, char **argv)
{
    static uint8_t reply[NK_REPLY_LEN], bufs[NK_BATCH][2048];
    struct mmsghdr in[NK_BATCH], out[NK_BATCH];
    struct iovec iov_in[NK_BATCH], iov_out[NK_BATCH];
    struct sockaddr_in peers[NK_BATCH], sin;
    const char *listen = NULL, *colon;
    int64_t duration = 30, port, deadline;
    char host[64];
    int fd;

    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--listen") == 0)
            listen = argv[i + 1];
        else if (strcmp(argv[i], "--duration") != 0 ||
                 ck_parse_int64(argv[i + 1], 1, 3600, &duration) != 0)
            listen = NULL, i = argc;
    }
    if (listen == NULL || (colon = strrchr(listen, ':')) == NULL ||
        (size_t)(colon - listen) >= sizeof(host) || ck_parse_int64(colon + 1, 1, 65535, &port)) {
        fprintf(stderr, "usage: null_kdc --listen IP:PORT [--duration S]\n");
        return 2;
    }
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
        fprintf(stderr, "null_kdc: bad address %s\n", host);
        return 2;
    }
    if ((fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0 ||
        bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
        perror("null_kdc: bind");
        return 1;
    }
    memset(reply, 0xa5, sizeof(reply));
    reply[0] = 0x6b;
    deadline = ck_monotonic_ms() + duration * 1000;
    while (ck_monotonic_ms() < deadline) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int n;

        if (poll(&pfd, 1, 200) <= 0)
            continue;
        for (int i = 0; i < NK_BATCH; i++) {
            iov_in[i] = (struct iovec){bufs[i], sizeof(bufs[i])};
            in[i].msg_hdr = (struct msghdr){.msg_name = &peers[i], .msg_namelen = sizeof(peers[i]),
                                            .msg_iov = &iov_in[i], .msg_iovlen = 1};
        }
        n = recvmmsg(fd, in, NK_BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0)
            continue;
        for (int i = 0; i < n; i++) {
            iov_out[i] = (struct iovec){reply, sizeof(reply)};
            out[i].msg_hdr = (struct msghdr){.msg_name = &peers[i],
                                             .msg_namelen = in[i].msg_hdr.msg_namelen,
                                             .msg_iov = &iov_out[i], .msg_iovlen = 1};
        }
        if (sendmmsg(fd, out, (unsigned)n, 0) < 0 && errno != EAGAIN)
            perror("null_kdc: sendmmsg");
    }
    close(fd);
    return 0;
}
