#!/usr/bin/env bash
# Issue 10's "Done when": a device goes factory -> unprovisioned -> provisioned -> moved ->
# repaired (and returned) -> de-provisioned, driven from cablekey-prov's web console in a real
# browser (tests/browser/console_test.py --device-side: headless chromium through chromium-driver),
# with the whole system on loopback (tests/interop/prov_lib.sh: cablekey-kdc with provisioning and
# MTA-FQDN, cablekey-prov, cablekey-cms with provisioning_url, a `cablekey mta` phone adapter).
# After each console action the browser test calls a hook; this script answers it (a FIFO
# handshake, so that each check is one TAP case here): the device does what the seed says it does
# (fetches its certificate over the device channel, reboots, logs in again, drops a certificate on
# cablekey-prov's authenticated instruction), then the device table, cablekey-prov's record, the
# KDC's answer to the login, cablekey-cms's line table and the device's own state must agree.
# Screenshots: $LOG_DIR/artifacts (tests/run.sh), else a directory printed below.
CK_TIMEOUT=${CK_TIMEOUT:-90}
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/prov_lib.sh"

pl_require
require_tool "chromium (headless browser)" /usr/bin/chromium
require_tool "chromium-driver" /usr/bin/chromedriver
"$CK_PY" -c 'import selenium' 2>/dev/null ||
    bail "python3-selenium not installed (run scripts/install-deps.sh)"
TOP="$(cd "$CK_INTEROP_DIR/../.." && pwd)"
if [ -n "${LOG_DIR:-}" ]; then ART="$LOG_DIR/artifacts"; else ART="$(mktemp -d /tmp/ck-done-artifacts.XXXXXX)"; fi
mkdir -p "$ART" || bail "create the artifacts directory $ART"
echo "# screenshots: $ART"

pl_setup DONE.TEST
[ "$PL_CMS_PROV" = 1 ] && ok "cablekey-cms runs with provisioning_url" ||
    not_ok "cablekey-cms runs with provisioning_url (h/cmsprov)" "$(cat "$tmp/cms-check.log")"
MAC=00:1a:2b:3c:4d:5e
PR=mta-001a2b3c4d5e
pl_device D "$MAC"
pl_cms_opts
pl_prov_opts
KDC_START_PID=$KDC_PID

# Checks used by the hook; each is one TAP case.
line() {
    if grep -qF -- "$2" "$tmp/last.out"; then ok "$1"; else
        not_ok "$1" "no '$2' in: $(tail -n 8 "$tmp/last.out" "$tmp/last.err")"; fi
}
kdc_last() { # kdc_last DESC PATTERN : the KDC's latest AS line for the device matches
    local i l=""
    for i in $(seq 1 20); do
        l=$(grep -E "AS_REQ.*$PR@" "$tmp/kdc.log" 2>/dev/null | tail -n 1)
        grep -Eq -- "$2" <<<"$l" && { ok "$1"; return 0; }
        sleep 0.1
    done
    not_ok "$1" "last AS line: $l"
}
number() { pl_api GET "/devices/$MAC" >/dev/null; pl_json "','.join(d['numbers'])"; }
cms_line() { # cms_line add|remove NUMBER
    if [ "$PL_CMS_PROV" != 1 ]; then not_ok "cablekey-cms: line $1 $2" "no provisioning_url (h/cmsprov)"; return; fi
    if [ "$1" = add ]; then pl_cms_line_added "$2" "$PR"; else pl_cms_line_removed "$2"; fi &&
        ok "cablekey-cms: prov line $1 $2" ||
        not_ok "cablekey-cms: prov line $1 $2" "$(grep 'prov line' "$tmp/cms.log" | tail -n 4)"
}
call_bob() { # call_bob DESC connected|unknown-number : the device calls bob's line
    local rc
    [ "$2" = connected ] && { pl_phone_answer bob "$tmp/bob.cc" || not_ok "bob's phone registers" "$(tail -n 5 "$tmp/phone-bob.err")"; }
    pl_phone_dial dev "$(pl_devdir D)/ccache" "$PL_BOB_NUMBER"; rc=$?
    if [ "$2" = connected ]; then
        [ $rc -eq 0 ] && grep -Eq '^call [0-9A-F]{32} connected ' "$tmp/phone-dev.out" && ok "$1" ||
            not_ok "$1" "exit $rc: $(cat "$tmp/phone-dev.out"; tail -n 4 "$tmp/phone-dev.err")"
        pl_phone_stop
    else
        grep -Eq "^call failed reason=$2" "$tmp/phone-dev.out" && ok "$1" ||
            not_ok "$1" "exit $rc: $(cat "$tmp/phone-dev.out"; tail -n 4 "$tmp/phone-dev.err")"
    fi
}
bob_calls() { # bob_calls DESC NUMBER connected|unknown-number : bob dials the device's number
    local rc
    if [ "$3" = connected ]; then
        pl_phone_answer dev-answer "$(pl_devdir D)/ccache" ||
            not_ok "the device registers to answer" "$(tail -n 5 "$tmp/phone-dev-answer.err")"
    fi
    pl_phone_dial bob "$tmp/bob.cc" "$2"; rc=$?
    if [ "$3" = connected ]; then
        [ $rc -eq 0 ] && grep -Eq '^call [0-9A-F]{32} connected ' "$tmp/phone-bob.out" && ok "$1" ||
            not_ok "$1" "exit $rc: $(cat "$tmp/phone-bob.out"; tail -n 4 "$tmp/phone-bob.err")"
        pl_phone_stop
    else
        grep -Eq "^call failed reason=$3" "$tmp/phone-bob.out" && ok "$1" ||
            not_ok "$1" "exit $rc: $(cat "$tmp/phone-bob.out"; tail -n 4 "$tmp/phone-bob.err")"
    fi
}
operator_login() { # the device fetches its certificate, reboots, logs in with it (FIG. 7)
    expect_success "$1: the device fetches its certificate (device channel) and acknowledges it" \
        pl_mta D fetch-cert
    expect_success "$1: the device reboots" pl_mta D reboot
    expect_success "$1: the device logs in again" pl_mta D boot "${PL_CMS_OPTS[@]}"
    line "$1: PKINIT with the operator certificate" "-> Provisioned Telephony Access (PKINIT ok with the operator certificate)"
    kdc_last "$1: the KDC gives full service, confirmed over MTA-FQDN" \
        "ISSUE: .*mta-fqdn $PR\\.mta\\.flows\\.test, operator cert"
}

NUM=""
hook_step() { # hook_step STEP : the device acts, the views are compared
    local old
    case $1 in
        found)
            pl_agree "found: unprovisioned everywhere" D "$MAC" unprovisioned unprovisioned 560
            call_bob "found: the restricted device cannot call $PL_BOB_NUMBER" unknown-number
            ;;
        provisioned)
            NUM=$(number)
            pl_agree "provisioned: before the device knows" D "$MAC" active provisioned 560
            cms_line add "$NUM"
            operator_login provisioned
            pl_agree "provisioned: full service" D "$MAC" active provisioned 580
            call_bob "provisioned: the device calls $PL_BOB_NUMBER" connected
            ;;
        moved)
            old=$NUM; NUM=$(number)
            [ "$NUM" != "$old" ] && ok "moved: a new number ($old -> $NUM)" || not_ok "moved: a new number" "$NUM"
            cms_line remove "$old"
            cms_line add "$NUM"
            expect_success "moved: the new head-end registers the device" pl_mta D hfc-register --ip 10.2.0.5
            expect_success "moved: the device logs in (old certificate superseded)" pl_mta D boot "${PL_PROV_OPTS[@]}"
            line "moved: the superseded certificate is dropped on prov's instruction" "(authenticated DROP instruction)"
            operator_login moved
            pl_agree "moved" D "$MAC" active provisioned 580
            bob_calls "moved: bob reaches the device at its new number" "$NUM" connected
            bob_calls "moved: the old number is gone" "$old" unknown-number
            ;;
        repair)
            expect_success "repair: the technician wipes the certificate" pl_mta D reset-cert
            expect_success "repair: the device logs in at the facility" pl_mta D boot
            operator_login repair
            local na life
            na=$(openssl x509 -in "$(pl_devdir D)/operator.pem" -noout -enddate | cut -d= -f2)
            life=$(( $(date -d "$na" +%s) - $(date +%s) ))
            [ "$life" -le $((4 * 3600 + 600)) ] && ok "repair: a short-validity certificate ($life s left)" ||
                not_ok "repair: a short-validity certificate" "$life s"
            pl_agree "repair" D "$MAC" active repair 580
            ;;
        returned)
            expect_success "returned: the test certificate is deleted" pl_mta D reset-cert
            expect_success "returned: the device logs in unprovisioned" pl_mta D boot
            operator_login returned
            pl_agree "returned" D "$MAC" active provisioned 580
            ;;
        deprovisioned)
            pl_agree "de-provisioned: before the device knows" D "$MAC" unprovisioned unprovisioned 580
            cms_line remove "$NUM"
            expect_success "de-provisioned: the device's next login" pl_mta D boot "${PL_PROV_OPTS[@]}" "${PL_CMS_OPTS[@]}"
            grep -Eq "OPERATOR_CERT_NOT_CURRENT: $PR@" "$tmp/kdc.log" &&
                ok "de-provisioned: the KDC refused the operator certificate, live" ||
                not_ok "de-provisioned: the KDC refused the operator certificate, live"
            line "de-provisioned: the certificate dropped on prov's instruction" "(authenticated DROP instruction)"
            [ "$KDC_PID" = "$KDC_START_PID" ] && ok "de-provisioned: no KDC restart" || not_ok "de-provisioned: no KDC restart"
            pl_agree "de-provisioned" D "$MAC" unprovisioned unprovisioned 560
            bob_calls "de-provisioned: the number is gone" "$NUM" unknown-number
            ;;
        *) not_ok "hook: unknown step $1" ;;
    esac
}

# -- factory -> unprovisioned: the device logs in and keys IPsec with cablekey-cms ---------------
expect_success "factory: the head-end registers the device" pl_mta D hfc-register --ip 10.1.0.42
expect_success "factory: the device logs in with its manufacturer certificate" pl_mta D boot "${PL_CMS_OPTS[@]}"
kdc_last "the KDC admits it unprovisioned, restricted" "ISSUE: .*unprovisioned device $MAC admitted"
if [ "$PL_CMS_PROV" = 1 ]; then
    wait_file_grep "$tmp/cms.log" "prov report mac=$MAC ip=127\\.0\\.0\\.1 result=ok" &&
        ok "cablekey-cms reports the device to cablekey-prov" ||
        not_ok "cablekey-cms reports the device to cablekey-prov" "$(grep 'prov ' "$tmp/cms.log" | tail -n 3)"
else
    not_ok "cablekey-cms reports the device to cablekey-prov" "no provisioning_url (h/cmsprov)"
    KRB5CCNAME="FILE:$tmp/cms-svc.cc" kinit -k -t "$tmp/cms.keytab" "$CMS_SVC" >/dev/null 2>&1
    KRB5CCNAME="FILE:$tmp/cms-svc.cc" curl -s -o /dev/null --negotiate -u : -H 'Content-Type: application/json' \
        -d "{\"mac\":\"$MAC\",\"ip\":\"127.0.0.1\"}" "$URL/api/v1/devices/report"
fi
# -- the browser, with the hook answered here ----------------------------------------------------
mkfifo "$tmp/hook.req" "$tmp/hook.rep" || bail "mkfifo"
cat >"$tmp/hook.sh" <<EOF
#!/usr/bin/env bash
echo "\$1" >"$tmp/hook.req"
read -r res <"$tmp/hook.rep"
echo "\$res"
[ "\${res%% *}" = ok ]
EOF
chmod +x "$tmp/hook.sh"
exec 3<>"$tmp/hook.req"
"$CK_PY" "$TOP/tests/browser/console_test.py" --device-side --shot-prefix done --url "http://127.0.0.1:$HPORT" --principal csr1 \
    --password-file "$tmp/csr1.pw" --ip 127.0.0.1 --mac "$MAC" --segment north \
    --move-segment south --artifacts "$ART" --hook "$tmp/hook.sh" --timeout 30 \
    --hook-timeout 400 >"$tmp/browser.out" 2>"$tmp/browser.err" &
BR_PID=$!
CK_BG_PIDS+=("$BR_PID")
while kill -0 "$BR_PID" 2>/dev/null; do
    step=""
    read -r -t 2 -u 3 step || continue
    f0=$T_FAIL
    echo "# console step: $step"
    hook_step "$step"
    if [ "$T_FAIL" = "$f0" ]; then echo "ok" >"$tmp/hook.rep"
    else echo "fail $((T_FAIL - f0)) checks failed after $step" >"$tmp/hook.rep"; fi
done
wait "$BR_PID"; brc=$?
exec 3>&-
while IFS= read -r l; do
    case "$l" in
        "STEP ok "*) ok "console: ${l#STEP ok }" ;;
        "STEP fail "*) not_ok "console: ${l#STEP fail }" ;;
    esac
done <"$tmp/browser.out"
grep -q '^STEP ' "$tmp/browser.out" || not_ok "the browser test ran" "exit $brc: $(tail -n 20 "$tmp/browser.err")"
[ $brc -eq 0 ] || ck_diag "browser test exit $brc; stderr: $(tail -n 10 "$tmp/browser.err")"
n=$(ls "$ART"/done-*.png 2>/dev/null | wc -l)
[ "$n" -ge 8 ] && ok "a screenshot after each console action ($n in $ART)" ||
    not_ok "a screenshot after each console action" "$n screenshots in $ART"

expect_output "the history (CLI): every console action, newest first" "deprovision" \
    env KRB5CCNAME="FILE:$tmp/ops.cc" "$CK_CLI" device history --server "$URL" --mac "$MAC"
acts=$(grep -E '^[0-9]{4}-' "$tmp/last.out" | cut -f2 | grep -E '^(provision|move|repair|return|deprovision)$' | head -5 | tr '\n' ' ')
[ "$acts" = "deprovision return repair move provision " ] && ok "history: provision move repair return deprovision" ||
    not_ok "history: provision move repair return deprovision" "$acts"
webhooks=$(grep -c '^OK device\.' "$tmp/webhook.log")
grep -q '^BAD' "$tmp/webhook.log" && not_ok "every webhook delivery verified" "$(grep '^BAD' "$tmp/webhook.log" | head -3)" ||
    ok "every webhook delivery verified ($webhooks device events)"
for e in provisioned moved repair returned deprovisioned; do
    grep -q "^OK device\\.$e .*\"$MAC\"" "$tmp/webhook.log" && ok "webhook device.$e delivered" ||
        not_ok "webhook device.$e delivered" "$(cut -c1-120 "$tmp/webhook.log" | tail -n 5)"
done
kdc_alive "the KDC served every step"
pl_stop
done_testing
