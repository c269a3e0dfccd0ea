/* Logical Key Hierarchy core: flat arrays indexed by node id, LKH+ joins, batch rekeying by the
 * marking algorithm (definitions in include/cablekey/lkh.h). */
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/modes.h>
#include <openssl/rand.h>

#include "cablekey/error.h"
#include "cablekey/lkh.h"

#define NONE UINT32_MAX
#define JOIN_LABEL "cablekey lkh+ join"
#define KEY_POOL 64

/* flag bits, per node, only set during a batch */
#define F_TOUCHED 1u
#define F_DEPARTED 2u /* leaf: its member leaves in this batch */
#define F_CHANGED 4u  /* leaf: fresh key this batch (REPLACE or NEW) */
#define F_REPLACE 8u  /* a departed member knew this node's key */

struct lkh_tree {
    uint32_t degree, height;
    uint32_t n_nodes, first_leaf, n_leaves;
    uint32_t n_members;
    uint8_t (*key)[LKH_KEY_LEN];
    uint32_t *version;
    uint32_t *count;        /* members below (leaf: 0 or 1) */
    uint8_t *flag;
    uint32_t *leaf_member;  /* by leaf index: member ID or NONE */
    uint32_t *member_leaf;  /* by member ID: leaf index or NONE */
    uint32_t *free_ids;     /* stack of free member IDs, lowest on top */
    uint32_t n_free;
    uint8_t *dirty;         /* bitmap by node id: changed since lkh_tree_clear_dirty */
    EVP_CIPHER *ecb;
    EVP_CIPHER_CTX *cctx;
    uint8_t pool[KEY_POOL][LKH_KEY_LEN];
    uint32_t pool_left;
};

static uint32_t
parent_of(const struct lkh_tree *t, uint32_t node)
{
    return (node - 1) / t->degree;
}

static uint32_t
first_child(const struct lkh_tree *t, uint32_t node)
{
    return node * t->degree + 1;
}

static void
put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* The join one-way function: key becomes K(version) from K(version-1). */
static int
hash_forward(uint8_t key[LKH_KEY_LEN], uint32_t node, uint32_t version)
{
    uint8_t msg[sizeof(JOIN_LABEL) - 1 + 8], out[32];
    size_t outlen = 0;
    int rc = 0;

    memcpy(msg, JOIN_LABEL, sizeof(JOIN_LABEL) - 1);
    put_be32(msg + sizeof(JOIN_LABEL) - 1, node);
    put_be32(msg + sizeof(JOIN_LABEL) - 1 + 4, version);
    if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, LKH_KEY_LEN, msg, sizeof(msg), out,
                  sizeof(out), &outlen) == NULL || outlen != sizeof(out)) {
        rc = ck_error_set_ssl(CK_ERR_CRYPTO, "lkh: join hash");
        goto out;
    }
    memcpy(key, out, LKH_KEY_LEN);
out:
    OPENSSL_cleanse(out, sizeof(out));
    return rc;
}

/* Fresh node keys come from a pool refilled 64 keys at a time: RAND_priv_bytes costs about 2 us a
 * call whatever the length up to 1 KiB, which was a third of a batch's CPU at one call per key.
 * Each pooled key is handed out once and wiped from the pool as it is taken. */
static int
fresh_key(struct lkh_tree *t, uint8_t key[LKH_KEY_LEN])
{
    if (t->pool_left == 0) {
        if (RAND_priv_bytes(t->pool[0], (int)sizeof(t->pool)) != 1)
            return ck_error_set_ssl(CK_ERR_CRYPTO, "lkh: RAND_priv_bytes");
        t->pool_left = KEY_POOL;
    }
    t->pool_left--;
    memcpy(key, t->pool[t->pool_left], LKH_KEY_LEN);
    OPENSSL_cleanse(t->pool[t->pool_left], LKH_KEY_LEN);
    return 0;
}

/* RFC 3394 wrap (enc = 1) or unwrap (enc = 0) of one 16-byte key: OpenSSL's own key-wrap mode
 * (CRYPTO_128_wrap) over its AES-128-ECB block. OpenSSL 3.0's "id-aes128-wrap" cipher runs the same
 * mode on the table-driven AES_encrypt (about 1.5 us a wrap here); through EVP's ECB it gets AES-NI
 * (about 0.4 us), which is most of a batch's CPU. The output is the same RFC 3394 bytes (the unit
 * tests check both against each other and against the RFC's vector). ctx is an AES-128-ECB context
 * with padding off; the key schedule is set per call (each KEK wraps once per batch). */
struct kw_block {
    EVP_CIPHER_CTX *ctx;
    int err;
};

static void
kw_block_fn(const unsigned char in[16], unsigned char out[16], const void *key)
{
    struct kw_block *b = (struct kw_block *)key;
    int n = 0;

    if (!EVP_CipherUpdate(b->ctx, out, &n, in, 16) || n != 16)
        b->err = 1;
}

static EVP_CIPHER_CTX *
kw_ctx_new(EVP_CIPHER **ecb)
{
    EVP_CIPHER_CTX *ctx = NULL;

    if (*ecb == NULL && (*ecb = EVP_CIPHER_fetch(NULL, "AES-128-ECB", NULL)) == NULL)
        return NULL;
    if ((ctx = EVP_CIPHER_CTX_new()) == NULL || !EVP_CipherInit_ex2(ctx, *ecb, NULL, NULL, 1, NULL) ||
        !EVP_CIPHER_CTX_set_padding(ctx, 0)) {
        EVP_CIPHER_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

static int
aes_wrap(EVP_CIPHER_CTX *ctx, int enc, const uint8_t kek[LKH_KEY_LEN], const uint8_t *in,
         uint8_t *out)
{
    struct kw_block b = {ctx, 0};
    size_t n;

    if (!EVP_CipherInit_ex2(ctx, NULL, kek, NULL, enc, NULL))
        return ck_error_set_ssl(CK_ERR_CRYPTO, "lkh: AES key schedule");
    if (enc)
        n = CRYPTO_128_wrap(&b, NULL, out, in, LKH_KEY_LEN, kw_block_fn);
    else
        n = CRYPTO_128_unwrap(&b, NULL, out, in, LKH_WRAP_LEN, kw_block_fn);
    if (b.err)
        return ck_error_set_ssl(CK_ERR_CRYPTO, "lkh: AES block");
    if (n != (enc ? LKH_WRAP_LEN : LKH_KEY_LEN)) {
        if (enc)
            return ck_error_set(CK_ERR_CRYPTO, "lkh: key wrap");
        OPENSSL_cleanse(out, LKH_KEY_LEN);
        return ck_error_set(CK_ERR_INTEGRITY, "lkh: key unwrap failed");
    }
    return 0;
}

static void
mark_dirty(struct lkh_tree *t, uint32_t node)
{
    t->dirty[node >> 3] |= (uint8_t)(1u << (node & 7));
}

int
lkh_tree_new(uint32_t degree, uint32_t max_members, struct lkh_tree **out)
{
    struct lkh_tree *t = NULL;
    uint64_t leaves = 1, nodes = 1;
    uint32_t h = 0;
    int rc = 0;

    *out = NULL;
    if (degree == 0)
        degree = LKH_DEFAULT_DEGREE;
    if (degree < 2 || degree > LKH_MAX_DEGREE)
        return ck_error_set(CK_ERR_INVAL, "lkh: degree %u not in 2..%u", degree, LKH_MAX_DEGREE);
    if (max_members == 0 || max_members > LKH_MAX_MEMBERS)
        return ck_error_set(CK_ERR_LIMIT, "lkh: max_members %u not in 1..%u", max_members,
                            LKH_MAX_MEMBERS);
    /* at least one level, so the group key is never a member's own leaf key */
    do {
        leaves *= degree;
        nodes += leaves;
        h++;
    } while (leaves < max_members);
    if (h > LKH_MAX_HEIGHT || nodes > UINT32_MAX - 1)
        return ck_error_set(CK_ERR_LIMIT, "lkh: tree too large");
    /* Only the first max_members leaves exist: the arrays stop after the last of them (heap
     * order keeps every internal node before the first leaf), so a tree that is d^h slots wide
     * but far from full costs little more than its members. */
    nodes = nodes - leaves + max_members;
    leaves = max_members;
    if ((t = calloc(1, sizeof(*t))) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "lkh: tree");
        goto out;
    }
    t->degree = degree;
    t->height = h;
    t->n_nodes = (uint32_t)nodes;
    t->n_leaves = (uint32_t)leaves;
    t->first_leaf = (uint32_t)(nodes - leaves);
    t->key = calloc(nodes, LKH_KEY_LEN);
    t->version = calloc(nodes, sizeof(uint32_t));
    t->count = calloc(nodes, sizeof(uint32_t));
    t->flag = calloc(nodes, 1);
    t->leaf_member = malloc(leaves * sizeof(uint32_t));
    t->member_leaf = malloc(leaves * sizeof(uint32_t));
    t->free_ids = malloc(leaves * sizeof(uint32_t));
    t->dirty = calloc(nodes / 8 + 1, 1);
    if (t->key == NULL || t->version == NULL || t->count == NULL || t->flag == NULL ||
        t->leaf_member == NULL || t->member_leaf == NULL || t->free_ids == NULL ||
        t->dirty == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "lkh: %u nodes", t->n_nodes);
        goto out;
    }
    if ((t->cctx = kw_ctx_new(&t->ecb)) == NULL) {
        rc = ck_error_set_ssl(CK_ERR_CRYPTO, "lkh: AES-128 not available");
        goto out;
    }
    for (uint32_t i = 0; i < t->n_leaves; i++) {
        t->leaf_member[i] = NONE;
        t->member_leaf[i] = NONE;
        t->free_ids[i] = t->n_leaves - 1 - i;
    }
    t->n_free = t->n_leaves;
    *out = t;
    t = NULL;
out:
    lkh_tree_free(t);
    return rc;
}

void
lkh_tree_free(struct lkh_tree *t)
{
    if (t == NULL)
        return;
    if (t->key != NULL) {
        OPENSSL_cleanse(t->key, (size_t)t->n_nodes * LKH_KEY_LEN);
        free(t->key);
    }
    free(t->version);
    free(t->count);
    free(t->flag);
    free(t->leaf_member);
    free(t->member_leaf);
    free(t->free_ids);
    free(t->dirty);
    EVP_CIPHER_CTX_free(t->cctx);
    EVP_CIPHER_free(t->ecb);
    OPENSSL_cleanse(t->pool, sizeof(t->pool));
    free(t);
}

uint32_t
lkh_tree_degree(const struct lkh_tree *t)
{
    return t->degree;
}

uint32_t
lkh_tree_height(const struct lkh_tree *t)
{
    return t->height;
}

uint32_t
lkh_tree_members(const struct lkh_tree *t)
{
    return t->n_members;
}

size_t
lkh_tree_memory(const struct lkh_tree *t)
{
    return sizeof(*t) + (size_t)t->n_nodes * (LKH_KEY_LEN + 2 * sizeof(uint32_t) + 1) +
           (size_t)t->n_nodes / 8 + 1 + (size_t)t->n_leaves * 3 * sizeof(uint32_t);
}

/* How many existing leaf slots a subtree has: its leaves are [lo, lo + span) of the full
 * width, and only the first n_leaves exist. */
static uint64_t
capacity(const struct lkh_tree *t, uint64_t lo, uint64_t span)
{
    if (lo >= t->n_leaves)
        return 0;
    return t->n_leaves - lo < span ? t->n_leaves - lo : span;
}

/* Leftmost leaf whose slot is free (count 0), descending by subtree counts against capacities. */
static uint32_t
find_empty_leaf(const struct lkh_tree *t)
{
    uint32_t node = 0;
    uint64_t lo = 0, span = 1;

    for (uint32_t i = 0; i < t->height; i++)
        span *= t->degree;
    if (t->count[0] >= t->n_leaves)
        return NONE;
    while (node < t->first_leaf) {
        uint32_t c = first_child(t, node);
        span /= t->degree;
        /* the parent has room, so some existing child has: the scan stops before the end */
        while (t->count[c] >= capacity(t, lo, span)) {
            c++;
            lo += span;
        }
        node = c;
    }
    return node;
}

static uint32_t
alloc_member(struct lkh_tree *t, uint32_t leaf)
{
    uint32_t id = t->free_ids[--t->n_free];

    t->member_leaf[id] = leaf - t->first_leaf;
    t->leaf_member[leaf - t->first_leaf] = id;
    t->n_members++;
    return id;
}

int
lkh_tree_populate(struct lkh_tree *t, uint32_t n)
{
    uint32_t lo, hi; /* the non-empty node range of the current level */

    if (t->n_members != 0 || t->n_free != t->n_leaves)
        return ck_error_set(CK_ERR_EXISTS, "lkh: populate needs an empty tree");
    if (n > t->n_leaves)
        return ck_error_set(CK_ERR_FULL, "lkh: %u members do not fit in %u leaves", n,
                            t->n_leaves);
    if (n == 0)
        return 0;
    lo = t->first_leaf;
    hi = t->first_leaf + n - 1;
    for (uint32_t i = 0; i < n; i++) {
        t->count[lo + i] = 1;
        t->version[lo + i] = 1;
        t->leaf_member[i] = i;
        t->member_leaf[i] = i;
    }
    for (;;) {
        if (RAND_priv_bytes(t->key[lo], (int)((hi - lo + 1) * LKH_KEY_LEN)) != 1)
            return ck_error_set_ssl(CK_ERR_CRYPTO, "lkh: RAND_priv_bytes");
        for (uint32_t x = lo; x <= hi; x++)
            mark_dirty(t, x);
        if (lo == 0)
            break;
        for (uint32_t x = lo; x <= hi; x++)
            t->count[parent_of(t, x)] += t->count[x];
        lo = parent_of(t, lo);
        hi = parent_of(t, hi);
        for (uint32_t x = lo; x <= hi; x++)
            t->version[x] = 1;
    }
    /* the free list keeps its order: IDs n.. are handed out next, lowest first */
    t->n_free = t->n_leaves - n;
    t->n_members = n;
    return 0;
}

int
lkh_join(struct lkh_tree *t, uint32_t *member_id)
{
    uint32_t leaf, node;
    int rc;

    if ((leaf = find_empty_leaf(t)) == NONE || t->n_free == 0)
        return ck_error_set(CK_ERR_FULL, "lkh: tree full (%u members)", t->n_members);
    if ((rc = fresh_key(t, t->key[leaf])) != 0)
        return rc;
    t->version[leaf]++;
    mark_dirty(t, leaf);
    node = leaf;
    while (node != 0) {
        node = parent_of(t, node);
        t->version[node]++;
        mark_dirty(t, node);
        rc = t->count[node] == 0 ? fresh_key(t, t->key[node])
                                 : hash_forward(t->key[node], node, t->version[node]);
        if (rc != 0) {
            /* No member added. The ancestors already advanced keep their new key and version,
             * which the members reach by hashing forward as after any join. */
            OPENSSL_cleanse(t->key[leaf], LKH_KEY_LEN);
            return rc;
        }
    }
    for (node = leaf; node != 0; node = parent_of(t, node))
        t->count[node]++;
    t->count[0]++;
    *member_id = alloc_member(t, leaf);
    return 0;
}

int
lkh_member_export(const struct lkh_tree *t, uint32_t member_id, struct lkh_member *out)
{
    uint32_t node;

    if (member_id >= t->n_leaves || t->member_leaf[member_id] == NONE)
        return ck_error_set(CK_ERR_NOTFOUND, "lkh: member %u not in the group", member_id);
    memset(out, 0, sizeof(*out));
    out->member_id = member_id;
    out->degree = t->degree;
    out->height = t->height;
    node = t->first_leaf + t->member_leaf[member_id];
    for (uint32_t i = 0; i <= t->height; i++) {
        out->path[i].node = node;
        out->path[i].version = t->version[node];
        memcpy(out->path[i].key, t->key[node], LKH_KEY_LEN);
        if (node != 0)
            node = parent_of(t, node);
    }
    return 0;
}

int
lkh_group_key(const struct lkh_tree *t, uint8_t key[LKH_KEY_LEN], uint32_t *version)
{
    if (t->count[0] == 0)
        return ck_error_set(CK_ERR_NOTFOUND, "lkh: empty group");
    memcpy(key, t->key[0], LKH_KEY_LEN);
    *version = t->version[0];
    return 0;
}

static int
cmp_desc(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

void
lkh_batch_result_clear(struct lkh_batch_result *res)
{
    if (res == NULL)
        return;
    free(res->wraps);
    free(res->joined);
    memset(res, 0, sizeof(*res));
}

/* Marks a changed leaf's ancestors as touched, appending newly touched ones to list. */
static void
touch_path(struct lkh_tree *t, uint32_t leaf, uint32_t *list, size_t *n)
{
    uint32_t node = leaf;

    while (node != 0) {
        node = parent_of(t, node);
        if (t->flag[node] & F_TOUCHED)
            return;
        t->flag[node] |= F_TOUCHED;
        list[(*n)++] = node;
    }
}

/* A batch's fresh keys, drawn at once; each is wiped from the buffer as it is taken. */
struct keybuf {
    uint8_t *buf;
    size_t n, used;
};

static void
take_key(struct keybuf *kb, uint8_t key[LKH_KEY_LEN])
{
    uint8_t *k = kb->buf + kb->used * LKH_KEY_LEN;

    /* the buffer holds one key per joiner and per possibly touched node: never exhausted */
    memcpy(key, k, LKH_KEY_LEN);
    OPENSSL_cleanse(k, LKH_KEY_LEN);
    kb->used++;
}

static void
keybuf_free(struct keybuf *kb)
{
    if (kb->buf != NULL) {
        OPENSSL_cleanse(kb->buf, kb->n * LKH_KEY_LEN);
        free(kb->buf);
    }
}

int
lkh_batch(struct lkh_tree *t, const uint32_t *leave, size_t n_leave, size_t n_join,
          struct lkh_batch_result *res)
{
    uint32_t *changed = NULL, *touched = NULL;
    size_t n_changed = 0, n_touched = 0, max_touched, i;
    struct keybuf kb = {NULL, 0, 0};
    bool reuse_now;
    int rc = 0;

    memset(res, 0, sizeof(*res));
    if (n_leave > t->n_members || n_join > (size_t)t->n_leaves)
        return ck_error_set(CK_ERR_INVAL, "lkh: batch too large");
    if ((size_t)t->n_members - n_leave + n_join > t->n_leaves)
        return ck_error_set(CK_ERR_FULL, "lkh: %zu joins do not fit", n_join);
    for (i = 0; i < n_leave; i++) {
        uint32_t id = leave[i], leaf;
        if (id >= t->n_leaves || t->member_leaf[id] == NONE) {
            rc = ck_error_set(CK_ERR_NOTFOUND, "lkh: member %u not in the group", id);
            goto undo_flags;
        }
        leaf = t->first_leaf + t->member_leaf[id];
        if (t->flag[leaf] & F_DEPARTED) {
            rc = ck_error_set(CK_ERR_INVAL, "lkh: member %u listed twice", id);
            goto undo_flags;
        }
        t->flag[leaf] |= F_DEPARTED;
    }
    /* Everything that can fail short of a wrap is done before the tree changes: buffers at their
     * bounds, and every fresh key the batch can need drawn in one CSPRNG call. */
    max_touched = (n_leave + n_join) * t->height; /* each changed leaf's ancestors, at most */
    if (max_touched > t->first_leaf)
        max_touched = t->first_leaf;
    changed = malloc((n_leave + n_join + 1) * sizeof(uint32_t));
    touched = malloc((max_touched + 1) * sizeof(uint32_t));
    res->joined = malloc((n_join + 1) * sizeof(uint32_t));
    res->wraps = malloc((max_touched * t->degree + 1) * sizeof(struct lkh_wrap));
    kb.n = n_join + max_touched;
    if (kb.n > INT_MAX / LKH_KEY_LEN) {
        rc = ck_error_set(CK_ERR_LIMIT, "lkh: batch of %zu too large", n_leave + n_join);
        goto undo_flags;
    }
    kb.buf = malloc(kb.n * LKH_KEY_LEN + 1);
    if (changed == NULL || touched == NULL || res->joined == NULL || res->wraps == NULL ||
        kb.buf == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "lkh: batch of %zu", n_leave + n_join);
        goto undo_flags;
    }
    if (kb.n > 0 && RAND_priv_bytes(kb.buf, (int)(kb.n * LKH_KEY_LEN)) != 1) {
        rc = ck_error_set_ssl(CK_ERR_CRYPTO, "lkh: RAND_priv_bytes");
        goto undo_flags;
    }

    /* From here on the tree changes. Departures: free the member IDs; joiners take departed leaves
     * first (REPLACE), the others are pruned. */
    for (i = 0; i < n_leave; i++) {
        uint32_t id = leave[i], li = t->member_leaf[id], leaf = t->first_leaf + li;
        t->member_leaf[id] = NONE;
        t->leaf_member[li] = NONE;
        t->n_members--;
        changed[n_changed++] = leaf;
        if (i < n_join) {
            take_key(&kb, t->key[leaf]);
            t->version[leaf]++;
            t->flag[leaf] |= F_CHANGED | F_REPLACE;
            res->n_replace++;
        } else {
            uint32_t node = leaf;
            OPENSSL_cleanse(t->key[leaf], LKH_KEY_LEN);
            t->count[leaf] = 0;
            res->n_pruned++;
            while (node != 0) {
                node = parent_of(t, node);
                t->count[node]--;
            }
        }
    }
    /* Departed IDs go back to the free list after this batch's joiners took theirs, so the
     * batch's output never shows one ID for two members; only a nearly full tree needs them
     * at once. */
    reuse_now = t->n_free < n_join;
    if (reuse_now)
        for (i = n_leave; i-- > 0;)
            t->free_ids[t->n_free++] = leave[i];
    for (i = 0; i < n_join; i++) {
        uint32_t leaf;
        if (i < n_leave) {
            leaf = changed[i];
        } else {
            uint32_t node;
            leaf = find_empty_leaf(t); /* there is room: checked above */
            take_key(&kb, t->key[leaf]);
            t->version[leaf]++;
            t->count[leaf] = 1;
            t->flag[leaf] |= F_CHANGED;
            res->n_update++;
            for (node = leaf; node != 0;) {
                node = parent_of(t, node);
                t->count[node]++;
            }
            changed[n_changed++] = leaf;
        }
        res->joined[res->n_joined++] = alloc_member(t, leaf);
    }
    if (!reuse_now)
        for (i = n_leave; i-- > 0;)
            t->free_ids[t->n_free++] = leave[i];
    for (i = 0; i < n_changed; i++)
        touch_path(t, changed[i], touched, &n_touched);
    qsort(touched, n_touched, sizeof(uint32_t), cmp_desc);

    /* Marking, bottom-up: node ids descend with depth, so every child is final before its
     * parent. */
    for (i = 0; i < n_touched; i++) {
        uint32_t node = touched[i], c0 = first_child(t, node);
        bool replace = false;
        if (t->count[node] == 0) {
            t->flag[node] |= F_REPLACE; /* only departures empty a node */
            OPENSSL_cleanse(t->key[node], LKH_KEY_LEN);
            res->n_pruned++;
            continue;
        }
        for (uint32_t c = c0; c < c0 + t->degree && c < t->n_nodes; c++) {
            /* a pruned or replaced child, or a marked REPLACE child: a leaver knew our key */
            if ((t->flag[c] & (F_DEPARTED | F_REPLACE)) != 0)
                replace = true;
        }
        if (replace) {
            t->flag[node] |= F_REPLACE;
            res->n_replace++;
        } else {
            res->n_update++;
        }
        take_key(&kb, t->key[node]);
        t->version[node]++;
        for (uint32_t c = c0; c < c0 + t->degree && c < t->n_nodes; c++) {
            struct lkh_wrap *w;
            if (t->count[c] == 0)
                continue;
            w = &res->wraps[res->n_wraps++];
            w->node = node;
            w->child = c;
            w->child_rekeyed = c < t->first_leaf && (t->flag[c] & F_TOUCHED) != 0;
            w->child_version = t->version[c];
            w->new_version = t->version[node];
            if ((rc = aes_wrap(t->cctx, 1, t->key[c], t->key[node], w->wrapped)) != 0)
                goto out;
        }
    }

out:
    /* Only a wrap can fail here. The tree is then consistent (members, counts, keys) but the
     * new keys were never sent: the caller rekeys the group before using it. */
    for (i = 0; i < n_touched; i++) {
        t->flag[touched[i]] = 0;
        mark_dirty(t, touched[i]);
    }
    for (i = 0; i < n_changed; i++) {
        t->flag[changed[i]] = 0;
        mark_dirty(t, changed[i]);
    }
    free(changed);
    free(touched);
    keybuf_free(&kb);
    if (rc != 0)
        lkh_batch_result_clear(res);
    return rc;

undo_flags:
    for (size_t j = 0; j < n_leave; j++) {
        uint32_t id = leave[j];
        if (id < t->n_leaves && t->member_leaf[id] != NONE)
            t->flag[t->first_leaf + t->member_leaf[id]] = 0;
    }
    free(changed);
    free(touched);
    keybuf_free(&kb);
    lkh_batch_result_clear(res);
    return rc;
}

/* Member side */

/* Advances key from version `from` to `to` by the join one-way function. */
static int
advance(uint8_t key[LKH_KEY_LEN], uint32_t node, uint32_t from, uint32_t to)
{
    int rc;

    if (to < from)
        return ck_error_set(CK_ERR_PROTO, "lkh: node %u version %u older than held %u", node, to,
                            from);
    if (to - from > LKH_MAX_ADVANCE)
        return ck_error_set(CK_ERR_LIMIT, "lkh: node %u: %u versions behind", node, to - from);
    for (uint32_t v = from + 1; v <= to && v != 0; v++)
        if ((rc = hash_forward(key, node, v)) != 0)
            return rc;
    return 0;
}

/* First wrap for node in a list sorted by node descending (binary search), or NULL. */
static const struct lkh_wrap *
find_node(const struct lkh_wrap *w, size_t n, uint32_t node, size_t *end)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (w[mid].node > node)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == n || w[lo].node != node)
        return NULL;
    *end = lo;
    while (*end < n && w[*end].node == node)
        (*end)++;
    return &w[lo];
}

int
lkh_member_apply(struct lkh_member *m, const struct lkh_wrap *wraps, size_t n_wraps)
{
    struct lkh_member tmp;
    EVP_CIPHER *ecb = NULL;
    EVP_CIPHER_CTX *ctx = NULL;
    int rc = 0;

    if (m->height == 0 || m->height > LKH_MAX_HEIGHT)
        return ck_error_set(CK_ERR_INVAL, "lkh: member state");
    for (size_t i = 1; i < n_wraps; i++)
        if (wraps[i].node > wraps[i - 1].node ||
            (wraps[i].node == wraps[i - 1].node && wraps[i].child <= wraps[i - 1].child))
            return ck_error_set(CK_ERR_PROTO, "lkh: wraps out of order at %zu", i);
    tmp = *m;
    if ((ctx = kw_ctx_new(&ecb)) == NULL) {
        rc = ck_error_set_ssl(CK_ERR_CRYPTO, "lkh: AES-128 not available");
        goto out;
    }
    for (uint32_t lvl = 1, below_found = 0; lvl <= tmp.height; lvl++) {
        const struct lkh_wrap *w;
        size_t end = 0, idx;
        uint32_t child = tmp.path[lvl - 1].node, found_here;
        uint8_t newkey[LKH_KEY_LEN];

        w = find_node(wraps, n_wraps, tmp.path[lvl].node, &end);
        found_here = w != NULL;
        if (w != NULL) {
            idx = (size_t)(w - wraps);
            while (idx < end && wraps[idx].child != child)
                idx++;
            /* the child was rekeyed in this batch but the list has no wrap of it for us: a list
             * holding our path's wraps would (a rekey datagram holds its range's) */
            if (idx < end && wraps[idx].child_rekeyed && lvl >= 2 && !below_found) {
                rc = ck_error_set(CK_ERR_PERM, "lkh: member %u removed (node %u rekeyed "
                                  "without a wrap for node %u)", tmp.member_id, child,
                                  tmp.path[lvl - 2].node);
                goto out;
            }
        }
        below_found = found_here;
        if (w == NULL)
            continue; /* this node kept its key (or only hashed forward) */
        idx = (size_t)(w - wraps);
        while (idx < end && wraps[idx].child != child)
            idx++;
        if (idx == end) {
            rc = ck_error_set(CK_ERR_PERM, "lkh: member %u removed (no wrap for node %u)",
                              tmp.member_id, child);
            goto out;
        }
        w = &wraps[idx];
        if (w->new_version <= tmp.path[lvl].version) {
            rc = ck_error_set(CK_ERR_PROTO, "lkh: node %u version %u not newer", w->node,
                              w->new_version);
            goto out;
        }
        if (lvl == 1 && w->child_version != tmp.path[0].version) {
            /* leaf keys never hash forward: a new leaf key means someone else holds the leaf */
            rc = ck_error_set(CK_ERR_PERM, "lkh: member %u removed (leaf rekeyed)",
                              tmp.member_id);
            goto out;
        }
        if ((rc = advance(tmp.path[lvl - 1].key, child, tmp.path[lvl - 1].version,
                          w->child_version)) != 0)
            goto out;
        tmp.path[lvl - 1].version = w->child_version;
        rc = aes_wrap(ctx, 0, tmp.path[lvl - 1].key, w->wrapped, newkey);
        if (rc == 0) {
            memcpy(tmp.path[lvl].key, newkey, LKH_KEY_LEN);
            tmp.path[lvl].version = w->new_version;
        }
        OPENSSL_cleanse(newkey, sizeof(newkey));
        if (rc != 0)
            goto out;
    }
    *m = tmp;
out:
    OPENSSL_cleanse(&tmp, sizeof(tmp));
    EVP_CIPHER_CTX_free(ctx);
    EVP_CIPHER_free(ecb);
    return rc;
}

int
lkh_member_group_key(struct lkh_member *m, uint32_t version, uint8_t key[LKH_KEY_LEN])
{
    uint32_t h = m->height;
    int rc;

    if (h == 0 || h > LKH_MAX_HEIGHT)
        return ck_error_set(CK_ERR_INVAL, "lkh: member state");
    if ((rc = advance(m->path[h].key, m->path[h].node, m->path[h].version, version)) != 0)
        return rc;
    m->path[h].version = version;
    memcpy(key, m->path[h].key, LKH_KEY_LEN);
    return 0;
}

void
lkh_member_clear(struct lkh_member *m)
{
    if (m != NULL)
        OPENSSL_cleanse(m, sizeof(*m));
}

/* Persistence */

int
lkh_tree_dirty(const struct lkh_tree *t, uint32_t **nodes, size_t *n)
{
    size_t count = 0, k = 0, bytes = (size_t)t->n_nodes / 8 + 1;
    uint32_t *out;

    *nodes = NULL;
    *n = 0;
    for (size_t i = 0; i < bytes; i++)
        count += (size_t)__builtin_popcount(t->dirty[i]);
    if ((out = malloc((count + 1) * sizeof(uint32_t))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "lkh: %zu dirty nodes", count);
    for (size_t i = 0; i < bytes; i++) {
        uint8_t b = t->dirty[i];
        while (b != 0) {
            uint32_t bit = (uint32_t)__builtin_ctz(b);
            out[k++] = (uint32_t)(i * 8) + bit;
            b &= (uint8_t)(b - 1);
        }
    }
    *nodes = out;
    *n = k;
    return 0;
}

void
lkh_tree_clear_dirty(struct lkh_tree *t)
{
    memset(t->dirty, 0, (size_t)t->n_nodes / 8 + 1);
}

int
lkh_tree_node_get(const struct lkh_tree *t, uint32_t node, struct lkh_node_state *out)
{
    memset(out, 0, sizeof(*out));
    if (node >= t->n_nodes)
        return ck_error_set(CK_ERR_NOTFOUND, "lkh: node %u not in the tree (%u nodes)", node,
                            t->n_nodes);
    out->node = node;
    out->version = t->version[node];
    out->present = t->count[node] > 0;
    if (out->present)
        memcpy(out->key, t->key[node], LKH_KEY_LEN);
    return 0;
}

int
lkh_member_leaf(const struct lkh_tree *t, uint32_t member_id, uint32_t *leaf)
{
    if (member_id >= t->n_leaves || t->member_leaf[member_id] == NONE)
        return ck_error_set(CK_ERR_NOTFOUND, "lkh: member %u not in the group", member_id);
    *leaf = t->first_leaf + t->member_leaf[member_id];
    return 0;
}

int
lkh_tree_members_list(const struct lkh_tree *t, struct lkh_member_place **out, size_t *n)
{
    struct lkh_member_place *p;
    size_t k = 0;

    *out = NULL;
    *n = 0;
    if ((p = malloc(((size_t)t->n_members + 1) * sizeof(*p))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "lkh: %u members", t->n_members);
    for (uint32_t i = 0; i < t->n_leaves && k < t->n_members; i++) {
        if (t->leaf_member[i] == NONE)
            continue;
        p[k].member_id = t->leaf_member[i];
        p[k].leaf = t->first_leaf + i;
        k++;
    }
    *out = p;
    *n = k;
    return 0;
}

/* Rows come from storage: everything is checked before it is believed, and the flag array
 * (zero outside a batch) marks the nodes already seen. */
int
lkh_tree_restore(uint32_t degree, uint32_t max_members, const struct lkh_node_state *nodes,
                 size_t n_nodes, const struct lkh_member_place *members, size_t n_members,
                 struct lkh_tree **out)
{
    struct lkh_tree *t = NULL;
    uint8_t *used_id = NULL;
    int rc;

    *out = NULL;
    if ((rc = lkh_tree_new(degree, max_members, &t)) != 0)
        return rc;
    if (n_nodes > t->n_nodes || n_members > t->n_leaves) {
        rc = ck_error_set(CK_ERR_DECODE, "lkh restore: %zu nodes, %zu members for a tree of %u",
                          n_nodes, n_members, t->n_nodes);
        goto out;
    }
    for (size_t i = 0; i < n_nodes; i++) {
        const struct lkh_node_state *s = &nodes[i];
        if (s->node >= t->n_nodes || (t->flag[s->node] & F_TOUCHED) != 0) {
            rc = ck_error_set(CK_ERR_DECODE, "lkh restore: node %u out of range or repeated",
                              s->node);
            goto out;
        }
        if (s->present > 1 || (s->present && s->version == 0)) {
            rc = ck_error_set(CK_ERR_DECODE, "lkh restore: node %u: bad state", s->node);
            goto out;
        }
        t->flag[s->node] |= F_TOUCHED;
        t->version[s->node] = s->version;
        if (s->present) {
            memcpy(t->key[s->node], s->key, LKH_KEY_LEN);
            t->flag[s->node] |= F_CHANGED; /* "has a key" until the counts are checked */
        }
    }
    if ((used_id = calloc(t->n_leaves, 1)) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "lkh restore");
        goto out;
    }
    for (size_t i = 0; i < n_members; i++) {
        uint32_t id = members[i].member_id, leaf = members[i].leaf, node;
        if (id >= t->n_leaves || used_id[id] || leaf < t->first_leaf || leaf >= t->n_nodes ||
            t->count[leaf] != 0) {
            rc = ck_error_set(CK_ERR_DECODE, "lkh restore: member %u at leaf %u: bad or repeated",
                              id, leaf);
            goto out;
        }
        used_id[id] = 1;
        t->member_leaf[id] = leaf - t->first_leaf;
        t->leaf_member[leaf - t->first_leaf] = id;
        t->count[leaf] = 1;
        for (node = leaf; node != 0;) {
            node = parent_of(t, node);
            t->count[node]++;
        }
    }
    t->n_members = (uint32_t)n_members;
    /* exactly the non-empty nodes have keys: a key on an empty node is a stale row, a missing one
     * a lost row */
    for (uint32_t x = 0; x < t->n_nodes; x++) {
        bool has_key = (t->flag[x] & F_CHANGED) != 0;
        if (has_key != (t->count[x] > 0)) {
            rc = ck_error_set(CK_ERR_DECODE, "lkh restore: node %u %s", x,
                              has_key ? "has a key but no member" : "has members but no key");
            goto out;
        }
    }
    /* free IDs, lowest on top */
    t->n_free = 0;
    for (uint32_t id = t->n_leaves; id-- > 0;)
        if (!used_id[id])
            t->free_ids[t->n_free++] = id;
    memset(t->flag, 0, t->n_nodes);
    *out = t;
    t = NULL;
out:
    free(used_id);
    lkh_tree_free(t);
    return rc;
}
