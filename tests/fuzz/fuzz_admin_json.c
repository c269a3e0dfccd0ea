/* Fuzzes the admin API's JSON decoders: the three request kinds (what HTTP clients send, and
 * what the daemon's back process receives), principal and realm records; a decoded request is
 * re-encoded and must decode again to the same fields. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/admin.h"
#include "cablekey/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    struct ck_admin_principal_req req = {0}, again = {0};
    ck_db_principal *p = NULL;
    ck_realm_info realm;
    char *out = NULL;
    size_t out_len = 0;

    for (int k = CK_ADMIN_REQ_CREATE; k <= CK_ADMIN_REQ_KEYS; k++) {
        if (ck_admin_json_decode_request((enum ck_admin_req_kind)k, text, size, &req) != 0)
            continue;
        if (ck_admin_json_encode_request(&req, &out, &out_len) == 0) {
            if (ck_admin_json_decode_request((enum ck_admin_req_kind)k, out, out_len, &again) != 0 ||
                again.present != req.present || again.flags_set != req.flags_set ||
                again.flags_clear != req.flags_clear || again.random_key != req.random_key)
                abort();
            ck_free_secret(out, out_len + 1);
        }
        ck_admin_principal_req_clear(&again);
        ck_admin_principal_req_clear(&req);
    }
    if (ck_admin_json_decode_principal(text, size, &p) == 0) {
        if (ck_admin_json_encode_principal(p, &out) != 0)
            abort();
        free(out);
    }
    ck_db_principal_free(p);
    (void)ck_admin_json_decode_realm(text, size, &realm);
    return 0;
}
