/* AP-REQ / AP-REP (RFC 4120 §3.2, §5.5). */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cablekey/ap.h"
#include "cablekey/error.h"
#include "cablekey/keytab.h"
#include "cablekey/principal.h"
#include "cablekey/util.h"

/* Copies a Checksum field by field (the ASN.1 module declares no dup for it). */
static int
checksum_copy(const CK_CHECKSUM *src, CK_CHECKSUM **dst)
{
    CK_CHECKSUM *c;
    int rc;

    if ((c = CK_CHECKSUM_new()) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "Checksum");
    rc = ck_asn1_checksum_set(c, src->cksumtype, ASN1_STRING_get0_data(src->checksum),
                              (size_t)ASN1_STRING_length(src->checksum));
    if (rc != 0) {
        CK_CHECKSUM_free(c);
        return rc;
    }
    CK_CHECKSUM_free(*dst);
    *dst = c;
    return 0;
}

int
ck_ap_req_build(const CK_TICKET *ticket, const ck_key *session_key, const char *client_realm,
                const CK_PRINCIPAL_NAME *client_name, uint32_t ap_options,
                const CK_CHECKSUM *cksum, int32_t key_usage, const ck_key *subkey,
                const uint32_t *seq_number, int64_t *ctime_out, int32_t *cusec_out,
                uint8_t **der, size_t *der_len)
{
    return ck_ap_req_build_at(ticket, session_key, client_realm, client_name, ap_options, cksum,
                              key_usage, subkey, seq_number, 0, 0, ctime_out, cusec_out, der,
                              der_len);
}

int
ck_ap_req_build_at(const CK_TICKET *ticket, const ck_key *session_key, const char *client_realm,
                   const CK_PRINCIPAL_NAME *client_name, uint32_t ap_options,
                   const CK_CHECKSUM *cksum, int32_t key_usage, const ck_key *subkey,
                   const uint32_t *seq_number, int64_t now, int32_t now_usec, int64_t *ctime_out,
                   int32_t *cusec_out, uint8_t **der, size_t *der_len)
{
    CK_AUTHENTICATOR *auth = NULL;
    CK_AP_REQ *req = NULL;
    CK_PRINCIPAL_NAME *cname = NULL;
    CK_TICKET *tkt = NULL;
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    int64_t sec;
    int32_t usec;
    int rc;

    *der = NULL;
    *der_len = 0;
    if (ticket == NULL || session_key == NULL || client_realm == NULL || client_name == NULL)
        return ck_error_set(CK_ERR_INVAL, "AP-REQ: missing argument");
    if (now != 0 && (now_usec < 0 || now_usec > 999999))
        return ck_error_set(CK_ERR_INVAL, "AP-REQ: usec %d", (int)now_usec);
    if ((auth = CK_AUTHENTICATOR_new()) == NULL || (req = CK_AP_REQ_new()) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "AP-REQ");
        goto out;
    }
    if (now != 0) {
        sec = now;
        usec = now_usec;
    } else {
        ck_now(&sec, &usec);
    }
    auth->authenticator_vno = CK_KRB5_PVNO;
    if ((rc = ck_asn1_kstring_set(&auth->crealm, client_realm)) != 0)
        goto out;
    if ((cname = CK_PRINCIPAL_NAME_dup(client_name)) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "AP-REQ: cname");
        goto out;
    }
    CK_PRINCIPAL_NAME_free(auth->cname);
    auth->cname = cname;
    if (cksum != NULL && (rc = checksum_copy(cksum, &auth->cksum)) != 0)
        goto out;
    auth->cusec = usec;
    if ((rc = ck_asn1_time_set(&auth->ctime, sec)) != 0)
        goto out;
    if (subkey != NULL && (rc = ck_key_to_asn1(subkey, &auth->subkey)) != 0)
        goto out;
    if (seq_number != NULL && (rc = ck_asn1_nonce_set(&auth->seq_number, *seq_number)) != 0)
        goto out;
    if ((rc = ck_asn1_authenticator_encode(auth, &plain, &plain_len)) != 0)
        goto out;

    req->pvno = CK_KRB5_PVNO;
    req->msg_type = CK_KRB_AP_REQ;
    if ((rc = ck_asn1_flags_set(&req->ap_options, ap_options)) != 0)
        goto out;
    if ((tkt = CK_TICKET_dup(ticket)) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "AP-REQ: ticket");
        goto out;
    }
    CK_TICKET_free(req->ticket);
    req->ticket = tkt;
    rc = ck_enc_data_seal(req->authenticator, session_key, key_usage, NULL, plain, plain_len);
    if (rc != 0)
        goto out;
    if ((rc = ck_asn1_ap_req_encode(req, der, der_len)) != 0)
        goto out;
    if (ctime_out != NULL)
        *ctime_out = sec;
    if (cusec_out != NULL)
        *cusec_out = usec;
out:
    ck_asn1_free_der(plain, plain_len);
    CK_AUTHENTICATOR_free(auth);
    CK_AP_REQ_free(req);
    return rc;
}

/* Builds a ck_principal from a wire name and realm (for keytab lookups). */
static int
principal_from_wire(const CK_PRINCIPAL_NAME *name, const ASN1_GENERALSTRING *realm,
                    ck_principal **out)
{
    const char *r = ck_asn1_kstring_get(realm), *s;
    ck_principal *p = NULL;
    size_t n = ck_asn1_principal_count(name), len;
    int rc;

    *out = NULL;
    if ((rc = ck_principal_new(r, strlen(r), name->name_type, &p)) != 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if ((rc = ck_asn1_principal_component(name, i, &s, &len)) != 0 ||
            (rc = ck_principal_add_component(p, s, len)) != 0) {
            ck_principal_free(p);
            return rc;
        }
    }
    *out = p;
    return 0;
}

/* Components of a wire name viewed in place, for the usual short service name. */
#define AP_VIEW_COMPONENTS 4

/* Views a wire name and realm as a ck_principal without copying (the decoder NUL-terminates
 * every string); false when the heap path must decide (more components, over-long or
 * NUL-containing components: principal_from_wire refuses those with its own errors). */
static bool
principal_view(const CK_PRINCIPAL_NAME *name, const ASN1_GENERALSTRING *realm, ck_principal *p,
               char *comps[AP_VIEW_COMPONENTS])
{
    size_t n = ck_asn1_principal_count(name), len;
    const char *s, *r = ck_asn1_kstring_get(realm);

    if (n == 0 || n > AP_VIEW_COMPONENTS || r[0] == '\0' || strlen(r) > CK_REALM_MAX_LEN)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (ck_asn1_principal_component(name, i, &s, &len) != 0 ||
            len > CK_PRINCIPAL_MAX_COMPONENT_LEN || strlen(s) != len)
            return false;
        comps[i] = (char *)s;
    }
    p->name_type = name->name_type;
    p->realm = (char *)r;
    p->n_components = n;
    p->components = comps;
    return true;
}

int
ck_ap_keytab_key_fn(void *arg, const CK_TICKET *ticket, int32_t etype, uint32_t kvno, ck_key *key,
                    int32_t *krb_error)
{
    const ck_keytab *kt = arg;
    const ck_keytab_entry *e;
    ck_principal *p = NULL, view;
    char *comps[AP_VIEW_COMPONENTS];
    const ck_principal *pp = &view;
    int rc;

    /* Per request: the lookup needs no copy of the name (saves five allocations). */
    if (!principal_view(ticket->sname, ticket->realm, &view, comps)) {
        if ((rc = principal_from_wire(ticket->sname, ticket->realm, &p)) != 0) {
            *krb_error = CK_KRB_AP_ERR_NOT_US;
            return rc;
        }
        pp = p;
    }
    e = ck_keytab_find(kt, pp, kvno, etype);
    if (e == NULL) {
        if (ck_keytab_find(kt, pp, 0, etype) != NULL) {
            *krb_error = CK_KRB_AP_ERR_BADKEYVER;
            rc = ck_error_set(CK_ERR_NOTFOUND, "keytab: no key version %u", kvno);
        } else {
            *krb_error = CK_KRB_AP_ERR_NOKEY;
            rc = ck_error_set(CK_ERR_NOTFOUND, "keytab: no key for enctype %d", (int)etype);
        }
    } else {
        rc = ck_key_copy(key, &e->key);
    }
    ck_principal_free(p);
    return rc;
}

void
ck_ap_req_result_clear(ck_ap_req_result *r)
{
    if (r == NULL)
        return;
    CK_TICKET_free(r->ticket);
    CK_ENC_TICKET_PART_free(r->enc_ticket);
    CK_AUTHENTICATOR_free(r->authenticator);
    CK_ENCRYPTED_DATA_free(r->auth_enc);
    ck_memzero(r, sizeof(*r));
}

/* Sets the result's Kerberos code and returns err (with the context already set). */
static int
ap_fail(ck_ap_req_result *out, int32_t krb_error, int err)
{
    out->krb_error = krb_error;
    return err;
}

int
ck_ap_req_verify(const uint8_t *der, size_t len, ck_ap_key_fn key_fn, void *key_arg,
                 const char *expected_server, ck_rcache *rc, int64_t clockskew, int32_t key_usage,
                 ck_ap_req_result *out)
{
    int64_t now;
    int32_t usec;

    ck_now(&now, &usec);
    return ck_ap_req_verify_at(der, len, key_fn, key_arg, expected_server, rc, clockskew,
                               key_usage, now, out);
}

int
ck_ap_req_verify_at(const uint8_t *der, size_t len, ck_ap_key_fn key_fn, void *key_arg,
                    const char *expected_server, ck_rcache *rc, int64_t clockskew,
                    int32_t key_usage, int64_t now, ck_ap_req_result *out)
{
    CK_AP_REQ *req = NULL;
    CK_ENC_TICKET_PART *etp;
    CK_AUTHENTICATOR *auth;
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    ck_key skey;
    int32_t krb_error = CK_KRB_AP_ERR_NOKEY;
    uint32_t kvno;
    int ret;

    memset(out, 0, sizeof(*out));
    ck_key_clear(&skey);
    if (der == NULL || key_fn == NULL)
        return ap_fail(out, CK_KRB_ERR_GENERIC,
                       ck_error_set(CK_ERR_INVAL, "AP-REQ: missing argument"));
    if (ck_asn1_msg_type(der, len) != CK_KRB_AP_REQ)
        return ap_fail(out, CK_KRB_AP_ERR_MSG_TYPE,
                       ck_error_set(CK_ERR_DECODE, "AP-REQ: wrong message type"));
    if ((ret = ck_asn1_ap_req_decode(der, len, &req)) != 0)
        return ap_fail(out, CK_KRB_ERR_GENERIC, ret);
    out->ticket = req->ticket;
    req->ticket = NULL;
    if ((ret = ck_asn1_flags_get(req->ap_options, &out->ap_options)) != 0) {
        ret = ap_fail(out, CK_KRB_ERR_GENERIC, ret);
        goto out;
    }
    if (expected_server != NULL) {
        char name[1024];

        if (ck_asn1_principal_unparse(out->ticket->sname, out->ticket->realm, name,
                                      sizeof(name)) != 0 ||
            strcmp(name, expected_server) != 0) {
            ret = ap_fail(out, CK_KRB_AP_ERR_NOT_US,
                          ck_error_set(CK_ERR_POLICY, "AP-REQ: ticket is not for %s",
                                       expected_server));
            goto out;
        }
    }
    out->ticket_etype = out->ticket->enc_part->etype;
    kvno = ck_asn1_uint32_get(out->ticket->enc_part->kvno, 0);
    out->ticket_kvno = kvno;
    if ((ret = key_fn(key_arg, out->ticket, out->ticket_etype, kvno, &skey, &krb_error)) != 0) {
        ret = ap_fail(out, krb_error != 0 ? krb_error : CK_KRB_AP_ERR_NOKEY, ret);
        goto out;
    }
    if ((ret = ck_ticket_open(out->ticket, &skey, &out->enc_ticket)) != 0) {
        ret = ap_fail(out, CK_KRB_AP_ERR_BAD_INTEGRITY, ret);
        goto out;
    }
    etp = out->enc_ticket;
    if ((ret = ck_key_from_asn1(&out->session_key, etp->key)) != 0 ||
        (ret = ck_asn1_flags_get(etp->flags, &out->tkt_flags)) != 0 ||
        (ret = ck_asn1_time_get(etp->authtime, &out->authtime)) != 0 ||
        (ret = ck_asn1_time_get_opt(etp->starttime, out->authtime, &out->starttime)) != 0 ||
        (ret = ck_asn1_time_get(etp->endtime, &out->endtime)) != 0 ||
        (ret = ck_asn1_time_get_opt(etp->renew_till, 0, &out->renew_till)) != 0) {
        ret = ap_fail(out, CK_KRB_AP_ERR_BAD_INTEGRITY, ret);
        goto out;
    }
    ret = ck_enc_data_open(req->authenticator, &out->session_key, key_usage, &plain, &plain_len);
    if (ret != 0) {
        ret = ap_fail(out, CK_KRB_AP_ERR_MODIFIED, ret);
        goto out;
    }
    if ((ret = ck_asn1_authenticator_decode(plain, plain_len, &out->authenticator)) != 0) {
        ret = ap_fail(out, CK_KRB_AP_ERR_MODIFIED, ret);
        goto out;
    }
    auth = out->authenticator;
    if (!ck_asn1_principal_equal(auth->cname, etp->cname) ||
        strcmp(ck_asn1_kstring_get(auth->crealm), ck_asn1_kstring_get(etp->crealm)) != 0) {
        ret = ap_fail(out, CK_KRB_AP_ERR_BADMATCH,
                      ck_error_set(CK_ERR_POLICY, "AP-REQ: authenticator client differs from "
                                                  "the ticket's"));
        goto out;
    }
    if ((ret = ck_asn1_time_get(auth->ctime, &out->ctime)) != 0) {
        ret = ap_fail(out, CK_KRB_AP_ERR_MODIFIED, ret);
        goto out;
    }
    out->cusec = auth->cusec;
    if (out->ctime - now > clockskew || now - out->ctime > clockskew) {
        ret = ap_fail(out, CK_KRB_AP_ERR_SKEW,
                      ck_error_set(CK_ERR_SKEW, "AP-REQ: authenticator time off by %lld s",
                                   (long long)(out->ctime - now)));
        goto out;
    }
    if ((out->tkt_flags & CK_TKT_FLG_INVALID) || out->starttime - now > clockskew) {
        ret = ap_fail(out, CK_KRB_AP_ERR_TKT_NYV,
                      ck_error_set(CK_ERR_POLICY, "AP-REQ: ticket not yet valid"));
        goto out;
    }
    if (now - out->endtime > clockskew) {
        ret = ap_fail(out, CK_KRB_AP_ERR_TKT_EXPIRED,
                      ck_error_set(CK_ERR_EXPIRED, "AP-REQ: ticket expired"));
        goto out;
    }
    if (auth->subkey != NULL) {
        if ((ret = ck_key_from_asn1(&out->subkey, auth->subkey)) != 0) {
            ret = ap_fail(out, CK_KRB_AP_ERR_MODIFIED, ret);
            goto out;
        }
        out->has_subkey = true;
    }
    if (auth->seq_number != NULL) {
        if ((ret = ck_asn1_nonce_get(auth->seq_number, &out->seq_number)) != 0) {
            ret = ap_fail(out, CK_KRB_AP_ERR_MODIFIED, ret);
            goto out;
        }
        out->has_seq_number = true;
    }
    if (rc != NULL) {
        char client[1024], server[1024];

        /* Names that do not fit are still distinguished by the authenticator ciphertext. */
        if (ck_asn1_principal_unparse(etp->cname, etp->crealm, client, sizeof(client)) != 0)
            client[0] = '\0';
        if (ck_asn1_principal_unparse(out->ticket->sname, out->ticket->realm, server,
                                      sizeof(server)) != 0)
            server[0] = '\0';
        ret = ck_rcache_check_and_store(
            rc, client, server, out->ctime, out->cusec,
            ASN1_STRING_get0_data(req->authenticator->cipher),
            (size_t)ASN1_STRING_length(req->authenticator->cipher), now);
        if (ret != 0) {
            /* CK_ERR_FULL keeps its code so the server can say why (CK_AP_ETEXT_RCACHE_FULL):
             * the authenticator was not checked, and must not be accepted. */
            ret = ap_fail(out, ret == CK_ERR_REPLAY ? CK_KRB_AP_ERR_REPEAT : CK_KRB_ERR_GENERIC,
                          ret);
            goto out;
        }
    }
    out->krb_error = 0;
    out->auth_enc = req->authenticator;
    req->authenticator = NULL;
out:
    ck_key_clear(&skey);
    if (plain != NULL)
        ck_free_secret(plain, plain_len);
    CK_AP_REQ_free(req);
    return ret;
}

int
ck_ap_rep_build(const ck_key *session_key, int64_t ctime, int32_t cusec, const ck_key *subkey,
                const uint32_t *seq_number, uint8_t **der, size_t *der_len)
{
    CK_ENC_AP_REP_PART *part = NULL;
    CK_AP_REP *rep = NULL;
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    int rc;

    *der = NULL;
    *der_len = 0;
    if (session_key == NULL)
        return ck_error_set(CK_ERR_INVAL, "AP-REP: no session key");
    if ((part = CK_ENC_AP_REP_PART_new()) == NULL || (rep = CK_AP_REP_new()) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "AP-REP");
        goto out;
    }
    if ((rc = ck_asn1_time_set(&part->ctime, ctime)) != 0)
        goto out;
    part->cusec = cusec;
    if (subkey != NULL && (rc = ck_key_to_asn1(subkey, &part->subkey)) != 0)
        goto out;
    if (seq_number != NULL && (rc = ck_asn1_nonce_set(&part->seq_number, *seq_number)) != 0)
        goto out;
    if ((rc = ck_asn1_enc_ap_rep_part_encode(part, &plain, &plain_len)) != 0)
        goto out;
    rep->pvno = CK_KRB5_PVNO;
    rep->msg_type = CK_KRB_AP_REP;
    rc = ck_enc_data_seal(rep->enc_part, session_key, CK_KU_AP_REP_ENCPART, NULL, plain,
                          plain_len);
    if (rc != 0)
        goto out;
    rc = ck_asn1_ap_rep_encode(rep, der, der_len);
out:
    ck_asn1_free_der(plain, plain_len);
    CK_ENC_AP_REP_PART_free(part);
    CK_AP_REP_free(rep);
    return rc;
}

void
ck_ap_rep_result_clear(ck_ap_rep_result *r)
{
    if (r != NULL)
        ck_memzero(r, sizeof(*r));
}

int
ck_ap_rep_verify(const uint8_t *der, size_t len, const ck_key *session_key, int64_t ctime,
                 int32_t cusec, ck_ap_rep_result *out)
{
    CK_AP_REP *rep = NULL;
    CK_ENC_AP_REP_PART *part = NULL;
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    int64_t t;
    int rc;

    memset(out, 0, sizeof(*out));
    if (der == NULL || session_key == NULL) {
        out->krb_error = CK_KRB_ERR_GENERIC;
        return ck_error_set(CK_ERR_INVAL, "AP-REP: missing argument");
    }
    if ((rc = ck_asn1_ap_rep_decode(der, len, &rep)) != 0) {
        out->krb_error = CK_KRB_AP_ERR_MSG_TYPE;
        goto out;
    }
    rc = ck_enc_data_open(rep->enc_part, session_key, CK_KU_AP_REP_ENCPART, &plain, &plain_len);
    if (rc != 0 || (rc = ck_asn1_enc_ap_rep_part_decode(plain, plain_len, &part)) != 0) {
        out->krb_error = CK_KRB_AP_ERR_MODIFIED;
        goto out;
    }
    if ((rc = ck_asn1_time_get(part->ctime, &t)) != 0 || t != ctime || part->cusec != cusec) {
        out->krb_error = CK_KRB_AP_ERR_MUT_FAIL;
        rc = ck_error_set(CK_ERR_INTEGRITY, "AP-REP: time does not match the authenticator's");
        goto out;
    }
    if (part->subkey != NULL) {
        if ((rc = ck_key_from_asn1(&out->subkey, part->subkey)) != 0) {
            out->krb_error = CK_KRB_AP_ERR_MODIFIED;
            goto out;
        }
        out->has_subkey = true;
    }
    if (part->seq_number != NULL) {
        if ((rc = ck_asn1_nonce_get(part->seq_number, &out->seq_number)) != 0) {
            out->krb_error = CK_KRB_AP_ERR_MODIFIED;
            goto out;
        }
        out->has_seq_number = true;
    }
out:
    if (rc != 0) {
        ck_key_clear(&out->subkey);
        out->has_subkey = false;
    }
    if (plain != NULL)
        ck_free_secret(plain, plain_len);
    CK_ENC_AP_REP_PART_free(part);
    CK_AP_REP_free(rep);
    return rc;
}
