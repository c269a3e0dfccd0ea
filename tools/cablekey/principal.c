/* cablekey principal add|list|show|delete|modify|rotate. */
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
#include "cli.h"

/* Long-only options share one table; each subcommand accepts the subset it documents. */
enum {
    OPT_DB = 256, OPT_STASH, OPT_PASSWORD, OPT_PASSWORD_STDIN, OPT_RANDOM, OPT_NO_PREAUTH,
    OPT_REQUIRES_PREAUTH, OPT_ENCTYPES, OPT_MAX_LIFE, OPT_MAX_RENEW, OPT_EXPIRES,
    OPT_NEVER_EXPIRES, OPT_PW_EXPIRES, OPT_DISALLOW_ALL_TIX, OPT_ALLOW_TIX, OPT_KEEP, OPT_HELP,
    OPT_POLICY, OPT_CLEAR_POLICY,
};

static const struct option all_opts[] = {
    {"db", required_argument, NULL, OPT_DB},
    {"stash", required_argument, NULL, OPT_STASH},
    {"password", required_argument, NULL, OPT_PASSWORD},
    {"password-stdin", no_argument, NULL, OPT_PASSWORD_STDIN},
    {"random", no_argument, NULL, OPT_RANDOM},
    {"no-preauth", no_argument, NULL, OPT_NO_PREAUTH},
    {"requires-preauth", no_argument, NULL, OPT_REQUIRES_PREAUTH},
    {"enctypes", required_argument, NULL, OPT_ENCTYPES},
    {"max-life", required_argument, NULL, OPT_MAX_LIFE},
    {"max-renew", required_argument, NULL, OPT_MAX_RENEW},
    {"expires", required_argument, NULL, OPT_EXPIRES},
    {"never-expires", no_argument, NULL, OPT_NEVER_EXPIRES},
    {"pw-expires", required_argument, NULL, OPT_PW_EXPIRES},
    {"disallow-all-tix", no_argument, NULL, OPT_DISALLOW_ALL_TIX},
    {"allow-tix", no_argument, NULL, OPT_ALLOW_TIX},
    {"keep", required_argument, NULL, OPT_KEEP},
    {"help", no_argument, NULL, OPT_HELP},
    {"policy", required_argument, NULL, OPT_POLICY},
    {"clear-policy", no_argument, NULL, OPT_CLEAR_POLICY},
    {NULL, 0, NULL, 0},
};

struct popts {
    const char *db, *stash;
    const char *password;     /* from --password (argv: visible to ps; prefer --password-stdin) */
    bool password_stdin, random;
    int preauth;              /* -1 unchanged, 0 off, 1 on */
    int allow_tix;            /* -1 unchanged, 0 disallow, 1 allow */
    int32_t enctypes[CK_STORE_MAX_ENCTYPES];
    size_t n_enctypes;
    bool has_max_life, has_max_renew, has_expires, has_pw_expires;
    int64_t max_life, max_renew, expires, pw_expires;
    int64_t keep;
    const char **names;
    size_t n_names;
    const char *policy;       /* --policy NAME (policy.c) */
    bool clear_policy;
};

static const char principal_help[] =
    "usage: cablekey principal SUBCOMMAND --db FILE [--stash FILE] ...\n"
    "\n"
    "  add NAME (--password PW | --password-stdin | --random) [--no-preauth]\n"
    "      [--enctypes LIST] [--max-life D] [--max-renew D] [--expires TIME]\n"
    "      [--pw-expires TIME] [--disallow-all-tix]\n"
    "  list\n"
    "  show NAME\n"
    "  delete NAME\n"
    "  modify NAME [--expires TIME | --never-expires] [--requires-preauth | --no-preauth]\n"
    "      [--disallow-all-tix | --allow-tix] [--max-life D] [--max-renew D] [--pw-expires TIME]\n"
    "  rotate NAME [--password PW | --password-stdin | --random] [--enctypes LIST] [--keep N]\n"
    "  unlock NAME\n"
    "  add and modify also take --policy POLICY or --clear-policy (see 'cablekey policy').\n"
    "\n"
    "NAME without @REALM is in the database's realm. Principals require pre-authentication\n"
    "unless --no-preauth is given. Durations are seconds or 10h, 7d, 1d12h...; TIME is epoch\n"
    "seconds, YYYY-MM-DD or 'YYYY-MM-DD HH:MM:SS' (UTC). rotate makes a new kvno (random keys\n"
    "by default), keeping the newest 3 kvnos unless --keep N. --password-stdin reads one line.\n";

static int
parse_opts(const char *what, int argc, char **argv, struct popts *o)
{
    int c;

    memset(o, 0, sizeof(*o));
    o->preauth = -1;
    o->allow_tix = -1;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", all_opts, NULL)) != -1) {
        switch (c) {
        case OPT_DB: o->db = optarg; break;
        case OPT_STASH: o->stash = optarg; break;
        case OPT_PASSWORD: o->password = optarg; break;
        case OPT_PASSWORD_STDIN: o->password_stdin = true; break;
        case OPT_RANDOM: o->random = true; break;
        case OPT_NO_PREAUTH: o->preauth = 0; break;
        case OPT_REQUIRES_PREAUTH: o->preauth = 1; break;
        case OPT_DISALLOW_ALL_TIX: o->allow_tix = 0; break;
        case OPT_ALLOW_TIX: o->allow_tix = 1; break;
        case OPT_NEVER_EXPIRES:
            o->has_expires = true;
            o->expires = 0;
            break;
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
        case OPT_POLICY: o->policy = optarg; break;
        case OPT_CLEAR_POLICY: o->clear_policy = true; break;
        case 'h':
        case OPT_HELP:
            fputs(principal_help, stdout);
            return -1;
        case ':':
            return cli_usage_error(what, "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_usage_error(what, "unknown option '%s'", argv[optind - 1]);
        }
    }
    o->names = (const char **)(argv + optind);
    o->n_names = (size_t)(argc - optind);
    return CLI_OK;
}

/* Accepts only the options a subcommand documents, so typos do not silently do nothing. */
static int
only(const char *what, const struct popts *o, const char *allowed)
{
    struct {
        bool set;
        const char *name;
    } used[] = {
        {o->password != NULL, "password"},      {o->password_stdin, "password-stdin"},
        {o->random, "random"},                  {o->preauth == 0, "no-preauth"},
        {o->preauth == 1, "requires-preauth"},  {o->allow_tix == 0, "disallow-all-tix"},
        {o->allow_tix == 1, "allow-tix"},       {o->n_enctypes > 0, "enctypes"},
        {o->has_max_life, "max-life"},          {o->has_max_renew, "max-renew"},
        {o->has_expires && o->expires != 0, "expires"},
        {o->has_expires && o->expires == 0, "never-expires"},
        {o->has_pw_expires, "pw-expires"},      {o->keep != 0, "keep"},
        {o->policy != NULL, "policy"},          {o->clear_policy, "clear-policy"},
    };

    for (size_t i = 0; i < sizeof(used) / sizeof(used[0]); i++) {
        char key[40];
        snprintf(key, sizeof(key), " %s ", used[i].name);
        if (used[i].set && strstr(allowed, key) == NULL)
            return cli_usage_error(what, "option --%s does not apply here", used[i].name);
    }
    return CLI_OK;
}

static int
one_name(const char *what, const struct popts *o)
{
    if (o->n_names != 1)
        return cli_usage_error(what, "expected exactly one principal name, got %zu", o->n_names);
    return CLI_OK;
}

/* Gets the password the options ask for: *pw NULL means random keys. */
static int
get_password(const char *what, const struct popts *o, bool random_default, char **pw,
             size_t *len)
{
    int n = (o->password != NULL) + o->password_stdin + o->random;
    int ret;

    *pw = NULL;
    *len = 0;
    if (n > 1)
        return cli_usage_error(what, "--password, --password-stdin and --random exclude each "
                                     "other");
    if (n == 0 && !random_default)
        return cli_usage_error(what, "one of --password, --password-stdin or --random is "
                                     "required");
    if (o->password != NULL) {
        if (*o->password == '\0')
            return cli_usage_error(what, "empty password");
        *len = strlen(o->password);
        *pw = ck_memdup(o->password, *len + 1);
        if (*pw == NULL)
            return cli_fail(what, ck_error_set(CK_ERR_NOMEM, "password"));
        return CLI_OK;
    }
    if (o->password_stdin) {
        if ((ret = cli_read_password_stdin(pw, len)) != 0)
            return cli_fail(what, ret);
    }
    return CLI_OK;
}

static int
do_add(const char *what, const struct popts *o, ck_store *store)
{
    const ck_realm_info *ri = ck_store_realm(store);
    ck_db_principal *p = NULL;
    char *name = NULL, *pw = NULL;
    size_t pwlen = 0;
    int rc, ret;

    if ((rc = only(what, o, " password password-stdin random no-preauth requires-preauth enctypes"
                            " max-life max-renew expires never-expires pw-expires"
                            " disallow-all-tix allow-tix policy clear-policy ")) != CLI_OK ||
        (rc = one_name(what, o)) != CLI_OK ||
        (rc = get_password(what, o, false, &pw, &pwlen)) != CLI_OK)
        return rc;
    if ((rc = cli_canonical_name(what, store, o->names[0], &name)) != CLI_OK)
        goto out;
    if ((ret = ck_db_principal_new(name, &p)) != 0) {
        rc = cli_fail(what, ret);
        goto out;
    }
    p->kvno = 1;
    /* Pre-authentication is on unless refused, as with MIT default_principal_flags=+preauth. */
    p->attributes = o->preauth == 0 ? 0 : CK_ATTR_REQUIRES_PREAUTH;
    if (o->allow_tix == 0)
        p->attributes |= CK_ATTR_DISALLOW_ALL_TIX;
    p->max_life = o->max_life;
    p->max_renew = o->max_renew;
    p->expires = o->expires;
    p->pw_expires = o->pw_expires;
    if ((rc = cli_principal_new_policy(what, store, o->policy, o->clear_policy, p, pw, pwlen,
                                       o->has_pw_expires)) != CLI_OK)
        goto out;
    ret = ck_db_keys_make(name, pw, pwlen, o->n_enctypes ? o->enctypes : ri->enctypes,
                          o->n_enctypes ? o->n_enctypes : ri->n_enctypes, 1, &p->keys,
                          &p->n_keys);
    if (ret == 0)
        ret = ck_store_create_principal(store, p);
    if (ret != 0) {
        rc = cli_fail(what, ret);
        goto out;
    }
    printf("Principal %s created.\n", name);
    rc = CLI_OK;
out:
    cli_password_free(pw, pwlen);
    ck_db_principal_free(p);
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
do_list(const char *what, const struct popts *o, ck_store *store)
{
    int rc, ret;

    if ((rc = only(what, o, " ")) != CLI_OK)
        return rc;
    if (o->n_names != 0)
        return cli_usage_error(what, "unexpected argument '%s'", o->names[0]);
    if ((ret = ck_store_list_principals(store, print_name, NULL)) != 0)
        return cli_fail(what, ret);
    return CLI_OK;
}

static void
print_attributes(uint32_t a)
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

    printf("Attributes:");
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

static int
do_show(const char *what, const struct popts *o, ck_store *store)
{
    const ck_realm_info *ri = ck_store_realm(store);
    ck_db_principal *p = NULL;
    char *name = NULL;
    int rc, ret;

    if ((rc = only(what, o, " ")) != CLI_OK || (rc = one_name(what, o)) != CLI_OK)
        return rc;
    if ((rc = cli_canonical_name(what, store, o->names[0], &name)) != CLI_OK)
        return rc;
    if ((ret = ck_store_get_principal(store, name, &p)) != 0) {
        rc = cli_fail(what, ret);
        goto out;
    }
    printf("Principal: %s\n", p->name);
    print_when("Expiration date", p->expires, "[never]");
    print_when("Password expiration date", p->pw_expires, "[never]");
    print_life("Maximum ticket life", p->max_life, ri->max_life);
    print_life("Maximum renewable life", p->max_renew, ri->max_renew);
    print_when("Created", p->created, "[unknown]");
    print_when("Last modified", p->modified, "[unknown]");
    print_attributes(p->attributes);
    cli_principal_show_policy(store, p);
    printf("Current kvno: %u\n", p->kvno);
    printf("Number of keys: %zu\n", p->n_keys);
    /* Key bytes are never shown, only what identifies each key. */
    for (size_t i = 0; i < p->n_keys; i++) {
        printf("Key: vno %u, %s, ", p->keys[i].kvno, ck_enctype_name(p->keys[i].enctype));
        print_salt(&p->keys[i]);
        printf("\n");
    }
    rc = CLI_OK;
out:
    ck_db_principal_free(p);
    free(name);
    return rc;
}

static int
do_delete(const char *what, const struct popts *o, ck_store *store)
{
    char *name = NULL;
    int rc, ret;

    if ((rc = only(what, o, " ")) != CLI_OK || (rc = one_name(what, o)) != CLI_OK)
        return rc;
    if ((rc = cli_canonical_name(what, store, o->names[0], &name)) != CLI_OK)
        return rc;
    /* Without its own krbtgt the realm issues no tickets; rotate it instead. */
    if (strncmp(name, "krbtgt/", 7) == 0) {
        ck_principal *p = NULL;
        bool local = ck_principal_parse(name, NULL, 0, &p) == 0 &&
                     ck_principal_is_tgs(p, ck_store_realm(store)->name);
        ck_principal_free(p);
        if (local) {
            fprintf(stderr, "cablekey: %s: refusing to delete the realm's own %s\n", what, name);
            free(name);
            return CLI_FAIL;
        }
    }
    ret = ck_store_delete_principal(store, name);
    if (ret != 0)
        rc = cli_fail(what, ret);
    else
        printf("Principal %s deleted.\n", name);
    free(name);
    return rc;
}

static int
do_modify(const char *what, const struct popts *o, ck_store *store)
{
    ck_db_principal *p = NULL;
    char *name = NULL;
    int rc, ret;

    if ((rc = only(what, o, " no-preauth requires-preauth max-life max-renew expires"
                            " never-expires pw-expires disallow-all-tix allow-tix policy"
                            " clear-policy ")) != CLI_OK ||
        (rc = one_name(what, o)) != CLI_OK)
        return rc;
    if ((rc = cli_canonical_name(what, store, o->names[0], &name)) != CLI_OK)
        return rc;
    if ((ret = ck_store_get_principal(store, name, &p)) != 0) {
        rc = cli_fail(what, ret);
        goto out;
    }
    if (o->preauth == 1)
        p->attributes |= CK_ATTR_REQUIRES_PREAUTH;
    else if (o->preauth == 0)
        p->attributes &= ~CK_ATTR_REQUIRES_PREAUTH;
    if (o->allow_tix == 0)
        p->attributes |= CK_ATTR_DISALLOW_ALL_TIX;
    else if (o->allow_tix == 1)
        p->attributes &= ~CK_ATTR_DISALLOW_ALL_TIX;
    if (o->has_max_life)
        p->max_life = o->max_life;
    if (o->has_max_renew)
        p->max_renew = o->max_renew;
    if (o->has_expires)
        p->expires = o->expires;
    if (o->has_pw_expires)
        p->pw_expires = o->pw_expires;
    if ((ret = ck_store_update_principal(store, p)) != 0) {
        rc = cli_fail(what, ret);
        goto out;
    }
    if ((rc = cli_principal_set_policy(what, store, name, o->policy, o->clear_policy)) != CLI_OK)
        goto out;
    printf("Principal %s modified.\n", name);
    rc = CLI_OK;
out:
    ck_db_principal_free(p);
    free(name);
    return rc;
}

/* A password is a password change: the policy applies (policy.c). */
static int
rotate_password(const char *what, const struct popts *o, ck_store *store, const char *name,
                const char *pw, size_t pwlen)
{
    uint32_t kvno = 0;
    int rc;

    if (o->n_enctypes > 0 || o->keep != 0)
        return cli_usage_error(what, "--enctypes and --keep do not apply with a password (the "
                                     "principal's enctypes are kept)");
    if ((rc = cli_principal_change_password(what, store, name, pw, pwlen, &kvno)) != CLI_OK)
        return rc;
    printf("Principal %s: new keys with kvno %u.\n", name, kvno);
    return CLI_OK;
}

static int
do_unlock(const char *what, const struct popts *o, ck_store *store)
{
    char *name = NULL;
    int rc;

    if ((rc = only(what, o, " ")) != CLI_OK || (rc = one_name(what, o)) != CLI_OK)
        return rc;
    if ((rc = cli_canonical_name(what, store, o->names[0], &name)) != CLI_OK)
        return rc;
    rc = cli_principal_unlock(what, store, name);
    free(name);
    return rc;
}

static int
do_rotate(const char *what, const struct popts *o, ck_store *store)
{
    const ck_realm_info *ri = ck_store_realm(store);
    ck_db_key *keys = NULL;
    size_t n_keys = 0, pwlen = 0;
    char *name = NULL, *pw = NULL;
    uint32_t kvno = 0;
    int rc, ret;

    if ((rc = only(what, o, " password password-stdin random enctypes keep ")) != CLI_OK ||
        (rc = one_name(what, o)) != CLI_OK ||
        (rc = get_password(what, o, true, &pw, &pwlen)) != CLI_OK)
        return rc;
    if ((rc = cli_canonical_name(what, store, o->names[0], &name)) != CLI_OK)
        goto out;
    if (pw != NULL) {
        rc = rotate_password(what, o, store, name, pw, pwlen);
        goto out;
    }
    ret = ck_db_keys_make(name, pw, pwlen, o->n_enctypes ? o->enctypes : ri->enctypes,
                          o->n_enctypes ? o->n_enctypes : ri->n_enctypes, 0, &keys, &n_keys);
    if (ret == 0)
        ret = ck_store_rotate_keys(store, name, keys, n_keys, (unsigned)o->keep, &kvno);
    if (ret != 0) {
        rc = cli_fail(what, ret);
        goto out;
    }
    printf("Principal %s: new keys with kvno %u.\n", name, kvno);
    rc = CLI_OK;
out:
    ck_db_keys_free(keys, n_keys);
    cli_password_free(pw, pwlen);
    free(name);
    return rc;
}

int
cli_principal(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(const char *what, const struct popts *o, ck_store *store);
        bool readonly;
    } subs[] = {
        {"add", do_add, false},       {"list", do_list, true},
        {"show", do_show, true},      {"delete", do_delete, false},
        {"modify", do_modify, false}, {"rotate", do_rotate, false},
        {"unlock", do_unlock, false},
    };
    char what[64];
    struct popts o;
    ck_store *store = NULL;
    int rc;

    if (argc < 2) {
        fputs(principal_help, stderr);
        return CLI_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(principal_help, stdout);
        return CLI_OK;
    }
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        if (strcmp(argv[1], subs[i].name) != 0)
            continue;
        snprintf(what, sizeof(what), "principal %s", subs[i].name);
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
    fprintf(stderr, "cablekey: principal: unknown subcommand '%s' (see 'cablekey principal "
                    "--help')\n", argv[1]);
    return CLI_USAGE;
}
