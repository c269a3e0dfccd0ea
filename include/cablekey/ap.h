/* AP exchange (RFC 4120 §3.2): AP-REQ build and verify, AP-REP build and verify, a replay cache,
 * and the ticket / EncryptedData helpers shared by the KDC and the client library.
 *
 * Conventions:
 *   - Functions return 0 or a negative CK_ERR_*. Verification functions also fill a Kerberos error
 *     code (CK_KRB_AP_ERR_*, what a server sends back in a KRB-ERROR) in their result struct.
 *   - Time checks use the wall clock (ck_now) and an explicit clockskew in seconds.
 *   - Secrets (session keys, subkeys, decrypted parts) are wiped by the *_clear / *_free functions.
 *   - Addresses in tickets (caddr) are not checked: the library does not know the peer address
 *     (and NATs make address-bound tickets useless); a server may check result.enc_ticket->caddr.
 */
#ifndef CABLEKEY_AP_H
#define CABLEKEY_AP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cablekey/crypto.h"
#include "cablekey/krb5_asn1.h"

/* ---------------------------------------------------------------------------------------------
 * Replay cache. In memory, bounded: entries expire after `lifetime` seconds (use 2 x clockskew)
 * and expired entries are reclaimed; when max_entries unexpired entries are stored the cache
 * refuses new ones (CK_ERR_FULL) rather than evict one that could then be replayed. An entry is a
 * SHA-256 digest of (client, server, ctime, cusec, authenticator ciphertext), as MIT's rcache
 * keys on the authenticator's ciphertext so two clients never collide.
 * Thread-safe: one internal mutex, so one cache may be shared by all threads of a server.
 */
typedef struct ck_rcache ck_rcache;

/* The KRB-ERROR e-text a server sends when its replay cache refused (CK_ERR_FULL). */
#define CK_AP_ETEXT_RCACHE_FULL "replay cache full"

#define CK_RCACHE_DEFAULT_MAX 100000

/* max_entries 0 = CK_RCACHE_DEFAULT_MAX; lifetime in seconds (> 0). */
int ck_rcache_new(size_t max_entries, int64_t lifetime, ck_rcache **out);
void ck_rcache_free(ck_rcache *rc);
/* Returns CK_ERR_REPLAY if the same entry was stored within the lifetime; CK_ERR_FULL if it is
 * new but max_entries unexpired entries are stored (nothing is stored: the caller must refuse
 * the request, since it can no longer tell a replay); else stores it and returns 0.
 * now: current time in seconds (callers pass the time they checked the skew with). */
int ck_rcache_check_and_store(ck_rcache *rc, const char *client, const char *server,
                              int64_t ctime, int32_t cusec, const uint8_t *auth_cipher,
                              size_t auth_cipher_len, int64_t now);
/* Number of live entries (tests, metrics). */
size_t ck_rcache_count(ck_rcache *rc);

/* ---------------------------------------------------------------------------------------------
 * Keys and EncryptedData.
 */

/* EncryptionKey <-> ck_key. from_asn1: CK_ERR_UNSUPPORTED for unknown enctypes, CK_ERR_DECODE for
 * a wrong key length. */
int ck_key_from_asn1(ck_key *key, const CK_ENCRYPTION_KEY *k);
int ck_key_to_asn1(const ck_key *key, CK_ENCRYPTION_KEY **k);

/* Encrypts plain with key/usage into ed (etype = key's enctype, kvno NULL = absent). */
int ck_enc_data_seal(CK_ENCRYPTED_DATA *ed, const ck_key *key, int32_t usage,
                     const uint32_t *kvno, const uint8_t *plain, size_t plain_len);
/* Decrypts ed with key/usage. CK_ERR_UNSUPPORTED if ed->etype != key->enctype, CK_ERR_INTEGRITY if
 * the integrity check fails. *plain is malloc'd: free with ck_free_secret(*plain, *plain_len). */
int ck_enc_data_open(const CK_ENCRYPTED_DATA *ed, const ck_key *key, int32_t usage,
                     uint8_t **plain, size_t *plain_len);

/* ---------------------------------------------------------------------------------------------
 * Tickets.
 */

/* Encodes etp and encrypts it into ticket->enc_part with key (usage 2, kvno recorded). The
 * ticket's realm and sname must be set by the caller; tkt_vno is set to 5. */
int ck_ticket_seal(CK_TICKET *ticket, const CK_ENC_TICKET_PART *etp, const ck_key *key,
                   uint32_t kvno);
/* Decrypts ticket->enc_part with key (usage 2) and decodes the EncTicketPart.
 * CK_ERR_INTEGRITY: wrong key or modified ticket; CK_ERR_DECODE: undecodable plaintext. */
int ck_ticket_open(const CK_TICKET *ticket, const ck_key *key, CK_ENC_TICKET_PART **out);

/* ---------------------------------------------------------------------------------------------
 * AP-REQ.
 */

/* Builds an AP-REQ with an Authenticator {crealm, cname, cksum, cusec/ctime = now, subkey,
 * seq-number} encrypted with session_key under key_usage (CK_KU_AP_REQ_AUTH 11, or
 * CK_KU_TGS_REQ_AUTH 7 for PA-TGS-REQ). cksum, subkey, seq_number may be NULL (absent).
 * ctime_out/cusec_out (may be NULL) receive the authenticator time, which ck_ap_rep_verify needs.
 * *der is OPENSSL_malloc'd (like every encoder's output): free with ck_asn1_free_der(). */
int ck_ap_req_build(const CK_TICKET *ticket, const ck_key *session_key, const char *client_realm,
                    const CK_PRINCIPAL_NAME *client_name, uint32_t ap_options,
                    const CK_CHECKSUM *cksum, int32_t key_usage, const ck_key *subkey,
                    const uint32_t *seq_number, int64_t *ctime_out, int32_t *cusec_out,
                    uint8_t **der, size_t *der_len);
/* The same at a time the caller gives (an injected clock): ctime = now, cusec = now_usec
 * (0..999999); now 0 means the system clock, as ck_ap_req_build. */
int ck_ap_req_build_at(const CK_TICKET *ticket, const ck_key *session_key,
                       const char *client_realm, const CK_PRINCIPAL_NAME *client_name,
                       uint32_t ap_options, const CK_CHECKSUM *cksum, int32_t key_usage,
                       const ck_key *subkey, const uint32_t *seq_number, int64_t now,
                       int32_t now_usec, int64_t *ctime_out, int32_t *cusec_out, uint8_t **der,
                       size_t *der_len);

/* Makes a keyed Checksum (cksumtype 0 = the key's mandatory type) over data, for the
 * authenticator's cksum field (e.g. usage 6 over the KDC-REQ-BODY of a TGS-REQ). */
int ck_checksum_new(const ck_key *key, int32_t cksumtype, int32_t usage, const uint8_t *data,
                    size_t len, CK_CHECKSUM **out);

/* Service key lookup for ck_ap_req_verify: fill *key with the key of the ticket's server
 * (ticket->sname@ticket->realm) for etype and kvno (kvno 0 = the ticket did not say; use the
 * newest). Return 0, or a negative CK_ERR_* and set *krb_error (CK_KRB_AP_ERR_NOKEY when no key
 * for the etype, CK_KRB_AP_ERR_BADKEYVER when no key of that kvno, CK_KRB_AP_ERR_NOT_US when
 * the server is not ours, or any other KDC/AP code). */
typedef int (*ck_ap_key_fn)(void *arg, const CK_TICKET *ticket, int32_t etype, uint32_t kvno,
                            ck_key *key, int32_t *krb_error);

/* Key lookup over a ck_keytab (arg = const ck_keytab *): matches sname@realm, kvno, etype. */
int ck_ap_keytab_key_fn(void *arg, const CK_TICKET *ticket, int32_t etype, uint32_t kvno,
                        ck_key *key, int32_t *krb_error);

typedef struct ck_ap_req_result {
    int32_t krb_error;                 /* Kerberos code on failure, 0 on success */
    uint32_t ap_options;               /* CK_AP_OPT_* */
    CK_TICKET *ticket;                 /* the received ticket (decoded) */
    CK_ENC_TICKET_PART *enc_ticket;    /* decrypted EncTicketPart: cname/crealm/caddr/AD */
    CK_AUTHENTICATOR *authenticator;   /* decrypted Authenticator: cksum, AD */
    int32_t ticket_etype;              /* ticket enc-part etype and kvno (0 if absent) */
    uint32_t ticket_kvno;
    ck_key session_key;                /* from the ticket */
    uint32_t tkt_flags;                /* CK_TKT_FLG_* */
    int64_t authtime, starttime, endtime, renew_till; /* starttime = authtime when absent,
                                                        renew_till = 0 when absent */
    int64_t ctime;                     /* authenticator time */
    int32_t cusec;
    bool has_subkey;
    ck_key subkey;
    bool has_seq_number;
    uint32_t seq_number;
    /* The authenticator as received (still encrypted): what a replay cache kept by the caller
     * hashes, as ck_rcache does inside the verification when rc != NULL. */
    CK_ENCRYPTED_DATA *auth_enc;
} ck_ap_req_result;

/* Verifies an AP-REQ (RFC 4120 §3.2.3): decodes it, looks up the service key, decrypts the ticket
 * (failure: CK_KRB_AP_ERR_BAD_INTEGRITY 31), decrypts the authenticator with the session key and
 * key_usage (failure: CK_KRB_AP_ERR_MODIFIED 41), checks authenticator cname/crealm == ticket's
 * (CK_KRB_AP_ERR_BADMATCH 36), |ctime - now| <= clockskew (CK_KRB_AP_ERR_SKEW 37), ticket
 * starttime <= now + skew (CK_KRB_AP_ERR_TKT_NYV 33, also for INVALID tickets), endtime >=
 * now - skew (CK_KRB_AP_ERR_TKT_EXPIRED 32), and if rc != NULL the replay cache
 * (CK_KRB_AP_ERR_REPEAT 34; a full cache returns CK_ERR_FULL with CK_KRB_ERR_GENERIC 60, which
 * a server answers with e-text CK_AP_ETEXT_RCACHE_FULL). expected_server (may be NULL) is the unparsed "svc/host@REALM" the
 * ticket must be for (else CK_KRB_AP_ERR_NOT_US 35). An undecodable AP-REQ is
 * CK_KRB_AP_ERR_MSG_TYPE 40 (not an AP-REQ) or CK_KRB_ERR_GENERIC 60 (malformed).
 * The authenticator checksum is NOT verified here (its meaning depends on the application: GSS
 * checksum, TGS-REQ body checksum); see result->authenticator->cksum.
 * out is always initialized; on failure it may hold partial data: always call
 * ck_ap_req_result_clear. */
int ck_ap_req_verify(const uint8_t *der, size_t len, ck_ap_key_fn key_fn, void *key_arg,
                     const char *expected_server, ck_rcache *rc, int64_t clockskew,
                     int32_t key_usage, ck_ap_req_result *out);
/* The same, judged at the given wall-clock time (seconds since the epoch) instead of the system
 * clock: the KDC passes its own (injectable) clock. */
int ck_ap_req_verify_at(const uint8_t *der, size_t len, ck_ap_key_fn key_fn, void *key_arg,
                        const char *expected_server, ck_rcache *rc, int64_t clockskew,
                        int32_t key_usage, int64_t now, ck_ap_req_result *out);
/* Frees and wipes everything in r (and zeroes it); accepts an all-zero struct. */
void ck_ap_req_result_clear(ck_ap_req_result *r);

/* ---------------------------------------------------------------------------------------------
 * AP-REP (mutual authentication). EncAPRepPart {ctime, cusec (copied from the authenticator),
 * subkey, seq-number} encrypted with the session key, usage 12.
 */
/* *der: free with ck_asn1_free_der(). */
int ck_ap_rep_build(const ck_key *session_key, int64_t ctime, int32_t cusec, const ck_key *subkey,
                    const uint32_t *seq_number, uint8_t **der, size_t *der_len);

typedef struct ck_ap_rep_result {
    int32_t krb_error;    /* CK_KRB_AP_ERR_MODIFIED / MUT_FAIL on failure */
    bool has_subkey;
    ck_key subkey;
    bool has_seq_number;
    uint32_t seq_number;
} ck_ap_rep_result;

/* Decrypts and checks an AP-REP: ctime/cusec must equal those of our authenticator
 * (CK_KRB_AP_ERR_MUT_FAIL 46 otherwise); decrypt failure is CK_KRB_AP_ERR_MODIFIED 41. */
int ck_ap_rep_verify(const uint8_t *der, size_t len, const ck_key *session_key, int64_t ctime,
                     int32_t cusec, ck_ap_rep_result *out);
void ck_ap_rep_result_clear(ck_ap_rep_result *r);

#endif
