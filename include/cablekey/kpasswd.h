/* The kpasswd protocol: password change (MIT's version 0x0001, RFC 3244 §2 "change password") and
 * set password (RFC 3244, version 0xff80) messages, as a codec shared by the KDC's kpasswd
 * service (daemons/kdc/kpasswd.c), the unit tests and the fuzz target.
 *
 * Request framing (RFC 3244 §2; every field big-endian):
 *     message length (2, the whole message including this field)
 *     protocol version (2: 0x0001 change password, 0xff80 set password)
 *     AP-REQ length (2, > 0)
 *     AP-REQ
 *     KRB-PRIV   user data: version 0x0001 the new password itself, 0xff80 ChangePasswdData DER
 * Reply framing:
 *     message length (2), protocol version (2: 0x0001, as MIT's kadmind answers both versions),
 *     AP-REP length (2; 0 when the body is a KRB-ERROR), AP-REP,
 *     KRB-PRIV (user data: result code (2) + result string) or KRB-ERROR (the same result data
 *     in e-data).
 * A client also accepts a bare KRB-ERROR (first byte 0x7e) as the whole reply: MIT's and
 * Heimdal's servers send one when they cannot even parse the framing.
 *
 * The parsers never copy: they point into the message. Every length field is checked against
 * what is there; a message that is not exactly header + AP-REQ + body is CK_ERR_DECODE. */
#ifndef CABLEKEY_KPASSWD_H
#define CABLEKEY_KPASSWD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/asn1.h>

#include "cablekey/krb5_asn1.h"

#define CK_KPASSWD_PORT 464
#define CK_KPASSWD_VERSION_CHANGEPW 0x0001
#define CK_KPASSWD_VERSION_SETPW 0xff80
#define CK_KPASSWD_HEADER_LEN 6
#define CK_KPASSWD_MAX_MSG 65535          /* the length field is 16 bits */
#define CK_KPASSWD_MAX_PASSWORD 1024      /* new password bytes accepted */
#define CK_KPASSWD_MAX_RESULT_STRING 1024 /* result string bytes accepted / sent */
#define CK_KPASSWD_CHANGEPW_SERVICE "kadmin/changepw"

/* Result codes (RFC 3244 §2, MIT's KRB5_KPASSWD_*). */
#define CK_KPASSWD_SUCCESS 0
#define CK_KPASSWD_MALFORMED 1
#define CK_KPASSWD_HARDERROR 2
#define CK_KPASSWD_AUTHERROR 3
#define CK_KPASSWD_SOFTERROR 4
#define CK_KPASSWD_ACCESSDENIED 5
#define CK_KPASSWD_BAD_VERSION 6
#define CK_KPASSWD_INITIAL_FLAG_NEEDED 7

/* A short English name of a result code ("success", "malformed request", ...). */
const char *ck_kpasswd_result_name(int code);

/* ---------------------------------------------------------------------------------------------
 * ChangePasswdData ::= SEQUENCE {
 *     newpasswd [0] OCTET STRING,
 *     targname  [1] PrincipalName OPTIONAL,
 *     targrealm [2] Realm OPTIONAL }
 * Decoding refuses a newpasswd over CK_KPASSWD_MAX_PASSWORD bytes and a targname without a
 * targrealm or the reverse (RFC 3244 names the target by both; MIT and Heimdal send both).
 * The struct wipes newpasswd when freed. */
typedef struct CK_CHANGE_PASSWD_DATA_st {
    ASN1_OCTET_STRING *newpasswd;  /* [0] */
    CK_PRINCIPAL_NAME *targname;   /* [1] OPTIONAL */
    ASN1_GENERALSTRING *targrealm; /* [2] OPTIONAL */
} CK_CHANGE_PASSWD_DATA;

DECLARE_ASN1_FUNCTIONS(CK_CHANGE_PASSWD_DATA)
CK_ASN1_CODEC_DECL(change_passwd_data, CK_CHANGE_PASSWD_DATA)

/* ---------------------------------------------------------------------------------------------
 * Framing (lib/krb/kpasswd.c).
 */
typedef struct ck_kpasswd_req {
    uint16_t version;     /* CK_KPASSWD_VERSION_CHANGEPW or _SETPW */
    const uint8_t *ap_req;
    size_t ap_req_len;
    const uint8_t *priv;  /* KRB-PRIV */
    size_t priv_len;
} ck_kpasswd_req;

/* Parses a request. CK_ERR_DECODE for a short message, a length field that disagrees with len,
 * an empty or overlong AP-REQ, or an empty KRB-PRIV; CK_ERR_UNSUPPORTED for any other version
 * (out->version is still set, so the server can name it). */
int ck_kpasswd_req_parse(const uint8_t *msg, size_t len, ck_kpasswd_req *out);
/* The same framing for the protocols that borrow it (the key version service, the provisioning
 * device channel: apenv.h) with their own versions; what names the protocol in errors. */
int ck_kpasswd_frame_parse(const uint8_t *msg, size_t len, const char *what,
                           const uint16_t *versions, size_t n_versions, ck_kpasswd_req *out);
/* Builds a request; *out is malloc'd (free()). CK_ERR_LIMIT beyond CK_KPASSWD_MAX_MSG. */
int ck_kpasswd_req_build(uint16_t version, const uint8_t *ap_req, size_t ap_req_len,
                         const uint8_t *priv, size_t priv_len, uint8_t **out, size_t *out_len);

typedef struct ck_kpasswd_rep {
    uint16_t version;     /* 0 for a bare KRB-ERROR */
    const uint8_t *ap_rep;/* NULL when ap_rep_len is 0 */
    size_t ap_rep_len;
    const uint8_t *body;  /* KRB-PRIV, or KRB-ERROR when is_error */
    size_t body_len;
    bool is_error;
} ck_kpasswd_rep;

/* Parses a reply (also a bare KRB-ERROR). CK_ERR_DECODE when malformed: a length that
 * disagrees, an AP-REP with a KRB-ERROR, a KRB-PRIV without an AP-REP, an empty body. */
int ck_kpasswd_rep_parse(const uint8_t *msg, size_t len, ck_kpasswd_rep *out);
/* Builds a reply into the caller's buffer (the KDC's reply buffer): version, AP-REP (may be
 * empty: then body must be a KRB-ERROR), body. CK_ERR_LIMIT if it does not fit in cap or in
 * CK_KPASSWD_MAX_MSG. */
int ck_kpasswd_rep_build(uint16_t version, const uint8_t *ap_rep, size_t ap_rep_len,
                         const uint8_t *body, size_t body_len, uint8_t *out, size_t cap,
                         size_t *out_len);

/* Result data (the KRB-PRIV user data / KRB-ERROR e-data of a reply): code (2) + string (UTF-8,
 * not NUL-terminated, at most CK_KPASSWD_MAX_RESULT_STRING bytes; longer strings are cut on a
 * character boundary when building). build: *out malloc'd (free()). */
int ck_kpasswd_result_build(uint16_t code, const char *string, uint8_t **out, size_t *out_len);
/* parse: the string is copied NUL-terminated into string (size >= 1), with bytes outside
 * printable ASCII, and a truncated tail, replaced by '?'. Too short (< 2 bytes) or a string over
 * CK_KPASSWD_MAX_RESULT_STRING: CK_ERR_DECODE. */
int ck_kpasswd_result_parse(const uint8_t *data, size_t len, uint16_t *code, char *string,
                            size_t size);

/* ChangePasswdData helpers. build: target (unparsed "name@REALM", NULL = change one's own
 * password) is sent as targname + targrealm; *out malloc'd (free() after wiping: it holds the
 * password). parse: *password malloc'd, NUL-terminated (free with ck_free_secret(p, len + 1));
 * target (size >= 1) receives the unparsed target or "" when absent. An empty password or one
 * with a NUL byte is CK_ERR_INVAL. */
int ck_kpasswd_setpw_data_build(const char *password, size_t password_len, const char *target,
                                uint8_t **out, size_t *out_len);
int ck_kpasswd_setpw_data_parse(const uint8_t *der, size_t len, char **password,
                                size_t *password_len, char *target, size_t target_size);

#endif
