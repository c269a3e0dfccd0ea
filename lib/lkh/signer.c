/* The KSV's Ed25519 rekey signing key (lkh_rekey.h): an EVP_PKEY, raw 32-byte import/export for
 * the store, which keeps it encrypted. */
#include <stdlib.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "cablekey/error.h"
#include "cablekey/lkh_rekey.h"

#include "lkh/lkh_int.h"

int
lkh_signer_generate(struct lkh_signer **out)
{
    struct lkh_signer *s;

    *out = NULL;
    if ((s = calloc(1, sizeof(*s))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "lkh signer");
    if ((s->pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")) == NULL) {
        free(s);
        return ck_error_set_ssl(CK_ERR_CRYPTO, "lkh signer: Ed25519 keygen");
    }
    *out = s;
    return 0;
}

int
lkh_signer_from_raw(const uint8_t priv[32], struct lkh_signer **out)
{
    struct lkh_signer *s;

    *out = NULL;
    if ((s = calloc(1, sizeof(*s))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "lkh signer");
    if ((s->pkey = EVP_PKEY_new_raw_private_key_ex(NULL, "ED25519", NULL, priv, 32)) == NULL) {
        free(s);
        return ck_error_set_ssl(CK_ERR_CRYPTO, "lkh signer: Ed25519 private key");
    }
    *out = s;
    return 0;
}

int
lkh_signer_raw(const struct lkh_signer *s, uint8_t priv[32])
{
    size_t len = 32;

    if (!EVP_PKEY_get_raw_private_key(s->pkey, priv, &len) || len != 32) {
        OPENSSL_cleanse(priv, 32);
        return ck_error_set_ssl(CK_ERR_CRYPTO, "lkh signer: raw private key");
    }
    return 0;
}

int
lkh_signer_public(const struct lkh_signer *s, uint8_t pub[LKH_ED25519_PUB_LEN])
{
    size_t len = LKH_ED25519_PUB_LEN;

    if (!EVP_PKEY_get_raw_public_key(s->pkey, pub, &len) || len != LKH_ED25519_PUB_LEN)
        return ck_error_set_ssl(CK_ERR_CRYPTO, "lkh signer: raw public key");
    return 0;
}

void
lkh_signer_free(struct lkh_signer *s)
{
    if (s == NULL)
        return;
    EVP_PKEY_free(s->pkey); /* OpenSSL wipes the raw key material */
    free(s);
}

int
lkh_signer_sign(const struct lkh_signer *s, const uint8_t *msg, size_t len,
                uint8_t sig[LKH_ED25519_SIG_LEN])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    size_t siglen = LKH_ED25519_SIG_LEN;
    int rc = 0;

    if (md == NULL || !EVP_DigestSignInit_ex(md, NULL, NULL, NULL, NULL, s->pkey, NULL) ||
        !EVP_DigestSign(md, sig, &siglen, msg, len) || siglen != LKH_ED25519_SIG_LEN)
        rc = ck_error_set_ssl(CK_ERR_CRYPTO, "lkh rekey: Ed25519 sign");
    EVP_MD_CTX_free(md);
    return rc;
}

int
lkh_ed25519_verify(const uint8_t pub[LKH_ED25519_PUB_LEN], const uint8_t *msg, size_t len,
                   const uint8_t sig[LKH_ED25519_SIG_LEN])
{
    EVP_PKEY *pk = EVP_PKEY_new_raw_public_key_ex(NULL, "ED25519", NULL, pub,
                                                  LKH_ED25519_PUB_LEN);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int rc = 0;

    if (pk == NULL || md == NULL) {
        rc = ck_error_set_ssl(pk == NULL ? CK_ERR_INVAL : CK_ERR_NOMEM,
                              "lkh rekey: Ed25519 public key");
        goto out;
    }
    if (!EVP_DigestVerifyInit_ex(md, NULL, NULL, NULL, NULL, pk, NULL)) {
        rc = ck_error_set_ssl(CK_ERR_CRYPTO, "lkh rekey: Ed25519 verify init");
        goto out;
    }
    if (EVP_DigestVerify(md, sig, LKH_ED25519_SIG_LEN, msg, len) != 1)
        rc = ck_error_set_ssl(CK_ERR_INTEGRITY, "lkh rekey: signature does not verify");
out:
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(pk);
    return rc;
}
