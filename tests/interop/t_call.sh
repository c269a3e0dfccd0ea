#!/usr/bin/env bash
# Calls end to end on loopback (issue 8, CONTRACT8): cablekey-kdc, two cablekey-cms controllers
# CA and CB with routes to each other (each a KMM client of the other with its own keytab),
# phone A (5551001) on CA, phone B (5552001) on CB and a media gateway (5559000, a server line) on
# CA, all `cablekey mta phone`. Reference audio: espeak-ng speech resampled to 8 kHz (A) and a
# generated two-tone signal (B, the gateway). For every media mode (SRTP AES-CM, SRTP GCM,
# RTP-3DES with MAC), SGCP and calls to the gateway (keyed in NCS, plain RTP in SGCP): both ends
# report connected with lost=0, and what each end recorded equals the µ-law-quantised reference
# of the other, sample for sample (python3, an independent G.711). The ACK paths through the
# phone's test hooks: a wrong ACK aborts the call (ack-mismatch), a lost ACK is retried by CB and
# the call proceeds, an ACK never delivered tears the call down (no-ack-destination). tshark, given
# the esp_sa records the controllers and phones exported, decrypts the signaling and shows the
# MGCP verbs inside it and the HELLOs of the direct SAs, decodes RTP headers with no malformed
# packet, and the capture holds no plaintext of the audio (while the SGCP gateway call, plain RTP
# by design, does: the control that shows the search works). Lawful intercept: CA, with an
# intercept database and an escrow directory, escrows the call to a number under an order in its
# window (escrow=1) and nothing else (a gateway call, orders outside their window, a revoked
# order: escrow=0, no record); `cablekey intercept decrypt` with only that record, the
# law-enforcement key and a capture gives back both directions sample for sample.
. "$(dirname "$0")/lib.sh"

if is_mit; then
    skip_case "calls" "cablekey-only test (needs cablekey-cms)"
    done_testing
fi
CK_CMS="$CK_BUILD/cablekey-cms"
[ -x "$CK_CMS" ] || bail "cablekey-cms not built at $CK_CMS"
require_tool "t_call" tshark dumpcap espeak-ng "$CK_PY"

realm_init TEST.REALM
realm_addprinc mta1 mta1-pw
realm_addprinc mta2 mta2-pw
realm_addprinc mg1 mg1-pw
realm_addprinc cms/ca.test --random
realm_addprinc cms/cb.test --random
realm_ktexport "$tmp/ca.keytab" cms/ca.test >/dev/null || bail "export the CA keytab"
realm_ktexport "$tmp/cb.keytab" cms/cb.test >/dev/null || bail "export the CB keytab"
realm_start_kdc
kinit_pw mta1 mta1-pw -c "$tmp/a.cc" >/dev/null 2>&1 || bail "kinit mta1"
kinit_pw mta2 mta2-pw -c "$tmp/b.cc" >/dev/null 2>&1 || bail "kinit mta2"
kinit_pw mg1 mg1-pw -c "$tmp/mg.cc" >/dev/null 2>&1 || bail "kinit mg1"

SVC_A="cms/ca.test@$REALM"
SVC_B="cms/cb.test@$REALM"
KPA=$(free_port) SPA=$(free_port) KPB=$(free_port) SPB=$(free_port)
MA=$(free_port) DA=$(free_port) MB=$(free_port) DB=$(free_port) MM=$(free_port) DM=$(free_port)
for p in KPA SPA KPB SPB MA DA MB DB MM DM; do [ -n "${!p}" ] || bail "free port $p"; done
PHONE_SA="$tmp/phones.esp_sa"

# ---- reference audio -------------------------------------------------------------------------
cat >"$tmp/wav.py" <<'EOF'
# WAV helpers of t_call.sh (stdlib only): G.711 u-law written from ITU-T G.711 / the classic
# segment algorithm, independently of lib/media.
import math, struct, sys, wave

def read(path):
    with wave.open(path, "rb") as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1, path
        rate, raw = w.getframerate(), w.readframes(w.getnframes())
    return rate, list(struct.unpack("<%dh" % (len(raw) // 2), raw))

def write(path, samples, rate=8000):
    with wave.open(path, "wb") as w:
        w.setnchannels(1); w.setsampwidth(2); w.setframerate(rate)
        w.writeframes(struct.pack("<%dh" % len(samples), *samples))

BIAS, CLIP = 0x84, 32635
def ulaw_enc(x):
    mask = 0xFF
    if x < 0:
        x, mask = -x, 0x7F
    x = min(x, CLIP) + BIAS
    seg = 0
    while seg < 7 and x >= (0x100 << seg):
        seg += 1
    return ((seg << 4) | ((x >> (seg + 3)) & 0x0F)) ^ mask

def ulaw_dec(c):
    u = ~c & 0xFF
    t = (((u & 0x0F) << 3) + BIAS) << ((u & 0x70) >> 4)
    return BIAS - t if u & 0x80 else t - BIAS

cmd = sys.argv[1]
if cmd == "resample":            # resample IN OUT SECONDS: to 8 kHz (linear), padded/cut
    rate, s = read(sys.argv[2])
    n = int(8000 * float(sys.argv[4]))
    out = []
    for i in range(n):
        t = i * rate / 8000.0
        j = int(t)
        if j + 1 < len(s):
            out.append(int(round(s[j] + (s[j + 1] - s[j]) * (t - j))))
        else:
            out.append(0)
    write(sys.argv[3], out)
elif cmd == "tone":              # tone OUT SECONDS: 440 Hz + 1000 Hz, -6 dBFS each
    n = int(8000 * float(sys.argv[3]))
    write(sys.argv[2], [int(8000 * math.sin(2 * math.pi * 440 * i / 8000) +
                            6000 * math.sin(2 * math.pi * 1000 * i / 8000)) for i in range(n)])
elif cmd == "compare":           # compare RECORDED REFERENCE: sample-exact vs decode(encode(ref))
    _, rec = read(sys.argv[2])
    _, ref = read(sys.argv[3])
    if len(rec) == 0 or len(rec) % 160:
        print("recorded %d samples (not whole 20 ms frames)" % len(rec)); sys.exit(1)
    for i, v in enumerate(rec):
        want = ulaw_dec(ulaw_enc(ref[i % len(ref)]))
        if v != want:
            print("sample %d (frame %d): %d, want %d" % (i, i // 160, v, want)); sys.exit(1)
    print("%d samples (%d frames) equal" % (len(rec), len(rec) // 160))
elif cmd == "plaintext":         # plaintext CAPTURE REFERENCE FRAMES: count frames whose u-law
    data = open(sys.argv[2], "rb").read()   # payload (first 48 bytes) appears in the capture
    _, ref = read(sys.argv[3])
    found = tried = 0
    for f in range(int(sys.argv[4])):
        chunk = bytes(ulaw_enc(ref[(f * 160 + k) % len(ref)]) for k in range(48))
        if len(set(chunk)) < 12:
            continue             # near-silence: too little entropy to mean anything
        tried += 1
        found += chunk in data
    print("%d of %d frames found" % (found, tried))
EOF
espeak-ng -w "$tmp/speech.wav" "Cable key calls carry encrypted audio between two phone adapters" \
    >"$tmp/espeak.log" 2>&1 || bail "espeak-ng" "$(cat "$tmp/espeak.log")"
"$CK_PY" "$tmp/wav.py" resample "$tmp/speech.wav" "$tmp/ref_a.wav" 3.3 || bail "resample the speech"
"$CK_PY" "$tmp/wav.py" tone "$tmp/ref_b.wav" 2.1 || bail "generate the tone"

# ---- controllers -----------------------------------------------------------------------------
# start_pair MODE MEDIA [extra config lines for both]: (re)starts CA and CB; CA_CONF: lines for
# CA only.
CA_CONF=()
CMS_PIDS=()
SAN_REPORTS=""
stop_pair() {
    local p rc n
    for p in "${CMS_PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null; wait "$p"; rc=$?
        [ "$rc" -eq 0 ] || SAN_REPORTS="$SAN_REPORTS cablekey-cms exit $rc;"
    done
    CMS_PIDS=()
    for n in ca cb; do
        [ -f "$tmp/$n.stderr" ] || continue
        SAN_REPORTS="$SAN_REPORTS$(grep -Eh "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error" "$tmp/$n.stderr" | head -n 2)"
    done
}
start_one() { # start_one NAME KEYTAB SVC KP SP CONFIG-LINES...
    local name=$1 kt=$2 svc=$3 kp=$4 sp=$5 i; shift 5
    {
        echo "[cms]"
        echo "    keytab = $kt"
        echo "    service = $svc"
        echo "    kdc = 127.0.0.1:$PORT"
        echo "    export_wireshark = $tmp/$name.esp_sa"
        for l in "$@"; do echo "    $l"; done
    } >"$tmp/$name.conf"
    : >"$tmp/$name.log"
    "$CK_CMS" -c "$tmp/$name.conf" --listen "127.0.0.1:$kp" --signaling-listen "127.0.0.1:$sp" \
        --log "$tmp/$name.log" --log-level debug --log-flush-ms 50 \
        >"$tmp/$name.stderr" 2>&1 </dev/null &
    CMS_PIDS+=($!)
    CK_BG_PIDS+=($!)
    for i in $(seq 1 100); do
        grep -q "cablekey-cms ready" "$tmp/$name.log" 2>/dev/null && return 0
        kill -0 "${CMS_PIDS[-1]}" 2>/dev/null || break
        sleep 0.1
    done
    bail "cablekey-cms $name started" "$(tail -n 20 "$tmp/$name.stderr" "$tmp/$name.log")"
}
start_pair() {
    local mode=$1 media=$2; shift 2
    stop_pair
    start_one ca "$tmp/ca.keytab" "$SVC_A" "$KPA" "$SPA" "call_mode = $mode" "media = $media" \
        "line = 5551001 mta1@$REALM mac=0011223344aa" "line = 5559000 mg1@$REALM server" \
        "route = 5552 $SVC_B 127.0.0.1:$KPB sig=$SPB" "call_retry_ms = 300" "call_tries = 3" "$@" \
        ${CA_CONF[@]+"${CA_CONF[@]}"}
    start_one cb "$tmp/cb.keytab" "$SVC_B" "$KPB" "$SPB" "call_mode = $mode" "media = $media" \
        "line = 5552001 mta2@$REALM mac=0011223344bb" \
        "route = 5551 $SVC_A 127.0.0.1:$KPA sig=$SPA" "call_retry_ms = 300" "call_tries = 3" "$@"
}

# ---- phones ----------------------------------------------------------------------------------
phone() { # phone NAME CCACHE KP SP SVC MEDIA_PORT DIRECT_PORT args...
    local name=$1 cc=$2 kp=$3 sp=$4 svc=$5 mp=$6 dp=$7; shift 7
    timeout -k 5 60 "$CK_CLI" mta phone --ccache "$cc" --cms "127.0.0.1:$kp" --sig-port "$sp" \
        --service "$svc" --kdc "127.0.0.1:$PORT" --media "127.0.0.1:$mp" --direct-port "$dp" \
        --export-wireshark "$PHONE_SA" --timeout 40 --verbose "$@" \
        >"$tmp/$name.out" 2>"$tmp/$name.err" </dev/null
}
# callee NAME args...: B (or, with --mg, the gateway) in the background, waited for until its
# controller acknowledged its restart; CALLEE_PID.
callee() {
    local name=$1 i; shift
    if [ "${1:-}" = --mg ]; then
        shift
        phone "$name" "$tmp/mg.cc" "$KPA" "$SPA" "$SVC_A" "$MM" "$DM" --server --audio "$tmp/ref_b.wav" \
            --record "$tmp/$name.wav" "$@" &
    else
        phone "$name" "$tmp/b.cc" "$KPB" "$SPB" "$SVC_B" "$MB" "$DB" --answer --answer-after 400 \
            --audio "$tmp/ref_b.wav" --record "$tmp/$name.wav" "$@" &
    fi
    CALLEE_PID=$!
    for i in $(seq 1 100); do
        grep -q "phone: registered" "$tmp/$name.err" 2>/dev/null && { sleep 0.2; return 0; }
        kill -0 "$CALLEE_PID" 2>/dev/null || break
        sleep 0.1
    done
    not_ok "callee $name registered with its controller" "$(tail -n 10 "$tmp/$name.err")"
    return 1
}
caller() { # caller NAME NUMBER args...: A dials; rc in CALLER_RC
    local name=$1 num=$2; shift 2
    phone "$name" "$tmp/a.cc" "$KPA" "$SPA" "$SVC_A" "$MA" "$DA" --dial "$num" --talk 2 \
        --audio "$tmp/ref_a.wav" --record "$tmp/$name.wav" "$@"
    CALLER_RC=$?
}
field() { sed -n "s/^call [0-9A-Fa-f]* connected .* $2=\([0-9]*\).*/\1/p" "$tmp/$1.out" | head -n 1; }

# check_call DESC A B MEDIA IPSEC DIRECT: both ends connected cleanly, lost=0, sample-exact audio.
check_call() {
    local desc=$1 a=$2 b=$3 media=$4 ipsec=$5 direct=$6 rcb re
    wait "$CALLEE_PID"; rcb=$?
    re="^call [0-9A-F]{32} connected media=$media ipsec=$ipsec spi=0x[0-9a-f]{8} sent=[0-9]+ received=[0-9]+ lost=0 replayed=0 dropped=0 direct=$direct$"
    if [ "$CALLER_RC" -eq 0 ] && [ "$rcb" -eq 0 ] && grep -Eq "$re" "$tmp/$a.out" &&
        grep -Eq "$re" "$tmp/$b.out" && grep -Eq "^call [0-9A-F]{32} released reason=hangup$" "$tmp/$a.out" &&
        grep -Eq "^call [0-9A-F]{32} released reason=hangup$" "$tmp/$b.out"; then
        ok "$desc: both ends connected ($media, ipsec $ipsec, direct $direct), lost=0, released on hang-up"
    else
        not_ok "$desc: both ends connected" "caller exit $CALLER_RC, callee exit $rcb
A: $(cat "$tmp/$a.out"; tail -n 8 "$tmp/$a.err")
B: $(cat "$tmp/$b.out"; tail -n 8 "$tmp/$b.err")
CA: $(grep -E "call |ERR|WARN" "$tmp/ca.log" | tail -n 5)
CB: $(grep -E "call |ERR|WARN" "$tmp/cb.log" | tail -n 5)"
        return 1
    fi
    if [ -n "$(field "$b" received)" ] && [ "$(field "$b" received)" = "$(field "$a" sent)" ] &&
        [ "$(field "$a" sent)" -ge 90 ]; then
        ok "$desc: every frame A sent ($(field "$a" sent)) was received by the other end"
    else
        not_ok "$desc: every frame A sent was received" "A sent $(field "$a" sent), other end received $(field "$b" received)"
    fi
    if "$CK_PY" "$tmp/wav.py" compare "$tmp/$b.wav" "$tmp/ref_a.wav" >"$tmp/cmp.out" 2>&1; then
        ok "$desc: the callee's recording is the u-law-quantised speech, sample for sample ($(cat "$tmp/cmp.out"))"
    else
        not_ok "$desc: callee's recording sample-exact" "$(cat "$tmp/cmp.out")"
    fi
    if "$CK_PY" "$tmp/wav.py" compare "$tmp/$a.wav" "$tmp/ref_b.wav" >"$tmp/cmp.out" 2>&1; then
        ok "$desc: the caller's recording is the u-law-quantised tone, sample for sample ($(cat "$tmp/cmp.out"))"
    else
        not_ok "$desc: caller's recording sample-exact" "$(cat "$tmp/cmp.out")"
    fi
}
ca_summary() { # ca_summary DESC REGEX (the summary line in CA's log)
    if wait_file_grep "$tmp/ca.log" "$2"; then ok "$1"; else
        not_ok "$1" "no /$2/ in CA's log: $(grep -E "call [0-9A-Fa-f]+ from" "$tmp/ca.log" | tail -n 3)"; fi
}

# ---- 1. NCS, SRTP AES-CM, captured ------------------------------------------------------------
rm -f "$PHONE_SA"
start_pair ncs srtp-aes-cm
dumpcap -q -i lo -f udp -w "$tmp/call.pcapng" >"$tmp/dumpcap.log" 2>&1 &
CAP_PID=$!
CK_BG_PIDS+=($CAP_PID)
for i in $(seq 1 50); do grep -q "Capturing on" "$tmp/dumpcap.log" 2>/dev/null && break; sleep 0.1; done
callee aescm_b && caller aescm_a 5552001
check_call "NCS SRTP AES-CM call A -> B" aescm_a aescm_b srtp-aes-cm sha1-aes128 ok
sleep 0.3
kill -INT "$CAP_PID" 2>/dev/null; wait "$CAP_PID" 2>/dev/null
ca_summary "CA's summary line: connected, released on hang-up, srtp-aes-cm, sha1-aes128" \
    "call [0-9A-F]{32} from 5551001 to 5552001 result (connected|released) reason=hangup setup_ms=[0-9]+ media=srtp-aes-cm ipsec=sha1-aes128 escrow=0"
if [ "$(stat -c %a "$PHONE_SA")" = 600 ] && grep -Ec '^"IPv4","127\.0\.0\.1","127\.0\.0\.1","0x[0-9a-f]{8}","AES-CBC \[RFC3602\]","0x[0-9a-f]{32}","HMAC-SHA-1-96 \[RFC2404\]","0x[0-9a-f]{40}"$' "$PHONE_SA" | grep -qx 4; then
    ok "--export-wireshark: 4 esp_sa records (two ends x two SAs), file 0600"
else
    not_ok "--export-wireshark records" "mode $(stat -c %a "$PHONE_SA"); $(sed -E 's/0x[0-9a-f]{16,}/0x.../g' "$PHONE_SA")"
fi

# tshark with the keys of every SA: controllers' channels (endpoint and peer) and the direct SAs.
mkdir -p "$tmp/ws/wireshark" "$tmp/ws/home"
cat "$tmp/ca.esp_sa" "$tmp/cb.esp_sa" "$PHONE_SA" >"$tmp/ws/wireshark/esp_sa" 2>/dev/null
TS=(env HOME="$tmp/ws/home" XDG_CONFIG_HOME="$tmp/ws" tshark -n -r "$tmp/call.pcapng"
    -d "udp.port==$SPA,udpencap" -d "udp.port==$SPB,udpencap" -d "udp.port==$DA,udpencap"
    -d "udp.port==$DB,udpencap" -d "udp.port==$MA,rtp" -d "udp.port==$MB,rtp"
    -o esp.enable_encryption_decode:TRUE -o esp.enable_authentication_check:TRUE)
verbs=$("${TS[@]}" -Y mgcp.req.verb -T fields -e mgcp.req.verb 2>/dev/null | sort -u | tr '\n' ' ')
missing=""
for v in NTFY CRCX MDCX DLCX XSET XANS XREL; do case " $verbs " in *" $v "*) ;; *) missing="$missing $v" ;; esac; done
if [ -z "$missing" ]; then
    ok "tshark decrypts the signaling with the exported esp_sa table: MGCP $verbs"
else
    not_ok "tshark shows MGCP inside the decrypted signaling" "missing:$missing; seen: $verbs
$(head -c 600 "$tmp/ws/wireshark/esp_sa" | sed -E 's/0x[0-9a-f]{16,}/0x.../g')"
fi
n_hello=$("${TS[@]}" -Y "esp and udp.srcport==2427 and udp.dstport==2427 and (udp.port==$DA or udp.port==$DB)" 2>/dev/null | wc -l)
n_hello_data=$("${TS[@]}" -Y "(udp.port==$DA or udp.port==$DB)" -T fields -e data.data 2>/dev/null | grep -c "^48454c4c4f20")
if [ "$n_hello" -ge 2 ] && [ "$n_hello_data" -ge 2 ]; then
    ok "tshark decrypts the direct SAs: $n_hello HELLOs (inner UDP 2427 -> 2427)"
else
    not_ok "tshark decrypts the direct SAs" "$n_hello ESP 2427->2427, $n_hello_data HELLO payloads"
fi
n_rtp=$("${TS[@]}" -Y "rtp.version==2 and rtp.p_type==0" 2>/dev/null | wc -l)
n_bad=$("${TS[@]}" -Y "_ws.malformed or _ws.expert.severity >= error" 2>/dev/null | wc -l)
if [ "$n_rtp" -ge 180 ] && [ "$n_bad" -eq 0 ]; then
    ok "tshark: $n_rtp SRTP packets decode as RTP v2 PT 0, no malformed packet"
else
    not_ok "tshark RTP/SRTP headers" "$n_rtp RTP, $n_bad malformed/errors
$("${TS[@]}" -Y "_ws.malformed or _ws.expert.severity >= error" 2>&1 | head -n 5)"
fi
pt=$("$CK_PY" "$tmp/wav.py" plaintext "$tmp/call.pcapng" "$tmp/ref_a.wav" 100)
pt_b=$("$CK_PY" "$tmp/wav.py" plaintext "$tmp/call.pcapng" "$tmp/ref_b.wav" 100)
if echo "$pt" | grep -Eq "^0 of [1-9][0-9]* frames found$" && echo "$pt_b" | grep -Eq "^0 of [1-9][0-9]* frames found$"; then
    ok "the capture holds no plaintext audio (speech: $pt; tone: $pt_b)"
else
    not_ok "the capture holds no plaintext audio" "speech: $pt; tone: $pt_b"
fi

# ---- 2. the ACK paths (phone test hooks) --------------------------------------------------------
callee badack_b --test-bad-ack && caller badack_a 5552001
wait "$CALLEE_PID"; rcb=$?
if [ "$CALLER_RC" -ne 0 ] && grep -q "^call failed reason=ack-mismatch$" "$tmp/badack_a.out" &&
    ! grep -q " connected " "$tmp/badack_b.out"; then
    ok "a wrong destination ACK aborts the call: A reports failed reason=ack-mismatch"
else
    not_ok "wrong ACK aborts the call" "A exit $CALLER_RC: $(cat "$tmp/badack_a.out"); B exit $rcb: $(cat "$tmp/badack_b.out")"
fi
ca_summary "CA's summary: result failed reason=ack-mismatch" \
    "call [0-9A-F]{32} from 5551001 to 5552001 result failed reason=ack-mismatch"

callee lost1_b --test-lose-acks 1 && caller lost1_a 5552001
check_call "ACK lost once (CB retransmits, B answers from its reply cache)" lost1_a lost1_b srtp-aes-cm sha1-aes128 ok
if grep -q "test: answer to txid .* lost 1 times" "$tmp/lost1_b.err"; then
    ok "the lost-ACK hook fired (the first answer was not sent)"
else
    not_ok "the lost-ACK hook fired" "$(tail -n 5 "$tmp/lost1_b.err")"
fi

callee lostall_b --test-lose-acks 50 --timeout 15 && caller lostall_a 5552001
wait "$CALLEE_PID"
if [ "$CALLER_RC" -ne 0 ] && grep -q "^call failed reason=no-ack-destination$" "$tmp/lostall_a.out"; then
    ok "an ACK never delivered: the call is torn down with reason no-ack-destination"
else
    not_ok "ACK never delivered" "A exit $CALLER_RC: $(cat "$tmp/lostall_a.out"); CA: $(grep -E "call [0-9A-Fa-f]+ from" "$tmp/ca.log" | tail -n 2)"
fi

# ---- 3. the gateway (CTA-to-server sub-key, local to CA) -----------------------------------------
callee mg_ncs --mg && caller mgcall_a 5559000
check_call "NCS call to the media gateway (CTA-to-server sub-key)" mgcall_a mg_ncs srtp-aes-cm sha1-aes128 ok

# ---- 4. the other media modes ---------------------------------------------------------------------
start_pair ncs srtp-gcm
callee gcm_b && caller gcm_a 5552001
check_call "NCS SRTP GCM call" gcm_a gcm_b srtp-gcm sha1-aes128 ok

start_pair ncs rtp-3des-mac "compat_seq = true" "call_ipsec_suite = sha1-3des"
callee des_b && caller des_a 5552001
check_call "NCS RTP-3DES+MAC call (compatibility mode, seed's sequence numbers, 3DES ESP)" des_a des_b rtp-3des-mac sha1-3des ok

# ---- 5. SGCP: media keys only; the gateway gets no key at all ----------------------------------
start_pair sgcp srtp-aes-cm
callee sgcp_b && caller sgcp_a 5552001
check_call "SGCP call (media keys only, no direct ESP)" sgcp_a sgcp_b srtp-aes-cm none none
dumpcap -q -i lo -f "udp port $MA or udp port $MM" -w "$tmp/plain.pcapng" >"$tmp/dumpcap2.log" 2>&1 &
CAP_PID=$!
CK_BG_PIDS+=($CAP_PID)
for i in $(seq 1 50); do grep -q "Capturing on" "$tmp/dumpcap2.log" 2>/dev/null && break; sleep 0.1; done
callee sgcp_mg --mg && caller sgcp_mga 5559000
check_call "SGCP call to the gateway (no key: plain RTP)" sgcp_mga sgcp_mg rtp none none
sleep 0.3
kill -INT "$CAP_PID" 2>/dev/null; wait "$CAP_PID" 2>/dev/null
pt=$("$CK_PY" "$tmp/wav.py" plaintext "$tmp/plain.pcapng" "$tmp/ref_b.wav" 100)
if echo "$pt" | grep -Eq "^([1-9][0-9]*) of \1 frames found$"; then
    ok "control: the plain-RTP gateway call's audio is visible in its capture ($pt)"
else
    not_ok "control: plain RTP audio visible" "$pt"
fi
# ---- 6. lawful intercept ----
# The intercept administrator's database (created 0600 by `cablekey intercept add`) holds an
# order on B's number over a window around now, an order on A's MAC whose window is in the
# future and one on the gateway's number whose window has passed. CA (only CA) has it as
# intercept_db with an escrow_dir: the A->B call is escrowed exactly once, to the RSA
# law-enforcement certificate; with only that record, the LEA key and a capture of the call,
# `cablekey intercept decrypt` gives back both directions sample for sample. A call to the
# gateway (no order in its window covers either party) and an A->B call after the order is
# revoked leave no record.
require_tool "t_call: lawful intercept" openssl
LI_DB="$tmp/li/intercept.db" DROP="$tmp/escrow"
mkdir -m 700 "$tmp/li" "$DROP" "$tmp/lea"
li() { timeout -k 5 60 "$CK_CLI" intercept "$@"; }
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/lea/lea.key" -out "$tmp/lea/lea.pem" \
    -days 30 -subj "/O=Agency/CN=LEA collection" -addext "keyUsage=critical,keyEncipherment" \
    >"$tmp/openssl.log" 2>&1 || bail "openssl: the LEA key and certificate" "$(cat "$tmp/openssl.log")"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/lea/other.key" -out "$tmp/lea/other.pem" \
    -days 30 -subj "/CN=someone else" >"$tmp/openssl.log" 2>&1 ||
    bail "openssl: another key" "$(cat "$tmp/openssl.log")"
NOW=$(date +%s)
expect_output "intercept add: order 1 on B's number 5552001, window around now" "^order 1 added$" \
    li add --db "$LI_DB" --number 5552001 --from $((NOW - 3600)) --until $((NOW + 86400)) \
    --authority "District Court X, order 17/2027" --cert "$tmp/lea/lea.pem" --actor "officer 7"
expect_output "intercept add: order 2 on A's MAC, window in the future" "^order 2 added$" \
    li add --db "$LI_DB" --mac 00:11:22:33:44:AA --from $((NOW + 7 * 86400)) \
    --until $((NOW + 14 * 86400)) --authority "Court Y, order 3" --cert "$tmp/lea/lea.pem"
expect_output "intercept add: order 3 on the gateway's number 5559000, window in the past" \
    "^order 3 added$" li add --db "$LI_DB" --number 5559000 --from $((NOW - 2 * 86400)) \
    --until $((NOW - 86400)) --authority "Court Z, order 9" --cert "$tmp/lea/lea.pem"
if [ "$(stat -c '%a %u' "$LI_DB")" = "600 $(id -u)" ] &&
    li list --db "$LI_DB" >"$tmp/li_list.out" 2>&1 &&
    grep -q "^1	active	number:5552001	" "$tmp/li_list.out" &&
    grep -q "^2	pending	mac:0011223344aa	" "$tmp/li_list.out" &&
    grep -q "^3	expired	number:5559000	" "$tmp/li_list.out"; then
    ok "the intercept database is 0600, owned by the administrator; orders active, pending, expired"
else
    not_ok "intercept database mode and orders" "$(stat -c '%a %U' "$LI_DB"); $(cat "$tmp/li_list.out")"
fi
li_count() { li records --db "$LI_DB" 2>/dev/null | grep -c .; }

CA_CONF=("intercept_db = $LI_DB" "escrow_dir = $DROP" "escrow_retention = 2d")
start_pair ncs srtp-aes-cm
CA_CONF=()
ca_summary "CA started with lawful intercept on" "calls: .* lawful intercept on"
dumpcap -q -P -i lo -f udp -w "$tmp/li.pcap" >"$tmp/dumpcap3.log" 2>&1 &
CAP_PID=$!
CK_BG_PIDS+=($CAP_PID)
for i in $(seq 1 50); do grep -q "Capturing on" "$tmp/dumpcap3.log" 2>/dev/null && break; sleep 0.1; done
callee li_b && caller li_a 5552001
check_call "intercepted call A -> B (SRTP AES-CM)" li_a li_b srtp-aes-cm sha1-aes128 ok
sleep 0.3
kill -INT "$CAP_PID" 2>/dev/null; wait "$CAP_PID" 2>/dev/null
LI_CALL=$(sed -n 's/^call \([0-9A-F]\{32\}\) connected .*/\1/p' "$tmp/li_a.out" | head -n 1)
LI_SPI=$(sed -n 's/^call [0-9A-F]* connected .* spi=\(0x[0-9a-f]*\) .*/\1/p' "$tmp/li_a.out" | head -n 1)
REC="$DROP/1-$LI_CALL.p7m"
ca_summary "CA's summary line of the intercepted call: escrow=1" \
    "call $LI_CALL from 5551001 to 5552001 result connected reason=hangup setup_ms=[0-9]+ media=srtp-aes-cm ipsec=sha1-aes128 escrow=1$"
if wait_file_grep "$tmp/cb.log" "call $LI_CALL from 5551001 to 5552001 result connected .* escrow=0$"; then
    ok "CB (the destination controller, no intercept_db) escrows nothing: escrow=0"
else
    not_ok "CB's summary escrow=0" "$(grep -E "call [0-9A-F]+ from" "$tmp/cb.log" | tail -n 2)"
fi
li records --db "$LI_DB" >"$tmp/li_rec.out" 2>&1
if [ -n "$LI_CALL" ] && [ "$(grep -c . "$tmp/li_rec.out")" = 1 ] &&
    grep -Eq "^1	$LI_CALL	[^	]+	[^	]+	[0-9]+$" "$tmp/li_rec.out" &&
    [ "$(ls "$DROP")" = "1-$LI_CALL.p7m" ] && [ "$(stat -c %a "$REC")" = 600 ] &&
    [ $(( $(date -d "$(cut -f4 "$tmp/li_rec.out")" +%s) - $(date -d "$(cut -f3 "$tmp/li_rec.out")" +%s) )) = 172800 ]; then
    ok "one escrow record (order 1, the call's id, kept escrow_retention = 2d) in the database and in the drop directory (0600)"
else
    not_ok "one escrow record, drop file 0600" "call $LI_CALL; records: $(cat "$tmp/li_rec.out"); drop: $(ls -l "$DROP")"
fi
expect_failure "intercept open without the LEA key is refused" "--record and --key are required" \
    li open --record "$REC"
expect_failure "intercept open with another key fails" \
    "cannot be opened with this key \(not its recipient, or altered\)" \
    li open --record "$REC" --key "$tmp/lea/other.key" --show-key
li open --record "$REC" --key "$tmp/lea/lea.key" --show-key >"$tmp/li_open.out" 2>&1
LI_K=$(sed -n 's/^k-call: \([0-9a-f]\{64\}\)$/\1/p' "$tmp/li_open.out")
if [ ${#LI_K} = 64 ] && grep -qx "call-id: $LI_CALL" "$tmp/li_open.out" &&
    grep -qx "caller: 5551001" "$tmp/li_open.out" && grep -qx "callee: 5552001" "$tmp/li_open.out" &&
    grep -qx "caller-mac: 0011223344aa" "$tmp/li_open.out" && grep -qx "spi: $LI_SPI" "$tmp/li_open.out" &&
    grep -qx "media: srtp-aes-cm" "$tmp/li_open.out" && grep -qx "ipsec: sha1-aes128" "$tmp/li_open.out" &&
    grep -qx "source-media: 127.0.0.1 $MA" "$tmp/li_open.out" &&
    grep -qx "destination-media: 127.0.0.1 $MB" "$tmp/li_open.out"; then
    ok "the LEA key opens the record: the call's id, parties, A's MAC, A's SPI ($LI_SPI), media addresses, K_call"
else
    not_ok "the LEA key opens the record" "$(sed 's/^k-call: .*/k-call: .../' "$tmp/li_open.out")"
fi
# K_call, raw or in hex, in nothing the operator or a database thief can read.
if [ ${#LI_K} = 64 ] && "$CK_PY" - "$LI_K" "$LI_DB" "$LI_DB-wal" "$REC" "$tmp/ca.log" "$tmp/ca.stderr" \
    "$tmp/cb.log" "$tmp/ca.esp_sa" "$tmp/cb.esp_sa" "$PHONE_SA" "$tmp/li_a.out" "$tmp/li_a.err" \
    "$tmp/li_b.out" "$tmp/li_b.err" <<'PYEOF' >"$tmp/li_k.out" 2>&1
import os, sys
k = bytes.fromhex(sys.argv[1])
needles = (k, sys.argv[1].encode(), sys.argv[1].upper().encode())
bad = [p for p in sys.argv[2:] if os.path.exists(p) and any(n in open(p, "rb").read() for n in needles)]
print("K_call found in: " + " ".join(bad) if bad else "not found")
sys.exit(1 if bad else 0)
PYEOF
then
    ok "K_call is in neither the intercept database (nor its WAL), the drop file, the controllers' logs nor the esp_sa exports"
else
    not_ok "K_call nowhere in clear" "$(cat "$tmp/li_k.out")"
fi
if li decrypt --record "$REC" --key "$tmp/lea/lea.key" --pcap "$tmp/li.pcap" --out-prefix "$tmp/li_dec" \
    >"$tmp/li_dec.out" 2>&1 &&
    grep -Eq "^decrypt media=srtp-aes-cm packets=[0-9]+ sd=([1-9][0-9]+)/\1 ds=([1-9][0-9]+)/\2 failed=0 replayed=0 samples_sd=[1-9][0-9]* samples_ds=[1-9][0-9]*$" "$tmp/li_dec.out"; then
    ok "intercept decrypt with the record and the LEA key: every media datagram of the capture decrypted ($(cat "$tmp/li_dec.out"))"
else
    not_ok "intercept decrypt of the captured call" "$(cat "$tmp/li_dec.out")"
fi
if "$CK_PY" "$tmp/wav.py" compare "$tmp/li_dec-sd.wav" "$tmp/ref_a.wav" >"$tmp/cmp.out" 2>&1 &&
    [ "$(stat -c %a "$tmp/li_dec-sd.wav")" = 600 ]; then
    ok "intercepted A -> B audio is the u-law-quantised speech, sample for sample ($(cat "$tmp/cmp.out")), WAV 0600"
else
    not_ok "intercepted A -> B audio sample-exact" "$(cat "$tmp/cmp.out"); mode $(stat -c %a "$tmp/li_dec-sd.wav" 2>&1)"
fi
if "$CK_PY" "$tmp/wav.py" compare "$tmp/li_dec-ds.wav" "$tmp/ref_b.wav" >"$tmp/cmp.out" 2>&1; then
    ok "intercepted B -> A audio is the u-law-quantised tone, sample for sample ($(cat "$tmp/cmp.out"))"
else
    not_ok "intercepted B -> A audio sample-exact" "$(cat "$tmp/cmp.out")"
fi

# Negative: no active order covers the gateway call (order 1 is on B; A's MAC is only under the
# future order 2, the gateway's number only under the expired order 3).
callee li_mg --mg && caller li_mga 5559000
check_call "call A -> gateway under no active order" li_mga li_mg srtp-aes-cm sha1-aes128 ok
ca_summary "CA's summary line of the gateway call: escrow=0" \
    "call [0-9A-F]{32} from 5551001 to 5559000 result connected reason=hangup .* escrow=0$"
if [ "$(li_count)" = 1 ] && [ "$(ls "$DROP" | wc -l)" = 1 ]; then
    ok "the gateway call (only orders outside their window match it) leaves no record and no drop file"
else
    not_ok "the gateway call leaves no record" "$(li records --db "$LI_DB" 2>&1); $(ls "$DROP")"
fi
expect_output "intercept revoke 1" "^order 1 revoked$" li revoke --db "$LI_DB" --actor "officer 7" 1
callee li_rb && caller li_ra 5552001
check_call "call A -> B after its order was revoked" li_ra li_rb srtp-aes-cm sha1-aes128 ok
ca_summary "CA's summary line of the call under the revoked order: escrow=0" \
    "call [0-9A-F]{32} from 5551001 to 5552001 result connected reason=hangup .* escrow=0$"
if [ "$(li_count)" = 1 ] && [ "$(ls "$DROP" | wc -l)" = 1 ]; then
    ok "the call under the revoked order leaves no record and no drop file (the controller re-read the orders)"
else
    not_ok "the call under the revoked order leaves no record" "$(li records --db "$LI_DB" 2>&1); $(ls "$DROP")"
fi
# Nothing about an unescrowed call is kept, not even its id; the escrow itself is audited.
LI_NEG="$(sed -n 's/^call \([0-9A-F]\{32\}\) connected .*/\1/p' "$tmp/li_mga.out" "$tmp/li_ra.out" | tr '\n' ' ')"
if "$CK_PY" - "$LI_DB" "$LI_CALL" $LI_NEG <<'PYEOF' >"$tmp/li_audit.out" 2>&1
import glob, sqlite3, sys
db, hit, others = sys.argv[1], sys.argv[2], sys.argv[3:]
assert len(others) == 2, "the two unescrowed calls' ids: %r" % others
data = b"".join(open(p, "rb").read() for p in glob.glob(db + "*"))
kept = [c for c in others if c.encode() in data]
assert not kept, "the database keeps the unescrowed calls %s" % kept
con = sqlite3.connect(db)
rows = con.execute("SELECT actor, detail FROM audit WHERE action = 'record.escrow'").fetchall()
assert rows == [("controller", "order 1 call " + hit)], "record.escrow audit rows: %r" % rows
print("audit: %r" % rows)
PYEOF
then
    ok "the intercept database keeps no trace of the unescrowed calls; its audit has the one escrow (actor controller)"
else
    not_ok "no trace of the unescrowed calls, one audited escrow" "$(cat "$tmp/li_audit.out")"
fi
stop_pair
ca_summary "CA's final counters: 3 calls connected, 1 escrowed" \
    "calls: started 3 connected 3 .* escrowed 1$"

# Retention: with escrow_retention = 1s a new record expires at once; the SIGHUP after it makes
# the controller purge it and its drop file, and only it (the first record is kept for 2 days).
expect_output "intercept add: order 4 on B's number, window around now" "^order 4 added$" \
    li add --db "$LI_DB" --number 5552001 --from $((NOW - 3600)) --until $((NOW + 86400)) \
    --authority "District Court X, order 18/2027" --cert "$tmp/lea/lea.pem" --actor "officer 7"
CA_CONF=("intercept_db = $LI_DB" "escrow_dir = $DROP" "escrow_retention = 1s")
start_pair ncs srtp-aes-cm
CA_CONF=()
callee li_tb && caller li_ta 5552001
check_call "call A -> B under order 4 (retention 1 s)" li_ta li_tb srtp-aes-cm sha1-aes128 ok
LI_T=$(sed -n 's/^call \([0-9A-F]\{32\}\) connected .*/\1/p' "$tmp/li_ta.out" | head -n 1)
if [ -n "$LI_T" ] && [ "$(li_count)" = 2 ] && [ -f "$DROP/4-$LI_T.p7m" ]; then
    ok "the call under order 4 is escrowed: a second record and drop file"
else
    not_ok "second record" "$(li records --db "$LI_DB" 2>&1); $(ls "$DROP")"
fi
sleep 1.2
kill -HUP "${CMS_PIDS[0]}"
if wait_file_grep "$tmp/ca.log" "intercept: retention purge: 1 record, 1 drop file removed" &&
    [ "$(li_count)" = 1 ] && [ ! -e "$DROP/4-$LI_T.p7m" ] && [ -f "$REC" ]; then
    ok "after its retention the controller purges the record and its drop file (SIGHUP), and keeps the unexpired one"
else
    not_ok "retention purge" "$(grep -E "retention|SIGHUP" "$tmp/ca.log" | tail -n 3); $(li records --db "$LI_DB" 2>&1); $(ls "$DROP")"
fi
stop_pair

stop_pair
if [ -z "$SAN_REPORTS" ]; then
    ok "both controllers stopped cleanly after every configuration (exit 0, no sanitizer report)"
else
    not_ok "controllers stopped cleanly" "$SAN_REPORTS"
fi
done_testing
