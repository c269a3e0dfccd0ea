/* Validated decoding/encoding of the PKINIT types and their helpers. Same pipeline as the
 * Kerberos types (krb5_codec.c): DER pre-scan within the type's cap -> template d2i -> no
 * trailing bytes -> field validation; encoders validate first. The draft PA-PK-AS-REQ/-REP have
 * two wire forms, told apart by their first tag (see pkinit_asn1.h). */
#include <string.h>

#include <openssl/asn1t.h>
#include <openssl/crypto.h>
#include <openssl/objects.h>

#include "cablekey/error.h"
#include "cablekey/pkinit_asn1.h"
#include "cablekey/pkinit_kdf.h"
#include "asn1/asn1_int.h"

#define MAND CK_ASN1_MAND
#define OPT CK_ASN1_OPT

/* ---- limits ------------------------------------------------------------------------------- */

/* Messages that carry CMS (certificate chains). */
static const struct ck_asn1_limits lim_cms = {
    CK_PKINIT_MAX_MSG, CK_PKINIT_MAX_BLOB, CK_PKINIT_MAX_BLOB,
};
/* Small structures: AuthPack, KDCDHKeyInfo, ReplyKeyPack, TD-*, KRB5PrincipalName. */
static const struct ck_asn1_limits lim_small = {
    CK_PKINIT_MAX_SMALL_MSG, CK_PKINIT_MAX_BLOB, CK_PKINIT_MAX_BLOB,
};
/* TYPED-DATA values and KRB5PrincipalName-bearing KDF parts may reach a Kerberos OCTET STRING. */
static const struct ck_asn1_limits lim_typed = {
    CK_PKINIT_MAX_SMALL_MSG, CK_ASN1_MAX_OCTETS, CK_ASN1_MAX_OCTETS,
};
/* KDF inputs: a whole AS-REQ and PA-PK-AS-REP inside. */
static const struct ck_asn1_limits lim_supp_pub = {
    CK_PKINIT_MAX_SUPP_PUB, CK_PKINIT_MAX_SUPP_PUB, CK_PKINIT_MAX_SUPP_PUB,
};
#define MAX_OTHER_INFO (CK_PKINIT_MAX_SUPP_PUB + 2 * CK_ASN1_MAX_OCTETS + 1024)
static const struct ck_asn1_limits lim_other_info = {
    MAX_OTHER_INFO, CK_PKINIT_MAX_SUPP_PUB, CK_PKINIT_MAX_SUPP_PUB,
};
static const struct ck_asn1_limits lim_string = {
    CK_ASN1_MAX_STRING + 8, 0, 0,
};

/* ---- field validators --------------------------------------------------------------------- */

/* A CMS ContentInfo or other DER blob we pass on: present, non-empty, within max, and starting
 * as a SEQUENCE. Its inside is parsed (and bounded again) by OpenSSL's CMS/X.509 code. */
static int
v_der_blob(const ck_vctx *c, const char *field, const ASN1_OCTET_STRING *o, bool opt, size_t max)
{
    int rc;

    if (o == NULL)
        return opt ? 0 : ck_asn1_fail(c, field, "missing");
    if ((rc = ck_asn1_v_octets_max(c, field, o, MAND, max)) != 0)
        return rc;
    if (o->length < 2 || o->data[0] != 0x30)
        return ck_asn1_fail(c, field, "is not a DER SEQUENCE");
    return 0;
}

/* The same blob in the EXPLICIT draft form is written verbatim: it must be exactly one DER TLV
 * (a SEQUENCE), or the encoder would emit garbage. */
static int
v_raw_seq(const ck_vctx *c, const char *field, const ASN1_OCTET_STRING *o, bool opt, size_t max)
{
    int rc;

    if (o == NULL)
        return opt ? 0 : ck_asn1_fail(c, field, "missing");
    if ((rc = v_der_blob(c, field, o, MAND, max)) != 0)
        return rc;
    if (ck_asn1_der_scan_max(o->data, (size_t)o->length, field, max) != 0)
        return ck_asn1_fail(c, field, "is not one DER SEQUENCE");
    return 0;
}

static int
v_nonempty(const ck_vctx *c, const char *field, const ASN1_OCTET_STRING *o)
{
    if (o != NULL && o->length == 0)
        return ck_asn1_fail(c, field, "is empty");
    return 0;
}

static int
v_ext_pid(const ck_vctx *c, const char *field, const CK_EXTERNAL_PRINCIPAL_IDENTIFIER *e)
{
    int rc;

    if (e == NULL)
        return ck_asn1_fail(c, field, "has a NULL entry");
    if ((rc = ck_asn1_v_octets(c, field, e->subject_name, OPT)) != 0 ||
        (rc = ck_asn1_v_octets(c, field, e->issuer_and_serial_number, OPT)) != 0 ||
        (rc = ck_asn1_v_octets(c, field, e->subject_key_identifier, OPT)) != 0)
        return rc;
    return 0;
}

static int
v_ext_pids(const ck_vctx *c, const char *field, const CK_EXTERNAL_PRINCIPAL_IDENTIFIERS *s,
           bool opt)
{
    int rc;

    if (s == NULL)
        return opt ? 0 : ck_asn1_fail(c, field, "missing");
    if (sk_CK_EXTERNAL_PRINCIPAL_IDENTIFIER_num(s) > CK_PKINIT_MAX_IDS)
        return ck_asn1_fail(c, field, "has too many entries");
    for (int i = 0; i < sk_CK_EXTERNAL_PRINCIPAL_IDENTIFIER_num(s); i++)
        if ((rc = v_ext_pid(c, field, sk_CK_EXTERNAL_PRINCIPAL_IDENTIFIER_value(s, i))) != 0)
            return rc;
    return 0;
}

static int
v_algors(const ck_vctx *c, const char *field, const CK_ALGORITHM_IDENTIFIERS *s, bool opt,
         int min)
{
    int n;

    if (s == NULL)
        return opt ? 0 : ck_asn1_fail(c, field, "missing");
    n = sk_X509_ALGOR_num(s);
    if (n < min || n > CK_PKINIT_MAX_CMS_TYPES)
        return ck_asn1_fail(c, field, "entry count out of range");
    for (int i = 0; i < n; i++) {
        const X509_ALGOR *a = sk_X509_ALGOR_value(s, i);
        if (a == NULL || a->algorithm == NULL)
            return ck_asn1_fail(c, field, "has an empty entry");
    }
    return 0;
}

static int
v_kdf_id(const ck_vctx *c, const char *field, const CK_KDF_ALGORITHM_ID *k, bool opt)
{
    if (k == NULL)
        return opt ? 0 : ck_asn1_fail(c, field, "missing");
    if (k->kdf_id == NULL || OBJ_length(k->kdf_id) == 0)
        return ck_asn1_fail(c, field, "has no kdf-id");
    return 0;
}

static int
v_spki(const ck_vctx *c, const char *field, const X509_PUBKEY *k)
{
    X509_ALGOR *alg = NULL;
    const unsigned char *pk;
    int pklen;

    if (k == NULL)
        return 0;
    if (!X509_PUBKEY_get0_param(NULL, &pk, &pklen, &alg, (X509_PUBKEY *)k) || alg == NULL)
        return ck_asn1_fail(c, field, "is not a SubjectPublicKeyInfo");
    if (pklen < 0 || (size_t)pklen > CK_PKINIT_MAX_DH_PUBLIC)
        return ck_asn1_fail(c, field, "public key too long");
    return 0;
}

static int
v_dh_nonce(const ck_vctx *c, const char *field, const ASN1_OCTET_STRING *o)
{
    int rc;

    if ((rc = ck_asn1_v_octets_max(c, field, o, OPT, CK_PKINIT_MAX_DH_NONCE)) != 0)
        return rc;
    return v_nonempty(c, field, o);
}

static int
v_pk_authenticator(const ck_vctx *c, const CK_PK_AUTHENTICATOR *a)
{
    int rc;

    if (a == NULL)
        return ck_asn1_fail(c, "pkAuthenticator", "missing");
    if ((rc = ck_asn1_v_int32_range(c, "cusec", a->cusec, 0, 999999)) != 0 ||
        (rc = ck_asn1_v_time(c, "ctime", a->ctime, MAND)) != 0 ||
        (rc = ck_asn1_v_uint32ish(c, "nonce", a->nonce, MAND)) != 0 ||
        (rc = ck_asn1_v_octets(c, "paChecksum", a->pa_checksum, OPT)) != 0 ||
        (rc = ck_asn1_v_octets(c, "freshnessToken", a->freshness_token, OPT)) != 0)
        return rc;
    if (a->pa_checksum2 != NULL) {
        if ((rc = ck_asn1_v_octets(c, "paChecksum2.checksum", a->pa_checksum2->checksum,
                                   MAND)) != 0)
            return rc;
        if (a->pa_checksum2->algorithm_identifier == NULL ||
            a->pa_checksum2->algorithm_identifier->algorithm == NULL)
            return ck_asn1_fail(c, "paChecksum2.algorithmIdentifier", "missing");
    }
    return 0;
}

static int
v_auth_pack(const ck_vctx *c, const CK_AUTH_PACK *a)
{
    int rc, n;

    if ((rc = v_pk_authenticator(c, a->pk_authenticator)) != 0 ||
        (rc = v_spki(c, "clientPublicValue", a->client_public_value)) != 0 ||
        (rc = v_algors(c, "supportedCMSTypes", a->supported_cms_types, OPT, 0)) != 0 ||
        (rc = v_dh_nonce(c, "clientDHNonce", a->client_dh_nonce)) != 0)
        return rc;
    if (a->supported_kdfs != NULL) {
        n = sk_CK_KDF_ALGORITHM_ID_num(a->supported_kdfs);
        if (n > CK_PKINIT_MAX_KDFS)
            return ck_asn1_fail(c, "supportedKDFs", "has too many entries");
        for (int i = 0; i < n; i++)
            if ((rc = v_kdf_id(c, "supportedKDFs",
                               sk_CK_KDF_ALGORITHM_ID_value(a->supported_kdfs, i), MAND)) != 0)
                return rc;
    }
    return 0;
}

static int
v_pa_pk_as_req(const ck_vctx *c, const CK_PA_PK_AS_REQ_MSG *r)
{
    int rc;

    if ((rc = v_der_blob(c, "signedAuthPack", r->signed_auth_pack, MAND, CK_PKINIT_MAX_CMS)) != 0 ||
        (rc = v_ext_pids(c, "trustedCertifiers", r->trusted_certifiers, OPT)) != 0 ||
        (rc = ck_asn1_v_octets(c, "kdcPkId", r->kdc_pk_id, OPT)) != 0)
        return rc;
    return 0;
}

static int
v_pa_pk_as_rep(const ck_vctx *c, const CK_PA_PK_AS_REP_MSG *r)
{
    int rc;

    switch (r->type) {
    case CK_PA_PK_AS_REP_DH_INFO:
        if (r->value.dh_info == NULL)
            return ck_asn1_fail(c, "dhInfo", "missing");
        if ((rc = v_der_blob(c, "dhSignedData", r->value.dh_info->dh_signed_data, MAND,
                             CK_PKINIT_MAX_CMS)) != 0 ||
            (rc = v_dh_nonce(c, "serverDHNonce", r->value.dh_info->server_dh_nonce)) != 0 ||
            (rc = v_kdf_id(c, "kdf", r->value.dh_info->kdf, OPT)) != 0)
            return rc;
        return 0;
    case CK_PA_PK_AS_REP_ENC_KEY_PACK:
        return v_der_blob(c, "encKeyPack", r->value.enc_key_pack, MAND, CK_PKINIT_MAX_CMS);
    default:
        return ck_asn1_fail(c, "choice", "is not dhInfo or encKeyPack");
    }
}

static int
v_kdc_dh_key_info(const ck_vctx *c, const CK_KDC_DH_KEY_INFO *k)
{
    const ASN1_BIT_STRING *b = k->subject_public_key;
    int rc;

    if (b == NULL)
        return ck_asn1_fail(c, "subjectPublicKey", "missing");
    if (b->length <= 0 || (size_t)b->length > CK_PKINIT_MAX_DH_PUBLIC)
        return ck_asn1_fail(c, "subjectPublicKey", "length out of range");
    /* A public value is whole octets. When encoding, BITS_LEFT must be set or OpenSSL would trim
     * trailing zero octets off the value. */
    if ((b->flags & ASN1_STRING_FLAG_BITS_LEFT) && (b->flags & 0x07) != 0)
        return ck_asn1_fail(c, "subjectPublicKey", "has unused bits");
    if (c->encoding && !(b->flags & ASN1_STRING_FLAG_BITS_LEFT))
        return ck_asn1_fail(c, "subjectPublicKey", "not set with ck_pkinit_bit_string_set");
    if ((rc = ck_asn1_v_uint32ish(c, "nonce", k->nonce, MAND)) != 0 ||
        (rc = ck_asn1_v_time(c, "dhKeyExpiration", k->dh_key_expiration, OPT)) != 0)
        return rc;
    return 0;
}

static int
v_reply_key_pack(const ck_vctx *c, const CK_REPLY_KEY_PACK *r)
{
    int rc;

    if ((rc = ck_asn1_v_key(c, "replyKey", r->reply_key, MAND)) != 0 ||
        (rc = ck_asn1_v_checksum(c, "asChecksum", r->as_checksum, MAND)) != 0)
        return rc;
    return 0;
}

static int
v_krb5_principal_name(const ck_vctx *c, const CK_KRB5_PRINCIPAL_NAME *k)
{
    int rc;

    if ((rc = ck_asn1_v_kstring(c, "realm", k->realm, MAND)) != 0 ||
        (rc = ck_asn1_v_principal(c, "principalName", k->principal_name, MAND)) != 0)
        return rc;
    return 0;
}

static int
v_supp_pub_info(const ck_vctx *c, const CK_PKINIT_SUPP_PUB_INFO *s)
{
    int rc;

    if ((rc = ck_asn1_v_octets_max(c, "as-REQ", s->as_req, MAND, CK_ASN1_MAX_AS_MSG)) != 0 ||
        (rc = ck_asn1_v_octets_max(c, "pk-as-rep", s->pk_as_rep, MAND, CK_PKINIT_MAX_MSG)) != 0)
        return rc;
    return 0;
}

static int
v_other_info(const ck_vctx *c, const CK_PKINIT_OTHER_INFO *o)
{
    int rc;

    if (o->algorithm_id == NULL || o->algorithm_id->algorithm == NULL)
        return ck_asn1_fail(c, "algorithmID", "missing");
    if ((rc = ck_asn1_v_octets_max(c, "partyUInfo", o->party_u_info, MAND,
                                   CK_ASN1_MAX_OCTETS)) != 0 ||
        (rc = ck_asn1_v_octets_max(c, "partyVInfo", o->party_v_info, MAND,
                                   CK_ASN1_MAX_OCTETS)) != 0 ||
        (rc = ck_asn1_v_octets_max(c, "suppPubInfo", o->supp_pub_info, MAND,
                                   CK_PKINIT_MAX_SUPP_PUB)) != 0 ||
        (rc = ck_asn1_v_octets_max(c, "suppPrivInfo", o->supp_priv_info, OPT,
                                   CK_PKINIT_MAX_BLOB)) != 0)
        return rc;
    return 0;
}

static int
v_typed_data(const ck_vctx *c, const CK_TYPED_DATA *t)
{
    int n, rc;

    n = sk_CK_TYPED_DATA_ENTRY_num(t);
    if (n < 1 || n > CK_PKINIT_MAX_TYPED_DATA)
        return ck_asn1_fail(c, "entries", "count out of range");
    for (int i = 0; i < n; i++) {
        const CK_TYPED_DATA_ENTRY *e = sk_CK_TYPED_DATA_ENTRY_value(t, i);
        if (e == NULL)
            return ck_asn1_fail(c, "entries", "has a NULL entry");
        if ((rc = ck_asn1_v_octets(c, "data-value", e->data_value, OPT)) != 0)
            return rc;
    }
    return 0;
}

/* Draft forms. */

static int
v_form(const ck_vctx *c, int form)
{
    if (form != CK_PKINIT_FORM_IMPLICIT && form != CK_PKINIT_FORM_EXPLICIT)
        return ck_asn1_fail(c, "form", "is not CK_PKINIT_FORM_IMPLICIT/EXPLICIT");
    return 0;
}

/* A CMS blob / IssuerAndSerialNumber of a draft message in the given form. */
static int
v_draft_blob(const ck_vctx *c, const char *field, const ASN1_OCTET_STRING *o, bool opt,
             size_t max, int form)
{
    if (form == CK_PKINIT_FORM_EXPLICIT)
        return v_raw_seq(c, field, o, opt, max);
    return v_der_blob(c, field, o, opt, max);
}

static int
v_pa_pk_as_req_draft9(const ck_vctx *c, const CK_PA_PK_AS_REQ_DRAFT9 *r)
{
    int n, rc;

    if ((rc = v_form(c, r->form)) != 0 ||
        (rc = v_draft_blob(c, "signedAuthPack", r->signed_auth_pack, MAND, CK_PKINIT_MAX_CMS,
                           r->form)) != 0 ||
        (rc = v_draft_blob(c, "kdcCert", r->kdc_cert, OPT, CK_PKINIT_MAX_BLOB, r->form)) != 0 ||
        (rc = v_draft_blob(c, "encryptionCert", r->encryption_cert, OPT, CK_PKINIT_MAX_BLOB,
                           r->form)) != 0)
        return rc;
    if (r->trusted_certifiers != NULL) {
        n = sk_ASN1_TYPE_num(r->trusted_certifiers);
        if (n > CK_PKINIT_MAX_IDS)
            return ck_asn1_fail(c, "trustedCertifiers", "has too many entries");
        for (int i = 0; i < n; i++) {
            const ASN1_TYPE *t = sk_ASN1_TYPE_value(r->trusted_certifiers, i);
            /* TrustedCA is a CHOICE of context-tagged alternatives, kept verbatim (type
             * V_ASN1_OTHER holds the whole TLV). */
            if (t == NULL || t->type != V_ASN1_OTHER || t->value.asn1_string == NULL ||
                t->value.asn1_string->length < 2 ||
                (size_t)t->value.asn1_string->length > CK_PKINIT_MAX_BLOB ||
                (t->value.asn1_string->data[0] & 0xc0) != 0x80)
                return ck_asn1_fail(c, "trustedCertifiers", "entry is not a tagged TrustedCA");
            if (c->encoding && ck_asn1_der_scan_max(t->value.asn1_string->data,
                                                    (size_t)t->value.asn1_string->length,
                                                    "TrustedCA", CK_PKINIT_MAX_BLOB) != 0)
                return ck_asn1_fail(c, "trustedCertifiers", "entry is not one DER TLV");
        }
    }
    return 0;
}

static int
v_pk_authenticator_draft9(const ck_vctx *c, const CK_PK_AUTHENTICATOR_DRAFT9 *a)
{
    int rc;

    if (a == NULL)
        return ck_asn1_fail(c, "pkAuthenticator", "missing");
    if ((rc = ck_asn1_v_principal(c, "kdcName", a->kdc_name, MAND)) != 0 ||
        (rc = ck_asn1_v_kstring(c, "kdcRealm", a->kdc_realm, MAND)) != 0 ||
        (rc = ck_asn1_v_int32_range(c, "cusec", a->cusec, 0, 999999)) != 0 ||
        (rc = ck_asn1_v_time(c, "ctime", a->ctime, MAND)) != 0 ||
        (rc = ck_asn1_v_uint32ish(c, "nonce", a->nonce, MAND)) != 0)
        return rc;
    return 0;
}

static int
v_auth_pack_draft9(const ck_vctx *c, const CK_AUTH_PACK_DRAFT9 *a)
{
    int rc;

    if ((rc = v_pk_authenticator_draft9(c, a->pk_authenticator)) != 0)
        return rc;
    return v_spki(c, "clientPublicValue", a->client_public_value);
}

static int
v_auth_pack_pktc(const ck_vctx *c, const CK_AUTH_PACK_PKTC *a)
{
    const CK_PK_AUTHENTICATOR_PKTC *p = a->pk_authenticator;
    int rc;

    if (p == NULL)
        return ck_asn1_fail(c, "pkAuthenticator", "missing");
    if ((rc = ck_asn1_v_int32_range(c, "cusec", p->cusec, 0, 999999)) != 0 ||
        (rc = ck_asn1_v_time(c, "ctime", p->ctime, MAND)) != 0 ||
        (rc = ck_asn1_v_uint32ish(c, "nonce", p->nonce, MAND)) != 0 ||
        (rc = ck_asn1_v_checksum(c, "paChecksum", p->pa_checksum, OPT)) != 0 ||
        (rc = v_spki(c, "clientPublicValue", a->client_public_value)) != 0 ||
        (rc = v_algors(c, "supportedCMSTypes", a->supported_cms_types, OPT, 0)) != 0 ||
        (rc = v_dh_nonce(c, "clientDHNonce", a->client_dh_nonce)) != 0)
        return rc;
    return 0;
}

static int
v_pa_pk_as_rep_draft9(const ck_vctx *c, const CK_PA_PK_AS_REP_DRAFT9 *r)
{
    int rc;

    if ((rc = v_form(c, r->form)) != 0)
        return rc;
    switch (r->type) {
    case CK_PA_PK_AS_REP_DRAFT9_DH_SIGNED_DATA:
        return v_draft_blob(c, "dhSignedData", r->value.dh_signed_data, MAND, CK_PKINIT_MAX_CMS,
                            r->form);
    case CK_PA_PK_AS_REP_DRAFT9_ENC_KEY_PACK:
        return v_draft_blob(c, "encKeyPack", r->value.enc_key_pack, MAND, CK_PKINIT_MAX_CMS,
                            r->form);
    default:
        return ck_asn1_fail(c, "choice", "is not dhSignedData or encKeyPack");
    }
}

static int
v_reply_key_pack_draft9(const ck_vctx *c, const CK_REPLY_KEY_PACK_DRAFT9 *r)
{
    int rc;

    if ((rc = ck_asn1_v_key(c, "replyKey", r->reply_key, MAND)) != 0 ||
        (rc = ck_asn1_v_uint32ish(c, "nonce", r->nonce, MAND)) != 0)
        return rc;
    return 0;
}

/* ---- codecs ------------------------------------------------------------------------------- */

#define PK_VWRAP(fn, T)                                                                     \
    static int w_##fn(const ck_vctx *c, const void *v, int tag)                             \
    {                                                                                       \
        (void)tag;                                                                          \
        return v_##fn(c, (const T *)v);                                                     \
    }

PK_VWRAP(pa_pk_as_req, CK_PA_PK_AS_REQ_MSG)
PK_VWRAP(auth_pack, CK_AUTH_PACK)
PK_VWRAP(pa_pk_as_rep, CK_PA_PK_AS_REP_MSG)
PK_VWRAP(kdc_dh_key_info, CK_KDC_DH_KEY_INFO)
PK_VWRAP(reply_key_pack, CK_REPLY_KEY_PACK)
PK_VWRAP(krb5_principal_name, CK_KRB5_PRINCIPAL_NAME)
PK_VWRAP(supp_pub_info, CK_PKINIT_SUPP_PUB_INFO)
PK_VWRAP(other_info, CK_PKINIT_OTHER_INFO)
PK_VWRAP(typed_data, CK_TYPED_DATA)
PK_VWRAP(pa_pk_as_req_draft9, CK_PA_PK_AS_REQ_DRAFT9)
PK_VWRAP(auth_pack_draft9, CK_AUTH_PACK_DRAFT9)
PK_VWRAP(auth_pack_pktc, CK_AUTH_PACK_PKTC)
PK_VWRAP(pa_pk_as_rep_draft9, CK_PA_PK_AS_REP_DRAFT9)
PK_VWRAP(reply_key_pack_draft9, CK_REPLY_KEY_PACK_DRAFT9)

static int
w_td_principal_ids(const ck_vctx *c, const void *v, int tag)
{
    (void)tag;
    return v_ext_pids(c, "entries", v, MAND);
}

static int
w_td_dh_parameters(const ck_vctx *c, const void *v, int tag)
{
    (void)tag;
    return v_algors(c, "entries", v, MAND, 1);
}

static int
w_prov_srv_location(const ck_vctx *c, const void *v, int tag)
{
    (void)tag;
    return ck_asn1_v_kstring(c, "value", v, MAND);
}

#define PK_CODEC(name, T, item, label, wfn, lim)                                            \
    int ck_asn1_##name##_decode(const uint8_t *der, size_t len, T **out)                    \
    {                                                                                       \
        void *v = NULL;                                                                     \
        int rc;                                                                             \
        if (out == NULL)                                                                    \
            return ck_error_set(CK_ERR_INVAL, "%s: no output", label);                      \
        rc = ck_asn1_decode_item(der, len, ASN1_ITEM_rptr(item), label, lim, wfn, 0, &v);   \
        *out = v;                                                                           \
        return rc;                                                                          \
    }                                                                                       \
    int ck_asn1_##name##_encode(const T *v, uint8_t **der, size_t *len)                     \
    {                                                                                       \
        return ck_asn1_encode_item(v, ASN1_ITEM_rptr(item), label, lim, wfn, 0, der, len);  \
    }

PK_CODEC(pa_pk_as_req, CK_PA_PK_AS_REQ_MSG, CK_PA_PK_AS_REQ_MSG, "PA-PK-AS-REQ", w_pa_pk_as_req,
         &lim_cms)
PK_CODEC(auth_pack, CK_AUTH_PACK, CK_AUTH_PACK, "AuthPack", w_auth_pack, &lim_small)
PK_CODEC(pa_pk_as_rep, CK_PA_PK_AS_REP_MSG, CK_PA_PK_AS_REP_MSG, "PA-PK-AS-REP", w_pa_pk_as_rep,
         &lim_cms)
PK_CODEC(kdc_dh_key_info, CK_KDC_DH_KEY_INFO, CK_KDC_DH_KEY_INFO, "KDCDHKeyInfo",
         w_kdc_dh_key_info, &lim_small)
PK_CODEC(reply_key_pack, CK_REPLY_KEY_PACK, CK_REPLY_KEY_PACK, "ReplyKeyPack", w_reply_key_pack,
         &lim_small)
PK_CODEC(krb5_principal_name, CK_KRB5_PRINCIPAL_NAME, CK_KRB5_PRINCIPAL_NAME,
         "KRB5PrincipalName", w_krb5_principal_name, &lim_typed)
PK_CODEC(pkinit_supp_pub_info, CK_PKINIT_SUPP_PUB_INFO, CK_PKINIT_SUPP_PUB_INFO,
         "PkinitSuppPubInfo", w_supp_pub_info, &lim_supp_pub)
PK_CODEC(pkinit_other_info, CK_PKINIT_OTHER_INFO, CK_PKINIT_OTHER_INFO, "OtherInfo",
         w_other_info, &lim_other_info)
PK_CODEC(typed_data, CK_TYPED_DATA, CK_TYPED_DATA, "TYPED-DATA", w_typed_data, &lim_typed)
PK_CODEC(td_principal_ids, CK_EXTERNAL_PRINCIPAL_IDENTIFIERS, CK_EXTERNAL_PRINCIPAL_IDENTIFIERS,
         "TD-TRUSTED-CERTIFIERS", w_td_principal_ids, &lim_small)
PK_CODEC(td_dh_parameters, CK_ALGORITHM_IDENTIFIERS, CK_ALGORITHM_IDENTIFIERS,
         "TD-DH-PARAMETERS", w_td_dh_parameters, &lim_small)
PK_CODEC(auth_pack_draft9, CK_AUTH_PACK_DRAFT9, CK_AUTH_PACK_DRAFT9, "AuthPack-draft9",
         w_auth_pack_draft9, &lim_small)
PK_CODEC(auth_pack_pktc, CK_AUTH_PACK_PKTC, CK_AUTH_PACK_PKTC, "AuthPack-PacketCable",
         w_auth_pack_pktc, &lim_small)
PK_CODEC(reply_key_pack_draft9, CK_REPLY_KEY_PACK_DRAFT9, CK_REPLY_KEY_PACK_DRAFT9,
         "ReplyKeyPack-draft9", w_reply_key_pack_draft9, &lim_small)
PK_CODEC(prov_srv_location, ASN1_GENERALSTRING, ASN1_GENERALSTRING, "PA-PROV-SRV-LOCATION",
         w_prov_srv_location, &lim_string)

/* Both draft forms: the first tag inside picks the item (0x80/0x81 IMPLICIT, 0xa0/0xa1
 * EXPLICIT); the item's form reaches the struct and the encoder mirrors it. */
static int
draft_decode(const uint8_t *der, size_t len, bool choice, const ASN1_ITEM *imp,
             const ASN1_ITEM *exp, const char *label, ck_asn1_validate_fn check, void **out)
{
    size_t off = 0;
    uint8_t t;

    if (out == NULL)
        return ck_error_set(CK_ERR_INVAL, "%s: no output", label);
    *out = NULL;
    if (!choice) {
        /* SEQUENCE header; the pre-scan checks it fully. */
        if (der == NULL || len < 3 || der[0] != 0x30)
            return ck_error_set(CK_ERR_DECODE, "%s: not a SEQUENCE", label);
        off = der[1] < 0x80 ? 2 : 2 + (size_t)(der[1] & 0x7f);
        if (off >= len)
            return ck_error_set(CK_ERR_DECODE, "%s: truncated", label);
    } else if (der == NULL || len < 2) {
        return ck_error_set(CK_ERR_DECODE, "%s: truncated", label);
    }
    t = der[off] & ~0x01; /* [0] or [1] */
    if (t != 0x80 && t != 0xa0)
        return ck_error_set(CK_ERR_DECODE, "%s: tag 0x%02x is not [0]%s", label, der[off],
                            choice ? " or [1]" : "");
    if (!choice && der[off] != t)
        return ck_error_set(CK_ERR_DECODE, "%s: signedAuthPack is not [0]", label);
    return ck_asn1_decode_item(der, len, t == 0x80 ? imp : exp, label, &lim_cms, check, 0, out);
}

static int
draft_encode(const void *v, int form, const ASN1_ITEM *imp, const ASN1_ITEM *exp,
             const char *label, ck_asn1_validate_fn check, uint8_t **der, size_t *len)
{
    /* An unknown form is refused by the validator; the item choice only needs to be safe. */
    return ck_asn1_encode_item(v, form == CK_PKINIT_FORM_EXPLICIT ? exp : imp, label, &lim_cms,
                               check, 0, der, len);
}

int
ck_asn1_pa_pk_as_req_draft9_decode(const uint8_t *der, size_t len, CK_PA_PK_AS_REQ_DRAFT9 **out)
{
    void *v = NULL;
    int rc;

    rc = draft_decode(der, len, false, ASN1_ITEM_rptr(CK_PA_PK_AS_REQ_DRAFT9),
                      ASN1_ITEM_rptr(CK_PA_PK_AS_REQ_DRAFT9_EXP), "PA-PK-AS-REQ-draft",
                      w_pa_pk_as_req_draft9, &v);
    if (out != NULL)
        *out = v;
    return rc;
}

int
ck_asn1_pa_pk_as_req_draft9_encode(const CK_PA_PK_AS_REQ_DRAFT9 *v, uint8_t **der, size_t *len)
{
    return draft_encode(v, v != NULL ? v->form : -1, ASN1_ITEM_rptr(CK_PA_PK_AS_REQ_DRAFT9),
                        ASN1_ITEM_rptr(CK_PA_PK_AS_REQ_DRAFT9_EXP), "PA-PK-AS-REQ-draft",
                        w_pa_pk_as_req_draft9, der, len);
}

int
ck_asn1_pa_pk_as_rep_draft9_decode(const uint8_t *der, size_t len, CK_PA_PK_AS_REP_DRAFT9 **out)
{
    void *v = NULL;
    int rc;

    rc = draft_decode(der, len, true, ASN1_ITEM_rptr(CK_PA_PK_AS_REP_DRAFT9),
                      ASN1_ITEM_rptr(CK_PA_PK_AS_REP_DRAFT9_EXP), "PA-PK-AS-REP-draft",
                      w_pa_pk_as_rep_draft9, &v);
    if (out != NULL)
        *out = v;
    return rc;
}

int
ck_asn1_pa_pk_as_rep_draft9_encode(const CK_PA_PK_AS_REP_DRAFT9 *v, uint8_t **der, size_t *len)
{
    return draft_encode(v, v != NULL ? v->form : -1, ASN1_ITEM_rptr(CK_PA_PK_AS_REP_DRAFT9),
                        ASN1_ITEM_rptr(CK_PA_PK_AS_REP_DRAFT9_EXP), "PA-PK-AS-REP-draft",
                        w_pa_pk_as_rep_draft9, der, len);
}
