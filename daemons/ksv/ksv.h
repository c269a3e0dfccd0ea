/* cablekey-ksv internals: the keying server of issue 11 (seed 001 section 3).
 *
 * The core (everything here but main.c, built as cablekey_ksv_core) is a single-threaded state
 * machine with an injected clock and no sockets, like lib/endpoint: the daemon (main.c) or a
 * unit test feeds it datagrams and timer ticks and receives what it sends through callbacks.
 * Pieces:
 *   core.c    sessions (HELLO, sealed messages), per-node registration state, REGISTER/DELETE
 *             with ACK_REQD retransmission, NUDGE, alarms, reload, crash points
 *   links.c   link SAs: generations, SPIs from the store, re-key at 75 % of LIFE-SEC, expiry
 *   groups.c  multicast groups: LKH trees restored from the store, joins, batched leaves and
 *             revocations, signed rekey datagrams (commit before send), GROUP_ACK, recovery, EK
 *   main.c    the daemon on lib/daemon: flags, --check, epoll over UDP, timerfd, signalfd
 * Operator documentation: docs/cablekey-ksv.md. */
#ifndef CABLEKEY_KSV_H
#define CABLEKEY_KSV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "cablekey/ap.h"
#include "cablekey/keyset.h"
#include "cablekey/ksv_msg.h"
#include "cablekey/ksv_store.h"
#include "cablekey/ksv_topology.h"
#include "cablekey/ksv_wire.h"
#include "cablekey/lkh.h"
#include "cablekey/lkh_rekey.h"

#define KSV_PROG "cablekey-ksv"
#define KSV_DEFAULT_NODE_PORT 7442
#define KSV_DEFAULT_MCAST_PORT 7443
#define KSV_DEFAULT_BATCH_INTERVAL_MS 1000
#define KSV_DEFAULT_BATCH_SIZE 256
#define KSV_DEFAULT_CLOCKSKEW 300
#define KSV_RCACHE_SIZE 65536
#define KSV_RETRY_FIRST_MS 1000      /* ACK_REQD: waits of 1, 2, 4, 8, 16 s */
#define KSV_RETRY_TRIES 5            /* sends in all; no ACK after the last wait: NO_ACK */
#define KSV_GROUP_ACK_MS 2000        /* GROUP_ACK wait before unicast recovery */
#define KSV_NUDGE_FIRST_MS 2000      /* unregistered nodes: nudged again after 2, 4 ... s */
#define KSV_NUDGE_MAX_MS 300000
#define KSV_STORE_POLL_MS 200
#define KSV_SA_EXPIRED_MIN_AGE 5      /* s: SA_EXPIRED re-keys a generation at least this old */
#define KSV_MIN_CAPACITY 64
#define KSV_MAX_CRASH_POINT 32
#define KSV_MAX_NODE_GROUPS 64      /* groups one node is a member of */

/* IKEv2 transform IDs (RFC 7296 3.3.2, IANA) the KSV puts in an SA's enc_alg / auth_alg. The
 * key lengths say which variant: AES-GCM (RFC 4106) and ChaCha20-Poly1305 (RFC 7634) keys carry
 * their 4-byte salt, so 20 bytes is AES-128-GCM and 36 AES-256-GCM. */
#define KSV_ENCR_AES_CBC 12
#define KSV_ENCR_NULL 11
#define KSV_ENCR_AES_GCM_16 20
#define KSV_ENCR_CHACHA20_POLY1305 28
#define KSV_AUTH_HMAC_SHA1_96 2
#define KSV_AUTH_HMAC_SHA2_256_128 12
#define KSV_AUTH_HMAC_SHA2_384_192 13
#define KSV_AUTH_HMAC_SHA2_512_256 14

struct ksv_core;

struct ksv_callbacks {
    void *arg;
    /* A unicast datagram (to a node's address). */
    int (*send)(void *arg, const struct sockaddr *to, socklen_t to_len, const uint8_t *buf,
                size_t len);
    /* A datagram to a group's multicast address and port. */
    int (*send_mcast)(void *arg, const struct sockaddr *to, socklen_t to_len, const uint8_t *buf,
                      size_t len);
    /* One log line (no secrets); level: LOG_* of syslog.h. */
    void (*log)(void *arg, int level, const char *line);
    /* A crash point was reached its Nth time (NULL: raise(SIGKILL)). Tests record it and the
     * core then stops where it is, returning CK_ERR_ABORTED-like CK_ERR_IO to its caller. */
    void (*crash)(void *arg, const char *point);
};

struct ksv_params {
    const char *name;              /* the KSV's topology name (ck_ksvtopo_may_register) */
    const char *service;           /* "ksv/host@REALM": tickets must be for it */
    ck_ap_key_fn key_fn;           /* ck_keyset_key_fn with a ck_keyset */
    void *key_arg;
    struct ck_ksv_store *store;    /* not owned */
    uint16_t node_port;            /* 0: KSV_DEFAULT_NODE_PORT */
    uint16_t mcast_port;           /* 0: KSV_DEFAULT_MCAST_PORT */
    int64_t batch_interval_ms;     /* 0: default */
    size_t batch_size;             /* 0: default */
    int64_t clockskew;             /* 0: default (seconds) */
    const char *crash;             /* "POINT:N" (CK_KSV_CRASH) or NULL */
    bool no_start_nudge;           /* tests: do not nudge every node at start */
    struct ksv_callbacks cb;
};

/* The core takes ownership of topo (also on failure). */
int ksv_core_new(const struct ksv_params *p, struct ck_ksvtopo *topo, struct ksv_core **out);
void ksv_core_free(struct ksv_core *k);
/* Loads SAs and groups from the store, reconciles them with the topology (new SAs, joins of
 * nothing yet, leaves of members no longer configured or revoked), re-sends every group's last
 * stored epoch once, nudges every node this KSV serves. */
int ksv_core_start(struct ksv_core *k, int64_t now_ms);
/* One datagram received from `from`. Hostile input is dropped (counted), never fatal: a
 * negative return is a local failure (store, memory). */
int ksv_core_on_datagram(struct ksv_core *k, const uint8_t *buf, size_t len,
                         const struct sockaddr *from, socklen_t from_len, int64_t now_ms);
/* Timers: retransmissions, re-keys, expiries, batches, GROUP_ACK deadlines, nudges, the store
 * poll for CLI revocations. */
int ksv_core_on_timer(struct ksv_core *k, int64_t now_ms);
/* Milliseconds until the next timer (>= 0), or -1 when none. */
int64_t ksv_core_next_timeout_ms(struct ksv_core *k, int64_t now_ms);
/* SIGHUP: the new topology (ownership taken) replaces the old; only what changed is pushed. */
int ksv_core_reload(struct ksv_core *k, struct ck_ksvtopo *topo, int64_t now_ms);
/* Checks the store for CLI revocations now (the timer does it every KSV_STORE_POLL_MS). */
int ksv_core_poll_store(struct ksv_core *k, int64_t now_ms);
/* True once a crash point fired (tests: the core is then to be freed, as after kill -9). */
bool ksv_core_crashed(const struct ksv_core *k);

struct ksv_stats {
    uint64_t dgrams_in, dropped, hellos_ok, hellos_refused, sealed_ok, sealed_bad, nudges_sent,
        registers_sent, deletes_sent, retransmits, acks, no_acks, alarms, rekey_batches,
        rekey_dgrams, group_acks, recoveries, sa_rekeys, sa_deletes;
};
void ksv_core_stats(const struct ksv_core *k, struct ksv_stats *out);
size_t ksv_core_sessions(const struct ksv_core *k);
/* Tests and status: a node's registration, a group's epoch and member id. */
bool ksv_core_node_registered(const struct ksv_core *k, const char *node);
int ksv_core_group_epoch(const struct ksv_core *k, const char *group, uint64_t *epoch);
int ksv_core_member_id(const struct ksv_core *k, const char *group, const char *node,
                       uint32_t *member_id);

/* ---- internal, shared by core.c, links.c, groups.c ----------------------------------------- */
#ifdef KSV_INTERNAL

struct ksv_pending {
    uint32_t msg_id;
    uint64_t ts;
    uint8_t *plain;                /* the encoded message (keys inside: ck_free_secret) */
    size_t plain_len;
    int sends;
    int64_t next_ms;
    char what[24];                 /* "REGISTER", "DELETE" */
};

struct ksv_node {
    char name[CK_KSV_STORE_NAME];
    bool live;                     /* in the current topology */
    bool registered;
    struct sockaddr_storage addr;  /* registered from */
    socklen_t addr_len;
    struct ck_ksv_seal seal;
    int64_t session_end_ms;
    uint32_t next_msg_id;
    struct ksv_pending *pending;
    size_t n_pending, cap_pending;
    int64_t nudge_at;              /* 0: none */
    int64_t nudge_wait;
};

struct ksv_sa {
    struct ck_ksv_sa_row row;
    bool superseded;               /* a newer generation of the link exists */
};

struct ksv_member {
    char node[CK_KSV_STORE_NAME];
    uint32_t member_id, leaf;
};

struct ksv_group {
    char name[CK_KSV_STORE_NAME];
    bool live;                     /* in the current topology */
    uint32_t group_id;
    uint64_t epoch;
    uint32_t degree, capacity;
    int keying;                    /* enum ck_ksvtopo_keying as run (hybrid runs as LKH) */
    uint32_t spi;
    struct lkh_tree *tree;
    struct ksv_member *members;    /* ACTIVE, sorted by node name */
    size_t n_members, cap_members;
    struct ksv_member *leaves;     /* queued for the next batch */
    size_t n_leaves, cap_leaves;
    int64_t first_queued_ms;
    char (*ack_wait)[CK_KSV_STORE_NAME]; /* members that have not acked ack_epoch */
    size_t n_ack_wait;
    uint64_t ack_epoch;
    int64_t ack_deadline;          /* 0: none */
    bool broken;                   /* could not be loaded; skipped (logged) */
};

struct ksv_session_ix {
    uint32_t key_id;
    size_t node;
};

struct ksv_core {
    struct ksv_params p;
    char name[CK_KSV_STORE_NAME];
    char service[CK_KEYSET_MAX_NAME];
    struct ck_ksvtopo *topo;
    const struct ck_ksvtopo *old_topo; /* during a reload: addresses of removed nodes */
    ck_rcache *rc;
    struct lkh_signer *signer;
    uint8_t sign_pub[LKH_ED25519_PUB_LEN];
    struct ksv_node *nodes;        /* stable indices; never shrinks */
    size_t n_nodes, cap_nodes;
    size_t *by_name;               /* node indices sorted by name */
    struct ksv_session_ix *sessions; /* sorted by key_id */
    size_t n_sessions, cap_sessions;
    struct ksv_sa *sas;
    size_t n_sas, cap_sas;
    struct ksv_group *groups;
    size_t n_groups, cap_groups;
    int64_t next_store_poll;
    char crash_point[KSV_MAX_CRASH_POINT];
    long crash_n, crash_seen;
    bool crashed;
    struct ksv_stats st;
};

void ksv_log(struct ksv_core *k, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Returns true (and the caller returns at once) when the crash point fires. */
bool ksv_crash(struct ksv_core *k, const char *point);

struct ksv_node *ksv_node_find(struct ksv_core *k, const char *name);
struct ksv_node *ksv_node_get(struct ksv_core *k, const char *name); /* created when absent */
/* Seals and sends a message to a registered node; with ACK_REQD it is kept for retransmission.
 * m's key_id, msg_id and timestamp are set here. */
int ksv_send_msg(struct ksv_core *k, struct ksv_node *n, struct ck_ksv_msg *m, int64_t now_ms);
int ksv_addr_from_text(const char *text, struct ck_ksv_addr *out);
int ksv_sockaddr_from_text(const char *text, uint16_t port, struct sockaddr_storage *ss,
                           socklen_t *len);
/* An SA's transform on the wire. */
void ksv_xf_wire(const struct ck_ksvtopo_transform *xf, uint8_t *proto, uint8_t *mode,
                 uint16_t *enc_alg, uint16_t *auth_alg, uint8_t *enc_len, uint8_t *auth_len);

/* Fuzzing and tests: a session for node as if it had registered from `from` under a sub-key the
 * caller also holds (no HELLO, nothing sent). */
int ksv_core_test_session(struct ksv_core *k, const char *node, const ck_key *subkey,
                          uint32_t key_id, const struct sockaddr *from, socklen_t from_len,
                          int64_t end_ms);

/* links.c */
int ksv_links_load(struct ksv_core *k);
int ksv_links_reconcile(struct ksv_core *k, int64_t now_ms);
/* The current SAs of a node as REGISTER entries appended to m (up to its limit; *more set when
 * some did not fit and *next_i where to go on). */
int ksv_links_fill(struct ksv_core *k, const char *node, struct ck_ksv_msg *m, size_t *next_i,
                   int64_t now_ms);
size_t ksv_links_count(struct ksv_core *k, const char *node);
int ksv_links_timer(struct ksv_core *k, int64_t now_ms);
int64_t ksv_links_next(struct ksv_core *k);
int ksv_links_rekey_spi(struct ksv_core *k, const char *node, uint32_t spi, int64_t now_ms);
int ksv_links_changed(struct ksv_core *k, const struct ck_ksvtopo_diff *d, int64_t now_ms);
/* Removes every SA of links the topology no longer has (DELETE to both ends). */
int ksv_links_prune(struct ksv_core *k, int64_t now_ms);

/* groups.c */
int ksv_groups_load(struct ksv_core *k, int64_t now_ms);
int ksv_groups_reconcile(struct ksv_core *k, int64_t now_ms);
/* At registration: joins where needed (commit before the REGISTER), then the node's groups. */
int ksv_groups_for_node(struct ksv_core *k, const char *node, struct ck_ksv_group *out,
                        size_t max, size_t *n, int64_t now_ms);
int ksv_groups_timer(struct ksv_core *k, int64_t now_ms);
int64_t ksv_groups_next(struct ksv_core *k);
int ksv_groups_on_ack(struct ksv_core *k, const char *node, uint32_t group_id, uint64_t epoch,
                      int64_t now_ms);
int ksv_groups_on_recover(struct ksv_core *k, const char *node, uint32_t group_id,
                          uint64_t epoch, int64_t now_ms);
/* Reload: the group's new parameters (address, transform) to one member by unicast. */
int ksv_groups_push(struct ksv_core *k, const char *group, const char *node, int64_t now_ms);
void ksv_groups_free(struct ksv_core *k);
int ksv_groups_find(const struct ksv_core *k, const char *name);

#endif /* KSV_INTERNAL */

#endif
