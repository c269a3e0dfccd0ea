# Loopback UDP/TCP relay that saves every payload it forwards (one file per datagram/read):
#   python3 capture_relay.py udptcp LISTEN_PORT TARGET_PORT OUTDIR
import socket, sys, threading, os, itertools
mode, lport, tport, outdir = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
os.makedirs(outdir, exist_ok=True)
ctr = itertools.count()
lock = threading.Lock()
def save(tag, data):
    with lock:
        n = next(ctr)
    open(os.path.join(outdir, "%03d_%s.bin" % (n, tag)), "wb").write(data)
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", lport))
    while True:
        data, peer = s.recvfrom(65536)
        save("c2s_udp", data)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.settimeout(5)
        u.sendto(data, ("127.0.0.1", tport))
        try:
            rep, _ = u.recvfrom(65536)
        except Exception:
            continue
        save("s2c_udp", rep)
        s.sendto(rep, peer)
def pipe(a, b, tag):
    while True:
        d = a.recv(65536)
        if not d:
            try: b.shutdown(socket.SHUT_WR)
            except Exception: pass
            return
        save(tag, d)
        b.sendall(d)
def tcp():
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", lport)); s.listen(5)
    while True:
        c, _ = s.accept()
        t = socket.create_connection(("127.0.0.1", tport))
        threading.Thread(target=pipe, args=(c, t, "c2s_tcp"), daemon=True).start()
        threading.Thread(target=pipe, args=(t, c, "s2c_tcp"), daemon=True).start()
if "udp" in mode: threading.Thread(target=udp, daemon=True).start()
if "tcp" in mode: threading.Thread(target=tcp, daemon=True).start()
threading.Event().wait()
