#!/usr/bin/env bash
# Protected signaling on the wire: tests/tools/esp_pcap writes lib/esp packets (RFC 4303 ESP in
# RFC 3948 UDP framing, an inner UDP header 2427 <-> 2727 and MGCP text: RSIP / 200 / RQNT / 200 /
# NTFY / 200 under each of AES-128-CBC, 3DES-CBC and NULL with HMAC-SHA-1-96 and HMAC-MD5-96) on UDP
# port 14500, and the esp_sa records (ck_esp_wireshark_sa_format) that hold their keys. Wireshark
# is an independent ESP implementation: told the port is udpencap, tshark must see ESP in every
# packet; given the records, it must find every ICV good and decrypt each packet to the expected
# UDP ports, MGCP verb and transaction id, with no malformed packet and no expert warning; without
# them, no MGCP may be visible (and the raw bytes of encrypted packets hold no text). Controls: a
# wrong authentication key makes every ICV check fail, a wrong encryption key hides the MGCP of
# the encrypted suites, so the checks can fail.
. "$(dirname "$0")/lib.sh"

require_tool "tshark (Wireshark)" tshark
ESP_PCAP="$CK_BUILD/esp_pcap"
[ -x "$ESP_PCAP" ] || bail "esp_pcap not built in $CK_BUILD (ninja -C $CK_BUILD esp_pcap)"

PORT=14500
NPKT=36
pcap="$tmp/esp.pcap"
sa="$tmp/esp_sa"
# SPIs (esp_pcap's layout: suite s = 0..5, AES/3DES/NULL x SHA1/MD5; MTA->CMS 0x10s1, back 0x10s2).
SPI_ENC="0x00001001 0x00001002 0x00001011 0x00001012 0x00001021 0x00001022 0x00001031 0x00001032"
SPI_NULL="0x00001041 0x00001042 0x00001051 0x00001052"

# A private Wireshark configuration: the esp_sa table is the one file in it (or none), never the
# user's own profile.
profile() { # profile NAME [SA_FILE]: prints the XDG_CONFIG_HOME to use
    mkdir -p "$tmp/$1/wireshark" "$tmp/$1/home"
    [ -z "${2:-}" ] || cp "$2" "$tmp/$1/wireshark/esp_sa"
    echo "$tmp/$1"
}
# ts CONFIG_HOME tshark-args...: reads the capture with our port as udpencap and ESP decryption
# and ICV checking on (they only act for SAs the profile knows).
ts() {
    local cfg=$1; shift
    HOME="$cfg/home" XDG_CONFIG_HOME="$cfg" tshark -n -r "$pcap" -d "udp.port==$PORT,udpencap" \
        -o esp.enable_encryption_decode:TRUE -o esp.enable_authentication_check:TRUE \
        -o esp.enable_null_encryption_decode_heuristic:FALSE "$@" 2>"$tmp/tshark.err"
}
in_list() { case " $2 " in *" $1 "*) return 0 ;; esac; return 1; }

expect_output "esp_pcap writes $NPKT packets and 12 SA records" "^esp_pcap: $NPKT packets, 12 SAs" \
    "$ESP_PCAP" "$pcap" "$sa"

mode=$(stat -c %a "$sa" 2>/dev/null)
if [ "$mode" = 600 ]; then ok "the esp_sa file (keys) is 0600"; else not_ok "the esp_sa file (keys) is 0600" "mode $mode"; fi

# One record per SA, Wireshark's labels, keys of the transform's length.
re_enc='"AES-CBC \[RFC3602\]","0x[0-9a-f]{32}"|"TripleDES-CBC \[RFC2451\]","0x[0-9a-f]{48}"|"NULL",""'
re_auth='"HMAC-SHA-1-96 \[RFC2404\]","0x[0-9a-f]{40}"|"HMAC-MD5-96 \[RFC2403\]","0x[0-9a-f]{32}"'
re="^\"IPv4\",\"10\\.0\\.0\\.[12]\",\"10\\.0\\.0\\.[12]\",\"0x[0-9a-f]{8}\",($re_enc),($re_auth)\$"
n=$(grep -Ec "$re" "$sa"); total=$(wc -l <"$sa")
if [ "$n" -eq 12 ] && [ "$total" -eq 12 ]; then ok "12 esp_sa records in Wireshark's format"
else not_ok "12 esp_sa records in Wireshark's format" "$n of $total lines match:
$(sed -E 's/0x[0-9a-f]+/0x.../g' "$sa")"; fi

nokeys=$(profile nokeys)
keys=$(profile keys "$sa")

n=$(HOME="$nokeys/home" XDG_CONFIG_HOME="$nokeys" tshark -n -r "$pcap" 2>"$tmp/tshark.err" | wc -l)
m=$(HOME="$nokeys/home" XDG_CONFIG_HOME="$nokeys" tshark -n -r "$pcap" -Y esp 2>>"$tmp/tshark.err" | wc -l)
if [ "$n" -eq $NPKT ] && [ "$m" -eq 0 ]; then ok "tshark reads $NPKT packets, none ESP without -d (port $PORT is not 4500)"
else not_ok "tshark reads $NPKT packets, none ESP without -d (port $PORT is not 4500)" "$n packets, $m ESP: $(cat "$tmp/tshark.err")"; fi

# ---- Without the keys: ESP, and nothing of the signaling.
n=$(ts "$nokeys" -Y "esp.spi && esp.sequence && udp.port == $PORT" | wc -l)
if [ "$n" -eq $NPKT ]; then ok "with -d udp.port==$PORT,udpencap every packet decodes as ESP"
else not_ok "with -d udp.port==$PORT,udpencap every packet decodes as ESP" "$n of $NPKT: $(cat "$tmp/tshark.err")"; fi

got=$(ts "$nokeys" -T fields -e esp.spi -e esp.sequence | tr '\t' ' ' | sort | uniq -c | awk '{print $1}' | sort -u | tr '\n' ' ')
spis=$(ts "$nokeys" -T fields -e esp.spi | sort -u | tr '\n' ' ')
if [ "$got" = "1 " ] && [ "$spis" = "$(echo $SPI_ENC $SPI_NULL | tr ' ' '\n' | sort | tr '\n' ' ')" ]; then
    ok "12 SPIs, each (SPI, sequence number) once"
else not_ok "12 SPIs, each (SPI, sequence number) once" "counts: $got; SPIs: $spis: $(cat "$tmp/tshark.err")"; fi

n=$(ts "$nokeys" -Y 'mgcp || udp.port == 2427 || udp.port == 2727 || esp.decrypted_data' | wc -l)
if [ "$n" -eq 0 ]; then ok "without the keys no MGCP, no inner UDP, nothing decrypted"
else not_ok "without the keys no MGCP, no inner UDP, nothing decrypted" "$n packets show it: $(cat "$tmp/tshark.err")"; fi

# The raw bytes: the text of the encrypted suites' packets is not there; the NULL suites carry
# theirs in the clear by design (RFC 4303 NULL encryption), which also shows the search works.
enc_bad=0; null_seen=0; cnt=0
while read -r spi payload; do
    [ -n "$spi" ] || continue
    cnt=$((cnt + 1))
    # RSIP RQNT NTFY MGCP aaln " OK\r\n"
    if printf '%s' "$payload" | grep -Eq '52534950|52514e54|4e544659|4d474350|61616c6e|204f4b0d0a'; then
        if in_list "$spi" "$SPI_NULL"; then null_seen=$((null_seen + 1)); else enc_bad=$((enc_bad + 1)); fi
    fi
done < <(ts "$nokeys" -T fields -e esp.spi -e udp.payload)
if [ "$cnt" -eq $NPKT ] && [ "$enc_bad" -eq 0 ] && [ "$null_seen" -eq 12 ]; then
    ok "no MGCP text in the 24 encrypted packets' bytes (and in all 12 NULL ones)"
else not_ok "no MGCP text in the 24 encrypted packets' bytes (and in all 12 NULL ones)" \
    "$cnt packets; text in $enc_bad encrypted, $null_seen NULL: $(cat "$tmp/tshark.err")"; fi
n=$(grep -ao RSIP "$pcap" | wc -l)
if [ "$n" -eq 2 ]; then ok "\"RSIP\" occurs in the pcap file only twice (the two NULL suites' RSIP)"
else not_ok "\"RSIP\" occurs in the pcap file only twice (the two NULL suites' RSIP)" "$n times"; fi

# ---- With the keys: every packet, field by field.
want=""
for s in 0 1 2 3 4 5; do
    up=$(printf '0x%08x' $((0x1001 + 16 * s))); down=$(printf '0x%08x' $((0x1002 + 16 * s)))
    b=$((1000 * (s + 1)))
    mta="40002,2427|14500,2727"; cms="14500,2727|40002,2427"; ep="aaln/1@mta1.example.net"
    want+="$up|1|0|$mta|RSIP|$((b + 1))||$ep
$down|1|0|$cms||$((b + 1))|200|
$down|1|0|$cms|RQNT|$((b + 2))||$ep
$up|1|0|$mta||$((b + 2))|200|
$up|1|0|$mta|NTFY|$((b + 3))||$ep
$down|1|0|$cms||$((b + 3))|200|
"
done
got=$(ts "$keys" -T fields -E separator='|' -e esp.spi -e esp.icv_good -e esp.icv_bad \
      -e udp.srcport -e udp.dstport -e mgcp.req.verb -e mgcp.transid -e mgcp.rsp.rspcode \
      -e mgcp.req.endpoint)
if [ "$got" = "${want%$'\n'}" ]; then
    ok "with the keys: every ICV good, inner UDP 2427/2727, MGCP verb/txid/code of each packet"
else not_ok "with the keys: every ICV good, inner UDP 2427/2727, MGCP verb/txid/code of each packet" \
    "$(diff <(printf '%s\n' "${want%$'\n'}") <(printf '%s\n' "$got")) $(cat "$tmp/tshark.err")"; fi

# Both booleans are present in every checked packet: compare values, not presence.
n=$(ts "$keys" -Y 'esp.icv_good == 1 && esp.icv_bad == 0' | wc -l)
m=$(ts "$keys" -Y 'esp.icv_bad == 1 || !esp.icv_good' | wc -l)
if [ "$n" -eq $NPKT ] && [ "$m" -eq 0 ]; then ok "esp.icv_good in all $NPKT packets, esp.icv_bad in none"
else not_ok "esp.icv_good in all $NPKT packets, esp.icv_bad in none" "good $n, bad $m: $(cat "$tmp/tshark.err")"; fi

# MGCP parameters, and every 200 matched to its request (the dissector's transaction tracking).
# (X is a00<suite>, the reqframe is checked below: both are masked before counting.)
got=$(ts "$keys" -Y mgcp -T fields -E separator='|' -e mgcp.req.verb -e mgcp.version \
      -e mgcp.param.restartmethod -e mgcp.param.requestid -e mgcp.param.reqevents \
      -e mgcp.param.observedevents -e mgcp.rsp.rspstring -e mgcp.reqframe |
      sed -E 's/\|a00[0-5]\|/|a00X|/; s/\|OK\|[0-9]+$/|OK|/' | sort | uniq -c | awk '{$1=$1; print}' | sort)
want="18 ||||||OK|
6 NTFY|MGCP 1.0 NCS 1.0||a00X||hd||
6 RQNT|MGCP 1.0 NCS 1.0||a00X|hd|||
6 RSIP|MGCP 1.0 NCS 1.0|restart|||||"
want=$(printf '%s\n' "$want" | sort)
frames=$(ts "$keys" -Y 'mgcp.rsp' -T fields -E separator=' ' -e frame.number -e mgcp.reqframe |
         awk '$2 != $1 - 1' | wc -l)
if [ "$got" = "$want" ] && [ "$frames" -eq 0 ]; then
    ok "MGCP headers (RM restart, X, R/O hd), each 200 answers the packet before it"
else not_ok "MGCP headers (RM restart, X, R/O hd), each 200 answers the packet before it" \
    "got:
$got
unmatched responses: $frames $(cat "$tmp/tshark.err")"; fi

out=$(ts "$keys" -Y '_ws.malformed || _ws.expert.severity >= 0x00600000'); rc=$?
if [ $rc -eq 0 ] && [ -z "$out" ]; then ok "no malformed packet, no expert info at warning level or above"
else not_ok "no malformed packet, no expert info at warning level or above" "tshark exit $rc: $out $(cat "$tmp/tshark.err")"; fi

# ---- Controls: the checks above can fail.
# One hex digit changed in every authentication key.
awk -F'","' 'BEGIN { OFS = "\",\"" }
    { k = $8; c = substr(k, length(k) - 1, 1); $8 = substr(k, 1, length(k) - 2) (c == "0" ? "1" : "0") "\""; print }' \
    "$sa" >"$tmp/esp_sa.badauth"
badauth=$(profile badauth "$tmp/esp_sa.badauth")
n=$(ts "$badauth" -Y 'esp.icv_bad == 1 && esp.icv_good == 0' | wc -l)
m=$(ts "$badauth" -Y 'esp.icv_good == 1' | wc -l)
if [ "$n" -eq $NPKT ] && [ "$m" -eq 0 ] && ! cmp -s "$sa" "$tmp/esp_sa.badauth"; then
    ok "control: a wrong authentication key fails the ICV check of all $NPKT packets"
else not_ok "control: a wrong authentication key fails the ICV check of all $NPKT packets" "bad $n, good $m: $(cat "$tmp/tshark.err")"; fi

# The first hex digit changed in every encryption key (the NULL records have none): a high
# nibble, since DES ignores the low bit of each key byte (parity) and 3DES would not notice.
awk -F'","' 'BEGIN { OFS = "\",\"" }
    $6 != "" { k = $6; c = substr(k, 3, 1); $6 = "0x" (c == "0" ? "8" : "0") substr(k, 4) }
    { print }' "$sa" >"$tmp/esp_sa.badenc"
badenc=$(profile badenc "$tmp/esp_sa.badenc")
spis=$(ts "$badenc" -Y 'mgcp' -T fields -e esp.spi | sort -u | tr '\n' ' ')
n=$(ts "$badenc" -Y 'mgcp' | wc -l)
if [ "$n" -eq 12 ] && [ "$spis" = "$(echo $SPI_NULL | tr ' ' '\n' | sort | tr '\n' ' ')" ]; then
    ok "control: a wrong encryption key hides the MGCP of the 24 encrypted packets"
else not_ok "control: a wrong encryption key hides the MGCP of the 24 encrypted packets" "$n MGCP packets, SPIs $spis: $(cat "$tmp/tshark.err")"; fi

done_testing
