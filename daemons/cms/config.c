/* cablekey-cms configuration: one [cms] section in krb5 profile syntax (CONTRACT7), validated
 * against the key table below by lib/daemon, so that a misspelt key is an error with its file and
 * line rather than a silent default; then the flags override the file. Ciphersuite names and the
 * choice of the strongest common suite live here too, next to the `suites` key they serve. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cablekey/error.h"
#include "cablekey/net.h"
#include "cablekey/util.h"
#include "cms.h"

#define S "cms"

const struct ck_conf_key cms_conf_keys[] = {
    {S, "listen", CK_CONF_TOP},
    {S, "signaling_listen", CK_CONF_TOP},
    {S, "keytab", CK_CONF_TOP},
    {S, "service", CK_CONF_TOP},
    {S, "clockskew", CK_CONF_TOP},
    {S, "sa_lifetime", CK_CONF_TOP},
    {S, "grace", CK_CONF_TOP},
    {S, "ack_required", CK_CONF_TOP},
    {S, "suites", CK_CONF_TOP},
    {S, "max_sas", CK_CONF_TOP},
    {S, "replay_cache_size", CK_CONF_TOP},
    {S, "solicited_key_timeout", CK_CONF_TOP},
    {S, "rekey_margin", CK_CONF_TOP},
    {S, "sa_life_kbytes", CK_CONF_TOP},
    {S, "log", CK_CONF_TOP},
    {S, "log_level", CK_CONF_TOP},
    {S, "pid_file", CK_CONF_TOP},
    {S, "user", CK_CONF_TOP},
    {S, "call_mode", CK_CONF_TOP},
    {S, "media", CK_CONF_TOP},
    {S, "call_ipsec_suite", CK_CONF_TOP},
    {S, "compat_seq", CK_CONF_TOP},
    {S, "call_retry_ms", CK_CONF_TOP},
    {S, "call_tries", CK_CONF_TOP},
    {S, "kdc", CK_CONF_TOP},
    {S, "line", CK_CONF_TOP},
    {S, "route", CK_CONF_TOP},
    {S, "intercept_db", CK_CONF_TOP},
    {S, "escrow_dir", CK_CONF_TOP},
    {S, "escrow_retention", CK_CONF_TOP},
    {S, "export_wireshark", CK_CONF_TOP},
    {S, "provisioning_url", CK_CONF_TOP},
    {S, "provisioning_ca", CK_CONF_TOP},
    {S, "provisioning_lines", CK_CONF_TOP},
    {S, "provisioning_retry_max", CK_CONF_TOP},
};
const size_t cms_conf_n_keys = sizeof(cms_conf_keys) / sizeof(cms_conf_keys[0]);

/* ---- suites ----------------------------------------------------------------------------- */

struct suite_name {
    const char *name;
    uint8_t doi;
    struct ck_kmm_suite s;
};

static const struct suite_name suite_names[] = {
    {"sha1-aes128", CK_KMM_DOI_IPSEC, {CK_KMM_AUTH_HMAC_SHA1_96, CK_KMM_ENC_AES128}},
    {"sha1-3des", CK_KMM_DOI_IPSEC, {CK_KMM_AUTH_HMAC_SHA1_96, CK_KMM_ENC_3DES}},
    {"sha1-null", CK_KMM_DOI_IPSEC, {CK_KMM_AUTH_HMAC_SHA1_96, CK_KMM_ENC_NULL}},
    {"md5-aes128", CK_KMM_DOI_IPSEC, {CK_KMM_AUTH_HMAC_MD5_96, CK_KMM_ENC_AES128}},
    {"md5-3des", CK_KMM_DOI_IPSEC, {CK_KMM_AUTH_HMAC_MD5_96, CK_KMM_ENC_3DES}},
    {"md5-null", CK_KMM_DOI_IPSEC, {CK_KMM_AUTH_HMAC_MD5_96, CK_KMM_ENC_NULL}},
    {"sha1-des", CK_KMM_DOI_SNMPV3, {CK_KMM_SNMP_AUTH_SHA1, CK_KMM_SNMP_PRIV_DES}},
    {"sha1-null", CK_KMM_DOI_SNMPV3, {CK_KMM_SNMP_AUTH_SHA1, CK_KMM_SNMP_PRIV_NULL}},
    {"md5-des", CK_KMM_DOI_SNMPV3, {CK_KMM_SNMP_AUTH_MD5, CK_KMM_SNMP_PRIV_DES}},
    {"md5-null", CK_KMM_DOI_SNMPV3, {CK_KMM_SNMP_AUTH_MD5, CK_KMM_SNMP_PRIV_NULL}},
};

const char *
cms_suite_name(uint8_t doi, struct ck_kmm_suite s, char *buf, size_t size)
{
    for (size_t i = 0; i < sizeof(suite_names) / sizeof(suite_names[0]); i++)
        if (suite_names[i].doi == doi && suite_names[i].s.auth == s.auth &&
            suite_names[i].s.enc == s.enc)
            return suite_names[i].name;
    snprintf(buf, size, "0x%02x/0x%02x", s.auth, s.enc);
    return buf;
}

int
cms_suites_parse(const char *value, struct ck_kmm_suite *out, size_t max, size_t *n)
{
    const char *p = value;

    *n = 0;
    while (*p != '\0') {
        size_t len = strcspn(p, " \t,");
        bool found = false;

        if (len == 0) {
            p++;
            continue;
        }
        for (size_t i = 0; i < sizeof(suite_names) / sizeof(suite_names[0]); i++) {
            if (suite_names[i].doi != CK_KMM_DOI_IPSEC || strlen(suite_names[i].name) != len ||
                strncasecmp(suite_names[i].name, p, len) != 0)
                continue;
            found = true;
            for (size_t j = 0; j < *n; j++)
                if (out[j].auth == suite_names[i].s.auth && out[j].enc == suite_names[i].s.enc)
                    goto next;
            if (*n >= max)
                return ck_error_set(CK_ERR_LIMIT, "more than %zu suites", max);
            out[(*n)++] = suite_names[i].s;
            break;
        }
        if (!found)
            return ck_error_set(CK_ERR_CONFIG, "unknown suite \"%.*s\" (known: sha1-aes128 "
                                "sha1-3des sha1-null md5-aes128 md5-3des md5-null)",
                                (int)(len > 64 ? 64 : len), p);
next:
        p += len;
    }
    if (*n == 0)
        return ck_error_set(CK_ERR_CONFIG, "no suite");
    return 0;
}

int
cms_suite_choose(uint8_t doi, const struct ck_kmm_suite *allowed, size_t n_allowed,
                 const struct ck_kmm_suite *offered, size_t n_offered, struct ck_kmm_suite *out)
{
    int best_rank = 0;
    size_t best_pref = SIZE_MAX;

    for (size_t i = 0; i < n_offered; i++) {
        size_t pref = 0;
        int rank;

        if (!ck_kmm_suite_supported(doi, offered[i]))
            continue;
        if (doi == CK_KMM_DOI_IPSEC) {
            for (pref = 0; pref < n_allowed; pref++)
                if (allowed[pref].auth == offered[i].auth && allowed[pref].enc == offered[i].enc)
                    break;
            if (pref == n_allowed)
                continue;
        }
        rank = ck_kmm_suite_rank(doi, offered[i]);
        if (rank > best_rank || (rank == best_rank && pref < best_pref)) {
            best_rank = rank;
            best_pref = pref;
            *out = offered[i];
        }
    }
    if (best_rank <= 0)
        return ck_error_set(CK_ERR_UNSUPPORTED, "no common ciphersuite");
    return 0;
}

/* ---- the configuration ------------------------------------------------------------------ */

void
cms_config_init(struct cms_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->clockskew = CMS_DEFAULT_CLOCKSKEW;
    cfg->sa_lifetime = CMS_DEFAULT_SA_LIFETIME;
    cfg->grace = CMS_DEFAULT_GRACE;
    cfg->max_sas = CMS_DEFAULT_MAX_SAS;
    cfg->replay_cache_size = CMS_DEFAULT_RCACHE;
    cfg->solicited_key_timeout = CMS_DEFAULT_SOLICITED;
    cfg->rekey_margin = -1;
    cfg->suites[0] = (struct ck_kmm_suite){CK_KMM_AUTH_HMAC_SHA1_96, CK_KMM_ENC_AES128};
    cfg->suites[1] = (struct ck_kmm_suite){CK_KMM_AUTH_HMAC_SHA1_96, CK_KMM_ENC_3DES};
    cfg->suites[2] = (struct ck_kmm_suite){CK_KMM_AUTH_HMAC_SHA1_96, CK_KMM_ENC_NULL};
    cfg->n_suites = 3;
    cfg->log.dest = CK_LOG_STDERR;
    cfg->log.level = -1;
    cfg->log_level = LOG_INFO;
    cfg->call_mode = CMS_CALL_NCS;
    cfg->media = CK_SDP_MEDIA_SRTP_AES_CM;
    cfg->call_suite = (struct ck_kmm_suite){CK_KMM_AUTH_HMAC_SHA1_96, CK_KMM_ENC_AES128};
    cfg->call_retry_ms = CMS_DEFAULT_CALL_RETRY_MS;
    cfg->call_tries = CMS_DEFAULT_CALL_TRIES;
    cfg->escrow_retention = CMS_DEFAULT_ESCROW_RETENTION;
    cfg->provisioning_lines = true;
    cfg->provisioning_retry_max = 60;
}

static void
free_list(char **list, size_t *n)
{
    for (size_t i = 0; i < *n; i++) {
        free(list[i]);
        list[i] = NULL;
    }
    *n = 0;
}

void
cms_config_free(struct cms_config *cfg)
{
    if (cfg == NULL)
        return;
    free(cfg->config_path);
    free_list(cfg->listen, &cfg->n_listen);
    free_list(cfg->signaling_listen, &cfg->n_signaling_listen);
    free(cfg->keytab);
    free(cfg->service);
    free(cfg->pid_file);
    free(cfg->user);
    free(cfg->export_xfrm);
    free(cfg->kdc);
    free(cfg->lines);
    free(cfg->routes);
    free(cfg->intercept_db);
    free(cfg->escrow_dir);
    free(cfg->export_wireshark);
    free(cfg->provisioning_url);
    free(cfg->provisioning_ca);
    memset(cfg, 0, sizeof(*cfg));
}

int64_t
cms_config_rekey_margin(const struct cms_config *cfg)
{
    return cfg->rekey_margin < 0 ? cfg->grace / 2 : cfg->rekey_margin;
}

static int
set_str(char **dst, const char *v)
{
    char *c = strdup(v);

    if (c == NULL)
        return ck_error_set(CK_ERR_NOMEM, "configuration");
    free(*dst);
    *dst = c;
    return 0;
}

/* The single value of key in [S], or NULL; a repeated or empty key is an error. */
static int
get_one(const struct ck_profile *prof, const char *key, const char **out)
{
    return ck_conf_get_one(prof, S, key, out);
}

static int
get_duration(const struct ck_profile *prof, const char *key, int64_t min, int64_t max,
             int64_t *out)
{
    const char *v;
    int64_t d;
    char msg[96];
    int rc;

    if ((rc = get_one(prof, key, &v)) != 0 || v == NULL)
        return rc;
    if (ck_parse_duration(v, &d) != 0 || d < min || d > max) {
        snprintf(msg, sizeof(msg), "expected a duration from %llds to %llds", (long long)min,
                 (long long)max);
        return ck_conf_error(prof, CK_ERR_CONFIG, msg, S, key, NULL);
    }
    *out = d;
    return 0;
}

static int
get_int(const struct ck_profile *prof, const char *key, int64_t min, int64_t max, int64_t *out)
{
    const char *v;
    char msg[96];
    int rc;

    if ((rc = get_one(prof, key, &v)) != 0 || v == NULL)
        return rc;
    if (ck_parse_int64(v, min, max, out) != 0) {
        snprintf(msg, sizeof(msg), "expected a number from %lld to %lld", (long long)min,
                 (long long)max);
        return ck_conf_error(prof, CK_ERR_CONFIG, msg, S, key, NULL);
    }
    return 0;
}

/* Blank- or comma-separated addresses; each must parse as a listen address. */
static int
set_listen(char **list, size_t *n, const char *value, uint16_t default_port, bool replace)
{
    const char *p = value;
    size_t before;

    if (replace)
        free_list(list, n);
    before = *n;
    while (*p != '\0') {
        size_t len = strcspn(p, " \t,");
        char tok[256], host[256];
        uint16_t port;
        int rc;

        if (len == 0) {
            p++;
            continue;
        }
        if (len >= sizeof(tok))
            return ck_error_set(CK_ERR_CONFIG, "listen address too long");
        memcpy(tok, p, len);
        tok[len] = '\0';
        if ((rc = ck_net_parse_listen(tok, default_port, host, sizeof(host), &port)) != 0)
            return ck_error_set(CK_ERR_CONFIG, "listen address \"%s\": %s", tok,
                                ck_error_context());
        if (*n >= CMS_MAX_LISTEN)
            return ck_error_set(CK_ERR_LIMIT, "more than %d listen addresses", CMS_MAX_LISTEN);
        if ((list[*n] = strdup(tok)) == NULL)
            return ck_error_set(CK_ERR_NOMEM, "configuration");
        (*n)++;
        p += len;
    }
    if (*n == before)
        return ck_error_set(CK_ERR_CONFIG, "no listen address");
    return 0;
}

static int
listen_key(const struct ck_profile *prof, const char *key, char **list, size_t *n,
           uint16_t port)
{
    const char *v;
    char why[512];
    int rc;

    if ((rc = get_one(prof, key, &v)) != 0 || v == NULL)
        return rc;
    if (set_listen(list, n, v, port, true) != 0) {
        ck_strlcpy(why, ck_error_context(), sizeof(why));
        return ck_conf_error(prof, CK_ERR_CONFIG, why, S, key, NULL);
    }
    return 0;
}

/* ---- calls: media names, lines, routes -------------------------------------------------- */

static const struct {
    const char *name;
    enum ck_sdp_media_mode m;
} media_names[] = {
    {"srtp-aes-cm", CK_SDP_MEDIA_SRTP_AES_CM}, {"srtp-gcm", CK_SDP_MEDIA_SRTP_GCM},
    {"rtp-3des", CK_SDP_MEDIA_RTP_3DES},       {"rtp-3des-mac", CK_SDP_MEDIA_RTP_3DES_MAC},
    {"rtp", CK_SDP_MEDIA_RTP},
};

const char *
cms_media_name(enum ck_sdp_media_mode m)
{
    for (size_t i = 0; i < sizeof(media_names) / sizeof(media_names[0]); i++)
        if (media_names[i].m == m)
            return media_names[i].name;
    return "none";
}

static bool
is_number(const char *s, size_t len)
{
    if (len == 0 || len > CMS_MAX_NUMBER)
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* The next blank-separated word of *p (copied into out), advancing *p. 0 at the end. */
static size_t
next_word(const char **p, char *out, size_t size)
{
    const char *s = *p;
    size_t len;

    while (*s == ' ' || *s == '\t')
        s++;
    len = strcspn(s, " \t");
    *p = s + len;
    if (len == 0 || len >= size) {
        if (size > 0)
            out[0] = '\0';
        return len;
    }
    memcpy(out, s, len);
    out[len] = '\0';
    return len;
}

/* A principal as a route or line names it: name@REALM, printable, no blanks. */
static bool
principal_ok(const char *s)
{
    const char *at = strrchr(s, '@');

    if (at == NULL || at == s || at[1] == '\0')
        return false;
    for (; *s != '\0'; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

static int
parse_line(const char *v, struct cms_line *out, const char **why)
{
    char w[CMS_MAX_PRINCIPAL];
    const char *p = v;
    size_t len;

    memset(out, 0, sizeof(*out));
    len = next_word(&p, w, sizeof(w));
    if (!is_number(w, len))
        return *why = "expected NUMBER (1 to 15 digits) PRINCIPAL [mac=HEX] [server]", -1;
    memcpy(out->number, w, len + 1);
    len = next_word(&p, w, sizeof(w));
    if (len == 0 || len >= sizeof(w) || !principal_ok(w))
        return *why = "expected a principal (name@REALM) after the number", -1;
    memcpy(out->principal, w, len + 1);
    while ((len = next_word(&p, w, sizeof(w))) > 0) {
        if (len >= sizeof(w))
            return *why = "word too long", -1;
        if (strcasecmp(w, "server") == 0) {
            out->server = true;
        } else if (strncasecmp(w, "mac=", 4) == 0 && strlen(w + 4) == 12) {
            for (size_t i = 0; i < 12; i++) {
                int d = ck_hex_digit(w[4 + i]);
                if (d < 0)
                    return *why = "mac= expects 12 hex digits", -1;
                out->mac[i] = "0123456789abcdef"[d];
            }
        } else {
            return *why = "unknown option (known: mac=12HEX, server)", -1;
        }
    }
    return 0;
}

static int
parse_route(const char *v, struct cms_route *out, const char **why)
{
    char w[CMS_MAX_PRINCIPAL], host[256];
    const char *p = v;
    uint16_t port;
    size_t len;

    memset(out, 0, sizeof(*out));
    out->sig_port = CMS_SIGNALING_PORT;
    len = next_word(&p, w, sizeof(w));
    if (!is_number(w, len))
        return *why = "expected PREFIX (1 to 15 digits) PRINCIPAL HOST:PORT [sig=PORT]", -1;
    memcpy(out->prefix, w, len + 1);
    len = next_word(&p, w, sizeof(w));
    if (len == 0 || len >= sizeof(w) || !principal_ok(w))
        return *why = "expected the peer controller's principal (name@REALM) after the prefix", -1;
    memcpy(out->principal, w, len + 1);
    len = next_word(&p, w, sizeof(w));
    if (len == 0 || len >= sizeof(out->kmm) ||
        ck_net_parse_listen(w, CK_KMM_PORT, host, sizeof(host), &port) != 0 || host[0] == '\0')
        return *why = "expected the peer's KMM address HOST[:PORT] after the principal", -1;
    memcpy(out->kmm, w, len + 1);
    while ((len = next_word(&p, w, sizeof(w))) > 0) {
        int64_t n;

        if (len >= sizeof(w) || strncasecmp(w, "sig=", 4) != 0 ||
            ck_parse_int64(w + 4, 1, 65535, &n) != 0)
            return *why = "unknown option (known: sig=PORT)", -1;
        out->sig_port = (uint16_t)n;
    }
    return 0;
}

struct multi_ctx {
    struct cms_config *cfg;
    int rc;
};

/* Every line and route relation in file order, each error naming its own file:line. */
static int
multi_walk(const char *const *path, size_t depth, const char *name, const char *value,
           const char *file, int line, void *arg)
{
    struct multi_ctx *m = arg;
    struct cms_config *cfg = m->cfg;
    const char *why = NULL;

    if (depth != 1 || value == NULL || strcmp(path[0], S) != 0)
        return 0;
    if (strcmp(name, "line") == 0) {
        struct cms_line l;
        struct cms_line *n;

        if (parse_line(value, &l, &why) != 0)
            goto bad;
        if (cms_config_line(cfg, l.number) != NULL) {
            why = "number configured twice";
            goto bad;
        }
        if (cfg->n_lines >= CMS_MAX_LINES) {
            why = "too many lines";
            goto bad;
        }
        if ((n = realloc(cfg->lines, (cfg->n_lines + 1) * sizeof(*n))) == NULL)
            return m->rc = ck_error_set(CK_ERR_NOMEM, "configuration");
        cfg->lines = n;
        cfg->lines[cfg->n_lines++] = l;
    } else if (strcmp(name, "route") == 0) {
        struct cms_route r;
        struct cms_route *n;

        if (parse_route(value, &r, &why) != 0)
            goto bad;
        for (size_t i = 0; i < cfg->n_routes; i++)
            if (strcmp(cfg->routes[i].prefix, r.prefix) == 0) {
                why = "prefix routed twice";
                goto bad;
            }
        if (cfg->n_routes >= CMS_MAX_ROUTES) {
            why = "too many routes";
            goto bad;
        }
        if ((n = realloc(cfg->routes, (cfg->n_routes + 1) * sizeof(*n))) == NULL)
            return m->rc = ck_error_set(CK_ERR_NOMEM, "configuration");
        cfg->routes = n;
        cfg->routes[cfg->n_routes++] = r;
    }
    return 0;
bad:
    return m->rc = ck_error_set(CK_ERR_CONFIG, "%s:%d: %s/%s = \"%.80s\": %s",
                                file != NULL ? file : "?", line, S, name, value, why);
}

const struct cms_line *
cms_config_line(const struct cms_config *cfg, const char *number)
{
    for (size_t i = 0; i < cfg->n_lines; i++)
        if (strcmp(cfg->lines[i].number, number) == 0)
            return &cfg->lines[i];
    return NULL;
}

const struct cms_line *
cms_config_line_by_principal(const struct cms_config *cfg, const char *principal)
{
    for (size_t i = 0; i < cfg->n_lines; i++)
        if (strcmp(cfg->lines[i].principal, principal) == 0)
            return &cfg->lines[i];
    return NULL;
}

const struct cms_route *
cms_config_route(const struct cms_config *cfg, const char *number)
{
    const struct cms_route *best = NULL;
    size_t best_len = 0;

    for (size_t i = 0; i < cfg->n_routes; i++) {
        size_t len = strlen(cfg->routes[i].prefix);
        if (len > best_len && strncmp(cfg->routes[i].prefix, number, len) == 0) {
            best = &cfg->routes[i];
            best_len = len;
        }
    }
    return best;
}

static int
call_keys(struct cms_config *cfg, const struct ck_profile *prof)
{
    struct multi_ctx m = {cfg, 0};
    const char *v;
    char why[512];
    int rc;

    if ((rc = get_one(prof, "call_mode", &v)) != 0)
        return rc;
    if (v != NULL) {
        if (strcasecmp(v, "ncs") == 0)
            cfg->call_mode = CMS_CALL_NCS;
        else if (strcasecmp(v, "sgcp") == 0)
            cfg->call_mode = CMS_CALL_SGCP;
        else
            return ck_conf_error(prof, CK_ERR_CONFIG, "expected ncs or sgcp", S, "call_mode",
                                 NULL);
    }
    if ((rc = get_one(prof, "media", &v)) != 0)
        return rc;
    if (v != NULL) {
        size_t i;
        for (i = 0; i < sizeof(media_names) / sizeof(media_names[0]); i++)
            if (strcasecmp(v, media_names[i].name) == 0 && media_names[i].m != CK_SDP_MEDIA_RTP)
                break;
        if (i == sizeof(media_names) / sizeof(media_names[0]))
            return ck_conf_error(prof, CK_ERR_CONFIG, "expected srtp-aes-cm, srtp-gcm, rtp-3des "
                                 "or rtp-3des-mac", S, "media", NULL);
        cfg->media = media_names[i].m;
    }
    if ((rc = get_one(prof, "call_ipsec_suite", &v)) != 0)
        return rc;
    if (v != NULL) {
        struct ck_kmm_suite one[2];
        size_t n = 0;
        if (cms_suites_parse(v, one, 2, &n) != 0 || n != 1) {
            ck_strlcpy(why, n > 1 ? "exactly one suite" : ck_error_context(), sizeof(why));
            return ck_conf_error(prof, CK_ERR_CONFIG, why, S, "call_ipsec_suite", NULL);
        }
        cfg->call_suite = one[0];
    }
    if ((rc = get_one(prof, "compat_seq", &v)) != 0)
        return rc;
    if (v != NULL && ck_parse_bool(v, &cfg->compat_seq) != 0)
        return ck_conf_error(prof, CK_ERR_CONFIG, "expected true or false", S, "compat_seq", NULL);
    if ((rc = get_int(prof, "call_retry_ms", 10, 60000, &cfg->call_retry_ms)) != 0 ||
        (rc = get_int(prof, "call_tries", 1, 20, &cfg->call_tries)) != 0 ||
        (rc = get_duration(prof, "escrow_retention", 1, CK_PROFILE_MAX_DURATION,
                           &cfg->escrow_retention)) != 0)
        return rc;
    if ((rc = get_one(prof, "kdc", &v)) != 0)
        return rc;
    if (v != NULL) {
        const char *p = v;
        char w[256], host[256];
        uint16_t port;
        size_t len;
        while ((len = next_word(&p, w, sizeof(w))) > 0)
            if (len >= sizeof(w) || ck_net_parse_listen(w, 88, host, sizeof(host), &port) != 0 ||
                host[0] == '\0')
                return ck_conf_error(prof, CK_ERR_CONFIG, "expected HOST[:PORT] ...", S, "kdc",
                                     NULL);
        if ((rc = set_str(&cfg->kdc, v)) != 0)
            return rc;
    }
    if ((rc = get_one(prof, "intercept_db", &v)) != 0 ||
        (v != NULL && (rc = set_str(&cfg->intercept_db, v)) != 0) ||
        (rc = get_one(prof, "escrow_dir", &v)) != 0 ||
        (v != NULL && (rc = set_str(&cfg->escrow_dir, v)) != 0) ||
        (rc = get_one(prof, "export_wireshark", &v)) != 0 ||
        (v != NULL && (rc = set_str(&cfg->export_wireshark, v)) != 0))
        return rc;
    if ((rc = get_one(prof, "provisioning_url", &v)) != 0)
        return rc;
    if (v != NULL) {
        if ((strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0) ||
            strlen(v) > 1024 || strcspn(v, " \t\r\n") != strlen(v))
            return ck_conf_error(prof, CK_ERR_CONFIG, "expected http://HOST:PORT or "
                                 "https://HOST:PORT", S, "provisioning_url", NULL);
        if ((rc = set_str(&cfg->provisioning_url, v)) != 0)
            return rc;
    }
    if ((rc = get_one(prof, "provisioning_ca", &v)) != 0 ||
        (v != NULL && (rc = set_str(&cfg->provisioning_ca, v)) != 0))
        return rc;
    if ((rc = get_one(prof, "provisioning_lines", &v)) != 0)
        return rc;
    if (v != NULL && ck_parse_bool(v, &cfg->provisioning_lines) != 0)
        return ck_conf_error(prof, CK_ERR_CONFIG, "expected true or false", S,
                             "provisioning_lines", NULL);
    if ((rc = get_duration(prof, "provisioning_retry_max", 1, 3600,
                           &cfg->provisioning_retry_max)) != 0)
        return rc;
    cfg->n_lines = 0;
    cfg->n_routes = 0;
    if (ck_profile_walk(prof, multi_walk, &m) != 0 || m.rc != 0)
        return m.rc != 0 ? m.rc : ck_error_set(CK_ERR_CONFIG, "configuration walk");
    return 0;
}

int
cms_config_apply_profile(struct cms_config *cfg, const struct ck_profile *prof)
{
    const char *v;
    char why[512];
    int rc;

    if ((rc = ck_conf_validate(prof, cms_conf_keys, cms_conf_n_keys)) != 0)
        return rc;
    if ((rc = listen_key(prof, "listen", cfg->listen, &cfg->n_listen, CK_KMM_PORT)) != 0 ||
        (rc = listen_key(prof, "signaling_listen", cfg->signaling_listen,
                         &cfg->n_signaling_listen, CMS_SIGNALING_PORT)) != 0)
        return rc;
    if ((rc = get_one(prof, "keytab", &v)) != 0 || (v != NULL && (rc = set_str(&cfg->keytab, v))))
        return rc;
    if ((rc = get_one(prof, "service", &v)) != 0 ||
        (v != NULL && (rc = set_str(&cfg->service, v))))
        return rc;
    if ((rc = get_one(prof, "pid_file", &v)) != 0 ||
        (v != NULL && (rc = set_str(&cfg->pid_file, v))))
        return rc;
    if ((rc = get_one(prof, "user", &v)) != 0 || (v != NULL && (rc = set_str(&cfg->user, v))))
        return rc;
    if ((rc = get_duration(prof, "clockskew", 1, 86400, &cfg->clockskew)) != 0 ||
        (rc = get_duration(prof, "sa_lifetime", 60, 7 * 86400, &cfg->sa_lifetime)) != 0 ||
        (rc = get_duration(prof, "grace", 0, 7 * 86400, &cfg->grace)) != 0 ||
        (rc = get_duration(prof, "solicited_key_timeout", 1, 3600,
                           &cfg->solicited_key_timeout)) != 0 ||
        (rc = get_duration(prof, "rekey_margin", 0, 7 * 86400, &cfg->rekey_margin)) != 0 ||
        (rc = get_int(prof, "max_sas", 1, CMS_MAX_MAX_SAS, &cfg->max_sas)) != 0 ||
        (rc = get_int(prof, "replay_cache_size", 1, 1 << 24, &cfg->replay_cache_size)) != 0 ||
        (rc = get_int(prof, "sa_life_kbytes", 0, INT64_C(1) << 40, &cfg->sa_life_kbytes)) != 0)
        return rc;
    if ((rc = get_one(prof, "ack_required", &v)) != 0)
        return rc;
    if (v != NULL && ck_parse_bool(v, &cfg->ack_required) != 0)
        return ck_conf_error(prof, CK_ERR_CONFIG, "expected true or false", S, "ack_required",
                             NULL);
    if ((rc = get_one(prof, "suites", &v)) != 0)
        return rc;
    if (v != NULL && cms_suites_parse(v, cfg->suites, CMS_MAX_SUITES, &cfg->n_suites) != 0) {
        ck_strlcpy(why, ck_error_context(), sizeof(why));
        return ck_conf_error(prof, CK_ERR_CONFIG, why, S, "suites", NULL);
    }
    if ((rc = get_one(prof, "log", &v)) != 0)
        return rc;
    if (v != NULL) {
        if (ck_log_target_parse(v, v[0] == '/', &cfg->log) != 0) {
            ck_strlcpy(why, ck_error_context(), sizeof(why));
            return ck_conf_error(prof, CK_ERR_CONFIG, why, S, "log", NULL);
        }
        if (cfg->log.level >= 0)
            cfg->log_level = cfg->log.level;
    }
    if ((rc = get_one(prof, "log_level", &v)) != 0)
        return rc;
    if (v != NULL && (cfg->log_level = ck_log_level_from_name(v)) < 0)
        return ck_conf_error(prof, CK_ERR_CONFIG, "expected err, warning, notice, info or debug",
                             S, "log_level", NULL);
    return call_keys(cfg, prof);
}

static int
apply_flags(const struct cms_flags *f, struct cms_config *cfg)
{
    int rc;

    /* Repeated flags add up; together they replace the file's list. */
    for (size_t i = 0; i < f->n_listen; i++)
        if ((rc = set_listen(cfg->listen, &cfg->n_listen, f->listen[i], CK_KMM_PORT, i == 0)) != 0)
            return ck_error_set(rc, "--listen: %s", ck_error_context());
    for (size_t i = 0; i < f->n_signaling_listen; i++)
        if ((rc = set_listen(cfg->signaling_listen, &cfg->n_signaling_listen,
                             f->signaling_listen[i], CMS_SIGNALING_PORT, i == 0)) != 0)
            return ck_error_set(rc, "--signaling-listen: %s", ck_error_context());
    if ((f->keytab != NULL && (rc = set_str(&cfg->keytab, f->keytab)) != 0) ||
        (f->service != NULL && (rc = set_str(&cfg->service, f->service)) != 0) ||
        (f->export_xfrm != NULL && (rc = set_str(&cfg->export_xfrm, f->export_xfrm)) != 0) ||
        (f->export_wireshark != NULL &&
         (rc = set_str(&cfg->export_wireshark, f->export_wireshark)) != 0) ||
        (f->common.pid_file != NULL && (rc = set_str(&cfg->pid_file, f->common.pid_file)) != 0) ||
        (f->common.user != NULL && (rc = set_str(&cfg->user, f->common.user)) != 0))
        return rc;
    if (f->common.log != NULL) {
        if (ck_log_target_parse(f->common.log, true, &cfg->log) != 0)
            return ck_error_set(CK_ERR_CONFIG, "--log: %s", ck_error_context());
        if (cfg->log.level >= 0)
            cfg->log_level = cfg->log.level;
    }
    if (f->common.log_level != NULL &&
        (cfg->log_level = ck_log_level_from_name(f->common.log_level)) < 0)
        return ck_error_set(CK_ERR_CONFIG, "--log-level %s: expected err, warning, notice, info "
                            "or debug", f->common.log_level);
    return 0;
}

static int
default_listen(char **list, size_t *n, uint16_t port)
{
    char spec[16];

    if (*n > 0)
        return 0;
    snprintf(spec, sizeof(spec), "%u", (unsigned)port);
    return set_listen(list, n, spec, port, true);
}

int
cms_config_load(const struct cms_flags *f, struct cms_config *cfg)
{
    const char *path = f->common.config != NULL ? f->common.config : CMS_DEFAULT_CONFIG;
    struct ck_profile *prof = NULL;
    int rc;

    cms_config_init(cfg);
    rc = ck_profile_load(path, &prof);
    /* Without -c a missing default file is fine: the flags and defaults suffice. */
    if (rc == CK_ERR_NOTFOUND && f->common.config == NULL) {
        rc = 0;
    } else if (rc == 0) {
        if ((rc = set_str(&cfg->config_path, path)) != 0 ||
            (rc = cms_config_apply_profile(cfg, prof)) != 0)
            goto out;
    } else {
        goto out;
    }
    if ((rc = apply_flags(f, cfg)) != 0 ||
        (rc = default_listen(cfg->listen, &cfg->n_listen, CK_KMM_PORT)) != 0 ||
        (rc = default_listen(cfg->signaling_listen, &cfg->n_signaling_listen,
                             CMS_SIGNALING_PORT)) != 0)
        goto out;
    if (cfg->keytab == NULL) {
        rc = ck_error_set(CK_ERR_CONFIG, "no keytab: give --keytab or [cms] keytab");
        goto out;
    }
    if (cfg->grace >= cfg->sa_lifetime) {
        rc = ck_error_set(CK_ERR_CONFIG, "grace (%llds) must be shorter than sa_lifetime (%llds)",
                          (long long)cfg->grace, (long long)cfg->sa_lifetime);
        goto out;
    }
    if (cms_config_rekey_margin(cfg) >= cfg->sa_lifetime) {
        rc = ck_error_set(CK_ERR_CONFIG, "rekey_margin must be shorter than sa_lifetime");
        goto out;
    }
out:
    ck_profile_free(prof);
    return rc;
}
