/* cablekey-prov's front <-> back messages: JSON objects in lib/admin's frames. The error
 * vocabulary of the API (CONTRACT: invalid_json, invalid_field, ..., internal) is built here so
 * that the front and the back answer alike. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "admin/admin_int.h"
#include "cablekey/error.h"
#include "cablekey/util.h"
#include "provd.h"

static int
send_json(int fd, const json_t *o, size_t max)
{
    char *text = NULL;
    size_t len = 0;
    int rc;

    if ((rc = ck_admin_json_dump(o, &text, &len)) != 0)
        return rc;
    rc = ck_admin_ipc_send(fd, text, len, max);
    ck_free_secret(text, len + 1); /* a console login carries a password */
    return rc;
}

static int
recv_json(int fd, size_t max, json_t **out)
{
    char *text = NULL;
    size_t len = 0;
    json_error_t jerr;
    int rc;

    *out = NULL;
    if ((rc = ck_admin_ipc_recv(fd, max, &text, &len)) != 0)
        return rc;
    *out = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    ck_free_secret(text, len + 1);
    if (*out == NULL || !json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return ck_error_set(CK_ERR_PROTO, "ipc: not a JSON object");
    }
    return 0;
}

int
prov_ipc_call(int fd, const json_t *req, json_t **reply)
{
    int rc;

    if ((rc = send_json(fd, req, PROV_IPC_MAX_REQUEST)) != 0)
        return rc;
    return recv_json(fd, PROV_IPC_MAX_REPLY, reply);
}

int
prov_ipc_next(int fd, json_t **req)
{
    return recv_json(fd, PROV_IPC_MAX_REQUEST, req);
}

int
prov_ipc_answer(int fd, json_t *reply)
{
    int rc;

    if (reply == NULL)
        reply = prov_error(500, "internal", NULL, "out of memory");
    if (reply == NULL)
        return CK_ERR_NOMEM;
    rc = send_json(fd, reply, PROV_IPC_MAX_REPLY);
    json_decref(reply);
    return rc;
}

json_t *
prov_error(int status, const char *code, const char *field, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    json_t *e;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if ((e = json_pack("{s:s,s:s}", "code", code, "message", msg)) == NULL)
        return NULL;
    if (field != NULL)
        json_object_set_new(e, "field", json_string(field));
    return json_pack("{s:i,s:o}", "status", status, "error", e);
}

char *
prov_json_text(const json_t *v, size_t flags)
{
    json_malloc_t m;
    json_free_t f;
    char *t = json_dumps(v, flags), *out;

    /* jansson's allocator may be the wiping one (ck_admin_json_secure_alloc): give its buffer
     * back to it, and the caller a plain malloc'd copy. */
    if (t == NULL)
        return NULL;
    out = strdup(t);
    json_get_alloc_funcs(&m, &f);
    f(t);
    return out;
}

int
prov_error_from_ck(int rc, const char **code)
{
    switch (rc) {
    case CK_ERR_INVAL:
    case CK_ERR_DECODE:
        *code = "invalid_field";
        return 400;
    case CK_ERR_LIMIT:
        *code = "too_large";
        return 413;
    case CK_ERR_NOTFOUND:
        *code = "not_found";
        return 404;
    case CK_ERR_EXISTS:
    case CK_ERR_INTEGRITY:
        *code = "conflict";
        return 409;
    case CK_ERR_POLICY:
        *code = "wrong_state";
        return 409;
    case CK_ERR_PERM:
        *code = "forbidden";
        return 403;
    default:
        *code = "internal";
        return 500;
    }
}

/* One byte of payload carries the descriptors: a stream socket needs data for the ancillary
 * part to travel with. */
int
prov_ipc_send_fds(int fd, const int *fds, size_t n)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * PROV_MAX_WORKERS)];
        struct cmsghdr align;
    } u;
    char byte = 'C';
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    struct cmsghdr *cm;
    ssize_t w;

    if (n == 0 || n > PROV_MAX_WORKERS)
        return ck_error_set(CK_ERR_INVAL, "ipc: %zu channels (1..%d)", n, PROV_MAX_WORKERS);
    memset(&u, 0, sizeof(u));
    mh.msg_control = u.buf;
    mh.msg_controllen = CMSG_SPACE(sizeof(int) * n);
    cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * n);
    memcpy(CMSG_DATA(cm), fds, sizeof(int) * n);
    do
        w = sendmsg(fd, &mh, MSG_NOSIGNAL);
    while (w < 0 && errno == EINTR);
    if (w != 1)
        return ck_error_set(CK_ERR_IO, "ipc: sending the channels: %s",
                            w < 0 ? strerror(errno) : "short write");
    return 0;
}

int
prov_ipc_recv_fds(int fd, int *fds, size_t n)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * PROV_MAX_WORKERS)];
        struct cmsghdr align;
    } u;
    char byte = 0;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    struct cmsghdr *cm;
    size_t got = 0;
    ssize_t r;

    if (n == 0 || n > PROV_MAX_WORKERS)
        return ck_error_set(CK_ERR_INVAL, "ipc: %zu channels (1..%d)", n, PROV_MAX_WORKERS);
    memset(&u, 0, sizeof(u));
    mh.msg_control = u.buf;
    mh.msg_controllen = sizeof(u.buf);
    do
        r = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
    while (r < 0 && errno == EINTR);
    if (r != 1 || byte != 'C')
        return ck_error_set(CK_ERR_PROTO, "ipc: no channels from the back process%s%s",
                            r < 0 ? ": " : "", r < 0 ? strerror(errno) : "");
    for (cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int one;
            memcpy(&one, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
            if (got < n)
                fds[got++] = one;
            else
                close(one);
        }
    }
    if (got != n || (mh.msg_flags & MSG_CTRUNC)) {
        for (size_t i = 0; i < got; i++)
            close(fds[i]);
        return ck_error_set(CK_ERR_PROTO, "ipc: %zu of %zu channels from the back process", got,
                            n);
    }
    return 0;
}
