/* Group rekey datagrams (lkh_rekey.h): R-BFA packing of a batch's wraps by leaf range, one
 * Ed25519 signature per batch over a SHA-256 hash tree of the datagrams, the strict parser and
 * the member's checks. Layout in docs/PROTOCOL.md "Group rekey datagram". */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "cablekey/error.h"
#include "cablekey/lkh_rekey.h"

#include "lkh/lkh_int.h"

#define SIG_LABEL "cablekey ksv rekey v1"
#define SIG_MSG_LEN (sizeof(SIG_LABEL) - 1 + 4 + 8 + 4 + 2 + 32)
#define HASH_LEN 32
#define TRAILER_LEN(path) (LKH_ED25519_SIG_LEN + 1u + HASH_LEN * (size_t)(path))
#define MAX_PACK_WRAPS (1u << 28)
#define NONE UINT32_MAX
#define CHILD_REKEYED 0x80000000u /* in a wrap's child version on the wire */

/* Offsets in the 42-byte header. */
enum {
    OFF_GROUP = 8,
    OFF_EPOCH = 12,
    OFF_ROOTV = 20,
    OFF_FLAGS = 24,
    OFF_DEGREE = 25,
    OFF_HEIGHT = 26,
    OFF_RSV = 27,
    OFF_NDGRAMS = 28,
    OFF_INDEX = 30,
    OFF_LEAF_LO = 32,
    OFF_LEAF_HI = 36,
    OFF_NNODES = 40,
};

/* The full-width shape of a tree of degree d and height h (heap ids, leaves at depth h). */
struct geom {
    uint32_t d, h;
    uint64_t start[LKH_MAX_HEIGHT + 2]; /* first node id of each depth */
    uint64_t width[LKH_MAX_HEIGHT + 1]; /* d^k */
    uint64_t first_leaf, last_leaf;
};

static int
geom_init(struct geom *g, uint32_t d, uint32_t h)
{
    if (d < 2 || d > LKH_MAX_DEGREE || h < 1 || h > LKH_MAX_HEIGHT)
        return CK_ERR_INVAL;
    g->d = d;
    g->h = h;
    g->start[0] = 0;
    g->width[0] = 1;
    for (uint32_t k = 0; k <= h; k++) {
        if (g->width[k] > UINT32_MAX)
            return CK_ERR_LIMIT;
        g->start[k + 1] = g->start[k] + g->width[k];
        if (k < h)
            g->width[k + 1] = g->width[k] * d;
    }
    g->first_leaf = g->start[h];
    g->last_leaf = g->start[h + 1] - 1;
    if (g->last_leaf >= UINT32_MAX)
        return CK_ERR_LIMIT;
    return 0;
}

static uint32_t
depth_of(const struct geom *g, uint64_t node)
{
    uint32_t k = 0;

    while (k < g->h && node >= g->start[k + 1])
        k++;
    return k;
}

/* The leaves below node: [lo, hi]. */
static void
leaf_range(const struct geom *g, uint64_t node, uint64_t *lo, uint64_t *hi)
{
    uint32_t k = depth_of(g, node);
    uint64_t span = g->width[g->h - k];

    *lo = g->first_leaf + (node - g->start[k]) * span;
    *hi = *lo + span - 1;
}

/* Hash tree: leaf = SHA-256(0x00 || signed part), inner = SHA-256(0x01 || left || right); a
 * level's odd last node moves up unchanged. The path of leaf i holds the sibling at each level
 * that has one, so its length follows from (i, n). */
static size_t
path_len(uint32_t index, uint32_t n)
{
    size_t len = 0;

    for (uint32_t c = n, i = index; c > 1; c = (c + 1) / 2, i >>= 1)
        if ((i ^ 1u) < c)
            len++;
    return len;
}

static size_t
max_path_len(uint32_t n)
{
    size_t len = 0;

    for (uint32_t c = n; c > 1; c = (c + 1) / 2)
        len++;
    return len;
}

static int
sha256_parts(const EVP_MD *md, uint8_t prefix, const uint8_t *a, size_t alen, const uint8_t *b,
             size_t blen, uint8_t out[HASH_LEN])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int olen = 0;
    int ok;

    ok = ctx != NULL && EVP_DigestInit_ex2(ctx, md, NULL) && EVP_DigestUpdate(ctx, &prefix, 1) &&
         EVP_DigestUpdate(ctx, a, alen) && (blen == 0 || EVP_DigestUpdate(ctx, b, blen)) &&
         EVP_DigestFinal_ex(ctx, out, &olen) && olen == HASH_LEN;
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : ck_error_set_ssl(CK_ERR_CRYPTO, "lkh rekey: SHA-256");
}

static void
sig_message(uint8_t msg[SIG_MSG_LEN], uint32_t group_id, uint64_t epoch, uint32_t root_version,
            uint16_t n, const uint8_t root[HASH_LEN])
{
    size_t o = sizeof(SIG_LABEL) - 1;

    memcpy(msg, SIG_LABEL, o);
    lkh_put_be32(msg + o, group_id);
    lkh_put_be64(msg + o + 4, epoch);
    lkh_put_be32(msg + o + 12, root_version);
    lkh_put_be16(msg + o + 16, n);
    memcpy(msg + o + 18, root, HASH_LEN);
}

/* ---- packing ----------------------------------------------------------------------------- */

struct winfo {
    uint32_t lo, hi;    /* leaves below the wrap's child */
    uint32_t grp;       /* index of the wrap's node among the batch's rekeyed nodes */
    uint32_t child_grp; /* the child's, when the batch rekeyed it too (else NONE) */
    uint32_t depth;     /* of the child */
};

struct dgram_plan {
    uint32_t leaf_lo, leaf_hi;
    size_t first, count;   /* slice of items */
    size_t n_nodes;        /* node entries */
};

struct packer {
    const struct lkh_wrap *w;
    size_t n;
    struct geom g;
    struct winfo *info;
    uint32_t *ord;       /* wraps by (lo ascending, hi descending) */
    uint32_t *mark;      /* by grp: 1 + the datagram that already counts this node */
    uint32_t *items;     /* wrap indices, datagram after datagram */
    size_t n_items, cap_items;
    uint32_t *grp_first; /* first wrap of each rekeyed node */
    size_t n_grp;
    uint32_t *seen;      /* by grp: 1 + the datagram holding one of its wraps */
    struct dgram_plan *dg;
    size_t n_dg, cap_dg;
};

/* Orders the wraps by (lo ascending, depth ascending: an ancestor before its descendants that
 * start at the same leaf), an LSD radix sort on a 40-bit key: qsort with a callback was a third
 * of a 1,000-leave batch's packing. Stable and deterministic. */
static int
sort_by_leaf(struct packer *pk)
{
    uint64_t *key = malloc((pk->n + 1) * sizeof(uint64_t));
    uint32_t *tmp = malloc((pk->n + 1) * sizeof(uint32_t));
    size_t cnt[256];

    if (key == NULL || tmp == NULL) {
        free(key);
        free(tmp);
        return ck_error_set(CK_ERR_NOMEM, "lkh rekey: packing");
    }
    for (size_t i = 0; i < pk->n; i++)
        key[i] = ((uint64_t)pk->info[i].lo << 8) | pk->info[i].depth;
    for (unsigned shift = 0; shift < 40; shift += 8) {
        size_t sum = 0;
        memset(cnt, 0, sizeof(cnt));
        for (size_t i = 0; i < pk->n; i++)
            cnt[(key[pk->ord[i]] >> shift) & 0xff]++;
        for (size_t b = 0; b < 256; b++) {
            size_t c = cnt[b];
            cnt[b] = sum;
            sum += c;
        }
        for (size_t i = 0; i < pk->n; i++)
            tmp[cnt[(key[pk->ord[i]] >> shift) & 0xff]++] = pk->ord[i];
        memcpy(pk->ord, tmp, pk->n * sizeof(uint32_t));
    }
    free(key);
    free(tmp);
    return 0;
}

/* Small per-datagram lists: insertion sort (a datagram holds at most ~50 wraps). */
static void
sort_small(uint32_t *a, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        uint32_t x = a[i];
        size_t j = i;
        while (j > 0 && a[j - 1] > x) {
            a[j] = a[j - 1];
            j--;
        }
        a[j] = x;
    }
}

static int
cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int
push_item(struct packer *pk, uint32_t w)
{
    if (pk->n_items == pk->cap_items) {
        size_t cap = pk->cap_items ? 2 * pk->cap_items : 256;
        uint32_t *x = realloc(pk->items, cap * sizeof(*x));
        if (x == NULL)
            return ck_error_set(CK_ERR_NOMEM, "lkh rekey: packing");
        pk->items = x;
        pk->cap_items = cap;
    }
    pk->items[pk->n_items++] = w;
    return 0;
}

static int
push_dgram(struct packer *pk, uint32_t leaf_lo)
{
    if (pk->n_dg == pk->cap_dg) {
        size_t cap = pk->cap_dg ? 2 * pk->cap_dg : 16;
        struct dgram_plan *x = realloc(pk->dg, cap * sizeof(*x));
        if (x == NULL)
            return ck_error_set(CK_ERR_NOMEM, "lkh rekey: packing");
        pk->dg = x;
        pk->cap_dg = cap;
    }
    if (pk->n_dg >= LKH_REKEY_MAX_DGRAMS)
        return ck_error_set(CK_ERR_LIMIT, "lkh rekey: more than %u datagrams",
                            LKH_REKEY_MAX_DGRAMS);
    pk->dg[pk->n_dg].leaf_lo = leaf_lo;
    pk->dg[pk->n_dg].leaf_hi = (uint32_t)pk->g.last_leaf;
    pk->dg[pk->n_dg].first = pk->n_items;
    pk->dg[pk->n_dg].count = 0;
    pk->n_dg++;
    return 0;
}

/* The bytes wrap w adds to the current datagram. */
static size_t
item_cost(const struct packer *pk, uint32_t w)
{
    return LKH_REKEY_WRAP_LEN +
           (pk->mark[pk->info[w].grp] == pk->n_dg ? 0 : LKH_REKEY_NODE_LEN);
}

static int
add_item(struct packer *pk, uint32_t w, size_t *size)
{
    *size += item_cost(pk, w);
    pk->mark[pk->info[w].grp] = (uint32_t)pk->n_dg;
    pk->dg[pk->n_dg - 1].count++;
    return push_item(pk, w);
}

/* One greedy pass over the wraps in leaf order with room for an authentication path of `path`
 * hashes. A datagram serving leaves [a, b] holds every wrap whose child has a leaf in [a, b]:
 * the wraps that start in it and those still open from the left (one per depth at most). The
 * wraps starting at one leaf (a chain) go together; the datagram is cut before a chain that does
 * not fit, and the next one starts at that leaf, carrying the chains' open ancestors. */
static int
pack_pass(struct packer *pk, size_t max_dgram, size_t path)
{
    uint32_t open[LKH_MAX_HEIGHT + 1];
    size_t fixed = LKH_REKEY_HDR_LEN + TRAILER_LEN(path), budget, size = 0;
    bool added = false;
    int rc;

    if (fixed >= max_dgram)
        return ck_error_set(CK_ERR_LIMIT, "lkh rekey: datagram of %zu bytes too small",
                            max_dgram);
    budget = max_dgram - fixed;
    pk->n_items = 0;
    pk->n_dg = 0;
    memset(pk->mark, 0, pk->n ? pk->n * sizeof(uint32_t) : 1);
    for (uint32_t k = 0; k <= LKH_MAX_HEIGHT; k++)
        open[k] = NONE;
    if ((rc = push_dgram(pk, (uint32_t)pk->g.first_leaf)) != 0)
        return rc;
    for (size_t i = 0; i < pk->n;) {
        uint32_t lo = pk->info[pk->ord[i]].lo;
        size_t j = i, cost = 0;

        while (j < pk->n && pk->info[pk->ord[j]].lo == lo)
            cost += item_cost(pk, pk->ord[j++]);
        if (size + cost > budget) {
            if (!added)
                return ck_error_set(CK_ERR_LIMIT,
                                    "lkh rekey: one member's wraps do not fit %zu bytes",
                                    max_dgram);
            pk->dg[pk->n_dg - 1].leaf_hi = lo - 1;
            if ((rc = push_dgram(pk, lo)) != 0)
                return rc;
            size = 0;
            added = false;
            for (uint32_t k = 0; k <= pk->g.h; k++)
                if (open[k] != NONE && pk->info[open[k]].hi >= lo &&
                    (rc = add_item(pk, open[k], &size)) != 0)
                    return rc;
            cost = 0;
            for (size_t x = i; x < j; x++)
                cost += item_cost(pk, pk->ord[x]);
            if (size + cost > budget)
                return ck_error_set(CK_ERR_LIMIT,
                                    "lkh rekey: one member's wraps do not fit %zu bytes",
                                    max_dgram);
        }
        for (; i < j; i++) {
            uint32_t w = pk->ord[i];
            if ((rc = add_item(pk, w, &size)) != 0)
                return rc;
            open[pk->info[w].depth] = w;
        }
        added = true;
    }
    return 0;
}

/* Checks that the wraps are a batch of this tree shape in lkh_member_apply order, and indexes
 * them (leaf range of each child, node group). */
static int
index_wraps(struct packer *pk, uint32_t root_version)
{
    uint32_t grp = 0;

    for (size_t i = 0; i < pk->n; i++) {
        const struct lkh_wrap *w = &pk->w[i];
        uint64_t lo, hi, c0 = (uint64_t)w->node * pk->g.d + 1;

        if (w->node >= pk->g.first_leaf || w->child < c0 || w->child >= c0 + pk->g.d ||
            w->new_version == 0 || ((w->new_version | w->child_version) & CHILD_REKEYED) != 0)
            return ck_error_set(CK_ERR_INVAL, "lkh rekey: wrap %zu (node %u child %u) not of a "
                                "degree-%u height-%u tree", i, w->node, w->child, pk->g.d,
                                pk->g.h);
        if (i > 0) {
            const struct lkh_wrap *p = &pk->w[i - 1];
            if (w->node > p->node || (w->node == p->node && w->child <= p->child))
                return ck_error_set(CK_ERR_INVAL, "lkh rekey: wraps out of order at %zu", i);
            if (w->node == p->node && w->new_version != p->new_version)
                return ck_error_set(CK_ERR_INVAL, "lkh rekey: node %u with two versions",
                                    w->node);
            if (w->node != p->node)
                pk->grp_first[++grp] = (uint32_t)i;
        } else {
            pk->grp_first[0] = 0;
        }
        if (w->node == 0 && w->new_version != root_version)
            return ck_error_set(CK_ERR_INVAL, "lkh rekey: root version %u, params say %u",
                                w->new_version, root_version);
        leaf_range(&pk->g, w->child, &lo, &hi);
        pk->info[i].lo = (uint32_t)lo;
        pk->info[i].hi = (uint32_t)hi;
        pk->info[i].depth = depth_of(&pk->g, w->child);
        pk->info[i].grp = grp;
        pk->ord[i] = (uint32_t)i;
    }
    pk->n_grp = pk->n ? grp + 1 : 0;
    /* which children were rekeyed too: nodes descend with the groups, so a binary search */
    for (size_t i = 0; i < pk->n; i++) {
        size_t lo = 0, hi = pk->n_grp;
        uint32_t c = pk->w[i].child;
        pk->info[i].child_grp = NONE;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (pk->w[pk->grp_first[mid]].node > c)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < pk->n_grp && pk->w[pk->grp_first[lo]].node == c)
            pk->info[i].child_grp = (uint32_t)lo;
    }
    return sort_by_leaf(pk);
}

/* Sorts each datagram's items into lkh_member_apply order and counts its node entries. */
static int
finish_plan(struct packer *pk, size_t max_dgram)
{
    memset(pk->seen, 0, (pk->n_grp + 1) * sizeof(uint32_t));
    for (size_t k = 0; k < pk->n_dg; k++) {
        struct dgram_plan *d = &pk->dg[k];
        const uint32_t *it = pk->items + d->first;
        size_t size;
        if (d->count > 64)
            qsort(pk->items + d->first, d->count, sizeof(uint32_t), cmp_u32);
        else
            sort_small(pk->items + d->first, d->count);
        d->n_nodes = 0;
        for (size_t i = 0; i < d->count; i++) {
            if (pk->seen[pk->info[it[i]].grp] != k + 1)
                d->n_nodes++;
            pk->seen[pk->info[it[i]].grp] = (uint32_t)(k + 1);
        }
        size = LKH_REKEY_HDR_LEN + d->n_nodes * LKH_REKEY_NODE_LEN +
               d->count * LKH_REKEY_WRAP_LEN + TRAILER_LEN(path_len((uint32_t)k, (uint32_t)pk->n_dg));
        if (size > max_dgram) /* pack_pass counted the same bytes: cannot happen */
            return ck_error_set(CK_ERR_LIMIT, "lkh rekey: datagram %zu of %zu bytes", k, size);
    }
    return 0;
}

/* Writes datagram k's signed part (header and entries) into buf; returns its length. */
static size_t
encode_signed(const struct packer *pk, const struct lkh_rekey_params *p, size_t k, uint8_t *buf)
{
    const struct dgram_plan *d = &pk->dg[k];
    const uint32_t *it = pk->items + d->first;
    size_t o = LKH_REKEY_HDR_LEN, n_nodes = 0;

    memcpy(buf, "CKSV", 4);
    buf[4] = 1;
    buf[5] = 6; /* CK_KSV_K_REKEY */
    buf[6] = buf[7] = 0;
    lkh_put_be32(buf + OFF_GROUP, p->group_id);
    lkh_put_be64(buf + OFF_EPOCH, p->epoch);
    lkh_put_be32(buf + OFF_ROOTV, p->root_version);
    buf[OFF_FLAGS] = p->flags;
    buf[OFF_DEGREE] = (uint8_t)pk->g.d;
    buf[OFF_HEIGHT] = (uint8_t)pk->g.h;
    buf[OFF_RSV] = 0;
    lkh_put_be16(buf + OFF_NDGRAMS, (uint16_t)pk->n_dg);
    lkh_put_be16(buf + OFF_INDEX, (uint16_t)k);
    lkh_put_be32(buf + OFF_LEAF_LO, d->leaf_lo);
    lkh_put_be32(buf + OFF_LEAF_HI, d->leaf_hi);
    for (size_t i = 0; i < d->count;) {
        const struct lkh_wrap *w0 = &pk->w[it[i]];
        size_t j = i, node_off = o;
        uint16_t bits = 0;

        o += LKH_REKEY_NODE_LEN;
        while (j < d->count && pk->w[it[j]].node == w0->node) {
            const struct lkh_wrap *w = &pk->w[it[j]];
            bits |= (uint16_t)(1u << (w->child - (w->node * pk->g.d + 1)));
            /* top bit: the batch rekeyed this child too (its entry is where a member of the
             * range needs it; a member that finds no entry for it was removed) */
            lkh_put_be32(buf + o, w->child_version |
                                      (pk->info[it[j]].child_grp != NONE ? CHILD_REKEYED : 0));
            memcpy(buf + o + 4, w->wrapped, LKH_WRAP_LEN);
            o += LKH_REKEY_WRAP_LEN;
            j++;
        }
        lkh_put_be32(buf + node_off, w0->node);
        lkh_put_be32(buf + node_off + 4, w0->new_version);
        lkh_put_be16(buf + node_off + 8, bits);
        n_nodes++;
        i = j;
    }
    lkh_put_be16(buf + OFF_NNODES, (uint16_t)n_nodes);
    return o;
}

void
lkh_rekey_out_clear(struct lkh_rekey_out *out)
{
    if (out == NULL)
        return;
    for (size_t i = 0; out->dgrams != NULL && i < out->n; i++) {
        if (out->dgrams[i] != NULL)
            OPENSSL_cleanse(out->dgrams[i], out->lens[i]);
        free(out->dgrams[i]);
    }
    free(out->dgrams);
    free(out->lens);
    memset(out, 0, sizeof(*out));
}

int
lkh_rekey_pack(const struct lkh_rekey_params *p, const struct lkh_wrap *wraps, size_t n_wraps,
               const struct lkh_signer *signer, struct lkh_rekey_out *out)
{
    struct packer pk;
    size_t max_dgram = p->max_dgram ? p->max_dgram : LKH_REKEY_DEFAULT_DGRAM, path = 0;
    uint8_t (*hash)[HASH_LEN] = NULL, sig[LKH_ED25519_SIG_LEN], msg[SIG_MSG_LEN];
    size_t *lvl_off = NULL;
    EVP_MD *md = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    memset(&pk, 0, sizeof(pk));
    if (p->epoch == 0 || p->root_version == 0 || (p->flags & ~LKH_REKEY_F_ACK_REQD) != 0 ||
        max_dgram < LKH_REKEY_MIN_DGRAM || max_dgram > LKH_REKEY_MAX_DGRAM ||
        (n_wraps > 0 && wraps == NULL) || n_wraps > MAX_PACK_WRAPS || signer == NULL)
        return ck_error_set(CK_ERR_INVAL, "lkh rekey: bad parameters");
    if ((rc = geom_init(&pk.g, p->degree, p->height)) != 0)
        return ck_error_set(rc, "lkh rekey: degree %u height %u", p->degree, p->height);
    pk.w = wraps;
    pk.n = n_wraps;
    pk.info = malloc((n_wraps + 1) * sizeof(*pk.info));
    pk.ord = malloc((n_wraps + 1) * sizeof(uint32_t));
    pk.mark = malloc((n_wraps + 1) * sizeof(uint32_t));
    pk.grp_first = malloc((n_wraps + 1) * sizeof(uint32_t));
    pk.seen = malloc((n_wraps + 1) * sizeof(uint32_t));
    if (pk.info == NULL || pk.ord == NULL || pk.mark == NULL || pk.grp_first == NULL ||
        pk.seen == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "lkh rekey: %zu wraps", n_wraps);
        goto out;
    }
    if ((rc = index_wraps(&pk, p->root_version)) != 0)
        goto out;
    /* The authentication path's length depends on the number of datagrams: pack with room for
     * the path the previous pass needed until it fits (twice at most in practice). */
    for (;;) {
        size_t need;
        if ((rc = pack_pass(&pk, max_dgram, path)) != 0)
            goto out;
        need = max_path_len((uint32_t)pk.n_dg);
        if (need <= path)
            break;
        path = need;
    }
    if ((rc = finish_plan(&pk, max_dgram)) != 0)
        goto out;

    out->dgrams = calloc(pk.n_dg, sizeof(uint8_t *));
    out->lens = calloc(pk.n_dg, sizeof(size_t));
    /* every level keeps its odd last node: at most 2n + one per level */
    hash = malloc((2 * pk.n_dg + LKH_REKEY_MAX_PATH + 2) * HASH_LEN);
    lvl_off = malloc((LKH_REKEY_MAX_PATH + 2) * sizeof(size_t));
    md = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (out->dgrams == NULL || out->lens == NULL || hash == NULL || lvl_off == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "lkh rekey: %zu datagrams", pk.n_dg);
        goto out;
    }
    if (md == NULL) {
        rc = ck_error_set_ssl(CK_ERR_CRYPTO, "lkh rekey: SHA-256");
        goto out;
    }
    out->n = pk.n_dg;
    for (size_t k = 0; k < pk.n_dg; k++) {
        size_t plen = path_len((uint32_t)k, (uint32_t)pk.n_dg), slen;
        size_t cap = LKH_REKEY_HDR_LEN +
                     pk.dg[k].n_nodes * LKH_REKEY_NODE_LEN +
                     pk.dg[k].count * LKH_REKEY_WRAP_LEN + TRAILER_LEN(plen);
        if ((out->dgrams[k] = malloc(cap)) == NULL) {
            rc = ck_error_set(CK_ERR_NOMEM, "lkh rekey: datagram");
            goto out;
        }
        slen = encode_signed(&pk, p, k, out->dgrams[k]);
        out->lens[k] = slen + TRAILER_LEN(plen);
        if ((rc = sha256_parts(md, 0, out->dgrams[k], slen, NULL, 0, hash[k])) != 0)
            goto out;
    }
    /* inner levels, stored after the leaves */
    {
        size_t lvl = 0, off = 0, c = pk.n_dg, next = pk.n_dg;
        lvl_off[0] = 0;
        while (c > 1) {
            for (size_t i = 0; i + 1 < c; i += 2)
                if ((rc = sha256_parts(md, 1, hash[off + i], HASH_LEN, hash[off + i + 1],
                                       HASH_LEN, hash[next + i / 2])) != 0)
                    goto out;
            if (c & 1)
                memcpy(hash[next + c / 2], hash[off + c - 1], HASH_LEN);
            off = next;
            next += (c + 1) / 2;
            c = (c + 1) / 2;
            lvl_off[++lvl] = off;
        }
        sig_message(msg, p->group_id, p->epoch, p->root_version, (uint16_t)pk.n_dg, hash[off]);
        if ((rc = lkh_signer_sign(signer, msg, sizeof(msg), sig)) != 0)
            goto out;
        for (size_t k = 0; k < pk.n_dg; k++) {
            size_t plen = path_len((uint32_t)k, (uint32_t)pk.n_dg);
            uint8_t *t = out->dgrams[k] + out->lens[k] - TRAILER_LEN(plen), *ph;
            uint32_t cc = (uint32_t)pk.n_dg, i = (uint32_t)k;
            memcpy(t, sig, LKH_ED25519_SIG_LEN);
            t[LKH_ED25519_SIG_LEN] = (uint8_t)plen;
            ph = t + LKH_ED25519_SIG_LEN + 1;
            for (size_t l = 0; cc > 1; l++, cc = (cc + 1) / 2, i >>= 1) {
                if ((i ^ 1u) < cc) {
                    memcpy(ph, hash[lvl_off[l] + (i ^ 1u)], HASH_LEN);
                    ph += HASH_LEN;
                }
            }
        }
    }
out:
    if (rc != 0)
        lkh_rekey_out_clear(out);
    EVP_MD_free(md);
    free(hash);
    free(lvl_off);
    free(pk.info);
    free(pk.ord);
    free(pk.mark);
    free(pk.items);
    free(pk.dg);
    free(pk.grp_first);
    free(pk.seen);
    return rc;
}

/* ---- parsing and verification ------------------------------------------------------------ */

struct frame {
    struct geom g;
    size_t signed_len;
    const uint8_t *sig, *path;
    size_t path_len;
};

/* Rekeyed node's new version among the first n entries of a datagram (descending), or 0. */
static uint32_t
entry_version(const struct lkh_rekey_view *v, size_t n, const uint32_t *nv, uint32_t node)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v->nodes[mid] > node)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && v->nodes[lo] == node ? nv[lo] : 0;
}

/* The wrap (node -> child) of a view, or NULL. */
static const struct lkh_wrap *
find_wrap(const struct lkh_rekey_view *v, uint32_t node, uint32_t child)
{
    size_t lo = 0, hi = v->n_wraps;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v->wraps[mid].node > node ||
            (v->wraps[mid].node == node && v->wraps[mid].child < child))
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < v->n_wraps && v->wraps[lo].node == node && v->wraps[lo].child == child)
        return &v->wraps[lo];
    return NULL;
}

static int
cmp_desc(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The strict parse behind lkh_rekey_parse and lkh_rekey_verify. v->wraps and v->nodes have room
 * for what len can hold; nv (new versions, parallel to v->nodes) and fl (per wrap: child
 * rekeyed) too. */
static int
parse_frame(const uint8_t *buf, size_t len, struct frame *f, struct lkh_rekey_view *v,
            uint32_t *nv, uint8_t *fl)
{
    size_t n_entries_parsed;
    uint32_t n_dg, index, leaf_lo, leaf_hi, rootv;
    size_t n_entries, o = LKH_REKEY_HDR_LEN;

    if (buf == NULL || len < LKH_REKEY_HDR_LEN + TRAILER_LEN(0) || len > LKH_REKEY_MAX_DGRAM)
        return ck_error_set(CK_ERR_DECODE, "lkh rekey: datagram of %zu bytes", len);
    if (memcmp(buf, "CKSV", 4) != 0 || buf[4] != 1 || buf[5] != 6 || buf[6] != 0 || buf[7] != 0)
        return ck_error_set(CK_ERR_DECODE, "lkh rekey: not a KSV v1 REKEY envelope");
    if ((buf[OFF_FLAGS] & ~LKH_REKEY_F_ACK_REQD) != 0 || buf[OFF_RSV] != 0)
        return ck_error_set(CK_ERR_DECODE, "lkh rekey: unknown flags or reserved bits");
    if (geom_init(&f->g, buf[OFF_DEGREE], buf[OFF_HEIGHT]) != 0)
        return ck_error_set(CK_ERR_DECODE, "lkh rekey: degree %u height %u", buf[OFF_DEGREE],
                            buf[OFF_HEIGHT]);
    rootv = lkh_get_be32(buf + OFF_ROOTV);
    n_dg = lkh_get_be16(buf + OFF_NDGRAMS);
    index = lkh_get_be16(buf + OFF_INDEX);
    leaf_lo = lkh_get_be32(buf + OFF_LEAF_LO);
    leaf_hi = lkh_get_be32(buf + OFF_LEAF_HI);
    n_entries = lkh_get_be16(buf + OFF_NNODES);
    if (lkh_get_be64(buf + OFF_EPOCH) == 0 || rootv == 0 || n_dg == 0 || index >= n_dg ||
        leaf_lo < f->g.first_leaf || leaf_hi > f->g.last_leaf || leaf_lo > leaf_hi)
        return ck_error_set(CK_ERR_DECODE, "lkh rekey: bad epoch, version, index or leaf range");
    /* entries: nodes strictly descending, each wrapped child's leaves meeting [lo, hi] */
    for (size_t e = 0; e < n_entries; e++) {
        uint32_t node, ver;
        uint16_t bits;

        if (len - o < LKH_REKEY_NODE_LEN + TRAILER_LEN(0))
            return ck_error_set(CK_ERR_DECODE, "lkh rekey: truncated at node %zu", e);
        node = lkh_get_be32(buf + o);
        ver = lkh_get_be32(buf + o + 4);
        bits = lkh_get_be16(buf + o + 8);
        o += LKH_REKEY_NODE_LEN;
        if ((e > 0 && node >= v->nodes[e - 1]) || node >= f->g.first_leaf || ver == 0 ||
            (ver & CHILD_REKEYED) != 0 || bits == 0 || (bits >> f->g.d) != 0 ||
            (node == 0 && ver != rootv))
            return ck_error_set(CK_ERR_DECODE, "lkh rekey: bad node entry %zu (node %u)", e,
                                node);
        v->nodes[e] = node;
        nv[e] = ver;
        v->n_nodes = e + 1;
        for (uint32_t c = 0; c < f->g.d; c++) {
            uint64_t child = (uint64_t)node * f->g.d + 1 + c, lo, hi;
            struct lkh_wrap *w;
            if (!(bits & (1u << c)))
                continue;
            if (len - o < LKH_REKEY_WRAP_LEN + TRAILER_LEN(0))
                return ck_error_set(CK_ERR_DECODE, "lkh rekey: truncated in node %u", node);
            leaf_range(&f->g, child, &lo, &hi);
            if (hi < leaf_lo || lo > leaf_hi)
                return ck_error_set(CK_ERR_DECODE,
                                    "lkh rekey: wrap for child %llu outside leaves %u..%u",
                                    (unsigned long long)child, leaf_lo, leaf_hi);
            fl[v->n_wraps] = (buf[o] & 0x80) != 0;
            w = &v->wraps[v->n_wraps++];
            w->node = node;
            w->child = (uint32_t)child;
            w->new_version = ver;
            w->child_version = lkh_get_be32(buf + o) & ~CHILD_REKEYED;
            w->child_rekeyed = fl[v->n_wraps - 1];
            memcpy(w->wrapped, buf + o + 4, LKH_WRAP_LEN);
            o += LKH_REKEY_WRAP_LEN;
        }
    }
    f->signed_len = o;
    f->sig = buf + o;
    f->path_len = buf[o + LKH_ED25519_SIG_LEN];
    f->path = buf + o + LKH_ED25519_SIG_LEN + 1;
    if (f->path_len != path_len(index, n_dg) || len - o != TRAILER_LEN(f->path_len))
        return ck_error_set(CK_ERR_DECODE, "lkh rekey: authentication path or length wrong "
                            "(%zu hashes, %zu bytes after the entries)", f->path_len, len - o);
    /* A child the batch rekeyed is flagged in its parent's wrap; when the datagram has its entry,
     * at the version the wrap names. Flagged children without an entry here join the view's
     * node list: a member below one of them without a wrap for itself was removed. */
    n_entries_parsed = v->n_nodes;
    for (size_t i = 0; i < v->n_wraps; i++) {
        uint32_t c = v->wraps[i].child, cv = entry_version(v, n_entries_parsed, nv, c);
        if (fl[i] ? (c >= f->g.first_leaf || (cv != 0 && cv != v->wraps[i].child_version))
                  : cv != 0)
            return ck_error_set(CK_ERR_DECODE, "lkh rekey: child %u: rekey flag or version "
                                "inconsistent", c);
        if (fl[i] && cv == 0)
            v->nodes[v->n_nodes++] = c;
    }
    if (v->n_nodes > n_entries_parsed)
        qsort(v->nodes, v->n_nodes, sizeof(uint32_t), cmp_desc);
    v->group_id = lkh_get_be32(buf + OFF_GROUP);
    v->epoch = lkh_get_be64(buf + OFF_EPOCH);
    v->root_version = rootv;
    v->flags = buf[OFF_FLAGS];
    v->n_dgrams = (uint16_t)n_dg;
    v->index = (uint16_t)index;
    v->leaf_lo = leaf_lo;
    v->leaf_hi = leaf_hi;
    return 0;
}

static int
parse_into(const uint8_t *buf, size_t len, struct frame *f, struct lkh_rekey_view *out)
{
    uint32_t *nv = NULL;
    uint8_t *fl = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    /* a wrap takes 28 bytes, a node 10: len bounds the counts */
    out->wraps = malloc((len / LKH_REKEY_WRAP_LEN + 1) * sizeof(struct lkh_wrap));
    out->nodes = malloc((len / LKH_REKEY_NODE_LEN + 1) * sizeof(uint32_t));
    nv = malloc((len / LKH_REKEY_NODE_LEN + 1) * sizeof(uint32_t));
    fl = malloc(len / LKH_REKEY_WRAP_LEN + 1);
    if (out->wraps == NULL || out->nodes == NULL || nv == NULL || fl == NULL)
        rc = ck_error_set(CK_ERR_NOMEM, "lkh rekey: parse");
    else
        rc = parse_frame(buf, len, f, out, nv, fl);
    free(nv);
    free(fl);
    if (rc != 0)
        lkh_rekey_view_clear(out);
    return rc;
}

int
lkh_rekey_parse(const uint8_t *buf, size_t len, struct lkh_rekey_view *out)
{
    struct frame f;

    return parse_into(buf, len, &f, out);
}

void
lkh_rekey_view_clear(struct lkh_rekey_view *v)
{
    if (v == NULL)
        return;
    if (v->wraps != NULL)
        OPENSSL_cleanse(v->wraps, v->n_wraps * sizeof(struct lkh_wrap));
    free(v->wraps);
    free(v->nodes);
    memset(v, 0, sizeof(*v));
}

int
lkh_rekey_verify(const uint8_t *buf, size_t len, const uint8_t pub[LKH_ED25519_PUB_LEN])
{
    struct frame f;
    uint8_t h[HASH_LEN], msg[SIG_MSG_LEN];
    uint32_t n, i;
    EVP_MD *md = NULL;
    int rc;

    struct lkh_rekey_view v;

    if ((rc = parse_into(buf, len, &f, &v)) != 0)
        return rc;
    lkh_rekey_view_clear(&v);
    n = lkh_get_be16(buf + OFF_NDGRAMS);
    i = lkh_get_be16(buf + OFF_INDEX);
    if ((md = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL)
        return ck_error_set_ssl(CK_ERR_CRYPTO, "lkh rekey: SHA-256");
    if ((rc = sha256_parts(md, 0, buf, f.signed_len, NULL, 0, h)) != 0)
        goto out;
    for (const uint8_t *ph = f.path; n > 1; n = (n + 1) / 2, i >>= 1) {
        if ((i ^ 1u) >= n)
            continue; /* the odd last node moves up */
        rc = (i & 1) ? sha256_parts(md, 1, ph, HASH_LEN, h, HASH_LEN, h)
                     : sha256_parts(md, 1, h, HASH_LEN, ph, HASH_LEN, h);
        if (rc != 0)
            goto out;
        ph += HASH_LEN;
    }
    sig_message(msg, lkh_get_be32(buf + OFF_GROUP), lkh_get_be64(buf + OFF_EPOCH),
                lkh_get_be32(buf + OFF_ROOTV), lkh_get_be16(buf + OFF_NDGRAMS), h);
    rc = lkh_ed25519_verify(pub, msg, sizeof(msg), f.sig);
out:
    EVP_MD_free(md);
    return rc;
}

int
lkh_rekey_member_apply(struct lkh_member *m, uint32_t group_id,
                       const uint8_t pub[LKH_ED25519_PUB_LEN], uint64_t *last_epoch,
                       const uint8_t *buf, size_t len, uint32_t *root_version)
{
    struct lkh_rekey_view v;
    uint32_t leaf = m->path[0].node;
    int rc;

    if ((rc = lkh_rekey_parse(buf, len, &v)) != 0)
        return rc;
    if (v.group_id != group_id || leaf < v.leaf_lo || leaf > v.leaf_hi) {
        rc = ck_error_set(CK_ERR_NOTFOUND, "lkh rekey: datagram for group %u leaves %u..%u",
                          v.group_id, v.leaf_lo, v.leaf_hi);
        goto out;
    }
    if (v.epoch <= *last_epoch) {
        rc = ck_error_set(CK_ERR_REPLAY, "lkh rekey: epoch %llu <= %llu",
                          (unsigned long long)v.epoch, (unsigned long long)*last_epoch);
        goto out;
    }
    if ((rc = lkh_rekey_verify(buf, len, pub)) != 0)
        goto out;
    if (buf[OFF_DEGREE] != m->degree || buf[OFF_HEIGHT] != m->height) {
        rc = ck_error_set(CK_ERR_PROTO, "lkh rekey: tree %u/%u, member holds %u/%u",
                          buf[OFF_DEGREE], buf[OFF_HEIGHT], m->degree, m->height);
        goto out;
    }
    /* every node of the path this datagram names must have a wrap for the member */
    for (uint32_t lvl = 1; lvl <= m->height; lvl++) {
        size_t e;
        for (e = 0; e < v.n_nodes && v.nodes[e] != m->path[lvl].node; e++)
            ;
        if (e < v.n_nodes && find_wrap(&v, m->path[lvl].node, m->path[lvl - 1].node) == NULL) {
            rc = ck_error_set(CK_ERR_PERM, "lkh rekey: member %u removed (no wrap for node %u)",
                              m->member_id, m->path[lvl - 1].node);
            goto out;
        }
    }
    rc = lkh_member_apply(m, v.wraps, v.n_wraps);
    if (rc == CK_ERR_INTEGRITY || rc == CK_ERR_LIMIT) {
        char why[128];
        snprintf(why, sizeof(why), "%s", ck_error_context());
        rc = ck_error_set(CK_ERR_EXPIRED, "lkh rekey: epoch %llu: keys too old (%s)",
                          (unsigned long long)v.epoch, why);
    }
    if (rc != 0)
        goto out;
    if (m->path[m->height].version > v.root_version) {
        rc = ck_error_set(CK_ERR_PROTO, "lkh rekey: root version went back");
        goto out;
    }
    *last_epoch = v.epoch;
    *root_version = v.root_version;
out:
    lkh_rekey_view_clear(&v);
    return rc;
}

/* ---- group SA keys and key check --------------------------------------------------------- */

int
lkh_group_sa_key(const uint8_t group_key[LKH_KEY_LEN], uint32_t group_id, uint32_t version,
                 uint8_t *out, size_t out_len)
{
    static const char salt[] = "cablekey ksv group sa";
    EVP_KDF *kdf = NULL;
    EVP_KDF_CTX *ctx = NULL;
    OSSL_PARAM params[5];
    uint8_t info[8];
    int rc = 0;

    if (out_len == 0 || out_len > 64)
        return ck_error_set(CK_ERR_INVAL, "lkh: group SA key of %zu bytes", out_len);
    lkh_put_be32(info, group_id);
    lkh_put_be32(info + 4, version);
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)group_key,
                                                  LKH_KEY_LEN);
    params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt,
                                                  sizeof(salt) - 1);
    params[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, sizeof(info));
    params[4] = OSSL_PARAM_construct_end();
    if ((kdf = EVP_KDF_fetch(NULL, "HKDF", NULL)) == NULL || (ctx = EVP_KDF_CTX_new(kdf)) == NULL ||
        EVP_KDF_derive(ctx, out, out_len, params) != 1) {
        OPENSSL_cleanse(out, out_len);
        rc = ck_error_set_ssl(CK_ERR_CRYPTO, "lkh: HKDF");
    }
    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(kdf);
    return rc;
}

int
lkh_group_key_check(const uint8_t group_key[LKH_KEY_LEN], uint32_t version, uint8_t out[8])
{
    static const char label[] = "cablekey ksv key check";
    uint8_t msg[sizeof(label) - 1 + 4], mac[32];
    size_t maclen = 0;
    int rc = 0;

    memcpy(msg, label, sizeof(label) - 1);
    lkh_put_be32(msg + sizeof(label) - 1, version);
    if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, group_key, LKH_KEY_LEN, msg, sizeof(msg),
                  mac, sizeof(mac), &maclen) == NULL || maclen != sizeof(mac))
        rc = ck_error_set_ssl(CK_ERR_CRYPTO, "lkh: key check");
    else
        memcpy(out, mac, 8);
    OPENSSL_cleanse(mac, sizeof(mac));
    return rc;
}
