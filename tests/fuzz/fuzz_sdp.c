/* Fuzzes the SDP parser (the call's session description and its a=X-ck-* key attributes): what
 * parses is rebuilt and must parse back to the same struct. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/mgcp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ck_sdp a, b;
    char buf[CK_MGCP_MAX_MSG + 1];
    size_t len;

    if (ck_sdp_parse((const char *)data, size, &a) != 0)
        return 0;
    if (ck_sdp_build(&a, buf, sizeof(buf), &len) != 0 || len != strlen(buf) ||
        ck_sdp_parse(buf, len, &b) != 0 || memcmp(&a, &b, sizeof(a)) != 0)
        abort();
    ck_sdp_clear(&a);
    ck_sdp_clear(&b);
    return 0;
}
