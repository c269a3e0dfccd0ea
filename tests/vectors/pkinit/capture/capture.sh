#!/bin/bash
# Re-creates the captures in tests/vectors/pkinit/ (see README.md there). Not part of the test
# suite: it needs MIT krb5kdc/kinit with krb5-pkinit, Heimdal's kinit, openssl and python3, and
# it writes new random keys, so its output differs from the committed files byte for byte.
#   usage: capture.sh OUTDIR
set -euo pipefail
out=$(realpath "${1:?usage: capture.sh OUTDIR}")
here=$(cd "$(dirname "$0")" && pwd)
heimdal=${CK_HEIMDAL_DIR:-/opt/cablekey-heimdal}/usr/bin/kinit.heimdal
w=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$w"' EXIT
cd "$w"
kport=41188 pport=41189   # MIT krb5kdc, and the logging proxy the clients talk to

# Throwaway CA, KDC certificate (id-pkinit-KPKdc, id-pkinit-san krbtgt/EXAMPLE.TEST) and client
# certificate (id-pkinit-KPClientAuth, id-pkinit-san alice@EXAMPLE.TEST), RSA-2048.
cat /etc/ssl/openssl.cnf "$here/certs.cnf" >full.cnf
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 3650 \
    -subj "/O=cablekey test/CN=Test PKINIT CA" -extensions ca_ext -config full.cnf 2>/dev/null
for n in kdc client; do
    openssl req -newkey rsa:2048 -nodes -keyout $n.key -out $n.csr \
        -subj "/O=cablekey test/CN=$n" 2>/dev/null
    openssl x509 -req -in $n.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out $n.pem \
        -days 3650 -extfile "$here/certs.cnf" -extensions ${n}_cert 2>/dev/null
done

# MIT realm with PKINIT; clients prefer UDP so one proxy sees every message.
cat >kdc.conf <<K
[kdcdefaults]
 kdc_ports = $kport
 kdc_tcp_ports = $kport
 kdc_max_dgram_reply_size = 65535
[realms]
 EXAMPLE.TEST = {
  database_name = $w/principal
  key_stash_file = $w/stash
  pkinit_identity = FILE:$w/kdc.pem,$w/kdc.key
  pkinit_anchors = FILE:$w/ca.pem
 }
K
cat >krb5.conf <<K
[libdefaults]
 default_realm = EXAMPLE.TEST
 udp_preference_limit = 65535
 large_message_size = 65000
 dns_lookup_kdc = false
 rdns = false
[realms]
 EXAMPLE.TEST = {
  kdc = 127.0.0.1:$pport
  pkinit_anchors = FILE:$w/ca.pem
 }
K
export KRB5_CONFIG=$w/krb5.conf KRB5_KDC_PROFILE=$w/kdc.conf KRB5CCNAME=FILE:$w/ccache
kdb5_util create -s -P masterpw -r EXAMPLE.TEST >/dev/null 2>&1
kadmin.local -q "addprinc -nokey +requires_preauth alice" >/dev/null 2>&1

run() { # run DIR client-command...: one exchange through a fresh KDC and proxy
    local d=$1; shift
    mkdir -p "$d"
    krb5kdc -n -P "$w/kdc.pid" >/dev/null 2>&1 & local k=$!
    python3 "$here/proxy.py" $pport $kport "$d" </dev/null >/dev/null 2>&1 & local p=$!
    for _ in $(seq 100); do
        ss -tlnu | grep -q ":$pport " && ss -uan | grep -q ":$kport " && break
        sleep 0.1
    done
    "$@" || true
    kill $p $k; wait $p $k 2>/dev/null || true
}
id="$w/client.pem,$w/client.key"
run dh kinit -X X509_user_identity=FILE:$id alice@EXAMPLE.TEST
run rsa kinit -X X509_user_identity=FILE:$id -X flag_RSA_PROTOCOL=yes alice@EXAMPLE.TEST
run heim "$heimdal" --pk-user=FILE:$id --x509-anchors=FILE:$w/ca.pem alice@EXAMPLE.TEST

x="python3 $here/extract.py"
mkdir -p "$out"
cp dh/02-k2c.der "$out/mit-krb-error-preauth-required.der"
cp dh/03-c2k.der "$out/mit-as-req-dh.der"
cp dh/04-k2c.der "$out/mit-as-rep-dh.der"
cp rsa/03-c2k.der "$out/mit-as-req-rsa.der"
cp rsa/04-k2c.der "$out/mit-as-rep-rsa.der"
cp heim/01-c2k.der "$out/heimdal-as-req.der"
cp heim/02-k2c.der "$out/mit-krb-error-dh-params.der"
cd "$out"
for n in mit-as-req-dh mit-as-req-rsa heimdal-as-req; do
    $x padata $n.der 3 16 >$n.pa-pk-as-req.der
    $x field $n.pa-pk-as-req.der 80 inner >"$w/sap.der"
    $x cms "$w/sap.der" $n.auth-pack.der
done
for n in mit-as-rep-dh mit-as-rep-rsa; do $x padata $n.der 2 17 >$n.pa-pk-as-rep.der; done
$x choice mit-as-rep-dh.pa-pk-as-rep.der >"$w/dhrep.der"
$x field "$w/dhrep.der" 80 inner >"$w/dhsd.der"
$x cms "$w/dhsd.der" mit-as-rep-dh.kdc-dh-key-info.der
$x choice mit-as-rep-rsa.pa-pk-as-rep.der >"$w/ekp.der"
openssl cms -decrypt -inform DER -in "$w/ekp.der" -recip "$w/client.pem" -inkey "$w/client.key" \
    -binary -out "$w/ekp-signed.der"
$x cms "$w/ekp-signed.der" mit-as-rep-rsa.reply-key-pack.der bare
$x edata mit-krb-error-dh-params.der >mit-krb-error-dh-params.typed-data.der
$x typed mit-krb-error-dh-params.typed-data.der 109 >mit-krb-error-dh-params.td-dh-parameters.der
cp "$w/ca.pem" "$w/kdc.pem" "$w/client.pem" .
ls -l "$out"
