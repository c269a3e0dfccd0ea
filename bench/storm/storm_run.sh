#!/usr/bin/env bash
# bench/storm/storm_run.sh BUILD_DIR — the reset storm (issue 9, the mass reset): BENCH_STORM_CLIENTS
# clients (default 100,000) start within BENCH_STORM_RAMP seconds (10) against one cablekey-kdc
# (2 workers, SQLite), each from an address of its own, with MIT's retry schedule (1 s, doubling
# to 8 s; build/storm_load). Rows: PKINIT (ECDSA P-256 + ECDH P-256, one request per client, the
# PA-PK-AS-REQ in the first AS-REQ as an MTA sends it; BENCH_STORM_COLD client certificates of one
# key in turn with the KDC's certificate caches at their minimum, so every exchange verifies a
# chain as a storm of distinct MTAs would) and keytab AS (PA-ENC-TIMESTAMP in the first request),
# each with admission control on and off.
#
# Measured per row: the time until every client holds a ticket, the datagrams the KDC shed (its
# "admission shed" log lines), retries sent by clients, per-client latency (p50/p99/max from the
# first send to the ticket), the KDC's CPU per ticket. The bound: a calibration run first (the
# same requests, BENCH_STORM_CALIBRATE clients with 16 in flight: no overload) gives the KDC CPU
# per exchange c, and the storm cannot end before max(ramp, N x c / workers); the goal is 1.3x
# that. The generator runs on the same 2 vCPUs (its CPU is printed): on a shared machine the
# bound, computed from the KDC's CPU alone, is optimistic.
#
# Environment: BENCH_STORM_CLIENTS (100000), BENCH_STORM_RAMP (10), BENCH_STORM_MODES
# ("pkinit keytab"), BENCH_STORM_ADMISSION ("on off"), BENCH_STORM_CALIBRATE (3000),
# BENCH_STORM_DEADLINE (seconds per storm, 240), BENCH_STORM_COLD (128), BENCH_STORM_WORKERS (2),
# BENCH_STORM_PORT (first port, 21540; k9storm's range 21500-21599), BENCH_STORM_CONGEST_MS
# (kdc_admission_congest_ms of the "on" rows; empty: the default), BENCH_KEEP_TMP=1.
set -uo pipefail
export LC_ALL=C TZ=UTC

BUILD=${1:-build}
BUILD=$(cd "$BUILD" 2>/dev/null && pwd) || { echo "storm bench: no build dir '${1:-build}'" >&2; exit 2; }
CK_KDC=$BUILD/cablekey-kdc
CK_CLI=$BUILD/cablekey
LOAD=$BUILD/storm_load
N=${BENCH_STORM_CLIENTS:-100000}
RAMP=${BENCH_STORM_RAMP:-10}
MODES=${BENCH_STORM_MODES:-pkinit keytab}
ADMISSION=${BENCH_STORM_ADMISSION:-on off}
CALIB=${BENCH_STORM_CALIBRATE:-3000}
DEADLINE=${BENCH_STORM_DEADLINE:-240}
COLD=${BENCH_STORM_COLD:-128}
WORKERS=${BENCH_STORM_WORKERS:-2}
PORT=${BENCH_STORM_PORT:-21540}
CONGEST=${BENCH_STORM_CONGEST_MS:-}
REALM=STORM.TEST
CLIENT=mta
PASSWORD=storm-bench-pw
ENCTYPE=aes256-cts-hmac-sha1-96
SECONDS=0

for f in "$CK_KDC" "$CK_CLI" "$LOAD"; do
    [ -x "$f" ] || { echo "storm bench: $f not built" >&2; exit 2; }
done
for t in openssl ss; do
    command -v "$t" >/dev/null || { echo "storm bench: $t not found" >&2; exit 2; }
done

tmp=$(mktemp -d /tmp/ck-storm.XXXXXX)
KDC_PID=""
cleanup() {
    if [ -n "$KDC_PID" ]; then kill -TERM "$KDC_PID" 2>/dev/null; wait "$KDC_PID" 2>/dev/null; fi
    if [ "${BENCH_KEEP_TMP:-0}" = 1 ]; then echo "storm bench: kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
say() { echo "storm bench [${SECONDS}s]: $*" >&2; }
die() {
    echo "storm bench: $1" >&2
    [ $# -gt 1 ] && tail -n 20 "${@:2}" >&2
    exit 1
}
wait_udp() {
    local i
    for i in $(seq 1 100); do
        ss -Hlun "sport = :$1" 2>/dev/null | grep -q . && return 0
        sleep 0.1
    done
    return 1
}

umask 077
printf 'storm-bench-pw-1\n' >"$tmp/pw"

# --- PKI: an ECDSA P-256 hierarchy, one client key, COLD certificates for it -----------------
say "PKI: cablekey pki init --key ec-p256, issue-client, $COLD certificates ..."
pki() { "$CK_CLI" pki "$@" --password-file "$tmp/pw" </dev/null >>"$tmp/pki.log" 2>&1; }
pki init --dir "$tmp/pki" --realm "$REALM" --org "Storm" --key ec-p256 || die "pki init" "$tmp/pki.log"
pki issue-client --dir "$tmp/pki" --principal "$CLIENT" --key ec-p256 --out "$tmp/client.p12" \
    --pem-out "$tmp/client" --pem-nopass || die "pki issue-client" "$tmp/pki.log"
cat >"$tmp/ext.cnf" <<EOF
[ ext_ec ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = 1.3.6.1.5.2.3.4, clientAuth
subjectAltName = otherName:1.3.6.1.5.2.2;SEQUENCE:princ_name
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ princ_name ]
realm = EXP:0, GENSTR:$REALM
principal_name = EXP:1, SEQUENCE:principal_seq
[ principal_seq ]
name_type = EXP:0, INTEGER:1
name_string = EXP:1, SEQUENCE:principals
[ principals ]
princ1 = GENSTR:$CLIENT
EOF
mkdir -p "$tmp/cold"
openssl pkey -in "$tmp/pki/sp-ca-key.pem" -passin "file:$tmp/pw" -out "$tmp/cold/ca-key.pem" \
    2>>"$tmp/openssl.log" || die "CA key" "$tmp/openssl.log"
openssl req -new -key "$tmp/client-key.pem" -subj "/O=Storm/OU=PacketCable/CN=$CLIENT@$REALM" \
    -out "$tmp/cold/client.csr" 2>>"$tmp/openssl.log" || die "CSR" "$tmp/openssl.log"
IDS=()
for i in $(seq 1 "$COLD"); do
    openssl x509 -req -in "$tmp/cold/client.csr" -CA "$tmp/pki/sp-ca.pem" -CAkey "$tmp/cold/ca-key.pem" \
        -set_serial "$((RANDOM * 65536 + i))" -days 30 -sha256 -extfile "$tmp/ext.cnf" \
        -extensions ext_ec -out "$tmp/cold/c$i.pem" 2>>"$tmp/openssl.log" >/dev/null ||
        die "client certificate $i" "$tmp/openssl.log"
    cat "$tmp/pki/sp-ca.pem" >>"$tmp/cold/c$i.pem"
    IDS+=(--identity "FILE:$tmp/cold/c$i.pem,$tmp/client-key.pem")
done
rm -f "$tmp/cold/ca-key.pem"

# --- the realm: one client with a password (keytab rows; PKINIT rows map the certificate) ----
"$CK_CLI" init --db "$tmp/kdc.db" --realm "$REALM" --enctypes "$ENCTYPE" --max-life 10h \
    >"$tmp/setup.log" 2>&1 </dev/null || die "cablekey init" "$tmp/setup.log"
"$CK_CLI" principal add --db "$tmp/kdc.db" "$CLIENT" --password "$PASSWORD" --enctypes "$ENCTYPE" \
    >>"$tmp/setup.log" 2>&1 </dev/null || die "principal add" "$tmp/setup.log"

# start_kdc on|off LOG: a fresh cablekey-kdc (log level warning: the admission lines, no request
# lines) logging to $tmp/LOG.
start_kdc() {
    PORT=$((PORT + 1))
    KDC_LOG=$tmp/$2
    cat >"$tmp/kdc.conf" <<EOF
[kdcdefaults]
    kdc_workers = $WORKERS
    kdc_admission = $([ "$1" = on ] && echo true || echo false)
    ${CONGEST:+kdc_admission_congest_ms = $CONGEST}
    kdc_max_dgram_reply_size = 65507
[realms]
    $REALM = {
        database_name = $tmp/kdc.db
        key_stash_file = $tmp/kdc.db.stash
        kdc_listen = 127.0.0.1:$PORT
        supported_enctypes = $ENCTYPE
        max_life = 10h
        disable_last_success = true
        pkinit_identity = $tmp/pki/kdc.p12
        pkinit_password_file = $tmp/pw
        pkinit_anchors = $tmp/pki/sp-root.pem
        pkinit_pool = $tmp/pki/sp-ca.pem
        pkinit_thumbprint_cache_size = 16
        pkinit_cert_cache_size = 16
    }
EOF
    : >"$KDC_LOG"
    "$CK_KDC" -c "$tmp/kdc.conf" --log "$KDC_LOG" --log-level warning >"$tmp/kdc.stderr" 2>&1 </dev/null &
    KDC_PID=$!
    wait_udp "$PORT" || die "cablekey-kdc did not start" "$tmp/kdc.stderr" "$KDC_LOG"
}
stop_kdc() {
    kill -TERM "$KDC_PID" 2>/dev/null
    wait "$KDC_PID" 2>/dev/null
    KDC_PID=""
}
load_args() { # load_args MODE
    if [ "$1" = pkinit ]; then
        echo --mode pkinit --kx p256 --anchors "$tmp/pki/sp-root.pem" "${IDS[@]}"
    else
        echo --mode keytab --password "$PASSWORD"
    fi
}
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" "$1" | tail -n 1; }

ROWS=()
for mode in $MODES; do
    # shellcheck disable=SC2046
    read -r -a largs <<<"$(load_args "$mode")"
    start_kdc on "kdc-calib-$mode.log"
    say "$mode: calibration, $CALIB clients, 16 in flight ..."
    timeout -k 5 300 "$LOAD" --kdc "127.0.0.1:$PORT" --realm "$REALM" --client "$CLIENT" "${largs[@]}" \
        --clients "$CALIB" --calibrate 16 --kdc-pid "$KDC_PID" --label calib >"$tmp/calib-$mode.out" 2>&1 ||
        die "calibration ($mode)" "$tmp/calib-$mode.out"
    stop_kdc
    C_US=$(field "$tmp/calib-$mode.out" kdc_cpu_us_per_ok)
    for adm in $ADMISSION; do
        start_kdc "$adm" "kdc-$mode-$adm.log"
        say "$mode, admission $adm: $N clients within $RAMP s ..."
        timeout -k 5 $((DEADLINE + 600)) "$LOAD" --kdc "127.0.0.1:$PORT" --realm "$REALM" --client "$CLIENT" \
            "${largs[@]}" --clients "$N" --ramp "$RAMP" --deadline "$DEADLINE" --kdc-pid "$KDC_PID" \
            --label "$mode-$adm" >"$tmp/storm-$mode-$adm.out" 2>&1
        sleep 1.2  # the last "admission shed" line comes at most a second after the last drop
        stop_kdc
        cat "$tmp/storm-$mode-$adm.out" >&2
        out=$tmp/storm-$mode-$adm.out
        shed=$(grep -o 'admission shed stale=[0-9]* share=[0-9]*' "$KDC_LOG" |
               awk -F'[= ]' '{ st += $4; sh += $6 } END { printf "%d / %d", st, sh }')
        [ "$adm" = off ] && shed="(off)"
        ROWS+=("$(awk -v mode="$mode" -v adm="$adm" -v n="$N" -v ramp="$RAMP" -v c="$C_US" -v w="$WORKERS" \
            -v ok="$(field "$out" ok)" -v un="$(field "$out" unanswered)" -v err="$(field "$out" errors)" \
            -v all="$(field "$out" all_s)" -v p50="$(field "$out" p50_ms)" -v p99="$(field "$out" p99_ms)" \
            -v mx="$(field "$out" max_ms)" -v rt="$(field "$out" retries)" -v kc="$(field "$out" kdc_cpu_us_per_ok)" \
            -v gen="$(field "$out" gen_cpu_s)" -v oth="$(field "$out" other_cores)" -v shed="$shed" 'BEGIN {
                cpu = n * c / 1e6 / w; bound = cpu > ramp ? cpu : ramp
                ratio = (ok == n && bound > 0) ? sprintf("%.2f×", all / bound) : "not all"
                goal = (ok == n && all <= 1.3 * bound) ? "met" : "missed"
                by = (cpu > ramp) ? "CPU" : "ramp"
                cr = (c > 0) ? sprintf("%.2f×", kc / c) : ""
                printf "| %s | %s | %d | %s | %s | %.1f (%s) | %s %s | %s | %s | %s / %s / %s | %s | %s | %s | %s | %s |", mode, adm, ok, un + err, all, bound, by, ratio, goal, shed, rt, p50, p99, mx, kc, c, cr, gen, oth
            }')")
    done
done

echo
echo "Reset storm: $N clients within $RAMP s, cablekey-kdc $WORKERS workers (SQLite), $(nproc) vCPUs, load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| load | admission | tickets | not served | all held after (s) | bound (s) | ratio vs bound (goal ≤ 1.3×) | shed stale / share | client retries | p50 / p99 / max (ms) | KDC CPU µs per ticket (storm) | KDC CPU µs per exchange (calibration) | storm ÷ calibration | generator CPU (s) | other CPU (cores) |"
echo "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for r in "${ROWS[@]}"; do echo "$r"; done
