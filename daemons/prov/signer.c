/* The signer: the only process holding the provisioning CA's key and the phone-ID key.
 *
 * It is forked before the HTTP front and the back exist, loads the two keys, keeps nothing but
 * its end of a SOCK_SEQPACKET socketpair open (so a compromise of the signer reaches no store,
 * log or listening socket, and a compromise of the front cannot reach the keys except through
 * these two requests), and answers fixed-layout binary requests (signer_int.h). It never parses
 * HTTP, JSON or Kerberos: the back decides WHAT to certify (state, customer, numbers) and the
 * signer only checks that the request is well-formed and sane (the manufacturer certificate
 * names the MAC asked for, at most CK_PROV_MAX_NUMBERS numbers, a validity no longer than the
 * configured one starting near now), so a compromised back can at worst get certificates that
 * the same rules would have given it. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "cablekey/error.h"
#include "cablekey/pki.h"
#include "cablekey/util.h"
#include "signer_int.h"

#define SIGNER_REPLY_TIMEOUT_MS 10000  /* one RSA signature; generous for ASan and busy hosts */
#define SIGNER_READY_TIMEOUT_MS 30000  /* PBKDF2 of the CA key password */
#define SIGNER_STOP_WAIT_MS 2000

struct prov_signer_keys {
    X509 *ca;
    EVP_PKEY *key;
    uint8_t phone_key[CK_PKI_PHONE_ID_KEY_LEN];
    int64_t max_validity;
};

struct prov_signer {
    int fd;
    pid_t pid;
    pthread_mutex_t lock; /* one request in flight: answers pair with requests */
};

/* ------------------------------------------------------------------------------------------- */
/* Codec */

static int
put_i64(ck_writer *w, int64_t v)
{
    uint64_t u = (uint64_t)v;
    int rc;

    if ((rc = ck_writer_u32be(w, (uint32_t)(u >> 32))) != 0)
        return rc;
    return ck_writer_u32be(w, (uint32_t)u);
}

static int
get_i64(ck_reader *r, int64_t *v)
{
    uint32_t hi, lo;
    int rc;

    if ((rc = ck_reader_u32be(r, &hi)) != 0 || (rc = ck_reader_u32be(r, &lo)) != 0)
        return rc;
    *v = (int64_t)(((uint64_t)hi << 32) | lo);
    return 0;
}

/* Header with a zero length, patched by finish_msg once the body is written. */
static int
start_msg(ck_writer *w, uint8_t type, uint8_t status)
{
    ck_writer_init(w, PROV_SIGNER_MSG_MAX, false);
    if (ck_writer_u8(w, PROV_SIGNER_VERSION) != 0 || ck_writer_u8(w, type) != 0 ||
        ck_writer_u8(w, status) != 0 || ck_writer_u8(w, 0) != 0 || ck_writer_u32be(w, 0) != 0) {
        ck_writer_free(w);
        return ck_error_set(CK_ERR_NOMEM, "signer message");
    }
    return 0;
}

static uint8_t *
finish_msg(ck_writer *w, size_t *len)
{
    uint8_t *msg = ck_writer_take(w, len);

    if (msg != NULL)
        ck_put_be32(msg + 4, (uint32_t)(*len - PROV_SIGNER_HDR));
    return msg;
}

/* The header of any message; *body and *body_len: the rest. */
static int
parse_header(const uint8_t *msg, size_t len, uint8_t *type, uint8_t *status,
             const uint8_t **body, size_t *body_len)
{
    if (len < PROV_SIGNER_HDR)
        return ck_error_set(CK_ERR_DECODE, "signer message: %zu bytes, shorter than its header",
                            len);
    if (len > PROV_SIGNER_MSG_MAX)
        return ck_error_set(CK_ERR_LIMIT, "signer message: more than %d bytes",
                            PROV_SIGNER_MSG_MAX);
    if (msg[0] != PROV_SIGNER_VERSION || msg[3] != 0)
        return ck_error_set(CK_ERR_DECODE, "signer message: version %u, reserved %u", msg[0],
                            msg[3]);
    if (ck_get_be32(msg + 4) != len - PROV_SIGNER_HDR)
        return ck_error_set(CK_ERR_DECODE, "signer message: body length %u, packet has %zu",
                            ck_get_be32(msg + 4), len - PROV_SIGNER_HDR);
    *type = msg[1];
    *status = msg[2];
    *body = msg + PROV_SIGNER_HDR;
    *body_len = len - PROV_SIGNER_HDR;
    return 0;
}

static int
get_number(ck_reader *r, char out[CK_PROV_NUMBER_MAX + 1])
{
    const uint8_t *p;
    uint8_t n;

    if (ck_reader_u8(r, &n) != 0 || n == 0 || n > CK_PROV_NUMBER_MAX ||
        ck_reader_bytes(r, n, &p) != 0)
        return ck_error_set(CK_ERR_DECODE, "signer request: a number of 1..%d digits expected",
                            CK_PROV_NUMBER_MAX);
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return ck_error_set(CK_ERR_DECODE, "signer request: a number has a non-digit");
        out[i] = (char)p[i];
    }
    out[n] = '\0';
    return 0;
}

int
prov_signer_request_decode(const uint8_t *msg, size_t len, struct prov_signer_request *out)
{
    const uint8_t *body;
    size_t body_len;
    uint8_t status, n;
    uint16_t cert_len;
    ck_reader r;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = parse_header(msg, len, &out->type, &status, &body, &body_len)) != 0)
        return rc;
    if (status != 0)
        return ck_error_set(CK_ERR_DECODE, "signer request: status %u in a request", status);
    ck_reader_init(&r, body, body_len);
    switch (out->type) {
    case PROV_SIGNER_ISSUE:
        if (ck_reader_u16be(&r, &cert_len) != 0 || cert_len == 0 ||
            cert_len > CK_PROV_CERT_MAX || ck_reader_bytes(&r, cert_len, &out->cert) != 0)
            return ck_error_set(CK_ERR_DECODE, "signer request: certificate of 1..%d bytes "
                                               "expected", CK_PROV_CERT_MAX);
        out->cert_len = cert_len;
        if (ck_reader_copy(&r, out->mac, sizeof(out->mac)) != 0 || ck_reader_u8(&r, &n) != 0)
            return ck_error_set(CK_ERR_DECODE, "signer request: truncated");
        if (n > CK_PROV_MAX_NUMBERS)
            return ck_error_set(CK_ERR_LIMIT, "signer request: %u numbers (at most %d)", n,
                                CK_PROV_MAX_NUMBERS);
        for (size_t i = 0; i < n; i++) {
            if ((rc = get_number(&r, out->numbers[i])) != 0)
                return rc;
        }
        out->n_numbers = n;
        if (get_i64(&r, &out->not_before) != 0 || get_i64(&r, &out->not_after) != 0)
            return ck_error_set(CK_ERR_DECODE, "signer request: truncated validity");
        break;
    case PROV_SIGNER_PHONE_ID:
        if ((rc = get_number(&r, out->numbers[0])) != 0)
            return rc;
        out->n_numbers = 1;
        break;
    default:
        return ck_error_set(CK_ERR_DECODE, "signer request: unknown type %u", out->type);
    }
    if (ck_reader_remaining(&r) != 0)
        return ck_error_set(CK_ERR_DECODE, "signer request: %zu trailing bytes",
                            ck_reader_remaining(&r));
    return 0;
}

/* ------------------------------------------------------------------------------------------- */
/* Keys */

void
prov_signer_keys_free(struct prov_signer_keys *k)
{
    if (k == NULL)
        return;
    X509_free(k->ca);
    EVP_PKEY_free(k->key); /* OpenSSL wipes the private key as it frees it */
    ck_memzero(k->phone_key, sizeof(k->phone_key));
    free(k);
}

int
prov_signer_keys_new(X509 *ca, EVP_PKEY *ca_key, const uint8_t phone_key[32],
                     int64_t max_validity, struct prov_signer_keys **out)
{
    struct prov_signer_keys *k;

    *out = NULL;
    if (ca == NULL || ca_key == NULL || phone_key == NULL || max_validity <= 0)
        return ck_error_set(CK_ERR_INVAL, "signer: missing key");
    if (X509_check_ca(ca) < 1)
        return ck_error_set(CK_ERR_CONFIG, "signer: the provisioning CA certificate is not a "
                                           "CA");
    if (X509_check_private_key(ca, ca_key) != 1) {
        ERR_clear_error();
        return ck_error_set(CK_ERR_CONFIG, "signer: the CA key does not match the CA "
                                           "certificate");
    }
    if ((k = calloc(1, sizeof(*k))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "signer keys");
    X509_up_ref(ca);
    EVP_PKEY_up_ref(ca_key);
    k->ca = ca;
    k->key = ca_key;
    memcpy(k->phone_key, phone_key, sizeof(k->phone_key));
    k->max_validity = max_validity;
    *out = k;
    return 0;
}

int
prov_signer_keys_load(const struct prov_config *cfg, struct prov_signer_keys **out)
{
    STACK_OF(X509) *certs = NULL;
    EVP_PKEY *key = NULL;
    char *pw = NULL;
    uint8_t phone_key[CK_PKI_PHONE_ID_KEY_LEN];
    int64_t days = cfg->cert_days > 0 ? cfg->cert_days : PROV_DEFAULT_CERT_DAYS;
    int64_t hours = cfg->repair_cert_hours > 0 ? cfg->repair_cert_hours
                                               : PROV_DEFAULT_REPAIR_CERT_HOURS;
    int64_t max;
    int rc;

    *out = NULL;
    memset(phone_key, 0, sizeof(phone_key));
    if (cfg->ca_cert == NULL || cfg->ca_key == NULL || cfg->phone_id_key == NULL)
        return ck_error_set(CK_ERR_CONFIG, "signer: ca_cert, ca_key and phone_id_key are "
                                           "required");
    if (days > 36500 || hours > 36500 * 24)
        return ck_error_set(CK_ERR_CONFIG, "signer: cert_days/repair_cert_hours out of range");
    max = days * 86400 > hours * 3600 ? days * 86400 : hours * 3600;
    if ((rc = ck_pki_certs_load_pem(cfg->ca_cert, &certs)) != 0)
        goto out;
    if (cfg->ca_password_file != NULL && (rc = ck_pki_password_read(cfg->ca_password_file,
                                                                   &pw)) != 0)
        goto out;
    if ((rc = ck_pki_key_load_pem(cfg->ca_key, pw, &key)) != 0)
        goto out;
    if ((rc = ck_pki_phone_id_key_load(cfg->phone_id_key, phone_key)) != 0)
        goto out;
    rc = prov_signer_keys_new(sk_X509_value(certs, 0), key, phone_key, max, out);
out:
    ck_memzero(phone_key, sizeof(phone_key));
    ck_pki_password_free(pw);
    EVP_PKEY_free(key);
    sk_X509_pop_free(certs, X509_free);
    return rc;
}

/* ------------------------------------------------------------------------------------------- */
/* The handler */

static int
error_response(uint8_t type, int err, uint8_t **resp, size_t *resp_len)
{
    const char *msg = ck_error_context();
    size_t n = strnlen(msg, PROV_SIGNER_ERRMSG_MAX);
    ck_writer w;
    int code = err < 0 ? -err : err;

    if (code <= 0 || code > 127)
        code = -CK_ERR_INVAL;
    if (start_msg(&w, (uint8_t)(type | PROV_SIGNER_RESPONSE), (uint8_t)code) != 0 ||
        ck_writer_bytes(&w, msg, n) != 0) {
        ck_writer_free(&w);
        return ck_error_set(CK_ERR_NOMEM, "signer response");
    }
    *resp = finish_msg(&w, resp_len);
    return *resp != NULL ? 0 : ck_error_set(CK_ERR_NOMEM, "signer response");
}

/* A certificate ends at most max_validity after now (cert_days, or repair_cert_hours when that
 * is longer), whatever its backdated start. */
static int
check_validity(const struct prov_signer_keys *k, const struct prov_signer_request *q,
               int64_t now)
{
    if (q->not_after <= q->not_before)
        return ck_error_set(CK_ERR_POLICY, "validity: not_after is not after not_before");
    if (q->not_before < now - PROV_SIGNER_SKEW_MAX || q->not_before > now + PROV_SIGNER_SKEW_MAX)
        return ck_error_set(CK_ERR_POLICY, "validity: not_before is more than %d s from now",
                            PROV_SIGNER_SKEW_MAX);
    /* not_after > not_before >= now - a day > 0: no overflow. */
    if (q->not_after - now > k->max_validity + PROV_SIGNER_SLACK)
        return ck_error_set(CK_ERR_POLICY, "validity: ends more than the configured %lld s "
                                           "from now", (long long)k->max_validity);
    return 0;
}

static int
answer_issue(struct prov_signer_keys *k, const struct prov_signer_request *q, int64_t now,
             ck_writer *w)
{
    uint8_t ids[CK_PROV_MAX_NUMBERS][CK_PKI_PHONE_ID_LEN];
    X509 *cert = NULL;
    unsigned char *der = NULL;
    int der_len, rc;

    if ((rc = check_validity(k, q, now)) != 0)
        goto out;
    for (size_t i = 0; i < q->n_numbers; i++) {
        if ((rc = ck_pki_phone_id(k->phone_key, q->numbers[i], ids[i])) != 0)
            goto out;
    }
    /* From the DER (at most CK_PROV_CERT_MAX bytes, the decoder's bound): d2i_X509 would decode
     * the device key, most of an issue's CPU, for nothing the certificate needs. */
    if ((rc = ck_pki_operator_issue_der(q->cert, q->cert_len, q->mac,
                                        (const uint8_t(*)[CK_PKI_PHONE_ID_LEN])ids,
                                        q->n_numbers, q->not_before, q->not_after, k->ca, k->key,
                                        &cert)) != 0)
        goto out;
    if ((der_len = i2d_X509(cert, &der)) <= 0 || der_len > CK_PROV_CERT_MAX) {
        rc = ck_error_set(der_len > 0 ? CK_ERR_LIMIT : CK_ERR_ENCODE,
                          "operator certificate: %d bytes", der_len);
        goto out;
    }
    rc = ck_writer_bytes(w, der, (size_t)der_len);
out:
    ERR_clear_error();
    OPENSSL_free(der);
    X509_free(cert);
    ck_memzero(ids, sizeof(ids));
    return rc;
}

int
prov_signer_answer(struct prov_signer_keys *k, const uint8_t *msg, size_t len, int64_t now,
                   uint8_t **resp, size_t *resp_len)
{
    struct prov_signer_request q;
    uint8_t id[CK_PKI_PHONE_ID_LEN];
    uint8_t type = len >= 2 ? msg[1] : 0;
    ck_writer w;
    int rc;

    *resp = NULL;
    *resp_len = 0;
    ck_error_clear();
    if ((rc = prov_signer_request_decode(msg, len, &q)) != 0)
        return error_response(type, rc, resp, resp_len);
    if ((rc = start_msg(&w, (uint8_t)(q.type | PROV_SIGNER_RESPONSE), 0)) != 0)
        goto out;
    if (q.type == PROV_SIGNER_ISSUE) {
        rc = answer_issue(k, &q, now, &w);
    } else {
        if ((rc = ck_pki_phone_id(k->phone_key, q.numbers[0], id)) == 0)
            rc = ck_writer_bytes(&w, id, sizeof(id));
        ck_memzero(id, sizeof(id));
    }
    if (rc == 0 && (*resp = finish_msg(&w, resp_len)) == NULL)
        rc = ck_error_set(CK_ERR_NOMEM, "signer response");
out:
    ck_writer_free(&w);
    if (rc != 0)  /* refused, or out of memory on the way: an error response either way */
        return error_response(q.type, rc, resp, resp_len);
    return 0;
}

/* ------------------------------------------------------------------------------------------- */
/* The child */

/* Keeps fd (moved to 3) and /dev/null on 0-2; closes everything else the daemon had open. The
 * socket moves first, so that /dev/null cannot land on 3 and be replaced by it. */
static int
close_other_fds(int fd)
{
    int null;

    if (fd != 3) {
        if (dup2(fd, 3) < 0)
            return -1;
        close(fd);
    }
    if ((null = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0)
        return -1;
    for (int i = 0; i < 3; i++) {
        if (null != i && dup2(null, i) < 0)
            return -1;
    }
    if (null > 3)
        close(null);
    if (close_range(4, ~0U, 0) != 0) {
        long max = sysconf(_SC_OPEN_MAX);
        for (long i = 4; i < (max > 0 && max < 65536 ? max : 65536); i++)
            close((int)i);
    }
    return 3;
}

static void
send_ready(int fd, int rc)
{
    uint8_t *msg = NULL;
    size_t len = 0;
    ck_writer w;

    if (rc != 0) {
        if (error_response(PROV_SIGNER_READY, rc, &msg, &len) != 0)
            return;
    } else {
        if (start_msg(&w, PROV_SIGNER_READY | PROV_SIGNER_RESPONSE, 0) != 0 ||
            (msg = finish_msg(&w, &len)) == NULL) {
            ck_writer_free(&w);
            return;
        }
    }
    (void)send(fd, msg, len, MSG_NOSIGNAL);
    free(msg);
}

/* recv() returns 0 both for an empty packet and at the end; only the latter hangs up. */
static bool
peer_closed(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};

    return poll(&p, 1, 0) != 0 && (p.revents & (POLLHUP | POLLERR)) != 0;
}

static void
serve(int fd, struct prov_signer_keys *k)
{
    uint8_t buf[PROV_SIGNER_MSG_MAX + 1];

    for (;;) {
        uint8_t *resp = NULL;
        size_t resp_len = 0;
        ssize_t n = recv(fd, buf, sizeof(buf), 0);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || (n == 0 && peer_closed(fd)))
            break;  /* the parent closed its end (or died): stop */
        /* An oversized packet is truncated to MSG_MAX + 1 bytes, which the decoder refuses. */
        if (prov_signer_answer(k, buf, (size_t)n, (int64_t)time(NULL), &resp, &resp_len) != 0)
            break;
        n = send(fd, resp, resp_len, MSG_NOSIGNAL);
        free(resp);
        if (n < 0)
            break;
    }
    ck_memzero(buf, sizeof(buf));
}

static void __attribute__((noreturn))
child_main(const struct prov_config *cfg, int fd)
{
    struct prov_signer_keys *k = NULL;
    int rc;

    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, SIG_IGN);   /* a terminal's ^C is for the parent, which stops us by EOF */
    signal(SIGHUP, SIG_IGN);
    signal(SIGTERM, SIG_DFL);
    /* No core dumps or ptrace of the key holder; no privilege gained through exec. */
    (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    (void)prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    rc = prov_signer_keys_load(cfg, &k);
    if ((fd = close_other_fds(fd)) < 0) {
        prov_signer_keys_free(k);
        _exit(1);
    }
    send_ready(fd, rc);
    if (rc == 0)
        serve(fd, k);
    prov_signer_keys_free(k);
    _exit(rc == 0 ? 0 : 1);
}

/* ------------------------------------------------------------------------------------------- */
/* The parent */

/* Receives one packet within timeout_ms. */
static int
recv_msg(int fd, uint8_t *buf, size_t size, int timeout_ms, size_t *len)
{
    int64_t deadline = ck_monotonic_ms() + timeout_ms;
    struct pollfd p = {.fd = fd, .events = POLLIN};

    for (;;) {
        int64_t left = deadline - ck_monotonic_ms();
        int n;
        ssize_t got;

        if (left <= 0)
            return ck_error_set(CK_ERR_TIMEOUT, "signer: no answer in %d ms", timeout_ms);
        n = poll(&p, 1, (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return ck_error_set(CK_ERR_IO, "signer: poll: %s", strerror(errno));
        if (n == 0)
            continue;
        got = recv(fd, buf, size, MSG_DONTWAIT);
        if (got < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (got < 0)
            return ck_error_set(CK_ERR_IO, "signer: recv: %s", strerror(errno));
        if (got == 0)
            return ck_error_set(CK_ERR_IO, "signer: the signer process is gone");
        *len = (size_t)got;
        return 0;
    }
}

/* One exchange: sends req, receives the response of the same type; a failure status becomes
 * the error with the signer's message. *body points into buf. */
static int
exchange(struct prov_signer *s, const uint8_t *req, size_t req_len, uint8_t *buf, size_t size,
         const uint8_t **body, size_t *body_len)
{
    uint8_t type, status;
    size_t len = 0;
    int rc;

    pthread_mutex_lock(&s->lock);
    if (s->fd < 0) {
        rc = ck_error_set(CK_ERR_IO, "signer: stopped");
        goto out;
    }
    if (send(s->fd, req, req_len, MSG_NOSIGNAL) != (ssize_t)req_len) {
        rc = ck_error_set(CK_ERR_IO, "signer: send: %s", strerror(errno));
        goto out;
    }
    if ((rc = recv_msg(s->fd, buf, size, SIGNER_REPLY_TIMEOUT_MS, &len)) != 0) {
        /* A late answer would pair with the next request: this channel is done. */
        if (rc == CK_ERR_TIMEOUT) {
            close(s->fd);
            s->fd = -1;
        }
        goto out;
    }
    if ((rc = parse_header(buf, len, &type, &status, body, body_len)) != 0)
        goto out;
    if (type != (req[1] | PROV_SIGNER_RESPONSE)) {
        rc = ck_error_set(CK_ERR_PROTO, "signer: answer of type %u to a request of type %u",
                          type, req[1]);
        goto out;
    }
    if (status != 0) {
        rc = ck_error_set(-(int)status, "signer: %.*s", (int)*body_len, (const char *)*body);
        goto out;
    }
    rc = 0;
out:
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int
prov_signer_start(const struct prov_config *cfg, struct prov_signer **out)
{
    struct prov_signer *s = NULL;
    uint8_t buf[PROV_SIGNER_HDR + PROV_SIGNER_ERRMSG_MAX + 1];
    const uint8_t *body;
    size_t len = 0, body_len;
    uint8_t type, status;
    int sv[2] = {-1, -1}, rc;
    pid_t pid;

    *out = NULL;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
        return ck_error_set(CK_ERR_IO, "signer: socketpair: %s", strerror(errno));
    pid = fork();
    if (pid < 0) {
        rc = ck_error_set(CK_ERR_IO, "signer: fork: %s", strerror(errno));
        close(sv[0]);
        close(sv[1]);
        return rc;
    }
    if (pid == 0) {
        close(sv[0]);
        child_main(cfg, sv[1]);
    }
    close(sv[1]);
    if ((s = calloc(1, sizeof(*s))) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "signer");
        close(sv[0]);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return rc;
    }
    s->fd = sv[0];
    s->pid = pid;
    pthread_mutex_init(&s->lock, NULL);
    if ((rc = recv_msg(s->fd, buf, sizeof(buf), SIGNER_READY_TIMEOUT_MS, &len)) != 0 ||
        (rc = parse_header(buf, len, &type, &status, &body, &body_len)) != 0)
        goto fail;
    if (type != (PROV_SIGNER_READY | PROV_SIGNER_RESPONSE)) {
        rc = ck_error_set(CK_ERR_PROTO, "signer: no ready message");
        goto fail;
    }
    if (status != 0) {
        rc = ck_error_set(-(int)status, "signer: %.*s", (int)body_len, (const char *)body);
        goto fail;
    }
    *out = s;
    return 0;
fail:
    prov_signer_stop(s);
    return rc;
}

int
prov_signer_issue(struct prov_signer *s, const struct prov_sign_req *req, uint8_t **der,
                  size_t *der_len)
{
    uint8_t *msg = NULL, *buf = NULL, mac[6];
    const uint8_t *body;
    size_t msg_len = 0, body_len;
    ck_writer w;
    int rc;

    *der = NULL;
    *der_len = 0;
    if (s == NULL || req == NULL || req->mfg_cert_der == NULL || req->mac == NULL ||
        (req->n_numbers > 0 && req->numbers == NULL))
        return ck_error_set(CK_ERR_INVAL, "signer: incomplete request");
    if (req->mfg_cert_len == 0 || req->mfg_cert_len > CK_PROV_CERT_MAX)
        return ck_error_set(CK_ERR_LIMIT, "signer: manufacturer certificate of %zu bytes",
                            req->mfg_cert_len);
    if (req->n_numbers > CK_PROV_MAX_NUMBERS)
        return ck_error_set(CK_ERR_LIMIT, "signer: %zu numbers (at most %d)", req->n_numbers,
                            CK_PROV_MAX_NUMBERS);
    if ((rc = ck_pki_mac_parse(req->mac, mac)) != 0)
        return ck_error_set(rc, "signer: MAC: %s", ck_error_context());
    if ((rc = start_msg(&w, PROV_SIGNER_ISSUE, 0)) != 0)
        return rc;
    if ((rc = ck_writer_u16be(&w, (uint16_t)req->mfg_cert_len)) != 0 ||
        (rc = ck_writer_bytes(&w, req->mfg_cert_der, req->mfg_cert_len)) != 0 ||
        (rc = ck_writer_bytes(&w, mac, sizeof(mac))) != 0 ||
        (rc = ck_writer_u8(&w, (uint8_t)req->n_numbers)) != 0)
        goto out;
    for (size_t i = 0; i < req->n_numbers; i++) {
        size_t n = req->numbers[i] != NULL ? strlen(req->numbers[i]) : 0;
        if (n == 0 || n > CK_PROV_NUMBER_MAX) {
            rc = ck_error_set(CK_ERR_INVAL, "signer: number %zu: 1..%d digits expected", i,
                              CK_PROV_NUMBER_MAX);
            goto out;
        }
        if ((rc = ck_writer_u8(&w, (uint8_t)n)) != 0 ||
            (rc = ck_writer_bytes(&w, req->numbers[i], n)) != 0)
            goto out;
    }
    if ((rc = put_i64(&w, req->not_before)) != 0 || (rc = put_i64(&w, req->not_after)) != 0)
        goto out;
    if ((msg = finish_msg(&w, &msg_len)) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "signer request");
        goto out;
    }
    if ((buf = malloc(PROV_SIGNER_MSG_MAX + 1)) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "signer response");
        goto out;
    }
    if ((rc = exchange(s, msg, msg_len, buf, PROV_SIGNER_MSG_MAX + 1, &body, &body_len)) != 0)
        goto out;
    if (body_len == 0 || body_len > CK_PROV_CERT_MAX || (*der = ck_memdup(body, body_len)) ==
                                                            NULL) {
        rc = ck_error_set(body_len == 0 ? CK_ERR_PROTO : CK_ERR_NOMEM, "signer: certificate of "
                                                                       "%zu bytes", body_len);
        goto out;
    }
    *der_len = body_len;
out:
    ck_writer_free(&w);
    free(buf);
    free(msg);
    return rc;
}

int
prov_signer_phone_id(struct prov_signer *s, const char *number, uint8_t out[32])
{
    uint8_t *msg = NULL, buf[PROV_SIGNER_HDR + PROV_SIGNER_ERRMSG_MAX + 1];
    const uint8_t *body;
    size_t msg_len = 0, body_len, n = number != NULL ? strlen(number) : 0;
    ck_writer w;
    int rc;

    memset(out, 0, 32);
    if (s == NULL || n == 0 || n > CK_PROV_NUMBER_MAX)
        return ck_error_set(CK_ERR_INVAL, "signer: number of 1..%d digits expected",
                            CK_PROV_NUMBER_MAX);
    if ((rc = start_msg(&w, PROV_SIGNER_PHONE_ID, 0)) != 0)
        return rc;
    if ((rc = ck_writer_u8(&w, (uint8_t)n)) != 0 || (rc = ck_writer_bytes(&w, number, n)) != 0)
        goto out;
    if ((msg = finish_msg(&w, &msg_len)) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "signer request");
        goto out;
    }
    if ((rc = exchange(s, msg, msg_len, buf, sizeof(buf), &body, &body_len)) != 0)
        goto out;
    if (body_len != 32) {
        rc = ck_error_set(CK_ERR_PROTO, "signer: phone ID of %zu bytes", body_len);
        goto out;
    }
    memcpy(out, body, 32);
out:
    ck_writer_free(&w);
    free(msg);
    return rc;
}

void
prov_signer_stop(struct prov_signer *s)
{
    int64_t deadline;
    int status;

    if (s == NULL)
        return;
    pthread_mutex_lock(&s->lock);
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    pthread_mutex_unlock(&s->lock);
    /* EOF makes the child wipe its keys and exit; one that does not within the bound is
     * killed (its memory goes with it). */
    deadline = ck_monotonic_ms() + SIGNER_STOP_WAIT_MS;
    while (s->pid > 0) {
        pid_t r = waitpid(s->pid, &status, WNOHANG);
        if (r == s->pid || (r < 0 && errno != EINTR))
            break;
        if (ck_monotonic_ms() >= deadline) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, &status, 0);
            break;
        }
        usleep(10000);
    }
    pthread_mutex_destroy(&s->lock);
    free(s);
}

int
prov_signer_fd(const struct prov_signer *s)
{
    return s->fd;
}

int
prov_signer_pid(const struct prov_signer *s)
{
    return (int)s->pid;
}
