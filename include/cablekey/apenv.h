/* The AP-REQ + KRB-PRIV envelope shared by the key version service (keyagent.h) and the
 * provisioning server's device channel (prov_wire.h): both frame a request as
 *   length (2) | version (2) | AP-REQ length (2) | AP-REQ (subkey, seq) | KRB-PRIV (subkey)
 * and answer with kpasswd.h's reply framing (AP-REP + KRB-PRIV under the subkey, or AP-REP
 * length 0 and a KRB-ERROR). Only the version number and the inner user data differ, so the
 * Kerberos steps live here once: a client exchange, and the server's frame parse, request
 * read and two reply builders. */
#ifndef CABLEKEY_APENV_H
#define CABLEKEY_APENV_H

#include <stddef.h>
#include <stdint.h>

#include "cablekey/ap.h"
#include "cablekey/client.h"
#include "cablekey/util.h"

#define CK_APENV_MAX_MSG 65535   /* the length field is 16 bits */

typedef struct ck_apenv_frame {
    uint16_t version;
    const uint8_t *ap_req;
    size_t ap_req_len;
    const uint8_t *priv;
    size_t priv_len;
} ck_apenv_frame;

/* Parses a request framed for version (pointers into msg). CK_ERR_DECODE for a length field
 * that disagrees with len, an empty AP-REQ or KRB-PRIV; CK_ERR_UNSUPPORTED for another version
 * (out->version still set). what names the protocol in error messages ("keyagent request"). */
int ck_apenv_frame_parse(const uint8_t *msg, size_t len, uint16_t version, const char *what,
                         ck_apenv_frame *out);

/* Client: one exchange over svc (the caller decides TCP or UDP in svc->tcp_only) with the
 * ticket in creds: AP-REQ with a fresh subkey and sequence number (mutual), KRB-PRIV of data
 * (timestamp, that sequence number, directional address 0); checks the AP-REP and reads the
 * reply's KRB-PRIV (timestamp within clockskew, 0: the default; the AP-REP's sequence number) into *rep (malloc'd, secret:
 * ck_free_secret). A KRB-ERROR reply is CK_ERR_KRB with the code in ck_error_krb_code() and
 * the server's e-text in the context. what: "keyagent", "device channel" (messages). */
int ck_apenv_exchange(const ck_kdc_transport *svc, const ck_creds *creds, uint16_t version,
                      const char *what, const uint8_t *data, size_t len, int64_t clockskew,
                      uint8_t **rep, size_t *rep_len);

/* Server: the request's KRB-PRIV under the authenticator's subkey (required), with a timestamp
 * within clockskew of now, sender address directional 0 when it is directional, and the
 * authenticator's sequence number. *data malloc'd (secret). */
int ck_apenv_read_request(const ck_ap_req_result *ap, const ck_apenv_frame *fr,
                          int64_t clockskew, int64_t now, uint8_t **data, size_t *data_len);
/* Server: AP-REP (a fresh sequence number) + KRB-PRIV of data under the subkey (or the session
 * key without one), timestamp now/usec, directional address 1, into the caller's buffer. */
int ck_apenv_reply_seal(const ck_ap_req_result *ap, uint16_t version, const uint8_t *data,
                        size_t len, int64_t now, int32_t usec, uint8_t *reply, size_t cap,
                        size_t *reply_len);
/* Server: AP-REP length 0 and a KRB-ERROR from service ("svc/host@REALM"). */
int ck_apenv_reply_error(uint16_t version, const char *service, int32_t code,
                         const char *e_text, int64_t now, int32_t usec, uint8_t *reply,
                         size_t cap, size_t *reply_len);

/* The head both protocols' replies start with: result (2) | text length (2, <= max) | text.
 * write: text cut to max bytes. read: text (max + 1 bytes) NUL-terminated with bytes outside
 * printable ASCII replaced by '?' (it ends up in logs); CK_ERR_DECODE when truncated or over
 * max. */
int ck_apenv_result_write(ck_writer *w, uint16_t result, const char *text, size_t max);
int ck_apenv_result_read(ck_reader *r, size_t max, uint16_t *result, char *text,
                         const char *what);

/* A KRB-ERROR (RFC 4120 §5.9.1) from service ("svc/host@REALM": sname and realm), e_text may be
 * NULL. *der: free with ck_asn1_free_der(). */
int ck_krb_error_build(const char *service, int32_t code, const char *e_text, int64_t now,
                       int32_t usec, uint8_t **der, size_t *der_len);
/* The same with e-data (e_data_len bytes; NULL: none), as kpasswd's error replies carry the
 * result (RFC 3244). */
int ck_krb_error_build_data(const char *service, int32_t code, const char *e_text,
                            const uint8_t *e_data, size_t e_data_len, int64_t now, int32_t usec,
                            uint8_t **der, size_t *der_len);
/* A KRB-ERROR reply: CK_ERR_KRB with its code (ck_error_krb_code) and e-text in the context;
 * CK_ERR_PROTO when it does not decode. what: "keyagent", ... */
int ck_krb_error_reply(const uint8_t *der, size_t len, const char *what);

#endif
