/* PostgreSQL backend: the device table (MAC -> principal, state, key pin), with the semantics of
 * the SQLite backend's device operations: every change bumps the change counter in its
 * transaction and stamps the row with the new generation. */
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "cablekey/error.h"
#include "cablekey/util.h"
#include "store/pg_int.h"

#define DEVICE_INSERT_COLUMNS                                                                  \
    "mac, principal, state, spki_sha256, created, modified, revoked, generation, comment"
/* What a read returns: the inserted columns and the operator certificate's hash (prov.h). */
#define DEVICE_COLUMNS DEVICE_INSERT_COLUMNS ", cert_sha256"

static int
read_device_row(const PGresult *r, int i, struct ck_store_device_row *row)
{
    uint8_t *pin = NULL;
    size_t pin_len = 0;
    int ret;

    memset(row, 0, sizeof(*row));
    row->mac = pg_col_strdup(r, i, 0);
    row->principal = pg_col_strdup(r, i, 1);
    row->comment = pg_col_strdup(r, i, 8);
    if (row->mac == NULL || row->principal == NULL || row->comment == NULL) {
        ck_store_device_row_clear(row);
        return ck_error_set(CK_ERR_NOMEM, "device row");
    }
    if ((ret = pg_col_bytea(r, i, 3, &pin, &pin_len)) != 0) {
        ck_store_device_row_clear(row);
        return ret;
    }
    if (!pg_col_null(r, i, 3)) {
        if (pin_len != CK_DEVICE_SPKI_HASH_LEN) {
            free(pin);
            ck_store_device_row_clear(row);
            return ck_error_set(CK_ERR_DB, "device row: malformed key pin");
        }
        memcpy(row->spki_sha256, pin, CK_DEVICE_SPKI_HASH_LEN);
        row->has_pin = true;
    }
    free(pin);
    pin = NULL;
    if ((ret = pg_col_bytea(r, i, 9, &pin, &pin_len)) != 0) {
        ck_store_device_row_clear(row);
        return ret;
    }
    if (!pg_col_null(r, i, 9)) {
        if (pin_len != 32) {
            free(pin);
            ck_store_device_row_clear(row);
            return ck_error_set(CK_ERR_DB, "device row: malformed certificate hash");
        }
        memcpy(row->cert_sha256, pin, 32);
        row->has_cert = true;
    }
    free(pin);
    row->state = (int)pg_col_i64(r, i, 2);
    row->created = pg_col_i64(r, i, 4);
    row->modified = pg_col_i64(r, i, 5);
    row->revoked = pg_col_i64(r, i, 6);
    row->generation = (uint64_t)pg_col_i64(r, i, 7);
    return 0;
}

int
pg_device_get(void *arg, const char *mac, struct ck_store_device_row *row)
{
    struct pg_be *be = arg;
    PGresult *r = NULL;
    int ret;

    memset(row, 0, sizeof(*row));
    if ((ret = pg_query(be, "get device", "SELECT " DEVICE_COLUMNS " FROM device WHERE mac = $1",
                        PARGS(P_TEXT(mac)), &r)) != 0)
        return ret;
    if (PQntuples(r) == 1)
        ret = read_device_row(r, 0, row);
    else
        ret = ck_error_set(CK_ERR_NOTFOUND, "device %s not found", mac);
    PQclear(r);
    return ret;
}

/* Inside a write transaction: the state, pin and generation of a device, row locked. */
static int
device_lock_row(struct pg_be *be, const char *mac, int *state, bool *has_pin,
                uint8_t pin[CK_DEVICE_SPKI_HASH_LEN], uint64_t *generation)
{
    PGresult *r = NULL;
    uint8_t *p = NULL;
    size_t len = 0;
    int ret;

    if ((ret = pg_query(be, "device", "SELECT state, spki_sha256, generation FROM device"
                        " WHERE mac = $1 FOR UPDATE", PARGS(P_TEXT(mac)), &r)) != 0)
        return ret;
    if (PQntuples(r) != 1) {
        ret = ck_error_set(CK_ERR_NOTFOUND, "device %s not found", mac);
        goto out;
    }
    *state = (int)pg_col_i64(r, 0, 0);
    *generation = (uint64_t)pg_col_i64(r, 0, 2);
    *has_pin = !pg_col_null(r, 0, 1);
    if ((ret = pg_col_bytea(r, 0, 1, &p, &len)) != 0)
        goto out;
    if (*has_pin && len != CK_DEVICE_SPKI_HASH_LEN)
        ret = ck_error_set(CK_ERR_DB, "device %s: malformed key pin", mac);
    else if (*has_pin)
        memcpy(pin, p, CK_DEVICE_SPKI_HASH_LEN);
out:
    free(p);
    PQclear(r);
    return ret;
}

int
pg_device_add(void *arg, const struct ck_store_device_row *row, int64_t now)
{
    struct pg_be *be = arg;
    uint8_t pin[CK_DEVICE_SPKI_HASH_LEN];
    uint64_t gen = 0;
    int64_t pid = 0;
    bool has_pin = false;
    int state = 0, ret;

    if ((ret = pg_begin_write(be)) != 0)
        return ret;
    ret = device_lock_row(be, row->mac, &state, &has_pin, pin, &gen);
    if (ret == 0) {
        ret = ck_error_set(CK_ERR_EXISTS, "device %s already exists", row->mac);
        goto out;
    }
    if (ret != CK_ERR_NOTFOUND)
        goto out;
    if ((ret = pg_lookup_id(be, row->principal, &pid, NULL)) != 0)
        goto out;
    if (pid == 0) {
        ret = ck_error_set(CK_ERR_NOTFOUND, "principal %s not found", row->principal);
        goto out;
    }
    if ((ret = pg_bump_generation(be, CK_CHANGE_DEVICE, row->mac, &gen)) != 0)
        goto out;
    ret = pg_run(be, "add device",
                 "INSERT INTO device(" DEVICE_INSERT_COLUMNS ") VALUES ($1, $2, $3, $4, $5, $6, 0, $7,"
                 " $8)",
                 PARGS(P_TEXT(row->mac), P_TEXT(row->principal), P_INT(row->state),
                       row->has_pin ? P_BLOB(row->spki_sha256, CK_DEVICE_SPKI_HASH_LEN) : P_NULL,
                       P_INT(now), P_INT(now), P_INT(gen),
                       P_TEXT(row->comment != NULL ? row->comment : "")), NULL);
out:
    return pg_end_write(be, ret);
}

int
pg_device_update(void *arg, const char *mac, enum ck_store_device_update what, int state,
                 const uint8_t *hash, int64_t now, bool *changed)
{
    struct pg_be *be = arg;
    uint8_t pin[CK_DEVICE_SPKI_HASH_LEN];
    uint64_t gen = 0;
    bool has_pin = false;
    int cur = 0, ret;

    *changed = false;
    if ((ret = pg_begin_write(be)) != 0)
        return ret;
    if ((ret = device_lock_row(be, mac, &cur, &has_pin, pin, &gen)) != 0)
        goto out;
    if (what == CK_DEV_SET_STATE) {
        if (cur == state)
            goto out;
        if ((ret = pg_bump_generation(be, CK_CHANGE_DEVICE, mac, &gen)) != 0 ||
            (ret = pg_run(be, "device state",
                          "UPDATE device SET state = $1, revoked = $2, modified = $3,"
                          " generation = $4 WHERE mac = $5",
                          PARGS(P_INT(state), P_INT(state == CK_DEVICE_REVOKED ? now : 0),
                                P_INT(now), P_INT(gen), P_TEXT(mac)), NULL)) != 0)
            goto out;
    } else {
        if (hash == NULL ? !has_pin
                         : (has_pin && memcmp(pin, hash, CK_DEVICE_SPKI_HASH_LEN) == 0))
            goto out;
        if ((ret = pg_bump_generation(be, CK_CHANGE_DEVICE, mac, &gen)) != 0 ||
            (ret = pg_run(be, "device pin",
                          "UPDATE device SET spki_sha256 = $1, modified = $2, generation = $3"
                          " WHERE mac = $4",
                          PARGS(hash != NULL ? P_BLOB(hash, CK_DEVICE_SPKI_HASH_LEN) : P_NULL,
                                P_INT(now), P_INT(gen), P_TEXT(mac)), NULL)) != 0)
            goto out;
    }
    *changed = true;
out:
    ret = pg_end_write(be, ret);
    if (ret != 0)
        *changed = false;
    return ret;
}

int
pg_device_del(void *arg, const char *mac)
{
    struct pg_be *be = arg;
    uint64_t n = 0;
    int ret;

    if ((ret = pg_begin_write(be)) != 0)
        return ret;
    if ((ret = pg_run(be, "delete device", "DELETE FROM device WHERE mac = $1",
                      PARGS(P_TEXT(mac)), &n)) != 0)
        goto out;
    if (n == 0) {
        ret = ck_error_set(CK_ERR_NOTFOUND, "device %s not found", mac);
        goto out;
    }
    ret = pg_bump_generation(be, CK_CHANGE_DEVICE, mac, NULL);
out:
    return pg_end_write(be, ret);
}

int
pg_device_list(void *arg, const char *principal, const char *after, size_t limit,
               int (*cb)(const struct ck_store_device_row *row, void *cb_arg), void *cb_arg,
               size_t *n_out)
{
    struct pg_be *be = arg;
    struct ck_store_device_row row;
    PGresult *r = NULL;
    size_t n = 0;
    int ret;

    *n_out = 0;
    if (limit > INT64_MAX)
        limit = INT64_MAX;
    /* COLLATE "C": MAC order as bytes, as the SQLite backend pages through it. */
    if (principal != NULL)
        ret = pg_query(be, "list devices",
                       "SELECT " DEVICE_COLUMNS " FROM device WHERE principal = $1 AND"
                       " mac COLLATE \"C\" > $2 ORDER BY mac COLLATE \"C\" LIMIT $3",
                       PARGS(P_TEXT(principal), P_TEXT(after != NULL ? after : ""),
                             P_INT(limit)), &r);
    else
        ret = pg_query(be, "list devices",
                       "SELECT " DEVICE_COLUMNS " FROM device WHERE mac COLLATE \"C\" > $1"
                       " ORDER BY mac COLLATE \"C\" LIMIT $2",
                       PARGS(P_TEXT(after != NULL ? after : ""), P_INT(limit)), &r);
    if (ret != 0)
        return ret;
    for (int i = 0; i < PQntuples(r); i++) {
        if ((ret = read_device_row(r, i, &row)) != 0)
            break;
        ret = cb(&row, cb_arg);
        ck_store_device_row_clear(&row);
        n++;
        if (ret != 0)
            break;
    }
    PQclear(r);
    *n_out = n;
    return ret;
}

int
pg_device_pin_check(void *arg, const char *mac, const uint8_t *hash,
                    enum ck_device_pin_result *result, uint64_t *generation, int64_t now)
{
    struct pg_be *be = arg;
    uint8_t pin[CK_DEVICE_SPKI_HASH_LEN];
    uint64_t gen = 0;
    bool has_pin = false;
    int state = 0, ret;

    *result = CK_DEVICE_PIN_MISMATCH;
    if ((ret = pg_begin_write(be)) != 0)
        return ret;
    if ((ret = device_lock_row(be, mac, &state, &has_pin, pin, &gen)) != 0)
        goto out;
    if (state != CK_DEVICE_ACTIVE) {
        ret = ck_error_set(CK_ERR_POLICY, "device %s is not active (state %d)", mac, state);
        goto out;
    }
    if (has_pin) {
        *result = ck_ct_equal(pin, hash, CK_DEVICE_SPKI_HASH_LEN) ? CK_DEVICE_PIN_MATCH
                                                                  : CK_DEVICE_PIN_MISMATCH;
        goto out;
    }
    if ((ret = pg_bump_generation(be, CK_CHANGE_DEVICE, mac, &gen)) != 0 ||
        (ret = pg_run(be, "pin device",
                      "UPDATE device SET spki_sha256 = $1, modified = $2, generation = $3"
                      " WHERE mac = $4",
                      PARGS(P_BLOB(hash, CK_DEVICE_SPKI_HASH_LEN), P_INT(now), P_INT(gen),
                            P_TEXT(mac)), NULL)) != 0)
        goto out;
    *result = CK_DEVICE_PIN_SET;
out:
    ret = pg_end_write(be, ret);
    if (ret != 0)
        *result = CK_DEVICE_PIN_MISMATCH;
    else if (generation != NULL)
        *generation = gen;
    return ret;
}
