/* Fuzzes the phone adapter's state file parser (ck_provsm_decode, include/cablekey/provsm.h):
 * whatever parses must encode back to the same bytes (the format has one spelling per state),
 * and the machines must take every event from the state it describes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/provsm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ck_provsm sm;
    char *text = NULL;
    size_t len = 0;

    if (ck_provsm_decode((const char *)data, size, &sm) != 0)
        return 0;
    if (ck_provsm_encode(&sm, &text, &len) != 0)
        abort();
    /* Numbers may be written with leading zeros ("hfc 0530"): compare after a second pass. */
    {
        ck_provsm again;
        char *text2 = NULL;
        size_t len2 = 0;
        if (ck_provsm_decode(text, len, &again) != 0 || ck_provsm_encode(&again, &text2, &len2) != 0 ||
            len2 != len || memcmp(text, text2, len) != 0)
            abort();
        free(text2);
    }
    free(text);
    for (int t = 1; t <= CK_PROVSM_EV_MAX; t++) {
        ck_provsm copy = sm;
        ck_provsm_event ev = {.type = (enum ck_provsm_event_type)t, .ip = "10.0.0.1",
                              .authenticated = true, .not_before = sm.cert_not_before + 1,
                              .expires = sm.updated + 10};
        (void)ck_provsm_apply(&copy, &ev, sm.updated, NULL, NULL);
        (void)ck_provsm_tick(&copy, sm.updated + 20);
        if (ck_provsm_hfc_name(copy.hfc) == NULL || ck_provsm_tel_name(copy.tel) == NULL)
            abort();
    }
    return 0;
}
