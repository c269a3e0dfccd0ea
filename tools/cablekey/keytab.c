/* cablekey keytab export|remove: writes principals' keys to an MIT-format keytab (like kadmin
 * ktadd, but without changing the keys) and removes entries from one (like ktremove). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/crypto.h"
#include "cablekey/error.h"
#include "cablekey/keytab.h"
#include "cablekey/principal.h"
#include "cablekey/store.h"
#include "cablekey/util.h"
#include "cli.h"

static const char keytab_help[] =
    "usage: cablekey keytab SUBCOMMAND ...\n"
    "\n"
    "  export --db PATH|URI [--stash FILE] --out KEYTAB [--all-kvnos] NAME...\n"
    "      writes the keys of each NAME (current kvno, or every stored kvno with --all-kvnos)\n"
    "  remove KEYTAB NAME (--kvno N | --old | --all) [--enctype E]\n"
    "      removes NAME's entries: of kvno N, all but the newest kvno (--old), or all;\n"
    "      --enctype E only those of that enctype\n"
    "\n"
    "Keytabs are MIT format 0x0502. export keeps the entries already in KEYTAB except those\n"
    "it replaces (same principal, kvno and enctype); the keys in the database are not changed.\n"
    "Both write atomically: a new keytab is mode 0600, an existing one keeps its owner, group\n"
    "and mode, and a symlink is followed. NAME without @REALM (remove) is in the realm of the\n"
    "keytab's entries when they all share one.\n";

/* Which entries a drop removes: principal p's, of kvno (0: any) and enctype (0: any), or with
 * all_but_newest every kvno of p's except `newest`. */
struct entry_match {
    const ck_principal *p;
    uint32_t kvno;
    int32_t enctype;
    bool all_but_newest;
    uint32_t newest;
};

/* Drops the entries of kt that m matches, wiping their keys and keeping the others' order;
 * returns how many went. */
static size_t
drop_entries(ck_keytab *kt, const struct entry_match *m)
{
    size_t w = 0, removed = 0;

    for (size_t i = 0; i < kt->n_entries; i++) {
        ck_keytab_entry *e = &kt->entries[i];
        if (ck_principal_equal(e->principal, m->p) &&
            (m->enctype == 0 || e->key.enctype == m->enctype) &&
            (m->all_but_newest ? e->kvno != m->newest : m->kvno == 0 || e->kvno == m->kvno)) {
            ck_principal_free(e->principal);
            ck_key_clear(&e->key);
            removed++;
            continue;
        }
        if (w != i)
            kt->entries[w] = *e;
        w++;
    }
    for (size_t i = w; i < kt->n_entries; i++)
        memset(&kt->entries[i], 0, sizeof(kt->entries[i]));
    kt->n_entries = w;
    return removed;
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
        drop_entries(kt, &(struct entry_match){.p = p, .kvno = k->kvno, .enctype = k->enctype});
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
        default:
            rc = cli_getopt_other(what, c, 'h', argv, keytab_help);
            return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
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

/* The principal a remove names: with its realm, or in the one realm every entry shares. */
static int
remove_target(const char *what, const ck_keytab *kt, const char *name, ck_principal **out)
{
    const char *realm = NULL;
    int ret;

    *out = NULL;
    if (strchr(name, '@') == NULL) {
        for (size_t i = 0; i < kt->n_entries; i++) {
            const char *r = kt->entries[i].principal->realm;
            if (realm != NULL && strcmp(realm, r) != 0)
                return cli_usage_error(what, "the keytab holds several realms: give %s@REALM",
                                       name);
            realm = r;
        }
        if (realm == NULL)
            realm = "";
    }
    if ((ret = ck_principal_parse(name, realm != NULL && *realm ? realm : NULL,
                                  realm != NULL && *realm ? 0
                                                          : CK_PRINCIPAL_PARSE_REQUIRE_REALM,
                                  out)) != 0)
        return cli_fail(what, ret);
    return CLI_OK;
}

static int
do_remove(int argc, char **argv)
{
    enum { R_NONE, R_KVNO, R_OLD, R_ALL };
    static const struct option opts[] = {
        {"kvno", required_argument, NULL, 'k'}, {"old", no_argument, NULL, 'o'},
        {"all", no_argument, NULL, 'a'},        {"enctype", required_argument, NULL, 'e'},
        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
    };
    const char *what = "keytab remove";
    ck_keytab *kt = NULL;
    ck_principal *p = NULL;
    int32_t enctype = 0;
    int64_t kvno = 0;
    uint32_t newest = 0;
    int mode = R_NONE, modes = 0, c, rc, ret;
    size_t removed = 0;
    char *pname = NULL;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'k':
            if (ck_parse_int64(optarg, 1, UINT32_MAX, &kvno) != 0)
                return cli_usage_error(what, "--kvno: %s", ck_error_context());
            mode = R_KVNO;
            modes++;
            break;
        case 'o': mode = R_OLD; modes++; break;
        case 'a': mode = R_ALL; modes++; break;
        case 'e':
            if (ck_enctype_from_name(optarg, &enctype) != 0 || enctype == 0)
                return cli_usage_error(what, "--enctype: unknown enctype '%s'", optarg);
            break;
        default:
            rc = cli_getopt_other(what, c, 'h', argv, keytab_help);
            return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
        }
    }
    if (argc - optind != 2)
        return cli_usage_error(what, "expected KEYTAB and one principal name");
    /* No default: removing keys a service still needs must be asked for precisely. */
    if (modes != 1)
        return cli_usage_error(what, "give exactly one of --kvno N, --old or --all");
    if ((ret = ck_keytab_read(argv[optind], &kt)) != 0)
        return cli_fail(what, ret);
    if ((rc = remove_target(what, kt, argv[optind + 1], &p)) != CLI_OK)
        goto out;
    for (size_t i = 0; i < kt->n_entries; i++) {
        if (ck_principal_equal(kt->entries[i].principal, p) && kt->entries[i].kvno > newest)
            newest = kt->entries[i].kvno;
    }
    removed = drop_entries(kt, &(struct entry_match){
                                   .p = p, .enctype = enctype, .all_but_newest = mode == R_OLD,
                                   .newest = newest,
                                   .kvno = mode == R_KVNO ? (uint32_t)kvno : 0});
    (void)ck_principal_unparse(p, 0, &pname);
    if (removed == 0) {
        fprintf(stderr, "cablekey: %s: no entry of %s in %s matches; nothing changed\n", what,
                pname != NULL ? pname : argv[optind + 1], argv[optind]);
        rc = CLI_FAIL;
        goto out;
    }
    if ((ret = ck_keytab_write(argv[optind], kt)) != 0) {
        rc = cli_fail(what, ret);
        goto out;
    }
    printf("Removed %zu entr%s of %s from %s.\n", removed, removed == 1 ? "y" : "ies",
           pname != NULL ? pname : argv[optind + 1], argv[optind]);
    rc = CLI_OK;
out:
    free(pname);
    ck_principal_free(p);
    ck_keytab_free(kt);
    return rc;
}

int
cli_keytab(int argc, char **argv)
{
    int rc;

    if (cli_family_help(argc, argv, keytab_help, NULL, &rc))
        return rc;
    if (strcmp(argv[1], "export") == 0)
        return do_export(argc - 1, argv + 1);
    if (strcmp(argv[1], "remove") == 0)
        return do_remove(argc - 1, argv + 1);
    return cli_unknown_verb("keytab", argv[1]);
}
