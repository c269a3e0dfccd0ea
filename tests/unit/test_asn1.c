/* RFC 4120 ASN.1 layer: MIT-captured golden messages (decode + byte-identical re-encode + field
 * checks), from-scratch construction of every message type, and hostile inputs. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "ck_test.h"
#include "cablekey/error.h"
#include "cablekey/krb5_asn1.h"

static uint8_t *
load(const char *name, size_t *len)
{
    char path[256];
    FILE *f;
    uint8_t *buf = NULL;
    long n;

    snprintf(path, sizeof(path), "vectors/mit/%s", name);
    *len = 0;
    if ((f = fopen(path, "rb")) == NULL) {
        fprintf(stderr, "  cannot open %s\n", path);
        ck_test_case_failed = 1;
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)n)) != NULL && fread(buf, 1, (size_t)n, f) == (size_t)n) {
        *len = (size_t)n;
    } else {
        free(buf);
        buf = NULL;
        ck_test_case_failed = 1;
    }
    fclose(f);
    return buf;
}

/* Decodes a golden file with one decoder family, re-encodes, and compares the bytes. */
#define ROUNDTRIP(file, name, T)                                                            \
    do {                                                                                    \
        size_t n_ = 0, en_ = 0;                                                             \
        uint8_t *d_ = load(file, &n_), *e_ = NULL;                                          \
        T *v_ = NULL;                                                                       \
        if (d_ != NULL) {                                                                   \
            CHECK_OK(ck_asn1_##name##_decode(d_, n_, &v_));                                 \
            CHECK(v_ != NULL);                                                              \
            if (v_ != NULL) {                                                               \
                CHECK_OK(ck_asn1_##name##_encode(v_, &e_, &en_));                           \
                CHECK_MEM_EQ(e_, en_, d_, n_);                                              \
            }                                                                               \
        }                                                                                   \
        ck_asn1_free_der(e_, en_);                                                          \
        T##_free(v_);                                                                       \
        free(d_);                                                                           \
    } while (0)

static void
golden_roundtrip(void)
{
    ROUNDTRIP("as_req_nopreauth.der", as_req, CK_KDC_REQ);
    ROUNDTRIP("as_req_enc_ts.der", as_req, CK_KDC_REQ);
    ROUNDTRIP("as_req_changepw.der", as_req, CK_KDC_REQ);
    ROUNDTRIP("krb_error_preauth_required.der", krb_error, CK_KRB_ERROR_MSG);
    ROUNDTRIP("as_rep.der", as_rep, CK_KDC_REP);
    ROUNDTRIP("as_rep_changepw.der", as_rep, CK_KDC_REP);
    ROUNDTRIP("tgs_req.der", tgs_req, CK_KDC_REQ);
    ROUNDTRIP("tgs_rep.der", tgs_rep, CK_KDC_REP);
    ROUNDTRIP("ap_req.der", ap_req, CK_AP_REQ);
    ROUNDTRIP("ap_rep.der", ap_rep, CK_AP_REP);
    ROUNDTRIP("kpasswd_ap_req.der", ap_req, CK_AP_REQ);
    ROUNDTRIP("kpasswd_ap_rep.der", ap_rep, CK_AP_REP);
    ROUNDTRIP("kpasswd_krb_priv_req.der", krb_priv, CK_KRB_PRIV_MSG);
    ROUNDTRIP("kpasswd_krb_priv_rep.der", krb_priv, CK_KRB_PRIV_MSG);
    /* Plaintexts of the encrypted parts (decrypted offline, see vectors/mit/README). MIT's KDC
     * tags the AS-REP's enc-part as EncTGSRepPart [APPLICATION 26]. */
    ROUNDTRIP("enc_as_rep_part.der", enc_tgs_rep_part, CK_ENC_KDC_REP_PART);
    ROUNDTRIP("enc_ticket_part_tgt.der", enc_ticket_part, CK_ENC_TICKET_PART);
    ROUNDTRIP("enc_ticket_part_service.der", enc_ticket_part, CK_ENC_TICKET_PART);
    ROUNDTRIP("pa_enc_ts_enc.der", pa_enc_ts_enc, CK_PA_ENC_TS_ENC);
    ROUNDTRIP("authenticator_tgs.der", authenticator, CK_AUTHENTICATOR);
    ROUNDTRIP("authenticator_ap_req.der", authenticator, CK_AUTHENTICATOR);
    ROUNDTRIP("authenticator_kpasswd.der", authenticator, CK_AUTHENTICATOR);
    ROUNDTRIP("enc_ap_rep_part.der", enc_ap_rep_part, CK_ENC_AP_REP_PART);
    ROUNDTRIP("enc_ap_rep_part_kpasswd.der", enc_ap_rep_part, CK_ENC_AP_REP_PART);
    ROUNDTRIP("enc_krb_priv_part_req.der", enc_krb_priv_part, CK_ENC_KRB_PRIV_PART);
    ROUNDTRIP("enc_krb_priv_part_rep.der", enc_krb_priv_part, CK_ENC_KRB_PRIV_PART);
}

static void check_princ(const CK_PRINCIPAL_NAME *p, int32_t type, const char *c0, const char *c1);

/* Field checks on the decrypted plaintexts. */
static void
plaintext_fields(void)
{
    size_t n = 0, rn = 0, kn = 0;
    uint8_t *d = load("enc_as_rep_part.der", &n), *rq = load("as_req_enc_ts.der", &rn);
    uint8_t *kp = load("enc_krb_priv_part_req.der", &kn);
    CK_ENC_KDC_REP_PART *ep = NULL;
    CK_KDC_REQ *req = NULL;
    CK_ENC_KRB_PRIV_PART *pp = NULL;
    CK_ENC_TICKET_PART *etp = NULL;
    uint8_t *t = NULL;
    size_t tn = 0;
    int tag = 0;
    uint32_t flags = 0;

    CHECK_OK(ck_asn1_enc_kdc_rep_part_decode(d, n, &ep, &tag));
    CHECK_INT_EQ(tag, CK_KRB_ENC_TGS_REP_PART);
    CK_ENC_KDC_REP_PART_free(ep);
    ep = NULL;
    CHECK_INT_EQ(ck_asn1_enc_as_rep_part_decode(d, n, &ep), CK_ERR_DECODE);
    CHECK(ep == NULL);
    CHECK_OK(ck_asn1_enc_kdc_rep_part_decode(d, n, &ep, NULL));
    CHECK_OK(ck_asn1_as_req_decode(rq, rn, &req));
    if (ep != NULL && req != NULL) {
        /* The KDC echoes the request's nonce in the request's own encoding. */
        CHECK(ASN1_INTEGER_cmp(ep->nonce, req->req_body->nonce) == 0);
        CHECK_INT_EQ(ep->key->keytype, 18);
        CHECK_INT_EQ(ep->key->keyvalue->length, 32);
        CHECK(ck_asn1_kstring_eq(ep->srealm, "TEST.REALM"));
        check_princ(ep->sname, CK_NT_SRV_INST, "krbtgt", "TEST.REALM");
        CHECK_OK(ck_asn1_flags_get(ep->flags, &flags));
        CHECK(flags & CK_TKT_FLG_INITIAL);
        CHECK(flags & CK_TKT_FLG_PRE_AUTHENT);
        CHECK(ep->encrypted_pa_data != NULL); /* MIT answers PA-REQ-ENC-PA-REP */
    }
    /* kpasswd v1: the KRB-PRIV user-data is the new password itself. */
    CHECK_OK(ck_asn1_enc_krb_priv_part_decode(kp, kn, &pp));
    if (pp != NULL)
        CHECK_MEM_EQ(pp->user_data->data, (size_t)pp->user_data->length, "alicepw2", 8);
    free(d);
    d = load("enc_ticket_part_tgt.der", &n);
    CHECK_OK(ck_asn1_enc_ticket_part_decode(d, n, &etp));
    if (etp != NULL && ep != NULL) {
        /* The TGT holds the same session key the client received. */
        CHECK_MEM_EQ(etp->key->keyvalue->data, (size_t)etp->key->keyvalue->length,
                     ep->key->keyvalue->data, (size_t)ep->key->keyvalue->length);
        check_princ(etp->cname, CK_NT_PRINCIPAL, "alice", NULL);
        CHECK_OK(ck_asn1_enc_ticket_part_encode(etp, &t, &tn));
        CHECK_MEM_EQ(t, tn, d, n);
    }
    ck_asn1_free_der(t, tn);
    CK_ENC_TICKET_PART_free(etp);
    CK_ENC_KRB_PRIV_PART_free(pp);
    CK_KDC_REQ_free(req);
    CK_ENC_KDC_REP_PART_free(ep);
    free(d);
    free(rq);
    free(kp);
}

static void
check_princ(const CK_PRINCIPAL_NAME *p, int32_t type, const char *c0, const char *c1)
{
    const char *s = NULL;

    CHECK(p != NULL);
    if (p == NULL)
        return;
    CHECK_INT_EQ(p->name_type, type);
    CHECK_INT_EQ(ck_asn1_principal_count(p), c1 != NULL ? 2 : 1);
    CHECK_OK(ck_asn1_principal_component(p, 0, &s, NULL));
    CHECK(s != NULL && strcmp(s, c0) == 0);
    if (c1 != NULL) {
        CHECK_OK(ck_asn1_principal_component(p, 1, &s, NULL));
        CHECK(s != NULL && strcmp(s, c1) == 0);
    }
}

static void
as_req_fields(void)
{
    static const int32_t want[] = {18, 17, 20, 19, 16, 23, 25, 26};
    size_t n = 0, ne = 0;
    uint8_t *d = load("as_req_nopreauth.der", &n);
    CK_KDC_REQ *req = NULL;
    int32_t et[CK_ASN1_MAX_ETYPES];
    uint32_t flags = 0, nonce = 0;
    int64_t till = 0;
    int tag = 0;
    char buf[128];

    CHECK_INT_EQ(ck_asn1_msg_type(d, n), CK_KRB_AS_REQ);
    CHECK_OK(ck_asn1_kdc_req_decode(d, n, &req, &tag));
    CHECK_INT_EQ(tag, CK_KRB_AS_REQ);
    if (req == NULL)
        goto out;
    CHECK_INT_EQ(req->pvno, 5);
    CHECK_INT_EQ(req->msg_type, 10);
    /* MIT 1.20 kinit's first AS-REQ: PA-AS-FRESHNESS and PA-REQ-ENC-PA-REP, both empty. */
    CHECK_INT_EQ(sk_CK_PA_DATA_num(req->padata), 2);
    CHECK(ck_asn1_padata_find(req->padata, CK_PA_AS_FRESHNESS) != NULL);
    CHECK(ck_asn1_padata_find(req->padata, CK_PA_REQ_ENC_PA_REP) != NULL);
    CHECK(ck_asn1_padata_find(req->padata, CK_PA_ENC_TIMESTAMP) == NULL);
    check_princ(req->req_body->cname, CK_NT_PRINCIPAL, "alice", NULL);
    check_princ(req->req_body->sname, CK_NT_SRV_INST, "krbtgt", "TEST.REALM");
    CHECK(ck_asn1_kstring_eq(req->req_body->realm, "TEST.REALM"));
    CHECK_OK(ck_asn1_principal_unparse(req->req_body->cname, req->req_body->realm, buf,
                                       sizeof(buf)));
    CHECK(strcmp(buf, "alice@TEST.REALM") == 0);
    CHECK_OK(ck_asn1_etypes_get(req->req_body, et, CK_ASN1_MAX_ETYPES, &ne));
    CHECK_MEM_EQ(et, ne * sizeof(int32_t), want, sizeof(want));
    CHECK_INT_EQ(ck_asn1_etypes_get(req->req_body, et, 3, &ne), CK_ERR_LIMIT);
    CHECK_OK(ck_asn1_flags_get(req->req_body->kdc_options, &flags));
    CHECK_INT_EQ(flags, CK_KDC_OPT_RENEWABLE_OK);
    CHECK_OK(ck_asn1_nonce_get(req->req_body->nonce, &nonce));
    CHECK_INT_EQ(nonce, 0x6BDB957Au);
    CHECK_OK(ck_asn1_time_get(req->req_body->till, &till));
    CHECK_INT_EQ(till, 1795386957); /* 20261122223557Z */
    CHECK(req->req_body->from == NULL && req->req_body->rtime == NULL);
out:
    CK_KDC_REQ_free(req);
    free(d);
}

static void
krb_error_fields(void)
{
    size_t n = 0;
    uint8_t *d = load("krb_error_preauth_required.der", &n);
    CK_KRB_ERROR_MSG *e = NULL;
    CK_METHOD_DATA *md = NULL;
    CK_ETYPE_INFO2 *info = NULL;
    const CK_PA_DATA *pa;
    const CK_ETYPE_INFO2_ENTRY *ent;
    int64_t stime = 0;

    CHECK_OK(ck_asn1_krb_error_decode(d, n, &e));
    if (e == NULL)
        goto out;
    CHECK_INT_EQ(e->error_code, CK_KDC_ERR_PREAUTH_REQUIRED);
    CHECK_INT_EQ(e->susec, 0x08D630);
    CHECK_OK(ck_asn1_time_get(e->stime, &stime));
    CHECK_INT_EQ(stime, 1795386957 - 86400);
    CHECK(ck_asn1_kstring_eq(e->e_text, "NEEDED_PREAUTH"));
    CHECK(ck_asn1_kstring_eq(e->crealm, "TEST.REALM"));
    check_princ(e->cname, CK_NT_PRINCIPAL, "alice", NULL);
    check_princ(e->sname, CK_NT_SRV_INST, "krbtgt", "TEST.REALM");
    CHECK(e->e_data != NULL);
    if (e->e_data == NULL)
        goto out;
    CHECK_OK(ck_asn1_method_data_decode(e->e_data->data, (size_t)e->e_data->length, &md));
    CHECK(ck_asn1_padata_find(md, CK_PA_ENC_TIMESTAMP) != NULL);
    CHECK(ck_asn1_padata_find(md, CK_PA_FX_COOKIE) != NULL);
    pa = ck_asn1_padata_find(md, CK_PA_ETYPE_INFO2);
    CHECK(pa != NULL);
    if (pa == NULL)
        goto out;
    CHECK_OK(ck_asn1_etype_info2_decode(pa->padata_value->data,
                                        (size_t)pa->padata_value->length, &info));
    CHECK_INT_EQ(sk_CK_ETYPE_INFO2_ENTRY_num(info), 1);
    if (info == NULL)
        goto out;
    ent = sk_CK_ETYPE_INFO2_ENTRY_value(info, 0);
    CHECK_INT_EQ(ent->etype, 18);
    CHECK(ck_asn1_kstring_eq(ent->salt, "TEST.REALMalice"));
    CHECK(ent->s2kparams == NULL);
out:
    CK_ETYPE_INFO2_free(info);
    CK_METHOD_DATA_free(md);
    CK_KRB_ERROR_MSG_free(e);
    free(d);
}

static void
as_rep_fields(void)
{
    size_t n = 0;
    uint8_t *d = load("as_rep.der", &n), *d2 = NULL;
    size_t n2 = 0;
    CK_KDC_REP *rep = NULL;
    CK_KDC_REQ *req = NULL;
    CK_ENCRYPTED_DATA *ts = NULL;
    const CK_PA_DATA *pa;
    int tag = 0;

    CHECK_OK(ck_asn1_kdc_rep_decode(d, n, &rep, &tag));
    CHECK_INT_EQ(tag, CK_KRB_AS_REP);
    if (rep == NULL)
        goto out;
    CHECK(ck_asn1_kstring_eq(rep->crealm, "TEST.REALM"));
    check_princ(rep->cname, CK_NT_PRINCIPAL, "alice", NULL);
    CHECK_INT_EQ(rep->ticket->tkt_vno, 5);
    check_princ(rep->ticket->sname, CK_NT_SRV_INST, "krbtgt", "TEST.REALM");
    CHECK_INT_EQ(rep->ticket->enc_part->etype, 18);
    CHECK_INT_EQ(ck_asn1_uint32_get(rep->ticket->enc_part->kvno, 0), 2); /* krbtgt after cpw */
    CHECK_INT_EQ(rep->ticket->enc_part->cipher->length, 320);
    CHECK_INT_EQ(rep->enc_part->etype, 18);
    CHECK(rep->enc_part->kvno == NULL);
    CHECK(ck_asn1_padata_find(rep->padata, CK_PA_ETYPE_INFO2) != NULL);
    /* The wrong decoder must refuse it. */
    CK_KDC_REP_free(rep);
    rep = NULL;
    CHECK_INT_EQ(ck_asn1_tgs_rep_decode(d, n, &rep), CK_ERR_DECODE);
    CHECK(rep == NULL);

    /* The preauthenticated AS-REQ carries PA-ENC-TIMESTAMP as EncryptedData (aes256). */
    d2 = load("as_req_enc_ts.der", &n2);
    CHECK_OK(ck_asn1_as_req_decode(d2, n2, &req));
    if (req == NULL)
        goto out;
    pa = ck_asn1_padata_find(req->padata, CK_PA_ENC_TIMESTAMP);
    CHECK(pa != NULL);
    CHECK(ck_asn1_padata_find(req->padata, CK_PA_FX_COOKIE) != NULL);
    if (pa != NULL) {
        CHECK_OK(ck_asn1_encrypted_data_decode(pa->padata_value->data,
                                               (size_t)pa->padata_value->length, &ts));
        CHECK(ts != NULL && ts->etype == 18 && ts->kvno == NULL);
    }
out:
    CK_ENCRYPTED_DATA_free(ts);
    CK_KDC_REQ_free(req);
    CK_KDC_REP_free(rep);
    free(d);
    free(d2);
}

static void
tgs_req_fields(void)
{
    size_t n = 0, bl = 0;
    uint8_t *d = load("tgs_req.der", &n);
    CK_KDC_REQ *req = NULL;
    CK_AP_REQ *ap = NULL;
    const CK_PA_DATA *pa;
    const uint8_t *body = NULL;
    uint32_t opts = 0;

    CHECK_INT_EQ(ck_asn1_msg_type(d, n), CK_KRB_TGS_REQ);
    CHECK_INT_EQ(ck_asn1_as_req_decode(d, n, &req), CK_ERR_DECODE);
    CHECK_OK(ck_asn1_tgs_req_decode(d, n, &req));
    if (req == NULL)
        goto out;
    CHECK(req->req_body->cname == NULL);
    check_princ(req->req_body->sname, CK_NT_PRINCIPAL, "host", "server.test.realm");
    /* The raw KDC-REQ-BODY for the PA-TGS-REQ checksum: the SEQUENCE at offset 895. */
    CHECK_OK(ck_asn1_kdc_req_body_der(req, &body, &bl));
    CHECK_INT_EQ(bl, 118);
    CHECK(n >= 895 + 118 && bl == 118 && memcmp(body, d + 895, bl) == 0);
    /* MIT kvno armors with FAST when the KDC offers it. */
    CHECK(ck_asn1_padata_find(req->padata, CK_PA_FX_FAST) != NULL);
    pa = ck_asn1_padata_find(req->padata, CK_PA_TGS_REQ);
    CHECK(pa != NULL);
    if (pa == NULL)
        goto out;
    CHECK_OK(ck_asn1_ap_req_decode(pa->padata_value->data, (size_t)pa->padata_value->length, &ap));
    if (ap == NULL)
        goto out;
    CHECK_OK(ck_asn1_flags_get(ap->ap_options, &opts));
    CHECK_INT_EQ(opts, 0);
    check_princ(ap->ticket->sname, CK_NT_SRV_INST, "krbtgt", "TEST.REALM");
    CHECK_INT_EQ(ap->authenticator->etype, 18);
out:
    CK_AP_REQ_free(ap);
    CK_KDC_REQ_free(req);
    free(d);
}

static void
ap_fields(void)
{
    size_t n = 0;
    uint8_t *d = load("ap_req.der", &n);
    CK_AP_REQ *ap = NULL;
    uint32_t opts = 0;

    CHECK_OK(ck_asn1_ap_req_decode(d, n, &ap));
    if (ap != NULL) {
        CHECK_OK(ck_asn1_flags_get(ap->ap_options, &opts));
        CHECK_INT_EQ(opts, CK_AP_OPT_MUTUAL_REQUIRED); /* gss-client asks for mutual auth */
        check_princ(ap->ticket->sname, CK_NT_PRINCIPAL, "host", "server.test.realm");
        CHECK(ck_asn1_kstring_eq(ap->ticket->realm, "TEST.REALM"));
        CHECK_INT_EQ(ck_asn1_uint32_get(ap->ticket->enc_part->kvno, 0), 1);
    }
    CK_AP_REQ_free(ap);
    free(d);
}

/* A from-scratch AS-REQ with the captured field values must be byte-identical to what MIT kinit
 * sent: checks BIT STRING form, nonce form, field order and tags of the encoder. */
static void
build_as_req_like_mit(void)
{
    static const int32_t et[] = {18, 17, 20, 19, 16, 23, 25, 26};
    static const char *const tgs[] = {"krbtgt", "TEST.REALM"};
    static const char *const alice[] = {"alice"};
    size_t n = 0, en = 0;
    uint8_t *d = load("as_req_nopreauth.der", &n), *e = NULL;
    CK_KDC_REQ *req = CK_AS_REQ_new();
    CK_KDC_REQ_BODY *b;

    CHECK(req != NULL);
    if (req == NULL || d == NULL)
        goto out;
    b = req->req_body;
    req->pvno = 5;
    req->msg_type = CK_KRB_AS_REQ;
    CHECK_OK(ck_asn1_padata_add(&req->padata, CK_PA_AS_FRESHNESS, NULL, 0));
    CHECK_OK(ck_asn1_padata_add(&req->padata, CK_PA_REQ_ENC_PA_REP, NULL, 0));
    CHECK_OK(ck_asn1_flags_set(&b->kdc_options, CK_KDC_OPT_RENEWABLE_OK));
    CHECK_OK(ck_asn1_principal_new(CK_NT_PRINCIPAL, alice, 1, &b->cname));
    CHECK_OK(ck_asn1_kstring_set(&b->realm, "TEST.REALM"));
    CHECK_OK(ck_asn1_principal_new(CK_NT_SRV_INST, tgs, 2, &b->sname));
    CHECK_OK(ck_asn1_time_set(&b->till, 1795386957));
    CHECK_OK(ck_asn1_nonce_set(&b->nonce, 0x6BDB957Au));
    CHECK_OK(ck_asn1_etypes_set(b, et, 8));
    CHECK_OK(ck_asn1_as_req_encode(req, &e, &en));
    CHECK_MEM_EQ(e, en, d, n);
out:
    ck_asn1_free_der(e, en);
    CK_AS_REQ_free(req);
    free(d);
}

static void
helpers(void)
{
    ASN1_GENERALIZEDTIME *t = NULL;
    ASN1_BIT_STRING *bs = NULL;
    ASN1_INTEGER *nonce = NULL, *copy = NULL;
    ASN1_GENERALSTRING *s = NULL, *realm = NULL;
    CK_PRINCIPAL_NAME *p = NULL;
    uint8_t *der = NULL;
    size_t dl = 0;
    int64_t secs = 0;
    uint32_t v = 0;
    char buf[64];

    CHECK_OK(ck_asn1_time_set(&t, 0));
    CHECK(t != NULL && t->length == 15 && memcmp(t->data, "19700101000000Z", 15) == 0);
    CHECK_OK(ck_asn1_time_set(&t, 951782400)); /* leap day 2000 */
    CHECK(memcmp(t->data, "20000229000000Z", 15) == 0);
    CHECK_OK(ck_asn1_time_get(t, &secs));
    CHECK_INT_EQ(secs, 951782400);
    CHECK_OK(ck_asn1_time_set(&t, -1));
    CHECK(memcmp(t->data, "19691231235959Z", 15) == 0);
    CHECK_OK(ck_asn1_time_get(t, &secs));
    CHECK_INT_EQ(secs, -1);
    CHECK_INT_EQ(ck_asn1_time_set(&t, 253402300800LL), CK_ERR_INVAL);
    CHECK_OK(ck_asn1_time_get_opt(NULL, 42, &secs));
    CHECK_INT_EQ(secs, 42);
    ASN1_STRING_set(t, "20230229000000Z", 15); /* not a leap year */
    CHECK_INT_EQ(ck_asn1_time_get(t, &secs), CK_ERR_DECODE);
    ASN1_STRING_set(t, "20230101000000+0100", 19);
    CHECK_INT_EQ(ck_asn1_time_get(t, &secs), CK_ERR_DECODE);

    /* Flags: MIT's forwardable|renewable|renewable-ok: 03 05 00 40 80 00 10 */
    CHECK_OK(ck_asn1_flags_set(&bs, CK_KDC_OPT_FORWARDABLE | CK_KDC_OPT_RENEWABLE |
                                        CK_KDC_OPT_RENEWABLE_OK));
    dl = (size_t)i2d_ASN1_BIT_STRING(bs, &der);
    CHECK_MEM_EQ(der, dl, "\x03\x05\x00\x40\x80\x00\x10", 7);
    OPENSSL_free(der);
    der = NULL;
    CHECK_OK(ck_asn1_flags_set(&bs, 0)); /* still 32 bits */
    dl = (size_t)i2d_ASN1_BIT_STRING(bs, &der);
    CHECK_MEM_EQ(der, dl, "\x03\x05\x00\x00\x00\x00\x00", 7);
    OPENSSL_free(der);
    der = NULL;
    CHECK_INT_EQ(CK_TKT_FLG_INITIAL, 0x00400000u);
    CHECK_INT_EQ(CK_KDC_OPT_VALIDATE, 1u);

    /* Nonce: values >= 2^31 go out as MIT's 4-byte negative form and read back unsigned. */
    CHECK_OK(ck_asn1_nonce_set(&nonce, 0xC0FFEE01u));
    dl = (size_t)i2d_ASN1_INTEGER(nonce, &der);
    CHECK_MEM_EQ(der, dl, "\x02\x04\xc0\xff\xee\x01", 6);
    OPENSSL_free(der);
    der = NULL;
    CHECK_OK(ck_asn1_nonce_get(nonce, &v));
    CHECK_INT_EQ(v, 0xC0FFEE01u);
    CHECK_OK(ck_asn1_nonce_copy(&copy, nonce));
    CHECK(ASN1_INTEGER_cmp(copy, nonce) == 0);
    ASN1_INTEGER_set_int64(nonce, 0xC0FFEE01LL); /* the 5-byte positive form is accepted too */
    CHECK_OK(ck_asn1_nonce_get(nonce, &v));
    CHECK_INT_EQ(v, 0xC0FFEE01u);
    ASN1_INTEGER_set_int64(nonce, 0x100000000LL);
    CHECK_INT_EQ(ck_asn1_nonce_get(nonce, &v), CK_ERR_DECODE);
    ASN1_INTEGER_set_int64(nonce, -2147483649LL);
    CHECK_INT_EQ(ck_asn1_nonce_get(nonce, &v), CK_ERR_DECODE);

    /* KerberosString policy */
    CHECK_OK(ck_asn1_kstring_set(&s, "EXAMPLE.COM"));
    CHECK(strcmp(ck_asn1_kstring_get(s), "EXAMPLE.COM") == 0);
    CHECK_OK(ck_asn1_kstring_set(&s, "caf\xc3\xa9"));
    CHECK_INT_EQ(ck_asn1_kstring_set(&s, "bad\nname"), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_asn1_kstring_set(&s, "bad\xc3"), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_asn1_kstring_set(&s, "\xc0\xaf"), CK_ERR_INVAL); /* overlong '/' */
    CHECK_INT_EQ(ck_asn1_kstring_set_len(&s, "a\0b", 3), CK_ERR_INVAL);

    /* Principal parse/unparse with escapes */
    CHECK_OK(ck_asn1_principal_parse("host/server.test.realm@TEST.REALM", CK_NT_SRV_HST, &p,
                                     &realm));
    check_princ(p, CK_NT_SRV_HST, "host", "server.test.realm");
    CHECK(ck_asn1_kstring_eq(realm, "TEST.REALM"));
    CHECK_OK(ck_asn1_principal_unparse(p, realm, buf, sizeof(buf)));
    CHECK(strcmp(buf, "host/server.test.realm@TEST.REALM") == 0);
    CHECK_INT_EQ(ck_asn1_principal_unparse(p, realm, buf, 10), CK_ERR_LIMIT);
    CK_PRINCIPAL_NAME_free(p);
    p = NULL;
    ASN1_GENERALSTRING_free(realm);
    realm = NULL;
    CHECK_OK(ck_asn1_principal_parse("a\\/b\\@c", CK_NT_PRINCIPAL, &p, &realm));
    check_princ(p, CK_NT_PRINCIPAL, "a/b@c", NULL);
    CHECK(realm == NULL);
    CHECK_OK(ck_asn1_principal_unparse(p, NULL, buf, sizeof(buf)));
    CHECK(strcmp(buf, "a\\/b\\@c") == 0);
    CK_PRINCIPAL_NAME_free(p);
    p = NULL;
    CHECK_INT_EQ(ck_asn1_principal_parse("a@B", CK_NT_PRINCIPAL, &p, NULL), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_asn1_principal_parse("a@B@C", CK_NT_PRINCIPAL, &p, &realm), CK_ERR_INVAL);
    CHECK(p == NULL && realm == NULL);
    CHECK_INT_EQ(ck_asn1_principal_parse("a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q", CK_NT_PRINCIPAL,
                                         &p, NULL), CK_ERR_LIMIT);

    ASN1_GENERALSTRING_free(s);
    ASN1_GENERALIZEDTIME_free(t);
    ASN1_BIT_STRING_free(bs);
    ASN1_INTEGER_free(nonce);
    ASN1_INTEGER_free(copy);
}

/* ---- from-scratch construction of every message type -------------------------------------- */

static const char *const alice_c[] = {"alice"};
static const char *const tgs_c[] = {"krbtgt", "EXAMPLE.COM"};
static const char *const host_c[] = {"host", "kdc.example.com"};

static CK_TICKET *
make_ticket(void)
{
    static const uint8_t cipher[] = {1, 2, 3, 4, 5, 6, 7, 8};
    const uint32_t kvno = 3;
    CK_TICKET *t = CK_TICKET_new();

    if (t == NULL)
        return NULL;
    t->tkt_vno = 5;
    if (ck_asn1_kstring_set(&t->realm, "EXAMPLE.COM") != 0 ||
        ck_asn1_principal_set(t->sname, CK_NT_SRV_INST, tgs_c, 2) != 0 ||
        ck_asn1_enc_data_set(t->enc_part, 18, &kvno, cipher, sizeof(cipher)) != 0) {
        CK_TICKET_free(t);
        return NULL;
    }
    return t;
}

/* Encode, decode, re-encode: the two encodings must match and the decoder must accept. */
#define BUILD_RT(name, T, v)                                                                \
    do {                                                                                    \
        uint8_t *e1_ = NULL, *e2_ = NULL;                                                   \
        size_t l1_ = 0, l2_ = 0;                                                            \
        T *d_ = NULL;                                                                       \
        CHECK_OK(ck_asn1_##name##_encode(v, &e1_, &l1_));                                   \
        if (e1_ != NULL) {                                                                  \
            CHECK_OK(ck_asn1_##name##_decode(e1_, l1_, &d_));                               \
            if (d_ != NULL) {                                                               \
                CHECK_OK(ck_asn1_##name##_encode(d_, &e2_, &l2_));                          \
                CHECK_MEM_EQ(e1_, l1_, e2_, l2_);                                           \
            }                                                                               \
        }                                                                                   \
        T##_free(d_);                                                                       \
        ck_asn1_free_der(e1_, l1_);                                                         \
        ck_asn1_free_der(e2_, l2_);                                                         \
    } while (0)

static void
build_messages(void)
{
    static const uint8_t key[32] = {0x11};
    static const uint8_t ck[12] = {0x22};
    static const uint8_t ip[4] = {127, 0, 0, 1};
    static const int32_t et[] = {18, 17};
    CK_KDC_REQ *req = CK_TGS_REQ_new();
    CK_KDC_REP *rep = CK_AS_REP_new();
    CK_ENC_KDC_REP_PART *ep = CK_ENC_KDC_REP_PART_new();
    CK_ENC_TICKET_PART *etp = CK_ENC_TICKET_PART_new();
    CK_AUTHENTICATOR *au = CK_AUTHENTICATOR_new();
    CK_AP_REQ *apq = CK_AP_REQ_new();
    CK_AP_REP *app = CK_AP_REP_new();
    CK_ENC_AP_REP_PART *eap = CK_ENC_AP_REP_PART_new();
    CK_KRB_SAFE_MSG *safe = CK_KRB_SAFE_MSG_new();
    CK_KRB_PRIV_MSG *priv = CK_KRB_PRIV_MSG_new();
    CK_ENC_KRB_PRIV_PART *epp = CK_ENC_KRB_PRIV_PART_new();
    CK_KRB_ERROR_MSG *err = CK_KRB_ERROR_MSG_new();
    CK_PA_ENC_TS_ENC *ts = CK_PA_ENC_TS_ENC_new();
    CK_ETYPE_INFO2 *info = NULL;
    CK_METHOD_DATA *md = NULL;
    CK_AUTHORIZATION_DATA *ad = NULL;
    CK_HOST_ADDRESSES *addrs = NULL;
    CK_TICKET *t = make_ticket(), *t2 = make_ticket();
    const uint8_t *bder = NULL;
    size_t blen = 0;
    uint8_t *enc = NULL;
    size_t elen = 0;
    CK_KDC_REQ *back = NULL;

    CHECK(req && rep && ep && etp && au && apq && app && eap && safe && priv && epp && err && ts &&
          t && t2);
    if (!(req && rep && ep && etp && au && apq && app && eap && safe && priv && epp && err &&
          ts && t && t2))
        goto out;

    /* TGS-REQ with everything optional filled in. */
    req->pvno = 5;
    req->msg_type = CK_KRB_TGS_REQ;
    CHECK_OK(ck_asn1_padata_add(&req->padata, CK_PA_TGS_REQ, (const uint8_t *)"apreq", 5));
    CHECK_OK(ck_asn1_flags_set(&req->req_body->kdc_options,
                               CK_KDC_OPT_FORWARDABLE | CK_KDC_OPT_ENC_TKT_IN_SKEY));
    CHECK_OK(ck_asn1_kstring_set(&req->req_body->realm, "EXAMPLE.COM"));
    CHECK_OK(ck_asn1_principal_new(CK_NT_SRV_HST, host_c, 2, &req->req_body->sname));
    CHECK_OK(ck_asn1_time_set(&req->req_body->from, 1700000000));
    CHECK_OK(ck_asn1_time_set(&req->req_body->till, 1700086400));
    CHECK_OK(ck_asn1_time_set(&req->req_body->rtime, 1700600000));
    CHECK_OK(ck_asn1_nonce_set(&req->req_body->nonce, 0x12345678));
    CHECK_OK(ck_asn1_etypes_set(req->req_body, et, 2));
    CHECK_OK(ck_asn1_host_address_add(&req->req_body->addresses, CK_ADDRTYPE_IPV4, ip, 4));
    req->req_body->enc_authorization_data = CK_ENCRYPTED_DATA_new();
    CHECK_OK(ck_asn1_enc_data_set(req->req_body->enc_authorization_data, 18, NULL, ck, 12));
    req->req_body->additional_tickets = sk_CK_TICKET_new_null();
    CHECK(sk_CK_TICKET_push(req->req_body->additional_tickets, t2) > 0);
    t2 = NULL;
    BUILD_RT(tgs_req, CK_TGS_REQ, req);
    /* Body bytes for a locally built request = its encoding, found inside the whole message. */
    CHECK_OK(ck_asn1_kdc_req_body_der(req, &bder, &blen));
    CHECK_OK(ck_asn1_tgs_req_encode(req, &enc, &elen));
    CHECK(blen > 0 && elen > blen && memcmp(enc + elen - blen, bder, blen) == 0);
    /* After a change the cache must be dropped, or the old body would be sent. */
    CHECK_OK(ck_asn1_nonce_set(&req->req_body->nonce, 7));
    ck_asn1_kdc_req_body_modified(req->req_body);
    ck_asn1_free_der(enc, elen);
    enc = NULL;
    CHECK_OK(ck_asn1_tgs_req_encode(req, &enc, &elen));
    CHECK_OK(ck_asn1_tgs_req_decode(enc, elen, &back));
    if (back != NULL) {
        uint32_t nv = 0;
        CHECK_OK(ck_asn1_nonce_get(back->req_body->nonce, &nv));
        CHECK_INT_EQ(nv, 7);
    }
    ck_asn1_free_der(enc, elen);
    enc = NULL;
    CHECK_INT_EQ(ck_asn1_as_req_encode(req, &enc, &elen), CK_ERR_ENCODE); /* msg-type 12 */
    CHECK(enc == NULL);

    /* AS-REP with ticket and padata. */
    rep->pvno = 5;
    rep->msg_type = CK_KRB_AS_REP;
    CHECK_OK(ck_asn1_etype_info2_add(&info, 18, "EXAMPLE.COMalice", NULL, 0));
    CHECK_OK(ck_asn1_etype_info2_add(&info, 17, NULL, (const uint8_t *)"\0\0\x10\0", 4));
    BUILD_RT(etype_info2, CK_ETYPE_INFO2, info);
    CHECK_OK(ck_asn1_padata_add(&rep->padata, CK_PA_ETYPE_INFO2, (const uint8_t *)"x", 1));
    CHECK_OK(ck_asn1_kstring_set(&rep->crealm, "EXAMPLE.COM"));
    CHECK_OK(ck_asn1_principal_set(rep->cname, CK_NT_PRINCIPAL, alice_c, 1));
    CK_TICKET_free(rep->ticket);
    rep->ticket = t;
    t = NULL;
    CHECK_OK(ck_asn1_enc_data_set(rep->enc_part, 18, NULL, ck, 12));
    BUILD_RT(as_rep, CK_AS_REP, rep);
    BUILD_RT(ticket, CK_TICKET, rep->ticket);
    rep->msg_type = CK_KRB_TGS_REP;
    BUILD_RT(tgs_rep, CK_TGS_REP, rep);

    /* EncASRepPart / EncTGSRepPart, with encrypted-pa-data [12]. */
    CHECK_OK(ck_asn1_enc_key_set(ep->key, 18, key, 32));
    CHECK(ep->last_req != NULL); /* mandatory SEQUENCE OF: allocated (empty) by _new */
    {
        CK_LAST_REQ_ENTRY *lr = CK_LAST_REQ_ENTRY_new();
        CHECK(lr != NULL);
        if (lr != NULL) {
            lr->lr_type = CK_LR_NONE;
            CHECK_OK(ck_asn1_time_set(&lr->lr_value, 0));
            CHECK(sk_CK_LAST_REQ_ENTRY_push(ep->last_req, lr) > 0);
        }
    }
    CHECK_OK(ck_asn1_nonce_set(&ep->nonce, 0x80000000u));
    CHECK_OK(ck_asn1_flags_set(&ep->flags, CK_TKT_FLG_INITIAL | CK_TKT_FLG_PRE_AUTHENT));
    CHECK_OK(ck_asn1_time_set(&ep->authtime, 1700000000));
    CHECK_OK(ck_asn1_time_set(&ep->endtime, 1700036000));
    CHECK_OK(ck_asn1_kstring_set(&ep->srealm, "EXAMPLE.COM"));
    CHECK_OK(ck_asn1_principal_set(ep->sname, CK_NT_SRV_INST, tgs_c, 2));
    CHECK_OK(ck_asn1_padata_add(&ep->encrypted_pa_data, 149, NULL, 0));
    BUILD_RT(enc_as_rep_part, CK_ENC_AS_REP_PART, ep);
    BUILD_RT(enc_tgs_rep_part, CK_ENC_TGS_REP_PART, ep);
    {
        CK_ENC_KDC_REP_PART *x = NULL;
        int tag = 0;
        CHECK_OK(ck_asn1_enc_tgs_rep_part_encode(ep, &enc, &elen));
        /* Clients accept [26] in an AS-REP (RFC 4120 §5.4.2) but the strict decoder does not. */
        CHECK_OK(ck_asn1_enc_kdc_rep_part_decode(enc, elen, &x, &tag));
        CHECK_INT_EQ(tag, CK_KRB_ENC_TGS_REP_PART);
        CK_ENC_KDC_REP_PART_free(x);
        x = NULL;
        CHECK_INT_EQ(ck_asn1_enc_as_rep_part_decode(enc, elen, &x), CK_ERR_DECODE);
        ck_asn1_free_der(enc, elen);
        enc = NULL;
    }

    /* EncTicketPart */
    CHECK_OK(ck_asn1_flags_set(&etp->flags, CK_TKT_FLG_FORWARDABLE));
    CHECK_OK(ck_asn1_enc_key_set(etp->key, 18, key, 32));
    CHECK_OK(ck_asn1_kstring_set(&etp->crealm, "EXAMPLE.COM"));
    CHECK_OK(ck_asn1_principal_set(etp->cname, CK_NT_PRINCIPAL, alice_c, 1));
    CHECK_OK(ck_asn1_octets_set(&etp->transited->contents, NULL, 0));
    CHECK_OK(ck_asn1_time_set(&etp->authtime, 1700000000));
    CHECK_OK(ck_asn1_time_set(&etp->starttime, 1700000000));
    CHECK_OK(ck_asn1_time_set(&etp->endtime, 1700036000));
    CHECK_OK(ck_asn1_time_set(&etp->renew_till, 1700600000));
    CHECK_OK(ck_asn1_host_address_add(&etp->caddr, CK_ADDRTYPE_IPV4, ip, 4));
    CHECK_OK(ck_asn1_ad_add(&etp->authorization_data, CK_AD_IF_RELEVANT, ck, 12));
    BUILD_RT(enc_ticket_part, CK_ENC_TICKET_PART, etp);
    BUILD_RT(authorization_data, CK_AUTHORIZATION_DATA, etp->authorization_data);
    BUILD_RT(host_addresses, CK_HOST_ADDRESSES, etp->caddr);
    BUILD_RT(encryption_key, CK_ENCRYPTION_KEY, etp->key);
    BUILD_RT(principal_name, CK_PRINCIPAL_NAME, etp->cname);

    /* Authenticator with checksum, subkey, seq-number */
    au->authenticator_vno = 5;
    CHECK_OK(ck_asn1_kstring_set(&au->crealm, "EXAMPLE.COM"));
    CHECK_OK(ck_asn1_principal_set(au->cname, CK_NT_PRINCIPAL, alice_c, 1));
    au->cksum = CK_CHECKSUM_new();
    CHECK_OK(ck_asn1_checksum_set(au->cksum, 16, ck, 12));
    au->cusec = 999999;
    CHECK_OK(ck_asn1_time_set(&au->ctime, 1700000000));
    au->subkey = CK_ENCRYPTION_KEY_new();
    CHECK_OK(ck_asn1_enc_key_set(au->subkey, 18, key, 32));
    CHECK_OK(ck_asn1_nonce_set(&au->seq_number, 0xFFFFFFFFu));
    BUILD_RT(authenticator, CK_AUTHENTICATOR, au);
    BUILD_RT(checksum, CK_CHECKSUM, au->cksum);
    au->cusec = 1000000;
    CHECK_INT_EQ(ck_asn1_authenticator_encode(au, &enc, &elen), CK_ERR_ENCODE);

    /* AP-REQ / AP-REP / EncAPRepPart */
    apq->pvno = 5;
    apq->msg_type = CK_KRB_AP_REQ;
    CHECK_OK(ck_asn1_flags_set(&apq->ap_options, CK_AP_OPT_MUTUAL_REQUIRED));
    CK_TICKET_free(apq->ticket);
    apq->ticket = make_ticket();
    CHECK_OK(ck_asn1_enc_data_set(apq->authenticator, 18, NULL, ck, 12));
    BUILD_RT(ap_req, CK_AP_REQ, apq);
    app->pvno = 5;
    app->msg_type = CK_KRB_AP_REP;
    CHECK_OK(ck_asn1_enc_data_set(app->enc_part, 18, NULL, ck, 12));
    BUILD_RT(ap_rep, CK_AP_REP, app);
    CHECK_OK(ck_asn1_time_set(&eap->ctime, 1700000000));
    eap->cusec = 0;
    BUILD_RT(enc_ap_rep_part, CK_ENC_AP_REP_PART, eap);

    /* KRB-SAFE, KRB-PRIV, EncKrbPrivPart */
    safe->pvno = 5;
    safe->msg_type = CK_KRB_SAFE;
    CHECK_OK(ck_asn1_octets_set(&safe->safe_body->user_data, (const uint8_t *)"data", 4));
    CHECK_OK(ck_asn1_time_set(&safe->safe_body->timestamp, 1700000000));
    CHECK_OK(ck_asn1_int32_set(&safe->safe_body->usec, 12345));
    CHECK_OK(ck_asn1_nonce_set(&safe->safe_body->seq_number, 1));
    safe->safe_body->s_address->addr_type = CK_ADDRTYPE_IPV4;
    CHECK_OK(ck_asn1_octets_set(&safe->safe_body->s_address->address, ip, 4));
    CHECK_OK(ck_asn1_checksum_set(safe->cksum, 16, ck, 12));
    BUILD_RT(krb_safe, CK_KRB_SAFE_MSG, safe);
    BUILD_RT(krb_safe_body, CK_KRB_SAFE_BODY, safe->safe_body);
    CHECK_OK(ck_asn1_krb_safe_body_der(safe, &bder, &blen));
    CHECK(blen > 10 && bder[0] == 0x30);
    priv->pvno = 5;
    priv->msg_type = CK_KRB_PRIV;
    CHECK_OK(ck_asn1_enc_data_set(priv->enc_part, 18, NULL, ck, 12));
    BUILD_RT(krb_priv, CK_KRB_PRIV_MSG, priv);
    CHECK_OK(ck_asn1_octets_set(&epp->user_data, (const uint8_t *)"data", 4));
    epp->s_address->addr_type = CK_ADDRTYPE_IPV4;
    CHECK_OK(ck_asn1_octets_set(&epp->s_address->address, ip, 4));
    BUILD_RT(enc_krb_priv_part, CK_ENC_KRB_PRIV_PART, epp);

    /* KRB-ERROR with METHOD-DATA e-data */
    err->pvno = 5;
    err->msg_type = CK_KRB_ERROR;
    CHECK_OK(ck_asn1_time_set(&err->stime, 1700000000));
    err->susec = 5;
    err->error_code = CK_KDC_ERR_PREAUTH_REQUIRED;
    CHECK_OK(ck_asn1_kstring_set(&err->realm, "EXAMPLE.COM"));
    CHECK_OK(ck_asn1_principal_set(err->sname, CK_NT_SRV_INST, tgs_c, 2));
    CHECK_OK(ck_asn1_kstring_set(&err->e_text, "NEEDED_PREAUTH"));
    CHECK_OK(ck_asn1_padata_add(&md, CK_PA_ENC_TIMESTAMP, NULL, 0));
    BUILD_RT(method_data, CK_METHOD_DATA, md);
    CHECK_OK(ck_asn1_method_data_encode(md, &enc, &elen));
    CHECK_OK(ck_asn1_octets_set(&err->e_data, enc, elen));
    ck_asn1_free_der(enc, elen);
    enc = NULL;
    BUILD_RT(krb_error, CK_KRB_ERROR_MSG, err);

    /* PA-ENC-TS-ENC */
    CHECK_OK(ck_asn1_time_set(&ts->patimestamp, 1700000000));
    CHECK_OK(ck_asn1_int32_set(&ts->pausec, 1));
    BUILD_RT(pa_enc_ts_enc, CK_PA_ENC_TS_ENC, ts);
    BUILD_RT(encrypted_data, CK_ENCRYPTED_DATA, priv->enc_part);

    /* Missing mandatory fields are refused by the encoder, not silently dropped. */
    ASN1_GENERALIZEDTIME_free(err->stime);
    err->stime = NULL;
    CHECK_INT_EQ(ck_asn1_krb_error_encode(err, &enc, &elen), CK_ERR_ENCODE);
    CHECK(enc == NULL);
    /* A BIT STRING built without ck_asn1_flags_set would lose its trailing zero bits. */
    ASN1_BIT_STRING_free(apq->ap_options);
    apq->ap_options = ASN1_BIT_STRING_new();
    ASN1_BIT_STRING_set_bit(apq->ap_options, 2, 1);
    CHECK_INT_EQ(ck_asn1_ap_req_encode(apq, &enc, &elen), CK_ERR_ENCODE);
out:
    (void)addrs;
    (void)ad;
    CK_KDC_REQ_free(back);
    ck_asn1_free_der(enc, elen);
    CK_ETYPE_INFO2_free(info);
    CK_METHOD_DATA_free(md);
    CK_TICKET_free(t);
    CK_TICKET_free(t2);
    CK_KDC_REQ_free(req);
    CK_KDC_REP_free(rep);
    CK_ENC_KDC_REP_PART_free(ep);
    CK_ENC_TICKET_PART_free(etp);
    CK_AUTHENTICATOR_free(au);
    CK_AP_REQ_free(apq);
    CK_AP_REP_free(app);
    CK_ENC_AP_REP_PART_free(eap);
    CK_KRB_SAFE_MSG_free(safe);
    CK_KRB_PRIV_MSG_free(priv);
    CK_ENC_KRB_PRIV_PART_free(epp);
    CK_KRB_ERROR_MSG_free(err);
    CK_PA_ENC_TS_ENC_free(ts);
}

/* ---- hostile input -------------------------------------------------------------------------- */

static int
as_req_rc(const uint8_t *d, size_t n)
{
    CK_KDC_REQ *r = NULL;
    int rc = ck_asn1_as_req_decode(d, n, &r);

    if (rc == 0 || r != NULL) {
        CK_KDC_REQ_free(r);
        return 0;
    }
    return rc;
}

static void
negative_structure(void)
{
    size_t n = 0;
    uint8_t *d = load("as_req_nopreauth.der", &n), *m = NULL;

    if (d == NULL || n != 181)
        goto out;
    m = malloc(n + 8);
    CHECK(m != NULL);
    if (m == NULL)
        goto out;
    CHECK_INT_EQ(as_req_rc(d, n - 1), CK_ERR_DECODE);     /* truncated by one byte */
    CHECK_INT_EQ(as_req_rc(d, 0), CK_ERR_DECODE);
    CHECK_INT_EQ(as_req_rc(NULL, 5), CK_ERR_DECODE);
    memcpy(m, d, n);
    m[n] = 0x00;
    CHECK_INT_EQ(as_req_rc(m, n + 1), CK_ERR_DECODE);     /* one trailing byte */
    CHECK(strstr(ck_error_context(), "trailing") != NULL);
    memcpy(m, d, n);
    m[0] = 0x6c;                                          /* [APPLICATION 12]: TGS-REQ tag */
    CHECK_INT_EQ(as_req_rc(m, n), CK_ERR_DECODE);
    m[0] = 0x6b;                                          /* AS-REP tag */
    CHECK_INT_EQ(as_req_rc(m, n), CK_ERR_DECODE);
    memcpy(m, d, n);
    m[14] = 0x0c; /* msg-type 12 under [APPLICATION 10] */
    CHECK_INT_EQ(as_req_rc(m, n), CK_ERR_DECODE);
    memcpy(m, d, n);
    m[9] = 0x04; /* pvno 4 */
    CHECK_INT_EQ(as_req_rc(m, n), CK_ERR_DECODE);
    /* DER lengths must be minimal (X.690 §10.1). The outer header 6a 81 b2 re-framed as
     * 6a 82 00 b2 (leading zero octet) ... */
    m[0] = 0x6a;
    m[1] = 0x82;
    m[2] = 0x00;
    m[3] = 0xb2;
    memcpy(m + 4, d + 3, n - 3);
    CHECK_INT_EQ(as_req_rc(m, n + 1), CK_ERR_DECODE);
    CHECK(strstr(ck_error_context(), "non-minimal") != NULL);
    /* ... and pvno's [1] header a1 03 as a1 81 03 (long form below 128), lengths adjusted:
     * 6a 81 b3 30 81 b0 a1 81 03 02 01 05 ... */
    {
        static const uint8_t head[] = {0x6a, 0x81, 0xb3, 0x30, 0x81, 0xb0, 0xa1, 0x81, 0x03};
        memcpy(m, head, sizeof(head));
        memcpy(m + sizeof(head), d + 8, n - 8);
        CHECK_INT_EQ(as_req_rc(m, n + 1), CK_ERR_DECODE);
        CHECK(strstr(ck_error_context(), "non-minimal") != NULL);
        memcpy(m, d, n); /* the minimal original is accepted */
        CHECK_INT_EQ(as_req_rc(m, n), 0);
    }
    /* Absurd length: 6a 84 ff ff ff ff ... */
    {
        static const uint8_t absurd[] = {0x6a, 0x84, 0xff, 0xff, 0xff, 0xff, 0x30, 0x00};
        static const uint8_t five[] = {0x6a, 0x85, 0x00, 0x00, 0x00, 0x00, 0x02};
        CHECK_INT_EQ(as_req_rc(absurd, sizeof(absurd)), CK_ERR_DECODE);
        CHECK_INT_EQ(as_req_rc(five, sizeof(five)), CK_ERR_DECODE);
    }
    /* Indefinite length: the same message re-framed as 6a 80 <content> 00 00, which OpenSSL's
     * template decoder alone would accept. */
    {
        size_t cl = n - 3; /* 6a 81 b2 header */
        memcpy(m, "\x6a\x80", 2);
        memcpy(m + 2, d + 3, cl);
        m[2 + cl] = 0;
        m[3 + cl] = 0;
        CHECK_INT_EQ(as_req_rc(m, cl + 4), CK_ERR_DECODE);
        CHECK(strstr(ck_error_context(), "indefinite") != NULL);
    }
    /* Oversized input: AS-REQ has its own cap (PKINIT padata), other messages the default. */
    {
        uint8_t *big = calloc(1, CK_ASN1_MAX_AS_MSG + 10);
        CK_KDC_REQ *q = NULL;
        CHECK(big != NULL);
        if (big != NULL) {
            big[0] = 0x6a;
            big[1] = 0x83;
            big[2] = (CK_ASN1_MAX_AS_MSG + 5) >> 16;
            big[3] = ((CK_ASN1_MAX_AS_MSG + 5) >> 8) & 0xff;
            big[4] = (CK_ASN1_MAX_AS_MSG + 5) & 0xff;
            CHECK_INT_EQ(as_req_rc(big, CK_ASN1_MAX_AS_MSG + 10), CK_ERR_DECODE);
            CHECK(strstr(ck_error_context(), "exceeds") != NULL);
            big[0] = 0x6c;
            big[2] = (CK_ASN1_MAX_MSG + 5) >> 16;
            big[3] = ((CK_ASN1_MAX_MSG + 5) >> 8) & 0xff;
            big[4] = (CK_ASN1_MAX_MSG + 5) & 0xff;
            CHECK_INT_EQ(ck_asn1_tgs_req_decode(big, CK_ASN1_MAX_MSG + 10, &q), CK_ERR_DECODE);
            CHECK(strstr(ck_error_context(), "exceeds") != NULL);
            free(big);
        }
    }
    /* Deep nesting: 60 nested [APPLICATION 10] constructed headers. */
    {
        uint8_t deep[120];
        for (int i = 0; i < 60; i++) {
            deep[2 * i] = 0x6a;
            deep[2 * i + 1] = (uint8_t)(118 - 2 * i);
        }
        CHECK_INT_EQ(as_req_rc(deep, sizeof(deep)), CK_ERR_DECODE);
        CHECK(strstr(ck_error_context(), "nested") != NULL);
    }
    /* msg_type dispatch helper */
    CHECK_INT_EQ(ck_asn1_msg_type((const uint8_t *)"\x30\x00", 2), CK_ERR_DECODE);
    CHECK_INT_EQ(ck_asn1_msg_type((const uint8_t *)"\x7f\x1f", 2), CK_ERR_DECODE);
    CHECK_INT_EQ(ck_asn1_msg_type((const uint8_t *)"\x7e", 1), CK_KRB_ERROR);
out:
    free(m);
    free(d);
}

/* Field-level mutations of the captured AS-REQ (offsets from `openssl asn1parse`). */
static void
negative_fields(void)
{
    size_t n = 0;
    uint8_t *d = load("as_req_nopreauth.der", &n), *m = NULL;

    if (d == NULL || n != 181)
        goto out;
    m = malloc(n);
    if (m == NULL)
        goto out;
    /* till at offset 128: 18 0f "20261122223557Z" */
    memcpy(m, d, n);
    m[130 + 14] = '+';                                        /* no Z */
    CHECK_INT_EQ(as_req_rc(m, n), CK_ERR_DECODE);
    CHECK(strstr(ck_error_context(), "till") != NULL);
    memcpy(m, d, n);
    m[130 + 4] = '1';
    m[130 + 5] = '3';                                         /* month 13 */
    CHECK_INT_EQ(as_req_rc(m, n), CK_ERR_DECODE);
    memcpy(m, d, n);
    m[130 + 12] = '.';                                        /* non-digit */
    CHECK_INT_EQ(as_req_rc(m, n), CK_ERR_DECODE);
    /* realm "TEST.REALM" at offset 83: embed a NUL */
    memcpy(m, d, n);
    m[83 + 4] = 0x00;
    CHECK_INT_EQ(as_req_rc(m, n), CK_ERR_DECODE);
    CHECK(strstr(ck_error_context(), "NUL") != NULL);
    /* cname component "alice" at offset 74 */
    memcpy(m, d, n);
    m[74 + 2] = 0x00;
    CHECK_INT_EQ(as_req_rc(m, n), CK_ERR_DECODE);
    /* the realm as UTF8String instead of GeneralString */
    memcpy(m, d, n);
    m[81] = 0x0c;
    CHECK_INT_EQ(as_req_rc(m, n), CK_ERR_DECODE);
    /* kdc-options BIT STRING as OCTET STRING */
    memcpy(m, d, n);
    m[52] = 0x04;
    CHECK_INT_EQ(as_req_rc(m, n), CK_ERR_DECODE);
    /* nonce with non-minimal encoding 02 04 00 00 00 7a is refused by OpenSSL */
    memcpy(m, d, n);
    m[149] = 0x00;
    m[150] = 0x00;
    m[151] = 0x00;
    CHECK_INT_EQ(as_req_rc(m, n), CK_ERR_DECODE);
    /* Mandatory fields missing: rename their context tags to unknown ones. */
    memcpy(m, d, n);
    m[126] = 0xa6;                                            /* till [5] -> rtime [6] */
    CHECK_INT_EQ(as_req_rc(m, n), CK_ERR_DECODE);
    memcpy(m, d, n);
    m[145] = 0xaf;                                            /* nonce [7] -> [15] */
    CHECK_INT_EQ(as_req_rc(m, n), CK_ERR_DECODE);
    memcpy(m, d, n);
    m[79] = 0xbf - 0x10;                                      /* realm [2] -> [15] */
    CHECK_INT_EQ(as_req_rc(m, n), CK_ERR_DECODE);
    memcpy(m, d, n);
    m[153] = 0xbe - 0x10;                                     /* etype [8] -> [14] */
    CHECK_INT_EQ(as_req_rc(m, n), CK_ERR_DECODE);
    memcpy(m, d, n);
    m[50] = 0xbf - 0x10;                                      /* kdc-options [0] -> [15] */
    CHECK_INT_EQ(as_req_rc(m, n), CK_ERR_DECODE);
    memcpy(m, d, n);
    m[6] = 0xaf;                                              /* pvno [1] -> [15] */
    CHECK_INT_EQ(as_req_rc(m, n), CK_ERR_DECODE);
    /* ... and the unmodified message still decodes (the mutations are what fails). */
    CHECK_INT_EQ(as_req_rc(d, n), 0);
out:
    free(m);
    free(d);
}

/* Builds an AS-REQ DER around an etype list / nonce / time of our choosing. */
static int
encode_custom_as_req(size_t n_etypes, const uint8_t *nonce_der, size_t nonce_len,
                     const char *till, uint8_t **out, size_t *out_len)
{
    CK_KDC_REQ *req = CK_AS_REQ_new();
    int32_t et[CK_ASN1_MAX_ETYPES + 8];
    static const char *const alice[] = {"alice"};
    const unsigned char *p = nonce_der;
    int rc = CK_ERR_NOMEM;

    if (req == NULL)
        return rc;
    for (size_t i = 0; i < sizeof(et) / sizeof(et[0]); i++)
        et[i] = 18;
    req->pvno = 5;
    req->msg_type = 10;
    if ((rc = ck_asn1_flags_set(&req->req_body->kdc_options, 0)) != 0 ||
        (rc = ck_asn1_principal_new(1, alice, 1, &req->req_body->cname)) != 0 ||
        (rc = ck_asn1_kstring_set(&req->req_body->realm, "R")) != 0 ||
        (rc = ck_asn1_time_set(&req->req_body->till, 0)) != 0 ||
        (rc = ck_asn1_etypes_set(req->req_body, et, n_etypes > CK_ASN1_MAX_ETYPES ? 1 : n_etypes)) != 0)
        goto out;
    /* Bypass our setters to produce what a hostile peer could send. */
    if (n_etypes > CK_ASN1_MAX_ETYPES) {
        for (size_t i = 1; i < n_etypes; i++) {
            ASN1_INTEGER *v = ASN1_INTEGER_new();
            ASN1_INTEGER_set(v, 18);
            sk_ASN1_INTEGER_push(req->req_body->etype, v);
        }
    }
    ASN1_INTEGER_free(req->req_body->nonce);
    req->req_body->nonce = d2i_ASN1_INTEGER(NULL, &p, (long)nonce_len);
    if (till != NULL)
        ASN1_STRING_set(req->req_body->till, till, (int)strlen(till));
    /* Raw i2d: our encoder would refuse these values. */
    {
        unsigned char *der = NULL;
        int len = ASN1_item_i2d((ASN1_VALUE *)req, &der, ASN1_ITEM_rptr(CK_AS_REQ));
        rc = len > 0 ? 0 : CK_ERR_ENCODE;
        *out = der;
        *out_len = len > 0 ? (size_t)len : 0;
    }
out:
    CK_AS_REQ_free(req);
    return rc;
}

static void
negative_values(void)
{
    static const uint8_t n_ok[] = {0x02, 0x05, 0x00, 0xff, 0xff, 0xff, 0xff};  /* 2^32-1 */
    static const uint8_t n_neg[] = {0x02, 0x04, 0x80, 0x00, 0x00, 0x00};       /* -2^31 */
    static const uint8_t n_big[] = {0x02, 0x05, 0x01, 0x00, 0x00, 0x00, 0x00}; /* 2^32 */
    static const uint8_t n_low[] = {0x02, 0x05, 0xff, 0x7f, 0xff, 0xff, 0xff}; /* -2^31-1 */
    uint8_t *der = NULL;
    size_t len = 0;

    CHECK_OK(encode_custom_as_req(1, n_ok, sizeof(n_ok), NULL, &der, &len));
    CHECK_INT_EQ(as_req_rc(der, len), 0);
    OPENSSL_free(der);
    CHECK_OK(encode_custom_as_req(1, n_neg, sizeof(n_neg), NULL, &der, &len));
    CHECK_INT_EQ(as_req_rc(der, len), 0);
    OPENSSL_free(der);
    CHECK_OK(encode_custom_as_req(1, n_big, sizeof(n_big), NULL, &der, &len));
    CHECK_INT_EQ(as_req_rc(der, len), CK_ERR_DECODE);
    CHECK(strstr(ck_error_context(), "nonce") != NULL);
    OPENSSL_free(der);
    CHECK_OK(encode_custom_as_req(1, n_low, sizeof(n_low), NULL, &der, &len));
    CHECK_INT_EQ(as_req_rc(der, len), CK_ERR_DECODE);
    OPENSSL_free(der);
    CHECK_OK(encode_custom_as_req(CK_ASN1_MAX_ETYPES, n_ok, sizeof(n_ok), NULL, &der, &len));
    CHECK_INT_EQ(as_req_rc(der, len), 0);
    OPENSSL_free(der);
    CHECK_OK(encode_custom_as_req(CK_ASN1_MAX_ETYPES + 1, n_ok, sizeof(n_ok), NULL, &der, &len));
    CHECK_INT_EQ(as_req_rc(der, len), CK_ERR_DECODE);
    CHECK(strstr(ck_error_context(), "etype") != NULL);
    OPENSSL_free(der);
    CHECK_OK(encode_custom_as_req(1, n_ok, sizeof(n_ok), "20240101000000.5Z", &der, &len));
    CHECK_INT_EQ(as_req_rc(der, len), CK_ERR_DECODE);
    OPENSSL_free(der);
    CHECK_OK(encode_custom_as_req(1, n_ok, sizeof(n_ok), "202401010000Z", &der, &len));
    CHECK_INT_EQ(as_req_rc(der, len), CK_ERR_DECODE);
    OPENSSL_free(der);
}

/* Every golden file, truncated at every length, must fail cleanly (ASan checks for leaks). */
static void
negative_truncations(void)
{
    static const char *const files[] = {"as_req_enc_ts.der", "as_rep.der", "tgs_req.der",
                                        "tgs_rep.der", "ap_req.der", "ap_rep.der",
                                        "krb_error_preauth_required.der",
                                        "kpasswd_krb_priv_req.der"};
    for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
        size_t n = 0;
        uint8_t *d = load(files[f], &n);
        for (size_t i = 0; d != NULL && i < n; i++) {
            CK_KDC_REQ *q = NULL;
            CK_KDC_REP *r = NULL;
            CK_AP_REQ *a = NULL;
            CK_AP_REP *b = NULL;
            CK_KRB_ERROR_MSG *e = NULL;
            CK_KRB_PRIV_MSG *p = NULL;
            int bad = 0;
            bad += ck_asn1_kdc_req_decode(d, i, &q, NULL) == CK_ERR_DECODE && q == NULL;
            bad += ck_asn1_kdc_rep_decode(d, i, &r, NULL) == CK_ERR_DECODE && r == NULL;
            bad += ck_asn1_ap_req_decode(d, i, &a) == CK_ERR_DECODE && a == NULL;
            bad += ck_asn1_ap_rep_decode(d, i, &b) == CK_ERR_DECODE && b == NULL;
            bad += ck_asn1_krb_error_decode(d, i, &e) == CK_ERR_DECODE && e == NULL;
            bad += ck_asn1_krb_priv_decode(d, i, &p) == CK_ERR_DECODE && p == NULL;
            if (bad != 6) {
                fprintf(stderr, "  %s truncated to %zu accepted\n", files[f], i);
                ck_test_case_failed = 1;
            }
            CK_KDC_REQ_free(q);
            CK_KDC_REP_free(r);
            CK_AP_REQ_free(a);
            CK_AP_REP_free(b);
            CK_KRB_ERROR_MSG_free(e);
            CK_KRB_PRIV_MSG_free(p);
        }
        free(d);
    }
}

CK_TEST_MAIN("asn1", CK_TEST_CASE(golden_roundtrip), CK_TEST_CASE(as_req_fields),
             CK_TEST_CASE(krb_error_fields), CK_TEST_CASE(plaintext_fields), CK_TEST_CASE(as_rep_fields),
             CK_TEST_CASE(tgs_req_fields), CK_TEST_CASE(ap_fields),
             CK_TEST_CASE(build_as_req_like_mit), CK_TEST_CASE(helpers),
             CK_TEST_CASE(build_messages), CK_TEST_CASE(negative_structure),
             CK_TEST_CASE(negative_fields), CK_TEST_CASE(negative_values),
             CK_TEST_CASE(negative_truncations))
