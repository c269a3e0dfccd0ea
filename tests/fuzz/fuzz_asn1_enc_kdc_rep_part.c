/* libFuzzer target: validated decode of enc_as_rep_part, enc_tgs_rep_part, then encode -> decode -> encode must agree. */
#include "fuzz_asn1.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    CK_FUZZ_ROUNDTRIP(enc_as_rep_part, CK_ENC_AS_REP_PART);
    CK_FUZZ_ROUNDTRIP(enc_tgs_rep_part, CK_ENC_TGS_REP_PART);

    {
        CK_ENC_KDC_REP_PART *p = NULL;
        int tag = 0;
        uint32_t v;
        int64_t t;
        if (ck_asn1_enc_kdc_rep_part_decode(data, size, &p, &tag) == 0) {
            if (ck_asn1_nonce_get(p->nonce, &v) != 0 || ck_asn1_flags_get(p->flags, &v) != 0 ||
                ck_asn1_time_get(p->authtime, &t) != 0)
                __builtin_trap();
        }
        CK_ENC_KDC_REP_PART_free(p);
    }
    return 0;
}
