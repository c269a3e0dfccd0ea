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
sqlite_rename(void *arg, const char *old_name, const char *new_name, uint32_t kvno,
              const struct ck_store_key_row *keys, size_t n_keys, int64_t now)
{
    struct sqlite_be *be = arg;
    int64_t id = 0, other = 0;
    uint32_t cur_kvno = 0;
    uint64_t gen = 0;
    int ret;

    if ((ret = sq_begin_write(be)) != 0)
        return ret;
    if ((ret = sq_lookup_id(be, old_name, &id, &cur_kvno)) != 0 ||
        (ret = sq_lookup_id(be, new_name, &other, NULL)) != 0)
        goto out;
    if (id == 0) {
        ret = ck_error_set(CK_ERR_NOTFOUND, "principal %s not found", old_name);
        goto out;
    }
    if (other != 0) {
        ret = ck_error_set(CK_ERR_EXISTS, "principal %s already exists", new_name);
        goto out;
    }
    if (cur_kvno != kvno) {
        ret = ck_error_set(CK_ERR_POLICY, "principal %s changed while it was renamed; retry",
                           old_name);
        goto out;
    }
    /* The device rows point at the name: the foreign key is checked at commit, once both the
     * principal and its devices carry the new name. */
    if ((ret = sq_exec(be, "PRAGMA defer_foreign_keys = ON")) != 0 ||
        (ret = sq_run(be, "rename principal",
                      "UPDATE principal SET name = ?, modified = ? WHERE id = ?",
                      ARGS(A_TEXT(new_name), A_INT(now), A_INT(id)))) != 0 ||
        (ret = sq_run(be, "rename principal", "DELETE FROM key WHERE principal_id = ?",
                      ARGS(A_INT(id)))) != 0 ||
        (ret = sq_insert_keys(be, id, keys, n_keys)) != 0)
        goto out;
    /* Two names and any number of devices changed: every cache starts over. */
    if ((ret = sq_bump_generation(be, CK_CHANGE_ALL, NULL, &gen)) != 0)
        goto out;
    /* A device's generation must change whenever its record does (thumbprint caches). */
    ret = sq_run(be, "rename principal",
                 "UPDATE device SET principal = ?, modified = ?, generation = ?"
                 " WHERE principal = ?",
                 ARGS(A_TEXT(new_name), A_INT(now), A_INT(gen), A_TEXT(old_name)));
out:
    return sq_end_write(be, ret);
}
