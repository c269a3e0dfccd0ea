/* libFuzzer target: what a PKINIT client decodes from a KDC: PA-PK-AS-REP (and the AS-REP around
 * it), KDCDHKeyInfo, ReplyKeyPack: validated decode, then encode -> decode -> encode must
 * agree. */
#include "cablekey/pkinit_asn1.h"
#include "fuzz_asn1.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    CK_FUZZ_ROUNDTRIP(pa_pk_as_rep, CK_PA_PK_AS_REP_MSG);
    CK_FUZZ_ROUNDTRIP(as_rep, CK_AS_REP);
    CK_FUZZ_ROUNDTRIP(kdc_dh_key_info, CK_KDC_DH_KEY_INFO);
    CK_FUZZ_ROUNDTRIP(reply_key_pack, CK_REPLY_KEY_PACK);
    return 0;
}
