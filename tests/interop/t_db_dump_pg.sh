#!/usr/bin/env bash
# `cablekey db dump` / `db load` between SQLite and PostgreSQL, end to end, on a throw-away
# PostgreSQL server (pg_lib.sh; a missing PostgreSQL is a failure):
#   - a SQLite realm with every kind of record (policy, password history, lockout state from a
#     real failed kinit, several kvnos, devices active/revoked/pinned) dumps, loads into
#     PostgreSQL, and dumps back byte for byte the same (header time, change counter and
#     checksum normalised); PostgreSQL -> a new SQLite file -> the same again;
#   - cablekey-kdc on the loaded PostgreSQL realm serves MIT kinit (password, keytab exported
#     from the SOURCE realm, service ticket), refuses the former password, and sees a password
#     changed by the CLI on PostgreSQL while it runs;
#   - failures, one clear line and nothing half-written (the PostgreSQL database keeps no table):
#     an unknown URI scheme, a login refused (wrong password in PGPASSFILE, unknown user, a
#     password in the URI), a truncated dump, an edited dump (sealed again, so only the
#     database can refuse it), another master key, a target that already holds a realm, a schema
#     of another version (tampered schema_version row: CLI, dump and KDC refuse it);
#     `db backup|restore|check` and `load --replace` on PostgreSQL say what to use instead;
#   - cablekey-admind with --db postgresql://: an add through the admin API lands in
#     PostgreSQL (audit row names the ticket's principal) and the KDC on PostgreSQL serves it.
# Ports: 21600-21699 on 127.0.0.1.
. "$(dirname "$0")/lib.sh"
CK_PG_NO_TRAP=1
. "$CK_INTEROP_DIR/pg_lib.sh"

if is_mit; then
    skip_case "cablekey db dump/load on PostgreSQL" "cablekey-only test"
    done_testing
fi
# The fixture's EXIT trap first (kills the KDC and admind, which hold connections), then the
# server; never from a subshell that inherited the trap.
pgd_cleanup() {
    ck_cleanup
    [ "$BASHPID" = "$CK_MAIN_PID" ] && pg_stop
    return 0
}
trap pgd_cleanup EXIT

require_tool "db dump PostgreSQL test" kinit kvno kdestroy psql curl
pg_start || bail "start a throw-away PostgreSQL server"
ok "throw-away PostgreSQL server started"
PGURI=$CK_PG_URI

# pgd_port: a port of this test's range (21600-21699) free for TCP and UDP on 127.0.0.1.
PGD_NEXT=21600
pgd_port() {
    local p
    while [ "$PGD_NEXT" -le 21699 ]; do
        p=$PGD_NEXT; PGD_NEXT=$((PGD_NEXT + 1))
        if "$CK_PY" - "$p" <<'EOF'
import socket, sys
p = int(sys.argv[1])
for typ in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
    s = socket.socket(socket.AF_INET, typ)
    try:
        s.bind(('127.0.0.1', p))
    except OSError:
        sys.exit(1)
    finally:
        s.close()
EOF
        then echo "$p"; return 0; fi
    done
    return 1
}

# SQL as the test role / as the server's superuser (both passwords in PGPASSFILE).
psql_role() { pg_sql -d "${2:-cablekey}" -c "$1" 2>&1; }
psql_su() { pg_sql -U "$CK_PG_SUPERUSER" -d postgres -c "$1" >/dev/null 2>&1; }
# pgdb_new NAME: a new, empty database owned by the test role; prints its URI.
pgdb_new() {
    psql_su "DROP DATABASE IF EXISTS $1" && psql_su "CREATE DATABASE $1 OWNER cablekey" ||
        bail "create PostgreSQL database $1"
    echo "postgresql:///$1?host=$PGHOST&port=$PGPORT&user=cablekey"
}
# pg_no_tables DESC DBNAME: one case, the database holds no table.
pg_no_tables() {
    local n
    n=$(psql_role "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'" "$2")
    if [ "$n" = 0 ]; then ok "$1"; else not_ok "$1" "tables in $2: $n"; fi
}

cli_ok() {
    local desc=$1 rc; shift
    timeout 60 "$CK_CLI" "$@" </dev/null >"$tmp/cli.out" 2>"$tmp/cli.err"; rc=$?
    if [ $rc = 0 ]; then ok "$desc"; return 0; fi
    not_ok "$desc" "exit $rc: $(head -n 5 "$tmp/cli.err")"
    return 1
}
# cli_fails DESC PATTERN args... : exit 1 and exactly one stderr line matching PATTERN.
cli_fails() {
    local desc=$1 pat=$2 rc lines; shift 2
    timeout 60 "$CK_CLI" "$@" </dev/null >"$tmp/cli.out" 2>"$tmp/cli.err"; rc=$?
    lines=$(wc -l <"$tmp/cli.err")
    if [ "$rc" = 1 ] && [ "$lines" = 1 ] && grep -Eq -- "$pat" "$tmp/cli.err"; then
        ok "$desc ($(head -n 1 "$tmp/cli.err"))"
    else
        not_ok "$desc" "exit $rc, $lines stderr lines: $(head -n 5 "$tmp/cli.err")"
    fi
}
cli() { timeout 60 "$CK_CLI" "$@" </dev/null >/dev/null 2>"$tmp/setup.err" ||
    bail "setup: cablekey $*" "$(cat "$tmp/setup.err")"; }
# normalised FILE: the dump with the header's time and change counter and the trailer's
# checksum (which covers the header) blanked: what must be equal byte for byte.
normalised() {
    sed -e '1s/ created=[0-9]* generation=[0-9]*$/ created=T generation=G/' \
        -e '$s/ sha256=[0-9a-f]*$/ sha256=S/' "$1"
}
# reseal FILE: recomputes the trailer's SHA-256 over every line before it.
reseal() {
    local sum
    sum=$(head -n -1 "$1" | sha256sum | cut -d' ' -f1)
    sed -i "\$s/ sha256=[0-9a-f]*\$/ sha256=$sum/" "$1"
}

# --- a SQLite realm with every kind of record -----------------------------------------------
realm_init DUMP.TEST
PORT=$(pgd_port) || bail "a port for the KDC"
CK_LISTEN=("127.0.0.1:$PORT")
write_krb5_conf "$KRB5_CONFIG" "127.0.0.1:$PORT"
SQLDB=$DB
PW1='Alice-First-Pw-1'
PW2='Alice-Second-Pw-2'
cli policy add --db "$DB" users --min-length 8 --history 3 --max-failure 5 \
    --failure-interval 10m
realm_addprinc alice "$PW1"
cli principal modify --db "$DB" alice --policy users
cli principal rotate --db "$DB" alice --password "$PW2"
realm_addprinc bob 'Bob-Pw-12345'
cli principal unlock --db "$DB" bob
realm_addprinc host/svc.dump.test --random
realm_rotate host/svc.dump.test --random
realm_addprinc joe/admin 'Joe-Admin-Pw-1'
realm_addprinc HTTP/localhost --random
cli principal add --db "$DB" mta1 --random
cli device add --db "$DB" --mac 00:11:22:aa:bb:01 --principal mta1 --comment "lab device 1"
cli device add --db "$DB" --mac 00:11:22:aa:bb:02 --principal mta1 \
    --spki-sha256 "$(printf '%064d' 7)"
cli device revoke --db "$DB" --mac 00:11:22:aa:bb:02
realm_ktexport "$tmp/svc.keytab" host/svc.dump.test
realm_ktexport "$tmp/http.keytab" HTTP/localhost
# A real failed preauthentication: lockout state recorded by the KDC.
realm_start_kdc
kinit_pw "alice@$REALM" 'Wrong-Password-9' >/dev/null 2>&1
realm_stop_kdc
ok "SQLite realm built (policy, history, lockout, kvnos, devices)"

# --- SQLite -> PostgreSQL ---------------------------------------------------------------------
cli_ok "db dump of the SQLite realm" db dump --db "$SQLDB" --out "$tmp/sqlite.dump"
if grep -q '^lockout fail-count=1 ' "$tmp/sqlite.dump" && grep -q '^history ' "$tmp/sqlite.dump" &&
    grep -q '^device mac=00:11:22:aa:bb:02 .* state=2 pin=0\{63\}7 ' "$tmp/sqlite.dump"; then
    ok "the dump holds the failed kinit's lockout, the history, the pinned revoked device"
else not_ok "the dump holds lockout, history, pinned device" "$(grep -E '^(lockout|history|device)' "$tmp/sqlite.dump")"; fi
cli_fails "load into PostgreSQL without --stash names the option" "no default stash file.*--stash" \
    db load --db "$PGURI" "$tmp/sqlite.dump"
cli_ok "db load into PostgreSQL" db load --db "$PGURI" --stash "$STASH" "$tmp/sqlite.dump"
assert_file_grep "load says what it loaded" \
    "Loaded realm DUMP.TEST from .* into postgresql:///cablekey.* 1 policies, 9 principals, .* 2 devices" \
    "$tmp/cli.out"
cli_ok "db dump of the PostgreSQL realm" db dump --db "$PGURI" --stash "$STASH" \
    --out "$tmp/pg.dump"
if cmp -s <(normalised "$tmp/sqlite.dump") <(normalised "$tmp/pg.dump"); then
    ok "SQLite dump and PostgreSQL dump are the same byte for byte (header time normalised)"
else not_ok "SQLite and PostgreSQL dumps are the same" "$(diff <(normalised "$tmp/sqlite.dump") <(normalised "$tmp/pg.dump") | head -n 20)"; fi
expect_output "the audit log on PostgreSQL holds the creation and the load" \
    "db\.load" "$CK_CLI" audit list --db "$PGURI" --stash "$STASH"
mkdir -p "$tmp/back"
cp "$STASH" "$tmp/back/kdc.db.stash"
cli_ok "PostgreSQL dump -> a new SQLite file" db load --db "$tmp/back/kdc.db" "$tmp/pg.dump"
cli_ok "dump of that SQLite file" db dump --db "$tmp/back/kdc.db" --out "$tmp/back.dump"
if cmp -s <(normalised "$tmp/back.dump") <(normalised "$tmp/sqlite.dump"); then
    ok "SQLite -> PostgreSQL -> SQLite gives the same records"
else not_ok "SQLite -> PostgreSQL -> SQLite gives the same records" "$(diff <(normalised "$tmp/sqlite.dump") <(normalised "$tmp/back.dump") | head -n 20)"; fi
cli_ok "the SQLite copy passes db check (every key decrypts)" db check --db "$tmp/back/kdc.db"

# --- the KDC on the loaded PostgreSQL realm ---------------------------------------------------
DB=$PGURI
realm_start_kdc
rm -f "$tmp/ccache"
expect_success "MIT kinit (current password) against the KDC on PostgreSQL" \
    kinit_pw "alice@$REALM" "$PW2"
expect_success "MIT kvno for the service from the PostgreSQL realm" \
    timeout 30 kvno "host/svc.dump.test@$REALM"
expect_success "MIT kinit -k with a keytab exported from the SOURCE (SQLite) realm" \
    timeout 30 kinit -k -t "$tmp/svc.keytab" "host/svc.dump.test@$REALM"
expect_failure "the former password does not work on the PostgreSQL realm" \
    "Password incorrect|reauthentication failed" kinit_pw "alice@$REALM" "$PW1"
cli_fails "the policy's password history came along" "used before" \
    principal rotate --db "$PGURI" --stash "$STASH" alice --password "$PW1"
cli_ok "change bob's password on PostgreSQL while the KDC runs" \
    principal rotate --db "$PGURI" --stash "$STASH" bob --password 'Bob-New-Pw-678'
seen=0
for _ in $(seq 1 50); do
    if kinit_pw "bob@$REALM" 'Bob-New-Pw-678' >/dev/null 2>&1; then seen=1; break; fi
    sleep 0.1
done
[ $seen = 1 ] && ok "the running KDC serves the password changed on PostgreSQL" ||
    not_ok "the running KDC serves the password changed on PostgreSQL" "$(tail -n 5 "$tmp/kdc.log")"

# --- cablekey-admind on PostgreSQL -------------------------------------------------------------
CK_ADMIND="$CK_BUILD/cablekey-admind"
[ -x "$CK_ADMIND" ] || bail "cablekey-admind not built at $CK_ADMIND"
APORT=$(pgd_port) || bail "a port for cablekey-admind"
echo "    localhost = $REALM" >>"$KRB5_CONFIG"
printf 'joe/admin@DUMP.TEST   *\n' >"$tmp/admind.acl"
cat >"$tmp/admind.conf" <<EOF
[admind]
    realm = $REALM
    database = sqlite:$tmp/not-this.db
    stash = $STASH
    keytab = $tmp/http.keytab
    acl_file = $tmp/admind.acl
    log = FILE:$tmp/admind.log
    pid_file = $tmp/admind.pid
    listen = 127.0.0.1:$APORT
EOF
expect_output "admind --check with --db postgresql:// (no password in it)" \
    "^database: postgresql:///cablekey" "$CK_ADMIND" --check -c "$tmp/admind.conf" --db "$PGURI"
"$CK_ADMIND" -c "$tmp/admind.conf" --db "$PGURI" >"$tmp/admind.out" 2>&1 </dev/null &
ADMIND_PID=$!
CK_BG_PIDS+=("$ADMIND_PID")
up=0
for _ in $(seq 1 100); do
    [ -s "$tmp/admind.pid" ] && ck_tcp_probe "127.0.0.1:$APORT" && { up=1; break; }
    kill -0 "$ADMIND_PID" 2>/dev/null || break
    sleep 0.1
done
[ $up = 1 ] || bail "cablekey-admind on PostgreSQL did not start" "$(cat "$tmp/admind.out" "$tmp/admind.log" 2>/dev/null)"
ok "cablekey-admind started on PostgreSQL"
api() { # api METHOD PATH [BODY]: sets CODE, body in $tmp/api.body
    local m=$1 p=$2 args=()
    [ $# -ge 3 ] && args=(-H 'Content-Type: application/json' --data-binary "$3")
    CODE=$(timeout -k 5 "$CK_TIMEOUT" curl -sS --negotiate -u : \
        --resolve "localhost:$APORT:127.0.0.1" -X "$m" -o "$tmp/api.body" \
        -w '%{http_code}' "${args[@]}" "http://localhost:$APORT$p" 2>"$tmp/api.err")
}
kdestroy >/dev/null 2>&1
kinit_pw joe/admin 'Joe-Admin-Pw-1' >/dev/null 2>&1 || bail "kinit joe/admin on the PostgreSQL realm"
api GET /v1/realm
[ "$CODE" = 200 ] && grep -q '"name":"DUMP.TEST"' "$tmp/api.body" &&
    ok "admind: GET /v1/realm from PostgreSQL" ||
    not_ok "admind: GET /v1/realm from PostgreSQL" "HTTP $CODE $(cat "$tmp/api.body" "$tmp/api.err")"
api POST /v1/principals/carol '{"password":"Carol-Pw-4321"}'
[ "$CODE" = 201 ] && ok "admind: add carol (into PostgreSQL)" ||
    not_ok "admind: add carol" "HTTP $CODE $(cat "$tmp/api.body" "$tmp/api.err")"
expect_output "carol is in the PostgreSQL realm, added by joe/admin (audit)" \
    "joe/admin@DUMP\.TEST[[:space:]]+principal\.add[[:space:]]+carol@DUMP\.TEST" \
    "$CK_CLI" audit list --db "$PGURI" --stash "$STASH" --principal carol
seen=0
for _ in $(seq 1 50); do
    if kinit_pw "carol@$REALM" 'Carol-Pw-4321' -c "$tmp/carol.cc" >/dev/null 2>&1; then seen=1; break; fi
    sleep 0.1
done
[ $seen = 1 ] && ok "MIT kinit carol through the KDC on PostgreSQL" ||
    not_ok "MIT kinit carol through the KDC on PostgreSQL" "$(tail -n 5 "$tmp/kdc.log")"
api GET /v1/principals
grep -q '"carol@DUMP.TEST"' "$tmp/api.body" && ok "admind: list shows carol" ||
    not_ok "admind: list shows carol" "HTTP $CODE $(cat "$tmp/api.body")"
kill -TERM "$ADMIND_PID" 2>/dev/null
wait "$ADMIND_PID"; rc=$?
[ $rc = 0 ] && ok "cablekey-admind stops cleanly" || not_ok "cablekey-admind stops cleanly" "exit $rc"
kdc_alive "the KDC on PostgreSQL is still running"
realm_stop_kdc

# --- failures: one clear line, nothing half-written -------------------------------------------
NEWURI=$(pgdb_new ckload)
cli_fails "unknown URI scheme" 'unknown database scheme "mysql"' \
    db load --db "mysql://db.example/kdc" --stash "$STASH" "$tmp/sqlite.dump"
cli_fails "a password in the URI is refused" "PGPASSFILE" \
    db load --db "postgresql://cablekey:s3cret@localhost/ckload" --stash "$STASH" "$tmp/sqlite.dump"
cli_fails "PostgreSQL refuses the login (wrong password in the password file)" \
    "refused login for user ck_wrongpw: password authentication failed" \
    db load --db "${NEWURI/user=cablekey/user=ck_wrongpw}" --stash "$STASH" "$tmp/sqlite.dump"
printf '*:*:*:cablekey:not-the-password\n' >"$tmp/bad.pgpass"; chmod 600 "$tmp/bad.pgpass"
PGPASSFILE="$tmp/bad.pgpass" cli_fails "PostgreSQL refuses the login (PGPASSFILE with a wrong password)" \
    "refused login for user cablekey" db load --db "$NEWURI" --stash "$STASH" "$tmp/sqlite.dump"
cli_fails "PostgreSQL refuses the login (unknown user)" "refused login for user ck_nosuchuser" \
    db load --db "${NEWURI/user=cablekey/user=ck_nosuchuser}" --stash "$STASH" "$tmp/sqlite.dump"
head -n 8 "$tmp/sqlite.dump" >"$tmp/trunc.dump"
cli_fails "a truncated dump is refused" "line 9: the dump is truncated" \
    db load --db "$NEWURI" --stash "$STASH" "$tmp/trunc.dump"
sed 's/^\(principal name=mta1@DUMP.TEST attributes=\)128/\10/' "$tmp/sqlite.dump" >"$tmp/edit.dump"
cmp -s "$tmp/edit.dump" "$tmp/sqlite.dump" && bail "the edit did not change the dump"
cli_fails "an edited dump is refused" "SHA-256 mismatch" \
    db load --db "$NEWURI" --stash "$STASH" "$tmp/edit.dump"
# Sealed again: the file is self-consistent, only the database can see the policy is missing.
sed 's/ policy=users / policy=ghost /' "$tmp/sqlite.dump" >"$tmp/ghost.dump"
reseal "$tmp/ghost.dump"
cli_fails "an edited, re-sealed dump refused by PostgreSQL inside the load's transaction" \
    "refused by the database .*foreign key.*nothing was loaded" \
    db load --db "$NEWURI" --stash "$STASH" "$tmp/ghost.dump"
timeout 30 "$CK_CLI" init --db "$tmp/other.db" --realm DUMP.TEST >/dev/null 2>&1 </dev/null ||
    bail "init other realm"
cli_fails "a dump under another master key is refused" "does not hold the master key" \
    db load --db "$NEWURI" --stash "$tmp/other.db.stash" "$tmp/sqlite.dump"
pg_no_tables "every refused load left no table in PostgreSQL" ckload
cli db dump --db "$PGURI" --stash "$STASH" --out "$tmp/pg-before.dump"
cli_fails "a load into a database that holds a realm is refused" \
    "already holds a cablekey realm: a dump loads into a new database only" \
    db load --db "$PGURI" --stash "$STASH" "$tmp/sqlite.dump"
cli_ok "the refused target still dumps" db dump --db "$PGURI" --stash "$STASH" \
    --out "$tmp/pg-after.dump"
if cmp -s <(normalised "$tmp/pg-before.dump") <(normalised "$tmp/pg-after.dump"); then
    ok "the existing realm was untouched (same dump before and after)"
else not_ok "the existing realm was untouched" "$(diff "$tmp/pg-before.dump" "$tmp/pg-after.dump" | head)"; fi

# A schema of another version.
cli_ok "load into the new database" db load --db "$NEWURI" --stash "$STASH" "$tmp/sqlite.dump"
psql_role "UPDATE schema_version SET version = 99" ckload >/dev/null
cli_fails "db dump refuses a schema of another version" \
    "schema version 99, this cablekey knows version 2 only" \
    db dump --db "$NEWURI" --stash "$STASH" --out "$tmp/v99.dump"
cli_fails "principal list refuses it too" "schema version 99" \
    principal list --db "$NEWURI" --stash "$STASH"
expect_failure "cablekey-kdc refuses to serve it" "schema version 99" \
    timeout 20 "$CK_KDC" --listen "127.0.0.1:$PORT" --db "$NEWURI" --stash "$STASH" --log stderr
cli_fails "a load over it is refused" "already holds a cablekey realm" \
    db load --db "$NEWURI" --stash "$STASH" "$tmp/sqlite.dump"
if [ "$(psql_role "SELECT count(*) FROM principal" ckload)" = 9 ]; then ok "the tampered database was not written"
else not_ok "the tampered database was not written" "$(psql_role "SELECT count(*) FROM principal" ckload)"; fi

# What to use instead.
cli_fails "db backup on PostgreSQL names db dump" "not available for a postgresql database: use 'cablekey db dump" \
    db backup --db "$PGURI" "$tmp/x.bak"
cli_fails "db restore on PostgreSQL names db load" "not available for a postgresql database: load a dump .*db load" \
    db restore --db "$PGURI" --stash "$STASH" "$tmp/back/kdc.db"
cli_fails "db check on PostgreSQL says what checks it" "not available for a postgresql database: .*db dump" \
    db check --db "$PGURI" --stash "$STASH"
cli_fails "load --replace on PostgreSQL says what to do instead" \
    "works on an SQLite file only.*new, empty database" \
    db load --db "$PGURI" --stash "$STASH" --replace "$tmp/sqlite.dump"
if [ ! -e "$tmp/x.bak" ]; then ok "no backup file was written"; else not_ok "no backup file was written"; fi
done_testing
