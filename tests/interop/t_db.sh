#!/usr/bin/env bash
# `cablekey db backup|restore|check` and `cablekey audit` end to end, with real tools:
#   - backups taken while cablekey-kdc serves a kinit loop and the CLI changes principals in
#     another loop all succeed, pass `db check`, and one of them restores into a new path to a
#     realm identical to the backup (every principal record, every key, every device), on which
#     a fresh KDC issues tickets to MIT kinit;
#   - a restore into the live database is refused while the KDC has it open, and with --force
#     the running KDC serves the restored realm (old password works again, new one fails)
#     without a restart;
#   - `db check` says OK on a good database and exits 1 with a clear line on a damaged one;
#   - `audit list` shows the CLI's changes with the OS user as the actor.
. "$(dirname "$0")/lib.sh"

if is_mit; then
    skip_case "cablekey db and audit CLI" "cablekey-only test"
    done_testing
fi
require_tool "db test" kinit klist sqlite3 cmp
realm_init DB.TEST
PW1='Alice-First-Pw-1'
PW2='Alice-Second-Pw-2'
ME="uid $(id -u) ($(id -un))"

# cli DESC args... : exit 0 and nothing on stderr; stdout in $tmp/cli.out.
cli_ok() {
    local desc=$1 rc; shift
    timeout 60 "$CK_CLI" "$@" </dev/null >"$tmp/cli.out" 2>"$tmp/cli.err"; rc=$?
    if [ $rc = 0 ] && [ ! -s "$tmp/cli.err" ]; then ok "$desc"; return 0; fi
    not_ok "$desc" "exit $rc: $(head -n 5 "$tmp/cli.err")"
    return 1
}
# cli_fails DESC EXIT PATTERN args... : that exit code and one stderr line matching PATTERN
# (db check prints one line per problem, so it passes MIN_LINES through CLI_LINES).
cli_fails() {
    local desc=$1 want=$2 pat=$3 rc lines; shift 3
    timeout 60 "$CK_CLI" "$@" </dev/null >"$tmp/cli.out" 2>"$tmp/cli.err"; rc=$?
    lines=$(wc -l <"$tmp/cli.err")
    if [ "$rc" = "$want" ] && [ "$lines" -ge 1 ] && [ "$lines" -le "${CLI_LINES:-1}" ] &&
        grep -Eq -- "$pat" "$tmp/cli.err"; then
        ok "$desc ($(head -n 1 "$tmp/cli.err"))"
    else
        not_ok "$desc" "exit $rc (want $want), $lines stderr lines: $(head -n 5 "$tmp/cli.err")"
    fi
}

# dump_realm DB STASH OUT: a stable listing of everything in a realm: each principal as
# `principal show` prints it, its keys (all kvnos) as `klist -kK` prints them from an exported
# keytab, and the device table.
dump_realm() {
    local db=$1 st=$2 out=$3 p kt="$tmp/dump.keytab"
    : >"$out"
    timeout 60 "$CK_CLI" principal list --db "$db" --stash "$st" >"$tmp/dump.names" 2>&1 ||
        { cat "$tmp/dump.names"; return 1; }
    while read -r p; do
        timeout 60 "$CK_CLI" principal show --db "$db" --stash "$st" "$p" >>"$out" 2>&1 ||
            return 1
    done <"$tmp/dump.names"
    rm -f "$kt"
    # shellcheck disable=SC2046
    timeout 60 "$CK_CLI" keytab export --db "$db" --stash "$st" --out "$kt" --all-kvnos \
        $(cat "$tmp/dump.names") >/dev/null 2>&1 || return 1
    timeout 30 klist -kK "$kt" >>"$out" 2>&1 || return 1
    timeout 60 "$CK_CLI" device list --db "$db" --stash "$st" >>"$out" 2>&1 || return 1
}

# --- a realm with some content -------------------------------------------------------------
realm_addprinc alice "$PW1"
realm_addprinc host/svc.db.test --random
for i in $(seq 1 20); do
    timeout 30 "$CK_CLI" principal add --db "$DB" "user$i" --random >/dev/null 2>&1 ||
        bail "principal add user$i"
done
timeout 30 "$CK_CLI" principal add --db "$DB" mta1 --random >/dev/null 2>&1 || bail "add mta1"
timeout 30 "$CK_CLI" device add --db "$DB" --mac 00:11:22:aa:bb:01 --principal mta1 \
    --comment "lab device" >/dev/null 2>&1 || bail "device add"
timeout 30 "$CK_CLI" device add --db "$DB" --mac 00:11:22:aa:bb:02 --principal mta1 \
    --spki-sha256 "$(printf '%064d' 7)" >/dev/null 2>&1 || bail "device add (pinned)"
timeout 30 "$CK_CLI" device revoke --db "$DB" --mac 00:11:22:aa:bb:02 >/dev/null 2>&1 ||
    bail "device revoke"

# --- usage and refusals ---------------------------------------------------------------------
CLI_LINES=30 cli_fails "db without a subcommand: usage, exit 2" 2 "usage: cablekey db" db
cli_fails "db backup without OUT: exit 2" 2 "OUT" db backup --db "$DB"
cli_fails "db backup with an option of restore: exit 2" 2 "--force does not apply" \
    db backup --db "$DB" --force "$tmp/x.db"
cli_fails "db restore of a missing file: exit 1" 1 "no-such.db" \
    db restore --db "$DB" "$tmp/no-such.db"
cli_fails "db backup onto the database itself: exit 1" 1 "database itself" \
    db backup --db "$DB" --overwrite "$DB"

realm_start_kdc
expect_success "kinit alice before any backup" kinit_pw "alice@$REALM" "$PW1"

# --- backups under load -------------------------------------------------------------------
rm -f "$tmp/stop" "$tmp/kinit.fail" "$tmp/kinit.ok" "$tmp/cli.fail" "$tmp/cli.ok"
(
    export KRB5CCNAME="FILE:$tmp/ccache.load"
    while [ ! -e "$tmp/stop" ]; do
        if printf '%s\n' "$PW1" | timeout -k 5 "$CK_TIMEOUT" kinit "alice@$REALM" \
            >/dev/null 2>&1; then echo >>"$tmp/kinit.ok"; else echo >>"$tmp/kinit.fail"; fi
    done
) &
LOAD_KINIT=$!
CK_BG_PIDS+=("$LOAD_KINIT")
(
    i=0
    while [ ! -e "$tmp/stop" ]; do
        i=$((i + 1))
        if timeout 30 "$CK_CLI" principal add --db "$DB" "load$i" --random >/dev/null 2>&1 &&
            timeout 30 "$CK_CLI" principal modify --db "$DB" "load$i" --max-life 2h \
                >/dev/null 2>&1 &&
            timeout 30 "$CK_CLI" principal rotate --db "$DB" "user$((i % 20 + 1))" --random \
                >/dev/null 2>&1; then
            echo >>"$tmp/cli.ok"
        else
            echo >>"$tmp/cli.fail"
        fi
    done
) &
LOAD_CLI=$!
CK_BG_PIDS+=("$LOAD_CLI")

# Let both loops get going: a bounded poll on their progress, not a timed sleep.
for _ in $(seq 1 300); do
    [ -s "$tmp/kinit.ok" ] && [ -s "$tmp/cli.ok" ] && break
    sleep 0.1
done
[ -s "$tmp/kinit.ok" ] && [ -s "$tmp/cli.ok" ] || bail "load loops did not start" \
    "$(cat "$tmp/kdc.stderr" 2>/dev/null | tail -n 5)"
all_ok=1
for n in 1 2 3 4; do
    if ! timeout 60 "$CK_CLI" db backup --db "$DB" "$tmp/backup$n.db" \
        >"$tmp/backup$n.out" 2>&1; then
        all_ok=0
        not_ok "backup $n under load" "$(cat "$tmp/backup$n.out")"
    fi
    # The next backup sees more changes.
    c=$(wc -l <"$tmp/cli.ok")
    for _ in $(seq 1 300); do
        [ "$(wc -l <"$tmp/cli.ok")" -gt "$c" ] && break
        sleep 0.05
    done
done
[ $all_ok = 1 ] && ok "4 backups taken while kinit and CLI loops ran"
touch "$tmp/stop"
wait "$LOAD_KINIT" "$LOAD_CLI"
CK_BG_PIDS=()
n_kinit=$(wc -l <"$tmp/kinit.ok"); n_cli=$(wc -l <"$tmp/cli.ok")
if [ ! -e "$tmp/kinit.fail" ] && [ ! -e "$tmp/cli.fail" ]; then
    ok "the load never failed during the backups ($n_kinit kinits, $n_cli CLI change rounds)"
else
    not_ok "the load never failed during the backups" \
        "kinit failures: $(wc -l <"$tmp/kinit.fail" 2>/dev/null), CLI failures: $(wc -l <"$tmp/cli.fail" 2>/dev/null)"
fi
assert_file_grep "backup output reminds that the stash is needed" \
    "without its stash is useless" "$tmp/backup1.out"
if [ "$(stat -c %a "$tmp/backup1.db")" = 600 ]; then ok "backup file is mode 0600"
else not_ok "backup file is mode 0600" "mode $(stat -c %a "$tmp/backup1.db")"; fi
if ls "$tmp"/backup*.db-wal "$tmp"/backup*.db.tmp-* >/dev/null 2>&1; then
    not_ok "backups are single files, no temporary left" "$(ls "$tmp")"
else ok "backups are single files, no temporary left"; fi
g1=$(sed -n 's/.*generation \([0-9]*\),.*/\1/p' "$tmp/backup1.out")
g4=$(sed -n 's/.*generation \([0-9]*\),.*/\1/p' "$tmp/backup4.out")
if [ -n "$g1" ] && [ -n "$g4" ] && [ "$g4" -gt "$g1" ]; then
    ok "later backups hold later states (generation $g1 .. $g4)"
else not_ok "later backups hold later states" "generations '$g1' '$g4'"; fi
for n in 1 2 3 4; do
    CLI_LINES=1 cli_ok "backup $n passes db check with the stash" \
        db check --db "$tmp/backup$n.db" --stash "$STASH"
done
cli_fails "db backup refuses to overwrite without --overwrite" 1 "already exists" \
    db backup --db "$DB" "$tmp/backup1.db"

# --db takes a location (PATH or URI): backup, check and restore through sqlite: URIs.
cli_ok "db backup --db sqlite:PATH" db backup --db "sqlite:$DB" "$tmp/backup-uri.db"
cli_ok "db check --db sqlite:///ABSOLUTE" db check --db "sqlite://$tmp/backup-uri.db" --stash "$STASH"
cli_fails "db backup from an unknown scheme names it" 1 '"mysql"' \
    db backup --db mysql://h/kdc "$tmp/x.db"
mkdir -p "$tmp/restored-uri"
cp "$STASH" "$tmp/restored-uri/kdc.db.stash"
chmod 600 "$tmp/restored-uri/kdc.db.stash"
cli_ok "db restore --db sqlite:PATH (stash beside the file)" \
    db restore --db "sqlite:$tmp/restored-uri/kdc.db" "$tmp/backup-uri.db"
[ -f "$tmp/restored-uri/kdc.db" ] && ! ls -a "$tmp/restored-uri" | grep -q restore- &&
    ok "the URI restore made the file, no temporary left" ||
    not_ok "the URI restore made the file, no temporary left" "$(ls -a "$tmp/restored-uri")"
rm -rf "$tmp/restored-uri" "$tmp/backup-uri.db"

# --- restore into a new path, serve it ------------------------------------------------------
mkdir -p "$tmp/restored"
RDB="$tmp/restored/kdc.db"
cli_fails "restore without the stash is refused" 1 "stash .*No such file" \
    db restore --db "$RDB" "$tmp/backup3.db"
[ ! -e "$RDB" ] && ok "a refused restore creates nothing" || not_ok "a refused restore creates nothing" "$(ls -la "$tmp/restored")"
cp "$STASH" "$tmp/restored/kdc.db.stash"
chmod 600 "$tmp/restored/kdc.db.stash"
cli_ok "db restore of backup 3 into a new path" db restore --db "$RDB" "$tmp/backup3.db"
assert_file_grep "restore says what it did" "Restored realm DB.TEST .* \\(new file\\)" "$tmp/cli.out"
if dump_realm "$tmp/backup3.db" "$STASH" "$tmp/dump.backup" &&
    dump_realm "$RDB" "$tmp/restored/kdc.db.stash" "$tmp/dump.restored"; then
    if cmp -s "$tmp/dump.backup" "$tmp/dump.restored" &&
        [ "$(grep -c '^Principal:' "$tmp/dump.restored")" -ge 24 ] &&
        grep -q 'lab device' "$tmp/dump.restored"; then
        ok "the restored realm equals the backup ($(grep -c '^Principal:' "$tmp/dump.restored") principals, keys and devices)"
    else
        not_ok "the restored realm equals the backup" "$(diff "$tmp/dump.backup" "$tmp/dump.restored" | head -n 20)"
    fi
else
    not_ok "the restored realm equals the backup" "dump failed: $(tail -n 5 "$tmp/dump.restored" "$tmp/dump.backup" 2>/dev/null)"
fi
realm_stop_kdc
LIVE_DB=$DB LIVE_STASH=$STASH
DB=$RDB STASH="$tmp/restored/kdc.db.stash"
realm_start_kdc
rm -f "$tmp/ccache"
expect_success "kinit against a KDC on the restored database" kinit_pw "alice@$REALM" "$PW1"
realm_stop_kdc
DB=$LIVE_DB STASH=$LIVE_STASH

# --- restore into the live database under a running KDC ----------------------------------
realm_start_kdc
timeout 30 "$CK_CLI" db backup --db "$DB" "$tmp/before-pw-change.db" >/dev/null 2>&1 ||
    bail "backup before the password change"
timeout 30 "$CK_CLI" principal rotate --db "$DB" alice --password "$PW2" >/dev/null 2>&1 ||
    bail "change alice's password"
# The KDC's cache sees the change within its check interval: a bounded poll.
poll_kinit() { # poll_kinit PW : true once kinit with PW succeeds (at most ~5 s)
    local i
    for i in $(seq 1 25); do
        kinit_pw "alice@$REALM" "$1" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    return 1
}
if poll_kinit "$PW2"; then ok "the KDC serves alice's new password"
else not_ok "the KDC serves alice's new password" "$(tail -n 5 "$tmp/kdc.log")"; fi
cli_fails "restore into a database the KDC has open is refused" 1 \
    "in use by process $KDC_PID \\(cablekey-kdc\\).*--force" \
    db restore --db "$DB" "$tmp/before-pw-change.db"
cli_ok "restore --force into the live database" \
    db restore --db "$DB" --force "$tmp/before-pw-change.db"
assert_file_grep "the change counter moved past both states" \
    "Change counter: backup [0-9]+, replaced database [0-9]+, now [0-9]+" "$tmp/cli.out"
if poll_kinit "$PW1"; then ok "the running KDC serves the restored password (no restart)"
else not_ok "the running KDC serves the restored password (no restart)" "$(tail -n 5 "$tmp/kdc.log")"; fi
# Each KDC worker has its own cache: one that served PW1 above does not prove that every other
# one has looked yet (each looks within its check interval), so this is a bounded poll as well.
poll_kinit_fails() { # poll_kinit_fails PW : true once kinit with PW fails (at most ~5 s)
    local i
    for i in $(seq 1 25); do
        kinit_pw "alice@$REALM" "$1" >/dev/null 2>&1 || return 0
        sleep 0.2
    done
    return 1
}
if poll_kinit_fails "$PW2"; then ok "the replaced password no longer works"
else not_ok "the replaced password no longer works" "$(tail -n 5 "$tmp/kdc.log")"; fi
kdc_alive "the KDC survived the restore"

# --- check ------------------------------------------------------------------------------------
cli_ok "db check on the live database" db check --db "$DB"
assert_file_grep "db check says OK with the counts" "principals, [0-9]+ keys .*: OK" "$tmp/cli.out"
cp "$tmp/backup4.db" "$tmp/damaged.db"
timeout 30 sqlite3 "$tmp/damaged.db" "UPDATE key SET key_enc = substr(key_enc, 1, 16) ||
    (CASE WHEN substr(key_enc, 17, 1) = X'00' THEN X'01' ELSE X'00' END) || substr(key_enc, 18)
    WHERE rowid = (SELECT rowid FROM key ORDER BY rowid LIMIT 1 OFFSET 5)" ||
    bail "sqlite3 could not damage the copy"
CLI_LINES=2 cli_fails "db check on a flipped key byte: exit 1, names the key" 1 \
    "kvno [0-9]+ enctype [0-9]+: key does not decrypt under the master key" \
    db check --db "$tmp/damaged.db" --stash "$STASH"
grep -q "1 problem found" "$tmp/cli.err" && ok "db check counts the problem" ||
    not_ok "db check counts the problem" "$(cat "$tmp/cli.err")"
CLI_LINES=2 cli_fails "db check without the stash: exit 1, the reminder" 1 \
    "without its stash is useless" db check --db "$tmp/damaged.db"
head -c 12288 "$tmp/backup4.db" >"$tmp/truncated.db"
CLI_LINES=5 cli_fails "db check on a truncated file: exit 1" 1 \
    "malformed|not a database|damaged" db check --db "$tmp/truncated.db" --stash "$STASH"
cli_fails "restore of a damaged backup is refused, the live database untouched" 1 \
    "does not decrypt" db restore --db "$DB" --force "$tmp/damaged.db"
cli_fails "restore of a truncated backup is refused" 1 "damaged|malformed|not a database" \
    db restore --db "$DB" --force "$tmp/truncated.db"

# --- audit ------------------------------------------------------------------------------------
cli_ok "audit list for alice" audit list --db "$DB" --principal alice
# rotate --password is a password change (ck_store_change_password): "principal.password".
if grep -F "$ME" "$tmp/cli.out" | grep -Eq "principal\.(rotate|password)	alice@$REALM	kvno" &&
    grep -F "$ME" "$tmp/cli.out" | grep -q "principal.add	alice@$REALM"; then
    ok "audit shows the CLI's changes to alice with the OS user as actor"
else not_ok "audit shows the CLI's changes with the OS user as actor" "$(cat "$tmp/cli.out")"; fi
if grep -qF -e "$PW1" -e "$PW2" "$tmp/cli.out"; then not_ok "audit never shows a password"
else ok "audit never shows a password"; fi
cli_ok "audit list of restores" audit list --db "$DB" --action db.restore
if grep -F "$ME" "$tmp/cli.out" | grep -q "db.restore	$REALM	from $tmp/before-pw-change.db"; then
    ok "the restore is in the audit log, by the OS user"
else not_ok "the restore is in the audit log" "$(cat "$tmp/cli.out")"; fi
cli_ok "audit list of device changes" audit list --db "$DB" --action device. --limit 2
if [ "$(wc -l <"$tmp/cli.out")" = 2 ] && grep -q "device.revoke	00:11:22:aa:bb:02" "$tmp/cli.out"
then ok "audit --action family and --limit"
else not_ok "audit --action family and --limit" "$(cat "$tmp/cli.out")"; fi
SUDO_USER=opsadmin timeout 30 "$CK_CLI" principal modify --db "$DB" user1 --max-life 3h \
    </dev/null >/dev/null 2>&1 || bail "modify under SUDO_USER"
cli_ok "audit list --since 1h" audit list --db "$DB" --since 1h --principal user1
if tail -n 1 "$tmp/cli.out" | grep -qF "$ME via sudo opsadmin	principal.modify	user1@$REALM	max_life 0 -> 10800"
then ok "under sudo the actor names the invoking user, and the detail what changed"
else not_ok "under sudo the actor names the invoking user" "$(tail -n 2 "$tmp/cli.out")"; fi
cli_ok "audit retention shows the default" audit retention --db "$DB"
assert_file_grep "default retention is 100000 rows and 365 days" \
    "newest 100000 rows and rows of the last 365 days" "$tmp/cli.out"
cli_fails "audit retention refuses 0 rows" 2 "--keep-rows" audit retention --db "$DB" --keep-rows 0

realm_stop_kdc
done_testing
