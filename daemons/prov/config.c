/* cablekey-prov configuration: one [prov] section in krb5 profile syntax, validated against
 * prov_conf_keys by the daemon layer: an unknown section or key is an error with its file and
 * line (a misspelt key must not leave the daemon on a default the operator did not choose).
 * The common flags (--log, --log-level, --pid-file, --user) and --db/--stash override their
 * keys. docs/cablekey-prov.md lists every key. */
#include <stdlib.h>
#include <string.h>

#include "cablekey/error.h"
#include "cablekey/profile.h"
#include "cablekey/store.h"
#include "cablekey/util.h"
#include "provd.h"

#define S "prov"

const struct ck_conf_key prov_conf_keys[] = {
    {S, "realm", CK_CONF_TOP},          {S, "database", CK_CONF_TOP},
    {S, "stash", CK_CONF_TOP},          {S, "listen", CK_CONF_TOP},
    {S, "tls_identity", CK_CONF_TOP},   {S, "tls_password_file", CK_CONF_TOP},
    {S, "keytab", CK_CONF_TOP},         {S, "acl_file", CK_CONF_TOP},
    {S, "kdc", CK_CONF_TOP},            {S, "session_lifetime", CK_CONF_TOP},
    {S, "max_sessions", CK_CONF_TOP},   {S, "fqdn_listen", CK_CONF_TOP},
    {S, "devchan_listen", CK_CONF_TOP}, {S, "ca_cert", CK_CONF_TOP},
    {S, "ca_key", CK_CONF_TOP},         {S, "ca_password_file", CK_CONF_TOP},
    {S, "ca_chain", CK_CONF_TOP},       {S, "phone_id_key", CK_CONF_TOP},
    {S, "cert_days", CK_CONF_TOP},      {S, "repair_cert_hours", CK_CONF_TOP},
    {S, "fqdn_domain", CK_CONF_TOP},    {S, "webhook", CK_CONF_TOP},
    {S, "pool", CK_CONF_TOP},           {S, "csr_numbers", CK_CONF_TOP},
    {S, "clockskew", CK_CONF_TOP},      {S, "log", CK_CONF_TOP},
    {S, "workers", CK_CONF_TOP},
    {S, "log_level", CK_CONF_TOP},      {S, "pid_file", CK_CONF_TOP},
    {S, "user", CK_CONF_TOP},           {S, "max_body", CK_CONF_TOP},
    {S, "max_connections", CK_CONF_TOP}, {S, "timeout", CK_CONF_TOP},
};
const size_t prov_conf_n_keys = sizeof(prov_conf_keys) / sizeof(prov_conf_keys[0]);

void
prov_config_init(struct prov_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->log.dest = CK_LOG_STDERR;
    cfg->log.level = -1;
    cfg->log_level = LOG_INFO;
    cfg->session_lifetime = PROV_DEFAULT_SESSION_LIFETIME;
    cfg->max_sessions = PROV_DEFAULT_MAX_SESSIONS;
    cfg->workers = PROV_DEFAULT_WORKERS;
    cfg->cert_days = PROV_DEFAULT_CERT_DAYS;
    cfg->repair_cert_hours = PROV_DEFAULT_REPAIR_CERT_HOURS;
    cfg->clockskew = 300;
    cfg->max_body = PROV_DEFAULT_MAX_BODY;
    cfg->max_connections = PROV_DEFAULT_MAX_CONNECTIONS;
    cfg->timeout = PROV_DEFAULT_TIMEOUT;
}

/* This section's values (lib/daemon/conf.c). */
static int
dup_opt(const struct ck_profile *prof, const char *key, const char *flag, char **out)
{
    return ck_conf_dup(prof, S, key, flag, out);
}

static int
get_int(const struct ck_profile *prof, const char *key, int64_t min, int64_t max, int64_t *out)
{
    return ck_conf_get_int(prof, S, key, min, max, out);
}

static int
get_duration(const struct ck_profile *prof, const char *key, int64_t min, int64_t max,
             int64_t *out)
{
    return ck_conf_get_duration(prof, S, key, min, max, out);
}

static int
get_list(const struct ck_profile *prof, const char *key, char **out, size_t max, size_t *n_out)
{
    return ck_conf_get_list(prof, S, key, out, max, n_out);
}

/* Splits "a b c" (blank-separated) into exactly n words copied into out[]: 0, 1 when the
 * value has another shape, or an error. */
static int
split_words(const char *v, char **out[], size_t n)
{
    const char *p = v;

    for (size_t i = 0; i < n; i++) {
        size_t len;
        while (*p == ' ' || *p == '\t')
            p++;
        len = strcspn(p, " \t");
        if (len == 0)
            return 1;
        if ((*out[i] = strndup(p, len)) == NULL)
            return ck_error_set(CK_ERR_NOMEM, "configuration");
        p += len;
    }
    while (*p == ' ' || *p == '\t')
        p++;
    return *p == '\0' ? 0 : 1;
}

/* webhook = NAME URL SECRET_FILE; pool = SEGMENT FIRST LAST. */
static int
get_webhooks_pools(const struct ck_profile *prof, struct prov_config *cfg)
{
    const char *vals[PROV_MAX_POOLS + 1];
    size_t n;
    int rc;

    n = ck_profile_get_all(prof, vals, PROV_MAX_WEBHOOKS + 1, S, "webhook", NULL);
    if (n > PROV_MAX_WEBHOOKS)
        return ck_conf_error(prof, CK_ERR_CONFIG, "at most 8 webhooks", S, "webhook", NULL);
    for (size_t i = 0; i < n; i++) {
        struct prov_webhook *w = &cfg->webhooks[cfg->n_webhooks++];
        char **parts[3] = {&w->name, &w->url, &w->secret_file};
        if ((rc = split_words(vals[i], parts, 3)) != 0 || !prov_token_ok(w->name, 63) ||
            (strncmp(w->url, "http://", 7) != 0 && strncmp(w->url, "https://", 8) != 0))
            return rc < 0 ? rc
                   : ck_conf_error(prof, CK_ERR_CONFIG, "expected NAME http(s)://URL "
                                   "SECRET_FILE (NAME: letters, digits, _ -)", S, "webhook",
                                   NULL);
        for (size_t k = 0; k + 1 < cfg->n_webhooks; k++)
            if (strcmp(cfg->webhooks[k].name, w->name) == 0)
                return ck_conf_error(prof, CK_ERR_CONFIG, "webhook name given twice", S,
                                     "webhook", NULL);
    }
    n = ck_profile_get_all(prof, vals, PROV_MAX_POOLS + 1, S, "pool", NULL);
    if (n > PROV_MAX_POOLS)
        return ck_conf_error(prof, CK_ERR_CONFIG, "at most 64 pools", S, "pool", NULL);
    for (size_t i = 0; i < n; i++) {
        struct prov_pool *p = &cfg->pools[cfg->n_pools++];
        char **parts[3] = {&p->segment, &p->first, &p->last};
        if ((rc = split_words(vals[i], parts, 3)) != 0 ||
            !prov_token_ok(p->segment, CK_PROV_SEGMENT_MAX) ||
            !prov_digits_ok(p->first, CK_PROV_NUMBER_MAX) ||
            !prov_digits_ok(p->last, CK_PROV_NUMBER_MAX) || strlen(p->first) != strlen(p->last) ||
            strcmp(p->first, p->last) > 0)
            return rc < 0 ? rc
                   : ck_conf_error(prof, CK_ERR_CONFIG, "expected SEGMENT FIRST LAST (numbers "
                                   "of the same length, FIRST <= LAST)", S, "pool", NULL);
    }
    return 0;
}

int
prov_config_load(const struct ck_daemon_opts *o, struct prov_config *cfg)
{
    const char *path = o != NULL && o->config != NULL ? o->config : PROV_DEFAULT_CONFIG;
    struct ck_profile *prof = NULL;
    int64_t i;
    int rc;

    prov_config_init(cfg);
    cfg->opts = o;
    if ((cfg->config_path = strdup(path)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "configuration");
    if ((rc = ck_profile_load(path, &prof)) != 0)
        return ck_error_set(rc, "%s", ck_error_context());
    if ((rc = ck_conf_validate(prof, prov_conf_keys, prov_conf_n_keys)) != 0)
        goto out;
    if ((rc = dup_opt(prof, "realm", NULL, &cfg->realm)) != 0 ||
        (rc = dup_opt(prof, "database", o != NULL ? o->db : NULL, &cfg->database)) != 0 ||
        (rc = dup_opt(prof, "stash", o != NULL ? o->stash : NULL, &cfg->stash)) != 0 ||
        (rc = dup_opt(prof, "tls_identity", NULL, &cfg->tls_identity)) != 0 ||
        (rc = dup_opt(prof, "tls_password_file", NULL, &cfg->tls_password_file)) != 0 ||
        (rc = dup_opt(prof, "keytab", NULL, &cfg->keytab)) != 0 ||
        (rc = dup_opt(prof, "acl_file", NULL, &cfg->acl_file)) != 0 ||
        (rc = dup_opt(prof, "kdc", NULL, &cfg->kdc)) != 0 ||
        (rc = dup_opt(prof, "ca_cert", NULL, &cfg->ca_cert)) != 0 ||
        (rc = dup_opt(prof, "ca_key", NULL, &cfg->ca_key)) != 0 ||
        (rc = dup_opt(prof, "ca_password_file", NULL, &cfg->ca_password_file)) != 0 ||
        (rc = dup_opt(prof, "ca_chain", NULL, &cfg->ca_chain)) != 0 ||
        (rc = dup_opt(prof, "phone_id_key", NULL, &cfg->phone_id_key)) != 0 ||
        (rc = dup_opt(prof, "fqdn_domain", NULL, &cfg->fqdn_domain)) != 0 ||
        (rc = dup_opt(prof, "csr_numbers", NULL, &cfg->csr_numbers)) != 0 ||
        (rc = dup_opt(prof, "pid_file", o != NULL ? o->pid_file : NULL, &cfg->pid_file)) != 0 ||
        (rc = dup_opt(prof, "user", o != NULL ? o->user : NULL, &cfg->user)) != 0)
        goto out;
    if (cfg->database == NULL) {
        rc = ck_error_set(CK_ERR_CONFIG, "%s: [prov] database (or --db) is required", path);
        goto out;
    }
    if ((rc = ck_conf_require(prof, path, S,
                              (const char *const[]){"keytab", "acl_file", "ca_cert", "ca_key",
                                                    "phone_id_key", "fqdn_domain", NULL})) != 0 ||
        (rc = ck_conf_check_database(path, S, cfg->database)) != 0)
        goto out;
    if (cfg->tls_password_file != NULL && cfg->tls_identity == NULL) {
        rc = ck_conf_error(prof, CK_ERR_CONFIG, "needs tls_identity", S, "tls_password_file",
                           NULL);
        goto out;
    }
    if ((rc = get_list(prof, "listen", cfg->listen, PROV_MAX_LISTEN, &cfg->n_listen)) != 0 ||
        (rc = get_list(prof, "fqdn_listen", cfg->fqdn_listen, PROV_MAX_LISTEN,
                       &cfg->n_fqdn_listen)) != 0 ||
        (rc = get_list(prof, "devchan_listen", cfg->devchan_listen, PROV_MAX_LISTEN,
                       &cfg->n_devchan_listen)) != 0 ||
        (rc = get_webhooks_pools(prof, cfg)) != 0 || (rc = ck_conf_get_log(prof, S, o, &cfg->log, &cfg->log_level)) != 0)
        goto out;
    if ((rc = get_duration(prof, "session_lifetime", 60, 86400, &cfg->session_lifetime)) < 0 ||
        (rc = get_duration(prof, "clockskew", 1, 3600, &cfg->clockskew)) < 0 ||
        (rc = get_int(prof, "cert_days", 1, 3650, &cfg->cert_days)) < 0 ||
        (rc = get_int(prof, "repair_cert_hours", 1, 24 * 90, &cfg->repair_cert_hours)) < 0)
        goto out;
    if ((rc = get_int(prof, "max_sessions", 1, 100000, &i)) < 0)
        goto out;
    if (rc == 0)
        cfg->max_sessions = (size_t)i;
    if ((rc = get_int(prof, "workers", 1, PROV_MAX_WORKERS, &i)) < 0)
        goto out;
    if (rc == 0)
        cfg->workers = (size_t)i;
    if ((rc = ck_conf_get_http_limits(prof, S, PROV_MAX_MAX_BODY, &cfg->max_body,
                                      &cfg->max_connections, &cfg->timeout)) != 0)
        goto out;
    rc = 0;
out:
    ck_profile_free(prof);
    return rc;
}

void
prov_config_free(struct prov_config *cfg)
{
    if (cfg == NULL)
        return;
    free(cfg->config_path);
    free(cfg->database);
    free(cfg->stash);
    free(cfg->realm);
    for (size_t i = 0; i < cfg->n_listen; i++)
        free(cfg->listen[i]);
    for (size_t i = 0; i < cfg->n_fqdn_listen; i++)
        free(cfg->fqdn_listen[i]);
    for (size_t i = 0; i < cfg->n_devchan_listen; i++)
        free(cfg->devchan_listen[i]);
    free(cfg->tls_identity);
    free(cfg->tls_password_file);
    free(cfg->keytab);
    free(cfg->acl_file);
    free(cfg->kdc);
    free(cfg->ca_cert);
    free(cfg->ca_key);
    free(cfg->ca_password_file);
    free(cfg->ca_chain);
    free(cfg->phone_id_key);
    free(cfg->fqdn_domain);
    for (size_t i = 0; i < PROV_MAX_WEBHOOKS; i++) {
        free(cfg->webhooks[i].name);
        free(cfg->webhooks[i].url);
        free(cfg->webhooks[i].secret_file);
    }
    for (size_t i = 0; i < PROV_MAX_POOLS; i++) {
        free(cfg->pools[i].segment);
        free(cfg->pools[i].first);
        free(cfg->pools[i].last);
    }
    free(cfg->csr_numbers);
    free(cfg->pid_file);
    free(cfg->user);
    memset(cfg, 0, sizeof(*cfg));
}
