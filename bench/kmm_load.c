/* kmm_load: N simulated PacketCable endpoints (MTAs) keying against one Kerberized key-management
 * server (cablekey-cms) over UDP: each endpoint runs one KMM AP Request / AP Reply exchange
 * (include/cablekey/kmm.h, DOI IPsec) and derives its IPsec keys.
 *
 * Tickets: each endpoint gets its own service ticket, minted here with the service key from the
 * keytab (ck_ticket_seal: distinct client principal mtaNNNNNN@REALM and random session key each,
 * the EncTicketPart a KDC would write), not obtained from a KDC: the benchmark measures the
 * server of the AP exchange, and a KDC round trip per endpoint would only slow the set-up. The
 * output says so. Every AP-REQ (authenticator time = when it was minted, no sub-key,
 * MUTUAL-REQUIRED) is built before the clock starts, wrapped into a KMM AP Request (nonce 0 =
 * endpoint-started, its own random inbound SPI, suites sha1-aes128 sha1-3des sha1-null) and
 * sealed with the AP Request HMAC key from the session key.
 *
 * Load: S exchanges in flight (default 256), each on its own connected UDP socket, one epoll
 * loop: a datagram on socket i answers the endpoint in flight on i. Against a server on IPv4
 * loopback each endpoint sends from an address of its own, 127.(1 + i / 65536).(i / 256 % 256).
 * (i % 256) (a new socket per exchange), as real endpoints do and as the server's SA table
 * expects (it indexes SAs by endpoint address and supersedes an address's older SA);
 * --shared-addrs keeps S sockets on one address instead. Every reply is checked as an endpoint
 * would: KMM decode, AP Reply type, ck_ap_rep_verify against the session key and authenticator
 * time, a sub-key present, the AP Reply HMAC under the key from that sub-key, then
 * ck_kmm_derive_ipsec for the chosen suite (an Error Reply counts as an error, with its
 * KRB-ERROR code). An exchange with no answer within --timeout-ms is sent again (at most
 * --retries times) with a fresh authenticator (the first one is in the server's replay cache if
 * it got there), on a new socket so a late answer is never taken for the next one.
 *
 * Measured: AP exchanges per second (wall), p50/p99 latency (send to verified reply, last try),
 * the time until all N endpoints hold SAs (first send to last verified reply), and with
 * --cms-pid the server's CPU time (utime+stime of /proc/PID/stat, and the schedstat ns sum) and
 * its VmRSS before and after (growth / N = memory per endpoint).
 *
 * --write-apreq FILE also writes every endpoint's DER AP-REQ (4-byte big-endian length + DER,
 * in endpoint order) for krb5_rd_req, so that MIT's krb5_rd_req + krb5_mk_rep measure the same
 * tickets and authenticators (each replay cache sees each authenticator once).
 *
 * --self-test: no server needed; an in-process responder thread built from the same library parts
 * a server uses (lib/kmm + ap.h: ck_ap_req_verify with the keytab and a replay cache, the AP
 * Request HMAC, the strongest common suite, a random SPI and sub-key, ck_ap_rep_build,
 * ck_kmm_derive_ipsec, the AP Reply HMAC) answers on 127.0.0.1, so the load generator can be
 * checked end to end (and the responder's thread CPU is reported as its server CPU). It is a
 * test fixture, not cablekey-cms.
 *
 * Usage: kmm_load --keytab FILE --service PRINCIPAL (--cms ADDR:PORT | --self-test)
 *                 [--endpoints N] [--sockets S] [--timeout-ms MS] [--retries R]
 *                 [--cms-pid PID] [--write-apreq FILE] [--shared-addrs] [--label NAME]
 * Output: a summary and one line
 *   RESULT impl=… n=… ok=… errors=… retries=… lost=… mint_s=… wall_s=… xps=… p50_us=… p99_us=…
 *          all_sa_s=… srv_cpu_s=… srv_sched_s=… srv_us_per_x=… x_per_cpu_s=… rss0_kb=…
 *          rss1_kb=… bytes_per_ep=… gen_cpu_us_per_x=… other_cores=… udp_rcvbuf_drops=…
 * Exit 0 only if every endpoint holds an SA. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cablekey/ap.h"
#include "cablekey/crypto.h"
#include "cablekey/error.h"
#include "cablekey/keytab.h"
#include "cablekey/kmm.h"
#include "cablekey/krb5_asn1.h"
#include "cablekey/principal.h"
#include "cablekey/util.h"
#include "proc_cpu.h"

#define KL_MAX_ENDPOINTS 1000000
#define KL_MAX_SOCKETS 4096
#define KL_TICKET_LIFE (10 * 3600)
#define KL_NO_ANSWER "no answer after the last retry"
#define KL_MSG_MAX 4096               /* our AP-REQ / AP-REP messages are well under this */

struct kl_opts {
    const char *keytab, *service, *cms, *apreq_out, *label;
    long n, sockets, timeout_ms, retries;
    int self_test, cms_pid, shared_addrs;
};

/* One endpoint: its ticket's session key, the KMM AP Request to send, the authenticator time
 * the AP Reply must echo, its inbound SPI, and how its exchange went. */
struct kl_ep {
    ck_key session_key;
    uint8_t *msg;                     /* KMM AP Request; the AP-REQ DER starts at offset 3 */
    uint16_t msg_len, krb_len;
    uint32_t spi_c;
    int64_t ctime;
    int32_t cusec;
    uint8_t tries;
    uint8_t done;                     /* 1 = SA held, 2 = failed */
};

struct kl_slot {
    int fd;
    long ep;                          /* -1 = idle */
    struct timespec sent;
};

/* Where the load goes. */
struct kl_net {
    int epfd;
    struct sockaddr_storage srv;
    socklen_t srv_len;
    int own_addr;                     /* each endpoint sends from its own 127.x.y.z */
};

struct kl_stats {
    long ok, errors, retries, lost, neterr;
    int shown;                        /* error lines printed */
};

static const struct ck_kmm_suite kl_offer[] = {
    {CK_KMM_AUTH_HMAC_SHA1_96, CK_KMM_ENC_AES128},
    {CK_KMM_AUTH_HMAC_SHA1_96, CK_KMM_ENC_3DES},
    {CK_KMM_AUTH_HMAC_SHA1_96, CK_KMM_ENC_NULL},
};

static double
ts_us(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) * 1e6 + (double)(b->tv_nsec - a->tv_nsec) / 1e3;
}

static int
fail(const char *what, int ret)
{
    fprintf(stderr, "kmm_load: %s: %s: %s\n", what, ck_strerror(ret), ck_error_context());
    return 1;
}

static int
parse_long(const char *s, long min, long max, long *out)
{
    int64_t v;

    if (ck_parse_int64(s, min, max, &v) != 0)
        return -1;
    *out = (long)v;
    return 0;
}

/* "127.0.0.1:1293", "[::1]:1293", "host:port". */
static int
parse_hostport(const char *s, struct sockaddr_storage *ss, socklen_t *sl)
{
    char host[256];
    const char *colon, *h = s, *port;
    struct addrinfo hints, *ai = NULL;
    size_t hl;

    if (s[0] == '[') {
        const char *e = strchr(s, ']');
        if (e == NULL || e[1] != ':')
            return -1;
        h = s + 1;
        hl = (size_t)(e - h);
        port = e + 2;
    } else {
        if ((colon = strrchr(s, ':')) == NULL)
            return -1;
        hl = (size_t)(colon - s);
        port = colon + 1;
    }
    if (hl == 0 || hl >= sizeof(host) || *port == '\0')
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = AI_NUMERICSERV;
    if (getaddrinfo(host, port, &hints, &ai) != 0 || ai == NULL)
        return -1;
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *sl = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

/* A UDP socket connected to the server; with ep >= 0, bound first to that endpoint's own
 * loopback address 127.(1 + ep / 65536).(ep / 256 % 256).(ep % 256), so that every simulated
 * endpoint has an address of its own as a real one does (the server indexes its SAs by the
 * endpoint's address; Linux routes all of 127/8 to lo). */
static int
udp_connect(const struct sockaddr_storage *ss, socklen_t sl, long ep)
{
    int fd = socket(ss->ss_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

    if (fd < 0)
        return -1;
    if (ep >= 0) {
        struct sockaddr_in me;

        memset(&me, 0, sizeof(me));
        me.sin_family = AF_INET;
        me.sin_addr.s_addr = htonl(0x7f000000u | (uint32_t)(1 + ep / 65536) << 16 |
                                   (uint32_t)(ep / 256 % 256) << 8 | (uint32_t)(ep % 256));
        if (bind(fd, (const struct sockaddr *)&me, sizeof(me)) != 0) {
            close(fd);
            return -1;
        }
    }
    if (connect(fd, (const struct sockaddr *)ss, sl) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* VmRSS of a process in kB (-1 if unreadable). */
static long
proc_rss_kb(int pid)
{
    char path[64], line[256];
    long kb = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    if ((f = fopen(path, "r")) == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

/* The kernel's UDP receive-buffer drops (machine-wide, /proc/net/snmp "Udp: ... RcvbufErrors"):
 * a datagram the server never saw because its socket queue was full. -1 if unreadable. */
static long long
udp_rcvbuf_errors(void)
{
    char names[1024], values[1024];
    long long v = -1;
    FILE *f;

    if ((f = fopen("/proc/net/snmp", "r")) == NULL)
        return -1;
    while (fgets(names, sizeof(names), f) != NULL) {
        char *np, *vp, *nsave = NULL, *vsave = NULL;

        if (strncmp(names, "Udp: ", 5) != 0 || fgets(values, sizeof(values), f) == NULL)
            continue;
        np = strtok_r(names, " \n", &nsave);
        vp = strtok_r(values, " \n", &vsave);
        while (np != NULL && vp != NULL) {
            if (strcmp(np, "RcvbufErrors") == 0) {
                v = strtoll(vp, NULL, 10);
                break;
            }
            np = strtok_r(NULL, " \n", &nsave);
            vp = strtok_r(NULL, " \n", &vsave);
        }
        break;
    }
    fclose(f);
    return v;
}

static uint32_t
random_spi(void)
{
    uint32_t spi = 0;

    /* SPIs 0..255 are reserved (RFC 4303 §2.1). */
    while (spi < 256)
        if (ck_random_bytes(&spi, sizeof(spi)) != 0)
            return 0;
    return spi;
}

/* ---------------------------------------------------------------------------------------------
 * Minting: tickets, AP-REQs, KMM AP Requests.
 */

struct kl_mint {
    const ck_keytab_entry *svc;       /* service key and kvno */
    const ck_principal *sname;
    CK_PRINCIPAL_NAME *sname_asn1;
};

static int
mint_ticket(const struct kl_mint *m, long i, CK_TICKET **ticket_out, CK_PRINCIPAL_NAME **cname_out,
            ck_key *session_key)
{
    CK_ENC_TICKET_PART *etp = NULL;
    CK_TICKET *t = NULL;
    CK_PRINCIPAL_NAME *cname = NULL;
    char name[32];
    const char *comp[1] = {name};
    int64_t now;
    int32_t usec;
    int rc;

    ck_now(&now, &usec);
    snprintf(name, sizeof(name), "mta%06ld", i);
    if ((etp = CK_ENC_TICKET_PART_new()) == NULL || (t = CK_TICKET_new()) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "ticket");
        goto out;
    }
    if ((rc = ck_random_key(m->svc->key.enctype, session_key)) != 0 ||
        (rc = ck_asn1_principal_new(CK_NT_PRINCIPAL, comp, 1, &cname)) != 0 ||
        (rc = ck_asn1_flags_set(&etp->flags, CK_TKT_FLG_PRE_AUTHENT)) != 0 ||
        (rc = ck_key_to_asn1(session_key, &etp->key)) != 0 ||
        (rc = ck_asn1_kstring_set(&etp->crealm, m->sname->realm)) != 0 ||
        (rc = ck_asn1_principal_set(etp->cname, CK_NT_PRINCIPAL, comp, 1)) != 0 ||
        (rc = ck_asn1_time_set(&etp->authtime, now)) != 0 ||
        (rc = ck_asn1_time_set(&etp->endtime, now + KL_TICKET_LIFE)) != 0 ||
        (rc = ck_asn1_kstring_set(&t->realm, m->sname->realm)) != 0 ||
        (rc = ck_asn1_principal_set(t->sname, m->sname->name_type,
                                    (const char *const *)m->sname->components,
                                    m->sname->n_components)) != 0)
        goto out;
    etp->transited->tr_type = 1;     /* domain-X500-compress, empty: issued in the service realm */
    if ((rc = ck_ticket_seal(t, etp, &m->svc->key, m->svc->kvno)) != 0)
        goto out;
    *ticket_out = t;
    *cname_out = cname;
    t = NULL;
    cname = NULL;
out:
    CK_ENC_TICKET_PART_free(etp);
    CK_TICKET_free(t);
    CK_PRINCIPAL_NAME_free(cname);
    return rc;
}

/* Builds (or rebuilds, for a retry) the endpoint's KMM AP Request from its ticket. */
static int
build_request(struct kl_ep *ep, const CK_TICKET *ticket, const CK_PRINCIPAL_NAME *cname,
              const char *realm)
{
    struct ck_kmm_msg m;
    uint8_t buf[KL_MSG_MAX], hkey[CK_KMM_HMAC_KEY_LEN];
    uint8_t *der = NULL;
    size_t der_len = 0, len = 0;
    int rc;

    rc = ck_ap_req_build(ticket, &ep->session_key, realm, cname, CK_AP_OPT_MUTUAL_REQUIRED, NULL,
                         CK_KU_AP_REQ_AUTH, NULL, NULL, &ep->ctime, &ep->cusec, &der, &der_len);
    if (rc != 0)
        return rc;
    memset(&m, 0, sizeof(m));
    m.type = CK_KMM_AP_REQ;
    m.doi = CK_KMM_DOI_IPSEC;
    m.version = CK_KMM_VERSION;
    m.server_nonce = 0;
    m.krb = der;
    m.krb_len = der_len;
    m.spi = ep->spi_c;
    m.n_suites = (uint8_t)(sizeof(kl_offer) / sizeof(kl_offer[0]));
    memcpy(m.suites, kl_offer, sizeof(kl_offer));
    if ((rc = ck_kmm_encode(&m, buf, sizeof(buf), &len)) != 0 ||
        (rc = ck_kmm_hmac_key(CK_KMM_HMAC_AP_REQ, &ep->session_key, hkey)) != 0 ||
        (rc = ck_kmm_seal(buf, len, hkey)) != 0)
        goto out;
    if (len > UINT16_MAX || der_len > UINT16_MAX) {
        rc = ck_error_set(CK_ERR_LIMIT, "AP Request of %zu bytes", len);
        goto out;
    }
    free(ep->msg);
    if ((ep->msg = malloc(len)) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "AP Request");
        goto out;
    }
    memcpy(ep->msg, buf, len);
    ep->msg_len = (uint16_t)len;
    ep->krb_len = (uint16_t)der_len;
out:
    OPENSSL_cleanse(hkey, sizeof(hkey));
    ck_asn1_free_der(der, der_len);
    return rc;
}

/* A retry: a fresh authenticator for the same ticket (taken back out of the first AP-REQ). */
static int
rebuild_request(struct kl_ep *ep, const char *realm, long i)
{
    CK_AP_REQ *req = NULL;
    CK_PRINCIPAL_NAME *cname = NULL;
    char name[32];
    const char *comp[1] = {name};
    int rc;

    snprintf(name, sizeof(name), "mta%06ld", i);
    if ((rc = ck_asn1_ap_req_decode(ep->msg + 3, ep->krb_len, &req)) != 0 ||
        (rc = ck_asn1_principal_new(CK_NT_PRINCIPAL, comp, 1, &cname)) != 0)
        goto out;
    rc = build_request(ep, req->ticket, cname, realm);
out:
    CK_AP_REQ_free(req);
    CK_PRINCIPAL_NAME_free(cname);
    return rc;
}

static int
write_record(FILE *f, const uint8_t *der, size_t len)
{
    uint8_t hdr[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
                      (uint8_t)len};

    return fwrite(hdr, 1, 4, f) == 4 && fwrite(der, 1, len, f) == len ? 0 : -1;
}

/* ---------------------------------------------------------------------------------------------
 * The endpoint's check of an answer.
 */

static void
show_error(struct kl_stats *st, long ep, const char *what, int32_t krb_code)
{
    if (st->shown >= 5)
        return;
    st->shown++;
    if (krb_code != 0)
        fprintf(stderr, "kmm_load: endpoint %ld: %s (Kerberos error %d)\n", ep, what,
                (int)krb_code);
    else if (strcmp(what, KL_NO_ANSWER) == 0)
        fprintf(stderr, "kmm_load: endpoint %ld: %s\n", ep, what);
    else
        fprintf(stderr, "kmm_load: endpoint %ld: %s: %s\n", ep, what, ck_error_context());
}

/* 0 when the answer is a valid AP Reply for ep and its keys derive; -1 otherwise. */
static int
check_reply(struct kl_ep *ep, long i, const uint8_t *buf, size_t len, struct kl_stats *st)
{
    struct ck_kmm_msg m;
    struct ck_kmm_keys keys;
    ck_ap_rep_result rep;
    uint8_t hkey[CK_KMM_HMAC_KEY_LEN];
    int ret = -1;

    memset(&rep, 0, sizeof(rep));
    memset(&keys, 0, sizeof(keys));
    if (ck_kmm_decode(buf, len, &m) != 0) {
        show_error(st, i, "undecodable answer", 0);
        return -1;
    }
    if (m.type == CK_KMM_ERROR_REPLY) {
        CK_KRB_ERROR_MSG *e = NULL;
        int32_t code = ck_asn1_krb_error_decode(m.krb, m.krb_len, &e) == 0 ? e->error_code : -1;

        CK_KRB_ERROR_MSG_free(e);
        show_error(st, i, "Error Reply", code);
        return -1;
    }
    if (m.type != CK_KMM_AP_REP || m.doi != CK_KMM_DOI_IPSEC || m.n_suites != 1) {
        show_error(st, i, "not an IPsec AP Reply with one suite", 0);
        return -1;
    }
    if (ck_ap_rep_verify(m.krb, m.krb_len, &ep->session_key, ep->ctime, ep->cusec, &rep) != 0) {
        show_error(st, i, "AP-REP does not verify", rep.krb_error);
        goto out;
    }
    if (!rep.has_subkey) {
        show_error(st, i, "AP-REP without a sub-key", 0);
        goto out;
    }
    if (ck_kmm_hmac_key(CK_KMM_HMAC_AP_REP, &rep.subkey, hkey) != 0 ||
        ck_kmm_verify(buf, &m, hkey) != 0) {
        show_error(st, i, "AP Reply HMAC does not verify", 0);
        goto out;
    }
    if (ck_kmm_derive_ipsec(&rep.subkey, m.suites[0], ep->spi_c, m.spi, &keys) != 0) {
        show_error(st, i, "key derivation", 0);
        goto out;
    }
    ret = 0;
out:
    ck_kmm_keys_clear(&keys);
    OPENSSL_cleanse(hkey, sizeof(hkey));
    ck_ap_rep_result_clear(&rep);
    return ret;
}

/* ---------------------------------------------------------------------------------------------
 * --self-test responder: the server side from library parts, one thread.
 */

struct kl_responder {
    int fd;
    const ck_keytab *kt;
    const char *service;
    ck_rcache *rc;
    pthread_t thread;
    clockid_t cpu_clock;
    volatile int stop;
    long ok, rejected;
    int first_reject;                 /* Kerberos code or CK_ERR_* of the first rejection */
};

static int
respond(struct kl_responder *r, const uint8_t *in, size_t in_len, uint8_t *out, size_t out_cap,
        size_t *out_len)
{
    struct ck_kmm_msg q, a;
    struct ck_kmm_keys keys;
    ck_ap_req_result res;
    ck_key subkey;
    uint8_t hkey[CK_KMM_HMAC_KEY_LEN];
    uint8_t *der = NULL;
    size_t der_len = 0;
    int best = -1, best_rank = 0, rc;

    memset(&res, 0, sizeof(res));
    memset(&keys, 0, sizeof(keys));
    memset(&subkey, 0, sizeof(subkey));
    if ((rc = ck_kmm_decode(in, in_len, &q)) != 0)
        return rc;
    if (q.type != CK_KMM_AP_REQ || q.doi != CK_KMM_DOI_IPSEC) {
        rc = CK_ERR_UNSUPPORTED;
        goto out;
    }
    rc = ck_ap_req_verify(q.krb, q.krb_len, ck_ap_keytab_key_fn, (void *)r->kt, r->service,
                          r->rc, 300, CK_KU_AP_REQ_AUTH, &res);
    if (rc != 0) {
        rc = res.krb_error != 0 ? res.krb_error : rc;
        goto out;
    }
    if ((rc = ck_kmm_hmac_key(CK_KMM_HMAC_AP_REQ, &res.session_key, hkey)) != 0 ||
        (rc = ck_kmm_verify(in, &q, hkey)) != 0)
        goto out;
    for (int s = 0; s < q.n_suites; s++) {
        int rank = ck_kmm_suite_rank(q.doi, q.suites[s]);
        if (rank > best_rank) {
            best_rank = rank;
            best = s;
        }
    }
    if (best < 0) {
        rc = CK_ERR_UNSUPPORTED;
        goto out;
    }
    memset(&a, 0, sizeof(a));
    a.type = CK_KMM_AP_REP;
    a.doi = CK_KMM_DOI_IPSEC;
    a.version = CK_KMM_VERSION;
    a.spi = random_spi();
    a.n_suites = 1;
    a.suites[0] = q.suites[best];
    a.lifetime = 3600;
    a.grace = 600;
    if ((rc = ck_random_key(res.session_key.enctype, &subkey)) != 0 ||
        (rc = ck_ap_rep_build(&res.session_key, res.ctime, res.cusec, &subkey, NULL, &der,
                              &der_len)) != 0 ||
        (rc = ck_kmm_derive_ipsec(&subkey, a.suites[0], q.spi, a.spi, &keys)) != 0)
        goto out;
    a.krb = der;
    a.krb_len = der_len;
    if ((rc = ck_kmm_encode(&a, out, out_cap, out_len)) != 0 ||
        (rc = ck_kmm_hmac_key(CK_KMM_HMAC_AP_REP, &subkey, hkey)) != 0 ||
        (rc = ck_kmm_seal(out, *out_len, hkey)) != 0)
        goto out;
out:
    if (der != NULL)
        ck_asn1_free_der(der, der_len);
    ck_kmm_keys_clear(&keys);
    ck_key_clear(&subkey);
    OPENSSL_cleanse(hkey, sizeof(hkey));
    ck_ap_req_result_clear(&res);
    return rc;
}

static void *
responder_main(void *arg)
{
    struct kl_responder *r = arg;
    uint8_t in[KL_MSG_MAX], out[KL_MSG_MAX];

    while (!r->stop) {
        struct sockaddr_storage peer;
        socklen_t pl = sizeof(peer);
        size_t out_len = 0;
        ssize_t n = recvfrom(r->fd, in, sizeof(in), 0, (struct sockaddr *)&peer, &pl);
        int rc;

        if (n < 0)
            continue;                 /* EAGAIN from the receive timeout: check stop */
        rc = respond(r, in, (size_t)n, out, sizeof(out), &out_len);
        if (rc == 0) {
            r->ok++;
            (void)sendto(r->fd, out, out_len, 0, (struct sockaddr *)&peer, pl);
        } else {
            /* Dropped, as the server drops what it cannot answer; the generator retries. */
            if (r->rejected++ == 0)
                r->first_reject = rc;
        }
    }
    ck_crypto_thread_cleanup();
    return NULL;
}

static int
responder_start(struct kl_responder *r, struct sockaddr_storage *ss, socklen_t *sl)
{
    struct sockaddr_in sin;
    struct timeval tv = {0, 100000};
    socklen_t len = sizeof(sin);
    /* Room for every request in flight (a few hundred datagrams of ~500 bytes, each charged
     * with its buffer overhead), so the fixture drops none; capped by net.core.rmem_max. */
    int rcvbuf = 4 << 20, rc;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if ((r->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0 ||
        bind(r->fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
        getsockname(r->fd, (struct sockaddr *)&sin, &len) != 0 ||
        setsockopt(r->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
        setsockopt(r->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) != 0) {
        perror("kmm_load: responder socket");
        return -1;
    }
    memcpy(ss, &sin, sizeof(sin));
    *sl = sizeof(sin);
    if ((rc = pthread_create(&r->thread, NULL, responder_main, r)) != 0) {
        fprintf(stderr, "kmm_load: pthread_create: %s\n", strerror(rc));
        return -1;
    }
    (void)pthread_setname_np(r->thread, "kmm-responder"); /* for perf report --comm */
    if (pthread_getcpuclockid(r->thread, &r->cpu_clock) != 0)
        return -1;
    return 0;
}

static double
clock_s(clockid_t c)
{
    struct timespec t;

    if (clock_gettime(c, &t) != 0)
        return -1;
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* ---------------------------------------------------------------------------------------------
 * The load loop.
 */

/* (Re)opens slot s's socket: from endpoint ep's own address with own_addr (ep >= 0), else from
 * any. A new socket also makes sure a late answer to an earlier exchange is never taken for the
 * next one's. */
static int
slot_open(const struct kl_net *net, struct kl_slot *sl, long s, long ep)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)s};

    if (sl->fd > 0)
        close(sl->fd);
    sl->fd = udp_connect(&net->srv, net->srv_len, net->own_addr ? ep : -1);
    if (sl->fd < 0 || epoll_ctl(net->epfd, EPOLL_CTL_ADD, sl->fd, &ev) != 0) {
        perror("kmm_load: socket");
        return -1;
    }
    return 0;
}

/* Sends endpoint e on slot s. A send error counts; the timeout scan retries the endpoint. */
static int
slot_send(const struct kl_net *net, struct kl_slot *sl, long s, struct kl_ep *eps, long e,
          struct kl_stats *st)
{
    if (net->own_addr && slot_open(net, sl, s, e) != 0)
        return -1;
    sl->ep = e;
    eps[e].tries++;
    clock_gettime(CLOCK_MONOTONIC, &sl->sent);
    if (send(sl->fd, eps[e].msg, eps[e].msg_len, 0) < 0)
        st->neterr++;
    return 0;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double
percentile(const double *v, size_t n, double p)
{
    size_t i;

    if (n == 0)
        return 0;
    i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

static void
usage(void)
{
    fprintf(stderr,
            "usage: kmm_load --keytab FILE --service PRINCIPAL (--cms ADDR:PORT | --self-test)\n"
            "                [--endpoints N] [--sockets S] [--timeout-ms MS] [--retries R]\n"
            "                [--cms-pid PID] [--write-apreq FILE] [--shared-addrs] [--label NAME]\n");
}

static int
parse_opts(int argc, char **argv, struct kl_opts *o)
{
    static const struct option opts[] = {
        {"keytab", required_argument, NULL, 'k'},      {"service", required_argument, NULL, 's'},
        {"cms", required_argument, NULL, 'c'},         {"self-test", no_argument, NULL, 'T'},
        {"endpoints", required_argument, NULL, 'n'},   {"sockets", required_argument, NULL, 'S'},
        {"timeout-ms", required_argument, NULL, 't'},  {"retries", required_argument, NULL, 'r'},
        {"cms-pid", required_argument, NULL, 'p'},     {"write-apreq", required_argument, NULL, 'w'},
        {"label", required_argument, NULL, 'l'},       {"shared-addrs", no_argument, NULL, 'A'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    long v;
    int c;

    memset(o, 0, sizeof(*o));
    o->n = 1000;
    o->sockets = 256;
    o->timeout_ms = 1000;
    o->retries = 3;
    o->label = NULL;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'k': o->keytab = optarg; break;
        case 's': o->service = optarg; break;
        case 'c': o->cms = optarg; break;
        case 'T': o->self_test = 1; break;
        case 'A': o->shared_addrs = 1; break;
        case 'w': o->apreq_out = optarg; break;
        case 'l': o->label = optarg; break;
        case 'n':
            if (parse_long(optarg, 1, KL_MAX_ENDPOINTS, &o->n) != 0)
                goto bad;
            break;
        case 'S':
            if (parse_long(optarg, 1, KL_MAX_SOCKETS, &o->sockets) != 0)
                goto bad;
            break;
        case 't':
            if (parse_long(optarg, 1, 600000, &o->timeout_ms) != 0)
                goto bad;
            break;
        case 'r':
            if (parse_long(optarg, 0, 100, &o->retries) != 0)
                goto bad;
            break;
        case 'p':
            if (parse_long(optarg, 1, 1L << 30, &v) != 0)
                goto bad;
            o->cms_pid = (int)v;
            break;
        default: usage(); return -1;
        }
    }
    if (o->keytab == NULL || o->service == NULL || (o->cms == NULL) == !o->self_test ||
        optind != argc) {
        usage();
        return -1;
    }
    if (o->label == NULL)
        o->label = o->self_test ? "self-test" : "cablekey-cms";
    return 0;
bad:
    fprintf(stderr, "kmm_load: bad value '%s'\n", optarg);
    return -1;
}

int
main(int argc, char **argv)
{
    struct kl_opts o;
    struct kl_mint mint = {0};
    struct kl_responder resp;
    struct kl_stats st;
    struct kl_ep *eps = NULL;
    struct kl_slot *slots = NULL;
    struct kl_net net;
    ck_keytab *kt = NULL;
    ck_principal *sname = NULL;
    FILE *apreq_f = NULL;
    double *lat = NULL;
    size_t nlat = 0;
    long next = 0, done = 0, nslots;
    int ret = 1, resp_started = 0;
    struct timespec tm0, tm1, t0, t1, t_last;
    struct rusage ru0, ru1;
    unsigned long long cpu0 = 0, cpu1 = 0, ns0 = 0, ns1 = 0, mbusy0 = 0, mtot0 = 0, mbusy1 = 0,
                       mtot1 = 0;
    double rcpu0 = 0, rcpu1 = 0;
    long rss0 = -1, rss1 = -1;
    long long udp_drops0, udp_drops1;
    int have_cpu = 0, have_ns = 0, have_machine;
    struct proc_pids pids = {0};
    uint8_t rbuf[KL_MSG_MAX];

    memset(&resp, 0, sizeof(resp));
    memset(&st, 0, sizeof(st));
    memset(&net, 0, sizeof(net));
    net.epfd = -1;
    resp.fd = -1;
    if (parse_opts(argc, argv, &o) != 0)
        return 2;
    if ((ret = ck_keytab_read(o.keytab, &kt)) != 0) {
        ret = fail(o.keytab, ret);
        goto out;
    }
    if ((ret = ck_principal_parse(o.service, NULL, CK_PRINCIPAL_PARSE_REQUIRE_REALM, &sname)) != 0) {
        ret = fail(o.service, ret);
        goto out;
    }
    /* The newest kvno; among its keys the first in the keytab (kadmin/cablekey put the
     * strongest first). */
    if ((mint.svc = ck_keytab_find(kt, sname, 0, 0)) == NULL) {
        fprintf(stderr, "kmm_load: no key for %s in %s\n", o.service, o.keytab);
        ret = 1;
        goto out;
    }
    mint.sname = sname;
    if (o.self_test) {
        resp.kt = kt;
        resp.service = o.service;
        if ((ret = ck_rcache_new((size_t)o.n * (size_t)(o.retries + 1) + 16, 600, &resp.rc)) != 0) {
            ret = fail("replay cache", ret);
            goto out;
        }
        if (responder_start(&resp, &net.srv, &net.srv_len) != 0) {
            ret = 1;
            goto out;
        }
        resp_started = 1;
    } else if (parse_hostport(o.cms, &net.srv, &net.srv_len) != 0) {
        fprintf(stderr, "kmm_load: bad --cms '%s' (ADDR:PORT)\n", o.cms);
        ret = 1;
        goto out;
    }
    /* An address per endpoint needs the server on IPv4 loopback (127/8 is all local). */
    net.own_addr = !o.shared_addrs && net.srv.ss_family == AF_INET &&
                   (ntohl(((const struct sockaddr_in *)&net.srv)->sin_addr.s_addr) >> 24) == 127;

    eps = calloc((size_t)o.n, sizeof(*eps));
    lat = calloc((size_t)o.n, sizeof(*lat));
    nslots = o.sockets < o.n ? o.sockets : o.n;
    slots = calloc((size_t)nslots, sizeof(*slots));
    if (eps == NULL || lat == NULL || slots == NULL) {
        fprintf(stderr, "kmm_load: out of memory\n");
        ret = 1;
        goto out;
    }
    if (o.apreq_out != NULL && (apreq_f = fopen(o.apreq_out, "wb")) == NULL) {
        fprintf(stderr, "kmm_load: %s: %s\n", o.apreq_out, strerror(errno));
        ret = 1;
        goto out;
    }

    /* Every ticket and request before the clock starts. */
    clock_gettime(CLOCK_MONOTONIC, &tm0);
    for (long i = 0; i < o.n; i++) {
        CK_TICKET *t = NULL;
        CK_PRINCIPAL_NAME *cname = NULL;

        eps[i].spi_c = random_spi();
        ret = mint_ticket(&mint, i, &t, &cname, &eps[i].session_key);
        if (ret == 0)
            ret = build_request(&eps[i], t, cname, sname->realm);
        CK_TICKET_free(t);
        CK_PRINCIPAL_NAME_free(cname);
        if (ret != 0) {
            ret = fail("mint ticket / AP Request", ret);
            goto out;
        }
        if (apreq_f != NULL && write_record(apreq_f, eps[i].msg + 3, eps[i].krb_len) != 0) {
            fprintf(stderr, "kmm_load: %s: write failed\n", o.apreq_out);
            ret = 1;
            goto out;
        }
    }
    if (apreq_f != NULL) {
        int e = fclose(apreq_f);
        apreq_f = NULL;
        if (e != 0) {
            fprintf(stderr, "kmm_load: %s: %s\n", o.apreq_out, strerror(errno));
            ret = 1;
            goto out;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &tm1);

    if ((net.epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
        perror("kmm_load: epoll_create1");
        ret = 1;
        goto out;
    }
    for (long s = 0; s < nslots; s++) {
        slots[s].ep = -1;
        if (slot_open(&net, &slots[s], s, -1) != 0) {
            ret = 1;
            goto out;
        }
    }

    if (o.cms_pid > 0) {
        (void)proc_pids_add(&pids, o.cms_pid);
        have_cpu = proc_pids_ticks(&pids, &cpu0) == 0;
        have_ns = proc_pids_sched_ns(&pids, &ns0) == 0;
        rss0 = proc_rss_kb(o.cms_pid);
    }
    if (o.self_test)
        rcpu0 = clock_s(resp.cpu_clock);
    have_machine = proc_machine_ticks(&mbusy0, &mtot0) == 0;
    udp_drops0 = udp_rcvbuf_errors();
    getrusage(RUSAGE_SELF, &ru0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    t_last = t0;

    {
        struct epoll_event evs[256];
        struct timespec now, last_scan = t0;

        for (long s = 0; s < nslots && next < o.n; s++)
            if (slot_send(&net, &slots[s], s, eps, next++, &st) != 0) {
                ret = 1;
                goto out;
            }
        while (done < o.n) {
            int nev;

            clock_gettime(CLOCK_MONOTONIC, &now);
            /* Every 50 ms: an exchange unanswered for --timeout-ms gets a fresh authenticator on
             * a new socket, or fails after --retries. */
            if (ts_us(&last_scan, &now) >= 50000) {
                last_scan = now;
                for (long s = 0; s < nslots; s++) {
                    struct kl_slot *sl = &slots[s];
                    long e = sl->ep;

                    if (e < 0 || ts_us(&sl->sent, &now) < (double)o.timeout_ms * 1e3)
                        continue;
                    st.lost++;
                    sl->ep = -1;
                    if (slot_open(&net, sl, s, -1) != 0) {
                        ret = 1;
                        goto out;
                    }
                    if (eps[e].tries <= o.retries) {
                        if ((ret = rebuild_request(&eps[e], sname->realm, e)) != 0) {
                            ret = fail("retry AP Request", ret);
                            goto out;
                        }
                        st.retries++;
                        if (slot_send(&net, sl, s, eps, e, &st) != 0) {
                            ret = 1;
                            goto out;
                        }
                    } else {
                        eps[e].done = 2;
                        st.errors++;
                        done++;
                        show_error(&st, e, KL_NO_ANSWER, 0);
                        if (next < o.n && slot_send(&net, sl, s, eps, next++, &st) != 0) {
                            ret = 1;
                            goto out;
                        }
                    }
                }
            }
            nev = epoll_wait(net.epfd, evs, (int)(sizeof(evs) / sizeof(evs[0])), 50);
            if (nev < 0) {
                if (errno == EINTR)
                    continue;
                perror("kmm_load: epoll_wait");
                ret = 1;
                goto out;
            }
            if (nev > 0)
                clock_gettime(CLOCK_MONOTONIC, &now);
            for (int k = 0; k < nev; k++) {
                long s = (long)evs[k].data.u64;
                struct kl_slot *sl = &slots[s];
                ssize_t n = recv(sl->fd, rbuf, sizeof(rbuf), 0);
                long e = sl->ep;

                if (n < 0) {
                    if (errno != EAGAIN && errno != EWOULDBLOCK)
                        st.neterr++;  /* ECONNREFUSED: no server yet; the scan retries */
                    continue;
                }
                if (e < 0)
                    continue;         /* stray datagram on an idle socket */
                sl->ep = -1;
                done++;
                if (check_reply(&eps[e], e, rbuf, (size_t)n, &st) == 0) {
                    eps[e].done = 1;
                    st.ok++;
                    lat[nlat++] = ts_us(&sl->sent, &now);
                    t_last = now;
                } else {
                    eps[e].done = 2;
                    st.errors++;
                }
                if (next < o.n && slot_send(&net, sl, s, eps, next++, &st) != 0) {
                    ret = 1;
                    goto out;
                }
            }
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    getrusage(RUSAGE_SELF, &ru1);
    udp_drops1 = udp_rcvbuf_errors();
    if (o.self_test)
        rcpu1 = clock_s(resp.cpu_clock);
    if (have_machine && proc_machine_ticks(&mbusy1, &mtot1) != 0)
        have_machine = 0;
    if (o.cms_pid > 0) {
        if (have_cpu && proc_pids_ticks(&pids, &cpu1) != 0)
            have_cpu = 0;
        if (have_ns && proc_pids_sched_ns(&pids, &ns1) != 0)
            have_ns = 0;
        rss1 = proc_rss_kb(o.cms_pid);
    }

    {
        double mint_s = ts_us(&tm0, &tm1) / 1e6;
        double wall_s = ts_us(&t0, &t1) / 1e6;
        double all_sa_s = st.ok == o.n ? ts_us(&t0, &t_last) / 1e6 : -1;
        double tick_s = 1.0 / (double)sysconf(_SC_CLK_TCK);
        double srv_cpu = o.self_test ? rcpu1 - rcpu0 : have_cpu ? (double)(cpu1 - cpu0) * tick_s : -1;
        double srv_sched = o.self_test ? srv_cpu : have_ns ? (double)(ns1 - ns0) / 1e9 : -1;
        /* schedstat is exact (ns); stat ticks are 10 ms: per-exchange figures use schedstat
         * when the kernel has it. */
        double srv_best = srv_sched > 0 ? srv_sched : srv_cpu;
        double gen_s = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
                       (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6 +
                       (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
                       (double)(ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
        double other_cores = -1, p50, p99;
        double bytes_per_ep = rss0 >= 0 && rss1 >= 0 ? (double)(rss1 - rss0) * 1024.0 / (double)o.n
                                                     : -1;

        qsort(lat, nlat, sizeof(*lat), cmp_double);
        p50 = percentile(lat, nlat, 0.50);
        p99 = percentile(lat, nlat, 0.99);
        if (have_machine && mtot1 > mtot0 && wall_s > 0) {
            long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
            double busy = (double)(mbusy1 - mbusy0) / (double)(mtot1 - mtot0) * (double)ncpu;

            other_cores = busy - (srv_best > 0 && !o.self_test ? srv_best : 0) / wall_s -
                          gen_s / wall_s;
            if (other_cores < 0)
                other_cores = 0;
        }
        printf("%s: %ld endpoints, tickets minted in-process with the service key of %s "
               "(kvno %u, %s; no KDC), %.2f s to mint and build every AP Request\n",
               o.label, o.n, o.service, mint.svc->kvno, ck_enctype_name(mint.svc->key.enctype),
               mint_s);
        printf("  %s %s, %ld exchanges in flight, %s\n",
               o.self_test ? "in-process responder (test fixture, not cablekey-cms) at" : "server",
               o.self_test ? "127.0.0.1" : o.cms, nslots,
               net.own_addr ? "each endpoint from its own address 127.x.y.z (a socket per exchange)"
                            : "sockets shared by the endpoints (one source address)");
        printf("  SAs %ld/%ld  errors %ld  retries %ld  timeouts %ld  net-errors %ld  wall %.3f s\n",
               st.ok, o.n, st.errors, st.retries, st.lost, st.neterr, wall_s);
        if (udp_drops0 >= 0 && udp_drops1 >= 0)
            printf("  UDP datagrams dropped by the kernel for a full receive queue (whole machine): "
                   "%lld\n", udp_drops1 - udp_drops0);
        printf("  AP exchanges/s %.0f  latency p50 %.0f us  p99 %.0f us  ",
               wall_s > 0 ? (double)st.ok / wall_s : 0, p50, p99);
        if (all_sa_s >= 0)
            printf("all %ld endpoints hold SAs after %.3f s\n", o.n, all_sa_s);
        else
            printf("NOT all endpoints hold SAs\n");
        if (srv_best > 0)
            printf("  server CPU %.3f s (stat ticks %.2f s) = %.1f us per exchange = %.0f "
                   "exchanges per CPU-second\n",
                   srv_best, srv_cpu, st.ok > 0 ? srv_best * 1e6 / (double)st.ok : -1,
                   (double)st.ok / srv_best);
        if (bytes_per_ep >= 0)
            printf("  server VmRSS %ld kB -> %ld kB: %.0f bytes per endpoint\n", rss0, rss1,
                   bytes_per_ep);
        printf("  generator CPU %.1f us per exchange; other processes %.2f cores\n",
               st.ok > 0 ? gen_s * 1e6 / (double)st.ok : -1, other_cores);
        if (o.self_test)
            printf("  responder: %ld answered, %ld dropped (first: %d)\n", resp.ok, resp.rejected,
                   resp.first_reject);
        printf("RESULT impl=%s n=%ld ok=%ld errors=%ld retries=%ld lost=%ld mint_s=%.3f "
               "wall_s=%.3f xps=%.0f p50_us=%.0f p99_us=%.0f all_sa_s=%.3f srv_cpu_s=%.3f "
               "srv_sched_s=%.3f srv_us_per_x=%.2f x_per_cpu_s=%.0f rss0_kb=%ld rss1_kb=%ld "
               "bytes_per_ep=%.0f gen_cpu_us_per_x=%.1f other_cores=%.2f udp_rcvbuf_drops=%lld\n",
               o.label, o.n, st.ok, st.errors, st.retries, st.lost, mint_s, wall_s,
               wall_s > 0 ? (double)st.ok / wall_s : 0, p50, p99, all_sa_s, srv_cpu, srv_sched,
               srv_best > 0 && st.ok > 0 ? srv_best * 1e6 / (double)st.ok : -1,
               srv_best > 0 ? (double)st.ok / srv_best : -1, rss0, rss1, bytes_per_ep,
               st.ok > 0 ? gen_s * 1e6 / (double)st.ok : -1, other_cores,
               udp_drops0 >= 0 && udp_drops1 >= 0 ? udp_drops1 - udp_drops0 : -1);
        ret = st.ok == o.n ? 0 : 1;
    }
out:
    if (resp_started) {
        resp.stop = 1;
        pthread_join(resp.thread, NULL);
    }
    if (resp.fd >= 0)
        close(resp.fd);
    ck_rcache_free(resp.rc);
    if (slots != NULL)
        for (long s = 0; s < (o.sockets < o.n ? o.sockets : o.n); s++)
            if (slots[s].fd > 0)
                close(slots[s].fd);
    if (net.epfd >= 0)
        close(net.epfd);
    if (apreq_f != NULL)
        fclose(apreq_f);
    if (eps != NULL)
        for (long i = 0; i < o.n; i++) {
            ck_key_clear(&eps[i].session_key);
            free(eps[i].msg);
        }
    free(eps);
    free(slots);
    free(lat);
    ck_principal_free(sname);
    ck_keytab_free(kt);
    return ret;
}
