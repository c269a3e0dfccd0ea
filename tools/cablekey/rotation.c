/* cablekey rotation status|policy|pause|resume|run: service-key versioning
 * (cablekey/rotation.h) on the KDC host's database (--db PATH|URI). `rotation master-key ...`
 * belongs to rotation_mkey.c. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cablekey/error.h"
#include "cablekey/rotation.h"
#include "cablekey/store.h"
#include "cablekey/util.h"
#include "cli.h"

enum {
    OPT_DB = 256, OPT_STASH, OPT_JSON, OPT_FORCE, OPT_PERIOD, OPT_OLD_VALID, OPT_CONFIRM,
    OPT_HOSTS, OPT_SETTLE, OPT_CONFIRM_TIMEOUT, OPT_KEEP, OPT_HELP, OPT_HOST, OPT_KVNO,
};

static const struct option rot_opts[] = {
    {"db", required_argument, NULL, OPT_DB},
    {"stash", required_argument, NULL, OPT_STASH},
    {"json", no_argument, NULL, OPT_JSON},
    {"force", no_argument, NULL, OPT_FORCE},
    {"period", required_argument, NULL, OPT_PERIOD},
    {"old-valid", required_argument, NULL, OPT_OLD_VALID},
    {"confirm", required_argument, NULL, OPT_CONFIRM},
    {"hosts", required_argument, NULL, OPT_HOSTS},
    {"settle", required_argument, NULL, OPT_SETTLE},
    {"confirm-timeout", required_argument, NULL, OPT_CONFIRM_TIMEOUT},
    {"keep", required_argument, NULL, OPT_KEEP},
    {"host", required_argument, NULL, OPT_HOST},
    {"kvno", required_argument, NULL, OPT_KVNO},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static const char rotation_help[] =
    "usage: cablekey rotation SUBCOMMAND --db PATH|URI [--stash FILE] ...\n"
    "\n"
    "  status [PRINCIPAL] [--json]\n"
    "                         current, staged and old kvnos with their times, the hosts and\n"
    "                         their confirmations, the next step and when\n"
    "  policy set PRINCIPAL --period D --old-valid D [--confirm agent|none] [--hosts H1,H2]\n"
    "         [--settle D] [--confirm-timeout D] [--keep N]\n"
    "                         create or replace a service's rotation policy\n"
    "  policy show PRINCIPAL [--json]\n"
    "  policy list [--json]\n"
    "  policy delete PRINCIPAL\n"
    "  pause PRINCIPAL        the engine leaves the service alone until resume\n"
    "  resume PRINCIPAL\n"
    "  run [PRINCIPAL] [--force]\n"
    "                         one engine pass now (every policy, or one service); --force\n"
    "                         stages PRINCIPAL's next kvno now, whatever its period\n"
    "  confirm PRINCIPAL --host H --kvno N\n"
    "                         record that host H holds kvno N (a host whose keytab is not kept\n"
    "                         by a keytab-agent, updated by hand)\n"
    "  master-key ...         master-key rotation (cablekey rotation master-key --help)\n"
    "\n"
    "--period: from one activation to the next staging (at least 1m). --old-valid: how long a\n"
    "retired kvno stays (at least the realm's longest ticket and renewable life).\n"
    "--confirm agent (default): the new kvno becomes current when every host of --hosts (or,\n"
    "with none named, any one host) has confirmed it through its keytab-agent; after\n"
    "--confirm-timeout (default 1h) a key-unconfirmed alarm names the hosts missing.\n"
    "--confirm none (krbtgt, services without an agent): current --settle (default 0) after\n"
    "staging. --keep N: retired kvnos always kept (default 1). D is seconds or 10h, 7d, 30m.\n"
    "cablekey-kdc runs the engine every rotation_interval (docs/rotation.md).\n";

struct rotopts {
    const char *db, *stash;
    bool json, force;
    bool has_period, has_old_valid, has_confirm, has_hosts, has_settle, has_timeout, has_keep;
    int64_t period, old_valid, settle, confirm_timeout;
    enum ck_rot_confirm confirm;
    unsigned keep;
    const char *hosts;
    const char *host;  /* confirm */
    uint32_t kvno;     /* confirm; 0: not given */
    const char **args;
    size_t n_args;
};

static int
parse_secs(const char *what, const char *opt, const char *s, int64_t *out)
{
    if (cli_parse_duration(s, out) != 0)
        return cli_usage_error(what, "--%s: %s", opt, ck_error_context());
    return CLI_OK;
}

static int
parse_opts(const char *what, int argc, char **argv, struct rotopts *o)
{
    int64_t v;
    int c, rc = CLI_OK;

    memset(o, 0, sizeof(*o));
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", rot_opts, NULL)) != -1 && rc == CLI_OK) {
        switch (c) {
        case OPT_DB: o->db = optarg; break;
        case OPT_STASH: o->stash = optarg; break;
        case OPT_JSON: o->json = true; break;
        case OPT_FORCE: o->force = true; break;
        case OPT_PERIOD:
            rc = parse_secs(what, "period", optarg, &o->period);
            o->has_period = true;
            break;
        case OPT_OLD_VALID:
            rc = parse_secs(what, "old-valid", optarg, &o->old_valid);
            o->has_old_valid = true;
            break;
        case OPT_SETTLE:
            rc = parse_secs(what, "settle", optarg, &o->settle);
            o->has_settle = true;
            break;
        case OPT_CONFIRM_TIMEOUT:
            rc = parse_secs(what, "confirm-timeout", optarg, &o->confirm_timeout);
            o->has_timeout = true;
            break;
        case OPT_CONFIRM:
            if (strcmp(optarg, "agent") == 0)
                o->confirm = CK_ROT_CONFIRM_AGENT;
            else if (strcmp(optarg, "none") == 0)
                o->confirm = CK_ROT_CONFIRM_NONE;
            else
                rc = cli_usage_error(what, "--confirm: '%s' is neither agent nor none", optarg);
            o->has_confirm = true;
            break;
        case OPT_HOSTS:
            o->hosts = optarg;
            o->has_hosts = true;
            break;
        case OPT_KEEP:
            if (ck_parse_int64(optarg, 0, CK_STORE_MAX_KEYS / 2, &v) != 0)
                rc = cli_usage_error(what, "--keep: '%s' is not a number from 0 to %d", optarg,
                                     CK_STORE_MAX_KEYS / 2);
            o->keep = (unsigned)v;
            o->has_keep = true;
            break;
        case OPT_HOST: o->host = optarg; break;
        case OPT_KVNO:
            if (ck_parse_int64(optarg, 1, UINT32_MAX, &v) != 0)
                rc = cli_usage_error(what, "--kvno: '%s' is not a kvno", optarg);
            o->kvno = (uint32_t)v;
            break;
        default: return cli_getopt_other(what, c, OPT_HELP, argv, rotation_help);
        }
    }
    if (rc != CLI_OK)
        return rc;
    o->args = (const char **)(argv + optind);
    o->n_args = (size_t)(argc - optind);
    return CLI_OK;
}

/* Refuses the options a verb does not take (so a mistyped verb never half-applies). */
static int
only(const char *what, const struct rotopts *o, bool policy_opts, bool json, bool force)
{
    if (!policy_opts && (o->has_period || o->has_old_valid || o->has_confirm || o->has_hosts ||
                         o->has_settle || o->has_timeout || o->has_keep))
        return cli_usage_error(what, "policy options are for 'rotation policy set' only");
    if (!json && o->json)
        return cli_usage_error(what, "--json is not an option of this subcommand");
    if (!force && o->force)
        return cli_usage_error(what, "--force is for 'rotation run PRINCIPAL' only");
    if (o->host != NULL || o->kvno != 0)
        return cli_usage_error(what, "--host and --kvno are for 'rotation confirm' only");
    return CLI_OK;
}

/* The principal argument in canonical form (malloc'd into *name). */
static int
principal_arg(const char *what, const struct rotopts *o, size_t first, bool optional,
              ck_store *store, char **name)
{
    *name = NULL;
    if (o->n_args > first + 1)
        return cli_usage_error(what, "unexpected argument '%s'", o->args[first + 1]);
    if (o->n_args <= first)
        return optional ? CLI_OK : cli_usage_error(what, "a PRINCIPAL is required");
    return cli_canonical_name(what, store, o->args[first], name);
}

/* ---- output ---- */

static void
fmt_secs(int64_t v, char *buf, size_t size)
{
    if (v % 86400 == 0 && v > 0)
        snprintf(buf, size, "%lldd", (long long)(v / 86400));
    else if (v % 3600 == 0 && v > 0)
        snprintf(buf, size, "%lldh", (long long)(v / 3600));
    else if (v % 60 == 0 && v > 0)
        snprintf(buf, size, "%lldm", (long long)(v / 60));
    else
        snprintf(buf, size, "%llds", (long long)v);
}

static void
fmt_time(int64_t t, char *buf, size_t size)
{
    if (t == 0)
        ck_strlcpy(buf, "-", size);
    else
        cli_format_time(t, buf, size);
}

static void
print_policy(const ck_rotation_policy *pol)
{
    char p[32], ov[32], s[32], ct[32];

    fmt_secs(pol->period, p, sizeof(p));
    fmt_secs(pol->old_valid, ov, sizeof(ov));
    fmt_secs(pol->settle, s, sizeof(s));
    fmt_secs(pol->confirm_timeout, ct, sizeof(ct));
    printf("Principal: %s\n", pol->principal);
    printf("Period: %s\nOld kvnos valid: %s\nKeep: %u\n", p, ov,
           pol->keep_min == 0 ? 1 : pol->keep_min);
    if (pol->confirm == CK_ROT_CONFIRM_NONE) {
        printf("Confirm: none (current %s after staging)\n", s);
    } else {
        printf("Confirm: agent (timeout %s)\nHosts:", ct);
        if (pol->n_hosts == 0)
            printf(" (any one host)");
        for (size_t i = 0; i < pol->n_hosts; i++)
            printf("%s %s", i > 0 ? "," : "", pol->hosts[i]);
        printf("\n");
    }
    printf("Paused: %s\n", pol->paused ? "yes" : "no");
}

static json_t *
policy_json(const ck_rotation_policy *pol)
{
    json_t *o = json_object(), *hosts = json_array();

    for (size_t i = 0; i < pol->n_hosts; i++)
        json_array_append_new(hosts, json_string(pol->hosts[i]));
    json_object_set_new(o, "principal", json_string(pol->principal));
    json_object_set_new(o, "period", json_integer(pol->period));
    json_object_set_new(o, "old_valid", json_integer(pol->old_valid));
    json_object_set_new(o, "confirm",
                        json_string(pol->confirm == CK_ROT_CONFIRM_NONE ? "none" : "agent"));
    json_object_set_new(o, "hosts", hosts);
    json_object_set_new(o, "settle", json_integer(pol->settle));
    json_object_set_new(o, "confirm_timeout", json_integer(pol->confirm_timeout));
    json_object_set_new(o, "keep", json_integer(pol->keep_min == 0 ? 1 : pol->keep_min));
    json_object_set_new(o, "paused", json_boolean(pol->paused));
    return o;
}

/* What the engine does next for this service, in words. */
static void
next_step(const ck_rotation_status *st, int64_t now, char *buf, size_t size)
{
    ck_rotation_plan plan;
    char when[64];

    ck_rotation_plan_compute(st, now, &plan);
    fmt_time(plan.next_due, when, sizeof(when));
    if (!st->has_policy)
        snprintf(buf, size, "none (no rotation policy)");
    else if (st->policy.paused)
        snprintf(buf, size, "none (paused)");
    else if (plan.activate)
        snprintf(buf, size, "activate kvno %u at the next engine pass", st->staged_kvno);
    else if (st->staged_kvno != 0 && st->policy.confirm == CK_ROT_CONFIRM_NONE)
        snprintf(buf, size, "activate kvno %u at %s", st->staged_kvno, when);
    else if (st->staged_kvno != 0) {
        size_t len = (size_t)snprintf(buf, size, "activate kvno %u when confirmed by ",
                                      st->staged_kvno);

        if (plan.n_missing == 0)
            snprintf(buf + len, size - len, "any host");
        for (size_t i = 0; i < plan.n_missing && len < size; i++)
            len += (size_t)snprintf(buf + len, size - len, "%s%s", i > 0 ? ", " : "",
                                    plan.missing[i]);
        if (len < size)
            snprintf(buf + len, size - len, "%s", plan.unconfirmed ? " (key-unconfirmed alarm "
                                                                     "raised)" : "");
    } else if (plan.stage || plan.n_purge > 0)
        snprintf(buf, size, "%s at the next engine pass", plan.stage ? "stage" : "purge");
    else
        snprintf(buf, size, "%s at %s", plan.next_due != 0 ? "next step" : "nothing due",
                 when);
}

static void
print_status(const ck_rotation_status *st, int64_t now)
{
    char t1[64], t2[64], t3[64], next[1024];

    if (st->has_policy)
        print_policy(&st->policy);
    else
        printf("Principal: %s\nPolicy: none\n", st->principal);
    printf("Current kvno: %u\n", st->current_kvno);
    if (st->staged_kvno != 0)
        printf("Staged kvno: %u\n", st->staged_kvno);
    else
        printf("Staged kvno: none\n");
    printf("Kvnos:\n");
    for (size_t i = 0; i < st->n_kvnos; i++) {
        const ck_rotation_kvno *k = &st->kvnos[i];
        const char *role = k->kvno == st->current_kvno ? "current"
                           : k->kvno > st->current_kvno ? "staged"
                                                        : "retired";

        fmt_time(k->staged, t1, sizeof(t1));
        fmt_time(k->activated, t2, sizeof(t2));
        fmt_time(k->retired, t3, sizeof(t3));
        printf("  kvno %u %s: staged %s, activated %s, retired %s\n", k->kvno, role, t1, t2, t3);
    }
    printf("Confirmations:%s\n", st->n_confirmations == 0 ? " none" : "");
    for (size_t i = 0; i < st->n_confirmations; i++) {
        fmt_time(st->confirmations[i].confirmed, t1, sizeof(t1));
        printf("  %s: kvno %u at %s\n", st->confirmations[i].host, st->confirmations[i].kvno,
               t1);
    }
    next_step(st, now, next, sizeof(next));
    printf("Next: %s\n", next);
}

static json_t *
status_json(const ck_rotation_status *st, int64_t now)
{
    json_t *o = json_object(), *kv = json_array(), *conf = json_array();
    char next[1024];

    json_object_set_new(o, "principal", json_string(st->principal));
    json_object_set_new(o, "policy", st->has_policy ? policy_json(&st->policy) : json_null());
    json_object_set_new(o, "current_kvno", json_integer(st->current_kvno));
    json_object_set_new(o, "staged_kvno",
                        st->staged_kvno != 0 ? json_integer(st->staged_kvno) : json_null());
    for (size_t i = 0; i < st->n_kvnos; i++) {
        const ck_rotation_kvno *k = &st->kvnos[i];

        json_array_append_new(kv, json_pack("{s:I,s:I,s:I,s:I}", "kvno", (json_int_t)k->kvno,
                                            "staged", (json_int_t)k->staged, "activated",
                                            (json_int_t)k->activated, "retired",
                                            (json_int_t)k->retired));
    }
    for (size_t i = 0; i < st->n_confirmations; i++)
        json_array_append_new(conf, json_pack("{s:s,s:I,s:I}", "host",
                                              st->confirmations[i].host, "kvno",
                                              (json_int_t)st->confirmations[i].kvno, "confirmed",
                                              (json_int_t)st->confirmations[i].confirmed));
    json_object_set_new(o, "kvnos", kv);
    json_object_set_new(o, "confirmations", conf);
    json_object_set_new(o, "next_due", json_integer(st->next_due));
    next_step(st, now, next, sizeof(next));
    json_object_set_new(o, "next", json_string(next));
    return o;
}

static int
print_json(const char *what, json_t *j)
{
    char *text;

    if (j == NULL || (text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER)) == NULL) {
        json_decref(j);
        return cli_fail(what, ck_error_set(CK_ERR_NOMEM, "JSON output"));
    }
    printf("%s\n", text);
    free(text);
    json_decref(j);
    return CLI_OK;
}

/* ---- verbs ---- */

struct names {
    char **v;
    size_t n, cap;
};

static int
collect_name(const ck_rotation_policy *pol, void *arg)
{
    struct names *ns = arg;

    if (ns->n == ns->cap) {
        size_t cap = ns->cap == 0 ? 16 : ns->cap * 2;
        char **v = realloc(ns->v, cap * sizeof(*v));

        if (v == NULL)
            return ck_error_set(CK_ERR_NOMEM, "policy list");
        ns->v = v;
        ns->cap = cap;
    }
    if ((ns->v[ns->n] = strdup(pol->principal)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "policy list");
    ns->n++;
    return 0;
}

static void
names_free(struct names *ns)
{
    for (size_t i = 0; i < ns->n; i++)
        free(ns->v[i]);
    free(ns->v);
}

static int
do_status(const char *what, const struct rotopts *o, ck_store *store)
{
    struct names ns = {NULL, 0, 0};
    ck_rotation_status *st = NULL;
    json_t *arr = NULL;
    char *name = NULL;
    int64_t now = 0;
    int rc, ret = 0;

    if ((rc = only(what, o, false, true, false)) != CLI_OK ||
        (rc = principal_arg(what, o, 0, true, store, &name)) != CLI_OK)
        return rc;
    ck_now(&now, NULL);
    if ((st = calloc(1, sizeof(*st))) == NULL) {
        free(name);
        return cli_fail(what, ck_error_set(CK_ERR_NOMEM, "status"));
    }
    if (name != NULL) {
        if ((ret = ck_store_rotation_status(store, name, st)) == 0) {
            if (o->json)
                rc = print_json(what, status_json(st, now));
            else
                print_status(st, now);
        }
        goto out;
    }
    if ((ret = ck_store_rotation_policy_list(store, collect_name, &ns)) != 0)
        goto out;
    if (o->json)
        arr = json_array();
    for (size_t i = 0; i < ns.n && ret == 0; i++) {
        if ((ret = ck_store_rotation_status(store, ns.v[i], st)) != 0)
            break;
        if (o->json) {
            json_array_append_new(arr, status_json(st, now));
        } else {
            if (i > 0)
                printf("\n");
            print_status(st, now);
        }
    }
    if (ret == 0 && o->json) {
        rc = print_json(what, arr);
        arr = NULL;
    } else if (ret == 0 && ns.n == 0) {
        printf("No rotation policies.\n");
    }
out:
    json_decref(arr);
    names_free(&ns);
    free(st);
    free(name);
    return ret != 0 ? cli_fail(what, ret) : rc;
}

static int
split_hosts(const char *what, const char *list, ck_rotation_policy *pol)
{
    const char *s = list;

    pol->n_hosts = 0;
    while (*s != '\0') {
        size_t n = strcspn(s, ",");

        if (n == 0)
            return cli_usage_error(what, "--hosts: empty host name in '%s'", list);
        if (pol->n_hosts >= CK_ROT_HOSTS_MAX)
            return cli_usage_error(what, "--hosts: more than %d hosts", CK_ROT_HOSTS_MAX);
        if (n >= CK_ROT_HOST_MAX)
            return cli_usage_error(what, "--hosts: a host name longer than %d bytes",
                                   CK_ROT_HOST_MAX - 1);
        memcpy(pol->hosts[pol->n_hosts], s, n);
        pol->hosts[pol->n_hosts][n] = '\0';
        pol->n_hosts++;
        s += n;
        if (*s == ',' && *++s == '\0')
            return cli_usage_error(what, "--hosts: empty host name in '%s'", list);
    }
    return CLI_OK;
}

static int
pol_set(const char *what, const struct rotopts *o, ck_store *store)
{
    ck_rotation_policy *pol = NULL, *old = NULL;
    char *name = NULL;
    int rc, ret = 0;

    if ((rc = only(what, o, true, false, false)) != CLI_OK ||
        (rc = principal_arg(what, o, 0, false, store, &name)) != CLI_OK)
        return rc;
    if (!o->has_period || !o->has_old_valid) {
        free(name);
        return cli_usage_error(what, "--period and --old-valid are required");
    }
    if ((pol = calloc(1, sizeof(*pol))) == NULL || (old = calloc(1, sizeof(*old))) == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "policy");
        goto out;
    }
    ck_strlcpy(pol->principal, name, sizeof(pol->principal));
    pol->period = o->period;
    pol->old_valid = o->old_valid;
    pol->confirm = o->has_confirm ? o->confirm : CK_ROT_CONFIRM_AGENT;
    pol->settle = o->has_settle ? o->settle : 0;
    pol->confirm_timeout = o->has_timeout ? o->confirm_timeout : 3600;
    pol->keep_min = o->has_keep ? o->keep : 1;
    if (o->has_hosts && (rc = split_hosts(what, o->hosts, pol)) != CLI_OK)
        goto out;
    /* A replaced policy stays paused: resume is its own, deliberate step. */
    ret = ck_store_rotation_policy_get(store, name, old);
    if (ret == 0)
        pol->paused = old->paused;
    else if (ret == CK_ERR_NOTFOUND)
        ck_error_clear();
    else
        goto out;
    if ((ret = ck_store_rotation_policy_set(store, pol)) != 0)
        goto out;
    printf("Rotation policy of %s set%s.\n", name, pol->paused ? " (still paused)" : "");
out:
    free(pol);
    free(old);
    free(name);
    return ret != 0 ? cli_fail(what, ret) : rc;
}

static int
pol_show(const char *what, const struct rotopts *o, ck_store *store)
{
    ck_rotation_policy *pol = NULL;
    char *name = NULL;
    int rc, ret;

    if ((rc = only(what, o, false, true, false)) != CLI_OK ||
        (rc = principal_arg(what, o, 0, false, store, &name)) != CLI_OK)
        return rc;
    if ((pol = calloc(1, sizeof(*pol))) == NULL)
        ret = ck_error_set(CK_ERR_NOMEM, "policy");
    else if ((ret = ck_store_rotation_policy_get(store, name, pol)) == 0) {
        if (o->json)
            rc = print_json(what, policy_json(pol));
        else
            print_policy(pol);
    }
    free(pol);
    free(name);
    return ret != 0 ? cli_fail(what, ret) : rc;
}

static int
print_list_entry(const ck_rotation_policy *pol, void *arg)
{
    json_t *arr = arg;
    char p[32];

    if (arr != NULL)
        return json_array_append_new(arr, policy_json(pol)) == 0
                   ? 0
                   : ck_error_set(CK_ERR_NOMEM, "JSON output");
    fmt_secs(pol->period, p, sizeof(p));
    printf("%s period=%s confirm=%s%s\n", pol->principal, p,
           pol->confirm == CK_ROT_CONFIRM_NONE ? "none" : "agent", pol->paused ? " paused" : "");
    return 0;
}

static int
pol_list(const char *what, const struct rotopts *o, ck_store *store)
{
    json_t *arr = NULL;
    int rc, ret;

    if ((rc = only(what, o, false, true, false)) != CLI_OK)
        return rc;
    if (o->n_args > 0)
        return cli_usage_error(what, "unexpected argument '%s'", o->args[0]);
    if (o->json && (arr = json_array()) == NULL)
        return cli_fail(what, ck_error_set(CK_ERR_NOMEM, "JSON output"));
    if ((ret = ck_store_rotation_policy_list(store, print_list_entry, arr)) != 0) {
        json_decref(arr);
        return cli_fail(what, ret);
    }
    return o->json ? print_json(what, arr) : CLI_OK;
}

static int
pol_delete(const char *what, const struct rotopts *o, ck_store *store)
{
    char *name = NULL;
    int rc, ret;

    if ((rc = only(what, o, false, false, false)) != CLI_OK ||
        (rc = principal_arg(what, o, 0, false, store, &name)) != CLI_OK)
        return rc;
    ret = ck_store_rotation_policy_del(store, name);
    if (ret == 0)
        printf("Rotation policy of %s deleted (its kvnos stay as they are).\n", name);
    free(name);
    return ret != 0 ? cli_fail(what, ret) : CLI_OK;
}

static int
do_pause(const char *what, const struct rotopts *o, ck_store *store, bool paused)
{
    char *name = NULL;
    int rc, ret;

    if ((rc = only(what, o, false, false, false)) != CLI_OK ||
        (rc = principal_arg(what, o, 0, false, store, &name)) != CLI_OK)
        return rc;
    ret = ck_store_rotation_pause(store, name, paused);
    if (ret == 0)
        printf("Rotation of %s %s.\n", name, paused ? "paused" : "resumed");
    free(name);
    return ret != 0 ? cli_fail(what, ret) : CLI_OK;
}

static int
do_pause_on(const char *what, const struct rotopts *o, ck_store *store)
{
    return do_pause(what, o, store, true);
}

static int
do_resume(const char *what, const struct rotopts *o, ck_store *store)
{
    return do_pause(what, o, store, false);
}

static int
do_run(const char *what, const struct rotopts *o, ck_store *store)
{
    ck_rotation_report rep;
    ck_rotation_status *st = NULL;
    char *name = NULL;
    int64_t now = 0;
    int rc, ret;

    if ((rc = only(what, o, false, false, true)) != CLI_OK ||
        (rc = principal_arg(what, o, 0, true, store, &name)) != CLI_OK)
        return rc;
    if (o->force && name == NULL)
        return cli_usage_error(what, "--force needs a PRINCIPAL");
    ck_now(&now, NULL);
    memset(&rep, 0, sizeof(rep));
    if (o->force) {
        if ((ret = ck_rotation_force(store, name, now)) == 0 &&
            (st = calloc(1, sizeof(*st))) != NULL &&
            ck_store_rotation_status(store, name, st) == 0)
            printf("Staged kvno %u of %s (current %u).\n", st->staged_kvno, name,
                   st->current_kvno);
        free(st);
    } else {
        ret = name != NULL ? ck_rotation_tick_one(store, name, now, NULL, &rep)
                           : ck_rotation_tick(store, now, NULL, &rep);
        if (ret == 0)
            printf("Engine pass: %zu staged, %zu activated, %zu kvnos purged, %zu unconfirmed, "
                   "%zu errors.\n", rep.staged, rep.activated, rep.purged, rep.unconfirmed,
                   rep.errors);
        if (ret == 0 && rep.errors > 0)
            ret = ck_error_set(CK_ERR_DB, "%zu service(s) failed (see the messages above)",
                               rep.errors);
    }
    free(name);
    return ret != 0 ? cli_fail(what, ret) : CLI_OK;
}

static int
do_confirm(const char *what, const struct rotopts *o, ck_store *store)
{
    struct rotopts rest = *o;
    char *name = NULL;
    int64_t now = 0;
    int rc, ret;

    if (o->host == NULL || o->kvno == 0)
        return cli_usage_error(what, "--host and --kvno are required");
    rest.host = NULL;
    rest.kvno = 0;
    if ((rc = only(what, &rest, false, false, false)) != CLI_OK ||
        (rc = principal_arg(what, o, 0, false, store, &name)) != CLI_OK)
        return rc;
    ck_now(&now, NULL);
    ret = ck_store_key_confirm(store, name, o->host, o->kvno, now);
    if (ret == 0)
        printf("Host %s holds kvno %u of %s.\n", o->host, o->kvno, name);
    free(name);
    return ret != 0 ? cli_fail(what, ret) : CLI_OK;
}

typedef int (*verb_fn)(const char *what, const struct rotopts *o, ck_store *store);

static int
run_verb(const char *what, int argc, char **argv, verb_fn fn, bool readonly)
{
    struct rotopts o;
    ck_store *store = NULL;
    int rc;

    rc = parse_opts(what, argc, argv, &o);
    if (rc < 0)
        return CLI_OK; /* --help */
    if (rc != CLI_OK)
        return rc;
    if ((rc = cli_open_store(what, o.db, o.stash, readonly, &store)) != CLI_OK)
        return rc;
    rc = fn(what, &o, store);
    ck_store_close(store);
    return rc;
}

int
cli_rotation(int argc, char **argv)
{
    static const struct {
        const char *name;
        verb_fn fn;
        bool readonly;
    } subs[] = {
        {"status", do_status, true},   {"pause", do_pause_on, false},
        {"resume", do_resume, false},  {"run", do_run, false},
        {"confirm", do_confirm, false},
    };
    static const struct {
        const char *name;
        verb_fn fn;
        bool readonly;
    } pol_subs[] = {
        {"set", pol_set, false},   {"show", pol_show, true},
        {"list", pol_list, true},  {"delete", pol_delete, false},
    };
    char what[64];
    int rc;

    if (cli_family_help(argc, argv, rotation_help, NULL, &rc))
        return rc;
    if (strcmp(argv[1], "master-key") == 0) {
        return cli_rotation_master_key(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "policy") == 0) {
        if (argc < 3 || argv[2][0] == '-')
            return cli_usage_error("rotation policy", "expected set, show, list or delete");
        for (size_t i = 0; i < sizeof(pol_subs) / sizeof(pol_subs[0]); i++) {
            if (strcmp(argv[2], pol_subs[i].name) != 0)
                continue;
            snprintf(what, sizeof(what), "rotation policy %s", pol_subs[i].name);
            return run_verb(what, argc - 2, argv + 2, pol_subs[i].fn, pol_subs[i].readonly);
        }
        return cli_unknown_verb("rotation policy", argv[2]);
    }
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        if (strcmp(argv[1], subs[i].name) != 0)
            continue;
        snprintf(what, sizeof(what), "rotation %s", subs[i].name);
        return run_verb(what, argc - 1, argv + 1, subs[i].fn, subs[i].readonly);
    }
    return cli_unknown_verb("rotation", argv[1]);
}
