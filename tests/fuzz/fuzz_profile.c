/* Fuzzes the krb5 profile (kdc.conf) parser and the duration/boolean value parsers. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/profile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ck_profile *prof = NULL;
    char *text = malloc(size + 1);
    int64_t secs;
    bool b;

    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    if (ck_profile_parse_string(text, "fuzz", &prof) == 0) {
        const char *v = ck_profile_get(prof, "realms", "TEST.REALM", "max_life", NULL);
        if (v != NULL)
            (void)ck_parse_duration(v, &secs);
        v = ck_profile_get(prof, "kdcdefaults", "kdc_listen", NULL);
        (void)v;
    }
    (void)ck_parse_duration(text, &secs);
    (void)ck_parse_bool(text, &b);
    ck_profile_free(prof);
    free(text);
    return 0;
}
