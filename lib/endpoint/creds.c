/* Where an endpoint's CMS ticket comes from: an MIT FILE ccache (read side; lib/krb/ccache.c
 * writes it) holding either the service ticket itself (PKINIT + kvno, or kinit -S) or a TGT, in
 * which case a TGS exchange runs against the KDCs of --kdc or of krb5.conf.
 *
 * ccache layout (big-endian): u16 version 0x0504 (what MIT and Heimdal write; older formats
 * differ in the keyblock and are refused), u16 header length and header tags, default principal,
 * then credentials until end of file:
 *   principal = u32 name type, u32 #components, counted realm, counted components
 *   cred = client, server, keyblock (u16 enctype, counted key), u32 authtime, starttime, endtime,
 *          renew_till, u8 is_skey, u32 flags, u32 #addresses {u16, counted}, u32 #authdata
 *          {u16, counted}, counted ticket, counted second ticket. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cablekey/ap.h"
#include "cablekey/endpoint.h"
#include "cablekey/error.h"
#include "cablekey/principal.h"
#include "cablekey/profile.h"
#include "cablekey/util.h"

#define CCACHE_MAX_FILE (1u << 20)
#define CCACHE_MAX_LIST 256            /* addresses or authdata entries in one credential */
#define CONF_REALM "X-CACHECONF:"

static int
get_counted(ck_reader *r, const uint8_t **p, uint32_t *len)
{
    int rc;

    if ((rc = ck_reader_u32be(r, len)) != 0)
        return rc;
    if (*len > ck_reader_remaining(r))
        return ck_error_set(CK_ERR_DECODE, "ccache: field longer than the file");
    return ck_reader_bytes(r, *len, p);
}

static int
get_principal(ck_reader *r, ck_principal **out)
{
    ck_principal *p = NULL;
    const uint8_t *s;
    uint32_t type, n, len;
    int rc;

    *out = NULL;
    if ((rc = ck_reader_u32be(r, &type)) != 0 || (rc = ck_reader_u32be(r, &n)) != 0 ||
        (rc = get_counted(r, &s, &len)) != 0)
        return rc;
    if (n > CK_PRINCIPAL_MAX_COMPONENTS)
        return ck_error_set(CK_ERR_LIMIT, "ccache: principal with %u components", n);
    /* A configuration entry's realm may be anything; a principal needs a non-empty one. */
    if ((rc = ck_principal_new(len > 0 ? (const char *)s : "-", len > 0 ? len : 1,
                               (int32_t)type, &p)) != 0)
        return rc;
    for (uint32_t i = 0; i < n; i++) {
        if ((rc = get_counted(r, &s, &len)) != 0 ||
            (rc = ck_principal_add_component(p, (const char *)s, len)) != 0) {
            ck_principal_free(p);
            return rc;
        }
    }
    *out = p;
    return 0;
}

static int
skip_list(ck_reader *r)
{
    const uint8_t *s;
    uint32_t n, len;
    uint16_t type;
    int rc;

    if ((rc = ck_reader_u32be(r, &n)) != 0)
        return rc;
    if (n > CCACHE_MAX_LIST)
        return ck_error_set(CK_ERR_LIMIT, "ccache: %u addresses or authdata entries", n);
    for (uint32_t i = 0; i < n; i++) {
        if ((rc = ck_reader_u16be(r, &type)) != 0 || (rc = get_counted(r, &s, &len)) != 0)
            return rc;
    }
    return 0;
}

static int
get_creds(ck_reader *r, ck_creds **out)
{
    ck_creds *c = NULL;
    const uint8_t *s;
    uint32_t len, t[4], flags;
    uint16_t enctype;
    uint8_t is_skey;
    int rc;

    *out = NULL;
    if ((c = calloc(1, sizeof(*c))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "ccache");
    if ((rc = get_principal(r, &c->client)) != 0 || (rc = get_principal(r, &c->server)) != 0 ||
        (rc = ck_reader_u16be(r, &enctype)) != 0 || (rc = get_counted(r, &s, &len)) != 0)
        goto out;
    c->session_key.enctype = enctype;
    if (len > CK_KEY_MAX) {
        rc = ck_error_set(CK_ERR_DECODE, "ccache: %u-byte session key", len);
        goto out;
    }
    c->session_key.length = len;
    memcpy(c->session_key.contents, s, len);
    for (int i = 0; i < 4; i++) {
        if ((rc = ck_reader_u32be(r, &t[i])) != 0)
            goto out;
    }
    if ((rc = ck_reader_u8(r, &is_skey)) != 0 || (rc = ck_reader_u32be(r, &flags)) != 0 ||
        (rc = skip_list(r)) != 0 || (rc = skip_list(r)) != 0 ||
        (rc = get_counted(r, &s, &len)) != 0)
        goto out;
    c->authtime = t[0];
    c->starttime = t[1] != 0 ? t[1] : t[0];
    c->endtime = t[2];
    c->renew_till = t[3];
    c->flags = flags;
    if ((c->ticket = ck_memdup(s, len)) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "ccache");
        goto out;
    }
    c->ticket_len = len;
    if ((rc = get_counted(r, &s, &len)) != 0)
        goto out;
    *out = c;
    c = NULL;
out:
    ck_creds_free(c);
    return rc;
}

void
ck_ccache_creds_free(ck_creds **creds, size_t n)
{
    if (creds == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        ck_creds_free(creds[i]);
    free(creds);
}

static int
read_file(const char *path, uint8_t **data, size_t *len)
{
    struct stat st;
    int fd, rc;

    *data = NULL;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return ck_error_set(CK_ERR_IO, "ccache %s: %s", path, strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return ck_error_set(CK_ERR_IO, "ccache %s: not a regular file", path);
    }
    if ((*data = malloc(CCACHE_MAX_FILE + 1)) == NULL) {
        close(fd);
        return ck_error_set(CK_ERR_NOMEM, "ccache");
    }
    rc = ck_fd_read_all(fd, *data, CCACHE_MAX_FILE + 1, len);
    close(fd);
    if (rc == 0 && *len > CCACHE_MAX_FILE)
        rc = ck_error_set(CK_ERR_LIMIT, "ccache %s: larger than %u bytes", path,
                          CCACHE_MAX_FILE);
    if (rc != 0) {
        ck_free_secret(*data, CCACHE_MAX_FILE + 1);
        *data = NULL;
    }
    return rc;
}

int
ck_ccache_parse(const uint8_t *data, size_t len, ck_creds ***creds, size_t *n,
                ck_principal **default_client)
{
    size_t count = 0;
    ck_creds **list = NULL;
    ck_principal *def = NULL;
    ck_reader r;
    uint16_t version, hlen;
    const uint8_t *skip;
    int rc;

    *creds = NULL;
    *n = 0;
    if (default_client != NULL)
        *default_client = NULL;
    if (len > CCACHE_MAX_FILE)
        return ck_error_set(CK_ERR_LIMIT, "ccache larger than %u bytes", CCACHE_MAX_FILE);
    ck_reader_init(&r, data, len);
    if ((rc = ck_reader_u16be(&r, &version)) != 0)
        goto out;
    if (version != 0x0504) {
        rc = ck_error_set(CK_ERR_UNSUPPORTED, "ccache format 0x%04x (0x0504 is read)", version);
        goto out;
    }
    if ((rc = ck_reader_u16be(&r, &hlen)) != 0 || (rc = ck_reader_bytes(&r, hlen, &skip)) != 0 ||
        (rc = get_principal(&r, &def)) != 0)
        goto out;
    if ((list = calloc(CK_CCACHE_MAX_CREDS, sizeof(*list))) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "ccache");
        goto out;
    }
    while (ck_reader_remaining(&r) > 0) {
        ck_creds *c;

        if ((rc = get_creds(&r, &c)) != 0)
            goto out;
        if (strcmp(c->server->realm, CONF_REALM) == 0) {
            ck_creds_free(c);
            continue;
        }
        if (count >= CK_CCACHE_MAX_CREDS) {
            ck_creds_free(c);
            rc = ck_error_set(CK_ERR_LIMIT, "ccache: more than %d credentials",
                              CK_CCACHE_MAX_CREDS);
            goto out;
        }
        list[count++] = c;
    }
    *creds = list;
    *n = count;
    list = NULL;
    if (default_client != NULL) {
        *default_client = def;
        def = NULL;
    }
    rc = 0;
out:
    ck_ccache_creds_free(list, count);
    ck_principal_free(def);
    return rc;
}

int
ck_ccache_read(const char *path, ck_creds ***creds, size_t *n, ck_principal **default_client)
{
    uint8_t *data = NULL;
    size_t len = 0;
    int rc;

    *creds = NULL;
    *n = 0;
    if (default_client != NULL)
        *default_client = NULL;
    if ((rc = read_file(path, &data, &len)) != 0)
        return rc;
    if ((rc = ck_ccache_parse(data, len, creds, n, default_client)) != 0)
        rc = ck_error_set(rc, "ccache %s: %s", path, ck_error_context());
    ck_free_secret(data, CCACHE_MAX_FILE + 1);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * krb5.conf
 */

static int
kdcs_from_file(const char *file, const char *realm, char *buf, size_t size, const char **kdcs,
               size_t max, size_t *n)
{
    struct ck_profile *prof = NULL;
    const char *vals[CK_KDC_MAX_KDCS];
    size_t got, used = 0;
    int rc;

    if ((rc = ck_profile_load(file, &prof)) != 0)
        return rc;
    got = ck_profile_get_all(prof, vals, CK_KDC_MAX_KDCS, "realms", realm, "kdc", NULL);
    if (got > CK_KDC_MAX_KDCS)
        got = CK_KDC_MAX_KDCS;
    *n = 0;
    for (size_t i = 0; i < got && *n < max; i++) {
        size_t l = strlen(vals[i]);
        if (l == 0)
            continue;
        if (used + l + 1 > size) {
            rc = ck_error_set(CK_ERR_LIMIT, "%s: KDC list too long", file);
            goto out;
        }
        memcpy(buf + used, vals[i], l + 1);
        kdcs[(*n)++] = buf + used;
        used += l + 1;
    }
    rc = *n > 0 ? 0 : CK_ERR_NOTFOUND;
out:
    ck_profile_free(prof);
    return rc;
}

int
ck_krb5conf_kdcs(const char *realm, char *buf, size_t size, const char **kdcs, size_t max,
                 size_t *n)
{
    const char *env = getenv("KRB5_CONFIG");
    const char *list = env != NULL && *env != '\0' ? env : "/etc/krb5.conf";
    char file[4096];

    *n = 0;
    /* MIT reads KRB5_CONFIG as a colon-separated list of files. */
    for (const char *p = list; *p != '\0';) {
        const char *colon = strchr(p, ':');
        size_t l = colon != NULL ? (size_t)(colon - p) : strlen(p);

        if (l > 0 && l < sizeof(file)) {
            memcpy(file, p, l);
            file[l] = '\0';
            if (access(file, R_OK) == 0 &&
                kdcs_from_file(file, realm, buf, size, kdcs, max, n) == 0)
                return 0;
        }
        p += l;
        if (*p == ':')
            p++;
    }
    return ck_error_set(CK_ERR_NOTFOUND, "no KDC for realm %s in %s", realm, list);
}

/* ---------------------------------------------------------------------------------------------
 * The CMS ticket.
 */

int
ck_endpoint_get_ticket(const char *ccache, const char *service, const ck_kdc_transport *t,
                       int64_t now, ck_creds **out, bool *from_tgs)
{
    ck_creds **list = NULL;
    ck_principal *def = NULL, *svc = NULL;
    const ck_creds *tgt = NULL;
    ck_kdc_transport tr;
    char kdcbuf[2048];
    const char *kdcs[CK_KDC_MAX_KDCS];
    size_t n = 0, n_kdcs = 0;
    int rc;

    *out = NULL;
    *from_tgs = false;
    if ((rc = ck_ccache_read(ccache, &list, &n, &def)) != 0)
        return rc;
    if ((rc = ck_principal_parse(service, def->realm, 0, &svc)) != 0) {
        rc = ck_error_set(rc, "service %s: %s", service, ck_error_context());
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (list[i]->endtime <= now || list[i]->starttime > now + 300)
            continue;
        if (ck_principal_equal(list[i]->server, svc)) {
            rc = ck_creds_copy(list[i], out);
            goto out;
        }
        if (tgt == NULL && ck_principal_is_tgs(list[i]->server, svc->realm) &&
            strcmp(list[i]->client->realm, svc->realm) == 0)
            tgt = list[i];
    }
    if (tgt == NULL) {
        rc = ck_error_set(CK_ERR_NOTFOUND, "ccache %s: no valid ticket for %s and no TGT for "
                                           "realm %s", ccache, service, svc->realm);
        goto out;
    }
    tr = *t;
    if (tr.n_kdcs == 0 && tr.send_fn == NULL) {
        if ((rc = ck_krb5conf_kdcs(svc->realm, kdcbuf, sizeof(kdcbuf), kdcs, CK_KDC_MAX_KDCS,
                                   &n_kdcs)) != 0)
            goto out;
        tr.kdcs = kdcs;
        tr.n_kdcs = n_kdcs;
    }
    {
        ck_tgs_params tp = {.tgt = tgt, .service = service, .transport = &tr};
        char *name = NULL;

        if ((rc = ck_principal_unparse(svc, 0, &name)) != 0)
            goto out;
        tp.service = name;
        rc = ck_client_tgs(&tp, out);
        free(name);
        if (rc != 0) {
            rc = ck_error_set(rc, "TGS for %s: %s", service, ck_error_context());
            goto out;
        }
    }
    *from_tgs = true;
out:
    ck_principal_free(svc);
    ck_principal_free(def);
    ck_ccache_creds_free(list, n);
    return rc;
}
