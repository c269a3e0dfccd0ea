/* cablekey policy add|modify|show|list|delete (through the executor of admin_ops.h: the store
 * with --db, cablekey-admind with --server, the same output either way), and the policy parts of `cablekey principal`
 * (--policy/--clear-policy, the policy-checked password, the lockout lines of `show`, unlock),
 * kept here so that principal.c only calls them. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/error.h"
#include "cablekey/store.h"
#include "cablekey/util.h"
#include "admin_ops.h"
#include "cli.h"

enum {
    OPT_DB = 256, OPT_STASH, OPT_MIN_LENGTH, OPT_MIN_CLASSES, OPT_HISTORY, OPT_MIN_LIFE,
    OPT_MAX_LIFE, OPT_MAX_FAILURE, OPT_FAILURE_INTERVAL, OPT_LOCKOUT_DURATION, OPT_HELP,
    OPT_SERVER, OPT_CA,
};

static const struct option policy_opts[] = {
    {"db", required_argument, NULL, OPT_DB},
    {"stash", required_argument, NULL, OPT_STASH},
    {"server", required_argument, NULL, OPT_SERVER},
    {"ca", required_argument, NULL, OPT_CA},
    {"min-length", required_argument, NULL, OPT_MIN_LENGTH},
    {"min-classes", required_argument, NULL, OPT_MIN_CLASSES},
    {"history", required_argument, NULL, OPT_HISTORY},
    {"min-life", required_argument, NULL, OPT_MIN_LIFE},
    {"max-life", required_argument, NULL, OPT_MAX_LIFE},
    {"max-failure", required_argument, NULL, OPT_MAX_FAILURE},
    {"failure-interval", required_argument, NULL, OPT_FAILURE_INTERVAL},
    {"lockout-duration", required_argument, NULL, OPT_LOCKOUT_DURATION},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static const char policy_help[] =
    "usage: cablekey policy SUBCOMMAND (--db PATH|URI [--stash FILE] | --server URL "
    "[--ca FILE]) ...\n"
    "\n"
    "  add NAME [RULES]       create a password policy (rules not given are off)\n"
    "  modify NAME RULES      change the given rules of a policy\n"
    "  show NAME\n"
    "  list\n"
    "  delete NAME            refused while principals use it\n"
    "\n"
    "RULES (MIT kadmin's names in brackets):\n"
    "  --min-length N         minimum password length [minlength]\n"
    "  --min-classes N        character classes required, 1-5: lower, upper, digits,\n"
    "                         punctuation, other [minclasses]\n"
    "  --history N            passwords remembered, the current one included [history]\n"
    "  --min-life D           minimum time between password changes by the user [minlife]\n"
    "  --max-life D           password lifetime; each change sets the expiry [maxlife]\n"
    "  --max-failure N        failed pre-authentications that lock the principal, 0 = off\n"
    "                         [maxfailure]\n"
    "  --failure-interval D   failures older than this do not count, 0 = never reset\n"
    "                         [failurecountinterval]\n"
    "  --lockout-duration D   how long a lock lasts, 0 = until 'cablekey principal unlock'\n"
    "                         [lockoutduration]\n"
    "\n"
    "D is seconds or 10h, 7d, 1d12h, 30m. Attach a policy with 'cablekey principal add|modify\n"
    "NAME --policy POLICY'. Lockout needs pre-authentication (principals require it unless\n"
    "added with --no-preauth).\n";

struct polopts {
    const char *db, *stash;
    const char *server, *ca;  /* a remote executor (cli_executor_open) */
    unsigned set;             /* bit per RULE given */
    ck_policy rules;
    const char **names;
    size_t n_names;
};

enum {
    R_MIN_LENGTH = CLI_POL_MIN_LENGTH, R_MIN_CLASSES = CLI_POL_MIN_CLASSES,
    R_HISTORY = CLI_POL_HISTORY, R_MIN_LIFE = CLI_POL_MIN_LIFE, R_MAX_LIFE = CLI_POL_MAX_LIFE,
    R_MAX_FAILURE = CLI_POL_MAX_FAILURE, R_FAILURE_INTERVAL = CLI_POL_FAILURE_INTERVAL,
    R_LOCKOUT_DURATION = CLI_POL_LOCKOUT_DURATION,
};

static int
parse_count(const char *what, const char *opt, const char *s, int64_t max, uint32_t *out)
{
    int64_t v;

    if (ck_parse_int64(s, 0, max, &v) != 0)
        return cli_usage_error(what, "--%s: '%s' is not a number from 0 to %lld", opt, s,
                               (long long)max);
    *out = (uint32_t)v;
    return CLI_OK;
}

static int
parse_secs(const char *what, const char *opt, const char *s, int64_t *out)
{
    if (cli_parse_duration(s, out) != 0)
        return cli_usage_error(what, "--%s: %s", opt, ck_error_context());
    return CLI_OK;
}

static int
parse_policy_opts(const char *what, int argc, char **argv, struct polopts *o)
{
    int c, rc = CLI_OK;

    memset(o, 0, sizeof(*o));
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", policy_opts, NULL)) != -1 && rc == CLI_OK) {
        switch (c) {
        case OPT_DB: o->db = optarg; break;
        case OPT_STASH: o->stash = optarg; break;
        case OPT_SERVER: o->server = optarg; break;
        case OPT_CA: o->ca = optarg; break;
        case OPT_MIN_LENGTH:
            rc = parse_count(what, "min-length", optarg, 1024, &o->rules.min_length);
            o->set |= R_MIN_LENGTH;
            break;
        case OPT_MIN_CLASSES:
            rc = parse_count(what, "min-classes", optarg, CK_POLICY_MAX_CLASSES,
                             &o->rules.min_classes);
            o->set |= R_MIN_CLASSES;
            break;
        case OPT_HISTORY:
            rc = parse_count(what, "history", optarg, CK_POLICY_MAX_HISTORY, &o->rules.history);
            o->set |= R_HISTORY;
            break;
        case OPT_MAX_FAILURE:
            rc = parse_count(what, "max-failure", optarg, 1000000, &o->rules.max_failure);
            o->set |= R_MAX_FAILURE;
            break;
        case OPT_MIN_LIFE:
            rc = parse_secs(what, "min-life", optarg, &o->rules.min_life);
            o->set |= R_MIN_LIFE;
            break;
        case OPT_MAX_LIFE:
            rc = parse_secs(what, "max-life", optarg, &o->rules.max_life);
            o->set |= R_MAX_LIFE;
            break;
        case OPT_FAILURE_INTERVAL:
            rc = parse_secs(what, "failure-interval", optarg, &o->rules.failure_interval);
            o->set |= R_FAILURE_INTERVAL;
            break;
        case OPT_LOCKOUT_DURATION:
            rc = parse_secs(what, "lockout-duration", optarg, &o->rules.lockout_duration);
            o->set |= R_LOCKOUT_DURATION;
            break;
        default: return cli_getopt_other(what, c, OPT_HELP, argv, policy_help);
        }
    }
    if (rc != CLI_OK)
        return rc;
    o->names = (const char **)(argv + optind);
    o->n_names = (size_t)(argc - optind);
    return CLI_OK;
}

static int
one_policy_name(const char *what, const struct polopts *o)
{
    if (o->n_names != 1)
        return cli_usage_error(what, "expected exactly one policy name, got %zu", o->n_names);
    if (ck_policy_name_check(o->names[0]) != 0)
        return cli_usage_error(what, "%s", ck_error_context());
    return CLI_OK;
}

void
cli_policy_apply_rules(ck_policy *pol, const ck_policy *rules, unsigned present)
{
    if (present & R_MIN_LENGTH)
        pol->min_length = rules->min_length;
    if (present & R_MIN_CLASSES)
        pol->min_classes = rules->min_classes;
    if (present & R_HISTORY)
        pol->history = rules->history;
    if (present & R_MIN_LIFE)
        pol->min_life = rules->min_life;
    if (present & R_MAX_LIFE)
        pol->max_life = rules->max_life;
    if (present & R_MAX_FAILURE)
        pol->max_failure = rules->max_failure;
    if (present & R_FAILURE_INTERVAL)
        pol->failure_interval = rules->failure_interval;
    if (present & R_LOCKOUT_DURATION)
        pol->lockout_duration = rules->lockout_duration;
}

static int
pol_add(const char *what, const struct polopts *o, const struct cli_admin_ops *ops, void *ctx)
{
    ck_policy pol;
    int rc, ret;

    if ((rc = one_policy_name(what, o)) != CLI_OK)
        return rc;
    memset(&pol, 0, sizeof(pol));
    ck_strlcpy(pol.name, o->names[0], sizeof(pol.name));
    cli_policy_apply_rules(&pol, &o->rules, o->set);
    if ((ret = ops->policy_add(ctx, &pol)) != 0)
        return cli_fail(what, ret);
    printf("Policy %s created.\n", pol.name);
    return CLI_OK;
}

static int
pol_modify(const char *what, const struct polopts *o, const struct cli_admin_ops *ops, void *ctx)
{
    int rc, ret;

    if ((rc = one_policy_name(what, o)) != CLI_OK)
        return rc;
    if (o->set == 0)
        return cli_usage_error(what, "nothing to modify: give at least one rule (see --help)");
    if ((ret = ops->policy_modify(ctx, o->names[0], &o->rules, o->set)) != 0)
        return cli_fail(what, ret);
    printf("Policy %s modified.\n", o->names[0]);
    return CLI_OK;
}

static void
print_secs(const char *label, int64_t v, const char *zero)
{
    char buf[64];

    if (v == 0) {
        printf("%s: %s\n", label, zero);
        return;
    }
    cli_format_duration(v, buf, sizeof(buf));
    printf("%s: %s\n", label, buf);
}

void
cli_print_policy(const ck_policy *pol)
{
    /* MIT getpol's labels, so that operators' habits and scripts carry over. */
    printf("Policy: %s\n", pol->name);
    print_secs("Maximum password life", pol->max_life, "0 (passwords do not expire)");
    print_secs("Minimum password life", pol->min_life, "0");
    printf("Minimum password length: %u\n", pol->min_length);
    printf("Minimum number of password character classes: %u\n", pol->min_classes);
    printf("Number of old keys kept: %u\n", pol->history);
    printf("Maximum password failures before lockout: %u%s\n", pol->max_failure,
           pol->max_failure == 0 ? " (lockout off)" : "");
    print_secs("Password failure count reset interval", pol->failure_interval, "0 (never)");
    print_secs("Password lockout duration", pol->lockout_duration,
               "0 (until an administrator unlocks)");
    printf("Principals using it: %llu\n", (unsigned long long)pol->ref_count);
}

static int
pol_show(const char *what, const struct polopts *o, const struct cli_admin_ops *ops, void *ctx)
{
    ck_policy pol;
    int rc, ret;

    if ((rc = one_policy_name(what, o)) != CLI_OK)
        return rc;
    if ((ret = ops->policy_get(ctx, o->names[0], &pol)) != 0)
        return cli_fail(what, ret);
    cli_print_policy(&pol);
    return CLI_OK;
}

static int
print_policy_name(const char *name, void *arg)
{
    (void)arg;
    printf("%s\n", name);
    return 0;
}

static int
pol_list(const char *what, const struct polopts *o, const struct cli_admin_ops *ops, void *ctx)
{
    int ret;

    if ((ret = cli_no_more_args(what, o->n_names != 0 ? o->names[0] : NULL)) != CLI_OK)
        return ret;
    if ((ret = ops->policy_list(ctx, print_policy_name, NULL)) != 0)
        return cli_fail(what, ret);
    return CLI_OK;
}

static int
pol_delete(const char *what, const struct polopts *o, const struct cli_admin_ops *ops, void *ctx)
{
    int rc, ret;

    if ((rc = one_policy_name(what, o)) != CLI_OK)
        return rc;
    if ((ret = ops->policy_delete(ctx, o->names[0])) != 0)
        return cli_fail(what, ret);
    printf("Policy %s deleted.\n", o->names[0]);
    return CLI_OK;
}

int
cli_policy(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(const char *what, const struct polopts *o, const struct cli_admin_ops *ops,
                  void *ctx);
        bool readonly, rules;
    } subs[] = {
        {"add", pol_add, false, true},        {"modify", pol_modify, false, true},
        {"show", pol_show, true, false},      {"list", pol_list, true, false},
        {"delete", pol_delete, false, false},
    };
    char what[64];
    struct polopts o;
    struct cli_executor ex;
    int rc;

    if (cli_family_help(argc, argv, policy_help, NULL, &rc))
        return rc;
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        if (strcmp(argv[1], subs[i].name) != 0)
            continue;
        snprintf(what, sizeof(what), "policy %s", subs[i].name);
        rc = parse_policy_opts(what, argc - 1, argv + 1, &o);
        if (rc < 0)
            return CLI_OK; /* --help */
        if (rc != CLI_OK)
            return rc;
        if (!subs[i].rules && o.set != 0)
            return cli_usage_error(what, "rules do not apply here");
        if ((rc = cli_executor_open(what, o.db, o.stash, o.server, o.ca, subs[i].readonly,
                                    &ex)) != CLI_OK)
            return rc;
        rc = subs[i].fn(what, &o, ex.ops, ex.ctx);
        cli_executor_close(&ex);
        return rc;
    }
    return cli_unknown_verb("policy", argv[1]);
}

/* ---- the policy parts of `cablekey principal` (admin_ops.h) ---- */

int
cli_policy_new_principal(ck_store *store, const struct cli_princ_req *req, ck_db_principal *p)
{
    const char *name = NULL;
    ck_policy pol;
    int ret;

    if (req->mask & CLI_PRINC_POLICY) {
        name = req->policy;
        if (name == NULL)
            return 0; /* --clear-policy: not even "default" */
        if ((ret = ck_store_get_policy(store, name, &pol)) != 0)
            return ret;
    } else {
        /* MIT addprinc: a policy named "default", if there is one, unless told otherwise. */
        ret = ck_store_get_policy(store, "default", &pol);
        if (ret == CK_ERR_NOTFOUND) {
            ck_error_clear();
            return 0;
        }
        if (ret != 0)
            return ret;
    }
    if (req->keys == CLI_KEYS_PASSWORD &&
        (ret = ck_store_check_password(store, NULL, &pol, req->password, req->password_len)) != 0)
        return ret;
    if ((p->policy = strdup(pol.name)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "policy name");
    if (req->keys == CLI_KEYS_PASSWORD) {
        int64_t now = 0;

        ck_now(&now, NULL);
        p->last_pwd_change = now;
        if (pol.max_life > 0 && !(req->mask & CLI_PRINC_PW_EXPIRES))
            p->pw_expires = now + pol.max_life;
    }
    return 0;
}

void
cli_print_principal_policy(const ck_db_principal *p)
{
    char buf[64];
    int64_t now = 0;

    ck_now(&now, NULL);
    printf("Policy: %s\n", p->policy != NULL ? p->policy : "[none]");
    if (p->last_pwd_change != 0) {
        cli_format_time(p->last_pwd_change, buf, sizeof(buf));
        printf("Last password change: %s\n", buf);
    } else {
        printf("Last password change: [never]\n");
    }
    if (p->lockout.last_success != 0) {
        cli_format_time(p->lockout.last_success, buf, sizeof(buf));
        printf("Last successful authentication: %s\n", buf);
    } else {
        printf("Last successful authentication: [never]\n");
    }
    if (p->lockout.last_failed != 0) {
        cli_format_time(p->lockout.last_failed, buf, sizeof(buf));
        printf("Last failed authentication: %s\n", buf);
    } else {
        printf("Last failed authentication: [never]\n");
    }
    printf("Failed password attempts: %u\n", p->lockout.fail_count);
    if (!ck_lockout_is_locked(&p->lockout, now)) {
        printf("Locked: no\n");
    } else if (p->lockout.lockout_duration == 0) {
        printf("Locked: yes, until 'cablekey principal unlock'\n");
    } else {
        cli_format_time(p->lockout.last_failed + p->lockout.lockout_duration, buf, sizeof(buf));
        printf("Locked: yes, until %s\n", buf);
    }
}
