/* MIT FILE credential cache, version 4 (0x0504), write side only, so MIT klist/kvno can use the
 * tickets the library obtained. Layout (all big-endian):
 *   u16 0x0504, u16 header length (12), header tag 1 (deltatime: u16 tag, u16 len 8, i32 sec,
 *   i32 usec), default principal, then credentials:
 *   principal = u32 name type, u32 #components, counted realm, counted components
 *   cred = client, server, keyblock (u16 enctype, counted key), u32 authtime/starttime/endtime/
 *          renew_till, u8 is_skey, u32 ticket flags, u32 #addresses (0), u32 #authdata (0),
 *          counted ticket, counted second ticket (empty)
 *   counted = u32 length + bytes. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cablekey/client.h"
#include "cablekey/error.h"
#include "cablekey/util.h"

#define CCACHE_MAX (1u << 20)

static int
put_counted(ck_writer *w, const void *p, size_t len)
{
    int rc;

    if (len > UINT32_MAX)
        return ck_error_set(CK_ERR_LIMIT, "ccache field too long");
    if ((rc = ck_writer_u32be(w, (uint32_t)len)) != 0)
        return rc;
    return ck_writer_bytes(w, p, len);
}

static int
put_principal(ck_writer *w, const ck_principal *p)
{
    int rc;

    if ((rc = ck_writer_u32be(w, (uint32_t)p->name_type)) != 0 ||
        (rc = ck_writer_u32be(w, (uint32_t)p->n_components)) != 0 ||
        (rc = put_counted(w, p->realm, strlen(p->realm))) != 0)
        return rc;
    for (size_t i = 0; i < p->n_components; i++) {
        if ((rc = put_counted(w, p->components[i], strlen(p->components[i]))) != 0)
            return rc;
    }
    return 0;
}

/* Kerberos times in the ccache are 32-bit. */
static uint32_t
t32(int64_t t)
{
    if (t < 0)
        return 0;
    return t > UINT32_MAX ? UINT32_MAX : (uint32_t)t;
}

static int
put_creds(ck_writer *w, const ck_creds *c)
{
    int rc;

    if ((rc = put_principal(w, c->client)) != 0 || (rc = put_principal(w, c->server)) != 0 ||
        (rc = ck_writer_u16be(w, (uint16_t)c->session_key.enctype)) != 0 ||
        (rc = put_counted(w, c->session_key.contents, c->session_key.length)) != 0 ||
        (rc = ck_writer_u32be(w, t32(c->authtime))) != 0 ||
        (rc = ck_writer_u32be(w, t32(c->starttime))) != 0 ||
        (rc = ck_writer_u32be(w, t32(c->endtime))) != 0 ||
        (rc = ck_writer_u32be(w, t32(c->renew_till))) != 0 ||
        (rc = ck_writer_u8(w, 0)) != 0 ||
        (rc = ck_writer_u32be(w, c->flags)) != 0 ||
        (rc = ck_writer_u32be(w, 0)) != 0 ||
        (rc = ck_writer_u32be(w, 0)) != 0 ||
        (rc = put_counted(w, c->ticket, c->ticket_len)) != 0 ||
        (rc = put_counted(w, NULL, 0)) != 0)
        return rc;
    return 0;
}

int
ck_ccache_write(const char *path, const ck_creds *const *creds, size_t n)
{
    ck_writer w;
    char tmp[4096];
    int fd = -1, rc;
    bool created = false;

    ck_writer_init(&w, CCACHE_MAX, true);
    if (path == NULL || creds == NULL || n == 0 || creds[0] == NULL)
        return ck_error_set(CK_ERR_INVAL, "ccache: nothing to write");
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmpXXXXXX", path) >= sizeof(tmp))
        return ck_error_set(CK_ERR_LIMIT, "ccache: path too long");
    if ((rc = ck_writer_u16be(&w, 0x0504)) != 0 ||
        (rc = ck_writer_u16be(&w, 12)) != 0 ||
        (rc = ck_writer_u16be(&w, 1)) != 0 ||
        (rc = ck_writer_u16be(&w, 8)) != 0 ||
        (rc = ck_writer_u32be(&w, 0)) != 0 ||
        (rc = ck_writer_u32be(&w, 0)) != 0 ||
        (rc = put_principal(&w, creds[0]->client)) != 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        if (creds[i] != NULL && (rc = put_creds(&w, creds[i])) != 0)
            goto out;
    }
    /* mkstemp creates the file 0600, which a ccache (it holds session keys) must be. */
    if ((fd = mkstemp(tmp)) < 0) {
        rc = ck_error_set(CK_ERR_IO, "ccache %s: %s", path, strerror(errno));
        goto out;
    }
    created = true;
    if ((rc = ck_fd_write_all(fd, w.data, w.len)) != 0) {
        rc = ck_error_set(rc, "ccache %s: %s", path, ck_error_context());
        goto out;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        fd = -1;
        rc = ck_error_set(CK_ERR_IO, "ccache %s: %s", path, strerror(errno));
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        rc = ck_error_set(CK_ERR_IO, "ccache %s: rename: %s", path, strerror(errno));
        goto out;
    }
    created = false;
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (created)
        unlink(tmp);
    ck_writer_free(&w);
    return rc;
}
