/* Fuzzes principal name parsing (MIT escape syntax) and checks that unparse/parse round-trips. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/principal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ck_principal *p = NULL, *again = NULL;
    char *text = malloc(size + 1), *out = NULL;

    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    if (ck_principal_parse(text, "DEFAULT.REALM", 0, &p) == 0 &&
        ck_principal_unparse(p, 0, &out) == 0) {
        if (ck_principal_parse(out, "DEFAULT.REALM", 0, &again) != 0 ||
            !ck_principal_equal(p, again))
            abort();
    }
    ck_principal_free(again);
    ck_principal_free(p);
    free(out);
    free(text);
    return 0;
}
