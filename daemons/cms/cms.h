/* cablekey-cms internals: the key-management server of a signaling controller (CMS).
 *
 * The daemon keeps no per-endpoint state besides the SA table and the replay cache: everything
 * else an exchange needs comes with the request (the ticket, the authenticator, the endpoint's
 * SPI and suites) or is recomputed (the server nonce is an HMAC of the endpoint address and a time
 * window, never stored). Pieces:
 *   config.c     [cms] profile section, flags over it, ciphersuite names and choice
 *   nonce.c      the stateless server nonce (CONTRACT7)
 *   sa_table.c   SAs keyed by the server's inbound SPI, striped locks, endpoint index
 *   kmm.c        the KMM handler (AP Request, SP Recovered), Error Reply, Wake Up, Rekey
 *   signaling.c  UDP-encapsulated ESP carrying MGCP-shaped signaling, xfrm export
 *   main.c       the daemon on lib/daemon and lib/net (service keys: ck_keyset, lib/krb)
 * Operator documentation: docs/cablekey-cms.md. */
#ifndef CABLEKEY_CMS_H
#define CABLEKEY_CMS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "cablekey/ap.h"
#include "cablekey/daemon.h"
#include "cablekey/esp.h"
#include "cablekey/keyset.h"
#include "cablekey/kmm.h"
#include "cablekey/mgcp.h"
#include "cablekey/profile.h"
#include "cablekey/prov_ad.h"

#define CMS_PROG "cablekey-cms"
#define CMS_DEFAULT_CONFIG "/etc/cablekey/cms.conf"
#define CMS_MAX_LISTEN 16
#define CMS_MAX_SUITES 16
#define CMS_SIGNALING_PORT 4500          /* RFC 3948 UDP-encapsulated ESP */
#define CMS_MGCP_GW_PORT 2427            /* inner UDP ports of the protected signaling */
#define CMS_MGCP_CA_PORT 2727
#define CMS_MAX_PRINCIPAL 512            /* an unparsed client or service name we keep */
#define CMS_ADDRSTRLEN 64                /* "[v6]:port" */

#define CMS_DEFAULT_CLOCKSKEW 300
#define CMS_DEFAULT_SA_LIFETIME 3600
#define CMS_DEFAULT_GRACE 600
#define CMS_DEFAULT_MAX_SAS 200000
#define CMS_DEFAULT_RCACHE 200000
#define CMS_DEFAULT_SOLICITED 30
#define CMS_MAX_MAX_SAS (1u << 24)

/* ---- configuration (config.c) ----------------------------------------------------------- */

#define CMS_MAX_NUMBER 15                /* a line number or route prefix: 1..15 digits */
#define CMS_MAX_LINES 4096
#define CMS_MAX_ROUTES 256
#define CMS_DEFAULT_CALL_RETRY_MS 500
#define CMS_DEFAULT_CALL_TRIES 4
#define CMS_DEFAULT_ESCROW_RETENTION (90 * 86400)

enum cms_call_mode { CMS_CALL_NCS = 0, CMS_CALL_SGCP = 1 };

/* line = NUMBER PRINCIPAL [mac=12HEX] [server] */
struct cms_line {
    char number[CMS_MAX_NUMBER + 1];
    char principal[CMS_MAX_PRINCIPAL];
    char mac[13];                      /* lower-case hex, "" unknown */
    bool server;                       /* a network server (media gateway), not a CTA */
};

/* route = PREFIX PRINCIPAL HOST:PORT [sig=PORT]: numbers starting with PREFIX are on the
 * controller PRINCIPAL, whose KMM server is HOST:PORT and ESP signaling port PORT. */
struct cms_route {
    char prefix[CMS_MAX_NUMBER + 1];
    char principal[CMS_MAX_PRINCIPAL];
    char kmm[CMS_ADDRSTRLEN * 4];      /* "host:port" as given */
    uint16_t sig_port;
};

struct cms_config {
    char *config_path;                 /* the file read, or NULL when none was */
    char *listen[CMS_MAX_LISTEN];
    size_t n_listen;
    char *signaling_listen[CMS_MAX_LISTEN];
    size_t n_signaling_listen;
    char *keytab;
    char *service;                     /* NULL: the keytab's first principal */
    int64_t clockskew, sa_lifetime, grace;
    bool ack_required;
    struct ck_kmm_suite suites[CMS_MAX_SUITES]; /* IPsec suites allowed, in preference order */
    size_t n_suites;
    int64_t max_sas, replay_cache_size;
    int64_t solicited_key_timeout;     /* the nonce window, seconds */
    int64_t rekey_margin;              /* seconds before expiry; -1: grace / 2; 0: off */
    int64_t sa_life_kbytes;            /* 0: no byte lifetime */
    struct ck_log_target log;
    int log_level;
    char *pid_file;
    char *user;
    char *export_xfrm;                 /* flag only */
    /* calls (issue 8) */
    enum cms_call_mode call_mode;
    enum ck_sdp_media_mode media;
    struct ck_kmm_suite call_suite;    /* direct ESP between the ends */
    bool compat_seq;
    int64_t call_retry_ms, call_tries;
    char *kdc;                         /* blank-separated "host:port" list, NULL: krb5.conf */
    struct cms_line *lines;
    size_t n_lines;
    struct cms_route *routes;
    size_t n_routes;
    char *intercept_db, *escrow_dir;
    int64_t escrow_retention;          /* seconds */
    char *export_wireshark;
    /* provisioning (issue 10): cablekey-prov's API base, NULL: off */
    char *provisioning_url, *provisioning_ca;
    bool provisioning_lines;           /* learn lines from it (default true) */
    int64_t provisioning_retry_max;    /* seconds: the longest backoff (default 60) */
};

/* The flags, kept for SIGHUP (they override the file again). */
struct cms_flags {
    struct ck_daemon_opts common;
    const char *listen[CMS_MAX_LISTEN];
    size_t n_listen;
    const char *signaling_listen[CMS_MAX_LISTEN];
    size_t n_signaling_listen;
    const char *keytab, *service, *export_xfrm, *export_wireshark;
    bool foreground;                   /* accepted; the daemon never forks */
};

extern const struct ck_conf_key cms_conf_keys[];
extern const size_t cms_conf_n_keys;

void cms_config_init(struct cms_config *cfg);
void cms_config_free(struct cms_config *cfg);
/* Reads [cms] from prof (validated against cms_conf_keys) over the defaults in cfg. */
int cms_config_apply_profile(struct cms_config *cfg, const struct ck_profile *prof);
/* Defaults, then the file (-c, or the default path when present), then the flags; checks the
 * result (a keytab is required, grace < sa_lifetime, ...). */
int cms_config_load(const struct cms_flags *f, struct cms_config *cfg);
/* Media mode names (mgcp.h's, without linking the codec): "srtp-aes-cm", ... */
const char *cms_media_name(enum ck_sdp_media_mode m);
/* The line of a number (exact), or NULL. */
const struct cms_line *cms_config_line(const struct cms_config *cfg, const char *number);
/* The line of a client principal, or NULL. */
const struct cms_line *cms_config_line_by_principal(const struct cms_config *cfg,
                                                    const char *principal);
/* The route whose prefix is the longest one starting number, or NULL. */
const struct cms_route *cms_config_route(const struct cms_config *cfg, const char *number);
/* Seconds before expiry at which the server sends Rekey (0: never). */
int64_t cms_config_rekey_margin(const struct cms_config *cfg);

/* Suite names: "sha1-aes128", "sha1-3des", "sha1-null", "md5-aes128", "md5-3des", "md5-null";
 * SNMPv3 (as ck_kmm_suite_short_name): "sha1-des", "sha1-null", "md5-des", "md5-null". */
int cms_suites_parse(const char *value, struct ck_kmm_suite *out, size_t max, size_t *n);
const char *cms_suite_name(uint8_t doi, struct ck_kmm_suite s, char *buf, size_t size);
/* The strongest suite (ck_kmm_suite_rank; the allowed list's order breaks ties) that the endpoint
 * offered, cablekey implements and allowed lists; for DOI SNMPv3 allowed is not consulted (the
 * list is of IPsec suites). CK_ERR_UNSUPPORTED when there is none. */
int cms_suite_choose(uint8_t doi, const struct ck_kmm_suite *allowed, size_t n_allowed,
                     const struct ck_kmm_suite *offered, size_t n_offered,
                     struct ck_kmm_suite *out);

/* ---- addresses -------------------------------------------------------------------------- */

/* An endpoint address as stored per SA: 20 bytes instead of a 128-byte sockaddr_storage. */
struct cms_addr {
    uint8_t family;                    /* 4 or 6; 0 = none */
    uint8_t pad;
    uint16_t port;                     /* host order */
    uint8_t addr[16];
};

int cms_addr_from_sockaddr(const struct sockaddr *sa, struct cms_addr *out);
socklen_t cms_addr_to_sockaddr(const struct cms_addr *a, struct sockaddr_storage *ss);
bool cms_addr_equal(const struct cms_addr *a, const struct cms_addr *b);
/* "192.0.2.1:40000" or "[2001:db8::1]:40000". */
const char *cms_addr_format(const struct cms_addr *a, char *buf, size_t size);
/* The numeric address only. */
const char *cms_addr_host(const struct cms_addr *a, char *buf, size_t size);

/* ---- service keys: ck_keyset (include/cablekey/keyset.h, lib/krb/keyset.c) -------------- */

/* ---- server nonce (nonce.c) ------------------------------------------------------------- */

#define CMS_NONCE_SECRET 32

struct cms_nonce {
    uint8_t secret[CMS_NONCE_SECRET];
    int64_t window;                    /* seconds (> 0) */
};

int cms_nonce_init(struct cms_nonce *n, int64_t window);
/* nonce = first 4 bytes of HMAC-SHA-256(secret, "cablekey kmm nonce" || epoch (8, BE) ||
 * address bytes || port (2, BE)), epoch = floor(now / window); never 0. */
uint32_t cms_nonce_make(const struct cms_nonce *n, const struct cms_addr *ep, int64_t epoch);
uint32_t cms_nonce_for(const struct cms_nonce *n, const struct cms_addr *ep, int64_t now);
/* The nonce is the current or the previous epoch's for this endpoint. */
bool cms_nonce_check(const struct cms_nonce *n, const struct cms_addr *ep, uint32_t nonce,
                     int64_t now);

/* ---- SA table (sa_table.c) -------------------------------------------------------------- */

enum {
    CMS_SA_PENDING = 0x01,             /* ACK-required: nothing outbound until SP Recovered */
    CMS_SA_SUPERSEDED = 0x02,          /* a newer SA exists for the endpoint */
    CMS_SA_REKEY_SENT = 0x04,
    CMS_SA_RSIP_ACKED = 0x08,
    CMS_SA_RQNT_SENT = 0x10,
    CMS_SA_RQNT_ACKED = 0x20,
};

/* One SA pair with an endpoint. Compact: see cms_sa_footprint. */
struct cms_sa {
    struct cms_sa *next;               /* SPI hash chain */
    uint32_t spi_in;                   /* ours (the table key) */
    uint32_t spi_out;                  /* the endpoint's */
    struct cms_addr ep;
    struct cms_addr local;             /* our address the exchange arrived on (xfrm export) */
    uint8_t flags;
    struct ck_kmm_suite suite;
    uint32_t grace;
    uint32_t rqnt_txid;
    int64_t created, expires;
    ck_key subkey;                     /* K of the AP-REP: the Rekey and SP Recovered HMAC keys
                                        * are derived from it when needed (wiped on free) */
    uint8_t aprep_hmac[CK_KMM_HMAC_LEN];     /* the AP Reply's HMAC, which SP Recovered covers */
    ck_esp_sa *in, *out;
    /* The ticket's restricted-calls element (prov_ad.h), NULL when the ticket has none: the
     * client may call only its numbers (call.c refuses the rest). Owned, freed with the SA. */
    struct ck_ad_restricted *restriction;
    char client[];                     /* client principal, NUL-terminated */
};

struct cms_sa_table;

/* An entry for client (copied), zeroed otherwise. */
struct cms_sa *cms_sa_alloc(const char *client);
/* Frees the ESP SAs, wipes the keys. Accepts NULL. */
void cms_sa_free(struct cms_sa *sa);
/* Bytes this SA holds: the entry with its name, both ESP SAs, its endpoint-index entry and its
 * share of the bucket arrays, allocator headers counted. */
size_t cms_sa_footprint(const struct cms_sa_table *t, const struct cms_sa *sa);

int cms_sa_table_new(size_t max_sas, struct cms_sa_table **out);
void cms_sa_table_free(struct cms_sa_table *t);
size_t cms_sa_table_count(const struct cms_sa_table *t);
size_t cms_sa_table_max(const struct cms_sa_table *t);
/* Whether an SPI is in use (a hint for allocation: insert checks again). */
bool cms_sa_table_has(struct cms_sa_table *t, uint32_t spi);
/* Inserts sa under sa->spi_in (the table takes it on success): CK_ERR_EXISTS if the SPI is in
 * use, CK_ERR_LIMIT when the table holds max_sas entries. Then records it as the endpoint's
 * newest SA and marks the previous one CMS_SA_SUPERSEDED (*prev_spi: its SPI or 0). */
int cms_sa_table_insert(struct cms_sa_table *t, struct cms_sa *sa, uint32_t *prev_spi);
/* Runs fn on the SA under its stripe lock (fn must not call back into the table).
 * CK_ERR_NOTFOUND if absent; else fn's return value. */
typedef int (*cms_sa_fn)(struct cms_sa *sa, void *arg);
int cms_sa_table_with(struct cms_sa_table *t, uint32_t spi, cms_sa_fn fn, void *arg);
/* The newest SA's SPI for an endpoint address (0 if none). */
uint32_t cms_sa_table_newest(struct cms_sa_table *t, const struct cms_addr *ep);
/* Visits every SA under its stripe's lock; fn returns 1 to remove (and free) the entry, 0 to keep
 * it, < 0 to stop. removed (may be NULL) is called for each removed SA before it is freed, still
 * under the lock. */
typedef void (*cms_sa_removed_fn)(const struct cms_sa *sa, void *arg);
int cms_sa_table_scan(struct cms_sa_table *t, cms_sa_fn fn, cms_sa_removed_fn removed,
                      void *arg);
int cms_sa_table_remove(struct cms_sa_table *t, uint32_t spi);

/* ---- server (kmm.c) --------------------------------------------------------------------- */

/* Settings a SIGHUP may change, read by the handlers under a read lock. */
struct cms_params {
    int64_t clockskew, lifetime, grace, rekey_margin, life_kbytes;
    bool ack_required;
    struct ck_kmm_suite suites[CMS_MAX_SUITES];
    size_t n_suites;
};

struct cms_stats {
    atomic_ullong kmm_ok, kmm_error, kmm_dropped, spr_ok, spr_bad;
    atomic_ullong snmp_ok;
    atomic_ullong esp_ok, esp_unknown_spi, esp_replay, esp_bad_icv, esp_expired, esp_other;
    atomic_ullong esp_pending, sig_answered, rqnt_sent, rqnt_acked;
    atomic_ullong wakeups, wakeups_limited, rekeys, sa_expired;
};

/* Sends a server-initiated KMM message (Wake Up, Rekey) from the KMM port to peer. */
typedef int (*cms_send_fn)(void *arg, const struct sockaddr *peer, socklen_t peer_len,
                           const uint8_t *msg, size_t len);

#define CMS_WAKE_SLOTS 4096

struct cms_call_core;
struct cms_prov;

struct cms_server {
    pthread_rwlock_t params_lock;
    struct cms_params params;
    ck_keyset *keys;           /* not owned */
    char service[CMS_MAX_PRINCIPAL];
    ck_rcache *rcache;                 /* owned */
    struct cms_sa_table *sas;          /* owned */
    struct cms_nonce nonce;
    cms_send_fn send_kmm;
    void *send_arg;
    /* Wake Up rate limit: one per source per second, in a fixed table of hashed slots. */
    pthread_mutex_t wake_lock;
    struct {
        uint32_t hash;
        int64_t last;
    } wake[CMS_WAKE_SLOTS];
    /* --export-xfrm */
    pthread_mutex_t xfrm_lock;
    int xfrm_fd;                       /* -1: off */
    uint16_t signaling_port;           /* for the exported encapsulation */
    int wireshark_fd;                  /* export_wireshark (under xfrm_lock); -1: off */
    struct cms_call_core *calls;       /* call control (issue 8); NULL: every command gets 200 */
    struct cms_prov *prov;             /* provisioning reports (provclient.h); NULL: off */
    int64_t fixed_now;                 /* tests: a fixed clock (0: the wall clock) */
    struct cms_stats stats;
};

/* Everything but keys, send callback and xfrm: the caller sets those. */
int cms_server_init(struct cms_server *s, const struct cms_config *cfg, ck_keyset *keys);
void cms_server_fini(struct cms_server *s);
void cms_params_from_config(struct cms_params *p, const struct cms_config *cfg);
void cms_server_set_params(struct cms_server *s, const struct cms_params *p);
int64_t cms_now(const struct cms_server *s);

/* One KMM datagram from peer (arrived on local, may be NULL): the reply to send back (AP Reply
 * or Error Reply) in reply, or *reply_len = 0 to send nothing. Never fails on hostile input:
 * what cannot be answered is dropped and counted. log_line (may be NULL, size >= 256) gets the
 * request's log line, "" when there is none. */
int cms_kmm_handle(struct cms_server *s, const uint8_t *buf, size_t len,
                   const struct sockaddr *peer, const struct sockaddr *local, uint8_t *reply,
                   size_t cap, size_t *reply_len, char *log_line, size_t log_size);

/* Wake Up to ep (rate-limited per source address unless force): 0 sent, 1 rate-limited. */
int cms_send_wakeup(struct cms_server *s, const struct cms_addr *ep, bool force);
/* Rekey for every live, not superseded SA (all) or those within the rekey margin of expiry and
 * not re-keyed yet; also removes expired SAs. Returns how many Rekeys were sent. */
size_t cms_maintenance(struct cms_server *s, bool rekey_all);
/* The Rekey message for one SA into buf (tests; cms_maintenance sends them). */
int cms_rekey_build(struct cms_server *s, const struct cms_sa *sa, int64_t now, uint8_t *buf,
                    size_t cap, size_t *len);

/* ---- signaling (signaling.c) ------------------------------------------------------------ */

/* Sends one protected datagram back to the packet's source. */
typedef void (*cms_sig_send_fn)(void *arg, const uint8_t *pkt, size_t len);

/* One datagram on the signaling port from peer: reply gets the protected answer (or nothing),
 * extra a second protected datagram to the same peer (the RQNT after the first RSIP). With send
 * (may be NULL), both are also sent through it while the SA is still locked, so that what one
 * SA protects leaves in sequence-number order even with several signaling threads. */
int cms_sig_handle(struct cms_server *s, ck_esp_engine *eng, const uint8_t *pkt, size_t len,
                   const struct sockaddr *peer, uint8_t *reply, size_t cap, size_t *reply_len,
                   uint8_t *extra, size_t extra_cap, size_t *extra_len, cms_sig_send_fn send,
                   void *send_arg);

/* xfrm export of one SA pair (both directions) or its deletion (no-op without --export-xfrm);
 * also the Wireshark esp_sa records of the pair (no-op without export_wireshark). */
void cms_xfrm_export(struct cms_server *s, const struct cms_sa *sa);
void cms_wireshark_export(struct cms_server *s, const struct cms_sa *sa);
void cms_xfrm_delete(struct cms_server *s, const struct cms_sa *sa);

/* The signaling listener: its own UDP sockets and threads (each with its ESP engine). */
struct cms_sig_server;
int cms_sig_server_bind(const char *const *listen, size_t n, struct cms_sig_server **out);
int cms_sig_server_run(struct cms_sig_server *ss, struct cms_server *s, int threads);
void cms_sig_server_describe(const struct cms_sig_server *ss, char *buf, size_t size);
uint16_t cms_sig_server_port(const struct cms_sig_server *ss);
void cms_sig_server_free(struct cms_sig_server *ss);

/* Call control's way out (struct cms_call_io.send_sa): text under the outbound SA of the pair
 * whose inbound SPI is spi, from the signaling socket to the SA's endpoint; when that SA is gone
 * (the party re-keyed and the old pair expired), under the newest live SA of client. Used under
 * the call core's lock, which serialises the use of the one ESP engine. */
struct cms_sig_out {
    struct cms_server *s;
    struct cms_sig_server *ss;
    ck_esp_engine *eng;
};
int cms_sig_send_text(void *arg, const char *client, uint32_t spi, const char *text, size_t len);

#endif
