/* Fuzzes what the KDC reads from a client's certificate: the id-pkinit-san principals, the MAC
 * address of a device certificate's CN and the SubjectPublicKeyInfo hash. Input: one DER
 * certificate. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "cablekey/pki.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const unsigned char *p = data;
    X509 *x = d2i_X509(NULL, &p, (long)size);
    ck_principal *sans[8];
    size_t n = 0;
    uint8_t mac[6], hash[32];
    char text[CK_PKI_MAC_TEXT];

    if (x != NULL) {
        if (ck_pki_cert_san_principals(x, sans, 8, &n) == 0) {
            for (size_t i = 0; i < n; i++) {
                if (sans[i] == NULL || sans[i]->n_components == 0)
                    abort();
                ck_principal_free(sans[i]);
            }
        }
        if (ck_pki_cert_device_mac(x, mac) == 0) {
            /* A MAC read from a certificate formats and parses back to itself. */
            uint8_t again[6];
            ck_pki_mac_format(mac, text);
            if (ck_pki_mac_parse(text, again) != 0 || memcmp(again, mac, 6) != 0)
                abort();
        }
        (void)ck_pki_spki_sha256(x, hash);
        X509_free(x);
    }
    ERR_clear_error();
    return 0;
}
