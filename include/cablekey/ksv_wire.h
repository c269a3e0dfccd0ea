/* The keying server's (KSV, issue 11) datagram envelope and its protection: how a node
 * authenticates to the KSV with Kerberos (an AP exchange replaces the seed's IKE phase 1; why in
 * docs/PROTOCOL.md "Keying server"), how the ck_ksv_msg messages then travel sealed under keys
 * derived from that exchange's sub-key, and the unauthenticated nudge the KSV uses to make a node
 * register. The group rekey datagrams (multicast, Ed25519-signed) have their own layout in
 * lkh_rekey.h and share only the first 8 bytes below.
 *
 * Every datagram starts with an 8-byte envelope header:
 *     "CKSV" | version (1) | kind (1) | reserved (2, zero)
 * Kinds:
 *   HELLO      node -> KSV   u32 node_nonce | u16 len | AP-REQ (mutual-required, authenticator
 *                            with a sub-key) | u16 len | node name (topology name:
 *                            [A-Za-z0-9][A-Za-z0-9._-]*, 1..63 bytes)
 *   HELLO_REP  KSV -> node   u32 node_nonce | u16 len | AP-REP (EncAPRepPart: the KSV's fresh
 *                            sub-key, seq-number = key_id, never 0)
 *   HELLO_ERR  KSV -> node   u32 node_nonce | u16 code (CK_KSV_HERR_*) | u16 len | text
 *                            (0..200 bytes of printable ASCII; unauthenticated: the node only
 *                            logs it and backs off)
 *   SEALED     both ways     u32 key_id | u64 seq | AES-256-GCM ciphertext of one encoded
 *                            ck_ksv_msg | 16-byte tag. AAD = the 20 bytes before the
 *                            ciphertext; nonce = be32(direction) || be64(seq), direction 1 =
 *                            KSV->node, 2 = node->KSV. seq starts at 1 per direction and key.
 *   NUDGE      KSV -> node   u64 KSV timestamp (µs) | u8 len | KSV name (topology name).
 *                            Unauthenticated: it only makes the node run HELLO (rate-limited by
 *                            the node).
 *   REKEY      KSV -> group  lkh_rekey.h
 * Session keys: HKDF-SHA-256 (OpenSSL EVP_KDF "HKDF"), IKM = the AP-REP sub-key's bytes,
 * salt = "cablekey ksv v1", info = "ksv->node" || be32(key_id) (resp. "node->ksv"), 32 bytes
 * each. Receivers refuse a seq already seen or older than the 64-wide window (a 64-bit bitmap
 * over 64-bit sequence numbers, checked before the tag, advanced only after it verified).
 *
 * Errors: CK_ERR_DECODE (truncated, bad magic/version/kind/length, trailing bytes, a field out
 * of range), CK_ERR_INTEGRITY (tag does not verify), CK_ERR_REPLAY (seq seen or too old),
 * CK_ERR_PROTO (authentic but wrong: a sealed message whose content does not parse or names
 * another key id, a HELLO_REP for another HELLO or without sub-key/key id, a HELLO without
 * MUTUAL-REQUIRED or sub-key), CK_ERR_EXPIRED (building a HELLO from ended credentials),
 * CK_ERR_LIMIT, CK_ERR_INVAL, CK_ERR_NOMEM, CK_ERR_CRYPTO, and the AP codes via *krb_error /
 * in->krb_error where said. */
#ifndef CABLEKEY_KSV_WIRE_H
#define CABLEKEY_KSV_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cablekey/ap.h"
#include "cablekey/client.h"
#include "cablekey/crypto.h"
#include "cablekey/ksv_msg.h"

#define CK_KSV_DEFAULT_PORT 7441
#define CK_KSV_ENV_LEN 8u
#define CK_KSV_WIRE_VERSION 1u
#define CK_KSV_MAX_DGRAM 65507u
#define CK_KSV_MAX_NAME 63u
#define CK_KSV_MAX_TEXT 200u
#define CK_KSV_SEAL_OVERHEAD (CK_KSV_ENV_LEN + 4u + 8u + 16u)

enum ck_ksv_kind {
    CK_KSV_K_HELLO = 1,
    CK_KSV_K_HELLO_REP = 2,
    CK_KSV_K_HELLO_ERR = 3,
    CK_KSV_K_SEALED = 4,
    CK_KSV_K_NUDGE = 5,
    CK_KSV_K_REKEY = 6,
};

/* Sealing directions (the first 4 bytes of the GCM nonce). */
#define CK_KSV_SEAL_TO_NODE 1u
#define CK_KSV_SEAL_TO_KSV 2u

/* HELLO_ERR codes. */
#define CK_KSV_HERR_AUTH 1      /* the AP-REQ did not verify (text: the Kerberos error name) */
#define CK_KSV_HERR_UNKNOWN 2   /* the client principal is no node of the topology */
#define CK_KSV_HERR_NOT_HERE 3  /* the node may not register with this KSV */
#define CK_KSV_HERR_BUSY 4      /* the KSV refuses new sessions for now (retry later) */

/* The kind of a datagram after checking the envelope header (CK_ERR_DECODE otherwise). */
int ck_ksv_wire_kind(const uint8_t *buf, size_t len, enum ck_ksv_kind *kind);

/* ---- one direction of a session: keys, sequence numbers, replay window ------------------- */
struct ck_ksv_seal {
    uint32_t key_id;
    uint8_t tx_key[32], rx_key[32];
    uint32_t tx_dir, rx_dir;  /* 1 or 2 */
    uint64_t tx_seq;          /* last sent */
    uint64_t rx_top;          /* highest accepted */
    uint64_t rx_window;       /* bit i: rx_top - i seen */
};

/* Derives both directions from the AP-REP sub-key (16..32 bytes; key_id non-zero). ksv_side:
 * true in the KSV. */
int ck_ksv_seal_init(struct ck_ksv_seal *s, const ck_key *ap_rep_subkey, uint32_t key_id,
                     bool ksv_side);
void ck_ksv_seal_clear(struct ck_ksv_seal *s);

/* Encodes m and seals it into a new datagram (*out, free with free()). Advances tx_seq. The
 * message's key_id must be 0 or the session's; the sealed copy always carries the session's. */
int ck_ksv_seal_msg(struct ck_ksv_seal *s, const struct ck_ksv_msg *m, uint8_t **out,
                    size_t *out_len);
/* The key_id of a SEALED datagram (to find the session), without opening it. */
int ck_ksv_sealed_key_id(const uint8_t *buf, size_t len, uint32_t *key_id);
/* Opens, checks replay, parses (*out: free with ck_ksv_msg_free). The window advances as soon as
 * the tag verifies, also when the content is then refused (CK_ERR_PROTO: the node's
 * MALFORMED_PACKET case), so a replayed bad message is a plain REPLAY. CK_ERR_INVAL when the
 * datagram's key_id is not the session's (the caller picks the session by
 * ck_ksv_sealed_key_id first). */
int ck_ksv_open_msg(struct ck_ksv_seal *s, const uint8_t *buf, size_t len,
                    struct ck_ksv_msg **out);

/* ---- node side of HELLO ------------------------------------------------------------------- */
struct ck_ksv_hello_ctx {
    uint32_t node_nonce;
    int64_t ctime;        /* authenticator time, for the AP-REP check */
    int32_t cusec;
    ck_key session_key;   /* the ticket's */
    ck_key node_subkey;
};

/* Builds a HELLO from creds for the KSV's service principal (a service ticket from the TGS, as
 * lib/endpoint gets its CMS ticket): a random node_nonce and sub-key (the session key's enctype),
 * MUTUAL-REQUIRED. CK_ERR_EXPIRED when creds ended at now_sec. On failure ctx is cleared.
 * Retransmit by building a new HELLO (new authenticator and nonce): the same bytes again are a
 * replay to the KSV's replay cache (HELLO_ERR AUTH, KRB_AP_ERR_REPEAT). */
int ck_ksv_hello_build(const ck_creds *creds, const char *node_name, int64_t now_sec,
                       struct ck_ksv_hello_ctx *ctx, uint8_t **out, size_t *out_len);
/* Checks a HELLO_REP against ctx and sets up the session (s). *krb_error (may be NULL) on AP
 * failure (CK_KRB_AP_ERR_MODIFIED, CK_KRB_AP_ERR_MUT_FAIL). ctx is left as it was: the caller
 * clears it once the session is up or the HELLO abandoned. */
int ck_ksv_hello_rep_open(const struct ck_ksv_hello_ctx *ctx, const uint8_t *buf, size_t len,
                          struct ck_ksv_seal *s, int32_t *krb_error);
/* Parses a HELLO_ERR (text copied, NUL-terminated, into text[CK_KSV_MAX_TEXT + 1]). */
int ck_ksv_hello_err_parse(const uint8_t *buf, size_t len, uint32_t *node_nonce, uint16_t *code,
                           char *text);
void ck_ksv_hello_ctx_clear(struct ck_ksv_hello_ctx *ctx);

/* ---- KSV side of HELLO -------------------------------------------------------------------- */
struct ck_ksv_hello_in {
    uint32_t node_nonce;
    char node_name[CK_KSV_MAX_NAME + 1];
    char client[256];     /* unparsed client principal from the ticket */
    int64_t endtime;      /* ticket end: the session ends there too */
    int32_t krb_error;    /* on AP failure */
};

/* Verifies a HELLO (ck_ap_req_verify_at with the given key function and replay cache, expected
 * server `service`, at now_sec) and, on success, builds the HELLO_REP with a fresh sub-key and
 * key_id (non-zero) and sets up s. in->node_nonce and in->node_name are filled as soon as the
 * datagram parses, so an AP failure (in->krb_error set: CK_KRB_AP_ERR_*, or CK_KRB_ERR_GENERIC)
 * can be answered with a HELLO_ERR; in->client and in->endtime only on success. The caller
 * checks in->client against the topology and, if it refuses, drops s and sends HELLO_ERR. */
int ck_ksv_hello_accept(const uint8_t *buf, size_t len, ck_ap_key_fn key_fn, void *key_arg,
                        const char *service, ck_rcache *rc, int64_t clockskew, int64_t now_sec,
                        uint32_t key_id, struct ck_ksv_hello_in *in, struct ck_ksv_seal *s,
                        uint8_t **rep, size_t *rep_len);
int ck_ksv_hello_err_build(uint32_t node_nonce, uint16_t code, const char *text, uint8_t **out,
                           size_t *out_len);

/* ---- NUDGE -------------------------------------------------------------------------------- */
int ck_ksv_nudge_build(uint64_t ksv_time_us, const char *ksv_name, uint8_t **out, size_t *out_len);
int ck_ksv_nudge_parse(const uint8_t *buf, size_t len, uint64_t *ksv_time_us,
                       char name[CK_KSV_MAX_NAME + 1]);

#endif
