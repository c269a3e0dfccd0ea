/* Reading the KDC's settings from a kdc.conf-style profile. Key names follow MIT's kdc.conf
 * where the meaning is the same, so existing configurations mostly carry over. */
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "cablekey/crypto.h"
#include "cablekey/error.h"
#include "cablekey/log.h"
#include "cablekey/net.h"
#include "cablekey/profile.h"
#include "cablekey/util.h"
#include "config.h"
#include "kpasswd.h"
#include "pkinit_kdc.h"

#define MAX_NAMES 64

void
kdc_config_defaults(struct kdc_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->max_life = KDC_DEFAULT_MAX_LIFE;
    cfg->max_renewable_life = KDC_DEFAULT_MAX_RENEW;
    cfg->clockskew = KDC_DEFAULT_CLOCKSKEW;
    cfg->max_dgram_reply = KDC_DEFAULT_MAX_DGRAM_REPLY;
    cfg->max_request = KDC_DEFAULT_MAX_REQUEST;
    /* MIT's default order for the AES family. */
    cfg->enctypes[0] = CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96;
    cfg->enctypes[1] = CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96;
    cfg->enctypes[2] = CK_ENCTYPE_AES256_CTS_HMAC_SHA384_192;
    cfg->enctypes[3] = CK_ENCTYPE_AES128_CTS_HMAC_SHA256_128;
    cfg->n_enctypes = 4;
    cfg->lookaside = true;
}

void
kdc_config_free_contents(struct kdc_config *cfg)
{
    if (cfg == NULL)
        return;
    free(cfg->realm);
    free(cfg->db_path);
    free(cfg->stash_path);
    cfg->realm = cfg->db_path = cfg->stash_path = NULL;
    kdc_pkinit_config_free(cfg->pkinit);
    cfg->pkinit = NULL;
}

void
kdc_daemon_config_init(struct kdc_daemon_config *dc)
{
    memset(dc, 0, sizeof(*dc));
    kdc_config_defaults(&dc->kdc);
    dc->tcp_max_connections = KDC_DEFAULT_TCP_MAX_CONNECTIONS;
    dc->tcp_idle_timeout = KDC_DEFAULT_TCP_IDLE;
    dc->cpu_affinity = true;
    dc->log_dest = CK_LOG_STDERR;
    dc->log_level = LOG_INFO;
}

static void
clear_listen(struct kdc_daemon_config *dc)
{
    for (size_t i = 0; i < dc->n_listen; i++)
        free(dc->listen[i]);
    dc->n_listen = 0;
}

void
kdc_daemon_config_free(struct kdc_daemon_config *dc)
{
    if (dc == NULL)
        return;
    kdc_config_free_contents(&dc->kdc);
    clear_listen(dc);
    for (size_t i = 0; i < dc->n_kpasswd_listen; i++)
        free(dc->kpasswd_listen[i]);
    dc->n_kpasswd_listen = 0;
    free(dc->kpasswd_admins);
    dc->kpasswd_admins = NULL;
    free(dc->log_path);
    dc->log_path = NULL;
}

static int
set_string(char **dst, const char *value)
{
    char *copy = strdup(value);

    if (copy == NULL)
        return ck_error_set(CK_ERR_NOMEM, "config");
    free(*dst);
    *dst = copy;
    return 0;
}

/* Splits value on blanks and commas, calling fn on each token (NUL-terminated copy). */
static int
for_each_token(const char *value, int (*fn)(const char *tok, void *arg), void *arg)
{
    const char *p = value;

    while (*p != '\0') {
        char tok[256];
        size_t n = strcspn(p, " \t,");
        int rc;

        if (n == 0) {
            p++;
            continue;
        }
        if (n >= sizeof(tok))
            return ck_error_set(CK_ERR_CONFIG, "entry too long in \"%s\"", value);
        memcpy(tok, p, n);
        tok[n] = '\0';
        if ((rc = fn(tok, arg)) != 0)
            return rc;
        p += n;
    }
    return 0;
}

static int
add_listen(const char *tok, void *arg)
{
    struct kdc_daemon_config *dc = arg;
    char host[256];
    uint16_t port;
    int rc;

    if ((rc = ck_net_parse_listen(tok, KDC_DEFAULT_PORT, host, sizeof(host), &port)) != 0)
        return rc;
    if (dc->n_listen >= KDC_MAX_LISTEN)
        return ck_error_set(CK_ERR_LIMIT, "more than %d listen addresses", KDC_MAX_LISTEN);
    if ((dc->listen[dc->n_listen] = strdup(tok)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "config");
    dc->n_listen++;
    return 0;
}

int
kdc_config_set_listen(struct kdc_daemon_config *dc, const char *value, bool replace)
{
    if (replace)
        clear_listen(dc);
    return for_each_token(value, add_listen, dc);
}

static int
add_kpasswd_listen(const char *tok, void *arg)
{
    struct kdc_daemon_config *dc = arg;
    char host[256];
    uint16_t port;
    int rc;

    if ((rc = ck_net_parse_listen(tok, KPASSWD_DEFAULT_PORT, host, sizeof(host), &port)) != 0)
        return rc;
    if (dc->n_kpasswd_listen >= KDC_MAX_LISTEN)
        return ck_error_set(CK_ERR_LIMIT, "more than %d kpasswd listen addresses",
                            KDC_MAX_LISTEN);
    if ((dc->kpasswd_listen[dc->n_kpasswd_listen] = strdup(tok)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "config");
    dc->n_kpasswd_listen++;
    return 0;
}

int
kdc_config_set_kpasswd_listen(struct kdc_daemon_config *dc, const char *value, bool replace)
{
    if (replace) {
        for (size_t i = 0; i < dc->n_kpasswd_listen; i++)
            free(dc->kpasswd_listen[i]);
        dc->n_kpasswd_listen = 0;
    }
    return for_each_token(value, add_kpasswd_listen, dc);
}

struct enctype_list {
    int32_t *out;
    size_t n;
};

static bool
is_legacy_enctype_name(const char *name)
{
    static const char *const prefixes[] = {"des", "rc4", "arcfour", "camellia", "aes128-cts-hmac-md5",
                                           "16", "23", "25", "26"};

    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
        if (strncasecmp(name, prefixes[i], strlen(prefixes[i])) == 0)
            return true;
    return false;
}

static int
add_enctype(const char *tok, void *arg)
{
    struct enctype_list *l = arg;
    char name[256];
    char *colon;
    int32_t e;

    ck_strlcpy(name, tok, sizeof(name));
    /* MIT writes "enctype:salttype"; the salt type concerns stored keys, not the KDC. */
    if ((colon = strchr(name, ':')) != NULL)
        *colon = '\0';
    if (ck_enctype_from_name(name, &e) != 0 || !ck_enctype_is_supported(e)) {
        /* Legacy enctypes MIT configs still list are skipped; anything else is a typo that
         * would silently change what the KDC issues, so it is an error. */
        if (is_legacy_enctype_name(name)) {
            ck_log_warn("supported_enctypes: ignoring disabled legacy enctype \"%s\"", name);
            return 0;
        }
        return ck_error_set(CK_ERR_CONFIG, "supported_enctypes: unknown enctype \"%s\"", name);
    }
    for (size_t i = 0; i < l->n; i++)
        if (l->out[i] == e)
            return 0;
    if (l->n >= KDC_MAX_ENCTYPES)
        return ck_error_set(CK_ERR_CONFIG, "supported_enctypes: more than %d enctypes",
                            KDC_MAX_ENCTYPES);
    l->out[l->n++] = e;
    return 0;
}

int
kdc_config_parse_enctypes(const char *value, int32_t *enctypes, size_t *n)
{
    int32_t tmp[KDC_MAX_ENCTYPES];
    struct enctype_list l = {tmp, 0};
    int rc;

    if ((rc = for_each_token(value, add_enctype, &l)) != 0)
        return rc;
    if (l.n == 0)
        return ck_error_set(CK_ERR_CONFIG, "supported_enctypes: no supported enctype in \"%s\"",
                            value);
    memcpy(enctypes, tmp, l.n * sizeof(tmp[0]));
    *n = l.n;
    return 0;
}

/* Facility names are validated for MIT compatibility; the log module always uses LOG_DAEMON. */
static bool
known_facility(const char *name)
{
    static const char *const names[] = {"DAEMON", "AUTH", "AUTHPRIV", "USER", "LOCAL0",
                                        "LOCAL1", "LOCAL2", "LOCAL3", "LOCAL4", "LOCAL5",
                                        "LOCAL6", "LOCAL7"};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcasecmp(name, names[i]) == 0)
            return true;
    return false;
}

int
kdc_config_set_log(struct kdc_daemon_config *dc, const char *spec)
{
    if (strcasecmp(spec, "STDERR") == 0) {
        dc->log_dest = CK_LOG_STDERR;
        return 0;
    }
    if (strncasecmp(spec, "SYSLOG", 6) == 0 && (spec[6] == '\0' || spec[6] == ':')) {
        char buf[64];
        char *level, *facility;

        ck_strlcpy(buf, spec, sizeof(buf));
        level = buf[6] == ':' ? buf + 7 : NULL;
        facility = level != NULL ? strchr(level, ':') : NULL;
        if (facility != NULL)
            *facility++ = '\0';
        if (level != NULL && *level != '\0') {
            int l = ck_log_level_from_name(level);
            if (l < 0)
                return ck_error_set(CK_ERR_CONFIG, "log \"%s\": unknown level \"%s\"", spec,
                                    level);
            dc->log_level = l;
        }
        if (facility != NULL && !known_facility(facility))
            return ck_error_set(CK_ERR_CONFIG, "log \"%s\": unknown facility \"%s\"", spec,
                                facility);
        dc->log_dest = CK_LOG_SYSLOG;
        return 0;
    }
    if (strncasecmp(spec, "FILE:", 5) == 0 || strncasecmp(spec, "FILE=", 5) == 0)
        spec += 5;
    if (*spec == '\0')
        return ck_error_set(CK_ERR_CONFIG, "log: empty file name");
    if (set_string(&dc->log_path, spec) != 0)
        return CK_ERR_NOMEM;
    dc->log_dest = CK_LOG_FILE;
    return 0;
}

/* ---- typed readers ---------------------------------------------------------------------- */

static int
get_int(const char *key, const char *value, int64_t min, int64_t max, int64_t *out)
{
    if (ck_parse_int64(value, min, max, out) != 0)
        return ck_error_set(CK_ERR_CONFIG, "%s = \"%s\": expected a number from %lld to %lld",
                            key, value, (long long)min, (long long)max);
    return 0;
}

static int
get_duration(const char *key, const char *value, int64_t min, int64_t *out)
{
    int64_t v;

    if (ck_parse_duration(value, &v) != 0 || v < min)
        return ck_error_set(CK_ERR_CONFIG, "%s = \"%s\": expected a duration such as 10h",
                            key, value);
    *out = v;
    return 0;
}

/* Warns about relations under the path that are not in known (a NULL-terminated list). */
static void
warn_unknown(const struct ck_profile *prof, const char *where, const char *const *known,
             const char *section, const char *sub)
{
    const char *names[MAX_NAMES];
    size_t n = sub != NULL ? ck_profile_relations(prof, names, MAX_NAMES, section, sub, NULL)
                           : ck_profile_relations(prof, names, MAX_NAMES, section, NULL);

    if (n > MAX_NAMES)
        n = MAX_NAMES;
    for (size_t i = 0; i < n; i++) {
        bool ok = false;
        for (size_t k = 0; known[k] != NULL && !ok; k++)
            ok = strcmp(names[i], known[k]) == 0;
        if (!ok)
            ck_log_warn("%s: ignoring unknown setting \"%s\"", where, names[i]);
    }
}

static int
load_kdcdefaults(struct kdc_daemon_config *dc, const struct ck_profile *prof)
{
    static const char *const known[] = {
        "kdc_listen", "kdc_ports", "kdc_tcp_listen", "kdc_tcp_ports", "kdc_max_dgram_reply_size",
        "kdc_max_request_size", "kdc_tcp_max_connections", "kdc_tcp_idle_timeout", "kdc_workers",
        "kdc_cpu_affinity", "kpasswd_listen", NULL};
    const char *v;
    int64_t n;
    int rc;

    warn_unknown(prof, "[kdcdefaults]", known, "kdcdefaults", NULL);
    if ((v = ck_profile_get(prof, "kdcdefaults", "kpasswd_listen", NULL)) != NULL &&
        (rc = kdc_config_set_kpasswd_listen(dc, v, true)) != 0)
        return rc;
    if ((v = ck_profile_get(prof, "kdcdefaults", "kdc_listen", NULL)) != NULL &&
        (rc = kdc_config_set_listen(dc, v, true)) != 0)
        return rc;
    /* Both transports always share the addresses, so these MIT keys add nothing. */
    if (ck_profile_get(prof, "kdcdefaults", "kdc_tcp_listen", NULL) != NULL ||
        ck_profile_get(prof, "kdcdefaults", "kdc_ports", NULL) != NULL ||
        ck_profile_get(prof, "kdcdefaults", "kdc_tcp_ports", NULL) != NULL)
        ck_log_warn("[kdcdefaults]: kdc_ports/kdc_tcp_listen/kdc_tcp_ports are ignored; "
                    "kdc_listen sets UDP and TCP together");
    if ((v = ck_profile_get(prof, "kdcdefaults", "kdc_max_dgram_reply_size", NULL)) != NULL) {
        if ((rc = get_int("kdc_max_dgram_reply_size", v, 128, 65507, &n)) != 0)
            return rc;
        dc->kdc.max_dgram_reply = (size_t)n;
    }
    if ((v = ck_profile_get(prof, "kdcdefaults", "kdc_max_request_size", NULL)) != NULL) {
        if ((rc = get_int("kdc_max_request_size", v, 1024, CK_NET_MAX_REQUEST_LIMIT, &n)) != 0)
            return rc;
        dc->kdc.max_request = (size_t)n;
    }
    if ((v = ck_profile_get(prof, "kdcdefaults", "kdc_tcp_max_connections", NULL)) != NULL) {
        if ((rc = get_int("kdc_tcp_max_connections", v, 1, 1000000, &n)) != 0)
            return rc;
        dc->tcp_max_connections = (int)n;
    }
    if ((v = ck_profile_get(prof, "kdcdefaults", "kdc_tcp_idle_timeout", NULL)) != NULL &&
        (rc = get_duration("kdc_tcp_idle_timeout", v, 1, &dc->tcp_idle_timeout)) != 0)
        return rc;
    if ((v = ck_profile_get(prof, "kdcdefaults", "kdc_workers", NULL)) != NULL) {
        if ((rc = get_int("kdc_workers", v, 1, CK_NET_MAX_WORKERS, &n)) != 0)
            return rc;
        dc->workers = (int)n;
    }
    if ((v = ck_profile_get(prof, "kdcdefaults", "kdc_cpu_affinity", NULL)) != NULL &&
        ck_parse_bool(v, &dc->cpu_affinity) != 0)
        return ck_error_set(CK_ERR_CONFIG, "kdc_cpu_affinity = \"%s\": expected yes or no", v);
    return 0;
}

static int
load_realm(struct kdc_daemon_config *dc, const struct ck_profile *prof, const char *r)
{
    static const char *const known[] = {
        "database_name", "key_stash_file", "max_life", "max_renewable_life",
        "supported_enctypes", "clockskew", "lookaside", "kdc_listen", "kpasswd_listen",
        "kpasswd_admins", "disable_lockout", "disable_last_success",
        /* MIT keys that are accepted without effect, so MIT configs load quietly. */
        "acl_file", "admin_keytab", "dict_file", "kadmind_port", "kpasswd_port",
        "master_key_type", "default_principal_flags", KDC_PKINIT_CONFIG_KEYS, NULL};
    char where[300];
    const char *v;
    int rc;

    snprintf(where, sizeof(where), "[realms] %s", r);
    warn_unknown(prof, where, known, "realms", r);
    if ((v = ck_profile_get(prof, "realms", r, "database_name", NULL)) != NULL &&
        (rc = set_string(&dc->kdc.db_path, v)) != 0)
        return rc;
    if ((v = ck_profile_get(prof, "realms", r, "key_stash_file", NULL)) != NULL &&
        (rc = set_string(&dc->kdc.stash_path, v)) != 0)
        return rc;
    if ((v = ck_profile_get(prof, "realms", r, "max_life", NULL)) != NULL &&
        (rc = get_duration("max_life", v, 60, &dc->kdc.max_life)) != 0)
        return rc;
    if ((v = ck_profile_get(prof, "realms", r, "max_renewable_life", NULL)) != NULL &&
        (rc = get_duration("max_renewable_life", v, 0, &dc->kdc.max_renewable_life)) != 0)
        return rc;
    if ((v = ck_profile_get(prof, "realms", r, "clockskew", NULL)) != NULL) {
        if ((rc = get_duration("clockskew", v, 0, &dc->kdc.clockskew)) != 0)
            return rc;
        if (dc->kdc.clockskew > 86400)
            return ck_error_set(CK_ERR_CONFIG, "clockskew = \"%s\": more than a day", v);
    }
    if ((v = ck_profile_get(prof, "realms", r, "supported_enctypes", NULL)) != NULL &&
        (rc = kdc_config_parse_enctypes(v, dc->kdc.enctypes, &dc->kdc.n_enctypes)) != 0)
        return rc;
    if ((v = ck_profile_get(prof, "realms", r, "lookaside", NULL)) != NULL &&
        ck_parse_bool(v, &dc->kdc.lookaside) != 0)
        return ck_error_set(CK_ERR_CONFIG, "lookaside = \"%s\": expected yes or no", v);
    /* MIT has these two in [dbmodules]; here they belong to the realm's KDC. */
    if ((v = ck_profile_get(prof, "realms", r, "disable_lockout", NULL)) != NULL &&
        ck_parse_bool(v, &dc->kdc.disable_lockout) != 0)
        return ck_error_set(CK_ERR_CONFIG, "disable_lockout = \"%s\": expected yes or no", v);
    if ((v = ck_profile_get(prof, "realms", r, "disable_last_success", NULL)) != NULL &&
        ck_parse_bool(v, &dc->kdc.disable_last_success) != 0)
        return ck_error_set(CK_ERR_CONFIG, "disable_last_success = \"%s\": expected yes or no",
                            v);
    if ((rc = kdc_pkinit_config_load(&dc->kdc.pkinit, prof, r)) != 0)
        return rc;
    /* As in MIT, a realm's own kdc_listen wins over [kdcdefaults]. */
    if ((v = ck_profile_get(prof, "realms", r, "kdc_listen", NULL)) != NULL &&
        (rc = kdc_config_set_listen(dc, v, true)) != 0)
        return rc;
    if ((v = ck_profile_get(prof, "realms", r, "kpasswd_listen", NULL)) != NULL &&
        (rc = kdc_config_set_kpasswd_listen(dc, v, true)) != 0)
        return rc;
    if ((v = ck_profile_get(prof, "realms", r, "kpasswd_admins", NULL)) != NULL &&
        (rc = set_string(&dc->kpasswd_admins, v)) != 0)
        return rc;
    return 0;
}

static int
load_logging(struct kdc_daemon_config *dc, const struct ck_profile *prof)
{
    static const char *const known[] = {"kdc", "default", "level", "admin_server", NULL};
    const char *vals[4];
    const char *v;
    size_t n;
    int rc;

    warn_unknown(prof, "[logging]", known, "logging", NULL);
    n = ck_profile_get_all(prof, vals, 4, "logging", "kdc", NULL);
    if (n == 0)
        n = ck_profile_get_all(prof, vals, 4, "logging", "default", NULL);
    if (n > 1)
        ck_log_warn("[logging]: only the first kdc destination (%s) is used", vals[0]);
    if (n > 0 && (rc = kdc_config_set_log(dc, vals[0])) != 0)
        return rc;
    if ((v = ck_profile_get(prof, "logging", "level", NULL)) != NULL) {
        int l = ck_log_level_from_name(v);
        if (l < 0)
            return ck_error_set(CK_ERR_CONFIG, "[logging] level = \"%s\": unknown level", v);
        dc->log_level = l;
    }
    return 0;
}

int
kdc_daemon_config_load(struct kdc_daemon_config *dc, const struct ck_profile *prof,
                       const char *realm)
{
    const char *names[MAX_NAMES];
    size_t n;
    int rc;

    if (prof == NULL) {
        if (realm != NULL)
            return set_string(&dc->kdc.realm, realm);
        return 0;
    }
    if ((rc = load_kdcdefaults(dc, prof)) != 0 || (rc = load_logging(dc, prof)) != 0)
        return rc;
    n = ck_profile_subsections(prof, names, MAX_NAMES, "realms", NULL);
    if (realm == NULL) {
        /* One realm per process: the file may name one, or the database decides. */
        if (n > 1)
            return ck_error_set(CK_ERR_CONFIG, "[realms] lists %zu realms; choose one with "
                                "--realm", n);
        if (n == 0)
            return 0;
        realm = names[0];
    } else {
        bool found = false;
        for (size_t i = 0; i < n && i < MAX_NAMES && !found; i++)
            found = strcmp(names[i], realm) == 0;
        if (!found && n > 0)
            ck_log_warn("realm %s has no [realms] entry; using defaults", realm);
    }
    if ((rc = set_string(&dc->kdc.realm, realm)) != 0)
        return rc;
    return load_realm(dc, prof, dc->kdc.realm);
}

int
kdc_daemon_config_finish(struct kdc_daemon_config *dc)
{
    int rc;

    if (dc->n_listen == 0 && (rc = kdc_config_set_listen(dc, "88", true)) != 0)
        return rc;
    if (dc->kdc.db_path == NULL && (rc = set_string(&dc->kdc.db_path, KDC_DEFAULT_DB)) != 0)
        return rc;
    if (dc->kdc.stash_path == NULL) {
        size_t n = strlen(dc->kdc.db_path) + sizeof(".stash");
        char *s = malloc(n);
        if (s == NULL)
            return ck_error_set(CK_ERR_NOMEM, "config");
        snprintf(s, n, "%s.stash", dc->kdc.db_path);
        dc->kdc.stash_path = s;
    }
    if (dc->kdc.max_renewable_life != 0 && dc->kdc.max_renewable_life < dc->kdc.max_life)
        ck_log_warn("max_renewable_life is shorter than max_life");
    if (dc->workers < 0 || dc->workers > CK_NET_MAX_WORKERS)
        return ck_error_set(CK_ERR_CONFIG, "workers must be 1..%d", CK_NET_MAX_WORKERS);
    if (dc->tcp_idle_timeout > 86400)
        return ck_error_set(CK_ERR_CONFIG, "kdc_tcp_idle_timeout: more than a day");
    return kdc_pkinit_config_finish(dc->kdc.pkinit);
}
