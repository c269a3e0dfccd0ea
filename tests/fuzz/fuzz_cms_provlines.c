/* cablekey-cms's provisioning client: arbitrary GET /api/v1/lines answers (provclient.h) to the
 * parser, and what it accepts applied to a call core with a static line, twice (a second
 * snapshot replaces the first), so that adds, removals and static-line conflicts are reached. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/log.h"
#include "cablekey/util.h"
#include "call.h"
#include "cms.h"
#include "provclient.h"

static struct cms_call_core *core;
static struct cms_config cfg;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cms_dyn_line *v = NULL;
    size_t n = 0, added, removed;
    int64_t cursor;
    bool full;
    char why[300];

    if (core == NULL) {
        struct cms_call_io io;

        ck_log_open("fuzz", CK_LOG_STDERR, NULL, LOG_CRIT);
        cms_config_init(&cfg);
        if ((cfg.lines = calloc(1, sizeof(*cfg.lines))) == NULL)
            abort();
        ck_strlcpy(cfg.lines[0].number, "5551001", sizeof(cfg.lines[0].number));
        ck_strlcpy(cfg.lines[0].principal, "mta1@R", sizeof(cfg.lines[0].principal));
        cfg.n_lines = 1;
        memset(&io, 0, sizeof(io));
        if (cms_call_core_new(&cfg, "cms@fuzz", &io, &core) != 0)
            abort();
    }
    if (cms_prov_lines_parse((const char *)data, size, &v, &n, &cursor, &full, why,
                             sizeof(why)) == 0) {
        if (full) {
            cms_call_set_dynamic_lines(core, v, n, &added, &removed);
            cms_call_is_party(core, n > 0 ? v[0].principal : "mta1@R");
            cms_call_set_dynamic_lines(core, v, n / 2, &added, &removed);
        }
        free(v);
    } else if (v != NULL || n != 0) {
        abort();                      /* an error leaves nothing behind */
    }
    return 0;
}
