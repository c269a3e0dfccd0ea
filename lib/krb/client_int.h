/* Internals shared by client_as.c and client_tgs.c (not part of the public API). */
#ifndef CABLEKEY_CLIENT_INT_H
#define CABLEKEY_CLIENT_INT_H

#include "cablekey/client.h"
#include "cablekey/krb5_asn1.h"

/* 31-bit random nonce (MIT refuses 5-byte positive UInt32 encodings). */
int ck_client_nonce(uint32_t *nonce);

/* ck_principal -> PrincipalName (its name type and components). */
int ck_client_pname(const ck_principal *p, CK_PRINCIPAL_NAME **out);
/* PrincipalName + realm -> ck_principal. */
int ck_client_principal(const CK_PRINCIPAL_NAME *pn, const ASN1_GENERALSTRING *realm,
                        ck_principal **out);

/* Fills a KDC-REQ-BODY: options, cname (may be NULL), realm, sname, till, rtime (0 = absent),
 * nonce, etypes. */
int ck_client_fill_body(CK_KDC_REQ_BODY *b, uint32_t options, const ck_principal *cname,
                        const ck_principal *sname, int64_t till, int64_t rtime, uint32_t nonce,
                        const int32_t *etypes, size_t n_etypes);

/* Turns a KRB-ERROR reply into CK_ERR_KRB with the code set and e-text in the context; *err (may
 * be NULL) receives the decoded message for further inspection (caller frees). A reply that is not
 * a decodable KRB-ERROR is CK_ERR_PROTO/CK_ERR_DECODE. */
int ck_client_krb_error(const uint8_t *msg, size_t len, CK_KRB_ERROR_MSG **err);

/* Checks a decrypted KDC reply against the request and builds the credentials: nonce, cname and
 * crealm (KDC-REP) == client, sname and srealm (EncKDCRepPart and Ticket) == server, session key
 * enctype in etypes. */
int ck_client_make_creds(const CK_KDC_REP *rep, const CK_ENC_KDC_REP_PART *enc, uint32_t nonce,
                         const ck_principal *client, const ck_principal *server,
                         const int32_t *etypes, size_t n_etypes, ck_creds **out);

bool ck_client_etype_in(int32_t e, const int32_t *list, size_t n);

/* ---------------------------------------------------------------------------------------------
 * AS pre-authentication by a mechanism that supplies the reply key itself (PKINIT): the exchange
 * builds each AS-REQ (body final, no padata), lets the mechanism add its padata, sends it, and
 * asks the mechanism for the reply key of the AS-REP instead of deriving one from a password or
 * a keytab. Nothing of the long-term key is used.
 */
#define CK_AS_MECH_RETRY 1 /* reply_key: send another request */
#define CK_AS_MECH_MAX_ROUNDS 6

typedef struct ck_as_mech {
    void *ctx;
    /* Adds padata to the AS-REQ of request `round` (0-based). Its req-body is final, so
     * ck_asn1_kdc_req_body_der(req) gives the bytes the KDC checksums. */
    int (*add_padata)(void *ctx, CK_KDC_REQ *req, int round);
    /* The KDC answered request `round` with err; ck_client_krb_error() has set CK_ERR_KRB, the
     * Kerberos code and the e-text. Return 0 to send another request, or the negative code the
     * exchange ends with. */
    int (*on_error)(void *ctx, const CK_KRB_ERROR_MSG *err, int round);
    /* The KDC answered request `round` (req, sent as the DER as_req) with rep, whose enc-part
     * enctype was requested. Return 0 with the reply key in *key, CK_AS_MECH_RETRY to send
     * another request (rep holds nothing of the mechanism's, e.g. a ticket issued without
     * pre-authentication to a request without its padata), or a negative code. */
    int (*reply_key)(void *ctx, const CK_KDC_REQ *req, const uint8_t *as_req, size_t as_req_len,
                     const CK_KDC_REP *rep, int round, ck_key *key);
    int max_rounds; /* 1..CK_AS_MECH_MAX_ROUNDS requests at most */
} ck_as_mech;

/* The AS exchange driven by mech (p->preauth_first is the mechanism's business). The AS-REP is
 * decrypted with the mechanism's key (usage 3) and checked as in ck_client_as_password. */
int ck_client_as_mech(const ck_as_params *p, const ck_as_mech *mech, ck_creds **out);

extern const int32_t ck_client_default_etypes[4];

#endif
