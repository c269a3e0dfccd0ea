#!/usr/bin/env bash
# cablekey-kdc's configuration fails closed, --check tests what a start needs, SIGHUP re-reads
# the configuration (applies what it can, reports what needs a restart, refuses an invalid file
# while serving on), the systemd notify datagrams, and the privilege drop after binding.
. "$(dirname "$0")/lib.sh"

if is_mit; then
    skip_case "cablekey-kdc configuration" "cablekey-only test"
    done_testing
fi
require_tool "MIT client tools" kinit klist
require_tool "python3" "$CK_PY"
[ "$(id -u)" = 0 ] || bail "this test needs root (privilege drop, privileged port); CI runs as root"
realm_init TEST.REALM
realm_addprinc alice alicepw

# run_once ARGS...: cablekey-kdc in the foreground (bounded), output in $tmp/once.{out,err}.
run_once() { timeout -k 5 15 "$CK_KDC" "$@" >"$tmp/once.out" 2>"$tmp/once.err" </dev/null; }

# fails DESC PATTERN ARGS...: exit 1, exactly one line on stderr, matching PATTERN.
fails() {
    local desc=$1 pat=$2 rc lines; shift 2
    run_once "$@"; rc=$?
    lines=$(grep -cv '^[[:space:]]*$' "$tmp/once.err")
    if [ $rc -eq 1 ] && [ "$lines" -eq 1 ] && grep -Eq -- "$pat" "$tmp/once.err"; then
        ok "$desc ($(head -c 150 "$tmp/once.err"))"
    else
        not_ok "$desc" "exit $rc, $lines stderr lines, want /$pat/:
$(head -n 5 "$tmp/once.err")
stdout: $(head -n 12 "$tmp/once.out")"
    fi
}

# conf FILE [kdcdefaults lines] -- [realm lines] -- [logging lines]: a kdc.conf for this realm.
conf() {
    local f=$1 part=0 l; shift
    local kd=() rl=() lg=()
    for l in "$@"; do
        if [ "$l" = -- ]; then part=$((part + 1)); continue; fi
        case $part in 0) kd+=("$l") ;; 1) rl+=("$l") ;; *) lg+=("$l") ;; esac
    done
    {
        echo "[kdcdefaults]"
        for l in "${kd[@]}"; do echo "    $l"; done
        echo "[realms]"
        echo "    $REALM = {"
        echo "        database_name = $DB"
        echo "        key_stash_file = $STASH"
        for l in "${rl[@]}"; do echo "        $l"; done
        echo "    }"
        if [ ${#lg[@]} -gt 0 ]; then
            echo "[logging]"
            for l in "${lg[@]}"; do echo "    $l"; done
        fi
    } >"$f"
}

# --- unknown sections and keys: errors with file and line, at --check and at start ------------
conf "$tmp/typo.conf" "kdc_listen = 127.0.0.1:$PORT"
sed -i 's/^\[kdcdefaults\]/[kdcdefault]/' "$tmp/typo.conf"
fails "--check: section typo [kdcdefault] is an error with file:line" \
    "typo\.conf:1: unknown section \[kdcdefault\] \(did you mean \[kdcdefaults\]\?\)" \
    --check -c "$tmp/typo.conf"
fails "start: section typo refused (never every address)" "typo\.conf:1: unknown section" \
    -c "$tmp/typo.conf"
conf "$tmp/badkey.conf" "kdc_listen = 127.0.0.1:$PORT" -- "max_life = 10h" "max_renewable_lfe = 7d"
fails "--check: unknown key with file:line" \
    "badkey\.conf:8: unknown key \"max_renewable_lfe\" in \[realms\] TEST\.REALM" \
    --check -c "$tmp/badkey.conf"
fails "start: unknown key refused" "badkey\.conf:8: unknown key" -c "$tmp/badkey.conf"
conf "$tmp/badval.conf" "kdc_listen = 127.0.0.1:$PORT" "kdc_workers = lots"
fails "--check: bad value with file:line" "badval\.conf:3: kdc_workers = \"lots\"" \
    --check -c "$tmp/badval.conf"

# --- MIT's kdc_ports without kdc_listen: honoured (every address), said out loud ----------------
P2=$(free_port) || bail "free port"
conf "$tmp/ports.conf" "kdc_ports = $P2" -- -- "kdc = FILE:$tmp/ports.log"
expect_output "--check: kdc_ports = N: every address, with a note" \
    "note: kdc_ports = $P2 without kdc_listen: every address" "$CK_KDC" --check -c "$tmp/ports.conf"
assert_file_grep "--check: kdc_ports listen line shows 0.0.0.0:$P2" "^listen: 0\.0\.0\.0:$P2" "$tmp/last.out"
conf "$tmp/ports2.conf" "kdc_ports = $P2" "kdc_tcp_ports = $((P2 + 1))"
fails "kdc_ports and kdc_tcp_ports differing: refused" "kdc_tcp_ports.*differs from kdc_ports" \
    --check -c "$tmp/ports2.conf"
conf "$tmp/ports3.conf" "kdc_listen = 127.0.0.1:$P2" "kdc_tcp_listen = 127.0.0.1:$((P2 + 1))"
fails "kdc_tcp_listen differing from kdc_listen: refused" "kdc_tcp_listen" \
    --check -c "$tmp/ports3.conf"
kdc_ports_serves() {
    local save=("${CK_LISTEN[@]}")
    CK_LISTEN=("127.0.0.1:$P2")
    : >"$tmp/kdc.log"
    "$CK_KDC" -c "$tmp/ports.conf" --log "$tmp/kdc.log" --log-flush-ms 0 \
        >"$tmp/kdc.stderr" 2>&1 </dev/null &
    KDC_PID=$!
    ck_wait_kdc_ready
    write_krb5_conf "$KRB5_CONFIG" "127.0.0.1:$P2"
    expect_success "kdc_ports = N: the KDC serves kinit on 127.0.0.1:N" kinit_pw alice alicepw
    assert_log "listen: kdc_ports = $P2 without kdc_listen: every address" \
        "start-up log says kdc_ports means every address"
    realm_stop_kdc
    write_krb5_conf "$KRB5_CONFIG" "127.0.0.1:$PORT"
    CK_LISTEN=("${save[@]}")
}
kdc_ports_serves

# --- [logging] kdc = CONSOLE: standard error, never a file named CONSOLE -----------------------
mkdir -p "$tmp/cwd"
conf "$tmp/console.conf" "kdc_listen = 127.0.0.1:$PORT" -- -- "kdc = CONSOLE"
console_check() {
    (cd "$tmp/cwd" && run_once --check -c "$tmp/console.conf"); local rc=$?
    if [ $rc -eq 0 ] && grep -q '^log: stderr' "$tmp/once.out" && [ ! -e "$tmp/cwd/CONSOLE" ]; then
        ok "kdc = CONSOLE: --check says stderr, no file named CONSOLE"
    else
        not_ok "kdc = CONSOLE: --check says stderr, no file named CONSOLE" "exit $rc; $(cat "$tmp/once.out" "$tmp/once.err" | head)
$(ls "$tmp/cwd")"
    fi
}
console_check
conf "$tmp/word.conf" "kdc_listen = 127.0.0.1:$PORT" -- -- "kdc = kdc.log"
fails "kdc = <bare word>: refused, not a file" "word\.conf:[0-9]+: kdc = \"kdc.log\"" \
    --check -c "$tmp/word.conf"

# --- --check tests what a start needs ------------------------------------------------------------
conf "$tmp/good.conf" "kdc_listen = 127.0.0.1:$PORT" -- -- "kdc = FILE:$tmp/good.log"
expect_output "--check good: configuration OK" "^configuration OK" "$CK_KDC" --check -c "$tmp/good.conf" \
    --pid-file "$tmp/kdc.pid"
for want in "^realm: TEST\.REALM$" "^database: $DB$" "^listen: 127\.0\.0\.1:$PORT \(udp\+tcp\)$" \
            "^log: file $tmp/good\.log, level info$" "^pid file: $tmp/kdc\.pid$"; do
    assert_file_grep "--check prints /$want/" "$want" "$tmp/last.out"
done
if [ ! -e "$tmp/good.log" ] && [ ! -e "$tmp/kdc.pid" ]; then ok "--check created neither log nor pid file"
else not_ok "--check created neither log nor pid file" "$(ls -l "$tmp/good.log" "$tmp/kdc.pid" 2>&1)"; fi
conf "$tmp/nolog.conf" "kdc_listen = 127.0.0.1:$PORT" -- -- "kdc = FILE:$tmp/no/such/dir/kdc.log"
fails "--check: log in a missing directory" "log: log file .*no/such/dir" --check -c "$tmp/nolog.conf"
conf "$tmp/unres.conf" "kdc_listen = no-such-host.invalid:$PORT"
fails "--check: unresolvable listen address" "listen: .*no-such-host\.invalid" --check -c "$tmp/unres.conf"
conf "$tmp/foreign.conf" "kdc_listen = 192.0.2.1:$PORT"
fails "--check: listen address not of this host" "listen: .*192\.0\.2\.1.*not an address of this host" \
    --check -c "$tmp/foreign.conf"
fails "--check: pid file directory missing" "pid file: .*no/such/dir" --check -c "$tmp/good.conf" \
    --pid-file "$tmp/no/such/dir/kdc.pid"
fails "--check: database missing" "database: .*nodb" --check -c "$tmp/good.conf" --db "$tmp/nodb.db" \
    --stash "$STASH"
fails "--check: stash missing" "database: .*nostash" --check -c "$tmp/good.conf" --stash "$tmp/nostash"
fails "--check --user nobody: a log file nobody may write is an error" \
    "log: log file .*good\.log: .*Permission denied \(as user nobody\)" --check -c "$tmp/good.conf" --user nobody
fails "--check --user nobody: database/stash the service user cannot use is an error" \
    "database: .*as user nobody" --check -c "$tmp/good.conf" --user nobody --log stderr
fails "--check: unknown user" "user: .*no-such-user" --check -c "$tmp/good.conf" --user no-such-user-ck
# kdc.conf asking for more than the database's caps (10h/7d from init): said, not silent.
conf "$tmp/caps.conf" "kdc_listen = 127.0.0.1:$PORT" -- "max_life = 30h" "max_renewable_life = 7d" -- "kdc = FILE:$tmp/kdc.log"
expect_output "--check: max_life above the database's cap is a warning" \
    "^warning: max_life = 30h in kdc.conf is more than the database allows \(10h\)" "$CK_KDC" --check -c "$tmp/caps.conf"
caps_at_start() {
    : >"$tmp/kdc.log"
    "$CK_KDC" -c "$tmp/caps.conf" --log-flush-ms 0 >"$tmp/kdc.stderr" 2>&1 </dev/null &
    KDC_PID=$!
    ck_wait_kdc_ready
    assert_log "max_life = 30h in kdc.conf is more than the database allows \(10h\): tickets get at most 10h" \
        "start-up warns that max_life = 30h exceeds the database's 10h"
    if grep -q "max_renewable_life = .* more than" "$tmp/kdc.log"; then
        not_ok "no warning for max_renewable_life within the cap" "$(grep warning "$tmp/kdc.log")"
    else ok "no warning for max_renewable_life within the cap"; fi
    realm_stop_kdc
}
caps_at_start
# Checking while the KDC runs: its port is in use, which is not an error for --check.
realm_start_kdc
expect_output "--check while the KDC runs: OK, port marked in use" "port in use now" \
    "$CK_KDC" --check -c "$tmp/good.conf"
realm_stop_kdc

# --- SIGHUP: re-read, apply the log level, report a listen change, refuse an invalid file -------
P3=$(free_port) || bail "free port"
conf "$tmp/kdc.conf" "kdc_listen = 127.0.0.1:$PORT" -- "max_life = 10h" -- "kdc = FILE:$tmp/kdc.log" "level = info"
start_notify_receiver "$tmp/notify.sock" "$tmp/notify.log"
notify_seen() { # notify_seen DESC PATTERN
    if wait_file_grep "$tmp/notify.log" "$2"; then ok "$1"
    else not_ok "$1" "notify datagrams: $(cat "$tmp/notify.log" 2>/dev/null)"; fi
}
: >"$tmp/kdc.log"
NOTIFY_SOCKET="$tmp/notify.sock" "$CK_KDC" -c "$tmp/kdc.conf" --log-flush-ms 0 \
    >"$tmp/kdc.stderr" 2>&1 </dev/null &
KDC_PID=$!
ck_wait_kdc_ready
notify_seen "sd_notify: READY=1 with a STATUS" "^READY=1\|STATUS=serving on 127\.0\.0\.1:$PORT"
expect_success "kinit before SIGHUP" kinit_pw alice alicepw
if grep -q 'AS_REQ' "$tmp/kdc.log"; then ok "level info: request lines logged"
else not_ok "level info: request lines logged" "$(tail -n 5 "$tmp/kdc.log")"; fi
conf "$tmp/kdc.conf" "kdc_listen = 127.0.0.1:$P3" -- "max_life = 2h" -- "kdc = FILE:$tmp/kdc.log" "level = warning"
kill -HUP "$KDC_PID"
notify_seen "sd_notify: RELOADING=1 with MONOTONIC_USEC" "^RELOADING=1\|MONOTONIC_USEC=[0-9]+$"
notify_seen "sd_notify: READY=1 after the reload" "^READY=1\|STATUS=serving; reloaded"
if wait_file_grep "$tmp/kdc.log" "listen addresses changed \(127\.0\.0\.1:$PORT -> 127\.0\.0\.1:$P3\): needs a restart"; then
    ok "SIGHUP: the listen change is reported as needing a restart"
else not_ok "SIGHUP: the listen change is reported as needing a restart" "$(tail -n 8 "$tmp/kdc.log")"; fi
assert_log "SIGHUP: log level info -> warning" "SIGHUP: the log level change is applied"
assert_log "SIGHUP: max_life 10h -> 2h" "SIGHUP: max_life change is applied"
n_before=$(grep -c 'AS_REQ' "$tmp/kdc.log")
expect_success "kinit after SIGHUP (still on the old address)" kinit_pw alice alicepw
if ck_tcp_probe "127.0.0.1:$P3"; then not_ok "the new listen address is not half-applied"
else ok "the new listen address is not half-applied"; fi
# The new max_life applies to new tickets; the warning level hides request lines.
lt=$(klist_times "krbtgt/TEST\.REALM@TEST\.REALM") && set -- $lt
if [ -n "$lt" ] && [ $(($2 - $1)) -le 7200 ] && [ $(($2 - $1)) -gt 7000 ]; then
    ok "SIGHUP: new tickets get the new max_life (2h)"
else not_ok "SIGHUP: new tickets get the new max_life (2h)" "times: $lt"; fi
sleep 0.2
if [ "$(grep -c 'AS_REQ' "$tmp/kdc.log")" -eq "$n_before" ]; then ok "level warning: request lines no longer logged"
else not_ok "level warning: request lines no longer logged" "$(tail -n 3 "$tmp/kdc.log")"; fi
# An invalid file: refused, the KDC keeps serving with the running configuration.
conf "$tmp/kdc.conf" "kdc_listen = 127.0.0.1:$PORT" "kdc_lisen = x" -- -- "kdc = FILE:$tmp/kdc.log"
: >"$tmp/notify.log"
kill -HUP "$KDC_PID"
if wait_file_grep "$tmp/kdc.log" "SIGHUP: configuration refused, the running one is kept: .*kdc\.conf:3: unknown key \"kdc_lisen\""; then
    ok "SIGHUP with an invalid file: refused with the error"
else not_ok "SIGHUP with an invalid file: refused with the error" "$(tail -n 5 "$tmp/kdc.log")"; fi
notify_seen "sd_notify: READY=1 with 'reload refused' status" "^READY=1\|STATUS=reload refused"
kdc_alive "the KDC still runs after a refused reload"
expect_success "kinit still works after a refused reload" kinit_pw alice alicepw
# Log rotation: rename the file, SIGHUP, the KDC writes to a new one.
conf "$tmp/kdc.conf" "kdc_listen = 127.0.0.1:$PORT" -- -- "kdc = FILE:$tmp/kdc.log" "level = info"
mv "$tmp/kdc.log" "$tmp/kdc.log.1"
kill -HUP "$KDC_PID"
if wait_file_grep "$tmp/kdc.log" "configuration reloaded and log reopened"; then ok "SIGHUP reopens the log after rotation"
else not_ok "SIGHUP reopens the log after rotation" "$(ls -l "$tmp"/kdc.log*)"; fi
kill -TERM "$KDC_PID"
notify_seen "sd_notify: STOPPING=1 on SIGTERM" "^STOPPING=1$"
realm_stop_kdc

# --- privilege drop: bind a privileged port as root, then run as the service user ------------
SVC=nobody
SVC_UID=$(id -u "$SVC")
mkdir -p "$tmp/svc"
timeout 30 "$CK_CLI" init --db "$tmp/svc/kdc.db" --realm TEST.REALM >"$tmp/svc-init.log" 2>&1 </dev/null ||
    bail "init the service realm" "$(cat "$tmp/svc-init.log")"
timeout 30 "$CK_CLI" principal add --db "$tmp/svc/kdc.db" alice --password alicepw >/dev/null 2>&1 </dev/null ||
    bail "add alice to the service realm"
free_priv_port() {
    "$CK_PY" - "$@" <<'EOF'
import random, socket, sys
for p in random.sample(range(600, 1000), 400):
    if str(p) in sys.argv[1:]:
        continue
    try:
        a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); a.bind(("127.0.0.1", p))
        b = socket.socket(socket.AF_INET, socket.SOCK_STREAM); b.bind(("127.0.0.1", p))
        a.close(); b.close(); print(p); break
    except OSError:
        continue
EOF
}
PRIV=$(free_priv_port)
[ -n "$PRIV" ] || bail "no free privileged port"
# kpasswd on a second privileged port: it binds with the KDC, before the drop.
KPRIV=$(free_priv_port "$PRIV")
[ -n "$KPRIV" ] || bail "no second free privileged port"
cat >"$tmp/svc/kdc.conf" <<EOF
[kdcdefaults]
    kdc_listen = 127.0.0.1:$PRIV
    kpasswd_listen = 127.0.0.1:$KPRIV
    kdc_user = $SVC
    kdc_workers = 2
[realms]
    TEST.REALM = {
        database_name = $tmp/svc/kdc.db
    }
[logging]
    kdc = FILE:$tmp/svc/kdc.log
EOF
# A stash that is not the service user's: the owner check is made as the service user.
chown -R "$SVC" "$tmp/svc"
chown root "$tmp/svc/kdc.db.stash"
run_once -c "$tmp/svc/kdc.conf" --log stderr; rc=$?
if [ $rc -eq 1 ] && grep -Eq "stash .*(owned by uid 0, not by uid $SVC_UID|Permission denied).*as user $SVC" "$tmp/once.err"; then
    ok "--user: a root-owned stash refuses to start ($(grep stash "$tmp/once.err" | head -c 160))"
else not_ok "--user: a root-owned stash refuses to start" "exit $rc: $(cat "$tmp/once.err")"; fi
chown "$SVC" "$tmp/svc/kdc.db.stash"
expect_output "--check as the service user: OK" "^user: $SVC \(uid $SVC_UID" "$CK_KDC" --check -c "$tmp/svc/kdc.conf"
privdrop() {
    local save=("${CK_LISTEN[@]}") uids t bad=0
    CK_LISTEN=("127.0.0.1:$PRIV")
    "$CK_KDC" -c "$tmp/svc/kdc.conf" --pid-file "$tmp/svc/kdc.pid" --log-flush-ms 0 \
        >"$tmp/kdc.stderr" 2>&1 </dev/null &
    KDC_PID=$!
    ck_wait_kdc_ready
    write_krb5_conf "$KRB5_CONFIG" "127.0.0.1:$PRIV"
    expect_success "privileged port $PRIV, service user $SVC: kinit works" kinit_pw alice alicepw
    sed -i "s|^\( *\)kdc = .*|&\n\1kpasswd_server = 127.0.0.1:$KPRIV|" "$KRB5_CONFIG"
    expect_output "privileged kpasswd port $KPRIV, service user $SVC: MIT kpasswd works" \
        "Password changed" bash -c "printf 'alicepw\nalice-2\nalice-2\n' | timeout -k 5 $CK_TIMEOUT kpasswd alice"
    uids=""
    for t in /proc/"$KDC_PID"/task/*/status; do
        uids="$uids $(awk '/^Uid:/ { print $2 "," $3 "," $4 "," $5 }' "$t")"
        awk -v u="$SVC_UID" '/^Uid:/ { exit !($2 == u && $3 == u && $4 == u && $5 == u) }' "$t" || bad=1
    done
    if [ $bad -eq 0 ] && [ "$(ls /proc/"$KDC_PID"/task | wc -l)" -ge 5 ]; then
        ok "every thread (main, 2 KDC and 2 kpasswd workers) runs as uid $SVC_UID (real, effective, saved, fs)"
    else not_ok "every thread runs as the service user" "uids:$uids"; fi
    if grep -q "^CapEff:[[:space:]]*0*$" /proc/"$KDC_PID"/status; then ok "no effective capability left"
    else not_ok "no effective capability left" "$(grep Cap /proc/"$KDC_PID"/status)"; fi
    assert_file_grep "the log says which user it runs as" "running as user $SVC \(uid $SVC_UID" "$tmp/svc/kdc.log"
    # The log file stays the service user's after a reopen (SIGHUP as the service user).
    mv "$tmp/svc/kdc.log" "$tmp/svc/kdc.log.1"
    kill -HUP "$KDC_PID"
    if wait_file_grep "$tmp/svc/kdc.log" "log reopened" && [ "$(stat -c %U "$tmp/svc/kdc.log")" = "$SVC" ]; then
        ok "SIGHUP as the service user: a new log file, owned by $SVC"
    else not_ok "SIGHUP as the service user: a new log file" "$(ls -l "$tmp"/svc/ 2>&1)"; fi
    realm_stop_kdc
    CK_LISTEN=("${save[@]}")
}
privdrop
done_testing
