/* The key version service's principal, keyagent/REALM@REALM, as `cablekey init` makes it. */
#include <stdio.h>

#include "cablekey/error.h"
#include "cablekey/keyagent.h"
#include "cablekey/store.h"

int
ck_keyagent_service_create(const char *db, const char *stash)
{
    ck_store *store = NULL;
    ck_db_principal *p = NULL;
    const ck_realm_info *ri;
    char name[600];
    int rc;

    if ((rc = ck_store_open(db, stash, 0, &store)) != 0)
        goto out;
    ri = ck_store_realm(store);
    if ((size_t)snprintf(name, sizeof(name), CK_KEYAGENT_SERVICE "/%s@%s", ri->name,
                         ri->name) >= sizeof(name)) {
        rc = ck_error_set(CK_ERR_LIMIT, "realm name too long");
        goto out;
    }
    if ((rc = ck_db_principal_new(name, &p)) != 0 ||
        (rc = ck_db_keys_make(name, NULL, 0, ri->enctypes, ri->n_enctypes, 1, &p->keys,
                              &p->n_keys)) != 0)
        goto out;
    p->kvno = 1;
    /* Like kadmin/changepw: tickets only from an AS exchange (a proof of the service key),
     * short-lived, no authorization data needed. */
    p->attributes = CK_ATTR_DISALLOW_TGT_BASED | CK_ATTR_NO_AUTH_DATA_REQUIRED;
    p->max_life = CK_KEYAGENT_TICKET_LIFE;
    rc = ck_store_create_principal(store, p);
out:
    ck_db_principal_free(p);
    ck_store_close(store);
    return rc;
}
