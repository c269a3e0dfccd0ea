#!/usr/bin/env bash
# The endpoint simulator's provisioning life (`cablekey mta hfc-register|boot|fetch-cert|status|
# reboot|reset-cert`, seed 002 FIG. 5A/5B) against cablekey-kdc: each transition printed and
# logged with the seed's state names, the state file kept across runs; PKINIT with the factory
# (manufacturer) certificate and with an operator certificate for the same key; a refused
# operator certificate that falls back to the manufacturer one and is NOT dropped on the
# KRB-ERROR alone; the device channel (FETCH, ACK, CHECK) against tests/tools/provdev_stub:
# certificate checks (operator root, same key, replay), an authenticated DROP removes the
# certificate, a server without the prov/ key cannot make the device drop it; the KMM AP
# exchange with cablekey-cms; the front-panel wipe, reboots, and the refusals (hostile state
# file, another device's state, fetch-cert before any login, unreachable servers).
# The whole flow with cablekey-prov and the KDC's pkinit_provisioning is the issue's end-to-end
# test.
# Every verb loads a PKCS#12 (PBKDF2, 100,000 iterations): slow under ASan on a busy machine.
CK_TIMEOUT=${CK_TIMEOUT:-60}
. "$(dirname "$0")/lib.sh"

require_tool "OpenSSL" openssl
require_tool "MIT klist" klist
require_tool "faketime" faketime
is_mit && bail "t_mta_prov.sh drives cablekey's endpoint simulator against cablekey-kdc"

PW='Mta-Prov-Test-Pw-6'
CAPW='Mta-Prov-Ca-Pw-6'
printf '%s\n' "$PW" >"$tmp/pw"; chmod 600 "$tmp/pw"
printf '%s\n' "$CAPW" >"$tmp/capw"; chmod 600 "$tmp/capw"
PKI="$tmp/pki"
R=MTAPROV.TEST
MAC=00:11:22:33:44:55
PRINC=mta-001122334455
DEV="$tmp/dev"

pki() { # pki ARGS... : the operator CLI, quietly; bails on failure (setup)
    timeout 60 "$CK_CLI" pki "$@" --password-file "$tmp/pw" --ca-password-file "$tmp/capw" \
        </dev/null >>"$tmp/pki.log" 2>&1 || bail "cablekey pki $1" "$(tail -n 5 "$tmp/pki.log")"
}

pki init --dir "$PKI" --realm "$R" --org "Cable Test Co"
mkdir -p "$DEV"; chmod 700 "$DEV"
pki issue-device --dir "$PKI" --mac "$MAC" --out "$DEV/factory.p12"
cp "$tmp/pw" "$DEV/factory.pw"; chmod 600 "$DEV/factory.pw"

# The device's key, to issue operator certificates for it (CN = MAC, PKINIT client EKU).
openssl pkcs12 -in "$DEV/factory.p12" -passin "file:$tmp/pw" -nocerts -nodes \
    -out "$tmp/devkey.pem" >/dev/null 2>&1 || bail "extract the device key"
chmod 600 "$tmp/devkey.pem"
cat >"$tmp/op.ext" <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = 1.3.6.1.5.2.3.4, clientAuth
EOF
# Until the KDC's pkinit_operator_anchors (issue 10) is merged, the operator's device CA is a
# root of its own that the KDC trusts as a device anchor; "foreign" is a CA it does not trust.
make_root() { # make_root NAME
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$tmp/$1-key.pem" -subj "/O=$1/CN=$1 device root" -days 30 \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$tmp/$1.pem" >/dev/null 2>&1
}
operator_cert() { # operator_cert ROOTNAME OUT.pem
    openssl req -new -key "$tmp/devkey.pem" -subj "/O=Cable Test Co/CN=$MAC" \
        -out "$tmp/op.csr" >/dev/null 2>&1 &&
    openssl x509 -req -in "$tmp/op.csr" -CA "$tmp/$1.pem" -CAkey "$tmp/$1-key.pem" \
        -CAcreateserial -days 30 -sha256 -extfile "$tmp/op.ext" -out "$2" >/dev/null 2>&1
}
make_root operator && make_root foreign || bail "make the operator roots"
operator_cert operator "$tmp/operator-good.pem" || bail "issue an operator certificate"
operator_cert foreign "$tmp/operator-foreign.pem" || bail "issue a foreign certificate"

realm_init "$R"
realm_addprinc "$PRINC" --random
timeout 30 "$CK_CLI" device add --db "$DB" --mac "$MAC" --principal "$PRINC" </dev/null \
    >"$tmp/dev.log" 2>&1 || bail "device add" "$(cat "$tmp/dev.log")"
realm_start_kdc --pkinit-identity "$PKI/kdc.p12" --pkinit-password-file "$tmp/pw" \
    --pkinit-anchors "$PKI/sp-root.pem" \
    --pkinit-device-anchors "$PKI/mfg-root.pem,$tmp/operator.pem" \
    --pkinit-pool "$PKI/sp-ca.pem,$PKI/mfg-ca.pem"

MTA=("$CK_CLI" mta)
BOOT=(boot --device "$DEV" --kdc "127.0.0.1:$PORT" --realm "$R" --anchors "$PKI/sp-root.pem")
# line DESC TEXT : the last command printed exactly this transition line
line() {
    if grep -qxF -- "$2" "$tmp/last.out"; then ok "$1"; else
        not_ok "$1" "no line '$2' in:
$(cat "$tmp/last.out" "$tmp/last.err")"; fi
}
no_line() {
    if grep -qF -- "$2" "$tmp/last.out"; then not_ok "$1" "unexpected '$2' in:
$(cat "$tmp/last.out")"; else ok "$1"; fi
}
state_is() { # state_is DESC HFC TEL
    if grep -qx "hfc $2" "$DEV/state" && grep -qx "telephony $3" "$DEV/state"; then ok "$1"
    else not_ok "$1" "state file: $(tr '\n' ' ' <"$DEV/state" 2>/dev/null)"; fi
}
M="mta $MAC"

# ---------------------------------------------------------------------------------------------
# FIG. 5A, the HFC side
expect_output "status of a factory-fresh device" \
    "^telephony: Telephony I/F Not Configured \(540\)" "${MTA[@]}" status --device "$DEV"
assert_file_grep "status: HFC Not Configured (502)" "^hfc: HFC Not Configured \(502\)$" \
    "$tmp/last.out"
assert_file_grep "status: principal from the MAC" "principal $PRINC\$" "$tmp/last.out"
expect_success "hfc-register --failed" "${MTA[@]}" hfc-register --device "$DEV" --failed
line "registration failed: 502 stays" \
    "$M: hfc: HFC Not Configured -> HFC Not Configured (HFC registration failed)"
expect_success "hfc-register --ip 10.20.30.40" "${MTA[@]}" hfc-register --device "$DEV" \
    --ip 10.20.30.40
line "502 -> 510 on registration with an unprovisioned address" \
    "$M: hfc: HFC Not Configured -> Unprovisioned HFC Access (HFC registration with an unprovisioned address)"
assert_file_grep "the state file records the address" "^ip 10.20.30.40$" "$DEV/state"
assert_file_grep "mta.log has the transition with its time" \
    "^[0-9-]+T[0-9:]+Z $M: hfc: HFC Not Configured -> Unprovisioned HFC Access" "$DEV/mta.log"
expect_failure "hfc-register needs --ip or --failed" "--ip ADDR" \
    "${MTA[@]}" hfc-register --device "$DEV"
expect_failure "a bad address is refused" "bad unprovisioned address" \
    "${MTA[@]}" hfc-register --device "$DEV" --ip '10.0.0.1;x'
state_is "state after HFC registration" 510 540

# ---------------------------------------------------------------------------------------------
# FIG. 5B, a new device: PKINIT with the manufacturer certificate
expect_success "boot with the factory certificate" "${MTA[@]}" "${BOOT[@]}"
line "540 -> 550 on PKINIT with the manufacturer certificate" \
    "$M: telephony: Telephony I/F Not Configured -> Unprovisioned Telephony Access (PKINIT ok with the manufacturer certificate)"
assert_file_grep "boot says which certificate" "^mta: $PRINC logged in with the manufacturer" \
    "$tmp/last.out"
no_line "a reboot in 540/510 is no transition" "(reboot)"
state_is "state after the first boot" 510 550
expect_output "the device's ccache holds its TGT" "krbtgt/$R@$R" \
    env KRB5CCNAME="FILE:$DEV/ccache" klist
assert_file_grep "the KDC issued it to $PRINC" "ISSUE: .*$PRINC@$R" "$tmp/kdc.log"
if [ "$(stat -c %a "$DEV/state")" = 600 ]; then ok "the state file is 0600"
else not_ok "the state file is 0600" "$(stat -c %a "$DEV/state")"; fi
expect_failure "fetch-cert: an unreachable provisioning server" "mta fetch-cert" \
    "${MTA[@]}" fetch-cert --device "$DEV" --prov "127.0.0.1:$(free_port)" \
    --prov-principal "prov/prov.test" --anchors "$PKI/sp-root.pem" --kdc "127.0.0.1:$PORT"
state_is "a failed fetch changes nothing" 510 550
[ -e "$DEV/operator.pem" ] && not_ok "no operator certificate installed" || ok "no operator certificate installed"

# Boot against a KDC that does not answer: the reboot loses the ticket, PKINIT fails.
expect_failure "boot with no KDC answering" "failed" "${MTA[@]}" boot --device "$DEV" \
    --kdc "127.0.0.1:$(free_port)" --tcp --realm "$R" --anchors "$PKI/sp-root.pem"
line "550 -> 540 on the reboot" \
    "$M: telephony: Unprovisioned Telephony Access -> Telephony I/F Not Configured (reboot)"
line "540 stays on a failed PKINIT" \
    "$M: telephony: Telephony I/F Not Configured -> Telephony I/F Not Configured (PKINIT failed)"
[ -e "$DEV/ccache" ] && not_ok "the reboot removed the ticket" || ok "the reboot removed the ticket"
expect_failure "fetch-cert before any login" "no telephony access .*boot first" \
    "${MTA[@]}" fetch-cert --device "$DEV" --prov 127.0.0.1:7467 --anchors "$PKI/sp-root.pem"

# ---------------------------------------------------------------------------------------------
# An operator certificate for the same key (as fetch-cert installs it)
install -m 600 "$tmp/operator-good.pem" "$DEV/operator.pem"
expect_success "boot with the operator certificate" "${MTA[@]}" "${BOOT[@]}"
line "540 -> 580 on PKINIT with the operator certificate" \
    "$M: telephony: Telephony I/F Not Configured -> Provisioned Telephony Access (PKINIT ok with the operator certificate)"
state_is "provisioned telephony access" 510 580
expect_output "status shows the operator certificate" \
    "^operator certificate: CN $MAC, issuer .*, sha256 [0-9a-f]{64}" "${MTA[@]}" status --device "$DEV"

# A certificate this KDC does not trust (another operator's, FIG. 10 / re-use): refused with a
# KRB-ERROR, fallback to the manufacturer certificate, and the certificate is KEPT.
install -m 600 "$tmp/operator-foreign.pem" "$DEV/operator.pem"
expect_success "boot with a foreign operator certificate falls back" "${MTA[@]}" "${BOOT[@]}"
assert_file_grep "580 -> 540 on the refused operator certificate, with its KRB-ERROR" \
    "Provisioned Telephony Access -> Telephony I/F Not Configured \(PKINIT failed, KRB-ERROR [0-9]+\)" \
    "$tmp/last.out"
line "then 540 -> 550 with the manufacturer certificate" \
    "$M: telephony: Telephony I/F Not Configured -> Unprovisioned Telephony Access (PKINIT ok with the manufacturer certificate)"
assert_file_grep "the certificate is kept without an authenticated DROP" \
    "^mta: operator certificate kept" "$tmp/last.out"
if cmp -s "$DEV/operator.pem" "$tmp/operator-foreign.pem"; then
    ok "the KRB-ERROR alone did not drop the operator certificate"
else not_ok "the KRB-ERROR alone did not drop the operator certificate"; fi
assert_file_grep "state: operator-cert not dropped by the machine" "^telephony 550$" "$DEV/state"
ck_run "${MTA[@]}" "${BOOT[@]}" --prov "127.0.0.1:$(free_port)" --prov-principal prov/prov.test
assert_file_grep "CHECK failed: the certificate kept" "^mta: CHECK failed, operator certificate kept" \
    "$tmp/last.out"
[ -e "$DEV/operator.pem" ] && ok "still held after a failed CHECK" || not_ok "still held after a failed CHECK"

# ---------------------------------------------------------------------------------------------
# The repair technician's front-panel wipe, reboot
expect_success "reset-cert" "${MTA[@]}" reset-cert --device "$DEV"
line "the wipe in 550 keeps the unprovisioned state" \
    "$M: telephony: Unprovisioned Telephony Access -> Unprovisioned Telephony Access (certificate wiped from the front panel)"
assert_file_grep "the wipe says so" "^mta: operator certificate removed" "$tmp/last.out"
[ -e "$DEV/operator.pem" ] && not_ok "operator.pem removed" || ok "operator.pem removed"
install -m 600 "$tmp/operator-good.pem" "$DEV/operator.pem"
expect_success "boot provisioned again" "${MTA[@]}" "${BOOT[@]}"
state_is "provisioned" 510 580
expect_success "reset-cert of a provisioned device" "${MTA[@]}" reset-cert --device "$DEV"
line "580 -> 540 on the wipe" \
    "$M: telephony: Provisioned Telephony Access -> Telephony I/F Not Configured (certificate wiped from the front panel)"
expect_success "reboot" "${MTA[@]}" reboot --device "$DEV"
no_line "a reboot in 540 is no transition" "->"

# ---------------------------------------------------------------------------------------------
# The device channel (FETCH, ACK, CHECK) against tests/tools/provdev_stub: the real envelope
# under the prov/ service key, fixed answers. A stub holding an old key of prov/prov.test
# stands for a server that cannot authenticate its answers.
STUB="$CK_BUILD/provdev_stub"
[ -x "$STUB" ] || bail "tests/tools/provdev_stub not built at $STUB"
realm_addprinc prov/prov.test --random
realm_ktexport "$tmp/prov-old.keytab" prov/prov.test >/dev/null || bail "export the prov keytab"
realm_rotate prov/prov.test >/dev/null || bail "rotate prov/prov.test"
realm_ktexport "$tmp/prov.keytab" prov/prov.test >/dev/null || bail "export the prov keytab"
for f in operator-good operator-foreign; do
    openssl x509 -in "$tmp/$f.pem" -outform DER -out "$tmp/$f.der" || bail "DER of $f"
done
openssl x509 -in "$tmp/operator.pem" -outform DER -out "$tmp/operator-root.der"
# Another key certified for this MAC by the operator (a certificate for some other device).
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/k2.pem" \
    -subj "/O=Cable Test Co/CN=$MAC" -out "$tmp/k2.csr" >/dev/null 2>&1 &&
openssl x509 -req -in "$tmp/k2.csr" -CA "$tmp/operator.pem" -CAkey "$tmp/operator-key.pem" \
    -days 3 -extfile "$tmp/op.ext" -outform DER -out "$tmp/otherkey.der" >/dev/null 2>&1 ||
    bail "a certificate for another key"
# An older certificate for the device's key (FIG. 9 replay).
faketime -f -2d openssl x509 -req -in "$tmp/op.csr" -CA "$tmp/operator.pem" \
    -CAkey "$tmp/operator-key.pem" -days 30 -sha256 -extfile "$tmp/op.ext" -outform DER \
    -out "$tmp/older.der" >/dev/null 2>&1 || bail "an older certificate (faketime)"
SPORT=$(free_port)
STUB_PID=""
stub() { # stub [provdev_stub args] : (re)starts the stub
    if [ -n "$STUB_PID" ]; then kill "$STUB_PID" 2>/dev/null; wait "$STUB_PID" 2>/dev/null; fi
    rm -f "$tmp/stub.ready"
    "$STUB" --listen "127.0.0.1:$SPORT" --keytab "${STUB_KT:-$tmp/prov.keytab}" \
        --server "prov/prov.test@$R" --ready "$tmp/stub.ready" "$@" >>"$tmp/stub.log" 2>&1 &
    STUB_PID=$!
    CK_BG_PIDS+=("$STUB_PID")
    local i
    for i in $(seq 1 50); do [ -e "$tmp/stub.ready" ] && return 0; sleep 0.1; done
    bail "provdev_stub started" "$(tail -n 5 "$tmp/stub.log")"
}
FETCH=(fetch-cert --device "$DEV" --prov "127.0.0.1:$SPORT" --prov-principal prov/prov.test
       --anchors "$tmp/operator.pem" --kdc "127.0.0.1:$PORT")
PROV=(--prov "127.0.0.1:$SPORT" --prov-principal prov/prov.test)

expect_success "boot unprovisioned (manufacturer certificate)" "${MTA[@]}" "${BOOT[@]}"
state_is "before the fetch" 510 550
stub
expect_failure "FETCH before the CSR provisioned it: NO_CERT" "no certificate issued" \
    "${MTA[@]}" "${FETCH[@]}"
line "510 stays: provisioning request rejected" \
    "$M: hfc: Unprovisioned HFC Access -> Unprovisioned HFC Access (provisioning request rejected)"
assert_file_grep "the stub saw the device's own principal" \
    "provdev_stub: $PRINC@$R FETCH -> " "$tmp/stub.log"
stub --cert "$tmp/operator-foreign.der" --cert-id 5
expect_failure "a certificate from another operator's CA is refused" \
    "does not chain to the operator root" "${MTA[@]}" "${FETCH[@]}"
stub --cert "$tmp/otherkey.der" --cert-id 5
expect_failure "a certificate for another key is refused" "does not certify the device's factory key" \
    "${MTA[@]}" "${FETCH[@]}"
[ -e "$DEV/operator.pem" ] && not_ok "nothing installed after refusals" || ok "nothing installed after refusals"
stub --cert "$tmp/operator-good.der" --cert "$tmp/operator-root.der" --cert-id 9
expect_success "FETCH of the operator certificate" "${MTA[@]}" "${FETCH[@]}"
line "550 -> 570 once received and acknowledged" \
    "$M: telephony: Unprovisioned Telephony Access -> Received Network Operator-Issued Certificate (operator certificate received and acknowledged)"
line "510 -> 520 on the provisioning complete notice" \
    "$M: hfc: Unprovisioned HFC Access -> Fully Registered with HFC (provisioning complete notice)"
assert_file_grep "ACK of certificate 9" "provdev_stub: $PRINC@$R ACK -> " "$tmp/stub.log"
if [ "$(stat -c %a "$DEV/operator.pem")" = 600 ]; then ok "operator.pem is 0600"
else not_ok "operator.pem is 0600" "$(stat -c %a "$DEV/operator.pem")"; fi
assert_file_grep "the state records certificate 9" "^cert-id 9$" "$DEV/state"
stub --cert "$tmp/older.der" --cert-id 10
expect_failure "an older certificate is a replay (FIG. 9)" "a replay" "${MTA[@]}" "${FETCH[@]}"
expect_success "reboot after the certificate" "${MTA[@]}" reboot --device "$DEV"
line "570 -> 580 on the reboot" \
    "$M: telephony: Received Network Operator-Issued Certificate -> Provisioned Telephony Access (reboot)"
line "520 -> 530 on the reboot" \
    "$M: hfc: Fully Registered with HFC -> Provisioned HFC Access (reboot)"
expect_success "boot with the fetched certificate" "${MTA[@]}" "${BOOT[@]}"
line "580 stays: PKINIT ok with the operator certificate" \
    "$M: telephony: Provisioned Telephony Access -> Provisioned Telephony Access (PKINIT ok with the operator certificate)"

# Re-use with another operator's certificate: refused, fallback, CHECK.
install -m 600 "$tmp/operator-foreign.pem" "$DEV/operator.pem"
stub --check keep
expect_success "CHECK answered KEEP" "${MTA[@]}" "${BOOT[@]}" "${PROV[@]}"
assert_file_grep "KEEP keeps the certificate" "^mta: CHECK answered KEEP" "$tmp/last.out"
[ -e "$DEV/operator.pem" ] && ok "kept on KEEP" || not_ok "kept on KEEP"
STUB_KT="$tmp/prov-old.keytab" stub --check drop
ck_run "${MTA[@]}" "${BOOT[@]}" "${PROV[@]}"
assert_file_grep "a server without prov/'s current key cannot make it drop" \
    "^mta: CHECK failed, operator certificate kept" "$tmp/last.out"
[ -e "$DEV/operator.pem" ] && ok "kept: the DROP was not authenticated" || not_ok "kept: the DROP was not authenticated"
stub --check drop
expect_success "CHECK answered DROP (authenticated)" "${MTA[@]}" "${BOOT[@]}" "${PROV[@]}"
line "the DROP de-provisions HFC access" \
    "$M: hfc: Provisioned HFC Access -> HFC Not Configured (authenticated DROP instruction)"
line "the device stays unprovisioned on the manufacturer ticket" \
    "$M: telephony: Unprovisioned Telephony Access -> Unprovisioned Telephony Access (authenticated DROP instruction)"
[ -e "$DEV/operator.pem" ] && not_ok "operator.pem removed on DROP" || ok "operator.pem removed on DROP"
assert_file_grep "the stub saw the CHECK" "provdev_stub: $PRINC@$R CHECK -> .* DROP" "$tmp/stub.log"
kill "$STUB_PID" 2>/dev/null; wait "$STUB_PID" 2>/dev/null

# ---------------------------------------------------------------------------------------------
# The KMM AP exchange with cablekey-cms (FIG. 5B 550 -> 560), as `mta kmm` keys IPsec.
CK_CMS="$CK_BUILD/cablekey-cms"
[ -x "$CK_CMS" ] || bail "cablekey-cms not built at $CK_CMS"
realm_addprinc cms/cms.test --random
realm_ktexport "$tmp/cms.keytab" cms/cms.test >/dev/null || bail "export the CMS keytab"
KP=$(free_port); SP=$(free_port)
: >"$tmp/cms.conf"; : >"$tmp/cms.log"
"$CK_CMS" -c "$tmp/cms.conf" --keytab "$tmp/cms.keytab" --listen "127.0.0.1:$KP" \
    --signaling-listen "127.0.0.1:$SP" --log "$tmp/cms.log" --log-level debug \
    >"$tmp/cms.stderr" 2>&1 </dev/null &
CMS_PID=$!
CK_BG_PIDS+=("$CMS_PID")
for i in $(seq 1 100); do
    grep -q "cablekey-cms ready" "$tmp/cms.log" 2>/dev/null && break
    sleep 0.1
done
grep -q "cablekey-cms ready" "$tmp/cms.log" || bail "cablekey-cms started" "$(tail -n 10 "$tmp/cms.stderr" "$tmp/cms.log")"
CMS=(--cms "127.0.0.1:$KP" --cms-service cms/cms.test)
expect_success "boot with the KMM AP exchange" "${MTA[@]}" "${BOOT[@]}" "${CMS[@]}"
line "550 -> 560 on the KMM AP-REP" \
    "$M: telephony: Unprovisioned Telephony Access -> Unprovisioned Telephony Security Context (KMM AP-REP ok)"
state_is "unprovisioned security context" 502 560
if grep -Eq '^sa-expires [1-9][0-9]+$' "$DEV/state"; then ok "the SA's end is in the state file"
else not_ok "the SA's end is in the state file" "$(cat "$DEV/state")"; fi
expect_failure "boot with a CMS that does not answer" "KMM AP exchange .* failed" \
    "${MTA[@]}" "${BOOT[@]}" --cms "127.0.0.1:$(free_port)" --cms-service cms/cms.test
line "550 stays when the AP exchange fails" \
    "$M: telephony: Unprovisioned Telephony Access -> Unprovisioned Telephony Access (KMM AP-REP failed)"
kill -TERM "$CMS_PID" 2>/dev/null; wait "$CMS_PID" 2>/dev/null

# ---------------------------------------------------------------------------------------------
# Refusals
cp "$DEV/state" "$tmp/state.good"
printf 'cablekey-mta-state 1\nmac 00:11:22:33:44:55\nhfc 999\n' >"$DEV/state"
expect_failure "a hostile state file is refused with its line" "state file line 3: unknown HFC state" \
    "${MTA[@]}" status --device "$DEV"
printf 'cablekey-mta-state 7\n' >"$DEV/state"
expect_failure "another state file version is refused" "state file version 7" \
    "${MTA[@]}" status --device "$DEV"
sed 's/^mac .*/mac 00:11:22:33:44:66/' "$tmp/state.good" >"$DEV/state"
expect_failure "another device's state is refused" "belongs to another device" \
    "${MTA[@]}" "${BOOT[@]}"
cp "$tmp/state.good" "$DEV/state"
expect_failure "boot without --kdc" "--kdc" "${MTA[@]}" boot --device "$DEV" --realm "$R" \
    --anchors "$PKI/sp-root.pem"
expect_failure "a missing device directory" "nodev" "${MTA[@]}" status --device "$tmp/nodev"

realm_stop_kdc
done_testing
