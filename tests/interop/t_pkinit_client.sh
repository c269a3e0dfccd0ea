#!/usr/bin/env bash
# Our PKINIT client (`cablekey mta login`, lib/pkinit/client.c) on `cablekey pki` certificates:
#  - against MIT's krb5kdc configured for PKINIT: Diffie-Hellman (MODP 2048 and 4096; MODP 3072,
#    which MIT refuses, retried in the group MIT names), RSA key transport, an EC client
#    certificate; MIT's klist reads the ccache we write and MIT's kvno gets a service ticket with
#    the TGT in it;
#  - the failure paths of `mta login` (wrong password, wrong anchor, missing files, device
#    certificate without --principal, a certificate for someone else, usage errors), each one
#    line on stderr with its exit code and no ccache written;
#  - against cablekey-kdc: DH, ECDH P-256 and P-384 (MIT 1.20 has no ECDH), RSA, and the
#    PacketCable form with a device certificate mapped through the device table, accepted under a
#    PacketCable anchor and refused from a client anchor, from a non-PacketCable device anchor and
#    after `cablekey device revoke`.
. "$(dirname "$0")/lib.sh"

require_tool "OpenSSL" openssl
require_tool "MIT client tools and KDC" klist kvno krb5kdc kdb5_util kadmin.local
[ -x "$CK_CLI" ] || bail "cablekey CLI not built at $CK_CLI"
compgen -G "/usr/lib/*/krb5/plugins/preauth/pkinit.so" >/dev/null ||
    compgen -G "/usr/lib/krb5/plugins/preauth/pkinit.so" >/dev/null ||
    bail "MIT PKINIT plugin missing (krb5-pkinit; run scripts/install-deps.sh)"

PW='Mta-Login-Never-Echo-3'
printf '%s\n' "$PW" >"$tmp/pw"; chmod 600 "$tmp/pw"
printf 'wrong-password\n' >"$tmp/badpw"; chmod 600 "$tmp/badpw"
PKI="$tmp/pki"
OTHER="$tmp/otherpki"
R=PKC.TEST

# cli_fails DESC EXIT PATTERN args... : exit code EXIT, exactly one stderr line matching PATTERN,
# nothing on stdout, and the password never in the output.
cli_fails() {
    local desc=$1 want=$2 pat=$3 rc lines; shift 3
    timeout 60 "$CK_CLI" "$@" </dev/null >"$tmp/cli.out" 2>"$tmp/cli.err"; rc=$?
    lines=$(wc -l <"$tmp/cli.err")
    if [ "$rc" = "$want" ] && [ "$lines" = 1 ] && grep -Eq -- "$pat" "$tmp/cli.err" &&
        [ ! -s "$tmp/cli.out" ] && ! grep -qF -- "$PW" "$tmp/cli.err"; then
        ok "$desc ($(cat "$tmp/cli.err"))"
    else
        not_ok "$desc" "exit $rc (want $want), $lines stderr lines (want 1 matching /$pat/):
$(head -n 5 "$tmp/cli.err")
stdout: $(head -n 3 "$tmp/cli.out")"
    fi
}

# login DESC PATTERN args... : `cablekey mta login` exits 0 with one stdout line matching PATTERN
# and nothing on stderr.
login() {
    local desc=$1 pat=$2 rc; shift 2
    timeout 60 "$CK_CLI" mta login "$@" </dev/null >"$tmp/cli.out" 2>"$tmp/cli.err"; rc=$?
    if [ $rc -eq 0 ] && [ "$(wc -l <"$tmp/cli.out")" = 1 ] && [ ! -s "$tmp/cli.err" ] &&
        grep -Eq -- "$pat" "$tmp/cli.out"; then
        ok "$desc ($(cat "$tmp/cli.out"))"
        return 0
    fi
    not_ok "$desc" "exit $rc; stdout: $(head -n 3 "$tmp/cli.out")
stderr: $(head -n 5 "$tmp/cli.err")"
    return 1
}

# klist_has DESC CCACHE PATTERN : MIT klist reads CCACHE and its output matches PATTERN.
klist_has() {
    expect_output "$1" "$3" env KRB5CCNAME="FILE:$2" klist -e
}

# ---------------------------------------------------------------------------------------------
# Certificates: the realm's PKI, a second unrelated PKI (wrong anchor), a client certificate for
# alice, a device certificate (MAC only, no id-pkinit-san), an EC client certificate.

expect_success "pki init (RSA hierarchy)" "$CK_CLI" pki init --dir "$PKI" --realm "$R" \
    --org "Cable Client Test" --password-file "$tmp/pw"
expect_success "pki init (a second, unrelated PKI)" "$CK_CLI" pki init --dir "$OTHER" \
    --realm "$R" --org "Someone Else" --password-file "$tmp/pw"
expect_success "issue-client alice" "$CK_CLI" pki issue-client --dir "$PKI" --principal alice \
    --out "$tmp/alice.p12" --password-file "$tmp/pw"
expect_success "issue-client bob" "$CK_CLI" pki issue-client --dir "$PKI" --principal bob \
    --out "$tmp/bob.p12" --password-file "$tmp/pw"
expect_success "issue-device 00:11:22:33:44:55" "$CK_CLI" pki issue-device --dir "$PKI" \
    --mac 00:11:22:33:44:55 --out "$tmp/mta.p12" --password-file "$tmp/pw"
expect_success "issue-client alice with an EC P-256 key" "$CK_CLI" pki issue-client --dir "$PKI" \
    --principal alice --key ec-p256 --out "$tmp/alice-ec.p12" --password-file "$tmp/pw"

MTA=("$CK_CLI" mta login)
COMMON=(--password-file "$tmp/pw" --realm "$R" --anchors "$PKI/sp-root.pem")

# ---------------------------------------------------------------------------------------------
# Against MIT krb5kdc.

CK_KDC_IMPL=mit
realm_init "$R"
realm_addprinc alice --random
realm_addprinc bob --random
realm_addprinc host/svc.pkc.test --random
realm_pkinit "$PKI" "$tmp/pw"
realm_start_kdc
KDC=(--kdc "127.0.0.1:$PORT")

login "MIT KDC: mta login, DH MODP 2048 (the default)" \
    "^alice@$R: krbtgt/$R@$R until .*, reply key aes256-cts-hmac-sha1-96, PKINIT DH modp2048 \(KDF sha256\), ccache $tmp/cc-dh$" \
    --identity "$tmp/alice.p12" "${COMMON[@]}" "${KDC[@]}" --ccache "$tmp/cc-dh"
assert_log "AS_REQ .*ISSUE: .*alice@$R for krbtgt/$R@$R" "krb5kdc issued alice's TGT"
klist_has "MIT klist reads the ccache: default principal alice" "$tmp/cc-dh" \
    "Default principal: alice@$R"
klist_has "MIT klist: the TGT with aes256 session key" "$tmp/cc-dh" \
    "Etype \(skey, tkt\): aes256-cts-hmac-sha1-96"
expect_success "MIT kvno gets a service ticket with our TGT" \
    env KRB5CCNAME="FILE:$tmp/cc-dh" kvno "host/svc.pkc.test@$R"
klist_has "MIT klist: the service ticket is in the ccache" "$tmp/cc-dh" "host/svc.pkc.test@$R"
assert_log "TGS_REQ .*ISSUE: .*alice@$R for host/svc.pkc.test@$R" "krb5kdc issued the service ticket"

# MIT 1.20 accepts MODP 2048 and 4096 only: it answers KDC_ERR_DH_KEY_PARAMETERS_NOT_ACCEPTED with
# TD-DH-PARAMETERS, and the client retries once with the first group listed.
login "MIT KDC refuses MODP 3072: the client retries with the group the KDC names" \
    "PKINIT DH modp2048 \(KDF sha256, group chosen by the KDC\)" \
    --identity "$tmp/alice.p12" "${COMMON[@]}" "${KDC[@]}" --ccache "$tmp/cc-3072" --dh modp3072
assert_file_grep "krb5kdc refused the 3072-bit group" "DH_KEY_PARAMETERS_NOT_ACCEPTED|Key parameters not accepted|[Kk]ey parameters" \
    "$tmp/kdc.log"
login "MIT KDC: DH MODP 4096" "PKINIT DH modp4096 \(KDF sha256\)" \
    --identity "$tmp/alice.p12" "${COMMON[@]}" "${KDC[@]}" --ccache "$tmp/cc-4096" --dh modp4096
login "MIT KDC: RSA key transport" \
    "^alice@$R: krbtgt/$R@$R until .*, reply key aes256-cts-hmac-sha1-96, PKINIT RSA, ccache $tmp/cc-rsa$" \
    --identity "$tmp/alice.p12" "${COMMON[@]}" "${KDC[@]}" --ccache "$tmp/cc-rsa" --dh rsa
klist_has "MIT klist reads the RSA-transport ccache" "$tmp/cc-rsa" "krbtgt/$R@$R"
expect_success "MIT kvno with the RSA-transport TGT" \
    env KRB5CCNAME="FILE:$tmp/cc-rsa" kvno "host/svc.pkc.test@$R"
login "MIT KDC: PKINIT in the first request (--preauth-first)" "PKINIT DH modp2048" \
    --identity "$tmp/alice.p12" "${COMMON[@]}" "${KDC[@]}" --ccache "$tmp/cc-first" --preauth-first
login "MIT KDC: aes128-cts-hmac-sha256-128 reply key (--enctypes)" \
    "reply key aes128-cts-hmac-sha256-128, PKINIT DH" \
    --identity "$tmp/alice.p12" "${COMMON[@]}" "${KDC[@]}" --ccache "$tmp/cc-sha2" \
    --enctypes aes128-cts-hmac-sha256-128
login "MIT KDC: an EC P-256 client certificate (ECDSA signature, DH key agreement)" \
    "^alice@$R: .*PKINIT DH modp2048" \
    --identity "$tmp/alice-ec.p12" "${COMMON[@]}" "${KDC[@]}" --ccache "$tmp/cc-ec"
expect_output "MIT KDC: KRB5CCNAME=FILE:... is the default ccache" "ccache $tmp/cc-env\$" \
    env KRB5CCNAME="FILE:$tmp/cc-env" "${MTA[@]}" --identity "$tmp/alice.p12" "${COMMON[@]}" "${KDC[@]}"
klist_has "MIT klist reads it" "$tmp/cc-env" "Default principal: alice@$R"
[ "$(stat -c %a "$tmp/cc-env")" = 600 ] && ok "the ccache is mode 0600" ||
    not_ok "the ccache is mode 0600" "$(stat -c %a "$tmp/cc-env")"

# Failures: one line on stderr, exit 1 (2 for usage), nothing on stdout, no ccache written.
cli_fails "wrong PKCS#12 password" 1 "^cablekey: mta login: .*(password|MAC)" \
    mta login --identity "$tmp/alice.p12" --password-file "$tmp/badpw" --realm "$R" \
    --anchors "$PKI/sp-root.pem" "${KDC[@]}" --ccache "$tmp/cc-fail"
cli_fails "KDC certificate from another PKI (wrong anchor)" 1 \
    "^cablekey: mta login: KDC certificate not trusted: " \
    mta login --identity "$tmp/alice.p12" --password-file "$tmp/pw" --realm "$R" \
    --anchors "$OTHER/sp-root.pem" "${KDC[@]}" --ccache "$tmp/cc-fail"
cli_fails "missing identity file" 1 "^cablekey: mta login: .*$tmp/nonexistent.p12" \
    mta login --identity "$tmp/nonexistent.p12" "${COMMON[@]}" "${KDC[@]}" --ccache "$tmp/cc-fail"
cli_fails "missing anchors file" 1 "^cablekey: mta login: --anchors $tmp/none.pem: " \
    mta login --identity "$tmp/alice.p12" --password-file "$tmp/pw" --realm "$R" \
    --anchors "$tmp/none.pem" "${KDC[@]}" --ccache "$tmp/cc-fail"
cli_fails "device certificate without --principal" 1 \
    "^cablekey: mta login: .*no principal .*give the principal" \
    mta login --identity "$tmp/mta.p12" "${COMMON[@]}" "${KDC[@]}" --ccache "$tmp/cc-fail"
cli_fails "bob's certificate for alice: the KDC refuses it" 1 \
    "^cablekey: mta login: PKINIT refused by the KDC: KRB-ERROR [0-9]+ " \
    mta login --identity "$tmp/bob.p12" "${COMMON[@]}" "${KDC[@]}" --principal alice \
    --ccache "$tmp/cc-fail"
cli_fails "RSA key transport with an EC key" 1 "needs an RSA key" \
    mta login --identity "$tmp/alice-ec.p12" "${COMMON[@]}" "${KDC[@]}" --dh rsa \
    --ccache "$tmp/cc-fail"
cli_fails "MIT's KDC does not take the PacketCable form" 1 "^cablekey: mta login: PKINIT" \
    mta login --identity "$tmp/alice.p12" "${COMMON[@]}" "${KDC[@]}" --packetcable \
    --ccache "$tmp/cc-fail"
[ ! -e "$tmp/cc-fail" ] && ok "no ccache was written by a failed login" ||
    not_ok "no ccache was written by a failed login"
cli_fails "unknown principal" 1 "KRB-ERROR 6 " \
    mta login --identity "$tmp/alice.p12" "${COMMON[@]}" "${KDC[@]}" --principal carol \
    --ccache "$tmp/cc-fail2"
cli_fails "no KDC answers" 1 "^cablekey: mta login: .*(timed out|no answer|refused|timeout)" \
    mta login --identity "$tmp/alice.p12" "${COMMON[@]}" --kdc "127.0.0.1:$(free_port)" --tcp \
    --ccache "$tmp/cc-fail2"
cli_fails "usage: --anchors missing" 2 "--anchors PEM is required" \
    mta login --identity "$tmp/alice.p12" --password-file "$tmp/pw" --realm "$R" "${KDC[@]}"
cli_fails "usage: --dh bogus" 2 "--dh: unknown 'modp1024'" \
    mta login --identity "$tmp/alice.p12" "${COMMON[@]}" "${KDC[@]}" --dh modp1024
cli_fails "usage: --packetcable with ECDH" 2 "RSA key transport only" \
    mta login --identity "$tmp/alice.p12" "${COMMON[@]}" "${KDC[@]}" --packetcable --dh p256
cli_fails "usage: --prov-server without --packetcable" 2 "needs --packetcable" \
    mta login --identity "$tmp/alice.p12" "${COMMON[@]}" "${KDC[@]}" --prov-server prov.test
cli_fails "usage: unknown option" 2 "unknown option '--bogus'" mta login --bogus
cli_fails "usage: unknown subcommand" 2 "unknown subcommand 'logout'" mta logout
expect_output "mta login --help exits 0 with the usage" "^usage: cablekey mta login" \
    "$CK_CLI" mta login --help
realm_stop_kdc
realm_destroy

# ---------------------------------------------------------------------------------------------
# Against cablekey-kdc: the same client, plus ECDH (MIT 1.20 has none) and the PacketCable form
# for a device whose manufacturer anchor is configured as a PacketCable anchor.

CK_KDC_IMPL=cablekey
realm_init "$R"
realm_addprinc alice --random
realm_addprinc mta-001122334455 --random
realm_addprinc host/svc.pkc.test --random
expect_success "device table: 00:11:22:33:44:55 -> mta-001122334455" "$CK_CLI" device add \
    --db "$DB" --mac 00:11:22:33:44:55 --principal mta-001122334455
realm_pkinit "$PKI" "$tmp/pw"
CK_KDC_PK=(--pkinit-identity "$PKI/kdc.p12" --pkinit-password-file "$tmp/pw"
           --pkinit-anchors "$PKI/sp-root.pem")
realm_start_kdc "${CK_KDC_PK[@]}" --pkinit-packetcable-anchors "$PKI/mfg-root.pem"
KDC=(--kdc "127.0.0.1:$PORT")

login "cablekey-kdc: DH MODP 2048" \
    "^alice@$R: krbtgt/$R@$R until .*, reply key aes256-cts-hmac-sha1-96, PKINIT DH modp2048 \(KDF sha256\), ccache $tmp/ck-dh$" \
    --identity "$tmp/alice.p12" "${COMMON[@]}" "${KDC[@]}" --ccache "$tmp/ck-dh"
assert_log "AS_REQ .*ISSUE: .*alice@$R for krbtgt/$R@$R" "cablekey-kdc issued alice's TGT"
klist_has "MIT klist reads the ccache" "$tmp/ck-dh" "Default principal: alice@$R"
expect_success "MIT kvno gets a service ticket from cablekey-kdc with our TGT" \
    env KRB5CCNAME="FILE:$tmp/ck-dh" kvno "host/svc.pkc.test@$R"
login "cablekey-kdc: ECDH P-256" "PKINIT ECDH P-256 \(KDF sha256\)" \
    --identity "$tmp/alice.p12" "${COMMON[@]}" "${KDC[@]}" --ccache "$tmp/ck-p256" --dh p256
klist_has "MIT klist reads the P-256 ccache" "$tmp/ck-p256" "krbtgt/$R@$R"
expect_success "MIT kvno with the ECDH P-256 TGT" \
    env KRB5CCNAME="FILE:$tmp/ck-p256" kvno "host/svc.pkc.test@$R"
login "cablekey-kdc: ECDH P-384" "PKINIT ECDH P-384 \(KDF sha256\)" \
    --identity "$tmp/alice.p12" "${COMMON[@]}" "${KDC[@]}" --ccache "$tmp/ck-p384" --dh p384
login "cablekey-kdc: ECDH P-256 with an EC P-256 client certificate" "PKINIT ECDH P-256" \
    --identity "$tmp/alice-ec.p12" "${COMMON[@]}" "${KDC[@]}" --ccache "$tmp/ck-ec" --dh p256
login "cablekey-kdc: DH MODP 4096" "PKINIT DH modp4096" \
    --identity "$tmp/alice.p12" "${COMMON[@]}" "${KDC[@]}" --ccache "$tmp/ck-4096" --dh modp4096
login "cablekey-kdc: RSA key transport" "PKINIT RSA, ccache $tmp/ck-rsa\$" \
    --identity "$tmp/alice.p12" "${COMMON[@]}" "${KDC[@]}" --ccache "$tmp/ck-rsa" --dh rsa
expect_success "MIT kvno with the RSA-transport TGT" \
    env KRB5CCNAME="FILE:$tmp/ck-rsa" kvno "host/svc.pkc.test@$R"
login "cablekey-kdc: PKINIT in the first request" "PKINIT DH modp2048" \
    --identity "$tmp/alice.p12" "${COMMON[@]}" "${KDC[@]}" --ccache "$tmp/ck-first" --preauth-first

# A device: the MAC in its certificate maps through the device table.
login "cablekey-kdc: device certificate, PacketCable form, PacketCable anchor" \
    "^mta-001122334455@$R: krbtgt/$R@$R until .*, reply key aes256-cts-hmac-sha1-96, PKINIT PacketCable RSA, ccache $tmp/ck-pc$" \
    --identity "$tmp/mta.p12" "${COMMON[@]}" "${KDC[@]}" --principal mta-001122334455 \
    --packetcable --prov-server prov.pkc.test --ccache "$tmp/ck-pc"
assert_log "AS_REQ .*ISSUE: .*mta-001122334455@$R for krbtgt/$R@$R" \
    "cablekey-kdc issued the device's TGT"
klist_has "MIT klist reads the device's ccache" "$tmp/ck-pc" "Default principal: mta-001122334455@$R"
expect_success "MIT kvno with the device's TGT" \
    env KRB5CCNAME="FILE:$tmp/ck-pc" kvno "host/svc.pkc.test@$R"
login "cablekey-kdc: the device in the RFC form (ECDH P-256)" "^mta-001122334455@$R: .*PKINIT ECDH P-256" \
    --identity "$tmp/mta.p12" "${COMMON[@]}" "${KDC[@]}" --principal mta-001122334455 \
    --dh p256 --ccache "$tmp/ck-dev"
cli_fails "cablekey-kdc: the PacketCable form from a client anchor is refused" 1 \
    "^cablekey: mta login: PKINIT refused by the KDC: KRB-ERROR [0-9]+ " \
    mta login --identity "$tmp/alice.p12" "${COMMON[@]}" "${KDC[@]}" --packetcable \
    --ccache "$tmp/ck-fail"
cli_fails "cablekey-kdc: wrong anchor on the client side" 1 "KDC certificate not trusted" \
    mta login --identity "$tmp/alice.p12" --password-file "$tmp/pw" --realm "$R" \
    --anchors "$OTHER/sp-root.pem" "${KDC[@]}" --ccache "$tmp/ck-fail"
cli_fails "cablekey-kdc: bob's certificate for alice" 1 "PKINIT refused by the KDC: KRB-ERROR 75 " \
    mta login --identity "$tmp/bob.p12" "${COMMON[@]}" "${KDC[@]}" --principal alice \
    --ccache "$tmp/ck-fail"
expect_success "cablekey device revoke 00:11:22:33:44:55" "$CK_CLI" device revoke --db "$DB" \
    --mac 00:11:22:33:44:55
cli_fails "cablekey-kdc: the revoked device's next login is refused" 1 \
    "PKINIT refused by the KDC: KRB-ERROR 18 " \
    mta login --identity "$tmp/mta.p12" "${COMMON[@]}" "${KDC[@]}" --principal mta-001122334455 \
    --packetcable --ccache "$tmp/ck-fail"
[ ! -e "$tmp/ck-fail" ] && ok "no ccache was written by the refused logins" ||
    not_ok "no ccache was written by the refused logins"
expect_success "cablekey device reinstate 00:11:22:33:44:55" "$CK_CLI" device reinstate \
    --db "$DB" --mac 00:11:22:33:44:55
realm_stop_kdc

# The manufacturer root as a plain device anchor (another manufacturer's root is the PacketCable
# one): the PacketCable form is refused for this device, the RFC form still works.
realm_start_kdc "${CK_KDC_PK[@]}" --pkinit-device-anchors "$PKI/mfg-root.pem" \
    --pkinit-packetcable-anchors "$OTHER/mfg-root.pem"
cli_fails "cablekey-kdc: PacketCable form from a non-PacketCable device anchor is refused" 1 \
    "^cablekey: mta login: PKINIT refused by the KDC: KRB-ERROR [0-9]+ " \
    mta login --identity "$tmp/mta.p12" "${COMMON[@]}" "${KDC[@]}" --principal mta-001122334455 \
    --packetcable --ccache "$tmp/ck-fail"
assert_log "PACKETCABLE_REFUSED: mta-001122334455@$R" "cablekey-kdc logged the refusal"
login "cablekey-kdc: the same device in the RFC form" "^mta-001122334455@$R: .*PKINIT DH modp2048" \
    --identity "$tmp/mta.p12" "${COMMON[@]}" "${KDC[@]}" --principal mta-001122334455 \
    --ccache "$tmp/ck-dev2"
realm_stop_kdc
done_testing
