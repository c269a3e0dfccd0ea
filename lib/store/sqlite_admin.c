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

/* Swaps the blobs of a principal's password history for hist (newest first, the rows
 * sq_pw_history read, re-encrypted for the new name): kvno and enctype must still match, else the
 * history changed meanwhile. Rows older than those, never read by the history check, go. */
static int
rename_history(struct sqlite_be *be, int64_t id, const struct ck_store_key_row *hist,
               size_t n_hist)
{
    int ret = sq_mkey_guard(be, hist, n_hist); /* master-key rotation: no retired kvno */

    for (size_t i = 0; i < n_hist && ret == 0; i++) {
        ret = sq_run(be, "rename password history",
                     "UPDATE pw_history SET mkvno = ?, key_enc = ? WHERE id ="
                     " (SELECT id FROM pw_history WHERE principal_id = ? ORDER BY id DESC"
                     "  LIMIT 1 OFFSET ?) AND kvno = ? AND enctype = ?",
                     ARGS(A_INT(hist[i].mkvno), A_BLOB(hist[i].key_enc, hist[i].key_enc_len),
                          A_INT(id), A_INT(i), A_INT(hist[i].kvno), A_INT(hist[i].enctype)));
        if (ret == 0 && sqlite3_changes(be->db) != 1)
            ret = ck_error_set(CK_ERR_POLICY, "password history changed during the rename; "
                               "retry");
    }
    if (ret == 0)
        ret = sq_run(be, "rename password history",
                     "DELETE FROM pw_history WHERE principal_id = ?1 AND id NOT IN"
                     " (SELECT id FROM pw_history WHERE principal_id = ?1 ORDER BY id DESC"
                     "  LIMIT ?2)", ARGS(A_INT(id), A_INT(n_hist)));
    return ret;
}

int
sqlite_rename(void *arg, const char *old_name, const char *new_name, uint32_t kvno,
              const struct ck_store_key_row *keys, size_t n_keys,
              const struct ck_store_key_row *hist, size_t n_hist, int64_t now)
{
    struct sqlite_be *be = arg;
    int64_t id = 0, other = 0;
    uint64_t gen = 0;
    int ret;

    if ((ret = sq_begin_principal_write(be, old_name, kvno, CK_ERR_POLICY, &id)) != 0)
        return ret;
    if ((ret = sq_lookup_id(be, new_name, &other, NULL)) != 0)
        goto out;
    if (other != 0) {
        ret = ck_error_set(CK_ERR_EXISTS, "principal %s already exists", new_name);
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
        (ret = sq_insert_keys(be, id, keys, n_keys)) != 0 ||
        (ret = rename_history(be, id, hist, n_hist)) != 0)
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
