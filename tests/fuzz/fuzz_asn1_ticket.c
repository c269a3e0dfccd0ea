/* libFuzzer target: validated decode of ticket, enc_ticket_part, then encode -> decode -> encode must agree. */
#include "fuzz_asn1.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    CK_FUZZ_ROUNDTRIP(ticket, CK_TICKET);
    CK_FUZZ_ROUNDTRIP(enc_ticket_part, CK_ENC_TICKET_PART);
    return 0;
}
