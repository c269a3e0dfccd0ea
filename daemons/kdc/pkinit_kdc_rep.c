/* PKINIT replies in the KDC: the PA-PK-AS-REP (or PA-PK-AS-REP-OLD) and the reply key.
 *
 *   - Diffie-Hellman / ECDH (RFC 4556 §3.2.3.1, RFC 5349): a fresh KDC key in the client's group,
 *     KDCDHKeyInfo {public value, nonce} signed with the KDC identity (id-pkinit-DHKeyData),
 *     DHRepInfo with the KDF chosen from the client's list; the reply key is the RFC 8636 KDF
 *     over Z, the AS-REQ DER and the PA-PK-AS-REP DER being sent (so the padata is built here,
 *     before the key: preauth.h step 4), or octetstring2key(Z) for clients without
 *     supportedKDFs. No serverDHNonce: the KDC key is never reused, so neither DH nonce enters
 *     the key (RFC 4556 §3.2.3.1; what MIT and Heimdal clients compute).
 *   - RSA key transport (RFC 4556 §3.2.3.2): a random reply key, ReplyKeyPack {replyKey,
 *     asChecksum over the AS-REQ DER keyed with it, usage 6} signed (id-pkinit-rkeyData) and
 *     enveloped to the client's certificate.
 *   - PacketCable draft (docs/PROTOCOL.md): RSA key transport with ReplyKeyPack-draft9 {replyKey,
 *     nonce}, signed as the drafts' clients verify it (SHA-1, no signed attributes), enveloped
 *     with des-ede3-cbc unless the client listed AES, in the request's wire form (IMPLICIT or
 *     EXPLICIT). */
#include <stdlib.h>
#include <string.h>

#include "cablekey/ap.h"
#include "cablekey/error.h"
#include "cablekey/pkinit_asn1.h"
#include "cablekey/pkinit_kdf.h"
#include "cablekey/util.h"
#include "pkinit_kdc.h"

static int
dh_reply(struct kdc_pkinit_ctx *c, const struct kdc_pa_call *call, struct kdc_pkinit_req *rq,
         ck_key *key)
{
    const CK_KDC_REQ_BODY *b = call->req->req_body;
    CK_KDC_DH_KEY_INFO *ki = CK_KDC_DH_KEY_INFO_new();
    CK_DH_REP_INFO *info = CK_DH_REP_INFO_new();
    CK_PA_PK_AS_REP_MSG *rep = CK_PA_PK_AS_REP_MSG_new();
    uint8_t *pub = NULL, *z = NULL, *ki_der = NULL, *sd = NULL;
    size_t pub_len = 0, z_len = 0, ki_len = 0, sd_len = 0;
    const char *realm;
    int rc;

    if (ki == NULL || info == NULL || rep == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "pkinit reply");
        goto out;
    }
    if ((rc = ck_pkinit_dh_kdc_exchange(rq->peer, &pub, &pub_len, &z, &z_len)) != 0 ||
        (rc = ck_pkinit_bit_string_set(&ki->subject_public_key, pub, pub_len)) != 0 ||
        (rc = ck_asn1_nonce_set(&ki->nonce, rq->nonce)) != 0 ||
        (rc = ck_asn1_kdc_dh_key_info_encode(ki, &ki_der, &ki_len)) != 0 ||
        (rc = ck_pkinit_cms_sign(c->id, CK_PKINIT_CT_DHKEY_DATA, ki_der, ki_len, 0, &sd,
                                 &sd_len)) != 0 ||
        (rc = ck_asn1_octets_set(&info->dh_signed_data, sd, sd_len)) != 0)
        goto out;
    if (rq->kdf != 0 && (rc = ck_pkinit_kdf_id_set(&info->kdf, rq->kdf)) != 0)
        goto out;
    if ((rc = ck_pkinit_pa_pk_as_rep_set_dh(rep, info)) != 0)
        goto out;
    info = NULL;
    if ((rc = ck_asn1_pa_pk_as_rep_encode(rep, &rq->rep_der, &rq->rep_len)) != 0)
        goto out;
    realm = ck_asn1_kstring_get(b->realm);
    if (rq->kdf != 0)
        rc = ck_pkinit_kdf(rq->kdf, z, z_len, b->cname, realm, b->sname, realm,
                           call->reply_etype, call->req_der, call->req_len, rq->rep_der,
                           rq->rep_len, key);
    else
        rc = ck_pkinit_octetstring2key(z, z_len, NULL, 0, NULL, 0, call->reply_etype, key);
out:
    if (z != NULL)
        ck_free_secret(z, z_len);
    free(pub);
    ck_asn1_free_der(ki_der, ki_len);
    ck_asn1_free_der(sd, sd_len);
    CK_PA_PK_AS_REP_MSG_free(rep);
    CK_DH_REP_INFO_free(info);
    CK_KDC_DH_KEY_INFO_free(ki);
    return rc;
}

/* Signs the (secret) ReplyKeyPack and envelopes it to the client: *env is public. */
static int
seal_key_pack(struct kdc_pkinit_ctx *c, struct kdc_pkinit_req *rq, const uint8_t *pack,
              size_t pack_len, unsigned sign_flags, uint8_t **env, size_t *env_len)
{
    uint8_t *sd = NULL;
    size_t sd_len = 0;
    int rc;

    rc = ck_pkinit_cms_sign(c->id, CK_PKINIT_CT_RKEY_DATA, pack, pack_len, sign_flags, &sd,
                            &sd_len);
    if (rc == 0)
        rc = ck_pkinit_cms_envelope(rq->client_cert, sd, sd_len, rq->cipher_nid, 0, env,
                                    env_len);
    if (sd != NULL)
        ck_free_secret(sd, sd_len);
    return rc;
}

static int
rsa_reply(struct kdc_pkinit_ctx *c, const struct kdc_pa_call *call, struct kdc_pkinit_req *rq,
          ck_key *key)
{
    CK_REPLY_KEY_PACK *kp = CK_REPLY_KEY_PACK_new();
    CK_PA_PK_AS_REP_MSG *rep = CK_PA_PK_AS_REP_MSG_new();
    CK_CHECKSUM *ck = NULL;
    uint8_t *kp_der = NULL, *env = NULL;
    size_t kp_len = 0, env_len = 0;
    int rc;

    if (kp == NULL || rep == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "pkinit reply");
        goto out;
    }
    if ((rc = ck_random_key(call->reply_etype, key)) != 0 ||
        (rc = ck_key_to_asn1(key, &kp->reply_key)) != 0 ||
        (rc = ck_checksum_new(key, 0, CK_KU_TGS_REQ_AUTH_CKSUM, call->req_der, call->req_len,
                              &ck)) != 0)
        goto out;
    CK_CHECKSUM_free(kp->as_checksum);
    kp->as_checksum = ck;
    ck = NULL;
    if ((rc = ck_asn1_reply_key_pack_encode(kp, &kp_der, &kp_len)) != 0 ||
        (rc = seal_key_pack(c, rq, kp_der, kp_len, 0, &env, &env_len)) != 0 ||
        (rc = ck_pkinit_pa_pk_as_rep_set_enc_key_pack(rep, env, env_len)) != 0 ||
        (rc = ck_asn1_pa_pk_as_rep_encode(rep, &rq->rep_der, &rq->rep_len)) != 0)
        goto out;
out:
    if (kp_der != NULL)
        ck_free_secret(kp_der, kp_len);
    free(env);
    CK_CHECKSUM_free(ck);
    CK_PA_PK_AS_REP_MSG_free(rep);
    CK_REPLY_KEY_PACK_free(kp);
    return rc;
}

static int
draft_reply(struct kdc_pkinit_ctx *c, const struct kdc_pa_call *call,
            struct kdc_pkinit_req *rq, ck_key *key)
{
    CK_REPLY_KEY_PACK_DRAFT9 *kp = CK_REPLY_KEY_PACK_DRAFT9_new();
    CK_PA_PK_AS_REP_DRAFT9 *rep = CK_PA_PK_AS_REP_DRAFT9_new();
    uint8_t *kp_der = NULL, *env = NULL;
    size_t kp_len = 0, env_len = 0;
    int rc;

    if (kp == NULL || rep == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "pkinit reply");
        goto out;
    }
    /* The nonce the client checks is the request's (equal to the PKAuthenticator's: verified). */
    if ((rc = ck_random_key(call->reply_etype, key)) != 0 ||
        (rc = ck_key_to_asn1(key, &kp->reply_key)) != 0 ||
        (rc = ck_asn1_nonce_set(&kp->nonce, rq->nonce)) != 0 ||
        (rc = ck_asn1_reply_key_pack_draft9_encode(kp, &kp_der, &kp_len)) != 0 ||
        (rc = seal_key_pack(c, rq, kp_der, kp_len, CK_PKINIT_SIGN_PACKETCABLE, &env,
                            &env_len)) != 0 ||
        (rc = ck_pkinit_pa_pk_as_rep_draft9_set(rep, CK_PA_PK_AS_REP_DRAFT9_ENC_KEY_PACK,
                                                rq->draft_form, env, env_len)) != 0 ||
        (rc = ck_asn1_pa_pk_as_rep_draft9_encode(rep, &rq->rep_der, &rq->rep_len)) != 0)
        goto out;
out:
    if (kp_der != NULL)
        ck_free_secret(kp_der, kp_len);
    free(env);
    CK_PA_PK_AS_REP_DRAFT9_free(rep);
    CK_REPLY_KEY_PACK_DRAFT9_free(kp);
    return rc;
}

int
kdc_pkinit_build_reply(struct kdc_pkinit_ctx *c, const struct kdc_pa_call *call,
                       struct kdc_pkinit_req *rq, ck_key *key)
{
    int rc;

    if (rq->rep_der != NULL)
        return ck_error_set(CK_ERR_INVAL, "pkinit: reply already built");
    if (rq->pa_type == CK_PA_PK_AS_REQ_OLD)
        rc = draft_reply(c, call, rq, key);
    else if (rq->keyex == KDC_PKINIT_DH)
        rc = dh_reply(c, call, rq, key);
    else
        rc = rsa_reply(c, call, rq, key);
    if (rc != 0) {
        ck_key_clear(key);
        if (rq->rep_der != NULL) {
            ck_asn1_free_der(rq->rep_der, rq->rep_len);
            rq->rep_der = NULL;
            rq->rep_len = 0;
        }
    }
    return rc;
}
