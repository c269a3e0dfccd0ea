/* The KMM Error Reply: a KRB-ERROR (RFC 4120 5.9.1) in KMMID 0x05, shared by every KMM server
 * (cablekey-cms, `cablekey router`) so the two answer a refused AP Request alike. */
#include <string.h>

#include "cablekey/error.h"
#include "cablekey/kmm.h"
#include "cablekey/krb5_asn1.h"
#include "cablekey/nametypes.h"

int
ck_kmm_error_reply_encode(const char *service, int32_t code, const char *e_text, int64_t now,
                          int32_t usec, uint8_t doi, uint8_t *out, size_t cap, size_t *out_len)
{
    CK_KRB_ERROR_MSG *err = NULL;
    CK_PRINCIPAL_NAME *sname = NULL;
    ASN1_GENERALSTRING *realm = NULL;
    struct ck_kmm_msg m;
    uint8_t *der = NULL;
    size_t der_len = 0;
    bool odd_doi = doi != CK_KMM_DOI_IPSEC && doi != CK_KMM_DOI_SNMPV3;
    int rc;

    *out_len = 0;
    if ((err = CK_KRB_ERROR_MSG_new()) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "KRB-ERROR");
        goto out;
    }
    err->pvno = CK_KRB5_PVNO;
    err->msg_type = CK_KRB_ERROR;
    err->susec = usec;
    err->error_code = code;
    if ((rc = ck_asn1_principal_parse(service, CK_NT_SRV_INST, &sname, &realm)) != 0)
        goto out;
    CK_PRINCIPAL_NAME_free(err->sname);
    err->sname = sname;
    sname = NULL;
    if (realm != NULL) {
        ASN1_GENERALSTRING_free(err->realm);
        err->realm = realm;
        realm = NULL;
    }
    if ((rc = ck_asn1_time_set(&err->stime, now)) != 0 ||
        (e_text != NULL && (rc = ck_asn1_kstring_set(&err->e_text, e_text)) != 0) ||
        (rc = ck_asn1_krb_error_encode(err, &der, &der_len)) != 0)
        goto out;
    memset(&m, 0, sizeof(m));
    m.type = CK_KMM_ERROR_REPLY;
    /* An Error Reply for a DOI we do not know carries that DOI back (CONTRACT7): encoded as
     * IPsec, then the DOI byte set. */
    m.doi = odd_doi ? CK_KMM_DOI_IPSEC : doi;
    m.version = CK_KMM_VERSION;
    m.krb = der;
    m.krb_len = der_len;
    if ((rc = ck_kmm_encode(&m, out, cap, out_len)) != 0)
        goto out;
    if (odd_doi)
        out[1] = doi;
out:
    if (rc != 0)
        *out_len = 0;
    ck_asn1_free_der(der, der_len);
    CK_KRB_ERROR_MSG_free(err);
    CK_PRINCIPAL_NAME_free(sname);
    ASN1_GENERALSTRING_free(realm);
    return rc;
}
