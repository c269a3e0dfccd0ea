/* The client side of the key version service (keyagent.h): the AS exchange with the service's
 * own key, and one AP-REQ + KRB-PRIV exchange with a KDC's key version service.
 *
 * The reply's keys are secret: the KRB-PRIV is read under the fresh subkey this exchange put in
 * its authenticator, after the AP-REP proved the server holds the keyagent service key (only a
 * KDC does); its sequence number must be the one the AP-REP announced, its timestamp within
 * the clock skew. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/ap.h"
#include "cablekey/error.h"
#include "cablekey/keyagent.h"
#include "cablekey/kpasswd.h"
#include "cablekey/krb5_asn1.h"
#include "cablekey/principal.h"
#include "cablekey/safepriv.h"
#include "cablekey/util.h"

/* kt's entries of p with kvno, copied. */
static int
keytab_of_kvno(const ck_keytab *kt, const ck_principal *p, uint32_t kvno, ck_keytab **out)
{
    ck_keytab *sub = NULL;
    int rc;

    *out = NULL;
    if ((rc = ck_keytab_new(&sub)) != 0)
        return rc;
    for (size_t i = 0; i < kt->n_entries; i++) {
        const ck_keytab_entry *e = &kt->entries[i];
        if (e->kvno == kvno && ck_principal_equal(e->principal, p) &&
            (rc = ck_keytab_add(sub, e->principal, e->kvno, e->timestamp, &e->key)) != 0) {
            ck_keytab_free(sub);
            return rc;
        }
    }
    *out = sub;
    return 0;
}

/* The kvnos to try: hint (if the keytab has it), then the others newest first. */
static size_t
login_order(const ck_keytab *kt, const ck_principal *p, uint32_t hint, uint32_t *order)
{
    uint32_t below = UINT32_MAX;
    size_t n = 0;

    for (size_t i = 0; hint != 0 && i < kt->n_entries; i++)
        if (kt->entries[i].kvno == hint && ck_principal_equal(kt->entries[i].principal, p)) {
            order[n++] = hint;
            break;
        }
    while (n < CK_KEYAGENT_LOGIN_TRIES) {
        uint32_t best = 0;

        for (size_t i = 0; i < kt->n_entries; i++) {
            uint32_t kv = kt->entries[i].kvno;
            if (kv > best && kv < below && kv != hint &&
                ck_principal_equal(kt->entries[i].principal, p))
                best = kv;
        }
        if (best == 0)
            break;
        order[n++] = best;
        below = best;
    }
    return n;
}

int
ck_keyagent_login(const ck_kdc_transport *kdc, const char *principal, const ck_keytab *kt,
                  uint32_t kvno_hint, ck_creds **out, uint32_t *used_kvno)
{
    ck_principal *p = NULL;
    ck_keytab *sub = NULL;
    ck_as_params ap;
    char service[CK_REALM_MAX_LEN + 16];
    uint32_t order[CK_KEYAGENT_LOGIN_TRIES];
    size_t n;
    int rc;

    *out = NULL;
    if (used_kvno != NULL)
        *used_kvno = 0;
    if ((rc = ck_principal_parse(principal, NULL, CK_PRINCIPAL_PARSE_REQUIRE_REALM, &p)) != 0)
        return ck_error_set(rc, "keytab-agent: principal \"%s\": %s", principal,
                            ck_error_context());
    snprintf(service, sizeof(service), CK_KEYAGENT_SERVICE "/%s", p->realm);
    memset(&ap, 0, sizeof(ap));
    ap.realm = p->realm;
    ap.client = principal;
    ap.service = service;
    ap.lifetime = CK_KEYAGENT_TICKET_LIFE;
    ap.transport = kdc;
    if ((n = login_order(kt, p, kvno_hint, order)) == 0) {
        rc = ck_error_set(CK_ERR_NOTFOUND, "the keytab holds no key of %s", principal);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if ((rc = keytab_of_kvno(kt, p, order[i], &sub)) != 0)
            goto out;
        rc = ck_client_as_keytab(&ap, sub, out);
        ck_keytab_free(sub);
        sub = NULL;
        if (rc == 0) {
            if (used_kvno != NULL)
                *used_kvno = order[i];
            goto out;
        }
        /* Another kvno is worth a try only when this key was the wrong one. */
        if (!(rc == CK_ERR_INTEGRITY ||
              (rc == CK_ERR_KRB && (ck_error_krb_code() == CK_KDC_ERR_PREAUTH_FAILED ||
                                    ck_error_krb_code() == CK_KRB_AP_ERR_BAD_INTEGRITY))))
            goto out;
    }
out:
    ck_principal_free(p);
    return rc;
}

/* A KRB-ERROR reply: CK_ERR_KRB with its code and e-text. */
static int
krb_error_reply(const uint8_t *der, size_t len)
{
    CK_KRB_ERROR_MSG *err = NULL;
    const char *text;
    int rc;

    if (ck_asn1_krb_error_decode(der, len, &err) != 0)
        return ck_error_set(CK_ERR_PROTO, "keyagent: undecodable KRB-ERROR reply");
    text = err->e_text != NULL ? ck_asn1_kstring_get(err->e_text) : NULL;
    rc = ck_error_set(CK_ERR_KRB, "key version service refused: error %d%s%s",
                      (int)err->error_code, text != NULL ? ": " : "", text != NULL ? text : "");
    ck_error_set_krb_code((int)err->error_code);
    CK_KRB_ERROR_MSG_free(err);
    return rc;
}

int
ck_keyagent_exchange(const ck_kdc_transport *svc, const ck_creds *creds,
                     const ck_keyagent_req *req, ck_keyagent_rep *rep)
{
    ck_kdc_transport t;
    CK_TICKET *ticket = NULL;
    CK_PRINCIPAL_NAME *cname = NULL;
    const ck_principal *c = creds->client;
    ck_key subkey;
    ck_krb_address dir0;
    ck_krb_msg_params params;
    ck_krb_msg_check check;
    ck_krb_msg_info info;
    ck_ap_rep_result aprep;
    ck_kpasswd_rep fr;
    uint8_t *apreq = NULL, *inner = NULL, *priv = NULL, *msg = NULL, *reply = NULL, *data = NULL;
    size_t apreq_len = 0, inner_len = 0, priv_len = 0, msg_len = 0, reply_len = 0, data_len = 0;
    int64_t ctime = 0;
    int32_t cusec = 0;
    uint32_t seq;
    int rc;

    memset(rep, 0, sizeof(*rep));
    memset(&subkey, 0, sizeof(subkey));
    memset(&aprep, 0, sizeof(aprep));
    /* 30 bits: MIT encodes sequence numbers as signed 32-bit integers. */
    if ((rc = ck_random_bytes(&seq, sizeof(seq))) != 0)
        goto out;
    seq &= 0x3fffffffu;
    if ((rc = ck_asn1_ticket_decode(creds->ticket, creds->ticket_len, &ticket)) != 0 ||
        (rc = ck_asn1_principal_new(c->name_type, (const char *const *)c->components,
                                    c->n_components, &cname)) != 0 ||
        (rc = ck_random_key(creds->session_key.enctype, &subkey)) != 0 ||
        (rc = ck_ap_req_build(ticket, &creds->session_key, c->realm, cname,
                              CK_AP_OPT_MUTUAL_REQUIRED, NULL, CK_KU_AP_REQ_AUTH, &subkey, &seq,
                              &ctime, &cusec, &apreq, &apreq_len)) != 0 ||
        (rc = ck_keyagent_req_encode(req, &inner, &inner_len)) != 0 ||
        (rc = ck_krb_address_directional(0, &dir0)) != 0)
        goto out;
    memset(&params, 0, sizeof(params));
    params.use_timestamp = true;
    params.use_seq = true;
    params.seq = seq;
    params.s_address = &dir0;
    if ((rc = ck_krb_priv_build(&subkey, inner, inner_len, &params, &priv, &priv_len)) != 0 ||
        (rc = ck_kpasswd_req_build(CK_KEYAGENT_VERSION, apreq, apreq_len, priv, priv_len, &msg,
                                   &msg_len)) != 0)
        goto out;
    t = *svc;
    t.tcp_only = true;
    if ((rc = ck_kdc_send(&t, msg, msg_len, &reply, &reply_len, NULL)) != 0)
        goto out;
    if ((rc = ck_kpasswd_rep_parse(reply, reply_len, &fr)) != 0) {
        rc = ck_error_set(CK_ERR_PROTO, "keyagent reply: %s", ck_error_context());
        goto out;
    }
    if (fr.is_error) {
        rc = krb_error_reply(fr.body, fr.body_len);
        goto out;
    }
    if (fr.version != CK_KEYAGENT_VERSION) {
        rc = ck_error_set(CK_ERR_PROTO, "keyagent reply: version 0x%04x", (unsigned)fr.version);
        goto out;
    }
    if ((rc = ck_ap_rep_verify(fr.ap_rep, fr.ap_rep_len, &creds->session_key, ctime, cusec,
                               &aprep)) != 0) {
        rc = ck_error_set(CK_ERR_PROTO, "keyagent reply: AP-REP: %s", ck_error_context());
        goto out;
    }
    memset(&check, 0, sizeof(check));
    check.require_timestamp = true;
    check.check_seq = true;
    check.seq = aprep.has_seq_number ? aprep.seq_number : 0;
    if ((rc = ck_krb_priv_read(&subkey, fr.body, fr.body_len, &check, &data, &data_len,
                               &info)) != 0) {
        rc = ck_error_set(rc, "keyagent reply: KRB-PRIV: %s", ck_error_context());
        goto out;
    }
    rc = ck_keyagent_rep_decode(data, data_len, rep);
out:
    if (data != NULL)
        ck_free_secret(data, data_len);
    ck_free_secret(inner, inner_len);
    ck_asn1_free_der(apreq, apreq_len);
    free(priv);
    free(msg);
    free(reply);
    ck_ap_rep_result_clear(&aprep);
    ck_key_clear(&subkey);
    CK_TICKET_free(ticket);
    CK_PRINCIPAL_NAME_free(cname);
    return rc;
}
