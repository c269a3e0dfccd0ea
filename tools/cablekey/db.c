/* cablekey db backup|restore|check (the database file as a whole) and cablekey audit
 * list|retention (the audit log of administrative changes); also the CLI's audit actor. */
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cablekey/error.h"
#include "cablekey/store.h"
#include "cablekey/store_dump.h"
#include "cablekey/util.h"
#include "cli.h"

#define AUDIT_LIST_DEFAULT 1000

enum {
    OPT_DB = 256, OPT_STASH, OPT_FORCE, OPT_OVERWRITE, OPT_SINCE, OPT_LIMIT, OPT_PRINCIPAL,
    OPT_MAC, OPT_ACTION, OPT_KEEP_ROWS, OPT_KEEP_DAYS, OPT_OUT, OPT_REPLACE, OPT_HELP,
};

static const struct option all_opts[] = {
    {"db", required_argument, NULL, OPT_DB},
    {"stash", required_argument, NULL, OPT_STASH},
    {"force", no_argument, NULL, OPT_FORCE},
    {"overwrite", no_argument, NULL, OPT_OVERWRITE},
    {"since", required_argument, NULL, OPT_SINCE},
    {"limit", required_argument, NULL, OPT_LIMIT},
    {"principal", required_argument, NULL, OPT_PRINCIPAL},
    {"mac", required_argument, NULL, OPT_MAC},
    {"action", required_argument, NULL, OPT_ACTION},
    {"keep-rows", required_argument, NULL, OPT_KEEP_ROWS},
    {"keep-days", required_argument, NULL, OPT_KEEP_DAYS},
    {"out", required_argument, NULL, OPT_OUT},
    {"replace", no_argument, NULL, OPT_REPLACE},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

struct dbopts {
    const char *db, *stash, *principal, *action, *file, *out;
    bool force, overwrite, has_since, has_mac, replace;
    char mac[CK_DEVICE_MAC_LEN + 1];
    int64_t since, limit, keep_rows, keep_days; /* keep_*: -1 unset */
};

static const char stash_reminder[] =
    "A backup without its stash is useless: the keys in it are encrypted under the master\n"
    "key, which only the stash file holds. Back the stash up separately (it changes only with\n"
    "the master key), and protect it as the key it is: mode 0600, not next to the backups.\n";

static const char db_help[] =
    "usage: cablekey db SUBCOMMAND --db PATH|URI ...\n"
    "\n"
    "  backup --db PATH|URI [--overwrite] OUT\n"
    "      a consistent copy of the database, taken while KDCs and the CLI keep working\n"
    "      (SQLite online backup); OUT is written atomically with mode 0600\n"
    "  restore --db PATH|URI [--stash FILE] [--force] IN\n"
    "      replaces the realm in FILE by the backup IN, after checking IN (integrity, schema\n"
    "      version, master key check value and every key against the stash). Refused while\n"
    "      another process (a KDC) has FILE open, unless --force: running KDCs then switch to\n"
    "      the restored realm at their next request and drop every cached record. FILE may\n"
    "      not exist yet (it is created). The audit log of FILE is kept and records the restore.\n"
    "  check --db PATH|URI [--stash FILE]\n"
    "      SQLite integrity and foreign keys, schema version, realm rows, and that the master\n"
    "      key decrypts every stored key; prints each problem, exit 1 if there is any\n"
    "  dump --db FILE [--stash FILE] [--overwrite] [--out OUT]\n"
    "      the realm as versioned text (docs/dump-format.md) on stdout or in OUT (written\n"
    "      atomically, mode 0600): settings, policies, principals, devices, lockout and\n"
    "      password history; keys stay encrypted under the master key, as stored\n"
    "  load --db FILE [--stash FILE] [--replace [--force]] IN\n"
    "      creates the database FILE (which must not exist) from the dump IN, in one\n"
    "      transaction, after checking all of IN: format version, order, counts, SHA-256,\n"
    "      and that the stash holds the master key the dump was made under (copy the source\n"
    "      realm's stash to FILE.stash first) and decrypts every key. Nothing is written\n"
    "      when any check fails. --replace: FILE exists and is replaced as by restore (the\n"
    "      dump is loaded beside it, then restored; --force as for restore)\n"
    "\n"
    "--stash defaults to PATH.stash.\n"
    "\n";

static const char audit_help[] =
    "usage: cablekey audit SUBCOMMAND --db PATH|URI [--stash FILE] ...\n"
    "\n"
    "  list [--since TIME|AGO] [--limit N] [--principal NAME | --mac MAC] [--action A]\n"
    "      the newest N (default 1000) matching changes, oldest first, one per line:\n"
    "      time, actor, action, object, detail, separated by tabs\n"
    "  retention [--keep-rows N] [--keep-days D]\n"
    "      shows or sets how much of the log is kept (default 100000 rows and 365 days;\n"
    "      --keep-days 0: no age limit, the row limit always applies)\n"
    "\n"
    "Every administrative change (principals, devices, realm settings, policies, restores)\n"
    "is recorded in the database, in the same transaction as the change: who (the OS user\n"
    "running the CLI, or the admin daemon's authenticated principal), what and when; never\n"
    "a password or a key. TIME is epoch seconds, YYYY-MM-DD or 'YYYY-MM-DD HH:MM:SS' (UTC);\n"
    "AGO is a duration back from now (7d, 12h). --action principal. (with the dot) matches\n"
    "a family: principal.add, principal.modify...\n";

/* The audit actor of this process: "uid 1000 (alice)", "uid 0 (root) via sudo alice". */
void
cli_actor(char *buf, size_t size)
{
    struct passwd pw, *res = NULL;
    char pwbuf[1024];
    const char *sudo = getenv("SUDO_USER");
    uid_t uid = getuid();
    int n;

    if (getpwuid_r(uid, &pw, pwbuf, sizeof(pwbuf), &res) == 0 && res != NULL)
        n = snprintf(buf, size, "uid %u (%s)", (unsigned)uid, res->pw_name);
    else
        n = snprintf(buf, size, "uid %u", (unsigned)uid);
    if (sudo != NULL && *sudo != '\0' && n > 0 && (size_t)n < size)
        snprintf(buf + n, size - (size_t)n, " via sudo %s", sudo);
}

static int
parse_opts(const char *what, const char *help, int argc, char **argv, struct dbopts *o)
{
    int c;

    memset(o, 0, sizeof(*o));
    o->keep_rows = o->keep_days = -1;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", all_opts, NULL)) != -1) {
        switch (c) {
        case OPT_DB: o->db = optarg; break;
        case OPT_STASH: o->stash = optarg; break;
        case OPT_FORCE: o->force = true; break;
        case OPT_OVERWRITE: o->overwrite = true; break;
        case OPT_OUT: o->out = optarg; break;
        case OPT_REPLACE: o->replace = true; break;
        case OPT_PRINCIPAL: o->principal = optarg; break;
        case OPT_ACTION: o->action = optarg; break;
        case OPT_SINCE: {
            int64_t ago = 0, now = 0;
            if (cli_parse_time(optarg, &o->since) != 0) {
                if (cli_parse_duration(optarg, &ago) != 0)
                    return cli_usage_error(what, "--since: a time (epoch seconds, YYYY-MM-DD, "
                                                 "'YYYY-MM-DD HH:MM:SS') or a duration ago (7d)");
                ck_now(&now, NULL);
                o->since = now > ago ? now - ago : 0;
            }
            o->has_since = true;
            break;
        }
        case OPT_LIMIT:
            if (ck_parse_int64(optarg, 1, CK_AUDIT_LIST_MAX, &o->limit) != 0)
                return cli_usage_error(what, "--limit: a number from 1 to %d", CK_AUDIT_LIST_MAX);
            break;
        case OPT_MAC:
            if (ck_device_mac_parse(optarg, o->mac) != 0)
                return cli_usage_error(what, "--mac: %s", ck_error_context());
            o->has_mac = true;
            break;
        case OPT_KEEP_ROWS:
            if (ck_parse_int64(optarg, 1, CK_AUDIT_KEEP_ROWS_MAX, &o->keep_rows) != 0)
                return cli_usage_error(what, "--keep-rows: a number from 1 to %d",
                                       CK_AUDIT_KEEP_ROWS_MAX);
            break;
        case OPT_KEEP_DAYS:
            if (ck_parse_int64(optarg, 0, CK_AUDIT_KEEP_DAYS_MAX, &o->keep_days) != 0)
                return cli_usage_error(what, "--keep-days: a number from 0 to %d",
                                       CK_AUDIT_KEEP_DAYS_MAX);
            break;
        default: return cli_getopt_other(what, c, OPT_HELP, argv, help);
        }
    }
    if (optind < argc)
        o->file = argv[optind++];
    return cli_no_more_args(what, optind < argc ? argv[optind] : NULL);
}

/* Accepts only the options a subcommand documents, so typos do not silently do nothing. */
static int
only(const char *what, const struct dbopts *o, const char *allowed, const char *file)
{
    struct {
        bool set;
        const char *name;
    } used[] = {
        {o->stash != NULL, "stash"},       {o->force, "force"},
        {o->overwrite, "overwrite"},       {o->has_since, "since"},
        {o->limit != 0, "limit"},          {o->principal != NULL, "principal"},
        {o->has_mac, "mac"},               {o->action != NULL, "action"},
        {o->keep_rows >= 0, "keep-rows"},  {o->keep_days >= 0, "keep-days"},
        {o->out != NULL, "out"},           {o->replace, "replace"},
    };

    for (size_t i = 0; i < sizeof(used) / sizeof(used[0]); i++) {
        char key[40];
        snprintf(key, sizeof(key), " %s ", used[i].name);
        if (used[i].set && strstr(allowed, key) == NULL)
            return cli_usage_error(what, "option --%s does not apply here", used[i].name);
    }
    if (o->db == NULL)
        return cli_usage_error(what, "--db PATH|URI is required");
    if (file != NULL && o->file == NULL)
        return cli_usage_error(what, "%s is required", file);
    return file == NULL ? cli_no_more_args(what, o->file) : CLI_OK;
}

static int
do_backup(const char *what, const struct dbopts *o)
{
    ck_store_backup_info info;
    int ret;

    if ((ret = ck_store_backup(o->db, o->file, o->overwrite, &info)) != 0)
        return cli_fail(what, ret);
    printf("Backup of realm %s written to %s (schema %d, generation %llu, %lld principals, "
           "%lld devices, %lld audit rows).\n", info.realm, o->file, info.schema_version,
           (unsigned long long)info.generation, (long long)info.principals,
           (long long)info.devices, (long long)info.audit_rows);
    fputs(stash_reminder, stdout);
    return CLI_OK;
}

static int
do_restore(const char *what, const struct dbopts *o)
{
    ck_store_restore_info info;
    char actor[256];
    int ret;

    cli_actor(actor, sizeof(actor));
    ret = ck_store_restore(o->db, o->stash, o->file, o->force ? CK_RESTORE_FORCE : 0, actor,
                           &info);
    if (ret != 0)
        return cli_fail(what, ret);
    printf("Restored realm %s from %s into %s%s: %lld principals, %lld devices; all %lld keys "
           "decrypt with the stash.\n", info.realm, o->file, o->db,
           info.created ? " (new file)" : "", (long long)info.principals,
           (long long)info.devices, (long long)info.keys_checked);
    if (info.created)
        printf("Change counter: backup %llu, now %llu.\n",
               (unsigned long long)info.backup_generation, (unsigned long long)info.generation);
    else
        printf("Change counter: backup %llu, replaced database %llu, now %llu: running KDCs "
               "drop every cached record at their next request.\n",
               (unsigned long long)info.backup_generation,
               (unsigned long long)info.old_generation, (unsigned long long)info.generation);
    if (info.backup_schema_version != 0)
        printf("Backup schema version %d%s.\n", info.backup_schema_version,
               info.created ? "" : "; the audit log of the database was kept and records "
                                   "the restore");
    return CLI_OK;
}

static void
print_problem(const char *problem, void *arg)
{
    (void)arg;
    fprintf(stderr, "cablekey: db check: %s\n", problem);
}

static int
do_check(const char *what, const struct dbopts *o)
{
    ck_store_check_result res;
    int ret;

    ret = ck_store_check(o->db, o->stash, print_problem, NULL, &res);
    if (ret != 0)
        return cli_fail(what, ret);
    printf("Database %s: schema %d, generation %llu, %lld principals, %lld keys and %lld "
           "password history keys (all decrypt with the stash), %lld devices: OK\n", o->db,
           res.schema_version, (unsigned long long)res.generation, (long long)res.principals,
           (long long)res.keys, (long long)res.history_keys, (long long)res.devices);
    return CLI_OK;
}

static int
do_dump(const char *what, const struct dbopts *o)
{
    ck_store_dump_info info;
    ck_store *store = NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *out = stdout;
    int rc, ret;

    if (o->overwrite && o->out == NULL)
        return cli_usage_error(what, "--overwrite needs --out");
    if ((rc = cli_open_store(what, o->db, o->stash, true, &store)) != CLI_OK)
        return rc;
    /* A file is written whole or not at all: the dump goes to memory first. */
    if (o->out != NULL && (out = open_memstream(&buf, &len)) == NULL) {
        ck_store_close(store);
        return cli_fail(what, ck_error_set(CK_ERR_NOMEM, "dump buffer"));
    }
    ret = ck_store_dump(store, out, &info);
    ck_store_close(store);
    if (o->out != NULL) {
        if (fclose(out) != 0 && ret == 0)
            ret = ck_error_set(CK_ERR_NOMEM, "dump buffer");
        if (ret == 0)
            ret = ck_file_write_atomic(o->out, buf, len, o->overwrite ? CK_WRITE_REPLACE : 0);
        free(buf);
    }
    if (ret != 0)
        return cli_fail(what, ret);
    fprintf(o->out != NULL ? stdout : stderr,
            "Dump of realm %s%s%s: master key kvno %u, %lld policies, %lld principals, %lld "
            "keys, %lld lockout records, %lld history keys, %lld devices.\n", info.realm,
            o->out != NULL ? " written to " : "", o->out != NULL ? o->out : "",
            info.master_kvno, (long long)info.policies, (long long)info.principals,
            (long long)info.keys, (long long)info.lockouts, (long long)info.history,
            (long long)info.devices);
    return CLI_OK;
}

static int
do_load(const char *what, const struct dbopts *o)
{
    ck_store_dump_info info;
    char actor[256];
    int ret;

    cli_actor(actor, sizeof(actor));
    if (o->force && !o->replace)
        return cli_usage_error(what, "--force needs --replace");
    if (o->replace) {
        ck_store_restore_info r;
        ret = ck_store_load_replace(o->db, o->stash, o->file, o->force ? CK_RESTORE_FORCE : 0,
                                    actor, &info, &r);
        if (ret != 0)
            return cli_fail(what, ret);
        printf("Replaced realm %s in %s by the dump %s: %lld policies, %lld principals, %lld "
               "keys, %lld devices; change counter %llu -> %llu: running KDCs drop every "
               "cached record at their next request.\n", info.realm, o->db, o->file,
               (long long)info.policies, (long long)info.principals, (long long)info.keys,
               (long long)info.devices, (unsigned long long)r.old_generation,
               (unsigned long long)r.generation);
        return CLI_OK;
    }
    if ((ret = ck_store_load(o->db, o->stash, o->file, actor, &info)) != 0)
        return cli_fail(what, ret);
    printf("Loaded realm %s from %s into %s: master key kvno %u, %lld policies, %lld "
           "principals, %lld keys (all decrypt with the stash), %lld lockout records, %lld "
           "history keys, %lld devices.\n", info.realm, o->file, o->db, info.master_kvno,
           (long long)info.policies, (long long)info.principals, (long long)info.keys,
           (long long)info.lockouts, (long long)info.history, (long long)info.devices);
    return CLI_OK;
}

int
cli_db(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(const char *what, const struct dbopts *o);
        const char *allowed, *file;
    } subs[] = {
        {"backup", do_backup, " overwrite ", "OUT (the backup file)"},
        {"restore", do_restore, " stash force ", "IN (the backup file)"},
        {"check", do_check, " stash ", NULL},
        {"dump", do_dump, " stash overwrite out ", NULL},
        {"load", do_load, " stash replace force ", "IN (the dump file)"},
    };
    char what[64];
    struct dbopts o;
    int rc;

    if (cli_family_help(argc, argv, db_help, stash_reminder, &rc))
        return rc;
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        if (strcmp(argv[1], subs[i].name) != 0)
            continue;
        snprintf(what, sizeof(what), "db %s", subs[i].name);
        rc = parse_opts(what, db_help, argc - 1, argv + 1, &o);
        if (rc < 0)
            return CLI_OK; /* --help */
        if (rc != CLI_OK || (rc = only(what, &o, subs[i].allowed, subs[i].file)) != CLI_OK)
            return rc;
        return subs[i].fn(what, &o);
    }
    return cli_unknown_verb("db", argv[1]);
}

/* ---- audit ---- */

static int
print_audit_row(const ck_audit_entry *e, void *arg)
{
    char when[64];

    (void)arg;
    cli_format_time(e->time, when, sizeof(when));
    printf("%s\t%s\t%s\t%s\t%s\n", when, e->actor, e->action, e->object, e->detail);
    return 0;
}

static int
do_audit_list(const char *what, const struct dbopts *o, ck_store *store)
{
    ck_audit_filter f;
    char *name = NULL;
    int rc, ret;

    memset(&f, 0, sizeof(f));
    if (o->principal != NULL && o->has_mac)
        return cli_usage_error(what, "--principal and --mac exclude each other");
    if (o->principal != NULL &&
        (rc = cli_canonical_name(what, store, o->principal, &name)) != CLI_OK)
        return rc;
    f.since = o->has_since ? o->since : 0;
    f.object = name != NULL ? name : (o->has_mac ? o->mac : NULL);
    f.action = o->action;
    f.limit = o->limit != 0 ? (size_t)o->limit : AUDIT_LIST_DEFAULT;
    ret = ck_store_audit_list(store, &f, print_audit_row, NULL);
    free(name);
    if (ret != 0)
        return cli_fail(what, ret);
    return CLI_OK;
}

static int
do_audit_retention(const char *what, const struct dbopts *o, ck_store *store)
{
    ck_audit_retention r;
    int ret;

    if ((ret = ck_store_audit_get_retention(store, &r)) != 0)
        return cli_fail(what, ret);
    if (o->keep_rows >= 0 || o->keep_days >= 0) {
        if (o->keep_rows >= 0)
            r.keep_rows = o->keep_rows;
        if (o->keep_days >= 0)
            r.keep_days = o->keep_days;
        if ((ret = ck_store_audit_set_retention(store, &r)) != 0)
            return cli_fail(what, ret);
    }
    printf("Audit log keeps the newest %lld rows", (long long)r.keep_rows);
    if (r.keep_days > 0)
        printf(" and rows of the last %lld days.\n", (long long)r.keep_days);
    else
        printf(" (no age limit).\n");
    return CLI_OK;
}

int
cli_audit(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(const char *what, const struct dbopts *o, ck_store *store);
        const char *allowed;
    } subs[] = {
        {"list", do_audit_list, " stash since limit principal mac action "},
        {"retention", do_audit_retention, " stash keep-rows keep-days "},
    };
    char what[64];
    struct dbopts o;
    ck_store *store = NULL;
    int rc;

    if (cli_family_help(argc, argv, audit_help, NULL, &rc))
        return rc;
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        bool readonly;

        if (strcmp(argv[1], subs[i].name) != 0)
            continue;
        snprintf(what, sizeof(what), "audit %s", subs[i].name);
        rc = parse_opts(what, audit_help, argc - 1, argv + 1, &o);
        if (rc < 0)
            return CLI_OK; /* --help */
        if (rc != CLI_OK || (rc = only(what, &o, subs[i].allowed, NULL)) != CLI_OK)
            return rc;
        readonly = subs[i].fn == do_audit_list || (o.keep_rows < 0 && o.keep_days < 0);
        if ((rc = cli_open_store(what, o.db, o.stash, readonly, &store)) != CLI_OK)
            return rc;
        rc = subs[i].fn(what, &o, store);
        ck_store_close(store);
        return rc;
    }
    return cli_unknown_verb("audit", argv[1]);
}
