#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

#include "cablekey/error.h"

#define CK_ERROR_CONTEXT_MAX 256

static _Thread_local char error_context[CK_ERROR_CONTEXT_MAX];
static _Thread_local int error_krb_code;

const char *
ck_strerror(int err)
{
    switch (err) {
    case CK_OK: return "success";
    case CK_ERR_NOMEM: return "out of memory";
    case CK_ERR_INVAL: return "invalid argument";
    case CK_ERR_DECODE: return "malformed input";
    case CK_ERR_ENCODE: return "encoding failed";
    case CK_ERR_CRYPTO: return "cryptographic operation failed";
    case CK_ERR_INTEGRITY: return "integrity check failed";
    case CK_ERR_NOTFOUND: return "not found";
    case CK_ERR_EXISTS: return "already exists";
    case CK_ERR_IO: return "I/O error";
    case CK_ERR_DB: return "database error";
    case CK_ERR_UNSUPPORTED: return "not supported";
    case CK_ERR_LIMIT: return "limit exceeded";
    case CK_ERR_PERM: return "permission problem";
    case CK_ERR_CONFIG: return "configuration error";
    case CK_ERR_EXPIRED: return "expired";
    case CK_ERR_SKEW: return "clock skew too great";
    case CK_ERR_REPLAY: return "replay detected";
    case CK_ERR_POLICY: return "refused by policy";
    case CK_ERR_PROTO: return "protocol error";
    case CK_ERR_KRB: return "Kerberos error from peer";
    case CK_ERR_TIMEOUT: return "timed out";
    case CK_ERR_FULL: return "table full";
    default: return "unknown error";
    }
}

/* Formats through a local buffer: callers may pass ck_error_context() itself as an argument to
 * add context to an inner error ("keytab %s: %s", path, ck_error_context()). */
static void
set_context(const char *fmt, va_list ap)
{
    char buf[CK_ERROR_CONTEXT_MAX];

    if (fmt == NULL) {
        error_context[0] = '\0';
        return;
    }
    vsnprintf(buf, sizeof(buf), fmt, ap);
    memcpy(error_context, buf, sizeof(buf));
}

int
ck_error_set(int err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    set_context(fmt, ap);
    va_end(ap);
    return err;
}

int
ck_error_set_ssl(int err, const char *fmt, ...)
{
    va_list ap;
    unsigned long e;
    size_t used;

    va_start(ap, fmt);
    set_context(fmt, ap);
    va_end(ap);
    e = ERR_get_error();
    used = strlen(error_context);
    if (e != 0 && used + 3 < sizeof(error_context)) {
        memcpy(error_context + used, ": ", 3);
        ERR_error_string_n(e, error_context + used + 2, sizeof(error_context) - used - 2);
    }
    ERR_clear_error();
    return err;
}

const char *
ck_error_context(void)
{
    return error_context;
}

void
ck_error_clear(void)
{
    error_context[0] = '\0';
    error_krb_code = 0;
}

int
ck_error_krb_code(void)
{
    return error_krb_code;
}

void
ck_error_set_krb_code(int code)
{
    error_krb_code = code;
}
