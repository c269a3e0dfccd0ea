/* The keying server's node agent (issue 11): a single-threaded state machine with an injected
 * clock, no sockets (the runner in tools/cablekey/node.c owns them), like lib/endpoint.
 *
 * It registers with each KSV it is given (HELLO with a ticket for the KSV's service, then the
 * KSV's sealed REGISTER), installs and deletes SAs through callbacks, answers ACK_REQD with an
 * ACK, applies REFRESH (every SA of that KSV not in the message is deleted) and DELETE, keeps
 * its LKH path keys per group and applies verified rekey datagrams, sends GROUP_ACK when a
 * rekey asks, asks RECOVER when it missed an epoch it cannot bridge, and raises alarms:
 *   SA_EXPIRED       an SA reached its lifetime without a replacement: the node keeps it
 *                    (extends it by its lifetime / 4) and tells the KSV (re-registering first
 *                    when its session is gone);
 *   MALFORMED_PACKET a sealed message that opened but did not parse or apply, or a rekey
 *                    datagram that does not parse (rate-limited);
 *   SERVER_CONFLICT  two KSVs gave the same (direction, peer) SA different SPIs or transforms,
 *                    or the same group different parameters: sent to both;
 *   SIGN_FAILED      a rekey datagram whose signature or hash path does not verify.
 * Replays: a rekey epoch <= the last applied is dropped (counted, not alarmed); sealed messages
 * have their own window (ksv_wire.h). Timers: HELLO retransmission with backoff
 * (1, 2, 4 ... max 30 s, then start over), re-registration before the session's ticket ends,
 * SA expiry, nudges honoured at most once a second.
 *
 * Details of this implementation (lib/ksvnode):
 * - An SA another KSV already gave differently is not installed (the first KSV's stays); the
 *   alarm names its peer and SPI. The same group from two KSVs with different signing keys,
 *   multicast address or group SA is a conflict too (the first stays).
 * - A group's data SA is not sent: it is derived (lkh_group_sa_key) from the group key at its
 *   root version, enc key then auth key in one output of exactly the lengths the group carries
 *   (ck_ksv_group enc_key_len, auth_key_len). The group is refused (MALFORMED_PACKET) when they
 *   do not fit its transform: the encryption key one it takes (ESP AES-CBC 16/24/32, AES-GCM/CTR
 *   20/28/36 with salt, 3DES 24, ChaCha20-Poly1305 36, NULL 0), the HMAC key 16 bytes up to its
 *   own length (MD5 16, SHA1 20, SHA2-256/384/512 32/48/64: the KSV shortens it so that both fit),
 *   and together no more than the 64 bytes lkh_group_sa_key gives. A second KSV giving the same
 *   group other algorithms or key lengths is a conflict. The SA is handed to sa_install as an
 *   OUT SA to the multicast address (the seed's one bidirectional group SA) with `group` set.
 *   It has no timer: it changes
 *   when the group key does (sa_delete of the old one, sa_install of the new one).
 * - A rekey datagram is verified only when its epoch is new; the datagrams of an epoch that do
 *   not serve the node's leaf are then ignored. When an epoch was skipped and the datagram did
 *   not rekey the root, the node cannot know whether its key is current and asks RECOVER.
 * - Alarms and RECOVER wait (at most CK_KSVNODE_MAX_PENDING per KSV) for a session; MALFORMED_PACKET
 *   and SIGN_FAILED go at most once a second per KSV (the others are counted in
 *   alarms_suppressed). RECOVER goes at most once a second per group.
 * - LIFE-KBYTE is not enforced here (the node library sees no traffic). */
#ifndef CABLEKEY_KSV_NODE_H
#define CABLEKEY_KSV_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cablekey/client.h"
#include "cablekey/ksv_msg.h"

#define CK_KSVNODE_MAX_KSV 4
#define CK_KSVNODE_MAX_GROUPS CK_KSV_MAX_GROUPS  /* per KSV */
#define CK_KSVNODE_MAX_SAS 512                   /* installed, all KSVs, group SAs included */
#define CK_KSVNODE_MAX_PENDING 16
#define CK_KSVNODE_NUDGE_MIN_MS 1000
#define CK_KSVNODE_HELLO_MAX_BACKOFF_MS 30000

typedef struct ck_ksvnode ck_ksvnode;

/* An installed SA as the node keeps it. */
struct ck_ksvnode_sa {
    struct ck_ksv_sa sa;
    unsigned ksv;          /* which KSV gave it */
    int64_t installed_ms, expires_ms;
    bool extended;         /* SA_EXPIRED raised, running on borrowed time */
    bool group;            /* a group's data SA (peer = the multicast address) */
    uint32_t group_id;     /* when group */
};

struct ck_ksvnode_group_status {
    uint32_t group_id;
    uint64_t epoch;        /* last applied */
    uint32_t root_version;
    uint8_t key_check[8];  /* lkh_group_key_check of the current group key */
    bool removed;          /* a rekey showed this node was removed */
    struct ck_ksv_addr mcast;
    uint16_t mcast_port;
    uint32_t spi;          /* the group SA */
    unsigned ksv;          /* which KSV gave it */
    uint8_t keying;        /* 0 lkh, 1 ek, 2 hybrid */
};

struct ck_ksvnode_callbacks {
    void *arg;
    /* Send buf to KSV number ksv (index into params.ksv). */
    int (*send)(void *arg, unsigned ksv, const uint8_t *buf, size_t len);
    /* SA added/removed (install into userspace ESP, print ip xfrm). */
    void (*sa_install)(void *arg, const struct ck_ksvnode_sa *sa);
    void (*sa_delete)(void *arg, const struct ck_ksvnode_sa *sa);
    /* Group joined / key changed / removed: the runner joins the multicast address. */
    void (*group_update)(void *arg, const struct ck_ksvnode_group_status *g);
    /* One line for the log (no secrets). level: LOG_* of syslog.h. */
    void (*log)(void *arg, int level, const char *line);
};

struct ck_ksvnode_params {
    const char *name;                     /* the node's topology name */
    size_t n_ksv;
    const char *ksv_service[CK_KSVNODE_MAX_KSV]; /* "ksv/host@REALM" */
    const char *ccache;
    ck_kdc_transport kdc;                 /* for the TGS exchange */
    struct ck_ksvnode_callbacks cb;
    uint32_t rng_seed;                    /* 0: random jitter; else deterministic (tests) */
    /* Optional: the ticket for KSV i instead of the ccache (tests, or a caller that has one);
     * copied. ccache may then be NULL. */
    const ck_creds *creds[CK_KSVNODE_MAX_KSV];
};

int ck_ksvnode_new(const struct ck_ksvnode_params *p, ck_ksvnode **out);
void ck_ksvnode_free(ck_ksvnode *n);  /* wipes every key */
int ck_ksvnode_start(ck_ksvnode *n, int64_t now_ms);
/* A datagram from KSV number ksv (unicast) or, with ksv = CK_KSVNODE_FROM_GROUP, from a
 * multicast group socket. Never fails on hostile input (counts and alarms instead); returns a
 * negative code only for local failures. */
#define CK_KSVNODE_FROM_GROUP 0xffffffffu
int ck_ksvnode_on_datagram(ck_ksvnode *n, unsigned ksv, const uint8_t *buf, size_t len,
                           int64_t now_ms);
int ck_ksvnode_on_timer(ck_ksvnode *n, int64_t now_ms);
int64_t ck_ksvnode_next_timeout_ms(const ck_ksvnode *n, int64_t now_ms);

struct ck_ksvnode_stats {
    uint64_t registrations, hellos_sent, sealed_in, sealed_bad, rekeys_applied, rekeys_replayed,
        rekeys_bad_sig, rekeys_malformed, recovers_sent, alarms_sent[5], acks_sent;
    /* Additions of lib/ksvnode. */
    uint64_t group_acks_sent, nudges, nudges_ignored, dropped, sas_extended, conflicts,
        alarms_suppressed, rekeys_ignored;
};
void ck_ksvnode_get_stats(const ck_ksvnode *n, struct ck_ksvnode_stats *out);
/* Snapshots (arrays owned by the node, valid until the next call into it). */
size_t ck_ksvnode_sas(const ck_ksvnode *n, const struct ck_ksvnode_sa **sas);
size_t ck_ksvnode_groups(const ck_ksvnode *n, struct ck_ksvnode_group_status *out, size_t max);
bool ck_ksvnode_registered(const ck_ksvnode *n, unsigned ksv);

#endif
