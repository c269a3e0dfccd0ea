/* cablekey keytab export: writes principals' keys to an MIT-format keytab (like kadmin ktadd,
 * but without changing the keys). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/error.h"
#include "cablekey/keytab.h"
#include "cablekey/principal.h"
#include "cablekey/store.h"
#include "cli.h"

static const char keytab_help[] =
    "usage: cablekey keytab export --db FILE [--stash FILE] --out FILE [--all-kvnos] NAME...\n"
    "\n"
    "Writes the keys of each NAME (current kvno only, or every stored kvno with --all-kvnos)\n"
    "to the keytab FILE (MIT format 0x0502, mode 0600). Entries already in FILE are kept,\n"
    "except those replaced by the same principal, kvno and enctype. The keys in the database\n"
    "are not changed.\n";

/* Drops entries of kt that match (principal, kvno, enctype), wiping their keys. */
static void
drop_same(ck_keytab *kt, const ck_principal *p, uint32_t kvno, int32_t enctype)
{
    size_t w = 0;

    for (size_t i = 0; i < kt->n_entries; i++) {
        ck_keytab_entry *e = &kt->entries[i];
        if (ck_principal_equal(e->principal, p) && e->kvno == kvno &&
            e->key.enctype == enctype) {
            ck_principal_free(e->principal);
            ck_key_clear(&e->key);
            continue;
        }
        if (w != i)
            kt->entries[w] = *e;
        w++;
    }
    for (size_t i = w; i < kt->n_entries; i++)
        memset(&kt->entries[i], 0, sizeof(kt->entries[i]));
    kt->n_entries = w;
}

static int
export_one(const char *what, ck_store *store, const char *user_name, bool all_kvnos,
           ck_keytab *kt, size_t *count)
{
    ck_db_principal *rec = NULL;
    ck_principal *p = NULL;
    char *name = NULL;
    int rc = CLI_FAIL, ret;

    if ((rc = cli_canonical_name(what, store, user_name, &name)) != CLI_OK)
        return rc;
    rc = CLI_FAIL;
    if ((ret = ck_store_get_principal(store, name, &rec)) != 0 ||
        (ret = ck_principal_parse(name, NULL, CK_PRINCIPAL_PARSE_REQUIRE_REALM, &p)) != 0) {
        rc = cli_fail(what, ret);
        goto out;
    }
    for (size_t i = 0; i < rec->n_keys; i++) {
        const ck_db_key *k = &rec->keys[i];
        if (!all_kvnos && k->kvno != rec->kvno)
            continue;
        drop_same(kt, p, k->kvno, k->enctype);
        if ((ret = ck_keytab_add(kt, p, k->kvno, 0, &k->key)) != 0) {
            rc = cli_fail(what, ret);
            goto out;
        }
        (*count)++;
    }
    rc = CLI_OK;
out:
    ck_principal_free(p);
    ck_db_principal_free(rec);
    free(name);
    return rc;
}

static int
do_export(int argc, char **argv)
{
    static const struct option opts[] = {
        {"db", required_argument, NULL, 'd'},  {"stash", required_argument, NULL, 's'},
        {"out", required_argument, NULL, 'o'}, {"all-kvnos", no_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},      {NULL, 0, NULL, 0},
    };
    const char *what = "keytab export";
    const char *db = NULL, *stash = NULL, *out = NULL;
    bool all_kvnos = false;
    ck_store *store = NULL;
    ck_keytab *kt = NULL;
    size_t count = 0;
    int c, rc, ret;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': db = optarg; break;
        case 's': stash = optarg; break;
        case 'o': out = optarg; break;
        case 'a': all_kvnos = true; break;
        case 'h': fputs(keytab_help, stdout); return CLI_OK;
        case ':': return cli_usage_error(what, "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage_error(what, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (out == NULL)
        return cli_usage_error(what, "--out FILE is required");
    if (optind >= argc)
        return cli_usage_error(what, "no principal names given");
    if ((rc = cli_open_store(what, db, stash, true, &store)) != CLI_OK)
        return rc;
    ret = ck_keytab_read(out, &kt);
    if (ret == CK_ERR_NOTFOUND)
        ret = ck_keytab_new(&kt);
    if (ret != 0) {
        rc = cli_fail(what, ret);
        goto done;
    }
    for (int i = optind; i < argc; i++) {
        if ((rc = export_one(what, store, argv[i], all_kvnos, kt, &count)) != CLI_OK)
            goto done;
    }
    if ((ret = ck_keytab_write(out, kt)) != 0) {
        rc = cli_fail(what, ret);
        goto done;
    }
    printf("Wrote %zu key%s to %s.\n", count, count == 1 ? "" : "s", out);
    rc = CLI_OK;
done:
    ck_keytab_free(kt);
    ck_store_close(store);
    return rc;
}

int
cli_keytab(int argc, char **argv)
{
    if (argc < 2) {
        fputs(keytab_help, stderr);
        return CLI_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(keytab_help, stdout);
        return CLI_OK;
    }
    if (strcmp(argv[1], "export") == 0)
        return do_export(argc - 1, argv + 1);
    fprintf(stderr, "cablekey: keytab: unknown subcommand '%s' (see 'cablekey keytab --help')\n",
            argv[1]);
    return CLI_USAGE;
}
