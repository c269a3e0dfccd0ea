/* SQLite side of master-key rotation (ck_store_ops mkey_*; generic side in mkey.c). The schema
 * has had what rotation needs since version 1 (master_key rows, realm.master_kvno, key.mkvno;
 * pw_history.mkvno since 5): no migration. SQLite serializes writers (BEGIN IMMEDIATE), so a
 * check inside the write transaction is race-free: retire counts and deletes in one
 * transaction, and sq_mkey_guard refuses a key row under a kvno without a master_key row. */
#include <stdlib.h>
#include <string.h>

#include "cablekey/error.h"
#include "cablekey/util.h"
#include "store/sqlite_int.h"

int
sq_mkey_guard(struct sqlite_be *be, const struct ck_store_key_row *keys, size_t n)
{
    sqlite3_stmt *st = NULL;
    int ret = 0;

    for (size_t i = 0; i < n && ret == 0; i++) {
        bool seen = false;
        for (size_t j = 0; j < i; j++)
            seen |= keys[j].mkvno == keys[i].mkvno;
        if (seen)
            continue;
        if ((ret = sq_query(be, "master key", "SELECT 1 FROM master_key WHERE kvno = ?",
                            ARGS(A_INT(keys[i].mkvno)), &st)) != 0)
            break;
        switch (sqlite3_step(st)) {
        case SQLITE_ROW: break;
        case SQLITE_DONE:
            ret = ck_error_set(CK_ERR_POLICY, "master key kvno %u is not in the database (retired "
                                              "while this key was encrypted: try again)",
                               keys[i].mkvno);
            break;
        default: ret = sq_error(be, "master key");
        }
        sqlite3_finalize(st);
        st = NULL;
    }
    return ret;
}

int
sq_mkey_list(void *arg, struct ck_store_mkey_row **out, size_t *n_out)
{
    struct sqlite_be *be = arg;
    struct ck_store_mkey_row *rows = NULL;
    sqlite3_stmt *st = NULL;
    size_t n = 0;
    int rc, ret;

    *out = NULL;
    *n_out = 0;
    if ((ret = sq_query(be, "master keys", "SELECT kvno, enctype, check_value, created FROM"
                        " master_key ORDER BY kvno", NULL, 0, &st)) != 0)
        return ret;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct ck_store_mkey_row *r;
        const void *check = sqlite3_column_blob(st, 2);
        int len = sqlite3_column_bytes(st, 2);
        int64_t kvno = sqlite3_column_int64(st, 0);

        if (n == CK_MKEY_LIST_MAX) {
            ret = ck_error_set(CK_ERR_LIMIT, "more than %d master key rows", CK_MKEY_LIST_MAX);
            goto out;
        }
        if (kvno <= 0 || kvno > UINT32_MAX || check == NULL || len <= 0) {
            ret = ck_error_set(CK_ERR_DB, "malformed master key row");
            goto out;
        }
        if (n == 0 && (rows = calloc(CK_MKEY_LIST_MAX, sizeof(*rows))) == NULL) {
            ret = ck_error_set(CK_ERR_NOMEM, "master keys");
            goto out;
        }
        r = &rows[n++];
        r->kvno = (uint32_t)kvno;
        r->enctype = sqlite3_column_int(st, 1);
        r->created = sqlite3_column_int64(st, 3);
        if ((r->check = ck_memdup(check, (size_t)len)) == NULL) {
            ret = ck_error_set(CK_ERR_NOMEM, "master keys");
            goto out;
        }
        r->check_len = (size_t)len;
    }
    if (rc != SQLITE_DONE)
        ret = sq_error(be, "master keys");
out:
    sqlite3_finalize(st);
    if (ret != 0) {
        ck_store_mkey_rows_free(rows, n);
        return ret;
    }
    *out = rows;
    *n_out = n;
    return 0;
}

int
sq_mkey_add(void *arg, const struct ck_store_mkey_row *row, int64_t now)
{
    struct sqlite_be *be = arg;
    sqlite3_stmt *st = NULL;
    int ret;

    if ((ret = sq_begin_write(be)) != 0)
        return ret;
    if ((ret = sq_query(be, "master key", "SELECT 1 FROM master_key WHERE kvno = ?",
                        ARGS(A_INT(row->kvno)), &st)) != 0)
        goto out;
    if (sqlite3_step(st) == SQLITE_ROW) {
        ret = ck_error_set(CK_ERR_EXISTS, "master key kvno %u exists", row->kvno);
        goto out;
    }
    if ((ret = sq_run(be, "add master key",
                      "INSERT INTO master_key(kvno, enctype, check_value, created)"
                      " VALUES (?, ?, ?, ?)",
                      ARGS(A_INT(row->kvno), A_INT(row->enctype),
                           A_BLOB(row->check, row->check_len), A_INT(now)))) != 0)
        goto out;
    ret = sq_bump_generation(be, CK_CHANGE_PRINCIPAL, NULL, NULL);
out:
    sqlite3_finalize(st);
    return sq_end_write(be, ret);
}

int
sq_mkey_activate(void *arg, uint32_t kvno, int64_t now)
{
    struct sqlite_be *be = arg;
    sqlite3_stmt *st = NULL;
    int ret;

    (void)now;
    if ((ret = sq_begin_write(be)) != 0)
        return ret;
    if ((ret = sq_query(be, "master key", "SELECT 1 FROM master_key WHERE kvno = ?",
                        ARGS(A_INT(kvno)), &st)) != 0)
        goto out;
    if (sqlite3_step(st) != SQLITE_ROW) {
        ret = ck_error_set(CK_ERR_NOTFOUND, "master key kvno %u is not in the database", kvno);
        goto out;
    }
    if ((ret = sq_run(be, "activate master key", "UPDATE realm SET master_kvno = ? WHERE id = 1",
                      ARGS(A_INT(kvno)))) != 0)
        goto out;
    /* No cached record changes: the bump (key NULL, principal kind) is for the audit row and
     * for the KDCs' feeds; their keys stay readable under the old kvno until re-encrypted. */
    ret = sq_bump_generation(be, CK_CHANGE_PRINCIPAL, NULL, NULL);
out:
    sqlite3_finalize(st);
    return sq_end_write(be, ret);
}

int
sq_mkey_count(void *arg, uint32_t mkvno, uint32_t only, uint64_t *keys, uint64_t *hist)
{
    struct sqlite_be *be = arg;
    sqlite3_stmt *st = NULL;
    int ret;

    *keys = *hist = 0;
    if (only != 0)
        ret = sq_query(be, "master key use", "SELECT (SELECT count(*) FROM key WHERE mkvno = ?1),"
                       " (SELECT count(*) FROM pw_history WHERE mkvno = ?1)",
                       ARGS(A_INT(only)), &st);
    else
        ret = sq_query(be, "master key use", "SELECT (SELECT count(*) FROM key WHERE mkvno <> ?1),"
                       " (SELECT count(*) FROM pw_history WHERE mkvno <> ?1)",
                       ARGS(A_INT(mkvno)), &st);
    if (ret != 0)
        return ret;
    if (sqlite3_step(st) == SQLITE_ROW) {
        *keys = (uint64_t)sqlite3_column_int64(st, 0);
        *hist = (uint64_t)sqlite3_column_int64(st, 1);
    } else {
        ret = sq_error(be, "master key use");
    }
    sqlite3_finalize(st);
    return ret;
}

/* One stored key picked for re-encryption: where it lives and what it is. */
struct rekey_item {
    char *name;
    int64_t principal_id;
    int64_t hist_id; /* 0: a principal key; else the pw_history row */
    struct ck_store_key_row row;
};

static void
items_free(struct rekey_item *items, size_t n)
{
    if (items == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        free(items[i].name);
        free(items[i].row.salt);
        free(items[i].row.key_enc);
    }
    free(items);
}

int
sq_mkey_reencrypt(void *arg, uint32_t mkvno, size_t limit,
                  int (*rewrap)(void *arg, const char *name, const struct ck_store_key_row *in,
                                struct ck_store_key_row *out),
                  void *rewrap_arg, size_t *done, int64_t now)
{
    struct sqlite_be *be = arg;
    struct rekey_item *items = NULL;
    sqlite3_stmt *st = NULL;
    size_t n = 0;
    int rc, ret;

    (void)now;
    *done = 0;
    if (limit == 0)
        return ck_error_set(CK_ERR_INVAL, "re-encryption batch of 0");
    if ((items = calloc(limit, sizeof(*items))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "re-encryption batch");
    if ((ret = sq_begin_write(be)) != 0) {
        free(items);
        return ret;
    }
    /* Principal order, so each principal's rows are adjacent (one change-log entry each). */
    if ((ret = sq_query(be, "keys to re-encrypt",
                        "SELECT kvno, enctype, salt_type, salt, mkvno, key_enc, name, pid, hid"
                        " FROM (SELECT k.kvno, k.enctype, k.salt_type, k.salt, k.mkvno, k.key_enc,"
                        "  p.name, p.id AS pid, 0 AS hid FROM key k JOIN principal p"
                        "  ON p.id = k.principal_id WHERE k.mkvno <> ?1"
                        " UNION ALL SELECT h.kvno, h.enctype, h.salt_type, h.salt, h.mkvno,"
                        "  h.key_enc, p.name, p.id, h.id FROM pw_history h JOIN principal p"
                        "  ON p.id = h.principal_id WHERE h.mkvno <> ?1)"
                        " ORDER BY pid, hid LIMIT ?2",
                        ARGS(A_INT(mkvno), A_INT(limit)), &st)) != 0)
        goto out;
    while (n < limit && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct rekey_item *it = &items[n++];
        if ((it->name = sq_column_strdup(st, 6)) == NULL) {
            ret = ck_error_set(CK_ERR_NOMEM, "re-encryption batch");
            goto out;
        }
        it->principal_id = sqlite3_column_int64(st, 7);
        it->hist_id = sqlite3_column_int64(st, 8);
        if ((ret = sq_column_key_row(st, it->name, it->hist_id ? "password history key" : "key",
                                     &it->row)) != 0)
            goto out;
    }
    if (n < limit && rc != SQLITE_DONE) {
        ret = sq_error(be, "keys to re-encrypt");
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    for (size_t i = 0; i < n; i++) {
        struct ck_store_key_row fresh;
        struct rekey_item *it = &items[i];

        memset(&fresh, 0, sizeof(fresh));
        if ((ret = rewrap(rewrap_arg, it->name, &it->row, &fresh)) == 0) {
            if (it->hist_id == 0)
                ret = sq_run(be, "re-encrypt key",
                             "UPDATE key SET mkvno = ?, key_enc = ? WHERE principal_id = ?"
                             " AND kvno = ? AND enctype = ?",
                             ARGS(A_INT(fresh.mkvno), A_BLOB(fresh.key_enc, fresh.key_enc_len),
                                  A_INT(it->principal_id), A_INT(it->row.kvno),
                                  A_INT(it->row.enctype)));
            else
                ret = sq_run(be, "re-encrypt password history key",
                             "UPDATE pw_history SET mkvno = ?, key_enc = ? WHERE id = ?",
                             ARGS(A_INT(fresh.mkvno), A_BLOB(fresh.key_enc, fresh.key_enc_len),
                                  A_INT(it->hist_id)));
        }
        free(fresh.salt);
        ck_free_secret(fresh.key_enc, fresh.key_enc_len);
        if (ret != 0)
            goto out;
    }
    /* After every rewrap: the first bump writes the audit row, whose detail has the count. */
    for (size_t i = 0; i < n; i++) {
        if ((i + 1 == n || items[i + 1].principal_id != items[i].principal_id) &&
            (ret = sq_bump_generation(be, CK_CHANGE_PRINCIPAL, items[i].name, NULL)) != 0)
            goto out;
    }
    *done = n;
out:
    sqlite3_finalize(st);
    items_free(items, n);
    ret = sq_end_write(be, ret);
    if (ret != 0)
        *done = 0;
    return ret;
}

int
sq_mkey_retire(void *arg, uint32_t kvno, int64_t now)
{
    struct sqlite_be *be = arg;
    sqlite3_stmt *st = NULL;
    int64_t active = 0, keys = 0, hist = 0, rows = 0;
    int ret;

    (void)now;
    if ((ret = sq_begin_write(be)) != 0)
        return ret;
    if ((ret = sq_query(be, "master key use",
                        "SELECT (SELECT master_kvno FROM realm WHERE id = 1),"
                        " (SELECT count(*) FROM key WHERE mkvno = ?1),"
                        " (SELECT count(*) FROM pw_history WHERE mkvno = ?1),"
                        " (SELECT count(*) FROM master_key WHERE kvno = ?1)",
                        ARGS(A_INT(kvno)), &st)) != 0)
        goto out;
    if (sqlite3_step(st) != SQLITE_ROW) {
        ret = sq_error(be, "master key use");
        goto out;
    }
    active = sqlite3_column_int64(st, 0);
    keys = sqlite3_column_int64(st, 1);
    hist = sqlite3_column_int64(st, 2);
    rows = sqlite3_column_int64(st, 3);
    if (rows == 0) {
        ret = ck_error_set(CK_ERR_NOTFOUND, "master key kvno %u is not in the database", kvno);
        goto out;
    }
    if (active == (int64_t)kvno || keys + hist > 0) {
        ret = ck_error_set(CK_ERR_POLICY, "master key kvno %u is %s", kvno,
                           active == (int64_t)kvno ? "the active one"
                                                   : "still in use by stored keys");
        goto out;
    }
    if ((ret = sq_run(be, "retire master key", "DELETE FROM master_key WHERE kvno = ?",
                      ARGS(A_INT(kvno)))) != 0)
        goto out;
    ret = sq_bump_generation(be, CK_CHANGE_PRINCIPAL, NULL, NULL);
out:
    sqlite3_finalize(st);
    return sq_end_write(be, ret);
}
