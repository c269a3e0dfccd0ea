/* cablekey init: creates the realm database, the master key stash, krbtgt/REALM@REALM and
 * kadmin/changepw@REALM (the kpasswd service), keyagent/REALM@REALM (the key version service,
 * keyagent.h); --add-changepw adds the latter to a realm made
 * before it existed. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/crypto.h"
#include "cablekey/error.h"
#include "cablekey/keyagent.h"
#include "cablekey/store.h"
#include "cli.h"

static const int32_t default_enctypes[] = {
    CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96,
    CK_ENCTYPE_AES256_CTS_HMAC_SHA384_192, CK_ENCTYPE_AES128_CTS_HMAC_SHA256_128};

static void
init_usage(FILE *f)
{
    fprintf(f,
            "usage: cablekey init --db PATH|URI --realm REALM [--stash FILE] [--enctypes LIST]\n"
            "                     [--max-life DURATION] [--max-renew DURATION]\n"
            "       cablekey init --db PATH|URI [--stash FILE] --add-changepw\n"
            "       cablekey init --db PATH|URI [--stash FILE] --add-keyagent\n"
            "\n"
            "Creates a new realm database and a random master key in the stash file (mode\n"
            "0600; default PATH.stash), plus krbtgt/REALM@REALM and kadmin/changepw@REALM\n"
            "(the password-change service) and keyagent/REALM@REALM (the key version service\n"
            "of keytab-agent) with random keys. Refuses to overwrite an existing\n"
            "database or stash. --add-changepw adds kadmin/changepw to an existing realm,\n"
            "--add-keyagent keyagent/REALM (for cablekey keytab-agent).\n"
            "  --enctypes LIST     default: aes256-cts-hmac-sha1-96,aes128-cts-hmac-sha1-96,\n"
            "                      aes256-cts-hmac-sha384-192,aes128-cts-hmac-sha256-128\n"
            "  --max-life D        realm ticket lifetime cap (seconds or 10h, 1d...; default 10h)\n"
            "  --max-renew D       realm renewable lifetime cap (default 7d)\n");
}

/* kadmin/changepw with MIT's attributes (kdb5_util create): PWCHANGE_SERVICE, so a user whose
 * password expired still gets a ticket for it; DISALLOW_TGT_BASED, so only an AS exchange (a
 * proof of the password) yields one; NO_AUTH_DATA_REQUIRED; 5-minute tickets. */
static int
add_changepw(const char *db, const char *stash)
{
    ck_store *store = NULL;
    ck_db_principal *p = NULL;
    const ck_realm_info *ri;
    char name[300];
    int ret;

    if ((ret = ck_store_open(db, stash, 0, &store)) != 0)
        goto out;
    ri = ck_store_realm(store);
    if ((size_t)snprintf(name, sizeof(name), "kadmin/changepw@%s", ri->name) >= sizeof(name)) {
        ret = ck_error_set(CK_ERR_LIMIT, "realm name too long");
        goto out;
    }
    if ((ret = ck_db_principal_new(name, &p)) != 0 ||
        (ret = ck_db_keys_make(name, NULL, 0, ri->enctypes, ri->n_enctypes, 1, &p->keys,
                               &p->n_keys)) != 0)
        goto out;
    p->kvno = 1;
    p->attributes = CK_ATTR_PWCHANGE_SERVICE | CK_ATTR_DISALLOW_TGT_BASED |
                    CK_ATTR_NO_AUTH_DATA_REQUIRED;
    p->max_life = 300;
    ret = ck_store_create_principal(store, p);
out:
    ck_db_principal_free(p);
    ck_store_close(store);
    return ret;
}

int
cli_init(int argc, char **argv)
{
    static const struct option opts[] = {
        {"db", required_argument, NULL, 'd'},       {"stash", required_argument, NULL, 's'},
        {"realm", required_argument, NULL, 'r'},    {"enctypes", required_argument, NULL, 'e'},
        {"max-life", required_argument, NULL, 'l'}, {"max-renew", required_argument, NULL, 'R'},
        {"add-changepw", no_argument, NULL, 'A'},
        {"add-keyagent", no_argument, NULL, 'K'}, /* keyagent.h */
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    const char *db = NULL, *stash = NULL, *realm = NULL;
    int32_t enctypes[CK_STORE_MAX_ENCTYPES];
    size_t n_enctypes = sizeof(default_enctypes) / sizeof(default_enctypes[0]);
    int64_t max_life = 0, max_renew = 0;
    bool changepw_only = false, keyagent_only = false;
    int c, ret;

    memcpy(enctypes, default_enctypes, sizeof(default_enctypes));
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': db = optarg; break;
        case 's': stash = optarg; break;
        case 'r': realm = optarg; break;
        case 'e':
            if (cli_parse_enctypes(optarg, enctypes, CK_STORE_MAX_ENCTYPES, &n_enctypes) != 0)
                return cli_usage_error("init", "--enctypes: %s", ck_error_context());
            break;
        case 'l':
            if (cli_parse_duration(optarg, &max_life) != 0)
                return cli_usage_error("init", "--max-life: %s", ck_error_context());
            break;
        case 'R':
            if (cli_parse_duration(optarg, &max_renew) != 0)
                return cli_usage_error("init", "--max-renew: %s", ck_error_context());
            break;
        case 'A': changepw_only = true; break;
        case 'K': keyagent_only = true; break;
        case 'h': init_usage(stdout); return CLI_OK;
        default: return cli_usage_error("init", "unknown or incomplete option '%s'",
                                        argv[optind - 1]);
        }
    }
    if ((ret = cli_no_more_args("init", optind < argc ? argv[optind] : NULL)) != CLI_OK)
        return ret;
    if (keyagent_only) {
        if (db == NULL)
            return cli_usage_error("init", "--add-keyagent needs --db PATH|URI");
        if ((ret = ck_keyagent_service_create(db, stash)) != 0)
            return cli_fail("init", ret);
        printf("Added keyagent/REALM to %s\n", db);
        return CLI_OK;
    }
    if (changepw_only) {
        if (db == NULL)
            return cli_usage_error("init", "--add-changepw needs --db PATH|URI");
        if ((ret = add_changepw(db, stash)) != 0)
            return cli_fail("init", ret);
        printf("Added kadmin/changepw to %s\n", db);
        return CLI_OK;
    }
    if (db == NULL || realm == NULL)
        return cli_usage_error("init", "--db PATH|URI and --realm REALM are required");
    ret = ck_store_init_realm(db, stash, realm, enctypes, n_enctypes, max_life, max_renew);
    if (ret == 0)
        ret = add_changepw(db, stash);
    if (ret == 0) /* the key version service (keyagent.h) */
        ret = ck_keyagent_service_create(db, stash);
    if (ret != 0)
        return cli_fail("init", ret);
    {
        char *dflt = NULL;
        if (stash == NULL && ck_store_default_stash(db, &dflt) != 0)
            ck_error_clear();
        printf("Initialized realm %s in %s (stash %s)\n", realm, db,
               stash != NULL ? stash : dflt != NULL ? dflt : "?");
        free(dflt);
    }
    return CLI_OK;
}
