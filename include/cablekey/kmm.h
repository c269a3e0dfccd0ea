/* PacketCable Kerberized key management (KMM), UDP port 1293: message codecs, cablekey's key
 * derivation and message authentication.
 *
 * Wire layout: ../shared/docs/PROTOCOL-NOTES.md §1 and §6 (Wireshark's pktc dissector and a
 * second independent implementation agree on it). The cryptography the public record is silent
 * on (which key each HMAC uses, what it covers, the PRF labels and the key order) is cablekey's
 * own definition, written down once in docs/PROTOCOL.md ("Key management") with test vectors.
 * It is NOT claimed to interoperate with field MTAs until checked against PKT-SP-SEC §6.5/§9.6.
 *
 * Conventions: functions return 0 or a negative CK_ERR_*; decoders never read past len and
 * return CK_ERR_DECODE (malformed), CK_ERR_UNSUPPORTED (unknown KMMID, DOI, version major, or a
 * KMMID/DOI pair the protocol does not define) or CK_ERR_LIMIT (a count or length over the limits
 * below). Derived keys are wiped by ck_kmm_keys_clear.
 *
 * Normative choices (docs/PROTOCOL.md is the full text; this is the contract the code follows):
 *   PRF      F(S, label, seed) = P_SHA-1(S, label || seed) of RFC 2246 §5 (OpenSSL's TLS1-PRF
 *            with digest SHA1), label an ASCII string without its NUL.
 *   Secrets  Ks = the Kerberos session key of the endpoint's ticket for the server;
 *            K  = the sub-key the server puts in the AP-REP's EncAPRepPart (fresh, random, same
 *            enctype as Ks); an AP-REP without a sub-key is refused by the endpoint.
 *   HMACs    HMAC-SHA-1 (20 bytes, never truncated) over every byte of the message before the
 *            HMAC field, with these 20-byte keys:
 *              AP Request        F(Ks, "cablekey kmm ap-request hmac", "")
 *              AP Reply          F(K,  "cablekey kmm ap-reply hmac", "")
 *              SP Recovered      F(K,  "cablekey kmm sp-recovered hmac", ""), covering the
 *                                3-byte header followed by the HMAC of the AP Reply it
 *                                acknowledges (not sent again on the wire)
 *              Rekey             F(K of the SA being replaced, "cablekey kmm rekey hmac", "")
 *            Wake Up and Error Reply carry no HMAC (the layout has none): a Wake Up only makes the
 *            endpoint start an authenticated exchange, and the Error Reply's KRB-ERROR is
 *            advisory (the endpoint retries or fails over; it never drops a working SA on one).
 *   Keys     IPsec:  F(K, "cablekey kmm ipsec keys", SPI_c || SPI_s) where SPI_c is the
 *                    endpoint's inbound SPI (its AP-REQ ASD) and SPI_s the server's (its AP-REP
 *                    ASD), each 4 bytes big-endian; output cut in this order:
 *                    enc(endpoint->server) || auth(endpoint->server) ||
 *                    enc(server->endpoint) || auth(server->endpoint).
 *            SNMPv3: F(K, "cablekey kmm snmpv3 keys", engineID of the AP-REQ ASD); output cut as
 *                    authKey || privKey (DES: 16 bytes, 8 of key then 8 of pre-IV, RFC 3414 §8).
 *   Nonce    The AP-REQ's server nonce echoes the Wake Up's or Rekey's; 0 when the endpoint
 *            starts the exchange on its own.
 *   Flags    Re-establish = 1 in an AP-REQ: the endpoint had an SA with this server and lost it
 *            (or the server lost it); in an AP-REP/Rekey: the server asks the endpoint to drop
 *            any other SA it holds with this server. ACK-required = 1 in an AP-REP: the endpoint
 *            must send Security Parameter Recovered before the server uses the new SA outbound.
 *   Lifetime The SA lives `lifetime` seconds from the AP-REP; the endpoint re-keys at
 *            lifetime - grace.
 */
#ifndef CABLEKEY_KMM_H
#define CABLEKEY_KMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cablekey/crypto.h"

#define CK_KMM_PORT 1293
#define CK_KMM_VERSION 0x10          /* major 1, minor 0 */
#define CK_KMM_HMAC_LEN 20
#define CK_KMM_HMAC_KEY_LEN 20
#define CK_KMM_MAX_SUITES 32         /* the count is one byte; more than 32 is refused */
#define CK_KMM_MAX_PRINCIPAL 255     /* server principal, without its NUL */
#define CK_KMM_MAX_MSG 65507         /* largest UDP payload over IPv4 */
#define CK_KMM_TIMESTAMP_LEN 13      /* "YYMMDDhhmmssZ" */
#define CK_KMM_MAX_ENGINE_ID 32      /* RFC 3411: 5..32 octets */
#define CK_KMM_MAX_USM_USER 32       /* RFC 3414: 1..32 octets */

enum ck_kmm_type {
    CK_KMM_WAKE_UP = 0x01,
    CK_KMM_AP_REQ = 0x02,
    CK_KMM_AP_REP = 0x03,
    CK_KMM_SP_RECOVERED = 0x04,
    CK_KMM_REKEY = 0x05,
    CK_KMM_ERROR_REPLY = 0x06,
};

enum ck_kmm_doi {
    CK_KMM_DOI_IPSEC = 0x01,
    CK_KMM_DOI_SNMPV3 = 0x02,
};

/* IPsec ciphersuite code points (the IPsec DOI's auth-algorithm and ESP transform IDs). */
#define CK_KMM_AUTH_HMAC_MD5_96 0x01
#define CK_KMM_AUTH_HMAC_SHA1_96 0x02
#define CK_KMM_ENC_3DES 0x03
#define CK_KMM_ENC_RC5 0x04
#define CK_KMM_ENC_IDEA 0x05
#define CK_KMM_ENC_CAST 0x06
#define CK_KMM_ENC_BLOWFISH 0x07
#define CK_KMM_ENC_NULL 0x0b
#define CK_KMM_ENC_AES128 0x0c
/* SNMPv3 code points: {auth, privacy}. */
#define CK_KMM_SNMP_AUTH_MD5 0x21
#define CK_KMM_SNMP_AUTH_SHA1 0x22
#define CK_KMM_SNMP_PRIV_NULL 0x20
#define CK_KMM_SNMP_PRIV_DES 0x21

struct ck_kmm_suite {
    uint8_t auth;
    uint8_t enc;                     /* privacy for SNMPv3 */
};

/* Application Specific Data of DOI SNMPv3. */
struct ck_kmm_snmp_asd {
    uint8_t engine_id[CK_KMM_MAX_ENGINE_ID];
    uint8_t engine_id_len;           /* 1..32 on the wire (RFC 3411 says 5..32; 1..4 accepted) */
    uint32_t engine_boots;
    uint32_t engine_time;
    char user[CK_KMM_MAX_USM_USER + 1]; /* NUL-terminated; 1..32 bytes on the wire */
};

/* One decoded (or to-be-encoded) message. Which fields are meaningful depends on type/doi:
 *   Wake Up:      server_nonce, server_principal
 *   AP Request:   krb (DER AP-REQ), server_nonce, asd, suites (1..MAX), reestablish, hmac
 *   AP Reply:     krb (DER AP-REP), asd, suites (exactly 1), lifetime, grace, reestablish,
 *                 ack_required, hmac
 *   SP Recovered: hmac
 *   Rekey:        server_nonce, server_principal, timestamp, asd (IPsec only), suites,
 *                 lifetime, grace, reestablish, hmac
 *   Error Reply:  krb (DER KRB-ERROR)
 * After ck_kmm_decode, krb points into the decoded buffer (no copy): keep the buffer alive. */
struct ck_kmm_msg {
    uint8_t type;                    /* enum ck_kmm_type */
    uint8_t doi;                     /* enum ck_kmm_doi */
    uint8_t version;                 /* CK_KMM_VERSION when encoding; decode accepts major 1 */
    uint32_t server_nonce;
    char server_principal[CK_KMM_MAX_PRINCIPAL + 1];
    int64_t timestamp;               /* Rekey: seconds since the epoch (UTC, 1950..2049) */
    const uint8_t *krb;              /* DER AP-REQ / AP-REP / KRB-ERROR, length from its header */
    size_t krb_len;
    uint32_t spi;                    /* DOI IPsec ASD: the sender's inbound SPI */
    struct ck_kmm_snmp_asd snmp;     /* DOI SNMPv3 ASD */
    uint8_t n_suites;
    struct ck_kmm_suite suites[CK_KMM_MAX_SUITES];
    uint32_t lifetime;               /* seconds */
    uint32_t grace;                  /* seconds */
    uint8_t reestablish;
    uint8_t ack_required;
    uint8_t hmac[CK_KMM_HMAC_LEN];
    size_t hmac_offset;              /* decode: offset of the HMAC field = bytes it covers */
};

/* Parses one datagram. The embedded Kerberos blob's length comes from its DER header (short and
 * long form, at most 4 length octets, never past len); its outer tag must be the one the KMMID
 * implies ([APPLICATION 14/15/30]), but its content is not decoded here. Trailing bytes after
 * the last field are CK_ERR_DECODE. Defined KMMID/DOI pairs (as the pktc dissector reads them):
 * every message with DOI IPsec; with DOI SNMPv3 every message but Rekey (Wake Up, SP Recovered
 * and Error Reply carry nothing DOI-specific; there is no SNMPv3 ASD for Rekey). */
int ck_kmm_decode(const uint8_t *buf, size_t len, struct ck_kmm_msg *out);

/* Serializes m into buf (capacity cap), copying m->hmac as is (use ck_kmm_seal afterwards to
 * fill it in). CK_ERR_LIMIT if cap is too small or a count/length is over the limits;
 * CK_ERR_INVAL for a type/doi pair the protocol does not define. */
int ck_kmm_encode(const struct ck_kmm_msg *m, uint8_t *buf, size_t cap, size_t *len);

/* An Error Reply (KMMID 0x05) into out: a KRB-ERROR of code from service (a principal name, its
 * realm optional; name type NT-SRV-INST) stamped now/usec, with e_text unless NULL. A doi this
 * library does not define is carried back as is (CONTRACT7). *out_len is 0 on failure. */
int ck_kmm_error_reply_encode(const char *service, int32_t code, const char *e_text, int64_t now,
                              int32_t usec, uint8_t doi, uint8_t *out, size_t cap,
                              size_t *out_len);

/* Short name of a KMMID ("AP Request"), DOI ("IPsec") or code point ("HMAC-SHA-1-96",
 * "AES-128-CBC", ...; doi decides the table); "unknown" otherwise. */
const char *ck_kmm_type_name(uint8_t type);
const char *ck_kmm_doi_name(uint8_t doi);
const char *ck_kmm_auth_name(uint8_t doi, uint8_t auth);
const char *ck_kmm_enc_name(uint8_t doi, uint8_t enc);

/* Whether cablekey implements the suite (IPsec: auth SHA1-96 or MD5-96 with enc AES128, 3DES or
 * NULL; SNMPv3: auth SHA1 or MD5 with priv NULL or DES), and its strength rank (higher is
 * stronger; 0 when not implemented). The server picks, among the suites the endpoint offered
 * and its own configuration allows, the one with the highest rank. */
bool ck_kmm_suite_supported(uint8_t doi, struct ck_kmm_suite s);
int ck_kmm_suite_rank(uint8_t doi, struct ck_kmm_suite s);
/* Key lengths the suite needs (bytes): IPsec enc 16/24/0, auth 20/16; SNMPv3 auth 20/16, priv
 * 16/0. CK_ERR_UNSUPPORTED when not implemented. */
int ck_kmm_suite_key_lengths(uint8_t doi, struct ck_kmm_suite s, size_t *enc_len,
                             size_t *auth_len);

/* Short suite names for configuration files, command lines and logs, e.g. "sha1-aes128",
 * "sha1-3des", "sha1-null", "md5-aes128" (IPsec), "sha1-des", "md5-null" (SNMPv3): implemented
 * suites only. name: "unknown" for anything else. parse: CK_ERR_UNSUPPORTED for an unknown name. */
const char *ck_kmm_suite_short_name(uint8_t doi, struct ck_kmm_suite s);
int ck_kmm_suite_from_short_name(uint8_t doi, const char *name, struct ck_kmm_suite *out);

/* "YYMMDDhhmmssZ" <-> seconds since the epoch (RFC 5280 UTCTime windowing: YY < 50 is 20YY).
 * Parse: CK_ERR_DECODE for anything but 13 valid characters naming a real date. */
int ck_kmm_timestamp_format(int64_t t, char out[CK_KMM_TIMESTAMP_LEN + 1]);
int ck_kmm_timestamp_parse(const char *s, size_t len, int64_t *t);

/* ---------------------------------------------------------------------------------------------
 * Key derivation and message authentication.
 */

/* F(secret, label, seed) into out (out_len bytes, 1..1024): P_SHA-1 of RFC 2246 §5, chained
 * over OpenSSL's HMAC-SHA-1 on a per-thread context (the same bytes as OpenSSL's TLS1-PRF with
 * SHA1, which test_kmm_kdf checks; that KDF rebuilds its HMAC contexts on every call). */
int ck_kmm_prf(const uint8_t *secret, size_t secret_len, const char *label, const uint8_t *seed,
               size_t seed_len, uint8_t *out, size_t out_len);

enum ck_kmm_hmac_use {
    CK_KMM_HMAC_AP_REQ,              /* keyed from the ticket session key */
    CK_KMM_HMAC_AP_REP,              /* keyed from the AP-REP sub-key */
    CK_KMM_HMAC_SP_RECOVERED,        /* from the AP-REP sub-key */
    CK_KMM_HMAC_REKEY,               /* from the sub-key of the SA being replaced */
};

/* The 20-byte HMAC key for one use, from a Kerberos key (session key or sub-key contents). */
int ck_kmm_hmac_key(enum ck_kmm_hmac_use use, const ck_key *from,
                    uint8_t out[CK_KMM_HMAC_KEY_LEN]);

/* Fills the last 20 bytes of an encoded message (len includes them) with HMAC-SHA-1 under key
 * over msg[0 .. len-20). For SP Recovered use ck_kmm_sp_recovered_seal. */
int ck_kmm_seal(uint8_t *msg, size_t len, const uint8_t key[CK_KMM_HMAC_KEY_LEN]);
/* Checks a decoded message's HMAC (over buf[0 .. m->hmac_offset)) in constant time:
 * 0 or CK_ERR_INTEGRITY. */
int ck_kmm_verify(const uint8_t *buf, const struct ck_kmm_msg *m,
                  const uint8_t key[CK_KMM_HMAC_KEY_LEN]);
/* SP Recovered: the HMAC covers the 3-byte header || ap_rep_hmac (the AP Reply's HMAC field). */
int ck_kmm_sp_recovered_seal(uint8_t msg[3 + CK_KMM_HMAC_LEN],
                             const uint8_t ap_rep_hmac[CK_KMM_HMAC_LEN],
                             const uint8_t key[CK_KMM_HMAC_KEY_LEN]);
int ck_kmm_sp_recovered_verify(const uint8_t *buf, size_t len,
                               const uint8_t ap_rep_hmac[CK_KMM_HMAC_LEN],
                               const uint8_t key[CK_KMM_HMAC_KEY_LEN]);

/* Keys of one IPsec SA pair (endpoint->server and server->endpoint) or one SNMPv3 USM user. */
#define CK_KMM_MAX_KEY 32
struct ck_kmm_keys {
    uint8_t doi;
    struct ck_kmm_suite suite;
    size_t enc_len, auth_len;        /* per direction (SNMPv3: priv and auth) */
    uint8_t enc_c2s[CK_KMM_MAX_KEY], auth_c2s[CK_KMM_MAX_KEY]; /* endpoint -> server */
    uint8_t enc_s2c[CK_KMM_MAX_KEY], auth_s2c[CK_KMM_MAX_KEY]; /* server -> endpoint */
    /* SNMPv3 uses enc_c2s as privKey and auth_c2s as authKey; the *_s2c halves stay zero. */
};

/* IPsec: spi_c = endpoint's inbound SPI, spi_s = server's inbound SPI. */
int ck_kmm_derive_ipsec(const ck_key *subkey, struct ck_kmm_suite suite, uint32_t spi_c,
                        uint32_t spi_s, struct ck_kmm_keys *out);
int ck_kmm_derive_snmpv3(const ck_key *subkey, struct ck_kmm_suite suite,
                         const struct ck_kmm_snmp_asd *agent, struct ck_kmm_keys *out);
void ck_kmm_keys_clear(struct ck_kmm_keys *k);

/* ---------------------------------------------------------------------------------------------
 * Call keys: per-call keys from a CTA-to-CTA (or CTA-to-server) sub-key. cablekey's own
 * definitions (docs/PROTOCOL.md, "Call keys"), on the same PRF F as above; nothing here is claimed
 * to interoperate with field equipment.
 *   Inputs   K_call = the call sub-key (CK_CALL_KEY_LEN random bytes from the source controller);
 *            SPI = the SPI the source controller chose: source->destination uses SPI, the reverse
 *            SPI+1, so SPI must be in CK_CALL_SPI_MIN..CK_CALL_SPI_MAX (RFC 4303 reserves 0..255).
 *   ESP      F(K_call, "cablekey call esp keys", SPI || SPI+1), cut as enc(s->d) || auth(s->d) ||
 *            enc(d->s) || auth(d->s) for the one negotiated IPsec suite; sequence numbers start
 *            at 1 (RFC 4303); compatibility mode only: F(K_call, "cablekey call compat seq",
 *            SPI || SPI+1) cut into two 4-byte big-endian words w, start = (w & 0x7fffffff) + 1.
 *   SRTP     F(K_call, "cablekey call srtp keys", SPI || profile), cut as key(s->d) ||
 *            salt(s->d) || key(d->s) || salt(d->s).
 *   RTP-3DES F(K_call, "cablekey call rtp-3des keys", SPI || mac), mac 0 or 1, cut as
 *            key(s->d) || key(d->s) [|| hmac(s->d) || hmac(d->s)]: compatibility only, weak.
 *   ACK      HMAC-SHA-1(F(K_call, "cablekey call ack", ""),
 *                       role || SPI || len(call id) || call id), 20 bytes, verified in constant
 *            time.
 * SPI and lengths are big-endian / one byte. Every struct below is wiped by ck_call_keys_clear.
 */
#define CK_CALL_KEY_LEN 32
#define CK_CALL_SPI_MIN 256u
#define CK_CALL_SPI_MAX 0xfffffffeu
#define CK_CALL_MAX_ID 64            /* call id bytes (MGCP CallId is at most 32 hex digits) */
#define CK_CALL_ACK_LEN 20
#define CK_CALL_3DES_KEY_LEN 24
#define CK_CALL_3DES_MAC_KEY_LEN 20

enum ck_call_srtp_profile {           /* code points go into the PRF seed */
    CK_CALL_SRTP_AES_CM_128_HMAC_SHA1_80 = 1, /* master key 16, master salt 14 */
    CK_CALL_SRTP_AEAD_AES_128_GCM = 2,        /* master key 16, master salt 12 */
};

enum ck_call_ack_role {               /* who acknowledges: first byte the ACK HMAC covers */
    CK_CALL_ACK_DESTINATION = 1,      /* the destination endpoint (through its controller) */
    CK_CALL_ACK_SOURCE = 2,           /* the source endpoint */
};

/* ESP keys of one call: s->d is the SA with SPI spi_sd, d->s the SA with spi_ds = spi_sd + 1. */
struct ck_call_esp_keys {
    struct ck_kmm_suite suite;
    uint32_t spi_sd, spi_ds;
    uint32_t seq_sd, seq_ds;          /* first sequence number sent on each SA */
    size_t enc_len, auth_len;
    uint8_t enc_sd[CK_KMM_MAX_KEY], auth_sd[CK_KMM_MAX_KEY];
    uint8_t enc_ds[CK_KMM_MAX_KEY], auth_ds[CK_KMM_MAX_KEY];
};

struct ck_call_srtp_keys {
    enum ck_call_srtp_profile profile;
    size_t key_len, salt_len;
    uint8_t key_sd[16], salt_sd[14];
    uint8_t key_ds[16], salt_ds[14];
};

struct ck_call_3des_keys {
    bool mac;                         /* the optional HMAC-SHA-1 keys were derived */
    uint8_t key_sd[CK_CALL_3DES_KEY_LEN], key_ds[CK_CALL_3DES_KEY_LEN];
    uint8_t mac_sd[CK_CALL_3DES_MAC_KEY_LEN], mac_ds[CK_CALL_3DES_MAC_KEY_LEN];
};

/* k_call is CK_CALL_KEY_LEN bytes; spi out of CK_CALL_SPI_MIN..MAX is CK_ERR_INVAL. compat_seq
 * selects the seed's derived starting sequence numbers instead of 1. */
int ck_call_derive_esp(const uint8_t *k_call, size_t k_len, struct ck_kmm_suite suite,
                       uint32_t spi, bool compat_seq, struct ck_call_esp_keys *out);
int ck_call_derive_srtp(const uint8_t *k_call, size_t k_len, enum ck_call_srtp_profile profile,
                        uint32_t spi, struct ck_call_srtp_keys *out);
int ck_call_derive_3des(const uint8_t *k_call, size_t k_len, uint32_t spi, bool mac,
                        struct ck_call_3des_keys *out);

/* The ACK an endpoint returns for (K_call, SPI, call id), and its check by a controller: 0,
 * CK_ERR_DECODE for an ACK that is not CK_CALL_ACK_LEN bytes, CK_ERR_INTEGRITY on a mismatch. */
int ck_call_ack_compute(const uint8_t *k_call, size_t k_len, enum ck_call_ack_role role,
                        uint32_t spi, const uint8_t *call_id, size_t call_id_len,
                        uint8_t out[CK_CALL_ACK_LEN]);
int ck_call_ack_verify(const uint8_t *k_call, size_t k_len, enum ck_call_ack_role role,
                       uint32_t spi, const uint8_t *call_id, size_t call_id_len,
                       const uint8_t *ack, size_t ack_len);

/* Wipe any of the key structs above (size = sizeof the struct); NULL is fine. */
void ck_call_keys_clear(void *keys, size_t size);

#endif
