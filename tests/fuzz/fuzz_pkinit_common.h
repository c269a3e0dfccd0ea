/* Shared set-up of the PKINIT crypto fuzz targets: a fixed RSA identity whose self-signed
 * certificate is the only trust anchor, made once per process. */
#ifndef CK_FUZZ_PKINIT_COMMON_H
#define CK_FUZZ_PKINIT_COMMON_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cablekey/pkinit.h"
#include "cablekey/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CK_FUZZ_PKINIT_TIME ((int64_t)1796169600) /* 2026-12-02, inside every seed's validity */

struct ck_fuzz_pkinit {
    ck_pki_identity id;
    ck_pkinit_anchors *anchors;
    ck_pkinit_certcache *certs;
    ck_principal *alice;
};

static inline struct ck_fuzz_pkinit *
ck_fuzz_pkinit_get(void)
{
    static struct ck_fuzz_pkinit F;
    static int ready;
    X509V3_CTX ctx;
    X509_EXTENSION *ext;
    STACK_OF(X509) *roots;
    X509 *x;

    if (ready)
        return &F;
    F.id.key = EVP_RSA_gen(2048);
    F.id.cert = x = X509_new();
    F.id.chain = sk_X509_new_null();
    roots = sk_X509_new_null();
    if (F.id.key == NULL || x == NULL || F.id.chain == NULL || roots == NULL ||
        !X509_set_version(x, 2) || !ASN1_INTEGER_set(X509_get_serialNumber(x), 1) ||
        !ASN1_TIME_set(X509_getm_notBefore(x), (time_t)(CK_FUZZ_PKINIT_TIME - 86400)) ||
        !ASN1_TIME_set(X509_getm_notAfter(x), (time_t)(CK_FUZZ_PKINIT_TIME + 86400)) ||
        !X509_set_pubkey(x, F.id.key) ||
        !X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                                    (const unsigned char *)"fuzz", -1, -1, 0) ||
        !X509_set_issuer_name(x, X509_get_subject_name(x)))
        abort();
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_ext_key_usage, "1.3.6.1.5.2.3.4");
    if (ext == NULL || !X509_add_ext(x, ext, -1) || !X509_sign(x, F.id.key, EVP_sha256()) ||
        !sk_X509_push(roots, x) || ck_pkinit_anchors_new(&F.anchors) != 0 ||
        ck_pkinit_anchors_add(F.anchors, roots, CK_PKINIT_ANCHOR_PACKETCABLE, NULL) != 0 ||
        ck_pkinit_certcache_new(16, &F.certs) != 0 ||
        ck_principal_parse("alice@EXAMPLE.TEST", NULL, 0, &F.alice) != 0)
        abort();
    X509_EXTENSION_free(ext);
    sk_X509_free(roots);
    ready = 1;
    return &F;
}

/* Everything the KDC does with a certificate it was sent. */
static inline void
ck_fuzz_pkinit_use_cert(struct ck_fuzz_pkinit *F, X509 *x, STACK_OF(X509) *chain)
{
    ck_pkinit_chain_result res;
    ck_principal **names = NULL;
    size_t n = 0;
    char mac[CK_PKINIT_MAC_TEXT];
    uint8_t pin[CK_PKINIT_PIN_LEN], tp[CK_PKINIT_TP_LEN];

    if (ck_pkinit_cert_san_principals(x, &names, &n) == 0)
        ck_pkinit_principals_free(names, n);
    else if (names != NULL || n != 0)
        __builtin_trap();
    (void)ck_pkinit_cert_match_principal(x, F->alice);
    (void)ck_pkinit_kdc_cert_match_realm(x, "EXAMPLE.TEST");
    (void)ck_pkinit_cert_device_mac(x, mac);
    (void)ck_pkinit_cert_spki_sha256(x, pin);
    (void)ck_pkinit_thumbprint(x, chain, 1, tp);
    for (unsigned p = CK_PKINIT_PURPOSE_CLIENT; p <= CK_PKINIT_PURPOSE_KDC; p++) {
        int ret = ck_pkinit_verify_chain(F->anchors, x, chain, CK_FUZZ_PKINIT_TIME, p, &res);
        if ((ret == 0) != (res.reason == CK_PKINIT_CERT_OK))
            __builtin_trap();
    }
}

#endif
