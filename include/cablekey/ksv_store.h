/* The keying server's persistent state (issue 11): SPIs and link SAs, groups with their LKH trees
 * and epochs, the signed datagrams of recent epochs (resend after a crash, unicast recovery),
 * revocations, alarms and registrations. One SQLite file (WAL, synchronous=FULL), its own schema
 * (the KDC's store is not involved); `--db PATH` or `--db sqlite:PATH`. Every key (SA keys, LKH
 * node keys, the signing key) is encrypted at rest under a 32-byte master key read from a 0600
 * key file (AES-256-GCM, the table, row identity and version inside the AAD); the key file is
 * created with the database (`ck_ksv_store_open(..., create = true)`) and refused when others
 * can read it (group or others).
 *
 * The master key file holds exactly 32 bytes. With create and no database, an existing key file
 * is used (an operator may provision it), else a new random one is written. A key file that does
 * not match the database is refused at open (CK_ERR_INTEGRITY, a check value sealed under it).
 *
 * Crash safety: every multi-row change is one transaction. A group's epoch only grows:
 * ck_ksv_store_group_commit refuses an epoch < the stored one (and == unless the commit carries
 * no datagram: a join), and stores the node keys, the
 * member changes and the batch's signed datagrams together, so after kill -9 either all of a
 * batch is durable (and the KSV re-sends its datagrams) or none of it was (and nothing of it was
 * sent, since the KSV sends only after the commit returns).
 *
 * Several processes may open the file (the daemon and the `cablekey ksv` CLI); the CLI's writes
 * (revocations) are seen by the daemon through ck_ksv_store_changed (SQLite data_version).
 *
 * A handle may be shared by threads (a mutex serializes its calls); each process opens its own.
 *
 * Errors: CK_ERR_DB, CK_ERR_NOTFOUND, CK_ERR_EXISTS, CK_ERR_INVAL, CK_ERR_PERM (key file or
 * database readable by group/others, not the owner's, read-only), CK_ERR_INTEGRITY (a key that
 * does not decrypt: wrong master key, or a sealed value moved to another row), CK_ERR_NOMEM,
 * CK_ERR_IO, CK_ERR_FULL (no free SPI). */
#ifndef CABLEKEY_KSV_STORE_H
#define CABLEKEY_KSV_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cablekey/lkh.h"

#define CK_KSV_STORE_NAME 64     /* node, group, policy names: <= 63 bytes + NUL */
#define CK_KSV_STORE_KEY 64
#define CK_KSV_STORE_KEEP_EPOCHS 16 /* signed datagrams kept per group */
#define CK_KSV_STORE_KEEP_ALARMS 100000 /* newest alarm rows kept */
/* SPI ranges: a link SA's SPI is the receiver's, in [SPI_MIN, SPI_MAX]; every group SA's SPI
 * is in [GROUP_SPI_MIN, 0xffffffff], unique among groups. The two ranges are disjoint, so a
 * group SPI never collides with a link SPI of any receiver. */
#define CK_KSV_STORE_SPI_MIN 256u
#define CK_KSV_STORE_SPI_MAX 0x7fffffffu
#define CK_KSV_STORE_GROUP_SPI_MIN 0x80000000u

struct ck_ksv_store;

/* uri: "PATH" or "sqlite:PATH". key_file NULL: PATH + ".key". create: a missing database is
 * created (0600, with its key file); else CK_ERR_NOTFOUND. */
int ck_ksv_store_open(const char *uri, const char *key_file, bool create,
                      struct ck_ksv_store **out);
void ck_ksv_store_close(struct ck_ksv_store *st);
/* True once since the last call (or the open) when another connection committed a change
 * (PRAGMA data_version; this handle's own writes do not count). */
int ck_ksv_store_changed(struct ck_ksv_store *st, bool *changed);

/* The KSV's Ed25519 signing key (the raw 32-byte private key), created on first call. */
int ck_ksv_store_signing_key(struct ck_ksv_store *st, uint8_t priv[32]);

/* ---- link SAs ---------------------------------------------------------------------------- */
/* One SA of a directed link src -> dst. The SPI is the receiver's (dst's): unique among every
 * SA dst receives, never 0 or < 256, random, allocated by sa_put when spi == 0 (inside its
 * transaction, so two writers never get the same SPI). */
struct ck_ksv_sa_row {
    int64_t id;                          /* set by sa_put */
    char src[CK_KSV_STORE_NAME], dst[CK_KSV_STORE_NAME];
    char policy[CK_KSV_STORE_NAME];
    uint32_t spi;
    uint8_t enc_key[CK_KSV_STORE_KEY], auth_key[CK_KSV_STORE_KEY];
    uint8_t enc_key_len, auth_key_len;
    int64_t created, expires;            /* seconds */
    uint32_t generation;                 /* 1, 2, ... per link: a re-key is a new row */
};
/* Inserts a new row (row->id is ignored and set; row->spi set when allocated). A given spi must be
 * in [CK_KSV_STORE_SPI_MIN, CK_KSV_STORE_SPI_MAX] and free for dst (CK_ERR_EXISTS); (src, dst,
 * generation) is unique (CK_ERR_EXISTS). Keys are sealed bound to dst, spi, src, generation. */
int ck_ksv_store_sa_put(struct ck_ksv_store *st, struct ck_ksv_sa_row *row);
/* Rows where node is src or dst (NULL: all), oldest first; free with ck_ksv_store_sa_free. */
int ck_ksv_store_sa_list(struct ck_ksv_store *st, const char *node, struct ck_ksv_sa_row **rows,
                         size_t *n);
int ck_ksv_store_sa_delete(struct ck_ksv_store *st, int64_t id); /* CK_ERR_NOTFOUND */
void ck_ksv_store_sa_free(struct ck_ksv_sa_row *rows, size_t n); /* wipes */

/* ---- groups ------------------------------------------------------------------------------ */
enum ck_ksv_member_state { CK_KSV_MEMBER_ACTIVE = 1, CK_KSV_MEMBER_LEFT = 2 };

struct ck_ksv_group_row {
    uint32_t group_id;                   /* persistent, allocated by name */
    char name[CK_KSV_STORE_NAME];
    uint64_t epoch;
    uint32_t degree, capacity;
    int keying;                          /* enum ck_ksvtopo_keying */
    uint32_t spi;                        /* the group SA's SPI */
};
struct ck_ksv_member_row {
    char node[CK_KSV_STORE_NAME];
    uint32_t member_id, leaf;
    int state;                           /* enum ck_ksv_member_state */
};

/* The group by name, created (new id, epoch 0, new SPI) when absent; degree (2..16), capacity
 * and keying are checked and stored only then (an existing group keeps its own). */
int ck_ksv_store_group_get(struct ck_ksv_store *st, const char *name, uint32_t degree,
                           uint32_t capacity, int keying, struct ck_ksv_group_row *out);
int ck_ksv_store_group_list(struct ck_ksv_store *st, struct ck_ksv_group_row **rows, size_t *n);
/* The whole saved tree and the members of a group, from one read transaction: every node row
 * (ascending node id; present = 0 for an empty node) and every member row, ACTIVE and LEFT
 * (by node name). nodes: free with ck_ksv_store_nodes_free, members with free().
 * CK_ERR_NOTFOUND for an unknown group. */
int ck_ksv_store_group_load(struct ck_ksv_store *st, uint32_t group_id,
                            struct lkh_node_state **nodes, size_t *n_nodes,
                            struct ck_ksv_member_row **members, size_t *n_members);
void ck_ksv_store_nodes_free(struct lkh_node_state *nodes, size_t n); /* wipes */
/* The same, without the member array (76 bytes a member, 76 MB at 10^6): member() sees each
 * member row in turn (its non-zero return stops the load and is returned). nodes and n_nodes
 * NULL: the members only (no key is decrypted: `cablekey ksv members`). */
int ck_ksv_store_group_walk(struct ck_ksv_store *st, uint32_t group_id,
                            struct lkh_node_state **nodes, size_t *n_nodes,
                            int (*member)(void *arg, const struct ck_ksv_member_row *m),
                            void *arg);

/* One transaction: epoch (must be > the stored epoch, or == for a join, which sends no
 * datagram; else CK_ERR_INVAL), node rows (upsert by node id; present = 0 stores no key),
 * member rows (upsert by node name), the datagrams of this epoch (1..65535 bytes each; epochs
 * <= epoch - CK_KSV_STORE_KEEP_EPOCHS dropped). An epoch > stored with no datagram is allowed
 * (EK mode: the keys go by unicast). CK_ERR_NOTFOUND for an unknown group. */
struct ck_ksv_group_commit {
    uint32_t group_id;
    uint64_t epoch;
    const struct lkh_node_state *nodes;
    size_t n_nodes;
    const struct ck_ksv_member_row *members;
    size_t n_members;
    uint8_t *const *dgrams;
    const size_t *dgram_lens;
    size_t n_dgrams;
};
int ck_ksv_store_group_commit(struct ck_ksv_store *st, const struct ck_ksv_group_commit *c);
/* The datagrams of one stored epoch in order (free each and the arrays with free()); none (n = 0)
 * for an epoch without datagrams or no longer kept; CK_ERR_NOTFOUND for an unknown group. */
int ck_ksv_store_epoch_dgrams(struct ck_ksv_store *st, uint32_t group_id, uint64_t epoch,
                              uint8_t ***dgrams, size_t **lens, size_t *n);

/* ---- revocations (persist until lifted) ---------------------------------------------------
 * By group and node name. revoke: CK_ERR_EXISTS if already revoked; lift and mark_applied:
 * CK_ERR_NOTFOUND if not revoked. List ordered by group, node; free with free(). */
struct ck_ksv_revocation {
    char group[CK_KSV_STORE_NAME], node[CK_KSV_STORE_NAME];
    int64_t when;
    char actor[CK_KSV_STORE_NAME];
    bool applied;                        /* the daemon's batch removed the member */
};
int ck_ksv_store_revoke(struct ck_ksv_store *st, const char *group, const char *node,
                        const char *actor, int64_t now);
int ck_ksv_store_revoke_lift(struct ck_ksv_store *st, const char *group, const char *node);
int ck_ksv_store_revoke_mark_applied(struct ck_ksv_store *st, const char *group,
                                     const char *node);
int ck_ksv_store_is_revoked(struct ck_ksv_store *st, const char *group, const char *node,
                            bool *revoked);
int ck_ksv_store_revocations(struct ck_ksv_store *st, struct ck_ksv_revocation **rows,
                             size_t *n);

/* ---- alarms and registrations (operator view) --------------------------------------------- */
struct ck_ksv_alarm_row {
    int64_t id, when;
    char node[CK_KSV_STORE_NAME];
    char type[32];                       /* "SA_EXPIRED", ... or a KSV-side cause */
    char detail[256];
};
/* detail may be NULL, is cut at 255 bytes; only the newest CK_KSV_STORE_KEEP_ALARMS are kept. */
int ck_ksv_store_alarm_add(struct ck_ksv_store *st, int64_t when, const char *node,
                           const char *type, const char *detail);
/* Newest first, at most max (free with free()). */
int ck_ksv_store_alarm_list(struct ck_ksv_store *st, size_t max, struct ck_ksv_alarm_row **rows,
                            size_t *n);

struct ck_ksv_node_row {
    char node[CK_KSV_STORE_NAME];
    char addr[64];                       /* where it registered from */
    int64_t registered, last_seen;
    uint32_t key_id;
    uint32_t n_sas;
};
/* Upsert by node name (every field replaced); list by name, free with free(). */
int ck_ksv_store_node_seen(struct ck_ksv_store *st, const struct ck_ksv_node_row *row);
int ck_ksv_store_node_list(struct ck_ksv_store *st, struct ck_ksv_node_row **rows, size_t *n);

#endif
