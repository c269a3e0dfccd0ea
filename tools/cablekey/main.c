/* cablekey: the operator CLI. main() dispatches to one file per subcommand family; this file
 * also holds the error printers, the store opener and per-verb help they share (parsers and
 * formatters: parse.c; prompts: prompt.c; admin verbs: admin_ops.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cablekey/error.h"
#include "cablekey/principal.h"
#include "cli.h"

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} commands[] = {
    {"init", cli_init, "create a realm database and master key stash"},
    {"realm", cli_realm, "show and modify the realm's settings (lifetimes, enctypes, flags)"},
    {"principal", cli_principal, "add, list, show, modify, rotate, rename, delete principals"},
    {"keytab", cli_keytab, "export keys to MIT-format keytab files, remove entries"},
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
    fprintf(f, "\nRun 'cablekey COMMAND --help' or 'cablekey help COMMAND [VERB]' for a command's\n"
               "options, 'cablekey --version' for the version. Commands that open a realm\n"
               "database take --db FILE and --stash FILE (default: FILE.stash).\n");
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
cli_open_store(const char *what, const char *db, const char *stash, bool readonly,
               ck_store **out)
{
    int ret;

    *out = NULL;
    if (db == NULL)
        return cli_usage_error(what, "--db FILE is required");
    ret = ck_store_open(db, stash, readonly ? CK_STORE_READONLY : 0, out);
    if (ret != 0 && access(db, F_OK) != 0 && errno == ENOENT) {
        /* The likely cause on a first day: no realm yet, or a wrong path. */
        fprintf(stderr, "cablekey: %s: %s (create a realm with 'cablekey init --db %s --realm "
                        "REALM')\n", what, ck_error_context(), db);
        return CLI_FAIL;
    }
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

#ifndef CK_VERSION
#define CK_VERSION "unknown"
#endif

bool
cli_verb_help(FILE *f, const char *family, const char *help, const char *verb)
{
    size_t vlen = strlen(verb);
    const char *p = help, *notes = NULL, *line, *end;
    bool found = false, in_verb = false;

    /* The verb list starts after the first blank line; the notes after the second. */
    if ((p = strstr(help, "\n\n")) == NULL)
        return false;
    p += 2;
    for (line = p; *line != '\0' && notes == NULL; line = end + (*end != '\0')) {
        end = strchr(line, '\n');
        if (end == NULL)
            end = line + strlen(line);
        if (end == line) {
            notes = end + 1;
            break;
        }
        if (strncmp(line, "  ", 2) == 0 && line[2] != ' ') {
            in_verb = strncmp(line + 2, verb, vlen) == 0 &&
                      (line[2 + vlen] == ' ' || line + 2 + vlen == end);
            if (in_verb) {
                fprintf(f, "usage: cablekey %s %.*s\n", family, (int)(end - line - 2),
                        line + 2);
                found = true;
            }
        } else if (in_verb) {
            fprintf(f, "%.*s\n", (int)(end - line), line);
        }
    }
    if (!found)
        return false;
    /* Families whose verbs all open the database say so on their first line. */
    if (strstr(help, "--db FILE") != NULL && strstr(help, "--db FILE") < strchr(help, '\n'))
        fprintf(f, "\nEvery verb takes --db FILE [--stash FILE].\n");
    if (notes != NULL && *notes != '\0')
        fprintf(f, "\n%s", notes);
    return true;
}

/* `cablekey help COMMAND [VERB]`: the same text as `cablekey COMMAND [VERB] --help`. */
static int
help_command(int argc, char **argv)
{
    char *args[3];

    if (argc < 1) {
        usage(stdout);
        return CLI_OK;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(argv[0], commands[i].name) != 0)
            continue;
        args[0] = argv[0];
        if (argc >= 2) {
            args[1] = argv[1];
            args[2] = (char *)"--help";
            return commands[i].fn(3, args);
        }
        args[1] = (char *)"--help";
        return commands[i].fn(2, args);
    }
    fprintf(stderr, "cablekey: help: unknown command '%s' (see 'cablekey --help')\n", argv[0]);
    return CLI_USAGE;
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return CLI_OK;
    }
    if (strcmp(argv[1], "help") == 0)
        return help_command(argc - 2, argv + 2);
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("cablekey %s\n", CK_VERSION);
        return CLI_OK;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "cablekey: unknown command '%s' (see 'cablekey --help')\n", argv[1]);
    return CLI_USAGE;
}
