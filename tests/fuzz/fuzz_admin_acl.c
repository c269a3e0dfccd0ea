/* Fuzzes the cablekey-admind ACL parser and, for files that parse, the matcher with names taken
 * from the input itself. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/admin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ck_admin_acl *acl = NULL;
    char name[128];
    size_t n = size < sizeof(name) - 1 ? size : sizeof(name) - 1;

    if (ck_admin_acl_parse((const char *)data, size, "fuzz", "TEST.REALM", &acl) != 0)
        return 0;
    memcpy(name, data, n);
    name[n] = '\0';
    (void)ck_admin_acl_check(acl, "joe/admin@TEST.REALM", "alice@TEST.REALM",
                             CK_ADMIN_PERM_ADD, NULL);
    (void)ck_admin_acl_check(acl, "a/b/c@X", NULL, CK_ADMIN_PERM_LIST, NULL);
    (void)ck_admin_acl_check(acl, name, name, CK_ADMIN_PERM_INQUIRE | CK_ADMIN_PERM_MODIFY, NULL);
    ck_admin_acl_free(acl);
    return 0;
}
