/* Loading X.509 identities, trust anchors and password files.
 *
 * A PKCS#12 is read in memory (bounded size), its MAC and PBE iteration counts are checked before
 * any key derivation runs (a hostile file could otherwise ask for 2^31 iterations), the MAC is
 * verified (so a wrong password is told apart from a corrupted file) and only then is it parsed
 * with PKCS12_parse. PEM identities are "cert.pem,key.pem" pairs or one file holding both. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cablekey/error.h"
#include "cablekey/pki.h"
#include "cablekey/util.h"
#include "pki/pki_int.h"

int
ck_pki_read_file(const char *path, size_t max, const char *what, uint8_t **buf, size_t *len)
{
    struct stat st;
    uint8_t *data = NULL;
    size_t n = 0, cap = 0;
    int fd, ret;

    *buf = NULL;
    *len = 0;
    if (path == NULL || *path == '\0')
        return ck_error_set(CK_ERR_INVAL, "%s: no file name", what);
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return ck_error_set(errno == ENOENT ? CK_ERR_NOTFOUND : CK_ERR_IO, "%s %s: %s", what, path,
                            strerror(errno));
    if (fstat(fd, &st) != 0) {
        ret = ck_error_set(CK_ERR_IO, "%s %s: %s", what, path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        ret = ck_error_set(CK_ERR_INVAL, "%s %s is not a regular file", what, path);
        goto out;
    }
    if ((uint64_t)st.st_size > max) {
        ret = ck_error_set(CK_ERR_LIMIT, "%s %s: larger than %zu bytes", what, path, max);
        goto out;
    }
    /* One byte more than fstat said detects a file that grew meanwhile. */
    cap = (size_t)st.st_size + 1;
    if ((data = malloc(cap)) == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "%s %s", what, path);
        goto out;
    }
    if ((ret = ck_fd_read_all(fd, data, cap, &n)) != 0) {
        ret = ck_error_set(ret, "%s %s: %s", what, path, ck_error_context());
        goto out;
    }
    if (n >= cap) {
        ret = ck_error_set(CK_ERR_IO, "%s %s changed while being read", what, path);
        goto out;
    }
    *buf = data;
    *len = n;
    data = NULL;
    ret = 0;
out:
    if (data != NULL)
        ck_free_secret(data, cap);
    close(fd);
    return ret;
}

/* ------------------------------------------------------------------------------------------- */
/* Password files */

int
ck_pki_password_read(const char *path, char **out)
{
    char buf[CK_PKI_PASSWORD_MAX + 2];
    struct stat st;
    size_t n = 0, line;
    char *nl;
    int fd, ret;

    *out = NULL;
    if (path == NULL || *path == '\0')
        return ck_error_set(CK_ERR_INVAL, "password file: no file name");
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return ck_error_set(errno == ENOENT ? CK_ERR_NOTFOUND : CK_ERR_IO,
                            "password file %s: %s", path, strerror(errno));
    if (fstat(fd, &st) != 0) {
        ret = ck_error_set(CK_ERR_IO, "password file %s: %s", path, strerror(errno));
        goto out;
    }
    /* Not a FIFO or a terminal: a password file is something an operator wrote and protected. */
    if (!S_ISREG(st.st_mode)) {
        ret = ck_error_set(CK_ERR_INVAL, "password file %s is not a regular file", path);
        goto out;
    }
    if ((st.st_mode & S_IRWXO) != 0) {
        ret = ck_error_set(CK_ERR_PERM,
                           "password file %s has mode %04o; others must have no access", path,
                           (unsigned)(st.st_mode & 07777));
        goto out;
    }
    /* Only the first line counts; one byte beyond the limit tells a too-long line. */
    if ((ret = ck_fd_read_all(fd, buf, sizeof(buf), &n)) != 0) {
        ret = ck_error_set(ret, "password file %s: %s", path, ck_error_context());
        goto out;
    }
    nl = memchr(buf, '\n', n);
    line = nl != NULL ? (size_t)(nl - buf) : n;
    if (line > CK_PKI_PASSWORD_MAX) {
        ret = ck_error_set(CK_ERR_LIMIT, "password file %s: first line longer than %d bytes",
                           path, CK_PKI_PASSWORD_MAX);
        goto out;
    }
    if (line > 0 && buf[line - 1] == '\r')
        line--;
    if (line == 0) {
        ret = ck_error_set(CK_ERR_INVAL, "password file %s: empty password", path);
        goto out;
    }
    if (memchr(buf, '\0', line) != NULL) {
        ret = ck_error_set(CK_ERR_INVAL, "password file %s: password contains a NUL byte", path);
        goto out;
    }
    if ((*out = malloc(line + 1)) == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "password file %s", path);
        goto out;
    }
    memcpy(*out, buf, line);
    (*out)[line] = '\0';
    ret = 0;
out:
    ck_memzero(buf, sizeof(buf));
    close(fd);
    return ret;
}

void
ck_pki_password_free(char *password)
{
    if (password != NULL)
        ck_free_secret(password, strlen(password) + 1);
}

/* ------------------------------------------------------------------------------------------- */
/* Certificates */

int
ck_pki_certs_from_pem(const uint8_t *buf, size_t len, size_t max, const char *name,
                      STACK_OF(X509) **out)
{
    STACK_OF(X509) *certs = NULL;
    BIO *bio = NULL;
    X509 *x = NULL;
    int ret;

    *out = NULL;
    if (len > INT_MAX)
        return ck_error_set(CK_ERR_LIMIT, "%s: too large", name);
    if ((bio = BIO_new_mem_buf(buf, (int)len)) == NULL || (certs = sk_X509_new_null()) == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "%s", name);
        goto out;
    }
    ERR_clear_error();
    while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        if ((size_t)sk_X509_num(certs) >= max) {
            ret = ck_error_set(CK_ERR_LIMIT, "%s: more than %zu certificates", name, max);
            goto out;
        }
        if (!sk_X509_push(certs, x)) {
            ret = ck_error_set(CK_ERR_NOMEM, "%s", name);
            goto out;
        }
        x = NULL;
    }
    /* The loop ends at the end of the data (no more BEGIN lines) or at a bad block. */
    if (ERR_GET_REASON(ERR_peek_last_error()) != PEM_R_NO_START_LINE) {
        ret = ck_error_set_ssl(CK_ERR_DECODE, "%s: bad PEM certificate", name);
        goto out;
    }
    ERR_clear_error();
    if (sk_X509_num(certs) == 0) {
        ret = ck_error_set(CK_ERR_DECODE, "%s: no PEM certificate", name);
        goto out;
    }
    *out = certs;
    certs = NULL;
    ret = 0;
out:
    X509_free(x);
    sk_X509_pop_free(certs, X509_free);
    BIO_free(bio);
    return ret;
}

int
ck_pki_certs_load_pem(const char *path, STACK_OF(X509) **out)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int ret;

    *out = NULL;
    if ((ret = ck_pki_read_file(path, CK_PKI_MAX_FILE, "certificate file", &buf, &len)) != 0)
        return ret;
    ret = ck_pki_certs_from_pem(buf, len, CK_PKI_MAX_ANCHORS, path, out);
    free(buf);
    return ret;
}

int
ck_pki_chain_order(X509 *cert, STACK_OF(X509) *certs, STACK_OF(X509) **out)
{
    STACK_OF(X509) *rest = NULL, *chain = NULL;
    X509 *cur = cert;
    int ret;

    *out = NULL;
    if ((chain = sk_X509_new_null()) == NULL || (rest = sk_X509_new_null()) == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "certificate chain");
        goto out;
    }
    for (int i = 0; certs != NULL && i < sk_X509_num(certs); i++) {
        X509 *c = sk_X509_value(certs, i);
        if (X509_cmp(c, cert) == 0)
            continue;
        if (!sk_X509_push(rest, c)) {
            ret = ck_error_set(CK_ERR_NOMEM, "certificate chain");
            goto out;
        }
    }
    if (sk_X509_num(rest) > CK_PKI_MAX_CHAIN) {
        ret = ck_error_set(CK_ERR_LIMIT, "certificate chain: more than %d certificates",
                           CK_PKI_MAX_CHAIN);
        goto out;
    }
    /* Walk up from cert while an issuer is present; a self-signed certificate ends the walk. */
    while (X509_check_issued(cur, cur) != X509_V_OK) {
        int found = -1;
        for (int i = 0; i < sk_X509_num(rest); i++) {
            if (X509_check_issued(sk_X509_value(rest, i), cur) == X509_V_OK) {
                found = i;
                break;
            }
        }
        if (found < 0)
            break;
        cur = sk_X509_delete(rest, found);
        if (!sk_X509_push(chain, cur)) {
            ret = ck_error_set(CK_ERR_NOMEM, "certificate chain");
            goto out;
        }
    }
    for (int i = 0; i < sk_X509_num(rest); i++) {
        if (!sk_X509_push(chain, sk_X509_value(rest, i))) {
            ret = ck_error_set(CK_ERR_NOMEM, "certificate chain");
            goto out;
        }
    }
    for (int i = 0; i < sk_X509_num(chain); i++)
        X509_up_ref(sk_X509_value(chain, i));
    *out = chain;
    chain = NULL;
    ret = 0;
out:
    sk_X509_free(chain);
    sk_X509_free(rest);
    return ret;
}

/* ------------------------------------------------------------------------------------------- */
/* Identities */

void
ck_pki_identity_free(ck_pki_identity *id)
{
    if (id == NULL)
        return;
    EVP_PKEY_free(id->key);
    X509_free(id->cert);
    sk_X509_pop_free(id->chain, X509_free);
    free(id);
}

int
ck_pki_identity_new(EVP_PKEY *key, X509 *cert, STACK_OF(X509) *chain, ck_pki_identity **out)
{
    ck_pki_identity *id = NULL;
    int ret;

    *out = NULL;
    if (key == NULL || cert == NULL)
        return ck_error_set(CK_ERR_INVAL, "identity: no key or no certificate");
    if (X509_check_private_key(cert, key) != 1) {
        ERR_clear_error();
        return ck_error_set(CK_ERR_INVAL, "identity: the private key does not match the "
                                          "certificate");
    }
    if ((id = calloc(1, sizeof(*id))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "identity");
    if ((ret = ck_pki_chain_order(cert, chain, &id->chain)) != 0)
        goto out;
    EVP_PKEY_up_ref(key);
    id->key = key;
    X509_up_ref(cert);
    id->cert = cert;
    *out = id;
    id = NULL;
out:
    ck_pki_identity_free(id);
    return ret;
}

/* Iteration count of a password-based encryption AlgorithmIdentifier (PBES2 with PBKDF2, or a
 * PKCS#12/PKCS#5 v1 PBE); 0 when the algorithm is one we do not inspect (OpenSSL bounds scrypt's
 * memory itself, and refuses what it does not know). */
static int
pbe_iterations(const X509_ALGOR *alg, const char *what, long *iter)
{
    const ASN1_OBJECT *obj = NULL;
    const void *pval = NULL;
    int ptype = 0, ret = 0;
    PBE2PARAM *pbe2 = NULL;
    PBKDF2PARAM *kdf = NULL;
    PBEPARAM *pbe = NULL;
    const ASN1_INTEGER *it = NULL;

    *iter = 0;
    X509_ALGOR_get0(&obj, &ptype, &pval, alg);
    if (ptype != V_ASN1_SEQUENCE)
        return ck_error_set(CK_ERR_DECODE, "PKCS#12: %s: encryption parameters missing", what);
    if (OBJ_obj2nid(obj) == NID_pbes2) {
        pbe2 = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBE2PARAM), alg->parameter);
        if (pbe2 == NULL || pbe2->keyfunc == NULL) {
            ret = ck_error_set(CK_ERR_DECODE, "PKCS#12: %s: bad PBES2 parameters", what);
            goto out;
        }
        if (OBJ_obj2nid(pbe2->keyfunc->algorithm) != NID_id_pbkdf2)
            goto out;
        kdf = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBKDF2PARAM), pbe2->keyfunc->parameter);
        if (kdf == NULL) {
            ret = ck_error_set(CK_ERR_DECODE, "PKCS#12: %s: bad PBKDF2 parameters", what);
            goto out;
        }
        it = kdf->iter;
    } else {
        pbe = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBEPARAM), alg->parameter);
        if (pbe == NULL) {
            ret = ck_error_set(CK_ERR_DECODE, "PKCS#12: %s: bad PBE parameters", what);
            goto out;
        }
        it = pbe->iter;
    }
    *iter = ASN1_INTEGER_get(it);
    if (*iter < 1 || *iter > CK_PKI_MAX_ITER)
        ret = ck_error_set(CK_ERR_LIMIT, "PKCS#12: %s: iteration count outside 1..%d", what,
                           CK_PKI_MAX_ITER);
out:
    ERR_clear_error();
    PBE2PARAM_free(pbe2);
    PBKDF2PARAM_free(kdf);
    PBEPARAM_free(pbe);
    return ret;
}

/* Checks the iteration counts that a wrong password would still make us pay for: the MAC's and
 * those of the safes and key bags reachable without decrypting. Bags inside encrypted safes are
 * reached only with the right password (the MAC was verified first), so they come from the
 * password holder. */
static int
p12_check_costs(PKCS12 *p12)
{
    const ASN1_INTEGER *mac_iter = NULL;
    STACK_OF(PKCS7) *safes = NULL;
    STACK_OF(PKCS12_SAFEBAG) *bags = NULL;
    long iter;
    int ret = 0;

    PKCS12_get0_mac(NULL, NULL, NULL, &mac_iter, p12);
    /* An absent iteration count means 1 (RFC 7292 MacData). */
    if (mac_iter != NULL) {
        iter = ASN1_INTEGER_get(mac_iter);
        if (iter < 1 || iter > CK_PKI_MAX_ITER) {
            ERR_clear_error();
            return ck_error_set(CK_ERR_LIMIT, "PKCS#12: MAC iteration count outside 1..%d",
                                CK_PKI_MAX_ITER);
        }
    }
    if ((safes = PKCS12_unpack_authsafes(p12)) == NULL) {
        ret = ck_error_set_ssl(CK_ERR_DECODE, "PKCS#12: bad authenticated safe");
        goto out;
    }
    if (sk_PKCS7_num(safes) > CK_PKI_MAX_CHAIN + 2) {
        ret = ck_error_set(CK_ERR_LIMIT, "PKCS#12: more than %d safes", CK_PKI_MAX_CHAIN + 2);
        goto out;
    }
    for (int i = 0; i < sk_PKCS7_num(safes); i++) {
        PKCS7 *p7 = sk_PKCS7_value(safes, i);
        switch (OBJ_obj2nid(p7->type)) {
        case NID_pkcs7_encrypted:
            if (p7->d.encrypted == NULL || p7->d.encrypted->enc_data == NULL ||
                p7->d.encrypted->enc_data->algorithm == NULL) {
                ret = ck_error_set(CK_ERR_DECODE, "PKCS#12: bad encrypted safe");
                goto out;
            }
            if ((ret = pbe_iterations(p7->d.encrypted->enc_data->algorithm, "encrypted safe",
                                      &iter)) != 0)
                goto out;
            break;
        case NID_pkcs7_data:
            if ((bags = PKCS12_unpack_p7data(p7)) == NULL) {
                ret = ck_error_set_ssl(CK_ERR_DECODE, "PKCS#12: bad safe contents");
                goto out;
            }
            for (int j = 0; j < sk_PKCS12_SAFEBAG_num(bags); j++) {
                const PKCS12_SAFEBAG *bag = sk_PKCS12_SAFEBAG_value(bags, j);
                const X509_ALGOR *alg = NULL;
                if (PKCS12_SAFEBAG_get_nid(bag) != NID_pkcs8ShroudedKeyBag)
                    continue;
                X509_SIG_get0(PKCS12_SAFEBAG_get0_pkcs8(bag), &alg, NULL);
                if (alg == NULL) {
                    ret = ck_error_set(CK_ERR_DECODE, "PKCS#12: bad shrouded key bag");
                    goto out;
                }
                if ((ret = pbe_iterations(alg, "key bag", &iter)) != 0)
                    goto out;
            }
            sk_PKCS12_SAFEBAG_pop_free(bags, PKCS12_SAFEBAG_free);
            bags = NULL;
            break;
        default:
            ret = ck_error_set(CK_ERR_UNSUPPORTED, "PKCS#12: safe of type %s (public-key "
                                                   "privacy mode is not supported)",
                               OBJ_nid2sn(OBJ_obj2nid(p7->type)));
            goto out;
        }
    }
out:
    sk_PKCS12_SAFEBAG_pop_free(bags, PKCS12_SAFEBAG_free);
    sk_PKCS7_pop_free(safes, PKCS7_free);
    return ret;
}

int
ck_pki_identity_from_p12(const uint8_t *der, size_t len, const char *password,
                         ck_pki_identity **out)
{
    const unsigned char *p = der;
    PKCS12 *p12 = NULL;
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    STACK_OF(X509) *ca = NULL;
    int ret;

    *out = NULL;
    if (der == NULL || len == 0 || len > CK_PKI_MAX_FILE)
        return ck_error_set(len > CK_PKI_MAX_FILE ? CK_ERR_LIMIT : CK_ERR_INVAL,
                            "PKCS#12: %zu bytes", len);
    if (password == NULL)
        return ck_error_set(CK_ERR_INVAL, "PKCS#12: a password is needed");
    ERR_clear_error();
    p12 = d2i_PKCS12(NULL, &p, (long)len);
    if (p12 == NULL) {
        ret = ck_error_set_ssl(CK_ERR_DECODE, "not a PKCS#12 file");
        goto out;
    }
    if (p != der + len) {
        ret = ck_error_set(CK_ERR_DECODE, "PKCS#12: %zu trailing bytes",
                           (size_t)(der + len - p));
        goto out;
    }
    if (!PKCS12_mac_present(p12)) {
        ret = ck_error_set(CK_ERR_UNSUPPORTED, "PKCS#12 without a MAC (integrity unprotected)");
        goto out;
    }
    if ((ret = p12_check_costs(p12)) != 0)
        goto out;
    if (!PKCS12_verify_mac(p12, password, -1)) {
        ERR_clear_error();
        ret = ck_error_set(CK_ERR_INTEGRITY, "PKCS#12: wrong password or corrupted file (MAC "
                                             "check failed)");
        goto out;
    }
    if (!PKCS12_parse(p12, password, &key, &cert, &ca)) {
        ret = ck_error_set_ssl(CK_ERR_DECODE, "PKCS#12: cannot read its contents");
        goto out;
    }
    if (key == NULL || cert == NULL) {
        ret = ck_error_set(CK_ERR_DECODE, "PKCS#12: %s", key == NULL ? "no private key"
                                                                     : "no certificate for the "
                                                                       "private key");
        goto out;
    }
    ret = ck_pki_identity_new(key, cert, ca, out);
out:
    ERR_clear_error();
    EVP_PKEY_free(key);
    X509_free(cert);
    sk_X509_pop_free(ca, X509_free);
    PKCS12_free(p12);
    return ret;
}

/* PEM password callback state: NULL password means "refuse, and remember we were asked". */
struct pem_pw {
    const char *password;
    int asked;
};

static int
pem_pw_cb(char *buf, int size, int rwflag, void *u)
{
    struct pem_pw *pw = u;
    size_t n;

    (void)rwflag;
    pw->asked = 1;
    if (pw->password == NULL)
        return -1;
    n = strlen(pw->password);
    if (size < 0 || n > (size_t)size)
        return -1;
    memcpy(buf, pw->password, n);
    return (int)n;
}

static int
key_from_pem(const uint8_t *buf, size_t len, const char *password, const char *name,
             EVP_PKEY **out)
{
    struct pem_pw pw = {password, 0};
    BIO *bio = NULL;
    int ret = 0;

    *out = NULL;
    if (len > INT_MAX)
        return ck_error_set(CK_ERR_LIMIT, "%s: too large", name);
    if ((bio = BIO_new_mem_buf(buf, (int)len)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "%s", name);
    ERR_clear_error();
    *out = PEM_read_bio_PrivateKey(bio, NULL, pem_pw_cb, &pw);
    if (*out == NULL) {
        if (pw.asked && password == NULL)
            ret = ck_error_set(CK_ERR_INVAL, "%s: the private key is encrypted and no password "
                                             "was given", name);
        else if (pw.asked)
            ret = ck_error_set(CK_ERR_INTEGRITY, "%s: wrong password or corrupted key", name);
        else
            ret = ck_error_set(CK_ERR_DECODE, "%s: no PEM private key", name);
    }
    ERR_clear_error();
    BIO_free(bio);
    return ret;
}

int
ck_pki_key_load_pem(const char *path, const char *password, EVP_PKEY **out)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int ret;

    *out = NULL;
    if ((ret = ck_pki_read_file(path, CK_PKI_MAX_FILE, "key file", &buf, &len)) != 0)
        return ret;
    ret = key_from_pem(buf, len, password, path, out);
    ck_free_secret(buf, len);
    return ret;
}

/* "cert.pem,key.pem", or one file that holds the certificate(s) and the key. */
static int
identity_load_pem(const char *certfile, const char *keyfile, const char *password,
                  ck_pki_identity **out)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    STACK_OF(X509) *certs = NULL;
    EVP_PKEY *key = NULL;
    X509 *cert;
    int ret;

    if ((ret = ck_pki_read_file(certfile, CK_PKI_MAX_FILE, "certificate file", &buf, &len)) != 0)
        return ret;
    if ((ret = ck_pki_certs_from_pem(buf, len, CK_PKI_MAX_CHAIN + 1, certfile, &certs)) != 0)
        goto out;
    if (keyfile == NULL)
        ret = key_from_pem(buf, len, password, certfile, &key);
    else
        ret = ck_pki_key_load_pem(keyfile, password, &key);
    if (ret != 0)
        goto out;
    /* The first certificate is the identity's; the others are its chain. */
    cert = sk_X509_shift(certs);
    ret = ck_pki_identity_new(key, cert, certs, out);
    X509_free(cert);
out:
    ck_free_secret(buf, len);
    sk_X509_pop_free(certs, X509_free);
    EVP_PKEY_free(key);
    return ret;
}

static int
identity_load_p12(const char *path, const char *password, ck_pki_identity **out)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int ret;

    if ((ret = ck_pki_read_file(path, CK_PKI_MAX_FILE, "PKCS#12 file", &buf, &len)) != 0)
        return ret;
    ret = ck_pki_identity_from_p12(buf, len, password, out);
    if (ret != 0)
        ret = ck_error_set(ret, "%s: %s", path, ck_error_context());
    ck_free_secret(buf, len);
    return ret;
}

/* A file given without a prefix is PKCS#12 if it starts like DER (a SEQUENCE), else PEM. */
static int
sniff_is_der(const char *path, bool *der)
{
    unsigned char c = 0;
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

    if (fd < 0)
        return ck_error_set(errno == ENOENT ? CK_ERR_NOTFOUND : CK_ERR_IO, "identity %s: %s",
                            path, strerror(errno));
    do {
        n = read(fd, &c, 1);
    } while (n < 0 && errno == EINTR);
    close(fd);
    if (n < 0)
        return ck_error_set(CK_ERR_IO, "identity %s: %s", path, strerror(errno));
    *der = n == 1 && c == 0x30;
    return 0;
}

int
ck_pki_identity_load(const char *spec, const char *password, ck_pki_identity **out)
{
    char *copy = NULL, *comma;
    bool der = false;
    int ret;

    *out = NULL;
    if (spec == NULL || *spec == '\0')
        return ck_error_set(CK_ERR_INVAL, "identity: empty name");
    if (strncmp(spec, "PKCS12:", 7) == 0)
        return identity_load_p12(spec + 7, password, out);
    if (strncmp(spec, "FILE:", 5) == 0)
        spec += 5;
    else if (strchr(spec, ',') == NULL) {
        if ((ret = sniff_is_der(spec, &der)) != 0)
            return ret;
        if (der)
            return identity_load_p12(spec, password, out);
    }
    if ((copy = strdup(spec)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "identity");
    comma = strchr(copy, ',');
    if (comma != NULL) {
        *comma = '\0';
        if (comma[1] == '\0' || strchr(comma + 1, ',') != NULL) {
            ret = ck_error_set(CK_ERR_INVAL, "identity %s: expected cert.pem,key.pem", spec);
            goto out;
        }
    }
    ret = identity_load_pem(copy, comma != NULL ? comma + 1 : NULL, password, out);
out:
    free(copy);
    return ret;
}
