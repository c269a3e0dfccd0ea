#!/bin/bash
# kill -9 of cablekey-ksv at each crash point of CONTRACT11 (CK_KSV_CRASH=POINT:N makes the
# daemon SIGKILL itself the Nth time it reaches POINT), then a restart, in a network namespace
# (ksv_lib.sh) with four node agents and one LKH group (ACK-REQD). Each round drives the event
# that reaches its point (a revocation batch, a re-admission join, a new link SA by reload, a
# node's registration) until the KSV dies, restarts it and checks:
#   - it died by SIGKILL (the point was reached);
#   - the stored epoch never goes backwards, and no member holds an epoch the store does not
#     (commit before send);
#   - every node registers again; no member is lost: the members converge to one key_check
#     after the next batch, the revoked one is re-admitted by --lift;
#   - the SAs still match at both ends, exactly as the topology says;
#   - across all rounds, per member (epoch, version) only grows, and one (epoch, version) has
#     one key-check whoever reports it (no epoch reused with another key).
# CK_KSV_CRASH_ROUNDS (default 6: each point once) and CK_KSV_CRASH_SEED (default 11) choose the
# rounds: round r takes point r mod 6 and N = 1 + (a seeded draw mod 2). `make soak` runs 1000.
# shellcheck source=tests/interop/ksv_lib.sh
. "$(dirname "$0")/ksv_lib.sh"

ROUNDS=${CK_KSV_CRASH_ROUNDS:-6}
SEED=${CK_KSV_CRASH_SEED:-11}
POINTS=(batch-before-commit batch-after-commit batch-mid-send join-after-commit sa-after-commit
        register-mid-send)
ksv_realm
ksv_add_service ksv1 ksv1.test
NODES="n1 n2 n3 n4"
MEMBERS_KEPT="n1 n2 n3"
declare -A ADDR=([n1]=127.0.0.31 [n2]=127.0.0.32 [n3]=127.0.0.33 [n4]=127.0.0.34)
for n in $NODES; do ksv_add_node "$n"; done

write_topo() { # write_topo FILE WITH_EXTRA_LINK(0|1)
    {
        cat <<EOF
ksv ksv1 127.0.0.1
policy p {
    TRANS-TYPE = ESP
    LIFE-SEC   = 3600
    ENC-ALG    = aes-128-gcm
    ACK-REQD   = yes
}
policy grp {
    TRANS-TYPE = ESP
    LIFE-SEC   = 3600
    ENC-ALG    = aes-128-gcm
    ACK-REQD   = yes
}
node n1 ${ADDR[n1]}
node n2 ${ADDR[n2]}
node n3 ${ADDR[n3]}
node n4 ${ADDR[n4]}
n1 <-> n2 p
n2 <-> n3 p
group g {
    address = 239.192.8.1
    policy  = grp
    members = n1 n2 n3 n4
}
EOF
        [ "$2" = 1 ] && echo "n1 => n3 p"
    } >"$1"
}
write_topo "$tmp/topo-0.conf" 0
write_topo "$tmp/topo-1.conf" 1
cp "$tmp/topo-0.conf" "$tmp/topo.conf"
LINK=0
write_spec() { # write_spec FILE WITH_EXTRA_LINK
    {
        echo "n1 ${ADDR[n1]} out:${ADDR[n2]}:esp:3600"
        echo "n1 ${ADDR[n1]} in:${ADDR[n2]}:esp:3600"
        echo "n2 ${ADDR[n2]} out:${ADDR[n1]}:esp:3600"
        echo "n2 ${ADDR[n2]} in:${ADDR[n1]}:esp:3600"
        echo "n2 ${ADDR[n2]} out:${ADDR[n3]}:esp:3600"
        echo "n2 ${ADDR[n2]} in:${ADDR[n3]}:esp:3600"
        echo "n3 ${ADDR[n3]} out:${ADDR[n2]}:esp:3600"
        echo "n3 ${ADDR[n3]} in:${ADDR[n2]}:esp:3600"
        echo "n4 ${ADDR[n4]} -"
        if [ "$2" = 1 ]; then
            echo "n1 ${ADDR[n1]} out:${ADDR[n3]}:esp:3600"
            echo "n3 ${ADDR[n3]} in:${ADDR[n1]}:esp:3600"
        fi
    } >"$1"
}
write_spec "$tmp/spec-0" 0
write_spec "$tmp/spec-1" 1

MARK=0
ksv_mark() { MARK=$(wc -l <"$tmp/ksv1.log" 2>/dev/null || echo 0); }
# registered_since NODE: a "ksv register node=NODE ... result=ok" line after the mark.
registered_since() { tail -n +"$((MARK + 1))" "$tmp/ksv1.log" | grep -Eq "ksv register node=$1 .*result=ok"; }
all_registered_since() { local n; for n in $NODES; do registered_since "$n" || return 1; done; }
ksv_alive() { local p; p=$(ksv_pid ksv1); [ -n "$p" ] && kill -0 "$p" 2>/dev/null &&
    [ "$(ps -o stat= -p "$p" 2>/dev/null | cut -c1)" != Z ]; }
dead_or() { ! ksv_alive || "$@"; }
store_epoch() { ksv_group_epoch ksv1 g; }
n4_back() { [ "$(g_removed n4 "$GID")" = false ] && [ "$(g_epoch n4 "$GID")" = "$(store_epoch)" ]; }
has_link13() { ksv_jqe n1 "any(.sas[]; .dir == \"out\" and .peer == \"${ADDR[n3]}\")"; }

ksv_mark
ksv_start ksv1 127.0.0.1:7441 "$tmp/topo.conf" --batch-interval-ms 200
for n in $NODES; do node_start "$n" "${ADDR[$n]}" ksv1; done
ksv_wait 30 all_registered_since || bail "all nodes registered" "$(ksv_diag_nodes $NODES; tail -n 20 "$tmp/ksv1.log")"
GID=$(ksv_group_id ksv1 g)
[ -n "$GID" ] || bail "group id" "$(cat "$tmp/cli.out" "$tmp/cli.err")"
ksv_wait 20 same_epoch "$GID" $NODES || bail "the four members hold the group" "$(ksv_diag_nodes $NODES)"
ok "setup: four nodes registered, all members of group $GID"

# One event that reaches POINT; returns once its effect is seen or the KSV died.
event() { # event POINT
    case $1 in
        batch-*|join-*)
            local k; k=$(kc n1 "$GID")
            timeout 10 "$CK_CLI" ksv revoke g n4 --db "$tmp/ksv1.db" >/dev/null 2>&1 </dev/null
            ksv_wait 15 dead_or kc_moved "$GID" "$k" $MEMBERS_KEPT
            ksv_alive || return 0
            timeout 10 "$CK_CLI" ksv revoke g n4 --lift --db "$tmp/ksv1.db" >/dev/null 2>&1 </dev/null
            ksv_reload ksv1
            ksv_wait 15 dead_or n4_back
            ;;
        sa-*)
            LINK=$((1 - LINK))
            ksv_reload ksv1 "$tmp/topo-$LINK.conf"
            if [ $LINK = 1 ]; then ksv_wait 15 dead_or has_link13; else ksv_wait 15 dead_or eval '! has_link13'; fi
            ;;
        register-*)
            node_stop n3
            ksv_mark
            node_start n3 "${ADDR[n3]}" ksv1
            ksv_wait 15 dead_or registered_since n3
            ;;
    esac
}

RANDOM=$SEED
max_epoch=$(store_epoch)
for ((r = 0; r < ROUNDS; r++)); do
    point=${POINTS[$((r % ${#POINTS[@]}))]}
    nth=$((1 + RANDOM % 2))
    tag="round $((r + 1))/$ROUNDS $point:$nth"
    ksv_stop ksv1
    ksv_mark
    CK_KSV_CRASH="$point:$nth" ksv_start ksv1 127.0.0.1:7441 "$tmp/topo.conf" --batch-interval-ms 200
    # The nodes' registrations themselves may reach the point (register-mid-send does).
    if ! ksv_wait 30 dead_or all_registered_since; then
        not_ok "$tag: nodes registered again before the crash" "$(tail -n 20 "$tmp/ksv1.log")"
    fi
    e=0
    while [ $e -lt $((nth + 2)) ] && ksv_alive; do
        event "$point"
        ep=$(store_epoch); [ -n "$ep" ] && [ "$ep" -gt "$max_epoch" ] && max_epoch=$ep
        e=$((e + 1))
    done
    ksv_wait 5 eval '! ksv_alive'
    if ksv_alive; then
        not_ok "$tag: the KSV reached the crash point" "still running after $((nth + 2)) events"
        continue
    fi
    ksv_reap ksv1; rc=$KSV_RC
    if [ "$rc" = 137 ]; then ok "$tag: the KSV died by SIGKILL at its crash point"
    else not_ok "$tag: the KSV died by SIGKILL at its crash point" "exit status $rc; $(tail -n 10 "$tmp/ksv1.stderr" "$tmp/ksv1.log")"; fi
    crash_epoch=$(store_epoch)
    bad=""
    [ -n "$crash_epoch" ] && [ "$crash_epoch" -ge "$max_epoch" ] || bad="stored epoch $crash_epoch < $max_epoch seen before;"
    for n in $NODES; do
        ge=$(g_epoch "$n" "$GID")
        [ -z "$ge" ] || [ "$ge" -le "$crash_epoch" ] || bad="$bad $n holds epoch $ge beyond the stored $crash_epoch;"
    done
    if [ -z "$bad" ]; then ok "$tag: stored epoch $crash_epoch >= every epoch seen or held by a member"
    else not_ok "$tag: stored epoch >= every epoch seen or held by a member" "$bad"; fi

    # Restart without the crash point: everything must come back.
    ksv_mark
    ksv_start ksv1 127.0.0.1:7441 "$tmp/topo.conf" --batch-interval-ms 200
    if ksv_wait 30 all_registered_since; then ok "$tag: after the restart every node registers again"
    else not_ok "$tag: after the restart every node registers again" "$(tail -n 20 "$tmp/ksv1.log")"; fi
    after=$(store_epoch)
    if [ -n "$after" ] && [ "$after" -ge "$crash_epoch" ]; then ok "$tag: the epoch did not go back ($crash_epoch -> $after)"
    else not_ok "$tag: the epoch did not go back" "$crash_epoch -> $after"; fi
    # n4 out (a revocation may already be pending from the crash), then a batch all others take.
    timeout 10 "$CK_CLI" ksv revoke g n4 --db "$tmp/ksv1.db" >/dev/null 2>&1 </dev/null
    conv() { same_kc "$GID" $MEMBERS_KEPT && [ "$(g_epoch n1 "$GID")" = "$(store_epoch)" ] &&
        [ "$(kc n4 "$GID")" != "$(kc n1 "$GID")" ] && ksv_cli ksv1 members g &&
        grep -Eq "^node=n4 .*revoked=yes$" "$tmp/cli.out"; }
    if ksv_wait 30 conv; then ok "$tag: n1, n2, n3 converge on one key at the stored epoch, n4 revoked"
    else not_ok "$tag: n1, n2, n3 converge on one key at the stored epoch, n4 revoked" "$(ksv_diag_nodes $NODES; cat "$tmp/cli.out")"; fi
    timeout 10 "$CK_CLI" ksv revoke g n4 --lift --db "$tmp/ksv1.db" >/dev/null 2>&1 </dev/null
    ksv_reload ksv1
    if ksv_wait 30 n4_back && ksv_cli ksv1 members g &&
       [ "$(grep -c 'state=active revoked=no' "$tmp/cli.out")" = 4 ]; then
        ok "$tag: no member lost: n4 re-admitted, four active members"
    else not_ok "$tag: no member lost: n4 re-admitted, four active members" "$(ksv_diag_nodes n4; cat "$tmp/cli.out")"; fi
    if ksv_wait 20 ksv_check_sas "$tmp/spec-$LINK"; then ok "$tag: SAs match at both ends"
    else not_ok "$tag: SAs match at both ends" "$(ksv_check_sas "$tmp/spec-$LINK")"; fi
    max_epoch=$(store_epoch)
done

if out=$(ksv_group_log_check $NODES); then ok "all rounds: per member (epoch, version) only grows, one key-check per (epoch, version)"
else not_ok "all rounds: per member (epoch, version) only grows, one key-check per (epoch, version)" "$out"; fi
if [ -z "$(ksv_sanitizer ksv1)" ]; then ok "no sanitizer report from any KSV run"
else not_ok "no sanitizer report from any KSV run" "$(ksv_sanitizer ksv1)"; fi

nodes_stop "the node agents stop (no sanitizer report)" $NODES
ksv_stop ksv1 "cablekey-ksv stops cleanly on SIGTERM (exit 0)"
realm_stop_kdc
done_testing
