/* The blocking loop around the endpoint state machine, for the CLI: poll one UDP socket, feed
 * datagrams and timers with the wall clock. */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "cablekey/endpoint.h"
#include "cablekey/error.h"

#define RECV_BUF 65536
#define MAX_POLL_MS 1000           /* re-read the clock at least this often */

int64_t
ck_endpoint_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
ck_endpoint_run(ck_endpoint *ep, int fd, int64_t deadline_ms, ck_endpoint_done_fn done, void *arg)
{
    uint8_t buf[RECV_BUF];
    int rc;

    for (;;) {
        int64_t now = ck_endpoint_now_ms(), wait, wake = -1;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int n;

        if ((rc = ck_endpoint_on_timer(ep, now)) != 0)
            return rc;
        if (ck_endpoint_state(ep) == CK_ENDPOINT_FAILED)
            return ck_error_set(CK_ERR_TIMEOUT, "%s", ck_endpoint_failure(ep));
        if (done != NULL && done(ep, arg, now, &wake))
            return 0;
        if (deadline_ms > 0 && now >= deadline_ms)
            return ck_error_set(CK_ERR_TIMEOUT, "deadline reached");
        wait = ck_endpoint_next_timeout_ms(ep, now);
        if (wait < 0 || wait > MAX_POLL_MS)
            wait = MAX_POLL_MS;
        if (wake >= 0 && wake - now < wait)
            wait = wake > now ? wake - now : 0;
        if (deadline_ms > 0 && now + wait > deadline_ms)
            wait = deadline_ms - now;
        n = poll(&pfd, 1, (int)wait);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return ck_error_set(CK_ERR_IO, "poll: %s", strerror(errno));
        }
        /* Drain what is there: a burst of replies is handled before the next timer pass. */
        for (int i = 0; n > 0 && i < 64; i++) {
            struct sockaddr_storage from;
            socklen_t flen = sizeof(from);
            ssize_t got = recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from,
                                   &flen);
            if (got < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
                    errno == ECONNREFUSED)
                    break;
                return ck_error_set(CK_ERR_IO, "recvfrom: %s", strerror(errno));
            }
            if ((rc = ck_endpoint_on_datagram(ep, buf, (size_t)got, (struct sockaddr *)&from,
                                              flen, ck_endpoint_now_ms())) != 0)
                return rc;
        }
    }
}
