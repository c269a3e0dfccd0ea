/* AS exchange (RFC 4120 §3.1, §5.4.1-2). Pre-authentication is a table of mechanisms
 * (preauth.h: PA-ENC-TIMESTAMP today); the reply is built by the reply builder (reply.h).
 *
 * Decisions:
 *   - A client with DISALLOW_ALL_TIX gets KDC_ERR_CLIENT_REVOKED (18), as MIT does ("CLIENT
 *     LOCKED OUT"); a server with DISALLOW_ALL_TIX or DISALLOW_SVR gets KDC_ERR_POLICY.
 *   - Postdating is not supported: POSTDATED, or a `from` beyond the clock skew, is
 *     KDC_ERR_CANNOT_POSTDATE; ALLOW_POSTDATE is ignored (MAY_POSTDATE is never set).
 *   - TGS-only options (FORWARDED, PROXY, RENEW, VALIDATE, ENC_TKT_IN_SKEY) are KDC_ERR_BADOPTION.
 *   - FORWARDABLE/PROXIABLE/RENEWABLE that the principals' attributes disallow are silently not
 *     granted (the flags in the reply tell the client).
 *   - The reply key is the client's current key for the first requested enctype that the realm
 *     permits (supported_enctypes) and the client has; a pre-authentication mechanism may replace
 *     it (PKINIT). Without one, and with no mechanism able to replace it, the request fails with
 *     KDC_ERR_ETYPE_NOSUPP before pre-authentication.
 *   - Unknown padata types are ignored (MIT clients send PA-REQ-ENC-PA-REP, PA-AS-FRESHNESS...). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cablekey/error.h"
#include "cablekey/util.h"
#include "kdc_int.h"

/* The refusal of a pre-authentication mechanism becomes the request's error. */
static void
fail_preauth(struct kdc_request *r, const struct kdc_pa_call *call, struct kdc_pa_run *run)
{
    struct kdc_pa_error *err = &run->err;

    kdc_fail(r, err->code, err->status, "%s", err->detail);
    if (err->e_data != NULL) {
        r->e_data = err->e_data;
        r->e_data_len = err->e_data_len;
        err->e_data = NULL;
        err->e_data_len = 0;
    } else if (err->code == CK_KDC_ERR_PREAUTH_FAILED ||
               err->code == CK_KDC_ERR_PREAUTH_EXPIRED) {
        /* Tell the client what would work (MIT kinit re-derives its key from ETYPE-INFO2). */
        if (kdc_preauth_offers(r->w, call, &r->e_data, &r->e_data_len) != 0 &&
            r->detail[0] == '\0')
            snprintf(r->detail, sizeof(r->detail), "no offers: %s", ck_error_context());
    }
}

void
kdc_process_as(struct kdc_request *r, const uint8_t *der, size_t len)
{
    struct kdc_worker *w = r->w;
    CK_KDC_REQ_BODY *b;
    const ck_db_principal *client = NULL, *server = NULL;
    ck_db_principal placeholder;
    const ck_db_key *client_key = NULL, *tkt_key;
    CK_AUTHORIZATION_DATA *authz = NULL;
    struct kdc_ticket_times times;
    struct kdc_pa_call call;
    struct kdc_pa_run run;
    struct kdc_reply *rb = NULL;
    uint32_t opts = 0, flags = CK_TKT_FLG_INITIAL, attrs;
    int64_t from, till, rtime, endtime, renew_till = 0, life;
    int32_t reply_etype = 0;
    ck_key session, replaced;
    int rc, pa;

    r->kind = "AS_REQ";
    ck_key_clear(&session);
    ck_key_clear(&replaced);
    memset(&run, 0, sizeof(run));
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
    if (rc == CK_ERR_NOTFOUND && kdc_preauth_may_create_client(w, r->cname)) {
        /* Provisioning: a device the realm has never seen asks for the name admission gives
         * it. It can only get a ticket through the mechanism that creates it (keyless, pre-
         * authentication required); the real record is read once that mechanism accepted. */
        memset(&placeholder, 0, sizeof(placeholder));
        placeholder.name = r->cname;
        placeholder.attributes = CK_ATTR_REQUIRES_PREAUTH;
        client = &placeholder;
        rc = 0;
    }
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
    if (kdc_lockout_locked(w, client, r->now)) {
        kdc_fail(r, CK_KDC_ERR_CLIENT_REVOKED, "CLIENT_LOCKED_OUT",
                 "too many failed pre-authentications");
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

    /* Reply key: the first requested enctype the realm permits and the client has a current key
     * for (supported_enctypes restricts it, as it restricts session and ticket keys). */
    for (size_t i = 0; i < r->n_etypes; i++) {
        if (!kdc_enctype_permitted(w, r->etypes[i]))
            continue;
        if (reply_etype == 0)
            reply_etype = r->etypes[i];
        if ((client_key = ck_db_principal_find_key(client, 0, r->etypes[i])) != NULL)
            break;
    }
    if (client_key == NULL && (reply_etype == 0 || !kdc_preauth_keyless(w))) {
        kdc_fail(r, CK_KDC_ERR_ETYPE_NOSUPP, "BAD_ENCRYPTION_TYPE", "no client key");
        return;
    }
    r->rep_etype = client_key != NULL ? client_key->enctype : 0;

    call = (struct kdc_pa_call){
        .req = r->req,
        .req_der = r->req_der,
        .req_len = r->req_len,
        .cname = r->cname,
        .client = client,
        .server = server,
        .client_key = client_key,
        .etypes = r->etypes,
        .n_etypes = r->n_etypes,
        .reply_etype = reply_etype,
        .permitted = w->enctypes,
        .n_permitted = w->n_enctypes,
        .realm = w->realm_name,
        .now = r->now,
        .now_usec = r->now_usec,
        .clockskew = w->clockskew,
        .transport = r->transport,
        .store = w->store,
    };
    pa = kdc_preauth_verify(w, &call, &run);
    if (pa < 0) {
        /* Counted as MIT counts: a wrong key, not a skewed clock or a malformed request. */
        if ((run.err.code == CK_KDC_ERR_PREAUTH_FAILED ||
             run.err.code == CK_KRB_AP_ERR_BAD_INTEGRITY) && client != &placeholder) {
            r->auth_client = client;
            r->auth_event = KDC_AUTH_FAILED;
        }
        fail_preauth(r, &call, &run);
        goto out;
    }
    if (pa == 0 && (client_key == NULL ||
                    (client->attributes & (CK_ATTR_REQUIRES_PREAUTH | CK_ATTR_REQUIRES_HW_AUTH)))) {
        kdc_fail(r, CK_KDC_ERR_PREAUTH_REQUIRED, "NEEDED_PREAUTH", NULL);
        r->e_text = "NEEDED_PREAUTH";
        if (kdc_preauth_offers(w, &call, &r->e_data, &r->e_data_len) != 0)
            snprintf(r->detail, sizeof(r->detail), "no offers: %s", ck_error_context());
        goto out;
    }

    if (client == &placeholder) {
        /* The mechanism created the client (device admission): read its record now. The
         * flush keeps the records already handed out valid (the server's). */
        ck_store_cache_flush(w->store);
        if ((rc = ck_store_get_principal_cached(w->store, r->cname, &client)) != 0) {
            client = NULL;
            kdc_fail(r, CK_KRB_ERR_GENERIC, "LOOKING_UP_CLIENT", "admitted %s: %s", r->cname,
                     ck_error_context());
            goto out;
        }
        call.client = client;
    }
    /* Authorization data the mechanism requires (provisioning: restricted calls). */
    if ((rc = kdc_preauth_authz(w, &call, &run, &authz)) != 0)
        goto fail;

    if ((r->ses_etype = kdc_session_etype(w, r, server)) == 0) {
        kdc_fail(r, CK_KDC_ERR_ETYPE_NOSUPP, "BAD_ENCRYPTION_TYPE", "no session enctype");
        goto out;
    }
    if ((tkt_key = kdc_first_key(w, server)) == NULL) {
        kdc_fail(r, CK_KDC_ERR_ETYPE_NOSUPP, "BAD_ENCRYPTION_TYPE", "no server key");
        goto out;
    }
    r->tkt_etype = tkt_key->enctype;

    /* Times (RFC 4120 §3.1.3). */
    if (ck_asn1_time_get_opt(b->from, 0, &from) != 0 ||
        ck_asn1_time_get_opt(b->till, 0, &till) != 0 ||
        ck_asn1_time_get_opt(b->rtime, 0, &rtime) != 0) {
        kdc_fail(r, CK_KRB_ERR_GENERIC, "DECODE_ERROR", "bad time field");
        goto out;
    }
    if (from > r->now + w->clockskew) {
        kdc_fail(r, CK_KDC_ERR_CANNOT_POSTDATE, "POSTDATE_NOT_SUPPORTED", NULL);
        goto out;
    }
    if (till == 0)
        till = INT64_MAX;
    if (rtime == 0)
        rtime = INT64_MAX;
    if (till <= r->now) {
        kdc_fail(r, CK_KDC_ERR_NEVER_VALID, "NEVER_VALID", NULL);
        goto out;
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
    if (pa > 0)
        flags |= CK_TKT_FLG_PRE_AUTHENT;
    if (server->attributes & CK_ATTR_OK_AS_DELEGATE)
        flags |= CK_TKT_FLG_OK_AS_DELEGATE;
    r->authtime = r->now;

    if ((rc = ck_random_key(r->ses_etype, &session)) != 0)
        goto fail;
    times = (struct kdc_ticket_times){r->now, r->now, endtime, renew_till};
    if ((rc = kdc_reply_acquire(w, &rb)) != 0 ||
        (rc = kdc_reply_set_client(rb, b->cname, w->realm_name)) != 0 ||
        (rc = kdc_reply_set_server(rb, b->sname, w->realm_name)) != 0 ||
        (rc = kdc_reply_set_addresses(rb, b->addresses)) != 0 ||
        (rc = kdc_reply_set_transited(rb, NULL)) != 0 ||
        (rc = kdc_reply_set_authz(rb, authz)) != 0 ||
        (rc = kdc_reply_seal_ticket(rb, &times, flags, &session, tkt_key)) != 0 ||
        (rc = kdc_reply_set_part(rb, b->nonce, r->now, client->pw_expires)) != 0)
        goto fail;

    /* The reply key (perhaps replaced by the mechanism) and the AS-REP padata. */
    rc = kdc_preauth_reply(w, &call, &run, client_key, &replaced, kdc_reply_padata(rb));
    if (rc == CK_ERR_NOTFOUND && client_key == NULL) {
        kdc_fail(r, CK_KDC_ERR_ETYPE_NOSUPP, "BAD_ENCRYPTION_TYPE",
                 "no client key, and the mechanism did not replace it");
        goto out;
    }
    if (rc != 0)
        goto fail;
    if (replaced.length > 0) {
        r->rep_etype = replaced.enctype;
        rc = kdc_reply_encode(rb, CK_KRB_AS_REP, &replaced, CK_KU_AS_REP_ENCPART, NULL,
                              &r->reply, &r->reply_len);
    } else {
        rc = kdc_reply_encode(rb, CK_KRB_AS_REP, &client_key->key, CK_KU_AS_REP_ENCPART,
                              &client_key->kvno, &r->reply, &r->reply_len);
    }
    if (rc != 0)
        goto fail;
    r->status = "ISSUE";
    if (pa > 0) {
        r->auth_client = client;
        r->auth_event = KDC_AUTH_OK;
    }
    ck_strlcpy(r->detail, run.detail, sizeof(r->detail));
    goto out;
fail:
    kdc_fail(r, CK_KRB_ERR_GENERIC, "INTERNAL_ERROR", "%s (%s)", ck_strerror(rc),
             ck_error_context());
out:
    CK_AUTHORIZATION_DATA_free(authz);
    kdc_reply_release(w, rb);
    kdc_preauth_run_done(w, &run);
    ck_key_clear(&session);
    ck_key_clear(&replaced);
}
