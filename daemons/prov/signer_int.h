/* The signer's internals (signer.c), for the unit test and the fuzz target: the message codec
 * and the request handler without the process around them. The protocol is in
 * docs/prov-signer-webhooks.md.
 *
 * Messages travel on an AF_UNIX SOCK_SEQPACKET socketpair, one message per packet, so a
 * malformed message can never desynchronise the ones after it. Every message starts with an
 * 8-byte header: version (1), type, status (requests: 0), reserved (0), body length (u32, big
 * endian, must equal the packet's length minus 8); the whole packet is at most
 * PROV_SIGNER_MSG_MAX bytes. Integers are big endian; times are i64 as two u32 (high first).
 *   ISSUE    request:  u16 cert_len, cert (DER, 1..CK_PROV_CERT_MAX), mac[6], u8 n (0..8),
 *                      n x (u8 len 1..15, ASCII digits), i64 not_before, i64 not_after
 *            response: the operator certificate (DER)
 *   PHONE_ID request:  u8 len (1..15), ASCII digits
 *            response: 32 bytes
 *   READY    (signer -> parent, once, after loading the keys): empty body
 * A response carries the request's type | 0x80; status 0 is success, otherwise the magnitude
 * of a CK_ERR_* code and the body is a message of at most 200 bytes (never key material). */
#ifndef CABLEKEY_DAEMON_PROV_SIGNER_INT_H
#define CABLEKEY_DAEMON_PROV_SIGNER_INT_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "prov.h"

#define PROV_SIGNER_VERSION 1
#define PROV_SIGNER_HDR 8
#define PROV_SIGNER_ISSUE 1
#define PROV_SIGNER_PHONE_ID 2
#define PROV_SIGNER_READY 3
#define PROV_SIGNER_RESPONSE 0x80
#define PROV_SIGNER_MSG_MAX                                                                     \
    (PROV_SIGNER_HDR + 2 + CK_PROV_CERT_MAX + 6 + 1 +                                           \
     CK_PROV_MAX_NUMBERS * (1 + CK_PROV_NUMBER_MAX) + 16)
#define PROV_SIGNER_ERRMSG_MAX 200
/* How far not_before may lie from the signer's clock (a backdated start for devices whose
 * clock lags), and the slack on not_after beyond now + the longest validity (the back took its
 * `now` a moment before the signer looks at the clock). */
#define PROV_SIGNER_SKEW_MAX 86400
#define PROV_SIGNER_SLACK 300

struct prov_signer_request {
    uint8_t type;
    const uint8_t *cert;              /* ISSUE: points into the message */
    size_t cert_len;
    uint8_t mac[6];
    char numbers[CK_PROV_MAX_NUMBERS][CK_PROV_NUMBER_MAX + 1]; /* PHONE_ID: numbers[0] */
    size_t n_numbers;
    int64_t not_before, not_after;
};

/* Decodes a request message: every field bounded, nothing trailing; CK_ERR_DECODE / CK_ERR_LIMIT
 * with the reason otherwise. */
int prov_signer_request_decode(const uint8_t *msg, size_t len, struct prov_signer_request *out);

/* What the signer holds. */
struct prov_signer_keys;
/* From the configuration (ca_cert, ca_key, ca_password_file, phone_id_key, cert_days,
 * repair_cert_hours). */
int prov_signer_keys_load(const struct prov_config *cfg, struct prov_signer_keys **out);
/* From parts (takes its own references; the phone-ID key is copied). max_validity: seconds from
 * now that a certificate may stay valid. */
int prov_signer_keys_new(X509 *ca, EVP_PKEY *ca_key, const uint8_t phone_key[32],
                         int64_t max_validity, struct prov_signer_keys **out);
void prov_signer_keys_free(struct prov_signer_keys *k); /* wipes */

/* Answers one request message at time now: always a response message (an error response for
 * a malformed or refused request), malloc'd in *resp; fails only when out of memory. */
int prov_signer_answer(struct prov_signer_keys *k, const uint8_t *msg, size_t len, int64_t now,
                       uint8_t **resp, size_t *resp_len);

/* The parent's end of the socket and the child's pid (tests). */
int prov_signer_fd(const struct prov_signer *s);
int prov_signer_pid(const struct prov_signer *s);

#endif
