/* HELLO / HELLO_REP: a node's Kerberos AP exchange with the KSV (contract: cablekey/ksv_wire.h).
 *
 * The node sends an AP-REQ (MUTUAL-REQUIRED, authenticator with a sub-key) for the KSV's service
 * principal; the KSV verifies it with its keytab and replay cache and answers an AP-REP whose
 * EncAPRepPart carries a fresh sub-key and, as seq-number, the session's key id. Both sides then
 * derive the sealing keys from that sub-key (seal.c). The node_nonce only pairs a HELLO_REP or
 * HELLO_ERR with the HELLO that caused it; what authenticates the reply is the AP-REP (encrypted
 * under the ticket's session key, with our authenticator's ctime/cusec). */
#include <stdlib.h>
#include <string.h>

#include "cablekey/error.h"
#include "cablekey/ksv_wire.h"
#include "cablekey/principal.h"
#include "cablekey/util.h"
#include "ksvwire/wire_int.h"

#define HELLO_FIXED (CK_KSV_ENV_LEN + 4u + 2u) /* envelope | nonce | AP length */

/* ---- node side --------------------------------------------------------------------------- */

int
ck_ksv_hello_build(const ck_creds *creds, const char *node_name, int64_t now_sec,
                   struct ck_ksv_hello_ctx *ctx, uint8_t **out, size_t *out_len)
{
    CK_TICKET *ticket = NULL;
    CK_PRINCIPAL_NAME *cname = NULL;
    uint8_t *der = NULL, *buf = NULL;
    size_t der_len = 0, name_len, len = 0;
    const ck_principal *c;
    int ret;

    if (out == NULL || out_len == NULL || ctx == NULL)
        return ck_error_set(CK_ERR_INVAL, "KSV HELLO: missing argument");
    *out = NULL;
    *out_len = 0;
    ck_memzero(ctx, sizeof(*ctx));
    if (creds == NULL || creds->client == NULL || creds->ticket == NULL || node_name == NULL)
        return ck_error_set(CK_ERR_INVAL, "KSV HELLO: missing argument");
    name_len = strnlen(node_name, CK_KSV_MAX_NAME + 1);
    if (!ck_ksvw_name_ok((const uint8_t *)node_name, name_len))
        return ck_error_set(CK_ERR_INVAL, "KSV HELLO: bad node name");
    /* The KSV would refuse it anyway; saying so here saves a round trip and names the cause. */
    if (creds->endtime <= now_sec)
        return ck_error_set(CK_ERR_EXPIRED, "KSV HELLO: the ticket ended %lld s ago",
                            (long long)(now_sec - creds->endtime));
    c = creds->client;
    if ((ret = ck_asn1_ticket_decode(creds->ticket, creds->ticket_len, &ticket)) != 0 ||
        (ret = ck_asn1_principal_new(c->name_type, (const char *const *)c->components,
                                     c->n_components, &cname)) != 0 ||
        (ret = ck_key_copy(&ctx->session_key, &creds->session_key)) != 0 ||
        (ret = ck_random_key(creds->session_key.enctype, &ctx->node_subkey)) != 0 ||
        (ret = ck_random_bytes(&ctx->node_nonce, sizeof(ctx->node_nonce))) != 0)
        goto out;
    if ((ret = ck_ap_req_build(ticket, &creds->session_key, c->realm, cname,
                               CK_AP_OPT_MUTUAL_REQUIRED, NULL, CK_KU_AP_REQ_AUTH,
                               &ctx->node_subkey, NULL, &ctx->ctime, &ctx->cusec, &der,
                               &der_len)) != 0)
        goto out;
    if (der_len > UINT16_MAX || HELLO_FIXED + der_len + 2 + name_len > CK_KSV_MAX_DGRAM) {
        ret = ck_error_set(CK_ERR_LIMIT, "KSV HELLO: AP-REQ of %zu bytes", der_len);
        goto out;
    }
    len = HELLO_FIXED + der_len + 2 + name_len;
    if ((buf = malloc(len)) == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "KSV HELLO");
        goto out;
    }
    ck_ksvw_put_env(buf, CK_KSV_K_HELLO);
    ck_put_be32(buf + 8, ctx->node_nonce);
    buf[12] = (uint8_t)(der_len >> 8);
    buf[13] = (uint8_t)der_len;
    memcpy(buf + HELLO_FIXED, der, der_len);
    buf[HELLO_FIXED + der_len] = 0;
    buf[HELLO_FIXED + der_len + 1] = (uint8_t)name_len;
    memcpy(buf + HELLO_FIXED + der_len + 2, node_name, name_len);
    *out = buf;
    *out_len = len;
    buf = NULL;
out:
    if (ret != 0)
        ck_ksv_hello_ctx_clear(ctx);
    free(buf);
    ck_asn1_free_der(der, der_len);
    CK_TICKET_free(ticket);
    CK_PRINCIPAL_NAME_free(cname);
    return ret;
}

void
ck_ksv_hello_ctx_clear(struct ck_ksv_hello_ctx *ctx)
{
    if (ctx == NULL)
        return;
    ck_key_clear(&ctx->session_key);
    ck_key_clear(&ctx->node_subkey);
    ck_memzero(ctx, sizeof(*ctx));
}

/* envelope | nonce | u16 len | body, exactly: the body (AP-REQ or AP-REP) and its length. For a
 * HELLO, rest/rest_len is what follows the body. */
static int
split(const uint8_t *buf, size_t len, uint32_t *nonce, const uint8_t **body, size_t *body_len,
      const uint8_t **rest, size_t *rest_len, const char *what)
{
    size_t n;

    if (len < HELLO_FIXED)
        return ck_error_set(CK_ERR_DECODE, "KSV %s: %zu bytes", what, len);
    n = (size_t)buf[12] << 8 | buf[13];
    if (n == 0 || n > len - HELLO_FIXED)
        return ck_error_set(CK_ERR_DECODE, "KSV %s: Kerberos message of %zu bytes in %zu", what,
                            n, len);
    *nonce = ck_get_be32(buf + 8);
    *body = buf + HELLO_FIXED;
    *body_len = n;
    *rest = buf + HELLO_FIXED + n;
    *rest_len = len - HELLO_FIXED - n;
    return 0;
}

int
ck_ksv_hello_rep_open(const struct ck_ksv_hello_ctx *ctx, const uint8_t *buf, size_t len,
                      struct ck_ksv_seal *s, int32_t *krb_error)
{
    ck_ap_rep_result res;
    const uint8_t *der, *rest;
    size_t der_len, rest_len;
    uint32_t nonce;
    int ret;

    memset(&res, 0, sizeof(res));
    if (krb_error != NULL)
        *krb_error = 0;
    if (ctx == NULL || s == NULL)
        return ck_error_set(CK_ERR_INVAL, "KSV HELLO_REP: missing argument");
    ck_memzero(s, sizeof(*s));
    if (ctx->session_key.length == 0)
        return ck_error_set(CK_ERR_INVAL, "KSV HELLO_REP: no HELLO outstanding");
    if ((ret = ck_ksvw_expect(buf, len, CK_KSV_K_HELLO_REP)) != 0 ||
        (ret = split(buf, len, &nonce, &der, &der_len, &rest, &rest_len, "HELLO_REP")) != 0)
        return ret;
    if (rest_len != 0)
        return ck_error_set(CK_ERR_DECODE, "KSV HELLO_REP: %zu trailing bytes", rest_len);
    if (nonce != ctx->node_nonce)
        return ck_error_set(CK_ERR_PROTO, "KSV HELLO_REP: answers another HELLO");
    ret = ck_ap_rep_verify(der, der_len, &ctx->session_key, ctx->ctime, ctx->cusec, &res);
    if (ret != 0) {
        if (krb_error != NULL)
            *krb_error = res.krb_error;
        goto out;
    }
    if (!res.has_subkey || !res.has_seq_number || res.seq_number == 0) {
        ret = ck_error_set(CK_ERR_PROTO, "KSV HELLO_REP: AP-REP without a sub-key or key id");
        goto out;
    }
    ret = ck_ksv_seal_init(s, &res.subkey, res.seq_number, false);
out:
    ck_ap_rep_result_clear(&res);
    return ret;
}

/* ---- KSV side ---------------------------------------------------------------------------- */

int
ck_ksv_hello_accept(const uint8_t *buf, size_t len, ck_ap_key_fn key_fn, void *key_arg,
                    const char *service, ck_rcache *rc, int64_t clockskew, int64_t now_sec,
                    uint32_t key_id, struct ck_ksv_hello_in *in, struct ck_ksv_seal *s,
                    uint8_t **rep, size_t *rep_len)
{
    ck_ap_req_result res;
    ck_key ksv_subkey;
    const uint8_t *der, *rest;
    uint8_t *ap_rep = NULL, *out = NULL;
    size_t der_len, rest_len, name_len, ap_rep_len = 0, out_len = 0;
    uint32_t seq = key_id;
    int ret;

    memset(&res, 0, sizeof(res));
    memset(&ksv_subkey, 0, sizeof(ksv_subkey));
    if (in == NULL || s == NULL || rep == NULL || rep_len == NULL)
        return ck_error_set(CK_ERR_INVAL, "KSV HELLO: missing argument");
    memset(in, 0, sizeof(*in));
    ck_memzero(s, sizeof(*s));
    *rep = NULL;
    *rep_len = 0;
    if (key_fn == NULL || service == NULL || key_id == 0)
        return ck_error_set(CK_ERR_INVAL, "KSV HELLO: needs a key function, service and key id");
    if ((ret = ck_ksvw_expect(buf, len, CK_KSV_K_HELLO)) != 0 ||
        (ret = split(buf, len, &in->node_nonce, &der, &der_len, &rest, &rest_len, "HELLO")) != 0)
        return ret;
    /* u16 name length, then the name, then nothing. */
    if (rest_len < 2 || (name_len = (size_t)rest[0] << 8 | rest[1]) != rest_len - 2)
        return ck_error_set(CK_ERR_DECODE, "KSV HELLO: node name does not fill the datagram");
    if (!ck_ksvw_name_ok(rest + 2, name_len))
        return ck_error_set(CK_ERR_DECODE, "KSV HELLO: bad node name");
    memcpy(in->node_name, rest + 2, name_len);
    in->node_name[name_len] = '\0';

    ret = ck_ap_req_verify_at(der, der_len, key_fn, key_arg, service, rc, clockskew,
                              CK_KU_AP_REQ_AUTH, now_sec, &res);
    if (ret != 0) {
        in->krb_error = res.krb_error != 0 ? res.krb_error : CK_KRB_ERR_GENERIC;
        goto out;
    }
    /* Mutual authentication is the point: the node must be able to tell the KSV from anyone
     * replaying its own AP-REQ back at it. */
    if (!(res.ap_options & CK_AP_OPT_MUTUAL_REQUIRED) || !res.has_subkey) {
        in->krb_error = CK_KRB_ERR_GENERIC;
        ret = ck_error_set(CK_ERR_PROTO, "KSV HELLO: AP-REQ without MUTUAL-REQUIRED or sub-key");
        goto out;
    }
    if ((ret = ck_asn1_principal_unparse(res.enc_ticket->cname, res.enc_ticket->crealm,
                                         in->client, sizeof(in->client))) != 0) {
        in->krb_error = CK_KRB_ERR_GENERIC;
        goto out;
    }
    in->endtime = res.endtime;
    if ((ret = ck_random_key(res.subkey.enctype, &ksv_subkey)) != 0 ||
        (ret = ck_ap_rep_build(&res.session_key, res.ctime, res.cusec, &ksv_subkey, &seq, &ap_rep,
                               &ap_rep_len)) != 0)
        goto out;
    if (ap_rep_len > UINT16_MAX) {
        ret = ck_error_set(CK_ERR_LIMIT, "KSV HELLO_REP: AP-REP of %zu bytes", ap_rep_len);
        goto out;
    }
    out_len = HELLO_FIXED + ap_rep_len;
    if ((out = malloc(out_len)) == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "KSV HELLO_REP");
        goto out;
    }
    ck_ksvw_put_env(out, CK_KSV_K_HELLO_REP);
    ck_put_be32(out + 8, in->node_nonce);
    out[12] = (uint8_t)(ap_rep_len >> 8);
    out[13] = (uint8_t)ap_rep_len;
    memcpy(out + HELLO_FIXED, ap_rep, ap_rep_len);
    if ((ret = ck_ksv_seal_init(s, &ksv_subkey, key_id, true)) != 0)
        goto out;
    *rep = out;
    *rep_len = out_len;
    out = NULL;
out:
    if (ret != 0)
        ck_ksv_seal_clear(s);
    free(out);
    ck_asn1_free_der(ap_rep, ap_rep_len);
    ck_key_clear(&ksv_subkey);
    ck_ap_req_result_clear(&res);
    return ret;
}
