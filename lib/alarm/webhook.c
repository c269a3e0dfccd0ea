/* The webhook sink: each alarm POSTed as JSON, signed with HMAC-SHA-256 under a shared secret so
 * that the receiver can tell a genuine alarm from a forged one. The timestamp is inside the MAC so
 * a captured delivery cannot be replayed later as a new one (the receiver checks its age). */
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/alarm.h"
#include "cablekey/error.h"
#include "cablekey/util.h"
#include "cablekey/webhook.h"

struct webhook {
    char *url;
    char *ca_file;
    uint8_t secret[CK_WEBHOOK_SECRET_MAX];
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
    return ck_webhook_sign(secret, secret_len, timestamp, body, body_len, hex);
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
    if ((rc = ck_webhook_sign(w->secret, w->secret_len, ts, body, strlen(body), sig)) != 0)
        goto out;
    snprintf(h_ts, sizeof(h_ts), "X-Cablekey-Timestamp: %s", ts);
    snprintf(h_sig, sizeof(h_sig), "X-Cablekey-Signature: sha256=%s", sig);
    {
        const char *lines[] = {"Content-Type: application/json", h_ts, h_sig, "Expect:"};
        if ((rc = ck_webhook_headers(&hdrs, lines, sizeof(lines) / sizeof(lines[0]))) != 0)
            goto out;
    }
    ck_webhook_easy_setup(w->curl, w->url, w->ca_file, hdrs, body, strlen(body), timeout);
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

int
ck_alarm_sink_webhook(const struct ck_alarm_webhook_conf *conf, struct ck_alarm_sink *out)
{
    struct webhook *w = NULL;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    if (conf == NULL || conf->url == NULL || conf->secret_file == NULL)
        return ck_error_set(CK_ERR_INVAL, "webhook: url and secret file required");
    if ((rc = ck_webhook_url_check(conf->url)) != 0)
        return rc;
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
    if ((rc = ck_webhook_secret_read(conf->secret_file, w->secret, &w->secret_len)) != 0)
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
