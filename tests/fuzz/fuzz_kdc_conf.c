/* Fuzzes kdc.conf as cablekey-kdc reads it: the profile parser, the schema check (unknown
 * sections and keys with file:line), every typed reader of daemons/kdc/config.c (listen lists,
 * MIT's kdc_ports, [logging] destinations, durations, enctypes, PKINIT settings), and the log
 * destination parser on the raw input. Nothing is opened: loading a configuration reads no file
 * it names. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/daemon.h"
#include "cablekey/log.h"
#include "cablekey/profile.h"
#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ck_profile *prof = NULL;
    struct kdc_daemon_config dc;
    struct ck_log_target t;
    char *text;

    if (size > CK_PROFILE_MAX_FILE)
        return 0;
    if ((text = malloc(size + 1)) == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    /* Notices of the readers stay out of the fuzzer's output. */
    ck_log_set_level(LOG_ERR);
    if (ck_profile_parse_string(text, "fuzz.conf", &prof) == 0) {
        kdc_daemon_config_init(&dc);
        if (kdc_daemon_config_load(&dc, prof, NULL) == 0)
            (void)kdc_daemon_config_finish(&dc);
        kdc_daemon_config_free(&dc);
    }
    (void)ck_log_target_parse(text, true, &t);
    (void)ck_log_target_parse(text, false, &t);
    ck_profile_free(prof);
    free(text);
    return 0;
}
