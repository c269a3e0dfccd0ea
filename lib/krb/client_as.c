/* Client AS exchange (RFC 4120 §3.1): AS-REQ, PREAUTH_REQUIRED -> PA-ETYPE-INFO2 ->
 * PA-ENC-TIMESTAMP, AS-REP decryption and checks. Also the helpers client_tgs.c shares. */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cablekey/ap.h"
#include "cablekey/client.h"
#include "cablekey/error.h"
#include "cablekey/krb5_asn1.h"
#include "cablekey/util.h"
#include "krb/client_int.h"

/* The order MIT 1.20 clients prefer among the enctypes we implement. */
const int32_t ck_client_default_etypes[4] = { 18, 17, 20, 19 };

#define AS_MAX_ROUNDS 3   /* plain, preauth, one retry with the KDC's corrected salt */

bool
ck_client_etype_in(int32_t e, const int32_t *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (list[i] == e)
            return true;
    }
    return false;
}

int
ck_client_nonce(uint32_t *nonce)
{
    uint32_t v = 0;
    int rc;

    if ((rc = ck_random_bytes(&v, sizeof(v))) != 0)
        return rc;
    *nonce = v & 0x7fffffffu;
    return 0;
}

int
ck_client_pname(const ck_principal *p, CK_PRINCIPAL_NAME **out)
{
    return ck_asn1_principal_new(p->name_type, (const char *const *)p->components,
                                 p->n_components, out);
}

int
ck_client_principal(const CK_PRINCIPAL_NAME *pn, const ASN1_GENERALSTRING *realm,
                    ck_principal **out)
{
    ck_principal *p = NULL;
    size_t n = ck_asn1_principal_count(pn);
    int rc;

    *out = NULL;
    if (realm == NULL || pn == NULL)
        return ck_error_set(CK_ERR_PROTO, "reply: missing principal name or realm");
    if ((rc = ck_principal_new((const char *)ASN1_STRING_get0_data(realm),
                               (size_t)ASN1_STRING_length(realm), pn->name_type, &p)) != 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        const char *s;
        size_t len;
        if ((rc = ck_asn1_principal_component(pn, i, &s, &len)) != 0 ||
            (rc = ck_principal_add_component(p, s, len)) != 0) {
            ck_principal_free(p);
            return rc;
        }
    }
    *out = p;
    return 0;
}

int
ck_client_fill_body(CK_KDC_REQ_BODY *b, uint32_t options, const ck_principal *cname,
                    const ck_principal *sname, int64_t till, int64_t rtime, uint32_t nonce,
                    const int32_t *etypes, size_t n_etypes)
{
    int rc;

    if ((rc = ck_asn1_flags_set(&b->kdc_options, options)) != 0)
        return rc;
    if (cname != NULL) {
        CK_PRINCIPAL_NAME_free(b->cname);
        b->cname = NULL;
        if ((rc = ck_client_pname(cname, &b->cname)) != 0)
            return rc;
    }
    CK_PRINCIPAL_NAME_free(b->sname);
    b->sname = NULL;
    if ((rc = ck_client_pname(sname, &b->sname)) != 0 ||
        (rc = ck_asn1_kstring_set(&b->realm, sname->realm)) != 0 ||
        (rc = ck_asn1_time_set(&b->till, till)) != 0 ||
        (rc = ck_asn1_nonce_set(&b->nonce, nonce)) != 0 ||
        (rc = ck_asn1_etypes_set(b, etypes, n_etypes)) != 0)
        return rc;
    if (rtime > 0 && (rc = ck_asn1_time_set(&b->rtime, rtime)) != 0)
        return rc;
    return 0;
}

static const char *
krb_error_name(int code)
{
    switch (code) {
    case CK_KDC_ERR_C_PRINCIPAL_UNKNOWN: return "client not found in database";
    case CK_KDC_ERR_S_PRINCIPAL_UNKNOWN: return "server not found in database";
    case CK_KDC_ERR_POLICY: return "KDC policy rejects request";
    case CK_KDC_ERR_BADOPTION: return "KDC can't fulfill requested option";
    case CK_KDC_ERR_ETYPE_NOSUPP: return "KDC has no support for encryption type";
    case CK_KDC_ERR_CLIENT_REVOKED: return "client's credentials have been revoked";
    case CK_KDC_ERR_KEY_EXPIRED: return "password has expired";
    case CK_KDC_ERR_PREAUTH_FAILED: return "preauthentication failed";
    case CK_KDC_ERR_PREAUTH_REQUIRED: return "additional preauthentication required";
    case CK_KRB_AP_ERR_BAD_INTEGRITY: return "integrity check on decrypted field failed";
    case CK_KRB_AP_ERR_TKT_EXPIRED: return "ticket expired";
    case CK_KRB_AP_ERR_SKEW: return "clock skew too great";
    case CK_KRB_AP_ERR_MODIFIED: return "message stream modified";
    case CK_KRB_ERR_RESPONSE_TOO_BIG: return "response too big for UDP";
    case CK_KRB_ERR_GENERIC: return "generic error";
    /* PKINIT (RFC 4556 §3.1.3, RFC 8636, RFC 8070) */
    case CK_KDC_ERR_CLIENT_NOT_TRUSTED: return "client not trusted";
    case CK_KDC_ERR_KDC_NOT_TRUSTED: return "KDC not trusted";
    case CK_KDC_ERR_INVALID_SIG: return "invalid signature";
    case CK_KDC_ERR_DH_KEY_PARAMETERS_NOT_ACCEPTED: return "DH key parameters not accepted";
    case CK_KDC_ERR_CANT_VERIFY_CERTIFICATE: return "client certificate cannot be verified";
    case CK_KDC_ERR_INVALID_CERTIFICATE: return "invalid client certificate";
    case CK_KDC_ERR_REVOKED_CERTIFICATE: return "client certificate revoked";
    case CK_KDC_ERR_REVOCATION_STATUS_UNKNOWN: return "revocation status unknown";
    case CK_KDC_ERR_CLIENT_NAME_MISMATCH: return "client name does not match the certificate";
    case CK_KDC_ERR_INCONSISTENT_KEY_PURPOSE: return "certificate key purpose (EKU) refused";
    case CK_KDC_ERR_DIGEST_IN_CERT_NOT_ACCEPTED: return "digest in certificate not accepted";
    case CK_KDC_ERR_PA_CHECKSUM_MUST_BE_INCLUDED: return "paChecksum must be included";
    case CK_KDC_ERR_DIGEST_IN_SIGNED_DATA_NOT_ACCEPTED: return "digest in signed data not accepted";
    case CK_KDC_ERR_PUBLIC_KEY_ENCRYPTION_NOT_SUPPORTED: return "public key encryption not supported";
    case CK_KDC_ERR_PREAUTH_EXPIRED: return "pre-authentication expired";
    case CK_KDC_ERR_NO_ACCEPTABLE_KDF: return "no acceptable KDF";
    default: return "KDC error";
    }
}

int
ck_client_krb_error(const uint8_t *msg, size_t len, CK_KRB_ERROR_MSG **out)
{
    CK_KRB_ERROR_MSG *err = NULL;
    int rc;

    if (out != NULL)
        *out = NULL;
    if (ck_asn1_msg_type(msg, len) != CK_KRB_ERROR)
        return ck_error_set(CK_ERR_PROTO, "KDC reply is not a KRB-ERROR");
    if ((rc = ck_asn1_krb_error_decode(msg, len, &err)) != 0)
        return rc;
    ck_error_set_krb_code(err->error_code);
    if (err->e_text != NULL && ASN1_STRING_length(err->e_text) > 0)
        rc = ck_error_set(CK_ERR_KRB, "KRB-ERROR %d (%s): %.200s", (int)err->error_code,
                          krb_error_name(err->error_code), ck_asn1_kstring_get(err->e_text));
    else
        rc = ck_error_set(CK_ERR_KRB, "KRB-ERROR %d (%s)", (int)err->error_code,
                          krb_error_name(err->error_code));
    if (out != NULL)
        *out = err;
    else
        CK_KRB_ERROR_MSG_free(err);
    return rc;
}

int
ck_client_make_creds(const CK_KDC_REP *rep, const CK_ENC_KDC_REP_PART *enc, uint32_t nonce,
                     const ck_principal *client, const ck_principal *server,
                     const int32_t *etypes, size_t n_etypes, ck_creds **out)
{
    CK_PRINCIPAL_NAME *want_c = NULL, *want_s = NULL;
    ck_creds *c = NULL;
    uint8_t *tkt = NULL;
    size_t tkt_len = 0;
    uint32_t got_nonce;
    int rc;

    *out = NULL;
    if ((rc = ck_asn1_nonce_get(enc->nonce, &got_nonce)) != 0)
        goto out;
    if (got_nonce != nonce) {
        rc = ck_error_set(CK_ERR_PROTO, "KDC reply nonce %u does not match the request's %u",
                          got_nonce, nonce);
        goto out;
    }
    if ((rc = ck_client_pname(client, &want_c)) != 0 ||
        (rc = ck_client_pname(server, &want_s)) != 0)
        goto out;
    if (!ck_asn1_kstring_eq(rep->crealm, client->realm) ||
        !ck_asn1_principal_equal(rep->cname, want_c)) {
        rc = ck_error_set(CK_ERR_PROTO, "KDC reply is for another client");
        goto out;
    }
    if (!ck_asn1_kstring_eq(enc->srealm, server->realm) ||
        !ck_asn1_principal_equal(enc->sname, want_s) ||
        !ck_asn1_kstring_eq(rep->ticket->realm, server->realm) ||
        !ck_asn1_principal_equal(rep->ticket->sname, want_s)) {
        rc = ck_error_set(CK_ERR_PROTO, "KDC reply is for another server");
        goto out;
    }
    if (!ck_client_etype_in(enc->key->keytype, etypes, n_etypes)) {
        rc = ck_error_set(CK_ERR_PROTO, "KDC chose session key enctype %d, not requested",
                          (int)enc->key->keytype);
        goto out;
    }
    if ((c = calloc(1, sizeof(*c))) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "credentials");
        goto out;
    }
    if ((rc = ck_key_from_asn1(&c->session_key, enc->key)) != 0 ||
        (rc = ck_principal_copy(client, &c->client)) != 0 ||
        (rc = ck_principal_copy(server, &c->server)) != 0 ||
        (rc = ck_asn1_ticket_encode(rep->ticket, &tkt, &tkt_len)) != 0 ||
        (rc = ck_asn1_flags_get(enc->flags, &c->flags)) != 0 ||
        (rc = ck_asn1_time_get(enc->authtime, &c->authtime)) != 0 ||
        (rc = ck_asn1_time_get_opt(enc->starttime, c->authtime, &c->starttime)) != 0 ||
        (rc = ck_asn1_time_get(enc->endtime, &c->endtime)) != 0 ||
        (rc = ck_asn1_time_get_opt(enc->renew_till, 0, &c->renew_till)) != 0)
        goto out;
    if ((c->ticket = malloc(tkt_len)) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "credentials");
        goto out;
    }
    memcpy(c->ticket, tkt, tkt_len);
    c->ticket_len = tkt_len;
    c->ticket_etype = rep->ticket->enc_part->etype;
    *out = c;
    c = NULL;
    rc = 0;
out:
    ck_asn1_free_der(tkt, tkt_len);
    CK_PRINCIPAL_NAME_free(want_c);
    CK_PRINCIPAL_NAME_free(want_s);
    ck_creds_free(c);
    return rc;
}

void
ck_creds_free(ck_creds *c)
{
    if (c == NULL)
        return;
    ck_principal_free(c->client);
    ck_principal_free(c->server);
    ck_key_clear(&c->session_key);
    free(c->ticket);
    ck_memzero(c, sizeof(*c));
    free(c);
}

int
ck_creds_copy(const ck_creds *src, ck_creds **out)
{
    ck_creds *c;
    int rc;

    *out = NULL;
    if ((c = calloc(1, sizeof(*c))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "credentials");
    *c = *src;
    c->client = NULL;
    c->server = NULL;
    c->ticket = NULL;
    if ((rc = ck_principal_copy(src->client, &c->client)) != 0 ||
        (rc = ck_principal_copy(src->server, &c->server)) != 0)
        goto fail;
    if ((c->ticket = ck_memdup(src->ticket, src->ticket_len)) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "credentials");
        goto fail;
    }
    *out = c;
    return 0;
fail:
    ck_creds_free(c);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Where the client's long-term key comes from.
 */
enum key_kind { KEY_PASSWORD, KEY_KEYTAB, KEY_FIXED, KEY_MECH };

struct key_source {
    enum key_kind kind;
    const char *password;
    const ck_keytab *kt;
    const ck_key *key;
    const ck_principal *client;
};

/* The client key for etype with the given salt (NULL: default salt) and s2kparams.
 * CK_ERR_NOTFOUND if this source has no key of that etype. */
static int
get_key(const struct key_source *ks, int32_t etype, const uint8_t *salt, size_t salt_len,
        const uint8_t *s2k, size_t s2k_len, ck_key *out)
{
    const ck_keytab_entry *e;
    uint8_t *dsalt = NULL;
    size_t dsalt_len = 0;
    int rc;

    if (!ck_enctype_is_supported(etype))
        return ck_error_set(CK_ERR_NOTFOUND, "enctype %d not supported", (int)etype);
    switch (ks->kind) {
    case KEY_PASSWORD:
        if (salt == NULL) {
            if ((rc = ck_principal_default_salt(ks->client, &dsalt, &dsalt_len)) != 0)
                return rc;
            salt = dsalt;
            salt_len = dsalt_len;
        }
        rc = ck_string_to_key(etype, ks->password, strlen(ks->password), salt, salt_len, s2k,
                              s2k_len, out);
        free(dsalt);
        return rc;
    case KEY_KEYTAB:
        if ((e = ck_keytab_find(ks->kt, ks->client, 0, etype)) == NULL)
            return ck_error_set(CK_ERR_NOTFOUND, "keytab has no key of enctype %d for the client",
                                (int)etype);
        return ck_key_copy(out, &e->key);
    case KEY_FIXED:
        if (ks->key->enctype != etype)
            return ck_error_set(CK_ERR_NOTFOUND, "key is not of enctype %d", (int)etype);
        return ck_key_copy(out, ks->key);
    case KEY_MECH:
        break; /* the mechanism supplies the reply key; there is no long-term key */
    }
    return ck_error_set(CK_ERR_INVAL, "key source");
}

/* A salt hint: the ETYPE-INFO2 entry chosen for the preauth key, or that of an AS-REP. */
struct salt_hint {
    bool set;
    int32_t etype;
    bool has_salt;
    uint8_t salt[CK_ASN1_MAX_STRING];
    size_t salt_len;
    bool has_s2k;
    uint8_t s2k[64];
    size_t s2k_len;
};

static int
hint_from_entry(const CK_ETYPE_INFO2_ENTRY *e, struct salt_hint *h)
{
    memset(h, 0, sizeof(*h));
    h->etype = e->etype;
    if (e->salt != NULL) {
        size_t n = (size_t)ASN1_STRING_length(e->salt);
        if (n > sizeof(h->salt))
            return ck_error_set(CK_ERR_LIMIT, "ETYPE-INFO2: salt too long");
        memcpy(h->salt, ASN1_STRING_get0_data(e->salt), n);
        h->salt_len = n;
        h->has_salt = true;
    }
    if (e->s2kparams != NULL) {
        size_t n = (size_t)ASN1_STRING_length(e->s2kparams);
        if (n > sizeof(h->s2k))
            return ck_error_set(CK_ERR_LIMIT, "ETYPE-INFO2: s2kparams too long");
        memcpy(h->s2k, ASN1_STRING_get0_data(e->s2kparams), n);
        h->s2k_len = n;
        h->has_s2k = true;
    }
    h->set = true;
    return 0;
}

static int
key_from_hint(const struct key_source *ks, const struct salt_hint *h, ck_key *out)
{
    return get_key(ks, h->etype, h->has_salt ? h->salt : NULL, h->salt_len,
                   h->has_s2k ? h->s2k : NULL, h->s2k_len, out);
}

/* Picks the first ETYPE-INFO2 entry (KDC preference order) whose etype we requested and for
 * which the key source has a key; fills hint and key. CK_ERR_NOTFOUND if none fits. */
static int
choose_etype_info2(const ASN1_OCTET_STRING *value, const struct key_source *ks,
                   const int32_t *etypes, size_t n_etypes, struct salt_hint *hint, ck_key *key)
{
    CK_ETYPE_INFO2 *info = NULL;
    int rc;

    if ((rc = ck_asn1_etype_info2_decode(ASN1_STRING_get0_data(value),
                                         (size_t)ASN1_STRING_length(value), &info)) != 0)
        return rc;
    rc = ck_error_set(CK_ERR_NOTFOUND, "no usable ETYPE-INFO2 entry");
    for (int i = 0; i < sk_CK_ETYPE_INFO2_ENTRY_num(info); i++) {
        const CK_ETYPE_INFO2_ENTRY *e = sk_CK_ETYPE_INFO2_ENTRY_value(info, i);
        if (!ck_client_etype_in(e->etype, etypes, n_etypes))
            continue;
        if ((rc = hint_from_entry(e, hint)) != 0)
            break;
        if ((rc = key_from_hint(ks, hint, key)) == 0)
            break;
        if (rc != CK_ERR_NOTFOUND)
            break;
    }
    if (rc != 0)
        memset(hint, 0, sizeof(*hint));
    CK_ETYPE_INFO2_free(info);
    return rc;
}

/* PA-ENC-TIMESTAMP value: EncryptedData(PA-ENC-TS-ENC {now}) under key, usage 1. */
static int
make_enc_timestamp(const ck_key *key, uint8_t **der, size_t *der_len)
{
    CK_PA_ENC_TS_ENC *ts = NULL;
    CK_ENCRYPTED_DATA *ed = NULL;
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    int64_t sec;
    int32_t usec;
    int rc;

    ck_now(&sec, &usec);
    if ((ts = CK_PA_ENC_TS_ENC_new()) == NULL || (ed = CK_ENCRYPTED_DATA_new()) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "PA-ENC-TIMESTAMP");
        goto out;
    }
    if ((rc = ck_asn1_time_set(&ts->patimestamp, sec)) != 0 ||
        (rc = ck_asn1_int32_set(&ts->pausec, usec)) != 0 ||
        (rc = ck_asn1_pa_enc_ts_enc_encode(ts, &plain, &plain_len)) != 0 ||
        (rc = ck_enc_data_seal(ed, key, CK_KU_PA_ENC_TS, NULL, plain, plain_len)) != 0 ||
        (rc = ck_asn1_encrypted_data_encode(ed, der, der_len)) != 0)
        goto out;
out:
    ck_asn1_free_der(plain, plain_len);
    CK_PA_ENC_TS_ENC_free(ts);
    CK_ENCRYPTED_DATA_free(ed);
    return rc;
}

struct as_ctx {
    const ck_as_params *p;
    const struct key_source *ks;
    ck_principal *client;
    ck_principal *server;
    int32_t etypes[CK_CLIENT_MAX_ETYPES];
    size_t n_etypes;
    ck_kdc_transport transport;   /* copy: switched to tcp_only after a TCP answer */
};

/* A new AS-REQ with its final req-body and no padata. */
static int
new_as_req(const struct as_ctx *c, uint32_t nonce, CK_AS_REQ **out)
{
    CK_AS_REQ *req = NULL;
    int64_t now, till, rtime = 0;
    int32_t usec;
    uint32_t opts = c->p->kdc_options;
    int rc;

    *out = NULL;
    ck_now(&now, &usec);
    till = now + (c->p->lifetime > 0 ? c->p->lifetime : CK_CLIENT_DEFAULT_LIFETIME);
    if (c->p->renew_life > 0) {
        opts |= CK_KDC_OPT_RENEWABLE;
        rtime = now + c->p->renew_life;
    }
    if ((req = CK_AS_REQ_new()) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "AS-REQ");
    req->pvno = CK_KRB5_PVNO;
    req->msg_type = CK_KRB_AS_REQ;
    if ((rc = ck_client_fill_body(req->req_body, opts, c->client, c->server, till, rtime, nonce,
                                  c->etypes, c->n_etypes)) != 0) {
        CK_AS_REQ_free(req);
        return rc;
    }
    *out = req;
    return 0;
}

/* Builds one AS-REQ. preauth_key may be NULL; cookie (may be NULL) is echoed. */
static int
build_as_req(const struct as_ctx *c, uint32_t nonce, const ck_key *preauth_key,
             const ASN1_OCTET_STRING *cookie, uint8_t **der, size_t *der_len)
{
    CK_AS_REQ *req = NULL;
    uint8_t *ts = NULL;
    size_t ts_len = 0;
    int rc;

    *der = NULL;
    if ((rc = new_as_req(c, nonce, &req)) != 0)
        return rc;
    if (cookie != NULL &&
        (rc = ck_asn1_padata_add(&req->padata, CK_PA_FX_COOKIE, ASN1_STRING_get0_data(cookie),
                                 (size_t)ASN1_STRING_length(cookie))) != 0)
        goto out;
    if (preauth_key != NULL) {
        if ((rc = make_enc_timestamp(preauth_key, &ts, &ts_len)) != 0 ||
            (rc = ck_asn1_padata_add(&req->padata, CK_PA_ENC_TIMESTAMP, ts, ts_len)) != 0)
            goto out;
    }
    rc = ck_asn1_as_req_encode(req, der, der_len);
out:
    ck_asn1_free_der(ts, ts_len);
    CK_AS_REQ_free(req);
    return rc;
}

/* Copies an OPENSSL_malloc'd DER into a malloc'd buffer (the public API hands out malloc). */
static int
der_to_malloc(uint8_t *der, size_t len, uint8_t **out)
{
    *out = malloc(len);
    if (*out == NULL) {
        ck_asn1_free_der(der, len);
        return ck_error_set(CK_ERR_NOMEM, "request");
    }
    memcpy(*out, der, len);
    ck_asn1_free_der(der, len);
    return 0;
}

/* Finds the AS-REP's ETYPE-INFO2 hint for etype (KDCs include it in the reply padata). */
static bool
rep_hint(const CK_AS_REP *rep, int32_t etype, struct salt_hint *h)
{
    const CK_PA_DATA *pa = ck_asn1_padata_find(rep->padata, CK_PA_ETYPE_INFO2);
    CK_ETYPE_INFO2 *info = NULL;
    bool found = false;

    if (pa == NULL)
        return false;
    if (ck_asn1_etype_info2_decode(ASN1_STRING_get0_data(pa->padata_value),
                                   (size_t)ASN1_STRING_length(pa->padata_value), &info) != 0) {
        ck_error_clear();
        return false;
    }
    for (int i = 0; i < sk_CK_ETYPE_INFO2_ENTRY_num(info) && !found; i++) {
        const CK_ETYPE_INFO2_ENTRY *e = sk_CK_ETYPE_INFO2_ENTRY_value(info, i);
        if (e->etype == etype && hint_from_entry(e, h) == 0)
            found = true;
    }
    ck_error_clear();
    CK_ETYPE_INFO2_free(info);
    return found;
}

/* Decrypts the AS-REP's enc-part with the reply key (usage 3) and checks it against the
 * request. */
static int
open_as_rep(const struct as_ctx *c, const CK_AS_REP *rep, const ck_key *key, uint32_t nonce,
            ck_creds **out)
{
    CK_ENC_KDC_REP_PART *enc = NULL;
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    int rc;

    if ((rc = ck_enc_data_open(rep->enc_part, key, CK_KU_AS_REP_ENCPART, &plain, &plain_len)) != 0) {
        if (rc == CK_ERR_INTEGRITY)
            rc = ck_error_set(CK_ERR_INTEGRITY, "AS-REP: cannot decrypt the reply (wrong password "
                              "or key?)");
        goto out;
    }
    if ((rc = ck_asn1_enc_kdc_rep_part_decode(plain, plain_len, &enc, NULL)) != 0)
        goto out;
    rc = ck_client_make_creds(rep, enc, nonce, c->client, c->server, c->etypes, c->n_etypes, out);
out:
    if (plain != NULL)
        ck_free_secret(plain, plain_len);
    CK_ENC_KDC_REP_PART_free(enc);
    return rc;
}

static int
process_as_rep(const struct as_ctx *c, const uint8_t *msg, size_t len, uint32_t nonce,
               const struct salt_hint *hint, const ck_key *preauth_key, ck_creds **out)
{
    CK_AS_REP *rep = NULL;
    struct salt_hint rh;
    ck_key key;
    int32_t etype;
    int rc;

    memset(&key, 0, sizeof(key));
    if ((rc = ck_asn1_as_rep_decode(msg, len, &rep)) != 0)
        goto out;
    etype = rep->enc_part->etype;
    if (!ck_client_etype_in(etype, c->etypes, c->n_etypes)) {
        rc = ck_error_set(CK_ERR_PROTO, "AS-REP encrypted with enctype %d, not requested",
                          (int)etype);
        goto out;
    }
    /* The reply key: the salt the AS-REP names wins (it is what the KDC used), then the key we
     * preauthenticated with, then the hint from the PREAUTH_REQUIRED error, then defaults. */
    if (rep_hint(rep, etype, &rh))
        rc = key_from_hint(c->ks, &rh, &key);
    else if (preauth_key != NULL && preauth_key->enctype == etype)
        rc = ck_key_copy(&key, preauth_key);
    else if (hint->set && hint->etype == etype)
        rc = key_from_hint(c->ks, hint, &key);
    else
        rc = get_key(c->ks, etype, NULL, 0, NULL, 0, &key);
    if (rc != 0)
        goto out;
    rc = open_as_rep(c, rep, &key, nonce, out);
out:
    ck_key_clear(&key);
    CK_AS_REP_free(rep);
    return rc;
}

static int
as_ctx_init(struct as_ctx *c, const ck_as_params *p, const struct key_source *ks)
{
    int rc;

    memset(c, 0, sizeof(*c));
    c->p = p;
    c->ks = ks;
    if (p == NULL || p->realm == NULL || p->client == NULL || p->transport == NULL)
        return ck_error_set(CK_ERR_INVAL, "AS: realm, client and transport are required");
    c->transport = *p->transport;
    if ((rc = ck_principal_parse(p->client, p->realm, 0, &c->client)) != 0)
        return rc;
    if (strcmp(c->client->realm, p->realm) != 0)
        return ck_error_set(CK_ERR_INVAL, "AS: client realm %s differs from %s", c->client->realm,
                            p->realm);
    if (p->service == NULL) {
        const char *comps[2] = { CK_TGS_NAME, p->realm };
        rc = ck_principal_build(p->realm, CK_NT_SRV_INST, comps, 2, &c->server);
    } else {
        rc = ck_principal_parse(p->service, p->realm, 0, &c->server);
    }
    if (rc != 0)
        return rc;
    if (p->enctypes != NULL && p->n_enctypes > 0) {
        if (p->n_enctypes > CK_CLIENT_MAX_ETYPES)
            return ck_error_set(CK_ERR_LIMIT, "AS: more than %d enctypes", CK_CLIENT_MAX_ETYPES);
        for (size_t i = 0; i < p->n_enctypes; i++) {
            if (!ck_enctype_is_supported(p->enctypes[i]))
                return ck_error_set(CK_ERR_UNSUPPORTED, "AS: enctype %d not supported",
                                    (int)p->enctypes[i]);
            c->etypes[c->n_etypes++] = p->enctypes[i];
        }
        return 0;
    }
    /* A prebuilt key: its enctype first (it decides the reply key), then the others, which
     * the KDC may still pick for the session key. */
    if (ks->kind == KEY_FIXED) {
        if (!ck_enctype_is_supported(ks->key->enctype))
            return ck_error_set(CK_ERR_UNSUPPORTED, "AS: key enctype %d not supported",
                                (int)ks->key->enctype);
        c->etypes[c->n_etypes++] = ks->key->enctype;
    }
    for (size_t i = 0; i < 4; i++) {
        int32_t e = ck_client_default_etypes[i];
        if (ks->kind == KEY_FIXED && ks->key->enctype == e)
            continue;
        if (ks->kind == KEY_KEYTAB && ck_keytab_find(ks->kt, c->client, 0, e) == NULL)
            continue;
        c->etypes[c->n_etypes++] = e;
    }
    if (c->n_etypes == 0)
        return ck_error_set(CK_ERR_NOTFOUND, "AS: no key of a supported enctype for the client");
    return 0;
}

static void
as_ctx_clear(struct as_ctx *c)
{
    ck_principal_free(c->client);
    ck_principal_free(c->server);
    c->client = NULL;
    c->server = NULL;
}

static int
as_exchange(const ck_as_params *p, const struct key_source *ks_in, ck_creds **out)
{
    struct as_ctx c;
    struct key_source ks = *ks_in;
    struct salt_hint hint;
    ASN1_OCTET_STRING *cookie = NULL;
    CK_KRB_ERROR_MSG *err = NULL;
    CK_METHOD_DATA *md = NULL;
    ck_key pkey;
    bool have_pkey = false;
    uint8_t *der = NULL, *reply = NULL;
    size_t der_len = 0, reply_len = 0;
    int rc;

    memset(&pkey, 0, sizeof(pkey));
    memset(&hint, 0, sizeof(hint));
    if (out == NULL)
        return ck_error_set(CK_ERR_INVAL, "AS: out is NULL");
    *out = NULL;
    if ((rc = as_ctx_init(&c, p, &ks)) != 0)
        goto out;
    ks.client = c.client;
    if (p->preauth_first) {
        if ((rc = get_key(&ks, c.etypes[0], NULL, 0, NULL, 0, &pkey)) != 0)
            goto out;
        have_pkey = true;
    }
    for (int round = 0; round < AS_MAX_ROUNDS; round++) {
        uint32_t nonce;
        ck_kdc_send_info info;
        const CK_PA_DATA *pa;
        int code;

        if ((rc = ck_client_nonce(&nonce)) != 0 ||
            (rc = build_as_req(&c, nonce, have_pkey ? &pkey : NULL, cookie, &der, &der_len)) != 0)
            goto out;
        rc = ck_kdc_send(&c.transport, der, der_len, &reply, &reply_len, &info);
        ck_asn1_free_der(der, der_len);
        der = NULL;
        if (rc != 0)
            goto out;
        /* MIT kinit: once the KDC made us use TCP, the rest of the exchange stays on TCP. */
        if (info.tcp)
            c.transport.tcp_only = true;
        switch (ck_asn1_msg_type(reply, reply_len)) {
        case CK_KRB_AS_REP:
            rc = process_as_rep(&c, reply, reply_len, nonce, &hint, have_pkey ? &pkey : NULL,
                                out);
            goto out;
        case CK_KRB_ERROR:
            break;
        default:
            rc = ck_error_set(CK_ERR_PROTO, "AS: unexpected reply message type");
            goto out;
        }
        CK_KRB_ERROR_MSG_free(err);
        err = NULL;
        rc = ck_client_krb_error(reply, reply_len, &err);
        free(reply);
        reply = NULL;
        if (err == NULL)
            goto out;
        code = err->error_code;
        /* PREAUTH_REQUIRED (the first time), or PREAUTH_FAILED after an optimistic guess of the
         * salt: retry once with what the KDC's ETYPE-INFO2 says. Anything else is final. */
        if (hint.set || round == AS_MAX_ROUNDS - 1 ||
            !(code == CK_KDC_ERR_PREAUTH_REQUIRED ||
              (code == CK_KDC_ERR_PREAUTH_FAILED && p->preauth_first)))
            goto out;
        CK_METHOD_DATA_free(md);
        md = NULL;
        if (err->e_data != NULL &&
            ck_asn1_method_data_decode(ASN1_STRING_get0_data(err->e_data),
                                       (size_t)ASN1_STRING_length(err->e_data), &md) != 0) {
            rc = ck_error_set(CK_ERR_PROTO, "AS: KRB-ERROR %d with undecodable METHOD-DATA", code);
            goto out;
        }
        /* A failed guess with no hint from the KDC: trying the same key again is pointless. */
        if (md == NULL && code == CK_KDC_ERR_PREAUTH_FAILED)
            goto out;
        if (md != NULL && ck_asn1_padata_find(md, CK_PA_ENC_TIMESTAMP) == NULL) {
            ck_error_set_krb_code(code);
            rc = ck_error_set(CK_ERR_KRB, "AS: KDC requires preauthentication but does not offer "
                              "PA-ENC-TIMESTAMP");
            goto out;
        }
        ck_key_clear(&pkey);
        have_pkey = false;
        pa = ck_asn1_padata_find(md, CK_PA_ETYPE_INFO2);
        if (pa != NULL) {
            rc = choose_etype_info2(pa->padata_value, &ks, c.etypes, c.n_etypes, &hint, &pkey);
            if (rc != 0)
                goto out;
        } else {
            /* No hint: the first requested etype with the default salt. */
            if ((rc = get_key(&ks, c.etypes[0], NULL, 0, NULL, 0, &pkey)) != 0)
                goto out;
            hint.set = true;
            hint.etype = c.etypes[0];
        }
        have_pkey = true;
        ASN1_OCTET_STRING_free(cookie);
        cookie = NULL;
        pa = ck_asn1_padata_find(md, CK_PA_FX_COOKIE);
        if (pa != NULL && (cookie = ASN1_OCTET_STRING_dup(pa->padata_value)) == NULL) {
            rc = ck_error_set(CK_ERR_NOMEM, "PA-FX-COOKIE");
            goto out;
        }
        ck_error_clear();
        ck_error_set_krb_code(0);
    }
    rc = ck_error_set(CK_ERR_PROTO, "AS: no ticket after %d requests", AS_MAX_ROUNDS);
out:
    ck_key_clear(&pkey);
    ck_memzero(&hint, sizeof(hint));
    ck_asn1_free_der(der, der_len);
    free(reply);
    CK_METHOD_DATA_free(md);
    CK_KRB_ERROR_MSG_free(err);
    ASN1_OCTET_STRING_free(cookie);
    as_ctx_clear(&c);
    return rc;
}

int
ck_client_as_mech(const ck_as_params *p, const ck_as_mech *mech, ck_creds **out)
{
    struct key_source ks = { .kind = KEY_MECH };
    struct as_ctx c;
    CK_AS_REQ *req = NULL;
    CK_AS_REP *rep = NULL;
    CK_KRB_ERROR_MSG *err = NULL;
    ck_key key;
    uint8_t *der = NULL, *reply = NULL;
    size_t der_len = 0, reply_len = 0;
    int rc, rounds;

    memset(&key, 0, sizeof(key));
    memset(&c, 0, sizeof(c));
    if (out == NULL)
        return ck_error_set(CK_ERR_INVAL, "AS: out is NULL");
    *out = NULL;
    if (mech == NULL || mech->add_padata == NULL || mech->on_error == NULL ||
        mech->reply_key == NULL || mech->max_rounds < 1 ||
        mech->max_rounds > CK_AS_MECH_MAX_ROUNDS)
        return ck_error_set(CK_ERR_INVAL, "AS: bad pre-authentication mechanism");
    rounds = mech->max_rounds;
    if ((rc = as_ctx_init(&c, p, &ks)) != 0)
        goto out;
    for (int round = 0; round < rounds; round++) {
        uint32_t nonce;
        ck_kdc_send_info info;

        if ((rc = ck_client_nonce(&nonce)) != 0 || (rc = new_as_req(&c, nonce, &req)) != 0 ||
            (rc = mech->add_padata(mech->ctx, req, round)) != 0 ||
            (rc = ck_asn1_as_req_encode(req, &der, &der_len)) != 0)
            goto out;
        if ((rc = ck_kdc_send(&c.transport, der, der_len, &reply, &reply_len, &info)) != 0)
            goto out;
        if (info.tcp)
            c.transport.tcp_only = true;
        switch (ck_asn1_msg_type(reply, reply_len)) {
        case CK_KRB_AS_REP:
            if ((rc = ck_asn1_as_rep_decode(reply, reply_len, &rep)) != 0)
                goto out;
            if (!ck_client_etype_in(rep->enc_part->etype, c.etypes, c.n_etypes)) {
                rc = ck_error_set(CK_ERR_PROTO, "AS-REP encrypted with enctype %d, not requested",
                                  (int)rep->enc_part->etype);
                goto out;
            }
            rc = mech->reply_key(mech->ctx, req, der, der_len, rep, round, &key);
            if (rc == 0)
                rc = open_as_rep(&c, rep, &key, nonce, out);
            if (rc != CK_AS_MECH_RETRY)
                goto out;
            break;
        case CK_KRB_ERROR:
            CK_KRB_ERROR_MSG_free(err);
            err = NULL;
            rc = ck_client_krb_error(reply, reply_len, &err);
            if (err == NULL || (rc = mech->on_error(mech->ctx, err, round)) != 0)
                goto out;
            ck_error_clear();
            ck_error_set_krb_code(0);
            break;
        default:
            rc = ck_error_set(CK_ERR_PROTO, "AS: unexpected reply message type");
            goto out;
        }
        ck_key_clear(&key);
        CK_AS_REP_free(rep);
        rep = NULL;
        CK_AS_REQ_free(req);
        req = NULL;
        ck_asn1_free_der(der, der_len);
        der = NULL;
        free(reply);
        reply = NULL;
    }
    rc = ck_error_set(CK_ERR_PROTO, "AS: no ticket after %d requests", rounds);
out:
    ck_key_clear(&key);
    CK_AS_REP_free(rep);
    CK_AS_REQ_free(req);
    ck_asn1_free_der(der, der_len);
    free(reply);
    CK_KRB_ERROR_MSG_free(err);
    as_ctx_clear(&c);
    return rc;
}

int
ck_client_as_password(const ck_as_params *p, const char *password, ck_creds **out)
{
    struct key_source ks = { .kind = KEY_PASSWORD, .password = password };

    if (password == NULL)
        return ck_error_set(CK_ERR_INVAL, "AS: password is NULL");
    return as_exchange(p, &ks, out);
}

int
ck_client_as_keytab(const ck_as_params *p, const ck_keytab *kt, ck_creds **out)
{
    struct key_source ks = { .kind = KEY_KEYTAB, .kt = kt };

    if (kt == NULL)
        return ck_error_set(CK_ERR_INVAL, "AS: keytab is NULL");
    return as_exchange(p, &ks, out);
}

int
ck_client_as_key(const ck_as_params *p, const ck_key *key, ck_creds **out)
{
    struct key_source ks = { .kind = KEY_FIXED, .key = key };

    if (key == NULL)
        return ck_error_set(CK_ERR_INVAL, "AS: key is NULL");
    return as_exchange(p, &ks, out);
}

int
ck_client_as_req_build(const ck_as_params *p, uint8_t **der, size_t *der_len, uint32_t *nonce)
{
    /* A password source that is never used: the first request carries no preauth. */
    struct key_source ks = { .kind = KEY_PASSWORD, .password = "" };
    struct as_ctx c;
    uint8_t *d = NULL;
    size_t len = 0;
    int rc;

    *der = NULL;
    if ((rc = as_ctx_init(&c, p, &ks)) != 0)
        goto out;
    if ((rc = ck_client_nonce(nonce)) != 0 ||
        (rc = build_as_req(&c, *nonce, NULL, NULL, &d, &len)) != 0)
        goto out;
    if ((rc = der_to_malloc(d, len, der)) != 0)
        goto out;
    *der_len = len;
out:
    as_ctx_clear(&c);
    return rc;
}
