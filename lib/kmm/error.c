/* The KMM Error Reply: a KRB-ERROR (RFC 4120 5.9.1) in KMMID 0x05, shared by every KMM server
 * (cablekey-cms, `cablekey router`) so the two answer a refused AP Request alike. */
#include <string.h>

#include "cablekey/apenv.h"
#include "cablekey/error.h"
#include "cablekey/kmm.h"
#include "cablekey/krb5_asn1.h"
#include "cablekey/nametypes.h"

int
ck_kmm_error_reply_encode(const char *service, int32_t code, const char *e_text, int64_t now,
                          int32_t usec, uint8_t doi, uint8_t *out, size_t cap, size_t *out_len)
{
    struct ck_kmm_msg m;
    uint8_t *der = NULL;
    size_t der_len = 0;
    bool odd_doi = doi != CK_KMM_DOI_IPSEC && doi != CK_KMM_DOI_SNMPV3;
    int rc;

    *out_len = 0;
    if ((rc = ck_krb_error_build(service, code, e_text, now, usec, &der, &der_len)) != 0)
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
    return rc;
}
