/* AS exchange (RFC 4120 §3.1, §5.4.1-2): password clients with PA-ENC-TIMESTAMP.
 *
 * Decisions:
 *   - A client with DISALLOW_ALL_TIX gets KDC_ERR_CLIENT_REVOKED (18), as MIT does ("CLIENT
 *     LOCKED OUT"); a server with DISALLOW_ALL_TIX or DISALLOW_SVR gets KDC_ERR_POLICY.
 *   - Postdating is not supported: POSTDATED, or a `from` beyond the clock skew, is
 *     KDC_ERR_CANNOT_POSTDATE; ALLOW_POSTDATE is ignored (MAY_POSTDATE is never set).
 *   - TGS-only options (FORWARDED, PROXY, RENEW, VALIDATE, ENC_TKT_IN_SKEY) are KDC_ERR_BADOPTION.
 *   - FORWARDABLE/PROXIABLE/RENEWABLE that the principals' attributes disallow are silently not
 *     granted (the flags in the reply tell the client).
 *   - The reply key is the client's key for the first requested enctype it has at its current
 *     kvno; PA-ENC-TIMESTAMP may use any of the client's current keys.
 *   - Unknown padata types are ignored (MIT clients send PA-REQ-ENC-PA-REP, PA-AS-FRESHNESS...). */
#include <stdint.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cablekey/error.h"
#include "cablekey/util.h"
#include "kdc_int.h"

/* Appends a PA-ETYPE-INFO2 with one entry for key k to *md. The encoding depends only on the
 * key's enctype and salt, so the worker keeps the last one and reuses it for the same pair. */
static int
add_etype_info2(struct kdc_worker *w, CK_METHOD_DATA **md, const ck_db_key *k)
{
    CK_ETYPE_INFO2 *info = NULL;
    char salt[CK_STORE_MAX_SALT + 1];
    uint8_t *der = NULL;
    size_t len = 0;
    int rc;

    if (k->salt_len > CK_STORE_MAX_SALT)
        return ck_error_set(CK_ERR_LIMIT, "salt too long");
    if (w->ei2_der != NULL && w->ei2_etype == k->enctype && w->ei2_salt_len == k->salt_len &&
        (k->salt_len == 0 || memcmp(w->ei2_salt, k->salt, k->salt_len) == 0))
        return ck_asn1_padata_add(md, CK_PA_ETYPE_INFO2, w->ei2_der, w->ei2_len);
    if (k->salt_len > 0)
        memcpy(salt, k->salt, k->salt_len);
    salt[k->salt_len] = '\0';
    /* s2kparams stay absent: keys are made with the default iteration counts. */
    if ((rc = ck_asn1_etype_info2_add(&info, k->enctype, k->salt_len > 0 ? salt : NULL, NULL,
                                      0)) != 0)
        goto out;
    if ((rc = ck_asn1_etype_info2_encode(info, &der, &len)) != 0)
        goto out;
    if ((rc = ck_asn1_padata_add(md, CK_PA_ETYPE_INFO2, der, len)) != 0)
        goto out;
    /* Keep it (it is public: the enctype and salt every client is told). */
    OPENSSL_free(w->ei2_der);
    w->ei2_der = der;
    w->ei2_len = len;
    w->ei2_etype = k->enctype;
    w->ei2_salt_len = k->salt_len;
    if (k->salt_len > 0)
        memcpy(w->ei2_salt, k->salt, k->salt_len);
    der = NULL;
out:
    OPENSSL_free(der);
    CK_ETYPE_INFO2_free(info);
    return rc;
}

/* METHOD-DATA for PREAUTH_REQUIRED / PREAUTH_FAILED: PA-ETYPE-INFO2 then an empty
 * PA-ENC-TIMESTAMP (the methods we offer), as MIT kinit expects. */
static void
set_preauth_edata(struct kdc_request *r, const ck_db_key *reply_key)
{
    CK_METHOD_DATA *md = NULL;

    if (add_etype_info2(r->w, &md, reply_key) == 0 &&
        ck_asn1_padata_add(&md, CK_PA_ENC_TIMESTAMP, NULL, 0) == 0)
        ck_asn1_method_data_encode(md, &r->e_data, &r->e_data_len);
    CK_METHOD_DATA_free(md);
}

/* Checks PA-ENC-TIMESTAMP. Returns true if it verified; otherwise sets the error. */
static bool
verify_enc_timestamp(struct kdc_request *r, const CK_PA_DATA *pa, const ck_db_principal *client,
                     const ck_db_key *reply_key)
{
    CK_ENCRYPTED_DATA *ed = NULL;
    CK_PA_ENC_TS_ENC *ts = NULL;
    const ck_db_key *k;
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    int64_t t;
    bool ok = false;

    if (ck_asn1_encrypted_data_decode(ASN1_STRING_get0_data(pa->padata_value),
                                      (size_t)ASN1_STRING_length(pa->padata_value), &ed) != 0) {
        kdc_fail(r, CK_KDC_ERR_PREAUTH_FAILED, "PREAUTH_FAILED", "undecodable PA-ENC-TIMESTAMP");
        goto out;
    }
    if ((k = ck_db_principal_find_key(client, 0, ed->etype)) == NULL) {
        kdc_fail(r, CK_KDC_ERR_PREAUTH_FAILED, "PREAUTH_FAILED",
                 "no client key for PA-ENC-TIMESTAMP enctype %d", (int)ed->etype);
        goto out;
    }
    if (ck_enc_data_open(ed, &k->key, CK_KU_PA_ENC_TS, &plain, &plain_len) != 0 ||
        ck_asn1_pa_enc_ts_enc_decode(plain, plain_len, &ts) != 0 ||
        ck_asn1_time_get(ts->patimestamp, &t) != 0) {
        kdc_fail(r, CK_KDC_ERR_PREAUTH_FAILED, "PREAUTH_FAILED", NULL);
        goto out;
    }
    if (t - r->now > r->w->clockskew || r->now - t > r->w->clockskew) {
        kdc_fail(r, CK_KRB_AP_ERR_SKEW, "SKEW", "PA-ENC-TIMESTAMP off by %lld s",
                 (long long)(t - r->now));
        goto out;
    }
    ok = true;
out:
    if (!ok && r->error_code == CK_KDC_ERR_PREAUTH_FAILED)
        set_preauth_edata(r, reply_key);
    if (plain != NULL)
        ck_free_secret(plain, plain_len);
    CK_PA_ENC_TS_ENC_free(ts);
    CK_ENCRYPTED_DATA_free(ed);
    return ok;
}

void
kdc_process_as(struct kdc_request *r, const uint8_t *der, size_t len)
{
    struct kdc_worker *w = r->w;
    CK_KDC_REQ_BODY *b;
    const ck_db_principal *client = NULL, *server = NULL;
    const ck_db_key *reply_key = NULL, *tkt_key;
    struct kdc_ticket_times times;
    const CK_PA_DATA *pa;
    CK_ENC_TICKET_PART *etp = NULL;
    CK_ENC_KDC_REP_PART *part = NULL;
    CK_KDC_REP *rep = NULL;
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    uint32_t opts = 0, flags = CK_TKT_FLG_INITIAL, attrs;
    int64_t from, till, rtime, endtime, renew_till = 0, life;
    ck_key session;
    bool preauth = false;
    int rc;

    r->kind = "AS_REQ";
    ck_key_clear(&session);
    if ((rc = ck_asn1_as_req_decode(der, len, &r->req)) != 0) {
        kdc_fail(r, CK_KRB_ERR_GENERIC, "DECODE_ERROR", "%s", ck_error_context());
        return;
    }
    b = r->req->req_body;
    if (ck_asn1_etypes_get(b, r->etypes, CK_ASN1_MAX_ETYPES, &r->n_etypes) != 0)
        r->n_etypes = 0;
    if (ck_asn1_flags_get(b->kdc_options, &opts) != 0)
        opts = 0;
    if (!kdc_unparse(b->cname, b->realm, r->cname, sizeof(r->cname))) {
        kdc_fail(r, CK_KDC_ERR_C_PRINCIPAL_UNKNOWN, "CLIENT_NOT_FOUND", "no usable client name");
        return;
    }
    if (!kdc_unparse(b->sname, b->realm, r->sname, sizeof(r->sname))) {
        kdc_fail(r, CK_KDC_ERR_S_PRINCIPAL_UNKNOWN, "SERVER_NOT_FOUND", "no usable server name");
        return;
    }
    r->error_with_client = true;
    rc = ck_store_get_principal_cached(w->store, r->cname, &client);
    if (rc != 0) {
        if (rc == CK_ERR_NOTFOUND)
            kdc_fail(r, CK_KDC_ERR_C_PRINCIPAL_UNKNOWN, "CLIENT_NOT_FOUND", NULL);
        else
            kdc_fail(r, CK_KRB_ERR_GENERIC, "LOOKING_UP_CLIENT", "%s", ck_error_context());
        return;
    }
    rc = ck_store_get_principal_cached(w->store, r->sname, &server);
    if (rc != 0) {
        if (rc == CK_ERR_NOTFOUND)
            kdc_fail(r, CK_KDC_ERR_S_PRINCIPAL_UNKNOWN, "SERVER_NOT_FOUND", NULL);
        else
            kdc_fail(r, CK_KRB_ERR_GENERIC, "LOOKING_UP_SERVER", "%s", ck_error_context());
        return;
    }

    /* Policy checks, in MIT's order (validate_as_request). */
    if (opts & (CK_KDC_OPT_FORWARDED | CK_KDC_OPT_PROXY | CK_KDC_OPT_RENEW |
                CK_KDC_OPT_VALIDATE | CK_KDC_OPT_ENC_TKT_IN_SKEY)) {
        kdc_fail(r, CK_KDC_ERR_BADOPTION, "BAD_OPTION", "TGS-only option in AS-REQ");
        return;
    }
    if (client->expires != 0 && client->expires <= r->now) {
        kdc_fail(r, CK_KDC_ERR_NAME_EXP, "CLIENT_EXPIRED", NULL);
        return;
    }
    if (server->expires != 0 && server->expires <= r->now) {
        kdc_fail(r, CK_KDC_ERR_SERVICE_EXP, "SERVICE_EXPIRED", NULL);
        return;
    }
    if (!(server->attributes & CK_ATTR_PWCHANGE_SERVICE) &&
        ((client->pw_expires != 0 && client->pw_expires <= r->now) ||
         (client->attributes & CK_ATTR_REQUIRES_PWCHANGE))) {
        kdc_fail(r, CK_KDC_ERR_KEY_EXPIRED, "CLIENT_KEY_EXPIRED", NULL);
        return;
    }
    if (client->attributes & CK_ATTR_DISALLOW_ALL_TIX) {
        kdc_fail(r, CK_KDC_ERR_CLIENT_REVOKED, "CLIENT_LOCKED_OUT", NULL);
        return;
    }
    if (server->attributes & (CK_ATTR_DISALLOW_ALL_TIX | CK_ATTR_DISALLOW_SVR)) {
        kdc_fail(r, CK_KDC_ERR_POLICY, "SERVICE_DISALLOWED", NULL);
        return;
    }
    if (opts & CK_KDC_OPT_POSTDATED) {
        kdc_fail(r, CK_KDC_ERR_CANNOT_POSTDATE, "POSTDATE_NOT_SUPPORTED", NULL);
        return;
    }

    /* Reply key: the first requested enctype the client has a current key for. */
    for (size_t i = 0; i < r->n_etypes && reply_key == NULL; i++)
        if (ck_enctype_is_supported(r->etypes[i]))
            reply_key = ck_db_principal_find_key(client, 0, r->etypes[i]);
    if (reply_key == NULL) {
        kdc_fail(r, CK_KDC_ERR_ETYPE_NOSUPP, "BAD_ENCRYPTION_TYPE", "no client key");
        return;
    }
    r->rep_etype = reply_key->enctype;

    pa = ck_asn1_padata_find(r->req->padata, CK_PA_ENC_TIMESTAMP);
    if (pa != NULL) {
        if (!verify_enc_timestamp(r, pa, client, reply_key))
            return;
        preauth = true;
    } else if (client->attributes & (CK_ATTR_REQUIRES_PREAUTH | CK_ATTR_REQUIRES_HW_AUTH)) {
        kdc_fail(r, CK_KDC_ERR_PREAUTH_REQUIRED, "NEEDED_PREAUTH", NULL);
        r->e_text = "NEEDED_PREAUTH";
        set_preauth_edata(r, reply_key);
        return;
    }

    if ((r->ses_etype = kdc_session_etype(w, r, server)) == 0) {
        kdc_fail(r, CK_KDC_ERR_ETYPE_NOSUPP, "BAD_ENCRYPTION_TYPE", "no session enctype");
        return;
    }
    if ((tkt_key = kdc_first_key(w, server)) == NULL) {
        kdc_fail(r, CK_KDC_ERR_ETYPE_NOSUPP, "BAD_ENCRYPTION_TYPE", "no server key");
        return;
    }
    r->tkt_etype = tkt_key->enctype;

    /* Times (RFC 4120 §3.1.3). */
    if (ck_asn1_time_get_opt(b->from, 0, &from) != 0 ||
        ck_asn1_time_get_opt(b->till, 0, &till) != 0 ||
        ck_asn1_time_get_opt(b->rtime, 0, &rtime) != 0) {
        kdc_fail(r, CK_KRB_ERR_GENERIC, "DECODE_ERROR", "bad time field");
        return;
    }
    if (from > r->now + w->clockskew) {
        kdc_fail(r, CK_KDC_ERR_CANNOT_POSTDATE, "POSTDATE_NOT_SUPPORTED", NULL);
        return;
    }
    if (till == 0)
        till = INT64_MAX;
    if (rtime == 0)
        rtime = INT64_MAX;
    if (till <= r->now) {
        kdc_fail(r, CK_KDC_ERR_NEVER_VALID, "NEVER_VALID", NULL);
        return;
    }
    attrs = client->attributes | server->attributes;
    life = kdc_min64(kdc_life_cap(w, client), kdc_life_cap(w, server));
    endtime = kdc_min64(till, r->now + life);
    if ((opts & CK_KDC_OPT_RENEWABLE_OK) && !(opts & CK_KDC_OPT_RENEWABLE) && till > endtime) {
        opts |= CK_KDC_OPT_RENEWABLE;
        rtime = till;
    }
    if ((opts & CK_KDC_OPT_RENEWABLE) && !(attrs & CK_ATTR_DISALLOW_RENEWABLE)) {
        int64_t rt = kdc_min64(rtime, r->now + kdc_min64(kdc_renew_cap(w, client),
                                                 kdc_renew_cap(w, server)));
        if (rt > endtime) {
            renew_till = rt;
            flags |= CK_TKT_FLG_RENEWABLE;
        }
    }
    if ((opts & CK_KDC_OPT_FORWARDABLE) && !(attrs & CK_ATTR_DISALLOW_FORWARDABLE))
        flags |= CK_TKT_FLG_FORWARDABLE;
    if ((opts & CK_KDC_OPT_PROXIABLE) && !(attrs & CK_ATTR_DISALLOW_PROXIABLE))
        flags |= CK_TKT_FLG_PROXIABLE;
    if (preauth)
        flags |= CK_TKT_FLG_PRE_AUTHENT;
    if (server->attributes & CK_ATTR_OK_AS_DELEGATE)
        flags |= CK_TKT_FLG_OK_AS_DELEGATE;
    r->authtime = r->now;

    if ((rc = ck_random_key(r->ses_etype, &session)) != 0)
        goto fail;

    /* The ticket. Names and addresses are borrowed from the request (given back at out:).
     * Each name goes into two messages (cname: EncTicketPart and AS-REP; sname: Ticket and
     * EncASRepPart): encode it once so the enclosing encoders replay its bytes. */
    if ((rc = kdc_freeze_name(b->cname)) != 0 || (rc = kdc_freeze_name(b->sname)) != 0)
        goto fail;
    if ((rc = kdc_reply_objects(w, &etp, &part, &rep)) != 0)
        goto fail;
    CK_PRINCIPAL_NAME_free(etp->cname);
    etp->cname = b->cname;
    etp->caddr = b->addresses;
    etp->transited->tr_type = CK_TR_DOMAIN_X500_COMPRESS;
    times = (struct kdc_ticket_times){r->now, r->now, endtime, renew_till};
    if ((rc = kdc_seal_ticket(w, rep, etp, b->sname, &times, flags, &session, w->realm_name,
                              tkt_key)) != 0)
        goto fail;

    /* EncASRepPart: the ticket's key, flags and times, built once. */
    CK_PRINCIPAL_NAME_free(part->sname);
    part->sname = b->sname;
    kdc_share_fields(part, etp);
    if ((rc = kdc_last_req(part->last_req, r->now)) != 0 ||
        (rc = ck_asn1_nonce_copy(&part->nonce, b->nonce)) != 0 ||
        (client->pw_expires != 0 &&
         (rc = ck_asn1_time_set(&part->key_expiration, client->pw_expires)) != 0) ||
        (rc = ck_asn1_kstring_set(&part->srealm, w->realm_name)) != 0)
        goto fail;
    if ((rc = ck_asn1_enc_as_rep_part_encode(part, &plain, &plain_len)) != 0)
        goto fail;

    /* AS-REP. */
    rep->pvno = CK_KRB5_PVNO;
    rep->msg_type = CK_KRB_AS_REP;
    CK_PRINCIPAL_NAME_free(rep->cname);
    rep->cname = b->cname;
    if ((rc = ck_enc_data_seal(rep->enc_part, &reply_key->key, CK_KU_AS_REP_ENCPART,
                               &reply_key->kvno, plain, plain_len)) != 0 ||
        (rc = ck_asn1_kstring_set(&rep->crealm, w->realm_name)) != 0 ||
        (rc = add_etype_info2(w, &rep->padata, reply_key)) != 0 ||
        (rc = ck_asn1_as_rep_encode(rep, &r->reply, &r->reply_len)) != 0)
        goto fail;
    r->status = "ISSUE";
    goto out;
fail:
    kdc_fail(r, CK_KRB_ERR_GENERIC, "INTERNAL_ERROR", "%s (%s)", ck_strerror(rc),
             ck_error_context());
out:
    kdc_reply_return_lent(etp, part, rep);
    kdc_reply_objects_done(w, etp, part, rep);
    ck_asn1_free_der(plain, plain_len);
    ck_key_clear(&session);
}
