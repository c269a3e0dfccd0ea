/* X.509 identities (a private key, its certificate and the chain above it) as the KDC, the PKINIT
 * client and the operator CLI load them: PKCS#12 files (the operator's format) or PEM pairs.
 * Implemented in lib/pki/. */
#ifndef CABLEKEY_PKI_H
#define CABLEKEY_PKI_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

typedef struct ck_pki_identity {
    EVP_PKEY *key;          /* the private key */
    X509 *cert;             /* the end-entity certificate matching key */
    STACK_OF(X509) *chain;  /* intermediate CAs above cert, nearest first; may be empty, never NULL */
} ck_pki_identity;

/* Loads an identity. spec is "FILE.p12" / "PKCS12:FILE" (password protects the PKCS#12) or
 * "FILE:cert.pem,key.pem" / "cert.pem,key.pem" (password, if not NULL, decrypts the PEM key).
 * The key must match the certificate. Wrong password, unreadable file or mismatch: a negative
 * CK_ERR_* with context; nothing secret in the message. */
int ck_pki_identity_load(const char *spec, const char *password, ck_pki_identity **out);
/* Frees everything (the private key is freed by OpenSSL, which wipes it); accepts NULL. */
void ck_pki_identity_free(ck_pki_identity *id);

/* Reads a password file: the first line without its newline, at most 1023 bytes; the file must
 * be a regular file. *out is freed with ck_pki_password_free (wipes). */
int ck_pki_password_read(const char *path, char **out);
void ck_pki_password_free(char *password);

/* Loads every certificate of a PEM file (trust anchors): at least one, at most 64. */
int ck_pki_certs_load_pem(const char *path, STACK_OF(X509) **out);

#endif
