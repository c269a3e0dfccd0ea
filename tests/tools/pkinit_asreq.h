/* A PKINIT client for tests, on the library's primitives: builds PKINIT AS-REQs in the RFC 4556
 * form and the PacketCable draft forms (with knobs for every refusal the KDC must make), and
 * derives the reply key from the AS-REP. Shared by tests/unit/test_kdc_pkinit.c (in-process) and
 * tests/tools/pkinit_asreq.c (over the network, for the interop scripts). Header-only: every
 * function is static inline so each includer takes what it uses. Not a client library (that is
 * the h/client engineer's): no retries, no policy; it does exactly what the options say. */
#ifndef CABLEKEY_TESTS_PKINIT_ASREQ_H
#define CABLEKEY_TESTS_PKINIT_ASREQ_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "cablekey/ap.h"
#include "cablekey/crypto.h"
#include "cablekey/error.h"
#include "cablekey/krb5_asn1.h"
#include "cablekey/pki.h"
#include "cablekey/pkinit.h"
#include "cablekey/pkinit_asn1.h"
#include "cablekey/pkinit_kdf.h"
#include "cablekey/util.h"

enum pk_form {
    PK_FORM_RFC = 0,          /* PA-PK-AS-REQ (16), RFC 4556 AuthPack, CMS with signed attrs */
    PK_FORM_RFC_PCSIG,        /* the same, signed in the PacketCable form (SHA-1, no attrs) */
    PK_FORM_PKTC_IMPLICIT,    /* PA-PK-AS-REQ-OLD (14), PacketCable AuthPack, MIT's draft-9
                               * wire form (IMPLICIT OCTET STRING) */
    PK_FORM_PKTC_EXPLICIT,    /* the same in the explicit form (the 2003 PacketCable client) */
    PK_FORM_DRAFT9,           /* PA 14 with the draft-9 AuthPack (no paChecksum) */
};

enum pk_corrupt {
    PK_CORRUPT_NONE = 0,
    PK_CORRUPT_SIGNATURE,     /* one bit of the SignedData's signature flipped */
    PK_CORRUPT_CMS,           /* signedAuthPack is not a ContentInfo */
    PK_CORRUPT_AUTHPACK,      /* a valid signature over bytes that are not an AuthPack */
    PK_CORRUPT_PADATA,        /* the padata-value is not a PA-PK-AS-REQ */
};

struct pk_opts {
    const char *cname;            /* client name without realm */
    const char *realm;
    const ck_pki_identity *id;    /* the client's certificate and key */
    enum pk_form form;
    ck_pkinit_group group;        /* CK_PKINIT_GROUP_NONE: RSA key transport */
    const uint8_t *spki_der;      /* clientPublicValue to send instead of our own key's */
    size_t spki_len;
    int64_t now;                  /* the client's clock (ctime, till) */
    uint32_t nonce;               /* req-body nonce (0: a fixed one) */
    uint32_t authpack_nonce;      /* PKAuthenticator nonce (0: the req-body nonce) */
    bool no_checksum, bad_checksum, checksum2;
    const uint8_t *fresh;         /* freshness token to reflect, or NULL */
    size_t fresh_len;
    const int *kdfs;              /* supportedKDFs (NULL: sha256, sha1, sha512) */
    size_t n_kdfs;
    bool no_kdfs;                 /* no supportedKDFs: octetstring2key with a clientDHNonce */
    bool no_cms_types;
    const int32_t *etypes;        /* NULL: aes256-sha1, aes128-sha1 */
    size_t n_etypes;
    const char *prov_srv;         /* PA-PROV-SRV-LOCATION (PacketCable forms) */
    enum pk_corrupt corrupt;
};

struct pk_state {
    ck_pkinit_dh *dh;
    uint8_t dh_nonce[32];
    bool has_dh_nonce;
    uint32_t nonce;               /* the req-body nonce sent */
    uint8_t *req;                 /* the DER AS-REQ (OPENSSL_malloc'd) */
    size_t req_len;
};

static inline void
pk_state_free(struct pk_state *st)
{
    ck_pkinit_dh_free(st->dh);
    ck_asn1_free_der(st->req, st->req_len);
    memset(st, 0, sizeof(*st));
}

static inline bool
pk_is_draft(enum pk_form f)
{
    return f == PK_FORM_PKTC_IMPLICIT || f == PK_FORM_PKTC_EXPLICIT || f == PK_FORM_DRAFT9;
}

static inline int
pk_digest(const EVP_MD *md, const uint8_t *data, size_t len, uint8_t *out, unsigned *out_len)
{
    if (!EVP_Digest(data, len, out, out_len, md, NULL))
        return ck_error_set(CK_ERR_CRYPTO, "digest");
    return 0;
}

/* The AuthPack (any form) as DER. */
static inline int
pk_auth_pack(const struct pk_opts *o, struct pk_state *st, const uint8_t *body, size_t body_len,
             uint8_t **der, size_t *len)
{
    uint32_t an = o->authpack_nonce != 0 ? o->authpack_nonce : st->nonce;
    uint8_t dg[EVP_MAX_MD_SIZE];
    unsigned dl = 0;
    X509_PUBKEY *pub = NULL;
    int rc;

    if (o->spki_der != NULL) {
        const unsigned char *p = o->spki_der;
        if ((pub = d2i_X509_PUBKEY(NULL, &p, (long)o->spki_len)) == NULL)
            return ck_error_set(CK_ERR_DECODE, "test: bad spki");
    } else if (o->group != CK_PKINIT_GROUP_NONE) {
        uint8_t *spki = NULL;
        size_t spki_len = 0;
        const unsigned char *p;

        if ((rc = ck_pkinit_dh_generate(o->group, &st->dh)) != 0 ||
            (rc = ck_pkinit_dh_spki(st->dh, &spki, &spki_len)) != 0)
            return rc;
        p = spki;
        pub = d2i_X509_PUBKEY(NULL, &p, (long)spki_len);
        free(spki);
        if (pub == NULL)
            return ck_error_set(CK_ERR_DECODE, "test: own spki");
    }

    if (o->form == PK_FORM_DRAFT9) {
        const char *comps[2] = {"krbtgt", o->realm};
        CK_AUTH_PACK_DRAFT9 *ap = CK_AUTH_PACK_DRAFT9_new();

        CK_PRINCIPAL_NAME_free(ap->pk_authenticator->kdc_name);
        ap->pk_authenticator->kdc_name = NULL;
        if ((rc = ck_asn1_principal_new(CK_NT_SRV_INST, comps, 2,
                                        &ap->pk_authenticator->kdc_name)) != 0 ||
            (rc = ck_asn1_kstring_set(&ap->pk_authenticator->kdc_realm, o->realm)) != 0 ||
            (rc = ck_asn1_time_set(&ap->pk_authenticator->ctime, o->now)) != 0 ||
            (rc = ck_asn1_nonce_set(&ap->pk_authenticator->nonce, an)) != 0)
            goto d9out;
        ap->client_public_value = pub;
        pub = NULL;
        rc = ck_asn1_auth_pack_draft9_encode(ap, der, len);
    d9out:
        CK_AUTH_PACK_DRAFT9_free(ap);
        X509_PUBKEY_free(pub);
        return rc;
    }
    if (pk_is_draft(o->form)) {
        CK_AUTH_PACK_PKTC *ap = CK_AUTH_PACK_PKTC_new();
        CK_PK_AUTHENTICATOR_PKTC *pa = ap->pk_authenticator;

        if ((rc = ck_asn1_time_set(&pa->ctime, o->now)) != 0 ||
            (rc = ck_asn1_nonce_set(&pa->nonce, an)) != 0)
            goto pcout;
        if (!o->no_checksum) {
            if ((rc = pk_digest(EVP_md5(), body, body_len, dg, &dl)) != 0)
                goto pcout;
            if (o->bad_checksum)
                dg[0] ^= 1;
            pa->pa_checksum = CK_CHECKSUM_new();
            pa->pa_checksum->cksumtype = CK_CKSUMTYPE_RSA_MD5;
            if ((rc = ck_asn1_octets_set(&pa->pa_checksum->checksum, dg, dl)) != 0)
                goto pcout;
        }
        ap->client_public_value = pub;
        pub = NULL;
        rc = ck_asn1_auth_pack_pktc_encode(ap, der, len);
    pcout:
        CK_AUTH_PACK_PKTC_free(ap);
        X509_PUBKEY_free(pub);
        return rc;
    }

    {
        static const int default_kdfs[] = {CK_PKINIT_KDF_SHA256, CK_PKINIT_KDF_SHA1,
                                           CK_PKINIT_KDF_SHA512};
        CK_AUTH_PACK *ap = CK_AUTH_PACK_new();
        CK_PK_AUTHENTICATOR *pa = ap->pk_authenticator;
        const int *kdfs = o->kdfs != NULL ? o->kdfs : default_kdfs;
        size_t n_kdfs = o->kdfs != NULL ? o->n_kdfs : 3;

        pa->cusec = 123456;
        if ((rc = ck_asn1_time_set(&pa->ctime, o->now)) != 0 ||
            (rc = ck_asn1_nonce_set(&pa->nonce, an)) != 0)
            goto out;
        if (!o->no_checksum) {
            if ((rc = pk_digest(EVP_sha1(), body, body_len, dg, &dl)) != 0)
                goto out;
            if (o->bad_checksum)
                dg[0] ^= 1;
            if ((rc = ck_asn1_octets_set(&pa->pa_checksum, dg, dl)) != 0)
                goto out;
        }
        if (o->checksum2) {
            pa->pa_checksum2 = CK_PA_CHECKSUM2_new();
            if ((rc = pk_digest(EVP_sha256(), body, body_len, dg, &dl)) != 0)
                goto out;
            if ((rc = ck_asn1_octets_set(&pa->pa_checksum2->checksum, dg, dl)) != 0 ||
                !X509_ALGOR_set0(pa->pa_checksum2->algorithm_identifier,
                                 OBJ_nid2obj(NID_sha256), V_ASN1_UNDEF, NULL)) {
                rc = rc != 0 ? rc : ck_error_set(CK_ERR_CRYPTO, "test: algor");
                goto out;
            }
        }
        if (o->fresh != NULL &&
            (rc = ck_asn1_octets_set(&pa->freshness_token, o->fresh, o->fresh_len)) != 0)
            goto out;
        ap->client_public_value = pub;
        pub = NULL;
        if (!o->no_cms_types) {
            int want[2] = {NID_aes_256_cbc, NID_des_ede3_cbc};
            ap->supported_cms_types = sk_X509_ALGOR_new_null();
            for (int i = 0; i < 2; i++) {
                X509_ALGOR *alg = X509_ALGOR_new();
                X509_ALGOR_set0(alg, OBJ_nid2obj(want[i]), V_ASN1_UNDEF, NULL);
                sk_X509_ALGOR_push(ap->supported_cms_types, alg);
            }
        }
        if (ap->client_public_value != NULL && !o->no_kdfs) {
            ap->supported_kdfs = sk_CK_KDF_ALGORITHM_ID_new_null();
            for (size_t i = 0; i < n_kdfs; i++) {
                CK_KDF_ALGORITHM_ID *id = NULL;
                if ((rc = ck_pkinit_kdf_id_set(&id, kdfs[i])) != 0)
                    goto out;
                sk_CK_KDF_ALGORITHM_ID_push(ap->supported_kdfs, id);
            }
        } else if (ap->client_public_value != NULL) {
            if ((rc = ck_random_bytes(st->dh_nonce, sizeof(st->dh_nonce))) != 0 ||
                (rc = ck_asn1_octets_set(&ap->client_dh_nonce, st->dh_nonce,
                                         sizeof(st->dh_nonce))) != 0)
                goto out;
            st->has_dh_nonce = true;
        }
        rc = ck_asn1_auth_pack_encode(ap, der, len);
    out:
        CK_AUTH_PACK_free(ap);
        X509_PUBKEY_free(pub);
        return rc;
    }
}

static inline int
pk_build(const struct pk_opts *o, struct pk_state *st)
{
    static const int32_t default_etypes[] = {CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96,
                                             CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96};
    const char *tgs[2] = {"krbtgt", o->realm};
    CK_AS_REQ *req = CK_AS_REQ_new();
    CK_KDC_REQ_BODY *b = req->req_body;
    ASN1_GENERALSTRING *realm = NULL;
    const uint8_t *body;
    uint8_t *ap = NULL, *sd = NULL, *pa = NULL;
    size_t body_len, ap_len = 0, sd_len = 0, pa_len = 0;
    int rc;

    memset(st, 0, sizeof(*st));
    st->nonce = o->nonce != 0 ? o->nonce : 0x5eed1234u;
    req->pvno = 5;
    req->msg_type = CK_KRB_AS_REQ;
    CK_PRINCIPAL_NAME_free(b->sname);
    b->sname = NULL;
    if ((rc = ck_asn1_flags_set(&b->kdc_options, 0)) != 0 ||
        (rc = ck_asn1_principal_parse(o->cname, CK_NT_PRINCIPAL, &b->cname, &realm)) != 0 ||
        (rc = ck_asn1_principal_new(CK_NT_SRV_INST, tgs, 2, &b->sname)) != 0 ||
        (rc = ck_asn1_kstring_set(&b->realm, o->realm)) != 0 ||
        (rc = ck_asn1_time_set(&b->till, o->now + 86400)) != 0 ||
        (rc = ck_asn1_nonce_set(&b->nonce, st->nonce)) != 0 ||
        (rc = ck_asn1_etypes_set(b, o->etypes ? o->etypes : default_etypes,
                                 o->etypes ? o->n_etypes : 2)) != 0 ||
        (rc = ck_asn1_kdc_req_body_der(req, &body, &body_len)) != 0)
        goto out;
    if (o->corrupt == PK_CORRUPT_AUTHPACK) {
        static const uint8_t junk[] = {0x30, 0x03, 0x02, 0x01, 0x05};
        if ((ap = OPENSSL_memdup(junk, sizeof(junk))) == NULL) {
            rc = CK_ERR_NOMEM;
            goto out;
        }
        ap_len = sizeof(junk);
    } else if ((rc = pk_auth_pack(o, st, body, body_len, &ap, &ap_len)) != 0) {
        goto out;
    }
    if ((rc = ck_pkinit_cms_sign(o->id, CK_PKINIT_CT_AUTH_DATA, ap, ap_len,
                                 o->form == PK_FORM_RFC ? 0 : CK_PKINIT_SIGN_PACKETCABLE, &sd,
                                 &sd_len)) != 0)
        goto out;
    if (o->corrupt == PK_CORRUPT_SIGNATURE)
        sd[sd_len - 1] ^= 0x01; /* the signature is the SignedData's last field */
    if (o->corrupt == PK_CORRUPT_CMS) {
        /* A DER SEQUENCE, but no ContentInfo. */
        static const uint8_t junk[] = {0x30, 0x03, 0x02, 0x01, 0x05};
        ck_free_secret(sd, sd_len);
        if ((sd = malloc(sizeof(junk))) == NULL) {
            rc = CK_ERR_NOMEM;
            goto out;
        }
        memcpy(sd, junk, sizeof(junk));
        sd_len = sizeof(junk);
    }
    if (o->corrupt == PK_CORRUPT_PADATA) {
        static const uint8_t junk[] = {0x04, 0x02, 0x00, 0x00};
        if ((pa = OPENSSL_memdup(junk, sizeof(junk))) == NULL) {
            rc = CK_ERR_NOMEM;
            goto out;
        }
        pa_len = sizeof(junk);
    } else if (pk_is_draft(o->form)) {
        CK_PA_PK_AS_REQ_DRAFT9 *m = CK_PA_PK_AS_REQ_DRAFT9_new();
        m->form = o->form == PK_FORM_PKTC_EXPLICIT ? CK_PKINIT_FORM_EXPLICIT
                                                   : CK_PKINIT_FORM_IMPLICIT;
        rc = ck_asn1_octets_set(&m->signed_auth_pack, sd, sd_len);
        if (rc == 0)
            rc = ck_asn1_pa_pk_as_req_draft9_encode(m, &pa, &pa_len);
        CK_PA_PK_AS_REQ_DRAFT9_free(m);
    } else {
        CK_PA_PK_AS_REQ_MSG *m = CK_PA_PK_AS_REQ_MSG_new();
        rc = ck_asn1_octets_set(&m->signed_auth_pack, sd, sd_len);
        if (rc == 0)
            rc = ck_asn1_pa_pk_as_req_encode(m, &pa, &pa_len);
        CK_PA_PK_AS_REQ_MSG_free(m);
    }
    if (rc != 0)
        goto out;
    if ((rc = ck_asn1_padata_add(&req->padata,
                                 pk_is_draft(o->form) ? CK_PA_PK_AS_REQ_OLD : CK_PA_PK_AS_REQ,
                                 pa, pa_len)) != 0)
        goto out;
    if (o->prov_srv != NULL) {
        ASN1_GENERALSTRING *loc = NULL;
        uint8_t *l = NULL;
        size_t ll = 0;

        if ((rc = ck_asn1_kstring_set(&loc, o->prov_srv)) == 0 &&
            (rc = ck_asn1_prov_srv_location_encode(loc, &l, &ll)) == 0)
            rc = ck_asn1_padata_add(&req->padata, CK_PA_PROV_SRV_LOCATION, l, ll);
        ASN1_GENERALSTRING_free(loc);
        ck_asn1_free_der(l, ll);
        if (rc != 0)
            goto out;
    }
    rc = ck_asn1_as_req_encode(req, &st->req, &st->req_len);
out:
    ck_asn1_free_der(ap, ap_len);
    if (sd != NULL)
        ck_free_secret(sd, sd_len);
    ck_asn1_free_der(pa, pa_len);
    ASN1_GENERALSTRING_free(realm);
    CK_AS_REQ_free(req);
    return rc;
}

/* Checks the KDC's signer against kdc_anchors (if given): chain, KPKdc EKU, krbtgt SAN. */
static inline int
pk_check_kdc(const struct pk_opts *o, const ck_pkinit_anchors *kdc_anchors,
             const ck_pkinit_signed *s)
{
    ck_pkinit_chain_result res;
    int rc;

    if (kdc_anchors == NULL)
        return 0;
    if ((rc = ck_pkinit_verify_chain(kdc_anchors, s->signer, s->certs, o->now,
                                     CK_PKINIT_PURPOSE_KDC, &res)) != 0)
        return rc;
    return ck_pkinit_kdc_cert_match_realm(s->signer, o->realm);
}

/* The reply key from the AS-REP's PKINIT padata, with every check a client makes. */
static inline int
pk_reply_key(const struct pk_opts *o, const struct pk_state *st, const CK_KDC_REP *rep,
             const ck_pkinit_anchors *kdc_anchors, ck_key *key)
{
    const CK_PA_DATA *pa = ck_asn1_padata_find(rep->padata, pk_is_draft(o->form)
                                                                ? CK_PA_PK_AS_REP_OLD
                                                                : CK_PA_PK_AS_REP);
    CK_AS_REQ *req = NULL;
    CK_PA_PK_AS_REP_MSG *r = NULL;
    CK_PA_PK_AS_REP_DRAFT9 *r9 = NULL;
    CK_KDC_DH_KEY_INFO *ki = NULL;
    CK_REPLY_KEY_PACK *kp = NULL;
    CK_REPLY_KEY_PACK_DRAFT9 *kp9 = NULL;
    ck_pkinit_signed *s = NULL;
    uint8_t *plain = NULL, *z = NULL;
    size_t plain_len = 0, z_len = 0;
    const uint8_t *pv;
    size_t pl;
    uint32_t n = 0;
    int rc;

    ck_key_clear(key);
    if (pa == NULL)
        return ck_error_set(CK_ERR_NOTFOUND, "test: no PKINIT padata in the AS-REP");
    pv = ASN1_STRING_get0_data(pa->padata_value);
    pl = (size_t)ASN1_STRING_length(pa->padata_value);
    if ((rc = ck_asn1_as_req_decode(st->req, st->req_len, &req)) != 0)
        goto out;
    if (pk_is_draft(o->form)) {
        if ((rc = ck_asn1_pa_pk_as_rep_draft9_decode(pv, pl, &r9)) != 0)
            goto out;
        if (r9->type != CK_PA_PK_AS_REP_DRAFT9_ENC_KEY_PACK) {
            rc = ck_error_set(CK_ERR_PROTO, "test: draft reply is not encKeyPack");
            goto out;
        }
        if (r9->form != (o->form == PK_FORM_PKTC_EXPLICIT ? CK_PKINIT_FORM_EXPLICIT
                                                          : CK_PKINIT_FORM_IMPLICIT)) {
            rc = ck_error_set(CK_ERR_PROTO, "test: reply form differs from the request's");
            goto out;
        }
        if ((rc = ck_pkinit_cms_decrypt(o->id, ASN1_STRING_get0_data(r9->value.enc_key_pack),
                                        (size_t)ASN1_STRING_length(r9->value.enc_key_pack),
                                        &plain, &plain_len)) != 0 ||
            (rc = ck_pkinit_cms_verify(plain, plain_len, CK_PKINIT_CT_RKEY_DATA,
                                       CK_PKINIT_VERIFY_ALLOW_SHA1, NULL, &s)) != 0 ||
            (rc = pk_check_kdc(o, kdc_anchors, s)) != 0)
            goto out;
        if (s->signed_attrs || s->digest_nid != NID_sha1) {
            rc = ck_error_set(CK_ERR_PROTO, "test: draft reply not signed in the PacketCable "
                              "form");
            goto out;
        }
        if ((rc = ck_asn1_reply_key_pack_draft9_decode(s->content, s->content_len, &kp9)) != 0 ||
            (rc = ck_asn1_nonce_get(kp9->nonce, &n)) != 0)
            goto out;
        if (n != st->nonce) {
            rc = ck_error_set(CK_ERR_PROTO, "test: ReplyKeyPack nonce %u, sent %u", n,
                              st->nonce);
            goto out;
        }
        rc = ck_key_from_asn1(key, kp9->reply_key);
        goto out;
    }
    if ((rc = ck_asn1_pa_pk_as_rep_decode(pv, pl, &r)) != 0)
        goto out;
    if (r->type == CK_PA_PK_AS_REP_DH_INFO) {
        const CK_DH_REP_INFO *info = r->value.dh_info;
        const char *realm = ck_asn1_kstring_get(req->req_body->realm);
        int kdf = 0;

        if (st->dh == NULL) {
            rc = ck_error_set(CK_ERR_PROTO, "test: DH reply to an RSA request");
            goto out;
        }
        if ((rc = ck_pkinit_cms_verify(ASN1_STRING_get0_data(info->dh_signed_data),
                                       (size_t)ASN1_STRING_length(info->dh_signed_data),
                                       CK_PKINIT_CT_DHKEY_DATA, 0, NULL, &s)) != 0 ||
            (rc = pk_check_kdc(o, kdc_anchors, s)) != 0 ||
            (rc = ck_asn1_kdc_dh_key_info_decode(s->content, s->content_len, &ki)) != 0 ||
            (rc = ck_asn1_nonce_get(ki->nonce, &n)) != 0)
            goto out;
        if (n != (o->authpack_nonce != 0 ? o->authpack_nonce : st->nonce)) {
            rc = ck_error_set(CK_ERR_PROTO, "test: KDCDHKeyInfo nonce %u", n);
            goto out;
        }
        if ((rc = ck_pkinit_dh_client_derive(st->dh,
                                             ASN1_STRING_get0_data(ki->subject_public_key),
                                             (size_t)ASN1_STRING_length(ki->subject_public_key),
                                             &z, &z_len)) != 0)
            goto out;
        if (info->kdf != NULL) {
            if ((rc = ck_pkinit_kdf_id_get(info->kdf, &kdf)) != 0)
                goto out;
            rc = ck_pkinit_kdf(kdf, z, z_len, req->req_body->cname, realm, req->req_body->sname,
                               realm, rep->enc_part->etype, st->req, st->req_len, pv, pl, key);
        } else {
            /* RFC 4556 §3.2.3.1: the nonces count only when the KDC reused its DH key
             * (serverDHNonce present). */
            bool reuse = info->server_dh_nonce != NULL;
            rc = ck_pkinit_octetstring2key(
                z, z_len, reuse && st->has_dh_nonce ? st->dh_nonce : NULL,
                reuse && st->has_dh_nonce ? sizeof(st->dh_nonce) : 0,
                reuse ? ASN1_STRING_get0_data(info->server_dh_nonce) : NULL,
                reuse ? (size_t)ASN1_STRING_length(info->server_dh_nonce) : 0,
                rep->enc_part->etype, key);
        }
        goto out;
    }
    if ((rc = ck_pkinit_cms_decrypt(o->id, ASN1_STRING_get0_data(r->value.enc_key_pack),
                                    (size_t)ASN1_STRING_length(r->value.enc_key_pack), &plain,
                                    &plain_len)) != 0 ||
        (rc = ck_pkinit_cms_verify(plain, plain_len, CK_PKINIT_CT_RKEY_DATA, 0, NULL, &s)) != 0 ||
        (rc = pk_check_kdc(o, kdc_anchors, s)) != 0 ||
        (rc = ck_asn1_reply_key_pack_decode(s->content, s->content_len, &kp)) != 0 ||
        (rc = ck_key_from_asn1(key, kp->reply_key)) != 0)
        goto out;
    /* RFC 4556 §3.2.3.2: asChecksum binds the reply key to this AS-REQ. */
    rc = ck_verify_checksum(key, kp->as_checksum->cksumtype, CK_KU_TGS_REQ_AUTH_CKSUM, st->req,
                            st->req_len, ASN1_STRING_get0_data(kp->as_checksum->checksum),
                            (size_t)ASN1_STRING_length(kp->as_checksum->checksum));
out:
    if (rc != 0)
        ck_key_clear(key);
    if (plain != NULL)
        ck_free_secret(plain, plain_len);
    if (z != NULL)
        ck_free_secret(z, z_len);
    ck_pkinit_signed_free(s);
    CK_REPLY_KEY_PACK_free(kp);
    CK_REPLY_KEY_PACK_DRAFT9_free(kp9);
    CK_KDC_DH_KEY_INFO_free(ki);
    CK_PA_PK_AS_REP_MSG_free(r);
    CK_PA_PK_AS_REP_DRAFT9_free(r9);
    CK_AS_REQ_free(req);
    return rc;
}

/* Decrypts the AS-REP's enc-part with key and checks the nonce; *part on success. */
static inline int
pk_open_as_rep(const struct pk_state *st, const CK_KDC_REP *rep, const ck_key *key,
               CK_ENC_KDC_REP_PART **part)
{
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    uint32_t n = 0;
    int rc;

    *part = NULL;
    if ((rc = ck_enc_data_open(rep->enc_part, key, CK_KU_AS_REP_ENCPART, &plain,
                               &plain_len)) != 0)
        return rc;
    rc = ck_asn1_enc_kdc_rep_part_decode(plain, plain_len, part, NULL);
    ck_free_secret(plain, plain_len);
    if (rc != 0)
        return rc;
    if (ck_asn1_nonce_get((*part)->nonce, &n) != 0 || n != st->nonce) {
        CK_ENC_KDC_REP_PART_free(*part);
        *part = NULL;
        return ck_error_set(CK_ERR_PROTO, "test: AS-REP nonce %u, sent %u", n, st->nonce);
    }
    return 0;
}

#endif
