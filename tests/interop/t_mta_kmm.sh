#!/usr/bin/env bash
# `cablekey mta kmm` (the endpoint, lib/endpoint) against cablekey-kdc and cablekey-cms on
# loopback: the CMS ticket from a TGT (krb5.conf's KDC or --kdc) or straight from the ccache
# (kvno), the AP exchange and protected NCS signaling both ways, suites, failover to a second
# CMS, all CMSes silent, a CMS restart recovered in one round trip (Wake Up, Re-establish),
# ACK-required and an operator Rekey (SIGUSR1), usage errors; tshark decodes the capture of an
# exchange as pktc + ESP with no malformed packet or expert warning.
. "$(dirname "$0")/lib.sh"

if is_mit; then
    skip_case "mta kmm" "cablekey-only test (needs cablekey-cms)"
    done_testing
fi
CK_CMS="$CK_BUILD/cablekey-cms"
[ -x "$CK_CMS" ] || bail "cablekey-cms not built at $CK_CMS"
require_tool "MIT client tools" kinit kvno
require_tool "tshark" tshark

realm_init TEST.REALM
realm_addprinc mta1 mtapw
realm_addprinc cms/cms.test --random
realm_ktexport "$tmp/cms.keytab" cms/cms.test >/dev/null || bail "export the CMS keytab"
realm_start_kdc
printf 'mtapw\n' | timeout 20 kinit mta1 >"$tmp/kinit.log" 2>&1 || bail "kinit mta1" "$(cat "$tmp/kinit.log")"
cp "${KRB5CCNAME#FILE:}" "$tmp/tgt.cc"

SVC=cms/cms.test@TEST.REALM
CMS_PIDS=()

# start_cms NAME KMM_PORT SIG_PORT [config lines...]: a cablekey-cms, waited for.
start_cms() {
    local name=$1 kp=$2 sp=$3 l i; shift 3
    : >"$tmp/$name.conf"
    if [ $# -gt 0 ]; then
        { echo "[cms]"; for l in "$@"; do echo "    $l"; done; } >"$tmp/$name.conf"
    fi
    : >"$tmp/$name.log"
    "$CK_CMS" -c "$tmp/$name.conf" --keytab "$tmp/cms.keytab" --listen "127.0.0.1:$kp" \
        --signaling-listen "127.0.0.1:$sp" --log "$tmp/$name.log" --log-level debug \
        >"$tmp/$name.stderr" 2>&1 </dev/null &
    CMS_PID=$!
    CK_BG_PIDS+=("$CMS_PID")
    for i in $(seq 1 100); do
        grep -q "cablekey-cms ready" "$tmp/$name.log" 2>/dev/null && return 0
        kill -0 "$CMS_PID" 2>/dev/null || break
        sleep 0.1
    done
    bail "cablekey-cms $name started" "$(cat "$tmp/$name.stderr" "$tmp/$name.log" 2>/dev/null | tail -n 20)"
}

stop_pid() { kill -TERM "$1" 2>/dev/null; wait "$1" 2>/dev/null; return 0; }

# cms_log DESC PATTERN FILE: the CMS log gets a matching line within 2 s (cablekey-cms writes its
# KMM request lines in batches, at most 100 ms late).
cms_log() {
    local i
    for i in $(seq 1 20); do
        grep -Eq -- "$2" "$3" 2>/dev/null && break
        sleep 0.1
    done
    assert_file_grep "$@"
}

kmm() { timeout -k 5 120 "$CK_CLI" mta kmm "$@"; }

KP1=$(free_port) SP1=$(free_port) KP2=$(free_port) SP2=$(free_port) DEAD=$(free_port)
start_cms a "$KP1" "$SP1"
PID_A=$CMS_PID

# --- the ticket -------------------------------------------------------------------------------
expect_output "TGT in the ccache, KDC from krb5.conf: 5 notifications answered under ESP" \
    "^kmm: ok cms 127\.0\.0\.1:$KP1 service $SVC suite sha1-aes128 spi in 0x[0-9a-f]{8} out 0x[0-9a-f]{8} sent 5 answered 5 received-rqnt 1 exchanges 1 rekeys 0 failovers 0$" \
    kmm --ccache "$tmp/tgt.cc" --cms "127.0.0.1:$KP1" --signaling-port "$SP1" --service cms/cms.test --count 5
cms_log "the CMS logged the AP exchange" \
    "KMM AP-REQ 127\.0\.0\.1:[0-9]+ mta1@TEST\.REALM -> $SVC suite sha1-aes128 spi in 0x[0-9a-f]+ out 0x[0-9a-f]+: ok" "$tmp/a.log"
cms_log "the CMS answered the RSIP and got the 200 for its RQNT" "RQNT acknowledged" "$tmp/a.log"

printf '[libdefaults]\n    default_realm = TEST.REALM\n' >"$tmp/nokdc.conf"
expect_output "TGT in the ccache, --kdc given (krb5.conf names no KDC)" "^kmm: ok .* sent 2 answered 2 " \
    env KRB5_CONFIG="$tmp/nokdc.conf" "$CK_CLI" mta kmm --ccache "$tmp/tgt.cc" --cms "127.0.0.1:$KP1" \
    --signaling-port "$SP1" --service "$SVC" --count 2 --kdc "127.0.0.1:$PORT"
expect_failure "TGT only, no KDC anywhere: FAILED with the reason, exit 1" \
    "kmm: FAILED .*no KDC for realm TEST\.REALM" \
    env KRB5_CONFIG="$tmp/nokdc.conf" "$CK_CLI" mta kmm --ccache "$tmp/tgt.cc" --cms "127.0.0.1:$KP1" \
    --signaling-port "$SP1" --service "$SVC"
cp "$tmp/tgt.cc" "$tmp/svc.cc"
KRB5CCNAME="FILE:$tmp/svc.cc" timeout 20 kvno "$SVC" >/dev/null 2>&1 || bail "kvno $SVC"
expect_output "service ticket already in the ccache (kvno): no KDC needed" "^kmm: ok .* sent 3 answered 3 " \
    env KRB5_CONFIG="$tmp/nokdc.conf" "$CK_CLI" mta kmm --ccache "$tmp/svc.cc" --cms "127.0.0.1:$KP1" \
    --signaling-port "$SP1" --service "$SVC" --count 3

# --- suites ---------------------------------------------------------------------------------------
for s in sha1-3des sha1-null; do
    expect_output "suite $s offered alone is the one used" "^kmm: ok .* suite $s .* answered 2 " \
        kmm --ccache "$tmp/svc.cc" --cms "127.0.0.1:$KP1" --signaling-port "$SP1" --service "$SVC" \
        --count 2 --suites "$s"
done

# --- failover and silence -------------------------------------------------------------------------
expect_output "first CMS silent: failover to the second after the backoff" \
    "^kmm: ok cms 127\.0\.0\.1:$KP1 .* sent 2 answered 2 .* failovers 1$" \
    kmm --ccache "$tmp/svc.cc" --cms "127.0.0.1:$DEAD,127.0.0.1:$KP1" --signaling-port "$SP1" \
    --service "$SVC" --count 2 --backoff 100,200,3 --verbose
if grep -c "AP-REQ sent: cms 127.0.0.1:$DEAD" "$tmp/last.err" | grep -qx 3; then
    ok "three AP Requests to the silent CMS before failing over (--backoff 100,200,3)"
else
    not_ok "three AP Requests to the silent CMS before failing over" "$(cat "$tmp/last.err")"
fi
expect_failure "every CMS silent: FAILED, exit 1" \
    "^kmm: FAILED cms 127\.0\.0\.1:$DEAD service $SVC sent 0 answered 0 .*failovers 0: no CMS answered" \
    kmm --ccache "$tmp/svc.cc" --cms "127.0.0.1:$DEAD" --signaling-port "$SP1" --service "$SVC" \
    --backoff 100,100,2

# --- the CMS restarts in the middle: recovered in one round trip ---------------------------------
kmm --ccache "$tmp/svc.cc" --cms "127.0.0.1:$KP1" --signaling-port "$SP1" --service "$SVC" \
    --count 8 --interval 400 --verbose >"$tmp/restart.out" 2>"$tmp/restart.err" &
RUN=$!
sleep 1.2
stop_pid "$PID_A"
start_cms a2 "$KP1" "$SP1"
PID_A=$CMS_PID
wait "$RUN"; rc=$?
if [ $rc -eq 0 ] && grep -Eq "^kmm: ok .* sent 8 answered 8 .* exchanges 2 " "$tmp/restart.out"; then
    ok "CMS restarted mid-run: every notification answered, one more exchange"
else
    not_ok "CMS restarted mid-run" "exit $rc; $(cat "$tmp/restart.out" "$tmp/restart.err")"
fi
cms_log "the restarted CMS woke the endpoint on its unknown SPI" "unknown SPI, Wake Up sent" "$tmp/a2.log"
cms_log "the endpoint answered with Re-establish and the CMS's nonce" "solicited re-establish: ok" "$tmp/a2.log"
if [ "$(grep -c "AP-REQ" "$tmp/a2.log")" = 1 ]; then
    ok "recovery took exactly one AP exchange"
else
    not_ok "recovery took exactly one AP exchange" "$(grep AP-REQ "$tmp/a2.log")"
fi

# --- ACK-required and an operator Rekey -----------------------------------------------------------
start_cms b "$KP2" "$SP2" "ack_required = true"
PID_B=$CMS_PID
( sleep 1.5; kill -USR1 "$PID_B" ) &
kmm --ccache "$tmp/svc.cc" --cms "127.0.0.1:$KP2" --signaling-port "$SP2" --service "$SVC" \
    --count 6 --interval 500 >"$tmp/ack.out" 2>"$tmp/ack.err"; rc=$?
if [ $rc -eq 0 ] && grep -Eq "^kmm: ok .* sent 6 answered 6 .* exchanges 2 rekeys 1 " "$tmp/ack.out"; then
    ok "ACK-required CMS, Rekey on SIGUSR1: all answered, one re-key"
else
    not_ok "ACK-required CMS, Rekey on SIGUSR1" "exit $rc; $(cat "$tmp/ack.out" "$tmp/ack.err")"
fi
cms_log "SP Recovered activated the SA" "KMM SP-RECOVERED .*: ok, SA active" "$tmp/b.log"
cms_log "the Rekey was answered with its nonce" "suite sha1-aes128 .* solicited: ok" "$tmp/b.log"

# --- tshark -----------------------------------------------------------------------------------------
timeout 30 tshark -i lo -f "udp port $KP1 or udp port $SP1" -w "$tmp/kmm.pcap" >"$tmp/tshark.log" 2>&1 &
TS=$!
CK_BG_PIDS+=("$TS")
for i in $(seq 1 50); do grep -q "Capturing on" "$tmp/tshark.log" 2>/dev/null && break; sleep 0.1; done
sleep 0.5
kmm --ccache "$tmp/svc.cc" --cms "127.0.0.1:$KP1" --signaling-port "$SP1" --service "$SVC" --count 3 \
    >/dev/null 2>&1
sleep 1
kill -INT "$TS" 2>/dev/null; wait "$TS" 2>/dev/null
dec=(-d "udp.port==$KP1,pktc" -d "udp.port==$SP1,udpencap")
tshark -r "$tmp/kmm.pcap" "${dec[@]}" >"$tmp/pcap.txt" 2>&1
if grep -q "AP Request" "$tmp/pcap.txt" && grep -q "AP Reply" "$tmp/pcap.txt" &&
   [ "$(grep -c ESP "$tmp/pcap.txt")" -ge 8 ]; then
    ok "tshark decodes the exchange as pktc (AP Request, AP Reply) and the signaling as ESP"
else
    not_ok "tshark decodes the exchange as pktc and ESP" "$(cat "$tmp/pcap.txt")"
fi
n=$(tshark -r "$tmp/kmm.pcap" "${dec[@]}" -Y "_ws.malformed || _ws.expert" 2>/dev/null | wc -l)
if [ "$n" = 0 ]; then ok "no malformed packet, no expert warning"; else
    not_ok "no malformed packet, no expert warning" "$(tshark -r "$tmp/kmm.pcap" "${dec[@]}" -Y "_ws.malformed || _ws.expert" 2>&1)"; fi
tshark -r "$tmp/kmm.pcap" "${dec[@]}" -V >"$tmp/pcap-v.txt" 2>&1
if grep -q "msg-type: krb-ap-req (14)" "$tmp/pcap-v.txt" &&
   grep -q "msg-type: krb-ap-rep (15)" "$tmp/pcap-v.txt"; then
    ok "the Kerberos blobs inside decode as Kerberos (AP-REQ, AP-REP)"
else
    not_ok "the Kerberos blobs decode as Kerberos"
fi

# --- usage ------------------------------------------------------------------------------------------
ck_run "$CK_CLI" mta kmm --cms "127.0.0.1:$KP1" --service "$SVC"; rc=$?
if [ $rc -eq 2 ] && grep -q -- "--ccache FILE is required" "$tmp/last.err"; then ok "--ccache is required (exit 2)"
else not_ok "--ccache is required (exit 2)" "exit $rc; $(ck_last_output)"; fi
ck_run "$CK_CLI" mta kmm --ccache x --cms "127.0.0.1:$KP1" --service "$SVC" --suites sha1-rc5; rc=$?
if [ $rc -eq 2 ]; then ok "an unknown suite is a usage error"; else not_ok "an unknown suite is a usage error" "exit $rc"; fi
expect_output "cablekey help mta kmm prints the verb's usage" "usage: cablekey mta kmm --ccache FILE" \
    "$CK_CLI" help mta kmm

stop_pid "$PID_A"
stop_pid "$PID_B"
rep=$(grep -Eh "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error|SUMMARY: (Address|Undefined|Leak)" \
    "$tmp"/*.stderr "$tmp"/*.err 2>/dev/null | head -n 5)
if [ -z "$rep" ]; then ok "no sanitizer report from cablekey-cms or the endpoint"; else
    not_ok "no sanitizer report from cablekey-cms or the endpoint" "$rep"; fi
done_testing
