/* prov_admit: stands in for the KDC's first PKINIT login of an unknown device in the
 * provisioning tests (test-only program): records the device as the KDC would
 * (ck_prov_admit_unprovisioned) from its manufacturer certificate.
 *
 *   prov_admit DB STASH CERT.pem
 *
 * The MAC is the certificate's subject CN, the principal mta-<12 hex>@REALM, the pin the
 * SHA-256 of its SubjectPublicKeyInfo. Prints "OK: admitted MAC" or "ERROR: ..." (exit 1). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "cablekey/error.h"
#include "cablekey/prov.h"
#include "cablekey/store.h"

int
main(int argc, char **argv)
{
    char cn[128], mac[CK_DEVICE_MAC_LEN + 1], principal[300];
    uint8_t spki[32], *der = NULL, *spki_der = NULL;
    int der_len, spki_len, rc = 1;
    unsigned int n = 0;
    ck_store *store = NULL;
    X509 *x = NULL;
    FILE *fp;

    if (argc != 4) {
        fprintf(stderr, "usage: prov_admit DB STASH CERT.pem\n");
        return 2;
    }
    if ((fp = fopen(argv[3], "r")) == NULL || (x = PEM_read_X509(fp, NULL, NULL, NULL)) == NULL) {
        printf("ERROR: cannot read %s\n", argv[3]);
        goto out;
    }
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn)) <= 0 ||
        ck_device_mac_parse(cn, mac) != 0) {
        printf("ERROR: no MAC in the subject CN\n");
        goto out;
    }
    if ((spki_len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &spki_der)) <= 0 ||
        !EVP_Digest(spki_der, (size_t)spki_len, spki, &n, EVP_sha256(), NULL) ||
        (der_len = i2d_X509(x, &der)) <= 0) {
        printf("ERROR: certificate encoding\n");
        goto out;
    }
    if (ck_store_open(argv[1], argv[2], 0, &store) != 0) {
        printf("ERROR: store: %s\n", ck_error_context());
        goto out;
    }
    snprintf(principal, sizeof(principal), "mta-%.2s%.2s%.2s%.2s%.2s%.2s@%s", mac, mac + 3,
             mac + 6, mac + 9, mac + 12, mac + 15, ck_store_realm(store)->name);
    if (ck_prov_admit_unprovisioned(store, mac, principal, spki, der, (size_t)der_len,
                                    (int64_t)time(NULL)) != 0) {
        printf("ERROR: admit: %s\n", ck_error_context());
        goto out;
    }
    printf("OK: admitted %s\n", mac);
    rc = 0;
out:
    if (fp != NULL)
        fclose(fp);
    ck_store_close(store);
    X509_free(x);
    OPENSSL_free(der);
    OPENSSL_free(spki_der);
    return rc;
}
