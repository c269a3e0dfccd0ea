/* libFuzzer target: PA-PK-AS-REQ (RFC 4556) and the whole AS-REQ carrying it (its own large-input
 * caps), then the structures a KDC pulls out of it: validated decode, then encode -> decode ->
 * encode must agree. */
#include "cablekey/pkinit_asn1.h"
#include "fuzz_asn1.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    CK_FUZZ_ROUNDTRIP(pa_pk_as_req, CK_PA_PK_AS_REQ_MSG);
    CK_FUZZ_ROUNDTRIP(as_req, CK_AS_REQ);
    CK_FUZZ_ROUNDTRIP(td_principal_ids, CK_EXTERNAL_PRINCIPAL_IDENTIFIERS);
    CK_FUZZ_ROUNDTRIP(typed_data, CK_TYPED_DATA);
    CK_FUZZ_ROUNDTRIP(krb5_principal_name, CK_KRB5_PRINCIPAL_NAME);
    return 0;
}
