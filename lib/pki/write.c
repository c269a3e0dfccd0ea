/* Writing identities: PKCS#12 (modern or legacy encryption), PEM certificates and keys, each
 * file created 0600 through a temporary file and renamed (or linked, when an existing file must
 * not be replaced) into place, so a reader never sees half a key and a crash leaves no debris
 * under the final name. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>

#include "cablekey/error.h"
#include "cablekey/pki.h"
#include "cablekey/util.h"
#include "pki/pki_int.h"

int
ck_pki_file_write(const char *path, const void *data, size_t len, unsigned flags)
{
    return ck_file_write_atomic(path, data, len,
                                (flags & CK_PKI_WRITE_REPLACE) ? CK_WRITE_REPLACE : 0);
}

/* Drains a memory BIO into a file; the BIO's buffer is wiped as it may hold a key. */
static int
write_bio(const char *path, BIO *bio, unsigned flags)
{
    char *data = NULL;
    long len = BIO_get_mem_data(bio, &data);

    if (len <= 0 || data == NULL)
        return ck_error_set(CK_ERR_ENCODE, "%s: nothing to write", path);
    return ck_pki_file_write(path, data, (size_t)len, flags);
}

static BIO *
secure_mem_bio(void)
{
    return BIO_new(BIO_s_secmem());
}

int
ck_pki_p12_encode(const ck_pki_identity *id, const char *password, const char *name,
                  unsigned flags, uint8_t **der, size_t *len)
{
    bool legacy = (flags & CK_PKI_P12_LEGACY) != 0;
    int nid = legacy ? NID_pbe_WithSHA1And3_Key_TripleDES_CBC : NID_aes_256_cbc;
    int iter = legacy ? CK_PKI_P12_LEGACY_ITER : CK_PKI_P12_ITER;
    PKCS12 *p12 = NULL;
    unsigned char *out = NULL;
    int n, ret = 0;

    *der = NULL;
    *len = 0;
    if (id == NULL || id->key == NULL || id->cert == NULL)
        return ck_error_set(CK_ERR_INVAL, "PKCS#12: incomplete identity");
    if (password == NULL || *password == '\0')
        return ck_error_set(CK_ERR_INVAL, "PKCS#12: a password is needed");
    ERR_clear_error();
    /* mac_iter -1: no MAC here; PKCS12_set_mac adds it with the digest we choose (PKCS12_create
     * would use SHA-1). */
    p12 = PKCS12_create(password, name, id->key, id->cert, id->chain, nid, nid, iter, -1, 0);
    if (p12 == NULL) {
        ret = ck_error_set_ssl(CK_ERR_CRYPTO, "PKCS#12: encrypting");
        goto out;
    }
    if (!PKCS12_set_mac(p12, password, -1, NULL, 0, iter, legacy ? EVP_sha1() : EVP_sha256())) {
        ret = ck_error_set_ssl(CK_ERR_CRYPTO, "PKCS#12: MAC");
        goto out;
    }
    if ((n = i2d_PKCS12(p12, &out)) <= 0) {
        ret = ck_error_set_ssl(CK_ERR_ENCODE, "PKCS#12");
        goto out;
    }
    *der = out;
    *len = (size_t)n;
out:
    ERR_clear_error();
    PKCS12_free(p12);
    return ret;
}

int
ck_pki_p12_write(const char *path, const ck_pki_identity *id, const char *password,
                 const char *name, unsigned flags)
{
    uint8_t *der = NULL;
    size_t len = 0;
    int ret;

    if ((ret = ck_pki_p12_encode(id, password, name, flags, &der, &len)) != 0)
        return ck_error_set(ret, "%s: %s", path, ck_error_context());
    ret = ck_pki_file_write(path, der, len, flags & CK_PKI_WRITE_REPLACE);
    OPENSSL_free(der);
    return ret;
}

int
ck_pki_certs_write_pem(const char *path, X509 *cert, STACK_OF(X509) *more, unsigned flags)
{
    BIO *bio = BIO_new(BIO_s_mem());
    int ret;

    if (bio == NULL)
        return ck_error_set(CK_ERR_NOMEM, "%s", path);
    if (!PEM_write_bio_X509(bio, cert)) {
        ret = ck_error_set_ssl(CK_ERR_ENCODE, "%s", path);
        goto out;
    }
    for (int i = 0; more != NULL && i < sk_X509_num(more); i++) {
        if (!PEM_write_bio_X509(bio, sk_X509_value(more, i))) {
            ret = ck_error_set_ssl(CK_ERR_ENCODE, "%s", path);
            goto out;
        }
    }
    ret = write_bio(path, bio, flags & CK_PKI_WRITE_REPLACE);
out:
    BIO_free(bio);
    return ret;
}

int
ck_pki_key_write_pem(const char *path, EVP_PKEY *key, const char *password, unsigned flags)
{
    BIO *bio = secure_mem_bio();
    PKCS8_PRIV_KEY_INFO *p8 = NULL;
    X509_SIG *enc = NULL;
    int ret;

    if (bio == NULL)
        return ck_error_set(CK_ERR_NOMEM, "%s", path);
    ERR_clear_error();
    if (flags & CK_PKI_PEM_TRADITIONAL) {
        size_t pwlen = password != NULL ? strlen(password) : 0;
        if (pwlen > INT_MAX ||
            !PEM_write_bio_PrivateKey_traditional(bio, key, password ? EVP_aes_256_cbc() : NULL,
                                                  (const unsigned char *)password, (int)pwlen,
                                                  NULL, NULL)) {
            ret = ck_error_set_ssl(CK_ERR_ENCODE, "%s: private key", path);
            goto out;
        }
        ret = write_bio(path, bio, flags & CK_PKI_WRITE_REPLACE);
        goto out;
    }
    if ((p8 = EVP_PKEY2PKCS8(key)) == NULL) {
        ret = ck_error_set_ssl(CK_ERR_ENCODE, "%s: private key", path);
        goto out;
    }
    if (password != NULL) {
        size_t pwlen = strlen(password);
        if (pwlen == 0 || pwlen > INT_MAX) {
            ret = ck_error_set(CK_ERR_INVAL, "%s: bad password length", path);
            goto out;
        }
        /* PBES2 with AES-256-CBC; OpenSSL 3 picks PBKDF2-HMAC-SHA256. PEM_write_*PKCS8PrivateKey
         * would use only 2048 iterations. */
        enc = PKCS8_encrypt(-1, EVP_aes_256_cbc(), password, (int)pwlen, NULL, 0,
                            CK_PKI_P12_ITER, p8);
        if (enc == NULL || !PEM_write_bio_PKCS8(bio, enc)) {
            ret = ck_error_set_ssl(CK_ERR_CRYPTO, "%s: encrypting the private key", path);
            goto out;
        }
    } else if (!PEM_write_bio_PKCS8_PRIV_KEY_INFO(bio, p8)) {
        ret = ck_error_set_ssl(CK_ERR_ENCODE, "%s: private key", path);
        goto out;
    }
    ret = write_bio(path, bio, flags & CK_PKI_WRITE_REPLACE);
out:
    ERR_clear_error();
    X509_SIG_free(enc);
    PKCS8_PRIV_KEY_INFO_free(p8);
    BIO_free(bio);
    return ret;
}
