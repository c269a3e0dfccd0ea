/* MIT keytab format 0x0502: "05 02", then entries, each
 *   int32 size (negative: a hole of -size bytes; 0: end of data)
 *   uint16 component count (realm excluded), uint16-counted realm, uint16-counted components,
 *   uint32 name type, uint32 timestamp, uint8 kvno, uint16 enctype, uint16-counted key,
 *   optional uint32 kvno (if at least 4 bytes remain in the entry; 0 means "use the 8-bit one").
 * All big-endian. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cablekey/error.h"
#include "cablekey/keytab.h"
#include "cablekey/util.h"

int
ck_keytab_new(ck_keytab **out)
{
    *out = calloc(1, sizeof(**out));
    if (*out == NULL)
        return ck_error_set(CK_ERR_NOMEM, "keytab");
    return 0;
}

void
ck_keytab_free(ck_keytab *kt)
{
    if (kt == NULL)
        return;
    for (size_t i = 0; i < kt->n_entries; i++) {
        ck_principal_free(kt->entries[i].principal);
        ck_key_clear(&kt->entries[i].key);
    }
    ck_free_secret(kt->entries, kt->capacity * sizeof(*kt->entries));
    free(kt);
}

/* Takes ownership of principal. */
static int
append(ck_keytab *kt, ck_principal *principal, uint32_t kvno, uint32_t timestamp,
       const ck_key *key)
{
    ck_keytab_entry *ne;
    size_t n = kt->n_entries;

    if (n >= CK_KEYTAB_MAX_ENTRIES) {
        ck_principal_free(principal);
        return ck_error_set(CK_ERR_LIMIT, "keytab: more than %d entries", CK_KEYTAB_MAX_ENTRIES);
    }
    if (n == kt->capacity) {
        /* Grow geometrically (hostile files must not make this quadratic), by copying so the
         * old key bytes can be wiped (realloc would leave them behind). */
        size_t cap = kt->capacity ? kt->capacity * 2 : 8;
        ne = calloc(cap, sizeof(*ne));
        if (ne == NULL) {
            ck_principal_free(principal);
            return ck_error_set(CK_ERR_NOMEM, "keytab");
        }
        if (n > 0)
            memcpy(ne, kt->entries, n * sizeof(*ne));
        ck_free_secret(kt->entries, kt->capacity * sizeof(*ne));
        kt->entries = ne;
        kt->capacity = cap;
    }
    ne = kt->entries;
    ne[n].principal = principal;
    ne[n].kvno = kvno;
    ne[n].timestamp = timestamp;
    ne[n].key = *key;
    kt->n_entries = n + 1;
    return 0;
}

int
ck_keytab_add(ck_keytab *kt, const ck_principal *principal, uint32_t kvno, uint32_t timestamp,
              const ck_key *key)
{
    ck_principal *copy = NULL;
    int ret;

    if (key->length > CK_KEY_MAX || key->length > UINT16_MAX)
        return ck_error_set(CK_ERR_INVAL, "keytab: key too long");
    if (key->enctype < 0 || key->enctype > UINT16_MAX)
        return ck_error_set(CK_ERR_INVAL, "keytab: enctype %d does not fit", (int)key->enctype);
    if ((ret = ck_principal_copy(principal, &copy)) != 0)
        return ret;
    if (timestamp == 0) {
        int64_t now = 0;
        ck_now(&now, NULL);
        timestamp = (uint32_t)now;
    }
    return append(kt, copy, kvno, timestamp, key);
}

const ck_keytab_entry *
ck_keytab_find(const ck_keytab *kt, const ck_principal *principal, uint32_t kvno,
               int32_t enctype)
{
    const ck_keytab_entry *best = NULL;

    for (size_t i = 0; i < kt->n_entries; i++) {
        const ck_keytab_entry *e = &kt->entries[i];
        if (!ck_principal_equal(e->principal, principal))
            continue;
        if (enctype != 0 && e->key.enctype != enctype)
            continue;
        if (kvno != 0) {
            if (e->kvno == kvno)
                return e;
            continue;
        }
        if (best == NULL || e->kvno > best->kvno)
            best = e;
    }
    return best;
}

static int
read_counted(ck_reader *r, const uint8_t **p, uint16_t *len)
{
    int ret;

    if ((ret = ck_reader_u16be(r, len)) != 0)
        return ret;
    return ck_reader_bytes(r, *len, p);
}

/* Decodes one entry body (the bytes after the size field) and appends it. Entries we cannot
 * represent (key longer than CK_KEY_MAX) are dropped rather than refused, as other readers do
 * with enctypes they do not know. */
static int
decode_entry(const uint8_t *data, size_t len, ck_keytab *kt)
{
    ck_principal *p = NULL;
    ck_reader r;
    const uint8_t *b = NULL;
    uint16_t ncomp = 0, blen = 0, enctype = 0, klen = 0;
    uint32_t name_type = 0, timestamp = 0, kvno32 = 0;
    uint8_t kvno8 = 0;
    ck_key key;
    int ret;

    memset(&key, 0, sizeof(key));
    ck_reader_init(&r, data, len);
    if ((ret = ck_reader_u16be(&r, &ncomp)) != 0 || (ret = read_counted(&r, &b, &blen)) != 0)
        goto bad;
    if (ncomp == 0 || ncomp > CK_PRINCIPAL_MAX_COMPONENTS) {
        ret = ck_error_set(CK_ERR_DECODE, "keytab: %u name components", ncomp);
        goto out;
    }
    if ((ret = ck_principal_new((const char *)b, blen, CK_NT_PRINCIPAL, &p)) != 0)
        goto bad;
    for (uint16_t i = 0; i < ncomp; i++) {
        if ((ret = read_counted(&r, &b, &blen)) != 0 ||
            (ret = ck_principal_add_component(p, (const char *)b, blen)) != 0)
            goto bad;
    }
    if ((ret = ck_reader_u32be(&r, &name_type)) != 0 ||
        (ret = ck_reader_u32be(&r, &timestamp)) != 0 || (ret = ck_reader_u8(&r, &kvno8)) != 0 ||
        (ret = ck_reader_u16be(&r, &enctype)) != 0 || (ret = read_counted(&r, &b, &klen)) != 0)
        goto bad;
    if (ck_reader_remaining(&r) >= 4 && (ret = ck_reader_u32be(&r, &kvno32)) != 0)
        goto bad;
    p->name_type = (int32_t)name_type;
    if (klen > CK_KEY_MAX) {
        /* A key type we cannot hold (none of the enctypes we know); skip the entry. */
        ret = 0;
        goto out;
    }
    key.enctype = enctype;
    key.length = klen;
    if (klen > 0)
        memcpy(key.contents, b, klen);
    ret = append(kt, p, kvno32 != 0 ? kvno32 : kvno8, timestamp, &key);
    p = NULL;
    if (ret == CK_ERR_LIMIT)
        ret = ck_error_set(CK_ERR_DECODE, "keytab: more than %d entries", CK_KEYTAB_MAX_ENTRIES);
    goto out;
bad:
    /* Every failure inside an entry is malformed input, whatever the helper reported. */
    ret = ck_error_set(CK_ERR_DECODE, "keytab: malformed entry (%s)", ck_error_context());
out:
    ck_memzero(&key, sizeof(key));
    ck_principal_free(p);
    return ret;
}

int
ck_keytab_decode(const uint8_t *data, size_t len, ck_keytab **out)
{
    ck_keytab *kt = NULL;
    ck_reader r;
    uint16_t version = 0;
    int ret;

    *out = NULL;
    if (len > CK_KEYTAB_MAX_FILE)
        return ck_error_set(CK_ERR_DECODE, "keytab: larger than %u bytes", CK_KEYTAB_MAX_FILE);
    ck_reader_init(&r, data, len);
    if (ck_reader_u16be(&r, &version) != 0)
        return ck_error_set(CK_ERR_DECODE, "keytab: empty file");
    if (version != CK_KEYTAB_VERSION) {
        if (version == 0x0501)
            return ck_error_set(CK_ERR_UNSUPPORTED, "keytab: version 0x0501 (host byte order) "
                                "is not supported");
        return ck_error_set(CK_ERR_DECODE, "keytab: bad version 0x%04x", version);
    }
    if ((ret = ck_keytab_new(&kt)) != 0)
        return ret;
    while (ck_reader_remaining(&r) > 0) {
        const uint8_t *body = NULL;
        uint32_t usize = 0;
        int32_t size;
        size_t n;

        if (ck_reader_u32be(&r, &usize) != 0) {
            ret = ck_error_set(CK_ERR_DECODE, "keytab: truncated entry size");
            goto out;
        }
        size = (int32_t)usize;
        if (size == 0)
            break; /* MIT writes nothing after this; treat it as the end */
        if (size == INT32_MIN) {
            ret = ck_error_set(CK_ERR_DECODE, "keytab: bad entry size");
            goto out;
        }
        n = (size_t)(size < 0 ? -size : size);
        if (n > CK_KEYTAB_MAX_ENTRY) {
            ret = ck_error_set(CK_ERR_DECODE, "keytab: entry of %zu bytes", n);
            goto out;
        }
        if (ck_reader_bytes(&r, n, &body) != 0) {
            ret = ck_error_set(CK_ERR_DECODE, "keytab: truncated entry (%zu bytes declared)", n);
            goto out;
        }
        if (size < 0)
            continue; /* a hole left by a deleted entry */
        if ((ret = decode_entry(body, n, kt)) != 0)
            goto out;
    }
    *out = kt;
    kt = NULL;
out:
    ck_keytab_free(kt);
    return ret;
}

static int
write_counted(ck_writer *w, const char *s)
{
    size_t n = strlen(s);
    int ret;

    if (n > UINT16_MAX)
        return ck_error_set(CK_ERR_LIMIT, "keytab: string too long");
    if ((ret = ck_writer_u16be(w, (uint16_t)n)) != 0)
        return ret;
    return ck_writer_bytes(w, s, n);
}

static int
encode_entry(const ck_keytab_entry *e, ck_writer *w)
{
    const ck_principal *p = e->principal;
    int ret;

    if (p->n_components == 0 || p->n_components > CK_PRINCIPAL_MAX_COMPONENTS)
        return ck_error_set(CK_ERR_ENCODE, "keytab: principal without components");
    if (e->key.length > CK_KEY_MAX || e->key.enctype < 0 || e->key.enctype > UINT16_MAX)
        return ck_error_set(CK_ERR_ENCODE, "keytab: bad key");
    if ((ret = ck_writer_u16be(w, (uint16_t)p->n_components)) != 0 ||
        (ret = write_counted(w, p->realm)) != 0)
        return ret;
    for (size_t i = 0; i < p->n_components; i++) {
        if ((ret = write_counted(w, p->components[i])) != 0)
            return ret;
    }
    if ((ret = ck_writer_u32be(w, (uint32_t)p->name_type)) != 0 ||
        (ret = ck_writer_u32be(w, e->timestamp)) != 0 ||
        (ret = ck_writer_u8(w, (uint8_t)(e->kvno & 0xff))) != 0 ||
        (ret = ck_writer_u16be(w, (uint16_t)e->key.enctype)) != 0 ||
        (ret = ck_writer_u16be(w, (uint16_t)e->key.length)) != 0 ||
        (ret = ck_writer_bytes(w, e->key.contents, e->key.length)) != 0 ||
        /* The 32-bit kvno, as MIT writes it, so kvnos above 255 survive. */
        (ret = ck_writer_u32be(w, e->kvno)) != 0)
        return ret;
    return 0;
}

int
ck_keytab_encode(const ck_keytab *kt, uint8_t **out, size_t *out_len)
{
    ck_writer w, ew;
    int ret;

    *out = NULL;
    *out_len = 0;
    ck_writer_init(&w, CK_KEYTAB_MAX_FILE, true);
    ck_writer_init(&ew, CK_KEYTAB_MAX_ENTRY, true);
    if ((ret = ck_writer_u16be(&w, CK_KEYTAB_VERSION)) != 0)
        goto out;
    for (size_t i = 0; i < kt->n_entries; i++) {
        ew.len = 0;
        if ((ret = encode_entry(&kt->entries[i], &ew)) != 0)
            goto out;
        if ((ret = ck_writer_u32be(&w, (uint32_t)ew.len)) != 0 ||
            (ret = ck_writer_bytes(&w, ew.data, ew.len)) != 0)
            goto out;
    }
    *out = ck_writer_take(&w, out_len);
    if (*out == NULL)
        ret = ck_error_set(CK_ERR_NOMEM, "keytab");
out:
    if (ew.data != NULL)
        ck_memzero(ew.data, ew.cap);
    ck_writer_free(&ew);
    ck_writer_free(&w);
    return ret;
}

int
ck_keytab_read(const char *path, ck_keytab **out)
{
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    struct stat st;
    int fd, ret = 0;

    *out = NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ck_error_set(errno == ENOENT ? CK_ERR_NOTFOUND : CK_ERR_IO, "keytab %s: %s", path,
                            strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ret = ck_error_set(CK_ERR_IO, "keytab %s: not a regular file", path);
        goto out;
    }
    if ((uint64_t)st.st_size > CK_KEYTAB_MAX_FILE) {
        ret = ck_error_set(CK_ERR_DECODE, "keytab %s: larger than %u bytes", path,
                           CK_KEYTAB_MAX_FILE);
        goto out;
    }
    /* One byte more than the size, so a file growing under us is noticed as too long. */
    cap = (size_t)st.st_size + 1;
    buf = malloc(cap);
    if (buf == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "keytab %s", path);
        goto out;
    }
    if ((ret = ck_fd_read_all(fd, buf, cap, &len)) != 0) {
        ret = ck_error_set(ret, "keytab %s: %s", path, ck_error_context());
        goto out;
    }
    if (len == cap) {
        ret = ck_error_set(CK_ERR_IO, "keytab %s: changed while reading", path);
        goto out;
    }
    ret = ck_keytab_decode(buf, len, out);
    if (ret != 0)
        ret = ck_error_set(ret, "keytab %s: %s", path, ck_error_context());
out:
    ck_free_secret(buf, cap);
    close(fd);
    return ret;
}

int
ck_keytab_write(const char *path, const ck_keytab *kt)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int ret;

    if ((ret = ck_keytab_encode(kt, &buf, &len)) != 0)
        return ret;
    /* A keytab a service reads through its group (0640 root:svc) or a symlink must stay so. */
    if ((ret = ck_file_write_atomic(path, buf, len, CK_WRITE_PRESERVE)) != 0)
        ret = ck_error_set(ret, "keytab %s", ck_error_context());
    ck_free_secret(buf, len);
    return ret;
}
