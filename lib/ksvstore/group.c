/* Groups in the keying server's store: the group row (persistent ID, epoch, the group SA's
 * SPI), the LKH node rows (keys sealed under the master key, bound to group, node and version),
 * the member rows and the signed datagrams of the last CK_KSV_STORE_KEEP_EPOCHS epochs.
 *
 * ck_ksv_store_group_commit is the crash-safety point of a rekey: the epoch, the changed nodes,
 * the member changes and the datagrams of one batch are one transaction, and the epoch only
 * grows, so a datagram the KSV sent (it sends only after the commit) is always the stored
 * epoch's or an older one's, and a key of a batch that did not commit was never sent. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/error.h"
#include "cablekey/util.h"
#include "ksvstore/ksvstore_int.h"

#define KS_GROUP_SPI_TRIES 64
#define KS_MAX_DGRAM 65535u           /* one UDP datagram */
#define KS_MAX_DGRAMS (1u << 20)      /* datagrams in one batch */
#define KS_MAX_ROWS (1u << 28)        /* node or member rows loaded at once */

/* A node key's identity: group, node and version (a key moved to another node or replayed from
 * an older version of the same node does not open). */
static void
ks_node_aad(struct ks_aad *a, uint32_t group_id, uint32_t node, uint32_t version)
{
    ks_aad_init(a, "lkh_node");
    ks_aad_u64(a, group_id);
    ks_aad_u64(a, node);
    ks_aad_u64(a, version);
}

static void
ks_group_read(sqlite3_stmt *q, struct ck_ksv_group_row *g)
{
    memset(g, 0, sizeof(*g));
    g->group_id = (uint32_t)sqlite3_column_int64(q, 0);
    ks_col_text(q, 1, g->name, sizeof(g->name));
    g->epoch = (uint64_t)sqlite3_column_int64(q, 2);
    g->degree = (uint32_t)sqlite3_column_int64(q, 3);
    g->capacity = (uint32_t)sqlite3_column_int64(q, 4);
    g->keying = sqlite3_column_int(q, 5);
    g->spi = (uint32_t)sqlite3_column_int64(q, 6);
}

#define KS_GROUP_COLUMNS "id, name, epoch, degree, capacity, keying, spi"

static int
ks_group_by_name(struct ck_ksv_store *st, const char *name, struct ck_ksv_group_row *g,
                 bool *found)
{
    sqlite3_stmt *q = NULL;
    int rc, ret;

    *found = false;
    if ((ret = ks_prepare(st, "SELECT " KS_GROUP_COLUMNS " FROM grp WHERE name = ?", &q)) != 0)
        return ret;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        ks_group_read(q, g);
        *found = true;
    } else if (rc != SQLITE_DONE) {
        ret = ks_error(st, "group");
    }
    sqlite3_finalize(q);
    return ret;
}

static int
ks_group_spi_taken(struct ck_ksv_store *st, uint32_t spi, bool *taken)
{
    sqlite3_stmt *q = NULL;
    int rc, ret;

    if ((ret = ks_prepare(st, "SELECT 1 FROM grp WHERE spi = ?", &q)) != 0)
        return ret;
    sqlite3_bind_int64(q, 1, spi);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        *taken = rc == SQLITE_ROW;
    else
        ret = ks_error(st, "group spi");
    sqlite3_finalize(q);
    return ret;
}

int
ck_ksv_store_group_get(struct ck_ksv_store *st, const char *name, uint32_t degree,
                       uint32_t capacity, int keying, struct ck_ksv_group_row *out)
{
    struct ck_ksv_group_row g;
    sqlite3_stmt *q = NULL;
    bool found = false, taken = true;
    uint32_t spi = 0;
    int ret;

    if (st == NULL || out == NULL)
        return ck_error_set(CK_ERR_INVAL, "group: no store");
    if ((ret = ks_check_name("group name", name)) != 0)
        return ret;
    ks_lock(st);
    if ((ret = ks_begin(st)) != 0)
        goto unlock;
    if ((ret = ks_group_by_name(st, name, &g, &found)) != 0 || found)
        goto out;
    if (degree < 2 || degree > LKH_MAX_DEGREE || capacity < 1 || capacity > LKH_MAX_MEMBERS ||
        keying < 0 || keying > 2) {
        ret = ck_error_set(CK_ERR_INVAL, "group %s: degree %u, capacity %u, keying %d", name,
                           degree, capacity, keying);
        goto out;
    }
    for (int i = 0; i < KS_GROUP_SPI_TRIES && taken; i++)
        if ((ret = ks_random_spi(CK_KSV_STORE_GROUP_SPI_MIN, UINT32_MAX, &spi)) != 0 ||
            (ret = ks_group_spi_taken(st, spi, &taken)) != 0)
            goto out;
    if (taken) {
        ret = ck_error_set(CK_ERR_FULL, "group %s: no free group SPI", name);
        goto out;
    }
    if ((ret = ks_prepare(st, "INSERT INTO grp(name, epoch, degree, capacity, keying, spi)"
                              " VALUES (?, 0, ?, ?, ?, ?)", &q)) != 0)
        goto out;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, degree);
    sqlite3_bind_int64(q, 3, capacity);
    sqlite3_bind_int(q, 4, keying);
    sqlite3_bind_int64(q, 5, spi);
    if (sqlite3_step(q) != SQLITE_DONE) {
        ret = ks_error(st, "group create");
        goto out;
    }
    memset(&g, 0, sizeof(g));
    g.group_id = (uint32_t)sqlite3_last_insert_rowid(st->db);
    ck_strlcpy(g.name, name, sizeof(g.name));
    g.degree = degree;
    g.capacity = capacity;
    g.keying = keying;
    g.spi = spi;
out:
    sqlite3_finalize(q);
    if ((ret = ks_end(st, ret)) == 0)
        *out = g;
unlock:
    ks_unlock(st);
    return ret;
}

int
ck_ksv_store_group_list(struct ck_ksv_store *st, struct ck_ksv_group_row **rows, size_t *n)
{
    struct ck_ksv_group_row *v = NULL, *nv;
    size_t count = 0, cap = 0;
    sqlite3_stmt *q = NULL;
    int rc, ret;

    if (st == NULL || rows == NULL || n == NULL)
        return ck_error_set(CK_ERR_INVAL, "group list: no store");
    *rows = NULL;
    *n = 0;
    ks_lock(st);
    if ((ret = ks_prepare(st, "SELECT " KS_GROUP_COLUMNS " FROM grp ORDER BY id", &q)) != 0)
        goto out;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            if ((nv = realloc(v, cap * sizeof(*v))) == NULL) {
                ret = ck_error_set(CK_ERR_NOMEM, "group list: out of memory");
                goto out;
            }
            v = nv;
        }
        ks_group_read(q, &v[count++]);
    }
    if (rc != SQLITE_DONE) {
        ret = ks_error(st, "group list");
        goto out;
    }
    *rows = v;
    *n = count;
    v = NULL;
out:
    sqlite3_finalize(q);
    ks_unlock(st);
    free(v);
    return ret;
}

/* Grows a row array by doubling; the old block is wiped before it is freed (node rows hold
 * keys, so no realloc that could leave a copy behind). */
static int
ks_grow(void **v, size_t *cap, size_t count, size_t elem, bool secret)
{
    size_t ncap = *cap ? *cap * 2 : 1024;
    void *nv;

    if (ncap > KS_MAX_ROWS)
        return ck_error_set(CK_ERR_LIMIT, "group: more than %u rows", KS_MAX_ROWS);
    if ((nv = malloc(ncap * elem)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "group: out of memory for %zu rows", ncap);
    if (count != 0)
        memcpy(nv, *v, count * elem);
    if (secret)
        ck_free_secret(*v, *cap * elem);
    else
        free(*v);
    *v = nv;
    *cap = ncap;
    return 0;
}

static int
ks_load_nodes(struct ck_ksv_store *st, uint32_t group_id, struct lkh_node_state **out,
              size_t *cap, size_t *n)
{
    struct ks_aad aad;
    sqlite3_stmt *q = NULL;
    size_t count = 0;
    int rc, ret;

    if ((ret = ks_prepare(st, "SELECT node, version, sealed FROM lkh_node WHERE group_id = ?"
                              " ORDER BY node", &q)) != 0)
        return ret;
    sqlite3_bind_int64(q, 1, group_id);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        struct lkh_node_state *s;

        if (count == *cap && (ret = ks_grow((void **)out, cap, count, sizeof(**out), true)) != 0)
            goto out;
        s = &(*out)[count];
        memset(s, 0, sizeof(*s));
        s->node = (uint32_t)sqlite3_column_int64(q, 0);
        s->version = (uint32_t)sqlite3_column_int64(q, 1);
        if (sqlite3_column_type(q, 2) != SQLITE_NULL) {
            const void *sealed = sqlite3_column_blob(q, 2);
            size_t len = (size_t)sqlite3_column_bytes(q, 2);

            if (len != LKH_KEY_LEN + KS_SEAL_OVERHEAD || sealed == NULL) {
                ret = ck_error_set(CK_ERR_INTEGRITY, "group %u node %u: malformed key",
                                   group_id, s->node);
                goto out;
            }
            ks_node_aad(&aad, group_id, s->node, s->version);
            if ((ret = ks_open(st, &aad, sealed, len, s->key)) != 0) {
                ret = ck_error_set(ret, "group %u node %u version %u: key does not decrypt "
                                        "(wrong master key, or moved from another row)",
                                   group_id, s->node, s->version);
                goto out;
            }
            s->present = 1;
        }
        count++;
    }
    if (rc != SQLITE_DONE)
        ret = ks_error(st, "group load");
out:
    sqlite3_finalize(q);
    *n = count;
    return ret;
}

static int
ks_group_exists(struct ck_ksv_store *st, uint32_t group_id, uint64_t *epoch)
{
    sqlite3_stmt *q = NULL;
    int rc, ret;

    if ((ret = ks_prepare(st, "SELECT epoch FROM grp WHERE id = ?", &q)) != 0)
        return ret;
    sqlite3_bind_int64(q, 1, group_id);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        *epoch = (uint64_t)sqlite3_column_int64(q, 0);
    else if (rc == SQLITE_DONE)
        ret = ck_error_set(CK_ERR_NOTFOUND, "group %u not found", group_id);
    else
        ret = ks_error(st, "group");
    sqlite3_finalize(q);
    return ret;
}

/* Hands every member row of the group to fn (ordered by node name); fn's non-zero return
 * stops the walk and is returned. */
static int
ks_walk_members(struct ck_ksv_store *st, uint32_t group_id,
                int (*fn)(void *arg, const struct ck_ksv_member_row *m), void *arg)
{
    struct ck_ksv_member_row m;
    sqlite3_stmt *q = NULL;
    int rc, ret;

    if ((ret = ks_prepare(st, "SELECT node, member_id, leaf, state FROM member"
                              " WHERE group_id = ? ORDER BY node", &q)) != 0)
        return ret;
    sqlite3_bind_int64(q, 1, group_id);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        memset(&m, 0, sizeof(m));
        ks_col_text(q, 0, m.node, sizeof(m.node));
        m.member_id = (uint32_t)sqlite3_column_int64(q, 1);
        m.leaf = (uint32_t)sqlite3_column_int64(q, 2);
        m.state = sqlite3_column_int(q, 3);
        if ((ret = fn(arg, &m)) != 0)
            goto out;
    }
    if (rc != SQLITE_DONE)
        ret = ks_error(st, "group load");
out:
    sqlite3_finalize(q);
    return ret;
}

struct ks_member_vec {
    struct ck_ksv_member_row *v;
    size_t n, cap;
};

static int
ks_member_append(void *arg, const struct ck_ksv_member_row *m)
{
    struct ks_member_vec *mv = arg;
    int ret;

    if (mv->n == mv->cap &&
        (ret = ks_grow((void **)&mv->v, &mv->cap, mv->n, sizeof(*mv->v), false)) != 0)
        return ret;
    mv->v[mv->n++] = *m;
    return 0;
}

int
ck_ksv_store_group_walk(struct ck_ksv_store *st, uint32_t group_id,
                        struct lkh_node_state **nodes, size_t *n_nodes,
                        int (*member)(void *arg, const struct ck_ksv_member_row *m), void *arg)
{
    struct lkh_node_state *nv = NULL;
    size_t ncap = 0, got_n = 0;
    uint64_t epoch;
    int ret;

    if (st == NULL || (nodes == NULL) != (n_nodes == NULL) || (nodes == NULL && member == NULL))
        return ck_error_set(CK_ERR_INVAL, "group load: no store or nothing to load");
    if (nodes != NULL) {
        *nodes = NULL;
        *n_nodes = 0;
    }
    ks_lock(st);
    /* One read transaction: nodes and members of the same commit. */
    if ((ret = ks_exec(st, "BEGIN")) != 0)
        goto unlock;
    if ((ret = ks_group_exists(st, group_id, &epoch)) != 0)
        goto out;
    if (nodes != NULL && (ret = ks_load_nodes(st, group_id, &nv, &ncap, &got_n)) != 0)
        goto out;
    if (member != NULL && (ret = ks_walk_members(st, group_id, member, arg)) != 0)
        goto out;
    if (nodes != NULL) {
        *nodes = nv;
        *n_nodes = got_n;
        nv = NULL;
    }
out:
    ks_end(st, 0);
unlock:
    ks_unlock(st);
    ck_free_secret(nv, ncap * sizeof(*nv));
    return ret;
}

int
ck_ksv_store_group_load(struct ck_ksv_store *st, uint32_t group_id,
                        struct lkh_node_state **nodes, size_t *n_nodes,
                        struct ck_ksv_member_row **members, size_t *n_members)
{
    struct ks_member_vec mv = {0};
    int ret;

    if (st == NULL || nodes == NULL || n_nodes == NULL || members == NULL || n_members == NULL)
        return ck_error_set(CK_ERR_INVAL, "group load: no store");
    *members = NULL;
    *n_members = 0;
    ret = ck_ksv_store_group_walk(st, group_id, nodes, n_nodes, ks_member_append, &mv);
    if (ret != 0) {
        free(mv.v);
        return ret;
    }
    *members = mv.v;
    *n_members = mv.n;
    return 0;
}

void
ck_ksv_store_nodes_free(struct lkh_node_state *nodes, size_t n)
{
    ck_free_secret(nodes, n * sizeof(*nodes));
}

static int
ks_commit_check(const struct ck_ksv_group_commit *c)
{
    if (c->epoch > (uint64_t)INT64_MAX)
        return ck_error_set(CK_ERR_INVAL, "group commit: epoch out of range");
    if ((c->n_nodes != 0 && c->nodes == NULL) || (c->n_members != 0 && c->members == NULL) ||
        (c->n_dgrams != 0 && (c->dgrams == NULL || c->dgram_lens == NULL)))
        return ck_error_set(CK_ERR_INVAL, "group commit: missing rows");
    if (c->n_dgrams > KS_MAX_DGRAMS)
        return ck_error_set(CK_ERR_LIMIT, "group commit: %zu datagrams (at most %u)",
                            c->n_dgrams, KS_MAX_DGRAMS);
    for (size_t i = 0; i < c->n_nodes; i++)
        if (c->nodes[i].present > 1)
            return ck_error_set(CK_ERR_INVAL, "group commit: node %u: bad present flag",
                                c->nodes[i].node);
    for (size_t i = 0; i < c->n_members; i++) {
        int ret = ks_check_name("group commit member", c->members[i].node);
        if (ret != 0)
            return ret;
        if (c->members[i].state != CK_KSV_MEMBER_ACTIVE &&
            c->members[i].state != CK_KSV_MEMBER_LEFT)
            return ck_error_set(CK_ERR_INVAL, "group commit: member %s: state %d",
                                c->members[i].node, c->members[i].state);
    }
    for (size_t i = 0; i < c->n_dgrams; i++)
        if (c->dgrams[i] == NULL || c->dgram_lens[i] == 0 || c->dgram_lens[i] > KS_MAX_DGRAM)
            return ck_error_set(CK_ERR_INVAL, "group commit: datagram %zu of %zu bytes", i,
                                c->dgrams[i] == NULL ? 0 : c->dgram_lens[i]);
    return 0;
}

static int
ks_commit_nodes(struct ck_ksv_store *st, const struct ck_ksv_group_commit *c)
{
    uint8_t sealed[LKH_KEY_LEN + KS_SEAL_OVERHEAD];
    struct ks_aad aad;
    sqlite3_stmt *q = NULL;
    int ret;

    if (c->n_nodes == 0)
        return 0;
    if ((ret = ks_prepare(st, "INSERT INTO lkh_node(group_id, node, version, sealed, epoch)"
                              " VALUES (?, ?, ?, ?, ?) ON CONFLICT (group_id, node) DO UPDATE"
                              " SET version = excluded.version, sealed = excluded.sealed,"
                              " epoch = excluded.epoch", &q)) != 0)
        return ret;
    for (size_t i = 0; i < c->n_nodes && ret == 0; i++) {
        const struct lkh_node_state *s = &c->nodes[i];

        sqlite3_reset(q);
        sqlite3_bind_int64(q, 1, c->group_id);
        sqlite3_bind_int64(q, 2, s->node);
        sqlite3_bind_int64(q, 3, s->version);
        if (s->present) {
            ks_node_aad(&aad, c->group_id, s->node, s->version);
            if ((ret = ks_seal(st, &aad, s->key, LKH_KEY_LEN, sealed)) != 0)
                break;
            sqlite3_bind_blob(q, 4, sealed, (int)sizeof(sealed), SQLITE_STATIC);
        } else {
            sqlite3_bind_null(q, 4);
        }
        sqlite3_bind_int64(q, 5, (int64_t)c->epoch);
        if (sqlite3_step(q) != SQLITE_DONE)
            ret = ks_error(st, "group commit nodes");
    }
    sqlite3_finalize(q);
    return ret;
}

static int
ks_commit_members(struct ck_ksv_store *st, const struct ck_ksv_group_commit *c)
{
    sqlite3_stmt *q = NULL;
    int ret;

    if (c->n_members == 0)
        return 0;
    if ((ret = ks_prepare(st, "INSERT INTO member(group_id, node, member_id, leaf, state, epoch)"
                              " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (group_id, node) DO UPDATE"
                              " SET member_id = excluded.member_id, leaf = excluded.leaf,"
                              " state = excluded.state, epoch = excluded.epoch", &q)) != 0)
        return ret;
    for (size_t i = 0; i < c->n_members && ret == 0; i++) {
        const struct ck_ksv_member_row *m = &c->members[i];

        sqlite3_reset(q);
        sqlite3_bind_int64(q, 1, c->group_id);
        sqlite3_bind_text(q, 2, m->node, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 3, m->member_id);
        sqlite3_bind_int64(q, 4, m->leaf);
        sqlite3_bind_int(q, 5, m->state);
        sqlite3_bind_int64(q, 6, (int64_t)c->epoch);
        if (sqlite3_step(q) != SQLITE_DONE)
            ret = ks_error(st, "group commit members");
    }
    sqlite3_finalize(q);
    return ret;
}

static int
ks_commit_dgrams(struct ck_ksv_store *st, const struct ck_ksv_group_commit *c)
{
    sqlite3_stmt *q = NULL;
    int ret;

    if (c->epoch >= CK_KSV_STORE_KEEP_EPOCHS) {
        /* Only the last CK_KSV_STORE_KEEP_EPOCHS epochs are kept (recovery goes further back
         * by unicast with the current path). */
        if ((ret = ks_prepare(st, "DELETE FROM dgram WHERE group_id = ? AND epoch <= ?",
                              &q)) != 0)
            return ret;
        sqlite3_bind_int64(q, 1, c->group_id);
        sqlite3_bind_int64(q, 2, (int64_t)(c->epoch - CK_KSV_STORE_KEEP_EPOCHS));
        if (sqlite3_step(q) != SQLITE_DONE)
            ret = ks_error(st, "group commit datagrams");
        sqlite3_finalize(q);
        q = NULL;
        if (ret != 0)
            return ret;
    }
    if (c->n_dgrams == 0)
        return 0;
    if ((ret = ks_prepare(st, "INSERT INTO dgram(group_id, epoch, seq, data) VALUES (?, ?, ?, ?)",
                          &q)) != 0)
        return ret;
    for (size_t i = 0; i < c->n_dgrams && ret == 0; i++) {
        sqlite3_reset(q);
        sqlite3_bind_int64(q, 1, c->group_id);
        sqlite3_bind_int64(q, 2, (int64_t)c->epoch);
        sqlite3_bind_int64(q, 3, (int64_t)i);
        sqlite3_bind_blob(q, 4, c->dgrams[i], (int)c->dgram_lens[i], SQLITE_STATIC);
        if (sqlite3_step(q) != SQLITE_DONE)
            ret = ks_error(st, "group commit datagrams");
    }
    sqlite3_finalize(q);
    return ret;
}

static int
ks_commit_epoch(struct ck_ksv_store *st, const struct ck_ksv_group_commit *c)
{
    sqlite3_stmt *q = NULL;
    int ret;

    if ((ret = ks_prepare(st, "UPDATE grp SET epoch = ? WHERE id = ?", &q)) != 0)
        return ret;
    sqlite3_bind_int64(q, 1, (int64_t)c->epoch);
    sqlite3_bind_int64(q, 2, c->group_id);
    if (sqlite3_step(q) != SQLITE_DONE)
        ret = ks_error(st, "group commit epoch");
    sqlite3_finalize(q);
    return ret;
}

int
ck_ksv_store_group_commit(struct ck_ksv_store *st, const struct ck_ksv_group_commit *c)
{
    uint64_t stored = 0;
    int ret;

    if (st == NULL || c == NULL)
        return ck_error_set(CK_ERR_INVAL, "group commit: no store");
    if ((ret = ks_commit_check(c)) != 0)
        return ret;
    ks_lock(st);
    if ((ret = ks_begin(st)) != 0)
        goto unlock;
    if ((ret = ks_group_exists(st, c->group_id, &stored)) != 0)
        goto out;
    /* The epoch only grows; a join keeps it but sends nothing, so no datagram may ever be
     * stored twice for one epoch. */
    if (c->epoch < stored) {
        ret = ck_error_set(CK_ERR_INVAL, "group %u: epoch %" PRIu64 " is older than the stored "
                                         "epoch %" PRIu64, c->group_id, c->epoch, stored);
        goto out;
    }
    if (c->epoch == stored && c->n_dgrams != 0) {
        ret = ck_error_set(CK_ERR_INVAL, "group %u: datagrams for the stored epoch %" PRIu64
                                         " (a batch needs a new epoch)", c->group_id, stored);
        goto out;
    }
    if ((ret = ks_commit_nodes(st, c)) != 0)
        goto out;
    if (st->split_commit && ((ret = ks_exec(st, "COMMIT")) != 0 || (ret = ks_begin(st)) != 0))
        goto out;
    if ((ret = ks_commit_members(st, c)) != 0 || (ret = ks_commit_dgrams(st, c)) != 0 ||
        (ret = ks_commit_epoch(st, c)) != 0)
        goto out;
out:
    ret = ks_end(st, ret);
unlock:
    ks_unlock(st);
    return ret;
}

int
ck_ksv_store_epoch_dgrams(struct ck_ksv_store *st, uint32_t group_id, uint64_t epoch,
                          uint8_t ***dgrams, size_t **lens, size_t *n)
{
    uint8_t **dv = NULL;
    size_t *lv = NULL, count = 0, cap = 0;
    sqlite3_stmt *q = NULL;
    uint64_t stored;
    int rc, ret;

    if (st == NULL || dgrams == NULL || lens == NULL || n == NULL)
        return ck_error_set(CK_ERR_INVAL, "epoch datagrams: no store");
    *dgrams = NULL;
    *lens = NULL;
    *n = 0;
    if (epoch > (uint64_t)INT64_MAX)
        return ck_error_set(CK_ERR_INVAL, "epoch datagrams: epoch out of range");
    ks_lock(st);
    if ((ret = ks_exec(st, "BEGIN")) != 0)
        goto unlock;
    if ((ret = ks_group_exists(st, group_id, &stored)) != 0)
        goto out;
    if ((ret = ks_prepare(st, "SELECT data FROM dgram WHERE group_id = ? AND epoch = ?"
                              " ORDER BY seq", &q)) != 0)
        goto out;
    sqlite3_bind_int64(q, 1, group_id);
    sqlite3_bind_int64(q, 2, (int64_t)epoch);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        const void *p = sqlite3_column_blob(q, 0);
        size_t len = (size_t)sqlite3_column_bytes(q, 0);

        if (count == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            uint8_t **nd = realloc(dv, ncap * sizeof(*dv));
            size_t *nl;
            if (nd == NULL) {
                ret = ck_error_set(CK_ERR_NOMEM, "epoch datagrams: out of memory");
                goto out;
            }
            dv = nd;
            if ((nl = realloc(lv, ncap * sizeof(*lv))) == NULL) {
                ret = ck_error_set(CK_ERR_NOMEM, "epoch datagrams: out of memory");
                goto out;
            }
            lv = nl;
            cap = ncap;
        }
        if ((dv[count] = ck_memdup(p, len ? len : 1)) == NULL) {
            ret = ck_error_set(CK_ERR_NOMEM, "epoch datagrams: out of memory");
            goto out;
        }
        lv[count++] = len;
    }
    if (rc != SQLITE_DONE) {
        ret = ks_error(st, "epoch datagrams");
        goto out;
    }
    *dgrams = dv;
    *lens = lv;
    *n = count;
    dv = NULL;
    lv = NULL;
    count = 0;
out:
    sqlite3_finalize(q);
    ks_end(st, 0);
unlock:
    ks_unlock(st);
    for (size_t i = 0; i < count; i++)
        free(dv[i]);
    free(dv);
    free(lv);
    return ret;
}
