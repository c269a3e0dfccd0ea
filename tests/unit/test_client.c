/* Client library: backoff schedule, AS-REQ contents, the AS exchange against in-process fake KDCs
 * (replaying MIT 1.20's captured PREAUTH_REQUIRED and AS-REP, and synthetic replies built with the
 * ASN.1 API), KRB-ERROR mapping, the TGS exchange checked by ck_ap_req_verify, and the UDP/TCP
 * transport against a loopback server. */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cablekey/ap.h"
#include "cablekey/client.h"
#include "cablekey/crypto.h"
#include "cablekey/error.h"
#include "cablekey/krb5_asn1.h"
#include "cablekey/net.h"
#include "cablekey/util.h"
#include "ck_test.h"

static uint8_t *
read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = malloc(65536);
    size_t n;

    if (f == NULL || buf == NULL) {
        if (f != NULL)
            fclose(f);
        free(buf);
        return NULL;
    }
    n = fread(buf, 1, 65536, f);
    fclose(f);
    *len = n;
    return buf;
}

/* OPENSSL_malloc'd DER -> malloc'd reply (what a ck_kdc_send_fn returns). */
static int
hand_out(uint8_t *der, size_t len, uint8_t **reply, size_t *reply_len)
{
    *reply = ck_memdup(der, len);
    *reply_len = len;
    ck_asn1_free_der(der, len);
    return *reply != NULL ? 0 : CK_ERR_NOMEM;
}

/* ------------------------------------------------------------------------------------------- */

static void
test_backoff_schedule(void)
{
    static const int want[] = { 3000, 6000, 12000, 20000, 20000 };

    for (int i = 0; i < 5; i++)
        CHECK_INT_EQ(ck_kdc_backoff_ms(3000, 20000, i), want[i]);
    CHECK_INT_EQ(ck_kdc_backoff_ms(3000, 20000, 31), 20000);
    CHECK_INT_EQ(ck_kdc_backoff_ms(3000, 20000, 1000000), 20000);
    CHECK_INT_EQ(ck_kdc_backoff_ms(1000, 500, 0), 1000); /* max below nominal: nominal */
    CHECK_INT_EQ(ck_kdc_backoff_ms(0, 500, 3), 0);
    CHECK_INT_EQ(ck_kdc_backoff_ms(50, 100, 1), 100);
}

static void
test_as_req_contents(void)
{
    ck_kdc_transport t = { 0 };
    ck_as_params p = { .realm = "TEST.REALM", .client = "alice", .lifetime = 3600,
                       .renew_life = 86400, .kdc_options = CK_KDC_OPT_FORWARDABLE,
                       .transport = &t };
    CK_AS_REQ *req = NULL;
    uint8_t *der = NULL;
    size_t len = 0, n = 0;
    uint32_t nonce = 0, got = 0, flags = 0;
    int32_t et[8];
    int64_t now, till = 0, rtime = 0;
    int32_t usec;
    const char *s;
    size_t sl;

    CHECK_OK(ck_client_as_req_build(&p, &der, &len, &nonce));
    CHECK_OK(ck_asn1_as_req_decode(der, len, &req));
    if (req == NULL)
        goto out;
    CHECK_INT_EQ(req->pvno, 5);
    CHECK_INT_EQ(req->msg_type, CK_KRB_AS_REQ);
    CHECK(req->padata == NULL || sk_CK_PA_DATA_num(req->padata) == 0);
    CHECK_OK(ck_asn1_etypes_get(req->req_body, et, 8, &n));
    CHECK_INT_EQ(n, 4);
    CHECK(et[0] == 18 && et[1] == 17 && et[2] == 20 && et[3] == 19);
    CHECK_OK(ck_asn1_nonce_get(req->req_body->nonce, &got));
    CHECK_INT_EQ(got, nonce);
    CHECK(nonce <= 0x7fffffffu);
    /* 31-bit nonces encode in at most 4 content bytes, the form MIT's decoder accepts. */
    CHECK(ASN1_STRING_length(req->req_body->nonce) <= 4);
    CHECK_OK(ck_asn1_flags_get(req->req_body->kdc_options, &flags));
    CHECK_INT_EQ(flags, CK_KDC_OPT_FORWARDABLE | CK_KDC_OPT_RENEWABLE);
    /* RFC 4120 §5.2.8: at least 32 bits, sent with 0 unused bits. */
    CHECK_INT_EQ(ASN1_STRING_length(req->req_body->kdc_options), 4);
    CHECK(ck_asn1_kstring_eq(req->req_body->realm, "TEST.REALM"));
    CHECK_INT_EQ(ck_asn1_principal_count(req->req_body->cname), 1);
    CHECK_INT_EQ(req->req_body->cname->name_type, CK_NT_PRINCIPAL);
    CHECK_OK(ck_asn1_principal_component(req->req_body->cname, 0, &s, &sl));
    CHECK(sl == 5 && memcmp(s, "alice", 5) == 0);
    CHECK_INT_EQ(ck_asn1_principal_count(req->req_body->sname), 2);
    CHECK_INT_EQ(req->req_body->sname->name_type, CK_NT_SRV_INST);
    CHECK_OK(ck_asn1_principal_component(req->req_body->sname, 1, &s, &sl));
    CHECK(sl == 10 && memcmp(s, "TEST.REALM", 10) == 0);
    ck_now(&now, &usec);
    CHECK_OK(ck_asn1_time_get(req->req_body->till, &till));
    CHECK(till >= now + 3600 - 5 && till <= now + 3600);
    CHECK_OK(ck_asn1_time_get(req->req_body->rtime, &rtime));
    CHECK(rtime >= now + 86400 - 5 && rtime <= now + 86400);
out:
    CK_AS_REQ_free(req);
    free(der);
}

static void
test_nonces_are_31_bit(void)
{
    ck_kdc_transport t = { 0 };
    int32_t et[1] = { 17 };
    ck_as_params p = { .realm = "R", .client = "c", .enctypes = et, .n_enctypes = 1,
                       .transport = &t };
    uint32_t seen_high = 0;

    for (int i = 0; i < 200; i++) {
        uint8_t *der = NULL;
        size_t len = 0;
        uint32_t nonce = 0xffffffffu;
        CHECK_OK(ck_client_as_req_build(&p, &der, &len, &nonce));
        CHECK(nonce <= 0x7fffffffu);
        seen_high |= nonce;
        free(der);
    }
    /* Bit 30 shows up in 200 random draws unless the generator is broken. */
    CHECK((seen_high & 0x40000000u) != 0);
}

/* ------------------------------------------------------------------------------------------- *
 * Replay of MIT 1.20's captured AS exchange (tests/vectors/mit/README.md): alice / alicepw, salt
 * TEST.REALMalice, aes256. The fake KDC answers the first request with the captured KRB-ERROR 25
 * and the second with the captured AS-REP, whose enc-part ([APPLICATION 26] as MIT sends it) is
 * re-sealed with the client's nonce unless `keep_nonce`.
 */
#define MIT_ALICE_KEY "ab1b368d758ab885d3d165fbdd80841b6f053b75e239dc06b611e34f59b21a8f"
#define MIT_TGT_SESSION "fcf17bdd4d5410bf979a0732c13a5c02087cacbaf39d63c4e65bf2d93b8f0d95"

struct mit_kdc {
    bool keep_nonce;
    int calls;
    bool ts_ok;        /* the PA-ENC-TIMESTAMP decrypted with alice's MIT key */
    bool cookie_ok;    /* PA-FX-COOKIE "MIT" echoed */
};

static int
mit_send(void *arg, const uint8_t *req, size_t req_len, uint8_t **reply, size_t *reply_len)
{
    struct mit_kdc *k = arg;
    CK_AS_REQ *r = NULL;
    CK_AS_REP *rep = NULL;
    CK_ENC_KDC_REP_PART *enc = NULL;
    CK_ENCRYPTED_DATA *ed = NULL;
    const CK_PA_DATA *pa;
    ck_key key;
    uint8_t *plain = NULL, *buf = NULL, *kb, *der = NULL;
    size_t plain_len = 0, len = 0, kl, der_len = 0;
    int rc = CK_ERR_PROTO;

    k->calls++;
    kb = ck_test_hex(MIT_ALICE_KEY, &kl);
    ck_key_init(&key, 18, kb, kl);
    free(kb);
    if (ck_asn1_as_req_decode(req, req_len, &r) != 0)
        goto out;
    pa = ck_asn1_padata_find(r->padata, CK_PA_ENC_TIMESTAMP);
    if (pa == NULL) {
        buf = read_file("vectors/mit/krb_error_preauth_required.der", &len);
        *reply = buf;
        *reply_len = len;
        buf = NULL;
        rc = *reply != NULL ? 0 : CK_ERR_IO;
        goto out;
    }
    if (ck_asn1_encrypted_data_decode(ASN1_STRING_get0_data(pa->padata_value),
                                      (size_t)ASN1_STRING_length(pa->padata_value), &ed) == 0 &&
        ck_enc_data_open(ed, &key, CK_KU_PA_ENC_TS, &plain, &plain_len) == 0) {
        k->ts_ok = true;
        ck_free_secret(plain, plain_len);
        plain = NULL;
    }
    pa = ck_asn1_padata_find(r->padata, CK_PA_FX_COOKIE);
    k->cookie_ok = pa != NULL && ASN1_STRING_length(pa->padata_value) == 3 &&
                   memcmp(ASN1_STRING_get0_data(pa->padata_value), "MIT", 3) == 0;
    /* The captured AS-REP with our nonce put into its decrypted enc-part. */
    if ((buf = read_file("vectors/mit/as_rep.der", &len)) == NULL ||
        ck_asn1_as_rep_decode(buf, len, &rep) != 0)
        goto out;
    free(buf);
    if ((buf = read_file("vectors/mit/enc_as_rep_part.der", &len)) == NULL ||
        ck_asn1_enc_kdc_rep_part_decode(buf, len, &enc, NULL) != 0)
        goto out;
    if (!k->keep_nonce && ck_asn1_nonce_copy(&enc->nonce, r->req_body->nonce) != 0)
        goto out;
    if (ck_asn1_enc_tgs_rep_part_encode(enc, &plain, &plain_len) != 0 ||
        ck_enc_data_seal(rep->enc_part, &key, CK_KU_AS_REP_ENCPART, NULL, plain, plain_len) != 0 ||
        ck_asn1_as_rep_encode(rep, &der, &der_len) != 0)
        goto out;
    rc = hand_out(der, der_len, reply, reply_len);
out:
    ck_key_clear(&key);
    if (plain != NULL)
        ck_asn1_free_der(plain, plain_len);
    free(buf);
    CK_ENCRYPTED_DATA_free(ed);
    CK_ENC_KDC_REP_PART_free(enc);
    CK_AS_REP_free(rep);
    CK_AS_REQ_free(r);
    return rc;
}

static void
test_as_mit_replay(void)
{
    struct mit_kdc k = { 0 };
    ck_kdc_transport t = { .send_fn = mit_send, .send_arg = &k };
    ck_as_params p = { .realm = "TEST.REALM", .client = "alice", .transport = &t };
    ck_creds *c = NULL;
    uint8_t *sk, *rep_der = NULL;
    size_t skl, rep_len = 0;
    CK_AS_REP *rep = NULL;
    char *name = NULL;

    CHECK_OK(ck_client_as_password(&p, "alicepw", &c));
    CHECK_INT_EQ(k.calls, 2);
    CHECK(k.ts_ok);      /* the salt TEST.REALMalice from MIT's ETYPE-INFO2 was used */
    CHECK(k.cookie_ok);
    if (c == NULL)
        return;
    sk = ck_test_hex(MIT_TGT_SESSION, &skl);
    CHECK_INT_EQ(c->session_key.enctype, 18);
    CHECK_MEM_EQ(c->session_key.contents, c->session_key.length, sk, skl);
    free(sk);
    CHECK_OK(ck_principal_unparse(c->server, 0, &name));
    CHECK(name != NULL && strcmp(name, "krbtgt/TEST.REALM@TEST.REALM") == 0);
    free(name);
    name = NULL;
    CHECK_OK(ck_principal_unparse(c->client, 0, &name));
    CHECK(name != NULL && strcmp(name, "alice@TEST.REALM") == 0);
    free(name);
    CHECK(c->flags & CK_TKT_FLG_INITIAL);
    CHECK(c->endtime > c->authtime);
    CHECK_INT_EQ(c->ticket_etype, 18);
    /* The ticket is MIT's TGT, byte for byte. */
    rep_der = read_file("vectors/mit/as_rep.der", &rep_len);
    if (rep_der != NULL && ck_asn1_as_rep_decode(rep_der, rep_len, &rep) == 0) {
        uint8_t *t_der = NULL;
        size_t t_len = 0;
        CHECK_OK(ck_asn1_ticket_encode(rep->ticket, &t_der, &t_len));
        CHECK_MEM_EQ(c->ticket, c->ticket_len, t_der, t_len);
        ck_asn1_free_der(t_der, t_len);
    }
    CK_AS_REP_free(rep);
    free(rep_der);
    ck_creds_free(c);
}

static void
test_as_nonce_mismatch_refused(void)
{
    struct mit_kdc k = { .keep_nonce = true };
    ck_kdc_transport t = { .send_fn = mit_send, .send_arg = &k };
    ck_as_params p = { .realm = "TEST.REALM", .client = "alice", .transport = &t };
    ck_creds *c = NULL;

    CHECK_INT_EQ(ck_client_as_password(&p, "alicepw", &c), CK_ERR_PROTO);
    CHECK(c == NULL);
    CHECK(strstr(ck_error_context(), "nonce") != NULL);
}

static void
test_as_wrong_password(void)
{
    struct mit_kdc k = { 0 };
    ck_kdc_transport t = { .send_fn = mit_send, .send_arg = &k };
    ck_as_params p = { .realm = "TEST.REALM", .client = "alice", .transport = &t };
    ck_creds *c = NULL;

    /* This KDC answers anyway: the reply does not decrypt with the wrong key. */
    CHECK_INT_EQ(ck_client_as_password(&p, "not-alicepw", &c), CK_ERR_INTEGRITY);
    CHECK(!k.ts_ok);
    CHECK(c == NULL);
}

/* ------------------------------------------------------------------------------------------- *
 * A synthetic KDC built with the ASN.1 API: its ETYPE-INFO2 lists an unsupported etype first,
 * then aes128 with an unusual salt and explicit s2kparams, so the client must skip and pick.
 */
#define SYN_SALT "ODD.SALTwhatever"
#define SYN_PW "synthetic-pw"

struct syn_kdc {
    int calls;
    int error_code;          /* != 0: always answer this KRB-ERROR */
    bool wrong_cname;        /* AS-REP for another client */
    bool tag25;              /* EncASRepPart under [APPLICATION 25] (else 26) */
    bool ts_ok;
    ck_key client_key;       /* aes128, s2k(SYN_PW, SYN_SALT) */
    ck_key tgs_key;
    ck_key svc_key;
    ck_key session_key;
    bool tgs_cksum_ok;
    bool tgs_subkey_seen;
};

static int
syn_error(int code, const char *etext, bool method_data, uint8_t **reply, size_t *reply_len)
{
    CK_KRB_ERROR_MSG *e = CK_KRB_ERROR_MSG_new();
    CK_ETYPE_INFO2 *info = NULL;
    CK_METHOD_DATA *md = NULL;
    const char *tgs[2] = { "krbtgt", "TEST.REALM" };
    static const uint8_t s2k[4] = { 0, 0, 0x10, 0 };
    uint8_t *v = NULL, *der = NULL;
    size_t vl = 0, dl = 0;
    int rc;

    e->pvno = 5;
    e->msg_type = CK_KRB_ERROR;
    e->error_code = code;
    ck_asn1_time_set(&e->stime, 1700000000);
    ck_asn1_kstring_set(&e->realm, "TEST.REALM");
    ck_asn1_principal_set(e->sname, CK_NT_SRV_INST, tgs, 2);
    if (etext != NULL)
        ck_asn1_kstring_set(&e->e_text, etext);
    if (method_data) {
        ck_asn1_etype_info2_add(&info, 23, "IGNORED", NULL, 0);
        ck_asn1_etype_info2_add(&info, 17, SYN_SALT, s2k, sizeof(s2k));
        ck_asn1_etype_info2_encode(info, &v, &vl);
        ck_asn1_padata_add(&md, CK_PA_ETYPE_INFO2, v, vl);
        ck_asn1_padata_add(&md, CK_PA_ENC_TIMESTAMP, NULL, 0);
        ck_asn1_free_der(v, vl);
        ck_asn1_method_data_encode(md, &v, &vl);
        ck_asn1_octets_set(&e->e_data, v, vl);
        ck_asn1_free_der(v, vl);
    }
    rc = ck_asn1_krb_error_encode(e, &der, &dl);
    if (rc == 0)
        rc = hand_out(der, dl, reply, reply_len);
    CK_ETYPE_INFO2_free(info);
    CK_METHOD_DATA_free(md);
    CK_KRB_ERROR_MSG_free(e);
    return rc;
}

/* A KDC-REP (AS or TGS) with a fresh ticket for sname sealed with tkt_key and the enc-part
 * sealed with reply_key/usage. */
static int
syn_rep(struct syn_kdc *k, bool as, const CK_KDC_REQ *r, const CK_PRINCIPAL_NAME *cname,
        const ck_key *tkt_key, const ck_key *reply_key, int32_t usage, uint8_t **reply,
        size_t *reply_len)
{
    CK_KDC_REP *rep = CK_AS_REP_new();
    CK_ENC_TICKET_PART *etp = CK_ENC_TICKET_PART_new();
    CK_ENC_KDC_REP_PART *enc = CK_ENC_KDC_REP_PART_new();
    CK_LAST_REQ_ENTRY *lr = CK_LAST_REQ_ENTRY_new();
    const char *mallory[1] = { "mallory" };
    uint8_t *plain = NULL, *der = NULL;
    size_t pl = 0, dl = 0;
    int64_t now;
    int32_t usec;
    int rc = CK_ERR_ENCODE;

    ck_now(&now, &usec);
    rep->pvno = 5;
    rep->msg_type = as ? CK_KRB_AS_REP : CK_KRB_TGS_REP;
    ck_asn1_kstring_set(&rep->crealm, "TEST.REALM");
    if (k->wrong_cname)
        ck_asn1_principal_set(rep->cname, CK_NT_PRINCIPAL, mallory, 1);
    else {
        CK_PRINCIPAL_NAME_free(rep->cname);
        rep->cname = CK_PRINCIPAL_NAME_dup(cname);
    }
    ck_asn1_kstring_set(&rep->ticket->realm, "TEST.REALM");
    CK_PRINCIPAL_NAME_free(rep->ticket->sname);
    rep->ticket->sname = CK_PRINCIPAL_NAME_dup(r->req_body->sname);
    ck_asn1_flags_set(&etp->flags, CK_TKT_FLG_INITIAL);
    ck_key_to_asn1(&k->session_key, &etp->key);
    ck_asn1_kstring_set(&etp->crealm, "TEST.REALM");
    CK_PRINCIPAL_NAME_free(etp->cname);
    etp->cname = CK_PRINCIPAL_NAME_dup(cname);
    etp->transited->tr_type = 1;
    ck_asn1_octets_set(&etp->transited->contents, NULL, 0);
    ck_asn1_time_set(&etp->authtime, now);
    ck_asn1_time_set(&etp->endtime, now + 3600);
    if (ck_ticket_seal(rep->ticket, etp, tkt_key, 1) != 0)
        goto out;
    ck_key_to_asn1(&k->session_key, &enc->key);
    lr->lr_type = 0;
    ck_asn1_time_set(&lr->lr_value, now);
    sk_CK_LAST_REQ_ENTRY_push(enc->last_req, lr);
    lr = NULL;
    ck_asn1_nonce_copy(&enc->nonce, r->req_body->nonce);
    ck_asn1_flags_set(&enc->flags, as ? CK_TKT_FLG_INITIAL | CK_TKT_FLG_PRE_AUTHENT : 0);
    ck_asn1_time_set(&enc->authtime, now);
    ck_asn1_time_set(&enc->endtime, now + 3600);
    ck_asn1_kstring_set(&enc->srealm, "TEST.REALM");
    CK_PRINCIPAL_NAME_free(enc->sname);
    enc->sname = CK_PRINCIPAL_NAME_dup(r->req_body->sname);
    rc = k->tag25 ? ck_asn1_enc_as_rep_part_encode(enc, &plain, &pl)
                  : ck_asn1_enc_tgs_rep_part_encode(enc, &plain, &pl);
    if (rc != 0 || (rc = ck_enc_data_seal(rep->enc_part, reply_key, usage, NULL, plain, pl)) != 0)
        goto out;
    rc = as ? ck_asn1_as_rep_encode(rep, &der, &dl) : ck_asn1_tgs_rep_encode(rep, &der, &dl);
    if (rc == 0)
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

static int
syn_tgs_key(void *arg, const CK_TICKET *ticket, int32_t etype, uint32_t kvno, ck_key *key,
            int32_t *krb_error)
{
    struct syn_kdc *k = arg;

    (void)ticket;
    (void)kvno;
    if (etype != k->tgs_key.enctype) {
        *krb_error = CK_KRB_AP_ERR_NOKEY;
        return CK_ERR_NOTFOUND;
    }
    return ck_key_copy(key, &k->tgs_key);
}

static int
syn_tgs(struct syn_kdc *k, const uint8_t *req, size_t req_len, uint8_t **reply, size_t *reply_len)
{
    CK_TGS_REQ *r = NULL;
    ck_ap_req_result res;
    const CK_PA_DATA *pa;
    const uint8_t *body;
    size_t body_len;
    int rc = CK_ERR_PROTO;

    memset(&res, 0, sizeof(res));
    if (ck_asn1_tgs_req_decode(req, req_len, &r) != 0 ||
        (pa = ck_asn1_padata_find(r->padata, CK_PA_TGS_REQ)) == NULL)
        goto out;
    if ((rc = ck_ap_req_verify(ASN1_STRING_get0_data(pa->padata_value),
                               (size_t)ASN1_STRING_length(pa->padata_value), syn_tgs_key, k, NULL,
                               NULL, 300, CK_KU_TGS_REQ_AUTH, &res)) != 0)
        goto out;
    if (res.authenticator->cksum != NULL && ck_asn1_kdc_req_body_der(r, &body, &body_len) == 0 &&
        ck_verify_checksum(&res.session_key, res.authenticator->cksum->cksumtype,
                           CK_KU_TGS_REQ_AUTH_CKSUM, body, body_len,
                           ASN1_STRING_get0_data(res.authenticator->cksum->checksum),
                           (size_t)ASN1_STRING_length(res.authenticator->cksum->checksum)) == 0)
        k->tgs_cksum_ok = res.authenticator->cksum->cksumtype ==
                          ck_enctype_checksum_type(res.session_key.enctype);
    k->tgs_subkey_seen = res.has_subkey;
    rc = syn_rep(k, false, r, res.enc_ticket->cname, &k->svc_key,
                 res.has_subkey ? &res.subkey : &res.session_key,
                 res.has_subkey ? CK_KU_TGS_REP_ENCPART_SUBKEY : CK_KU_TGS_REP_ENCPART_SESSKEY,
                 reply, reply_len);
out:
    ck_ap_req_result_clear(&res);
    CK_TGS_REQ_free(r);
    return rc;
}

static int
syn_send(void *arg, const uint8_t *req, size_t req_len, uint8_t **reply, size_t *reply_len)
{
    struct syn_kdc *k = arg;
    CK_AS_REQ *r = NULL;
    CK_ENCRYPTED_DATA *ed = NULL;
    const CK_PA_DATA *pa;
    uint8_t *plain = NULL;
    size_t pl = 0;
    int rc;

    k->calls++;
    if (k->error_code != 0)
        return syn_error(k->error_code, "synthetic failure", false, reply, reply_len);
    if (ck_asn1_msg_type(req, req_len) == CK_KRB_TGS_REQ)
        return syn_tgs(k, req, req_len, reply, reply_len);
    if ((rc = ck_asn1_as_req_decode(req, req_len, &r)) != 0)
        return rc;
    pa = ck_asn1_padata_find(r->padata, CK_PA_ENC_TIMESTAMP);
    if (pa == NULL) {
        rc = syn_error(CK_KDC_ERR_PREAUTH_REQUIRED, "NEEDED_PREAUTH", true, reply, reply_len);
        goto out;
    }
    if (ck_asn1_encrypted_data_decode(ASN1_STRING_get0_data(pa->padata_value),
                                      (size_t)ASN1_STRING_length(pa->padata_value), &ed) != 0 ||
        ck_enc_data_open(ed, &k->client_key, CK_KU_PA_ENC_TS, &plain, &pl) != 0) {
        /* As MIT does, the failure carries METHOD-DATA with the ETYPE-INFO2 again. */
        rc = syn_error(CK_KDC_ERR_PREAUTH_FAILED, NULL, true, reply, reply_len);
        goto out;
    }
    k->ts_ok = true;
    ck_free_secret(plain, pl);
    rc = syn_rep(k, true, r, r->req_body->cname, &k->tgs_key, &k->client_key,
                 CK_KU_AS_REP_ENCPART, reply, reply_len);
out:
    CK_ENCRYPTED_DATA_free(ed);
    CK_AS_REQ_free(r);
    return rc;
}

static void
syn_init(struct syn_kdc *k)
{
    memset(k, 0, sizeof(*k));
    CHECK_OK(ck_string_to_key(17, SYN_PW, strlen(SYN_PW), (const uint8_t *)SYN_SALT,
                              strlen(SYN_SALT), NULL, 0, &k->client_key));
    CHECK_OK(ck_random_key(18, &k->tgs_key));
    CHECK_OK(ck_random_key(20, &k->svc_key));
    CHECK_OK(ck_random_key(18, &k->session_key));
}

static void
syn_clear(struct syn_kdc *k)
{
    ck_key_clear(&k->client_key);
    ck_key_clear(&k->tgs_key);
    ck_key_clear(&k->svc_key);
    ck_key_clear(&k->session_key);
}

static void
test_as_picks_etype_info2_salt(void)
{
    struct syn_kdc k;
    ck_kdc_transport t = { .send_fn = syn_send, .send_arg = &k };
    ck_as_params p = { .realm = "TEST.REALM", .client = "alice", .transport = &t };
    ck_creds *c = NULL;

    for (int tag25 = 0; tag25 < 2; tag25++) {
        syn_init(&k);
        k.tag25 = tag25;
        CHECK_OK(ck_client_as_password(&p, SYN_PW, &c));
        CHECK_INT_EQ(k.calls, 2);
        CHECK(k.ts_ok);
        if (c != NULL) {
            CHECK_MEM_EQ(c->session_key.contents, c->session_key.length, k.session_key.contents,
                         k.session_key.length);
            CHECK(c->flags & CK_TKT_FLG_PRE_AUTHENT);
        }
        ck_creds_free(c);
        c = NULL;
        syn_clear(&k);
    }
}

static void
test_as_keytab_and_key(void)
{
    struct syn_kdc k;
    ck_kdc_transport t = { .send_fn = syn_send, .send_arg = &k };
    ck_as_params p = { .realm = "TEST.REALM", .client = "alice", .transport = &t };
    ck_keytab *kt = NULL;
    ck_principal *alice = NULL;
    ck_creds *c = NULL;
    ck_key other;

    syn_init(&k);
    CHECK_OK(ck_keytab_new(&kt));
    CHECK_OK(ck_principal_parse("alice@TEST.REALM", NULL, 0, &alice));
    /* An aes256 key the KDC does not know, and the right aes128 key: ETYPE-INFO2 names 17. */
    CHECK_OK(ck_random_key(18, &other));
    CHECK_OK(ck_keytab_add(kt, alice, 3, 0, &other));
    CHECK_OK(ck_keytab_add(kt, alice, 3, 0, &k.client_key));
    CHECK_OK(ck_client_as_keytab(&p, kt, &c));
    CHECK(c != NULL && k.ts_ok);
    ck_creds_free(c);
    c = NULL;

    /* Prebuilt key, with the timestamp in the first request: one round trip. */
    k.calls = 0;
    k.ts_ok = false;
    p.preauth_first = true;
    CHECK_OK(ck_client_as_key(&p, &k.client_key, &c));
    CHECK_INT_EQ(k.calls, 1);
    CHECK(c != NULL && k.ts_ok);
    ck_creds_free(c);
    c = NULL;

    /* Password with preauth_first: the default-salt guess fails, the KDC's salt is used next. */
    k.calls = 0;
    CHECK_OK(ck_client_as_password(&p, SYN_PW, &c));
    CHECK(c != NULL);
    CHECK_INT_EQ(k.calls, 2);
    ck_creds_free(c);
    ck_key_clear(&other);
    ck_principal_free(alice);
    ck_keytab_free(kt);
    syn_clear(&k);
}

static void
test_as_krb_error_mapping(void)
{
    struct syn_kdc k;
    ck_kdc_transport t = { .send_fn = syn_send, .send_arg = &k };
    ck_as_params p = { .realm = "TEST.REALM", .client = "nobody", .transport = &t };
    ck_creds *c = NULL;

    syn_init(&k);
    k.error_code = CK_KDC_ERR_C_PRINCIPAL_UNKNOWN;
    CHECK_INT_EQ(ck_client_as_password(&p, "x", &c), CK_ERR_KRB);
    CHECK_INT_EQ(ck_error_krb_code(), 6);
    CHECK(strstr(ck_error_context(), "synthetic failure") != NULL);
    CHECK(c == NULL);
    syn_clear(&k);
}

static void
test_as_wrong_cname_refused(void)
{
    struct syn_kdc k;
    ck_kdc_transport t = { .send_fn = syn_send, .send_arg = &k };
    ck_as_params p = { .realm = "TEST.REALM", .client = "alice", .transport = &t };
    ck_creds *c = NULL;

    syn_init(&k);
    k.wrong_cname = true;
    CHECK_INT_EQ(ck_client_as_password(&p, SYN_PW, &c), CK_ERR_PROTO);
    CHECK(c == NULL);
    syn_clear(&k);
}

static void
test_tgs_exchange(void)
{
    struct syn_kdc k;
    ck_kdc_transport t = { .send_fn = syn_send, .send_arg = &k };
    ck_as_params p = { .realm = "TEST.REALM", .client = "alice", .transport = &t };
    ck_creds *tgt = NULL, *svc = NULL;
    char *name = NULL;

    syn_init(&k);
    CHECK_OK(ck_client_as_password(&p, SYN_PW, &tgt));
    if (tgt == NULL) {
        syn_clear(&k);
        return;
    }
    for (int sub = 0; sub < 2; sub++) {
        ck_tgs_params tp = { .tgt = tgt, .service = "host/svc.test", .use_subkey = sub,
                             .transport = &t };
        k.tgs_cksum_ok = false;
        CHECK_OK(ck_client_tgs(&tp, &svc));
        CHECK(k.tgs_cksum_ok);
        CHECK_INT_EQ(k.tgs_subkey_seen, sub);
        if (svc != NULL) {
            CHECK_OK(ck_principal_unparse(svc->server, 0, &name));
            CHECK(name != NULL && strcmp(name, "host/svc.test@TEST.REALM") == 0);
            free(name);
            name = NULL;
            CHECK_INT_EQ(svc->ticket_etype, 20);
        }
        ck_creds_free(svc);
        svc = NULL;
    }
    ck_creds_free(tgt);
    syn_clear(&k);
}

/* ------------------------------------------------------------------------------------------- *
 * Transport against a loopback ck_net server: UDP answers KRB-ERROR 52, TCP answers "REPLY".
 */
static int
too_big_handler(void *state, const struct ck_net_request *req, uint8_t *reply, size_t cap,
                size_t *reply_len)
{
    (void)state;
    *reply_len = 0;
    if (req->transport == CK_NET_UDP) {
        uint8_t *r = NULL;
        size_t rl = 0;
        CK_KRB_ERROR_MSG *e = CK_KRB_ERROR_MSG_new();
        uint8_t *der = NULL;
        size_t dl = 0;
        const char *tgs[2] = { "krbtgt", "R" };

        (void)r;
        (void)rl;
        e->pvno = 5;
        e->msg_type = CK_KRB_ERROR;
        e->error_code = CK_KRB_ERR_RESPONSE_TOO_BIG;
        ck_asn1_time_set(&e->stime, 1700000000);
        ck_asn1_kstring_set(&e->realm, "R");
        ck_asn1_principal_set(e->sname, CK_NT_SRV_INST, tgs, 2);
        if (ck_asn1_krb_error_encode(e, &der, &dl) == 0 && dl <= cap) {
            memcpy(reply, der, dl);
            *reply_len = dl;
        }
        ck_asn1_free_der(der, dl);
        CK_KRB_ERROR_MSG_free(e);
        return 0;
    }
    /* TCP: echo the request, prefixed, so the test sees it traveled intact. */
    if (req->len + 2 > cap)
        return 0;
    reply[0] = 'T';
    reply[1] = ':';
    memcpy(reply + 2, req->data, req->len);
    *reply_len = req->len + 2;
    return 0;
}

static void
test_transport_too_big_and_tcp(void)
{
    const char *listen[1] = { "127.0.0.1:0" };
    struct ck_net_config cfg;
    struct ck_net_callbacks cb = { too_big_handler, NULL, NULL, NULL };
    struct ck_net_server *srv = NULL;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char addr[CK_NET_ADDRSTRLEN];
    const char *kdcs[1] = { addr };
    ck_kdc_transport t = { .kdcs = kdcs, .n_kdcs = 1, .timeout_ms = 500, .max_timeout_ms = 1000,
                           .max_tries = 2 };
    ck_kdc_send_info info;
    static const uint8_t req[] = { 0x6a, 0x03, 0x30, 0x01, 0x00 };
    uint8_t *reply = NULL, big[2000];
    size_t rl = 0;

    memset(&cfg, 0, sizeof(cfg));
    cfg.listen = listen;
    cfg.n_listen = 1;
    cfg.workers = 1;
    cfg.tcp_framing = &ck_krb_tcp_framing;
    CHECK_OK(ck_net_server_new(&cfg, &cb, &srv));
    if (srv == NULL)
        return;
    CHECK_OK(ck_net_server_start(srv));
    CHECK_OK(ck_net_server_addr(srv, 0, &ss, &sl));
    ck_net_addr_format((struct sockaddr *)&ss, addr, sizeof(addr));

    CHECK_OK(ck_kdc_send(&t, req, sizeof(req), &reply, &rl, &info));
    CHECK(info.too_big && info.tcp);
    CHECK_INT_EQ(info.kdc_index, 0);
    CHECK(rl == sizeof(req) + 2 && reply != NULL && memcmp(reply + 2, req, sizeof(req)) == 0);
    free(reply);
    reply = NULL;

    /* Longer than the UDP limit: straight to TCP. */
    memset(big, 0x42, sizeof(big));
    CHECK_OK(ck_kdc_send(&t, big, sizeof(big), &reply, &rl, &info));
    CHECK(info.tcp && !info.too_big);
    CHECK_INT_EQ(info.tries, 1);
    CHECK_INT_EQ(rl, sizeof(big) + 2);
    free(reply);
    reply = NULL;

    /* tcp_only. */
    t.tcp_only = true;
    CHECK_OK(ck_kdc_send(&t, req, sizeof(req), &reply, &rl, &info));
    CHECK(info.tcp && !info.too_big);
    free(reply);
    ck_net_server_free(srv);
}

static void
test_transport_timeout_backoff(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof(sin);
    char addr[64];
    const char *kdcs[1] = { addr };
    ck_kdc_transport t = { .kdcs = kdcs, .n_kdcs = 1, .timeout_ms = 50, .max_timeout_ms = 100,
                           .max_tries = 3 };
    ck_kdc_send_info info;
    static const uint8_t req[] = { 0x6a, 0x03, 0x30, 0x01, 0x00 };
    uint8_t *reply = NULL;
    size_t rl = 0;
    int64_t t0, el;

    /* A bound socket that never answers (and never triggers ICMP unreachable). */
    CHECK(fd >= 0);
    CHECK(bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
    CHECK(getsockname(fd, (struct sockaddr *)&sin, &sl) == 0);
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", (unsigned)ntohs(sin.sin_port));
    t0 = ck_monotonic_ms();
    CHECK_INT_EQ(ck_kdc_send(&t, req, sizeof(req), &reply, &rl, &info), CK_ERR_TIMEOUT);
    el = ck_monotonic_ms() - t0;
    CHECK_INT_EQ(info.tries, 3);
    /* 50 + 100 + 100 ms. */
    CHECK(el >= 245 && el < 2000);
    CHECK(reply == NULL);
    close(fd);

    /* Bad addresses are refused up front. */
    kdcs[0] = "127.0.0.1:notaport";
    CHECK(ck_kdc_send(&t, req, sizeof(req), &reply, &rl, NULL) != 0);
}

CK_TEST_MAIN("client",
             CK_TEST_CASE(test_backoff_schedule),
             CK_TEST_CASE(test_as_req_contents),
             CK_TEST_CASE(test_nonces_are_31_bit),
             CK_TEST_CASE(test_as_mit_replay),
             CK_TEST_CASE(test_as_nonce_mismatch_refused),
             CK_TEST_CASE(test_as_wrong_password),
             CK_TEST_CASE(test_as_picks_etype_info2_salt),
             CK_TEST_CASE(test_as_keytab_and_key),
             CK_TEST_CASE(test_as_krb_error_mapping),
             CK_TEST_CASE(test_as_wrong_cname_refused),
             CK_TEST_CASE(test_tgs_exchange),
             CK_TEST_CASE(test_transport_too_big_and_tcp),
             CK_TEST_CASE(test_transport_timeout_backoff))
