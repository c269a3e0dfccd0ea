#!/usr/bin/env bash
# bench/prov_bench.sh BUILD_DIR — provisioning through cablekey-prov's API (issue 10): N devices
# (BENCH_PROV_DEVICES, 100000) provisioned as an OSS bulk load would, then devices/s, the
# latency per call (p50/p90/p99/max) and the database size before and after.
#
# Setup (not measured): a realm on loopback (cablekey init, cablekey pki init with the
# provisioning CA), cablekey-kdc, and the N factory devices admitted in the store in bulk
# (build/prov_load admit: each with its own MAC and manufacturer certificate, as the KDC admits
# them at their first login). Then cablekey-prov starts on SQLite and build/prov_load provision
# signs in once to the console API (the session cookie and CSRF token: one AS exchange, not one
# per call) and provisions the N devices round-robin to BENCH_PROV_CUSTOMERS (100) customers,
# BENCH_PROV_CONCURRENCY (16) calls in flight on keep-alive connections. Each call is the whole
# action: state check, a number from the pool, the operator certificate signed by the signer
# process (ECDSA or RSA per the prov CA), the KDC's device row, the event, the webhook outbox and
# the idempotency record in one transaction.
# BENCH_PROV_AUTH=negotiate authenticates every call with HTTP Negotiate on a new connection
# instead (a service ticket from kinit; the server's SPNEGO acceptance per call is then part of
# the cost).
#
# Then (BENCH_PROV_LOGIN=1, the default) the second half: every provisioned device logs in to
# the KDC with its operator certificate (build/prov_load login: PKINIT, ECDH P-256, the device's
# P-256 key; requests built first, then BENCH_PROV_LOGIN_CONCURRENCY (16) in flight over UDP),
# and the logins/s against the bound the KDC's measured CPU per login allows (N x CPU per login /
# workers, as bench/storm/storm_run.sh; the goal is at most 1.3x that).
# Quick run: BENCH_PROV_DEVICES=3000 (about a minute).
#
# Environment: BENCH_PROV_DEVICES (100000), BENCH_PROV_CONCURRENCY (16), BENCH_PROV_CUSTOMERS
# (100), BENCH_PROV_AUTH (session), BENCH_PROV_CA_KEY (ec-p256: the provisioning CA re-made with a
# P-256 key; rsa: `cablekey pki init`'s RSA-2048), BENCH_PROV_LOGIN (1), BENCH_PROV_KDC_WORKERS
# (2), BENCH_PROV_LOGIN_CONCURRENCY (16), BENCH_PROV_WORKERS (cablekey-prov's `workers`, 2),
# BENCH_PROV_PORT (first port, 21650; P7's range 21640-21679),
# BENCH_KEEP_TMP=1.
set -uo pipefail
export LC_ALL=C TZ=UTC

BUILD=${1:-build}
BUILD=$(cd "$BUILD" 2>/dev/null && pwd) || { echo "prov bench: no build dir '${1:-build}'" >&2; exit 2; }
CK_KDC=$BUILD/cablekey-kdc
CK_CLI=$BUILD/cablekey
CK_PROV=$BUILD/cablekey-prov
LOAD=$BUILD/prov_load
N=${BENCH_PROV_DEVICES:-100000}
CONC=${BENCH_PROV_CONCURRENCY:-16}
NCUST=${BENCH_PROV_CUSTOMERS:-100}
AUTH=${BENCH_PROV_AUTH:-session}
CAKEY=${BENCH_PROV_CA_KEY:-ec-p256}
LOGIN=${BENCH_PROV_LOGIN:-1}
LCONC=${BENCH_PROV_LOGIN_CONCURRENCY:-16}
KWORKERS=${BENCH_PROV_KDC_WORKERS:-2}
PORT=${BENCH_PROV_PORT:-21650}
KPORT=$PORT; HPORT=$((PORT + 1)); FPORT=$((PORT + 2)); DPORT=$((PORT + 3))
REALM=PROVBENCH.TEST
SECONDS=0

for f in "$CK_KDC" "$CK_CLI" "$CK_PROV" "$LOAD"; do
    [ -x "$f" ] || { echo "prov bench: $f not built" >&2; exit 2; }
done
command -v kinit >/dev/null || { echo "prov bench: MIT kinit not found" >&2; exit 2; }

tmp=$(mktemp -d /tmp/ck-provbench.XXXXXX)
chmod 755 "$tmp"
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    if [ "${BENCH_KEEP_TMP:-0}" = 1 ]; then echo "prov bench: kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
die() { echo "prov bench: $*" >&2; exit 1; }
wait_tcp() { # wait_tcp PORT PID
    local i
    for i in $(seq 1 300); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
cpu_ticks() { # cpu_ticks PID: utime + stime (all threads) in clock ticks
    awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0
}
prov_cpu() { # "front back signer" CPU ticks of cablekey-prov's three processes
    local back signer
    back=$(pgrep -P "$PROV_PID" | head -n 1); signer=$(pgrep -P "${back:-0}" | head -n 1)
    echo "$(cpu_ticks "$PROV_PID") $(cpu_ticks "${back:-0}") $(cpu_ticks "${signer:-0}")"
}
db_size() { # bytes of the database and its WAL
    du -cb "$tmp/kdc.db" "$tmp/kdc.db-wal" 2>/dev/null | tail -n 1 | cut -f1
}

DB=$tmp/kdc.db
STASH=$tmp/kdc.db.stash
PKI=$tmp/pki
printf 'prov-bench-pki-pw\n' >"$tmp/pw"; printf 'prov-bench-ca-pw\n' >"$tmp/capw"
printf 'prov-bench-oss-pw\n' >"$tmp/oss.pw"; chmod 600 "$tmp"/*pw
export KRB5_CONFIG=$tmp/krb5.conf
cat >"$KRB5_CONFIG" <<EOF
[libdefaults]
    default_realm = $REALM
    dns_lookup_kdc = false
    dns_canonicalize_hostname = false
    rdns = false
[realms]
    $REALM = {
        kdc = 127.0.0.1:$KPORT
    }
[domain_realm]
    localhost = $REALM
EOF

echo "== setup: realm, PKI, KDC ($N devices)"
"$CK_CLI" init --db "$DB" --realm "$REALM" >"$tmp/setup.log" 2>&1 || die "init: $(cat "$tmp/setup.log")"
"$CK_CLI" pki init --dir "$PKI" --realm "$REALM" --org "Prov Bench" --password-file "$tmp/pw" \
    --ca-password-file "$tmp/capw" >>"$tmp/setup.log" 2>&1 || die "pki init: $(tail -5 "$tmp/setup.log")"
if [ "$CAKEY" = ec-p256 ]; then
    # The provisioning CA re-made with an ECDSA P-256 key under the same sp-root (the rest of
    # the PKI stays RSA-2048: a KDC with pkinit_packetcable_anchors needs an RSA identity).
    # One RSA-2048 signature costs ~1 ms of CPU, one P-256 signature ~0.03 ms: with RSA the
    # signer alone caps provisioning near 1,000/s per core.
    printf '%s\n' '[ ca ]' 'basicConstraints = critical, CA:TRUE, pathlen:0' \
        'keyUsage = critical, digitalSignature, keyCertSign, cRLSign' \
        'subjectKeyIdentifier = hash' 'authorityKeyIdentifier = keyid' >"$tmp/provca.cnf"
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -aes-256-cbc \
        -pass "file:$tmp/capw" -out "$PKI/prov-ca-key.pem" 2>>"$tmp/setup.log" &&
    openssl req -new -key "$PKI/prov-ca-key.pem" -passin "file:$tmp/capw" \
        -subj "/O=Prov Bench/OU=PacketCable/CN=Prov Bench Provisioning CA" \
        -out "$tmp/provca.csr" 2>>"$tmp/setup.log" &&
    openssl x509 -req -in "$tmp/provca.csr" -CA "$PKI/sp-root.pem" -CAkey "$PKI/sp-root-key.pem" \
        -passin "file:$tmp/capw" -set_serial "0x$(openssl rand -hex 8)" -days 3650 -sha256 \
        -extfile "$tmp/provca.cnf" -extensions ca -out "$PKI/prov-ca.pem" \
        >>"$tmp/setup.log" 2>&1 || die "P-256 provisioning CA: $(tail -3 "$tmp/setup.log")"
elif [ "$CAKEY" != rsa ]; then
    die "BENCH_PROV_CA_KEY: ec-p256 or rsa"
fi
for p in oss HTTP/localhost prov/localhost mtafqdn/localhost; do
    if [ "$p" = oss ]; then
        "$CK_CLI" principal add --db "$DB" "$p" --password-stdin <"$tmp/oss.pw" >>"$tmp/setup.log" 2>&1
    else
        "$CK_CLI" principal add --db "$DB" "$p" --random >>"$tmp/setup.log" 2>&1
    fi || die "principal add $p: $(tail -3 "$tmp/setup.log")"
done
"$CK_CLI" keytab export --db "$DB" --out "$tmp/prov.keytab" HTTP/localhost prov/localhost \
    mtafqdn/localhost >>"$tmp/setup.log" 2>&1 || die "keytab: $(tail -3 "$tmp/setup.log")"
cat >"$tmp/kdc.conf" <<EOF
[kdcdefaults]
    kdc_listen = 127.0.0.1:$KPORT
    kdc_workers = $KWORKERS
    kdc_max_dgram_reply_size = 65507
    pkinit_provisioning = true
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
    }
EOF
"$CK_KDC" -c "$tmp/kdc.conf" --log "$tmp/kdc.log" --log-level warning >"$tmp/kdc.out" 2>&1 </dev/null &
PIDS+=($!)
sleep 0.5
kill -0 "${PIDS[0]}" 2>/dev/null || die "the KDC did not start: $(cat "$tmp/kdc.out")"

echo "== setup: admitting $N factory devices in bulk"
size0=$(db_size)
"$LOAD" admit --db "$DB" --stash "$STASH" --pki "$PKI" --ca-password-file "$tmp/capw" \
    --count "$N" --key-out "$tmp/device-key.pem" | tee "$tmp/admit.out" || die "admit failed"
size1=$(db_size)

echo "== cablekey-prov"
first=$(( N * 4 )); last=$(( first + N * 2 ))
cat >"$tmp/prov.acl" <<EOF
oss@$REALM  iap
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
    kdc = 127.0.0.1:$KPORT
    ca_cert = $PKI/prov-ca.pem
    ca_key = $PKI/prov-ca-key.pem
    ca_password_file = $tmp/capw
    phone_id_key = $PKI/phone-id.key
    fqdn_domain = mta.provbench.test
    pool = bench 20$(printf '%08d' "$first") 20$(printf '%08d' "$last")
    log = FILE:$tmp/prov.log
    log_level = warning
    workers = ${BENCH_PROV_WORKERS:-2}
EOF
"$CK_PROV" -c "$tmp/prov.conf" >"$tmp/prov.out" 2>&1 </dev/null &
PROV_PID=$!
PIDS+=("$PROV_PID")
wait_tcp "$HPORT" "$PROV_PID" || die "cablekey-prov did not start: $(tail -20 "$tmp/prov.out" "$tmp/prov.log")"

args=(--url "http://127.0.0.1:$HPORT" --count "$N" --concurrency "$CONC" --customers "$NCUST"
      --segment bench --auth "$AUTH")
if [ "$AUTH" = negotiate ]; then
    export KRB5CCNAME=FILE:$tmp/oss.cc
    kinit oss <"$tmp/oss.pw" >/dev/null 2>&1 || die "kinit oss"
    args[1]="http://localhost:$HPORT"
else
    args+=(--principal oss --password-file "$tmp/oss.pw")
fi

echo "== provisioning $N devices through the API ($CONC in flight, auth $AUTH)"
read -r f0 b0 s0 <<<"$(prov_cpu)"
"$LOAD" provision "${args[@]}" | tee "$tmp/provision.out"
lrc=${PIPESTATUS[0]}
read -r f1 b1 s1 <<<"$(prov_cpu)"
HZ=$(getconf CLK_TCK)
cpu_line=$(awk -v n="$N" -v hz="$HZ" -v f="$((f1 - f0))" -v b="$((b1 - b0))" -v s="$((s1 - s0))" 'BEGIN {
    printf "prov CPU per device (us): front %.0f, back %.0f, signer %.0f, total %.0f", f / hz / n * 1e6, b / hz / n * 1e6, s / hz / n * 1e6, (f + b + s) / hz / n * 1e6 }')
size2=$(db_size)
echo "== result"
grep -h '^phase=' "$tmp/admit.out" "$tmp/provision.out" "$tmp/login.out" 2>/dev/null
echo "$cpu_line"
if [ "$LOGIN" = 1 ] && [ "$lrc" -eq 0 ]; then
    echo "== $N endpoint logins with their operator certificates (PKINIT, ECDH P-256; $LCONC in flight; KDC $KWORKERS workers)"
    "$LOAD" login --db "$DB" --stash "$STASH" --key "$tmp/device-key.pem" \
        --anchors "$PKI/sp-root.pem" --kdc "127.0.0.1:$KPORT" --count "$N" \
        --concurrency "$LCONC" --kdc-pid "${PIDS[0]}" | tee "$tmp/login.out"
    [ "${PIPESTATUS[0]}" -eq 0 ] || echo "prov bench: some logins failed (see above)" >&2
fi
printf 'database bytes: empty realm %s, %s devices admitted %s, all provisioned %s (%.0f bytes per device)\n' \
    "$size0" "$N" "$size1" "$size2" "$(echo "($size2 - $size0) / $N" | bc -l)"
if [ -s "$tmp/login.out" ]; then
    # The bound (as bench/storm): N logins cannot take less than N x c / workers, c the KDC's
    # measured CPU per login; the goal is at most 1.3x that.
    awk -v n="$N" -v w="$KWORKERS" -v cpus="$(nproc)" '/^phase=login / {
        for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        ww = w < cpus ? w : cpus
        bound = n * v["kdc_cpu_us_per_login"] / 1e6 / ww
        printf "logins: %d of %d in %.1f s (%s/s); KDC CPU %s us per login; bound %.1f s (%d x %s us / %d workers); ratio %.2fx (goal <= 1.3x: %s)\n", v["ok"], n, v["seconds"], v["per_s"], v["kdc_cpu_us_per_login"], bound, n, v["kdc_cpu_us_per_login"], ww, (bound > 0 ? v["seconds"] / bound : 0), ((v["ok"] == n && v["seconds"] <= 1.3 * bound) ? "met" : "missed")
    }' "$tmp/login.out"
fi
echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); total ${SECONDS} s"
[ "$lrc" -eq 0 ] || die "some provisioning calls failed (see above)"
