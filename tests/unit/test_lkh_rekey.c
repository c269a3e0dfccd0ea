/* Group rekey datagrams: packing (every member finds its wraps in exactly one datagram), the
 * batch signature over the hash tree, the strict parser, the member's checks, the group SA key
 * and key check. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "ck_test.h"
#include "cablekey/lkh_rekey.h"

static uint64_t rng_state = 0x6a09e667f3bcc909ull;

static uint32_t
rng(uint32_t bound)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 33) % bound;
}

static void
pick_distinct(uint32_t *out, size_t k, uint32_t n)
{
    uint8_t *seen = calloc(n, 1);

    if (seen == NULL)
        abort();
    for (size_t i = 0; i < k;) {
        uint32_t x = rng(n);
        if (seen[x])
            continue;
        seen[x] = 1;
        out[i++] = x;
    }
    free(seen);
}

static struct lkh_signer *
signer(void)
{
    struct lkh_signer *s = NULL;

    if (lkh_signer_generate(&s) != 0)
        abort();
    return s;
}

static void
params_for(struct lkh_rekey_params *p, const struct lkh_tree *t, uint64_t epoch)
{
    uint8_t gk[LKH_KEY_LEN];

    memset(p, 0, sizeof(*p));
    p->group_id = 77;
    p->epoch = epoch;
    if (lkh_group_key(t, gk, &p->root_version) != 0)
        abort();
    OPENSSL_cleanse(gk, sizeof(gk));
    p->degree = lkh_tree_degree(t);
    p->height = lkh_tree_height(t);
}

/* The datagrams' leaf ranges partition the tree's full leaf width in order. */
static int
ranges_partition(const struct lkh_rekey_out *o, uint32_t first_leaf, uint32_t last_leaf)
{
    uint32_t next = first_leaf;

    for (size_t k = 0; k < o->n; k++) {
        struct lkh_rekey_view v;
        int ok;
        if (lkh_rekey_parse(o->dgrams[k], o->lens[k], &v) != 0)
            return 0;
        ok = v.leaf_lo == next && v.index == k && v.n_dgrams == o->n;
        next = v.leaf_hi + 1;
        lkh_rekey_view_clear(&v);
        if (!ok)
            return 0;
    }
    return next == last_leaf + 1;
}

static int
group_key_is(const struct lkh_tree *t, struct lkh_member *m, uint32_t root_version)
{
    uint8_t gk[LKH_KEY_LEN], mk[LKH_KEY_LEN];
    uint32_t v;

    if (lkh_group_key(t, gk, &v) != 0 || v != root_version ||
        lkh_member_group_key(m, v, mk) != 0)
        return 0;
    return CRYPTO_memcmp(gk, mk, LKH_KEY_LEN) == 0;
}

static void
test_signer(void)
{
    struct lkh_signer *a = signer(), *b = NULL;
    uint8_t priv[32], pub_a[32], pub_b[32];

    CHECK_OK(lkh_signer_raw(a, priv));
    CHECK_OK(lkh_signer_public(a, pub_a));
    CHECK_OK(lkh_signer_from_raw(priv, &b));
    if (b != NULL) {
        CHECK_OK(lkh_signer_public(b, pub_b));
        CHECK_MEM_EQ(pub_a, 32, pub_b, 32);
    }
    OPENSSL_cleanse(priv, sizeof(priv));
    lkh_signer_free(a);
    lkh_signer_free(b);
    lkh_signer_free(NULL);
}

/* HKDF (RFC 5869) and the key check, recomputed here from HMAC-SHA-256 alone. */
static void
test_sa_key_and_check(void)
{
    uint8_t gk[16], prk[32], t1[32], t2[32], in[64], out[48], chk[8], mac[32];
    size_t n = 0;
    static const char salt[] = "cablekey ksv group sa", label[] = "cablekey ksv key check";

    for (int i = 0; i < 16; i++)
        gk[i] = (uint8_t)(0xa0 + i);
    CHECK_OK(lkh_group_sa_key(gk, 0x01020304, 7, out, sizeof(out)));
    CHECK(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, salt, sizeof(salt) - 1, gk, 16, prk, 32,
                    &n) != NULL);
    memcpy(in, "\x01\x02\x03\x04\x00\x00\x00\x07\x01", 9);
    CHECK(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, prk, 32, in, 9, t1, 32, &n) != NULL);
    memcpy(in, t1, 32);
    memcpy(in + 32, "\x01\x02\x03\x04\x00\x00\x00\x07\x02", 9);
    CHECK(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, prk, 32, in, 41, t2, 32, &n) != NULL);
    CHECK_MEM_EQ(out, 32, t1, 32);
    CHECK_MEM_EQ(out + 32, 16, t2, 16);
    CHECK_OK(lkh_group_sa_key(gk, 0x01020304, 8, t1, 32));
    CHECK(memcmp(t1, out, 32) != 0);
    CHECK_INT_EQ(lkh_group_sa_key(gk, 1, 1, out, 0), CK_ERR_INVAL);
    CHECK_INT_EQ(lkh_group_sa_key(gk, 1, 1, in, 65), CK_ERR_INVAL);

    CHECK_OK(lkh_group_key_check(gk, 7, chk));
    memcpy(in, label, sizeof(label) - 1);
    memcpy(in + sizeof(label) - 1, "\x00\x00\x00\x07", 4);
    CHECK(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, gk, 16, in, sizeof(label) + 3, mac, 32,
                    &n) != NULL);
    CHECK_MEM_EQ(chk, 8, mac, 8);
}

/* A small tree, several datagrams (max 512 bytes): the parsed wraps are the batch's, every
 * datagram verifies alone, and each wrap shows up where the members below it need it. */
static void
test_round_trip(void)
{
    struct lkh_tree *t = NULL;
    struct lkh_batch_result r;
    struct lkh_rekey_params p;
    struct lkh_rekey_out o;
    struct lkh_signer *s = signer();
    uint8_t pub[32];
    uint32_t leave[12];
    size_t seen = 0;
    uint8_t *found;

    CHECK_OK(lkh_signer_public(s, pub));
    CHECK_OK(lkh_tree_new(4, 256, &t));
    if (t == NULL)
        goto out;
    CHECK_OK(lkh_tree_populate(t, 200));
    pick_distinct(leave, 12, 200);
    CHECK_OK(lkh_batch(t, leave, 12, 3, &r));
    params_for(&p, t, 5);
    p.flags = LKH_REKEY_F_ACK_REQD;
    p.max_dgram = 512;
    CHECK_OK(lkh_rekey_pack(&p, r.wraps, r.n_wraps, s, &o));
    CHECK(o.n > 1);
    CHECK(ranges_partition(&o, 85, 85 + 255));
    found = calloc(r.n_wraps, 1);
    for (size_t k = 0; k < o.n && found != NULL; k++) {
        struct lkh_rekey_view v;
        CHECK(o.lens[k] <= 512);
        CHECK_OK(lkh_rekey_verify(o.dgrams[k], o.lens[k], pub));
        CHECK_OK(lkh_rekey_parse(o.dgrams[k], o.lens[k], &v));
        CHECK_INT_EQ(v.group_id, 77);
        CHECK_INT_EQ(v.epoch, 5);
        CHECK_INT_EQ(v.root_version, p.root_version);
        CHECK_INT_EQ(v.flags, LKH_REKEY_F_ACK_REQD);
        for (size_t i = 0; i < v.n_wraps; i++) {
            size_t j;
            for (j = 0; j < r.n_wraps; j++)
                if (r.wraps[j].node == v.wraps[i].node && r.wraps[j].child == v.wraps[i].child &&
                    r.wraps[j].child_version == v.wraps[i].child_version &&
                    r.wraps[j].new_version == v.wraps[i].new_version &&
                    r.wraps[j].child_rekeyed == v.wraps[i].child_rekeyed &&
                    memcmp(r.wraps[j].wrapped, v.wraps[i].wrapped, LKH_WRAP_LEN) == 0)
                    break;
            CHECK(j < r.n_wraps);
            if (j < r.n_wraps && !found[j]) {
                found[j] = 1;
                seen++;
            }
        }
        lkh_rekey_view_clear(&v);
    }
    CHECK_INT_EQ(seen, r.n_wraps);
    free(found);
    lkh_rekey_out_clear(&o);
    lkh_rekey_out_clear(&o);
    lkh_batch_result_clear(&r);
out:
    lkh_tree_free(t);
    lkh_signer_free(s);
}

/* Index of the datagram serving leaf, or -1; counts how many do. */
static long
serving(struct lkh_rekey_view *views, size_t n, uint32_t leaf, int *count)
{
    long at = -1;

    *count = 0;
    for (size_t k = 0; k < n; k++)
        if (leaf >= views[k].leaf_lo && leaf <= views[k].leaf_hi) {
            (*count)++;
            at = (long)k;
        }
    return at;
}

/* 10^4 members, 150 leave: every survivor finds exactly one datagram, and that one alone gives
 * it the new group key; each revoked member's datagram rekeys its path without a wrap it can
 * open. Sampled members go through lkh_rekey_member_apply (signature included). */
static void
test_every_member_one_datagram(void)
{
    enum { N = 10000, L = 150 };
    struct lkh_tree *t = NULL;
    struct lkh_batch_result r;
    struct lkh_rekey_params p;
    struct lkh_rekey_out o;
    struct lkh_rekey_view *views = NULL;
    struct lkh_signer *s = signer();
    struct lkh_member *m = calloc(N, sizeof(*m));
    uint8_t *gone = calloc(N, 1), pub[32];
    uint32_t leave[L];
    size_t total = 0;

    if (m == NULL || gone == NULL)
        abort();
    CHECK_OK(lkh_signer_public(s, pub));
    CHECK_OK(lkh_tree_new(4, N, &t));
    if (t == NULL)
        goto out;
    CHECK_OK(lkh_tree_populate(t, N));
    for (uint32_t i = 0; i < N; i++)
        CHECK_OK(lkh_member_export(t, i, &m[i]));
    pick_distinct(leave, L, N);
    for (size_t i = 0; i < L; i++)
        gone[leave[i]] = 1;
    CHECK_OK(lkh_batch(t, leave, L, 0, &r));
    params_for(&p, t, 1);
    CHECK_OK(lkh_rekey_pack(&p, r.wraps, r.n_wraps, s, &o));
    views = calloc(o.n, sizeof(*views));
    if (views == NULL)
        abort();
    for (size_t k = 0; k < o.n; k++) {
        CHECK(o.lens[k] <= LKH_REKEY_DEFAULT_DGRAM);
        CHECK_OK(lkh_rekey_verify(o.dgrams[k], o.lens[k], pub));
        CHECK_OK(lkh_rekey_parse(o.dgrams[k], o.lens[k], &views[k]));
        total += o.lens[k];
    }
    fprintf(stderr, "  # %u of %u leave: %zu wraps in %zu datagrams, %zu bytes\n", L, N,
            r.n_wraps, o.n, total);
    for (uint32_t i = 0; i < N; i++) {
        int count = 0;
        long k = serving(views, o.n, m[i].path[0].node, &count);
        CHECK_INT_EQ(count, 1);
        if (k < 0)
            continue;
        if (gone[i]) {
            /* the wraps of its datagram alone (as a node agent applies them) say "removed" */
            struct lkh_member before = m[i];
            CHECK_INT_EQ(lkh_member_apply(&m[i], views[k].wraps, views[k].n_wraps), CK_ERR_PERM);
            CHECK(memcmp(&before, &m[i], sizeof(before)) == 0);
            lkh_member_clear(&before);
        }
        if (i % 97 == 0 || gone[i]) {
            uint64_t last = 0;
            uint32_t rv = 0;
            int rc = lkh_rekey_member_apply(&m[i], 77, pub, &last, o.dgrams[k], o.lens[k], &rv);
            CHECK_INT_EQ(rc, gone[i] ? CK_ERR_PERM : 0);
            if (rc == 0)
                CHECK(last == 1 && group_key_is(t, &m[i], rv));
            continue;
        }
        CHECK_OK(lkh_member_apply(&m[i], views[k].wraps, views[k].n_wraps));
        CHECK(group_key_is(t, &m[i], p.root_version));
    }
    for (size_t k = 0; k < o.n; k++)
        lkh_rekey_view_clear(&views[k]);
    lkh_rekey_out_clear(&o);
    lkh_batch_result_clear(&r);
out:
    free(views);
    for (uint32_t i = 0; i < N; i++)
        lkh_member_clear(&m[i]);
    free(m);
    free(gone);
    lkh_tree_free(t);
    lkh_signer_free(s);
}

/* Where the signature starts: after the header and the entries. */
static size_t
sig_offset(const uint8_t *d, size_t len)
{
    struct lkh_rekey_view v;
    size_t at;

    if (lkh_rekey_parse(d, len, &v) != 0)
        return 0;
    at = LKH_REKEY_HDR_LEN + (size_t)((d[40] << 8) | d[41]) * LKH_REKEY_NODE_LEN +
         v.n_wraps * LKH_REKEY_WRAP_LEN;
    lkh_rekey_view_clear(&v);
    return at;
}

/* Two batches of one group, several datagrams each: everything a forger or the network can do
 * is refused. */
static void
test_rejected(void)
{
    struct lkh_tree *t = NULL;
    struct lkh_batch_result r1, r2;
    struct lkh_rekey_params p;
    struct lkh_rekey_out a, b;
    struct lkh_signer *s = signer(), *other = signer();
    struct lkh_member m;
    uint8_t pub[32], opub[32], *buf;
    uint32_t leave1[20], leave2[20];
    long k = -1;

    CHECK_OK(lkh_signer_public(s, pub));
    CHECK_OK(lkh_signer_public(other, opub));
    CHECK_OK(lkh_tree_new(4, 1024, &t));
    if (t == NULL)
        goto out;
    CHECK_OK(lkh_tree_populate(t, 1000));
    pick_distinct(leave1, 20, 500);
    for (int i = 0; i < 20; i++)
        leave2[i] = 500 + leave1[i];
    CHECK_OK(lkh_member_export(t, 999, &m));
    CHECK_OK(lkh_batch(t, leave1, 20, 0, &r1));
    params_for(&p, t, 10);
    CHECK_OK(lkh_rekey_pack(&p, r1.wraps, r1.n_wraps, s, &a));
    CHECK_OK(lkh_batch(t, leave2, 20, 0, &r2));
    params_for(&p, t, 11);
    CHECK_OK(lkh_rekey_pack(&p, r2.wraps, r2.n_wraps, s, &b));
    CHECK(a.n >= 4 && b.n >= 4);
    if (a.n < 4 || b.n < 4)
        goto out;
    for (size_t i = 0; i < a.n; i++)
        CHECK_OK(lkh_rekey_verify(a.dgrams[i], a.lens[i], pub));

    /* wrong key; forged signature */
    CHECK_INT_EQ(lkh_rekey_verify(a.dgrams[0], a.lens[0], opub), CK_ERR_INTEGRITY);
    buf = malloc(LKH_REKEY_MAX_DGRAM + 1);
    if (buf == NULL)
        abort();
    {
        size_t at = sig_offset(a.dgrams[1], a.lens[1]);
        CHECK(at > LKH_REKEY_HDR_LEN && at + 65 <= a.lens[1]);
        for (size_t i = at; i < at + 64; i += 7) {
            memcpy(buf, a.dgrams[1], a.lens[1]);
            buf[i] ^= 0x80;
            CHECK_INT_EQ(lkh_rekey_verify(buf, a.lens[1], pub), CK_ERR_INTEGRITY);
        }
    }
    /* every single byte flipped, anywhere: refused by the parser or the signature */
    for (size_t i = 0; i < a.lens[1]; i++) {
        memcpy(buf, a.dgrams[1], a.lens[1]);
        buf[i] ^= 0x01;
        CHECK(lkh_rekey_verify(buf, a.lens[1], pub) != 0);
    }
    /* truncated at every length, one byte too many */
    for (size_t len = 0; len < a.lens[1]; len++) {
        struct lkh_rekey_view v;
        CHECK_INT_EQ(lkh_rekey_parse(a.dgrams[1], len, &v), CK_ERR_DECODE);
        CHECK(v.wraps == NULL);
        CHECK_INT_EQ(lkh_rekey_verify(a.dgrams[1], len, pub), CK_ERR_DECODE);
    }
    memcpy(buf, a.dgrams[1], a.lens[1]);
    buf[a.lens[1]] = 0;
    CHECK_INT_EQ(lkh_rekey_verify(buf, a.lens[1] + 1, pub), CK_ERR_DECODE);
    /* the authentication path: its last byte-count field tells where it starts */
    for (size_t i = 0; i < 2; i++) {
        const uint8_t *d = i == 0 ? a.dgrams[0] : a.dgrams[2];
        size_t len = i == 0 ? a.lens[0] : a.lens[2], path_at;
        size_t plen = (len - sig_offset(d, len) - 65) / 32;
        CHECK(plen >= 2);
        path_at = len - 32 * plen;
        /* reorder the path: swap its first two hashes */
        memcpy(buf, d, len);
        memcpy(buf + path_at, d + path_at + 32, 32);
        memcpy(buf + path_at + 32, d + path_at, 32);
        CHECK_INT_EQ(lkh_rekey_verify(buf, len, pub), CK_ERR_INTEGRITY);
        /* batch b's signed part with batch a's trailer (same index, both batches) */
        {
            const uint8_t *e = b.dgrams[i == 0 ? 0 : 2];
            size_t elen = b.lens[i == 0 ? 0 : 2], etrail = 65 + 32 * plen;
            if (elen - sig_offset(e, elen) == etrail) {
                memcpy(buf, e, elen - etrail);
                memcpy(buf + elen - etrail, d + len - etrail, etrail);
                CHECK_INT_EQ(lkh_rekey_verify(buf, elen, pub), CK_ERR_INTEGRITY);
            }
        }
    }
    /* a datagram of batch a with its index field changed to another datagram's */
    memcpy(buf, a.dgrams[0], a.lens[0]);
    buf[31] ^= 1; /* index 0 -> 1: path length may still match; hash tree position differs */
    CHECK(lkh_rekey_verify(buf, a.lens[0], pub) != 0);

    /* member side: the right datagram of a, then a again (replay), then b; another group */
    {
        uint64_t last = 9;
        uint32_t rv = 0, leaf = m.path[0].node;
        size_t i;
        struct lkh_member before = m;
        for (i = 0; i < a.n; i++) {
            int rc = lkh_rekey_member_apply(&m, 77, pub, &last, a.dgrams[i], a.lens[i], &rv);
            struct lkh_rekey_view v;
            CHECK_OK(lkh_rekey_parse(a.dgrams[i], a.lens[i], &v));
            if (leaf >= v.leaf_lo && leaf <= v.leaf_hi) {
                CHECK_OK(rc);
                k = (long)i;
            } else {
                CHECK_INT_EQ(rc, CK_ERR_NOTFOUND);
            }
            lkh_rekey_view_clear(&v);
        }
        CHECK(k >= 0 && last == 10);
        CHECK(memcmp(&before, &m, sizeof(m)) != 0);
        before = m;
        if (k >= 0) {
            CHECK_INT_EQ(lkh_rekey_member_apply(&m, 77, pub, &last, a.dgrams[k], a.lens[k], &rv),
                         CK_ERR_REPLAY);
            CHECK_INT_EQ(lkh_rekey_member_apply(&m, 78, pub, &last, a.dgrams[k], a.lens[k], &rv),
                         CK_ERR_NOTFOUND);
            CHECK_INT_EQ(lkh_rekey_member_apply(&m, 77, opub, &last, b.dgrams[b.n - 1],
                                                b.lens[b.n - 1], &rv),
                         CK_ERR_INTEGRITY);
        }
        CHECK(memcmp(&before, &m, sizeof(m)) == 0);
        CHECK_INT_EQ(last, 10);
        lkh_member_clear(&before);
        CHECK_OK(lkh_rekey_member_apply(&m, 77, pub, &last, b.dgrams[b.n - 1], b.lens[b.n - 1],
                                        &rv));
        CHECK(last == 11 && group_key_is(t, &m, rv));
    }
    free(buf);
    lkh_rekey_out_clear(&a);
    lkh_rekey_out_clear(&b);
    lkh_batch_result_clear(&r1);
    lkh_batch_result_clear(&r2);
out:
    lkh_member_clear(&m);
    lkh_tree_free(t);
    lkh_signer_free(s);
    lkh_signer_free(other);
}

/* The datagram of this member in a packed batch (and applies nothing). */
static long
find_dgram(const struct lkh_rekey_out *o, uint32_t leaf)
{
    for (size_t k = 0; k < o->n; k++) {
        struct lkh_rekey_view v;
        int in;
        if (lkh_rekey_parse(o->dgrams[k], o->lens[k], &v) != 0)
            return -1;
        in = leaf >= v.leaf_lo && leaf <= v.leaf_hi;
        lkh_rekey_view_clear(&v);
        if (in)
            return (long)k;
    }
    return -1;
}

/* Members that missed an epoch: one whose path below the root did not change there catches up
 * with the next datagram; one whose path changed cannot (CK_ERR_EXPIRED, unchanged) and recovers
 * from its path by unicast. */
static void
test_missed_epoch(void)
{
    struct lkh_tree *t = NULL;
    struct lkh_batch_result r;
    struct lkh_rekey_params p;
    struct lkh_rekey_out o1, o2;
    struct lkh_signer *s = signer();
    struct lkh_member far, near, before;
    uint8_t pub[32];
    uint32_t gone1 = 1, gone2 = 40;
    uint64_t last_far = 1, last_near = 1;
    uint32_t rv = 0;
    long k;

    CHECK_OK(lkh_signer_public(s, pub));
    CHECK_OK(lkh_tree_new(4, 64, &t));
    if (t == NULL)
        goto out;
    CHECK_OK(lkh_tree_populate(t, 64));
    CHECK_OK(lkh_member_export(t, 60, &far));  /* another quarter of the tree than 1 */
    CHECK_OK(lkh_member_export(t, 0, &near)); /* 1's sibling */
    CHECK_OK(lkh_batch(t, &gone1, 1, 0, &r));
    params_for(&p, t, 2);
    CHECK_OK(lkh_rekey_pack(&p, r.wraps, r.n_wraps, s, &o1));
    lkh_batch_result_clear(&r);
    CHECK_OK(lkh_batch(t, &gone2, 1, 0, &r));
    params_for(&p, t, 3);
    CHECK_OK(lkh_rekey_pack(&p, r.wraps, r.n_wraps, s, &o2));
    lkh_batch_result_clear(&r);
    /* both missed epoch 2 */
    k = find_dgram(&o2, far.path[0].node);
    CHECK(k >= 0);
    if (k >= 0) {
        CHECK_OK(lkh_rekey_member_apply(&far, 77, pub, &last_far, o2.dgrams[k], o2.lens[k], &rv));
        CHECK(last_far == 3 && group_key_is(t, &far, rv));
    }
    k = find_dgram(&o2, near.path[0].node);
    before = near;
    if (k >= 0)
        CHECK_INT_EQ(lkh_rekey_member_apply(&near, 77, pub, &last_near, o2.dgrams[k], o2.lens[k],
                                            &rv),
                     CK_ERR_EXPIRED);
    CHECK(memcmp(&before, &near, sizeof(near)) == 0 && last_near == 1);
    /* unicast recovery: its current path */
    CHECK_OK(lkh_member_export(t, 0, &near));
    CHECK(group_key_is(t, &near, p.root_version));
    lkh_member_clear(&before);
    lkh_rekey_out_clear(&o1);
    lkh_rekey_out_clear(&o2);
out:
    lkh_member_clear(&far);
    lkh_member_clear(&near);
    lkh_tree_free(t);
    lkh_signer_free(s);
}

/* A batch with no wraps (an empty group) still gives one signed datagram; parameters and wraps
 * that are not a batch of the declared tree are refused. */
static void
test_pack_edges(void)
{
    struct lkh_rekey_params p;
    struct lkh_rekey_out o;
    struct lkh_rekey_view v;
    struct lkh_signer *s = signer();
    struct lkh_wrap w[2];
    uint8_t pub[32];

    CHECK_OK(lkh_signer_public(s, pub));
    memset(&p, 0, sizeof(p));
    p.group_id = 3;
    p.epoch = 1;
    p.root_version = 4;
    p.degree = 4;
    p.height = 3;
    CHECK_OK(lkh_rekey_pack(&p, NULL, 0, s, &o));
    CHECK_INT_EQ(o.n, 1);
    if (o.n == 1) {
        CHECK_INT_EQ(o.lens[0], LKH_REKEY_HDR_LEN + 65);
        CHECK_OK(lkh_rekey_verify(o.dgrams[0], o.lens[0], pub));
        CHECK_OK(lkh_rekey_parse(o.dgrams[0], o.lens[0], &v));
        CHECK(v.n_wraps == 0 && v.leaf_lo == 21 && v.leaf_hi == 84);
        lkh_rekey_view_clear(&v);
    }
    lkh_rekey_out_clear(&o);

    memset(w, 0, sizeof(w));
    w[0].node = 1;
    w[0].child = 6;
    w[0].new_version = 2;
    w[1].node = 0;
    w[1].child = 1;
    w[1].new_version = 4;
    CHECK_OK(lkh_rekey_pack(&p, w, 2, s, &o));
    lkh_rekey_out_clear(&o);
    w[1].new_version = 5; /* the root's version is not params' */
    CHECK_INT_EQ(lkh_rekey_pack(&p, w, 2, s, &o), CK_ERR_INVAL);
    w[1].new_version = 4;
    CHECK_INT_EQ(lkh_rekey_pack(&p, w + 1, 1, s, &o), 0); /* one wrap is fine */
    lkh_rekey_out_clear(&o);
    {
        struct lkh_wrap x[2] = {w[1], w[0]}; /* out of order */
        CHECK_INT_EQ(lkh_rekey_pack(&p, x, 2, s, &o), CK_ERR_INVAL);
    }
    w[0].child_version = 0x80000000u; /* versions on the wire stay below 2^31 */
    CHECK_INT_EQ(lkh_rekey_pack(&p, w, 2, s, &o), CK_ERR_INVAL);
    w[0].child_version = 0;
    w[0].child = 9; /* not a child of node 1 */
    CHECK_INT_EQ(lkh_rekey_pack(&p, w, 2, s, &o), CK_ERR_INVAL);
    w[0].child = 6;
    w[0].node = 21; /* a leaf has no children */
    w[0].child = 85;
    CHECK_INT_EQ(lkh_rekey_pack(&p, w, 2, s, &o), CK_ERR_INVAL);
    p.degree = 1;
    CHECK(lkh_rekey_pack(&p, NULL, 0, s, &o) != 0);
    p.degree = 16;
    p.height = 32; /* 16^32 leaves do not fit 32-bit node ids */
    CHECK(lkh_rekey_pack(&p, NULL, 0, s, &o) != 0);
    p.degree = 4;
    p.height = 3;
    p.max_dgram = 100;
    CHECK_INT_EQ(lkh_rekey_pack(&p, NULL, 0, s, &o), CK_ERR_INVAL);
    p.max_dgram = 0;
    p.epoch = 0;
    CHECK_INT_EQ(lkh_rekey_pack(&p, NULL, 0, s, &o), CK_ERR_INVAL);
    p.epoch = 1;
    p.flags = 0x80;
    CHECK_INT_EQ(lkh_rekey_pack(&p, NULL, 0, s, &o), CK_ERR_INVAL);
    CHECK(o.n == 0 && o.dgrams == NULL);
    lkh_signer_free(s);
}

/* Revoke 1 of 10^6 at degree 4: 39 wraps in ONE datagram of at most 1,400 bytes, signed; the
 * revoked member's sibling (every key of its path changes) gets the group key from it. Then a
 * batch of 1,000 leaves: every datagram within 1,400 bytes, sampled members served exactly once. */
static void
test_million_sizes(void)
{
    enum { N = 1000000, L = 1000 };
    struct lkh_tree *t = NULL;
    struct lkh_batch_result r;
    struct lkh_rekey_params p;
    struct lkh_rekey_out o;
    struct lkh_signer *s = signer();
    struct lkh_member sib, victim;
    uint8_t pub[32];
    uint32_t gone = 4096, *leave = calloc(L, sizeof(uint32_t));
    uint64_t last = 0;
    uint32_t rv = 0;
    size_t total = 0;

    if (leave == NULL)
        abort();
    CHECK_OK(lkh_signer_public(s, pub));
    CHECK_OK(lkh_tree_new(4, N, &t));
    if (t == NULL)
        goto out;
    CHECK_OK(lkh_tree_populate(t, N));
    CHECK_OK(lkh_member_export(t, gone + 1, &sib));
    CHECK_OK(lkh_member_export(t, gone, &victim));
    CHECK_OK(lkh_batch(t, &gone, 1, 0, &r));
    CHECK_INT_EQ(r.n_wraps, 39);
    params_for(&p, t, 1);
    CHECK_OK(lkh_rekey_pack(&p, r.wraps, r.n_wraps, s, &o));
    CHECK_INT_EQ(o.n, 1);
    if (o.n == 1) {
        fprintf(stderr, "  # revoke 1 of 10^6: 39 wraps, one datagram of %zu bytes\n", o.lens[0]);
        CHECK(o.lens[0] <= 1400);
        CHECK_INT_EQ(o.lens[0], LKH_REKEY_HDR_LEN + 10 * LKH_REKEY_NODE_LEN +
                                    39 * LKH_REKEY_WRAP_LEN + 65);
        CHECK_OK(lkh_rekey_member_apply(&sib, 77, pub, &last, o.dgrams[0], o.lens[0], &rv));
        CHECK(group_key_is(t, &sib, rv));
        last = 0;
        CHECK_INT_EQ(lkh_rekey_member_apply(&victim, 77, pub, &last, o.dgrams[0], o.lens[0], &rv),
                     CK_ERR_PERM);
    }
    lkh_rekey_out_clear(&o);
    lkh_batch_result_clear(&r);

    pick_distinct(leave, L, N);
    for (size_t i = 0; i < L; i++)
        if (leave[i] == gone)
            leave[i] = gone + 2; /* not picked: pick_distinct draws from 0..N-1 */
    CHECK_OK(lkh_batch(t, leave, L, 0, &r));
    params_for(&p, t, 2);
    CHECK_OK(lkh_rekey_pack(&p, r.wraps, r.n_wraps, s, &o));
    for (size_t k = 0; k < o.n; k++) {
        CHECK(o.lens[k] <= 1400);
        total += o.lens[k];
    }
    fprintf(stderr, "  # 1,000 of 10^6 leave: %zu wraps, %zu datagrams, %zu bytes\n", r.n_wraps,
            o.n, total);
    CHECK(ranges_partition(&o, 349525, 349525 + 1048575));
    CHECK_OK(lkh_rekey_verify(o.dgrams[o.n / 2], o.lens[o.n / 2], pub));
    lkh_rekey_out_clear(&o);
    lkh_batch_result_clear(&r);
out:
    lkh_member_clear(&sib);
    lkh_member_clear(&victim);
    free(leave);
    lkh_tree_free(t);
    lkh_signer_free(s);
}

/* Hybrid over 10 members, clusters of 4, degree 2: a revoke REPLACEs the victim's cluster (its
 * other members get their path by unicast), the others use the signed multicast; a cluster left
 * empty is pruned; a joiner fills the cluster with room. EK: everything by unicast. */
static void
test_hybrid_and_ek(void)
{
    struct lkh_hybrid *h = NULL, *ek = NULL;
    struct lkh_hybrid_result r;
    struct lkh_rekey_params p;
    struct lkh_rekey_out o;
    struct lkh_signer *s = signer();
    struct lkh_member m[10];
    uint8_t pub[32], gk[LKH_KEY_LEN], mk[LKH_KEY_LEN];
    uint32_t v, gone = 9, gone2[2] = {8, 3};
    uint64_t last[10] = {0};

    CHECK_OK(lkh_signer_public(s, pub));
    CHECK_OK(lkh_hybrid_new(2, 4, 16, &h));
    if (h == NULL)
        goto out;
    CHECK_OK(lkh_hybrid_batch(h, NULL, 0, 10, &r));
    CHECK_INT_EQ(r.n_joined, 10);
    CHECK_INT_EQ(r.n_unicast, 10); /* three new clusters: everyone by unicast */
    CHECK_INT_EQ(r.multicast, 0);
    lkh_hybrid_result_clear(&r);
    for (uint32_t i = 0; i < 10; i++)
        CHECK_OK(lkh_hybrid_member_export(h, i, &m[i]));
    CHECK_INT_EQ(m[0].path[0].node, m[3].path[0].node); /* one cluster, one leaf */
    CHECK(m[3].path[0].node != m[4].path[0].node);

    CHECK_OK(lkh_hybrid_batch(h, &gone, 1, 0, &r));
    CHECK_INT_EQ(r.n_unicast, 1);
    CHECK_INT_EQ(r.unicast[0], 8);
    CHECK_INT_EQ(r.multicast, 1);
    params_for(&p, lkh_hybrid_tree(h), 1);
    CHECK_OK(lkh_rekey_pack(&p, r.lkh.wraps, r.lkh.n_wraps, s, &o));
    CHECK_INT_EQ(o.n, 1);
    CHECK_OK(lkh_group_key(lkh_hybrid_tree(h), gk, &v));
    for (uint32_t i = 0; i < 10 && o.n == 1; i++) {
        uint32_t rv = 0;
        int rc = lkh_rekey_member_apply(&m[i], 77, pub, &last[i], o.dgrams[0], o.lens[0], &rv);
        if (i == 8 || i == 9) {
            /* 8 could not open it (its cluster's leaf key changed) and takes the unicast; 9 is
             * out */
            CHECK_INT_EQ(rc, CK_ERR_PERM);
            continue;
        }
        CHECK_OK(rc);
        CHECK_OK(lkh_member_group_key(&m[i], v, mk));
        CHECK_MEM_EQ(mk, LKH_KEY_LEN, gk, LKH_KEY_LEN);
    }
    CHECK_OK(lkh_hybrid_member_export(h, 8, &m[8]));
    CHECK_OK(lkh_member_group_key(&m[8], v, mk));
    CHECK_MEM_EQ(mk, LKH_KEY_LEN, gk, LKH_KEY_LEN);
    CHECK_INT_EQ(lkh_hybrid_member_export(h, 9, &m[9]), CK_ERR_NOTFOUND);
    lkh_rekey_out_clear(&o);
    lkh_hybrid_result_clear(&r);

    /* 8 and 3 leave: cluster {8} is pruned, {0,1,2,3} REPLACEd; a joiner then goes to {0,1,2} */
    CHECK_OK(lkh_hybrid_batch(h, gone2, 2, 0, &r));
    CHECK_INT_EQ(r.n_unicast, 3);
    CHECK_INT_EQ(r.multicast, 1);
    CHECK_INT_EQ(lkh_hybrid_members(h), 7);
    lkh_hybrid_result_clear(&r);
    CHECK_OK(lkh_hybrid_batch(h, NULL, 0, 1, &r));
    CHECK_INT_EQ(r.n_joined, 1);
    CHECK_INT_EQ(r.n_unicast, 4);
    lkh_hybrid_result_clear(&r);
    CHECK_INT_EQ(lkh_hybrid_batch(h, &gone, 1, 0, &r), CK_ERR_NOTFOUND);
    CHECK_INT_EQ(lkh_hybrid_batch(h, NULL, 0, 9, &r), CK_ERR_FULL);

    /* EK */
    CHECK_OK(lkh_ek_new(10, &ek));
    if (ek != NULL) {
        CHECK_OK(lkh_hybrid_batch(ek, NULL, 0, 10, &r));
        lkh_hybrid_result_clear(&r);
        CHECK_OK(lkh_hybrid_batch(ek, &gone, 1, 0, &r));
        CHECK_INT_EQ(r.n_unicast, 9);
        CHECK_INT_EQ(r.multicast, 0);
        CHECK_INT_EQ(lkh_tree_height(lkh_hybrid_tree(ek)), 1);
        lkh_hybrid_result_clear(&r);
    }
out:
    for (int i = 0; i < 10; i++)
        lkh_member_clear(&m[i]);
    lkh_hybrid_free(h);
    lkh_hybrid_free(ek);
    lkh_hybrid_free(NULL);
    lkh_signer_free(s);
}

/* A hybrid saved (tree rows, cluster places, member places) restores to the same group: same
 * group key, same paths for every member; inconsistent member rows are refused. */
static void
test_hybrid_restore(void)
{
    struct lkh_hybrid *h = NULL, *r = NULL;
    struct lkh_hybrid_result res;
    struct lkh_node_state *rows = NULL;
    struct lkh_member_place *cl = NULL, *mem = NULL, *bad = NULL;
    uint32_t *dirty = NULL, leave[3] = {2, 9, 10};
    size_t n_dirty = 0, n_cl = 0, n_mem = 0;
    uint8_t k1[LKH_KEY_LEN], k2[LKH_KEY_LEN];
    uint32_t v1 = 0, v2 = 0;

    CHECK_OK(lkh_hybrid_new(3, 4, 40, &h));
    if (h == NULL)
        return;
    CHECK_OK(lkh_hybrid_batch(h, NULL, 0, 23, &res));
    lkh_hybrid_result_clear(&res);
    CHECK_OK(lkh_hybrid_batch(h, leave, 3, 2, &res));
    lkh_hybrid_result_clear(&res);
    CHECK_OK(lkh_tree_dirty(lkh_hybrid_tree(h), &dirty, &n_dirty));
    rows = calloc(n_dirty + 1, sizeof(*rows));
    if (rows == NULL)
        abort();
    for (size_t i = 0; i < n_dirty; i++)
        CHECK_OK(lkh_tree_node_get(lkh_hybrid_tree(h), dirty[i], &rows[i]));
    lkh_hybrid_clear_dirty(h);
    CHECK_OK(lkh_tree_members_list(lkh_hybrid_tree(h), &cl, &n_cl));
    CHECK_OK(lkh_hybrid_members_list(h, &mem, &n_mem));
    CHECK_INT_EQ(n_mem, 22);
    CHECK_INT_EQ(n_cl, 6);
    CHECK_OK(lkh_hybrid_restore(3, 4, 40, rows, n_dirty, cl, n_cl, mem, n_mem, &r));
    if (r == NULL)
        goto out;
    CHECK_INT_EQ(lkh_hybrid_members(r), 22);
    CHECK_OK(lkh_group_key(lkh_hybrid_tree(h), k1, &v1));
    CHECK_OK(lkh_group_key(lkh_hybrid_tree(r), k2, &v2));
    CHECK(v1 == v2 && memcmp(k1, k2, LKH_KEY_LEN) == 0);
    for (size_t i = 0; i < n_mem; i++) {
        struct lkh_member a, b;
        CHECK_OK(lkh_hybrid_member_export(h, mem[i].member_id, &a));
        CHECK_OK(lkh_hybrid_member_export(r, mem[i].member_id, &b));
        CHECK(memcmp(&a, &b, sizeof(a)) == 0);
        lkh_member_clear(&a);
        lkh_member_clear(&b);
    }
    /* the restored group goes on: a revoke REPLACEs the victim's cluster */
    CHECK_OK(lkh_hybrid_batch(r, &mem[0].member_id, 1, 0, &res));
    CHECK(res.n_unicast >= 1 && res.n_unicast <= 3 && res.multicast == 1);
    lkh_hybrid_result_clear(&res);

    bad = calloc(n_mem + 2, sizeof(*bad));
    if (bad == NULL)
        abort();
    {
        struct lkh_hybrid *x = (struct lkh_hybrid *)&x;
        memcpy(bad, mem, n_mem * sizeof(*bad));
        bad[0].leaf = 1; /* no cluster there */
        CHECK_INT_EQ(lkh_hybrid_restore(3, 4, 40, rows, n_dirty, cl, n_cl, bad, n_mem, &x),
                     CK_ERR_DECODE);
        CHECK(x == NULL);
        memcpy(bad, mem, n_mem * sizeof(*bad));
        bad[1].member_id = bad[0].member_id; /* one ID twice */
        CHECK_INT_EQ(lkh_hybrid_restore(3, 4, 40, rows, n_dirty, cl, n_cl, bad, n_mem, &x),
                     CK_ERR_DECODE);
        memcpy(bad, mem, n_mem * sizeof(*bad));
        bad[n_mem] = bad[0];
        bad[n_mem].member_id = 39; /* a fifth member in a cluster of four, or the cluster full */
        for (size_t i = 1; i < n_mem; i++)
            if (bad[i].leaf == bad[0].leaf)
                bad[n_mem].leaf = bad[0].leaf;
        {
            size_t in_cluster = 0;
            for (size_t i = 0; i < n_mem; i++)
                in_cluster += bad[i].leaf == bad[0].leaf;
            if (in_cluster == 4)
                CHECK_INT_EQ(lkh_hybrid_restore(3, 4, 40, rows, n_dirty, cl, n_cl, bad, n_mem + 1,
                                                &x),
                             CK_ERR_DECODE);
        }
        /* a cluster with no member left */
        {
            size_t k = 0;
            for (size_t i = 0; i < n_mem; i++)
                if (mem[i].leaf != mem[0].leaf)
                    bad[k++] = mem[i];
            CHECK_INT_EQ(lkh_hybrid_restore(3, 4, 40, rows, n_dirty, cl, n_cl, bad, k, &x),
                         CK_ERR_DECODE);
        }
    }
out:
    free(bad);
    free(dirty);
    free(rows);
    free(cl);
    free(mem);
    lkh_hybrid_free(h);
    lkh_hybrid_free(r);
}

CK_TEST_MAIN("lkh_rekey", CK_TEST_CASE(test_signer), CK_TEST_CASE(test_sa_key_and_check),
             CK_TEST_CASE(test_round_trip), CK_TEST_CASE(test_every_member_one_datagram),
             CK_TEST_CASE(test_rejected), CK_TEST_CASE(test_missed_epoch),
             CK_TEST_CASE(test_pack_edges), CK_TEST_CASE(test_million_sizes),
             CK_TEST_CASE(test_hybrid_and_ek), CK_TEST_CASE(test_hybrid_restore))
