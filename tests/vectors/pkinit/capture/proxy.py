import socket, sys, os, select, time, struct
listen, target, outdir = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", listen))
t = socket.socket(socket.AF_INET, socket.SOCK_STREAM); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("127.0.0.1", listen)); t.listen(4)
up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
n = 0; client = None; deadline = time.time() + 120
def save(tag, data):
    global n
    n += 1
    open(os.path.join(outdir, "%02d-%s.der" % (n, tag)), "wb").write(data)
def recv_exact(c, k):
    b = b""
    while len(b) < k:
        x = c.recv(k - len(b))
        if not x: raise EOFError
        b += x
    return b
while time.time() < deadline:
    r, _, _ = select.select([s, up, t], [], [], 1)
    for sock in r:
        if sock is t:
            c, _ = t.accept()
            try:
                ln = struct.unpack(">I", recv_exact(c, 4))[0]; req = recv_exact(c, ln); save("c2k-tcp", req)
                k = socket.create_connection(("127.0.0.1", target)); k.sendall(struct.pack(">I", ln) + req)
                rl = struct.unpack(">I", recv_exact(k, 4))[0]; rep = recv_exact(k, rl); save("k2c-tcp", rep)
                c.sendall(struct.pack(">I", rl) + rep); k.close()
            except Exception as e:
                print("tcp", e)
            c.close()
            continue
        data, addr = sock.recvfrom(70000)
        if sock is s:
            client = addr; save("c2k", data); up.sendto(data, ("127.0.0.1", target))
        else:
            save("k2c", data); s.sendto(data, client)
