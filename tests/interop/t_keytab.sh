#!/usr/bin/env bash
# Keytabs: `cablekey keytab export` read by MIT klist/kinit; key rotation keeps old kvnos usable.
. "$(dirname "$0")/lib.sh"

require_tool "MIT client tools" kinit klist kvno kdestroy
realm_init TEST.REALM
realm_addprinc alice alicepw
realm_addprinc host/svc.test --random
realm_start_kdc

SVC_KT="$tmp/svc.keytab"
USER_KT="$tmp/alice.keytab"

# kvno of PRINC in the current ccache (klist) or keytab: prints the number.
kt_max_kvno() { # kt_max_kvno KEYTAB PRINC
    timeout 10 klist -k "$1" 2>/dev/null | awk -v p="$2" '$2 == p { if ($1 > m) m = $1 } END { print m + 0 }'
}

expect_success "export a keytab for host/svc.test" realm_ktexport "$SVC_KT" host/svc.test@TEST.REALM
expect_success "export a keytab for alice" realm_ktexport "$USER_KT" alice@TEST.REALM
if [ -f "$SVC_KT" ] && [ "$(stat -c %a "$SVC_KT")" = 600 ]; then
    ok "exported keytab has mode 0600"
else
    ck_only "exported keytab has mode 0600" not_ok "exported keytab has mode 0600" "mode $(stat -c %a "$SVC_KT" 2>&1)"
fi
expect_output "klist -k -e lists host/svc.test with aes256-cts-hmac-sha1-96" \
    "host/svc\.test@TEST\.REALM \(aes256-cts-hmac-sha1-96\)" klist -k -e "$SVC_KT"
expect_output "klist -k -e lists host/svc.test with aes128-cts-hmac-sha1-96" \
    "host/svc\.test@TEST\.REALM \(aes128-cts-hmac-sha1-96\)" klist -k -e "$SVC_KT"
expect_output "klist -k -e lists alice" "alice@TEST\.REALM \(aes256-cts-hmac-sha1-96\)" klist -k -e "$USER_KT"

# kinit from a keytab (user and service principal).
expect_success "kinit -k -t alice.keytab alice" timeout "$CK_TIMEOUT" kinit -k -t "$USER_KT" alice
expect_output "klist shows alice's TGT" "Default principal: alice@TEST\.REALM" klist
assert_log "AS_REQ .*ISSUE: .*alice@TEST\.REALM for krbtgt/TEST\.REALM@TEST\.REALM" "KDC log: AS_REQ ISSUE for the keytab login"
expect_success "kinit -k -t svc.keytab host/svc.test" timeout "$CK_TIMEOUT" kinit -k -t "$SVC_KT" host/svc.test
expect_output "klist shows host/svc.test as default principal" "Default principal: host/svc\.test@TEST\.REALM" klist

# The service key in the keytab decrypts a ticket from the KDC: kvno -k verifies it.
kinit_pw alice alicepw >/dev/null 2>&1
expect_success "kvno -k svc.keytab host/svc.test verifies the ticket with the exported key" \
    timeout "$CK_TIMEOUT" kvno -k "$SVC_KT" host/svc.test@TEST.REALM
kvno_before=$(kt_max_kvno "$SVC_KT" host/svc.test@TEST.REALM)
cp "$tmp/ccache" "$tmp/ccache.before-rotation"

# Rotation of the service key: the new kvno works with a re-exported keytab.
expect_success "rotate host/svc.test" realm_rotate host/svc.test --random
expect_success "export the new key, appended to the service keytab" realm_ktexport_append "$SVC_KT" host/svc.test@TEST.REALM
kvno_after=$(kt_max_kvno "$SVC_KT" host/svc.test@TEST.REALM)
if [ "$kvno_after" -eq $((kvno_before + 1)) ]; then
    ok "the keytab now holds kvno $kvno_after (was $kvno_before)"
else
    not_ok "the keytab now holds kvno $((kvno_before + 1))" "kvno before $kvno_before after $kvno_after: $(klist -k "$SVC_KT" 2>&1)"
fi
expect_output "the keytab holds the old kvno $kvno_before too" "^ *$kvno_before host/svc\.test@TEST\.REALM" \
    klist -k "$SVC_KT"
expect_success "a service ticket obtained before the rotation still verifies with the keytab" \
    env KRB5CCNAME="FILE:$tmp/ccache.before-rotation" timeout "$CK_TIMEOUT" kvno -k "$SVC_KT" host/svc.test@TEST.REALM
timeout 10 kdestroy >/dev/null 2>&1
kinit_pw alice alicepw >/dev/null 2>&1
expect_output "kvno after rotation reports the new kvno" "host/svc\.test@TEST\.REALM: kvno = $kvno_after" \
    kvno host/svc.test@TEST.REALM
expect_success "kvno -k with the keytab verifies the new ticket" \
    timeout "$CK_TIMEOUT" kvno -k "$SVC_KT" host/svc.test@TEST.REALM

# Rotation of alice's key: the re-exported user keytab works, the old password no longer does.
expect_success "rotate alice with a new password" realm_rotate alice --password alicepw2
expect_success "re-export alice" realm_ktexport "$USER_KT" alice@TEST.REALM
expect_success "kinit -k -t with alice's re-exported keytab" timeout "$CK_TIMEOUT" kinit -k -t "$USER_KT" alice
expect_success "kinit alice with the new password" kinit_pw alice alicepw2
expect_failure "kinit alice with the old password fails" "Password incorrect|Preauthentication failed" kinit_pw alice alicepw

# Rotation of krbtgt: a TGT issued under the old krbtgt kvno keeps working.
kinit_pw alice alicepw2 >/dev/null 2>&1
expect_success "rotate krbtgt/TEST.REALM" realm_rotate krbtgt/TEST.REALM --random
expect_success "kvno with a TGT issued before the krbtgt rotation" kvno host/svc.test@TEST.REALM
expect_success "kinit after krbtgt rotation" kinit_pw alice alicepw2
expect_success "kvno with a TGT under the new krbtgt key" kvno host/svc.test@TEST.REALM

realm_stop_kdc
done_testing
