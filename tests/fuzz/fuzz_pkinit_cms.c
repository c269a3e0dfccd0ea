/* libFuzzer target: PKINIT CMS input as the KDC and the client see it. SignedData verification
 * for the three PKINIT content types (certificates through a cache kept across inputs), then
 * for an accepted one what the KDC does next: thumbprint, chain validation, name mapping of
 * every carried certificate. EnvelopedData decryption with a fixed identity, then verification
 * of what comes out. A failed call must leave its output NULL. */
#include "fuzz_pkinit_common.h"

static void
verify_as(struct ck_fuzz_pkinit *F, const uint8_t *data, size_t size, ck_pkinit_ctype ctype)
{
    ck_pkinit_signed *s = (ck_pkinit_signed *)1;
    uint8_t tp[CK_PKINIT_TP_LEN], tp2[CK_PKINIT_TP_LEN];

    if (ck_pkinit_cms_verify(data, size, ctype, CK_PKINIT_VERIFY_ALLOW_SHA1, F->certs, &s) !=
        0) {
        if (s != NULL)
            __builtin_trap();
        return;
    }
    if (s == NULL || s->signer == NULL ||
        s->signer != sk_X509_value(s->certs, (int)s->signer_index))
        __builtin_trap();
    /* The two thumbprints may differ here: a mutated certificate need not be DER. */
    if (ck_pkinit_signed_thumbprint(s, 1, tp) != 0 ||
        ck_pkinit_thumbprint(s->signer, s->certs, 1, tp2) != 0)
        __builtin_trap();
    for (int i = 0; i < sk_X509_num(s->certs); i++)
        ck_fuzz_pkinit_use_cert(F, sk_X509_value(s->certs, i), s->certs);
    ck_pkinit_signed_free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ck_fuzz_pkinit *F = ck_fuzz_pkinit_get();
    uint8_t *plain = (uint8_t *)1;
    size_t plain_len = 0;

    verify_as(F, data, size, CK_PKINIT_CT_AUTH_DATA);
    verify_as(F, data, size, CK_PKINIT_CT_DHKEY_DATA);
    verify_as(F, data, size, CK_PKINIT_CT_RKEY_DATA);
    if (ck_pkinit_cms_decrypt(&F->id, data, size, &plain, &plain_len) == 0) {
        verify_as(F, plain, plain_len, CK_PKINIT_CT_RKEY_DATA);
        ck_free_secret(plain, plain_len);
    } else if (plain != NULL) {
        __builtin_trap();
    }
    return 0;
}
