#!/usr/bin/env bash
# Service-key versioning against a running cablekey-kdc (its rotation thread ticking every
# second) with stock MIT clients:
#   - krbtgt rotation under load: two MIT kinit/kvno loops run while `cablekey rotation run
#     --force` stages a new krbtgt kvno and the KDC's engine activates it (confirm none): zero
#     failures, a TGT from before the rotation is still accepted by the TGS afterwards, new
#     tickets come from the new kvno;
#   - a staged service key: the KDC keeps issuing tickets under the current kvno until the host
#     named by the policy confirms, the key-unconfirmed condition is logged naming that host,
#     and after the confirmation the KDC activates and issues under the new kvno, while a ticket
#     of the old kvno still decrypts with the keytab holding both;
#   - the crash point CK_KDC_CRASH=rot-after-activate:1 kills the KDC right after an activation;
#     restarted, it serves the new kvno and nothing is lost; rot-after-stage and rot-after-purge
#     likewise, with the engine's clock moved forward (CK_KDC_ROTATION_CLOCK_SKEW);
#   - the krbtgt rotation under load again with the realm on a throw-away PostgreSQL server.
# Ports: 21100-21199 (this test's range).
. "$(dirname "$0")/lib.sh"

require_tool "MIT client tools" kinit klist kvno kdestroy
if is_mit; then skip_case "service-key rotation" "mit mode: cablekey-kdc's own feature"; done_testing; exit; fi

realm_init ROT.TEST
# This test's own port range; free_port's random pick is not used.
PORT=""
for p in $(seq 21100 21199); do
    if ! ck_tcp_probe "127.0.0.1:$p" && "$CK_PY" - "$p" <<'EOF'
import socket, sys
p = int(sys.argv[1])
for typ in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
    s = socket.socket(socket.AF_INET, typ)
    s.bind(("127.0.0.1", p))
    s.close()
EOF
    then PORT=$p; break; fi
done
[ -n "$PORT" ] || bail "a free port in 21100-21199"
CK_LISTEN=("127.0.0.1:$PORT")
write_krb5_conf "$KRB5_CONFIG" "127.0.0.1:$PORT"
CK_KDCDEFAULTS_EXTRA=("rotation_interval = 1")

TGT="krbtgt/ROT.TEST@ROT.TEST"
SVC="host/svc.rot.test@ROT.TEST"
realm_addprinc alice alicepw
realm_addprinc "$SVC" --random

rot() { timeout 30 "$CK_CLI" rotation "$@" --db "$DB" </dev/null; }
# current_kvno PRINC: the current kvno from `rotation status --json`.
current_kvno() {
    rot status "$1" --json 2>/dev/null | "$CK_PY" -c 'import json,sys; print(json.load(sys.stdin)["current_kvno"])'
}
# wait_kvno PRINC N: polls (bounded) until PRINC's current kvno is N.
wait_kvno() {
    local i
    for i in $(seq 1 200); do
        [ "$(current_kvno "$1")" = "$2" ] && return 0
        sleep 0.1
    done
    return 1
}
# ticket_kvno SERVICE: the kvno MIT kvno reports for a fresh service ticket.
ticket_kvno() {
    timeout "$CK_TIMEOUT" kvno "$1" 2>&1 | sed -n 's/.*kvno = \([0-9]*\).*/\1/p'
}

realm_start_kdc_conf
assert_log "rotation: engine running every 1s" "KDC log: the rotation engine runs every second"

# ---- krbtgt under load -------------------------------------------------------------------
expect_output "rotation policy on krbtgt (confirm none)" "policy of $TGT set" \
    rot policy set "$TGT" --period 1d --old-valid 8d --confirm none --settle 0
expect_failure "old-valid below the realm's ticket lifetimes is refused" "shorter than the longest ticket" \
    rot policy set "$TGT" --period 1d --old-valid 1h --confirm none

# A TGT from before the rotation.
expect_success "kinit alice before the rotation" kinit_pw alice alicepw -c "FILE:$tmp/old.cc"

: >"$tmp/stop"; rm -f "$tmp/stop"
loop() { # loop N: kinit + kvno until $tmp/stop exists; counts in $tmp/loopN.{ok,fail}
    local n=$1 ok=0 fail=0
    export KRB5CCNAME="FILE:$tmp/loop$n.cc"
    while [ ! -e "$tmp/stop" ]; do
        if kinit_pw alice alicepw >/dev/null 2>>"$tmp/loop$n.err" &&
           timeout "$CK_TIMEOUT" kvno "$SVC" >/dev/null 2>>"$tmp/loop$n.err"; then
            ok=$((ok + 1))
        else
            fail=$((fail + 1))
        fi
        # Renamed into place: a reader never sees a half-written count.
        echo "$ok" >"$tmp/loop$n.ok.new" && mv -f "$tmp/loop$n.ok.new" "$tmp/loop$n.ok"
        echo "$fail" >"$tmp/loop$n.fail.new" && mv -f "$tmp/loop$n.fail.new" "$tmp/loop$n.fail"
    done
}
loop 1 & CK_BG_PIDS+=($!)
loop 2 & CK_BG_PIDS+=($!)
# iterations: the sum of both loops' successes so far.
count() { local v; v=$(cat "$1" 2>/dev/null); echo "${v:-0}"; }
iterations() { echo $(( $(count "$tmp/loop1.ok") + $(count "$tmp/loop2.ok") )); }
wait_iterations() { # wait_iterations N: until both loops together succeeded N more times
    local target=$(( $(iterations) + $1 )) i
    for i in $(seq 1 600); do
        [ "$(iterations)" -ge "$target" ] && return 0
        sleep 0.1
    done
    return 1
}
wait_iterations 6 || not_ok "load loops running" "$(cat "$tmp"/loop*.err 2>/dev/null | tail -n 5)"

expect_output "rotation run --force stages krbtgt kvno 2" "Staged kvno 2 of $TGT \(current 1\)" \
    rot run "$TGT" --force
if wait_kvno "$TGT" 2; then ok "the KDC's engine activates krbtgt kvno 2 (confirm none, settle 0)"
else not_ok "the KDC's engine activates krbtgt kvno 2" "$(rot status "$TGT" 2>&1)"; fi
assert_log "rotation activate principal=krbtgt/ROT\.TEST@ROT\.TEST kvno=2 previous=1" \
    "KDC log: one line for the activation"
wait_iterations 10 || not_ok "load loops keep running after the activation" "$(cat "$tmp"/loop*.err 2>/dev/null | tail -n 5)"
touch "$tmp/stop"
for p in "${CK_BG_PIDS[@]}"; do wait "$p" 2>/dev/null; done
CK_BG_PIDS=()
fails=$(( $(count "$tmp/loop1.fail") + $(count "$tmp/loop2.fail") ))
if [ "$fails" = 0 ] && [ "$(iterations)" -ge 16 ]; then
    ok "MIT kinit/kvno loops through the krbtgt rotation: $(iterations) exchanges, 0 failures"
else
    not_ok "MIT kinit/kvno loops through the krbtgt rotation: 0 failures" \
        "$fails failures in $(iterations) iterations: $(cat "$tmp"/loop*.err 2>/dev/null | tail -n 5)"
fi
KRB5CCNAME="FILE:$tmp/old.cc" expect_success "a TGT of krbtgt kvno 1 is still accepted by the TGS" \
    timeout "$CK_TIMEOUT" kvno "$SVC"
expect_success "kinit alice after the rotation" kinit_pw alice alicepw
k=$(ticket_kvno "$TGT")
if [ "$k" = 2 ]; then ok "new tickets for krbtgt come from kvno 2"
else not_ok "new tickets for krbtgt come from kvno 2" "kvno reports '$k'"; fi

# ---- a staged service key waits for its host ---------------------------------------------
expect_output "rotation policy on the service (host svc1 must confirm)" "policy of $SVC set" \
    rot policy set "$SVC" --period 1d --old-valid 8d --hosts svc1.rot.test --confirm-timeout 0
expect_success "kinit alice" kinit_pw alice alicepw
expect_output "rotation run --force stages the service's kvno 2" "Staged kvno 2 of $SVC \(current 1\)" \
    rot run "$SVC" --force
expect_output "status: activation waits for svc1.rot.test" "activate kvno 2 when confirmed by svc1\.rot\.test" \
    rot status "$SVC"
assert_log "rotation unconfirmed principal=host/svc\.rot\.test@ROT\.TEST kvno=2 missing=svc1\.rot\.test" \
    "KDC log: the unconfirmed staged key names the missing host"
sleep 1.5 # two engine passes: the staged kvno must stay staged
k=$(ticket_kvno "$SVC")
if [ "$k" = 1 ] && [ "$(current_kvno "$SVC")" = 1 ]; then
    ok "while staged, the KDC keeps issuing service tickets under kvno 1"
else
    not_ok "while staged, the KDC keeps issuing service tickets under kvno 1" "kvno reports '$k'"
fi
# The old-kvno ticket must decrypt with the keytab the host holds (kvno 1 + the staged 2).
timeout 30 "$CK_CLI" keytab export --db "$DB" --out "$tmp/svc.keytab" --all-kvnos "$SVC" \
    >"$tmp/kt.log" 2>&1 </dev/null || bail "export the service keytab (all kvnos)" "$(cat "$tmp/kt.log")"
expect_output "the host's keytab holds kvnos 1 and 2" "^ *2 .*host/svc\.rot\.test@ROT\.TEST" \
    klist -k "$tmp/svc.keytab"
expect_output "rotation confirm records svc1.rot.test" "Host svc1\.rot\.test holds kvno 2" \
    rot confirm "$SVC" --host svc1.rot.test --kvno 2
if wait_kvno "$SVC" 2; then ok "after the confirmation the KDC's engine activates kvno 2"
else not_ok "after the confirmation the KDC's engine activates kvno 2" "$(rot status "$SVC" 2>&1)"; fi
assert_log "rotation activate principal=host/svc\.rot\.test@ROT\.TEST kvno=2 previous=1" \
    "KDC log: the service activation"
kdestroy >/dev/null 2>&1
expect_success "kinit alice" kinit_pw alice alicepw
k=$(ticket_kvno "$SVC")
if [ "$k" = 2 ]; then ok "new service tickets come from kvno 2"
else not_ok "new service tickets come from kvno 2" "kvno reports '$k'"; fi
expect_output "status: kvno 1 retired, kvno 2 current" "kvno 1 retired: .*retired 20" rot status "$SVC"
expect_output "audit log: stage, confirm, activate" "rotation\.activate" \
    timeout 30 "$CK_CLI" audit list --db "$DB" --principal "$SVC"

# ---- crash point after an activation ----------------------------------------------------
realm_stop_kdc
CK_KDC_CRASH=rot-after-activate:1 realm_start_kdc_conf
disown "$KDC_PID" # its SIGKILL is expected: no "Killed" job notice in the TAP output
expect_output "rotation run --force stages krbtgt kvno 3" "Staged kvno 3 of $TGT" rot run "$TGT" --force
dead=0
for i in $(seq 1 100); do
    if ! kill -0 "$KDC_PID" 2>/dev/null; then dead=1; break; fi
    sleep 0.1
done
if [ "$dead" = 1 ]; then
    KDC_PID=""
    ok "CK_KDC_CRASH=rot-after-activate:1 kills the KDC after the activation"
else
    not_ok "CK_KDC_CRASH=rot-after-activate:1 kills the KDC after the activation" "$(tail -n 5 "$tmp/kdc.log")"
fi
if [ "$(current_kvno "$TGT")" = 3 ]; then ok "the activation committed before the kill"
else not_ok "the activation committed before the kill" "$(rot status "$TGT" 2>&1)"; fi
realm_start_kdc_conf
KRB5CCNAME="FILE:$tmp/old.cc" expect_success "restarted: a TGT of kvno 1 is still accepted" \
    timeout "$CK_TIMEOUT" kvno "$SVC"
expect_success "restarted: kinit alice" kinit_pw alice alicepw
k=$(ticket_kvno "$TGT")
if [ "$k" = 3 ]; then ok "restarted: new tickets for krbtgt come from kvno 3"
else not_ok "restarted: new tickets for krbtgt come from kvno 3" "kvno reports '$k'"; fi

# ---- crash points after stage and purge, with the engine's clock moved forward -----------
# wait_dead: true once the KDC (killed by its crash point) is gone; bounded.
wait_dead() {
    local i
    for i in $(seq 1 150); do
        if ! kill -0 "$KDC_PID" 2>/dev/null; then KDC_PID=""; return 0; fi
        sleep 0.1
    done
    return 1
}
kvno_list() { # kvno_list PRINC: "3,2" (newest first)
    rot status "$1" --json 2>/dev/null |
        "$CK_PY" -c 'import json,sys; print(",".join(str(k["kvno"]) for k in json.load(sys.stdin)["kvnos"]))'
}
CRASH="host/crash.rot.test@ROT.TEST"
realm_addprinc "$CRASH" --random
realm_stop_kdc
expect_success "krbtgt paused for this part" rot pause "$TGT"
expect_output "policy: confirm none, period 1d, keep 1" "policy of $CRASH set" \
    rot policy set "$CRASH" --period 1d --old-valid 8d --confirm none --keep 1
CK_KDC_ROTATION_CLOCK_SKEW=$((2 * 86400)) CK_KDC_CRASH=rot-after-stage:1 realm_start_kdc_conf
disown "$KDC_PID"
if wait_dead; then ok "CK_KDC_CRASH=rot-after-stage:1 kills the KDC after the engine staged"
else not_ok "CK_KDC_CRASH=rot-after-stage:1 kills the KDC after the engine staged" "$(tail -n 5 "$tmp/kdc.log")"; fi
if [ "$(kvno_list "$CRASH")" = "2,1" ] && [ "$(current_kvno "$CRASH")" = 1 ]; then
    ok "the staged kvno 2 committed before the kill, kvno 1 still current"
else
    not_ok "the staged kvno 2 committed before the kill" "$(rot status "$CRASH" 2>&1)"
fi
CK_KDC_ROTATION_CLOCK_SKEW=$((2 * 86400)) realm_start_kdc_conf
if wait_kvno "$CRASH" 2; then ok "restarted: the engine activates the staged kvno 2 (not re-staged)"
else not_ok "restarted: the engine activates the staged kvno 2" "$(rot status "$CRASH" 2>&1)"; fi
realm_stop_kdc
CK_KDC_ROTATION_CLOCK_SKEW=$((11 * 86400)) CK_KDC_CRASH=rot-after-purge:1 realm_start_kdc_conf
disown "$KDC_PID"
if wait_dead; then ok "CK_KDC_CRASH=rot-after-purge:1 kills the KDC after the engine purged"
else not_ok "CK_KDC_CRASH=rot-after-purge:1 kills the KDC after the engine purged" "$(tail -n 5 "$tmp/kdc.log")"; fi
if [ "$(kvno_list "$CRASH")" = "3,2" ] && [ "$(current_kvno "$CRASH")" = 3 ]; then
    ok "kvno 1 purged (8d + grace after its retirement), kvno 2 kept (keep 1), kvno 3 current"
else
    not_ok "kvno 1 purged, kvno 2 kept, kvno 3 current" "$(rot status "$CRASH" 2>&1)"
fi
realm_start_kdc_conf
expect_success "restarted: kinit alice" kinit_pw alice alicepw
k=$(ticket_kvno "$CRASH")
if [ "$k" = 3 ]; then ok "restarted: service tickets come from kvno 3"
else not_ok "restarted: service tickets come from kvno 3" "kvno reports '$k'"; fi
expect_success "krbtgt resumed" rot resume "$TGT"

# ---- operator verbs ----------------------------------------------------------------------
expect_output "rotation pause" "Rotation of $SVC paused" rot pause "$SVC"
expect_failure "rotation run --force refuses a paused service" "paused" rot run "$SVC" --force
expect_output "rotation resume" "Rotation of $SVC resumed" rot resume "$SVC"
expect_output "rotation policy list" "host/svc\.rot\.test@ROT\.TEST period=1d confirm=agent" \
    rot policy list
expect_failure "rotation confirm of a kvno the service does not have" "has no kvno 9" \
    rot confirm "$SVC" --host svc1.rot.test --kvno 9
expect_failure "a host name with a space is refused" "host name" \
    rot confirm "$SVC" --host "bad host" --kvno 2
expect_output "rotation policy delete" "deleted" rot policy delete "$SVC"
expect_failure "rotation status of an unknown principal" "not found" rot status nobody
realm_stop_kdc

# rotation = false: this KDC runs no engine (it still serves).
CK_KDCDEFAULTS_EXTRA=("rotation = false")
realm_start_kdc_conf
expect_success "rotation = false: the KDC serves" kinit_pw alice alicepw
if grep -q "rotation: engine running" "$tmp/kdc.log"; then
    not_ok "rotation = false: no engine thread" "$(grep rotation "$tmp/kdc.log" | head -n 3)"
else
    ok "rotation = false: no engine thread"
fi
realm_stop_kdc
CK_KDCDEFAULTS_EXTRA=("rotation_interval = 1")

# ---- the same krbtgt rotation on PostgreSQL ----------------------------------------------
. "$CK_INTEROP_DIR/pg_lib.sh"
CK_PG_NO_TRAP=1
trap 'pg_stop >/dev/null 2>&1; ck_cleanup' EXIT
pg_start >"$tmp/pg.log" 2>&1 || bail "start a throw-away PostgreSQL server" "$(tail -n 5 "$tmp/pg.log")"
REALM=ROTPG.TEST
TGT="krbtgt/ROTPG.TEST@ROTPG.TEST"
SVC="host/svc.rot.test@ROTPG.TEST"
DB="$CK_PG_URI"
STASH="$tmp/pg.stash"
write_krb5_conf "$KRB5_CONFIG" "127.0.0.1:$PORT"
timeout 60 "$CK_CLI" init --db "$DB" --stash "$STASH" --realm "$REALM" >"$tmp/init.log" 2>&1 </dev/null ||
    bail "cablekey init on PostgreSQL" "$(cat "$tmp/init.log")"
realm_addprinc alice alicepw --stash "$STASH"
realm_addprinc "$SVC" --random --stash "$STASH"
rot() { timeout 30 "$CK_CLI" rotation "$@" --db "$DB" --stash "$STASH" </dev/null; }
realm_start_kdc_conf
expect_output "PostgreSQL: rotation policy on krbtgt" "policy of $TGT set" \
    rot policy set "$TGT" --period 1d --old-valid 8d --confirm none
expect_success "PostgreSQL: kinit alice before the rotation" kinit_pw alice alicepw -c "FILE:$tmp/oldpg.cc"
rm -f "$tmp/stop" "$tmp"/loop*.ok "$tmp"/loop*.fail
loop 1 & CK_BG_PIDS+=($!)
wait_iterations 3 || not_ok "PostgreSQL: load loop running" "$(tail -n 5 "$tmp/loop1.err" 2>/dev/null)"
expect_output "PostgreSQL: rotation run --force stages krbtgt kvno 2" "Staged kvno 2 of $TGT" \
    rot run "$TGT" --force
if wait_kvno "$TGT" 2; then ok "PostgreSQL: the KDC's engine activates krbtgt kvno 2"
else not_ok "PostgreSQL: the KDC's engine activates krbtgt kvno 2" "$(rot status "$TGT" 2>&1)"; fi
wait_iterations 5 || not_ok "PostgreSQL: load loop keeps running" "$(tail -n 5 "$tmp/loop1.err" 2>/dev/null)"
touch "$tmp/stop"
for p in "${CK_BG_PIDS[@]}"; do wait "$p" 2>/dev/null; done
CK_BG_PIDS=()
if [ "$(count "$tmp/loop1.fail")" = 0 ] && [ "$(iterations)" -ge 8 ]; then
    ok "PostgreSQL: MIT kinit/kvno loop through the krbtgt rotation: $(iterations) exchanges, 0 failures"
else
    not_ok "PostgreSQL: MIT kinit/kvno loop through the krbtgt rotation: 0 failures" \
        "$(count "$tmp/loop1.fail") failures: $(tail -n 5 "$tmp/loop1.err" 2>/dev/null)"
fi
KRB5CCNAME="FILE:$tmp/oldpg.cc" expect_success "PostgreSQL: a TGT of kvno 1 is still accepted by the TGS" \
    timeout "$CK_TIMEOUT" kvno "$SVC"
realm_stop_kdc
pg_stop >/dev/null 2>&1
done_testing
