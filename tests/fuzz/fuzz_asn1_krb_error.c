/* libFuzzer target: validated decode of krb_error, method_data, etype_info2, then encode -> decode -> encode must agree. */
#include "fuzz_asn1.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    CK_FUZZ_ROUNDTRIP(krb_error, CK_KRB_ERROR_MSG);
    CK_FUZZ_ROUNDTRIP(method_data, CK_METHOD_DATA);
    CK_FUZZ_ROUNDTRIP(etype_info2, CK_ETYPE_INFO2);

    /* e-data of PREAUTH_REQUIRED is METHOD-DATA whose PA-ETYPE-INFO2 holds ETYPE-INFO2. */
    {
        CK_KRB_ERROR_MSG *e = NULL;
        CK_METHOD_DATA *md = NULL;
        CK_ETYPE_INFO2 *info = NULL;
        const CK_PA_DATA *pa;
        if (ck_asn1_krb_error_decode(data, size, &e) == 0 && e->e_data != NULL &&
            ck_asn1_method_data_decode(e->e_data->data, (size_t)e->e_data->length, &md) == 0 &&
            (pa = ck_asn1_padata_find(md, CK_PA_ETYPE_INFO2)) != NULL)
            (void)ck_asn1_etype_info2_decode(pa->padata_value->data,
                                             (size_t)pa->padata_value->length, &info);
        CK_ETYPE_INFO2_free(info);
        CK_METHOD_DATA_free(md);
        CK_KRB_ERROR_MSG_free(e);
    }
    return 0;
}
