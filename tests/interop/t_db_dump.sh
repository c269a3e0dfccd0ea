#!/usr/bin/env bash
# `cablekey db dump` / `db load` end to end (format: docs/dump-format.md):
#   - a realm with a policy, password history, a locked-out-then-unlocked principal, service
#     principals with several kvnos and devices (active, revoked, pinned) dumps to text that
#     holds no clear key, is mode 0600, and loads into a new database that `db check` passes;
#   - dumping the loaded database gives the same text but for the header and the checksum;
#   - cablekey-kdc serving the LOADED database issues tickets to MIT kinit (password and
#     keytab exported from the SOURCE realm), and the policy still refuses a former password;
#   - a truncated dump, an edited byte, a wrong stash and an existing target are refused with one
#     clear line, exit 1, and no database left behind;
#   - `load --replace --force` replaces the realm under the running KDC, which serves the
#     dump's state at once.
. "$(dirname "$0")/lib.sh"

if is_mit; then
    skip_case "cablekey db dump/load" "cablekey-only test"
    done_testing
fi
require_tool "db dump test" kinit klist kvno cmp
realm_init DUMP.TEST
PW1='Alice-First-Pw-1'
PW2='Alice-Second-Pw-2'

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

# --- a realm with every kind of record ------------------------------------------------------
cli policy add --db "$DB" users --min-length 8 --history 3 --max-failure 5 \
    --failure-interval 10m
realm_addprinc alice "$PW1"
cli principal modify --db "$DB" alice --policy users
cli principal rotate --db "$DB" alice --password "$PW2"
cli principal unlock --db "$DB" alice
realm_addprinc host/svc.dump.test --random
realm_rotate host/svc.dump.test --random
cli principal add --db "$DB" mta1 --random
cli device add --db "$DB" --mac 00:11:22:aa:bb:01 --principal mta1 --comment "lab device 1"
cli device add --db "$DB" --mac 00:11:22:aa:bb:02 --principal mta1 \
    --spki-sha256 "$(printf '%064d' 7)"
cli device revoke --db "$DB" --mac 00:11:22:aa:bb:02
realm_ktexport "$tmp/svc.keytab" host/svc.dump.test

# --- dump -----------------------------------------------------------------------------------
cli_ok "db dump --out" db dump --db "$DB" --out "$tmp/realm.dump"
if [ "$(stat -c %a "$tmp/realm.dump")" = 600 ]; then ok "the dump file is mode 0600"
else not_ok "the dump file is mode 0600" "mode $(stat -c %a "$tmp/realm.dump")"; fi
if head -n 1 "$tmp/realm.dump" | grep -q '^cablekey-dump version=2 realm=DUMP.TEST ' &&
    tail -n 1 "$tmp/realm.dump" | grep -Eq '^end policies=1 principals=6 keys=[0-9]+ lockouts=1 history=1 devices=2 prov=0 sha256=[0-9a-f]{64}$'; then
    ok "header and trailer: version, realm, counts, SHA-256"
else
    not_ok "header and trailer" "$(head -n 1 "$tmp/realm.dump"; tail -n 1 "$tmp/realm.dump")"
fi
# No clear key: the exported keytab's key bytes appear nowhere in the dump.
leak=0
while read -r k; do
    grep -qi -- "$k" "$tmp/realm.dump" && leak=1
done < <(klist -kK "$tmp/svc.keytab" | sed -n 's/.*(0x\([0-9a-f]*\)).*/\1/p')
if [ $leak = 0 ] && [ -n "$(klist -kK "$tmp/svc.keytab" | sed -n 's/.*(0x\([0-9a-f]*\)).*/\1/p')" ]; then
    ok "no clear service key in the dump"
else not_ok "no clear service key in the dump" "a keytab key appears in the dump"; fi
cli_ok "db dump to stdout" db dump --db "$DB"
if cmp -s <(sed '1d;$d' "$tmp/cli.out") <(sed '1d;$d' "$tmp/realm.dump"); then
    ok "stdout and --out give the same records"
else not_ok "stdout and --out give the same records" "$(diff <(sed '1d;$d' "$tmp/cli.out") <(sed '1d;$d' "$tmp/realm.dump") | head)"; fi

# --- refusals: nothing left behind ------------------------------------------------------------
mkdir -p "$tmp/new"
NDB="$tmp/new/kdc.db"
NSTASH="$tmp/new/kdc.db.stash"
cli_fails "load without the source's stash is refused" "stash .*No such file" \
    db load --db "$NDB" "$tmp/realm.dump"
timeout 30 "$CK_CLI" init --db "$tmp/other.db" --realm DUMP.TEST >/dev/null 2>&1 ||
    bail "init other realm"
cp "$tmp/other.db.stash" "$NSTASH"; chmod 600 "$NSTASH"
cli_fails "load with another master key is refused" "does not hold the master key" \
    db load --db "$NDB" "$tmp/realm.dump"
cp "$STASH" "$NSTASH"; chmod 600 "$NSTASH"
head -n 8 "$tmp/realm.dump" >"$tmp/trunc.dump"
cli_fails "a truncated dump is refused" "line 9: the dump is truncated" \
    db load --db "$NDB" "$tmp/trunc.dump"
sed 's/^\(principal name=mta1@DUMP.TEST attributes=\)128/\10/' "$tmp/realm.dump" >"$tmp/edit.dump"
cmp -s "$tmp/edit.dump" "$tmp/realm.dump" && bail "the edit did not change the dump"
cli_fails "an edited dump is refused" "SHA-256 mismatch" db load --db "$NDB" "$tmp/edit.dump"
sed '1s/version=2/version=7/' "$tmp/realm.dump" >"$tmp/ver.dump"
cli_fails "a newer format version is refused" "format version 7" \
    db load --db "$NDB" "$tmp/ver.dump"
if [ ! -e "$NDB" ] && [ ! -e "$NDB-wal" ]; then ok "refused loads created no database"
else not_ok "refused loads created no database" "$(ls -la "$tmp/new")"; fi
cli_fails "load onto an existing database is refused" "already exists" \
    db load --db "$DB" "$tmp/realm.dump"

# --- load, check, dump again ------------------------------------------------------------------
cli_ok "db load into a new database" db load --db "$NDB" "$tmp/realm.dump"
assert_file_grep "load says what it loaded" \
    "Loaded realm DUMP.TEST .* 1 policies, 6 principals, .* 1 history keys, 2 devices" \
    "$tmp/cli.out"
cli_ok "the loaded database passes db check" db check --db "$NDB"
cli_ok "dump of the loaded database" db dump --db "$NDB" --out "$tmp/again.dump"
if cmp -s <(sed '1d;$d' "$tmp/again.dump") <(sed '1d;$d' "$tmp/realm.dump"); then
    ok "dump -> load -> dump gives the same records"
else not_ok "dump -> load -> dump gives the same records" "$(diff "$tmp/realm.dump" "$tmp/again.dump" | head)"; fi
cli_ok "audit list of the loaded database" audit list --db "$NDB"
assert_file_grep "the load is in the new database's audit log" "db.load" "$tmp/cli.out"

# --- serve the loaded database to MIT clients -------------------------------------------------
DB=$NDB STASH=$NSTASH
realm_start_kdc
rm -f "$tmp/ccache"
expect_success "MIT kinit with the current password against the loaded realm" \
    kinit_pw "alice@$REALM" "$PW2"
expect_success "MIT kvno for the service (its current kvno) from the loaded realm" \
    timeout 30 kvno "host/svc.dump.test@$REALM"
expect_success "MIT kinit -k with a keytab exported from the SOURCE realm" \
    timeout 30 kinit -k -t "$tmp/svc.keytab" "host/svc.dump.test@$REALM"
expect_failure "the former password does not work on the loaded realm" \
    "Password incorrect|preauthentication failed|Preauthentication failed" \
    kinit_pw "alice@$REALM" "$PW1"
cli_fails "the policy's password history came along" "used before" \
    principal rotate --db "$NDB" alice --password "$PW1"

# --- load --replace into the live database while the KDC serves it --------------------------
cli principal add --db "$NDB" late --random
cli principal rotate --db "$NDB" alice --password 'Alice-Third-Pw-3'
cli_fails "load --replace is refused while the KDC has the database open" "in use by process" \
    db load --db "$NDB" --replace "$tmp/realm.dump"
cli_ok "load --replace --force into the served database" \
    db load --db "$NDB" --replace --force "$tmp/realm.dump"
cli_ok "dump after the replace" db dump --db "$NDB" --out "$tmp/replaced.dump"
if cmp -s <(sed '1d;$d' "$tmp/replaced.dump") <(sed '1d;$d' "$tmp/realm.dump"); then
    ok "after --replace the realm is the dump's (the later principal and password are gone)"
else not_ok "after --replace the realm is the dump's" "$(diff "$tmp/realm.dump" "$tmp/replaced.dump" | head)"; fi
rm -f "$tmp/ccache"
expect_success "the running KDC serves the replaced realm: the dump's password works" \
    kinit_pw "alice@$REALM" "$PW2"
if ls "$tmp/new" | grep -q 'load-'; then not_ok "no temporary database left" "$(ls "$tmp/new")"
else ok "no temporary database left"; fi
kdc_alive "KDC on the loaded database still running"
realm_stop_kdc
done_testing
