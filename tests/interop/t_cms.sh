#!/bin/bash
# cablekey-cms on loopback with cablekey-kdc and the endpoint (`cablekey mta kmm`): a real
# Kerberos AP exchange over KMM, ESP-protected signaling both ways, and the cases the server must
# survive: the Wake Up path (server restarted under a running endpoint), Rekey on SIGUSR1,
# ACK-required, failover to a second cablekey-cms on 127.0.0.2, service-key rotation with the
# keytab replaced on disk while running, a replayed AP Request (a captured datagram sent again),
# garbage datagrams while others are served; and tshark decoding a capture of the whole exchange
# as pktc + Kerberos + ESP with no malformed packet and no expert warning.
# shellcheck source=tests/interop/lib.sh
. "$(dirname "$0")/lib.sh"

if is_mit; then
    skip_case "cablekey-cms" "cablekey-only test"
    done_testing
fi
CK_CMS="$CK_BUILD/cablekey-cms"
SVC_NAME=cms/cms1.test
require_tool "t_cms" tshark dumpcap "$CK_PY"
[ -x "$CK_CMS" ] || bail "cablekey-cms not built at $CK_CMS"

realm_init TEST.REALM
SVC="$SVC_NAME@$REALM"
realm_addprinc mta1 mta1-pw
realm_addprinc mta2 mta2-pw
realm_addprinc "$SVC_NAME" --random
realm_ktexport "$tmp/cms.keytab" "$SVC_NAME" || bail "export the CMS keytab"
realm_start_kdc

KP=$(free_port) || bail "free port"
SP=$(free_port) || bail "free port"
CMS_PIDS=()

# start_cms NAME ADDR [extra args]: cablekey-cms NAME on ADDR:$KP (KMM) and ADDR:$SP (signaling),
# log in $tmp/NAME.log; waits for its ready line.
start_cms() {
    local name=$1 addr=$2 i; shift 2
    : >"$tmp/$name.log"
    "$CK_CMS" --keytab "$tmp/cms.keytab" --service "$SVC" --listen "$addr:$KP" \
        --signaling-listen "$addr:$SP" --log "$tmp/$name.log" --log-level debug \
        --pid-file "$tmp/$name.pid" "$@" >"$tmp/$name.stderr" 2>&1 </dev/null &
    eval "CMS_PID_$name=$!"
    CK_BG_PIDS+=($!)
    for i in $(seq 1 100); do
        grep -q "cablekey-cms ready:" "$tmp/$name.log" 2>/dev/null && return 0
        kill -0 "$(cms_pid "$name")" 2>/dev/null || break
        sleep 0.1
    done
    bail "cablekey-cms $name started" "$(tail -n 20 "$tmp/$name.log" "$tmp/$name.stderr")"
}
cms_pid() { eval "echo \${CMS_PID_$1:-}"; }

# stop_cms NAME [DESC]: SIGTERM; with DESC, one TAP case (exit 0, no sanitizer report).
stop_cms() {
    local name=$1 desc=${2:-} pid rc i rep
    pid=$(cms_pid "$name")
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid"; rc=$?
    eval "CMS_PID_$name="
    [ -n "$desc" ] || return 0
    rep=$(grep -Eh "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error" "$tmp/$name.stderr" "$tmp/$name.log" 2>/dev/null | head -n 3)
    if [ $rc -eq 0 ] && [ -z "$rep" ]; then ok "$desc"; else
        not_ok "$desc" "exit $rc $rep
$(tail -n 10 "$tmp/$name.stderr")"; fi
}

cms_alive() { # cms_alive NAME DESC
    if kill -0 "$(cms_pid "$1")" 2>/dev/null; then ok "$2"; else
        not_ok "$2" "$(tail -n 20 "$tmp/$1.stderr" "$tmp/$1.log")"; fi
}

# assert_log_wait DESC PATTERN FILE: like assert_file_grep, waiting for the line (cablekey-cms
# writes request lines in batches, at most 100 ms late).
assert_log_wait() {
    if wait_file_grep "$3" "$2"; then ok "$1"; return 0; fi
    not_ok "$1" "no line matches /$2/ in $3; last lines:
$(tail -n 10 "$3" 2>/dev/null)"
    return 1
}

cms_log_count() { sleep 0.2; grep -Ec -- "$2" "$tmp/$1.log" 2>/dev/null || true; }

# mta CCACHE ARGS...: the endpoint against the CMS(es); output in $tmp/mta.out / mta.err.
mta() {
    local cc=$1; shift
    timeout -k 5 60 "$CK_CLI" mta kmm --ccache "$cc" --service "$SVC" --signaling-port "$SP" \
        --timeout 300 "$@" >"$tmp/mta.out" 2>"$tmp/mta.err" </dev/null
}
mta_bg() { # like mta, in the background; MTA_PID
    local cc=$1; shift
    timeout -k 5 90 "$CK_CLI" mta kmm --ccache "$cc" --service "$SVC" --signaling-port "$SP" \
        --timeout 300 "$@" >"$tmp/mta.out" 2>"$tmp/mta.err" </dev/null &
    MTA_PID=$!
}
mta_result() { cat "$tmp/mta.out" "$tmp/mta.err" 2>/dev/null | tail -n 15; }
# summary_field NAME: the number after NAME in the summary line.
summary_field() { sed -n "s/.* $1 \([0-9]*\).*/\1/p" "$tmp/mta.out" | head -n 1; }

# TGTs for the endpoints (the endpoint gets its CMS ticket by TGS through $KRB5_CONFIG).
kinit_pw mta1 mta1-pw -c "$tmp/mta1.cc" >/dev/null 2>&1 || bail "kinit mta1"
kinit_pw mta2 mta2-pw -c "$tmp/mta2.cc" >/dev/null 2>&1 || bail "kinit mta2"

# ---- 0. --check, fail-closed configuration, systemd notification, SIGHUP ---------------------
cat >"$tmp/cms-good.conf" <<EOF
[cms]
    keytab = $tmp/cms.keytab
    service = $SVC
    suites = sha1-aes128 sha1-null
EOF
expect_output "--check: keytab, service and addresses verified" \
    "service: $SVC \(4 keys, newest kvno 1\)" "$CK_CMS" -c "$tmp/cms-good.conf" --listen "127.0.0.1:$KP" --signaling-listen "127.0.0.1:$SP" --check
printf '[cms]\n    keytab = %s\n    ack_requred = true\n' "$tmp/cms.keytab" >"$tmp/cms-bad.conf"
expect_failure "--check: an unknown key is an error naming file and line" \
    "cms-bad.conf:3: .*ack_requred" "$CK_CMS" -c "$tmp/cms-bad.conf" --check
expect_failure "--check: a keytab without the service is refused" \
    "no key .* for other/x@$REALM" "$CK_CMS" --keytab "$tmp/cms.keytab" --service "other/x@$REALM" --check
start_notify_receiver "$tmp/notify.sock" "$tmp/notify.log"
NOTIFY_SOCKET="$tmp/notify.sock" start_cms z 127.0.0.1 -c "$tmp/cms-good.conf"
if wait_file_grep "$tmp/notify.log" "^READY=1\|STATUS=kmm 127\.0\.0\.1:$KP signaling 127\.0\.0\.1:$SP"; then
    ok "sd_notify READY=1 with the addresses"
else
    not_ok "sd_notify READY=1" "$(cat "$tmp/notify.log")"
fi
cp "$tmp/cms-good.conf" "$tmp/cms-good.conf.orig"
cp "$tmp/cms-bad.conf" "$tmp/cms-good.conf"
kill -HUP "$(cms_pid z)"
if wait_file_grep "$tmp/z.log" "SIGHUP: configuration refused, the running one is kept"; then
    ok "SIGHUP with a broken configuration: refused, still serving"
else
    not_ok "SIGHUP with a broken configuration is refused" "$(tail -n 5 "$tmp/z.log")"
fi
cp "$tmp/cms-good.conf.orig" "$tmp/cms-good.conf"
echo "    grace = 5m" >>"$tmp/cms-good.conf"
kill -HUP "$(cms_pid z)"
if wait_file_grep "$tmp/z.log" "SIGHUP: configuration reloaded" && wait_file_grep "$tmp/notify.log" "^RELOADING=1"; then
    ok "SIGHUP: configuration and keytab re-read (RELOADING=1, then READY=1)"
else
    not_ok "SIGHUP reload" "$(tail -n 5 "$tmp/z.log")
$(cat "$tmp/notify.log")"
fi
stop_cms z "cablekey-cms stops cleanly on SIGTERM after reloads (exit 0)"

# ---- 1. AP exchange and protected signaling both ways, captured for tshark -----------------
start_cms a 127.0.0.1 --export-xfrm "$tmp/xfrm.txt" --log-flush-ms 50
dumpcap -q -i lo -f "udp port $KP or udp port $SP" -w "$tmp/kmm.pcapng" >"$tmp/dumpcap.log" 2>&1 &
CAP_PID=$!
CK_BG_PIDS+=($CAP_PID)
for i in $(seq 1 50); do grep -q "Capturing on" "$tmp/dumpcap.log" 2>/dev/null && break; sleep 0.1; done
sleep 0.5
if mta "$tmp/mta1.cc" --cms "127.0.0.1:$KP" --count 5 &&
    grep -Eq "^kmm: ok cms 127.0.0.1:$KP service $SVC suite sha1-aes128 spi in 0x[0-9a-f]{8} out 0x[0-9a-f]{8} sent 5 answered 5 received-rqnt 1 " "$tmp/mta.out"; then
    ok "AP exchange, 5 NTFYs answered under ESP, the CMS's RQNT answered (both ways)"
else
    not_ok "AP exchange and protected signaling" "$(mta_result)
$(tail -n 10 "$tmp/a.log")"
fi
sleep 0.5
kill -INT "$CAP_PID" 2>/dev/null; wait "$CAP_PID" 2>/dev/null
assert_log_wait "CMS logs the AP Request in the CONTRACT7 form" \
    "KMM AP-REQ 127\.0\.0\.1:[0-9]+ mta1@$REALM -> $SVC suite sha1-aes128 spi in 0x[0-9a-f]{8} out 0x[0-9a-f]{8}: ok" "$tmp/a.log"
assert_log_wait "CMS logs the RQNT acknowledged" "RQNT acknowledged" "$tmp/a.log"
assert_file_grep "--export-xfrm wrote ip xfrm state lines" "^ip xfrm state add src 127\.0\.0\.1 dst 127\.0\.0\.1 proto esp spi 0x[0-9a-f]{8} .*encap espinudp" "$tmp/xfrm.txt"
if grep -q "^ip xfrm policy add .* dir in " "$tmp/xfrm.txt" && grep -q "^ip xfrm policy add .* dir out " "$tmp/xfrm.txt"; then
    ok "--export-xfrm wrote the inbound and the outbound policy"
else
    not_ok "--export-xfrm policies" "$(grep policy "$tmp/xfrm.txt" | head -n 4)"
fi
if [ "$(stat -c %a "$tmp/xfrm.txt")" = 600 ]; then ok "--export-xfrm file is 0600"; else
    not_ok "--export-xfrm file is 0600" "$(stat -c %a "$tmp/xfrm.txt")"; fi

# tshark: pktc + kerberos + ESP, nothing malformed, no expert warnings.
TS=(tshark -r "$tmp/kmm.pcapng" -d "udp.port==$KP,pktc" -d "udp.port==$SP,udpencap")
n_pktc=$("${TS[@]}" -Y pktc 2>/dev/null | wc -l)
n_krb=$("${TS[@]}" -Y "kerberos.ap_req_element or kerberos.ap_rep_element" 2>/dev/null | wc -l)
n_esp=$("${TS[@]}" -Y esp 2>/dev/null | wc -l)
n_bad=$("${TS[@]}" -Y "_ws.malformed or _ws.expert.severity >= warning" 2>/dev/null | wc -l)
if [ "$n_pktc" -ge 2 ] && [ "$n_krb" -ge 2 ] && [ "$n_esp" -ge 12 ] && [ "$n_bad" -eq 0 ]; then
    ok "tshark: $n_pktc pktc, $n_krb with Kerberos AP-REQ/AP-REP, $n_esp ESP, 0 malformed or warnings"
else
    not_ok "tshark decodes the capture cleanly" "pktc $n_pktc kerberos $n_krb esp $n_esp malformed/warnings $n_bad
$("${TS[@]}" -Y "_ws.malformed or _ws.expert.severity >= warning" 2>&1 | head -n 5)
$("${TS[@]}" -q -z expert 2>&1 | head -n 20)"
fi

# ---- 2. A replayed AP Request (the captured datagram, sent again from elsewhere) -----------
"${TS[@]}" -Y "udp.dstport==$KP and pktc.kmmid==0x02" -T fields -e udp.payload 2>/dev/null | head -n 1 |
    tr -d ':\n' >"$tmp/apreq.hex"
if [ -s "$tmp/apreq.hex" ]; then
    "$CK_PY" - "$tmp/apreq.hex" "$KP" >"$tmp/replay.out" 2>&1 <<'EOF'
import socket, sys
msg = bytes.fromhex(open(sys.argv[1]).read().strip())
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.sendto(msg, ("127.0.0.1", int(sys.argv[2])))
d, _ = s.recvfrom(65535)
# Error Reply: KMMID 6, then the KRB-ERROR whose error-code [6] INTEGER follows "a6 03 02 01".
i = d.find(b"\xa6\x03\x02\x01")
print("kmmid", d[0], "code", d[i + 4] if i >= 0 else -1)
EOF
    if grep -q "kmmid 6 code 34" "$tmp/replay.out"; then
        ok "replayed AP Request: Error Reply KRB_AP_ERR_REPEAT"
    else
        not_ok "replayed AP Request: Error Reply KRB_AP_ERR_REPEAT" "$(cat "$tmp/replay.out")"
    fi
    assert_log_wait "CMS logs the replay" "error KRB_AP_ERR_REPEAT \(replayed authenticator\)" "$tmp/a.log"
else
    not_ok "replayed AP Request: the AP Request found in the capture" "$(tshark -r "$tmp/kmm.pcapng" 2>&1 | head)"
fi

# ---- 3. Garbage while another endpoint is served ---------------------------------------------
"$CK_PY" - "$KP" "$SP" >"$tmp/garbage.out" 2>&1 <<'EOF' &
import os, random, socket, sys, time
kp, sp = int(sys.argv[1]), int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
rnd = random.Random(7)
end = time.time() + 3
n = 0
while time.time() < end:
    kind = rnd.randrange(4)
    if kind == 0:
        d = os.urandom(rnd.randrange(0, 600))
    elif kind == 1:   # KMM-looking: a known KMMID and DOI, then noise
        d = bytes([rnd.choice([2, 4, 1, 3, 5, 6]), rnd.choice([1, 2, 9]), 0x10]) + os.urandom(rnd.randrange(0, 300))
    elif kind == 2:   # ESP-looking, unknown SPIs
        d = os.urandom(4) + b"\x00\x00\x00\x01" + os.urandom(rnd.randrange(0, 200))
    else:
        d = b"\x00\x00\x00\x00" + os.urandom(40)
    s.sendto(d, ("127.0.0.1", kp if kind < 2 else sp))
    n += 1
    time.sleep(0.0005)
print("sent", n)
EOF
GARBAGE_PID=$!
sleep 0.3
if mta "$tmp/mta2.cc" --cms "127.0.0.1:$KP" --count 20 &&
    grep -q "^kmm: ok .* sent 20 answered 20 " "$tmp/mta.out"; then
    ok "an endpoint is served while garbage arrives on both ports"
else
    not_ok "an endpoint is served while garbage arrives on both ports" "$(mta_result)"
fi
wait "$GARBAGE_PID"
cms_alive a "cablekey-cms still running after the garbage ($(cat "$tmp/garbage.out"))"

# ---- 4. Rekey on SIGUSR1 ----------------------------------------------------------------------
before=$(cms_log_count a "KMM AP-REQ .*: ok")
mta_bg "$tmp/mta1.cc" --cms "127.0.0.1:$KP" --count 15 --interval 200
for i in $(seq 1 50); do [ "$(cms_log_count a "KMM AP-REQ .*: ok")" -gt "$before" ] && break; sleep 0.1; done
sleep 0.5
kill -USR1 "$(cms_pid a)"
wait "$MTA_PID"; rc=$?
if [ $rc -eq 0 ] && grep -q "^kmm: ok .* answered 15 " "$tmp/mta.out" &&
    [ "$(summary_field rekeys)" -ge 1 ] 2>/dev/null; then
    ok "SIGUSR1: Rekey to every SA, the endpoint re-keys and keeps signaling ($(summary_field exchanges) exchanges)"
else
    not_ok "SIGUSR1: Rekey, the endpoint re-keys" "rc $rc $(mta_result)
$(grep -E "REKEY|SIGUSR1|AP-REQ" "$tmp/a.log" | tail -n 8)"
fi
assert_log_wait "CMS logs the SIGUSR1 Rekey" "KMM REKEY 127\.0\.0\.1:[0-9]+ spi in 0x[0-9a-f]{8}: sent \(SIGUSR1\)" "$tmp/a.log"
assert_log_wait "the Rekey-started AP Request echoes the server nonce" "KMM AP-REQ .* solicited.*: ok" "$tmp/a.log"

# ---- 5. cablekey-cms restarted under a running endpoint: Wake Up, one round trip -------------
mta_bg "$tmp/mta1.cc" --cms "127.0.0.1:$KP" --count 20 --interval 200
sleep 1.5
stop_cms a "cablekey-cms stops cleanly on SIGTERM (exit 0)"
start_cms b 127.0.0.1
wait "$MTA_PID"; rc=$?
if [ $rc -eq 0 ] && grep -q "^kmm: ok .* sent 20 answered 20 " "$tmp/mta.out" &&
    [ "$(summary_field exchanges)" -ge 2 ] 2>/dev/null; then
    ok "CMS restarted: the endpoint re-keys and all 20 messages are answered ($(summary_field exchanges) exchanges)"
else
    not_ok "CMS restarted: the endpoint recovers" "rc $rc $(mta_result)
$(tail -n 8 "$tmp/b.log")"
fi
if wait_file_grep "$tmp/b.log" "unknown SPI, Wake Up sent" && wait_file_grep "$tmp/b.log" "KMM AP-REQ .*(solicited|re-establish).*: ok"; then
    ok "the restarted CMS woke the endpoint (Wake Up) or was re-keyed with Re-establish"
else
    not_ok "Wake Up / Re-establish seen by the restarted CMS" "$(grep -E "Wake|AP-REQ" "$tmp/b.log" | tail -n 5)"
fi
stop_cms b "the restarted cablekey-cms stops cleanly (exit 0)"

# ---- 6. ACK-required ----------------------------------------------------------------------------
cat >"$tmp/cms-ack.conf" <<EOF
[cms]
    ack_required = true
    sa_lifetime = 1h
    grace = 10m
EOF
start_cms c 127.0.0.1 -c "$tmp/cms-ack.conf"
if mta "$tmp/mta1.cc" --cms "127.0.0.1:$KP" --count 3 && grep -q "^kmm: ok .* answered 3 " "$tmp/mta.out"; then
    ok "ack_required = true: the endpoint sends SP Recovered and is served"
else
    not_ok "ack_required = true: the endpoint is served" "$(mta_result)
$(tail -n 5 "$tmp/c.log")"
fi
assert_log_wait "CMS activated the SA on SP Recovered" "KMM SP-RECOVERED .*: ok, SA active" "$tmp/c.log"
stop_cms c "cablekey-cms with ack_required stops cleanly (exit 0)"

# ---- 7. Failover to a second cablekey-cms on 127.0.0.2 -----------------------------------------
if "$CK_PY" -c "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.2', 0))" 2>/dev/null; then
    start_cms d 127.0.0.2
    # 127.0.0.1:$KP has no server now: the endpoint gives up on it after its retries.
    if mta "$tmp/mta1.cc" --cms "127.0.0.1:$KP,127.0.0.2:$KP" --backoff 200,400,2 --count 3 &&
        grep -q "^kmm: ok cms 127.0.0.2:$KP .* answered 3 .* failovers 1" "$tmp/mta.out"; then
        ok "failover: the first CMS is silent, the second (127.0.0.2) keys the endpoint"
    else
        not_ok "failover to the second CMS" "$(mta_result)"
    fi
    stop_cms d "the second cablekey-cms stops cleanly (exit 0)"
else
    not_ok "failover: 127.0.0.2 is not usable on this host"
fi

# ---- 8. Service-key rotation, keytab replaced on disk while running ----------------------------
start_cms e 127.0.0.1
# A service ticket under the current kvno, kept in its own ccache.
cp "$tmp/mta1.cc" "$tmp/mta1-old.cc"
KRB5CCNAME="FILE:$tmp/mta1-old.cc" timeout 20 kvno "$SVC" >"$tmp/kvno.out" 2>&1 || bail "kvno $SVC" "$(cat "$tmp/kvno.out")"
old_kvno=$(sed -n 's/.*kvno = \([0-9]*\).*/\1/p' "$tmp/kvno.out")
realm_rotate "$SVC_NAME" --random || bail "rotate $SVC_NAME"
# The new keytab holds the old keys too; written aside and renamed over, as an operator would.
cp "$tmp/cms.keytab" "$tmp/cms.keytab.new"
realm_ktexport_append "$tmp/cms.keytab.new" "$SVC_NAME" >/dev/null || bail "export rotated key"
mv "$tmp/cms.keytab.new" "$tmp/cms.keytab"
if wait_file_grep "$tmp/e.log" "keytab .* re-read: .* newest kvno $((old_kvno + 1))"; then
    ok "the running CMS picked up the replaced keytab (kvno $old_kvno -> $((old_kvno + 1))) without a restart"
else
    not_ok "keytab re-read without a restart" "$(tail -n 5 "$tmp/e.log")"
fi
if mta "$tmp/mta1-old.cc" --cms "127.0.0.1:$KP" --count 2 && grep -q "^kmm: ok " "$tmp/mta.out"; then
    ok "a ticket under the old kvno ($old_kvno) is still accepted after the rotation"
else
    not_ok "old-kvno ticket accepted after rotation" "$(mta_result)
$(tail -n 3 "$tmp/e.log")"
fi
kinit_pw mta2 mta2-pw -c "$tmp/mta2-new.cc" >/dev/null 2>&1 || bail "kinit mta2"
if mta "$tmp/mta2-new.cc" --cms "127.0.0.1:$KP" --count 2 && grep -q "^kmm: ok " "$tmp/mta.out"; then
    ok "a ticket under the new kvno is accepted"
else
    not_ok "new-kvno ticket accepted" "$(mta_result)"
fi
# A broken keytab on disk: logged, the keys in use stay.
printf '\005\002broken' >"$tmp/cms.keytab.bad"
mv "$tmp/cms.keytab.bad" "$tmp/cms.keytab"
if wait_file_grep "$tmp/e.log" "keytab .*; the keys in use are kept" &&
    mta "$tmp/mta2-new.cc" --cms "127.0.0.1:$KP" --count 1 && grep -q "^kmm: ok " "$tmp/mta.out"; then
    ok "a broken keytab on disk is reported and the keys in use keep serving"
else
    not_ok "broken keytab keeps the old keys" "$(mta_result)
$(tail -n 3 "$tmp/e.log")"
fi
stop_cms e "cablekey-cms stops cleanly after the rotation (exit 0, no sanitizer report)"
grep -h "stats:" "$tmp"/[abcdez].log 2>/dev/null | sed 's/^/# /'
rep=$(grep -Eh "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error" "$tmp"/[abcdez].stderr "$tmp"/[abcdez].log "$tmp/mta.err" 2>/dev/null | head -n 3)
if [ -z "$rep" ]; then ok "no sanitizer report from any cablekey-cms or the last endpoint"; else
    not_ok "no sanitizer report" "$rep"; fi

realm_stop_kdc
done_testing
