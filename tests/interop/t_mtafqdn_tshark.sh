#!/usr/bin/env bash
# MTA-FQDN on the wire (UDP 2246): tests/tools/mtafqdn_pcap writes the datagrams lib/provwire
# makes — a request (AP-REQ + KRB-SAFE) and cablekey-prov's reply (AP-REP + KRB-SAFE), a request
# for an unknown MAC and its Error Reply (type 3), a request under a key the server lacks and
# its bare KRB-ERROR — and Wireshark's PacketCable MTA-FQDN dissector (tshark) must decode them
# as pktc.mtafqdn with the fields checked (MAC, public-key hash, revocation time, FQDN, IPv4),
# with no malformed packet. A control capture (a Reply too short for its IPv4 address) must be
# flagged malformed, so the check cannot pass vacuously.
. "$(dirname "$0")/lib.sh"

require_tool "tshark (Wireshark)" tshark
PCAP_TOOL="$CK_BUILD/mtafqdn_pcap"
[ -x "$PCAP_TOOL" ] || bail "mtafqdn_pcap not built in $CK_BUILD (ninja -C $CK_BUILD mtafqdn_pcap)"

pcap="$tmp/mtafqdn.pcap"
ts() { tshark -n -r "$@" 2>"$tmp/tshark.err"; }

expect_success "mtafqdn_pcap writes request, reply, error reply and KRB-ERROR datagrams" \
    "$PCAP_TOOL" "$pcap"

n=$(ts "$pcap" | wc -l)
if [ "$n" -eq 6 ]; then ok "tshark reads 6 packets"; else not_ok "tshark reads 6 packets" "got $n: $(cat "$tmp/tshark.err")"; fi

# Every datagram is taken by the MTA-FQDN dissector on port 2246, named by its direction.
got=$(ts "$pcap" -T fields -E separator=' ' -e frame.protocols -e _ws.col.Info | sed 's/^raw:ip:udp://')
want="pktc.mtafqdn MTA FQDN Request
pktc.mtafqdn MTA FQDN Reply
pktc.mtafqdn MTA FQDN Request
pktc.mtafqdn MTA FQDN Error Reply
pktc.mtafqdn MTA FQDN Request
pktc.mtafqdn MTA FQDN Reply"
if [ "$got" = "$want" ]; then ok "each datagram decodes as PKTC MTA FQDN (Request / Reply / Error Reply)"
else not_ok "each datagram decodes as PKTC MTA FQDN (Request / Reply / Error Reply)" "got:
$got"; fi

# The payload header and the Kerberos messages around it, packet by packet.
got=$(ts "$pcap" -T fields -E separator=' ' -e pktc.mtafqdn.msgtype -e pktc.mtafqdn.enterprise \
      -e pktc.mtafqdn.version -e kerberos.msg_type)
want="1 4491 1 14,20
2 4491 1 15,20
1 4491 1 14,20
3 4491 1 15,20
1 4491 1 14,20
   "
if [ "$got" = "$want" ]; then ok "message type, enterprise 4491, version 1; AP-REQ/AP-REP + KRB-SAFE around them"
else not_ok "message type, enterprise 4491, version 1; AP-REQ/AP-REP + KRB-SAFE around them" "got:
$got"; fi

got=$(ts "$pcap" -Y 'pktc.mtafqdn.msgtype == 1' -T fields -E separator=' ' -e pktc.mtafqdn.mac \
      -e pktc.mtafqdn.pub_key_hash)
want="00:11:22:33:44:55 a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3
00:11:22:33:44:66 a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3
00:11:22:33:44:55 a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3"
if [ "$got" = "$want" ]; then ok "request fields: MTA MAC address, public-key hash"
else not_ok "request fields: MTA MAC address, public-key hash" "got:
$got"; fi

# Revocation time: 0 (not revoked) and 2025-12-02 00:00:00Z, in seconds since the epoch.
got=$(TZ=UTC ts "$pcap" -Y 'pktc.mtafqdn.msgtype == 1' -T fields -e pktc.mtafqdn.manu_cert_revoked)
if printf '%s\n' "$got" | sed -n 1p | grep -q '^Jan  1, 1970 00:00:0' &&
   printf '%s\n' "$got" | sed -n 2p | grep -q '^Dec  2, 2025 00:00:0'; then
    ok "request field: manufacturer-certificate revocation time (0 and 1764633600)"
else not_ok "request field: manufacturer-certificate revocation time (0 and 1764633600)" "got:
$got"; fi

got=$(ts "$pcap" -Y 'pktc.mtafqdn.msgtype == 2' -T fields -E separator=' ' -e pktc.mtafqdn.fqdn \
      -e pktc.mtafqdn.ip)
if [ "$got" = "mta-001122334455.mta.example.net 192.0.2.55" ]; then ok "reply fields: MTA FQDN, MTA IP address"
else not_ok "reply fields: MTA FQDN, MTA IP address" "got: $got"; fi

# The Error Reply's body (u32 code, text) is cablekey's: the KRB-SAFE user data shows it.
got=$(ts "$pcap" -Y 'pktc.mtafqdn.msgtype == 3' -T fields -e kerberos.user_data)
if [ "$got" = "030000118b0100000001756e6b6e6f776e20646576696365" ]; then
    ok "error reply: code 1 (unknown device) and its text in the KRB-SAFE user data"
else not_ok "error reply: code 1 (unknown device) and its text in the KRB-SAFE user data" "got: $got"; fi

# The refused AP-REQ's answer is a bare KRB-ERROR: Kerberos decodes it (error 31, the ticket
# did not decrypt) when told the port carries Kerberos.
got=$(ts "$pcap" -d udp.port==2246,kerberos -Y frame.number==6 -T fields -E separator=' ' \
      -e kerberos.msg_type -e kerberos.error_code)
if [ "$got" = "30 31" ]; then ok "the sixth datagram is a KRB-ERROR 31 (KRB_AP_ERR_BAD_INTEGRITY)"
else not_ok "the sixth datagram is a KRB-ERROR 31 (KRB_AP_ERR_BAD_INTEGRITY)" "got: $got"; fi

out=$(ts "$pcap" -Y '_ws.malformed'); rc=$?
if [ $rc -eq 0 ] && [ -z "$out" ]; then ok "no malformed packet"
else not_ok "no malformed packet" "tshark exit $rc: $out $(cat "$tmp/tshark.err")"; fi

# Negative control.
expect_success "mtafqdn_pcap writes the control capture" "$PCAP_TOOL" "$tmp/control.pcap" --control
n=$(ts "$tmp/control.pcap" -Y '_ws.malformed' | wc -l)
if [ "$n" -ge 1 ]; then ok "control: tshark flags a Reply too short for its address (the filter can fail)"
else not_ok "control: tshark flags a Reply too short for its address (the filter can fail)" "nothing flagged"; fi

done_testing
