# Decrypts the enc-parts of the captured MIT messages (aes256-cts-hmac-sha1-96, RFC 3961/3962,
# written from the RFC text for this test data) and writes their plaintexts next to them.
# Needs python3-cryptography. Keys/passwords: see README.
import hashlib, hmac, struct, sys, os
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
import os.path
V=os.path.dirname(os.path.abspath(__file__))+"/"
def tlv(b, i=0):
    t=b[i]; l=b[i+1]; j=i+2
    if l&0x80:
        n=l&0x7f; l=int.from_bytes(b[j:j+n],"big"); j+=n
    return t, b[j:j+l], j+l
def children(b):
    out=[]; i=0
    while i<len(b):
        t,c,i=tlv(b,i); out.append((t,c))
    return out
def field(seq_content, ctx):
    for t,c in children(seq_content):
        if t==0xa0+ctx: return children(c)[0]
    return None
def inner(msg):  # strip APPLICATION + SEQUENCE
    t,c,_=tlv(msg); 
    if t&0xe0==0x60: t,c,_=tlv(c)
    assert t==0x30; return c
def intv(tc): return int.from_bytes(tc[1],"big",signed=True)
def encdata(ed):  # ed = (0x30, content)
    return intv(field(ed[1],0)), field(ed[1],2)[1]
def nfold(b, n):
    def rot13(x, bits):
        v=int.from_bytes(x,"big"); L=len(x)*8
        r=13%L; v=((v>>r)|(v<<(L-r)))&((1<<L)-1); return v.to_bytes(len(x),"big")
    import math
    lcm=len(b)*n//math.gcd(len(b),n)
    big=b""; cur=b
    while len(big)<lcm:
        big+=cur; cur=rot13(cur,0)
    acc=[0]*n
    for k in range(lcm//n):
        chunk=big[k*n:(k+1)*n]
        carry=0
        for i in range(n-1,-1,-1):
            s=acc[i]+chunk[i]+carry; acc[i]=s&0xff; carry=s>>8
        # ones complement end-around carry
        while carry:
            for i in range(n-1,-1,-1):
                s=acc[i]+carry; acc[i]=s&0xff; carry=s>>8
                if not carry: break
    return bytes(acc)
def aes_ecb(k,b): e=Cipher(algorithms.AES(k),modes.ECB()).encryptor(); return e.update(b)+e.finalize()
def dk(k, const):
    c=nfold(const,16); out=b""; blk=c
    while len(out)<len(k):
        blk=aes_ecb(k,blk); out+=blk
    return out[:len(k)]
def s2k(pw, salt, klen=32): return dk(hashlib.pbkdf2_hmac("sha1",pw,salt,4096,klen), b"kerberos")
def cts_decrypt(k, c):
    if len(c)==16:
        d=Cipher(algorithms.AES(k),modes.ECB()).decryptor(); return d.update(c)+d.finalize()
    nb=(len(c)+15)//16
    # CS3: swap last two blocks
    tail=len(c)-16*(nb-1)
    prev_blocks=c[:16*(nb-2)]; cn1=c[16*(nb-2):16*(nb-1)]; cn=c[16*(nb-1):]
    d=Cipher(algorithms.AES(k),modes.ECB()).decryptor()
    dn=d.update(cn1)  # decrypt C_{n-1}' which is the last full encrypted block
    pad=dn[tail:]
    cn_full=cn+pad
    ordered=prev_blocks+cn_full+cn1
    iv=b"\0"*16
    dec=Cipher(algorithms.AES(k),modes.CBC(iv)).decryptor()
    p=dec.update(ordered)+dec.finalize()
    return p[:len(c)]
def decrypt(key, usage, ct):
    ke=dk(key, struct.pack(">I",usage)+b"\xaa"); ki=dk(key, struct.pack(">I",usage)+b"\x55")
    c, mac = ct[:-12], ct[-12:]
    p=cts_decrypt(ke,c)
    if hmac.new(ki,p,hashlib.sha1).digest()[:12]!=mac: raise ValueError("integrity")
    return p[16:]
def rd(n): return open(V+n,"rb").read()
def wr(n,b): open(V+n,"wb").write(b); print("wrote",n,len(b),b[:2].hex())
# self-test RFC 3962 vector: pass "password", salt "ATHENA.MIT.EDUraeburn", iter 1, 128-bit
assert dk(hashlib.pbkdf2_hmac("sha1",b"password",b"ATHENA.MIT.EDUraeburn",1,16),b"kerberos").hex()=="42263c6e89f4fc28b8df68ee09799f15"
assert nfold(b"kerberos",8).hex()=="6b65726265726f73"
alice=s2k(b"alicepw",b"TEST.REALMalice")
tgt=s2k(b"tgtpw",b"TEST.REALMkrbtgtTEST.REALM")
svc=s2k(b"servicepw",b"TEST.REALMhostserver.test.realm")
print("alice",alice.hex()); print("krbtgt",tgt.hex()); print("service",svc.hex())
def key_of(encpart):  # EncKDCRepPart / EncTicketPart key field index
    return None
# AS-REP
asrep=inner(rd("as_rep.der"))
et,ct=encdata(field(asrep,6)); p=decrypt(alice,3,ct); wr("enc_as_rep_part.der",p)
skey=field(field(inner(p),0)[1],1)[1]
tkt=inner(field(asrep,5)[1]); et,ct=encdata(field(tkt,3)); p=decrypt(tgt,2,ct); wr("enc_ticket_part_tgt.der",p)
# AS-REQ enc ts
req=inner(rd("as_req_enc_ts.der"))
for t,c in children(field(req,3)[1]):
    if intv(field(c,1))==2:
        ed=tlv(field(c,2)[1])
        et,ct2=encdata((ed[0],ed[1])); wr("pa_enc_ts_enc.der",decrypt(alice,1,ct2))
# TGS-REQ authenticator
req=inner(rd("tgs_req.der"))
for t,c in children(field(req,3)[1]):
    if intv(field(c,1))==1:
        ap=inner(field(c,2)[1])
        et,ct2=encdata(field(ap,4)); auth=decrypt(skey,7,ct2); wr("authenticator_tgs.der",auth)
sub=field(inner(auth),6)
subkey=field(sub[1],1)[1] if sub else None
tgsrep=inner(rd("tgs_rep.der"))
et,ct=encdata(field(tgsrep,6))
for k,u,n in ((subkey,9,"subkey"),(skey,8,"session")):
    if k is None: continue
    try: p=decrypt(k,u,ct); wr("enc_tgs_rep_part.der",p); print("tgs-rep via",n); break
    except ValueError: print("tgs-rep not with",n)
tkt=inner(field(tgsrep,5)[1]); et,ct=encdata(field(tkt,3)); p=decrypt(svc,2,ct); wr("enc_ticket_part_service.der",p)
# GSS AP-REQ / AP-REP
ap=inner(rd("ap_req.der"))
tkt=inner(field(ap,3)[1]); et,ct=encdata(field(tkt,3)); etp=decrypt(svc,2,ct)
gskey=field(field(inner(etp),1)[1],1)[1]
et,ct=encdata(field(ap,4)); wr("authenticator_ap_req.der",decrypt(gskey,11,ct))
aprep=inner(rd("ap_rep.der")); et,ct=encdata(field(aprep,2)); wr("enc_ap_rep_part.der",decrypt(gskey,12,ct))
# kpasswd
asrep=inner(rd("as_rep_changepw.der")); et,ct=encdata(field(asrep,6)); p=decrypt(alice,3,ct)
ckey=field(field(inner(p),0)[1],1)[1]
ap=inner(rd("kpasswd_ap_req.der")); et,ct=encdata(field(ap,4)); auth=decrypt(ckey,11,ct); wr("authenticator_kpasswd.der",auth)
ksub=field(field(inner(auth),6)[1],1)[1]
pr=inner(rd("kpasswd_krb_priv_req.der")); et,ct=encdata(field(pr,3)); wr("enc_krb_priv_part_req.der",decrypt(ksub,13,ct))
aprep=inner(rd("kpasswd_ap_rep.der")); et,ct=encdata(field(aprep,2)); p=decrypt(ckey,12,ct); wr("enc_ap_rep_part_kpasswd.der",p)
rsub=field(inner(p),2)
rkey=field(rsub[1],1)[1] if rsub else ksub
pr=inner(rd("kpasswd_krb_priv_rep.der")); et,ct=encdata(field(pr,3))
for k,n in ((rkey,"ap-rep subkey"),(ksub,"authenticator subkey")):
    try: wr("enc_krb_priv_part_rep.der",decrypt(k,13,ct)); print("priv rep via",n); break
    except ValueError: print("priv rep not with",n)
