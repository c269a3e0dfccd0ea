#!/usr/bin/env bash
# tests/interop/pg_run.sh CMD [ARGS...] — runs CMD with a throw-away PostgreSQL server of its own
# (pg_lib.sh): PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSFILE and CK_PG_URI are set for it, and
# the server is stopped and removed when CMD ends. Exit status: CMD's, or 1 if no server could be
# started (a missing PostgreSQL is a failure, never a skip). The C unit tests that need a server
# re-execute themselves through this script (tests/unit/pg_fixture.h).
set -uo pipefail
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/pg_lib.sh"
if [ $# -lt 1 ]; then
    echo "usage: pg_run.sh CMD [ARGS...]" >&2
    exit 2
fi
if ! pg_start; then
    echo "not ok 1 - start a throw-away PostgreSQL server"
    pg_stop
    exit 1
fi
"$@"
rc=$?
pg_stop
trap - EXIT
exit "$rc"
