/* ChangePasswdData (RFC 3244 §2, EXPLICIT TAGS) as an OpenSSL template, with the validated
 * codec of krb5_codec.c: DER pre-scan within a small cap -> template d2i -> no trailing bytes ->
 * field validation. See include/cablekey/kpasswd.h. */
#include <openssl/asn1t.h>
#include <openssl/crypto.h>

#include "cablekey/error.h"
#include "cablekey/kpasswd.h"
#include "asn1/asn1_int.h"

/* The new password is a secret: wipe it before the OCTET STRING is released, so every
 * CK_CHANGE_PASSWD_DATA_free (including the one after a failed validation) wipes it. */
static int
change_passwd_data_cb(int operation, ASN1_VALUE **pval, const ASN1_ITEM *it, void *exarg)
{
    (void)it;
    (void)exarg;
    if (operation == ASN1_OP_FREE_PRE && pval != NULL && *pval != NULL) {
        CK_CHANGE_PASSWD_DATA *d = (CK_CHANGE_PASSWD_DATA *)*pval;
        if (d->newpasswd != NULL && d->newpasswd->data != NULL && d->newpasswd->length > 0)
            OPENSSL_cleanse(d->newpasswd->data, (size_t)d->newpasswd->length);
    }
    return 1;
}

ASN1_SEQUENCE_cb(CK_CHANGE_PASSWD_DATA, change_passwd_data_cb) = {
    ASN1_EXP(CK_CHANGE_PASSWD_DATA, newpasswd, ASN1_OCTET_STRING, 0),
    ASN1_EXP_OPT(CK_CHANGE_PASSWD_DATA, targname, CK_PRINCIPAL_NAME, 1),
    ASN1_EXP_OPT(CK_CHANGE_PASSWD_DATA, targrealm, ASN1_GENERALSTRING, 2),
} ASN1_SEQUENCE_END_cb(CK_CHANGE_PASSWD_DATA, CK_CHANGE_PASSWD_DATA)
IMPLEMENT_ASN1_FUNCTIONS(CK_CHANGE_PASSWD_DATA)

/* A password, a principal name of at most CK_ASN1_MAX_COMPONENTS short strings and a realm:
 * 8 KiB is far more than any legitimate encoding and bounds what the pre-scan walks. */
static const struct ck_asn1_limits lim_kpasswd = {
    8192, CK_KPASSWD_MAX_PASSWORD, 0,
};

static int
v_change_passwd_data(const ck_vctx *c, const void *v, int tag)
{
    const CK_CHANGE_PASSWD_DATA *d = v;
    int rc;

    (void)tag;
    if ((rc = ck_asn1_v_octets(c, "newpasswd", d->newpasswd, CK_ASN1_MAND)) != 0 ||
        (rc = ck_asn1_v_principal(c, "targname", d->targname, CK_ASN1_OPT)) != 0 ||
        (rc = ck_asn1_v_kstring(c, "targrealm", d->targrealm, CK_ASN1_OPT)) != 0)
        return rc;
    if ((d->targname == NULL) != (d->targrealm == NULL))
        return ck_asn1_fail(c, "targname", "and targrealm must be both present or both absent");
    return 0;
}

int
ck_asn1_change_passwd_data_decode(const uint8_t *der, size_t len, CK_CHANGE_PASSWD_DATA **out)
{
    void *v = NULL;
    int rc;

    if (out == NULL)
        return ck_error_set(CK_ERR_INVAL, "ChangePasswdData: no output");
    rc = ck_asn1_decode_item(der, len, ASN1_ITEM_rptr(CK_CHANGE_PASSWD_DATA), "ChangePasswdData",
                             &lim_kpasswd, v_change_passwd_data, 0, &v);
    *out = v;
    return rc;
}

int
ck_asn1_change_passwd_data_encode(const CK_CHANGE_PASSWD_DATA *v, uint8_t **der, size_t *len)
{
    return ck_asn1_encode_item(v, ASN1_ITEM_rptr(CK_CHANGE_PASSWD_DATA), "ChangePasswdData",
                               &lim_kpasswd, v_change_passwd_data, 0, der, len);
}
