/* PKINIT reply-key derivation: RFC 8636 §5 (SP 800-56A single-step KDF over a DER OtherInfo,
 * OpenSSL's "SSKDF") and RFC 4556 §3.2.3.1 octetstring2key. Every enctype lib/crypto supports
 * (AES, RFC 3962 and RFC 8009) has the identity as random-to-key with a random-to-key input
 * length equal to its key length, so both derivations end with ck_key_init(). */
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "cablekey/error.h"
#include "cablekey/pkinit_asn1.h"
#include "cablekey/pkinit_kdf.h"

static const char *
kdf_digest(int kdf)
{
    switch (kdf) {
    case CK_PKINIT_KDF_SHA1: return "SHA1";
    case CK_PKINIT_KDF_SHA256: return "SHA256";
    case CK_PKINIT_KDF_SHA384: return "SHA384";
    case CK_PKINIT_KDF_SHA512: return "SHA512";
    default: return NULL;
    }
}

/* DER KRB5PrincipalName of name@realm, the name-type included as given. */
static int
encode_kpn(const CK_PRINCIPAL_NAME *name, const char *realm, uint8_t **der, size_t *len)
{
    CK_KRB5_PRINCIPAL_NAME *kpn = NULL;
    int rc;

    if ((kpn = CK_KRB5_PRINCIPAL_NAME_new()) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "PKINIT KDF: KRB5PrincipalName");
    if ((rc = ck_pkinit_krb5_principal_set(kpn, name, realm)) == 0)
        rc = ck_asn1_krb5_principal_name_encode(kpn, der, len);
    CK_KRB5_PRINCIPAL_NAME_free(kpn);
    return rc;
}

/* The DER OtherInfo of RFC 8636 §5: the KDF's "info" (SP 800-56A OtherInfo, ASN.1 form). */
static int
build_other_info(int kdf, const CK_PRINCIPAL_NAME *client, const char *client_realm,
                 const CK_PRINCIPAL_NAME *kdc, const char *kdc_realm, int32_t enctype,
                 const uint8_t *as_req, size_t as_req_len, const uint8_t *pk_as_rep,
                 size_t pk_as_rep_len, uint8_t **der, size_t *len)
{
    CK_PKINIT_SUPP_PUB_INFO *pub = NULL;
    CK_PKINIT_OTHER_INFO *oi = NULL;
    CK_KDF_ALGORITHM_ID *id = NULL;
    uint8_t *u = NULL, *v = NULL, *p = NULL;
    size_t ulen = 0, vlen = 0, plen = 0;
    int rc;

    if ((rc = encode_kpn(client, client_realm, &u, &ulen)) != 0 ||
        (rc = encode_kpn(kdc, kdc_realm, &v, &vlen)) != 0)
        goto out;
    if ((pub = CK_PKINIT_SUPP_PUB_INFO_new()) == NULL ||
        (oi = CK_PKINIT_OTHER_INFO_new()) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "PKINIT KDF: OtherInfo");
        goto out;
    }
    pub->enctype = enctype;
    if ((rc = ck_asn1_octets_set(&pub->as_req, as_req, as_req_len)) != 0 ||
        (rc = ck_asn1_octets_set(&pub->pk_as_rep, pk_as_rep, pk_as_rep_len)) != 0 ||
        (rc = ck_asn1_pkinit_supp_pub_info_encode(pub, &p, &plen)) != 0)
        goto out;
    /* algorithmID: the KDF's OID with parameters absent (RFC 8636 §5). */
    if ((rc = ck_pkinit_kdf_id_set(&id, kdf)) != 0)
        goto out;
    if (!X509_ALGOR_set0(oi->algorithm_id, id->kdf_id, V_ASN1_UNDEF, NULL)) {
        rc = ck_error_set_ssl(CK_ERR_CRYPTO, "PKINIT KDF: algorithmID");
        goto out;
    }
    id->kdf_id = NULL; /* now owned by oi */
    if ((rc = ck_asn1_octets_set(&oi->party_u_info, u, ulen)) != 0 ||
        (rc = ck_asn1_octets_set(&oi->party_v_info, v, vlen)) != 0 ||
        (rc = ck_asn1_octets_set(&oi->supp_pub_info, p, plen)) != 0)
        goto out;
    rc = ck_asn1_pkinit_other_info_encode(oi, der, len);
out:
    ck_asn1_free_der(u, ulen);
    ck_asn1_free_der(v, vlen);
    ck_asn1_free_der(p, plen);
    CK_KDF_ALGORITHM_ID_free(id);
    CK_PKINIT_SUPP_PUB_INFO_free(pub);
    CK_PKINIT_OTHER_INFO_free(oi);
    return rc;
}

int
ck_pkinit_kdf_bytes(int kdf, const uint8_t *z, size_t z_len, const CK_PRINCIPAL_NAME *client,
                    const char *client_realm, const CK_PRINCIPAL_NAME *kdc, const char *kdc_realm,
                    int32_t enctype, const uint8_t *as_req, size_t as_req_len,
                    const uint8_t *pk_as_rep, size_t pk_as_rep_len, uint8_t *out, size_t out_len)
{
    const char *digest = kdf_digest(kdf);
    OSSL_PARAM params[4];
    EVP_KDF *k = NULL;
    EVP_KDF_CTX *ctx = NULL;
    uint8_t *info = NULL;
    size_t info_len = 0;
    int rc;

    if (digest == NULL)
        return ck_error_set(CK_ERR_UNSUPPORTED, "PKINIT KDF: unknown KDF %d", kdf);
    if (z == NULL || z_len == 0 || z_len > CK_PKINIT_MAX_Z || client == NULL ||
        client_realm == NULL || kdc == NULL || kdc_realm == NULL || as_req == NULL ||
        pk_as_rep == NULL || out == NULL || out_len == 0 || out_len > CK_KEY_MAX)
        return ck_error_set(CK_ERR_INVAL, "PKINIT KDF: bad arguments");
    if ((rc = build_other_info(kdf, client, client_realm, kdc, kdc_realm, enctype, as_req,
                               as_req_len, pk_as_rep, pk_as_rep_len, &info, &info_len)) != 0)
        return rc;
    /* SSKDF = SP 800-56C single-step with a hash: H(counter || Z || OtherInfo) blocks, which is
     * RFC 8636's KDF. (X942KDF-* are not: they build their own OtherInfo.) */
    if ((k = EVP_KDF_fetch(NULL, "SSKDF", NULL)) == NULL ||
        (ctx = EVP_KDF_CTX_new(k)) == NULL) {
        rc = ck_error_set_ssl(CK_ERR_CRYPTO, "PKINIT KDF: SSKDF unavailable");
        goto out;
    }
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)digest, 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)z, z_len);
    params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, info_len);
    params[3] = OSSL_PARAM_construct_end();
    if (EVP_KDF_derive(ctx, out, out_len, params) <= 0) {
        OPENSSL_cleanse(out, out_len);
        rc = ck_error_set_ssl(CK_ERR_CRYPTO, "PKINIT KDF: derive failed");
        goto out;
    }
    rc = 0;
out:
    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(k);
    ck_asn1_free_der(info, info_len);
    return rc;
}

int
ck_pkinit_kdf(int kdf, const uint8_t *z, size_t z_len, const CK_PRINCIPAL_NAME *client,
              const char *client_realm, const CK_PRINCIPAL_NAME *kdc, const char *kdc_realm,
              int32_t enctype, const uint8_t *as_req, size_t as_req_len, const uint8_t *pk_as_rep,
              size_t pk_as_rep_len, ck_key *out)
{
    uint8_t buf[CK_KEY_MAX];
    size_t klen = ck_enctype_key_length(enctype);
    int rc;

    if (out == NULL)
        return ck_error_set(CK_ERR_INVAL, "PKINIT KDF: no output");
    ck_key_clear(out);
    if (!ck_enctype_is_supported(enctype) || klen == 0 || klen > sizeof(buf))
        return ck_error_set(CK_ERR_UNSUPPORTED, "PKINIT KDF: enctype %d", (int)enctype);
    if ((rc = ck_pkinit_kdf_bytes(kdf, z, z_len, client, client_realm, kdc, kdc_realm, enctype,
                                  as_req, as_req_len, pk_as_rep, pk_as_rep_len, buf, klen)) == 0)
        rc = ck_key_init(out, enctype, buf, klen);
    OPENSSL_cleanse(buf, sizeof(buf));
    return rc;
}

int
ck_pkinit_octetstring2key_bytes(const uint8_t *z, size_t z_len, const uint8_t *client_dh_nonce,
                                size_t n1, const uint8_t *server_dh_nonce, size_t n2,
                                uint8_t *out, size_t out_len)
{
    uint8_t block[EVP_MAX_MD_SIZE];
    unsigned int blen = 0;
    EVP_MD_CTX *md = NULL;
    size_t done = 0;
    int rc = 0;

    if (z == NULL || z_len == 0 || z_len > CK_PKINIT_MAX_Z || out == NULL || out_len == 0 ||
        out_len > CK_KEY_MAX || (client_dh_nonce == NULL && n1 > 0) ||
        (server_dh_nonce == NULL && n2 > 0) || n1 > CK_PKINIT_MAX_DH_NONCE ||
        n2 > CK_PKINIT_MAX_DH_NONCE)
        return ck_error_set(CK_ERR_INVAL, "octetstring2key: bad arguments");
    if ((md = EVP_MD_CTX_new()) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "octetstring2key");
    /* K-truncate(SHA1(0x00 | x) | SHA1(0x01 | x) | ...), x = Z | n_c | n_k: a one-octet
     * counter prefix, which no EVP KDF implements (LIBRARIES.md §2). */
    for (unsigned counter = 0; done < out_len; counter++) {
        uint8_t c = (uint8_t)counter;
        size_t take;

        if (!EVP_DigestInit_ex(md, EVP_sha1(), NULL) || !EVP_DigestUpdate(md, &c, 1) ||
            !EVP_DigestUpdate(md, z, z_len) ||
            (n1 > 0 && !EVP_DigestUpdate(md, client_dh_nonce, n1)) ||
            (n2 > 0 && !EVP_DigestUpdate(md, server_dh_nonce, n2)) ||
            !EVP_DigestFinal_ex(md, block, &blen)) {
            rc = ck_error_set_ssl(CK_ERR_CRYPTO, "octetstring2key: SHA-1 failed");
            OPENSSL_cleanse(out, out_len);
            goto out;
        }
        take = out_len - done < blen ? out_len - done : blen;
        memcpy(out + done, block, take);
        done += take;
    }
out:
    OPENSSL_cleanse(block, sizeof(block));
    EVP_MD_CTX_free(md);
    return rc;
}

int
ck_pkinit_octetstring2key(const uint8_t *z, size_t z_len, const uint8_t *client_dh_nonce,
                          size_t n1, const uint8_t *server_dh_nonce, size_t n2, int32_t enctype,
                          ck_key *out)
{
    uint8_t buf[CK_KEY_MAX];
    size_t klen = ck_enctype_key_length(enctype);
    int rc;

    if (out == NULL)
        return ck_error_set(CK_ERR_INVAL, "octetstring2key: no output");
    ck_key_clear(out);
    if (!ck_enctype_is_supported(enctype) || klen == 0 || klen > sizeof(buf))
        return ck_error_set(CK_ERR_UNSUPPORTED, "octetstring2key: enctype %d", (int)enctype);
    if ((rc = ck_pkinit_octetstring2key_bytes(z, z_len, client_dh_nonce, n1, server_dh_nonce, n2,
                                              buf, klen)) == 0)
        rc = ck_key_init(out, enctype, buf, klen);
    OPENSSL_cleanse(buf, sizeof(buf));
    return rc;
}
