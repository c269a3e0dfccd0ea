/* The endpoint (MTA) side of PacketCable key management and protected signaling: one AP Request /
 * AP Reply round trip with a CMS over KMM (cablekey/kmm.h), a pair of ESP SAs (cablekey/esp.h)
 * from the keys both sides derive, and NCS/MGCP-shaped signaling inside ESP
 * (../../docs/cablekey.md, "mta kmm"; the wire contract is the issue's CONTRACT7).
 *
 * Design: a single-threaded state machine with no threads and no clock of its own. The caller
 * owns time and the socket's readiness: it passes `now` (wall-clock milliseconds since the Unix
 * epoch) to every call, asks ck_endpoint_next_timeout_ms when to call ck_endpoint_on_timer next,
 * and hands every datagram that arrives on the endpoint's one UDP socket to
 * ck_endpoint_on_datagram. Datagrams leave through a send callback (or sendto on a descriptor),
 * so a unit test drives the machine through hours of virtual time without sockets, and a load
 * generator multiplexes thousands of endpoints on one thread. ck_endpoint_run is the blocking
 * loop the CLI uses.
 *
 * Wall-clock time is used because the Rekey timestamp and ESP hard lifetimes are absolute; the
 * Kerberos authenticator's ctime comes from the system clock (ck_ap_req_build), so the injected
 * clock only moves timers, lifetimes and the Rekey skew check.
 *
 * Behaviour (CONTRACT7):
 *  - AP Request: ticket + authenticator (mutual-required), server nonce (0 when the endpoint
 *    starts, echoed after a Wake Up or Rekey), ASD = a fresh inbound SPI (random, >= 256, not one
 *    of ours), the offered suites, Re-establish; sealed with the AP-REQ HMAC key.
 *  - AP Reply: accepted only from the CMS asked, for the outstanding exchange: KRB AP-REP decrypted
 *    and matched to our authenticator (ck_ap_rep_verify), a sub-key present (refused otherwise),
 *    then the KMM HMAC under the sub-key's AP-REP key, exactly one suite that we offered, a
 *    non-zero server SPI and lifetime. Then both ESP SAs; SP Recovered when ACK-required (sent
 *    again with signaling retransmissions until the server's first protected packet arrives;
 *    signaling on the new SA waits 50 ms for the server to process it).
 *  - Re-key at lifetime - grace (lifetime / 2 when grace >= lifetime); the old inbound SA keeps
 *    accepting until it expires.
 *  - No AP Reply: retransmit with backoff nominal * 2^i capped at max (ck_kdc_backoff_ms), `tries`
 *    transmissions in all, then fail over to the next CMS; after the last CMS, FAILED.
 *  - Wake Up from a configured CMS naming our service: AP Request to it with the nonce echoed.
 *    Rekey: HMAC under the current SA's Rekey key, our service, timestamp within clockskew, not a
 *    repeat of the last one accepted: AP Request with its nonce; anything else is ignored and
 *    counted.
 *  - Signaling: commands get decimal transaction ids 1..999999999, are sent under ESP (inner UDP
 *    2427 -> 2727) and retransmitted every sig_timeout_ms up to sig_tries transmissions; when one
 *    runs out, the SA is presumed lost and the endpoint re-establishes (AP Request with
 *    Re-establish = 1, one round trip) and then resends what is unanswered. Commands from the
 *    server (RQNT, ...) are answered "200 <txid> OK". After CK_ENDPOINT_MAX_REESTABLISH
 *    re-establishments in a row with no protected packet from the server in between, the next
 *    loss counts as the server not answering (fail over).
 *
 * Secrets (keys, sub-keys) live only inside the endpoint and are wiped by ck_endpoint_free;
 * nothing here prints or logs. */
#ifndef CABLEKEY_ENDPOINT_H
#define CABLEKEY_ENDPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "cablekey/client.h"
#include "cablekey/kmm.h"
#include "cablekey/util.h"

#define CK_ENDPOINT_MAX_CMS 8
#define CK_ENDPOINT_MAX_PENDING 64           /* unanswered commands in flight */
#define CK_ENDPOINT_MAX_SIGNAL 1400          /* one signaling message (text) */
#define CK_ENDPOINT_DEFAULT_SIG_PORT 4500    /* the server's UDP-encapsulated ESP port */
#define CK_ENDPOINT_MGCP_GW_PORT 2427        /* inner UDP: endpoint (gateway) */
#define CK_ENDPOINT_MGCP_CA_PORT 2727        /* inner UDP: call agent */
#define CK_ENDPOINT_DEFAULT_SIG_TIMEOUT_MS 1000
#define CK_ENDPOINT_DEFAULT_SIG_TRIES 4
#define CK_ENDPOINT_DEFAULT_CLOCKSKEW 300
#define CK_ENDPOINT_MAX_REESTABLISH 3

enum ck_endpoint_state {
    CK_ENDPOINT_IDLE,        /* nothing sent yet */
    CK_ENDPOINT_KEYING,      /* AP Request outstanding, no SA */
    CK_ENDPOINT_ESTABLISHED, /* an SA pair (an AP Request may be outstanding to re-key) */
    CK_ENDPOINT_FAILED,      /* every configured CMS stopped answering */
};

/* Events for a log or a test (no secret in them). */
enum ck_endpoint_event {
    CK_ENDPOINT_EV_AP_REQ_SENT,      /* detail: "cms A nonce N reestablish R try T" */
    CK_ENDPOINT_EV_ESTABLISHED,      /* an SA pair is up: "suite S spi in X out Y lifetime L" */
    CK_ENDPOINT_EV_FAILOVER,         /* moved to the next CMS */
    CK_ENDPOINT_EV_FAILED,
    CK_ENDPOINT_EV_REFUSED,          /* a KMM message was refused: detail says why */
    CK_ENDPOINT_EV_ERROR_REPLY,      /* the server sent an Error Reply: "KRB-ERROR code" */
    CK_ENDPOINT_EV_SA_LOST,          /* signaling ran out of retries: re-establishing */
    CK_ENDPOINT_EV_ESP_DROPPED,      /* an ESP packet failed to verify / was a replay */
};

typedef int (*ck_endpoint_send_fn)(void *arg, const struct sockaddr *to, socklen_t to_len,
                                   const uint8_t *buf, size_t len);
typedef void (*ck_endpoint_event_fn)(void *arg, enum ck_endpoint_event ev, const char *detail);
/* A response to one of our commands (code 200, ...), received under protection. */
typedef void (*ck_endpoint_response_fn)(void *arg, uint32_t txid, int code);
/* A command from the server (already answered 200): verb ("RQNT"), its txid and the whole text. */
typedef void (*ck_endpoint_command_fn)(void *arg, const char *verb, uint32_t txid,
                                       const char *text, size_t len);

/* A response to one of our commands with its whole text (parameters and SDP body), so a caller
 * can read what came back (a call's media address and ACK). */
typedef void (*ck_endpoint_response_text_fn)(void *arg, uint32_t txid, int code,
                                             const char *text, size_t len);
/* A command from the server. The callback writes the whole response ("200 <txid> OK\r\n" and
 * whatever follows) into reply; when it writes nothing the endpoint answers "200 <txid> OK".
 * A retransmission of a command already answered (same txid within the last
 * CK_ENDPOINT_REPLY_CACHE commands) gets the same response again without a second call, as
 * RFC 3435 §3.5 requires. text is the whole command. */
#define CK_ENDPOINT_REPLY_CACHE 32
typedef void (*ck_endpoint_command_reply_fn)(void *arg, const char *verb, uint32_t txid,
                                             const char *text, size_t len, ck_writer *reply);

struct ck_endpoint_cms {
    struct sockaddr_storage kmm;     /* the CMS's KMM address (port 1293 by default) */
    socklen_t kmm_len;
    uint16_t sig_port;               /* its ESP port (0: CK_ENDPOINT_DEFAULT_SIG_PORT) */
};

/* Zero fields take the defaults. */
struct ck_endpoint_params {
    const ck_creds *creds;           /* required: a ticket for the CMS service (copied) */
    const struct ck_endpoint_cms *cms; /* 1..CK_ENDPOINT_MAX_CMS, tried in order */
    size_t n_cms;
    const struct ck_kmm_suite *suites; /* offered, strongest first; NULL: sha1-aes128,
                                        * sha1-3des, sha1-null */
    size_t n_suites;
    int backoff_nominal_ms;          /* 0: 3000 */
    int backoff_max_ms;              /* 0: 20000 */
    int backoff_tries;               /* AP Requests to one CMS before failing over; 0: 5 */
    int sig_timeout_ms;              /* 0: CK_ENDPOINT_DEFAULT_SIG_TIMEOUT_MS */
    int sig_tries;                   /* 0: CK_ENDPOINT_DEFAULT_SIG_TRIES */
    int64_t clockskew;               /* seconds, for Rekey timestamps; 0: 300 */
    const char *host;                /* endpoint host in "aaln/1@HOST"; NULL: "localhost" */
    bool no_rsip;                    /* do not send RSIP when the first SA comes up */
    ck_endpoint_send_fn send;        /* NULL: sendto(fd, ...) */
    void *send_arg;
    int fd;                          /* the UDP socket when send is NULL */
    ck_endpoint_event_fn on_event;
    ck_endpoint_response_fn on_response;
    ck_endpoint_command_fn on_command;
    void *cb_arg;
    /* Issue 8 (calls). All optional. */
    const char *endpoint_name;       /* the whole endpoint name of our commands ("aaln/1@HOST",
                                      * or "cms@HOST" for a controller's channel to a peer);
                                      * NULL: "aaln/1@" + host */
    ck_endpoint_response_text_fn on_response_text; /* also gets the response's whole text */
    ck_endpoint_command_reply_fn on_command_reply; /* answers server commands itself */
};

struct ck_endpoint_stats {
    uint64_t exchanges;              /* AP exchanges completed (SA pairs made) */
    uint64_t rekeys;                 /* of which re-keys of a live SA (timer or Rekey message) */
    uint64_t reestablished;          /* of which after the SA was presumed lost */
    uint64_t failovers;
    uint64_t ap_req_sent;            /* AP Request datagrams, retransmissions included */
    uint64_t wakeups;                /* Wake Ups acted on */
    uint64_t rekey_msgs;             /* Rekey messages acted on */
    uint64_t kmm_ignored;            /* KMM messages refused or ignored (bad HMAC, stale, ...) */
    uint64_t error_replies;
    uint64_t esp_in, esp_out;
    uint64_t esp_dropped;            /* failed ICV, replay, unknown SPI, expired, undecodable */
    uint64_t dropped;                /* datagrams from nowhere we know, undecodable KMM */
    uint64_t commands_sent;          /* our commands (first transmissions) */
    uint64_t retransmissions;        /* of our commands */
    uint64_t responses;              /* responses matched to our commands */
    uint64_t commands_received;      /* server commands answered */
    uint64_t commands_repeated;      /* retransmitted server commands answered from the reply
                                      * cache (not counted in commands_received) */
    uint64_t rqnt_received;
};

typedef struct ck_endpoint ck_endpoint;

int ck_endpoint_new(const struct ck_endpoint_params *p, ck_endpoint **out);
/* Wipes keys and sub-keys; accepts NULL. */
void ck_endpoint_free(ck_endpoint *ep);

/* Sends the first AP Request to the first CMS. */
int ck_endpoint_start(ck_endpoint *ep, int64_t now);
/* Milliseconds from now until ck_endpoint_on_timer should run (0: now), -1 if no timer. */
int64_t ck_endpoint_next_timeout_ms(const ck_endpoint *ep, int64_t now);
/* Runs whatever is due at now (retransmissions, failover, re-key). */
int ck_endpoint_on_timer(ck_endpoint *ep, int64_t now);
/* One datagram received on the endpoint's socket. Hostile input is counted and dropped: the
 * return value is 0 unless sending failed or memory ran out. */
int ck_endpoint_on_datagram(ck_endpoint *ep, const uint8_t *buf, size_t len,
                            const struct sockaddr *from, socklen_t from_len, int64_t now);

/* Queues the command "VERB <txid> aaln/1@HOST MGCP 1.0 NCS 1.0\r\n" + params (CRLF-terminated
 * lines, may be "") and sends it under ESP as soon as an SA is up. CK_ERR_LIMIT when
 * CK_ENDPOINT_MAX_PENDING commands are unanswered or the text is too long. */
int ck_endpoint_send_command(ck_endpoint *ep, const char *verb, const char *params, int64_t now,
                             uint32_t *txid);

enum ck_endpoint_state ck_endpoint_state(const ck_endpoint *ep);
void ck_endpoint_get_stats(const ck_endpoint *ep, struct ck_endpoint_stats *out);
/* Unanswered commands (queued or in flight). */
size_t ck_endpoint_pending(const ck_endpoint *ep);
/* Whether the first RSIP was answered (false with no_rsip). */
bool ck_endpoint_restarted(const ck_endpoint *ep);
/* What the current SA pair is (false without one). */
struct ck_endpoint_sa_info {
    size_t cms_index;
    struct ck_kmm_suite suite;
    uint32_t spi_in, spi_out;
    int64_t expires_ms, rekey_at_ms;
    bool ack_pending;                /* SP Recovered sent, nothing protected heard yet */
};
bool ck_endpoint_sa_info(const ck_endpoint *ep, struct ck_endpoint_sa_info *out);
/* Index of the CMS in use. */
size_t ck_endpoint_cms_index(const ck_endpoint *ep);
/* Why the endpoint FAILED ("" otherwise). */
const char *ck_endpoint_failure(const ck_endpoint *ep);
/* The endpoint lost its SA pair (a reboot, tests): drops it and re-establishes with the same
 * CMS (AP Request with Re-establish = 1). */
int ck_endpoint_forget_sa(ck_endpoint *ep, int64_t now);

/* Test hook for the lost-answer paths: called from on_command_reply, the response being
 * written is cached (a retransmission of the command gets it) but this first transmission is
 * not sent, as if the network had lost it. */
void ck_endpoint_drop_reply(ck_endpoint *ep);

/* Blocking loop on fd (the socket given in the params): polls, reads datagrams, runs timers with
 * the wall clock, until done() returns true, the endpoint FAILED, or deadline_ms (wall clock ms;
 * 0: none) passes. done runs after every event (so it may queue commands) and may set *wake_ms
 * (preset to -1) to the wall-clock time it wants to run again. Returns 0, CK_ERR_TIMEOUT at the
 * deadline or when the endpoint FAILED (ck_endpoint_failure says why), or a socket error. */
typedef bool (*ck_endpoint_done_fn)(ck_endpoint *ep, void *arg, int64_t now, int64_t *wake_ms);
int ck_endpoint_run(ck_endpoint *ep, int fd, int64_t deadline_ms, ck_endpoint_done_fn done,
                    void *arg);
/* Wall clock in milliseconds since the epoch. */
int64_t ck_endpoint_now_ms(void);

/* The first line of an NCS/MGCP-shaped message: a response "CODE TXID ..." or a command
 * "VERB TXID ..." (VERB 1..15 capitals, TXID decimal 1..999999999). CK_ERR_DECODE otherwise. */
struct ck_endpoint_signal {
    bool is_response;
    int code;                        /* responses */
    char verb[16];                   /* commands */
    uint32_t txid;
};
int ck_endpoint_signal_parse(const uint8_t *data, size_t len, struct ck_endpoint_signal *out);

/* A comma- or blank-separated list of IPsec suite short names (ck_kmm_suite_short_name:
 * "sha1-aes128", "sha1-3des", "sha1-null", "md5-aes128", ...), at most max. */
int ck_endpoint_suites_parse(const char *list, struct ck_kmm_suite *out, size_t max, size_t *n);

/* ---------------------------------------------------------------------------------------------
 * Credentials for the endpoint.
 */

/* Reads an MIT FILE ccache (format 0x0504, what MIT and Heimdal write) into *creds (n entries; free them with
 * ck_ccache_creds_free). Configuration entries (X-CACHECONF:) are skipped. Limits: 1 MiB file,
 * 64 credentials. *default_client (may be NULL) receives the default principal. parse: the same
 * from memory (errors without a file name). */
#define CK_CCACHE_MAX_CREDS 64
int ck_ccache_read(const char *path, ck_creds ***creds, size_t *n, ck_principal **default_client);
int ck_ccache_parse(const uint8_t *data, size_t len, ck_creds ***creds, size_t *n,
                    ck_principal **default_client);
void ck_ccache_creds_free(ck_creds **creds, size_t n);

/* The KDCs of realm from the krb5.conf that KRB5_CONFIG names (a colon-separated list, the first
 * readable file with the realm wins; /etc/krb5.conf without it), as MIT's tools find them:
 * [realms] REALM = { kdc = host[:port] }. Strings copied into buf (size bytes), pointers in kdcs.
 * CK_ERR_NOTFOUND when no file names a KDC for the realm. */
int ck_krb5conf_kdcs(const char *realm, char *buf, size_t size, const char **kdcs, size_t max,
                     size_t *n);

/* A ticket for service (e.g. "cms/host@REALM"; realm defaults to the client's) from a ccache: the
 * ticket itself when the ccache holds one valid at now (seconds), else a TGS exchange with the
 * ccache's TGT over t (kdcs from --kdc or ck_krb5conf_kdcs, resolved by the caller when t has
 * none: pass t->n_kdcs == 0 to look them up in krb5.conf). *from_tgs says which. */
int ck_endpoint_get_ticket(const char *ccache, const char *service, const ck_kdc_transport *t,
                           int64_t now, ck_creds **out, bool *from_tgs);

#endif
