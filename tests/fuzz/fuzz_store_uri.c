/* Fuzzes the store location parser (--db PATH|URI, database_name, [admind] database): the
 * scheme split, the sqlite: forms and the PostgreSQL password refusal, and the default stash.
 * Whatever parses must name a backend and a non-empty location that holds no control
 * character. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ck_store_uri u;
    char *text = malloc(size + 1), *st = NULL;

    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    if (ck_store_uri_parse(text, &u) == 0) {
        if (u.backend == NULL || u.ops == NULL || u.location == NULL || u.location[0] == '\0')
            abort();
        for (const char *p = u.location; *p != '\0'; p++) {
            if ((unsigned char)*p < 0x20)
                abort();
        }
        ck_store_uri_clear(&u);
    }
    if (ck_store_default_stash(text, &st) == 0 && (st == NULL || strlen(st) < 7))
        abort();
    free(st);
    free(text);
    return 0;
}
