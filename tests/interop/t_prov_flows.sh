#!/usr/bin/env bash
# The flows of seed 002 end to end on loopback with the project's own daemons (issue 10, part 2;
# tests/interop/prov_lib.sh): cablekey-kdc (pkinit_provisioning, the provisioning CA as operator
# anchor, MTA-FQDN to cablekey-prov), cablekey-prov (API, device channel, MTA-FQDN, a webhook to
# a receiver that verifies its signatures), cablekey-cms (provisioning_url: reports and the line
# table) and phone adapters simulated by `cablekey mta`. After each step the device table
# (cablekey device show), cablekey-prov's record (the API, with its kdc_state), the KDC (the next
# login's result), cablekey-cms (its `prov line add/remove` lines, whether a call routes) and the
# device (`cablekey mta status`) must agree:
#   FIG. 7   a factory-fresh device: manufacturer-certificate PKINIT -> admitted unprovisioned,
#            restricted ticket (611 yes, another number no); reported by cms; the CSR's CLI
#            provisions it; the webhook delivered and verified; the device fetches its operator
#            certificate over the Kerberos-authenticated device channel and acknowledges it;
#            reboot -> PKINIT with the operator certificate (MTA-FQDN confirmed) -> full service:
#            calls both ways with another line;
#   re-use   a device holding another operator's certificate: PKINIT refused, the certificate
#            kept on the bare KRB-ERROR and on an unauthenticated DROP, dropped on cablekey-prov's
#            authenticated DROP;
#   FIG. 8   de-provisioning: the line removed, the device's full-service TGT refused by the TGS
#            and its operator certificate at the next login, live (same KDC process);
#   FIG. 9   change of service (same certificate), and with a re-issued certificate;
#   FIG. 10  segment move with a new number; FIG. 11 repair (short-validity certificate) and the
#            return with the owner's certificate; a loaner; its revocation, live (AS and TGS);
#   tshark   a live capture on loopback of the MTA-FQDN exchange between the KDC and prov,
#            decoded as PacketCable MTA-FQDN with no malformed packet;
#   MIT      kinit -X X509_user_identity with the device's operator certificate: a full login.
CK_TIMEOUT=${CK_TIMEOUT:-90}
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/prov_lib.sh"

pl_require
require_tool "tshark (Wireshark)" tshark dumpcap
require_tool "MIT ktutil" ktutil
STUB="$CK_BUILD/provdev_stub"
[ -x "$STUB" ] || bail "tests/tools/provdev_stub not built at $STUB"

pl_setup FLOWS.TEST
realm_addprinc host/other.flows.test --random
KDC_START_PID=$KDC_PID
[ "$PL_CMS_PROV" = 1 ] && ok "cablekey-cms accepts provisioning_url" ||
    not_ok "cablekey-cms accepts provisioning_url (h/cmsprov)" "$(cat "$tmp/cms-check.log")"

MAC_A=00:1a:2b:00:00:0a; PR_A=mta-001a2b00000a
MAC_B=00:1a:2b:00:00:0b; PR_B=mta-001a2b00000b
MAC_C=00:1a:2b:00:00:0c; PR_C=mta-001a2b00000c
pl_device A "$MAC_A"
pl_device B "$MAC_B"
pl_device C "$MAC_C"
pl_cms_opts
pl_prov_opts

line() { # line DESC TEXT : the last command printed this (fixed) text in a line
    if grep -qF -- "$2" "$tmp/last.out"; then ok "$1"; else
        not_ok "$1" "no '$2' in:
$(cat "$tmp/last.out" "$tmp/last.err" | tail -n 15)"; fi
}
kdc_last() { # kdc_last DESC PRINC PATTERN : the KDC's latest AS line for PRINC matches
    local i l=""
    for i in $(seq 1 20); do
        l=$(grep -E "AS_REQ.*$2@" "$tmp/kdc.log" 2>/dev/null | tail -n 1)
        grep -Eq -- "$3" <<<"$l" && { ok "$1"; return 0; }
        sleep 0.1
    done
    not_ok "$1" "last AS line for $2 does not match /$3/: $l"
}
webhook() { # webhook EVENT MAC
    if pl_webhook_seen "$1" "$2"; then ok "webhook $1 for $2 delivered, signature verified"
    else not_ok "webhook $1 for $2 delivered, signature verified" "$(tail -n 5 "$tmp/webhook.log")"; fi
}
cms_add() { # cms_add NUMBER PRINC
    if [ "$PL_CMS_PROV" != 1 ]; then not_ok "cablekey-cms learns line $1 -> $2" "no provisioning_url"; return; fi
    pl_cms_line_added "$1" "$2" && ok "cablekey-cms learns line $1 -> $2 (prov line add)" ||
        not_ok "cablekey-cms learns line $1 -> $2" "$(grep 'prov line' "$tmp/cms.log" | tail -n 5)"
}
cms_remove() {
    if [ "$PL_CMS_PROV" != 1 ]; then not_ok "cablekey-cms drops line $1" "no provisioning_url"; return; fi
    pl_cms_line_removed "$1" && ok "cablekey-cms drops line $1 (prov line remove)" ||
        not_ok "cablekey-cms drops line $1" "$(grep 'prov line' "$tmp/cms.log" | tail -n 5)"
}
# call DESC CCACHE NUMBER connected|REASON-REGEX : a call placed with that ticket; the callee must
# be answering (answerer) for "connected".
call() {
    local desc=$1 cc=$2 num=$3 want=$4 rc
    pl_phone_dial caller "$cc" "$num"; rc=$?
    if [ "$want" = connected ]; then
        if [ $rc -eq 0 ] && grep -Eq '^call [0-9A-F]{32} connected ' "$tmp/phone-caller.out"; then ok "$desc"
        else not_ok "$desc" "exit $rc: $(cat "$tmp/phone-caller.out"; tail -n 6 "$tmp/phone-caller.err")
cms: $(grep -E 'call |prov ' "$tmp/cms.log" | tail -n 4)"; fi
    else
        if [ $rc -ne 0 ] && grep -Eq "^call failed reason=$want" "$tmp/phone-caller.out"; then ok "$desc"
        else not_ok "$desc" "exit $rc: $(cat "$tmp/phone-caller.out"; tail -n 6 "$tmp/phone-caller.err")"; fi
    fi
}
answerer() { # answerer NAME CCACHE : a phone answering in the background
    pl_phone_stop
    pl_phone_answer "$1" "$2" || not_ok "$1 registers with cablekey-cms to answer" \
        "$(tail -n 8 "$tmp/phone-$1.err")"
}
cert_sha() { # cert_sha NAME : SHA-256 of the device's operator certificate (DER)
    openssl x509 -in "$tmp/dev-$1/operator.pem" -outform DER 2>/dev/null | sha256sum | cut -c1-64
}
number_of() { pl_api GET "/devices/$1" >/dev/null; pl_json "','.join(d['numbers'])"; }
cli_as() { # cli_as CCACHE-NAME ARGS... : the cablekey CLI with a ticket
    local cc=$1; shift
    KRB5CCNAME="FILE:$tmp/$cc.cc" ck_run "$CK_CLI" "$@" --server "$URL"
}

# =============================================================================================
# FIG. 7: a new device
expect_success "A: the head-end registers it (unprovisioned address)" \
    pl_mta A hfc-register --ip 10.1.0.11
line "A: HFC 502 -> 510" "hfc: HFC Not Configured -> Unprovisioned HFC Access"
expect_success "A: boot with the manufacturer certificate and key IPsec with cablekey-cms" \
    pl_mta A boot "${PL_CMS_OPTS[@]}"
line "A: 540 -> 550 on manufacturer PKINIT" \
    "telephony: Telephony I/F Not Configured -> Unprovisioned Telephony Access (PKINIT ok with the manufacturer certificate)"
line "A: 550 -> 560 on the KMM AP-REP" "Unprovisioned Telephony Access -> Unprovisioned Telephony Security Context (KMM AP-REP ok)"
kdc_last "KDC: A admitted unprovisioned, restricted ticket" "$PR_A" \
    "ISSUE: .*unprovisioned device $MAC_A admitted, unprovisioned \\(restricted calls\\)"
pl_agree "FIG 7 admitted" A "$MAC_A" unprovisioned unprovisioned 560
if [ "$PL_CMS_PROV" = 1 ]; then
    if wait_file_grep "$tmp/cms.log" "prov report mac=$MAC_A ip=127\\.0\\.0\\.1 result=ok"; then
        ok "cablekey-cms reports A to cablekey-prov (prov report ... result=ok)"
    else not_ok "cablekey-cms reports A to cablekey-prov" "$(grep 'prov ' "$tmp/cms.log" | tail -n 5)"; fi
else
    not_ok "cablekey-cms reports A to cablekey-prov" "cablekey-cms has no provisioning_url (h/cmsprov)"
    KRB5CCNAME="FILE:$tmp/cms-svc.cc" kinit -k -t "$tmp/cms.keytab" "$CMS_SVC" >/dev/null 2>&1
    KRB5CCNAME="FILE:$tmp/cms-svc.cc" curl -s -o /dev/null --negotiate -u : -H 'Content-Type: application/json' \
        -d "{\"mac\":\"$MAC_A\",\"ip\":\"127.0.0.1\"}" "$URL/api/v1/devices/report"
fi
st=$(pl_api GET "/devices?ip=127.0.0.1")
if [ "$st" = 200 ] && [ "$(pl_json "'$MAC_A' in [x['mac'] for x in d['devices']]")" = True ]; then
    ok "the CSR finds A by its unprovisioned IP"
else not_ok "the CSR finds A by its unprovisioned IP" "$st $(head -c 300 "$tmp/body")"; fi

# Restricted calls: the CSR yes, anyone else no.
answerer csr "$tmp/csr1.cc"
call "A (restricted) calls the CSR ($PL_CSR_NUMBER): connected" "$(pl_devdir A)/ccache" "$PL_CSR_NUMBER" connected
wait_file_grep "$tmp/cms.log" "call [0-9A-F]{32} from 001a2b00000a to $PL_CSR_NUMBER result connected" &&
    ok "cablekey-cms: the guest's caller id is its MAC" ||
    not_ok "cablekey-cms: the guest's caller id is its MAC" "$(grep -E 'call [0-9A-F]{32} from' "$tmp/cms.log" | tail -n 2)"
pl_phone_stop
answerer bob "$tmp/bob.cc"
call "A (restricted) calls $PL_BOB_NUMBER: refused" "$(pl_devdir A)/ccache" "$PL_BOB_NUMBER" unknown-number
wait_file_grep "$tmp/cms.log" "to $PL_BOB_NUMBER refused: restricted-calls ticket" &&
    ok "cablekey-cms logs the restricted refusal" ||
    not_ok "cablekey-cms logs the restricted refusal" "$(grep -i restrict "$tmp/cms.log" | tail -n 3)"

# The CSR enters the customer and provisions (the CLI over the API).
expect_output "the CSR adds the customer (cablekey customer add --server)" "^Customer: [0-9]+" \
    cli_as csr1 customer add --name "Ann Flows" --address "1 Main St" --segment north
CUST=$(sed -n 's/^Customer: //p' "$tmp/last.out")
expect_output "cablekey device provision --server: A provisioned" "^State: provisioned" \
    cli_as csr1 device provision --mac "$MAC_A" --customer "$CUST"
NUM_A=$(number_of "$MAC_A")
[ -n "$NUM_A" ] && ok "A has number $NUM_A" || not_ok "A has a number" "$(cat "$tmp/body")"
pl_agree "FIG 7 provisioned, certificate not yet fetched" A "$MAC_A" active provisioned 560
webhook device.provisioned "$MAC_A"
cms_add "$NUM_A" "$PR_A"
expect_success "A fetches its operator certificate over the device channel" pl_mta A fetch-cert
line "A: 560 -> 570 on the certificate received and acknowledged" \
    "-> Received Network Operator-Issued Certificate (operator certificate received and acknowledged)"
st=$(pl_api GET "/devices/$MAC_A")
if [ "$(pl_json "d['cert']['acked'] and d['cert']['sha256']=='$(cert_sha A)'")" = True ]; then
    ok "prov: the certificate A holds is the current one, acknowledged"
else not_ok "prov: the certificate A holds is the current one, acknowledged" "$(head -c 400 "$tmp/body")"; fi
if grep -Eq "PROVDEV .* client=$PR_A@$REALM mac=$MAC_A op=fetch: cert=[0-9]+" "$tmp/prov.log" &&
   grep -Eq "PROVDEV .* client=$PR_A@$REALM mac=$MAC_A op=ack: cert=[0-9]+ acked" "$tmp/prov.log"; then
    ok "prov: FETCH and ACK from A's own ticket (device channel)"
else not_ok "prov: FETCH and ACK from A's own ticket (device channel)" "$(grep PROVDEV "$tmp/prov.log" | tail -n 3)"; fi
phone_ids=$(openssl x509 -in "$(pl_devdir A)/operator.pem" -noout -text 2>/dev/null | grep -c "2.25.178893561123004519330412342127154437651")
[ "$phone_ids" -ge 1 ] && ! openssl x509 -in "$(pl_devdir A)/operator.pem" -noout -text | grep -q "$NUM_A" &&
    ok "the operator certificate carries a phone ID, not the number" ||
    not_ok "the operator certificate carries a phone ID, not the number"
expect_success "A reboots" pl_mta A reboot
expect_success "A boots with the operator certificate" pl_mta A boot "${PL_CMS_OPTS[@]}"
line "A: 540 -> 580 on operator PKINIT" "-> Provisioned Telephony Access (PKINIT ok with the operator certificate)"
kdc_last "KDC: A full service, confirmed over MTA-FQDN" "$PR_A" \
    "ISSUE: .*mta-fqdn $PR_A\\.mta\\.flows\\.test, operator cert"
grep -Eq "MTAFQDN .* mac=$MAC_A: fqdn=$PR_A\.mta\.flows\.test" "$tmp/prov.log" &&
    ok "prov answered the KDC's MTA-FQDN request for A" ||
    not_ok "prov answered the KDC's MTA-FQDN request for A" "$(grep MTAFQDN "$tmp/prov.log" | tail -n 3)"
pl_agree "FIG 7 full service" A "$MAC_A" active provisioned 580
answerer bob "$tmp/bob.cc"
call "A (full service) calls $PL_BOB_NUMBER: connected" "$(pl_devdir A)/ccache" "$PL_BOB_NUMBER" connected
pl_phone_stop
answerer A "$(pl_devdir A)/ccache"
call "bob calls A's number $NUM_A: connected" "$tmp/bob.cc" "$NUM_A" connected
pl_phone_stop

# =============================================================================================
# Re-use: C still holds another operator's certificate.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj "/O=Old Cable Co/CN=Old Operator Device CA" -keyout "$tmp/oldop-key.pem" -out "$tmp/oldop.pem" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" >/dev/null 2>&1 &&
printf 'extendedKeyUsage=1.3.6.1.5.2.3.4,clientAuth\nkeyUsage=critical,digitalSignature\n' >"$tmp/op.ext" &&
openssl req -new -key "$tmp/key-C-key.pem" -subj "/O=Old Cable Co/CN=$MAC_C" -out "$tmp/c.csr" >/dev/null 2>&1 &&
openssl x509 -req -in "$tmp/c.csr" -CA "$tmp/oldop.pem" -CAkey "$tmp/oldop-key.pem" -CAcreateserial \
    -days 30 -sha256 -extfile "$tmp/op.ext" -out "$(pl_devdir C)/operator.pem" >/dev/null 2>&1 ||
    bail "C's old operator certificate (openssl)"
chmod 600 "$(pl_devdir C)/operator.pem"; cp "$(pl_devdir C)/operator.pem" "$tmp/c-old.pem"
expect_success "C boots: the old certificate is refused, the manufacturer one admits it" pl_mta C boot
line "C: PKINIT with the old operator certificate fails with a KRB-ERROR" "(PKINIT failed, KRB-ERROR"
line "C: falls back to the manufacturer certificate" "-> Unprovisioned Telephony Access (PKINIT ok with the manufacturer certificate)"
line "C: the bare KRB-ERROR does not drop the certificate" "mta: operator certificate kept"
cmp -s "$(pl_devdir C)/operator.pem" "$tmp/c-old.pem" && ok "C still holds the old certificate" ||
    not_ok "C still holds the old certificate"
# A server that answers the device channel without prov/'s key: its DROP is not authenticated.
printf 'addent -password -p prov/localhost@%s -k 2 -e aes256-cts-hmac-sha1-96\nforged-key\nwkt %s\n' \
    "$REALM" "$tmp/forged.keytab" | ktutil >/dev/null 2>&1
[ -s "$tmp/forged.keytab" ] || bail "a forged prov/localhost keytab (ktutil)"
FPORT2=$(free_port)
"$STUB" --listen "127.0.0.1:$FPORT2" --keytab "$tmp/forged.keytab" --server "prov/localhost@$REALM" \
    --ready "$tmp/stub.ready" --check drop >"$tmp/stub.log" 2>&1 &
CK_BG_PIDS+=($!)
for _ in $(seq 1 50); do [ -e "$tmp/stub.ready" ] && break; sleep 0.1; done
ck_run "$CK_CLI" mta boot --device "$(pl_devdir C)" --kdc "127.0.0.1:$PORT" --realm "$REALM" \
    --anchors "$PKI/sp-root.pem" --prov "127.0.0.1:$FPORT2" --prov-principal prov/localhost
line "C: a DROP from a server without prov/'s key is not obeyed" "mta: CHECK failed, operator certificate kept"
cmp -s "$(pl_devdir C)/operator.pem" "$tmp/c-old.pem" && ok "C still holds it after the forged DROP" ||
    not_ok "C still holds it after the forged DROP"
expect_success "C boots asking cablekey-prov (device channel)" pl_mta C boot "${PL_PROV_OPTS[@]}"
line "C: cablekey-prov's authenticated DROP removes it" "(authenticated DROP instruction)"
[ -e "$(pl_devdir C)/operator.pem" ] && not_ok "C's old certificate is gone" || ok "C's old certificate is gone"
grep -Eq "client=$PR_C@$REALM mac=$MAC_C op=check: DROP" "$tmp/prov.log" && ok "prov logged CHECK -> DROP" ||
    not_ok "prov logged CHECK -> DROP" "$(grep -i check "$tmp/prov.log" | tail -n 3)"
pl_agree "re-use: C unprovisioned" C "$MAC_C" unprovisioned unprovisioned 550

# =============================================================================================
# FIG. 8: de-provisioning, live
expect_output "cablekey device deprovision --server: A" "^State: unprovisioned" \
    cli_as csr1 device deprovision --mac "$MAC_A" --reason "customer cancelled"
pl_agree "FIG 8 de-provisioned, device not yet told" A "$MAC_A" unprovisioned unprovisioned 580
webhook device.deprovisioned "$MAC_A"
cms_remove "$NUM_A"
call "bob calls A's old number: unknown" "$tmp/bob.cc" "$NUM_A" unknown-number
pl_phone_stop
KRB5CCNAME="FILE:$(pl_devdir A)/ccache" expect_failure \
    "A's full-service TGT gets no new ticket once de-provisioned (TGS, live)" "." \
    kvno "host/other.flows.test@$REALM"
grep -Eq "TGS_REQ.*DEVICE_NOT_PROVISIONED: $PR_A@" "$tmp/kdc.log" && ok "KDC: TGS refused, DEVICE_NOT_PROVISIONED" ||
    not_ok "KDC: TGS refused, DEVICE_NOT_PROVISIONED" "$(grep "TGS_REQ.*$PR_A" "$tmp/kdc.log" | tail -n 2)"
expect_success "A's next login" pl_mta A boot "${PL_PROV_OPTS[@]}"
kdc_last "KDC: the operator certificate refused on the next login (OPERATOR_CERT_NOT_CURRENT)" "$PR_A" \
    "OPERATOR_CERT_NOT_CURRENT|ISSUE: .*unprovisioned \\(restricted calls\\)"
grep -Eq "OPERATOR_CERT_NOT_CURRENT: $PR_A" "$tmp/kdc.log" && ok "KDC log: OPERATOR_CERT_NOT_CURRENT for A" ||
    not_ok "KDC log: OPERATOR_CERT_NOT_CURRENT for A" "$(grep "$PR_A" "$tmp/kdc.log" | tail -n 3)"
line "A: dropped on the authenticated instruction" "(authenticated DROP instruction)"
[ "$KDC_PID" = "$KDC_START_PID" ] && kill -0 "$KDC_PID" && ok "no restart: the same KDC process" ||
    not_ok "no restart: the same KDC process"
pl_agree "FIG 8 device unprovisioned" A "$MAC_A" unprovisioned unprovisioned 550
expect_success "A: the head-end registers it again" pl_mta A hfc-register --ip 10.1.0.11
line "A: HFC 502 -> 510 after the DROP" "hfc: HFC Not Configured -> Unprovisioned HFC Access"

# Provisioned again (to the same customer) for the next flows.
provision_cycle() { # provision_cycle NAME MAC : fetch, reboot, boot with the operator cert
    expect_success "$1: fetch-cert" pl_mta "$1" fetch-cert
    expect_success "$1: reboot" pl_mta "$1" reboot
    expect_success "$1: boot with the operator certificate" pl_mta "$1" boot "${PL_CMS_OPTS[@]}"
    line "$1: 580 with the operator certificate" "-> Provisioned Telephony Access (PKINIT ok with the operator certificate)"
}
expect_output "A provisioned again" "^State: provisioned" \
    cli_as csr1 device provision --mac "$MAC_A" --customer "$CUST"
NUM_A=$(number_of "$MAC_A")
provision_cycle A "$MAC_A"
pl_agree "re-provisioned" A "$MAC_A" active provisioned 580

# =============================================================================================
# FIG. 9: change of service
SHA0=$(cert_sha A)
expect_output "change of service (no new certificate)" "^State: provisioned" \
    cli_as csr1 device change-service --mac "$MAC_A" --services '{"caller_id":true}'
webhook device.service-changed "$MAC_A"
expect_success "A logs in with the same certificate" pl_mta A boot
line "A: still full service" "(PKINIT ok with the operator certificate)"
sleep 1.1   # the re-issued certificate must start a second later than the held one (FIG. 9)
expect_output "change of service with a re-issued certificate" "^State: provisioned" \
    cli_as csr1 device change-service --mac "$MAC_A" --services '{"caller_id":true,"lines":2}' --reissue
expect_success "A fetches the re-issued certificate (holding the old one)" pl_mta A fetch-cert
[ "$(cert_sha A)" != "$SHA0" ] && ok "A holds the new certificate" || not_ok "A holds the new certificate"
expect_success "A: reboot" pl_mta A reboot
expect_success "A: boot with the new certificate" pl_mta A boot
line "A: full service with the re-issued certificate" "(PKINIT ok with the operator certificate)"
pl_agree "FIG 9" A "$MAC_A" active provisioned 580

# =============================================================================================
# FIG. 10: HFC segment move, a new number
OLD_NUM=$NUM_A
expect_success "A on a new segment: registered with a new unprovisioned address" \
    pl_mta A hfc-register --ip 10.2.0.5
line "A: the new head-end does not provision it (HFC 530 -> 502)" "hfc: Provisioned HFC Access -> HFC Not Configured (de-provisioning)"
line "A: and registers it unprovisioned (502 -> 510)" "hfc: HFC Not Configured -> Unprovisioned HFC Access"
expect_output "cablekey device move --segment south" "^State: provisioned" \
    cli_as csr1 device move --mac "$MAC_A" --segment south
NUM_A=$(number_of "$MAC_A")
case $NUM_A in 5560*) ok "A has a south number ($NUM_A)" ;; *) not_ok "A has a south number" "$NUM_A" ;; esac
webhook device.moved "$MAC_A"
cms_remove "$OLD_NUM"
cms_add "$NUM_A" "$PR_A"
expect_success "A boots after the move" pl_mta A boot "${PL_PROV_OPTS[@]}"
line "A: the superseded certificate is refused, fallback" "-> Unprovisioned Telephony Access (PKINIT ok with the manufacturer certificate)"
line "A: and dropped on prov's instruction" "(authenticated DROP instruction)"
provision_cycle A "$MAC_A"
pl_agree "FIG 10 moved" A "$MAC_A" active provisioned 580
answerer A "$(pl_devdir A)/ccache"
call "bob calls A's new number $NUM_A: connected" "$tmp/bob.cc" "$NUM_A" connected
pl_phone_stop
call "bob calls A's old number $OLD_NUM: unknown" "$tmp/bob.cc" "$OLD_NUM" unknown-number

# =============================================================================================
# FIG. 11: repair, a loaner, the return
expect_output "a repair-facility account" "^Type: repair" \
    cli_as csr1 customer add --name "Fix-It Depot" --address "9 Service Rd" --segment north --type repair
FAC=$(sed -n 's/^Customer: //p' "$tmp/last.out")
expect_output "cablekey device repair --facility" "^State: repair" \
    cli_as csr1 device repair --mac "$MAC_A" --facility "$FAC"
webhook device.repair "$MAC_A"
expect_success "the technician wipes A's certificate (front panel)" pl_mta A reset-cert
expect_success "A boots at the repair facility (manufacturer certificate)" pl_mta A boot
provision_cycle A "$MAC_A"
nb=$(openssl x509 -in "$(pl_devdir A)/operator.pem" -noout -startdate | cut -d= -f2)
na=$(openssl x509 -in "$(pl_devdir A)/operator.pem" -noout -enddate | cut -d= -f2)
life=$(( $(date -d "$na" +%s) - $(date -d "$nb" +%s) ))
[ "$life" -le $((4 * 3600 + 600)) ] && ok "the repair certificate is short ($life s)" ||
    not_ok "the repair certificate is short" "$life s"
pl_agree "FIG 11 in repair" A "$MAC_A" active repair 580
# A loaner for the customer meanwhile.
expect_success "B (the loaner) boots from the factory" pl_mta B boot
expect_output "cablekey device loaner --for A" "^State: provisioned" \
    cli_as csr1 device loaner --mac "$MAC_B" --customer "$CUST" --for "$MAC_A"
webhook device.loaner "$MAC_B"
provision_cycle B "$MAC_B"
pl_agree "loaner B" B "$MAC_B" active provisioned 580
answerer bob "$tmp/bob.cc"
call "the loaner calls $PL_BOB_NUMBER: connected" "$(pl_devdir B)/ccache" "$PL_BOB_NUMBER" connected
pl_phone_stop
# The return with the owner's certificate.
expect_output "cablekey device return" "^State: provisioned" cli_as csr1 device return --mac "$MAC_A"
webhook device.returned "$MAC_A"
expect_success "the test certificate is deleted before shipping" pl_mta A reset-cert
expect_success "A boots unprovisioned" pl_mta A boot
provision_cycle A "$MAC_A"
life=$(( $(date -d "$(openssl x509 -in "$(pl_devdir A)/operator.pem" -noout -enddate | cut -d= -f2)" +%s) - $(date +%s) ))
[ "$life" -gt 86400 ] && ok "the owner's certificate is long-lived again" || not_ok "the owner's certificate" "$life s"
pl_agree "FIG 11 returned" A "$MAC_A" active provisioned 580
# Revocation, live.
st=$(pl_api POST "/devices/$MAC_B/revoke" '{"reason":"loaner lost"}')
[ "$st" = 200 ] && ok "ops revokes the loaner" || not_ok "ops revokes the loaner" "$st $(cat "$tmp/body")"
KRB5CCNAME="FILE:$(pl_devdir B)/ccache" expect_failure \
    "the loaner's full-service TGT gets no new ticket once revoked (TGS, live)" "." \
    kvno "host/other.flows.test@$REALM"
grep -Eq "TGS_REQ.*DEVICE_REVOKED: $PR_B@" "$tmp/kdc.log" && ok "KDC: TGS refused, DEVICE_REVOKED" ||
    not_ok "KDC: TGS refused, DEVICE_REVOKED" "$(grep "TGS_REQ.*$PR_B" "$tmp/kdc.log" | tail -n 2)"
expect_failure "the revoked loaner's next login is refused" "failed" pl_mta B boot
grep -Eq "DEVICE_REVOKED: $PR_B" "$tmp/kdc.log" && ok "KDC: DEVICE_REVOKED, live" ||
    not_ok "KDC: DEVICE_REVOKED, live" "$(grep "$PR_B" "$tmp/kdc.log" | tail -n 2)"

# =============================================================================================
# MTA-FQDN on the wire, and MIT kinit with the operator certificate
dumpcap -q -i lo -f "udp port $FPORT" -w "$tmp/fqdn.pcapng" >"$tmp/dumpcap.log" 2>&1 &
CAP_PID=$!
CK_BG_PIDS+=("$CAP_PID")
for _ in $(seq 1 50); do grep -q "File:" "$tmp/dumpcap.log" 2>/dev/null && break; sleep 0.1; done
sleep 0.5
KRB5CCNAME="FILE:$tmp/mit-a.cc" expect_success "MIT kinit -X X509_user_identity with A's operator certificate" \
    timeout -k 5 60 kinit -X "X509_user_identity=FILE:$(pl_devdir A)/operator.pem,$tmp/key-A-key.pem" "$PR_A@$REALM"
KRB5CCNAME="FILE:$tmp/mit-a.cc" expect_output "MIT klist: A's TGT" "krbtgt/$REALM@$REALM" klist
kdc_last "KDC: the MIT login is a full-service operator login (MTA-FQDN confirmed)" "$PR_A" \
    "ISSUE: .*mta-fqdn $PR_A\\.mta\\.flows\\.test, operator cert"
sleep 1
kill -INT "$CAP_PID" 2>/dev/null; wait "$CAP_PID" 2>/dev/null
ts() { tshark -n -r "$tmp/fqdn.pcapng" -d "udp.port==$FPORT,pktc.mtafqdn" "$@" 2>"$tmp/tshark.err"; }
got=$(ts -T fields -e pktc.mtafqdn.msgtype | tr '\n' ' ')
case "$got" in
    *1*2*) ok "tshark: the live exchange is an MTA-FQDN Request and Reply ($got)" ;;
    *) not_ok "tshark: the live exchange is an MTA-FQDN Request and Reply" "msgtypes '$got': $(cat "$tmp/tshark.err")" ;;
esac
got=$(ts -Y 'pktc.mtafqdn.msgtype == 1' -T fields -e pktc.mtafqdn.mac | head -n1)
[ "$got" = "$MAC_A" ] && ok "tshark: the request names A's MAC" || not_ok "tshark: the request names A's MAC" "$got"
got=$(ts -Y 'pktc.mtafqdn.msgtype == 2' -T fields -e pktc.mtafqdn.fqdn | head -n1)
[ "$got" = "$PR_A.mta.flows.test" ] && ok "tshark: the reply carries A's FQDN" || not_ok "tshark: the reply carries A's FQDN" "$got"
out=$(ts -Y '_ws.malformed'); rc=$?
[ $rc -eq 0 ] && [ -z "$out" ] && ok "tshark: no malformed packet" || not_ok "tshark: no malformed packet" "$out"

kdc_alive "the KDC served every flow"
pl_stop
done_testing
