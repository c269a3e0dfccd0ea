#!/usr/bin/env python3
"""krbpkt.py — raw Kerberos packets for the interop tests (test code only, stdlib only).

Subcommands
  send --kdc HOST:PORT [--base FILE] [--realm R] [--cname C] [--wait S] CASE...
        Builds or mutates a packet for each CASE, sends it (UDP, or TCP for tcp-* cases) and prints
        one line per case: "CASE RESULT", RESULT being one of
            noreply                       nothing came back within --wait seconds (UDP)
            closed                        the TCP peer closed without answering
            error CODE [etext=..] [etype-info2=E:SALT,..]   a KRB-ERROR (first byte 0x7e)
            as-rep | tgs-rep              a reply of that type
            other 0xNN LEN                anything else (a test failure in every case)
        --base is an AS-REQ captured from a real client (see relay); without it a built AS-REQ
        is the base. "krbpkt.py send --kdc X:1 list" lists the cases.
  flood --kdc HOST:PORT [--count N] [--seed S]
        Sends N random datagrams (some with Kerberos-looking first bytes) as fast as possible.
  relay --kdc HOST:PORT --port-file F --save-dir D [--timeout S]
        UDP relay on 127.0.0.1:<free port> (written to F) between a client and the KDC; saves
        every request as D/req-N.bin and every reply as D/rep-N.bin.
  inetd --listen HOST:PORT --ready FILE [--timeout S] -- CMD...
        Accepts one TCP connection on loopback and runs CMD with the socket as stdin/stdout
        (to run gss-server -inetd on 127.0.0.1 only).
"""

import argparse
import os
import random
import select
import socket
import struct
import subprocess
import sys
import time

# --------------------------------------------------------------------------------------------
# A tiny DER writer


def der_len(n):
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def tlv(tag, content):
    return bytes([tag]) + der_len(len(content)) + content


def ctx(n, content):  # [n] EXPLICIT, constructed
    return tlv(0xA0 | n, content)


def app(n, content):  # [APPLICATION n], constructed
    return tlv(0x60 | n, content)


def seq(*items):
    return tlv(0x30, b"".join(items))


def integer(v):
    n = max(1, (v.bit_length() + 8) // 8)
    return tlv(0x02, v.to_bytes(n, "big", signed=True))


def gstr(s):  # KerberosString / Realm: GeneralString
    return tlv(0x1B, s.encode())


def octets(b):
    return tlv(0x04, b)


def ktime(t):
    return tlv(0x18, time.strftime("%Y%m%d%H%M%SZ", time.gmtime(t)).encode())


def kdc_options(bits=0x40810010):  # forwardable, renewable, canonicalize, renewable-ok
    return tlv(0x03, b"\x00" + struct.pack(">I", bits))


def principal(name_type, *comps):
    return seq(ctx(0, integer(name_type)), ctx(1, seq(*[gstr(c) for c in comps])))


def build_as_req(realm, cname, *, till=True, etypes=(18, 17, 20, 19), cname_present=True,
                 sname_present=True, optional=False, realm_present=True):
    """An AS-REQ for cname@realm -> krbtgt/realm. optional=True adds from, rtime, addresses and
    a PA-PAC-REQUEST padata; etypes=None leaves the (mandatory) etype field out."""
    now = int(time.time())
    body = [ctx(0, kdc_options())]
    if cname_present:
        body.append(ctx(1, principal(1, cname)))
    if realm_present:
        body.append(ctx(2, gstr(realm)))
    if sname_present:
        body.append(ctx(3, principal(2, "krbtgt", realm)))
    if optional:
        body.append(ctx(4, ktime(now)))
    if till:
        body.append(ctx(5, ktime(now + 36000)))
    if optional:
        body.append(ctx(6, ktime(now + 86400)))
    body.append(ctx(7, integer(random.randint(1, 2**31 - 1))))
    if etypes is not None:
        body.append(ctx(8, seq(*[integer(e) for e in etypes])))
    if optional:
        addr = seq(ctx(0, integer(2)), ctx(1, octets(bytes([127, 0, 0, 1]))))
        body.append(ctx(9, seq(addr)))
    req = [ctx(1, integer(5)), ctx(2, integer(10))]
    if optional:
        pac_req = seq(ctx(0, tlv(0x01, b"\xff")))  # KERB-PA-PAC-REQUEST include-pac TRUE
        req.append(ctx(3, seq(seq(ctx(1, integer(128)), ctx(2, octets(pac_req))))))
    req.append(ctx(4, seq(*body)))
    return app(10, seq(*req))


# --------------------------------------------------------------------------------------------
# A tiny DER reader (just enough for KRB-ERROR, METHOD-DATA and ETYPE-INFO2)


class DerError(Exception):
    pass


def der_read(buf, pos=0):
    """Returns (tag, content, next_pos) of the TLV at pos."""
    if pos + 2 > len(buf):
        raise DerError("short header")
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise DerError("high tag number")
    n = buf[pos + 1]
    pos += 2
    if n & 0x80:
        k = n & 0x7F
        if k == 0 or k > 4 or pos + k > len(buf):
            raise DerError("bad length")
        n = int.from_bytes(buf[pos:pos + k], "big")
        pos += k
    if pos + n > len(buf):
        raise DerError("content past end")
    return tag, buf[pos:pos + n], pos + n


def der_items(content):
    pos, out = 0, []
    while pos < len(content):
        tag, c, pos = der_read(content, pos)
        out.append((tag, c))
    return out


def der_int(content):
    tag, c, _ = der_read(content)
    if tag != 0x02:
        raise DerError("not an INTEGER")
    return int.from_bytes(c, "big", signed=True)


def parse_krb_error(msg):
    tag, body, _ = der_read(msg)
    if tag != 0x7E:
        raise DerError("not a KRB-ERROR")
    tag, sq, _ = der_read(body)
    if tag != 0x30:
        raise DerError("KRB-ERROR body is not a SEQUENCE")
    fields = {t & 0x1F: c for t, c in der_items(sq) if t & 0xE0 == 0xA0}
    if 6 not in fields:
        raise DerError("KRB-ERROR without error-code")
    res = {"code": der_int(fields[6])}
    if 11 in fields:
        res["etext"] = der_read(fields[11])[1].decode("utf-8", "replace")
    if 12 in fields:
        res["edata"] = der_read(fields[12])[1]
    return res


def parse_etype_info2(edata):
    """METHOD-DATA -> list of (etype, salt) from PA-ETYPE-INFO2 (19); None if absent."""
    tag, sq, _ = der_read(edata)
    if tag != 0x30:
        raise DerError("METHOD-DATA is not a SEQUENCE")
    for t, pa in der_items(sq):
        f = {tt & 0x1F: c for tt, c in der_items(pa)}
        if der_int(f[1]) != 19:
            continue
        val = der_read(f[2])[1]
        out = []
        for _t, entry in der_items(der_read(val)[1]):
            e = {tt & 0x1F: c for tt, c in der_items(entry)}
            salt = der_read(e[1])[1].decode("utf-8", "replace") if 1 in e else "-"
            out.append((der_int(e[0]), salt))
        return out
    return None


def describe(reply):
    if not reply:
        return "empty-reply"
    first = reply[0]
    if first == 0x7E:
        try:
            err = parse_krb_error(reply)
        except DerError as e:
            return "bad-krb-error %s" % e
        s = "error %d" % err["code"]
        if "etext" in err:
            s += " etext=%s" % err["etext"].replace(" ", "_")
        if err["code"] == 25 and "edata" in err:
            try:
                info = parse_etype_info2(err["edata"])
                if info is not None:
                    s += " etype-info2=" + ",".join("%d:%s" % x for x in info)
            except (DerError, KeyError) as e:
                s += " bad-method-data(%s)" % e
        return s
    if first == 0x6B:
        return "as-rep"
    if first == 0x6D:
        return "tgs-rep"
    return "other 0x%02x %d" % (first, len(reply))


# --------------------------------------------------------------------------------------------
# Transport


def addr_of(s):
    host, port = s.rsplit(":", 1)
    host = host.strip("[]")
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    return fam, (host, int(port))


def udp_exchange(kdc, payload, wait):
    fam, addr = addr_of(kdc)
    with socket.socket(fam, socket.SOCK_DGRAM) as s:
        s.connect(addr)
        s.send(payload)
        r, _, _ = select.select([s], [], [], wait)
        if not r:
            return "noreply"
        try:
            return describe(s.recv(65536))
        except ConnectionRefusedError:
            return "refused"


def tcp_exchange(kdc, raw, wait, shut=False):
    """Sends raw bytes (already framed) on a new connection, returns the described answer."""
    fam, addr = addr_of(kdc)
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.settimeout(wait)
        s.connect(addr)
        try:
            s.sendall(raw)
            if shut:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            return "closed"
        buf = b""
        deadline = time.time() + wait
        while True:
            left = deadline - time.time()
            if left <= 0:
                return "noreply" if not buf else "partial %d" % len(buf)
            s.settimeout(left)
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                return "closed" if not buf else "partial %d" % len(buf)
            if not chunk:
                return "closed" if not buf else "partial %d" % len(buf)
            buf += chunk
            if len(buf) >= 4:
                n = struct.unpack(">I", buf[:4])[0]
                if len(buf) >= 4 + n:
                    return describe(buf[4:4 + n])


def frame(msg):
    return struct.pack(">I", len(msg)) + msg


# --------------------------------------------------------------------------------------------
# Cases


def deep_nest(depth):
    inner = b""
    for _ in range(depth):
        inner = tlv(0x30, inner)
    return app(10, inner)


def make_cases(base, realm, cname, rng):
    n = len(base)
    body_off = 2 if base[1] < 0x80 else 2 + (base[1] & 0x7F)
    udp = {
        "valid": base,
        "trunc-1": base[:1],
        "trunc-2": base[:2],
        "trunc-10": base[:10],
        "trunc-half": base[:n // 2],
        "trunc-last": base[:n - 1],
        "trailing-garbage": base + b"\x00\x01\x02\x03",
        "tag-sequence": b"\x30" + base[1:],       # wrong outer tag: a bare SEQUENCE
        "tag-ap-req": b"\x6e" + base[1:],         # AP-REQ application tag, AS-REQ content
        "tag-as-rep": b"\x6b" + base[1:],         # a reply type sent to the KDC
        "tag-unknown-app": b"\x7f\x45" + base[1:],  # high-tag-number application tag
        "absurd-length": b"\x6a\x84\xff\xff\xff\xff" + base[body_off:],
        "huge-length-octets": b"\x6a\x88" + b"\xff" * 8 + base[body_off:],
        "indefinite-length": b"\x6a\x80" + base[body_off:] + b"\x00\x00",
        "inner-length-lie": base[:body_off] + b"\x30\x84\x7f\xff\xff\xff" + base[body_off + 2:],
        "deep-nest-1000": deep_nest(1000),
        "deep-indefinite-1000": b"\x6a\x80" + b"\x30\x80" * 1000,
        "garbage": bytes(rng.getrandbits(8) for _ in range(300)),
        "garbage-as-req-tag": b"\x6a\x81\xf0" + bytes(rng.getrandbits(8) for _ in range(240)),
        "empty": b"",
        "zeros-64k": b"\x00" * 65000,
        # Built AS-REQs, each with one field missing or odd.
        "built-minimal": build_as_req(realm, cname),
        "built-optional": build_as_req(realm, cname, optional=True),
        "no-till": build_as_req(realm, cname, till=False),
        "no-etype": build_as_req(realm, cname, etypes=None),
        "empty-etype": build_as_req(realm, cname, etypes=()),
        "unknown-etypes": build_as_req(realm, cname, etypes=(1, 3, 99, -133)),
        "no-cname": build_as_req(realm, cname, cname_present=False),
        "no-sname": build_as_req(realm, cname, sname_present=False),
        "no-realm": build_as_req(realm, cname, realm_present=False),
        "unknown-client": build_as_req(realm, "nosuchuser-" + str(rng.randint(0, 99999))),
    }
    tcp = {
        "tcp-valid": (frame(base), False),
        "tcp-built-minimal": (frame(build_as_req(realm, cname)), False),
        "tcp-high-bit": (struct.pack(">I", 0x80000000 | n) + base, False),
        "tcp-too-long": (struct.pack(">I", 0x7FFFFFFF) + base, False),
        "tcp-16m": (struct.pack(">I", 16 * 1024 * 1024) + base, False),
        "tcp-short-then-close": (struct.pack(">I", n + 100) + base, True),
        "tcp-zero-length": (struct.pack(">I", 0), False),
        "tcp-garbage": (frame(bytes(rng.getrandbits(8) for _ in range(200))), False),
        "tcp-truncated-frame": (frame(base[:n // 2]), False),
        "tcp-header-only-close": (b"\x00\x00", True),
        "tcp-deep-nest": (frame(deep_nest(1000)), False),
    }
    return udp, tcp


def cmd_send(a):
    rng = random.Random(a.seed)
    if a.base:
        with open(a.base, "rb") as f:
            base = f.read()
    else:
        base = build_as_req(a.realm, a.cname, optional=True)
    udp, tcp = make_cases(base, a.realm, a.cname, rng)
    if a.cases == ["list"]:
        print("\n".join(list(udp) + list(tcp)))
        return 0
    for c in a.cases:
        if c not in udp and c not in tcp:
            print("%s unknown-case" % c, flush=True)
            return 2

    def run(c):
        try:
            if c in udp:
                return udp_exchange(a.kdc, udp[c], a.wait)
            raw, shut = tcp[c]
            return tcp_exchange(a.kdc, raw, a.wait, shut)
        except ConnectionRefusedError:
            return "refused"
        except OSError as e:
            return "oserror %s" % e.strerror

    if a.serial:
        for c in a.cases:
            print("%s %s" % (c, run(c)), flush=True)
        return 0
    # Concurrent by default, so that the cases expecting no reply wait --wait seconds together.
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=min(64, len(a.cases))) as pool:
        futs = []
        for c in a.cases:
            futs.append(pool.submit(run, c))
            time.sleep(0.005)
        for c, f in zip(a.cases, futs):
            print("%s %s" % (c, f.result()), flush=True)
    return 0


def cmd_flood(a):
    rng = random.Random(a.seed)
    fam, addr = addr_of(a.kdc)
    firsts = [0x6A, 0x6C, 0x30, 0x7E, 0x00, 0xFF]
    with socket.socket(fam, socket.SOCK_DGRAM) as s:
        s.setblocking(False)
        sent = 0
        for i in range(a.count):
            n = rng.randint(0, 1400)
            pkt = bytearray(rng.getrandbits(8) for _ in range(n))
            if n and i % 2 == 0:
                pkt[0] = rng.choice(firsts)
                if n > 2 and i % 4 == 0:
                    pkt[1] = 0x82 if n > 4 else n - 2
                    if n > 4:
                        pkt[2:4] = struct.pack(">H", n - 4)
            try:
                s.sendto(bytes(pkt), addr)
                sent += 1
            except (BlockingIOError, ConnectionRefusedError):
                time.sleep(0.001)
            # drain answers so the socket buffer does not fill
            try:
                while s.recv(65536):
                    pass
            except (BlockingIOError, ConnectionRefusedError):
                pass
    print("sent %d" % sent)
    return 0


def cmd_relay(a):
    fam, kdc = addr_of(a.kdc)
    front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    front.bind(("127.0.0.1", 0))
    os.makedirs(a.save_dir, exist_ok=True)
    tmpf = a.port_file + ".tmp"
    with open(tmpf, "w") as f:
        f.write("%d\n" % front.getsockname()[1])
    os.rename(tmpf, a.port_file)
    backs = {}  # client addr -> socket to the KDC
    n = 0
    deadline = time.time() + a.timeout
    while time.time() < deadline:
        socks = [front] + list(backs.values())
        r, _, _ = select.select(socks, [], [], 0.5)
        for s in r:
            if s is front:
                data, client = front.recvfrom(65536)
                n += 1
                with open(os.path.join(a.save_dir, "req-%d.bin" % n), "wb") as f:
                    f.write(data)
                b = backs.get(client)
                if b is None:
                    b = socket.socket(fam, socket.SOCK_DGRAM)
                    b.connect(kdc)
                    backs[client] = b
                b.send(data)
            else:
                client = next(c for c, b in backs.items() if b is s)
                try:
                    data = s.recv(65536)
                except ConnectionRefusedError:
                    continue
                with open(os.path.join(a.save_dir, "rep-%d.bin" % n), "wb") as f:
                    f.write(data)
                front.sendto(data, client)
    return 0


def cmd_inetd(a):
    fam, addr = addr_of(a.listen)
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(addr)
    s.listen(1)
    with open(a.ready, "w") as f:
        f.write("ready\n")
    s.settimeout(a.timeout)
    try:
        c, _ = s.accept()
    except socket.timeout:
        print("inetd: no connection within %ss" % a.timeout, file=sys.stderr)
        return 3
    s.close()
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    try:
        return subprocess.call(cmd, stdin=c.fileno(), stdout=c.fileno(), timeout=a.timeout)
    except subprocess.TimeoutExpired:
        return 124


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd_name", required=True)
    s = sub.add_parser("send")
    s.add_argument("--kdc", required=True)
    s.add_argument("--base")
    s.add_argument("--realm", default="TEST.REALM")
    s.add_argument("--cname", default="alice")
    s.add_argument("--wait", type=float, default=1.5)
    s.add_argument("--seed", type=int, default=4120)
    s.add_argument("--serial", action="store_true", help="one case at a time")
    s.add_argument("cases", nargs="+")
    s.set_defaults(fn=cmd_send)
    f = sub.add_parser("flood")
    f.add_argument("--kdc", required=True)
    f.add_argument("--count", type=int, default=2000)
    f.add_argument("--seed", type=int, default=1510)
    f.set_defaults(fn=cmd_flood)
    r = sub.add_parser("relay")
    r.add_argument("--kdc", required=True)
    r.add_argument("--port-file", required=True)
    r.add_argument("--save-dir", required=True)
    r.add_argument("--timeout", type=float, default=30)
    r.set_defaults(fn=cmd_relay)
    i = sub.add_parser("inetd")
    i.add_argument("--listen", required=True)
    i.add_argument("--ready", required=True)
    i.add_argument("--timeout", type=float, default=20)
    i.add_argument("cmd", nargs=argparse.REMAINDER)
    i.set_defaults(fn=cmd_inetd)
    a = p.parse_args()
    sys.exit(a.fn(a))


if __name__ == "__main__":
    main()
