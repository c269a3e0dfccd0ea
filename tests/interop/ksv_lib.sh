# shellcheck shell=bash
# tests/interop/ksv_lib.sh — keying server fixture for t_ksv*.sh (sourced, never run).
#
# Sourcing it first moves the whole test script into a network namespace of its own: it creates
# NS (`ip netns add`), sets its loopback up with the multicast flag and a route for 224.0.0.0/4,
# then runs the script again inside with `ip netns exec NS` (CK_KSV_NETNS=NS in the inner run),
# and deletes the namespace (killing what the script left in it) when the inner run ends. Inside,
# every 127.0.0.0/8 address is local, so nodes get their own addresses (127.0.0.11, .12 ...),
# each with its NUDGE port 7442, and group rekeys travel by loopback multicast; the KDC, the
# KSV(s), the node agents and the CLI all run in the namespace, so nothing touches the host's
# network and two tests never share a port or a group. Then it sources lib.sh (TAP, the realm).
#
# API (after ksv_realm):
#   ksv_realm                        realm KSV.TEST, KDC started (lib.sh), $CK_KSVD checked
#   ksv_add_service NAME HOST        principal ksv/HOST, keytab $tmp/NAME.keytab
#   ksv_add_node NODE                principal host/NODE, keytab, ccache $tmp/NODE.cc (kinit -k)
#   ksv_start NAME ADDR:PORT TOPO [extra daemon args]
#                                    cablekey-ksv NAME (db $tmp/NAME.db, log $tmp/NAME.log,
#                                    stderr $tmp/NAME.stderr), waits until it listens
#   ksv_stop NAME [DESC]             SIGTERM; with DESC one TAP case (exit 0, no sanitizer report)
#   ksv_kill NAME                    SIGKILL, no check
#   ksv_reap NAME                    waits for an exited KSV, status in KSV_RC
#   ksv_pid NAME / node_pid NODE
#   node_start NODE ADDR "KSVNAME..." [extra agent args]
#                                    `cablekey node` for NODE at ADDR registered with the KSVs
#                                    named (their --listen, --service); status $tmp/NODE.json,
#                                    output $tmp/NODE.log
#   node_stop NODE                   SIGTERM (SIGKILL after 5 s)
#   nodes_stop DESC NODE...          node_stop each; one TAP case: no sanitizer report in their logs
#   ksv_jq NODE FILTER               jq -r FILTER on the node's status JSON (nothing if none yet)
#   ksv_jqe NODE FILTER              jq -e: true when FILTER gives a true value
#   ksv_wait SECONDS cmd...          polls cmd (every 0.2 s) until it succeeds; status 1 on timeout
#   ksv_cli NAME VERB [args]         `cablekey ksv VERB --db $tmp/NAME.db args`, bounded
#   ksv_group_id KSVNAME GROUP       the group's id from `cablekey ksv groups`
#   ksv_group_epoch KSVNAME GROUP    its epoch
#   kc NODE GID                      the node's key_check for group GID ("" if none)
#   ksv_sanitizer NAME               prints sanitizer reports in the KSV's log and stderr

if [ -z "${CK_KSV_NETNS:-}" ]; then
    # The outer run: only creates the namespace, runs the script in it, and cleans up.
    ck_ksv_ns="ck-ksv-$$"
    ck_ksv_outer_fail() {
        echo "not ok 1 - $1"
        echo "Bail out! $1"
        echo "0 passed, 1 failed"
        ip netns del "$ck_ksv_ns" 2>/dev/null
        exit 1
    }
    command -v ip >/dev/null 2>&1 || ck_ksv_outer_fail "network namespace: ip (iproute2) not installed"
    ip netns add "$ck_ksv_ns" 2>"/tmp/$ck_ksv_ns.err" ||
        ck_ksv_outer_fail "network namespace: ip netns add failed (root needed): $(cat "/tmp/$ck_ksv_ns.err")"
    rm -f "/tmp/$ck_ksv_ns.err"
    ck_ksv_outer_cleanup() {
        local p
        # Whatever the inner run left in the namespace was started by it.
        for p in $(ip netns pids "$ck_ksv_ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
        ip netns del "$ck_ksv_ns" 2>/dev/null
    }
    trap ck_ksv_outer_cleanup EXIT
    trap 'exit 130' INT TERM
    ip -n "$ck_ksv_ns" link set lo up multicast on ||
        ck_ksv_outer_fail "network namespace: loopback up with multicast"
    ip -n "$ck_ksv_ns" route add 224.0.0.0/4 dev lo ||
        ck_ksv_outer_fail "network namespace: multicast route on loopback"
    CK_KSV_NETNS=$ck_ksv_ns ip netns exec "$ck_ksv_ns" bash "$0" "$@"
    ck_ksv_rc=$?
    exit $ck_ksv_rc
fi

# shellcheck source=tests/interop/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CK_KSVD="$CK_BUILD/cablekey-ksv"
KSV_NODE_PORT=7442
KSV_MCAST_PORT=7443
declare -A KSV_PIDS=() NODE_PIDS=() KSV_LISTEN=() KSV_SERVICE=() KSV_TOPO=() KSV_ARGS=()

ksv_realm() {
    [ -x "$CK_KSVD" ] || bail "cablekey-ksv not built at $CK_KSVD"
    [ -x "$CK_CLI" ] || bail "cablekey not built at $CK_CLI"
    require_tool "KSV tests" "$CK_PY" jq kinit klist ss
    realm_init KSV.TEST
    realm_start_kdc
}

ksv_add_service() { # ksv_add_service NAME HOST
    realm_addprinc "ksv/$2" --random
    realm_ktexport "$tmp/$1.keytab" "ksv/$2" >"$tmp/ktexport.log" 2>&1 ||
        bail "keytab for ksv/$2" "$(cat "$tmp/ktexport.log")"
    KSV_SERVICE[$1]="ksv/$2@$REALM"
}

ksv_add_node() { # ksv_add_node NODE
    local n=$1
    realm_addprinc "host/$n" --random
    realm_ktexport "$tmp/$n.keytab" "host/$n" >"$tmp/ktexport.log" 2>&1 ||
        bail "keytab for host/$n" "$(cat "$tmp/ktexport.log")"
    KRB5CCNAME="FILE:$tmp/$n.cc" timeout -k 5 "$CK_TIMEOUT" kinit -k -t "$tmp/$n.keytab" \
        "host/$n@$REALM" >"$tmp/kinit-$n.log" 2>&1 </dev/null ||
        bail "kinit host/$n" "$(cat "$tmp/kinit-$n.log")"
}

ksv_pid() { echo "${KSV_PIDS[$1]:-}"; }
node_pid() { echo "${NODE_PIDS[$1]:-}"; }

ksv_sanitizer() {
    grep -Eh "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error|SUMMARY: (Address|Undefined|Leak)" \
        "$tmp/$1.log" "$tmp/$1.stderr" 2>/dev/null | head -n 5
}

# The KSV is up once its UDP socket is bound (it has no ready line of its own to wait for).
ksv_udp_bound() { # ksv_udp_bound ADDR:PORT
    ss -Hlnu 2>/dev/null | awk -v hp="$1" -v p=":${1##*:}" \
        '$4 == hp || $4 == "0.0.0.0" p || $4 == "*" p || $4 == "[::]" p { f = 1 } END { exit !f }'
}

ksv_start() { # ksv_start NAME ADDR:PORT TOPO [extra args]
    local name=$1 listen=$2 topo=$3 i pid; shift 3
    [ -z "${KSV_PIDS[$name]:-}" ] || bail "ksv_start: $name already running"
    KSV_LISTEN[$name]=$listen
    KSV_TOPO[$name]=$topo
    KSV_ARGS[$name]="$*"
    : >>"$tmp/$name.log"
    local mark; mark=$(wc -l <"$tmp/$name.log")
    "$CK_KSVD" --config "$topo" --db "$tmp/$name.db" --listen "$listen" --name "$name" \
        --keytab "$tmp/$name.keytab" --service "${KSV_SERVICE[$name]}" \
        --node-port "$KSV_NODE_PORT" --mcast-port "$KSV_MCAST_PORT" --mcast-if 127.0.0.1 \
        --foreground --log "$tmp/$name.log" --log-level debug --pid-file "$tmp/$name.pid" "$@" \
        >>"$tmp/$name.stderr" 2>&1 </dev/null &
    pid=$!
    KSV_PIDS[$name]=$pid
    CK_BG_PIDS+=("$pid")
    for i in $(seq 1 100); do
        if ! kill -0 "$pid" 2>/dev/null; then
            # Under CK_KSV_CRASH a start-up registration may reach the point: that is a start.
            tail -n +"$((mark + 1))" "$tmp/$name.log" | grep -q "ksv crash point .* reached" && return 0
            break
        fi
        if ksv_udp_bound "$listen"; then return 0; fi
        sleep 0.1
    done
    bail "cablekey-ksv $name started" "$(tail -n 20 "$tmp/$name.log" "$tmp/$name.stderr" 2>/dev/null)"
}

# ksv_reap NAME: waits for an exited KSV; its exit status in KSV_RC (not in a $(...): the
# subshell could neither wait for it nor forget its pid).
ksv_reap() {
    local pid=${KSV_PIDS[$1]:-}
    KSV_RC=0
    [ -n "$pid" ] || return 0
    wait "$pid" 2>/dev/null; KSV_RC=$?
    KSV_PIDS[$1]=""
}

ksv_stop() { # ksv_stop NAME [DESC]
    local name=$1 desc=${2:-} pid rc i rep
    pid=${KSV_PIDS[$name]:-}
    [ -n "$pid" ] || { [ -z "$desc" ] || not_ok "$desc" "not running"; return 0; }
    kill -CONT "$pid" 2>/dev/null
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        [ "$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1)" = Z ] && break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null; rc=$?
    KSV_PIDS[$name]=""
    [ -n "$desc" ] || return 0
    rep=$(ksv_sanitizer "$name")
    if [ $rc -eq 0 ] && [ -z "$rep" ]; then ok "$desc"; return 0; fi
    not_ok "$desc" "exit $rc (137: killed after 10 s) $rep
$(tail -n 15 "$tmp/$name.stderr" "$tmp/$name.log" 2>/dev/null)"
    return 1
}

ksv_kill() {
    local pid=${KSV_PIDS[$1]:-}
    [ -n "$pid" ] || return 0
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    KSV_PIDS[$1]=""
}

# ksv_reload NAME [TOPO]: copies TOPO over the KSV's topology file (when given), then SIGHUP.
ksv_reload() {
    local name=$1
    if [ $# -ge 2 ]; then cp "$2" "${KSV_TOPO[$name]}" || return 1; fi
    kill -HUP "${KSV_PIDS[$name]}"
}

node_start() { # node_start NODE ADDR "KSV..." [extra args]
    local n=$1 addr=$2 ksvs=$3 k pid args=(); shift 3
    [ -z "${NODE_PIDS[$n]:-}" ] || bail "node_start: $n already running"
    for k in $ksvs; do args+=(--ksv "${KSV_LISTEN[$k]}" --service "${KSV_SERVICE[$k]}"); done
    "$CK_CLI" node --name "$n" "${args[@]}" --ccache "$tmp/$n.cc" --kdc "127.0.0.1:$PORT" \
        --listen "$addr:$KSV_NODE_PORT" --mcast-if "$addr" --status "$tmp/$n.json" "$@" \
        >>"$tmp/$n.log" 2>&1 </dev/null &
    pid=$!
    NODE_PIDS[$n]=$pid
    CK_BG_PIDS+=("$pid")
}

node_stop() { # node_stop NODE
    local pid=${NODE_PIDS[$1]:-} i
    [ -n "$pid" ] || return 0
    kill -CONT "$pid" 2>/dev/null
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        [ "$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1)" = Z ] && break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    NODE_PIDS[$1]=""
}

# jq rather than python: a status is polled many times a second and jq starts 20 times faster.
ksv_jq() { jq -r "$2" "$tmp/$1.json" 2>/dev/null; }
ksv_jqe() { jq -e "$2" "$tmp/$1.json" >/dev/null 2>&1; }

ksv_wait() { # ksv_wait SECONDS cmd...  (wall-clock bound: a probe may itself take a while)
    local end=$((SECONDS + $1)); shift
    while :; do
        "$@" >/dev/null 2>&1 && return 0
        [ "$SECONDS" -lt "$end" ] || return 1
        sleep 0.2
    done
}

ksv_cli() { # ksv_cli NAME VERB [args]: output in $tmp/cli.out / cli.err
    local name=$1 verb=$2; shift 2
    timeout -k 5 "$CK_TIMEOUT" "$CK_CLI" ksv "$verb" --db "$tmp/$name.db" "$@" \
        >"$tmp/cli.out" 2>"$tmp/cli.err" </dev/null
}

ksv_group_field() { # ksv_group_field KSVNAME GROUP FIELD
    ksv_cli "$1" groups || return 1
    awk -v g="$2" -v f="$3" '$1 == g { for (i = 2; i <= NF; i++) if (index($i, f "=") == 1) {
        print substr($i, length(f) + 2); exit } }' "$tmp/cli.out"
}
ksv_group_id() { ksv_group_field "$1" "$2" id; }
ksv_group_epoch() { ksv_group_field "$1" "$2" epoch; }

# Group state as the member itself reports it.
kc() { ksv_jq "$1" "[.groups[] | select(.id == $2) | .key_check][0] // empty"; }
g_epoch() { ksv_jq "$1" "[.groups[] | select(.id == $2) | .epoch][0] // empty"; }
g_removed() { ksv_jq "$1" "[.groups[] | select(.id == $2) | .removed | tostring][0] // empty"; }
registered() { ksv_jqe "$1" '(.registered | length > 0) and (.registered | all)'; }

# same_kc GID NODE...: every node reports one key_check (non-empty) for GID, not removed.
same_kc() {
    local gid=$1 first="" n k; shift
    for n in "$@"; do
        k=$(kc "$n" "$gid") || return 1
        [ -n "$k" ] || return 1
        [ "$(g_removed "$n" "$gid")" = false ] || return 1
        if [ -z "$first" ]; then first=$k; elif [ "$k" != "$first" ]; then return 1; fi
    done
    return 0
}

# same_epoch GID NODE...: every node holds GID at one epoch, not removed. (LKH+ joins are not
# multicast: each member holds the root key at the version of its own join and hashes forward
# only when it meets a higher one, so key_checks agree only after a batch.)
same_epoch() {
    local gid=$1 e n; shift
    e=$(g_epoch "$1" "$gid"); [ -n "$e" ] || return 1
    for n in "$@"; do
        [ "$(g_epoch "$n" "$gid")" = "$e" ] && [ "$(g_removed "$n" "$gid")" = false ] || return 1
    done
}

# kc_moved GID VALUE NODE...: every node reports a key_check other than VALUE (and the same one).
kc_moved() {
    local gid=$1 old=$2; shift 2
    same_kc "$gid" "$@" || return 1
    [ "$(kc "$1" "$gid")" != "$old" ]
}

# ksv_check_sas SPECFILE: SPECFILE has lines "NODE ADDR dir:peer_addr:proto:life" (and "NODE
# ADDR -" for a node without SAs). Every node's link SA set must be exactly that (group SAs
# aside), each lifetime at most 2 minutes short of the policy's, and every SA's SPI and
# transform must match the other end's (out at A to B == in at B from A). Prints the differences.
ksv_check_sas() {
    "$CK_PY" - "$1" "$tmp" <<'PYEOF'
import json, sys
spec, tmp = sys.argv[1], sys.argv[2]
want, addr = {}, {}
for line in open(spec):
    f = line.split()
    if not f:
        continue
    addr[f[0]] = f[1]
    want.setdefault(f[0], [])
    if f[2] != "-":
        want[f[0]].append(f[2])
bad = []
have = {}
for n in want:
    try:
        d = json.load(open("%s/%s.json" % (tmp, n)))
    except (OSError, ValueError) as e:
        bad.append("%s: no status (%s)" % (n, e))
        continue
    # Link SAs only: a group's SA is listed with its group id.
    sas = [s for s in d["sas"] if "group" not in s]
    have[n] = sas
    got = sorted("%s:%s:%s" % (s["dir"], s["peer"], s["proto"]) for s in sas)
    exp = sorted(w.rsplit(":", 1)[0] for w in want[n])
    if got != exp:
        bad.append("%s: SAs %s, expected %s" % (n, got, exp))
        continue
    # The lifetime is what is left of the policy's LIFE-SEC when the SA was pushed.
    life = {w.rsplit(":", 1)[0]: int(w.rsplit(":", 1)[1]) for w in want[n]}
    for s in sas:
        L = life["%s:%s:%s" % (s["dir"], s["peer"], s["proto"])]
        if not (L - 120 <= s["life_sec"] <= L):
            bad.append("%s %s %s: life_sec %d, policy %d" % (n, s["dir"], s["peer"], s["life_sec"], L))
byaddr = {a: n for n, a in addr.items()}
for n, sas in have.items():
    for s in sas:
        peer = byaddr.get(s["peer"])
        if peer is None or peer not in have:
            continue
        other = "in" if s["dir"] == "out" else "out"
        m = [t for t in have[peer] if t["dir"] == other and t["peer"] == addr[n]]
        if not any(t["spi"] == s["spi"] and t["proto"] == s["proto"] and t["enc"] == s["enc"]
                   and t["auth"] == s["auth"] for t in m):
            bad.append("%s %s %s spi=0x%x: no matching %s SA at %s (%s)" % (
                n, s["dir"], s["peer"], s["spi"], other, peer,
                ["0x%x" % t["spi"] for t in m]))
if bad:
    print("\n".join(bad))
sys.exit(1 if bad else 0)
PYEOF
}

# ksv_sa_spis NODE: "dir:peer:spi" lines (to compare before/after a reload).
ksv_sa_spis() { ksv_jq "$1" '.sas[] | select(has("group") | not) | "\(.dir):\(.peer):\(.spi)"' | sort; }

# ksv_group_log_check NODE...: from the agents' "node group G epoch=E version=V key-check=HEX"
# lines: per node and group, (epoch, version) strictly increases line after line (equal lines are
# repeats of one state and allowed), and across all nodes one (group, epoch, version) has one
# key-check. Prints the violations.
ksv_group_log_check() {
    local n files=()
    for n in "$@"; do files+=("$n=$tmp/$n.log"); done
    "$CK_PY" - "${files[@]}" <<'PYEOF'
import re, sys
pat = re.compile(r"node group (\S+) epoch=(\d+) version=(\d+) key-check=([0-9a-fA-F]+)")
seen, bad = {}, []
for arg in sys.argv[1:]:
    node, path = arg.split("=", 1)
    last = {}
    try:
        lines = open(path, errors="replace").read().splitlines()
    except OSError:
        continue
    for line in lines:
        m = pat.search(line)
        if not m:
            continue
        g, e, v, k = m.group(1), int(m.group(2)), int(m.group(3)), m.group(4).lower()
        if g in last and (e, v) < last[g]:
            bad.append("%s group %s went back from epoch %d version %d to epoch %d version %d"
                       % (node, g, last[g][0], last[g][1], e, v))
        last[g] = max(last.get(g, (e, v)), (e, v))
        key = (g, e, v)
        if key in seen and seen[key][1] != k:
            bad.append("group %s epoch %d version %d: key-check %s at %s, %s at %s"
                       % (g, e, v, seen[key][1], seen[key][0], k, node))
        seen.setdefault(key, (node, k))
if bad:
    print("\n".join(bad))
sys.exit(1 if bad else 0)
PYEOF
}

# nodes_stop DESC NODE...: stops the agents; one TAP case: none left a sanitizer report (the
# agents are the CLI, built with ASan in an ASan build).
nodes_stop() {
    local desc=$1 n rep=""; shift
    for n in "$@"; do node_stop "$n"; done
    for n in "$@"; do
        rep="$rep$(grep -Eh "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error|SUMMARY: (Address|Undefined|Leak)" \
            "$tmp/$n.log" 2>/dev/null | head -n 3)"
    done
    if [ -z "$rep" ]; then ok "$desc"; else not_ok "$desc" "$rep"; fi
}

# TAP wrappers.
ksv_expect_wait() { # ksv_expect_wait DESC SECONDS cmd...  (with a diagnostic on timeout)
    local desc=$1 secs=$2; shift 2
    if ksv_wait "$secs" "$@"; then ok "$desc"; return 0; fi
    not_ok "$desc" "not true after ${secs}s: $*"
    return 1
}

# ksv_diag_nodes NODE...: the status of each node (for a failing case's diagnostics).
ksv_diag_nodes() {
    local n
    for n in "$@"; do
        echo "$n: $(cat "$tmp/$n.json" 2>/dev/null | head -c 1500)"
        tail -n 5 "$tmp/$n.log" 2>/dev/null
    done
}
