/* Internals of lib/pki shared between its files. */
#ifndef CABLEKEY_PKI_INT_H
#define CABLEKEY_PKI_INT_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

/* Reads a whole regular file of at most max bytes (CK_ERR_LIMIT beyond) into a malloc'd buffer;
 * what names the file's role in error messages ("PKCS#12", "anchors"). Wipe-free with
 * ck_free_secret(buf, len) when it may hold a key. */
int ck_pki_read_file(const char *path, size_t max, const char *what, uint8_t **buf, size_t *len);

/* Orders certs as a chain above cert: each entry's issuer follows it, nearest first; certificates
 * that do not chain (or duplicate cert) come last. Consumes nothing: *out holds new references. */
int ck_pki_chain_order(X509 *cert, STACK_OF(X509) *certs, STACK_OF(X509) **out);

/* Reads every CERTIFICATE block of a PEM buffer (other blocks skipped): at least one, at most max.
 * name labels errors. */
int ck_pki_certs_from_pem(const uint8_t *buf, size_t len, size_t max, const char *name,
                          STACK_OF(X509) **out);

/* Adds the id-cablekey-phone-ids extension (non-critical) holding ids (operator.c). */
int ck_pki_phone_ids_ext(X509 *x, const uint8_t (*ids)[32], size_t n);

#endif
