#!/usr/bin/env bash
# The store-using unit suites again, on PostgreSQL (test_store, test_policy, test_admin_back,
# test_kdc, test_kpasswd): each listed case of each suite runs with the
# realm in a throw-away PostgreSQL server instead of a SQLite file (store_fixture.h's
# CK_STORE_FIXTURE=postgresql; CK_TEST_CASES selects the cases, and a name that is no case of
# the suite fails). One TAP line per suite; the suite's own lines in the diagnostics on failure.
#
# Left out, because they reach into the SQLite file itself (raw SQL on the file, file modes,
# the WAL, SQLite schema migrations, SQLITE_BUSY) or use a SQLite-only operation (backup,
# restore, check): test_store's uri_open, init_realm, no_plaintext_keys, key_binding,
# device_hostile, schema_migration; test_policy's rename_keeps_history (ends with db check),
# migration_2_to_3, busy_database; test_audit (reads the audit table with sqlite3);
# test_store_maint; test_kdc_pkinit (its setup names no stash yet: three config sites to change).
# The PostgreSQL backend's own cases are in test_store_conformance and
# test_store_dump (which start their own server).
. "$(dirname "$0")/lib.sh"
CK_PG_NO_TRAP=1
. "$CK_INTEROP_DIR/pg_lib.sh"
tup_cleanup() {
    ck_cleanup
    [ "$BASHPID" = "$CK_MAIN_PID" ] && pg_stop
    return 0
}
trap tup_cleanup EXIT

pg_start || bail "start a throw-away PostgreSQL server"
ok "throw-away PostgreSQL server started"

# suite_on_pg SUITE [CASE,CASE...]: the listed cases (none listed: every case).
suite_on_pg() {
    local suite=$1 cases=${2:-} bin="$CK_BUILD/$1" rc want
    [ -x "$bin" ] || { not_ok "$suite on PostgreSQL" "$bin not built"; return; }
    if [ -n "$cases" ]; then
        want=$(tr ',' '\n' <<<"$cases" | wc -l)
        (cd "$CK_INTEROP_DIR/.." && CK_STORE_FIXTURE=postgresql CK_TEST_CASES="$cases" \
            timeout -k 5 600 "$bin") >"$tmp/$suite.out" 2>&1
    else
        (cd "$CK_INTEROP_DIR/.." && CK_STORE_FIXTURE=postgresql timeout -k 5 600 "$bin") \
            >"$tmp/$suite.out" 2>&1
    fi
    rc=$?
    [ -n "$cases" ] || want=$(grep -c '^ok ' "$tmp/$suite.out")
    if [ $rc = 0 ] && [ "$want" -gt 0 ] && grep -q "^$want passed, 0 failed$" "$tmp/$suite.out"; then
        ok "$suite on PostgreSQL: $want cases"
    else
        not_ok "$suite on PostgreSQL" "exit $rc
$(grep -v '^ok ' "$tmp/$suite.out" | tail -n 30)"
    fi
}

suite_on_pg test_store \
    stash_checks,principal_crud,rotation,cache,device_crud,device_pin_tofu,device_pin_race,device_revocation_live,rename_and_realm,wal_checkpoint
suite_on_pg test_policy \
    policy_crud,policy_change_reaches_caches,password_change,lockout_and_duration,interval_reset,admin_unlock,batching_bound,lockout_disabled
suite_on_pg test_admin_back
suite_on_pg test_kdc
suite_on_pg test_kpasswd
done_testing
