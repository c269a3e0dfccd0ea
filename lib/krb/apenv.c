/* The AP-REQ + KRB-PRIV envelope (apenv.h), first written for the key version service and now
 * shared with the provisioning device channel.
 *
 * The reply's data may be secret (keys, certificates for one device only): the client reads
 * the KRB-PRIV under the fresh subkey this exchange put in its authenticator, after the AP-REP
 * proved the server holds the service key; its sequence number must be the one the AP-REP
 * announced, its timestamp within the clock skew. */
#include <stdlib.h>
#include <string.h>

#include "cablekey/apenv.h"
#include "cablekey/error.h"
#include "cablekey/kpasswd.h"
#include "cablekey/krb5_asn1.h"
#include "cablekey/nametypes.h"
#include "cablekey/principal.h"
#include "cablekey/safepriv.h"
#include "cablekey/util.h"

int
ck_apenv_frame_parse(const uint8_t *msg, size_t len, uint16_t version, const char *what,
                     ck_apenv_frame *out)
{
    ck_kpasswd_req fr;
    int rc;

    if (out == NULL)
        return ck_error_set(CK_ERR_INVAL, "%s: no output", what);
    memset(&fr, 0, sizeof(fr));
    rc = ck_kpasswd_frame_parse(msg, len, what, &version, 1, &fr);
    out->version = fr.version;
    out->ap_req = fr.ap_req;
    out->ap_req_len = fr.ap_req_len;
    out->priv = fr.priv;
    out->priv_len = fr.priv_len;
    return rc;
}

int
ck_apenv_result_write(ck_writer *w, uint16_t result, const char *text, size_t max)
{
    size_t tl = strnlen(text, max);
    int rc;

    if ((rc = ck_writer_u16be(w, result)) != 0 || (rc = ck_writer_u16be(w, (uint16_t)tl)) != 0)
        return rc;
    return ck_writer_bytes(w, text, tl);
}

int
ck_apenv_result_read(ck_reader *r, size_t max, uint16_t *result, char *text, const char *what)
{
    const uint8_t *p;
    uint16_t tl;

    if (ck_reader_u16be(r, result) != 0 || ck_reader_u16be(r, &tl) != 0)
        return ck_error_set(CK_ERR_DECODE, "%s: truncated", what);
    if (tl > max)
        return ck_error_set(CK_ERR_DECODE, "%s: text of %u bytes", what, (unsigned)tl);
    if (ck_reader_bytes(r, tl, &p) != 0)
        return ck_error_set(CK_ERR_DECODE, "%s: truncated", what);
    for (size_t i = 0; i < tl; i++)
        text[i] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
    text[tl] = '\0';
    return 0;
}

int
ck_krb_error_reply(const uint8_t *der, size_t len, const char *what)
{
    CK_KRB_ERROR_MSG *err = NULL;
    const char *text;
    int rc;

    if (ck_asn1_krb_error_decode(der, len, &err) != 0)
        return ck_error_set(CK_ERR_PROTO, "%s: undecodable KRB-ERROR reply", what);
    text = err->e_text != NULL ? ck_asn1_kstring_get(err->e_text) : NULL;
    rc = ck_error_set(CK_ERR_KRB, "%s refused: error %d%s%s", what, (int)err->error_code,
                      text != NULL ? ": " : "", text != NULL ? text : "");
    ck_error_set_krb_code((int)err->error_code);
    CK_KRB_ERROR_MSG_free(err);
    return rc;
}

int
ck_apenv_exchange(const ck_kdc_transport *svc, const ck_creds *creds, uint16_t version,
                  const char *what, const uint8_t *data, size_t len, int64_t clockskew,
                  uint8_t **rep, size_t *rep_len)
{
    CK_TICKET *ticket = NULL;
    CK_PRINCIPAL_NAME *cname = NULL;
    const ck_principal *c = creds->client;
    ck_key subkey;
    ck_krb_address dir0, dir1;
    ck_krb_msg_params params;
    ck_krb_msg_check check;
    ck_krb_msg_info info;
    ck_ap_rep_result aprep;
    ck_kpasswd_rep fr;
    uint8_t *apreq = NULL, *priv = NULL, *msg = NULL, *reply = NULL;
    size_t apreq_len = 0, priv_len = 0, msg_len = 0, reply_len = 0;
    int64_t ctime = 0;
    int32_t cusec = 0;
    uint32_t seq;
    int rc;

    *rep = NULL;
    *rep_len = 0;
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
        (rc = ck_krb_address_directional(0, &dir0)) != 0 ||
        (rc = ck_krb_address_directional(1, &dir1)) != 0)
        goto out;
    memset(&params, 0, sizeof(params));
    params.use_timestamp = true;
    params.use_seq = true;
    params.seq = seq;
    params.s_address = &dir0;
    if ((rc = ck_krb_priv_build(&subkey, data, len, &params, &priv, &priv_len)) != 0 ||
        (rc = ck_kpasswd_req_build(version, apreq, apreq_len, priv, priv_len, &msg,
                                   &msg_len)) != 0)
        goto out;
    if ((rc = ck_kdc_send(svc, msg, msg_len, &reply, &reply_len, NULL)) != 0)
        goto out;
    if ((rc = ck_kpasswd_rep_parse(reply, reply_len, &fr)) != 0) {
        rc = ck_error_set(CK_ERR_PROTO, "%s reply: %s", what, ck_error_context());
        goto out;
    }
    if (fr.is_error) {
        rc = ck_krb_error_reply(fr.body, fr.body_len, what);
        goto out;
    }
    if (fr.version != version) {
        rc = ck_error_set(CK_ERR_PROTO, "%s reply: version 0x%04x", what, (unsigned)fr.version);
        goto out;
    }
    if ((rc = ck_ap_rep_verify(fr.ap_rep, fr.ap_rep_len, &creds->session_key, ctime, cusec,
                               &aprep)) != 0) {
        rc = ck_error_set(CK_ERR_PROTO, "%s reply: AP-REP: %s", what, ck_error_context());
        goto out;
    }
    memset(&check, 0, sizeof(check));
    check.require_timestamp = true;
    check.clockskew = clockskew;
    check.check_seq = true;
    check.seq = aprep.has_seq_number ? aprep.seq_number : 0;
    if ((rc = ck_krb_priv_read(&subkey, fr.body, fr.body_len, &check, rep, rep_len,
                               &info)) != 0) {
        rc = ck_error_set(rc, "%s reply: KRB-PRIV: %s", what, ck_error_context());
        goto out;
    }
    /* A reflected request (same key, same seq) would read as a reply but for its direction. */
    if (info.s_address.addr_type == dir1.addr_type && !ck_krb_address_equal(&info.s_address,
                                                                            &dir1)) {
        ck_free_secret(*rep, *rep_len);
        *rep = NULL;
        *rep_len = 0;
        rc = ck_error_set(CK_ERR_PROTO, "%s reply: KRB-PRIV sent in the request's direction",
                          what);
    }
out:
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

int
ck_apenv_read_request(const ck_ap_req_result *ap, const ck_apenv_frame *fr, int64_t clockskew,
                      int64_t now, uint8_t **data, size_t *data_len)
{
    ck_krb_msg_check check;
    ck_krb_msg_info info;
    ck_krb_address dir0;
    int rc;

    *data = NULL;
    *data_len = 0;
    if (!ap->has_subkey)
        return ck_error_set(CK_ERR_PROTO, "the authenticator must carry a subkey");
    if ((rc = ck_krb_address_directional(0, &dir0)) != 0)
        return rc;
    memset(&check, 0, sizeof(check));
    check.clockskew = clockskew;
    check.now = now;
    check.require_timestamp = true;
    if ((rc = ck_krb_priv_read(&ap->subkey, fr->priv, fr->priv_len, &check, data, data_len,
                               &info)) != 0)
        return rc;
    if (ap->has_seq_number && info.has_seq && info.seq != ap->seq_number)
        rc = ck_error_set(CK_ERR_PROTO, "KRB-PRIV sequence number differs from the "
                                        "authenticator's");
    else if (info.s_address.addr_type == dir0.addr_type &&
             !ck_krb_address_equal(&info.s_address, &dir0))
        rc = ck_error_set(CK_ERR_PROTO, "KRB-PRIV sent in the reply's direction");
    if (rc != 0) {
        ck_free_secret(*data, *data_len);
        *data = NULL;
        *data_len = 0;
    }
    return rc;
}

int
ck_apenv_reply_seal(const ck_ap_req_result *ap, uint16_t version, const uint8_t *data,
                    size_t len, int64_t now, int32_t usec, uint8_t *reply, size_t cap,
                    size_t *reply_len)
{
    const ck_key *key = ap->has_subkey ? &ap->subkey : &ap->session_key;
    ck_krb_address dir1;
    ck_krb_msg_params params;
    uint8_t *aprep = NULL, *priv = NULL;
    size_t aprep_len = 0, priv_len = 0;
    uint32_t seq;
    int rc;

    *reply_len = 0;
    if ((rc = ck_random_bytes(&seq, sizeof(seq))) != 0)
        return rc;
    seq &= 0x3fffffffu;
    if ((rc = ck_krb_address_directional(1, &dir1)) != 0)
        return rc;
    memset(&params, 0, sizeof(params));
    params.use_timestamp = true;
    params.timestamp = now;
    params.usec = usec;
    params.use_seq = true;
    params.seq = seq;
    params.s_address = &dir1;
    if ((rc = ck_ap_rep_build(&ap->session_key, ap->ctime, ap->cusec, NULL, &seq, &aprep,
                              &aprep_len)) != 0 ||
        (rc = ck_krb_priv_build(key, data, len, &params, &priv, &priv_len)) != 0)
        goto out;
    rc = ck_kpasswd_rep_build(version, aprep, aprep_len, priv, priv_len, reply, cap, reply_len);
out:
    ck_asn1_free_der(aprep, aprep_len);
    free(priv);
    return rc;
}

int
ck_krb_error_build(const char *service, int32_t code, const char *e_text, int64_t now,
                   int32_t usec, uint8_t **der, size_t *der_len)
{
    return ck_krb_error_build_data(service, code, e_text, NULL, 0, now, usec, der, der_len);
}

int
ck_krb_error_build_data(const char *service, int32_t code, const char *e_text,
                        const uint8_t *e_data, size_t e_data_len, int64_t now, int32_t usec,
                        uint8_t **der, size_t *der_len)
{
    CK_KRB_ERROR_MSG *err = NULL;
    CK_PRINCIPAL_NAME *sname = NULL;
    ASN1_GENERALSTRING *realm = NULL;
    int rc;

    *der = NULL;
    *der_len = 0;
    if ((err = CK_KRB_ERROR_MSG_new()) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "KRB-ERROR");
        goto out;
    }
    err->pvno = CK_KRB5_PVNO;
    err->msg_type = CK_KRB_ERROR;
    err->susec = usec;
    err->error_code = code;
    if ((rc = ck_asn1_principal_parse(service, CK_NT_SRV_INST, &sname, &realm)) != 0)
        goto out;
    CK_PRINCIPAL_NAME_free(err->sname);
    err->sname = sname;
    sname = NULL;
    if (realm != NULL) {
        ASN1_GENERALSTRING_free(err->realm);
        err->realm = realm;
        realm = NULL;
    }
    if ((rc = ck_asn1_time_set(&err->stime, now)) != 0 ||
        (e_text != NULL && (rc = ck_asn1_kstring_set(&err->e_text, e_text)) != 0) ||
        (e_data != NULL && (rc = ck_asn1_octets_set(&err->e_data, e_data, e_data_len)) != 0))
        goto out;
    rc = ck_asn1_krb_error_encode(err, der, der_len);
out:
    CK_KRB_ERROR_MSG_free(err);
    CK_PRINCIPAL_NAME_free(sname);
    ASN1_GENERALSTRING_free(realm);
    return rc;
}

int
ck_apenv_reply_error(uint16_t version, const char *service, int32_t code, const char *e_text,
                     int64_t now, int32_t usec, uint8_t *reply, size_t cap, size_t *reply_len)
{
    uint8_t *der = NULL;
    size_t der_len = 0;
    int rc;

    *reply_len = 0;
    if ((rc = ck_krb_error_build(service, code, e_text, now, usec, &der, &der_len)) != 0)
        return rc;
    rc = ck_kpasswd_rep_build(version, NULL, 0, der, der_len, reply, cap, reply_len);
    ck_asn1_free_der(der, der_len);
    return rc;
}
