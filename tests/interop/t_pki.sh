#!/usr/bin/env bash
# `cablekey pki`: the operator's certificate authority. What it writes must be accepted by
# OpenSSL (pkcs12 -info, verify -x509_strict, x509 -text), by Heimdal's hx509 (PEM identities) and
# by MIT's PKINIT: MIT kinit with a PKCS#12 from `pki issue-client` gets a TGT from MIT's own
# krb5kdc running on the KDC identity from `pki init` (DH and RSA key transport, RSA and EC
# hierarchies), and refuses a certificate naming someone else. Modes, exit codes, one-line errors
# and secrets that never reach the output are checked on the way.
. "$(dirname "$0")/lib.sh"

require_tool "OpenSSL" openssl
require_tool "MIT client tools and KDC" kinit klist kvno krb5kdc kdb5_util kadmin.local
require_tool "Heimdal hx509 and kinit" "$CK_HEIMDAL_BIN/hxtool" "$CK_HEIMDAL_BIN/kinit.heimdal"
[ -x "$CK_CLI" ] || bail "cablekey CLI not built at $CK_CLI"
compgen -G "/usr/lib/*/krb5/plugins/preauth/pkinit.so" >/dev/null ||
    compgen -G "/usr/lib/krb5/plugins/preauth/pkinit.so" >/dev/null ||
    bail "MIT PKINIT plugin missing (krb5-pkinit; run scripts/install-deps.sh)"
HXTOOL="$CK_HEIMDAL_BIN/hxtool"
HKINIT="$CK_HEIMDAL_BIN/kinit.heimdal"

PW='Pkcs12-Never-Echo-7'
CAPW='Ca-Key-Never-Echo-9'
printf '%s\n' "$PW" >"$tmp/pw"; chmod 600 "$tmp/pw"
printf '%s\n' "$CAPW" >"$tmp/capw"; chmod 600 "$tmp/capw"
printf 'wrong-password\n' >"$tmp/badpw"; chmod 600 "$tmp/badpw"
PKI="$tmp/pki"
R=PKI.TEST

# cli_fails DESC EXIT PATTERN args... : exit code EXIT, exactly one stderr line matching PATTERN.
cli_fails() {
    local desc=$1 want=$2 pat=$3 rc lines; shift 3
    timeout 60 "$CK_CLI" "$@" </dev/null >"$tmp/cli.out" 2>"$tmp/cli.err"; rc=$?
    lines=$(wc -l <"$tmp/cli.err")
    if [ "$rc" = "$want" ] && [ "$lines" = 1 ] && grep -Eq -- "$pat" "$tmp/cli.err"; then
        ok "$desc ($(cat "$tmp/cli.err"))"
    else
        not_ok "$desc" "exit $rc (want $want), $lines stderr lines: $(head -n 5 "$tmp/cli.err")"
    fi
}
# cli_ok DESC args... : exit 0; output kept in $tmp/cli.out, every output appended to all.out.
cli_ok() {
    local desc=$1; shift
    if timeout 60 "$CK_CLI" "$@" </dev/null >"$tmp/cli.out" 2>"$tmp/cli.err"; then ok "$desc"
    else not_ok "$desc" "exit $?: $(head -n 5 "$tmp/cli.err")"; fi
    cat "$tmp/cli.out" "$tmp/cli.err" >>"$tmp/all.out"
}
# file_mode DESC MODE FILE...
file_mode() {
    local desc=$1 want=$2 f bad=""; shift 2
    for f in "$@"; do
        [ "$(stat -c %a "$f" 2>/dev/null)" = "$want" ] || bad="$bad $f=$(stat -c %a "$f" 2>&1)"
    done
    if [ -z "$bad" ]; then ok "$desc"; else not_ok "$desc" "wrong modes:$bad"; fi
}
# ossl_match DESC PATTERN openssl-args... : openssl exits 0 and its output matches PATTERN.
ossl_match() {
    local desc=$1 pat=$2; shift 2
    expect_output "$desc" "$pat" openssl "$@"
}

# ---------------------------------------------------------------------------------------------
# pki init: both hierarchies, files and modes

cli_ok "pki init (RSA-2048, service-provider and manufacturer hierarchies)" \
    pki init --dir "$PKI" --realm "$R" --org "Cable Test Co" --password-file "$tmp/pw" \
    --ca-password-file "$tmp/capw" --country US
FILES=(pki.conf sp-root.pem sp-root-key.pem sp-ca.pem sp-ca-key.pem mfg-root.pem mfg-root-key.pem
       mfg-ca.pem mfg-ca-key.pem kdc.p12 kdc.pem cms.p12 cms.pem prov.p12 prov.pem issued.log
       prov-ca.pem prov-ca-key.pem phone-id.key)
missing=""
for f in "${FILES[@]}"; do [ -s "$PKI/$f" ] || missing="$missing $f"; done
if [ -z "$missing" ]; then ok "init wrote ${#FILES[@]} files"; else not_ok "init wrote every file" "missing:$missing"; fi
file_mode "the PKI directory is 0700" 700 "$PKI"
file_mode "every file in it is 0600" 600 "$PKI"/*
cli_fails "init refuses a directory that already holds a PKI" 1 "already holds a PKI" \
    pki init --dir "$PKI" --realm "$R" --org X --password-file "$tmp/pw"

for k in sp-root sp-ca mfg-root mfg-ca prov-ca; do
    if head -n1 "$PKI/$k-key.pem" | grep -q 'BEGIN ENCRYPTED PRIVATE KEY' &&
       openssl pkey -in "$PKI/$k-key.pem" -passin "file:$tmp/capw" -noout 2>/dev/null &&
       ! openssl pkey -in "$PKI/$k-key.pem" -passin "file:$tmp/pw" -noout 2>/dev/null; then
        ok "$k-key.pem is PKCS#8 encrypted with the CA password (not the PKCS#12 one)"
    else
        not_ok "$k-key.pem is PKCS#8 encrypted with the CA password" "$(head -n1 "$PKI/$k-key.pem")"
    fi
done
if openssl asn1parse -in "$PKI/sp-ca-key.pem" | grep -q ':0186A0' &&
   openssl asn1parse -in "$PKI/sp-ca-key.pem" | grep -q 'aes-256-cbc'; then
    ok "CA key: AES-256-CBC with 100000 PBKDF2 iterations"
else
    not_ok "CA key: AES-256-CBC with 100000 PBKDF2 iterations" "$(openssl asn1parse -in "$PKI/sp-ca-key.pem" | head -20)"
fi

# ---------------------------------------------------------------------------------------------
# The provisioning CA and the phone-ID key (issue 10)

ossl_match "openssl verify -x509_strict: prov-ca.pem chains to sp-root.pem" "prov-ca.pem: OK" \
    verify -x509_strict -CAfile "$PKI/sp-root.pem" "$PKI/prov-ca.pem"
ossl_match "prov-ca is a CA with path length 0" "CA:TRUE, pathlen:0" \
    x509 -in "$PKI/prov-ca.pem" -noout -text
if [ "$(stat -c %s "$PKI/phone-id.key")" = 32 ]; then ok "phone-id.key holds 32 bytes"
else not_ok "phone-id.key holds 32 bytes" "$(stat -c %s "$PKI/phone-id.key") bytes"; fi
# The phone ID is HMAC-SHA-256(key, "cablekey phone-id v1" || digits): OpenSSL's own HMAC agrees.
cli_ok "pki phone-id --key phone-id.key 15551230001" \
    pki phone-id --key "$PKI/phone-id.key" 15551230001
PHONE_ID=$(cat "$tmp/cli.out")
KEYHEX=$(od -An -tx1 -v "$PKI/phone-id.key" | tr -d ' \n')
WANT=$(printf 'cablekey phone-id v1%s' 15551230001 |
       openssl mac -digest SHA256 -macopt "hexkey:$KEYHEX" HMAC | tr 'A-F' 'a-f')
if [ -n "$WANT" ] && [ "$PHONE_ID" = "$WANT" ]; then ok "pki phone-id equals openssl mac HMAC ($WANT)"
else not_ok "pki phone-id equals openssl mac HMAC" "cablekey '$PHONE_ID', openssl '$WANT'"; fi
if grep -rqF "$KEYHEX" "$tmp/all.out"; then not_ok "the phone-ID key never reaches the output"
else ok "the phone-ID key never reaches the output"; fi
cli_fails "pki phone-id refuses a number with a non-digit" 1 "1\.\.15 digits" \
    pki phone-id --key "$PKI/phone-id.key" +15551230001
cli_fails "pki phone-id needs --key" 2 "expected --key FILE" pki phone-id 15551230001
cp "$PKI/phone-id.key" "$tmp/open-phone-id.key"; chmod 644 "$tmp/open-phone-id.key"
cli_fails "pki phone-id refuses a key others can read" 1 "must be 0600" \
    pki phone-id --key "$tmp/open-phone-id.key" 611
# pki show reads the phone IDs of an operator certificate that OpenSSL made (the extension
# encoded by OpenSSL's config parser, not by our template).
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/op-key.pem" \
    -subj "/O=Cable Test Co/CN=00:1a:2b:3c:4d:5e" -out "$tmp/op.csr" 2>/dev/null
printf '[ext]\nbasicConstraints = critical,CA:FALSE\nextendedKeyUsage = 1.3.6.1.5.2.3.4, clientAuth\n%s = DER:30:22:04:20:%s\n' \
    2.25.178893561123004519330412342127154437651 "$PHONE_ID" >"$tmp/op-ext.cnf"
openssl x509 -req -in "$tmp/op.csr" -CA "$PKI/prov-ca.pem" -CAkey "$PKI/prov-ca-key.pem" \
    -passin "file:$tmp/capw" -extfile "$tmp/op-ext.cnf" -extensions ext -days 30 \
    -out "$tmp/op.pem" 2>"$tmp/op.err" || not_ok "openssl signs a test operator certificate" "$(cat "$tmp/op.err")"
cli_ok "pki show (operator certificate)" pki show "$tmp/op.pem"
assert_file_grep "pki show prints the operator certificate's phone ID" "Phone IDs: +$PHONE_ID" "$tmp/cli.out"
ossl_match "openssl verify: the operator certificate chains to sp-root through prov-ca" "op.pem: OK" \
    verify -CAfile "$PKI/sp-root.pem" -untrusted "$PKI/prov-ca.pem" "$tmp/op.pem"

# ---------------------------------------------------------------------------------------------
# What OpenSSL says about them

ossl_match "kdc.p12: PBES2, PBKDF2, AES-256-CBC, hmacWithSHA256" \
    "PBES2, PBKDF2, AES-256-CBC, Iteration [0-9]+, PRF hmacWithSHA256" \
    pkcs12 -info -noout -in "$PKI/kdc.p12" -passin "file:$tmp/pw"
ossl_match "kdc.p12: SHA-256 MAC" "MAC: sha256" pkcs12 -info -noout -in "$PKI/kdc.p12" -passin "file:$tmp/pw"
if openssl pkcs12 -in "$PKI/kdc.p12" -passin "file:$tmp/badpw" -noout 2>/dev/null; then
    not_ok "openssl refuses kdc.p12 with a wrong password"
else
    ok "openssl refuses kdc.p12 with a wrong password"
fi
ossl_match "openssl verify -x509_strict: KDC certificate chains to sp-root.pem" "kdc.pem: OK" \
    verify -x509_strict -CAfile "$PKI/sp-root.pem" -untrusted "$PKI/sp-ca.pem" "$PKI/kdc.pem"
ossl_match "openssl verify -x509_strict: signaling controller and provisioning server" \
    "prov.pem: OK" verify -x509_strict -purpose sslserver -CAfile "$PKI/sp-root.pem" \
    -untrusted "$PKI/sp-ca.pem" "$PKI/cms.pem" "$PKI/prov.pem"
openssl x509 -in "$PKI/kdc.pem" -noout -text >"$tmp/kdc.txt" 2>&1
assert_file_grep "KDC certificate: EKU id-pkinit-KPKdc (OpenSSL: Signing KDC Response)" \
    "Signing KDC Response" "$tmp/kdc.txt"
assert_file_grep "KDC certificate: id-pkinit-san otherName" "othername: ?1\.3\.6\.1\.5\.2\.2" "$tmp/kdc.txt"
assert_file_grep "KDC certificate: PacketCable-like subject" \
    "Subject: C ?= ?US, O ?= ?Cable Test Co, OU ?= ?PacketCable, CN ?= ?KDC" "$tmp/kdc.txt"
assert_file_grep "KDC certificate: keyUsage critical" "X509v3 Key Usage: critical" "$tmp/kdc.txt"
assert_file_grep "KDC certificate: authorityKeyIdentifier" "Authority Key Identifier" "$tmp/kdc.txt"
openssl x509 -in "$PKI/sp-ca.pem" -noout -text >"$tmp/spca.txt" 2>&1
assert_file_grep "SP CA: basicConstraints critical CA:TRUE, pathlen:0" "CA:TRUE, pathlen:0" "$tmp/spca.txt"
assert_file_grep "SP CA: keyCertSign, cRLSign" "Certificate Sign, CRL Sign" "$tmp/spca.txt"
# The SAN's KRB5PrincipalName as DER, parsed by OpenSSL's generic parser: otherName
# 1.3.6.1.5.2.2 holding SEQUENCE { [0] GeneralString "PKI.TEST", [1] SEQUENCE { [0] INTEGER 2
# (NT-SRV-INST), [1] SEQUENCE OF GeneralString "krbtgt" "PKI.TEST" } }.
openssl x509 -in "$PKI/kdc.pem" -outform DER -out "$tmp/kdc.der"
san_off=$(openssl asn1parse -inform DER -in "$tmp/kdc.der" |
          awk -F: '/X509v3 Subject Alternative Name/ { getline; print $1 + 0; exit }')
openssl asn1parse -inform DER -in "$tmp/kdc.der" -strparse "$san_off" >"$tmp/san.txt" 2>&1
openssl asn1parse -inform DER -in "$tmp/kdc.der" | grep -A1 'Subject Alternative Name' >"$tmp/san.hex"
hexof() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n' | tr a-f A-F; }
if grep -q ':1.3.6.1.5.2.2' "$tmp/san.txt" && [ "$(grep -c 'GENERALSTRING' "$tmp/san.txt")" = 3 ] &&
   grep -q 'INTEGER *:02' "$tmp/san.txt" &&
   grep -q "A00A1B08$(hexof "$R")A11D301BA003020102A11430121B06$(hexof krbtgt)1B08$(hexof "$R")" "$tmp/san.hex"; then
    ok "asn1parse: the SAN is KRB5PrincipalName { PKI.TEST, NT-SRV-INST krbtgt/PKI.TEST }"
else
    not_ok "asn1parse: the SAN is KRB5PrincipalName { PKI.TEST, NT-SRV-INST krbtgt/PKI.TEST }" \
        "$(cat "$tmp/san.txt" "$tmp/san.hex")"
fi
cli_ok "pki show kdc.p12" pki show "$PKI/kdc.p12" --password-file "$tmp/pw"
assert_file_grep "show decodes the pkinit SAN: krbtgt/$R@$R" "PKINIT SAN: +krbtgt/$R@$R" "$tmp/cli.out"
assert_file_grep "show lists the EKU" "EKU: +id-pkinit-KPKdc \(1\.3\.6\.1\.5\.2\.3\.5\)" "$tmp/cli.out"
assert_file_grep "show gives the key type" "Key: +RSA 2048 bits" "$tmp/cli.out"
spki=$(openssl x509 -in "$PKI/kdc.pem" -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1)
assert_file_grep "show: SPKI SHA-256 equals OpenSSL's" "SPKI SHA-256: +$spki" "$tmp/cli.out"

# ---------------------------------------------------------------------------------------------
# Issuing

cli_ok "issue-client alice (PKCS#12 and PEM pair)" pki issue-client --dir "$PKI" --principal alice \
    --out "$tmp/alice.p12" --password-file "$tmp/pw" --ca-password-file "$tmp/capw" \
    --pem-out "$tmp/alice"
file_mode "client files are 0600" 600 "$tmp/alice.p12" "$tmp/alice-cert.pem" "$tmp/alice-key.pem"
openssl pkcs12 -in "$tmp/alice.p12" -passin "file:$tmp/pw" -nokeys -clcerts 2>/dev/null |
    openssl x509 -out "$tmp/alice-only.pem"
ossl_match "openssl verify -x509_strict: client certificate chains to sp-root.pem" "OK" \
    verify -x509_strict -CAfile "$PKI/sp-root.pem" -untrusted "$PKI/sp-ca.pem" "$tmp/alice-only.pem"
openssl x509 -in "$tmp/alice-only.pem" -noout -text >"$tmp/alice.txt"
assert_file_grep "client certificate: EKU id-pkinit-KPClientAuth" "PKINIT Client Auth|1\.3\.6\.1\.5\.2\.3\.4" "$tmp/alice.txt"
assert_file_grep "client certificate: id-pkinit-san" "othername: ?1\.3\.6\.1\.5\.2\.2" "$tmp/alice.txt"
cli_ok "pki show alice.p12" pki show "$tmp/alice.p12" --password-file "$tmp/pw"
assert_file_grep "show: alice's SAN is alice@$R" "PKINIT SAN: +alice@$R" "$tmp/cli.out"
cli_ok "issue-client bob" pki issue-client --dir "$PKI" --principal "bob@$R" --out "$tmp/bob.p12" \
    --password-file "$tmp/pw" --ca-password-file "$tmp/capw"

cli_ok "issue-device --mac 00-1A-2B-3C-4D-5E (normalised)" pki issue-device --dir "$PKI" \
    --mac 00-1A-2B-3C-4D-5E --out "$tmp/mta.p12" --password-file "$tmp/pw" \
    --ca-password-file "$tmp/capw" --pem-out "$tmp/mta"
ossl_match "openssl verify: device certificate chains to mfg-root.pem" "mta-cert.pem: OK" \
    verify -x509_strict -CAfile "$PKI/mfg-root.pem" -untrusted "$PKI/mfg-ca.pem" "$tmp/mta-cert.pem"
if openssl verify -CAfile "$PKI/sp-root.pem" -untrusted "$PKI/mfg-ca.pem" "$tmp/mta-cert.pem" >/dev/null 2>&1; then
    not_ok "a device certificate does not verify against sp-root.pem"
else
    ok "a device certificate does not verify against sp-root.pem"
fi
openssl x509 -in "$tmp/mta-cert.pem" -noout -text >"$tmp/mta.txt"
assert_file_grep "device subject: CN is the MAC written xx:xx:xx:xx:xx:xx" \
    "Subject: C ?= ?US, O ?= ?Cable Test Co, OU ?= ?PacketCable, CN ?= ?00:1a:2b:3c:4d:5e" "$tmp/mta.txt"
assert_file_grep "device certificate: EKU id-pkinit-KPClientAuth" "PKINIT Client Auth|1\.3\.6\.1\.5\.2\.3\.4" "$tmp/mta.txt"
assert_file_grep "device issuer: the manufacturer CA" "Issuer: .*MTA Manufacturer CA" "$tmp/mta.txt"
cli_ok "pki show (PEM device certificate)" pki show "$tmp/mta-cert.pem"
assert_file_grep "show: MAC address" "MAC address: +00:1a:2b:3c:4d:5e" "$tmp/cli.out"
cli_ok "pki verify device against mfg-root.pem" pki verify "$tmp/mta.p12" --password-file "$tmp/pw" \
    --anchors "$PKI/mfg-root.pem"
cli_fails "pki verify device against sp-root.pem: exit 1, one line" 1 "unable to get local issuer" \
    pki verify "$tmp/mta.p12" --password-file "$tmp/pw" --anchors "$PKI/sp-root.pem"
cli_ok "pki verify client against both anchors" pki verify "$tmp/alice-cert.pem" \
    --anchors "$PKI/mfg-root.pem,$PKI/sp-root.pem"

cli_ok "issue-server --dns x2 --legacy" pki issue-server --dir "$PKI" --dns admin.pki.test \
    --dns prov.pki.test --out "$tmp/admin.p12" --password-file "$tmp/pw" \
    --ca-password-file "$tmp/capw" --legacy
ossl_match "legacy PKCS#12: 3DES" "pbeWithSHA1And3-KeyTripleDES-CBC" \
    pkcs12 -info -noout -in "$tmp/admin.p12" -passin "file:$tmp/pw"
ossl_match "legacy PKCS#12: SHA-1 MAC" "MAC: sha1" pkcs12 -info -noout -in "$tmp/admin.p12" -passin "file:$tmp/pw"
openssl pkcs12 -in "$tmp/admin.p12" -passin "file:$tmp/pw" -nokeys -clcerts 2>/dev/null |
    openssl x509 -out "$tmp/admin-cert.pem"
ossl_match "openssl verify -purpose sslserver: TLS server certificate" "OK" verify -x509_strict \
    -purpose sslserver -CAfile "$PKI/sp-root.pem" -untrusted "$PKI/sp-ca.pem" "$tmp/admin-cert.pem"
openssl x509 -in "$tmp/admin-cert.pem" -noout -text >"$tmp/admin.txt"
assert_file_grep "server certificate: SAN dNSName x2" "DNS:admin\.pki\.test, DNS:prov\.pki\.test" "$tmp/admin.txt"
assert_file_grep "server certificate: EKU serverAuth" "TLS Web Server Authentication" "$tmp/admin.txt"

cli_ok "issue-client --key ec-p256 --days 30" pki issue-client --dir "$PKI" --principal carol \
    --out "$tmp/carol.p12" --password-file "$tmp/pw" --ca-password-file "$tmp/capw" \
    --key ec-p256 --days 30
cli_ok "show carol.p12" pki show "$tmp/carol.p12" --password-file "$tmp/pw"
assert_file_grep "an EC P-256 key" "Key: +EC prime256v1" "$tmp/cli.out"
na=$(grep -m1 'Not after:' "$tmp/cli.out" | sed 's/.*Not after: *//; s/ UTC//')
days=$(( ($(date -u -d "$na" +%s) - $(date +%s) + 3600) / 86400 ))
if [ "$days" = 30 ]; then ok "--days 30 gives a 30-day certificate"
else not_ok "--days 30 gives a 30-day certificate" "not after $na ($days days)"; fi

cli_fails "an existing --out is kept" 1 "already exists" pki issue-client --dir "$PKI" \
    --principal alice --out "$tmp/alice.p12" --password-file "$tmp/pw" --ca-password-file "$tmp/capw"
cli_ok "--force replaces it" pki issue-client --dir "$PKI" --principal alice --out "$tmp/alice.p12" \
    --password-file "$tmp/pw" --ca-password-file "$tmp/capw" --force

# ---------------------------------------------------------------------------------------------
# Heimdal's hx509 reads the PEM identities (it decrypts no OpenSSL 3 PKCS#12 here, see docs)

cli_ok "export alice.p12 to a PEM pair with --legacy (traditional encrypted key)" \
    pki export "$tmp/alice.p12" --password-file "$tmp/pw" --pem-out "$tmp/alice-h" --legacy
if head -n 3 "$tmp/alice-h-key.pem" | grep -q 'DEK-Info: AES-256-CBC'; then ok "legacy PEM key: AES-256-CBC DEK-Info"
else not_ok "legacy PEM key: AES-256-CBC DEK-Info" "$(head -n 3 "$tmp/alice-h-key.pem")"; fi
expect_output "hxtool finds the private key of the legacy PEM pair" "match found" \
    "$HXTOOL" query --private-key "--pass=PASS:$PW" "FILE:$tmp/alice-h-cert.pem,$tmp/alice-h-key.pem"
cli_ok "export --pem-nopass" pki export "$tmp/alice.p12" --password-file "$tmp/pw" \
    --pem-out "$tmp/alice-n" --pem-nopass
file_mode "an unencrypted PEM key is 0600" 600 "$tmp/alice-n-key.pem"
expect_output "hxtool finds the private key of the unencrypted PEM pair" "match found" \
    "$HXTOOL" query --private-key "FILE:$tmp/alice-n-cert.pem,$tmp/alice-n-key.pem"

# ---------------------------------------------------------------------------------------------
# Failure paths: one line on stderr, exit 1 (usage: 2), no secret in any output

cli_fails "missing password file" 1 "nosuch" pki issue-client --dir "$PKI" --principal dave \
    --out "$tmp/dave.p12" --password-file "$tmp/nosuch"
cli_fails "no --password-file and no terminal: usage error" 2 "password-file" \
    pki issue-client --dir "$PKI" --principal dave --out "$tmp/dave.p12"
cli_fails "wrong CA password" 1 "wrong password" pki issue-client --dir "$PKI" --principal dave \
    --out "$tmp/dave.p12" --password-file "$tmp/pw" --ca-password-file "$tmp/badpw"
[ -e "$tmp/dave.p12" ] && not_ok "nothing written after a failure" || ok "nothing written after a failure"
cli_fails "CA key unlocked with --password-file when --ca-password-file is absent" 1 "wrong password" \
    pki issue-client --dir "$PKI" --principal dave --out "$tmp/dave.p12" --password-file "$tmp/pw"
cli_fails "bad MAC address" 2 "MAC" pki issue-device --dir "$PKI" --mac 00:11:22:33:44 \
    --out "$tmp/x.p12" --password-file "$tmp/pw"
cli_fails "multicast MAC address" 2 "multicast" pki issue-device --dir "$PKI" --mac 01:00:5e:00:00:01 \
    --out "$tmp/x.p12" --password-file "$tmp/pw"
cli_fails "bad DNS name" 1 "DNS name" pki issue-server --dir "$PKI" --dns 'bad_name!' \
    --out "$tmp/x.p12" --password-file "$tmp/pw" --ca-password-file "$tmp/capw"
cli_fails "unknown key type" 2 "key type" pki issue-client --dir "$PKI" --principal x --key dsa \
    --out "$tmp/x.p12" --password-file "$tmp/pw"
cli_fails "a misplaced option" 2 "--mac does not apply" pki issue-client --dir "$PKI" --principal x \
    --mac 00:11:22:33:44:55 --out "$tmp/x.p12" --password-file "$tmp/pw"
cli_fails "unknown subcommand" 2 "unknown subcommand" pki frob
chmod 644 "$tmp/pw"
cli_fails "a password file others can read is refused" 1 "mode 0644" pki show "$tmp/alice.p12" \
    --password-file "$tmp/pw"
chmod 600 "$tmp/pw"
printf '\n' >"$tmp/emptypw"; chmod 600 "$tmp/emptypw"
cli_fails "an empty password is refused" 1 "empty password" pki show "$tmp/alice.p12" \
    --password-file "$tmp/emptypw"
cli_fails "show with a wrong PKCS#12 password" 1 "wrong password or corrupted" \
    pki show "$tmp/alice.p12" --password-file "$tmp/badpw"
head -c 600 "$tmp/alice.p12" >"$tmp/trunc.p12"
cli_fails "show of a truncated PKCS#12" 1 "PKCS#12" pki show "$tmp/trunc.p12" --password-file "$tmp/pw"
chmod 755 "$PKI"
cli_fails "a PKI directory others can enter is refused" 1 "mode 0755" pki issue-client --dir "$PKI" \
    --principal x --out "$tmp/x.p12" --password-file "$tmp/pw"
chmod 700 "$PKI"
mkdir -m 700 "$tmp/empty"
cli_fails "issue from a directory without a PKI" 1 "no pki.conf|holds no PKI" pki issue-client \
    --dir "$tmp/empty" --principal x --out "$tmp/x.p12" --password-file "$tmp/pw"
if grep -rqF -e "$PW" -e "$CAPW" "$tmp/all.out" "$tmp/cli.out" "$tmp/cli.err" "$PKI" "$tmp"/*.p12 "$tmp"/*-key.pem 2>/dev/null; then
    not_ok "no password appears in any output or file written"
else
    ok "no password appears in any output or file written"
fi

# ---------------------------------------------------------------------------------------------
# pki import: an operator's existing SP CA and KDC identity

openssl pkcs12 -export -passout "file:$tmp/pw" -in "$PKI/sp-ca.pem" -certfile "$PKI/sp-root.pem" \
    -inkey <(openssl pkey -in "$PKI/sp-ca-key.pem" -passin "file:$tmp/capw") -out "$tmp/ext-ca.p12" 2>"$tmp/ossl.err" ||
    bail "openssl pkcs12 -export of the SP CA" "$(cat "$tmp/ossl.err")"
cli_ok "pki import --ca (OpenSSL-made PKCS#12) --kdc" pki import --dir "$tmp/imported" \
    --ca "$tmp/ext-ca.p12" --kdc "$PKI/kdc.p12" --password-file "$tmp/pw"
if cmp -s "$PKI/sp-root.pem" "$tmp/imported/sp-root.pem" && grep -q "realm = \"$R\"" "$tmp/imported/pki.conf"; then
    ok "import: the root is the anchor, the realm comes from the KDC certificate"
else
    not_ok "import: the root is the anchor, the realm comes from the KDC certificate" "$(cat "$tmp/imported/pki.conf")"
fi
file_mode "import: directory 0700" 700 "$tmp/imported"
file_mode "import: files 0600" 600 "$tmp/imported"/*
cli_ok "issue-client from the imported CA" pki issue-client --dir "$tmp/imported" --principal erin \
    --out "$tmp/erin.p12" --password-file "$tmp/pw"
cli_ok "its certificate verifies against the original sp-root.pem" pki verify "$tmp/erin.p12" \
    --password-file "$tmp/pw" --anchors "$PKI/sp-root.pem"
cli_fails "import of a non-CA identity is refused" 1 "not a CA" pki import --dir "$tmp/imp2" \
    --ca "$tmp/alice.p12" --password-file "$tmp/pw" --realm "$R"

# ---------------------------------------------------------------------------------------------
# MIT PKINIT: MIT kinit against MIT krb5kdc, both on `cablekey pki` certificates. (The KDC-side
# PKINIT tests run the same helpers against cablekey-kdc.)

CK_KDC_IMPL=mit
realm_init "$R"
realm_addprinc alice --random
realm_addprinc bob --random
realm_addprinc host/svc.pki.test --random
realm_pkinit "$PKI" "$tmp/pw"
realm_start_kdc
expect_success "MIT kinit -X X509_user_identity=PKCS12:alice.p12 (DH)" \
    kinit_pkinit alice "$tmp/alice.p12" "$tmp/pw"
expect_output "klist: alice@$R has a TGT" "krbtgt/$R@$R" klist
assert_file_grep "MIT client matched the KDC's id-pkinit-san" \
    "matched KDC principal krbtgt/$R@$R against id-pkinit-san" "$KRB5_TRACE"
assert_log "AS_REQ .*ISSUE: .*alice@$R for krbtgt/$R@$R" "krb5kdc issued alice's TGT on her certificate"
expect_success "kvno host/svc.pki.test with the PKINIT TGT" kvno "host/svc.pki.test@$R"
expect_success "MIT kinit with RSA key transport (-X flag_RSA_PROTOCOL=yes)" \
    kinit_pkinit alice "$tmp/alice.p12" "$tmp/pw" -X flag_RSA_PROTOCOL=yes
assert_file_grep "the client used RSA key transport" "PKINIT client making RSA request" "$KRB5_TRACE"
expect_failure "bob's certificate does not get a TGT for alice" \
    "not (authorized|allowed)|[Cc]lient name mismatch|[Pp]reauthentication failed|[Nn]ot authorized" \
    kinit_pkinit alice "$tmp/bob.p12" "$tmp/pw"
# Heimdal's kinit with the PEM identity against the same KDC.
expect_success "Heimdal kinit -C FILE:alice-cert.pem,alice-key.pem (unencrypted PEM pair)" \
    env KRB5CCNAME="FILE:$tmp/hccache" KRB5_CONFIG="$tmp/krb5-heimdal-pkinit.conf" timeout -k 5 "$CK_TIMEOUT" "$HKINIT" \
    -C "FILE:$tmp/alice-n-cert.pem,$tmp/alice-n-key.pem" -D "FILE:$PKI/sp-root.pem" "alice@$R"
cp "$tmp/kdc.log" "$tmp/kdc-rsa.log"
realm_stop_kdc

# An elliptic-curve hierarchy (ECDSA signatures; MIT 1.20 still uses DH for the key exchange).
cli_ok "pki init --key ec-p256" pki init --dir "$tmp/ecpki" --realm "$R" --org "Cable EC" \
    --password-file "$tmp/pw" --key ec-p256
cli_ok "issue-client alice (EC)" pki issue-client --dir "$tmp/ecpki" --principal alice \
    --out "$tmp/alice-ec.p12" --password-file "$tmp/pw"
realm_pkinit "$tmp/ecpki" "$tmp/pw"
realm_start_kdc
expect_success "MIT kinit with an EC P-256 certificate, KDC on an EC P-256 identity" \
    kinit_pkinit alice "$tmp/alice-ec.p12" "$tmp/pw"
expect_output "klist: the EC login got a TGT" "krbtgt/$R@$R" klist
realm_stop_kdc

done_testing
