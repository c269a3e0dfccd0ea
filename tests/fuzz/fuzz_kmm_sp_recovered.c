/* Fuzzes the KMM sp recovered codec (KMMID forced, decode + exact re-encode): see fuzz_kmm.h. */
#include "fuzz_kmm.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_kmm_one(CK_KMM_SP_RECOVERED, data, size);
}
