/* ck_rotstep: one step of a staged service-key rotation through the store API (rotation.h), for
 * the interop tests of the key version service (t_keyagent.sh, t_keyagent_crash.sh), which drive
 * the steps themselves instead of waiting for the engine's schedule.
 *   ck_rotstep --db DB [--stash FILE] stage PRINCIPAL        prints the staged kvno
 *   ck_rotstep --db DB [--stash FILE] activate PRINCIPAL KVNO
 *   ck_rotstep --db DB [--stash FILE] purge PRINCIPAL        every retired kvno but the newest
 *                                                            (keep_min 1), as if old_valid and
 *                                                            the purge grace had passed
 *   ck_rotstep --db DB [--stash FILE] confirmed PRINCIPAL HOST KVNO   exit 0 if HOST confirmed
 *                                                            KVNO (or a newer one), else 3
 *   ck_rotstep --db DB [--stash FILE] kvnos PRINCIPAL        "current=C staged=S held=a,b,c"
 * and through the rotation engine (lib/rotation), with a policy:
 *   ck_rotstep --db DB [--stash FILE] policy PRINCIPAL HOST  confirm agent by HOST, period 30 days,
 *                                                            old kvnos valid 8 days
 *   ck_rotstep --db DB [--stash FILE] force PRINCIPAL        stage now (prints the kvno)
 *   ck_rotstep --db DB [--stash FILE] tick PRINCIPAL [SECONDS]  one engine pass, SECONDS from
 *                                                            now (prints what it did)
 * Exit status 0, 1 with one line on stderr on failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cablekey/error.h"
#include "cablekey/rotation.h"
#include "cablekey/store.h"
#include "cablekey/util.h"

static int
fail(const char *what, int rc)
{
    fprintf(stderr, "ck_rotstep: %s: %s (%s)\n", what, ck_strerror(rc), ck_error_context());
    return 1;
}

static int
parse_kvno(const char *s, uint32_t *out)
{
    int64_t v;

    if (ck_parse_int64(s, 1, UINT32_MAX, &v) != 0)
        return ck_error_set(CK_ERR_INVAL, "bad kvno \"%s\"", s);
    *out = (uint32_t)v;
    return 0;
}

int
main(int argc, char **argv)
{
    const char *db = NULL, *stash = NULL, *verb, *name;
    ck_store *store = NULL;
    int i = 1, rc = 0, status = 1;
    int64_t now = (int64_t)time(NULL);

    while (i + 1 < argc && strncmp(argv[i], "--", 2) == 0) {
        if (strcmp(argv[i], "--db") == 0)
            db = argv[i + 1];
        else if (strcmp(argv[i], "--stash") == 0)
            stash = argv[i + 1];
        else
            break;
        i += 2;
    }
    if (db == NULL || argc - i < 2) {
        fprintf(stderr, "usage: ck_rotstep --db DB [--stash FILE] VERB PRINCIPAL [ARGS]\n");
        return 2;
    }
    verb = argv[i];
    name = argv[i + 1];
    if ((rc = ck_store_open(db, stash, 0, &store)) != 0)
        return fail("open", rc);
    if (strcmp(verb, "stage") == 0) {
        const ck_realm_info *ri = ck_store_realm(store);
        ck_db_key *keys = NULL;
        size_t n = 0;
        uint32_t kvno = 0;

        if ((rc = ck_db_keys_make(name, NULL, 0, ri->enctypes, ri->n_enctypes, 0, &keys, &n)) ==
            0)
            rc = ck_store_key_stage(store, name, keys, n, now, &kvno);
        ck_db_keys_free(keys, n);
        if (rc != 0)
            goto failed;
        printf("%u\n", kvno);
    } else if (strcmp(verb, "activate") == 0 && argc - i == 3) {
        uint32_t kvno;
        if ((rc = parse_kvno(argv[i + 2], &kvno)) != 0 ||
            (rc = ck_store_key_activate(store, name, kvno, now)) != 0)
            goto failed;
    } else if (strcmp(verb, "purge") == 0) {
        size_t n = 0;
        if ((rc = ck_store_key_purge(store, name, 0, 0, now + CK_ROT_PURGE_GRACE + 1, &n)) != 0)
            goto failed;
        printf("%zu\n", n);
    } else if (strcmp(verb, "confirmed") == 0 && argc - i == 4) {
        ck_rotation_status *st = calloc(1, sizeof(*st));
        uint32_t kvno;
        bool found = false;

        if (st == NULL || (rc = parse_kvno(argv[i + 3], &kvno)) != 0 ||
            (rc = ck_store_rotation_status(store, name, st)) != 0) {
            free(st);
            rc = rc != 0 ? rc : CK_ERR_NOMEM;
            goto failed;
        }
        for (size_t k = 0; k < st->n_confirmations; k++)
            found = found || (strcmp(st->confirmations[k].host, argv[i + 2]) == 0 &&
                              st->confirmations[k].kvno >= kvno);
        free(st);
        status = found ? 0 : 3;
        goto out;
    } else if (strcmp(verb, "kvnos") == 0) {
        ck_db_principal *p = NULL;
        uint32_t staged = 0;

        if ((rc = ck_store_get_principal(store, name, &p)) != 0)
            goto failed;
        for (size_t k = 0; k < p->n_keys; k++)
            if (p->keys[k].kvno > p->kvno && p->keys[k].kvno > staged)
                staged = p->keys[k].kvno;
        printf("current=%u staged=%u held=", p->kvno, staged);
        for (size_t k = 0; k < p->n_keys; k++)
            if (k == 0 || p->keys[k].kvno != p->keys[k - 1].kvno)
                printf("%s%u", k == 0 ? "" : ",", p->keys[k].kvno);
        printf("\n");
        ck_db_principal_free(p);
    } else if (strcmp(verb, "policy") == 0 && argc - i == 3) {
        ck_rotation_policy *pol = calloc(1, sizeof(*pol));

        if (pol == NULL) {
            rc = CK_ERR_NOMEM;
            goto failed;
        }
        ck_strlcpy(pol->principal, name, sizeof(pol->principal));
        pol->period = 30 * 86400; /* a pass 8 days on purges without staging again */
        pol->old_valid = 8 * 86400; /* above the realm's renewable life (7 days) */
        pol->confirm_timeout = 3600;
        pol->confirm = CK_ROT_CONFIRM_AGENT;
        pol->keep_min = 1;
        pol->n_hosts = 1;
        ck_strlcpy(pol->hosts[0], argv[i + 2], sizeof(pol->hosts[0]));
        rc = ck_store_rotation_policy_set(store, pol);
        free(pol);
        if (rc != 0)
            goto failed;
    } else if (strcmp(verb, "force") == 0) {
        ck_rotation_status *st = calloc(1, sizeof(*st));

        if (st == NULL || (rc = ck_rotation_force(store, name, now)) != 0 ||
            (rc = ck_store_rotation_status(store, name, st)) != 0) {
            free(st);
            rc = rc != 0 ? rc : CK_ERR_NOMEM;
            goto failed;
        }
        printf("%u\n", st->staged_kvno);
        free(st);
    } else if (strcmp(verb, "tick") == 0 && argc - i <= 3) {
        ck_rotation_report rep;
        int64_t off = 0;

        if (argc - i == 3 && ck_parse_int64(argv[i + 2], 0, INT32_MAX, &off) != 0) {
            rc = ck_error_set(CK_ERR_INVAL, "bad offset");
            goto failed;
        }
        memset(&rep, 0, sizeof(rep));
        if ((rc = ck_rotation_tick(store, now + off, NULL, &rep)) != 0)
            goto failed;
        printf("staged=%zu activated=%zu purged=%zu unconfirmed=%zu errors=%zu\n", rep.staged,
               rep.activated, rep.purged, rep.unconfirmed, rep.errors);
    } else {
        fprintf(stderr, "ck_rotstep: unknown verb or arguments: %s\n", verb);
        status = 2;
        goto out;
    }
    status = 0;
    goto out;
failed:
    status = fail(verb, rc);
out:
    ck_store_close(store);
    return status;
}
