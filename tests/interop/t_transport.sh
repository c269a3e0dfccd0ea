#!/usr/bin/env bash
# Transports: UDP by default, TCP when the client prefers it, UDP->TCP fallback when the reply is
# bigger than the KDC's kdc_max_dgram_reply_size (KRB_ERR_RESPONSE_TOO_BIG), and IPv6 on [::1].
. "$(dirname "$0")/lib.sh"

require_tool "MIT client tools" kinit klist kvno
realm_init TEST.REALM
realm_addprinc alice alicepw
realm_addprinc host/svc.test --random
realm_addprinc bob bobpw --no-preauth
# The reply to alice is several hundred bytes; NEEDED_PREAUTH errors stay small (< 300 bytes).
CK_KDCDEFAULTS_EXTRA=("kdc_max_dgram_reply_size = 400")
CK_LISTEN+=("[::1]:$PORT")
realm_start_kdc_conf

trace() { : >"$tmp/trace.log"; }

# (0) Default: the small AS-REQ goes over UDP and the whole exchange stays there... until a reply
#     exceeds 400 bytes, so use the error path as the UDP witness.
trace
expect_failure "UDP: unknown client answered over UDP" "not found in Kerberos database" kinit_pw nosuch x
assert_file_grep "trace: request sent over UDP (dgram 127.0.0.1:$PORT)" \
    "Sending initial UDP request to dgram 127\.0\.0\.1:$PORT" "$tmp/trace.log"
assert_file_grep "trace: answer received over UDP" "Received answer \([0-9]+ bytes\) from dgram 127\.0\.0\.1:$PORT" "$tmp/trace.log"

# (b) UDP -> TCP fallback: the AS-REP does not fit in 400 bytes.
trace
expect_success "kinit succeeds although the AS-REP exceeds kdc_max_dgram_reply_size" kinit_pw alice alicepw
assert_file_grep "trace: KDC said the response is too big, kinit retried with TCP" \
    "too big for UDP; retrying with TCP" "$tmp/trace.log"
assert_file_grep "trace: the AS-REP came over TCP (stream 127.0.0.1:$PORT)" \
    "Received answer \([0-9]+ bytes\) from stream 127\.0\.0\.1:$PORT" "$tmp/trace.log"
ck_only "KDC log: too-big status for the UDP reply" \
    assert_log "(RESPONSE_TOO_BIG|TOO_BIG|too big)" "KDC log: too-big status for the UDP reply"
# The raw view: an AS-REQ for a no-preauth principal over UDP gets error 52 (reply too big).
expect_output "raw UDP AS-REQ for bob (no preauth) -> KRB-ERROR 52" "^built-minimal error 52" \
    "${KRBPKT[@]}" send --kdc "127.0.0.1:$PORT" --cname bob built-minimal
expect_output "the same AS-REQ over TCP -> AS-REP" "^tcp-built-minimal as-rep" \
    "${KRBPKT[@]}" send --kdc "127.0.0.1:$PORT" --cname bob tcp-built-minimal

# (a) udp_preference_limit = 1: straight to TCP.
write_krb5_conf "$tmp/krb5-tcp.conf" "127.0.0.1:$PORT" "udp_preference_limit = 1"
trace
expect_success "udp_preference_limit = 1: kinit works" env KRB5_CONFIG="$tmp/krb5-tcp.conf" \
    bash -c 'printf "alicepw\n" | kinit alice'
assert_file_grep "trace: kinit sent its AS-REQ over TCP" "Sending TCP request to stream 127\.0\.0\.1:$PORT" "$tmp/trace.log"
if grep -q "dgram 127.0.0.1:$PORT" "$tmp/trace.log"; then
    not_ok "trace: no UDP at all with udp_preference_limit = 1" "$(grep dgram "$tmp/trace.log" | head -3)"
else
    ok "trace: no UDP at all with udp_preference_limit = 1"
fi
expect_success "udp_preference_limit = 1: kvno over TCP" env KRB5_CONFIG="$tmp/krb5-tcp.conf" \
    kvno host/svc.test@TEST.REALM

# IPv6: the same KDC also listens on [::1]:PORT.
write_krb5_conf "$tmp/krb5-v6.conf" "[::1]:$PORT"
trace
expect_success "IPv6: kinit via [::1]:$PORT" env KRB5_CONFIG="$tmp/krb5-v6.conf" \
    bash -c 'printf "alicepw\n" | kinit alice'
assert_file_grep "trace: request went to [::1]" "to (dgram|stream) ::1:$PORT" "$tmp/trace.log"
expect_success "IPv6: kvno via [::1]" env KRB5_CONFIG="$tmp/krb5-v6.conf" kvno host/svc.test@TEST.REALM
write_krb5_conf "$tmp/krb5-v6tcp.conf" "[::1]:$PORT" "udp_preference_limit = 1"
expect_success "IPv6 over TCP: kinit via [::1]:$PORT" env KRB5_CONFIG="$tmp/krb5-v6tcp.conf" \
    bash -c 'printf "alicepw\n" | kinit alice'
expect_output "IPv6 raw UDP: NEEDED_PREAUTH over [::1]" "^built-minimal error 25" \
    "${KRBPKT[@]}" send --kdc "[::1]:$PORT" built-minimal
assert_log "AS_REQ .* ::1: (ISSUE|NEEDED_PREAUTH)" "KDC log: requests from ::1"

realm_stop_kdc
done_testing
