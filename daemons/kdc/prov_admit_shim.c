/* TEMPORARY (issue 10, package P4): ck_prov_admit_unprovisioned (include/cablekey/prov.h) is
 * package P1's, in lib/store/store_prov.c. Until that file is on the branch this builds on,
 * this stand-in does the KDC's part of an admission with the device API of store.h: the
 * principal (random keys, requires pre-authentication) and an ACTIVE device row pinned to the
 * key. It keeps no provisioning row, no manufacturer certificate and no event, and is not one
 * transaction. It compiles to nothing as soon as lib/store/store_prov.c exists: DELETE this
 * file when P1 is merged. */
#if defined(__has_include)
#if __has_include("../../lib/store/store_prov.c")
#define CK_PROV_STORE_PRESENT 1
#endif
#endif

#ifndef CK_PROV_STORE_PRESENT
#include <string.h>

#include "cablekey/error.h"
#include "cablekey/prov.h"
#include "cablekey/store.h"
#include "cablekey/util.h"

int
ck_prov_admit_unprovisioned(ck_store *store, const char *mac, const char *principal,
                            const uint8_t spki_sha256[32], const uint8_t *mfg_cert_der,
                            size_t mfg_cert_len, int64_t now)
{
    const ck_realm_info *realm = ck_store_realm(store);
    ck_db_principal *p = NULL;
    ck_db_device dev;
    int rc;

    (void)mfg_cert_der;
    (void)mfg_cert_len;
    (void)now;
    rc = ck_store_get_principal(store, principal, &p);
    if (rc == CK_ERR_NOTFOUND) {
        if ((rc = ck_db_principal_new(principal, &p)) != 0)
            goto out;
        p->kvno = 1;
        p->attributes = CK_ATTR_REQUIRES_PREAUTH;
        if ((rc = ck_db_keys_make(principal, NULL, 0, realm->enctypes, realm->n_enctypes, 1,
                                  &p->keys, &p->n_keys)) != 0 ||
            ((rc = ck_store_create_principal(store, p)) != 0 && rc != CK_ERR_EXISTS))
            goto out;
    } else if (rc != 0) {
        goto out;
    }
    memset(&dev, 0, sizeof(dev));
    if ((rc = ck_device_mac_parse(mac, dev.mac)) != 0)
        goto out;
    dev.principal = (char *)principal;
    dev.state = CK_DEVICE_ACTIVE;
    dev.has_pin = true;
    memcpy(dev.spki_sha256, spki_sha256, sizeof(dev.spki_sha256));
    rc = ck_store_add_device(store, &dev);
out:
    ck_db_principal_free(p);
    return rc;
}
#else
typedef int ck_prov_admit_shim_unused; /* ISO C wants something in a translation unit */
#endif
