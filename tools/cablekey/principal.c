/* cablekey principal add|list|show|delete|modify|rotate|rename. Each verb parses its options
 * into a request (admin_ops.h), runs it through an executor (cli_admin_local on the store with
 * --db, cli_admin_remote on cablekey-admind with --server) and prints the result with the
 * printers below. */
#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/crypto.h"
#include "cablekey/error.h"
#include "cablekey/principal.h"
#include "cablekey/store.h"
#include "cablekey/util.h"
#include "admin_ops.h"
#include "cli.h"

/* Long-only options share one table; each subcommand accepts the subset it documents. The
 * principal flags (cli_flags) are appended at run time with codes OPT_FLAG + 2i (on) and
 * OPT_FLAG + 2i + 1 (off). */
enum {
    OPT_DB = 256, OPT_STASH, OPT_PASSWORD, OPT_PASSWORD_STDIN, OPT_RANDOM, OPT_ENCTYPES,
    OPT_MAX_LIFE, OPT_MAX_RENEW, OPT_EXPIRES, OPT_NEVER_EXPIRES, OPT_PW_EXPIRES, OPT_KEEP,
    OPT_YES, OPT_HELP, OPT_POLICY, OPT_CLEAR_POLICY, OPT_SERVER, OPT_CA,
    OPT_FLAG = 1024,
};

static const struct option all_opts[] = {
    {"db", required_argument, NULL, OPT_DB},
    {"stash", required_argument, NULL, OPT_STASH},
    {"password", required_argument, NULL, OPT_PASSWORD},
    {"password-stdin", no_argument, NULL, OPT_PASSWORD_STDIN},
    {"random", no_argument, NULL, OPT_RANDOM},
    {"enctypes", required_argument, NULL, OPT_ENCTYPES},
    {"max-life", required_argument, NULL, OPT_MAX_LIFE},
    {"max-renew", required_argument, NULL, OPT_MAX_RENEW},
    {"expires", required_argument, NULL, OPT_EXPIRES},
    {"never-expires", no_argument, NULL, OPT_NEVER_EXPIRES},
    {"pw-expires", required_argument, NULL, OPT_PW_EXPIRES},
    {"keep", required_argument, NULL, OPT_KEEP},
    {"yes", no_argument, NULL, OPT_YES},
    {"help", no_argument, NULL, OPT_HELP},
    {"policy", required_argument, NULL, OPT_POLICY},
    {"clear-policy", no_argument, NULL, OPT_CLEAR_POLICY},
    {"server", required_argument, NULL, OPT_SERVER},
    {"ca", required_argument, NULL, OPT_CA},
    {NULL, 0, NULL, 0},
};
#define N_FIXED_OPTS (sizeof(all_opts) / sizeof(all_opts[0]) - 1)
#define MAX_FLAGS 16

struct popts {
    const char *db, *stash;
    const char *server, *ca;  /* a remote executor (cli_executor_open) */
    const char *password;     /* from --password (argv: visible to ps; prefer --password-stdin) */
    bool password_stdin, random, yes;
    uint32_t attr_set, attr_clear; /* from the flag options */
    const char *flag_name;    /* the first flag option given (for `only`) */
    int32_t enctypes[CK_STORE_MAX_ENCTYPES];
    size_t n_enctypes;
    bool has_max_life, has_max_renew, has_expires, never_expires, has_pw_expires;
    int64_t max_life, max_renew, expires, pw_expires;
    int64_t keep;
    const char **names;
    size_t n_names;
    const char *policy;       /* --policy NAME */
    bool clear_policy;
};

static const char principal_help[] =
    "usage: cablekey principal SUBCOMMAND (--db PATH|URI [--stash FILE] | --server URL "
    "[--ca FILE]) ...\n"
    "\n"
    "  add NAME (--password PW | --password-stdin | --random) [FLAGS] [--enctypes LIST]\n"
    "      [--max-life D] [--max-renew D] [--expires TIME] [--pw-expires TIME]\n"
    "  list [PATTERN]\n"
    "      names matching the glob PATTERN (default '*'; @REALM is added if absent)\n"
    "  show NAME\n"
    "  delete NAME [--yes]\n"
    "      asks for confirmation on a terminal; --yes is required otherwise\n"
    "  modify NAME [FLAGS] [--expires TIME | --never-expires] [--max-life D] [--max-renew D]\n"
    "      [--pw-expires TIME]\n"
    "  rotate NAME [--random | --password PW | --password-stdin] [--enctypes LIST] [--keep N]\n"
    "      a user principal (one name component) needs --random or a password option\n"
    "  rename OLD NEW\n"
    "      keys keep their salts, so the old password still works under the new name\n"
    "  unlock NAME\n"
    "      clears the failed-authentication count (lockout: see 'cablekey policy')\n"
    "add and modify also take --policy POLICY or --clear-policy; a password set by add or\n"
    "rotate must satisfy the principal's policy.\n"
    "\n"
    "FLAGS (MIT kadmin's names as option pairs; the realm's default flags apply at add):\n"
    "  --requires-preauth | --no-preauth       --forwardable | --no-forwardable\n"
    "  --renewable | --no-renewable            --proxiable | --no-proxiable\n"
    "  --postdateable | --no-postdateable      --ok-as-delegate | --no-ok-as-delegate\n"
    "  --allow-svr | --disallow-svr            --needchange | --no-needchange\n"
    "  --allow-tix | --disallow-all-tix\n"
    "NAME without @REALM is in the database's realm. Durations are seconds or 10h, 7d,\n"
    "1d12h...; TIME is epoch seconds, YYYY-MM-DD or 'YYYY-MM-DD HH:MM:SS' (UTC). rotate makes\n"
    "a new kvno, keeping the newest 3 kvnos unless --keep N. --password-stdin asks twice with\n"
    "no echo on a terminal and reads one line from a pipe.\n";

static int
parse_opts(const char *what, const char *verb, int argc, char **argv, struct popts *o)
{
    struct option opts[N_FIXED_OPTS + 2 * MAX_FLAGS + 1];
    int c;

    cli_flag_options(opts, sizeof(opts) / sizeof(opts[0]), all_opts, N_FIXED_OPTS, OPT_FLAG);
    memset(o, 0, sizeof(*o));
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_DB: o->db = optarg; break;
        case OPT_STASH: o->stash = optarg; break;
        case OPT_SERVER: o->server = optarg; break;
        case OPT_CA: o->ca = optarg; break;
        case OPT_PASSWORD: o->password = optarg; break;
        case OPT_PASSWORD_STDIN: o->password_stdin = true; break;
        case OPT_RANDOM: o->random = true; break;
        case OPT_YES: o->yes = true; break;
        case OPT_POLICY: o->policy = optarg; break;
        case OPT_CLEAR_POLICY: o->clear_policy = true; break;
        case OPT_NEVER_EXPIRES: o->never_expires = true; break;
        case OPT_ENCTYPES:
            if (cli_parse_enctypes(optarg, o->enctypes, CK_STORE_MAX_ENCTYPES, &o->n_enctypes))
                return cli_usage_error(what, "--enctypes: %s", ck_error_context());
            break;
        case OPT_MAX_LIFE:
            if (cli_parse_duration(optarg, &o->max_life) != 0)
                return cli_usage_error(what, "--max-life: %s", ck_error_context());
            o->has_max_life = true;
            break;
        case OPT_MAX_RENEW:
            if (cli_parse_duration(optarg, &o->max_renew) != 0)
                return cli_usage_error(what, "--max-renew: %s", ck_error_context());
            o->has_max_renew = true;
            break;
        case OPT_EXPIRES:
            if (cli_parse_time(optarg, &o->expires) != 0)
                return cli_usage_error(what, "--expires: %s", ck_error_context());
            o->has_expires = true;
            break;
        case OPT_PW_EXPIRES:
            if (cli_parse_time(optarg, &o->pw_expires) != 0)
                return cli_usage_error(what, "--pw-expires: %s", ck_error_context());
            o->has_pw_expires = true;
            break;
        case OPT_KEEP:
            if (ck_parse_int64(optarg, 1, 100, &o->keep) != 0)
                return cli_usage_error(what, "--keep: %s", ck_error_context());
            break;
        case 'h':
        case OPT_HELP:
        case ':':
        case '?':
            return cli_getopt_other(what, c, OPT_HELP, argv, principal_help);
        default:
            if (cli_flag_apply(what, c, OPT_FLAG, &o->attr_set, &o->attr_clear,
                               &o->flag_name) != CLI_OK)
                return CLI_USAGE;
            break;
        }
    }
    if (o->has_expires && o->never_expires)
        return cli_usage_error(what, "--expires and --never-expires exclude each other");
    if (o->policy != NULL && o->clear_policy)
        return cli_usage_error(what, "--policy and --clear-policy exclude each other");
    if ((o->password != NULL) + o->password_stdin + o->random > 1)
        return cli_usage_error(what, "--password, --password-stdin and --random exclude each "
                                     "other");
    o->names = (const char **)(argv + optind);
    o->n_names = (size_t)(argc - optind);
    return CLI_OK;
}

/* Accepts only the options a subcommand documents, so typos do not silently do nothing.
 * " flags " in allowed stands for every principal flag. */
static int
only(const char *what, const struct popts *o, const char *allowed)
{
    struct {
        bool set;
        const char *name;
        const char *key;
    } used[] = {
        {o->password != NULL, "password", "password"},
        {o->password_stdin, "password-stdin", "password-stdin"},
        {o->random, "random", "random"},
        {o->flag_name != NULL, o->flag_name, "flags"},
        {o->n_enctypes > 0, "enctypes", "enctypes"},
        {o->has_max_life, "max-life", "max-life"},
        {o->has_max_renew, "max-renew", "max-renew"},
        {o->has_expires, "expires", "expires"},
        {o->never_expires, "never-expires", "never-expires"},
        {o->has_pw_expires, "pw-expires", "pw-expires"},
        {o->keep != 0, "keep", "keep"},
        {o->yes, "yes", "yes"},
        {o->policy != NULL, "policy", "policy"},
        {o->clear_policy, "clear-policy", "clear-policy"},
    };

    for (size_t i = 0; i < sizeof(used) / sizeof(used[0]); i++) {
        char key[40];
        snprintf(key, sizeof(key), " %s ", used[i].key);
        if (used[i].set && strstr(allowed, key) == NULL)
            return cli_usage_error(what, "option --%s does not apply here", used[i].name);
    }
    return CLI_OK;
}

/* The request fields every verb shares: lifetimes, expiry, flags, enctypes, keep. */
static void
fill_req(const struct popts *o, struct cli_princ_req *req)
{
    memset(req, 0, sizeof(*req));
    if (o->has_max_life) {
        req->mask |= CLI_PRINC_MAX_LIFE;
        req->max_life = o->max_life;
    }
    if (o->has_max_renew) {
        req->mask |= CLI_PRINC_MAX_RENEW;
        req->max_renew = o->max_renew;
    }
    if (o->has_expires || o->never_expires) {
        req->mask |= CLI_PRINC_EXPIRES;
        req->expires = o->never_expires ? 0 : o->expires;
    }
    if (o->has_pw_expires) {
        req->mask |= CLI_PRINC_PW_EXPIRES;
        req->pw_expires = o->pw_expires;
    }
    req->attr_set = o->attr_set;
    req->attr_clear = o->attr_clear;
    req->n_enctypes = o->n_enctypes;
    memcpy(req->enctypes, o->enctypes, sizeof(req->enctypes));
    req->keep = (unsigned)o->keep;
    if (o->policy != NULL || o->clear_policy) {
        req->mask |= CLI_PRINC_POLICY;
        req->policy = o->policy;
    }
}

/* Fills the key source of req from the options: *pw (freed by the caller with
 * cli_password_free) holds a password read or copied. */
static int
get_keys(const char *what, const struct popts *o, const char *name, struct cli_princ_req *req,
         char **pw, size_t *len)
{
    int ret;

    *pw = NULL;
    *len = 0;
    if (o->random) {
        req->keys = CLI_KEYS_RANDOM;
        return CLI_OK;
    }
    if (o->password != NULL) {
        if (*o->password == '\0')
            return cli_usage_error(what, "empty password");
        *len = strlen(o->password);
        if ((*pw = ck_memdup(o->password, *len + 1)) == NULL)
            return cli_fail(what, ck_error_set(CK_ERR_NOMEM, "password"));
    } else if (o->password_stdin) {
        if ((ret = cli_read_password(name, pw, len)) != 0)
            return cli_fail(what, ret);
    } else {
        req->keys = CLI_KEYS_NONE;
        return CLI_OK;
    }
    req->keys = CLI_KEYS_PASSWORD;
    req->password = *pw;
    req->password_len = *len;
    return CLI_OK;
}

/* Everything a verb needs: the executor, its context and the realm it serves. */
struct verb_ctx {
    const char *what;
    const struct popts *o;
    const struct cli_admin_ops *ops;
    void *ctx;
    ck_realm_info realm;
};

/* "name" -> "name@REALM" in the executor's realm; malloc'd. */
static int
canonical(const struct verb_ctx *v, const char *name, char **out)
{
    ck_principal *p = NULL;
    int ret;

    *out = NULL;
    ret = ck_principal_parse(name, v->realm.name, 0, &p);
    if (ret == 0)
        ret = ck_principal_unparse(p, 0, out);
    ck_principal_free(p);
    if (ret != 0)
        return cli_fail(v->what, ret);
    return CLI_OK;
}

static int
do_add(const struct verb_ctx *v)
{
    struct cli_princ_req req;
    char *name = NULL, *pw = NULL;
    size_t pwlen = 0;
    int rc, ret;

    if ((rc = canonical(v, v->o->names[0], &name)) != CLI_OK)
        return rc;
    fill_req(v->o, &req);
    req.name = name;
    if ((rc = get_keys(v->what, v->o, name, &req, &pw, &pwlen)) != CLI_OK)
        goto out;
    if ((ret = v->ops->princ_add(v->ctx, &req)) != 0) {
        rc = cli_fail(v->what, ret);
        goto out;
    }
    printf("Principal %s created.\n", name);
    rc = CLI_OK;
out:
    cli_password_free(pw, pwlen);
    free(name);
    return rc;
}

static int
print_name(const char *name, void *arg)
{
    (void)arg;
    printf("%s\n", name);
    return 0;
}

static int
do_list(const struct verb_ctx *v)
{
    char *pattern = NULL;
    int ret;

    /* As MIT's list_principals: a pattern without a realm is in the database's realm. */
    if (v->o->n_names == 1) {
        const char *pat = v->o->names[0];
        size_t n = strlen(pat) + 1 + strlen(v->realm.name) + 1;

        if ((pattern = malloc(n)) == NULL)
            return cli_fail(v->what, ck_error_set(CK_ERR_NOMEM, "pattern"));
        if (strchr(pat, '@') != NULL)
            snprintf(pattern, n, "%s", pat);
        else
            snprintf(pattern, n, "%s@%s", pat, v->realm.name);
    }
    ret = v->ops->princ_list(v->ctx, pattern, print_name, NULL);
    free(pattern);
    if (ret != 0)
        return cli_fail(v->what, ret);
    return CLI_OK;
}

void
cli_print_attributes(const char *label, uint32_t a)
{
    static const struct {
        uint32_t bit;
        const char *name;
    } names[] = {
        {CK_ATTR_REQUIRES_PREAUTH, "REQUIRES_PRE_AUTH"},
        {CK_ATTR_DISALLOW_ALL_TIX, "DISALLOW_ALL_TIX"},
        {CK_ATTR_DISALLOW_FORWARDABLE, "DISALLOW_FORWARDABLE"},
        {CK_ATTR_DISALLOW_PROXIABLE, "DISALLOW_PROXIABLE"},
        {CK_ATTR_DISALLOW_RENEWABLE, "DISALLOW_RENEWABLE"},
        {CK_ATTR_DISALLOW_POSTDATED, "DISALLOW_POSTDATED"},
        {CK_ATTR_DISALLOW_SVR, "DISALLOW_SVR"},
        {CK_ATTR_DISALLOW_TGT_BASED, "DISALLOW_TGT_BASED"},
        {CK_ATTR_DISALLOW_DUP_SKEY, "DISALLOW_DUP_SKEY"},
        {CK_ATTR_REQUIRES_HW_AUTH, "REQUIRES_HW_AUTH"},
        {CK_ATTR_REQUIRES_PWCHANGE, "REQUIRES_PWCHANGE"},
        {CK_ATTR_PWCHANGE_SERVICE, "PWCHANGE_SERVICE"},
        {CK_ATTR_OK_AS_DELEGATE, "OK_AS_DELEGATE"},
        {CK_ATTR_OK_TO_AUTH_AS_DELEGATE, "OK_TO_AUTH_AS_DELEGATE"},
        {CK_ATTR_NO_AUTH_DATA_REQUIRED, "NO_AUTH_DATA_REQUIRED"},
        {CK_ATTR_LOCKDOWN_KEYS, "LOCKDOWN_KEYS"},
    };
    uint32_t rest = a;

    printf("%s:", label);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (a & names[i].bit) {
            printf(" %s", names[i].name);
            rest &= ~names[i].bit;
        }
    }
    if (rest != 0)
        printf(" 0x%08x", rest);
    printf("\n");
}

static void
print_salt(const ck_db_key *k)
{
    bool printable = true;

    for (size_t i = 0; i < k->salt_len; i++)
        printable = printable && isprint(k->salt[i]) && k->salt[i] != '"';
    if (k->salt_type == CK_SALTTYPE_NORMAL)
        printf("normal");
    else
        printf("salttype %d", (int)k->salt_type);
    if (k->salt_len == 0)
        return;
    if (printable) {
        printf(" \"%.*s\"", (int)k->salt_len, (const char *)k->salt);
    } else {
        printf(" 0x");
        for (size_t i = 0; i < k->salt_len; i++)
            printf("%02x", k->salt[i]);
    }
}

static void
print_life(const char *label, int64_t v, int64_t realm_default)
{
    char buf[64];

    if (v == 0) {
        cli_format_duration(realm_default, buf, sizeof(buf));
        printf("%s: realm default (%s)\n", label, buf);
    } else {
        cli_format_duration(v, buf, sizeof(buf));
        printf("%s: %s\n", label, buf);
    }
}

static void
print_when(const char *label, int64_t t, const char *zero)
{
    char buf[64];

    if (t == 0) {
        printf("%s: %s\n", label, zero);
        return;
    }
    cli_format_time(t, buf, sizeof(buf));
    printf("%s: %s\n", label, buf);
}

void
cli_print_principal(const ck_db_principal *p, const ck_realm_info *ri)
{
    printf("Principal: %s\n", p->name);
    print_when("Expiration date", p->expires, "[never]");
    print_when("Password expiration date", p->pw_expires, "[never]");
    print_life("Maximum ticket life", p->max_life, ri->max_life);
    print_life("Maximum renewable life", p->max_renew, ri->max_renew);
    print_when("Created", p->created, "[unknown]");
    print_when("Last modified", p->modified, "[unknown]");
    cli_print_attributes("Attributes", p->attributes);
    cli_print_principal_policy(p);
    printf("Current kvno: %u\n", p->kvno);
    printf("Number of keys: %zu\n", p->n_keys);
    /* Key bytes are never shown, only what identifies each key. */
    for (size_t i = 0; i < p->n_keys; i++) {
        printf("Key: vno %u, %s, ", p->keys[i].kvno, ck_enctype_name(p->keys[i].enctype));
        print_salt(&p->keys[i]);
        printf("\n");
    }
}

static int
do_show(const struct verb_ctx *v)
{
    ck_db_principal *p = NULL;
    char *name = NULL;
    int rc, ret;

    if ((rc = canonical(v, v->o->names[0], &name)) != CLI_OK)
        return rc;
    if ((ret = v->ops->princ_get(v->ctx, name, &p)) != 0) {
        rc = cli_fail(v->what, ret);
        goto out;
    }
    cli_print_principal(p, &v->realm);
    rc = CLI_OK;
out:
    ck_db_principal_free(p);
    free(name);
    return rc;
}

static int
do_delete(const struct verb_ctx *v)
{
    ck_db_principal *p = NULL;
    char *name = NULL, question[600];
    int rc, ret;

    if ((rc = canonical(v, v->o->names[0], &name)) != CLI_OK)
        return rc;
    /* Refusals and typos fail before the question. */
    if (strncmp(name, "krbtgt/", 7) == 0) {
        ck_principal *pn = NULL;
        bool tgs = ck_principal_parse(name, NULL, 0, &pn) == 0 &&
                   ck_principal_is_tgs(pn, v->realm.name);
        ck_principal_free(pn);
        if (tgs) {
            fprintf(stderr, "cablekey: %s: refusing to delete the realm's own %s\n", v->what,
                    name);
            rc = CLI_FAIL;
            goto out;
        }
    }
    if (!v->o->yes && (ret = v->ops->princ_get(v->ctx, name, &p)) != 0) {
        rc = cli_fail(v->what, ret);
        goto out;
    }
    snprintf(question, sizeof(question), "Delete principal %s and all its keys?", name);
    if ((rc = cli_confirm(v->what, v->o->yes, question)) != CLI_OK)
        goto out;
    if ((ret = v->ops->princ_delete(v->ctx, name)) != 0) {
        rc = cli_fail(v->what, ret);
        goto out;
    }
    printf("Principal %s deleted.\n", name);
    rc = CLI_OK;
out:
    ck_db_principal_free(p);
    free(name);
    return rc;
}

static int
do_modify(const struct verb_ctx *v)
{
    struct cli_princ_req req;
    char *name = NULL;
    int rc, ret;

    if ((rc = canonical(v, v->o->names[0], &name)) != CLI_OK)
        return rc;
    fill_req(v->o, &req);
    req.name = name;
    if ((ret = v->ops->princ_modify(v->ctx, &req)) != 0) {
        rc = cli_fail(v->what, ret);
        goto out;
    }
    printf("Principal %s modified.\n", name);
    rc = CLI_OK;
out:
    free(name);
    return rc;
}

static int
do_rotate(const struct verb_ctx *v)
{
    struct cli_princ_req req;
    ck_principal *parsed = NULL;
    char *name = NULL, *pw = NULL;
    size_t pwlen = 0;
    uint32_t kvno = 0;
    int rc, ret;

    if ((rc = canonical(v, v->o->names[0], &name)) != CLI_OK)
        return rc;
    fill_req(v->o, &req);
    req.name = name;
    if ((rc = get_keys(v->what, v->o, name, &req, &pw, &pwlen)) != CLI_OK)
        goto out;
    if (req.keys == CLI_KEYS_NONE) {
        /* Service keys (host/..., krbtgt/...) are random anyway; a one-component name is a
         * user whose keys likely come from a password, which must not vanish unannounced. */
        if ((ret = ck_principal_parse(name, NULL, 0, &parsed)) != 0) {
            rc = cli_fail(v->what, ret);
            goto out;
        }
        if (parsed->n_components < 2) {
            rc = cli_usage_error(v->what,
                                 "%s is a user principal whose keys may come from a password: "
                                 "give --random to replace them with random keys, or "
                                 "--password-stdin to set a new password", name);
            goto out;
        }
        req.keys = CLI_KEYS_RANDOM;
    }
    if ((ret = v->ops->princ_rotate(v->ctx, &req, &kvno)) != 0) {
        rc = cli_fail(v->what, ret);
        goto out;
    }
    printf("Principal %s: new %s keys with kvno %u.\n", name,
           req.keys == CLI_KEYS_RANDOM ? "random" : "password", kvno);
    rc = CLI_OK;
out:
    ck_principal_free(parsed);
    cli_password_free(pw, pwlen);
    free(name);
    return rc;
}

static int
do_unlock(const struct verb_ctx *v)
{
    char *name = NULL;
    int rc, ret;

    if ((rc = canonical(v, v->o->names[0], &name)) != CLI_OK)
        return rc;
    if (v->ops->princ_unlock == NULL)
        ret = ck_error_set(CK_ERR_UNSUPPORTED, "unlock is not available here");
    else
        ret = v->ops->princ_unlock(v->ctx, name);
    if (ret != 0)
        rc = cli_fail(v->what, ret);
    else
        printf("Principal %s unlocked.\n", name);
    free(name);
    return rc;
}

static int
do_rename(const struct verb_ctx *v)
{
    char *from = NULL, *to = NULL;
    int rc, ret;

    if ((rc = canonical(v, v->o->names[0], &from)) != CLI_OK ||
        (rc = canonical(v, v->o->names[1], &to)) != CLI_OK)
        goto out;
    if ((ret = v->ops->princ_rename(v->ctx, from, to)) != 0) {
        rc = cli_fail(v->what, ret);
        goto out;
    }
    printf("Principal %s renamed to %s.\n", from, to);
    rc = CLI_OK;
out:
    free(from);
    free(to);
    return rc;
}

int
cli_principal(int argc, char **argv)
{
    /* names: how many positional arguments (-1: 0 or 1). */
    static const struct {
        const char *name;
        int (*fn)(const struct verb_ctx *v);
        bool readonly;
        const char *allowed;
        int names;
    } subs[] = {
        {"add", do_add, false,
         " password password-stdin random flags enctypes max-life max-renew expires pw-expires"
         " policy clear-policy ",
         1},
        {"list", do_list, true, " ", -1},
        {"show", do_show, true, " ", 1},
        {"delete", do_delete, false, " yes ", 1},
        {"modify", do_modify, false,
         " flags max-life max-renew expires never-expires pw-expires policy clear-policy ", 1},
        {"rotate", do_rotate, false, " password password-stdin random enctypes keep ", 1},
        {"rename", do_rename, false, " ", 2},
        {"unlock", do_unlock, false, " ", 1},
    };
    struct verb_ctx v;
    char what[64];
    struct popts o;
    struct cli_executor ex;
    int rc, ret;

    if (cli_family_help(argc, argv, principal_help, NULL, &rc))
        return rc;
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        if (strcmp(argv[1], subs[i].name) != 0)
            continue;
        snprintf(what, sizeof(what), "principal %s", subs[i].name);
        rc = parse_opts(what, subs[i].name, argc - 1, argv + 1, &o);
        if (rc < 0)
            return CLI_OK; /* --help */
        if (rc != CLI_OK || (rc = only(what, &o, subs[i].allowed)) != CLI_OK)
            return rc;
        /* Every usage error is found before the database is opened. */
        if (subs[i].names >= 0 && o.n_names != (size_t)subs[i].names)
            return cli_usage_error(what, "expected %d principal name%s, got %zu",
                                   subs[i].names, subs[i].names == 1 ? "" : "s", o.n_names);
        if (subs[i].names < 0 && o.n_names > 1)
            return cli_no_more_args(what, o.names[1]);
        if (subs[i].fn == do_add && !o.random && !o.password_stdin && o.password == NULL)
            return cli_usage_error(what, "one of --password, --password-stdin or --random is "
                                         "required");
        if (subs[i].fn == do_modify && o.attr_set == 0 && o.attr_clear == 0 &&
            !o.has_max_life && !o.has_max_renew && !o.has_expires && !o.never_expires &&
            !o.has_pw_expires && o.policy == NULL && !o.clear_policy)
            return cli_usage_error(what, "nothing to change: give at least one option");
        if ((rc = cli_executor_open(what, o.db, o.stash, o.server, o.ca, subs[i].readonly,
                                    &ex)) != CLI_OK)
            return rc;
        memset(&v, 0, sizeof(v));
        v.what = what;
        v.o = &o;
        v.ops = ex.ops;
        v.ctx = ex.ctx;
        if ((ret = v.ops->realm_get(v.ctx, &v.realm)) != 0)
            rc = cli_fail(what, ret);
        else
            rc = subs[i].fn(&v);
        cli_executor_close(&ex);
        return rc;
    }
    return cli_unknown_verb("principal", argv[1]);
}
