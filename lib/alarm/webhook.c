/* The webhook sink: each alarm POSTed as JSON, signed with HMAC-SHA-256 under a shared secret so
 * that the receiver can tell a genuine alarm from a forged one. The timestamp is inside the MAC so
 * a captured delivery cannot be replayed later as a new one (the receiver checks its age). */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cablekey/alarm.h"
#include "cablekey/error.h"
#include "cablekey/util.h"

#define SECRET_MIN 16
#define SECRET_MAX 1024

struct webhook {
    char *url;
    char *ca_file;
    uint8_t secret[SECRET_MAX];
    size_t secret_len;
    int64_t timeout_ms;
    CURL *curl;
};

char *
ck_alarm_to_json(const struct ck_alarm *a)
{
    json_t *o;
    char *s;

    o = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:b}", "version", 1, "code",
                  ck_alarm_code_name(a->code), "severity", ck_alarm_severity_name(a->severity),
                  "subject", a->subject, "host", a->host, "cause", a->cause, "first_seen",
                  (json_int_t)a->first_seen_ms, "last_seen", (json_int_t)a->last_seen_ms, "count",
                  (json_int_t)a->count, "cleared", (int)a->cleared);
    if (o == NULL)
        return NULL;
    s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return s;
}

int
ck_alarm_webhook_sign(const uint8_t *secret, size_t secret_len, const char *timestamp,
                      const char *body, size_t body_len, char hex[65])
{
    EVP_MAC *mac = NULL;
    EVP_MAC_CTX *ctx = NULL;
    OSSL_PARAM params[2];
    uint8_t md[32];
    size_t md_len = 0;
    int rc = 0;

    hex[0] = '\0';
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();
    mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (mac == NULL || (ctx = EVP_MAC_CTX_new(mac)) == NULL ||
        !EVP_MAC_init(ctx, secret, secret_len, params) ||
        !EVP_MAC_update(ctx, (const uint8_t *)timestamp, strlen(timestamp)) ||
        !EVP_MAC_update(ctx, (const uint8_t *)".", 1) ||
        !EVP_MAC_update(ctx, (const uint8_t *)body, body_len) ||
        !EVP_MAC_final(ctx, md, &md_len, sizeof(md)) || md_len != sizeof(md)) {
        rc = ck_error_set_ssl(CK_ERR_CRYPTO, "webhook signature");
        goto out;
    }
    for (size_t i = 0; i < sizeof(md); i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
out:
    OPENSSL_cleanse(md, sizeof(md));
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return rc;
}

static int
read_secret(const char *path, struct webhook *w)
{
    struct stat st;
    uint8_t buf[SECRET_MAX + 2];
    size_t len = 0;
    int fd = -1, rc = 0;

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
    if (fd < 0) {
        rc = ck_error_set(CK_ERR_IO, "webhook secret %s: %s", path, strerror(errno));
        goto out;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = ck_error_set(CK_ERR_IO, "webhook secret %s: not a regular file", path);
        goto out;
    }
    if ((st.st_mode & 077) != 0) {
        rc = ck_error_set(CK_ERR_PERM, "webhook secret %s: accessible by group or others "
                          "(mode %03o; must be 0600)", path, (unsigned)(st.st_mode & 0777));
        goto out;
    }
    if ((rc = ck_fd_read_all(fd, buf, sizeof(buf), &len)) != 0) {
        ck_error_set(rc, "webhook secret %s: %s", path, ck_error_context());
        goto out;
    }
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        len--;
    if (len < SECRET_MIN || len > SECRET_MAX) {
        rc = ck_error_set(CK_ERR_INVAL, "webhook secret %s: must be %d to %d bytes", path,
                          SECRET_MIN, SECRET_MAX);
        goto out;
    }
    memcpy(w->secret, buf, len);
    w->secret_len = len;
out:
    OPENSSL_cleanse(buf, sizeof(buf));
    if (fd >= 0)
        close(fd);
    return rc;
}

static size_t
discard(char *p, size_t size, size_t n, void *arg)
{
    return size * n; /* the receiver's answer body is not used (a 2xx status is the receipt) */
}

static int
webhook_deliver(void *arg, const struct ck_alarm *a, int64_t budget_ms)
{
    struct webhook *w = arg;
    struct curl_slist *hdrs = NULL;
    char *body = NULL, ts[32], sig[65], h_ts[64], h_sig[96];
    int64_t sec, timeout = w->timeout_ms;
    int32_t usec;
    long status = 0;
    CURLcode cc;
    int rc = 0;

    if (budget_ms > 0 && budget_ms < timeout)
        timeout = budget_ms;
    body = ck_alarm_to_json(a);
    if (body == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "alarm JSON");
        goto out;
    }
    ck_now(&sec, &usec);
    snprintf(ts, sizeof(ts), "%lld", (long long)sec);
    if ((rc = ck_alarm_webhook_sign(w->secret, w->secret_len, ts, body, strlen(body), sig)) != 0)
        goto out;
    snprintf(h_ts, sizeof(h_ts), "X-Cablekey-Timestamp: %s", ts);
    snprintf(h_sig, sizeof(h_sig), "X-Cablekey-Signature: sha256=%s", sig);
    {
        struct curl_slist *t;
        const char *lines[] = {"Content-Type: application/json", h_ts, h_sig, "Expect:"};
        for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
            if ((t = curl_slist_append(hdrs, lines[i])) == NULL) {
                rc = ck_error_set(CK_ERR_NOMEM, "webhook headers");
                goto out;
            }
            hdrs = t;
        }
    }
    curl_easy_reset(w->curl);
    curl_easy_setopt(w->curl, CURLOPT_URL, w->url);
    curl_easy_setopt(w->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(w->curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(w->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(w->curl, CURLOPT_TIMEOUT_MS, (long)timeout);
    curl_easy_setopt(w->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout);
    curl_easy_setopt(w->curl, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(w->curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(w->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    curl_easy_setopt(w->curl, CURLOPT_WRITEFUNCTION, discard);
    if (w->ca_file != NULL)
        curl_easy_setopt(w->curl, CURLOPT_CAINFO, w->ca_file);
    cc = curl_easy_perform(w->curl);
    if (cc != CURLE_OK) {
        rc = ck_error_set(CK_ERR_IO, "webhook: %s", curl_easy_strerror(cc));
        goto out;
    }
    curl_easy_getinfo(w->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status > 299)
        rc = ck_error_set(CK_ERR_PROTO, "webhook: HTTP status %ld", status);
out:
    curl_slist_free_all(hdrs);
    free(body);
    return rc;
}

static void
webhook_free(void *arg)
{
    struct webhook *w = arg;

    if (w == NULL)
        return;
    if (w->curl != NULL)
        curl_easy_cleanup(w->curl);
    free(w->url);
    free(w->ca_file);
    OPENSSL_cleanse(w->secret, sizeof(w->secret));
    free(w);
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void
curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int
ck_alarm_sink_webhook(const struct ck_alarm_webhook_conf *conf, struct ck_alarm_sink *out)
{
    struct webhook *w = NULL;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    if (conf == NULL || conf->url == NULL || conf->secret_file == NULL)
        return ck_error_set(CK_ERR_INVAL, "webhook: url and secret file required");
    if (strncmp(conf->url, "http://", 7) != 0 && strncmp(conf->url, "https://", 8) != 0)
        return ck_error_set(CK_ERR_CONFIG, "webhook URL: only http:// and https://");
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK)
        return ck_error_set(CK_ERR_IO, "libcurl: %s", curl_easy_strerror(curl_init_rc));
    w = calloc(1, sizeof(*w));
    if (w == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "webhook");
        goto out;
    }
    w->timeout_ms = conf->timeout_ms > 0 ? conf->timeout_ms : 5000;
    w->url = strdup(conf->url);
    w->ca_file = conf->ca_file != NULL ? strdup(conf->ca_file) : NULL;
    w->curl = curl_easy_init();
    if (w->url == NULL || (conf->ca_file != NULL && w->ca_file == NULL) || w->curl == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "webhook");
        goto out;
    }
    if ((rc = read_secret(conf->secret_file, w)) != 0)
        goto out;
    out->name = "webhook";
    out->deliver = webhook_deliver;
    out->free = webhook_free;
    out->arg = w;
    w = NULL;
out:
    webhook_free(w);
    return rc;
}
