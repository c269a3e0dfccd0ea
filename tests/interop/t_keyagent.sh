#!/bin/bash
# The key version service end to end (docs/keytab-agent.md): cablekey-kdc serving it,
# cablekey-cms holding the keytab that `cablekey keytab-agent` maintains, and endpoints
# (`cablekey mta kmm`, each run with a fresh service ticket) authenticating to the CMS in a loop
# while two staged rotations of the CMS's key go through: stage -> the agent fetches, rewrites
# the keytab, the CMS re-reads it, the agent confirms -> activate; then purge (the store keeps
# the newest retired kvno) -> the agent drops the purged kvno. Zero failures allowed. Then the
# refusals: a disabled principal gets no keys (and the agent says why), a keytab without a key of
# the principal gets none, keyagent/REALM missing is said by the KDC at start; SIGTERM stops the
# agent cleanly. The rotation steps are made through the
# store API (tests/tools/ck_rotstep.c) so that the test does not wait for the engine's schedule.
# shellcheck source=tests/interop/lib.sh
. "$(dirname "$0")/lib.sh"

if is_mit; then
    skip_case "key version service" "cablekey-only test"
    done_testing
fi
CK_CMS="$CK_BUILD/cablekey-cms"
ROTSTEP="$CK_BUILD/ck_rotstep"
require_tool "t_keyagent" kvno klist
for b in "$CK_CMS" "$ROTSTEP"; do [ -x "$b" ] || bail "$b not built"; done

SVC_NAME=cms/cms1.test
realm_init TEST.REALM
SVC="$SVC_NAME@$REALM"
realm_addprinc mta1 mta1-pw
realm_addprinc "$SVC_NAME" --random
realm_ktexport "$tmp/cms.keytab" "$SVC_NAME" >/dev/null || bail "export the CMS keytab"
KAPORT=$(free_port) || bail "free port"
# The KDC's rotation engine runs every second here (rotation_interval), as a fleet's KDCs do.
printf '[kdcdefaults]\n    rotation_interval = 1s\n' >"$tmp/kdc-rot.conf"
realm_start_kdc -c "$tmp/kdc-rot.conf" --keyagent-listen "127.0.0.1:$KAPORT"

rotstep() { "$ROTSTEP" --db "$DB" --stash "$STASH" "$@"; }
agent_cmd() { # agent_cmd ARGS...: keytab-agent for the CMS's keytab
    timeout -k 5 60 "$CK_CLI" keytab-agent --keytab "$tmp/cms.keytab" --principal "$SVC" \
        --kdc "127.0.0.1:$PORT" --service-port "$KAPORT" --host cms1 "$@"
}
agent() { agent_cmd "$@" >"$tmp/agent.out" 2>&1 </dev/null; } # output in $tmp/agent.out
kt_kvnos() { klist -k "$tmp/cms.keytab" 2>/dev/null | awk '$1 ~ /^[0-9]+$/ {print $1}' | sort -nu | tr '\n' ' '; }

# ---- 0. The realm has the service principal; the KDC serves the service -------------------
expect_output "cablekey init made keyagent/$REALM@$REALM" "^keyagent/$REALM@$REALM\$" \
    "$CK_CLI" principal list --db "$DB"
if wait_file_grep "$tmp/kdc.log" "keyagent: listening on 127\.0\.0\.1:$KAPORT \(tcp\)"; then
    ok "the KDC listens for the key version service"
else
    not_ok "the KDC listens for the key version service" "$(tail -n 5 "$tmp/kdc.log")"
fi

# ---- 1. Up to date: nothing written ---------------------------------------------------------
sum0=$(sha256sum "$tmp/cms.keytab")
if agent --once && grep -q "^keytab-agent: kdc=127.0.0.1:$PORT current=1 staged=0 had=1 added=0 removed=0 confirmed=0" "$tmp/agent.out" &&
    [ "$(sha256sum "$tmp/cms.keytab")" = "$sum0" ]; then
    ok "agent --once with nothing staged: up to date, keytab untouched"
else
    not_ok "agent up to date" "$(cat "$tmp/agent.out")"
fi
assert_file_grep "the KDC logged the FETCH (one line, no key)" \
    "KEYAGENT 127\.0\.0\.1:[0-9]+ client=$SVC op=fetch kvno=1 host=cms1 result=0 \(ok\)" "$tmp/kdc.log"

# ---- 2. cablekey-cms on the keytab, the agent in the background, endpoints in a loop ----------
KP=$(free_port) || bail "free port"
SP=$(free_port) || bail "free port"
: >"$tmp/cms.log"
"$CK_CMS" --keytab "$tmp/cms.keytab" --service "$SVC" --listen "127.0.0.1:$KP" \
    --signaling-listen "127.0.0.1:$SP" --log "$tmp/cms.log" --log-level debug \
    >"$tmp/cms.stderr" 2>&1 </dev/null &
CMS_PID=$!
CK_BG_PIDS+=($CMS_PID)
wait_file_grep "$tmp/cms.log" "cablekey-cms ready:" || bail "cablekey-cms started" "$(tail -n 20 "$tmp/cms.log" "$tmp/cms.stderr")"
kinit_pw mta1 mta1-pw -c "$tmp/mta1.cc" >/dev/null 2>&1 || bail "kinit mta1"

"$CK_CLI" keytab-agent --keytab "$tmp/cms.keytab" --principal "$SVC" --kdc "127.0.0.1:$PORT" \
    --service-port "$KAPORT" --host cms1 --interval 1s >"$tmp/agent-bg.out" 2>&1 </dev/null &
AGENT_PID=$!
CK_BG_PIDS+=($AGENT_PID)

# The loop: each round a fresh copy of the TGT cache, so the endpoint asks the KDC for a new
# service ticket (under whatever kvno is current) and authenticates to the CMS with it.
loop() {
    local i=0
    while [ ! -e "$tmp/loop.stop" ]; do
        i=$((i + 1))
        cp "$tmp/mta1.cc" "$tmp/loop.cc"
        if timeout -k 5 30 "$CK_CLI" mta kmm --ccache "$tmp/loop.cc" --service "$SVC" \
            --signaling-port "$SP" --cms "127.0.0.1:$KP" --count 1 --timeout 300 \
            >"$tmp/loop.out" 2>&1 </dev/null && grep -q "^kmm: ok " "$tmp/loop.out"; then
            echo "ok $i" >>"$tmp/loop.log"
        else
            echo "FAIL $i $(tr '\n' ' ' <"$tmp/loop.out")" >>"$tmp/loop.log"
        fi
    done
}
: >"$tmp/loop.log"
loop &
LOOP_PID=$!
CK_BG_PIDS+=($LOOP_PID)
loop_count() { grep -c "^ok " "$tmp/loop.log" 2>/dev/null || true; }
wait_loop() { # wait_loop N: N more successful rounds (bounded wait)
    local want=$(($(loop_count) + $1)) i
    for i in $(seq 1 300); do [ "$(loop_count)" -ge "$want" ] && return 0; sleep 0.1; done
    return 1
}
wait_loop 3 || bail "the endpoint loop authenticates" "$(tail -n 5 "$tmp/loop.log")"

# ---- 3. Two staged rotations by the KDC's rotation engine, with a policy on the CMS principal --
# The policy names this agent's host; `rotation run --force` stages the next kvno now; the KDC's
# engine (every second) activates it once the host has confirmed.
expect_success "rotation policy on $SVC naming the agent's host" \
    "$CK_CLI" rotation policy set --db "$DB" "$SVC" --period 30d --old-valid 8d --confirm agent \
    --hosts cms1
# rotate N: stage kvno N, wait for the agent's confirmation (keytab re-read by the CMS) and the
# KDC's activation.
rotate() {
    local want=$1 i confirmed=no active=no
    if timeout 30 "$CK_CLI" rotation run --db "$DB" "$SVC" --force >"$tmp/run.out" 2>&1 </dev/null &&
        rotstep kvnos "$SVC" | grep -Eq "staged=$want |^current=$want staged=0 "; then
        # The background agent may already have confirmed it and the engine (every second)
        # activated it before this look: that the KDC waits for the confirmation is t_rotation's.
        ok "kvno $want staged"
    else
        not_ok "kvno $want staged" "$(cat "$tmp/run.out"); $(rotstep kvnos "$SVC")"
    fi
    for i in $(seq 1 200); do
        if rotstep confirmed "$SVC" cms1 "$want"; then confirmed=yes; break; fi
        sleep 0.1
    done
    if [ $confirmed = yes ] && kt_kvnos | grep -q "\b$want \$"; then
        ok "the agent fetched kvno $want, wrote it beside the others ($(kt_kvnos)) and confirmed it"
    else
        not_ok "agent fetch + confirm kvno $want" "keytab kvnos: $(kt_kvnos); $(tail -n 5 "$tmp/agent-bg.out")"
    fi
    if wait_file_grep "$tmp/cms.log" "keytab .* re-read: .* newest kvno $want"; then
        ok "cablekey-cms re-read the keytab (newest kvno $want) without a restart"
    else
        not_ok "cms re-read kvno $want" "$(tail -n 5 "$tmp/cms.log")"
    fi
    for i in $(seq 1 100); do
        rotstep kvnos "$SVC" | grep -q "^current=$want staged=0 " && { active=yes; break; }
        sleep 0.1
    done
    if [ $active = yes ]; then
        ok "confirmed by the policy's host: the KDC's rotation engine activated kvno $want"
    else
        not_ok "KDC activation of kvno $want" "$(rotstep kvnos "$SVC"); $(grep -i rotation "$tmp/kdc.log" | tail -n 3)"
    fi
    ck_settle
    cp "$tmp/mta1.cc" "$tmp/check.cc"
    if KRB5CCNAME="FILE:$tmp/check.cc" timeout 20 kvno -k "$tmp/cms.keytab" "$SVC" >"$tmp/kvno.out" 2>&1 &&
        grep -q "kvno = $want" "$tmp/kvno.out"; then
        ok "after activation the KDC issues kvno $want, and the agent's keytab decrypts it"
    else
        not_ok "kvno $want issued and decrypted" "$(cat "$tmp/kvno.out")"
    fi
    wait_loop 5 || not_ok "loop keeps running after activating kvno $want" "$(tail -n 3 "$tmp/loop.log")"
}
rotate 2
if [ "$(stat -c %a "$tmp/cms.keytab")" = 600 ]; then ok "the rewritten keytab is mode 0600"
else not_ok "keytab mode 0600" "$(stat -c %a "$tmp/cms.keytab")"; fi
rotate 3
# Eight days and the purge grace later kvno 1 goes (the newest retired one, 2, is always kept):
# the agent drops it from the keytab.
if [ "$(rotstep tick "$SVC" $((8 * 86400 + 700)))" = "staged=0 activated=0 purged=1 unconfirmed=0 errors=0" ]; then
    ok "once old_valid has passed the engine purges kvno 1"
else
    not_ok "engine purge" "$(rotstep kvnos "$SVC")"
fi
gone=no
for i in $(seq 1 200); do [ "$(kt_kvnos)" = "2 3 " ] && { gone=yes; break; }; sleep 0.1; done
if [ $gone = yes ]; then ok "kvno 1 purged on the KDC: the agent dropped it from the keytab (2 3 kept)"
else not_ok "purged kvno dropped" "keytab kvnos: $(kt_kvnos); KDC: $(rotstep kvnos "$SVC")"; fi
wait_loop 3 || not_ok "loop keeps running after the purge" "$(tail -n 3 "$tmp/loop.log")"
touch "$tmp/loop.stop"
wait "$LOOP_PID" 2>/dev/null
total=$(grep -c . "$tmp/loop.log")
fails=$(grep -c "^FAIL" "$tmp/loop.log")
if [ "$fails" = 0 ] && [ "$total" -ge 10 ]; then
    ok "no endpoint failed through the whole rotation ($total authentications)"
else
    not_ok "zero failures through the rotation" "$fails of $total failed: $(grep -m 3 FAIL "$tmp/loop.log")"
fi

# ---- 4. SIGTERM stops the agent cleanly -----------------------------------------------------
kill -TERM "$AGENT_PID"
for i in $(seq 1 50); do kill -0 "$AGENT_PID" 2>/dev/null || break; sleep 0.1; done
wait "$AGENT_PID"; rc=$?
if [ $rc = 0 ] && grep -q "^keytab-agent: stopped" "$tmp/agent-bg.out"; then
    ok "SIGTERM: the agent stops between rounds, exit 0"
else
    not_ok "agent SIGTERM" "exit $rc; $(tail -n 3 "$tmp/agent-bg.out")"
fi

# ---- 5. Refusals ----------------------------------------------------------------------------
new=$(rotstep stage "$SVC") || bail "stage kvno 4"
realm_modprinc "$SVC_NAME" --disallow-all-tix >/dev/null || bail "disable $SVC"
expect_failure "a disabled principal gets no keys (its AS exchange fails)" \
    "keytab-agent: .*(revoked|disabled|policy|error 18|error 12)" agent_cmd --once
if ! kt_kvnos | grep -q "\b4 "; then
    ok "nothing of kvno 4 reached the disabled principal's keytab"
else
    not_ok "disabled principal keytab" "$(kt_kvnos)"
fi
realm_modprinc "$SVC_NAME" --allow-tix >/dev/null || bail "re-enable $SVC"
cp "$tmp/cms.keytab" "$tmp/cms.keytab.keep"
realm_ktexport "$tmp/cms.keytab" mta1 >/dev/null
expect_failure "a keytab without a key of the principal is refused with the reason" \
    "holds no key of $SVC" agent_cmd --once
mv "$tmp/cms.keytab.keep" "$tmp/cms.keytab"
if agent --once && grep -q "added=[1-9].* confirmed=4" "$tmp/agent.out"; then
    ok "re-enabled: the next round fetches and confirms kvno 4"
else
    not_ok "re-enabled agent" "$(cat "$tmp/agent.out")"
fi

kill -TERM "$CMS_PID" 2>/dev/null; wait "$CMS_PID" 2>/dev/null
realm_stop_kdc

# ---- 6. keyagent/REALM missing --------------------------------------------------------------
timeout 30 "$CK_CLI" principal delete --db "$DB" "keyagent/$REALM@$REALM" --yes >/dev/null 2>&1 </dev/null ||
    bail "delete keyagent/$REALM"
realm_start_kdc --keyagent-listen "127.0.0.1:$KAPORT"
if wait_file_grep "$tmp/kdc.log" "keyagent: keyagent/$REALM@$REALM is not in the database: .*cablekey init --db .* --add-keyagent"; then
    ok "keyagent/REALM missing: the KDC says so at start, naming the command that adds it"
else
    not_ok "keyagent/REALM missing logged" "$(tail -n 5 "$tmp/kdc.log")"
fi
expect_failure "the agent is refused (server unknown to the KDC)" "error 7|not found" agent_cmd --once
expect_output "cablekey init --add-keyagent adds it to the existing realm" "Added keyagent" \
    "$CK_CLI" init --db "$DB" --add-keyagent
ck_settle
expect_output "the service works again without a KDC restart" "^keytab-agent: kdc=.* confirmed=" \
    agent_cmd --once
realm_stop_kdc
rep=$(grep -Eh "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error" "$tmp/agent.out" "$tmp/agent-bg.out" "$tmp/cms.stderr" 2>/dev/null | head -n 3)
if [ -z "$rep" ]; then ok "no sanitizer report from the agent or the CMS"; else not_ok "sanitizer" "$rep"; fi
done_testing
