#!/usr/bin/env bash
# The CSR web console end to end in a real browser: our KDC with provisioning on, a device that
# logs in with its manufacturer certificate (stock MIT kinit, PKINIT) and is admitted
# unprovisioned, the call controller's report of it to cablekey-prov (curl --negotiate with the
# controller's keytab), then tests/browser/console_test.py drives headless chromium through
# chromium-driver: sign in (a wrong password first), find the device by its unprovisioned IP,
# create the customer, provision (a double click acting once), move, repair, return,
# de-provision, an action in the wrong state. After each step a screenshot goes to
# $LOG_DIR/artifacts (tests/run.sh: .test-tmp/artifacts; run alone: a directory printed below),
# and the KDC's device table (cablekey device show --db) and the API through the CLI (cablekey
# device search --server, with a Kerberos ticket) must agree with the page. The console's
# static answers carry the CSP, and a second run of the CLI verbs checks their output and errors.
# A missing chromium, chromium-driver or python3-selenium is a failure, never a skip.
. "$(dirname "$0")/lib.sh"

require_tool "MIT client tools" kinit kdestroy
require_tool "curl with GSS-API (Negotiate)" curl
curl -V | grep -qE 'GSS-API|SPNEGO' || bail "curl lacks GSS-API/SPNEGO support"
require_tool "chromium (headless browser)" /usr/bin/chromium
require_tool "chromium-driver" /usr/bin/chromedriver
"$CK_PY" -c 'import selenium' 2>/dev/null ||
    bail "python3-selenium not installed (run scripts/install-deps.sh)"
compgen -G "/usr/lib/*/krb5/plugins/preauth/pkinit.so" >/dev/null ||
    bail "MIT PKINIT plugin missing (krb5-pkinit; run scripts/install-deps.sh)"
is_mit && bail "t_prov_console.sh needs cablekey-kdc (provisioning)"
CK_PROV="$CK_BUILD/cablekey-prov"
[ -x "$CK_PROV" ] || bail "cablekey-prov not built at $CK_PROV"
TOP="$(cd "$CK_INTEROP_DIR/../.." && pwd)"

if [ -n "${LOG_DIR:-}" ]; then
    ART="$LOG_DIR/artifacts"
else
    ART="$(mktemp -d /tmp/ck-console-artifacts.XXXXXX)"
fi
mkdir -p "$ART" || bail "create the artifacts directory $ART"
echo "# screenshots: $ART"

PW='Prov-Console-Pki-Pw-1'
CAPW='Prov-Console-Ca-Pw-2'
printf '%s\n' "$PW" >"$tmp/pw"; chmod 600 "$tmp/pw"
printf '%s\n' "$CAPW" >"$tmp/capw"; chmod 600 "$tmp/capw"
printf '%s\n' 'Csr1-Console-Pw-3' >"$tmp/csr1.pw"; chmod 600 "$tmp/csr1.pw"
PKI="$tmp/pki"
MAC=00:1a:2b:3c:4d:5e
MACHEX=001a2b3c4d5e
UNPROV_IP=10.77.0.42

pki() {
    timeout 60 "$CK_CLI" pki "$@" --password-file "$tmp/pw" </dev/null >>"$tmp/pki.log" 2>&1 ||
        bail "cablekey pki $1" "$(tail -n 5 "$tmp/pki.log")"
}

realm_init PROV.TEST
pki init --dir "$PKI" --realm "$REALM" --org "Cable Console Co" --ca-password-file "$tmp/capw"
pki issue-device --dir "$PKI" --mac "$MAC" --out "$tmp/dev.p12" --ca-password-file "$tmp/capw"
for f in prov-ca.pem prov-ca-key.pem phone-id.key; do
    [ -f "$PKI/$f" ] || bail "cablekey pki init wrote no $f"
done
# The device's kinit: the KDC's anchor, and its own chain (the manufacturer CA and root).
write_krb5_conf "$KRB5_CONFIG" "127.0.0.1:$PORT" "pkinit_anchors = FILE:$PKI/sp-root.pem" \
    "pkinit_anchors = FILE:$PKI/mfg-root.pem" \
    "pkinit_pool = FILE:$PKI/sp-ca.pem" "pkinit_pool = FILE:$PKI/mfg-ca.pem"

realm_addprinc csr1 "$(cat "$tmp/csr1.pw")"
realm_addprinc ops opspw
realm_addprinc viewer viewerpw
realm_addprinc HTTP/localhost --random
realm_addprinc prov/localhost --random
realm_addprinc mtafqdn/localhost --random
realm_addprinc cms/localhost --random
echo "    localhost = $REALM" >>"$KRB5_CONFIG"
realm_ktexport "$tmp/prov.keytab" HTTP/localhost@$REALM prov/localhost@$REALM \
    mtafqdn/localhost@$REALM || bail "export the prov keys"
realm_ktexport "$tmp/cms.keytab" cms/localhost@$REALM || bail "export the controller key"

# The KDC with provisioning on: the PKINIT keys are the realm's (lib.sh's write_kdc_conf writes
# only [kdcdefaults] extras, so this test writes its own file).
write_kdc_conf() {
    local f=$1 listen
    listen=$(IFS=,; echo "${CK_LISTEN[*]}")
    cat >"$f" <<EOF
[kdcdefaults]
    kdc_listen = $listen
    pkinit_provisioning = true
    pkinit_unprovisioned_calls = 611 911
[realms]
    $REALM = {
        database_name = $DB
        key_stash_file = $STASH
        pkinit_identity = $PKI/kdc.p12
        pkinit_password_file = $tmp/pw
        pkinit_anchors = $PKI/sp-root.pem
        pkinit_packetcable_anchors = $PKI/mfg-root.pem
        pkinit_pool = $PKI/sp-ca.pem $PKI/mfg-ca.pem
        pkinit_operator_anchors = $PKI/prov-ca.pem
    }
EOF
}
realm_start_kdc_conf

# -- the device logs in with its manufacturer certificate: admitted unprovisioned --------------
export KRB5CCNAME="FILE:$tmp/dev.cc"
kinit_pkinit "mta-$MACHEX@$REALM" "$tmp/dev.p12" "$tmp/pw" >"$tmp/kinit-dev.log" 2>&1 ||
    bail "the factory device's PKINIT login (unprovisioned admission)" "$(cat "$tmp/kinit-dev.log")"
ok "the factory device logs in with its manufacturer certificate"
KEYHASH=$("$CK_CLI" device show --db "$DB" --stash "$STASH" --mac "$MAC" 2>&1 |
          sed -n 's/^Key pin (SPKI SHA-256): \([0-9a-f]\{64\}\)$/\1/p')
[ -n "$KEYHASH" ] || bail "the KDC pinned the admitted device's key" \
    "$("$CK_CLI" device show --db "$DB" --stash "$STASH" --mac "$MAC" 2>&1)"

# -- cablekey-prov ----------------------------------------------------------------------------
HPORT=$(free_port) || bail "pick a port for the API"
FPORT=$(free_port) || bail "pick a port for MTA-FQDN"
DPORT=$(free_port) || bail "pick a port for the device channel"
cat >"$tmp/prov.acl" <<EOF
csr1@$REALM   iap
ops@$REALM    iap
viewer@$REALM i
cms/localhost@$REALM  c
EOF
cat >"$tmp/prov.conf" <<EOF
[prov]
    database = $DB
    stash = $STASH
    listen = 127.0.0.1:$HPORT
    fqdn_listen = 127.0.0.1:$FPORT
    devchan_listen = 127.0.0.1:$DPORT
    keytab = $tmp/prov.keytab
    acl_file = $tmp/prov.acl
    kdc = 127.0.0.1:$PORT
    ca_cert = $PKI/prov-ca.pem
    ca_key = $PKI/prov-ca-key.pem
    ca_password_file = $tmp/capw
    phone_id_key = $PKI/phone-id.key
    fqdn_domain = mta.prov.test
    pool = seg-a 5550100 5550199
    pool = seg-b 5560100 5560199
    csr_numbers = 611 911
    log = FILE:$tmp/prov.log
    log_level = debug
    pid_file = $tmp/prov.pid
EOF
KRB5_CONFIG="$tmp/krb5-kdc-side.conf" "$CK_PROV" -c "$tmp/prov.conf" >"$tmp/prov.out" 2>&1 </dev/null &
PROV_PID=$!
CK_BG_PIDS+=("$PROV_PID")
for _ in $(seq 1 100); do
    ck_tcp_probe "127.0.0.1:$HPORT" && break
    kill -0 "$PROV_PID" 2>/dev/null || break
    sleep 0.1
done
ck_tcp_probe "127.0.0.1:$HPORT" || bail "cablekey-prov serves its API" \
    "$(tail -n 20 "$tmp/prov.out" "$tmp/prov.log" 2>/dev/null)"
ok "cablekey-prov starts and serves the API on loopback"
URL="http://127.0.0.1:$HPORT"
# curl asks for HTTP@localhost: the API is reached as localhost.
LURL="http://localhost:$HPORT"

# -- the console's static answers: the page, its CSP ------------------------------------------
curl -s -D "$tmp/index.hdr" -o "$tmp/index.html" "$URL/" >/dev/null 2>&1
if grep -qi "^content-security-policy:.*default-src 'self'" "$tmp/index.hdr" &&
   grep -qi '^content-type: text/html' "$tmp/index.hdr" && grep -q 'id="login-form"' "$tmp/index.html"; then
    ok "GET / serves the console with CSP default-src 'self'"
else
    not_ok "GET / serves the console with CSP default-src 'self'" "$(cat "$tmp/index.hdr")"
fi
for a in console.js:javascript console.css:css; do
    f=${a%%:*}; ty=${a#*:}
    curl -s -D "$tmp/$f.hdr" -o "$tmp/$f" "$URL/$f" >/dev/null 2>&1
    if grep -qi "^content-type: text/$ty" "$tmp/$f.hdr" && cmp -s "$tmp/$f" "$TOP/daemons/prov/console/$f"; then
        ok "GET /$f serves the embedded file, text/$ty"
    else
        not_ok "GET /$f serves the embedded file, text/$ty" "$(cat "$tmp/$f.hdr")"
    fi
done

# -- the call controller reports the device (its unprovisioned IP) ----------------------------
export KRB5CCNAME="FILE:$tmp/cms.cc"
kinit -k -t "$tmp/cms.keytab" "cms/localhost@$REALM" >"$tmp/kinit-cms.log" 2>&1 ||
    bail "kinit the controller" "$(cat "$tmp/kinit-cms.log")"
code=$(curl -s -o "$tmp/report.json" -w '%{http_code}' --negotiate -u : \
    -H 'Content-Type: application/json' \
    -d "{\"mac\":\"$MAC\",\"key_sha256\":\"$KEYHASH\",\"ip\":\"$UNPROV_IP\",\"controller\":\"cms1\"}" \
    "$LURL/api/v1/devices/report")
[ "$code" = 200 ] || bail "the controller reports the device (POST /api/v1/devices/report)" \
    "HTTP $code: $(cat "$tmp/report.json")"
ok "the controller reports the unprovisioned device with its IP"

# -- the hook: the KDC's table and the API (CLI, the operator's ticket) agree with the page -----
export KRB5CCNAME="FILE:$tmp/ops.cc"
kinit_pw ops opspw >"$tmp/kinit-ops.log" 2>&1 || bail "kinit ops" "$(cat "$tmp/kinit-ops.log")"
cat >"$tmp/hook.sh" <<EOF
#!/usr/bin/env bash
# hook STEP: the KDC's device row and the API's record agree with the step.
case "\$1" in
    found|deprovisioned) kdc=unprovisioned; prov=unprovisioned ;;
    provisioned|moved|returned) kdc=active; prov=provisioned ;;
    repair) kdc=active; prov=repair ;;
    *) echo "unknown step \$1"; exit 1 ;;
esac
out=\$("$CK_CLI" device show --db "$DB" --stash "$STASH" --mac "$MAC" 2>&1)
echo "\$out" | grep -qx "State: \$kdc" || { echo "KDC table: want \$kdc: \$out"; exit 1; }
line=\$(KRB5CCNAME="FILE:$tmp/ops.cc" "$CK_CLI" device search --server "$LURL" --mac "$MAC" 2>&1)
[ "\$(echo "\$line" | cut -f2)" = "\$prov" ] || { echo "API (CLI): want \$prov: \$line"; exit 1; }
exit 0
EOF
chmod +x "$tmp/hook.sh"

# -- the browser --------------------------------------------------------------------------------
"$CK_PY" "$TOP/tests/browser/console_test.py" --url "$URL" --principal csr1 \
    --password-file "$tmp/csr1.pw" --ip "$UNPROV_IP" --mac "$MAC" --segment seg-a \
    --move-segment seg-b --artifacts "$ART" --hook "$tmp/hook.sh" --timeout 20 \
    >"$tmp/browser.out" 2>"$tmp/browser.err"
brc=$?
while IFS= read -r line; do
    case "$line" in
        "STEP ok "*) ok "console: ${line#STEP ok }" ;;
        "STEP fail "*) not_ok "console: ${line#STEP fail }" ;;
    esac
done <"$tmp/browser.out"
grep -q '^STEP ' "$tmp/browser.out" ||
    not_ok "the browser test ran" "exit $brc: $(tail -n 20 "$tmp/browser.err")"
[ $brc -eq 0 ] || ck_diag "browser test exit $brc; stderr: $(tail -n 10 "$tmp/browser.err")"
n=$(ls "$ART"/console-*.png 2>/dev/null | wc -l)
[ "$n" -ge 10 ] && ok "a screenshot after each step ($n in $ART)" ||
    not_ok "a screenshot after each step" "$n screenshots in $ART"

# -- the CLI over the same API ------------------------------------------------------------------
export KRB5CCNAME="FILE:$tmp/ops.cc"
expect_output "cablekey device history --server: every step, newest first" \
    "deprovision" "$CK_CLI" device history --server "$LURL" --mac "$MAC"
acts=$(grep -E '^[0-9]{4}-' "$tmp/last.out" | cut -f2 | grep -E '^(provision|move|repair|return|deprovision)$' | head -5 | tr '\n' ' ')
[ "$acts" = "deprovision return repair move provision " ] &&
    ok "the CLI's history: deprovision return repair move provision" ||
    not_ok "the CLI's history: deprovision return repair move provision" "$acts"
expect_output "cablekey customer list --server --query: the customer the CSR entered" \
    $'\tcustomer\tseg-a\tAnn Example\t' "$CK_CLI" customer list --server "$LURL" --query Ann
CID=$(cut -f1 "$tmp/last.out" | head -n 1)
expect_output "cablekey customer show: the account and its device events" \
    "^Name: Ann Example" "$CK_CLI" customer show --server "$LURL" --id "$CID"
expect_failure "cablekey device return in the wrong state: the API's error, exit 1" \
    "unprovisioned" "$CK_CLI" device return --server "$LURL" --mac "$MAC"
expect_failure "cablekey device provision of an unknown MAC: not found" \
    "." "$CK_CLI" device provision --server "$LURL" --mac 00:00:5e:00:53:01 --customer "$CID"
expect_output "cablekey device provision --number: the chosen number" \
    "^Numbers: 5550150$" "$CK_CLI" device provision --server "$LURL" --mac "$MAC" \
    --customer "$CID" --number 5550150 --idempotency-key "cli-prov-$MACHEX"
expect_output "the same --idempotency-key again: replayed, nothing done twice" \
    "^Replayed: yes" "$CK_CLI" device provision --server "$LURL" --mac "$MAC" \
    --customer "$CID" --number 5550150 --idempotency-key "cli-prov-$MACHEX"
expect_output "cablekey device deprovision --server" "^State: unprovisioned" \
    "$CK_CLI" device deprovision --server "$LURL" --mac "$MAC" --reason "cli test"
KRB5CCNAME="FILE:$tmp/none.cc" expect_failure "without a ticket: refused (401), exit 1" \
    "kinit|Kerberos|auth" "$CK_CLI" customer list --server "$LURL"
export KRB5CCNAME="FILE:$tmp/viewer.cc"
kinit_pw viewer viewerpw >/dev/null 2>&1 || bail "kinit viewer"
expect_failure "customer add outside the ACL (viewer has only 'i'): refused, exit 1" "." \
    "$CK_CLI" customer add --server "$LURL" --name X --address Y --segment seg-a

# -- stop ---------------------------------------------------------------------------------------
kill -TERM "$PROV_PID" 2>/dev/null
for _ in $(seq 1 100); do kill -0 "$PROV_PID" 2>/dev/null || break; sleep 0.1; done
kill -KILL "$PROV_PID" 2>/dev/null
wait "$PROV_PID"; rc=$?
[ $rc -eq 0 ] && ok "cablekey-prov stops cleanly on SIGTERM" ||
    not_ok "cablekey-prov stops cleanly on SIGTERM" "exit $rc: $(tail -n 20 "$tmp/prov.out")"
realm_stop_kdc
done_testing
