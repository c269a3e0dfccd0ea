#!/usr/bin/env bash
# bench/fleet_bench.sh BUILD_DIR — the KDC fleet (issue 9): three cablekey-kdc on one PostgreSQL
# against one cablekey-kdc on SQLite, same realm contents, same load.
#
# Rows (build/kdc_loadgen, prepared AS-REQs with PA-ENC-TIMESTAMP or TGS-REQs, BENCH_FLEET_INFLIGHT
# in flight, BENCH_FLEET_DURATION seconds each; every principal cached after the warm-up, so these
# are the cache-hit paths the issue's "≤ 10 % per exchange" goal is about):
#   sqlite x1   one KDC on SQLite
#   pg x1       one of the three PostgreSQL KDCs (the other two idle)
#   pg x3       all three at once, one load generator each (a third of the requests in flight
#               each); exchanges/s summed, KDC CPU per exchange = their CPU summed / exchanges
# Then the cache-invalidation latency (build/fleet_probe): BENCH_FLEET_TRIALS times, a principal
# that every KDC has just issued a ticket for is disabled with `cablekey principal modify
# --disallow-all-tix` on the database, and each KDC is asked again (fresh AS-REQs, one in flight
# per KDC) until it refuses; the figure is the time from the write's commit (the CLI has exited)
# to the last KDC's refusal. For the SQLite KDC the same with its one KDC.
# The throw-away PostgreSQL is tests/interop/pg_lib.sh's (initdb in a temp dir, Unix socket).
#
# Environment: BENCH_FLEET_DURATION (4), BENCH_FLEET_INFLIGHT (48), BENCH_FLEET_REQUESTS
# (prepared per run, 60000), BENCH_FLEET_WORKERS (2 per KDC), BENCH_FLEET_TRIALS (20), BENCH_FLEET_PORT (first port, 21560; k9storm's range
# 21500-21599), BENCH_KEEP_TMP=1.
set -uo pipefail
export LC_ALL=C TZ=UTC

BUILD=${1:-build}
BUILD=$(cd "$BUILD" 2>/dev/null && pwd) || { echo "fleet bench: no build dir '${1:-build}'" >&2; exit 2; }
HERE=$(cd "$(dirname "$0")" && pwd)
CK_KDC=$BUILD/cablekey-kdc
CK_CLI=$BUILD/cablekey
LOADGEN=$BUILD/kdc_loadgen
PROBE=$BUILD/fleet_probe
DURATION=${BENCH_FLEET_DURATION:-4}
INFLIGHT=${BENCH_FLEET_INFLIGHT:-48}
WORKERS=${BENCH_FLEET_WORKERS:-2}
TRIALS=${BENCH_FLEET_TRIALS:-20}
PORT=${BENCH_FLEET_PORT:-21560}
REALM=FLEET.TEST
CLIENT=bench
PASSWORD=fleet-bench-pw
SERVICE=host/bench.test
ENCTYPE=aes256-cts-hmac-sha1-96
SECONDS=0

for f in "$CK_KDC" "$CK_CLI" "$LOADGEN" "$PROBE"; do
    [ -x "$f" ] || { echo "fleet bench: $f not built" >&2; exit 2; }
done
command -v ss >/dev/null || { echo "fleet bench: ss not found" >&2; exit 2; }

tmp=$(mktemp -d /tmp/ck-fleet.XXXXXX)
chmod 755 "$tmp"
PIDS=()
CK_PG_NO_TRAP=1
# shellcheck source=../tests/interop/pg_lib.sh
. "$HERE/../tests/interop/pg_lib.sh"
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    pg_stop >/dev/null 2>&1
    if [ "${BENCH_KEEP_TMP:-0}" = 1 ]; then echo "fleet bench: kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
say() { echo "fleet bench [${SECONDS}s]: $*" >&2; }
die() {
    echo "fleet bench: $1" >&2
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

say "throw-away PostgreSQL ..."
pg_start >"$tmp/pg.log" 2>&1 || die "pg_start" "$tmp/pg.log"
PG_URI=$CK_PG_URI

# make_realm DB STASH: the realm with the load's principals and TRIALS victims.
make_realm() {
    local db=$1 stash=$2 i
    cli() { "$CK_CLI" "$@" --db "$db" --stash "$stash" </dev/null >>"$tmp/setup.log" 2>&1; }
    cli init --realm "$REALM" --enctypes "$ENCTYPE" --max-life 10h || return 1
    cli principal add "$CLIENT" --password "$PASSWORD" --enctypes "$ENCTYPE" || return 1
    cli principal add "$SERVICE" --random --enctypes "$ENCTYPE" || return 1
    for i in $(seq 1 "$TRIALS"); do
        cli principal add "victim$i" --password "$PASSWORD" --enctypes "$ENCTYPE" || return 1
    done
}
say "realms: SQLite and PostgreSQL, $TRIALS victims each ..."
make_realm "$tmp/sq.db" "$tmp/sq.stash" || die "SQLite realm" "$tmp/setup.log"
make_realm "$PG_URI" "$tmp/pg.stash" || die "PostgreSQL realm" "$tmp/setup.log"

# start_kdc NAME DB STASH: one cablekey-kdc on the next port; sets LAST_PORT, LAST_PID.
start_kdc() {
    PORT=$((PORT + 1))
    cat >"$tmp/$1.conf" <<EOF
[kdcdefaults]
    kdc_workers = $WORKERS
[realms]
    $REALM = {
        database_name = $2
        key_stash_file = $3
        kdc_listen = 127.0.0.1:$PORT
        supported_enctypes = $ENCTYPE
        max_life = 10h
        disable_last_success = true
    }
EOF
    "$CK_KDC" -c "$tmp/$1.conf" --log "$tmp/$1.log" --log-level warning >"$tmp/$1.stderr" 2>&1 </dev/null &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
    LAST_PORT=$PORT
    wait_udp "$PORT" || die "KDC $1 did not start" "$tmp/$1.stderr" "$tmp/$1.log"
}
start_kdc sq "$tmp/sq.db" "$tmp/sq.stash"; SQ_PORT=$LAST_PORT; SQ_PID=$LAST_PID
PG_PORTS=(); PG_PIDS=()
for k in 1 2 3; do
    start_kdc "pg$k" "$PG_URI" "$tmp/pg.stash"
    PG_PORTS+=("$LAST_PORT"); PG_PIDS+=("$LAST_PID")
done

# load OUT PORT PID MODE INFLIGHT: one kdc_loadgen run (REQUESTS prepared: enough for the
# duration on this machine; building them is not timed but takes a while).
REQUESTS=${BENCH_FLEET_REQUESTS:-60000}
load() {
    timeout -k 5 $((DURATION + 120)) "$LOADGEN" --kdc "127.0.0.1:$2" --realm "$REALM" --client "$CLIENT" \
        --password "$PASSWORD" --service "$SERVICE" --mode "$4" --requests "$REQUESTS" --inflight "$5" \
        --duration-max "$DURATION" --kdc-pid "$3" --label "$(basename "$1")" >"$1" 2>&1
}
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" "$1" | tail -n 1; }

say "warm-up (every KDC caches the principals) ..."
for mode in as tgs; do
    REQUESTS=500 DURATION=1 load "$tmp/warm-sq-$mode" "$SQ_PORT" "$SQ_PID" "$mode" 8 || die "warm-up" "$tmp/warm-sq-$mode"
    for k in 0 1 2; do
        REQUESTS=500 DURATION=1 load "$tmp/warm-pg$k-$mode" "${PG_PORTS[$k]}" "${PG_PIDS[$k]}" "$mode" 8 ||
            die "warm-up" "$tmp/warm-pg$k-$mode"
    done
done

ROWS=()
for mode in as tgs; do
    say "$mode: sqlite x1 ..."
    load "$tmp/sq-$mode" "$SQ_PORT" "$SQ_PID" "$mode" "$INFLIGHT" || die "load" "$tmp/sq-$mode"
    SQ_CPU=$(field "$tmp/sq-$mode" cpu_us_per_req)
    ROWS+=("| $mode | sqlite ×1 | $(field "$tmp/sq-$mode" rps) | $SQ_CPU | | $(field "$tmp/sq-$mode" p99_us) | $(field "$tmp/sq-$mode" errors)+$(field "$tmp/sq-$mode" lost) | $(field "$tmp/sq-$mode" other_cores) |")
    say "$mode: pg x1 ..."
    load "$tmp/pg1-$mode" "${PG_PORTS[0]}" "${PG_PIDS[0]}" "$mode" "$INFLIGHT" || die "load" "$tmp/pg1-$mode"
    PG_CPU=$(field "$tmp/pg1-$mode" cpu_us_per_req)
    ROWS+=("| $mode | postgresql ×1 | $(field "$tmp/pg1-$mode" rps) | $PG_CPU | $(awk -v a="$PG_CPU" -v b="$SQ_CPU" 'BEGIN { if (b > 0) printf "%+.1f %%", (a / b - 1) * 100 }') | $(field "$tmp/pg1-$mode" p99_us) | $(field "$tmp/pg1-$mode" errors)+$(field "$tmp/pg1-$mode" lost) | $(field "$tmp/pg1-$mode" other_cores) |")
    say "$mode: pg x3 ..."
    LPIDS=()
    for k in 0 1 2; do
        load "$tmp/pg3-$k-$mode" "${PG_PORTS[$k]}" "${PG_PIDS[$k]}" "$mode" $((INFLIGHT / 3)) &
        LPIDS+=($!)
    done
    wait "${LPIDS[@]}"
    ROWS+=("$(awk -v mode="$mode" -v sq="$SQ_CPU" '
        /^RESULT / { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
                     rps += v["rps"]; ok += v["ok"]; cpu += v["cpu_us_per_req"] * v["ok"]
                     err += v["errors"] + v["lost"]; if (v["p99_us"] > p99) p99 = v["p99_us"]
                     oth = v["other_cores"] }
        END { c = ok > 0 ? cpu / ok : 0
              printf "| %s | postgresql ×3 (sum) | %.0f | %.1f | %+.1f %% | %s | %d | %s |", mode, rps, c, (sq > 0 ? (c / sq - 1) * 100 : 0), p99, err, oth }' \
        "$tmp/pg3-0-$mode" "$tmp/pg3-1-$mode" "$tmp/pg3-2-$mode")")
done

# probe OUT PORTS... -- WRITE: one invalidation trial.
say "invalidation latency: $TRIALS trials on the PostgreSQL fleet, $TRIALS on SQLite ..."
: >"$tmp/inval-pg"; : >"$tmp/inval-sq"
for i in $(seq 1 "$TRIALS"); do
    timeout -k 5 60 "$PROBE" --kdc "127.0.0.1:${PG_PORTS[0]}" --kdc "127.0.0.1:${PG_PORTS[1]}" \
        --kdc "127.0.0.1:${PG_PORTS[2]}" --realm "$REALM" --client "victim$i" --password "$PASSWORD" \
        -- "$CK_CLI" principal modify --db "$PG_URI" --stash "$tmp/pg.stash" "victim$i" --disallow-all-tix \
        >>"$tmp/inval-pg" 2>&1
    timeout -k 5 60 "$PROBE" --kdc "127.0.0.1:$SQ_PORT" --realm "$REALM" --client "victim$i" \
        --password "$PASSWORD" -- "$CK_CLI" principal modify --db "$tmp/sq.db" --stash "$tmp/sq.stash" \
        "victim$i" --disallow-all-tix >>"$tmp/inval-sq" 2>&1
done
inval_row() { # inval_row LABEL FILE
    grep '^RESULT ' "$2" | sed -n 's/.* max_ms=\([^ ]*\).* each_ms=\([^ ]*\).*/\1/p' | sort -g |
        awk -v label="$1" -v trials="$TRIALS" '{ v[n++] = $1; if ($1 < 0) bad++ }
            END { if (n == 0) { printf "| %s | 0 of %d | | | |\n", label, trials; exit }
                  printf "| %s | %d of %d | %.1f | %.1f | %.1f |", label, n - bad, trials,
                         v[int(0.5 * (n - 1))], v[int(0.99 * (n - 1))], v[n - 1] }'
    echo
}

echo
echo "KDC fleet: cablekey-kdc ×3 on PostgreSQL vs ×1 on SQLite, $WORKERS workers each, $(nproc) vCPUs shared with the load generators, load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| exchange | KDCs | exchanges/s | KDC CPU µs/exchange | vs SQLite (goal ≤ +10 %) | p99 µs | errors+lost | other CPU (cores) |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
for r in "${ROWS[@]}"; do echo "$r"; done
echo
echo "| invalidation (write → every KDC refuses) | trials with all refused | p50 ms | p99 ms | max ms |"
echo "|---|---:|---:|---:|---:|"
inval_row "postgresql ×3" "$tmp/inval-pg"
inval_row "sqlite ×1" "$tmp/inval-sq"
