#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cablekey/error.h"
#include "cablekey/util.h"

/* Symlink hops followed by CK_WRITE_PRESERVE, as the kernel's own limit (ELOOP). */
#define CK_SYMLINK_MAX 40

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

/* Length of the directory part of path, trailing slash excluded ("" -> 0, "/x" -> 1 kept). */
static size_t
dir_len(const char *path)
{
    const char *slash = strrchr(path, '/');

    if (slash == NULL)
        return 0;
    return slash == path ? 1 : (size_t)(slash - path);
}

/* Follows symlinks from path to the name that is finally written (which need not exist: a
 * dangling link names the file to create). Relative link targets are relative to the link's
 * directory. *out is malloc'd. */
static int
resolve_links(const char *path, char **out)
{
    char *cur = strdup(path);
    int ret = 0;

    *out = NULL;
    if (cur == NULL)
        return ck_error_set(CK_ERR_NOMEM, "%s", path);
    for (int hops = 0;; hops++) {
        struct stat st;
        char target[PATH_MAX];
        ssize_t n;

        if (lstat(cur, &st) != 0 || !S_ISLNK(st.st_mode))
            break;
        if (hops >= CK_SYMLINK_MAX) {
            ret = ck_error_set(CK_ERR_IO, "%s: too many levels of symbolic links", path);
            goto out;
        }
        n = readlink(cur, target, sizeof(target) - 1);
        if (n < 0 || (size_t)n >= sizeof(target) - 1) {
            ret = ck_error_set(CK_ERR_IO, "%s: readlink: %s", path,
                               n < 0 ? strerror(errno) : "target too long");
            goto out;
        }
        target[n] = '\0';
        if (target[0] == '/' || dir_len(cur) == 0) {
            free(cur);
            cur = strdup(target);
        } else {
            size_t d = dir_len(cur);
            char *next = malloc(d + 1 + (size_t)n + 1);
            if (next != NULL) {
                memcpy(next, cur, d);
                next[d] = '/';
                memcpy(next + d + 1, target, (size_t)n + 1);
            }
            free(cur);
            cur = next;
        }
        if (cur == NULL) {
            ret = ck_error_set(CK_ERR_NOMEM, "%s", path);
            goto out;
        }
    }
    *out = cur;
    cur = NULL;
out:
    free(cur);
    return ret;
}

static void
sync_dir_of(const char *path)
{
    size_t d = dir_len(path);
    char *dir = d == 0 ? strdup(".") : strndup(path, d);
    int dfd;

    if (dir == NULL)
        return;
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    free(dir);
}

int
ck_file_write_atomic(const char *path, const void *data, size_t len, unsigned flags)
{
    static const char suffix[] = ".tmp.XXXXXX";
    bool replace = (flags & (CK_WRITE_REPLACE | CK_WRITE_PRESERVE)) != 0;
    bool have_old = false;
    struct stat old;
    char *target = NULL, *tmp = NULL;
    size_t tlen;
    int fd = -1, ret;

    if (path == NULL || *path == '\0')
        return ck_error_set(CK_ERR_INVAL, "output file: no name");
    if (flags & CK_WRITE_PRESERVE) {
        if ((ret = resolve_links(path, &target)) != 0)
            return ret;
    } else if ((target = strdup(path)) == NULL) {
        return ck_error_set(CK_ERR_NOMEM, "%s", path);
    }
    /* lstat: without PRESERVE a symlink at path is replaced by the file, never written through. */
    if (lstat(target, &old) == 0) {
        if (!replace) {
            ret = ck_error_set(CK_ERR_EXISTS, "%s already exists", path);
            goto out;
        }
        if ((flags & CK_WRITE_PRESERVE) && !S_ISREG(old.st_mode)) {
            ret = ck_error_set(CK_ERR_IO, "%s: exists and is not a regular file", path);
            goto out;
        }
        have_old = S_ISREG(old.st_mode) && (flags & CK_WRITE_PRESERVE);
    } else if (errno != ENOENT) {
        ret = ck_error_set(CK_ERR_IO, "%s: %s", path, strerror(errno));
        goto out;
    }
    tlen = strlen(target);
    if ((tmp = malloc(tlen + sizeof(suffix))) == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "%s", path);
        goto out;
    }
    memcpy(tmp, target, tlen);
    memcpy(tmp + tlen, suffix, sizeof(suffix));
    /* mkstemp creates the file 0600 whatever the umask. */
    if ((fd = mkstemp(tmp)) < 0) {
        ret = ck_error_set(CK_ERR_IO, "%s: %s", path, strerror(errno));
        free(tmp);
        tmp = NULL;
        goto out;
    }
    if (have_old) {
        /* Owner first: chown clears set-id bits, which the chmod then restores. */
        if ((old.st_uid != geteuid() || old.st_gid != getegid()) &&
            fchown(fd, old.st_uid, old.st_gid) != 0) {
            ret = ck_error_set(CK_ERR_PERM,
                               "%s: cannot keep its owner %u:%u (%s); nothing was changed",
                               path, (unsigned)old.st_uid, (unsigned)old.st_gid,
                               strerror(errno));
            goto out;
        }
        if (fchmod(fd, old.st_mode & 07777) != 0) {
            ret = ck_error_set(CK_ERR_IO, "%s: chmod: %s", path, strerror(errno));
            goto out;
        }
    } else if (fchmod(fd, 0600) != 0) {
        ret = ck_error_set(CK_ERR_IO, "%s: chmod: %s", path, strerror(errno));
        goto out;
    }
    if ((ret = ck_fd_write_all(fd, data, len)) != 0) {
        ret = ck_error_set(ret, "%s: %s", path, ck_error_context());
        goto out;
    }
    if (fsync(fd) != 0) {
        ret = ck_error_set(CK_ERR_IO, "%s: fsync: %s", path, strerror(errno));
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        ret = ck_error_set(CK_ERR_IO, "%s: close: %s", path, strerror(errno));
        goto out;
    }
    fd = -1;
    if (replace) {
        if (rename(tmp, target) != 0) {
            ret = ck_error_set(CK_ERR_IO, "%s: rename: %s", path, strerror(errno));
            goto out;
        }
    } else {
        /* link() refuses an existing name atomically, where rename would replace it. */
        if (link(tmp, target) != 0) {
            ret = ck_error_set(errno == EEXIST ? CK_ERR_EXISTS : CK_ERR_IO, "%s: %s", path,
                               errno == EEXIST ? "already exists" : strerror(errno));
            goto out;
        }
        unlink(tmp);
    }
    free(tmp);
    tmp = NULL;
    sync_dir_of(target);
    ret = 0;
out:
    if (fd >= 0)
        close(fd);
    if (tmp != NULL) {
        unlink(tmp);
        free(tmp);
    }
    free(target);
    return ret;
}
