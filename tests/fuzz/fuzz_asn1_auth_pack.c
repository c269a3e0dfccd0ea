/* libFuzzer target: AuthPack (the signed content of PA-PK-AS-REQ, with X.509 SubjectPublicKeyInfo
 * and AlgorithmIdentifiers inside) and the KDF input structures: validated decode, then
 * encode -> decode -> encode must agree. */
#include <openssl/x509.h>

#include "cablekey/pkinit_asn1.h"
#include "fuzz_asn1.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    CK_AUTH_PACK *ap = NULL;

    CK_FUZZ_ROUNDTRIP(auth_pack, CK_AUTH_PACK);
    CK_FUZZ_ROUNDTRIP(td_dh_parameters, CK_ALGORITHM_IDENTIFIERS);
    CK_FUZZ_ROUNDTRIP(pkinit_supp_pub_info, CK_PKINIT_SUPP_PUB_INFO);
    CK_FUZZ_ROUNDTRIP(pkinit_other_info, CK_PKINIT_OTHER_INFO);
    /* What the KDC does next with an accepted AuthPack: the public key and the KDF list. */
    if (ck_asn1_auth_pack_decode(data, size, &ap) == 0) {
        int kdf;
        if (ap->client_public_value != NULL)
            (void)X509_PUBKEY_get0(ap->client_public_value);
        int n = ap->supported_kdfs != NULL ? sk_CK_KDF_ALGORITHM_ID_num(ap->supported_kdfs) : 0;
        for (int i = 0; i < n; i++)
            (void)ck_pkinit_kdf_id_get(sk_CK_KDF_ALGORITHM_ID_value(ap->supported_kdfs, i), &kdf);
    }
    CK_AUTH_PACK_free(ap);
    return 0;
}
