/* cablekey device provision|change-service|deprovision|move|repair|return|loaner|search|history
 * --server URL: the provisioning verbs of the device family, carried out by cablekey-prov over
 * its JSON API (prov_remote.h). The device table verbs (add, revoke, pin...) stay in device.c:
 * these change the customer database, which only cablekey-prov writes (it signs the operator
 * certificates and notifies billing in the same step). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cablekey/error.h"
#include "cablekey/prov.h"
#include "cablekey/store.h"
#include "cablekey/util.h"
#include "cli.h"
#include "prov_remote.h"

enum {
    OPT_SERVER = 256, OPT_CA, OPT_MAC, OPT_CUSTOMER, OPT_NUMBER, OPT_SEGMENT, OPT_SERVICES,
    OPT_REISSUE, OPT_REASON, OPT_FACILITY, OPT_FOR, OPT_IP, OPT_STATE, OPT_AFTER, OPT_LIMIT,
    OPT_IDEM, OPT_HELP,
};

static const struct option prov_opts[] = {
    {"server", required_argument, NULL, OPT_SERVER},
    {"ca", required_argument, NULL, OPT_CA},
    {"mac", required_argument, NULL, OPT_MAC},
    {"customer", required_argument, NULL, OPT_CUSTOMER},
    {"number", required_argument, NULL, OPT_NUMBER},
    {"segment", required_argument, NULL, OPT_SEGMENT},
    {"services", required_argument, NULL, OPT_SERVICES},
    {"reissue", no_argument, NULL, OPT_REISSUE},
    {"reason", required_argument, NULL, OPT_REASON},
    {"facility", required_argument, NULL, OPT_FACILITY},
    {"for", required_argument, NULL, OPT_FOR},
    {"ip", required_argument, NULL, OPT_IP},
    {"state", required_argument, NULL, OPT_STATE},
    {"after", required_argument, NULL, OPT_AFTER},
    {"limit", required_argument, NULL, OPT_LIMIT},
    {"idempotency-key", required_argument, NULL, OPT_IDEM},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

/* The help of these verbs (device.c prints it after the table verbs'). */
const char cli_device_prov_help[] =
    "\nusage: cablekey device VERB --server=URL [--ca FILE] ... (on cablekey-prov)\n"
    "\n"
    "  provision --mac MAC --customer ID [--number N] [--segment S]\n"
    "      an unprovisioned device to the customer: a number (the next free one of the\n"
    "      segment unless given) and an operator certificate\n"
    "  change-service --mac MAC --services JSON [--reissue]\n"
    "  deprovision --mac MAC [--reason TEXT]\n"
    "  move --mac MAC --segment S [--number N]   another cable segment, a new number\n"
    "  repair --mac MAC --facility ID   to a repair facility's account (short certificate)\n"
    "  return --mac MAC                 back from repair to its owner\n"
    "  loaner --mac MAC --customer ID --for MAC\n"
    "  search (--mac MAC | --ip IP | --number N | --customer ID | --state STATE)\n"
    "      [--after MAC] [--limit N]\n"
    "  history --mac MAC                the device, its certificates and its events\n"
    "\n"
    "URL: https://HOST[:PORT] (port 8088 if none), or http:// to a loopback address; your\n"
    "Kerberos ticket authenticates (kinit first). The changing verbs send an Idempotency-Key:\n"
    "random for each run, or --idempotency-key KEY ([A-Za-z0-9._:-], up to 128) so that a script\n"
    "retrying after a lost answer never acts twice. They print the device's new record; search\n"
    "prints one device per line: MAC, state, numbers, customer, unprovisioned IP, principal;\n"
    "history prints the record, then 'cert' lines (id, SHA-256, not before, not after,\n"
    "fetched, superseded) and the events, newest first (time, action, actor, MAC, customer,\n"
    "detail). Errors of the API are printed on stderr (exit status 1). STATE: unprovisioned,\n"
    "provisioned, repair, revoked.\n";

struct popts {
    const char *server, *ca, *number, *segment, *services, *reason, *ip, *state, *idem;
    char mac[CK_DEVICE_MAC_LEN + 1], loaner_for[CK_DEVICE_MAC_LEN + 1];
    char after[CK_DEVICE_MAC_LEN + 1];
    int64_t customer, facility, limit;
    bool reissue;
};

static int
parse_id(const char *what, const char *opt, const char *v, int64_t *out)
{
    if (ck_parse_int64(v, 1, INT64_MAX, out) != 0)
        return cli_usage_error(what, "--%s: a positive number", opt);
    return CLI_OK;
}

static int
parse(const char *what, int argc, char **argv, struct popts *o)
{
    int c, rc;

    memset(o, 0, sizeof(*o));
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", prov_opts, NULL)) != -1) {
        switch (c) {
        case OPT_SERVER: o->server = optarg; break;
        case OPT_CA: o->ca = optarg; break;
        case OPT_NUMBER: o->number = optarg; break;
        case OPT_SEGMENT: o->segment = optarg; break;
        case OPT_SERVICES: o->services = optarg; break;
        case OPT_REISSUE: o->reissue = true; break;
        case OPT_REASON: o->reason = optarg; break;
        case OPT_IP: o->ip = optarg; break;
        case OPT_STATE: o->state = optarg; break;
        case OPT_MAC:
            if (ck_device_mac_parse(optarg, o->mac) != 0)
                return cli_usage_error(what, "--mac: %s", ck_error_context());
            break;
        case OPT_FOR:
            if (ck_device_mac_parse(optarg, o->loaner_for) != 0)
                return cli_usage_error(what, "--for: %s", ck_error_context());
            break;
        case OPT_AFTER:
            if (ck_device_mac_parse(optarg, o->after) != 0)
                return cli_usage_error(what, "--after: %s", ck_error_context());
            break;
        case OPT_CUSTOMER:
            if ((rc = parse_id(what, "customer", optarg, &o->customer)) != CLI_OK)
                return rc;
            break;
        case OPT_FACILITY:
            if ((rc = parse_id(what, "facility", optarg, &o->facility)) != CLI_OK)
                return rc;
            break;
        case OPT_LIMIT:
            if ((rc = prov_opt_limit(what, optarg, &o->limit)) != CLI_OK)
                return rc;
            break;
        case OPT_IDEM:
            if ((rc = prov_opt_idem(what, optarg, &o->idem)) != CLI_OK)
                return rc;
            break;
        default: return cli_getopt_other(what, c, OPT_HELP, argv, cli_device_prov_help);
        }
    }
    return cli_no_more_args(what, optind < argc ? argv[optind] : NULL);
}

/* Only the options a verb documents (allowed: " name name "), and the required ones. */
static int
check(const char *what, const struct popts *o, const char *allowed, const char *required)
{
    const struct prov_opt_use used[] = {
        {o->mac[0] != '\0', "mac"},       {o->customer != 0, "customer"},
        {o->number != NULL, "number"},    {o->segment != NULL, "segment"},
        {o->services != NULL, "services"}, {o->reissue, "reissue"},
        {o->reason != NULL, "reason"},    {o->facility != 0, "facility"},
        {o->loaner_for[0] != '\0', "for"}, {o->ip != NULL, "ip"},
        {o->state != NULL, "state"},      {o->after[0] != '\0', "after"},
        {o->limit != 0, "limit"},         {o->idem != NULL, "idempotency-key"},
    };

    return prov_opt_check(what, used, sizeof(used) / sizeof(used[0]), allowed, required);
}

/* A JSON object body from the verb's options; NULL when out of memory or --services is not a
 * JSON object (a usage error printed). */
static int
build_body(const char *what, const char *verb, const struct popts *o, json_t **out)
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
        ok = ok && json_object_set_new(b, "services", svc) == 0;
    }
    if (strcmp(verb, "change-service") == 0)
        ok = ok && json_object_set_new(b, "reissue", json_boolean(o->reissue)) == 0;
    if (o->customer != 0)
        ok = ok && json_object_set_new(b, "customer", json_integer(o->customer)) == 0;
    if (o->facility != 0)
        ok = ok && json_object_set_new(b, "facility", json_integer(o->facility)) == 0;
    if (o->number != NULL)
        ok = ok && json_object_set_new(b, "number", json_string(o->number)) == 0;
    if (o->segment != NULL)
        ok = ok && json_object_set_new(b, "segment", json_string(o->segment)) == 0;
    if (o->loaner_for[0] != '\0')
        ok = ok && json_object_set_new(b, "for", json_string(o->loaner_for)) == 0;
    if (o->reason != NULL)
        ok = ok && json_object_set_new(b, "reason", json_string(o->reason)) == 0;
    if (!ok) {
        json_decref(b);
        /* json_string refuses text that is not UTF-8. */
        return cli_usage_error(what, "an option's value is not valid UTF-8 text");
    }
    *out = b;
    return CLI_OK;
}

static int
do_action(const char *what, const char *verb, struct prov_client *cl, const struct popts *o)
{
    json_t *body = NULL, *ans = NULL;
    char *suffix = NULL, *path = NULL;
    size_t n = strlen(verb) + 2;
    int rc;

    if ((rc = build_body(what, verb, o, &body)) != CLI_OK)
        return rc;
    if ((suffix = malloc(n)) == NULL) {
        rc = cli_fail(what, ck_error_set(CK_ERR_NOMEM, "path"));
        goto out;
    }
    snprintf(suffix, n, "/%s", verb);
    if ((path = prov_path("devices", o->mac, suffix)) == NULL) {
        rc = cli_fail(what, ck_error_set(CK_ERR_NOMEM, "path"));
        goto out;
    }
    if ((rc = prov_client_call(cl, what, "POST", path, body, o->idem, &ans)) != CLI_OK)
        goto out;
    prov_print_device(ans);
out:
    json_decref(body);
    json_decref(ans);
    free(suffix);
    free(path);
    return rc;
}

/* "/api/v1/devices?KEY=VALUE[&after=][&limit=]" for search. */
static int
search_path(const char *what, const struct popts *o, char **out)
{
    const char *key = NULL, *val = NULL;
    char idbuf[32], *esc = NULL, *aesc = NULL;
    int given = 0, rc = CLI_OK;
    size_t n;

    *out = NULL;
    if (o->mac[0] != '\0') { key = "mac"; val = o->mac; given++; }
    if (o->ip != NULL) { key = "ip"; val = o->ip; given++; }
    if (o->number != NULL) { key = "number"; val = o->number; given++; }
    if (o->state != NULL) { key = "state"; val = o->state; given++; }
    if (o->customer != 0) {
        snprintf(idbuf, sizeof(idbuf), "%lld", (long long)o->customer);
        key = "customer";
        val = idbuf;
        given++;
    }
    if (given != 1)
        return cli_usage_error(what, "exactly one of --mac, --ip, --number, --customer, --state");
    if ((esc = prov_escape(val)) == NULL ||
        (o->after[0] != '\0' && (aesc = prov_escape(o->after)) == NULL)) {
        rc = cli_fail(what, ck_error_set(CK_ERR_NOMEM, "path"));
        goto out;
    }
    n = 64 + strlen(esc) + (aesc != NULL ? strlen(aesc) : 0);
    if ((*out = malloc(n)) == NULL) {
        rc = cli_fail(what, ck_error_set(CK_ERR_NOMEM, "path"));
        goto out;
    }
    snprintf(*out, n, "/api/v1/devices?%s=%s&limit=%lld%s%s", key, esc,
             (long long)(o->limit != 0 ? o->limit : CK_PROV_LIST_MAX), aesc != NULL ? "&after=" : "",
             aesc != NULL ? aesc : "");
out:
    free(esc);
    free(aesc);
    return rc;
}

static int
do_search(const char *what, struct prov_client *cl, const struct popts *o)
{
    json_t *ans = NULL, *v;
    char *path = NULL;
    size_t i;
    int rc;

    if ((rc = search_path(what, o, &path)) != CLI_OK)
        return rc;
    if ((rc = prov_client_call(cl, what, "GET", path, NULL, NULL, &ans)) != CLI_OK)
        goto out;
    json_array_foreach(json_object_get(ans, "devices"), i, v)
        prov_print_device_line(v);
    if (json_is_string(json_object_get(ans, "next")))
        fprintf(stderr, "cablekey: %s: more devices: --after %s\n", what,
                json_string_value(json_object_get(ans, "next")));
out:
    json_decref(ans);
    free(path);
    return rc;
}

static int
do_history(const char *what, struct prov_client *cl, const struct popts *o)
{
    json_t *ans = NULL;
    char *path = prov_path("devices", o->mac, "");
    int rc;

    if (path == NULL)
        return cli_fail(what, ck_error_set(CK_ERR_NOMEM, "path"));
    if ((rc = prov_client_call(cl, what, "GET", path, NULL, NULL, &ans)) == CLI_OK) {
        prov_print_device(ans);
        prov_print_certs(json_object_get(ans, "certs"));
        prov_print_history(json_object_get(ans, "history"));
    }
    json_decref(ans);
    free(path);
    return rc;
}

bool
cli_device_prov_verb(const char *verb)
{
    static const char *const verbs[] = {"provision", "change-service", "deprovision", "move",
                                        "repair", "return", "loaner", "search", "history"};

    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        if (strcmp(verb, verbs[i]) == 0)
            return true;
    return false;
}

int
cli_device_prov(int argc, char **argv)
{
    static const struct {
        const char *name, *allowed, *required;
    } verbs[] = {
        {"provision", " mac customer number segment idempotency-key ", " mac customer "},
        {"change-service", " mac services reissue idempotency-key ", " mac services "},
        {"deprovision", " mac reason idempotency-key ", " mac "},
        {"move", " mac segment number idempotency-key ", " mac segment "},
        {"repair", " mac facility idempotency-key ", " mac facility "},
        {"return", " mac idempotency-key ", " mac "},
        {"loaner", " mac customer for idempotency-key ", " mac customer for "},
        {"search", " mac ip number customer state after limit ", " "},
        {"history", " mac ", " mac "},
    };
    char what[64];
    struct popts o;
    struct prov_client *cl = NULL;
    const char *server;
    int rc;

    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        if (strcmp(argv[0], verbs[i].name) != 0)
            continue;
        snprintf(what, sizeof(what), "device %s", verbs[i].name);
        rc = parse(what, argc, argv, &o);
        if (rc == CLI_HELP_SHOWN)
            return CLI_OK;
        if (rc != CLI_OK || (rc = check(what, &o, verbs[i].allowed, verbs[i].required)) != CLI_OK)
            return rc;
        if (o.server != NULL && cli_global_server != NULL)
            return cli_usage_error(what, "--server given twice");
        server = o.server != NULL ? o.server : cli_global_server;
        if (server == NULL)
            return cli_usage_error(what, "--server URL (cablekey-prov) is required: the "
                                   "customer database is changed only through cablekey-prov");
        if ((rc = prov_client_open(what, server, o.ca != NULL ? o.ca : cli_global_ca, &cl)) !=
            CLI_OK)
            return rc;
        if (strcmp(verbs[i].name, "search") == 0)
            rc = do_search(what, cl, &o);
        else if (strcmp(verbs[i].name, "history") == 0)
            rc = do_history(what, cl, &o);
        else
            rc = do_action(what, verbs[i].name, cl, &o);
        prov_client_close(cl);
        return rc;
    }
    return cli_unknown_verb("device", argv[0]);
}
