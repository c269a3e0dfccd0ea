/* cablekey customer add|show|list|modify --server URL: the customer accounts of the
 * provisioning database, over cablekey-prov's JSON API (prov_remote.h). There is no local
 * (--db) mode: cablekey-prov owns these rows (audit, webhooks and idempotency records are
 * written with them). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cablekey/error.h"
#include "cablekey/prov.h"
#include "cablekey/util.h"
#include "cli.h"
#include "prov_remote.h"

enum {
    OPT_SERVER = 256, OPT_CA, OPT_ID, OPT_NAME, OPT_ADDRESS, OPT_EMAIL, OPT_SEGMENT, OPT_TYPE,
    OPT_SERVICES, OPT_QUERY, OPT_AFTER, OPT_LIMIT, OPT_IDEM, OPT_HELP,
};

static const struct option cust_opts[] = {
    {"server", required_argument, NULL, OPT_SERVER},
    {"ca", required_argument, NULL, OPT_CA},
    {"id", required_argument, NULL, OPT_ID},
    {"name", required_argument, NULL, OPT_NAME},
    {"address", required_argument, NULL, OPT_ADDRESS},
    {"email", required_argument, NULL, OPT_EMAIL},
    {"segment", required_argument, NULL, OPT_SEGMENT},
    {"type", required_argument, NULL, OPT_TYPE},
    {"services", required_argument, NULL, OPT_SERVICES},
    {"query", required_argument, NULL, OPT_QUERY},
    {"after", required_argument, NULL, OPT_AFTER},
    {"limit", required_argument, NULL, OPT_LIMIT},
    {"idempotency-key", required_argument, NULL, OPT_IDEM},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static const char customer_help[] =
    "usage: cablekey customer VERB --server=URL [--ca FILE] ... (on cablekey-prov)\n"
    "\n"
    "  add --name TEXT --address TEXT --segment S [--email E] [--type customer|repair]\n"
    "      [--services JSON] [--idempotency-key KEY]\n"
    "  show --id ID                   the account, its devices and its history\n"
    "  list [--query TEXT] [--after ID] [--limit N]\n"
    "  modify --id ID [--name TEXT] [--address TEXT] [--email E] [--services JSON]\n"
    "\n"
    "The customer database is cablekey-prov's: URL is https://HOST[:PORT] (port 8088 if none)\n"
    "or http:// to a loopback address; your Kerberos ticket authenticates (kinit first; the ACL\n"
    "needs 'a' to add or modify, 'i' to read). A repair account (--type repair) is a repair\n"
    "facility's: devices sent to repair are provisioned to it with short certificates. add\n"
    "prints the new account (its Customer: id is what `device provision --customer` takes);\n"
    "list prints one account per line: id, type, segment, name, address; show adds the\n"
    "events, newest first (time, action, actor, MAC, customer, detail). --query matches name,\n"
    "address or e-mail. --services: a JSON object of service options. Errors of the API are\n"
    "printed on stderr (exit status 1).\n";

struct copts {
    const char *server, *ca, *name, *address, *email, *segment, *type, *services, *query, *idem;
    int64_t id, after, limit;
};

static int
parse(const char *what, int argc, char **argv, struct copts *o)
{
    int c, rc;

    memset(o, 0, sizeof(*o));
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", cust_opts, NULL)) != -1) {
        switch (c) {
        case OPT_SERVER: o->server = optarg; break;
        case OPT_CA: o->ca = optarg; break;
        case OPT_NAME: o->name = optarg; break;
        case OPT_ADDRESS: o->address = optarg; break;
        case OPT_EMAIL: o->email = optarg; break;
        case OPT_SEGMENT: o->segment = optarg; break;
        case OPT_SERVICES: o->services = optarg; break;
        case OPT_QUERY: o->query = optarg; break;
        case OPT_TYPE:
            if (strcmp(optarg, "customer") != 0 && strcmp(optarg, "repair") != 0)
                return cli_usage_error(what, "--type: customer or repair");
            o->type = optarg;
            break;
        case OPT_ID:
            if (ck_parse_int64(optarg, 1, INT64_MAX, &o->id) != 0)
                return cli_usage_error(what, "--id: a positive number");
            break;
        case OPT_AFTER:
            if (ck_parse_int64(optarg, 1, INT64_MAX, &o->after) != 0)
                return cli_usage_error(what, "--after: a positive number");
            break;
        case OPT_LIMIT:
            if ((rc = prov_opt_limit(what, optarg, &o->limit)) != CLI_OK)
                return rc;
            break;
        case OPT_IDEM:
            if ((rc = prov_opt_idem(what, optarg, &o->idem)) != CLI_OK)
                return rc;
            break;
        default: return cli_getopt_other(what, c, OPT_HELP, argv, customer_help);
        }
    }
    return cli_no_more_args(what, optind < argc ? argv[optind] : NULL);
}

static int
check(const char *what, const struct copts *o, const char *allowed, const char *required)
{
    const struct prov_opt_use used[] = {
        {o->id != 0, "id"},             {o->name != NULL, "name"},
        {o->address != NULL, "address"}, {o->email != NULL, "email"},
        {o->segment != NULL, "segment"}, {o->type != NULL, "type"},
        {o->services != NULL, "services"}, {o->query != NULL, "query"},
        {o->after != 0, "after"},       {o->limit != 0, "limit"},
        {o->idem != NULL, "idempotency-key"},
    };

    return prov_opt_check(what, used, sizeof(used) / sizeof(used[0]), allowed, required);
}

/* The record's fields from the options (add: type defaults to customer, services to {}). */
static int
build_body(const char *what, const struct copts *o, bool add, json_t **out)
{
    json_t *b = json_object(), *svc = NULL;
    bool ok = b != NULL;

    *out = NULL;
    if (o->services != NULL) {
        int rc = prov_opt_services(what, o->services, &svc);
        if (rc != CLI_OK) {
            json_decref(b);
            return rc;
        }
    } else if (add) {
        svc = json_object();
    }
    if (svc != NULL)
        ok = ok && json_object_set_new(b, "services", svc) == 0;
    if (o->name != NULL)
        ok = ok && json_object_set_new(b, "name", json_string(o->name)) == 0;
    if (o->address != NULL)
        ok = ok && json_object_set_new(b, "address", json_string(o->address)) == 0;
    if (o->email != NULL)
        ok = ok && json_object_set_new(b, "email", json_string(o->email)) == 0;
    if (o->segment != NULL)
        ok = ok && json_object_set_new(b, "segment", json_string(o->segment)) == 0;
    if (add)
        ok = ok && json_object_set_new(b, "type",
                                       json_string(o->type != NULL ? o->type : "customer")) == 0;
    if (!ok) {
        json_decref(b);
        return cli_usage_error(what, "an option's value is not valid UTF-8 text");
    }
    if (!add && json_object_size(b) == 0) {
        json_decref(b);
        return cli_usage_error(what, "nothing to modify: give --name, --address, --email or "
                               "--services");
    }
    *out = b;
    return CLI_OK;
}

static int
do_add_modify(const char *what, struct prov_client *cl, const struct copts *o, bool add)
{
    json_t *body = NULL, *ans = NULL;
    char idbuf[32], *path = NULL;
    int rc;

    if ((rc = build_body(what, o, add, &body)) != CLI_OK)
        return rc;
    if (!add) {
        snprintf(idbuf, sizeof(idbuf), "%lld", (long long)o->id);
        if ((path = prov_path("customers", idbuf, "")) == NULL) {
            rc = cli_fail(what, ck_error_set(CK_ERR_NOMEM, "path"));
            goto out;
        }
    }
    rc = prov_client_call(cl, what, add ? "POST" : "PATCH", add ? "/api/v1/customers" : path,
                          body, o->idem, &ans);
    if (rc == CLI_OK)
        prov_print_customer(ans);
out:
    json_decref(body);
    json_decref(ans);
    free(path);
    return rc;
}

static int
do_show(const char *what, struct prov_client *cl, const struct copts *o)
{
    json_t *ans = NULL;
    char idbuf[32], *path;
    int rc;

    snprintf(idbuf, sizeof(idbuf), "%lld", (long long)o->id);
    if ((path = prov_path("customers", idbuf, "")) == NULL)
        return cli_fail(what, ck_error_set(CK_ERR_NOMEM, "path"));
    if ((rc = prov_client_call(cl, what, "GET", path, NULL, NULL, &ans)) == CLI_OK) {
        prov_print_customer(ans);
        prov_print_history(json_object_get(ans, "history"));
    }
    json_decref(ans);
    free(path);
    return rc;
}

static int
do_list(const char *what, struct prov_client *cl, const struct copts *o)
{
    json_t *ans = NULL, *v, *next;
    char *q = NULL, *path = NULL;
    int64_t after = o->after;
    size_t i, n;
    int rc = CLI_OK;

    if (o->query != NULL && (q = prov_escape(o->query)) == NULL)
        return cli_fail(what, ck_error_set(CK_ERR_NOMEM, "path"));
    n = 96 + (q != NULL ? strlen(q) : 0);
    if ((path = malloc(n)) == NULL) {
        rc = cli_fail(what, ck_error_set(CK_ERR_NOMEM, "path"));
        goto out;
    }
    /* --limit: one page; otherwise every account, a bounded page at a time. */
    for (;;) {
        int w = snprintf(path, n, "/api/v1/customers?limit=%lld%s%s",
                         (long long)(o->limit != 0 ? o->limit : CK_PROV_LIST_MAX),
                         q != NULL ? "&q=" : "", q != NULL ? q : "");

        if (after > 0 && w > 0 && (size_t)w < n)
            snprintf(path + w, n - (size_t)w, "&after=%lld", (long long)after);
        if ((rc = prov_client_call(cl, what, "GET", path, NULL, NULL, &ans)) != CLI_OK)
            goto out;
        json_array_foreach(json_object_get(ans, "customers"), i, v)
            prov_print_customer_line(v);
        next = json_object_get(ans, "next");
        if (!json_is_integer(next) || json_integer_value(next) <= after)
            break;
        if (o->limit != 0) {
            fprintf(stderr, "cablekey: %s: more accounts: --after %lld\n", what,
                    (long long)json_integer_value(next));
            break;
        }
        after = json_integer_value(next);
        json_decref(ans);
        ans = NULL;
    }
out:
    json_decref(ans);
    free(q);
    free(path);
    return rc;
}

int
cli_customer(int argc, char **argv)
{
    static const struct {
        const char *name, *allowed, *required;
    } verbs[] = {
        {"add", " name address email segment type services idempotency-key ",
         " name address segment "},
        {"show", " id ", " id "},
        {"list", " query after limit ", " "},
        {"modify", " id name address email services ", " id "},
    };
    char what[64];
    struct copts o;
    struct prov_client *cl = NULL;
    const char *server;
    int rc;

    if (cli_family_help(argc, argv, customer_help, NULL, &rc))
        return rc;
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        if (strcmp(argv[1], verbs[i].name) != 0)
            continue;
        snprintf(what, sizeof(what), "customer %s", verbs[i].name);
        rc = parse(what, argc - 1, argv + 1, &o);
        if (rc == CLI_HELP_SHOWN)
            return CLI_OK;
        if (rc != CLI_OK || (rc = check(what, &o, verbs[i].allowed, verbs[i].required)) != CLI_OK)
            return rc;
        if (o.server != NULL && cli_global_server != NULL)
            return cli_usage_error(what, "--server given twice");
        server = o.server != NULL ? o.server : cli_global_server;
        if (server == NULL)
            return cli_usage_error(what, "--server URL (cablekey-prov) is required");
        if ((rc = prov_client_open(what, server, o.ca != NULL ? o.ca : cli_global_ca, &cl)) !=
            CLI_OK)
            return rc;
        if (strcmp(verbs[i].name, "add") == 0 || strcmp(verbs[i].name, "modify") == 0)
            rc = do_add_modify(what, cl, &o, strcmp(verbs[i].name, "add") == 0);
        else if (strcmp(verbs[i].name, "show") == 0)
            rc = do_show(what, cl, &o);
        else
            rc = do_list(what, cl, &o);
        prov_client_close(cl);
        return rc;
    }
    return cli_unknown_verb("customer", argv[1]);
}
