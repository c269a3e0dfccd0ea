#!/usr/bin/env bash
# cablekey-cms with cablekey-prov (issue 10, docs/cablekey-cms.md "Provisioning"): the real
# cablekey-kdc with pkinit_provisioning, cablekey-prov on the same database, cablekey-cms with
# provisioning_url (HTTP Negotiate as cms/cms.test from its own keytab, nothing in its
# environment but krb5.conf) and `cablekey mta` devices:
#   - an unprovisioned device (manufacturer certificate, restricted-calls ticket) that keys IPsec
#     with the controller is reported: prov shows it with the address the controller saw and
#     reported_by = the controller's principal; the controller logs "prov report ... result=ok";
#   - the unprovisioned device, which has no line, calls the CSR's number (connected) and is
#     refused for another number;
#   - provisioning it through the API adds its number to the controller's table ("prov line
#     add"), and a call from another line to that number is routed to it; de-provisioning
#     removes the number live ("prov line remove"), and the next call to it is refused;
#   - with cablekey-prov stopped, reports are retried ("result=retry") and delivered once it is
#     back ("result=ok"), and the lines poll resumes.
. "$(dirname "$0")/lib.sh"

if is_mit; then
    skip_case "cablekey-cms with cablekey-prov" "cablekey-only test (needs cablekey-cms)"
    done_testing
fi
require_tool "OpenSSL" openssl
require_tool "MIT client tools" kinit kdestroy klist
require_tool "curl with GSS-API (Negotiate)" curl
curl -V | grep -qE 'GSS-API|SPNEGO' || bail "curl lacks GSS-API/SPNEGO support"
CK_CMS="$CK_BUILD/cablekey-cms"
CK_PROV="$CK_BUILD/cablekey-prov"
[ -x "$CK_CMS" ] || bail "cablekey-cms not built at $CK_CMS"
[ -x "$CK_PROV" ] || bail "cablekey-prov not built at $CK_PROV"

PW='Cms-Prov-Test-Pw-7'
printf '%s\n' "$PW" >"$tmp/pw"; chmod 600 "$tmp/pw"
PKI="$tmp/pki"
R=CMSPROV.TEST
MAC=00:11:22:33:44:55
UPRINC=mta-001122334455
DEV="$tmp/dev"
CSR_NUM=5550611
A_NUM=5551001

# ---- the PKI: the service provider's (KDC), the manufacturer's, the provisioning CA ---------
timeout 120 "$CK_CLI" pki init --dir "$PKI" --realm "$R" --org "Cable Test Co" \
    --password-file "$tmp/pw" </dev/null >"$tmp/pki.log" 2>&1 ||
    bail "cablekey pki init" "$(tail -n 5 "$tmp/pki.log")"
mkdir -p "$DEV"; chmod 700 "$DEV"
timeout 60 "$CK_CLI" pki issue-device --dir "$PKI" --mac "$MAC" --out "$DEV/factory.p12" \
    --key ec-p256 --password-file "$tmp/pw" </dev/null >>"$tmp/pki.log" 2>&1 ||
    bail "cablekey pki issue-device" "$(tail -n 5 "$tmp/pki.log")"
cp "$tmp/pw" "$DEV/factory.pw"; chmod 600 "$DEV/factory.pw"

# ---- the realm: the KDC admits unprovisioned devices, restricted to the CSR and 911 ---------
realm_init "$R"
realm_addprinc cms/cms.test --random
realm_addprinc HTTP/localhost --random
realm_addprinc mta1 mta1-pw
realm_addprinc csr1 csr1-pw
realm_addprinc oss oss-pw
realm_ktexport "$tmp/cms.keytab" cms/cms.test >/dev/null || bail "export the CMS keytab"
realm_ktexport "$tmp/http.keytab" HTTP/localhost >/dev/null || bail "export the HTTP keytab"
echo "    localhost = $R" >>"$KRB5_CONFIG"
cat >"$tmp/kdc.conf" <<EOF
[kdcdefaults]
    pkinit_provisioning = true
    pkinit_unprovisioned_calls = $CSR_NUM 911
[realms]
    $R = {
        database_name = $DB
        key_stash_file = $STASH
        pkinit_operator_anchors = FILE:$PKI/prov-ca.pem
    }
EOF
realm_start_kdc --workers 1 -c "$tmp/kdc.conf" --pkinit-identity "$PKI/kdc.p12" \
    --pkinit-password-file "$tmp/pw" --pkinit-anchors "$PKI/sp-root.pem" \
    --pkinit-packetcable-anchors "$PKI/mfg-root.pem" --pkinit-pool "$PKI/sp-ca.pem,$PKI/mfg-ca.pem"
kinit_pw mta1 mta1-pw -c "$tmp/a.cc" >/dev/null 2>&1 || bail "kinit mta1"
kinit_pw csr1 csr1-pw -c "$tmp/csr.cc" >/dev/null 2>&1 || bail "kinit csr1"
kinit_pw oss oss-pw -c "$tmp/oss.cc" >/dev/null 2>&1 || bail "kinit oss"

# ---- cablekey-prov on the KDC's database -----------------------------------------------------
PPORT=$(free_port) || bail "pick a port for cablekey-prov"
cat >"$tmp/prov.acl" <<EOF
oss@$R              iapr
cms/cms.test@$R     ic
EOF
cat >"$tmp/prov.conf" <<EOF
[prov]
    database = $DB
    stash = $STASH
    keytab = $tmp/http.keytab
    acl_file = $tmp/prov.acl
    ca_cert = $PKI/prov-ca.pem
    ca_key = $PKI/prov-ca-key.pem
    ca_password_file = $tmp/pw
    phone_id_key = $PKI/phone-id.key
    fqdn_domain = mta.cmsprov.test
    fqdn_listen = none
    devchan_listen = none
    pool = north 5551100 5551109
    listen = 127.0.0.1:$PPORT
    log = FILE:$tmp/prov.log
EOF
PROV_PID=""
start_prov() {
    "$CK_PROV" -c "$tmp/prov.conf" >>"$tmp/prov.out" 2>&1 </dev/null &
    PROV_PID=$!
    CK_BG_PIDS+=("$PROV_PID")
    for _ in $(seq 1 300); do
        ck_tcp_probe "127.0.0.1:$PPORT" && return 0
        kill -0 "$PROV_PID" 2>/dev/null || break
        sleep 0.1
    done
    bail "cablekey-prov started" "$(tail -n 20 "$tmp/prov.out" "$tmp/prov.log" 2>/dev/null)"
}
stop_prov() {
    kill -TERM "$PROV_PID" 2>/dev/null
    wait "$PROV_PID" 2>/dev/null
}
start_prov

URL="http://localhost:$PPORT/api/v1"
api() { # api METHOD PATH [BODY] -> $tmp/body, prints the status (as oss, Negotiate)
    local args=(-s -o "$tmp/body" -w '%{http_code}' -X "$1" --max-time 60 --negotiate -u :)
    [ -n "${3:-}" ] && args+=(-H 'Content-Type: application/json' --data-binary "$3")
    KRB5CCNAME="FILE:$tmp/oss.cc" curl "${args[@]}" "$URL$2"
}
jq_() { "$CK_PY" -c "import json,sys; d=json.load(open('$tmp/body')); print($1)" 2>/dev/null; }
check() { # check DESC WANT_STATUS GOT_STATUS [PY_EXPR_TRUE]
    local e=${4:-True}
    if [ "$3" = "$2" ] && [ "$(jq_ "$e")" = True ]; then ok "$1"
    else not_ok "$1" "status $3 (want $2): $(head -c 600 "$tmp/body")"; fi
}

# ---- cablekey-cms with provisioning_url -----------------------------------------------------
KP=$(free_port); SP=$(free_port)
cat >"$tmp/cms.conf" <<EOF
[cms]
    keytab = $tmp/cms.keytab
    service = cms/cms.test@$R
    kdc = 127.0.0.1:$PORT
    line = $A_NUM mta1@$R mac=0011223344aa
    line = $CSR_NUM csr1@$R
    call_retry_ms = 300
    call_tries = 4
    provisioning_url = http://localhost:$PPORT
    provisioning_retry_max = 2
EOF
expect_output "cablekey-cms --check shows provisioning" \
    "provisioning: http://localhost:$PPORT, lines learnt from it" \
    "$CK_CMS" --check -c "$tmp/cms.conf"
printf '[cms]\n    keytab = %s\n    provisioning_url = ftp://x\n' "$tmp/cms.keytab" >"$tmp/bad.conf"
expect_failure "a provisioning_url that is not http(s) is refused" "provisioning_url" \
    "$CK_CMS" --check -c "$tmp/bad.conf"
: >"$tmp/cms.log"
# Only krb5.conf reaches the controller: no ccache, no client keytab in its environment.
env -u KRB5CCNAME -u KRB5_CLIENT_KTNAME -u KRB5_KTNAME "$CK_CMS" -c "$tmp/cms.conf" \
    --listen "127.0.0.1:$KP" --signaling-listen "127.0.0.1:$SP" --log "$tmp/cms.log" \
    --log-level debug --log-flush-ms 50 >"$tmp/cms.stderr" 2>&1 </dev/null &
CMS_PID=$!
CK_BG_PIDS+=("$CMS_PID")
for _ in $(seq 1 300); do
    grep -q "cablekey-cms ready" "$tmp/cms.log" 2>/dev/null && break
    kill -0 "$CMS_PID" 2>/dev/null || break
    sleep 0.1
done
grep -q "cablekey-cms ready" "$tmp/cms.log" ||
    bail "cablekey-cms started" "$(tail -n 20 "$tmp/cms.stderr" "$tmp/cms.log")"

wait_log() { # wait_log FILE ERE [SECONDS]: bounded poll for a line
    local i n=$(( ${3:-60} * 10 ))
    for i in $(seq 1 "$n"); do grep -Eq -- "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    return 1
}
log_has() { # log_has DESC ERE [SECONDS]: cablekey-cms's log has it
    if wait_log "$tmp/cms.log" "$2" "${3:-60}"; then ok "$1"
    else not_ok "$1" "no /$2/ in cablekey-cms's log: $(grep -E 'prov |ERR|WARN' "$tmp/cms.log" | tail -n 8)"; fi
}
count() { grep -Ec -- "$1" "$tmp/cms.log" 2>/dev/null; }

log_has "the controller announces provisioning as its keytab's principal" \
    "provisioning: http://localhost:$PPORT as cms/cms.test@$R, reports on, lines learnt from it"
if wait_log "$tmp/prov.log" "cms/cms.test@$R.*lines" 60; then
    ok "cablekey-prov logged the lines poll as cms/cms.test@$R"
else
    not_ok "cablekey-prov logged the lines poll as cms/cms.test@$R" "$(tail -n 5 "$tmp/prov.log")"
fi

# ---- phones ----------------------------------------------------------------------------------
MP=$(free_port)
phone() { # phone NAME CCACHE args...
    local name=$1 cc=$2; shift 2
    timeout -k 5 90 "$CK_CLI" mta phone --ccache "$cc" --cms "127.0.0.1:$KP" --sig-port "$SP" \
        --service cms/cms.test --kdc "127.0.0.1:$PORT" --media "127.0.0.1:$MP" \
        --direct-port "$((MP + 1))" --timeout 60 --verbose "$@" \
        >"$tmp/$name.out" 2>"$tmp/$name.err" </dev/null
}
callee() { # callee NAME CCACHE MEDIA_PORT: answers one call in the background (CALLEE_PID)
    local name=$1 cc=$2 mp=$3 i
    timeout -k 5 90 "$CK_CLI" mta phone --ccache "$cc" --cms "127.0.0.1:$KP" --sig-port "$SP" \
        --service cms/cms.test --kdc "127.0.0.1:$PORT" --media "127.0.0.1:$mp" \
        --direct-port "$((mp + 1))" --answer --timeout 60 --verbose \
        >"$tmp/$name.out" 2>"$tmp/$name.err" </dev/null &
    CALLEE_PID=$!
    for i in $(seq 1 300); do
        grep -q "phone: registered" "$tmp/$name.err" 2>/dev/null && { sleep 0.3; return 0; }
        kill -0 "$CALLEE_PID" 2>/dev/null || break
        sleep 0.1
    done
    not_ok "callee $name registered" "$(tail -n 10 "$tmp/$name.err")"
    return 1
}
connected() { # connected DESC CALLER CALLEE (caller exit in CALLER_RC)
    local rcb
    wait "$CALLEE_PID"; rcb=$?
    if [ "$CALLER_RC" -eq 0 ] && [ "$rcb" -eq 0 ] &&
        grep -Eq "^call [0-9A-F]{32} connected " "$tmp/$2.out" &&
        grep -Eq "^call [0-9A-F]{32} connected " "$tmp/$3.out"; then ok "$1"
    else not_ok "$1" "caller exit $CALLER_RC, callee exit $rcb
caller: $(cat "$tmp/$2.out"; tail -n 6 "$tmp/$2.err")
callee: $(cat "$tmp/$3.out"; tail -n 6 "$tmp/$3.err")
cms: $(grep -E "call |prov |WARN|ERR" "$tmp/cms.log" | tail -n 6)"; fi
}
refused() { # refused DESC NAME: the caller's call failed as an unknown number
    if [ "$CALLER_RC" -ne 0 ] && grep -q "call failed reason=unknown-number" "$tmp/$2.out"; then
        ok "$1"
    else not_ok "$1" "exit $CALLER_RC: $(cat "$tmp/$2.out"; tail -n 6 "$tmp/$2.err")"; fi
}

# ---- 1. the unprovisioned device logs in and is reported -------------------------------------
MTA=("$CK_CLI" mta)
timeout 60 "${MTA[@]}" hfc-register --device "$DEV" --ip 10.20.30.40 >"$tmp/mta.out" 2>&1 ||
    bail "mta hfc-register" "$(cat "$tmp/mta.out")"
expect_success "the device boots with its manufacturer certificate (PKINIT, admitted)" \
    timeout 90 "${MTA[@]}" boot --device "$DEV" --kdc "127.0.0.1:$PORT" --realm "$R" \
    --anchors "$PKI/sp-root.pem" --cms "127.0.0.1:$KP" --cms-service cms/cms.test
assert_file_grep "its KMM login keyed an unprovisioned security context" \
    "Unprovisioned Telephony Security Context \(KMM AP-REP ok\)" "$tmp/last.out"
log_has "the controller reported the device to cablekey-prov" \
    "prov report mac=$MAC ip=127\.0\.0\.1 result=ok"
st=$(api GET "/devices/$MAC")
check "prov has the device with the address the controller saw, reported by the controller" 200 \
    "$st" "d['state']=='unprovisioned' and d['unprov_ip']=='127.0.0.1' and d['reported_by']=='cms/cms.test@$R'"

# ---- 2. the unprovisioned device may call the CSR, nothing else ------------------------------
callee csr "$tmp/csr.cc" "$(free_port)"
phone u1 "$DEV/ccache" --dial "$CSR_NUM" --talk 1; CALLER_RC=$?
connected "the unprovisioned device (no line) calls the CSR's number: connected" u1 csr
log_has "the controller shows its MAC as the caller id" \
    "call [0-9A-F]{32} from 001122334455 to $CSR_NUM result"
phone u2 "$DEV/ccache" --dial "$A_NUM" --talk 1; CALLER_RC=$?
refused "the unprovisioned device is refused for another number" u2
log_has "the refusal is logged as the restriction's" \
    "call from 001122334455 \(device $MAC\) to $A_NUM refused: restricted-calls ticket"

# ---- 3. provisioning adds its number, live -----------------------------------------------------
st=$(api POST /customers '{"name":"Ann Lee","address":"1 Main St","segment":"north"}')
check "a customer" 201 "$st"
CUST=$(jq_ "d['id']")
st=$(api POST "/devices/$MAC/provision" "{\"customer\":$CUST}")
check "the device is provisioned with a number" 200 "$st" "d['state']=='provisioned' and len(d['numbers'])==1"
NUM=$(jq_ "d['numbers'][0]")
log_has "the controller learnt the number (prov line add)" \
    "prov line add $NUM $UPRINC@$R" 90
log_has "and logged the sync" "prov lines synced count=1 cursor=[0-9]+"
callee u3 "$DEV/ccache" "$(free_port)"
phone a1 "$tmp/a.cc" --dial "$NUM" --talk 1; CALLER_RC=$?
connected "a call from another line to the provisioned number reaches the device" a1 u3

# ---- 4. de-provisioning removes it, live ---------------------------------------------------
st=$(api POST "/devices/$MAC/deprovision" '{"reason":"test"}')
check "the device is de-provisioned" 200 "$st"
log_has "the controller dropped the number (prov line remove)" "prov line remove $NUM" 90
phone a2 "$tmp/a.cc" --dial "$NUM" --talk 1; CALLER_RC=$?
refused "a call to the removed number is refused (no restart)" a2
if kill -0 "$CMS_PID" 2>/dev/null; then ok "cablekey-cms still running (no restart)"
else not_ok "cablekey-cms still running (no restart)"; fi

# ---- 5. cablekey-prov down: reports retried, delivered when it is back ------------------------
stop_prov
n_ok=$(count "prov report mac=$MAC ip=127\.0\.0\.1 result=ok")
expect_success "the device logs in again while cablekey-prov is down" \
    timeout 90 "${MTA[@]}" boot --device "$DEV" --kdc "127.0.0.1:$PORT" --realm "$R" \
    --anchors "$PKI/sp-root.pem" --cms "127.0.0.1:$KP" --cms-service cms/cms.test
log_has "the report is retried while cablekey-prov is down" \
    "prov report mac=$MAC ip=127\.0\.0\.1 result=retry"
start_prov
ok_seen=0
for _ in $(seq 1 600); do
    [ "$(count "prov report mac=$MAC ip=127\.0\.0\.1 result=ok")" -gt "$n_ok" ] && { ok_seen=1; break; }
    sleep 0.1
done
if [ "$ok_seen" = 1 ]; then ok "delivered once cablekey-prov is back (result=ok)"
else not_ok "delivered once cablekey-prov is back" "$(grep 'prov ' "$tmp/cms.log" | tail -n 6)"; fi
st=$(api GET "/devices/$MAC")
check "prov saw the new report (history)" 200 "$st" \
    "sum(1 for h in d.get('history',[]) if 'report' in json.dumps(h))>=2"
if kill -0 "$CMS_PID" 2>/dev/null; then ok "cablekey-cms kept serving throughout"
else not_ok "cablekey-cms kept serving throughout" "$(tail -n 20 "$tmp/cms.stderr")"; fi
kill -TERM "$CMS_PID" 2>/dev/null; wait "$CMS_PID" 2>/dev/null
log_has "the controller's stop summary counts the reports" \
    "provisioning: reports queued [0-9]+ coalesced [0-9]+ ok [1-9][0-9]* retries [1-9]" 10
stop_prov
realm_stop_kdc
done_testing
