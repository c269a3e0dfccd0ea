#!/usr/bin/env bash
# Provisioning in cablekey-kdc (issue 10): with pkinit_provisioning on, stock MIT kinit with a
# manufacturer device certificate from `cablekey pki issue-device` logs in as a device the
# realm has never seen: it is admitted under mta-<hex>@REALM (principal and device row made,
# key pinned), its TGT and the service ticket `kvno` gets carry the restricted-calls element,
# read back out of the ccache with the service's keytab (tests/tools/prov_ad_read); the
# admission answers to that name only; an operator certificate that is not the device row's
# current one is refused (OPERATOR_CERT_NOT_CURRENT); `cablekey device revoke` refuses the next
# login and the next TGS request live, without a restart; with provisioning off the same
# certificate is an unknown device again.
. "$(dirname "$0")/lib.sh"

if is_mit; then
    skip_case "cablekey-kdc provisioning" "cablekey-only test (MIT krb5kdc has no provisioning)"
    done_testing
fi
require_tool "OpenSSL" openssl
require_tool "MIT client tools" kinit klist kvno
compgen -G "/usr/lib/*/krb5/plugins/preauth/pkinit.so" >/dev/null ||
    compgen -G "/usr/lib/krb5/plugins/preauth/pkinit.so" >/dev/null ||
    bail "MIT PKINIT plugin missing (krb5-pkinit; run scripts/install-deps.sh)"
ADREAD="$CK_BUILD/prov_ad_read"
ASREQ="$CK_BUILD/pkinit_asreq"
[ -x "$ADREAD" ] || bail "tests/tools/prov_ad_read not built at $ADREAD"
[ -x "$ASREQ" ] || bail "tests/tools/pkinit_asreq not built at $ASREQ"

PW='Unprov-Kdc-Test-Pw-4'
CAPW='Unprov-Kdc-Ca-Pw-6'
printf '%s\n' "$PW" >"$tmp/pw"; chmod 600 "$tmp/pw"
printf '%s\n' "$CAPW" >"$tmp/capw"; chmod 600 "$tmp/capw"
PKI="$tmp/pki"
R=UNPROV.TEST
MAC1=00:11:22:33:44:55
NAME1=mta-001122334455
MAC2=00:11:22:33:44:66
NAME2=mta-001122334466
SVC="host/svc.unprov.test"

pki() { # pki ARGS... : the operator CLI, quietly; bails on failure (setup)
    timeout 60 "$CK_CLI" pki "$@" --password-file "$tmp/pw" </dev/null >>"$tmp/pki.log" 2>&1 ||
        bail "cablekey pki $1" "$(tail -n 5 "$tmp/pki.log")"
}
issue() { pki "$@" --ca-password-file "$tmp/capw"; }

pki init --dir "$PKI" --realm "$R" --org "Cable Test Co" --ca-password-file "$tmp/capw"
issue issue-device --dir "$PKI" --mac "$MAC1" --out "$tmp/dev1.p12"
issue issue-device --dir "$PKI" --mac "$MAC2" --out "$tmp/dev2.p12"
# An operator certificate for device 1 that the device row never named: an own small CA
# (openssl) stands in for the provisioning CA, trusted as the operator anchor.
openssl pkcs12 -in "$tmp/dev1.p12" -passin "file:$tmp/pw" -nocerts -nodes \
    -out "$tmp/dev1-key.pem" >"$tmp/ossl.log" 2>&1 || bail "dev1 key" "$(cat "$tmp/ossl.log")"
chmod 600 "$tmp/dev1-key.pem"
{ openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
      -subj "/CN=Test Provisioning CA" -keyout "$tmp/opca-key.pem" -out "$tmp/opca.pem" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" &&
  printf 'extendedKeyUsage=1.3.6.1.5.2.3.4,clientAuth\nkeyUsage=critical,digitalSignature\n' \
      >"$tmp/op.ext" &&
  openssl req -new -key "$tmp/dev1-key.pem" -subj "/CN=$MAC1" -out "$tmp/op1.csr" &&
  openssl x509 -req -in "$tmp/op1.csr" -CA "$tmp/opca.pem" -CAkey "$tmp/opca-key.pem" \
      -CAcreateserial -days 30 -sha256 -extfile "$tmp/op.ext" -out "$tmp/op1.pem" &&
  openssl pkcs12 -export -in "$tmp/op1.pem" -inkey "$tmp/dev1-key.pem" \
      -passout "file:$tmp/pw" -out "$tmp/op1.p12"; } >"$tmp/ossl.log" 2>&1 ||
    bail "operator certificate (openssl)" "$(tail -n 5 "$tmp/ossl.log")"

realm_init "$R"
realm_addprinc "$SVC" --random
realm_ktexport "$tmp/svc.keytab" "$SVC" >"$tmp/kt.log" 2>&1 || bail "keytab export" "$(cat "$tmp/kt.log")"
write_krb5_conf "$KRB5_CONFIG" "127.0.0.1:$PORT" "pkinit_anchors = FILE:$PKI/sp-root.pem" \
    "pkinit_anchors = FILE:$PKI/mfg-root.pem" "pkinit_anchors = FILE:$tmp/opca.pem" \
    "pkinit_pool = FILE:$PKI/sp-ca.pem" "pkinit_pool = FILE:$PKI/mfg-ca.pem"
KDC_PK=(--pkinit-identity "$PKI/kdc.p12" --pkinit-password-file "$tmp/pw"
        --pkinit-anchors "$PKI/sp-root.pem" --pkinit-packetcable-anchors "$PKI/mfg-root.pem"
        --pkinit-pool "$PKI/sp-ca.pem,$PKI/mfg-ca.pem")

kinit_p12() { kinit_pkinit "$1" "$2" "$tmp/pw" "${@:3}"; }
asreq() { # asreq PRINC P12 [pkinit_asreq args]
    timeout -k 5 "$CK_TIMEOUT" "$ASREQ" --kdc "127.0.0.1:$PORT" --realm "$R" --principal "$1" \
        --identity "$2" --password-file "$tmp/pw" --kdc-anchors "$PKI/sp-root.pem" "${@:3}"
}
last_log() { # last_log DESC PATTERN : the KDC's latest request line matches PATTERN
    local i l=""
    for i in 1 2 3 4 5 6 7 8 9 10; do
        l=$(grep -E 'AS_REQ|TGS_REQ' "$tmp/kdc.log" 2>/dev/null | tail -n 1)
        grep -Eq -- "$2" <<<"$l" && { ok "$1"; return 0; }
        sleep 0.1
    done
    not_ok "$1" "last request line does not match /$2/: $l"
}
refused() { # refused DESC CODE TOKEN PRINC P12 [args]: pkinit_asreq gets KRB-ERROR CODE
    local desc=$1 code=$2 token=$3 rc; shift 3
    ck_run asreq "$@"; rc=$?
    if [ $rc -eq 3 ] && grep -qx "KRB-ERROR $code" "$tmp/last.out"; then
        last_log "$desc: KRB-ERROR $code, log $token" "$token: "
    else
        not_ok "$desc: KRB-ERROR $code" "exit $rc: $(ck_last_output)"
    fi
}
spki_hash() { # spki_hash P12 : SHA-256 of the certificate's SubjectPublicKeyInfo (openssl)
    openssl pkcs12 -in "$1" -passin "file:$tmp/pw" -clcerts -nokeys 2>/dev/null |
        openssl x509 -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum | cut -c1-64
}

# ---------------------------------------------------------------------------------------------
# Provisioning off: today's KDC

realm_start_kdc --workers 1 "${KDC_PK[@]}"
expect_failure "provisioning off: an unknown device cannot log in" "." kinit_p12 "$NAME1" "$tmp/dev1.p12"
last_log "provisioning off: an unknown client, as before" "CLIENT_NOT_FOUND: $NAME1@$R"
"$CK_CLI" device list --db "$DB" >"$tmp/devlist.out" 2>&1
if grep -q "$MAC1" "$tmp/devlist.out"; then
    not_ok "provisioning off: nothing was admitted" "$(cat "$tmp/devlist.out")"
else
    ok "provisioning off: nothing was admitted"
fi
realm_stop_kdc

# ---------------------------------------------------------------------------------------------
# Provisioning on

cat >"$tmp/prov.conf" <<EOF
[kdcdefaults]
    pkinit_provisioning = true
    pkinit_unprovisioned_calls = 611 911
[realms]
    $R = {
        database_name = $DB
        key_stash_file = $STASH
        pkinit_operator_anchors = FILE:$tmp/opca.pem
    }
EOF
expect_output "cablekey-kdc --check reports provisioning" \
    "provisioning on: unprovisioned devices may call 611 911" \
    "$CK_KDC" --check -c "$tmp/prov.conf" "${KDC_PK[@]}"
realm_start_kdc --workers 1 -c "$tmp/prov.conf" "${KDC_PK[@]}"

expect_success "MIT kinit as $NAME1 with the manufacturer certificate: admitted" \
    kinit_p12 "$NAME1" "$tmp/dev1.p12"
last_log "logged: admitted, restricted" \
    "ISSUE: .*$NAME1@$R for krbtgt/$R@$R, pkinit.*, unprovisioned device $MAC1 admitted, unprovisioned \\(restricted calls\\), device $MAC1, chain verified"
want_key=$(spki_hash "$tmp/dev1.p12")
expect_output "the device table has it: unprovisioned, pinned to the certificate's key" \
    "$MAC1[[:space:]]+unprovisioned[[:space:]]+$want_key[[:space:]]+$NAME1@$R" \
    "$CK_CLI" device list --db "$DB"
expect_output "the principal exists" "$NAME1@$R" "$CK_CLI" principal list --db "$DB"
expect_success "kvno $SVC with the restricted TGT" kvno "$SVC@$R"
last_log "logged: service ticket for an unprovisioned device" \
    "ISSUE: .*$NAME1@$R for $SVC@$R.*unprovisioned device $MAC1, restricted calls"
expect_output "the service ticket carries the restriction (read with the service's keytab)" \
    "^RESTRICTED mac=$MAC1 key=$want_key numbers=611,911$" \
    "$ADREAD" "${KRB5CCNAME#FILE:}" "$tmp/svc.keytab" "$SVC@$R"
expect_success "second login (the device is known now)" kinit_p12 "$NAME1" "$tmp/dev1.p12"
last_log "logged: no second admission, restricted again" \
    "ISSUE: .*$NAME1@$R .*fresh, [^,]+, unprovisioned \\(restricted calls\\), device $MAC1, chain cached"

# Admission under the device's own name only.
expect_failure "another device's name is refused" "." kinit_p12 "$NAME1" "$tmp/dev2.p12"
refused "an unknown device under another mta- name" 75 DEVICE_NAME_MISMATCH \
    mta-0011223344ff "$tmp/dev2.p12"
# Operator certificates: only the one the device row names.
refused "an operator certificate the device row does not name" 62 OPERATOR_CERT_NOT_CURRENT \
    "$NAME1" "$tmp/op1.p12"
expect_failure "MIT kinit with that operator certificate fails" "." kinit_p12 "$NAME1" "$tmp/op1.p12"

# Revocation, live.
expect_success "kinit again before the revocation" kinit_p12 "$NAME1" "$tmp/dev1.p12"
expect_success "cablekey device revoke" "$CK_CLI" device revoke --db "$DB" --mac "$MAC1"
expect_failure "the revoked device's next login is refused (no restart)" "." \
    kinit_p12 "$NAME1" "$tmp/dev1.p12"
last_log "logged: DEVICE_REVOKED" "DEVICE_REVOKED: $NAME1@$R"
kdestroy -q 2>/dev/null
expect_success "device 2 is admitted meanwhile" kinit_p12 "$NAME2" "$tmp/dev2.p12"
expect_success "kvno for device 2" kvno "$SVC@$R"
realm_addprinc "host/other.unprov.test" --random
expect_success "cablekey device revoke (device 2, holding a TGT)" \
    "$CK_CLI" device revoke --db "$DB" --mac "$MAC2"
expect_failure "its TGT gets no new service ticket (TGS refuses, live)" "." \
    kvno "host/other.unprov.test@$R"
last_log "logged: TGS refused, DEVICE_REVOKED" "TGS_REQ.*DEVICE_REVOKED: $NAME2@$R"
expect_success "cablekey device reinstate" "$CK_CLI" device reinstate --db "$DB" --mac "$MAC1"
expect_success "the reinstated device logs in (restricted)" kinit_p12 "$NAME1" "$tmp/dev1.p12"
kdc_alive "the KDC served every request"
realm_stop_kdc
done_testing
