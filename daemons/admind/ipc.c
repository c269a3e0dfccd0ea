/* Framing on the front/back socketpair: lib/admin/ipc.c. */
#include "admin/admin_int.h"
#include "admind.h"

int
admind_ipc_send(int fd, const char *buf, size_t len)
{
    return ck_admin_ipc_send(fd, buf, len, ADMIND_IPC_MAX_REPLY);
}

int
admind_ipc_recv(int fd, size_t max, char **out, size_t *out_len)
{
    return ck_admin_ipc_recv(fd, max, out, out_len);
}
