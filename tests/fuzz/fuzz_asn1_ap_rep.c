/* libFuzzer target: validated decode of ap_rep, enc_ap_rep_part, then encode -> decode -> encode must agree. */
#include "fuzz_asn1.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    CK_FUZZ_ROUNDTRIP(ap_rep, CK_AP_REP);
    CK_FUZZ_ROUNDTRIP(enc_ap_rep_part, CK_ENC_AP_REP_PART);
    return 0;
}
