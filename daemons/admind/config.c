/* cablekey-admind configuration: one [admind] section in krb5 profile syntax. Unknown sections
 * and keys are errors, never warnings: a misspelt "listen" must not leave the daemon on a
 * default the operator did not choose. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "admind.h"
#include "cablekey/error.h"
#include "cablekey/profile.h"
#include "cablekey/util.h"

static const char *const known_keys[] = {
    "realm", "database", "stash", "keytab", "acl_file", "listen", "tls_certificate", "tls_key",
    "pid_file", "front_user", "log", "log_level", "max_body", "max_connections", "timeout", NULL,
};

static int
dup_opt(const struct ck_profile *prof, const char *key, char **out)
{
    const char *vals[2];
    size_t n = ck_profile_get_all(prof, vals, 2, "admind", key, NULL);

    if (n == 0)
        return 0;
    if (n > 1)
        return ck_error_set(CK_ERR_CONFIG, "[admind] %s is given %zu times", key, n);
    if (vals[0][0] == '\0')
        return ck_error_set(CK_ERR_CONFIG, "[admind] %s is empty", key);
    if ((*out = strdup(vals[0])) == NULL)
        return CK_ERR_NOMEM;
    return 0;
}

static int
set_log(struct admind_config *cfg, const char *spec)
{
    if (strcasecmp(spec, "STDERR") == 0) {
        cfg->log_dest = CK_LOG_STDERR;
        return 0;
    }
    if (strcasecmp(spec, "SYSLOG") == 0) {
        cfg->log_dest = CK_LOG_SYSLOG;
        return 0;
    }
    if (strncasecmp(spec, "FILE:", 5) == 0)
        spec += 5;
    if (spec[0] != '/')
        return ck_error_set(CK_ERR_CONFIG, "[admind] log = \"%s\": use STDERR, SYSLOG or "
                            "FILE:/absolute/path", spec);
    if ((cfg->log_path = strdup(spec)) == NULL)
        return CK_ERR_NOMEM;
    cfg->log_dest = CK_LOG_FILE;
    return 0;
}

static int
get_uint(const struct ck_profile *prof, const char *key, int64_t min, int64_t max, int64_t *out)
{
    const char *v = ck_profile_get(prof, "admind", key, NULL);

    if (v == NULL)
        return 1;
    if (ck_parse_int64(v, min, max, out) != 0)
        return ck_error_set(CK_ERR_CONFIG, "[admind] %s = \"%s\": expected %lld..%lld", key, v,
                            (long long)min, (long long)max);
    return 0;
}

int
admind_config_load(const char *path, struct admind_config *cfg)
{
    struct ck_profile *prof = NULL;
    const char *names[64];
    const char *v;
    size_t n;
    int64_t i;
    int rc;

    memset(cfg, 0, sizeof(*cfg));
    cfg->log_dest = CK_LOG_STDERR;
    cfg->log_level = LOG_INFO;
    cfg->max_body = ADMIND_DEFAULT_MAX_BODY;
    cfg->max_connections = ADMIND_DEFAULT_MAX_CONNECTIONS;
    cfg->timeout = ADMIND_DEFAULT_TIMEOUT;
    if ((cfg->config_path = strdup(path)) == NULL)
        return CK_ERR_NOMEM;
    if ((rc = ck_profile_load(path, &prof)) != 0)
        return ck_error_set(rc, "%s", ck_error_context());
    n = ck_profile_subsections(prof, names, 64, NULL);
    for (size_t k = 0; k < n && k < 64; k++) {
        if (strcmp(names[k], "admind") != 0) {
            rc = ck_error_set(CK_ERR_CONFIG, "%s: unknown section [%s] (only [admind])", path,
                              names[k]);
            goto out;
        }
    }
    n = ck_profile_subsections(prof, names, 64, "admind", NULL);
    if (n > 0) {
        rc = ck_error_set(CK_ERR_CONFIG, "%s: [admind] %s = { ... }: no subsections here",
                          path, names[0]);
        goto out;
    }
    n = ck_profile_relations(prof, names, 64, "admind", NULL);
    for (size_t k = 0; k < n && k < 64; k++) {
        bool known = false;
        for (size_t j = 0; known_keys[j] != NULL && !known; j++)
            known = strcmp(names[k], known_keys[j]) == 0;
        if (!known) {
            rc = ck_error_set(CK_ERR_CONFIG, "%s: [admind] unknown key \"%s\"", path, names[k]);
            goto out;
        }
    }
    if ((rc = dup_opt(prof, "realm", &cfg->realm)) != 0 ||
        (rc = dup_opt(prof, "database", &cfg->database)) != 0 ||
        (rc = dup_opt(prof, "stash", &cfg->stash)) != 0 ||
        (rc = dup_opt(prof, "keytab", &cfg->keytab)) != 0 ||
        (rc = dup_opt(prof, "acl_file", &cfg->acl_file)) != 0 ||
        (rc = dup_opt(prof, "tls_certificate", &cfg->tls_certificate)) != 0 ||
        (rc = dup_opt(prof, "tls_key", &cfg->tls_key)) != 0 ||
        (rc = dup_opt(prof, "pid_file", &cfg->pid_file)) != 0 ||
        (rc = dup_opt(prof, "front_user", &cfg->front_user)) != 0)
        goto out;
    for (const char *const *req = (const char *const[]){"realm", "database", "keytab",
                                                        "acl_file", NULL};
         *req != NULL; req++) {
        if (ck_profile_get(prof, "admind", *req, NULL) == NULL) {
            rc = ck_error_set(CK_ERR_CONFIG, "%s: [admind] %s is required", path, *req);
            goto out;
        }
    }
    if ((cfg->tls_certificate == NULL) != (cfg->tls_key == NULL)) {
        rc = ck_error_set(CK_ERR_CONFIG, "%s: [admind] tls_certificate and tls_key go together",
                          path);
        goto out;
    }
    n = ck_profile_get_all(prof, names, ADMIND_MAX_LISTEN + 1, "admind", "listen", NULL);
    if (n > ADMIND_MAX_LISTEN) {
        rc = ck_error_set(CK_ERR_CONFIG, "%s: more than %d listen addresses", path,
                          ADMIND_MAX_LISTEN);
        goto out;
    }
    for (size_t k = 0; k < n; k++)
        if ((cfg->listen[cfg->n_listen++] = strdup(names[k])) == NULL) {
            rc = CK_ERR_NOMEM;
            goto out;
        }
    if ((v = ck_profile_get(prof, "admind", "log", NULL)) != NULL && (rc = set_log(cfg, v)) != 0)
        goto out;
    if ((v = ck_profile_get(prof, "admind", "log_level", NULL)) != NULL &&
        (cfg->log_level = ck_log_level_from_name(v)) < 0) {
        rc = ck_error_set(CK_ERR_CONFIG, "%s: [admind] log_level \"%s\": unknown level", path, v);
        goto out;
    }
    if ((rc = get_uint(prof, "max_body", 1024, ADMIND_MAX_MAX_BODY, &i)) < 0)
        goto out;
    if (rc == 0)
        cfg->max_body = (size_t)i;
    if ((rc = get_uint(prof, "max_connections", 1, 1024, &i)) < 0)
        goto out;
    if (rc == 0)
        cfg->max_connections = (unsigned)i;
    if ((v = ck_profile_get(prof, "admind", "timeout", NULL)) != NULL) {
        if (ck_parse_duration(v, &i) != 0 || i < 1 || i > 3600) {
            rc = ck_error_set(CK_ERR_CONFIG, "%s: [admind] timeout \"%s\": 1s..1h", path, v);
            goto out;
        }
        cfg->timeout = (unsigned)i;
    }
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
    free(cfg->front_user);
    free(cfg->log_path);
    memset(cfg, 0, sizeof(*cfg));
}
