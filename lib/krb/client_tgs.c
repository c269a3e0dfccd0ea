/* Client TGS exchange (RFC 4120 §3.3): TGS-REQ with PA-TGS-REQ (an AP-REQ carrying the TGT and an
 * authenticator whose checksum covers the KDC-REQ-BODY), TGS-REP decryption and checks, renewal. */
#include <stdlib.h>
#include <string.h>

#include "cablekey/ap.h"
#include "cablekey/client.h"
#include "cablekey/error.h"
#include "cablekey/krb5_asn1.h"
#include "cablekey/util.h"
#include "krb/client_int.h"

struct tgs_req {
    const ck_creds *tgt;
    const ck_principal *server;
    uint32_t options;
    int64_t till;
    int64_t rtime;
    const int32_t *etypes;
    size_t n_etypes;
    bool use_subkey;
    const ck_kdc_transport *transport;
};

static int
tgs_exchange(const struct tgs_req *r, ck_creds **out)
{
    CK_TICKET *tkt = NULL;
    CK_TGS_REQ *req = NULL;
    CK_TGS_REP *rep = NULL;
    CK_ENC_KDC_REP_PART *enc = NULL;
    CK_CHECKSUM *cksum = NULL;
    CK_PRINCIPAL_NAME *cname = NULL;
    ck_key subkey;
    const uint8_t *body;
    size_t body_len;
    uint8_t *ap = NULL, *der = NULL, *reply = NULL, *plain = NULL;
    size_t ap_len = 0, der_len = 0, reply_len = 0, plain_len = 0;
    uint32_t nonce;
    int rc;

    memset(&subkey, 0, sizeof(subkey));
    *out = NULL;
    if ((rc = ck_asn1_ticket_decode(r->tgt->ticket, r->tgt->ticket_len, &tkt)) != 0 ||
        (rc = ck_client_nonce(&nonce)) != 0)
        goto out;
    if ((req = CK_TGS_REQ_new()) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "TGS-REQ");
        goto out;
    }
    req->pvno = CK_KRB5_PVNO;
    req->msg_type = CK_KRB_TGS_REQ;
    if ((rc = ck_client_fill_body(req->req_body, r->options, NULL, r->server, r->till, r->rtime,
                                  nonce, r->etypes, r->n_etypes)) != 0)
        goto out;
    /* The authenticator checksum covers exactly the body bytes that go on the wire. */
    if ((rc = ck_asn1_kdc_req_body_der(req, &body, &body_len)) != 0 ||
        (rc = ck_checksum_new(&r->tgt->session_key, 0, CK_KU_TGS_REQ_AUTH_CKSUM, body, body_len,
                              &cksum)) != 0)
        goto out;
    if (r->use_subkey && (rc = ck_random_key(r->tgt->session_key.enctype, &subkey)) != 0)
        goto out;
    if ((rc = ck_client_pname(r->tgt->client, &cname)) != 0 ||
        (rc = ck_ap_req_build(tkt, &r->tgt->session_key, r->tgt->client->realm, cname, 0, cksum,
                              CK_KU_TGS_REQ_AUTH, r->use_subkey ? &subkey : NULL, NULL, NULL,
                              NULL, &ap, &ap_len)) != 0 ||
        (rc = ck_asn1_padata_add(&req->padata, CK_PA_TGS_REQ, ap, ap_len)) != 0 ||
        (rc = ck_asn1_tgs_req_encode(req, &der, &der_len)) != 0)
        goto out;
    if ((rc = ck_kdc_send(r->transport, der, der_len, &reply, &reply_len, NULL)) != 0)
        goto out;
    switch (ck_asn1_msg_type(reply, reply_len)) {
    case CK_KRB_TGS_REP:
        break;
    case CK_KRB_ERROR:
        rc = ck_client_krb_error(reply, reply_len, NULL);
        goto out;
    default:
        rc = ck_error_set(CK_ERR_PROTO, "TGS: unexpected reply message type");
        goto out;
    }
    if ((rc = ck_asn1_tgs_rep_decode(reply, reply_len, &rep)) != 0)
        goto out;
    rc = ck_enc_data_open(rep->enc_part, r->use_subkey ? &subkey : &r->tgt->session_key,
                          r->use_subkey ? CK_KU_TGS_REP_ENCPART_SUBKEY
                                        : CK_KU_TGS_REP_ENCPART_SESSKEY,
                          &plain, &plain_len);
    if (rc != 0)
        goto out;
    if ((rc = ck_asn1_enc_kdc_rep_part_decode(plain, plain_len, &enc, NULL)) != 0)
        goto out;
    rc = ck_client_make_creds(rep, enc, nonce, r->tgt->client, r->server, r->etypes, r->n_etypes,
                              out);
out:
    ck_key_clear(&subkey);
    if (plain != NULL)
        ck_free_secret(plain, plain_len);
    free(reply);
    ck_asn1_free_der(der, der_len);
    ck_asn1_free_der(ap, ap_len);
    CK_PRINCIPAL_NAME_free(cname);
    CK_CHECKSUM_free(cksum);
    CK_ENC_KDC_REP_PART_free(enc);
    CK_TGS_REP_free(rep);
    CK_TGS_REQ_free(req);
    CK_TICKET_free(tkt);
    return rc;
}

int
ck_client_tgs(const ck_tgs_params *p, ck_creds **out)
{
    struct tgs_req r;
    ck_principal *server = NULL;
    int64_t now;
    int32_t usec;
    int rc;

    if (out == NULL)
        return ck_error_set(CK_ERR_INVAL, "TGS: out is NULL");
    *out = NULL;
    if (p == NULL || p->tgt == NULL || p->service == NULL || p->transport == NULL)
        return ck_error_set(CK_ERR_INVAL, "TGS: tgt, service and transport are required");
    if (p->n_enctypes > CK_CLIENT_MAX_ETYPES)
        return ck_error_set(CK_ERR_LIMIT, "TGS: more than %d enctypes", CK_CLIENT_MAX_ETYPES);
    /* Services default to the realm of the TGS that issued the TGT. */
    if ((rc = ck_principal_parse(p->service, p->tgt->server->realm, 0, &server)) != 0)
        return rc;
    ck_now(&now, &usec);
    memset(&r, 0, sizeof(r));
    r.tgt = p->tgt;
    r.server = server;
    r.options = p->kdc_options;
    r.till = p->lifetime > 0 ? now + p->lifetime : p->tgt->endtime;
    if (p->renew_life > 0) {
        r.options |= CK_KDC_OPT_RENEWABLE;
        r.rtime = now + p->renew_life;
    }
    r.etypes = p->enctypes != NULL && p->n_enctypes > 0 ? p->enctypes : ck_client_default_etypes;
    r.n_etypes = p->enctypes != NULL && p->n_enctypes > 0 ? p->n_enctypes : 4;
    r.use_subkey = p->use_subkey;
    r.transport = p->transport;
    rc = tgs_exchange(&r, out);
    ck_principal_free(server);
    return rc;
}

int
ck_client_renew(const ck_creds *creds, const ck_kdc_transport *t, ck_creds **out)
{
    struct tgs_req r;

    if (out == NULL)
        return ck_error_set(CK_ERR_INVAL, "renew: out is NULL");
    *out = NULL;
    if (creds == NULL || t == NULL)
        return ck_error_set(CK_ERR_INVAL, "renew: credentials and transport are required");
    if (!(creds->flags & CK_TKT_FLG_RENEWABLE) || creds->renew_till == 0)
        return ck_error_set(CK_ERR_POLICY, "renew: the ticket is not renewable");
    memset(&r, 0, sizeof(r));
    r.tgt = creds;
    r.server = creds->server;
    r.options = CK_KDC_OPT_RENEW | CK_KDC_OPT_RENEWABLE;
    /* Ask for the whole renewable life; the KDC clamps till to renew-till and max_life. */
    r.till = creds->renew_till;
    r.rtime = creds->renew_till;
    r.etypes = ck_client_default_etypes;
    r.n_etypes = 4;
    r.transport = t;
    return tgs_exchange(&r, out);
}
