/* The temporary realm the store-level unit tests share: a fresh directory under /tmp holding a
 * new realm's database (db) and its stash (stash = db + ".stash", where ck_store_open looks by
 * default), removed with everything in it by fixture_down. One realm at a time per test binary.
 * Include after ck_test.h. */
#ifndef CK_STORE_FIXTURE_H
#define CK_STORE_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>

#include "cablekey/store.h"
#include "cablekey/util.h"

static char dir[64], db[128], stash[sizeof(db) + sizeof(".stash")];

/* tag names the directory (/tmp/ck-TAG-XXXXXX), so a leftover says which test left it. */
static inline void
store_fixture_up(const char *tag, const char *realm, const int32_t *enctypes, size_t n)
{
    snprintf(dir, sizeof(dir), "/tmp/ck-%s-XXXXXX", tag);
    if (mkdtemp(dir) == NULL)
        abort();
    snprintf(db, sizeof(db), "%s/kdc.db", dir);
    snprintf(stash, sizeof(stash), "%s.stash", db);
    CHECK_OK(ck_store_init_realm(db, stash, realm, enctypes, n, 0, 0));
}

static inline void
fixture_down(void)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "  could not remove %s\n", dir);
}

/* The database at path, read-write with its default stash; a test cannot go on without it. */
static inline ck_store *
fixture_open(const char *path)
{
    ck_store *s = NULL;

    CHECK_OK(ck_store_open(path, NULL, 0, &s));
    if (s == NULL)
        abort();
    return s;
}

#endif
