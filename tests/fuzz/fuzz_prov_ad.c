/* Fuzzes the restricted-calls authorization data (prov_ad.h): the element's decoder and the
 * lookup through a whole AuthorizationData (AD-IF-RELEVANT containers included). Whatever
 * decodes must re-encode to the same bytes and hold only digit strings within the limits. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/prov_ad.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_value(const ck_ad_restricted *r)
{
    if (r->n_numbers < 1 || r->n_numbers > CK_AD_RESTRICTED_MAX_NUMBERS)
        abort();
    for (size_t i = 0; i < r->n_numbers; i++) {
        size_t n = strnlen(r->numbers[i], sizeof(r->numbers[i]));

        if (n < 1 || n > CK_AD_RESTRICTED_NUMBER_MAX ||
            strspn(r->numbers[i], "0123456789") != n)
            abort();
        if (!ck_ad_restricted_allows(r, r->numbers[i]))
            abort();
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ck_ad_restricted r;
    CK_AUTHORIZATION_DATA *ad = NULL;
    uint8_t *der = NULL;
    size_t len = 0;
    bool found = false;

    if (ck_ad_restricted_decode(data, size, &r) == 0) {
        check_value(&r);
        if (ck_ad_restricted_encode(&r, &der, &len) != 0 || len != size ||
            memcmp(der, data, size) != 0)
            abort();
        ck_asn1_free_der(der, len);
    }
    if (ck_asn1_authorization_data_decode(data, size, &ad) == 0) {
        if (ck_ad_restricted_find(ad, &r, &found) == 0 && found)
            check_value(&r);
        CK_AUTHORIZATION_DATA_free(ad);
    }
    return 0;
}
