#!/usr/bin/env bash
# The whole test suite (`make test`): installs dependencies, builds the release, ASan+UBSan and
# libFuzzer configurations, runs every unit test in both builds, every interop/negative script
# against the release daemons (those that feed our daemons network input again under ASan), and
# a short smoke run of every fuzz target.
# Every case prints one TAP line ("ok"/"not ok"); the last line is "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
TOP=$(pwd)
export LOG_DIR="$TOP/.test-tmp"  # t_prov_console.sh saves screenshots in $LOG_DIR/artifacts
rm -rf "$LOG_DIR"; mkdir -p "$LOG_DIR"
FUZZ_SECONDS="${CK_FUZZ_SECONDS:-6}"
passed=0; failed=0; failed_names=()

record() { # record STATUS NAME
    if [ "$1" = ok ]; then passed=$((passed + 1)); echo "ok - $2"
    else failed=$((failed + 1)); failed_names+=("$2"); echo "not ok - $2"; fi
}

# Counts the TAP lines a test program printed; a program that crashed or exited non-zero without
# printing a failing line still counts as one failure.
run_tap() { # run_tap NAME LOGFILE cmd...
    local name=$1 log=$2; shift 2
    if [ "$1" = exit ]; then # already run: its output is in LOGFILE, its status is $2
        local rc=$2
    else
        "$@" >"$log" 2>&1; local rc=$?
    fi
    local p f
    p=$(grep -cE '^ok ' "$log"); f=$(grep -cE '^not ok ' "$log")
    grep -E '^(not )?ok ' "$log" | awk -v prefix="  [$name] " '{ print prefix $0 }'
    passed=$((passed + p)); failed=$((failed + f))
    if [ "$f" -gt 0 ]; then failed_names+=("$name"); fi
    if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then
        record fail "$name exited $rc (see $log)"; tail -n 20 "$log" | sed 's/^/    /'
    elif [ "$f" -gt 0 ]; then
        grep -vE '^(not )?ok ' "$log" | tail -n 30 | sed 's/^/    /'
    fi
    if [ "$p" -eq 0 ] && [ "$f" -eq 0 ] && [ $rc -eq 0 ]; then
        record fail "$name ran no test case"
    fi
}

echo "== dependencies"
bash scripts/install-deps.sh || { echo "0 passed, 1 failed"; exit 1; }

echo "== build (release, asan, fuzz)"
build_ok=1
for cfg in "build RelWithDebInfo" "build-asan Asan"; do
    set -- $cfg
    if cmake -S . -B "$1" -G Ninja -DCMAKE_BUILD_TYPE="$2" >"$LOG_DIR/cmake-$1.log" 2>&1 &&
       ninja -C "$1" >"$LOG_DIR/ninja-$1.log" 2>&1; then
        record ok "build $2"
    else
        record fail "build $2"; tail -n 40 "$LOG_DIR/ninja-$1.log"; build_ok=0
    fi
done
if cmake -S . -B build-fuzz -G Ninja -DCMAKE_C_COMPILER=clang -DCK_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug \
        >"$LOG_DIR/cmake-fuzz.log" 2>&1 && ninja -C build-fuzz >"$LOG_DIR/ninja-fuzz.log" 2>&1; then
    record ok "build libFuzzer targets"
else
    record fail "build libFuzzer targets"; tail -n 40 "$LOG_DIR/ninja-fuzz.log"
fi
if [ $build_ok -ne 1 ]; then
    echo "$passed passed, $failed failed"; exit 1
fi

# The unit tests of both builds run one per CPU at a time (they use temporary directories of
# their own and no fixed port); their results are counted afterwards in name order.
UNIT_JOBS="${CK_UNIT_JOBS:-$(nproc)}"
echo "== unit tests ($UNIT_JOBS at a time)"
unit_tests=()
for dir in build build-asan; do
    for t in "$dir"/test_*; do
        [ -x "$t" ] && unit_tests+=("$t")
    done
done
for t in "${unit_tests[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$UNIT_JOBS" ]; do wait -n; done
    log="$LOG_DIR/$(dirname "$t")-$(basename "$t").log"
    ( env -C tests "$TOP/$t" >"$log" 2>&1; echo $? >"$log.rc" ) &
done
wait
for t in "${unit_tests[@]}"; do
    log="$LOG_DIR/$(dirname "$t")-$(basename "$t").log"
    run_tap "$(dirname "$t")/$(basename "$t")" "$log" exit "$(cat "$log.rc" 2>/dev/null || echo 1)"
done

# Every interop script runs once against the release daemons. The scripts that feed network
# input, hostile or not, to a daemon of ours run a second time against the ASan+UBSan daemons;
# the rest drive the CLI and third-party clients, whose memory errors the unit tests under ASan
# already look for. CK_INTEROP_ASAN=all runs every script twice (CI time grows by about half).
ASAN_INTEROP="t_negative t_transport t_kdc_daemon t_kdc_config t_mit_kinit t_heimdal t_pkinit_kdc
    t_kpasswd t_admind t_cms t_mta_kmm t_esp_tshark t_kmm_tshark t_call t_ah_router t_ksv t_ksv_alarms
    t_metrics t_keyagent t_prov_api t_kdc_unprov"
# t_cms_prov, t_prov_flows and t_prov_done (the provisioning system end to end, about 3 minutes
# under ASan) run once: the decoders they reach are under ASan in test_cms_provclient,
# test_provwire, test_prov_api and the fuzz targets.
# Not in the list although they start daemons: t_fleet, t_mkey and t_alarms drive the CLI,
# PostgreSQL and MIT clients (about two minutes under ASan); the code they reach is under ASan in
# test_store_conformance, test_mkey and test_kdc_alarms.
echo "== interop and negative tests"
for t in tests/interop/t_*.sh; do
    [ -f "$t" ] || continue
    n=$(basename "$t" .sh)
    dirs="build"
    if [ "${CK_INTEROP_ASAN:-}" = all ] || grep -qw "$n" <<<"$ASAN_INTEROP"; then
        dirs="build build-asan"
    fi
    for dir in $dirs; do
        run_tap "$n ($dir)" "$LOG_DIR/$n-$dir.log" env CK_BUILD="$TOP/$dir" bash "$t"
    done
done

# The targets are single-threaded: one per CPU at a time, results reported in name order.
FUZZ_JOBS="${CK_FUZZ_JOBS:-$(nproc)}"
echo "== fuzz smoke (${FUZZ_SECONDS}s each, $FUZZ_JOBS at a time)"
fuzz_one() { # fuzz_one TARGET: runs it, leaves its exit status in $LOG_DIR/NAME.rc
    local f=$1 n corpus work
    n=$(basename "$f")
    corpus="tests/fuzz/corpus/${n#fuzz_}"
    work="$LOG_DIR/corpus-$n"; mkdir -p "$work"
    [ -d "$corpus" ] && cp -r "$corpus"/. "$work"/ 2>/dev/null
    "$f" -max_total_time="$FUZZ_SECONDS" -max_len=8192 -rss_limit_mb=2048 -timeout=10 \
        "$work" >"$LOG_DIR/$n.log" 2>&1
    echo $? >"$LOG_DIR/$n.rc"
}
fuzz_targets=()
for f in build-fuzz/fuzz_*; do
    [ -x "$f" ] && fuzz_targets+=("$f")
done
for f in "${fuzz_targets[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$FUZZ_JOBS" ]; do wait -n; done
    fuzz_one "$f" &
done
wait
for f in "${fuzz_targets[@]}"; do
    n=$(basename "$f")
    if [ "$(cat "$LOG_DIR/$n.rc" 2>/dev/null)" = 0 ]; then
        record ok "fuzz $n: $(grep -oE 'Done [0-9]+ runs in [0-9]+ second' "$LOG_DIR/$n.log" | head -n1)s"
    else
        record fail "fuzz $n (see $LOG_DIR/$n.log)"; tail -n 30 "$LOG_DIR/$n.log"
    fi
done

if [ "${#failed_names[@]}" -gt 0 ]; then
    echo "failed: ${failed_names[*]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
