/* Fuzzes the id-pkinit-san decoder (KRB5PrincipalName, strict DER). Decoding takes any
 * GeneralString bytes but NUL (as lib/asn1 does); encoding refuses control characters. So what
 * decodes either re-encodes to the very same bytes (the decoder accepts only DER) or is refused by
 * the encoder's string policy (CK_ERR_INVAL), never anything else. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cablekey/error.h"
#include "cablekey/pki.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ck_principal *p = NULL;
    uint8_t *der = NULL;
    size_t len = 0;

    if (ck_pki_san_principal_decode(data, size, &p) == 0) {
        int rc = ck_pki_san_principal_encode(p, &der, &len);
        if (rc == 0 && (len != size || memcmp(der, data, size) != 0))
            abort();
        if (rc != 0 && rc != CK_ERR_INVAL)
            abort();
    }
    OPENSSL_free(der);
    ck_principal_free(p);
    return 0;
}
