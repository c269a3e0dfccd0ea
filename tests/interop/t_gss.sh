#!/usr/bin/env bash
# GSS-API end to end: MIT gss-server runs with a keytab exported by `cablekey keytab export`,
# MIT gss-client authenticates to it with a ticket from our KDC (mutual auth, wrap/unwrap, MIC).
. "$(dirname "$0")/lib.sh"

require_tool "MIT client tools" kinit klist kvno
require_tool "MIT GSS sample programs (krb5-gss-samples)" gss-server gss-client
realm_init TEST.REALM
realm_addprinc alice alicepw
realm_addprinc host/svc.test --random
realm_start_kdc

KT="$tmp/svc.keytab"
expect_success "export host/svc.test to a keytab" realm_ktexport "$KT" host/svc.test@TEST.REALM
expect_success "kinit alice" kinit_pw alice alicepw

GSS_PORT=$(free_port) || bail "pick a port for gss-server"

# start_gss_server KEYTAB: gss-server -inetd for host@svc.test behind a one-shot loopback-only
# listener (gss-server itself would listen on all interfaces). Sets SRV.
start_gss_server() {
    rm -f "$tmp/gss.ready"
    : >"$tmp/gss-server.log"
    KRB5_KTNAME="FILE:$1" timeout -k 5 "$CK_TIMEOUT" "${KRBPKT[@]}" inetd --listen "127.0.0.1:$GSS_PORT" \
        --ready "$tmp/gss.ready" --timeout "$CK_TIMEOUT" -- \
        gss-server -inetd -verbose -logfile "$tmp/gss-server.log" host@svc.test \
        >"$tmp/gss-server.out" 2>&1 </dev/null &
    SRV=$!
    CK_BG_PIDS+=("$SRV")
    local i
    for i in $(seq 1 50); do
        [ -f "$tmp/gss.ready" ] && return 0
        kill -0 "$SRV" 2>/dev/null || break
        sleep 0.1
    done
    return 1
}

# gss_round DESC [gss-client options]: one gss-server / gss-client exchange.
gss_round() {
    local desc=$1 rc srv_rc; shift
    start_gss_server "$KT" || { not_ok "$desc" "gss-server did not start: $(cat "$tmp/gss-server.out")"; return; }
    timeout -k 5 "$CK_TIMEOUT" gss-client -port "$GSS_PORT" "$@" 127.0.0.1 host@svc.test "hello from cablekey" \
        >"$tmp/gss-client.out" 2>&1 </dev/null
    rc=$?
    wait "$SRV"; srv_rc=$?
    if [ $rc -eq 0 ] && [ $srv_rc -eq 0 ] &&
       grep -q "Signature verified" "$tmp/gss-client.out" &&
       grep -q "hello from cablekey" "$tmp/gss-server.log" "$tmp/gss-server.out"; then
        ok "$desc"
    else
        not_ok "$desc" "gss-client exit $rc, gss-server exit $srv_rc
--- gss-client:
$(tail -n 15 "$tmp/gss-client.out")
--- gss-server:
$(tail -n 15 "$tmp/gss-server.out" "$tmp/gss-server.log")"
    fi
}

gss_round "gss-client authenticates to gss-server (mutual auth, sealed message, MIC verified)"
expect_output "gss-client: context from alice@TEST.REALM to host/svc.test@TEST.REALM" \
    '"alice@TEST\.REALM" to "host/svc\.test@TEST\.REALM"' cat "$tmp/gss-client.out"
expect_output "gss-client established the context to host/svc.test" "context flag: GSS_C_MUTUAL_FLAG" \
    cat "$tmp/gss-client.out"
assert_log "TGS_REQ .*ISSUE: .*alice@TEST\.REALM for host/svc\.test@TEST\.REALM" "KDC log: TGS_REQ ISSUE for host/svc.test"

kinit_pw alice alicepw -f >/dev/null 2>&1
gss_round "gss-client with delegation (-d) of a forwardable TGT" -d
assert_file_grep "gss-client: context flag GSS_C_DELEG_FLAG with -d" "GSS_C_DELEG_FLAG" "$tmp/gss-client.out"
gss_round "gss-client with -seq -mcount 3 (sequence numbers, three messages)" -seq -mcount 3

# A keytab without the right key must be refused by gss-server (proves the check is real).
realm_addprinc host/other.test --random
realm_ktexport "$tmp/other.keytab" host/other.test@TEST.REALM >/dev/null 2>&1
start_gss_server "$tmp/other.keytab"
srv=$SRV
timeout -k 5 "$CK_TIMEOUT" gss-client -port "$GSS_PORT" 127.0.0.1 host@svc.test "x" >"$tmp/gss-client.out" 2>&1 </dev/null
rc=$?
kill "$srv" 2>/dev/null; wait "$srv" 2>/dev/null
if [ $rc -ne 0 ]; then ok "gss-client fails against a server holding the wrong keytab"
else not_ok "gss-client fails against a server holding the wrong keytab" "$(cat "$tmp/gss-client.out")"; fi

realm_stop_kdc
done_testing
