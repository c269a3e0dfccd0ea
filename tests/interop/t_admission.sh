#!/usr/bin/env bash
# cablekey-kdc UDP admission control (issue 9, the mass reset), end to end: --check shows the
# settings; with the KDC frozen (SIGSTOP) a burst of datagrams from another loopback source waits
# past the window, and after SIGCONT it is dropped unread (no request line, no decode error in the
# log), reported by one "admission shed" line, while MIT kinit is answered at once; with
# kdc_admission = false the same burst is decoded and answered (the check can fail). No timing is
# asserted: the burst waits at least twice the window because the KDC is stopped.
# Ports 21500-21599 (k9storm's range).
. "$(dirname "$0")/lib.sh"

require_tool "MIT client tools" kinit klist
realm_init ADM.TEST
PORT=${CK_ADMISSION_PORT:-21531}
CK_LISTEN=("127.0.0.1:$PORT")
write_krb5_conf "$KRB5_CONFIG" "127.0.0.1:$PORT"
realm_addprinc alice alicepw
WINDOW_MS=300
BURST=40

# burst N: N datagrams that are no Kerberos message from 127.0.0.2 (another source than the
# clients'), sent at once.
burst() {
    "$CK_PY" - "$PORT" "$1" <<'EOF'
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.2", 0))
for i in range(n):
    s.sendto(b"\x6a\x03not-a-kerberos-message-%05d" % i, ("127.0.0.1", port))
EOF
}

# Lines the KDC logs for requests that failed to decode (one per such datagram at debug).
decode_lines() { grep -Ec ' 127\.0\.0\.2: ' "$tmp/kdc.log" 2>/dev/null || true; }

# frozen_burst: SIGSTOP, burst, wait out twice the window, SIGCONT.
frozen_burst() {
    kill -STOP "$KDC_PID"
    burst "$BURST"
    sleep "$(awk -v w="$WINDOW_MS" 'BEGIN { printf "%.2f", 2.5 * w / 1000 }')"
    kill -CONT "$KDC_PID"
}

start_kdc() { # start_kdc on|off
    CK_KDCDEFAULTS_EXTRA=("kdc_workers = 1" "kdc_cpu_affinity = false"
                          "kdc_admission = $([ "$1" = on ] && echo true || echo false)"
                          "kdc_admission_window_ms = $WINDOW_MS")
    realm_start_kdc_conf
}

# --- --check ------------------------------------------------------------------------------
CK_KDCDEFAULTS_EXTRA=("kdc_admission_window_ms = $WINDOW_MS" "kdc_admission_prefix4 = 32")
write_kdc_conf "$tmp/check.conf"
expect_output "--check prints the admission settings" \
    "admission: on, window $WINDOW_MS ms, congestion 100 ms, sources /32 /64 \(4096 per worker\), UDP queue 4194304 bytes" \
    "$CK_KDC" --check -c "$tmp/check.conf"
CK_KDCDEFAULTS_EXTRA=("kdc_admission_window_ms = 5")
write_kdc_conf "$tmp/bad.conf"
expect_failure "--check refuses a window below 10 ms, naming the key" "kdc_admission_window_ms" \
    "$CK_KDC" --check -c "$tmp/bad.conf"

# --- admission on -------------------------------------------------------------------------
start_kdc on
# The log line a datagram that is no Kerberos message gets when it is decoded: the baseline.
burst 1
if wait_file_grep "$tmp/kdc.log" ' 127\.0\.0\.2: '; then
    ok "a fresh datagram from 127.0.0.2 is decoded and logged (baseline)"
else
    not_ok "a fresh datagram from 127.0.0.2 is decoded and logged (baseline)" "$(tail -n 5 "$tmp/kdc.log")"
fi
before=$(decode_lines)
frozen_burst
expect_success "kinit right after the frozen burst is answered" kinit_pw alice alicepw
# Reported once a second at most: the burst may be split over two lines (one batch, then the
# rest a second later); the last line's total counts all of it.
if wait_file_grep "$tmp/kdc.log" "admission shed .* total_shed=$BURST\$"; then
    ok "the admission lines report all $BURST aged datagrams as shed"
else
    not_ok "the admission lines report all $BURST aged datagrams as shed" \
        "$(grep -E 'admission' "$tmp/kdc.log" | head -n 5)"
fi
stale=$(grep -o 'admission shed stale=[0-9]* share=[0-9]*' "$tmp/kdc.log" |
        awk -F'[= ]' '{ st += $4; sh += $6 } END { print st + 0, sh + 0 }')
n=$(grep -c 'admission shed' "$tmp/kdc.log")
if [ "$stale" = "$BURST 0" ] && [ "$n" -le 2 ]; then
    ok "all shed as stale, none for share, in $n line(s) (no log storm)"
else
    not_ok "all shed as stale, none for share, in at most 2 lines" "stale/share: $stale, lines: $n"
fi
after=$(decode_lines)
if [ "$after" -eq "$before" ]; then
    ok "the aged datagrams were dropped unread (decode lines for 127.0.0.2: $before before, $after after)"
else
    not_ok "the aged datagrams were dropped unread" "$before decode lines before, $after after"
fi
kdc_alive "the KDC still runs"
realm_stop_kdc

# --- admission off: the same burst is decoded (the checks above can fail) ------------------
start_kdc off
before=$(decode_lines)
frozen_burst
expect_success "kinit after the frozen burst (admission off)" kinit_pw alice alicepw
for i in $(seq 1 50); do [ "$(decode_lines)" -ge $((before + BURST)) ] && break; sleep 0.1; done
after=$(decode_lines)
if [ "$after" -ge $((before + BURST)) ] && ! grep -q 'admission shed' "$tmp/kdc.log"; then
    ok "admission off: all $BURST aged datagrams are decoded, no admission line"
else
    not_ok "admission off: all $BURST aged datagrams are decoded, no admission line" \
        "$before decode lines before, $after after; $(grep 'admission' "$tmp/kdc.log" | head -n 3)"
fi
realm_stop_kdc

done_testing
