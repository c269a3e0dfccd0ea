/* Logical Key Hierarchy (LKH) core for the keying server (issue 11): a pure library, no I/O, no
 * store. The KSV persists the tree and signs/packs/sends what this module produces.
 *
 * Definitions.
 * - The tree has degree d (2..16, default 4) and a fixed height h: the smallest h with
 *   d^h >= max_members given at creation. Nodes are numbered heap-style (root 0, children of i
 *   are d*i+1 .. d*i+d); leaves are at depth h, and only the first max_members of the d^h leaf
 *   positions exist (the arrays end at the last one). All state lives in flat arrays indexed by
 *   node id (key 16 B, version 4 B, member count 4 B, flag 1 B) plus three 4-byte arrays per leaf
 *   slot (leaf -> member, member -> leaf, free IDs): about 46 B per member at 10^6, d = 4.
 *   The capacity is fixed at creation (growing means a new tree and re-registration).
 *   A node is EMPTY when no member is below it; an empty node has no key.
 * - Member IDs are allocated by the tree (from a free list, < the number of leaf slots), stable
 *   while the member is in the group, and handed out again only after the batch that removed the
 *   member (within the same batch only when the tree is nearly full).
 * - Every node key is an AES-128 key from the OpenSSL CSPRNG, with a 32-bit version that grows
 *   by one each time the key changes (fresh or hashed forward). The group key is the root key.
 *   Versions are not checked for wrap-around at 2^32 (a root version moves once per join and
 *   per batch); the KSV must re-create the group long before.
 * - Join (LKH+): the joiner takes the leftmost empty leaf and gets a fresh leaf key; every
 *   non-empty ancestor advances its key by a one-way function
 *       K(v+1) = first 16 bytes of HMAC-SHA-256(K(v), "cablekey lkh+ join" || be32(node) || be32(v+1))
 *   and empty ancestors get fresh keys. Nothing is multicast: the joiner gets its whole path by
 *   unicast (lkh_member_export), the others hash forward lazily when they meet a higher version
 *   (in a wrap, or for the group key, in the data SA's key version). Members never need to know
 *   where someone joined.
 * - Batch (Li, Yang, Gouda, Lam, SIGCOMM 2001, marking algorithm): the departed leaves of a batch
 *   are first given to the batch's joiners (REPLACE leaves, fresh leaf key); the departed leaves
 *   left over are pruned (their subtree counts drop, empty nodes lose their key); the joiners
 *   left over take the leftmost empty leaves (NEW). Every non-empty ancestor of a changed leaf is
 *   marked: REPLACE if a departed member knew its key (a child REPLACE or pruned below it),
 *   UPDATE otherwise (only joins below it). Every marked node gets a fresh random key and version+1,
 *   and one wrap per non-empty child: the new key encrypted under the child's current key (the
 *   child's new key if the child was marked too). Wraps are emitted bottom-up (node id
 *   descending, children ascending), so a member walks its path from the leaf in one pass.
 * - Wrap cost: one revoke of a leaf whose subtrees are full costs (d-1) + d*(h-1) = d*h - 1 wraps
 *   (39 for d = 4 and 10^6 members, h = 10; fewer where the tree is not full); L departures cost
 *   about L*d*log_d(n/L) (1,000 of 10^6 at d = 4: about 18,200).
 * - A member that missed a batch may still open a later one (only the keys that changed matter);
 *   when it cannot, lkh_member_apply fails (CK_ERR_INTEGRITY) and it needs unicast recovery.
 * - Wrap cipher: AES key wrap (RFC 3394; OpenSSL's CRYPTO_128_wrap over EVP AES-128-ECB, so
 *   AES-NI is used: 0.4 us a wrap where OpenSSL 3.0's id-aes128-wrap takes 1.6, same bytes; see
 *   lib/lkh/lkh.c): 24 bytes per 16-byte key against 44 for
 *   AES-GCM with nonce and tag, so a revoke of 1 in 10^6 (39 wraps) fits one 1,400-byte datagram
 *   with its node ids; it is deterministic and needs no nonce (every wrapped key is random and
 *   used once), and its integrity check tells a member that it holds the wrong key. The wrap does
 *   not bind node/version: the KSV's signature over the batch does.
 */
#ifndef CABLEKEY_LKH_H
#define CABLEKEY_LKH_H

#include <stddef.h>
#include <stdint.h>

#define LKH_KEY_LEN 16
#define LKH_WRAP_LEN 24               /* RFC 3394 output for a 16-byte key */
#define LKH_DEFAULT_DEGREE 4
#define LKH_MAX_DEGREE 16
#define LKH_MAX_HEIGHT 32
#define LKH_MAX_MEMBERS (1u << 26)    /* 67 M leaf slots: the 10^7 smoke run fits */
#define LKH_MAX_ADVANCE 65536u        /* most hash-forward steps a member accepts in one go */

struct lkh_tree;

/* One wrap: new key of `node` (version new_version) encrypted under the key of its child `child`
 * at version child_version. */
struct lkh_wrap {
    uint32_t node;
    uint32_t child;
    uint32_t child_version;
    uint32_t new_version;
    uint8_t wrapped[LKH_WRAP_LEN];
    uint8_t child_rekeyed; /* the batch rekeyed the (internal) child too: set by lkh_batch and
                            * lkh_rekey_parse, derived again by lkh_rekey_pack */
};

struct lkh_batch_result {
    struct lkh_wrap *wraps;   /* n_wraps, bottom-up; free with lkh_batch_result_clear */
    size_t n_wraps;
    uint32_t *joined;         /* n_joined member IDs given to the batch's joiners */
    size_t n_joined;
    size_t n_replace;         /* marked nodes (internal and leaves) by kind */
    size_t n_update;
    size_t n_pruned;          /* nodes that became empty */
};

/* What a member holds: its leaf and the keys of its path, path[0] = leaf ... path[height] = root.
 * Sent by unicast at registration; wipe with lkh_member_clear. */
struct lkh_member {
    uint32_t member_id;
    uint32_t degree;
    uint32_t height;
    struct {
        uint32_t node;
        uint32_t version;
        uint8_t key[LKH_KEY_LEN];
    } path[LKH_MAX_HEIGHT + 1];
};

/* A tree of the given degree (0 = LKH_DEFAULT_DEGREE) with room for max_members members. */
int lkh_tree_new(uint32_t degree, uint32_t max_members, struct lkh_tree **out);
void lkh_tree_free(struct lkh_tree *t);

uint32_t lkh_tree_degree(const struct lkh_tree *t);
uint32_t lkh_tree_height(const struct lkh_tree *t);
uint32_t lkh_tree_members(const struct lkh_tree *t);
/* Bytes allocated for the tree's arrays. */
size_t lkh_tree_memory(const struct lkh_tree *t);

/* Initial population of an empty tree: members 0..n-1 on leaves 0..n-1, every non-empty node a
 * fresh key (no member holds any key yet, so nothing is hashed or wrapped). CK_ERR_EXISTS if the
 * tree has members. */
int lkh_tree_populate(struct lkh_tree *t, uint32_t n);

/* LKH+ join: allocates a member ID and a leaf, no multicast. CK_ERR_FULL when the tree is full. */
int lkh_join(struct lkh_tree *t, uint32_t *member_id);

/* The path keys of a member, for the unicast to it (after lkh_join or a batch that admitted it). */
int lkh_member_export(const struct lkh_tree *t, uint32_t member_id, struct lkh_member *out);

/* Group key (root key) and its version. CK_ERR_NOTFOUND if the group is empty. */
int lkh_group_key(const struct lkh_tree *t, uint8_t key[LKH_KEY_LEN], uint32_t *version);

/* One batch: removes the n_leave members (IDs, no duplicates) and admits n_join new ones, then
 * rekeys by the marking algorithm. On error the tree is unchanged (arguments are checked before
 * anything is modified) except for a crypto failure mid-batch, which leaves the tree consistent
 * but its keys must be considered unsent (the caller rekeys again). */
int lkh_batch(struct lkh_tree *t, const uint32_t *leave, size_t n_leave, size_t n_join,
              struct lkh_batch_result *res);
void lkh_batch_result_clear(struct lkh_batch_result *res);

/* Member side: applies a batch's wraps to the member's path keys. Returns CK_ERR_PERM if the
 * batch rekeys the member's path without a wrap for it (it was removed): a node of its path has
 * wraps but none for its child, its leaf was rekeyed, or a wrap flags its child as rekeyed while
 * the list has no wrap of that child for the member (the wraps can be one rekey datagram's: the
 * datagram holds every wrap a member of its leaf range needs); CK_ERR_INTEGRITY if a wrap does
 * not open under its key (the member missed a batch), CK_ERR_PROTO on an inconsistent batch. The
 * member is left unchanged on any error. A batch that does not touch the member's path is a
 * no-op. */
int lkh_member_apply(struct lkh_member *m, const struct lkh_wrap *wraps, size_t n_wraps);

/* Member side: the group key at `version` (>= the member's), hashing forward over joins. */
int lkh_member_group_key(struct lkh_member *m, uint32_t version, uint8_t key[LKH_KEY_LEN]);

void lkh_member_clear(struct lkh_member *m);

/* ---- persistence (issue 11 contract; the KSV store keeps these rows) --------------------- */

/* One node's state: an empty node has present = 0 (no key). */
struct lkh_node_state {
    uint32_t node;
    uint32_t version;
    uint8_t present;
    uint8_t key[LKH_KEY_LEN];
};

/* One member's place: its stable ID and its leaf (heap node id). */
struct lkh_member_place {
    uint32_t member_id;
    uint32_t leaf;
};

/* Nodes whose key or version changed since the last lkh_tree_clear_dirty (a bitmap, one bit a
 * node): *nodes is malloc'd (free()), ascending. Joins, batches and populate mark nodes, including
 * nodes a batch emptied (their row becomes present = 0, version kept): saving lkh_tree_node_get of
 * every dirty node after each change keeps a store's rows exactly the tree's. */
int lkh_tree_dirty(const struct lkh_tree *t, uint32_t **nodes, size_t *n);
void lkh_tree_clear_dirty(struct lkh_tree *t);
int lkh_tree_node_get(const struct lkh_tree *t, uint32_t node, struct lkh_node_state *out);
int lkh_member_leaf(const struct lkh_tree *t, uint32_t member_id, uint32_t *leaf);
/* Every member's place (for a full save); *out malloc'd. */
int lkh_tree_members_list(const struct lkh_tree *t, struct lkh_member_place **out, size_t *n);
/* Rebuilds a tree from saved rows (the nodes not listed are empty, version 0). Checks consistency:
 * node ids in range and not repeated, a present node has a version >= 1, every member ID and leaf
 * in range and used once, and exactly the nodes with a member below them have keys (a key on an
 * empty node is a stale row, a missing one a lost row); counts are recomputed; CK_ERR_DECODE
 * otherwise (CK_ERR_INVAL/LIMIT for a bad degree or capacity). Free member IDs are handed out
 * lowest first afterwards. The dirty set of the result is empty. */
int lkh_tree_restore(uint32_t degree, uint32_t max_members, const struct lkh_node_state *nodes,
                     size_t n_nodes, const struct lkh_member_place *members, size_t n_members,
                     struct lkh_tree **out);

#endif
