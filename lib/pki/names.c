/* Names in certificates: the id-pkinit-san otherName (RFC 4556 §3.2.2), MAC addresses in device
 * certificate subjects (PacketCable), and the SubjectPublicKeyInfo hash devices are pinned by. */
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1t.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "cablekey/error.h"
#include "cablekey/krb5_asn1.h"
#include "cablekey/pki.h"
#include "cablekey/util.h"
#include "pki/pki_int.h"

/* KRB5PrincipalName ::= SEQUENCE {
 *     realm          [0] Realm,
 *     principalName  [1] PrincipalName }
 * The tags are explicit: the PKINIT ASN.1 module is DEFINITIONS EXPLICIT TAGS. PrincipalName is
 * the RFC 4120 item lib/asn1 already defines. */
typedef struct ck_pki_krb5_principal_name_st {
    ASN1_GENERALSTRING *realm;
    CK_PRINCIPAL_NAME *principal_name;
} CK_PKI_KRB5_PRINCIPAL_NAME;

ASN1_SEQUENCE(CK_PKI_KRB5_PRINCIPAL_NAME) = {
    ASN1_EXP(CK_PKI_KRB5_PRINCIPAL_NAME, realm, ASN1_GENERALSTRING, 0),
    ASN1_EXP(CK_PKI_KRB5_PRINCIPAL_NAME, principal_name, CK_PRINCIPAL_NAME, 1),
} static_ASN1_SEQUENCE_END(CK_PKI_KRB5_PRINCIPAL_NAME)

static CK_PKI_KRB5_PRINCIPAL_NAME *
kpn_new(void)
{
    return (CK_PKI_KRB5_PRINCIPAL_NAME *)ASN1_item_new(
        ASN1_ITEM_rptr(CK_PKI_KRB5_PRINCIPAL_NAME));
}

static void
kpn_free(CK_PKI_KRB5_PRINCIPAL_NAME *v)
{
    ASN1_item_free((ASN1_VALUE *)v, ASN1_ITEM_rptr(CK_PKI_KRB5_PRINCIPAL_NAME));
}

int
ck_pki_san_principal_encode(const ck_principal *p, uint8_t **der, size_t *len)
{
    CK_PKI_KRB5_PRINCIPAL_NAME *v = NULL;
    unsigned char *out = NULL;
    int n, ret;

    *der = NULL;
    *len = 0;
    if (p == NULL || p->realm == NULL || p->n_components == 0)
        return ck_error_set(CK_ERR_INVAL, "id-pkinit-san: incomplete principal");
    if ((v = kpn_new()) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "id-pkinit-san");
    if ((ret = ck_asn1_kstring_set(&v->realm, p->realm)) != 0 ||
        (ret = ck_asn1_principal_set(v->principal_name, p->name_type,
                                     (const char *const *)p->components, p->n_components)) != 0) {
        ret = ck_error_set(ret, "id-pkinit-san: %s", ck_error_context());
        goto out;
    }
    n = ASN1_item_i2d((ASN1_VALUE *)v, &out, ASN1_ITEM_rptr(CK_PKI_KRB5_PRINCIPAL_NAME));
    if (n <= 0) {
        ret = ck_error_set_ssl(CK_ERR_ENCODE, "id-pkinit-san");
        goto out;
    }
    *der = out;
    *len = (size_t)n;
    ret = 0;
out:
    kpn_free(v);
    return ret;
}

int
ck_pki_san_principal_decode(const uint8_t *der, size_t len, ck_principal **out)
{
    CK_PKI_KRB5_PRINCIPAL_NAME *v = NULL;
    const unsigned char *p = der;
    unsigned char *again = NULL;
    ck_principal *princ = NULL;
    const char *realm;
    size_t ncomp;
    int n, ret;

    *out = NULL;
    if (der == NULL || len == 0)
        return ck_error_set(CK_ERR_DECODE, "id-pkinit-san: empty");
    if (len > CK_PKI_MAX_SAN_DER)
        return ck_error_set(CK_ERR_LIMIT, "id-pkinit-san: %zu bytes", len);
    v = (CK_PKI_KRB5_PRINCIPAL_NAME *)ASN1_item_d2i(NULL, &p, (long)len,
                                                    ASN1_ITEM_rptr(CK_PKI_KRB5_PRINCIPAL_NAME));
    if (v == NULL) {
        ret = ck_error_set_ssl(CK_ERR_DECODE, "id-pkinit-san: not a KRB5PrincipalName");
        goto out;
    }
    if (p != der + len) {
        ret = ck_error_set(CK_ERR_DECODE, "id-pkinit-san: trailing bytes");
        goto out;
    }
    /* OpenSSL's decoder accepts some BER; a certificate's name must be DER, so the value must
     * re-encode to the very same bytes. */
    n = ASN1_item_i2d((ASN1_VALUE *)v, &again, ASN1_ITEM_rptr(CK_PKI_KRB5_PRINCIPAL_NAME));
    if (n <= 0 || (size_t)n != len || memcmp(again, der, len) != 0) {
        ret = ck_error_set(CK_ERR_DECODE, "id-pkinit-san: not DER");
        goto out;
    }
    realm = ck_asn1_kstring_get(v->realm);
    if ((size_t)ASN1_STRING_length(v->realm) != strlen(realm) || *realm == '\0') {
        ret = ck_error_set(CK_ERR_DECODE, "id-pkinit-san: empty realm or NUL byte in it");
        goto out;
    }
    ncomp = ck_asn1_principal_count(v->principal_name);
    if (ncomp == 0) {
        ret = ck_error_set(CK_ERR_DECODE, "id-pkinit-san: principal without components");
        goto out;
    }
    if ((ret = ck_principal_new(realm, strlen(realm), v->principal_name->name_type, &princ)) != 0)
        goto fail;
    for (size_t i = 0; i < ncomp; i++) {
        const char *s = NULL;
        size_t slen = 0;
        if ((ret = ck_asn1_principal_component(v->principal_name, i, &s, &slen)) != 0 ||
            (ret = ck_principal_add_component(princ, s, slen)) != 0)
            goto fail;
    }
    *out = princ;
    princ = NULL;
    ret = 0;
    goto out;
fail:
    ret = ck_error_set(ret == CK_ERR_NOMEM ? ret : CK_ERR_DECODE, "id-pkinit-san: %s",
                       ck_error_context());
out:
    ERR_clear_error();
    OPENSSL_free(again);
    ck_principal_free(princ);
    kpn_free(v);
    return ret;
}

int
ck_pki_cert_san_principals(X509 *cert, ck_principal **out, size_t max, size_t *n)
{
    GENERAL_NAMES *gens = NULL;
    ASN1_OBJECT *san_oid = NULL;
    int crit = 0, ret = 0;
    size_t got = 0;

    *n = 0;
    ERR_clear_error();
    gens = X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, NULL);
    if (gens == NULL) {
        /* crit -1: no extension; -2: present more than once; else it did not decode. */
        if (crit == -1)
            return 0;
        ERR_clear_error();
        return ck_error_set(CK_ERR_DECODE, "certificate: bad subjectAltName");
    }
    if ((san_oid = OBJ_txt2obj("1.3.6.1.5.2.2", 1)) == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "id-pkinit-san");
        goto out;
    }
    for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        const ASN1_TYPE *val;
        if (g->type != GEN_OTHERNAME || OBJ_cmp(g->d.otherName->type_id, san_oid) != 0)
            continue;
        val = g->d.otherName->value;
        if (val == NULL || val->type != V_ASN1_SEQUENCE) {
            ret = ck_error_set(CK_ERR_DECODE, "id-pkinit-san: value is not a SEQUENCE");
            goto out;
        }
        if (got >= max) {
            ret = ck_error_set(CK_ERR_LIMIT, "certificate: more than %zu id-pkinit-san names",
                               max);
            goto out;
        }
        if ((ret = ck_pki_san_principal_decode(ASN1_STRING_get0_data(val->value.sequence),
                                               (size_t)ASN1_STRING_length(val->value.sequence),
                                               &out[got])) != 0)
            goto out;
        got++;
    }
    *n = got;
    got = 0;
out:
    for (size_t i = 0; i < got; i++) {
        ck_principal_free(out[i]);
        out[i] = NULL;
    }
    ASN1_OBJECT_free(san_oid);
    GENERAL_NAMES_free(gens);
    return ret;
}

/* ------------------------------------------------------------------------------------------- */
/* MAC addresses */

int
ck_pki_mac_parse(const char *text, uint8_t mac[6])
{
    uint8_t tmp[CK_MAC_LEN];
    int ret;

    if ((ret = ck_mac_parse(text, tmp)) != 0)
        return ret;
    /* Certificates are issued to one device: a group or all-zero address names none. */
    if (tmp[0] & 0x01)
        return ck_error_set(CK_ERR_INVAL, "MAC address %s is a group (multicast) address",
                            text);
    if ((tmp[0] | tmp[1] | tmp[2] | tmp[3] | tmp[4] | tmp[5]) == 0)
        return ck_error_set(CK_ERR_INVAL, "MAC address %s is all zeros", text);
    memcpy(mac, tmp, CK_MAC_LEN);
    return 0;
}

void
ck_pki_mac_format(const uint8_t mac[6], char out[CK_PKI_MAC_TEXT])
{
    ck_mac_format(mac, out);
}

int
ck_pki_name_device_mac(const X509_NAME *name, uint8_t mac[6])
{
    int idx = name != NULL ? X509_NAME_get_index_by_NID(name, NID_commonName, -1) : -1;
    const ASN1_STRING *cn;
    char text[CK_PKI_MAC_TEXT];
    int len;

    if (idx < 0 || X509_NAME_get_index_by_NID(name, NID_commonName, idx) >= 0)
        return ck_error_set(CK_ERR_NOTFOUND, "device certificate: not exactly one CN");
    cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
    len = ASN1_STRING_length(cn);
    /* Only the colon form PacketCable writes: a CN that merely looks like hex is not a MAC. */
    if (len != CK_PKI_MAC_TEXT - 1)
        return ck_error_set(CK_ERR_NOTFOUND, "device certificate: CN is not a MAC address");
    memcpy(text, ASN1_STRING_get0_data(cn), (size_t)len);
    text[len] = '\0';
    for (int i = 2; i < len; i += 3) {
        if (text[i] != ':')
            return ck_error_set(CK_ERR_NOTFOUND, "device certificate: CN is not a MAC address");
    }
    if (ck_pki_mac_parse(text, mac) != 0)
        return ck_error_set(CK_ERR_NOTFOUND, "device certificate: CN is not a valid MAC "
                                             "address");
    return 0;
}

int
ck_pki_cert_device_mac(X509 *cert, uint8_t mac[6])
{
    return ck_pki_name_device_mac(X509_get_subject_name(cert), mac);
}

int
ck_pki_spki_sha256(X509 *cert, uint8_t out[32])
{
    unsigned char *der = NULL;
    unsigned int mdlen = 0;
    int len, ret = 0;

    len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
    if (len <= 0)
        return ck_error_set_ssl(CK_ERR_ENCODE, "certificate public key");
    if (!EVP_Digest(der, (size_t)len, out, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
        ret = ck_error_set_ssl(CK_ERR_CRYPTO, "SHA-256");
    OPENSSL_free(der);
    return ret;
}
