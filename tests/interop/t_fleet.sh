#!/usr/bin/env bash
# tests/interop/t_fleet.sh — a KDC fleet (docs/fleet.md): three cablekey-kdc on one throw-away
# PostgreSQL, MIT kinit/kvno with a krb5.conf listing all three.
#   - one KDC kill -9'd: clients keep working on the others; restarted, it serves again;
#   - a principal disabled through the database is refused by all three within a bounded wait
#     (LISTEN/NOTIFY; polled, never a sleep that asserts timing);
#   - PostgreSQL stopped: clients keep working from the caches within db_max_staleness (short
#     here), a write is refused cleanly, the KDC's own writes (lockout) are deferred and logged,
#     db-unreachable is logged once per KDC; past the limit every KDC refuses with
#     KDC_ERR_SVC_UNAVAILABLE and its e-text;
#   - PostgreSQL started: service and writes recover without restarting any KDC, and a change
#     made afterwards reaches all three again.
# Ports: 127.0.0.1:21001-21003 (UDP and TCP). A missing PostgreSQL or MIT tool is a failure.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
CK_PG_NO_TRAP=1
. "$CK_INTEROP_DIR/pg_lib.sh"

STALE=8                    # db_max_staleness (s): long enough for the "within" checks
CK_TIMEOUT=10
KPORTS=(21001 21002 21003)
KPIDS=("" "" "")

fleet_cleanup() {
    local p
    [ "$BASHPID" = "$CK_MAIN_PID" ] || return 0
    for p in "${KPIDS[@]}"; do
        [ -n "$p" ] && { kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; }
    done
    pg_stop
    ck_cleanup
}
trap fleet_cleanup EXIT

require_tool "MIT clients" kinit kvno klist
[ -x "$CK_KDC" ] && [ -x "$CK_CLI" ] || bail "cablekey-kdc and cablekey built in $CK_BUILD"
pg_start || bail "start a throw-away PostgreSQL server"
ok "throw-away PostgreSQL started"

# The same server, stopped and started again over the same data directory.
PG_OPTS="-c listen_addresses='' -c unix_socket_directories='$CK_PG_DIR/sock' -p $PGPORT -c fsync=off -c max_connections=50"
pg_down() { pg_as "$CK_PG_BIN/pg_ctl" -D "$CK_PG_DIR/data" -m fast -w -t 30 stop >/dev/null 2>&1; }
pg_up() {
    pg_as "$CK_PG_BIN/pg_ctl" -D "$CK_PG_DIR/data" -l "$CK_PG_DIR/log/server.log" -w -t 60 \
        -o "$PG_OPTS" start >/dev/null 2>&1
}

REALM=FLEET.TEST
DBURI="$CK_PG_URI"
STASH="$tmp/fleet.stash"
cli() { timeout 30 "$CK_CLI" "$@" --db "$DBURI" --stash "$STASH" </dev/null; }

timeout 30 "$CK_CLI" init --db "$DBURI" --stash "$STASH" --realm "$REALM" >"$tmp/init.log" 2>&1 \
    </dev/null || bail "cablekey init on PostgreSQL" "$(cat "$tmp/init.log")"
for u in alice bob carol; do
    cli principal add "$u" --password "pw-$u" >>"$tmp/init.log" 2>&1 || bail "add $u" "$(cat "$tmp/init.log")"
done
cli principal add host/svc.fleet.test --random >>"$tmp/init.log" 2>&1 || bail "add host/svc"
ok "realm with users and a service on PostgreSQL"

# krb5.conf: all three KDCs (fleet.conf), and one per KDC (kdcN.conf) to ask a given KDC.
krb5_conf() { # krb5_conf FILE PORT...
    local f=$1 p; shift
    {
        echo "[libdefaults]"
        echo "    default_realm = $REALM"
        echo "    dns_lookup_kdc = false"
        echo "    dns_lookup_realm = false"
        echo "    rdns = false"
        echo "    kdc_timesync = 0"
        echo "    max_retries = 1"
        echo "[realms]"
        echo "    $REALM = {"
        for p in "$@"; do echo "        kdc = 127.0.0.1:$p"; done
        echo "    }"
    } >"$f"
}
krb5_conf "$tmp/fleet.conf" "${KPORTS[@]}"
for i in 0 1 2; do krb5_conf "$tmp/kdc$i.conf" "${KPORTS[$i]}"; done

start_kdc() { # start_kdc I
    local i=$1
    {
        echo "[kdcdefaults]"
        echo "    kdc_listen = 127.0.0.1:${KPORTS[$i]}"
        echo "    kdc_workers = 1"
        echo "    db_max_staleness = ${STALE}s"
        echo "[realms]"
        echo "    $REALM = {"
        echo "        database_name = $DBURI"
        echo "        key_stash_file = $STASH"
        echo "    }"
    } >"$tmp/kdc$i.kdc.conf"
    "$CK_KDC" -c "$tmp/kdc$i.kdc.conf" --log "$tmp/kdc$i.log" --log-level debug --log-flush-ms 0 \
        >>"$tmp/kdc$i.stderr" 2>&1 </dev/null &
    KPIDS[$i]=$!
    local n
    for n in $(seq 1 100); do
        ck_tcp_probe "127.0.0.1:${KPORTS[$i]}" && return 0
        kill -0 "${KPIDS[$i]}" 2>/dev/null || break
        sleep 0.1
    done
    bail "KDC $i started" "$(tail -n 20 "$tmp/kdc$i.log" "$tmp/kdc$i.stderr" 2>/dev/null)"
}

# as_user CONF PRINC: kinit (password on stdin) then kvno host/svc, with the given krb5.conf and a
# private ccache. Output in $tmp/client.out.
as_user() {
    local conf=$1 princ=$2 cc="$tmp/cc.$$.$RANDOM"
    {
        printf 'pw-%s\n' "$princ" | KRB5_CONFIG="$conf" KRB5CCNAME="FILE:$cc" \
            timeout -k 5 "$CK_TIMEOUT" kinit "$princ" &&
            KRB5_CONFIG="$conf" KRB5CCNAME="FILE:$cc" timeout -k 5 "$CK_TIMEOUT" \
                kvno "host/svc.fleet.test@$REALM"
    } >"$tmp/client.out" 2>&1
    local rc=$?
    rm -f "$cc"
    return $rc
}

# each_kdc DESC PRINC: the user works on every KDC, asked one by one.
each_kdc_ok() {
    local desc=$1 princ=$2 i bad=""
    for i in 0 1 2; do as_user "$tmp/kdc$i.conf" "$princ" || bad="$bad kdc$i:$(tail -n 2 "$tmp/client.out")"; done
    if [ -z "$bad" ]; then ok "$desc"; else not_ok "$desc" "$bad"; fi
}

# wait_refused_all DESC PRINC PATTERN [SECONDS]: polls until every KDC refuses PRINC with an
# error matching PATTERN (bounded).
wait_refused_all() {
    local desc=$1 princ=$2 pat=$3 limit=${4:-15} i t done_n
    local -a done=(0 0 0)
    for t in $(seq 1 $((limit * 10))); do
        done_n=0
        for i in 0 1 2; do
            if [ "${done[$i]}" = 0 ]; then
                if ! as_user "$tmp/kdc$i.conf" "$princ" && grep -Eq -- "$pat" "$tmp/client.out"; then
                    done[$i]=1
                fi
            fi
            [ "${done[$i]}" = 1 ] && done_n=$((done_n + 1))
        done
        [ $done_n = 3 ] && { ok "$desc"; return 0; }
        sleep 0.1
    done
    not_ok "$desc" "refused by $done_n of 3 within ${limit}s; last client output: $(cat "$tmp/client.out")"
    return 1
}

# wait_ok_all DESC PRINC [SECONDS]: polls until the user works on every KDC (bounded).
wait_ok_all() {
    local desc=$1 princ=$2 limit=${3:-30} i t done_n
    local -a done=(0 0 0)
    for t in $(seq 1 $((limit * 5))); do
        done_n=0
        for i in 0 1 2; do
            [ "${done[$i]}" = 0 ] && as_user "$tmp/kdc$i.conf" "$princ" && done[$i]=1
            [ "${done[$i]}" = 1 ] && done_n=$((done_n + 1))
        done
        [ $done_n = 3 ] && { ok "$desc"; return 0; }
        sleep 0.2
    done
    not_ok "$desc" "working on $done_n of 3 within ${limit}s; last client output: $(cat "$tmp/client.out")"
    return 1
}

for i in 0 1 2; do start_kdc "$i"; done
ok "three KDCs started on one PostgreSQL"
each_kdc_ok "each KDC issues TGT and service ticket (MIT kinit, kvno)" alice
if as_user "$tmp/fleet.conf" alice; then ok "the fleet krb5.conf works"; else
    not_ok "the fleet krb5.conf works" "$(cat "$tmp/client.out")"; fi

# ---- one KDC killed ----
kill -KILL "${KPIDS[0]}"; wait "${KPIDS[0]}" 2>/dev/null; KPIDS[0]=""
fails=0
for n in 1 2 3 4 5; do as_user "$tmp/fleet.conf" alice || fails=$((fails + 1)); done
if [ $fails = 0 ]; then ok "kdc0 kill -9'd: 5 of 5 client runs succeed on the others"; else
    not_ok "kdc0 kill -9'd: clients keep working" "$fails failures; $(cat "$tmp/client.out")"; fi
start_kdc 0
if as_user "$tmp/kdc0.conf" alice; then ok "kdc0 restarted serves again"; else
    not_ok "kdc0 restarted serves again" "$(cat "$tmp/client.out")"; fi

# ---- a revocation reaches every KDC ----
each_kdc_ok "bob works on every KDC (cached everywhere)" bob
cli principal modify bob --disallow-all-tix >"$tmp/mod.log" 2>&1 || not_ok "disable bob" "$(cat "$tmp/mod.log")"
wait_refused_all "bob disabled through the database: refused by all three KDCs" bob \
    "revoked|disabled|CLIENT_REVOKED|locked" 10

# ---- PostgreSQL stopped ----
each_kdc_ok "alice works on every KDC before the outage (caches warm)" alice
pg_down || bail "stop PostgreSQL"
ok "PostgreSQL stopped"
each_kdc_ok "database down: alice still served from the caches within db_max_staleness" alice
fails=0
for n in 1 2 3; do as_user "$tmp/fleet.conf" alice || fails=$((fails + 1)); done
if [ $fails = 0 ]; then ok "database down: the fleet krb5.conf works within the limit"; else
    not_ok "database down: the fleet krb5.conf works within the limit" "$(cat "$tmp/client.out")"; fi
expect_failure "database down: an administrative write is refused with a clear error" \
    "PostgreSQL|connect" cli principal modify carol --requires-preauth
all=1
for i in 0 1 2; do wait_file_grep "$tmp/kdc$i.log" "fleet db-unreachable: database .* unreachable" || all=0; done
if [ $all = 1 ]; then ok "each KDC logs db-unreachable"; else
    not_ok "each KDC logs db-unreachable" "$(grep -h fleet "$tmp"/kdc?.log)"; fi
n_unreach=$(grep -c "fleet db-unreachable" "$tmp/kdc1.log")
if [ "$n_unreach" = 1 ]; then ok "db-unreachable logged once"; else
    not_ok "db-unreachable logged once" "$n_unreach lines"; fi
if wait_file_grep "$tmp/kdc1.log" "lockout: writing .* failed, will retry"; then
    ok "the KDC's own writes (lockout events) are deferred and logged"
else
    not_ok "the KDC's own writes (lockout events) are deferred and logged" "$(tail -n 5 "$tmp/kdc1.log")"
fi
# MIT clients treat KDC_ERR_SVC_UNAVAILABLE as "try the next KDC" and never show it: the raw
# AS-REQ of krbpkt.py reads the error code and e-text each KDC sends.
wait_svc_unavailable_all() { # DESC SECONDS
    local desc=$1 limit=$2 i t done_n
    local -a done=(0 0 0)
    for t in $(seq 1 $((limit * 5))); do
        done_n=0
        for i in 0 1 2; do
            if [ "${done[$i]}" = 0 ]; then
                "${KRBPKT[@]}" send --kdc "127.0.0.1:${KPORTS[$i]}" --realm "$REALM" \
                    --cname alice --wait 2 built-minimal >"$tmp/pkt.out" 2>&1
                grep -Eq "error 29 .*etext=.*db_max_staleness" "$tmp/pkt.out" && done[$i]=1
            fi
            [ "${done[$i]}" = 1 ] && done_n=$((done_n + 1))
        done
        [ $done_n = 3 ] && { ok "$desc"; return 0; }
        sleep 0.2
    done
    not_ok "$desc" "refused by $done_n of 3 within ${limit}s; last: $(cat "$tmp/pkt.out")"
    return 1
}
wait_svc_unavailable_all "past db_max_staleness every KDC refuses: KDC_ERR_SVC_UNAVAILABLE + e-text" \
    $((STALE + 20))
if as_user "$tmp/fleet.conf" alice; then
    not_ok "past the limit the fleet refuses MIT kinit" "$(cat "$tmp/client.out")"
else
    ok "past the limit the fleet refuses MIT kinit"
fi
all=1
for i in 0 1 2; do grep -Eq "DB_UNAVAILABLE.*db_max_staleness" "$tmp/kdc$i.log" || all=0; done
if [ $all = 1 ]; then ok "each KDC logs its refusals as DB_UNAVAILABLE"; else
    not_ok "each KDC logs its refusals as DB_UNAVAILABLE" "$(grep -h "AS_REQ" "$tmp"/kdc?.log | tail -n 3)"; fi
if grep -q "fleet db-stale" "$tmp/kdc2.log"; then ok "the refusing state is logged"; else
    not_ok "the refusing state is logged" "$(grep fleet "$tmp/kdc2.log")"; fi
alive=1
for i in 0 1 2; do kill -0 "${KPIDS[$i]}" 2>/dev/null || alive=0; done
if [ $alive = 1 ]; then ok "no KDC exited during the outage"; else not_ok "no KDC exited during the outage"; fi

# ---- PostgreSQL started again ----
pg_up || bail "start PostgreSQL again" "$(tail -n 20 "$CK_PG_DIR/log/server.log")"
ok "PostgreSQL started again"
wait_ok_all "service recovers on all three KDCs without a restart" alice 30
all=1
for i in 0 1 2; do wait_file_grep "$tmp/kdc$i.log" "fleet db-reachable: database .* reachable again" || all=0; done
if [ $all = 1 ]; then ok "each KDC logs db-reachable"; else
    not_ok "each KDC logs db-reachable" "$(grep -h fleet "$tmp"/kdc?.log)"; fi
expect_success "writes work again" cli principal modify carol --requires-preauth
each_kdc_ok "carol works on every KDC" carol
cli principal modify carol --disallow-all-tix >"$tmp/mod.log" 2>&1 || not_ok "disable carol" "$(cat "$tmp/mod.log")"
wait_refused_all "after recovery a revocation again reaches all three KDCs" carol \
    "revoked|disabled|CLIENT_REVOKED|locked" 10

# ---- clean stop ----
for i in 0 1 2; do
    kill -TERM "${KPIDS[$i]}"
    wait "${KPIDS[$i]}"; rc=$?
    KPIDS[$i]=""
    rep=$(grep -Eh "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error" "$tmp/kdc$i.log" "$tmp/kdc$i.stderr" 2>/dev/null | head -n 3)
    if [ $rc = 0 ] && [ -z "$rep" ]; then ok "kdc$i stops cleanly (exit 0, no sanitizer report)"; else
        not_ok "kdc$i stops cleanly" "exit $rc $rep $(tail -n 5 "$tmp/kdc$i.stderr")"; fi
done
done_testing
