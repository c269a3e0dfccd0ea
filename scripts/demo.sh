#!/usr/bin/env bash
# `make demo`: a throwaway realm on SQLite, our KDC on a loopback port, stock MIT kinit/klist/kvno
# against it, the KDC's log lines for those requests, and how to run it for real.
#   usage: bash scripts/demo.sh BUILD_DIR
# Exits 0 when every step worked, non-zero with a clear message naming the step that failed.
set -uo pipefail
export LC_ALL=C

TOP="$(cd "$(dirname "$0")/.." && pwd)"
cd "$TOP" || exit 1
BUILD_ARG="${1:-build}"
if ! BUILD="$(cd "$BUILD_ARG" 2>/dev/null && pwd)"; then
    echo "demo: build directory '$BUILD_ARG' not found (run 'make build' first)" >&2
    exit 1
fi
CLI="$BUILD/cablekey"
KDC="$BUILD/cablekey-kdc"
REALM=DEMO.CABLEKEY.TEST
SVC=host/voice.demo.test
if [ -t 1 ]; then B=$'\e[1m'; G=$'\e[32m'; R=$'\e[31m'; D=$'\e[2m'; N=$'\e[0m'; else B= G= R= D= N=; fi

WORK="$(mktemp -d /tmp/cablekey-demo.XXXXXX)"
KDC_PID=""
cleanup() {
    if [ -n "$KDC_PID" ]; then kill -KILL "$KDC_PID" 2>/dev/null; wait "$KDC_PID" 2>/dev/null; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step_no=0
step() { step_no=$((step_no + 1)); printf '\n%s[%d] %s%s\n' "$B" "$step_no" "$1" "$N"; }
show() { printf '%s$ %s%s\n' "$D" "$*" "$N"; }
fail() {
    printf '\n%sdemo FAILED at step %d: %s%s\n' "$R" "$step_no" "$1" "$N" >&2
    if [ -s "$WORK/kdc.log" ]; then
        echo "--- last lines of the KDC log:" >&2
        tail -n 15 "$WORK/kdc.log" >&2
    fi
    if [ -s "$WORK/kdc.stderr" ]; then
        echo "--- KDC stderr:" >&2
        tail -n 15 "$WORK/kdc.stderr" >&2
    fi
    exit 1
}
# run CMD...: shows the command, runs it (bounded to 30 s), indents its output; fails the demo on error.
run() {
    show "$@"
    timeout -k 5 30 "$@" </dev/null >"$WORK/out" 2>&1
    local rc=$?
    sed 's/^/    /' "$WORK/out"
    [ $rc -eq 0 ] || fail "'$*' exited $rc"
}

for tool in kinit klist kvno kdestroy python3; do
    command -v "$tool" >/dev/null 2>&1 || fail "$tool is not installed (run: bash scripts/install-deps.sh)"
done
[ -x "$CLI" ] || fail "$CLI not built (run: make build)"
[ -x "$KDC" ] || fail "$KDC not built (run: make build)"

PORT=$(python3 - <<'EOF'
import random, socket
for _ in range(200):
    p = random.randint(20000, 60999)
    try:
        t = socket.socket(); t.bind(("127.0.0.1", p))
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", p))
        t.close(); u.close(); print(p); break
    except OSError:
        continue
EOF
) || fail "no free port"
[ -n "$PORT" ] || fail "no free port"

printf '%scablekey demo%s: realm %s, SQLite database in %s, KDC on 127.0.0.1:%s\n' "$B" "$N" "$REALM" "$WORK" "$PORT"

DB="$WORK/kdc.db"
step "Create the realm: database, master key stash and krbtgt"
run "$CLI" init --db "$DB" --realm "$REALM"
ls -l "$DB" "$DB.stash" 2>/dev/null | sed 's/^/    /'

step "Add principals: alice (password) and $SVC (random key), export the service key"
show "$CLI principal add --db $DB alice --password-stdin   (password: demo-password)"
printf 'demo-password\n' | timeout 30 "$CLI" principal add --db "$DB" alice --password-stdin \
    >"$WORK/out" 2>&1 || { cat "$WORK/out"; fail "principal add alice"; }
sed 's/^/    /' "$WORK/out"
run "$CLI" principal add --db "$DB" "$SVC" --random
run "$CLI" keytab export --db "$DB" --out "$WORK/voice.keytab" "$SVC"
run "$CLI" principal list --db "$DB"
run klist -k -e "$WORK/voice.keytab"

step "Write kdc.conf and start cablekey-kdc"
cat >"$WORK/kdc.conf" <<EOF
[kdcdefaults]
    kdc_listen = 127.0.0.1:$PORT

[realms]
    $REALM = {
        database_name = $DB
        key_stash_file = $DB.stash
        max_life = 10h
        max_renewable_life = 7d
        supported_enctypes = aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96 aes256-cts-hmac-sha384-192 aes128-cts-hmac-sha256-128
    }
EOF
sed 's/^/    /' "$WORK/kdc.conf"
run "$KDC" -c "$WORK/kdc.conf" --check
show "$KDC -c $WORK/kdc.conf --log $WORK/kdc.log --log-level info &"
"$KDC" -c "$WORK/kdc.conf" --log "$WORK/kdc.log" --log-level info >"$WORK/kdc.stderr" 2>&1 </dev/null &
KDC_PID=$!
ready=0
for _ in $(seq 1 100); do
    kill -0 "$KDC_PID" 2>/dev/null || { wait "$KDC_PID"; KDC_PID=""; fail "the KDC exited during startup"; }
    if timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT" 2>/dev/null; then ready=1; break; fi
    sleep 0.1
done
[ $ready -eq 1 ] || fail "the KDC did not answer on 127.0.0.1:$PORT within 10 s"
echo "    cablekey-kdc running, pid $KDC_PID"

step "Stock MIT Kerberos clients against it"
export KRB5_CONFIG="$WORK/krb5.conf" KRB5CCNAME="FILE:$WORK/ccache"
cat >"$KRB5_CONFIG" <<EOF
[libdefaults]
    default_realm = $REALM
    dns_lookup_kdc = false
    dns_lookup_realm = false
    rdns = false
[realms]
    $REALM = {
        kdc = 127.0.0.1:$PORT
    }
EOF
sed 's/^/    /' "$KRB5_CONFIG"
show "echo demo-password | kinit alice"
printf 'demo-password\n' | timeout -k 5 30 kinit alice >"$WORK/out" 2>&1 || {
    sed 's/^/    /' "$WORK/out"; fail "kinit alice"; }
run klist
run kvno "$SVC"
run klist -e
run kvno -k "$WORK/voice.keytab" "$SVC"

step "What the KDC logged for those requests"
sleep 0.2
if grep -E "AS_REQ|TGS_REQ" "$WORK/kdc.log" >"$WORK/req.log"; then
    sed 's/^/    /' "$WORK/req.log"
else
    fail "no AS_REQ/TGS_REQ lines in the KDC log"
fi

step "Stop the KDC (SIGTERM)"
show "kill -TERM $KDC_PID"
kill -TERM "$KDC_PID"
for _ in $(seq 1 50); do
    kill -0 "$KDC_PID" 2>/dev/null || break
    [ "$(ps -o stat= -p "$KDC_PID" 2>/dev/null | cut -c1)" = Z ] && break
    sleep 0.1
done
kill -KILL "$KDC_PID" 2>/dev/null
wait "$KDC_PID"; rc=$?
KDC_PID=""
[ $rc -eq 0 ] || fail "the KDC exited with status $rc on SIGTERM (137: did not stop within 5 s)"
tail -n 2 "$WORK/kdc.log" | sed 's/^/    /'
timeout 10 kdestroy >/dev/null 2>&1

cat <<EOF

${B}How to run it for real${N}
  # 1. realm database and stash (root only; the stash must stay mode 0600)
  install -d -m 0700 /var/lib/cablekey /etc/cablekey
  $CLI init --db /var/lib/cablekey/kdc.db --realm EXAMPLE.COM
  $CLI principal add --db /var/lib/cablekey/kdc.db alice --password-stdin
  $CLI principal add --db /var/lib/cablekey/kdc.db host/server.example.com --random
  $CLI keytab export --db /var/lib/cablekey/kdc.db --out /etc/krb5.keytab host/server.example.com

  # 2. /etc/cablekey/kdc.conf (krb5 profile syntax, the names of MIT's kdc.conf)
  [kdcdefaults]
      kdc_listen = 0.0.0.0:88
  [realms]
      EXAMPLE.COM = {
          database_name = /var/lib/cablekey/kdc.db
          key_stash_file = /var/lib/cablekey/kdc.db.stash
          max_life = 10h
          max_renewable_life = 7d
      }

  # 3. check, then run in the foreground (logs one line per request, SIGTERM to stop)
  $KDC -c /etc/cablekey/kdc.conf --check
  $KDC -c /etc/cablekey/kdc.conf --log /var/log/cablekey-kdc.log

  # 4. under systemd: /etc/systemd/system/cablekey-kdc.service
  [Service]
  Type=notify
  ExecStart=$KDC -c /etc/cablekey/kdc.conf --log stderr
  Restart=on-abnormal
  NoNewPrivileges=yes
  PrivateDevices=yes
  ProtectSystem=strict
  ReadWritePaths=/var/lib/cablekey
  CapabilityBoundingSet=CAP_NET_BIND_SERVICE
  AmbientCapabilities=CAP_NET_BIND_SERVICE
  # then: systemctl daemon-reload && systemctl enable --now cablekey-kdc

  # clients: krb5.conf [realms] EXAMPLE.COM = { kdc = your-kdc-host:88 }, then kinit alice
EOF
printf '\n%sdemo OK%s\n' "$G" "$N"
exit 0
