/* Fuzzes the WAV parser (ck_wav_parse, what ck_wav_read runs on a file's bytes): any input is
 * refused or gives whole samples that ck_wav_write's layout reproduces. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/media.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int16_t *s = NULL;
    size_t n = 0;
    int rc = ck_wav_parse(data, size, &s, &n);

    if (rc == 0) {
        /* Every sample came from the input: at most half its bytes. */
        if (s == NULL || n > size / 2)
            abort();
        free(s);
    } else if (s != NULL || n != 0) {
        abort();
    }
    return 0;
}
