/* libFuzzer target: validated decode of pa_enc_ts_enc, encrypted_data, then encode -> decode -> encode must agree. */
#include "fuzz_asn1.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    CK_FUZZ_ROUNDTRIP(pa_enc_ts_enc, CK_PA_ENC_TS_ENC);
    CK_FUZZ_ROUNDTRIP(encrypted_data, CK_ENCRYPTED_DATA);
    return 0;
}
