/* Signed HTTP POSTs (lib/webhook), shared by the alarm webhook sink (lib/alarm/webhook.c) and
 * cablekey-prov's event deliveries (daemons/prov/webhook.c): the shared secret file, the
 * HMAC-SHA-256 over "<timestamp>." || body, and one libcurl easy handle set up for a POST that
 * follows no redirect, speaks only http/https and is bounded in time. Each caller chooses its
 * own header names and how it runs the transfer (blocking or in a multi handle). */
#ifndef CABLEKEY_WEBHOOK_H
#define CABLEKEY_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#define CK_WEBHOOK_SECRET_MIN 16
#define CK_WEBHOOK_SECRET_MAX 1024

/* The secret: the file's content without trailing newlines, CK_WEBHOOK_SECRET_MIN..MAX bytes
 * (CK_ERR_INVAL), a regular file that group and others cannot access (CK_ERR_PERM); unreadable:
 * CK_ERR_IO. secret has room for CK_WEBHOOK_SECRET_MAX bytes; wipe it after use. */
int ck_webhook_secret_read(const char *path, uint8_t *secret, size_t *len);

/* Lower-case hex HMAC-SHA-256(secret, timestamp "." body), 64 characters and a NUL. */
int ck_webhook_sign(const uint8_t *secret, size_t secret_len, const char *timestamp,
                    const char *body, size_t body_len, char hex[65]);

/* Only http:// and https:// URLs (CK_ERR_CONFIG); initialises libcurl once per process. */
int ck_webhook_url_check(const char *url);

/* Resets curl and sets it up to POST body (not copied: it must outlive the transfer) to url
 * with hdrs (plus Content-Type: application/json, added by the caller to hdrs) within
 * timeout_ms; ca_file (may be NULL) holds the https trust anchors. The answer's body is read and
 * dropped: the status is the receipt. */
void ck_webhook_easy_setup(CURL *curl, const char *url, const char *ca_file,
                           struct curl_slist *hdrs, const char *body, size_t body_len,
                           int64_t timeout_ms);

/* Appends the header lines to *list (NULL to start one); CK_ERR_NOMEM and *list freed. */
int ck_webhook_headers(struct curl_slist **list, const char *const *lines, size_t n);

#endif
