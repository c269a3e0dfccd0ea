/* PKINIT client (lib/pkinit/client.c): the requests it builds, decoded with the ASN.1 decoders and
 * checked field by field (RFC 4556 and the PacketCable draft form), and its processing of replies
 * from an in-process KDC built on the lib/pkinit primitives: good DH/ECDH and RSA replies, then a
 * wrong nonce, a KDC certificate without id-pkinit-KPKdc, from another anchor or naming another
 * realm, a tampered signature, a wrong asChecksum, a KDF we did not offer, the other key exchange
 * than asked — each refused. Also the KDC's errors (group refused with TD-DH-PARAMETERS, stale
 * freshness token, no PKINIT offered), and the RSA reply checks against MIT 1.20's captured
 * ReplyKeyPack. The test PKI is made in-process with lib/pki, valid around the current time. */
#include <stdlib.h>
#include <string.h>

#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "cablekey/ap.h"
#include "cablekey/client.h"
#include "cablekey/crypto.h"
#include "cablekey/error.h"
#include "cablekey/krb5_asn1.h"
#include "cablekey/pki.h"
#include "cablekey/pkinit.h"
#include "cablekey/pkinit_asn1.h"
#include "cablekey/pkinit_client.h"
#include "cablekey/pkinit_kdf.h"
#include "cablekey/util.h"
#include "ck_test.h"
#include "pkinit/client_int.h"

#define REALM "EXAMPLE.TEST"
#define DAY ((int64_t)86400)
#define TOKEN1 "freshness-token-1"
#define TOKEN2 "freshness-token-2"
#define COOKIE "cookie-from-the-kdc"

/* ---------------------------------------------------------------------------------------------
 * Test PKI: SP root -> SP CA -> KDC / alice / device; an unrelated root with its own KDC.
 */
static struct {
    bool ready, failed;
    EVP_PKEY *root_key, *ca_key, *kdc_key, *alice_key, *ec_key, *other_key;
    X509 *root, *ca, *kdc, *kdc_noeku, *kdc_named, *other_root, *other_kdc, *alice, *alice_ec,
        *device;
    STACK_OF(X509) *chain, *other_chain;
    ck_pki_identity kdc_id, kdc_noeku_id, kdc_named_id, other_kdc_id, alice_id, alice_ec_id,
        device_id;
    ck_pkinit_anchors *anchors;
} P;

static X509 *
issue(ck_pki_profile profile, const char *cn, const char *principal, const char *dns,
      EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key)
{
    int64_t now = (int64_t)time(NULL);
    const char *dns_names[1] = {dns};
    ck_pki_cert_spec spec = {
        .profile = profile, .org = "cablekey test", .common_name = cn, .principal = principal,
        .dns_names = dns != NULL ? dns_names : NULL, .n_dns_names = dns != NULL ? 1 : 0,
        .path_len = profile == CK_PKI_PROFILE_CA ? 0 : -1,
        .not_before = now - DAY, .not_after = now + 365 * DAY,
    };
    X509 *x = NULL;

    if (ck_pki_cert_issue(&spec, key, issuer, issuer_key != NULL ? issuer_key : key, &x) != 0) {
        fprintf(stderr, "  issue %s: %s\n", cn, ck_error_context());
        return NULL;
    }
    return x;
}

static bool
pki_build(void)
{
    if (ck_pki_key_generate(CK_PKI_KEY_RSA_2048, &P.root_key) != 0 ||
        ck_pki_key_generate(CK_PKI_KEY_RSA_2048, &P.ca_key) != 0 ||
        ck_pki_key_generate(CK_PKI_KEY_RSA_2048, &P.kdc_key) != 0 ||
        ck_pki_key_generate(CK_PKI_KEY_RSA_2048, &P.alice_key) != 0 ||
        ck_pki_key_generate(CK_PKI_KEY_EC_P256, &P.ec_key) != 0 ||
        ck_pki_key_generate(CK_PKI_KEY_RSA_2048, &P.other_key) != 0)
        return false;
    P.root = issue(CK_PKI_PROFILE_ROOT_CA, "SP Root", NULL, NULL, P.root_key, NULL, NULL);
    P.ca = issue(CK_PKI_PROFILE_CA, "SP CA", NULL, NULL, P.ca_key, P.root, P.root_key);
    P.other_root = issue(CK_PKI_PROFILE_ROOT_CA, "Other Root", NULL, NULL, P.other_key, NULL,
                         NULL);
    if (P.root == NULL || P.ca == NULL || P.other_root == NULL)
        return false;
    P.kdc = issue(CK_PKI_PROFILE_KDC, "KDC", "krbtgt/" REALM "@" REALM, NULL, P.kdc_key, P.ca,
                  P.ca_key);
    /* The right name, but id-pkinit-KPClientAuth instead of id-pkinit-KPKdc. */
    P.kdc_noeku = issue(CK_PKI_PROFILE_CLIENT, "KDC", "krbtgt/" REALM "@" REALM, NULL, P.kdc_key,
                        P.ca, P.ca_key);
    /* KPKdc, but naming another realm's TGS and a host name. */
    P.kdc_named = issue(CK_PKI_PROFILE_KDC, "KDC", "krbtgt/OTHER.TEST@OTHER.TEST",
                        "kdc.example.test", P.kdc_key, P.ca, P.ca_key);
    P.other_kdc = issue(CK_PKI_PROFILE_KDC, "KDC", "krbtgt/" REALM "@" REALM, NULL, P.kdc_key,
                        P.other_root, P.other_key);
    P.alice = issue(CK_PKI_PROFILE_CLIENT, "alice", "alice@" REALM, NULL, P.alice_key, P.ca,
                    P.ca_key);
    P.alice_ec = issue(CK_PKI_PROFILE_CLIENT, "alice", "alice@" REALM, NULL, P.ec_key, P.ca,
                       P.ca_key);
    P.device = issue(CK_PKI_PROFILE_DEVICE, "00:11:22:33:44:55", NULL, NULL, P.alice_key, P.ca,
                     P.ca_key);
    if (!P.kdc || !P.kdc_noeku || !P.kdc_named || !P.other_kdc || !P.alice || !P.alice_ec ||
        !P.device)
        return false;
    P.chain = sk_X509_new_null();
    P.other_chain = sk_X509_new_null();
    if (P.chain == NULL || P.other_chain == NULL || !sk_X509_push(P.chain, P.ca))
        return false;
    P.kdc_id = (ck_pki_identity){.key = P.kdc_key, .cert = P.kdc, .chain = P.chain};
    P.kdc_noeku_id = (ck_pki_identity){.key = P.kdc_key, .cert = P.kdc_noeku, .chain = P.chain};
    P.kdc_named_id = (ck_pki_identity){.key = P.kdc_key, .cert = P.kdc_named, .chain = P.chain};
    P.other_kdc_id = (ck_pki_identity){.key = P.kdc_key, .cert = P.other_kdc,
                                       .chain = P.other_chain};
    P.alice_id = (ck_pki_identity){.key = P.alice_key, .cert = P.alice, .chain = P.chain};
    P.alice_ec_id = (ck_pki_identity){.key = P.ec_key, .cert = P.alice_ec, .chain = P.chain};
    P.device_id = (ck_pki_identity){.key = P.alice_key, .cert = P.device, .chain = P.chain};
    STACK_OF(X509) *roots = sk_X509_new_null();
    bool ok = roots != NULL && sk_X509_push(roots, P.root) &&
              ck_pkinit_anchors_new(&P.anchors) == 0 &&
              ck_pkinit_anchors_add(P.anchors, roots, 0, NULL) == 0;
    sk_X509_free(roots);
    return ok;
}

static bool
pki(void)
{
    if (!P.ready && !P.failed) {
        P.failed = !pki_build();
        P.ready = !P.failed;
        if (P.failed)
            fprintf(stderr, "  test PKI could not be built: %s\n", ck_error_context());
    }
    CHECK(P.ready);
    return P.ready;
}

static void
pki_free(void)
{
    EVP_PKEY *keys[] = {P.root_key, P.ca_key, P.kdc_key, P.alice_key, P.ec_key, P.other_key};
    X509 *certs[] = {P.root, P.ca, P.kdc, P.kdc_noeku, P.kdc_named, P.other_root, P.other_kdc,
                     P.alice, P.alice_ec, P.device};

    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        EVP_PKEY_free(keys[i]);
    for (size_t i = 0; i < sizeof(certs) / sizeof(certs[0]); i++)
        X509_free(certs[i]);
    sk_X509_free(P.chain);
    sk_X509_free(P.other_chain);
    ck_pkinit_anchors_free(P.anchors);
    memset(&P, 0, sizeof(P));
}

/* ---------------------------------------------------------------------------------------------
 * In-process PKINIT KDC.
 */
enum fault {
    F_NONE = 0,
    F_WRONG_NONCE,     /* KDCDHKeyInfo / ReplyKeyPack-draft9 nonce + 1 */
    F_BAD_SIG,         /* last byte of the reply's SignedData (the signature) flipped */
    F_WRONG_CKSUM,     /* asChecksum over another AS-REQ */
    F_RSA_FOR_DH,      /* encKeyPack to a DH request */
    F_DH_FOR_RSA,      /* dhInfo to an RSA request */
    F_NO_PK_REP,       /* AS-REP without PA-PK-AS-REP */
    F_ERROR_70,        /* KRB-ERROR 70 to every PKINIT request */
};

struct pk_kdc {
    const ck_pki_identity *id; /* signs the replies */
    enum fault fault;
    int kdf;                  /* CK_PKINIT_KDF_*, 0: none (octetstring2key) */
    bool offer_pkinit;        /* PREAUTH_REQUIRED lists PA-PK-AS-REQ */
    bool ticket_without_preauth; /* answer a request without PKINIT with an AS-REP */
    bool refuse_big_groups;   /* DH groups other than MODP 2048 / P-256: error 65 */
    int expire_token;         /* answer this many PKINIT requests with PREAUTH_EXPIRED */
    bool fail_same_token;     /* answer PKINIT with PREAUTH_FAILED and the same token */
    bool reuse;               /* serverDHNonce, nonce 0, dhKeyExpiration, octetstring2key */
    bool des3;                /* encKeyPack with des-ede3-cbc */
    bool pktc_reply_sha1;     /* PacketCable reply signed in the PacketCable form */
    /* what was seen */
    int calls, pk_calls;
    uint8_t first_req[8192], last_req[16384];
    size_t first_req_len, last_req_len;
    ck_key tgs_key, session_key, reply_key;
};

static void
kdc_init(struct pk_kdc *k)
{
    memset(k, 0, sizeof(*k));
    k->id = &P.kdc_id;
    k->kdf = CK_PKINIT_KDF_SHA256;
    k->offer_pkinit = true;
    CHECK_OK(ck_random_key(18, &k->tgs_key));
    CHECK_OK(ck_random_key(18, &k->session_key));
}

static void
kdc_clear(struct pk_kdc *k)
{
    ck_key_clear(&k->tgs_key);
    ck_key_clear(&k->session_key);
    ck_key_clear(&k->reply_key);
}

static int
hand_out(uint8_t *der, size_t len, uint8_t **reply, size_t *reply_len)
{
    *reply = ck_memdup(der, len);
    *reply_len = len;
    ck_asn1_free_der(der, len);
    return *reply != NULL ? 0 : CK_ERR_NOMEM;
}

/* KRB-ERROR with e-data (may be NULL). */
static int
kdc_error(int code, const uint8_t *edata, size_t edata_len, uint8_t **reply, size_t *reply_len)
{
    CK_KRB_ERROR_MSG *e = CK_KRB_ERROR_MSG_new();
    const char *tgs[2] = {"krbtgt", REALM};
    uint8_t *der = NULL;
    size_t dl = 0;
    int rc;

    e->pvno = 5;
    e->msg_type = CK_KRB_ERROR;
    e->error_code = code;
    ck_asn1_time_set(&e->stime, (int64_t)time(NULL));
    ck_asn1_kstring_set(&e->realm, REALM);
    ck_asn1_principal_set(e->sname, CK_NT_SRV_INST, tgs, 2);
    if (edata != NULL)
        ck_asn1_octets_set(&e->e_data, edata, edata_len);
    rc = ck_asn1_krb_error_encode(e, &der, &dl);
    if (rc == 0)
        rc = hand_out(der, dl, reply, reply_len);
    CK_KRB_ERROR_MSG_free(e);
    return rc;
}

/* PREAUTH_REQUIRED / PREAUTH_EXPIRED with METHOD-DATA: PA-PK-AS-REQ, a token, a cookie. */
static int
kdc_preauth_error(struct pk_kdc *k, int code, const char *token, uint8_t **reply,
                  size_t *reply_len)
{
    CK_METHOD_DATA *md = NULL;
    uint8_t *v = NULL;
    size_t vl = 0;
    int rc;

    ck_asn1_padata_add(&md, CK_PA_ENC_TIMESTAMP, NULL, 0);
    if (k->offer_pkinit)
        ck_asn1_padata_add(&md, CK_PA_PK_AS_REQ, NULL, 0);
    ck_asn1_padata_add(&md, CK_PA_AS_FRESHNESS, (const uint8_t *)token, strlen(token));
    ck_asn1_padata_add(&md, CK_PA_FX_COOKIE, (const uint8_t *)COOKIE, strlen(COOKIE));
    ck_asn1_method_data_encode(md, &v, &vl);
    rc = kdc_error(code, v, vl, reply, reply_len);
    ck_asn1_free_der(v, vl);
    CK_METHOD_DATA_free(md);
    return rc;
}

/* KDC_ERR_DH_KEY_PARAMETERS_NOT_ACCEPTED with TD-DH-PARAMETERS {P-256, MODP 2048}. */
static int
kdc_group_error(uint8_t **reply, size_t *reply_len)
{
    CK_ALGORITHM_IDENTIFIERS *algs = sk_X509_ALGOR_new_null();
    CK_TYPED_DATA *td = NULL;
    X509_ALGOR *a = NULL, *b = NULL;
    uint8_t *v = NULL, *t = NULL;
    size_t vl = 0, tl = 0;
    int rc;

    ck_pkinit_group_algorithm(CK_PKINIT_GROUP_P256, &a);
    ck_pkinit_group_algorithm(CK_PKINIT_GROUP_MODP2048, &b);
    sk_X509_ALGOR_push(algs, a);
    sk_X509_ALGOR_push(algs, b);
    ck_asn1_td_dh_parameters_encode(algs, &v, &vl);
    ck_pkinit_typed_data_add(&td, CK_TD_DH_PARAMETERS, v, vl);
    ck_asn1_typed_data_encode(td, &t, &tl);
    rc = kdc_error(CK_KDC_ERR_DH_KEY_PARAMETERS_NOT_ACCEPTED, t, tl, reply, reply_len);
    ck_asn1_free_der(v, vl);
    ck_asn1_free_der(t, tl);
    CK_TYPED_DATA_free(td);
    sk_X509_ALGOR_pop_free(algs, X509_ALGOR_free);
    return rc;
}

/* The AS-REP: ticket sealed with the TGS key, enc-part with the reply key, padata (may be
 * NULL). */
static int
kdc_as_rep(struct pk_kdc *k, const CK_KDC_REQ *r, const ck_key *reply_key, int32_t pa_type,
           const uint8_t *pa, size_t pa_len, uint8_t **reply, size_t *reply_len)
{
    CK_KDC_REP *rep = CK_AS_REP_new();
    CK_ENC_TICKET_PART *etp = CK_ENC_TICKET_PART_new();
    CK_ENC_KDC_REP_PART *enc = CK_ENC_KDC_REP_PART_new();
    CK_LAST_REQ_ENTRY *lr = CK_LAST_REQ_ENTRY_new();
    uint8_t *plain = NULL, *der = NULL;
    size_t pl = 0, dl = 0;
    int64_t now = (int64_t)time(NULL);
    int rc = CK_ERR_ENCODE;

    rep->pvno = 5;
    rep->msg_type = CK_KRB_AS_REP;
    ck_asn1_kstring_set(&rep->crealm, REALM);
    CK_PRINCIPAL_NAME_free(rep->cname);
    rep->cname = CK_PRINCIPAL_NAME_dup(r->req_body->cname);
    if (pa != NULL)
        ck_asn1_padata_add(&rep->padata, pa_type, pa, pa_len);
    ck_asn1_kstring_set(&rep->ticket->realm, REALM);
    CK_PRINCIPAL_NAME_free(rep->ticket->sname);
    rep->ticket->sname = CK_PRINCIPAL_NAME_dup(r->req_body->sname);
    ck_asn1_flags_set(&etp->flags, CK_TKT_FLG_INITIAL);
    ck_key_to_asn1(&k->session_key, &etp->key);
    ck_asn1_kstring_set(&etp->crealm, REALM);
    CK_PRINCIPAL_NAME_free(etp->cname);
    etp->cname = CK_PRINCIPAL_NAME_dup(r->req_body->cname);
    etp->transited->tr_type = 1;
    ck_asn1_octets_set(&etp->transited->contents, NULL, 0);
    ck_asn1_time_set(&etp->authtime, now);
    ck_asn1_time_set(&etp->endtime, now + 3600);
    if (ck_ticket_seal(rep->ticket, etp, &k->tgs_key, 1) != 0)
        goto out;
    ck_key_to_asn1(&k->session_key, &enc->key);
    lr->lr_type = 0;
    ck_asn1_time_set(&lr->lr_value, now);
    sk_CK_LAST_REQ_ENTRY_push(enc->last_req, lr);
    lr = NULL;
    ck_asn1_nonce_copy(&enc->nonce, r->req_body->nonce);
    ck_asn1_flags_set(&enc->flags, CK_TKT_FLG_INITIAL | CK_TKT_FLG_PRE_AUTHENT);
    ck_asn1_time_set(&enc->authtime, now);
    ck_asn1_time_set(&enc->endtime, now + 3600);
    ck_asn1_kstring_set(&enc->srealm, REALM);
    CK_PRINCIPAL_NAME_free(enc->sname);
    enc->sname = CK_PRINCIPAL_NAME_dup(r->req_body->sname);
    if ((rc = ck_asn1_enc_as_rep_part_encode(enc, &plain, &pl)) != 0 ||
        (rc = ck_enc_data_seal(rep->enc_part, reply_key, CK_KU_AS_REP_ENCPART, NULL, plain,
                               pl)) != 0)
        goto out;
    if ((rc = ck_asn1_as_rep_encode(rep, &der, &dl)) == 0)
        rc = hand_out(der, dl, reply, reply_len);
out:
    if (plain != NULL)
        ck_asn1_free_der(plain, pl);
    CK_LAST_REQ_ENTRY_free(lr);
    CK_ENC_KDC_REP_PART_free(enc);
    CK_ENC_TICKET_PART_free(etp);
    CK_AS_REP_free(rep);
    return rc;
}

/* Signs content as the KDC; F_BAD_SIG flips the signature's last byte. */
static int
kdc_sign(struct pk_kdc *k, ck_pkinit_ctype ctype, const uint8_t *content, size_t len,
         unsigned flags, uint8_t **ci, size_t *ci_len)
{
    int rc = ck_pkinit_cms_sign(k->id, ctype, content, len, flags, ci, ci_len);

    if (rc == 0 && k->fault == F_BAD_SIG)
        (*ci)[*ci_len - 1] ^= 0x01;
    return rc;
}

/* encKeyPack around a signed reply-key content, to the client's certificate. */
static int
kdc_enc_key_pack(struct pk_kdc *k, const uint8_t *signed_ci, size_t ci_len, X509 *client,
                 int cipher, unsigned flags, uint8_t **out, size_t *out_len)
{
    return ck_pkinit_cms_envelope(client, signed_ci, ci_len, k->des3 ? NID_des_ede3_cbc : cipher,
                                  flags, out, out_len);
}

static int
kdc_rfc(struct pk_kdc *k, const CK_KDC_REQ *r, const uint8_t *req, size_t req_len,
        const CK_PA_DATA *pa, uint8_t **reply, size_t *reply_len)
{
    CK_PA_PK_AS_REQ_MSG *pk = NULL;
    CK_AUTH_PACK *ap = NULL;
    CK_PA_PK_AS_REP_MSG *rep = CK_PA_PK_AS_REP_MSG_new();
    CK_DH_REP_INFO *dh = NULL;
    CK_KDC_DH_KEY_INFO *ki = NULL;
    CK_REPLY_KEY_PACK *rkp = NULL;
    ck_pkinit_signed *s = NULL;
    ck_pkinit_peer *peer = NULL;
    uint8_t *pub = NULL, *z = NULL, *v = NULL, *ci = NULL, *ekp = NULL, *pad = NULL;
    size_t pub_len = 0, z_len = 0, vl = 0, ci_len = 0, ekp_len = 0, pad_len = 0;
    uint8_t cks[CK_CHECKSUM_MAX], server_nonce[32];
    size_t cks_len = 0;
    uint32_t nonce;
    bool dh_mode;
    int rc;

    k->pk_calls++;
    if (k->fault == F_ERROR_70) {
        rc = kdc_error(CK_KDC_ERR_CANT_VERIFY_CERTIFICATE, NULL, 0, reply, reply_len);
        goto out;
    }
    if ((rc = ck_asn1_pa_pk_as_req_decode(ASN1_STRING_get0_data(pa->padata_value),
                                          (size_t)ASN1_STRING_length(pa->padata_value), &pk)) ||
        (rc = ck_pkinit_cms_verify(ASN1_STRING_get0_data(pk->signed_auth_pack),
                                   (size_t)ASN1_STRING_length(pk->signed_auth_pack),
                                   CK_PKINIT_CT_AUTH_DATA, 0, NULL, &s)) ||
        (rc = ck_asn1_auth_pack_decode(s->content, s->content_len, &ap)) ||
        (rc = ck_asn1_nonce_get(ap->pk_authenticator->nonce, &nonce)))
        goto out;
    if (k->fail_same_token) {
        rc = kdc_preauth_error(k, CK_KDC_ERR_PREAUTH_FAILED, TOKEN1, reply, reply_len);
        goto out;
    }
    if (k->expire_token > 0) {
        k->expire_token--;
        rc = kdc_preauth_error(k, CK_KDC_ERR_PREAUTH_EXPIRED, TOKEN2, reply, reply_len);
        goto out;
    }
    dh_mode = ap->client_public_value != NULL;
    if (dh_mode && (rc = ck_pkinit_peer_from_pubkey(ap->client_public_value, 0, &peer)) != 0)
        goto out;
    if (dh_mode && k->refuse_big_groups && ck_pkinit_peer_group(peer) != CK_PKINIT_GROUP_P256 &&
        ck_pkinit_peer_group(peer) != CK_PKINIT_GROUP_MODP2048) {
        rc = kdc_group_error(reply, reply_len);
        goto out;
    }
    if ((dh_mode && k->fault != F_RSA_FOR_DH) || (!dh_mode && k->fault == F_DH_FOR_RSA)) {
        ck_pkinit_dh *own = NULL;
        if (!dh_mode) {
            /* A DH reply to an RSA request: the KDC makes up both halves. */
            if ((rc = ck_pkinit_dh_generate(CK_PKINIT_GROUP_MODP2048, &own)) != 0 ||
                (rc = ck_pkinit_dh_public_value(own, &pub, &pub_len)) != 0) {
                ck_pkinit_dh_free(own);
                goto out;
            }
            ck_pkinit_dh_free(own);
            z = ck_memdup("zz", 2);
            z_len = 2;
        } else if ((rc = ck_pkinit_dh_kdc_exchange(peer, &pub, &pub_len, &z, &z_len)) != 0) {
            goto out;
        }
        ki = CK_KDC_DH_KEY_INFO_new();
        dh = CK_DH_REP_INFO_new();
        if (k->reuse) {
            /* RFC 4556 §3.2.3.1 key reuse, as a KDC that caches its DH key would answer. */
            if ((rc = ck_random_bytes(server_nonce, sizeof(server_nonce))) ||
                (rc = ck_asn1_octets_set(&dh->server_dh_nonce, server_nonce,
                                         sizeof(server_nonce))) ||
                (rc = ck_asn1_time_set(&ki->dh_key_expiration, (int64_t)time(NULL) + 3600)))
                goto out;
            nonce = k->fault == F_WRONG_NONCE ? nonce + 1 : 0;
        } else {
            nonce += k->fault == F_WRONG_NONCE;
        }
        if ((rc = ck_pkinit_bit_string_set(&ki->subject_public_key, pub, pub_len)) ||
            (rc = ck_asn1_nonce_set(&ki->nonce, nonce)) ||
            (rc = ck_asn1_kdc_dh_key_info_encode(ki, &v, &vl)) ||
            (rc = kdc_sign(k, CK_PKINIT_CT_DHKEY_DATA, v, vl, 0, &ci, &ci_len)) ||
            (rc = ck_asn1_octets_set(&dh->dh_signed_data, ci, ci_len)))
            goto out;
        if (k->kdf != 0 && (rc = ck_pkinit_kdf_id_set(&dh->kdf, k->kdf)) != 0)
            goto out;
        if ((rc = ck_pkinit_pa_pk_as_rep_set_dh(rep, dh)) != 0)
            goto out;
        dh = NULL;
        if ((rc = ck_asn1_pa_pk_as_rep_encode(rep, &pad, &pad_len)) != 0)
            goto out;
        if (k->kdf != 0)
            rc = ck_pkinit_kdf(k->kdf, z, z_len, r->req_body->cname, REALM, r->req_body->sname,
                               REALM, 18, req, req_len, pad, pad_len, &k->reply_key);
        else if (k->reuse && ap->client_dh_nonce != NULL)
            rc = ck_pkinit_octetstring2key(z, z_len, ASN1_STRING_get0_data(ap->client_dh_nonce),
                                           (size_t)ASN1_STRING_length(ap->client_dh_nonce),
                                           server_nonce, sizeof(server_nonce), 18,
                                           &k->reply_key);
        else
            rc = ck_pkinit_octetstring2key(z, z_len, NULL, 0, NULL, 0, 18, &k->reply_key);
        if (rc != 0)
            goto out;
    } else {
        rkp = CK_REPLY_KEY_PACK_new();
        if ((rc = ck_random_key(18, &k->reply_key)) ||
            (rc = ck_make_checksum(&k->reply_key, 0, CK_KU_TGS_REQ_AUTH_CKSUM, req,
                                   req_len - (k->fault == F_WRONG_CKSUM), cks, sizeof(cks),
                                   &cks_len)) ||
            (rc = ck_asn1_checksum_set(rkp->as_checksum,
                                       ck_enctype_checksum_type(k->reply_key.enctype), cks,
                                       cks_len)))
            goto out;
        CK_ENCRYPTION_KEY_free(rkp->reply_key);
        rkp->reply_key = NULL;
        if ((rc = ck_key_to_asn1(&k->reply_key, &rkp->reply_key)) ||
            (rc = ck_asn1_reply_key_pack_encode(rkp, &v, &vl)) ||
            (rc = kdc_sign(k, CK_PKINIT_CT_RKEY_DATA, v, vl, 0, &ci, &ci_len)) ||
            (rc = kdc_enc_key_pack(k, ci, ci_len, s->signer,
                                   ck_pkinit_cms_pick_cipher(ap->supported_cms_types), 0, &ekp,
                                   &ekp_len)) ||
            (rc = ck_pkinit_pa_pk_as_rep_set_enc_key_pack(rep, ekp, ekp_len)) ||
            (rc = ck_asn1_pa_pk_as_rep_encode(rep, &pad, &pad_len)))
            goto out;
    }
    rc = kdc_as_rep(k, r, &k->reply_key, CK_PA_PK_AS_REP, k->fault == F_NO_PK_REP ? NULL : pad,
                    pad_len, reply, reply_len);
out:
    if (z != NULL)
        ck_free_secret(z, z_len);
    free(pub);
    if (v != NULL)
        ck_asn1_free_der(v, vl);
    if (pad != NULL)
        ck_asn1_free_der(pad, pad_len);
    if (ci != NULL)
        ck_free_secret(ci, ci_len);
    free(ekp);
    ck_pkinit_peer_free(peer);
    CK_REPLY_KEY_PACK_free(rkp);
    CK_KDC_DH_KEY_INFO_free(ki);
    CK_DH_REP_INFO_free(dh);
    CK_PA_PK_AS_REP_MSG_free(rep);
    ck_pkinit_signed_free(s);
    CK_AUTH_PACK_free(ap);
    CK_PA_PK_AS_REQ_MSG_free(pk);
    return rc;
}

static int
kdc_pktc(struct pk_kdc *k, const CK_KDC_REQ *r, const CK_PA_DATA *pa, uint8_t **reply,
         size_t *reply_len)
{
    CK_PA_PK_AS_REQ_DRAFT9 *pk = NULL;
    CK_AUTH_PACK_PKTC *ap = NULL;
    CK_PA_PK_AS_REP_DRAFT9 *rep = CK_PA_PK_AS_REP_DRAFT9_new();
    CK_REPLY_KEY_PACK_DRAFT9 *rkp = CK_REPLY_KEY_PACK_DRAFT9_new();
    ck_pkinit_signed *s = NULL;
    uint8_t *v = NULL, *ci = NULL, *ekp = NULL, *pad = NULL;
    size_t vl = 0, ci_len = 0, ekp_len = 0, pad_len = 0;
    uint32_t nonce;
    int rc;

    k->pk_calls++;
    if ((rc = ck_asn1_pa_pk_as_req_draft9_decode(ASN1_STRING_get0_data(pa->padata_value),
                                                 (size_t)ASN1_STRING_length(pa->padata_value),
                                                 &pk)) ||
        (rc = ck_pkinit_cms_verify(ASN1_STRING_get0_data(pk->signed_auth_pack),
                                   (size_t)ASN1_STRING_length(pk->signed_auth_pack),
                                   CK_PKINIT_CT_AUTH_DATA, CK_PKINIT_VERIFY_ALLOW_SHA1, NULL,
                                   &s)) ||
        (rc = ck_asn1_auth_pack_pktc_decode(s->content, s->content_len, &ap)) ||
        (rc = ck_asn1_nonce_get(ap->pk_authenticator->nonce, &nonce)))
        goto out;
    CK_ENCRYPTION_KEY_free(rkp->reply_key);
    rkp->reply_key = NULL;
    if ((rc = ck_random_key(18, &k->reply_key)) ||
        (rc = ck_key_to_asn1(&k->reply_key, &rkp->reply_key)) ||
        (rc = ck_asn1_nonce_set(&rkp->nonce, nonce + (k->fault == F_WRONG_NONCE))) ||
        (rc = ck_asn1_reply_key_pack_draft9_encode(rkp, &v, &vl)) ||
        (rc = kdc_sign(k, CK_PKINIT_CT_RKEY_DATA, v, vl,
                       k->pktc_reply_sha1 ? CK_PKINIT_SIGN_PACKETCABLE : 0, &ci, &ci_len)) ||
        (rc = kdc_enc_key_pack(k, ci, ci_len, s->signer, NID_des_ede3_cbc,
                               CK_PKINIT_ENVELOPE_CONTENTINFO, &ekp, &ekp_len)) ||
        (rc = ck_pkinit_pa_pk_as_rep_draft9_set(rep, CK_PA_PK_AS_REP_DRAFT9_ENC_KEY_PACK,
                                                pk->form, ekp, ekp_len)) ||
        (rc = ck_asn1_pa_pk_as_rep_draft9_encode(rep, &pad, &pad_len)))
        goto out;
    rc = kdc_as_rep(k, r, &k->reply_key, CK_PA_PK_AS_REP_OLD, pad, pad_len, reply, reply_len);
out:
    if (v != NULL)
        ck_asn1_free_der(v, vl);
    if (pad != NULL)
        ck_asn1_free_der(pad, pad_len);
    if (ci != NULL)
        ck_free_secret(ci, ci_len);
    free(ekp);
    CK_REPLY_KEY_PACK_DRAFT9_free(rkp);
    CK_PA_PK_AS_REP_DRAFT9_free(rep);
    ck_pkinit_signed_free(s);
    CK_AUTH_PACK_PKTC_free(ap);
    CK_PA_PK_AS_REQ_DRAFT9_free(pk);
    return rc;
}

static int
kdc_send(void *arg, const uint8_t *req, size_t req_len, uint8_t **reply, size_t *reply_len)
{
    struct pk_kdc *k = arg;
    CK_AS_REQ *r = NULL;
    const CK_PA_DATA *pa;
    int rc;

    if (k->calls++ == 0 && req_len <= sizeof(k->first_req)) {
        memcpy(k->first_req, req, req_len);
        k->first_req_len = req_len;
    }
    if (req_len <= sizeof(k->last_req)) {
        memcpy(k->last_req, req, req_len);
        k->last_req_len = req_len;
    }
    if ((rc = ck_asn1_as_req_decode(req, req_len, &r)) != 0)
        return rc;
    if ((pa = ck_asn1_padata_find(r->padata, CK_PA_PK_AS_REQ)) != NULL)
        rc = kdc_rfc(k, r, req, req_len, pa, reply, reply_len);
    else if ((pa = ck_asn1_padata_find(r->padata, CK_PA_PK_AS_REQ_OLD)) != NULL)
        rc = kdc_pktc(k, r, pa, reply, reply_len);
    else if (k->ticket_without_preauth) {
        ck_key lt;
        ck_random_key(18, &lt); /* the client's long-term key, which it does not have */
        rc = kdc_as_rep(k, r, &lt, 0, NULL, 0, reply, reply_len);
        ck_key_clear(&lt);
    } else
        rc = kdc_preauth_error(k, CK_KDC_ERR_PREAUTH_REQUIRED, TOKEN1, reply, reply_len);
    CK_AS_REQ_free(r);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Running the client.
 */
struct run {
    ck_kdc_transport t;
    ck_as_params as;
    ck_pkinit_client_params p;
    ck_pkinit_client_info info;
    ck_creds *creds;
    int rc, krb_code;
    char error[512];
};

static void
run_init(struct run *r, struct pk_kdc *k)
{
    memset(r, 0, sizeof(*r));
    r->t = (ck_kdc_transport){.send_fn = kdc_send, .send_arg = k};
    r->as = (ck_as_params){.realm = REALM, .client = "alice", .transport = &r->t};
    r->p = (ck_pkinit_client_params){.as = &r->as, .identity = &P.alice_id, .anchors = P.anchors};
}

static int
run_go(struct run *r)
{
    ck_error_clear();
    r->rc = ck_client_as_pkinit(&r->p, &r->creds, &r->info);
    r->krb_code = ck_error_krb_code();
    ck_strlcpy(r->error, ck_error_context(), sizeof(r->error));
    if (r->rc != 0 && getenv("CK_TEST_VERBOSE") != NULL)
        fprintf(stderr, "  (%d: %s)\n", r->rc, r->error);
    return r->rc;
}

static void
run_clear(struct run *r)
{
    ck_creds_free(r->creds);
    r->creds = NULL;
}

/* A successful exchange: credentials for alice, the TGT, session key from the KDC. */
static void
check_creds(const struct run *r, const struct pk_kdc *k)
{
    CHECK(r->creds != NULL);
    if (r->creds == NULL)
        return;
    CHECK(strcmp(r->creds->client->realm, REALM) == 0);
    CHECK(r->creds->client->n_components == 1 &&
          strcmp(r->creds->client->components[0], "alice") == 0);
    CHECK(ck_principal_is_tgs(r->creds->server, REALM));
    CHECK_MEM_EQ(r->creds->session_key.contents, r->creds->session_key.length,
                 k->session_key.contents, k->session_key.length);
    CHECK_INT_EQ(r->info.reply_enctype, 18);
}

/* Decodes the KDC's last request and its PKINIT AuthPack (RFC form). */
struct seen {
    CK_AS_REQ *req;
    CK_PA_PK_AS_REQ_MSG *pk;
    ck_pkinit_signed *s;
    CK_AUTH_PACK *ap;
};

static bool
seen_decode(const struct pk_kdc *k, struct seen *sn)
{
    const CK_PA_DATA *pa;

    memset(sn, 0, sizeof(*sn));
    CHECK_OK(ck_asn1_as_req_decode(k->last_req, k->last_req_len, &sn->req));
    if (sn->req == NULL)
        return false;
    pa = ck_asn1_padata_find(sn->req->padata, CK_PA_PK_AS_REQ);
    CHECK(pa != NULL);
    if (pa == NULL)
        return false;
    CHECK_OK(ck_asn1_pa_pk_as_req_decode(ASN1_STRING_get0_data(pa->padata_value),
                                         (size_t)ASN1_STRING_length(pa->padata_value), &sn->pk));
    if (sn->pk == NULL)
        return false;
    CHECK_OK(ck_pkinit_cms_verify(ASN1_STRING_get0_data(sn->pk->signed_auth_pack),
                                  (size_t)ASN1_STRING_length(sn->pk->signed_auth_pack),
                                  CK_PKINIT_CT_AUTH_DATA, 0, NULL, &sn->s));
    if (sn->s == NULL)
        return false;
    CHECK_OK(ck_asn1_auth_pack_decode(sn->s->content, sn->s->content_len, &sn->ap));
    return sn->ap != NULL;
}

static void
seen_free(struct seen *sn)
{
    CK_AUTH_PACK_free(sn->ap);
    ck_pkinit_signed_free(sn->s);
    CK_PA_PK_AS_REQ_MSG_free(sn->pk);
    CK_AS_REQ_free(sn->req);
}

static bool
has_alg(const STACK_OF(X509_ALGOR) *algs, int nid)
{
    for (int i = 0; i < sk_X509_ALGOR_num(algs); i++) {
        if (OBJ_obj2nid(sk_X509_ALGOR_value(algs, i)->algorithm) == nid)
            return true;
    }
    return false;
}

static bool
octets_eq(const ASN1_OCTET_STRING *o, const void *data, size_t len)
{
    return o != NULL && (size_t)ASN1_STRING_length(o) == len &&
           memcmp(ASN1_STRING_get0_data(o), data, len) == 0;
}

/* ---------------------------------------------------------------------------------------------
 * RFC 4556 requests.
 */

static void
test_request_fields_dh(void)
{
    struct pk_kdc k;
    struct run r;
    struct seen sn;
    CK_AS_REQ *first = NULL;
    const uint8_t *body;
    size_t body_len;
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned md_len;
    uint32_t body_nonce, pk_nonce;
    int64_t ctime, now = (int64_t)time(NULL);
    ck_pkinit_peer *peer = NULL;
    const CK_PK_AUTHENTICATOR *pa;
    const CK_PA_DATA *fresh;

    if (!pki())
        return;
    kdc_init(&k);
    run_init(&r, &k);
    CHECK_OK(run_go(&r));
    check_creds(&r, &k);
    CHECK_INT_EQ(r.info.requests, 2);
    CHECK_INT_EQ(k.calls, 2);
    CHECK_INT_EQ(r.info.kx, CK_PKINIT_KX_DH);
    CHECK_INT_EQ(r.info.group, CK_PKINIT_GROUP_MODP2048);
    CHECK_INT_EQ(r.info.kdf, CK_PKINIT_KDF_SHA256);
    CHECK(r.info.freshness);
    CHECK(!r.info.packetcable && !r.info.group_retry);

    /* The first request: no PKINIT, an empty PA-AS-FRESHNESS asking for a token. */
    CHECK_OK(ck_asn1_as_req_decode(k.first_req, k.first_req_len, &first));
    if (first != NULL) {
        CHECK(ck_asn1_padata_find(first->padata, CK_PA_PK_AS_REQ) == NULL);
        fresh = ck_asn1_padata_find(first->padata, CK_PA_AS_FRESHNESS);
        CHECK(fresh != NULL && ASN1_STRING_length(fresh->padata_value) == 0);
        CK_AS_REQ_free(first);
    }

    /* The PKINIT request. */
    if (!seen_decode(&k, &sn))
        goto out;
    CHECK(ck_asn1_padata_find(sn.req->padata, CK_PA_AS_FRESHNESS) != NULL);
    CHECK(octets_eq(ck_asn1_padata_find(sn.req->padata, CK_PA_FX_COOKIE)->padata_value, COOKIE,
                    strlen(COOKIE)));
    CHECK(sn.pk->trusted_certifiers == NULL && sn.pk->kdc_pk_id == NULL);
    /* SignedData: signed attributes, SHA-256, signer = alice, the CA carried. */
    CHECK(sn.s->signed_attrs);
    CHECK_INT_EQ(sn.s->digest_nid, NID_sha256);
    CHECK(X509_cmp(sn.s->signer, P.alice) == 0);
    CHECK_INT_EQ(sk_X509_num(sn.s->certs), 2);
    CHECK(!ck_pkinit_signed_is_packetcable(sn.s));
    /* PKAuthenticator: the request's nonce, checksums of the DER req-body, the token. */
    pa = sn.ap->pk_authenticator;
    CHECK_OK(ck_asn1_kdc_req_body_der(sn.req, &body, &body_len));
    CHECK_OK(ck_asn1_nonce_get(sn.req->req_body->nonce, &body_nonce));
    CHECK_OK(ck_asn1_nonce_get(pa->nonce, &pk_nonce));
    CHECK_INT_EQ(pk_nonce, body_nonce);
    CHECK(pa->cusec >= 0 && pa->cusec <= 999999);
    CHECK_OK(ck_asn1_time_get(pa->ctime, &ctime));
    CHECK(ctime >= now - 60 && ctime <= now + 60);
    CHECK(EVP_Digest(body, body_len, md, &md_len, EVP_sha1(), NULL) == 1);
    CHECK(octets_eq(pa->pa_checksum, md, md_len));
    CHECK(pa->pa_checksum2 != NULL);
    if (pa->pa_checksum2 != NULL) {
        CHECK(EVP_Digest(body, body_len, md, &md_len, EVP_sha256(), NULL) == 1);
        CHECK(octets_eq(pa->pa_checksum2->checksum, md, md_len));
        CHECK_INT_EQ(OBJ_obj2nid(pa->pa_checksum2->algorithm_identifier->algorithm), NID_sha256);
    }
    CHECK(octets_eq(pa->freshness_token, TOKEN1, strlen(TOKEN1)));
    /* clientPublicValue: an X9.42 DH key in MODP 2048, no clientDHNonce. */
    CHECK(sn.ap->client_public_value != NULL);
    CHECK_OK(ck_pkinit_peer_from_pubkey(sn.ap->client_public_value, 2048, &peer));
    CHECK(peer != NULL && ck_pkinit_peer_group(peer) == CK_PKINIT_GROUP_MODP2048);
    CHECK(sn.ap->client_dh_nonce == NULL);
    /* supportedCMSTypes and supportedKDFs. */
    CHECK(has_alg(sn.ap->supported_cms_types, NID_aes_256_cbc));
    CHECK(has_alg(sn.ap->supported_cms_types, NID_des_ede3_cbc));
    CHECK(has_alg(sn.ap->supported_cms_types, NID_sha256WithRSAEncryption));
    CHECK_INT_EQ(sk_CK_KDF_ALGORITHM_ID_num(sn.ap->supported_kdfs), 3);
    {
        static const int want[3] = {CK_PKINIT_KDF_SHA256, CK_PKINIT_KDF_SHA1,
                                    CK_PKINIT_KDF_SHA512};
        for (int i = 0; i < 3 && i < sk_CK_KDF_ALGORITHM_ID_num(sn.ap->supported_kdfs); i++) {
            int kdf = 0;
            CHECK_OK(ck_pkinit_kdf_id_get(sk_CK_KDF_ALGORITHM_ID_value(sn.ap->supported_kdfs, i),
                                          &kdf));
            CHECK_INT_EQ(kdf, want[i]);
        }
    }
out:
    ck_pkinit_peer_free(peer);
    seen_free(&sn);
    run_clear(&r);
    kdc_clear(&k);
}

static void
test_request_options(void)
{
    struct pk_kdc k;
    struct run r;
    struct seen sn;
    CK_AS_REQ *first = NULL;

    if (!pki())
        return;
    /* PKINIT in the first request, with a clientDHNonce, without paChecksum2: one request. */
    kdc_init(&k);
    run_init(&r, &k);
    r.as.preauth_first = true;
    r.p.client_dh_nonce = true;
    r.p.no_pa_checksum2 = true;
    CHECK_OK(run_go(&r));
    check_creds(&r, &k);
    CHECK_INT_EQ(k.calls, 1);
    CHECK(!r.info.freshness);
    if (seen_decode(&k, &sn)) {
        CHECK(sn.ap->client_dh_nonce != NULL &&
              ASN1_STRING_length(sn.ap->client_dh_nonce) == CK_PKINIT_DH_NONCE_LEN);
        CHECK(sn.ap->pk_authenticator->pa_checksum2 == NULL);
        CHECK(sn.ap->pk_authenticator->freshness_token == NULL);
        CHECK(ck_asn1_padata_find(sn.req->padata, CK_PA_FX_COOKIE) == NULL);
    }
    seen_free(&sn);
    run_clear(&r);
    kdc_clear(&k);

    /* RSA key transport: no clientPublicValue, supportedKDFs still offered. */
    kdc_init(&k);
    run_init(&r, &k);
    r.p.kx = CK_PKINIT_KX_RSA;
    CHECK_OK(run_go(&r));
    check_creds(&r, &k);
    CHECK_INT_EQ(r.info.kx, CK_PKINIT_KX_RSA);
    CHECK_INT_EQ(r.info.kdf, 0);
    if (seen_decode(&k, &sn)) {
        CHECK(sn.ap->client_public_value == NULL);
        CHECK(sn.ap->client_dh_nonce == NULL);
        CHECK(sn.ap->pk_authenticator->pa_checksum != NULL);
    }
    seen_free(&sn);
    run_clear(&r);
    kdc_clear(&k);

    /* An EC identity signs with ECDSA/SHA-256; the KDC still does DH with it. */
    kdc_init(&k);
    run_init(&r, &k);
    r.p.identity = &P.alice_ec_id;
    CHECK_OK(run_go(&r));
    check_creds(&r, &k);
    if (seen_decode(&k, &sn))
        CHECK(X509_cmp(sn.s->signer, P.alice_ec) == 0 && sn.s->digest_nid == NID_sha256);
    seen_free(&sn);
    run_clear(&r);
    kdc_clear(&k);

    /* The principal defaults to the certificate's id-pkinit-san. */
    kdc_init(&k);
    run_init(&r, &k);
    r.as.client = NULL;
    CHECK_OK(run_go(&r));
    check_creds(&r, &k);
    CHECK_OK(ck_asn1_as_req_decode(k.first_req, k.first_req_len, &first));
    if (first != NULL) {
        const char *s = NULL;
        size_t len = 0;
        CHECK_OK(ck_asn1_principal_component(first->req_body->cname, 0, &s, &len));
        CHECK(len == 5 && memcmp(s, "alice", 5) == 0);
        CK_AS_REQ_free(first);
    }
    run_clear(&r);
    kdc_clear(&k);
}

static void
test_dh_groups_and_kdfs(void)
{
    static const ck_pkinit_group groups[] = {CK_PKINIT_GROUP_MODP3072, CK_PKINIT_GROUP_MODP4096,
                                             CK_PKINIT_GROUP_P256, CK_PKINIT_GROUP_P384};
    static const int kdfs[] = {CK_PKINIT_KDF_SHA1, CK_PKINIT_KDF_SHA512, 0};
    struct pk_kdc k;
    struct run r;
    struct seen sn;

    if (!pki())
        return;
    for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++) {
        ck_pkinit_peer *peer = NULL;
        kdc_init(&k);
        run_init(&r, &k);
        r.p.group = groups[i];
        CHECK_OK(run_go(&r));
        check_creds(&r, &k);
        CHECK_INT_EQ(r.info.group, groups[i]);
        if (seen_decode(&k, &sn)) {
            CHECK_OK(ck_pkinit_peer_from_pubkey(sn.ap->client_public_value, 0, &peer));
            CHECK(peer != NULL && ck_pkinit_peer_group(peer) == groups[i]);
        }
        ck_pkinit_peer_free(peer);
        seen_free(&sn);
        run_clear(&r);
        kdc_clear(&k);
    }
    /* The KDC's KDF choice, and octetstring2key when it names none. */
    for (size_t i = 0; i < sizeof(kdfs) / sizeof(kdfs[0]); i++) {
        kdc_init(&k);
        run_init(&r, &k);
        k.kdf = kdfs[i];
        CHECK_OK(run_go(&r));
        check_creds(&r, &k);
        CHECK_INT_EQ(r.info.kdf, kdfs[i]);
        run_clear(&r);
        kdc_clear(&k);
    }
    /* A KDC reusing its DH key (serverDHNonce, nonce 0, octetstring2key over both nonces):
     * accepted after our clientDHNonce, refused without it or with a nonce neither 0 nor ours. */
    kdc_init(&k);
    run_init(&r, &k);
    k.kdf = 0;
    k.reuse = true;
    r.p.client_dh_nonce = true;
    CHECK_OK(run_go(&r));
    check_creds(&r, &k);
    run_clear(&r);
    kdc_clear(&k);
    kdc_init(&k);
    run_init(&r, &k);
    k.kdf = 0;
    k.reuse = true;
    CHECK_INT_EQ(run_go(&r), CK_ERR_PROTO);
    CHECK(strstr(r.error, "serverDHNonce without our clientDHNonce") != NULL);
    run_clear(&r);
    kdc_clear(&k);
    kdc_init(&k);
    run_init(&r, &k);
    k.kdf = 0;
    k.reuse = true;
    k.fault = F_WRONG_NONCE;
    r.p.client_dh_nonce = true;
    CHECK_INT_EQ(run_go(&r), CK_ERR_INTEGRITY);
    CHECK_INT_EQ(r.krb_code, CK_KRB_AP_ERR_MODIFIED);
    run_clear(&r);
    kdc_clear(&k);

    /* A KDF we did not offer is refused. */
    kdc_init(&k);
    run_init(&r, &k);
    k.kdf = CK_PKINIT_KDF_SHA384;
    CHECK_INT_EQ(run_go(&r), CK_ERR_PROTO);
    CHECK(strstr(r.error, "KDF we did not offer") != NULL);
    CHECK(r.creds == NULL);
    run_clear(&r);
    kdc_clear(&k);
}

static void
test_rsa_replies(void)
{
    struct pk_kdc k;
    struct run r;

    if (!pki())
        return;
    /* des-ede3-cbc, the cipher MIT's KDC uses, is decrypted too. */
    kdc_init(&k);
    run_init(&r, &k);
    r.p.kx = CK_PKINIT_KX_RSA;
    k.des3 = true;
    CHECK_OK(run_go(&r));
    check_creds(&r, &k);
    run_clear(&r);
    kdc_clear(&k);
    /* An asChecksum over another request. */
    kdc_init(&k);
    run_init(&r, &k);
    r.p.kx = CK_PKINIT_KX_RSA;
    k.fault = F_WRONG_CKSUM;
    CHECK_INT_EQ(run_go(&r), CK_ERR_INTEGRITY);
    CHECK_INT_EQ(r.krb_code, CK_KRB_AP_ERR_MODIFIED);
    CHECK(strstr(r.error, "asChecksum") != NULL);
    CHECK(r.creds == NULL);
    run_clear(&r);
    kdc_clear(&k);
}

/* One refused reply: the error code, a message fragment, no credentials. */
static void
refused(const char *what, ck_pkinit_kx kx, enum fault f, const ck_pki_identity *kdc_id,
        const char *kdc_hostname, int want_rc, const char *want_msg)
{
    struct pk_kdc k;
    struct run r;

    kdc_init(&k);
    run_init(&r, &k);
    r.p.kx = kx;
    r.p.kdc_hostname = kdc_hostname;
    k.fault = f;
    if (kdc_id != NULL)
        k.id = kdc_id;
    run_go(&r);
    if (r.rc != want_rc || strstr(r.error, want_msg) == NULL || r.creds != NULL) {
        fprintf(stderr, "  %s (%s): got %d '%s', want %d '%s'\n", what,
                kx == CK_PKINIT_KX_DH ? "DH" : "RSA", r.rc, r.error, want_rc, want_msg);
        ck_test_case_failed = 1;
    }
    run_clear(&r);
    kdc_clear(&k);
}

static void
test_refused_replies(void)
{
    static const ck_pkinit_kx kxs[] = {CK_PKINIT_KX_DH, CK_PKINIT_KX_RSA};

    if (!pki())
        return;
    for (size_t i = 0; i < 2; i++) {
        ck_pkinit_kx kx = kxs[i];
        refused("tampered signature", kx, F_BAD_SIG, NULL, NULL, CK_ERR_INTEGRITY,
                "KDC signature");
        refused("KDC certificate without id-pkinit-KPKdc", kx, F_NONE, &P.kdc_noeku_id, NULL,
                CK_ERR_POLICY, "KDC certificate refused (EKU)");
        refused("KDC certificate from another anchor", kx, F_NONE, &P.other_kdc_id, NULL,
                CK_ERR_POLICY, "KDC certificate not trusted");
        refused("KDC certificate naming another realm", kx, F_NONE, &P.kdc_named_id, NULL,
                CK_ERR_POLICY, "does not name krbtgt/" REALM "@" REALM);
        refused("KDC certificate naming another host", kx, F_NONE, &P.kdc_named_id,
                "kdc2.example.test", CK_ERR_POLICY, "nor the host kdc2.example.test");
        refused("AS-REP without PA-PK-AS-REP", kx, F_NO_PK_REP, NULL, NULL, CK_ERR_PROTO,
                "without PA-PK-AS-REP");
        refused("KRB-ERROR 70", kx, F_ERROR_70, NULL, NULL, CK_ERR_KRB, "KRB-ERROR 70");
    }
    refused("wrong KDCDHKeyInfo nonce", CK_PKINIT_KX_DH, F_WRONG_NONCE, NULL, NULL,
            CK_ERR_INTEGRITY, "KRB_AP_ERR_MODIFIED");
    refused("RSA reply to a DH request", CK_PKINIT_KX_DH, F_RSA_FOR_DH, NULL, NULL, CK_ERR_PROTO,
            "RSA key transport reply to a Diffie-Hellman request");
    refused("DH reply to an RSA request", CK_PKINIT_KX_RSA, F_DH_FOR_RSA, NULL, NULL,
            CK_ERR_PROTO, "Diffie-Hellman reply to an RSA request");
}

static void
test_kdc_hostname(void)
{
    struct pk_kdc k;
    struct run r;

    if (!pki())
        return;
    /* MIT's pkinit_kdc_hostname: a dNSName SAN stands in for the krbtgt name (EKU still
     * required: kdc_named has KPKdc). */
    kdc_init(&k);
    run_init(&r, &k);
    k.id = &P.kdc_named_id;
    r.p.kdc_hostname = "kdc.example.test";
    CHECK_OK(run_go(&r));
    check_creds(&r, &k);
    run_clear(&r);
    kdc_clear(&k);
    /* Not for a certificate without KPKdc. */
    refused("host name on a certificate without KPKdc", CK_PKINIT_KX_DH, F_NONE,
            &P.kdc_noeku_id, "kdc.example.test", CK_ERR_POLICY, "(EKU)");
}

/* ---------------------------------------------------------------------------------------------
 * KDC errors and retries.
 */

static void
test_kdc_errors(void)
{
    struct pk_kdc k;
    struct run r;
    struct seen sn;

    if (!pki())
        return;
    /* MODP 4096 refused; the KDC lists P-256 then MODP 2048: the client takes P-256, once. */
    kdc_init(&k);
    run_init(&r, &k);
    r.p.group = CK_PKINIT_GROUP_MODP4096;
    k.refuse_big_groups = true;
    CHECK_OK(run_go(&r));
    check_creds(&r, &k);
    CHECK(r.info.group_retry);
    CHECK_INT_EQ(r.info.group, CK_PKINIT_GROUP_P256);
    CHECK_INT_EQ(r.info.requests, 3);
    CHECK_INT_EQ(k.pk_calls, 2);
    run_clear(&r);
    kdc_clear(&k);

    /* A stale freshness token: PREAUTH_EXPIRED with a new one, used in one more request. */
    kdc_init(&k);
    run_init(&r, &k);
    k.expire_token = 1;
    CHECK_OK(run_go(&r));
    check_creds(&r, &k);
    CHECK_INT_EQ(k.pk_calls, 2);
    if (seen_decode(&k, &sn))
        CHECK(octets_eq(sn.ap->pk_authenticator->freshness_token, TOKEN2, strlen(TOKEN2)));
    seen_free(&sn);
    run_clear(&r);
    kdc_clear(&k);
    /* ...but only once. */
    kdc_init(&k);
    run_init(&r, &k);
    k.expire_token = 5;
    CHECK_INT_EQ(run_go(&r), CK_ERR_KRB);
    CHECK_INT_EQ(r.krb_code, CK_KDC_ERR_PREAUTH_EXPIRED);
    CHECK_INT_EQ(k.pk_calls, 2);
    run_clear(&r);
    kdc_clear(&k);

    /* PREAUTH_FAILED with the token we sent: nothing to gain from asking again. */
    kdc_init(&k);
    run_init(&r, &k);
    k.fail_same_token = true;
    CHECK_INT_EQ(run_go(&r), CK_ERR_KRB);
    CHECK_INT_EQ(r.krb_code, CK_KDC_ERR_PREAUTH_FAILED);
    CHECK(strstr(r.error, "PKINIT refused by the KDC: KRB-ERROR 24") != NULL);
    CHECK_INT_EQ(k.pk_calls, 1);
    run_clear(&r);
    kdc_clear(&k);

    /* A KDC that does not offer PKINIT. */
    kdc_init(&k);
    run_init(&r, &k);
    k.offer_pkinit = false;
    CHECK_INT_EQ(run_go(&r), CK_ERR_KRB);
    CHECK_INT_EQ(r.krb_code, CK_KDC_ERR_PREAUTH_REQUIRED);
    CHECK(strstr(r.error, "does not offer PKINIT") != NULL);
    CHECK_INT_EQ(k.calls, 1);
    run_clear(&r);
    kdc_clear(&k);

    /* A ticket issued without pre-authentication (in a key we lack): ask again with PKINIT. */
    kdc_init(&k);
    run_init(&r, &k);
    k.ticket_without_preauth = true;
    CHECK_OK(run_go(&r));
    check_creds(&r, &k);
    CHECK_INT_EQ(k.calls, 2);
    CHECK_INT_EQ(k.pk_calls, 1);
    run_clear(&r);
    kdc_clear(&k);
}

static void
test_bad_params(void)
{
    struct pk_kdc k;
    struct run r;
    char *name = NULL;

    if (!pki())
        return;
    kdc_init(&k);
    run_init(&r, &k);
    r.p.kx = CK_PKINIT_KX_RSA;
    r.p.identity = &P.alice_ec_id;
    CHECK_INT_EQ(run_go(&r), CK_ERR_INVAL);
    CHECK(strstr(r.error, "needs an RSA key") != NULL);
    r.p.identity = &P.alice_id;
    r.p.packetcable = true;
    r.p.group = CK_PKINIT_GROUP_P256;
    CHECK_INT_EQ(run_go(&r), CK_ERR_INVAL);
    r.p.group = CK_PKINIT_GROUP_NONE;
    r.p.kx = CK_PKINIT_KX_DH;
    CHECK_INT_EQ(run_go(&r), CK_ERR_INVAL);
    r.p.packetcable = false;
    r.p.prov_server = "prov.example.test";
    CHECK_INT_EQ(run_go(&r), CK_ERR_INVAL);
    r.p.prov_server = NULL;
    r.p.anchors = NULL;
    CHECK_INT_EQ(run_go(&r), CK_ERR_INVAL);
    CHECK_INT_EQ(k.calls, 0);
    /* A device certificate names no principal: it must be given. */
    r.p.anchors = P.anchors;
    r.p.identity = &P.device_id;
    r.as.client = NULL;
    CHECK_INT_EQ(run_go(&r), CK_ERR_NOTFOUND);
    CHECK(strstr(r.error, "give the principal") != NULL);
    CHECK_INT_EQ(k.calls, 0);
    CHECK_INT_EQ(ck_pkinit_client_principal(P.device, REALM, &name), CK_ERR_NOTFOUND);
    CHECK_OK(ck_pkinit_client_principal(P.alice, REALM, &name));
    CHECK(name != NULL && strcmp(name, "alice@" REALM) == 0);
    free(name);
    name = NULL;
    CHECK_INT_EQ(ck_pkinit_client_principal(P.alice, "OTHER.TEST", &name), CK_ERR_NOTFOUND);
    /* ...and with it given, the device logs in. */
    r.as.client = "mta-001122334455";
    CHECK_OK(run_go(&r));
    CHECK(r.creds != NULL);
    run_clear(&r);
    kdc_clear(&k);
}

/* ---------------------------------------------------------------------------------------------
 * PacketCable.
 */

static void
test_packetcable(void)
{
    struct pk_kdc k;
    struct run r;
    CK_AS_REQ *req = NULL;
    CK_PA_PK_AS_REQ_DRAFT9 *pk = NULL;
    CK_AUTH_PACK_PKTC *ap = NULL;
    ASN1_GENERALSTRING *prov = NULL;
    ck_pkinit_signed *s = NULL;
    CMS_ContentInfo *cms = NULL;
    const CK_PA_DATA *pa;
    const uint8_t *body, *p;
    size_t body_len;
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned md_len;
    uint32_t body_nonce, pk_nonce;

    if (!pki())
        return;
    kdc_init(&k);
    run_init(&r, &k);
    r.p.packetcable = true;
    r.p.kx = CK_PKINIT_KX_RSA;
    r.p.prov_server = "prov.example.test";
    CHECK_OK(run_go(&r));
    check_creds(&r, &k);
    CHECK(r.info.packetcable);
    CHECK_INT_EQ(r.info.kx, CK_PKINIT_KX_RSA);
    CHECK_INT_EQ(k.calls, 1); /* PKINIT in the first and only request */
    CHECK(strcmp(ck_pkinit_client_mode_name(&r.info), "PacketCable RSA") == 0);

    CHECK_OK(ck_asn1_as_req_decode(k.last_req, k.last_req_len, &req));
    if (req == NULL)
        goto out;
    CHECK(ck_asn1_padata_find(req->padata, CK_PA_PK_AS_REQ) == NULL);
    CHECK(ck_asn1_padata_find(req->padata, CK_PA_AS_FRESHNESS) == NULL);
    /* PA-PROV-SRV-LOCATION (-1): a GeneralString. */
    pa = ck_asn1_padata_find(req->padata, CK_PA_PROV_SRV_LOCATION);
    CHECK(pa != NULL);
    if (pa != NULL) {
        CHECK(ASN1_STRING_get0_data(pa->padata_value)[0] == 0x1b); /* [UNIVERSAL 27] */
        CHECK_OK(ck_asn1_prov_srv_location_decode(ASN1_STRING_get0_data(pa->padata_value),
                                                  (size_t)ASN1_STRING_length(pa->padata_value),
                                                  &prov));
        CHECK(prov != NULL && ck_asn1_kstring_eq(prov, "prov.example.test"));
    }
    /* PA-PK-AS-REQ-OLD (14), EXPLICIT draft form. */
    pa = ck_asn1_padata_find(req->padata, CK_PA_PK_AS_REQ_OLD);
    CHECK(pa != NULL);
    if (pa == NULL)
        goto out;
    CHECK(ASN1_STRING_get0_data(pa->padata_value)[2] == 0xa0 ||
          ASN1_STRING_get0_data(pa->padata_value)[3] == 0xa0 ||
          ASN1_STRING_get0_data(pa->padata_value)[4] == 0xa0);
    CHECK_OK(ck_asn1_pa_pk_as_req_draft9_decode(ASN1_STRING_get0_data(pa->padata_value),
                                                (size_t)ASN1_STRING_length(pa->padata_value),
                                                &pk));
    if (pk == NULL)
        goto out;
    CHECK_INT_EQ(pk->form, CK_PKINIT_FORM_EXPLICIT);
    CHECK(pk->trusted_certifiers == NULL && pk->kdc_cert == NULL && pk->encryption_cert == NULL);
    /* SignedData: SHA-1 without signed attributes, refused unless SHA-1 is allowed. */
    CHECK_INT_EQ(ck_pkinit_cms_verify(ASN1_STRING_get0_data(pk->signed_auth_pack),
                                      (size_t)ASN1_STRING_length(pk->signed_auth_pack),
                                      CK_PKINIT_CT_AUTH_DATA, 0, NULL, &s),
                 CK_ERR_POLICY);
    CHECK_OK(ck_pkinit_cms_verify(ASN1_STRING_get0_data(pk->signed_auth_pack),
                                  (size_t)ASN1_STRING_length(pk->signed_auth_pack),
                                  CK_PKINIT_CT_AUTH_DATA, CK_PKINIT_VERIFY_ALLOW_SHA1, NULL, &s));
    if (s == NULL)
        goto out;
    CHECK(!s->signed_attrs);
    CHECK_INT_EQ(s->digest_nid, NID_sha1);
    CHECK(ck_pkinit_signed_is_packetcable(s));
    CHECK(X509_cmp(s->signer, P.alice) == 0);
    /* SignerInfo identified by issuerAndSerialNumber (version 1), signature rsaEncryption. */
    p = ASN1_STRING_get0_data(pk->signed_auth_pack);
    cms = d2i_CMS_ContentInfo(NULL, &p, ASN1_STRING_length(pk->signed_auth_pack));
    CHECK(cms != NULL);
    if (cms != NULL) {
        CMS_SignerInfo *si = sk_CMS_SignerInfo_value(CMS_get0_SignerInfos(cms), 0);
        ASN1_OCTET_STRING *keyid = NULL;
        X509_NAME *issuer = NULL;
        ASN1_INTEGER *sno = NULL;
        X509_ALGOR *dig = NULL, *sig = NULL;
        CHECK(si != NULL && CMS_SignerInfo_get0_signer_id(si, &keyid, &issuer, &sno) == 1);
        CHECK(keyid == NULL && issuer != NULL && sno != NULL);
        CHECK_INT_EQ(CMS_signed_get_attr_count(si), -1);
        CMS_SignerInfo_get0_algs(si, NULL, NULL, &dig, &sig);
        CHECK(dig != NULL && OBJ_obj2nid(dig->algorithm) == NID_sha1);
        CHECK(sig != NULL && OBJ_obj2nid(sig->algorithm) == NID_rsaEncryption);
        CMS_ContentInfo_free(cms);
    }
    /* AuthPack-PKTC: nonce, paChecksum = rsa-md5 (7) over the DER req-body, no DH. */
    CHECK_OK(ck_asn1_auth_pack_pktc_decode(s->content, s->content_len, &ap));
    if (ap == NULL)
        goto out;
    CHECK(ap->client_public_value == NULL && ap->client_dh_nonce == NULL);
    CHECK_OK(ck_asn1_kdc_req_body_der(req, &body, &body_len));
    CHECK_OK(ck_asn1_nonce_get(req->req_body->nonce, &body_nonce));
    CHECK_OK(ck_asn1_nonce_get(ap->pk_authenticator->nonce, &pk_nonce));
    CHECK_INT_EQ(pk_nonce, body_nonce);
    CHECK(ap->pk_authenticator->pa_checksum != NULL);
    if (ap->pk_authenticator->pa_checksum != NULL) {
        CHECK_INT_EQ(ap->pk_authenticator->pa_checksum->cksumtype, 7);
        CHECK(EVP_Digest(body, body_len, md, &md_len, EVP_md5(), NULL) == 1);
        CHECK(octets_eq(ap->pk_authenticator->pa_checksum->checksum, md, md_len));
    }
out:
    CK_AUTH_PACK_PKTC_free(ap);
    ck_pkinit_signed_free(s);
    CK_PA_PK_AS_REQ_DRAFT9_free(pk);
    ASN1_GENERALSTRING_free(prov);
    CK_AS_REQ_free(req);
    run_clear(&r);
    kdc_clear(&k);
}

static void
test_packetcable_replies(void)
{
    struct pk_kdc k;
    struct run r;

    if (!pki())
        return;
    /* A reply the KDC signs in the PacketCable form (SHA-1, no attributes) is accepted here. */
    kdc_init(&k);
    run_init(&r, &k);
    r.p.packetcable = true;
    r.p.kx = CK_PKINIT_KX_RSA;
    k.pktc_reply_sha1 = true;
    CHECK_OK(run_go(&r));
    check_creds(&r, &k);
    run_clear(&r);
    kdc_clear(&k);

    /* ReplyKeyPack-draft9 with another nonce: KRB_AP_ERR_MODIFIED. */
    kdc_init(&k);
    run_init(&r, &k);
    r.p.packetcable = true;
    r.p.kx = CK_PKINIT_KX_RSA;
    k.fault = F_WRONG_NONCE;
    CHECK_INT_EQ(run_go(&r), CK_ERR_INTEGRITY);
    CHECK_INT_EQ(r.krb_code, CK_KRB_AP_ERR_MODIFIED);
    CHECK(strstr(r.error, "ReplyKeyPack: nonce") != NULL);
    CHECK(r.creds == NULL);
    run_clear(&r);
    kdc_clear(&k);

    /* Tampered signature, and a KDC certificate without KPKdc. */
    kdc_init(&k);
    run_init(&r, &k);
    r.p.packetcable = true;
    r.p.kx = CK_PKINIT_KX_RSA;
    k.fault = F_BAD_SIG;
    CHECK_INT_EQ(run_go(&r), CK_ERR_INTEGRITY);
    run_clear(&r);
    kdc_clear(&k);
    kdc_init(&k);
    run_init(&r, &k);
    r.p.packetcable = true;
    r.p.kx = CK_PKINIT_KX_RSA;
    k.id = &P.kdc_noeku_id;
    CHECK_INT_EQ(run_go(&r), CK_ERR_POLICY);
    run_clear(&r);
    kdc_clear(&k);
}

/* ---------------------------------------------------------------------------------------------
 * MIT 1.20 capture: the RSA reply checks the client makes (asChecksum with key usage 6 and the
 * reply key's mandatory checksum over the DER AS-REQ, then the enc-part under the reply key)
 * hold for what MIT's KDC sent (tests/vectors/pkinit/README.md).
 */

static uint8_t *
read_vector(const char *name, size_t *len)
{
    char path[256];
    FILE *f;
    uint8_t *buf = malloc(65536);

    snprintf(path, sizeof(path), "vectors/pkinit/%s", name);
    f = fopen(path, "rb");
    if (f == NULL || buf == NULL) {
        fprintf(stderr, "  cannot read %s\n", path);
        if (f != NULL)
            fclose(f);
        free(buf);
        return NULL;
    }
    *len = fread(buf, 1, 65536, f);
    fclose(f);
    return buf;
}

static void
test_mit_rsa_capture(void)
{
    size_t req_len = 0, rkp_len = 0, rep_len = 0, plain_len = 0;
    uint8_t *req = read_vector("mit-as-req-rsa.der", &req_len);
    uint8_t *rkp_der = read_vector("mit-as-rep-rsa.reply-key-pack.der", &rkp_len);
    uint8_t *rep_der = read_vector("mit-as-rep-rsa.der", &rep_len);
    CK_REPLY_KEY_PACK *rkp = NULL;
    CK_AS_REP *rep = NULL;
    CK_ENC_KDC_REP_PART *enc = NULL;
    uint8_t *plain = NULL;
    ck_key key;

    memset(&key, 0, sizeof(key));
    CHECK(req != NULL && rkp_der != NULL && rep_der != NULL);
    if (req == NULL || rkp_der == NULL || rep_der == NULL)
        goto out;
    CHECK_OK(ck_asn1_reply_key_pack_decode(rkp_der, rkp_len, &rkp));
    CHECK_OK(ck_asn1_as_rep_decode(rep_der, rep_len, &rep));
    if (rkp == NULL || rep == NULL)
        goto out;
    CHECK_OK(ck_key_from_asn1(&key, rkp->reply_key));
    CHECK_INT_EQ(key.enctype, rep->enc_part->etype);
    CHECK_INT_EQ(rkp->as_checksum->cksumtype, ck_enctype_checksum_type(key.enctype));
    CHECK_OK(ck_verify_checksum(&key, rkp->as_checksum->cksumtype, CK_KU_TGS_REQ_AUTH_CKSUM, req,
                                req_len, ASN1_STRING_get0_data(rkp->as_checksum->checksum),
                                (size_t)ASN1_STRING_length(rkp->as_checksum->checksum)));
    /* Another usage or one changed byte of the request does not verify. */
    CHECK_INT_EQ(ck_verify_checksum(&key, rkp->as_checksum->cksumtype, CK_KU_AS_REP_ENCPART, req,
                                    req_len, ASN1_STRING_get0_data(rkp->as_checksum->checksum),
                                    (size_t)ASN1_STRING_length(rkp->as_checksum->checksum)),
                 CK_ERR_INTEGRITY);
    req[req_len / 2] ^= 1;
    CHECK_INT_EQ(ck_verify_checksum(&key, rkp->as_checksum->cksumtype, CK_KU_TGS_REQ_AUTH_CKSUM,
                                    req, req_len,
                                    ASN1_STRING_get0_data(rkp->as_checksum->checksum),
                                    (size_t)ASN1_STRING_length(rkp->as_checksum->checksum)),
                 CK_ERR_INTEGRITY);
    CHECK_OK(ck_enc_data_open(rep->enc_part, &key, CK_KU_AS_REP_ENCPART, &plain, &plain_len));
    if (plain != NULL) {
        CHECK_OK(ck_asn1_enc_kdc_rep_part_decode(plain, plain_len, &enc, NULL));
        ck_free_secret(plain, plain_len);
    }
out:
    ck_key_clear(&key);
    CK_ENC_KDC_REP_PART_free(enc);
    CK_AS_REP_free(rep);
    CK_REPLY_KEY_PACK_free(rkp);
    free(req);
    free(rkp_der);
    free(rep_der);
}

/* MIT 1.20's real DH reply, processed by the client as the answer to MIT's captured request
 * (our own DH key stands in for MIT kinit's, so only the derived key differs): the KDC's
 * SignedData verifies, its certificate chains to the capture's CA with id-pkinit-KPKdc and names
 * krbtgt/EXAMPLE.TEST@EXAMPLE.TEST, the nonce matches, the KDF is sha256. One byte changed in
 * the signed KDCDHKeyInfo is refused; so is the reply at a time the KDC certificate was not yet
 * valid, and a client whose anchor is not the capture's CA. */
static void
mit_dh_reply(int64_t now, bool own_anchor, bool flip, int want_rc)
{
    size_t req_len = 0, pa_len = 0;
    uint8_t *req_der = read_vector("mit-as-req-dh.der", &req_len);
    uint8_t *pa = read_vector("mit-as-rep-dh.pa-pk-as-rep.der", &pa_len);
    ck_pkinit_anchors *anchors = NULL;
    STACK_OF(X509) *certs = NULL;
    ck_pkinit_client_ctx *c = NULL;
    CK_AS_REQ *req = NULL, *scratch = NULL;
    CK_AS_REP *rep = CK_AS_REP_new();
    ck_kdc_transport t = {0};
    ck_as_params as = {.realm = "EXAMPLE.TEST", .client = "alice", .preauth_first = true,
                       .transport = &t};
    ck_pkinit_client_params p = {.as = &as, .identity = &P.alice_id, .now = now};
    ck_as_mech mech;
    ck_key key;
    int rc;

    memset(&key, 0, sizeof(key));
    CHECK(req_der != NULL && pa != NULL && rep != NULL);
    if (req_der == NULL || pa == NULL || rep == NULL)
        goto out;
    if (own_anchor) {
        p.anchors = P.anchors;
    } else {
        CHECK_OK(ck_pki_certs_load_pem("vectors/pkinit/ca.pem", &certs));
        CHECK_OK(ck_pkinit_anchors_new(&anchors));
        CHECK_OK(ck_pkinit_anchors_add(anchors, certs, 0, NULL));
        p.anchors = anchors;
    }
    CHECK_OK(ck_asn1_as_req_decode(req_der, req_len, &req));
    CHECK_OK(ck_asn1_as_req_decode(req_der, req_len, &scratch));
    CHECK_OK(ck_pkinit_client_ctx_new(&p, &c));
    if (req == NULL || scratch == NULL || c == NULL)
        goto out;
    ck_pkinit_client_mech(c, &mech);
    CHECK_OK(mech.add_padata(c, scratch, 0));
    if (flip) {
        /* The last byte of the signed KDCDHKeyInfo (its nonce). */
        size_t ki_len = 0;
        uint8_t *ki = read_vector("mit-as-rep-dh.kdc-dh-key-info.der", &ki_len);
        uint8_t *at = ki != NULL ? memmem(pa, pa_len, ki, ki_len) : NULL;
        CHECK(at != NULL);
        if (at != NULL)
            at[ki_len - 1] ^= 0x01;
        free(ki);
    }
    rep->enc_part->etype = 18;
    CHECK_OK(ck_asn1_padata_add(&rep->padata, CK_PA_PK_AS_REP, pa, pa_len));
    rc = mech.reply_key(c, req, req_der, req_len, rep, 1, &key);
    if (rc != want_rc)
        fprintf(stderr, "  MIT DH reply: got %d (%s), want %d\n", rc, ck_error_context(), want_rc);
    CHECK_INT_EQ(rc, want_rc);
    if (rc == 0) {
        CHECK_INT_EQ(key.enctype, 18);
        CHECK_INT_EQ(ck_pkinit_client_ctx_info(c)->kdf, CK_PKINIT_KDF_SHA256);
    } else {
        CHECK_INT_EQ(key.length, 0);
    }
out:
    ck_key_clear(&key);
    ck_pkinit_client_ctx_free(c);
    CK_AS_REQ_free(req);
    CK_AS_REQ_free(scratch);
    CK_AS_REP_free(rep);
    ck_pkinit_anchors_free(anchors);
    sk_X509_pop_free(certs, X509_free);
    free(req_der);
    free(pa);
}

static void
test_mit_dh_capture(void)
{
    const int64_t capture = 1796162460; /* 2026-12-01T22:01:00Z */

    if (!pki())
        return;
    mit_dh_reply(capture, false, false, 0);
    mit_dh_reply(capture, false, true, CK_ERR_INTEGRITY);
    mit_dh_reply(capture - 86400, false, false, CK_ERR_POLICY); /* before notBefore */
    mit_dh_reply(capture, true, false, CK_ERR_POLICY);
}

static void
test_cleanup(void)
{
    pki_free();
}

CK_TEST_MAIN("pkinit_client", CK_TEST_CASE(test_request_fields_dh),
             CK_TEST_CASE(test_request_options), CK_TEST_CASE(test_dh_groups_and_kdfs),
             CK_TEST_CASE(test_rsa_replies), CK_TEST_CASE(test_refused_replies),
             CK_TEST_CASE(test_kdc_hostname), CK_TEST_CASE(test_kdc_errors),
             CK_TEST_CASE(test_bad_params), CK_TEST_CASE(test_packetcable),
             CK_TEST_CASE(test_packetcable_replies), CK_TEST_CASE(test_mit_rsa_capture), CK_TEST_CASE(test_mit_dh_capture),
             CK_TEST_CASE(test_cleanup))
