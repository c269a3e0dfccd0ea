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

/* A manufacturer certificate decoded with a template of RFC 5280's Certificate that leaves the
 * public key undecoded (mfgcert.c; OpenSSL's X509_PUBKEY decodes it on d2i). Nothing is
 * verified: neither the signature nor the key. decode: exactly len bytes of one certificate
 * (CK_ERR_DECODE otherwise). */
typedef struct ck_pki_mfg_cert ck_pki_mfg_cert;
int ck_pki_mfg_cert_decode(const uint8_t *der, size_t len, ck_pki_mfg_cert **out);
void ck_pki_mfg_cert_free(ck_pki_mfg_cert *c);
const X509_NAME *ck_pki_mfg_cert_subject(const ck_pki_mfg_cert *c);
/* A new X509_PUBKEY holding the certificate's algorithm, parameters and key bits as they are
 * (X509_PUBKEY_set0_param: no key is decoded). rsaEncryption (parameters NULL or absent) and
 * id-ecPublicKey with a named curve OpenSSL implements only; anything else CK_ERR_POLICY. */
int ck_pki_mfg_cert_spki(const ck_pki_mfg_cert *c, X509_PUBKEY **out);

#endif
