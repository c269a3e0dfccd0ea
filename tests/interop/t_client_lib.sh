#!/usr/bin/env bash
# The client library (AS with password/keytab/prebuilt key, TGS, renewal, UDP/TCP transport,
# KRB-ERROR mapping, MIT ccache writer) driven by tests/tools/ck_client, first against a throwaway
# MIT krb5kdc realm (the reference), then against cablekey-kdc with the same checks.
# cablekey-kdc missing is a failure, never a skip.
. "$(dirname "$0")/lib.sh"

CK_CLIENT="$CK_BUILD/ck_client"
[ -x "$CK_CLIENT" ] || bail "ck_client not built at $CK_CLIENT"
require_tool "MIT KDC and client tools" kdb5_util kadmin.local krb5kdc klist kvno

# ck_client with the current realm and KDC, bounded by the timeout.
ckc() { # ckc CMD ARGS...
    local cmd=$1; shift
    timeout -k 5 "$CK_TIMEOUT" "$CK_CLIENT" "$cmd" --kdc "127.0.0.1:$PORT" --realm "$REALM" "$@"
}
# ckc_pw PW CMD ARGS... : password on stdin
ckc_pw() {
    local pw=$1; shift
    printf '%s\n' "$pw" | ckc "$@" --password-stdin
}

run_suite() { # run_suite LABEL
    local L=$1 e name
    declare -A ENAME=([17]=aes128-cts-hmac-sha1-96 [18]=aes256-cts-hmac-sha1-96
                      [19]=aes128-cts-hmac-sha256-128 [20]=aes256-cts-hmac-sha384-192)

    realm_init TEST.REALM
    realm_addprinc alice secret --max-renew 604800
    for e in 17 18 19 20; do
        realm_addprinc "u$e" "pw$e" --enctypes "${ENAME[$e]}"
    done
    realm_addprinc host/svc.test --random
    realm_addprinc ktclient --random
    realm_ktexport "$tmp/client.keytab" ktclient >/dev/null || bail "$L: export the client keytab"
    realm_start_kdc

    expect_output "$L: AS with a password gets krbtgt/TEST.REALM" \
        "OK: AS: got ticket for krbtgt/TEST\.REALM@TEST\.REALM, client alice@TEST\.REALM, session etype 18" \
        ckc_pw secret kinit alice
    for e in 17 18 19 20; do
        expect_output "$L: AS for a principal with only enctype $e keys (default etype list)" \
            "OK: AS: got ticket for krbtgt/TEST\.REALM@TEST\.REALM, client u$e@TEST\.REALM" \
            ckc_pw "pw$e" kinit "u$e"
        expect_output "$L: AS requesting only enctype $e: session key is $e" \
            "session etype $e, " ckc_pw secret kinit alice --enctype "$e"
    done
    expect_output "$L: AS with a keytab" \
        "OK: AS: got ticket for krbtgt/TEST\.REALM@TEST\.REALM, client ktclient@TEST\.REALM" \
        ckc kinit --keytab "$tmp/client.keytab" ktclient
    expect_output "$L: AS with PA-ENC-TIMESTAMP in the first request (--preauth-first)" \
        "OK: AS: got ticket for krbtgt" ckc_pw secret kinit alice --preauth-first
    expect_output "$L: AS over TCP" "OK: AS: got ticket for krbtgt" ckc_pw secret kinit alice --tcp
    expect_output "$L: TGS for host/svc.test" \
        "OK: TGS: got ticket for host/svc\.test@TEST\.REALM, client alice@TEST\.REALM" \
        ckc_pw secret kvno alice host/svc.test
    expect_output "$L: TGS with an authenticator subkey (reply under usage 9)" \
        "OK: TGS: got ticket for host/svc\.test@TEST\.REALM" \
        ckc_pw secret kvno alice host/svc.test --subkey
    realm_ktexport "$tmp/svc.keytab" host/svc.test >/dev/null || bail "$L: export the service keytab"
    expect_output "$L: AP-REQ with the service ticket verifies against the service keytab" \
        "OK: AP-REQ verified with the service keytab" \
        ckc_pw secret kvno alice host/svc.test --verify-keytab "$tmp/svc.keytab"
    expect_output "$L: replayed AP-REQ refused with KRB_AP_ERR_REPEAT (34)" \
        "OK: replayed AP-REQ refused with krb error 34" \
        ckc_pw secret kvno alice host/svc.test --verify-keytab "$tmp/svc.keytab"
    expect_output "$L: modified authenticator refused with KRB_AP_ERR_MODIFIED (41)" \
        "OK: modified authenticator refused with krb error 41" \
        ckc_pw secret kvno alice host/svc.test --verify-keytab "$tmp/svc.keytab"
    expect_output "$L: TGS over TCP with a keytab TGT" "OK: TGS: got ticket for host/svc\.test" \
        ckc kvno --keytab "$tmp/client.keytab" ktclient host/svc.test --tcp
    expect_output "$L: renewable TGT renewed through the TGS" \
        "OK: RENEW: got ticket for krbtgt/TEST\.REALM@TEST\.REALM" ckc_pw secret renew alice
    expect_failure "$L: wrong password fails with KRB-ERROR 24 or 31" \
        "krb error (24|31)\)" ckc_pw wrong kinit alice
    expect_failure "$L: unknown client fails with KRB-ERROR 6" "krb error 6\)" \
        ckc_pw secret kinit nobody
    expect_failure "$L: unknown service fails with KRB-ERROR 7" "TGS exchange: .*krb error 7\)" \
        ckc_pw secret kvno alice host/nonexistent.test

    # Our ccache is readable by MIT klist, and MIT kvno can use the TGT in it.
    rm -f "$tmp/ck.ccache"
    expect_output "$L: ck_client writes an MIT FILE ccache" "OK: wrote ccache" \
        ckc_pw secret kvno alice host/svc.test --ccache "$tmp/ck.ccache"
    expect_output "$L: MIT klist -c lists the TGT our client stored" \
        "krbtgt/TEST\.REALM@TEST\.REALM" klist -c "FILE:$tmp/ck.ccache"
    expect_output "$L: MIT klist -c lists the service ticket and default principal" \
        "Default principal: alice@TEST\.REALM" klist -c "FILE:$tmp/ck.ccache"
    expect_output "$L: MIT klist -c -e shows the session enctype" "aes256-cts-hmac-sha1-96" \
        klist -e -c "FILE:$tmp/ck.ccache"
    expect_success "$L: MIT kvno uses the TGT from our ccache" \
        env KRB5CCNAME="FILE:$tmp/ck.ccache" kvno -c "FILE:$tmp/ck.ccache" host/svc.test@TEST.REALM
    realm_stop_kdc

    # UDP replies limited to 512 bytes: the KDC answers KRB_ERR_RESPONSE_TOO_BIG and the client
    # must redo the exchange over TCP.
    CK_KDCDEFAULTS_EXTRA=("kdc_max_dgram_reply_size = 512")
    realm_start_kdc_conf
    expect_output "$L: AS falls back to TCP after KRB_ERR_RESPONSE_TOO_BIG over UDP" \
        "OK: AS: got ticket for krbtgt" ckc_pw secret kinit alice
    expect_output "$L: TGS falls back to TCP after KRB_ERR_RESPONSE_TOO_BIG over UDP" \
        "OK: TGS: got ticket for host/svc\.test" ckc_pw secret kvno alice host/svc.test
    realm_stop_kdc
    CK_KDCDEFAULTS_EXTRA=()
    realm_destroy
}

# No KDC at all: the UDP send is refused (ICMP) or times out; bounded either way.
PORT=$(free_port); REALM=TEST.REALM
expect_failure "no KDC listening: the client gives up with an error" "ERROR: AS exchange" \
    ckc_pw secret kinit alice --timeout 200 --tries 2
expect_output "KRB-SAFE/KRB-PRIV self test for enctypes 17 18 19 20" \
    "OK: KRB-PRIV enctype 20 round trip" "$CK_CLIENT" safe-priv-selftest

CK_KDC_IMPL=mit
run_suite "MIT krb5kdc"

CK_KDC_IMPL=cablekey
if [ ! -x "$CK_KDC" ] || [ ! -x "$CK_CLI" ]; then
    not_ok "cablekey-kdc not built (expected $CK_KDC and $CK_CLI)"
else
    run_suite "cablekey-kdc"
fi
done_testing
