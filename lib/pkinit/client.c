/* PKINIT client: the pre-authentication mechanism behind ck_client_as_pkinit (see
 * include/cablekey/pkinit_client.h for the exchange and the decisions). The AS exchange itself
 * (request body, transport, AS-REP checks) is lib/krb/client_as.c's; this file adds the PKINIT
 * padata to each request, reacts to the KDC's errors and turns the PA-PK-AS-REP into the reply
 * key. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cablekey/ap.h"
#include "cablekey/crypto.h"
#include "cablekey/error.h"
#include "cablekey/krb5_asn1.h"
#include "cablekey/pkinit.h"
#include "cablekey/pkinit_asn1.h"
#include "cablekey/pkinit_client.h"
#include "cablekey/pkinit_kdf.h"
#include "cablekey/principal.h"
#include "cablekey/util.h"
#include "krb/client_int.h"
#include "pkinit/client_int.h"

/* Requests at most: the plain one, PKINIT, one retry for another DH group, one for a fresh
 * freshness token. */
#define PK_MAX_ROUNDS 4

/* KDFs offered, in preference order (MIT 1.20 offers the same three). */
static const int offered_kdfs[] = {CK_PKINIT_KDF_SHA256, CK_PKINIT_KDF_SHA1, CK_PKINIT_KDF_SHA512};

/* supportedCMSTypes: the signature algorithms we verify, then the content-encryption algorithms
 * we can decrypt an encKeyPack with (AES first: a KDC that honours the list encrypts with it). */
static const int offered_cms_types[] = {
    NID_ecdsa_with_SHA512, NID_ecdsa_with_SHA384, NID_ecdsa_with_SHA256,
    NID_sha512WithRSAEncryption, NID_sha384WithRSAEncryption, NID_sha256WithRSAEncryption,
    NID_aes_256_cbc, NID_aes_128_cbc, NID_des_ede3_cbc,
};

struct ck_pkinit_client_ctx {
    const ck_pkinit_client_params *p;
    ck_pkinit_group group;        /* DH/ECDH group of the next (or last) PKINIT request */
    ck_pkinit_dh *dh;             /* the key of the last PKINIT request */
    uint8_t dh_nonce[CK_PKINIT_DH_NONCE_LEN];
    bool pk_next;                 /* the next request carries PKINIT */
    bool pk_sent;                 /* the last request carried PKINIT */
    bool pk_unasked;              /* PKINIT was sent after a ticket without pre-authentication */
    bool fresh_retried;
    ASN1_OCTET_STRING *freshness; /* token for the next PKINIT request */
    ASN1_OCTET_STRING *cookie;    /* PA-FX-COOKIE to echo */
    ck_pkinit_client_info info;
};

/* ---------------------------------------------------------------------------------------------
 * Small helpers.
 */

static int64_t
now_of(const ck_pkinit_client_ctx *c)
{
    int64_t sec;
    int32_t usec;

    if (c->p->now != 0)
        return c->p->now;
    ck_now(&sec, &usec);
    return sec;
}

static int
digest(const EVP_MD *md, const uint8_t *data, size_t len, uint8_t *out, unsigned *out_len)
{
    if (EVP_Digest(data, len, out, out_len, md, NULL) != 1)
        return ck_error_set_ssl(CK_ERR_CRYPTO, "PKINIT: %s digest failed", EVP_MD_get0_name(md));
    return 0;
}

/* Re-sets the current error context with a prefix, keeping the code (and the Kerberos code). */
static int
prefix_error(int rc, const char *prefix)
{
    char buf[512];

    ck_strlcpy(buf, ck_error_context(), sizeof(buf));
    return ck_error_set(rc, "%s: %s", prefix, buf[0] != '\0' ? buf : ck_strerror(rc));
}

static int
octets_dup(ASN1_OCTET_STRING **dst, const ASN1_OCTET_STRING *src)
{
    ASN1_OCTET_STRING_free(*dst);
    *dst = NULL;
    if (src == NULL)
        return 0;
    if ((*dst = ASN1_OCTET_STRING_dup(src)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "PKINIT: out of memory");
    return 0;
}

const char *
ck_pkinit_client_mode_name(const ck_pkinit_client_info *info)
{
    static const char *const dh[CK_PKINIT_GROUP_COUNT + 1] = {
        "DH", "DH modp2048", "DH modp3072", "DH modp4096", "ECDH P-256", "ECDH P-384",
    };

    if (info == NULL)
        return "PKINIT";
    if (info->packetcable)
        return "PacketCable RSA";
    if (info->kx == CK_PKINIT_KX_RSA)
        return "RSA";
    if ((int)info->group < 0 || info->group > CK_PKINIT_GROUP_COUNT)
        return "DH";
    return dh[info->group];
}

int
ck_pkinit_client_principal(X509 *cert, const char *realm, char **out)
{
    ck_principal **names = NULL;
    size_t n = 0;
    int rc;

    if (out == NULL)
        return ck_error_set(CK_ERR_INVAL, "PKINIT: no output");
    *out = NULL;
    if (cert == NULL || realm == NULL || realm[0] == '\0')
        return ck_error_set(CK_ERR_INVAL, "PKINIT: bad arguments");
    if ((rc = ck_pkinit_cert_san_principals(cert, &names, &n)) != 0)
        return rc;
    rc = ck_error_set(CK_ERR_NOTFOUND, "the certificate names no principal (id-pkinit-san) in "
                      "realm %s", realm);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(names[i]->realm, realm) == 0) {
            ck_error_clear();
            rc = ck_principal_unparse(names[i], 0, out);
            break;
        }
    }
    ck_pkinit_principals_free(names, n);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Requests.
 */

static int
add_algorithms(STACK_OF(X509_ALGOR) **out)
{
    STACK_OF(X509_ALGOR) *sk = sk_X509_ALGOR_new_null();

    if (sk == NULL)
        return ck_error_set(CK_ERR_NOMEM, "supportedCMSTypes");
    for (size_t i = 0; i < sizeof(offered_cms_types) / sizeof(offered_cms_types[0]); i++) {
        X509_ALGOR *a = X509_ALGOR_new();
        /* Parameters absent, as MIT writes its des-ede3-cbc entry. */
        if (a == NULL ||
            !X509_ALGOR_set0(a, OBJ_nid2obj(offered_cms_types[i]), V_ASN1_UNDEF, NULL) ||
            !sk_X509_ALGOR_push(sk, a)) {
            X509_ALGOR_free(a);
            sk_X509_ALGOR_pop_free(sk, X509_ALGOR_free);
            return ck_error_set(CK_ERR_NOMEM, "supportedCMSTypes");
        }
    }
    *out = sk;
    return 0;
}

static int
add_kdfs(STACK_OF(CK_KDF_ALGORITHM_ID) **out)
{
    STACK_OF(CK_KDF_ALGORITHM_ID) *sk = sk_CK_KDF_ALGORITHM_ID_new_null();
    int rc;

    if (sk == NULL)
        return ck_error_set(CK_ERR_NOMEM, "supportedKDFs");
    for (size_t i = 0; i < sizeof(offered_kdfs) / sizeof(offered_kdfs[0]); i++) {
        CK_KDF_ALGORITHM_ID *id = NULL;
        if ((rc = ck_pkinit_kdf_id_set(&id, offered_kdfs[i])) != 0 ||
            !sk_CK_KDF_ALGORITHM_ID_push(sk, id)) {
            CK_KDF_ALGORITHM_ID_free(id);
            sk_CK_KDF_ALGORITHM_ID_pop_free(sk, CK_KDF_ALGORITHM_ID_free);
            return rc != 0 ? rc : ck_error_set(CK_ERR_NOMEM, "supportedKDFs");
        }
    }
    *out = sk;
    return 0;
}

/* cusec, ctime and nonce of a PKAuthenticator (both forms have the same three fields). */
static int
set_authenticator_time(int32_t *cusec, ASN1_GENERALIZEDTIME **ctime, ASN1_INTEGER **nonce,
                       uint32_t req_nonce)
{
    int64_t sec;
    int32_t usec;
    int rc;

    ck_now(&sec, &usec);
    *cusec = usec;
    if ((rc = ck_asn1_time_set(ctime, sec)) != 0 || (rc = ck_asn1_nonce_set(nonce, req_nonce)) != 0)
        return rc;
    return 0;
}

/* The RFC 4556 AuthPack for req (DER in *der). */
static int
build_auth_pack(ck_pkinit_client_ctx *c, const CK_KDC_REQ *req, uint8_t **der, size_t *len)
{
    CK_AUTH_PACK *ap = NULL;
    CK_PK_AUTHENTICATOR *pa;
    const uint8_t *body, *p;
    size_t body_len;
    uint8_t *spki = NULL, md[EVP_MAX_MD_SIZE];
    size_t spki_len = 0;
    unsigned md_len = 0;
    uint32_t nonce;
    int rc;

    if ((rc = ck_asn1_kdc_req_body_der(req, &body, &body_len)) != 0 ||
        (rc = ck_asn1_nonce_get(req->req_body->nonce, &nonce)) != 0)
        return rc;
    if ((ap = CK_AUTH_PACK_new()) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "AuthPack");
    pa = ap->pk_authenticator;
    if ((rc = set_authenticator_time(&pa->cusec, &pa->ctime, &pa->nonce, nonce)) != 0 ||
        (rc = digest(EVP_sha1(), body, body_len, md, &md_len)) != 0 ||
        (rc = ck_asn1_octets_set(&pa->pa_checksum, md, md_len)) != 0)
        goto out;
    if (c->freshness != NULL && (pa->freshness_token = ASN1_OCTET_STRING_dup(c->freshness)) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "AuthPack");
        goto out;
    }
    if (!c->p->no_pa_checksum2) {
        /* RFC 8636 §4: the same binding with a digest the KDC can require instead of SHA-1. */
        if ((pa->pa_checksum2 = CK_PA_CHECKSUM2_new()) == NULL) {
            rc = ck_error_set(CK_ERR_NOMEM, "AuthPack");
            goto out;
        }
        if ((rc = digest(EVP_sha256(), body, body_len, md, &md_len)) != 0 ||
            (rc = ck_asn1_octets_set(&pa->pa_checksum2->checksum, md, md_len)) != 0)
            goto out;
        if (!X509_ALGOR_set0(pa->pa_checksum2->algorithm_identifier, OBJ_nid2obj(NID_sha256),
                             V_ASN1_UNDEF, NULL)) {
            rc = ck_error_set(CK_ERR_NOMEM, "AuthPack");
            goto out;
        }
    }
    if (c->p->kx == CK_PKINIT_KX_DH) {
        ck_pkinit_dh_free(c->dh);
        c->dh = NULL;
        /* A fresh key for every request: the reply is bound to the key this request carries. */
        if ((rc = ck_pkinit_dh_generate(c->group, &c->dh)) != 0 ||
            (rc = ck_pkinit_dh_spki(c->dh, &spki, &spki_len)) != 0)
            goto out;
        p = spki;
        if ((ap->client_public_value = d2i_X509_PUBKEY(NULL, &p, (long)spki_len)) == NULL) {
            rc = ck_error_set_ssl(CK_ERR_CRYPTO, "AuthPack: clientPublicValue");
            goto out;
        }
        if (c->p->client_dh_nonce &&
            ((rc = ck_random_bytes(c->dh_nonce, sizeof(c->dh_nonce))) != 0 ||
             (rc = ck_asn1_octets_set(&ap->client_dh_nonce, c->dh_nonce, sizeof(c->dh_nonce))) != 0))
            goto out;
    }
    if ((rc = add_algorithms(&ap->supported_cms_types)) != 0 ||
        (rc = add_kdfs(&ap->supported_kdfs)) != 0)
        goto out;
    rc = ck_asn1_auth_pack_encode(ap, der, len);
out:
    free(spki);
    CK_AUTH_PACK_free(ap);
    return rc;
}

/* PA-PK-AS-REQ (16) for req. */
static int
add_pa_pk_as_req(ck_pkinit_client_ctx *c, CK_KDC_REQ *req)
{
    CK_PA_PK_AS_REQ_MSG *pk = NULL;
    uint8_t *ap = NULL, *ci = NULL, *der = NULL;
    size_t ap_len = 0, ci_len = 0, der_len = 0;
    int rc;

    if ((rc = build_auth_pack(c, req, &ap, &ap_len)) != 0 ||
        (rc = ck_pkinit_cms_sign(c->p->identity, CK_PKINIT_CT_AUTH_DATA, ap, ap_len, 0, &ci,
                                 &ci_len)) != 0)
        goto out;
    if ((pk = CK_PA_PK_AS_REQ_MSG_new()) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "PA-PK-AS-REQ");
        goto out;
    }
    if ((rc = ck_asn1_octets_set(&pk->signed_auth_pack, ci, ci_len)) != 0 ||
        (rc = ck_asn1_pa_pk_as_req_encode(pk, &der, &der_len)) != 0 ||
        (rc = ck_asn1_padata_add(&req->padata, CK_PA_PK_AS_REQ, der, der_len)) != 0)
        goto out;
out:
    ck_asn1_free_der(ap, ap_len);
    ck_asn1_free_der(der, der_len);
    free(ci);
    CK_PA_PK_AS_REQ_MSG_free(pk);
    return rc;
}

/* PA-PK-AS-REQ-OLD (14) in the PacketCable draft form, and PA-PROV-SRV-LOCATION (-1). */
static int
add_pa_pk_as_req_pktc(ck_pkinit_client_ctx *c, CK_KDC_REQ *req)
{
    CK_AUTH_PACK_PKTC *ap = NULL;
    CK_PK_AUTHENTICATOR_PKTC *pa;
    CK_PA_PK_AS_REQ_DRAFT9 *pk = NULL;
    ASN1_GENERALSTRING *prov = NULL;
    const uint8_t *body;
    size_t body_len;
    uint8_t *apd = NULL, *ci = NULL, *der = NULL, *pd = NULL, md[EVP_MAX_MD_SIZE];
    size_t ap_len = 0, ci_len = 0, der_len = 0, pd_len = 0;
    unsigned md_len = 0;
    uint32_t nonce;
    int rc;

    if ((rc = ck_asn1_kdc_req_body_der(req, &body, &body_len)) != 0 ||
        (rc = ck_asn1_nonce_get(req->req_body->nonce, &nonce)) != 0)
        return rc;
    if ((ap = CK_AUTH_PACK_PKTC_new()) == NULL || (pk = CK_PA_PK_AS_REQ_DRAFT9_new()) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "PA-PK-AS-REQ-OLD");
        goto out;
    }
    pa = ap->pk_authenticator;
    /* PROTOCOL-NOTES §3.2: paChecksum is a Kerberos Checksum, rsa-md5 over the DER req-body. */
    if ((rc = set_authenticator_time(&pa->cusec, &pa->ctime, &pa->nonce, nonce)) != 0 ||
        (rc = digest(EVP_md5(), body, body_len, md, &md_len)) != 0)
        goto out;
    if ((pa->pa_checksum = CK_CHECKSUM_new()) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "PA-PK-AS-REQ-OLD");
        goto out;
    }
    if ((rc = ck_asn1_checksum_set(pa->pa_checksum, CK_CKSUMTYPE_RSA_MD5, md, md_len)) != 0 ||
        (rc = ck_asn1_auth_pack_pktc_encode(ap, &apd, &ap_len)) != 0 ||
        (rc = ck_pkinit_cms_sign(c->p->identity, CK_PKINIT_CT_AUTH_DATA, apd, ap_len,
                                 CK_PKINIT_SIGN_PACKETCABLE, &ci, &ci_len)) != 0)
        goto out;
    /* EXPLICIT tags around the ContentInfo: the form of the only public PacketCable client
     * (pkinit_asn1.h, [H03]); the draft decoders take both forms. */
    pk->form = CK_PKINIT_FORM_EXPLICIT;
    if ((rc = ck_asn1_octets_set(&pk->signed_auth_pack, ci, ci_len)) != 0 ||
        (rc = ck_asn1_pa_pk_as_req_draft9_encode(pk, &der, &der_len)) != 0 ||
        (rc = ck_asn1_padata_add(&req->padata, CK_PA_PK_AS_REQ_OLD, der, der_len)) != 0)
        goto out;
    if (c->p->prov_server != NULL) {
        if ((rc = ck_asn1_kstring_set(&prov, c->p->prov_server)) != 0 ||
            (rc = ck_asn1_prov_srv_location_encode(prov, &pd, &pd_len)) != 0 ||
            (rc = ck_asn1_padata_add(&req->padata, CK_PA_PROV_SRV_LOCATION, pd, pd_len)) != 0)
            goto out;
    }
out:
    ck_asn1_free_der(apd, ap_len);
    ck_asn1_free_der(der, der_len);
    ck_asn1_free_der(pd, pd_len);
    free(ci);
    ASN1_GENERALSTRING_free(prov);
    CK_PA_PK_AS_REQ_DRAFT9_free(pk);
    CK_AUTH_PACK_PKTC_free(ap);
    return rc;
}

static int
mech_add_padata(void *ctx, CK_KDC_REQ *req, int round)
{
    ck_pkinit_client_ctx *c = ctx;
    int rc;

    c->info.requests = round + 1;
    c->pk_sent = false;
    if (c->p->packetcable) {
        if ((rc = add_pa_pk_as_req_pktc(c, req)) != 0)
            return prefix_error(rc, "PKINIT request");
        c->pk_sent = true;
        return 0;
    }
    if (c->cookie != NULL &&
        (rc = ck_asn1_padata_add(&req->padata, CK_PA_FX_COOKIE, ASN1_STRING_get0_data(c->cookie),
                                 (size_t)ASN1_STRING_length(c->cookie))) != 0)
        return rc;
    if (c->pk_next) {
        if ((rc = add_pa_pk_as_req(c, req)) != 0)
            return prefix_error(rc, "PKINIT request");
        c->pk_sent = true;
        c->info.freshness = c->freshness != NULL;
        c->info.group = c->group;
    }
    /* RFC 8070 §4: an empty PA-AS-FRESHNESS asks the KDC for a token. */
    return ck_asn1_padata_add(&req->padata, CK_PA_AS_FRESHNESS, NULL, 0);
}

/* ---------------------------------------------------------------------------------------------
 * KRB-ERRORs.
 */

/* The group of an AlgorithmIdentifier from TD-DH-PARAMETERS, CK_PKINIT_GROUP_NONE if not one of
 * ours. Compared by DER with our own encoding (MIT's is byte-identical). */
static ck_pkinit_group
group_of(const X509_ALGOR *alg)
{
    uint8_t *a = NULL;
    int alen = i2d_X509_ALGOR(alg, &a);
    ck_pkinit_group found = CK_PKINIT_GROUP_NONE;

    for (int g = 1; alen > 0 && g <= CK_PKINIT_GROUP_COUNT && found == CK_PKINIT_GROUP_NONE; g++) {
        X509_ALGOR *ours = NULL;
        uint8_t *b = NULL;
        int blen;
        if (ck_pkinit_group_algorithm((ck_pkinit_group)g, &ours) != 0) {
            ck_error_clear();
            continue;
        }
        blen = i2d_X509_ALGOR(ours, &b);
        if (blen == alen && memcmp(a, b, (size_t)alen) == 0)
            found = (ck_pkinit_group)g;
        OPENSSL_free(b);
        X509_ALGOR_free(ours);
    }
    OPENSSL_free(a);
    return found;
}

/* KDC_ERR_DH_KEY_PARAMETERS_NOT_ACCEPTED: the first group the KDC lists that we implement. */
static int
pick_kdc_group(ck_pkinit_client_ctx *c, const CK_KRB_ERROR_MSG *err)
{
    CK_TYPED_DATA *td = NULL;
    CK_ALGORITHM_IDENTIFIERS *algs = NULL;
    const CK_TYPED_DATA_ENTRY *e, *ck;
    ck_pkinit_group g = CK_PKINIT_GROUP_NONE;
    int rc;

    if (err->e_data == NULL ||
        ck_asn1_typed_data_decode(ASN1_STRING_get0_data(err->e_data),
                                  (size_t)ASN1_STRING_length(err->e_data), &td) != 0 ||
        (e = ck_pkinit_typed_data_find(td, CK_TD_DH_PARAMETERS)) == NULL ||
        e->data_value == NULL ||
        ck_asn1_td_dh_parameters_decode(ASN1_STRING_get0_data(e->data_value),
                                        (size_t)ASN1_STRING_length(e->data_value), &algs) != 0) {
        rc = ck_error_set(CK_ERR_KRB, "the KDC refuses DH group %s and names no other "
                          "(no usable TD-DH-PARAMETERS)", ck_pkinit_group_name(c->group));
        goto out;
    }
    for (int i = 0; i < sk_X509_ALGOR_num(algs) && g == CK_PKINIT_GROUP_NONE; i++) {
        ck_pkinit_group k = group_of(sk_X509_ALGOR_value(algs, i));
        if (k != c->group)
            g = k;
    }
    if (g == CK_PKINIT_GROUP_NONE) {
        rc = ck_error_set(CK_ERR_KRB, "the KDC refuses DH group %s and offers none we implement",
                          ck_pkinit_group_name(c->group));
        goto out;
    }
    c->group = g;
    /* MIT puts its PA-FX-COOKIE into the TYPED-DATA under the padata number. */
    ck = ck_pkinit_typed_data_find(td, CK_PA_FX_COOKIE);
    rc = octets_dup(&c->cookie, ck != NULL ? ck->data_value : NULL);
out:
    CK_ALGORITHM_IDENTIFIERS_free(algs);
    CK_TYPED_DATA_free(td);
    if (rc != 0)
        ck_error_set_krb_code(err->error_code);
    return rc;
}

static int
on_error(ck_pkinit_client_ctx *c, const CK_KRB_ERROR_MSG *err)
{
    CK_METHOD_DATA *md = NULL;
    const CK_PA_DATA *tok = NULL, *ck = NULL;
    int code = err->error_code, rc;
    char krb[256]; /* "KRB-ERROR n (name): e-text" as ck_client_krb_error put it */

    ck_strlcpy(krb, ck_error_context(), sizeof(krb));

    if (c->p->packetcable)
        return prefix_error(CK_ERR_KRB, code == CK_KDC_ERR_PREAUTH_REQUIRED ||
                                                code == CK_KDC_ERR_PADATA_TYPE_NOSUPP
                                            ? "PKINIT: the KDC does not accept the PacketCable "
                                              "form (PA-PK-AS-REQ-OLD)"
                                            : "PKINIT refused by the KDC");
    if (!c->pk_sent && code != CK_KDC_ERR_PREAUTH_REQUIRED)
        return prefix_error(CK_ERR_KRB, "PKINIT");
    if (err->e_data != NULL &&
        (code == CK_KDC_ERR_PREAUTH_REQUIRED || code == CK_KDC_ERR_PREAUTH_EXPIRED ||
         code == CK_KDC_ERR_PREAUTH_FAILED)) {
        if (ck_asn1_method_data_decode(ASN1_STRING_get0_data(err->e_data),
                                       (size_t)ASN1_STRING_length(err->e_data), &md) != 0)
            md = NULL; /* PKINIT errors carry TYPED-DATA, which need not decode as METHOD-DATA */
        ck_error_clear();
        tok = ck_asn1_padata_find(md, CK_PA_AS_FRESHNESS);
        ck = ck_asn1_padata_find(md, CK_PA_FX_COOKIE);
        if (tok != NULL && ASN1_STRING_length(tok->padata_value) == 0)
            tok = NULL;
    }
    if (!c->pk_sent) {
        /* The first answer: the KDC wants pre-authentication. */
        if (md == NULL || ck_asn1_padata_find(md, CK_PA_PK_AS_REQ) == NULL) {
            CK_METHOD_DATA_free(md);
            ck_error_set_krb_code(code);
            return ck_error_set(CK_ERR_KRB, "PKINIT: the KDC requires pre-authentication but "
                                "does not offer PKINIT (PA-PK-AS-REQ) for this principal");
        }
        rc = octets_dup(&c->freshness, tok != NULL ? tok->padata_value : NULL);
        if (rc == 0)
            rc = octets_dup(&c->cookie, ck != NULL ? ck->padata_value : NULL);
        CK_METHOD_DATA_free(md);
        c->pk_next = true;
        return rc;
    }
    /* PKINIT was refused. A stale or missing freshness token is worth one more request when the
     * KDC hands out another one (RFC 8070 §4); a DH group the KDC refuses, one with its group. */
    if (tok != NULL && !c->fresh_retried &&
        (c->freshness == NULL || ASN1_OCTET_STRING_cmp(c->freshness, tok->padata_value) != 0) &&
        (code == CK_KDC_ERR_PREAUTH_REQUIRED || code == CK_KDC_ERR_PREAUTH_EXPIRED ||
         code == CK_KDC_ERR_PREAUTH_FAILED)) {
        c->fresh_retried = true;
        rc = octets_dup(&c->freshness, tok->padata_value);
        if (rc == 0 && ck != NULL)
            rc = octets_dup(&c->cookie, ck->padata_value);
        CK_METHOD_DATA_free(md);
        return rc;
    }
    CK_METHOD_DATA_free(md);
    if (code == CK_KDC_ERR_DH_KEY_PARAMETERS_NOT_ACCEPTED && c->p->kx == CK_PKINIT_KX_DH &&
        !c->info.group_retry) {
        if ((rc = pick_kdc_group(c, err)) != 0)
            return prefix_error(rc, "PKINIT");
        c->info.group_retry = true;
        return 0;
    }
    if (code == CK_KDC_ERR_PREAUTH_REQUIRED)
        return ck_error_set(CK_ERR_KRB, "PKINIT: the KDC did not accept the PKINIT "
                            "pre-authentication: %s", krb);
    return ck_error_set(CK_ERR_KRB, "PKINIT refused by the KDC: %s", krb);
}

static int
mech_on_error(void *ctx, const CK_KRB_ERROR_MSG *err, int round)
{
    int rc;

    (void)round;
    rc = on_error(ctx, err);
    /* Decoding the e-data may have cleared the context: the caller reads the KDC's code. */
    if (rc == CK_ERR_KRB)
        ck_error_set_krb_code(err->error_code);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Replies.
 */

/* Validates the KDC's certificate (see pkinit_client.h): chain to the anchors with KPKdc, name. */
static int
check_kdc_signer(const ck_pkinit_client_ctx *c, const ck_pkinit_signed *s, const char *realm)
{
    STACK_OF(X509) *untrusted = NULL;
    const STACK_OF(X509) *own = c->p->identity->chain;
    ck_pkinit_chain_result res;
    int rc;

    /* The KDC's own certificates first, then ours (a client of the same CA holds it). */
    if ((untrusted = sk_X509_dup(s->certs)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "KDC certificate");
    for (int i = 0; own != NULL && i < sk_X509_num(own) &&
                    sk_X509_num(untrusted) < CK_PKINIT_MAX_CERTS; i++) {
        if (!sk_X509_push(untrusted, sk_X509_value(own, i))) {
            sk_X509_free(untrusted);
            return ck_error_set(CK_ERR_NOMEM, "KDC certificate");
        }
    }
    rc = ck_pkinit_verify_chain(c->p->anchors, s->signer, untrusted, now_of(c),
                                CK_PKINIT_PURPOSE_KDC, &res);
    sk_X509_free(untrusted);
    if (rc != 0) {
        if (res.reason == CK_PKINIT_CERT_INTERNAL)
            return rc;
        return prefix_error(CK_ERR_POLICY, res.reason == CK_PKINIT_CERT_BAD_EKU
                                               ? "KDC certificate refused (EKU)"
                                               : "KDC certificate not trusted");
    }
    if ((rc = ck_pkinit_kdc_cert_match_realm(s->signer, realm)) == 0)
        return 0;
    if (rc != CK_ERR_NOTFOUND)
        return prefix_error(rc, "KDC certificate");
    if (c->p->kdc_hostname != NULL &&
        X509_check_host(s->signer, c->p->kdc_hostname, 0,
                        X509_CHECK_FLAG_NEVER_CHECK_SUBJECT | X509_CHECK_FLAG_NO_WILDCARDS,
                        NULL) == 1) {
        ck_error_clear();
        return 0;
    }
    if (c->p->kdc_hostname != NULL)
        return ck_error_set(CK_ERR_POLICY, "KDC certificate names neither krbtgt/%s@%s nor the "
                            "host %s", realm, realm, c->p->kdc_hostname);
    return ck_error_set(CK_ERR_POLICY, "KDC certificate does not name krbtgt/%s@%s "
                        "(id-pkinit-san)", realm, realm);
}

/* Verifies a KDC SignedData of type ctype and its signer; *out is the verified content. */
static int
verify_kdc_signed(const ck_pkinit_client_ctx *c, const uint8_t *der, size_t len,
                  ck_pkinit_ctype ctype, const char *realm, ck_pkinit_signed **out)
{
    unsigned flags = c->p->packetcable ? CK_PKINIT_VERIFY_ALLOW_SHA1 : 0;
    int rc;

    *out = NULL;
    if ((rc = ck_pkinit_cms_verify(der, len, ctype, flags, NULL, out)) != 0)
        return prefix_error(rc, "KDC signature");
    if ((rc = check_kdc_signer(c, *out, realm)) != 0) {
        ck_pkinit_signed_free(*out);
        *out = NULL;
    }
    return rc;
}

static bool
kdf_offered(int kdf)
{
    for (size_t i = 0; i < sizeof(offered_kdfs) / sizeof(offered_kdfs[0]); i++) {
        if (offered_kdfs[i] == kdf)
            return true;
    }
    return false;
}

/* dhInfo: KDCDHKeyInfo signed by the KDC, Z, then the KDF. */
static int
reply_dh(ck_pkinit_client_ctx *c, const CK_KDC_REQ *req, const uint8_t *as_req, size_t as_req_len,
         const CK_DH_REP_INFO *dh, const ASN1_OCTET_STRING *pk_as_rep, int32_t etype, ck_key *key)
{
    const CK_KDC_REQ_BODY *b = req->req_body;
    const char *realm = ck_asn1_kstring_get(b->realm);
    ck_pkinit_signed *s = NULL;
    CK_KDC_DH_KEY_INFO *ki = NULL;
    uint8_t *z = NULL;
    size_t z_len = 0;
    uint32_t want, got;
    int kdf = 0, rc;

    if (c->dh == NULL)
        return ck_error_set(CK_ERR_PROTO, "PA-PK-AS-REP: Diffie-Hellman reply to an RSA request");
    if ((rc = verify_kdc_signed(c, ASN1_STRING_get0_data(dh->dh_signed_data),
                                (size_t)ASN1_STRING_length(dh->dh_signed_data),
                                CK_PKINIT_CT_DHKEY_DATA, realm, &s)) != 0)
        goto out;
    if ((rc = ck_asn1_kdc_dh_key_info_decode(s->content, s->content_len, &ki)) != 0) {
        rc = prefix_error(rc, "KDCDHKeyInfo");
        goto out;
    }
    if ((rc = ck_asn1_nonce_get(b->nonce, &want)) != 0 ||
        (rc = ck_asn1_nonce_get(ki->nonce, &got)) != 0)
        goto out;
    /* A KDC that reuses its DH key sends nonce 0 with serverDHNonce, which only a request with
     * clientDHNonce allows (RFC 4556 §3.2.3.1). */
    if (dh->server_dh_nonce != NULL) {
        int64_t exp;
        if (!c->p->client_dh_nonce) {
            rc = ck_error_set(CK_ERR_PROTO, "PA-PK-AS-REP: serverDHNonce without our "
                              "clientDHNonce");
            goto out;
        }
        /* RFC 4556 §3.2.3.1: nonce 0 with a reused key; the clientDHNonce in the key
         * derivation binds the reply to this request. */
        if (got != 0 && got != want) {
            ck_error_set_krb_code(CK_KRB_AP_ERR_MODIFIED);
            rc = ck_error_set(CK_ERR_INTEGRITY, "KDCDHKeyInfo: nonce %u is neither 0 nor the "
                              "request's %u (KRB_AP_ERR_MODIFIED)", got, want);
            goto out;
        }
        if (ki->dh_key_expiration == NULL ||
            ck_asn1_time_get(ki->dh_key_expiration, &exp) != 0 || exp <= now_of(c)) {
            rc = ck_error_set(CK_ERR_PROTO, "KDCDHKeyInfo: reused DH key without a valid "
                              "dhKeyExpiration");
            goto out;
        }
    } else if (got != want) {
        ck_error_set_krb_code(CK_KRB_AP_ERR_MODIFIED);
        rc = ck_error_set(CK_ERR_INTEGRITY, "KDCDHKeyInfo: nonce %u is not the request's %u "
                          "(KRB_AP_ERR_MODIFIED)", got, want);
        goto out;
    }
    if ((rc = ck_pkinit_dh_client_derive(c->dh, ASN1_STRING_get0_data(ki->subject_public_key),
                                         (size_t)ASN1_STRING_length(ki->subject_public_key), &z,
                                         &z_len)) != 0) {
        rc = prefix_error(rc, "KDC DH public value");
        goto out;
    }
    if (dh->kdf != NULL) {
        if ((rc = ck_pkinit_kdf_id_get(dh->kdf, &kdf)) != 0 || !kdf_offered(kdf)) {
            rc = ck_error_set(CK_ERR_PROTO, "PA-PK-AS-REP: the KDC chose a KDF we did not offer");
            goto out;
        }
        rc = ck_pkinit_kdf(kdf, z, z_len, b->cname, realm, b->sname, realm, etype, as_req,
                           as_req_len, ASN1_STRING_get0_data(pk_as_rep),
                           (size_t)ASN1_STRING_length(pk_as_rep), key);
    } else if (dh->server_dh_nonce != NULL) {
        rc = ck_pkinit_octetstring2key(z, z_len, c->dh_nonce, sizeof(c->dh_nonce),
                                       ASN1_STRING_get0_data(dh->server_dh_nonce),
                                       (size_t)ASN1_STRING_length(dh->server_dh_nonce), etype,
                                       key);
    } else {
        rc = ck_pkinit_octetstring2key(z, z_len, NULL, 0, NULL, 0, etype, key);
    }
    if (rc != 0) {
        rc = prefix_error(rc, "PKINIT reply key");
        goto out;
    }
    c->info.kdf = kdf;
out:
    if (z != NULL)
        ck_free_secret(z, z_len);
    CK_KDC_DH_KEY_INFO_free(ki);
    ck_pkinit_signed_free(s);
    return rc;
}

/* encKeyPack (RFC and draft): decrypts it, verifies the KDC's SignedData of a ReplyKeyPack and
 * returns its content in *content (a secret: ck_free_secret). */
static int
open_enc_key_pack(ck_pkinit_client_ctx *c, const ASN1_OCTET_STRING *ekp, const char *realm,
                  uint8_t **content, size_t *content_len)
{
    ck_pkinit_signed *s = NULL;
    uint8_t *inner = NULL;
    size_t inner_len = 0;
    int rc;

    *content = NULL;
    *content_len = 0;
    if (c->dh != NULL)
        return ck_error_set(CK_ERR_PROTO, "PA-PK-AS-REP: RSA key transport reply to a "
                            "Diffie-Hellman request");
    if ((rc = ck_pkinit_cms_decrypt(c->p->identity, ASN1_STRING_get0_data(ekp),
                                    (size_t)ASN1_STRING_length(ekp), &inner, &inner_len)) != 0)
        return prefix_error(rc, "encKeyPack");
    if ((rc = verify_kdc_signed(c, inner, inner_len, CK_PKINIT_CT_RKEY_DATA, realm, &s)) != 0)
        goto out;
    *content = s->content;
    *content_len = s->content_len;
    s->content = NULL;
    s->content_len = 0;
out:
    ck_free_secret(inner, inner_len);
    ck_pkinit_signed_free(s);
    return rc;
}

static int
reply_key_from_asn1(const CK_ENCRYPTION_KEY *k, int32_t etype, ck_key *key)
{
    if (k->keytype != etype)
        return ck_error_set(CK_ERR_PROTO, "ReplyKeyPack: reply key of enctype %d, the AS-REP is "
                            "encrypted with %d", (int)k->keytype, (int)etype);
    return ck_key_from_asn1(key, k);
}

/* RFC 4556 encKeyPack: ReplyKeyPack { replyKey, asChecksum over the DER AS-REQ, usage 6 }. */
static int
reply_rsa(ck_pkinit_client_ctx *c, const CK_KDC_REQ *req, const uint8_t *as_req,
          size_t as_req_len, const ASN1_OCTET_STRING *ekp, int32_t etype, ck_key *key)
{
    CK_REPLY_KEY_PACK *rkp = NULL;
    uint8_t *content = NULL;
    size_t content_len = 0;
    int32_t ctype;
    int rc;

    if ((rc = open_enc_key_pack(c, ekp, ck_asn1_kstring_get(req->req_body->realm), &content,
                                &content_len)) != 0)
        return rc;
    if ((rc = ck_asn1_reply_key_pack_decode(content, content_len, &rkp)) != 0) {
        rc = prefix_error(rc, "ReplyKeyPack");
        goto out;
    }
    if ((rc = reply_key_from_asn1(rkp->reply_key, etype, key)) != 0)
        goto out;
    ctype = rkp->as_checksum->cksumtype;
    if (!ck_checksum_is_keyed_supported(ctype)) {
        rc = ck_error_set(CK_ERR_PROTO, "ReplyKeyPack: asChecksum type %d is not a keyed "
                          "checksum we support", (int)ctype);
        goto out;
    }
    rc = ck_verify_checksum(key, ctype, CK_KU_TGS_REQ_AUTH_CKSUM, as_req, as_req_len,
                            ASN1_STRING_get0_data(rkp->as_checksum->checksum),
                            (size_t)ASN1_STRING_length(rkp->as_checksum->checksum));
    if (rc != 0) {
        ck_error_set_krb_code(CK_KRB_AP_ERR_MODIFIED);
        rc = ck_error_set(CK_ERR_INTEGRITY, "ReplyKeyPack: asChecksum does not match our AS-REQ "
                          "(KRB_AP_ERR_MODIFIED)");
    }
out:
    if (rc != 0)
        ck_key_clear(key);
    CK_REPLY_KEY_PACK_free(rkp);
    ck_free_secret(content, content_len);
    return rc;
}

/* PacketCable encKeyPack: ReplyKeyPack-draft9 { replyKey, nonce }. */
static int
reply_pktc(ck_pkinit_client_ctx *c, const CK_KDC_REQ *req, const ASN1_OCTET_STRING *ekp,
           int32_t etype, ck_key *key)
{
    CK_REPLY_KEY_PACK_DRAFT9 *rkp = NULL;
    uint8_t *content = NULL;
    size_t content_len = 0;
    uint32_t want, got;
    int rc;

    if ((rc = open_enc_key_pack(c, ekp, ck_asn1_kstring_get(req->req_body->realm), &content,
                                &content_len)) != 0)
        return rc;
    if ((rc = ck_asn1_reply_key_pack_draft9_decode(content, content_len, &rkp)) != 0) {
        rc = prefix_error(rc, "ReplyKeyPack-draft9");
        goto out;
    }
    if ((rc = ck_asn1_nonce_get(req->req_body->nonce, &want)) != 0 ||
        (rc = ck_asn1_nonce_get(rkp->nonce, &got)) != 0)
        goto out;
    if (got != want) {
        /* PROTOCOL-NOTES §3.2: the only binding of the reply to the request in this form. */
        ck_error_set_krb_code(CK_KRB_AP_ERR_MODIFIED);
        rc = ck_error_set(CK_ERR_INTEGRITY, "ReplyKeyPack: nonce %u is not the request's %u "
                          "(KRB_AP_ERR_MODIFIED)", got, want);
        goto out;
    }
    rc = reply_key_from_asn1(rkp->reply_key, etype, key);
out:
    CK_REPLY_KEY_PACK_DRAFT9_free(rkp);
    ck_free_secret(content, content_len);
    return rc;
}

static int
mech_reply_key(void *ctx, const CK_KDC_REQ *req, const uint8_t *as_req, size_t as_req_len,
               const CK_KDC_REP *rep, int round, ck_key *key)
{
    ck_pkinit_client_ctx *c = ctx;
    int32_t want = c->p->packetcable ? CK_PA_PK_AS_REP_OLD : CK_PA_PK_AS_REP;
    int32_t etype = rep->enc_part->etype;
    const CK_PA_DATA *pa = ck_asn1_padata_find(rep->padata, want);
    const ASN1_OCTET_STRING *v;
    int rc;

    (void)round;
    if (pa == NULL) {
        /* A ticket issued without pre-authentication, encrypted in a long-term key we do not
         * have: ask again with PKINIT, which the KDC then uses for the reply key. */
        if (!c->pk_sent && !c->pk_unasked) {
            c->pk_unasked = true;
            c->pk_next = true;
            return CK_AS_MECH_RETRY;
        }
        return ck_error_set(CK_ERR_PROTO, "PKINIT: the KDC answered without %s",
                            c->p->packetcable ? "PA-PK-AS-REP-OLD (15)" : "PA-PK-AS-REP (17)");
    }
    if (!c->pk_sent)
        return ck_error_set(CK_ERR_PROTO, "PKINIT: PA-PK-AS-REP answers a request without "
                            "PKINIT");
    v = pa->padata_value;
    if (c->p->packetcable) {
        CK_PA_PK_AS_REP_DRAFT9 *d = NULL;
        if ((rc = ck_asn1_pa_pk_as_rep_draft9_decode(ASN1_STRING_get0_data(v),
                                                     (size_t)ASN1_STRING_length(v), &d)) != 0)
            return prefix_error(rc, "PA-PK-AS-REP-OLD");
        if (d->type != CK_PA_PK_AS_REP_DRAFT9_ENC_KEY_PACK)
            rc = ck_error_set(CK_ERR_PROTO, "PA-PK-AS-REP-OLD: Diffie-Hellman reply to an RSA "
                              "request");
        else
            rc = reply_pktc(c, req, d->value.enc_key_pack, etype, key);
        CK_PA_PK_AS_REP_DRAFT9_free(d);
    } else {
        CK_PA_PK_AS_REP_MSG *r = NULL;
        if ((rc = ck_asn1_pa_pk_as_rep_decode(ASN1_STRING_get0_data(v),
                                              (size_t)ASN1_STRING_length(v), &r)) != 0)
            return prefix_error(rc, "PA-PK-AS-REP");
        if (r->type == CK_PA_PK_AS_REP_DH_INFO)
            rc = reply_dh(c, req, as_req, as_req_len, r->value.dh_info, v, etype, key);
        else
            rc = reply_rsa(c, req, as_req, as_req_len, r->value.enc_key_pack, etype, key);
        CK_PA_PK_AS_REP_MSG_free(r);
    }
    if (rc == 0)
        c->info.reply_enctype = etype;
    else
        ck_key_clear(key);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Context and entry point.
 */

int
ck_pkinit_client_ctx_new(const ck_pkinit_client_params *p, ck_pkinit_client_ctx **out)
{
    ck_pkinit_client_ctx *c;
    const ck_pki_identity *id;

    if (out == NULL)
        return ck_error_set(CK_ERR_INVAL, "PKINIT: no output");
    *out = NULL;
    if (p == NULL || p->as == NULL || p->identity == NULL || p->anchors == NULL)
        return ck_error_set(CK_ERR_INVAL, "PKINIT: AS parameters, identity and anchors are "
                            "required");
    id = p->identity;
    if (id->key == NULL || id->cert == NULL)
        return ck_error_set(CK_ERR_INVAL, "PKINIT: incomplete identity");
    if (ck_pkinit_anchors_count(p->anchors) == 0)
        return ck_error_set(CK_ERR_INVAL, "PKINIT: no trust anchor for the KDC certificate");
    if (p->kx != CK_PKINIT_KX_DH && p->kx != CK_PKINIT_KX_RSA)
        return ck_error_set(CK_ERR_INVAL, "PKINIT: unknown key exchange %d", (int)p->kx);
    if ((p->packetcable || p->kx == CK_PKINIT_KX_RSA) && !EVP_PKEY_is_a(id->key, "RSA"))
        return ck_error_set(CK_ERR_INVAL, "PKINIT: %s needs an RSA key (the KDC encrypts the "
                            "reply to it)", p->packetcable ? "the PacketCable form"
                                                            : "RSA key transport");
    if (p->packetcable && (p->kx != CK_PKINIT_KX_RSA || p->group != CK_PKINIT_GROUP_NONE ||
                           p->client_dh_nonce))
        return ck_error_set(CK_ERR_INVAL, "PKINIT: the PacketCable form uses RSA key transport "
                            "only");
    if (p->prov_server != NULL && !p->packetcable)
        return ck_error_set(CK_ERR_INVAL, "PKINIT: PA-PROV-SRV-LOCATION is PacketCable only");
    if (p->kx == CK_PKINIT_KX_RSA && (p->group != CK_PKINIT_GROUP_NONE || p->client_dh_nonce))
        return ck_error_set(CK_ERR_INVAL, "PKINIT: a DH group or nonce with RSA key transport");
    if ((int)p->group < 0 || p->group > CK_PKINIT_GROUP_COUNT)
        return ck_error_set(CK_ERR_INVAL, "PKINIT: unknown DH group %d", (int)p->group);
    if ((c = calloc(1, sizeof(*c))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "PKINIT");
    c->p = p;
    c->group = p->kx == CK_PKINIT_KX_DH
                   ? (p->group != CK_PKINIT_GROUP_NONE ? p->group : CK_PKINIT_GROUP_MODP2048)
                   : CK_PKINIT_GROUP_NONE;
    c->pk_next = p->packetcable || p->as->preauth_first;
    c->info.packetcable = p->packetcable;
    c->info.kx = p->packetcable ? CK_PKINIT_KX_RSA : p->kx;
    c->info.group = c->group;
    *out = c;
    return 0;
}

void
ck_pkinit_client_ctx_free(ck_pkinit_client_ctx *c)
{
    if (c == NULL)
        return;
    ck_pkinit_dh_free(c->dh);
    ASN1_OCTET_STRING_free(c->freshness);
    ASN1_OCTET_STRING_free(c->cookie);
    ck_memzero(c, sizeof(*c));
    free(c);
}

void
ck_pkinit_client_mech(ck_pkinit_client_ctx *c, ck_as_mech *mech)
{
    memset(mech, 0, sizeof(*mech));
    mech->ctx = c;
    mech->add_padata = mech_add_padata;
    mech->on_error = mech_on_error;
    mech->reply_key = mech_reply_key;
    mech->max_rounds = PK_MAX_ROUNDS;
}

const ck_pkinit_client_info *
ck_pkinit_client_ctx_info(const ck_pkinit_client_ctx *c)
{
    return &c->info;
}

int
ck_client_as_pkinit(const ck_pkinit_client_params *p, ck_creds **out, ck_pkinit_client_info *info)
{
    ck_pkinit_client_params q;
    ck_as_params as;
    ck_pkinit_client_ctx *c = NULL;
    ck_as_mech mech;
    char *client = NULL;
    int rc;

    if (out == NULL)
        return ck_error_set(CK_ERR_INVAL, "PKINIT: no output");
    *out = NULL;
    if (info != NULL)
        memset(info, 0, sizeof(*info));
    if (p == NULL || p->as == NULL || p->identity == NULL || p->identity->cert == NULL ||
        p->as->realm == NULL)
        return ck_error_set(CK_ERR_INVAL, "PKINIT: AS parameters with a realm and an identity "
                            "are required");
    q = *p;
    as = *p->as;
    q.as = &as;
    if (as.client == NULL) {
        if ((rc = ck_pkinit_client_principal(p->identity->cert, as.realm, &client)) != 0) {
            rc = ck_error_set(rc, "%s: give the principal (device certificates name only their "
                              "MAC)", ck_error_context());
            goto out;
        }
        as.client = client;
    }
    if ((rc = ck_pkinit_client_ctx_new(&q, &c)) != 0)
        goto out;
    ck_pkinit_client_mech(c, &mech);
    rc = ck_client_as_mech(&as, &mech, out);
    if (rc == 0 && info != NULL)
        *info = c->info;
out:
    ck_pkinit_client_ctx_free(c);
    free(client);
    return rc;
}
