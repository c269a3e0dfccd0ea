#!/usr/bin/env bash
# cablekey-admind end to end: a realm on loopback served by cablekey-kdc, an HTTP/localhost
# service key, and curl --negotiate with tickets from MIT kinit driving the admin API: list, show,
# add, modify, rotate, delete; refusals without a ticket (401), outside the ACL (403), for bad
# bodies (400/413) while the daemon keeps serving; the privilege split seen in /proc; a
# non-loopback listen without TLS refused at start; the daemon layer (lib/daemon): a
# configuration that fails closed (file:line at --check and at start), SIGHUP (ACL and log
# applied, restart-only settings reported, an invalid file refused while serving goes on, a
# rotated log reopened), the systemd notify datagrams, the drop to the service user; SIGTERM.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || bail "this test needs root (the drop to the service user, front_user); CI runs as root"

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
# database takes a location, and --db/--stash override the file.
sed "s|database = .*|database = sqlite:$DB|" "$tmp/admind.conf" >"$tmp/uri.conf"
expect_output "--check: database = sqlite:PATH" "^database: sqlite:$DB" \
    "$CK_ADMIND" --check -c "$tmp/uri.conf"
expect_output "--check: --db sqlite:PATH and --stash override the file" "^database: sqlite:$DB" \
    "$CK_ADMIND" --check -c "$tmp/admind.conf" --db "sqlite:$DB" --stash "$STASH"
sed "s|database = .*|database = mysql://h/kdc|" "$tmp/admind.conf" >"$tmp/uri.conf"
expect_failure "--check: an unknown database scheme is named" 'unknown database scheme "mysql"' \
    "$CK_ADMIND" --check -c "$tmp/uri.conf"
expect_failure "--check: a PostgreSQL password in --db is refused" 'PGPASSFILE' \
    "$CK_ADMIND" --check -c "$tmp/admind.conf" --db "postgresql://kdc:s3cret@h/kdc"
write_admind_conf "$tmp/typo.conf" "listen = 127.0.0.1:$APORT" "lisen = 127.0.0.1:1"
expect_failure "--check: an unknown key is an error with file:line" \
    'typo\.conf:11: unknown key "lisen" in \[admind\] \(did you mean listen\?\)' \
    "$CK_ADMIND" --check -c "$tmp/typo.conf"
expect_failure "start: an unknown key is refused with file:line, nothing served" \
    'typo\.conf:11: unknown key "lisen"' "$CK_ADMIND" -c "$tmp/typo.conf"
if ck_tcp_probe "127.0.0.1:$APORT"; then not_ok "the refused start bound nothing"
else ok "the refused start bound nothing"; fi
{ cat "$tmp/typo.conf"; printf '[admin]\n    realm = %s\n' "$REALM"; } | sed '/lisen/d' >"$tmp/sect.conf"
expect_failure "--check: an unknown section is an error with file:line" \
    'sect\.conf:11: unknown section \[admin\] \(did you mean \[admind\]\?\)' \
    "$CK_ADMIND" --check -c "$tmp/sect.conf"
write_admind_conf "$tmp/console.conf" "listen = 127.0.0.1:$APORT"
sed -i "s|log = .*|log = CONSOLE|" "$tmp/console.conf"
expect_output "--check: log = CONSOLE (MIT syntax) is stderr, not a file named CONSOLE" \
    '^log: stderr \(level info\)' "$CK_ADMIND" --check -c "$tmp/console.conf"
sed -i "s|log = .*|log = DEVICE=/dev/tty1|" "$tmp/console.conf"
expect_failure "--check: log = DEVICE=... is refused with file:line" \
    'console\.conf:[0-9]+: log = "DEVICE=/dev/tty1": .*not supported' "$CK_ADMIND" --check -c "$tmp/console.conf"
expect_failure "--check: --log-level with an unknown level is refused" 'log-level loud' \
    "$CK_ADMIND" --check -c "$tmp/admind.conf" --log-level loud
expect_output "--check: the flags override the file (--log, --log-level, --pid-file)" \
    "^pid file: $tmp/flag\.pid" "$CK_ADMIND" --check -c "$tmp/admind.conf" --log stderr \
    --log-level debug --pid-file "$tmp/flag.pid"
grep -q '^log: stderr (level debug)' "$tmp/last.out" && ok "--check prints the flags' log and level" ||
    not_ok "--check prints the flags' log and level" "$(ck_last_output)"
cp "$tmp/admind.acl" "$tmp/bad.acl"; echo "mallory@TEST.REALM  iq" >>"$tmp/bad.acl"
write_admind_conf "$tmp/badacl.conf" "listen = 127.0.0.1:$APORT"
sed -i "s|acl_file = .*|acl_file = $tmp/bad.acl|" "$tmp/badacl.conf"
expect_failure "--check: a garbled ACL line is an error with file:line" 'bad\.acl:4: unknown permission' \
    "$CK_ADMIND" --check -c "$tmp/badacl.conf"
write_admind_conf "$tmp/nopid.conf" "listen = 127.0.0.1:$APORT"
sed -i "s|pid_file = .*|pid_file = $tmp/no/such/dir/admind.pid|" "$tmp/nopid.conf"
expect_failure "--check: a pid file directory that does not exist is an error" 'pid file .*: directory .*no/such/dir' \
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
    # The pid file is written before the sockets are bound (the daemon layer's order): ready
    # is when the (first) listen address accepts a connection.
    local _ addr
    addr=$(sed -n 's/^ *listen = //p' "${1:-$tmp/admind.conf}" | head -n 1)
    for _ in $(seq 1 100); do
        [ -s "$tmp/admind.pid" ] && ck_tcp_probe "$addr" && return 0
        kill -0 "$ADMIND_PID" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
start_notify_receiver "$tmp/notify.sock" "$tmp/notify.log"
notify_seen() { # notify_seen DESC PATTERN
    if wait_file_grep "$tmp/notify.log" "$2"; then ok "$1"
    else not_ok "$1" "notify datagrams: $(cat "$tmp/notify.log" 2>/dev/null)"; fi
}
log_seen() { # log_seen DESC PATTERN [FILE]
    if wait_file_grep "${3:-$tmp/admind.log}" "$2"; then ok "$1"
    else not_ok "$1" "$(tail -n 8 "${3:-$tmp/admind.log}" 2>&1)"; fi
}
NOTIFY_SOCKET="$tmp/notify.sock" start_admind || bail "cablekey-admind did not start" "$(cat "$tmp/admind.out" "$tmp/admind.log" 2>/dev/null)"
ok "cablekey-admind started (pid $(cat "$tmp/admind.pid"))"
notify_seen "sd_notify: READY=1 with a STATUS once serving" "^READY=1\|STATUS=serving realm TEST\.REALM$"

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

# --- SIGHUP: re-read the configuration, reopen the logs -----------------------------------
# A changed ACL is applied; the notifications frame the reload.
echo "mallory@TEST.REALM  l" >>"$tmp/admind.acl"
: >"$tmp/notify.log"
kill -HUP "$FRONT"
log_seen "SIGHUP: configuration reloaded, the ACL re-read (3 entries)" \
    'SIGHUP: configuration reloaded and logs reopened: ACL .*admind\.acl \(3 entries\)'
notify_seen "sd_notify: RELOADING=1 with MONOTONIC_USEC" "^RELOADING=1\|MONOTONIC_USEC=[0-9]+$"
notify_seen "sd_notify: READY=1 after the reload" "^READY=1\|STATUS=serving; reloaded"
kinit_pw mallory mallorypw >/dev/null 2>&1
expect_api "SIGHUP: the reloaded ACL lets mallory list" 200 '"principals"' GET /v1/principals
# A broken ACL: the whole reload is refused, the previous ACL stays.
echo "garbage line here x y" >>"$tmp/admind.acl"
: >"$tmp/notify.log"
kill -HUP "$FRONT"
log_seen "SIGHUP with a broken ACL: refused with file:line" \
    'SIGHUP: configuration refused, the running one is kept: .*admind\.acl:5: '
notify_seen "sd_notify: READY=1 with 'reload refused'" "^READY=1\|STATUS=reload refused"
expect_api "SIGHUP with a broken ACL: the previous ACL stays" 200 '"principals"' GET /v1/principals
sed -i '$d' "$tmp/admind.acl"
# An invalid configuration file: refused, serving goes on with the running one.
cp "$tmp/admind.conf" "$tmp/admind.conf.good"
echo "    acl_fil = $tmp/other.acl" >>"$tmp/admind.conf"
: >"$tmp/notify.log"
kill -HUP "$FRONT"
log_seen "SIGHUP with an unknown key: refused with file:line" \
    'SIGHUP: configuration refused, the running one is kept: .*admind\.conf:11: unknown key "acl_fil"'
notify_seen "sd_notify: READY=1 with 'reload refused' (invalid file)" "^READY=1\|STATUS=reload refused: .*acl_fil"
kinit_pw joe/admin joepw >/dev/null 2>&1
expect_api "still serving after the refused reload" 200 '"name":"TEST.REALM"' GET /v1/realm
# What needs a restart is reported, not half-applied; the log level is applied.
NPORT=$(free_port) || bail "free port"
write_admind_conf "$tmp/admind.conf" "listen = 127.0.0.1:$NPORT" "log_level = debug"
kill -HUP "$FRONT"
log_seen "SIGHUP: a listen change is reported as needing a restart" \
    "SIGHUP: listen changed \(127\.0\.0\.1:$APORT -> 127\.0\.0\.1:$NPORT\): needs a restart"
log_seen "SIGHUP: the log level change is applied" 'SIGHUP: log level info -> debug'
if ck_tcp_probe "127.0.0.1:$NPORT"; then not_ok "the new listen address is not half-applied"
else ok "the new listen address is not half-applied"; fi
expect_api "still serving on the old address" 200 '"name":"TEST.REALM"' GET /v1/realm
# Log rotation: the file is renamed, SIGHUP, both processes write to a new one.
cp "$tmp/admind.conf.good" "$tmp/admind.conf"
mv "$tmp/admind.log" "$tmp/admind.log.1"
kill -HUP "$FRONT"
log_seen "SIGHUP reopens the log after rotation (a new file)" 'configuration reloaded and logs reopened'
expect_api "a request after the rotation" 200 '"name":"TEST.REALM"' GET /v1/realm
log_seen "the request is logged in the new file" 'op=realm\.get target=- status=200'
if ls -l "/proc/$BACK/fd" 2>/dev/null | grep -q "admind\.log\.1"; then
    not_ok "the back process reopened its log too" "$(ls -l "/proc/$BACK/fd")"
elif ls -l "/proc/$BACK/fd" 2>/dev/null | grep -q "admind\.log$"; then
    ok "the back process reopened its log too"
else not_ok "the back process reopened its log too" "$(ls -l "/proc/$BACK/fd" 2>&1)"; fi
if ls -l "/proc/$FRONT/fd" 2>/dev/null | grep -q "admind\.log\.1"; then
    not_ok "the front holds the rotated file no more" "$(ls -l "/proc/$FRONT/fd")"
else ok "the front holds the rotated file no more"; fi

# --- stop ----------------------------------------------------------------------------------
: >"$tmp/notify.log"
kill -TERM "$FRONT"
rc=0; timeout 10 tail --pid="$FRONT" -f /dev/null || rc=$?
notify_seen "sd_notify: STOPPING=1 on SIGTERM" "^STOPPING=1$"
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
# Each process opens its log as its final user; with two users the log goes to stderr here
# (a shared file would need a group both can write, docs/cablekey-admind.md).
UPORT=$(free_port) || bail "pick a port for the front_user daemon"
write_admind_conf "$tmp/user.conf" "listen = 127.0.0.1:$UPORT" "front_user = nobody"
sed -i "s|log = .*|log = STDERR|" "$tmp/user.conf"
# The front (nobody) keeps its replay cache where it may write; the keytab stays root 0600:
# the front copied its keys into memory before switching.
mkdir -p "$tmp/rc-nobody" && chmod 1777 "$tmp/rc-nobody"
if KRB5RCACHEDIR="$tmp/rc-nobody" start_admind "$tmp/user.conf" &&
        wait_file_grep "$tmp/admind.out" 'serving realm'; then
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
        not_ok "front_user: Negotiate with the in-memory keys" "HTTP $CODE $(cat "$tmp/api.body" "$tmp/api.err"; tail -n 3 "$tmp/admind.out")"
    kill -TERM "$FRONT"; wait "$ADMIND_PID"; st=$?
    [ $st -eq 0 ] && ok "front_user: SIGTERM, exit 0" || not_ok "front_user: SIGTERM, exit 0" "status $st"
else
    not_ok "cablekey-admind started with front_user" "$(tail -n 5 "$tmp/admind.out")"
fi

# --- the back process dies: the front stops with status 1 -----------------------------------
if start_admind "$tmp/admind.conf"; then
    FRONT=$(cat "$tmp/admind.pid")
    BACK=$(awk '{print $1}' "/proc/$FRONT/task/$FRONT/children" 2>/dev/null)
    kill -KILL "$BACK"
    rc=0; timeout 10 tail --pid="$FRONT" -f /dev/null || rc=$?
    wait "$ADMIND_PID"; st=$?
    if [ $rc -eq 0 ] && [ $st -eq 1 ] && grep -q 'the back (store) process is gone; stopping' "$tmp/admind.log"; then
        ok "the back process killed: the front stops with status 1 and says why"
    else not_ok "the back process killed: the front stops with status 1" "rc=$rc status=$st $(tail -n 4 "$tmp/admind.log")"; fi
else
    not_ok "cablekey-admind restarted" "$(tail -n 5 "$tmp/admind.out" "$tmp/admind.log")"
fi

# --- the service user: both processes drop to it after binding; the back owns the store -----
SVC=nobody
SVC_UID=$(id -u "$SVC")
mkdir -p "$tmp/svc"
ck_settle
# A copy of the realm's database for the service user (the KDC keeps running on the original).
for f in "$DB" "$DB-wal"; do [ -e "$f" ] && cp "$f" "$tmp/svc/"; done
cp "$STASH" "$tmp/svc/kdc.db.stash"
chown -R "$SVC" "$tmp/svc"
chmod 700 "$tmp/svc"
SPORT=$(free_port) || bail "pick a port for the service-user daemon"
write_admind_conf "$tmp/svc.conf" "listen = 127.0.0.1:$SPORT" "user = $SVC"
sed -i -e "s|database = .*|database = $tmp/svc/kdc.db|" -e "s|stash = .*|stash = $tmp/svc/kdc.db.stash|" \
    -e "s|log = .*|log = FILE:$tmp/svc/admind.log|" "$tmp/svc.conf"
expect_output "--check with user: the database, stash and log are checked as the service user" \
    "^user: $SVC \(uid $SVC_UID" "$CK_ADMIND" --check -c "$tmp/svc.conf"
chown root "$tmp/svc/kdc.db.stash"
expect_failure "--check --user: a stash the service user cannot use is an error" \
    "database .*stash.* as user $SVC" "$CK_ADMIND" --check -c "$tmp/svc.conf"
expect_failure "start: the back refuses a stash the service user cannot use" \
    "store could not be opened: .*stash.*\(as user $SVC\)" "$CK_ADMIND" -c "$tmp/svc.conf" --log stderr
chown "$SVC" "$tmp/svc/kdc.db.stash"
if KRB5RCACHEDIR="$tmp/rc-nobody" start_admind "$tmp/svc.conf" &&
        wait_file_grep "$tmp/svc/admind.log" 'serving realm'; then
    FRONT=$(cat "$tmp/admind.pid")
    BACK=$(awk '{print $1}' "/proc/$FRONT/task/$FRONT/children" 2>/dev/null)
    buid=$(awk '/^Uid:/{print $2 "/" $3 "/" $4 "/" $5}' "/proc/$BACK/status" 2>/dev/null)
    [ "$buid" = "$SVC_UID/$SVC_UID/$SVC_UID/$SVC_UID" ] &&
        ok "user: the back process (holding the store) runs as $SVC ($buid)" ||
        not_ok "user: the back process runs as the service user" "back $BACK uids $buid"
    bad=0; uids=""
    for t in /proc/"$FRONT"/task/*/status; do
        u=$(awk '/^Uid:/{print $2 "/" $3 "/" $4 "/" $5}' "$t"); uids="$uids $u"
        [ "$u" = "$SVC_UID/$SVC_UID/$SVC_UID/$SVC_UID" ] || bad=1
    done
    [ $bad -eq 0 ] && ok "user: every front thread runs as $SVC too (no front_user)" ||
        not_ok "user: every front thread runs as the service user" "uids:$uids"
    if grep -q "^CapEff:[[:space:]]*0*$" "/proc/$FRONT/status" && grep -q "^CapEff:[[:space:]]*0*$" "/proc/$BACK/status"; then
        ok "user: no effective capability left in either process"
    else not_ok "user: no effective capability left" "$(grep CapEff "/proc/$FRONT/status" "/proc/$BACK/status")"; fi
    if ls -l "/proc/$BACK/fd" 2>/dev/null | grep -qF "$tmp/svc/kdc.db"; then ok "user: the back holds the service user's database"
    else not_ok "user: the back holds the service user's database" "$(ls -l "/proc/$BACK/fd" 2>&1)"; fi
    kinit_pw joe/admin joepw >/dev/null 2>&1
    CODE=$(timeout -k 5 "$CK_TIMEOUT" curl -sS --negotiate -u : \
        --resolve "localhost:$SPORT:127.0.0.1" -o "$tmp/api.body" -w '%{http_code}' \
        -X POST -H 'Content-Type: application/json' --data-binary '{"random_key":true}' \
        "http://localhost:$SPORT/v1/principals/svcuser-test" 2>"$tmp/api.err")
    [ "$CODE" = 201 ] && ok "user: a write through the API as the service user (201)" ||
        not_ok "user: a write through the API as the service user" "HTTP $CODE $(cat "$tmp/api.body" "$tmp/api.err"; tail -n 3 "$tmp/svc/admind.log")"
    # Rotation as the service user: the new file is created by it.
    mv "$tmp/svc/admind.log" "$tmp/svc/admind.log.1"
    kill -HUP "$FRONT"
    if wait_file_grep "$tmp/svc/admind.log" 'logs reopened' &&
            [ "$(stat -c %U "$tmp/svc/admind.log")" = "$SVC" ]; then
        ok "user: SIGHUP reopens the log as $SVC (a new file, owned by $SVC)"
    else not_ok "user: SIGHUP reopens the log as the service user" "$(ls -l "$tmp/svc" 2>&1)"; fi
    kill -TERM "$FRONT"; wait "$ADMIND_PID"; st=$?
    [ $st -eq 0 ] && ok "user: SIGTERM, exit 0" || not_ok "user: SIGTERM, exit 0" "status $st $(tail -n 3 "$tmp/svc/admind.log")"
else
    not_ok "cablekey-admind started with a service user" "$(tail -n 5 "$tmp/admind.out" "$tmp/svc/admind.log" 2>&1)"
fi
if grep -qE 'ERROR: AddressSanitizer|runtime error:' "$tmp/admind.out" "$tmp"/svc/admind.log* 2>/dev/null; then
    not_ok "no sanitizer report (front_user and service user runs)" "$(grep -hE 'Sanitizer|runtime error' "$tmp/admind.out" "$tmp"/svc/admind.log* | head)"
else
    ok "no sanitizer report (front_user and service user runs)"
fi

realm_stop_kdc
done_testing
