/* The KDC's protocol core, as seen by the daemon shell (main.c) and the fuzz targets: a pure
 * function from request bytes to reply bytes, with per-worker state. It knows nothing of sockets:
 * the peer is an opaque struct ck_peer (net.h) that it only formats for its log lines. */
#ifndef CABLEKEY_KDC_H
#define CABLEKEY_KDC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KDC_MAX_ENCTYPES 8
#define KDC_DEFAULT_MAX_DGRAM_REPLY 4096   /* kdc_max_dgram_reply_size */
/* Largest request accepted on any transport: a PKINIT AS-REQ carries certificate chains, and the
 * ASN.1 layer takes AS-REQs up to CK_ASN1_MAX_AS_MSG (320 KiB); UDP datagrams stay bounded by
 * the datagram size. */
#define KDC_DEFAULT_MAX_REQUEST 327680
#define KDC_DEFAULT_CLOCKSKEW 300          /* seconds */
#define KDC_DEFAULT_MAX_LIFE (10 * 3600)
#define KDC_DEFAULT_MAX_RENEW (7 * 86400)
#define KDC_DEFAULT_LOCKOUT_FLUSH_MS 1000
#define KDC_LOCKOUT_MAX_PENDING 4096       /* principals with unwritten events, per worker */

/* Settings from the config file and command line, read-only after start. */
struct kdc_config {
    char *realm;                       /* NULL: the realm stored in the database */
    char *db_path;                     /* SQLite database file */
    char *stash_path;                  /* master key stash (default: db_path + ".stash") */
    int64_t max_life;                  /* realm-wide ticket lifetime cap, seconds */
    int64_t max_renewable_life;        /* realm-wide renewable lifetime cap, seconds */
    int64_t clockskew;                 /* allowed clock skew, seconds */
    size_t max_dgram_reply;            /* larger UDP replies get KRB_ERR_RESPONSE_TOO_BIG */
    size_t max_request;                /* larger requests are refused */
    int32_t enctypes[KDC_MAX_ENCTYPES];/* permitted session/ticket enctypes, in preference order */
    size_t n_enctypes;
    bool lookaside;                    /* answer UDP retransmits from the lookaside cache */
    /* The KDC's wall clock: NULL means the system clock (ck_now). Tests inject a fixed time so
     * that no result depends on the calendar. */
    void (*clock)(void *ctx, int64_t *sec, int32_t *usec);
    void *clock_ctx;
    /* PKINIT settings (pkinit_kdc.h); NULL: PKINIT is off. Owned: kdc_config_free_contents
     * frees it. */
    struct kdc_pkinit_config *pkinit;
    /* Request log lines are written in batches, at most this many milliseconds after the first
     * line of a batch (kdc_worker_idle); 0 writes each line at once (tests, tools). */
    int64_t log_flush_ms;
    /* Lockout (lockout.c, docs/cablekey-kdc.md "Lockout"). MIT's names: disable_lockout stops
     * counting failed pre-authentications (and so locking), disable_last_success stops
     * recording successes. Events are written at most lockout_flush_ms after the first of a
     * batch (0: KDC_DEFAULT_LOCKOUT_FLUSH_MS). */
    bool disable_lockout;
    bool disable_last_success;
    int64_t lockout_flush_ms;
    /* Shared with main.c, which owns them (NULL: none). Alarms (alarm.h) are raised from any
     * worker; metrics (metrics.h) are registered once by main.c and counted per request. */
    struct ck_alarm_mgr *alarms;
    struct ck_metrics *metrics;
    /* KDC fleet (fleet.c, docs/fleet.md): how long cached records are served while the database
     * is unreachable (db_max_staleness), in ms. 0: the default, CK_STORE_DEFAULT_MAX_STALENESS_S;
     * negative: never (refuse as soon as the database is unreachable). */
    int64_t db_max_staleness_ms;
    /* MTA-FQDN (mta_fqdn.h): the provisioning server the KDC asks; NULL: off. Owned:
     * kdc_config_free_contents frees it. */
    struct kdc_mta_fqdn_config *mta_fqdn;
};

enum kdc_transport { KDC_TRANSPORT_UDP, KDC_TRANSPORT_TCP };

struct kdc_worker;
struct kdc_pkinit_config;
struct kdc_mta_fqdn_config;
struct ck_peer;

/* Per-worker state (own database connection, principal cache, lookaside cache). */
int kdc_worker_new(const struct kdc_config *cfg, struct kdc_worker **out);
void kdc_worker_free(struct kdc_worker *worker);
/* The realm the worker serves (from its database). */
const char *kdc_worker_realm(const struct kdc_worker *worker);

/* Handles one request. On return 0, *reply_len bytes of reply are in reply (capacity reply_cap);
 * *reply_len == 0 means "send nothing" (e.g. garbage over UDP). peer may be NULL (fuzzing).
 * Logs exactly one summary line per request. Never fails on hostile input: errors become
 * KRB-ERROR replies or silence. */
int kdc_handle_request(struct kdc_worker *worker, const uint8_t *req, size_t req_len,
                       enum kdc_transport transport, const struct ck_peer *peer,
                       uint8_t *reply, size_t reply_cap, size_t *reply_len);

/* Answers a TCP request whose length prefix was over the limit or had the reserved high bit set
 * (RFC 4120 §7.2.2): a KRB-ERROR KRB_ERR_FIELD_TOOLONG, logged like any request. The caller closes
 * the connection after sending it. */
int kdc_handle_oversized(struct kdc_worker *worker, size_t declared_len,
                         const struct ck_peer *peer, uint8_t *reply, size_t reply_cap,
                         size_t *reply_len);

/* For the network layer's idle callback: writes the batched log lines when they are due.
 * Returns how long the worker may sleep before the next call (ms, -1: no deadline). */
int kdc_worker_idle(struct kdc_worker *worker);

/* Fills cfg with defaults (all four AES enctypes, caps above). */
void kdc_config_defaults(struct kdc_config *cfg);
void kdc_config_free_contents(struct kdc_config *cfg);

#endif
