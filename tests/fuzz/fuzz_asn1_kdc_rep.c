/* libFuzzer target: validated decode of as_rep, tgs_rep, then encode -> decode -> encode must agree. */
#include "fuzz_asn1.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    CK_FUZZ_ROUNDTRIP(as_rep, CK_AS_REP);
    CK_FUZZ_ROUNDTRIP(tgs_rep, CK_TGS_REP);

    {
        CK_KDC_REP *r = NULL;
        int tag = 0;
        (void)ck_asn1_kdc_rep_decode(data, size, &r, &tag);
        CK_KDC_REP_free(r);
    }
    return 0;
}
