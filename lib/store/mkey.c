/* Master-key rotation, the generic side: add -> activate -> reencrypt -> retire (store.h).
 *
 * Order of writes, so that a crash anywhere leaves a state the next run completes and no key
 * ever sits under a master key that is nowhere stored:
 * - add writes the stash before the database row (a key in the stash only is adopted by the
 *   next add; a row without its stash key could never be activated);
 * - activate only switches realm.master_kvno to a key this stash holds and the row checks;
 * - reencrypt rewrites stored keys under the active kvno, one transaction per batch;
 * - retire deletes the row first (the backend refuses while any key is under it, and the schema
 *   refuses a key under a kvno without a row), then rewrites the stash without the key.
 * The stash writers (add, retire) hold an advisory lock beside the stash so two operators on
 * one host do not interleave their rewrites. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "cablekey/error.h"
#include "cablekey/store.h"
#include "cablekey/util.h"
#include "store/store_int.h"

static ck_mkey_hook mkey_hook;
static void *mkey_hook_arg;

void
ck_store_mkey_set_hook(ck_mkey_hook hook, void *arg)
{
    mkey_hook = hook;
    mkey_hook_arg = arg;
}

/* Non-zero: the step stops here (a simulated crash). */
static int
hook(const char *point)
{
    int ret;

    if (mkey_hook == NULL || (ret = mkey_hook(point, mkey_hook_arg)) == 0)
        return 0;
    return ck_error_set(ret < 0 ? ret : CK_ERR_INVAL, "stopped at %s", point);
}

void
ck_store_mkey_set_reread_interval(ck_store *store, int64_t ms)
{
    if (store->ring != NULL)
        store->ring->reread_ms = ms < 0 ? 0 : ms;
}

uint64_t
ck_store_mkey_rereads(const ck_store *store)
{
    return store->ring != NULL ? store->ring->rereads : 0;
}

static int
need_ops(const ck_store *store)
{
    const struct ck_store_ops *o = store->ops;

    if (store->ring == NULL)
        return ck_error_set(CK_ERR_INVAL, "master-key rotation needs a store opened with its "
                                          "stash");
    if (o->mkey_list == NULL || o->mkey_add == NULL || o->mkey_activate == NULL ||
        o->mkey_count == NULL || o->mkey_reencrypt == NULL || o->mkey_retire == NULL)
        return ck_error_set(CK_ERR_UNSUPPORTED, "the %s backend has no master-key rotation",
                            o->name);
    return 0;
}

/* The advisory lock of the stash writers: "<stash>.lock", 0600, never waited for. */
static int
lock_stash(const ck_store *store, int *fd_out)
{
    char path[4096];
    int fd, n;

    *fd_out = -1;
    n = snprintf(path, sizeof(path), "%s.lock", store->ring->stash_path);
    if (n < 0 || (size_t)n >= sizeof(path))
        return ck_error_set(CK_ERR_LIMIT, "stash path too long");
    fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return ck_error_set(CK_ERR_IO, "%s: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK)
            return ck_error_set(CK_ERR_POLICY, "another master-key rotation holds %s", path);
        return ck_error_set(CK_ERR_IO, "%s: %s", path, strerror(e));
    }
    *fd_out = fd;
    return 0;
}

static void
unlock_stash(int fd)
{
    if (fd >= 0)
        close(fd); /* releases the flock */
}

/* The realm's master kvno as the database has it now (another process may have moved it). */
static int
db_active(ck_store *store, uint32_t *active)
{
    struct ck_store_mkey_row mrow;
    ck_realm_info realm;
    int ret;

    memset(&mrow, 0, sizeof(mrow));
    memset(&realm, 0, sizeof(realm));
    ret = store->ops->load_realm(store->be, &realm, &mrow);
    ck_store_mkey_row_clear(&mrow);
    if (ret == 0)
        *active = realm.master_kvno;
    return ret;
}

static const struct ck_store_mkey_row *
find_row(const struct ck_store_mkey_row *rows, size_t n, uint32_t kvno)
{
    for (size_t i = 0; i < n; i++)
        if (rows[i].kvno == kvno)
            return &rows[i];
    return NULL;
}

/* Fresh view: the stash file as it is now (file: what other processes read; the store's ring
 * also keeps keys it held before), the rows and the active kvno. */
static int
load_state(ck_store *store, struct ck_store_keyring *file, struct ck_store_mkey_row **rows,
           size_t *n, uint32_t *active)
{
    int ret;

    *rows = NULL;
    *n = 0;
    memset(file, 0, sizeof(*file));
    if ((ret = need_ops(store)) != 0 || (ret = ck_store_mkey_reload_int(store)) != 0 ||
        (ret = ck_store_stash_read_int(store->ring->stash_path, file)) != 0 ||
        (ret = store->ops->mkey_list(store->be, rows, n)) != 0)
        return ret;
    if ((ret = db_active(store, active)) != 0) {
        ck_store_mkey_rows_free(*rows, *n);
        *rows = NULL;
        *n = 0;
    }
    return ret;
}

int
ck_store_mkey_status(ck_store *store, ck_mkey_status *out)
{
    struct ck_store_mkey_row *rows = NULL;
    struct ck_store_keyring file, *ring = &file;
    size_t n = 0;
    int ret;

    memset(out, 0, sizeof(*out));
    if ((ret = load_state(store, &file, &rows, &n, &out->active)) != 0)
        goto out;
    for (size_t i = 0, j = 0; i < n || j < ring->n;) {
        ck_mkey_info *e;
        uint32_t kvno;

        if (out->n == CK_MKEY_LIST_MAX) {
            ret = ck_error_set(CK_ERR_LIMIT, "more than %d master keys", CK_MKEY_LIST_MAX);
            goto out;
        }
        if (j >= ring->n || (i < n && rows[i].kvno <= ring->keys[j].kvno))
            kvno = rows[i].kvno;
        else
            kvno = ring->keys[j].kvno;
        e = &out->keys[out->n++];
        e->kvno = kvno;
        e->active = kvno == out->active;
        if (i < n && rows[i].kvno == kvno) {
            e->in_db = true;
            e->enctype = rows[i].enctype;
            e->created = rows[i].created;
            if ((ret = store->ops->mkey_count(store->be, 0, kvno, &e->keys, &e->history)) != 0)
                goto out;
            i++;
        }
        if (j < ring->n && ring->keys[j].kvno == kvno) {
            e->in_stash = true;
            e->enctype = ring->keys[j].key.enctype;
            j++;
        }
    }
    {
        uint64_t k = 0, h = 0;
        if ((ret = store->ops->mkey_count(store->be, out->active, 0, &k, &h)) != 0)
            goto out;
        out->pending = k + h;
    }
out:
    ck_store_ring_clear_int(&file);
    ck_store_mkey_rows_free(rows, n);
    return ret;
}

/* The row of a stash key (its check value under the realm name). */
static int
make_row(ck_store *store, uint32_t kvno, const ck_key *k, struct ck_store_mkey_row *row)
{
    memset(row, 0, sizeof(*row));
    row->kvno = kvno;
    row->enctype = k->enctype;
    return ck_store_mkey_make_check_int(k, store->realm.name, &row->check, &row->check_len);
}

static int
insert_row(ck_store *store, uint32_t kvno, const ck_key *k)
{
    struct ck_store_mkey_row row;
    int ret;

    if ((ret = make_row(store, kvno, k, &row)) != 0)
        return ret;
    store_audit_begin(store, "mkey.add", NULL, "master key kvno %u enctype %s", kvno,
                      ck_enctype_name(k->enctype));
    ret = store->ops->mkey_add(store->be, &row, ck_store_now_int());
    store_audit_end(store);
    ck_store_mkey_row_clear(&row);
    return ret;
}

int
ck_store_mkey_add(ck_store *store, int32_t enctype, uint32_t *kvno_out, bool *created)
{
    struct ck_store_mkey_row *rows = NULL;
    struct ck_store_keyring next, file, *ring = &file;
    const ck_key *k;
    size_t n = 0;
    uint32_t active = 0, kvno = 0;
    int lock = -1, ret;

    memset(&next, 0, sizeof(next));
    memset(&file, 0, sizeof(file));
    *kvno_out = 0;
    if (created != NULL)
        *created = false;
    if (enctype == 0)
        enctype = CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96;
    if (!ck_enctype_is_supported(enctype))
        return ck_error_set(CK_ERR_UNSUPPORTED, "enctype %d not supported", (int)enctype);
    if ((ret = need_ops(store)) != 0 || (ret = lock_stash(store, &lock)) != 0)
        return ret;
    if ((ret = load_state(store, &file, &rows, &n, &active)) != 0)
        goto out;
    if (ck_store_ring_find(ring, active) == NULL) {
        ret = ck_error_set(CK_ERR_NOTFOUND, "the stash %s does not hold the active master key "
                                            "kvno %u: restore it first", store->ring->stash_path,
                           active);
        goto out;
    }
    /* An earlier add not activated yet: the newest row above the active kvno. */
    for (size_t i = n; i > 0; i--) {
        if (rows[i - 1].kvno <= active)
            break;
        if (ck_store_ring_find(ring, rows[i - 1].kvno) == NULL) {
            ret = ck_error_set(CK_ERR_NOTFOUND,
                               "master key kvno %u was added to the database but the stash %s "
                               "does not hold it (copy the stash that add wrote here, or "
                               "retire kvno %u)", rows[i - 1].kvno, store->ring->stash_path,
                               rows[i - 1].kvno);
            goto out;
        }
        *kvno_out = rows[i - 1].kvno;
        goto out;
    }
    /* A key an interrupted add left in the stash only: above every row and the active kvno. */
    if (ring->n > 0) {
        uint32_t top = ring->keys[ring->n - 1].kvno;
        if (top > active && (n == 0 || top > rows[n - 1].kvno)) {
            if ((ret = insert_row(store, top, &ring->keys[ring->n - 1].key)) != 0)
                goto out;
            *kvno_out = top;
            if (created != NULL)
                *created = true;
            ret = hook("after-add");
            goto out;
        }
    }
    kvno = active;
    if (n > 0 && rows[n - 1].kvno > kvno)
        kvno = rows[n - 1].kvno;
    if (ring->n > 0 && ring->keys[ring->n - 1].kvno > kvno)
        kvno = ring->keys[ring->n - 1].kvno;
    if (kvno == UINT32_MAX) {
        ret = ck_error_set(CK_ERR_LIMIT, "master key kvnos exhausted");
        goto out;
    }
    kvno++;
    if (ring->n >= CK_STASH_MAX_KEYS) {
        ret = ck_error_set(CK_ERR_LIMIT, "the stash already holds %d master keys: retire old "
                                         "ones first", CK_STASH_MAX_KEYS);
        goto out;
    }
    /* The stash as read plus the new key; the ring already holds what the file holds. */
    next.n = ring->n;
    for (size_t i = 0; i < ring->n; i++) {
        next.keys[i].kvno = ring->keys[i].kvno;
        if ((ret = ck_key_copy(&next.keys[i].key, &ring->keys[i].key)) != 0)
            goto out;
    }
    next.keys[next.n].kvno = kvno;
    if ((ret = ck_random_key(enctype, &next.keys[next.n].key)) != 0)
        goto out;
    next.n++;
    if ((ret = ck_store_stash_write_int(store->ring->stash_path, &next)) != 0 ||
        (ret = ck_store_mkey_reload_int(store)) != 0 || (ret = hook("add-stash")) != 0)
        goto out;
    if ((k = ck_store_ring_find(store->ring, kvno)) == NULL) {
        ret = ck_error_set(CK_ERR_IO, "stash %s: the new key did not read back",
                           store->ring->stash_path);
        goto out;
    }
    if ((ret = insert_row(store, kvno, k)) != 0)
        goto out;
    *kvno_out = kvno;
    if (created != NULL)
        *created = true;
    ret = hook("after-add");
out:
    ck_store_ring_clear_int(&next);
    ck_store_ring_clear_int(&file);
    ck_store_mkey_rows_free(rows, n);
    unlock_stash(lock);
    return ret;
}

int
ck_store_mkey_activate(ck_store *store, uint32_t kvno)
{
    struct ck_store_mkey_row *rows = NULL;
    const struct ck_store_mkey_row *row;
    struct ck_store_keyring file;
    const ck_key *k;
    size_t n = 0;
    uint32_t active = 0;
    int ret;

    if ((ret = load_state(store, &file, &rows, &n, &active)) != 0)
        goto out;
    if (kvno == 0) {
        if (n == 0 || rows[n - 1].kvno <= active) {
            ret = ck_error_set(CK_ERR_NOTFOUND, "no master key was added after the active kvno "
                                                "%u: add one first", active);
            goto out;
        }
        kvno = rows[n - 1].kvno;
    }
    if (kvno == active)
        goto out;
    if ((row = find_row(rows, n, kvno)) == NULL) {
        ret = ck_error_set(CK_ERR_NOTFOUND, "master key kvno %u is not in the database", kvno);
        goto out;
    }
    /* The file, not what this process remembers: the KDCs read the file. */
    if ((k = ck_store_ring_find(&file, kvno)) == NULL) {
        ret = ck_error_set(CK_ERR_NOTFOUND, "the stash %s does not hold master key kvno %u",
                           store->ring->stash_path, kvno);
        goto out;
    }
    if ((ret = ck_store_mkey_verify_int(k, kvno, store->realm.name, row,
                                        store->ring->stash_path)) != 0)
        goto out;
    store_audit_begin(store, "mkey.activate", NULL, "master key kvno %u -> %u", active, kvno);
    ret = store->ops->mkey_activate(store->be, kvno, ck_store_now_int());
    store_audit_end(store);
    if (ret != 0)
        goto out;
    store->ring->active = kvno;
    store->realm.master_kvno = kvno;
    ret = hook("after-activate");
out:
    ck_store_ring_clear_int(&file);
    ck_store_mkey_rows_free(rows, n);
    return ret;
}

struct rewrap_ctx {
    ck_store *store;
    uint32_t mkvno;
    uint64_t batch_done;
    uint64_t total;
};

/* Inside the backend's batch transaction: one stored key, decrypted under the kvno its row
 * names and encrypted under the active one, still bound to its principal, kvno and enctype. */
static int
rewrap(void *arg, const char *name, const struct ck_store_key_row *in,
       struct ck_store_key_row *out)
{
    struct rewrap_ctx *c = arg;
    ck_db_key k;
    int ret;

    if ((ret = ck_store_decrypt_key_row(c->store, name, in, &k)) != 0)
        return ret;
    ret = ck_store_encrypt_key_under_int(c->store, name, &k, c->mkvno, out);
    ck_key_clear(&k.key);
    free(k.salt);
    if (ret != 0)
        return ret;
    ck_store_cache_invalidate(&c->store->cache, name);
    c->batch_done++;
    /* The audit row is written when the batch commits: its detail carries the final count. */
    store_audit_begin(c->store, "mkey.reencrypt", NULL, "%llu key%s to master key kvno %u",
                      (unsigned long long)c->batch_done, c->batch_done == 1 ? "" : "s",
                      c->mkvno);
    return 0;
}

int
ck_store_mkey_reencrypt(ck_store *store, size_t batch, ck_mkey_progress_cb progress, void *arg,
                        uint64_t *done_out)
{
    struct rewrap_ctx c;
    uint32_t active = 0;
    int ret;

    memset(&c, 0, sizeof(c));
    if (done_out != NULL)
        *done_out = 0;
    if (batch == 0)
        batch = CK_MKEY_BATCH_DEFAULT;
    if (batch > CK_MKEY_BATCH_MAX)
        return ck_error_set(CK_ERR_LIMIT, "batch %zu (1..%d)", batch, CK_MKEY_BATCH_MAX);
    if ((ret = need_ops(store)) != 0 || (ret = ck_store_mkey_reload_int(store)) != 0 ||
        (ret = db_active(store, &active)) != 0)
        return ret;
    if (ck_store_ring_find(store->ring, active) == NULL)
        return ck_error_set(CK_ERR_NOTFOUND, "the stash %s does not hold the active master key "
                                             "kvno %u", store->ring->stash_path, active);
    store->ring->active = active;
    store->realm.master_kvno = active;
    c.store = store;
    c.mkvno = active;
    for (;;) {
        size_t done = 0;

        c.batch_done = 0;
        store_audit_begin(store, "mkey.reencrypt", NULL, "0 keys to master key kvno %u", active);
        ret = store->ops->mkey_reencrypt(store->be, active, batch, rewrap, &c, &done,
                                         ck_store_now_int());
        store_audit_end(store);
        if (ret != 0 || done == 0)
            break;
        c.total += done;
        if (done_out != NULL)
            *done_out = c.total;
        if ((ret = hook("mid-reencrypt")) != 0)
            break;
        if (progress != NULL && (ret = progress(c.total, arg)) != 0)
            break;
    }
    return ret;
}

static bool
dropped(const uint32_t *drop, size_t n_drop, uint32_t kvno)
{
    for (size_t j = 0; j < n_drop; j++)
        if (drop[j] == kvno)
            return true;
    return false;
}

/* The stash file without the keys of `drop` (kvnos), atomically; they leave this store's ring
 * too (which otherwise keeps keys across re-reads). */
static int
stash_drop(ck_store *store, const struct ck_store_keyring *file, const uint32_t *drop,
           size_t n_drop)
{
    struct ck_store_keyring *ring = store->ring, next;
    int ret = 0;

    memset(&next, 0, sizeof(next));
    for (size_t i = 0; i < file->n && ret == 0; i++) {
        if (dropped(drop, n_drop, file->keys[i].kvno))
            continue;
        next.keys[next.n].kvno = file->keys[i].kvno;
        ret = ck_key_copy(&next.keys[next.n].key, &file->keys[i].key);
        next.n++;
    }
    if (ret == 0 && next.n != file->n)
        ret = ck_store_stash_write_int(ring->stash_path, &next);
    if (ret == 0) {
        size_t keep = 0;
        for (size_t i = 0; i < ring->n; i++) {
            if (dropped(drop, n_drop, ring->keys[i].kvno)) {
                ck_key_clear(&ring->keys[i].key);
                continue;
            }
            if (keep != i) {
                ring->keys[keep] = ring->keys[i];
                ck_memzero(&ring->keys[i], sizeof(ring->keys[i]));
            }
            keep++;
        }
        ring->n = keep;
    }
    ck_store_ring_clear_int(&next);
    return ret;
}

int
ck_store_mkey_retire(ck_store *store, uint32_t kvno, size_t *n_out)
{
    struct ck_store_mkey_row *rows = NULL;
    struct ck_store_keyring file;
    uint32_t drop[CK_MKEY_LIST_MAX];
    size_t n = 0, n_drop = 0;
    uint32_t active = 0;
    int lock = -1, ret;

    memset(&file, 0, sizeof(file));
    if (n_out != NULL)
        *n_out = 0;
    if ((ret = need_ops(store)) != 0 || (ret = lock_stash(store, &lock)) != 0)
        return ret;
    if ((ret = load_state(store, &file, &rows, &n, &active)) != 0 ||
        (ret = hook("before-retire")) != 0)
        goto out;
    if (kvno == active) {
        ret = ck_error_set(CK_ERR_POLICY, "master key kvno %u is the active one: activate "
                                          "another first", kvno);
        goto out;
    }
    if (kvno != 0) {
        if (find_row(rows, n, kvno) == NULL && ck_store_ring_find(&file, kvno) == NULL) {
            ret = ck_error_set(CK_ERR_NOTFOUND, "no master key kvno %u", kvno);
            goto out;
        }
        drop[n_drop++] = kvno;
    } else {
        /* Every key older than the active one, in the database or left in the stash. */
        for (size_t i = 0; i < n && n_drop < CK_MKEY_LIST_MAX; i++)
            if (rows[i].kvno < active)
                drop[n_drop++] = rows[i].kvno;
        for (size_t i = 0; i < file.n && n_drop < CK_MKEY_LIST_MAX; i++)
            if (file.keys[i].kvno < active && find_row(rows, n, file.keys[i].kvno) == NULL)
                drop[n_drop++] = file.keys[i].kvno;
    }
    for (size_t i = 0; i < n_drop; i++) {
        uint64_t keys = 0, hist = 0;

        if (find_row(rows, n, drop[i]) == NULL)
            continue; /* a stash leftover: its row is gone already */
        if ((ret = store->ops->mkey_count(store->be, 0, drop[i], &keys, &hist)) != 0)
            goto out;
        if (keys + hist > 0) {
            ret = ck_error_set(CK_ERR_POLICY, "master key kvno %u still encrypts %llu keys and "
                                              "%llu password history keys: reencrypt first",
                               drop[i], (unsigned long long)keys, (unsigned long long)hist);
            goto out;
        }
        store_audit_begin(store, "mkey.retire", NULL, "master key kvno %u", drop[i]);
        ret = store->ops->mkey_retire(store->be, drop[i], ck_store_now_int());
        store_audit_end(store);
        if (ret != 0 || (ret = hook("retire-db")) != 0)
            goto out;
    }
    if (n_drop > 0 && (ret = stash_drop(store, &file, drop, n_drop)) != 0)
        goto out;
    if (n_out != NULL)
        *n_out = n_drop;
out:
    ck_store_ring_clear_int(&file);
    ck_store_mkey_rows_free(rows, n);
    unlock_stash(lock);
    return ret;
}
