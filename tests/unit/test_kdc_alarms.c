/* The KDC's alarm detectors and metrics (daemons/kdc/alarms.c, metrics.c) in-process: real
 * AS and TGS exchanges (the client library, its transport replaced by kdc_handle_request)
 * against a realm in a temporary directory, an alarm manager that is never started (its records
 * are read with ck_alarm_get), and an injected clock for the windows: nothing sleeps.
 *   preauth-spike  wrong passwords for one principal over the threshold; others not counted;
 *                  the window ending below the threshold clears it
 *   clock-skew     a KDC clock an hour ahead: PA-ENC-TIMESTAMP refused as skew, over the threshold
 *   kvno-missing   a TGT whose krbtgt kvno the record no longer holds, naming kvno and address
 *   cert-expiry    anchors expiring in 5 days (major), expired (critical), in 100 days (none)
 *   no manager     a worker without one raises nothing
 *   metrics        requests counted by type and result, cache lookups, no principal in labels
 *   store API      the alarm table's generic layer: what it refuses, the clear's audit row */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "ck_test.h"
#include "cablekey/alarm.h"
#include "cablekey/client.h"
#include "cablekey/log.h"
#include "cablekey/metrics.h"
#include "cablekey/net.h"
#include "cablekey/util.h"
#include "alarms.h"
#include "config.h"
#include "kdc_int.h"
#include "pkinit_kdc.h"

#define REALM "ALARM.TEST"
#define TGS "krbtgt/ALARM.TEST@ALARM.TEST"

static const int32_t enctypes[] = {CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96,
                                   CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96};

static char dir[64], db[128];
static int64_t fake_ms = 1000000;      /* the detectors' clock */
static int64_t kdc_offset;             /* added to the KDC's wall clock */

static int64_t
fake_now(void *arg)
{
    (void)arg;
    return fake_ms;
}

static void
kdc_clock(void *ctx, int64_t *sec, int32_t *usec)
{
    (void)ctx;
    ck_now(sec, usec);
    *sec += kdc_offset;
}

static void
put_princ(ck_store *st, const char *name, const char *pw, uint32_t kvno, uint32_t attrs)
{
    ck_db_principal *p = NULL;

    CHECK_OK(ck_db_principal_new(name, &p));
    if (p == NULL)
        abort();
    p->kvno = kvno;
    p->attributes = attrs;
    CHECK_OK(ck_db_keys_make(name, pw, pw ? strlen(pw) : 0, enctypes, 2, kvno, &p->keys,
                             &p->n_keys));
    CHECK_OK(ck_store_put_principal(st, p));
    ck_db_principal_free(p);
}

static void
realm_up(void)
{
    ck_store *st = NULL;

    ck_log_set_level(LOG_CRIT);
    ck_strlcpy(dir, "/tmp/ck-kdcalarm-XXXXXX", sizeof(dir));
    if (mkdtemp(dir) == NULL)
        abort();
    snprintf(db, sizeof(db), "%s/kdc.db", dir);
    CHECK_OK(ck_store_init_realm(db, NULL, REALM, enctypes, 2, 0, 0));
    CHECK_OK(ck_store_open(db, NULL, 0, &st));
    if (st == NULL)
        abort();
    put_princ(st, TGS, NULL, 2, 0);
    put_princ(st, "alice@" REALM, "alicepw", 1, CK_ATTR_REQUIRES_PREAUTH);
    put_princ(st, "bob@" REALM, "bobpw", 1, CK_ATTR_REQUIRES_PREAUTH);
    put_princ(st, "host/svc@" REALM, NULL, 1, 0);
    ck_store_close(st);
}

static void
realm_down(void)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "  could not remove %s\n", dir);
}

/* The transport: straight into the worker, from 127.0.0.9. */
static int
send_to_worker(void *arg, const uint8_t *req, size_t req_len, uint8_t **reply, size_t *reply_len)
{
    static uint8_t buf[65536];
    struct sockaddr_in sin;
    struct ck_peer peer;
    size_t n = 0;
    int rc;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(0x7f000009);
    ck_peer_set(&peer, (const struct sockaddr *)&sin, sizeof(sin));
    if ((rc = kdc_handle_request(arg, req, req_len, KDC_TRANSPORT_TCP, &peer, buf, sizeof(buf),
                                 &n)) != 0)
        return rc;
    if (n == 0 || (*reply = malloc(n)) == NULL)
        return CK_ERR_IO;
    memcpy(*reply, buf, n);
    *reply_len = n;
    return 0;
}

static struct kdc_worker *
worker(struct ck_alarm_mgr *m, struct ck_metrics *metrics)
{
    struct kdc_config cfg;
    struct kdc_worker *w = NULL;

    kdc_config_defaults(&cfg);
    cfg.db_path = db;
    cfg.alarms = m;
    cfg.metrics = metrics;
    cfg.clock = kdc_clock;
    CHECK_OK(kdc_worker_new(&cfg, &w));
    if (w == NULL)
        abort();
    ck_store_cache_configure(w->store, w->cache_max, 0);
    cfg.db_path = NULL;
    kdc_config_free_contents(&cfg);
    return w;
}

static int
as_pw(struct kdc_worker *w, const char *client, const char *pw, ck_creds **out)
{
    ck_kdc_transport t = {.send_fn = send_to_worker, .send_arg = w};
    ck_as_params p = {.realm = REALM, .client = client, .transport = &t};
    ck_creds *c = NULL;
    int rc = ck_client_as_password(&p, pw, &c);

    if (out != NULL)
        *out = c;
    else
        ck_creds_free(c);
    return rc;
}

static struct kdc_alarm_config
settings(void)
{
    struct kdc_alarm_config c;

    kdc_alarm_config_init(&c);
    c.preauth_threshold = 3;
    c.preauth_window = 60;
    c.skew_threshold = 2;
    c.skew_window = 60;
    return c;
}

static struct ck_alarm_mgr *
manager(void)
{
    struct ck_alarm_conf ac = {.host = "kdc-test", .clock = {fake_now, NULL}};
    struct ck_alarm_mgr *m = NULL;
    struct kdc_alarm_config c = settings();

    CHECK_OK(ck_alarm_mgr_new(&ac, &m));
    if (m == NULL)
        abort();
    kdc_alarms_test_setup(fake_now, NULL, &c, REALM);
    kdc_alarms_tick(m);
    return m;
}

static void
preauth_spike(void)
{
    struct ck_alarm_mgr *m = manager();
    struct kdc_worker *w;
    struct ck_alarm a;

    realm_up();
    w = worker(m, NULL);
    CHECK(as_pw(w, "alice", "wrong1", NULL) != 0);
    CHECK(as_pw(w, "alice", "wrong2", NULL) != 0);
    CHECK(as_pw(w, "bob", "wrong", NULL) != 0);
    CHECK(as_pw(w, "bob", "bobpw", NULL) == 0);
    CHECK_INT_EQ(ck_alarm_get(m, CK_ALARM_PREAUTH_SPIKE, "alice@" REALM, &a), CK_ERR_NOTFOUND);
    CHECK(as_pw(w, "alice", "wrong3", NULL) != 0);
    CHECK_OK(ck_alarm_get(m, CK_ALARM_PREAUTH_SPIKE, "alice@" REALM, &a));
    CHECK(!a.cleared);
    CHECK(a.severity == CK_ALARM_MINOR);
    CHECK(strstr(a.cause, "3 failed pre-authentications") != NULL);
    CHECK(strstr(a.cause, "127.0.0.9") != NULL);
    CHECK_INT_EQ(ck_alarm_get(m, CK_ALARM_PREAUTH_SPIKE, "bob@" REALM, &a), CK_ERR_NOTFOUND);
    /* More failures in the same window: one record, counted. */
    CHECK(as_pw(w, "alice", "wrong4", NULL) != 0);
    CHECK_OK(ck_alarm_get(m, CK_ALARM_PREAUTH_SPIKE, "alice@" REALM, &a));
    CHECK_INT_EQ(a.count, 2);
    /* The window ends with the count over the threshold: still active. */
    fake_ms += 61000;
    kdc_alarms_tick(m);
    CHECK_OK(ck_alarm_get(m, CK_ALARM_PREAUTH_SPIKE, "alice@" REALM, &a));
    CHECK(!a.cleared);
    /* A quiet window: cleared. */
    fake_ms += 61000;
    kdc_alarms_tick(m);
    CHECK_OK(ck_alarm_get(m, CK_ALARM_PREAUTH_SPIKE, "alice@" REALM, &a));
    CHECK(a.cleared);
    kdc_worker_free(w);
    ck_alarm_mgr_free(m);
    realm_down();
}

static void
clock_skew(void)
{
    struct ck_alarm_mgr *m = manager();
    struct kdc_worker *w;
    struct ck_alarm a;

    realm_up();
    w = worker(m, NULL);
    kdc_offset = 3600;
    CHECK(as_pw(w, "alice", "alicepw", NULL) != 0);
    CHECK_INT_EQ(ck_alarm_get(m, CK_ALARM_CLOCK_SKEW, REALM, &a), CK_ERR_NOTFOUND);
    CHECK(as_pw(w, "bob", "bobpw", NULL) != 0);
    CHECK_OK(ck_alarm_get(m, CK_ALARM_CLOCK_SKEW, REALM, &a));
    CHECK(!a.cleared);
    CHECK(strstr(a.cause, "2 clock-skew errors") != NULL);
    CHECK(strstr(a.cause, "bob@" REALM) != NULL);
    CHECK(strstr(a.cause, "NTP") != NULL);
    /* A skew is not a failed pre-authentication of the principal (no preauth-spike). */
    CHECK_INT_EQ(ck_alarm_get(m, CK_ALARM_PREAUTH_SPIKE, "bob@" REALM, &a), CK_ERR_NOTFOUND);
    kdc_offset = 0;
    CHECK(as_pw(w, "alice", "alicepw", NULL) == 0);
    fake_ms += 61000;
    kdc_alarms_tick(m); /* the window that ends held 2: still over */
    fake_ms += 61000;
    kdc_alarms_tick(m);
    CHECK_OK(ck_alarm_get(m, CK_ALARM_CLOCK_SKEW, REALM, &a));
    CHECK(a.cleared);
    kdc_worker_free(w);
    ck_alarm_mgr_free(m);
    realm_down();
}

static void
kvno_missing(void)
{
    struct ck_alarm_mgr *m = manager();
    struct kdc_worker *w;
    ck_kdc_transport t = {.send_fn = send_to_worker};
    ck_tgs_params tp = {.service = "host/svc", .transport = &t};
    ck_creds *tgt = NULL, *svc = NULL;
    struct ck_alarm a;
    ck_store *st = NULL;

    realm_up();
    w = worker(m, NULL);
    t.send_arg = w;
    CHECK_OK(as_pw(w, "alice", "alicepw", &tgt));
    if (tgt == NULL)
        abort();
    tp.tgt = tgt;
    CHECK_OK(ck_client_tgs(&tp, &svc));
    ck_creds_free(svc);
    svc = NULL;
    CHECK_INT_EQ(ck_alarm_get(m, CK_ALARM_KVNO_MISSING, TGS, &a), CK_ERR_NOTFOUND);
    /* The krbtgt key of the TGT (kvno 2) is gone: only kvno 3 remains. */
    CHECK_OK(ck_store_open(db, NULL, 0, &st));
    put_princ(st, TGS, NULL, 3, 0);
    ck_store_close(st);
    CHECK(ck_client_tgs(&tp, &svc) != 0);
    CHECK_OK(ck_alarm_get(m, CK_ALARM_KVNO_MISSING, TGS, &a));
    CHECK(a.severity == CK_ALARM_MAJOR);
    CHECK(strstr(a.cause, "kvno 2") != NULL);
    CHECK(strstr(a.cause, "holds kvno 3") != NULL);
    CHECK(strstr(a.cause, "127.0.0.9") != NULL);
    CHECK(strstr(a.cause, "host/svc@" REALM) != NULL);
    ck_creds_free(svc);
    ck_creds_free(tgt);
    kdc_worker_free(w);
    ck_alarm_mgr_free(m);
    realm_down();
}

static void
no_manager(void)
{
    struct ck_alarm_mgr *m = manager();
    struct kdc_worker *w;
    struct ck_alarm_stats st;

    realm_up();
    w = worker(NULL, NULL);
    for (int i = 0; i < 5; i++)
        CHECK(as_pw(w, "alice", "wrong", NULL) != 0);
    ck_alarm_mgr_stats(m, &st);
    CHECK_INT_EQ(st.raised, 0);
    kdc_worker_free(w);
    ck_alarm_mgr_free(m);
    realm_down();
}

/* A self-signed certificate valid until now + days (negative: expired), written as PEM. */
static void
write_cert(const char *path, const char *cn, long days)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    FILE *f;

    if (key == NULL || x == NULL || name == NULL)
        abort();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_subject_name(x, name);
    X509_set_issuer_name(x, name);
    X509_gmtime_adj(X509_getm_notBefore(x), -400L * 86400);
    X509_gmtime_adj(X509_getm_notAfter(x), days * 86400);
    X509_set_pubkey(x, key);
    CHECK(X509_sign(x, key, EVP_sha256()) > 0);
    f = fopen(path, "w");
    if (f == NULL)
        abort();
    PEM_write_X509(f, x);
    fclose(f);
    X509_NAME_free(name);
    X509_free(x);
    EVP_PKEY_free(key);
}

static void
cert_expiry(void)
{
    struct ck_alarm_mgr *m = manager();
    struct kdc_pkinit_config *pc = NULL;
    char soon[128], gone[128], fine[128], list[400], subj[256];
    struct ck_alarm a;
    int64_t now;

    realm_up();
    snprintf(soon, sizeof(soon), "%s/soon.pem", dir);
    snprintf(gone, sizeof(gone), "%s/gone.pem", dir);
    snprintf(fine, sizeof(fine), "%s/fine.pem", dir);
    write_cert(soon, "Soon CA", 5);
    write_cert(gone, "Gone CA", -2);
    write_cert(fine, "Fine CA", 100);
    snprintf(list, sizeof(list), "%s %s %s", soon, gone, fine);
    CHECK_OK(kdc_pkinit_config_set(&pc, "pkinit_anchors", list, true));
    ck_now(&now, NULL);
    kdc_alarms_check_certs(m, pc, 30 * 86400, now);
    snprintf(subj, sizeof(subj), "%s: /CN=Soon CA", soon);
    CHECK_OK(ck_alarm_get(m, CK_ALARM_CERT_EXPIRY, subj, &a));
    CHECK(a.severity == CK_ALARM_MAJOR);
    CHECK(strstr(a.cause, "trust anchor expires") != NULL);
    CHECK(strstr(a.cause, "in 4 days") != NULL || strstr(a.cause, "in 5 days") != NULL);
    snprintf(subj, sizeof(subj), "%s: /CN=Gone CA", gone);
    CHECK_OK(ck_alarm_get(m, CK_ALARM_CERT_EXPIRY, subj, &a));
    CHECK(a.severity == CK_ALARM_CRITICAL);
    CHECK(strstr(a.cause, "expired") != NULL);
    snprintf(subj, sizeof(subj), "%s: /CN=Fine CA", fine);
    CHECK_INT_EQ(ck_alarm_get(m, CK_ALARM_CERT_EXPIRY, subj, &a), CK_ERR_NOTFOUND);
    /* The warning shortened to a day: the 5-day certificate no longer alarms. */
    kdc_alarms_check_certs(m, pc, 86400, now);
    snprintf(subj, sizeof(subj), "%s: /CN=Soon CA", soon);
    CHECK_OK(ck_alarm_get(m, CK_ALARM_CERT_EXPIRY, subj, &a));
    CHECK(a.cleared);
    kdc_pkinit_config_free(pc);
    ck_alarm_mgr_free(m);
    realm_down();
}

static void
metrics(void)
{
    struct kdc_daemon_config dc;
    struct ck_metrics *reg = NULL;
    struct kdc_worker *w;
    char *text = NULL;
    size_t len = 0;

    realm_up();
    kdc_daemon_config_init(&dc);
    dc.alarm.metrics_listen = strdup("127.0.0.1:0");
    CHECK_OK(kdc_metrics_start(&dc, NULL, &reg));
    if (reg == NULL)
        abort();
    CHECK(kdc_metrics_port() > 0);
    w = worker(NULL, reg);
    CHECK(as_pw(w, "alice", "wrong", NULL) != 0);
    CHECK(as_pw(w, "alice", "alicepw", NULL) == 0);
    CHECK(as_pw(w, "nobody", "x", NULL) != 0);
    CHECK_OK(ck_metrics_render(reg, &text, &len));
    if (text == NULL)
        abort();
    CHECK(strstr(text, "kdc_requests_total{type=\"as\",result=\"preauth_failed\"} 1\n") != NULL);
    CHECK(strstr(text, "kdc_requests_total{type=\"as\",result=\"preauth_required\"} 2\n") !=
          NULL);
    CHECK(strstr(text, "kdc_requests_total{type=\"as\",result=\"ok\"} 1\n") != NULL);
    CHECK(strstr(text, "kdc_requests_total{type=\"as\",result=\"client_unknown\"} 1\n") != NULL);
    CHECK(strstr(text, "kdc_request_duration_seconds_count{type=\"as\"} 5\n") != NULL);
    CHECK(strstr(text, "kdc_cache_lookups_total{cache=\"principal\",result=\"hit\"}") != NULL);
    CHECK(strstr(text, "kdc_db_duration_seconds_count{op=\"principal_load\"}") != NULL);
    CHECK(strstr(text, "\nkdc_db_staleness_seconds 0\n") != NULL); /* the database answers */
    CHECK(strstr(text, "alice") == NULL && strstr(text, "nobody") == NULL);
    free(text);
    kdc_worker_free(w);
    kdc_metrics_stop(reg);
    kdc_daemon_config_free(&dc);
    realm_down();
}

static int
count_rows(const ck_alarm_row *r, void *arg)
{
    (void)r;
    (*(int *)arg)++;
    return 0;
}

static int
count_audit(const ck_audit_entry *e, void *arg)
{
    if (strcmp(e->action, "alarm.clear") == 0 && strcmp(e->actor, "ops/admin") == 0 &&
        strstr(e->detail, "code kdc-down") != NULL)
        (*(int *)arg)++;
    return 0;
}

/* The generic layer (store_alarm.c): what it refuses before a backend sees it, and the clear's
 * audit row under the store's actor. */
static void
store_alarm_api(void)
{
    ck_store *st = NULL, *ro = NULL;
    ck_alarm_row r;
    ck_alarm_filter f;
    ck_audit_filter af = {.limit = 100};
    uint64_t n = 9;
    int rows = 0, audits = 0;

    realm_up();
    CHECK_OK(ck_store_open(db, NULL, 0, &st));
    if (st == NULL)
        abort();
    ck_store_set_actor(st, "ops/admin");
    memset(&r, 0, sizeof(r));
    ck_strlcpy(r.code, "kdc-down", sizeof(r.code));
    ck_strlcpy(r.severity, "major", sizeof(r.severity));
    ck_strlcpy(r.subject, "kdc2:88", sizeof(r.subject));
    ck_strlcpy(r.host, "kdc1", sizeof(r.host));
    r.first_seen = r.last_seen = 5;
    r.count = 1;
    CHECK_OK(ck_store_alarm_record(st, &r));
    /* Refused: an unknown code or severity, control characters, an unterminated field, times
     * out of order. */
    ck_strlcpy(r.code, "kdc-gone", sizeof(r.code));
    CHECK_INT_EQ(ck_store_alarm_record(st, &r), CK_ERR_INVAL);
    ck_strlcpy(r.code, "kdc-down", sizeof(r.code));
    ck_strlcpy(r.severity, "fatal", sizeof(r.severity));
    CHECK_INT_EQ(ck_store_alarm_record(st, &r), CK_ERR_INVAL);
    ck_strlcpy(r.severity, "major", sizeof(r.severity));
    ck_strlcpy(r.subject, "kdc2\nforged line", sizeof(r.subject));
    CHECK_INT_EQ(ck_store_alarm_record(st, &r), CK_ERR_INVAL);
    memset(r.cause, 'x', sizeof(r.cause));
    ck_strlcpy(r.subject, "kdc2:88", sizeof(r.subject));
    CHECK_INT_EQ(ck_store_alarm_record(st, &r), CK_ERR_INVAL);
    r.cause[0] = '\0';
    r.first_seen = 10;
    CHECK_INT_EQ(ck_store_alarm_record(st, &r), CK_ERR_INVAL);
    memset(&f, 0, sizeof(f));
    CHECK_OK(ck_store_alarm_list(st, &f, count_rows, &rows));
    CHECK_INT_EQ(rows, 1);
    f.code = "nope";
    CHECK_INT_EQ(ck_store_alarm_list(st, &f, count_rows, &rows), CK_ERR_INVAL);
    f.code = NULL;
    f.limit = CK_ALARM_LIST_MAX + 1;
    CHECK_INT_EQ(ck_store_alarm_list(st, &f, count_rows, &rows), CK_ERR_INVAL);
    /* A clear names something; clearing nothing active is CK_ERR_NOTFOUND. */
    memset(&f, 0, sizeof(f));
    CHECK_INT_EQ(ck_store_alarm_clear(st, &f, &n), CK_ERR_INVAL);
    f.code = "clock-skew";
    CHECK_INT_EQ(ck_store_alarm_clear(st, &f, &n), CK_ERR_NOTFOUND);
    CHECK_INT_EQ(n, 0);
    /* A read-only connection lists but writes nothing. */
    CHECK_OK(ck_store_open(db, NULL, CK_STORE_READONLY, &ro));
    if (ro != NULL) {
        f.code = "kdc-down";
        CHECK_INT_EQ(ck_store_alarm_clear(ro, &f, &n), CK_ERR_PERM);
        CHECK_INT_EQ(ck_store_alarm_record(ro, &r), CK_ERR_PERM);
        ck_store_close(ro);
    }
    f.code = "kdc-down";
    CHECK_OK(ck_store_alarm_clear(st, &f, &n));
    CHECK_INT_EQ(n, 1);
    CHECK_OK(ck_store_audit_list(st, &af, count_audit, &audits));
    CHECK_INT_EQ(audits, 1);
    ck_store_close(st);
    realm_down();
}

CK_TEST_MAIN("kdc alarms", CK_TEST_CASE(preauth_spike), CK_TEST_CASE(clock_skew),
             CK_TEST_CASE(kvno_missing), CK_TEST_CASE(no_manager), CK_TEST_CASE(cert_expiry),
             CK_TEST_CASE(metrics), CK_TEST_CASE(store_alarm_api))
