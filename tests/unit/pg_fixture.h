/* The PostgreSQL mode of the store-using unit tests (k9pgdump). With CK_STORE_FIXTURE=postgresql
 * and CK_PG_URI in the environment (interop/pg_run.sh sets the latter; tests/interop/t_unit_pg.sh
 * runs the suites and cases that make sense so), a test's realm goes into the throw-away
 * server's database instead of a SQLite file. PostgreSQL has no stash beside the database, so
 * a test that wants to run both ways names its stash explicitly (for SQLite the same file as
 * the default, DB.stash). Include after ck_test.h. */
#ifndef CK_PG_FIXTURE_H
#define CK_PG_FIXTURE_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "cablekey/util.h"

static inline bool
ck_test_store_pg(void)
{
    const char *m = getenv("CK_STORE_FIXTURE");

    return m != NULL && strcmp(m, "postgresql") == 0;
}

/* Drops every table of the test database (the role owns it, hence its public schema). */
static inline void
ck_test_store_pg_reset(void)
{
    PGconn *c = PQconnectdb("");
    PGresult *r = NULL;
    bool ok = false;

    if (PQstatus(c) == CONNECTION_OK) {
        r = PQexec(c, "SET client_min_messages = warning; DROP SCHEMA public CASCADE;"
                      " CREATE SCHEMA public");
        ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    }
    if (!ok) {
        fprintf(stderr, "  pg fixture: cannot empty the PostgreSQL database: %s",
                PQerrorMessage(c));
        abort();
    }
    PQclear(r);
    PQfinish(c);
}

/* In PostgreSQL mode: empties the database and puts its URI into db (size bytes); otherwise
 * leaves db (a file path) alone. */
static inline void
ck_test_store_location(char *db, size_t size)
{
    const char *uri = getenv("CK_PG_URI");

    if (!ck_test_store_pg())
        return;
    if (uri == NULL || strlen(uri) >= size) {
        fprintf(stderr, "  pg fixture: CK_STORE_FIXTURE=postgresql needs CK_PG_URI (at most "
                        "%zu bytes; interop/pg_run.sh)\n", size - 1);
        abort();
    }
    ck_test_store_pg_reset();
    ck_strlcpy(db, uri, size);
}

#endif
