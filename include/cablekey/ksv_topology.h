/* The keying server's secure topology (issue 11, seed 001 section 3.2): policy groups, links
 * between nodes, multicast groups, and which KSV each node may register with. The operator writes
 * it once; the KSV derives from it the exact SAs each node receives and, on reload, what changed.
 *
 * Syntax (one statement a line; '#' starts a comment anywhere; keywords and policy keys and
 * values are case-insensitive, names are not):
 *
 *   ksv NAME [ADDRESS]                     a keying server nodes may be bound to
 *   node NAME ADDRESS [principal PRINC] [ksv KSV[,KSV...]]
 *   policy NAME {                          a policy group (seed: TRANS-TYPE, LIFE-SEC, LIFE-KBYTE)
 *       TRANS-TYPE = ESP | AH              required
 *       LIFE-SEC   = SECONDS               required, 10 .. 31536000
 *       LIFE-KBYTE = KBYTES                0 (default: no volume limit) .. 4294967295
 *       ENC-ALG    = aes-128-gcm | aes-256-gcm | chacha20-poly1305 | aes-128-cbc |
 *                    aes-256-cbc | null    ESP only; default aes-256-gcm
 *       AUTH-ALG   = hmac-sha256-128 | hmac-sha384-192 | hmac-sha512-256 | hmac-sha1-96 | none
 *                    default: none for an AEAD cipher, hmac-sha256-128 otherwise (and for AH);
 *                    an AEAD cipher takes none, every other ESP cipher and AH need one
 *       MODE       = transport | tunnel    default transport
 *       ACK-REQD   = yes | no              REGISTERs under this policy ask for an ACK
 *   }
 *   A => B POLICY                          an outbound SA from A to B (B receives it inbound)
 *   A <-> B POLICY                         both directions ("↔", U+2194, is accepted too)
 *   group NAME {                           a multicast group
 *       address = MULTICAST-ADDRESS        required (224.0.0.0/4 or ff00::/8)
 *       policy  = POLICY                   required
 *       members = NODE [NODE...]           required; may be repeated, each adds members
 *       degree  = 2 .. 16                  LKH tree degree, default 4 (LKH_MAX_DEGREE)
 *       keying  = lkh | ek | hybrid        default lkh
 *   }
 *
 * Tokens are separated by blanks ("a => b p", not "a=>b p"); inside a block, "KEY=VALUE" needs
 * none. Nodes, policies, groups and KSVs may be referenced before the line that declares them.
 * Node names are [A-Za-z0-9][A-Za-z0-9._-]*, at most 63 bytes (the same for every name).
 *
 * Errors: every problem found is reported as "FILE:LINE: message" (the parser does not stop at
 * the first one, so --check can list them all): syntax, unknown node/policy/group/KSV, a
 * directed link defined twice (A => B twice, or A => B and A <-> B, with the line of the first),
 * a link from a node to itself or between an IPv4 and an IPv6 node, a node in two groups of one
 * address, a node listed twice in one group, a group without members, two nodes with one
 * address or principal, a name declared twice, bad or missing lifetimes, a transform that makes
 * no sense (AH with a cipher, AEAD with AUTH-ALG, CBC without AUTH-ALG). The error on the
 * earliest line is returned (CK_ERR_CONFIG; CK_ERR_LIMIT when a limit below is hit, which stops
 * the parse and is the one returned) with its message in ck_error_context().
 *
 * A group is one SA shared by its members (seed 3.5: the group SPI is both the sending and the
 * receiving SPI), so the expansion lists it as a membership, not as SAs; group->index is the
 * group's position in the file, the leading "X" of the seed's member IDs (3.6); it moves when a
 * group is inserted above, so IDs that must survive a reload belong in the store, by name.
 *
 * Expansion: ck_ksvtopo_node_view gives a node's SAs (one per direction and peer), sorted by peer
 * name then direction (out before in), and its group memberships sorted by group name: the order
 * depends on names only, never on the order of the file, so two files that say the same thing
 * expand identically and a reload that only reorders lines pushes nothing. */
#ifndef CABLEKEY_KSV_TOPOLOGY_H
#define CABLEKEY_KSV_TOPOLOGY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CK_KSVTOPO_MAX_FILE (4 * 1024 * 1024)
#define CK_KSVTOPO_MAX_LINE 4096
#define CK_KSVTOPO_MAX_NAME 63
#define CK_KSVTOPO_MAX_NODES 65536
#define CK_KSVTOPO_MAX_LINKS 262144    /* directed pairs: A <-> B counts two */
#define CK_KSVTOPO_MAX_POLICIES 256
#define CK_KSVTOPO_MAX_GROUPS 1024
#define CK_KSVTOPO_MAX_MEMBERSHIPS 262144 /* node-in-group entries, all groups together */
#define CK_KSVTOPO_MAX_KSVS 64
#define CK_KSVTOPO_MAX_NODE_KSVS 8
#define CK_KSVTOPO_MAX_ERRORS 32        /* kept in a report; more are counted */
#define CK_KSVTOPO_LIFE_SEC_MIN 10
#define CK_KSVTOPO_LIFE_SEC_MAX 31536000
#define CK_KSVTOPO_DEFAULT_DEGREE 4

enum ck_ksvtopo_trans { CK_KSVTOPO_AH = 1, CK_KSVTOPO_ESP = 2 };
enum ck_ksvtopo_enc {
    CK_KSVTOPO_ENC_NONE = 0, /* AH */
    CK_KSVTOPO_ENC_AES128_GCM,
    CK_KSVTOPO_ENC_AES256_GCM,
    CK_KSVTOPO_ENC_CHACHA20_POLY1305,
    CK_KSVTOPO_ENC_AES128_CBC,
    CK_KSVTOPO_ENC_AES256_CBC,
    CK_KSVTOPO_ENC_NULL,     /* ESP with integrity only */
};
enum ck_ksvtopo_auth {
    CK_KSVTOPO_AUTH_NONE = 0,
    CK_KSVTOPO_AUTH_HMAC_SHA256_128,
    CK_KSVTOPO_AUTH_HMAC_SHA384_192,
    CK_KSVTOPO_AUTH_HMAC_SHA512_256,
    CK_KSVTOPO_AUTH_HMAC_SHA1_96,  /* RFC 2404; what cablekey's userspace ESP (lib/esp) runs */
};
enum ck_ksvtopo_mode { CK_KSVTOPO_TRANSPORT = 0, CK_KSVTOPO_TUNNEL = 1 };
enum ck_ksvtopo_keying { CK_KSVTOPO_LKH = 0, CK_KSVTOPO_EK = 1, CK_KSVTOPO_HYBRID = 2 };
enum ck_ksvtopo_dir { CK_KSVTOPO_OUT = 0, CK_KSVTOPO_IN = 1 };

/* What an SA carries on the wire (the REGISTER's transform and lifetimes). */
struct ck_ksvtopo_transform {
    enum ck_ksvtopo_trans trans;
    enum ck_ksvtopo_enc enc;
    enum ck_ksvtopo_auth auth;
    enum ck_ksvtopo_mode mode;
    uint32_t life_sec;
    uint32_t life_kbyte;       /* 0: no volume limit */
    bool ack_reqd;
};

struct ck_ksvtopo_policy {
    const char *name;
    int line;
    struct ck_ksvtopo_transform xf;
};

struct ck_ksvtopo_node {
    const char *name;
    const char *address;       /* canonical text (inet_ntop) */
    const char *principal;     /* NULL if not given */
    int line;
    size_t n_ksv;
    const char *ksv[CK_KSVTOPO_MAX_NODE_KSVS]; /* empty: any KSV serving this file */
};

struct ck_ksvtopo_group {
    const char *name;
    const char *address;       /* canonical multicast address */
    const struct ck_ksvtopo_policy *policy;
    unsigned index;            /* position in the file: the "X" of the seed's member IDs */
    unsigned degree;
    enum ck_ksvtopo_keying keying;
    size_t n_members;
    int line;
};

/* One SA a node receives: the direction is the node's own (OUT: it sends to peer). */
struct ck_ksvtopo_sa {
    enum ck_ksvtopo_dir dir;
    const struct ck_ksvtopo_node *peer;
    const struct ck_ksvtopo_policy *policy;
    int line;                  /* the link statement */
};

struct ck_ksvtopo_membership {
    const struct ck_ksvtopo_group *group;
    int line;                  /* the members line that names the node */
};

/* A node's share of the topology; points into the topology (valid as long as it is). */
struct ck_ksvtopo_view {
    const struct ck_ksvtopo_node *node;
    size_t n_sa;
    const struct ck_ksvtopo_sa *sa;
    size_t n_groups;
    const struct ck_ksvtopo_membership *groups;
};

struct ck_ksvtopo_error {
    int line;
    char msg[320];             /* "FILE:LINE: ..." */
};

/* Every error of a parse, sorted by line (then text). */
struct ck_ksvtopo_report {
    size_t n;                  /* messages kept */
    size_t dropped;            /* errors beyond CK_KSVTOPO_MAX_ERRORS */
    struct ck_ksvtopo_error err[CK_KSVTOPO_MAX_ERRORS];
};

struct ck_ksvtopo;

/* Parses len bytes of text (NUL bytes are refused); name labels messages (NULL: "<string>").
 * rep (may be NULL) receives every error found. On error *out is NULL. */
int ck_ksvtopo_parse(const char *text, size_t len, const char *name, struct ck_ksvtopo **out,
                     struct ck_ksvtopo_report *rep);
/* Reads a file (at most CK_KSVTOPO_MAX_FILE bytes) and parses it. */
int ck_ksvtopo_load(const char *path, struct ck_ksvtopo **out, struct ck_ksvtopo_report *rep);
void ck_ksvtopo_free(struct ck_ksvtopo *t);

/* Nodes, policies and groups sorted by name. */
size_t ck_ksvtopo_n_nodes(const struct ck_ksvtopo *t);
const struct ck_ksvtopo_node *ck_ksvtopo_node_at(const struct ck_ksvtopo *t, size_t i);
const struct ck_ksvtopo_node *ck_ksvtopo_node_find(const struct ck_ksvtopo *t, const char *name);
/* By Kerberos principal (the parser refuses a principal given to two nodes); NULL if none. */
const struct ck_ksvtopo_node *ck_ksvtopo_node_by_principal(const struct ck_ksvtopo *t,
                                                           const char *principal);
const struct ck_ksvtopo_policy *ck_ksvtopo_policy_find(const struct ck_ksvtopo *t,
                                                       const char *name);
size_t ck_ksvtopo_n_groups(const struct ck_ksvtopo *t);
const struct ck_ksvtopo_group *ck_ksvtopo_group_at(const struct ck_ksvtopo *t, size_t i);
const struct ck_ksvtopo_group *ck_ksvtopo_group_find(const struct ck_ksvtopo *t, const char *name);
/* Member names of a group, sorted. */
size_t ck_ksvtopo_group_members(const struct ck_ksvtopo *t, const struct ck_ksvtopo_group *g,
                                const struct ck_ksvtopo_node **out, size_t max);

/* Whether node may register with the KSV named ksv: a node with a ksv list only with those, a
 * node without one with any KSV. An unknown node may not. */
bool ck_ksvtopo_may_register(const struct ck_ksvtopo *t, const char *node, const char *ksv);

/* The expansion: what node receives. CK_ERR_NOTFOUND for an unknown node. */
int ck_ksvtopo_node_view(const struct ck_ksvtopo *t, const char *node,
                         struct ck_ksvtopo_view *out);

/* True when two transforms put the same thing on the wire. */
bool ck_ksvtopo_transform_equal(const struct ck_ksvtopo_transform *a,
                                const struct ck_ksvtopo_transform *b);
/* Names for messages and logs ("ESP", "aes-256-gcm", "out"...). */
const char *ck_ksvtopo_trans_name(enum ck_ksvtopo_trans t);
const char *ck_ksvtopo_enc_name(enum ck_ksvtopo_enc e);
const char *ck_ksvtopo_auth_name(enum ck_ksvtopo_auth a);
const char *ck_ksvtopo_mode_name(enum ck_ksvtopo_mode m);
const char *ck_ksvtopo_dir_name(enum ck_ksvtopo_dir d);

/* ---- reload: what to push --------------------------------------------------------------- */

enum ck_ksvtopo_change_kind { CK_KSVTOPO_ADDED, CK_KSVTOPO_REMOVED, CK_KSVTOPO_CHANGED };

/* One change for one node. Three sorts:
 *  - the node itself (is_node; node_old/node_new): it appeared, disappeared (its registration
 *    ends), or its address, principal or KSV list changed (it may have to re-register, or no
 *    longer may register here);
 *  - an SA (sa_old/sa_new; peer and direction identify it): it changes when its transform
 *    (ck_ksvtopo_transform_equal), its peer's address or the node's own address changes; a
 *    renamed policy with the same content changes nothing;
 *  - a group membership (is_group; grp_old/grp_new): it changes when the group's address,
 *    transform, degree or keying changes.
 * ADDED has only the new side, REMOVED only the old, CHANGED both. Pointers go into the two
 * topologies. */
struct ck_ksvtopo_change {
    const char *node;
    enum ck_ksvtopo_change_kind kind;
    bool is_node, is_group;
    const struct ck_ksvtopo_node *node_old, *node_new;
    const struct ck_ksvtopo_sa *sa_old, *sa_new;
    const struct ck_ksvtopo_membership *grp_old, *grp_new;
};

struct ck_ksvtopo_diff {
    size_t n;
    struct ck_ksvtopo_change *changes; /* by node name; per node: the node, its SAs (by peer, then
                                        * direction), its groups (by name) */
};

/* Every change between old and new (either may be NULL: an empty topology). The diff's pointers
 * stay valid while both topologies do. */
int ck_ksvtopo_diff(const struct ck_ksvtopo *old_t, const struct ck_ksvtopo *new_t,
                    struct ck_ksvtopo_diff *out);
void ck_ksvtopo_diff_free(struct ck_ksvtopo_diff *d);

#endif
