/* cablekey alarms list|show|clear: the alarm table the KDCs fill (store.h "alarm table",
 * docs/alarms.md). Plain output is one line per alarm, key=value separated by blanks (values
 * with blanks in double quotes); --json prints one JSON object (show) or array (list). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cablekey/alarm.h"
#include "cablekey/error.h"
#include "cablekey/store.h"
#include "cablekey/util.h"
#include "cli.h"

#define ALARMS_DEFAULT_LIMIT 1000

enum { OPT_DB = 256, OPT_STASH, OPT_ACTIVE, OPT_CODE, OPT_SUBJECT, OPT_SINCE, OPT_LIMIT,
       OPT_JSON, OPT_YES, OPT_HELP };

static const struct option alarm_opts[] = {
    {"db", required_argument, NULL, OPT_DB},
    {"stash", required_argument, NULL, OPT_STASH},
    {"active", no_argument, NULL, OPT_ACTIVE},
    {"code", required_argument, NULL, OPT_CODE},
    {"subject", required_argument, NULL, OPT_SUBJECT},
    {"since", required_argument, NULL, OPT_SINCE},
    {"limit", required_argument, NULL, OPT_LIMIT},
    {"json", no_argument, NULL, OPT_JSON},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static const char alarms_help[] =
    "usage: cablekey alarms VERB --db PATH|URI [--stash FILE] [--json] ...\n"
    "  list [--active] [--code CODE] [--subject S] [--since TIME] [--limit N]\n"
    "      alarms the KDCs recorded, oldest first (the newest N, default 1000): id, code,\n"
    "      severity, subject, host, count, first and last seen, state, cause\n"
    "  show ID\n"
    "      one alarm, every field\n"
    "  clear ID | clear --code CODE [--subject S]\n"
    "      marks active alarms cleared (an operator acknowledged them; audited). A KDC\n"
    "      whose condition persists raises the alarm again as a new occurrence\n"
    "\n"
    "CODE: kvno-missing, clock-skew, db-unreachable, cert-expiry, preauth-spike, kdc-down,\n"
    "key-unconfirmed. TIME: epoch seconds, YYYY-MM-DD or \"YYYY-MM-DD HH:MM[:SS]\" (UTC).\n"
    "Each KDC also logs every alarm (syslog) and may post it to a webhook: docs/alarms.md.\n";

struct alarmopts {
    const char *db, *stash, *code, *subject;
    bool active, json;
    int64_t since;   /* seconds */
    int64_t limit;
    const char *arg; /* the ID of show/clear */
};

static int
parse_opts(const char *what, int argc, char **argv, struct alarmopts *o)
{
    int c, rc = CLI_OK;

    memset(o, 0, sizeof(*o));
    o->limit = ALARMS_DEFAULT_LIMIT;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", alarm_opts, NULL)) != -1 && rc == CLI_OK) {
        switch (c) {
        case OPT_DB: o->db = optarg; break;
        case OPT_STASH: o->stash = optarg; break;
        case OPT_ACTIVE: o->active = true; break;
        case OPT_JSON: o->json = true; break;
        case OPT_CODE:
            if (ck_alarm_code_from_name(optarg) < 0)
                return cli_usage_error(what, "--code %s: unknown alarm code", optarg);
            o->code = optarg;
            break;
        case OPT_SUBJECT: o->subject = optarg; break;
        case OPT_SINCE:
            if (cli_parse_time(optarg, &o->since) != 0)
                return cli_usage_error(what, "--since %s: not a time", optarg);
            break;
        case OPT_LIMIT:
            if (ck_parse_int64(optarg, 1, CK_ALARM_LIST_MAX, &o->limit) != 0)
                return cli_usage_error(what, "--limit %s: expected 1..%d", optarg,
                                       CK_ALARM_LIST_MAX);
            break;
        default: return cli_getopt_other(what, c, OPT_HELP, argv, alarms_help);
        }
    }
    if (optind < argc)
        o->arg = argv[optind++];
    if (optind < argc)
        return cli_usage_error(what, "unexpected argument '%s'", argv[optind]);
    if (o->db == NULL)
        return cli_usage_error(what, "--db PATH|URI is required (the alarm table is not in "
                               "the admin API: run it on a KDC host)");
    return CLI_OK;
}

static void
put_json(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

/* A value for key=value output: quoted (with \" and \\) when it holds a blank or a quote. */
static void
put_value(const char *s)
{
    if (*s != '\0' && strpbrk(s, " \t\"\\=") == NULL) {
        fputs(s, stdout);
        return;
    }
    putchar('"');
    for (; *s != '\0'; s++) {
        if (*s == '"' || *s == '\\')
            putchar('\\');
        putchar(*s);
    }
    putchar('"');
}

/* UTC with milliseconds dropped: 2026-12-02T09:28:52Z. */
static void
format_ms(int64_t ms, char *buf, size_t size)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    if (ms <= 0 || gmtime_r(&t, &tm) == NULL) {
        snprintf(buf, size, "-");
        return;
    }
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

struct printer {
    bool json, first, full;
    size_t n;
};

static int
print_row(const ck_alarm_row *r, void *arg)
{
    struct printer *p = arg;
    char first[32], last[32], cleared[32];

    format_ms(r->first_seen, first, sizeof(first));
    format_ms(r->last_seen, last, sizeof(last));
    format_ms(r->cleared_at, cleared, sizeof(cleared));
    p->n++;
    if (p->json) {
        printf("%s{\"id\":%lld,\"code\":", p->first ? "" : ",", (long long)r->id);
        put_json(r->code);
        printf(",\"severity\":");
        put_json(r->severity);
        printf(",\"subject\":");
        put_json(r->subject);
        printf(",\"host\":");
        put_json(r->host);
        printf(",\"cause\":");
        put_json(r->cause);
        printf(",\"first_seen\":%lld,\"last_seen\":%lld,\"count\":%llu,\"cleared\":%s",
               (long long)r->first_seen, (long long)r->last_seen,
               (unsigned long long)r->count, r->cleared ? "true" : "false");
        printf(",\"cleared_at\":%lld,\"cleared_by\":", (long long)r->cleared_at);
        put_json(r->cleared_by);
        putchar('}');
        p->first = false;
        return 0;
    }
    if (p->full) {
        printf("id:          %lld\ncode:        %s\nseverity:    %s\nsubject:     %s\n"
               "host:        %s\ncount:       %llu\nfirst seen:  %s\nlast seen:   %s\n"
               "state:       %s\n", (long long)r->id, r->code, r->severity, r->subject,
               r->host, (unsigned long long)r->count, first, last,
               r->cleared ? "cleared" : "active");
        if (r->cleared)
            printf("cleared:     %s by %s\n", cleared, r->cleared_by);
        printf("cause:       %s\n", r->cause);
        return 0;
    }
    printf("id=%lld code=%s severity=%s subject=", (long long)r->id, r->code, r->severity);
    put_value(r->subject);
    printf(" host=");
    put_value(r->host);
    printf(" count=%llu first=%s last=%s state=%s", (unsigned long long)r->count, first, last,
           r->cleared ? "cleared" : "active");
    if (r->cleared) {
        printf(" cleared_by=");
        put_value(r->cleared_by);
    }
    printf(" cause=");
    put_value(r->cause);
    putchar('\n');
    return 0;
}

static int
parse_id(const char *what, const char *s, int64_t *id)
{
    if (s == NULL || ck_parse_int64(s, 1, INT64_MAX, id) != 0)
        return cli_usage_error(what, "expected an alarm id (a number from `alarms list`)");
    return CLI_OK;
}

static int
do_list(const char *what, const struct alarmopts *o, ck_store *store)
{
    ck_alarm_filter f = {.code = o->code, .subject = o->subject, .active_only = o->active,
                         .since = o->since * 1000, .limit = (size_t)o->limit};
    struct printer p = {.json = o->json, .first = true};
    int ret;

    if (o->arg != NULL)
        return cli_usage_error(what, "unexpected argument '%s'", o->arg);
    if (o->json)
        putchar('[');
    ret = ck_store_alarm_list(store, &f, print_row, &p);
    if (o->json)
        printf("]\n");
    if (ret != 0)
        return cli_fail(what, ret);
    return CLI_OK;
}

static int
do_show(const char *what, const struct alarmopts *o, ck_store *store)
{
    ck_alarm_filter f = {.limit = 1};
    struct printer p = {.json = o->json, .first = true, .full = true};
    int ret;

    if ((ret = parse_id(what, o->arg, &f.id)) != CLI_OK)
        return ret;
    if (o->code != NULL || o->subject != NULL || o->active || o->since != 0)
        return cli_usage_error(what, "show takes an id only");
    if ((ret = ck_store_alarm_list(store, &f, print_row, &p)) != 0)
        return cli_fail(what, ret);
    if (p.n == 0) {
        fprintf(stderr, "cablekey: %s: no alarm %lld\n", what, (long long)f.id);
        return CLI_FAIL;
    }
    if (o->json)
        putchar('\n');
    return CLI_OK;
}

static int
do_clear(const char *what, const struct alarmopts *o, ck_store *store)
{
    ck_alarm_filter f = {.code = o->code, .subject = o->subject};
    uint64_t n = 0;
    int ret;

    if (o->arg != NULL && (ret = parse_id(what, o->arg, &f.id)) != CLI_OK)
        return ret;
    if (f.id == 0 && f.code == NULL)
        return cli_usage_error(what, "name an alarm id or --code CODE");
    if (o->active || o->since != 0 || o->json)
        return cli_usage_error(what, "--active, --since and --json do not apply to clear");
    if ((ret = ck_store_alarm_clear(store, &f, &n)) != 0)
        return cli_fail(what, ret);
    printf("%llu alarm%s cleared\n", (unsigned long long)n, n == 1 ? "" : "s");
    return CLI_OK;
}

int
cli_alarms(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(const char *what, const struct alarmopts *o, ck_store *store);
        bool readonly;
    } subs[] = {
        {"list", do_list, true},
        {"show", do_show, true},
        {"clear", do_clear, false},
    };
    char what[64];
    struct alarmopts o;
    ck_store *store = NULL;
    int rc;

    if (cli_family_help(argc, argv, alarms_help, NULL, &rc))
        return rc;
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        if (strcmp(argv[1], subs[i].name) != 0)
            continue;
        snprintf(what, sizeof(what), "alarms %s", subs[i].name);
        rc = parse_opts(what, argc - 1, argv + 1, &o);
        if (rc < 0)
            return CLI_OK; /* --help */
        if (rc != CLI_OK)
            return rc;
        if ((rc = cli_open_store(what, o.db, o.stash, subs[i].readonly, &store)) != CLI_OK)
            return rc;
        rc = subs[i].fn(what, &o, store);
        ck_store_close(store);
        return rc;
    }
    return cli_unknown_verb("alarms", argv[1]);
}
