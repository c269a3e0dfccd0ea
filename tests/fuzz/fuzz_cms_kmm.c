/* libFuzzer target: datagrams into cablekey-cms's KMM handler (cms_kmm_handle) and its signaling
 * port (cms_sig_handle), against one in-process server made at start (tests/unit/cms_fixture.h:
 * a keytab in a temporary directory, a ticket sealed under its key). The first input byte picks
 * the port (0 mod 3: signaling, 1: KMM); with 2 the rest of the input follows the start of a
 * valid AP Request (header and AP-REQ, which verify), so that the fuzzer also reaches the HMAC,
 * nonce, suite and SA paths behind the ticket check. The SA
 * table is bounded (max_sas 64) and swept as the fuzzer runs: nothing grows without bound.
 * Seeds: tests/fuzz/corpus/cms_kmm/ (an AP Request, AP Reply and ESP packets captured by t_cms.sh,
 * each behind its port byte). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/cms_fixture.h"
#include "cablekey/log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct fx fix;
static ck_esp_engine *eng;
static uint8_t valid[4096];
static size_t valid_len;

/* The keytab's temporary directory goes when libFuzzer exits. */
static void
cleanup(void)
{
    ck_esp_engine_free(eng);
    fx_down(&fix);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct fx_opts o = {.max_sas = 64, .rcache = 1024, .clockskew = 86400};
    struct fx_req q = {0};

    (void)argc;
    (void)argv;
    ck_log_open("fuzz_cms_kmm", CK_LOG_STDERR, NULL, LOG_CRIT);
    if (fx_up(&fix, &o, (int64_t)time(NULL)) != 0 || ck_esp_engine_new(&eng) != 0 ||
        fx_apreq(&fix, &q, valid, sizeof(valid), &valid_len) != 0) {
        fprintf(stderr, "fuzz_cms_kmm: setup: %s\n", ck_error_context());
        abort();
    }
    atexit(cleanup);
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static unsigned n;
    uint8_t reply[CK_KMM_MAX_MSG], extra[2048];
    struct sockaddr_in sin;
    size_t rl = 0, el = 0;

    if (size < 1)
        return 0;
    fx_peer(&sin, "192.0.2.77", (uint16_t)(1024 + data[0]));
    fix.n_sent = 0;
    if (data[0] % 3 == 0) {
        (void)cms_sig_handle(&fix.s, eng, data + 1, size - 1, (struct sockaddr *)&sin, reply,
                             sizeof(reply), &rl, extra, sizeof(extra), &el, NULL, NULL);
    } else if (data[0] % 3 == 1 || size - 1 < 8) {
        (void)cms_kmm_handle(&fix.s, data + 1, size - 1, (struct sockaddr *)&sin, NULL, reply,
                             sizeof(reply), &rl, NULL, 0);
    } else {
        /* The valid request's header and AP-REQ, then the fuzzer's bytes for the rest. */
        uint8_t *msg = malloc(valid_len + size);
        size_t head = valid_len - CK_KMM_HMAC_LEN - 8, len;

        if (msg == NULL)
            return 0;
        memcpy(msg, valid, head);
        memcpy(msg + head, data + 1, size - 1);
        len = head + size - 1;
        (void)cms_kmm_handle(&fix.s, msg, len, (struct sockaddr *)&sin, NULL, reply,
                             sizeof(reply), &rl, NULL, 0);
        free(msg);
    }
    if (++n % 256 == 0)
        (void)cms_maintenance(&fix.s, (n / 256) % 2 == 0);
    return 0;
}
