#!/usr/bin/env bash
# cablekey-admind end to end: a realm on loopback served by cablekey-kdc, an HTTP/localhost
# service key, and curl --negotiate with tickets from MIT kinit driving the admin API: list, show,
# add, modify, rotate, delete; refusals without a ticket (401), outside the ACL (403), for bad
# bodies (400/413) while the daemon keeps serving; the privilege split seen in /proc; a
# non-loopback listen without TLS refused at start; SIGTERM.
. "$(dirname "$0")/lib.sh"

require_tool "MIT client tools" kinit kdestroy
require_tool "curl with GSS-API (Negotiate)" curl
curl -V | grep -qE 'GSS-API|SPNEGO' || bail "curl lacks GSS-API/SPNEGO support"
CK_ADMIND="$CK_BUILD/cablekey-admind"
[ -x "$CK_ADMIND" ] || bail "cablekey-admind not built at $CK_ADMIND"

realm_init TEST.REALM
realm_addprinc joe/admin joepw
realm_addprinc eve evepw
realm_addprinc mallory mallorypw
realm_addprinc HTTP/localhost --random
realm_start_kdc
# curl asks for HTTP@localhost: map the host to the realm.
echo "    localhost = $REALM" >>"$KRB5_CONFIG"
realm_ktexport "$tmp/http.keytab" HTTP/localhost@TEST.REALM || bail "export the HTTP key"

APORT=$(free_port) || bail "pick a port for cablekey-admind"
cat >"$tmp/admind.acl" <<'EOF'
# cablekey-admind ACL (test)
joe/admin@TEST.REALM   *
eve@TEST.REALM         il
EOF
# write_admind_conf FILE [extra lines]
write_admind_conf() {
    local f=$1 l; shift
    {
        echo "[admind]"
        echo "    realm = $REALM"
        echo "    database = $DB"
        echo "    stash = $STASH"
        echo "    keytab = $tmp/http.keytab"
        echo "    acl_file = $tmp/admind.acl"
        echo "    log = FILE:$tmp/admind.log"
        echo "    pid_file = $tmp/admind.pid"
        echo "    max_body = 4096"
        for l in "$@"; do echo "    $l"; done
    } >"$f"
}
write_admind_conf "$tmp/admind.conf" "listen = 127.0.0.1:$APORT"

# --- configuration checks ------------------------------------------------------------------
expect_output "--check prints what a start uses and says OK" \
    "listen: 127.0.0.1:$APORT \(loopback, no TLS\).*" "$CK_ADMIND" --check -c "$tmp/admind.conf"
grep -q "configuration OK" "$tmp/last.out" && grep -q "acl: .*(2 entries)" "$tmp/last.out" &&
    ok "--check: configuration OK, ACL with 2 entries" ||
    not_ok "--check: configuration OK, ACL with 2 entries" "$(ck_last_output)"
write_admind_conf "$tmp/typo.conf" "listen = 127.0.0.1:$APORT" "lisen = 127.0.0.1:1"
expect_failure "--check: an unknown key is an error" 'unknown key "lisen"' \
    "$CK_ADMIND" --check -c "$tmp/typo.conf"
cp "$tmp/admind.acl" "$tmp/bad.acl"; echo "mallory@TEST.REALM  iq" >>"$tmp/bad.acl"
write_admind_conf "$tmp/badacl.conf" "listen = 127.0.0.1:$APORT"
sed -i "s|acl_file = .*|acl_file = $tmp/bad.acl|" "$tmp/badacl.conf"
expect_failure "--check: a garbled ACL line is an error with file:line" 'bad\.acl:4: unknown permission' \
    "$CK_ADMIND" --check -c "$tmp/badacl.conf"
write_admind_conf "$tmp/nopid.conf" "listen = 127.0.0.1:$APORT"
sed -i "s|pid_file = .*|pid_file = $tmp/no/such/dir/admind.pid|" "$tmp/nopid.conf"
expect_failure "--check: a pid file directory that does not exist is an error" 'pid file directory' \
    "$CK_ADMIND" --check -c "$tmp/nopid.conf"
write_admind_conf "$tmp/open.conf" "listen = 0.0.0.0:$APORT"
expect_failure "start refuses a non-loopback listen address without TLS" \
    'not a loopback address and TLS is not configured' "$CK_ADMIND" -c "$tmp/open.conf"
write_admind_conf "$tmp/open6.conf" "listen = [::]:$APORT"
expect_failure "start refuses [::] without TLS" 'not a loopback address' \
    "$CK_ADMIND" -c "$tmp/open6.conf"

# --- start -------------------------------------------------------------------------------
ADMIND_PID=""
start_admind() { # start_admind [CONF]
    rm -f "$tmp/admind.pid"
    "$CK_ADMIND" -c "${1:-$tmp/admind.conf}" >"$tmp/admind.out" 2>&1 </dev/null &
    ADMIND_PID=$!
    CK_BG_PIDS+=("$ADMIND_PID")
    local _
    for _ in $(seq 1 100); do
        [ -s "$tmp/admind.pid" ] && return 0
        kill -0 "$ADMIND_PID" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
start_admind || bail "cablekey-admind did not start" "$(cat "$tmp/admind.out" "$tmp/admind.log" 2>/dev/null)"
ok "cablekey-admind started (pid $(cat "$tmp/admind.pid"))"

# api METHOD PATH [BODY|@FILE]: one request with the current ccache; sets CODE; body in
# $tmp/api.body, headers in $tmp/api.hdr.
api() {
    local m=$1 p=$2 args=()
    [ $# -ge 3 ] && args=(-H 'Content-Type: application/json' --data-binary "$3")
    CODE=$(timeout -k 5 "$CK_TIMEOUT" curl -sS --negotiate -u : \
        --resolve "localhost:$APORT:127.0.0.1" -X "$m" -o "$tmp/api.body" -D "$tmp/api.hdr" \
        -w '%{http_code}' "${args[@]}" "http://localhost:$APORT$p" 2>"$tmp/api.err")
}
# expect_api DESC STATUS BODY_REGEX METHOD PATH [BODY]
expect_api() {
    local desc=$1 want=$2 re=$3; shift 3
    api "$@"
    if [ "$CODE" = "$want" ] && { [ -z "$re" ] && [ ! -s "$tmp/api.body" ] ||
                                  grep -Eq -- "$re" "$tmp/api.body"; }; then
        ok "$desc"
    else
        not_ok "$desc" "$* -> HTTP $CODE (want $want, body /$re/)
$(cat "$tmp/api.body" "$tmp/api.err" 2>/dev/null | head -c 1500)"
    fi
}

# --- authentication ----------------------------------------------------------------------
kdestroy >/dev/null 2>&1
expect_api "no ticket: 401" 401 '"code":"unauthorized"' GET /v1/realm
grep -qi '^WWW-Authenticate: Negotiate' "$tmp/api.hdr" &&
    ok "401 carries WWW-Authenticate: Negotiate" ||
    not_ok "401 carries WWW-Authenticate: Negotiate" "$(cat "$tmp/api.hdr")"
expect_api "no ticket: 401 on a write too, nothing changed" 401 'unauthorized' \
    POST /v1/principals/intruder '{"random_key":true}'

kinit_pw joe/admin joepw >/dev/null 2>&1 || bail "kinit joe/admin"
expect_api "GET /v1/realm with a ticket" 200 '"name":"TEST.REALM"' GET /v1/realm
grep -Eqi '^WWW-Authenticate: Negotiate [A-Za-z0-9+/]+=*' "$tmp/api.hdr" &&
    ok "200 carries the mutual-authentication token" ||
    not_ok "200 carries the mutual-authentication token" "$(cat "$tmp/api.hdr")"

# --- principals ----------------------------------------------------------------------------
expect_api "list principals" 200 '"joe/admin@TEST\.REALM"' GET /v1/principals
expect_api "add bob with a password" 201 '"name":"bob@TEST\.REALM".*"kvno":1' \
    POST /v1/principals/bob '{"password":"Bob-pw-1","max_life":7200}'
expect_success "kinit bob with the password set through the API" kinit_pw bob Bob-pw-1 -c "$tmp/bob.cc"
expect_output "the audit log names the ticket's principal as the actor of the remote add" \
    "joe/admin@TEST\.REALM[[:space:]]+principal\.add[[:space:]]+bob@TEST\.REALM" \
    "$CK_CLI" audit list --db "$DB" --principal bob
expect_api "show bob" 200 '"flags":\["requires_preauth"\].*"max_life":7200' GET /v1/principals/bob
if grep -Eq '"(key|contents|password)"' "$tmp/api.body"; then
    not_ok "a principal record carries no key material" "$(cat "$tmp/api.body")"
else
    ok "a principal record carries no key material"
fi
expect_api "list with a pattern" 200 '^\{"principals":\["bob@TEST\.REALM"\],"next":null\}' \
    GET '/v1/principals?pattern=b*'
expect_api "add bob again: 409" 409 '"code":"exists"' POST /v1/principals/bob '{"random_key":true}'
expect_api "modify bob: disallow all tickets" 200 '"disallow_all_tix"' \
    PATCH /v1/principals/bob '{"flags":{"disallow_all_tix":true}}'
ck_settle
expect_failure "kinit bob refused after the modify" '.' kinit_pw bob Bob-pw-1 -c "$tmp/bob.cc"
expect_api "modify bob: allow tickets again, expiry set" 200 '"expires":4102444800' \
    PATCH /v1/principals/bob '{"flags":{"disallow_all_tix":false},"expires":4102444800}'
expect_api "change bob's password (keys)" 200 '"kvno":2' \
    POST /v1/principals/bob/keys '{"password":"Bob-pw-2"}'
ck_settle
expect_success "kinit bob with the new password" kinit_pw bob Bob-pw-2 -c "$tmp/bob.cc"
expect_failure "kinit bob with the old password fails" '.' kinit_pw bob Bob-pw-1 -c "$tmp/bob.cc"
expect_api "add a service principal with random keys (name with %2F)" 201 \
    '"name":"host/svc\.test@TEST\.REALM"' POST /v1/principals/host%2Fsvc.test '{"random_key":true}'
expect_api "rotate the service principal's keys (random)" 200 '"kvno":2' \
    POST '/v1/principals/host%2Fsvc.test@TEST.REALM/keys' '{"random_key":true,"keep":2}'
expect_api "delete bob (204, no body)" 204 '' DELETE /v1/principals/bob
expect_api "the realm's krbtgt cannot be deleted: 409" 409 'ticket-granting service' \
    DELETE /v1/principals/krbtgt%2FTEST.REALM
expect_api "bob is gone" 404 '"code":"not_found"' GET /v1/principals/bob
expect_api "a principal of another realm: 400" 400 'not in realm' GET /v1/principals/x@OTHER.REALM
expect_api "devices list (empty)" 200 '^\{"devices":\[\],"next":null\}' GET /v1/devices

# --- bad requests: the daemon answers and keeps serving ------------------------------------
expect_api "malformed JSON: 400" 400 '"code":"bad_request".*malformed JSON' \
    POST /v1/principals/carol '{"password":'
expect_api "unknown member: 400" 400 'unknown member \\"pasword\\"' \
    POST /v1/principals/carol '{"pasword":"x"}'
expect_api "both password and random_key: 400" 400 'exactly one' \
    POST /v1/principals/carol '{"password":"x","random_key":true}'
expect_api "empty modify: 400" 400 'nothing to modify' PATCH /v1/principals/joe%2Fadmin '{}'
expect_api "unknown query parameter: 400" 400 'unknown query parameter' GET '/v1/principals?patern=x'
expect_api "query parameter without a value: 400" 400 'without a value' GET '/v1/principals?pattern'
expect_api "a body where none is taken: 400" 400 'takes no body' DELETE /v1/principals/joe%2Fadmin '{}'
expect_api "a bad percent escape in the path: 404" 404 'not_found' GET '/v1/principals/a%zz'
head -c 6000 /dev/zero | tr '\0' 'a' | sed 's/^/{"password":"/; s/$/"}/' >"$tmp/big.json"
expect_api "oversize body: 413" 413 '"code":"too_large"' POST /v1/principals/carol "@$tmp/big.json"
# The same without Content-Length: the body is counted as it streams in and refused at the end.
CODE=$(timeout -k 5 "$CK_TIMEOUT" curl -sS --negotiate -u : --resolve "localhost:$APORT:127.0.0.1" \
    -H 'Transfer-Encoding: chunked' -H 'Content-Type: application/json' --data-binary "@$tmp/big.json" \
    -o "$tmp/api.body" -w '%{http_code}' "http://localhost:$APORT/v1/principals/carol" 2>"$tmp/api.err")
[ "$CODE" = 413 ] && ok "oversize chunked body: 413" ||
    not_ok "oversize chunked body: 413" "HTTP $CODE $(cat "$tmp/api.body" "$tmp/api.err")"
CODE=$(timeout -k 5 "$CK_TIMEOUT" curl -sS -H 'Authorization: Negotiate YWJjZA==' \
    -o "$tmp/api.body" -w '%{http_code}' "http://127.0.0.1:$APORT/v1/realm" 2>"$tmp/api.err")
[ "$CODE" = 401 ] && ok "a garbage Negotiate token: 401" ||
    not_ok "a garbage Negotiate token: 401" "HTTP $CODE $(cat "$tmp/api.body")"
expect_api "unknown resource: 404" 404 'not_found' GET /v2/realm
expect_api "wrong method: 405" 405 'method_not_allowed' DELETE /v1/realm
expect_api "carol was never created" 404 'not_found' GET /v1/principals/carol
expect_api "still serving after the refusals" 200 '"name":"TEST.REALM"' GET /v1/realm

# --- authorisation -------------------------------------------------------------------------
kinit_pw eve evepw >/dev/null 2>&1 || bail "kinit eve"
expect_api "eve (il) may show a principal" 200 '"name":"joe/admin@TEST\.REALM"' \
    GET /v1/principals/joe%2Fadmin
expect_api "eve (il) may not add: 403" 403 '"code":"forbidden"' \
    POST /v1/principals/eve2 '{"random_key":true}'
expect_api "eve (il) may not delete: 403" 403 'forbidden' DELETE /v1/principals/joe%2Fadmin
kinit_pw mallory mallorypw >/dev/null 2>&1 || bail "kinit mallory"
expect_api "mallory (not in the ACL): 403" 403 'no matching entry' GET /v1/principals
kinit_pw joe/admin joepw >/dev/null 2>&1
expect_api "joe/admin still exists (eve's delete refused)" 200 'joe/admin' GET /v1/principals/joe%2Fadmin

# --- log -----------------------------------------------------------------------------------
assert_file_grep "log: one summary line per request (who, op, target, status)" \
    'principal=joe/admin@TEST\.REALM op=principal\.create target=bob@TEST\.REALM status=201' \
    "$tmp/admind.log"
assert_file_grep "log: the ACL refusal" \
    'principal=eve@TEST\.REALM op=principal\.create target=eve2@TEST\.REALM status=403' "$tmp/admind.log"
assert_file_grep "log: the unauthenticated request" 'principal=- op=GET target=/v1/realm status=401' \
    "$tmp/admind.log"
if grep -q 'Bob-pw' "$tmp/admind.log"; then
    not_ok "log: no password appears" "$(grep 'Bob-pw' "$tmp/admind.log" | head -3)"
else
    ok "log: no password appears"
fi

# --- the privilege split -------------------------------------------------------------------
FRONT=$(cat "$tmp/admind.pid")
BACK=$(cat "/proc/$FRONT/task/$FRONT/children" 2>/dev/null | awk '{print $1}')
fds_of() { ls -l "/proc/$1/fd" 2>/dev/null | sed -n 's/.* -> //p'; }
if [ -n "$BACK" ] && fds_of "$BACK" | grep -qF "$DB"; then
    ok "the back process ($BACK) holds the database"
else
    not_ok "the back process holds the database" "back=$BACK fds: $(fds_of "$BACK")"
fi
front_fds=$(fds_of "$FRONT")
if [ -n "$front_fds" ] && ! printf '%s\n' "$front_fds" | grep -qE "kdc\.db|stash"; then
    ok "the front process ($FRONT) has neither the database nor the stash open"
else
    not_ok "the front process has neither the database nor the stash open" "$front_fds"
fi

# --- SIGHUP reloads the ACL; a broken ACL keeps the old one --------------------------------
echo "mallory@TEST.REALM  l" >>"$tmp/admind.acl"
kill -HUP "$FRONT"; sleep 0.3
kinit_pw mallory mallorypw >/dev/null 2>&1
expect_api "SIGHUP: the reloaded ACL lets mallory list" 200 '"principals"' GET /v1/principals
echo "garbage line here x y" >>"$tmp/admind.acl"
kill -HUP "$FRONT"; sleep 0.3
expect_api "SIGHUP with a broken ACL: the previous ACL stays" 200 '"principals"' GET /v1/principals
assert_file_grep "log: the broken ACL is reported with file:line" 'admind\.acl:5: ' "$tmp/admind.log"
sed -i '$d' "$tmp/admind.acl"

# --- stop ----------------------------------------------------------------------------------
kill -TERM "$FRONT"
rc=0; timeout 10 tail --pid="$FRONT" -f /dev/null || rc=$?
wait "$ADMIND_PID"; st=$?
if [ $rc -eq 0 ] && [ $st -eq 0 ] && [ ! -e "$tmp/admind.pid" ] && ! kill -0 "$BACK" 2>/dev/null; then
    ok "SIGTERM: exit 0, pid file removed, back process gone"
else
    not_ok "SIGTERM: exit 0, pid file removed, back process gone" "wait rc=$rc status=$st
$(tail -n 5 "$tmp/admind.log")"
fi
if grep -qE 'ERROR: AddressSanitizer|runtime error:' "$tmp/admind.out" "$tmp/admind.log"; then
    not_ok "no sanitizer report" "$(grep -E 'Sanitizer|runtime error' "$tmp/admind.out" | head)"
else
    ok "no sanitizer report"
fi

# --- TLS: any address may be used with a certificate; curl verifies it -----------------------
require_tool "openssl" openssl
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/tls.key" -out "$tmp/tls.crt" -days 2 \
    -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" >/dev/null 2>&1 ||
    bail "openssl: make a TLS certificate"
TPORT=$(free_port) || bail "pick a port for the TLS daemon"
write_admind_conf "$tmp/tls-open.conf" "listen = 0.0.0.0:$TPORT" "tls_certificate = $tmp/tls.crt" \
    "tls_key = $tmp/tls.key"
expect_output "--check: a non-loopback address is accepted with TLS" 'listen: 0\.0\.0\.0:[0-9]+ \(TLS\)' \
    "$CK_ADMIND" --check -c "$tmp/tls-open.conf"
write_admind_conf "$tmp/tls-half.conf" "listen = 0.0.0.0:$TPORT" "tls_certificate = $tmp/tls.crt"
expect_failure "--check: a certificate without its key is an error" 'go together' \
    "$CK_ADMIND" --check -c "$tmp/tls-half.conf"
write_admind_conf "$tmp/tls.conf" "listen = 127.0.0.1:$TPORT" "tls_certificate = $tmp/tls.crt" \
    "tls_key = $tmp/tls.key"
kinit_pw joe/admin joepw >/dev/null 2>&1
if start_admind "$tmp/tls.conf"; then
    ok "cablekey-admind started with TLS"
    CODE=$(timeout -k 5 "$CK_TIMEOUT" curl -sS --negotiate -u : --cacert "$tmp/tls.crt" \
        --resolve "localhost:$TPORT:127.0.0.1" -o "$tmp/api.body" -w '%{http_code}' \
        "https://localhost:$TPORT/v1/realm" 2>"$tmp/api.err")
    [ "$CODE" = 200 ] && grep -q '"name":"TEST.REALM"' "$tmp/api.body" &&
        ok "HTTPS + Negotiate: GET /v1/realm, certificate verified by curl" ||
        not_ok "HTTPS + Negotiate: GET /v1/realm" "HTTP $CODE $(cat "$tmp/api.body" "$tmp/api.err")"
    CODE=$(timeout -k 5 "$CK_TIMEOUT" curl -sS --negotiate -u : -o /dev/null -w '%{http_code}' \
        "http://127.0.0.1:$TPORT/v1/realm" 2>"$tmp/api.err")
    [ "$CODE" != 200 ] && ok "plain HTTP to the TLS port gets no answer (HTTP $CODE)" ||
        not_ok "plain HTTP to the TLS port gets no answer"
    kill -TERM "$(cat "$tmp/admind.pid")"; wait "$ADMIND_PID"; st=$?
    [ $st -eq 0 ] && ok "TLS daemon: SIGTERM, exit 0" || not_ok "TLS daemon: SIGTERM, exit 0" "status $st"
else
    not_ok "cablekey-admind started with TLS" "$(tail -n 5 "$tmp/admind.log" "$tmp/admind.out")"
fi

# --- front_user: the front gives up the starting user; the back keeps it ---------------------
UPORT=$(free_port) || bail "pick a port for the front_user daemon"
write_admind_conf "$tmp/user.conf" "listen = 127.0.0.1:$UPORT" "front_user = nobody"
if [ "$(id -u)" = 0 ]; then
    # The front (nobody) keeps its replay cache where it may write; the keytab stays root 0600:
    # the front copied its keys into memory before switching.
    mkdir -p "$tmp/rc-nobody" && chmod 1777 "$tmp/rc-nobody"
    if KRB5RCACHEDIR="$tmp/rc-nobody" start_admind "$tmp/user.conf"; then
        FRONT=$(cat "$tmp/admind.pid")
        BACK=$(awk '{print $1}' "/proc/$FRONT/task/$FRONT/children" 2>/dev/null)
        fuid=$(awk '/^Uid:/{print $2 "/" $3 "/" $4}' "/proc/$FRONT/status")
        buid=$(awk '/^Uid:/{print $2}' "/proc/$BACK/status" 2>/dev/null)
        [ "$fuid" = "65534/65534/65534" ] && [ "$buid" = 0 ] &&
            ok "front_user: the front runs as nobody ($fuid), the back as root" ||
            not_ok "front_user: the front runs as nobody, the back as root" "front $fuid back $buid"
        CODE=$(timeout -k 5 "$CK_TIMEOUT" curl -sS --negotiate -u : \
            --resolve "localhost:$UPORT:127.0.0.1" -o "$tmp/api.body" -w '%{http_code}' \
            "http://localhost:$UPORT/v1/principals/joe%2Fadmin" 2>"$tmp/api.err")
        [ "$CODE" = 200 ] && ok "front_user: Negotiate with the in-memory keys, store reached (200)" ||
            not_ok "front_user: Negotiate with the in-memory keys" "HTTP $CODE $(cat "$tmp/api.body" "$tmp/api.err"; tail -n 3 "$tmp/admind.log")"
        kill -TERM "$FRONT"; wait "$ADMIND_PID"; st=$?
        [ $st -eq 0 ] && ok "front_user: SIGTERM, exit 0" || not_ok "front_user: SIGTERM, exit 0" "status $st"
    else
        not_ok "cablekey-admind started with front_user" "$(tail -n 5 "$tmp/admind.out" "$tmp/admind.log")"
    fi
else
    expect_failure "front_user without root is refused at start" 'front_user is set but the daemon is not root' \
        "$CK_ADMIND" -c "$tmp/user.conf"
fi

realm_stop_kdc
done_testing
