/* libFuzzer target: one DER certificate through everything the KDC and the client do with a
 * certificate a peer sent: id-pkinit-san decoding and matching, device MAC, key pin,
 * thumbprint, chain validation for both purposes; and the MAC parser on the raw bytes. */
#include <string.h>

#include "fuzz_pkinit_common.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ck_fuzz_pkinit *F = ck_fuzz_pkinit_get();
    const unsigned char *p = data;
    char text[64], mac[CK_PKINIT_MAC_TEXT];
    X509 *x = d2i_X509(NULL, &p, (long)size);

    if (x != NULL) {
        ck_fuzz_pkinit_use_cert(F, x, NULL);
        X509_free(x);
    }
    if (size < sizeof(text)) {
        memcpy(text, data, size);
        text[size] = '\0';
        if (ck_pkinit_mac_canonical(text, mac) == 0 && strlen(mac) != CK_PKINIT_MAC_TEXT - 1)
            __builtin_trap();
    }
    return 0;
}
