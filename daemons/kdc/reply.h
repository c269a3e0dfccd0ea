/* The KDC-REP builder shared by AS and TGS: the Ticket with its EncTicketPart, the
 * EncKDCRepPart and the KDC-REP, built from values the caller hands in.
 *
 * Ownership: a builder owns every object reachable from its messages. Setters COPY what they are
 * given (names, realms, addresses, transited encoding, authorization data, keys); nothing is
 * borrowed from the request or the presented TGT, so the caller may free those at any time. The
 * values RFC 4120 §5.4.2 repeats between messages (cname in the EncTicketPart and the KDC-REP;
 * sname and realm in the Ticket and the EncKDCRepPart; key, flags, times and caddr in both
 * encrypted parts) are held once by the builder and the message fields are views of them,
 * established and dropped only inside reply.c.
 *
 * Reuse: each worker keeps one builder (kdc_reply_acquire). kdc_reply_release resets it: the
 * session key is wiped in place, every per-exchange optional value (renew-till, addresses,
 * authorization data, key-expiration, padata) is dropped, and the Ticket's encoding cache is
 * invalidated. What stays between exchanges is public and is overwritten by the next one
 * (names, realms, flags, times, ciphertexts); a name equal to the last one keeps its encoding,
 * which saves re-encoding the same client and server names on every exchange.
 *
 * Use, in this order: acquire; set_client, set_server, [set_addresses], [set_transited],
 * [set_authz]; seal_ticket; set_part; [padata]; encode; release (always, also on errors). */
#ifndef CABLEKEY_KDC_REPLY_H
#define CABLEKEY_KDC_REPLY_H

#include <stdint.h>

#include "cablekey/crypto.h"
#include "cablekey/krb5_asn1.h"
#include "cablekey/store.h"

struct kdc_worker;
struct kdc_reply;

struct kdc_ticket_times {
    int64_t authtime, starttime, endtime;
    int64_t renew_till; /* 0: not renewable */
};

/* The worker's builder, or a fresh one if it is in use. */
int kdc_reply_acquire(struct kdc_worker *w, struct kdc_reply **out);
/* Resets b and gives it back to the worker (or frees a fresh one). NULL is fine. */
void kdc_reply_release(struct kdc_worker *w, struct kdc_reply *b);
/* Frees a builder (the worker's, at worker free). Wipes the session key. NULL is fine. */
void kdc_reply_free(struct kdc_reply *b);

/* The client: cname and crealm of the EncTicketPart and the KDC-REP. */
int kdc_reply_set_client(struct kdc_reply *b, const CK_PRINCIPAL_NAME *cname, const char *crealm);
/* The server: sname and realm of the Ticket and the EncKDCRepPart. */
int kdc_reply_set_server(struct kdc_reply *b, const CK_PRINCIPAL_NAME *sname, const char *srealm);
/* caddr of the ticket and the reply part; NULL: absent. */
int kdc_reply_set_addresses(struct kdc_reply *b, const CK_HOST_ADDRESSES *caddr);
/* The ticket's transited encoding; NULL: empty domain-X500-compress (a ticket of this realm). */
int kdc_reply_set_transited(struct kdc_reply *b, const CK_TRANSITED_ENCODING *tr);
/* The ticket's authorization-data; NULL: absent. */
int kdc_reply_set_authz(struct kdc_reply *b, const CK_AUTHORIZATION_DATA *ad);
/* Sets flags, session key and times, and seals the Ticket under the service key. */
int kdc_reply_seal_ticket(struct kdc_reply *b, const struct kdc_ticket_times *t, uint32_t flags,
                          const ck_key *session, const ck_db_key *tkt_key);
/* The rest of the reply part: the client's nonce (echoed in its own encoding), the one LastReq
 * entry {0, last_req}, and key-expiration (0: absent). */
int kdc_reply_set_part(struct kdc_reply *b, const ASN1_INTEGER *nonce, int64_t last_req,
                       int64_t key_expiration);
/* The KDC-REP padata, for the caller to append to (starts empty after acquire). */
CK_METHOD_DATA **kdc_reply_padata(struct kdc_reply *b);
/* Encodes the reply part (EncASRepPart for msg_type CK_KRB_AS_REP, EncTGSRepPart for
 * CK_KRB_TGS_REP), seals it under reply_key with usage (kvno: NULL = absent), and encodes the
 * KDC-REP into *der (OPENSSL_malloc'd; public, free with OPENSSL_free). */
int kdc_reply_encode(struct kdc_reply *b, int msg_type, const ck_key *reply_key, int32_t usage,
                     const uint32_t *kvno, uint8_t **der, size_t *len);

/* Copies the name src into dst (reusing dst's strings) and fills dst's encoding cache; a name
 * equal to dst (same name-type and bytes) keeps its cache. For objects a worker keeps from one
 * exchange to the next (the builder's names, the KRB-ERROR's). */
int kdc_name_copy(CK_PRINCIPAL_NAME *dst, const CK_PRINCIPAL_NAME *src);

#endif
