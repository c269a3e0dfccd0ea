#!/usr/bin/env bash
# `make demo`: a throwaway realm on SQLite, our KDC on a loopback port, stock MIT kinit/klist/kvno
# against it with a password and with a certificate (PKINIT), a phone adapter (MTA) logging in with
# its manufacturer certificate through the device table and keying its signaling with a signaling
# controller (cablekey-cms: a Kerberos AP exchange on UDP 1293, then ESP-protected NCS), a call
# between two phone adapters with per-call keys and SRTP audio, its lawful-intercept escrow, live
# revocation, a keying server (cablekey-ksv) pushing two nodes their SAs and a group key that a
# revocation rekeys, the KDC's log lines for those requests, then provisioning (cablekey-prov): a
# new phone adapter straight from the factory logs in restricted to customer service, a CSR
# provisions it (a number, an operator certificate with its phone ID), it fetches the certificate,
# reboots into full service and takes a call, and is de-provisioned; and how to run it for real.
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
CMS="$BUILD/cablekey-cms"
KSV_BIN="$BUILD/cablekey-ksv"
PROV_BIN="$BUILD/cablekey-prov"
CMS_SVC=cms/cms.demo.test
REALM=DEMO.CABLEKEY.TEST
SVC=host/voice.demo.test
if [ -t 1 ]; then B=$'\e[1m'; G=$'\e[32m'; R=$'\e[31m'; D=$'\e[2m'; N=$'\e[0m'; else B= G= R= D= N=; fi

WORK="$(mktemp -d /tmp/cablekey-demo.XXXXXX)"
KDC_PID=""
CMS_PID=""
CAP_PID=""
B_PID=""
KSV_BG=""
PROV_PID=""
ANS_PID=""
cleanup() {
    for p in $CAP_PID $B_PID $KSV_BG $ANS_PID $PROV_PID; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    if [ -n "$KDC_PID" ]; then kill -KILL "$KDC_PID" 2>/dev/null; wait "$KDC_PID" 2>/dev/null; fi
    if [ -n "$CMS_PID" ]; then kill -KILL "$CMS_PID" 2>/dev/null; wait "$CMS_PID" 2>/dev/null; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step_no=0
step() { step_no=$((step_no + 1)); printf '\n%s[%d] %s%s\n' "$B" "$step_no" "$1" "$N"; }
show() { printf '%s$ %s%s\n' "$D" "$*" "$N"; }
# show_argv CMD...: shows a command line, quoting the arguments that hold blanks
show_argv() {
    local a out=()
    for a in "$@"; do [[ $a == *[[:space:]]* ]] && out+=("\"$a\"") || out+=("$a"); done
    show "${out[*]}"
}
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
    if [ -s "$WORK/cms.log" ] || [ -s "$WORK/cms.stderr" ]; then
        echo "--- last lines of the cablekey-cms log and stderr:" >&2
        tail -n 15 "$WORK/cms.log" "$WORK/cms.stderr" 2>/dev/null >&2
    fi
    if [ -s "$WORK/prov.log" ] || [ -s "$WORK/prov.stderr" ]; then
        echo "--- last lines of the cablekey-prov log and stderr:" >&2
        tail -n 15 "$WORK/prov.log" "$WORK/prov.stderr" 2>/dev/null >&2
    fi
    exit 1
}
# run CMD...: shows the command, runs it (bounded to 30 s), indents its output; fails the demo on error.
run() {
    show_argv "$@"
    timeout -k 5 30 "$@" </dev/null >"$WORK/out" 2>&1
    local rc=$?
    sed 's/^/    /' "$WORK/out"
    [ $rc -eq 0 ] || fail "'$*' exited $rc"
}
# run_key REGEX CMD...: as run, but shows only the output lines matching REGEX (grep -E)
run_key() {
    local re=$1; shift
    show_argv "$@"
    timeout -k 5 30 "$@" </dev/null >"$WORK/out" 2>&1
    local rc=$?
    if [ $rc -eq 0 ]; then grep -E -- "$re" "$WORK/out" | sed 's/^/    /'; else sed 's/^/    /' "$WORK/out"; fi
    [ $rc -eq 0 ] || fail "'$*' exited $rc"
}

for tool in kinit klist kvno kdestroy python3 openssl espeak-ng dumpcap; do
    command -v "$tool" >/dev/null 2>&1 || fail "$tool is not installed (run: bash scripts/install-deps.sh)"
done
[ -x "$CLI" ] || fail "$CLI not built (run: make build)"
[ -x "$KDC" ] || fail "$KDC not built (run: make build)"
[ -x "$CMS" ] || fail "$CMS not built (run: make build)"
[ -x "$KSV_BIN" ] || fail "$KSV_BIN not built (run: make build)"
[ -x "$PROV_BIN" ] || fail "$PROV_BIN not built (run: make build)"

free_port() {
    python3 - "$@" <<'EOF'
import random, socket, sys
for _ in range(200):
    p = random.randint(20000, 60999)
    if str(p) in sys.argv[1:]:
        continue
    try:
        t = socket.socket(); t.bind(("127.0.0.1", p))
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", p))
        t.close(); u.close(); print(p); break
    except OSError:
        continue
EOF
}
PORT=$(free_port) || fail "no free port"
[ -n "$PORT" ] || fail "no free port"
KPORT=$(free_port "$PORT") || fail "no free port for kpasswd"
[ -n "$KPORT" ] || fail "no free port for kpasswd"
CMS_PORT=$(free_port "$PORT" "$KPORT") || fail "no free port for cablekey-cms"
SIG_PORT=$(free_port "$PORT" "$KPORT" "$CMS_PORT") || fail "no free port for the signaling"
[ -n "$CMS_PORT" ] && [ -n "$SIG_PORT" ] || fail "no free port for cablekey-cms"
KA_PORT=$(free_port "$PORT" "$KPORT" "$CMS_PORT" "$SIG_PORT") || fail "no free port for the key version service"

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

step "Operator PKI: service-provider and manufacturer hierarchies, a user and a phone adapter"
PKI="$WORK/pki"
MAC=00:11:22:33:44:55
MTA=mta-001122334455
MTA_B=mta-0011223344bb
printf 'demo-pki-password\n' >"$WORK/pki.pw"; chmod 600 "$WORK/pki.pw"
run "$CLI" pki init --dir "$PKI" --realm "$REALM" --org "Demo Cable" --password-file "$WORK/pki.pw"
ls -l "$PKI" | sed 's/^/    /'
run "$CLI" pki issue-client --dir "$PKI" --principal alice --out "$WORK/alice.p12" \
    --password-file "$WORK/pki.pw"
run "$CLI" pki issue-device --dir "$PKI" --mac "$MAC" --out "$WORK/mta.p12" \
    --password-file "$WORK/pki.pw"
run "$CLI" pki show "$WORK/mta.p12" --password-file "$WORK/pki.pw"
run "$CLI" pki verify "$WORK/mta.p12" --anchors "$PKI/mfg-root.pem" --password-file "$WORK/pki.pw"

step "The device table: the MTA's MAC maps to its principal (no CRLs for devices)"
run "$CLI" principal add --db "$DB" "$MTA" --random
run "$CLI" device add --db "$DB" --mac "$MAC" --principal "$MTA" --comment "demo MTA"
run "$CLI" device list --db "$DB"

step "Write kdc.conf and start cablekey-kdc"
cat >"$WORK/kdc.conf" <<EOF
[kdcdefaults]
    kdc_listen = 127.0.0.1:$PORT
    kpasswd_listen = 127.0.0.1:$KPORT
    keyagent_listen = 127.0.0.1:$KA_PORT

[realms]
    $REALM = {
        database_name = $DB
        key_stash_file = $DB.stash
        max_life = 10h
        max_renewable_life = 7d
        supported_enctypes = aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96 aes256-cts-hmac-sha384-192 aes128-cts-hmac-sha256-128
        pkinit_identity = PKCS12:$PKI/kdc.p12
        pkinit_password_file = $WORK/pki.pw
        pkinit_anchors = FILE:$PKI/sp-root.pem
        pkinit_packetcable_anchors = FILE:$PKI/mfg-root.pem
        pkinit_pool = FILE:$PKI/sp-ca.pem, FILE:$PKI/mfg-ca.pem
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
        kpasswd_server = 127.0.0.1:$KPORT
        pkinit_anchors = FILE:$PKI/sp-root.pem
        pkinit_pool = FILE:$PKI/sp-ca.pem
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
run kdestroy

step "Stock MIT kinit with a certificate (PKINIT, Diffie-Hellman) instead of a password"
show "kinit -X X509_user_identity=PKCS12:$WORK/alice.p12 alice   (PKCS#12 password from pki.pw)"
timeout -k 5 30 kinit -X "X509_user_identity=PKCS12:$WORK/alice.p12" alice <"$WORK/pki.pw" \
    >"$WORK/out" 2>&1 || { sed 's/^/    /' "$WORK/out"; fail "kinit with alice's certificate"; }
run klist
run kvno "$SVC"

step "alice changes her password with stock MIT kpasswd (RFC 3244 service in cablekey-kdc)"
show "kpasswd alice   (old: demo-password, new: demo-password-2)"
printf 'demo-password\ndemo-password-2\ndemo-password-2\n' | timeout -k 5 30 kpasswd alice \
    >"$WORK/out" 2>&1 || { sed 's/^/    /' "$WORK/out"; fail "kpasswd alice"; }
sed 's/^/    /' "$WORK/out"
sleep 0.3   # the KDC workers see a changed principal within 200 ms (their cache's change check)
show "echo demo-password-2 | kinit alice"
printf 'demo-password-2\n' | timeout -k 5 30 kinit alice >"$WORK/out" 2>&1 || {
    sed 's/^/    /' "$WORK/out"; fail "kinit alice with the new password"; }
run klist
run kdestroy

step "A phone adapter logs in with its manufacturer certificate (PacketCable form, device table)"
run "$CLI" mta login --identity "$WORK/mta.p12" --password-file "$WORK/pki.pw" \
    --kdc "127.0.0.1:$PORT" --realm "$REALM" --principal "$MTA" --anchors "$PKI/sp-root.pem" \
    --packetcable --ccache "$WORK/mta.ccache"
run klist -c "FILE:$WORK/mta.ccache"
run env KRB5CCNAME="FILE:$WORK/mta.ccache" kvno "$SVC"
run "$CLI" device show --db "$DB" --mac "$MAC"

step "Lawful intercept: the intercept administrator's order on 5551002 (a separate database)"
echo "    (calls of the target are escrowed to the law-enforcement certificate; no other call is)"
run openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/lea.key" -out "$WORK/lea.pem" \
    -days 30 -subj "/CN=Demo Law Enforcement Agency"
LI_DB="$WORK/intercept.db"
NOW=$(date -u +%s)
run "$CLI" intercept add --db "$LI_DB" --actor "demo intercept admin" --number 5551002 \
    --from $((NOW - 60)) --until $((NOW + 3600)) --authority "Demo court, order 2026-42" \
    --cert "$WORK/lea.pem"
run "$CLI" intercept list --db "$LI_DB"

step "The signaling controller: its service key in a keytab, two phone lines, cablekey-cms started"
run "$CLI" principal add --db "$DB" "$CMS_SVC" --random
run "$CLI" keytab export --db "$DB" --out "$WORK/cms.keytab" "$CMS_SVC"
mkdir -m 700 "$WORK/escrow"
cat >"$WORK/cms.conf" <<EOF
[cms]
    keytab = $WORK/cms.keytab
    kdc = 127.0.0.1:$PORT
    # phone A is the MTA that logged in with its certificate; phone B a second adapter
    line = 5551001 $MTA@$REALM mac=001122334455
    line = 5551002 $MTA_B@$REALM mac=0011223344bb
    media = srtp-aes-cm
    call_ipsec_suite = sha1-aes128
    intercept_db = $LI_DB
    escrow_dir = $WORK/escrow
EOF
sed 's/^/    /' "$WORK/cms.conf"
start_cms() { # starts cablekey-cms on $WORK/cms.conf and waits for its "ready" line
    local n
    n=$(grep -c "cablekey-cms ready" "$WORK/cms.log" 2>/dev/null)
    show "$CMS -c $WORK/cms.conf --listen 127.0.0.1:$CMS_PORT --signaling-listen 127.0.0.1:$SIG_PORT --log $WORK/cms.log --log-level info &"
    "$CMS" -c "$WORK/cms.conf" --listen "127.0.0.1:$CMS_PORT" \
        --signaling-listen "127.0.0.1:$SIG_PORT" --log "$WORK/cms.log" --log-level info \
        >"$WORK/cms.stderr" 2>&1 </dev/null &
    CMS_PID=$!
    for _ in $(seq 1 100); do
        kill -0 "$CMS_PID" 2>/dev/null || { wait "$CMS_PID"; CMS_PID=""; fail "cablekey-cms exited during startup"; }
        if [ "$(cat "$WORK/cms.log" 2>/dev/null | grep -c "cablekey-cms ready")" -gt "${n:-0}" ]; then
            grep "cablekey-cms ready" "$WORK/cms.log" | tail -n 1 | sed 's/^/    /'
            return 0
        fi
        sleep 0.1
    done
    fail "cablekey-cms did not report ready within 10 s"
}
start_cms

step "The MTA keys its signaling: TGS for the controller, AP Request/Reply (KMM), ESP-protected NCS"
echo "    (its TGT is the one from its certificate login; the sub-key in the AP Reply keys an ESP SA pair)"
run "$CLI" mta kmm --ccache "$WORK/mta.ccache" --kdc "127.0.0.1:$PORT" \
    --cms "127.0.0.1:$CMS_PORT" --signaling-port "$SIG_PORT" --service "$CMS_SVC@$REALM" --count 5
sleep 0.3
echo "    what cablekey-cms logged:"
{ grep -E "KMM " "$WORK/cms.log"; grep -E "SIG " "$WORK/cms.log" | head -n 4; } | sed 's/^/    /'

step "Service-key versioning: the controller's key rotates while it runs (keytab-agent, no restart)"
echo "    (staged: the KDC keeps issuing under kvno 1 until the controller's host has fetched kvno 2"
echo "    into its keytab and confirmed; cablekey-kdc runs this engine by itself every minute)"
run "$CLI" rotation policy set --db "$DB" "$CMS_SVC" --period 30d --old-valid 8d --hosts cms1.demo
run "$CLI" rotation run --db "$DB" "$CMS_SVC" --force
run "$CLI" keytab-agent --keytab "$WORK/cms.keytab" --principal "$CMS_SVC@$REALM" \
    --kdc "127.0.0.1:$PORT" --service-port "$KA_PORT" --host cms1.demo --once
run "$CLI" rotation run --db "$DB"
run "$CLI" rotation status --db "$DB" "$CMS_SVC"
run klist -k "$WORK/cms.keytab"
show "echo demo-password-2 | kinit alice; kvno $CMS_SVC@$REALM   (a new ticket: kvno 2)"
# The KDC workers see the confirmed rotation within 200 ms (their cache's change check); on a
# loaded machine a little later: ask again with a fresh ticket for a few seconds.
for _ in $(seq 1 20); do
    printf 'demo-password-2\n' | timeout -k 5 30 kinit alice >"$WORK/out" 2>&1 || {
        sed 's/^/    /' "$WORK/out"; fail "kinit alice"; }
    timeout -k 5 30 kvno "$CMS_SVC@$REALM" >"$WORK/out" 2>&1
    grep -q "kvno = 2" "$WORK/out" && break
    sleep 0.3
done
sed 's/^/    /' "$WORK/out"
grep -q "kvno = 2" "$WORK/out" || fail "the new service ticket is not under kvno 2"
run kdestroy
echo "    the MTA keys its signaling again: cablekey-cms re-read its keytab, no restart"
run "$CLI" mta kmm --ccache "$WORK/mta.ccache" --kdc "127.0.0.1:$PORT" \
    --cms "127.0.0.1:$CMS_PORT" --signaling-port "$SIG_PORT" --service "$CMS_SVC@$REALM" --count 2

step "A call: phone A (5551001, the MTA) calls phone B (5551002); per-call keys, SRTP audio"
echo "    (the controller makes the call's sub-key and SPI, delivers them to B then A inside their"
echo "    ESP channels and checks each end's ACK; the ends key a direct ESP pair and SRTP from it)"
espeak-ng -w "$WORK/speech.wav" "Hello from cable key. This call is encrypted end to end." \
    >"$WORK/out" 2>&1 || { cat "$WORK/out"; fail "espeak-ng"; }
python3 - "$WORK/speech.wav" "$WORK/speech8k.wav" <<'EOF' || fail "resample the speech to 8 kHz"
import struct, sys, wave
with wave.open(sys.argv[1], "rb") as w:
    rate, raw = w.getframerate(), w.readframes(w.getnframes())
s = struct.unpack("<%dh" % (len(raw) // 2), raw)
out = [s[min(int(i * rate / 8000), len(s) - 1)] for i in range(int(len(s) * 8000 / rate))]
with wave.open(sys.argv[2], "wb") as w:
    w.setnchannels(1); w.setsampwidth(2); w.setframerate(8000)
    w.writeframes(struct.pack("<%dh" % len(out), *out))
EOF
run "$CLI" principal add --db "$DB" "$MTA_B" --random
run "$CLI" keytab export --db "$DB" --out "$WORK/mta-b.keytab" "$MTA_B"
run kinit -k -t "$WORK/mta-b.keytab" -c "FILE:$WORK/mta-b.ccache" "$MTA_B"
MEDIA_A=$(free_port "$PORT" "$KPORT" "$CMS_PORT" "$SIG_PORT")
DIRECT_A=$(free_port "$PORT" "$KPORT" "$CMS_PORT" "$SIG_PORT" "$MEDIA_A")
MEDIA_B=$(free_port "$PORT" "$KPORT" "$CMS_PORT" "$SIG_PORT" "$MEDIA_A" "$DIRECT_A")
DIRECT_B=$(free_port "$PORT" "$KPORT" "$CMS_PORT" "$SIG_PORT" "$MEDIA_A" "$DIRECT_A" "$MEDIA_B")
show "dumpcap -i lo -w $WORK/call.pcapng &      (a capture of the call, for the intercept step)"
dumpcap -q -i lo -f "udp" -w "$WORK/call.pcapng" >"$WORK/dumpcap.log" 2>&1 </dev/null &
CAP_PID=$!
for _ in $(seq 1 50); do [ -s "$WORK/call.pcapng" ] && break; sleep 0.1; done
show "$CLI mta phone --ccache $WORK/mta-b.ccache ... --answer --answer-after 300 --record $WORK/b.wav &"
timeout -k 5 60 "$CLI" mta phone --ccache "$WORK/mta-b.ccache" --kdc "127.0.0.1:$PORT" \
    --cms "127.0.0.1:$CMS_PORT" --sig-port "$SIG_PORT" --service "$CMS_SVC@$REALM" \
    --media "127.0.0.1:$MEDIA_B" --direct-port "$DIRECT_B" --answer --answer-after 300 \
    --record "$WORK/b.wav" --verbose >"$WORK/b.out" 2>"$WORK/b.err" </dev/null &
B_PID=$!
for _ in $(seq 1 100); do
    grep -q "phone: registered" "$WORK/b.err" 2>/dev/null && break
    kill -0 "$B_PID" 2>/dev/null || break
    sleep 0.1
done
grep -q "phone: registered" "$WORK/b.err" || { cat "$WORK/b.err"; fail "phone B did not register"; }
run "$CLI" mta phone --ccache "$WORK/mta.ccache" --kdc "127.0.0.1:$PORT" \
    --cms "127.0.0.1:$CMS_PORT" --sig-port "$SIG_PORT" --service "$CMS_SVC@$REALM" \
    --media "127.0.0.1:$MEDIA_A" --direct-port "$DIRECT_A" --dial 5551002 --talk 3 \
    --audio "$WORK/speech8k.wav"
wait "$B_PID"; rc=$?
echo "    phone B:"; sed 's/^/    /' "$WORK/b.out"
[ $rc -eq 0 ] || { cat "$WORK/b.err"; fail "phone B exited $rc"; }
sleep 0.3
kill -TERM "$CAP_PID" 2>/dev/null; wait "$CAP_PID" 2>/dev/null
echo "    what cablekey-cms logged for the call:"
for _ in $(seq 1 50); do grep -qE "call [0-9A-Fa-f]+ from" "$WORK/cms.log" && break; sleep 0.1; done
grep -E "call [0-9A-Fa-f]+ from" "$WORK/cms.log" | sed 's/^/    /'
grep -qE "call [0-9A-Fa-f]+ from 5551001 to 5551002 .*escrow=1" "$WORK/cms.log" \
    || fail "the controller did not log the call with its escrow"

step "Law enforcement: the escrowed record opens only with the agency's key and decrypts the call"
run "$CLI" intercept records --db "$LI_DB" --actor "demo intercept admin"
ls -l "$WORK/escrow" | sed 's/^/    /'
REC=$(ls "$WORK/escrow"/*.p7m | head -n 1)
run "$CLI" intercept open --record "$REC" --key "$WORK/lea.key"
run "$CLI" intercept decrypt --record "$REC" --key "$WORK/lea.key" --pcap "$WORK/call.pcapng" \
    --out-prefix "$WORK/li"
python3 - "$WORK/li-sd.wav" "$WORK/b.wav" <<'EOF' || fail "the intercepted audio differs from what phone B heard"
import sys, wave
def pcm(p):
    with wave.open(p, "rb") as w:
        return w.readframes(w.getnframes())
li, heard = pcm(sys.argv[1]), pcm(sys.argv[2])
n = min(len(li), len(heard))
if n == 0 or li[:n] != heard[:n]:
    sys.exit("    decrypted %d bytes, phone B recorded %d: they differ" % (len(li), len(heard)))
print("    the decrypted A->B audio equals what phone B played out: %d samples (%.1f s)" % (n // 2, n / 16000))
EOF

step "Revoke the device: its next login is refused at once, no KDC restart"
run "$CLI" device revoke --db "$DB" --mac "$MAC"
show "$CLI mta login ... --principal $MTA --packetcable   (expected to fail)"
if timeout -k 5 30 "$CLI" mta login --identity "$WORK/mta.p12" --password-file "$WORK/pki.pw" \
        --kdc "127.0.0.1:$PORT" --realm "$REALM" --principal "$MTA" \
        --anchors "$PKI/sp-root.pem" --packetcable --ccache "$WORK/mta2.ccache" \
        </dev/null >"$WORK/out" 2>&1; then
    sed 's/^/    /' "$WORK/out"; fail "the revoked device still logged in"
fi
sed 's/^/    /' "$WORK/out"

step "Administration: the audit log of every change, an online backup and an integrity check"
run "$CLI" audit list --db "$DB" --limit 6
run "$CLI" db backup --db "$DB" "$WORK/kdc-backup.db"
run "$CLI" db check --db "$WORK/kdc-backup.db" --stash "$DB.stash"

step "What the KDC logged for those requests"
sleep 0.2
if grep -E "AS_REQ|TGS_REQ|KPASSWD" "$WORK/kdc.log" >"$WORK/req.log"; then
    sed 's/^/    /' "$WORK/req.log"
else
    fail "no AS_REQ/TGS_REQ lines in the KDC log"
fi

step "Keying server: two nodes get their SAs from cablekey-ksv, one ESP datagram, a group rekey after a revoke"
# The operator writes the topology once; cablekey-ksv pushes each node its SAs over a Kerberos
# AP exchange and keeps the group key in an LKH tree (docs/cablekey-ksv.md).
KSV_PORT=$(free_port "$PORT" "$KPORT" "$CMS_PORT" "$SIG_PORT") || fail "no free port for cablekey-ksv"
NODE_PORT=$(free_port "$PORT" "$KPORT" "$CMS_PORT" "$SIG_PORT" "$KSV_PORT") || fail "no free port"
MC_PORT=$(free_port "$PORT" "$KPORT" "$CMS_PORT" "$SIG_PORT" "$KSV_PORT" "$NODE_PORT") || fail "no free port"
ESP_PORT=$(free_port "$PORT" "$KPORT" "$CMS_PORT" "$SIG_PORT" "$KSV_PORT" "$NODE_PORT" "$MC_PORT") || fail "no free port"
[ -n "$KSV_PORT" ] && [ -n "$NODE_PORT" ] && [ -n "$MC_PORT" ] && [ -n "$ESP_PORT" ] || fail "no free port for the keying server"
run "$CLI" principal add --db "$DB" ksv/ksv.demo.test --random
run "$CLI" keytab export --db "$DB" --out "$WORK/ksv.keytab" ksv/ksv.demo.test
for n in node1 node2 node3; do
    timeout 30 "$CLI" principal add --db "$DB" "host/$n" --random </dev/null >"$WORK/out" 2>&1 &&
        timeout 30 "$CLI" keytab export --db "$DB" --out "$WORK/$n.keytab" "host/$n" </dev/null >>"$WORK/out" 2>&1 ||
        { cat "$WORK/out"; fail "principal host/$n"; }
    KRB5CCNAME="FILE:$WORK/$n.cc" timeout 30 kinit -k -t "$WORK/$n.keytab" "host/$n@$REALM" \
        </dev/null >"$WORK/out" 2>&1 || { cat "$WORK/out"; fail "kinit host/$n"; }
done
echo "    host/node1, host/node2, host/node3: keytabs and one ccache each (kinit -k)"
cat >"$WORK/topology.conf" <<EOF
policy demo-esp {
    TRANS-TYPE = ESP
    LIFE-SEC   = 3600
    ENC-ALG    = aes-128-cbc
    AUTH-ALG   = hmac-sha256-128
    ACK-REQD   = yes
}
node node1 127.0.0.21
node node2 127.0.0.22
node node3 127.0.0.23
node1 <-> node2 demo-esp
group demo {
    address = 239.192.77.1
    policy  = demo-esp
    members = node1 node2 node3
}
EOF
sed 's/^/    /' "$WORK/topology.conf"
run "$KSV_BIN" --config "$WORK/topology.conf" --check
KSV_ARGS=(--config "$WORK/topology.conf" --db "$WORK/ksv.db" --listen "127.0.0.1:$KSV_PORT"
          --name ksv1 --keytab "$WORK/ksv.keytab" --service "ksv/ksv.demo.test@$REALM"
          --node-port "$NODE_PORT" --mcast-port "$MC_PORT" --mcast-if 127.0.0.1
          --batch-interval-ms 300 --foreground --log "$WORK/ksv.log" --log-level info)
show "$KSV_BIN ${KSV_ARGS[*]} &"
"$KSV_BIN" "${KSV_ARGS[@]}" >"$WORK/ksv.stderr" 2>&1 </dev/null &
KSV_PID=$!
KSV_BG="$KSV_BG $KSV_PID"
ready=0
for _ in $(seq 1 100); do
    kill -0 "$KSV_PID" 2>/dev/null || break
    grep -q ":$(printf '%04X' "$KSV_PORT") " /proc/net/udp 2>/dev/null && { ready=1; break; }
    sleep 0.1
done
[ $ready -eq 1 ] || { tail -n 10 "$WORK/ksv.stderr" "$WORK/ksv.log" 2>/dev/null; fail "cablekey-ksv did not start"; }
start_node() { # start_node NAME ADDR [args]
    local n=$1 a=$2; shift 2
    "$CLI" node --name "$n" --ksv "127.0.0.1:$KSV_PORT" --service "ksv/ksv.demo.test@$REALM" \
        --ccache "$WORK/$n.cc" --kdc "127.0.0.1:$PORT" --listen "$a:$NODE_PORT" --mcast-if "$a" \
        --status "$WORK/$n.json" "$@" >"$WORK/$n.log" 2>&1 </dev/null &
    KSV_BG="$KSV_BG $!"
}
node_wait() { # node_wait SECONDS PYTHON-CONDITION NODE: polls the node's status file
    local i
    for i in $(seq 1 $(( $1 * 5 ))); do
        python3 -c "import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if ($2) else 1)" \
            "$WORK/$3.json" 2>/dev/null && return 0
        sleep 0.2
    done
    return 1
}
show "cablekey node --name node2 --esp-listen 127.0.0.22:$ESP_PORT ... &   (and node3)"
start_node node2 127.0.0.22 --esp-listen "127.0.0.22:$ESP_PORT"
start_node node3 127.0.0.23
node_wait 20 "all(d['registered']) and len([s for s in d['sas'] if 'group' not in s]) == 2" node2 || { tail -n 5 "$WORK/node2.log"; fail "node2 got no SAs"; }
show "cablekey node --name node1 --esp-send node2=127.0.0.22:$ESP_PORT:hello ... &"
start_node node1 127.0.0.21 --esp-listen "127.0.0.21:$ESP_PORT" --esp-send "node2=127.0.0.22:$ESP_PORT:hello-from-node1"
node_wait 20 "all(d['registered']) and len([s for s in d['sas'] if 'group' not in s]) == 2" node1 || { tail -n 5 "$WORK/node1.log"; fail "node1 got no SAs"; }
# (keys elided here: the agent prints them because `ip xfrm` needs them)
grep -m 2 "ip xfrm state add src 127.0.0.2" "$WORK/node1.log" | sed -E 's/0x[0-9a-f]{32,}/0x<key>/g; s/^/    node1: /'
got=0
for _ in $(seq 1 50); do grep -q "esp recv .*text=hello-from-node1" "$WORK/node2.log" && { got=1; break; }; sleep 0.2; done
[ $got -eq 1 ] || { tail -n 5 "$WORK/node1.log" "$WORK/node2.log"; fail "node2 received no ESP datagram from node1"; }
grep -m 1 "esp recv" "$WORK/node2.log" | sed 's/^/    node2: /'
run "$CLI" ksv sas --db "$WORK/ksv.db"
# A member's view of the group: "epoch=E version=V key-check=K" (never the key).
group_state() {
    python3 -c "import json,sys; g=json.load(open(sys.argv[1]))['groups'][0]; print('epoch=%d version=%d key-check=%s%s' % (g['epoch'], g['root_version'], g['key_check'], ' removed' if g['removed'] else ''))" \
        "$WORK/$1.json" 2>/dev/null
}
group_kc() { group_state "$1" | sed -n 's/.*key-check=\([0-9a-f]*\).*/\1/p'; }
group_epoch() { group_state "$1" | sed -n 's/^epoch=\([0-9]*\).*/\1/p'; }
for _ in $(seq 1 50); do
    [ -n "$(group_kc node1)" ] && [ -n "$(group_kc node2)" ] && [ -n "$(group_kc node3)" ] && break
    sleep 0.2
done
[ -n "$(group_kc node3)" ] || fail "the group members got no group key"
echo "    group demo, as each member reports it (an LKH+ join is not multicast: a member holds"
echo "    the key at the version of its own join and hashes forward when it meets a newer one):"
for n in node1 node2 node3; do echo "      $n: $(group_state $n)"; done
e0=$(group_epoch node1); k3=$(group_kc node3)
run "$CLI" ksv revoke demo node3 --db "$WORK/ksv.db"
for _ in $(seq 1 75); do
    n1=$(group_kc node1); n2=$(group_kc node2)
    [ -n "$n1" ] && [ "$n1" = "$n2" ] && [ "$(group_epoch node1)" -gt "$e0" ] 2>/dev/null && break
    sleep 0.2
done
[ -n "$n1" ] && [ "$n1" = "$n2" ] && [ "$(group_epoch node1)" -gt "$e0" ] 2>/dev/null ||
    fail "no group rekey after the revoke"
[ "$(group_kc node3)" != "$n1" ] || fail "the revoked node3 has the new group key"
echo "    after the revoke, one signed multicast datagram later (measured by the members):"
for n in node1 node2 node3; do echo "      $n: $(group_state $n)"; done
grep -m 1 "ksv rekey group=" "$WORK/ksv.log" | sed 's/^/    ksv.log: /'
run "$CLI" ksv groups --db "$WORK/ksv.db"
for p in $KSV_BG; do kill -TERM "$p" 2>/dev/null; done
for p in $KSV_BG; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null
done
KSV_BG=""

step "Provisioning: cablekey-prov (customer database, provisioning CA), the KDC and cablekey-cms join it"
echo "    (a CSR with a password, cablekey-prov's keys: HTTP/ for its API, prov/ for the device"
echo "    channel, mtafqdn/ for the KDC's MTA-FQDN questions; the CSR's desk phone answers 611)"
PPORT=$(free_port "$PORT" "$KPORT" "$CMS_PORT" "$SIG_PORT" "$KA_PORT") || fail "no free port"
DC_PORT=$(free_port "$PORT" "$KPORT" "$CMS_PORT" "$SIG_PORT" "$KA_PORT" "$PPORT") || fail "no free port"
FQ_PORT=$(free_port "$PORT" "$KPORT" "$CMS_PORT" "$SIG_PORT" "$KA_PORT" "$PPORT" "$DC_PORT") || fail "no free port"
[ -n "$PPORT" ] && [ -n "$DC_PORT" ] && [ -n "$FQ_PORT" ] || fail "no free port for cablekey-prov"
show "$CLI principal add --db $DB csr1 --password-stdin   (password: csr-password)"
printf 'csr-password\n' | timeout 30 "$CLI" principal add --db "$DB" csr1 --password-stdin \
    >"$WORK/out" 2>&1 || { cat "$WORK/out"; fail "principal add csr1"; }
for p in HTTP/localhost prov/localhost mtafqdn/localhost csr-desk; do
    timeout 30 "$CLI" principal add --db "$DB" "$p" --random </dev/null >"$WORK/out" 2>&1 ||
        { cat "$WORK/out"; fail "principal add $p"; }
done
echo "    csr1, HTTP/localhost, prov/localhost, mtafqdn/localhost, csr-desk added"
run "$CLI" keytab export --db "$DB" --out "$WORK/prov.keytab" HTTP/localhost prov/localhost mtafqdn/localhost
run "$CLI" keytab export --db "$DB" --out "$WORK/csr-desk.keytab" csr-desk
printf '%-40s %s\n' "csr1@$REALM" iap "$CMS_SVC@$REALM" ic >"$WORK/prov.acl"
cat >"$WORK/prov.conf" <<EOF
[prov]
    database = $DB
    keytab = $WORK/prov.keytab
    acl_file = $WORK/prov.acl
    listen = 127.0.0.1:$PPORT
    kdc = 127.0.0.1:$PORT
    ca_cert = $PKI/prov-ca.pem
    ca_key = $PKI/prov-ca-key.pem
    ca_password_file = $WORK/pki.pw
    ca_chain = $PKI/prov-ca.pem
    phone_id_key = $PKI/phone-id.key
    fqdn_domain = mta.demo.test
    fqdn_listen = 127.0.0.1:$FQ_PORT
    devchan_listen = 127.0.0.1:$DC_PORT
    pool = demo 5552000 5552099
    log = FILE:$WORK/prov.log
    log_level = info
EOF
echo "    prov.acl (i: search, a: customers, p: provision; c: controllers report and learn lines):"
sed 's/^/      /' "$WORK/prov.acl"
sed 's/^/    /' "$WORK/prov.conf"
run "$PROV_BIN" -c "$WORK/prov.conf" --check
show "$PROV_BIN -c $WORK/prov.conf &"
"$PROV_BIN" -c "$WORK/prov.conf" >"$WORK/prov.stderr" 2>&1 </dev/null &
PROV_PID=$!
ready=0
for _ in $(seq 1 150); do
    kill -0 "$PROV_PID" 2>/dev/null || { wait "$PROV_PID"; PROV_PID=""; fail "cablekey-prov exited during startup"; }
    if timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PPORT" 2>/dev/null; then ready=1; break; fi
    sleep 0.1
done
[ $ready -eq 1 ] || fail "cablekey-prov did not answer on 127.0.0.1:$PPORT within 15 s"
echo "    cablekey-prov running, pid $PROV_PID"
echo "    kdc.conf gains (then SIGHUP: applied without a restart):"
sed -i "s|^        pkinit_pool = .*|&\\
        pkinit_provisioning = true\\
        pkinit_unprovisioned_calls = 611 911\\
        pkinit_operator_anchors = FILE:$PKI/prov-ca.pem\\
        pkinit_mta_fqdn_server = localhost:$FQ_PORT|" "$WORK/kdc.conf"
grep -E "pkinit_(provisioning|unprovisioned|operator|mta_fqdn)" "$WORK/kdc.conf" | sed 's/^    /    /'
n=$(grep -c "SIGHUP: configuration reloaded" "$WORK/kdc.log")
show "kill -HUP $KDC_PID"
kill -HUP "$KDC_PID"
for _ in $(seq 1 100); do
    [ "$(grep -c "SIGHUP: configuration reloaded" "$WORK/kdc.log")" -gt "$n" ] && break
    grep -q "SIGHUP: configuration refused" "$WORK/kdc.log" && fail "the KDC refused the new kdc.conf"
    sleep 0.1
done
grep "SIGHUP: configuration reloaded" "$WORK/kdc.log" | tail -n 1 | sed 's/^/    /'
[ "$(grep -c "SIGHUP: configuration reloaded" "$WORK/kdc.log")" -gt "$n" ] || fail "the KDC did not reload"
printf '[domain_realm]\n    localhost = %s\n' "$REALM" >>"$KRB5_CONFIG"
echo "    cms.conf gains (cablekey-cms restarted):"
cat >>"$WORK/cms.conf" <<EOF
    # report restricted devices to cablekey-prov, learn provisioned devices' numbers from it
    provisioning_url = http://localhost:$PPORT
    line = 611 csr-desk@$REALM
EOF
tail -n 3 "$WORK/cms.conf" | sed 's/^/    /'
kill -TERM "$CMS_PID"; wait "$CMS_PID"; CMS_PID=""
start_cms

# logged FILE PATTERN WHY: waits up to 30 s for a line matching PATTERN (grep -E), shows the last
# one; fails the demo with WHY when none comes (the daemons' workers write their lines themselves)
logged() {
    for _ in $(seq 1 150); do grep -Eq -- "$2" "$1" 2>/dev/null && break; sleep 0.2; done
    grep -E -- "$2" "$1" 2>/dev/null | tail -n 1 | sed 's/^/    /'
    grep -Eq -- "$2" "$1" 2>/dev/null || fail "$3"
}

# answer_phone NAME CCACHE: a phone that answers one call, in the background ($ANS_PID)
answer_phone() {
    local m d
    m=$(free_port "$PORT" "$KPORT" "$CMS_PORT" "$SIG_PORT" "$PPORT" "$DC_PORT" "$FQ_PORT")
    d=$(free_port "$PORT" "$KPORT" "$CMS_PORT" "$SIG_PORT" "$PPORT" "$DC_PORT" "$FQ_PORT" "$m")
    show "$CLI mta phone --ccache $2 ... --answer &   ($1)"
    timeout -k 5 60 "$CLI" mta phone --ccache "$2" --kdc "127.0.0.1:$PORT" \
        --cms "127.0.0.1:$CMS_PORT" --sig-port "$SIG_PORT" --service "$CMS_SVC@$REALM" \
        --media "127.0.0.1:$m" --direct-port "$d" --answer --answer-after 200 --verbose \
        >"$WORK/$1.out" 2>"$WORK/$1.err" </dev/null &
    ANS_PID=$!
    for _ in $(seq 1 100); do
        grep -q "phone: registered" "$WORK/$1.err" 2>/dev/null && return 0
        kill -0 "$ANS_PID" 2>/dev/null || break
        sleep 0.1
    done
    cat "$WORK/$1.err"; fail "$1 did not register"
}
# dial CCACHE NUMBER: places a call of one second (shown; its status in $dial_rc)
dial() {
    local m d
    m=$(free_port "$PORT" "$KPORT" "$CMS_PORT" "$SIG_PORT" "$PPORT" "$DC_PORT" "$FQ_PORT")
    d=$(free_port "$PORT" "$KPORT" "$CMS_PORT" "$SIG_PORT" "$PPORT" "$DC_PORT" "$FQ_PORT" "$m")
    show "$CLI mta phone --ccache $1 ... --dial $2 --talk 1"
    timeout -k 5 30 "$CLI" mta phone --ccache "$1" --kdc "127.0.0.1:$PORT" \
        --cms "127.0.0.1:$CMS_PORT" --sig-port "$SIG_PORT" --service "$CMS_SVC@$REALM" \
        --media "127.0.0.1:$m" --direct-port "$d" --dial "$2" --talk 1 </dev/null >"$WORK/out" 2>&1
    dial_rc=$?
    sed 's/^/    /' "$WORK/out"
}
answered() { # answered NAME LABEL: the background phone NAME took its call
    wait "$ANS_PID"; local rc=$?
    ANS_PID=""
    sed -n "s/^call \([0-9A-F]*\) connected .* sent=\([0-9]*\) received=\([0-9]*\).*/    $2 answered call \1: sent \2, received \3 packets/p" \
        "$WORK/$1.out"
    [ $rc -eq 0 ] || { tail -n 5 "$WORK/$1.err"; fail "$2 exited $rc"; }
}

MAC_C=00:11:22:33:44:66
MTA_C=mta-001122334466
DEV="$WORK/adapter"
step "A new phone adapter from the factory ($MAC_C, manufacturer certificate only) logs in: unprovisioned"
mkdir -m 700 "$DEV"
run "$CLI" pki issue-device --dir "$PKI" --mac "$MAC_C" --out "$DEV/factory.p12" --password-file "$WORK/pki.pw"
install -m 600 "$WORK/pki.pw" "$DEV/factory.pw"
BOOT=(mta boot --device "$DEV" --kdc "127.0.0.1:$PORT" --realm "$REALM" --anchors "$PKI/sp-root.pem"
      --cms "127.0.0.1:$CMS_PORT" --cms-service "$CMS_SVC@$REALM")
run "$CLI" mta hfc-register --device "$DEV" --ip 127.0.0.1
run "$CLI" "${BOOT[@]}"
echo "    the KDC admitted it (a principal, a device row, a restricted-calls ticket):"
logged "$WORK/kdc.log" "ISSUE: .*$MTA_C@$REALM for krbtgt.*unprovisioned device $MAC_C admitted" \
    "the KDC did not admit $MAC_C"

step "It calls customer service (611): allowed; another number is refused; cablekey-cms reports it"
timeout 30 kinit -k -t "$WORK/csr-desk.keytab" -c "FILE:$WORK/csr-desk.ccache" csr-desk </dev/null \
    >"$WORK/out" 2>&1 || { cat "$WORK/out"; fail "kinit csr-desk"; }
answer_phone csr-desk "$WORK/csr-desk.ccache"
dial "$DEV/ccache" 611
[ $dial_rc -eq 0 ] || fail "the unprovisioned adapter could not call customer service"
answered csr-desk "the CSR's desk phone (611)"
dial "$DEV/ccache" 5551002
[ $dial_rc -ne 0 ] || fail "the unprovisioned adapter called 5551002"
echo "    what cablekey-cms logged:"
logged "$WORK/cms.log" "to 5551002 refused: restricted-calls ticket" "cablekey-cms did not refuse the call"
logged "$WORK/cms.log" "prov report mac=$MAC_C .*result=ok" "cablekey-cms did not report $MAC_C"

PURL="http://localhost:$PPORT"
step "The CSR finds the caller, enters the customer and provisions it: a number, an operator certificate"
show "echo csr-password | kinit csr1"
printf 'csr-password\n' | timeout -k 5 30 kinit csr1 >"$WORK/out" 2>&1 || {
    sed 's/^/    /' "$WORK/out"; fail "kinit csr1"; }
run "$CLI" device search --server "$PURL" --ip 127.0.0.1
grep -q "^$MAC_C" "$WORK/out" || fail "the search by the caller's address did not find $MAC_C"
run_key "^(Customer|Name|Segment):" "$CLI" customer add --server "$PURL" --name "Ann Example" --address "1 Main St" --segment demo
CUST=$(sed -n 's/^Customer: *\([0-9][0-9]*\).*/\1/p' "$WORK/out" | head -n 1)
[ -n "$CUST" ] || fail "no customer id in the answer"
run_key "^(State|KDC state|Principal|Customer|Numbers|FQDN|Certificate):" "$CLI" device provision --server "$PURL" --mac "$MAC_C" --customer "$CUST"
NUMBER=$(sed -n 's/^Numbers: *\([0-9][0-9]*\).*/\1/p' "$WORK/out" | head -n 1)
[ -n "$NUMBER" ] || fail "no number in the answer"
run kdestroy

step "The adapter fetches its certificate (phone ID, never the number), reboots: full service"
run "$CLI" mta fetch-cert --device "$DEV" --prov "127.0.0.1:$DC_PORT" --prov-principal prov/localhost \
    --anchors "$PKI/sp-root.pem" --kdc "127.0.0.1:$PORT"
openssl x509 -in "$DEV/operator.pem" -noout -text >"$WORK/opcert.txt" 2>&1 || fail "openssl x509"
grep -E "Issuer:|Subject:" "$WORK/opcert.txt" | sed 's/^ */    /'
PHONE_ID=$(printf 'cablekey phone-id v1%s' "$NUMBER" |
    openssl dgst -sha256 -mac HMAC -macopt "hexkey:$(od -An -tx1 -v "$PKI/phone-id.key" | tr -d ' \n')" |
    sed 's/.*= //')
# The extension (id-cablekey-phone-ids, docs/prov-signer-webhooks.md) holds one HMAC per number.
openssl x509 -in "$DEV/operator.pem" -outform DER | od -An -tx1 -v | tr -d ' \n' >"$WORK/opcert.hex"
grep -q "$PHONE_ID" "$WORK/opcert.hex" || fail "the certificate does not carry HMAC(phone-ID key, $NUMBER)"
echo "    phone ID (extension 2.25.1788...): HMAC-SHA-256(phone-ID key, \"$NUMBER\") = ${PHONE_ID:0:16}..."
grep -q "$NUMBER" "$WORK/opcert.txt" && fail "the certificate shows the number $NUMBER"
grep -q "$(printf '%s' "$NUMBER" | od -An -tx1 | tr -d ' \n')" "$WORK/opcert.hex" &&
    fail "the certificate's DER holds the number $NUMBER"
run "$CLI" mta reboot --device "$DEV"
run "$CLI" "${BOOT[@]}"
echo "    the KDC: the operator certificate, confirmed with cablekey-prov over MTA-FQDN:"
logged "$WORK/kdc.log" "ISSUE: .*$MTA_C@$REALM for krbtgt.*operator cert" "no login with the operator certificate"

step "cablekey-cms learned its number ($NUMBER): phone B (5551002) calls it"
logged "$WORK/cms.log" "prov line add $NUMBER " "cablekey-cms did not learn $NUMBER"
answer_phone adapter "$DEV/ccache"
dial "$WORK/mta-b.ccache" "$NUMBER"
[ $dial_rc -eq 0 ] || fail "the call to $NUMBER failed"
answered adapter "the adapter ($NUMBER)"

step "De-provision: the adapter's next login with the operator certificate is refused, live"
printf 'csr-password\n' | timeout -k 5 30 kinit csr1 >"$WORK/out" 2>&1 || {
    sed 's/^/    /' "$WORK/out"; fail "kinit csr1"; }
run_key "^(State|KDC state|Numbers|Certificate):" "$CLI" device deprovision --server "$PURL" --mac "$MAC_C" --reason "moved out"
run kdestroy
logged "$WORK/cms.log" "prov line remove $NUMBER" "cablekey-cms did not drop $NUMBER"
run "$CLI" "${BOOT[@]}" --prov "127.0.0.1:$DC_PORT" --prov-principal prov/localhost
logged "$WORK/kdc.log" "OPERATOR_CERT_NOT_CURRENT: $MTA_C@" "the KDC did not refuse the operator certificate"
run "$CLI" mta status --device "$DEV"

step "Stop cablekey-cms, cablekey-prov and the KDC (SIGTERM)"
# stop PID NAME: SIGTERM, then up to 5 s for a clean exit (status 0)
stop() {
    local rc
    show "kill -TERM $1"
    kill -TERM "$1"
    for _ in $(seq 1 50); do
        kill -0 "$1" 2>/dev/null || break
        [ "$(ps -o stat= -p "$1" 2>/dev/null | cut -c1)" = Z ] && break
        sleep 0.1
    done
    kill -KILL "$1" 2>/dev/null
    wait "$1"; rc=$?
    [ $rc -eq 0 ] || fail "$2 exited with status $rc on SIGTERM (137: did not stop within 5 s)"
}
# The controller first: its long poll of cablekey-prov ends with it.
stop "$CMS_PID" cablekey-cms; CMS_PID=""
stop "$PROV_PID" cablekey-prov; PROV_PID=""
stop "$KDC_PID" "the KDC"; KDC_PID=""
tail -n 2 "$WORK/kdc.log" | sed 's/^/    /'
timeout 10 kdestroy >/dev/null 2>&1

cat <<EOF

${B}How to run it for real${N}
  README.md, "Running a realm for real": make install, the service user _cablekey who owns the
  database and stash, /etc/cablekey/kdc.conf checked with --check, the hardened systemd unit
  (Type=notify; binds port 88 as root, then drops to _cablekey; systemctl reload re-reads the
  configuration), a client krb5.conf. A test (tests/interop/t_service.sh) runs that section.
  Then, as in this demo:
    cablekey pki init ... / pki issue-device ...       the operator PKI and device certificates
    cablekey device add --db ... --mac ... --principal the device table (no CRLs for devices)
    kpasswd_listen = ADDR:464 in kdc.conf              password changes with stock kpasswd
    cablekey-prov + pkinit_provisioning in kdc.conf    provisioning (docs/cablekey-prov.md)
    cablekey db backup --db ... OUT                    online backups (keep the stash apart)
EOF
printf '\n%sdemo OK%s\n' "$G" "$N"
exit 0
