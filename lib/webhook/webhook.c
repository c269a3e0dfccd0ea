/* Signed HTTP POSTs shared by the alarm sink and cablekey-prov's deliveries (webhook.h). The
 * timestamp is inside the MAC so that a captured delivery cannot be replayed later as a new one
 * (the receiver checks its age). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "cablekey/error.h"
#include "cablekey/util.h"
#include "cablekey/webhook.h"

int
ck_webhook_sign(const uint8_t *secret, size_t secret_len, const char *timestamp,
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

int
ck_webhook_secret_read(const char *path, uint8_t *secret, size_t *secret_len)
{
    struct stat st;
    uint8_t buf[CK_WEBHOOK_SECRET_MAX + 2];
    size_t len = 0;
    int fd = -1, rc = 0;

    *secret_len = 0;
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
    if (len < CK_WEBHOOK_SECRET_MIN || len > CK_WEBHOOK_SECRET_MAX) {
        rc = ck_error_set(CK_ERR_INVAL, "webhook secret %s: must be %d to %d bytes", path,
                          CK_WEBHOOK_SECRET_MIN, CK_WEBHOOK_SECRET_MAX);
        goto out;
    }
    memcpy(secret, buf, len);
    *secret_len = len;
out:
    OPENSSL_cleanse(buf, sizeof(buf));
    if (fd >= 0)
        close(fd);
    return rc;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void
curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int
ck_webhook_url_check(const char *url)
{
    if (url == NULL || (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0))
        return ck_error_set(CK_ERR_CONFIG, "webhook URL: only http:// and https://");
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK)
        return ck_error_set(CK_ERR_IO, "libcurl: %s", curl_easy_strerror(curl_init_rc));
    return 0;
}

static size_t
discard(char *p, size_t size, size_t n, void *arg)
{
    return size * n;
}

void
ck_webhook_easy_setup(CURL *curl, const char *url, const char *ca_file, struct curl_slist *hdrs,
                      const char *body, size_t body_len, int64_t timeout_ms)
{
    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)body_len);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
    if (ca_file != NULL)
        curl_easy_setopt(curl, CURLOPT_CAINFO, ca_file);
}

int
ck_webhook_headers(struct curl_slist **list, const char *const *lines, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct curl_slist *t = curl_slist_append(*list, lines[i]);
        if (t == NULL) {
            curl_slist_free_all(*list);
            *list = NULL;
            return ck_error_set(CK_ERR_NOMEM, "webhook headers");
        }
        *list = t;
    }
    return 0;
}
