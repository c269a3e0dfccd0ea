/* libFuzzer target: validated decode of ap_req, then encode -> decode -> encode must agree. */
#include "fuzz_asn1.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    CK_FUZZ_ROUNDTRIP(ap_req, CK_AP_REQ);
    return 0;
}
