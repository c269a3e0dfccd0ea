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
#include "prov_remote.h"

/* local_only: why the family has no remote counterpart (refused with --server); NULL for the
 * families that run on cablekey-admind too. */
static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
    const char *local_only;
} commands[] = {
    {"init", cli_init, "create a realm database and master key stash",
     "it creates the database file: run it on the KDC host"},
    {"realm", cli_realm, "show and modify the realm's settings (lifetimes, enctypes, flags)",
     NULL},
    {"principal", cli_principal, "add, list, show, modify, rotate, rename, delete principals",
     NULL},
    {"keytab", cli_keytab, "export keys to MIT-format keytab files, remove entries",
     "the admin API never hands out key material: run it on the KDC host with --db"},
    {"keytab-agent", cli_keytab_agent, "keep a service's keytab in step with key rotation",
     "it runs on the application server and talks to the KDCs"},
    {"device", cli_device, "map device MAC addresses to principals, pin and revoke them",
     "the admin API does not change devices (only list and show run remotely): run it on the "
     "KDC host with --db"},
    {"pki", cli_pki, "PKINIT certificate authority: init, issue-*, import, show, verify, phone-id",
     "it works on local CA files, not on a realm"},
    {"mta", cli_mta, "endpoint: PKINIT login to a ccache (login), IPsec keying with a CMS (kmm)",
     "it logs in to a KDC; it does not administer a realm"},
    {"db", cli_db, "back up, restore and check the database",
     "it works on the database file: run it on the KDC host"},
    {"audit", cli_audit, "list the audit log of administrative changes; its retention",
     "the audit log is not in the admin API: run it on the KDC host with --db"},
    {"alarms", cli_alarms, "the alarms the KDCs raised: list, show, clear",
     "the alarm table is not in the admin API: run it on a KDC host with --db"},
    {"policy", cli_policy, "password policies and lockout rules: add, modify, show, list, delete",
     NULL},
    {"customer", cli_customer, "provisioning customers on cablekey-prov: add, show, list, modify",
     NULL},
    {"router", cli_router, "router simulator for address authentication with AH (serve)",
     "it runs a router simulator, not a realm"},
    {"node", cli_node, "keying server node agent: register, install pushed SAs and group keys",
     "it runs a node agent, not a realm"},
    {"intercept", cli_intercept, "lawful intercept: orders, escrowed call records, decryption",
     "the intercept database is the intercept administrator's own file: run it where it is"},
    {"rotation", cli_rotation, "service-key versioning: status, policy, pause, resume, run",
     "rotation is not in the admin API: run it on the KDC host with --db"}, /* k9rot */
    {"ksv", cli_ksv, "keying server: status, groups, members, revoke, alarms, SAs",
     "it works on the keying server's store: run it on the KSV host with --db"},
};

static void
usage(FILE *f)
{
    fprintf(f, "usage: cablekey COMMAND [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\nRun 'cablekey COMMAND --help' or 'cablekey help COMMAND [VERB]' for a command's\n"
               "options, 'cablekey --version' for the version. Commands that open a realm\n"
               "database take --db PATH|URI and --stash FILE (default: PATH.stash): a file\n"
               "(SQLite; also sqlite:PATH) or postgresql://[USER@]HOST[:PORT]/DB, whose\n"
               "password comes from PGPASSFILE or a service file, never from --db.\n"
               "\nRemote administration: 'cablekey --server URL [--ca FILE] principal|realm|policy\n"
               "...' and 'device list|show' (or --server URL after the verb) run the verb on\n"
               "cablekey-admind with your Kerberos ticket (kinit first). URL is\n"
               "https://HOST[:PORT] (port 8749 if none; --ca FILE: the CA of its certificate,\n"
               "else the system store) or http:// to a loopback address only.\n");
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
cli_getopt_other(const char *what, int c, int help_opt, char **argv, const char *help)
{
    if (c == 'h' || c == help_opt) {
        char family[32];
        const char *sp = strchr(what, ' ');
        bool shown = false;

        /* `what` is "FAMILY VERB": only that verb's lines when the help lists it. */
        if (sp != NULL && (size_t)(sp - what) < sizeof(family)) {
            memcpy(family, what, (size_t)(sp - what));
            family[sp - what] = '\0';
            shown = cli_verb_help(stdout, family, help, sp + 1);
        }
        if (!shown)
            fputs(help, stdout);
        return CLI_HELP_SHOWN;
    }
    if (c == ':')
        return cli_usage_error(what, "option '%s' needs a value", argv[optind - 1]);
    return cli_usage_error(what, "unknown option '%s'", argv[optind - 1]);
}

bool
cli_family_help(int argc, char **argv, const char *help, const char *notes, int *rc)
{
    if (argc < 2) {
        fputs(help, stderr);
        *rc = CLI_USAGE;
        return true;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(help, stdout);
        if (notes != NULL)
            fputs(notes, stdout);
        *rc = CLI_OK;
        return true;
    }
    return false;
}

int
cli_unknown_verb(const char *family, const char *verb)
{
    fprintf(stderr, "cablekey: %s: unknown subcommand '%s' (see 'cablekey %s --help')\n", family,
            verb, family);
    return CLI_USAGE;
}

int
cli_no_more_args(const char *what, const char *arg)
{
    if (arg != NULL)
        return cli_usage_error(what, "unexpected argument '%s'", arg);
    return CLI_OK;
}

int
cli_open_store(const char *what, const char *db, const char *stash, bool readonly,
               ck_store **out)
{
    int ret;

    *out = NULL;
    if (db == NULL)
        return cli_usage_error(what, "--db PATH|URI is required");
    ret = ck_store_open(db, stash, readonly ? CK_STORE_READONLY : 0, out);
    /* Only a missing SQLite file gets the hint (never echo a URI that was refused). */
    if (ret == CK_ERR_NOTFOUND && access(db, F_OK) != 0 && errno == ENOENT) {
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
    if (strstr(help, "--server URL") != NULL && strstr(help, "--server URL") < strchr(help, '\n'))
        fprintf(f, "\nEvery verb takes --db PATH|URI [--stash FILE], or --server URL [--ca FILE]\n"
                   "to run on cablekey-admind (see 'cablekey --help').\n");
    else if (strstr(help, "--db PATH|URI") != NULL &&
             strstr(help, "--db PATH|URI") < strchr(help, '\n'))
        fprintf(f, "\nEvery verb takes --db PATH|URI [--stash FILE].\n");
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

/* Options before the command: --server URL, --ca FILE (also as --opt=VALUE). Returns how many
 * arguments they took, or -1 after a usage error. */
static int
global_options(int argc, char **argv)
{
    int i = 1;

    while (i < argc && strncmp(argv[i], "--", 2) == 0) {
        const char **dst;
        const char *name, *eq = strchr(argv[i], '=');
        size_t n = eq != NULL ? (size_t)(eq - argv[i]) : strlen(argv[i]);

        if (n == 8 && strncmp(argv[i], "--server", n) == 0) {
            dst = &cli_global_server;
            name = "--server";
        } else if (n == 4 && strncmp(argv[i], "--ca", n) == 0) {
            dst = &cli_global_ca;
            name = "--ca";
        } else {
            break; /* --help, --version, or an unknown option: main() decides */
        }
        if (*dst != NULL) {
            fprintf(stderr, "cablekey: %s given twice\n", name);
            return -1;
        }
        if (eq != NULL) {
            *dst = eq + 1;
            i++;
        } else if (i + 1 < argc) {
            *dst = argv[i + 1];
            i += 2;
        } else {
            fprintf(stderr, "cablekey: option '%s' needs a value (see 'cablekey --help')\n",
                    name);
            return -1;
        }
        if (**dst == '\0') {
            fprintf(stderr, "cablekey: %s: empty value\n", name);
            return -1;
        }
    }
    return i - 1;
}

/* A family without a remote counterpart refuses --server, before or after its verb, with the
 * reason, rather than running locally or failing on an unknown option. */
static bool
refuses_server(size_t cmd, int argc, char **argv)
{
    const char *opt = cli_global_server != NULL ? "--server" : cli_global_ca != NULL ? "--ca" : NULL;

    if (commands[cmd].local_only == NULL)
        return false;
    /* The device family's read verbs run remotely; its changes do not. */
    if (strcmp(commands[cmd].name, "device") == 0 && argc > 1 &&
        (strcmp(argv[1], "list") == 0 || strcmp(argv[1], "show") == 0 ||
         cli_device_prov_verb(argv[1])))
        return false;
    /* `mta phone --server` is that verb's own option (a media gateway), not the global one. */
    if (opt == NULL && strcmp(commands[cmd].name, "mta") == 0 && argc > 1 &&
        strcmp(argv[1], "phone") == 0)
        return false;
    for (int i = 1; opt == NULL && i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--server") == 0 || strncmp(argv[i], "--server=", 9) == 0)
            opt = "--server";
    if (opt == NULL)
        return false;
    fprintf(stderr, "cablekey: %s: %s: no remote counterpart: %s\n", commands[cmd].name, opt,
            commands[cmd].local_only);
    return true;
}

int
main(int argc, char **argv)
{
    int skip;

    if ((skip = global_options(argc, argv)) < 0)
        return CLI_USAGE;
    argc -= skip;
    argv += skip;
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
        if (strcmp(argv[1], commands[i].name) != 0)
            continue;
        if (refuses_server(i, argc - 1, argv + 1))
            return CLI_USAGE;
        return commands[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "cablekey: unknown command '%s' (see 'cablekey --help')\n", argv[1]);
    return CLI_USAGE;
}
