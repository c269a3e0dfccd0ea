/* cablekey ksv status|groups|members|revoke|alarms|sas: the operator's view of a keying server
 * (cablekey-ksv) through its store (ksv_store.h), the same file the daemon runs on. Only
 * `revoke` writes; the daemon sees the row within its store poll (200 ms) and removes the member
 * in its next rekey batch. Never prints a key: SAs are shown by SPI, groups by epoch. */
#include <ctype.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cablekey/error.h"
#include "cablekey/ksv_store.h"
#include "cablekey/ksv_topology.h"
#include "cablekey/util.h"
#include "cli.h"

#define KSV_ALARMS_DEFAULT 100
#define KSV_ALARMS_MAX 100000
/* `status` counts alarms by listing them: past this it prints "N+" rather than read them all. */
#define KSV_ALARM_COUNT_CAP 10000

enum { OPT_DB = 256, OPT_KEY_FILE, OPT_JSON, OPT_MAX, OPT_LIFT, OPT_HELP };

static const struct option ksv_opts[] = {
    {"db", required_argument, NULL, OPT_DB},
    {"key-file", required_argument, NULL, OPT_KEY_FILE},
    {"json", no_argument, NULL, OPT_JSON},
    {"max", required_argument, NULL, OPT_MAX},
    {"lift", no_argument, NULL, OPT_LIFT},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static const char ksv_help[] =
    "usage: cablekey ksv SUBCOMMAND --db PATH|URI [--key-file FILE] [--json] ...\n"
    "\n"
    "  status\n"
    "      registered nodes, groups with their last epoch, SAs, revocations, alarms\n"
    "  groups\n"
    "      one line per group: name, id, epoch, keying, degree, capacity, SPI, members\n"
    "  members GROUP\n"
    "      one line per member of GROUP: node, member id, leaf, state, revoked\n"
    "  revoke GROUP NODE [--lift]\n"
    "      revokes NODE from GROUP: the KSV removes it in its next rekey batch and never\n"
    "      re-admits it (not on a reload either) until the revocation is lifted with --lift\n"
    "  alarms [--max N]\n"
    "      the newest N (default 100) alarms, newest first: time, node, type, detail\n"
    "  sas [NODE]\n"
    "      the link SAs (of NODE, or all): link, SPI, generation, policy, lifetimes; never keys\n"
    "\n"
    "The store is cablekey-ksv's --db (PATH or sqlite:PATH); its master key file is PATH.key\n"
    "unless --key-file names another. Output is one record per line, fields KEY=VALUE\n"
    "separated by blanks (values with blanks in double quotes); --json prints one JSON\n"
    "document instead. revoke records the OS user running the CLI as the actor.\n";

struct ksvopts {
    const char *db, *key_file;
    bool json, lift;
    int64_t max;                         /* 0: unset */
    const char *args[3];
    size_t n_args;
};

static int
parse_opts(const char *what, int argc, char **argv, struct ksvopts *o)
{
    int c;

    memset(o, 0, sizeof(*o));
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", ksv_opts, NULL)) != -1) {
        switch (c) {
        case OPT_DB: o->db = optarg; break;
        case OPT_KEY_FILE: o->key_file = optarg; break;
        case OPT_JSON: o->json = true; break;
        case OPT_LIFT: o->lift = true; break;
        case OPT_MAX:
            if (ck_parse_int64(optarg, 1, KSV_ALARMS_MAX, &o->max) != 0)
                return cli_usage_error(what, "--max: a number from 1 to %d", KSV_ALARMS_MAX);
            break;
        default: return cli_getopt_other(what, c, OPT_HELP, argv, ksv_help);
        }
    }
    while (optind < argc) {
        if (o->n_args == sizeof(o->args) / sizeof(o->args[0]))
            return cli_usage_error(what, "unexpected argument '%s'", argv[optind]);
        o->args[o->n_args++] = argv[optind++];
    }
    return CLI_OK;
}

/* ---- output -------------------------------------------------------------------------------- */

/* A text value as KEY=VALUE wants it: bare when it is a plain token, else in double quotes with
 * backslash escapes, so a detail with blanks or quotes stays one field of one line. */
static void
put_text(const char *s)
{
    bool plain = *s != '\0';

    for (const char *p = s; *p != '\0' && plain; p++)
        plain = (unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f && *p != '"' && *p != '\\';
    if (plain) {
        fputs(s, stdout);
        return;
    }
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            printf("\\x%02x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

/* A JSON string (RFC 8259 escapes; bytes >= 0x80 are passed through, names are ASCII). */
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

/* UTC as one token: 2026-12-02T09:28:52Z. */
static void
fmt_time(int64_t t, char *buf, size_t size)
{
    struct tm tm;
    time_t tt = (time_t)t;

    if (t <= 0 || gmtime_r(&tt, &tm) == NULL || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, size, "%lld", (long long)t);
}

static const char *
keying_name(int keying)
{
    switch (keying) {
    case CK_KSVTOPO_LKH: return "lkh";
    case CK_KSVTOPO_EK: return "ek";
    case CK_KSVTOPO_HYBRID: return "hybrid";
    default: return "unknown";
    }
}

/* ---- store access ---------------------------------------------------------------------------- */

static int
open_store(const char *what, const struct ksvopts *o, struct ck_ksv_store **st)
{
    const char *path = o->db;
    int ret;

    *st = NULL;
    if (strncmp(path, "sqlite:", 7) == 0)
        path += 7;
    if (access(path, F_OK) != 0) {
        fprintf(stderr, "cablekey: %s: no KSV store at %s (cablekey-ksv creates it at its first "
                        "start)\n", what, path);
        return CLI_FAIL;
    }
    if ((ret = ck_ksv_store_open(o->db, o->key_file, false, st)) != 0)
        return cli_fail(what, ret);
    return CLI_OK;
}

static int
find_group(const char *what, struct ck_ksv_store *st, const char *name,
           struct ck_ksv_group_row *out)
{
    struct ck_ksv_group_row *rows = NULL;
    size_t n = 0;
    int ret, rc = CLI_FAIL;

    if ((ret = ck_ksv_store_group_list(st, &rows, &n)) != 0)
        return cli_fail(what, ret);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(rows[i].name, name) == 0) {
            *out = rows[i];
            rc = CLI_OK;
            break;
        }
    }
    free(rows);
    if (rc != CLI_OK)
        fprintf(stderr, "cablekey: %s: no group '%s' in the store (see 'cablekey ksv groups')\n",
                what, name);
    return rc;
}

/* Members of a group, walked without the tree: no node key is read or decrypted. */
struct member_acc {
    struct ck_ksv_member_row *rows;
    size_t n, cap;
};

static int
collect_member(void *arg, const struct ck_ksv_member_row *m)
{
    struct member_acc *acc = arg;

    if (acc->n == acc->cap) {
        size_t cap = acc->cap == 0 ? 64 : acc->cap * 2;
        struct ck_ksv_member_row *rows = realloc(acc->rows, cap * sizeof(*rows));
        if (rows == NULL)
            return ck_error_set(CK_ERR_NOMEM, "members");
        acc->rows = rows;
        acc->cap = cap;
    }
    acc->rows[acc->n++] = *m;
    return 0;
}

static int
load_members(const char *what, struct ck_ksv_store *st, uint32_t group_id,
             struct ck_ksv_member_row **members, size_t *n)
{
    struct member_acc acc = {NULL, 0, 0};
    int ret;

    *members = NULL;
    *n = 0;
    ret = ck_ksv_store_group_walk(st, group_id, NULL, NULL, collect_member, &acc);
    if (ret != 0) {
        free(acc.rows);
        return cli_fail(what, ret);
    }
    *members = acc.rows;
    *n = acc.n;
    return CLI_OK;
}

static size_t
count_active(const struct ck_ksv_member_row *m, size_t n)
{
    size_t k = 0;

    for (size_t i = 0; i < n; i++)
        k += m[i].state == CK_KSV_MEMBER_ACTIVE;
    return k;
}

/* ---- verbs ----------------------------------------------------------------------------------- */

static int
do_status(const char *what, const struct ksvopts *o, struct ck_ksv_store *st)
{
    struct ck_ksv_node_row *nodes = NULL;
    struct ck_ksv_group_row *groups = NULL;
    struct ck_ksv_sa_row *sas = NULL;
    struct ck_ksv_revocation *revs = NULL;
    struct ck_ksv_alarm_row *alarms = NULL;
    size_t n_nodes = 0, n_groups = 0, n_sas = 0, n_revs = 0, n_alarms = 0, pending = 0;
    int ret, rc = CLI_FAIL;

    if ((ret = ck_ksv_store_node_list(st, &nodes, &n_nodes)) != 0 ||
        (ret = ck_ksv_store_group_list(st, &groups, &n_groups)) != 0 ||
        (ret = ck_ksv_store_sa_list(st, NULL, &sas, &n_sas)) != 0 ||
        (ret = ck_ksv_store_revocations(st, &revs, &n_revs)) != 0 ||
        (ret = ck_ksv_store_alarm_list(st, KSV_ALARM_COUNT_CAP, &alarms, &n_alarms)) != 0) {
        rc = cli_fail(what, ret);
        goto out;
    }
    for (size_t i = 0; i < n_revs; i++)
        pending += !revs[i].applied;
    if (o->json) {
        printf("{\"nodes\":%zu,\"sas\":%zu,\"revocations\":%zu,\"revocations_pending\":%zu,"
               "\"alarms\":%zu,\"alarms_capped\":%s,\"groups\":[", n_nodes, n_sas, n_revs,
               pending, n_alarms, n_alarms >= KSV_ALARM_COUNT_CAP ? "true" : "false");
        for (size_t i = 0; i < n_groups; i++) {
            printf("%s{\"name\":", i ? "," : "");
            put_json(groups[i].name);
            printf(",\"id\":%" PRIu32 ",\"epoch\":%" PRIu64 "}", groups[i].group_id,
                   groups[i].epoch);
        }
        printf("]}\n");
    } else {
        printf("nodes registered=%zu\n", n_nodes);
        printf("groups count=%zu\n", n_groups);
        for (size_t i = 0; i < n_groups; i++) {
            printf("group name=");
            put_text(groups[i].name);
            printf(" id=%" PRIu32 " epoch=%" PRIu64 "\n", groups[i].group_id, groups[i].epoch);
        }
        printf("sas count=%zu\n", n_sas);
        printf("revocations count=%zu pending=%zu\n", n_revs, pending);
        printf("alarms count=%zu%s\n", n_alarms, n_alarms >= KSV_ALARM_COUNT_CAP ? "+" : "");
    }
    rc = CLI_OK;
out:
    free(nodes);
    free(groups);
    ck_ksv_store_sa_free(sas, n_sas);
    free(revs);
    free(alarms);
    return rc;
}

static int
do_groups(const char *what, const struct ksvopts *o, struct ck_ksv_store *st)
{
    struct ck_ksv_group_row *groups = NULL;
    size_t n_groups = 0;
    int ret, rc = CLI_FAIL;

    if ((ret = ck_ksv_store_group_list(st, &groups, &n_groups)) != 0) {
        rc = cli_fail(what, ret);
        goto out;
    }
    if (o->json)
        printf("[");
    for (size_t i = 0; i < n_groups; i++) {
        const struct ck_ksv_group_row *g = &groups[i];
        struct ck_ksv_member_row *m = NULL;
        size_t n_m = 0, active;

        if ((rc = load_members(what, st, g->group_id, &m, &n_m)) != CLI_OK)
            goto out;
        active = count_active(m, n_m);
        free(m);
        if (o->json) {
            printf("%s{\"name\":", i ? "," : "");
            put_json(g->name);
            printf(",\"id\":%" PRIu32 ",\"epoch\":%" PRIu64 ",\"keying\":\"%s\",\"degree\":%" PRIu32
                   ",\"capacity\":%" PRIu32 ",\"spi\":%" PRIu32 ",\"members\":%zu,\"left\":%zu}",
                   g->group_id, g->epoch, keying_name(g->keying), g->degree, g->capacity, g->spi,
                   active, n_m - active);
        } else {
            put_text(g->name);
            printf(" id=%" PRIu32 " epoch=%" PRIu64 " keying=%s degree=%" PRIu32
                   " capacity=%" PRIu32 " spi=0x%08" PRIx32 " members=%zu left=%zu\n",
                   g->group_id, g->epoch, keying_name(g->keying), g->degree, g->capacity, g->spi,
                   active, n_m - active);
        }
    }
    if (o->json)
        printf("]\n");
    rc = CLI_OK;
out:
    free(groups);
    return rc;
}

static bool
is_revoked(const struct ck_ksv_revocation *revs, size_t n, const char *group, const char *node,
           bool *applied)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(revs[i].group, group) == 0 && strcmp(revs[i].node, node) == 0) {
            *applied = revs[i].applied;
            return true;
        }
    }
    return false;
}

static int
do_members(const char *what, const struct ksvopts *o, struct ck_ksv_store *st)
{
    struct ck_ksv_group_row g;
    struct ck_ksv_member_row *m = NULL;
    struct ck_ksv_revocation *revs = NULL;
    size_t n_m = 0, n_revs = 0, extra = 0;
    int ret, rc;

    if ((rc = find_group(what, st, o->args[0], &g)) != CLI_OK)
        return rc;
    if ((rc = load_members(what, st, g.group_id, &m, &n_m)) != CLI_OK)
        return rc;
    if ((ret = ck_ksv_store_revocations(st, &revs, &n_revs)) != 0) {
        rc = cli_fail(what, ret);
        goto out;
    }
    if (o->json)
        printf("[");
    for (size_t i = 0; i < n_m; i++) {
        bool applied = false, revoked = is_revoked(revs, n_revs, g.name, m[i].node, &applied);
        const char *state = m[i].state == CK_KSV_MEMBER_ACTIVE ? "active"
                            : m[i].state == CK_KSV_MEMBER_LEFT ? "left" : "unknown";
        const char *rev = !revoked ? "no" : applied ? "yes" : "pending";

        if (o->json) {
            printf("%s{\"node\":", i ? "," : "");
            put_json(m[i].node);
            printf(",\"member_id\":%" PRIu32 ",\"leaf\":%" PRIu32 ",\"state\":\"%s\","
                   "\"revoked\":\"%s\"}", m[i].member_id, m[i].leaf, state, rev);
        } else {
            printf("node=");
            put_text(m[i].node);
            printf(" member_id=%" PRIu32 " leaf=%" PRIu32 " state=%s revoked=%s\n",
                   m[i].member_id, m[i].leaf, state, rev);
        }
    }
    /* A revocation of a node that never got a member row (it was revoked before it joined)
     * belongs to this view too: it explains why the node is missing. */
    for (size_t i = 0; i < n_revs; i++) {
        bool listed = false;

        if (strcmp(revs[i].group, g.name) != 0)
            continue;
        for (size_t j = 0; j < n_m && !listed; j++)
            listed = strcmp(m[j].node, revs[i].node) == 0;
        if (listed)
            continue;
        if (o->json) {
            printf("%s{\"node\":", n_m > 0 || extra > 0 ? "," : "");
            put_json(revs[i].node);
            printf(",\"state\":\"none\",\"revoked\":\"%s\"}", revs[i].applied ? "yes" : "pending");
            extra++;
        } else {
            printf("node=");
            put_text(revs[i].node);
            printf(" state=none revoked=%s\n", revs[i].applied ? "yes" : "pending");
        }
    }
    if (o->json)
        printf("]\n");
    rc = CLI_OK;
out:
    free(m);
    free(revs);
    return rc;
}

/* The topology's node name syntax (ksv_topology.h): a revocation of anything else could never
 * match a node, and would only hide a typo. */
static bool
valid_name(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > CK_KSVTOPO_MAX_NAME || !isalnum((unsigned char)s[0]))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
            return false;
    return true;
}

static int
do_revoke(const char *what, const struct ksvopts *o, struct ck_ksv_store *st)
{
    struct ck_ksv_group_row g;
    const char *node = o->args[1];
    char actor[CK_KSV_STORE_NAME];
    int64_t now = 0;
    int ret, rc;

    if ((rc = find_group(what, st, o->args[0], &g)) != CLI_OK)
        return rc;
    if (o->lift) {
        ret = ck_ksv_store_revoke_lift(st, g.name, node);
        if (ret == CK_ERR_NOTFOUND) {
            fprintf(stderr, "cablekey: %s: %s is not revoked from %s\n", what, node, g.name);
            return CLI_FAIL;
        }
        if (ret != 0)
            return cli_fail(what, ret);
        if (o->json) {
            printf("{\"lifted\":true,\"group\":");
            put_json(g.name);
            printf(",\"node\":");
            put_json(node);
            printf("}\n");
        } else {
            printf("lifted group=");
            put_text(g.name);
            printf(" node=");
            put_text(node);
            printf(" (the node joins again when a reload or its registration admits it)\n");
        }
        return CLI_OK;
    }
    if (!valid_name(node))
        return cli_usage_error(what, "NODE: a topology node name ([A-Za-z0-9][A-Za-z0-9._-]*, at "
                                     "most %d bytes)", CK_KSVTOPO_MAX_NAME);
    /* The store's actor column is short; a long "via sudo" tail is cut, the uid stays. */
    cli_actor(actor, sizeof(actor));
    ck_now(&now, NULL);
    ret = ck_ksv_store_revoke(st, g.name, node, actor, now);
    if (ret == CK_ERR_EXISTS) {
        fprintf(stderr, "cablekey: %s: %s is already revoked from %s\n", what, node, g.name);
        return CLI_FAIL;
    }
    if (ret != 0)
        return cli_fail(what, ret);
    if (o->json) {
        printf("{\"revoked\":true,\"group\":");
        put_json(g.name);
        printf(",\"node\":");
        put_json(node);
        printf(",\"actor\":");
        put_json(actor);
        printf("}\n");
    } else {
        printf("revoked group=");
        put_text(g.name);
        printf(" node=");
        put_text(node);
        printf(" actor=");
        put_text(actor);
        printf(" (removed in the KSV's next rekey batch)\n");
    }
    return CLI_OK;
}

static int
do_alarms(const char *what, const struct ksvopts *o, struct ck_ksv_store *st)
{
    struct ck_ksv_alarm_row *rows = NULL;
    size_t n = 0;
    int ret;

    ret = ck_ksv_store_alarm_list(st, o->max ? (size_t)o->max : KSV_ALARMS_DEFAULT, &rows, &n);
    if (ret != 0)
        return cli_fail(what, ret);
    if (o->json)
        printf("[");
    for (size_t i = 0; i < n; i++) {
        char when[40];

        fmt_time(rows[i].when, when, sizeof(when));
        if (o->json) {
            printf("%s{\"time\":%lld,\"node\":", i ? "," : "", (long long)rows[i].when);
            put_json(rows[i].node);
            printf(",\"type\":");
            put_json(rows[i].type);
            printf(",\"detail\":");
            put_json(rows[i].detail);
            printf("}");
        } else {
            printf("time=%s node=", when);
            put_text(rows[i].node[0] ? rows[i].node : "-");
            printf(" type=");
            put_text(rows[i].type);
            printf(" detail=");
            put_text(rows[i].detail);
            putchar('\n');
        }
    }
    if (o->json)
        printf("]\n");
    free(rows);
    return CLI_OK;
}

static int
do_sas(const char *what, const struct ksvopts *o, struct ck_ksv_store *st)
{
    struct ck_ksv_sa_row *rows = NULL;
    size_t n = 0;
    int ret;

    if ((ret = ck_ksv_store_sa_list(st, o->args[0], &rows, &n)) != 0)
        return cli_fail(what, ret);
    if (o->json)
        printf("[");
    for (size_t i = 0; i < n; i++) {
        const struct ck_ksv_sa_row *r = &rows[i];
        char created[40], expires[40];

        fmt_time(r->created, created, sizeof(created));
        fmt_time(r->expires, expires, sizeof(expires));
        if (o->json) {
            printf("%s{\"src\":", i ? "," : "");
            put_json(r->src);
            printf(",\"dst\":");
            put_json(r->dst);
            printf(",\"spi\":%" PRIu32 ",\"generation\":%" PRIu32 ",\"policy\":", r->spi,
                   r->generation);
            put_json(r->policy);
            printf(",\"created\":%lld,\"expires\":%lld}", (long long)r->created,
                   (long long)r->expires);
        } else {
            printf("link=");
            put_text(r->src);
            printf("=>");
            put_text(r->dst);
            printf(" spi=0x%08" PRIx32 " gen=%" PRIu32 " policy=", r->spi, r->generation);
            put_text(r->policy);
            printf(" created=%s expires=%s\n", created, expires);
        }
    }
    if (o->json)
        printf("]\n");
    ck_ksv_store_sa_free(rows, n);
    return CLI_OK;
}

int
cli_ksv(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(const char *what, const struct ksvopts *o, struct ck_ksv_store *st);
        size_t min_args, max_args;
        const char *args;
        bool lift, max;
    } subs[] = {
        {"status", do_status, 0, 0, "", false, false},
        {"groups", do_groups, 0, 0, "", false, false},
        {"members", do_members, 1, 1, "GROUP", false, false},
        {"revoke", do_revoke, 2, 2, "GROUP NODE", true, false},
        {"alarms", do_alarms, 0, 0, "", false, true},
        {"sas", do_sas, 0, 1, "[NODE]", false, false},
    };
    char what[64];
    struct ksvopts o;
    struct ck_ksv_store *st = NULL;
    int rc;

    if (cli_family_help(argc, argv, ksv_help, NULL, &rc))
        return rc;
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        if (strcmp(argv[1], subs[i].name) != 0)
            continue;
        snprintf(what, sizeof(what), "ksv %s", subs[i].name);
        rc = parse_opts(what, argc - 1, argv + 1, &o);
        if (rc == CLI_HELP_SHOWN)
            return CLI_OK;
        if (rc != CLI_OK)
            return rc;
        if (o.lift && !subs[i].lift)
            return cli_usage_error(what, "option --lift does not apply here");
        if (o.max != 0 && !subs[i].max)
            return cli_usage_error(what, "option --max does not apply here");
        if (o.db == NULL)
            return cli_usage_error(what, "--db PATH|URI is required");
        if (o.n_args > subs[i].max_args)
            return cli_usage_error(what, "unexpected argument '%s'", o.args[subs[i].max_args]);
        if (o.n_args < subs[i].min_args)
            return cli_usage_error(what, "%s is required", subs[i].args);
        for (size_t k = 0; k < o.n_args; k++)
            if (*o.args[k] == '\0')
                return cli_usage_error(what, "empty argument (%s)", subs[i].args);
        if ((rc = open_store(what, &o, &st)) != CLI_OK)
            return rc;
        rc = subs[i].fn(what, &o, st);
        ck_ksv_store_close(st);
        if (fflush(stdout) != 0 && rc == CLI_OK) {
            fprintf(stderr, "cablekey: %s: cannot write the output\n", what);
            rc = CLI_FAIL;
        }
        return rc;
    }
    return cli_unknown_verb("ksv", argv[1]);
}
