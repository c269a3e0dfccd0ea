#!/usr/bin/env bash
# Each AES enctype alone (17, 18, 19, 20): a realm whose only enctype it is, and a client limited
# to it. MIT kinit + kvno succeed and klist -e / the KDC log show that enctype everywhere.
. "$(dirname "$0")/lib.sh"

require_tool "MIT client tools" kinit klist kvno
declare -A ET_NAME=(
    [17]=aes128-cts-hmac-sha1-96 [18]=aes256-cts-hmac-sha1-96
    [19]=aes128-cts-hmac-sha256-128 [20]=aes256-cts-hmac-sha384-192
)

for et in 17 18 19 20; do
    name=${ET_NAME[$et]}
    realm_init TEST.REALM "$name"
    realm_addprinc alice alicepw
    realm_addprinc host/svc.test --random
    write_krb5_conf "$KRB5_CONFIG" "127.0.0.1:$PORT" \
        "permitted_enctypes = $name" "default_tkt_enctypes = $name" "default_tgs_enctypes = $name"
    realm_start_kdc

    expect_success "[$et] kinit alice (realm and client limited to $name)" kinit_pw alice alicepw
    expect_output "[$et] klist -e: TGT session key and ticket are $name" \
        "Etype \(skey, tkt\): $name, $name" klist -e
    assert_log "AS_REQ \(1 etypes \{$(et_re "$et")\}\) 127\.0\.0\.1: ISSUE: authtime [0-9]+, etypes \{rep=$(et_re "$et"), tkt=$(et_re "$et"), ses=$(et_re "$et")\}, alice@TEST\.REALM" \
        "[$et] KDC log: AS_REQ ISSUE etypes {rep=$et, tkt=$et, ses=$et}"
    expect_success "[$et] kvno host/svc.test" kvno host/svc.test@TEST.REALM
    e=$(klist_etypes "host/svc\.test@TEST\.REALM")
    if [ "$e" = "$name $name" ]; then
        ok "[$et] klist -e: service ticket and session key are $name"
    else
        not_ok "[$et] klist -e: service ticket and session key are $name" "got '$e'; $(klist -e 2>&1)"
    fi
    assert_log "TGS_REQ .*ISSUE: authtime [0-9]+, etypes \{rep=$(et_re "$et"), tkt=$(et_re "$et"), ses=$(et_re "$et")\}, alice@TEST\.REALM for host/svc\.test@TEST\.REALM" \
        "[$et] KDC log: TGS_REQ ISSUE etypes {rep=$et, tkt=$et, ses=$et}"
    realm_ktexport "$tmp/svc.keytab" host/svc.test@TEST.REALM >/dev/null 2>&1
    expect_output "[$et] exported keytab holds only $name" "\($name\)" klist -k -e "$tmp/svc.keytab"
    kt_lines=$(timeout 10 klist -k -e "$tmp/svc.keytab" 2>/dev/null | grep -E '^ +[0-9]+ ')
    if [ -z "$kt_lines" ] || grep -vqF "($name)" <<<"$kt_lines"; then
        not_ok "[$et] no other enctype in the keytab" "$(klist -k -e "$tmp/svc.keytab" 2>&1)"
    else
        ok "[$et] no other enctype in the keytab"
    fi
    expect_success "[$et] kvno -k verifies the service ticket with the exported $name key" \
        kvno -k "$tmp/svc.keytab" host/svc.test@TEST.REALM
    realm_stop_kdc
    realm_destroy
done

# A realm with all four enctypes; the client permits only one: the session keys follow the client,
# a principal created with a single enctype gets tickets in that enctype.
realm_init TEST.REALM
realm_addprinc alice alicepw
for et in 17 18 19 20; do
    realm_addprinc "host/svc$et.test" --random --enctypes "${ET_NAME[$et]}"
done
realm_start_kdc
for et in 17 18 19 20; do
    name=${ET_NAME[$et]}
    write_krb5_conf "$KRB5_CONFIG" "127.0.0.1:$PORT" "permitted_enctypes = $name" \
        "default_tkt_enctypes = $name" "default_tgs_enctypes = $name"
    timeout 10 kdestroy >/dev/null 2>&1
    expect_success "[all/$et] kinit with the client limited to $name" kinit_pw alice alicepw
    e=$(klist_etypes "krbtgt/TEST\.REALM@TEST\.REALM")
    case $e in
        "$name "*) ok "[all/$et] TGT session key is $name" ;;
        *) not_ok "[all/$et] TGT session key is $name" "got '$e'" ;;
    esac
    expect_success "[all/$et] kvno host/svc$et.test (single-enctype service)" kvno "host/svc$et.test@TEST.REALM"
    e=$(klist_etypes "host/svc$et\.test@TEST\.REALM")
    if [ "$e" = "$name $name" ]; then ok "[all/$et] service ticket and session key are $name"
    else not_ok "[all/$et] service ticket and session key are $name" "got '$e'"; fi
done
# Default client (all enctypes): a single-enctype service still gets its own enctype for the ticket.
write_krb5_conf "$KRB5_CONFIG" "127.0.0.1:$PORT"
timeout 10 kdestroy >/dev/null 2>&1
expect_success "[all] kinit with a default client" kinit_pw alice alicepw
expect_success "[all] kvno host/svc17.test with a default client" kvno host/svc17.test@TEST.REALM
e=$(klist_etypes "host/svc17\.test@TEST\.REALM")
case $e in
    *" aes128-cts-hmac-sha1-96") ok "[all] ticket for the aes128-only service is aes128-cts-hmac-sha1-96 ($e)" ;;
    *) not_ok "[all] ticket for the aes128-only service is aes128-cts-hmac-sha1-96" "got '$e'" ;;
esac
realm_stop_kdc
done_testing
