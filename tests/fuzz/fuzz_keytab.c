/* Fuzzes the MIT keytab decoder: decode, and for accepted input re-encode and decode again. */
#include <stdint.h>
#include <stdlib.h>

#include "cablekey/keytab.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ck_keytab *kt = NULL, *again = NULL;
    uint8_t *enc = NULL;
    size_t enc_len = 0;

    if (ck_keytab_decode(data, size, &kt) != 0)
        return 0;
    if (ck_keytab_encode(kt, &enc, &enc_len) == 0) {
        /* What we wrote must always be readable by ourselves. */
        if (ck_keytab_decode(enc, enc_len, &again) != 0)
            abort();
    }
    ck_keytab_free(again);
    free(enc);
    ck_keytab_free(kt);
    return 0;
}
