/* Group rekey datagrams (issue 11): what the KSV multicasts after an LKH batch, and what a
 * member checks before it touches a key.
 *
 * - A batch's wraps (lkh.h) are packed into datagrams of at most max_dgram bytes (default
 *   1,400) so that every member finds ALL the wraps it needs in exactly ONE datagram (R-BFA
 *   style: wraps are grouped by subtree, and a wrap needed by members of several datagrams is
 *   repeated). Each datagram names the leaf range it serves; a member opens only the datagram
 *   whose range holds its leaf, and if that datagram rekeys a node of its path without a wrap it
 *   can open, the member was removed.
 * - One Ed25519 signature per batch: over "cablekey ksv rekey v1" || group_id || epoch ||
 *   root_version || n_datagrams || the root of a SHA-256 hash tree whose leaves are the
 *   datagrams' signed parts. Every datagram carries the signature and its own authentication
 *   path, so each one verifies alone (a member needs one datagram, whichever arrives).
 * - The epoch is the group's 64-bit monotonic counter (persisted by the KSV before sending);
 *   members reject an epoch <= the last one they applied (the caller keeps that number).
 * - A revoke of 1 of 10^6 at degree 4 (39 wraps) fits one datagram of <= 1,400 bytes, signed.
 * The layout is in docs/PROTOCOL.md "Group rekey datagram"; it starts with the KSV envelope
 * header of ksv_wire.h (kind REKEY).
 *
 * Errors: CK_ERR_DECODE (malformed, truncated, trailing bytes), CK_ERR_INTEGRITY (signature or
 * authentication path does not verify), CK_ERR_LIMIT, CK_ERR_INVAL, CK_ERR_CRYPTO. */
#ifndef CABLEKEY_LKH_REKEY_H
#define CABLEKEY_LKH_REKEY_H

#include <stddef.h>
#include <stdint.h>

#include "cablekey/lkh.h"

#define LKH_REKEY_DEFAULT_DGRAM 1400u
#define LKH_REKEY_MIN_DGRAM 512u
#define LKH_REKEY_MAX_DGRAM 65000u
#define LKH_REKEY_MAX_DGRAMS 65535u
#define LKH_ED25519_PUB_LEN 32u
#define LKH_ED25519_SIG_LEN 64u
#define LKH_REKEY_F_ACK_REQD 0x01u /* members acknowledge (RFC 8263 style) */

/* Layout sizes (docs/PROTOCOL.md "Group rekey datagram"): a 42-byte header (the 8-byte KSV
 * envelope included), per rekeyed node 10 bytes (id, new version, bitmap of the wrapped
 * children), per wrap 28 bytes (child version with a "rekeyed too" top bit, RFC 3394 wrap), then
 * the 64-byte signature, a 1-byte path length and 32 bytes per hash of the authentication path.
 * Versions on the wire are below 2^31 (lkh_rekey_pack refuses others: CK_ERR_INVAL). */
#define LKH_REKEY_HDR_LEN 42u
#define LKH_REKEY_NODE_LEN 10u
#define LKH_REKEY_WRAP_LEN 28u
#define LKH_REKEY_MAX_PATH 16u    /* ceil(log2(LKH_REKEY_MAX_DGRAMS)) */

/* The KSV's signing key (Ed25519, an EVP_PKEY inside). */
struct lkh_signer;
int lkh_signer_generate(struct lkh_signer **out);
/* From/to a raw 32-byte private key (the store keeps it encrypted under its master key). */
int lkh_signer_from_raw(const uint8_t priv[32], struct lkh_signer **out);
int lkh_signer_raw(const struct lkh_signer *s, uint8_t priv[32]);
int lkh_signer_public(const struct lkh_signer *s, uint8_t pub[LKH_ED25519_PUB_LEN]);
void lkh_signer_free(struct lkh_signer *s);

struct lkh_rekey_params {
    uint32_t group_id;
    uint64_t epoch;
    uint32_t root_version;  /* the group key's version after the batch */
    uint8_t flags;          /* LKH_REKEY_F_* */
    uint32_t degree, height;/* of the tree (to group wraps by subtree) */
    size_t max_dgram;       /* 0: LKH_REKEY_DEFAULT_DGRAM */
};

struct lkh_rekey_out {
    size_t n;
    uint8_t **dgrams;       /* each malloc'd */
    size_t *lens;
};

/* Packs and signs one batch. A batch without wraps (only joins, or an empty group) gives one
 * datagram with no wraps, still signed (it announces the new epoch and root version). */
int lkh_rekey_pack(const struct lkh_rekey_params *p, const struct lkh_wrap *wraps, size_t n_wraps,
                   const struct lkh_signer *signer, struct lkh_rekey_out *out);
void lkh_rekey_out_clear(struct lkh_rekey_out *out);

/* Member side: a parsed datagram (points into nothing; wraps are copied). */
struct lkh_rekey_view {
    uint32_t group_id;
    uint64_t epoch;
    uint32_t root_version;
    uint8_t flags;
    uint16_t n_dgrams, index;
    uint32_t leaf_lo, leaf_hi; /* leaves (heap node ids) this datagram serves, inclusive */
    struct lkh_wrap *wraps;    /* n_wraps, in lkh_member_apply order */
    size_t n_wraps;
    uint32_t *nodes;           /* n_nodes: every node the datagram says the batch rekeyed,
                                * descending: its entries and the children flagged in their
                                * parent's wrap (PROTOCOL.md: a member below one of them without
                                * a wrap for itself was removed) */
    size_t n_nodes;
};

/* Parses strictly (no signature check). */
int lkh_rekey_parse(const uint8_t *buf, size_t len, struct lkh_rekey_view *out);
/* Verifies the datagram's authentication path and signature under the KSV's public key. */
int lkh_rekey_verify(const uint8_t *buf, size_t len, const uint8_t pub[LKH_ED25519_PUB_LEN]);
void lkh_rekey_view_clear(struct lkh_rekey_view *v);

/* Member side in one call: parse, then (cheapest checks first) the group, the leaf range, the
 * epoch against *last_epoch, the signature, the tree shape against m, and lkh_member_apply. On
 * success *last_epoch = the datagram's epoch, *root_version = the group key's version (then
 * lkh_member_group_key). Errors, the member left unchanged:
 *   CK_ERR_NOTFOUND   another group's datagram, or one serving other leaves: ignore it;
 *   CK_ERR_REPLAY     epoch <= *last_epoch;
 *   CK_ERR_DECODE     malformed;  CK_ERR_INTEGRITY  signature or authentication path;
 *   CK_ERR_PERM       the member was removed (its path rekeyed without a wrap for it);
 *   CK_ERR_EXPIRED    the member's keys are too old for this batch (it missed an epoch that
 *                     changed its path): it asks for unicast recovery (RECOVER);
 *   CK_ERR_PROTO      the datagram's tree shape is not the member's. */
int lkh_rekey_member_apply(struct lkh_member *m, uint32_t group_id,
                           const uint8_t pub[LKH_ED25519_PUB_LEN], uint64_t *last_epoch,
                           const uint8_t *buf, size_t len, uint32_t *root_version);

/* The group data SA's keys at a root version: HKDF-SHA-256(group key, salt "cablekey ksv group
 * sa", info be32(group_id) || be32(version)), out_len bytes (<= 64). Both the KSV and members
 * derive it, so a member's group SA changes exactly when the group key does. */
int lkh_group_sa_key(const uint8_t group_key[LKH_KEY_LEN], uint32_t group_id, uint32_t version,
                     uint8_t *out, size_t out_len);
/* An 8-byte check value of a group key for logs and tests ("key-check"), never the key:
 * first 8 bytes of HMAC-SHA-256(group key, "cablekey ksv key check" || be32(version)). */
int lkh_group_key_check(const uint8_t group_key[LKH_KEY_LEN], uint32_t version, uint8_t out[8]);

/* ---- explicit keying (EK) and hybrid EK+LKH (docs/PROTOCOL.md "Group rekey datagram") -------
 * EK (keying 1, the seed's explicit keying): every change gives the remaining members a fresh
 * group key, each by its own sealed unicast (ksv_wire.h SEALED REGISTER, n_keys = 1): n - 1
 * messages, no signature (each is sealed for one member), no multicast.
 * Hybrid (keying 2, the seed's "future work"): members are grouped in clusters of at most
 * `cluster` members (filled in order); the LKH tree's leaves are clusters and a cluster's leaf
 * key is shared by its members, so a member's path is its cluster's. A batch:
 *   - a cluster that loses a member but keeps others, or receives a joiner, is REPLACEd (lkh_batch
 *     gives its leaf a fresh key and rekeys every ancestor by the marking algorithm): its
 *     remaining members (joiners included) get their new path by sealed unicast (EK inside the
 *     cluster, no signature);
 *   - a cluster left empty is pruned (an LKH leave); a joiner with no cluster that has room opens
 *     a new cluster (an LKH+ join: no multicast);
 *   - everyone else takes the new keys from the signed LKH multicast (lkh_rekey_pack of the
 *     batch's wraps), which is skipped when no member needs it (every remaining member got a
 *     unicast).
 * With cluster = 1 this is LKH (plus the joiner's unicast); with cluster >= the group size it is
 * EK (one cluster: the tree is a root over one leaf, nothing is multicast); in between, a revoke
 * costs cluster - 1 sealed unicasts and one signed multicast of about degree * log_degree(n /
 * cluster) wraps. EK is implemented as exactly that: lkh_ek_new = a hybrid with one cluster.
 * Member IDs are the hybrid's own (stable, < max_members); lkh_hybrid_member_export gives the
 * cluster's path with the member's ID. */
struct lkh_hybrid;

struct lkh_hybrid_result {
    struct lkh_batch_result lkh; /* the tree's batch: wraps for the multicast (over clusters) */
    int multicast;               /* 1: lkh_rekey_pack(lkh.wraps) goes to the group */
    uint32_t *unicast;           /* members that get their new path by sealed unicast */
    size_t n_unicast;
    uint32_t *joined;            /* member IDs given to the batch's joiners */
    size_t n_joined;
};

int lkh_hybrid_new(uint32_t degree, uint32_t cluster, uint32_t max_members,
                   struct lkh_hybrid **out);
/* EK: a hybrid with one cluster of max_members. */
int lkh_ek_new(uint32_t max_members, struct lkh_hybrid **out);
void lkh_hybrid_free(struct lkh_hybrid *h);
/* Removes the n_leave members (no duplicates) and admits n_join; same error rules as
 * lkh_batch (the state is unchanged on a bad argument). */
int lkh_hybrid_batch(struct lkh_hybrid *h, const uint32_t *leave, size_t n_leave, size_t n_join,
                     struct lkh_hybrid_result *res);
void lkh_hybrid_result_clear(struct lkh_hybrid_result *res);
int lkh_hybrid_member_export(const struct lkh_hybrid *h, uint32_t member_id,
                             struct lkh_member *out);
/* The tree over clusters (group key, persistence, lkh_rekey_params' degree and height). */
const struct lkh_tree *lkh_hybrid_tree(const struct lkh_hybrid *h);
uint32_t lkh_hybrid_members(const struct lkh_hybrid *h);

/* Persistence: the tree's rows (lkh.h: lkh_tree_dirty/lkh_tree_node_get on lkh_hybrid_tree,
 * then lkh_hybrid_clear_dirty), the clusters' places (lkh_tree_members_list of the tree: a
 * cluster's tree member ID and leaf) and every member's place (its hybrid ID and its cluster's
 * leaf: the store's member rows). Restore checks, besides lkh_tree_restore's rules, that every
 * member's leaf is a cluster's, member IDs are in range and used once, no cluster holds more
 * than `cluster` members and none is empty; CK_ERR_DECODE otherwise. Clusters are renumbered in
 * leaf order (only the joiners' placement depends on the numbering). */
void lkh_hybrid_clear_dirty(struct lkh_hybrid *h);
int lkh_hybrid_members_list(const struct lkh_hybrid *h, struct lkh_member_place **out,
                            size_t *n);
int lkh_hybrid_restore(uint32_t degree, uint32_t cluster, uint32_t max_members,
                       const struct lkh_node_state *nodes, size_t n_nodes,
                       const struct lkh_member_place *clusters, size_t n_clusters,
                       const struct lkh_member_place *members, size_t n_members,
                       struct lkh_hybrid **out);

#endif
