/* Fuzzes the admin API's JSON decoders: the three request kinds (what HTTP clients send, and
 * what the daemon's back process receives), realm changes and renames, principal and realm
 * records, error answers and list pages (what `cablekey --server` receives), policy records,
 * rule requests and listings, device records and pages; a decoded request, realm change, policy or rule request is
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
    {
        ck_realm_mod mod, mod2;
        struct ck_admin_name_page pg;
        char *name = NULL, code[64], msg[512];

        if (ck_admin_json_decode_realm_mod(text, size, &mod) == 0) {
            if (ck_admin_json_encode_realm_mod(&mod, &out) != 0 ||
                ck_admin_json_decode_realm_mod(out, strlen(out), &mod2) != 0 ||
                mod2.mask != mod.mask || mod2.default_attributes != mod.default_attributes ||
                mod2.max_life != mod.max_life || mod2.n_enctypes != mod.n_enctypes)
                abort();
            free(out);
        }
        if (ck_admin_json_decode_rename(text, size, &name) == 0 && (name == NULL || *name == '\0'))
            abort();
        free(name);
        (void)ck_admin_json_decode_error(text, size, code, sizeof(code), msg, sizeof(msg));
        if (ck_admin_json_decode_name_page(text, size, &pg) == 0 &&
            pg.n > CK_ADMIN_PAGE_MAX_NAMES)
            abort();
        ck_admin_name_page_clear(&pg);
    }
    {
        ck_policy pol, pol2;
        struct ck_admin_name_page pg;
        unsigned present, present2;

        if (ck_admin_json_decode_policy(text, size, &pol) == 0) {
            if (ck_admin_json_encode_policy(&pol, &out) != 0 ||
                ck_admin_json_decode_policy(out, strlen(out), &pol2) != 0 ||
                memcmp(&pol, &pol2, sizeof(pol)) != 0)
                abort();
            free(out);
        }
        for (int modify = 0; modify <= 1; modify++) {
            if (ck_admin_json_decode_policy_rules(text, size, modify, &pol, &present) != 0)
                continue;
            if ((modify && present == 0) ||
                ck_admin_json_encode_policy_rules(&pol, present, &out) != 0 ||
                ck_admin_json_decode_policy_rules(out, strlen(out), modify, &pol2,
                                                  &present2) != 0 ||
                present2 != present || memcmp(&pol, &pol2, sizeof(pol)) != 0)
                abort();
            free(out);
        }
        if (ck_admin_json_decode_policy_names(text, size, &pg) == 0 &&
            (pg.n > CK_POLICY_LIST_MAX || pg.next != NULL))
            abort();
        ck_admin_name_page_clear(&pg);
    }
    {
        /* Device records and pages (cablekey --server device show|list): a decoded record
         * encodes again to a record that decodes to the same fields. */
        struct ck_admin_device_page dpg;
        ck_db_device *d = NULL, *d2 = NULL;

        if (ck_admin_json_decode_device(text, size, &d) == 0) {
            if (ck_admin_json_encode_device(d, &out) != 0 ||
                ck_admin_json_decode_device(out, strlen(out), &d2) != 0 ||
                strcmp(d->mac, d2->mac) != 0 || d->state != d2->state ||
                d->has_pin != d2->has_pin || d->revoked != d2->revoked ||
                strcmp(d->principal, d2->principal) != 0 || strcmp(d->comment, d2->comment) != 0)
                abort();
            free(out);
        }
        ck_db_device_free(d);
        ck_db_device_free(d2);
        if (ck_admin_json_decode_device_page(text, size, &dpg) == 0 &&
            dpg.n > CK_ADMIN_DEVICE_PAGE_MAX)
            abort();
        ck_admin_device_page_clear(&dpg);
    }
    return 0;
}
