/* LKH core: joins (LKH+), batch rekeying (marking algorithm), what members derive themselves. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "ck_test.h"
#include "cablekey/lkh.h"

/* Deterministic test PRNG (xorshift64*): which members leave, reproducibly. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t
rng(uint32_t bound)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 33) % bound;
}

/* Distinct random member IDs among the first n. */
static void
pick_distinct(uint32_t *out, size_t k, uint32_t n, const uint32_t *pool)
{
    uint8_t *seen = calloc(n, 1);

    if (seen == NULL)
        abort();
    for (size_t i = 0; i < k;) {
        uint32_t x = rng(n);
        if (seen[x])
            continue;
        seen[x] = 1;
        out[i++] = pool != NULL ? pool[x] : x;
    }
    free(seen);
}

static int
member_key_matches(const struct lkh_tree *t, struct lkh_member *m)
{
    uint8_t gk[LKH_KEY_LEN], mk[LKH_KEY_LEN];
    uint32_t v;

    if (lkh_group_key(t, gk, &v) != 0 || lkh_member_group_key(m, v, mk) != 0)
        return 0;
    return memcmp(gk, mk, LKH_KEY_LEN) == 0;
}

/* A removed member must fail in lkh_member_apply, and none of the batch's wraps may open under
 * any key it holds (hashed forward to the version the wrap names): checked by trying them all. */
static int
locked_out(const struct lkh_tree *t, struct lkh_member *m, const struct lkh_batch_result *r)
{
    struct lkh_member copy = *m;
    uint8_t gk[LKH_KEY_LEN], mk[LKH_KEY_LEN];
    uint32_t v;
    EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, "id-aes128-wrap", NULL);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int ok = 1;

    if (c == NULL || ctx == NULL)
        abort();
    if (lkh_member_apply(&copy, r->wraps, r->n_wraps) == 0)
        ok = 0;
    if (memcmp(&copy, m, sizeof(copy)) != 0)
        ok = 0; /* a failed apply leaves the member unchanged */
    /* no key it holds is the new group key, nor hashes forward to it */
    if (lkh_group_key(t, gk, &v) != 0)
        abort();
    for (uint32_t l = 0; l <= m->height; l++)
        if (memcmp(m->path[l].key, gk, LKH_KEY_LEN) == 0)
            ok = 0;
    if (lkh_member_group_key(&copy, v, mk) == 0 && memcmp(mk, gk, LKH_KEY_LEN) == 0)
        ok = 0;
    copy = *m;
    for (size_t i = 0; i < r->n_wraps && ok; i++) {
        for (uint32_t l = 0; l <= m->height; l++) {
            struct lkh_member one = *m;
            uint8_t out[LKH_WRAP_LEN];
            int n = 0, f = 0;
            if (one.path[l].version < r->wraps[i].child_version && l != m->height &&
                r->wraps[i].child == one.path[l].node) {
                uint8_t dummy[LKH_KEY_LEN];
                /* advance through the public group-key helper on a faked root slot */
                one.path[one.height] = one.path[l];
                if (lkh_member_group_key(&one, r->wraps[i].child_version, dummy) != 0)
                    continue;
                one.path[l] = one.path[one.height];
            }
            if (EVP_CipherInit_ex2(ctx, c, one.path[l].key, NULL, 0, NULL) &&
                EVP_CipherUpdate(ctx, out, &n, r->wraps[i].wrapped, LKH_WRAP_LEN) &&
                EVP_CipherFinal_ex(ctx, out + n, &f))
                ok = 0;
        }
    }
    EVP_CIPHER_CTX_free(ctx);
    EVP_CIPHER_free(c);
    return ok;
}

/* Grows a tree by LKH+ joins, exporting each member at its join (so earlier members hold old
 * versions and must hash forward), then runs batches of leaves and joins, and checks every member
 * itself: the remaining ones recover the group key, the removed ones cannot. */
static void
run_degree(uint32_t d)
{
    enum { MAX = 300, N = 200 };
    struct lkh_tree *t = NULL;
    struct lkh_member *mem = calloc(MAX, sizeof(*mem));
    uint8_t *alive = calloc(MAX, 1);
    uint32_t id;

    if (mem == NULL || alive == NULL)
        abort();
    CHECK_OK(lkh_tree_new(d, MAX, &t));
    if (t == NULL)
        goto out;
    CHECK_INT_EQ(lkh_tree_degree(t), d);
    for (uint32_t i = 0; i < N; i++) {
        CHECK_OK(lkh_join(t, &id));
        CHECK(id < MAX && !alive[id]);
        CHECK_OK(lkh_member_export(t, id, &mem[id]));
        alive[id] = 1;
    }
    CHECK_INT_EQ(lkh_tree_members(t), N);
    for (uint32_t i = 0; i < MAX; i++)
        if (alive[i])
            CHECK(member_key_matches(t, &mem[i]));

    for (int round = 0; round < 3; round++) {
        struct lkh_batch_result r;
        uint32_t leave[40], pool[MAX], n_pool = 0;
        size_t n_leave = round == 2 ? 1 : 30, n_join = round == 0 ? 5 : round == 1 ? 40 : 0;
        uint8_t gk_old[LKH_KEY_LEN], gk[LKH_KEY_LEN];
        uint32_t v_old, v;

        for (uint32_t i = 0; i < MAX; i++)
            if (alive[i])
                pool[n_pool++] = i;
        pick_distinct(leave, n_leave, n_pool, pool);
        CHECK_OK(lkh_group_key(t, gk_old, &v_old));
        CHECK_OK(lkh_batch(t, leave, n_leave, n_join, &r));
        CHECK_OK(lkh_group_key(t, gk, &v));
        CHECK(v > v_old && memcmp(gk, gk_old, LKH_KEY_LEN) != 0);
        CHECK(r.n_wraps > 0);
        for (size_t i = 0; i < n_leave; i++) {
            CHECK(locked_out(t, &mem[leave[i]], &r));
            alive[leave[i]] = 0;
            lkh_member_clear(&mem[leave[i]]);
        }
        for (uint32_t i = 0; i < MAX; i++) {
            if (!alive[i])
                continue;
            CHECK_OK(lkh_member_apply(&mem[i], r.wraps, r.n_wraps));
            CHECK(member_key_matches(t, &mem[i]));
        }
        CHECK_INT_EQ(r.n_joined, n_join);
        for (size_t i = 0; i < r.n_joined; i++) {
            id = r.joined[i];
            CHECK(id < MAX && !alive[id]);
            CHECK_OK(lkh_member_export(t, id, &mem[id]));
            CHECK(member_key_matches(t, &mem[id]));
            alive[id] = 1;
        }
        lkh_batch_result_clear(&r);
        /* an LKH+ join after the batch: nobody needs a byte, all hash forward */
        CHECK_OK(lkh_join(t, &id));
        CHECK(!alive[id]);
        CHECK_OK(lkh_member_export(t, id, &mem[id]));
        alive[id] = 1;
        for (uint32_t i = 0; i < MAX; i++)
            if (alive[i])
                CHECK(member_key_matches(t, &mem[i]));
    }
out:
    for (uint32_t i = 0; i < MAX; i++)
        lkh_member_clear(&mem[i]);
    free(mem);
    free(alive);
    lkh_tree_free(t);
}

static void
test_degree_2(void)
{
    run_degree(2);
}

static void
test_degree_3(void)
{
    run_degree(3);
}

static void
test_degree_4(void)
{
    run_degree(4);
}

static void
test_degree_8(void)
{
    run_degree(8);
}

/* A join changes the group key without any wrap; the old members get it by the documented
 * one-way function: HMAC-SHA-256(K, "cablekey lkh+ join" || be32(node) || be32(version)). */
static void
test_join_hash_forward(void)
{
    struct lkh_tree *t = NULL;
    struct lkh_member a;
    uint8_t gk0[LKH_KEY_LEN], gk1[LKH_KEY_LEN], mk[LKH_KEY_LEN], mac[32];
    uint8_t msg[18 + 8] = "cablekey lkh+ join";
    uint32_t id, v0, v1;
    size_t maclen = 0;

    CHECK_OK(lkh_tree_new(0, 16, &t));
    if (t == NULL)
        return;
    CHECK_INT_EQ(lkh_tree_degree(t), 4);
    CHECK_INT_EQ(lkh_tree_height(t), 2);
    CHECK_OK(lkh_join(t, &id));
    CHECK_OK(lkh_member_export(t, id, &a));
    CHECK_OK(lkh_group_key(t, gk0, &v0));
    CHECK_OK(lkh_join(t, &id));
    CHECK_OK(lkh_group_key(t, gk1, &v1));
    CHECK_INT_EQ(v1, v0 + 1);
    msg[18 + 3] = 0; /* node 0 */
    msg[18 + 4] = (uint8_t)(v1 >> 24);
    msg[18 + 5] = (uint8_t)(v1 >> 16);
    msg[18 + 6] = (uint8_t)(v1 >> 8);
    msg[18 + 7] = (uint8_t)v1;
    CHECK(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, gk0, LKH_KEY_LEN, msg, sizeof(msg), mac,
                    sizeof(mac), &maclen) != NULL);
    CHECK_MEM_EQ(mac, LKH_KEY_LEN, gk1, LKH_KEY_LEN);
    CHECK_OK(lkh_member_group_key(&a, v1, mk));
    CHECK_MEM_EQ(mk, LKH_KEY_LEN, gk1, LKH_KEY_LEN);
    /* going back is refused */
    CHECK_INT_EQ(lkh_member_group_key(&a, v0, mk), CK_ERR_PROTO);
    /* a hostile version far ahead is bounded */
    CHECK_INT_EQ(lkh_member_group_key(&a, v1 + LKH_MAX_ADVANCE + 1, mk), CK_ERR_LIMIT);
    lkh_member_clear(&a);
    lkh_tree_free(t);
}

/* The member's unwrap against RFC 3394 section 4.1 (128-bit KEK, 128-bit key data). */
static void
test_rfc3394_vector(void)
{
    struct lkh_member m;
    struct lkh_wrap w;
    size_t n;
    unsigned char *kek = ck_test_hex("000102030405060708090A0B0C0D0E0F", &n);
    unsigned char *data = ck_test_hex("00112233445566778899AABBCCDDEEFF", &n);
    unsigned char *ct = ck_test_hex("1FA68B0A8112B447 AEF34BD8FB5A7B82 9D3E862371D2CFE5", &n);

    memset(&m, 0, sizeof(m));
    m.degree = 4;
    m.height = 1;
    m.path[0].node = 1;
    m.path[0].version = 1;
    memcpy(m.path[0].key, kek, 16);
    m.path[1].node = 0;
    m.path[1].version = 1;
    memset(&w, 0, sizeof(w));
    w.node = 0;
    w.child = 1;
    w.child_version = 1;
    w.new_version = 2;
    CHECK_INT_EQ(n, LKH_WRAP_LEN);
    memcpy(w.wrapped, ct, LKH_WRAP_LEN);
    CHECK_OK(lkh_member_apply(&m, &w, 1));
    CHECK_MEM_EQ(m.path[1].key, 16, data, 16);
    CHECK_INT_EQ(m.path[1].version, 2);
    /* replaying the same wrap is refused (version not newer) */
    CHECK_INT_EQ(lkh_member_apply(&m, &w, 1), CK_ERR_PROTO);
    free(kek);
    free(data);
    free(ct);
}

static void
test_bad_input(void)
{
    struct lkh_tree *t = NULL;
    struct lkh_batch_result r;
    struct lkh_member m, before;
    uint8_t gk0[LKH_KEY_LEN], gk1[LKH_KEY_LEN];
    uint32_t id, v0, v1, two[2];

    CHECK_INT_EQ(lkh_tree_new(1, 10, &t), CK_ERR_INVAL);
    CHECK_INT_EQ(lkh_tree_new(17, 10, &t), CK_ERR_INVAL);
    CHECK_INT_EQ(lkh_tree_new(4, 0, &t), CK_ERR_LIMIT);
    CHECK_INT_EQ(lkh_tree_new(4, LKH_MAX_MEMBERS + 1, &t), CK_ERR_LIMIT);
    CHECK_OK(lkh_tree_new(2, 4, &t));
    if (t == NULL)
        return;
    CHECK_INT_EQ(lkh_group_key(t, gk0, &v0), CK_ERR_NOTFOUND);
    for (int i = 0; i < 4; i++)
        CHECK_OK(lkh_join(t, &id));
    CHECK_INT_EQ(lkh_join(t, &id), CK_ERR_FULL);
    CHECK_INT_EQ(lkh_tree_populate(t, 2), CK_ERR_EXISTS);
    CHECK_INT_EQ(lkh_member_export(t, 9, &m), CK_ERR_NOTFOUND);
    CHECK_OK(lkh_member_export(t, 3, &m));
    CHECK_OK(lkh_group_key(t, gk0, &v0));
    /* unknown or duplicate leavers, a batch that overfills: refused, tree unchanged */
    two[0] = 1;
    two[1] = 7;
    CHECK_INT_EQ(lkh_batch(t, two, 2, 0, &r), CK_ERR_NOTFOUND);
    two[1] = 1;
    CHECK_INT_EQ(lkh_batch(t, two, 2, 0, &r), CK_ERR_INVAL);
    CHECK_INT_EQ(lkh_batch(t, two, 1, 2, &r), CK_ERR_FULL);
    CHECK_OK(lkh_group_key(t, gk1, &v1));
    CHECK(v1 == v0 && memcmp(gk0, gk1, LKH_KEY_LEN) == 0);
    /* the full tree refills a departed leaf in the same batch */
    CHECK_OK(lkh_batch(t, two, 1, 1, &r));
    CHECK_INT_EQ(r.n_joined, 1);
    CHECK_INT_EQ(lkh_tree_members(t), 4);
    /* tampered, reordered wraps: refused, member unchanged */
    before = m;
    r.wraps[r.n_wraps - 1].wrapped[5] ^= 1; /* the root's wrap for member 3's side */
    CHECK_INT_EQ(lkh_member_apply(&m, r.wraps, r.n_wraps), CK_ERR_INTEGRITY);
    CHECK(memcmp(&m, &before, sizeof(m)) == 0);
    r.wraps[r.n_wraps - 1].wrapped[5] ^= 1;
    if (r.n_wraps >= 2) {
        struct lkh_wrap x = r.wraps[0];
        r.wraps[0] = r.wraps[1];
        r.wraps[1] = x;
        CHECK_INT_EQ(lkh_member_apply(&m, r.wraps, r.n_wraps), CK_ERR_PROTO);
        r.wraps[1] = r.wraps[0];
        r.wraps[0] = x;
    }
    CHECK_OK(lkh_member_apply(&m, r.wraps, r.n_wraps));
    CHECK(member_key_matches(t, &m));
    lkh_batch_result_clear(&r);
    lkh_batch_result_clear(NULL);
    lkh_tree_free(NULL);
    lkh_member_clear(&m);
    lkh_tree_free(t);
}

/* Hostile batches (random node ids, versions and ciphertexts, in valid order) never crash and
 * never change the member unless the call succeeds. */
static void
test_member_apply_garbage(void)
{
    struct lkh_tree *t = NULL;
    struct lkh_member m, before;
    struct lkh_wrap w[8];
    uint32_t id;

    CHECK_OK(lkh_tree_new(2, 8, &t));
    if (t == NULL)
        return;
    for (int i = 0; i < 8; i++)
        CHECK_OK(lkh_join(t, &id));
    CHECK_OK(lkh_member_export(t, 5, &m));
    for (int iter = 0; iter < 3000; iter++) {
        size_t n = 1 + rng(8);
        int rc;
        for (size_t i = 0; i < n; i++) {
            w[i].node = rng(16);
            w[i].child = rng(16);
            w[i].child_version = m.path[0].version + rng(3);
            w[i].new_version = rng(30);
            w[i].child_rekeyed = (uint8_t)rng(2);
            for (size_t b = 0; b < LKH_WRAP_LEN; b++)
                w[i].wrapped[b] = (uint8_t)rng(256);
        }
        /* sort by node descending, child ascending, drop duplicates */
        for (size_t i = 0; i < n; i++)
            for (size_t j = i + 1; j < n; j++)
                if (w[j].node > w[i].node || (w[j].node == w[i].node && w[j].child < w[i].child)) {
                    struct lkh_wrap x = w[i];
                    w[i] = w[j];
                    w[j] = x;
                }
        before = m;
        rc = lkh_member_apply(&m, w, n);
        if (rc != 0)
            CHECK(memcmp(&m, &before, sizeof(m)) == 0);
        else
            m = before; /* a batch that misses the member's path: nothing to apply */
    }
    lkh_member_clear(&m);
    lkh_member_clear(&before);
    lkh_tree_free(t);
}

/* A tree whose capacity is not a power of its degree: only max_members leaves exist (degree 3,
 * 10 members: height 3, leaf nodes 13..22 of the 27 positions), joins fill them and stop. */
static void
test_partial_capacity(void)
{
    struct lkh_tree *t = NULL;
    struct lkh_batch_result r;
    struct lkh_member m[10];
    uint32_t id, leave[3] = {2, 5, 9};

    CHECK_OK(lkh_tree_new(3, 10, &t));
    if (t == NULL)
        return;
    CHECK_INT_EQ(lkh_tree_height(t), 3);
    for (uint32_t i = 0; i < 10; i++) {
        CHECK_OK(lkh_join(t, &id));
        CHECK_INT_EQ(id, i);
        CHECK_OK(lkh_member_export(t, id, &m[i]));
        CHECK_INT_EQ(m[i].path[0].node, 13 + i);
    }
    CHECK_INT_EQ(lkh_join(t, &id), CK_ERR_FULL);
    CHECK_INT_EQ(lkh_batch(t, leave, 3, 4, &r), CK_ERR_FULL);
    CHECK_OK(lkh_batch(t, leave, 3, 2, &r));
    for (uint32_t i = 0; i < 10; i++) {
        if (i == 2 || i == 5 || i == 9) {
            CHECK(locked_out(t, &m[i], &r));
            continue;
        }
        CHECK_OK(lkh_member_apply(&m[i], r.wraps, r.n_wraps));
        CHECK(member_key_matches(t, &m[i]));
    }
    CHECK_INT_EQ(r.n_joined, 2);
    lkh_batch_result_clear(&r);
    /* the pruned leaf (member 9's, node 22) is the one free slot left */
    CHECK_OK(lkh_join(t, &id));
    CHECK_OK(lkh_member_export(t, id, &m[9]));
    CHECK_INT_EQ(m[9].path[0].node, 22);
    CHECK(member_key_matches(t, &m[9]));
    CHECK_INT_EQ(lkh_join(t, &id), CK_ERR_FULL);
    for (uint32_t i = 0; i < 10; i++)
        lkh_member_clear(&m[i]);
    lkh_tree_free(t);
}

/* One revoke in a 10^6-member degree-4 tree (height 10): a leaf in a full subtree costs
 * (d-1) + d*(h-1) = d*log_d(4^10) - 1 = 39 wraps; 10 keys change. */
static void
test_revoke_one_of_million(void)
{
    struct lkh_tree *t = NULL;
    struct lkh_batch_result r;
    struct lkh_member m[4];
    uint32_t keep[3] = {1, 5000, 999999}, gone = 0;

    CHECK_OK(lkh_tree_new(4, 1000000, &t));
    if (t == NULL)
        return;
    CHECK_INT_EQ(lkh_tree_height(t), 10);
    CHECK_OK(lkh_tree_populate(t, 1000000));
    CHECK_INT_EQ(lkh_tree_members(t), 1000000);
    fprintf(stderr, "  # tree memory %zu bytes, %.1f bytes/member\n", lkh_tree_memory(t),
            (double)lkh_tree_memory(t) / 1e6);
    CHECK(lkh_tree_memory(t) < 150u * 1000 * 1000);
    CHECK_OK(lkh_member_export(t, gone, &m[3]));
    for (int i = 0; i < 3; i++)
        CHECK_OK(lkh_member_export(t, keep[i], &m[i]));
    CHECK_OK(lkh_batch(t, &gone, 1, 0, &r));
    CHECK_INT_EQ(r.n_wraps, 39);
    CHECK_INT_EQ(r.n_replace, 10);
    CHECK_INT_EQ(r.n_pruned, 1);
    for (int i = 0; i < 3; i++) {
        CHECK_OK(lkh_member_apply(&m[i], r.wraps, r.n_wraps));
        CHECK(member_key_matches(t, &m[i]));
    }
    CHECK(locked_out(t, &m[3], &r));
    lkh_batch_result_clear(&r);
    for (int i = 0; i < 4; i++)
        lkh_member_clear(&m[i]);
    lkh_tree_free(t);
}

/* A batch of 1,000 leaves of 10^6 (degree 4) stays within 18,500 wraps (Li et al.'s bound
 * L*d*log_d(N/L) is about 19.9k); sampled members recover, sampled leavers do not. */
static void
test_batch_1000_of_million(void)
{
    enum { N = 1000000, L = 1000, S = 300 };
    struct lkh_tree *t = NULL;
    struct lkh_batch_result r;
    uint32_t *ids = calloc(L + S, sizeof(uint32_t));
    struct lkh_member *m = calloc(L + S, sizeof(*m));

    if (ids == NULL || m == NULL)
        abort();
    CHECK_OK(lkh_tree_new(4, N, &t));
    if (t == NULL)
        goto out;
    CHECK_OK(lkh_tree_populate(t, N));
    pick_distinct(ids, L + S, N, NULL); /* the first L leave, the next S stay */
    for (size_t i = 0; i < L + S; i++)
        CHECK_OK(lkh_member_export(t, ids[i], &m[i]));
    CHECK_OK(lkh_batch(t, ids, L, 0, &r));
    fprintf(stderr, "  # 1,000 leaves of 10^6: %zu wraps, %zu keys replaced\n", r.n_wraps,
            r.n_replace);
    CHECK(r.n_wraps <= 18500);
    CHECK(r.n_wraps >= 10000); /* sanity: far more than one revoke */
    for (size_t i = L; i < L + S; i++) {
        CHECK_OK(lkh_member_apply(&m[i], r.wraps, r.n_wraps));
        CHECK(member_key_matches(t, &m[i]));
    }
    for (size_t i = 0; i < 8; i++) /* each tries all 18k wraps under all its keys */
        CHECK(locked_out(t, &m[i], &r));
    lkh_batch_result_clear(&r);
out:
    for (size_t i = 0; i < L + S; i++)
        lkh_member_clear(&m[i]);
    free(m);
    free(ids);
    lkh_tree_free(t);
}

/* A toy store: node rows by id (upserted from the dirty set), as the KSV's store keeps them. */
enum { STORE_MAX = 1024 };
struct toy_store {
    struct lkh_node_state row[STORE_MAX];
    uint8_t used[STORE_MAX];
};

static void
store_save(struct toy_store *st, struct lkh_tree *t)
{
    uint32_t *dirty = NULL;
    size_t n = 0;

    CHECK_OK(lkh_tree_dirty(t, &dirty, &n));
    for (size_t i = 0; i < n; i++) {
        if (dirty[i] >= STORE_MAX || (i > 0 && dirty[i] <= dirty[i - 1]))
            abort();
        CHECK_OK(lkh_tree_node_get(t, dirty[i], &st->row[dirty[i]]));
        st->used[dirty[i]] = 1;
    }
    free(dirty);
    lkh_tree_clear_dirty(t);
    CHECK_OK(lkh_tree_dirty(t, &dirty, &n));
    CHECK_INT_EQ(n, 0);
    free(dirty);
}

static size_t
store_rows(const struct toy_store *st, struct lkh_node_state *rows)
{
    size_t n = 0;

    for (uint32_t i = 0; i < STORE_MAX; i++)
        if (st->used[i])
            rows[n++] = st->row[i];
    return n;
}

static int
trees_equal(const struct lkh_tree *a, const struct lkh_tree *b)
{
    struct lkh_member_place *pa = NULL, *pb = NULL;
    size_t na = 0, nb = 0;
    uint8_t ka[LKH_KEY_LEN], kb[LKH_KEY_LEN];
    uint32_t va = 0, vb = 0;
    int ok = 1;

    if (lkh_group_key(a, ka, &va) != 0 || lkh_group_key(b, kb, &vb) != 0 || va != vb ||
        memcmp(ka, kb, LKH_KEY_LEN) != 0)
        ok = 0;
    if (lkh_tree_members(a) != lkh_tree_members(b) || lkh_tree_members_list(a, &pa, &na) != 0 ||
        lkh_tree_members_list(b, &pb, &nb) != 0 || na != nb ||
        memcmp(pa, pb, na * sizeof(*pa)) != 0)
        ok = 0;
    for (size_t i = 0; ok && i < na; i++) {
        struct lkh_member ma, mb;
        uint32_t leaf = 0;
        if (lkh_member_export(a, pa[i].member_id, &ma) != 0 ||
            lkh_member_export(b, pa[i].member_id, &mb) != 0 || memcmp(&ma, &mb, sizeof(ma)) != 0)
            ok = 0;
        if (lkh_member_leaf(b, pa[i].member_id, &leaf) != 0 || leaf != pa[i].leaf ||
            ma.path[0].node != leaf)
            ok = 0;
        lkh_member_clear(&ma);
        lkh_member_clear(&mb);
    }
    free(pa);
    free(pb);
    return ok;
}

/* Saved incrementally (dirty rows after every step) through joins, batches and a join that
 * reuses a pruned leaf, the rows restore the same tree: same group key and version, same members
 * on the same leaves, same path keys; the restored tree goes on rekeying for members exported
 * from the original. */
static void
test_persistence_restore(void)
{
    struct toy_store *st = calloc(1, sizeof(*st));
    struct lkh_node_state *rows = calloc(STORE_MAX, sizeof(*rows));
    struct lkh_member_place *places = NULL;
    struct lkh_tree *t = NULL, *r = NULL;
    struct lkh_batch_result br;
    struct lkh_member m[100];
    uint32_t id, leave1[10] = {3, 7, 11, 12, 20, 33, 34, 35, 50, 59}, leave2[3] = {0, 1, 2};
    uint32_t *dirty = NULL;
    size_t n_rows, n_places = 0, n_dirty = 0;

    if (st == NULL || rows == NULL)
        abort();
    CHECK_OK(lkh_tree_new(3, 100, &t));
    if (t == NULL)
        goto out;
    for (int i = 0; i < 60; i++)
        CHECK_OK(lkh_join(t, &id));
    store_save(st, t);
    CHECK_OK(lkh_batch(t, leave1, 10, 5, &br));
    lkh_batch_result_clear(&br);
    store_save(st, t);
    CHECK_OK(lkh_batch(t, leave2, 3, 0, &br));
    lkh_batch_result_clear(&br);
    /* a join right after the batch, saved together with it */
    CHECK_OK(lkh_join(t, &id));
    CHECK_OK(lkh_join(t, &id));
    store_save(st, t);

    n_rows = store_rows(st, rows);
    CHECK_OK(lkh_tree_members_list(t, &places, &n_places));
    CHECK_INT_EQ(n_places, 60 - 10 + 5 - 3 + 2);
    CHECK_OK(lkh_tree_restore(3, 100, rows, n_rows, places, n_places, &r));
    if (r == NULL)
        goto out;
    CHECK(trees_equal(t, r));
    CHECK_INT_EQ(lkh_tree_degree(r), 3);
    CHECK_INT_EQ(lkh_tree_height(r), lkh_tree_height(t));
    CHECK_OK(lkh_tree_dirty(r, &dirty, &n_dirty));
    CHECK_INT_EQ(n_dirty, 0);
    free(dirty);

    /* members exported from the original follow the restored tree's next batch */
    for (size_t i = 0; i < n_places; i++)
        CHECK_OK(lkh_member_export(t, places[i].member_id, &m[i]));
    {
        uint32_t gone[2] = {places[4].member_id, places[17].member_id};
        CHECK_OK(lkh_batch(r, gone, 2, 1, &br));
        for (size_t i = 0; i < n_places; i++) {
            if (i == 4 || i == 17) {
                CHECK(locked_out(r, &m[i], &br));
                continue;
            }
            CHECK_OK(lkh_member_apply(&m[i], br.wraps, br.n_wraps));
            CHECK(member_key_matches(r, &m[i]));
        }
        /* the joiner got an ID nobody holds */
        CHECK_INT_EQ(br.n_joined, 1);
        for (size_t i = 0; i < n_places; i++)
            if (i != 4 && i != 17)
                CHECK(br.joined[0] != places[i].member_id);
        lkh_batch_result_clear(&br);
    }
    CHECK_OK(lkh_tree_dirty(r, &dirty, &n_dirty));
    CHECK(n_dirty > 0);
    free(dirty);
    for (size_t i = 0; i < n_places; i++)
        lkh_member_clear(&m[i]);
out:
    free(places);
    if (rows != NULL)
        OPENSSL_cleanse(rows, STORE_MAX * sizeof(*rows));
    free(rows);
    free(st);
    lkh_tree_free(t);
    lkh_tree_free(r);
}

/* Rows that do not describe a consistent tree are refused, each for its own reason. */
static void
test_persistence_corrupt(void)
{
    struct toy_store *st = calloc(1, sizeof(*st));
    struct lkh_node_state *rows = calloc(STORE_MAX + 1, sizeof(*rows)), *bad;
    struct lkh_member_place *places = NULL, *pbad;
    struct lkh_tree *t = NULL, *r = NULL;
    struct lkh_node_state ns;
    uint32_t id, leaf, root_row = 0, empty_row = UINT32_MAX;
    size_t n_rows, n_places = 0;
    struct lkh_batch_result br;
    uint32_t leave[2] = {8, 9};

    if (st == NULL || rows == NULL)
        abort();
    CHECK_OK(lkh_tree_new(2, 16, &t));
    if (t == NULL)
        goto out;
    for (int i = 0; i < 10; i++)
        CHECK_OK(lkh_join(t, &id));
    CHECK_OK(lkh_batch(t, leave, 2, 0, &br)); /* prunes leaves 8, 9 and their parent */
    lkh_batch_result_clear(&br);
    store_save(st, t);
    n_rows = store_rows(st, rows);
    CHECK_OK(lkh_tree_members_list(t, &places, &n_places));
    CHECK_INT_EQ(n_places, 8);
    for (size_t i = 0; i < n_rows; i++) {
        if (rows[i].node == 0)
            root_row = (uint32_t)i;
        if (!rows[i].present && empty_row == UINT32_MAX)
            empty_row = (uint32_t)i;
    }
    CHECK(empty_row != UINT32_MAX);
    CHECK_OK(lkh_tree_restore(2, 16, rows, n_rows, places, n_places, &r));
    CHECK(r != NULL && trees_equal(t, r));
    lkh_tree_free(r);
    r = NULL;

    bad = calloc(n_rows + 1, sizeof(*bad));
    pbad = calloc(n_places + 1, sizeof(*pbad));
    if (bad == NULL || pbad == NULL)
        abort();
#define RESTORE_FAILS(nr, np)                                                                      \
    do {                                                                                           \
        r = (struct lkh_tree *)&r;                                                                 \
        CHECK_INT_EQ(lkh_tree_restore(2, 16, bad, (nr), pbad, (np), &r), CK_ERR_DECODE);           \
        CHECK(r == NULL);                                                                          \
        memcpy(bad, rows, n_rows * sizeof(*bad));                                                  \
        memcpy(pbad, places, n_places * sizeof(*pbad));                                            \
    } while (0)
    memcpy(bad, rows, n_rows * sizeof(*bad));
    memcpy(pbad, places, n_places * sizeof(*pbad));
    /* the root's row lost */
    bad[root_row] = bad[n_rows - 1];
    RESTORE_FAILS(n_rows - 1, n_places);
    /* a node row repeated */
    bad[n_rows] = bad[0];
    RESTORE_FAILS(n_rows + 1, n_places);
    /* a node id beyond the tree */
    bad[0].node = 1000;
    RESTORE_FAILS(n_rows, n_places);
    /* a key on an empty node (a stale row) */
    bad[empty_row].present = 1;
    RESTORE_FAILS(n_rows, n_places);
    /* a key with version 0, present flag not boolean */
    bad[root_row].version = 0;
    RESTORE_FAILS(n_rows, n_places);
    bad[root_row].present = 2;
    RESTORE_FAILS(n_rows, n_places);
    /* two members on one leaf, one member twice, a member on an internal node or beyond the
     * leaves, a member ID beyond the capacity, a member on a leaf without a key */
    pbad[1].leaf = pbad[0].leaf;
    RESTORE_FAILS(n_rows, n_places);
    pbad[1].member_id = pbad[0].member_id;
    RESTORE_FAILS(n_rows, n_places);
    pbad[0].leaf = 3;
    RESTORE_FAILS(n_rows, n_places);
    pbad[0].leaf = 31;
    RESTORE_FAILS(n_rows, n_places);
    pbad[0].member_id = 16;
    RESTORE_FAILS(n_rows, n_places);
    CHECK_OK(lkh_member_leaf(t, 7, &leaf));
    pbad[n_places].member_id = 15;
    pbad[n_places].leaf = 15 + 8; /* member 8's pruned leaf: no key row */
    RESTORE_FAILS(n_rows, n_places + 1);
    /* a member lost: its leaf keeps a key nobody uses */
    RESTORE_FAILS(n_rows, n_places - 1);
    /* the wrong shape */
    r = (struct lkh_tree *)&r;
    CHECK(lkh_tree_restore(4, 16, rows, n_rows, places, n_places, &r) != 0 && r == NULL);
#undef RESTORE_FAILS

    CHECK_INT_EQ(lkh_tree_node_get(t, 31, &ns), CK_ERR_NOTFOUND);
    CHECK_OK(lkh_tree_node_get(t, 30, &ns));
    CHECK_INT_EQ(ns.present, 0);
    CHECK_INT_EQ(lkh_member_leaf(t, 8, &leaf), CK_ERR_NOTFOUND);
    CHECK_INT_EQ(lkh_member_leaf(t, 99, &leaf), CK_ERR_NOTFOUND);
    free(bad);
    free(pbad);
out:
    free(places);
    free(rows);
    free(st);
    lkh_tree_free(t);
}

/* The library's wraps are RFC 3394 as OpenSSL's own id-aes128-wrap cipher makes them. */
static void
test_wrap_matches_evp(void)
{
    struct lkh_tree *t = NULL;
    struct lkh_batch_result br;
    struct lkh_member m;
    EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, "id-aes128-wrap", NULL);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    uint8_t out[LKH_WRAP_LEN + 16], gk[LKH_KEY_LEN];
    uint32_t id, gone = 1, v;
    int n = 0, f = 0;

    if (c == NULL || ctx == NULL)
        abort();
    CHECK_OK(lkh_tree_new(2, 4, &t));
    if (t == NULL)
        goto out;
    for (int i = 0; i < 4; i++)
        CHECK_OK(lkh_join(t, &id));
    CHECK_OK(lkh_member_export(t, 0, &m));
    CHECK_OK(lkh_batch(t, &gone, 1, 0, &br));
    /* wraps: node 1 under leaf 3 (member 0), then the root under node 1 and node 2 */
    CHECK_INT_EQ(br.n_wraps, 3);
    CHECK_INT_EQ(br.wraps[0].child, 3);
    CHECK(EVP_CipherInit_ex2(ctx, c, m.path[0].key, NULL, 0, NULL) &&
          EVP_CipherUpdate(ctx, out, &n, br.wraps[0].wrapped, LKH_WRAP_LEN) &&
          EVP_CipherFinal_ex(ctx, out + n, &f));
    CHECK_INT_EQ(n + f, LKH_KEY_LEN);
    CHECK_OK(lkh_member_apply(&m, br.wraps, br.n_wraps));
    CHECK_MEM_EQ(out, LKH_KEY_LEN, m.path[1].key, LKH_KEY_LEN);
    CHECK_OK(lkh_group_key(t, gk, &v));
    CHECK_MEM_EQ(m.path[2].key, LKH_KEY_LEN, gk, LKH_KEY_LEN);
    lkh_batch_result_clear(&br);
    lkh_member_clear(&m);
out:
    EVP_CIPHER_CTX_free(ctx);
    EVP_CIPHER_free(c);
    lkh_tree_free(t);
}

CK_TEST_MAIN("lkh", CK_TEST_CASE(test_degree_2), CK_TEST_CASE(test_degree_3),
             CK_TEST_CASE(test_degree_4), CK_TEST_CASE(test_degree_8),
             CK_TEST_CASE(test_join_hash_forward), CK_TEST_CASE(test_rfc3394_vector),
             CK_TEST_CASE(test_bad_input), CK_TEST_CASE(test_partial_capacity),
             CK_TEST_CASE(test_member_apply_garbage),
             CK_TEST_CASE(test_revoke_one_of_million),
             CK_TEST_CASE(test_batch_1000_of_million), CK_TEST_CASE(test_persistence_restore),
             CK_TEST_CASE(test_persistence_corrupt), CK_TEST_CASE(test_wrap_matches_evp))
