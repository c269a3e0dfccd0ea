/* HTTP Negotiate (SPNEGO) acceptor shared by the daemons' HTTP fronts (lib/admin/spnego.c). */
#ifndef CABLEKEY_ADMIN_SPNEGO_H
#define CABLEKEY_ADMIN_SPNEGO_H

#include <stddef.h>

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>
#include <krb5.h>

#define CK_SPNEGO_MAX_TOKEN (48 * 1024) /* base64 Negotiate token; a ticket with a large PAC fits */

/* The service keys, copied from the keytab file into a MEMORY keytab of this process. The handle
 * stays open for the process's lifetime: MIT frees a memory keytab with its last handle. */
struct ck_spnego_acceptor {
    krb5_context kctx;
    krb5_keytab mem;
    gss_cred_id_t cred;
};

/* label names the memory keytab ("cablekey-admind"). CK_ERR_CONFIG/IO with the keytab named. */
int ck_spnego_acceptor_init(const char *keytab, const char *label, struct ck_spnego_acceptor *a);
void ck_spnego_acceptor_free(struct ck_spnego_acceptor *a);

/* Accepts the Authorization header value h (may be NULL). 1: no (usable) Negotiate header;
 * 0: *who is the authenticated principal and *mutual the reply token in base64 (may be NULL);
 * -1: the token was refused (why says what GSSAPI said). Kerberos only: one round. */
int ck_spnego_accept(struct ck_spnego_acceptor *a, const char *h, char **who, char **mutual,
                     char *why, size_t why_size);

/* Strict base64 (padding only at the end), at most CK_SPNEGO_MAX_TOKEN characters. */
int ck_spnego_b64_decode(const char *in, size_t len, unsigned char **out, size_t *out_len);
char *ck_spnego_b64_encode(const void *in, size_t len);

#endif
