/* libFuzzer target: Diffie-Hellman/ECDH public values. As the KDC: the client's
 * SubjectPublicKeyInfo (DER, and decoded by OpenSSL first as the AuthPack codec does), then an
 * exchange for an accepted elliptic-curve one (MODP exchanges cost milliseconds and add no
 * parsing). As the client: the KDC's public value for MODP 2048, P-256 and P-384. */
#include <stdint.h>
#include <stdlib.h>

#include <openssl/x509.h>

#include "cablekey/pkinit.h"
#include "cablekey/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ck_pkinit_dh *clients[3];
    static const ck_pkinit_group client_groups[3] = {
        CK_PKINIT_GROUP_MODP2048, CK_PKINIT_GROUP_P256, CK_PKINIT_GROUP_P384};
    ck_pkinit_peer *peer = (ck_pkinit_peer *)1;
    const unsigned char *p = data;
    X509_PUBKEY *xpk;
    uint8_t *pub, *z;
    size_t pub_len, z_len;

    if (clients[0] == NULL)
        for (int i = 0; i < 3; i++)
            if (ck_pkinit_dh_generate(client_groups[i], &clients[i]) != 0)
                abort();
    if (ck_pkinit_peer_parse(data, size, 0, &peer) == 0) {
        if (peer == NULL)
            __builtin_trap();
        if (ck_pkinit_group_is_ec(ck_pkinit_peer_group(peer))) {
            if (ck_pkinit_dh_kdc_exchange(peer, &pub, &pub_len, &z, &z_len) != 0 ||
                z_len != ck_pkinit_group_z_len(ck_pkinit_peer_group(peer)))
                __builtin_trap();
            free(pub);
            ck_free_secret(z, z_len);
        }
        ck_pkinit_peer_free(peer);
    } else if (peer != NULL) {
        __builtin_trap();
    }
    xpk = d2i_X509_PUBKEY(NULL, &p, (long)size);
    if (xpk != NULL) {
        peer = NULL;
        if (ck_pkinit_peer_from_pubkey(xpk, 0, &peer) == 0 && peer == NULL)
            __builtin_trap();
        ck_pkinit_peer_free(peer);
        X509_PUBKEY_free(xpk);
    }
    for (int i = 0; i < 3; i++) {
        z = (uint8_t *)1;
        if (ck_pkinit_dh_client_derive(clients[i], data, size, &z, &z_len) == 0) {
            if (z == NULL || z_len != ck_pkinit_group_z_len(client_groups[i]))
                __builtin_trap();
            ck_free_secret(z, z_len);
        } else if (z != NULL) {
            __builtin_trap();
        }
    }
    return 0;
}
