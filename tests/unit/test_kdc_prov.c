/* Provisioning in the KDC (issue 10), in-process: PKINIT AS-REQs built with
 * tests/tools/pkinit_asreq.h and TGS-REQs built here, driven through kdc_handle_request with an
 * injected clock. With pkinit_provisioning on: an unknown manufacturer-certified device is
 * admitted under mta-<hex>@REALM (only that name), its TGT and every service ticket made from
 * it carry the restricted-calls element (read back with the krbtgt's and the service's keys),
 * a device already known gets the same restricted ticket on its manufacturer certificate, an
 * operator certificate gets full service only while it is the device row's current one,
 * revocation refuses the next AS and TGS exchange live; with it off, the KDC is unchanged.
 * Configuration errors are checked too. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/x509v3.h>

#include "cablekey/ap.h"
#include "cablekey/log.h"
#include "cablekey/net.h"
#include "cablekey/pki.h"
#include "cablekey/prov.h"
#include "cablekey/prov_ad.h"
#include "cablekey/util.h"
#include "ck_test.h"
#include "config.h"
#include "kdc_int.h"
#include "mta_fqdn.h"
#include "pkinit_kdc.h"

#include "../tools/pkinit_asreq.h"

#if defined(__has_include)
#if __has_include("../../lib/store/store_prov.c")
#define HAVE_PROV_STORE 1 /* P1's customer database is on this branch */
#endif
#endif

#define REALM "TEST.REALM"
/* The KDC's clock is the real one (the TGS-REQ authenticator carries the real time); every
 * certificate is relative to it, so no case depends on the calendar. */
static int64_t T0;
#define DAY ((int64_t)86400)
#define YEAR (365 * DAY)
#define PW "p12-password"
#define MAC1 "00:11:22:33:44:55"
#define NAME1 "mta-001122334455"
#define MAC2 "00:11:22:33:44:66"
#define MAC3 "00:11:22:33:44:77"
#define NAME3 "mta-001122334477"
#define SVC "host/svc.test.realm@" REALM

static const int32_t enctypes[] = {CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96,
                                   CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96};

static char dir[64], db[128], logpath[160];
static ck_store *tstore;
static uint8_t reply[65536];
static int64_t kdc_now;

static struct {
    bool ready;
    EVP_PKEY *k_sp_root, *k_sp_ca, *k_kdc, *k_mfg_root, *k_mfg_ca, *k_prov_ca, *k_dev1, *k_dev2,
        *k_dev3, *k_other;
    X509 *sp_root, *sp_ca, *kdc, *mfg_root, *mfg_ca, *prov_ca, *dev1, *dev2, *dev3, *op1,
        *op1_old, *op3;
    ck_pki_identity *id_dev1, *id_dev2, *id_dev3, *id_op1, *id_op1_old, *id_op3;
    ck_pkinit_anchors *kdc_anchors;
    char sp_root_pem[160], mfg_root_pem[160], prov_ca_pem[160], kdc_p12[160], pwfile[160];
} P;

/* ---- fixture ---------------------------------------------------------------------------- */

static void
fixed_clock(void *ctx, int64_t *sec, int32_t *usec)
{
    (void)ctx;
    *sec = kdc_now;
    *usec = 0;
}

static EVP_PKEY *
keygen(ck_pki_key_type t)
{
    EVP_PKEY *k = NULL;

    CHECK_OK(ck_pki_key_generate(t, &k));
    if (k == NULL)
        abort();
    return k;
}

static X509 *
issue(ck_pki_profile prof, const char *cn, const char *principal, EVP_PKEY *key, X509 *issuer,
      EVP_PKEY *ikey, int64_t nb, int64_t na)
{
    ck_pki_cert_spec spec;
    X509 *x = NULL;

    memset(&spec, 0, sizeof(spec));
    spec.profile = prof;
    spec.org = "cablekey test";
    spec.common_name = cn;
    spec.principal = principal;
    spec.path_len = -1;
    spec.not_before = nb;
    spec.not_after = na;
    CHECK_OK(ck_pki_cert_issue(&spec, key, issuer, ikey, &x));
    if (x == NULL)
        abort();
    return x;
}

static ck_pki_identity *
ident(EVP_PKEY *key, X509 *cert, X509 *ca)
{
    STACK_OF(X509) *chain = sk_X509_new_null();
    ck_pki_identity *id = NULL;

    if (ca != NULL)
        sk_X509_push(chain, ca);
    CHECK_OK(ck_pki_identity_new(key, cert, chain, &id));
    sk_X509_free(chain);
    if (id == NULL)
        abort();
    return id;
}

static void
put_princ(const char *name, uint32_t attrs)
{
    ck_db_principal *p = NULL;

    CHECK_OK(ck_db_principal_new(name, &p));
    if (p == NULL)
        abort();
    p->kvno = 1;
    p->attributes = attrs;
    CHECK_OK(ck_db_keys_make(name, NULL, 0, enctypes, 2, 1, &p->keys, &p->n_keys));
    CHECK_OK(ck_store_put_principal(tstore, p));
    ck_db_principal_free(p);
}

static void
add_device(const char *mac, const char *principal)
{
    ck_db_device dev;

    memset(&dev, 0, sizeof(dev));
    ck_strlcpy(dev.mac, mac, sizeof(dev.mac));
    dev.principal = (char *)principal;
    dev.state = CK_DEVICE_ACTIVE;
    CHECK_OK(ck_store_add_device(tstore, &dev));
}

static void
setup(void)
{
    ck_pki_identity *kdc_id = NULL;
    FILE *f;

    if (P.ready)
        return;
    P.ready = true;
    T0 = kdc_now = (int64_t)time(NULL);
    ck_strlcpy(dir, "/tmp/ck-kdcprov-XXXXXX", sizeof(dir));
    if (mkdtemp(dir) == NULL)
        abort();
    snprintf(db, sizeof(db), "%s/kdc.db", dir);
    snprintf(logpath, sizeof(logpath), "%s/kdc.log", dir);
    CHECK_OK(ck_store_init_realm(db, NULL, REALM, enctypes, 2, 0, 0));
    CHECK_OK(ck_store_open(db, NULL, 0, &tstore));
    if (tstore == NULL)
        abort();
    put_princ(SVC, 0);
    put_princ("mta2@" REALM, CK_ATTR_REQUIRES_PREAUTH);
    add_device(MAC2, "mta2@" REALM);

    P.k_sp_root = keygen(CK_PKI_KEY_EC_P256);
    P.k_sp_ca = keygen(CK_PKI_KEY_EC_P256);
    P.k_kdc = keygen(CK_PKI_KEY_RSA_2048);
    P.k_mfg_root = keygen(CK_PKI_KEY_EC_P256);
    P.k_mfg_ca = keygen(CK_PKI_KEY_EC_P256);
    P.k_prov_ca = keygen(CK_PKI_KEY_EC_P256);
    P.k_dev1 = keygen(CK_PKI_KEY_EC_P256);
    P.k_dev2 = keygen(CK_PKI_KEY_EC_P256);
    P.k_dev3 = keygen(CK_PKI_KEY_EC_P256);
    P.k_other = keygen(CK_PKI_KEY_EC_P256);
    P.sp_root = issue(CK_PKI_PROFILE_ROOT_CA, "SP Root", NULL, P.k_sp_root, NULL, P.k_sp_root,
                      T0 - YEAR, T0 + 10 * YEAR);
    P.sp_ca = issue(CK_PKI_PROFILE_CA, "SP CA", NULL, P.k_sp_ca, P.sp_root, P.k_sp_root,
                    T0 - YEAR, T0 + 5 * YEAR);
    P.kdc = issue(CK_PKI_PROFILE_KDC, "kdc", "krbtgt/" REALM "@" REALM, P.k_kdc, P.sp_ca,
                  P.k_sp_ca, T0 - DAY, T0 + YEAR);
    /* The provisioning CA sits under the same root as the client CA (cablekey pki init): the
     * operator anchor is the provisioning CA itself, the root stays a client anchor. */
    P.prov_ca = issue(CK_PKI_PROFILE_CA, "Provisioning CA", NULL, P.k_prov_ca, P.sp_root,
                      P.k_sp_root, T0 - YEAR, T0 + 5 * YEAR);
    P.mfg_root = issue(CK_PKI_PROFILE_ROOT_CA, "MTA Root", NULL, P.k_mfg_root, NULL,
                       P.k_mfg_root, T0 - YEAR, T0 + 20 * YEAR);
    P.mfg_ca = issue(CK_PKI_PROFILE_CA, "MTA Manufacturer", NULL, P.k_mfg_ca, P.mfg_root,
                     P.k_mfg_root, T0 - YEAR, T0 + 20 * YEAR);
    P.dev1 = issue(CK_PKI_PROFILE_DEVICE, MAC1, NULL, P.k_dev1, P.mfg_ca, P.k_mfg_ca, T0 - DAY,
                   T0 + 10 * YEAR);
    P.dev2 = issue(CK_PKI_PROFILE_DEVICE, MAC2, NULL, P.k_dev2, P.mfg_ca, P.k_mfg_ca, T0 - DAY,
                   T0 + 10 * YEAR);
    P.dev3 = issue(CK_PKI_PROFILE_DEVICE, MAC3, NULL, P.k_dev3, P.mfg_ca, P.k_mfg_ca, T0 - DAY,
                   T0 + 10 * YEAR);
    /* Operator certificates: the same key as the manufacturer's, CN = MAC. */
    P.op1 = issue(CK_PKI_PROFILE_DEVICE, MAC1, NULL, P.k_dev1, P.prov_ca, P.k_prov_ca, T0 - DAY,
                  T0 + YEAR);
    P.op1_old = issue(CK_PKI_PROFILE_DEVICE, MAC1, NULL, P.k_dev1, P.prov_ca, P.k_prov_ca,
                      T0 - 2 * DAY, T0 + YEAR);
    P.op3 = issue(CK_PKI_PROFILE_DEVICE, MAC3, NULL, P.k_dev3, P.prov_ca, P.k_prov_ca, T0 - DAY,
                  T0 + YEAR);

    P.id_dev1 = ident(P.k_dev1, P.dev1, P.mfg_ca);
    P.id_dev2 = ident(P.k_dev2, P.dev2, P.mfg_ca);
    P.id_dev3 = ident(P.k_dev3, P.dev3, P.mfg_ca);
    P.id_op1 = ident(P.k_dev1, P.op1, NULL);
    P.id_op1_old = ident(P.k_dev1, P.op1_old, NULL);
    P.id_op3 = ident(P.k_dev3, P.op3, NULL);

    snprintf(P.sp_root_pem, sizeof(P.sp_root_pem), "%s/sp-root.pem", dir);
    snprintf(P.mfg_root_pem, sizeof(P.mfg_root_pem), "%s/mfg-root.pem", dir);
    snprintf(P.prov_ca_pem, sizeof(P.prov_ca_pem), "%s/prov-ca.pem", dir);
    snprintf(P.kdc_p12, sizeof(P.kdc_p12), "%s/kdc.p12", dir);
    snprintf(P.pwfile, sizeof(P.pwfile), "%s/pw", dir);
    CHECK_OK(ck_pki_certs_write_pem(P.sp_root_pem, P.sp_root, NULL, CK_PKI_WRITE_REPLACE));
    CHECK_OK(ck_pki_certs_write_pem(P.mfg_root_pem, P.mfg_root, NULL, CK_PKI_WRITE_REPLACE));
    CHECK_OK(ck_pki_certs_write_pem(P.prov_ca_pem, P.prov_ca, NULL, CK_PKI_WRITE_REPLACE));
    f = fopen(P.pwfile, "w");
    CHECK(f != NULL);
    if (f != NULL) {
        fputs(PW "\n", f);
        fclose(f);
    }
    chmod(P.pwfile, 0600);
    kdc_id = ident(P.k_kdc, P.kdc, P.sp_ca);
    CHECK_OK(ck_pki_p12_write(P.kdc_p12, kdc_id, PW, "kdc", CK_PKI_WRITE_REPLACE));
    ck_pki_identity_free(kdc_id);
    CHECK_OK(ck_pkinit_anchors_new(&P.kdc_anchors));
    CHECK_OK(ck_pkinit_anchors_add_file(P.kdc_anchors, P.sp_root_pem, 0, NULL));
    CHECK_OK(ck_log_open("test_kdc_prov", CK_LOG_FILE, logpath, LOG_INFO));
}

static void
teardown(void)
{
    char cmd[512];
    EVP_PKEY *keys[] = {P.k_sp_root, P.k_sp_ca, P.k_kdc, P.k_mfg_root, P.k_mfg_ca,
                        P.k_prov_ca, P.k_dev1, P.k_dev2, P.k_dev3, P.k_other};
    X509 *certs[] = {P.sp_root, P.sp_ca, P.kdc, P.mfg_root, P.mfg_ca, P.prov_ca,
                     P.dev1, P.dev2, P.dev3, P.op1, P.op1_old, P.op3};
    ck_pki_identity *ids[] = {P.id_dev1, P.id_dev2, P.id_dev3, P.id_op1, P.id_op1_old,
                              P.id_op3};

    ck_log_close();
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
        ck_pki_identity_free(ids[i]);
    for (size_t i = 0; i < sizeof(certs) / sizeof(certs[0]); i++)
        X509_free(certs[i]);
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        EVP_PKEY_free(keys[i]);
    ck_pkinit_anchors_free(P.kdc_anchors);
    ck_store_close(tstore);
    if (getenv("CK_KEEP_LOG") != NULL)
        snprintf(cmd, sizeof(cmd), "cat '%s' >&2; rm -rf '%s'", logpath, dir);
    else
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "  could not remove %s\n", dir);
    memset(&P, 0, sizeof(P));
}

/* Client anchors (sp-root), the manufacturer as a PacketCable anchor and, with provisioning,
 * the provisioning CA as the operator anchor. extra: more key, value pairs (NULL-ended). */
static struct kdc_worker *
worker_fqdn(bool provisioning, const char *const *extra, const char *mta_fqdn_server)
{
    struct kdc_config cfg;
    struct kdc_worker *w = NULL;

    kdc_config_defaults(&cfg);
    cfg.db_path = db;
    cfg.clock = fixed_clock;
    if (mta_fqdn_server != NULL) {
        /* What kdc_mta_fqdn_config_load makes of pkinit_mta_fqdn_server (mta_fqdn.h). */
        cfg.mta_fqdn = calloc(1, sizeof(*cfg.mta_fqdn));
        if (cfg.mta_fqdn == NULL || (cfg.mta_fqdn->server = strdup(mta_fqdn_server)) == NULL)
            abort();
        cfg.mta_fqdn->timeout_ms = 50;
        cfg.mta_fqdn->cache_seconds = 0;
    }
    CHECK_OK(kdc_pkinit_config_set(&cfg.pkinit, "pkinit_identity", P.kdc_p12, false));
    CHECK_OK(kdc_pkinit_config_set(&cfg.pkinit, "pkinit_password_file", P.pwfile, false));
    CHECK_OK(kdc_pkinit_config_set(&cfg.pkinit, "pkinit_anchors", P.sp_root_pem, false));
    CHECK_OK(kdc_pkinit_config_set(&cfg.pkinit, "pkinit_packetcable_anchors", P.mfg_root_pem,
                                   false));
    if (provisioning) {
        CHECK_OK(kdc_pkinit_config_set(&cfg.pkinit, "pkinit_provisioning", "true", false));
        CHECK_OK(kdc_pkinit_config_set(&cfg.pkinit, "pkinit_operator_anchors", P.prov_ca_pem,
                                       false));
    }
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i += 2)
        CHECK_OK(kdc_pkinit_config_set(&cfg.pkinit, extra[i], extra[i + 1], true));
    CHECK_OK(kdc_pkinit_config_finish(cfg.pkinit));
    CHECK_OK(kdc_worker_new(&cfg, &w));
    cfg.db_path = NULL;
    kdc_config_free_contents(&cfg);
    if (w == NULL)
        abort();
    ck_store_cache_configure(w->store, w->cache_max, 0);
    return w;
}

static struct kdc_worker *
worker_with(bool provisioning, const char *const *extra)
{
    return worker_fqdn(provisioning, extra, NULL);
}

static size_t
ask(struct kdc_worker *w, const uint8_t *req, size_t len)
{
    struct sockaddr_in sin;
    struct ck_peer peer;
    size_t n = 0;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(0x7f000001);
    ck_peer_set(&peer, (const struct sockaddr *)&sin, sizeof(sin));
    CHECK_OK(kdc_handle_request(w, req, len, KDC_TRANSPORT_TCP, &peer, reply, sizeof(reply),
                                &n));
    return n;
}

static const char *
last_log(void)
{
    static char line[2048];
    char buf[1 << 16];
    FILE *f = fopen(logpath, "r");
    size_t n = 0;
    char *start;

    line[0] = '\0';
    if (f == NULL)
        return line;
    if (fseek(f, 0, SEEK_END) == 0) {
        long sz = ftell(f);
        fseek(f, sz > (long)sizeof(buf) - 1 ? sz - (long)sizeof(buf) + 1 : 0, SEEK_SET);
        n = fread(buf, 1, sizeof(buf) - 1, f);
    }
    fclose(f);
    buf[n] = '\0';
    while (n > 0 && buf[n - 1] == '\n')
        buf[--n] = '\0';
    start = buf + n;
    while (start > buf && start[-1] != '\n')
        start--;
    ck_strlcpy(line, start, sizeof(line));
    return line;
}

static bool
log_has(const char *what)
{
    const char *l = last_log();

    if (strstr(l, what) != NULL)
        return true;
    fprintf(stderr, "  log line lacks \"%s\": %s\n", what, l);
    return false;
}

/* Credentials from one exchange. */
struct creds {
    int code;                     /* 0: issued; else the KRB-ERROR code; -1: garbage */
    CK_KDC_REP *rep;
    CK_ENC_KDC_REP_PART *part;
    ck_key session;
};

static void
creds_free(struct creds *c)
{
    CK_KDC_REP_free(c->rep);
    CK_ENC_KDC_REP_PART_free(c->part);
    ck_key_clear(&c->session);
    memset(c, 0, sizeof(*c));
}

static int
login(struct kdc_worker *w, const char *cname, const ck_pki_identity *id, struct creds *c)
{
    struct pk_opts o;
    struct pk_state st;
    CK_KRB_ERROR_MSG *err = NULL;
    ck_key key;
    size_t n;

    memset(c, 0, sizeof(*c));
    memset(&o, 0, sizeof(o));
    ck_key_clear(&key);
    o.cname = cname;
    o.realm = REALM;
    o.id = id;
    o.group = CK_PKINIT_GROUP_P256;
    o.now = kdc_now;
    if (pk_build(&o, &st) != 0) {
        pk_state_free(&st);
        return c->code = -1;
    }
    n = ask(w, st.req, st.req_len);
    if (ck_asn1_krb_error_decode(reply, n, &err) == 0) {
        c->code = err->error_code;
    } else if (ck_asn1_kdc_rep_decode(reply, n, &c->rep, NULL) == 0 &&
               pk_reply_key(&o, &st, c->rep, P.kdc_anchors, &key) == 0 &&
               pk_open_as_rep(&st, c->rep, &key, &c->part) == 0 &&
               ck_key_from_asn1(&c->session, c->part->key) == 0) {
        c->code = 0;
    } else {
        fprintf(stderr, "  AS-REP does not open: %s\n", ck_error_context());
        c->code = -1;
    }
    CK_KRB_ERROR_MSG_free(err);
    ck_key_clear(&key);
    pk_state_free(&st);
    return c->code;
}

/* A TGS-REQ for sname with the TGT in tgt. */
static int
tgs(struct kdc_worker *w, const struct creds *tgt, const char *sname, struct creds *c)
{
    CK_TGS_REQ *req = CK_TGS_REQ_new();
    CK_KDC_REQ_BODY *b = req->req_body;
    ASN1_GENERALSTRING *realm = NULL;
    CK_CHECKSUM *ck = NULL;
    CK_KRB_ERROR_MSG *err = NULL;
    const uint8_t *bder;
    uint8_t *ap = NULL, *der = NULL, *plain = NULL;
    size_t blen, aplen = 0, len = 0, n, plain_len = 0;
    int tag = 0;

    memset(c, 0, sizeof(*c));
    req->pvno = 5;
    req->msg_type = CK_KRB_TGS_REQ;
    CHECK_OK(ck_asn1_flags_set(&b->kdc_options, 0));
    CHECK_OK(ck_asn1_principal_parse(sname, CK_NT_SRV_HST, &b->sname, &realm));
    ASN1_STRING_free(realm);
    CHECK_OK(ck_asn1_kstring_set(&b->realm, REALM));
    CHECK_OK(ck_asn1_time_set(&b->till, kdc_now + DAY));
    CHECK_OK(ck_asn1_nonce_set(&b->nonce, 0x2468aceu));
    CHECK_OK(ck_asn1_etypes_set(b, enctypes, 2));
    CHECK_OK(ck_asn1_kdc_req_body_der(req, &bder, &blen));
    CHECK_OK(ck_checksum_new(&tgt->session, 0, CK_KU_TGS_REQ_AUTH_CKSUM, bder, blen, &ck));
    CHECK_OK(ck_ap_req_build(tgt->rep->ticket, &tgt->session, REALM, tgt->rep->cname, 0, ck,
                             CK_KU_TGS_REQ_AUTH, NULL, NULL, NULL, NULL, &ap, &aplen));
    CHECK_OK(ck_asn1_padata_add(&req->padata, CK_PA_TGS_REQ, ap, aplen));
    CHECK_OK(ck_asn1_tgs_req_encode(req, &der, &len));
    n = ask(w, der, len);
    if (ck_asn1_krb_error_decode(reply, n, &err) == 0) {
        c->code = err->error_code;
    } else if (ck_asn1_kdc_rep_decode(reply, n, &c->rep, NULL) == 0 &&
               ck_enc_data_open(c->rep->enc_part, &tgt->session, CK_KU_TGS_REP_ENCPART_SESSKEY,
                                &plain, &plain_len) == 0 &&
               ck_asn1_enc_kdc_rep_part_decode(plain, plain_len, &c->part, &tag) == 0 &&
               ck_key_from_asn1(&c->session, c->part->key) == 0) {
        c->code = 0;
    } else {
        c->code = -1;
    }
    if (plain != NULL)
        ck_free_secret(plain, plain_len);
    CK_KRB_ERROR_MSG_free(err);
    ck_asn1_free_der(der, len);
    ck_asn1_free_der(ap, aplen);
    CK_CHECKSUM_free(ck);
    CK_TGS_REQ_free(req);
    return c->code;
}

/* The restricted-calls element of a ticket, opened with its server's stored key. */
static int
ticket_restriction(const CK_TICKET *t, const char *server, ck_ad_restricted *out, bool *found)
{
    ck_db_principal *p = NULL;
    const ck_db_key *k;
    CK_ENC_TICKET_PART *etp = NULL;
    int rc = -1;

    *found = false;
    if (ck_store_get_principal(tstore, server, &p) != 0)
        return -1;
    k = ck_db_principal_find_key(p, ck_asn1_uint32_get(t->enc_part->kvno, 0),
                                 t->enc_part->etype);
    if (k != NULL && ck_ticket_open(t, &k->key, &etp) == 0)
        rc = ck_ad_restricted_find(etp->authorization_data, out, found);
    CK_ENC_TICKET_PART_free(etp);
    ck_db_principal_free(p);
    return rc;
}

static void
expect_restricted(const CK_TICKET *t, const char *server, EVP_PKEY *key, const char *mac)
{
    ck_ad_restricted ad;
    uint8_t spki[32], want_mac[6];
    unsigned char *der = NULL;
    int len;
    bool found = false;

    CHECK_OK(ticket_restriction(t, server, &ad, &found));
    CHECK(found);
    if (!found)
        return;
    len = i2d_PUBKEY(key, &der);
    CHECK(len > 0);
    CHECK(EVP_Digest(der, (size_t)len, spki, NULL, EVP_sha256(), NULL));
    OPENSSL_free(der);
    CHECK_MEM_EQ(ad.key_sha256, 32, spki, 32);
    for (int i = 0; i < 6; i++)
        want_mac[i] = (uint8_t)strtoul(mac + 3 * i, NULL, 16);
    CHECK_MEM_EQ(ad.mac, 6, want_mac, 6);
    CHECK_INT_EQ(ad.n_numbers, 2);
    CHECK(ck_ad_restricted_allows(&ad, "611"));
    CHECK(ck_ad_restricted_allows(&ad, "911"));
    CHECK(!ck_ad_restricted_allows(&ad, "5551234"));
}

static void
expect_unrestricted(const CK_TICKET *t, const char *server)
{
    ck_ad_restricted ad;
    bool found = true;

    CHECK_OK(ticket_restriction(t, server, &ad, &found));
    CHECK(!found);
}

#define TGS_NAME "krbtgt/" REALM "@" REALM

/* ---- cases -------------------------------------------------------------------------------- */

/* An unknown device with a valid manufacturer chain: admitted under mta-<hex>, records made,
 * restricted TGT, restricted service ticket; its second login is an ordinary one. */
static void
test_admission(void)
{
    struct kdc_worker *w;
    struct creds tgt, st;
    ck_db_device *dev = NULL;
    ck_db_principal *p = NULL;

    setup();
    w = worker_with(true, NULL);
    CHECK_INT_EQ(ck_store_get_device(tstore, MAC1, &dev), CK_ERR_NOTFOUND);
    /* Only under its own name: another mta- name (or none at all) is refused. */
    CHECK_INT_EQ(login(w, "mta-0011223344ff", P.id_dev1, &tgt), CK_KDC_ERR_CLIENT_NAME_MISMATCH);
    CHECK(log_has("DEVICE_NAME_MISMATCH"));
    CHECK_INT_EQ(login(w, "someone", P.id_dev1, &tgt), CK_KDC_ERR_C_PRINCIPAL_UNKNOWN);
    CHECK_INT_EQ(ck_store_get_device(tstore, MAC1, &dev), CK_ERR_NOTFOUND);

    CHECK_INT_EQ(login(w, NAME1, P.id_dev1, &tgt), 0);
    CHECK(log_has("unprovisioned device " MAC1 " admitted"));
    CHECK(log_has("unprovisioned (restricted calls)"));
    CHECK_OK(ck_store_get_device(tstore, MAC1, &dev));
    if (dev != NULL) {
        CHECK(strcmp(dev->principal, NAME1 "@" REALM) == 0);
        CHECK(dev->has_pin);
        CHECK(dev->state != CK_DEVICE_REVOKED);
        CHECK(!dev->has_cert);
    }
    ck_db_device_free(dev);
    dev = NULL;
    CHECK_OK(ck_store_get_principal(tstore, NAME1 "@" REALM, &p));
    if (p != NULL)
        CHECK(p->attributes & CK_ATTR_REQUIRES_PREAUTH);
    ck_db_principal_free(p);
    if (tgt.code == 0) {
        expect_restricted(tgt.rep->ticket, TGS_NAME, P.k_dev1, MAC1);
        /* The service ticket carries it too. */
        CHECK_INT_EQ(tgs(w, &tgt, SVC, &st), 0);
        CHECK(log_has("unprovisioned device " MAC1 ", restricted calls"));
        if (st.code == 0)
            expect_restricted(st.rep->ticket, SVC, P.k_dev1, MAC1);
        creds_free(&st);
    }
    creds_free(&tgt);

    /* Second login: the device is known now. */
    CHECK_INT_EQ(login(w, NAME1, P.id_dev1, &tgt), 0);
    CHECK(strstr(last_log(), "admitted") == NULL);
    CHECK(log_has("unprovisioned (restricted calls)"));
    if (tgt.code == 0)
        expect_restricted(tgt.rep->ticket, TGS_NAME, P.k_dev1, MAC1);
    creds_free(&tgt);
    kdc_worker_free(w);
}

/* A device the table already knows (added by the operator, no operator certificate) still gets
 * only restricted calls with its manufacturer certificate. */
static void
test_known_device_restricted(void)
{
    struct kdc_worker *w;
    struct creds tgt;

    setup();
    w = worker_with(true, NULL);
    CHECK_INT_EQ(login(w, "mta2", P.id_dev2, &tgt), 0);
    CHECK(log_has("device " MAC2));
    CHECK(log_has("unprovisioned (restricted calls)"));
    if (tgt.code == 0)
        expect_restricted(tgt.rep->ticket, TGS_NAME, P.k_dev2, MAC2);
    creds_free(&tgt);
    kdc_worker_free(w);
}

/* Operator certificates: refused unless the device row names exactly this certificate. */
static void
test_operator_cert(void)
{
    struct kdc_worker *w;
    struct creds tgt, st;

    setup();
    w = worker_with(true, NULL);
    /* Unknown device. */
    CHECK_INT_EQ(login(w, NAME3, P.id_op3, &tgt), CK_KDC_ERR_CLIENT_NOT_TRUSTED);
    CHECK(log_has("OPERATOR_CERT_NOT_CURRENT"));
    /* Admitted (unprovisioned) with its manufacturer certificate: no operator certificate
     * issued, so the operator one is refused and the manufacturer one still works. */
    CHECK_INT_EQ(login(w, NAME3, P.id_dev3, &tgt), 0);
    creds_free(&tgt);
    CHECK_INT_EQ(login(w, NAME3, P.id_op3, &tgt), CK_KDC_ERR_CLIENT_NOT_TRUSTED);
    CHECK(log_has("OPERATOR_CERT_NOT_CURRENT"));
#ifdef HAVE_PROV_STORE
    {
        /* Provisioned with op3 (P1's store): full service, no restriction; a superseded one
         * is refused. */
        ck_prov_actor who = {.actor = "test"};
        ck_prov_customer cu = {.type = CK_PROV_ACCOUNT_CUSTOMER};
        ck_prov_action a;
        unsigned char *der = NULL;
        int len = i2d_X509(P.op3, &der);
        int64_t ev = 0, replayed = 0;
        size_t added = 0;

        cu.name = (char *)"Test Customer";
        cu.address = (char *)"1 Test Road";
        ck_strlcpy(cu.segment, "seg1", sizeof(cu.segment));
        cu.services = (char *)"{}";
        CHECK_OK(ck_prov_customer_add(tstore, &who, &cu, &replayed));
        CHECK_OK(ck_prov_pool_add(tstore, &who, "seg1", "5550100", "5550109", &added));
        memset(&a, 0, sizeof(a));
        a.mac = MAC3;
        a.customer_id = cu.id;
        a.fqdn = NAME3 ".mta.test.realm";
        a.cert_der = der;
        a.cert_len = (size_t)len;
        a.cert_not_before = T0 - DAY;
        a.cert_not_after = T0 + YEAR;
        CHECK_OK(ck_prov_device_act(tstore, &who, CK_PROV_ACT_PROVISION, &a, kdc_now, &ev,
                                    &replayed, NULL));
        OPENSSL_free(der);
        CHECK_INT_EQ(login(w, NAME3, P.id_op3, &tgt), 0);
        CHECK(log_has("operator cert"));
        if (tgt.code == 0) {
            expect_unrestricted(tgt.rep->ticket, TGS_NAME);
            CHECK_INT_EQ(tgs(w, &tgt, SVC, &st), 0);
            if (st.code == 0)
                expect_unrestricted(st.rep->ticket, SVC);
            creds_free(&st);
        }
        creds_free(&tgt);
        /* The manufacturer certificate of a provisioned device: restricted again. */
        CHECK_INT_EQ(login(w, NAME3, P.id_dev3, &tgt), 0);
        if (tgt.code == 0)
            expect_restricted(tgt.rep->ticket, TGS_NAME, P.k_dev3, MAC3);
        creds_free(&tgt);
        {
            /* With MTA-FQDN configured (the operator anchor takes PacketCable forms: this
             * realm has PacketCable anchors), the current operator certificate still needs
             * the provisioning server's confirmation: without the service key, and with a
             * server that never answers, the login is refused with the reason. The
             * manufacturer certificate is not asked about. */
            struct sockaddr_in sin;
            socklen_t sl = sizeof(sin);
            char server[64];
            int fd = socket(AF_INET, SOCK_DGRAM, 0);
            struct kdc_worker *wf;

            /* A bound UDP socket nobody reads: the server that never answers. */
            memset(&sin, 0, sizeof(sin));
            sin.sin_family = AF_INET;
            sin.sin_addr.s_addr = htonl(0x7f000001);
            CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
                  getsockname(fd, (struct sockaddr *)&sin, &sl) == 0);
            snprintf(server, sizeof(server), "127.0.0.1:%u", (unsigned)ntohs(sin.sin_port));
            wf = worker_fqdn(true, NULL, server);
            CHECK_INT_EQ(login(wf, NAME3, P.id_op3, &tgt), CK_KDC_ERR_CLIENT_NOT_TRUSTED);
            CHECK(log_has("PROV_NO_SERVICE_KEY"));
            put_princ("mtafqdn/127.0.0.1@" REALM, 0);
            CHECK_INT_EQ(login(wf, NAME3, P.id_op3, &tgt), CK_KDC_ERR_CLIENT_NOT_TRUSTED);
            CHECK(log_has("PROV_TIMEOUT"));
            CHECK_INT_EQ(login(wf, NAME3, P.id_dev3, &tgt), 0);
            creds_free(&tgt);
            kdc_worker_free(wf);
            if (fd >= 0)
                close(fd);
        }
    }
#endif
    /* Another device's operator certificate (same CN form, not this row's hash). */
    CHECK_INT_EQ(login(w, NAME1, P.id_op1_old, &tgt), CK_KDC_ERR_CLIENT_NOT_TRUSTED);
    CHECK(log_has("OPERATOR_CERT_NOT_CURRENT"));
    (void)st;
    kdc_worker_free(w);
}

/* Revocation is live: the next AS exchange and the next TGS exchange with an old TGT. */
static void
test_revoked(void)
{
    struct kdc_worker *w;
    struct creds tgt, st;
    bool changed = false;

    setup();
    w = worker_with(true, NULL);
    CHECK_INT_EQ(login(w, NAME1, P.id_dev1, &tgt), 0);
    CHECK_OK(ck_store_set_device_state(tstore, MAC1, CK_DEVICE_REVOKED, &changed));
    CHECK(changed);
    CHECK_INT_EQ(login(w, NAME1, P.id_dev1, &st), CK_KDC_ERR_CLIENT_REVOKED);
    CHECK(log_has("DEVICE_REVOKED"));
    CHECK_INT_EQ(login(w, NAME1, P.id_op1, &st), CK_KDC_ERR_CLIENT_REVOKED);
    if (tgt.code == 0) {
        CHECK_INT_EQ(tgs(w, &tgt, SVC, &st), CK_KDC_ERR_CLIENT_REVOKED);
        CHECK(log_has("DEVICE_REVOKED"));
    }
    creds_free(&tgt);
    /* Reinstated: restricted again (the shim and P1 both leave it without a certificate). */
    CHECK_OK(ck_store_set_device_state(tstore, MAC1, CK_DEVICE_ACTIVE, &changed));
    CHECK_INT_EQ(login(w, NAME1, P.id_dev1, &tgt), 0);
    creds_free(&tgt);
    kdc_worker_free(w);
}

/* Reseals tgt's ticket under the krbtgt key after changing its authorization data: the TGS
 * must refuse a TGT whose restriction it cannot read, or that carries it twice (a KDC bug or a
 * krbtgt key compromise, never a client's doing, but still not a ticket to extend). */
static void
reseal_tgt(struct creds *tgt, bool duplicate)
{
    ck_db_principal *p = NULL;
    const ck_db_key *k;
    CK_ENC_TICKET_PART *etp = NULL;
    const CK_TICKET *t = tgt->rep->ticket;
    uint32_t kvno = ck_asn1_uint32_get(t->enc_part->kvno, 0);

    CHECK_OK(ck_store_get_principal(tstore, TGS_NAME, &p));
    if (p == NULL)
        return;
    k = ck_db_principal_find_key(p, kvno, t->enc_part->etype);
    CHECK(k != NULL);
    if (k != NULL && ck_ticket_open(t, &k->key, &etp) == 0) {
        if (duplicate) {
            ck_ad_restricted ad;
            bool found = false;

            CHECK_OK(ck_ad_restricted_find(etp->authorization_data, &ad, &found));
            CHECK_OK(ck_ad_restricted_add(&etp->authorization_data, &ad));
        } else {
            /* The element's ad-data with its last digit turned into a letter. */
            CK_AUTHORIZATION_DATA *inner = NULL;
            CK_AD_ENTRY *e = sk_CK_AD_ENTRY_value(etp->authorization_data, 0);
            CK_AD_ENTRY *ie;
            uint8_t *der = NULL;
            size_t len = 0;

            CHECK_OK(ck_asn1_authorization_data_decode(e->ad_data->data,
                                                       (size_t)e->ad_data->length, &inner));
            ie = sk_CK_AD_ENTRY_value(inner, 0);
            ie->ad_data->data[ie->ad_data->length - 1] = 'x';
            CHECK_OK(ck_asn1_authorization_data_encode(inner, &der, &len));
            CHECK_OK(ck_asn1_octets_set(&e->ad_data, der, len));
            ck_asn1_free_der(der, len);
            CK_AUTHORIZATION_DATA_free(inner);
        }
        CHECK_OK(ck_ticket_seal(tgt->rep->ticket, etp, &k->key, kvno));
    }
    CK_ENC_TICKET_PART_free(etp);
    ck_db_principal_free(p);
}

static void
test_tgs_unreadable_restriction(void)
{
    struct kdc_worker *w;
    struct creds tgt, st;

    setup();
    w = worker_with(true, NULL);
    CHECK_INT_EQ(login(w, NAME3, P.id_dev3, &tgt), 0);
    if (tgt.code == 0) {
        reseal_tgt(&tgt, false);
        CHECK_INT_EQ(tgs(w, &tgt, SVC, &st), CK_KDC_ERR_POLICY);
        CHECK(log_has("RESTRICTED_AD_INVALID"));
        creds_free(&st);
    }
    creds_free(&tgt);
    CHECK_INT_EQ(login(w, NAME3, P.id_dev3, &tgt), 0);
    if (tgt.code == 0) {
        reseal_tgt(&tgt, true);
        CHECK_INT_EQ(tgs(w, &tgt, SVC, &st), CK_KDC_ERR_POLICY);
        CHECK(log_has("RESTRICTED_AD_INVALID"));
        creds_free(&st);
    }
    creds_free(&tgt);
    CHECK_INT_EQ(login(w, NAME3, P.id_dev3, &tgt), 0);
    if (tgt.code == 0) {
        CHECK_INT_EQ(tgs(w, &tgt, SVC, &st), 0);
        creds_free(&st);
    }
    creds_free(&tgt);
    kdc_worker_free(w);
}

/* Provisioning off: today's KDC. */
static void
test_provisioning_off(void)
{
    struct kdc_worker *w;
    struct creds tgt, st;

    setup();
    w = worker_with(false, NULL);
    /* A known device: a ticket without any restriction. */
    CHECK_INT_EQ(login(w, "mta2", P.id_dev2, &tgt), 0);
    CHECK(strstr(last_log(), "restricted") == NULL);
    if (tgt.code == 0) {
        expect_unrestricted(tgt.rep->ticket, TGS_NAME);
        CHECK_INT_EQ(tgs(w, &tgt, SVC, &st), 0);
        if (st.code == 0)
            expect_unrestricted(st.rep->ticket, SVC);
        creds_free(&st);
    }
    creds_free(&tgt);
    /* An unknown mta- name is an unknown client; a MAC the table lacks is an unknown device. */
    CHECK_INT_EQ(login(w, "mta-0011223344aa", P.id_dev1, &tgt), CK_KDC_ERR_C_PRINCIPAL_UNKNOWN);
    put_princ("mtaq@" REALM, CK_ATTR_REQUIRES_PREAUTH);
    {
        /* dev3-like certificate for a MAC that is nowhere. */
        X509 *x = issue(CK_PKI_PROFILE_DEVICE, "00:11:22:33:44:99", NULL, P.k_other, P.mfg_ca,
                        P.k_mfg_ca, T0 - DAY, T0 + YEAR);
        ck_pki_identity *id = ident(P.k_other, x, P.mfg_ca);

        CHECK_INT_EQ(login(w, "mtaq", id, &tgt), CK_KDC_ERR_CLIENT_NOT_TRUSTED);
        CHECK(log_has("UNKNOWN_DEVICE"));
        ck_pki_identity_free(id);
        X509_free(x);
    }
    kdc_worker_free(w);
}

static void
test_config(void)
{
    struct kdc_pkinit_config *pc = NULL;

    CHECK_OK(kdc_pkinit_config_set(&pc, "pkinit_identity", "/k.p12", false));
    CHECK_OK(kdc_pkinit_config_set(&pc, "pkinit_anchors", "/c.pem", false));
    /* Defaults. */
    CHECK(!pc->provisioning);
    CHECK_INT_EQ(pc->n_unprov_calls, 2);
    CHECK(strcmp(pc->unprov_calls[0], "611") == 0 && strcmp(pc->unprov_calls[1], "911") == 0);
    /* The list. */
    CHECK_OK(kdc_pkinit_config_set(&pc, "pkinit_unprovisioned_calls", "18005550199, 911",
                                   false));
    CHECK_INT_EQ(pc->n_unprov_calls, 2);
    CHECK(strcmp(pc->unprov_calls[0], "18005550199") == 0);
    CHECK_INT_EQ(kdc_pkinit_config_set(&pc, "pkinit_unprovisioned_calls", "611 +911", false),
                 CK_ERR_CONFIG);
    CHECK_INT_EQ(kdc_pkinit_config_set(&pc, "pkinit_unprovisioned_calls", "611 611", false),
                 CK_ERR_CONFIG);
    CHECK_INT_EQ(kdc_pkinit_config_set(&pc, "pkinit_unprovisioned_calls", "1234567890123456",
                                       false),
                 CK_ERR_CONFIG);
    CHECK_INT_EQ(kdc_pkinit_config_set(&pc, "pkinit_unprovisioned_calls", " , ", false),
                 CK_ERR_CONFIG);
    CHECK_INT_EQ(kdc_pkinit_config_set(&pc, "pkinit_unprovisioned_calls",
                                       "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17", false),
                 CK_ERR_CONFIG);
    CHECK(strcmp(pc->unprov_calls[0], "18005550199") == 0); /* unchanged by the failures */
    CHECK_INT_EQ(kdc_pkinit_config_set(&pc, "pkinit_provisioning", "maybe", false),
                 CK_ERR_CONFIG);
    /* The MTA-FQDN relations are mta_fqdn.c's, not PKINIT's. */
    CHECK_INT_EQ(kdc_pkinit_config_set(&pc, "pkinit_mta_fqdn_server", "127.0.0.1:2246", false),
                 CK_ERR_CONFIG);
    /* Cross checks: operator anchors need provisioning; provisioning needs a manufacturer
     * anchor, and PKINIT. */
    CHECK_OK(kdc_pkinit_config_set(&pc, "pkinit_operator_anchors", "/op.pem", false));
    CHECK_INT_EQ(kdc_pkinit_config_finish(pc), CK_ERR_CONFIG);
    CHECK_OK(kdc_pkinit_config_set(&pc, "pkinit_provisioning", "true", false));
    CHECK_INT_EQ(kdc_pkinit_config_finish(pc), CK_ERR_CONFIG);
    CHECK_OK(kdc_pkinit_config_set(&pc, "pkinit_device_anchors", "/m.pem", false));
    CHECK_OK(kdc_pkinit_config_finish(pc));
    /* An anchor file is of one kind only. */
    CHECK_INT_EQ(kdc_pkinit_config_set(&pc, "pkinit_operator_anchors", "/m.pem", false),
                 CK_ERR_CONFIG);
    kdc_pkinit_config_free(pc);
    pc = NULL;
    /* Provisioning relations alone (from [kdcdefaults]) without PKINIT: off is no PKINIT,
     * on is an error. */
    CHECK_OK(kdc_pkinit_config_set(&pc, "pkinit_unprovisioned_calls", "611", false));
    CHECK_OK(kdc_pkinit_config_finish(pc));
    CHECK_OK(kdc_pkinit_config_set(&pc, "pkinit_provisioning", "yes", false));
    CHECK_INT_EQ(kdc_pkinit_config_finish(pc), CK_ERR_CONFIG);
    kdc_pkinit_config_free(pc);
}

static void
test_done(void)
{
    teardown();
}

CK_TEST_MAIN("kdc_prov", CK_TEST_CASE(test_config), CK_TEST_CASE(test_admission),
             CK_TEST_CASE(test_known_device_restricted), CK_TEST_CASE(test_operator_cert),
             CK_TEST_CASE(test_revoked), CK_TEST_CASE(test_tgs_unreadable_restriction),
             CK_TEST_CASE(test_provisioning_off),
             CK_TEST_CASE(test_done))
