/* kdc_loadgen: a UDP load generator for Kerberos KDCs (ours and MIT's, same generator, same
 * parameters), measuring AS (PA-ENC-TIMESTAMP, aes256-cts-hmac-sha1-96) or TGS exchanges per
 * second, p50/p99 latency, and the KDC's CPU time per exchange read from /proc.
 *
 * The generator must cost the KDC nothing extra and cost the shared CPUs as little as possible:
 *   - every request is built and encrypted before the clock starts (distinct nonces, authenticator
 *     times and confounders, so no KDC lookaside/replay cache can short-circuit the work);
 *   - K connected UDP sockets, one request in flight per socket, so a datagram arriving on socket i
 *     is the answer to the request in flight on i and only its first byte is inspected;
 *   - one epoll loop, one send() and one recv() per exchange, no allocation while running.
 *
 * Usage: kdc_loadgen --kdc 127.0.0.1:PORT --realm R --client NAME --password PW
 *                    [--mode as|tgs] [--service NAME] [--requests N] [--inflight K]
 *                    [--duration-max S] [--timeout-ms MS] [--kdc-pid PID]... [--label NAME]
 *
 * KDC CPU = the change of utime+stime (/proc/PID/stat, all threads) of every --kdc-pid and of its
 * direct children (MIT's krb5kdc -w N workers), over the measured window, divided by the number of
 * successful exchanges. Lost datagrams (no answer within --timeout-ms) are counted, not resent.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/asn1.h>

#include "cablekey/crypto.h"
#include "cablekey/error.h"
#include "cablekey/krb5_asn1.h"
#include "cablekey/util.h"
#include "proc_cpu.h"

#define LG_MAX_INFLIGHT 4096
#define LG_MAX_REQUESTS 5000000
#define LG_REPLY_MAX 65536
#define LG_TILL_SECS (10 * 3600)

/* Request-body lifetimes and options are those of a plain `kinit`; what matters is that both KDCs
 * see byte-for-byte the same kind of request. */
#define LG_ETYPE CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96

typedef struct lg_opts {
    const char *kdc;
    const char *realm;
    const char *client;
    const char *password;
    const char *service;
    const char *label;
    int mode_tgs;
    int skip_check;
    int64_t requests;
    int64_t inflight;
    int64_t duration_max_s;
    int64_t timeout_ms;
    struct proc_pids kdc_pids;
} lg_opts;

/* All prepared requests live in one buffer; req i is data[off[i] .. off[i] + len[i]). */
typedef struct lg_reqs {
    uint8_t *data;
    size_t used;
    size_t cap;
    size_t *off;
    uint32_t *len;
    size_t n;
} lg_reqs;

typedef struct lg_slot {
    int fd;
    int busy;
    size_t req;              /* index of the request in flight */
    struct timespec sent;
} lg_slot;

/* The TGT and its session key, from one real AS exchange before the run. */
typedef struct lg_tgt {
    CK_TICKET *ticket;
    CK_PRINCIPAL_NAME *cname;
    ck_key session_key;
} lg_tgt;

static int
fail(const char *what, int ret)
{
    fprintf(stderr, "kdc_loadgen: %s: %s: %s\n", what, ck_strerror(ret), ck_error_context());
    return ret < 0 ? ret : CK_ERR_INVAL;
}

static double
ts_us(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) * 1e6 + (double)(b->tv_nsec - a->tv_nsec) / 1e3;
}

/* ---------------------------------------------------------------------------------------------
 * Request preparation.
 */

static int
reqs_add(lg_reqs *r, const uint8_t *der, size_t len)
{
    if (len > LG_REPLY_MAX)
        return ck_error_set(CK_ERR_LIMIT, "request of %zu bytes", len);
    if (r->used + len > r->cap) {
        size_t ncap = r->cap ? r->cap * 2 : 1 << 20;
        uint8_t *nd;

        while (ncap < r->used + len)
            ncap *= 2;
        if ((nd = realloc(r->data, ncap)) == NULL)
            return CK_ERR_NOMEM;
        r->data = nd;
        r->cap = ncap;
    }
    memcpy(r->data + r->used, der, len);
    r->off[r->n] = r->used;
    r->len[r->n] = (uint32_t)len;
    r->used += len;
    r->n++;
    return 0;
}

static int
set_etype(CK_KDC_REQ_BODY *b)
{
    const int32_t et = LG_ETYPE;

    return ck_asn1_etypes_set(b, &et, 1);
}

/* Fills the parts of a KDC-REQ-BODY shared by AS and TGS requests. */
static int
body_fill(CK_KDC_REQ_BODY *b, const char *realm, CK_PRINCIPAL_NAME *sname, int64_t now,
          uint32_t nonce)
{
    int ret;

    if ((ret = ck_asn1_flags_set(&b->kdc_options, 0)) != 0 ||
        (ret = ck_asn1_kstring_set(&b->realm, realm)) != 0 ||
        (ret = ck_asn1_time_set(&b->till, now + LG_TILL_SECS)) != 0 ||
        (ret = ck_asn1_nonce_set(&b->nonce, nonce)) != 0 || (ret = set_etype(b)) != 0)
        return ret;
    b->sname = sname;
    return 0;
}

/* Encrypts `plain` with key/usage into a DER EncryptedData (etype 18, no kvno). */
static int
seal_encrypted_data(const ck_key *key, int32_t usage, const uint8_t *plain, size_t plain_len,
                    CK_ENCRYPTED_DATA **out)
{
    uint8_t cipher[4096];
    size_t clen = 0;
    CK_ENCRYPTED_DATA *ed = NULL;
    int ret;

    if (ck_encrypt_length(key->enctype, plain_len) > sizeof(cipher))
        return ck_error_set(CK_ERR_LIMIT, "plaintext too long");
    if ((ret = ck_encrypt(key, usage, plain, plain_len, cipher, sizeof(cipher), &clen)) != 0)
        return ret;
    if ((ed = CK_ENCRYPTED_DATA_new()) == NULL)
        return CK_ERR_NOMEM;
    if ((ret = ck_asn1_enc_data_set(ed, key->enctype, NULL, cipher, clen)) != 0) {
        CK_ENCRYPTED_DATA_free(ed);
        return ret;
    }
    *out = ed;
    return 0;
}

/* One AS-REQ with PA-ENC-TIMESTAMP {now} under the client key (usage 1). */
static int
build_as_req(const lg_opts *o, const ck_key *ckey, uint32_t nonce, uint8_t **der, size_t *der_len)
{
    const char *tgs[2] = {"krbtgt", o->realm};
    CK_KDC_REQ *req = NULL;
    CK_PRINCIPAL_NAME *sname = NULL;
    CK_PA_ENC_TS_ENC *ts = NULL;
    CK_ENCRYPTED_DATA *ed = NULL;
    uint8_t *ts_der = NULL, *ed_der = NULL;
    size_t ts_len = 0, ed_len = 0;
    int64_t sec;
    int32_t usec;
    int ret;

    ck_now(&sec, &usec);
    if ((req = CK_KDC_REQ_new()) == NULL) {
        ret = CK_ERR_NOMEM;
        goto out;
    }
    req->pvno = CK_KRB5_PVNO;
    req->msg_type = CK_KRB_AS_REQ;
    if ((ret = ck_asn1_principal_parse(o->client, CK_NT_PRINCIPAL, &req->req_body->cname,
                                       NULL)) != 0 ||
        (ret = ck_asn1_principal_new(CK_NT_SRV_INST, tgs, 2, &sname)) != 0)
        goto out;
    if ((ret = body_fill(req->req_body, o->realm, sname, sec, nonce)) != 0)
        goto out;
    sname = NULL; /* owned by the body now */

    if ((ts = CK_PA_ENC_TS_ENC_new()) == NULL) {
        ret = CK_ERR_NOMEM;
        goto out;
    }
    if ((ret = ck_asn1_time_set(&ts->patimestamp, sec)) != 0 ||
        (ret = ck_asn1_int32_set(&ts->pausec, usec)) != 0 ||
        (ret = ck_asn1_pa_enc_ts_enc_encode(ts, &ts_der, &ts_len)) != 0 ||
        (ret = seal_encrypted_data(ckey, CK_KU_PA_ENC_TS, ts_der, ts_len, &ed)) != 0 ||
        (ret = ck_asn1_encrypted_data_encode(ed, &ed_der, &ed_len)) != 0 ||
        (ret = ck_asn1_padata_add(&req->padata, CK_PA_ENC_TIMESTAMP, ed_der, ed_len)) != 0)
        goto out;
    ret = ck_asn1_as_req_encode(req, der, der_len);
out:
    if (ts_der != NULL)
        ck_asn1_free_der(ts_der, ts_len);
    if (ed_der != NULL)
        ck_asn1_free_der(ed_der, ed_len);
    CK_PA_ENC_TS_ENC_free(ts);
    CK_ENCRYPTED_DATA_free(ed);
    CK_PRINCIPAL_NAME_free(sname);
    CK_KDC_REQ_free(req);
    return ret;
}

/* One TGS-REQ for o->service: PA-TGS-REQ = AP-REQ {TGT, Authenticator {cksum over the
 * req-body (usage 6), ctime/cusec} under the TGT session key (usage 7)}. */
static int
build_tgs_req(const lg_opts *o, const lg_tgt *tgt, uint32_t nonce, int64_t sec, int32_t usec,
              uint8_t **der, size_t *der_len)
{
    CK_KDC_REQ *req = NULL;
    CK_PRINCIPAL_NAME *sname = NULL;
    CK_AUTHENTICATOR *auth = NULL;
    CK_AP_REQ *ap = NULL;
    CK_ENCRYPTED_DATA *ed = NULL;
    uint8_t *auth_der = NULL, *ap_der = NULL;
    size_t auth_len = 0, ap_len = 0, sum_len = 0;
    uint8_t sum[CK_CHECKSUM_MAX];
    const uint8_t *body;
    size_t body_len;
    int ret;

    if ((req = CK_KDC_REQ_new()) == NULL) {
        ret = CK_ERR_NOMEM;
        goto out;
    }
    req->pvno = CK_KRB5_PVNO;
    req->msg_type = CK_KRB_TGS_REQ;
    if ((ret = ck_asn1_principal_parse(o->service, CK_NT_PRINCIPAL, &sname, NULL)) != 0 ||
        (ret = body_fill(req->req_body, o->realm, sname, sec, nonce)) != 0)
        goto out;
    sname = NULL;
    if ((ret = ck_asn1_kdc_req_body_der(req, &body, &body_len)) != 0 ||
        (ret = ck_make_checksum(&tgt->session_key, 0, CK_KU_TGS_REQ_AUTH_CKSUM, body, body_len,
                                sum, sizeof(sum), &sum_len)) != 0)
        goto out;

    if ((auth = CK_AUTHENTICATOR_new()) == NULL || (auth->cksum = CK_CHECKSUM_new()) == NULL) {
        ret = CK_ERR_NOMEM;
        goto out;
    }
    auth->authenticator_vno = CK_KRB5_PVNO;
    auth->cusec = usec;
    CK_PRINCIPAL_NAME_free(auth->cname);
    if ((auth->cname = CK_PRINCIPAL_NAME_dup(tgt->cname)) == NULL) {
        ret = CK_ERR_NOMEM;
        goto out;
    }
    if ((ret = ck_asn1_kstring_set(&auth->crealm, o->realm)) != 0 ||
        (ret = ck_asn1_time_set(&auth->ctime, sec)) != 0 ||
        (ret = ck_asn1_checksum_set(auth->cksum, ck_enctype_checksum_type(LG_ETYPE), sum,
                                    sum_len)) != 0 ||
        (ret = ck_asn1_authenticator_encode(auth, &auth_der, &auth_len)) != 0 ||
        (ret = seal_encrypted_data(&tgt->session_key, CK_KU_TGS_REQ_AUTH, auth_der, auth_len,
                                   &ed)) != 0)
        goto out;

    if ((ap = CK_AP_REQ_new()) == NULL) {
        ret = CK_ERR_NOMEM;
        goto out;
    }
    ap->pvno = CK_KRB5_PVNO;
    ap->msg_type = CK_KRB_AP_REQ;
    CK_TICKET_free(ap->ticket);
    CK_ENCRYPTED_DATA_free(ap->authenticator);
    ap->authenticator = ed;
    ed = NULL;
    if ((ap->ticket = CK_TICKET_dup(tgt->ticket)) == NULL) {
        ret = CK_ERR_NOMEM;
        goto out;
    }
    if ((ret = ck_asn1_flags_set(&ap->ap_options, 0)) != 0 ||
        (ret = ck_asn1_ap_req_encode(ap, &ap_der, &ap_len)) != 0 ||
        (ret = ck_asn1_padata_add(&req->padata, CK_PA_TGS_REQ, ap_der, ap_len)) != 0)
        goto out;
    ret = ck_asn1_tgs_req_encode(req, der, der_len);
out:
    if (auth_der != NULL)
        ck_asn1_free_der(auth_der, auth_len);
    if (ap_der != NULL)
        ck_asn1_free_der(ap_der, ap_len);
    CK_AUTHENTICATOR_free(auth);
    CK_AP_REQ_free(ap);
    CK_ENCRYPTED_DATA_free(ed);
    CK_PRINCIPAL_NAME_free(sname);
    CK_KDC_REQ_free(req);
    return ret;
}

/* ---------------------------------------------------------------------------------------------
 * Network.
 */

static int
parse_addr(const char *s, struct sockaddr_in *sin)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    int64_t port;

    if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    if (ck_parse_int64(colon + 1, 1, 65535, &port) != 0)
        return -1;
    memset(sin, 0, sizeof(*sin));
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, host, &sin->sin_addr) == 1 ? 0 : -1;
}

static int
udp_socket(const struct sockaddr_in *kdc, int nonblock)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);

    if (fd < 0)
        return -1;
    /* Connected, so the kernel drops datagrams from anyone but the KDC and a refused port shows
     * up as ECONNREFUSED instead of silence. */
    if (connect(fd, (const struct sockaddr *)kdc, sizeof(*kdc)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One blocking request/reply with retries (used once, before the run). */
static int
exchange_once(const struct sockaddr_in *kdc, const uint8_t *req, size_t req_len, uint8_t *rep,
              size_t rep_size, size_t *rep_len)
{
    struct timeval tv = {1, 0};
    int fd, ret = CK_ERR_TIMEOUT;

    if ((fd = udp_socket(kdc, 0)) < 0)
        return ck_error_set(CK_ERR_IO, "socket: %s", strerror(errno));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    for (int attempt = 0; attempt < 3; attempt++) {
        ssize_t n;

        if (send(fd, req, req_len, 0) < 0) {
            ret = ck_error_set(CK_ERR_IO, "send: %s", strerror(errno));
            continue;
        }
        n = recv(fd, rep, rep_size, 0);
        if (n > 0) {
            *rep_len = (size_t)n;
            ret = 0;
            break;
        }
        ret = ck_error_set(n < 0 && errno != EAGAIN ? CK_ERR_IO : CK_ERR_TIMEOUT, "recv: %s",
                           n < 0 ? strerror(errno) : "empty");
    }
    close(fd);
    return ret;
}

static void
print_krb_error(const char *what, const uint8_t *rep, size_t len)
{
    CK_KRB_ERROR_MSG *err = NULL;

    if (ck_asn1_krb_error_decode(rep, len, &err) != 0) {
        fprintf(stderr, "kdc_loadgen: %s: undecodable KRB-ERROR (%zu bytes)\n", what, len);
        return;
    }
    fprintf(stderr, "kdc_loadgen: %s: KRB-ERROR %d %s\n", what, (int)err->error_code,
            err->e_text != NULL ? ck_asn1_kstring_get(err->e_text) : "");
    CK_KRB_ERROR_MSG_free(err);
}

/* A full, checked AS exchange: proves the password, realm and KDC are right before measuring,
 * and yields the TGT for TGS mode. */
static int
get_tgt(const lg_opts *o, const struct sockaddr_in *kdc, const ck_key *ckey, lg_tgt *tgt)
{
    static uint8_t rep[LG_REPLY_MAX];
    uint8_t *req = NULL, *plain = NULL;
    size_t req_len = 0, rep_len = 0, plain_len = 0;
    CK_KDC_REP *kr = NULL;
    CK_ENC_KDC_REP_PART *ep = NULL;
    uint32_t nonce = 0, got = 0;
    int ret;

    if ((ret = ck_random_bytes(&nonce, sizeof(nonce))) != 0)
        return ret;
    nonce &= 0x7fffffff;
    if ((ret = build_as_req(o, ckey, nonce, &req, &req_len)) != 0 ||
        (ret = exchange_once(kdc, req, req_len, rep, sizeof(rep), &rep_len)) != 0)
        goto out;
    if (rep[0] == 0x7e) {
        print_krb_error("initial AS exchange", rep, rep_len);
        ret = ck_error_set(CK_ERR_KRB, "initial AS exchange refused");
        goto out;
    }
    if ((ret = ck_asn1_kdc_rep_decode(rep, rep_len, &kr, NULL)) != 0)
        goto out;
    if (kr->enc_part->etype != ckey->enctype) {
        ret = ck_error_set(CK_ERR_UNSUPPORTED, "AS-REP enc-part etype %d", (int)kr->enc_part->etype);
        goto out;
    }
    plain_len = (size_t)ASN1_STRING_length(kr->enc_part->cipher);
    if ((plain = malloc(plain_len + 1)) == NULL) {
        ret = CK_ERR_NOMEM;
        goto out;
    }
    if ((ret = ck_decrypt(ckey, CK_KU_AS_REP_ENCPART, ASN1_STRING_get0_data(kr->enc_part->cipher),
                          plain_len, plain, plain_len + 1, &plain_len)) != 0 ||
        (ret = ck_asn1_enc_kdc_rep_part_decode(plain, plain_len, &ep, NULL)) != 0 ||
        (ret = ck_asn1_nonce_get(ep->nonce, &got)) != 0)
        goto out;
    if (got != nonce) {
        ret = ck_error_set(CK_ERR_PROTO, "AS-REP nonce mismatch");
        goto out;
    }
    if ((ret = ck_key_init(&tgt->session_key, ep->key->keytype,
                           ASN1_STRING_get0_data(ep->key->keyvalue),
                           (size_t)ASN1_STRING_length(ep->key->keyvalue))) != 0)
        goto out;
    tgt->ticket = kr->ticket;
    tgt->cname = kr->cname;
    kr->ticket = NULL;
    kr->cname = NULL;
out:
    if (plain != NULL)
        ck_free_secret(plain, plain_len);
    if (req != NULL)
        ck_asn1_free_der(req, req_len);
    CK_ENC_KDC_REP_PART_free(ep);
    CK_KDC_REP_free(kr);
    return ret;
}

/* ---------------------------------------------------------------------------------------------
 * Run.
 */

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double
percentile(const double *sorted, size_t n, double p)
{
    size_t i;

    if (n == 0)
        return 0;
    i = (size_t)(p * (double)(n - 1) + 0.5);
    return sorted[i < n ? i : n - 1];
}

static void
usage(void)
{
    fprintf(stderr,
            "usage: kdc_loadgen --kdc IP:PORT --realm R --client NAME --password PW\n"
            "                   [--mode as|tgs] [--service NAME] [--requests N] [--inflight K]\n"
            "                   [--duration-max S] [--timeout-ms MS] [--kdc-pid PID]...\n"
            "                   [--label NAME] [--skip-check]\n");
}

static int
parse_opts(int argc, char **argv, lg_opts *o)
{
    static const struct option longopts[] = {
        {"kdc", required_argument, NULL, 'k'},      {"realm", required_argument, NULL, 'r'},
        {"client", required_argument, NULL, 'c'},   {"password", required_argument, NULL, 'p'},
        {"service", required_argument, NULL, 's'},  {"mode", required_argument, NULL, 'm'},
        {"requests", required_argument, NULL, 'n'}, {"inflight", required_argument, NULL, 'i'},
        {"duration-max", required_argument, NULL, 'd'},
        {"timeout-ms", required_argument, NULL, 't'},
        {"kdc-pid", required_argument, NULL, 'P'},  {"label", required_argument, NULL, 'l'},
        {"skip-check", no_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0}};
    int c;

    memset(o, 0, sizeof(*o));
    o->requests = 20000;
    o->inflight = 64;
    o->duration_max_s = 10;
    o->timeout_ms = 1000;
    o->label = "kdc";
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        int64_t v;

        switch (c) {
        case 'k': o->kdc = optarg; break;
        case 'r': o->realm = optarg; break;
        case 'c': o->client = optarg; break;
        case 'p': o->password = optarg; break;
        case 's': o->service = optarg; break;
        case 'l': o->label = optarg; break;
        case 'S': o->skip_check = 1; break;
        case 'm':
            if (strcmp(optarg, "as") == 0)
                o->mode_tgs = 0;
            else if (strcmp(optarg, "tgs") == 0)
                o->mode_tgs = 1;
            else
                return -1;
            break;
        case 'n':
            if (ck_parse_int64(optarg, 1, LG_MAX_REQUESTS, &o->requests) != 0)
                return -1;
            break;
        case 'i':
            if (ck_parse_int64(optarg, 1, LG_MAX_INFLIGHT, &o->inflight) != 0)
                return -1;
            break;
        case 'd':
            if (ck_parse_int64(optarg, 1, 3600, &o->duration_max_s) != 0)
                return -1;
            break;
        case 't':
            if (ck_parse_int64(optarg, 1, 60000, &o->timeout_ms) != 0)
                return -1;
            break;
        case 'P':
            if (ck_parse_int64(optarg, 1, 1 << 30, &v) != 0 || proc_pids_add(&o->kdc_pids, (int)v) != 0)
                return -1;
            break;
        default:
            return -1;
        }
    }
    if (o->kdc == NULL || o->realm == NULL || o->client == NULL || o->password == NULL ||
        (o->mode_tgs && (o->service == NULL || o->skip_check)) || optind != argc)
        return -1;
    return 0;
}

typedef struct lg_stats {
    size_t sent, ok, errors, lost, neterr;
    int first_error_shown;
} lg_stats;

/* Starts request `idx` on slot s. */
static int
slot_send(lg_slot *s, const lg_reqs *r, size_t idx, lg_stats *st)
{
    s->req = idx;
    clock_gettime(CLOCK_MONOTONIC, &s->sent);
    if (send(s->fd, r->data + r->off[idx], r->len[idx], 0) < 0) {
        st->neterr++;
        s->busy = 0;
        return -1;
    }
    s->busy = 1;
    st->sent++;
    return 0;
}

int
main(int argc, char **argv)
{
    static uint8_t rep[LG_REPLY_MAX];
    lg_opts o;
    lg_reqs reqs;
    lg_tgt tgt;
    lg_stats st;
    lg_slot *slots = NULL;
    double *lat = NULL;
    size_t nlat = 0, next = 0;
    struct sockaddr_in kdc;
    struct timespec t_prep0, t_prep1, t0, t1, now;
    struct rusage ru0, ru1;
    unsigned long long cpu0 = 0, cpu1 = 0, ns0 = 0, ns1 = 0;
    unsigned long long mbusy0 = 0, mtot0 = 0, mbusy1 = 0, mtot1 = 0;
    int have_cpu = 0, have_ns = 0, have_machine = 0, epfd = -1, ret = 1;
    uint8_t salt[2048];
    size_t salt_len;
    ck_key ckey;
    uint32_t nonce_base = 0;

    memset(&reqs, 0, sizeof(reqs));
    memset(&tgt, 0, sizeof(tgt));
    memset(&st, 0, sizeof(st));
    memset(&ckey, 0, sizeof(ckey));
    if (parse_opts(argc, argv, &o) != 0 || parse_addr(o.kdc, &kdc) != 0) {
        usage();
        return 2;
    }
    if (o.inflight > o.requests)
        o.inflight = o.requests;

    /* Default salt (RFC 4120 §4): realm followed by the name components, no separators. */
    {
        size_t rl = strlen(o.realm);
        const char *p;

        if (rl >= sizeof(salt)) {
            fprintf(stderr, "kdc_loadgen: realm too long\n");
            return 2;
        }
        memcpy(salt, o.realm, rl);
        salt_len = rl;
        for (p = o.client; *p != '\0' && *p != '@' && salt_len < sizeof(salt); p++)
            if (*p != '/')
                salt[salt_len++] = (uint8_t)*p;
    }
    if ((ret = ck_string_to_key(LG_ETYPE, o.password, strlen(o.password), salt, salt_len, NULL,
                                0, &ckey)) != 0) {
        fail("string-to-key", ret);
        ret = 1;
        goto out;
    }

    /* One real exchange first: validates the setup, and TGS mode needs its TGT. --skip-check
     * (AS mode only) is for null_kdc, which answers with filler. */
    if (!o.skip_check && (ret = get_tgt(&o, &kdc, &ckey, &tgt)) != 0) {
        fail("initial AS exchange", ret);
        ret = 1;
        goto out;
    }

    reqs.off = calloc((size_t)o.requests, sizeof(*reqs.off));
    reqs.len = calloc((size_t)o.requests, sizeof(*reqs.len));
    lat = calloc((size_t)o.requests, sizeof(*lat));
    slots = calloc((size_t)o.inflight, sizeof(*slots));
    if (reqs.off == NULL || reqs.len == NULL || lat == NULL || slots == NULL) {
        fprintf(stderr, "kdc_loadgen: out of memory\n");
        ret = 1;
        goto out;
    }

    /* Prepare every request before the clock starts. */
    if ((ret = ck_random_bytes(&nonce_base, sizeof(nonce_base))) != 0) {
        fail("random", ret);
        ret = 1;
        goto out;
    }
    clock_gettime(CLOCK_MONOTONIC, &t_prep0);
    {
        int64_t prev_sec = 0;
        int32_t prev_usec = -1;

        for (size_t i = 0; i < (size_t)o.requests; i++) {
            /* Distinct non-zero 31-bit nonces (MIT refuses 5-byte positive nonces). */
            uint32_t nonce = ((nonce_base + (uint32_t)i) & 0x7fffffff) | 1u << 30;
            uint8_t *der = NULL;
            size_t der_len = 0;

            if (o.mode_tgs) {
                int64_t sec;
                int32_t usec;

                /* Distinct authenticator times, so even a KDC keeping a replay cache keyed on
                 * (client, ctime, cusec) sees no replays. */
                ck_now(&sec, &usec);
                if (sec < prev_sec || (sec == prev_sec && usec <= prev_usec)) {
                    sec = prev_sec;
                    usec = prev_usec + 1;
                    if (usec > 999999) {
                        sec++;
                        usec = 0;
                    }
                }
                prev_sec = sec;
                prev_usec = usec;
                ret = build_tgs_req(&o, &tgt, nonce, sec, usec, &der, &der_len);
            } else {
                ret = build_as_req(&o, &ckey, nonce, &der, &der_len);
            }
            if (ret == 0)
                ret = reqs_add(&reqs, der, der_len);
            if (der != NULL)
                ck_asn1_free_der(der, der_len);
            if (ret != 0) {
                fail("prepare request", ret);
                ret = 1;
                goto out;
            }
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t_prep1);

    if ((epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
        perror("kdc_loadgen: epoll_create1");
        ret = 1;
        goto out;
    }
    for (size_t i = 0; i < (size_t)o.inflight; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = i};

        slots[i].fd = udp_socket(&kdc, 1);
        if (slots[i].fd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, slots[i].fd, &ev) != 0) {
            perror("kdc_loadgen: socket");
            ret = 1;
            goto out;
        }
    }

    if (o.kdc_pids.n > 0) {
        proc_pids_add_children(&o.kdc_pids);
        if (proc_pids_ticks(&o.kdc_pids, &cpu0) != 0) {
            ret = 1;
            goto out;
        }
        have_cpu = 1;
        have_ns = proc_pids_sched_ns(&o.kdc_pids, &ns0) == 0;
    }
    have_machine = proc_machine_ticks(&mbusy0, &mtot0) == 0;
    getrusage(RUSAGE_SELF, &ru0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (size_t i = 0; i < (size_t)o.inflight && next < reqs.n; i++)
        slot_send(&slots[i], &reqs, next++, &st);

    {
        struct epoll_event evs[256];
        struct timespec last_scan = t0;
        size_t busy_left;

        for (;;) {
            int nev;
            int stop_new;

            clock_gettime(CLOCK_MONOTONIC, &now);
            stop_new = ts_us(&t0, &now) >= (double)o.duration_max_s * 1e6;
            busy_left = 0;
            /* Expire lost datagrams every 50 ms: the socket is replaced so a late answer can
             * never be taken for the answer to the next request. */
            if (ts_us(&last_scan, &now) >= 50000) {
                last_scan = now;
                for (size_t i = 0; i < (size_t)o.inflight; i++) {
                    lg_slot *s = &slots[i];
                    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = i};

                    if (!s->busy || ts_us(&s->sent, &now) < (double)o.timeout_ms * 1e3)
                        continue;
                    st.lost++;
                    s->busy = 0;
                    close(s->fd);
                    s->fd = udp_socket(&kdc, 1);
                    if (s->fd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, s->fd, &ev) != 0) {
                        perror("kdc_loadgen: socket");
                        ret = 1;
                        goto out;
                    }
                    if (!stop_new && next < reqs.n)
                        slot_send(s, &reqs, next++, &st);
                }
            }
            for (size_t i = 0; i < (size_t)o.inflight; i++)
                busy_left += (size_t)slots[i].busy;
            if (busy_left == 0 && (stop_new || next >= reqs.n))
                break;
            if (busy_left == 0) {
                /* Every slot failed to send (e.g. no KDC): restart them. */
                for (size_t i = 0; i < (size_t)o.inflight && next < reqs.n; i++)
                    slot_send(&slots[i], &reqs, next++, &st);
                continue;
            }
            nev = epoll_wait(epfd, evs, (int)(sizeof(evs) / sizeof(evs[0])), 50);
            if (nev < 0) {
                if (errno == EINTR)
                    continue;
                perror("kdc_loadgen: epoll_wait");
                ret = 1;
                goto out;
            }
            if (nev > 0)
                clock_gettime(CLOCK_MONOTONIC, &now);
            for (int e = 0; e < nev; e++) {
                lg_slot *s = &slots[evs[e].data.u64];
                ssize_t n = recv(s->fd, rep, sizeof(rep), 0);

                if (n < 0) {
                    if (errno == EAGAIN || errno == EWOULDBLOCK)
                        continue;
                    /* ECONNREFUSED and friends: the request got no answer. */
                    st.neterr++;
                } else if (!s->busy) {
                    continue; /* stray datagram on an idle socket */
                } else if (n > 0 && (rep[0] == 0x6b || rep[0] == 0x6d)) {
                    /* 0x6b = [APPLICATION 11] AS-REP, 0x6d = [APPLICATION 13] TGS-REP. */
                    st.ok++;
                    lat[nlat++] = ts_us(&s->sent, &now);
                } else {
                    st.errors++;
                    if (!st.first_error_shown && n > 0 && rep[0] == 0x7e) {
                        print_krb_error("first error reply", rep, (size_t)n);
                        st.first_error_shown = 1;
                    }
                }
                s->busy = 0;
                if (!stop_new && next < reqs.n)
                    slot_send(s, &reqs, next++, &st);
            }
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    getrusage(RUSAGE_SELF, &ru1);
    if (have_machine && proc_machine_ticks(&mbusy1, &mtot1) != 0)
        have_machine = 0;
    if (have_cpu) {
        if (proc_pids_ticks(&o.kdc_pids, &cpu1) != 0)
            have_cpu = 0;
        if (have_ns && proc_pids_sched_ns(&o.kdc_pids, &ns1) != 0)
            have_ns = 0;
    }

    {
        double wall_s = ts_us(&t0, &t1) / 1e6;
        double rps = wall_s > 0 ? (double)st.ok / wall_s : 0;
        double tick_us = 1e6 / (double)sysconf(_SC_CLK_TCK);
        double cpu_us = have_cpu ? (double)(cpu1 - cpu0) * tick_us : -1;
        double cpu_per = have_cpu && st.ok > 0 ? cpu_us / (double)st.ok : -1;
        double ns_per = have_ns && st.ok > 0 ? (double)(ns1 - ns0) / 1e3 / (double)st.ok : -1;
        double gen_us = ts_us(&(struct timespec){ru0.ru_utime.tv_sec, ru0.ru_utime.tv_usec * 1000},
                              &(struct timespec){ru1.ru_utime.tv_sec, ru1.ru_utime.tv_usec * 1000}) +
                        ts_us(&(struct timespec){ru0.ru_stime.tv_sec, ru0.ru_stime.tv_usec * 1000},
                              &(struct timespec){ru1.ru_stime.tv_sec, ru1.ru_stime.tv_usec * 1000});
        double p50, p99, other_cores = -1;

        qsort(lat, nlat, sizeof(*lat), cmp_double);
        p50 = percentile(lat, nlat, 0.50);
        p99 = percentile(lat, nlat, 0.99);
        printf("impl=%s mode=%s kdc=%s inflight=%lld prepared=%zu (%.2f s to prepare)\n", o.label,
               o.mode_tgs ? "tgs" : "as", o.kdc, (long long)o.inflight, reqs.n,
               ts_us(&t_prep0, &t_prep1) / 1e6);
        printf("  sent %zu  ok %zu  errors %zu  lost %zu  net-errors %zu  wall %.3f s\n", st.sent,
               st.ok, st.errors, st.lost, st.neterr, wall_s);
        printf("  exchanges/s %.0f  latency p50 %.0f us  p99 %.0f us\n", rps, p50, p99);
        if (have_cpu)
            printf("  KDC CPU %.0f ms (%d pid%s, /proc stat ticks) = %.1f us/exchange; "
                   "schedstat %.1f us/exchange\n",
                   cpu_us / 1e3, o.kdc_pids.n, o.kdc_pids.n == 1 ? "" : "s", cpu_per, ns_per);
        printf("  generator CPU %.1f us/exchange\n", st.ok > 0 ? gen_us / (double)st.ok : -1);
        if (have_machine && mtot1 > mtot0) {
            long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
            double busy_cores = (double)(mbusy1 - mbusy0) / (double)(mtot1 - mtot0) * (double)ncpu;
            double kdc_cores = have_cpu ? cpu_us / 1e6 / wall_s : 0;
            double gen_cores = gen_us / 1e6 / wall_s;

            other_cores = busy_cores - kdc_cores - gen_cores;
            if (other_cores < 0)
                other_cores = 0;
            printf("  machine: %.2f of %ld CPUs busy: KDC %.2f, generator %.2f, other processes "
                   "%.2f\n",
                   busy_cores, ncpu, kdc_cores, gen_cores, other_cores);
        }
        printf("RESULT impl=%s mode=%s requests=%zu ok=%zu errors=%zu lost=%zu wall_s=%.3f "
               "rps=%.0f p50_us=%.0f p99_us=%.0f cpu_us_per_req=%.1f sched_us_per_req=%.1f "
               "gen_cpu_us_per_req=%.1f other_cores=%.2f\n",
               o.label, o.mode_tgs ? "tgs" : "as", st.sent, st.ok, st.errors, st.lost, wall_s,
               rps, p50, p99, cpu_per, ns_per, st.ok > 0 ? gen_us / (double)st.ok : -1,
               other_cores);
        ret = st.ok > 0 ? 0 : 1;
    }
out:
    if (slots != NULL)
        for (size_t i = 0; i < (size_t)o.inflight; i++)
            if (slots[i].fd > 0)
                close(slots[i].fd);
    if (epfd >= 0)
        close(epfd);
    free(slots);
    free(lat);
    free(reqs.data);
    free(reqs.off);
    free(reqs.len);
    CK_TICKET_free(tgt.ticket);
    CK_PRINCIPAL_NAME_free(tgt.cname);
    ck_key_clear(&tgt.session_key);
    ck_key_clear(&ckey);
    return ret;
}
