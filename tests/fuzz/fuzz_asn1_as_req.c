/* libFuzzer target: validated decode of as_req, then encode -> decode -> encode must agree. */
#include "fuzz_asn1.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    CK_FUZZ_ROUNDTRIP(as_req, CK_AS_REQ);
    return 0;
}
