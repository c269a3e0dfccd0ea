/* cablekey-admind configuration: one [admind] section in krb5 profile syntax, validated against
 * the key table below by the daemon layer (lib/daemon): an unknown section or key is an error with
 * its file and line, never a warning, because a misspelt "listen" must not leave the daemon on a
 * default the operator did not choose. The common flags (--log, --log-level, --pid-file, --user)
 * override their keys. */
#include <stdlib.h>
#include <string.h>

#include "admind.h"
#include "cablekey/error.h"
#include "cablekey/profile.h"
#include "cablekey/store.h"
#include "cablekey/util.h"

#define S "admind"

static const struct ck_conf_key schema[] = {
    {S, "realm", CK_CONF_TOP},           {S, "database", CK_CONF_TOP},
    {S, "stash", CK_CONF_TOP},           {S, "keytab", CK_CONF_TOP},
    {S, "acl_file", CK_CONF_TOP},        {S, "listen", CK_CONF_TOP},
    {S, "tls_certificate", CK_CONF_TOP}, {S, "tls_key", CK_CONF_TOP},
    {S, "pid_file", CK_CONF_TOP},        {S, "user", CK_CONF_TOP},
    {S, "front_user", CK_CONF_TOP},      {S, "log", CK_CONF_TOP},
    {S, "log_level", CK_CONF_TOP},       {S, "max_body", CK_CONF_TOP},
    {S, "max_connections", CK_CONF_TOP}, {S, "timeout", CK_CONF_TOP},
};

/* This section's values (lib/daemon/conf.c). */
static int
dup_opt(const struct ck_profile *prof, const char *key, const char *flag, char **out)
{
    return ck_conf_dup(prof, S, key, flag, out);
}

int
admind_config_load(const struct ck_daemon_opts *o, struct admind_config *cfg)
{
    const char *path = o->config != NULL ? o->config : ADMIND_DEFAULT_CONFIG;
    struct ck_profile *prof = NULL;
    int rc;

    memset(cfg, 0, sizeof(*cfg));
    cfg->opts = o;
    cfg->log.dest = CK_LOG_STDERR;
    cfg->log.level = -1;
    cfg->log_level = LOG_INFO;
    cfg->max_body = ADMIND_DEFAULT_MAX_BODY;
    cfg->max_connections = ADMIND_DEFAULT_MAX_CONNECTIONS;
    cfg->timeout = ADMIND_DEFAULT_TIMEOUT;
    if ((cfg->config_path = strdup(path)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "configuration");
    if ((rc = ck_profile_load(path, &prof)) != 0)
        return ck_error_set(rc, "%s", ck_error_context());
    if ((rc = ck_conf_validate(prof, schema, sizeof(schema) / sizeof(schema[0]))) != 0)
        goto out;
    if ((rc = dup_opt(prof, "realm", NULL, &cfg->realm)) != 0 ||
        (rc = dup_opt(prof, "database", o->db, &cfg->database)) != 0 ||
        (rc = dup_opt(prof, "stash", o->stash, &cfg->stash)) != 0 ||
        (rc = dup_opt(prof, "keytab", NULL, &cfg->keytab)) != 0 ||
        (rc = dup_opt(prof, "acl_file", NULL, &cfg->acl_file)) != 0 ||
        (rc = dup_opt(prof, "tls_certificate", NULL, &cfg->tls_certificate)) != 0 ||
        (rc = dup_opt(prof, "tls_key", NULL, &cfg->tls_key)) != 0 ||
        (rc = dup_opt(prof, "pid_file", o->pid_file, &cfg->pid_file)) != 0 ||
        (rc = dup_opt(prof, "user", o->user, &cfg->user)) != 0 ||
        (rc = dup_opt(prof, "front_user", NULL, &cfg->front_user)) != 0)
        goto out;
    /* --db stands for the database key. */
    if ((rc = ck_conf_require(prof, path, S,
                              o->db != NULL
                                  ? (const char *const[]){"realm", "keytab", "acl_file", NULL}
                                  : (const char *const[]){"realm", "database", "keytab",
                                                          "acl_file", NULL})) != 0 ||
        (rc = ck_conf_check_database(path, S, cfg->database)) != 0)
        goto out;
    if ((cfg->tls_certificate == NULL) != (cfg->tls_key == NULL)) {
        rc = ck_conf_error(prof, CK_ERR_CONFIG, "tls_certificate and tls_key go together", S,
                           cfg->tls_key == NULL ? "tls_certificate" : "tls_key", NULL);
        goto out;
    }
    if ((rc = ck_conf_get_list(prof, S, "listen", cfg->listen, ADMIND_MAX_LISTEN,
                               &cfg->n_listen)) != 0)
        goto out;
    if ((rc = ck_conf_get_log(prof, S, o, &cfg->log, &cfg->log_level)) != 0)
        goto out;
    if ((rc = ck_conf_get_http_limits(prof, S, ADMIND_MAX_MAX_BODY, &cfg->max_body,
                                      &cfg->max_connections, &cfg->timeout)) != 0)
        goto out;
    rc = 0;
out:
    ck_profile_free(prof);
    return rc;
}

void
admind_config_free(struct admind_config *cfg)
{
    if (cfg == NULL)
        return;
    free(cfg->config_path);
    free(cfg->realm);
    free(cfg->database);
    free(cfg->stash);
    free(cfg->keytab);
    free(cfg->acl_file);
    for (size_t i = 0; i < cfg->n_listen; i++)
        free(cfg->listen[i]);
    free(cfg->tls_certificate);
    free(cfg->tls_key);
    free(cfg->pid_file);
    free(cfg->user);
    free(cfg->front_user);
    memset(cfg, 0, sizeof(*cfg));
}
