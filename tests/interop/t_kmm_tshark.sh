#!/usr/bin/env bash
# PacketCable key management on the wire: tests/tools/kmm_pcap writes every KMM message x DOI
# (built by lib/kmm around real Kerberos AP-REQ / AP-REP / KRB-ERROR messages, HMACs sealed) into
# a pcap, and Wireshark's pktc dissector (tshark) must decode each one as PKTC with the Kerberos
# blob inside as Kerberos, with no malformed packet and no expert info. A control capture (a
# Rekey relabelled as DOI SNMPv3, which the protocol does not define) must be flagged, so the
# checks cannot pass vacuously. The HMACs are also recomputed by the independent Python reference
# (tests/vectors/kmm/kmm_ref.py).
. "$(dirname "$0")/lib.sh"

require_tool "tshark (Wireshark)" tshark
require_tool "python3" "$CK_PY"
KMM_PCAP="$CK_BUILD/kmm_pcap"
REF="$CK_INTEROP_DIR/../vectors/kmm/kmm_ref.py"
[ -x "$KMM_PCAP" ] || bail "kmm_pcap not built in $CK_BUILD (ninja -C $CK_BUILD kmm_pcap)"

pcap="$tmp/kmm.pcap"
ts() { tshark -n -r "$@" 2>"$tmp/tshark.err"; }

expect_success "kmm_pcap writes every KMM message x DOI" "$KMM_PCAP" "$pcap" --hex
cp "$tmp/last.out" "$tmp/kmm.hex"

n=$(ts "$pcap" | wc -l)
if [ "$n" -eq 11 ]; then ok "tshark reads 11 packets"; else not_ok "tshark reads 11 packets" "got $n: $(cat "$tmp/tshark.err")"; fi

n=$(ts "$pcap" -Y 'pktc && pktc.kmmid && pktc.doi && pktc.version.major == 1' | wc -l)
if [ "$n" -eq 11 ]; then ok "every packet decodes as pktc (kmmid, doi, version 1)"
else not_ok "every packet decodes as pktc (kmmid, doi, version 1)" "got $n"; fi

# KMMID, DOI and the Kerberos message type, packet by packet.
want="0x01 1 
0x02 1 14
0x03 1 15
0x04 1 
0x05 1 
0x06 1 30
0x01 2 
0x02 2 14
0x03 2 15
0x04 2 
0x06 2 30"
got=$(ts "$pcap" -T fields -E separator=' ' -e pktc.kmmid -e pktc.doi -e kerberos.msg_type)
if [ "$got" = "$want" ]; then ok "KMMID/DOI of each packet, Kerberos blobs decode as msg-type 14/15/30"
else not_ok "KMMID/DOI of each packet, Kerberos blobs decode as msg-type 14/15/30" "got:
$got"; fi

out=$(ts "$pcap" -Y '_ws.malformed || _ws.expert'); rc=$?
if [ $rc -eq 0 ] && [ -z "$out" ]; then ok "no malformed packet, no expert info"
else not_ok "no malformed packet, no expert info" "tshark exit $rc: $out $(cat "$tmp/tshark.err")"; fi

# The dissector consumed each message to its end: the HMAC it shows is the datagram's last 20
# bytes (a codec that wrote a field too many or too few would shift it).
bad=0; cnt=0
while read -r hm payload; do
    [ -n "$hm" ] || continue
    cnt=$((cnt + 1))
    [ "${payload: -40}" = "${hm//:/}" ] || bad=$((bad + 1))
done < <(ts "$pcap" -Y pktc.sha1_hmac -T fields -E separator=' ' -e pktc.sha1_hmac -e udp.payload)
if [ "$cnt" -eq 7 ] && [ "$bad" -eq 0 ]; then ok "pktc.sha1_hmac is the last 20 bytes of each of the 7 HMAC-bearing messages"
else not_ok "pktc.sha1_hmac is the last 20 bytes of each of the 7 HMAC-bearing messages" "$cnt seen, $bad wrong"; fi

# Field values as the dissector reads them.
got=$(ts "$pcap" -Y 'pktc.kmmid == 0x05' -T fields -E separator=' ' -e pktc.server_nonce \
      -e pktc.server_principal -e pktc.timestamp -e pktc.asd.ipsec_spi -e pktc.spl -e pktc.grace_period)
if [ "$got" = "0x5a17c0de cms/cms1.example.net@EXAMPLE.NET 251202000000Z 0x00002002 3600 600" ]; then
    ok "Rekey fields (nonce, principal, timestamp, SPI, lifetime, grace)"
else not_ok "Rekey fields (nonce, principal, timestamp, SPI, lifetime, grace)" "got: $got"; fi
got=$(ts "$pcap" -Y 'pktc.kmmid == 0x03 && pktc.doi == 2' -T fields -E separator=' ' \
      -e pktc.asd.snmp_engine_id -e pktc.asd.snmp_usm_username -e pktc.asd.snmp_auth_alg \
      -e pktc.asd.snmp_enc_alg -e pktc.ack_required)
if [ "$got" = "8000118b03001122334455 MTA-Prov-Admin 0x22 0x21 1" ]; then
    ok "SNMPv3 AP Reply fields (engine ID, user, suite, ACK-required)"
else not_ok "SNMPv3 AP Reply fields (engine ID, user, suite, ACK-required)" "got: $got"; fi

if "$CK_PY" "$REF" check-hmacs <"$tmp/kmm.hex" >"$tmp/ref.out" 2>&1 && grep -q '^7 HMACs checked, 0 bad' "$tmp/ref.out"; then
    ok "the 7 HMACs verify under the independent Python reference"
else not_ok "the 7 HMACs verify under the independent Python reference" "$(cat "$tmp/ref.out")"; fi

# Negative control: the same checks flag an undefined KMMID/DOI pair.
expect_success "kmm_pcap writes the control capture" "$KMM_PCAP" "$tmp/control.pcap" --control
n=$(ts "$tmp/control.pcap" -Y '_ws.malformed || _ws.expert' | wc -l)
if [ "$n" -ge 1 ]; then ok "control: tshark flags a Rekey with DOI SNMPv3 (the filter can fail)"
else not_ok "control: tshark flags a Rekey with DOI SNMPv3 (the filter can fail)" "nothing flagged"; fi

done_testing
