#!/usr/bin/env bash
# tests/interop/t_pg_lib.sh — the throw-away PostgreSQL fixture (pg_lib.sh) itself: it starts,
# answers on its private socket only, keeps the password in a 0600 file, refuses a wrong
# password, and leaves nothing behind. A missing PostgreSQL is a failure.
set -uo pipefail
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/pg_lib.sh"
n=0; fail=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); fail=$((fail + 1)); echo "not ok $n - $1"; }
check() { local d="$1"; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }

CK_PG_NO_TRAP=1
if ! pg_start; then
    not_ok "start a throw-away PostgreSQL server"
    pg_stop
    echo "$((n - fail)) passed, $fail failed"; exit 1
fi
ok "start a throw-away PostgreSQL server"
check "the test role logs in with the password file" \
    test "$(pg_sql -c 'SELECT current_user' 2>&1)" = cablekey
check "PGPASSFILE is mode 0600" test "$(stat -c %a "$PGPASSFILE")" = 600
check "the server listens on no TCP address" \
    test -z "$(pg_sql -c "SELECT setting FROM pg_settings WHERE name = 'listen_addresses'")"
check "the socket is in the private directory" test -S "$PGHOST/.s.PGSQL.$PGPORT"
check "a wrong password is refused" \
    bash -c '! psql -X -U ck_wrongpw -c "SELECT 1" >/dev/null 2>&1'
check "the server runs as an unprivileged user" \
    test "$(pg_sql -U "$CK_PG_SUPERUSER" -d postgres -c "SELECT 1")" = 1 -a \
         "$(stat -c %U "$CK_PG_DIR/data")" != root
dir="$CK_PG_DIR"
pg_stop
check "stop removes the directory" test ! -e "$dir"
echo "$((n - fail)) passed, $fail failed"
[ "$fail" = 0 ]
