#!/usr/bin/env bash
# bench/cms_run.sh BUILD_DIR — key management (issue 7): N simulated endpoints key against one
# cablekey-cms, and MIT's krb5_rd_req + krb5_mk_rep over the same tickets as the per-core
# reference, in the same run; plus ESP protect/unprotect from BUILD_DIR/esp_bench and media
# (SRTP, RTP-3DES) protect/unprotect beside libsrtp2 from BUILD_DIR/srtp_bench if they are built.
#
# For each N of the ladder:
#   1. a fresh cablekey-cms (its own keytab for cms/bench.test@BENCH.TEST, aes256-cts-hmac-sha1-96,
#      log level BENCH_CMS_LOG_LEVEL) on a free loopback port;
#   2. BUILD_DIR/kmm_load: N endpoints, each with its own ticket minted with the service key (no
#      KDC: see bench/kmm_load.c) and its own loopback address, one KMM AP Request / AP Reply
#      each, BENCH_CMS_SOCKETS exchanges in flight, every AP Reply verified and its IPsec keys
#      derived; server CPU from /proc/PID/stat + schedstat, server VmRSS before and after;
#   3. BUILD_DIR/krb5_rd_req: one pass of MIT krb5_rd_req (keytab, MIT's default replay cache in
#      an empty KRB5RCACHEDIR) + krb5_mk_rep (fresh sub-key) over the same N AP-REQs, one thread;
#      then the same pass with MIT's replay cache off (KRB5RCACHENAME=none:), for context only.
# Then one table: AP exchanges/s, p50/p99, time until all N hold SAs, server CPU per exchange,
# memory per endpoint, MIT µs per pair, and the ratio per core = cablekey exchanges per
# server CPU-second ÷ MIT pairs per CPU-second, with the issue's goals.
#
# Without BUILD_DIR/cablekey-cms (or with BENCH_CMS_SELFTEST=1) the cablekey rows come from
# kmm_load --self-test: an in-process responder made of the library parts a server uses (lib/kmm
# + ap.h), labelled "self-test": the protocol work alone (no SA table, no ESP SAs, one thread),
# not a measurement of cablekey-cms.
#
# Environment:
#   BENCH_CMS_N          endpoint counts (default "1000 10000 100000"; at most 1000000)
#   BENCH_CMS_SOCKETS    exchanges in flight, each on its own socket (default 256)
#   BENCH_CMS_ROUNDS     rounds per N (default 1): each round is a fresh cablekey-cms + kmm_load
#                        with new tickets, then krb5_rd_req over them with an empty replay cache,
#                        so every ratio compares runs made seconds apart on the shared machine
#   BENCH_CMS_LOG_LEVEL  cablekey-cms --log-level (default warning; "info" logs every exchange)
#   BENCH_CMS_SELFTEST=1 the in-process responder instead of cablekey-cms
#   BENCH_CMS_ESP=0      skip esp_bench
#   BENCH_CMS_CALLS=0    skip call_setup_bench (BENCH_CALLS_N calls, default 5000)
#   BENCH_CMS_SRTP=0     skip srtp_bench
#   BENCH_CMS_CALLGRIND=1  also count instructions per exchange under callgrind (user space only,
#                        so not disturbed by the other tenants of a shared machine): cablekey-cms
#                        and krb5_rd_req each at N = 300 and N = 1300, the difference / 1000 (so
#                        start-up and shutdown cancel); about a minute
#   BENCH_KEEP_TMP=1     keep the temp dir (keytab, configs, daemon logs, AP-REQ files, outputs)
set -uo pipefail
export LC_ALL=C TZ=UTC
# MIT's tracing costs it instructions even to /dev/null: never on for the measurements.
unset KRB5_TRACE

BUILD=${1:-build}
BUILD=$(cd "$BUILD" 2>/dev/null && pwd) || { echo "cms bench: no build dir '${1:-build}'" >&2; exit 2; }
CK_CLI=$BUILD/cablekey
CK_CMS=$BUILD/cablekey-cms
KMM_LOAD=$BUILD/kmm_load
RD_REQ=$BUILD/krb5_rd_req
ESP_BENCH=$BUILD/esp_bench
SRTP_BENCH=$BUILD/srtp_bench
LADDER=${BENCH_CMS_N:-1000 10000 100000}
SOCKETS=${BENCH_CMS_SOCKETS:-256}
ROUNDS=${BENCH_CMS_ROUNDS:-1}
LOG_LEVEL=${BENCH_CMS_LOG_LEVEL:-warning}
SELFTEST=${BENCH_CMS_SELFTEST:-0}
REALM=BENCH.TEST
SERVICE=cms/bench.test
SECONDS=0

for f in "$CK_CLI" "$KMM_LOAD" "$RD_REQ"; do
    [ -x "$f" ] || { echo "cms bench: $f not built (krb5_rd_req needs libkrb5-dev; kmm_load needs lib/kmm)" >&2; exit 2; }
done
for t in python3 ss awk; do
    command -v "$t" >/dev/null || { echo "cms bench: $t not found" >&2; exit 2; }
done
for n in $LADDER; do
    case $n in '' | *[!0-9]*) echo "cms bench: bad N '$n' in BENCH_CMS_N" >&2; exit 2 ;; esac
done
case $ROUNDS in '' | *[!0-9]* | 0) echo "cms bench: bad BENCH_CMS_ROUNDS '$ROUNDS'" >&2; exit 2 ;; esac
if [ "$SELFTEST" != 1 ] && [ ! -x "$CK_CMS" ]; then
    echo "cms bench: $CK_CMS not built: the cablekey rows come from kmm_load --self-test" >&2
    SELFTEST=1
fi

tmp=$(mktemp -d /tmp/ck-cmsbench.XXXXXX)
CMS_PID=""
stop_cms() {
    [ -n "$CMS_PID" ] || return 0
    kill -TERM "$CMS_PID" 2>/dev/null
    wait "$CMS_PID" 2>/dev/null
    CMS_PID=""
}
cleanup() {
    stop_cms
    if [ "${BENCH_KEEP_TMP:-0}" = 1 ]; then echo "cms bench: kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "cms bench [${SECONDS}s]: $*" >&2; }
die() {
    echo "cms bench: $1" >&2
    [ $# -gt 1 ] && tail -n 20 "${@:2}" >&2
    exit 1
}

# A loopback port free for UDP (other benchmarks and tests may run in parallel).
free_port() {
    python3 - <<'EOF'
import random, socket
for _ in range(200):
    p = random.randint(20000, 60000)
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", p))
        s.close()
        print(p)
        raise SystemExit(0)
    except OSError:
        pass
raise SystemExit("no free port")
EOF
}

# Waits until something listens on UDP 127.0.0.1:PORT (at most 10 s).
wait_udp() {
    for _ in $(seq 1 100); do
        ss -Hlun "sport = :$1" 2>/dev/null | grep -q . && return 0
        sleep 0.1
    done
    return 1
}

# field KEY FILE: the value of KEY=... on the RESULT line of FILE.
field() {
    awk -v k="$1" '/^RESULT /{for(i=2;i<=NF;i++){split($i,a,"=");if(a[1]==k)print a[2]}}' "$2" | tail -n 1
}

# ---------------------------------------------------------------------------------------------
# Realm and keytab: the service key is all the benchmark needs (tickets are minted with it).
timeout 60 "$CK_CLI" init --db "$tmp/kdc.db" --realm "$REALM" --enctypes aes256-cts-hmac-sha1-96 \
    >"$tmp/init.log" 2>&1 </dev/null || die "cablekey init" "$tmp/init.log"
timeout 60 "$CK_CLI" principal add --db "$tmp/kdc.db" "$SERVICE" --random \
    >>"$tmp/init.log" 2>&1 </dev/null || die "principal add $SERVICE" "$tmp/init.log"
timeout 60 "$CK_CLI" keytab export --db "$tmp/kdc.db" --out "$tmp/cms.keytab" "$SERVICE" \
    >>"$tmp/init.log" 2>&1 </dev/null || die "keytab export" "$tmp/init.log"
# MIT's side: the same keytab; clock skew 300 s as cablekey-cms's default.
cat >"$tmp/krb5.conf" <<EOF
[libdefaults]
    default_realm = $REALM
    clockskew = 300
    dns_lookup_kdc = false
    dns_lookup_realm = false
EOF
max_n=0
for n in $LADDER; do [ "$n" -gt "$max_n" ] && max_n=$n; done

# start_cms N: a fresh cablekey-cms sized for N endpoints; sets CMS_PID and CMS_PORT.
start_cms() {
    local n=$1 size
    size=$((n * 2 > 200000 ? n * 2 : 200000))
    CMS_PORT=$(free_port) || return 1
    SIG_PORT=$(free_port) || return 1
    cat >"$tmp/cms-$n.conf" <<EOF
[cms]
    keytab = $tmp/cms.keytab
    service = $SERVICE@$REALM
    listen = 127.0.0.1:$CMS_PORT
    signaling_listen = 127.0.0.1:$SIG_PORT
    max_sas = $size
    replay_cache_size = $size
EOF
    "$CK_CMS" --config "$tmp/cms-$n.conf" --keytab "$tmp/cms.keytab" --listen "127.0.0.1:$CMS_PORT" \
        --signaling-listen "127.0.0.1:$SIG_PORT" --log "$tmp/cms-$n.log" --log-level "$LOG_LEVEL" \
        --pid-file "$tmp/cms-$n.pid" >"$tmp/cms-$n.out" 2>&1 &
    CMS_PID=$!
    wait_udp "$CMS_PORT" || return 1
    # The pid file names the daemon if it forked; otherwise it is the child we started.
    if [ -s "$tmp/cms-$n.pid" ]; then CMS_PID=$(tr -dc 0-9 <"$tmp/cms-$n.pid"); fi
    sleep 0.5   # let start-up allocations settle before the RSS baseline
}

# ---------------------------------------------------------------------------------------------
say "ladder: $LADDER endpoints, $SOCKETS exchanges in flight; $([ "$SELFTEST" = 1 ] && echo "in-process self-test responder" || echo "cablekey-cms --log-level $LOG_LEVEL"); load average $(cut -d' ' -f1-3 /proc/loadavg)"
rows=()
for n in $LADDER; do
  for r in $(seq 1 "$ROUNDS"); do
    id=$n-$r
    out=$tmp/kmm-$id.out
    if [ "$SELFTEST" = 1 ]; then
        say "N=$n round $r: kmm_load --self-test"
        timeout 600 "$KMM_LOAD" --keytab "$tmp/cms.keytab" --service "$SERVICE@$REALM" --self-test \
            --endpoints "$n" --sockets "$SOCKETS" --write-apreq "$tmp/apreq-$id.bin" >"$out" 2>&1
        rc=$?
    else
        start_cms "$id" || die "cablekey-cms did not start" "$tmp/cms-$id.out" "$tmp/cms-$id.log"
        say "N=$n round $r: kmm_load against cablekey-cms (pid $CMS_PID, port $CMS_PORT)"
        timeout 600 "$KMM_LOAD" --keytab "$tmp/cms.keytab" --service "$SERVICE@$REALM" \
            --cms "127.0.0.1:$CMS_PORT" --cms-pid "$CMS_PID" --endpoints "$n" --sockets "$SOCKETS" \
            --write-apreq "$tmp/apreq-$id.bin" >"$out" 2>&1
        rc=$?
        stop_cms
    fi
    cat "$out" >&2
    [ $rc = 0 ] || say "N=$n round $r: kmm_load exit $rc (not every endpoint got an SA)"
    grep -q '^RESULT ' "$out" || die "kmm_load N=$n gave no RESULT" "$out"
    mit=$tmp/mit-$id.out
    mkdir -p "$tmp/rcache-$id"
    say "N=$n round $r: krb5_rd_req over the same $n AP-REQs (MIT replay cache in an empty dir)"
    KRB5_CONFIG=$tmp/krb5.conf KRB5RCACHEDIR=$tmp/rcache-$id \
        timeout 600 "$RD_REQ" --keytab "$tmp/cms.keytab" --reqs "$tmp/apreq-$id.bin" \
        --service "$SERVICE@$REALM" >"$mit" 2>&1
    cat "$mit" >&2
    grep -q '^RESULT ' "$mit" || die "krb5_rd_req N=$n gave no RESULT" "$mit"
    # For context: the same pass with MIT's replay cache off (what the cache costs MIT).
    KRB5_CONFIG=$tmp/krb5.conf KRB5RCACHENAME=none: \
        timeout 600 "$RD_REQ" --keytab "$tmp/cms.keytab" --reqs "$tmp/apreq-$id.bin" \
        --service "$SERVICE@$REALM" --label mit-rd-req-norc >"$tmp/mitnorc-$id.out" 2>&1
    cat "$tmp/mitnorc-$id.out" >&2
    rm -f "$tmp/apreq-$id.bin" "$tmp/rcache-$id"/*
    rows+=("$id")
  done
done

# ---------------------------------------------------------------------------------------------
impl=$([ "$SELFTEST" = 1 ] && echo "self-test responder" || echo "cablekey-cms ($LOG_LEVEL)")
echo
echo "Key management: $impl vs MIT krb5_rd_req + krb5_mk_rep, same tickets, $(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| N (round) | SAs | AP exch/s | p50 µs | p99 µs | all SAs after s | server CPU s | server µs/exch | exch per CPU-s | bytes/endpoint | MIT µs/pair | MIT pairs/CPU-s | ratio per core | MIT µs/pair, no rcache |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
goal_ratio="" goal_cpu="not measured (no N = 100000 row)" goal_mem=""
nrows=0 nratio=0
for id in "${rows[@]}"; do
    n=${id%-*}
    k=$tmp/kmm-$id.out m=$tmp/mit-$id.out
    ok=$(field ok "$k") xps=$(field xps "$k") p50=$(field p50_us "$k") p99=$(field p99_us "$k")
    allsa=$(field all_sa_s "$k") cpu=$(field srv_sched_s "$k") us=$(field srv_us_per_x "$k")
    xpc=$(field x_per_cpu_s "$k") bpe=$(field bytes_per_ep "$k")
    mus=$(field us_per_pair "$m") mpps=$(field pairs_per_s "$m")
    mnorc=$(field us_per_pair "$tmp/mitnorc-$id.out")
    ratio=$(awk -v a="$xpc" -v b="$mpps" 'BEGIN{if(a>0&&b>0)printf "%.2f", a/b; else print "n/a"}')
    [ "$SELFTEST" = 1 ] && bpe="n/a"
    nrows=$((nrows + 1))
    echo "| $n ($((${id##*-}))) | $ok | $xps | $p50 | $p99 | $allsa | $cpu | $us | $xpc | $bpe | $mus | $mpps | $ratio× | ${mnorc:-n/a} |"
    awk -v r="$ratio" 'BEGIN{exit !(r != "n/a" && r >= 2)}' && nratio=$((nratio + 1))
    if [ "$n" = 100000 ]; then
        g=$(awk -v c="$cpu" -v ok="$ok" 'BEGIN{if(ok<100000)print "missed (not all SAs)"; else if(c<10)printf "met (%.2f s)", c; else printf "missed (%.2f s)", c}')
        case $goal_cpu in "not measured"*) goal_cpu=$g ;; *) goal_cpu="$goal_cpu; $g" ;; esac
    fi
    # Memory per endpoint is judged at the largest N: at small N the start-up allocations the
    # first requests make (thread arenas, buffers) weigh more than the endpoints do.
    if [ "$bpe" = n/a ]; then goal_mem="not measured (self-test)"
    elif [ "$n" = "$max_n" ]; then
        g=$(awk -v b="$bpe" -v n="$n" 'BEGIN{printf "%s (%.0f bytes at N = %d)", (b <= 1024 ? "met" : "missed"), b, n}')
        case $goal_mem in "") goal_mem=$g ;; *) goal_mem="$goal_mem; $g" ;; esac
    fi
done
goal_ratio="met in $nratio of $nrows rows"
echo
echo "Goals (issue 7): ratio per core ≥ 2: $goal_ratio; 100,000 endpoints keyed in < 10 s of server CPU: $goal_cpu; ≤ 1 KiB of server memory per endpoint: $goal_mem."
[ "$SELFTEST" = 1 ] && echo "The cablekey rows are kmm_load's in-process responder (library parts, one thread), not cablekey-cms."

# ---------------------------------------------------------------------------------------------
# callgrind_total FILE: the "Collected : N" instruction count valgrind printed.
callgrind_total() {
    sed -n 's/^==[0-9]*== Collected : \([0-9]*\)$/\1/p' "$1" | tail -n 1
}

if [ "${BENCH_CMS_CALLGRIND:-0}" = 1 ] && [ "$SELFTEST" != 1 ]; then
    command -v valgrind >/dev/null || die "BENCH_CMS_CALLGRIND=1 needs valgrind"
    declare -A cg_ck cg_mit
    for n in 300 1300; do
        port=$(free_port) || die "no free port"
        sport=$(free_port) || die "no free port"
        say "callgrind: cablekey-cms, $n exchanges"
        valgrind --tool=callgrind --callgrind-out-file="$tmp/cg-cms-$n.out" "$CK_CMS" \
            --keytab "$tmp/cms.keytab" --listen "127.0.0.1:$port" --signaling-listen "127.0.0.1:$sport" \
            --log "$tmp/cg-cms-$n.log" --log-level "$LOG_LEVEL" >"$tmp/cg-cms-$n.err" 2>&1 &
        CMS_PID=$!
        for _ in $(seq 1 600); do
            ss -Hlun "sport = :$port" 2>/dev/null | grep -q . && break
            sleep 0.1
        done
        timeout 600 "$KMM_LOAD" --keytab "$tmp/cms.keytab" --service "$SERVICE@$REALM" \
            --cms "127.0.0.1:$port" --endpoints "$n" --sockets 32 --timeout-ms 30000 \
            --write-apreq "$tmp/cg-$n.bin" >"$tmp/cg-kmm-$n.out" 2>&1 ||
            die "kmm_load under callgrind" "$tmp/cg-kmm-$n.out"
        stop_cms
        cg_ck[$n]=$(callgrind_total "$tmp/cg-cms-$n.err")
        say "callgrind: krb5_rd_req, $n pairs"
        mkdir -p "$tmp/cg-rc-$n"
        KRB5_CONFIG=$tmp/krb5.conf KRB5RCACHEDIR=$tmp/cg-rc-$n \
            valgrind --tool=callgrind --callgrind-out-file="$tmp/cg-mit-$n.out" "$RD_REQ" \
            --keytab "$tmp/cms.keytab" --reqs "$tmp/cg-$n.bin" --service "$SERVICE@$REALM" \
            >"$tmp/cg-mit-$n.err" 2>&1 || die "krb5_rd_req under callgrind" "$tmp/cg-mit-$n.err"
        cg_mit[$n]=$(callgrind_total "$tmp/cg-mit-$n.err")
    done
    [ -n "${cg_ck[300]}" ] && [ -n "${cg_ck[1300]}" ] && [ -n "${cg_mit[300]}" ] && [ -n "${cg_mit[1300]}" ] ||
        die "callgrind: no instruction totals" "$tmp/cg-cms-1300.err" "$tmp/cg-mit-1300.err"
    echo
    awk -v a="${cg_ck[300]}" -v b="${cg_ck[1300]}" -v c="${cg_mit[300]}" -v d="${cg_mit[1300]}" 'BEGIN{
        ck = (b - a) / 1000; mit = (d - c) / 1000
        printf "Instructions per exchange (callgrind, user space, (N=1300 - N=300) / 1000): cablekey-cms %.1f k, MIT krb5_rd_req + krb5_mk_rep %.1f k, MIT / cablekey %.2f×\n", ck / 1000, mit / 1000, mit / ck }'
    echo "(callgrind counts no kernel work: neither cablekey-cms's UDP system calls nor the file I/O of MIT's replay cache.)"
fi

# ---------------------------------------------------------------------------------------------
if [ "${BENCH_CMS_ESP:-1}" != 0 ]; then
    echo
    if [ -x "$ESP_BENCH" ]; then
        say "esp_bench"
        echo "ESP (BUILD_DIR/esp_bench; goal: ≥ 3 Gbit/s per core for 1,000-byte packets, AES-128-CBC + HMAC-SHA-1-96):"
        echo
        timeout 300 "$ESP_BENCH" 2>&1 | sed 's/^/    /'
    else
        echo "ESP: $ESP_BENCH is not built: not measured."
    fi
fi

# ---------------------------------------------------------------------------------------------
# Calls (issue 8): setups through one source controller core, in process, escrow on and off.
if [ "${BENCH_CMS_CALLS:-1}" != 0 ]; then
    echo
    if [ -x "$BUILD/call_setup_bench" ]; then
        say "call_setup_bench"
        echo "Call setup (BUILD_DIR/call_setup_bench ${BENCH_CALLS_N:-5000}; goal: ≥ 5,000 setups/s per controller core with escrow on, key distribution adding < 2 ms p99):"
        echo
        timeout 600 "$BUILD/call_setup_bench" "${BENCH_CALLS_N:-5000}" 2>&1 | sed 's/^/    /'
    else
        echo "Calls: $BUILD/call_setup_bench is not built: not measured."
    fi
fi

# ---------------------------------------------------------------------------------------------
# Media (issue 8): SRTP protect/unprotect per core beside libsrtp2.
if [ "${BENCH_CMS_SRTP:-1}" != 0 ]; then
    echo
    if [ -x "$SRTP_BENCH" ]; then
        say "srtp_bench"
        echo "Media (BUILD_DIR/srtp_bench; goal: ≥ 200,000 SRTP packets/s per core at 20 ms G.711 frames):"
        echo
        timeout 300 "$SRTP_BENCH" 2>&1 | sed 's/^/    /'
    else
        echo "Media: $SRTP_BENCH is not built: not measured."
    fi
fi
