/* Fuzzes PKCS#12 reading (ck_pki_identity_from_p12) with the password the seeds were made with.
 * Inputs whose MAC asks for more than 4096 iterations are skipped: each one would cost up to the
 * library's limit (CK_PKI_MAX_ITER, unit-tested in test_pki) in key derivation and stall the
 * fuzzer without exercising any more parsing. */
#include <stdint.h>
#include <stdlib.h>

#include <openssl/err.h>
#include <openssl/pkcs12.h>

#include "cablekey/pki.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const unsigned char *p = data;
    PKCS12 *p12 = d2i_PKCS12(NULL, &p, (long)size);
    const ASN1_INTEGER *iter = NULL;
    ck_pki_identity *id = NULL;
    long n = 1;

    if (p12 == NULL) {
        ERR_clear_error();
        (void)ck_pki_identity_from_p12(data, size, "fuzz", &id);
        return 0;
    }
    PKCS12_get0_mac(NULL, NULL, NULL, &iter, p12);
    if (iter != NULL)
        n = ASN1_INTEGER_get(iter);
    PKCS12_free(p12);
    ERR_clear_error();
    if (n > 4096)
        return 0;
    if (ck_pki_identity_from_p12(data, size, "fuzz", &id) == 0) {
        if (id->key == NULL || id->cert == NULL || id->chain == NULL)
            abort();
        ck_pki_identity_free(id);
    }
    return 0;
}
