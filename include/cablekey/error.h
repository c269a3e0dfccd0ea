/* cablekey error codes: every function returns 0 or one of these negative values, and may attach a
 * short human-readable context (thread-local) that callers log or print. The context never contains
 * secrets. */
#ifndef CABLEKEY_ERROR_H
#define CABLEKEY_ERROR_H

enum ck_error {
    CK_OK = 0,
    CK_ERR_NOMEM = -1,       /* allocation failed */
    CK_ERR_INVAL = -2,       /* caller passed an invalid argument */
    CK_ERR_DECODE = -3,      /* malformed input (ASN.1, wire, file) */
    CK_ERR_ENCODE = -4,      /* could not encode */
    CK_ERR_CRYPTO = -5,      /* OpenSSL failure */
    CK_ERR_INTEGRITY = -6,   /* checksum/MAC mismatch: modified or wrong key */
    CK_ERR_NOTFOUND = -7,    /* principal, key, file or entry not found */
    CK_ERR_EXISTS = -8,      /* already exists */
    CK_ERR_IO = -9,          /* system call failed (errno in context) */
    CK_ERR_DB = -10,         /* database failure */
    CK_ERR_UNSUPPORTED = -11,/* enctype, option or feature not supported */
    CK_ERR_LIMIT = -12,      /* a size/count/nesting limit was exceeded */
    CK_ERR_PERM = -13,       /* permissions (e.g. key file not 0600) */
    CK_ERR_CONFIG = -14,     /* configuration error */
    CK_ERR_EXPIRED = -15,    /* expired principal, key or ticket */
    CK_ERR_SKEW = -16,       /* clock skew too great */
    CK_ERR_REPLAY = -17,     /* replayed authenticator */
    CK_ERR_POLICY = -18,     /* refused by policy */
    CK_ERR_PROTO = -19,      /* protocol violation by the peer */
    CK_ERR_KRB = -20,        /* the peer answered with a KRB-ERROR (code in ck_error_krb_code) */
    CK_ERR_TIMEOUT = -21,    /* no answer in time */
    CK_ERR_FULL = -22,       /* a bounded table is full (replay cache): the request is refused */
};

/* Static name of an error code, e.g. "integrity check failed". */
const char *ck_strerror(int err);

/* Sets the thread-local context message and returns err, so callers can write
 *   return ck_error_set(CK_ERR_DECODE, "KDC-REQ: trailing %zu bytes", n); */
int ck_error_set(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Like ck_error_set, appending the OpenSSL error queue's first entry (and clearing the queue). */
int ck_error_set_ssl(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The context of the last error set on this thread ("" if none). */
const char *ck_error_context(void);

/* Clears the context. */
void ck_error_clear(void);

/* Kerberos error code carried by CK_ERR_KRB (0 if none), thread-local. */
int ck_error_krb_code(void);
void ck_error_set_krb_code(int code);

#endif
