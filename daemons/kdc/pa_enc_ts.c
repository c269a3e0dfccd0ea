/* PA-ENC-TIMESTAMP (RFC 4120 §5.2.7.2): the client proves knowledge of its long-term key by
 * encrypting the current time under it (key usage 1).
 *
 * Decisions:
 *   - The timestamp may be encrypted under any of the client's current keys whose enctype the
 *     realm permits (supported_enctypes), not only the reply key's: MIT clients pick the first
 *     enctype of PA-ETYPE-INFO2, older ones their own preference. A key of an enctype the realm
 *     does not permit is refused even if the client has it (a realm that dropped an enctype must
 *     not keep accepting proofs made with it).
 *   - A timestamp outside the clock skew is KRB_AP_ERR_SKEW (as MIT), without e-data; every other
 *     failure (undecodable, no such key, wrong key) is KDC_ERR_PREAUTH_FAILED, for which the KDC
 *     sends the list of offers again.
 *   - No replay cache: a replayed PA-ENC-TIMESTAMP gets a reply only the key's holder can read
 *     (as MIT, which keeps none either). */
#include <stdint.h>

#include "cablekey/ap.h"
#include "cablekey/error.h"
#include "cablekey/util.h"
#include "preauth.h"

static int
enc_ts_edata(void *ctx, const struct kdc_pa_call *call, CK_METHOD_DATA **md)
{
    return ck_asn1_padata_add(md, CK_PA_ENC_TIMESTAMP, NULL, 0);
}

static int
enc_ts_verify(void *ctx, const struct kdc_pa_call *call, const CK_PA_DATA *pa, void **state,
              struct kdc_pa_error *err)
{
    CK_ENCRYPTED_DATA *ed = NULL;
    CK_PA_ENC_TS_ENC *ts = NULL;
    const ck_db_key *k;
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    int64_t t;
    int rc = KDC_PA_REFUSED;

    if (ck_asn1_encrypted_data_decode(ASN1_STRING_get0_data(pa->padata_value),
                                      (size_t)ASN1_STRING_length(pa->padata_value), &ed) != 0) {
        kdc_pa_fail(err, CK_KDC_ERR_PREAUTH_FAILED, "PREAUTH_FAILED",
                    "undecodable PA-ENC-TIMESTAMP");
        goto out;
    }
    if (!kdc_pa_enctype_permitted(call, ed->etype)) {
        kdc_pa_fail(err, CK_KDC_ERR_PREAUTH_FAILED, "PREAUTH_FAILED",
                    "PA-ENC-TIMESTAMP enctype %d not permitted", (int)ed->etype);
        goto out;
    }
    if ((k = ck_db_principal_find_key(call->client, 0, ed->etype)) == NULL) {
        kdc_pa_fail(err, CK_KDC_ERR_PREAUTH_FAILED, "PREAUTH_FAILED",
                    "no client key for PA-ENC-TIMESTAMP enctype %d", (int)ed->etype);
        goto out;
    }
    if (ck_enc_data_open(ed, &k->key, CK_KU_PA_ENC_TS, &plain, &plain_len) != 0 ||
        ck_asn1_pa_enc_ts_enc_decode(plain, plain_len, &ts) != 0 ||
        ck_asn1_time_get(ts->patimestamp, &t) != 0) {
        kdc_pa_fail(err, CK_KDC_ERR_PREAUTH_FAILED, "PREAUTH_FAILED", NULL);
        goto out;
    }
    if (t - call->now > call->clockskew || call->now - t > call->clockskew) {
        kdc_pa_fail(err, CK_KRB_AP_ERR_SKEW, "SKEW", "PA-ENC-TIMESTAMP off by %lld s",
                    (long long)(t - call->now));
        goto out;
    }
    rc = 0;
out:
    if (plain != NULL)
        ck_free_secret(plain, plain_len);
    CK_PA_ENC_TS_ENC_free(ts);
    CK_ENCRYPTED_DATA_free(ed);
    return rc;
}

const struct kdc_pa_mech kdc_pa_enc_timestamp = {
    .pa_type = CK_PA_ENC_TIMESTAMP,
    .name = "encrypted-timestamp",
    .flags = KDC_PA_EDATA_CONSTANT,
    .edata = enc_ts_edata,
    .verify = enc_ts_verify,
};
