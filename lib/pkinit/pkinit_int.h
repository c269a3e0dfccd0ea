/* Internals shared by lib/pkinit's files. */
#ifndef CK_PKINIT_INT_H
#define CK_PKINIT_INT_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "cablekey/pkinit.h"

/* SHA-256 fetched once per process (an implicit fetch per call costs more than hashing a
 * certificate). NULL if the default provider has no SHA-256. */
const EVP_MD *ck_pkinit_sha256_md(void);
int ck_pkinit_sha256(const uint8_t *data, size_t len, uint8_t out[CK_PKINIT_TP_LEN]);

/* A new reference to the certificate whose DER is der (hash = SHA-256(der)): from the cache, or
 * decoded (and cached) on a miss. c may be NULL (always decode). CK_ERR_DECODE if der is not
 * exactly one certificate. */
int ck_pkinit_certcache_get(ck_pkinit_certcache *c, const uint8_t hash[CK_PKINIT_TP_LEN],
                            const uint8_t *der, size_t len, X509 **out);

#endif
