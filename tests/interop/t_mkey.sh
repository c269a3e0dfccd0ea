#!/usr/bin/env bash
# Master-key rotation under load (docs/master-key.md), on SQLite and on a throw-away PostgreSQL:
# MIT kinit/kvno loops keep authenticating against a running cablekey-kdc while
# `cablekey rotation master-key run` adds, activates, re-encrypts and retires, first killed
# (SIGKILL) at each crash point (CK_MKEY_CRASH) and resumed, then once straight through. Zero
# client failures; afterwards only the new master key exists (database and stash), every key
# decrypts, and a KDC started on the rotated realm serves. Ports from 21300-21399.
. "$(dirname "$0")/lib.sh"
. "$CK_INTEROP_DIR/pg_lib.sh"

require_tool "MIT client tools" kinit kvno klist
CK_PG_NO_TRAP=1
LOOPS=3
USERS=30
LOOP_PIDS=()

mkey_cleanup() {
    local p
    [ "$BASHPID" = "$CK_MAIN_PID" ] || return 0
    for p in "${LOOP_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    pg_stop
    ck_cleanup
}
trap mkey_cleanup EXIT

# A port of 21300-21399 free for TCP and UDP on 127.0.0.1.
mkey_port() {
    "$CK_PY" - <<'EOF'
import socket
for p in range(21300, 21400):
    socks = []
    try:
        for typ in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            s = socket.socket(socket.AF_INET, typ)
            socks.append(s)
            s.bind(('127.0.0.1', p))
    except OSError:
        continue
    finally:
        for s in socks:
            s.close()
    print(p)
    break
else:
    raise SystemExit("no free port in 21300-21399")
EOF
}

cli() { timeout -k 5 120 "$CK_CLI" "$@" </dev/null; }
mkey() { cli rotation master-key "$1" --db "$DB" --stash "$STASH" "${@:2}"; }

# A realm with alice, a service and USERS more principals (so re-encryption takes batches).
populate() {
    local i
    cli principal add --db "$DB" --stash "$STASH" alice --password alicepw >/dev/null &&
        cli principal add --db "$DB" --stash "$STASH" host/svc.test --random >/dev/null ||
        bail "add principals"
    for i in $(seq 1 "$USERS"); do
        cli principal add --db "$DB" --stash "$STASH" "user$i" --random >/dev/null ||
            bail "add user$i"
    done
}

# One client loop: kinit + kvno until the stop file appears; one line per round in its log.
client_loop() {
    local i=$1 n=0
    export KRB5CCNAME="FILE:$tmp/cc.$i" KRB5_TRACE=/dev/null
    while [ ! -e "$tmp/stop" ]; do
        n=$((n + 1))
        if printf 'alicepw\n' | timeout -k 2 10 kinit alice >"$tmp/loop.$i.err" 2>&1 &&
           timeout -k 2 10 kvno host/svc.test >>"$tmp/loop.$i.err" 2>&1; then
            echo ok >>"$tmp/loop.$i.log"
        else
            { echo "fail round $n: $(tr '\n' ' ' <"$tmp/loop.$i.err")"; } >>"$tmp/loop.$i.log"
        fi
    done
}

start_loops() {
    local i
    rm -f "$tmp/stop" "$tmp"/loop.*.log
    for i in $(seq 1 "$LOOPS"); do
        : >"$tmp/loop.$i.log"
        client_loop "$i" &
        LOOP_PIDS+=($!)
    done
}

rounds() {
    local n
    n=$(cat "$tmp"/loop.*.log 2>/dev/null | grep -c '^ok')
    echo "${n:-0}"
}

# Waits (bounded) until the loops completed `more` further rounds: the rotation step just done
# is exercised by real clients before the next one.
wait_rounds() {
    local more=$1 start i
    start=$(rounds)
    for i in $(seq 1 300); do
        [ "$(rounds)" -ge $((start + more)) ] && return 0
        sleep 0.1
    done
    return 1
}

stop_loops() {
    local p
    touch "$tmp/stop"
    for p in "${LOOP_PIDS[@]}"; do wait "$p" 2>/dev/null; done
    LOOP_PIDS=()
}

# kill_at DESC POINT[:N]: the rotation run killed at that crash point, the clients still served.
kill_at() {
    local desc=$1 point=$2 rc
    CK_MKEY_CRASH=$point mkey run --batch 5 >"$tmp/last.out" 2>"$tmp/last.err"; rc=$?
    if [ $rc -eq 137 ] && grep -q "CK_MKEY_CRASH: killed at ${point%%:*}" "$tmp/last.err"; then
        ok "$desc"
    else
        not_ok "$desc" "exit $rc (137 expected); $(ck_last_output)"
    fi
    wait_rounds 3 || not_ok "clients keep completing rounds after the kill at $point"
}

# The whole scenario on the current DB/STASH with the KDC running.
rotate_under_load() {
    local be=$1 fails total st
    start_loops
    wait_rounds 3 || bail "$be: client loops did not start" "$(tail -n 3 "$tmp"/loop.*.log)"
    ok "$be: $LOOPS MIT kinit/kvno loops running against cablekey-kdc"

    expect_output "$be: status before: kvno 1 active" "active master key kvno 1; 0 stored keys" \
        mkey status
    kill_at "$be: run killed between the stash write and the row (add-stash)" add-stash:1
    expect_output "$be: status names the interrupted add" "stash only \(add interrupted" \
        mkey status
    kill_at "$be: run killed after add" after-add:1
    kill_at "$be: run killed after activate" after-activate:1
    kill_at "$be: run killed after two re-encryption batches (mid-reencrypt)" mid-reencrypt:2
    expect_output "$be: status: kvno 2 active, keys still under kvno 1, next step reencrypt" \
        "active master key kvno 2; [1-9][0-9]* stored keys? not under it; next step: reencrypt" \
        mkey status
    kill_at "$be: run killed before retire" before-retire:1
    kill_at "$be: run killed between the row's deletion and the stash rewrite (retire-db)" \
        retire-db:1
    expect_output "$be: run completes the interrupted rotation" \
        "completing the rotation to kvno 2.*|master-key run done: active kvno=2" mkey run --batch 5
    wait_rounds 3 || not_ok "$be: clients keep completing rounds after the resumed run"
    expect_output "$be: status after: only kvno 2, nothing pending" \
        '"active":2,"pending":0,"next":"none","keys":\[\{"kvno":2,[^]]*"in_db":true,"in_stash":true' \
        mkey status --json
    # A second rotation, straight through, while the clients go on.
    expect_output "$be: a second rotation runs straight through (kvno 3)" \
        "master-key run done: active kvno=3" mkey run --batch 7
    wait_rounds 6 || not_ok "$be: clients keep completing rounds after the second rotation"
    expect_output "$be: status: only kvno 3" \
        '"active":3,"pending":0,"next":"none","keys":\[\{"kvno":3,[^]]*\}\]' mkey status --json
    stop_loops
    total=$(rounds)
    fails=$(cat "$tmp"/loop.*.log | grep -c '^fail' || true)
    if [ "$fails" -eq 0 ] && [ "$total" -gt 0 ]; then
        ok "$be: zero client failures during both rotations ($total kinit+kvno rounds)"
    else
        not_ok "$be: zero client failures during both rotations" \
            "$fails failures in $((total + fails)) rounds: $(grep -h '^fail' "$tmp"/loop.*.log | head -n 5)"
    fi
    # The stash holds exactly one key (format 2, count 1, kvno 3), still 0600.
    st=$(od -An -tx1 -N12 "$STASH" | tr -d ' \n')
    if [ "$st" = "434b4d4b0002000100000003" ] && [ "$(stat -c %a "$STASH")" = 600 ]; then
        ok "$be: the stash holds only master key kvno 3, mode 0600"
    else
        not_ok "$be: the stash holds only master key kvno 3, mode 0600" \
            "header $st, mode $(stat -c %a "$STASH")"
    fi
    expect_failure "$be: retiring the active key is refused" "active one" mkey retire --kvno 3
    expect_failure "$be: activating a retired key is refused" "not in the database" \
        mkey activate --kvno 1
}

# ---- SQLite ----
realm_init TEST.REALM
PORT=$(mkey_port) || bail "no free port in 21300-21399"
CK_LISTEN=("127.0.0.1:$PORT")
write_krb5_conf "$KRB5_CONFIG" "127.0.0.1:$PORT"
populate
realm_start_kdc
rotate_under_load sqlite
expect_output "sqlite: db check: every key decrypts with the rotated stash" \
    "all decrypt with the stash.*OK" cli db check --db "$DB" --stash "$STASH"
realm_stop_kdc
realm_start_kdc
expect_success "sqlite: a KDC started on the rotated realm serves kinit" kinit_pw alice alicepw
realm_stop_kdc
realm_destroy

# ---- PostgreSQL ----
if ! pg_start >"$tmp/pg.log" 2>&1; then
    bail "start a throw-away PostgreSQL server" "$(cat "$tmp/pg.log")"
fi
ok "postgresql: throw-away server started"
DB="$CK_PG_URI"
STASH="$tmp/pg.stash"
cli init --db "$DB" --stash "$STASH" --realm "$REALM" >"$tmp/init.log" 2>&1 ||
    bail "cablekey init on PostgreSQL" "$(cat "$tmp/init.log")"
populate
realm_start_kdc
rotate_under_load postgresql
if pg_sql -c "SELECT count(*) FROM key WHERE mkvno <> 3" | grep -qx 0 &&
   pg_sql -c "SELECT string_agg(kvno::text, ',') FROM master_key" | grep -qx 3; then
    ok "postgresql: every key row under kvno 3, one master_key row"
else
    not_ok "postgresql: every key row under kvno 3, one master_key row" \
        "$(pg_sql -c 'SELECT mkvno, count(*) FROM key GROUP BY mkvno' 2>&1)"
fi
realm_stop_kdc
realm_start_kdc
expect_success "postgresql: a KDC started on the rotated realm serves kinit" kinit_pw alice alicepw
realm_stop_kdc
done_testing
