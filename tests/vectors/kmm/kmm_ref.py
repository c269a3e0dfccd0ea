#!/usr/bin/env python3
"""Independent reference for cablekey's KMM key derivation (docs/PROTOCOL.md, "Key management").

Written from RFC 2246 section 5 and RFC 2104 with Python's hmac module only (no OpenSSL TLS1-PRF),
so that the vectors in docs/PROTOCOL.md and tests/unit/test_kmm_kdf.c do not come from the code
they test.

  kmm_ref.py vectors          print every vector of docs/PROTOCOL.md as "name hex" (key
                              management, call keys, then router AH keys and packet)
  kmm_ref.py check-hmacs      read "<kmmid> <doi> <hex>" lines (kmm_pcap --hex) on stdin and
                              check each HMAC under the fixed test keys; exit 1 on a mismatch
"""
import hashlib
import hmac
import sys


def p_sha1(secret, seed, n):
    out, a = b"", seed
    while len(out) < n:
        a = hmac.new(secret, a, hashlib.sha1).digest()
        out += hmac.new(secret, a + seed, hashlib.sha1).digest()
    return out[:n]


def prf(secret, label, seed, n):
    return p_sha1(secret, label.encode("ascii") + seed, n)


KS = bytes(range(0x00, 0x20))  # ticket session key (aes256 contents)
K = bytes(range(0x20, 0x40))   # AP-REP sub-key (aes256 contents)
SPI_C, SPI_S = 0x00001001, 0x00002002
ENGINE_ID = bytes.fromhex("8000118b03001122334455")

HMAC_LABELS = {
    "ap-request": (KS, "cablekey kmm ap-request hmac"),
    "ap-reply": (K, "cablekey kmm ap-reply hmac"),
    "sp-recovered": (K, "cablekey kmm sp-recovered hmac"),
    "rekey": (K, "cablekey kmm rekey hmac"),
}
# name: (enc_len, auth_len); IPsec per direction, SNMPv3 privKey/authKey.
IPSEC = {"sha1-aes128": (16, 20), "sha1-3des": (24, 20), "sha1-null": (0, 20),
         "md5-aes128": (16, 16), "md5-3des": (24, 16), "md5-null": (0, 16)}
SNMP = {"sha1-des": (16, 20), "sha1-null": (0, 20), "md5-des": (16, 16), "md5-null": (0, 16)}


def hmac_key(use):
    secret, label = HMAC_LABELS[use]
    return prf(secret, label, b"", 20)


def vectors():
    print("prf", prf(bytes(range(16)), "cablekey kmm test label", bytes(range(0xa0, 0xb0)), 64).hex())
    for use in HMAC_LABELS:
        print("hmac-key-" + use, hmac_key(use).hex())
    seed = SPI_C.to_bytes(4, "big") + SPI_S.to_bytes(4, "big")
    for name, (e, a) in IPSEC.items():
        block = prf(K, "cablekey kmm ipsec keys", seed, 2 * (e + a))
        parts = [block[0:e], block[e:e + a], block[e + a:2 * e + a], block[2 * e + a:]]
        for tag, p in zip(("enc_c2s", "auth_c2s", "enc_s2c", "auth_s2c"), parts):
            print("ipsec-%s-%s" % (name, tag), p.hex() if p else "-")
    for name, (e, a) in SNMP.items():
        block = prf(K, "cablekey kmm snmpv3 keys", ENGINE_ID, a + e)
        print("snmpv3-%s-auth" % name, block[:a].hex())
        print("snmpv3-%s-priv" % name, block[a:].hex() if e else "-")


# Call keys (docs/PROTOCOL.md, "Call keys"): K_call, the SPI the source controller chose, the
# call id of the signaling.
K_CALL = bytes(range(0x40, 0x60))
CALL_SPI = 0x0000c0de
CALL_ID = b"a1b2c3d4e5f6"
SRTP = {"aes-cm-128-hmac-sha1-80": (1, 16, 14), "aead-aes-128-gcm": (2, 16, 12)}


def be32(v):
    return v.to_bytes(4, "big")


def call_vectors():
    spi_seed = be32(CALL_SPI) + be32(CALL_SPI + 1)
    for name, (e, a) in IPSEC.items():
        block = prf(K_CALL, "cablekey call esp keys", spi_seed, 2 * (e + a))
        parts = [block[0:e], block[e:e + a], block[e + a:2 * e + a], block[2 * e + a:]]
        for tag, p in zip(("enc_sd", "auth_sd", "enc_ds", "auth_ds"), parts):
            print("call-esp-%s-%s" % (name, tag), p.hex() if p else "-")
    seq = prf(K_CALL, "cablekey call compat seq", spi_seed, 8)
    for tag, raw in (("sd", seq[:4]), ("ds", seq[4:])):
        print("call-compat-seq-%s" % tag, "%08x" % ((int.from_bytes(raw, "big") & 0x7fffffff) + 1))
    for name, (code, k, s) in SRTP.items():
        block = prf(K_CALL, "cablekey call srtp keys", be32(CALL_SPI) + bytes([code]), 2 * (k + s))
        parts = [block[0:k], block[k:k + s], block[k + s:2 * k + s], block[2 * k + s:]]
        for tag, p in zip(("key_sd", "salt_sd", "key_ds", "salt_ds"), parts):
            print("call-srtp-%s-%s" % (name, tag), p.hex())
    for mac in (0, 1):
        block = prf(K_CALL, "cablekey call rtp-3des keys", be32(CALL_SPI) + bytes([mac]),
                    48 + 40 * mac)
        tags = ("key_sd", "key_ds", "mac_sd", "mac_ds")[:2 + 2 * mac]
        for i, tag in enumerate(tags):
            off = 24 * min(i, 2) + 20 * max(i - 2, 0)
            print("call-3des-mac%d-%s" % (mac, tag), block[off:off + (24 if i < 2 else 20)].hex())
    ack_key = prf(K_CALL, "cablekey call ack", b"", 20)
    print("call-ack-key", ack_key.hex())
    for role, code in (("destination", 1), ("source", 2)):
        msg = bytes([code]) + be32(CALL_SPI) + bytes([len(CALL_ID)]) + CALL_ID
        print("call-ack-%s" % role, hmac.new(ack_key, msg, hashlib.sha1).digest().hex())


# Router address authentication (docs/PROTOCOL.md, "Router address authentication"): AH keys
# from the AP Reply sub-key K above, and the ICV of one AH packet built here byte by byte from
# RFC 791 and RFC 4302 (mutable IPv4 fields zeroed, ICV field zeroed, HMAC-SHA-1 cut to 12).
AH_SPI_DEVICE, AH_SPI_ROUTER = 0x00001001, 0x00002002
AH_PAYLOAD = bytes.fromhex("d4310009000c0000") + b"ping"   # UDP 54321 -> 9, 12 bytes, csum 0


def ah_keys():
    block = prf(K, "cablekey router ah keys", be32(AH_SPI_DEVICE) + be32(AH_SPI_ROUTER), 40)
    return block[:20], block[20:]


def ah_packet(key, spi, seq, src, dst, ident, ttl, tos):
    total = 20 + 24 + len(AH_PAYLOAD)
    ip = bytes([0x45, tos]) + total.to_bytes(2, "big") + ident.to_bytes(2, "big") + \
        b"\x00\x00" + bytes([ttl, 51]) + b"\x00\x00" + bytes(src) + bytes(dst)
    ah = bytes([17, 4, 0, 0]) + be32(spi) + be32(seq)
    mutable_zeroed = bytes([0x45, 0]) + ip[2:6] + b"\x00\x00" + bytes([0, 51]) + b"\x00\x00" + ip[12:]
    icv = hmac.new(key, mutable_zeroed + ah + bytes(12) + AH_PAYLOAD, hashlib.sha1).digest()[:12]
    s = sum(int.from_bytes(ip[i:i + 2], "big") for i in range(0, 20, 2))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    ip = ip[:10] + (~s & 0xffff).to_bytes(2, "big") + ip[12:]
    return ip + ah + icv + AH_PAYLOAD


def ah6_packet(key, spi, seq, src, dst, hop):
    plen = 24 + len(AH_PAYLOAD)
    ip = bytes([0x60, 0, 0, 0]) + plen.to_bytes(2, "big") + bytes([51, hop]) + src + dst
    ah = bytes([17, 4, 0, 0]) + be32(spi) + be32(seq)
    mutable_zeroed = bytes([0x60, 0, 0, 0]) + ip[4:7] + b"\x00" + ip[8:]
    icv = hmac.new(key, mutable_zeroed + ah + bytes(12) + AH_PAYLOAD, hashlib.sha1).digest()[:12]
    return ip + ah + icv + AH_PAYLOAD


def ah_vectors():
    d2r, r2d = ah_keys()
    print("ah-key-d2r", d2r.hex())
    print("ah-key-r2d", r2d.hex())
    pkt = ah_packet(d2r, AH_SPI_ROUTER, 1, (10, 77, 1, 2), (10, 77, 1, 1), 0x1234, 64, 0)
    print("ah-packet", pkt.hex())
    print("ah-icv", pkt[32:44].hex())
    pkt6 = ah6_packet(d2r, AH_SPI_ROUTER, 1, bytes.fromhex("20010db8000000000000000000000002"),
                      bytes.fromhex("20010db8000000000000000000000001"), 64)
    print("ah6-packet", pkt6.hex())
    print("ah6-icv", pkt6[52:64].hex())


def check_hmacs():
    keys = {2: hmac_key("ap-request"), 3: hmac_key("ap-reply"), 5: hmac_key("rekey")}
    spr_key, last_rep, n, bad = hmac_key("sp-recovered"), None, 0, 0
    for line in sys.stdin:
        kmmid, doi, hexmsg = line.split()
        msg, kmmid = bytes.fromhex(hexmsg), int(kmmid)
        if kmmid in keys:
            want = hmac.new(keys[kmmid], msg[:-20], hashlib.sha1).digest()
        elif kmmid == 4:
            want = hmac.new(spr_key, msg[:3] + last_rep, hashlib.sha1).digest()
        else:
            continue
        if kmmid == 3:
            last_rep = msg[-20:]
        n += 1
        if not hmac.compare_digest(want, msg[-20:]):
            bad += 1
            print("HMAC mismatch: KMMID %d DOI %s" % (kmmid, doi))
    print("%d HMACs checked, %d bad" % (n, bad))
    return 0 if n > 0 and bad == 0 else 1


if __name__ == "__main__":
    if sys.argv[1:] == ["vectors"]:
        vectors()
        call_vectors()
        ah_vectors()
    elif sys.argv[1:] == ["check-hmacs"]:
        sys.exit(check_hmacs())
    else:
        sys.exit(__doc__)
