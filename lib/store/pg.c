/* PostgreSQL backend: connection, statement helpers, the schema, principals, keys, the change
 * counter and its notifications (conventions in pg_int.h). One connection per backend object;
 * the caller serializes its use, as with the SQLite backend. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "cablekey/error.h"
#include "cablekey/util.h"
#include "store/pg_int.h"

/* Change-log rows kept and the most changes reported one by one: as the SQLite backend. */
#define PG_CHANGELOG_KEEP 10000
#define PG_CHANGES_MAX 1000
/* A connection attempt that hangs (a black-holed address) must not stall a KDC forever. */
#define PG_CONNECT_TIMEOUT "10"
/* KDC fleet (docs/fleet.md): a server that vanishes without closing the connection (a network
 * partition, a powered-off host) is noticed within about 10 s instead of the kernel's minutes, so
 * the KDC's caches start counting their staleness and reconnect: TCP keepalives on an idle
 * connection, and a bound on unacknowledged data for a busy one. Ignored on Unix sockets; the
 * connection string may override each. */
#define PG_KEEPALIVES_IDLE "5"
#define PG_KEEPALIVES_INTERVAL "2"
#define PG_KEEPALIVES_COUNT "3"
#define PG_TCP_USER_TIMEOUT "10000" /* ms */
/* A reconnection runs on a KDC worker between requests: a black-holed host may hold it this long
 * per attempt (libpq's minimum), once per backoff step of the caller. */
#define PG_RECONNECT_TIMEOUT "2"

/* The whole schema, created in one transaction. It carries the content of the SQLite schema
 * version 5 (same tables, columns and constraints), in PostgreSQL types; its own version
 * numbering starts at 1. Never edit a released schema: add a migration. */
static const char *const pg_schema[] = {
    "CREATE TABLE schema_version(version INTEGER NOT NULL)",
    "CREATE TABLE realm("
    " id INTEGER PRIMARY KEY CHECK (id = 1),"
    " name TEXT NOT NULL,"
    " enctypes TEXT NOT NULL,"
    " max_life BIGINT NOT NULL,"
    " max_renew BIGINT NOT NULL,"
    " master_kvno BIGINT NOT NULL,"
    " default_attributes BIGINT NOT NULL DEFAULT 128)",
    "CREATE TABLE master_key("
    " kvno BIGINT PRIMARY KEY,"
    " enctype INTEGER NOT NULL,"
    " check_value BYTEA NOT NULL,"
    " created BIGINT NOT NULL)",
    "CREATE TABLE generation(id INTEGER PRIMARY KEY CHECK (id = 1), value BIGINT NOT NULL)",
    "CREATE TABLE changelog(generation BIGINT PRIMARY KEY, name TEXT,"
    " kind INTEGER NOT NULL DEFAULT 1)",
    "CREATE TABLE policy("
    " name TEXT NOT NULL PRIMARY KEY,"
    " min_length BIGINT NOT NULL,"
    " min_classes BIGINT NOT NULL,"
    " history BIGINT NOT NULL,"
    " min_life BIGINT NOT NULL,"
    " max_life BIGINT NOT NULL,"
    " max_failure BIGINT NOT NULL,"
    " failure_interval BIGINT NOT NULL,"
    " lockout_duration BIGINT NOT NULL,"
    " created BIGINT NOT NULL,"
    " modified BIGINT NOT NULL)",
    "CREATE TABLE principal("
    " id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " name TEXT NOT NULL UNIQUE,"
    " attributes BIGINT NOT NULL,"
    " max_life BIGINT NOT NULL,"
    " max_renew BIGINT NOT NULL,"
    " expires BIGINT NOT NULL,"
    " pw_expires BIGINT NOT NULL,"
    " kvno BIGINT NOT NULL,"
    " created BIGINT NOT NULL,"
    " modified BIGINT NOT NULL,"
    " policy TEXT REFERENCES policy(name),"
    " last_pwd_change BIGINT NOT NULL DEFAULT 0)",
    "CREATE INDEX principal_policy ON principal(policy) WHERE policy IS NOT NULL",
    "CREATE TABLE key("
    " principal_id BIGINT NOT NULL REFERENCES principal(id) ON DELETE CASCADE,"
    " kvno BIGINT NOT NULL,"
    " enctype INTEGER NOT NULL,"
    " ord INTEGER NOT NULL,"
    " salt_type INTEGER NOT NULL,"
    " salt BYTEA,"
    " mkvno BIGINT NOT NULL,"
    " key_enc BYTEA NOT NULL,"
    " PRIMARY KEY (principal_id, kvno, enctype))",
    /* Deferrable: a rename repoints the devices and the principal in one transaction. */
    "CREATE TABLE device("
    " mac TEXT NOT NULL PRIMARY KEY CHECK (length(mac) = 17),"
    " principal TEXT NOT NULL REFERENCES principal(name) DEFERRABLE INITIALLY IMMEDIATE,"
    " state INTEGER NOT NULL,"
    " spki_sha256 BYTEA CHECK (spki_sha256 IS NULL OR length(spki_sha256) = 32),"
    " created BIGINT NOT NULL,"
    " modified BIGINT NOT NULL,"
    " revoked BIGINT NOT NULL DEFAULT 0,"
    " generation BIGINT NOT NULL,"
    " comment TEXT NOT NULL DEFAULT '')",
    "CREATE INDEX device_principal ON device(principal, mac)",
    "CREATE TABLE audit("
    " id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " time BIGINT NOT NULL,"
    " actor TEXT NOT NULL,"
    " action TEXT NOT NULL,"
    " object TEXT NOT NULL DEFAULT '',"
    " detail TEXT NOT NULL DEFAULT '',"
    " generation BIGINT NOT NULL)",
    "CREATE INDEX audit_time ON audit(time)",
    "CREATE INDEX audit_object ON audit(object, id)",
    "CREATE TABLE audit_retention("
    " id INTEGER PRIMARY KEY CHECK (id = 1),"
    " keep_rows BIGINT NOT NULL CHECK (keep_rows BETWEEN 1 AND 10000000),"
    " keep_days BIGINT NOT NULL CHECK (keep_days BETWEEN 0 AND 36500))",
    "INSERT INTO audit_retention(id, keep_rows, keep_days) VALUES (1, 100000, 365)",
    "CREATE TABLE lockout("
    " principal_id BIGINT PRIMARY KEY REFERENCES principal(id) ON DELETE CASCADE,"
    " fail_count BIGINT NOT NULL DEFAULT 0,"
    " last_failed BIGINT NOT NULL DEFAULT 0,"
    " last_success BIGINT NOT NULL DEFAULT 0,"
    " epoch BIGINT NOT NULL DEFAULT 0)",
    "CREATE TABLE pw_history("
    " id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " principal_id BIGINT NOT NULL REFERENCES principal(id) ON DELETE CASCADE,"
    " kvno BIGINT NOT NULL,"
    " enctype INTEGER NOT NULL,"
    " salt_type INTEGER NOT NULL,"
    " salt BYTEA,"
    " mkvno BIGINT NOT NULL,"
    " key_enc BYTEA NOT NULL)",
    "CREATE INDEX pw_history_principal ON pw_history(principal_id, id)",
    "INSERT INTO generation(id, value) VALUES (1, 0)",
    NULL,
};

/* ---- errors ---- */

/* libpq messages end with a newline and may run over several lines: the first line says it. */
static void
first_line(const char *msg, char *buf, size_t size)
{
    size_t n;

    ck_strlcpy(buf, msg != NULL && *msg != '\0' ? msg : "no reason given", size);
    n = strcspn(buf, "\n");
    buf[n] = '\0';
}

/* The operator's view of a failed statement: what failed and the server's reason; SQL is not
 * shown except for the unexpected cases that a developer debugs. */
static int
pg_result_error(struct pg_be *be, const char *what, const PGresult *r)
{
    const char *state = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = r != NULL ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    char line[512];

    if (PQstatus(be->conn) != CONNECTION_OK) {
        first_line(PQerrorMessage(be->conn), line, sizeof(line));
        return ck_error_set(CK_ERR_DB, "%s: PostgreSQL connection lost: %s", what, line);
    }
    first_line(msg != NULL ? msg : PQerrorMessage(be->conn), line, sizeof(line));
    if (state != NULL && strcmp(state, "25006") == 0)
        return ck_error_set(CK_ERR_PERM, "%s: the database is opened read-only", what);
    if (state != NULL && strncmp(state, "23", 2) == 0)
        return ck_error_set(CK_ERR_DB, "%s: refused by the database (%s)", what, line);
    if (state != NULL && (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0))
        return ck_error_set(CK_ERR_DB, "%s: concurrent change in the database; retry", what);
    if (state != NULL && strcmp(state, "42501") == 0)
        return ck_error_set(CK_ERR_PERM, "%s: permission denied in the database (%s)", what,
                            line);
    return ck_error_set(CK_ERR_DB, "%s: database error: %s", what, line);
}

/* ---- connection ---- */

static int session_setup(struct pg_be *be);
static void pg_quiet(void *arg, const char *message);

/* A new connection: our defaults first, what the caller's string sets (expanded from dbname,
 * later in the list) overrides them. NULL only when out of memory. */
static PGconn *
pg_connect(const char *conninfo, const char *connect_timeout)
{
    const char *const keys[] = {"connect_timeout", "application_name", "keepalives",
                                "keepalives_idle", "keepalives_interval", "keepalives_count",
                                "tcp_user_timeout", "dbname", NULL};
    const char *const vals[] = {connect_timeout, "cablekey", "1", PG_KEEPALIVES_IDLE,
                                PG_KEEPALIVES_INTERVAL, PG_KEEPALIVES_COUNT, PG_TCP_USER_TIMEOUT,
                                conninfo, NULL};

    return PQconnectdbParams(keys, vals, 1);
}

/* A connection lost between transactions (server restart, failover, an idle connection cut by
 * a firewall) is re-established once, transparently: prepared statements and LISTEN are
 * session state and are set up again, and the next wait_change reports a change, since
 * notifications sent meanwhile are lost. Inside a transaction the loss is an error: the
 * transaction is gone, the caller's write failed as a whole. */
static int
pg_reconnect(struct pg_be *be, const char *what)
{
    char line[512];
    int ret;

    /* One attempt per call: a server that drops us again during the setup is an error. */
    if (be->reconnecting)
        return ck_error_set(CK_ERR_DB, "%s: PostgreSQL connection lost while reconnecting",
                            what);
    {
        /* A new connection rather than PQreset: a shorter connect timeout than at open, and the
         * dead one is kept until a live one replaces it. A multi-host string finds the host that
         * is now writable (target_session_attrs). */
        PGconn *c = pg_connect(be->conninfo != NULL ? be->conninfo : "", PG_RECONNECT_TIMEOUT);

        if (c == NULL)
            return ck_error_set(CK_ERR_NOMEM, "%s: PostgreSQL reconnection", what);
        if (PQstatus(c) != CONNECTION_OK) {
            first_line(PQerrorMessage(c), line, sizeof(line));
            PQfinish(c);
            return ck_error_set(CK_ERR_DB, "%s: PostgreSQL unreachable: %s", what, line);
        }
        PQfinish(be->conn);
        be->conn = c;
        PQsetNoticeProcessor(be->conn, pg_quiet, NULL);
    }
    be->n_stmt = 0;
    be->missed = true;
    be->reconnecting = true;
    ret = session_setup(be);
    be->reconnecting = false;
    return ret;
}

static int
pg_ready(struct pg_be *be, const char *what)
{
    if (PQstatus(be->conn) == CONNECTION_OK)
        return 0;
    if (be->in_tx)
        return ck_error_set(CK_ERR_DB, "%s: PostgreSQL connection lost in a transaction", what);
    return pg_reconnect(be, what);
}

/* ---- statements ---- */

/* The name of the prepared statement for sql ("ck" + index), preparing it on first use. */
static int
pg_statement(struct pg_be *be, const char *what, const char *sql, int nparams, char name[16])
{
    PGresult *r;
    size_t i;

    for (i = 0; i < be->n_stmt; i++) {
        if (be->stmt_sql[i] == sql)
            break;
    }
    snprintf(name, 16, "ck%zu", i);
    if (i < be->n_stmt)
        return 0;
    if (be->n_stmt >= PG_MAX_STATEMENTS)
        return ck_error_set(CK_ERR_LIMIT, "%s: more than %d prepared statements", what,
                            PG_MAX_STATEMENTS);
    r = PQprepare(be->conn, name, sql, nparams, NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        int ret = pg_result_error(be, what, r);
        PQclear(r);
        return ret;
    }
    PQclear(r);
    be->stmt_sql[be->n_stmt++] = sql;
    return 0;
}

static int
pg_exec_args(struct pg_be *be, const char *what, const char *sql, const struct pg_arg *a,
             size_t n, PGresult **out)
{
    char ints[PG_MAX_PARAMS][24];
    const char *values[PG_MAX_PARAMS];
    int lengths[PG_MAX_PARAMS], formats[PG_MAX_PARAMS];
    char name[16];
    PGresult *r;
    ExecStatusType st;
    int ret;

    *out = NULL;
    if (n > PG_MAX_PARAMS)
        return ck_error_set(CK_ERR_LIMIT, "%s: %zu parameters", what, n);
    for (size_t i = 0; i < n; i++) {
        lengths[i] = 0;
        formats[i] = 0;
        switch (a[i].type) {
        case PG_INT:
            snprintf(ints[i], sizeof(ints[i]), "%lld", (long long)a[i].i);
            values[i] = ints[i];
            break;
        case PG_TEXT:
            values[i] = a[i].s;
            break;
        case PG_BLOB:
            if (a[i].len > (size_t)INT32_MAX)
                return ck_error_set(CK_ERR_LIMIT, "%s: parameter %zu too large", what, i + 1);
            /* A zero-length bytea needs a non-NULL pointer, or it binds SQL NULL. */
            values[i] = a[i].p != NULL ? a[i].p : "";
            lengths[i] = (int)a[i].len;
            formats[i] = 1;
            break;
        case PG_NULL:
        default:
            values[i] = NULL;
            break;
        }
    }
    /* Outside a transaction only reads run (every write is inside BEGIN ... COMMIT), so a
     * statement that met a connection lost since the last one is retried once, reconnected. */
    for (int attempt = 0;; attempt++) {
        if ((ret = pg_ready(be, what)) != 0)
            return ret;
        if ((ret = pg_statement(be, what, sql, (int)n, name)) != 0) {
            if (attempt == 0 && !be->in_tx && PQstatus(be->conn) != CONNECTION_OK)
                continue;
            return ret;
        }
        r = PQexecPrepared(be->conn, name, (int)n, values, lengths, formats, 0);
        st = PQresultStatus(r);
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
            break;
        if (attempt == 0 && !be->in_tx && PQstatus(be->conn) != CONNECTION_OK) {
            PQclear(r);
            continue;
        }
        ret = pg_result_error(be, what, r);
        PQclear(r);
        return ret;
    }
    *out = r;
    return 0;
}

int
pg_query(struct pg_be *be, const char *what, const char *sql, const struct pg_arg *a, size_t n,
         PGresult **res)
{
    PGresult *r = NULL;
    int ret;

    if (res != NULL)
        *res = NULL;
    if ((ret = pg_exec_args(be, what, sql, a, n, &r)) != 0)
        return ret;
    if (res != NULL)
        *res = r;
    else
        PQclear(r);
    return 0;
}

int
pg_run(struct pg_be *be, const char *what, const char *sql, const struct pg_arg *a, size_t n,
       uint64_t *affected)
{
    PGresult *r = NULL;
    int64_t v = 0;
    int ret;

    if ((ret = pg_exec_args(be, what, sql, a, n, &r)) != 0)
        return ret;
    if (affected != NULL) {
        const char *t = PQcmdTuples(r);
        *affected = t != NULL && *t != '\0' &&
                    ck_parse_int64(t, 0, INT64_MAX, &v) == 0 ? (uint64_t)v : 0;
    }
    PQclear(r);
    return 0;
}

/* Transaction control and session settings: fixed text, no parameters, not prepared. */
static int
pg_simple(struct pg_be *be, const char *what, const char *sql)
{
    PGresult *r;
    int ret;

    for (int attempt = 0;; attempt++) {
        if ((ret = pg_ready(be, what)) != 0)
            return ret;
        r = PQexec(be->conn, sql);
        if (PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK)
            break;
        /* BEGIN and session settings, never COMMIT (in_tx is still set then). */
        if (attempt == 0 && !be->in_tx && PQstatus(be->conn) != CONNECTION_OK) {
            PQclear(r);
            continue;
        }
        ret = pg_result_error(be, what, r);
        break;
    }
    PQclear(r);
    return ret;
}

int
pg_begin_plain(struct pg_be *be)
{
    int ret;

    if (be->readonly)
        return ck_error_set(CK_ERR_PERM, "database opened read-only");
    be->audit_written = false;
    if ((ret = pg_simple(be, "begin transaction", "BEGIN")) != 0)
        return ret;
    be->in_tx = true;
    return 0;
}

int
pg_begin_write(struct pg_be *be)
{
    int ret;

    if ((ret = pg_begin_plain(be)) != 0)
        return ret;
    /* Every administrative writer bumps this row: taking its lock first serializes them, as
     * SQLite's BEGIN IMMEDIATE does, before any check they make. */
    if ((ret = pg_run(be, "begin write", "SELECT value FROM generation WHERE id = 1 FOR UPDATE",
                      PNOARGS, NULL)) != 0)
        return pg_end_write(be, ret);
    return 0;
}

int
pg_end_write(struct pg_be *be, int ret)
{
    if (be->audit != NULL)
        be->audit->pending = false;
    if (!be->in_tx)
        return ret;
    /* Still in_tx during COMMIT: a connection lost there must fail the write (it may or may
     * not have committed), never be retried on a new connection. */
    if (ret == 0)
        ret = pg_simple(be, "commit", "COMMIT");
    else
        /* Keep the first error: a failed rollback only means the connection is gone, and the
         * server then rolls back by itself. */
        PQclear(PQexec(be->conn, "ROLLBACK"));
    be->in_tx = false;
    return ret;
}

int
pg_bump_generation(struct pg_be *be, enum ck_store_change_kind kind, const char *key,
                   uint64_t *gen)
{
    PGresult *r = NULL;
    int64_t value = 0;
    char payload[24];
    int ret;

    if ((ret = pg_query(be, "generation",
                        "UPDATE generation SET value = value + 1 WHERE id = 1 RETURNING value",
                        PNOARGS, &r)) != 0)
        return ret;
    if (PQntuples(r) != 1 || pg_col_int(r, 0, 0, &value) != 0) {
        PQclear(r);
        return ck_error_set(CK_ERR_DB, "generation row missing");
    }
    PQclear(r);
    snprintf(payload, sizeof(payload), "%lld", (long long)value);
    if ((ret = pg_run(be, "changelog",
                      "INSERT INTO changelog(generation, name, kind) VALUES ($1, $2, $3)",
                      PARGS(P_INT(value), P_TEXT(key),
                            P_INT(key != NULL ? kind : CK_CHANGE_ALL)), NULL)) != 0 ||
        (ret = pg_run(be, "trim changelog", "DELETE FROM changelog WHERE generation <= $1",
                      PARGS(P_INT(value - PG_CHANGELOG_KEEP)), NULL)) != 0 ||
        (ret = pg_audit_write(be, kind, key, (uint64_t)value)) != 0 ||
        /* Delivered at commit only, to every listening connection: a KDC's cache learns of
         * the change when it can see it. */
        (ret = pg_run(be, "notify", "SELECT pg_notify('" PG_NOTIFY_CHANNEL "', $1)",
                      PARGS(P_TEXT(payload)), NULL)) != 0)
        return ret;
    if (gen != NULL)
        *gen = (uint64_t)value;
    return 0;
}

/* ---- columns ---- */

bool
pg_col_null(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) != 0;
}

int
pg_col_int(const PGresult *r, int row, int col, int64_t *out)
{
    *out = 0;
    if (PQgetisnull(r, row, col))
        return CK_ERR_DB;
    return ck_parse_int64(PQgetvalue(r, row, col), INT64_MIN, INT64_MAX, out) == 0 ? 0
                                                                                   : CK_ERR_DB;
}

int64_t
pg_col_i64(const PGresult *r, int row, int col)
{
    int64_t v = 0;

    (void)pg_col_int(r, row, col, &v);
    return v;
}

char *
pg_col_strdup(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : strdup(PQgetvalue(r, row, col));
}

int
pg_col_bytea(const PGresult *r, int row, int col, uint8_t **p, size_t *len)
{
    unsigned char *raw;
    size_t n = 0;

    *p = NULL;
    *len = 0;
    if (PQgetisnull(r, row, col))
        return 0;
    raw = PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, col), &n);
    if (raw == NULL)
        return ck_error_set(CK_ERR_NOMEM, "bytea column");
    /* malloc'd copy: the rest of cablekey frees with free(). An empty value stays NULL. */
    if (n > 0 && (*p = ck_memdup(raw, n)) == NULL) {
        PQfreemem(raw);
        return ck_error_set(CK_ERR_NOMEM, "bytea column");
    }
    *len = n;
    PQfreemem(raw);
    return 0;
}

int
pg_col_key_row(const PGresult *r, int row, int first, const char *name, const char *what,
               struct ck_store_key_row *k)
{
    int64_t kvno = 0, enctype = 0, salt_type = 0, mkvno = 0;
    int ret;

    memset(k, 0, sizeof(*k));
    if (pg_col_int(r, row, first, &kvno) != 0 || pg_col_int(r, row, first + 1, &enctype) != 0 ||
        pg_col_int(r, row, first + 2, &salt_type) != 0 ||
        pg_col_int(r, row, first + 4, &mkvno) != 0 || kvno < 0 || kvno > UINT32_MAX ||
        enctype < INT32_MIN || enctype > INT32_MAX || salt_type < INT32_MIN ||
        salt_type > INT32_MAX || mkvno < 0 || mkvno > UINT32_MAX)
        return ck_error_set(CK_ERR_DB, "principal %s: malformed %s", name, what);
    k->kvno = (uint32_t)kvno;
    k->enctype = (int32_t)enctype;
    k->salt_type = (int32_t)salt_type;
    k->mkvno = (uint32_t)mkvno;
    if ((ret = pg_col_bytea(r, row, first + 3, &k->salt, &k->salt_len)) != 0 ||
        (ret = pg_col_bytea(r, row, first + 5, &k->key_enc, &k->key_enc_len)) != 0)
        return ret;
    if (k->key_enc_len == 0 || k->salt_len > CK_STORE_MAX_SALT)
        return ck_error_set(CK_ERR_DB, "principal %s: malformed %s", name, what);
    return 0;
}

/* ---- open / close ---- */

static void
pg_close(void *arg)
{
    struct pg_be *be = arg;

    if (be == NULL)
        return;
    PQfinish(be->conn);
    free(be->conninfo);
    free(be);
}

/* Server notices (NOTICE on CREATE, ...) are not the operator's business. */
static void
pg_quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* Passwords come from libpq's usual places (PGPASSFILE, ~/.pgpass, a service file): a
 * password inside the URI would sit in shell histories and process listings. */
static int
check_conninfo(const char *conninfo)
{
    PQconninfoOption *opts;
    char *err = NULL;
    int ret = 0;

    opts = PQconninfoParse(conninfo, &err);
    if (opts == NULL) {
        char line[256];

        first_line(err, line, sizeof(line));
        ret = ck_error_set(err != NULL ? CK_ERR_CONFIG : CK_ERR_NOMEM,
                           "PostgreSQL connection string: %s", err != NULL ? line
                                                                          : "out of memory");
        PQfreemem(err);
        return ret;
    }
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        if (strcmp(o->keyword, "password") == 0 && o->val != NULL && *o->val != '\0')
            ret = ck_error_set(CK_ERR_CONFIG,
                               "PostgreSQL connection string holds a password: put it in "
                               "PGPASSFILE (~/.pgpass) or a service file instead");
    }
    PQconninfoFree(opts);
    return ret;
}

/* One clear error for a connection that failed: a refused login says so (CK_ERR_PERM). */
static int
connect_error(PGconn *conn)
{
    const char *user = PQuser(conn), *host = PQhost(conn), *port = PQport(conn);
    const char *msg = PQerrorMessage(conn);
    char line[512];
    const char *p;

    /* libpq prefixes 'connection to server ... failed: '; the reason follows. */
    p = strstr(msg, "failed: ");
    p = p != NULL ? p + 8 : msg;
    if (strncmp(p, "FATAL:  ", 8) == 0)
        p += 8;
    first_line(p, line, sizeof(line));
    if (PQconnectionNeedsPassword(conn) || strstr(msg, "authentication failed") != NULL ||
        strstr(msg, "not permitted to log in") != NULL ||
        strstr(msg, "no pg_hba.conf entry") != NULL ||
        (strstr(msg, "role \"") != NULL && strstr(msg, "does not exist") != NULL))
        return ck_error_set(CK_ERR_PERM,
                            "PostgreSQL at %s port %s refused login for user %s: %s%s",
                            host != NULL ? host : "(default)", port != NULL ? port : "(default)",
                            user != NULL ? user : "(default)", line,
                            PQconnectionNeedsPassword(conn)
                                ? " (no password found: PGPASSFILE, ~/.pgpass or a service file)"
                                : "");
    return ck_error_set(CK_ERR_DB, "cannot connect to PostgreSQL at %s port %s: %s",
                        host != NULL ? host : "(default)", port != NULL ? port : "(default)",
                        line);
}

/* Session state, set again after a reconnection: fixed settings whatever the server's or
 * role's defaults (no notices, standard strings, the read-only promise enforced by the server
 * as well) and the LISTEN that change notifications need. */
static int
session_setup(struct pg_be *be)
{
    int ret;

    if ((ret = pg_simple(be, "session", "SET client_min_messages = warning")) != 0 ||
        (ret = pg_simple(be, "session", "SET standard_conforming_strings = on")) != 0 ||
        (be->readonly &&
         (ret = pg_simple(be, "session", "SET default_transaction_read_only = on")) != 0))
        return ret;
    return pg_simple(be, "listen", "LISTEN " PG_NOTIFY_CHANNEL);
}

static int
read_schema_version(struct pg_be *be, int *version)
{
    PGresult *r = NULL;
    int64_t v = 0;
    int ret;

    *version = 0;
    if ((ret = pg_query(be, "schema version",
                        "SELECT to_regclass('schema_version') IS NOT NULL", PNOARGS, &r)) != 0)
        return ret;
    if (PQntuples(r) != 1 || strcmp(PQgetvalue(r, 0, 0), "t") != 0) {
        PQclear(r);
        return ck_error_set(CK_ERR_NOTFOUND,
                            "PostgreSQL database %s is not a cablekey database (no cablekey "
                            "schema): create the realm first", PQdb(be->conn));
    }
    PQclear(r);
    if ((ret = pg_query(be, "schema version", "SELECT version FROM schema_version", PNOARGS,
                        &r)) != 0)
        return ret;
    if (PQntuples(r) != 1 || pg_col_int(r, 0, 0, &v) != 0 || v < 0 || v > INT32_MAX) {
        PQclear(r);
        return ck_error_set(CK_ERR_DB, "PostgreSQL database %s: schema version row malformed",
                            PQdb(be->conn));
    }
    PQclear(r);
    *version = (int)v;
    return 0;
}

/* Schema 1 -> 2 (issue 10): the provisioning tables and device.cert_sha256 (pg_prov.c). One
 * transaction under an exclusive lock on schema_version, so that two openers (a KDC fleet
 * starting) upgrade once; a read-only opener cannot, and says so. */
static int
upgrade_schema_1(struct pg_be *be, int *version)
{
    int ret;

    if (be->readonly)
        return ck_error_set(CK_ERR_UNSUPPORTED,
                            "PostgreSQL database %s has cablekey schema version 1 and needs the "
                            "upgrade to %d: open it read-write once (any cablekey command or "
                            "daemon does it)", PQdb(be->conn), PG_SCHEMA_VERSION);
    if ((ret = pg_begin_plain(be)) != 0)
        return ret;
    if ((ret = pg_simple(be, "schema upgrade",
                         "LOCK TABLE schema_version IN ACCESS EXCLUSIVE MODE")) != 0 ||
        (ret = read_schema_version(be, version)) != 0)
        goto out;
    if (*version != 1)
        goto out; /* another opener upgraded it meanwhile */
    for (const char *const *sql = pg_schema_prov; *sql != NULL; sql++) {
        if ((ret = pg_simple(be, "schema upgrade", *sql)) != 0)
            goto out;
    }
    if ((ret = pg_run(be, "schema upgrade", "UPDATE schema_version SET version = $1",
                      PARGS(P_INT(PG_SCHEMA_VERSION)), NULL)) != 0)
        goto out;
    *version = PG_SCHEMA_VERSION;
out:
    return pg_end_write(be, ret);
}

static int
pg_open(const char *path, unsigned flags, bool create, void **out)
{
    struct pg_be *be = NULL;
    const char *conninfo = path != NULL ? path : "";
    int version = 0, ret = 0;

    *out = NULL;
    if ((ret = check_conninfo(conninfo)) != 0)
        return ret;
    be = calloc(1, sizeof(*be));
    if (be == NULL)
        return ck_error_set(CK_ERR_NOMEM, "postgresql backend");
    be->readonly = (flags & CK_STORE_READONLY) != 0 && !create;
    be->load_target = create && (flags & CK_STORE_OPEN_LOAD_TARGET) != 0; /* pg_dump.c */
    if ((be->conninfo = strdup(conninfo)) == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "postgresql backend");
        goto out;
    }
    be->conn = pg_connect(conninfo, PG_CONNECT_TIMEOUT);
    if (be->conn == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "postgresql connection");
        goto out;
    }
    if (PQstatus(be->conn) != CONNECTION_OK) {
        ret = connect_error(be->conn);
        goto out;
    }
    PQsetNoticeProcessor(be->conn, pg_quiet, NULL);
    if ((ret = session_setup(be)) != 0)
        goto out;
    if (create) {
        ret = read_schema_version(be, &version);
        if (ret == 0) {
            ret = ck_error_set(CK_ERR_EXISTS, "PostgreSQL database %s already holds a cablekey "
                               "realm", PQdb(be->conn));
            goto out;
        }
        if (ret != CK_ERR_NOTFOUND)
            goto out;
        ret = 0;
    } else {
        if ((ret = read_schema_version(be, &version)) != 0)
            goto out;
        if (version == 1 && (ret = upgrade_schema_1(be, &version)) != 0) /* issue 10 */
            goto out;
        if (version != PG_SCHEMA_VERSION) {
            ret = ck_error_set(CK_ERR_UNSUPPORTED,
                               "PostgreSQL database %s has cablekey schema version %d, this "
                               "cablekey knows version %d only", PQdb(be->conn), version,
                               PG_SCHEMA_VERSION);
            goto out;
        }
    }
    *out = be;
    be = NULL;
out:
    pg_close(be);
    return ret;
}

static int
format_enctypes(const int32_t *enctypes, size_t n_enctypes, char *buf, size_t size)
{
    size_t pos = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < n_enctypes && i < CK_STORE_MAX_ENCTYPES; i++) {
        int n = snprintf(buf + pos, size - pos, "%s%d", i ? "," : "", (int)enctypes[i]);
        if (n < 0 || (size_t)n >= size - pos)
            return ck_error_set(CK_ERR_LIMIT, "enctype list");
        pos += (size_t)n;
    }
    return 0;
}

#define PG_ENCTYPE_LIST_SIZE (CK_STORE_MAX_ENCTYPES * 12 + 1)

/* The schema, in creation order: the core tables, then each feature's own (service-key rotation
 * in pg_rotation.c, master-key rotation in pg_mkey.c). */
static const char *const *const pg_schema_parts[] = {pg_schema, pg_schema_rotation, pg_schema_mkey,
                                                     pg_schema_prov /* issue 10 */};

static int
pg_init_schema(void *arg, const ck_realm_info *realm, const struct ck_store_mkey_row *mkey,
               int64_t now)
{
    struct pg_be *be = arg;
    char enctypes[PG_ENCTYPE_LIST_SIZE];
    int ret;

    if ((ret = format_enctypes(realm->enctypes, realm->n_enctypes, enctypes,
                               sizeof(enctypes))) != 0)
        return ret;
    if ((ret = pg_begin_plain(be)) != 0)
        return ret;
    /* Two inits racing on one database: the second fails on CREATE TABLE and leaves
     * nothing, as the schema is created in this one transaction. */
    for (size_t part = 0; part < sizeof(pg_schema_parts) / sizeof(pg_schema_parts[0]); part++) {
        for (const char *const *sql = pg_schema_parts[part]; *sql != NULL; sql++) {
            if ((ret = pg_simple(be, "create schema", *sql)) != 0)
                goto out;
        }
    }
    for (const char *const *sql = pg_schema_alarm; *sql != NULL; sql++) /* k9alarmw */
        if ((ret = pg_simple(be, "create schema (alarms)", *sql)) != 0)
            goto out;
    if ((ret = pg_run(be, "schema version", "INSERT INTO schema_version(version) VALUES ($1)",
                      PARGS(P_INT(PG_SCHEMA_VERSION)), NULL)) != 0 ||
        (ret = pg_run(be, "realm",
                      "INSERT INTO realm(id, name, enctypes, max_life, max_renew, master_kvno)"
                      " VALUES (1, $1, $2, $3, $4, $5)",
                      PARGS(P_TEXT(realm->name), P_TEXT(enctypes), P_INT(realm->max_life),
                            P_INT(realm->max_renew), P_INT(mkey->kvno)), NULL)) != 0 ||
        (ret = pg_run(be, "master key",
                      "INSERT INTO master_key(kvno, enctype, check_value, created)"
                      " VALUES ($1, $2, $3, $4)",
                      PARGS(P_INT(mkey->kvno), P_INT(mkey->enctype),
                            P_BLOB(mkey->check, mkey->check_len), P_INT(now)), NULL)) != 0)
        goto out;
    ret = pg_bump_generation(be, CK_CHANGE_ALL, NULL, NULL);
out:
    /* pg_dump.c: a load's target keeps the transaction open; load_dump commits or rolls back
     * the schema together with the records. */
    if (ret == 0 && be->load_target) {
        be->schema_open = true;
        return 0;
    }
    return pg_end_write(be, ret);
}

static int
parse_enctype_list(const char *s, ck_realm_info *realm)
{
    realm->n_enctypes = 0;
    while (s != NULL && *s != '\0') {
        const char *comma = strchr(s, ',');
        size_t n = comma ? (size_t)(comma - s) : strlen(s);
        char num[16];
        int64_t v;

        if (n == 0 || n >= sizeof(num) || realm->n_enctypes >= CK_STORE_MAX_ENCTYPES)
            return ck_error_set(CK_ERR_DB, "realm enctype list malformed");
        memcpy(num, s, n);
        num[n] = '\0';
        if (ck_parse_int64(num, INT32_MIN, INT32_MAX, &v) != 0)
            return ck_error_set(CK_ERR_DB, "realm enctype list malformed");
        realm->enctypes[realm->n_enctypes++] = (int32_t)v;
        s = comma ? comma + 1 : NULL;
    }
    return 0;
}

static int
pg_load_realm(void *arg, ck_realm_info *realm, struct ck_store_mkey_row *mkey)
{
    struct pg_be *be = arg;
    PGresult *r = NULL;
    int64_t v[4];
    int ret;

    memset(mkey, 0, sizeof(*mkey));
    if ((ret = pg_query(be, "realm", "SELECT name, enctypes, max_life, max_renew, master_kvno,"
                        " default_attributes FROM realm WHERE id = 1", PNOARGS, &r)) != 0)
        return ret;
    if (PQntuples(r) != 1) {
        ret = ck_error_set(CK_ERR_DB, "realm row missing");
        goto out;
    }
    if (pg_col_null(r, 0, 0) || pg_col_null(r, 0, 1) ||
        ck_strlcpy(realm->name, PQgetvalue(r, 0, 0), sizeof(realm->name)) >=
            sizeof(realm->name) ||
        pg_col_int(r, 0, 2, &v[0]) != 0 || pg_col_int(r, 0, 3, &v[1]) != 0 ||
        pg_col_int(r, 0, 4, &v[2]) != 0 || pg_col_int(r, 0, 5, &v[3]) != 0 || v[2] < 0 ||
        v[2] > UINT32_MAX || v[3] < 0 || v[3] > UINT32_MAX) {
        ret = ck_error_set(CK_ERR_DB, "realm row malformed");
        goto out;
    }
    if ((ret = parse_enctype_list(PQgetvalue(r, 0, 1), realm)) != 0)
        goto out;
    realm->max_life = v[0];
    realm->max_renew = v[1];
    realm->master_kvno = (uint32_t)v[2];
    realm->default_attributes = (uint32_t)v[3];
    PQclear(r);
    r = NULL;

    if ((ret = pg_query(be, "master key", "SELECT kvno, enctype, check_value FROM master_key"
                        " WHERE kvno = $1", PARGS(P_INT(realm->master_kvno)), &r)) != 0)
        goto out;
    if (PQntuples(r) != 1) {
        ret = ck_error_set(CK_ERR_DB, "master key kvno %u missing", realm->master_kvno);
        goto out;
    }
    mkey->kvno = (uint32_t)pg_col_i64(r, 0, 0);
    mkey->enctype = (int32_t)pg_col_i64(r, 0, 1);
    if ((ret = pg_col_bytea(r, 0, 2, &mkey->check, &mkey->check_len)) != 0)
        goto out;
    if (mkey->check_len == 0)
        ret = ck_error_set(CK_ERR_DB, "master key check value missing");
out:
    PQclear(r);
    if (ret != 0)
        ck_store_mkey_row_clear(mkey);
    return ret;
}

/* ---- principals ---- */

/* One statement, hence one snapshot: the principal, its lockout and policy fields and its keys
 * (one result row per key; key columns NULL for a principal without keys). */
static const char GET_PRINCIPAL_SQL[] =
    "SELECT p.name, p.attributes, p.max_life, p.max_renew, p.expires, p.pw_expires, p.kvno,"
    " p.created, p.modified, p.policy, p.last_pwd_change, coalesce(l.fail_count, 0),"
    " coalesce(l.last_failed, 0), coalesce(l.last_success, 0), coalesce(l.epoch, 0),"
    " coalesce(pol.max_failure, 0), coalesce(pol.failure_interval, 0),"
    " coalesce(pol.lockout_duration, 0),"
    " k.kvno, k.enctype, k.salt_type, k.salt, k.mkvno, k.key_enc"
    " FROM principal p LEFT JOIN lockout l ON l.principal_id = p.id"
    " LEFT JOIN policy pol ON pol.name = p.policy"
    " LEFT JOIN key k ON k.principal_id = p.id"
    " WHERE p.name = $1 ORDER BY k.kvno DESC, k.ord ASC";
#define GET_KEY_FIRST 18

static int
pg_get(void *arg, const char *name, struct ck_store_princ_row *row)
{
    struct pg_be *be = arg;
    PGresult *r = NULL;
    int64_t v[17];
    int n, ret;

    memset(row, 0, sizeof(*row));
    if ((ret = pg_query(be, "get principal", GET_PRINCIPAL_SQL, PARGS(P_TEXT(name)), &r)) != 0)
        return ret;
    n = PQntuples(r);
    if (n == 0) {
        ret = ck_error_set(CK_ERR_NOTFOUND, "principal %s not found", name);
        goto out;
    }
    if (n > CK_STORE_MAX_KEYS) {
        ret = ck_error_set(CK_ERR_LIMIT, "principal %s: more than %d keys", name,
                           CK_STORE_MAX_KEYS);
        goto out;
    }
    for (int c = 1; c < 18; c++) {
        if (c == 9)
            continue; /* policy: text or NULL */
        if (pg_col_int(r, 0, c, &v[c - 1]) != 0) {
            ret = ck_error_set(CK_ERR_DB, "principal %s: malformed row", name);
            goto out;
        }
    }
    row->name = pg_col_strdup(r, 0, 0);
    if (row->name == NULL || (!pg_col_null(r, 0, 9) &&
                              (row->policy = pg_col_strdup(r, 0, 9)) == NULL)) {
        ret = ck_error_set(CK_ERR_NOMEM, "principal row");
        goto out;
    }
    row->attributes = (uint32_t)v[0];
    row->max_life = v[1];
    row->max_renew = v[2];
    row->expires = v[3];
    row->pw_expires = v[4];
    row->kvno = (uint32_t)v[5];
    row->created = v[6];
    row->modified = v[7];
    row->last_pwd_change = v[9];
    row->lockout.fail_count = (uint32_t)v[10];
    row->lockout.last_failed = v[11];
    row->lockout.last_success = v[12];
    row->lockout.epoch = (uint64_t)v[13];
    row->lockout.max_failure = (uint32_t)v[14];
    row->lockout.failure_interval = v[15];
    row->lockout.lockout_duration = v[16];
    if (pg_col_null(r, 0, GET_KEY_FIRST))
        goto out;
    row->keys = calloc((size_t)n, sizeof(*row->keys));
    if (row->keys == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "key rows");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        /* Counted before it is filled: on error, the row's clear frees what it took. */
        row->n_keys++;
        if ((ret = pg_col_key_row(r, i, GET_KEY_FIRST, name, "key row", &row->keys[i])) != 0)
            goto out;
    }
out:
    PQclear(r);
    if (ret != 0)
        ck_store_princ_row_clear(row);
    return ret;
}

int
pg_insert_keys(struct pg_be *be, int64_t id, const struct ck_store_key_row *keys, size_t n)
{
    int ret = 0;

    for (size_t i = 0; i < n && ret == 0; i++)
        ret = pg_run(be, "insert key",
                     "INSERT INTO key(principal_id, kvno, enctype, ord, salt_type, salt, mkvno,"
                     " key_enc) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                     PARGS(P_INT(id), P_INT(keys[i].kvno), P_INT(keys[i].enctype), P_INT(i),
                           P_INT(keys[i].salt_type),
                           keys[i].salt_len > 0 ? P_BLOB(keys[i].salt, keys[i].salt_len)
                                                : P_NULL,
                           P_INT(keys[i].mkvno), P_BLOB(keys[i].key_enc, keys[i].key_enc_len)),
                     NULL);
    return ret;
}

int
pg_lookup_id(struct pg_be *be, const char *name, int64_t *id, uint32_t *kvno)
{
    PGresult *r = NULL;
    int ret;

    *id = 0;
    if ((ret = pg_query(be, "lookup principal",
                        "SELECT id, kvno FROM principal WHERE name = $1 FOR UPDATE",
                        PARGS(P_TEXT(name)), &r)) != 0)
        return ret;
    if (PQntuples(r) == 1) {
        *id = pg_col_i64(r, 0, 0);
        if (kvno != NULL)
            *kvno = (uint32_t)pg_col_i64(r, 0, 1);
    }
    PQclear(r);
    return 0;
}

int
pg_begin_principal_write(struct pg_be *be, const char *name, uint32_t kvno, int conflict,
                         int64_t *id)
{
    uint32_t cur = 0;
    int ret;

    *id = 0;
    if ((ret = pg_begin_write(be)) != 0)
        return ret;
    if ((ret = pg_lookup_id(be, name, id, &cur)) == 0 && *id == 0)
        ret = ck_error_set(CK_ERR_NOTFOUND, "principal %s not found", name);
    else if (ret == 0 && conflict != 0 && cur != kvno)
        ret = ck_error_set(conflict, "principal %s changed concurrently (kvno %u -> %u); retry",
                           name, kvno, cur);
    return ret == 0 ? 0 : pg_end_write(be, ret);
}

static int
pg_put(void *arg, const struct ck_store_princ_row *row, enum ck_store_put_mode mode, int64_t now)
{
    struct pg_be *be = arg;
    PGresult *r = NULL;
    int64_t id = 0;
    int ret;

    if ((ret = pg_begin_write(be)) != 0)
        return ret;
    if ((ret = pg_lookup_id(be, row->name, &id, NULL)) != 0)
        goto out;
    if (mode == CK_PUT_CREATE && id != 0) {
        ret = ck_error_set(CK_ERR_EXISTS, "%s already exists", row->name);
        goto out;
    }
    if (mode == CK_PUT_CREATE && row->policy != NULL &&
        (ret = pg_policy_exists(be, row->policy)) != 0)
        goto out;
    if (mode == CK_PUT_UPDATE_FIELDS) {
        if (id == 0) {
            ret = ck_error_set(CK_ERR_NOTFOUND, "principal %s not found", row->name);
            goto out;
        }
        if ((ret = pg_run(be, "update principal",
                          "UPDATE principal SET attributes = $1, max_life = $2, max_renew = $3,"
                          " expires = $4, pw_expires = $5, modified = $6 WHERE id = $7",
                          PARGS(P_INT(row->attributes), P_INT(row->max_life),
                                P_INT(row->max_renew), P_INT(row->expires),
                                P_INT(row->pw_expires), P_INT(now), P_INT(id)), NULL)) != 0)
            goto out;
        ret = pg_bump_generation(be, CK_CHANGE_PRINCIPAL, row->name, NULL);
        goto out;
    }
    if (id != 0) {
        if ((ret = pg_run(be, "replace keys", "DELETE FROM key WHERE principal_id = $1",
                          PARGS(P_INT(id)), NULL)) != 0 ||
            (ret = pg_run(be, "store principal",
                          "UPDATE principal SET attributes = $1, max_life = $2, max_renew = $3,"
                          " expires = $4, pw_expires = $5, kvno = $6, modified = $7"
                          " WHERE id = $8",
                          PARGS(P_INT(row->attributes), P_INT(row->max_life),
                                P_INT(row->max_renew), P_INT(row->expires),
                                P_INT(row->pw_expires), P_INT(row->kvno), P_INT(now),
                                P_INT(id)), NULL)) != 0)
            goto out;
    } else {
        if ((ret = pg_query(be, "store principal",
                            "INSERT INTO principal(attributes, max_life, max_renew, expires,"
                            " pw_expires, kvno, modified, name, created, policy,"
                            " last_pwd_change) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,"
                            " $11) RETURNING id",
                            PARGS(P_INT(row->attributes), P_INT(row->max_life),
                                  P_INT(row->max_renew), P_INT(row->expires),
                                  P_INT(row->pw_expires), P_INT(row->kvno), P_INT(now),
                                  P_TEXT(row->name), P_INT(now),
                                  P_TEXT(mode == CK_PUT_CREATE ? row->policy : NULL),
                                  P_INT(mode == CK_PUT_CREATE ? row->last_pwd_change : 0)),
                            &r)) != 0)
            goto out;
        if (PQntuples(r) != 1 || pg_col_int(r, 0, 0, &id) != 0) {
            ret = ck_error_set(CK_ERR_DB, "store principal: no row id");
            goto out;
        }
    }
    if ((ret = pg_insert_keys(be, id, row->keys, row->n_keys)) != 0)
        goto out;
    ret = pg_bump_generation(be, CK_CHANGE_PRINCIPAL, row->name, NULL);
out:
    PQclear(r);
    return pg_end_write(be, ret);
}

static int
pg_del(void *arg, const char *name)
{
    struct pg_be *be = arg;
    PGresult *r = NULL;
    uint64_t n = 0;
    int ret;

    if ((ret = pg_begin_write(be)) != 0)
        return ret;
    if ((ret = pg_query(be, "delete principal",
                        "SELECT count(*), min(mac) FROM device WHERE principal = $1",
                        PARGS(P_TEXT(name)), &r)) != 0)
        goto out;
    if (PQntuples(r) == 1 && pg_col_i64(r, 0, 0) > 0) {
        ret = ck_error_set(CK_ERR_POLICY,
                           "principal %s: %lld device(s) map to it (first %s); delete them first",
                           name, (long long)pg_col_i64(r, 0, 0), PQgetvalue(r, 0, 1));
        goto out;
    }
    if ((ret = pg_run(be, "delete principal", "DELETE FROM principal WHERE name = $1",
                      PARGS(P_TEXT(name)), &n)) != 0)
        goto out;
    if (n == 0) {
        ret = ck_error_set(CK_ERR_NOTFOUND, "principal %s not found", name);
        goto out;
    }
    ret = pg_bump_generation(be, CK_CHANGE_PRINCIPAL, name, NULL);
out:
    PQclear(r);
    return pg_end_write(be, ret);
}

static int
pg_list(void *arg, ck_store_list_cb cb, void *cb_arg)
{
    struct pg_be *be = arg;
    PGresult *r = NULL;
    int ret;

    /* COLLATE "C": the byte order SQLite's list gives, whatever the database's locale. */
    if ((ret = pg_query(be, "list principals",
                        "SELECT name FROM principal ORDER BY name COLLATE \"C\"", PNOARGS,
                        &r)) != 0)
        return ret;
    for (int i = 0; i < PQntuples(r) && ret == 0; i++)
        ret = cb(PQgetvalue(r, i, 0), cb_arg);
    PQclear(r);
    return ret;
}

static int
pg_rotate(void *arg, const char *name, uint32_t old_kvno, uint32_t new_kvno,
          const struct ck_store_key_row *keys, size_t n_keys, unsigned keep, int64_t now)
{
    struct pg_be *be = arg;
    int64_t id = 0;
    int ret;

    if ((ret = pg_begin_principal_write(be, name, old_kvno, CK_ERR_POLICY, &id)) != 0)
        return ret;
    if ((ret = pg_run(be, "rotate", "DELETE FROM key WHERE principal_id = $1 AND kvno = $2",
                      PARGS(P_INT(id), P_INT(new_kvno)), NULL)) != 0 ||
        (ret = pg_insert_keys(be, id, keys, n_keys)) != 0 ||
        (ret = pg_run(be, "rotate", "UPDATE principal SET kvno = $1, modified = $2 WHERE id = $3",
                      PARGS(P_INT(new_kvno), P_INT(now), P_INT(id)), NULL)) != 0 ||
        (ret = pg_run(be, "purge old kvnos",
                      "DELETE FROM key WHERE principal_id = $1 AND kvno NOT IN"
                      " (SELECT DISTINCT kvno FROM key WHERE principal_id = $1"
                      "  ORDER BY kvno DESC LIMIT $2)",
                      PARGS(P_INT(id), P_INT(keep)), NULL)) != 0)
        goto out;
    ret = pg_bump_generation(be, CK_CHANGE_PRINCIPAL, name, NULL);
out:
    return pg_end_write(be, ret);
}

/* ---- the change counter ---- */

int
pg_generation(void *arg, uint64_t *gen)
{
    struct pg_be *be = arg;
    PGresult *r = NULL;
    int64_t v = 0;
    int ret;

    if ((ret = pg_query(be, "generation", "SELECT value FROM generation WHERE id = 1", PNOARGS,
                        &r)) != 0)
        return ret;
    if (PQntuples(r) != 1 || pg_col_int(r, 0, 0, &v) != 0 || v < 0)
        ret = ck_error_set(CK_ERR_DB, "generation row missing");
    else
        *gen = (uint64_t)v;
    PQclear(r);
    return ret;
}

static int
pg_changes_since(void *arg, uint64_t since, uint64_t *current, ck_store_change_cb cb,
                 void *cb_arg)
{
    struct pg_be *be = arg;
    PGresult *r = NULL;
    uint64_t cur = 0, expect;
    int n, ret;

    /* Reading the counter first means every logged change up to it is visible below (each
     * statement takes a fresh snapshot, later than the counter's). */
    if ((ret = pg_generation(be, &cur)) != 0)
        return ret;
    *current = cur;
    if (cur == since)
        return 0;
    if (cur < since || cur - since > PG_CHANGES_MAX) {
        cb(CK_CHANGE_ALL, NULL, cb_arg);
        return 0;
    }
    if ((ret = pg_query(be, "changelog",
                        "SELECT generation, name, kind FROM changelog WHERE generation > $1 AND"
                        " generation <= $2 ORDER BY generation",
                        PARGS(P_INT(since), P_INT(cur)), &r)) != 0)
        return ret;
    n = PQntuples(r);
    expect = since + 1;
    for (int i = 0; i < n; i++, expect++) {
        int64_t kind = pg_col_i64(r, i, 2);

        /* A gap (log trimmed past us), an entry naming nothing, a kind this version does not
         * know: anything may have changed. */
        if ((uint64_t)pg_col_i64(r, i, 0) != expect || pg_col_null(r, i, 1) ||
            (kind != CK_CHANGE_PRINCIPAL && kind != CK_CHANGE_DEVICE)) {
            cb(CK_CHANGE_ALL, NULL, cb_arg);
            goto out;
        }
        cb((enum ck_store_change_kind)kind, PQgetvalue(r, i, 1), cb_arg);
    }
    if ((uint64_t)n != cur - since)
        cb(CK_CHANGE_ALL, NULL, cb_arg);
out:
    PQclear(r);
    return 0;
}

static int
pg_change_fd(void *arg)
{
    struct pg_be *be = arg;

    return PQsocket(be->conn);
}

/* Drains the notifications libpq has read; true if there was one. */
static bool
drain_notifies(struct pg_be *be)
{
    PGnotify *n;
    bool any = false;

    while ((n = PQnotifies(be->conn)) != NULL) {
        any = true;
        PQfreemem(n);
    }
    return any;
}

static int
pg_wait_change(void *arg, int timeout_ms, bool *changed)
{
    struct pg_be *be = arg;
    int64_t deadline = 0, now = 0;
    int32_t usec = 0;

    *changed = false;
    if (be->in_tx)
        return ck_error_set(CK_ERR_INVAL, "wait_change inside a transaction");
    if (PQstatus(be->conn) != CONNECTION_OK) {
        int ret = pg_ready(be, "wait for changes");
        if (ret != 0)
            return ret;
    }
    if (be->missed) {
        be->missed = false;
        *changed = true;
        return 0;
    }
    /* Notifications that arrived with the results of earlier statements are queued already. */
    if (drain_notifies(be)) {
        *changed = true;
        return 0;
    }
    ck_now(&now, &usec);
    deadline = now * 1000 + usec / 1000 + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        struct pollfd pfd = {.fd = PQsocket(be->conn), .events = POLLIN};
        int wait, rc;

        if (pfd.fd < 0)
            return ck_error_set(CK_ERR_DB, "PostgreSQL connection lost");
        ck_now(&now, &usec);
        wait = (int)(deadline - (now * 1000 + usec / 1000));
        rc = poll(&pfd, 1, wait > 0 ? wait : 0);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0)
            return ck_error_set(CK_ERR_IO, "poll: %s", strerror(errno));
        if (rc > 0) {
            if (!PQconsumeInput(be->conn)) {
                /* Lost while waiting: reconnect now, and what was missed counts as a change. */
                int ret;

                ret = pg_reconnect(be, "wait for changes");

                if (ret != 0)
                    return ret;
                be->missed = false;
                *changed = true;
                return 0;
            }
            if (drain_notifies(be)) {
                *changed = true;
                return 0;
            }
            if (PQstatus(be->conn) != CONNECTION_OK) {
                int ret = pg_reconnect(be, "wait for changes");

                if (ret != 0)
                    return ret;
                be->missed = false;
                *changed = true;
                return 0;
            }
        }
        if (wait <= 0)
            return 0;
    }
}

const struct ck_store_ops ck_store_postgresql_ops = {
    .name = "postgresql",
    .open = pg_open,
    .close = pg_close,
    .init_schema = pg_init_schema,
    .load_realm = pg_load_realm,
    .get = pg_get,
    .put = pg_put,
    .del = pg_del,
    .list = pg_list,
    .rotate = pg_rotate,
    .realm_modify = pg_realm_modify,
    .rename = pg_rename,
    .generation = pg_generation,
    .changes_since = pg_changes_since,
    .device_get = pg_device_get,
    .device_add = pg_device_add,
    .device_update = pg_device_update,
    .device_del = pg_device_del,
    .device_list = pg_device_list,
    .device_pin_check = pg_device_pin_check,
    .policy_put = pg_policy_put,
    .policy_get = pg_policy_get,
    .policy_del = pg_policy_del,
    .policy_list = pg_policy_list,
    .set_policy = pg_set_policy,
    .pw_history = pg_pw_history,
    .change_password = pg_change_password,
    .record_auth = pg_record_auth,
    .unlock = pg_unlock,
    .audit_attach = pg_audit_attach,
    .audit_list = pg_audit_list,
    .audit_get_retention = pg_audit_get_retention,
    .audit_set_retention = pg_audit_set_retention,
    /* the alarm table (pg_alarm.c) */
    .alarm_record = pg_alarm_record,
    .alarm_list = pg_alarm_list,
    .alarm_clear = pg_alarm_clear,
    .prov_begin = pg_prov_begin,
    .prov_end = pg_prov_end,
    .prov_bump = pg_prov_bump,
    .prov_audit = pg_prov_audit,
    .prov_exec = pg_prov_exec,
    .prov_query = pg_prov_query,
    .prov_principal_ensure = pg_prov_principal_ensure,
    /* backup, holder, check_db, restore_*: file-level operations of the SQLite backend; a
     * PostgreSQL realm is backed up with `db dump` or the server's own tools. */
    .change_fd = pg_change_fd,
    .wait_change = pg_wait_change,
    .snapshot = pg_snapshot,   /* pg_dump.c */
    .load_dump = pg_load_dump, /* pg_dump.c */
    /* Service-key rotation (k9rot, pg_rotation.c). */
    .rot_policy_put = pg_rot_policy_put,
    .rot_policy_get = pg_rot_policy_get,
    .rot_policy_del = pg_rot_policy_del,
    .rot_pause = pg_rot_pause,
    .rot_policy_list = pg_rot_policy_list,
    .key_stage = pg_key_stage,
    .key_confirm = pg_key_confirm,
    .key_activate = pg_key_activate,
    .key_purge = pg_key_purge,
    .rot_status = pg_rot_status,
    /* Master-key rotation (pg_mkey.c). */
    .mkey_list = pg_mkey_list,
    .mkey_add = pg_mkey_add,
    .mkey_activate = pg_mkey_activate,
    .mkey_count = pg_mkey_count,
    .mkey_reencrypt = pg_mkey_reencrypt,
    .mkey_retire = pg_mkey_retire,
};
