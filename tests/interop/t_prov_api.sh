#!/usr/bin/env bash
# cablekey-prov's HTTP API end to end: a realm on loopback served by cablekey-kdc, the
# provisioning CA from `cablekey pki init`, devices admitted as the KDC admits them (prov_admit),
# MIT kinit + curl --negotiate (SPNEGO) driving customers and the provisioning flow; the console
# login (an AS exchange with our KDC), its cookie and CSRF token; and every refusal: no
# authentication 401, outside the ACL 403, malformed JSON 400 naming the field, unknown MAC 404,
# number taken 409, wrong state 409, too large 413, idempotent retries answered without acting
# twice; --check and a non-loopback listen without TLS refused.
. "$(dirname "$0")/lib.sh"

require_tool "MIT client tools" kinit kdestroy
require_tool "curl with GSS-API (Negotiate)" curl
require_tool "openssl" openssl
curl -V | grep -qE 'GSS-API|SPNEGO' || bail "curl lacks GSS-API/SPNEGO support"
CK_PROV="$CK_BUILD/cablekey-prov"
[ -x "$CK_PROV" ] || bail "cablekey-prov not built at $CK_PROV"
[ -x "$CK_BUILD/prov_admit" ] || bail "prov_admit not built"

realm_init TEST.REALM
realm_addprinc csr1 csr1pw
realm_addprinc oss osspw
realm_addprinc cms/ctl cmspw
realm_addprinc mallory mallorypw
realm_addprinc HTTP/localhost --random
realm_start_kdc
echo "    localhost = $REALM" >>"$KRB5_CONFIG"
realm_ktexport "$tmp/http.keytab" HTTP/localhost@TEST.REALM || bail "export the HTTP key"

# The PKI: the provisioning CA and phone-ID key, and three manufacturer device certificates.
echo "pkipw" >"$tmp/pki.pw"; chmod 600 "$tmp/pki.pw"
timeout 120 "$CK_CLI" pki init --dir "$tmp/pki" --realm "$REALM" --org Test --key ec-p256 \
    --password-file "$tmp/pki.pw" >"$tmp/pki.log" 2>&1 || bail "pki init" "$(cat "$tmp/pki.log")"
for m in 00:11:22:33:44:01 00:11:22:33:44:02 00:11:22:33:44:03 00:11:22:33:44:04; do
    f="$tmp/dev-${m//:/}"
    timeout 60 "$CK_CLI" pki issue-device --dir "$tmp/pki" --mac "$m" --out "$f.p12" \
        --password-file "$tmp/pki.pw" --key ec-p256 --pem-out "$f" --pem-nopass \
        >>"$tmp/pki.log" 2>&1 || bail "issue device $m" "$(tail -5 "$tmp/pki.log")"
done
for m in 001122334401 001122334402 001122334403; do
    "$CK_BUILD/prov_admit" "$DB" "$STASH" "$tmp/dev-$m-cert.pem" >>"$tmp/admit.log" 2>&1 ||
        bail "admit $m" "$(cat "$tmp/admit.log")"
done

PPORT=$(free_port) || bail "pick a port for cablekey-prov"
cat >"$tmp/prov.acl" <<'EOF'
csr1@TEST.REALM      iap
oss@TEST.REALM       iapr
cms/ctl@TEST.REALM   ic
mallory@TEST.REALM   i
EOF
write_prov_conf() { # write_prov_conf FILE [extra lines]
    local f=$1 l; shift
    {
        echo "[prov]"
        echo "    database = $DB"
        echo "    stash = $STASH"
        echo "    keytab = $tmp/http.keytab"
        echo "    acl_file = $tmp/prov.acl"
        echo "    ca_cert = $tmp/pki/prov-ca.pem"
        echo "    ca_key = $tmp/pki/prov-ca-key.pem"
        echo "    ca_password_file = $tmp/pki.pw"
        echo "    phone_id_key = $tmp/pki/phone-id.key"
        echo "    fqdn_domain = mta.test.example"
        echo "    fqdn_listen = none"
        echo "    devchan_listen = none"
        echo "    pool = north 15550100000 15550100009"
        echo "    pool = south 15550200000 15550200001"
        echo "    log = FILE:$tmp/prov.log"
        echo "    max_body = 4096"
        for l in "$@"; do echo "    $l"; done
    } >"$f"
}
write_prov_conf "$tmp/prov.conf" "listen = 127.0.0.1:$PPORT"

expect_output "--check says configuration OK" "configuration OK" "$CK_PROV" --check -c "$tmp/prov.conf"
write_prov_conf "$tmp/open.conf" "listen = 0.0.0.0:$PPORT"
expect_failure "a non-loopback listen without TLS is refused at start" \
    'not a loopback address and TLS is not configured' "$CK_PROV" -c "$tmp/open.conf"
write_prov_conf "$tmp/typo.conf" "listen = 127.0.0.1:$PPORT" "lisen = 1"
expect_failure "an unknown key is refused with file:line" 'typo\.conf:[0-9]+: unknown key "lisen"' \
    "$CK_PROV" --check -c "$tmp/typo.conf"

PROV_PID=""
start_prov() {
    "$CK_PROV" -c "$tmp/prov.conf" >"$tmp/prov.out" 2>&1 </dev/null &
    PROV_PID=$!
    CK_BG_PIDS+=("$PROV_PID")
    for _ in $(seq 1 100); do
        ck_tcp_probe "127.0.0.1:$PPORT" && return 0
        kill -0 "$PROV_PID" 2>/dev/null || break
        sleep 0.1
    done
    bail "cablekey-prov did not start" "$(cat "$tmp/prov.out" "$tmp/prov.log" 2>/dev/null | tail -20)"
}
start_prov
ok "cablekey-prov serves on 127.0.0.1:$PPORT"

URL="http://localhost:$PPORT/api/v1"
# api METHOD PATH [BODY [extra curl args]] -> $tmp/body, prints the status
api() {
    local m=$1 p=$2 b=${3:-}; shift 3 2>/dev/null || shift $#
    local args=(-s -o "$tmp/body" -w '%{http_code}' -X "$m" --max-time 40)
    [ -n "$b" ] && args+=(-H 'Content-Type: application/json' --data-binary "$b")
    curl "${args[@]}" "$@" "$URL$p"
}
neg() { # neg METHOD PATH [BODY [curl args]]: api with Negotiate
    local m=$1 p=$2 b=${3:-}; shift 2; [ $# -gt 0 ] && shift
    api "$m" "$p" "$b" --negotiate -u : "$@"
}
jq_() { "$CK_PY" -c "import json,sys; d=json.load(open('$tmp/body')); print($1)" 2>/dev/null; }
check() { # check DESC WANT_STATUS GOT_STATUS [PY_EXPR_TRUE]
    local d=$1 w=$2 g=$3 e=${4:-True}
    if [ "$g" = "$w" ] && [ "$(jq_ "$e")" = True ]; then ok "$d"
    else not_ok "$d" "status $g (want $w): $(head -c 400 "$tmp/body")"; fi
}

# --- authentication -------------------------------------------------------------------------
st=$(api GET /devices)
check "no credentials: 401 with WWW-Authenticate" 401 "$st" "d['error']['code']=='unauthenticated'"
curl -s -D "$tmp/hdr" -o /dev/null "$URL/devices"
grep -qi '^WWW-Authenticate: Negotiate' "$tmp/hdr" && ok "401 offers Negotiate" ||
    not_ok "401 offers Negotiate" "$(cat "$tmp/hdr")"
st=$(api GET /devices "" -H 'Authorization: Negotiate AAAA')
check "a garbage Negotiate token: 401" 401 "$st"
kinit_pw csr1 csr1pw >/dev/null 2>&1 || bail "kinit csr1"
st=$(neg GET /devices)
check "SPNEGO (MIT kinit + curl --negotiate): 200, three unprovisioned devices" 200 "$st" \
    "len(d['devices'])==3 and all(x['state']=='unprovisioned' for x in d['devices'])"
st=$(neg GET "/devices?mac=00-11-22-33-44-01")
check "search by MAC (any form) returns it canonical" 200 "$st" \
    "d['devices'][0]['mac']=='00:11:22:33:44:01' and d['devices'][0]['kdc_state']=='unprovisioned'"
st=$(neg GET "/devices?mac=001122334401&ip=10.0.0.1")
check "two search keys at once: 400" 400 "$st" "d['error']['code']=='invalid_field'"
st=$(neg GET "/devices?colour=red")
check "an unknown query parameter: 400" 400 "$st"

# --- customers ------------------------------------------------------------------------------
st=$(neg POST /customers '{"name":"Ann Lee","address":"1 Main St","segment":"north","email":"ann@example.net"}')
check "add a customer: 201" 201 "$st" "d['id']>0 and d['type']=='customer'"
CUST=$(jq_ "d['id']")
st=$(neg POST /customers '{"name":"Fix-It Ltd","address":"Depot 4","segment":"north","type":"repair"}')
check "add a repair facility: 201" 201 "$st" "d['type']=='repair'"
FAC=$(jq_ "d['id']")
st=$(neg POST /customers '{"name":"Bob","address":"2 Main St","segment":"south"}')
BOB=$(jq_ "d['id']")
st=$(neg POST /customers '{"name":"Ann","segment":"north"}')
check "a customer without address: 400 naming address" 400 "$st" "d['error']['field']=='address'"
st=$(neg POST /customers '{"name":"Ann","address":"x","segment":"north"')
check "malformed JSON: 400 invalid_json" 400 "$st" "d['error']['code']=='invalid_json'"
st=$(neg POST /customers '{"name":"Ann","address":"x","segment":"north","vip":true}')
check "an unknown member: 400 naming it" 400 "$st" "d['error']['field']=='vip'"
st=$(neg POST /customers "{\"name\":\"$(head -c 5000 /dev/zero | tr '\0' a)\"}")
check "a body over max_body: 413" 413 "$st" "d['error']['code']=='too_large'"
st=$(neg PATCH "/customers/$CUST" '{"email":"ann.lee@example.net"}')
check "modify a customer" 200 "$st" "d['email']=='ann.lee@example.net'"
st=$(neg GET "/customers/999999")
check "unknown customer: 404" 404 "$st" "d['error']['code']=='not_found'"
st=$(neg GET "/customers?q=ann")
check "search customers" 200 "$st" "len(d['customers'])==1"

# --- provisioning ---------------------------------------------------------------------------
st=$(neg POST /devices/00:11:22:33:44:99/provision "{\"customer\":$CUST}")
check "provision an unknown MAC: 404" 404 "$st" "d['error']['code']=='not_found'"
st=$(neg POST /devices/001122334401/provision '{"customer":"x"}')
check "provision with a bad customer: 400 naming customer" 400 "$st" "d['error']['field']=='customer'"
st=$(neg POST /devices/001122334401/provision "{\"customer\":$CUST}" -H 'Idempotency-Key: prov-1')
check "provision: 200, provisioned with a number and a certificate" 200 "$st" \
    "d['state']=='provisioned' and d['numbers']==['15550100000'] and d['cert'] is not None and d['kdc_state']=='active' and d['fqdn']=='mta-001122334401.mta.test.example'"
cp "$tmp/body" "$tmp/prov1.json"
st=$(neg POST /devices/001122334401/provision "{\"customer\":$CUST}" -H 'Idempotency-Key: prov-1')
check "the same request again with its Idempotency-Key: 200 replayed, same certificate" 200 "$st" \
    "d.get('replayed') is True and d['cert']['sha256']==json.load(open('$tmp/prov1.json'))['cert']['sha256']"
st=$(neg POST /devices/001122334401/provision "{\"customer\":$BOB}" -H 'Idempotency-Key: prov-1')
check "the same key with another request: 409 conflict" 409 "$st" "d['error']['code']=='conflict'"
st=$(neg POST /devices/001122334401/provision "{\"customer\":$CUST}")
check "provision a provisioned device: 409 wrong_state naming the state" 409 "$st" \
    "d['error']['code']=='wrong_state' and 'provisioned' in d['error']['message']"
st=$(neg POST /devices/001122334402/provision "{\"customer\":$CUST,\"number\":\"15550100000\"}")
check "provision with a number taken: 409 conflict" 409 "$st" "d['error']['code']=='conflict'"
st=$(neg GET /devices/001122334402)
check "... and nothing changed on that device" 200 "$st" "d['state']=='unprovisioned' and d['numbers']==[]"
st=$(neg POST /devices/001122334402/provision "{\"customer\":$CUST,\"number\":\"15550100005\"}")
check "provision with a chosen free number" 200 "$st" "d['numbers']==['15550100005']"
# The certificate: the manufacturer's key, CN = MAC, issued by the provisioning CA.
st=$(neg GET /devices/001122334401)
check "device record: history (newest first) and certs" 200 "$st" \
    "d['history'][0]['action']=='provision' and d['history'][0]['actor']=='csr1@TEST.REALM' and len(d['certs'])==1"

# --- other actions ----------------------------------------------------------------------------
st=$(neg POST /devices/001122334401/change-service '{"services":{"call_waiting":true},"reissue":false}')
check "change-service" 200 "$st" "d['state']=='provisioned'"
st=$(neg POST /devices/001122334401/move '{"segment":"south"}')
check "move to another segment: a new number from its pool" 200 "$st" \
    "d['segment']=='south' and d['numbers']==['15550200000']"
st=$(neg POST /devices/001122334401/repair "{\"facility\":$FAC}")
check "repair: short certificate, facility account" 200 "$st" "d['state']=='repair' and d['customer']==$FAC"
st=$(neg POST /devices/001122334401/return '{}')
check "return from repair: the owner's account back" 200 "$st" "d['state']=='provisioned' and d['customer']==$CUST"
# provision, move, repair, return: four certificates, the newest first, only it current.
st=$(neg GET /devices/001122334401)
check "device record: all four certificates, newest first, only the newest current" 200 "$st" \
    "len(d['certs'])==4 and [c['id'] for c in d['certs']]==sorted([c['id'] for c in d['certs']],reverse=True) and d['certs'][0]['id']==d['cert']['id'] and [c['current'] for c in d['certs']]==[True,False,False,False] and all(c['superseded'] for c in d['certs'][1:])"
st=$(neg POST /devices/001122334403/loaner "{\"customer\":$CUST,\"for\":\"00:11:22:33:44:01\"}")
check "loaner" 200 "$st" "d['state']=='provisioned' and d['loaner_for']=='00:11:22:33:44:01'"
st=$(neg POST /devices/001122334402/revoke '{"reason":"stolen"}')
check "revoke without 'r' in the ACL: 403" 403 "$st" "d['error']['code']=='forbidden'"
st=$(neg POST /devices/001122334402/deprovision '{"reason":"moved out"}')
check "deprovision" 200 "$st" "d['state']=='unprovisioned' and d['kdc_state']=='unprovisioned' and d['numbers']==[]"
st=$(neg POST /devices/001122334402/deprovision '{}')
check "deprovision an unprovisioned device: 409 wrong_state" 409 "$st" "d['error']['code']=='wrong_state'"
st=$(neg POST /devices/report '{"mac":"001122334402","ip":"192.0.2.9"}')
check "report without 'c': 403" 403 "$st"
st=$(neg GET /pools)
# north: the loaner took the number the move freed (the lowest free); south: the moved device.
check "pools: free/assigned per segment" 200 "$st" \
    "{p['segment']:p['assigned'] for p in d['pools']}=={'north':1,'south':1}"
kdestroy >/dev/null 2>&1

kinit_pw oss osspw >/dev/null 2>&1 || bail "kinit oss"
st=$(neg POST /devices/001122334402/revoke '{"reason":"stolen"}')
check "revoke (oss has 'r'): the KDC's row revoked" 200 "$st" "d['state']=='revoked' and d['kdc_state']=='revoked'"
st=$(neg POST /devices/001122334402/reinstate '{}')
check "reinstate" 200 "$st" "d['state']=='unprovisioned'"
kdestroy >/dev/null 2>&1

kinit_pw cms/ctl cmspw >/dev/null 2>&1 || bail "kinit cms/ctl"
st=$(neg POST /devices/report '{"mac":"00:11:22:33:44:02","ip":"192.0.2.9","controller":"cms/ctl@TEST.REALM"}')
check "a controller reports an unprovisioned device" 200 "$st" "d['unprov_ip']=='192.0.2.9'"
st=$(neg POST /devices/report '{"mac":"00:11:22:33:44:77","ip":"192.0.2.9"}')
check "report of an unknown MAC: 404" 404 "$st"
st=$(neg GET "/lines?after=0")
check "lines: the full snapshot" 200 "$st" \
    "d['full'] is True and sorted(l['number'] for l in d['lines'])==['15550100000','15550200000'] and d['cursor']>0"
CUR=$(jq_ "d['cursor']")
t0=$(date +%s)
st=$(neg GET "/lines?after=$CUR&wait=2")
t1=$(date +%s)
if [ "$st" = 200 ] && [ $((t1 - t0)) -ge 2 ] && [ "$(jq_ "d['full'] is False and d['lines']==[]")" = True ]; then
    ok "lines long poll at the cursor waits and answers no change"
else not_ok "lines long poll at the cursor waits and answers no change" "$st $((t1 - t0))s $(cat "$tmp/body")"; fi
st=$(neg GET /devices)
check "a controller may not search devices without 'i'... it has 'i'" 200 "$st"
kdestroy >/dev/null 2>&1

kinit_pw mallory mallorypw >/dev/null 2>&1 || bail "kinit mallory"
st=$(neg POST /devices/001122334402/provision "{\"customer\":$CUST}")
check "provision with only 'i': 403" 403 "$st" "'needs' in d['error']['message']"
kdestroy >/dev/null 2>&1

# --- console session --------------------------------------------------------------------------
st=$(api POST /session '{"principal":"csr1","password":"wrong"}')
check "console login with a wrong password: 401, no detail" 401 "$st" \
    "d['error']['message']=='wrong principal or password'"
st=$(api POST /session '{"principal":"nobody","password":"x"}')
check "console login with an unknown principal: the same 401" 401 "$st" \
    "d['error']['message']=='wrong principal or password'"
st=$(api POST /session '{"principal":"csr1"}')
check "console login without password: 400 naming it" 400 "$st" "d['error']['field']=='password'"
st=$(api POST /session '{"principal":"csr1","password":"csr1pw"}' -c "$tmp/jar" -D "$tmp/hdr")
check "console login (AS exchange with the KDC): 200 with a CSRF token" 200 "$st" \
    "d['principal']=='csr1@TEST.REALM' and len(d['csrf'])==64"
CSRF=$(jq_ "d['csrf']")
grep -qi '^Set-Cookie: ck_session=[0-9a-f]\{64\}; Path=/; HttpOnly; SameSite=Strict' "$tmp/hdr" &&
    ok "the session cookie is HttpOnly and SameSite=Strict" ||
    not_ok "the session cookie is HttpOnly and SameSite=Strict" "$(grep -i cookie "$tmp/hdr")"
grep -q "$CSRF\|csr1pw" "$tmp/prov.log" && not_ok "the log holds no password or token" ||
    ok "the log holds no password or token"
st=$(api GET /session "" -b "$tmp/jar")
check "GET /session: who am I" 200 "$st" "d['principal']=='csr1@TEST.REALM'"
st=$(api GET /devices "" -b "$tmp/jar")
check "the cookie authenticates a GET" 200 "$st"
st=$(api POST /customers '{"name":"C","address":"x","segment":"north"}' -b "$tmp/jar")
check "a POST with the cookie but no X-CK-CSRF: 403" 403 "$st" "d['error']['field']=='X-CK-CSRF'"
st=$(api POST /customers '{"name":"C","address":"x","segment":"north"}' -b "$tmp/jar" \
    -H "X-CK-CSRF: $(printf '%064d' 0)")
check "a POST with a wrong X-CK-CSRF: 403" 403 "$st"
st=$(api POST /customers '{"name":"C","address":"x","segment":"north"}' -b "$tmp/jar" \
    -H "X-CK-CSRF: $CSRF" -H "Origin: http://evil.example")
check "a cross-origin POST: 403" 403 "$st"
st=$(api POST /customers '{"name":"C","address":"x","segment":"north"}' -b "$tmp/jar" \
    -H "X-CK-CSRF: $CSRF")
check "a POST with the cookie and its CSRF token: 201" 201 "$st"
st=$(api GET /devices "" -b "ck_session=$(printf '%064d' 1)")
check "a forged session id: 401" 401 "$st"
st=$(api DELETE /session "" -b "$tmp/jar" -H "X-CK-CSRF: $CSRF")
check "logout" 200 "$st"
st=$(api GET /devices "" -b "$tmp/jar")
check "the session is gone after logout: 401" 401 "$st"

# --- the console's static files (daemons/prov/console.c): no data, no authentication ---------
code=$(curl -s -D "$tmp/hdr" -o "$tmp/index" -w '%{http_code}' "http://localhost:$PPORT/")
if [ "$code" = 200 ] && grep -qi "^Content-Security-Policy: default-src 'self'" "$tmp/hdr" &&
   grep -qi '<html' "$tmp/index"; then ok "GET / serves the console with CSP default-src 'self'"
else not_ok "GET / serves the console with CSP default-src 'self'" "$code $(cat "$tmp/hdr")"; fi
code=$(curl -s -o /dev/null -w '%{http_code}' "http://localhost:$PPORT/../etc/passwd")
[ "$code" = 404 ] && ok "any other path: 404" || not_ok "any other path: 404" "$code"

# --- the daemon survived it all ---------------------------------------------------------------
kill -0 "$PROV_PID" 2>/dev/null && ok "cablekey-prov still serving" || not_ok "cablekey-prov still serving"
n=$(grep -c ' request client=' "$tmp/prov.log" || true)
[ "$n" -gt 40 ] && ok "one summary log line per request ($n)" || not_ok "one summary log line per request" "$n"
kill -TERM "$PROV_PID"
wait "$PROV_PID"; rc=$?
[ "$rc" = 0 ] && ok "SIGTERM: exit 0" || not_ok "SIGTERM: exit 0" "rc=$rc $(tail -5 "$tmp/prov.log")"
if grep -Eq "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error|SUMMARY: " "$tmp/prov.out"; then
    not_ok "no sanitizer report" "$(grep -A5 -i sanitizer "$tmp/prov.out" | head -20)"
else ok "no sanitizer report"; fi
# --- several request workers (`workers`): concurrent provisionings, each its own number ------
# Twelve devices provisioned at once through three workers: every call succeeds on the first
# try (a worker skips the numbers the others have picked: no certificate is signed for a number
# another action then takes), the numbers are twelve different ones from the pool's start, and
# the write-ahead log is checkpointed by its own thread (the store stays consistent: the KDC's
# rows agree).
BULK=()
for i in $(seq 10 21); do
    m=$(printf '00:11:22:33:55:%02d' "$i"); f="$tmp/dev-${m//:/}"
    timeout 60 "$CK_CLI" pki issue-device --dir "$tmp/pki" --mac "$m" --out "$f.p12" \
        --password-file "$tmp/pki.pw" --key ec-p256 --pem-out "$f" --pem-nopass \
        >>"$tmp/pki.log" 2>&1 || bail "issue device $m" "$(tail -5 "$tmp/pki.log")"
    "$CK_BUILD/prov_admit" "$DB" "$STASH" "$f-cert.pem" >>"$tmp/admit.log" 2>&1 ||
        bail "admit $m" "$(tail -5 "$tmp/admit.log")"
    BULK+=("${m//:/}")
done
write_prov_conf "$tmp/prov.conf" "listen = 127.0.0.1:$PPORT" "workers = 3" \
    "pool = bulk 15550300000 15550300099"
log_from=$(($(wc -l <"$tmp/prov.log") + 1))
start_prov
kinit_pw oss osspw >/dev/null 2>&1 || bail "kinit oss"
for m in "${BULK[@]}"; do
    curl -s -o "$tmp/bulk-$m" -w '%{http_code}' -X POST --max-time 40 --negotiate -u : \
        -H 'Content-Type: application/json' -H "Idempotency-Key: bulk-$m" \
        --data-binary "{\"customer\":$CUST,\"segment\":\"bulk\"}" \
        "$URL/devices/$m/provision" >"$tmp/bulk-$m.code" &
done
wait_bulk=0
for m in "${BULK[@]}"; do
    for _ in $(seq 1 400); do [ -s "$tmp/bulk-$m.code" ] && break; sleep 0.1; done
    [ "$(cat "$tmp/bulk-$m.code" 2>/dev/null)" = 200 ] && wait_bulk=$((wait_bulk + 1))
done
[ "$wait_bulk" = 12 ] && ok "12 concurrent provisionings through 3 workers: all 200" ||
    not_ok "12 concurrent provisionings through 3 workers: all 200" \
        "$wait_bulk of 12; $(cat "$tmp"/bulk-*.code | tr '\n' ' '); $(tail -5 "$tmp/prov.log")"
nums=$("$CK_PY" - "$tmp" "${BULK[@]}" <<'PY'
import json, sys
out = []
for m in sys.argv[2:]:
    try:
        out += json.load(open(f"{sys.argv[1]}/bulk-{m}"))["numbers"]
    except Exception:
        out.append("?")
print(" ".join(sorted(out)))
PY
)
want=$(seq -f '155503000%02g' 0 11 | tr '\n' ' ' | sed 's/ $//')
[ "$nums" = "$want" ] && ok "the twelve got twelve different numbers, the pool's first twelve" ||
    not_ok "the twelve got twelve different numbers, the pool's first twelve" "got: $nums"
tail -n +"$log_from" "$tmp/prov.log" >"$tmp/prov-bulk.log"
n=$(grep -c 'conflict\|picked by a worker' "$tmp/prov-bulk.log" || true)
[ "$n" = 0 ] && ok "no number conflict and no retry in the log" ||
    not_ok "no number conflict and no retry in the log" "$(grep 'conflict\|picked' "$tmp/prov-bulk.log" | head -3)"
grep -q '3 request workers' "$tmp/prov-bulk.log" && ok "the back says it runs 3 request workers" ||
    not_ok "the back says it runs 3 request workers" "$(grep -i worker "$tmp/prov.log" | head -3)"
st=$(neg GET "/devices?state=provisioned")
check "the store agrees: the twelve are provisioned, their KDC rows active" 200 "$st" \
    "sum(1 for x in d['devices'] if x['mac'].startswith('00:11:22:33:55:') and x['kdc_state']=='active')==12"
kdestroy >/dev/null 2>&1
kill -TERM "$PROV_PID"
wait "$PROV_PID"; rc=$?
[ "$rc" = 0 ] && ok "SIGTERM with 3 workers: exit 0" || not_ok "SIGTERM with 3 workers: exit 0" "rc=$rc $(tail -5 "$tmp/prov.log")"
if grep -Eq "ERROR: (AddressSanitizer|LeakSanitizer|ThreadSanitizer)|runtime error|SUMMARY: " "$tmp/prov.out"; then
    not_ok "no sanitizer report (3 workers)" "$(grep -A5 -i sanitizer "$tmp/prov.out" | head -20)"
else ok "no sanitizer report (3 workers)"; fi
# --- TLS from a PKCS#12 identity (`cablekey pki issue-server`) ---------------------------------
timeout 60 "$CK_CLI" pki issue-server --dir "$tmp/pki" --dns localhost --out "$tmp/https.p12" \
    --password-file "$tmp/pki.pw" --key ec-p256 >>"$tmp/pki.log" 2>&1 || bail "issue the HTTPS identity"
write_prov_conf "$tmp/prov.conf" "listen = 127.0.0.1:$PPORT" "tls_identity = $tmp/https.p12" \
    "tls_password_file = $tmp/pki.pw"
start_prov
kinit_pw csr1 csr1pw >/dev/null 2>&1 || bail "kinit csr1"
code=$(curl -s -o "$tmp/body" -w '%{http_code}' --max-time 20 --cacert "$tmp/pki/sp-root.pem" \
    --negotiate -u : "https://localhost:$PPORT/api/v1/pools")
[ "$code" = 200 ] && ok "TLS (PKCS#12 identity): SPNEGO over HTTPS" ||
    not_ok "TLS (PKCS#12 identity): SPNEGO over HTTPS" "$code $(cat "$tmp/body")"
curl -s -o /dev/null -D "$tmp/hdr" --max-time 20 --cacert "$tmp/pki/sp-root.pem" \
    -H 'Content-Type: application/json' -d '{"principal":"csr1","password":"csr1pw"}' \
    "https://localhost:$PPORT/api/v1/session"
grep -qi '^Set-Cookie: ck_session=.*; Secure' "$tmp/hdr" && ok "under TLS the session cookie is Secure" ||
    not_ok "under TLS the session cookie is Secure" "$(grep -i cookie "$tmp/hdr")"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://localhost:$PPORT/api/v1/pools")
[ "$code" = 000 ] && ok "plain HTTP on the TLS port gets no answer" || not_ok "plain HTTP on the TLS port" "$code"
kdestroy >/dev/null 2>&1
kill -TERM "$PROV_PID"; wait "$PROV_PID"
realm_stop_kdc
done_testing
