/* cablekey-cms KMM and the restricted-calls authorization data (prov_ad.h): a ticket carrying
 * the element keys an SA that remembers the restriction; a malformed element is refused with
 * KDC_ERR_POLICY (a restriction the controller cannot read is not "no restriction"). */
#include "ck_test.h"
#include "cms_fixture.h"
#include "cablekey/prov_ad.h"

#include <time.h>

#define PEER "192.0.2.10"

/* fx_ticket with authorization data (taken). */
static int
ticket_with_ad(struct fx *f, int64_t now, CK_AUTHORIZATION_DATA *ad, CK_TICKET **out)
{
    static const char *const svc[] = {"cms", "cms1.test"};
    static const char *const cli[] = {FX_CLIENT};
    CK_ENC_TICKET_PART *etp = CK_ENC_TICKET_PART_new();
    CK_TICKET *t = CK_TICKET_new();
    int rc = CK_ERR_NOMEM;

    *out = NULL;
    if (etp == NULL || t == NULL)
        goto out;
    etp->authorization_data = ad;
    ad = NULL;
    if ((rc = ck_asn1_flags_set(&etp->flags, 0)) != 0 ||
        (rc = ck_key_to_asn1(&f->session_key, &etp->key)) != 0 ||
        (rc = ck_asn1_kstring_set(&etp->crealm, FX_REALM)) != 0 ||
        (rc = ck_asn1_principal_set(etp->cname, CK_NT_PRINCIPAL, cli, 1)) != 0)
        goto out;
    etp->transited->tr_type = 1;
    if ((rc = ck_asn1_time_set(&etp->authtime, now - 60)) != 0 ||
        (rc = ck_asn1_time_set(&etp->endtime, now + 36000)) != 0 ||
        (rc = ck_asn1_kstring_set(&t->realm, FX_REALM)) != 0 ||
        (rc = ck_asn1_principal_set(t->sname, CK_NT_SRV_INST, svc, 2)) != 0 ||
        (rc = ck_ticket_seal(t, etp, &f->service_key, FX_KVNO)) != 0)
        goto out;
    *out = t;
    t = NULL;
out:
    CK_AUTHORIZATION_DATA_free(ad);
    CK_ENC_TICKET_PART_free(etp);
    CK_TICKET_free(t);
    return rc;
}

static size_t
handle(struct fx *f, const uint8_t *req, size_t len, uint8_t *reply, size_t cap)
{
    struct sockaddr_in sin;
    size_t reply_len = 99;
    char line[768];

    fx_peer(&sin, PEER, 40000);
    CHECK_OK(cms_kmm_handle(&f->s, req, len, (struct sockaddr *)&sin, NULL, reply, cap,
                            &reply_len, line, sizeof(line)));
    return reply_len;
}

static int
error_code(const uint8_t *reply, size_t len)
{
    CK_KRB_ERROR_MSG *e = NULL;
    int code;

    if (len < 4 || reply[0] != CK_KMM_ERROR_REPLY)
        return -1;
    if (ck_asn1_krb_error_decode(reply + 3, len - 3, &e) != 0)
        return -1;
    code = e->error_code;
    CK_KRB_ERROR_MSG_free(e);
    return code;
}

static int
find_restricted(struct cms_sa *sa, void *arg)
{
    ck_ad_restricted *r = arg;

    if (sa->restriction == NULL)
        return CK_ERR_NOTFOUND;
    *r = *sa->restriction;
    return 0;
}

static void
test_restricted_ticket_keys_restricted_sa(void)
{
    int64_t now = (int64_t)time(NULL);
    struct fx f;
    struct fx_req q = {0};
    CK_AUTHORIZATION_DATA *ad = NULL;
    ck_ad_restricted r, got;
    uint8_t req[4096], reply[4096];
    size_t len = 0, rl;
    uint32_t spi;
    CK_TICKET *t = NULL;

    CHECK_OK(fx_up(&f, NULL, now));
    memset(&r, 0, sizeof(r));
    memcpy(r.mac, "\x00\x11\x22\x33\x44\x55", 6);
    r.n_numbers = 2;
    ck_strlcpy(r.numbers[0], "611", sizeof(r.numbers[0]));
    ck_strlcpy(r.numbers[1], "911", sizeof(r.numbers[1]));
    CHECK_OK(ck_ad_restricted_add(&ad, &r));
    CHECK_OK(ticket_with_ad(&f, now, ad, &t));
    q.ticket = t;
    q.spi = 0x3333;
    CHECK_OK(fx_apreq(&f, &q, req, sizeof(req), &len));
    rl = handle(&f, req, len, reply, sizeof(reply));
    CHECK(rl > 0 && reply[0] == CK_KMM_AP_REP);
    CHECK_INT_EQ(cms_sa_table_count(f.s.sas), 1);
    {
        struct cms_addr ep;
        struct sockaddr_in sin;

        fx_peer(&sin, PEER, 40000);
        CHECK_OK(cms_addr_from_sockaddr((struct sockaddr *)&sin, &ep));
        spi = cms_sa_table_newest(f.s.sas, &ep);
    }
    CHECK(spi != 0);
    memset(&got, 0, sizeof(got));
    CHECK_OK(cms_sa_table_with(f.s.sas, spi, find_restricted, &got));
    CHECK_INT_EQ(got.n_numbers, 2);
    CHECK(ck_ad_restricted_allows(&got, "611") && !ck_ad_restricted_allows(&got, "5551234"));
    CHECK_MEM_EQ(got.mac, 6, r.mac, 6);
    CK_TICKET_free(t);
    q.ticket = NULL;

    /* A malformed element (garbage ad-data under the restricted ad-type): refused. */
    {
        CK_AD_ENTRY *e = CK_AD_ENTRY_new();

        CHECK((ad = sk_CK_AD_ENTRY_new_null()) != NULL && e != NULL);
        e->ad_type = CK_AD_CABLEKEY_RESTRICTED;
        CHECK(ASN1_OCTET_STRING_set(e->ad_data, (const unsigned char *)"\x30\x03\x02\x01", 4));
        CHECK(sk_CK_AD_ENTRY_push(ad, e) > 0);
    }
    CHECK_OK(ticket_with_ad(&f, now, ad, &t));
    q.ticket = t;
    q.spi = 0x4444;
    CHECK_OK(fx_apreq(&f, &q, req, sizeof(req), &len));
    rl = handle(&f, req, len, reply, sizeof(reply));
    CHECK_INT_EQ(error_code(reply, rl), CK_KDC_ERR_POLICY);
    CHECK_INT_EQ(cms_sa_table_count(f.s.sas), 1);
    CK_TICKET_free(t);
    fx_down(&f);
}

CK_TEST_MAIN("cms_prov_kmm", CK_TEST_CASE(test_restricted_ticket_keys_restricted_sa))
