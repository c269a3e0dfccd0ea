/* cablekey-cms call control (CONTRACT8 "Call flow"): the source and destination signaling
 * controller roles of a call as one state machine with no sockets and no clock of its own.
 *
 * The core sees decoded-from-ESP MGCP text from its parties (endpoint lines and peer
 * controllers, told apart by the SA's client principal), and sends through callbacks:
 *   send_sa       text under the outbound SA of the server-side SA pair whose inbound SPI the
 *                 party last used (an endpoint line, or a peer controller's client channel: our
 *                 answers to its XSET/XANS/XREL);
 *   peer_command  our own XSET/XANS/XREL to a peer controller over our client channel to it
 *                 (lib/endpoint there picks the txid and retransmits with it);
 *   escrow        lawful intercept (ck_li_escrow, or a fake in tests), after both ACKs;
 *   log           the one summary line per call.
 * Time is injected: every entry point takes `now` (wall-clock milliseconds since the epoch, so
 * that now / 1000 dates an escrow record), cms_call_next_timeout says when cms_call_on_timer is
 * due. Commands to endpoints are retransmitted by the core with the same txid every
 * call_retry_ms, call_tries transmissions in all; a peer command is given
 * 2 * call_retry_ms * call_tries (the peer may itself be retrying its endpoint) before the call
 * is torn down with reason peer-timeout.
 *
 * Thread safety: one mutex inside; callbacks run under it (they must not call back in).
 * Secrets: K_call lives in the call until it is released (then wiped); a command text holding it
 * is wiped when the command completes. Nothing secret is logged. */
#ifndef CMS_CALL_H
#define CMS_CALL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cablekey/intercept.h"
#include "cablekey/mgcp.h"
#include "cms.h"

#define CMS_CALL_MAX_LIVE 10000           /* calls in progress */
#define CMS_CALL_MAX_TOMBSTONES 65536     /* released calls kept to answer retransmissions */
#define CMS_CALL_LINGER_MS 32000
#define CMS_CALL_MAX_SPI_RETRIES 3        /* 533 answers after which the call fails ("spi") */
#define CMS_CALL_ID_HEX 32

struct cms_call_io {
    /* client: the party's principal, for when that SA is gone (the party re-keyed since). */
    int (*send_sa)(void *arg, const char *client, uint32_t spi, const char *text, size_t len);
    /* params: the message after its first line (parameter lines, then the SDP body after an
     * empty line), as ck_endpoint_send_command takes it. */
    int (*peer_command)(void *arg, size_t route, const char *verb, const char *params,
                        uint32_t *txid);
    /* NULL: lawful intercept off. */
    int (*escrow)(void *arg, const struct ck_li_call *call, int64_t now_s, size_t *n_escrowed);
    /* NULL: ck_log_info. */
    void (*log)(void *arg, const char *line);
    void *arg;
};

struct cms_call_stats {
    uint64_t started, connected, released, failed;
    uint64_t dropped;                 /* messages that fit no call or state */
    uint64_t retransmissions, spi_retries, escrowed, ack_mismatch;
    uint64_t restricted_refused;      /* calls a restricted-calls ticket did not allow */
};

struct cms_call_core;

/* self_name: our endpoint name towards peers ("cms@host"). cfg is copied where needed (lines,
 * routes, call settings): it may be freed afterwards. */
int cms_call_core_new(const struct cms_config *cfg, const char *self_name,
                      const struct cms_call_io *io, struct cms_call_core **out);
/* Wipes every key. Accepts NULL. */
void cms_call_core_free(struct cms_call_core *c);

/* Whether messages from this client principal belong to the core (a line, static or learnt
 * from cablekey-prov, a guest, or a route peer). */
bool cms_call_is_party(struct cms_call_core *c, const char *client);
/* The same for an SA: also true for a client whose SA is restricted (restricted-calls ticket)
 * and whose name is an unprovisioned device's (mta-<12 hex>@REALM) while it has no line: it
 * becomes a guest of the core (cms_call_set_restriction) that may call the numbers its
 * restriction allows, shows its MAC (12 hex digits) as caller id, and cannot be called. */
bool cms_call_is_party_sa(struct cms_call_core *c, const char *client, bool restricted);

/* Dynamic lines (cablekey-prov's GET /api/v1/lines snapshot): number -> principal. */
#define CMS_CALL_MAX_DYNAMIC (1 << 20)   /* dynamic lines and guests together */
#define CMS_CALL_MAX_GUESTS 65536
struct cms_dyn_line {
    char number[CMS_MAX_NUMBER + 1];
    char principal[CMS_MAX_PRINCIPAL];
    char mac[13];                        /* 12 lower-case hex digits, "" unknown */
};
/* Makes the dynamic lines exactly the snapshot v (sorted in place): lines not in it stop
 * routing at once (a call in progress ends normally), new ones route at once. A number a
 * static line has stays the static line's; invalid entries (number not 1..15 digits, empty
 * principal) and a second entry for a number are skipped. Logs (notice) "prov line add NUMBER
 * PRINCIPAL" / "prov line remove NUMBER" per change. */
int cms_call_set_dynamic_lines(struct cms_call_core *c, struct cms_dyn_line *v, size_t n,
                               size_t *added, size_t *removed);
size_t cms_call_dynamic_lines(struct cms_call_core *c);

/* The restriction of the ticket that keyed client's newest SA (NULL: none); a restricted line
 * may call only the numbers in it (the others are refused as unknown numbers, logged with the
 * device MAC). */
void cms_call_set_restriction(struct cms_call_core *c, const char *client,
                              const ck_ad_restricted *r);
/* One decrypted message (command or response) from the server-side SA spi_in, client principal
 * client. Hostile input is dropped and counted; returns 0 unless memory ran out. */
int cms_call_on_message(struct cms_call_core *c, const char *client, uint32_t spi_in,
                        const uint8_t *text, size_t len, int64_t now);
/* A response to one of our peer commands, on our client channel to route's peer. */
int cms_call_on_peer_response(struct cms_call_core *c, size_t route, uint32_t txid,
                              const uint8_t *text, size_t len, int64_t now);
/* Milliseconds from now until cms_call_on_timer is due (0: now), -1 when nothing is pending. */
int64_t cms_call_next_timeout(struct cms_call_core *c, int64_t now);
int cms_call_on_timer(struct cms_call_core *c, int64_t now);

void cms_call_get_stats(struct cms_call_core *c, struct cms_call_stats *out);
size_t cms_call_live(struct cms_call_core *c);

/* Tests: the K_call storage of a call still known (live or released), and whether it holds a
 * key. false when the call is unknown. */
bool cms_call_test_key(struct cms_call_core *c, const char *call_id,
                       uint8_t out[CK_CALL_KEY_LEN], bool *keyed);

#endif
