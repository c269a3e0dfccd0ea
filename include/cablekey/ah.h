/* Userspace IPsec AH (RFC 4302), transport mode over IPv4 and IPv6, HMAC-SHA-1-96 (RFC 2404):
 * address authentication between a device and its router (seed 002, FIG. 12), keyed by a KMM AP
 * exchange with the router (docs/PROTOCOL.md, "Router address authentication").
 *
 * Why userspace: the hosts' kernels may have no AH (no xfrm AH module); packets are built and
 * read on raw IP sockets.
 *
 * Packet: IP header (IPv4: 20 bytes, protocol 51, no options; IPv6: 40 bytes, next header 51)
 * | next header (1) | payload length (1) = 4 (the AH's length in 32-bit words minus 2) |
 * reserved (2) = 0 | SPI (4) | sequence number (4) | ICV (12) | payload. 24 bytes of AH are a
 * multiple of 8, as IPv6 requires, so there is no ICV padding. The ICV is HMAC-SHA-1 cut to 12
 * bytes (RFC 2404) over the IP header with its mutable fields zeroed (IPv4: TOS, flags and
 * fragment offset, TTL, header checksum, RFC 4302 §3.3.3.1.1.1; IPv6: traffic class, flow label,
 * hop limit, §3.3.3.1.2.1), the AH with the ICV field zeroed, and the payload. The immutable
 * fields (IPv4: version, IHL, total length, identification, protocol, addresses; IPv6: version,
 * payload length, next header, addresses) are covered, so a changed source address fails the
 * ICV.
 *
 * Cablekey's limits (refusals, never partial reads): no IPv4 options (IHL 5; RFC 4302 would need
 * the option-by-option mutability table, and the router's devices never send options) and no
 * IPv6 extension headers before AH (next header of the IPv6 header must be 51); no fragments
 * (MF or offset: AH is verified on reassembled packets only, RFC 4302 §3.4.1); the IPv4 total
 * length / IPv6 payload length must match the bytes received (no jumbograms); the AH payload
 * length must be 4 (this ICV size; anything else is another algorithm); reserved must be 0 (RFC
 * 4302 §2.3 says "ignored" on receipt, but it is inside the ICV, so refusing it changes nothing
 * a peer can rely on). 32-bit sequence numbers only (no ESN: the SA is re-keyed long before 2^32
 * packets).
 *
 * Inbound order (RFC 4302 §3.4.3/§3.4.4): SPI matches the SA -> sequence number not 0 and not
 * left of or seen in the replay window -> ICV, compared in constant time -> only then the
 * window is updated. Outbound sequence numbers start at 1; the SA is exhausted after 2^32-1
 * packets (CK_ERR_EXPIRED, never wraps).
 *
 * Errors: CK_ERR_DECODE (malformed), CK_ERR_UNSUPPORTED (IPv4 options, IPv6 extension headers,
 * fragments, another ICV length), CK_ERR_INVAL (the packet's SPI is not this SA's; bad
 * arguments), CK_ERR_REPLAY (sequence number 0, too old or seen), CK_ERR_INTEGRITY (ICV
 * mismatch), CK_ERR_LIMIT (output buffer too small or packet over the maximum), CK_ERR_EXPIRED
 * (sequence space used up).
 *
 * Secrets: keys live in the SA and are wiped by ck_ah_sa_free / ck_ah_keys_clear. An SA is used
 * by one thread at a time. */
#ifndef CABLEKEY_AH_H
#define CABLEKEY_AH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cablekey/crypto.h"

#define CK_AH_PROTO 51                /* IP protocol number of AH */
#define CK_AH_ICV_LEN 12              /* HMAC-SHA-1-96 */
#define CK_AH_HDR_LEN 24              /* next header .. ICV */
#define CK_AH_PAYLOAD_LEN_FIELD 4     /* (CK_AH_HDR_LEN / 4) - 2 */
#define CK_AH_KEY_LEN 20              /* HMAC-SHA-1 key (RFC 2404) */
#define CK_AH_IPV4_HDR_LEN 20
#define CK_AH_IPV6_HDR_LEN 40
#define CK_AH_MIN_WINDOW 64
#define CK_AH_DEFAULT_WINDOW 64       /* RFC 4302 §3.4.3: 32 at least, 64 advised */
#define CK_AH_MAX_WINDOW 1024
#define CK_AH_MAX_PACKET 65535        /* an IPv4 total length; IPv6: 40 + 65535 */
#define CK_AH_SPI_MIN 256u            /* RFC 4302 §2.4: 1..255 reserved by IANA, 0 local use */

struct ck_ah_sa_params {
    uint32_t spi;                     /* >= CK_AH_SPI_MIN */
    const uint8_t *key;               /* CK_AH_KEY_LEN bytes */
    size_t key_len;
    uint32_t replay_window;           /* inbound: 0 = CK_AH_DEFAULT_WINDOW, else 64..1024 */
};

typedef struct ck_ah_sa ck_ah_sa;

/* Copies the key. CK_ERR_INVAL for an SPI below CK_AH_SPI_MIN, a key that is not
 * CK_AH_KEY_LEN bytes, or a window outside 64..1024. */
int ck_ah_sa_new(const struct ck_ah_sa_params *p, ck_ah_sa **out);
/* Wipes the key; accepts NULL. */
void ck_ah_sa_free(ck_ah_sa *sa);
uint32_t ck_ah_sa_spi(const ck_ah_sa *sa);

struct ck_ah_sa_stats {
    uint64_t packets, bytes;          /* protected, or accepted (payload bytes) */
    uint64_t replayed, bad_icv;
    uint32_t last_seq;                /* outbound: last sent; inbound: highest accepted */
};
void ck_ah_sa_stats(const ck_ah_sa *sa, struct ck_ah_sa_stats *out);

/* What an AH-protected packet says (nothing verified). Addresses in network order. */
struct ck_ah_info {
    uint8_t ip_version;               /* 4 or 6 */
    uint8_t addr_len;                 /* 4 or 16: the bytes of src and dst that are used */
    size_t ip_hdr_len;                /* 20 or 40: where the AH starts */
    uint8_t src[16], dst[16];
    uint16_t id;                      /* IPv4 identification (0 for IPv6) */
    uint8_t next_header;              /* the payload's protocol (17 = UDP) */
    uint32_t spi, seq;
    size_t payload_off, payload_len;  /* the payload after the AH */
};

/* Parses pkt (a whole IPv4 or IPv6 packet, by its version nibble, as a raw socket or a capture
 * delivers it) under the limits above, so the caller can look the SA up by SPI; verifies
 * nothing. */
int ck_ah_parse(const uint8_t *pkt, size_t len, struct ck_ah_info *out);

/* Outbound: writes IPv4 header (src -> dst, identification id, TTL ttl, protocol 51, header
 * checksum) | AH (next sequence number) | payload into out (cap bytes). The identification is
 * inside the ICV: a sender on a raw IP_HDRINCL socket must pass a non-zero id (the kernel fills
 * in only a zero one). */
int ck_ah_protect_ipv4(ck_ah_sa *sa, const uint8_t src[4], const uint8_t dst[4], uint16_t id,
                       uint8_t ttl, uint8_t next_header, const uint8_t *payload,
                       size_t payload_len, uint8_t *out, size_t cap, size_t *out_len);

/* The same for IPv6: IPv6 header (traffic class and flow label 0, hop limit, next header 51,
 * payload length) | AH | payload; the payload after the 40-byte header is at most 65535 bytes. */
int ck_ah_protect_ipv6(ck_ah_sa *sa, const uint8_t src[16], const uint8_t dst[16],
                       uint8_t hop_limit, uint8_t next_header, const uint8_t *payload,
                       size_t payload_len, uint8_t *out, size_t cap, size_t *out_len);

/* Inbound: parses (as ck_ah_parse, into *info when not NULL) and verifies pkt under sa, in the
 * order above. 0 only for a packet that verified and was not a replay. */
int ck_ah_verify(ck_ah_sa *sa, const uint8_t *pkt, size_t len, struct ck_ah_info *info);

/* The ICV of pkt (a parsed AH packet) under key, as the sender computes it: for tests and tools
 * that must check an ICV independently of an SA's state. */
int ck_ah_icv(const uint8_t key[CK_AH_KEY_LEN], const uint8_t *pkt, size_t len,
              uint8_t icv[CK_AH_ICV_LEN]);

/* ---------------------------------------------------------------------------------------------
 * Keys from the KMM AP exchange with the router (docs/PROTOCOL.md, "Router address
 * authentication"): the suite is sha1-null (HMAC-SHA-1-96, no encryption), spi_device is the
 * device's inbound SPI (its AP Request ASD), spi_router the router's (its AP Reply ASD), K the
 * AP Reply sub-key:
 *     F(K, "cablekey router ah keys", spi_device || spi_router)  (40 bytes, kmm.h's PRF)
 * cut as key device->router (the SA with spi_router) || key router->device (spi_device).
 */
struct ck_ah_keys {
    uint32_t spi_device, spi_router;
    uint8_t key_d2r[CK_AH_KEY_LEN];   /* SA spi_router: the device sends, the router verifies */
    uint8_t key_r2d[CK_AH_KEY_LEN];   /* SA spi_device: the router sends, the device verifies */
};
#define CK_AH_KEYS_LABEL "cablekey router ah keys"

/* CK_ERR_INVAL for an SPI below CK_AH_SPI_MIN or a sub-key with no contents. */
int ck_ah_derive_keys(const ck_key *subkey, uint32_t spi_device, uint32_t spi_router,
                      struct ck_ah_keys *out);
void ck_ah_keys_clear(struct ck_ah_keys *k);

#endif
