#!/bin/bash
# cablekey-ksv end to end, in a network namespace of its own (ksv_lib.sh): a KDC, one KSV and
# five `cablekey node` agents at 127.0.0.11-15. A topology with both link kinds (=> and <->),
# ESP and AH policies (one ACK-REQD), an LKH group and an EK group. Checks: `--check` (OK, and
# a link defined twice, a node in two groups of one address, an unknown policy as FILE:LINE
# errors with exit 1); every node's own status holds exactly the SAs the topology implies, with
# the SPIs matching at both ends; ESP data between two nodes under the pushed SAs; a reload
# that removes one link (DELETE at both ends) and adds one (pushed), nothing else moving; group
# keys measured by the members themselves: one key_check for all, a revocation leaves the
# revoked member on the old key while the others move to a new common one, a reload does not
# re-admit it, --lift does; a member stopped (SIGSTOP) across two revocations recovers; the
# `cablekey ksv` views; one KSV log line per registration and per rekey batch.
# shellcheck source=tests/interop/ksv_lib.sh
. "$(dirname "$0")/ksv_lib.sh"

ksv_realm
ksv_add_service ksv1 ksv1.test
NODES="n1 n2 n3 n4 n5"
declare -A ADDR=([n1]=127.0.0.11 [n2]=127.0.0.12 [n3]=127.0.0.13 [n4]=127.0.0.14 [n5]=127.0.0.15)
for n in $NODES; do ksv_add_node "$n"; done
ESP_PORT=7500

# ---- topology and --check ---------------------------------------------------------------------
write_topo() { # write_topo FILE VARIANT (a: initial; b: n1=>n3 removed, n5=>n1 added)
    {
        cat <<EOF
# t_ksv topology
ksv ksv1 127.0.0.1

policy fast {
    TRANS-TYPE = ESP
    LIFE-SEC   = 3600
    ENC-ALG    = aes-128-cbc
    AUTH-ALG   = hmac-sha256-128
    ACK-REQD   = yes
}
policy auth {
    TRANS-TYPE = AH
    LIFE-SEC   = 1800
    AUTH-ALG   = hmac-sha256-128
}
policy media {
    TRANS-TYPE = ESP
    LIFE-SEC   = 900
    ENC-ALG    = aes-128-gcm
}

node n1 127.0.0.11
node n2 127.0.0.12
node n3 127.0.0.13
node n4 127.0.0.14
node n5 127.0.0.15 ksv ksv1

n1 <-> n2 fast
n2 => n4 fast
n3 <-> n4 auth
EOF
        if [ "$2" = a ]; then echo "n1 => n3 auth"; else echo "n5 => n1 fast"; fi
        cat <<EOF

group glkh {
    address = 239.192.7.1
    policy  = fast
    members = n1 n2 n3
    members = n4 n5
    degree  = 2
}
group gek {
    address = 239.192.7.2
    policy  = media
    members = n1 n2 n4
    keying  = ek
}
EOF
    } >"$1"
}
write_topo "$tmp/topo-a.conf" a
write_topo "$tmp/topo-b.conf" b
cp "$tmp/topo-a.conf" "$tmp/topo.conf"

expect_output "--check accepts the topology (exit 0, OK)" "OK" \
    "$CK_KSVD" --config "$tmp/topo-a.conf" --check

# Each bad file: the line of the offending statement must be named.
cp "$tmp/topo-a.conf" "$tmp/bad-twice.conf"
echo "n2 => n1 media" >>"$tmp/bad-twice.conf"
L_TWICE=$(wc -l <"$tmp/bad-twice.conf")
cp "$tmp/topo-a.conf" "$tmp/bad-group.conf"
cat >>"$tmp/bad-group.conf" <<'EOF'
group other {
    address = 239.192.7.1
    policy  = media
    members = n5
}
EOF
L_GROUP=$(wc -l <"$tmp/bad-group.conf"); L_GROUP=$((L_GROUP - 1))
cp "$tmp/topo-a.conf" "$tmp/bad-policy.conf"
echo "n5 => n4 nosuchpolicy" >>"$tmp/bad-policy.conf"
L_POL=$(wc -l <"$tmp/bad-policy.conf")
cat "$tmp/bad-twice.conf" >"$tmp/bad-all.conf"
echo "n5 => n4 nosuchpolicy" >>"$tmp/bad-all.conf"
L_ALL=$(wc -l <"$tmp/bad-all.conf")

check_bad() { # check_bad DESC FILE LINE WORDS
    local desc=$1 f=$2 line=$3 words=$4 rc
    ck_run "$CK_KSVD" --config "$f" --check; rc=$?
    if [ $rc -eq 1 ] && grep -Eq -- "$(basename "$f"):$line: .*($words)" "$tmp/last.out" "$tmp/last.err"; then
        ok "$desc"
    else
        not_ok "$desc" "exit $rc (want 1), want '$(basename "$f"):$line: ...$words'; output:
$(ck_last_output)"
    fi
}
check_bad "--check: a link defined twice is FILE:LINE, exit 1" "$tmp/bad-twice.conf" "$L_TWICE" "twice"
check_bad "--check: a node in two groups of one address is FILE:LINE, exit 1" \
    "$tmp/bad-group.conf" "$L_GROUP" "two groups"
check_bad "--check: an unknown policy is FILE:LINE, exit 1" "$tmp/bad-policy.conf" "$L_POL" \
    "unknown policy"
ck_run "$CK_KSVD" --config "$tmp/bad-all.conf" --check; rc=$?
if [ $rc -eq 1 ] && grep -q "bad-all.conf:$L_TWICE:" "$tmp/last.out" "$tmp/last.err" &&
   grep -q "bad-all.conf:$L_ALL:" "$tmp/last.out" "$tmp/last.err"; then
    ok "--check lists every error, not only the first"
else
    not_ok "--check lists every error, not only the first" "exit $rc; $(ck_last_output)"
fi

# ---- KSV and nodes ------------------------------------------------------------------------------
ksv_start ksv1 127.0.0.1:7441 "$tmp/topo.conf" --batch-interval-ms 300
# n2 first, so that its inbound SA from n1 is in place when n1 sends its ESP datagram.
node_start n2 "${ADDR[n2]}" ksv1 --esp-listen "${ADDR[n2]}:$ESP_PORT"
ksv_wait 20 registered n2 || bail "n2 registered" "$(ksv_diag_nodes n2; tail -n 20 "$tmp/ksv1.log")"
for n in n3 n4 n5; do node_start "$n" "${ADDR[$n]}" ksv1 --esp-listen "${ADDR[$n]}:$ESP_PORT"; done
node_start n1 "${ADDR[n1]}" ksv1 --esp-listen "${ADDR[n1]}:$ESP_PORT" \
    --esp-send "n2=${ADDR[n2]}:$ESP_PORT:hello-from-n1"
all_registered() { local n; for n in $NODES; do registered "$n" || return 1; done; }
if ksv_wait 30 all_registered; then ok "all five nodes registered (their own status)"; else
    bail "all five nodes registered" "$(ksv_diag_nodes $NODES; tail -n 20 "$tmp/ksv1.log")"; fi

# ---- SAs: exactly the topology's, SPIs matching -------------------------------------------------
write_spec() { # write_spec FILE VARIANT
    {
        echo "n1 ${ADDR[n1]} out:${ADDR[n2]}:esp:3600"
        echo "n1 ${ADDR[n1]} in:${ADDR[n2]}:esp:3600"
        echo "n2 ${ADDR[n2]} out:${ADDR[n1]}:esp:3600"
        echo "n2 ${ADDR[n2]} in:${ADDR[n1]}:esp:3600"
        echo "n2 ${ADDR[n2]} out:${ADDR[n4]}:esp:3600"
        echo "n4 ${ADDR[n4]} in:${ADDR[n2]}:esp:3600"
        echo "n3 ${ADDR[n3]} out:${ADDR[n4]}:ah:1800"
        echo "n3 ${ADDR[n3]} in:${ADDR[n4]}:ah:1800"
        echo "n4 ${ADDR[n4]} out:${ADDR[n3]}:ah:1800"
        echo "n4 ${ADDR[n4]} in:${ADDR[n3]}:ah:1800"
        if [ "$2" = a ]; then
            echo "n1 ${ADDR[n1]} out:${ADDR[n3]}:ah:1800"
            echo "n3 ${ADDR[n3]} in:${ADDR[n1]}:ah:1800"
            echo "n5 ${ADDR[n5]} -"
        else
            echo "n5 ${ADDR[n5]} out:${ADDR[n1]}:esp:3600"
            echo "n1 ${ADDR[n1]} in:${ADDR[n5]}:esp:3600"
            echo "n3 ${ADDR[n3]} -"
        fi
    } >"$1"
}
write_spec "$tmp/spec-a" a
write_spec "$tmp/spec-b" b
if ksv_wait 20 ksv_check_sas "$tmp/spec-a"; then
    ok "each node holds exactly the SAs of the topology (dir, peer, proto, lifetime), SPIs match at both ends"
else
    not_ok "each node holds exactly the SAs of the topology (dir, peer, proto, lifetime), SPIs match at both ends" \
        "$(ksv_check_sas "$tmp/spec-a")"
fi
if ksv_jqe n1 '(.sas | length > 0) and all(.sas[]; .extended == false and .ksv == 0)'; then
    ok "no SA is extended, all from KSV 0"
else not_ok "no SA is extended, all from KSV 0" "$(ksv_diag_nodes n1)"; fi
# The REGISTER printed each SA as an ip xfrm command.
assert_file_grep "n1 prints its SAs as ip xfrm state commands" \
    "ip xfrm state add src ${ADDR[n1]} dst ${ADDR[n2]} proto esp spi 0x" "$tmp/n1.log"

# ---- ESP data under the pushed SAs -------------------------------------------------------------
if ksv_wait 20 grep -Eq "esp recv from=(n1|${ADDR[n1]}) spi=0x[0-9a-f]+ text=hello-from-n1" "$tmp/n2.log"; then
    ok "ESP data n1 -> n2 under the pushed SAs (n2 decrypts hello-from-n1)"
else
    not_ok "ESP data n1 -> n2 under the pushed SAs (n2 decrypts hello-from-n1)" \
        "$(tail -n 10 "$tmp/n1.log" "$tmp/n2.log")"
fi
spi_in=$(ksv_jq n2 "[.sas[] | select(.dir == \"in\" and .peer == \"${ADDR[n1]}\") | .spi][0] // empty")
if [ -n "$spi_in" ] && grep -Eq "esp recv .*spi=0x0*$(printf '%x' "$spi_in") " "$tmp/n2.log"; then
    ok "the ESP datagram used n2's inbound SPI from n1 (0x$(printf '%x' "$spi_in"))"
else
    not_ok "the ESP datagram used n2's inbound SPI from n1" "spi_in=$spi_in; $(grep 'esp recv' "$tmp/n2.log")"
fi

# ---- CLI views ---------------------------------------------------------------------------------
if ksv_cli ksv1 status && grep -q "^nodes registered=5$" "$tmp/cli.out" &&
   grep -q "^groups count=2$" "$tmp/cli.out" && grep -Eq "^group name=glkh id=[0-9]+ epoch=[0-9]+$" "$tmp/cli.out" &&
   grep -Eq "^sas count=[0-9]+$" "$tmp/cli.out" && grep -q "^revocations count=0 pending=0$" "$tmp/cli.out" &&
   grep -Eq "^alarms count=[0-9]+$" "$tmp/cli.out"; then
    ok "cablekey ksv status: 5 nodes, 2 groups, no revocation"
else not_ok "cablekey ksv status: 5 nodes, 2 groups, no revocation" "$(cat "$tmp/cli.out" "$tmp/cli.err")"; fi
if ksv_cli ksv1 groups && grep -Eq "^glkh id=[0-9]+ epoch=[0-9]+ keying=lkh degree=2 capacity=[0-9]+ spi=0x[0-9a-f]{8} members=5 left=0$" "$tmp/cli.out" &&
   grep -Eq "^gek id=[0-9]+ epoch=[0-9]+ keying=ek degree=[0-9]+ capacity=[0-9]+ spi=0x[0-9a-f]{8} members=3 left=0$" "$tmp/cli.out"; then
    ok "cablekey ksv groups: glkh (lkh, degree 2, 5 members), gek (ek, 3 members)"
else not_ok "cablekey ksv groups: glkh (lkh, degree 2, 5 members), gek (ek, 3 members)" "$(cat "$tmp/cli.out" "$tmp/cli.err")"; fi
GL=$(ksv_group_id ksv1 glkh); GE=$(ksv_group_id ksv1 gek)
[ -n "$GL" ] && [ -n "$GE" ] || bail "group ids from cablekey ksv groups" "$(cat "$tmp/cli.out" "$tmp/cli.err")"
if ksv_cli ksv1 members glkh && [ "$(grep -Ec '^node=n[1-5] member_id=[0-9]+ leaf=[0-9]+ state=active revoked=no$' "$tmp/cli.out")" = 5 ]; then
    ok "cablekey ksv members glkh: five active members"
else not_ok "cablekey ksv members glkh: five active members" "$(cat "$tmp/cli.out" "$tmp/cli.err")"; fi
# sas n1: the SPI n1 sends to n2 with is the one in the store.
spi_out=$(ksv_jq n1 "[.sas[] | select(.dir == \"out\" and .peer == \"${ADDR[n2]}\") | .spi][0] // empty")
if ksv_cli ksv1 sas n1 && [ -n "$spi_out" ] &&
   grep -Eq "^link=n1=>n2 spi=$(printf '0x%08x' "$spi_out") gen=1 policy=fast created=[0-9T:Z-]+ expires=[0-9T:Z-]+$" "$tmp/cli.out" &&
   [ "$(wc -l <"$tmp/cli.out")" = 3 ] && ! grep -qiE "key" "$tmp/cli.out"; then
    ok "cablekey ksv sas n1: its 3 link SAs with the SPIs the nodes hold, no key"
else not_ok "cablekey ksv sas n1: its 3 link SAs with the SPIs the nodes hold, no key" "spi_out=$spi_out; $(cat "$tmp/cli.out" "$tmp/cli.err")"; fi
expect_success "cablekey ksv alarms runs (exit 0)" "$CK_CLI" ksv alarms --db "$tmp/ksv1.db" --max 5
expect_output "cablekey ksv status --json is JSON" '"groups":\[' "$CK_CLI" ksv status --db "$tmp/ksv1.db" --json
expect_failure "cablekey ksv members of an unknown group: exit 1" "no group 'nosuch'" \
    "$CK_CLI" ksv members nosuch --db "$tmp/ksv1.db"
ck_run "$CK_CLI" ksv revoke glkh --db "$tmp/ksv1.db"
if [ $? -eq 2 ] && grep -q "GROUP NODE is required" "$tmp/last.err"; then ok "ksv revoke without NODE: usage error, exit 2"
else not_ok "ksv revoke without NODE: usage error, exit 2" "$(ck_last_output)"; fi
expect_failure "ksv status on a missing store: exit 1" "no KSV store" \
    "$CK_CLI" ksv status --db "$tmp/nosuch.db"

# ---- groups: one key for all members ------------------------------------------------------------
# LKH+ joins are not multicast: each member holds the root key at the version of its own join
# and hashes forward only when it meets a higher one, so the members' key_checks agree after the
# first batch (below), not before. Here: all hold the group, at one epoch, none removed.
if ksv_wait 20 same_epoch "$GL" $NODES; then ok "glkh: all five members hold the group key at one epoch"; else
    not_ok "glkh: all five members hold the group key at one epoch" "$(ksv_diag_nodes $NODES)"; fi
if ksv_wait 20 same_kc "$GE" n1 n2 n4; then ok "gek (EK): n1, n2, n4 report one key_check"; else
    not_ok "gek (EK): n1, n2, n4 report one key_check" "$(ksv_diag_nodes n1 n2 n4)"; fi
if [ -z "$(kc n3 "$GE")" ] && [ -z "$(kc n5 "$GE")" ]; then ok "gek: n3 and n5 (not members) hold no key"
else not_ok "gek: n3 and n5 (not members) hold no key" "$(ksv_diag_nodes n3 n5)"; fi

# ---- reload: one link removed, one added, nothing else moves ------------------------------------
for n in $NODES; do ksv_sa_spis "$n" >"$tmp/spis-before-$n"; done
kc_before=$(kc n1 "$GL")
ksv_reload ksv1 "$tmp/topo-b.conf"
if ksv_wait 20 ksv_check_sas "$tmp/spec-b"; then
    ok "reload: n1 => n3 deleted at both ends, n5 => n1 pushed to both, SPIs match"
else
    not_ok "reload: n1 => n3 deleted at both ends, n5 => n1 pushed to both, SPIs match" "$(ksv_check_sas "$tmp/spec-b")"
fi
moved=""
for n in $NODES; do
    ksv_sa_spis "$n" >"$tmp/spis-after-$n"
    # Lines present before and not about the changed links must all still be there.
    while read -r l; do
        case $l in *":${ADDR[n3]}:"*) [ "$n" = n1 ] && continue ;; esac
        case $l in *":${ADDR[n1]}:"*) [ "$n" = n3 ] && continue ;; esac
        grep -qxF "$l" "$tmp/spis-after-$n" || moved="$moved $n:$l"
    done <"$tmp/spis-before-$n"
done
if [ -z "$moved" ]; then ok "reload: every other SA kept its SPI"; else not_ok "reload: every other SA kept its SPI" "$moved"; fi
if [ "$(kc n1 "$GL")" = "$kc_before" ] && [ "$(g_epoch n1 "$GL")" = "$(ksv_group_epoch ksv1 glkh)" ] &&
   same_epoch "$GL" $NODES; then ok "reload without group change: no rekey"
else not_ok "reload without group change: no rekey" "$(ksv_diag_nodes n1)"; fi
assert_file_grep "KSV log: the deleted link" "ksv sa link=n1=>n3 spi=0x[0-9a-f]+ gen=[0-9]+ action=delete" "$tmp/ksv1.log"
assert_file_grep "KSV log: the pushed link" "ksv sa link=n5=>n1 spi=0x[0-9a-f]+ gen=[0-9]+ action=push" "$tmp/ksv1.log"

# ---- revocation, measured by the members -------------------------------------------------------
kc0=$(kc n1 "$GL")
kc0_n3=$(kc n3 "$GL")
ep0=$(g_epoch n1 "$GL")
expect_output "cablekey ksv revoke glkh n3 (actor recorded)" "^revoked group=glkh node=n3 actor=\"?uid [0-9]+" \
    "$CK_CLI" ksv revoke glkh n3 --db "$tmp/ksv1.db"
expect_failure "a second revoke of n3: exit 1, already revoked" "already revoked" \
    "$CK_CLI" ksv revoke glkh n3 --db "$tmp/ksv1.db"
if ksv_wait 20 kc_moved "$GL" "$kc0" n1 n2 n4 n5; then
    ok "after the batch n1, n2, n4, n5 hold a new common key_check"
else not_ok "after the batch n1, n2, n4, n5 hold a new common key_check" "$(ksv_diag_nodes n1 n2 n4 n5)"; fi
sleep 1
if [ "$(kc n3 "$GL")" = "$kc0_n3" ] || [ "$(g_removed n3 "$GL")" = true ]; then
    ok "the revoked n3 still holds the old key_check or reports removed=true"
else not_ok "the revoked n3 still holds the old key_check or reports removed=true" "$(ksv_diag_nodes n3)"; fi
if [ "$(kc n3 "$GL")" != "$(kc n1 "$GL")" ]; then ok "n3 does not have the new group key"
else not_ok "n3 does not have the new group key" "$(ksv_diag_nodes n3 n1)"; fi
ep1=$(g_epoch n1 "$GL")
if [ -n "$ep1" ] && [ -n "$ep0" ] && [ "$ep1" -gt "$ep0" ] && [ "$(ksv_group_epoch ksv1 glkh)" = "$ep1" ]; then
    ok "the epoch grew ($ep0 -> $ep1) and cablekey ksv groups says the same"
else not_ok "the epoch grew and cablekey ksv groups says the same" "ep0=$ep0 ep1=$ep1 store=$(ksv_group_epoch ksv1 glkh)"; fi
if ksv_cli ksv1 members glkh && grep -Eq "^node=n3 .*state=left revoked=yes$" "$tmp/cli.out" &&
   [ "$(grep -c 'state=active revoked=no' "$tmp/cli.out")" = 4 ]; then
    ok "cablekey ksv members: n3 left and revoked, four active"
else not_ok "cablekey ksv members: n3 left and revoked, four active" "$(cat "$tmp/cli.out" "$tmp/cli.err")"; fi
if ksv_cli ksv1 status && grep -q "^revocations count=1 pending=0$" "$tmp/cli.out"; then
    ok "cablekey ksv status: one revocation, applied"
else not_ok "cablekey ksv status: one revocation, applied" "$(cat "$tmp/cli.out")"; fi

# A reload (the topology still lists n3) does not re-admit it.
kc1=$(kc n1 "$GL")
ksv_reload ksv1
sleep 3
if [ "$(kc n3 "$GL")" != "$(kc n1 "$GL")" ] && ksv_cli ksv1 members glkh &&
   grep -Eq "^node=n3 .*state=left revoked=yes$" "$tmp/cli.out"; then
    ok "a reload does not re-admit the revoked n3"
else not_ok "a reload does not re-admit the revoked n3" "$(ksv_diag_nodes n3 n1; cat "$tmp/cli.out")"; fi

# --lift and a reload re-admit it (the join is unicast: its own status says it is back).
expect_output "cablekey ksv revoke --lift glkh n3" "^lifted group=glkh node=n3" \
    "$CK_CLI" ksv revoke glkh n3 --lift --db "$tmp/ksv1.db"
ksv_reload ksv1
n3_back() { [ "$(g_removed n3 "$GL")" = false ] && [ -n "$(kc n3 "$GL")" ] && [ "$(kc n3 "$GL")" != "$kc0_n3" ] &&
    [ "$(g_epoch n3 "$GL")" = "$(ksv_group_epoch ksv1 glkh)" ]; }
if ksv_wait 20 n3_back; then ok "after --lift and a reload n3 is a member again (not removed, a new key)"
else not_ok "after --lift and a reload n3 is a member again (not removed, a new key)" "$(ksv_diag_nodes n3)"; fi

# ---- a member stopped across two revocations recovers -------------------------------------------
kill -STOP "$(node_pid n4)"
kc2=$(kc n1 "$GL")
expect_output "revoke glkh n5 (n4 stopped)" "^revoked " "$CK_CLI" ksv revoke glkh n5 --db "$tmp/ksv1.db"
# n3 takes this rekey too: proof that the re-admission gave it a working path.
if ksv_wait 20 kc_moved "$GL" "$kc2" n1 n2 n3; then ok "n1, n2 and the re-admitted n3 share the key after revoking n5"
else not_ok "n1, n2 and the re-admitted n3 share the key after revoking n5" "$(ksv_diag_nodes n1 n2 n3)"; fi
kc3=$(kc n1 "$GL")
expect_output "revoke glkh n3 (n4 still stopped)" "^revoked " "$CK_CLI" ksv revoke glkh n3 --db "$tmp/ksv1.db"
if ksv_wait 20 kc_moved "$GL" "$kc3" n1 n2; then ok "n1 and n2 share a new key after revoking n3"
else not_ok "n1 and n2 share a new key after revoking n3" "$(ksv_diag_nodes n1 n2)"; fi
sleep 1
kill -CONT "$(node_pid n4)"
if ksv_wait 30 same_kc "$GL" n1 n2 n4; then ok "n4, stopped across two epochs, recovers the current key after SIGCONT"
else not_ok "n4, stopped across two epochs, recovers the current key after SIGCONT" "$(ksv_diag_nodes n1 n2 n4; tail -n 15 "$tmp/ksv1.log")"; fi
for n in n3 n5; do
    if [ "$(kc "$n" "$GL")" != "$(kc n1 "$GL")" ]; then ok "revoked $n does not hold the current key"
    else not_ok "revoked $n does not hold the current key" "$(ksv_diag_nodes "$n")"; fi
done

# ---- EK group: a revocation by unicast ------------------------------------------------------------
kce=$(kc n1 "$GE")
expect_output "revoke gek n4 (EK)" "^revoked " "$CK_CLI" ksv revoke gek n4 --db "$tmp/ksv1.db"
if ksv_wait 20 kc_moved "$GE" "$kce" n1 n2; then ok "gek: n1, n2 share a new key after revoking n4"
else not_ok "gek: n1, n2 share a new key after revoking n4" "$(ksv_diag_nodes n1 n2)"; fi
if [ "$(kc n4 "$GE")" != "$(kc n1 "$GE")" ]; then ok "gek: the revoked n4 does not hold it"
else not_ok "gek: the revoked n4 does not hold it" "$(ksv_diag_nodes n4)"; fi

# ---- the agents' own logs: epochs only grow, one key per epoch ----------------------------------
if out=$(ksv_group_log_check $NODES); then ok "agent logs: per member (epoch, version) only grows; one key-check per epoch"
else not_ok "agent logs: per member (epoch, version) only grows; one key-check per epoch" "$out"; fi

# ---- KSV log: one line per registration and per batch -------------------------------------------
regs_ok=1; detail=""
for n in $NODES; do
    nreg=$(grep -c "node registered ksv=0" "$tmp/$n.log")
    nlog=$(grep -Ec "ksv register node=$n addr=[^ ]+ key_id=0x[0-9a-f]+ sas=[0-9]+ groups=[0-9]+ result=ok" "$tmp/ksv1.log")
    if [ "$nreg" -lt 1 ] || [ "$nreg" != "$nlog" ]; then regs_ok=0; detail="$detail $n: agent $nreg, KSV $nlog;"; fi
done
if [ $regs_ok = 1 ]; then ok "KSV log: one register line per registration"; else not_ok "KSV log: one register line per registration" "$detail"; fi
grep -E "ksv rekey group=(glkh|$GL) epoch=[0-9]+ mode=lkh leaves=[0-9]+ joins=[0-9]+ wraps=[0-9]+ dgrams=[0-9]+ bytes=[0-9]+ cpu_us=[0-9]+" \
    "$tmp/ksv1.log" | grep -oE "epoch=[0-9]+" >"$tmp/rekey-epochs"
nb=$(wc -l <"$tmp/rekey-epochs"); nu=$(sort -u "$tmp/rekey-epochs" | wc -l)
if [ "$nb" -ge 3 ] && [ "$nb" = "$nu" ] && grep -qx "epoch=$(ksv_group_epoch ksv1 glkh)" "$tmp/rekey-epochs"; then
    ok "KSV log: one rekey line per glkh batch ($nb), distinct epochs, the last one stored"
else not_ok "KSV log: one rekey line per glkh batch, distinct epochs, the last one stored" \
    "lines $nb, distinct $nu, store epoch $(ksv_group_epoch ksv1 glkh); $(grep 'ksv rekey' "$tmp/ksv1.log" | tail -n 5)"; fi
assert_file_grep "KSV log: EK rekey line" "ksv rekey group=(gek|$GE) epoch=[0-9]+ mode=ek " "$tmp/ksv1.log"
if grep -qiE "key=[0-9a-f]{32}|enc_key|auth_key" "$tmp/ksv1.log"; then
    not_ok "no key material in the logs" "$(grep -iE "key=[0-9a-f]{32}|enc_key|auth_key" "$tmp/ksv1.log" | head -n 3)"
else ok "no key material in the logs"; fi

# ---- shutdown --------------------------------------------------------------------------------------
nodes_stop "the node agents stop (no sanitizer report)" $NODES
ksv_stop ksv1 "cablekey-ksv stops cleanly on SIGTERM (exit 0, no sanitizer report)"
realm_stop_kdc
done_testing
