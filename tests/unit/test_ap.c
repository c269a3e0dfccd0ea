/* AP-REQ / AP-REP / replay cache / ticket helpers (lib/krb/ap.c, rcache.c, kdcrep.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ck_test.h"
#include "cablekey/ap.h"
#include "cablekey/keytab.h"
#include "cablekey/principal.h"
#include "cablekey/util.h"

static const int32_t enctypes[] = {
    CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96,
    CK_ENCTYPE_AES256_CTS_HMAC_SHA384_192, CK_ENCTYPE_AES128_CTS_HMAC_SHA256_128};

#define REALM "TEST.REALM"

struct fixture {
    ck_key service_key, session_key;
    CK_TICKET *ticket;
    CK_PRINCIPAL_NAME *client;
};

static int
key_fn(void *arg, const CK_TICKET *ticket, int32_t etype, uint32_t kvno, ck_key *key,
       int32_t *krb_error)
{
    const ck_key *k = arg;

    (void)ticket;
    if (kvno != 0 && kvno != 3) {
        *krb_error = CK_KRB_AP_ERR_BADKEYVER;
        return CK_ERR_NOTFOUND;
    }
    if (etype != k->enctype) {
        *krb_error = CK_KRB_AP_ERR_NOKEY;
        return CK_ERR_NOTFOUND;
    }
    return ck_key_copy(key, k);
}

/* A ticket for host/svc@REALM, client alice@REALM, valid [start, end]. */
static void
fixture_up(struct fixture *f, int32_t etype, int64_t start, int64_t end)
{
    static const char *const svc[] = {"host", "svc"};
    static const char *const alice[] = {"alice"};
    CK_ENC_TICKET_PART *etp = CK_ENC_TICKET_PART_new();

    memset(f, 0, sizeof(*f));
    CHECK_OK(ck_random_key(etype, &f->service_key));
    CHECK_OK(ck_random_key(etype, &f->session_key));
    CHECK_OK(ck_asn1_principal_new(CK_NT_PRINCIPAL, alice, 1, &f->client));
    CHECK(etp != NULL);
    CHECK_OK(ck_asn1_flags_set(&etp->flags, CK_TKT_FLG_INITIAL));
    CHECK_OK(ck_key_to_asn1(&f->session_key, &etp->key));
    CHECK_OK(ck_asn1_kstring_set(&etp->crealm, REALM));
    CHECK_OK(ck_asn1_principal_set(etp->cname, CK_NT_PRINCIPAL, alice, 1));
    etp->transited->tr_type = 1;
    CHECK_OK(ck_asn1_time_set(&etp->authtime, start));
    CHECK_OK(ck_asn1_time_set(&etp->endtime, end));
    f->ticket = CK_TICKET_new();
    CHECK_OK(ck_asn1_kstring_set(&f->ticket->realm, REALM));
    CHECK_OK(ck_asn1_principal_set(f->ticket->sname, CK_NT_SRV_INST, svc, 2));
    CHECK_OK(ck_ticket_seal(f->ticket, etp, &f->service_key, 3));
    CK_ENC_TICKET_PART_free(etp);
}

static void
fixture_down(struct fixture *f)
{
    CK_TICKET_free(f->ticket);
    CK_PRINCIPAL_NAME_free(f->client);
    ck_key_clear(&f->service_key);
    ck_key_clear(&f->session_key);
}

static void
test_ticket_seal_open(void)
{
    struct fixture f;
    CK_ENC_TICKET_PART *etp = NULL;
    ck_key other, k;
    int64_t now;
    int32_t usec;

    ck_now(&now, &usec);
    fixture_up(&f, CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, now, now + 3600);
    CHECK_OK(ck_ticket_open(f.ticket, &f.service_key, &etp));
    CHECK(etp != NULL);
    if (etp != NULL) {
        CHECK_OK(ck_key_from_asn1(&k, etp->key));
        CHECK_MEM_EQ(k.contents, k.length, f.session_key.contents, f.session_key.length);
    }
    CK_ENC_TICKET_PART_free(etp);
    CHECK_INT_EQ(ck_asn1_uint32_get(f.ticket->enc_part->kvno, 0), 3);
    CHECK_OK(ck_random_key(CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, &other));
    CHECK_INT_EQ(ck_ticket_open(f.ticket, &other, &etp), CK_ERR_INTEGRITY);
    fixture_down(&f);
}

static void
test_roundtrip_all_enctypes(void)
{
    for (size_t i = 0; i < sizeof(enctypes) / sizeof(enctypes[0]); i++) {
        struct fixture f;
        ck_ap_req_result res;
        ck_rcache *rc = NULL;
        CK_CHECKSUM *ck = NULL;
        ck_key subkey;
        uint8_t *der = NULL;
        size_t len = 0;
        uint32_t seq = 0x89abcdefu;
        int64_t now, ctime = 0;
        int32_t usec, cusec = 0;

        ck_now(&now, &usec);
        fixture_up(&f, enctypes[i], now - 10, now + 3600);
        CHECK_OK(ck_random_key(enctypes[i], &subkey));
        CHECK_OK(ck_checksum_new(&f.session_key, 0, CK_KU_AP_REQ_AUTH_CKSUM,
                                 (const uint8_t *)"abc", 3, &ck));
        CHECK_OK(ck_rcache_new(0, 600, &rc));
        CHECK_OK(ck_ap_req_build(f.ticket, &f.session_key, REALM, f.client,
                                 CK_AP_OPT_MUTUAL_REQUIRED, ck, CK_KU_AP_REQ_AUTH, &subkey, &seq,
                                 &ctime, &cusec, &der, &len));
        CHECK_OK(ck_ap_req_verify(der, len, key_fn, &f.service_key, "host/svc@" REALM, rc, 300,
                                  CK_KU_AP_REQ_AUTH, &res));
        CHECK_INT_EQ(res.krb_error, 0);
        CHECK_INT_EQ(res.ap_options, CK_AP_OPT_MUTUAL_REQUIRED);
        CHECK_INT_EQ(res.ticket_etype, enctypes[i]);
        CHECK_INT_EQ(res.ticket_kvno, 3);
        CHECK_INT_EQ(res.tkt_flags, CK_TKT_FLG_INITIAL);
        CHECK_INT_EQ(res.authtime, now - 10);
        CHECK_INT_EQ(res.starttime, now - 10);
        CHECK_INT_EQ(res.endtime, now + 3600);
        CHECK_INT_EQ(res.renew_till, 0);
        CHECK_INT_EQ(res.ctime, ctime);
        CHECK_INT_EQ(res.cusec, cusec);
        CHECK(res.has_subkey);
        CHECK_MEM_EQ(res.subkey.contents, res.subkey.length, subkey.contents, subkey.length);
        CHECK(res.has_seq_number);
        CHECK_INT_EQ(res.seq_number, seq);
        CHECK_MEM_EQ(res.session_key.contents, res.session_key.length, f.session_key.contents,
                     f.session_key.length);
        CHECK(res.authenticator != NULL && res.authenticator->cksum != NULL);
        if (res.authenticator != NULL && res.authenticator->cksum != NULL)
            CHECK_OK(ck_verify_checksum(
                &res.session_key, res.authenticator->cksum->cksumtype, CK_KU_AP_REQ_AUTH_CKSUM,
                (const uint8_t *)"abc", 3,
                ASN1_STRING_get0_data(res.authenticator->cksum->checksum),
                (size_t)ASN1_STRING_length(res.authenticator->cksum->checksum)));
        CHECK(res.enc_ticket != NULL &&
              ck_asn1_principal_equal(res.enc_ticket->cname, f.client));
        ck_ap_req_result_clear(&res);

        /* The same AP-REQ again is a replay. */
        CHECK_INT_EQ(ck_ap_req_verify(der, len, key_fn, &f.service_key, NULL, rc, 300,
                                      CK_KU_AP_REQ_AUTH, &res),
                     CK_ERR_REPLAY);
        CHECK_INT_EQ(res.krb_error, CK_KRB_AP_ERR_REPEAT);
        ck_ap_req_result_clear(&res);
        /* A full replay cache refuses a fresh AP-REQ it can no longer check: KRB_ERR_GENERIC,
         * CK_ERR_FULL (the server's e-text: "replay cache full"). */
        {
            ck_rcache *small = NULL;
            uint8_t *der2 = NULL;
            size_t len2 = 0;

            CHECK_OK(ck_rcache_new(1, 600, &small));
            CHECK_OK(ck_ap_req_verify(der, len, key_fn, &f.service_key, NULL, small, 300,
                                      CK_KU_AP_REQ_AUTH, &res));
            ck_ap_req_result_clear(&res);
            CHECK_OK(ck_ap_req_build(f.ticket, &f.session_key, REALM, f.client, 0, NULL,
                                     CK_KU_AP_REQ_AUTH, NULL, NULL, NULL, NULL, &der2, &len2));
            CHECK_INT_EQ(ck_ap_req_verify(der2, len2, key_fn, &f.service_key, NULL, small, 300,
                                          CK_KU_AP_REQ_AUTH, &res),
                         CK_ERR_FULL);
            CHECK_INT_EQ(res.krb_error, CK_KRB_ERR_GENERIC);
            ck_ap_req_result_clear(&res);
            CHECK_INT_EQ(ck_rcache_count(small), 1);
            ck_asn1_free_der(der2, len2);
            ck_rcache_free(small);
        }
        /* Without a replay cache it verifies again. */
        CHECK_OK(ck_ap_req_verify(der, len, key_fn, &f.service_key, NULL, NULL, 300,
                                  CK_KU_AP_REQ_AUTH, &res));
        ck_ap_req_result_clear(&res);
        /* Wrong service name, wrong usage. */
        CHECK(ck_ap_req_verify(der, len, key_fn, &f.service_key, "host/other@" REALM, NULL, 300,
                               CK_KU_AP_REQ_AUTH, &res) != 0);
        CHECK_INT_EQ(res.krb_error, CK_KRB_AP_ERR_NOT_US);
        ck_ap_req_result_clear(&res);
        CHECK(ck_ap_req_verify(der, len, key_fn, &f.service_key, NULL, NULL, 300,
                               CK_KU_TGS_REQ_AUTH, &res) != 0);
        CHECK_INT_EQ(res.krb_error, CK_KRB_AP_ERR_MODIFIED);
        ck_ap_req_result_clear(&res);

        ck_asn1_free_der(der, len);
        CK_CHECKSUM_free(ck);
        ck_rcache_free(rc);
        ck_key_clear(&subkey);
        fixture_down(&f);
    }
}

/* Builds an AP-REQ by hand with a chosen authenticator time and client name. */
static void
build_custom(const struct fixture *f, int64_t ctime, const char *cname, uint8_t **der,
             size_t *len)
{
    CK_AUTHENTICATOR *auth = CK_AUTHENTICATOR_new();
    CK_AP_REQ *req = CK_AP_REQ_new();
    const char *comps[1] = {cname};
    uint8_t *plain = NULL;
    size_t plain_len = 0;

    auth->authenticator_vno = 5;
    CHECK_OK(ck_asn1_kstring_set(&auth->crealm, REALM));
    CHECK_OK(ck_asn1_principal_set(auth->cname, CK_NT_PRINCIPAL, comps, 1));
    CHECK_OK(ck_asn1_time_set(&auth->ctime, ctime));
    CHECK_OK(ck_asn1_authenticator_encode(auth, &plain, &plain_len));
    req->pvno = 5;
    req->msg_type = CK_KRB_AP_REQ;
    CHECK_OK(ck_asn1_flags_set(&req->ap_options, 0));
    CK_TICKET_free(req->ticket);
    req->ticket = CK_TICKET_dup(f->ticket);
    CHECK_OK(ck_enc_data_seal(req->authenticator, &f->session_key, CK_KU_AP_REQ_AUTH, NULL, plain,
                              plain_len));
    CHECK_OK(ck_asn1_ap_req_encode(req, der, len));
    ck_asn1_free_der(plain, plain_len);
    CK_AUTHENTICATOR_free(auth);
    CK_AP_REQ_free(req);
}

static int
verify_code(const struct fixture *f, const uint8_t *der, size_t len, const ck_key *key)
{
    ck_ap_req_result res;
    int32_t code;

    (void)f;
    CHECK(ck_ap_req_verify(der, len, key_fn, (void *)key, NULL, NULL, 300, CK_KU_AP_REQ_AUTH,
                           &res) != 0);
    code = res.krb_error;
    ck_ap_req_result_clear(&res);
    return code;
}

static void
test_failures(void)
{
    struct fixture f;
    uint8_t *der = NULL;
    size_t len = 0;
    int64_t now;
    int32_t usec;
    ck_key wrong;
    CK_AP_REQ *req = NULL;

    ck_now(&now, &usec);
    fixture_up(&f, CK_ENCTYPE_AES128_CTS_HMAC_SHA256_128, now - 10, now + 3600);

    /* Skewed authenticator. */
    build_custom(&f, now - 1000, "alice", &der, &len);
    CHECK_INT_EQ(verify_code(&f, der, len, &f.service_key), CK_KRB_AP_ERR_SKEW);
    ck_asn1_free_der(der, len);
    build_custom(&f, now + 1000, "alice", &der, &len);
    CHECK_INT_EQ(verify_code(&f, der, len, &f.service_key), CK_KRB_AP_ERR_SKEW);
    ck_asn1_free_der(der, len);

    /* Authenticator client differs from the ticket's. */
    build_custom(&f, now, "mallory", &der, &len);
    CHECK_INT_EQ(verify_code(&f, der, len, &f.service_key), CK_KRB_AP_ERR_BADMATCH);
    ck_asn1_free_der(der, len);

    /* Wrong service key -> ticket integrity. */
    build_custom(&f, now, "alice", &der, &len);
    CHECK_OK(ck_random_key(CK_ENCTYPE_AES128_CTS_HMAC_SHA256_128, &wrong));
    CHECK_INT_EQ(verify_code(&f, der, len, &wrong), CK_KRB_AP_ERR_BAD_INTEGRITY);
    /* No key of that enctype. */
    CHECK_OK(ck_random_key(CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, &wrong));
    CHECK_INT_EQ(verify_code(&f, der, len, &wrong), CK_KRB_AP_ERR_NOKEY);

    /* Tampered authenticator ciphertext. */
    CHECK_OK(ck_asn1_ap_req_decode(der, len, &req));
    ck_asn1_free_der(der, len);
    der = NULL;
    if (req != NULL) {
        req->authenticator->cipher->data[5] ^= 1;
        CHECK_OK(ck_asn1_ap_req_encode(req, &der, &len));
        CHECK_INT_EQ(verify_code(&f, der, len, &f.service_key), CK_KRB_AP_ERR_MODIFIED);
        ck_asn1_free_der(der, len);
        der = NULL;
        /* Unknown kvno. */
        req->authenticator->cipher->data[5] ^= 1;
        CHECK_OK(ck_asn1_uint32_set(&req->ticket->enc_part->kvno, 9));
        CHECK_OK(ck_asn1_ap_req_encode(req, &der, &len));
        CHECK_INT_EQ(verify_code(&f, der, len, &f.service_key), CK_KRB_AP_ERR_BADKEYVER);
        ck_asn1_free_der(der, len);
        der = NULL;
    }
    CK_AP_REQ_free(req);

    /* Not an AP-REQ, garbage, truncations. */
    build_custom(&f, now, "alice", &der, &len);
    for (size_t i = 0; i < len; i++) {
        ck_ap_req_result res;

        CHECK(ck_ap_req_verify(der, i, key_fn, &f.service_key, NULL, NULL, 300,
                               CK_KU_AP_REQ_AUTH, &res) != 0);
        CHECK(res.krb_error != 0);
        ck_ap_req_result_clear(&res);
    }
    der[0] = 0x6a;
    CHECK_INT_EQ(verify_code(&f, der, len, &f.service_key), CK_KRB_AP_ERR_MSG_TYPE);
    ck_asn1_free_der(der, len);
    fixture_down(&f);

    /* Expired ticket; ticket not yet valid. */
    fixture_up(&f, CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, now - 7200, now - 3600);
    build_custom(&f, now, "alice", &der, &len);
    CHECK_INT_EQ(verify_code(&f, der, len, &f.service_key), CK_KRB_AP_ERR_TKT_EXPIRED);
    ck_asn1_free_der(der, len);
    fixture_down(&f);
    fixture_up(&f, CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, now + 3600, now + 7200);
    build_custom(&f, now, "alice", &der, &len);
    CHECK_INT_EQ(verify_code(&f, der, len, &f.service_key), CK_KRB_AP_ERR_TKT_NYV);
    ck_asn1_free_der(der, len);
    fixture_down(&f);
}

static void
test_keytab_key_fn(void)
{
    struct fixture f;
    ck_keytab *kt = NULL;
    ck_principal *p = NULL;
    ck_ap_req_result res;
    uint8_t *der = NULL;
    size_t len = 0;
    int64_t now;
    int32_t usec;

    ck_now(&now, &usec);
    fixture_up(&f, CK_ENCTYPE_AES256_CTS_HMAC_SHA384_192, now, now + 3600);
    CHECK_OK(ck_keytab_new(&kt));
    CHECK_OK(ck_principal_parse("host/svc@" REALM, NULL, 0, &p));
    CHECK_OK(ck_keytab_add(kt, p, 3, 0, &f.service_key));
    CHECK_OK(ck_ap_req_build(f.ticket, &f.session_key, REALM, f.client, 0, NULL,
                             CK_KU_AP_REQ_AUTH, NULL, NULL, NULL, NULL, &der, &len));
    CHECK_OK(ck_ap_req_verify(der, len, ck_ap_keytab_key_fn, kt, NULL, NULL, 300,
                              CK_KU_AP_REQ_AUTH, &res));
    CHECK(!res.has_subkey && !res.has_seq_number);
    ck_ap_req_result_clear(&res);
    ck_keytab_free(kt);
    /* Same principal, other kvno only -> BADKEYVER. */
    CHECK_OK(ck_keytab_new(&kt));
    CHECK_OK(ck_keytab_add(kt, p, 4, 0, &f.service_key));
    CHECK(ck_ap_req_verify(der, len, ck_ap_keytab_key_fn, kt, NULL, NULL, 300, CK_KU_AP_REQ_AUTH,
                           &res) != 0);
    CHECK_INT_EQ(res.krb_error, CK_KRB_AP_ERR_BADKEYVER);
    ck_ap_req_result_clear(&res);
    ck_keytab_free(kt);
    ck_principal_free(p);
    ck_asn1_free_der(der, len);
    fixture_down(&f);
}

static void
test_ap_rep(void)
{
    for (size_t i = 0; i < sizeof(enctypes) / sizeof(enctypes[0]); i++) {
        ck_key session, subkey, wrong;
        ck_ap_rep_result res;
        uint8_t *der = NULL;
        size_t len = 0;
        uint32_t seq = 7;

        CHECK_OK(ck_random_key(enctypes[i], &session));
        CHECK_OK(ck_random_key(enctypes[i], &subkey));
        CHECK_OK(ck_random_key(enctypes[i], &wrong));
        CHECK_OK(ck_ap_rep_build(&session, 1700000000, 123456, &subkey, &seq, &der, &len));
        CHECK_OK(ck_ap_rep_verify(der, len, &session, 1700000000, 123456, &res));
        CHECK(res.has_subkey && res.has_seq_number);
        CHECK_INT_EQ(res.seq_number, 7);
        CHECK_MEM_EQ(res.subkey.contents, res.subkey.length, subkey.contents, subkey.length);
        ck_ap_rep_result_clear(&res);
        CHECK(ck_ap_rep_verify(der, len, &session, 1700000000, 123457, &res) != 0);
        CHECK_INT_EQ(res.krb_error, CK_KRB_AP_ERR_MUT_FAIL);
        CHECK(!res.has_subkey);
        ck_ap_rep_result_clear(&res);
        CHECK(ck_ap_rep_verify(der, len, &wrong, 1700000000, 123456, &res) != 0);
        CHECK_INT_EQ(res.krb_error, CK_KRB_AP_ERR_MODIFIED);
        ck_ap_rep_result_clear(&res);
        ck_asn1_free_der(der, len);
        CHECK_OK(ck_ap_rep_build(&session, 1700000000, 0, NULL, NULL, &der, &len));
        CHECK_OK(ck_ap_rep_verify(der, len, &session, 1700000000, 0, &res));
        CHECK(!res.has_subkey && !res.has_seq_number);
        ck_asn1_free_der(der, len);
    }
}

static void
test_rcache(void)
{
    ck_rcache *rc = NULL;
    const uint8_t c1[] = {1, 2, 3}, c2[] = {1, 2, 4};

    CHECK(ck_rcache_new(3, 0, &rc) != 0);
    CHECK_OK(ck_rcache_new(3, 10, &rc));
    CHECK_OK(ck_rcache_check_and_store(rc, "a@R", "s@R", 100, 1, c1, 3, 1000));
    CHECK_INT_EQ(ck_rcache_check_and_store(rc, "a@R", "s@R", 100, 1, c1, 3, 1001), CK_ERR_REPLAY);
    /* Any field differing is a different entry. */
    CHECK_OK(ck_rcache_check_and_store(rc, "a@R", "s@R", 100, 1, c2, 3, 1001));
    CHECK_OK(ck_rcache_check_and_store(rc, "b@R", "s@R", 100, 1, c1, 3, 1001));
    CHECK_INT_EQ(ck_rcache_count(rc), 3);
    /* Bound: with three unexpired entries a fourth is refused, and not stored... */
    CHECK_INT_EQ(ck_rcache_check_and_store(rc, "a@R", "t@R", 100, 1, c1, 3, 1002), CK_ERR_FULL);
    CHECK_INT_EQ(ck_rcache_count(rc), 3);
    /* ...while the stored ones are still caught as replays (never evicted to make room). */
    CHECK_INT_EQ(ck_rcache_check_and_store(rc, "a@R", "s@R", 100, 1, c1, 3, 1002), CK_ERR_REPLAY);
    CHECK_INT_EQ(ck_rcache_check_and_store(rc, "b@R", "s@R", 100, 1, c1, 3, 1010), CK_ERR_REPLAY);
    /* (a, c1) expires at 1010, the other two at 1011: one slot comes free. */
    CHECK_OK(ck_rcache_check_and_store(rc, "a@R", "t@R", 100, 1, c1, 3, 1010));
    CHECK_INT_EQ(ck_rcache_count(rc), 3);
    CHECK_INT_EQ(ck_rcache_check_and_store(rc, "a@R", "u@R", 100, 1, c1, 3, 1010), CK_ERR_FULL);
    CHECK_INT_EQ(ck_rcache_check_and_store(rc, "a@R", "t@R", 100, 1, c1, 3, 1011), CK_ERR_REPLAY);
    /* Expiry after the lifetime frees everything: accepted again. */
    CHECK_OK(ck_rcache_check_and_store(rc, "a@R", "t@R", 100, 1, c1, 3, 1020));
    CHECK_INT_EQ(ck_rcache_count(rc), 1);
    CHECK_OK(ck_rcache_check_and_store(rc, "a@R", "s@R", 100, 1, c1, 3, 1020));
    CHECK_OK(ck_rcache_check_and_store(rc, "a@R", "u@R", 100, 1, c1, 3, 1020));
    CHECK_INT_EQ(ck_rcache_count(rc), 3);
    ck_rcache_free(rc);

    /* A clock stepped back: the later entry keeps the expiry order (lives longer, not shorter),
     * so it is still a replay when the first one has expired. */
    CHECK_OK(ck_rcache_new(2, 10, &rc));
    CHECK_OK(ck_rcache_check_and_store(rc, "a@R", "s@R", 100, 1, c1, 3, 1000));
    CHECK_OK(ck_rcache_check_and_store(rc, "a@R", "s@R", 100, 1, c2, 3, 995));
    CHECK_INT_EQ(ck_rcache_check_and_store(rc, "a@R", "s@R", 100, 1, c2, 3, 1009), CK_ERR_REPLAY);
    CHECK_OK(ck_rcache_check_and_store(rc, "b@R", "s@R", 100, 1, c1, 3, 1010));
    CHECK_INT_EQ(ck_rcache_count(rc), 1);
    ck_rcache_free(rc);

    /* A larger cache under load: full at 1000, every later new entry refused, none evicted. */
    CHECK_OK(ck_rcache_new(1000, 60, &rc));
    for (uint32_t i = 0; i < 5000; i++) {
        uint8_t c[4] = {(uint8_t)(i >> 24), (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i};
        CHECK_INT_EQ(ck_rcache_check_and_store(rc, "a@R", "s@R", 1, 2, c, 4, 100),
                     i < 1000 ? 0 : CK_ERR_FULL);
    }
    CHECK_INT_EQ(ck_rcache_count(rc), 1000);
    for (uint32_t i = 0; i < 1000; i += 111) {
        uint8_t c[4] = {(uint8_t)(i >> 24), (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i};
        CHECK_INT_EQ(ck_rcache_check_and_store(rc, "a@R", "s@R", 1, 2, c, 4, 159),
                     CK_ERR_REPLAY);
    }
    {
        uint8_t c[4] = {0, 0, 0x13, 0x87}; /* 4999: refused above, so still not stored */
        CHECK_INT_EQ(ck_rcache_check_and_store(rc, "a@R", "s@R", 1, 2, c, 4, 100),
                     CK_ERR_FULL);
        /* All 1000 expire at 160: accepted again. */
        CHECK_OK(ck_rcache_check_and_store(rc, "a@R", "s@R", 1, 2, c, 4, 160));
        CHECK_INT_EQ(ck_rcache_count(rc), 1);
    }
    ck_rcache_free(rc);
    ck_rcache_free(NULL);
}

static void
test_enc_data(void)
{
    CK_ENCRYPTED_DATA *ed = CK_ENCRYPTED_DATA_new();
    ck_key k, k2;
    uint8_t *plain = NULL;
    size_t len = 0;
    uint32_t kvno = 5;

    CHECK_OK(ck_random_key(CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96, &k));
    CHECK_OK(ck_random_key(CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, &k2));
    CHECK_OK(ck_enc_data_seal(ed, &k, 3, &kvno, (const uint8_t *)"hello", 5));
    CHECK_INT_EQ(ed->etype, CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96);
    CHECK_INT_EQ(ck_asn1_uint32_get(ed->kvno, 0), 5);
    CHECK_OK(ck_enc_data_open(ed, &k, 3, &plain, &len));
    CHECK_MEM_EQ(plain, len, "hello", 5);
    ck_free_secret(plain, len);
    CHECK_INT_EQ(ck_enc_data_open(ed, &k, 4, &plain, &len), CK_ERR_INTEGRITY);
    CHECK_INT_EQ(ck_enc_data_open(ed, &k2, 3, &plain, &len), CK_ERR_UNSUPPORTED);
    CHECK(plain == NULL);
    CHECK_OK(ck_enc_data_seal(ed, &k, 3, NULL, NULL, 0));
    CHECK(ed->kvno == NULL);
    CHECK_OK(ck_enc_data_open(ed, &k, 3, &plain, &len));
    CHECK_INT_EQ(len, 0);
    ck_free_secret(plain, len);
    CK_ENCRYPTED_DATA_free(ed);
}

CK_TEST_MAIN("ap", CK_TEST_CASE(test_ticket_seal_open), CK_TEST_CASE(test_roundtrip_all_enctypes),
             CK_TEST_CASE(test_failures), CK_TEST_CASE(test_keytab_key_fn),
             CK_TEST_CASE(test_ap_rep), CK_TEST_CASE(test_rcache), CK_TEST_CASE(test_enc_data))
