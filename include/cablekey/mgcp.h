/* NCS/MGCP-shaped call signaling (RFC 3435 message syntax, PacketCable NCS profile) and the
 * small SDP subset (RFC 4566) that carries a call's media address and its keys: one parser and
 * one builder for every message the endpoints, the signaling controllers (cablekey-cms) and the
 * controller-to-controller channel exchange. The wire contract is docs/PROTOCOL.md "Call
 * signaling"; this header is its code.
 *
 * A message is a first line, parameter lines "X: value" (one- or two-letter or "X-..." names,
 * RFC 3435 §3.2.2), CRLF line ends (a bare LF is accepted on input), then, after one empty line, an
 * optional SDP body. Parsers take hostile input: every field is bounded by the limits below, a
 * refusal is CK_ERR_DECODE (malformed) or CK_ERR_LIMIT (too large / too many), and a parsed
 * message never points outside the buffer it came from (strings are copied into the struct).
 *
 * Secrets: the SDP key attribute (a=X-ck-secret) carries a call sub-key. ck_mgcp_msg_clear and
 * ck_sdp_clear wipe it; nothing here logs. */
#ifndef CABLEKEY_MGCP_H
#define CABLEKEY_MGCP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cablekey/kmm.h"
#include "cablekey/util.h"

#define CK_MGCP_MAX_MSG 1400          /* one message, body included: one datagram in ESP */
#define CK_MGCP_MAX_VERB 4            /* RFC 3435 verbs are four capitals */
#define CK_MGCP_MAX_ENDPOINT 128      /* "aaln/1@host.example.net" */
#define CK_MGCP_MAX_PARAMS 16         /* parameter lines in one message */
#define CK_MGCP_MAX_PARAM_VALUE 256   /* one parameter's value */
#define CK_MGCP_MAX_COMMENT 64        /* a response's text after the txid ("OK") */
#define CK_MGCP_MAX_CALLID 32         /* C: hex digits (RFC 3435: at most 32) */
#define CK_MGCP_MAX_DIGITS 32         /* a dialled number */
#define CK_MGCP_MAX_TXID 999999999u

/* ---- first line and parameters ---- */

struct ck_mgcp_param {
    char name[16];                    /* "C", "M", "O", "X", "L", "E", "X-CK-Reason", ... */
    char value[CK_MGCP_MAX_PARAM_VALUE];
};

struct ck_mgcp_msg {
    bool is_response;
    /* command: VERB txid endpoint MGCP 1.0 [NCS 1.0] */
    char verb[CK_MGCP_MAX_VERB + 1];  /* "NTFY", "CRCX", "MDCX", "DLCX", "RQNT", "RSIP",
                                       * controller verbs "XSET", "XANS", "XREL" */
    char endpoint[CK_MGCP_MAX_ENDPOINT];
    /* response: code txid [comment] */
    int code;                         /* 100..999 */
    char comment[CK_MGCP_MAX_COMMENT];
    uint32_t txid;                    /* 1..CK_MGCP_MAX_TXID */
    struct ck_mgcp_param params[CK_MGCP_MAX_PARAMS];
    size_t n_params;
    bool has_sdp;
    char sdp[CK_MGCP_MAX_MSG];        /* the body as received (NUL-terminated), parse it with
                                       * ck_sdp_parse */
    size_t sdp_len;
};

/* Parses one message of len bytes (at most CK_MGCP_MAX_MSG). Verbs: four capitals; txid decimal
 * 1..999999999 (at most 9 digits); the protocol version must be "MGCP 1.0" (optionally followed
 * by a profile "NCS 1.0"); parameter names are one or two letters (RFC 3435 also has ES, RM, MD,
 * PL) or X-token, values printable ASCII; a duplicate parameter is CK_ERR_DECODE. On error *out
 * is zeroed. */
int ck_mgcp_parse(const uint8_t *buf, size_t len, struct ck_mgcp_msg *out);

/* The value of parameter name (case-insensitive), or NULL. */
const char *ck_mgcp_param(const struct ck_mgcp_msg *m, const char *name);

/* Builders: append CRLF-terminated text to w. A command's first line is
 * "VERB txid endpoint MGCP 1.0 NCS 1.0"; a response's "code txid comment". params may be NULL
 * when n_params is 0; sdp (may be NULL) is appended after an empty line. CK_ERR_INVAL for a
 * verb/endpoint/param that the parser would refuse (so whatever we build parses);
 * CK_ERR_LIMIT past CK_MGCP_MAX_MSG or w's maximum. */
int ck_mgcp_build_command(const char *verb, uint32_t txid, const char *endpoint,
                          const struct ck_mgcp_param *params, size_t n_params, const char *sdp,
                          ck_writer *w);
int ck_mgcp_build_response(int code, uint32_t txid, const char *comment,
                           const struct ck_mgcp_param *params, size_t n_params, const char *sdp,
                           ck_writer *w);

/* Observed events (NTFY's O: line): "hd" (off-hook), "hu" (on-hook), or dialled digits in
 * RFC 3435's list form "5,5,5,2,0,0,1" (1..CK_MGCP_MAX_DIGITS digits 0-9, '*', '#'). */
enum ck_mgcp_event { CK_MGCP_EV_OFFHOOK = 1, CK_MGCP_EV_ONHOOK, CK_MGCP_EV_DIGITS };
int ck_mgcp_parse_observed(const char *value, enum ck_mgcp_event *ev, char *digits,
                           size_t digits_size);
/* "5552001" -> "5,5,5,2,0,0,1" */
int ck_mgcp_format_digits(const char *digits, char *out, size_t size);

/* ---- SDP subset (RFC 4566) with cablekey's call-key attributes ----
 *
 * v=0 / o=- <sess-id> <sess-version> IN IP4|IP6 <addr> / s=- / c=IN IP4|IP6 <addr> / t=0 0 /
 * m=audio <port> RTP/AVP|RTP/SAVP 0 / a=rtpmap:0 PCMU/8000 / a=ptime:20, then the cablekey
 * attributes (docs/PROTOCOL.md "Call signaling"):
 *   a=X-ck-secret:base64:<K_call, 32 bytes>      the call sub-key (CRCX/MDCX/XSET only)
 *   a=X-ck-spi:<8 hex digits>                     SPI (s->d); the reverse SA uses SPI+1
 *   a=X-ck-role:source|destination                which end of the call the receiver is
 *   a=X-ck-media:srtp-aes-cm|srtp-gcm|rtp-3des|rtp-3des-mac|rtp
 *   a=X-ck-ipsec:<suite short name>[ compat-seq]  direct ESP between the ends (absent: none,
 *                                                 as in the SGCP variant and CTA-to-server legs)
 *   a=X-ck-sig:<port>                             the end's direct-signaling UDP port (same
 *                                                 address as c=)
 *   a=X-ck-ack:<40 hex digits>                    the ACK (kmm.h ck_call_ack_compute), in the
 *                                                 200 to a keyed CRCX/MDCX and in the 200 to XSET
 * Unknown a= lines are ignored; other line types are refused. */

enum ck_sdp_media_mode {
    CK_SDP_MEDIA_NONE = 0,            /* no X-ck-media line */
    CK_SDP_MEDIA_RTP,                 /* plain RTP (no key) */
    CK_SDP_MEDIA_SRTP_AES_CM,         /* SRTP AES_CM_128_HMAC_SHA1_80 (default) */
    CK_SDP_MEDIA_SRTP_GCM,            /* SRTP AEAD_AES_128_GCM */
    CK_SDP_MEDIA_RTP_3DES,            /* seed's RTP encryption, compatibility only (weak) */
    CK_SDP_MEDIA_RTP_3DES_MAC,        /* the same with its optional MAC */
};

struct ck_sdp {
    int family;                       /* 4 or 6 (c= line); 0 when there is no c= line */
    char addr[64];                    /* numeric address */
    uint16_t media_port;              /* m=audio port; 0 = none */
    bool secure_profile;              /* RTP/SAVP rather than RTP/AVP */
    uint64_t session_id;
    bool has_key;
    uint8_t key[CK_CALL_KEY_LEN];     /* K_call (secret) */
    bool has_spi;
    uint32_t spi;
    enum ck_call_ack_role role;       /* 0 when absent */
    enum ck_sdp_media_mode media;
    bool has_ipsec;
    struct ck_kmm_suite ipsec_suite;
    bool compat_seq;
    uint16_t sig_port;                /* 0 when absent */
    bool has_ack;
    uint8_t ack[CK_CALL_ACK_LEN];
};

/* Parses an SDP body (at most CK_MGCP_MAX_MSG bytes). CK_ERR_DECODE for a malformed or
 * out-of-range value (a key that is not 32 bytes, an SPI outside CK_CALL_SPI_MIN..MAX, an ACK
 * that is not 20 bytes, a port of 0, an unknown media mode or suite), a duplicate cablekey
 * attribute, or a missing v=/m= line. On error *out is wiped. */
int ck_sdp_parse(const char *text, size_t len, struct ck_sdp *out);
/* Writes s as SDP text (NUL-terminated) into buf; only the fields that are set appear.
 * CK_ERR_LIMIT when it does not fit. */
int ck_sdp_build(const struct ck_sdp *s, char *buf, size_t size, size_t *len);

const char *ck_sdp_media_name(enum ck_sdp_media_mode m);       /* "srtp-aes-cm", ... */
int ck_sdp_media_parse(const char *name, enum ck_sdp_media_mode *out);

/* Wipe the secrets (the key) and the rest. NULL is fine. */
void ck_sdp_clear(struct ck_sdp *s);
void ck_mgcp_msg_clear(struct ck_mgcp_msg *m);

#endif
