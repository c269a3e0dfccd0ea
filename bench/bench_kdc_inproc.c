/* In-process KDC benchmark: CPU per AS exchange (PA-ENC-TIMESTAMP, aes256-cts-hmac-sha1-96), per
 * TGS exchange, and per AS-REQ without padata (the PREAUTH_REQUIRED round trip every kinit
 * starts with) through kdc_handle_request, no sockets. Linked with the KDC core library, as the
 * daemon is (so callgrind counts the same code the daemon runs).
 *   bench_kdc_inproc [ITERATIONS [CACHE_CHECK_MS [as|tgs|as0|as0udp|all]]]
 *   (defaults 100000, the worker's own, all; CACHE_CHECK_MS -1: the worker's own; BENCH_LOG=info
 *   logs a line per request as the daemon does at its default level; BENCH_LOCKOUT=on gives the
 *   client a lockout policy (max failures 5) with the KDC's counting on, =off turns counting and
 *   last-success recording off; unset: the defaults, no policy). The AS loop calls the worker's
 *   idle step after each request, as the daemon's event loop does. as0udp sends
 *   the PREAUTH_REQUIRED request over "UDP" with a different nonce each time, so every one
 *   misses the lookaside cache and is stored in it, as under load. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cablekey/error.h"
#include "cablekey/log.h"
#include "cablekey/util.h"
#include "kdc_int.h"

#define REALM "BENCH.TEST"

static uint8_t reply[65536];

static void
die(const char *what, int rc)
{
    fprintf(stderr, "%s: %s (%s)\n", what, ck_strerror(rc), ck_error_context());
    exit(1);
}

static void
add(ck_store *s, const char *name, const char *pw, uint32_t attrs)
{
    static const int32_t et[] = {CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96};
    ck_db_principal *p = NULL;
    int rc;

    if ((rc = ck_db_principal_new(name, &p)) != 0)
        die("principal", rc);
    p->kvno = 1;
    p->attributes = attrs;
    if ((rc = ck_db_keys_make(name, pw, pw ? strlen(pw) : 0, et, 1, 1, &p->keys, &p->n_keys)) ||
        (rc = ck_store_put_principal(s, p)))
        die("put", rc);
    ck_db_principal_free(p);
}

static double
now_us(void)
{
    struct timespec t;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

int
main(int argc, char **argv)
{
    static const int32_t et[] = {CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96};
    char dir[] = "/tmp/ck-bench-XXXXXX", db[128], cmd[160];
    struct kdc_config cfg;
    struct kdc_worker *w = NULL;
    ck_store *s = NULL;
    ck_key ukey, session;
    CK_AS_REQ *req;
    CK_KDC_REP *rep = NULL;
    CK_ENC_KDC_REP_PART *part = NULL;
    CK_PRINCIPAL_NAME *cname = NULL;
    uint8_t *as = NULL, *tg = NULL, *as0 = NULL, *plain = NULL;
    size_t as_len = 0, tg_len = 0, as0_len = 0, n = 0, plain_len = 0;
    const char *which = argc > 3 ? argv[3] : "all", *lockout;
    long iters = argc > 1 ? strtol(argv[1], NULL, 10) : 100000;
    int64_t t;
    int32_t usec;
    double t0;
    int rc;

    ck_log_set_level(LOG_WARNING);
    if (iters <= 0 || mkdtemp(dir) == NULL)
        return 2;
    snprintf(db, sizeof(db), "%s/kdc.db", dir);
    if ((rc = ck_store_init_realm(db, NULL, REALM, et, 1, 0, 0)) ||
        (rc = ck_store_open(db, NULL, 0, &s)))
        die("realm", rc);
    add(s, "bench@" REALM, "benchpw", CK_ATTR_REQUIRES_PREAUTH);
    add(s, "host/bench.test@" REALM, NULL, 0);
    lockout = getenv("BENCH_LOCKOUT");
    if (lockout != NULL && strcmp(lockout, "on") == 0) {
        ck_policy pol;

        memset(&pol, 0, sizeof(pol));
        ck_strlcpy(pol.name, "benchlock", sizeof(pol.name));
        pol.max_failure = 5;
        pol.failure_interval = 600;
        pol.lockout_duration = 1800;
        if ((rc = ck_store_create_policy(s, &pol)) ||
            (rc = ck_store_set_principal_policy(s, "bench@" REALM, "benchlock")))
            die("policy", rc);
    }
    ck_store_close(s);
    memset(&cfg, 0, sizeof(cfg));
    if (lockout != NULL && strcmp(lockout, "off") == 0)
        cfg.disable_lockout = cfg.disable_last_success = true;
    cfg.db_path = db;
    cfg.enctypes[0] = et[0];
    cfg.n_enctypes = 1;
    cfg.lookaside = true;
    /* BENCH_LOG=info: one request line each, batched as the daemon does, into /dev/null. */
    if (getenv("BENCH_LOG") != NULL && strcmp(getenv("BENCH_LOG"), "info") == 0) {
        if (ck_log_open("bench", CK_LOG_FILE, "/dev/null", LOG_INFO) != 0)
            die("log", CK_ERR_IO);
        cfg.log_flush_ms = 100;
    }
    if ((rc = kdc_worker_new(&cfg, &w)))
        die("worker", rc);
    if (argc > 2 && strtol(argv[2], NULL, 10) >= 0)
        ck_store_cache_configure(w->store, CK_STORE_CACHE_MAX_ENTRIES, strtol(argv[2], NULL, 10));
    if ((rc = ck_string_to_key(et[0], "benchpw", 7, (const uint8_t *)REALM "bench",
                               strlen(REALM "bench"), NULL, 0, &ukey)))
        die("s2k", rc);

    /* AS-REQ with PA-ENC-TIMESTAMP (the timestamp stays within the skew for a long run). */
    {
        CK_PA_ENC_TS_ENC *ts = CK_PA_ENC_TS_ENC_new();
        CK_ENCRYPTED_DATA *ed = CK_ENCRYPTED_DATA_new();
        ASN1_GENERALSTRING *r = NULL;
        uint8_t *p = NULL, *e = NULL;
        size_t pl = 0, el = 0;

        req = CK_AS_REQ_new();
        req->pvno = 5;
        req->msg_type = CK_KRB_AS_REQ;
        ck_now(&t, &usec);
        ck_asn1_flags_set(&req->req_body->kdc_options, 0);
        ck_asn1_principal_parse("bench", CK_NT_PRINCIPAL, &req->req_body->cname, &r);
        ck_asn1_principal_parse("krbtgt/" REALM, CK_NT_SRV_INST, &req->req_body->sname, &r);
        ck_asn1_kstring_set(&req->req_body->realm, REALM);
        ck_asn1_time_set(&req->req_body->till, t + 36000);
        ck_asn1_nonce_set(&req->req_body->nonce, 0x1234567);
        ck_asn1_etypes_set(req->req_body, et, 1);
        if ((rc = ck_asn1_as_req_encode(req, &as0, &as0_len)))
            die("as-req", rc);
        ck_asn1_time_set(&ts->patimestamp, t);
        ck_asn1_pa_enc_ts_enc_encode(ts, &p, &pl);
        ck_enc_data_seal(ed, &ukey, CK_KU_PA_ENC_TS, NULL, p, pl);
        ck_asn1_encrypted_data_encode(ed, &e, &el);
        ck_asn1_padata_add(&req->padata, CK_PA_ENC_TIMESTAMP, e, el);
        if ((rc = ck_asn1_as_req_encode(req, &as, &as_len)))
            die("as-req", rc);
        cname = CK_PRINCIPAL_NAME_dup(req->req_body->cname);
        CK_AS_REQ_free(req);
        ck_asn1_free_der(p, pl);
        ck_asn1_free_der(e, el);
        CK_PA_ENC_TS_ENC_free(ts);
        CK_ENCRYPTED_DATA_free(ed);
    }
    kdc_handle_request(w, as, as_len, KDC_TRANSPORT_TCP, NULL, reply, sizeof(reply), &n);
    if ((rc = ck_asn1_kdc_rep_decode(reply, n, &rep, NULL)) ||
        (rc = ck_enc_data_open(rep->enc_part, &ukey, 3, &plain, &plain_len)) ||
        (rc = ck_asn1_enc_kdc_rep_part_decode(plain, plain_len, &part, NULL)) ||
        (rc = ck_key_from_asn1(&session, part->key)))
        die("as-rep", rc);

    /* TGS-REQ for the service. */
    {
        CK_TGS_REQ *tr = CK_TGS_REQ_new();
        ASN1_GENERALSTRING *r = NULL;
        CK_CHECKSUM *ck = NULL;
        const uint8_t *b;
        size_t bl;
        uint8_t *ap = NULL;
        size_t apl = 0;

        tr->pvno = 5;
        tr->msg_type = CK_KRB_TGS_REQ;
        ck_asn1_flags_set(&tr->req_body->kdc_options, 0);
        ck_asn1_principal_parse("host/bench.test", CK_NT_SRV_HST, &tr->req_body->sname, &r);
        ck_asn1_kstring_set(&tr->req_body->realm, REALM);
        ck_asn1_time_set(&tr->req_body->till, t + 36000);
        ck_asn1_nonce_set(&tr->req_body->nonce, 0x7654321);
        ck_asn1_etypes_set(tr->req_body, et, 1);
        ck_asn1_kdc_req_body_der(tr, &b, &bl);
        ck_checksum_new(&session, 0, CK_KU_TGS_REQ_AUTH_CKSUM, b, bl, &ck);
        if ((rc = ck_ap_req_build(rep->ticket, &session, REALM, cname, 0, ck, CK_KU_TGS_REQ_AUTH,
                                  NULL, NULL, NULL, NULL, &ap, &apl)))
            die("ap-req", rc);
        ck_asn1_padata_add(&tr->padata, CK_PA_TGS_REQ, ap, apl);
        if ((rc = ck_asn1_tgs_req_encode(tr, &tg, &tg_len)))
            die("tgs-req", rc);
        ck_asn1_free_der(ap, apl);
        CK_CHECKSUM_free(ck);
        CK_TGS_REQ_free(tr);
    }
    kdc_handle_request(w, tg, tg_len, KDC_TRANSPORT_TCP, NULL, reply, sizeof(reply), &n);
    if (ck_asn1_msg_type(reply, n) != CK_KRB_TGS_REP)
        die("tgs-rep", CK_ERR_PROTO);

    if (strcmp(which, "all") == 0 || strcmp(which, "as") == 0) {
        t0 = now_us();
        for (long i = 0; i < iters; i++) {
            kdc_handle_request(w, as, as_len, KDC_TRANSPORT_TCP, NULL, reply, sizeof(reply), &n);
            kdc_worker_idle(w);
        }
        printf("AS  (PA-ENC-TIMESTAMP, aes256-sha1): %.2f us CPU per exchange\n",
               (now_us() - t0) / (double)iters);
    }
    if (strcmp(which, "all") == 0 || strcmp(which, "tgs") == 0) {
        t0 = now_us();
        for (long i = 0; i < iters; i++)
            kdc_handle_request(w, tg, tg_len, KDC_TRANSPORT_TCP, NULL, reply, sizeof(reply), &n);
        printf("TGS (aes256-sha1):                   %.2f us CPU per exchange\n",
               (now_us() - t0) / (double)iters);
    }
    if (strcmp(which, "all") == 0 || strcmp(which, "as0") == 0) {
        t0 = now_us();
        for (long i = 0; i < iters; i++)
            kdc_handle_request(w, as0, as0_len, KDC_TRANSPORT_TCP, NULL, reply, sizeof(reply),
                               &n);
        if (ck_asn1_msg_type(reply, n) != CK_KRB_ERROR)
            die("preauth-required", CK_ERR_PROTO);
        printf("AS without padata (PREAUTH_REQUIRED): %.2f us CPU per request\n",
               (now_us() - t0) / (double)iters);
    }
    if (strcmp(which, "all") == 0 || strcmp(which, "as0udp") == 0) {
        static const uint8_t nonce[] = {0x01, 0x23, 0x45, 0x67};
        uint8_t *at = NULL;

        for (size_t i = 0; i + sizeof(nonce) <= as0_len && at == NULL; i++)
            if (memcmp(as0 + i, nonce, sizeof(nonce)) == 0)
                at = as0 + i;
        if (at == NULL)
            die("nonce", CK_ERR_NOTFOUND);
        t0 = now_us();
        for (long i = 0; i < iters; i++) {
            uint32_t v = 0x01000000u + (uint32_t)i;

            at[0] = (uint8_t)(v >> 24);
            at[1] = (uint8_t)(v >> 16);
            at[2] = (uint8_t)(v >> 8);
            at[3] = (uint8_t)v;
            kdc_handle_request(w, as0, as0_len, KDC_TRANSPORT_UDP, NULL, reply, sizeof(reply),
                               &n);
        }
        if (ck_asn1_msg_type(reply, n) != CK_KRB_ERROR)
            die("preauth-required", CK_ERR_PROTO);
        printf("AS without padata over UDP, lookaside misses: %.2f us CPU per request\n",
               (now_us() - t0) / (double)iters);
    }

    ck_free_secret(plain, plain_len);
    CK_ENC_KDC_REP_PART_free(part);
    CK_KDC_REP_free(rep);
    CK_PRINCIPAL_NAME_free(cname);
    ck_asn1_free_der(as, as_len);
    ck_asn1_free_der(tg, tg_len);
    ck_asn1_free_der(as0, as0_len);
    kdc_worker_free(w);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : 1;
}
