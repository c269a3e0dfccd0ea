/* The phone adapter of a call (CONTRACT8, docs/cablekey.md "mta phone"): an endpoint
 * (cablekey/endpoint.h) that goes off-hook, dials, rings, answers and hangs up with NCS NTFYs to
 * its controller, obeys the controller's CRCX/MDCX/DLCX, installs the call keys the controller
 * delivers (cablekey/kmm.h ck_call_derive_*) and exchanges G.711 µ-law audio with the other end
 * over RTP/SRTP (cablekey/media.h), plus one ESP-protected "HELLO <callid>" each way on the
 * direct-signaling SA pair. The media gateway simulator is the same machine with server = true.
 *
 * Design: like ck_endpoint, single-threaded with no clock and no sockets of its own. The caller
 * passes `now` (wall-clock ms) to every call, asks ck_phone_next_timeout_ms when to run
 * ck_phone_on_timer, and hands every datagram to ck_phone_on_datagram with the socket it came in
 * on: the endpoint's signaling socket (KMM and ESP with the controller), the media socket (RTP)
 * or the direct-signaling socket (ESP with the other end). Datagrams leave through one send
 * callback that names the socket.
 *
 * The controller's commands (CK_PHONE_SOCK_SIG, inside the KMM-keyed ESP channel):
 *  - CRCX without keys (the caller's side): 200 + SDP (our media address, a=X-ck-sig).
 *  - CRCX or MDCX with keys (a=X-ck-secret, a=X-ck-spi, a=X-ck-role, a=X-ck-media, optional
 *    a=X-ck-ipsec): 533 "SPI in use" when SPI or SPI+1 is used by this phone (its KMM SA pair,
 *    another call, or a held SPI); else the keys are derived and installed (two ESP SAs when
 *    a=X-ck-ipsec is present, one media context each way) and K_call is wiped at once; the answer
 *    is 200 + SDP with a=X-ck-ack (ck_call_ack_compute for the role the SDP gave). A keyless
 *    media mode (a=X-ck-media:rtp, SGCP calls to a network server) gets no ACK.
 *  - MDCX M: sendrecv (the caller's side): the call is connected, media starts.
 *  - DLCX: 250, every key of the call destroyed, the call reported (ck_phone_call_fn).
 *  Anything that does not fit (unparsable, unknown call, keys twice, bad SDP) is refused with an
 *  RFC 3435 error code and counted in stats.refused; nothing is installed. Retransmissions of a
 *  command reach the phone once: the endpoint answers them from its reply cache.
 *
 * Media: 20 ms frames (160 samples), payload type 0, sent every 20 ms from the moment the call
 * is connected (caller: MDCX sendrecv; callee: answered and the other end proven ready by its
 * HELLO or its first media packet). Received frames are placed by sequence number; a gap counts
 * as lost. Keys (SAs, media contexts) are wiped when the call ends.
 *
 * Nothing here prints or logs a key. */
#ifndef CABLEKEY_PHONE_H
#define CABLEKEY_PHONE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "cablekey/endpoint.h"
#include "cablekey/esp.h"
#include "cablekey/kmm.h"
#include "cablekey/util.h"

#define CK_PHONE_MAX_CALLS 8         /* at once (a media gateway serves several) */
#define CK_PHONE_MAX_HOLD 16         /* --hold-spi */
#define CK_PHONE_FRAME_SAMPLES 160   /* 20 ms at 8 kHz */
#define CK_PHONE_FRAME_MS 20
#define CK_PHONE_DIRECT_PORT 2427    /* inner UDP of the direct signaling, both ends */
#define CK_PHONE_HELLO_RETRY_MS 200
#define CK_PHONE_HELLO_TRIES 15

enum ck_phone_sock {
    CK_PHONE_SOCK_SIG = 1,           /* the endpoint's socket: KMM and ESP with the controller */
    CK_PHONE_SOCK_MEDIA,             /* RTP/SRTP with the other end */
    CK_PHONE_SOCK_DIRECT,            /* ESP with the other end (direct signaling) */
};

typedef int (*ck_phone_send_fn)(void *arg, enum ck_phone_sock sock, const struct sockaddr *to,
                                socklen_t to_len, const uint8_t *buf, size_t len);

/* What became of one call, when it ends. */
struct ck_phone_call_info {
    char callid[33];                 /* "" when the call failed before a CRCX named it */
    bool connected;                  /* media started */
    bool released;                   /* a DLCX ended it (else: failed) */
    char reason[32];                 /* X-CK-Reason of the DLCX, or "hangup" */
    const char *media;               /* "srtp-aes-cm", ..., "rtp", "none" */
    bool ipsec;                      /* direct ESP SA pair installed */
    struct ck_kmm_suite suite;
    uint32_t spi;
    bool direct_ok;                  /* HELLO sent and the peer's verified */
    uint64_t sent, received, lost, replayed, dropped;
    /* What this end decoded, in sequence order (valid during the callback only). */
    const int16_t *recorded;
    size_t n_recorded;
};
typedef void (*ck_phone_call_fn)(void *arg, const struct ck_phone_call_info *info);
/* A call's direct-signaling SA pair was installed (for --export-wireshark): in is peer ->
 * local, out local -> peer; numeric addresses. */
typedef void (*ck_phone_sas_fn)(void *arg, const char *callid, const ck_esp_sa *in,
                                const ck_esp_sa *out, const char *local_addr,
                                const char *peer_addr);
/* Progress for a log (no secret in it): "offhook", "dialled 5552001", "ringing <callid>", ... */
typedef void (*ck_phone_log_fn)(void *arg, const char *what);

/* The controller channel. By default the phone makes its own ck_endpoint from ep (its send,
 * callbacks and cb_arg are the phone's; ep.on_event is kept). A test or a fuzzer may replace it:
 * send_command queues a command to the controller (as ck_endpoint_send_command), ready says
 * whether the controller acknowledged the restart, and the controller's messages are handed to
 * ck_phone_on_command / ck_phone_on_response. */
struct ck_phone_channel {
    int (*send_command)(void *arg, const char *verb, const char *params, int64_t now,
                        uint32_t *txid);
    bool (*ready)(void *arg);        /* NULL: always */
    void *arg;
};

struct ck_phone_params {
    struct ck_endpoint_params ep;    /* the channel to the controller (unless channel is set) */
    struct ck_phone_channel channel; /* send_command NULL: the endpoint above */
    ck_phone_send_fn send;           /* required */
    void *send_arg;
    /* Our addresses as the other end reaches them (SDP c= / m= / a=X-ck-sig). */
    const char *media_addr;          /* numeric IPv4 or IPv6 */
    uint16_t media_port;
    uint16_t direct_port;
    /* What to do. */
    const char *dial;                /* a number: go off-hook and dial it once ready */
    int64_t talk_ms;                 /* caller: hang up this long after connected (0: 3000) */
    int64_t answer_after_ms;         /* callee: ring this long before answering */
    bool server;                     /* media gateway: answers every call (answer_after_ms) */
    const int16_t *audio;            /* 8 kHz samples sent in a loop; NULL: silence */
    size_t audio_len;
    bool record;                     /* keep what was decoded (ck_phone_call_info.recorded) */
    const uint32_t *hold_spi;        /* SPIs to treat as in use (--hold-spi) */
    size_t n_hold;
    /* Test hooks (t_call.sh): the first test_lose_acks answers carrying an ACK are lost on the
     * wire (cached by the endpoint, so a retransmission is answered); test_bad_ack returns a
     * wrong ACK (one bit flipped). */
    int test_lose_acks;
    bool test_bad_ack;
    ck_phone_call_fn on_call;
    ck_phone_sas_fn on_sas;
    ck_phone_log_fn on_log;
    void *cb_arg;
};

struct ck_phone_stats {
    uint64_t commands;               /* controller commands handled (not retransmissions) */
    uint64_t refused;                /* commands answered with an error (hostile or unfit) */
    uint64_t spi_in_use;             /* of which 533 */
    uint64_t calls_connected, calls_released, calls_failed;
    uint64_t media_dropped;          /* media datagrams that fit no call */
    uint64_t direct_dropped;         /* direct-signaling datagrams that fit no call or failed */
    uint64_t ntfy_refused;           /* our NTFYs answered with an error */
};

typedef struct ck_phone ck_phone;

int ck_phone_new(const struct ck_phone_params *p, ck_phone **out);
/* Ends every call (no report), wipes every key; accepts NULL. */
void ck_phone_free(ck_phone *ph);
/* Starts the endpoint (the AP exchange with the controller). */
int ck_phone_start(ck_phone *ph, int64_t now);
int64_t ck_phone_next_timeout_ms(const ck_phone *ph, int64_t now);
int ck_phone_on_timer(ck_phone *ph, int64_t now);
/* Hostile input is counted and dropped: 0 unless sending failed or memory ran out. */
int ck_phone_on_datagram(ck_phone *ph, enum ck_phone_sock sock, const uint8_t *buf, size_t len,
                         const struct sockaddr *from, socklen_t from_len, int64_t now);

/* The controller's messages (what the endpoint's callbacks call; tests and fuzzers call them
 * directly with a replaced channel). on_command writes the whole response into reply. */
void ck_phone_on_command(ck_phone *ph, const char *text, size_t len, int64_t now,
                         ck_writer *reply);
void ck_phone_on_response(ck_phone *ph, uint32_t txid, int code, const char *text, size_t len,
                          int64_t now);

/* Goes on-hook (NTFY O: hu) in every call; the controller's DLCX ends them. */
int ck_phone_hangup(ck_phone *ph, int64_t now);

/* Calls reported so far, and whether the phone has nothing left to do: the caller's one call
 * ended, or a callee's calls (counted by the caller of this) ended. */
size_t ck_phone_calls_ended(const ck_phone *ph);
size_t ck_phone_active_calls(const ck_phone *ph);
/* Key objects alive in all calls (ESP SAs, media contexts): 0 once every call has ended. */
size_t ck_phone_live_keys(const ck_phone *ph);
void ck_phone_get_stats(const ck_phone *ph, struct ck_phone_stats *out);
/* The endpoint (NULL with a replaced channel), for its state and statistics. */
ck_endpoint *ck_phone_endpoint(ck_phone *ph);

#endif
