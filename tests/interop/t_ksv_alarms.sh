#!/bin/bash
# Every alarm of the keying server provoked for real, in a network namespace (ksv_lib.sh):
#   SA_EXPIRED       a link under a 10 s policy; the KSV is stopped (SIGSTOP) before it can
#                    re-key, the nodes reach the lifetime, extend the SA and raise the alarm; after
#                    SIGCONT the KSV has it (`cablekey ksv alarms`) and re-keys the link;
#   SIGN_FAILED      a well-formed rekey datagram signed with another key (tests/tools/ksv_forge)
#                    multicast to the group: every member refuses it, keeps its key, alarms;
#   MALFORMED_PACKET a truncated copy of it;
#   replay           a real rekey datagram captured from the group and sent again: counted as
#                    replayed, nothing changes;
#   SERVER_CONFLICT  two KSVs whose topologies give the link d => a different policies; node d,
#                    registered with both, sends the alarm to both.
# shellcheck source=tests/interop/ksv_lib.sh
. "$(dirname "$0")/ksv_lib.sh"

FORGE="$CK_BUILD/ksv_forge"
[ -x "$FORGE" ] || bail "ksv_forge not built at $FORGE"
ksv_realm
ksv_add_service ksv1 ksv1.test
ksv_add_service ksv2 ksv2.test
declare -A ADDR=([a]=127.0.0.21 [b]=127.0.0.22 [c]=127.0.0.23 [d]=127.0.0.24)
for n in a b c d; do ksv_add_node "$n"; done
GADDR=239.192.9.1

cat >"$tmp/topo1.conf" <<EOF
ksv ksv1 127.0.0.1
policy short {
    TRANS-TYPE = ESP
    LIFE-SEC   = 10
    ENC-ALG    = aes-128-gcm
}
policy long {
    TRANS-TYPE = ESP
    LIFE-SEC   = 3600
    ENC-ALG    = aes-128-cbc
    AUTH-ALG   = hmac-sha256-128
}
policy grp {
    TRANS-TYPE = ESP
    LIFE-SEC   = 3600
    ENC-ALG    = aes-128-gcm
}
node a ${ADDR[a]}
node b ${ADDR[b]}
node c ${ADDR[c]}
node d ${ADDR[d]}
a <-> b short
d => a long
group g {
    address = $GADDR
    policy  = grp
    members = a b c
}
EOF
cat >"$tmp/topo2.conf" <<EOF
ksv ksv2 127.0.0.2
policy long2 {
    TRANS-TYPE = ESP
    LIFE-SEC   = 3600
    ENC-ALG    = aes-128-gcm
}
node a ${ADDR[a]}
node d ${ADDR[d]}
d => a long2
EOF
expect_output "--check: the alarm topology is valid" "OK" "$CK_KSVD" --config "$tmp/topo1.conf" --check

ksv_start ksv1 127.0.0.1:7441 "$tmp/topo1.conf" --batch-interval-ms 300
for n in a b c; do node_start "$n" "${ADDR[$n]}" ksv1; done
has_short_sa() { ksv_jqe "$1" 'any(.sas[]; .life_sec == 10)'; }
ab_ready() { registered a && registered b && has_short_sa a && has_short_sa b; }
ksv_wait 20 ab_ready || bail "a and b registered with the 10 s SA" "$(ksv_diag_nodes a b; tail -n 20 "$tmp/ksv1.log")"

# ---- SA_EXPIRED ----------------------------------------------------------------------------------
# Stopped now, the KSV cannot re-key at 75% of the 10 s: the nodes must extend.
link_gen() { ksv_cli ksv1 sas a && sed -n 's/^link=a=>b .* gen=\([0-9]*\) .*/\1/p' "$tmp/cli.out" | sort -n | tail -n 1; }
kill -STOP "$(ksv_pid ksv1)"
gen0=$(link_gen)
# (A slow start, as under ASan, may let one re-key through first: its SA expires instead.)
if [ "$(ps -o stat= -p "$(ksv_pid ksv1)" | cut -c1)" = T ] && has_short_sa a && has_short_sa b; then
    ok "KSV stopped (SIGSTOP) while a and b hold the 10 s SA"
else not_ok "KSV stopped (SIGSTOP) while a and b hold the 10 s SA" "$(grep 'ksv sa' "$tmp/ksv1.log")"; fi
extended() { ksv_jqe "$1" 'any(.sas[]; .life_sec == 10 and .extended) and ((.alarms_sent.SA_EXPIRED // 0) >= 1)'; }
if ksv_wait 25 extended a; then ok "a extended its expired SA and sent SA_EXPIRED (its status)"
else not_ok "a extended its expired SA and sent SA_EXPIRED (its status)" "$(ksv_diag_nodes a)"; fi
assert_file_grep "a's log: node alarm sent type=SA_EXPIRED" "node alarm sent type=SA_EXPIRED" "$tmp/a.log"
if ksv_jqe a '[.sas[] | select(.life_sec == 10)] | length == 2'; then
    ok "a still holds both directions of the extended SA"
else not_ok "a still holds both directions of the extended SA" "$(ksv_diag_nodes a)"; fi
kill -CONT "$(ksv_pid ksv1)"
alarm_seen() { ksv_cli "$1" alarms --max 100 && grep -Eq "^time=[0-9T:Z-]+ node=$2 type=$3 detail=" "$tmp/cli.out"; }
if ksv_wait 15 alarm_seen ksv1 '(a|b)' SA_EXPIRED; then ok "after SIGCONT: cablekey ksv alarms shows SA_EXPIRED"
else not_ok "after SIGCONT: cablekey ksv alarms shows SA_EXPIRED" "$(cat "$tmp/cli.out" "$tmp/cli.err"; tail -n 10 "$tmp/ksv1.log")"; fi
assert_file_grep "KSV log: ksv alarm ... type=SA_EXPIRED" "ksv alarm node=(a|b) type=SA_EXPIRED" "$tmp/ksv1.log"
rekeyed() { local g; g=$(link_gen); [ -n "$g" ] && [ "$g" -gt "${gen0:-0}" ] &&
    ksv_jqe a 'any(.sas[]; .extended) | not'; }
if ksv_wait 20 rekeyed; then ok "the KSV re-keyed the link (generation $gen0 -> $(link_gen)) and a runs on fresh SAs"
else not_ok "the KSV re-keyed the link after the alarm and a runs on fresh SAs" "generation before $gen0; $(cat "$tmp/cli.out"; ksv_diag_nodes a)"; fi

# ---- group ready ---------------------------------------------------------------------------------
GID=$(ksv_group_id ksv1 g)
[ -n "$GID" ] || bail "group id of g" "$(cat "$tmp/cli.out" "$tmp/cli.err")"
ksv_wait 20 same_epoch "$GID" a b c || bail "a, b, c hold the group key" "$(ksv_diag_nodes a b c)"
ok "a, b, c hold the group key of g (id $GID)"
kc0=$(kc a "$GID")
kcs0="$(kc a "$GID") $(kc b "$GID") $(kc c "$GID")"
kcs() { echo "$(kc a "$GID") $(kc b "$GID") $(kc c "$GID")"; }
EP=$(ksv_group_epoch ksv1 g)
counter() { ksv_jq "$1" ".rekeys.$2 // empty"; }
alarm_count() { ksv_jq "$1" ".alarms_sent.$2 // 0"; }

# ---- SIGN_FAILED: signed with another key ------------------------------------------------------
GDEG=$(ksv_group_field ksv1 g degree); GCAP=$(ksv_group_field ksv1 g capacity)
ck_run "$FORGE" forge "$GID" $((EP + 100)) "$GDEG" "$GCAP" "$tmp/forged.bin" ||
    bail "ksv_forge forge" "$(ck_last_output)"
ok "forged a rekey datagram for group $GID epoch $((EP + 100)) ($(cat "$tmp/last.out"))"
for n in a b c; do eval "bs0_$n=$(counter $n bad_sig || echo 0)"; done
expect_success "ksv_forge sends it to $GADDR:$KSV_MCAST_PORT" "$FORGE" send "$tmp/forged.bin" "$GADDR:$KSV_MCAST_PORT" 127.0.0.1
for n in a b c; do
    eval "b0=\$bs0_$n"
    more_bad() { [ "$(counter "$1" bad_sig)" -gt "$2" ] 2>/dev/null && [ "$(alarm_count "$1" SIGN_FAILED)" -ge 1 ] 2>/dev/null; }
    if ksv_wait 10 more_bad "$n" "$b0"; then ok "$n counts a bad signature and sends SIGN_FAILED"
    else not_ok "$n counts a bad signature and sends SIGN_FAILED" "$(ksv_diag_nodes "$n")"; fi
done
if [ "$(kcs)" = "$kcs0" ] && same_epoch "$GID" a b c && [ "$(g_epoch a "$GID")" -le "$EP" ]; then
    ok "the forged datagram changed no member's key or epoch"
else not_ok "the forged datagram changed no member's key or epoch" "$(ksv_diag_nodes a b c)"; fi
if ksv_wait 10 alarm_seen ksv1 '(a|b|c)' SIGN_FAILED; then ok "cablekey ksv alarms shows SIGN_FAILED"
else not_ok "cablekey ksv alarms shows SIGN_FAILED" "$(cat "$tmp/cli.out")"; fi

# ---- MALFORMED_PACKET: a truncated copy ----------------------------------------------------------
for n in a b c; do eval "mf0_$n=$(counter $n malformed || echo 0)"; done
expect_success "ksv_forge sends a truncated copy (40 bytes)" "$FORGE" send "$tmp/forged.bin" "$GADDR:$KSV_MCAST_PORT" 127.0.0.1 40
for n in a b c; do
    eval "m0=\$mf0_$n"
    more_mal() { [ "$(counter "$1" malformed)" -gt "$2" ] 2>/dev/null && [ "$(alarm_count "$1" MALFORMED_PACKET)" -ge 1 ] 2>/dev/null; }
    if ksv_wait 10 more_mal "$n" "$m0"; then ok "$n counts a malformed rekey and sends MALFORMED_PACKET"
    else not_ok "$n counts a malformed rekey and sends MALFORMED_PACKET" "$(ksv_diag_nodes "$n")"; fi
done
if ksv_wait 10 alarm_seen ksv1 '(a|b|c)' MALFORMED_PACKET; then ok "cablekey ksv alarms shows MALFORMED_PACKET"
else not_ok "cablekey ksv alarms shows MALFORMED_PACKET" "$(cat "$tmp/cli.out")"; fi
if [ "$(kcs)" = "$kcs0" ] && same_epoch "$GID" a b c; then ok "the truncated datagram changed nothing"
else not_ok "the truncated datagram changed nothing" "$(ksv_diag_nodes a b c)"; fi

# ---- replay: a real datagram captured and sent again -------------------------------------------
"$FORGE" capture "$GADDR:$KSV_MCAST_PORT" 127.0.0.1 "$tmp/real.bin" 20 >"$tmp/capture.out" 2>&1 &
CAP=$!
CK_BG_PIDS+=("$CAP")
wait_file_grep "$tmp/capture.out" "^listening" || bail "ksv_forge capture started" "$(cat "$tmp/capture.out")"
expect_output "revoke g c (a real batch to capture)" "^revoked " "$CK_CLI" ksv revoke g c --db "$tmp/ksv1.db"
wait "$CAP"; caprc=$?
if [ $caprc -eq 0 ] && grep -q "^captured group=$GID " "$tmp/capture.out"; then ok "captured the real rekey ($(grep captured "$tmp/capture.out"))"
else not_ok "captured the real rekey" "exit $caprc; $(cat "$tmp/capture.out")"; fi
if ksv_wait 20 kc_moved "$GID" "$kc0" a b; then ok "a and b applied the real batch"
else not_ok "a and b applied the real batch" "$(ksv_diag_nodes a b)"; fi
kc1=$(kc a "$GID"); ep1=$(g_epoch a "$GID")
rp_a=$(counter a replayed || echo 0); rp_b=$(counter b replayed || echo 0)
ap_a=$(counter a applied || echo 0)
expect_success "the captured datagram is sent again" "$FORGE" send "$tmp/real.bin" "$GADDR:$KSV_MCAST_PORT" 127.0.0.1
more_replayed() { [ "$(counter "$1" replayed)" -gt "$2" ] 2>/dev/null; }
if ksv_wait 10 more_replayed a "$rp_a" && ksv_wait 10 more_replayed b "$rp_b"; then
    ok "a and b count the datagram as replayed"
else not_ok "a and b count the datagram as replayed" "$(ksv_diag_nodes a b)"; fi
if [ "$(kc a "$GID")" = "$kc1" ] && [ "$(g_epoch a "$GID")" = "$ep1" ] && [ "$(counter a applied)" = "$ap_a" ] &&
   same_kc "$GID" a b; then ok "the replay changed nothing (key, epoch, applied count)"
else not_ok "the replay changed nothing (key, epoch, applied count)" "$(ksv_diag_nodes a b)"; fi
if [ "$(alarm_count a SIGN_FAILED)" -le 1 ] 2>/dev/null; then ok "a replay raises no SIGN_FAILED"
else not_ok "a replay raises no SIGN_FAILED" "$(ksv_diag_nodes a)"; fi

# ---- SERVER_CONFLICT: two KSVs disagree on d => a ------------------------------------------------
ksv_start ksv2 127.0.0.2:7441 "$tmp/topo2.conf"
node_start d "${ADDR[d]}" "ksv1 ksv2"
# a is a node of ksv2's topology too, but registered with ksv1 only: it is d that hears both.
conflict() { [ "$(alarm_count d SERVER_CONFLICT)" -ge 1 ] 2>/dev/null; }
if ksv_wait 25 conflict; then ok "d (registered with both KSVs) detects the conflict and sends SERVER_CONFLICT"
else not_ok "d (registered with both KSVs) detects the conflict and sends SERVER_CONFLICT" "$(ksv_diag_nodes d; tail -n 5 "$tmp/ksv2.log")"; fi
assert_file_grep "d's log: node alarm sent type=SERVER_CONFLICT" "node alarm sent type=SERVER_CONFLICT" "$tmp/d.log"
if ksv_wait 15 alarm_seen ksv1 d SERVER_CONFLICT; then ok "KSV 1 has the SERVER_CONFLICT alarm of d"
else not_ok "KSV 1 has the SERVER_CONFLICT alarm of d" "$(cat "$tmp/cli.out"; tail -n 5 "$tmp/ksv1.log")"; fi
if ksv_wait 15 alarm_seen ksv2 d SERVER_CONFLICT; then ok "KSV 2 has the SERVER_CONFLICT alarm of d"
else not_ok "KSV 2 has the SERVER_CONFLICT alarm of d" "$(cat "$tmp/cli.out"; tail -n 5 "$tmp/ksv2.log")"; fi
assert_file_grep "KSV 2 log: ksv alarm node=d type=SERVER_CONFLICT" "ksv alarm node=d type=SERVER_CONFLICT" "$tmp/ksv2.log"
if ksv_cli ksv1 status && grep -Eq "^alarms count=([4-9]|[1-9][0-9]+)\+?$" "$tmp/cli.out"; then
    ok "cablekey ksv status counts the alarms"
else not_ok "cablekey ksv status counts the alarms" "$(cat "$tmp/cli.out")"; fi

# ---- shutdown -------------------------------------------------------------------------------------
nodes_stop "the node agents stop (no sanitizer report)" a b c d
ksv_stop ksv1 "KSV 1 stops cleanly on SIGTERM (exit 0, no sanitizer report)"
ksv_stop ksv2 "KSV 2 stops cleanly on SIGTERM (exit 0, no sanitizer report)"
realm_stop_kdc
done_testing
