/* cablekey rotation master-key status|add|activate|reencrypt|retire|run: master-key rotation
 * (lib/store/mkey.c; docs/master-key.md). Reached through `cablekey rotation master-key ...`.
 *
 * Crash points for the tests: CK_MKEY_CRASH=POINT:N kills this process (SIGKILL, no cleanup)
 * the N-th time the rotation reaches POINT (add-stash, after-add, after-activate,
 * mid-reencrypt, before-retire, retire-db); `run` afterwards completes the rotation. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cablekey/crypto.h"
#include "cablekey/error.h"
#include "cablekey/store.h"
#include "cablekey/util.h"
#include "cli.h"

#define MKEY_CRASH_POINT_MAX 32

enum { OPT_DB = 256, OPT_STASH, OPT_KVNO, OPT_ENCTYPE, OPT_BATCH, OPT_JSON, OPT_HELP };

static const struct option mkey_opts[] = {
    {"db", required_argument, NULL, OPT_DB},
    {"stash", required_argument, NULL, OPT_STASH},
    {"kvno", required_argument, NULL, OPT_KVNO},
    {"enctype", required_argument, NULL, OPT_ENCTYPE},
    {"batch", required_argument, NULL, OPT_BATCH},
    {"json", no_argument, NULL, OPT_JSON},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static const char mkey_help[] =
    "usage: cablekey rotation master-key SUBCOMMAND --db PATH|URI [--stash FILE] ...\n"
    "\n"
    "  status [--json]\n"
    "      the master keys of the database and of the stash, which is active, how many\n"
    "      stored keys each still encrypts, and the next step\n"
    "  add [--enctype E]\n"
    "      a new master key (default aes256-cts-hmac-sha1-96) with the next kvno: written to\n"
    "      the stash (atomically, 0600), then to the database; not used yet. A key added\n"
    "      before and not activated is reported instead of making another\n"
    "  activate [--kvno N]\n"
    "      new and changed keys are encrypted under kvno N (default: the key just added);\n"
    "      every KDC's stash must hold it first\n"
    "  reencrypt [--batch N]\n"
    "      re-encrypts every principal key and password history key still under another\n"
    "      master key, online, N keys per transaction (default 100); KDCs keep serving\n"
    "  retire [--kvno N]\n"
    "      removes kvno N (default: every key older than the active one) from the database\n"
    "      and the stash; refused while any stored key is still under it\n"
    "  run [--enctype E] [--batch N]\n"
    "      all steps: add, activate, reencrypt, retire. After an interruption it completes\n"
    "      the rotation under way instead of starting another\n"
    "\n"
    "The stash is rewritten in place (--stash, default PATH.stash): with several KDCs, copy it\n"
    "to every KDC between add and activate (docs/master-key.md). Keep a copy of the old stash\n"
    "until backups taken before the rotation have expired: they need the old key.\n";

struct mkopts {
    const char *db, *stash;
    uint32_t kvno;
    int32_t enctype;
    size_t batch;
    bool json, has_kvno, has_enctype, has_batch;
};

/* ---- crash points ---- */

static struct {
    char point[MKEY_CRASH_POINT_MAX];
    long remaining;
} crash;

static int
crash_hook(const char *point, void *arg)
{
    (void)arg;
    if (crash.remaining > 0 && strcmp(point, crash.point) == 0 && --crash.remaining == 0) {
        fprintf(stderr, "cablekey: CK_MKEY_CRASH: killed at %s\n", point);
        fflush(NULL);
        raise(SIGKILL);
    }
    return 0;
}

/* CK_MKEY_CRASH=POINT:N (N >= 1; ":N" may be left out for 1). */
static int
crash_setup(const char *what)
{
    const char *env = getenv("CK_MKEY_CRASH");
    const char *colon;
    int64_t n = 1;
    size_t len;

    if (env == NULL || *env == '\0')
        return CLI_OK;
    colon = strchr(env, ':');
    len = colon != NULL ? (size_t)(colon - env) : strlen(env);
    if (len == 0 || len >= sizeof(crash.point) ||
        (colon != NULL && ck_parse_int64(colon + 1, 1, 1000000, &n) != 0)) {
        fprintf(stderr, "cablekey: %s: CK_MKEY_CRASH: POINT:N expected\n", what);
        return CLI_USAGE;
    }
    memcpy(crash.point, env, len);
    crash.point[len] = '\0';
    crash.remaining = (long)n;
    ck_store_mkey_set_hook(crash_hook, NULL);
    return CLI_OK;
}

/* ---- options ---- */

static int
parse_opts(const char *what, const char *verb, int argc, char **argv, struct mkopts *o)
{
    int64_t v = 0;
    int c;

    memset(o, 0, sizeof(*o));
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", mkey_opts, NULL)) != -1) {
        switch (c) {
        case OPT_DB: o->db = optarg; break;
        case OPT_STASH: o->stash = optarg; break;
        case OPT_JSON: o->json = true; break;
        case 'h':
        case OPT_HELP:
            /* The family is two words: only this verb's lines. */
            if (!cli_verb_help(stdout, "rotation master-key", mkey_help, verb))
                fputs(mkey_help, stdout);
            return CLI_HELP_SHOWN;
        case OPT_KVNO:
            if (ck_parse_int64(optarg, 1, UINT32_MAX, &v) != 0)
                return cli_usage_error(what, "--kvno: a number from 1 to %u", UINT32_MAX);
            o->kvno = (uint32_t)v;
            o->has_kvno = true;
            break;
        case OPT_BATCH:
            if (ck_parse_int64(optarg, 1, CK_MKEY_BATCH_MAX, &v) != 0)
                return cli_usage_error(what, "--batch: a number from 1 to %d",
                                       CK_MKEY_BATCH_MAX);
            o->batch = (size_t)v;
            o->has_batch = true;
            break;
        case OPT_ENCTYPE:
            if (ck_enctype_from_name(optarg, &o->enctype) != 0 ||
                !ck_enctype_is_supported(o->enctype))
                return cli_usage_error(what, "--enctype: unknown enctype '%s'", optarg);
            o->has_enctype = true;
            break;
        default: return cli_getopt_other(what, c, OPT_HELP, argv, mkey_help);
        }
    }
    if (o->db == NULL)
        return cli_usage_error(what, "--db PATH|URI is required");
    return cli_no_more_args(what, optind < argc ? argv[optind] : NULL);
}

/* Accepts only the options a subcommand documents. */
static int
only(const char *what, const struct mkopts *o, const char *allowed)
{
    const struct {
        bool set;
        const char *name;
    } used[] = {
        {o->has_kvno, "kvno"}, {o->has_enctype, "enctype"}, {o->has_batch, "batch"},
        {o->json, "json"},
    };

    for (size_t i = 0; i < sizeof(used) / sizeof(used[0]); i++) {
        char key[32];
        snprintf(key, sizeof(key), " %s ", used[i].name);
        if (used[i].set && strstr(allowed, key) == NULL)
            return cli_usage_error(what, "option --%s does not apply here", used[i].name);
    }
    return CLI_OK;
}

/* ---- status ---- */

static const char *
key_state(const ck_mkey_info *e, uint32_t active)
{
    if (e->active)
        return "active";
    if (!e->in_db)
        return e->kvno > active ? "stash only (add interrupted: run add)"
                                : "stash only (retired: run retire)";
    if (!e->in_stash)
        return "missing from the stash";
    if (e->kvno > active)
        return "added (activate next)";
    return e->keys + e->history > 0 ? "old (reencrypt, then retire)" : "old (retire)";
}

static const char *
next_step(const ck_mkey_status *st)
{
    for (size_t i = 0; i < st->n; i++)
        if (!st->keys[i].active && st->keys[i].in_db && st->keys[i].kvno > st->active)
            return "activate";
    if (st->pending > 0)
        return "reencrypt";
    for (size_t i = 0; i < st->n; i++)
        if (!st->keys[i].active && st->keys[i].kvno < st->active)
            return "retire";
    return "none";
}

static void
print_status_json(const ck_store *store, const ck_mkey_status *st)
{
    printf("{\"realm\":\"%s\",\"active\":%u,\"pending\":%llu,\"next\":\"%s\",\"keys\":[",
           ck_store_realm(store)->name, st->active, (unsigned long long)st->pending,
           next_step(st));
    for (size_t i = 0; i < st->n; i++) {
        const ck_mkey_info *e = &st->keys[i];
        printf("%s{\"kvno\":%u,\"enctype\":\"%s\",\"created\":%lld,\"in_db\":%s,"
               "\"in_stash\":%s,\"active\":%s,\"keys\":%llu,\"history\":%llu}",
               i ? "," : "", e->kvno, ck_enctype_name(e->enctype), (long long)e->created,
               e->in_db ? "true" : "false", e->in_stash ? "true" : "false",
               e->active ? "true" : "false", (unsigned long long)e->keys,
               (unsigned long long)e->history);
    }
    printf("]}\n");
}

static int
do_status(const char *what, const struct mkopts *o, ck_store *store)
{
    ck_mkey_status st;
    int ret;

    (void)o;
    if ((ret = ck_store_mkey_status(store, &st)) != 0)
        return cli_fail(what, ret);
    if (o->json) {
        print_status_json(store, &st);
        return CLI_OK;
    }
    printf("Realm %s: active master key kvno %u; %llu stored key%s not under it; next step: "
           "%s.\n", ck_store_realm(store)->name, st.active, (unsigned long long)st.pending,
           st.pending == 1 ? "" : "s", next_step(&st));
    printf("%-6s %-24s %-24s %-8s %-6s %8s %8s  %s\n", "KVNO", "ENCTYPE", "CREATED", "DATABASE",
           "STASH", "KEYS", "HISTORY", "STATE");
    for (size_t i = 0; i < st.n; i++) {
        const ck_mkey_info *e = &st.keys[i];
        char when[64] = "-";

        if (e->created != 0)
            cli_format_time(e->created, when, sizeof(when));
        printf("%-6u %-24s %-24s %-8s %-6s %8llu %8llu  %s\n", e->kvno,
               ck_enctype_name(e->enctype), when, e->in_db ? "yes" : "no",
               e->in_stash ? "yes" : "no", (unsigned long long)e->keys,
               (unsigned long long)e->history, key_state(e, st.active));
    }
    return CLI_OK;
}

/* ---- steps ---- */

static int
step_add(const char *what, const struct mkopts *o, ck_store *store, uint32_t *kvno)
{
    bool created = false;
    int ret;

    if ((ret = ck_store_mkey_add(store, o->enctype, kvno, &created)) != 0)
        return cli_fail(what, ret);
    if (created)
        printf("master-key add kvno=%u (written to the stash and the database; not used yet)\n",
               *kvno);
    else
        printf("master-key add kvno=%u (added before, not activated yet: nothing new)\n",
               *kvno);
    return CLI_OK;
}

static int
step_activate(const char *what, ck_store *store, uint32_t kvno)
{
    uint32_t before = ck_store_realm(store)->master_kvno;
    int ret;

    if ((ret = ck_store_mkey_activate(store, kvno)) != 0)
        return cli_fail(what, ret);
    printf("master-key activate kvno=%u previous=%u\n", ck_store_realm(store)->master_kvno,
           before);
    return CLI_OK;
}

static int
step_reencrypt(const char *what, const struct mkopts *o, ck_store *store)
{
    uint64_t done = 0;
    int ret;

    if ((ret = ck_store_mkey_reencrypt(store, o->batch, NULL, NULL, &done)) != 0) {
        fprintf(stderr, "cablekey: %s: %llu keys re-encrypted before the error\n", what,
                (unsigned long long)done);
        return cli_fail(what, ret);
    }
    printf("master-key reencrypt kvno=%u keys=%llu\n", ck_store_realm(store)->master_kvno,
           (unsigned long long)done);
    return CLI_OK;
}

static int
step_retire(const char *what, ck_store *store, uint32_t kvno)
{
    size_t n = 0;
    int ret;

    if ((ret = ck_store_mkey_retire(store, kvno, &n)) != 0)
        return cli_fail(what, ret);
    if (kvno != 0)
        printf("master-key retire kvno=%u\n", kvno);
    else
        printf("master-key retire retired=%zu (every key older than the active one)\n", n);
    return CLI_OK;
}

static int
do_add(const char *what, const struct mkopts *o, ck_store *store)
{
    uint32_t kvno = 0;

    return step_add(what, o, store, &kvno);
}

static int
do_activate(const char *what, const struct mkopts *o, ck_store *store)
{
    return step_activate(what, store, o->kvno);
}

static int
do_reencrypt(const char *what, const struct mkopts *o, ck_store *store)
{
    return step_reencrypt(what, o, store);
}

static int
do_retire(const char *what, const struct mkopts *o, ck_store *store)
{
    return step_retire(what, store, o->kvno);
}

/* All steps. An interrupted rotation (a key older than the active one still in the database
 * or the stash, or keys not under the active one) is completed, not followed by another. */
static int
do_run(const char *what, const struct mkopts *o, ck_store *store)
{
    ck_mkey_status st;
    bool unfinished;
    uint32_t kvno = 0;
    int rc, ret;

    if ((ret = ck_store_mkey_status(store, &st)) != 0)
        return cli_fail(what, ret);
    unfinished = st.pending > 0;
    for (size_t i = 0; i < st.n; i++)
        unfinished |= st.keys[i].kvno < st.active;
    if (!unfinished) {
        if ((rc = step_add(what, o, store, &kvno)) != CLI_OK ||
            (rc = step_activate(what, store, kvno)) != CLI_OK)
            return rc;
    } else {
        printf("master-key run: completing the rotation to kvno %u\n", st.active);
    }
    if ((rc = step_reencrypt(what, o, store)) != CLI_OK ||
        (rc = step_retire(what, store, 0)) != CLI_OK)
        return rc;
    printf("master-key run done: active kvno=%u\n", ck_store_realm(store)->master_kvno);
    return CLI_OK;
}

int
cli_rotation_master_key(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(const char *what, const struct mkopts *o, ck_store *store);
        const char *allowed;
        bool readonly;
    } subs[] = {
        {"status", do_status, " json ", true},
        {"add", do_add, " enctype ", false},
        {"activate", do_activate, " kvno ", false},
        {"reencrypt", do_reencrypt, " batch ", false},
        {"retire", do_retire, " kvno ", false},
        {"run", do_run, " enctype batch ", false},
    };
    char what[64];
    struct mkopts o;
    ck_store *store = NULL;
    int rc;

    if (cli_family_help(argc, argv, mkey_help, NULL, &rc))
        return rc;
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        if (strcmp(argv[1], subs[i].name) != 0)
            continue;
        snprintf(what, sizeof(what), "rotation master-key %s", subs[i].name);
        rc = parse_opts(what, subs[i].name, argc - 1, argv + 1, &o);
        if (rc < 0)
            return CLI_OK; /* --help */
        if (rc != CLI_OK || (rc = only(what, &o, subs[i].allowed)) != CLI_OK ||
            (rc = crash_setup(what)) != CLI_OK)
            return rc;
        if ((rc = cli_open_store(what, o.db, o.stash, subs[i].readonly, &store)) != CLI_OK)
            return rc;
        rc = subs[i].fn(what, &o, store);
        ck_store_close(store);
        ck_store_mkey_set_hook(NULL, NULL);
        return rc;
    }
    return cli_unknown_verb("rotation master-key", argv[1]);
}
