/* Fuzzes the MGCP message parser: whatever parses is rebuilt with the builders and must parse
 * back to the same struct; its body goes to the SDP parser and its O: value to the observed-event
 * parser. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/error.h"
#include "cablekey/mgcp.h"
#include "cablekey/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ck_mgcp_msg a, b;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ck_sdp s;
    enum ck_mgcp_event ev;
    char digits[CK_MGCP_MAX_DIGITS + 1];
    const char *o;
    ck_writer w;
    uint8_t *out;
    size_t n = 0;
    int rc;

    if (ck_mgcp_parse(data, size, &a) != 0)
        return 0;
    if (a.has_sdp && (a.sdp_len == 0 || a.sdp_len > size || strlen(a.sdp) != a.sdp_len))
        abort();
    (void)ck_sdp_parse(a.sdp, a.sdp_len, &s);
    ck_sdp_clear(&s);
    if ((o = ck_mgcp_param(&a, "O")) != NULL &&
        ck_mgcp_parse_observed(o, &ev, digits, sizeof(digits)) == 0 && ev == CK_MGCP_EV_DIGITS &&
        strlen(digits) > CK_MGCP_MAX_DIGITS)
        abort();
    ck_writer_init(&w, CK_MGCP_MAX_MSG, true);
    if (a.is_response)
        rc = ck_mgcp_build_response(a.code, a.txid, a.comment, a.params, a.n_params,
                                    a.has_sdp ? a.sdp : NULL, &w);
    else
        rc = ck_mgcp_build_command(a.verb, a.txid, a.endpoint, a.params, a.n_params,
                                   a.has_sdp ? a.sdp : NULL, &w);
    /* CRLF for LF and the NCS profile can make a maximal message too long to rebuild. */
    if (rc == CK_ERR_LIMIT) {
        ck_writer_free(&w);
        return 0;
    }
    if (rc != 0)
        abort();
    out = ck_writer_take(&w, &n);
    if (out == NULL || ck_mgcp_parse(out, n, &b) != 0 || memcmp(&a, &b, sizeof(a)) != 0)
        abort();
    ck_free_secret(out, n);
    ck_mgcp_msg_clear(&a);
    ck_mgcp_msg_clear(&b);
    return 0;
}
