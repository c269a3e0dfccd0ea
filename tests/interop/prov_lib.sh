# shellcheck shell=bash
# tests/interop/prov_lib.sh — the whole provisioning system on loopback (sourced after lib.sh,
# never run): the realm with its PKI (`cablekey pki init`: KDC identity, manufacturer CA, the
# provisioning CA prov-ca.pem and the phone-ID key), cablekey-kdc with pkinit_provisioning,
# pkinit_operator_anchors and pkinit_mta_fqdn_server pointing at cablekey-prov, cablekey-prov
# (API, MTA-FQDN, device channel, a webhook to a local receiver that checks signatures),
# cablekey-cms with provisioning_url (when it has it: h/cmsprov) and a CSR line, and phone
# adapters simulated by `cablekey mta` with manufacturer certificates (seed 002, FIG. 5-11).
#
# API (every setup step bails on failure):
#   pl_require                      third-party tools (missing -> not ok + Bail out)
#   pl_setup REALM                  PKI, realm, principals, keytabs; starts KDC, webhook
#                                   receiver, cablekey-prov, cablekey-cms
#   pl_device NAME MAC              a factory-fresh device directory $tmp/dev-NAME
#   pl_mta NAME VERB [args]         `cablekey mta VERB --device DIR ...` with the realm's options
#                                   (boot: --kdc --realm --anchors --cms; fetch-cert: --prov ...)
#   pl_api METHOD PATH [BODY]       the API with Negotiate as ops@REALM; status printed, body in
#                                   $tmp/body
#   pl_json EXPR                    evaluates a python expression over $tmp/body (d)
#   pl_kdc_state MAC                the KDC's device row state (cablekey device show --db)
#   pl_prov_state MAC               "STATE KDC_STATE NUMBERS" from the API
#   pl_tel NAME                     the device's telephony state number (cablekey mta status)
#   pl_agree DESC MAC KDC PROV TEL  one TAP case: the device table, the API and the device agree
#   pl_cms_line_added NUMBER PRINC / pl_cms_line_removed NUMBER: cablekey-cms logged it
#   pl_phone_answer NAME CCACHE / pl_phone_dial NAME CCACHE NUMBER: `cablekey mta phone`
#   pl_webhook_seen EVENT MAC       the receiver got a verified delivery of EVENT for MAC
#   pl_stop                         stops prov, cms (TAP cases: exit 0) and the KDC
#
# Variables after pl_setup: PKI, PW file $tmp/pw, HPORT (API), FPORT (MTA-FQDN UDP), DPORT
# (device channel), KP/SP (cms KMM/signaling), URL (http://localhost:HPORT), CMS_SVC,
# PROV_PID, CMS_PID, WH_PID, PL_CMS_PROV (1 when cablekey-cms has provisioning_url).

CK_CMS="$CK_BUILD/cablekey-cms"
CK_PROV="$CK_BUILD/cablekey-prov"
PL_CSR_NUMBER=611
PL_BOB_NUMBER=5550999
PL_CMS_PROV=0

pl_require() {
    require_tool "MIT client tools" kinit kdestroy klist
    require_tool "curl with GSS-API (Negotiate)" curl
    require_tool "OpenSSL" openssl
    curl -V | grep -qE 'GSS-API|SPNEGO' || bail "curl lacks GSS-API/SPNEGO support"
    compgen -G "/usr/lib/*/krb5/plugins/preauth/pkinit.so" >/dev/null ||
        bail "MIT PKINIT plugin missing (krb5-pkinit; run scripts/install-deps.sh)"
    is_mit && bail "the provisioning flows need cablekey-kdc"
    local b
    for b in "$CK_CMS" "$CK_PROV" "$CK_CLI" "$CK_KDC"; do
        [ -x "$b" ] || bail "$(basename "$b") not built at $b"
    done
}

pl_pki() { # pl_pki ARGS... : the operator CLI, quietly; bails on failure (setup)
    timeout 120 "$CK_CLI" pki "$@" --password-file "$tmp/pw" </dev/null >>"$tmp/pki.log" 2>&1 ||
        bail "cablekey pki $1" "$(tail -n 5 "$tmp/pki.log")"
}

# The KDC's configuration: provisioning on, the provisioning CA as the operator anchor, the
# manufacturer root as a PacketCable anchor (so that operator logins are confirmed over
# MTA-FQDN, PROTOCOL-NOTES §3.5), every confirmation asked afresh (the flows change the devices).
pl_write_kdc_conf() {
    local f=$1 listen
    listen=$(IFS=,; echo "${CK_LISTEN[*]}")
    cat >"$f" <<EOF
[kdcdefaults]
    kdc_listen = $listen
    pkinit_provisioning = true
    pkinit_unprovisioned_calls = $PL_CSR_NUMBER 911
[realms]
    $REALM = {
        database_name = $DB
        key_stash_file = $STASH
        pkinit_identity = $PKI/kdc.p12
        pkinit_password_file = $tmp/pw
        pkinit_anchors = $PKI/sp-root.pem
        pkinit_packetcable_anchors = $PKI/mfg-root.pem
        pkinit_pool = $PKI/sp-ca.pem $PKI/mfg-ca.pem
        pkinit_operator_anchors = $PKI/prov-ca.pem
        pkinit_mta_fqdn_server = 127.0.0.1:$FPORT
        pkinit_mta_fqdn_timeout_ms = 3000
        pkinit_mta_fqdn_cache_seconds = 0
    }
EOF
}

pl_wait_tcp() { # pl_wait_tcp PID ADDR WHAT LOGS...
    local pid=$1 addr=$2 what=$3 i; shift 3
    for i in $(seq 1 200); do
        ck_tcp_probe "$addr" && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    bail "$what started" "$(tail -n 20 "$@" 2>/dev/null)"
}

# The webhook receiver (billing / head-end stand-in): verifies X-Cablekey-Signature over the raw
# body (docs/prov-signer-webhooks.md) and appends "OK|BAD EVENT DELIVERY-ID BODY" per POST.
pl_start_webhook() {
    WH_PORT=$(free_port) || bail "pick a port for the webhook receiver"
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$tmp/webhook.secret"
    chmod 600 "$tmp/webhook.secret"
    cat >"$tmp/webhook.py" <<'PYEOF'
import hashlib, hmac, http.server, sys, time
port, secret_file, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
secret = open(secret_file, "rb").read().rstrip(b"\n")
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        sig = dict(p.split("=", 1) for p in self.headers.get("X-Cablekey-Signature", "").split(",") if "=" in p)
        mac = hmac.new(secret, sig.get("t", "").encode() + b"." + body, hashlib.sha256).hexdigest()
        good = hmac.compare_digest(mac, sig.get("v1", "")) and abs(time.time() - int(sig.get("t", "0"))) < 300
        with open(out, "a") as f:
            f.write("%s %s %s %s\n" % ("OK" if good else "BAD", self.headers.get("X-Cablekey-Event"),
                                      self.headers.get("X-Cablekey-Delivery"), body.decode(errors="replace")))
        self.send_response(200 if good else 400)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PYEOF
    : >"$tmp/webhook.log"
    "$CK_PY" "$tmp/webhook.py" "$WH_PORT" "$tmp/webhook.secret" "$tmp/webhook.log" \
        >"$tmp/webhook.err" 2>&1 &
    WH_PID=$!
    CK_BG_PIDS+=("$WH_PID")
    pl_wait_tcp "$WH_PID" "127.0.0.1:$WH_PORT" "the webhook receiver" "$tmp/webhook.err"
}

pl_start_prov() {
    cat >"$tmp/prov.acl" <<EOF
csr1@$REALM   iap
ops@$REALM    iapr
cms/localhost@$REALM  ic
EOF
    cat >"$tmp/prov.conf" <<EOF
[prov]
    database = $DB
    stash = $STASH
    listen = 127.0.0.1:$HPORT
    fqdn_listen = 127.0.0.1:$FPORT
    devchan_listen = 127.0.0.1:$DPORT
    keytab = $tmp/prov.keytab
    acl_file = $tmp/prov.acl
    kdc = 127.0.0.1:$PORT
    ca_cert = $PKI/prov-ca.pem
    ca_key = $PKI/prov-ca-key.pem
    ca_password_file = $tmp/pw
    phone_id_key = $PKI/phone-id.key
    fqdn_domain = mta.flows.test
    repair_cert_hours = 4
    pool = north 5550100 5550199
    pool = south 5560100 5560199
    csr_numbers = $PL_CSR_NUMBER 911
    webhook = billing http://127.0.0.1:$WH_PORT/hook $tmp/webhook.secret
    log = FILE:$tmp/prov.log
    log_level = debug
EOF
    KRB5_CONFIG="$tmp/krb5-kdc-side.conf" "$CK_PROV" -c "$tmp/prov.conf" >"$tmp/prov.out" 2>&1 </dev/null &
    PROV_PID=$!
    CK_BG_PIDS+=("$PROV_PID")
    pl_wait_tcp "$PROV_PID" "127.0.0.1:$HPORT" "cablekey-prov" "$tmp/prov.out" "$tmp/prov.log"
}

pl_start_cms() {
    local conf="$tmp/cms.conf" l
    local lines=("keytab = $tmp/cms.keytab" "service = $CMS_SVC" "kdc = 127.0.0.1:$PORT"
                 "line = $PL_CSR_NUMBER csr1@$REALM" "line = $PL_BOB_NUMBER bob@$REALM"
                 "call_retry_ms = 300" "call_tries = 3")
    # provisioning_url (h/cmsprov): reports and the dynamic line table. Older controllers
    # refuse the key; the flows then say what they could not check.
    { echo "[cms]"; for l in "${lines[@]}" "provisioning_url = $URL"; do echo "    $l"; done; } >"$conf"
    if "$CK_CMS" --check -c "$conf" >"$tmp/cms-check.log" 2>&1; then
        PL_CMS_PROV=1
    else
        PL_CMS_PROV=0
        { echo "[cms]"; for l in "${lines[@]}"; do echo "    $l"; done; } >"$conf"
    fi
    : >"$tmp/cms.log"
    "$CK_CMS" -c "$conf" --listen "127.0.0.1:$KP" --signaling-listen "127.0.0.1:$SP" \
        --log "$tmp/cms.log" --log-level debug >"$tmp/cms.stderr" 2>&1 </dev/null &
    CMS_PID=$!
    CK_BG_PIDS+=("$CMS_PID")
    local i
    for i in $(seq 1 200); do
        grep -q "cablekey-cms ready" "$tmp/cms.log" 2>/dev/null && return 0
        kill -0 "$CMS_PID" 2>/dev/null || break
        sleep 0.1
    done
    bail "cablekey-cms started" "$(tail -n 20 "$tmp/cms.stderr" "$tmp/cms.log")"
}

pl_setup() {
    local r=$1
    PW_TEXT='Prov-Flows-Pki-Pw-7'
    printf '%s\n' "$PW_TEXT" >"$tmp/pw"; chmod 600 "$tmp/pw"
    PKI="$tmp/pki"
    realm_init "$r"
    HPORT=$(free_port) && FPORT=$(free_port) && DPORT=$(free_port) && KP=$(free_port) &&
        SP=$(free_port) || bail "pick free ports"
    URL="http://localhost:$HPORT"
    CMS_SVC="cms/localhost@$REALM"
    pl_pki init --dir "$PKI" --realm "$REALM" --org "Cable Flows Co" --ca-password-file "$tmp/pw"
    local f
    for f in prov-ca.pem prov-ca-key.pem phone-id.key kdc.p12 mfg-root.pem; do
        [ -f "$PKI/$f" ] || bail "cablekey pki init wrote no $f"
    done
    # Clients (MIT kinit for the devices and the operators): the KDC's anchor, the chains.
    write_krb5_conf "$KRB5_CONFIG" "127.0.0.1:$PORT" "pkinit_anchors = FILE:$PKI/sp-root.pem" \
        "pkinit_pool = FILE:$PKI/sp-ca.pem" "pkinit_pool = FILE:$PKI/mfg-ca.pem" \
        "pkinit_pool = FILE:$PKI/prov-ca.pem"
    echo "    localhost = $REALM" >>"$KRB5_CONFIG"
    printf '%s\n' 'Csr1-Flows-Pw-3' >"$tmp/csr1.pw"; chmod 600 "$tmp/csr1.pw"
    realm_addprinc csr1 "$(cat "$tmp/csr1.pw")"
    realm_addprinc ops ops-flows-pw
    realm_addprinc bob bob-flows-pw
    realm_addprinc HTTP/localhost --random
    realm_addprinc prov/localhost --random
    realm_addprinc mtafqdn/127.0.0.1 --random
    realm_addprinc cms/localhost --random
    realm_ktexport "$tmp/prov.keytab" "HTTP/localhost@$REALM" "prov/localhost@$REALM" \
        "mtafqdn/127.0.0.1@$REALM" >/dev/null || bail "export the prov keys"
    realm_ktexport "$tmp/cms.keytab" "$CMS_SVC" >/dev/null || bail "export the controller key"
    write_kdc_conf() { pl_write_kdc_conf "$@"; }
    realm_start_kdc_conf
    pl_start_webhook
    pl_start_prov
    pl_start_cms
    # The operator's ticket for the API checks and the CLI.
    KRB5CCNAME="FILE:$tmp/ops.cc" kinit_pw ops ops-flows-pw >"$tmp/kinit-ops.log" 2>&1 ||
        bail "kinit ops" "$(cat "$tmp/kinit-ops.log")"
    KRB5CCNAME="FILE:$tmp/bob.cc" kinit_pw bob bob-flows-pw >"$tmp/kinit-bob.log" 2>&1 ||
        bail "kinit bob" "$(cat "$tmp/kinit-bob.log")"
    KRB5CCNAME="FILE:$tmp/csr1.cc" kinit_pw csr1 "$(cat "$tmp/csr1.pw")" >"$tmp/kinit-csr.log" 2>&1 ||
        bail "kinit csr1" "$(cat "$tmp/kinit-csr.log")"
}

# pl_device NAME MAC: the factory's device: its manufacturer identity (P-256 key) in DIR.
pl_device() {
    local name=$1 mac=$2 dir="$tmp/dev-$1"
    mkdir -p "$dir" && chmod 700 "$dir"
    pl_pki issue-device --dir "$PKI" --mac "$mac" --key ec-p256 --out "$dir/factory.p12" \
        --pem-out "$tmp/key-$name" --pem-nopass --ca-password-file "$tmp/pw"
    cp "$tmp/pw" "$dir/factory.pw"; chmod 600 "$dir/factory.pw"
    [ -f "$tmp/key-$name-key.pem" ] || bail "the device key of $name (--pem-out)"
}

pl_devdir() { echo "$tmp/dev-$1"; }

# pl_mta NAME VERB [args]: the simulator with this realm's options; output in $tmp/last.out.
pl_mta() {
    local name=$1 verb=$2 dir="$tmp/dev-$1"; shift 2
    local args=(--device "$dir")
    case $verb in
        boot) args+=(--kdc "127.0.0.1:$PORT" --realm "$REALM" --anchors "$PKI/sp-root.pem") ;;
        fetch-cert) args+=(--prov "127.0.0.1:$DPORT" --prov-principal "prov/localhost"
                           --anchors "$PKI/prov-ca.pem" --kdc "127.0.0.1:$PORT") ;;
    esac
    ck_run "$CK_CLI" mta "$verb" "${args[@]}" "$@"
}
PL_CMS_OPTS=()
pl_cms_opts() { PL_CMS_OPTS=(--cms "127.0.0.1:$KP" --cms-service "$CMS_SVC"); }
PL_PROV_OPTS=()
pl_prov_opts() { PL_PROV_OPTS=(--prov "127.0.0.1:$DPORT" --prov-principal prov/localhost); }

pl_api() { # pl_api METHOD PATH [BODY] : Negotiate as ops; prints the status
    local m=$1 p=$2 b=${3:-}
    local args=(-s -o "$tmp/body" -w '%{http_code}' -X "$m" --max-time 40 --negotiate -u :)
    [ -n "$b" ] && args+=(-H 'Content-Type: application/json' --data-binary "$b")
    KRB5CCNAME="FILE:$tmp/ops.cc" curl "${args[@]}" "$URL/api/v1$p"
}
pl_json() { "$CK_PY" -c "import json,sys; d=json.load(open('$tmp/body')); print($1)" 2>/dev/null; }

pl_kdc_state() {
    "$CK_CLI" device show --db "$DB" --stash "$STASH" --mac "$1" 2>&1 | sed -n 's/^State: //p'
}
pl_prov_state() {
    local st
    st=$(pl_api GET "/devices/$1")
    [ "$st" = 200 ] || { echo "http-$st"; return 1; }
    pl_json "d['state']+' '+d['kdc_state']+' '+(','.join(d['numbers']) or '-')"
}
pl_tel() {
    "$CK_CLI" mta status --device "$tmp/dev-$1" 2>/dev/null | sed -n 's/^telephony: .*(\([0-9]*\)).*/\1/p'
}

# pl_agree DESC NAME MAC KDC PROV TEL: the KDC's device table, cablekey-prov's record (state and
# its view of the KDC row) and the device's own FIG. 5B state agree.
pl_agree() {
    local desc=$1 name=$2 mac=$3 kdc=$4 prov=$5 tel=$6 got_kdc got_prov got_tel
    got_kdc=$(pl_kdc_state "$mac")
    got_prov=$(pl_prov_state "$mac")
    got_tel=$(pl_tel "$name")
    if [ "$got_kdc" = "$kdc" ] && [ "${got_prov%% *}" = "$prov" ] &&
       [ "$(echo "$got_prov" | cut -d' ' -f2)" = "$kdc" ] && [ "$got_tel" = "$tel" ]; then
        ok "$desc: device table $kdc, prov $prov (kdc_state $kdc), device $tel"
    else
        not_ok "$desc: views agree" "device table '$got_kdc' (want $kdc); prov '$got_prov' (want $prov, kdc_state $kdc); device telephony '$got_tel' (want $tel)"
    fi
}

pl_cms_line_added() { wait_file_grep "$tmp/cms.log" "prov line add $1 $2(@| |\$)"; }
pl_cms_line_removed() { wait_file_grep "$tmp/cms.log" "prov line remove $1( |\$)"; }

# pl_webhook_seen EVENT MAC: a verified delivery of EVENT naming MAC reached the receiver.
pl_webhook_seen() {
    local i
    for i in $(seq 1 100); do
        grep -E "^OK $1 [0-9]+ .*\"$2\"" "$tmp/webhook.log" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

# Phones (`cablekey mta phone`): bob answers on his static line; a device dials with its ccache.
pl_phone() { # pl_phone NAME CCACHE args...
    local name=$1 cc=$2 mp dp; shift 2
    mp=$(free_port); dp=$(free_port)
    timeout -k 5 60 "$CK_CLI" mta phone --ccache "$cc" --cms "127.0.0.1:$KP" --sig-port "$SP" \
        --service "$CMS_SVC" --kdc "127.0.0.1:$PORT" --media "127.0.0.1:$mp" --direct-port "$dp" \
        --timeout 30 --verbose "$@" >"$tmp/phone-$name.out" 2>"$tmp/phone-$name.err" </dev/null
}
PHONE_PID=""
pl_phone_answer() { # pl_phone_answer NAME CCACHE : in the background, waits for registration
    local name=$1 i; rm -f "$tmp/phone-$name.err"
    pl_phone "$name" "$2" --answer --answer-after 200 &
    PHONE_PID=$!
    for i in $(seq 1 150); do
        grep -q "phone: registered" "$tmp/phone-$name.err" 2>/dev/null && { sleep 0.2; return 0; }
        kill -0 "$PHONE_PID" 2>/dev/null || break
        sleep 0.1
    done
    return 1
}
pl_phone_stop() {
    [ -n "$PHONE_PID" ] || return 0
    kill "$PHONE_PID" 2>/dev/null; wait "$PHONE_PID" 2>/dev/null; PHONE_PID=""
}
pl_phone_dial() { pl_phone "$1" "$2" --dial "$3" --talk 1; }

# pl_stop: stops prov and cms (one TAP case each: exit 0 on SIGTERM) and the KDC.
pl_stop() {
    local p n rc rep
    pl_phone_stop
    for n in prov cms; do
        if [ $n = prov ]; then p=$PROV_PID; else p=$CMS_PID; fi
        kill -TERM "$p" 2>/dev/null
        wait "$p"; rc=$?
        [ "$rc" = 0 ] && ok "cablekey-$n stops cleanly on SIGTERM" ||
            not_ok "cablekey-$n stops cleanly on SIGTERM" "exit $rc"
    done
    rep=$(grep -Eh "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error|SUMMARY: (Address|Undefined|Leak)" \
        "$tmp/prov.out" "$tmp/cms.stderr" "$tmp/prov.log" "$tmp/cms.log" 2>/dev/null | head -n 5)
    [ -z "$rep" ] && ok "no sanitizer report from cablekey-prov or cablekey-cms" ||
        not_ok "no sanitizer report from cablekey-prov or cablekey-cms" "$rep"
    realm_stop_kdc
}
