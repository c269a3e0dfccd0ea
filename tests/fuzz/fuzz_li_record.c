/* Fuzzes the lawful-intercept record decoder (LiCallRecord, docs/PROTOCOL.md "Lawful intercept
 * record"): what decodes must re-encode to the same bytes (DER has one encoding), and the same
 * bytes go to the envelope opener (CMS parsing in front of the decryption) with a fixed EC key. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "cablekey/intercept.h"
#include "intercept/li_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static EVP_PKEY *key;
    struct ck_li_call call;
    uint8_t *der = NULL, *pt = NULL;
    size_t len = 0, pt_len = 0;

    if (key == NULL && (key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) == NULL)
        abort();
    if (ck_li_record_decode(data, size, &call) == 0) {
        if (ck_li_record_encode(&call, &der, &len) != 0 || len != size ||
            memcmp(der, data, size) != 0)
            abort();
        OPENSSL_clear_free(der, len);
    } else if (call.call_id[0] != '\0' || call.k_call[0] != 0) {
        abort(); /* a refusal leaves the output zeroed */
    }
    ck_li_call_clear(&call);
    if (ck_li_unenvelope(data, size, key, NULL, &pt, &pt_len) == 0)
        OPENSSL_clear_free(pt, pt_len);
    return 0;
}
