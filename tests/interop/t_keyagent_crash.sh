#!/bin/bash
# The kill -9 loop of the key version service (issue 9, "Bad input and failures"): on SQLite and
# on a throw-away PostgreSQL, rotation after rotation of a service key, the keytab-agent is
# SIGKILLed at a seeded crash point (CK_AGENT_CRASH: after-fetch, after-write, before-confirm)
# and cablekey-kdc is kill -9'd and restarted at a seeded moment of the rotation (staged,
# confirmed, activated, or not at all; the rotation engine's own CK_KDC_CRASH points come with
# the KDC's rotation tick, docs/rotation.md). After every kill:
# the keytab still decodes, still holds the kvno the KDC issues tickets under (MIT kvno -k
# decrypts a fresh service ticket with it), and the next agent round completes the rotation. No
# key is ever lost: every kvno the KDC holds that was confirmed is in the keytab.
#   CK_SOAK_ROUNDS  rotations per backend (default 4: the sample `make test` runs; `make soak`
#                   runs 1000)
#   CK_SOAK_SEED    seed of the crash-point draw (default 9)
# shellcheck source=tests/interop/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/interop/pg_lib.sh
CK_PG_NO_TRAP=1 . "$(dirname "$0")/pg_lib.sh"

if is_mit; then
    skip_case "keytab-agent crash loop" "cablekey-only test"
    done_testing
fi
ROUNDS=${CK_SOAK_ROUNDS:-4}
RANDOM=${CK_SOAK_SEED:-9}
ROTSTEP="$CK_BUILD/ck_rotstep"
require_tool "t_keyagent_crash" kvno klist
[ -x "$ROTSTEP" ] || bail "$ROTSTEP not built"
CK_PG_NO_TRAP=1
trap 'pg_stop; ck_cleanup' EXIT

AGENT_POINTS=(after-fetch after-write before-confirm)
printf '[kdcdefaults]\n    rotation_interval = 1s\n' >"$tmp/kdc-rot.conf"
# Moments of a rotation at which the KDC dies: kill -9'd after the stage or after the agent's
# confirmation, or SIGKILLed by its own rotation engine right after it committed the activation
# (CK_KDC_CRASH=rot-after-activate, docs/rotation.md); then started again. The KDC's engine
# (every second) activates a staged kvno once the policy's host confirmed it; staging and
# purging are made by ck_rotstep (the engine would wait for the period and for old_valid).
KDC_MOMENTS=(none staged confirmed rot-after-activate)
SVC_NAME=cms/cms1.test

cli() { timeout 60 "$CK_CLI" "$@" --db "$DB" --stash "$STASH" </dev/null >"$tmp/cli.out" 2>&1 ||
    bail "cablekey $*" "$(cat "$tmp/cli.out")"; }
rotstep() { "$ROTSTEP" --db "$DB" --stash "$STASH" "$@"; }
kt_kvnos() { klist -k "$tmp/cms.keytab" 2>/dev/null | awk '$1 ~ /^[0-9]+$/ {print $1}' | sort -nu | tr '\n' ' '; }
agent() { # agent [ENV=V...]: one --once round; $tmp/agent.out; returns its exit status
    # In a subshell whose stderr is dropped: bash's "Killed" notice is not test output.
    ( env "$@" timeout -k 5 60 "$CK_CLI" keytab-agent --keytab "$tmp/cms.keytab" \
        --principal "$SVC" --kdc "127.0.0.1:$PORT" --service-port "$KAPORT" --host cms1 --once \
        >"$tmp/agent.out" 2>&1 </dev/null; exit $? ) 2>/dev/null
}
# decrypts: a fresh service ticket (whatever kvno the KDC issues now) decrypts with the keytab.
decrypts() {
    cp "$tmp/user.cc" "$tmp/check.cc"
    KRB5CCNAME="FILE:$tmp/check.cc" timeout 20 kvno -k "$tmp/cms.keytab" "$SVC" >"$tmp/kvno.out" 2>&1
}

kdc_start() { # kdc_start [CK_KDC_CRASH=...]: the KDC with its rotation engine every second
    if [ $# -gt 0 ]; then export "${1?}"; fi
    realm_start_kdc -c "$tmp/kdc-rot.conf" --keyagent-listen "127.0.0.1:$KAPORT"
    unset CK_KDC_CRASH
}
# kdc_kill MOMENT NOW: kill -9 the KDC and start it again when MOMENT is NOW.
kdc_kill() {
    [ "$1" = "$2" ] || return 0
    kill -KILL "$KDC_PID" 2>/dev/null
    wait "$KDC_PID" 2>/dev/null
    KDC_PID=""
    kdc_kills=$((kdc_kills + 1))
    kdc_start
}
# activated KVNO [ARMED]: waits (bounded) for the KDC's engine to make KVNO current; ARMED: first
# for the KDC to die at its crash point right after committing it, then starts it again.
activated() {
    local i
    if [ -n "${2:-}" ]; then
        for i in $(seq 1 150); do kill -0 "$KDC_PID" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$KDC_PID" 2>/dev/null && return 1
        wait "$KDC_PID" 2>/dev/null
        KDC_PID=""
        kdc_kills=$((kdc_kills + 1))
        grep -q "crash point rot-after-activate:1 reached" "$tmp/kdc.log" || return 1
        kdc_start
    fi
    for i in $(seq 1 150); do
        rotstep kvnos "$SVC" | grep -q "^current=$1 staged=0 " && return 0
        sleep 0.1
    done
    return 1
}

# run_backend NAME: the realm at $DB/$STASH exists; rotations with kills.
run_backend() {
    local be=$1 r point moment staged bad=0 kills=0 drawn=""
    kdc_kills=0
    SVC="$SVC_NAME@$REALM"
    cli principal add "$SVC_NAME" --random
    cli principal add user1 --password user1-pw
    rm -f "$tmp/cms.keytab"
    cli keytab export --out "$tmp/cms.keytab" "$SVC_NAME"
    cli rotation policy set "$SVC" --period 30d --old-valid 8d --confirm agent --hosts cms1
    KAPORT=$(free_port) || bail "free port"
    kdc_start
    kinit_pw user1 user1-pw -c "$tmp/user.cc" >/dev/null 2>&1 || bail "kinit user1 ($be)"
    for r in $(seq 1 "$ROUNDS"); do
        # The first rounds take every point once (so the small sample of `make test` covers
        # them all), the rest are drawn.
        if [ "$r" -le ${#AGENT_POINTS[@]} ]; then point=${AGENT_POINTS[$((r - 1))]}
        else point=${AGENT_POINTS[$((RANDOM % ${#AGENT_POINTS[@]}))]}; fi
        if [ "$r" -le ${#KDC_MOMENTS[@]} ]; then moment=${KDC_MOMENTS[$((${#KDC_MOMENTS[@]} - r))]}
        else moment=${KDC_MOMENTS[$((RANDOM % ${#KDC_MOMENTS[@]}))]}; fi
        staged=$(rotstep stage "$SVC") || { bad=1; ck_diag "stage: $staged"; break; }
        kdc_kill "$moment" staged
        if [ "$moment" = rot-after-activate ]; then
            # Armed for the activation this round's confirmation brings.
            kill -KILL "$KDC_PID" 2>/dev/null; wait "$KDC_PID" 2>/dev/null; KDC_PID=""
            kdc_start CK_KDC_CRASH=rot-after-activate:1
        fi
        agent CK_AGENT_CRASH="$point:1"
        rc=$?
        if [ $rc != 137 ]; then
            bad=1; ck_diag "round $r: the agent was not killed at $point (exit $rc): $(cat "$tmp/agent.out")"; break
        fi
        kills=$((kills + 1))
        drawn="$drawn $point kdc:$moment"
        # Killed: the keytab is whole and the KDC (still issuing the current kvno) is served.
        if ! klist -k "$tmp/cms.keytab" >/dev/null 2>&1 || ! decrypts; then
            bad=1; ck_diag "round $r ($point): after the kill: $(cat "$tmp/kvno.out"); keytab $(kt_kvnos)"; break
        fi
        if ! agent || ! grep -q "confirmed=$staged" "$tmp/agent.out"; then
            bad=1; ck_diag "round $r ($point): the next round: $(cat "$tmp/agent.out")"; break
        fi
        kdc_kill "$moment" confirmed
        if ! activated "$staged" "$([ "$moment" = rot-after-activate ] && echo armed)"; then
            bad=1; ck_diag "round $r ($point, KDC $moment): kvno $staged not activated: $(rotstep kvnos "$SVC")"; break
        fi
        ck_settle
        if ! decrypts || ! grep -q "kvno = $staged" "$tmp/kvno.out"; then
            bad=1; ck_diag "round $r ($point): kvno $staged issued but: $(cat "$tmp/kvno.out")"; break
        fi
        rotstep purge "$SVC" >/dev/null || { bad=1; ck_diag "purge"; break; }
    done
    if [ $bad = 0 ]; then
        ok "$be: $ROUNDS rotations, the agent killed $kills times at seeded points, the KDC $kdc_kills times: every ticket the KDC issued decrypted with the keytab"
        ck_diag "points drawn:$(for p in "${AGENT_POINTS[@]}" "${KDC_MOMENTS[@]/#/kdc:}"; do printf ' %s=%s' "$p" "$(grep -o "$p\b" <<<"$drawn" | wc -l)"; done)"
    else
        not_ok "$be: kill -9 loop" "$(tail -n 5 "$tmp/kdc.log")"
    fi
    # The next round drops the kvnos purged on the KDC; the keytab ends with exactly the held ones.
    if agent && [ "$(kt_kvnos)" = "$(rotstep kvnos "$SVC" | sed -n 's/.*held=\([0-9,]*\).*/\1/p' | tr ',' '\n' | sort -n | tr '\n' ' ')" ]; then
        ok "$be: the keytab ends with exactly the kvnos the KDC holds ($(kt_kvnos))"
    else
        not_ok "$be: keytab kvnos equal the KDC's" "keytab $(kt_kvnos); KDC $(rotstep kvnos "$SVC"); $(cat "$tmp/agent.out")"
    fi
    realm_stop_kdc
}

# ---- SQLite ---------------------------------------------------------------------------------
realm_init TEST.REALM
run_backend sqlite

# ---- PostgreSQL -----------------------------------------------------------------------------
pg_start >"$tmp/pg.log" 2>&1 || bail "start a throw-away PostgreSQL" "$(cat "$tmp/pg.log")"
REALM=PG.TEST
DB="$CK_PG_URI"
STASH="$tmp/pg.stash"
write_krb5_conf "$KRB5_CONFIG" "127.0.0.1:$PORT"
timeout 60 "$CK_CLI" init --db "$DB" --stash "$STASH" --realm "$REALM" >"$tmp/init.log" 2>&1 </dev/null ||
    bail "cablekey init on PostgreSQL" "$(cat "$tmp/init.log")"
run_backend postgresql
done_testing
