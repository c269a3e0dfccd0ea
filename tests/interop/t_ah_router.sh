#!/usr/bin/env bash
# Address authentication to the router (seed 002, FIG. 12): `cablekey router serve` and
# `cablekey mta router-auth` in three network namespaces the test creates:
#
#   device  (d0 10.77.1.2) --veth--+
#                                  br0 10.77.1.1  router namespace: cablekey-kdc, router simulator
#   spoofer (s0 10.77.1.3) --veth--+
#
# The device gets a TGT (kinit) and the router's ticket (TGS by cablekey) from the KDC behind the
# router, keys AH with the router and sends AH-protected datagrams over a raw socket: all
# accepted, and each echoed back under the router->device SA (the second key) and verified. The spoofer (a second, legitimate device with its own SA) forges the device's
# source address under its own SA, under the device's SPI, and sends the device's SPI from its
# own address; a tampered and a replayed datagram; a second principal keying from an address
# another device holds: every one refused and counted. tshark decodes the captured AH (ah.spi)
# with no malformed packet. Needs root and `ip netns`: without them the test FAILS.
. "$(dirname "$0")/lib.sh"

if is_mit; then
    skip_case "router AH" "cablekey-only test (needs the router simulator)"
    done_testing
fi
require_tool "iproute2" ip
require_tool "MIT client tools" kinit
require_tool "tshark" tshark
[ "$(id -u)" = 0 ] || bail "root needed (network namespaces, raw sockets)"

NR="ckah-r-$$" ND="ckah-d-$$" NS="ckah-s-$$"
RTR=10.77.1.1 DEV=10.77.1.2 SPF=10.77.1.3
NETNS_MADE=()

ah_cleanup() {
    local n
    ck_cleanup
    [ "$BASHPID" = "$CK_MAIN_PID" ] || return 0
    for n in "${NETNS_MADE[@]}"; do ip netns del "$n" 2>/dev/null; done
}
trap ah_cleanup EXIT

in_ns() { local n=$1; shift; ip netns exec "$n" "$@"; }

# --- namespaces ----------------------------------------------------------------------------------
if ! ip netns add "$NR" 2>"$tmp/netns.err"; then
    not_ok "ip netns add works (root, CONFIG_NET_NS)" "$(cat "$tmp/netns.err")"
    done_testing
fi
NETNS_MADE+=("$NR")
ip netns add "$ND" && NETNS_MADE+=("$ND") || bail "ip netns add $ND"
ip netns add "$NS" && NETNS_MADE+=("$NS") || bail "ip netns add $NS"
{
    in_ns "$NR" ip link set lo up &&
    in_ns "$NR" ip link add br0 type bridge &&
    in_ns "$NR" ip addr add "$RTR/24" dev br0 &&
    in_ns "$NR" ip link set br0 up &&
    ip link add "ckd$$" netns "$ND" type veth peer name "rd$$" netns "$NR" &&
    ip link add "cks$$" netns "$NS" type veth peer name "rs$$" netns "$NR" &&
    in_ns "$NR" ip link set "rd$$" master br0 up &&
    in_ns "$NR" ip link set "rs$$" master br0 up &&
    in_ns "$ND" ip link set lo up && in_ns "$ND" ip link set "ckd$$" name d0 &&
    in_ns "$ND" ip addr add "$DEV/24" dev d0 && in_ns "$ND" ip link set d0 up &&
    in_ns "$NS" ip link set lo up && in_ns "$NS" ip link set "cks$$" name s0 &&
    in_ns "$NS" ip addr add "$SPF/24" dev s0 && in_ns "$NS" ip link set s0 up
} >"$tmp/netns.log" 2>&1 || bail "build the namespaces and veth pairs" "$(cat "$tmp/netns.log")"
# --- realm, KDC behind the router ------------------------------------------------------------------
realm_init TEST.REALM
realm_addprinc mta1 mta1pw
realm_addprinc mta2 mta2pw
realm_addprinc "router/$RTR" --random
realm_ktexport "$tmp/router.keytab" "router/$RTR" >/dev/null || bail "export the router keytab"
KDCP=$PORT
: >"$tmp/kdc.log"
write_krb5_conf "$tmp/krb5-ns.conf" "$RTR:$KDCP"
ip netns exec "$NR" env KRB5_CONFIG="$tmp/krb5-ns.conf" "$CK_KDC" --listen "$RTR:$KDCP" --db "$DB" \
    --stash "$STASH" --log "$tmp/kdc.log" --log-level debug --log-flush-ms 0 \
    >"$tmp/kdc.stderr" 2>&1 </dev/null &
KDC_NS_PID=$!
CK_BG_PIDS+=("$KDC_NS_PID")
# TCP to the KDC is also the reachability check (no ping needed).
reach() { in_ns "$1" timeout 2 bash -c "exec 3<>/dev/tcp/$RTR/$KDCP" 2>/dev/null; }
for i in $(seq 1 100); do
    reach "$ND" && break
    kill -0 "$KDC_NS_PID" 2>/dev/null || bail "cablekey-kdc in the router namespace" "$(cat "$tmp/kdc.stderr")"
    sleep 0.1
done
if reach "$ND" && reach "$NS"; then
    ok "three namespaces: device and spoofer reach the KDC behind the router (veth + bridge)"
else
    bail "device and spoofer reach the router" "$(in_ns "$ND" ip addr; in_ns "$NR" ip addr; cat "$tmp/kdc.stderr")"
fi
for who in mta1:"$ND" mta2:"$NS"; do
    p=${who%%:*} n=${who#*:}
    if printf '%spw\n' "$p" | in_ns "$n" env KRB5_CONFIG="$tmp/krb5-ns.conf" KRB5CCNAME="FILE:$tmp/$p.cc" \
        timeout 20 kinit "$p" >"$tmp/kinit-$p.log" 2>&1; then
        ok "$p gets a TGT from the KDC behind the router (from its own namespace)"
    else
        bail "kinit $p" "$(cat "$tmp/kinit-$p.log")"
    fi
done

# --- the router -------------------------------------------------------------------------------------
KP=1293
SVC="router/$RTR@TEST.REALM"
ip netns exec "$NR" "$CK_CLI" router serve --keytab "$tmp/router.keytab" --service "$SVC" \
    --listen "$RTR:$KP" --iface br0 >"$tmp/router.out" 2>"$tmp/router.err" </dev/null &
ROUTER_PID=$!
CK_BG_PIDS+=("$ROUTER_PID")
for i in $(seq 1 50); do grep -q "^router: ready" "$tmp/router.out" 2>/dev/null && break; sleep 0.1; done
assert_file_grep "the router simulator is ready on br0" "^router: ready kmm $RTR:$KP iface br0" "$tmp/router.out" ||
    bail "router started" "$(cat "$tmp/router.err")"

# auth NS CCACHE ARGS...: cablekey mta router-auth from namespace NS.
auth() {
    local n=$1 cc=$2; shift 2
    in_ns "$n" env KRB5_CONFIG="$tmp/krb5-ns.conf" timeout -k 5 60 "$CK_CLI" mta router-auth \
        --ccache "$cc" --router "$RTR:$KP" --service "$SVC" --kdc "$RTR:$KDCP" --interval 5 "$@"
}
# count PATTERN: router output lines matching, once the router printed them.
count() { sleep 0.5; grep -Ec -- "$1" "$tmp/router.out" || true; }
mark() { wc -l <"$tmp/router.out"; }
since() { tail -n +"$(($1 + 1))" "$tmp/router.out" | grep -Ec -- "$2" || true; }

# --- the device: everything accepted (capture on the bridge meanwhile) -------------------------
ip netns exec "$NR" timeout 60 tshark -i br0 -f "ip proto 51" -w "$tmp/ah.pcap" >"$tmp/tshark.log" 2>&1 &
TS=$!
CK_BG_PIDS+=("$TS")
for i in $(seq 1 50); do grep -q "Capturing on" "$tmp/tshark.log" 2>/dev/null && break; sleep 0.1; done
sleep 0.5
m=$(mark)
expect_output "device: TGS for the router's principal, AP exchange, 20 AH datagrams sent, 20 AH echoes verified" \
    "^router-auth: ok router $RTR:$KP service $SVC spi in 0x[0-9a-f]{8} out 0x[0-9a-f]{8} src $DEV sent 20 echoed 20$" \
    auth "$ND" "$tmp/mta1.cc" --send 20
DEV_SPI=$(sed -nE 's/^router-auth: ok .* out (0x[0-9a-f]{8}) .*/\1/p' "$tmp/last.out")
DEV_IN=$(sed -nE 's/^router-auth: ok .* spi in (0x[0-9a-f]{8}) .*/\1/p' "$tmp/last.out")
sleep 1
kill -INT "$TS" 2>/dev/null; wait "$TS" 2>/dev/null
assert_file_grep "the router keyed an SA for mta1 bound to the device's address" \
    "^router: sa mta1@TEST\.REALM addr $DEV spi in $DEV_SPI out 0x[0-9a-f]{8} suite sha1-null" "$tmp/router.out"
n=$(since "$m" "^router: accept src $DEV spi $DEV_SPI seq [0-9]+ proto 17 len [0-9]+ principal mta1@TEST\.REALM$")
if [ "$n" = 20 ] && [ "$(since "$m" "^router: drop")" = 0 ]; then
    ok "the router accepted all 20 AH datagrams from the device, dropped none"
else
    not_ok "the router accepted all 20 AH datagrams" "accepted $n; $(tail -n 25 "$tmp/router.out")"
fi
if [ "$(since "$m" "seq (1|20) proto")" = 2 ]; then ok "sequence numbers 1..20 (RFC 4302: from 1)"; else
    not_ok "sequence numbers 1..20" "$(tail -n 22 "$tmp/router.out")"; fi

# --- tshark ---------------------------------------------------------------------------------------
spis=$(tshark -r "$tmp/ah.pcap" -Y ah -T fields -e ip.src -e ah.spi 2>"$tmp/tshark-r.err" | sort | uniq -c)
if [ "$(tshark -r "$tmp/ah.pcap" -Y ah 2>/dev/null | wc -l)" = 40 ] &&
   echo "$spis" | grep -Eq "^ *20 $DEV	$DEV_SPI$" && echo "$spis" | grep -Eq "^ *20 $RTR	$DEV_IN$"; then
    ok "tshark decodes 40 AH packets: 20 device->router with ah.spi $DEV_SPI, 20 echoes with $DEV_IN"
else
    not_ok "tshark decodes the captured AH" "$spis $(cat "$tmp/tshark-r.err")"
fi
for dir in "$DEV_SPI" "$DEV_IN"; do
    seqs=$(tshark -r "$tmp/ah.pcap" -Y "ah.spi == $dir" -T fields -e ah.sequence 2>/dev/null | tr '\n' ' ')
    if [ "$seqs" = "$(seq -s ' ' 1 20) " ]; then ok "tshark: SA $dir carries ah.sequence 1..20 in order"; else
        not_ok "tshark: SA $dir carries ah.sequence 1..20" "$seqs"; fi
done
tshark -r "$tmp/ah.pcap" -V >"$tmp/ah-v.txt" 2>&1
if [ "$(grep -Ec "^User Datagram Protocol, Src Port: [0-9]+, Dst Port: 9$" "$tmp/ah-v.txt")" = 20 ] &&
   [ "$(grep -Ec "^User Datagram Protocol, Src Port: 9, Dst Port: [0-9]+$" "$tmp/ah-v.txt")" = 20 ] &&
   grep -q "router-auth 20" "$tmp/ah-v.txt"; then
    ok "tshark decodes the UDP datagram inside AH both ways (next header 17, to and from port 9)"
else
    not_ok "tshark decodes the UDP inside AH" "$(head -60 "$tmp/ah-v.txt")"
fi
n=$(tshark -r "$tmp/ah.pcap" -Y "_ws.malformed || _ws.expert.severity >= warning" 2>/dev/null | wc -l)
if [ "$n" = 0 ]; then ok "no malformed packet, no expert warning in the AH capture"; else
    not_ok "no malformed packet in the AH capture" "$(tshark -r "$tmp/ah.pcap" -Y "_ws.malformed || _ws.expert" 2>&1 | head)"; fi

# --- spoofing ------------------------------------------------------------------------------------
m=$(mark)
expect_output "spoofer keys its own SA and sends 5 datagrams forging the device's source" \
    "^router-auth: ok .* src $DEV sent 5 echoed 0$" auth "$NS" "$tmp/mta2.cc" --send 5 --source "$DEV"
SPF_SPI=$(sed -nE 's/^router-auth: ok .* out (0x[0-9a-f]{8}) .*/\1/p' "$tmp/last.out")
n=$(since "$m" "^router: drop src $DEV spi $SPF_SPI seq [0-9]+ reason source-mismatch$")
if [ "$n" = 5 ] && [ "$(since "$m" "^router: accept")" = 0 ]; then
    ok "forged source under the spoofer's own (valid) SA: all 5 dropped, source-mismatch"
else
    not_ok "forged source under the spoofer's own SA dropped" "$(tail -n 8 "$tmp/router.out")"
fi

# Sequence numbers 1..20 are the device's already: the window refuses them before the ICV is
# computed (RFC 4302 §3.4.3); 21..25 get as far as the ICV and fail it.
m=$(mark)
expect_output "spoofer sends 25 datagrams with the device's SPI and the device's address" \
    "^router-auth: ok .* out $DEV_SPI src $DEV sent 25 echoed 0$" \
    auth "$NS" "$tmp/mta2.cc" --send 25 --source "$DEV" --spi "$DEV_SPI"
n=$(since "$m" "^router: drop src $DEV spi $DEV_SPI seq (2[1-5]) reason bad-icv$")
r=$(since "$m" "^router: drop src $DEV spi $DEV_SPI seq ([1-9]|1[0-9]|20) reason replay$")
if [ "$n" = 5 ] && [ "$r" = 20 ] && [ "$(since "$m" "^router: accept")" = 0 ]; then
    ok "device's SPI and address without the device's key: all 25 dropped (20 replay, 5 bad-icv)"
else
    not_ok "device's SPI and address without its key dropped" "$(tail -n 8 "$tmp/router.out")"
fi

m=$(mark)
expect_output "spoofer sends 5 datagrams with the device's SPI from its own address" \
    "^router-auth: ok .* out $DEV_SPI src $SPF sent 5 echoed 0$" \
    auth "$NS" "$tmp/mta2.cc" --send 5 --spi "$DEV_SPI"
n=$(since "$m" "^router: drop src $SPF spi $DEV_SPI seq [0-9]+ reason source-mismatch$")
if [ "$n" = 5 ] && [ "$(since "$m" "^router: accept")" = 0 ]; then
    ok "device's SPI from another address: all 5 dropped, source-mismatch"
else
    not_ok "device's SPI from another address dropped" "$(tail -n 8 "$tmp/router.out")"
fi

m=$(mark)
auth "$NS" "$tmp/mta2.cc" --send 3 --spi 0x00abcdef >"$tmp/unk.out" 2>&1
n=$(since "$m" "^router: drop src $SPF spi 0x00abcdef seq [0-9]+ reason unknown-spi$")
if [ "$n" = 3 ]; then ok "an SPI the router never gave out: dropped, unknown-spi"; else
    not_ok "unknown SPI dropped" "$(cat "$tmp/unk.out"; tail -n 8 "$tmp/router.out")"; fi

m=$(mark)
expect_output "the spoofer's own traffic from its own address is accepted (control)" \
    "^router-auth: ok .* src $SPF sent 3 echoed 3$" auth "$NS" "$tmp/mta2.cc" --send 3
if [ "$(since "$m" "^router: accept src $SPF .* principal mta2@TEST\.REALM$")" = 3 ]; then
    ok "control: mta2's datagrams under its own SA from its own address: 3 accepted"
else
    not_ok "control: mta2's own datagrams accepted" "$(tail -n 8 "$tmp/router.out")"
fi

# --- tamper, replay --------------------------------------------------------------------------------
m=$(mark)
expect_output "device sends 4 datagrams, the 2nd tampered with after protection" \
    "^router-auth: ok .* src $DEV sent 4 echoed 3$" auth "$ND" "$tmp/mta1.cc" --send 4 --tamper 2
if [ "$(since "$m" "^router: accept src $DEV .* principal mta1")" = 3 ] &&
   [ "$(since "$m" "^router: drop src $DEV spi 0x[0-9a-f]+ seq 2 reason bad-icv$")" = 1 ]; then
    ok "tampered datagram dropped (bad-icv), the other 3 accepted"
else
    not_ok "tampered datagram dropped" "$(tail -n 8 "$tmp/router.out")"
fi
m=$(mark)
expect_output "device sends 3 datagrams and replays the last" \
    "^router-auth: ok .* sent 3 echoed 3 replayed 1$" auth "$ND" "$tmp/mta1.cc" --send 3 --replay
if [ "$(since "$m" "^router: accept src $DEV")" = 3 ] &&
   [ "$(since "$m" "^router: drop src $DEV spi 0x[0-9a-f]+ seq 3 reason replay$")" = 1 ]; then
    ok "replayed datagram dropped (replay), the 3 originals accepted"
else
    not_ok "replayed datagram dropped" "$(tail -n 8 "$tmp/router.out")"
fi

# --- one address, one device ---------------------------------------------------------------------
expect_failure "a second principal keying from an address another device holds: refused" \
    "router-auth: FAILED .*KRB-ERROR 38.*bound to another device" \
    auth "$ND" "$tmp/mta2.cc" --send 1
assert_file_grep "the router logged the refusal" \
    "^router: kmm $DEV:[0-9]+: AP Request refused: address $DEV is bound to another device \(KRB-ERROR 38\)" \
    "$tmp/router.out"

# --- usage ----------------------------------------------------------------------------------------
ck_run "$CK_CLI" mta router-auth --router "$RTR:$KP" --send 1; rc=$?
if [ $rc -eq 2 ] && grep -q -- "--ccache FILE is required" "$tmp/last.err"; then ok "router-auth: --ccache is required (exit 2)"
else not_ok "router-auth: --ccache is required (exit 2)" "exit $rc; $(ck_last_output)"; fi
ck_run "$CK_CLI" router serve --keytab "$tmp/router.keytab" --listen "$RTR:$KP"; rc=$?
if [ $rc -eq 2 ]; then ok "router serve: --iface is required (exit 2)"; else not_ok "router serve: --iface is required" "exit $rc"; fi

# --- counters on SIGTERM ---------------------------------------------------------------------------
kill -TERM "$ROUTER_PID"; wait "$ROUTER_PID"; rc=$?
# accepted 20 + 3 + 3 + 3; dropped: source-mismatch 5 + 5, replay 20 + 1, bad-icv 5 + 1, unknown 3.
pat="^router: stopped accepted 29 echoed 29 dropped 40 \(malformed 0, unsupported 0, unknown-spi 3, expired 0, source-mismatch 10, replay 21, bad-icv 6\) exchanges 8 refused 1$"
if [ $rc -eq 0 ] && grep -Eq "$pat" "$tmp/router.out"; then
    ok "router stops on SIGTERM (exit 0) with the counters: 29 accepted and echoed, 40 dropped by reason"
else
    not_ok "router counters on SIGTERM" "exit $rc; $(tail -n 3 "$tmp/router.out"; cat "$tmp/router.err")"
fi
rep=$(grep -Eh "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error|SUMMARY: (Address|Undefined|Leak)" \
    "$tmp"/router.err "$tmp"/last.err "$tmp"/kdc.stderr 2>/dev/null | head -n 5)
if [ -z "$rep" ]; then ok "no sanitizer report"; else not_ok "no sanitizer report" "$rep"; fi
done_testing
