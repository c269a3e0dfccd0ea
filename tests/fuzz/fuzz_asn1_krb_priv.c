/* libFuzzer target: validated decode of krb_priv, enc_krb_priv_part, then encode -> decode -> encode must agree. */
#include "fuzz_asn1.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    CK_FUZZ_ROUNDTRIP(krb_priv, CK_KRB_PRIV_MSG);
    CK_FUZZ_ROUNDTRIP(enc_krb_priv_part, CK_ENC_KRB_PRIV_PART);
    return 0;
}
