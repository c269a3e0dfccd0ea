#!/usr/bin/env bash
# PKINIT in cablekey-kdc with certificates from `cablekey pki`: stock MIT kinit over DH and RSA
# key transport (then kvno), Heimdal's kinit, device logins mapped through the device table
# (live revocation, clone refused, thumbprint cache), the PacketCable draft form (from the
# PacketCable anchor only), and the refusals: wrong anchor, expired / not-yet-valid certificate,
# missing EKU, SAN naming another principal, CRL revocation, stale AuthPack (faketime on kinit),
# stale freshness token, mismatched nonce, DH group below the minimum, malformed CMS and AuthPack,
# bad signature — each with its KRB-ERROR code and log token, the KDC serving on afterwards.
# tests/tools/pkinit_asreq sends what stock clients cannot (the PacketCable form, faults).
. "$(dirname "$0")/lib.sh"

require_tool "OpenSSL" openssl
require_tool "MIT client tools" kinit klist kvno
require_tool "Heimdal kinit" "$CK_HEIMDAL_BIN/kinit.heimdal"
require_tool "faketime" faketime
compgen -G "/usr/lib/*/krb5/plugins/preauth/pkinit.so" >/dev/null ||
    compgen -G "/usr/lib/krb5/plugins/preauth/pkinit.so" >/dev/null ||
    bail "MIT PKINIT plugin missing (krb5-pkinit; run scripts/install-deps.sh)"
is_mit && bail "t_pkinit_kdc.sh tests cablekey-kdc's PKINIT (t_pki.sh covers MIT krb5kdc)"
ASREQ="$CK_BUILD/pkinit_asreq"
[ -x "$ASREQ" ] || bail "tests/tools/pkinit_asreq not built at $ASREQ"
HKINIT="$CK_HEIMDAL_BIN/kinit.heimdal"

PW='Pkinit-Kdc-Test-Pw-3'
CAPW='Pkinit-Kdc-Ca-Pw-5'
printf '%s\n' "$PW" >"$tmp/pw"; chmod 600 "$tmp/pw"
printf '%s\n' "$CAPW" >"$tmp/capw"; chmod 600 "$tmp/capw"
PKI="$tmp/pki"
R=PKINIT.TEST
MAC1=00:11:22:33:44:55
MAC2=00:11:22:33:44:66

pki() { # pki ARGS... : the operator CLI, quietly; bails on failure (setup)
    timeout 60 "$CK_CLI" pki "$@" --password-file "$tmp/pw" </dev/null >>"$tmp/pki.log" 2>&1 ||
        bail "cablekey pki $1" "$(tail -n 5 "$tmp/pki.log")"
}
issue() { pki "$@" --ca-password-file "$tmp/capw"; }

# ---------------------------------------------------------------------------------------------
# Certificates

pki init --dir "$PKI" --realm "$R" --org "Cable Test Co" --ca-password-file "$tmp/capw"
issue issue-client --dir "$PKI" --principal alice --out "$tmp/alice.p12" \
    --pem-out "$tmp/alice" --pem-nopass
issue issue-client --dir "$PKI" --principal bob --out "$tmp/bob.p12"
issue issue-client --dir "$PKI" --principal alice --out "$tmp/alice-ec.p12" --key ec-p256
issue issue-client --dir "$PKI" --principal carol --out "$tmp/carol.p12" --pem-out "$tmp/carol" \
    --pem-nopass
issue issue-client --dir "$PKI" --principal alice --out "$tmp/alice-expired.p12" \
    --not-before 2020-01-01 --not-after 2021-01-01
issue issue-client --dir "$PKI" --principal alice --out "$tmp/alice-future.p12" \
    --not-before "$(date -u -d '+2 days' '+%Y-%m-%d')"
issue issue-server --dir "$PKI" --dns alice.pkinit.test --out "$tmp/alice-noeku.p12"
issue issue-device --dir "$PKI" --mac "$MAC1" --out "$tmp/dev1.p12"
issue issue-device --dir "$PKI" --mac "$MAC1" --out "$tmp/clone.p12"
issue issue-device --dir "$PKI" --mac "$MAC2" --out "$tmp/dev2.p12"
# A hierarchy this KDC does not trust.
pki init --dir "$tmp/otherpki" --realm "$R" --org "Someone Else" --ca-password-file "$tmp/capw"
timeout 60 "$CK_CLI" pki issue-client --dir "$tmp/otherpki" --principal alice \
    --out "$tmp/alice-other.p12" --password-file "$tmp/pw" --ca-password-file "$tmp/capw" \
    </dev/null >>"$tmp/pki.log" 2>&1 || bail "issue from the other PKI" "$(tail -n 5 "$tmp/pki.log")"
# A CRL of the service-provider CA revoking carol (openssl ca over the SP CA key).
mkdir -p "$tmp/ca"; : >"$tmp/ca/index.txt"; echo 01 >"$tmp/ca/crlnumber"
cat >"$tmp/ca.cnf" <<EOF
[ ca ]
default_ca = CA_default
[ CA_default ]
database = $tmp/ca/index.txt
crlnumber = $tmp/ca/crlnumber
default_md = sha256
default_crl_days = 30
EOF
{ openssl ca -config "$tmp/ca.cnf" -keyfile "$PKI/sp-ca-key.pem" -cert "$PKI/sp-ca.pem" \
      -passin "file:$tmp/capw" -revoke "$tmp/carol-cert.pem" &&
  openssl ca -config "$tmp/ca.cnf" -keyfile "$PKI/sp-ca-key.pem" -cert "$PKI/sp-ca.pem" \
      -passin "file:$tmp/capw" -gencrl -out "$tmp/sp-ca.crl"; } >"$tmp/ossl.log" 2>&1 ||
    bail "openssl ca: CRL revoking carol" "$(cat "$tmp/ossl.log")"

# ---------------------------------------------------------------------------------------------
# Realm and KDC

realm_init "$R"
for p in alice bob carol mta1 mta2 host/svc.pkinit.test; do realm_addprinc "$p" --random; done
timeout 30 "$CK_CLI" device add --db "$DB" --mac "$MAC1" --principal mta1 </dev/null \
    >"$tmp/dev.log" 2>&1 || bail "device add" "$(cat "$tmp/dev.log")"
# Clients: the SP root for the KDC's certificate, the MTA root for the device's own chain (MIT
# kinit verifies its own certificate), the SP and manufacturer CAs as intermediates (MIT ignores
# the chain inside a PKCS#12).
write_krb5_conf "$KRB5_CONFIG" "127.0.0.1:$PORT" "pkinit_anchors = FILE:$PKI/sp-root.pem" \
    "pkinit_anchors = FILE:$PKI/mfg-root.pem" "pkinit_pool = FILE:$PKI/sp-ca.pem" \
    "pkinit_pool = FILE:$PKI/mfg-ca.pem"
write_krb5_conf "$tmp/krb5-heimdal.conf" "127.0.0.1:$PORT" "pkinit_dh_min_bits = 1700"
write_krb5_conf "$tmp/krb5-heimdal-1024.conf" "127.0.0.1:$PORT"
KDC_PK=(--pkinit-identity "$PKI/kdc.p12" --pkinit-password-file "$tmp/pw"
        --pkinit-anchors "$PKI/sp-root.pem" --pkinit-packetcable-anchors "$PKI/mfg-root.pem"
        --pkinit-pool "$PKI/sp-ca.pem,$PKI/mfg-ca.pem")

kinit_p12() { # kinit_p12 PRINC P12 [kinit args]
    kinit_pkinit "$1" "$2" "$tmp/pw" "${@:3}"
}
asreq() { # asreq PRINC P12 [pkinit_asreq args]
    timeout -k 5 "$CK_TIMEOUT" "$ASREQ" --kdc "127.0.0.1:$PORT" --realm "$R" --principal "$1" \
        --identity "$2" --password-file "$tmp/pw" --kdc-anchors "$PKI/sp-root.pem" "${@:3}"
}
# last_log DESC PATTERN: the KDC's latest log line matches PATTERN.
last_log() {
    local i l=""
    for i in 1 2 3 4 5 6 7 8 9 10; do
        l=$(grep -E 'AS_REQ|TGS_REQ' "$tmp/kdc.log" 2>/dev/null | tail -n 1)
        grep -Eq -- "$2" <<<"$l" && { ok "$1"; return 0; }
        sleep 0.1
    done
    not_ok "$1" "last request line does not match /$2/: $l"
}
# refused DESC CODE TOKEN PRINC P12 [args]: pkinit_asreq gets KRB-ERROR CODE, logged as TOKEN.
refused() {
    local desc=$1 code=$2 token=$3 rc; shift 3
    ck_run asreq "$@"; rc=$?
    if [ $rc -eq 3 ] && grep -qx "KRB-ERROR $code" "$tmp/last.out"; then
        last_log "$desc: KRB-ERROR $code, log $token" "$token: "
    else
        not_ok "$desc: KRB-ERROR $code" "exit $rc: $(ck_last_output)"
    fi
}

expect_output "cablekey-kdc --check loads the PKINIT identity and anchors" \
    "pkinit: identity .*kdc.p12 loaded.*|configuration OK" \
    "$CK_KDC" --check -c /dev/null --db "$DB" --stash "$STASH" "${KDC_PK[@]}"
assert_file_grep "--check: no warning for the cablekey pki KDC identity" "configuration OK" "$tmp/last.out"
if grep -q warning "$tmp/last.out"; then not_ok "--check prints no warning" "$(cat "$tmp/last.out")"
else ok "--check prints no warning"; fi
expect_output "--check warns about a KDC identity without the KDC EKU and krbtgt SAN" \
    "lacks the id-pkinit-KPKdc.*|no id-pkinit-san naming krbtgt/$R@$R" \
    "$CK_KDC" --check -c /dev/null --db "$DB" --stash "$STASH" --pkinit-identity "$tmp/alice.p12" \
    --pkinit-password-file "$tmp/pw" --pkinit-anchors "$PKI/sp-root.pem"
printf 'wrong\n' >"$tmp/badpw"; chmod 600 "$tmp/badpw"
expect_failure "--check fails on a wrong identity password" "kdc.p12" \
    "$CK_KDC" --check -c /dev/null --db "$DB" --stash "$STASH" --pkinit-identity "$PKI/kdc.p12" \
    --pkinit-password-file "$tmp/badpw" --pkinit-anchors "$PKI/sp-root.pem"

# One worker: the thumbprint cache is per worker, and the repeat-login checks below must land on
# the worker that verified the chain.
realm_start_kdc --workers 1 "${KDC_PK[@]}"

# ---------------------------------------------------------------------------------------------
# Stock clients

expect_success "MIT kinit -X X509_user_identity=PKCS12:alice.p12 (DH)" kinit_p12 alice "$tmp/alice.p12"
expect_output "klist: alice has a TGT" "krbtgt/$R@$R" klist
last_log "logged: DH MODP-2048, RFC 8636 KDF, freshness token, SAN mapping" \
    "ISSUE: .*alice@$R for krbtgt/$R@$R, pkinit, fresh, DH modp2048 kdf sha256, san, chain verified"
assert_file_grep "MIT client accepted the KDC's certificate (id-pkinit-san)" \
    "matched KDC principal krbtgt/$R@$R against id-pkinit-san" "$KRB5_TRACE"
expect_success "kvno host/svc.pkinit.test with the PKINIT TGT" kvno "host/svc.pkinit.test@$R"
expect_success "MIT kinit with RSA key transport (-X flag_RSA_PROTOCOL=yes)" \
    kinit_p12 alice "$tmp/alice.p12" -X flag_RSA_PROTOCOL=yes
last_log "logged: RSA key transport" "ISSUE: .*alice@$R .*pkinit, .*RSA [A-Z0-9-]+-CBC, san"
expect_success "kvno after the RSA login" kvno "host/svc.pkinit.test@$R"
expect_success "Heimdal kinit -C FILE:cert,key -D sp-root.pem (pkinit_dh_min_bits 1700: MODP-2048)" \
    env KRB5CCNAME="FILE:$tmp/hccache" KRB5_CONFIG="$tmp/krb5-heimdal.conf" \
    timeout -k 5 "$CK_TIMEOUT" "$HKINIT" -C "FILE:$tmp/alice-cert.pem,$tmp/alice-key.pem" \
    -D "FILE:$PKI/sp-root.pem" "alice@$R"
last_log "logged: Heimdal's DH login" "ISSUE: .*alice@$R .*pkinit, .*DH modp2048"
expect_success "Heimdal kinit --pk-use-enckey (RSA key transport)" \
    env KRB5CCNAME="FILE:$tmp/hccache" KRB5_CONFIG="$tmp/krb5-heimdal.conf" \
    timeout -k 5 "$CK_TIMEOUT" "$HKINIT" --pk-use-enckey \
    -C "FILE:$tmp/alice-cert.pem,$tmp/alice-key.pem" -D "FILE:$PKI/sp-root.pem" "alice@$R"
last_log "logged: Heimdal's RSA login" "ISSUE: .*alice@$R .*pkinit, .*RSA [A-Z0-9-]+-CBC, san"
# Heimdal's default offer is the 1024-bit Oakley group 2: refused with TD-DH-PARAMETERS.
ck_run env KRB5CCNAME="FILE:$tmp/hccache2" KRB5_CONFIG="$tmp/krb5-heimdal-1024.conf" \
    timeout -k 5 "$CK_TIMEOUT" "$HKINIT" -C "FILE:$tmp/alice-cert.pem,$tmp/alice-key.pem" \
    -D "FILE:$PKI/sp-root.pem" "alice@$R"
hrc=$?
if grep -q "DH_PARAMETERS: alice@$R" "$tmp/kdc.log"; then
    ok "Heimdal's default 1024-bit group refused: KDC_ERR_DH_KEY_PARAMETERS_NOT_ACCEPTED, DH_PARAMETERS"
else
    not_ok "Heimdal's default 1024-bit group refused" "$(tail -n 3 "$tmp/kdc.log")"
fi
if [ $hrc -eq 0 ]; then
    last_log "Heimdal retried with a group from TD-DH-PARAMETERS and got its TGT" \
        "ISSUE: .*alice@$R .*pkinit, .*DH modp"
else
    cp "$tmp/last.err" "$tmp/heimdal-1024.err"
    assert_file_grep "Heimdal reports the refusal (no retry): key parameters not accepted" \
        "[Kk]ey parameters|DH|Diffie" "$tmp/heimdal-1024.err"
fi

# ECDH (RFC 5349), which no stock client here speaks: the test client over the network.
expect_output "ECDH P-256 with an EC certificate (pkinit_asreq)" "^ISSUE alice" \
    asreq alice "$tmp/alice-ec.p12" --group P-256 --freshness
last_log "logged: ECDH P-256" "ISSUE: .*alice@$R .*pkinit, fresh, ECDH P-256 kdf sha256, san"
expect_output "ECDH P-384" "^ISSUE alice" asreq alice "$tmp/alice-ec.p12" --group P-384
expect_output "MODP-4096 DH" "^ISSUE alice" asreq alice "$tmp/alice.p12" --group modp4096

# ---------------------------------------------------------------------------------------------
# Devices (MAC in the certificate subject, through the device table)

expect_success "MIT kinit as mta1 with the device certificate" kinit_p12 mta1 "$tmp/dev1.p12"
last_log "logged: device mapped, key pinned on first use" \
    "ISSUE: .*mta1@$R .*device $MAC1 \\(key pinned now\\), chain verified"
expect_output "the device table shows the pin" "$MAC1.*active.*[0-9a-f]{64}" \
    "$CK_CLI" device list --db "$DB"
expect_success "second device login" kinit_p12 mta1 "$tmp/dev1.p12"
last_log "the repeat login skipped chain verification (thumbprint cache)" \
    "ISSUE: .*mta1@$R .*device $MAC1, chain cached"
expect_failure "a device certificate cannot log in as another principal" "." \
    kinit_p12 mta2 "$tmp/dev1.p12"
last_log "logged: DEVICE_NAME_MISMATCH" "DEVICE_NAME_MISMATCH: mta2@$R"
expect_failure "another key with the same MAC is refused (MIT kinit)" "." \
    kinit_p12 mta1 "$tmp/clone.p12"
last_log "logged as a possible clone" "POSSIBLE_CLONE: mta1@$R .*possible clone: device $MAC1"
refused "clone over pkinit_asreq" 62 POSSIBLE_CLONE mta1 "$tmp/clone.p12"
refused "a manufacturer-certified device the table does not know" 62 UNKNOWN_DEVICE \
    mta2 "$tmp/dev2.p12" --group rsa
expect_success "cablekey device revoke" "$CK_CLI" device revoke --db "$DB" --mac "$MAC1"
expect_failure "the revoked device's next login is refused (no KDC restart)" "." \
    kinit_p12 mta1 "$tmp/dev1.p12"
last_log "logged: DEVICE_REVOKED" "DEVICE_REVOKED: mta1@$R"
expect_success "cablekey device reinstate" "$CK_CLI" device reinstate --db "$DB" --mac "$MAC1"
expect_success "the reinstated device logs in again" kinit_p12 mta1 "$tmp/dev1.p12"
last_log "the changed record forced a new chain verification" \
    "ISSUE: .*mta1@$R .*device $MAC1, chain verified"

# ---------------------------------------------------------------------------------------------
# PacketCable compatibility mode

expect_output "PacketCable draft form (PA 14, RSA-MD5 paChecksum) from the PacketCable anchor" \
    "^ISSUE mta1 etype" asreq mta1 "$tmp/dev1.p12" --form pktc --group rsa \
    --prov-srv prov.pkinit.test
last_log "logged: draft form, DES3 envelope, PA-PROV-SRV-LOCATION recorded" \
    "ISSUE: .*mta1@$R .*pkinit packetcable-draft implicit, RSA DES-EDE3-CBC, device $MAC1.*prov-srv \"prov.pkinit.test\""
expect_output "the explicit (2003 client) wire form too" "^ISSUE mta1" \
    asreq mta1 "$tmp/dev1.p12" --form pktc-explicit --group rsa
expect_output "the RFC form from the PacketCable anchor still works" "^ISSUE mta1" \
    asreq mta1 "$tmp/dev1.p12"
refused "PacketCable draft form from a non-PacketCable anchor (SP client)" 80 \
    PACKETCABLE_REFUSED alice "$tmp/alice.p12" --form pktc --group rsa
refused "a PacketCable-form signature in PA 16 from a non-PacketCable anchor" 80 \
    PACKETCABLE_REFUSED alice "$tmp/alice.p12" --form rfc-pcsig
refused "draft-9 AuthPack without paChecksum" 79 PA_CHECKSUM_MISSING mta1 "$tmp/dev1.p12" \
    --form draft9 --group rsa

# ---------------------------------------------------------------------------------------------
# Refusals

refused "wrong anchor (another hierarchy)" 70 UNTRUSTED_CHAIN alice "$tmp/alice-other.p12"
expect_failure "MIT kinit with a certificate from another hierarchy fails" "." \
    kinit_p12 alice "$tmp/alice-other.p12"
refused "expired certificate" 62 CERT_EXPIRED alice "$tmp/alice-expired.p12"
refused "not-yet-valid certificate" 62 CERT_NOT_YET_VALID alice "$tmp/alice-future.p12"
refused "certificate without the PKINIT client EKU" 77 BAD_EKU alice "$tmp/alice-noeku.p12"
refused "SAN naming another principal" 75 CLIENT_NAME_MISMATCH alice "$tmp/bob.p12"
expect_failure "MIT kinit as alice with bob's certificate fails" "." kinit_p12 alice "$tmp/bob.p12"
last_log "logged: CLIENT_NAME_MISMATCH" "CLIENT_NAME_MISMATCH: alice@$R"
refused "bad signature" 64 BAD_SIGNATURE alice "$tmp/alice.p12" --corrupt signature
refused "malformed CMS" 24 PKINIT_BAD_CMS alice "$tmp/alice.p12" --corrupt cms
refused "malformed AuthPack" 24 PKINIT_BAD_AUTHPACK alice "$tmp/alice.p12" --corrupt authpack
refused "malformed PA-PK-AS-REQ" 24 PKINIT_DECODE alice "$tmp/alice.p12" --corrupt padata
refused "mismatched nonce" 41 NONCE_MISMATCH alice "$tmp/alice.p12" --nonce-mismatch
refused "missing paChecksum" 79 PA_CHECKSUM_MISSING alice "$tmp/alice.p12" --no-checksum
refused "paChecksum over another req-body" 41 PA_CHECKSUM_MISMATCH alice "$tmp/alice.p12" \
    --bad-checksum
refused "AuthPack signed 10 minutes ago (replayed outside the skew)" 37 STALE_AUTHPACK \
    alice "$tmp/alice.p12" --ctime-offset -600
# Ahead, not behind: the certificates were issued a moment ago, and a kinit 10 minutes in the
# past would refuse the KDC's as not yet valid before sending anything.
kinit_ahead() { # MIT kinit under faketime, PKCS#12 password on stdin
    timeout -k 5 "$CK_TIMEOUT" faketime -f +10m kinit -X "X509_user_identity=PKCS12:$tmp/alice.p12" \
        alice <"$tmp/pw"
}
expect_failure "MIT kinit with its clock 10 minutes ahead (faketime) is refused" "." kinit_ahead
last_log "logged: STALE_AUTHPACK for the faketime'd kinit" "STALE_AUTHPACK: alice@$R"
expect_success "the KDC keeps serving: MIT kinit alice" kinit_p12 alice "$tmp/alice.p12"
kdc_alive "the KDC survived every refusal"
realm_stop_kdc

# A second configuration from kdc.conf: CRL for the SP hierarchy, a 5-second skew (to age a
# freshness token quickly), DH groups of at least 3072 bits.
cat >"$tmp/pkinit-kdc.conf" <<EOF
[realms]
    $R = {
        clockskew = 5
        pkinit_identity = PKCS12:$PKI/kdc.p12
        pkinit_password_file = $tmp/pw
        pkinit_anchors = FILE:$PKI/sp-root.pem
        pkinit_device_anchors = FILE:$PKI/mfg-root.pem
        pkinit_pool = FILE:$PKI/sp-ca.pem
        pkinit_pool = FILE:$PKI/mfg-ca.pem
        pkinit_revoke = FILE:$tmp/sp-ca.crl FILE:$PKI/sp-root.pem
        pkinit_dh_min_bits = 3072
    }
EOF
realm_start_kdc --workers 1 -c "$tmp/pkinit-kdc.conf"
refused "certificate revoked by the SP CA's CRL" 72 CERT_REVOKED carol "$tmp/carol.p12" \
    --group modp3072
refused "DH group below pkinit_dh_min_bits (MODP-2048 < 3072)" 65 DH_PARAMETERS \
    alice "$tmp/alice.p12" --group modp2048
expect_output "MODP-3072 passes" "^ISSUE alice" asreq alice "$tmp/alice.p12" --group modp3072
expect_success "MIT kinit retries with a group from TD-DH-PARAMETERS" kinit_p12 alice "$tmp/alice.p12"
if grep -E 'AS_REQ' "$tmp/kdc.log" | tail -n 2 | tr '\n' ' ' |
    grep -Eq "DH_PARAMETERS: alice@$R .*ISSUE: .*alice@$R .*DH modp(3072|4096)"; then
    ok "logged: MODP-2048 refused, then the retry with a stronger group issued"
else
    not_ok "logged: MODP-2048 refused, then the retry issued" "$(tail -n 3 "$tmp/kdc.log")"
fi
refused "freshness token older than the skew" 90 STALE_FRESHNESS alice "$tmp/alice.p12" \
    --group modp3072 --freshness-wait 7
expect_output "a fresh token passes" "^ISSUE alice" asreq alice "$tmp/alice.p12" \
    --group modp3072 --freshness
refused "PacketCable form where no anchor is a PacketCable anchor" 80 PACKETCABLE_REFUSED \
    mta1 "$tmp/dev1.p12" --form pktc --group rsa
expect_output "the same device in the RFC form, from a plain device anchor" "^ISSUE mta1" \
    asreq mta1 "$tmp/dev1.p12" --group rsa
realm_stop_kdc

done_testing
