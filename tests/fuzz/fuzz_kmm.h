/* Shared body of the fuzz_kmm_* targets: the input is a KMM datagram whose first byte (the KMMID)
 * is forced to the target's message, so each target spends its time inside one message body.
 * A message that decodes must re-encode to exactly the input bytes (the codec keeps every field,
 * version minor included, and accepts only canonical timestamps, flags and DER lengths), and its
 * HMAC check must run to a clean answer. */
#ifndef FUZZ_KMM_H
#define FUZZ_KMM_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/error.h"
#include "cablekey/kmm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
fuzz_kmm_one(uint8_t kmmid, const uint8_t *data, size_t size)
{
    static const uint8_t key[CK_KMM_HMAC_KEY_LEN] = {1, 2, 3};
    struct ck_kmm_msg m;
    uint8_t *in, *out;
    size_t out_len = 0;
    int rc;

    if (size > CK_KMM_MAX_MSG + 1)
        return 0;
    in = malloc(size + 1);
    out = malloc(CK_KMM_MAX_MSG);
    if (in == NULL || out == NULL)
        goto out;
    if (size > 0)
        memcpy(in, data, size);
    if (size > 0)
        in[0] = kmmid;
    rc = ck_kmm_decode(in, size, &m);
    if (rc != 0) {
        if (rc != CK_ERR_DECODE && rc != CK_ERR_UNSUPPORTED && rc != CK_ERR_LIMIT)
            abort();
        goto out;
    }
    if (m.type != kmmid)
        abort();
    if (ck_kmm_encode(&m, out, CK_KMM_MAX_MSG, &out_len) != 0 || out_len != size ||
        memcmp(out, in, size) != 0)
        abort();
    if (m.type == CK_KMM_AP_REQ || m.type == CK_KMM_AP_REP || m.type == CK_KMM_REKEY) {
        if (m.hmac_offset + CK_KMM_HMAC_LEN != size)
            abort();
        rc = ck_kmm_verify(in, &m, key);
        if (rc != 0 && rc != CK_ERR_INTEGRITY)
            abort();
    } else if (m.type == CK_KMM_SP_RECOVERED) {
        rc = ck_kmm_sp_recovered_verify(in, size, key, key);
        if (rc != 0 && rc != CK_ERR_INTEGRITY)
            abort();
    }
out:
    free(in);
    free(out);
    return 0;
}

#endif
