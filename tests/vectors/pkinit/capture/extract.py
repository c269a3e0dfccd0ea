"""Split captured Kerberos messages into their PKINIT parts (DER TLV walking only)."""
import sys, os, subprocess

def tlv(b, i):
    t = b[i]; l = b[i+1]; j = i + 2
    if l & 0x80:
        n = l & 0x7f; l = int.from_bytes(b[j:j+n], 'big'); j += n
    return t, j, l          # tag, content start, content length

def children(b, start, length):
    i = start; out = []
    while i < start + length:
        t, j, l = tlv(b, i); out.append((t, i, j, l)); i = j + l
    return out

def seq_body(b, i):
    t, j, l = tlv(b, i); return j, l

def padata(msg, field_tag):
    """padata entries of a KDC-REQ ([3]) or KDC-REP ([2]) as {type: value}."""
    _, j, l = tlv(msg, 0)            # APPLICATION
    sj, sl = seq_body(msg, j)         # SEQUENCE
    res = {}
    for t, i, cj, cl in children(msg, sj, sl):
        if t == 0xa0 + field_tag:
            pj, pl = seq_body(msg, cj)
            for _, ei, ej, el in children(msg, pj, pl):
                f = {tt: (cj2, cl2) for tt, _, cj2, cl2 in children(msg, ej, el)}
                tj, tl = f[0xa1]; _, vj, vl = tlv(msg, tj); ptype = int.from_bytes(msg[vj:vj+vl], 'big', signed=True)
                oj, ol = f[0xa2]; _, vj, vl = tlv(msg, oj)
                res[ptype] = msg[vj:vj+vl]
    return res

def der_len(n):
    if n < 128:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, 'big')
    return bytes([0x80 | len(b)]) + b

def cms_content(der, out, bare_signed_data=False):
    """eContent of a SignedData (signature not checked); bare_signed_data wraps a SignedData that
    arrives without its ContentInfo (MIT's decrypted encKeyPack)."""
    if bare_signed_data:
        oid = bytes.fromhex('06092a864886f70d010702')
        body = oid + b'\xa0' + der_len(len(der)) + der
        der = b'\x30' + der_len(len(body)) + body
    tmp = os.path.join(os.environ.get('TMPDIR', '/tmp'), 'ck-extract-cms.der')
    open(tmp, 'wb').write(der)
    subprocess.run(['openssl', 'cms', '-verify', '-noverify', '-inform', 'DER', '-in', tmp,
                    '-binary', '-out', out], check=True, stderr=subprocess.DEVNULL)

if __name__ == '__main__':
    cmd = sys.argv[1]
    if cmd == 'padata':
        msg = open(sys.argv[2], 'rb').read(); tag = int(sys.argv[3]); ptype = int(sys.argv[4])
        sys.stdout.buffer.write(padata(msg, tag)[ptype])
    elif cmd == 'field':          # nth child (by tag byte) of the outer SEQUENCE
        b = open(sys.argv[2], 'rb').read(); tagb = int(sys.argv[3], 16); inner = sys.argv[4] == 'inner'
        t, j, l = tlv(b, 0)
        for tt, i, cj, cl in children(b, j, l):
            if tt == tagb:
                sys.stdout.buffer.write(b[cj:cj+cl] if inner else b[i:cj+cl])
    elif cmd == 'choice':         # contents of a top-level [n] tag
        b = open(sys.argv[2], 'rb').read(); t, j, l = tlv(b, 0)
        sys.stdout.buffer.write(b[j:j+l])
    elif cmd == 'cms':            # cms IN OUT [bare]
        cms_content(open(sys.argv[2], 'rb').read(), sys.argv[3], len(sys.argv) > 4)
    elif cmd == 'edata':          # KRB-ERROR e-data contents
        m = open(sys.argv[2], 'rb').read(); _, j, l = tlv(m, 0); sj, sl = seq_body(m, j)
        for t, i, cj, cl in children(m, sj, sl):
            if t == 0xac:
                _, oj, ol = tlv(m, cj); sys.stdout.buffer.write(m[oj:oj+ol])
    elif cmd == 'typed':          # data-value of a TYPED-DATA entry
        ed = open(sys.argv[2], 'rb').read(); want = int(sys.argv[3]); pj, pl = seq_body(ed, 0)
        for _, ei, ej, el in children(ed, pj, pl):
            f = {tt: (c2, l2) for tt, _, c2, l2 in children(ed, ej, el)}
            _, vj, vl = tlv(ed, f[0xa0][0])
            if int.from_bytes(ed[vj:vj+vl], 'big') == want:
                _, dj, dl = tlv(ed, f[0xa1][0]); sys.stdout.buffer.write(ed[dj:dj+dl])
