/* Media between phone adapters: RTP packets (RFC 3550), G.711 µ-law samples (ITU-T G.711) and
 * SRTP (RFC 3711, RFC 7714) on libsrtp2.
 *
 * Conventions:
 *   - Functions return 0 or a negative CK_ERR_* with context (ck_error_context()).
 *   - Parsers take hostile input: every length is checked against the buffer and the explicit
 *     limits below; a refusal is CK_ERR_DECODE (malformed) or CK_ERR_LIMIT (too large).
 *   - An SRTP context protects or unprotects one direction of one call. It is not thread-safe:
 *     one thread at a time per context (libsrtp2 keeps per-stream state). */
#ifndef CABLEKEY_MEDIA_H
#define CABLEKEY_MEDIA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cablekey/util.h"

/* ---- RTP (RFC 3550 §5.1) ---- */

#define CK_RTP_VERSION 2
#define CK_RTP_HEADER_LEN 12      /* fixed header, without CSRCs */
#define CK_RTP_MAX_CSRC 15        /* the CC field's 4 bits */
/* Largest RTP packet accepted or built (a 20 ms G.711 frame is 172 bytes; this leaves room for
 * wideband codecs while staying under an Ethernet MTU with the SRTP trailer). */
#define CK_RTP_MAX_PACKET 1400
#define CK_RTP_PT_PCMU 0          /* RFC 3551 static payload type of G.711 µ-law, 8 kHz */

struct ck_rtp_header {
    bool marker;
    uint8_t payload_type;         /* 0..127 */
    uint16_t seq;
    uint32_t timestamp;
    uint32_t ssrc;
    uint8_t csrc_count;           /* 0..CK_RTP_MAX_CSRC */
    uint32_t csrc[CK_RTP_MAX_CSRC];
    bool has_ext;                 /* header extension (RFC 3550 §5.3.1) present */
    uint16_t ext_profile;         /* "defined by profile" field */
    const uint8_t *ext_data;      /* ext_len bytes, a multiple of 4; points into the packet
                                   * (parse) or the caller's buffer (build) */
    size_t ext_len;
};

struct ck_rtp_packet {
    struct ck_rtp_header hdr;
    const uint8_t *payload;       /* points into the parsed buffer */
    size_t payload_len;           /* without padding */
    uint8_t padding_len;          /* 0 when the P bit is clear, else 1..255 (the count byte
                                   * included) */
};

/* Parses an RTP packet of len bytes. CK_ERR_DECODE: not version 2, shorter than its header,
 * CSRCs or extension, or padding that is zero or longer than what follows the header;
 * CK_ERR_LIMIT: longer than CK_RTP_MAX_PACKET. On error *out is zeroed. */
int ck_rtp_parse(const uint8_t *buf, size_t len, struct ck_rtp_packet *out);

/* Appends an RTP packet (hdr, payload, then padding_len bytes of padding, the last one being the
 * count; 0 = no padding and the P bit clear) to w. CK_ERR_INVAL: payload type > 127, csrc_count >
 * 15, ext_len not a multiple of 4 or above 4 * 65535, ext_data NULL with ext_len > 0;
 * CK_ERR_LIMIT: the packet would exceed CK_RTP_MAX_PACKET or w's maximum. */
int ck_rtp_build(const struct ck_rtp_header *hdr, const uint8_t *payload, size_t payload_len,
                 uint8_t padding_len, ck_writer *w);

/* ---- G.711 µ-law (ITU-T G.711 Table 2a, 16-bit linear PCM scaled as in common practice:
 * code 0x00 = -32124, 0x80 = +32124, 0xFF and 0x7F = 0) ---- */

uint8_t ck_ulaw_encode(int16_t pcm);
int16_t ck_ulaw_decode(uint8_t code);
/* n samples each way; in and out may not overlap. */
void ck_ulaw_encode_buf(const int16_t *in, size_t n, uint8_t *out);
void ck_ulaw_decode_buf(const uint8_t *in, size_t n, int16_t *out);

/* ---- SRTP (RFC 3711) ---- */

enum ck_srtp_profile {
    CK_SRTP_AES128_CM_HMAC_SHA1_80 = 1, /* RFC 3711 default: AES-CM, 80-bit HMAC-SHA1 tag */
    CK_SRTP_AEAD_AES_128_GCM = 2,       /* RFC 7714: AES-128-GCM, 16-byte tag */
};

enum ck_srtp_direction {
    CK_SRTP_SEND = 1,             /* protect: packets this side sends */
    CK_SRTP_RECV = 2,             /* unprotect: packets this side receives */
};

#define CK_SRTP_KEY_LEN 16              /* master key, both profiles */
#define CK_SRTP_AES_CM_SALT_LEN 14      /* master salt, AES_CM_128_HMAC_SHA1_80 */
#define CK_SRTP_GCM_SALT_LEN 12         /* master salt, AEAD_AES_128_GCM */
/* Bytes a protect call may write past the packet: libsrtp2 requires room for its largest
 * trailer (tag + MKI) whatever the profile, even though 10 (HMAC-SHA1-80) or 16 (GCM) is
 * used. */
#define CK_SRTP_TRAILER_ROOM 144

typedef struct ck_srtp ck_srtp;

struct ck_srtp_stats {
    uint64_t packets;             /* protected (SEND) or accepted (RECV) */
    uint64_t replayed;            /* RECV: refused as replays (CK_ERR_REPLAY) */
    uint64_t bad_auth;            /* RECV: refused by the tag (CK_ERR_INTEGRITY) */
    uint64_t malformed;           /* RECV: not an RTP packet (CK_ERR_DECODE / CK_ERR_LIMIT) */
};

/* Creates a context for one direction of any SSRC from a master key and salt (lengths as
 * above for the profile, else CK_ERR_INVAL). Replay protection is on with libsrtp2's default
 * window (128 packets) and a sender refuses to reuse a sequence number. The key material is
 * copied; the caller wipes its own copy. srtp_init runs once per process. */
int ck_srtp_new(enum ck_srtp_profile profile, enum ck_srtp_direction dir, const uint8_t *key,
                size_t key_len, const uint8_t *salt, size_t salt_len, ck_srtp **out);

/* Protects the RTP packet of *len bytes in buf in place; cap is buf's size and must be at least
 * *len + CK_SRTP_TRAILER_ROOM (CK_ERR_INVAL). On success *len is the SRTP packet's length.
 * CK_ERR_DECODE/CK_ERR_LIMIT for a packet ck_rtp_parse refuses; CK_ERR_REPLAY when the sequence
 * number was already sent; CK_ERR_INVAL on a receive context. */
int ck_srtp_protect(ck_srtp *s, uint8_t *buf, size_t *len, size_t cap);

/* Unprotects the SRTP packet of *len bytes in buf in place; on success *len is the RTP packet's
 * length. CK_ERR_INTEGRITY: the tag does not verify (forged, modified or another key);
 * CK_ERR_REPLAY: already accepted or older than the window; CK_ERR_DECODE/CK_ERR_LIMIT: not an
 * RTP packet. Every refusal is counted and leaves the replay window unchanged. */
int ck_srtp_unprotect(ck_srtp *s, uint8_t *buf, size_t *len);

void ck_srtp_get_stats(const ck_srtp *s, struct ck_srtp_stats *out);

/* Frees the context and wipes its keys (libsrtp2 zeroes its session keys on dealloc); accepts
 * NULL. */
void ck_srtp_free(ck_srtp *s);

/* ---- The seed's RTP encryption (compatibility mode only; WEAK) ----
 * Seed 002's media encryption, kept for interoperability with equipment built to it: the RTP
 * payload is encrypted with 3-key 3DES-CBC (OpenSSL EVP des-ede3-cbc), each packet on its own
 * with IV 0 for its first block (the seed's rule: equal payload prefixes under one key give equal
 * ciphertext, one reason this mode is weak); the header stays in clear. Padding (RFC 3550's P
 * bit) and the optional MAC (HMAC-SHA-1 truncated to CK_RTP3DES_MAC_LEN bytes over header ||
 * ciphertext, appended) are laid out byte for byte in docs/PROTOCOL.md "Media" with vectors.
 * Separate keys per direction. Weak: 64-bit blocks, a fixed IV, no authentication without the
 * MAC. SRTP is the default. */

#define CK_RTP3DES_KEY_LEN 24
#define CK_RTP3DES_MAC_KEY_LEN 20
#define CK_RTP3DES_MAC_LEN 10
#define CK_RTP3DES_MAX_OVERHEAD 32    /* padding + MAC a protect call may add */

typedef struct ck_rtp3des ck_rtp3des;

/* mac_key NULL: no MAC. Keys are copied (and wiped on free). */
int ck_rtp3des_new(enum ck_srtp_direction dir, const uint8_t key[CK_RTP3DES_KEY_LEN],
                   const uint8_t *mac_key, ck_rtp3des **out);
/* In place, like ck_srtp_protect/unprotect (cap >= *len + CK_RTP3DES_MAX_OVERHEAD).
 * Unprotect: CK_ERR_INTEGRITY for a bad MAC or bad padding, CK_ERR_DECODE/LIMIT for a packet
 * that is not RTP, CK_ERR_REPLAY for a sequence number already accepted (a 64-packet window,
 * as far as an unauthenticated mode can offer). Counters in ck_srtp_stats form. */
int ck_rtp3des_protect(ck_rtp3des *c, uint8_t *buf, size_t *len, size_t cap);
int ck_rtp3des_unprotect(ck_rtp3des *c, uint8_t *buf, size_t *len);
void ck_rtp3des_get_stats(const ck_rtp3des *c, struct ck_srtp_stats *out);
void ck_rtp3des_free(ck_rtp3des *c);

/* ---- One direction of a call's media, whatever the mode ---- */

enum ck_media_mode {
    CK_MEDIA_RTP = 1,                 /* no protection (SGCP calls to a network server) */
    CK_MEDIA_SRTP_AES_CM,
    CK_MEDIA_SRTP_GCM,
    CK_MEDIA_RTP_3DES,
    CK_MEDIA_RTP_3DES_MAC,
};

typedef struct ck_media_ctx ck_media_ctx;

/* A protect (SEND) or unprotect (RECV) context for one direction of a call, keyed from the call
 * sub-key: mode SRTP_* uses ck_call_derive_srtp, RTP_3DES* ck_call_derive_3des (kmm.h), with
 * is_source telling which half of the derived keys is this end's sending direction (the source
 * sends with s->d keys and receives with d->s). k_call is CK_CALL_KEY_LEN bytes; mode RTP takes
 * k_call NULL. */
int ck_media_ctx_new(enum ck_media_mode mode, enum ck_srtp_direction dir, bool is_source,
                     const uint8_t *k_call, size_t k_len, uint32_t spi, ck_media_ctx **out);
/* CK_MEDIA_MAX_OVERHEAD: room a protect call needs after the packet. */
#define CK_MEDIA_MAX_OVERHEAD CK_SRTP_TRAILER_ROOM
int ck_media_protect(ck_media_ctx *c, uint8_t *buf, size_t *len, size_t cap);
int ck_media_unprotect(ck_media_ctx *c, uint8_t *buf, size_t *len);
void ck_media_get_stats(const ck_media_ctx *c, struct ck_srtp_stats *out);
void ck_media_ctx_free(ck_media_ctx *c);
const char *ck_media_mode_name(enum ck_media_mode m);  /* "srtp-aes-cm", ... as in mgcp.h */
int ck_media_mode_parse(const char *name, enum ck_media_mode *out);

/* ---- WAV files (RIFF/WAVE, PCM 16-bit little-endian, mono, 8000 Hz) ---- */

#define CK_WAV_MAX_SAMPLES (8000u * 3600u)   /* one hour */

/* Reads a WAV file; it must be PCM 16-bit mono 8000 Hz (CK_ERR_UNSUPPORTED otherwise, with the
 * format in the context); chunks other than fmt and data are skipped. *samples is malloc'd. */
int ck_wav_read(const char *path, int16_t **samples, size_t *n);
/* The same from memory (the file's len bytes): CK_ERR_DECODE for a malformed or truncated file,
 * CK_ERR_UNSUPPORTED for another format, CK_ERR_LIMIT above CK_WAV_MAX_SAMPLES. */
int ck_wav_parse(const uint8_t *buf, size_t len, int16_t **samples, size_t *n);
/* Writes n samples (PCM 16-bit mono 8000 Hz) atomically, mode 0644. */
int ck_wav_write(const char *path, const int16_t *samples, size_t n);

#endif
