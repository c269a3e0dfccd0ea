#!/usr/bin/env bash
# cablekey-kdc as a daemon: --check, config errors, SIGTERM, workers, pid file, stash permissions.
. "$(dirname "$0")/lib.sh"

require_tool "MIT client tools" kinit klist
realm_init TEST.REALM
realm_addprinc alice alicepw

# run_kdc_once ARGS...: runs cablekey-kdc in the foreground (bounded), output in $tmp/once.*
run_kdc_once() {
    timeout -k 5 15 "$CK_KDC" "$@" >"$tmp/once.out" 2>"$tmp/once.err" </dev/null
}

# check_bad_conf DESC CONF_FILE: --check must exit 1 with exactly one error line on stderr.
check_bad_conf() {
    local desc=$1 conf=$2 rc lines
    run_kdc_once --check -c "$conf"; rc=$?
    lines=$(grep -cv '^[[:space:]]*$' "$tmp/once.err")
    if [ $rc -eq 1 ] && [ "$lines" -eq 1 ]; then
        ok "$desc: exit 1, one error line ($(head -c 120 "$tmp/once.err"))"
    else
        not_ok "$desc: exit 1 with one error line" "exit $rc, $lines stderr lines:
$(head -n 10 "$tmp/once.err")
stdout: $(head -n 5 "$tmp/once.out")"
    fi
}

# --- --check ---------------------------------------------------------------------------------
write_kdc_conf "$tmp/good.conf"
check_good() {
    local rc
    run_kdc_once --check -c "$tmp/good.conf"; rc=$?
    if [ $rc -eq 0 ] && grep -qi "configuration OK" "$tmp/once.out" "$tmp/once.err"; then
        ok "--check -c good.conf: exit 0, 'configuration OK'"
    else
        not_ok "--check -c good.conf: exit 0, 'configuration OK'" "exit $rc; $(cat "$tmp/once.out" "$tmp/once.err" | head)"
    fi
}
ck_only "--check -c good.conf: exit 0, 'configuration OK'" check_good

sed 's/^\(    TEST.REALM = {\)$/\1/; /^    }$/d' "$tmp/good.conf" >"$tmp/bad-brace.conf"
ck_only "--check: unclosed brace" check_bad_conf "--check: unclosed brace" "$tmp/bad-brace.conf"
sed 's/^\(        max_life = 10h\)$/\1\n        supported_enctypes = aes256-cts-hmac-sha1-96 rot13-cts-hmac-md4/' "$tmp/good.conf" >"$tmp/bad-enctype.conf"
ck_only "--check: unknown enctype" check_bad_conf "--check: unknown enctype" "$tmp/bad-enctype.conf"
sed "s|database_name = .*|database_name = $tmp/no/such/dir/kdc.db|" "$tmp/good.conf" >"$tmp/bad-db.conf"
ck_only "--check: missing database" check_bad_conf "--check: missing database" "$tmp/bad-db.conf"
printf '[kdcdefaults]\n    kdc_listen = 127.0.0.1:notaport\n' >"$tmp/bad-port.conf"
sed -n '/^\[realms\]/,$p' "$tmp/good.conf" >>"$tmp/bad-port.conf"
ck_only "--check: bad listen port" check_bad_conf "--check: bad listen port" "$tmp/bad-port.conf"
ck_only "--check: missing config file" check_bad_conf "--check: missing config file" "$tmp/does-not-exist.conf"

# --- stash with loose permissions ------------------------------------------------------------
stash_perm() {
    local rc
    chmod 644 "$STASH"
    run_kdc_once --listen "127.0.0.1:$PORT" --db "$DB" --stash "$STASH" --log stderr; rc=$?
    chmod 600 "$STASH"
    if [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -Eqi "stash|permission|mode" "$tmp/once.err"; then
        ok "stash mode 0644: refuses to start (exit $rc: $(grep -Ei 'stash|permission|mode' "$tmp/once.err" | head -n1 | head -c 120))"
    else
        not_ok "stash mode 0644: refuses to start with a clear message" "exit $rc; stderr: $(head -n 5 "$tmp/once.err")"
    fi
}
ck_only "stash mode 0644: refuses to start" stash_perm

# --- workers, pid file, many requests, SIGTERM -------------------------------------------------
if is_mit; then realm_start_kdc -w 2
else realm_start_kdc_conf --workers 2 --pid-file "$tmp/kdc.pid"; fi
check_pidfile() {
    local p; p=$(cat "$tmp/kdc.pid" 2>/dev/null)
    if [ "$p" = "$KDC_PID" ]; then ok "--pid-file holds the KDC's pid ($p)"
    else not_ok "--pid-file holds the KDC's pid" "pid file '$p', KDC pid $KDC_PID"; fi
}
ck_only "--pid-file holds the KDC's pid" check_pidfile
n_ok=0
for i in $(seq 1 20); do
    kinit_pw alice alicepw >/dev/null 2>>"$tmp/many.err" && n_ok=$((n_ok + 1))
done
if [ $n_ok -eq 20 ]; then ok "2 workers: 20 sequential kinits succeed"
else not_ok "2 workers: 20 sequential kinits succeed" "$n_ok of 20; $(tail -n 3 "$tmp/many.err")"; fi
n_log=$(log_count "AS_REQ .*ISSUE: .*alice@TEST\.REALM for krbtgt/TEST\.REALM@TEST\.REALM")
if [ "$n_log" -ge 20 ]; then ok "KDC log: 20 ISSUE lines for alice ($n_log)"
else not_ok "KDC log: 20 ISSUE lines for alice" "found $n_log"; fi
# Ten in parallel.
pids=()
for i in $(seq 1 10); do
    ( export KRB5CCNAME="FILE:$tmp/ccache.par$i"; kinit_pw alice alicepw >/dev/null 2>&1 ) &
    pids+=($!)
done
n_ok=0
for p in "${pids[@]}"; do wait "$p" && n_ok=$((n_ok + 1)); done
if [ $n_ok -eq 10 ]; then ok "10 parallel kinits succeed"
else not_ok "10 parallel kinits succeed" "$n_ok of 10"; fi

t0=$(date +%s%N)
realm_stop_kdc
t1=$(date +%s%N)
ms=$(((t1 - t0) / 1000000))
if [ $ms -le 5000 ]; then ok "SIGTERM: the KDC exited within 5 s (${ms} ms)"
else not_ok "SIGTERM: the KDC exited within 5 s" "${ms} ms"; fi
assert_log "(shut(ting)? ?down|[Ss]hut down|stopping|exiting)" "KDC log says it shut down"

# --- a second start on the same port works (sockets released) ------------------------------------
realm_start_kdc
expect_success "restart on the same port: kinit works" kinit_pw alice alicepw
realm_stop_kdc

# --- two KDCs on one port: the second must fail cleanly ------------------------------------------
port_in_use() {
    local rc
    realm_start_kdc
    run_kdc_once --listen "127.0.0.1:$PORT" --db "$DB" --stash "$STASH" --log stderr; rc=$?
    if [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -Eqi "in use|bind|listen" "$tmp/once.err"; then
        ok "second KDC on a busy port exits non-zero ($(grep -Ei 'in use|bind|listen' "$tmp/once.err" | head -n1 | head -c 100))"
    else
        not_ok "second KDC on a busy port exits non-zero with a clear message" "exit $rc; $(head -n 5 "$tmp/once.err")"
    fi
    expect_success "the first KDC still serves" kinit_pw alice alicepw
    realm_stop_kdc
}
ck_only "second KDC on a busy port exits non-zero" port_in_use
done_testing
