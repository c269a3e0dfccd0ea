/* libFuzzer target: validated decode of tgs_req, kdc_req_body, then encode -> decode -> encode must agree. */
#include "fuzz_asn1.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    CK_FUZZ_ROUNDTRIP(tgs_req, CK_TGS_REQ);
    CK_FUZZ_ROUNDTRIP(kdc_req_body, CK_KDC_REQ_BODY);

    {
        CK_KDC_REQ *r = NULL;
        const uint8_t *b = NULL;
        size_t bl = 0;
        int32_t et[CK_ASN1_MAX_ETYPES];
        size_t n = 0;
        char name[4 * CK_ASN1_MAX_STRING];
        if (ck_asn1_kdc_req_decode(data, size, &r, NULL) == 0) {
            if (ck_asn1_kdc_req_body_der(r, &b, &bl) != 0 || bl == 0 || bl > size ||
                ck_asn1_etypes_get(r->req_body, et, CK_ASN1_MAX_ETYPES, &n) != 0)
                __builtin_trap();
            if (r->req_body->sname != NULL)
                (void)ck_asn1_principal_unparse(r->req_body->sname, r->req_body->realm, name,
                                                sizeof(name));
        }
        CK_KDC_REQ_free(r);
    }
    return 0;
}
