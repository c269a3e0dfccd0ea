/* cablekey init: creates the realm database, the master key stash and krbtgt/REALM@REALM. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/crypto.h"
#include "cablekey/error.h"
#include "cli.h"

static const int32_t default_enctypes[] = {
    CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96,
    CK_ENCTYPE_AES256_CTS_HMAC_SHA384_192, CK_ENCTYPE_AES128_CTS_HMAC_SHA256_128};

static void
init_usage(FILE *f)
{
    fprintf(f,
            "usage: cablekey init --db FILE --realm REALM [--stash FILE] [--enctypes LIST]\n"
            "                     [--max-life DURATION] [--max-renew DURATION]\n"
            "\n"
            "Creates a new realm database and a random master key in the stash file (mode\n"
            "0600; default FILE.stash), plus krbtgt/REALM@REALM with random keys. Refuses to\n"
            "overwrite an existing database or stash.\n"
            "  --enctypes LIST     default: aes256-cts-hmac-sha1-96,aes128-cts-hmac-sha1-96,\n"
            "                      aes256-cts-hmac-sha384-192,aes128-cts-hmac-sha256-128\n"
            "  --max-life D        realm ticket lifetime cap (seconds or 10h, 1d...; default 10h)\n"
            "  --max-renew D       realm renewable lifetime cap (default 7d)\n");
}

int
cli_init(int argc, char **argv)
{
    static const struct option opts[] = {
        {"db", required_argument, NULL, 'd'},       {"stash", required_argument, NULL, 's'},
        {"realm", required_argument, NULL, 'r'},    {"enctypes", required_argument, NULL, 'e'},
        {"max-life", required_argument, NULL, 'l'}, {"max-renew", required_argument, NULL, 'R'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    const char *db = NULL, *stash = NULL, *realm = NULL;
    int32_t enctypes[CK_STORE_MAX_ENCTYPES];
    size_t n_enctypes = sizeof(default_enctypes) / sizeof(default_enctypes[0]);
    int64_t max_life = 0, max_renew = 0;
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
        case 'h': init_usage(stdout); return CLI_OK;
        default: return cli_usage_error("init", "unknown or incomplete option '%s'",
                                        argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage_error("init", "unexpected argument '%s'", argv[optind]);
    if (db == NULL || realm == NULL)
        return cli_usage_error("init", "--db FILE and --realm REALM are required");
    ret = ck_store_init_realm(db, stash, realm, enctypes, n_enctypes, max_life, max_renew);
    if (ret != 0)
        return cli_fail("init", ret);
    printf("Initialized realm %s in %s (stash %s%s)\n", realm, db, stash ? stash : db,
           stash ? "" : ".stash");
    return CLI_OK;
}
