/* Multicast groups: an LKH tree per group (lib/lkh) restored from the store, LKH+ joins by
 * unicast, leaves and revocations batched (interval and size triggers) into signed rekey
 * datagrams (lkh_rekey.h) that are committed before they are multicast, GROUP_ACK tracking with
 * unicast recovery, RECOVER, and the explicit keying (EK) mode where every change sends the new
 * group key to each member by sealed unicast. Hybrid groups (lkh_rekey.h) keep an lkh_hybrid:
 * members of a changed cluster get their new path by sealed unicast, everyone else the signed
 * multicast; a joiner is a batch of its own (its cluster is replaced or opened). */
#define KSV_INTERNAL
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "cablekey/error.h"
#include "cablekey/util.h"
#include "ksv.h"

static const char *
mode_name(int keying)
{
    return keying == CK_KSVTOPO_EK ? "ek" : keying == CK_KSVTOPO_HYBRID ? "hybrid" : "lkh";
}

/* The LKH tree of a group: its own, or a hybrid's tree over clusters. */
static const struct lkh_tree *
gtree(const struct ksv_group *g)
{
    return g->hy != NULL ? lkh_hybrid_tree(g->hy) : g->tree;
}

static void
gclear_dirty(struct ksv_group *g)
{
    if (g->hy != NULL)
        lkh_hybrid_clear_dirty(g->hy);
    else
        lkh_tree_clear_dirty(g->tree);
}

int
ksv_groups_find(const struct ksv_core *k, const char *name)
{
    for (size_t i = 0; i < k->n_groups; i++)
        if (strcmp(k->groups[i].name, name) == 0)
            return (int)i;
    return -1;
}

static struct ksv_group *
group_by_id(struct ksv_core *k, uint32_t id)
{
    for (size_t i = 0; i < k->n_groups; i++)
        if (k->groups[i].group_id == id && !k->groups[i].broken)
            return &k->groups[i];
    return NULL;
}

/* ---- members (sorted by node name) --------------------------------------------------------- */

static size_t
member_pos(const struct ksv_group *g, const char *node, bool *found)
{
    size_t lo = 0, hi = g->n_members;

    *found = false;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(g->members[mid].node, node);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static struct ksv_member *
member_find(struct ksv_group *g, const char *node)
{
    bool found;
    size_t pos = member_pos(g, node, &found);

    return found ? &g->members[pos] : NULL;
}

static int
member_add(struct ksv_group *g, const char *node, uint32_t member_id, uint32_t leaf)
{
    bool found;
    size_t pos = member_pos(g, node, &found);

    if (found) {
        g->members[pos].member_id = member_id;
        g->members[pos].leaf = leaf;
        return 0;
    }
    if (g->n_members == g->cap_members) {
        size_t cap = g->cap_members ? 2 * g->cap_members : 16;
        struct ksv_member *m = realloc(g->members, cap * sizeof(*m));
        if (m == NULL)
            return ck_error_set(CK_ERR_NOMEM, "members");
        g->members = m;
        g->cap_members = cap;
    }
    memmove(&g->members[pos + 1], &g->members[pos], (g->n_members - pos) * sizeof(*g->members));
    memset(&g->members[pos], 0, sizeof(g->members[pos]));
    ck_strlcpy(g->members[pos].node, node, sizeof(g->members[pos].node));
    g->members[pos].member_id = member_id;
    g->members[pos].leaf = leaf;
    g->n_members++;
    return 0;
}

static void
member_remove(struct ksv_group *g, const char *node)
{
    bool found;
    size_t pos = member_pos(g, node, &found);

    if (!found)
        return;
    memmove(&g->members[pos], &g->members[pos + 1],
            (g->n_members - pos - 1) * sizeof(*g->members));
    g->n_members--;
}

static bool
leave_queued(const struct ksv_group *g, const char *node)
{
    for (size_t i = 0; i < g->n_leaves; i++)
        if (strcmp(g->leaves[i].node, node) == 0)
            return true;
    return false;
}

static int
queue_leave(struct ksv_core *k, struct ksv_group *g, const struct ksv_member *m, int64_t now_ms)
{
    if (leave_queued(g, m->node))
        return 0;
    if (g->n_leaves == g->cap_leaves) {
        size_t cap = g->cap_leaves ? 2 * g->cap_leaves : 16;
        struct ksv_member *l = realloc(g->leaves, cap * sizeof(*l));
        if (l == NULL)
            return ck_error_set(CK_ERR_NOMEM, "leaves");
        g->leaves = l;
        g->cap_leaves = cap;
    }
    if (g->n_leaves == 0)
        g->first_queued_ms = now_ms;
    g->leaves[g->n_leaves++] = *m;
    ksv_log(k, LOG_INFO, "ksv leave queued group=%s node=%s member=%u", g->name, m->node,
            m->member_id);
    return 0;
}

/* ---- loading ------------------------------------------------------------------------------- */

static void
group_clear(struct ksv_group *g)
{
    lkh_tree_free(g->tree);
    g->tree = NULL;
    lkh_hybrid_free(g->hy);
    g->hy = NULL;
    free(g->members);
    g->members = NULL;
    g->n_members = g->cap_members = 0;
    free(g->leaves);
    g->leaves = NULL;
    g->n_leaves = g->cap_leaves = 0;
    free(g->ack_wait);
    g->ack_wait = NULL;
    g->n_ack_wait = 0;
    g->ack_deadline = 0;
}

void
ksv_groups_free(struct ksv_core *k)
{
    for (size_t i = 0; i < k->n_groups; i++)
        group_clear(&k->groups[i]);
    free(k->groups);
    k->groups = NULL;
    k->n_groups = k->cap_groups = 0;
}

static int
cmp_place_leaf(const void *a, const void *b)
{
    uint32_t x = ((const struct lkh_member_place *)a)->leaf;
    uint32_t y = ((const struct lkh_member_place *)b)->leaf;

    return x < y ? -1 : x > y;
}

/* A hybrid group from the store's rows as they are: a member row holds the member's hybrid ID
 * and its cluster's leaf, so the clusters are the distinct leaves of the active members. Their
 * tree member IDs are not stored and need not be: they only name the leaves inside the tree
 * (numbered here in leaf order, as lkh_hybrid_restore renumbers the clusters). */
static int
hybrid_restore(struct ksv_group *g, const struct lkh_node_state *nodes, size_t n_nodes,
               const struct lkh_member_place *places, size_t n_places)
{
    struct lkh_member_place *cl = NULL;
    size_t n_cl = 0;
    int rc;

    if (n_nodes == 0 && n_places == 0)
        return lkh_hybrid_new(g->degree, KSV_HYBRID_CLUSTER, g->capacity, &g->hy);
    if ((cl = calloc(n_places + 1, sizeof(*cl))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "clusters");
    for (size_t i = 0; i < n_places; i++)
        cl[i].leaf = places[i].leaf;
    qsort(cl, n_places, sizeof(*cl), cmp_place_leaf);
    for (size_t i = 0; i < n_places; i++) {
        if (n_cl > 0 && cl[n_cl - 1].leaf == cl[i].leaf)
            continue;
        cl[n_cl].leaf = cl[i].leaf;
        cl[n_cl].member_id = (uint32_t)n_cl;
        n_cl++;
    }
    rc = lkh_hybrid_restore(g->degree, KSV_HYBRID_CLUSTER, g->capacity, nodes, n_nodes, cl, n_cl,
                            places, n_places, &g->hy);
    free(cl);
    return rc;
}

/* The tree and members from the store (epoch and SPI from its row). */
static int
group_restore(struct ksv_core *k, struct ksv_group *g)
{
    struct lkh_node_state *nodes = NULL;
    struct ck_ksv_member_row *members = NULL;
    struct lkh_member_place *places = NULL;
    struct ck_ksv_group_row *rows = NULL;
    size_t n_nodes = 0, n_members = 0, n_places = 0, n_rows = 0;
    int rc;

    /* The queued leaves and the GROUP_ACK wait stay: they are still to be done. */
    lkh_tree_free(g->tree);
    g->tree = NULL;
    lkh_hybrid_free(g->hy);
    g->hy = NULL;
    free(g->members);
    g->members = NULL;
    g->n_members = g->cap_members = 0;
    if ((rc = ck_ksv_store_group_list(k->p.store, &rows, &n_rows)) != 0)
        goto out;
    for (size_t i = 0; i < n_rows; i++)
        if (rows[i].group_id == g->group_id)
            g->epoch = rows[i].epoch;
    if ((rc = ck_ksv_store_group_load(k->p.store, g->group_id, &nodes, &n_nodes, &members,
                                      &n_members)) != 0)
        goto out;
    if (n_members > 0 && (places = calloc(n_members, sizeof(*places))) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "members");
        goto out;
    }
    for (size_t i = 0; i < n_members; i++) {
        if (members[i].state != CK_KSV_MEMBER_ACTIVE)
            continue;
        places[n_places].member_id = members[i].member_id;
        places[n_places].leaf = members[i].leaf;
        n_places++;
        if ((rc = member_add(g, members[i].node, members[i].member_id, members[i].leaf)) != 0)
            goto out;
    }
    if (g->keying == CK_KSVTOPO_HYBRID)
        rc = hybrid_restore(g, nodes, n_nodes, places, n_places);
    else if (n_nodes == 0 && n_places == 0)
        rc = lkh_tree_new(g->degree, g->capacity, &g->tree);
    else
        rc = lkh_tree_restore(g->degree, g->capacity, nodes, n_nodes, places, n_places,
                              &g->tree);
    if (rc == 0 && lkh_tree_height(gtree(g)) > CK_KSV_MAX_DEPTH)
        rc = ck_error_set(CK_ERR_LIMIT, "tree height %u", lkh_tree_height(gtree(g)));
out:
    if (rc != 0)
        ksv_log(k, LOG_ERR, "ksv group %s: cannot load: %s", g->name, ck_error_context());
    g->broken = rc != 0;
    ck_ksv_store_nodes_free(nodes, n_nodes);
    free(members);
    free(places);
    free(rows);
    return rc;
}

static uint32_t
capacity_for(size_t members)
{
    uint64_t want = 4 * (uint64_t)members, cap = KSV_MIN_CAPACITY;

    while (cap < want && cap < LKH_MAX_MEMBERS)
        cap *= 2;
    return (uint32_t)cap;
}

static int
group_open(struct ksv_core *k, const struct ck_ksvtopo_group *tg, struct ksv_group **out)
{
    struct ck_ksv_group_row row;
    struct ksv_group *g;
    int rc;

    *out = NULL;
    if (k->n_groups == k->cap_groups) {
        size_t cap = k->cap_groups ? 2 * k->cap_groups : 8;
        struct ksv_group *ng = realloc(k->groups, cap * sizeof(*ng));
        if (ng == NULL)
            return ck_error_set(CK_ERR_NOMEM, "groups");
        k->groups = ng;
        k->cap_groups = cap;
    }
    g = &k->groups[k->n_groups];
    memset(g, 0, sizeof(*g));
    ck_strlcpy(g->name, tg->name, sizeof(g->name));
    g->live = true;
    g->keying = (int)tg->keying;
    k->n_groups++;
    if (tg->degree < CK_KSV_MIN_DEGREE || tg->degree > CK_KSV_MAX_DEGREE ||
        tg->degree > LKH_MAX_DEGREE) {
        ksv_log(k, LOG_ERR, "ksv group %s: degree %u not supported (2..%u): group skipped",
                tg->name, tg->degree, CK_KSV_MAX_DEGREE);
        g->broken = true;
        return 0;
    }
    memset(&row, 0, sizeof(row));
    if ((rc = ck_ksv_store_group_get(k->p.store, tg->name, tg->degree,
                                     capacity_for(tg->n_members), (int)tg->keying, &row)) != 0) {
        ksv_log(k, LOG_ERR, "ksv group %s: %s", tg->name, ck_error_context());
        g->broken = true;
        return rc;
    }
    g->group_id = row.group_id;
    g->epoch = row.epoch;
    g->degree = row.degree;
    g->capacity = row.capacity;
    g->spi = row.spi;
    /* The stored group keeps the keying it was created with: its rows are shaped by it. */
    if (row.keying == CK_KSVTOPO_EK || row.keying == CK_KSVTOPO_HYBRID)
        g->keying = row.keying;
    else
        g->keying = CK_KSVTOPO_LKH;
    (void)group_restore(k, g);
    *out = g;
    return 0;
}

static int
send_dgrams(struct ksv_core *k, const struct ksv_group *g, uint8_t *const *dgrams,
            const size_t *lens, size_t n, bool crash_mid)
{
    const struct ck_ksvtopo_group *tg = ck_ksvtopo_group_find(k->topo, g->name);
    struct sockaddr_storage ss;
    socklen_t len;

    if (tg == NULL || ksv_sockaddr_from_text(tg->address, k->p.mcast_port, &ss, &len) != 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (k->p.cb.send_mcast(k->p.cb.arg, (struct sockaddr *)&ss, len, dgrams[i], lens[i]) !=
            0)
            ksv_log(k, LOG_WARNING, "ksv group %s: multicast send: %s", g->name,
                    ck_error_context());
        if (crash_mid && i == 0 && ksv_crash(k, "batch-mid-send"))
            return 0;
    }
    return 0;
}

int
ksv_groups_load(struct ksv_core *k, int64_t now_ms)
{
    int rc;

    for (size_t i = 0; i < ck_ksvtopo_n_groups(k->topo); i++) {
        const struct ck_ksvtopo_group *tg = ck_ksvtopo_group_at(k->topo, i);
        struct ksv_group *g;
        uint8_t **dg = NULL;
        size_t *lens = NULL, n = 0;

        if (ksv_groups_find(k, tg->name) >= 0)
            continue;
        if ((rc = group_open(k, tg, &g)) != 0)
            return rc;
        if (g == NULL || g->broken || g->epoch == 0 || g->keying == CK_KSVTOPO_EK)
            continue;
        /* The last epoch may have been cut short by a crash: send it again, once. */
        if (ck_ksv_store_epoch_dgrams(k->p.store, g->group_id, g->epoch, &dg, &lens, &n) != 0)
            continue;
        /* (A hybrid epoch may have gone by unicast alone: nothing to resend.) */
        if (n > 0) {
            ksv_log(k, LOG_INFO, "ksv group %s: resending epoch %llu (%zu datagram%s)", g->name,
                    (unsigned long long)g->epoch, n, n == 1 ? "" : "s");
            (void)send_dgrams(k, g, dg, lens, n, false);
        }
        for (size_t j = 0; j < n; j++)
            free(dg[j]);
        free(dg);
        free(lens);
    }
    (void)now_ms;
    return 0;
}

/* ---- what a member receives ---------------------------------------------------------------- */

static int
group_key(const struct ksv_group *g, uint8_t key[LKH_KEY_LEN], uint32_t *version)
{
    struct lkh_node_state root;
    int rc = lkh_group_key(gtree(g), key, version);

    if (rc == CK_ERR_NOTFOUND && lkh_tree_node_get(gtree(g), 0, &root) == 0) {
        *version = root.version;
        OPENSSL_cleanse(&root, sizeof(root));
    }
    return rc;
}

static int
group_wire(struct ksv_core *k, const struct ksv_group *g, const struct ksv_member *mb,
           struct ck_ksv_group *out)
{
    const struct ck_ksvtopo_group *tg = ck_ksvtopo_group_find(k->topo, g->name);
    struct lkh_member lm;
    uint8_t key[LKH_KEY_LEN], el, al;
    uint32_t version = 0;
    int rc;

    memset(out, 0, sizeof(*out));
    memset(&lm, 0, sizeof(lm));
    if (tg == NULL)
        return ck_error_set(CK_ERR_NOTFOUND, "group %s", g->name);
    out->group_id = g->group_id;
    out->epoch = g->epoch;
    out->member_index = mb->member_id;
    out->keying = g->keying == CK_KSVTOPO_EK       ? CK_KSV_KEYING_EK
                  : g->keying == CK_KSVTOPO_HYBRID ? CK_KSV_KEYING_HYBRID
                                                   : CK_KSV_KEYING_LKH;
    out->gflags = tg->policy->xf.ack_reqd ? CK_KSV_GF_WANT_ACK : 0;
    if ((rc = ksv_addr_from_text(tg->address, &out->mcast)) != 0)
        goto out;
    out->mcast_port = k->p.mcast_port;
    memcpy(out->sign_pub, k->sign_pub, sizeof(out->sign_pub));
    out->spi = g->spi;
    ksv_xf_wire(&tg->policy->xf, &out->proto, &out->mode, &out->enc_alg, &out->auth_alg, &el,
                &al);
    /* Members derive the group SA's keys (lkh_group_sa_key, at most CK_KSV_GROUP_SA_MAX_KEYS
     * bytes, enc key then auth key): a transform wanting more (AES-256-CBC with HMAC-SHA-512,
     * 96 bytes) gets a shortened HMAC key, still at least 32 bytes, and says so on the wire. */
    if ((unsigned)el + al > CK_KSV_GROUP_SA_MAX_KEYS)
        al = (uint8_t)(CK_KSV_GROUP_SA_MAX_KEYS - el);
    out->enc_key_len = el;
    out->auth_key_len = al;
    out->life_sec = tg->policy->xf.life_sec;
    out->life_kbytes = tg->policy->xf.life_kbyte;
    out->degree = (uint8_t)g->degree;
    if ((rc = group_key(g, key, &version)) != 0)
        goto out;
    out->root_version = version;
    if (g->keying == CK_KSVTOPO_EK) {
        out->id_len = 0;
        out->n_keys = 1;
        out->keys[0].level = 0;
        out->keys[0].key_len = LKH_KEY_LEN;
        out->keys[0].node = 0;
        out->keys[0].version = version;
        memcpy(out->keys[0].key, key, LKH_KEY_LEN);
        goto out;
    }
    /* Hybrid: the cluster's path, under the member's own ID. */
    rc = g->hy != NULL ? lkh_hybrid_member_export(g->hy, mb->member_id, &lm)
                       : lkh_member_export(g->tree, mb->member_id, &lm);
    if (rc != 0 ||
        (rc = ck_ksv_leaf_digits(out->degree, lm.path[0].node, out->member_id, &out->id_len)) !=
            0)
        goto out;
    if (out->id_len != lm.height) {
        rc = ck_error_set(CK_ERR_INVAL, "member %u: depth %u, height %u", mb->member_id,
                          out->id_len, lm.height);
        goto out;
    }
    out->n_keys = (uint8_t)(lm.height + 1);
    for (uint32_t l = 0; l <= lm.height; l++) {
        out->keys[l].level = (uint8_t)l;
        out->keys[l].key_len = LKH_KEY_LEN;
        out->keys[l].node = lm.path[lm.height - l].node;
        out->keys[l].version = lm.path[lm.height - l].version;
        memcpy(out->keys[l].key, lm.path[lm.height - l].key, LKH_KEY_LEN);
    }
out:
    OPENSSL_cleanse(key, sizeof(key));
    lkh_member_clear(&lm);
    return rc;
}

/* A sealed REGISTER carrying one group (no REFRESH: the node's SAs are left alone). */
static int
unicast_group(struct ksv_core *k, const struct ksv_group *g, const struct ksv_member *mb,
              int64_t now_ms)
{
    const struct ck_ksvtopo_group *tg = ck_ksvtopo_group_find(k->topo, g->name);
    struct ksv_node *n = ksv_node_find(k, mb->node);
    struct ck_ksv_msg *m = NULL;
    struct ck_ksv_group cg;
    int rc;

    if (n == NULL || !n->registered || tg == NULL)
        return 0;
    if ((rc = group_wire(k, g, mb, &cg)) != 0) {
        ksv_log(k, LOG_ERR, "ksv group %s node=%s: %s", g->name, mb->node, ck_error_context());
        return 0;
    }
    if ((rc = ck_ksv_msg_new(CK_KSV_REGISTER, &m)) == 0) {
        m->flags = tg->policy->xf.ack_reqd ? CK_KSV_F_ACK_REQD : 0;
        if ((rc = ck_ksv_msg_add_group(m, &cg)) == 0)
            rc = ksv_send_msg(k, n, m, now_ms);
    }
    OPENSSL_cleanse(&cg, sizeof(cg));
    ck_ksv_msg_free(m);
    return rc;
}

/* EK: the group key to every member but `except`. */
static int
ek_distribute(struct ksv_core *k, const struct ksv_group *g, const char *except, int64_t now_ms)
{
    int rc;

    for (size_t i = 0; i < g->n_members; i++) {
        if (except != NULL && strcmp(g->members[i].node, except) == 0)
            continue;
        if ((rc = unicast_group(k, g, &g->members[i], now_ms)) != 0)
            return rc;
    }
    return 0;
}

/* The node states changed since the last commit. */
static int
dirty_nodes(const struct ksv_group *g, struct lkh_node_state **out, size_t *n)
{
    uint32_t *ids = NULL;
    size_t n_ids = 0;
    int rc;

    *out = NULL;
    *n = 0;
    if ((rc = lkh_tree_dirty(gtree(g), &ids, &n_ids)) != 0)
        return rc;
    if (n_ids > 0 && (*out = calloc(n_ids, sizeof(**out))) == NULL) {
        free(ids);
        return ck_error_set(CK_ERR_NOMEM, "dirty nodes");
    }
    for (size_t i = 0; i < n_ids; i++)
        if ((rc = lkh_tree_node_get(gtree(g), ids[i], &(*out)[i])) != 0)
            break;
    *n = n_ids;
    free(ids);
    return rc;
}

static void
nodes_free(struct lkh_node_state *s, size_t n)
{
    if (s != NULL)
        ck_free_secret(s, n * sizeof(*s));
}

static int64_t
cpu_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* A batch that could not be committed: nothing was sent, so the tree goes back to the store's
 * and the leaves stay queued. */
static void
batch_failed(struct ksv_core *k, struct ksv_group *g, uint64_t epoch, int64_t now_ms)
{
    ksv_log(k, LOG_ERR, "ksv group %s: batch for epoch %llu failed: %s (retried)", g->name,
            (unsigned long long)epoch, ck_error_context());
    (void)group_restore(k, g);
    g->first_queued_ms = now_ms;
    /* A queued leave of someone the store does not hold as a member would fail forever. */
    for (size_t i = 0; i < g->n_leaves;) {
        const struct ksv_member *mb = member_find(g, g->leaves[i].node);
        if (mb != NULL && mb->member_id == g->leaves[i].member_id) {
            i++;
            continue;
        }
        memmove(&g->leaves[i], &g->leaves[i + 1], (g->n_leaves - i - 1) * sizeof(*g->leaves));
        g->n_leaves--;
    }
}

static const char *
member_node_by_id(const struct ksv_group *g, uint32_t member_id)
{
    for (size_t i = 0; i < g->n_members; i++)
        if (g->members[i].member_id == member_id)
            return g->members[i].node;
    return NULL;
}

static bool
id_listed(const uint32_t *ids, size_t n, uint32_t id)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] == id)
            return true;
    return false;
}

/* Hybrid: the queued leaves and at most one joiner in one lkh_hybrid_batch. The members of the
 * clusters it replaced or opened get their new path by sealed unicast (the joiner's goes in its
 * REGISTER, by the caller), everyone else the signed multicast when the batch has one. The
 * epoch grows unless the batch is a joiner alone without a multicast (an LKH+ join of a new
 * cluster). Committed before anything is sent: the tree rows, the leavers' rows and the rows of
 * every member whose cluster moved (its leaf is its cluster's), and the datagrams. */
static int
hybrid_batch(struct ksv_core *k, struct ksv_group *g, const char *joiner, int64_t now_ms)
{
    const struct ck_ksvtopo_group *tg = ck_ksvtopo_group_find(k->topo, g->name);
    struct lkh_hybrid_result res;
    struct lkh_rekey_out out;
    struct ck_ksv_group_commit c;
    struct ck_ksv_member_row *rows = NULL;
    struct lkh_node_state *nodes = NULL;
    struct lkh_member lm;
    uint32_t *ids = NULL;
    size_t n_nodes = 0, n_leaves = g->n_leaves, n_rows = 0, bytes = 0;
    uint64_t epoch = g->epoch + 1;
    uint8_t key[LKH_KEY_LEN];
    uint32_t version = 0;
    bool ack = tg != NULL && tg->policy->xf.ack_reqd;
    int64_t t0 = cpu_us(), spent;
    int rc;

    memset(&res, 0, sizeof(res));
    memset(&out, 0, sizeof(out));
    memset(&lm, 0, sizeof(lm));
    if ((ids = calloc(n_leaves + 1, sizeof(*ids))) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "batch");
        goto out;
    }
    for (size_t i = 0; i < n_leaves; i++)
        ids[i] = g->leaves[i].member_id;
    if ((rc = lkh_hybrid_batch(g->hy, ids, n_leaves, joiner != NULL ? 1 : 0, &res)) != 0) {
        if (rc == CK_ERR_FULL && n_leaves == 0) {
            ksv_log(k, LOG_ERR, "ksv group %s: join of %s: %s", g->name, joiner,
                    ck_error_context());
            rc = 0;
            goto out;
        }
        goto fail;
    }
    if (n_leaves == 0 && !res.multicast)
        epoch = g->epoch;
    if ((rows = calloc(n_leaves + res.n_unicast + 1, sizeof(*rows))) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "batch");
        goto fail;
    }
    for (size_t i = 0; i < n_leaves; i++) {
        ck_strlcpy(rows[i].node, g->leaves[i].node, sizeof(rows[i].node));
        rows[i].member_id = g->leaves[i].member_id;
        rows[i].leaf = g->leaves[i].leaf;
        rows[i].state = CK_KSV_MEMBER_LEFT;
    }
    n_rows = n_leaves;
    for (size_t i = 0; i < res.n_unicast; i++) {
        uint32_t id = res.unicast[i];
        const char *node = joiner != NULL && res.n_joined == 1 && res.joined[0] == id
                               ? joiner
                               : member_node_by_id(g, id);
        if (node == NULL) {
            rc = ck_error_set(CK_ERR_INVAL, "hybrid member %u has no node", id);
            goto fail;
        }
        if ((rc = lkh_hybrid_member_export(g->hy, id, &lm)) != 0)
            goto fail;
        ck_strlcpy(rows[n_rows].node, node, sizeof(rows[n_rows].node));
        rows[n_rows].member_id = id;
        rows[n_rows].leaf = lm.path[0].node;
        rows[n_rows].state = CK_KSV_MEMBER_ACTIVE;
        n_rows++;
        lkh_member_clear(&lm);
    }
    (void)group_key(g, key, &version);
    if (res.multicast) {
        struct lkh_rekey_params p = {
            .group_id = g->group_id,
            .epoch = epoch,
            .root_version = version,
            .flags = ack ? LKH_REKEY_F_ACK_REQD : 0,
            .degree = g->degree,
            .height = lkh_tree_height(gtree(g)),
            .max_dgram = 0,
        };
        if ((rc = lkh_rekey_pack(&p, res.lkh.wraps, res.lkh.n_wraps, k->signer, &out)) != 0)
            goto fail;
    }
    spent = cpu_us() - t0;
    if ((rc = dirty_nodes(g, &nodes, &n_nodes)) != 0)
        goto fail;
    if (joiner == NULL && ksv_crash(k, "batch-before-commit"))
        goto out;
    memset(&c, 0, sizeof(c));
    c.group_id = g->group_id;
    c.epoch = epoch;
    c.nodes = nodes;
    c.n_nodes = n_nodes;
    c.members = rows;
    c.n_members = n_rows;
    c.dgrams = out.dgrams;
    c.dgram_lens = out.lens;
    c.n_dgrams = out.n;
    if ((rc = ck_ksv_store_group_commit(k->p.store, &c)) != 0)
        goto fail;
    if (ksv_crash(k, joiner != NULL ? "join-after-commit" : "batch-after-commit"))
        goto out;
    gclear_dirty(g);
    g->epoch = epoch;
    for (size_t i = 0; i < n_leaves; i++) {
        member_remove(g, rows[i].node);
        (void)ck_ksv_store_revoke_mark_applied(k->p.store, g->name, rows[i].node);
    }
    g->n_leaves = 0;
    for (size_t i = n_leaves; i < n_rows; i++)
        if ((rc = member_add(g, rows[i].node, rows[i].member_id, rows[i].leaf)) != 0)
            goto out;
    if (joiner != NULL && res.n_joined == 1)
        ksv_log(k, LOG_INFO, "ksv join group=%s node=%s member=%u epoch=%llu", g->name, joiner,
                res.joined[0], (unsigned long long)epoch);
    for (size_t i = 0; i < out.n; i++)
        bytes += out.lens[i];
    k->st.rekey_batches++;
    k->st.rekey_dgrams += out.n;
    /* The unicasts first: a member that applies its new path before the multicast arrives
     * takes the datagram for a replay instead of a rekey that left it out. */
    for (size_t i = n_leaves; i < n_rows; i++) {
        const struct ksv_member *mb;
        if (joiner != NULL && strcmp(rows[i].node, joiner) == 0)
            continue;
        if ((mb = member_find(g, rows[i].node)) != NULL &&
            (rc = unicast_group(k, g, mb, now_ms)) != 0)
            goto out;
    }
    if (res.multicast) {
        (void)send_dgrams(k, g, out.dgrams, out.lens, out.n, joiner == NULL);
        if (k->crashed)
            goto out;
    }
    ksv_log(k, LOG_NOTICE, "ksv rekey group=%s epoch=%llu mode=hybrid leaves=%zu joins=%zu "
            "wraps=%zu dgrams=%zu bytes=%zu cpu_us=%lld unicasts=%zu", g->name,
            (unsigned long long)epoch, n_leaves, res.n_joined, res.multicast ? res.lkh.n_wraps : 0,
            out.n, bytes, (long long)spent, n_rows - n_leaves - res.n_joined);
    if (!res.multicast)
        goto out;
    /* GROUP_ACK is asked of the members the multicast was for (the others got a sealed
     * REGISTER, acknowledged and retransmitted on its own). */
    free(g->ack_wait);
    g->ack_wait = NULL;
    g->n_ack_wait = 0;
    g->ack_deadline = 0;
    if (ack && g->n_members > 0) {
        if ((g->ack_wait = calloc(g->n_members, sizeof(*g->ack_wait))) == NULL) {
            rc = ck_error_set(CK_ERR_NOMEM, "acks");
            goto out;
        }
        for (size_t i = 0; i < g->n_members; i++)
            if (!id_listed(res.unicast, res.n_unicast, g->members[i].member_id))
                ck_strlcpy(g->ack_wait[g->n_ack_wait++], g->members[i].node,
                           sizeof(g->ack_wait[0]));
        g->ack_epoch = epoch;
        g->ack_deadline = g->n_ack_wait > 0 ? now_ms + KSV_GROUP_ACK_MS : 0;
    }
    goto out;
fail:
    if (joiner != NULL)
        ksv_log(k, LOG_ERR, "ksv group %s: join of %s not committed", g->name, joiner);
    batch_failed(k, g, epoch, now_ms);
    rc = 0;
out:
    OPENSSL_cleanse(key, sizeof(key));
    lkh_member_clear(&lm);
    nodes_free(nodes, n_nodes);
    lkh_hybrid_result_clear(&res);
    lkh_rekey_out_clear(&out);
    free(ids);
    free(rows);
    return rc;
}

/* LKH+ join (EK: a new epoch and the key to everyone else), committed before anything goes
 * out. */
static int
join(struct ksv_core *k, struct ksv_group *g, const char *node, int64_t now_ms)
{
    struct ck_ksv_group_commit c;
    struct ck_ksv_member_row row;
    struct lkh_node_state *nodes = NULL;
    size_t n_nodes = 0;
    uint32_t mid = 0, leaf = 0;
    uint64_t epoch = g->epoch + (g->keying == CK_KSVTOPO_EK ? 1 : 0);
    int rc;

    if (g->hy != NULL)
        return hybrid_batch(k, g, node, now_ms);
    if ((rc = lkh_join(g->tree, &mid)) != 0) {
        ksv_log(k, LOG_ERR, "ksv group %s: join of %s: %s", g->name, node, ck_error_context());
        return rc == CK_ERR_FULL ? 0 : rc;
    }
    if ((rc = lkh_member_leaf(g->tree, mid, &leaf)) != 0 ||
        (rc = dirty_nodes(g, &nodes, &n_nodes)) != 0)
        goto fail;
    memset(&row, 0, sizeof(row));
    ck_strlcpy(row.node, node, sizeof(row.node));
    row.member_id = mid;
    row.leaf = leaf;
    row.state = CK_KSV_MEMBER_ACTIVE;
    memset(&c, 0, sizeof(c));
    c.group_id = g->group_id;
    c.epoch = epoch;
    c.nodes = nodes;
    c.n_nodes = n_nodes;
    c.members = &row;
    c.n_members = 1;
    if ((rc = ck_ksv_store_group_commit(k->p.store, &c)) != 0)
        goto fail;
    nodes_free(nodes, n_nodes);
    nodes = NULL;
    if (ksv_crash(k, "join-after-commit"))
        return 0;
    gclear_dirty(g);
    g->epoch = epoch;
    if ((rc = member_add(g, node, mid, leaf)) != 0)
        return rc;
    ksv_log(k, LOG_INFO, "ksv join group=%s node=%s member=%u epoch=%llu", g->name, node, mid,
            (unsigned long long)epoch);
    if (g->keying == CK_KSVTOPO_EK) {
        ksv_log(k, LOG_NOTICE, "ksv rekey group=%s epoch=%llu mode=ek leaves=0 joins=1 wraps=0 "
                "dgrams=0 bytes=0 cpu_us=0", g->name, (unsigned long long)epoch);
        return ek_distribute(k, g, node, now_ms);
    }
    return 0;
fail:
    nodes_free(nodes, n_nodes);
    ksv_log(k, LOG_ERR, "ksv group %s: join of %s not committed: %s", g->name, node,
            ck_error_context());
    /* The tree in memory moved ahead of the store: take the store's again. */
    (void)group_restore(k, g);
    return 0;
}

static bool
topo_member(const struct ck_ksvtopo *t, const char *group, const char *node)
{
    struct ck_ksvtopo_view v;

    if (ck_ksvtopo_node_view(t, node, &v) != 0)
        return false;
    for (size_t i = 0; i < v.n_groups; i++)
        if (strcmp(v.groups[i].group->name, group) == 0)
            return true;
    return false;
}

int
ksv_groups_for_node(struct ksv_core *k, const char *node, struct ck_ksv_group *out, size_t max,
                    size_t *n, int64_t now_ms)
{
    struct ck_ksvtopo_view v;
    int rc;

    *n = 0;
    if (ck_ksvtopo_node_view(k->topo, node, &v) != 0)
        return 0;
    for (size_t i = 0; i < v.n_groups && *n < max; i++) {
        int gi = ksv_groups_find(k, v.groups[i].group->name);
        struct ksv_group *g;
        struct ksv_member *mb;
        bool revoked = false;

        if (gi < 0 || k->groups[gi].broken)
            continue;
        g = &k->groups[gi];
        if ((rc = ck_ksv_store_is_revoked(k->p.store, g->name, node, &revoked)) != 0)
            return rc;
        if (revoked || leave_queued(g, node))
            continue;
        if ((mb = member_find(g, node)) == NULL) {
            if ((rc = join(k, g, node, now_ms)) != 0 || k->crashed)
                return rc;
            if ((mb = member_find(g, node)) == NULL)
                continue;
        }
        if ((rc = group_wire(k, g, mb, &out[*n])) != 0) {
            ksv_log(k, LOG_ERR, "ksv group %s node=%s: %s", g->name, node, ck_error_context());
            continue;
        }
        (*n)++;
    }
    return 0;
}

int
ksv_groups_reconcile(struct ksv_core *k, int64_t now_ms)
{
    struct ck_ksv_revocation *rev = NULL;
    const struct ck_ksvtopo_node **tmembers = NULL;
    size_t n_rev = 0, n_tm = 0;
    int rc;

    if ((rc = ck_ksv_store_revocations(k->p.store, &rev, &n_rev)) != 0)
        return rc;
    for (size_t i = 0; i < k->n_groups; i++)
        k->groups[i].live = false;
    for (size_t i = 0; i < ck_ksvtopo_n_groups(k->topo); i++) {
        const struct ck_ksvtopo_group *tg = ck_ksvtopo_group_at(k->topo, i);
        int gi = ksv_groups_find(k, tg->name);
        struct ksv_group *g;
        if (gi < 0) {
            if ((rc = group_open(k, tg, &g)) != 0)
                goto out;
        } else {
            k->groups[gi].live = true;
        }
    }
    for (size_t i = 0; i < k->n_groups; i++) {
        struct ksv_group *g = &k->groups[i];
        const struct ck_ksvtopo_group *tg;
        if (!g->live || g->broken)
            continue;
        /* Members to remove: no longer configured, or revoked. */
        for (size_t j = 0; j < g->n_members; j++) {
            const struct ksv_member *mb = &g->members[j];
            bool gone = !topo_member(k->topo, g->name, mb->node);
            for (size_t r = 0; r < n_rev && !gone; r++)
                gone = strcmp(rev[r].group, g->name) == 0 && strcmp(rev[r].node, mb->node) == 0;
            if (gone && (rc = queue_leave(k, g, mb, now_ms)) != 0)
                goto out;
        }
        /* A revocation whose batch committed but was not yet marked applied (kill -9 between
         * the two): the member is already out of the tree, so the revocation is done. */
        for (size_t r = 0; r < n_rev; r++)
            if (!rev[r].applied && strcmp(rev[r].group, g->name) == 0 &&
                member_find(g, rev[r].node) == NULL && !leave_queued(g, rev[r].node))
                (void)ck_ksv_store_revoke_mark_applied(k->p.store, g->name, rev[r].node);
        /* Members to admit: configured, registered, not revoked, not yet in. */
        if ((tg = ck_ksvtopo_group_find(k->topo, g->name)) == NULL)
            continue;
        free(tmembers);
        if ((tmembers = calloc(tg->n_members + 1, sizeof(*tmembers))) == NULL) {
            rc = ck_error_set(CK_ERR_NOMEM, "members");
            goto out;
        }
        n_tm = ck_ksvtopo_group_members(k->topo, tg, tmembers, tg->n_members);
        for (size_t j = 0; j < n_tm; j++) {
            const struct ck_ksvtopo_node *tn = tmembers[j];
            struct ksv_node *n = ksv_node_find(k, tn->name);
            bool revoked = false;
            if (n == NULL || !n->registered || member_find(g, tn->name) != NULL ||
                leave_queued(g, tn->name))
                continue;
            for (size_t r = 0; r < n_rev && !revoked; r++)
                revoked = strcmp(rev[r].group, g->name) == 0 && strcmp(rev[r].node, tn->name) == 0;
            if (revoked)
                continue;
            if ((rc = join(k, g, tn->name, now_ms)) != 0 || k->crashed)
                goto out;
            if (member_find(g, tn->name) != NULL &&
                (rc = unicast_group(k, g, member_find(g, tn->name), now_ms)) != 0)
                goto out;
        }
    }
out:
    free(tmembers);
    free(rev);
    return rc;
}

/* ---- batches -------------------------------------------------------------------------------- */

static int
run_batch(struct ksv_core *k, struct ksv_group *g, int64_t now_ms)
{
    const struct ck_ksvtopo_group *tg = ck_ksvtopo_group_find(k->topo, g->name);
    struct lkh_batch_result res;
    struct lkh_rekey_out out;
    struct ck_ksv_group_commit c;
    struct ck_ksv_member_row *rows = NULL;
    struct lkh_node_state *nodes = NULL;
    uint32_t *ids = NULL;
    size_t n_nodes = 0, n_leaves = g->n_leaves, bytes = 0;
    uint64_t epoch = g->epoch + 1;
    uint8_t key[LKH_KEY_LEN];
    uint32_t version = 0;
    bool ack = tg != NULL && tg->policy->xf.ack_reqd;
    int64_t t0 = cpu_us(), spent;
    int rc;

    if (g->hy != NULL)
        return hybrid_batch(k, g, NULL, now_ms);
    memset(&res, 0, sizeof(res));
    memset(&out, 0, sizeof(out));
    if ((ids = calloc(n_leaves, sizeof(*ids))) == NULL ||
        (rows = calloc(n_leaves, sizeof(*rows))) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "batch");
        goto out;
    }
    for (size_t i = 0; i < n_leaves; i++) {
        ids[i] = g->leaves[i].member_id;
        ck_strlcpy(rows[i].node, g->leaves[i].node, sizeof(rows[i].node));
        rows[i].member_id = g->leaves[i].member_id;
        rows[i].leaf = g->leaves[i].leaf;
        rows[i].state = CK_KSV_MEMBER_LEFT;
    }
    if ((rc = lkh_batch(g->tree, ids, n_leaves, 0, &res)) != 0)
        goto fail;
    (void)group_key(g, key, &version);
    if (g->keying != CK_KSVTOPO_EK) {
        struct lkh_rekey_params p = {
            .group_id = g->group_id,
            .epoch = epoch,
            .root_version = version,
            .flags = ack ? LKH_REKEY_F_ACK_REQD : 0,
            .degree = g->degree,
            .height = lkh_tree_height(gtree(g)),
            .max_dgram = 0,
        };
        if ((rc = lkh_rekey_pack(&p, res.wraps, res.n_wraps, k->signer, &out)) != 0)
            goto fail;
    }
    spent = cpu_us() - t0;
    if ((rc = dirty_nodes(g, &nodes, &n_nodes)) != 0)
        goto fail;
    if (ksv_crash(k, "batch-before-commit"))
        goto out;
    memset(&c, 0, sizeof(c));
    c.group_id = g->group_id;
    c.epoch = epoch;
    c.nodes = nodes;
    c.n_nodes = n_nodes;
    c.members = rows;
    c.n_members = n_leaves;
    c.dgrams = out.dgrams;
    c.dgram_lens = out.lens;
    c.n_dgrams = out.n;
    if ((rc = ck_ksv_store_group_commit(k->p.store, &c)) != 0)
        goto fail;
    if (ksv_crash(k, "batch-after-commit"))
        goto out;
    gclear_dirty(g);
    g->epoch = epoch;
    for (size_t i = 0; i < n_leaves; i++) {
        member_remove(g, rows[i].node);
        (void)ck_ksv_store_revoke_mark_applied(k->p.store, g->name, rows[i].node);
    }
    g->n_leaves = 0;
    for (size_t i = 0; i < out.n; i++)
        bytes += out.lens[i];
    k->st.rekey_batches++;
    k->st.rekey_dgrams += out.n;
    if (g->keying == CK_KSVTOPO_EK) {
        if ((rc = ek_distribute(k, g, NULL, now_ms)) != 0)
            goto out;
    } else {
        (void)send_dgrams(k, g, out.dgrams, out.lens, out.n, true);
        if (k->crashed)
            goto out;
    }
    ksv_log(k, LOG_NOTICE, "ksv rekey group=%s epoch=%llu mode=%s leaves=%zu joins=0 wraps=%zu "
            "dgrams=%zu bytes=%zu cpu_us=%lld", g->name, (unsigned long long)epoch,
            mode_name(g->keying), n_leaves, res.n_wraps, out.n, bytes, (long long)spent);
    /* RFC 8263 style: members that do not acknowledge within 2 s get their path by unicast. */
    free(g->ack_wait);
    g->ack_wait = NULL;
    g->n_ack_wait = 0;
    g->ack_deadline = 0;
    if (ack && g->keying != CK_KSVTOPO_EK && g->n_members > 0) {
        if ((g->ack_wait = calloc(g->n_members, sizeof(*g->ack_wait))) == NULL) {
            rc = ck_error_set(CK_ERR_NOMEM, "acks");
            goto out;
        }
        for (size_t i = 0; i < g->n_members; i++)
            ck_strlcpy(g->ack_wait[i], g->members[i].node, sizeof(g->ack_wait[i]));
        g->n_ack_wait = g->n_members;
        g->ack_epoch = epoch;
        g->ack_deadline = now_ms + KSV_GROUP_ACK_MS;
    }
    goto out;
fail:
    batch_failed(k, g, epoch, now_ms);
    rc = 0;
out:
    OPENSSL_cleanse(key, sizeof(key));
    nodes_free(nodes, n_nodes);
    lkh_batch_result_clear(&res);
    lkh_rekey_out_clear(&out);
    free(ids);
    free(rows);
    return rc;
}

int
ksv_groups_timer(struct ksv_core *k, int64_t now_ms)
{
    int rc;

    for (size_t i = 0; i < k->n_groups; i++) {
        struct ksv_group *g = &k->groups[i];
        if (g->broken)
            continue;
        if (g->n_leaves > 0 && (g->n_leaves >= k->p.batch_size ||
                                now_ms >= g->first_queued_ms + k->p.batch_interval_ms)) {
            if ((rc = run_batch(k, g, now_ms)) != 0 || k->crashed)
                return rc;
        }
        if (g->ack_deadline != 0 && now_ms >= g->ack_deadline) {
            g->ack_deadline = 0;
            for (size_t j = 0; j < g->n_ack_wait; j++) {
                struct ksv_member *mb = member_find(g, g->ack_wait[j]);
                if (mb == NULL)
                    continue;
                k->st.recoveries++;
                ksv_log(k, LOG_INFO, "ksv group %s node=%s: no GROUP_ACK for epoch %llu: "
                        "unicast recovery", g->name, mb->node, (unsigned long long)g->ack_epoch);
                if ((rc = unicast_group(k, g, mb, now_ms)) != 0)
                    return rc;
            }
            free(g->ack_wait);
            g->ack_wait = NULL;
            g->n_ack_wait = 0;
        }
    }
    return 0;
}

int64_t
ksv_groups_next(struct ksv_core *k)
{
    int64_t best = -1;

    for (size_t i = 0; i < k->n_groups; i++) {
        const struct ksv_group *g = &k->groups[i];
        int64_t t;
        if (g->broken)
            continue;
        if (g->n_leaves > 0) {
            t = g->n_leaves >= k->p.batch_size ? 1 : g->first_queued_ms + k->p.batch_interval_ms;
            if (best < 0 || t < best)
                best = t;
        }
        if (g->ack_deadline != 0 && (best < 0 || g->ack_deadline < best))
            best = g->ack_deadline;
    }
    return best;
}

int
ksv_groups_on_ack(struct ksv_core *k, const char *node, uint32_t group_id, uint64_t epoch,
                  int64_t now_ms)
{
    struct ksv_group *g = group_by_id(k, group_id);

    (void)now_ms;
    if (g == NULL || epoch != g->ack_epoch)
        return 0;
    k->st.group_acks++;
    for (size_t i = 0; i < g->n_ack_wait; i++)
        if (strcmp(g->ack_wait[i], node) == 0) {
            memmove(&g->ack_wait[i], &g->ack_wait[i + 1],
                    (g->n_ack_wait - i - 1) * sizeof(g->ack_wait[0]));
            g->n_ack_wait--;
            break;
        }
    if (g->n_ack_wait == 0)
        g->ack_deadline = 0;
    return 0;
}

int
ksv_groups_on_recover(struct ksv_core *k, const char *node, uint32_t group_id, uint64_t epoch,
                      int64_t now_ms)
{
    struct ksv_group *g = group_by_id(k, group_id);
    struct ksv_member *mb;

    if (g == NULL || (mb = member_find(g, node)) == NULL || leave_queued(g, node))
        return 0;
    k->st.recoveries++;
    ksv_log(k, LOG_INFO, "ksv group %s node=%s: RECOVER from epoch %llu to %llu", g->name, node,
            (unsigned long long)epoch, (unsigned long long)g->epoch);
    return unicast_group(k, g, mb, now_ms);
}

int
ksv_groups_push(struct ksv_core *k, const char *group, const char *node, int64_t now_ms)
{
    const struct ck_ksvtopo_group *tg = ck_ksvtopo_group_find(k->topo, group);
    int gi = ksv_groups_find(k, group);
    struct ksv_group *g;
    struct ksv_member *mb;
    int keying;

    if (gi < 0 || tg == NULL || k->groups[gi].broken)
        return 0;
    g = &k->groups[gi];
    keying = (int)tg->keying;
    if (tg->degree != g->degree || keying != g->keying)
        ksv_log(k, LOG_WARNING, "ksv group %s: degree or keying changed in the topology: the "
                "group keeps degree %u and %s until it is re-created", g->name, g->degree,
                mode_name(g->keying));
    if ((mb = member_find(g, node)) == NULL || leave_queued(g, node))
        return 0;
    return unicast_group(k, g, mb, now_ms);
}

int
ksv_core_group_epoch(const struct ksv_core *k, const char *group, uint64_t *epoch)
{
    int gi = ksv_groups_find(k, group);

    if (gi < 0)
        return ck_error_set(CK_ERR_NOTFOUND, "group %s", group);
    *epoch = k->groups[gi].epoch;
    return 0;
}

int
ksv_core_member_id(const struct ksv_core *k, const char *group, const char *node,
                   uint32_t *member_id)
{
    int gi = ksv_groups_find(k, group);
    struct ksv_member *mb;

    if (gi < 0 || (mb = member_find(&((struct ksv_core *)k)->groups[gi], node)) == NULL)
        return ck_error_set(CK_ERR_NOTFOUND, "member %s of %s", node, group);
    *member_id = mb->member_id;
    return 0;
}
