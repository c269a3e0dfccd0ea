/* In-process PKINIT benchmark: the KDC core's CPU per PKINIT AS exchange through
 * kdc_handle_request, no sockets, the same code the daemon runs (linked with the KDC core). With
 * the load runs of pkinit_run.sh it separates what the exchange costs in the KDC's PKINIT and
 * AS code from what the network path adds (TCP accept, reads, close, wake-ups), and it is the
 * loop to profile: valgrind --tool=callgrind build/pkinit_inproc ... --requests 200.
 *
 * Set-up (not timed): a KDC worker configured like cablekey-kdc from kdc.conf (pkinit_identity,
 * pkinit_password_file, pkinit_anchors, pkinit_pool, cache sizes), the client identities, one
 * AS-REQ without padata whose KDC_ERR_PREAUTH_REQUIRED carries the freshness token the PKINIT
 * requests then reflect (as MIT's kinit does), and --requests PKINIT AS-REQs built with the
 * tests' PKINIT client (tests/tools/pkinit_asreq.h): RFC 4556 form, distinct nonces and DH/ECDH
 * keys, identities in turn. Timed (thread CPU): the PREAUTH_REQUIRED round, then the PKINIT
 * requests. Every PKINIT reply must be an AS-REP.
 *
 * Usage: pkinit_inproc --db DB --kdc-identity KDC.p12 --password-file F --anchors PEM
 *                      [--pool PEM] --client NAME --kx modp2048|p256|rsa
 *                      (--identity FILE:cert,key | --identity-list FILE)... [--requests N]
 *                      [--cache-size N] [--shape NAME]
 * Output: a summary and
 *   INPROC shape=… requests=… pa_us=… as0_us=… exchange_us=… chain_verifications=… */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "cablekey/error.h"
#include "cablekey/log.h"
#include "cablekey/pki.h"
#include "cablekey/util.h"
#include "kdc_int.h"
#include "pkinit_kdc.h"

#include "../tests/tools/pkinit_asreq.h"

#define PI_MAX_IDS 4096

static uint8_t reply[65536];

struct pi_opts {
    const char *db, *kdc_identity, *password_file, *anchors, *pool, *client, *shape, *cache;
    const char *ids[PI_MAX_IDS];
    int n_ids;
    ck_pkinit_group group;
    long requests;
};

static void
die(const char *what)
{
    fprintf(stderr, "pkinit_inproc: %s: %s\n", what, ck_error_context());
    exit(1);
}

static double
cpu_us(void)
{
    struct timespec t;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int
add_id(struct pi_opts *o, const char *id)
{
    char *copy;

    if (o->n_ids >= PI_MAX_IDS || (copy = strdup(id)) == NULL)
        return -1;
    o->ids[o->n_ids++] = copy;
    return 0;
}

static int
add_id_list(struct pi_opts *o, const char *path)
{
    char line[4096];
    FILE *f = fopen(path, "r");
    int rc = 0;

    if (f == NULL)
        return -1;
    while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] != '\0' && line[0] != '#')
            rc = add_id(o, line);
    }
    fclose(f);
    return rc;
}

static int
parse_args(int argc, char **argv, struct pi_opts *o)
{
    static const struct option longopts[] = {
        {"db", required_argument, NULL, 'd'},
        {"kdc-identity", required_argument, NULL, 'k'},
        {"password-file", required_argument, NULL, 'w'},
        {"anchors", required_argument, NULL, 'a'},
        {"pool", required_argument, NULL, 'p'},
        {"client", required_argument, NULL, 'c'},
        {"kx", required_argument, NULL, 'x'},
        {"identity", required_argument, NULL, 'i'},
        {"identity-list", required_argument, NULL, 'I'},
        {"requests", required_argument, NULL, 'n'},
        {"cache-size", required_argument, NULL, 'C'},
        {"shape", required_argument, NULL, 's'},
        {NULL, 0, NULL, 0},
    };
    char *end;
    int c;

    memset(o, 0, sizeof(*o));
    o->group = CK_PKINIT_GROUP_MODP2048;
    o->requests = 300;
    o->shape = "pkinit";
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'd': o->db = optarg; break;
        case 'k': o->kdc_identity = optarg; break;
        case 'w': o->password_file = optarg; break;
        case 'a': o->anchors = optarg; break;
        case 'p': o->pool = optarg; break;
        case 'c': o->client = optarg; break;
        case 's': o->shape = optarg; break;
        case 'C': o->cache = optarg; break;
        case 'x':
            if (strcmp(optarg, "modp2048") == 0)
                o->group = CK_PKINIT_GROUP_MODP2048;
            else if (strcmp(optarg, "p256") == 0)
                o->group = CK_PKINIT_GROUP_P256;
            else if (strcmp(optarg, "rsa") == 0)
                o->group = CK_PKINIT_GROUP_NONE; /* pk_opts: no group = RSA key transport */
            else
                return -1;
            break;
        case 'i':
            if (add_id(o, optarg) != 0)
                return -1;
            break;
        case 'I':
            if (add_id_list(o, optarg) != 0)
                return -1;
            break;
        case 'n':
            o->requests = strtol(optarg, &end, 10);
            if (*end != '\0' || o->requests < 1 || o->requests > 100000)
                return -1;
            break;
        default: return -1;
        }
    }
    if (o->db == NULL || o->kdc_identity == NULL || o->anchors == NULL || o->client == NULL ||
        o->n_ids == 0 || optind != argc)
        return -1;
    return 0;
}

static struct kdc_worker *
make_worker(const struct pi_opts *o)
{
    struct kdc_config cfg;
    struct kdc_worker *w = NULL;
    int rc;

    kdc_config_defaults(&cfg);
    if ((cfg.db_path = strdup(o->db)) == NULL)
        die("config");
    if ((rc = kdc_pkinit_config_set(&cfg.pkinit, "pkinit_identity", o->kdc_identity, false)) ||
        (o->password_file != NULL &&
         (rc = kdc_pkinit_config_set(&cfg.pkinit, "pkinit_password_file", o->password_file,
                                     false))) ||
        (rc = kdc_pkinit_config_set(&cfg.pkinit, "pkinit_anchors", o->anchors, false)) ||
        (o->pool != NULL &&
         (rc = kdc_pkinit_config_set(&cfg.pkinit, "pkinit_pool", o->pool, false))) ||
        (o->cache != NULL &&
         ((rc = kdc_pkinit_config_set(&cfg.pkinit, "pkinit_thumbprint_cache_size", o->cache,
                                      false)) ||
          (rc = kdc_pkinit_config_set(&cfg.pkinit, "pkinit_cert_cache_size", o->cache,
                                      false)))) ||
        (rc = kdc_pkinit_config_finish(cfg.pkinit)) || (rc = kdc_worker_new(&cfg, &w)))
        die("KDC worker");
    kdc_config_free_contents(&cfg);
    return w;
}

static size_t
ask(struct kdc_worker *w, const uint8_t *req, size_t len)
{
    size_t n = 0;

    if (kdc_handle_request(w, req, len, KDC_TRANSPORT_TCP, NULL, reply, sizeof(reply), &n) != 0)
        die("kdc_handle_request");
    return n;
}

/* The request without padata (the first AS-REQ of an exchange) and the freshness token of the
 * KDC's answer to it. */
static void
first_round(struct kdc_worker *w, const struct pk_opts *o, uint8_t **as0, size_t *as0_len,
            uint8_t **fresh, size_t *fresh_len)
{
    struct pk_state st;
    CK_AS_REQ *req = NULL;
    CK_KRB_ERROR_MSG *e = NULL;
    CK_METHOD_DATA *md = NULL;
    const CK_PA_DATA *pa;
    size_t n;

    if (pk_build(o, &st) != 0 || ck_asn1_as_req_decode(st.req, st.req_len, &req) != 0)
        die("first AS-REQ");
    sk_CK_PA_DATA_pop_free(req->padata, CK_PA_DATA_free);
    req->padata = NULL;
    if (ck_asn1_as_req_encode(req, as0, as0_len) != 0)
        die("first AS-REQ");
    n = ask(w, *as0, *as0_len);
    if (ck_asn1_krb_error_decode(reply, n, &e) != 0 ||
        e->error_code != CK_KDC_ERR_PREAUTH_REQUIRED || e->e_data == NULL ||
        ck_asn1_method_data_decode(e->e_data->data, (size_t)e->e_data->length, &md) != 0 ||
        (pa = ck_asn1_padata_find(md, CK_PA_AS_FRESHNESS)) == NULL ||
        pa->padata_value == NULL || pa->padata_value->length <= 0)
        die("PREAUTH_REQUIRED with a freshness token");
    *fresh_len = (size_t)pa->padata_value->length;
    if ((*fresh = malloc(*fresh_len)) == NULL)
        die("memory");
    memcpy(*fresh, pa->padata_value->data, *fresh_len);
    CK_METHOD_DATA_free(md);
    CK_KRB_ERROR_MSG_free(e);
    CK_AS_REQ_free(req);
    pk_state_free(&st);
}

int
main(int argc, char **argv)
{
    struct pi_opts o;
    struct kdc_worker *w;
    struct kdc_pkinit_stats before, after;
    ck_pki_identity **ids;
    char *password = NULL;
    uint8_t **reqs, *as0 = NULL, *fresh = NULL;
    size_t *lens, as0_len = 0, fresh_len = 0;
    const void *pctx = NULL;
    double t0, pa_us, as0_us;
    long bad = 0;
    int64_t now;
    int32_t usec;

    if (parse_args(argc, argv, &o) != 0) {
        fprintf(stderr,
                "usage: pkinit_inproc --db DB --kdc-identity KDC.p12 --password-file F "
                "--anchors PEM [--pool PEM]\n"
                "                     --client NAME --kx modp2048|p256|rsa (--identity ID | "
                "--identity-list F)...\n"
                "                     [--requests N] [--cache-size N] [--shape NAME]\n");
        return 2;
    }
    /* One log line per request, as cablekey-kdc --log-level info writes them (to nowhere). */
    if (ck_log_open("pkinit_inproc", CK_LOG_FILE, "/dev/null", LOG_INFO) != 0)
        die("log");
    w = make_worker(&o);
    for (size_t i = 0; i < w->n_pa; i++)
        if (w->pa[i].mech == &kdc_pa_pkinit)
            pctx = w->pa[i].ctx;
    if (pctx == NULL)
        die("no PKINIT mechanism in the worker");
    if (o.password_file != NULL && ck_pki_password_read(o.password_file, &password) != 0)
        die("password file");
    ids = calloc((size_t)o.n_ids, sizeof(*ids));
    reqs = calloc((size_t)o.requests, sizeof(*reqs));
    lens = calloc((size_t)o.requests, sizeof(*lens));
    if (ids == NULL || reqs == NULL || lens == NULL)
        die("memory");
    for (int i = 0; i < o.n_ids; i++)
        if (ck_pki_identity_load(o.ids[i], password, &ids[i]) != 0)
            die(o.ids[i]);

    ck_now(&now, &usec);
    {
        struct pk_opts po;

        memset(&po, 0, sizeof(po));
        po.cname = o.client;
        po.realm = kdc_worker_realm(w);
        po.id = ids[0];
        po.group = o.group;
        po.now = now;
        first_round(w, &po, &as0, &as0_len, &fresh, &fresh_len);
        for (long i = 0; i < o.requests; i++) {
            struct pk_state st;

            po.id = ids[i % o.n_ids];
            po.nonce = (uint32_t)(0x10000 + i);
            po.fresh = fresh;
            po.fresh_len = fresh_len;
            if (pk_build(&po, &st) != 0)
                die("PKINIT AS-REQ");
            reqs[i] = st.req;
            lens[i] = st.req_len;
            st.req = NULL;
            st.req_len = 0;
            pk_state_free(&st);
        }
    }

    t0 = cpu_us();
    for (long i = 0; i < o.requests; i++)
        (void)ask(w, as0, as0_len);
    as0_us = (cpu_us() - t0) / (double)o.requests;
    kdc_pkinit_get_stats(pctx, &before);
    t0 = cpu_us();
    for (long i = 0; i < o.requests; i++) {
        size_t n = ask(w, reqs[i], lens[i]);
        bad += ck_asn1_msg_type(reply, n) != CK_KRB_AS_REP;
    }
    pa_us = (cpu_us() - t0) / (double)o.requests;
    kdc_pkinit_get_stats(pctx, &after);

    printf("%s in-process (%d identit%s): PKINIT AS-REQ %.1f us, PREAUTH_REQUIRED %.1f us, "
           "exchange %.1f us of KDC CPU; %llu chain verifications in %ld requests%s\n",
           o.shape, o.n_ids, o.n_ids == 1 ? "y" : "ies", pa_us, as0_us, pa_us + as0_us,
           (unsigned long long)(after.chain_verifications - before.chain_verifications),
           o.requests, bad ? " (SOME NOT AS-REP)" : "");
    printf("INPROC shape=%s requests=%ld failed=%ld pa_us=%.1f as0_us=%.1f exchange_us=%.1f "
           "chain_verifications=%llu\n",
           o.shape, o.requests, bad, pa_us, as0_us, pa_us + as0_us,
           (unsigned long long)(after.chain_verifications - before.chain_verifications));

    for (long i = 0; i < o.requests; i++)
        ck_asn1_free_der(reqs[i], lens[i]);
    for (int i = 0; i < o.n_ids; i++) {
        ck_pki_identity_free(ids[i]);
        free((char *)o.ids[i]);
    }
    free(reqs);
    free(lens);
    free(ids);
    free(fresh);
    ck_asn1_free_der(as0, as0_len);
    ck_pki_password_free(password);
    kdc_worker_free(w);
    ck_log_close();
    return bad ? 1 : 0;
}
