/* Common daemon flags and configuration that fails closed (see include/cablekey/daemon.h).
 *
 * Why a table and a validation pass rather than warnings from each reader: a typo in a section
 * name ([kdcdefault]) or a key (kdc_listem) used to leave the daemon on its defaults, which for a
 * KDC means every address. One table of known keys, checked before anything is read, makes every
 * such mistake an error that names the file and line. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/daemon.h"
#include "cablekey/error.h"
#include "cablekey/store.h"
#include "cablekey/util.h"

bool
ck_daemon_opt(struct ck_daemon_opts *o, int c, const char *arg)
{
    switch (c) {
    case 'c': o->config = arg; return true;
    case CK_DAEMON_OPT_CHECK: o->check = true; return true;
    case CK_DAEMON_OPT_LOG: o->log = arg; return true;
    case CK_DAEMON_OPT_LOG_LEVEL: o->log_level = arg; return true;
    case CK_DAEMON_OPT_PID_FILE: o->pid_file = arg; return true;
    case CK_DAEMON_OPT_USER: o->user = arg; return true;
    case CK_DAEMON_OPT_VERSION: o->version = true; return true;
    case 'h': o->help = true; return true;
    default: return false;
    }
}

void
ck_daemon_usage_store(FILE *out)
{
    fprintf(out, "      --db PATH|URI       the realm store: PATH or sqlite:PATH (SQLite), or\n"
                 "                          postgresql://HOST/DB (password from PGPASSFILE)\n"
                 "      --stash FILE        master key stash (default for SQLite: PATH.stash)\n");
}

int
ck_daemon_parse_store_args(int argc, char **argv, struct ck_daemon_opts *o, const char *prog,
                           void (*usage)(FILE *out))
{
    enum { OPT_DB = 0x200, OPT_STASH };
    static const struct option longopts[] = {
        CK_DAEMON_LONGOPTS,
        {"db", required_argument, NULL, OPT_DB},
        {"stash", required_argument, NULL, OPT_STASH},
        {NULL, 0, NULL, 0},
    };
    int c;

    memset(o, 0, sizeof(*o));
    while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        if (c == OPT_DB) {
            o->db = optarg;
        } else if (c == OPT_STASH) {
            o->stash = optarg;
        } else if (!ck_daemon_opt(o, c, optarg)) {
            usage(stderr);
            return 2;
        }
    }
    return ck_daemon_opts_finish(o, prog, usage, argc, argv, optind);
}

void
ck_daemon_usage_common(FILE *out, const char *default_config)
{
    fprintf(out,
            "  -c, --config FILE       configuration (default %s)\n"
            "      --check             check what a start needs (configuration, log, listen\n"
            "                          addresses, pid file, keys), print it, then exit\n"
            "      --log DEST          stderr, syslog, console (= stderr) or a file path\n"
            "      --log-level LEVEL   err, warning, notice, info or debug\n"
            "      --pid-file FILE     write the process id here\n"
            "      --user NAME         after binding the sockets, run as this user (who must\n"
            "                          be able to read the daemon's keys and data)\n"
            "      --version           print the version\n"
            "  -h, --help              this text\n",
            default_config);
}

int
ck_daemon_opts_finish(const struct ck_daemon_opts *o, const char *prog, void (*usage)(FILE *out),
                      int argc, char **argv, int first_operand)
{
    if (o->version) {
        printf("%s 0.1.0\n", prog);
        return 0;
    }
    if (o->help) {
        usage(stdout);
        return 0;
    }
    if (first_operand < argc) {
        fprintf(stderr, "%s: unexpected argument \"%s\"\n", prog, argv[first_operand]);
        return 2;
    }
    return -1;
}

void
ck_daemon_print_error(const char *prog, const char *what)
{
    const char *ctx = ck_error_context();

    fprintf(stderr, "%s: %s%s%s\n", prog, what, ctx[0] != '\0' ? ": " : "", ctx);
}

/* ---- typed values of a flat section ------------------------------------------------------ */

int
ck_conf_dup(const struct ck_profile *prof, const char *section, const char *key,
            const char *flag, char **out)
{
    const char *v = NULL;
    int rc;

    if ((rc = ck_conf_get_one(prof, section, key, &v)) != 0)
        return rc;
    if (flag != NULL)
        v = flag;
    if (v != NULL && (*out = strdup(v)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "configuration");
    return 0;
}

int
ck_conf_get_int(const struct ck_profile *prof, const char *section, const char *key,
                int64_t min, int64_t max, int64_t *out)
{
    const char *v = NULL;
    char msg[64];
    int rc;

    if ((rc = ck_conf_get_one(prof, section, key, &v)) != 0)
        return rc;
    if (v == NULL)
        return 1;
    if (ck_parse_int64(v, min, max, out) != 0) {
        snprintf(msg, sizeof(msg), "expected %lld..%lld", (long long)min, (long long)max);
        return ck_conf_error(prof, CK_ERR_CONFIG, msg, section, key, NULL);
    }
    return 0;
}

int
ck_conf_get_duration(const struct ck_profile *prof, const char *section, const char *key,
                     int64_t min, int64_t max, int64_t *out)
{
    const char *v = NULL;
    char msg[64];
    int64_t d;
    int rc;

    if ((rc = ck_conf_get_one(prof, section, key, &v)) != 0)
        return rc;
    if (v == NULL)
        return 1;
    if (ck_parse_duration(v, &d) != 0 || d < min || d > max) {
        snprintf(msg, sizeof(msg), "expected a duration of %llds..%llds", (long long)min,
                 (long long)max);
        return ck_conf_error(prof, CK_ERR_CONFIG, msg, section, key, NULL);
    }
    *out = d;
    return 0;
}

int
ck_conf_get_list(const struct ck_profile *prof, const char *section, const char *key,
                 char **out, size_t max, size_t *n_out)
{
    const char **vals;
    size_t n;
    int rc = 0;

    if ((vals = calloc(max + 1, sizeof(*vals))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "configuration");
    n = ck_profile_get_all(prof, vals, max + 1, section, key, NULL);
    if (n > max) {
        rc = ck_conf_error(prof, CK_ERR_CONFIG, "given too many times", section, key, NULL);
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        if ((out[(*n_out)++] = strdup(vals[i])) == NULL) {
            rc = ck_error_set(CK_ERR_NOMEM, "configuration");
            goto out;
        }
out:
    free(vals);
    return rc;
}

int
ck_conf_get_http_limits(const struct ck_profile *prof, const char *section,
                        size_t max_max_body, size_t *max_body, unsigned *max_connections,
                        unsigned *timeout)
{
    int64_t i;
    int rc;

    if ((rc = ck_conf_get_int(prof, section, "max_body", 1024, (int64_t)max_max_body, &i)) < 0)
        return rc;
    if (rc == 0)
        *max_body = (size_t)i;
    if ((rc = ck_conf_get_int(prof, section, "max_connections", 1, 1024, &i)) < 0)
        return rc;
    if (rc == 0)
        *max_connections = (unsigned)i;
    if ((rc = ck_conf_get_duration(prof, section, "timeout", 1, 3600, &i)) < 0)
        return rc;
    if (rc == 0)
        *timeout = (unsigned)i;
    return 0;
}

int
ck_conf_require(const struct ck_profile *prof, const char *path, const char *section,
                const char *const *keys)
{
    for (; *keys != NULL; keys++)
        if (ck_profile_get(prof, section, *keys, NULL) == NULL)
            return ck_error_set(CK_ERR_CONFIG, "%s: [%s] %s is required", path, section, *keys);
    return 0;
}

int
ck_conf_check_database(const char *path, const char *section, const char *database)
{
    ck_store_uri u;
    int rc;

    if ((rc = ck_store_uri_parse(database, &u)) != 0)
        return ck_error_set(rc, "%s: [%s] database (--db): %s", path, section,
                            ck_error_context());
    ck_store_uri_clear(&u);
    return 0;
}

/* ---- schema ----------------------------------------------------------------------------- */

/* Levenshtein distance, capped: only "close enough to suggest" matters. */
static size_t
distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), prev[65], cur[65];

    if (la > 64 || lb > 64)
        return 99;
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, (lb + 1) * sizeof(size_t));
    }
    return prev[lb];
}

struct validate {
    const struct ck_conf_key *keys;
    size_t n;
};

static bool
section_known(const struct validate *v, const char *section, unsigned *where)
{
    bool known = false;

    *where = 0;
    for (size_t i = 0; i < v->n; i++) {
        if (strcmp(v->keys[i].section, section) == 0) {
            known = true;
            *where |= v->keys[i].where;
        }
    }
    return known;
}

static bool
key_known(const struct validate *v, const char *section, const char *name, unsigned where)
{
    for (size_t i = 0; i < v->n; i++)
        if ((v->keys[i].where & where) && strcmp(v->keys[i].section, section) == 0 &&
            strcmp(v->keys[i].name, name) == 0)
            return true;
    return false;
}

/* " (did you mean X?)" for the nearest name within distance 2, or "". */
static void
suggest(const struct validate *v, const char *section, const char *name, unsigned where,
        char *buf, size_t size)
{
    const char *best = NULL;
    size_t best_d = 3;

    buf[0] = '\0';
    for (size_t i = 0; i < v->n; i++) {
        const char *cand = section == NULL ? v->keys[i].section : v->keys[i].name;
        size_t d;

        if (section != NULL &&
            (strcmp(v->keys[i].section, section) != 0 || !(v->keys[i].where & where)))
            continue;
        d = distance(name, cand);
        if (d < best_d) {
            best_d = d;
            best = cand;
        }
    }
    if (best != NULL)
        snprintf(buf, size, section == NULL ? " (did you mean [%s]?)" : " (did you mean %s?)",
                 best);
}

static int
validate_node(const char *const *path, size_t depth, const char *name, const char *value,
              const char *file, int line, void *arg)
{
    const struct validate *v = arg;
    char hint[128];
    unsigned where;

    if (depth == 0) {
        if (!section_known(v, name, &where)) {
            suggest(v, NULL, name, 0, hint, sizeof(hint));
            return ck_error_set(CK_ERR_CONFIG, "%s:%d: unknown section [%s]%s", file, line,
                                name, hint);
        }
        return 0;
    }
    section_known(v, path[0], &where);
    if (depth == 1 && value == NULL) {
        if (!(where & CK_CONF_SUB))
            return ck_error_set(CK_ERR_CONFIG, "%s:%d: [%s] takes no subsection (\"%s = {\")",
                                file, line, path[0], name);
        return 0;
    }
    if (depth == 1) {
        if (!key_known(v, path[0], name, CK_CONF_TOP)) {
            suggest(v, path[0], name, CK_CONF_TOP, hint, sizeof(hint));
            return ck_error_set(CK_ERR_CONFIG, "%s:%d: unknown key \"%s\" in [%s]%s", file,
                                line, name, path[0], hint);
        }
        return 0;
    }
    if (depth == 2 && value != NULL) {
        if (!key_known(v, path[0], name, CK_CONF_SUB)) {
            suggest(v, path[0], name, CK_CONF_SUB, hint, sizeof(hint));
            return ck_error_set(CK_ERR_CONFIG, "%s:%d: unknown key \"%s\" in [%s] %s%s", file,
                                line, name, path[0], path[1], hint);
        }
        return 0;
    }
    return ck_error_set(CK_ERR_CONFIG, "%s:%d: unexpected subsection \"%s\" in [%s] %s", file,
                        line, name, path[0], path[1]);
}

int
ck_conf_validate(const struct ck_profile *prof, const struct ck_conf_key *keys, size_t n)
{
    struct validate v = {keys, n};

    return ck_profile_walk(prof, validate_node, &v);
}

int
ck_conf_error(const struct ck_profile *prof, int code, const char *msg, ...)
{
    const char *path[4] = {NULL, NULL, NULL, NULL}, *file = NULL, *value = NULL, *s;
    size_t n = 0;
    int line = 0;
    va_list ap;

    va_start(ap, msg);
    while ((s = va_arg(ap, const char *)) != NULL && n < 3)
        path[n++] = s;
    va_end(ap);
    if (n == 2)
        value = ck_profile_get_loc(prof, &file, &line, path[0], path[1], NULL);
    else if (n == 3)
        value = ck_profile_get_loc(prof, &file, &line, path[0], path[1], path[2], NULL);
    if (n < 2)
        return ck_error_set(code, "%s", msg);
    if (file != NULL)
        return ck_error_set(code, "%s:%d: %s = \"%s\": %s", file, line, path[n - 1],
                            value != NULL ? value : "", msg);
    return ck_error_set(code, "%s: %s", path[n - 1], msg);
}

int
ck_conf_get_one(const struct ck_profile *prof, const char *section, const char *key,
                const char **out)
{
    const char *vals[2];
    size_t n = ck_profile_get_all(prof, vals, 2, section, key, NULL);

    *out = NULL;
    if (n == 0)
        return 0;
    if (n > 1)
        return ck_conf_error(prof, CK_ERR_CONFIG, "given more than once", section, key, NULL);
    if (vals[0][0] == '\0')
        return ck_conf_error(prof, CK_ERR_CONFIG, "empty", section, key, NULL);
    *out = vals[0];
    return 0;
}

int
ck_conf_get_log(const struct ck_profile *prof, const char *section,
                const struct ck_daemon_opts *o, struct ck_log_target *log, int *level)
{
    const char *v = NULL;
    int rc;

    if (o != NULL && o->log != NULL) {
        if (ck_log_target_parse(o->log, true, log) != 0)
            return ck_error_set(CK_ERR_CONFIG, "--log: %s", ck_error_context());
    } else {
        if ((rc = ck_conf_get_one(prof, section, "log", &v)) != 0)
            return rc;
        if (v != NULL && ck_log_target_parse(v, v[0] == '/', log) != 0) {
            char why[512];
            ck_strlcpy(why, ck_error_context(), sizeof(why));
            return ck_conf_error(prof, CK_ERR_CONFIG, why, section, "log", NULL);
        }
    }
    if (o != NULL && o->log_level != NULL) {
        if ((*level = ck_log_level_from_name(o->log_level)) < 0)
            return ck_error_set(CK_ERR_CONFIG, "--log-level %s: expected err, warning, notice, "
                                "info or debug", o->log_level);
    } else {
        if ((rc = ck_conf_get_one(prof, section, "log_level", &v)) != 0)
            return rc;
        if (v != NULL && (*level = ck_log_level_from_name(v)) < 0)
            return ck_conf_error(prof, CK_ERR_CONFIG,
                                 "expected err, warning, notice, info or debug", section,
                                 "log_level", NULL);
        /* SYSLOG:LEVEL names the level when log_level does not. */
        if (v == NULL && log->level >= 0)
            *level = log->level;
    }
    return 0;
}
