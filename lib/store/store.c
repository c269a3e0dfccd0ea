/* Generic store layer: stash file, master-key encryption of long-term keys, record validation,
 * and dispatch to the backend. No SQL here.
 *
 * Key encryption: each key is stored as ck_encrypt(master key, CK_USAGE_DB_KEY, plaintext) with
 *   plaintext = "CKK1" | u16 name length | name | u32 kvno | u32 enctype | u16 key length | key
 * (big-endian). Binding the principal name, kvno and enctype inside the authenticated plaintext
 * means a key row copied onto another principal or kvno fails to load (CK_ERR_INTEGRITY) instead
 * of silently giving one principal another's key.
 *
 * Stash file (mode 0600): "CKMK" | u16 version | the master keys (kvno, enctype, key): one in
 * version 1, a counted list in version 2 (master-key rotation, mkey.c). The database keeps only
 * each master key's kvno and a check value: the master key encrypting
 * "cablekey master key check:" + realm, so a stash of another realm or a damaged one is refused.
 * Keys are encrypted under the realm's master kvno and decrypted under the kvno their row names. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cablekey/error.h"
#include "cablekey/principal.h"
#include "cablekey/store.h"
#include "cablekey/util.h"
#include "store/store_int.h"

#define STASH_MAGIC "CKMK"
#define STASH_VERSION 2
#define STASH_MAX_SIZE 1024
#define KEY_PLAIN_MAGIC "CKK1"
#define MKEY_CHECK_PREFIX "cablekey master key check:"
#define KEY_PLAIN_MAX (4 + 2 + CK_PRINCIPAL_MAX_TEXT + 4 + 4 + 2 + CK_KEY_MAX)
#define DEFAULT_MAX_LIFE (10 * 3600)
#define DEFAULT_MAX_RENEW (7 * 86400)

static int64_t
now_sec(void)
{
    int64_t s = 0;

    ck_now(&s, NULL);
    return s;
}

void
ck_store_princ_row_clear(struct ck_store_princ_row *row)
{
    if (row == NULL)
        return;
    for (size_t i = 0; i < row->n_keys; i++) {
        free(row->keys[i].salt);
        free(row->keys[i].key_enc);
    }
    free(row->keys);
    free(row->name);
    free(row->policy);
    memset(row, 0, sizeof(*row));
}

void
ck_store_mkey_row_clear(struct ck_store_mkey_row *row)
{
    if (row == NULL)
        return;
    free(row->check);
    memset(row, 0, sizeof(*row));
}

void
ck_store_device_row_clear(struct ck_store_device_row *row)
{
    if (row == NULL)
        return;
    free(row->mac);
    free(row->principal);
    free(row->comment);
    memset(row, 0, sizeof(*row));
}

/* ---- records ---- */

void
ck_db_keys_free(ck_db_key *keys, size_t n_keys)
{
    if (keys == NULL)
        return;
    for (size_t i = 0; i < n_keys; i++) {
        ck_key_clear(&keys[i].key);
        free(keys[i].salt);
    }
    ck_free_secret(keys, n_keys * sizeof(*keys));
}

void
ck_db_principal_free(ck_db_principal *p)
{
    if (p == NULL)
        return;
    ck_db_keys_free(p->keys, p->n_keys);
    free(p->name);
    free(p->policy);
    free(p);
}

int
ck_db_principal_new(const char *name, ck_db_principal **out)
{
    ck_db_principal *p;

    *out = NULL;
    p = calloc(1, sizeof(*p));
    if (p == NULL || (p->name = strdup(name)) == NULL) {
        free(p);
        return ck_error_set(CK_ERR_NOMEM, "principal record");
    }
    *out = p;
    return 0;
}

static int
copy_keys(const ck_db_key *src, size_t n, ck_db_key **out)
{
    ck_db_key *keys;

    *out = NULL;
    if (n == 0)
        return 0;
    keys = calloc(n, sizeof(*keys));
    if (keys == NULL)
        return ck_error_set(CK_ERR_NOMEM, "keys");
    for (size_t i = 0; i < n; i++) {
        keys[i] = src[i];
        keys[i].salt = NULL;
        if (src[i].salt_len > 0) {
            keys[i].salt = ck_memdup(src[i].salt, src[i].salt_len);
            if (keys[i].salt == NULL) {
                ck_db_keys_free(keys, n);
                return ck_error_set(CK_ERR_NOMEM, "keys");
            }
        }
    }
    *out = keys;
    return 0;
}

int
ck_db_principal_copy(const ck_db_principal *src, ck_db_principal **out)
{
    ck_db_principal *p = NULL;
    int ret;

    *out = NULL;
    if ((ret = ck_db_principal_new(src->name, &p)) != 0)
        return ret;
    p->attributes = src->attributes;
    p->max_life = src->max_life;
    p->max_renew = src->max_renew;
    p->expires = src->expires;
    p->pw_expires = src->pw_expires;
    p->kvno = src->kvno;
    p->created = src->created;
    p->modified = src->modified;
    p->last_pwd_change = src->last_pwd_change;
    p->lockout = src->lockout;
    if (src->policy != NULL && (p->policy = strdup(src->policy)) == NULL) {
        ck_db_principal_free(p);
        return ck_error_set(CK_ERR_NOMEM, "principal record");
    }
    if ((ret = copy_keys(src->keys, src->n_keys, &p->keys)) != 0) {
        ck_db_principal_free(p);
        return ret;
    }
    p->n_keys = src->n_keys;
    *out = p;
    return 0;
}

const ck_db_key *
ck_db_principal_find_key(const ck_db_principal *p, uint32_t kvno, int32_t enctype)
{
    if (p == NULL)
        return NULL;
    if (kvno == 0)
        kvno = p->kvno;
    for (size_t i = 0; i < p->n_keys; i++) {
        if (p->keys[i].kvno == kvno && p->keys[i].enctype == enctype)
            return &p->keys[i];
    }
    return NULL;
}

int
ck_db_keys_make(const char *name, const char *password, size_t password_len,
                const int32_t *enctypes, size_t n_enctypes, uint32_t kvno, ck_db_key **keys_out,
                size_t *n_out)
{
    ck_principal *pr = NULL;
    ck_db_key *keys = NULL;
    uint8_t *salt = NULL;
    size_t salt_len = 0;
    int ret;

    *keys_out = NULL;
    *n_out = 0;
    if (n_enctypes == 0 || n_enctypes > CK_STORE_MAX_ENCTYPES)
        return ck_error_set(CK_ERR_INVAL, "%zu enctypes (1..%d allowed)", n_enctypes,
                            CK_STORE_MAX_ENCTYPES);
    if ((ret = ck_principal_parse(name, NULL, CK_PRINCIPAL_PARSE_REQUIRE_REALM, &pr)) != 0)
        goto out;
    if ((ret = ck_principal_default_salt(pr, &salt, &salt_len)) != 0)
        goto out;
    keys = calloc(n_enctypes, sizeof(*keys));
    if (keys == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "keys");
        goto out;
    }
    for (size_t i = 0; i < n_enctypes; i++) {
        for (size_t j = 0; j < i; j++) {
            if (enctypes[j] == enctypes[i]) {
                ret = ck_error_set(CK_ERR_INVAL, "enctype %s listed twice",
                                   ck_enctype_name(enctypes[i]));
                goto out;
            }
        }
        keys[i].kvno = kvno;
        keys[i].enctype = enctypes[i];
        keys[i].salt_type = CK_SALTTYPE_NORMAL;
        keys[i].salt = ck_memdup(salt, salt_len);
        keys[i].salt_len = salt_len;
        if (keys[i].salt == NULL) {
            ret = ck_error_set(CK_ERR_NOMEM, "keys");
            goto out;
        }
        if (password != NULL)
            ret = ck_string_to_key(enctypes[i], password, password_len, salt, salt_len, NULL, 0,
                                   &keys[i].key);
        else
            ret = ck_random_key(enctypes[i], &keys[i].key);
        if (ret != 0)
            goto out;
    }
    *keys_out = keys;
    *n_out = n_enctypes;
    keys = NULL;
out:
    ck_db_keys_free(keys, n_enctypes);
    free(salt);
    ck_principal_free(pr);
    return ret;
}

/* ---- stash ---- */

/* Format 2 (master-key rotation): "CKMK" | u16 2 | u16 n | n x (u32 mkvno | u32 enctype |
 * u16 key length | key), kvno ascending, distinct. Format 1 (one key, no count) is still read. */
int
ck_store_stash_encode_int(const struct ck_store_keyring *ring, uint8_t **out, size_t *out_len)
{
    ck_writer w;
    int ret;

    *out = NULL;
    *out_len = 0;
    if (ring->n == 0 || ring->n > CK_STASH_MAX_KEYS)
        return ck_error_set(CK_ERR_LIMIT, "stash: %zu master keys (1..%d)", ring->n,
                            CK_STASH_MAX_KEYS);
    ck_writer_init(&w, STASH_MAX_SIZE, true);
    if ((ret = ck_writer_bytes(&w, STASH_MAGIC, 4)) != 0 ||
        (ret = ck_writer_u16be(&w, STASH_VERSION)) != 0 ||
        (ret = ck_writer_u16be(&w, (uint16_t)ring->n)) != 0)
        goto out;
    for (size_t i = 0; i < ring->n; i++) {
        const struct ck_store_mkey *m = &ring->keys[i];
        if ((ret = ck_writer_u32be(&w, m->kvno)) != 0 ||
            (ret = ck_writer_u32be(&w, (uint32_t)m->key.enctype)) != 0 ||
            (ret = ck_writer_u16be(&w, (uint16_t)m->key.length)) != 0 ||
            (ret = ck_writer_bytes(&w, m->key.contents, m->key.length)) != 0)
            goto out;
    }
    *out = ck_writer_take(&w, out_len);
    if (*out == NULL)
        ret = ck_error_set(CK_ERR_NOMEM, "stash");
out:
    ck_writer_free(&w);
    return ret;
}

static int
stash_write(const char *path, const struct ck_store_keyring *ring, unsigned flags)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int ret;

    if ((ret = ck_store_stash_encode_int(ring, &buf, &len)) != 0)
        goto out;
    if ((ret = ck_file_write_atomic(path, buf, len, flags)) != 0)
        ret = ck_error_set(ret, "stash %s", ck_error_context());
out:
    ck_free_secret(buf, len);
    return ret;
}

int
ck_store_stash_write_int(const char *path, const struct ck_store_keyring *ring)
{
    /* Replaces by rename: a KDC re-reading it sees the old set or the new one, never a mix. */
    return stash_write(path, ring, CK_WRITE_REPLACE);
}

void
ck_store_ring_clear_int(struct ck_store_keyring *ring)
{
    for (size_t i = 0; i < ring->n; i++)
        ck_key_clear(&ring->keys[i].key);
    ring->n = 0;
}

/* Adds (kvno, key) in kvno order; CK_ERR_DECODE for a kvno 0 or one already present. */
static int
ring_insert(struct ck_store_keyring *ring, uint32_t kvno, int32_t enctype, const uint8_t *key,
            size_t len, const char *path)
{
    size_t i;
    int ret;

    if (kvno == 0 || ck_store_ring_find(ring, kvno) != NULL)
        return ck_error_set(CK_ERR_DECODE, "stash %s: master key kvno %u twice or zero", path,
                            kvno);
    if (ring->n >= CK_STASH_MAX_KEYS)
        return ck_error_set(CK_ERR_LIMIT, "stash %s: more than %d master keys", path,
                            CK_STASH_MAX_KEYS);
    for (i = ring->n; i > 0 && ring->keys[i - 1].kvno > kvno; i--)
        ring->keys[i] = ring->keys[i - 1];
    memset(&ring->keys[i], 0, sizeof(ring->keys[i]));
    ring->keys[i].kvno = kvno;
    ring->n++;
    if ((ret = ck_key_init(&ring->keys[i].key, enctype, key, len)) != 0) {
        /* Keep the ring well-formed: take the half-made slot out again. */
        for (; i + 1 < ring->n; i++)
            ring->keys[i] = ring->keys[i + 1];
        ring->n--;
        ck_memzero(&ring->keys[ring->n], sizeof(ring->keys[ring->n]));
        return ck_error_set(ret, "stash %s: master key kvno %u: %s", path, kvno,
                            ck_error_context());
    }
    return 0;
}

const ck_key *
ck_store_ring_find(const struct ck_store_keyring *ring, uint32_t kvno)
{
    for (size_t i = 0; ring != NULL && i < ring->n; i++)
        if (ring->keys[i].kvno == kvno)
            return &ring->keys[i].key;
    return NULL;
}

int
ck_store_stash_parse_int(const uint8_t *buf, size_t len, const char *path,
                         struct ck_store_keyring *ring)
{
    const uint8_t *p = NULL;
    ck_reader r;
    uint16_t version = 0, count = 1, klen = 0;
    int ret = 0;

    ck_reader_init(&r, buf, len);
    if (ck_reader_bytes(&r, 4, &p) != 0 || memcmp(p, STASH_MAGIC, 4) != 0 ||
        ck_reader_u16be(&r, &version) != 0) {
        ret = ck_error_set(CK_ERR_DECODE, "stash %s: not a cablekey stash file", path);
        goto out;
    }
    if (version != 1 && version != STASH_VERSION) {
        ret = ck_error_set(CK_ERR_UNSUPPORTED, "stash %s: version %u", path, version);
        goto out;
    }
    if (version == STASH_VERSION &&
        (ck_reader_u16be(&r, &count) != 0 || count == 0 || count > CK_STASH_MAX_KEYS)) {
        ret = ck_error_set(CK_ERR_DECODE, "stash %s: not a cablekey stash file", path);
        goto out;
    }
    for (uint16_t i = 0; i < count && ret == 0; i++) {
        uint32_t kvno = 0, enctype = 0;
        if (ck_reader_u32be(&r, &kvno) != 0 || ck_reader_u32be(&r, &enctype) != 0 ||
            ck_reader_u16be(&r, &klen) != 0 || ck_reader_bytes(&r, klen, &p) != 0)
            ret = ck_error_set(CK_ERR_DECODE, "stash %s: not a cablekey stash file", path);
        else
            ret = ring_insert(ring, kvno, (int32_t)enctype, p, klen, path);
    }
    if (ret == 0 && ck_reader_remaining(&r) != 0)
        ret = ck_error_set(CK_ERR_DECODE, "stash %s: not a cablekey stash file", path);
out:
    /* Nothing half-parsed stays (the keys read so far are secrets). */
    if (ret != 0)
        ck_store_ring_clear_int(ring);
    return ret;
}

int
ck_store_stash_read_int(const char *path, struct ck_store_keyring *ring)
{
    uint8_t buf[STASH_MAX_SIZE + 1];
    struct ck_store_keyring tmp;
    size_t len = 0;
    struct stat st;
    int fd, ret = 0;

    memset(&tmp, 0, sizeof(tmp));
    fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return ck_error_set(errno == ENOENT ? CK_ERR_NOTFOUND : CK_ERR_IO, "stash %s: %s", path,
                            strerror(errno));
    if (fstat(fd, &st) != 0) {
        ret = ck_error_set(CK_ERR_IO, "stash %s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        ret = ck_error_set(CK_ERR_PERM, "stash %s is not a regular file", path);
        goto out;
    }
    if (st.st_uid != geteuid()) {
        ret = ck_error_set(CK_ERR_PERM, "stash %s is owned by uid %u, not by uid %u", path,
                           (unsigned)st.st_uid, (unsigned)geteuid());
        goto out;
    }
    if ((st.st_mode & 077) != 0) {
        ret = ck_error_set(CK_ERR_PERM, "stash %s has mode %04o; it must be 0600 or stricter",
                           path, (unsigned)(st.st_mode & 07777));
        goto out;
    }
    while (len < sizeof(buf)) {
        ssize_t n = read(fd, buf + len, sizeof(buf) - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            ret = ck_error_set(CK_ERR_IO, "stash %s: read: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (len > STASH_MAX_SIZE) {
        ret = ck_error_set(CK_ERR_DECODE, "stash %s: too large", path);
        goto out;
    }
    if ((ret = ck_store_stash_parse_int(buf, len, path, &tmp)) != 0)
        goto out;
    ck_store_ring_clear_int(ring);
    ring->n = tmp.n;
    memcpy(ring->keys, tmp.keys, sizeof(ring->keys));
out:
    ck_memzero(&tmp, sizeof(tmp));
    ck_memzero(buf, sizeof(buf));
    close(fd);
    return ret;
}

/* A list "1, 2" of the ring's kvnos, for messages. */
static void
ring_kvnos(const struct ck_store_keyring *ring, char *buf, size_t size)
{
    size_t off = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < ring->n && off < size; i++) {
        int n = snprintf(buf + off, size - off, "%s%u", i ? ", " : "", ring->keys[i].kvno);
        if (n < 0)
            break;
        off += (size_t)n;
    }
}

static int
mkey_check_plain(const char *realm, uint8_t *buf, size_t size, size_t *len)
{
    size_t a = strlen(MKEY_CHECK_PREFIX), b = strlen(realm);

    if (a + b > size)
        return ck_error_set(CK_ERR_LIMIT, "realm name too long");
    memcpy(buf, MKEY_CHECK_PREFIX, a);
    memcpy(buf + a, realm, b);
    *len = a + b;
    return 0;
}

int
ck_store_mkey_make_check_int(const ck_key *mkey, const char *realm, uint8_t **out,
                             size_t *out_len)
{
    uint8_t plain[64 + CK_REALM_MAX_LEN];
    size_t plen = 0, clen;
    uint8_t *c;
    int ret;

    *out = NULL;
    if ((ret = mkey_check_plain(realm, plain, sizeof(plain), &plen)) != 0)
        return ret;
    clen = ck_encrypt_length(mkey->enctype, plen);
    c = malloc(clen);
    if (c == NULL)
        return ck_error_set(CK_ERR_NOMEM, "master key check");
    if ((ret = ck_encrypt(mkey, CK_USAGE_MASTER_KEY_CHECK, plain, plen, c, clen, out_len)) != 0) {
        free(c);
        return ret;
    }
    *out = c;
    return 0;
}

int
ck_store_mkey_verify_int(const ck_key *mkey, uint32_t mkvno, const char *realm,
                         const struct ck_store_mkey_row *row, const char *stash_path)
{
    uint8_t expect[64 + CK_REALM_MAX_LEN];
    uint8_t *plain = NULL;
    size_t elen = 0, plen = 0;
    int ret;

    if (mkvno != row->kvno || mkey->enctype != row->enctype)
        return ck_error_set(CK_ERR_INTEGRITY,
                            "stash %s holds master key kvno %u enctype %d; the database uses "
                            "kvno %u enctype %d", stash_path, mkvno, (int)mkey->enctype,
                            row->kvno, (int)row->enctype);
    if ((ret = mkey_check_plain(realm, expect, sizeof(expect), &elen)) != 0)
        return ret;
    plain = malloc(row->check_len);
    if (plain == NULL)
        return ck_error_set(CK_ERR_NOMEM, "master key check");
    ret = ck_decrypt(mkey, CK_USAGE_MASTER_KEY_CHECK, row->check, row->check_len, plain,
                     row->check_len, &plen);
    if (ret == 0 && (plen != elen || memcmp(plain, expect, elen) != 0))
        ret = CK_ERR_INTEGRITY;
    if (ret != 0)
        ret = ck_error_set(CK_ERR_INTEGRITY,
                           "stash %s does not hold the master key of realm %s (wrong stash?)",
                           stash_path, realm);
    free(plain);
    return ret;
}

/* The key of row's kvno from the stash, checked against row (CK_ERR_INTEGRITY if the stash
 * lacks it or holds another key under that kvno). */
static int
ring_check_row(const struct ck_store_keyring *ring, const char *realm,
               const struct ck_store_mkey_row *row, const char *stash_path)
{
    const ck_key *k = ck_store_ring_find(ring, row->kvno);
    char have[96];

    if (k == NULL) {
        ring_kvnos(ring, have, sizeof(have));
        if (ring->n == 1)
            return ck_error_set(CK_ERR_INTEGRITY,
                                "stash %s holds master key kvno %u enctype %d; the database "
                                "uses kvno %u enctype %d", stash_path, ring->keys[0].kvno,
                                (int)ring->keys[0].key.enctype, row->kvno, (int)row->enctype);
        return ck_error_set(CK_ERR_INTEGRITY,
                            "stash %s holds master key kvnos %s; the database uses kvno %u",
                            stash_path, have, row->kvno);
    }
    return ck_store_mkey_verify_int(k, row->kvno, realm, row, stash_path);
}

int
ck_store_stash_check_int(const char *stash_path, const ck_realm_info *realm,
                         const struct ck_store_mkey_row *row, ck_key *mkey, uint32_t *mkvno)
{
    struct ck_store_keyring ring;
    int ret;

    memset(&ring, 0, sizeof(ring));
    if ((ret = ck_store_stash_read_int(stash_path, &ring)) == 0 &&
        (ret = ring_check_row(&ring, realm->name, row, stash_path)) == 0) {
        ret = ck_key_copy(mkey, ck_store_ring_find(&ring, row->kvno));
        *mkvno = row->kvno;
    }
    ck_store_ring_clear_int(&ring);
    return ret;
}

void
ck_store_mkey_rows_free(struct ck_store_mkey_row *rows, size_t n)
{
    if (rows == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        ck_store_mkey_row_clear(&rows[i]);
    free(rows);
}

/* Checks every key of ring that has a master_key row against it: a stash holding another key
 * under a kvno the database knows is refused. Backends without mkey_list check nothing more. */
static int
ring_check_all(const ck_store *store, const struct ck_store_keyring *ring)
{
    struct ck_store_mkey_row *rows = NULL;
    size_t n = 0;
    int ret = 0;

    if (store->ops->mkey_list == NULL)
        return 0;
    if ((ret = store->ops->mkey_list(store->be, &rows, &n)) != 0)
        return ret;
    for (size_t i = 0; i < n && ret == 0; i++)
        if (ck_store_ring_find(ring, rows[i].kvno) != NULL)
            ret = ring_check_row(ring, store->realm.name, &rows[i], store->ring->stash_path);
    ck_store_mkey_rows_free(rows, n);
    return ret;
}

/* Identifies the stash file as it is now (zeros and -1 when it cannot be stat'ed). */
static void
stash_identity(const char *path, uint64_t *dev, uint64_t *ino, int64_t *size, int64_t *mtime_ns)
{
    struct stat st;

    if (stat(path, &st) != 0) {
        *dev = *ino = 0;
        *size = *mtime_ns = -1;
        return;
    }
    *dev = (uint64_t)st.st_dev;
    *ino = (uint64_t)st.st_ino;
    *size = (int64_t)st.st_size;
    *mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
}

/* Re-reads the stash into the ring (keys it held before and the new stash lacks stay: a
 * key never becomes unusable to a running store) and the realm's master kvno, which becomes
 * the key new writes use once the ring holds it. */
static int
ring_reload(const ck_store *store)
{
    struct ck_store_keyring *ring = store->ring;
    struct ck_store_keyring fresh;
    struct ck_store_mkey_row mrow;
    ck_realm_info realm;
    int ret;

    memset(&fresh, 0, sizeof(fresh));
    memset(&mrow, 0, sizeof(mrow));
    ring->rereads++;
    ring->last_reread_ms = ck_monotonic_ms();
    /* Before the read: a replacement racing with it is seen as a change next time. */
    stash_identity(ring->stash_path, &ring->stash_dev, &ring->stash_ino, &ring->stash_size,
                   &ring->stash_mtime_ns);
    fresh.stash_path = ring->stash_path;
    if ((ret = ck_store_stash_read_int(ring->stash_path, &fresh)) != 0 ||
        (ret = ring_check_all(store, &fresh)) != 0)
        goto out;
    for (size_t i = 0; i < ring->n && fresh.n < CK_STASH_MAX_KEYS; i++) {
        const struct ck_store_mkey *m = &ring->keys[i];
        if (ck_store_ring_find(&fresh, m->kvno) == NULL &&
            (ret = ring_insert(&fresh, m->kvno, m->key.enctype, m->key.contents, m->key.length,
                               ring->stash_path)) != 0)
            goto out;
    }
    ck_store_ring_clear_int(ring);
    ring->n = fresh.n;
    memcpy(ring->keys, fresh.keys, sizeof(ring->keys));
    ck_memzero(fresh.keys, sizeof(fresh.keys));
    fresh.n = 0;
    memset(&realm, 0, sizeof(realm));
    if ((ret = store->ops->load_realm(store->be, &realm, &mrow)) == 0 &&
        ck_store_ring_find(ring, realm.master_kvno) != NULL)
        ring->active = realm.master_kvno;
out:
    /* Kept for the refusal that follows (key_decrypt): an unreadable stash must be named. */
    if (ret != 0)
        snprintf(ring->reread_error, sizeof(ring->reread_error), "%s", ck_error_context());
    else
        ring->reread_error[0] = '\0';
    ck_store_ring_clear_int(&fresh);
    ck_store_mkey_row_clear(&mrow);
    return ret;
}

int
ck_store_mkey_reload_int(const ck_store *store)
{
    if (store->ring == NULL)
        return ck_error_set(CK_ERR_INVAL, "store without a stash keyring");
    return ring_reload(store);
}

/* The master key of kvno mkvno; a store that lacks it re-reads its stash first, at most once
 * per reread_ms (a row under a kvno nobody has must not turn every request into a file read). */
/* The interval keeps a row under a kvno nobody has from turning every request into a file
 * read; a stash replaced since the last read (a master-key add, an atomic rename) is read at
 * once: a rotation that follows another within the interval must not leave a window of
 * refusals. The check is one stat(2), on this miss path only. */
static bool
reread_allowed(const struct ck_store_keyring *ring)
{
    uint64_t dev, ino;
    int64_t size, mtime_ns;

    if (ring->last_reread_ms == 0 || ck_monotonic_ms() - ring->last_reread_ms >= ring->reread_ms)
        return true;
    stash_identity(ring->stash_path, &dev, &ino, &size, &mtime_ns);
    return dev != ring->stash_dev || ino != ring->stash_ino || size != ring->stash_size ||
           mtime_ns != ring->stash_mtime_ns;
}

static const ck_key *
key_for(const ck_store *store, uint32_t mkvno)
{
    struct ck_store_keyring *ring = store->ring;
    const ck_key *k;

    if (ring == NULL)
        return mkvno == store->mkvno ? &store->mkey : NULL;
    if ((k = ck_store_ring_find(ring, mkvno)) != NULL)
        return k;
    if (!reread_allowed(ring))
        return NULL;
    (void)ring_reload(store);
    return ck_store_ring_find(ring, mkvno);
}

/* Before a write: the realm's master kvno may have moved (another process activated a new
 * master key); new keys go under it as soon as this store holds it. */
static void
ring_follow_active(const ck_store *store)
{
    struct ck_store_keyring *ring = store->ring;
    struct ck_store_mkey_row mrow;
    ck_realm_info realm;

    if (ring == NULL)
        return;
    memset(&mrow, 0, sizeof(mrow));
    memset(&realm, 0, sizeof(realm));
    if (store->ops->load_realm(store->be, &realm, &mrow) == 0 &&
        realm.master_kvno != ring->active && key_for(store, realm.master_kvno) != NULL)
        ring->active = realm.master_kvno;
    ck_store_mkey_row_clear(&mrow);
}

/* ---- key encryption ---- */

static int
key_plain(const char *name, uint32_t kvno, const ck_key *key, ck_writer *w)
{
    size_t nlen = strlen(name);
    int ret;

    if (nlen > UINT16_MAX)
        return ck_error_set(CK_ERR_LIMIT, "principal name too long");
    if ((ret = ck_writer_bytes(w, KEY_PLAIN_MAGIC, 4)) != 0 ||
        (ret = ck_writer_u16be(w, (uint16_t)nlen)) != 0 ||
        (ret = ck_writer_bytes(w, name, nlen)) != 0 || (ret = ck_writer_u32be(w, kvno)) != 0 ||
        (ret = ck_writer_u32be(w, (uint32_t)key->enctype)) != 0 ||
        (ret = ck_writer_u16be(w, (uint16_t)key->length)) != 0 ||
        (ret = ck_writer_bytes(w, key->contents, key->length)) != 0)
        return ret;
    return 0;
}

static int
encrypt_key_under(const ck_store *store, const char *name, const ck_db_key *k, uint32_t mkvno,
                  struct ck_store_key_row *row)
{
    const ck_key *mkey = key_for(store, mkvno);
    ck_writer w;
    uint8_t *plain = NULL, *c = NULL;
    size_t plen = 0, clen, outlen = 0;
    int ret;

    memset(row, 0, sizeof(*row));
    if (mkey == NULL)
        return ck_error_set(CK_ERR_NOTFOUND, "master key kvno %u is not in the stash", mkvno);
    ck_writer_init(&w, KEY_PLAIN_MAX, true);
    if ((ret = key_plain(name, k->kvno, &k->key, &w)) != 0)
        goto out;
    plain = ck_writer_take(&w, &plen);
    if (plain == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "key encryption");
        goto out;
    }
    clen = ck_encrypt_length(mkey->enctype, plen);
    c = malloc(clen);
    if (c == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "key encryption");
        goto out;
    }
    if ((ret = ck_encrypt(mkey, CK_USAGE_DB_KEY, plain, plen, c, clen, &outlen)) != 0)
        goto out;
    if (k->salt_len > 0) {
        row->salt = ck_memdup(k->salt, k->salt_len);
        if (row->salt == NULL) {
            ret = ck_error_set(CK_ERR_NOMEM, "key encryption");
            goto out;
        }
    }
    row->salt_len = k->salt_len;
    row->kvno = k->kvno;
    row->enctype = k->enctype;
    row->salt_type = k->salt_type;
    row->mkvno = mkvno;
    row->key_enc = c;
    row->key_enc_len = outlen;
    c = NULL;
out:
    if (ret != 0) {
        free(row->salt);
        memset(row, 0, sizeof(*row));
    }
    free(c);
    ck_free_secret(plain, plen);
    ck_writer_free(&w);
    return ret;
}

/* Under the realm's master key as this store knows it (new writes). */
static int
encrypt_key(const ck_store *store, const char *name, const ck_db_key *k,
            struct ck_store_key_row *row)
{
    return encrypt_key_under(store, name, k, store->ring != NULL ? store->ring->active
                                                                 : store->mkvno, row);
}

int
ck_store_encrypt_key_under_int(const ck_store *store, const char *name, const ck_db_key *k,
                               uint32_t mkvno, struct ck_store_key_row *row)
{
    return encrypt_key_under(store, name, k, mkvno, row);
}

int
ck_store_decrypt_key_row(const ck_store *store, const char *name,
                         const struct ck_store_key_row *row, ck_db_key *k)
{
    const ck_key *mkey;
    uint8_t *plain = NULL;
    const uint8_t *p = NULL;
    size_t plen = 0;
    ck_reader r;
    uint16_t nlen = 0, klen = 0;
    uint32_t kvno = 0, enctype = 0;
    int ret;

    memset(k, 0, sizeof(*k));
    if ((mkey = key_for(store, row->mkvno)) == NULL) {
        char have[96];
        if (store->ring != NULL)
            ring_kvnos(store->ring, have, sizeof(have));
        else
            snprintf(have, sizeof(have), "%u", store->mkvno);
        return ck_error_set(CK_ERR_UNSUPPORTED,
                            "principal %s: key under master kvno %u, the stash holds kvno %s%s%s",
                            name, row->mkvno, have,
                            store->ring != NULL && store->ring->reread_error[0] != '\0'
                                ? "; its last re-read failed: " : "",
                            store->ring != NULL ? store->ring->reread_error : "");
    }
    plain = malloc(row->key_enc_len);
    if (plain == NULL)
        return ck_error_set(CK_ERR_NOMEM, "key decryption");
    ret = ck_decrypt(mkey, CK_USAGE_DB_KEY, row->key_enc, row->key_enc_len, plain,
                     row->key_enc_len, &plen);
    if (ret == CK_ERR_INTEGRITY && store->ring != NULL && reread_allowed(store->ring)) {
        /* This store's key of that kvno may be stale (an add abandoned and its kvno used
         * again): the stash file decides, once. */
        ck_key held;
        if (ck_key_copy(&held, mkey) == 0) {
            const ck_key *now_key;
            (void)ring_reload(store);
            now_key = ck_store_ring_find(store->ring, row->mkvno);
            if (now_key != NULL && (now_key->length != held.length ||
                                    CRYPTO_memcmp(now_key->contents, held.contents,
                                                  held.length) != 0))
                ret = ck_decrypt(now_key, CK_USAGE_DB_KEY, row->key_enc, row->key_enc_len,
                                 plain, row->key_enc_len, &plen);
            ck_key_clear(&held);
        }
    }
    if (ret != 0) {
        ret = ck_error_set(ret == CK_ERR_INTEGRITY ? CK_ERR_INTEGRITY : ret,
                           "principal %s kvno %u enctype %d: key does not decrypt under the "
                           "master key", name, row->kvno, (int)row->enctype);
        goto out;
    }
    ck_reader_init(&r, plain, plen);
    if (ck_reader_bytes(&r, 4, &p) != 0 || memcmp(p, KEY_PLAIN_MAGIC, 4) != 0 ||
        ck_reader_u16be(&r, &nlen) != 0 || ck_reader_bytes(&r, nlen, &p) != 0 ||
        nlen != strlen(name) || memcmp(p, name, nlen) != 0 || ck_reader_u32be(&r, &kvno) != 0 ||
        ck_reader_u32be(&r, &enctype) != 0 || ck_reader_u16be(&r, &klen) != 0 ||
        kvno != row->kvno || (int32_t)enctype != row->enctype ||
        ck_reader_bytes(&r, klen, &p) != 0 || ck_reader_remaining(&r) != 0) {
        ret = ck_error_set(CK_ERR_INTEGRITY,
                           "principal %s kvno %u enctype %d: key row does not belong here", name,
                           row->kvno, (int)row->enctype);
        goto out;
    }
    if ((ret = ck_key_init(&k->key, (int32_t)enctype, p, klen)) != 0)
        goto out;
    if (row->salt_len > 0) {
        k->salt = ck_memdup(row->salt, row->salt_len);
        if (k->salt == NULL) {
            ret = ck_error_set(CK_ERR_NOMEM, "key decryption");
            goto out;
        }
    }
    k->salt_len = row->salt_len;
    k->kvno = row->kvno;
    k->enctype = row->enctype;
    k->salt_type = row->salt_type;
out:
    if (ret != 0)
        ck_key_clear(&k->key);
    ck_free_secret(plain, row->key_enc_len);
    return ret;
}

/* ---- open / init ---- */

void
ck_store_close(ck_store *store)
{
    if (store == NULL)
        return;
    ck_store_cache_destroy(&store->cache);
    ck_store_cache_destroy(&store->dev_cache);
    ck_store_prov_free_int(store);
    if (store->ops != NULL)
        store->ops->close(store->be);
    ck_key_clear(&store->mkey);
    if (store->ring != NULL) {
        ck_store_ring_clear_int(store->ring);
        free(store->ring->stash_path);
        ck_free_secret(store->ring, sizeof(*store->ring));
    }
    ck_free_secret(store, sizeof(*store));
}

/* The stash named, or the backend's default for the location. */
static int
stash_for(const ck_store_uri *u, const char *stash_path, char **out)
{
    *out = NULL;
    if (stash_path != NULL) {
        if ((*out = strdup(stash_path)) == NULL)
            return ck_error_set(CK_ERR_NOMEM, "stash path");
        return 0;
    }
    if (u->ops->default_stash == NULL)
        return ck_error_set(CK_ERR_INVAL, "a %s database has no default stash file: name one "
                                          "(--stash FILE, key_stash_file)", u->backend);
    return u->ops->default_stash(u->location, out);
}

/* Every write transaction of the backend reads the store's actor and pending action. */
static void
store_audit_attach(ck_store *store)
{
    if (store->audit.actor[0] == '\0')
        ck_store_set_actor(store, NULL);
    store->ops->audit_attach(store->be, &store->audit);
}

/* Finishes opening: loads the realm, checks the stash against it, primes the caches. */
static int
store_attach(ck_store *store, const char *stash_path)
{
    struct ck_store_mkey_row mrow;
    int ret;

    memset(&mrow, 0, sizeof(mrow));
    store_audit_attach(store);
    if ((ret = store->ops->load_realm(store->be, &store->realm, &mrow)) != 0)
        goto out;
    if (store->ring == NULL) {
        store->ring = calloc(1, sizeof(*store->ring));
        if (store->ring == NULL || (store->ring->stash_path = strdup(stash_path)) == NULL) {
            ret = ck_error_set(CK_ERR_NOMEM, "store");
            goto out;
        }
        store->ring->reread_ms = CK_MKEY_REREAD_MS;
    }
    if ((ret = ck_store_stash_read_int(stash_path, store->ring)) != 0)
        goto out;
    /* The stash must hold the realm's master key; other keys it holds (a rotation under way)
     * must be the ones the database knows under their kvnos. */
    if ((ret = ring_check_row(store->ring, store->realm.name, &mrow, stash_path)) != 0 ||
        (ret = ring_check_all(store, store->ring)) != 0)
        goto out;
    store->ring->active = mrow.kvno;
    ret = ck_store_caches_init(store);
out:
    ck_store_mkey_row_clear(&mrow);
    return ret;
}

int
ck_store_open(const char *db_path, const char *stash_path, unsigned flags, ck_store **out)
{
    ck_store *store = NULL;
    ck_store_uri u;
    char *stash = NULL;
    int ret;

    *out = NULL;
    if ((ret = ck_store_uri_parse(db_path, &u)) != 0)
        return ret;
    if ((ret = stash_for(&u, stash_path, &stash)) != 0)
        goto out;
    store = calloc(1, sizeof(*store));
    if (store == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "store");
        goto out;
    }
    store->readonly = (flags & CK_STORE_READONLY) != 0;
    if ((ret = u.ops->open(u.location, flags, false, &store->be)) != 0)
        goto out;
    store->ops = u.ops;
    if ((ret = store_attach(store, stash)) != 0)
        goto out;
    *out = store;
    store = NULL;
out:
    ck_store_close(store);
    free(stash);
    ck_store_uri_clear(&u);
    return ret;
}

const ck_realm_info *
ck_store_realm(const ck_store *store)
{
    return &store->realm;
}

int
ck_store_generation(ck_store *store, uint64_t *out)
{
    return store->ops->generation(store->be, out);
}

int
ck_store_wal_manual(ck_store *store)
{
    return store->ops->wal_manual != NULL ? store->ops->wal_manual(store->be) : 0;
}

int
ck_store_checkpoint(ck_store *store, bool restart, bool *complete, int *frames)
{
    *complete = true;
    *frames = 0;
    return store->ops->checkpoint != NULL
               ? store->ops->checkpoint(store->be, restart, complete, frames)
               : 0;
}

int
ck_store_init_realm(const char *db_path, const char *stash_path, const char *realm,
                    const int32_t *enctypes, size_t n_enctypes, int64_t max_life,
                    int64_t max_renew)
{
    const int32_t mk_enctype = CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96;
    struct ck_store_mkey_row mrow;
    ck_store *store = NULL;
    ck_principal *tgs = NULL;
    ck_db_principal *rec = NULL;
    char *stash = NULL;
    bool created_db = false, created_stash = false;
    struct stat st;
    ck_store_uri u;
    ck_realm_info info;
    int ret;

    memset(&mrow, 0, sizeof(mrow));
    memset(&info, 0, sizeof(info));
    memset(&u, 0, sizeof(u));
    if (db_path == NULL || realm == NULL)
        return ck_error_set(CK_ERR_INVAL, "database path and realm are required");
    if ((ret = ck_store_uri_parse(db_path, &u)) != 0)
        return ret;
    if ((ret = stash_for(&u, stash_path, &stash)) != 0)
        goto out;
    stash_path = stash;
    /* Validates the realm name with the principal rules (length, no NUL, non-empty). */
    {
        const char *comps[] = {CK_TGS_NAME, realm};
        if ((ret = ck_principal_build(realm, CK_NT_SRV_INST, comps, 2, &tgs)) != 0)
            goto out;
    }
    if (n_enctypes == 0 || n_enctypes > CK_STORE_MAX_ENCTYPES) {
        ret = ck_error_set(CK_ERR_INVAL, "%zu enctypes (1..%d allowed)", n_enctypes,
                           CK_STORE_MAX_ENCTYPES);
        goto out;
    }
    for (size_t i = 0; i < n_enctypes; i++) {
        if (!ck_enctype_is_supported(enctypes[i])) {
            ret = ck_error_set(CK_ERR_UNSUPPORTED, "enctype %d not supported", (int)enctypes[i]);
            goto out;
        }
        info.enctypes[i] = enctypes[i];
    }
    if (max_life < 0 || max_renew < 0) {
        ret = ck_error_set(CK_ERR_INVAL, "negative lifetime");
        goto out;
    }
    info.n_enctypes = n_enctypes;
    info.max_life = max_life ? max_life : DEFAULT_MAX_LIFE;
    info.max_renew = max_renew ? max_renew : DEFAULT_MAX_RENEW;
    info.master_kvno = 1;
    info.default_attributes = CK_REALM_DEFAULT_ATTRIBUTES;
    ck_strlcpy(info.name, realm, sizeof(info.name));

    store = calloc(1, sizeof(*store));
    if (store == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "store");
        goto out;
    }
    /* The backend makes the new, empty database (refusing one that exists) by its own rules:
     * for SQLite, a 0600 file created exclusively. */
    if ((ret = u.ops->open(u.location, 0, true, &store->be)) != 0)
        goto out;
    store->ops = u.ops;
    created_db = true;
    if (lstat(stash_path, &st) == 0) {
        ret = ck_error_set(CK_ERR_EXISTS, "stash %s already exists", stash_path);
        goto out;
    }
    store->mkvno = 1;
    if ((ret = ck_random_key(mk_enctype, &store->mkey)) != 0)
        goto out;
    {
        struct ck_store_keyring one;
        memset(&one, 0, sizeof(one));
        one.n = 1;
        one.keys[0].kvno = store->mkvno;
        ret = ck_key_copy(&one.keys[0].key, &store->mkey);
        /* Never replaces an existing stash (or a symlink planted at its name). */
        if (ret == 0)
            ret = stash_write(stash_path, &one, 0);
        ck_store_ring_clear_int(&one);
        if (ret != 0)
            goto out;
    }
    created_stash = true;
    mrow.kvno = store->mkvno;
    mrow.enctype = mk_enctype;
    if ((ret = ck_store_mkey_make_check_int(&store->mkey, realm, &mrow.check, &mrow.check_len)) !=
        0)
        goto out;
    store_audit_attach(store);
    store_audit_begin(store, "realm.create", realm, "%zu enctype%s, master key kvno %u",
                      n_enctypes, n_enctypes == 1 ? "" : "s", store->mkvno);
    if ((ret = store->ops->init_schema(store->be, &info, &mrow, now_sec())) != 0)
        goto out;
    if ((ret = store_attach(store, stash_path)) != 0)
        goto out;

    /* krbtgt/REALM@REALM with random keys for every realm enctype. */
    {
        char *name = NULL;
        if ((ret = ck_principal_unparse(tgs, 0, &name)) != 0)
            goto out;
        ret = ck_db_principal_new(name, &rec);
        if (ret == 0)
            ret = ck_db_keys_make(name, NULL, 0, enctypes, n_enctypes, 1, &rec->keys,
                                  &rec->n_keys);
        free(name);
        if (ret != 0)
            goto out;
    }
    rec->kvno = 1;
    rec->attributes = 0;
    ret = ck_store_create_principal(store, rec);
out:
    ck_db_principal_free(rec);
    ck_store_close(store);
    if (ret != 0) {
        if (created_db && u.ops->discard != NULL)
            u.ops->discard(u.location);
        if (created_stash)
            unlink(stash_path);
    }
    ck_store_mkey_row_clear(&mrow);
    ck_principal_free(tgs);
    free(stash);
    ck_store_uri_clear(&u);
    return ret;
}

/* ---- principal operations ---- */

/* Checks that name is a canonical unparsed principal of the store's realm. */
static int
check_name(const ck_store *store, const char *name)
{
    ck_principal *p = NULL;
    char *canon = NULL;
    int ret;

    if (name == NULL)
        return ck_error_set(CK_ERR_INVAL, "no principal name");
    if ((ret = ck_principal_parse(name, NULL, CK_PRINCIPAL_PARSE_REQUIRE_REALM, &p)) != 0)
        return ret;
    if ((ret = ck_principal_unparse(p, 0, &canon)) != 0)
        goto out;
    if (strcmp(canon, name) != 0) {
        ret = ck_error_set(CK_ERR_INVAL, "principal %s is not in canonical form (%s)", name,
                           canon);
        goto out;
    }
    if (strcmp(p->realm, store->realm.name) != 0) {
        ret = ck_error_set(CK_ERR_INVAL, "principal %s is not in realm %s", name,
                           store->realm.name);
        goto out;
    }
out:
    free(canon);
    ck_principal_free(p);
    return ret;
}

static int
check_keys(const char *name, const ck_db_key *keys, size_t n, uint32_t max_kvno)
{
    if (n > CK_STORE_MAX_KEYS)
        return ck_error_set(CK_ERR_LIMIT, "principal %s: more than %d keys", name,
                            CK_STORE_MAX_KEYS);
    for (size_t i = 0; i < n; i++) {
        if (keys[i].enctype != keys[i].key.enctype || !ck_enctype_is_supported(keys[i].enctype) ||
            keys[i].key.length != ck_enctype_key_length(keys[i].enctype))
            return ck_error_set(CK_ERR_INVAL, "principal %s: bad key for enctype %d", name,
                                (int)keys[i].enctype);
        /* max_kvno 0: rotation, where the store assigns the kvno. */
        if (max_kvno != 0 && (keys[i].kvno == 0 || keys[i].kvno > max_kvno))
            return ck_error_set(CK_ERR_INVAL, "principal %s: key kvno %u out of range", name,
                                keys[i].kvno);
        if (keys[i].salt_len > CK_STORE_MAX_SALT)
            return ck_error_set(CK_ERR_LIMIT, "principal %s: salt too long", name);
        for (size_t j = 0; j < i; j++) {
            if (max_kvno != 0 && keys[j].kvno == keys[i].kvno &&
                keys[j].enctype == keys[i].enctype)
                return ck_error_set(CK_ERR_INVAL, "principal %s: duplicate key kvno %u enctype "
                                    "%d", name, keys[i].kvno, (int)keys[i].enctype);
            if (max_kvno == 0 && keys[j].enctype == keys[i].enctype)
                return ck_error_set(CK_ERR_INVAL, "principal %s: enctype %d listed twice", name,
                                    (int)keys[i].enctype);
        }
    }
    return 0;
}

static void
free_key_rows(struct ck_store_key_row *rows, size_t n)
{
    if (rows == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        free(rows[i].salt);
        free(rows[i].key_enc);
    }
    free(rows);
}

/* Encrypts keys into backend rows; kvno_override != 0 replaces each key's kvno. */
static int
encrypt_keys(const ck_store *store, const char *name, const ck_db_key *keys, size_t n,
             uint32_t kvno_override, struct ck_store_key_row **out)
{
    struct ck_store_key_row *rows;
    int ret = 0;

    *out = NULL;
    if (n == 0)
        return 0;
    rows = calloc(n, sizeof(*rows));
    if (rows == NULL)
        return ck_error_set(CK_ERR_NOMEM, "key rows");
    ring_follow_active(store);
    for (size_t i = 0; i < n && ret == 0; i++) {
        ck_db_key k = keys[i];
        if (kvno_override != 0)
            k.kvno = kvno_override;
        ret = encrypt_key(store, name, &k, &rows[i]);
        ck_memzero(&k, sizeof(k));
    }
    if (ret != 0) {
        free_key_rows(rows, n);
        return ret;
    }
    *out = rows;
    return 0;
}

static int
check_fields(const ck_db_principal *p)
{
    if (p->max_life < 0 || p->max_renew < 0 || p->expires < 0 || p->pw_expires < 0)
        return ck_error_set(CK_ERR_INVAL, "principal %s: negative time value", p->name);
    return 0;
}

/* Names the audit action of a put. A field update describes what it changes against the
 * record as read just before (an admin path: the extra read is cheap). */
static int
audit_put(ck_store *store, const ck_db_principal *p, enum ck_store_put_mode mode, char *detail,
          size_t size)
{
    struct ck_store_princ_row old;
    char attrs[CK_AUDIT_DETAIL_MAX];
    int ret;

    if (mode == CK_PUT_UPDATE_FIELDS) {
        if ((ret = store->ops->get(store->be, p->name, &old)) != 0)
            return ret;
        store_audit_describe_fields(detail, size, &old, p);
        ck_store_princ_row_clear(&old);
        store_audit_begin(store, "principal.modify", p->name, "%s", detail);
        return 0;
    }
    store_audit_describe_keys(detail, size, p->keys, p->n_keys);
    store_audit_describe_attributes(attrs, sizeof(attrs), 0, p->attributes);
    store_audit_begin(store, mode == CK_PUT_CREATE ? "principal.add" : "principal.put", p->name,
                      "kvno %u, %s%s%s", p->kvno, detail, attrs[0] ? ", attributes" : "", attrs);
    return 0;
}

static int
store_put(ck_store *store, const ck_db_principal *p, enum ck_store_put_mode mode)
{
    struct ck_store_princ_row row;
    char detail[CK_AUDIT_DETAIL_MAX];
    int ret;

    memset(&row, 0, sizeof(row));
    if (store->readonly)
        return ck_error_set(CK_ERR_PERM, "database opened read-only");
    if ((ret = check_name(store, p->name)) != 0 || (ret = check_fields(p)) != 0)
        return ret;
    if (mode != CK_PUT_UPDATE_FIELDS) {
        if (p->kvno == 0)
            return ck_error_set(CK_ERR_INVAL, "principal %s: kvno 0", p->name);
        if ((ret = check_keys(p->name, p->keys, p->n_keys, p->kvno)) != 0)
            return ret;
        if ((ret = encrypt_keys(store, p->name, p->keys, p->n_keys, 0, &row.keys)) != 0)
            return ret;
        row.n_keys = p->n_keys;
    }
    row.name = p->name;
    row.attributes = p->attributes;
    row.max_life = p->max_life;
    row.max_renew = p->max_renew;
    row.expires = p->expires;
    row.pw_expires = p->pw_expires;
    row.kvno = p->kvno;
    if (mode == CK_PUT_CREATE && p->policy != NULL) {
        if ((ret = ck_policy_name_check(p->policy)) != 0)
            goto out;
        row.policy = p->policy;
    }
    row.last_pwd_change = p->last_pwd_change;
    if ((ret = audit_put(store, p, mode, detail, sizeof(detail))) == 0)
        ret = store->ops->put(store->be, &row, mode, now_sec());
    store_audit_end(store);
    if (ret == 0)
        ck_store_cache_invalidate(&store->cache, p->name);
out:
    free_key_rows(row.keys, row.n_keys);
    return ret;
}

int
ck_store_create_principal(ck_store *store, const ck_db_principal *p)
{
    return store_put(store, p, CK_PUT_CREATE);
}

int
ck_store_put_principal(ck_store *store, const ck_db_principal *p)
{
    return store_put(store, p, CK_PUT_REPLACE);
}

int
ck_store_update_principal(ck_store *store, const ck_db_principal *p)
{
    return store_put(store, p, CK_PUT_UPDATE_FIELDS);
}

int
ck_store_delete_principal(ck_store *store, const char *name)
{
    int ret;

    if (store->readonly)
        return ck_error_set(CK_ERR_PERM, "database opened read-only");
    if (name == NULL)
        return ck_error_set(CK_ERR_INVAL, "no principal name");
    store_audit_begin(store, "principal.delete", name, NULL);
    ret = store->ops->del(store->be, name);
    store_audit_end(store);
    if (ret == 0)
        ck_store_cache_invalidate(&store->cache, name);
    return ret;
}

/* The password history of old_name, newest first, encrypted for new_name (encrypt_key binds a
 * key to its principal's name: left as it was, the history check could not read it after the
 * rename and would let a remembered password back). A row that does not decrypt now stays as it
 * is: it was unreadable already, and `db check` reports it. */
static int
history_for_rename(ck_store *store, const char *old_name, const char *new_name,
                   struct ck_store_key_row **out, size_t *n_out)
{
    struct ck_store_key_row *rows = NULL;
    size_t n = 0;
    int ret;

    *out = NULL;
    *n_out = 0;
    ring_follow_active(store); /* the history is encrypted again: under the active master key */
    if ((ret = store->ops->pw_history(store->be, old_name, CK_POLICY_MAX_HISTORY, &rows, &n)) != 0)
        return ret;
    for (size_t i = 0; i < n && ret == 0; i++) {
        struct ck_store_key_row fresh = {0};
        ck_db_key k;

        if ((ret = ck_store_decrypt_key_row(store, old_name, &rows[i], &k)) != 0) {
            if (ret != CK_ERR_NOMEM) {
                ck_error_clear();
                ret = 0;
            }
            continue;
        }
        ret = encrypt_key(store, new_name, &k, &fresh);
        ck_key_clear(&k.key);
        free(k.salt);
        if (ret == 0) {
            free(rows[i].salt);
            free(rows[i].key_enc);
            rows[i] = fresh;
        }
    }
    if (ret != 0) {
        free_key_rows(rows, n);
        return ret;
    }
    *out = rows;
    *n_out = n;
    return 0;
}

int
ck_store_rename_principal(ck_store *store, const char *old_name, const char *new_name)
{
    struct ck_store_key_row *rows = NULL, *hist = NULL;
    ck_db_principal *p = NULL;
    size_t n_hist = 0;
    int ret;

    if (store->readonly)
        return ck_error_set(CK_ERR_PERM, "database opened read-only");
    if ((ret = check_name(store, old_name)) != 0 || (ret = check_name(store, new_name)) != 0)
        return ret;
    if (strcmp(old_name, new_name) == 0)
        return ck_error_set(CK_ERR_INVAL, "principal %s: the new name is the same", old_name);
    /* The realm's TGS key is found by its name; renaming it (or to it) breaks the realm. */
    for (int i = 0; i < 2; i++) {
        const char *n = i == 0 ? old_name : new_name;
        ck_principal *pn = NULL;
        bool tgs = ck_principal_parse(n, NULL, 0, &pn) == 0 &&
                   ck_principal_is_tgs(pn, store->realm.name);
        ck_principal_free(pn);
        if (tgs)
            return ck_error_set(CK_ERR_POLICY, "%s is the realm's ticket-granting service; it "
                                "cannot be renamed", n);
    }
    /* Key rows are bound to the principal's name (encrypt_key): decrypt, encrypt for the new
     * name. The salts stay as stored, so the old password still derives these keys. */
    if ((ret = ck_store_load_principal(store, old_name, &p)) != 0)
        return ret;
    if ((ret = encrypt_keys(store, new_name, p->keys, p->n_keys, 0, &rows)) == 0 &&
        (ret = history_for_rename(store, old_name, new_name, &hist, &n_hist)) == 0) {
        store_audit_begin(store, "principal.rename", old_name, "to %s", new_name);
        ret = store->ops->rename(store->be, old_name, new_name, p->kvno, rows, p->n_keys, hist,
                                 n_hist, now_sec());
        store_audit_end(store);
    }
    if (ret == 0) {
        ck_store_cache_invalidate(&store->cache, old_name);
        ck_store_cache_invalidate(&store->cache, new_name);
    }
    free_key_rows(hist, n_hist);
    free_key_rows(rows, p->n_keys);
    ck_db_principal_free(p);
    return ret;
}

int
ck_store_realm_modify(ck_store *store, const ck_realm_mod *mod)
{
    ck_realm_info next = store->realm;
    int ret;

    if (store->readonly)
        return ck_error_set(CK_ERR_PERM, "database opened read-only");
    if (mod->mask == 0)
        return ck_error_set(CK_ERR_INVAL, "realm modify: nothing to change");
    if (mod->mask & CK_REALM_MOD_MAX_LIFE) {
        if (mod->max_life < 1 || mod->max_life > CK_REALM_LIFE_MAX)
            return ck_error_set(CK_ERR_INVAL, "maximum ticket life %lld out of range",
                                (long long)mod->max_life);
        next.max_life = mod->max_life;
    }
    if (mod->mask & CK_REALM_MOD_MAX_RENEW) {
        if (mod->max_renew < 1 || mod->max_renew > CK_REALM_LIFE_MAX)
            return ck_error_set(CK_ERR_INVAL, "maximum renewable life %lld out of range",
                                (long long)mod->max_renew);
        next.max_renew = mod->max_renew;
    }
    if (mod->mask & CK_REALM_MOD_ENCTYPES) {
        if (mod->n_enctypes == 0 || mod->n_enctypes > CK_STORE_MAX_ENCTYPES)
            return ck_error_set(CK_ERR_INVAL, "%zu enctypes (1..%d allowed)", mod->n_enctypes,
                                CK_STORE_MAX_ENCTYPES);
        for (size_t i = 0; i < mod->n_enctypes; i++) {
            if (!ck_enctype_is_supported(mod->enctypes[i]))
                return ck_error_set(CK_ERR_UNSUPPORTED, "enctype %d not supported",
                                    (int)mod->enctypes[i]);
            for (size_t j = 0; j < i; j++) {
                if (mod->enctypes[j] == mod->enctypes[i])
                    return ck_error_set(CK_ERR_INVAL, "enctype %d listed twice",
                                        (int)mod->enctypes[i]);
            }
            next.enctypes[i] = mod->enctypes[i];
        }
        next.n_enctypes = mod->n_enctypes;
    }
    if (mod->mask & CK_REALM_MOD_DEFAULT_ATTRIBUTES)
        next.default_attributes = mod->default_attributes;
    store_audit_begin(store, "realm.modify", store->realm.name,
                      "max_life %lld -> %lld, max_renew %lld -> %lld, default attributes "
                      "0x%x -> 0x%x, %zu -> %zu enctypes",
                      (long long)store->realm.max_life, (long long)next.max_life,
                      (long long)store->realm.max_renew, (long long)next.max_renew,
                      store->realm.default_attributes, next.default_attributes,
                      store->realm.n_enctypes, next.n_enctypes);
    ret = store->ops->realm_modify(store->be, &next);
    store_audit_end(store);
    if (ret != 0)
        return ret;
    store->realm = next;
    return 0;
}

int
ck_store_list_principals(ck_store *store, ck_store_list_cb cb, void *arg)
{
    return store->ops->list(store->be, cb, arg);
}

int
ck_store_load_principal(ck_store *store, const char *name, ck_db_principal **out)
{
    struct ck_store_princ_row row;
    ck_db_principal *p = NULL;
    int ret;

    *out = NULL;
    if ((ret = store->ops->get(store->be, name, &row)) != 0)
        return ret;
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "principal record");
        goto out;
    }
    p->name = row.name;
    row.name = NULL;
    p->attributes = row.attributes;
    p->max_life = row.max_life;
    p->max_renew = row.max_renew;
    p->expires = row.expires;
    p->pw_expires = row.pw_expires;
    p->kvno = row.kvno;
    p->created = row.created;
    p->modified = row.modified;
    p->policy = row.policy;
    row.policy = NULL;
    p->last_pwd_change = row.last_pwd_change;
    p->lockout = row.lockout;
    if (row.n_keys > 0) {
        p->keys = calloc(row.n_keys, sizeof(*p->keys));
        if (p->keys == NULL) {
            ret = ck_error_set(CK_ERR_NOMEM, "principal record");
            goto out;
        }
    }
    for (size_t i = 0; i < row.n_keys; i++) {
        if ((ret = ck_store_decrypt_key_row(store, p->name, &row.keys[i], &p->keys[i])) != 0)
            goto out;
        p->n_keys++;
    }
    *out = p;
    p = NULL;
out:
    ck_db_principal_free(p);
    ck_store_princ_row_clear(&row);
    return ret;
}

int
ck_store_get_principal(ck_store *store, const char *name, ck_db_principal **out)
{
    *out = NULL;
    if (name == NULL)
        return ck_error_set(CK_ERR_INVAL, "no principal name");
    return ck_store_load_principal(store, name, out);
}

int
ck_store_rotate_keys(ck_store *store, const char *name, const ck_db_key *keys, size_t n_keys,
                     unsigned keep, uint32_t *new_kvno)
{
    struct ck_store_key_row *rows = NULL;
    ck_db_principal *cur = NULL;
    uint32_t next;
    int ret;

    if (store->readonly)
        return ck_error_set(CK_ERR_PERM, "database opened read-only");
    if (n_keys == 0)
        return ck_error_set(CK_ERR_INVAL, "principal %s: no keys", name);
    if (keep == 0)
        keep = CK_STORE_KEEP_KVNOS;
    if ((ret = check_keys(name, keys, n_keys, 0)) != 0)
        return ret;
    if ((ret = ck_store_get_principal(store, name, &cur)) != 0)
        return ret;
    next = cur->kvno + 1;
    /* kvno 0 is "no kvno" on the wire; a wrapped counter restarts at 1. */
    if (next == 0)
        next = 1;
    if ((ret = encrypt_keys(store, name, keys, n_keys, next, &rows)) != 0)
        goto out;
    {
        char detail[CK_AUDIT_DETAIL_MAX];
        store_audit_describe_keys(detail, sizeof(detail), keys, n_keys);
        store_audit_begin(store, "principal.rotate", name, "kvno %u -> %u, %s, keep %u kvnos",
                          cur->kvno, next, detail, keep);
    }
    ret = store->ops->rotate(store->be, name, cur->kvno, next, rows, n_keys, keep, now_sec());
    store_audit_end(store);
    if (ret != 0)
        goto out;
    ck_store_cache_invalidate(&store->cache, name);
    if (new_kvno != NULL)
        *new_kvno = next;
out:
    free_key_rows(rows, n_keys);
    ck_db_principal_free(cur);
    return ret;
}

/* ---- devices ---- */

int
ck_device_mac_parse(const char *in, char out[CK_DEVICE_MAC_LEN + 1])
{
    return ck_mac_canonical(in, out);
}

const char *
ck_device_state_name(enum ck_device_state state)
{
    switch (state) {
    case CK_DEVICE_ACTIVE: return "active";
    case CK_DEVICE_REVOKED: return "revoked";
    case CK_DEVICE_UNPROVISIONED: return "unprovisioned";
    }
    return "unknown";
}

int
ck_device_pin_parse_hex(const char *hex, uint8_t out[CK_DEVICE_SPKI_HASH_LEN])
{
    const size_t plain = 2 * CK_DEVICE_SPKI_HASH_LEN, grouped = 3 * CK_DEVICE_SPKI_HASH_LEN - 1;
    size_t n, step;

    if (hex == NULL)
        return ck_error_set(CK_ERR_INVAL, "no key hash");
    n = strnlen(hex, grouped + 1);
    if (n == plain)
        step = 2;
    else if (n == grouped)
        step = 3;
    else
        return ck_error_set(CK_ERR_INVAL, "a SHA-256 key hash is 64 hex digits (got %zu%s "
                                          "characters)", n, n > grouped ? " or more" : "");
    for (size_t i = 0; i < CK_DEVICE_SPKI_HASH_LEN; i++) {
        const char *g = hex + i * step;
        int hi = ck_hex_digit((unsigned char)g[0]), lo = ck_hex_digit((unsigned char)g[1]);

        if (hi < 0 || lo < 0 || (step == 3 && i + 1 < CK_DEVICE_SPKI_HASH_LEN && g[2] != ':')) {
            ck_memzero(out, CK_DEVICE_SPKI_HASH_LEN);
            return ck_error_set(CK_ERR_INVAL, "a SHA-256 key hash is 64 hex digits "
                                              "(optionally in ':'-separated pairs)");
        }
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

void
ck_device_pin_format_hex(const uint8_t pin[CK_DEVICE_SPKI_HASH_LEN],
                         char out[2 * CK_DEVICE_SPKI_HASH_LEN + 1])
{
    static const char hexchars[] = "0123456789abcdef";

    for (size_t i = 0; i < CK_DEVICE_SPKI_HASH_LEN; i++) {
        out[2 * i] = hexchars[pin[i] >> 4];
        out[2 * i + 1] = hexchars[pin[i] & 0xf];
    }
    out[2 * CK_DEVICE_SPKI_HASH_LEN] = '\0';
}

void
ck_db_device_free(ck_db_device *dev)
{
    if (dev == NULL)
        return;
    free(dev->principal);
    free(dev->comment);
    free(dev);
}

/* Comments are shown by the CLI and may reach logs: valid UTF-8 without control characters
 * (C0, DEL, C1), so they cannot move a terminal's cursor or forge a line. */
int
ck_device_comment_check(const char *c)
{
    const unsigned char *p = (const unsigned char *)c;
    size_t len;

    if (c == NULL)
        return 0;
    len = strnlen(c, CK_DEVICE_COMMENT_MAX + 1);
    if (len > CK_DEVICE_COMMENT_MAX)
        return ck_error_set(CK_ERR_LIMIT, "device comment longer than %d bytes",
                            CK_DEVICE_COMMENT_MAX);
    while (*p != '\0') {
        uint32_t cp;
        size_t extra;

        if (*p < 0x80) {
            cp = *p;
            extra = 0;
        } else if ((*p & 0xe0) == 0xc0) {
            cp = *p & 0x1f;
            extra = 1;
        } else if ((*p & 0xf0) == 0xe0) {
            cp = *p & 0x0f;
            extra = 2;
        } else if ((*p & 0xf8) == 0xf0) {
            cp = *p & 0x07;
            extra = 3;
        } else {
            return ck_error_set(CK_ERR_INVAL, "device comment is not valid UTF-8");
        }
        for (size_t i = 1; i <= extra; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return ck_error_set(CK_ERR_INVAL, "device comment is not valid UTF-8");
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        /* Overlong forms, surrogates and values past U+10FFFF are not UTF-8 either. */
        if ((extra == 1 && cp < 0x80) || (extra == 2 && cp < 0x800) ||
            (extra == 3 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return ck_error_set(CK_ERR_INVAL, "device comment is not valid UTF-8");
        if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
            return ck_error_set(CK_ERR_INVAL, "device comment holds a control character");
        p += extra + 1;
    }
    return 0;
}

/* Checks what the backend returned, so a hand-edited database cannot hand the KDC a record
 * it would misread. borrow: dev points into row (valid while row is). */
static int
device_from_row(struct ck_store_device_row *row, bool borrow, ck_db_device *dev)
{
    char canon[CK_DEVICE_MAC_LEN + 1];

    memset(dev, 0, sizeof(*dev));
    if (row->mac == NULL || ck_device_mac_parse(row->mac, canon) != 0 ||
        strcmp(canon, row->mac) != 0 || row->principal == NULL || row->comment == NULL)
        return ck_error_set(CK_ERR_DB, "device row malformed");
    if (row->state != CK_DEVICE_ACTIVE && row->state != CK_DEVICE_REVOKED &&
        row->state != CK_DEVICE_UNPROVISIONED)
        return ck_error_set(CK_ERR_UNSUPPORTED, "device %s: state %d unknown to this version",
                            row->mac, row->state);
    memcpy(dev->mac, canon, sizeof(dev->mac));
    dev->state = (enum ck_device_state)row->state;
    dev->has_pin = row->has_pin;
    memcpy(dev->spki_sha256, row->spki_sha256, sizeof(dev->spki_sha256));
    dev->created = row->created;
    dev->modified = row->modified;
    dev->revoked = row->revoked;
    dev->generation = row->generation;
    dev->has_cert = row->has_cert;
    memcpy(dev->cert_sha256, row->cert_sha256, sizeof(dev->cert_sha256));
    dev->principal = row->principal;
    dev->comment = row->comment;
    if (!borrow) {
        row->principal = NULL;
        row->comment = NULL;
    }
    return 0;
}

int
ck_store_load_device(ck_store *store, const char *mac, ck_db_device **out)
{
    struct ck_store_device_row row;
    ck_db_device *dev = NULL;
    int ret;

    *out = NULL;
    if ((ret = store->ops->device_get(store->be, mac, &row)) != 0)
        return ret;
    dev = calloc(1, sizeof(*dev));
    if (dev == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "device record");
        goto out;
    }
    if ((ret = device_from_row(&row, false, dev)) != 0)
        goto out;
    *out = dev;
    dev = NULL;
out:
    ck_db_device_free(dev);
    ck_store_device_row_clear(&row);
    return ret;
}

static int
device_write_check(const ck_store *store)
{
    if (store->readonly)
        return ck_error_set(CK_ERR_PERM, "database opened read-only");
    return 0;
}

int
ck_store_add_device(ck_store *store, const ck_db_device *dev)
{
    struct ck_store_device_row row;
    char mac[CK_DEVICE_MAC_LEN + 1];
    int ret;

    memset(&row, 0, sizeof(row));
    if (dev == NULL)
        return ck_error_set(CK_ERR_INVAL, "no device");
    if ((ret = device_write_check(store)) != 0 || (ret = ck_device_mac_parse(dev->mac, mac)) != 0)
        return ret;
    if (dev->state != CK_DEVICE_ACTIVE)
        return ck_error_set(CK_ERR_INVAL, "device %s: a new device must be active", mac);
    if ((ret = check_name(store, dev->principal)) != 0 ||
        (ret = ck_device_comment_check(dev->comment)) != 0)
        return ret;
    row.mac = mac;
    row.principal = dev->principal;
    row.state = CK_DEVICE_ACTIVE;
    row.has_pin = dev->has_pin;
    if (dev->has_pin)
        memcpy(row.spki_sha256, dev->spki_sha256, sizeof(row.spki_sha256));
    row.comment = (char *)(dev->comment != NULL ? dev->comment : "");
    {
        char hex[2 * CK_DEVICE_SPKI_HASH_LEN + 1] = "";
        if (dev->has_pin)
            ck_device_pin_format_hex(dev->spki_sha256, hex);
        /* The pin is a public key's hash, not a secret: the log says which key was pinned. */
        store_audit_begin(store, "device.add", mac, "principal %s, %s%s%s%s", dev->principal,
                          dev->has_pin ? "key pinned, SPKI SHA-256 " : "not pinned", hex,
                          row.comment[0] ? ", comment " : "", row.comment);
    }
    ret = store->ops->device_add(store->be, &row, now_sec());
    store_audit_end(store);
    if (ret == 0)
        ck_store_cache_invalidate(&store->dev_cache, mac);
    return ret;
}

int
ck_store_get_device(ck_store *store, const char *mac, ck_db_device **out)
{
    char canon[CK_DEVICE_MAC_LEN + 1];
    int ret;

    *out = NULL;
    if ((ret = ck_device_mac_parse(mac, canon)) != 0)
        return ret;
    return ck_store_load_device(store, canon, out);
}

struct device_list_ctx {
    ck_store_device_cb cb;
    void *arg;
};

static int
device_list_row(const struct ck_store_device_row *row, void *arg)
{
    struct device_list_ctx *ctx = arg;
    struct ck_store_device_row copy = *row;
    ck_db_device dev;
    int ret;

    if ((ret = device_from_row(&copy, true, &dev)) != 0)
        return ret;
    return ctx->cb(&dev, ctx->arg);
}

int
ck_store_list_devices(ck_store *store, const char *principal, const char *after,
                      size_t limit, ck_store_device_cb cb, void *arg, size_t *n_out)
{
    struct device_list_ctx ctx = {cb, arg};
    char canon[CK_DEVICE_MAC_LEN + 1];
    size_t n = 0;
    int ret;

    if (n_out != NULL)
        *n_out = 0;
    if (cb == NULL || limit == 0 || limit > CK_DEVICE_LIST_MAX)
        return ck_error_set(CK_ERR_INVAL, "device list: limit must be 1..%d",
                            CK_DEVICE_LIST_MAX);
    if (principal != NULL && (ret = check_name(store, principal)) != 0)
        return ret;
    if (after != NULL) {
        if ((ret = ck_device_mac_parse(after, canon)) != 0)
            return ret;
        after = canon;
    }
    ret = store->ops->device_list(store->be, principal, after, limit, device_list_row, &ctx, &n);
    if (n_out != NULL)
        *n_out = n;
    return ret;
}

int
ck_store_set_device_state(ck_store *store, const char *mac, enum ck_device_state state,
                          bool *changed)
{
    char canon[CK_DEVICE_MAC_LEN + 1];
    bool ch = false;
    int ret;

    if (changed != NULL)
        *changed = false;
    if ((ret = device_write_check(store)) != 0 || (ret = ck_device_mac_parse(mac, canon)) != 0)
        return ret;
    if (state != CK_DEVICE_ACTIVE && state != CK_DEVICE_REVOKED)
        return ck_error_set(CK_ERR_INVAL, "device %s: cannot set state %d", canon, (int)state);
    store_audit_begin(store, state == CK_DEVICE_REVOKED ? "device.revoke" : "device.reinstate",
                      canon, NULL);
    ret = store->ops->device_update(store->be, canon, CK_DEV_SET_STATE, (int)state, NULL,
                                    now_sec(), &ch);
    store_audit_end(store);
    if (ret == 0 && ch)
        ck_store_cache_invalidate(&store->dev_cache, canon);
    if (changed != NULL)
        *changed = ch;
    return ret;
}

int
ck_store_delete_device(ck_store *store, const char *mac)
{
    char canon[CK_DEVICE_MAC_LEN + 1];
    int ret;

    if ((ret = device_write_check(store)) != 0 || (ret = ck_device_mac_parse(mac, canon)) != 0)
        return ret;
    store_audit_begin(store, "device.delete", canon, NULL);
    ret = store->ops->device_del(store->be, canon);
    store_audit_end(store);
    if (ret == 0)
        ck_store_cache_invalidate(&store->dev_cache, canon);
    return ret;
}

int
ck_store_set_device_pin(ck_store *store, const char *mac, const uint8_t *spki_sha256)
{
    char canon[CK_DEVICE_MAC_LEN + 1];
    bool changed = false;
    int ret;

    if ((ret = device_write_check(store)) != 0 || (ret = ck_device_mac_parse(mac, canon)) != 0)
        return ret;
    if (spki_sha256 != NULL) {
        char hex[2 * CK_DEVICE_SPKI_HASH_LEN + 1];
        ck_device_pin_format_hex(spki_sha256, hex);
        store_audit_begin(store, "device.pin", canon, "SPKI SHA-256 %s", hex);
    } else {
        store_audit_begin(store, "device.unpin", canon, NULL);
    }
    ret = store->ops->device_update(store->be, canon, CK_DEV_SET_PIN, 0, spki_sha256, now_sec(),
                                    &changed);
    store_audit_end(store);
    if (ret == 0 && changed)
        ck_store_cache_invalidate(&store->dev_cache, canon);
    return ret;
}

int
ck_store_device_pin_check(ck_store *store, const char *mac, const uint8_t *spki_sha256,
                          enum ck_device_pin_result *result, uint64_t *generation)
{
    char canon[CK_DEVICE_MAC_LEN + 1];
    int ret;

    *result = CK_DEVICE_PIN_MISMATCH;
    if (spki_sha256 == NULL)
        return ck_error_set(CK_ERR_INVAL, "no key hash");
    if ((ret = device_write_check(store)) != 0 || (ret = ck_device_mac_parse(mac, canon)) != 0)
        return ret;
    {
        char hex[2 * CK_DEVICE_SPKI_HASH_LEN + 1];
        ck_device_pin_format_hex(spki_sha256, hex);
        store_audit_begin(store, "device.pin", canon,
                          "first login (trust on first use), SPKI SHA-256 %s", hex);
    }
    ret = store->ops->device_pin_check(store->be, canon, spki_sha256, result, generation,
                                       now_sec());
    store_audit_end(store);
    if (ret == 0 && *result == CK_DEVICE_PIN_SET)
        ck_store_cache_invalidate(&store->dev_cache, canon);
    return ret;
}

/* ---- for the other lib/store files (store_int.h) ---- */

int
ck_store_check_name_int(const ck_store *store, const char *name)
{
    return check_name(store, name);
}

int
ck_store_encrypt_keys_int(const ck_store *store, const char *name, const ck_db_key *keys,
                          size_t n, uint32_t kvno_override, struct ck_store_key_row **out)
{
    return encrypt_keys(store, name, keys, n, kvno_override, out);
}

void
ck_store_free_key_rows_int(struct ck_store_key_row *rows, size_t n)
{
    free_key_rows(rows, n);
}

int64_t
ck_store_now_int(void)
{
    return now_sec();
}
