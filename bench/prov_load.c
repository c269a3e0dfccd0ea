/* bench/prov_load: the provisioning benchmark's two halves (bench/prov_bench.sh drives them).
 *
 *   prov_load admit --db DB [--stash S] --pki DIR --ca-password-file F --count N [--first I]
 *       admits N factory devices straight into the store, as the KDC does at their first login
 *       (ck_prov_admit_unprovisioned): MACs 02:cb:00:00:00:00 + I.., each with a manufacturer
 *       certificate issued by DIR's mfg-ca for one shared P-256 key (the bench measures the
 *       provisioning server, not key generation: the operator certificate certifies the key the
 *       manufacturer certified, whichever it is).
 *   prov_load provision --url URL --principal P --password-file F --count N [--first I]
 *       [--concurrency C] [--customers K] [--segment S] [--auth session|negotiate]
 *       signs in to the console API (POST /api/v1/session: the cookie and the CSRF token, the
 *       way the console and an OSS client with a session do) or uses HTTP Negotiate on a fresh
 *       connection per call (--auth negotiate: the ticket in KRB5CCNAME), creates K customers,
 *       then provisions devices I..I+N-1 round-robin to them, C calls in flight (libcurl multi,
 *       keep-alive connections), and prints devices/s and the latency percentiles per call.
 *
 *   prov_load login --db DB [--stash S] --key PEM --anchors PEM --kdc HOST:PORT --count N
 *       [--first I] [--concurrency C] [--kdc-pid PID]
 *       the second half: each provisioned device logs in to the KDC with its operator
 *       certificate (PKINIT, ECDH P-256, the device's P-256 key from admit --key-out, its
 *       principal mta-<12 hex>). The N AS-REQs are built first (lib/client's own first request,
 *       captured before it is sent: a fresh ECDH key, nonce and signature each; the current
 *       certificate read from the store), then sent over UDP, C in flight (one thread and
 *       socket each; 5 s timeout, 3 tries); an AS-REP counts as a login, a KRB-ERROR as an
 *       error. Prints logins/s, per-login latency and the KDC's CPU per login (--kdc-pid).
 * Output: one "key=value ..." line per phase on stdout (the script parses it); errors on stderr
 * with the server's answer. Exit 0 when every call succeeded. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <pthread.h>
#include <stdatomic.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "cablekey/error.h"
#include "cablekey/pki.h"
#include "cablekey/prov.h"
#include "cablekey/store.h"
#include "cablekey/client.h"
#include "cablekey/pkinit.h"
#include "cablekey/pkinit_client.h"
#include "cablekey/util.h"
#include "proc_cpu.h"

#define MAX_INFLIGHT 256
#define MAX_COUNT 10000000
#define BODY_MAX (64 * 1024)

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
mac_of(int64_t i, char out[CK_DEVICE_MAC_LEN + 1], char hex[13])
{
    uint64_t v = UINT64_C(0x02cb00000000) + (uint64_t)i;

    snprintf(out, CK_DEVICE_MAC_LEN + 1, "%02x:%02x:%02x:%02x:%02x:%02x",
             (unsigned)(v >> 40) & 255, (unsigned)(v >> 32) & 255, (unsigned)(v >> 24) & 255,
             (unsigned)(v >> 16) & 255, (unsigned)(v >> 8) & 255, (unsigned)v & 255);
    snprintf(hex, 13, "%012" PRIx64, v);
}

static const char *
arg(int argc, char **argv, const char *name, const char *dflt)
{
    for (int i = 2; i + 1 < argc; i += 2)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return dflt;
}

static int
arg_int(int argc, char **argv, const char *name, int64_t dflt, int64_t min, int64_t max,
        int64_t *out)
{
    const char *v = arg(argc, argv, name, NULL);

    *out = dflt;
    if (v != NULL && ck_parse_int64(v, min, max, out) != 0) {
        fprintf(stderr, "prov_load: %s: a number from %" PRId64 " to %" PRId64 "\n", name, min,
                max);
        return -1;
    }
    return 0;
}

/* ===================================================================== admit */

static int
do_admit(int argc, char **argv)
{
    const char *db = arg(argc, argv, "--db", NULL), *stash = arg(argc, argv, "--stash", NULL);
    const char *pki = arg(argc, argv, "--pki", NULL);
    const char *capw_file = arg(argc, argv, "--ca-password-file", NULL);
    const char *key_out = arg(argc, argv, "--key-out", NULL);
    char path[4096], mac[CK_DEVICE_MAC_LEN + 1], hex[13], princ[512], *capw = NULL;
    STACK_OF(X509) *certs = NULL;
    EVP_PKEY *ca_key = NULL, *dev_key = NULL;
    X509 *ca = NULL, *cert = NULL;
    ck_store *store = NULL;
    uint8_t spki[32], *der = NULL;
    int64_t count, first, t;
    double t0;
    int rc = 1, ret, len;

    if (db == NULL || pki == NULL || capw_file == NULL ||
        arg_int(argc, argv, "--count", 0, 1, MAX_COUNT, &count) != 0 || count == 0 ||
        arg_int(argc, argv, "--first", 0, 0, MAX_COUNT, &first) != 0) {
        fprintf(stderr, "usage: prov_load admit --db DB [--stash S] --pki DIR "
                        "--ca-password-file F --count N [--first I] [--key-out PEM]\n");
        return 2;
    }
    snprintf(path, sizeof(path), "%s/mfg-ca.pem", pki);
    if ((ret = ck_pki_certs_load_pem(path, &certs)) != 0 || (ca = sk_X509_shift(certs)) == NULL) {
        fprintf(stderr, "prov_load: %s: %s\n", path, ck_error_context());
        goto out;
    }
    snprintf(path, sizeof(path), "%s/mfg-ca-key.pem", pki);
    if ((ret = ck_pki_password_read(capw_file, &capw)) != 0 ||
        (ret = ck_pki_key_load_pem(path, capw, &ca_key)) != 0 ||
        (ret = ck_pki_key_generate(CK_PKI_KEY_EC_P256, &dev_key)) != 0) {
        fprintf(stderr, "prov_load: the manufacturer CA or the device key: %s\n",
                ck_error_context());
        goto out;
    }
    if (key_out != NULL && (ret = ck_pki_key_write_pem(key_out, dev_key, NULL, 0)) != 0) {
        fprintf(stderr, "prov_load: --key-out %s: %s\n", key_out, ck_error_context());
        goto out;
    }
    if ((ret = ck_store_open(db, stash, 0, &store)) != 0) {
        fprintf(stderr, "prov_load: %s: %s\n", db, ck_error_context());
        goto out;
    }
    t = (int64_t)time(NULL);
    t0 = now_s();
    for (int64_t i = first; i < first + count; i++) {
        ck_pki_cert_spec spec = {
            .profile = CK_PKI_PROFILE_DEVICE, .org = "Bench Manufacturer",
            .org_unit = "PacketCable", .common_name = mac, .path_len = -1,
            .not_before = t - 3600, .not_after = t + 20 * 365 * 86400LL,
        };

        mac_of(i, mac, hex);
        snprintf(princ, sizeof(princ), "mta-%s@%s", hex, ck_store_realm(store)->name);
        if ((ret = ck_pki_cert_issue(&spec, dev_key, ca, ca_key, &cert)) != 0 ||
            (i == first && (ret = ck_pki_spki_sha256(cert, spki)) != 0)) {
            fprintf(stderr, "prov_load: certificate for %s: %s\n", mac, ck_error_context());
            goto out;
        }
        der = NULL;
        if ((len = i2d_X509(cert, &der)) <= 0) {
            fprintf(stderr, "prov_load: DER of %s\n", mac);
            goto out;
        }
        ret = ck_prov_admit_unprovisioned(store, mac, princ, spki, der, (size_t)len, t);
        OPENSSL_free(der);
        der = NULL;
        X509_free(cert);
        cert = NULL;
        if (ret != 0 && ret != CK_ERR_EXISTS) {
            fprintf(stderr, "prov_load: admit %s: %s\n", mac, ck_error_context());
            goto out;
        }
    }
    {
        double el = now_s() - t0;
        printf("phase=admit devices=%" PRId64 " seconds=%.2f per_s=%.0f\n", count, el,
               (double)count / el);
    }
    rc = 0;
out:
    ck_store_close(store);
    X509_free(cert);
    X509_free(ca);
    sk_X509_pop_free(certs, X509_free);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(dev_key);
    if (capw != NULL) {
        OPENSSL_cleanse(capw, strlen(capw));
        free(capw);
    }
    return rc;
}

/* ===================================================================== provision */

struct buf {
    char data[BODY_MAX + 1];
    size_t len;
};

struct call {
    CURL *h;
    struct curl_slist *hdrs;
    struct buf ans;
    char url[512], body[256], idem[96];
    int64_t index;
};

struct session {
    const char *base;
    char cookie[512];       /* "ck_session=..." */
    char csrf_hdr[256];     /* "X-CK-CSRF: ..." */
    bool negotiate;
};

static size_t
write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
    struct buf *b = arg;
    size_t n = size * nmemb, room = BODY_MAX - b->len;

    memcpy(b->data + b->len, data, n < room ? n : room);
    b->len += n < room ? n : room;
    b->data[b->len] = '\0';
    return n;
}

/* Set-Cookie: ck_session=VALUE; ... -> "ck_session=VALUE". */
static size_t
header_cb(char *data, size_t size, size_t nmemb, void *arg)
{
    struct session *s = arg;
    size_t n = size * nmemb;
    static const char key[] = "set-cookie: ck_session=";

    if (n > sizeof(key) && strncasecmp(data, key, sizeof(key) - 1) == 0) {
        size_t v = sizeof(key) - 1 - strlen("ck_session="), e = v;

        while (e < n && data[e] != ';' && data[e] != '\r' && data[e] != '\n')
            e++;
        if (e - v < sizeof(s->cookie))
            snprintf(s->cookie, sizeof(s->cookie), "%.*s", (int)(e - v), data + v);
    }
    return n;
}

static int
setup(CURL *h, struct session *s, struct curl_slist **hdrs, const char *url, const char *body,
      const char *idem, struct buf *ans)
{
    char idh[128];

    *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    *hdrs = curl_slist_append(*hdrs, "Accept: application/json");
    *hdrs = curl_slist_append(*hdrs, "Expect:");
    if (idem != NULL) {
        snprintf(idh, sizeof(idh), "Idempotency-Key: %s", idem);
        *hdrs = curl_slist_append(*hdrs, idh);
    }
    if (s->csrf_hdr[0] != '\0')
        *hdrs = curl_slist_append(*hdrs, s->csrf_hdr);
    if (*hdrs == NULL)
        return -1;
    ans->len = 0;
    ans->data[0] = '\0';
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, *hdrs);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, ans);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
    if (s->cookie[0] != '\0')
        curl_easy_setopt(h, CURLOPT_COOKIE, s->cookie);
    if (s->negotiate) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_NEGOTIATE);
        curl_easy_setopt(h, CURLOPT_USERPWD, ":");
        /* Every call authenticates, as an OSS client's would: no connection reuse. */
        curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
    }
    return 0;
}

/* One blocking POST; 0 and *out the JSON answer on 2xx. */
static int
post_one(struct session *s, const char *path, const char *body, const char *idem, json_t **out,
         bool login)
{
    CURL *h = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    struct buf *ans = calloc(1, sizeof(*ans));
    char url[512];
    long status = 0;
    int rc = -1;

    *out = NULL;
    snprintf(url, sizeof(url), "%s%s", s->base, path);
    if (h == NULL || ans == NULL || setup(h, s, &hdrs, url, body, idem, ans) != 0)
        goto out;
    if (login) {
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, s);
    }
    if (curl_easy_perform(h) != CURLE_OK)
        goto out;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status > 299) {
        fprintf(stderr, "prov_load: POST %s: HTTP %ld: %s\n", path, status, ans->data);
        goto out;
    }
    *out = json_loads(ans->data, 0, NULL);
    rc = *out != NULL ? 0 : -1;
out:
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    free(ans);
    return rc;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static void
call_start(CURLM *m, struct call *c, struct session *s, int64_t i, const int64_t *cust,
           int64_t n_cust)
{
    char mac[CK_DEVICE_MAC_LEN + 1], hex[13];

    mac_of(i, mac, hex);
    c->index = i;
    snprintf(c->url, sizeof(c->url), "%s/api/v1/devices/%s/provision", s->base, mac);
    snprintf(c->body, sizeof(c->body), "{\"customer\":%" PRId64 "}", cust[i % n_cust]);
    snprintf(c->idem, sizeof(c->idem), "bench-%s", hex);
    curl_slist_free_all(c->hdrs);
    c->hdrs = NULL;
    if (setup(c->h, s, &c->hdrs, c->url, c->body, c->idem, &c->ans) != 0) {
        fprintf(stderr, "prov_load: out of memory\n");
        exit(1);
    }
    curl_multi_add_handle(m, c->h);
}

static int
do_provision(int argc, char **argv)
{
    const char *url = arg(argc, argv, "--url", NULL), *principal = arg(argc, argv, "--principal", NULL);
    const char *pwf = arg(argc, argv, "--password-file", NULL);
    const char *segment = arg(argc, argv, "--segment", "bench");
    const char *auth = arg(argc, argv, "--auth", "session");
    struct session s;
    struct call *calls = NULL;
    int64_t count, first, conc, n_cust, *cust = NULL, next, done = 0, errors = 0;
    double *lat = NULL, t0, el;
    char *pw = NULL, body[1024];
    json_t *j = NULL, *jb = NULL;
    CURLM *m = NULL;
    int rc = 1;

    memset(&s, 0, sizeof(s));
    if (url == NULL || arg_int(argc, argv, "--count", 0, 1, MAX_COUNT, &count) != 0 ||
        count == 0 || arg_int(argc, argv, "--first", 0, 0, MAX_COUNT, &first) != 0 ||
        arg_int(argc, argv, "--concurrency", 16, 1, MAX_INFLIGHT, &conc) != 0 ||
        arg_int(argc, argv, "--customers", 100, 1, 100000, &n_cust) != 0 ||
        (strcmp(auth, "session") != 0 && strcmp(auth, "negotiate") != 0) ||
        (strcmp(auth, "session") == 0 && (principal == NULL || pwf == NULL))) {
        fprintf(stderr, "usage: prov_load provision --url URL (--principal P --password-file F"
                        " | --auth negotiate) --count N [--first I] [--concurrency C] "
                        "[--customers K] [--segment S]\n");
        return 2;
    }
    s.base = url;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (strcmp(auth, "session") == 0) {
        if (ck_pki_password_read(pwf, &pw) != 0) {
            fprintf(stderr, "prov_load: %s: %s\n", pwf, ck_error_context());
            goto out;
        }
        jb = json_pack("{s:s, s:s}", "principal", principal, "password", pw);
        char *t = jb != NULL ? json_dumps(jb, JSON_COMPACT) : NULL;
        if (t == NULL || post_one(&s, "/api/v1/session", t, NULL, &j, true) != 0 ||
            !json_is_string(json_object_get(j, "csrf")) || s.cookie[0] == '\0') {
            fprintf(stderr, "prov_load: the console login failed\n");
            if (t != NULL)
                OPENSSL_cleanse(t, strlen(t));
            free(t);
            goto out;
        }
        OPENSSL_cleanse(t, strlen(t));
        free(t);
        snprintf(s.csrf_hdr, sizeof(s.csrf_hdr), "X-CK-CSRF: %s",
                 json_string_value(json_object_get(j, "csrf")));
        json_decref(j);
        j = NULL;
    } else {
        s.negotiate = true;
    }
    if ((cust = calloc((size_t)n_cust, sizeof(*cust))) == NULL ||
        (lat = calloc((size_t)count, sizeof(*lat))) == NULL ||
        (calls = calloc((size_t)conc, sizeof(*calls))) == NULL)
        goto out;
    t0 = now_s();
    for (int64_t k = 0; k < n_cust; k++) {
        char idem[64];

        snprintf(body, sizeof(body), "{\"name\":\"Bench Customer %" PRId64 "\",\"address\":\"%"
                 PRId64 " Bench Street\",\"segment\":\"%s\",\"type\":\"customer\",\"services\":{}}",
                 first + k, first + k, segment);
        snprintf(idem, sizeof(idem), "bench-cust-%" PRId64 "-%" PRId64, first, k);
        if (post_one(&s, "/api/v1/customers", body, idem, &j, false) != 0 ||
            !json_is_integer(json_object_get(j, "id"))) {
            fprintf(stderr, "prov_load: creating customer %" PRId64 " failed\n", k);
            goto out;
        }
        cust[k] = json_integer_value(json_object_get(j, "id"));
        json_decref(j);
        j = NULL;
    }
    printf("phase=customers count=%" PRId64 " seconds=%.2f\n", n_cust, now_s() - t0);
    fflush(stdout);

    if ((m = curl_multi_init()) == NULL)
        goto out;
    curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)conc);
    next = first;
    t0 = now_s();
    for (int64_t k = 0; k < conc && next < first + count; k++) {
        if ((calls[k].h = curl_easy_init()) == NULL)
            goto out;
        curl_easy_setopt(calls[k].h, CURLOPT_PRIVATE, &calls[k]);
        call_start(m, &calls[k], &s, next++, cust, n_cust);
    }
    while (done < count) {
        int running = 0, left = 0, numfds = 0;
        CURLMsg *msg;

        if (curl_multi_perform(m, &running) != CURLM_OK ||
            curl_multi_poll(m, NULL, 0, 1000, &numfds) != CURLM_OK)
            goto out;
        while ((msg = curl_multi_info_read(m, &left)) != NULL) {
            struct call *c = NULL;
            long status = 0;
            curl_off_t us = 0;

            if (msg->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&c);
            curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &status);
            curl_easy_getinfo(c->h, CURLINFO_TOTAL_TIME_T, &us);
            curl_multi_remove_handle(m, c->h);
            if (msg->data.result != CURLE_OK || status != 200) {
                if (errors++ < 5)
                    fprintf(stderr, "prov_load: device #%" PRId64 ": %s HTTP %ld %s\n",
                            c->index, curl_easy_strerror(msg->data.result), status, c->ans.data);
            }
            lat[done++] = (double)us / 1000.0;
            if (next < first + count)
                call_start(m, c, &s, next++, cust, n_cust);
        }
    }
    el = now_s() - t0;
    qsort(lat, (size_t)count, sizeof(*lat), cmp_double);
    printf("phase=provision auth=%s devices=%" PRId64 " errors=%" PRId64 " concurrency=%" PRId64
           " seconds=%.2f per_s=%.0f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
           auth, count, errors, conc, el, (double)count / el, lat[count / 2],
           lat[(count * 90) / 100], lat[(count * 99) / 100], lat[count - 1]);
    rc = errors == 0 ? 0 : 1;
out:
    if (calls != NULL) {
        for (int64_t k = 0; k < conc; k++) {
            if (calls[k].h != NULL) {
                if (m != NULL)
                    curl_multi_remove_handle(m, calls[k].h);
                curl_easy_cleanup(calls[k].h);
            }
            curl_slist_free_all(calls[k].hdrs);
        }
    }
    curl_multi_cleanup(m);
    free(calls);
    free(cust);
    free(lat);
    json_decref(j);
    json_decref(jb);
    if (pw != NULL) {
        OPENSSL_cleanse(pw, strlen(pw));
        free(pw);
    }
    curl_global_cleanup();
    return rc;
}

/* ===================================================================== login */

struct login_req {
    uint8_t *req;
    size_t len;
    double ms;          /* latency of the login, or < 0 when it failed */
};

struct login_run {
    struct login_req *r;
    int64_t n;
    atomic_long next;
    atomic_long ok, errors, timeouts, retries;
    struct sockaddr_in kdc;
};

/* The transport callback that keeps the first request and ends the exchange there. */
static int
capture_send(void *arg, const uint8_t *req, size_t req_len, uint8_t **reply, size_t *reply_len)
{
    struct login_req *c = arg;

    *reply = NULL;
    *reply_len = 0;
    if (c->req == NULL && (c->req = malloc(req_len)) != NULL) {
        memcpy(c->req, req, req_len);
        c->len = req_len;
    }
    return ck_error_set(CK_ERR_TIMEOUT, "captured");
}

static void *
login_worker(void *arg)
{
    struct login_run *run = arg;
    uint8_t buf[65536];
    struct timeval tv = {.tv_sec = 5};
    int fd = socket(AF_INET, SOCK_DGRAM, 0);

    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
        connect(fd, (struct sockaddr *)&run->kdc, sizeof(run->kdc)) != 0) {
        perror("prov_load: login socket");
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    for (;;) {
        long i = atomic_fetch_add(&run->next, 1);
        struct login_req *q;
        double t0;
        int tries;

        if (i >= run->n)
            break;
        q = &run->r[i];
        q->ms = -1;
        t0 = now_s();
        for (tries = 0; tries < 3; tries++) {
            ssize_t got;
            if (tries > 0)
                atomic_fetch_add(&run->retries, 1);
            if (send(fd, q->req, q->len, 0) != (ssize_t)q->len)
                continue;
            got = recv(fd, buf, sizeof(buf), 0);
            if (got <= 0)
                continue;
            if (buf[0] == 0x6b) {
                q->ms = (now_s() - t0) * 1000.0;
                atomic_fetch_add(&run->ok, 1);
            } else {
                if (atomic_fetch_add(&run->errors, 1) < 3)
                    fprintf(stderr, "prov_load: login %ld: a KRB-ERROR (%zd bytes) instead of "
                                    "an AS-REP\n", i, got);
            }
            break;
        }
        if (tries == 3)
            atomic_fetch_add(&run->timeouts, 1);
    }
    close(fd);
    return NULL;
}

static int
do_login(int argc, char **argv)
{
    const char *db = arg(argc, argv, "--db", NULL), *stash = arg(argc, argv, "--stash", NULL);
    const char *keyf = arg(argc, argv, "--key", NULL), *anch = arg(argc, argv, "--anchors", NULL);
    const char *kdc = arg(argc, argv, "--kdc", NULL);
    struct login_run run;
    ck_pkinit_anchors *anchors = NULL;
    ck_store *store = NULL;
    EVP_PKEY *key = NULL;
    pthread_t th[MAX_INFLIGHT];
    int64_t count, first, conc, kpid;
    char host[64], mac[CK_DEVICE_MAC_LEN + 1], hex[13], princ[512];
    const char *colon;
    double *lat = NULL, t0, prep0, el;
    unsigned long long k0 = 0, k1 = 0;
    size_t nl = 0;
    int rc = 1, ret, nth = 0;

    memset(&run, 0, sizeof(run));
    if (db == NULL || keyf == NULL || anch == NULL || kdc == NULL ||
        arg_int(argc, argv, "--count", 0, 1, MAX_COUNT, &count) != 0 || count == 0 ||
        arg_int(argc, argv, "--first", 0, 0, MAX_COUNT, &first) != 0 ||
        arg_int(argc, argv, "--concurrency", 16, 1, MAX_INFLIGHT, &conc) != 0 ||
        arg_int(argc, argv, "--kdc-pid", 0, 0, INT32_MAX, &kpid) != 0 ||
        (colon = strrchr(kdc, ':')) == NULL || (size_t)(colon - kdc) >= sizeof(host)) {
        fprintf(stderr, "usage: prov_load login --db DB [--stash S] --key PEM --anchors PEM "
                        "--kdc HOST:PORT --count N [--first I] [--concurrency C] "
                        "[--kdc-pid PID]\n");
        return 2;
    }
    {
        int64_t port;
        memcpy(host, kdc, (size_t)(colon - kdc));
        host[colon - kdc] = '\0';
        run.kdc.sin_family = AF_INET;
        if (ck_parse_int64(colon + 1, 1, 65535, &port) != 0 ||
            inet_pton(AF_INET, host, &run.kdc.sin_addr) != 1) {
            fprintf(stderr, "prov_load: --kdc %s: HOST:PORT (IPv4) expected\n", kdc);
            return 2;
        }
        run.kdc.sin_port = htons((uint16_t)port);
    }
    if ((ret = ck_pki_key_load_pem(keyf, NULL, &key)) != 0 ||
        (ret = ck_pkinit_anchors_new(&anchors)) != 0 ||
        (ret = ck_pkinit_anchors_add_file(anchors, anch, 0, NULL)) != 0 ||
        (ret = ck_store_open(db, stash, CK_STORE_READONLY, &store)) != 0) {
        fprintf(stderr, "prov_load: key, anchors or store: %s\n", ck_error_context());
        goto out;
    }
    if ((run.r = calloc((size_t)count, sizeof(*run.r))) == NULL ||
        (lat = calloc((size_t)count, sizeof(*lat))) == NULL)
        goto out;
    run.n = count;
    /* Every request first: the clock measures the KDC, not the devices' own signatures. */
    prep0 = now_s();
    for (int64_t i = 0; i < count; i++) {
        ck_prov_cert *c = NULL;
        ck_pki_identity *id = NULL;
        const uint8_t *p;
        X509 *x = NULL;
        ck_creds *creds = NULL;
        ck_kdc_transport t = {.send_fn = capture_send, .send_arg = &run.r[i]};
        ck_as_params as = {.realm = ck_store_realm(store)->name, .client = princ,
                           .preauth_first = true, .transport = &t};
        ck_pkinit_client_params pp = {.as = &as, .anchors = anchors, .kx = CK_PKINIT_KX_DH,
                                      .group = CK_PKINIT_GROUP_P256};

        mac_of(first + i, mac, hex);
        snprintf(princ, sizeof(princ), "mta-%s", hex);
        if ((ret = ck_prov_cert_current(store, mac, &c)) != 0) {
            fprintf(stderr, "prov_load: %s: %s\n", mac, ck_error_context());
            goto out;
        }
        p = c->der;
        x = d2i_X509(NULL, &p, (long)c->der_len);
        ck_prov_cert_free(c);
        if (x == NULL || (ret = ck_pki_identity_new(key, x, NULL, &id)) != 0) {
            fprintf(stderr, "prov_load: %s: the operator certificate: %s\n", mac,
                    ck_error_context());
            X509_free(x);
            goto out;
        }
        X509_free(x);
        pp.identity = id;
        (void)ck_client_as_pkinit(&pp, &creds, NULL);
        ck_creds_free(creds);
        ck_pki_identity_free(id);
        if (run.r[i].req == NULL) {
            fprintf(stderr, "prov_load: %s: no AS-REQ built: %s\n", mac, ck_error_context());
            goto out;
        }
    }
    printf("phase=login-prepare devices=%" PRId64 " seconds=%.2f\n", count, now_s() - prep0);
    fflush(stdout);
    if (kpid > 0)
        proc_cpu_ticks((int)kpid, &k0);
    t0 = now_s();
    for (nth = 0; nth < conc; nth++)
        if (pthread_create(&th[nth], NULL, login_worker, &run) != 0)
            break;
    for (int i = 0; i < nth; i++)
        pthread_join(th[i], NULL);
    el = now_s() - t0;
    if (kpid > 0)
        proc_cpu_ticks((int)kpid, &k1);
    for (int64_t i = 0; i < count; i++)
        if (run.r[i].ms >= 0)
            lat[nl++] = run.r[i].ms;
    qsort(lat, nl, sizeof(*lat), cmp_double);
    {
        double kcpu = (double)(k1 - k0) / (double)sysconf(_SC_CLK_TCK);
        long ok = atomic_load(&run.ok);
        printf("phase=login devices=%" PRId64 " ok=%ld errors=%ld timeouts=%ld retries=%ld "
               "concurrency=%" PRId64 " seconds=%.2f per_s=%.0f p50_ms=%.2f p99_ms=%.2f "
               "max_ms=%.2f kdc_cpu_s=%.2f kdc_cpu_us_per_login=%.0f\n",
               count, ok, atomic_load(&run.errors), atomic_load(&run.timeouts),
               atomic_load(&run.retries), conc, el, (double)ok / el,
               nl ? lat[nl / 2] : 0, nl ? lat[(size_t)((double)nl * 0.99)] : 0,
               nl ? lat[nl - 1] : 0, kcpu, ok > 0 ? kcpu * 1e6 / (double)ok : 0);
        rc = ok == count ? 0 : 1;
    }
out:
    for (int64_t i = 0; run.r != NULL && i < run.n; i++)
        free(run.r[i].req);
    free(run.r);
    free(lat);
    ck_store_close(store);
    ck_pkinit_anchors_free(anchors);
    EVP_PKEY_free(key);
    return rc;
}

int
main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "admit") == 0)
        return do_admit(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "provision") == 0)
        return do_provision(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "login") == 0)
        return do_login(argc, argv);
    fprintf(stderr, "usage: prov_load admit|provision|login ... (see bench/prov_load.c)\n");
    return 2;
}
