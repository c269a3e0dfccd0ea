/* SQLite backend: operator changes to the realm row and principal renames. Each runs in one
 * write transaction that bumps the change counter (sq_bump_generation), so other connections
 * see it and the audit hook there records it. */
#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#include "cablekey/error.h"
#include "store/sqlite_int.h"

int
sqlite_realm_modify(void *arg, const ck_realm_info *realm)
{
    struct sqlite_be *be = arg;
    char enctypes[SQ_ENCTYPE_LIST_SIZE];
    int ret;

    if ((ret = sq_format_enctypes(realm->enctypes, realm->n_enctypes, enctypes,
                                  sizeof(enctypes))) != 0)
        return ret;
    if ((ret = sq_begin_write(be)) != 0)
        return ret;
    if ((ret = sq_run(be, "modify realm",
                      "UPDATE realm SET enctypes = ?, max_life = ?, max_renew = ?,"
                      " default_attributes = ? WHERE id = 1",
                      ARGS(A_TEXT(enctypes), A_INT(realm->max_life), A_INT(realm->max_renew),
                           A_INT(realm->default_attributes)))) != 0)
        goto out;
    if (sqlite3_changes(be->db) != 1) {
        ret = ck_error_set(CK_ERR_DB, "realm row missing");
        goto out;
    }
    /* Realm settings are not cached per name: "anything may have changed". */
    ret = sq_bump_generation(be, CK_CHANGE_ALL, NULL, NULL);
out:
    return sq_end_write(be, ret);
}

int
sqlite_rename(void *arg, const char *old_name, const char *new_name, int64_t now)
{
    struct sqlite_be *be = arg;
    sqlite3_stmt *st = NULL;
    uint64_t gen = 0;
    int rc, ret;

    if ((ret = sq_begin_write(be)) != 0)
        return ret;
    if ((ret = sq_query(be, "rename principal", "SELECT count(*) FROM principal WHERE name = ?",
                        ARGS(A_TEXT(new_name)), &st)) != 0)
        goto out;
    if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
        ret = sq_error(be, "rename principal");
        goto out;
    }
    if (sqlite3_column_int64(st, 0) != 0) {
        ret = ck_error_set(CK_ERR_EXISTS, "principal %s already exists", new_name);
        goto out;
    }
    /* The device rows point at the name: the foreign key is checked at commit, once both the
     * principal and its devices carry the new name. */
    if ((ret = sq_exec(be, "PRAGMA defer_foreign_keys = ON")) != 0)
        goto out;
    if ((ret = sq_run(be, "rename principal",
                      "UPDATE principal SET name = ?, modified = ? WHERE name = ?",
                      ARGS(A_TEXT(new_name), A_INT(now), A_TEXT(old_name)))) != 0)
        goto out;
    if (sqlite3_changes(be->db) == 0) {
        ret = ck_error_set(CK_ERR_NOTFOUND, "principal %s not found", old_name);
        goto out;
    }
    /* Two names and any number of devices changed: every cache starts over. */
    if ((ret = sq_bump_generation(be, CK_CHANGE_ALL, NULL, &gen)) != 0)
        goto out;
    /* A device's generation must change whenever its record does (thumbprint caches). */
    ret = sq_run(be, "rename principal",
                 "UPDATE device SET principal = ?, modified = ?, generation = ?"
                 " WHERE principal = ?",
                 ARGS(A_TEXT(new_name), A_INT(now), A_INT(gen), A_TEXT(old_name)));
out:
    sqlite3_finalize(st);
    return sq_end_write(be, ret);
}
