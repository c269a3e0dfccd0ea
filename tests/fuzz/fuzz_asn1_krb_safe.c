/* libFuzzer target: validated decode of krb_safe, krb_safe_body, then encode -> decode -> encode must agree. */
#include "fuzz_asn1.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    CK_FUZZ_ROUNDTRIP(krb_safe, CK_KRB_SAFE_MSG);
    CK_FUZZ_ROUNDTRIP(krb_safe_body, CK_KRB_SAFE_BODY);
    return 0;
}
