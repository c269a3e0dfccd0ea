#!/usr/bin/env bash
# Heimdal clients (kinit.heimdal, klist.heimdal, kgetcred) against our KDC: password and keytab.
. "$(dirname "$0")/lib.sh"

HKINIT="$CK_HEIMDAL_BIN/kinit.heimdal"
HTOOLS="$CK_HEIMDAL_BIN/heimtools"   # klist.heimdal is a symlink to it; it dispatches on argv[0]
HKDESTROY="$CK_HEIMDAL_BIN/kdestroy.heimdal"
HKGETCRED="$CK_HEIMDAL_BIN/kgetcred"
require_tool "Heimdal clients (scripts/install-deps.sh unpacks heimdal-clients)" "$HKINIT" "$HTOOLS" "$HKDESTROY"
require_tool "MIT klist" klist
realm_init TEST.REALM
realm_addprinc alice alicepw
realm_addprinc host/svc.test --random
realm_start_kdc

# Heimdal reads its own krb5.conf (same syntax; its libdefaults differ a little).
HCONF="$tmp/krb5-heimdal.conf"
write_krb5_conf "$HCONF" "127.0.0.1:$PORT"
export KRB5_CONFIG="$HCONF"
printf 'alicepw\n' >"$tmp/alice.pw"
chmod 600 "$tmp/alice.pw"

hklist() { timeout -k 5 "$CK_TIMEOUT" "$HTOOLS" klist "$@"; }
hkinit_pw() { # hkinit_pw PRINC PWFILE [args]
    local p=$1 f=$2; shift 2
    timeout -k 5 "$CK_TIMEOUT" "$HKINIT" --password-file="$f" "$@" "$p"
}
hkinit_stdin() {
    printf 'alicepw\n' | timeout -k 5 "$CK_TIMEOUT" "$HKINIT" --password-file=STDIN alice
}

expect_success "kinit.heimdal alice --password-file=FILE" hkinit_pw alice "$tmp/alice.pw"
expect_output "klist.heimdal shows krbtgt/TEST.REALM@TEST.REALM" "krbtgt/TEST\.REALM@TEST\.REALM" hklist
expect_output "klist.heimdal shows principal alice@TEST.REALM" "Principal: alice@TEST\.REALM" hklist
expect_output "MIT klist reads the Heimdal-written ccache" "krbtgt/TEST\.REALM@TEST\.REALM" klist
assert_log "AS_REQ .*ISSUE: authtime [0-9]+, etypes \{rep=$(et_re 18), tkt=$(et_re 18), ses=$(et_re 18)\}, alice@TEST\.REALM for krbtgt/TEST\.REALM@TEST\.REALM" \
    "KDC log: AS_REQ ISSUE for the Heimdal client"
expect_success "kdestroy.heimdal" timeout "$CK_TIMEOUT" "$HKDESTROY"

expect_success "kinit.heimdal --password-file=STDIN" hkinit_stdin
expect_output "klist.heimdal -v shows an aes256 session key" "aes256-cts-hmac-sha1-96" hklist -v

if [ -x "$HKGETCRED" ]; then
    expect_success "kgetcred host/svc.test@TEST.REALM (TGS via Heimdal)" "$HKGETCRED" host/svc.test@TEST.REALM
    expect_output "klist.heimdal shows host/svc.test" "host/svc\.test@TEST\.REALM" hklist
else
    not_ok "kgetcred host/svc.test@TEST.REALM (TGS via Heimdal)" "$HKGETCRED not installed"
fi

expect_failure "kinit.heimdal with a wrong password fails" "[Pp]assword incorrect|[Pp]reauthentication failed" \
    hkinit_pw alice <(printf 'wrong\n')

expect_success "kinit.heimdal -f -r 1d (forwardable, renewable)" hkinit_pw alice "$tmp/alice.pw" -f -r 1d
expect_output "klist.heimdal -f shows forwardable and renewable flags" "F.*R|R.*F" hklist -f
expect_success "kinit.heimdal -R (renew)" timeout "$CK_TIMEOUT" "$HKINIT" -R

# Keytab logins: user and service, with a keytab exported by our CLI.
KT="$tmp/heimdal.keytab"
expect_success "export alice and host/svc.test to a keytab" realm_ktexport "$KT" alice@TEST.REALM host/svc.test@TEST.REALM
expect_success "kinit.heimdal -k -t KEYTAB alice" timeout "$CK_TIMEOUT" "$HKINIT" -k -t "$KT" alice
expect_output "klist.heimdal shows alice after the keytab login" "Principal: alice@TEST\.REALM" hklist
expect_success "kinit.heimdal --keytab=FILE:KEYTAB host/svc.test" \
    timeout "$CK_TIMEOUT" "$HKINIT" --keytab="FILE:$KT" --use-keytab host/svc.test@TEST.REALM
expect_output "klist.heimdal shows host/svc.test as principal" "Principal: host/svc\.test@TEST\.REALM" hklist

# Heimdal over TCP only (krb5.conf kdc = tcp/127.0.0.1:PORT).
write_krb5_conf "$HCONF" "tcp/127.0.0.1:$PORT"
expect_success "kinit.heimdal over TCP (kdc = tcp/127.0.0.1:PORT)" hkinit_pw alice "$tmp/alice.pw"

realm_stop_kdc
done_testing
