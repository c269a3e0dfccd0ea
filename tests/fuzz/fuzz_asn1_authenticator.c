/* libFuzzer target: validated decode of authenticator, authorization_data, then encode -> decode -> encode must agree. */
#include "fuzz_asn1.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    CK_FUZZ_ROUNDTRIP(authenticator, CK_AUTHENTICATOR);
    CK_FUZZ_ROUNDTRIP(authorization_data, CK_AUTHORIZATION_DATA);
    return 0;
}
