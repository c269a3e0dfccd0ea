/* The KDC protocol core in-process (no sockets): AS and TGS exchanges against a realm in a
 * temporary directory, error paths, lookaside, size rules, hostile input, and the real MIT
 * captures in tests/vectors/mit/.
 * Unit tests link cablekey_kdc_core (daemons/kdc without main.c). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/net.h"
#include "cablekey/util.h"
#include "kdc_int.h"

#include <time.h>

#include "ck_test.h"
#include "cablekey/log.h"
#include "pg_fixture.h"

#define REALM "TEST.REALM"
#define TGS_NAME "krbtgt/TEST.REALM@TEST.REALM"
#define ALICE_PW "alicepw"

static const int32_t all_enctypes[] = {
    CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96,
    CK_ENCTYPE_AES256_CTS_HMAC_SHA384_192, CK_ENCTYPE_AES128_CTS_HMAC_SHA256_128};
#define N_ENCTYPES (sizeof(all_enctypes) / sizeof(all_enctypes[0]))

static char dir[64], db[128], stash[128];
static ck_store *tstore;  /* the test's own connection (reads keys, changes principals) */
static uint8_t reply[65536];

/* ---- realm fixture --------------------------------------------------------------------- */

static void
put_princ(const char *name, const char *pw, uint32_t kvno, uint32_t attrs, int64_t expires,
          int64_t max_life)
{
    ck_db_principal *p = NULL;

    CHECK_OK(ck_db_principal_new(name, &p));
    if (p == NULL)
        abort();
    p->kvno = kvno;
    p->attributes = attrs;
    p->expires = expires;
    p->max_life = max_life;
    CHECK_OK(ck_db_keys_make(name, pw, pw ? strlen(pw) : 0, all_enctypes, N_ENCTYPES, kvno,
                             &p->keys, &p->n_keys));
    CHECK_OK(ck_store_put_principal(tstore, p));
    ck_db_principal_free(p);
}

static void
realm_up(void)
{
    int64_t now;
    int32_t usec;

    if (tstore != NULL)
        return;
    ck_log_set_level(LOG_WARNING);
    ck_strlcpy(dir, "/tmp/ck-kdc-XXXXXX", sizeof(dir));
    if (mkdtemp(dir) == NULL)
        abort();
    snprintf(db, sizeof(db), "%s/kdc.db", dir);
    snprintf(stash, sizeof(stash), "%s/kdc.db.stash", dir);
    ck_test_store_location(db, sizeof(db)); /* PostgreSQL mode: pg_fixture.h */
    CHECK_OK(ck_store_init_realm(db, stash, REALM, all_enctypes, N_ENCTYPES, 0, 0));
    CHECK_OK(ck_store_open(db, stash, 0, &tstore));
    if (tstore == NULL)
        abort();
    ck_now(&now, &usec);
    /* The same names, passwords and kvnos as the MIT captures (tests/vectors/mit/README.md). */
    put_princ(TGS_NAME, "tgtpw", 2, 0, 0, 0);
    put_princ("alice@" REALM, ALICE_PW, 1, CK_ATTR_REQUIRES_PREAUTH, 0, 0);
    put_princ("host/server.test.realm@" REALM, "servicepw", 1, 0, 0, 0);
    put_princ("host/svc@" REALM, "svcpw", 1, 0, 0, 3600);
    put_princ("nopre@" REALM, "noprepw", 1, 0, 0, 0);
    put_princ("old@" REALM, "oldpw", 1, 0, now - 10, 0);
    put_princ("locked@" REALM, "lockedpw", 1, CK_ATTR_DISALLOW_ALL_TIX, 0, 0);
    put_princ("nofwd@" REALM, "nofwdpw", 1, CK_ATTR_DISALLOW_FORWARDABLE, 0, 0);
}

static void
realm_down(void)
{
    char cmd[128];

    ck_store_close(tstore);
    tstore = NULL;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "  could not remove %s\n", dir);
}

/* The daemon's defaults, pointed at the test realm's database. */
static void
config_defaults(struct kdc_config *cfg)
{
    kdc_config_defaults(cfg);
    cfg->db_path = db;
    cfg->stash_path = stash;
}

static struct kdc_worker *
worker_with(const struct kdc_config *cfg)
{
    struct kdc_worker *w = NULL;

    CHECK_OK(kdc_worker_new(cfg, &w));
    if (w == NULL)
        abort();
    /* See other connections' changes at once (key rotation test). */
    w->cache_check_ms = 0;
    ck_store_cache_configure(w->store, w->cache_max, 0);
    return w;
}

static struct kdc_worker *
worker(void)
{
    struct kdc_config cfg;

    config_defaults(&cfg);
    return worker_with(&cfg);
}

static size_t
ask(struct kdc_worker *w, const uint8_t *req, size_t len, enum kdc_transport t)
{
    struct sockaddr_in sin;
    struct ck_peer peer;
    size_t n = 0;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(0x7f000001);
    ck_peer_set(&peer, (const struct sockaddr *)&sin, sizeof(sin));
    CHECK_OK(kdc_handle_request(w, req, len, t, &peer, reply, sizeof(reply),
                                &n));
    return n;
}

/* KRB-ERROR code of the reply, or -1 if it is not a KRB-ERROR. */
static int
error_code(const uint8_t *r, size_t len, CK_KRB_ERROR_MSG **keep)
{
    CK_KRB_ERROR_MSG *e = NULL;
    int code;

    if (ck_asn1_krb_error_decode(r, len, &e) != 0)
        return -1;
    code = e->error_code;
    if (keep != NULL)
        *keep = e;
    else
        CK_KRB_ERROR_MSG_free(e);
    return code;
}

static void
password_key(const char *salt, const char *pw, int32_t etype, ck_key *key)
{
    CHECK_OK(ck_string_to_key(etype, pw, strlen(pw), (const uint8_t *)salt, strlen(salt), NULL,
                              0, key));
}

/* ---- client-side builders -------------------------------------------------------------- */

struct as_opts {
    const char *cname, *sname;
    uint32_t kdc_options;
    int64_t till, rtime;        /* absolute; 0 = till "infinite" / rtime absent */
    const ck_key *ts_key;       /* PA-ENC-TIMESTAMP key, NULL = none */
    int64_t ts_offset;          /* added to now in the timestamp */
    uint32_t nonce;
    const int32_t *etypes;
    size_t n_etypes;
};

static void
build_as_req(const struct as_opts *o, uint8_t **der, size_t *len)
{
    CK_AS_REQ *req = CK_AS_REQ_new();
    CK_KDC_REQ_BODY *b = req->req_body;
    ASN1_GENERALSTRING *realm = NULL;
    int64_t now;
    int32_t usec;

    ck_now(&now, &usec);
    req->pvno = 5;
    req->msg_type = CK_KRB_AS_REQ;
    CHECK_OK(ck_asn1_flags_set(&b->kdc_options, o->kdc_options));
    CHECK_OK(ck_asn1_principal_parse(o->cname, CK_NT_PRINCIPAL, &b->cname, &realm));
    ASN1_STRING_free(realm);
    realm = NULL;
    CHECK_OK(ck_asn1_principal_parse(o->sname, CK_NT_SRV_INST, &b->sname, &realm));
    ASN1_STRING_free(realm);
    CHECK_OK(ck_asn1_kstring_set(&b->realm, REALM));
    CHECK_OK(ck_asn1_time_set(&b->till, o->till));
    if (o->rtime != 0)
        CHECK_OK(ck_asn1_time_set(&b->rtime, o->rtime));
    CHECK_OK(ck_asn1_nonce_set(&b->nonce, o->nonce ? o->nonce : 0x12345678u));
    if (o->etypes != NULL)
        CHECK_OK(ck_asn1_etypes_set(b, o->etypes, o->n_etypes));
    else
        CHECK_OK(ck_asn1_etypes_set(b, all_enctypes, N_ENCTYPES));
    if (o->ts_key != NULL) {
        CK_PA_ENC_TS_ENC *ts = CK_PA_ENC_TS_ENC_new();
        CK_ENCRYPTED_DATA *ed = CK_ENCRYPTED_DATA_new();
        uint8_t *plain = NULL, *edder = NULL;
        size_t plain_len = 0, edlen = 0;

        CHECK_OK(ck_asn1_time_set(&ts->patimestamp, now + o->ts_offset));
        CHECK_OK(ck_asn1_int32_set(&ts->pausec, usec));
        CHECK_OK(ck_asn1_pa_enc_ts_enc_encode(ts, &plain, &plain_len));
        CHECK_OK(ck_enc_data_seal(ed, o->ts_key, CK_KU_PA_ENC_TS, NULL, plain, plain_len));
        CHECK_OK(ck_asn1_encrypted_data_encode(ed, &edder, &edlen));
        CHECK_OK(ck_asn1_padata_add(&req->padata, CK_PA_ENC_TIMESTAMP, edder, edlen));
        ck_asn1_free_der(plain, plain_len);
        ck_asn1_free_der(edder, edlen);
        CK_PA_ENC_TS_ENC_free(ts);
        CK_ENCRYPTED_DATA_free(ed);
    }
    CHECK_OK(ck_asn1_as_req_encode(req, der, len));
    CK_AS_REQ_free(req);
}

/* A decrypted KDC reply. */
struct creds {
    CK_KDC_REP *rep;
    CK_ENC_KDC_REP_PART *part;
    ck_key session;
    uint32_t flags;
    int64_t authtime, endtime, renew_till;
};

static void
creds_free(struct creds *c)
{
    CK_KDC_REP_free(c->rep);
    CK_ENC_KDC_REP_PART_free(c->part);
    memset(c, 0, sizeof(*c));
}

/* Decodes and decrypts a KDC-REP; returns false (and checks) on failure. */
static bool
open_rep(const uint8_t *r, size_t len, const ck_key *key, int32_t usage, int want_tag,
         struct creds *c)
{
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    int tag = 0, app = 0;

    memset(c, 0, sizeof(*c));
    if (ck_asn1_kdc_rep_decode(r, len, &c->rep, &app) != 0) {
        fprintf(stderr, "  reply is not a KDC-REP (error %d)\n", error_code(r, len, NULL));
        CHECK(0);
        return false;
    }
    CHECK_INT_EQ(app, want_tag == CK_KRB_ENC_AS_REP_PART ? CK_KRB_AS_REP : CK_KRB_TGS_REP);
    CHECK_OK(ck_enc_data_open(c->rep->enc_part, key, usage, &plain, &plain_len));
    if (plain == NULL)
        return false;
    CHECK_OK(ck_asn1_enc_kdc_rep_part_decode(plain, plain_len, &c->part, &tag));
    ck_free_secret(plain, plain_len);
    if (c->part == NULL)
        return false;
    CHECK_INT_EQ(tag, want_tag);
    CHECK_OK(ck_key_from_asn1(&c->session, c->part->key));
    CHECK_OK(ck_asn1_flags_get(c->part->flags, &c->flags));
    CHECK_OK(ck_asn1_time_get(c->part->authtime, &c->authtime));
    CHECK_OK(ck_asn1_time_get(c->part->endtime, &c->endtime));
    CHECK_OK(ck_asn1_time_get_opt(c->part->renew_till, 0, &c->renew_till));
    return true;
}

/* Decrypts a ticket with the stored key of its server. */
static CK_ENC_TICKET_PART *
open_ticket(const CK_TICKET *t, const char *server)
{
    ck_db_principal *p = NULL;
    const ck_db_key *k;
    CK_ENC_TICKET_PART *etp = NULL;

    CHECK_OK(ck_store_get_principal(tstore, server, &p));
    if (p == NULL)
        return NULL;
    k = ck_db_principal_find_key(p, ck_asn1_uint32_get(t->enc_part->kvno, 0),
                                 t->enc_part->etype);
    CHECK(k != NULL);
    if (k != NULL)
        CHECK_OK(ck_ticket_open(t, &k->key, &etp));
    ck_db_principal_free(p);
    return etp;
}

/* AS exchange for alice with her password; fills c. */
static bool
get_tgt(struct kdc_worker *w, uint32_t options, int64_t rtime, struct creds *c)
{
    ck_key k;
    struct as_opts o = {.cname = "alice", .sname = "krbtgt/" REALM, .kdc_options = options,
                        .ts_key = &k, .rtime = rtime};
    uint8_t *der = NULL;
    size_t len = 0, n;
    bool ok;

    password_key("TEST.REALMalice", ALICE_PW, CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, &k);
    build_as_req(&o, &der, &len);
    n = ask(w, der, len, KDC_TRANSPORT_TCP);
    ok = open_rep(reply, n, &k, CK_KU_AS_REP_ENCPART, CK_KRB_ENC_AS_REP_PART, c);
    ck_asn1_free_der(der, len);
    return ok;
}

struct tgs_opts {
    const char *sname;
    uint32_t kdc_options;
    int64_t till;
    const ck_key *subkey;
    bool no_checksum, tamper;
    const CK_TICKET *ticket;    /* NULL = the TGT in creds */
};

static void
build_tgs_req(const struct creds *tgt, const struct tgs_opts *o, uint8_t **der, size_t *len)
{
    CK_TGS_REQ *req = CK_TGS_REQ_new();
    CK_KDC_REQ_BODY *b = req->req_body;
    ASN1_GENERALSTRING *realm = NULL;
    CK_CHECKSUM *ck = NULL;
    const uint8_t *bder;
    size_t blen;
    uint8_t *ap = NULL;
    size_t aplen = 0;

    req->pvno = 5;
    req->msg_type = CK_KRB_TGS_REQ;
    CHECK_OK(ck_asn1_flags_set(&b->kdc_options, o->kdc_options));
    CHECK_OK(ck_asn1_principal_parse(o->sname, CK_NT_SRV_HST, &b->sname, &realm));
    ASN1_STRING_free(realm);
    CHECK_OK(ck_asn1_kstring_set(&b->realm, REALM));
    CHECK_OK(ck_asn1_time_set(&b->till, o->till));
    CHECK_OK(ck_asn1_nonce_set(&b->nonce, 0x2468aceu));
    CHECK_OK(ck_asn1_etypes_set(b, all_enctypes, N_ENCTYPES));
    CHECK_OK(ck_asn1_kdc_req_body_der(req, &bder, &blen));
    if (!o->no_checksum)
        CHECK_OK(ck_checksum_new(&tgt->session, 0, CK_KU_TGS_REQ_AUTH_CKSUM, bder, blen, &ck));
    CHECK_OK(ck_ap_req_build(o->ticket ? o->ticket : tgt->rep->ticket, &tgt->session, REALM,
                             tgt->rep->cname, 0, ck, CK_KU_TGS_REQ_AUTH, o->subkey, NULL, NULL,
                             NULL, &ap, &aplen));
    CHECK_OK(ck_asn1_padata_add(&req->padata, CK_PA_TGS_REQ, ap, aplen));
    if (o->tamper) {
        CHECK_OK(ck_asn1_nonce_set(&b->nonce, 0x1111u));
        ck_asn1_kdc_req_body_modified(b);
    }
    CHECK_OK(ck_asn1_tgs_req_encode(req, der, len));
    ck_asn1_free_der(ap, aplen);
    CK_CHECKSUM_free(ck);
    CK_TGS_REQ_free(req);
}

/* ---- AS tests ---------------------------------------------------------------------------- */

static void
test_as_preauth_required(void)
{
    struct kdc_worker *w;
    struct as_opts o = {.cname = "alice", .sname = "krbtgt/" REALM};
    CK_KRB_ERROR_MSG *e = NULL;
    CK_METHOD_DATA *md = NULL;
    CK_ETYPE_INFO2 *info = NULL;
    const CK_PA_DATA *pa;
    uint8_t *der = NULL;
    size_t len = 0, n;

    realm_up();
    w = worker();
    build_as_req(&o, &der, &len);
    n = ask(w, der, len, KDC_TRANSPORT_UDP);
    CHECK_INT_EQ(error_code(reply, n, &e), CK_KDC_ERR_PREAUTH_REQUIRED);
    if (e != NULL) {
        CHECK(ck_asn1_kstring_eq(e->e_text, "NEEDED_PREAUTH"));
        CHECK(e->e_data != NULL);
        if (e->e_data != NULL)
            CHECK_OK(ck_asn1_method_data_decode(e->e_data->data, (size_t)e->e_data->length,
                                                &md));
        CHECK(ck_asn1_padata_find(md, CK_PA_ENC_TIMESTAMP) != NULL);
        pa = ck_asn1_padata_find(md, CK_PA_ETYPE_INFO2);
        CHECK(pa != NULL);
        if (pa != NULL) {
            CHECK_OK(ck_asn1_etype_info2_decode(pa->padata_value->data,
                                                (size_t)pa->padata_value->length, &info));
            CHECK_INT_EQ(sk_CK_ETYPE_INFO2_ENTRY_num(info), 1);
            if (info != NULL) {
                CK_ETYPE_INFO2_ENTRY *ent = sk_CK_ETYPE_INFO2_ENTRY_value(info, 0);
                CHECK_INT_EQ(ent->etype, CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96);
                CHECK(ck_asn1_kstring_eq(ent->salt, "TEST.REALMalice"));
                CHECK(ent->s2kparams == NULL);
            }
        }
        CHECK(ck_asn1_kstring_eq(e->realm, REALM));
    }
    CK_ETYPE_INFO2_free(info);
    CK_METHOD_DATA_free(md);
    CK_KRB_ERROR_MSG_free(e);
    ck_asn1_free_der(der, len);
    kdc_worker_free(w);
}

static void
test_as_issue(void)
{
    struct kdc_worker *w = worker();
    struct creds c;
    CK_ENC_TICKET_PART *etp;
    int64_t now, st;
    int32_t usec;
    uint32_t nonce = 0, tflags = 0;

    ck_now(&now, &usec);
    if (get_tgt(w, 0, 0, &c)) {
        CHECK_OK(ck_asn1_nonce_get(c.part->nonce, &nonce));
        CHECK_INT_EQ(nonce, 0x12345678u);
        CHECK_INT_EQ(c.flags, CK_TKT_FLG_INITIAL | CK_TKT_FLG_PRE_AUTHENT);
        CHECK(c.authtime >= now && c.authtime <= now + 2);
        /* till was "infinite": clamped to the realm default of 10 hours. */
        CHECK_INT_EQ(c.endtime - c.authtime, KDC_DEFAULT_MAX_LIFE);
        CHECK_INT_EQ(c.renew_till, 0);
        CHECK_INT_EQ(c.session.enctype, CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96);
        CHECK(ck_asn1_padata_find(c.rep->padata, CK_PA_ETYPE_INFO2) != NULL);
        CHECK(ck_asn1_kstring_eq(c.rep->crealm, REALM));
        CHECK(ck_asn1_kstring_eq(c.part->srealm, REALM));
        CHECK_INT_EQ(sk_CK_LAST_REQ_ENTRY_num(c.part->last_req), 1);
        etp = open_ticket(c.rep->ticket, TGS_NAME);
        CHECK(etp != NULL);
        if (etp != NULL) {
            ck_key k;
            CHECK_OK(ck_key_from_asn1(&k, etp->key));
            CHECK_MEM_EQ(k.contents, k.length, c.session.contents, c.session.length);
            CHECK_OK(ck_asn1_flags_get(etp->flags, &tflags));
            CHECK_INT_EQ(tflags, c.flags);
            CHECK_OK(ck_asn1_time_get(etp->starttime, &st));
            CHECK_INT_EQ(st, c.authtime);
            CHECK(ck_asn1_kstring_eq(etp->crealm, REALM));
            CHECK_INT_EQ(etp->transited->tr_type, 1);
            CHECK_INT_EQ(ck_asn1_uint32_get(c.rep->ticket->enc_part->kvno, 0), 2);
        }
        CK_ENC_TICKET_PART_free(etp);
    }
    creds_free(&c);

    /* Renewable + forwardable, with rtime beyond the cap. */
    if (get_tgt(w, CK_KDC_OPT_RENEWABLE | CK_KDC_OPT_FORWARDABLE, now + 30 * 86400, &c)) {
        CHECK_INT_EQ(c.flags, CK_TKT_FLG_INITIAL | CK_TKT_FLG_PRE_AUTHENT |
                                  CK_TKT_FLG_RENEWABLE | CK_TKT_FLG_FORWARDABLE);
        CHECK_INT_EQ(c.renew_till - c.authtime, KDC_DEFAULT_MAX_RENEW);
    }
    creds_free(&c);
    kdc_worker_free(w);
}

static void
test_as_lifetimes(void)
{
    struct kdc_worker *w = worker();
    struct creds c;
    ck_key k;
    int64_t now;
    int32_t usec;
    uint8_t *der = NULL;
    size_t len = 0, n;
    struct as_opts o = {.cname = "nopre", .sname = "host/svc"};

    ck_now(&now, &usec);
    password_key("TEST.REALMnopre", "noprepw", CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, &k);
    /* AS for a service with max_life 1h; no preauth needed or given. RENEWABLE-OK with a
     * till past the cap becomes renewable. */
    o.till = now + 7200;
    o.kdc_options = CK_KDC_OPT_RENEWABLE_OK;
    build_as_req(&o, &der, &len);
    n = ask(w, der, len, KDC_TRANSPORT_TCP);
    if (open_rep(reply, n, &k, CK_KU_AS_REP_ENCPART, CK_KRB_ENC_AS_REP_PART, &c)) {
        CHECK_INT_EQ(c.endtime - c.authtime, 3600);
        CHECK_INT_EQ(c.flags, CK_TKT_FLG_INITIAL | CK_TKT_FLG_RENEWABLE);
        CHECK_INT_EQ(c.renew_till, now + 7200);
        CHECK(ck_asn1_kstring_eq(sk_ASN1_GENERALSTRING_value(c.part->sname->name_string, 0),
                                 "host"));
    }
    creds_free(&c);
    ck_asn1_free_der(der, len);
    /* A short till wins. */
    o.till = now + 600;
    o.kdc_options = 0;
    build_as_req(&o, &der, &len);
    n = ask(w, der, len, KDC_TRANSPORT_TCP);
    if (open_rep(reply, n, &k, CK_KU_AS_REP_ENCPART, CK_KRB_ENC_AS_REP_PART, &c))
        CHECK_INT_EQ(c.endtime, now + 600);
    creds_free(&c);
    ck_asn1_free_der(der, len);
    /* till in the past. */
    o.till = now - 600;
    build_as_req(&o, &der, &len);
    n = ask(w, der, len, KDC_TRANSPORT_TCP);
    CHECK_INT_EQ(error_code(reply, n, NULL), CK_KDC_ERR_NEVER_VALID);
    ck_asn1_free_der(der, len);
    /* Forwardable refused by attribute: silently not granted. */
    password_key("TEST.REALMnofwd", "nofwdpw", CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, &k);
    o.cname = "nofwd";
    o.till = 0;
    o.kdc_options = CK_KDC_OPT_FORWARDABLE;
    build_as_req(&o, &der, &len);
    n = ask(w, der, len, KDC_TRANSPORT_TCP);
    if (open_rep(reply, n, &k, CK_KU_AS_REP_ENCPART, CK_KRB_ENC_AS_REP_PART, &c))
        CHECK_INT_EQ(c.flags, CK_TKT_FLG_INITIAL);
    creds_free(&c);
    ck_asn1_free_der(der, len);
    /* TGS-only option. */
    o.kdc_options = CK_KDC_OPT_RENEW;
    build_as_req(&o, &der, &len);
    n = ask(w, der, len, KDC_TRANSPORT_TCP);
    CHECK_INT_EQ(error_code(reply, n, NULL), CK_KDC_ERR_BADOPTION);
    ck_asn1_free_der(der, len);
    kdc_worker_free(w);
}

/* KRB-ERROR code for an AS-REQ over TCP (no lookaside), -1 for an AS-REP. */
static int
as_error(struct kdc_worker *w, const struct as_opts *o)
{
    uint8_t *der = NULL;
    size_t len = 0, n;
    int code;

    build_as_req(o, &der, &len);
    n = ask(w, der, len, KDC_TRANSPORT_TCP);
    code = error_code(reply, n, NULL);
    ck_asn1_free_der(der, len);
    return code;
}

static void
test_as_errors(void)
{
    struct kdc_worker *w = worker();
    ck_key good, bad, k;
    const int32_t only_des[] = {16, 23};
    struct as_opts o = {.cname = "alice", .sname = "krbtgt/" REALM, .ts_key = &bad};
    CK_KRB_ERROR_MSG *e = NULL;
    uint8_t *der = NULL;
    size_t len = 0, n;

    password_key("TEST.REALMalice", ALICE_PW, CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, &good);
    password_key("TEST.REALMalice", "wrong", CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, &bad);
    /* Wrong password: PREAUTH_FAILED with METHOD-DATA. */
    build_as_req(&o, &der, &len);
    n = ask(w, der, len, KDC_TRANSPORT_UDP);
    CHECK_INT_EQ(error_code(reply, n, &e), CK_KDC_ERR_PREAUTH_FAILED);
    CHECK(e != NULL && e->e_data != NULL);
    CK_KRB_ERROR_MSG_free(e);
    ck_asn1_free_der(der, len);
    /* Skewed timestamp. */
    o.ts_key = &good;
    o.ts_offset = -1000;
    CHECK_INT_EQ(as_error(w, &o), CK_KRB_AP_ERR_SKEW);
    o.ts_offset = 1000;
    CHECK_INT_EQ(as_error(w, &o), CK_KRB_AP_ERR_SKEW);
    o.ts_offset = 0;
    /* A timestamp with another of alice's keys (aes128) is fine. */
    password_key("TEST.REALMalice", ALICE_PW, CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96, &k);
    o.ts_key = &k;
    CHECK_INT_EQ(as_error(w, &o), -1);
    o.ts_key = &good;
    /* Unknown client / server, expired client, locked client. */
    o.cname = "nobody";
    CHECK_INT_EQ(as_error(w, &o), CK_KDC_ERR_C_PRINCIPAL_UNKNOWN);
    o.cname = "alice";
    o.sname = "host/nowhere";
    CHECK_INT_EQ(as_error(w, &o), CK_KDC_ERR_S_PRINCIPAL_UNKNOWN);
    o.sname = "krbtgt/" REALM;
    o.cname = "old";
    CHECK_INT_EQ(as_error(w, &o), CK_KDC_ERR_NAME_EXP);
    o.cname = "locked";
    CHECK_INT_EQ(as_error(w, &o), CK_KDC_ERR_CLIENT_REVOKED);
    /* No common enctype. */
    o.cname = "alice";
    o.etypes = only_des;
    o.n_etypes = 2;
    CHECK_INT_EQ(as_error(w, &o), CK_KDC_ERR_ETYPE_NOSUPP);
    o.etypes = NULL;
    o.n_etypes = 0;
    /* Postdating. */
    o.kdc_options = CK_KDC_OPT_POSTDATED;
    CHECK_INT_EQ(as_error(w, &o), CK_KDC_ERR_CANNOT_POSTDATE);
    kdc_worker_free(w);
}

/* ---- TGS tests --------------------------------------------------------------------------- */

static size_t
tgs(struct kdc_worker *w, const struct creds *tgt, const struct tgs_opts *o)
{
    uint8_t *der = NULL;
    size_t len = 0, n;

    build_tgs_req(tgt, o, &der, &len);
    n = ask(w, der, len, KDC_TRANSPORT_TCP);
    ck_asn1_free_der(der, len);
    return n;
}

static void
test_tgs_issue(void)
{
    struct kdc_worker *w = worker();
    struct creds tgt, c;
    CK_ENC_TICKET_PART *etp;
    struct tgs_opts o = {.sname = "host/server.test.realm"};
    ck_key subkey;
    size_t n;

    if (!get_tgt(w, CK_KDC_OPT_FORWARDABLE | CK_KDC_OPT_RENEWABLE, 0, &tgt))
        goto out;
    n = tgs(w, &tgt, &o);
    if (open_rep(reply, n, &tgt.session, CK_KU_TGS_REP_ENCPART_SESSKEY, CK_KRB_ENC_TGS_REP_PART,
                 &c)) {
        CHECK_INT_EQ(c.authtime, tgt.authtime);
        /* FORWARDABLE was not requested; PRE_AUTHENT carries over; never INITIAL. */
        CHECK_INT_EQ(c.flags, CK_TKT_FLG_PRE_AUTHENT);
        CHECK(c.endtime <= tgt.endtime);
        CHECK(ck_asn1_principal_equal(c.rep->cname, tgt.rep->cname));
        etp = open_ticket(c.rep->ticket, "host/server.test.realm@" REALM);
        CHECK(etp != NULL);
        if (etp != NULL) {
            ck_key k;
            CHECK_OK(ck_key_from_asn1(&k, etp->key));
            CHECK_MEM_EQ(k.contents, k.length, c.session.contents, c.session.length);
            CHECK(ck_asn1_principal_equal(etp->cname, tgt.rep->cname));
        }
        CK_ENC_TICKET_PART_free(etp);
    }
    creds_free(&c);
    /* With a subkey the reply is under the subkey, usage 9; FORWARDABLE granted. */
    CHECK_OK(ck_random_key(CK_ENCTYPE_AES128_CTS_HMAC_SHA256_128, &subkey));
    o.subkey = &subkey;
    o.kdc_options = CK_KDC_OPT_FORWARDABLE;
    n = tgs(w, &tgt, &o);
    if (open_rep(reply, n, &subkey, CK_KU_TGS_REP_ENCPART_SUBKEY, CK_KRB_ENC_TGS_REP_PART, &c))
        CHECK_INT_EQ(c.flags, CK_TKT_FLG_PRE_AUTHENT | CK_TKT_FLG_FORWARDABLE);
    creds_free(&c);
    /* Service lifetime cap (host/svc: 1 hour). */
    o.subkey = NULL;
    o.kdc_options = 0;
    o.sname = "host/svc";
    n = tgs(w, &tgt, &o);
    if (open_rep(reply, n, &tgt.session, CK_KU_TGS_REP_ENCPART_SESSKEY, CK_KRB_ENC_TGS_REP_PART,
                 &c))
        CHECK(c.endtime - (int64_t)time(NULL) <= 3600 && c.endtime - (int64_t)time(NULL) > 3500);
    creds_free(&c);
out:
    creds_free(&tgt);
    kdc_worker_free(w);
}

static void
test_tgs_errors(void)
{
    struct kdc_worker *w = worker();
    struct creds tgt, fwd;
    struct tgs_opts o = {.sname = "host/server.test.realm"};
    size_t n;

    if (!get_tgt(w, 0, 0, &tgt))
        goto out;
    o.tamper = true;
    n = tgs(w, &tgt, &o);
    CHECK_INT_EQ(error_code(reply, n, NULL), CK_KRB_AP_ERR_MODIFIED);
    o.tamper = false;
    o.no_checksum = true;
    n = tgs(w, &tgt, &o);
    CHECK_INT_EQ(error_code(reply, n, NULL), CK_KRB_AP_ERR_INAPP_CKSUM);
    o.no_checksum = false;
    o.sname = "host/nowhere";
    n = tgs(w, &tgt, &o);
    CHECK_INT_EQ(error_code(reply, n, NULL), CK_KDC_ERR_S_PRINCIPAL_UNKNOWN);
    o.sname = "host/server.test.realm";
    /* FORWARDED from a non-forwardable TGT. */
    o.kdc_options = CK_KDC_OPT_FORWARDED;
    n = tgs(w, &tgt, &o);
    CHECK_INT_EQ(error_code(reply, n, NULL), CK_KDC_ERR_BADOPTION);
    /* FORWARDABLE from a non-forwardable TGT: silently not granted. */
    o.kdc_options = CK_KDC_OPT_FORWARDABLE;
    n = tgs(w, &tgt, &o);
    {
        struct creds c;
        if (open_rep(reply, n, &tgt.session, CK_KU_TGS_REP_ENCPART_SESSKEY,
                     CK_KRB_ENC_TGS_REP_PART, &c))
            CHECK(!(c.flags & CK_TKT_FLG_FORWARDABLE));
        creds_free(&c);
    }
    /* Renewing a non-renewable TGT; unsupported options. */
    o.kdc_options = CK_KDC_OPT_RENEW;
    o.sname = "krbtgt/" REALM;
    n = tgs(w, &tgt, &o);
    CHECK_INT_EQ(error_code(reply, n, NULL), CK_KDC_ERR_BADOPTION);
    o.kdc_options = CK_KDC_OPT_VALIDATE;
    n = tgs(w, &tgt, &o);
    CHECK_INT_EQ(error_code(reply, n, NULL), CK_KDC_ERR_BADOPTION);
    o.kdc_options = CK_KDC_OPT_ENC_TKT_IN_SKEY;
    n = tgs(w, &tgt, &o);
    CHECK_INT_EQ(error_code(reply, n, NULL), CK_KDC_ERR_BADOPTION);
    o.kdc_options = 0;

    /* FORWARDED from a forwardable TGT works and is marked. */
    if (get_tgt(w, CK_KDC_OPT_FORWARDABLE, 0, &fwd)) {
        struct creds c;
        o.kdc_options = CK_KDC_OPT_FORWARDED | CK_KDC_OPT_FORWARDABLE;
        n = tgs(w, &fwd, &o);
        if (open_rep(reply, n, &fwd.session, CK_KU_TGS_REP_ENCPART_SESSKEY,
                     CK_KRB_ENC_TGS_REP_PART, &c))
            CHECK_INT_EQ(c.flags, CK_TKT_FLG_PRE_AUTHENT | CK_TKT_FLG_FORWARDED |
                                      CK_TKT_FLG_FORWARDABLE);
        creds_free(&c);
        o.kdc_options = 0;
    }
    creds_free(&fwd);

    /* An expired TGT (sealed with the real krbtgt key). */
    {
        CK_ENC_TICKET_PART *etp = open_ticket(tgt.rep->ticket, TGS_NAME);
        ck_db_principal *p = NULL;
        CK_TICKET *t = CK_TICKET_dup(tgt.rep->ticket);
        int64_t now = (int64_t)time(NULL);

        CHECK_OK(ck_store_get_principal(tstore, TGS_NAME, &p));
        if (etp != NULL && p != NULL && t != NULL) {
            const ck_db_key *k = ck_db_principal_find_key(p, 0, t->enc_part->etype);
            CHECK_OK(ck_asn1_time_set(&etp->authtime, now - 7200));
            CHECK_OK(ck_asn1_time_set(&etp->starttime, now - 7200));
            CHECK_OK(ck_asn1_time_set(&etp->endtime, now - 3600));
            CHECK_OK(ck_ticket_seal(t, etp, &k->key, k->kvno));
            o.ticket = t;
            n = tgs(w, &tgt, &o);
            CHECK_INT_EQ(error_code(reply, n, NULL), CK_KRB_AP_ERR_TKT_EXPIRED);
            /* A TGT sealed with a key the KDC does not have. */
            {
                ck_key other;
                CHECK_OK(ck_random_key(k->enctype, &other));
                CHECK_OK(ck_asn1_time_set(&etp->endtime, now + 3600));
                CHECK_OK(ck_ticket_seal(t, etp, &other, k->kvno));
                n = tgs(w, &tgt, &o);
                CHECK_INT_EQ(error_code(reply, n, NULL), CK_KRB_AP_ERR_BAD_INTEGRITY);
                CHECK_OK(ck_ticket_seal(t, etp, &other, 77));
                n = tgs(w, &tgt, &o);
                CHECK_INT_EQ(error_code(reply, n, NULL), CK_KRB_AP_ERR_BADKEYVER);
            }
            o.ticket = NULL;
        }
        CK_TICKET_free(t);
        ck_db_principal_free(p);
        CK_ENC_TICKET_PART_free(etp);
    }
    /* A service ticket presented as a TGT. */
    {
        struct creds c;
        o.sname = "host/server.test.realm";
        n = tgs(w, &tgt, &o);
        if (open_rep(reply, n, &tgt.session, CK_KU_TGS_REP_ENCPART_SESSKEY,
                     CK_KRB_ENC_TGS_REP_PART, &c)) {
            /* Session key of the service ticket, used in an AP-REQ to the KDC. */
            struct creds fake = {.rep = c.rep, .session = c.session};
            n = tgs(w, &fake, &o);
            CHECK_INT_EQ(error_code(reply, n, NULL), CK_KDC_ERR_POLICY);
        }
        creds_free(&c);
    }
out:
    creds_free(&tgt);
    kdc_worker_free(w);
}

static void
test_tgs_renew_and_rotation(void)
{
    struct kdc_worker *w = worker();
    struct creds tgt, c, c2;
    struct tgs_opts o = {.sname = "krbtgt/" REALM, .kdc_options = CK_KDC_OPT_RENEW};
    ck_db_key *keys = NULL;
    size_t n_keys = 0, n;
    uint32_t kvno = 0;

    if (!get_tgt(w, CK_KDC_OPT_RENEWABLE, time(NULL) + 86400, &tgt))
        goto out;
    CHECK(tgt.flags & CK_TKT_FLG_RENEWABLE);
    n = tgs(w, &tgt, &o);
    if (open_rep(reply, n, &tgt.session, CK_KU_TGS_REP_ENCPART_SESSKEY, CK_KRB_ENC_TGS_REP_PART,
                 &c)) {
        CHECK_INT_EQ(c.authtime, tgt.authtime);
        CHECK_INT_EQ(c.renew_till, tgt.renew_till);
        CHECK_INT_EQ(c.flags, tgt.flags);
        CHECK(c.endtime <= c.renew_till);
        CHECK(!ck_ct_equal(c.session.contents, tgt.session.contents, c.session.length));
    }
    /* Rotate the krbtgt keys: the old TGT (kvno 2) keeps working, new tickets get kvno 3. */
    CHECK_OK(ck_db_keys_make(TGS_NAME, NULL, 0, all_enctypes, N_ENCTYPES, 0, &keys, &n_keys));
    CHECK_OK(ck_store_rotate_keys(tstore, TGS_NAME, keys, n_keys, 0, &kvno));
    CHECK_INT_EQ(kvno, 3);
    ck_db_keys_free(keys, n_keys);
    n = tgs(w, &tgt, &o);
    if (open_rep(reply, n, &tgt.session, CK_KU_TGS_REP_ENCPART_SESSKEY, CK_KRB_ENC_TGS_REP_PART,
                 &c2)) {
        CK_ENC_TICKET_PART *etp;
        CHECK_INT_EQ(ck_asn1_uint32_get(c2.rep->ticket->enc_part->kvno, 0), 3);
        etp = open_ticket(c2.rep->ticket, TGS_NAME);
        CHECK(etp != NULL);
        CK_ENC_TICKET_PART_free(etp);
    }
    /* The renewed ticket works as a TGT too. */
    if (c.rep != NULL) {
        struct creds c3;
        struct tgs_opts o2 = {.sname = "host/svc"};
        n = tgs(w, &c, &o2);
        if (open_rep(reply, n, &c.session, CK_KU_TGS_REP_ENCPART_SESSKEY, CK_KRB_ENC_TGS_REP_PART,
                     &c3))
            CHECK_INT_EQ(c3.authtime, tgt.authtime);
        creds_free(&c3);
    }
    creds_free(&c);
    creds_free(&c2);
out:
    creds_free(&tgt);
    kdc_worker_free(w);
}

/* ---- dispatch, transport rules, hostile input ----------------------------------------- */

static void
test_transport_rules(void)
{
    struct kdc_config cfg;
    struct kdc_worker *w;
    ck_key k;
    struct as_opts o = {.cname = "alice", .sname = "krbtgt/" REALM, .ts_key = &k};
    uint8_t *der = NULL, first[4096];
    size_t len = 0, n, n1;
    static const uint8_t garbage[] = {0x01, 0x02, 0x03, 0x04, 0x05};
    static const uint8_t bad_as[] = {0x6a, 0x03, 0x02, 0x01, 0x05};
    static const uint8_t ap_req[] = {0x6e, 0x03, 0x02, 0x01, 0x05};

    password_key("TEST.REALMalice", ALICE_PW, CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, &k);
    build_as_req(&o, &der, &len);

    /* Lookaside: the same UDP request twice gives identical bytes (fresh keys otherwise). */
    w = worker();
    n1 = ask(w, der, len, KDC_TRANSPORT_UDP);
    CHECK(n1 > 0 && n1 <= sizeof(first));
    memcpy(first, reply, n1);
    n = ask(w, der, len, KDC_TRANSPORT_UDP);
    CHECK_MEM_EQ(reply, n, first, n1);
    CHECK_INT_EQ(kdc_lookaside_count(w->lookaside), 1);
    n = ask(w, der, len, KDC_TRANSPORT_TCP);
    CHECK(n > 0 && (n != n1 || memcmp(reply, first, n) != 0));
    /* Garbage: silence over UDP, KRB_AP_ERR_MSG_TYPE over TCP. */
    CHECK_INT_EQ(ask(w, garbage, sizeof(garbage), KDC_TRANSPORT_UDP), 0);
    n = ask(w, garbage, sizeof(garbage), KDC_TRANSPORT_TCP);
    CHECK_INT_EQ(error_code(reply, n, NULL), CK_KRB_AP_ERR_MSG_TYPE);
    CHECK_INT_EQ(ask(w, ap_req, sizeof(ap_req), KDC_TRANSPORT_UDP), 0);
    n = ask(w, ap_req, sizeof(ap_req), KDC_TRANSPORT_TCP);
    CHECK_INT_EQ(error_code(reply, n, NULL), CK_KRB_AP_ERR_MSG_TYPE);
    CHECK_INT_EQ(ask(w, NULL, 0, KDC_TRANSPORT_UDP), 0);
    /* An AS-REQ tag with broken contents: KRB_ERR_GENERIC on both. */
    n = ask(w, bad_as, sizeof(bad_as), KDC_TRANSPORT_UDP);
    CHECK_INT_EQ(error_code(reply, n, NULL), CK_KRB_ERR_GENERIC);
    n = ask(w, bad_as, sizeof(bad_as), KDC_TRANSPORT_TCP);
    CHECK_INT_EQ(error_code(reply, n, NULL), CK_KRB_ERR_GENERIC);
    /* Every truncation of a valid AS-REQ: a KRB-ERROR or silence, never a crash. */
    for (size_t i = 0; i < len; i++) {
        n = ask(w, der, i, KDC_TRANSPORT_UDP);
        CHECK(n == 0 || error_code(reply, n, NULL) > 0);
        n = ask(w, der, i, KDC_TRANSPORT_TCP);
        CHECK(n > 0 && error_code(reply, n, NULL) > 0);
    }
    /* A reply buffer too small for the AS-REP. */
    {
        size_t small = 0;
        CHECK_OK(kdc_handle_request(w, der, len, KDC_TRANSPORT_TCP, NULL, reply, 300, &small));
        CHECK(small > 0 && small <= 300);
        CHECK_INT_EQ(error_code(reply, small, NULL), CK_KRB_ERR_GENERIC);
    }
    kdc_worker_free(w);

    /* Tiny max_dgram_reply: RESPONSE_TOO_BIG over UDP, the real reply over TCP. Tiny
     * max_request: FIELD_TOOLONG over TCP, silence over UDP. */
    config_defaults(&cfg);
    cfg.max_dgram_reply = 200;
    w = worker_with(&cfg);
    n = ask(w, der, len, KDC_TRANSPORT_UDP);
    CHECK_INT_EQ(error_code(reply, n, NULL), CK_KRB_ERR_RESPONSE_TOO_BIG);
    n = ask(w, der, len, KDC_TRANSPORT_TCP);
    CHECK(n > 200 && error_code(reply, n, NULL) == -1);
    kdc_worker_free(w);
    config_defaults(&cfg);
    cfg.max_request = 50;
    cfg.lookaside = false;
    w = worker_with(&cfg);
    CHECK(w->lookaside == NULL);
    CHECK_INT_EQ(ask(w, der, len, KDC_TRANSPORT_UDP), 0);
    n = ask(w, der, len, KDC_TRANSPORT_TCP);
    CHECK_INT_EQ(error_code(reply, n, NULL), CK_KRB_ERR_FIELD_TOOLONG);
    kdc_worker_free(w);
    ck_asn1_free_der(der, len);

    /* Realm mismatch between the config and the database. */
    config_defaults(&cfg);
    cfg.realm = (char *)"OTHER.REALM";
    w = NULL;
    CHECK_INT_EQ(kdc_worker_new(&cfg, &w), CK_ERR_CONFIG);
    CHECK(w == NULL);
    kdc_worker_free(NULL);
}

static void
test_lookaside_limits(void)
{
    struct kdc_lookaside *la = NULL;
    const uint8_t *r;
    size_t rl;
    uint8_t req[8] = {0}, rep[4] = {9, 9, 9, 9};

    CHECK_OK(kdc_lookaside_new(4, 1000, 1000, &la));
    for (uint8_t i = 0; i < 10; i++) {
        req[0] = i;
        kdc_lookaside_store(la, req, sizeof(req), rep, sizeof(rep), 100);
    }
    CHECK_INT_EQ(kdc_lookaside_count(la), 4);
    req[0] = 9;
    CHECK(kdc_lookaside_find(la, req, sizeof(req), 200, &r, &rl));
    CHECK_MEM_EQ(r, rl, rep, sizeof(rep));
    req[0] = 0;
    CHECK(!kdc_lookaside_find(la, req, sizeof(req), 200, &r, &rl));
    /* Expiry. */
    req[0] = 9;
    CHECK(!kdc_lookaside_find(la, req, sizeof(req), 1100, &r, &rl));
    CHECK_INT_EQ(kdc_lookaside_count(la), 0);
    /* Byte bound. */
    {
        static uint8_t big[600];
        kdc_lookaside_store(la, req, sizeof(req), big, sizeof(big), 2000);
        req[0] = 10;
        kdc_lookaside_store(la, req, sizeof(req), big, sizeof(big), 2000);
        CHECK_INT_EQ(kdc_lookaside_count(la), 1);
        kdc_lookaside_store(la, req, sizeof(req), big, 0, 2000);
    }
    kdc_lookaside_free(la);

    /* The ring under churn: records of every size wrap around its end many times; whatever a
     * lookup finds is the reply stored for exactly that request, the newest entry is always
     * found, and the bounds hold. */
    CHECK_OK(kdc_lookaside_new(64, 20000, 1000000, &la));
    {
        static uint8_t rq[900], rp[1200];
        uint32_t seed = 12345;
        int bad = 0, missing_newest = 0;

        for (uint32_t i = 0; i < 5000; i++) {
            size_t ql, pl;

            seed = seed * 1103515245u + 12345u;
            ql = 8 + (seed >> 8) % 800;
            pl = 1 + (seed >> 16) % 1100;
            memset(rq, 0, ql);
            memcpy(rq, &i, sizeof(i));
            memset(rp, (int)(i & 0xff), pl);
            memcpy(rp, &i, pl < sizeof(i) ? pl : sizeof(i));
            kdc_lookaside_store(la, rq, ql, rp, pl, 10);
            if (!kdc_lookaside_find(la, rq, ql, 11, &r, &rl) || rl != pl ||
                memcmp(r, rp, pl) != 0)
                missing_newest++;
            /* An older request: found with its own reply, or not at all. */
            if (i >= 10) {
                uint32_t j = i - 1 - (seed >> 4) % 10, seed_j = 12345;
                size_t qlj = 0, plj = 0;

                for (uint32_t k = 0; k <= j; k++) {
                    seed_j = seed_j * 1103515245u + 12345u;
                    qlj = 8 + (seed_j >> 8) % 800;
                    plj = 1 + (seed_j >> 16) % 1100;
                }
                memset(rq, 0, qlj);
                memcpy(rq, &j, sizeof(j));
                if (kdc_lookaside_find(la, rq, qlj, 11, &r, &rl)) {
                    uint8_t want[sizeof(j)];

                    memcpy(want, &j, sizeof(j));
                    if (rl != plj || memcmp(r, want, plj < sizeof(j) ? plj : sizeof(j)) != 0 ||
                        (plj > sizeof(j) && r[plj - 1] != (uint8_t)(j & 0xff)))
                        bad++;
                }
            }
            if (kdc_lookaside_count(la) > 64)
                bad++;
        }
        CHECK_INT_EQ(bad, 0);
        CHECK_INT_EQ(missing_newest, 0);
        /* Every live entry is among the last 64 stored, and every one of them can be found
         * (a broken index deletion would lose some). */
        {
            uint32_t seed_j = 12345;
            size_t found = 0, qls[5000];

            for (uint32_t k = 0; k < 5000; k++) {
                seed_j = seed_j * 1103515245u + 12345u;
                qls[k] = 8 + (seed_j >> 8) % 800;
            }
            for (uint32_t k = 5000 - 64; k < 5000; k++) {
                memset(rq, 0, qls[k]);
                memcpy(rq, &k, sizeof(k));
                found += kdc_lookaside_find(la, rq, qls[k], 11, &r, &rl);
            }
            CHECK_INT_EQ(found, kdc_lookaside_count(la));
            CHECK(found > 5);
        }
        /* Everything expires. */
        CHECK(!kdc_lookaside_find(la, rq, 8, 2000000, &r, &rl));
        CHECK_INT_EQ(kdc_lookaside_count(la), 0);
    }
    kdc_lookaside_free(la);
}

/* A refusal from a stale cache entry is re-checked against the database. */
static void
test_stale_refusal_rechecked(void)
{
    struct kdc_worker *w = worker();
    struct timespec ms20 = {0, 20 * 1000 * 1000};
    ck_key k;
    struct as_opts o = {.cname = "late", .sname = "krbtgt/" REALM};
    ck_db_principal *p = NULL;

    /* The cache never looks at the change log by itself here. */
    w->cache_check_ms = 3600 * 1000;
    ck_store_cache_configure(w->store, w->cache_max, w->cache_check_ms);
    CHECK_INT_EQ(as_error(w, &o), CK_KDC_ERR_C_PRINCIPAL_UNKNOWN);
    put_princ("late@" REALM, "latepw", 1, 0, 0, 0);
    nanosleep(&ms20, NULL);
    CHECK_INT_EQ(as_error(w, &o), -1);

    /* Unlocked while cached as locked. */
    o.cname = "locked";
    CHECK_INT_EQ(as_error(w, &o), CK_KDC_ERR_CLIENT_REVOKED);
    CHECK_OK(ck_store_get_principal(tstore, "locked@" REALM, &p));
    if (p != NULL) {
        p->attributes = 0;
        CHECK_OK(ck_store_update_principal(tstore, p));
        nanosleep(&ms20, NULL);
        CHECK_INT_EQ(as_error(w, &o), -1);
        p->attributes = CK_ATTR_DISALLOW_ALL_TIX;
        CHECK_OK(ck_store_update_principal(tstore, p));
    }
    ck_db_principal_free(p);

    /* A new password while the old keys are cached: PREAUTH_FAILED is re-checked. */
    o.cname = "late";
    password_key("TEST.REALMlate", "latepw2", CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, &k);
    o.ts_key = &k;
    put_princ("late@" REALM, "latepw2", 2, 0, 0, 0);
    nanosleep(&ms20, NULL);
    CHECK_INT_EQ(as_error(w, &o), -1);
    kdc_worker_free(w);
}

/* ---- review findings: log escaping, supported_enctypes ------------------------------------ */

/* Replaces the first occurrence of `from` in der with `to` (same length): request bytes the
 * encoder would refuse (control characters in a name), as a hostile client sends them. */
static bool
patch_bytes(uint8_t *der, size_t len, const char *from, const char *to)
{
    size_t n = strlen(from);

    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(der + i, from, n) == 0) {
            memcpy(der + i, to, n);
            return true;
        }
    return false;
}

static char *
slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = malloc(65536);

    *len = 0;
    if (f == NULL || buf == NULL) {
        if (f != NULL)
            fclose(f);
        free(buf);
        return NULL;
    }
    *len = fread(buf, 1, 65535, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

/* A client name with \r and an ESC sequence reaches the log line only escaped. */
static void
test_log_escapes_names(void)
{
    struct kdc_worker *w = worker();
    struct as_opts o = {.cname = "evilQQQQQname", .sname = "krbtgt/" REALM};
    char path[160], *log, esc[64];
    uint8_t *der = NULL;
    size_t len = 0, n, loglen = 0;

    kdc_log_escape("a\rb\x1b[2J\x7f\xc3\xa9\\x", esc, sizeof(esc));
    CHECK(strcmp(esc, "a\\x0db\\x1b[2J\\x7f\\xc3\\xa9\\x") == 0);
    /* Truncation never leaves half an escape. */
    kdc_log_escape("ab\r", esc, 5);
    CHECK(strcmp(esc, "ab") == 0);

    snprintf(path, sizeof(path), "%s/escape.log", dir);
    CHECK_OK(ck_log_open("test_kdc", CK_LOG_FILE, path, LOG_INFO));
    build_as_req(&o, &der, &len);
    CHECK(patch_bytes(der, len, "QQQQQ", "\r\x1b[2J"));
    n = ask(w, der, len, KDC_TRANSPORT_TCP);
    CHECK_INT_EQ(error_code(reply, n, NULL), CK_KDC_ERR_C_PRINCIPAL_UNKNOWN);
    ck_log_close();
    ck_log_open("test_kdc", CK_LOG_STDERR, NULL, LOG_WARNING);
    log = slurp(path, &loglen);
    CHECK(log != NULL);
    if (log != NULL) {
        CHECK(strstr(log, "CLIENT_NOT_FOUND: evil\\x0d\\x1b[2Jname@TEST.REALM for") != NULL);
        CHECK(memchr(log, '\r', loglen) == NULL);
        CHECK(memchr(log, 0x1b, loglen) == NULL);
        /* One line for the one request. */
        CHECK(strchr(log, '\n') == log + loglen - 1);
    }
    free(log);
    ck_asn1_free_der(der, len);
    kdc_worker_free(w);
}

/* With log_flush_ms, request lines wait in the worker's batch until kdc_worker_idle finds them
 * due, then appear in one piece, formatted exactly as ck_log formats a line; freeing the worker
 * writes what is left. */
static void
test_log_batched(void)
{
    struct kdc_config cfg;
    struct kdc_worker *w;
    struct as_opts o = {.cname = "nobody", .sname = "krbtgt/" REALM};
    struct timespec ms60 = {0, 60 * 1000 * 1000}, t0, t1;
    char path[160], *log;
    uint8_t *der = NULL;
    size_t len = 0, loglen = 0;
    int wait;

    snprintf(path, sizeof(path), "%s/batch.log", dir);
    CHECK_OK(ck_log_open("test_kdc", CK_LOG_FILE, path, LOG_INFO));
    config_defaults(&cfg);
    cfg.log_flush_ms = 50;
    w = worker_with(&cfg);
    /* Nothing waiting: only the database heartbeat's deadline (k9fleet: fleet.c). */
    wait = kdc_worker_idle(w);
    CHECK(wait >= 1 && wait <= CK_STORE_CACHE_CHECK_MS);
    build_as_req(&o, &der, &len);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ask(w, der, len, KDC_TRANSPORT_TCP);
    ask(w, der, len, KDC_TRANSPORT_TCP);
    log = slurp(path, &loglen);
    CHECK(log != NULL && loglen == 0);
    free(log);
    wait = kdc_worker_idle(w);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    /* Within the 50 ms the lines wait for their batch; on a machine so loaded that 50 ms have
     * passed already, this idle step has written them and waits for the heartbeat instead. */
    if ((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < 45)
        CHECK(wait > 0 && wait <= 50);
    else
        CHECK(wait >= 1 && wait <= CK_STORE_CACHE_CHECK_MS);
    nanosleep(&ms60, NULL);
    wait = kdc_worker_idle(w);
    CHECK(wait >= 1 && wait <= CK_STORE_CACHE_CHECK_MS);
    log = slurp(path, &loglen);
    CHECK(log != NULL);
    if (log != NULL) {
        const char *l2 = strchr(log, '\n');
        int yy, mo, dd, hh, mi, ss;
        char tail[8] = "";

        /* Two lines, each "YYYY-MM-DDTHH:MM:SSZ test_kdc[info]: AS_REQ ... CLIENT_NOT_FOUND". */
        CHECK(sscanf(log, "%4d-%2d-%2dT%2d:%2d:%2dZ %7s", &yy, &mo, &dd, &hh, &mi, &ss, tail) ==
              7);
        CHECK(strncmp(log + 21, "test_kdc[info]: AS_REQ ", 23) == 0);
        CHECK(l2 != NULL && strncmp(l2 + 1 + 21, "test_kdc[info]: AS_REQ ", 23) == 0);
        CHECK(strstr(log, "CLIENT_NOT_FOUND: nobody@TEST.REALM for krbtgt/TEST.REALM@TEST.REALM")
              != NULL);
        CHECK(l2 != NULL && strchr(l2 + 1, '\n') == log + loglen - 1);
    }
    free(log);
    /* A line still waiting is written when the worker goes. */
    ask(w, der, len, KDC_TRANSPORT_TCP);
    kdc_worker_free(w);
    log = slurp(path, &loglen);
    if (log != NULL) {
        size_t lines = 0;

        for (size_t i = 0; i < loglen; i++)
            lines += log[i] == '\n';
        CHECK_INT_EQ(lines, 3);
    }
    free(log);
    ck_log_close();
    ck_log_open("test_kdc", CK_LOG_STDERR, NULL, LOG_WARNING);
    ck_asn1_free_der(der, len);
}

/* supported_enctypes restricts the AS reply key and the keys PA-ENC-TIMESTAMP may use, as it
 * restricts session and ticket keys. */
static void
test_as_supported_enctypes(void)
{
    struct kdc_config cfg;
    struct kdc_worker *w;
    ck_key k256, k128;
    const int32_t want[] = {CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96};
    const int32_t only256[] = {CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96};
    struct as_opts o = {.cname = "alice", .sname = "krbtgt/" REALM, .etypes = want,
                        .n_etypes = 2};
    struct creds c;
    uint8_t *der = NULL;
    size_t len = 0, n;

    config_defaults(&cfg);
    cfg.enctypes[0] = CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96;
    cfg.n_enctypes = 1;
    w = worker_with(&cfg);
    password_key("TEST.REALMalice", ALICE_PW, CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, &k256);
    password_key("TEST.REALMalice", ALICE_PW, CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96, &k128);

    /* alice has an aes256 key and asks for it first: the realm permits only aes128. */
    o.ts_key = &k128;
    build_as_req(&o, &der, &len);
    n = ask(w, der, len, KDC_TRANSPORT_TCP);
    if (open_rep(reply, n, &k128, CK_KU_AS_REP_ENCPART, CK_KRB_ENC_AS_REP_PART, &c)) {
        CHECK_INT_EQ(c.rep->enc_part->etype, CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96);
        CHECK_INT_EQ(c.session.enctype, CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96);
        CHECK(c.flags & CK_TKT_FLG_PRE_AUTHENT);
    }
    creds_free(&c);
    ck_asn1_free_der(der, len);

    /* A timestamp under her aes256 key is refused, with the offers (ETYPE-INFO2 for aes128). */
    o.ts_key = &k256;
    build_as_req(&o, &der, &len);
    n = ask(w, der, len, KDC_TRANSPORT_TCP);
    {
        CK_KRB_ERROR_MSG *e = NULL;
        CK_METHOD_DATA *md = NULL;
        CK_ETYPE_INFO2 *info = NULL;
        const CK_PA_DATA *pa;

        CHECK_INT_EQ(error_code(reply, n, &e), CK_KDC_ERR_PREAUTH_FAILED);
        if (e != NULL && e->e_data != NULL &&
            ck_asn1_method_data_decode(e->e_data->data, (size_t)e->e_data->length, &md) == 0 &&
            (pa = ck_asn1_padata_find(md, CK_PA_ETYPE_INFO2)) != NULL &&
            ck_asn1_etype_info2_decode(pa->padata_value->data,
                                       (size_t)pa->padata_value->length, &info) == 0)
            CHECK_INT_EQ(sk_CK_ETYPE_INFO2_ENTRY_value(info, 0)->etype,
                         CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96);
        else
            CHECK(0);
        CK_ETYPE_INFO2_free(info);
        CK_METHOD_DATA_free(md);
        CK_KRB_ERROR_MSG_free(e);
    }
    ck_asn1_free_der(der, len);

    /* Asking only for a key the realm does not permit: no reply key. */
    o.ts_key = &k256;
    o.etypes = only256;
    o.n_etypes = 1;
    CHECK_INT_EQ(as_error(w, &o), CK_KDC_ERR_ETYPE_NOSUPP);
    kdc_worker_free(w);
}

/* ---- the pre-authentication table --------------------------------------------------------- */

/* A test mechanism standing in for PKINIT: padata type PA-PK-AS-REQ, may authenticate clients
 * without a long-term key, replaces the reply key with a random one and returns it in a
 * PA-PK-AS-REP (in the clear: only a test would). "ok" accepts, "bad" refuses with typed e-data,
 * "badkey" accepts and then offers a reply key of an enctype nobody asked for. */
struct fake_state {
    ck_key key;
    bool bad_enctype;
};

static int fake_inits, fake_finis, fake_cleanups, fake_verifies, fake_edatas;

static int
fake_init(const struct kdc_pa_env *env, void **ctx)
{
    fake_inits++;
    *ctx = &fake_inits;
    return env->realm != NULL && strcmp(env->realm, REALM) == 0 ? 0 : CK_ERR_CONFIG;
}

static void
fake_fini(void *ctx)
{
    fake_finis += ctx == &fake_inits;
}

static int
fake_edata(void *ctx, const struct kdc_pa_call *call, CK_METHOD_DATA **md)
{
    fake_edatas++;
    return ck_asn1_padata_add(md, CK_PA_PK_AS_REQ, NULL, 0);
}

static int
fake_verify(void *ctx, const struct kdc_pa_call *call, const CK_PA_DATA *pa, void **state,
            struct kdc_pa_error *err)
{
    struct fake_state *st;
    const uint8_t *v = ASN1_STRING_get0_data(pa->padata_value);
    size_t len = (size_t)ASN1_STRING_length(pa->padata_value);

    fake_verifies++;
    /* The whole request is there for the RFC 8636 KDF. */
    if (call->req_der == NULL || call->req_len < 10 || call->req_der[0] != 0x6a)
        return CK_ERR_INVAL;
    if ((st = calloc(1, sizeof(*st))) == NULL)
        return CK_ERR_NOMEM;
    *state = st;
    if (len == 3 && memcmp(v, "bad", 3) == 0) {
        uint8_t *td = OPENSSL_malloc(4);

        kdc_pa_fail(err, CK_KDC_ERR_CLIENT_NOT_TRUSTED, "CLIENT_NOT_TRUSTED", "untrusted %d",
                    42);
        if (td != NULL) {
            memcpy(td, "TD!!", 4);
            kdc_pa_set_edata(err, td, 4);
        }
        return KDC_PA_REFUSED;
    }
    st->bad_enctype = len == 6 && memcmp(v, "badkey", 6) == 0;
    return (len == 2 && memcmp(v, "ok", 2) == 0) || st->bad_enctype ? 0 : KDC_PA_REFUSED;
}

static int
fake_reply_key(void *ctx, const struct kdc_pa_call *call, void *state, ck_key *key)
{
    struct fake_state *st = state;
    int32_t et = st->bad_enctype ? CK_ENCTYPE_AES128_CTS_HMAC_SHA256_128 : call->reply_etype;
    int rc = ck_random_key(et, &st->key);

    if (rc == 0)
        *key = st->key;
    return rc;
}

static int
fake_reply_padata(void *ctx, const struct kdc_pa_call *call, void *state, CK_METHOD_DATA **pd)
{
    struct fake_state *st = state;
    uint8_t buf[4 + CK_KEY_MAX];

    buf[0] = (uint8_t)(st->key.enctype >> 24);
    buf[1] = (uint8_t)(st->key.enctype >> 16);
    buf[2] = (uint8_t)(st->key.enctype >> 8);
    buf[3] = (uint8_t)st->key.enctype;
    memcpy(buf + 4, st->key.contents, st->key.length);
    return ck_asn1_padata_add(pd, CK_PA_PK_AS_REP, buf, 4 + st->key.length);
}

static void
fake_cleanup(void *ctx, void *state)
{
    struct fake_state *st = state;

    ck_key_clear(&st->key);
    free(st);
    fake_cleanups++;
}

static const struct kdc_pa_mech fake_mech = {
    .pa_type = CK_PA_PK_AS_REQ,
    .name = "fake-pkinit",
    .flags = KDC_PA_KEYLESS,
    .init = fake_init,
    .fini = fake_fini,
    .edata = fake_edata,
    .verify = fake_verify,
    .reply_key = fake_reply_key,
    .reply_padata = fake_reply_padata,
    .cleanup = fake_cleanup,
};

static int
disabled_init(const struct kdc_pa_env *env, void **ctx)
{
    return KDC_PA_DISABLED;
}

static const struct kdc_pa_mech disabled_mech = {
    .pa_type = 1000,
    .name = "disabled",
    .init = disabled_init,
    .verify = fake_verify,
};

/* An AS-REQ for cname with the fake padata (value, NULL: none) and optionally a timestamp. */
static void
build_fake_as_req(const char *cname, const char *value, const ck_key *ts_key, uint8_t **der,
                  size_t *len)
{
    struct as_opts o = {.cname = cname, .sname = "krbtgt/" REALM, .ts_key = ts_key};
    CK_AS_REQ *req = NULL;
    uint8_t *plain = NULL;
    size_t plain_len = 0;

    build_as_req(&o, &plain, &plain_len);
    CHECK_OK(ck_asn1_as_req_decode(plain, plain_len, &req));
    ck_asn1_free_der(plain, plain_len);
    if (req == NULL)
        return;
    if (value != NULL)
        CHECK_OK(ck_asn1_padata_add(&req->padata, CK_PA_PK_AS_REQ, (const uint8_t *)value,
                                    strlen(value)));
    ck_asn1_kdc_req_body_modified(req->req_body);
    CHECK_OK(ck_asn1_as_req_encode(req, der, len));
    CK_AS_REQ_free(req);
}

/* The padata types of a METHOD-DATA, in order, as a string of numbers. */
static void
md_types(const ASN1_OCTET_STRING *e_data, char *out, size_t size)
{
    CK_METHOD_DATA *md = NULL;
    size_t off = 0;

    out[0] = '\0';
    if (e_data == NULL ||
        ck_asn1_method_data_decode(e_data->data, (size_t)e_data->length, &md) != 0)
        return;
    for (int i = 0; i < sk_CK_PA_DATA_num(md) && off < size; i++) {
        int k = snprintf(out + off, size - off, "%s%d", i ? "," : "",
                         (int)sk_CK_PA_DATA_value(md, i)->padata_type);
        off += k > 0 ? (size_t)k : 0;
    }
    CK_METHOD_DATA_free(md);
}

/* Opens an AS-REP whose key came back in the fake PA-PK-AS-REP. */
static bool
open_fake_rep(size_t n, struct creds *c)
{
    CK_KDC_REP *rep = NULL;
    const CK_PA_DATA *pa;
    ck_key k;
    bool ok = false;

    if (ck_asn1_kdc_rep_decode(reply, n, &rep, NULL) != 0) {
        fprintf(stderr, "  not an AS-REP (error %d)\n", error_code(reply, n, NULL));
        CHECK(0);
        return false;
    }
    pa = ck_asn1_padata_find(rep->padata, CK_PA_PK_AS_REP);
    CHECK(pa != NULL);
    /* A replaced key comes with no ETYPE-INFO2 and no kvno. */
    CHECK(ck_asn1_padata_find(rep->padata, CK_PA_ETYPE_INFO2) == NULL);
    CHECK(rep->enc_part->kvno == NULL);
    if (pa != NULL && pa->padata_value->length > 4) {
        const uint8_t *v = pa->padata_value->data;

        ck_key_clear(&k);
        k.enctype = (int32_t)((uint32_t)v[0] << 24 | (uint32_t)v[1] << 16 | (uint32_t)v[2] << 8 |
                              v[3]);
        k.length = (size_t)pa->padata_value->length - 4;
        memcpy(k.contents, v + 4, k.length);
        ok = open_rep(reply, n, &k, CK_KU_AS_REP_ENCPART, CK_KRB_ENC_AS_REP_PART, c);
        ck_key_clear(&k);
    }
    CK_KDC_REP_free(rep);
    return ok;
}

static void
test_preauth_table(void)
{
    struct kdc_config cfg;
    struct kdc_worker *w, *plain;
    ck_key good, bad;
    struct creds c;
    CK_KRB_ERROR_MSG *e = NULL;
    ck_db_principal *p = NULL;
    char types[64];
    uint8_t *der = NULL;
    size_t len = 0, n;
    int before;

    config_defaults(&cfg);
    plain = worker_with(&cfg);
    w = worker_with(&cfg);
    CHECK_OK(kdc_preauth_add(w, &cfg, &fake_mech));
    CHECK_INT_EQ(fake_inits, 1);
    CHECK(kdc_preauth_keyless(w));
    CHECK(!kdc_preauth_keyless(plain));
    /* The same padata type twice is a configuration error; a disabled one is left out. */
    CHECK_INT_EQ(kdc_preauth_add(w, &cfg, &fake_mech), CK_ERR_INVAL);
    CHECK_INT_EQ(fake_inits, 1); /* refused before its init runs */
    CHECK_OK(kdc_preauth_add(w, &cfg, &disabled_mech));
    CHECK_INT_EQ((int)w->n_pa, 2);
    password_key("TEST.REALMalice", ALICE_PW, CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, &good);
    password_key("TEST.REALMalice", "wrong", CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, &bad);

    /* Offers: ETYPE-INFO2 first, then the mechanisms in table order. A mechanism whose offer
     * is not constant (no KDC_PA_EDATA_CONSTANT) is asked every time; a worker whose offers are
     * all constant sends the same bytes from its cache. */
    build_fake_as_req("alice", NULL, NULL, &der, &len);
    for (int round = 0; round < 2; round++) {
        before = fake_edatas;
        n = ask(w, der, len, KDC_TRANSPORT_TCP);
        CHECK_INT_EQ(error_code(reply, n, &e), CK_KDC_ERR_PREAUTH_REQUIRED);
        md_types(e != NULL ? e->e_data : NULL, types, sizeof(types));
        CHECK(strcmp(types, "19,2,16") == 0);
        CHECK_INT_EQ(fake_edatas, before + 1);
        CK_KRB_ERROR_MSG_free(e);
        e = NULL;
    }
    {
        uint8_t first[4096];
        size_t first_len;
        CK_KRB_ERROR_MSG *e2 = NULL;

        n = ask(plain, der, len, KDC_TRANSPORT_TCP);
        CHECK_INT_EQ(error_code(reply, n, &e), CK_KDC_ERR_PREAUTH_REQUIRED);
        CHECK(plain->offers_der != NULL);
        n = ask(plain, der, len, KDC_TRANSPORT_TCP);
        CHECK_INT_EQ(error_code(reply, n, &e2), CK_KDC_ERR_PREAUTH_REQUIRED);
        md_types(e2 != NULL ? e2->e_data : NULL, types, sizeof(types));
        CHECK(strcmp(types, "19,2") == 0);
        if (e != NULL && e2 != NULL && e->e_data != NULL && e2->e_data != NULL) {
            first_len = (size_t)e->e_data->length;
            memcpy(first, e->e_data->data, first_len < sizeof(first) ? first_len : 0);
            CHECK_MEM_EQ(e2->e_data->data, (size_t)e2->e_data->length, first, first_len);
        }
        CK_KRB_ERROR_MSG_free(e);
        CK_KRB_ERROR_MSG_free(e2);
        e = NULL;
    }
    ck_asn1_free_der(der, len);

    /* Accepted: the mechanism's key protects the reply, its padata is in it. */
    before = fake_cleanups;
    build_fake_as_req("alice", "ok", NULL, &der, &len);
    n = ask(w, der, len, KDC_TRANSPORT_TCP);
    if (open_fake_rep(n, &c))
        CHECK_INT_EQ(c.flags, CK_TKT_FLG_INITIAL | CK_TKT_FLG_PRE_AUTHENT);
    creds_free(&c);
    CHECK_INT_EQ(fake_cleanups, before + 1);
    ck_asn1_free_der(der, len);

    /* Refused: its code and typed e-data, one cleanup. */
    before = fake_cleanups;
    build_fake_as_req("alice", "bad", NULL, &der, &len);
    n = ask(w, der, len, KDC_TRANSPORT_TCP);
    CHECK_INT_EQ(error_code(reply, n, &e), CK_KDC_ERR_CLIENT_NOT_TRUSTED);
    CHECK(e != NULL && e->e_data != NULL);
    if (e != NULL && e->e_data != NULL)
        CHECK_MEM_EQ(e->e_data->data, (size_t)e->e_data->length, "TD!!", 4);
    CK_KRB_ERROR_MSG_free(e);
    e = NULL;
    CHECK_INT_EQ(fake_cleanups, before + 1);
    ck_asn1_free_der(der, len);

    /* A wrong timestamp and a good fake method: one good method is enough. The other order: the
     * first refusal is the answer when nothing succeeds. */
    build_fake_as_req("alice", "ok", &bad, &der, &len);
    n = ask(w, der, len, KDC_TRANSPORT_TCP);
    if (open_fake_rep(n, &c))
        CHECK(c.flags & CK_TKT_FLG_PRE_AUTHENT);
    creds_free(&c);
    ck_asn1_free_der(der, len);
    build_fake_as_req("alice", "bad", &bad, &der, &len);
    n = ask(w, der, len, KDC_TRANSPORT_TCP);
    CHECK_INT_EQ(error_code(reply, n, NULL), CK_KDC_ERR_PREAUTH_FAILED);
    ck_asn1_free_der(der, len);
    /* A good timestamp still works, with the long-term key and ETYPE-INFO2. */
    build_fake_as_req("alice", NULL, &good, &der, &len);
    n = ask(w, der, len, KDC_TRANSPORT_TCP);
    if (open_rep(reply, n, &good, CK_KU_AS_REP_ENCPART, CK_KRB_ENC_AS_REP_PART, &c))
        CHECK(ck_asn1_padata_find(c.rep->padata, CK_PA_ETYPE_INFO2) != NULL);
    creds_free(&c);
    ck_asn1_free_der(der, len);

    /* A replacement key of an enctype the client did not ask for is never used. */
    build_fake_as_req("alice", "badkey", NULL, &der, &len);
    {
        CK_AS_REQ *req = NULL;
        const int32_t et[] = {CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96};

        /* Ask for aes256 only (the fake key is aes128-sha256). */
        CHECK_OK(ck_asn1_as_req_decode(der, len, &req));
        ck_asn1_free_der(der, len);
        der = NULL;
        if (req != NULL) {
            CHECK_OK(ck_asn1_etypes_set(req->req_body, et, 1));
            ck_asn1_kdc_req_body_modified(req->req_body);
            CHECK_OK(ck_asn1_as_req_encode(req, &der, &len));
            CK_AS_REQ_free(req);
        }
    }
    n = ask(w, der, len, KDC_TRANSPORT_TCP);
    CHECK_INT_EQ(error_code(reply, n, NULL), CK_KRB_ERR_GENERIC);
    ck_asn1_free_der(der, len);

    /* A certificate-only principal (no long-term key). */
    CHECK_OK(ck_db_principal_new("certonly@" REALM, &p));
    if (p != NULL) {
        p->kvno = 1;
        p->attributes = CK_ATTR_REQUIRES_PREAUTH;
        CHECK_OK(ck_store_put_principal(tstore, p));
        ck_db_principal_free(p);
    }
    /* Without a keyless mechanism: no reply key, as before. */
    build_fake_as_req("certonly", NULL, NULL, &der, &len);
    n = ask(plain, der, len, KDC_TRANSPORT_TCP);
    CHECK_INT_EQ(error_code(reply, n, NULL), CK_KDC_ERR_ETYPE_NOSUPP);
    /* With one: only it is offered (no ETYPE-INFO2, no PA-ENC-TIMESTAMP) ... */
    n = ask(w, der, len, KDC_TRANSPORT_TCP);
    CHECK_INT_EQ(error_code(reply, n, &e), CK_KDC_ERR_PREAUTH_REQUIRED);
    md_types(e != NULL ? e->e_data : NULL, types, sizeof(types));
    CHECK(strcmp(types, "16") == 0);
    CK_KRB_ERROR_MSG_free(e);
    e = NULL;
    ck_asn1_free_der(der, len);
    /* ... and it gets the ticket. */
    build_fake_as_req("certonly", "ok", NULL, &der, &len);
    n = ask(w, der, len, KDC_TRANSPORT_TCP);
    if (open_fake_rep(n, &c))
        CHECK(c.flags & CK_TKT_FLG_PRE_AUTHENT);
    creds_free(&c);
    ck_asn1_free_der(der, len);

    kdc_worker_free(plain);
    before = fake_finis;
    kdc_worker_free(w);
    CHECK_INT_EQ(fake_finis, before + 1);
}

/* ---- real MIT captures -------------------------------------------------------------------- */

static uint8_t *
read_vector(const char *name, size_t *len)
{
    char path[256];
    FILE *f;
    uint8_t *buf = malloc(65536);

    snprintf(path, sizeof(path), "vectors/mit/%s", name);
    *len = 0;
    if (buf == NULL || (f = fopen(path, "rb")) == NULL) {
        free(buf);
        return NULL;
    }
    *len = fread(buf, 1, 65536, f);
    fclose(f);
    return buf;
}

/* The MIT captures were made on 2026-11-21 at 22:35:57 UTC (their TGT is valid for a day): the
 * KDC's clock is set 33 s later, or an hour later to prove the skew check. */
#define MIT_CAPTURE_NOW 1795300590LL

static void
fixed_clock(void *ctx, int64_t *sec, int32_t *usec)
{
    *sec = *(const int64_t *)ctx;
    *usec = 0;
}

static void
test_mit_vectors(void)
{
    int64_t capture_now = MIT_CAPTURE_NOW, hour_later = MIT_CAPTURE_NOW + 3600;
    struct kdc_config cfg;
    struct kdc_worker *w, *wn;
    uint8_t *v;
    size_t len, n;
    ck_key alice;
    struct creds c;
    CK_KRB_ERROR_MSG *e = NULL;

    config_defaults(&cfg);
    cfg.clock = fixed_clock;
    cfg.clock_ctx = &capture_now;
    w = worker_with(&cfg);
    cfg.clock_ctx = &hour_later;
    wn = worker_with(&cfg);
    password_key("TEST.REALMalice", ALICE_PW, CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, &alice);

    /* The captures are part of the source tree: their absence is a failure, never a skip. */
    v = read_vector("as_req_nopreauth.der", &len);
    CHECK(v != NULL);
    if (v == NULL)
        goto out;
    n = ask(wn, v, len, KDC_TRANSPORT_UDP);
    CHECK_INT_EQ(error_code(reply, n, &e), CK_KDC_ERR_PREAUTH_REQUIRED);
    CK_KRB_ERROR_MSG_free(e);
    free(v);

    v = read_vector("as_req_enc_ts.der", &len);
    CHECK(v != NULL);
    if (v != NULL) {
        n = ask(wn, v, len, KDC_TRANSPORT_UDP);
        CHECK_INT_EQ(error_code(reply, n, NULL), CK_KRB_AP_ERR_SKEW);
        n = ask(w, v, len, KDC_TRANSPORT_UDP);
        if (open_rep(reply, n, &alice, CK_KU_AS_REP_ENCPART, CK_KRB_ENC_AS_REP_PART, &c)) {
            uint32_t nonce = 0;
            CHECK_OK(ck_asn1_nonce_get(c.part->nonce, &nonce));
            CHECK(nonce != 0);
            CHECK(c.flags & CK_TKT_FLG_PRE_AUTHENT);
        }
        creds_free(&c);
        free(v);
    }
    /* MIT's TGS-REQ (TGT under krbtgt kvno 2 = "tgtpw", with PA-FX-FAST that we ignore). */
    v = read_vector("tgs_req.der", &len);
    CHECK(v != NULL);
    if (v != NULL) {
        n = ask(w, v, len, KDC_TRANSPORT_UDP);
        CHECK(n > 0 && ck_asn1_msg_type(reply, n) == CK_KRB_TGS_REP);
        if (ck_asn1_msg_type(reply, n) != CK_KRB_TGS_REP)
            fprintf(stderr, "  TGS error %d\n", error_code(reply, n, NULL));
        free(v);
    }
    /* Other captured messages are not requests: silence over UDP. */
    if ((v = read_vector("as_rep.der", &len)) != NULL) {
        CHECK_INT_EQ(ask(w, v, len, KDC_TRANSPORT_UDP), 0);
        free(v);
    }
out:
    kdc_worker_free(w);
    kdc_worker_free(wn);
}

/* Informational timing (prints µs per exchange; the ASan build is several times slower). */
static void
test_timing(void)
{
    struct kdc_worker *w = worker();
    struct creds tgt;
    ck_key k;
    struct as_opts o = {.cname = "alice", .sname = "krbtgt/" REALM, .ts_key = &k};

    /* Production cache settings (worker() checks the change counter on every request). */
    w->cache_check_ms = CK_STORE_CACHE_CHECK_MS;
    ck_store_cache_configure(w->store, w->cache_max, w->cache_check_ms);
    struct tgs_opts to = {.sname = "host/server.test.realm"};
    uint8_t *as = NULL, *tg = NULL;
    size_t as_len = 0, tg_len = 0, n;
    struct timespec t0, t1;
    const int iters = 2000;

    password_key("TEST.REALMalice", ALICE_PW, CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, &k);
    build_as_req(&o, &as, &as_len);
    if (!get_tgt(w, 0, 0, &tgt))
        goto out;
    build_tgs_req(&tgt, &to, &tg, &tg_len);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < iters; i++)
        kdc_handle_request(w, as, as_len, KDC_TRANSPORT_TCP, NULL, reply, sizeof(reply), &n);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr, "  AS exchange (PA-ENC-TIMESTAMP, aes256): %.1f us\n",
            ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / 1e3 /
                iters);
    CHECK(ck_asn1_msg_type(reply, n) == CK_KRB_AS_REP);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < iters; i++)
        kdc_handle_request(w, tg, tg_len, KDC_TRANSPORT_TCP, NULL, reply, sizeof(reply), &n);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr, "  TGS exchange: %.1f us\n",
            ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / 1e3 /
                iters);
    CHECK(ck_asn1_msg_type(reply, n) == CK_KRB_TGS_REP);
out:
    ck_asn1_free_der(as, as_len);
    ck_asn1_free_der(tg, tg_len);
    creds_free(&tgt);
    kdc_worker_free(w);
    realm_down();
}

CK_TEST_MAIN("kdc", CK_TEST_CASE(test_as_preauth_required), CK_TEST_CASE(test_as_issue),
             CK_TEST_CASE(test_as_lifetimes), CK_TEST_CASE(test_as_errors),
             CK_TEST_CASE(test_tgs_issue), CK_TEST_CASE(test_tgs_errors),
             CK_TEST_CASE(test_transport_rules), CK_TEST_CASE(test_lookaside_limits), CK_TEST_CASE(test_stale_refusal_rechecked),
             CK_TEST_CASE(test_mit_vectors), CK_TEST_CASE(test_tgs_renew_and_rotation),
             CK_TEST_CASE(test_log_escapes_names), CK_TEST_CASE(test_log_batched),
             CK_TEST_CASE(test_as_supported_enctypes),
             CK_TEST_CASE(test_preauth_table),
             CK_TEST_CASE(test_timing))
