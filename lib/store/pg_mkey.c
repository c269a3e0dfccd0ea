/* PostgreSQL side of master-key rotation (ck_store_ops mkey_*; generic side in mkey.c). Writers
 * serialize on the generation row (pg_begin_write), and the foreign keys below make the rule
 * "no stored key under a kvno without a master_key row" the database's own: a KDC that
 * encrypted a key under a master key retired meanwhile gets a clean refusal, never a key
 * nobody can decrypt. */
#include <stdlib.h>
#include <string.h>

#include "cablekey/error.h"
#include "cablekey/util.h"
#include "store/pg_int.h"

/* Run by pg_init_schema after pg_schema, in the same transaction. */
const char *const pg_schema_mkey[] = {
    "ALTER TABLE key ADD CONSTRAINT key_mkvno_fk FOREIGN KEY (mkvno)"
    " REFERENCES master_key(kvno)",
    "ALTER TABLE pw_history ADD CONSTRAINT pw_history_mkvno_fk FOREIGN KEY (mkvno)"
    " REFERENCES master_key(kvno)",
    "CREATE INDEX key_mkvno ON key(mkvno)",
    "CREATE INDEX pw_history_mkvno ON pw_history(mkvno)",
    NULL,
};

int
pg_mkey_list(void *arg, struct ck_store_mkey_row **out, size_t *n_out)
{
    struct pg_be *be = arg;
    struct ck_store_mkey_row *rows = NULL;
    PGresult *r = NULL;
    size_t n = 0;
    int ret;

    *out = NULL;
    *n_out = 0;
    if ((ret = pg_query(be, "master keys", "SELECT kvno, enctype, check_value, created FROM"
                        " master_key ORDER BY kvno", PNOARGS, &r)) != 0)
        return ret;
    if (PQntuples(r) > CK_MKEY_LIST_MAX) {
        ret = ck_error_set(CK_ERR_LIMIT, "more than %d master key rows", CK_MKEY_LIST_MAX);
        goto out;
    }
    if (PQntuples(r) > 0 && (rows = calloc((size_t)PQntuples(r), sizeof(*rows))) == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "master keys");
        goto out;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        struct ck_store_mkey_row *row = &rows[n++];
        int64_t kvno = 0, enctype = 0, created = 0;

        if (pg_col_int(r, i, 0, &kvno) != 0 || pg_col_int(r, i, 1, &enctype) != 0 ||
            pg_col_int(r, i, 3, &created) != 0 || kvno <= 0 || kvno > UINT32_MAX ||
            enctype < INT32_MIN || enctype > INT32_MAX) {
            ret = ck_error_set(CK_ERR_DB, "malformed master key row");
            goto out;
        }
        row->kvno = (uint32_t)kvno;
        row->enctype = (int32_t)enctype;
        row->created = created;
        if ((ret = pg_col_bytea(r, i, 2, &row->check, &row->check_len)) != 0)
            goto out;
        if (row->check == NULL) {
            ret = ck_error_set(CK_ERR_DB, "master key kvno %u: check value missing", row->kvno);
            goto out;
        }
    }
out:
    PQclear(r);
    if (ret != 0) {
        ck_store_mkey_rows_free(rows, n);
        return ret;
    }
    *out = rows;
    *n_out = n;
    return 0;
}

/* Inside a write transaction: whether master_key has a row for kvno. */
static int
row_exists(struct pg_be *be, uint32_t kvno, bool *exists)
{
    PGresult *r = NULL;
    int ret;

    if ((ret = pg_query(be, "master key", "SELECT 1 FROM master_key WHERE kvno = $1",
                        PARGS(P_INT(kvno)), &r)) != 0)
        return ret;
    *exists = PQntuples(r) > 0;
    PQclear(r);
    return 0;
}

int
pg_mkey_add(void *arg, const struct ck_store_mkey_row *row, int64_t now)
{
    struct pg_be *be = arg;
    bool exists = false;
    int ret;

    if ((ret = pg_begin_write(be)) != 0)
        return ret;
    if ((ret = row_exists(be, row->kvno, &exists)) != 0)
        goto out;
    if (exists) {
        ret = ck_error_set(CK_ERR_EXISTS, "master key kvno %u exists", row->kvno);
        goto out;
    }
    if ((ret = pg_run(be, "add master key",
                      "INSERT INTO master_key(kvno, enctype, check_value, created)"
                      " VALUES ($1, $2, $3, $4)",
                      PARGS(P_INT(row->kvno), P_INT(row->enctype),
                            P_BLOB(row->check, row->check_len), P_INT(now)), NULL)) != 0)
        goto out;
    ret = pg_bump_generation(be, CK_CHANGE_PRINCIPAL, NULL, NULL);
out:
    return pg_end_write(be, ret);
}

int
pg_mkey_activate(void *arg, uint32_t kvno, int64_t now)
{
    struct pg_be *be = arg;
    bool exists = false;
    int ret;

    (void)now;
    if ((ret = pg_begin_write(be)) != 0)
        return ret;
    if ((ret = row_exists(be, kvno, &exists)) != 0)
        goto out;
    if (!exists) {
        ret = ck_error_set(CK_ERR_NOTFOUND, "master key kvno %u is not in the database", kvno);
        goto out;
    }
    if ((ret = pg_run(be, "activate master key", "UPDATE realm SET master_kvno = $1 WHERE id = 1",
                      PARGS(P_INT(kvno)), NULL)) != 0)
        goto out;
    ret = pg_bump_generation(be, CK_CHANGE_PRINCIPAL, NULL, NULL);
out:
    return pg_end_write(be, ret);
}

int
pg_mkey_count(void *arg, uint32_t mkvno, uint32_t only, uint64_t *keys, uint64_t *hist)
{
    struct pg_be *be = arg;
    PGresult *r = NULL;
    int64_t k = 0, h = 0;
    int ret;

    *keys = *hist = 0;
    if (only != 0)
        ret = pg_query(be, "master key use",
                       "SELECT (SELECT count(*) FROM key WHERE mkvno = $1),"
                       " (SELECT count(*) FROM pw_history WHERE mkvno = $1)",
                       PARGS(P_INT(only)), &r);
    else
        ret = pg_query(be, "master key use",
                       "SELECT (SELECT count(*) FROM key WHERE mkvno <> $1),"
                       " (SELECT count(*) FROM pw_history WHERE mkvno <> $1)",
                       PARGS(P_INT(mkvno)), &r);
    if (ret != 0)
        return ret;
    if (PQntuples(r) != 1 || pg_col_int(r, 0, 0, &k) != 0 || pg_col_int(r, 0, 1, &h) != 0 ||
        k < 0 || h < 0)
        ret = ck_error_set(CK_ERR_DB, "master key use: malformed answer");
    else {
        *keys = (uint64_t)k;
        *hist = (uint64_t)h;
    }
    PQclear(r);
    return ret;
}

int
pg_mkey_reencrypt(void *arg, uint32_t mkvno, size_t limit,
                  int (*rewrap)(void *arg, const char *name, const struct ck_store_key_row *in,
                                struct ck_store_key_row *out),
                  void *rewrap_arg, size_t *done, int64_t now)
{
    struct pg_be *be = arg;
    PGresult *r = NULL;
    int n = 0, ret;

    (void)now;
    *done = 0;
    if (limit == 0)
        return ck_error_set(CK_ERR_INVAL, "re-encryption batch of 0");
    if ((ret = pg_begin_write(be)) != 0)
        return ret;
    /* The generation lock serializes every writer, so the rows read here stay as read until
     * this transaction ends. Principal order: each principal's rows are adjacent. */
    if ((ret = pg_query(be, "keys to re-encrypt",
                        "SELECT kvno, enctype, salt_type, salt, mkvno, key_enc, name, pid, hid"
                        " FROM (SELECT k.kvno, k.enctype, k.salt_type, k.salt, k.mkvno,"
                        "  k.key_enc, p.name, p.id AS pid, 0::bigint AS hid FROM key k"
                        "  JOIN principal p ON p.id = k.principal_id WHERE k.mkvno <> $1"
                        " UNION ALL SELECT h.kvno, h.enctype, h.salt_type, h.salt, h.mkvno,"
                        "  h.key_enc, p.name, p.id, h.id FROM pw_history h JOIN principal p"
                        "  ON p.id = h.principal_id WHERE h.mkvno <> $1) AS pending"
                        " ORDER BY pid, hid LIMIT $2",
                        PARGS(P_INT(mkvno), P_INT(limit)), &r)) != 0)
        goto out;
    n = PQntuples(r);
    for (int i = 0; i < n; i++) {
        struct ck_store_key_row in, fresh;
        const char *name = PQgetvalue(r, i, 6);
        int64_t pid = 0, hid = 0;

        memset(&in, 0, sizeof(in));
        memset(&fresh, 0, sizeof(fresh));
        if (pg_col_int(r, i, 7, &pid) != 0 || pg_col_int(r, i, 8, &hid) != 0 ||
            pg_col_null(r, i, 6)) {
            ret = ck_error_set(CK_ERR_DB, "keys to re-encrypt: malformed row");
            goto out;
        }
        if ((ret = pg_col_key_row(r, i, 0, name, hid ? "password history key" : "key", &in)) ==
                0 &&
            (ret = rewrap(rewrap_arg, name, &in, &fresh)) == 0) {
            if (hid == 0)
                ret = pg_run(be, "re-encrypt key",
                             "UPDATE key SET mkvno = $1, key_enc = $2 WHERE principal_id = $3"
                             " AND kvno = $4 AND enctype = $5",
                             PARGS(P_INT(fresh.mkvno), P_BLOB(fresh.key_enc, fresh.key_enc_len),
                                   P_INT(pid), P_INT(in.kvno), P_INT(in.enctype)),
                             NULL);
            else
                ret = pg_run(be, "re-encrypt password history key",
                             "UPDATE pw_history SET mkvno = $1, key_enc = $2 WHERE id = $3",
                             PARGS(P_INT(fresh.mkvno), P_BLOB(fresh.key_enc, fresh.key_enc_len),
                                   P_INT(hid)),
                             NULL);
        }
        free(in.salt);
        free(in.key_enc);
        free(fresh.salt);
        ck_free_secret(fresh.key_enc, fresh.key_enc_len);
        if (ret != 0)
            goto out;
    }
    /* After every rewrap: the first bump writes the audit row, whose detail has the count. */
    for (int i = 0; i < n; i++) {
        int64_t pid = 0, next_pid = 0;

        if (pg_col_int(r, i, 7, &pid) != 0 ||
            (i + 1 < n && pg_col_int(r, i + 1, 7, &next_pid) != 0)) {
            ret = ck_error_set(CK_ERR_DB, "keys to re-encrypt: malformed row");
            goto out;
        }
        if ((i + 1 == n || next_pid != pid) &&
            (ret = pg_bump_generation(be, CK_CHANGE_PRINCIPAL, PQgetvalue(r, i, 6), NULL)) != 0)
            goto out;
    }
    *done = (size_t)n;
out:
    PQclear(r);
    ret = pg_end_write(be, ret);
    if (ret != 0)
        *done = 0;
    return ret;
}

int
pg_mkey_retire(void *arg, uint32_t kvno, int64_t now)
{
    struct pg_be *be = arg;
    PGresult *r = NULL;
    int64_t active = 0, keys = 0, hist = 0, rows = 0;
    int ret;

    (void)now;
    if ((ret = pg_begin_write(be)) != 0)
        return ret;
    if ((ret = pg_query(be, "master key use",
                        "SELECT (SELECT master_kvno FROM realm WHERE id = 1),"
                        " (SELECT count(*) FROM key WHERE mkvno = $1),"
                        " (SELECT count(*) FROM pw_history WHERE mkvno = $1),"
                        " (SELECT count(*) FROM master_key WHERE kvno = $1)",
                        PARGS(P_INT(kvno)), &r)) != 0)
        goto out;
    if (PQntuples(r) != 1 || pg_col_int(r, 0, 0, &active) != 0 || pg_col_int(r, 0, 1, &keys) != 0 ||
        pg_col_int(r, 0, 2, &hist) != 0 || pg_col_int(r, 0, 3, &rows) != 0) {
        ret = ck_error_set(CK_ERR_DB, "master key use: malformed answer");
        goto out;
    }
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
    if ((ret = pg_run(be, "retire master key", "DELETE FROM master_key WHERE kvno = $1",
                      PARGS(P_INT(kvno)), NULL)) != 0)
        goto out;
    ret = pg_bump_generation(be, CK_CHANGE_PRINCIPAL, NULL, NULL);
out:
    PQclear(r);
    return pg_end_write(be, ret);
}
