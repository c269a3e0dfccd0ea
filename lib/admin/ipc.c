/* Length-prefixed frames on a socketpair between the processes of one daemon (cablekey-admind
 * and cablekey-prov: front and back). Both ends treat a bad frame as fatal for the channel: the
 * peer is a sibling process, so garbage means it is broken or compromised. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin/admin_int.h"
#include "cablekey/error.h"
#include "cablekey/util.h"

int
ck_admin_ipc_send(int fd, const char *buf, size_t len, size_t max)
{
    uint8_t hdr[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
                      (uint8_t)len};
    int rc;

    if (len > max)
        return ck_error_set(CK_ERR_LIMIT, "ipc: frame of %zu bytes", len);
    if ((rc = ck_fd_write_all(fd, hdr, sizeof(hdr))) != 0 ||
        (rc = ck_fd_write_all(fd, buf, len)) != 0)
        return rc;
    return 0;
}

static int
read_exact(int fd, void *buf, size_t len, bool *eof_at_start)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n = read(fd, (uint8_t *)buf + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return ck_error_set(CK_ERR_IO, "ipc: read: %s", strerror(errno));
        if (n == 0) {
            if (got == 0 && eof_at_start != NULL) {
                *eof_at_start = true;
                return CK_ERR_NOTFOUND;
            }
            return ck_error_set(CK_ERR_PROTO, "ipc: truncated frame");
        }
        got += (size_t)n;
    }
    return 0;
}

int
ck_admin_ipc_recv(int fd, size_t max, char **out, size_t *out_len)
{
    uint8_t hdr[4];
    bool eof = false;
    size_t len;
    char *buf;
    int rc;

    *out = NULL;
    *out_len = 0;
    if ((rc = read_exact(fd, hdr, sizeof(hdr), &eof)) != 0)
        return eof ? CK_ERR_NOTFOUND : rc;
    len = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 | (size_t)hdr[2] << 8 | hdr[3];
    if (len > max)
        return ck_error_set(CK_ERR_PROTO, "ipc: frame of %zu bytes (limit %zu)", len, max);
    if ((buf = malloc(len + 1)) == NULL)
        return CK_ERR_NOMEM;
    if ((rc = read_exact(fd, buf, len, NULL)) != 0) {
        ck_free_secret(buf, len + 1);
        return rc;
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return 0;
}
