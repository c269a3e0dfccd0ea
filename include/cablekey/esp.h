/* Userspace ESP (RFC 4303), transport mode, carried in UDP (RFC 3948 framing): what protects
 * signaling between an endpoint and cablekey-cms, since the hosts' kernels may have no ESP.
 *
 * Transforms are named by the key-management code points (cablekey/kmm.h): enc AES-128-CBC
 * (0x0c, 16-byte random IV), 3DES-CBC (0x03, 8-byte IV) or NULL (0x0b); auth HMAC-SHA-1-96 (0x02)
 * or HMAC-MD5-96 (0x01). All of it on OpenSSL EVP.
 *
 * Packet: SPI (4) | sequence number (4) | IV | ciphertext of (payload | padding 1,2,3... |
 * pad length | next header) | ICV (12). Sequence numbers start at 1; an SA never wraps (RFC 4303
 * §3.3.3: after 2^32-1 packets it is exhausted, CK_ERR_EXPIRED). Inbound: ICV verified in
 * constant time before decryption, then the anti-replay window (RFC 4303 §3.4.3, Appendix A2) is
 * updated only for packets that verified.
 *
 * UDP encapsulation (RFC 3948 §2): an ESP packet is the whole UDP payload and starts with a
 * non-zero SPI; a payload starting with four zero bytes is a non-ESP (IKE-style) message, and a
 * single 0xFF byte is a NAT-keepalive.
 *
 * State is compact so that a server holds one SA pair per endpoint (100,000 of them) in well under
 * a kilobyte each: an SA keeps raw keys and counters; the EVP contexts live in a per-thread
 * ck_esp_engine that re-keys itself when handed another SA.
 *
 * Thread safety: an SA may be used by one thread at a time (callers lock); an engine belongs to
 * one thread.
 */
#ifndef CABLEKEY_ESP_H
#define CABLEKEY_ESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CK_ESP_ICV_LEN 12
#define CK_ESP_MAX_KEY 32
#define CK_ESP_DEFAULT_WINDOW 128        /* packets; RFC 4303 asks for at least 32, 64 advised */
#define CK_ESP_MAX_WINDOW 1024
#define CK_ESP_MAX_PACKET 65507
#define CK_ESP_NEXT_HEADER_UDP 17

enum ck_esp_udp_kind {
    CK_ESP_UDP_ESP,                  /* an ESP packet */
    CK_ESP_UDP_NON_ESP,              /* four zero bytes, then a non-ESP message */
    CK_ESP_UDP_KEEPALIVE,            /* the single byte 0xFF */
    CK_ESP_UDP_INVALID,              /* shorter than an ESP header and none of the above */
};

struct ck_esp_sa_params {
    uint32_t spi;                    /* non-zero; for an inbound SA, the SPI we chose */
    uint8_t enc;                     /* CK_KMM_ENC_AES128 | CK_KMM_ENC_3DES | CK_KMM_ENC_NULL */
    uint8_t auth;                    /* CK_KMM_AUTH_HMAC_SHA1_96 | CK_KMM_AUTH_HMAC_MD5_96 */
    const uint8_t *enc_key;          /* 16 / 24 / 0 bytes */
    size_t enc_key_len;
    const uint8_t *auth_key;         /* 20 / 16 bytes */
    size_t auth_key_len;
    int64_t expires;                 /* hard lifetime: seconds since the epoch (0 = none) */
    uint64_t life_bytes;             /* hard byte lifetime (payload bytes; 0 = none) */
    uint32_t replay_window;          /* inbound only; 0 = CK_ESP_DEFAULT_WINDOW */
    uint32_t first_seq;              /* outbound: the first sequence number sent (0 or 1: 1, as
                                      * RFC 4303 requires; other values only for the seed's
                                      * compatibility mode, kmm.h ck_call_esp_keys) */
};

typedef struct ck_esp_sa ck_esp_sa;
typedef struct ck_esp_engine ck_esp_engine;

/* Copies the keys; CK_ERR_UNSUPPORTED for an unknown transform, CK_ERR_INVAL for a wrong key
 * length, SPI 0, or a window over CK_ESP_MAX_WINDOW. */
int ck_esp_sa_new(const struct ck_esp_sa_params *p, ck_esp_sa **out);
/* Wipes the keys. Accepts NULL. */
void ck_esp_sa_free(ck_esp_sa *sa);
uint32_t ck_esp_sa_spi(const ck_esp_sa *sa);
/* Bytes of memory one SA holds (for the server's per-endpoint accounting). */
size_t ck_esp_sa_footprint(const ck_esp_sa *sa);
/* Counters (statistics; read without synchronization by the owner). */
struct ck_esp_sa_stats {
    uint64_t packets, bytes;         /* protected or accepted */
    uint64_t replayed, bad_icv, expired;
    uint32_t last_seq;               /* outbound: last sent; inbound: highest accepted */
};
void ck_esp_sa_stats(const ck_esp_sa *sa, struct ck_esp_sa_stats *out);

int ck_esp_engine_new(ck_esp_engine **out);
void ck_esp_engine_free(ck_esp_engine *eng);

/* Output size of protecting len payload bytes under sa (header, IV, padding, trailer, ICV). */
size_t ck_esp_protected_size(const ck_esp_sa *sa, size_t len);
/* Protects payload (next_header: the protocol of payload, e.g. 17 = a UDP header and data) into
 * pkt. Errors: CK_ERR_LIMIT (cap too small), CK_ERR_EXPIRED (past expires, life_bytes reached or
 * sequence numbers exhausted: make a new SA). now: seconds since the epoch. payload and pkt must
 * not overlap. */
int ck_esp_protect(ck_esp_engine *eng, ck_esp_sa *sa, uint8_t next_header,
                   const uint8_t *payload, size_t len, int64_t now, uint8_t *pkt, size_t cap,
                   size_t *pkt_len);
/* Verifies and decrypts pkt (whose SPI must be sa's) into payload. Errors: CK_ERR_DECODE
 * (truncated, bad padding, wrong SPI), CK_ERR_INTEGRITY (ICV), CK_ERR_REPLAY (seen or left of
 * the window), CK_ERR_EXPIRED (SA past its lifetime), CK_ERR_LIMIT (cap too small). Nothing is
 * written to payload and the window does not move unless the packet verified entirely (ICV,
 * padding, size, lifetime). payload and pkt must not overlap. The caller drops next header 59
 * (RFC 4303 dummy packets) if it wants to. */
int ck_esp_unprotect(ck_esp_engine *eng, ck_esp_sa *sa, const uint8_t *pkt, size_t len,
                     int64_t now, uint8_t *payload, size_t cap, size_t *payload_len,
                     uint8_t *next_header);

/* RFC 3948 classification of a UDP payload; *spi is set for CK_ESP_UDP_ESP. */
enum ck_esp_udp_kind ck_esp_udp_classify(const uint8_t *buf, size_t len, uint32_t *spi);

/* The UDP header placed inside a transport-mode ESP payload (next header 17), so that a decoder
 * shows the signaling protocol by port: writes 8 bytes (ports, length, checksum 0) + data into
 * out. CK_ERR_LIMIT if it does not fit. */
int ck_esp_udp_wrap(uint16_t src_port, uint16_t dst_port, const uint8_t *data, size_t len,
                    uint8_t *out, size_t cap, size_t *out_len);
/* Checks and strips that header (length must match): *data points into buf. */
int ck_esp_udp_unwrap(const uint8_t *buf, size_t len, uint16_t *src_port, uint16_t *dst_port,
                      const uint8_t **data, size_t *data_len);

/* One SA as `ip xfrm state add ...` and `ip xfrm policy add ...` lines (transport mode,
 * encap espinudp with the given ports) appended to buf; src/dst are numeric addresses, the
 * direction is src -> dst. The keys are in the text: callers write it only where the operator
 * asked (a 0600 file or stdout on request). *used is in/out: on entry the length of what buf
 * already holds (0 for an empty buffer), on return advanced past the new text; buf stays
 * NUL-terminated. CK_ERR_INVAL for non-numeric or mixed-family addresses, CK_ERR_LIMIT (nothing
 * appended, the tail of buf wiped) when it does not fit. */
struct ck_esp_xfrm_desc {
    const char *src, *dst;           /* numeric IPv4/IPv6 */
    uint16_t src_port, dst_port;     /* UDP encapsulation ports */
    uint16_t inner_src_port, inner_dst_port; /* the policy's selector (0 = any) */
    uint32_t reqid;
};
int ck_esp_xfrm_format(const ck_esp_sa *sa, const struct ck_esp_xfrm_desc *d, char *buf,
                       size_t size, size_t *used);

/* One SA as a record of Wireshark's "ESP SAs" table (the esp_sa UAT file in a Wireshark
 * profile, or the argument of tshark -o "uat:esp_sa:RECORD" without its newline), so that
 * Wireshark decrypts and checks the ICV of the SA's packets (with -d udp.port==PORT,udpencap for
 * our UDP encapsulation):
 *   "IPv4","SRC","DST","0xSPI","AES-CBC [RFC3602]","0xKEY","HMAC-SHA-1-96 [RFC2404]","0xKEY"\n
 * (TripleDES-CBC [RFC2451], NULL with an empty key; HMAC-MD5-96 [RFC2403]; IPv6). src/dst are
 * numeric addresses, the direction is src -> dst. The keys are in the text: callers write it only
 * where the operator asked (a 0600 file). *used is in/out exactly as for ck_esp_xfrm_format;
 * CK_ERR_INVAL for non-numeric (names, Wireshark's "*") or mixed-family addresses, CK_ERR_LIMIT
 * (nothing appended, the tail of buf wiped) when it does not fit. */
int ck_esp_wireshark_sa_format(const ck_esp_sa *sa, const char *src, const char *dst, char *buf,
                               size_t size, size_t *used);

/* ---- IKEv2 transforms -------------------------------------------------------------------
 * The same ESP (transport mode, the packet a whole UDP payload, RFC 3948 framing as above) for
 * SAs whose transforms are named by IKEv2 transform IDs (RFC 7296 §3.3.2, IANA "Transform Type
 * 1/3"), as the keying server pushes them (ksv_msg.h carries these IDs; this header does not
 * depend on it):
 *   AES-GCM with a 16-byte ICV  enc 20, key 16 or 32 bytes then a 4-byte salt (RFC 4106);
 *   ChaCha20-Poly1305           enc 28, key 32 then a 4-byte salt (RFC 7634);
 *     (AEAD: auth 0 and no authentication key; the 8-byte IV is the sequence number, which is
 *     unique per key since an SA never wraps)
 *   AES-CBC                     enc 12, key 16 or 32, random IV (RFC 3602),
 *   NULL                        enc 11, no key (RFC 2410),
 *     with HMAC-SHA1-96 (auth 2, RFC 2404) or HMAC-SHA2-256-128 / 384-192 / 512-256 (auth 12 /
 *     13 / 14, RFC 4868), an authentication key of 1..CK_ESP_XF_MAX_KEY bytes.
 * KMM's AES-128-CBC/3DES/NULL with HMAC-SHA1-96/MD5-96 run on ck_esp_sa above (faster: per-thread
 * engine, compact SAs); an IKEv2 SA of those transforms may run on either.
 * Inbound: ICV verified (in constant time) before anything is decrypted, padding checked, the
 * anti-replay window moved only for packets that verified entirely. No lifetimes here: the
 * caller (the node agent) keeps them. Errors: CK_ERR_UNSUPPORTED (another transform or key
 * length), CK_ERR_INVAL (SPI 0, window), CK_ERR_DECODE, CK_ERR_INTEGRITY, CK_ERR_REPLAY,
 * CK_ERR_LIMIT, CK_ERR_EXPIRED (sequence numbers used up: make a new SA), CK_ERR_CRYPTO,
 * CK_ERR_NOMEM. An SA may be used by one thread at a time. */
#define CK_ESP_XF_ENC_NULL 11
#define CK_ESP_XF_ENC_AES_CBC 12
#define CK_ESP_XF_ENC_AES_GCM_16 20
#define CK_ESP_XF_ENC_CHACHA20_POLY1305 28
#define CK_ESP_XF_AUTH_NONE 0
#define CK_ESP_XF_AUTH_HMAC_SHA1_96 2
#define CK_ESP_XF_AUTH_HMAC_SHA2_256_128 12
#define CK_ESP_XF_AUTH_HMAC_SHA2_384_192 13
#define CK_ESP_XF_AUTH_HMAC_SHA2_512_256 14
#define CK_ESP_XF_MAX_KEY 64              /* authentication key bytes */

struct ck_esp_xf_params {
    uint32_t spi;                    /* non-zero */
    uint16_t enc_alg, auth_alg;      /* IKEv2 transform IDs (CK_ESP_XF_*) */
    const uint8_t *enc_key;          /* AEAD: the key then the 4-byte salt */
    size_t enc_key_len;
    const uint8_t *auth_key;         /* NULL / 0 for AEAD */
    size_t auth_key_len;
    uint32_t replay_window;          /* inbound; 0 = CK_ESP_DEFAULT_WINDOW, max CK_ESP_MAX_WINDOW */
};

typedef struct ck_esp_xf ck_esp_xf;

/* Copies the keys. */
int ck_esp_xf_new(const struct ck_esp_xf_params *p, ck_esp_xf **out);
/* Wipes the keys. Accepts NULL. */
void ck_esp_xf_free(ck_esp_xf *x);
uint32_t ck_esp_xf_spi(const ck_esp_xf *x);
void ck_esp_xf_stats(const ck_esp_xf *x, struct ck_esp_sa_stats *out);
/* Output size of protecting len payload bytes (header, IV, padding, trailer, ICV). */
size_t ck_esp_xf_protected_size(const ck_esp_xf *x, size_t len);
/* As ck_esp_protect / ck_esp_unprotect, without lifetimes. payload and pkt must not overlap.
 * Unprotect writes nothing to payload and does not move the window unless the packet verified
 * entirely (wrong SPI: CK_ERR_DECODE). */
int ck_esp_xf_protect(ck_esp_xf *x, uint8_t next_header, const uint8_t *payload, size_t len,
                      uint8_t *pkt, size_t cap, size_t *pkt_len);
int ck_esp_xf_unprotect(ck_esp_xf *x, const uint8_t *pkt, size_t len, uint8_t *payload,
                        size_t cap, size_t *payload_len, uint8_t *next_header);

#endif
