/* cablekey realm show|modify: the realm's own settings, which cap every ticket the KDC issues
 * (max life, max renew), the enctypes new keys get, and the flags new principals start with. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/crypto.h"
#include "cablekey/error.h"
#include "cablekey/store.h"
#include "admin_ops.h"
#include "cli.h"

enum {
    OPT_DB = 256, OPT_STASH, OPT_MAX_LIFE, OPT_MAX_RENEW, OPT_ENCTYPES, OPT_HELP, OPT_SERVER,
    OPT_CA,
    OPT_FLAG = 1024,
};

static const struct option fixed_opts[] = {
    {"db", required_argument, NULL, OPT_DB},
    {"stash", required_argument, NULL, OPT_STASH},
    {"max-life", required_argument, NULL, OPT_MAX_LIFE},
    {"max-renew", required_argument, NULL, OPT_MAX_RENEW},
    {"enctypes", required_argument, NULL, OPT_ENCTYPES},
    {"help", no_argument, NULL, OPT_HELP},
    {"server", required_argument, NULL, OPT_SERVER},
    {"ca", required_argument, NULL, OPT_CA},
};
#define N_FIXED (sizeof(fixed_opts) / sizeof(fixed_opts[0]))
#define MAX_FLAGS 16

static const char realm_help[] =
    "usage: cablekey realm SUBCOMMAND (--db PATH|URI [--stash FILE] | --server URL "
    "[--ca FILE]) ...\n"
    "\n"
    "  show\n"
    "  modify [--max-life D] [--max-renew D] [--enctypes LIST] [FLAGS]\n"
    "      FLAGS change the default flags of principals added from now on\n"
    "\n"
    "max life and max renew cap every ticket the KDC issues, whatever kdc.conf or a principal\n"
    "asks (the smallest wins); a running KDC applies new values when it restarts. --enctypes\n"
    "sets the enctypes new keys get (principal add, rotate); existing keys are unchanged.\n"
    "FLAGS are those of 'cablekey principal add' (--requires-preauth | --no-preauth,\n"
    "--forwardable | --no-forwardable, ...).\n";

struct ropts {
    const char *db, *stash;
    const char *server, *ca;  /* a remote executor (cli_executor_open) */
    ck_realm_mod mod;
    uint32_t attr_set, attr_clear;
};

void
cli_print_realm(const ck_realm_info *ri)
{
    char buf[64];

    printf("Realm: %s\n", ri->name);
    cli_format_duration(ri->max_life, buf, sizeof(buf));
    printf("Maximum ticket life: %s\n", buf);
    cli_format_duration(ri->max_renew, buf, sizeof(buf));
    printf("Maximum renewable life: %s\n", buf);
    printf("Enctypes:");
    for (size_t i = 0; i < ri->n_enctypes; i++)
        printf(" %s", ck_enctype_name(ri->enctypes[i]));
    printf("\n");
    cli_print_attributes("Default principal flags", ri->default_attributes);
    printf("Master key version: %u\n", ri->master_kvno);
}

static int
parse_opts(const char *what, const char *verb, int argc, char **argv, struct ropts *o)
{
    struct option opts[N_FIXED + 2 * MAX_FLAGS + 1];
    int c;

    cli_flag_options(opts, sizeof(opts) / sizeof(opts[0]), fixed_opts, N_FIXED, OPT_FLAG);
    memset(o, 0, sizeof(*o));
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_DB: o->db = optarg; break;
        case OPT_STASH: o->stash = optarg; break;
        case OPT_SERVER: o->server = optarg; break;
        case OPT_CA: o->ca = optarg; break;
        case OPT_MAX_LIFE:
            if (cli_parse_duration(optarg, &o->mod.max_life) != 0 || o->mod.max_life == 0)
                return cli_usage_error(what, "--max-life: %s",
                                       o->mod.max_life == 0 ? "must be positive"
                                                            : ck_error_context());
            o->mod.mask |= CK_REALM_MOD_MAX_LIFE;
            break;
        case OPT_MAX_RENEW:
            if (cli_parse_duration(optarg, &o->mod.max_renew) != 0 || o->mod.max_renew == 0)
                return cli_usage_error(what, "--max-renew: %s",
                                       o->mod.max_renew == 0 ? "must be positive"
                                                             : ck_error_context());
            o->mod.mask |= CK_REALM_MOD_MAX_RENEW;
            break;
        case OPT_ENCTYPES:
            if (cli_parse_enctypes(optarg, o->mod.enctypes, CK_STORE_MAX_ENCTYPES,
                                   &o->mod.n_enctypes) != 0)
                return cli_usage_error(what, "--enctypes: %s", ck_error_context());
            o->mod.mask |= CK_REALM_MOD_ENCTYPES;
            break;
        case 'h':
        case OPT_HELP:
        case ':':
        case '?':
            return cli_getopt_other(what, c, OPT_HELP, argv, realm_help);
        default:
            if (cli_flag_apply(what, c, OPT_FLAG, &o->attr_set, &o->attr_clear, NULL) != CLI_OK)
                return CLI_USAGE;
            break;
        }
    }
    return cli_no_more_args(what, optind < argc ? argv[optind] : NULL);
}

static int
do_show(const char *what, const struct ropts *o, const struct cli_admin_ops *ops, void *ctx)
{
    ck_realm_info ri;
    int ret;

    (void)o;
    if ((ret = ops->realm_get(ctx, &ri)) != 0)
        return cli_fail(what, ret);
    cli_print_realm(&ri);
    return CLI_OK;
}

static int
do_modify(const char *what, const struct ropts *o, const struct cli_admin_ops *ops, void *ctx)
{
    ck_realm_mod mod = o->mod;
    ck_realm_info ri;
    int ret;

    if (o->attr_set != 0 || o->attr_clear != 0) {
        if ((ret = ops->realm_get(ctx, &ri)) != 0)
            return cli_fail(what, ret);
        mod.mask |= CK_REALM_MOD_DEFAULT_ATTRIBUTES;
        mod.default_attributes = (ri.default_attributes | o->attr_set) & ~o->attr_clear;
    }
    if ((ret = ops->realm_modify(ctx, &mod, &ri)) != 0)
        return cli_fail(what, ret);
    printf("Realm %s modified.\n", ri.name);
    cli_print_realm(&ri);
    return CLI_OK;
}

int
cli_realm(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(const char *what, const struct ropts *o, const struct cli_admin_ops *ops,
                  void *ctx);
        bool readonly;
    } subs[] = {
        {"show", do_show, true},
        {"modify", do_modify, false},
    };
    char what[64];
    struct ropts o;
    struct cli_executor ex;
    int rc;

    if (cli_family_help(argc, argv, realm_help, NULL, &rc))
        return rc;
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        if (strcmp(argv[1], subs[i].name) != 0)
            continue;
        snprintf(what, sizeof(what), "realm %s", subs[i].name);
        rc = parse_opts(what, subs[i].name, argc - 1, argv + 1, &o);
        if (rc < 0)
            return CLI_OK; /* --help */
        if (rc != CLI_OK)
            return rc;
        if (subs[i].fn == do_show && (o.mod.mask != 0 || o.attr_set != 0 || o.attr_clear != 0))
            return cli_usage_error(what, "show takes no settings (did you mean modify?)");
        if (subs[i].fn == do_modify && o.mod.mask == 0 && o.attr_set == 0 && o.attr_clear == 0)
            return cli_usage_error(what, "nothing to change: give at least one option");
        if ((rc = cli_executor_open(what, o.db, o.stash, o.server, o.ca, subs[i].readonly,
                                    &ex)) != CLI_OK)
            return rc;
        rc = subs[i].fn(what, &o, ex.ops, ex.ctx);
        cli_executor_close(&ex);
        return rc;
    }
    return cli_unknown_verb("realm", argv[1]);
}
