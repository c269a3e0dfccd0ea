/* libFuzzer target: the pk-init draft forms PacketCable devices use (both wire forms of the draft
 * PA-PK-AS-REQ / PA-PK-AS-REP, the draft-9 and PacketCable AuthPacks, the draft ReplyKeyPack,
 * PA-PROV-SRV-LOCATION): validated decode, then encode -> decode -> encode must agree, so the
 * decoder's form detection and the encoder's form choice never disagree. */
#include "cablekey/pkinit_asn1.h"
#include "fuzz_asn1.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    CK_FUZZ_ROUNDTRIP(pa_pk_as_req_draft9, CK_PA_PK_AS_REQ_DRAFT9);
    CK_FUZZ_ROUNDTRIP(pa_pk_as_rep_draft9, CK_PA_PK_AS_REP_DRAFT9);
    CK_FUZZ_ROUNDTRIP(auth_pack_draft9, CK_AUTH_PACK_DRAFT9);
    CK_FUZZ_ROUNDTRIP(auth_pack_pktc, CK_AUTH_PACK_PKTC);
    CK_FUZZ_ROUNDTRIP(reply_key_pack_draft9, CK_REPLY_KEY_PACK_DRAFT9);
    CK_FUZZ_ROUNDTRIP(prov_srv_location, ASN1_GENERALSTRING);
    return 0;
}
