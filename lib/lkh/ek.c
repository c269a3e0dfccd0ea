/* Explicit keying (EK) and hybrid EK+LKH (definitions in include/cablekey/lkh_rekey.h): an LKH
 * tree over clusters of members; clusters that change are REPLACEd and their members get their
 * paths by sealed unicast, everyone else by the signed multicast. EK is the one-cluster case. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/error.h"
#include "cablekey/lkh_rekey.h"

#define NONE UINT32_MAX

struct lkh_hybrid {
    struct lkh_tree *tree;
    uint32_t cluster, max_members, n_clusters, n_members;
    uint32_t *member_cluster; /* by member ID: cluster or NONE */
    uint32_t *member_slot;    /* by member ID: index in its cluster's slots */
    uint32_t *slots;          /* n_clusters * cluster: member IDs, the first count[c] used */
    uint32_t *count;          /* members per cluster */
    uint32_t *tid;            /* the cluster's tree member ID, NONE when it has none */
    uint32_t *free_ids;       /* stack, lowest on top */
    uint32_t n_free;
};

void
lkh_hybrid_free(struct lkh_hybrid *h)
{
    if (h == NULL)
        return;
    lkh_tree_free(h->tree);
    free(h->member_cluster);
    free(h->member_slot);
    free(h->slots);
    free(h->count);
    free(h->tid);
    free(h->free_ids);
    free(h);
}

int
lkh_hybrid_new(uint32_t degree, uint32_t cluster, uint32_t max_members, struct lkh_hybrid **out)
{
    struct lkh_hybrid *h = NULL;
    int rc;

    *out = NULL;
    if (cluster == 0 || max_members == 0 || max_members > LKH_MAX_MEMBERS)
        return ck_error_set(CK_ERR_INVAL, "lkh hybrid: cluster %u, %u members", cluster,
                            max_members);
    if (cluster > max_members)
        cluster = max_members;
    if ((h = calloc(1, sizeof(*h))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "lkh hybrid");
    h->cluster = cluster;
    h->max_members = max_members;
    h->n_clusters = (uint32_t)(((uint64_t)max_members + cluster - 1) / cluster);
    if ((rc = lkh_tree_new(degree, h->n_clusters, &h->tree)) != 0)
        goto out;
    h->member_cluster = malloc((size_t)max_members * sizeof(uint32_t));
    h->member_slot = malloc((size_t)max_members * sizeof(uint32_t));
    h->slots = malloc((size_t)h->n_clusters * cluster * sizeof(uint32_t));
    h->count = calloc(h->n_clusters, sizeof(uint32_t));
    h->tid = malloc((size_t)h->n_clusters * sizeof(uint32_t));
    h->free_ids = malloc((size_t)max_members * sizeof(uint32_t));
    if (h->member_cluster == NULL || h->member_slot == NULL || h->slots == NULL ||
        h->count == NULL || h->tid == NULL || h->free_ids == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "lkh hybrid: %u members", max_members);
        goto out;
    }
    for (uint32_t i = 0; i < max_members; i++) {
        h->member_cluster[i] = NONE;
        h->free_ids[i] = max_members - 1 - i;
    }
    for (uint32_t c = 0; c < h->n_clusters; c++)
        h->tid[c] = NONE;
    h->n_free = max_members;
    *out = h;
    h = NULL;
out:
    lkh_hybrid_free(h);
    return rc;
}

int
lkh_ek_new(uint32_t max_members, struct lkh_hybrid **out)
{
    return lkh_hybrid_new(2, max_members, max_members, out);
}

const struct lkh_tree *
lkh_hybrid_tree(const struct lkh_hybrid *h)
{
    return h->tree;
}

uint32_t
lkh_hybrid_members(const struct lkh_hybrid *h)
{
    return h->n_members;
}

void
lkh_hybrid_result_clear(struct lkh_hybrid_result *res)
{
    if (res == NULL)
        return;
    lkh_batch_result_clear(&res->lkh);
    free(res->unicast);
    free(res->joined);
    memset(res, 0, sizeof(*res));
}

int
lkh_hybrid_member_export(const struct lkh_hybrid *h, uint32_t member_id, struct lkh_member *out)
{
    int rc;

    if (member_id >= h->max_members || h->member_cluster[member_id] == NONE)
        return ck_error_set(CK_ERR_NOTFOUND, "lkh hybrid: member %u not in the group",
                            member_id);
    if ((rc = lkh_member_export(h->tree, h->tid[h->member_cluster[member_id]], out)) != 0)
        return rc;
    out->member_id = member_id;
    return 0;
}

static int
cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Cluster states during a batch planning. */
enum { C_SAME = 0, C_REPLACE = 1, C_PRUNE = 2, C_NEW = 3 };

int
lkh_hybrid_batch(struct lkh_hybrid *h, const uint32_t *leave, size_t n_leave, size_t n_join,
                 struct lkh_hybrid_result *res)
{
    uint32_t *sorted = NULL, *after = NULL, *tleave = NULL, *place = NULL, *newc = NULL;
    uint8_t *state = NULL;
    size_t n_rep = 0, n_prune = 0, n_new = 0, k, i;
    bool reuse_now;
    int rc = 0;

    memset(res, 0, sizeof(*res));
    if (n_leave > h->n_members || n_join > h->max_members ||
        (size_t)h->n_members - n_leave + n_join > h->max_members)
        return ck_error_set(n_leave > h->n_members ? CK_ERR_INVAL : CK_ERR_FULL,
                            "lkh hybrid: batch of %zu leaves, %zu joins does not fit", n_leave,
                            n_join);
    sorted = malloc((n_leave + 1) * sizeof(uint32_t));
    after = malloc((size_t)h->n_clusters * sizeof(uint32_t));
    state = calloc(h->n_clusters, 1);
    place = malloc((n_join + 1) * sizeof(uint32_t));
    newc = malloc((n_join + 1) * sizeof(uint32_t));
    tleave = malloc(((size_t)h->n_clusters + 1) * sizeof(uint32_t));
    if (sorted == NULL || after == NULL || state == NULL || place == NULL || newc == NULL ||
        tleave == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "lkh hybrid: batch");
        goto out;
    }
    if (n_leave > 0)
        memcpy(sorted, leave, n_leave * sizeof(uint32_t));
    qsort(sorted, n_leave, sizeof(uint32_t), cmp_u32);
    for (i = 0; i < n_leave; i++) {
        if (sorted[i] >= h->max_members || h->member_cluster[sorted[i]] == NONE) {
            rc = ck_error_set(CK_ERR_NOTFOUND, "lkh hybrid: member %u not in the group",
                              sorted[i]);
            goto out;
        }
        if (i > 0 && sorted[i] == sorted[i - 1]) {
            rc = ck_error_set(CK_ERR_INVAL, "lkh hybrid: member %u listed twice", sorted[i]);
            goto out;
        }
    }
    /* Plan on copies: counts after the departures, joiners to the leftmost cluster with room. */
    memcpy(after, h->count, (size_t)h->n_clusters * sizeof(uint32_t));
    for (i = 0; i < n_leave; i++) {
        uint32_t c = h->member_cluster[sorted[i]];
        after[c]--;
        state[c] = C_REPLACE;
    }
    for (i = 0, k = 0; i < n_join; i++) {
        while (k < h->n_clusters && after[k] >= h->cluster)
            k++;
        if (k == h->n_clusters) { /* cannot happen: cluster * n_clusters >= max_members */
            rc = ck_error_set(CK_ERR_FULL, "lkh hybrid: no cluster with room");
            goto out;
        }
        place[i] = (uint32_t)k;
        if (h->tid[k] == NONE) {
            if (state[k] != C_NEW)
                newc[n_new++] = (uint32_t)k;
            state[k] = C_NEW;
        } else {
            state[k] = C_REPLACE;
        }
        after[k]++;
    }
    for (uint32_t c = 0; c < h->n_clusters; c++)
        if (state[c] == C_REPLACE && after[c] == 0)
            state[c] = C_PRUNE;
    /* the tree's batch: REPLACE clusters first (lkh_batch gives the first departed leaves to the
     * first joiners), then the pruned ones; NEW clusters are the remaining joiners */
    for (uint32_t c = 0; c < h->n_clusters; c++)
        if (state[c] == C_REPLACE)
            tleave[n_rep++] = h->tid[c];
    for (uint32_t c = 0; c < h->n_clusters; c++)
        if (state[c] == C_PRUNE)
            tleave[n_rep + n_prune++] = h->tid[c];
    if ((rc = lkh_batch(h->tree, tleave, n_rep + n_prune, n_rep + n_new, &res->lkh)) != 0)
        goto out;

    /* Apply. Departures leave their cluster's slots (the last slot fills the hole). */
    for (i = 0; i < n_leave; i++) {
        uint32_t id = sorted[i], c = h->member_cluster[id], s = h->member_slot[id];
        uint32_t last = h->slots[(size_t)c * h->cluster + h->count[c] - 1];
        h->slots[(size_t)c * h->cluster + s] = last;
        h->member_slot[last] = s;
        h->count[c]--;
        h->member_cluster[id] = NONE;
        h->n_members--;
    }
    res->joined = malloc((n_join + 1) * sizeof(uint32_t));
    if (res->joined == NULL) {
        /* the tree moved on: keep the bookkeeping consistent without the joiners' IDs */
        rc = ck_error_set(CK_ERR_NOMEM, "lkh hybrid: batch");
        goto out;
    }
    /* departed IDs return after the joiners took theirs, as in lkh_batch */
    reuse_now = h->n_free < n_join;
    if (reuse_now)
        for (i = n_leave; i-- > 0;)
            h->free_ids[h->n_free++] = sorted[i];
    for (i = 0; i < n_join; i++) {
        uint32_t id = h->free_ids[--h->n_free], c = place[i];
        h->slots[(size_t)c * h->cluster + h->count[c]] = id;
        h->member_slot[id] = h->count[c];
        h->member_cluster[id] = c;
        h->count[c]++;
        h->n_members++;
        res->joined[res->n_joined++] = id;
    }
    if (!reuse_now)
        for (i = n_leave; i-- > 0;)
            h->free_ids[h->n_free++] = sorted[i];
    /* the clusters' tree IDs after the batch */
    k = 0;
    for (uint32_t c = 0; c < h->n_clusters; c++) {
        if (state[c] == C_REPLACE)
            h->tid[c] = res->lkh.joined[k++];
        else if (state[c] == C_PRUNE)
            h->tid[c] = NONE;
    }
    for (i = 0; i < n_new; i++)
        h->tid[newc[i]] = res->lkh.joined[n_rep + i];
    /* unicast: every member of a REPLACEd or new cluster */
    {
        size_t n_uni = 0;
        for (uint32_t c = 0; c < h->n_clusters; c++)
            if (state[c] == C_REPLACE || state[c] == C_NEW)
                n_uni += h->count[c];
        if ((res->unicast = malloc((n_uni + 1) * sizeof(uint32_t))) == NULL) {
            rc = ck_error_set(CK_ERR_NOMEM, "lkh hybrid: batch");
            goto out;
        }
        for (uint32_t c = 0; c < h->n_clusters; c++)
            if (state[c] == C_REPLACE || state[c] == C_NEW)
                for (uint32_t j = 0; j < h->count[c]; j++)
                    res->unicast[res->n_unicast++] = h->slots[(size_t)c * h->cluster + j];
    }
    res->multicast = h->n_members > res->n_unicast && res->lkh.n_wraps > 0;
out:
    if (rc != 0)
        lkh_hybrid_result_clear(res);
    free(sorted);
    free(after);
    free(state);
    free(place);
    free(newc);
    free(tleave);
    return rc;
}

/* Persistence */

void
lkh_hybrid_clear_dirty(struct lkh_hybrid *h)
{
    lkh_tree_clear_dirty(h->tree);
}

int
lkh_hybrid_members_list(const struct lkh_hybrid *h, struct lkh_member_place **out, size_t *n)
{
    struct lkh_member_place *p;
    size_t k = 0;
    int rc;

    *out = NULL;
    *n = 0;
    if ((p = malloc(((size_t)h->n_members + 1) * sizeof(*p))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "lkh hybrid: %u members", h->n_members);
    for (uint32_t id = 0; id < h->max_members; id++) {
        if (h->member_cluster[id] == NONE)
            continue;
        p[k].member_id = id;
        if ((rc = lkh_member_leaf(h->tree, h->tid[h->member_cluster[id]], &p[k].leaf)) != 0) {
            free(p);
            return rc;
        }
        k++;
    }
    *out = p;
    *n = k;
    return 0;
}

static int
cmp_place_leaf(const void *a, const void *b)
{
    uint32_t x = ((const struct lkh_member_place *)a)->leaf;
    uint32_t y = ((const struct lkh_member_place *)b)->leaf;
    return x < y ? -1 : x > y;
}

int
lkh_hybrid_restore(uint32_t degree, uint32_t cluster, uint32_t max_members,
                   const struct lkh_node_state *nodes, size_t n_nodes,
                   const struct lkh_member_place *clusters, size_t n_clusters,
                   const struct lkh_member_place *members, size_t n_members,
                   struct lkh_hybrid **out)
{
    struct lkh_hybrid *h = NULL;
    struct lkh_member_place *cl = NULL;
    int rc;

    *out = NULL;
    if ((rc = lkh_hybrid_new(degree, cluster, max_members, &h)) != 0)
        return rc;
    lkh_tree_free(h->tree);
    h->tree = NULL;
    if ((rc = lkh_tree_restore(degree, h->n_clusters, nodes, n_nodes, clusters, n_clusters,
                               &h->tree)) != 0)
        goto out;
    /* lkh_tree_restore checked the clusters' IDs and leaves (in range, unique) */
    if ((cl = malloc((n_clusters + 1) * sizeof(*cl))) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "lkh hybrid restore");
        goto out;
    }
    if (n_clusters > 0)
        memcpy(cl, clusters, n_clusters * sizeof(*cl));
    qsort(cl, n_clusters, sizeof(*cl), cmp_place_leaf);
    for (size_t c = 0; c < n_clusters; c++)
        h->tid[c] = cl[c].member_id;
    if (n_members > max_members) {
        rc = ck_error_set(CK_ERR_DECODE, "lkh hybrid restore: %zu members", n_members);
        goto out;
    }
    for (size_t i = 0; i < n_members; i++) {
        uint32_t id = members[i].member_id, c;
        size_t lo = 0, hi = n_clusters;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (cl[mid].leaf < members[i].leaf)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo == n_clusters || cl[lo].leaf != members[i].leaf || id >= max_members ||
            h->member_cluster[id] != NONE || h->count[lo] >= h->cluster) {
            rc = ck_error_set(CK_ERR_DECODE, "lkh hybrid restore: member %u at leaf %u: no "
                              "cluster there, repeated, or the cluster is full", id,
                              members[i].leaf);
            goto out;
        }
        c = (uint32_t)lo;
        h->slots[(size_t)c * h->cluster + h->count[c]] = id;
        h->member_slot[id] = h->count[c];
        h->member_cluster[id] = c;
        h->count[c]++;
        h->n_members++;
    }
    for (size_t c = 0; c < n_clusters; c++)
        if (h->count[c] == 0) {
            rc = ck_error_set(CK_ERR_DECODE, "lkh hybrid restore: cluster at leaf %u is empty",
                              cl[c].leaf);
            goto out;
        }
    h->n_free = 0;
    for (uint32_t id = max_members; id-- > 0;)
        if (h->member_cluster[id] == NONE)
            h->free_ids[h->n_free++] = id;
    *out = h;
    h = NULL;
out:
    free(cl);
    lkh_hybrid_free(h);
    return rc;
}
