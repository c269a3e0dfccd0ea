#!/bin/bash
# Every alarm the KDC raises itself, provoked for real with MIT clients against cablekey-kdc,
# and seen in all three places: the KDC's log (syslog sink), the database's alarm table
# (`cablekey alarms`), and a webhook (a python3 receiver that checks the HMAC signature):
#   preauth-spike  wrong passwords for one principal over alarm_preauth_threshold
#   clock-skew     MIT kinit under faketime (+2 h): PA-ENC-TIMESTAMP refused as skew
#   kvno-missing   a TGT whose krbtgt kvno was purged by a rotation (--keep 1), then kvno
#   cert-expiry    the PKINIT identity and anchors checked at start (cert_expiry_warn 20000d:
#                  every certificate is "close")
#   kdc-down       fleet_peers names a port nobody answers; a second KDC started there clears it
#   db-unreachable (k9fleet's code raises it) a KDC on a throw-away PostgreSQL that is stopped:
#                  in the log and the webhook at once, in the table once it is started again
# Then: `alarms show --json`, `alarms clear` (audited), run-time log levels (SIGUSR1/SIGUSR2 and
# SIGHUP re-reading [logging] level). Ports 21400-21429.
# shellcheck source=tests/interop/lib.sh
. "$(dirname "$0")/lib.sh"

require_tool "MIT client" kinit kvno
require_tool "faketime" faketime
require_tool "curl" curl

PW='Alarm-Test-Pw-1'
CAPW='Alarm-Test-Ca-Pw-1'
printf '%s\n' "$PW" >"$tmp/pw"; chmod 600 "$tmp/pw"
printf '%s\n' "$CAPW" >"$tmp/capw"; chmod 600 "$tmp/capw"
printf 'webhook-secret-for-the-alarm-test\n' >"$tmp/hook.secret"; chmod 600 "$tmp/hook.secret"

realm_init ALARM.TEST
PORT=21400; PEER_PORT=21401; METRICS_PORT=21402; HOOK_PORT=21403
CK_LISTEN=("127.0.0.1:$PORT")
write_krb5_conf "$KRB5_CONFIG" "127.0.0.1:$PORT"
realm_addprinc alice 'alice-pw-1'
realm_addprinc bob 'bob-pw-1'
realm_addprinc host/svc.test --random

timeout 60 "$CK_CLI" pki init --dir "$tmp/pki" --realm "$REALM" --org "Alarm Test" \
    --password-file "$tmp/pw" --ca-password-file "$tmp/capw" </dev/null >"$tmp/pki.log" 2>&1 ||
    bail "cablekey pki init" "$(tail -n 5 "$tmp/pki.log")"

# The webhook receiver: one JSON line per verified POST; a bad signature is answered 401 and
# written to rejected.log.
cat >"$tmp/hook.py" <<'EOF'
import hashlib, hmac, http.server, sys
secret = open(sys.argv[2], 'rb').read().rstrip(b'\r\n')
out = sys.argv[3]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get('Content-Length', '0')))
        ts = self.headers.get('X-Cablekey-Timestamp', '')
        sig = self.headers.get('X-Cablekey-Signature', '')
        want = 'sha256=' + hmac.new(secret, ts.encode() + b'.' + body, hashlib.sha256).hexdigest()
        ok = hmac.compare_digest(sig, want)
        with open(out if ok else out + '.rejected', 'ab') as f:
            f.write(body + b'\n')
        self.send_response(204 if ok else 401)
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()
EOF
"$CK_PY" "$tmp/hook.py" "$HOOK_PORT" "$tmp/hook.secret" "$tmp/hook.jsonl" 2>"$tmp/hook.err" &
CK_BG_PIDS+=($!)
for _ in $(seq 1 50); do ck_tcp_probe "127.0.0.1:$HOOK_PORT" && break; sleep 0.1; done

CK_KDCDEFAULTS_EXTRA=(
    "metrics_listen = 127.0.0.1:$METRICS_PORT"
    "alarm_webhook_url = http://127.0.0.1:$HOOK_PORT/alarms"
    "alarm_webhook_secret_file = $tmp/hook.secret"
    "alarm_host = kdc-a.alarm.test"
    "alarm_preauth_threshold = 3"
    "alarm_clock_skew_threshold = 2"
    "cert_expiry_warn = 20000d"
    "fleet_peers = 127.0.0.1:$PEER_PORT"
    "fleet_probe_interval = 1s"
    "fleet_probe_tries = 2"
    "keyagent_listen = none"
)
# Started by hand, not with realm_start_kdc_conf: its --log-level flag would override the
# [logging] level that the SIGHUP case below changes.
: >"$tmp/kdc.log"
write_kdc_conf "$tmp/kdc.conf"
printf '[logging]\n    level = debug\n' >>"$tmp/kdc.conf"
write_krb5_conf "$tmp/krb5-kdc-side.conf" "127.0.0.1:$PORT"
KRB5_CONFIG="$tmp/krb5-kdc-side.conf" "$CK_KDC" -c "$tmp/kdc.conf" --log "$tmp/kdc.log" \
    --log-flush-ms 0 --pkinit-identity "$tmp/pki/kdc.p12" --pkinit-password-file "$tmp/pw" \
    --pkinit-anchors "$tmp/pki/sp-root.pem,$tmp/pki/mfg-root.pem" \
    >"$tmp/kdc.stderr" 2>&1 </dev/null &
KDC_PID=$!
ck_wait_kdc_ready

alarms() { timeout 30 "$CK_CLI" alarms "$@" --db "$DB" </dev/null; }

# wait_for DESC CMD...: polls CMD (every 0.2 s, at most 20 s) until it succeeds: one TAP case.
wait_for() {
    local desc=$1 i; shift
    for i in $(seq 1 100); do
        if "$@" >/dev/null 2>&1; then ok "$desc"; return 0; fi
        sleep 0.2
    done
    not_ok "$desc" "never true: $*; KDC log:
$(grep -E 'alarm' "$tmp/kdc.log" | tail -n 10)"
    return 1
}
# wait_log PATTERN DESC: like assert_log, with wait_for's patience (ASan builds are slow).
wait_log() { wait_for "$2" grep -Eq -- "$1" "$tmp/kdc.log"; }
in_table() { alarms list --code "$1" "${@:2}" | grep -q -- "code=$1"; }
in_hook() { grep -q "\"code\":\"$1\"" "$tmp/hook.jsonl" 2>/dev/null; }
hook_has() { grep -q -- "$1" "$tmp/hook.jsonl" 2>/dev/null; }

# ---- cert-expiry (checked at start) --------------------------------------------------------
wait_log 'alarm cert-expiry (major|warning|critical) subject=[^ ]*kdc\.p12: ' \
    "cert-expiry: the KDC certificate (pkinit_identity) is named in the log"
wait_for "cert-expiry: in the alarm table" in_table cert-expiry
wait_for "cert-expiry: posted to the webhook, signature verified" in_hook cert-expiry
expect_output "cert-expiry: the anchor file is named too" 'sp-root\.pem' alarms list --code cert-expiry

# ---- preauth-spike --------------------------------------------------------------------------
for i in 1 2 3; do kinit_pw alice "wrong-$i" >/dev/null 2>&1; done
wait_log 'alarm preauth-spike minor subject=alice@ALARM\.TEST host=kdc-a\.alarm\.test count=1: 3 failed pre-authentications' \
    "preauth-spike: logged with principal, host and count"
wait_for "preauth-spike: in the alarm table for alice" in_table preauth-spike --subject alice@ALARM.TEST
wait_for "preauth-spike: posted to the webhook" hook_has '"subject":"alice@ALARM.TEST"'
kinit_pw bob 'wrong' >/dev/null 2>&1
sleep 0.5
[ -z "$(alarms list --subject bob@ALARM.TEST)" ] && ok "preauth-spike: bob's one failure raises nothing" ||
    not_ok "preauth-spike: bob's one failure raises nothing" "$(alarms list --subject bob@ALARM.TEST)"
expect_success "kinit alice with the right password still works" kinit_pw alice 'alice-pw-1'

# ---- kvno-missing ---------------------------------------------------------------------------
expect_success "kvno host/svc.test with alice's TGT (krbtgt kvno 1)" timeout 20 kvno host/svc.test
expect_success "rotate krbtgt keeping only the new kvno" \
    timeout 30 "$CK_CLI" principal rotate --db "$DB" "krbtgt/$REALM" --keep 1
ck_settle
kdestroy -q -c "$KRB5CCNAME" 2>/dev/null
kinit_pw alice 'alice-pw-1' >/dev/null 2>&1
# An old TGT: issued under kvno 1, which the record no longer holds. Made by hand so the test
# does not depend on the client keeping the old ccache: rotate once more after a fresh kinit.
expect_success "rotate krbtgt again (alice's TGT is under the purged kvno 2)" \
    timeout 30 "$CK_CLI" principal rotate --db "$DB" "krbtgt/$REALM" --keep 1
ck_settle
expect_failure "kvno with a TGT under a purged krbtgt kvno fails" '.' timeout 20 kvno host/svc.test
wait_log "alarm kvno-missing major subject=krbtgt/ALARM\.TEST@ALARM\.TEST .*kvno 2.*holds kvno 3" \
    "kvno-missing: logged naming the ticket's server, its kvno and the kvno held"
wait_log "alarm kvno-missing .*from 127\.0\.0\.1 \(for host/svc\.test@ALARM\.TEST\)" \
    "kvno-missing: the cause names the client's address and the service asked for"
wait_for "kvno-missing: in the alarm table" in_table kvno-missing
wait_for "kvno-missing: posted to the webhook" in_hook kvno-missing

# ---- clock-skew -----------------------------------------------------------------------------
kdestroy -q -c "$KRB5CCNAME" 2>/dev/null
for i in 1 2; do
    printf '%s\n' 'bob-pw-1' | timeout 20 faketime -f +2h kinit bob >/dev/null 2>&1
done
wait_log 'alarm clock-skew minor subject=ALARM\.TEST .*2 clock-skew errors .*bob@ALARM\.TEST.*NTP' \
    "clock-skew: logged with the count, the client and the remedy"
wait_for "clock-skew: in the alarm table" in_table clock-skew
wait_for "clock-skew: posted to the webhook" in_hook clock-skew

# ---- kdc-down, then cleared by a second KDC answering there ---------------------------------
wait_log "alarm kdc-down major subject=127\.0\.0\.1:$PEER_PORT .*did not answer 2 probes" \
    "kdc-down: the silent peer is named after fleet_probe_tries probes"
wait_for "kdc-down: in the alarm table" in_table kdc-down --active
wait_for "kdc-down: posted to the webhook" in_hook kdc-down
cat >"$tmp/kdc-b.conf" <<EOF
[kdcdefaults]
    kdc_listen = 127.0.0.1:$PEER_PORT
    metrics_listen = none
    alarm_table = no
    keyagent_listen = none
[realms]
    $REALM = {
        database_name = $DB
        key_stash_file = $STASH
    }
EOF
"$CK_KDC" -c "$tmp/kdc-b.conf" --log "$tmp/kdc-b.log" >"$tmp/kdc-b.stderr" 2>&1 </dev/null &
CK_BG_PIDS+=($!)
wait_for "kdc-down: cleared once the peer answers (log)" \
    grep -Eq "alarm kdc-down major subject=127\.0\.0\.1:$PEER_PORT host=[^ ]+ count=[0-9]+ cleared" "$tmp/kdc.log"
wait_for "kdc-down: the table row is closed by the condition" \
    bash -c "'$CK_CLI' alarms list --db '$DB' --code kdc-down | grep -q 'state=cleared cleared_by=condition'"
wait_for "kdc-down: the clear is posted to the webhook" hook_has '"code":"kdc-down".*"cleared":true'

# ---- the CLI ---------------------------------------------------------------------------------
id=$(alarms list --code preauth-spike | sed -n 's/^id=\([0-9]*\) .*/\1/p' | head -n1)
expect_output "alarms show ID --json" "\"id\":$id,\"code\":\"preauth-spike\",\"severity\":\"minor\",\"subject\":\"alice@ALARM.TEST\"" \
    alarms show "$id" --json
expect_output "alarms list --json is one array" '^\[\{"id":[0-9]+,.*\}\]$' alarms list --json
expect_output "alarms clear ID" '^1 alarm cleared$' alarms clear "$id"
expect_output "the cleared row names the operator" 'state=cleared cleared_by="?uid ' alarms list --code preauth-spike
expect_output "the clear is in the audit log" 'alarm\.clear' \
    timeout 30 "$CK_CLI" audit list --db "$DB" --action alarm.clear
expect_failure "alarms clear of nothing active fails clearly" 'no active alarm matches' alarms clear "$id"
expect_failure "alarms clear needs an id or a code" 'name an alarm id or --code' alarms clear
expect_failure "an unknown code is a usage error" 'unknown alarm code' alarms list --code no-such
[ -z "$(alarms list --active --code preauth-spike)" ] &&
    ok "alarms list --active leaves the cleared row out" ||
    not_ok "alarms list --active leaves the cleared row out" "$(alarms list --active --code preauth-spike)"
[ ! -s "$tmp/hook.jsonl.rejected" ] && ok "the webhook rejected no post (every signature valid)" ||
    not_ok "the webhook rejected no post" "$(head -n 3 "$tmp/hook.jsonl.rejected")"

# ---- run-time log levels ---------------------------------------------------------------------
kill -USR2 "$KDC_PID"
wait_log 'SIGUSR2: log level debug -> info' "SIGUSR2 lowers the level (debug -> info)"
kill -USR1 "$KDC_PID"
wait_log 'SIGUSR1: log level info -> debug' "SIGUSR1 raises it again"
before=$(log_count 'AS_REQ .*ISSUE')
sed -i 's/^    level = debug$/    level = notice/' "$tmp/kdc.conf"
kill -HUP "$KDC_PID"
wait_log 'SIGHUP: log level debug -> notice' "SIGHUP applies [logging] level = notice"
wait_log 'SIGHUP: configuration reloaded' "... and the reload completes"
sleep 0.3
kinit_pw alice 'alice-pw-1' >/dev/null 2>&1
after=$(log_count 'AS_REQ .*ISSUE')
[ "$after" = "$before" ] && ok "at notice, request lines (info) are not logged" ||
    not_ok "at notice, request lines (info) are not logged" "$before -> $after"
for i in 1 2 3; do kinit_pw bob "wrong-$i" >/dev/null 2>&1; done
wait_log 'alarm preauth-spike minor subject=bob@ALARM\.TEST .*count=1:' \
    "at notice, an alarm (warning) is still logged"

# ---- --check -----------------------------------------------------------------------------------
check() {
    KRB5_CONFIG="$tmp/krb5-kdc-side.conf" timeout 60 "$CK_KDC" -c "$tmp/kdc.conf" --check \
        --log stderr --pkinit-identity "$tmp/pki/kdc.p12" --pkinit-password-file "$tmp/pw" \
        --pkinit-anchors "$tmp/pki/sp-root.pem,$tmp/pki/mfg-root.pem"
}
expect_output "--check names the alarm sinks" \
    "alarms: sinks log, table, webhook http://127\.0\.0\.1:$HOOK_PORT/alarms; .*1 fleet peer" check
expect_output "--check names the metrics address" "metrics: 127\.0\.0\.1:$METRICS_PORT" check
chmod 644 "$tmp/hook.secret"
expect_failure "--check refuses a webhook secret others can read" 'alarm_webhook: .*0600' check
chmod 600 "$tmp/hook.secret"
sed -i '/alarm_webhook_secret_file/d' "$tmp/kdc.conf"
expect_failure "--check refuses a webhook URL without its secret" \
    'alarm_webhook_url and alarm_webhook_secret_file go together' check

realm_stop_kdc

# ---- db-unreachable (k9fleet's alarm) on PostgreSQL: log and webhook at once, the table once
# the database answers again ---------------------------------------------------------------------
# shellcheck source=tests/interop/pg_lib.sh
. "$CK_INTEROP_DIR/pg_lib.sh"
# pg_start must not install its own EXIT trap: ours stops the server and does lib.sh's cleanup.
CK_PG_NO_TRAP=1
PG_KDC_PID=""
alarms_cleanup() {
    [ "$BASHPID" = "$CK_MAIN_PID" ] || return 0
    [ -n "$PG_KDC_PID" ] && { kill -KILL "$PG_KDC_PID" 2>/dev/null; wait "$PG_KDC_PID" 2>/dev/null; }
    pg_stop
    ck_cleanup
}
trap alarms_cleanup EXIT
pg_start || bail "start a throw-away PostgreSQL server"
PG_OPTS="-c listen_addresses='' -c unix_socket_directories='$CK_PG_DIR/sock' -p $PGPORT -c fsync=off"
pg_down() { pg_as "$CK_PG_BIN/pg_ctl" -D "$CK_PG_DIR/data" -m fast -w -t 30 stop >/dev/null 2>&1; }
pg_up() {
    pg_as "$CK_PG_BIN/pg_ctl" -D "$CK_PG_DIR/data" -l "$CK_PG_DIR/log/server.log" -w -t 60 \
        -o "$PG_OPTS" start >/dev/null 2>&1
}
PGSTASH="$tmp/pg.stash"
pgcli() { timeout 30 "$CK_CLI" "$@" --db "$CK_PG_URI" --stash "$PGSTASH" </dev/null; }
pgcli init --realm "$REALM" >"$tmp/pginit.log" 2>&1 ||
    bail "cablekey init on PostgreSQL" "$(cat "$tmp/pginit.log")"
pgcli principal add carol --password 'carol-pw-1' >>"$tmp/pginit.log" 2>&1 || bail "add carol"
{
    echo "[kdcdefaults]"
    echo "    kdc_listen = 127.0.0.1:$PORT"
    echo "    metrics_listen = none"
    echo "    keyagent_listen = none"
    echo "    alarm_host = kdc-pg.alarm.test"
    echo "    alarm_webhook_url = http://127.0.0.1:$HOOK_PORT/alarms"
    echo "    alarm_webhook_secret_file = $tmp/hook.secret"
    echo "[realms]"
    echo "    $REALM = {"
    echo "        database_name = $CK_PG_URI"
    echo "        key_stash_file = $PGSTASH"
    echo "    }"
} >"$tmp/kdc-pg.conf"
: >"$tmp/kdc-pg.log"
"$CK_KDC" -c "$tmp/kdc-pg.conf" --log "$tmp/kdc-pg.log" --log-flush-ms 0 \
    >"$tmp/kdc-pg.stderr" 2>&1 </dev/null &
PG_KDC_PID=$!
for _ in $(seq 1 100); do ck_tcp_probe "127.0.0.1:$PORT" && break; sleep 0.1; done
expect_success "KDC on PostgreSQL: carol gets a ticket" kinit_pw carol 'carol-pw-1'
pg_down || bail "stop PostgreSQL"
kinit_pw carol 'carol-pw-1' >/dev/null 2>&1
wait_for "db-unreachable: logged at crit by the KDC on PostgreSQL" grep -Eq \
    'cablekey-kdc\[crit\]: alarm db-unreachable critical subject=[^ ]+ host=kdc-pg\.alarm\.test count=1: ' \
    "$tmp/kdc-pg.log"
wait_for "db-unreachable: posted to the webhook while the database is down" \
    hook_has '"code":"db-unreachable".*"host":"kdc-pg.alarm.test"'
pg_up || bail "start PostgreSQL again"
for _ in $(seq 1 20); do kinit_pw carol 'carol-pw-1' >/dev/null 2>&1 && break; sleep 0.5; done
wait_for "db-unreachable: cleared when the database answers again" grep -Eq \
    'alarm db-unreachable critical subject=[^ ]+ host=kdc-pg\.alarm\.test count=[0-9]+ cleared' \
    "$tmp/kdc-pg.log"
# The table write failed while the database was down; the sink retries on its backoff (1, 2,
# 4, 8... s), so the row arrives once the database answers.
found=0
for _ in $(seq 1 90); do
    pgcli alarms list --code db-unreachable 2>/dev/null | grep -q 'host=kdc-pg.alarm.test' &&
        { found=1; break; }
    sleep 1
done
[ $found = 1 ] && ok "db-unreachable: in the PostgreSQL alarm table after the outage" ||
    not_ok "db-unreachable: in the PostgreSQL alarm table after the outage" "$(pgcli alarms list 2>&1)"
kill -TERM "$PG_KDC_PID"; wait "$PG_KDC_PID"; rc=$?; PG_KDC_PID=""
[ $rc = 0 ] && ok "KDC on PostgreSQL stops cleanly" || not_ok "KDC on PostgreSQL stops cleanly" "exit $rc"
done_testing
