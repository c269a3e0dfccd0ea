#!/bin/bash
# cablekey-kdc's Prometheus endpoint (metrics_listen) scraped with curl while MIT kinit/kvno run
# against it: requests by type and result, latency histograms, cache and database series, the
# text format's content type, low cardinality (no principal, no address in any label), other
# paths and methods refused, metrics_listen = none, a taken port: fatal when configured, only
# an error line when it is the default. Ports 21430-21449.
# shellcheck source=tests/interop/lib.sh
. "$(dirname "$0")/lib.sh"

require_tool "MIT client" kinit kvno
require_tool "curl" curl

realm_init METRICS.TEST
PORT=21430; METRICS_PORT=21431; PORT2=21432
CK_LISTEN=("127.0.0.1:$PORT")
# The counts below are exact: over TCP a slow (ASan, loaded) KDC makes MIT resend nothing, while a
# UDP resend would be answered, and counted, twice. UDP gets its own client configuration.
write_krb5_conf "$KRB5_CONFIG" "127.0.0.1:$PORT" "udp_preference_limit = 1"
write_krb5_conf "$tmp/krb5-udp.conf" "127.0.0.1:$PORT"
realm_addprinc alice 'alice-pw-1'
realm_addprinc host/svc.test --random
CK_KDCDEFAULTS_EXTRA=("metrics_listen = 127.0.0.1:$METRICS_PORT" "keyagent_listen = none")
realm_start_kdc_conf

URL="http://127.0.0.1:$METRICS_PORT/metrics"
scrape() { curl -sS --max-time 10 "$URL" >"$tmp/metrics.txt" 2>"$tmp/curl.err"; }
# value SERIES: the sample of one series line (exact series text) in the last scrape.
value() { awk -v s="$1" 'substr($0, 1, length(s) + 1) == s " " {print $2}' "$tmp/metrics.txt"; }
expect_value() { # expect_value DESC SERIES EXPECTED
    local v; v=$(value "$2")
    [ "$v" = "$3" ] && ok "$1" || not_ok "$1" "$2 is '${v:-absent}', expected $3"
}

scrape || bail "scrape /metrics" "$(cat "$tmp/curl.err")"
expect_value "before any request, AS ok is 0" 'kdc_requests_total{type="as",result="ok"}' 0

kinit_pw alice 'alice-pw-1' >/dev/null 2>&1
for i in 1 2 3; do timeout 20 kvno host/svc.test >/dev/null 2>&1; done
kinit_pw alice 'wrong' >/dev/null 2>&1
timeout 20 kvno host/nosuch.test >/dev/null 2>&1
sleep 0.2
scrape
expect_value "AS-REQ answered with a ticket: counted once" \
    'kdc_requests_total{type="as",result="ok"}' 1
expect_value "AS-REQ refused for a wrong password: preauth_failed" \
    'kdc_requests_total{type="as",result="preauth_failed"}' 1
expect_value "the first AS-REQ of each kinit: preauth_required" \
    'kdc_requests_total{type="as",result="preauth_required"}' 2
expect_value "TGS-REQ for host/svc.test (kvno caches it after the first): ok" \
    'kdc_requests_total{type="tgs",result="ok"}' 1
# MIT's kvno may ask more than once for an unknown service: the metric must match the log.
n=$(log_count 'TGS_REQ .*: SERVER_NOT_FOUND: ')
[ "$n" -ge 1 ] || not_ok "the KDC logged the unknown service" "no SERVER_NOT_FOUND line"
expect_value "TGS-REQs for an unknown service: server_unknown, as many as logged ($n)" \
    'kdc_requests_total{type="tgs",result="server_unknown"}' "$n"
expect_value "the AS latency histogram counted every AS-REQ" \
    'kdc_request_duration_seconds_count{type="as"}' 4
expect_value "its +Inf bucket equals its count" \
    'kdc_request_duration_seconds_bucket{type="as",le="+Inf"}' 4
v=$(value 'kdc_cache_lookups_total{cache="principal",result="hit"}')
[ "${v:-0}" -gt 0 ] && ok "principal cache hits are counted ($v)" ||
    not_ok "principal cache hits are counted" "${v:-absent}"
v=$(value 'kdc_db_duration_seconds_count{op="principal_load"}')
[ "${v:-0}" -gt 0 ] && ok "database loads are timed ($v)" ||
    not_ok "database loads are timed" "${v:-absent}"
assert_file_grep "the staleness gauge is there" '^kdc_db_staleness_seconds [0-9.e+-]+$' "$tmp/metrics.txt"
assert_file_grep "the active alarms gauge is there" '^kdc_alarms_active [0-9]+$' "$tmp/metrics.txt"
assert_file_grep "admission control's series are there (nothing shed)" \
    '^kdc_admission_dropped_total\{reason="stale"\} 0$' "$tmp/metrics.txt"
KRB5_CONFIG="$tmp/krb5-udp.conf" kinit_pw alice 'alice-pw-1' >/dev/null 2>&1
sleep 0.2
scrape
v=$(value 'kdc_admission_admitted_total')
[ "${v:-0}" -gt 0 ] && ok "admitted UDP requests are counted ($v)" ||
    not_ok "admitted UDP requests are counted" "${v:-absent}"
assert_file_grep "every family has HELP and TYPE" '^# TYPE kdc_request_duration_seconds histogram$' \
    "$tmp/metrics.txt"

# Low cardinality: no principal, no address, only declared label names.
if grep -Eq 'alice|svc\.test|nosuch|127\.0\.0\.1|METRICS\.TEST' "$tmp/metrics.txt"; then
    not_ok "no principal or address in any series" "$(grep -E 'alice|svc|127\.0' "$tmp/metrics.txt" | head -n 3)"
else
    ok "no principal or address in any series"
fi
labels=$(grep -v '^#' "$tmp/metrics.txt" | grep -o '[a-z_]*="' | sort -u | tr -d '="' | tr '\n' ' ')
[ "$labels" = "cache le op reason result type " ] && ok "label names: $labels" ||
    not_ok "only the declared label names" "$labels"
series=$(grep -vc '^#' "$tmp/metrics.txt")
for i in $(seq 1 20); do kinit_pw "user$i" x >/dev/null 2>&1; done
scrape
[ "$(grep -vc '^#' "$tmp/metrics.txt")" = "$series" ] &&
    ok "20 unknown client names add no series ($series)" ||
    not_ok "unknown client names add no series" "$series -> $(grep -vc '^#' "$tmp/metrics.txt")"
expect_value "... and are counted as client_unknown" \
    'kdc_requests_total{type="as",result="client_unknown"}' 20

# A reload builds new workers: the counters go on (one registry for the process).
ok_before=$(value 'kdc_requests_total{type="as",result="ok"}')
hits_before=$(value 'kdc_cache_lookups_total{cache="principal",result="hit"}')
kill -HUP "$KDC_PID"
for _ in $(seq 1 100); do grep -q 'SIGHUP: configuration reloaded' "$tmp/kdc.log" && break; sleep 0.1; done
# Four kinits: eight lookups of alice over the new workers' empty caches (one per worker, and
# TCP connections need not reach the same worker twice), so some are hits whatever the spread.
for _ in 1 2 3 4; do kinit_pw alice 'alice-pw-1' >/dev/null 2>&1; done
sleep 0.2
scrape
expect_value "after SIGHUP the AS ok counter goes on from $ok_before" \
    'kdc_requests_total{type="as",result="ok"}' $((ok_before + 4))
v=$(value 'kdc_cache_lookups_total{cache="principal",result="hit"}')
[ "${v:-0}" -gt "$hits_before" ] && ok "after SIGHUP the new workers' cache hits add up ($hits_before -> $v)" ||
    not_ok "after SIGHUP the new workers' cache hits add up" "$hits_before -> ${v:-absent}"

expect_output "Content-Type is the text format 0.0.4" 'text/plain; version=0\.0\.4' \
    curl -sS -o /dev/null -D - --max-time 10 "$URL"
expect_output "another path is 404" '^404$' \
    curl -sS -o /dev/null -w '%{http_code}' --max-time 10 "http://127.0.0.1:$METRICS_PORT/"
expect_output "POST is 405" '^405$' \
    curl -sS -o /dev/null -w '%{http_code}' -X POST --max-time 10 "$URL"
realm_stop_kdc

# metrics_listen = none: nothing listens.
CK_KDCDEFAULTS_EXTRA=("metrics_listen = none" "keyagent_listen = none")
realm_start_kdc_conf
expect_failure "metrics_listen = none: nothing listens" '.' \
    curl -sS --max-time 5 "$URL"
expect_success "... and the KDC serves" kinit_pw alice 'alice-pw-1'
realm_stop_kdc

# A configured address that is taken fails the start, naming it.
"$CK_PY" -c 'import socket,sys,time
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1); time.sleep(60)' "$PORT2" &
CK_BG_PIDS+=($!)
for _ in $(seq 1 50); do ck_tcp_probe "127.0.0.1:$PORT2" && break; sleep 0.1; done
CK_KDCDEFAULTS_EXTRA=("metrics_listen = 127.0.0.1:$PORT2" "keyagent_listen = none")
write_kdc_conf "$tmp/kdc.conf"
expect_failure "a taken metrics_listen fails the start, naming it" \
    "metrics_listen 127\.0\.0\.1:$PORT2" timeout 20 "$CK_KDC" -c "$tmp/kdc.conf" --log stderr
CK_KDCDEFAULTS_EXTRA=("metrics_listen = 127.0.0.1:notaport" "keyagent_listen = none")
write_kdc_conf "$tmp/kdc.conf"
expect_failure "a malformed metrics_listen is a configuration error (--check)" \
    'metrics_listen' timeout 20 "$CK_KDC" -c "$tmp/kdc.conf" --check --log stderr
done_testing
