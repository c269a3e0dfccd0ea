/* The real transport of provclient.h: libcurl, authenticated with HTTP Negotiate (RFC 4559)
 * as the controller itself. The controller's keytab is copied into a MEMORY: keytab at start
 * (the daemon may not read the file later), and MIT GSSAPI gets the controller's TGT from it
 * into a MEMORY: ccache of this transport alone (gss_acquire_cred_from with client_keytab and
 * ccache): nothing in the process environment (KRB5CCNAME, KRB5_CLIENT_KTNAME) changes, and
 * no ticket is written to disk. Each request carries a fresh SPNEGO token for HTTP@host of
 * the URL (the first leg only: cablekey-prov authenticates every request, and its answer's
 * mutual-authentication token is not needed to trust an answer over a loopback or verified
 * TLS connection). The KDC is found through krb5.conf, as for any MIT client. */
#include "provhttp.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>
#include <krb5.h>
#include <openssl/evp.h>

#include "cablekey/error.h"
#include "cablekey/util.h"
#include "provclient.h"

struct cms_prov_http {
    char *base;                       /* the URL without a trailing '/' */
    char *ca_file;
    bool tls;
    char target[300];                 /* "HTTP@host" */
    char principal[CMS_MAX_PRINCIPAL];
    char ktname[128], ccname[128];
    char *keytab;                     /* the file, re-read when a ticket cannot be had */
    char tag[32];
    unsigned gen;
    krb5_context kctx;
    krb5_keytab mem;                  /* kept open: a MEMORY keytab lives while a handle does */
    gss_cred_id_t cred;
    atomic_bool *stop;
};

static void
gss_why(const char *what, OM_uint32 major, OM_uint32 minor, char *out, size_t size)
{
    OM_uint32 min, ctx = 0;
    gss_buffer_desc msg = GSS_C_EMPTY_BUFFER;
    size_t n = (size_t)snprintf(out, size, "%s", what);

    if ((minor != 0 && gss_display_status(&min, minor, GSS_C_MECH_CODE, GSS_C_NO_OID, &ctx,
                                          &msg) == GSS_S_COMPLETE) ||
        gss_display_status(&min, major, GSS_C_GSS_CODE, GSS_C_NO_OID, &ctx, &msg) ==
            GSS_S_COMPLETE) {
        if (n < size)
            snprintf(out + n, size - n, ": %.*s", (int)msg.length, (const char *)msg.value);
        gss_release_buffer(&min, &msg);
    }
}

static void drop_creds(struct cms_prov_http *h);

void
cms_prov_http_free(struct cms_prov_http *h)
{
    OM_uint32 minor;

    if (h == NULL)
        return;
    if (h->kctx != NULL) {
        drop_creds(h);
        krb5_free_context(h->kctx);
    } else if (h->cred != GSS_C_NO_CREDENTIAL) {
        gss_release_cred(&minor, &h->cred);
    }
    free(h->base);
    free(h->ca_file);
    free(h->keytab);
    free(h);
}

/* The file keytab into a MEMORY one; the first entry's principal is ours (the contract:
 * cms authenticates as the first principal of its keytab). */
static int
load_keytab(struct cms_prov_http *h, const char *keytab)
{
    krb5_keytab file = NULL;
    krb5_kt_cursor cur;
    krb5_keytab_entry ent;
    krb5_error_code ret;
    char *name = NULL;
    size_t n = 0;
    int rc = 0;

    if ((ret = krb5_kt_resolve(h->kctx, keytab, &file)) != 0 ||
        (ret = krb5_kt_resolve(h->kctx, h->ktname, &h->mem)) != 0 ||
        (ret = krb5_kt_start_seq_get(h->kctx, file, &cur)) != 0) {
        rc = ck_error_set(CK_ERR_CONFIG, "keytab %s: %s", keytab,
                          krb5_get_error_message(h->kctx, ret));
        goto out;
    }
    while ((ret = krb5_kt_next_entry(h->kctx, file, &ent, &cur)) == 0) {
        krb5_error_code r2 = krb5_kt_add_entry(h->kctx, h->mem, &ent);
        if (r2 == 0 && n == 0 && krb5_unparse_name(h->kctx, ent.principal, &name) == 0) {
            ck_strlcpy(h->principal, name, sizeof(h->principal));
            krb5_free_unparsed_name(h->kctx, name);
        }
        krb5_free_keytab_entry_contents(h->kctx, &ent);
        if (r2 != 0) {
            ret = r2;
            break;
        }
        n++;
    }
    krb5_kt_end_seq_get(h->kctx, file, &cur);
    if (ret != KRB5_KT_END || n == 0 || h->principal[0] == '\0') {
        rc = ck_error_set(CK_ERR_CONFIG, "keytab %s: %s", keytab,
                          ret != KRB5_KT_END ? krb5_get_error_message(h->kctx, ret)
                                             : "holds no keys");
        goto out;
    }
out:
    if (file != NULL)
        krb5_kt_close(h->kctx, file);
    return rc;
}

static int
acquire(struct cms_prov_http *h)
{
    gss_key_value_element_desc el[2] = {{.key = "client_keytab", .value = h->ktname},
                                        {.key = "ccache", .value = h->ccname}};
    gss_key_value_set_desc store = {.count = 2, .elements = el};
    gss_buffer_desc nb = {.length = strlen(h->principal), .value = h->principal};
    gss_name_t name = GSS_C_NO_NAME;
    OM_uint32 major, minor;
    char why[512];

    major = gss_import_name(&minor, &nb, GSS_KRB5_NT_PRINCIPAL_NAME, &name);
    if (GSS_ERROR(major)) {
        gss_why("importing our name", major, minor, why, sizeof(why));
        return ck_error_set(CK_ERR_CONFIG, "%s: %s", h->principal, why);
    }
    major = gss_acquire_cred_from(&minor, name, GSS_C_INDEFINITE, GSS_C_NO_OID_SET,
                                  GSS_C_INITIATE, &store, &h->cred, NULL, NULL);
    gss_release_name(&minor, &name);
    if (GSS_ERROR(major)) {
        gss_why("acquiring initiator credentials", major, minor, why, sizeof(why));
        return ck_error_set(CK_ERR_CONFIG, "%s: %s", h->principal, why);
    }
    return 0;
}

static void
set_names(struct cms_prov_http *h)
{
    static atomic_uint seq;
    unsigned n = atomic_fetch_add(&seq, 1);

    snprintf(h->ktname, sizeof(h->ktname), "MEMORY:cablekey-cms-prov-%ld-%u-%s",
             (long)getpid(), n, h->tag);
    snprintf(h->ccname, sizeof(h->ccname), "MEMORY:cablekey-cms-prov-%ld-%u-%s",
             (long)getpid(), n, h->tag);
}

/* Drops the credentials, the in-memory ccache and keytab. */
static void
drop_creds(struct cms_prov_http *h)
{
    OM_uint32 minor;
    krb5_ccache cc;

    if (h->cred != GSS_C_NO_CREDENTIAL)
        gss_release_cred(&minor, &h->cred);
    h->cred = GSS_C_NO_CREDENTIAL;
    if (h->ccname[0] != '\0' && krb5_cc_resolve(h->kctx, h->ccname, &cc) == 0)
        krb5_cc_destroy(h->kctx, cc);
    if (h->mem != NULL)
        krb5_kt_close(h->kctx, h->mem);
    h->mem = NULL;
    h->principal[0] = '\0';
}

static int load_keytab(struct cms_prov_http *h, const char *keytab);
static int acquire(struct cms_prov_http *h);

/* The keytab file again (the controller's key was rotated: the old one no longer gets a
 * ticket-granting ticket), into fresh in-memory stores. */
static int
reload(struct cms_prov_http *h)
{
    int rc;

    drop_creds(h);
    set_names(h);
    if ((rc = load_keytab(h, h->keytab)) != 0 || (rc = acquire(h)) != 0)
        return rc;
    return 0;
}

int
cms_prov_http_new(const char *url, const char *ca_file, const char *keytab, const char *tag,
                  atomic_bool *stop, struct cms_prov_http **out)
{
    struct cms_prov_http *h = calloc(1, sizeof(*h));
    CURLU *u = NULL;
    char *host = NULL, *scheme = NULL;
    size_t len;
    int rc = 0;

    *out = NULL;
    if (h == NULL)
        return ck_error_set(CK_ERR_NOMEM, "provisioning client");
    h->stop = stop;
    if ((u = curl_url()) == NULL || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
        rc = ck_error_set(CK_ERR_CONFIG, "provisioning_url %s: expected http://HOST[:PORT] or "
                          "https://HOST[:PORT]", url);
        goto out;
    }
    h->tls = strcmp(scheme, "https") == 0;
    /* "[::1]" -> "::1" for the service name. */
    len = strlen(host);
    if (len > 2 && host[0] == '[' && host[len - 1] == ']')
        snprintf(h->target, sizeof(h->target), "HTTP@%.*s", (int)(len - 2), host + 1);
    else
        snprintf(h->target, sizeof(h->target), "HTTP@%s", host);
    if ((h->base = strdup(url)) == NULL || (h->keytab = strdup(keytab)) == NULL ||
        (ca_file != NULL && (h->ca_file = strdup(ca_file)) == NULL)) {
        rc = ck_error_set(CK_ERR_NOMEM, "provisioning client");
        goto out;
    }
    while ((len = strlen(h->base)) > 0 && h->base[len - 1] == '/')
        h->base[len - 1] = '\0';
    ck_strlcpy(h->tag, tag, sizeof(h->tag));
    set_names(h);
    if (krb5_init_context(&h->kctx) != 0) {
        h->kctx = NULL;
        rc = ck_error_set(CK_ERR_CONFIG, "krb5_init_context failed (krb5.conf?)");
        goto out;
    }
    if ((rc = load_keytab(h, keytab)) != 0 || (rc = acquire(h)) != 0)
        goto out;
out:
    curl_free(host);
    curl_free(scheme);
    curl_url_cleanup(u);
    if (rc != 0) {
        cms_prov_http_free(h);
        return rc;
    }
    *out = h;
    return 0;
}

const char *
cms_prov_http_principal(const struct cms_prov_http *h)
{
    return h->principal;
}

/* "Authorization: Negotiate <base64 SPNEGO token>" into hdr (malloc'd). */
static int
negotiate_header(struct cms_prov_http *h, char **hdr)
{
    static gss_OID_desc spnego = {6, (void *)"\x2b\x06\x01\x05\x05\x02"};
    gss_buffer_desc nb = {.length = strlen(h->target), .value = h->target};
    gss_buffer_desc tok = GSS_C_EMPTY_BUFFER;
    gss_name_t target = GSS_C_NO_NAME;
    gss_ctx_id_t ctx = GSS_C_NO_CONTEXT;
    OM_uint32 major, minor;
    char why[512];
    int rc = 0;

    *hdr = NULL;
    major = gss_import_name(&minor, &nb, GSS_C_NT_HOSTBASED_SERVICE, &target);
    if (GSS_ERROR(major)) {
        gss_why("importing the server's name", major, minor, why, sizeof(why));
        return ck_error_set(CK_ERR_CONFIG, "%s: %s", h->target, why);
    }
    major = gss_init_sec_context(&minor, h->cred, &ctx, target, &spnego, 0, GSS_C_INDEFINITE,
                                 GSS_C_NO_CHANNEL_BINDINGS, GSS_C_NO_BUFFER, NULL, &tok, NULL,
                                 NULL);
    if (GSS_ERROR(major) || tok.length == 0) {
        gss_why("Negotiate", major, minor, why, sizeof(why));
        rc = ck_error_set(CK_ERR_KRB, "a ticket for %s as %s: %s", h->target, h->principal, why);
        goto out;
    }
    if ((*hdr = malloc(4 * ((tok.length + 2) / 3) + 32)) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "Negotiate header");
        goto out;
    }
    memcpy(*hdr, "Authorization: Negotiate ", 25);
    EVP_EncodeBlock((unsigned char *)*hdr + 25, tok.value, (int)tok.length);
out:
    gss_release_buffer(&minor, &tok);
    if (ctx != GSS_C_NO_CONTEXT)
        gss_delete_sec_context(&minor, &ctx, GSS_C_NO_BUFFER);
    gss_release_name(&minor, &target);
    return rc;
}

struct sink {
    char *data;
    size_t len;
    bool too_large;
};

static size_t
write_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct sink *b = arg;
    size_t n = size * nmemb;
    char *d;

    if (b->len + n > CMS_PROV_MAX_ANSWER) {
        b->too_large = true;
        return 0;
    }
    if ((d = realloc(b->data, b->len + n + 1)) == NULL)
        return 0;
    memcpy(d + b->len, ptr, n);
    b->len += n;
    d[b->len] = '\0';
    b->data = d;
    return n;
}

static int
progress_cb(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    struct cms_prov_http *h = arg;

    (void)a, (void)b, (void)c, (void)d;
    return h->stop != NULL && atomic_load(h->stop) ? 1 : 0;
}

static bool
append(struct curl_slist **l, const char *s)
{
    struct curl_slist *t = curl_slist_append(*l, s);

    if (t == NULL)
        return false;
    *l = t;
    return true;
}

int
cms_prov_http_request(void *arg, const char *method, const char *path, const char *body,
                      long timeout_s, long *status, char **answer, size_t *answer_len)
{
    struct cms_prov_http *h = arg;
    struct curl_slist *hdrs = NULL;
    struct sink b = {0};
    char *auth = NULL, *url = NULL, errbuf[CURL_ERROR_SIZE] = "";
    CURL *c = NULL;
    CURLcode cc;
    size_t n;
    int rc = 0;

    *status = 0;
    *answer = NULL;
    *answer_len = 0;
    if (h->stop != NULL && atomic_load(h->stop))
        return ck_error_set(CK_ERR_IO, "stopping");
    if ((rc = negotiate_header(h, &auth)) != 0) {
        /* Perhaps the key changed: read the keytab again, once. */
        char why[512];
        ck_strlcpy(why, ck_error_context(), sizeof(why));
        if (reload(h) != 0 || negotiate_header(h, &auth) != 0)
            return ck_error_set(rc, "%s", why);
    }
    n = strlen(h->base) + strlen(path) + 1;
    if ((url = malloc(n)) == NULL || (c = curl_easy_init()) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "request");
        goto out;
    }
    snprintf(url, n, "%s%s", h->base, path);
    if (!append(&hdrs, auth) || !append(&hdrs, "Accept: application/json") ||
        !append(&hdrs, "Expect:") ||
        (body != NULL && !append(&hdrs, "Content-Type: application/json"))) {
        rc = ck_error_set(CK_ERR_NOMEM, "request");
        goto out;
    }
    if (curl_easy_setopt(c, CURLOPT_URL, url) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, h->tls ? "https" : "http") != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_PROXY, "") != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_NOPROXY, "*") != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK ||
        (h->ca_file != NULL && curl_easy_setopt(c, CURLOPT_CAINFO, h->ca_file) != CURLE_OK) ||
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, progress_cb) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, h) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &b) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_USERAGENT, "cablekey-cms") != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method) != CURLE_OK ||
        (body != NULL &&
         (curl_easy_setopt(c, CURLOPT_POSTFIELDS, body) != CURLE_OK ||
          curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body)) !=
              CURLE_OK))) {
        rc = ck_error_set(CK_ERR_UNSUPPORTED, "libcurl: an option the provisioning client "
                          "needs is not supported (%s)", errbuf);
        goto out;
    }
    if ((cc = curl_easy_perform(c)) != CURLE_OK) {
        if (b.too_large)
            rc = ck_error_set(CK_ERR_LIMIT, "%s: answer larger than %u bytes", h->base,
                              CMS_PROV_MAX_ANSWER);
        else
            rc = ck_error_set(cc == CURLE_OPERATION_TIMEDOUT ? CK_ERR_TIMEOUT : CK_ERR_IO,
                              "%s: %s", h->base, errbuf[0] != '\0' ? errbuf
                                                                   : curl_easy_strerror(cc));
        goto out;
    }
    (void)curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    *answer = b.data;
    *answer_len = b.len;
    b.data = NULL;
out:
    free(b.data);
    curl_slist_free_all(hdrs);
    if (c != NULL)
        curl_easy_cleanup(c);
    free(url);
    if (auth != NULL) {
        ck_memzero(auth, strlen(auth));
        free(auth);
    }
    return rc;
}
