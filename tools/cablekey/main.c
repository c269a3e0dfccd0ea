/* cablekey: the operator CLI. main() dispatches to one file per subcommand family; this file
 * also holds the small parsers and formatters they share. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cablekey/crypto.h"
#include "cablekey/error.h"
#include "cablekey/principal.h"
#include "cablekey/util.h"
#include "cli.h"

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} commands[] = {
    {"init", cli_init, "create a realm database and master key stash"},
    {"principal", cli_principal, "add, list, show, modify, rotate, delete principals"},
    {"keytab", cli_keytab, "export keys to MIT-format keytab files"},
    {"device", cli_device, "map device MAC addresses to principals, pin and revoke them"},
    {"pki", cli_pki, "certificate authority for PKINIT: init, issue-*, import, show, verify"},
    {"mta", cli_mta, "log in with a certificate (PKINIT) and write the TGT to a ccache"},
    {"db", cli_db, "back up, restore and check the database"},
    {"audit", cli_audit, "list the audit log of administrative changes; its retention"},
    {"policy", cli_policy, "password policies and lockout rules: add, modify, show, list, delete"},
};

static void
usage(FILE *f)
{
    fprintf(f, "usage: cablekey COMMAND [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\nRun 'cablekey COMMAND --help' for a command's options.\n"
               "init, principal and keytab accept --db FILE and --stash FILE (default: FILE.stash).\n");
}

int
cli_fail(const char *what, int err)
{
    const char *ctx = ck_error_context();

    fprintf(stderr, "cablekey: %s: %s\n", what, (ctx != NULL && *ctx) ? ctx : ck_strerror(err));
    return CLI_FAIL;
}

int
cli_usage_error(const char *what, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "cablekey: %s: ", what);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see 'cablekey %s --help')\n", what);
    return CLI_USAGE;
}

int
cli_parse_duration(const char *s, int64_t *out)
{
    int64_t total = 0;
    const char *p = s;

    if (s == NULL || *s == '\0')
        return ck_error_set(CK_ERR_INVAL, "empty duration");
    /* A bare number is seconds. */
    if (ck_parse_int64(s, 0, INT32_MAX, out) == 0)
        return 0;
    while (*p != '\0') {
        int64_t v = 0, mult;
        int digits = 0;

        while (isdigit((unsigned char)*p)) {
            v = v * 10 + (*p - '0');
            if (v > INT32_MAX || ++digits > 10)
                return ck_error_set(CK_ERR_INVAL, "duration '%s' too large", s);
            p++;
        }
        if (digits == 0)
            return ck_error_set(CK_ERR_INVAL, "bad duration '%s' (use e.g. 36000, 10h, 7d)", s);
        switch (*p) {
        case 'd': mult = 86400; break;
        case 'h': mult = 3600; break;
        case 'm': mult = 60; break;
        case 's': mult = 1; break;
        default:
            return ck_error_set(CK_ERR_INVAL, "bad duration '%s' (use e.g. 36000, 10h, 7d)", s);
        }
        p++;
        total += v * mult;
        if (total > INT32_MAX)
            return ck_error_set(CK_ERR_INVAL, "duration '%s' too large", s);
    }
    *out = total;
    return 0;
}

int
cli_parse_time(const char *s, int64_t *out)
{
    static const char *const formats[] = {"%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S",
                                          "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d"};
    struct tm tm;

    if (s == NULL || *s == '\0')
        return ck_error_set(CK_ERR_INVAL, "empty time");
    if (ck_parse_int64(s, 0, INT64_C(253402300799), out) == 0)
        return 0;
    for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
        const char *end;
        memset(&tm, 0, sizeof(tm));
        end = strptime(s, formats[i], &tm);
        if (end != NULL && *end == '\0') {
            time_t t = timegm(&tm);
            if (t < 0)
                break;
            *out = (int64_t)t;
            return 0;
        }
    }
    return ck_error_set(CK_ERR_INVAL,
                        "bad time '%s' (use epoch seconds, YYYY-MM-DD or 'YYYY-MM-DD HH:MM:SS', "
                        "UTC)", s);
}

int
cli_parse_enctypes(const char *s, int32_t *out, size_t max, size_t *n)
{
    char buf[512], *save = NULL, *tok;
    int ret;

    *n = 0;
    if (ck_strlcpy(buf, s, sizeof(buf)) >= sizeof(buf))
        return ck_error_set(CK_ERR_INVAL, "enctype list too long");
    for (tok = strtok_r(buf, ", ", &save); tok != NULL; tok = strtok_r(NULL, ", ", &save)) {
        int32_t e = 0;
        /* Accept MIT's "enctype:salttype" form for the normal salt only. */
        char *colon = strchr(tok, ':');
        if (colon != NULL) {
            if (strcmp(colon + 1, "normal") != 0)
                return ck_error_set(CK_ERR_UNSUPPORTED, "salt type '%s' (only normal)",
                                    colon + 1);
            *colon = '\0';
        }
        if ((ret = ck_enctype_from_name(tok, &e)) != 0 || !ck_enctype_is_supported(e))
            return ck_error_set(CK_ERR_UNSUPPORTED, "unknown or unsupported enctype '%s'", tok);
        for (size_t i = 0; i < *n; i++) {
            if (out[i] == e)
                return ck_error_set(CK_ERR_INVAL, "enctype '%s' listed twice", tok);
        }
        if (*n >= max)
            return ck_error_set(CK_ERR_LIMIT, "more than %zu enctypes", max);
        out[(*n)++] = e;
    }
    if (*n == 0)
        return ck_error_set(CK_ERR_INVAL, "empty enctype list");
    return 0;
}

void
cli_password_free(char *pw, size_t len)
{
    if (pw != NULL)
        ck_free_secret(pw, len + 1);
}

int
cli_read_password_stdin(char **pw, size_t *len)
{
    char *buf = malloc(CLI_PASSWORD_MAX + 2);
    size_t n;

    *pw = NULL;
    *len = 0;
    if (buf == NULL)
        return ck_error_set(CK_ERR_NOMEM, "password");
    if (fgets(buf, CLI_PASSWORD_MAX + 2, stdin) == NULL) {
        ck_free_secret(buf, CLI_PASSWORD_MAX + 2);
        return ck_error_set(CK_ERR_INVAL, "no password on standard input");
    }
    n = strlen(buf);
    if (n > 0 && buf[n - 1] == '\n')
        buf[--n] = '\0';
    else if (n > CLI_PASSWORD_MAX) {
        ck_free_secret(buf, CLI_PASSWORD_MAX + 2);
        return ck_error_set(CK_ERR_LIMIT, "password longer than %d bytes", CLI_PASSWORD_MAX);
    }
    if (n > 0 && buf[n - 1] == '\r')
        buf[--n] = '\0';
    if (n == 0) {
        ck_free_secret(buf, CLI_PASSWORD_MAX + 2);
        return ck_error_set(CK_ERR_INVAL, "empty password");
    }
    /* Shrink to the exact size so cli_password_free knows what to wipe. */
    *pw = ck_memdup(buf, n + 1);
    ck_free_secret(buf, CLI_PASSWORD_MAX + 2);
    if (*pw == NULL)
        return ck_error_set(CK_ERR_NOMEM, "password");
    *len = n;
    return 0;
}

int
cli_open_store(const char *what, const char *db, const char *stash, bool readonly,
               ck_store **out)
{
    int ret;

    *out = NULL;
    if (db == NULL)
        return cli_usage_error(what, "--db FILE is required");
    ret = ck_store_open(db, stash, readonly ? CK_STORE_READONLY : 0, out);
    if (ret != 0)
        return cli_fail(what, ret);
    {
        char actor[256];
        cli_actor(actor, sizeof(actor));
        ck_store_set_actor(*out, actor);
    }
    return CLI_OK;
}

int
cli_canonical_name(const char *what, const ck_store *store, const char *name, char **out)
{
    ck_principal *p = NULL;
    int ret;

    *out = NULL;
    ret = ck_principal_parse(name, ck_store_realm(store)->name, 0, &p);
    if (ret == 0)
        ret = ck_principal_unparse(p, 0, out);
    ck_principal_free(p);
    if (ret != 0)
        return cli_fail(what, ret);
    return CLI_OK;
}

void
cli_format_duration(int64_t secs, char *buf, size_t size)
{
    int64_t d = secs / 86400, h = secs % 86400 / 3600, m = secs % 3600 / 60, s = secs % 60;

    if (d > 0)
        snprintf(buf, size, "%lld days %02lld:%02lld:%02lld", (long long)d, (long long)h,
                 (long long)m, (long long)s);
    else
        snprintf(buf, size, "%02lld:%02lld:%02lld", (long long)h, (long long)m, (long long)s);
}

void
cli_format_time(int64_t t, char *buf, size_t size)
{
    struct tm tm;
    time_t tt = (time_t)t;

    if (gmtime_r(&tt, &tm) == NULL || strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
        snprintf(buf, size, "%lld", (long long)t);
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return CLI_OK;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "cablekey: unknown command '%s' (see 'cablekey --help')\n", argv[1]);
    return CLI_USAGE;
}
