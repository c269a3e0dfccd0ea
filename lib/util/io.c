#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "cablekey/error.h"
#include "cablekey/util.h"

int
ck_fd_write_all(int fd, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    size_t off = 0;

    while (off < len) {
        ssize_t n = write(fd, p + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return ck_error_set(CK_ERR_IO, "write: %s", n < 0 ? strerror(errno) : "no progress");
        off += (size_t)n;
    }
    return 0;
}

int
ck_fd_read_all(int fd, void *buf, size_t cap, size_t *len)
{
    unsigned char *p = buf;
    size_t off = 0;

    while (off < cap) {
        ssize_t n = read(fd, p + off, cap - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return ck_error_set(CK_ERR_IO, "read: %s", strerror(errno));
        if (n == 0)
            break;
        off += (size_t)n;
    }
    *len = off;
    return 0;
}
