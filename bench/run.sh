#!/usr/bin/env bash
# bench/run.sh BUILD_DIR — side-by-side KDC benchmark: cablekey-kdc and MIT krb5kdc, same machine,
# same run, same realm and principals, same loads and parameters.
#
# For each KDC: AS exchanges (PA-ENC-TIMESTAMP, aes256-cts-hmac-sha1-96) and TGS exchanges, over
# UDP on loopback, both KDCs with 2 workers, under two load shapes:
#   raw   BUILD_DIR/kdc_loadgen: prepared requests, BENCH_INFLIGHT (64) in flight, batched;
#   krb5  BUILD_DIR/krb5_load: MIT's libkrb5 in BENCH_KRB5_PROCS (8) client processes, one
#         request in flight each (krb5_get_init_creds_keytab: two KDC round trips per AS
#         exchange; krb5_get_credentials: one per TGS exchange), as real clients arrive.
# All KDCs run for the whole script, idle while another is measured; after a warm-up (which also
# fills every lookaside cache), BENCH_ROUNDS rounds measure each (shape, mode) for each KDC back
# to back, so a ratio compares runs made seconds apart: on a shared machine other work comes and
# goes, and per-round ratios with their median are what the noise leaves comparable. Prints every
# run, then medians and ratios. Bounded: every run stops after its duration; with the defaults the
# script takes about five minutes.
#
# Environment:
#   BENCH_REQUESTS   raw: requests prepared per run (default 100000)
#   BENCH_DURATION   raw: seconds per run, at most (default 4)
#   BENCH_INFLIGHT   raw: requests kept in flight (default 64)
#   BENCH_KRB5_PROCS krb5: client processes (default 8)
#   BENCH_KRB5_DURATION krb5: seconds per run (default 5)
#   BENCH_SHAPES     shapes to run (default "raw krb5"; krb5 needs BUILD_DIR/krb5_load)
#   BENCH_LEVELS     cablekey-kdc log levels to run (default "warning info")
#   BENCH_ROUNDS     rounds (default 3)
#   BENCH_WORKERS    KDC workers for both implementations (default 2)
#   BENCH_KEEP_TMP=1 keep the temp dir (KDC logs, configs, generator output)
#   BENCH_SKIP_MIT=1 / BENCH_SKIP_CK=1  measure only one implementation
#   BENCH_LOCKOUT=1  lockout mode (docs/PERFORMANCE.md "Lockout"): the client principal gets a
#                    lockout policy (max failures 5) on both KDCs; MIT runs with its lockout and
#                    last-success recording on (its defaults); cablekey-kdc runs twice, with
#                    counting off (disable_lockout, disable_last_success: label "cablekey") and
#                    on (its defaults: label "cablekey-lockout"). AS only, warning level; prints
#                    the lockout / no-lockout CPU ratio per round.
#   BENCH_MODES      exchanges to run (default "as tgs"; "as" in lockout mode)
set -uo pipefail
export LC_ALL=C TZ=UTC

BUILD=${1:-build}
BUILD=$(cd "$BUILD" 2>/dev/null && pwd) || { echo "bench: no build dir '${1:-build}'" >&2; exit 2; }
LOADGEN=$BUILD/kdc_loadgen
KRB5_LOAD=$BUILD/krb5_load
CK_KDC=$BUILD/cablekey-kdc
CK_CLI=$BUILD/cablekey
REQUESTS=${BENCH_REQUESTS:-100000}
DURATION=${BENCH_DURATION:-4}
INFLIGHT=${BENCH_INFLIGHT:-64}
WORKERS=${BENCH_WORKERS:-2}
KRB5_PROCS=${BENCH_KRB5_PROCS:-8}
KRB5_DURATION=${BENCH_KRB5_DURATION:-5}
SHAPES=${BENCH_SHAPES:-raw krb5}
LEVELS=${BENCH_LEVELS:-warning info}
ROUNDS=${BENCH_ROUNDS:-3}
LOCKOUT=${BENCH_LOCKOUT:-0}
if [ "$LOCKOUT" = 1 ]; then
    MODES=${BENCH_MODES:-as}
    LEVELS=warning
else
    MODES=${BENCH_MODES:-as tgs}
fi

REALM=BENCH.TEST
CLIENT=bench
PASSWORD=bench-password-1
SERVICE=host/bench.test
ENCTYPE=aes256-cts-hmac-sha1-96

[ -x "$LOADGEN" ] || { echo "bench: $LOADGEN not built" >&2; exit 2; }
case " $SHAPES " in
*" krb5 "*) [ -x "$KRB5_LOAD" ] || { echo "bench: $KRB5_LOAD not built (libkrb5-dev missing?)" >&2; exit 2; } ;;
esac

tmp=$(mktemp -d /tmp/ck-bench.XXXXXX)
MIT_PID=""
CK_PIDS=""
cleanup() {
    local p
    if [ -n "$MIT_PID" ]; then kill -TERM "$MIT_PID" 2>/dev/null; wait "$MIT_PID" 2>/dev/null; fi
    for p in $CK_PIDS; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    if [ "${BENCH_KEEP_TMP:-0}" = 1 ]; then echo "bench: kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A loopback port free for UDP and TCP (other benchmarks and tests may run in parallel).
free_port() {
    python3 - <<'EOF'
import random, socket
for _ in range(200):
    p = random.randint(20000, 60000)
    try:
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            s = socket.socket(socket.AF_INET, kind)
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
    local i
    for i in $(seq 1 100); do
        ss -Hlun "sport = :$1" 2>/dev/null | grep -q . && return 0
        sleep 0.1
    done
    return 1
}

# ---------------------------------------------------------------------------------------------
# MIT krb5kdc realm. The db2 "lockout" module would write last-success/failure data to the
# database on every preauthenticated AS exchange; disable_last_success and disable_lockout keep
# the hot path free of disk writes, as cablekey's KDC is. In lockout mode both are on (MIT's
# defaults) and the client has a policy with -maxfailure.
setup_mit() {
    local d=$tmp/mit mit_lockout=true
    [ "$LOCKOUT" = 1 ] && mit_lockout=false
    mkdir -p "$d"
    MIT_PORT=$(free_port) || return 1
    cat >"$d/krb5.conf" <<EOF
[libdefaults]
    default_realm = $REALM
    dns_lookup_kdc = false
    dns_lookup_realm = false
[realms]
    $REALM = {
        kdc = 127.0.0.1:$MIT_PORT
    }
EOF
    cat >"$d/kdc.conf" <<EOF
[realms]
    $REALM = {
        database_name = $d/principal
        key_stash_file = $d/stash
        acl_file = $d/kadm5.acl
        kdc_listen = 127.0.0.1:$MIT_PORT
        kdc_tcp_listen = 127.0.0.1:$MIT_PORT
        master_key_type = $ENCTYPE
        supported_enctypes = $ENCTYPE:normal
        max_life = 10h
        max_renewable_life = 7d
        default_principal_flags = +preauth
    }
[dbmodules]
    $REALM = {
        disable_last_success = $mit_lockout
        disable_lockout = $mit_lockout
    }
[logging]
    kdc = FILE:$d/kdc.log
EOF
    : >"$d/kadm5.acl"
    export KRB5_CONFIG=$d/krb5.conf KRB5_KDC_PROFILE=$d/kdc.conf
    kdb5_util -r "$REALM" create -s -P bench-master-pw >"$d/setup.log" 2>&1 || return 1
    kadmin.local -r "$REALM" -q "addprinc -pw $PASSWORD -e $ENCTYPE:normal +requires_preauth $CLIENT" \
        >>"$d/setup.log" 2>&1 || return 1
    kadmin.local -r "$REALM" -q "addprinc -randkey -e $ENCTYPE:normal $SERVICE" \
        >>"$d/setup.log" 2>&1 || return 1
    if [ "$LOCKOUT" = 1 ]; then
        kadmin.local -r "$REALM" -q "addpol -maxfailure 5 -failurecountinterval 600 -lockoutduration 1800 benchlock" \
            >>"$d/setup.log" 2>&1 || return 1
        kadmin.local -r "$REALM" -q "modprinc -policy benchlock $CLIENT" \
            >>"$d/setup.log" 2>&1 || return 1
    fi
    # -n: stay in the foreground (its pid is ours); -w: worker processes, one per core.
    krb5kdc -n -w "$WORKERS" -r "$REALM" >"$d/stdout.log" 2>&1 &
    MIT_PID=$!
    wait_udp "$MIT_PORT" || return 1
    # The workers are forked after startup; wait for all of them.
    local i
    for i in $(seq 1 50); do
        [ "$(pgrep -P "$MIT_PID" | wc -l)" -ge "$WORKERS" ] && break
        sleep 0.1
    done
    unset KRB5_CONFIG KRB5_KDC_PROFILE
}

mit_pid_args() {
    local p
    printf -- '--kdc-pid %s ' "$MIT_PID"
    for p in $(pgrep -P "$MIT_PID"); do printf -- '--kdc-pid %s ' "$p"; done
}

# ---------------------------------------------------------------------------------------------
# cablekey realm: the same realm name, principals, password, enctype and lifetime.
setup_ck() {
    local d=$tmp/ck
    mkdir -p "$d"
    CK_PORT=$(free_port) || return 1
    "$CK_CLI" init --db "$d/kdc.db" --realm "$REALM" --enctypes "$ENCTYPE" --max-life 10h \
        >"$d/setup.log" 2>&1 || return 1
    local pol=()
    if [ "$LOCKOUT" = 1 ]; then
        "$CK_CLI" policy add --db "$d/kdc.db" benchlock --max-failure 5 --failure-interval 600 \
            --lockout-duration 1800 >>"$d/setup.log" 2>&1 || return 1
        pol=(--policy benchlock)
    fi
    "$CK_CLI" principal add --db "$d/kdc.db" "$CLIENT" --password "$PASSWORD" \
        --enctypes "$ENCTYPE" "${pol[@]}" >>"$d/setup.log" 2>&1 || return 1
    "$CK_CLI" principal add --db "$d/kdc.db" "$SERVICE" --random --enctypes "$ENCTYPE" \
        >>"$d/setup.log" 2>&1 || return 1
}

# start_ck LOG_LEVEL [LOCKOUT]: one cablekey-kdc per level, each on its own port, sharing the
# database; LOCKOUT "off" writes a kdc.conf with disable_lockout and disable_last_success.
# Sets CK_PORT and CK_PID.
start_ck() {
    local d=$tmp/ck conf=()
    CK_PORT=$(free_port) || return 1
    if [ "${2:-}" = off ]; then
        printf '[realms]\n    %s = {\n        database_name = %s\n        disable_lockout = true\n        disable_last_success = true\n    }\n' \
            "$REALM" "$d/kdc.db" >"$d/kdc-nolockout.conf"
        conf=(-c "$d/kdc-nolockout.conf")
    fi
    "$CK_KDC" "${conf[@]}" --listen "127.0.0.1:$CK_PORT" --db "$d/kdc.db" --log "$d/kdc-$1-${2:-on}.log" \
        --log-level "$1" --workers "$WORKERS" >"$d/stdout-$1-${2:-on}.log" 2>&1 &
    CK_PID=$!
    CK_PIDS="$CK_PIDS $CK_PID"
    wait_udp "$CK_PORT"
}

# run_gen TAG LABEL MODE PORT PID-ARGS...: the raw shape.
run_gen() {
    local tag=$1 label=$2 mode=$3 port=$4 out
    shift 4
    out=$tmp/gen-$tag-$label-$mode.out
    echo "bench: [$tag] $label $mode (raw) ..." >&2
    # shellcheck disable=SC2068
    timeout -k 5 $((DURATION + 60)) "$LOADGEN" --kdc "127.0.0.1:$port" --realm "$REALM" \
        --client "$CLIENT" --password "$PASSWORD" --service "$SERVICE" --mode "$mode" \
        --requests "$REQUESTS" --inflight "$INFLIGHT" --duration-max "$DURATION" \
        --label "$label" $@ >"$out" 2>&1
    sed 's/^/    /' "$out" >&2
    [ "$tag" = warm ] && return 0
    grep '^RESULT ' "$out" | sed "s/^RESULT /RESULT round=$tag shape=raw /" >>"$tmp/results" ||
        echo "RESULT round=$tag shape=raw impl=$label mode=$mode failed=1" >>"$tmp/results"
}

# run_krb5 TAG LABEL MODE PORT PID-ARGS...: the libkrb5 shape.
run_krb5() {
    local tag=$1 label=$2 mode=$3 port=$4 out
    shift 4
    out=$tmp/krb5-$tag-$label-$mode.out
    echo "bench: [$tag] $label $mode (krb5, $KRB5_PROCS processes) ..." >&2
    # shellcheck disable=SC2068
    timeout -k 5 $((KRB5_DURATION + 60)) "$KRB5_LOAD" --kdc "127.0.0.1:$port" --realm "$REALM" \
        --client "$CLIENT@$REALM" --password "$PASSWORD" --service "$SERVICE@$REALM" \
        --mode "$mode" --procs "$KRB5_PROCS" --duration "$KRB5_DURATION" \
        --label "$label" $@ >"$out" 2>&1
    sed 's/^/    /' "$out" >&2
    [ "$tag" = warm ] && return 0
    grep '^RESULT ' "$out" | sed "s/shape=krb5 //; s/^RESULT /RESULT round=$tag shape=krb5 /" >>"$tmp/results" ||
        echo "RESULT round=$tag shape=krb5 impl=$label mode=$mode failed=1" >>"$tmp/results"
}

# run_one TAG SHAPE MODE IMPL: one measurement of one KDC.
run_one() {
    local tag=$1 shape=$2 mode=$3 impl=$4 port pidargs
    if [ "$impl" = mit ]; then
        port=$MIT_PORT
        pidargs=$(mit_pid_args)
    else
        port=${IMPL_PORT[$impl]}
        pidargs="--kdc-pid ${IMPL_PID[$impl]}"
    fi
    # shellcheck disable=SC2086
    case $shape in
    raw) run_gen "$tag" "$impl" "$mode" "$port" $pidargs ;;
    krb5) run_krb5 "$tag" "$impl" "$mode" "$port" $pidargs ;;
    *) echo "bench: unknown shape $shape" >&2 ;;
    esac
}

: >"$tmp/results"
echo "bench: $(nproc) CPUs, $ROUNDS rounds, shapes: $SHAPES; raw: $REQUESTS requests max, ${DURATION}s max, $INFLIGHT in flight; krb5: $KRB5_PROCS processes, ${KRB5_DURATION}s; $WORKERS KDC workers" >&2

IMPLS=""
declare -A IMPL_PORT IMPL_PID
if [ "${BENCH_SKIP_MIT:-0}" != 1 ]; then
    if setup_mit; then
        IMPLS="mit"
    else
        echo "bench: MIT realm setup failed:" >&2
        tail -n 20 "$tmp/mit/setup.log" "$tmp/mit/stdout.log" 2>/dev/null >&2
    fi
fi
if [ "${BENCH_SKIP_CK:-0}" != 1 ]; then
    if [ ! -x "$CK_KDC" ] || [ ! -x "$CK_CLI" ]; then
        echo "bench: $CK_KDC or $CK_CLI not built: cablekey rows skipped" >&2
    elif ! setup_ck; then
        echo "bench: cablekey realm setup failed:" >&2
        tail -n 20 "$tmp/ck/setup.log" >&2
    else
        # warning: the benchmark setting (per-request logging off); info: the operator default.
        # Lockout mode: counting off ("cablekey", the baseline) and on ("cablekey-lockout").
        ck_runs=""
        for level in $LEVELS; do
            label=cablekey
            [ "$level" != warning ] && label=cablekey-$level
            if [ "$LOCKOUT" = 1 ]; then
                ck_runs="$ck_runs $label:$level:off $label-lockout:$level:on"
            else
                ck_runs="$ck_runs $label:$level:on"
            fi
        done
        for run in $ck_runs; do
            IFS=: read -r label level lk <<<"$run"
            if start_ck "$level" "$lk"; then
                IMPLS="$IMPLS $label"
                IMPL_PORT[$label]=$CK_PORT
                IMPL_PID[$label]=$CK_PID
            else
                echo "bench: cablekey-kdc ($level, lockout $lk) did not start:" >&2
                tail -n 20 "$tmp/ck/stdout-$level-$lk.log" "$tmp/ck/kdc-$level-$lk.log" 2>/dev/null >&2
            fi
        done
    fi
fi

# Warm-up, not recorded: code paths, principal caches, lookaside caches full (as they are on a
# KDC that has been up for a while).
for impl in $IMPLS; do
    for mode in $MODES; do
        run_one warm raw "$mode" "$impl"
    done
done
for round in $(seq 1 "$ROUNDS"); do
    for shape in $SHAPES; do
        for mode in $MODES; do
            for impl in $IMPLS; do
                run_one "$round" "$shape" "$mode" "$impl"
            done
        done
    done
done

# ---------------------------------------------------------------------------------------------
# Tables and ratios.
awk '
function field(line, key,    n, i, kv) {
    n = split(line, kv, " ")
    for (i = 1; i <= n; i++)
        if (index(kv[i], key "=") == 1)
            return substr(kv[i], length(key) + 2)
    return ""
}
function median(list,    n, v, i, j, t) {
    n = split(list, v, " ")
    for (i = 2; i <= n; i++)
        for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
    if (n == 0) return 0
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
/^RESULT / {
    round = field($0, "round"); shape = field($0, "shape"); impl = field($0, "impl"); mode = field($0, "mode")
    key = shape "/" impl "/" mode
    rk = round "/" key
    rows[++n] = rk
    if (!(key in seenkey)) { seenkey[key] = 1; keys[++nk] = key }
    if (!(impl in seen)) { seen[impl] = 1; impls[++ni] = impl }
    if (field($0, "failed") != "") { failed[rk] = 1; next }
    rps[rk] = field($0, "rps"); p50[rk] = field($0, "p50_us"); p99[rk] = field($0, "p99_us")
    cpu[rk] = field($0, "cpu_us_per_req"); ok[rk] = field($0, "ok")
    err[rk] = field($0, "errors") + field($0, "lost")
    gen[rk] = field($0, "gen_cpu_us_per_req"); oth[rk] = field($0, "other_cores")
    cpus[key] = cpus[key] " " cpu[rk]; rpss[key] = rpss[key] " " rps[rk]
    byround[rk] = 1
    if (round > maxround) maxround = round
}
END {
    printf "\nEvery run:\n\n| round | shape | impl | mode | exchanges/s | p50 µs | p99 µs | KDC CPU µs/exchange | ok | errors+lost | load CPU µs/exchange | other processes (cores) |\n"
    printf "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    for (i = 1; i <= n; i++) {
        k = rows[i]; split(k, parts, "/")
        if (failed[k]) { printf "| %s | %s | %s | %s | FAILED | | | | | | | |\n", parts[1], parts[2], parts[3], parts[4]; continue }
        p99s = p99[k] > 0 ? sprintf("%.0f", p99[k]) : "-"
        printf "| %s | %s | %s | %s | %.0f | %.0f | %s | %.1f | %d | %d | %.1f | %.2f |\n", parts[1], parts[2], parts[3], parts[4],
               rps[k], p50[k], p99s, cpu[k], ok[k], err[k], gen[k], oth[k]
    }
    printf "\n(krb5 shape: p50 is the mean latency; an AS exchange is two KDC round trips.)\n"
    printf "\nMedians over the rounds:\n\n| shape | impl | mode | exchanges/s | KDC CPU µs/exchange |\n|---|---|---|---:|---:|\n"
    for (i = 1; i <= nk; i++) {
        split(keys[i], parts, "/")
        printf "| %s | %s | %s | %.0f | %.1f |\n", parts[1], parts[2], parts[3], median(rpss[keys[i]]), median(cpus[keys[i]])
    }
    printf "\nMIT CPU / ours per round (goal >= 5), median first:\n\n"
    split("raw krb5", shapes, " ")
    split("as tgs", modes, " ")
    for (s = 1; s <= 2; s++)
        for (m = 1; m <= 2; m++)
            for (j = 1; j <= ni; j++) {
                if (impls[j] == "mit") continue
                list = ""; rlist = ""; shown = ""
                for (r = 1; r <= maxround; r++) {
                    mk = r "/" shapes[s] "/mit/" modes[m]
                    ok_ = r "/" shapes[s] "/" impls[j] "/" modes[m]
                    if (!(mk in cpu) || !(ok_ in cpu) || cpu[ok_] <= 0 || rps[mk] <= 0) continue
                    x = cpu[mk] / cpu[ok_]
                    list = list " " x; rlist = rlist " " rps[ok_] / rps[mk]
                    shown = shown sprintf(" %.2f", x)
                }
                if (list == "") continue
                printf "%-5s %-18s %-4s MIT CPU / ours = %5.2fx  (rounds:%s)   ours rps / MIT rps = %5.2fx\n",
                       shapes[s], impls[j], modes[m], median(list), shown, median(rlist)
            }
    # Lockout mode: what counting costs cablekey-kdc (goal: at most 1.10).
    for (s = 1; s <= 2; s++)
        for (m = 1; m <= 2; m++) {
            list = ""; shown = ""
            for (r = 1; r <= maxround; r++) {
                bk = r "/" shapes[s] "/cablekey/" modes[m]
                lk = r "/" shapes[s] "/cablekey-lockout/" modes[m]
                if (!(bk in cpu) || !(lk in cpu) || cpu[bk] <= 0) continue
                x = cpu[lk] / cpu[bk]
                list = list " " x; shown = shown sprintf(" %.3f", x)
            }
            if (list == "") continue
            if (!hdr++) printf "\nLockout on / off, cablekey-kdc CPU per exchange (goal <= 1.10), median first:\n\n"
            printf "%-5s %-4s lockout / no lockout = %5.3fx  (rounds:%s)\n", shapes[s], modes[m], median(list), shown
        }
}' "$tmp/results"
