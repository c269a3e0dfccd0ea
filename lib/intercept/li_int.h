/* Internals of lib/intercept shared by its files, the unit tests and the fuzz target. */
#ifndef CABLEKEY_LI_INT_H
#define CABLEKEY_LI_INT_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "cablekey/intercept.h"

#define CK_LI_RECORD_VERSION 1
/* Largest record plaintext (all strings at their maxima fit with room) and EnvelopedData
 * accepted: a hostile file must not make the opener allocate without bound. */
#define CK_LI_MAX_PLAINTEXT 2048
#define CK_LI_MAX_RECORD (64 * 1024)

/* The record plaintext (docs/PROTOCOL.md "Lawful intercept record"): DER of LiCallRecord.
 * encode refuses a call whose fields do not fit the record's rules (CK_ERR_ENCODE); decode
 * refuses anything else (CK_ERR_DECODE) and leaves *out zeroed on error. *der is wiped by
 * OPENSSL_clear_free (it holds K_call). */
int ck_li_record_encode(const struct ck_li_call *call, uint8_t **der, size_t *len);
int ck_li_record_decode(const uint8_t *der, size_t len, struct ck_li_call *out);

/* The record envelope: CMS AuthEnvelopedData (AES-256-GCM) to cert; RSA keys get RSA-OAEP
 * (SHA-256), EC keys ECDH (OpenSSL's default KARI). */
int ck_li_envelope(const uint8_t *pt, size_t pt_len, X509 *cert, uint8_t **der, size_t *len);
/* Opens an envelope with key (and cert, to pick the recipient; may be NULL) into a malloc'd
 * plaintext (wiped and freed by the caller with OPENSSL_clear_free). CK_ERR_DECODE: not an
 * (Auth)EnvelopedData; CK_ERR_INTEGRITY: not for this key, or altered. */
int ck_li_unenvelope(const uint8_t *der, size_t len, EVP_PKEY *key, X509 *cert, uint8_t **pt,
                     size_t *pt_len);

/* A law-enforcement certificate fit for orders: RSA or EC, its key usage (when present)
 * allowing key transport or agreement. CK_ERR_INVAL with the reason otherwise. */
int ck_li_cert_check(X509 *cert);

/* ---- captures (the LEA side's `cablekey intercept decrypt`) ----
 * Classic pcap (both byte orders, microsecond and nanosecond magics) and pcapng (sections of
 * either byte order, up to 64 interfaces, Enhanced and Simple Packet Blocks); link types
 * NULL/loopback (0), Ethernet
 * (1, up to two 802.1Q tags), raw IP (12, 101, 228, 229), Linux cooked (113, 276). Only
 * unfragmented UDP over IPv4 or IPv6 (no extension headers) is reported; everything else is
 * counted as skipped. A record longer than the file's snap length or CK_LI_PCAP_MAX_SNAP, a
 * bad block length, or a truncated file, is CK_ERR_DECODE. */
#define CK_LI_PCAP_MAX_SNAP 262144
#define CK_LI_PCAP_MAX_FILE (256u * 1024u * 1024u)

struct ck_li_udp {
    int family;                       /* 4 or 6 */
    uint8_t src[16], dst[16];         /* 4 or 16 bytes used */
    uint16_t sport, dport;
    const uint8_t *payload;           /* points into the capture */
    size_t len;
};

struct ck_li_pcap_stats {
    uint64_t records, udp, skipped;
};

/* Calls cb for every UDP datagram in capture order; a non-zero return from cb stops the walk
 * and is returned. */
typedef int (*ck_li_udp_cb)(void *ctx, const struct ck_li_udp *u);
int ck_li_pcap_walk(const uint8_t *buf, size_t len, ck_li_udp_cb cb, void *ctx,
                    struct ck_li_pcap_stats *stats);

#endif
