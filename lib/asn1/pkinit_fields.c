/* PKINIT field helpers: OIDs, KDF identifiers, CHOICE setters, TYPED-DATA. */
#include <string.h>

#include <openssl/asn1t.h>
#include <openssl/objects.h>

#include "cablekey/error.h"
#include "cablekey/pkinit_asn1.h"
#include "cablekey/pkinit_kdf.h"
#include "asn1/asn1_int.h"

/* Content octets of each OID, compared byte for byte: no OBJ_* table lookups (those take a lock
 * and know only some of these OIDs). */
static const struct {
    const char *text;
    uint8_t der[10];
    uint8_t len;
} oids[CK_OID_PKINIT_COUNT] = {
    [CK_OID_PKINIT_AUTH_DATA] = {"1.3.6.1.5.2.3.1", {0x2b, 6, 1, 5, 2, 3, 1}, 7},
    [CK_OID_PKINIT_DHKEY_DATA] = {"1.3.6.1.5.2.3.2", {0x2b, 6, 1, 5, 2, 3, 2}, 7},
    [CK_OID_PKINIT_RKEY_DATA] = {"1.3.6.1.5.2.3.3", {0x2b, 6, 1, 5, 2, 3, 3}, 7},
    [CK_OID_PKINIT_KP_CLIENT_AUTH] = {"1.3.6.1.5.2.3.4", {0x2b, 6, 1, 5, 2, 3, 4}, 7},
    [CK_OID_PKINIT_KP_KDC] = {"1.3.6.1.5.2.3.5", {0x2b, 6, 1, 5, 2, 3, 5}, 7},
    [CK_OID_PKINIT_SAN] = {"1.3.6.1.5.2.2", {0x2b, 6, 1, 5, 2, 2}, 6},
    [CK_OID_PKINIT_KDF_SHA1] = {"1.3.6.1.5.2.3.6.1", {0x2b, 6, 1, 5, 2, 3, 6, 1}, 8},
    [CK_OID_PKINIT_KDF_SHA256] = {"1.3.6.1.5.2.3.6.2", {0x2b, 6, 1, 5, 2, 3, 6, 2}, 8},
    [CK_OID_PKINIT_KDF_SHA512] = {"1.3.6.1.5.2.3.6.3", {0x2b, 6, 1, 5, 2, 3, 6, 3}, 8},
    [CK_OID_PKINIT_KDF_SHA384] = {"1.3.6.1.5.2.3.6.4", {0x2b, 6, 1, 5, 2, 3, 6, 4}, 8},
};

const char *
ck_pkinit_oid_text(ck_pkinit_oid oid)
{
    return ((unsigned)oid < CK_OID_PKINIT_COUNT) ? oids[oid].text : NULL;
}

bool
ck_pkinit_oid_eq(const ASN1_OBJECT *obj, ck_pkinit_oid oid)
{
    if (obj == NULL || (unsigned)oid >= CK_OID_PKINIT_COUNT)
        return false;
    return OBJ_length(obj) == oids[oid].len &&
           memcmp(OBJ_get0_data(obj), oids[oid].der, oids[oid].len) == 0;
}

ASN1_OBJECT *
ck_pkinit_oid_new(ck_pkinit_oid oid)
{
    if ((unsigned)oid >= CK_OID_PKINIT_COUNT)
        return NULL;
    /* no_name = 1: dotted text only, no name lookup. */
    return OBJ_txt2obj(oids[oid].text, 1);
}

static int
kdf_oid(int kdf, ck_pkinit_oid *oid)
{
    switch (kdf) {
    case CK_PKINIT_KDF_SHA1: *oid = CK_OID_PKINIT_KDF_SHA1; return 0;
    case CK_PKINIT_KDF_SHA256: *oid = CK_OID_PKINIT_KDF_SHA256; return 0;
    case CK_PKINIT_KDF_SHA512: *oid = CK_OID_PKINIT_KDF_SHA512; return 0;
    case CK_PKINIT_KDF_SHA384: *oid = CK_OID_PKINIT_KDF_SHA384; return 0;
    default: return ck_error_set(CK_ERR_UNSUPPORTED, "PKINIT KDF %d", kdf);
    }
}

int
ck_pkinit_kdf_id_set(CK_KDF_ALGORITHM_ID **id, int kdf)
{
    CK_KDF_ALGORITHM_ID *n = NULL;
    ASN1_OBJECT *obj;
    ck_pkinit_oid oid = CK_OID_PKINIT_COUNT;
    int rc;

    if (id == NULL)
        return ck_error_set(CK_ERR_INVAL, "KDFAlgorithmId: NULL");
    if ((rc = kdf_oid(kdf, &oid)) != 0)
        return rc;
    if ((obj = ck_pkinit_oid_new(oid)) == NULL)
        return ck_error_set_ssl(CK_ERR_NOMEM, "KDFAlgorithmId");
    if (*id == NULL && (n = CK_KDF_ALGORITHM_ID_new()) == NULL) {
        ASN1_OBJECT_free(obj);
        return ck_error_set(CK_ERR_NOMEM, "KDFAlgorithmId");
    }
    if (n != NULL)
        *id = n;
    ASN1_OBJECT_free((*id)->kdf_id);
    (*id)->kdf_id = obj;
    return 0;
}

int
ck_pkinit_kdf_id_get(const CK_KDF_ALGORITHM_ID *id, int *kdf)
{
    static const int kdfs[] = {CK_PKINIT_KDF_SHA1, CK_PKINIT_KDF_SHA256, CK_PKINIT_KDF_SHA512,
                               CK_PKINIT_KDF_SHA384};
    ck_pkinit_oid oid = CK_OID_PKINIT_COUNT;

    if (id == NULL || kdf == NULL)
        return ck_error_set(CK_ERR_INVAL, "KDFAlgorithmId: NULL");
    for (size_t i = 0; i < sizeof(kdfs) / sizeof(kdfs[0]); i++) {
        if (kdf_oid(kdfs[i], &oid) == 0 && ck_pkinit_oid_eq(id->kdf_id, oid)) {
            *kdf = kdfs[i];
            return 0;
        }
    }
    return ck_error_set(CK_ERR_UNSUPPORTED, "KDFAlgorithmId: unknown kdf-id");
}

int
ck_pkinit_krb5_principal_set(CK_KRB5_PRINCIPAL_NAME *kpn, const CK_PRINCIPAL_NAME *name,
                             const char *realm)
{
    CK_PRINCIPAL_NAME *dup;
    int rc;

    if (kpn == NULL || name == NULL || realm == NULL)
        return ck_error_set(CK_ERR_INVAL, "KRB5PrincipalName: NULL");
    if ((rc = ck_asn1_kstring_set(&kpn->realm, realm)) != 0)
        return rc;
    if ((dup = CK_PRINCIPAL_NAME_dup(name)) == NULL)
        return ck_error_set_ssl(CK_ERR_NOMEM, "KRB5PrincipalName: principal copy");
    CK_PRINCIPAL_NAME_free(kpn->principal_name);
    kpn->principal_name = dup;
    return 0;
}

/* Frees whatever alternative the CHOICE holds and leaves it unset. */
static void
rep_clear(CK_PA_PK_AS_REP_MSG *rep)
{
    if (rep->type == CK_PA_PK_AS_REP_DH_INFO)
        CK_DH_REP_INFO_free(rep->value.dh_info);
    else if (rep->type == CK_PA_PK_AS_REP_ENC_KEY_PACK)
        ASN1_OCTET_STRING_free(rep->value.enc_key_pack);
    rep->value.dh_info = NULL;
    rep->type = -1;
}

int
ck_pkinit_pa_pk_as_rep_set_dh(CK_PA_PK_AS_REP_MSG *rep, CK_DH_REP_INFO *info)
{
    if (rep == NULL || info == NULL)
        return ck_error_set(CK_ERR_INVAL, "PA-PK-AS-REP: NULL");
    rep_clear(rep);
    rep->type = CK_PA_PK_AS_REP_DH_INFO;
    rep->value.dh_info = info;
    return 0;
}

int
ck_pkinit_pa_pk_as_rep_set_enc_key_pack(CK_PA_PK_AS_REP_MSG *rep, const uint8_t *der, size_t len)
{
    ASN1_OCTET_STRING *o = NULL;
    int rc;

    if (rep == NULL || der == NULL)
        return ck_error_set(CK_ERR_INVAL, "PA-PK-AS-REP: NULL");
    if ((rc = ck_asn1_octets_set(&o, der, len)) != 0)
        return rc;
    rep_clear(rep);
    rep->type = CK_PA_PK_AS_REP_ENC_KEY_PACK;
    rep->value.enc_key_pack = o;
    return 0;
}

int
ck_pkinit_pa_pk_as_rep_draft9_set(CK_PA_PK_AS_REP_DRAFT9 *rep, int type, int form,
                                  const uint8_t *der, size_t len)
{
    ASN1_OCTET_STRING *o = NULL;
    int rc;

    if (rep == NULL || der == NULL ||
        (type != CK_PA_PK_AS_REP_DRAFT9_DH_SIGNED_DATA &&
         type != CK_PA_PK_AS_REP_DRAFT9_ENC_KEY_PACK) ||
        (form != CK_PKINIT_FORM_IMPLICIT && form != CK_PKINIT_FORM_EXPLICIT))
        return ck_error_set(CK_ERR_INVAL, "PA-PK-AS-REP-draft: bad arguments");
    if ((rc = ck_asn1_octets_set(&o, der, len)) != 0)
        return rc;
    /* Both alternatives are OCTET STRINGs: one free covers whichever is set. */
    if (rep->type == CK_PA_PK_AS_REP_DRAFT9_DH_SIGNED_DATA ||
        rep->type == CK_PA_PK_AS_REP_DRAFT9_ENC_KEY_PACK)
        ASN1_OCTET_STRING_free(rep->value.dh_signed_data);
    rep->type = type;
    rep->value.dh_signed_data = o;
    rep->form = form;
    return 0;
}

int
ck_pkinit_bit_string_set(ASN1_BIT_STRING **bs, const uint8_t *data, size_t len)
{
    ASN1_BIT_STRING *n = NULL;

    if (bs == NULL || (data == NULL && len > 0))
        return ck_error_set(CK_ERR_INVAL, "BIT STRING: NULL");
    if (len > CK_PKINIT_MAX_DH_PUBLIC)
        return ck_error_set(CK_ERR_LIMIT, "BIT STRING: %zu bytes", len);
    if (*bs == NULL && (n = ASN1_BIT_STRING_new()) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "BIT STRING");
    if (!ASN1_BIT_STRING_set(n != NULL ? n : *bs, (unsigned char *)data, (int)len)) {
        ASN1_BIT_STRING_free(n);
        return ck_error_set_ssl(CK_ERR_NOMEM, "BIT STRING");
    }
    if (n != NULL)
        *bs = n;
    (*bs)->flags = ((*bs)->flags & ~0x07) | ASN1_STRING_FLAG_BITS_LEFT;
    return 0;
}

int
ck_pkinit_typed_data_add(CK_TYPED_DATA **td, int32_t type, const uint8_t *value, size_t len)
{
    CK_TYPED_DATA *created = NULL;
    CK_TYPED_DATA_ENTRY *e = NULL;
    int rc;

    if (td == NULL || (value == NULL && len > 0))
        return ck_error_set(CK_ERR_INVAL, "TYPED-DATA: NULL");
    if (*td != NULL && sk_CK_TYPED_DATA_ENTRY_num(*td) >= CK_PKINIT_MAX_TYPED_DATA)
        return ck_error_set(CK_ERR_LIMIT, "TYPED-DATA: more than %d entries",
                            CK_PKINIT_MAX_TYPED_DATA);
    if ((e = CK_TYPED_DATA_ENTRY_new()) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "TYPED-DATA");
    e->data_type = type;
    if (value != NULL && (rc = ck_asn1_octets_set(&e->data_value, value, len)) != 0)
        goto out;
    if (*td == NULL && (*td = created = sk_CK_TYPED_DATA_ENTRY_new_null()) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "TYPED-DATA");
        goto out;
    }
    if (!sk_CK_TYPED_DATA_ENTRY_push(*td, e)) {
        rc = ck_error_set(CK_ERR_NOMEM, "TYPED-DATA");
        goto out;
    }
    e = NULL;
    created = NULL;
    rc = 0;
out:
    CK_TYPED_DATA_ENTRY_free(e);
    if (created != NULL) {
        sk_CK_TYPED_DATA_ENTRY_free(created);
        *td = NULL;
    }
    return rc;
}

const CK_TYPED_DATA_ENTRY *
ck_pkinit_typed_data_find(const CK_TYPED_DATA *td, int32_t type)
{
    for (int i = 0; td != NULL && i < sk_CK_TYPED_DATA_ENTRY_num(td); i++) {
        const CK_TYPED_DATA_ENTRY *e = sk_CK_TYPED_DATA_ENTRY_value(td, i);
        if (e != NULL && e->data_type == type)
            return e;
    }
    return NULL;
}
