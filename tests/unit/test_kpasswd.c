/* kpasswd: the message codec (lib/krb/kpasswd.c), ChangePasswdData (lib/asn1/kpasswd_codec.c)
 * and the service (daemons/kdc/kpasswd.c) driven in-process against a temporary realm.
 * Golden vectors: requests and replies captured from MIT kpasswd (version 0x0001) and Heimdal
 * kpasswd (0xff80) against cablekey-kdc, in tests/fuzz/corpus/kpasswd/. */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/asn1t.h>

#include "ck_test.h"
#include "cablekey/ap.h"
#include "cablekey/kpasswd.h"
#include "cablekey/nametypes.h"
#include "cablekey/net.h"
#include "cablekey/safepriv.h"
#include "cablekey/store.h"
#include "cablekey/util.h"
#include "kpasswd.h"
#include "pg_fixture.h"

#define REALM "TEST.REALM"
#define CORPUS "fuzz/corpus/kpasswd/"

static uint8_t *
read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = malloc(70000);
    size_t n;

    CHECK(f != NULL);
    if (f == NULL || buf == NULL) {
        if (f != NULL)
            fclose(f);
        free(buf);
        *len = 0;
        return NULL;
    }
    n = fread(buf, 1, 70000, f);
    fclose(f);
    *len = n;
    return buf;
}

/* ---- framing ----------------------------------------------------------------------------- */

static const uint8_t ap_stub[] = {0x6e, 0x03, 0x30, 0x01, 0x00};
static const uint8_t priv_stub[] = {0x75, 0x02, 0x30, 0x00};

static void
test_req_roundtrip(void)
{
    uint8_t *msg = NULL;
    size_t len = 0;
    ck_kpasswd_req r;

    CHECK_OK(ck_kpasswd_req_build(CK_KPASSWD_VERSION_SETPW, ap_stub, sizeof(ap_stub), priv_stub,
                                  sizeof(priv_stub), &msg, &len));
    CHECK_INT_EQ(len, 6 + sizeof(ap_stub) + sizeof(priv_stub));
    CHECK_INT_EQ(msg[0] << 8 | msg[1], len);
    CHECK_INT_EQ(msg[2] << 8 | msg[3], 0xff80);
    CHECK_INT_EQ(msg[4] << 8 | msg[5], sizeof(ap_stub));
    CHECK_OK(ck_kpasswd_req_parse(msg, len, &r));
    CHECK_INT_EQ(r.version, CK_KPASSWD_VERSION_SETPW);
    CHECK_MEM_EQ(r.ap_req, r.ap_req_len, ap_stub, sizeof(ap_stub));
    CHECK_MEM_EQ(r.priv, r.priv_len, priv_stub, sizeof(priv_stub));
    free(msg);
    CHECK_OK(ck_kpasswd_req_build(CK_KPASSWD_VERSION_CHANGEPW, ap_stub, sizeof(ap_stub),
                                  priv_stub, sizeof(priv_stub), &msg, &len));
    CHECK_OK(ck_kpasswd_req_parse(msg, len, &r));
    CHECK_INT_EQ(r.version, CK_KPASSWD_VERSION_CHANGEPW);
    free(msg);
}

/* Every prefix and every padded form of a valid request is refused: the length field has to
 * match, and rewriting it to match leaves the AP-REQ length pointing past the end. */
static void
test_req_truncations(void)
{
    uint8_t *msg = NULL, buf[64];
    size_t len = 0;
    ck_kpasswd_req r;

    CHECK_OK(ck_kpasswd_req_build(CK_KPASSWD_VERSION_CHANGEPW, ap_stub, sizeof(ap_stub),
                                  priv_stub, sizeof(priv_stub), &msg, &len));
    for (size_t n = 0; n < len; n++) {
        CHECK(ck_kpasswd_req_parse(msg, n, &r) == CK_ERR_DECODE);
        /* The same prefix with a consistent length field: refused while it cuts into the
         * header or the AP-REQ; after that the framing holds a shorter KRB-PRIV (whose own
         * decoder refuses it). */
        memcpy(buf, msg, n);
        if (n >= 2) {
            buf[0] = (uint8_t)(n >> 8);
            buf[1] = (uint8_t)n;
        }
        if (n <= 6 + sizeof(ap_stub)) {
            CHECK(ck_kpasswd_req_parse(buf, n, &r) == CK_ERR_DECODE);
        } else {
            CHECK_OK(ck_kpasswd_req_parse(buf, n, &r));
            CHECK_INT_EQ(r.priv_len, n - 6 - sizeof(ap_stub));
        }
    }
    /* One trailing byte more than the length field says. */
    memcpy(buf, msg, len);
    buf[len] = 0;
    CHECK(ck_kpasswd_req_parse(buf, len + 1, &r) == CK_ERR_DECODE);
    /* Length field too large and too small. */
    memcpy(buf, msg, len);
    buf[1] = (uint8_t)(len + 1);
    CHECK(ck_kpasswd_req_parse(buf, len, &r) == CK_ERR_DECODE);
    buf[1] = (uint8_t)(len - 1);
    CHECK(ck_kpasswd_req_parse(buf, len, &r) == CK_ERR_DECODE);
    /* AP-REQ length 0, exactly the rest (no KRB-PRIV), and beyond the end. */
    memcpy(buf, msg, len);
    buf[4] = 0;
    buf[5] = 0;
    CHECK(ck_kpasswd_req_parse(buf, len, &r) == CK_ERR_DECODE);
    buf[5] = (uint8_t)(len - 6);
    CHECK(ck_kpasswd_req_parse(buf, len, &r) == CK_ERR_DECODE);
    buf[4] = 0xff;
    buf[5] = 0xff;
    CHECK(ck_kpasswd_req_parse(buf, len, &r) == CK_ERR_DECODE);
    free(msg);
}

static void
test_req_bad_version_and_size(void)
{
    static const uint16_t bad[] = {0x0000, 0x0002, 0xff7f, 0xff81, 0x0500, 0xffff};
    uint8_t *msg = NULL, *big;
    size_t len = 0;
    ck_kpasswd_req r;

    CHECK_OK(ck_kpasswd_req_build(CK_KPASSWD_VERSION_CHANGEPW, ap_stub, sizeof(ap_stub),
                                  priv_stub, sizeof(priv_stub), &msg, &len));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        msg[2] = (uint8_t)(bad[i] >> 8);
        msg[3] = (uint8_t)bad[i];
        CHECK(ck_kpasswd_req_parse(msg, len, &r) == CK_ERR_UNSUPPORTED);
        CHECK_INT_EQ(r.version, bad[i]);
    }
    free(msg);
    /* Over 65535 bytes: the length field cannot describe it. */
    big = calloc(1, 70000);
    CHECK(big != NULL);
    CHECK(ck_kpasswd_req_parse(big, 70000, &r) == CK_ERR_DECODE);
    CHECK(ck_kpasswd_req_build(1, big, 65530, priv_stub, sizeof(priv_stub), &msg, &len) ==
          CK_ERR_LIMIT);
    CHECK(ck_kpasswd_req_build(1, big, 0, priv_stub, sizeof(priv_stub), &msg, &len) ==
          CK_ERR_INVAL);
    free(big);
}

static void
test_rep_roundtrip(void)
{
    static const uint8_t aprep[] = {0x6f, 0x02, 0x30, 0x00};
    static const uint8_t err[] = {0x7e, 0x02, 0x30, 0x00};
    uint8_t buf[64];
    size_t len = 0;
    ck_kpasswd_rep r;

    CHECK_OK(ck_kpasswd_rep_build(1, aprep, sizeof(aprep), priv_stub, sizeof(priv_stub), buf,
                                  sizeof(buf), &len));
    CHECK_OK(ck_kpasswd_rep_parse(buf, len, &r));
    CHECK_INT_EQ(r.version, 1);
    CHECK(!r.is_error);
    CHECK_MEM_EQ(r.ap_rep, r.ap_rep_len, aprep, sizeof(aprep));
    CHECK_MEM_EQ(r.body, r.body_len, priv_stub, sizeof(priv_stub));
    for (size_t n = 0; n < len; n++)
        CHECK(ck_kpasswd_rep_parse(buf, n, &r) != 0);

    CHECK_OK(ck_kpasswd_rep_build(1, NULL, 0, err, sizeof(err), buf, sizeof(buf), &len));
    CHECK_OK(ck_kpasswd_rep_parse(buf, len, &r));
    CHECK(r.is_error);
    CHECK_INT_EQ(r.ap_rep_len, 0);
    /* A bare KRB-ERROR. */
    CHECK_OK(ck_kpasswd_rep_parse(err, sizeof(err), &r));
    CHECK(r.is_error);
    CHECK_INT_EQ(r.version, 0);
    /* KRB-PRIV without AP-REP, KRB-ERROR with one. */
    CHECK_OK(ck_kpasswd_rep_build(1, NULL, 0, priv_stub, sizeof(priv_stub), buf, sizeof(buf),
                                  &len));
    CHECK(ck_kpasswd_rep_parse(buf, len, &r) == CK_ERR_DECODE);
    CHECK_OK(ck_kpasswd_rep_build(1, aprep, sizeof(aprep), err, sizeof(err), buf, sizeof(buf),
                                  &len));
    CHECK(ck_kpasswd_rep_parse(buf, len, &r) == CK_ERR_DECODE);
    /* Does not fit the caller's buffer. */
    CHECK(ck_kpasswd_rep_build(1, aprep, sizeof(aprep), err, sizeof(err), buf, 8, &len) ==
          CK_ERR_LIMIT);
}

static void
test_result_data(void)
{
    uint8_t *d = NULL, raw[8];
    size_t len = 0;
    uint16_t code = 0;
    char s[64], *longs;

    CHECK_OK(ck_kpasswd_result_build(CK_KPASSWD_SOFTERROR, "Password too short", &d, &len));
    CHECK_INT_EQ(len, 2 + strlen("Password too short"));
    CHECK_OK(ck_kpasswd_result_parse(d, len, &code, s, sizeof(s)));
    CHECK_INT_EQ(code, CK_KPASSWD_SOFTERROR);
    CHECK(strcmp(s, "Password too short") == 0);
    free(d);
    CHECK_OK(ck_kpasswd_result_build(CK_KPASSWD_SUCCESS, NULL, &d, &len));
    CHECK_INT_EQ(len, 2);
    free(d);
    /* Too short; terminal escapes neutralised; small output buffer truncates. */
    CHECK(ck_kpasswd_result_parse((const uint8_t *)"\x00", 1, &code, s, sizeof(s)) ==
          CK_ERR_DECODE);
    memcpy(raw, "\x00\x04" "a\x1b[b", 6);
    CHECK_OK(ck_kpasswd_result_parse(raw, 6, &code, s, sizeof(s)));
    CHECK(strcmp(s, "a?[b") == 0);
    CHECK_OK(ck_kpasswd_result_parse(raw, 6, &code, s, 3));
    CHECK(strcmp(s, "a?") == 0);
    /* An overlong string is cut when building (on a UTF-8 boundary), refused when parsing. */
    longs = malloc(CK_KPASSWD_MAX_RESULT_STRING + 10);
    CHECK(longs != NULL);
    memset(longs, 'x', CK_KPASSWD_MAX_RESULT_STRING - 1);
    memcpy(longs + CK_KPASSWD_MAX_RESULT_STRING - 1, "\xc3\xa9zz", 5);
    CHECK_OK(ck_kpasswd_result_build(1, longs, &d, &len));
    CHECK_INT_EQ(len, 2 + CK_KPASSWD_MAX_RESULT_STRING - 1);
    free(d);
    free(longs);
    d = calloc(1, 3 + CK_KPASSWD_MAX_RESULT_STRING);
    CHECK(ck_kpasswd_result_parse(d, 3 + CK_KPASSWD_MAX_RESULT_STRING, &code, s, sizeof(s)) ==
          CK_ERR_DECODE);
    free(d);
}

/* ---- ChangePasswdData -------------------------------------------------------------------- */

static void
test_change_passwd_data(void)
{
    uint8_t *der = NULL;
    size_t len = 0, pwlen = 0;
    char *pw = NULL, target[256];

    /* Without targname. */
    CHECK_OK(ck_kpasswd_setpw_data_build("n3w pass", 8, NULL, &der, &len));
    CHECK_OK(ck_kpasswd_setpw_data_parse(der, len, &pw, &pwlen, target, sizeof(target)));
    CHECK(pw != NULL && strcmp(pw, "n3w pass") == 0);
    CHECK_INT_EQ(pwlen, 8);
    CHECK(target[0] == '\0');
    ck_free_secret(pw, pwlen + 1);
    /* Known encoding: SEQUENCE { [0] OCTET STRING "ab" }. */
    {
        static const uint8_t want[] = {0x30, 0x06, 0xa0, 0x04, 0x04, 0x02, 'a', 'b'};
        uint8_t *d2 = NULL;
        size_t l2 = 0;
        CHECK_OK(ck_kpasswd_setpw_data_build("ab", 2, NULL, &d2, &l2));
        CHECK_MEM_EQ(d2, l2, want, sizeof(want));
        free(d2);
    }
    free(der);
    /* With targname and targrealm. */
    CHECK_OK(ck_kpasswd_setpw_data_build("pw", 2, "bob/admin@OTHER.REALM", &der, &len));
    CHECK_OK(ck_kpasswd_setpw_data_parse(der, len, &pw, &pwlen, target, sizeof(target)));
    CHECK(strcmp(target, "bob/admin@OTHER.REALM") == 0);
    CHECK(strcmp(pw, "pw") == 0);
    ck_free_secret(pw, pwlen + 1);
    /* Every truncation fails. */
    for (size_t n = 0; n < len; n++)
        CHECK(ck_kpasswd_setpw_data_parse(der, n, &pw, &pwlen, target, sizeof(target)) != 0);
    free(der);
    /* A target without a realm is refused when building. */
    CHECK(ck_kpasswd_setpw_data_build("pw", 2, "bob", &der, &len) != 0);
    /* Empty password, NUL in it. */
    CHECK_OK(ck_kpasswd_setpw_data_build("", 0, NULL, &der, &len));
    CHECK(ck_kpasswd_setpw_data_parse(der, len, &pw, &pwlen, target, sizeof(target)) ==
          CK_ERR_INVAL);
    free(der);
    CHECK_OK(ck_kpasswd_setpw_data_build("a\0b", 3, NULL, &der, &len));
    CHECK(ck_kpasswd_setpw_data_parse(der, len, &pw, &pwlen, target, sizeof(target)) ==
          CK_ERR_INVAL);
    free(der);
}

static void
test_change_passwd_data_invalid(void)
{
    static const char *const bob[] = {"bob"};
    CK_CHANGE_PASSWD_DATA *d = CK_CHANGE_PASSWD_DATA_new(), *out = NULL;
    unsigned char *raw = NULL;
    uint8_t *der = NULL, *big;
    size_t len = 0;
    int n;

    CHECK(d != NULL);
    CHECK_OK(ck_asn1_octets_set(&d->newpasswd, (const uint8_t *)"pw", 2));
    CHECK_OK(ck_asn1_principal_new(CK_NT_PRINCIPAL, bob, 1, &d->targname));
    /* targname without targrealm: the encoder refuses, and so does the decoder for raw DER. */
    CHECK(ck_asn1_change_passwd_data_encode(d, &der, &len) == CK_ERR_ENCODE);
    n = i2d_CK_CHANGE_PASSWD_DATA(d, &raw);
    CHECK(n > 0);
    CHECK(ck_asn1_change_passwd_data_decode(raw, (size_t)n, &out) == CK_ERR_DECODE);
    CHECK(out == NULL);
    OPENSSL_free(raw);
    raw = NULL;
    /* targrealm without targname. */
    CK_PRINCIPAL_NAME_free(d->targname);
    d->targname = NULL;
    CHECK_OK(ck_asn1_kstring_set(&d->targrealm, REALM));
    n = i2d_CK_CHANGE_PASSWD_DATA(d, &raw);
    CHECK(n > 0);
    CHECK(ck_asn1_change_passwd_data_decode(raw, (size_t)n, &out) == CK_ERR_DECODE);
    OPENSSL_free(raw);
    raw = NULL;
    /* An oversized password. */
    ASN1_GENERALSTRING_free(d->targrealm);
    d->targrealm = NULL;
    big = calloc(1, CK_KPASSWD_MAX_PASSWORD + 1);
    memset(big, 'p', CK_KPASSWD_MAX_PASSWORD + 1);
    CHECK_OK(ck_asn1_octets_set(&d->newpasswd, big, CK_KPASSWD_MAX_PASSWORD + 1));
    n = i2d_CK_CHANGE_PASSWD_DATA(d, &raw);
    CHECK(n > 0);
    CHECK(ck_asn1_change_passwd_data_decode(raw, (size_t)n, &out) == CK_ERR_DECODE);
    OPENSSL_free(raw);
    free(big);
    /* Trailing garbage and a wrong outer tag. */
    {
        static const uint8_t trail[] = {0x30, 0x06, 0xa0, 0x04, 0x04, 0x02, 'a', 'b', 0x00};
        static const uint8_t set[] = {0x31, 0x06, 0xa0, 0x04, 0x04, 0x02, 'a', 'b'};
        CHECK(ck_asn1_change_passwd_data_decode(trail, sizeof(trail), &out) == CK_ERR_DECODE);
        CHECK(ck_asn1_change_passwd_data_decode(set, sizeof(set), &out) == CK_ERR_DECODE);
    }
    CK_CHANGE_PASSWD_DATA_free(d);
}

/* ---- golden vectors ---------------------------------------------------------------------- */

static void
check_capture(const char *req_file, const char *rep_file, uint16_t version)
{
    uint8_t *req, *rep;
    size_t req_len, rep_len;
    ck_kpasswd_req r;
    ck_kpasswd_rep p;
    CK_AP_REQ *apreq = NULL;
    CK_KRB_PRIV_MSG *priv = NULL;
    CK_AP_REP *aprep = NULL;

    req = read_file(req_file, &req_len);
    rep = read_file(rep_file, &rep_len);
    if (req == NULL || rep == NULL)
        goto out;
    CHECK_OK(ck_kpasswd_req_parse(req, req_len, &r));
    CHECK_INT_EQ(r.version, version);
    CHECK_INT_EQ(r.ap_req_len, (size_t)(req[4] << 8 | req[5]));
    CHECK_OK(ck_asn1_ap_req_decode(r.ap_req, r.ap_req_len, &apreq));
    CHECK(apreq != NULL && ck_asn1_kstring_eq(apreq->ticket->realm, REALM));
    CHECK_OK(ck_asn1_krb_priv_decode(r.priv, r.priv_len, &priv));
    /* The reply our service sent: version 1, AP-REP, KRB-PRIV. */
    CHECK_OK(ck_kpasswd_rep_parse(rep, rep_len, &p));
    CHECK_INT_EQ(p.version, 1);
    CHECK(!p.is_error);
    CHECK_OK(ck_asn1_ap_rep_decode(p.ap_rep, p.ap_rep_len, &aprep));
out:
    CK_AP_REQ_free(apreq);
    CK_KRB_PRIV_MSG_free(priv);
    CK_AP_REP_free(aprep);
    free(req);
    free(rep);
}

static void
test_golden_mit(void)
{
    check_capture(CORPUS "mit-kpasswd-v1-req.bin", CORPUS "mit-kpasswd-v1-rep.bin",
                  CK_KPASSWD_VERSION_CHANGEPW);
}

static void
test_golden_heimdal(void)
{
    check_capture(CORPUS "heimdal-kpasswd-setpw-req.bin", CORPUS "heimdal-kpasswd-setpw-rep.bin",
                  CK_KPASSWD_VERSION_SETPW);
}

/* ---- the service ------------------------------------------------------------------------- */

static const int32_t enctypes[] = {CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96,
                                   CK_ENCTYPE_AES128_CTS_HMAC_SHA256_128};

struct realm {
    char dir[64], db[128], stash[128];
    struct kdc_config cfg;
    ck_store *store;
    ck_key svc_key;
    uint32_t svc_kvno;
};

static void
add_princ(struct realm *r, const char *name, const char *pw, uint32_t attrs, int64_t pw_expires)
{
    ck_db_principal *p = NULL;

    CHECK_OK(ck_db_principal_new(name, &p));
    p->kvno = 1;
    p->attributes = attrs;
    p->pw_expires = pw_expires;
    CHECK_OK(ck_db_keys_make(name, pw, pw != NULL ? strlen(pw) : 0, enctypes, 2, 1, &p->keys,
                             &p->n_keys));
    CHECK_OK(ck_store_create_principal(r->store, p));
    ck_db_principal_free(p);
}

static void
realm_up(struct realm *r)
{
    ck_db_principal *svc = NULL;

    memset(r, 0, sizeof(*r));
    snprintf(r->dir, sizeof(r->dir), "/tmp/ck-kpasswd-XXXXXX");
    CHECK(mkdtemp(r->dir) != NULL);
    snprintf(r->db, sizeof(r->db), "%s/kdc.db", r->dir);
    snprintf(r->stash, sizeof(r->stash), "%s/kdc.db.stash", r->dir);
    ck_test_store_location(r->db, sizeof(r->db)); /* PostgreSQL mode: pg_fixture.h */
    CHECK_OK(ck_store_init_realm(r->db, r->stash, REALM, enctypes, 2, 0, 0));
    CHECK_OK(ck_store_open(r->db, r->stash, 0, &r->store));
    add_princ(r, "kadmin/changepw@" REALM, NULL,
              CK_ATTR_PWCHANGE_SERVICE | CK_ATTR_DISALLOW_TGT_BASED, 0);
    add_princ(r, "alice@" REALM, "alicepw", CK_ATTR_REQUIRES_PREAUTH | CK_ATTR_REQUIRES_PWCHANGE,
              1000);
    add_princ(r, "bob@" REALM, "bobpw", CK_ATTR_REQUIRES_PREAUTH, 0);
    add_princ(r, "admin@" REALM, "adminpw", 0, 0);
    CHECK_OK(ck_store_get_principal(r->store, "kadmin/changepw@" REALM, &svc));
    if (svc != NULL) {
        CHECK_OK(ck_key_copy(&r->svc_key, &ck_db_principal_find_key(
                                              svc, 0, CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96)->key));
        r->svc_kvno = svc->kvno;
    }
    ck_db_principal_free(svc);
    kdc_config_defaults(&r->cfg);
    r->cfg.db_path = strdup(r->db);
    r->cfg.stash_path = strdup(r->stash);
}

static void
realm_down(struct realm *r)
{
    char path[160];

    ck_store_close(r->store);
    ck_key_clear(&r->svc_key);
    kdc_config_free_contents(&r->cfg);
    unlink(r->db);
    unlink(r->stash);
    snprintf(path, sizeof(path), "%s-wal", r->db);
    unlink(path);
    snprintf(path, sizeof(path), "%s-shm", r->db);
    unlink(path);
    rmdir(r->dir);
}

/* What a client holds: a ticket for kadmin/changepw and its session key. */
struct client {
    CK_TICKET *ticket;
    ck_key session, subkey;
    CK_PRINCIPAL_NAME *cname;
    int64_t ctime;
    int32_t cusec;
};

static void
client_up(struct client *c, struct realm *r, const char *cname, bool initial)
{
    static const char *const svc[] = {"kadmin", "changepw"};
    CK_ENC_TICKET_PART *etp = CK_ENC_TICKET_PART_new();
    int64_t now;
    int32_t us;

    memset(c, 0, sizeof(*c));
    ck_now(&now, &us);
    CHECK_OK(ck_random_key(CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, &c->session));
    CHECK_OK(ck_random_key(CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, &c->subkey));
    CHECK_OK(ck_asn1_principal_new(CK_NT_PRINCIPAL, &cname, 1, &c->cname));
    CHECK_OK(ck_asn1_flags_set(&etp->flags, initial ? CK_TKT_FLG_INITIAL : 0));
    CHECK_OK(ck_key_to_asn1(&c->session, &etp->key));
    CHECK_OK(ck_asn1_kstring_set(&etp->crealm, REALM));
    CHECK_OK(ck_asn1_principal_set(etp->cname, CK_NT_PRINCIPAL, &cname, 1));
    etp->transited->tr_type = 1;
    CHECK_OK(ck_asn1_time_set(&etp->authtime, now));
    CHECK_OK(ck_asn1_time_set(&etp->endtime, now + 300));
    c->ticket = CK_TICKET_new();
    CHECK_OK(ck_asn1_kstring_set(&c->ticket->realm, REALM));
    CHECK_OK(ck_asn1_principal_set(c->ticket->sname, CK_NT_SRV_INST, svc, 2));
    CHECK_OK(ck_ticket_seal(c->ticket, etp, &r->svc_key, r->svc_kvno));
    CK_ENC_TICKET_PART_free(etp);
}

static void
client_down(struct client *c)
{
    CK_TICKET_free(c->ticket);
    CK_PRINCIPAL_NAME_free(c->cname);
    ck_key_clear(&c->session);
    ck_key_clear(&c->subkey);
}

/* A request with a subkey in the authenticator and the KRB-PRIV under the subkey: version 1
 * with the authenticator's sequence number (MIT's form, except that MIT's omitted zero cannot be
 * built here; tests/interop/t_kpasswd.sh runs MIT's), 0xff80 with a timestamp (Heimdal's). */
/* How a request departs from the well-formed one. */
enum req_flaw { FLAW_NONE, FLAW_SEQ, FLAW_OLD_TIMESTAMP };

static void
make_request_flawed(struct client *c, uint16_t version, const char *pw, const char *target,
                    enum req_flaw flaw, uint8_t **msg, size_t *len)
{
    ck_krb_address a;
    ck_krb_msg_params p;
    uint8_t *apreq = NULL, *priv = NULL, *data = NULL;
    size_t apreq_len = 0, priv_len = 0, data_len = 0;

    static const uint32_t seq = 0x1234567;

    CHECK_OK(ck_ap_req_build(c->ticket, &c->session, REALM, c->cname, 0, NULL, CK_KU_AP_REQ_AUTH,
                             &c->subkey, &seq, &c->ctime, &c->cusec, &apreq, &apreq_len));
    if (version == CK_KPASSWD_VERSION_SETPW) {
        CHECK_OK(ck_kpasswd_setpw_data_build(pw, strlen(pw), target, &data, &data_len));
    } else {
        data = (uint8_t *)strdup(pw);
        data_len = strlen(pw);
    }
    CHECK_OK(ck_krb_address_directional(0, &a));
    memset(&p, 0, sizeof(p));
    p.use_timestamp = version == CK_KPASSWD_VERSION_SETPW;
    p.use_seq = !p.use_timestamp;
    p.seq = flaw == FLAW_SEQ ? seq + 1 : seq;
    if (flaw == FLAW_OLD_TIMESTAMP) {
        int32_t us;
        ck_now(&p.timestamp, &us);
        p.timestamp -= 3600;
        p.use_timestamp = true;
        p.use_seq = false;
    }
    p.s_address = &a;
    CHECK_OK(ck_krb_priv_build(&c->subkey, data, data_len, &p, &priv, &priv_len));
    CHECK_OK(ck_kpasswd_req_build(version, apreq, apreq_len, priv, priv_len, msg, len));
    ck_asn1_free_der(apreq, apreq_len);
    ck_free_secret(data, data_len);
    free(priv);
}

static void
make_request(struct client *c, uint16_t version, const char *pw, const char *target,
             uint8_t **msg, size_t *len)
{
    make_request_flawed(c, version, pw, target, FLAW_NONE, msg, len);
}

/* Runs the request and returns the result code from the reply (KRB-PRIV or KRB-ERROR e-data);
 * *krb_error receives the KRB-ERROR code (0 for a KRB-PRIV reply). -1: no reply. */
static int
exchange(struct kpasswd_worker *w, struct client *c, const uint8_t *msg, size_t len,
         int32_t *krb_error, char *text, size_t text_size)
{
    uint8_t reply[4096];
    size_t reply_len = 0;
    ck_kpasswd_rep rep;
    uint16_t code = 0xffff;
    struct sockaddr_in local;
    struct ck_peer local_peer;

    memset(&local, 0, sizeof(local));
    local.sin_family = AF_INET;
    local.sin_addr.s_addr = htonl(0x7f000001);
    ck_peer_set(&local_peer, (const struct sockaddr *)&local, sizeof(local));
    *krb_error = 0;
    CHECK_OK(kpasswd_handle_request(w, msg, len, false, NULL, &local_peer, reply,
                                    sizeof(reply), &reply_len));
    if (reply_len == 0)
        return -1;
    CHECK_OK(ck_kpasswd_rep_parse(reply, reply_len, &rep));
    if (rep.is_error) {
        CK_KRB_ERROR_MSG *err = NULL;
        CHECK_OK(ck_asn1_krb_error_decode(rep.body, rep.body_len, &err));
        if (err == NULL)
            return -2;
        *krb_error = err->error_code;
        CHECK(err->e_data != NULL);
        if (err->e_data != NULL)
            CHECK_OK(ck_kpasswd_result_parse(err->e_data->data, (size_t)err->e_data->length,
                                             &code, text, text_size));
        CK_KRB_ERROR_MSG_free(err);
    } else {
        ck_ap_rep_result ar;
        ck_krb_msg_info info;
        ck_krb_address want;
        ck_krb_msg_check chk;
        uint8_t *data = NULL;
        size_t data_len = 0;

        memset(&ar, 0, sizeof(ar));
        CHECK_OK(ck_ap_rep_verify(rep.ap_rep, rep.ap_rep_len, &c->session, c->ctime, c->cusec,
                                  &ar));
        CHECK(ar.has_seq_number);
        /* What MIT and Heimdal check: the AP-REP's sequence number, our address. */
        CHECK_OK(ck_krb_address_from_sockaddr((struct sockaddr *)&local, &want));
        memset(&chk, 0, sizeof(chk));
        chk.check_seq = true;
        chk.seq = ar.seq_number;
        chk.s_address = &want;
        chk.require_timestamp = true;
        CHECK_OK(ck_krb_priv_read(&c->subkey, rep.body, rep.body_len, &chk, &data, &data_len,
                                  &info));
        if (data != NULL)
            CHECK_OK(ck_kpasswd_result_parse(data, data_len, &code, text, text_size));
        free(data);
        ck_ap_rep_result_clear(&ar);
    }
    return code;
}

static void
test_service_change_own(void)
{
    struct realm r;
    struct kpasswd_server *srv = NULL;
    struct kpasswd_worker *w = NULL;
    struct client c;
    ck_db_principal *p = NULL;
    uint8_t *msg = NULL;
    size_t len = 0;
    int32_t kerr;
    char text[256];

    realm_up(&r);
    CHECK_OK(kpasswd_server_new(&r.cfg, NULL, &srv));
    CHECK_OK(kpasswd_worker_new(srv, &w));
    if (w == NULL)
        goto out;
    client_up(&c, &r, "alice", true);
    make_request(&c, CK_KPASSWD_VERSION_CHANGEPW, "alice-new-pw", NULL, &msg, &len);
    CHECK_INT_EQ(exchange(w, &c, msg, len, &kerr, text, sizeof(text)), CK_KPASSWD_SUCCESS);
    CHECK_OK(ck_store_get_principal(r.store, "alice@" REALM, &p));
    if (p != NULL) {
        ck_db_key *k = NULL;
        size_t n = 0;

        CHECK_INT_EQ(p->kvno, 2);
        CHECK(!(p->attributes & CK_ATTR_REQUIRES_PWCHANGE));
        CHECK(p->attributes & CK_ATTR_REQUIRES_PREAUTH);
        CHECK_INT_EQ(p->pw_expires, 0);
        /* The new keys are the new password's. */
        CHECK_OK(ck_db_keys_make("alice@" REALM, "alice-new-pw", 12, enctypes, 2, 2, &k, &n));
        CHECK(n == 2 && ck_ct_equal(ck_db_principal_find_key(p, 2, enctypes[0])->key.contents,
                                    k[0].key.contents, k[0].key.length));
        ck_db_keys_free(k, n);
    }
    ck_db_principal_free(p);
    /* The same bytes again: a replay. */
    CHECK_INT_EQ(exchange(w, &c, msg, len, &kerr, text, sizeof(text)), CK_KPASSWD_AUTHERROR);
    CHECK_INT_EQ(kerr, CK_KRB_AP_ERR_REPEAT);
    free(msg);
    /* Version 0xff80 without a target changes one's own password too. */
    make_request(&c, CK_KPASSWD_VERSION_SETPW, "alice-pw-3", NULL, &msg, &len);
    CHECK_INT_EQ(exchange(w, &c, msg, len, &kerr, text, sizeof(text)), CK_KPASSWD_SUCCESS);
    free(msg);
    client_down(&c);
out:
    kpasswd_worker_free(w);
    kpasswd_server_free(srv);
    realm_down(&r);
}

static void
test_service_refusals(void)
{
    struct realm r;
    struct kpasswd_server *srv = NULL;
    struct kpasswd_worker *w = NULL;
    struct client c, adm;
    ck_db_principal *p = NULL;
    uint8_t *msg = NULL, garbage[32];
    size_t len = 0;
    int32_t kerr;
    char text[256];

    realm_up(&r);
    CHECK_OK(kpasswd_server_new(&r.cfg, "admin@" REALM, &srv));
    CHECK_OK(kpasswd_worker_new(srv, &w));
    if (w == NULL)
        goto out;
    /* A ticket that is not INITIAL (from the TGS) may not change the password. */
    client_up(&c, &r, "bob", false);
    make_request(&c, CK_KPASSWD_VERSION_CHANGEPW, "bob-new", NULL, &msg, &len);
    CHECK_INT_EQ(exchange(w, &c, msg, len, &kerr, text, sizeof(text)),
                 CK_KPASSWD_INITIAL_FLAG_NEEDED);
    free(msg);
    client_down(&c);
    /* A KRB-PRIV whose sequence number is not the authenticator's, one an hour old. */
    client_up(&c, &r, "bob", true);
    make_request_flawed(&c, CK_KPASSWD_VERSION_CHANGEPW, "bob-new", NULL, FLAW_SEQ, &msg, &len);
    CHECK_INT_EQ(exchange(w, &c, msg, len, &kerr, text, sizeof(text)), CK_KPASSWD_HARDERROR);
    free(msg);
    make_request_flawed(&c, CK_KPASSWD_VERSION_CHANGEPW, "bob-new", NULL, FLAW_OLD_TIMESTAMP,
                        &msg, &len);
    CHECK_INT_EQ(exchange(w, &c, msg, len, &kerr, text, sizeof(text)), CK_KPASSWD_HARDERROR);
    free(msg);
    client_down(&c);
    CHECK_OK(ck_store_get_principal(r.store, "bob@" REALM, &p));
    CHECK(p != NULL && p->kvno == 1);
    ck_db_principal_free(p);
    p = NULL;
    /* bob may not set alice's password. */
    client_up(&c, &r, "bob", true);
    make_request(&c, CK_KPASSWD_VERSION_SETPW, "x", "alice@" REALM, &msg, &len);
    CHECK_INT_EQ(exchange(w, &c, msg, len, &kerr, text, sizeof(text)), CK_KPASSWD_ACCESSDENIED);
    free(msg);
    /* A wrong version (rewritten in a valid request): KRB-ERROR BAD_VERSION. */
    make_request(&c, CK_KPASSWD_VERSION_CHANGEPW, "bob-new", NULL, &msg, &len);
    msg[3] = 2;
    CHECK_INT_EQ(exchange(w, &c, msg, len, &kerr, text, sizeof(text)), CK_KPASSWD_BAD_VERSION);
    CHECK_INT_EQ(kerr, CK_KDC_ERR_BAD_PVNO);
    /* A corrupted KRB-PRIV (after a valid AP-REQ) and a corrupted AP-REQ. */
    msg[3] = 1;
    msg[len - 1] ^= 1;
    CHECK_INT_EQ(exchange(w, &c, msg, len, &kerr, text, sizeof(text)), CK_KPASSWD_HARDERROR);
    free(msg);
    make_request(&c, CK_KPASSWD_VERSION_CHANGEPW, "bob-new", NULL, &msg, &len);
    msg[40] ^= 0x55;
    CHECK_INT_EQ(exchange(w, &c, msg, len, &kerr, text, sizeof(text)), CK_KPASSWD_AUTHERROR);
    /* A length field that does not match: no answer at all. */
    msg[1] ^= 1;
    CHECK_INT_EQ(exchange(w, &c, msg, len, &kerr, text, sizeof(text)), -1);
    free(msg);
    memset(garbage, 0x41, sizeof(garbage));
    CHECK_INT_EQ(exchange(w, &c, garbage, sizeof(garbage), &kerr, text, sizeof(text)), -1);
    CHECK_INT_EQ(exchange(w, &c, garbage, 3, &kerr, text, sizeof(text)), -1);
    /* A plausible header with a garbage AP-REQ: MALFORMED... no: AUTHERROR (bad AP-REQ). */
    garbage[0] = 0;
    garbage[1] = sizeof(garbage);
    garbage[2] = 0;
    garbage[3] = 1;
    garbage[4] = 0;
    garbage[5] = 4;
    CHECK_INT_EQ(exchange(w, &c, garbage, sizeof(garbage), &kerr, text, sizeof(text)),
                 CK_KPASSWD_AUTHERROR);
    garbage[5] = 0;
    CHECK_INT_EQ(exchange(w, &c, garbage, sizeof(garbage), &kerr, text, sizeof(text)),
                 CK_KPASSWD_MALFORMED);
    client_down(&c);
    /* The administrator may set bob's password, not krbtgt's. */
    client_up(&adm, &r, "admin", true);
    make_request(&adm, CK_KPASSWD_VERSION_SETPW, "bob-by-admin", "bob@" REALM, &msg, &len);
    CHECK_INT_EQ(exchange(w, &adm, msg, len, &kerr, text, sizeof(text)), CK_KPASSWD_SUCCESS);
    free(msg);
    CHECK_OK(ck_store_get_principal(r.store, "bob@" REALM, &p));
    CHECK(p != NULL && p->kvno == 2);
    ck_db_principal_free(p);
    make_request(&adm, CK_KPASSWD_VERSION_SETPW, "x", "krbtgt/" REALM "@" REALM, &msg, &len);
    CHECK_INT_EQ(exchange(w, &adm, msg, len, &kerr, text, sizeof(text)),
                 CK_KPASSWD_ACCESSDENIED);
    free(msg);
    make_request(&adm, CK_KPASSWD_VERSION_SETPW, "x", "nobody@" REALM, &msg, &len);
    CHECK_INT_EQ(exchange(w, &adm, msg, len, &kerr, text, sizeof(text)), CK_KPASSWD_SOFTERROR);
    free(msg);
    make_request(&adm, CK_KPASSWD_VERSION_SETPW, "x", "bob@OTHER.REALM", &msg, &len);
    CHECK_INT_EQ(exchange(w, &adm, msg, len, &kerr, text, sizeof(text)), CK_KPASSWD_SOFTERROR);
    free(msg);
    client_down(&adm);
out:
    kpasswd_worker_free(w);
    kpasswd_server_free(srv);
    realm_down(&r);
}

static void
test_service_needs_changepw(void)
{
    struct realm r;
    struct kpasswd_server *srv = NULL;
    struct kpasswd_worker *w = NULL;

    realm_up(&r);
    CHECK_OK(ck_store_delete_principal(r.store, "kadmin/changepw@" REALM));
    CHECK_OK(kpasswd_server_new(&r.cfg, NULL, &srv));
    CHECK(kpasswd_worker_new(srv, &w) == CK_ERR_CONFIG);
    CHECK(strstr(ck_error_context(), "--add-changepw") != NULL);
    CHECK(w == NULL);
    kpasswd_server_free(srv);
    /* An admin list entry without a realm is a configuration error. */
    CHECK(kpasswd_server_new(&r.cfg, "admin", &srv) == CK_ERR_CONFIG);
    realm_down(&r);
}

CK_TEST_MAIN("kpasswd", CK_TEST_CASE(test_req_roundtrip), CK_TEST_CASE(test_req_truncations),
             CK_TEST_CASE(test_req_bad_version_and_size), CK_TEST_CASE(test_rep_roundtrip),
             CK_TEST_CASE(test_result_data), CK_TEST_CASE(test_change_passwd_data),
             CK_TEST_CASE(test_change_passwd_data_invalid), CK_TEST_CASE(test_golden_mit),
             CK_TEST_CASE(test_golden_heimdal), CK_TEST_CASE(test_service_change_own),
             CK_TEST_CASE(test_service_refusals), CK_TEST_CASE(test_service_needs_changepw))
