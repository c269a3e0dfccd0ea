#!/usr/bin/env bash
# Password changes with stock clients against cablekey-kdc's kpasswd service: MIT kpasswd over TCP
# and UDP (version 0x0001), Heimdal kpasswd (RFC 3244, 0xff80, for oneself and, as an
# administrator in kpasswd_admins, for another principal), MIT kinit's expired-password flow, and
# refusals (wrong old password, not an administrator, replay, malformed packets, no ticket from
# the TGS). Tickets without the INITIAL flag cannot be had from stock clients (the TGS never
# issues kadmin/changepw tickets): tests/unit/test_kpasswd.c covers that refusal.
# Clients find the service through krb5.conf kpasswd_server. MIT 1.20's kpasswd tries TCP first
# and UDP when TCP is refused: the UDP case goes through a UDP-only recording relay
# (krbpkt.py relay), which also captures the request replayed below.
. "$(dirname "$0")/lib.sh"

if is_mit; then skip_case "the kpasswd service" "mit mode: cablekey's own service"; done_testing; fi

HKPASSWD="$CK_HEIMDAL_BIN/kpasswd.heimdal"
require_tool "MIT clients" kinit kpasswd klist kvno
require_tool "Heimdal kpasswd (scripts/install-deps.sh unpacks heimdal-clients)" "$HKPASSWD"

realm_init TEST.REALM
KPORT=$(free_port) || bail "pick a free port for kpasswd"
realm_addprinc alice alicepw
realm_addprinc carol carolpw
realm_addprinc bob bobpw --pw-expires 2020-01-01

# The client configuration names the kpasswd server.
kpasswd_conf() { # kpasswd_conf FILE SERVER
    write_krb5_conf "$1" "127.0.0.1:$PORT"
    sed -i "s|^\( *\)kdc = .*|&\n\1kpasswd_server = $2|" "$1"
}
kpasswd_conf "$KRB5_CONFIG" "127.0.0.1:$KPORT"
grep -q "kpasswd_server = 127.0.0.1:$KPORT" "$KRB5_CONFIG" || bail "krb5.conf with kpasswd_server"

# kpasswd needs kadmin/changepw: `cablekey init` made it; --check says so; without it the KDC
# refuses to start the service and names the command that creates it.
expect_output "cablekey init created kadmin/changepw with PWCHANGE_SERVICE and DISALLOW_TGT_BASED" \
    "DISALLOW_TGT_BASED.*PWCHANGE_SERVICE" "$CK_CLI" principal show --db "$DB" kadmin/changepw
OLD="$tmp/old.db"
"$CK_CLI" init --db "$OLD" --realm OLD.REALM >/dev/null 2>&1 </dev/null || bail "second realm"
"$CK_CLI" principal delete --db "$OLD" kadmin/changepw@OLD.REALM --yes >/dev/null 2>&1 </dev/null ||
    bail "delete kadmin/changepw from the second realm"
expect_failure "--check with kpasswd and no kadmin/changepw names the fix" "--add-changepw" \
    "$CK_KDC" --check --db "$OLD" --listen 127.0.0.1:1 --kpasswd-listen 127.0.0.1:1
expect_success "cablekey init --add-changepw adds it to an existing realm" \
    "$CK_CLI" init --db "$OLD" --add-changepw
expect_output "--check with kpasswd passes then" "configuration OK" \
    "$CK_KDC" --check --db "$OLD" --listen 127.0.0.1:1 --kpasswd-listen 127.0.0.1:1

# carol may set other principals' passwords (kpasswd_admins, a [realms] key).
printf '[realms]\n    TEST.REALM = {\n        kpasswd_admins = carol@TEST.REALM\n    }\n' \
    >"$tmp/kpasswd-admins.conf"
realm_start_kdc -c "$tmp/kpasswd-admins.conf" --kpasswd-listen "127.0.0.1:$KPORT"
assert_log "kpasswd: listening on 127\.0\.0\.1:$KPORT" "KDC log: the kpasswd service listens"

mit_kpasswd() { # mit_kpasswd PRINC OLD NEW [conf]
    printf '%s\n%s\n%s\n' "$2" "$3" "$3" |
        KRB5_CONFIG="${4:-$KRB5_CONFIG}" timeout -k 5 "$CK_TIMEOUT" kpasswd "$1"
}

# ---- MIT kpasswd over TCP and UDP ----
# The KDC's workers see a changed principal within 200 ms (their cache's change check): wait that
# long before proving that the old password fails.
expect_output "MIT kpasswd changes alice's password (TCP)" "Password changed" \
    mit_kpasswd alice alicepw alice-2
assert_log "KPASSWD tcp 127\.0\.0\.1:[0-9]+ v=0x0001 client=alice@TEST\.REALM target=- result=0" \
    "KDC log: version 1 change over TCP succeeded"
ck_settle
expect_failure "kinit with alice's old password fails" "Password incorrect|Preauthentication failed" \
    kinit_pw alice alicepw
expect_success "kinit with alice's new password works" kinit_pw alice alice-2

# A UDP-only relay that records what passes: MIT falls back to UDP.
RELAY_DIR="$tmp/relay"; mkdir -p "$RELAY_DIR"
"${KRBPKT[@]}" relay --kdc "127.0.0.1:$KPORT" --port-file "$RELAY_DIR/port" --save-dir "$RELAY_DIR" \
    --timeout 120 >"$tmp/relay.log" 2>&1 &
CK_BG_PIDS+=($!)
for _ in $(seq 1 50); do [ -s "$RELAY_DIR/port" ] && break; sleep 0.1; done
[ -s "$RELAY_DIR/port" ] || bail "UDP relay started"
kpasswd_conf "$tmp/krb5-relay.conf" "127.0.0.1:$(cat "$RELAY_DIR/port")"
expect_output "MIT kpasswd changes alice's password again over UDP" "Password changed" \
    mit_kpasswd alice alice-2 alice-3 "$tmp/krb5-relay.conf"
assert_log "KPASSWD udp 127\.0\.0\.1:[0-9]+ v=0x0001 client=alice@TEST\.REALM target=- result=0" \
    "KDC log: version 1 change over UDP succeeded"
[ -s "$RELAY_DIR/req-1.bin" ] || bail "the relay recorded the kpasswd request"
ck_settle
expect_failure "kinit with the password before it fails" "Password incorrect|Preauthentication failed" \
    kinit_pw alice alice-2
expect_success "kinit with the UDP-changed password works" kinit_pw alice alice-3
expect_failure "MIT kpasswd with a wrong old password fails" "Password incorrect|Preauthentication failed" \
    mit_kpasswd alice wrong-old alice-4
expect_success "alice's password is unchanged after that" kinit_pw alice alice-3

# ---- Heimdal kpasswd (RFC 3244 set password for oneself) ----
h_kpasswd() {
    printf '%s\n%s\n%s\n' "$2" "$3" "$3" | setsid timeout -k 5 "$CK_TIMEOUT" "$HKPASSWD" "$1"
}
expect_output "Heimdal kpasswd changes carol's password" "Success|Password changed" \
    h_kpasswd carol carolpw carol-2
assert_log "KPASSWD (udp|tcp) 127\.0\.0\.1:[0-9]+ v=0xff80 client=carol@TEST\.REALM target=carol@TEST\.REALM result=0" \
    "KDC log: RFC 3244 change from Heimdal succeeded"
ck_settle
expect_failure "kinit with carol's old password fails" "Password incorrect|Preauthentication failed" \
    kinit_pw carol carolpw
expect_success "kinit with carol's new password works" kinit_pw carol carol-2

# ---- MIT kinit's expired-password flow ----
kinit_expired() {
    printf 'bobpw\nbob-new\nbob-new\n' | timeout -k 5 "$CK_TIMEOUT" kinit bob
}
expect_output "kinit bob (password expired) prompts, changes it through kpasswd and logs in" \
    "Password expired.  You must change it now" kinit_expired
assert_log "AS_REQ .*CLIENT_KEY_EXPIRED: bob@TEST\.REALM for krbtgt/TEST\.REALM@TEST\.REALM" \
    "KDC log: the expired password got KDC_ERR_KEY_EXPIRED"
assert_log "ISSUE: .*bob@TEST\.REALM for kadmin/changepw@TEST\.REALM" \
    "KDC log: a kadmin/changepw ticket despite the expired password (PWCHANGE_SERVICE)"
expect_output "klist shows bob's TGT" "krbtgt/TEST\.REALM@TEST\.REALM" klist
expect_success "the new password works without a prompt to change it" kinit_pw bob bob-new
expect_output "principal show: bob's password no longer expires" "Password expiration date: \[never\]" \
    "$CK_CLI" principal show --db "$DB" bob

# ---- refusals ----
expect_success "kinit alice (TGT) for the next case" kinit_pw alice alice-3
expect_failure "the TGS issues no kadmin/changepw ticket (DISALLOW_TGT_BASED)" "." \
    timeout "$CK_TIMEOUT" kvno kadmin/changepw@TEST.REALM

# The request the relay recorded, sent again: a replay (within the replay cache's lifetime).
expect_output "MIT kpasswd changes alice's password once more" "Password changed" \
    mit_kpasswd alice alice-3 alice-5
ck_settle

# kpw_send FILE [udp|tcp] [mutation]: sends the bytes, prints "noreply", "krb-error CODE RESULT",
# "priv" or "other".
kpw_send() {
    "$CK_PY" - "$KPORT" "$@" <<'EOF'
import socket, struct, sys
port, path = int(sys.argv[1]), sys.argv[2]
mode = sys.argv[3] if len(sys.argv) > 3 else "udp"
mut = sys.argv[4] if len(sys.argv) > 4 else ""
data = open(path, "rb").read() if path != "-" else b""
if mut == "version2":
    data = data[:2] + b"\x00\x02" + data[4:]
elif mut == "truncate":
    data = data[:-10]
elif mut == "badlen":
    data = struct.pack(">H", len(data) + 7) + data[2:]
elif mut == "aplen":
    data = data[:4] + b"\xff\xf0" + data[6:]
elif mut.startswith("garbage"):
    data = bytes((i * 37 + 11) & 0xff for i in range(int(mut[7:] or 64)))
elif mut == "header-only":
    data = b"\x00\x06\x00\x01\x00\x00"
def der_len(b, i):
    n = b[i]; i += 1
    if n < 0x80: return n, i
    k = n & 0x7f
    return int.from_bytes(b[i:i + k], "big"), i + k
def parse(rep):
    if len(rep) < 6: return "other"
    body = rep[6 + struct.unpack(">H", rep[4:6])[0]:] if rep[0] != 0x7e else rep
    if not body: return "other"
    if body[0] == 0x75: return "priv"
    if body[0] != 0x7e: return "other"
    # KRB-ERROR: find error-code [6] and e-data [12] at the top level of the SEQUENCE
    _, i = der_len(body, 1); i += 1; _, i = der_len(body, i)
    code, edata = None, None
    while i < len(body):
        tag = body[i]; ln, j = der_len(body, i + 1)
        inner = body[j:j + ln]
        if tag == 0xa6: code = int.from_bytes(inner[2:2 + inner[1]], "big", signed=True)
        if tag == 0xac:
            ol, k = der_len(inner, 1)
            edata = inner[k:k + ol]
        i = j + ln
    res = struct.unpack(">H", edata[:2])[0] if edata and len(edata) >= 2 else -1
    return "krb-error %s %s" % (code, res)
if mode == "tcp":
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(struct.pack(">I", len(data)) + data)
    try:
        hdr = s.recv(4)
        if len(hdr) < 4: print("noreply"); sys.exit(0)
        n = struct.unpack(">I", hdr)[0]; rep = b""
        while len(rep) < n:
            c = s.recv(n - len(rep))
            if not c: break
            rep += c
        print(parse(rep))
    except socket.timeout:
        print("noreply")
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
    s.sendto(data, ("127.0.0.1", port))
    try:
        rep, _ = s.recvfrom(65536); print(parse(rep))
    except socket.timeout:
        print("noreply")
EOF
}
REQ="$RELAY_DIR/req-1.bin"
expect_output "a replayed kpasswd request gets KRB_AP_ERR_REPEAT with AUTHERROR" "^krb-error 34 3$" \
    kpw_send "$REQ" udp
assert_log "KPASSWD udp .*result=3 \(authentication error\): replayed" "KDC log: the replay is named"
expect_success "the replay changed nothing: alice-5 still works" kinit_pw alice alice-5
expect_output "an unknown protocol version gets BAD_PVNO with BAD_VERSION" "^krb-error 3 6$" \
    kpw_send "$REQ" udp version2
expect_output "a truncated request (consistent length field) is not answered" "^noreply$" \
    kpw_send "$REQ" udp truncate
expect_output "a wrong length field is not answered" "^noreply$" kpw_send "$REQ" udp badlen
expect_output "an AP-REQ length past the end gets MALFORMED" "^krb-error 41 1$" \
    kpw_send "$REQ" udp aplen
expect_output "a header without AP-REQ gets MALFORMED" "^krb-error 41 1$" \
    kpw_send - udp header-only
expect_output "random bytes over UDP are not answered" "^noreply$" kpw_send - udp garbage200
expect_output "random bytes over TCP are not answered" "^noreply$" kpw_send - tcp garbage64
expect_output "the replay over TCP is refused too" "^krb-error 34 3$" kpw_send "$REQ" tcp
kdc_alive "the KDC is still running after the malformed packets"
expect_output "and still changes passwords" "Password changed" mit_kpasswd alice alice-5 alice-6
expect_success "kinit with that password works" kinit_pw alice alice-6

# ---- setting another principal's password (RFC 3244 targname), Heimdal --admin-principal ----
h_setpw() { # h_setpw ADMIN ADMIN_PW TARGET NEW
    printf '%s\n%s\n%s\n' "$2" "$4" "$4" |
        setsid timeout -k 5 "$CK_TIMEOUT" "$HKPASSWD" --admin-principal="$1" "$3"
}
expect_failure "alice (not in kpasswd_admins) cannot set carol's password" "." \
    h_setpw alice alice-6 carol carol-by-alice
assert_log "KPASSWD (udp|tcp) .*client=alice@TEST\.REALM target=carol@TEST\.REALM result=5 \(access denied\)" \
    "KDC log: ACCESSDENIED for a non-administrator"
ck_settle
expect_success "carol's password is unchanged" kinit_pw carol carol-2
expect_output "carol (in kpasswd_admins) sets alice's password" "Success|Password changed" \
    h_setpw carol carol-2 alice alice-by-carol
assert_log "KPASSWD (udp|tcp) .*client=carol@TEST\.REALM target=alice@TEST\.REALM result=0" \
    "KDC log: an administrator set another principal's password"
ck_settle
expect_failure "alice's previous password fails" "Password incorrect|Preauthentication failed" \
    kinit_pw alice alice-6
expect_success "the password carol set works" kinit_pw alice alice-by-carol

realm_stop_kdc
done_testing
