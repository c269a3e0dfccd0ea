/* KRB-SAFE and KRB-PRIV (RFC 4120 §3.4, §3.5, §5.6, §5.7): application messages protected by a
 * Kerberos session key or subkey.
 *
 * KRB-SAFE carries the user data in the clear with a keyed checksum (the key's mandatory checksum
 * type, key usage 15) over the DER of KRB-SAFE-BODY; KRB-PRIV encrypts EncKrbPrivPart (usage 13).
 * Both carry a timestamp+usec and/or a sequence number, the sender's address (mandatory in
 * RFC 4120) and optionally the recipient's. Addresses may be real (IPv4/IPv6) or directional
 * (RFC 4120 §8.1: type 3, 4-byte big-endian 0 = initiator -> acceptor, 1 = the reverse), which is
 * what to use behind NAT.
 *
 * Reading verifies integrity first (wrong key or any modification: CK_ERR_INTEGRITY), then the
 * timestamp against the clock skew (CK_ERR_SKEW), the sequence number, the addresses, and the
 * replay cache (CK_ERR_REPLAY; CK_ERR_FULL when it is full: refuse). The Kerberos error code a server would answer with is reported in
 * ck_krb_msg_info.krb_error. */
#ifndef CABLEKEY_SAFEPRIV_H
#define CABLEKEY_SAFEPRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "cablekey/ap.h"
#include "cablekey/crypto.h"

#define CK_KRB_ADDR_MAX 16
#define CK_KRB_MSG_MAX_DATA 32768       /* user data bytes accepted in one message */
#define CK_KRB_MSG_DEFAULT_SKEW 300     /* seconds */

typedef struct ck_krb_address {
    int32_t addr_type;                  /* CK_ADDRTYPE_IPV4 / _IPV6 / _DIRECTIONAL */
    size_t len;
    uint8_t addr[CK_KRB_ADDR_MAX];
} ck_krb_address;

/* Any address type of up to CK_KRB_ADDR_MAX bytes. */
int ck_krb_address_set(ck_krb_address *a, int32_t addr_type, const uint8_t *addr, size_t len);
/* AF_INET -> type 2 (4 bytes), AF_INET6 -> type 24 (16 bytes); the port is not part of it. */
int ck_krb_address_from_sockaddr(const struct sockaddr *sa, ck_krb_address *out);
/* Directional address: dir 0 = sent by the initiator, 1 = sent by the acceptor. */
int ck_krb_address_directional(uint32_t dir, ck_krb_address *out);
bool ck_krb_address_equal(const ck_krb_address *a, const ck_krb_address *b);

/* What to put in a message. */
typedef struct ck_krb_msg_params {
    bool use_timestamp;                 /* include timestamp + usec */
    int64_t timestamp;                  /* 0: now (with the current usec) */
    int32_t usec;                       /* used only with an explicit timestamp */
    bool use_seq;                       /* include seq-number */
    uint32_t seq;
    const ck_krb_address *s_address;    /* required */
    const ck_krb_address *r_address;    /* NULL: omitted */
} ck_krb_msg_params;

/* What a reader requires. Zero fields: no requirement / defaults. */
typedef struct ck_krb_msg_check {
    const ck_krb_address *s_address;    /* sender must be this address */
    const ck_krb_address *r_address;    /* if the message names a recipient, it must be this */
    bool require_r_address;             /* ... and it must name one */
    bool require_timestamp;             /* refuse messages without a timestamp */
    int64_t clockskew;                  /* 0: CK_KRB_MSG_DEFAULT_SKEW */
    int64_t now;                        /* 0: the wall clock */
    bool check_seq;                     /* the message's seq-number must equal seq (absent
                                         * counts as 0: MIT omits a zero seq-number) */
    uint32_t seq;
    ck_rcache *rcache;                  /* if set, timestamped messages are checked for replay */
    const char *rcache_tag;             /* names this conversation in the cache (NULL: "") */
} ck_krb_msg_check;

/* What a message carried (optional output of the readers). */
typedef struct ck_krb_msg_info {
    int32_t krb_error;                  /* on failure: CK_KRB_AP_ERR_MODIFIED, _SKEW, _REPEAT,
                                         * _BADADDR, _BADORDER, _INAPP_CKSUM, ...; 0 on success */
    bool has_timestamp;
    int64_t timestamp;
    int32_t usec;
    bool has_seq;
    uint32_t seq;
    ck_krb_address s_address;
    bool has_r_address;
    ck_krb_address r_address;
} ck_krb_msg_info;

/* Builders: *der is malloc'd (free()). */
int ck_krb_safe_build(const ck_key *key, const uint8_t *data, size_t len,
                      const ck_krb_msg_params *p, uint8_t **der, size_t *der_len);
int ck_krb_priv_build(const ck_key *key, const uint8_t *data, size_t len,
                      const ck_krb_msg_params *p, uint8_t **der, size_t *der_len);

/* Readers: verify and return the user data in *data (malloc'd; free() — for KRB-PRIV it was
 * secret, so wipe it when done). check may be NULL (integrity and skew only); info may be NULL. */
int ck_krb_safe_read(const ck_key *key, const uint8_t *der, size_t len,
                     const ck_krb_msg_check *check, uint8_t **data, size_t *data_len,
                     ck_krb_msg_info *info);
int ck_krb_priv_read(const ck_key *key, const uint8_t *der, size_t len,
                     const ck_krb_msg_check *check, uint8_t **data, size_t *data_len,
                     ck_krb_msg_info *info);

#endif
