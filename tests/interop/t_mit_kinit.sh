#!/usr/bin/env bash
# MIT kinit/klist/kvno/kdestroy against our KDC: password login, service ticket, renewal,
# forwardable flag, requested and clamped lifetimes, and the KDC's per-request log lines.
. "$(dirname "$0")/lib.sh"

require_tool "MIT client tools" kinit klist kvno kdestroy
realm_init TEST.REALM
realm_addprinc alice alicepw --max-life 36000 --max-renew 604800
realm_addprinc host/svc.test --random
realm_start_kdc

# Password login: AS exchange with preauth (NEEDED_PREAUTH, then ISSUE).
expect_success "kinit alice with a password on stdin" kinit_pw alice alicepw
expect_output "klist shows krbtgt/TEST.REALM@TEST.REALM" "krbtgt/TEST\.REALM@TEST\.REALM" klist
expect_output "klist shows the default principal alice@TEST.REALM" "Default principal: alice@TEST\.REALM" klist
assert_log "AS_REQ \([0-9]+ etypes \{[^}]*\}\) 127\.0\.0\.1: NEEDED_PREAUTH: alice@TEST\.REALM for krbtgt/TEST\.REALM@TEST\.REALM" \
    "KDC log: AS_REQ NEEDED_PREAUTH for alice"
assert_log "AS_REQ \([0-9]+ etypes \{[^}]*\}\) 127\.0\.0\.1: ISSUE: authtime [0-9]+, etypes \{rep=$(et_re 18), tkt=$(et_re 18), ses=$(et_re 18)\}, alice@TEST\.REALM for krbtgt/TEST\.REALM@TEST\.REALM" \
    "KDC log: AS_REQ ISSUE with etypes {rep=18, tkt=18, ses=18}"
expect_output "klist -e: TGT ticket and session key are aes256-cts-hmac-sha1-96" \
    "Etype \(skey, tkt\): aes256-cts-hmac-sha1-96, aes256-cts-hmac-sha1-96" klist -e

# Service ticket through the TGS.
expect_success "kvno host/svc.test@TEST.REALM" kvno host/svc.test@TEST.REALM
expect_output "klist shows host/svc.test@TEST.REALM" "[0-9]  +host/svc\.test@TEST\.REALM$" klist
assert_log "TGS_REQ \([0-9]+ etypes \{[^}]*\}\) 127\.0\.0\.1: ISSUE: authtime [0-9]+, etypes \{rep=$(et_re 18), tkt=$(et_re 18), ses=$(et_re 18)\}, alice@TEST\.REALM for host/svc\.test@TEST\.REALM" \
    "KDC log: TGS_REQ ISSUE for host/svc.test"

# Renewable TGT and renewal.
expect_success "kinit -r 1d (renewable TGT)" kinit_pw alice alicepw -r 1d
t=$(klist_times "krbtgt/TEST\.REALM@TEST\.REALM")
read -r start1 end1 renew1 <<<"${t:-0 0 0}"
if [ "$renew1" -gt "$start1" ] && [ $((renew1 - start1)) -le $((86400 + 120)) ] &&
   [ $((renew1 - start1)) -ge $((86400 - 120)) ]; then
    ok "renewable TGT: renew until = start + 1 day"
else
    not_ok "renewable TGT: renew until = start + 1 day" "klist times: $t; $(cat "$tmp/klist.out")"
fi
case $(klist_flags "krbtgt/TEST\.REALM@TEST\.REALM") in
    *R*) ok "klist -f shows the R (renewable) flag" ;;
    *) not_ok "klist -f shows the R (renewable) flag" "$(klist -f 2>&1)" ;;
esac
sleep 1.1
expect_success "kinit -R renews the TGT" timeout "$CK_TIMEOUT" kinit -R
t=$(klist_times "krbtgt/TEST\.REALM@TEST\.REALM")
read -r start2 end2 renew2 <<<"${t:-0 0 0}"
if [ "$start2" -gt "$start1" ] && [ "$renew2" -eq "$renew1" ]; then
    ok "renewed TGT starts later and keeps the renew-till time"
else
    not_ok "renewed TGT starts later and keeps the renew-till time" "before: $start1 $end1 $renew1, after: $t"
fi
assert_log "TGS_REQ .*ISSUE: authtime [0-9]+, .*alice@TEST\.REALM for krbtgt/TEST\.REALM@TEST\.REALM" \
    "KDC log: renewal is a TGS_REQ ISSUE for krbtgt"

# Forwardable / not forwardable.
expect_success "kinit -f (forwardable)" kinit_pw alice alicepw -f
case $(klist_flags "krbtgt/TEST\.REALM@TEST\.REALM") in
    *F*) ok "klist -f shows F after kinit -f" ;;
    *) not_ok "klist -f shows F after kinit -f" "$(klist -f 2>&1)" ;;
esac
expect_success "kinit -F (not forwardable)" kinit_pw alice alicepw -F
case $(klist_flags "krbtgt/TEST\.REALM@TEST\.REALM") in
    *F*) not_ok "klist -f shows no F after kinit -F" "$(klist -f 2>&1)" ;;
    "") not_ok "klist -f shows no F after kinit -F" "no flags line: $(klist -f 2>&1)" ;;
    *) ok "klist -f shows no F after kinit -F" ;;
esac

# Lifetimes: a short request is honoured, a huge one is clamped to the principal's max life (10 h).
expect_success "kinit -l 5m" kinit_pw alice alicepw -l 5m
t=$(klist_times "krbtgt/TEST\.REALM@TEST\.REALM")
read -r s e r <<<"${t:-0 0 0}"
if [ $((e - s)) -ge 240 ] && [ $((e - s)) -le 360 ]; then
    ok "kinit -l 5m: ticket lifetime is 5 minutes ($((e - s)) s)"
else
    not_ok "kinit -l 5m: ticket lifetime is 5 minutes" "lifetime $((e - s)) s; $(cat "$tmp/klist.out")"
fi
expect_success "kinit -l 100d" kinit_pw alice alicepw -l 100d
t=$(klist_times "krbtgt/TEST\.REALM@TEST\.REALM")
read -r s e r <<<"${t:-0 0 0}"
if [ $((e - s)) -gt 3600 ] && [ $((e - s)) -le $((36000 + 60)) ]; then
    ok "kinit -l 100d: lifetime clamped to the 10 h max life ($((e - s)) s)"
else
    not_ok "kinit -l 100d: lifetime clamped to the 10 h max life" "lifetime $((e - s)) s; $(cat "$tmp/klist.out")"
fi

# kdestroy.
expect_success "kdestroy" timeout "$CK_TIMEOUT" kdestroy
expect_failure "klist after kdestroy finds no credentials" "No credentials cache found|not found" klist

realm_stop_kdc
done_testing
