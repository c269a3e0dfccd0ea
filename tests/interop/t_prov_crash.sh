#!/usr/bin/env bash
# kill -9 of cablekey-prov in the middle of a provisioning flow (seeded crash points,
# CK_PROV_CRASH=<point>: the back process dies at once, as kill -9 would): afterwards the device
# is either fully provisioned (state, number, certificate, the KDC's row active) or untouched,
# never half-provisioned; a retry with the same Idempotency-Key completes it exactly once (one
# "provision" event, "replayed" when the first call had committed). Also a literal kill -9 of
# the whole daemon at a random moment of a request.
# The webhook sender's point (webhook-before-mark: the receiver has the delivery, the outbox does
# not know yet) is a round of its own at the end: the delivery comes again after the restart.
#   CK_PROV_CRASH_ROUNDS  rounds (default 4: each crash point once, then the SIGKILL round;
#                         `make soak` runs 1000)
#   CK_PROV_CRASH_SEED    the seed that draws the points of rounds past the first four (1)
. "$(dirname "$0")/lib.sh"

require_tool "MIT client tools" kinit kdestroy
require_tool "curl with GSS-API (Negotiate)" curl
curl -V | grep -qE 'GSS-API|SPNEGO' || bail "curl lacks GSS-API/SPNEGO support"
CK_PROV="$CK_BUILD/cablekey-prov"
[ -x "$CK_PROV" ] || bail "cablekey-prov not built at $CK_PROV"
[ -x "$CK_BUILD/prov_admit" ] || bail "prov_admit not built"
ROUNDS=${CK_PROV_CRASH_ROUNDS:-4}
SEED=${CK_PROV_CRASH_SEED:-1}
POINTS=(after-sign before-commit after-commit)

realm_init TEST.REALM
realm_addprinc oss osspw
realm_addprinc HTTP/localhost --random
realm_start_kdc
echo "    localhost = $REALM" >>"$KRB5_CONFIG"
realm_ktexport "$tmp/http.keytab" HTTP/localhost@TEST.REALM || bail "export the HTTP key"
echo "pkipw" >"$tmp/pki.pw"; chmod 600 "$tmp/pki.pw"
timeout 120 "$CK_CLI" pki init --dir "$tmp/pki" --realm "$REALM" --org Test --key ec-p256 \
    --password-file "$tmp/pki.pw" >"$tmp/pki.log" 2>&1 || bail "pki init" "$(cat "$tmp/pki.log")"
timeout 60 "$CK_CLI" pki issue-device --dir "$tmp/pki" --mac 00:11:22:33:55:01 \
    --out "$tmp/dev.p12" --password-file "$tmp/pki.pw" --key ec-p256 --pem-out "$tmp/dev" \
    --pem-nopass >>"$tmp/pki.log" 2>&1 || bail "issue device" "$(tail -5 "$tmp/pki.log")"
"$CK_BUILD/prov_admit" "$DB" "$STASH" "$tmp/dev-cert.pem" >"$tmp/admit.log" 2>&1 ||
    bail "admit" "$(cat "$tmp/admit.log")"
MAC=00:11:22:33:55:01

PPORT=$(free_port) || bail "pick a port for cablekey-prov"
HOOK_PORT=$(free_port) || bail "pick a port for the webhook receiver"
printf 'crash-test-webhook-secret\n' >"$tmp/hook.secret"; chmod 600 "$tmp/hook.secret"
# The webhook receiver: one line per POST, its X-Cablekey-Delivery id (written before the answer).
cat >"$tmp/hook.py" <<'EOF'
import http.server, sys
out = sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get('Content-Length', '0')))
        with open(out, 'a') as f:
            f.write(self.headers.get('X-Cablekey-Delivery', '?') + '\n')
        self.send_response(204)
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()
EOF
: >"$tmp/hook.log"
"$CK_PY" "$tmp/hook.py" "$HOOK_PORT" "$tmp/hook.log" 2>"$tmp/hook.err" &
CK_BG_PIDS+=($!)
for _ in $(seq 1 50); do ck_tcp_probe "127.0.0.1:$HOOK_PORT" && break; sleep 0.1; done
ck_tcp_probe "127.0.0.1:$HOOK_PORT" || bail "the webhook receiver did not start" "$(cat "$tmp/hook.err")"
echo "oss@TEST.REALM iap" >"$tmp/prov.acl"
cat >"$tmp/prov.conf" <<EOF
[prov]
    database = $DB
    stash = $STASH
    keytab = $tmp/http.keytab
    acl_file = $tmp/prov.acl
    listen = 127.0.0.1:$PPORT
    ca_cert = $tmp/pki/prov-ca.pem
    ca_key = $tmp/pki/prov-ca-key.pem
    ca_password_file = $tmp/pki.pw
    phone_id_key = $tmp/pki/phone-id.key
    fqdn_domain = mta.test.example
    fqdn_listen = none
    devchan_listen = none
    pool = north 15550100000 15550199999
    webhook = crashhook http://127.0.0.1:$HOOK_PORT/hook $tmp/hook.secret
    log = FILE:$tmp/prov.log
EOF

PROV_PID=""
start_prov() { # start_prov [CRASH_POINT]
    CK_PROV_CRASH="${1:-}" "$CK_PROV" -c "$tmp/prov.conf" >>"$tmp/prov.out" 2>&1 </dev/null &
    PROV_PID=$!
    CK_BG_PIDS+=("$PROV_PID")
    for _ in $(seq 1 100); do
        ck_tcp_probe "127.0.0.1:$PPORT" && return 0
        kill -0 "$PROV_PID" 2>/dev/null || break
        sleep 0.1
    done
    bail "cablekey-prov did not start" "$(tail -20 "$tmp/prov.log" 2>/dev/null)"
}
stop_prov() { # waits for the daemon (it stops by itself once its back process is gone)
    local i
    for i in $(seq 1 50); do kill -0 "$PROV_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PROV_PID" 2>/dev/null
    wait "$PROV_PID" 2>/dev/null
    # The port is free again before the next start.
    for i in $(seq 1 50); do ck_tcp_probe "127.0.0.1:$PPORT" || return 0; sleep 0.1; done
}

URL="http://localhost:$PPORT/api/v1"
api() { # api METHOD PATH [BODY [curl args]] -> $tmp/body, prints the status
    local m=$1 p=$2 b=${3:-}; shift 3 2>/dev/null || shift $#
    local args=(-s -o "$tmp/body" -w '%{http_code}' -X "$m" --max-time 30 --negotiate -u :)
    [ -n "$b" ] && args+=(-H 'Content-Type: application/json' --data-binary "$b")
    curl "${args[@]}" "$@" "$URL$p"
}
py() { "$CK_PY" -c "import json; d=json.load(open('$tmp/body')); $1" 2>/dev/null; }
kinit_pw oss osspw >/dev/null 2>&1 || bail "kinit oss"

start_prov
api POST /customers '{"name":"Ann","address":"1 Main St","segment":"north"}' >/dev/null
CUST=$(py "print(d['id'])")
[ -n "$CUST" ] || bail "add the customer" "$(cat "$tmp/body")"
stop_prov_clean() { kill -TERM "$PROV_PID"; wait "$PROV_PID" 2>/dev/null; stop_prov; }
stop_prov_clean

# The device's consistency: "untouched", "provisioned" or "HALF: ..." (and the count of
# provision events in its history).
state_of() {
    api GET "/devices/$MAC" >/dev/null
    py "
s=d['state']; full=(s=='provisioned' and len(d['numbers'])==1 and d['cert'] is not None and d['kdc_state']=='active' and d['fqdn']!=None)
none=(s=='unprovisioned' and d['numbers']==[] and d['cert'] is None and d['kdc_state']=='unprovisioned')
n=sum(1 for e in d['history'] if e['action']=='provision')
print(('provisioned' if full else 'untouched' if none else 'HALF: '+json.dumps(d))+' '+str(n))"
}

RANDOM=$SEED
fails=0
for r in $(seq 1 "$ROUNDS"); do
    if [ "$r" -le ${#POINTS[@]} ]; then point=${POINTS[$((r - 1))]}
    elif [ "$r" = $((${#POINTS[@]} + 1)) ]; then point=sigkill
    else point=${POINTS[$((RANDOM % ${#POINTS[@]}))]}; [ $((RANDOM % 4)) = 0 ] && point=sigkill
    fi
    key="crash-$SEED-$r"
    start_prov
    api GET "/devices/$MAC" >/dev/null
    before=$(py "print(sum(1 for e in d['history'] if e['action']=='provision'))")
    stop_prov_clean
    if [ "$point" = sigkill ]; then
        start_prov
        api POST "/devices/$MAC/provision" "{\"customer\":$CUST}" -H "Idempotency-Key: $key" \
            >/dev/null &
        cpid=$!
        sleep "0.0$((RANDOM % 10))"
        # The daemon and its back and signer processes (found by parent id) die together.
        kids=$(pgrep -P "$PROV_PID"); grandkids=$(for k in $kids; do pgrep -P "$k"; done)
        kill -KILL "$PROV_PID" $kids $grandkids 2>/dev/null
        wait "$cpid" 2>/dev/null
        stop_prov
    else
        start_prov "$point"
        st=$(api POST "/devices/$MAC/provision" "{\"customer\":$CUST}" -H "Idempotency-Key: $key")
        stop_prov
        if [ "$st" = 200 ]; then
            not_ok "round $r ($point): the crash point was not reached" "$(cat "$tmp/body")"
            fails=$((fails + 1)); continue
        fi
    fi
    start_prov
    after=$(state_of)
    case "$point:${after%% *}" in
        after-sign:untouched|before-commit:untouched|after-commit:provisioned|sigkill:untouched|sigkill:provisioned) ;;
        *) not_ok "round $r ($point): after the crash the device is ${after%% *}" "$after"
           fails=$((fails + 1)); stop_prov_clean; continue ;;
    esac
    committed=${after%% *}
    st=$(api POST "/devices/$MAC/provision" "{\"customer\":$CUST}" -H "Idempotency-Key: $key")
    replayed=$(py "print(d.get('replayed') is True)")
    final=$(state_of)
    want_replayed=False; [ "$committed" = provisioned ] && want_replayed=True
    if [ "$st" = 200 ] && [ "$replayed" = "$want_replayed" ] && [ "${final%% *}" = provisioned ] &&
       [ "${final##* }" = $((before + 1)) ]; then
        [ "$ROUNDS" -le 8 ] && ok "round $r ($point): ${committed} after the crash; the retry completes it exactly once"
    else
        not_ok "round $r ($point): the retry completes it exactly once" \
            "status $st replayed $replayed (want $want_replayed) final $final before $before"
        fails=$((fails + 1))
    fi
    # Back to unprovisioned for the next round.
    st=$(api POST "/devices/$MAC/deprovision" '{"reason":"next round"}')
    [ "$st" = 200 ] || { not_ok "round $r: deprovision for the next round" "$(cat "$tmp/body")"; fails=$((fails + 1)); }
    stop_prov_clean
done
# webhook-before-mark: the back process dies after a receiver answered 2xx and before the
# outbox row is marked delivered (the provision itself has committed, so its answer may or may
# not have come back). After the restart the same delivery id reaches the receiver again: at
# least once, never lost; and the device is provisioned exactly once.
# Whatever the rounds above left pending goes out first, so that the crash is the provision's.
start_prov
for _ in $(seq 1 300); do
    api GET "/webhooks/deliveries?limit=100" >/dev/null
    [ "$(py "print(sum(1 for x in d['deliveries'] if x['state']=='pending'))")" = 0 ] && break
    sleep 0.1
done
stop_prov_clean
start_prov webhook-before-mark
api POST "/devices/$MAC/provision" "{\"customer\":$CUST}" -H "Idempotency-Key: crash-hook" >/dev/null
died=no
for _ in $(seq 1 300); do kill -0 "$PROV_PID" 2>/dev/null || { died=yes; break; }; sleep 0.1; done
stop_prov
if [ "$died" != yes ]; then
    not_ok "webhook-before-mark: the crash point was not reached" "$(tail -5 "$tmp/prov.log")"
else
    last=$(tail -n 1 "$tmp/hook.log")
    start_prov
    again=no
    for _ in $(seq 1 300); do
        [ "$(grep -cx -- "$last" "$tmp/hook.log")" -ge 2 ] && { again=yes; break; }
        sleep 0.1
    done
    after=$(state_of)
    st=$(api POST "/devices/$MAC/provision" "{\"customer\":$CUST}" -H "Idempotency-Key: crash-hook")
    final=$(state_of)
    if [ -n "$last" ] && [ "$again" = yes ] && [ "${after%% *}" = provisioned ] && [ "$st" = 200 ] &&
       [ "$final" = "$after" ]; then
        ok "webhook-before-mark: delivery $last reaches the receiver again after the crash; the device provisioned once"
    else
        not_ok "webhook-before-mark: redelivered after the crash" \
            "last '$last' again $again after $after status $st final $final log $(tr '\n' ' ' <"$tmp/hook.log")"
    fi
    stop_prov_clean
fi
[ "$ROUNDS" -gt 8 ] && { [ "$fails" = 0 ] && ok "$ROUNDS crash rounds (seed $SEED): never half-provisioned, every retry exactly once" ||
    not_ok "$ROUNDS crash rounds (seed $SEED)" "$fails failed"; }
kdestroy >/dev/null 2>&1
realm_stop_kdc
done_testing
