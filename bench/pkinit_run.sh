#!/usr/bin/env bash
# bench/pkinit_run.sh BUILD_DIR — PKINIT AS exchanges: cablekey-kdc and MIT krb5kdc side by side,
# same machine, same run, same certificates (one `cablekey pki init` RSA-2048 hierarchy, the
# KDC identity kdc.p12 for both KDCs), same DH group (MODP 2048), same realm, principal, reply
# enctype, worker count and load.
#
# Shapes (each a closed loop of BENCH_PK_PROCS client processes, one exchange in flight each):
#   rsa-dh        RSA-2048 signature + DH MODP 2048, one client certificate: after its first
#                 login every exchange is a repeat login (cablekey-kdc: thumbprint-cache hit)
#   rsa-kt        RSA-2048 signature + RSA key transport, one client certificate
#   rsa-dh-cold   rsa-dh with BENCH_PK_COLD_CERTS distinct client certificates in turn and
#                 cablekey-kdc's caches at their minimum (16 entries), so that every exchange is
#                 a first login (chain decoded and verified); MIT verifies every chain anyway
#   ec-ecdh       ECDSA P-256 + ECDH P-256 (an `pki init --key ec-p256` hierarchy), one
#                 certificate: cablekey-kdc only (MIT 1.20 has no ECDH)
#   ec-ecdh-cold  the same with BENCH_PK_COLD_CERTS distinct certificates
#   device-pktc   an MTA: a device certificate from the manufacturer hierarchy (MAC in the
#                 subject) mapped through the device table, the PacketCable draft form (one
#                 AS-REQ with PA-PK-AS-REQ-OLD, RSA key transport), the manufacturer root as
#                 pkinit_packetcable_anchors; repeat logins of one device: cablekey-kdc only
#                 (MIT has neither the device table nor the PacketCable form)
# RSA shapes run against both KDCs with MIT's libkrb5 as the client (build/krb5_pkinit_load,
# what kinit -X X509_user_identity=... does); EC and device shapes with our lib/pkinit client
# (build/pkinit_load). "SHAPE:ck" in BENCH_PK_SHAPES runs an RSA shape with our client instead.
# An exchange is what kinit does: AS-REQ, KDC_ERR_PREAUTH_REQUIRED, AS-REQ with PA-PK-AS-REQ
# (over TCP), AS-REP: two KDC requests, both in the KDC CPU (device-pktc: one request, as an MTA
# sends it).
#
# Measured: KDC CPU per exchange (utime+stime of the KDC's processes from /proc/PID/stat, and
# the nanosecond schedstat as a cross-check), exchanges/s, the clients' CPU, the CPU other
# tenants of the machine took, the load average. Beside them: the crypto floor of one exchange
# from `openssl speed` (same run) and our library's in-process cost of the same crypto
# (BUILD_DIR/bench_pkinit_crypto). Prints one Markdown table. Bounded: every load run stops
# after BENCH_PK_DURATION seconds, and runs that would end after BENCH_PK_BUDGET seconds are
# skipped (reported as such); about two and a half minutes in all.
#
# Environment:
#   BENCH_PK_PROCS       client processes (default 8)
#   BENCH_PK_DURATION    seconds per load run (default 8)
#   BENCH_PK_WORKERS     KDC workers, both implementations (default 2: krb5kdc -w 2,
#                        cablekey-kdc --workers 2)
#   BENCH_PK_COLD_CERTS  distinct client certificates of the cold shapes (default 128)
#   BENCH_PK_SHAPES      default "rsa-dh rsa-kt rsa-dh-cold ec-ecdh ec-ecdh-cold device-pktc"
#   BENCH_PK_CRYPTO_MS   ms of CPU per operation for bench_pkinit_crypto (default 100; 0 skips it)
#   BENCH_PK_BUDGET      seconds the whole script may take (default 175)
#   BENCH_PK_PROFILE=1   also `perf record` cablekey-kdc during its rsa-dh run and print where its
#                        CPU went (BENCH_PK_PROFILE_SHAPE to pick another shape)
#   BENCH_KEEP_TMP=1     keep the temp dir (PKI, configs, KDC logs, load output)
#   BENCH_SKIP_MIT=1 / BENCH_SKIP_CK=1  measure only one implementation
set -uo pipefail
export LC_ALL=C TZ=UTC

BUILD=${1:-build}
BUILD=$(cd "$BUILD" 2>/dev/null && pwd) || { echo "pkinit bench: no build dir '${1:-build}'" >&2; exit 2; }
CK_KDC=$BUILD/cablekey-kdc
CK_CLI=$BUILD/cablekey
KRB5_LOAD=$BUILD/krb5_pkinit_load
CK_LOAD=$BUILD/pkinit_load
CRYPTO=$BUILD/bench_pkinit_crypto
INPROC=$BUILD/pkinit_inproc
PROCS=${BENCH_PK_PROCS:-8}
DURATION=${BENCH_PK_DURATION:-8}
WORKERS=${BENCH_PK_WORKERS:-2}
COLD=${BENCH_PK_COLD_CERTS:-128}
SHAPES=${BENCH_PK_SHAPES:-rsa-dh rsa-kt rsa-dh-cold ec-ecdh ec-ecdh-cold device-pktc}
CRYPTO_MS=${BENCH_PK_CRYPTO_MS:-100}
BUDGET=${BENCH_PK_BUDGET:-175}
PROFILE=${BENCH_PK_PROFILE:-0}
PROFILE_SHAPE=${BENCH_PK_PROFILE_SHAPE:-rsa-dh}

REALM=BENCH.TEST
CLIENT=bench
DEV_MAC=00:11:22:33:44:55
DEV_PRINC=mta-001122334455
ENCTYPE=aes256-cts-hmac-sha1-96
SECONDS=0

for f in "$CK_KDC" "$CK_CLI" "$KRB5_LOAD" "$CK_LOAD" "$INPROC"; do
    [ -x "$f" ] || { echo "pkinit bench: $f not built (krb5_pkinit_load needs libkrb5-dev)" >&2; exit 2; }
done
for t in openssl krb5kdc kdb5_util kadmin.local python3 ss; do
    command -v "$t" >/dev/null || { echo "pkinit bench: $t not found" >&2; exit 2; }
done
compgen -G "/usr/lib/*/krb5/plugins/preauth/pkinit.so" >/dev/null ||
    compgen -G "/usr/lib/krb5/plugins/preauth/pkinit.so" >/dev/null ||
    { echo "pkinit bench: MIT PKINIT plugin missing (krb5-pkinit)" >&2; exit 2; }

tmp=$(mktemp -d /tmp/ck-pkbench.XXXXXX)
MIT_PID=""
CKR_PID=""
CKE_PID=""
stop_pid() { # stop_pid PID
    [ -n "$1" ] || return 0
    kill -TERM "$1" 2>/dev/null
    wait "$1" 2>/dev/null
}
cleanup() {
    stop_pid "$MIT_PID"
    stop_pid "$CKR_PID"
    stop_pid "$CKE_PID"
    if [ "${BENCH_KEEP_TMP:-0}" = 1 ]; then echo "pkinit bench: kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "pkinit bench [${SECONDS}s]: $*" >&2; }
die() {
    echo "pkinit bench: $1" >&2
    [ $# -gt 1 ] && tail -n 20 "${@:2}" >&2
    exit 1
}

# A loopback port free for UDP and TCP (other benchmarks and tests may run in parallel).
free_port() {
    python3 - <<'EOF'
import random, socket
for _ in range(200):
    p = random.randint(20000, 60000)
    try:
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            s = socket.socket(socket.AF_INET, kind)
            s.bind(("127.0.0.1", p))
            s.close()
        print(p)
        raise SystemExit(0)
    except OSError:
        pass
raise SystemExit("no free port")
EOF
}

# Waits until something listens on UDP 127.0.0.1:PORT (at most 10 s).
wait_udp() {
    local i
    for i in $(seq 1 100); do
        ss -Hlun "sport = :$1" 2>/dev/null | grep -q . && return 0
        sleep 0.1
    done
    return 1
}

umask 077
printf 'pkinit-bench-pw-1\n' >"$tmp/pw"

# ---------------------------------------------------------------------------------------------
# Crypto floor: openssl speed (user CPU per operation) and our library in-process.
say "openssl speed rsa2048 ffdh2048 ecdhp256 ecdsap256 ..."
openssl speed -mr -seconds 1 rsa2048 ffdh2048 ecdhp256 ecdsap256 >"$tmp/speed.out" 2>&1 ||
    die "openssl speed failed" "$tmp/speed.out"
# +R<n>:count:bits:seconds -> microseconds per operation.
speed_us() { awk -F: -v k="+R$1" '$1 == k && $2 > 0 { printf "%.1f", $4 / $2 * 1e6; exit }' "$tmp/speed.out"; }
RSA_SIGN=$(speed_us 1)
RSA_VERIFY=$(speed_us 2)
ECDSA_SIGN=$(speed_us 5)
ECDSA_VERIFY=$(speed_us 6)
ECDH=$(speed_us 7)
FFDH=$(speed_us 12)
for v in RSA_SIGN RSA_VERIFY ECDSA_SIGN ECDSA_VERIFY ECDH FFDH; do
    [ -n "${!v}" ] || die "openssl speed: no figure for $v" "$tmp/speed.out"
done
: >"$tmp/crypto.out"
if [ "$CRYPTO_MS" != 0 ] && [ -x "$CRYPTO" ]; then
    say "bench_pkinit_crypto $CRYPTO_MS (our library, in-process) ..."
    timeout -k 5 120 "$CRYPTO" "$CRYPTO_MS" >"$tmp/crypto.out" 2>&1 ||
        { say "bench_pkinit_crypto failed (library column left empty)"; : >"$tmp/crypto.out"; }
fi
lib_us() { awk -v k="$1" 'index($0, k) == 1 { print $NF; exit }' "$tmp/crypto.out"; }

# ---------------------------------------------------------------------------------------------
# Certificates: an RSA-2048 and an ECDSA P-256 hierarchy from `cablekey pki init`, one client
# certificate each from `pki issue-client`, and for the cold shapes COLD more certificates per
# hierarchy for the same principal and key (distinct serials, the issue-client profile), signed
# by the service-provider CA with openssl (`pki issue-client` would make a new key each time, a
# third of a second apiece).
say "PKI: cablekey pki init (RSA-2048, EC P-256), issue-client, $COLD cold certificates each ..."
pki() { "$CK_CLI" pki "$@" --password-file "$tmp/pw" </dev/null >>"$tmp/pki.log" 2>&1; }
pki init --dir "$tmp/pki-rsa" --realm "$REALM" --org "Bench" || die "pki init (RSA)" "$tmp/pki.log"
pki init --dir "$tmp/pki-ec" --realm "$REALM" --org "Bench" --key ec-p256 || die "pki init (EC)" "$tmp/pki.log"
pki issue-client --dir "$tmp/pki-rsa" --principal "$CLIENT" --out "$tmp/rsa-client.p12" \
    --pem-out "$tmp/rsa-client" --pem-nopass || die "pki issue-client (RSA)" "$tmp/pki.log"
pki issue-client --dir "$tmp/pki-ec" --principal "$CLIENT" --key ec-p256 --out "$tmp/ec-client.p12" \
    --pem-out "$tmp/ec-client" --pem-nopass || die "pki issue-client (EC)" "$tmp/pki.log"
pki issue-device --dir "$tmp/pki-rsa" --mac "$DEV_MAC" --out "$tmp/device.p12" \
    --pem-out "$tmp/device" --pem-nopass || die "pki issue-device" "$tmp/pki.log"
# MIT's krb5kdc cannot prompt for the PKCS#12 password: the same identity as PEM, key in clear.
pki export "$tmp/pki-rsa/kdc.p12" --pem-out "$tmp/mit-kdc" --pem-nopass || die "pki export" "$tmp/pki.log"

cat >"$tmp/client-ext.cnf" <<EOF
[ ext_rsa ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = 1.3.6.1.5.2.3.4, clientAuth
subjectAltName = otherName:1.3.6.1.5.2.2;SEQUENCE:princ_name
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ ext_ec ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = 1.3.6.1.5.2.3.4, clientAuth
subjectAltName = otherName:1.3.6.1.5.2.2;SEQUENCE:princ_name
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ princ_name ]
realm = EXP:0, GENSTR:$REALM
principal_name = EXP:1, SEQUENCE:principal_seq
[ principal_seq ]
name_type = EXP:0, INTEGER:1
name_string = EXP:1, SEQUENCE:principals
[ principals ]
princ1 = GENSTR:$CLIENT
EOF
# mint_cold KIND: COLD certificates for KIND's client key, identity lists for both clients.
mint_cold() {
    local kind=$1 dir=$tmp/pki-$1 i
    mkdir -p "$tmp/cold-$kind"
    openssl pkey -in "$dir/sp-ca-key.pem" -passin "file:$tmp/pw" -out "$tmp/cold-$kind/ca-key.pem" \
        2>>"$tmp/openssl.log" || return 1
    openssl req -new -key "$tmp/$kind-client-key.pem" -subj "/O=Bench/OU=PacketCable/CN=$CLIENT@$REALM" \
        -out "$tmp/cold-$kind/client.csr" 2>>"$tmp/openssl.log" || return 1
    : >"$tmp/cold-$kind.ids"
    for i in $(seq 1 "$COLD"); do
        echo "FILE:$tmp/cold-$kind/c$i.pem,$tmp/$kind-client-key.pem" >>"$tmp/cold-$kind.ids"
        echo "$i"
    done | xargs -P 2 -I{} openssl x509 -req -in "$tmp/cold-$kind/client.csr" \
        -CA "$dir/sp-ca.pem" -CAkey "$tmp/cold-$kind/ca-key.pem" -set_serial "$((RANDOM * 65536))"{} \
        -days 30 -sha256 -extfile "$tmp/client-ext.cnf" -extensions "ext_$kind" \
        -out "$tmp/cold-$kind/c{}.pem" 2>>"$tmp/openssl.log" >/dev/null || return 1
    rm -f "$tmp/cold-$kind/ca-key.pem"
    # Leaf then CA, as `pki issue-client --pem-out` writes its certificate file.
    for i in $(seq 1 "$COLD"); do cat "$dir/sp-ca.pem" >>"$tmp/cold-$kind/c$i.pem"; done
    openssl verify -CAfile "$dir/sp-root.pem" -untrusted "$dir/sp-ca.pem" "$tmp/cold-$kind/c1.pem" \
        >>"$tmp/openssl.log" 2>&1
}
case " $SHAPES " in *" rsa-dh-cold"*) mint_cold rsa || die "cold RSA certificates" "$tmp/openssl.log" ;; esac
case " $SHAPES " in *" ec-ecdh-cold"*) mint_cold ec || die "cold EC certificates" "$tmp/openssl.log" ;; esac

# ---------------------------------------------------------------------------------------------
# The realm, for both KDCs: client `bench` with a random key (an exchange can only succeed by
# PKINIT), pre-authentication required, aes256-cts-hmac-sha1-96 only.
setup_mit() {
    local d=$tmp/mit i
    mkdir -p "$d"
    MIT_PORT=$(free_port) || return 1
    cat >"$d/kdc.conf" <<EOF
[realms]
    $REALM = {
        database_name = $d/principal
        key_stash_file = $d/stash
        acl_file = $d/kadm5.acl
        kdc_listen = 127.0.0.1:$MIT_PORT
        kdc_tcp_listen = 127.0.0.1:$MIT_PORT
        master_key_type = $ENCTYPE
        supported_enctypes = $ENCTYPE:normal
        max_life = 10h
        default_principal_flags = +preauth
        pkinit_identity = FILE:$tmp/mit-kdc-cert.pem,$tmp/mit-kdc-key.pem
        pkinit_anchors = FILE:$tmp/pki-rsa/sp-root.pem
        pkinit_pool = FILE:$tmp/pki-rsa/sp-ca.pem
    }
[dbmodules]
    $REALM = {
        disable_last_success = true
        disable_lockout = true
    }
[logging]
    kdc = FILE:$d/kdc.log
EOF
    : >"$d/kadm5.acl"
    printf '[libdefaults]\n    default_realm = %s\n' "$REALM" >"$d/krb5.conf"
    export KRB5_CONFIG=$d/krb5.conf KRB5_KDC_PROFILE=$d/kdc.conf
    kdb5_util -r "$REALM" create -s -P bench-master-pw >"$d/setup.log" 2>&1 &&
        kadmin.local -r "$REALM" -q "addprinc -randkey -e $ENCTYPE:normal +requires_preauth $CLIENT" \
            >>"$d/setup.log" 2>&1 || { unset KRB5_CONFIG KRB5_KDC_PROFILE; return 1; }
    # -n: foreground (its pid is ours); -w: worker processes.
    krb5kdc -n -w "$WORKERS" -r "$REALM" >"$d/stdout.log" 2>&1 &
    MIT_PID=$!
    unset KRB5_CONFIG KRB5_KDC_PROFILE
    wait_udp "$MIT_PORT" || return 1
    for i in $(seq 1 50); do
        [ "$(pgrep -P "$MIT_PID" | wc -l)" -ge "$WORKERS" ] && return 0
        sleep 0.1
    done
    return 1
}

mit_pid_args() {
    local p
    printf -- '--kdc-pid %s ' "$MIT_PID"
    for p in $(pgrep -P "$MIT_PID"); do printf -- '--kdc-pid %s ' "$p"; done
}

setup_ck_db() {
    local d=$tmp/ck
    mkdir -p "$d"
    "$CK_CLI" init --db "$d/kdc.db" --realm "$REALM" --enctypes "$ENCTYPE" --max-life 10h \
        >"$d/setup.log" 2>&1 </dev/null &&
        "$CK_CLI" principal add --db "$d/kdc.db" "$CLIENT" --random --enctypes "$ENCTYPE" \
            >>"$d/setup.log" 2>&1 </dev/null &&
        "$CK_CLI" principal add --db "$d/kdc.db" "$DEV_PRINC" --random --enctypes "$ENCTYPE" \
            >>"$d/setup.log" 2>&1 </dev/null &&
        "$CK_CLI" device add --db "$d/kdc.db" --mac "$DEV_MAC" --principal "$DEV_PRINC" \
            >>"$d/setup.log" 2>&1 </dev/null
}

# start_ck KIND: cablekey-kdc on KIND's hierarchy (rsa or ec), from a kdc.conf with the pkinit_*
# settings; the caches at their minimum so that the cold shapes miss (a one-certificate shape
# hits either way). Log level info: one line per request, as MIT logs, and the line says whether
# the chain was verified or cached.
start_ck() {
    local kind=$1 d=$tmp/ck port pid pc=""
    port=$(free_port) || return 1
    # PacketCable devices have RSA certificates (and the draft form needs an RSA KDC identity).
    [ "$kind" = rsa ] && pc="pkinit_packetcable_anchors = $tmp/pki-$kind/mfg-root.pem"
    cat >"$d/kdc-$kind.conf" <<EOF
[realms]
    $REALM = {
        database_name = $d/kdc.db
        key_stash_file = $d/kdc.db.stash
        kdc_listen = 127.0.0.1:$port
        supported_enctypes = $ENCTYPE
        max_life = 10h
        pkinit_identity = $tmp/pki-$kind/kdc.p12
        pkinit_password_file = $tmp/pw
        pkinit_anchors = $tmp/pki-$kind/sp-root.pem
        $pc
        pkinit_pool = $tmp/pki-$kind/sp-ca.pem $tmp/pki-$kind/mfg-ca.pem
        pkinit_thumbprint_cache_size = 16
        pkinit_cert_cache_size = 16
    }
EOF
    "$CK_KDC" -c "$d/kdc-$kind.conf" --log "$d/kdc-$kind.log" --log-level info \
        --workers "$WORKERS" >"$d/stdout-$kind.log" 2>&1 &
    pid=$!
    wait_udp "$port" || return 1
    if [ "$kind" = rsa ]; then CKR_PID=$pid; CKR_PORT=$port; else CKE_PID=$pid; CKE_PORT=$port; fi
}

say "realms: MIT krb5kdc -w $WORKERS, cablekey-kdc --workers $WORKERS (RSA and EC identities) ..."
if [ "${BENCH_SKIP_MIT:-0}" != 1 ]; then
    setup_mit || die "MIT krb5kdc setup failed" "$tmp/mit/setup.log" "$tmp/mit/stdout.log" "$tmp/mit/kdc.log"
fi
if [ "${BENCH_SKIP_CK:-0}" != 1 ]; then
    setup_ck_db || die "cablekey realm setup failed" "$tmp/ck/setup.log"
    start_ck rsa || die "cablekey-kdc (RSA) did not start" "$tmp/ck/stdout-rsa.log" "$tmp/ck/kdc-rsa.log"
    start_ck ec || die "cablekey-kdc (EC) did not start" "$tmp/ck/stdout-ec.log" "$tmp/ck/kdc-ec.log"
fi

# ---------------------------------------------------------------------------------------------
# The KDC core in-process (build/pkinit_inproc): the same PKINIT exchange through
# kdc_handle_request with no sockets, the same configuration and certificates.
: >"$tmp/inproc"
inproc() { # inproc SHAPE
    local shape=$1 base=${1%-cold} kind kx ids
    case $base in rsa-dh) kind=rsa kx=modp2048 ;; rsa-kt) kind=rsa kx=rsa ;; *) kind=ec kx=p256 ;; esac
    if [ "$shape" != "$base" ]; then ids=(--identity-list "$tmp/cold-$kind.ids")
    else ids=(--identity "FILE:$tmp/$kind-client-cert.pem,$tmp/$kind-client-key.pem"); fi
    timeout -k 5 60 "$INPROC" --db "$tmp/ck/kdc.db" --kdc-identity "$tmp/pki-$kind/kdc.p12" \
        --password-file "$tmp/pw" --anchors "$tmp/pki-$kind/sp-root.pem" \
        --pool "$tmp/pki-$kind/sp-ca.pem" --client "$CLIENT" --kx "$kx" --cache-size 16 \
        --requests "${BENCH_PK_INPROC_REQUESTS:-200}" --shape "$shape" "${ids[@]}" \
        >"$tmp/inproc-$shape.out" 2>&1
    sed 's/^/    /' "$tmp/inproc-$shape.out" >&2
    grep '^INPROC ' "$tmp/inproc-$shape.out" >>"$tmp/inproc"
}
if [ "${BENCH_SKIP_CK:-0}" != 1 ]; then
    say "KDC core in-process (pkinit_inproc) ..."
    for spec in $SHAPES; do
        case $spec in device-*) ;; *) inproc "${spec%%:*}" ;; esac
    done
fi

# ---------------------------------------------------------------------------------------------
# Load runs.
: >"$tmp/results"
RUN_MAX=$((DURATION + 60))

# run_load IMPL SHAPE CLIENT: one measured run; appends its RESULT line (plus the chain
# verification counts from cablekey-kdc's log) to $tmp/results.
run_load() {
    local impl=$1 shape=$2 client=$3 base=${2%-cold} port kind log="" n0=0 out ids=() args=()
    local perf_pid=""
    out=$tmp/load-$impl-$shape-$client.out
    if [ $((SECONDS + DURATION + 15)) -gt "$BUDGET" ]; then
        say "$impl $shape ($client client): skipped, over the ${BUDGET}s budget"
        echo "RESULT impl=$impl shape=$shape client=$client skipped=1" >>"$tmp/results"
        return 0
    fi
    case $base in rsa-* | device-*) kind=rsa ;; *) kind=ec ;; esac
    case $impl in
    mit) port=$MIT_PORT; read -ra args <<<"$(mit_pid_args)" ;;
    *)
        if [ "$kind" = rsa ]; then port=$CKR_PORT; args=(--kdc-pid "$CKR_PID")
        else port=$CKE_PORT; args=(--kdc-pid "$CKE_PID"); fi
        log=$tmp/ck/kdc-$kind.log
        n0=$(wc -l <"$log")
        ;;
    esac
    if [ "$shape" != "$base" ]; then
        ids=(--identity-list "$tmp/cold-$kind.ids")
    elif [ "$base" = device-pktc ]; then
        ids=(--identity "FILE:$tmp/device-cert.pem,$tmp/device-key.pem")
    else
        ids=(--identity "FILE:$tmp/$kind-client-cert.pem,$tmp/$kind-client-key.pem")
    fi
    args+=(--kdc "127.0.0.1:$port" --realm "$REALM" --procs "$PROCS" --duration "$DURATION"
           --label "$impl" --shape "$shape" "${ids[@]}")
    say "$impl $shape ($client client, $PROCS processes, ${DURATION}s) ..."
    if [ "$PROFILE" = 1 ] && [ "$impl" = cablekey ] && [ "$shape" = "$PROFILE_SHAPE" ]; then
        # cpu-clock: this VM has no hardware counters; dwarf: libcrypto has no frame pointers.
        perf record -q -e cpu-clock --call-graph dwarf,16384 -o "$tmp/perf.data" -p "${args[1]}" \
            -- sleep $((DURATION + 4)) >"$tmp/perf.log" 2>&1 &
        perf_pid=$!
    fi
    if [ "$client" = krb5 ]; then
        [ "$base" = rsa-kt ] && args+=(--rsa)
        timeout -k 5 "$RUN_MAX" "$KRB5_LOAD" "${args[@]}" --client "$CLIENT@$REALM" \
            --anchors "FILE:$tmp/pki-$kind/sp-root.pem" --pool "FILE:$tmp/pki-$kind/sp-ca.pem" \
            >"$out" 2>&1
    else
        case $base in
        rsa-kt) args+=(--kx rsa) ;;
        ec-*) args+=(--kx p256) ;;
        device-pktc) args+=(--kx rsa --packetcable --client "$DEV_PRINC") ;;
        *) args+=(--kx modp2048) ;;
        esac
        timeout -k 5 "$RUN_MAX" "$CK_LOAD" "${args[@]}" --anchors "$tmp/pki-$kind/sp-root.pem" \
            --chain "$tmp/pki-$kind/sp-ca.pem" >"$out" 2>&1
    fi
    [ -n "$perf_pid" ] && wait "$perf_pid"
    sed 's/^/    /' "$out" >&2
    local extra=""
    if [ -n "$log" ]; then
        sleep 0.2
        extra=$(tail -n +"$((n0 + 1))" "$log" |
            awk '/ISSUE:.*pkinit/ { if (/chain verified/) v++; else if (/chain cached/) c++ }
                 END { printf "verified=%d cached=%d", v, c }')
    fi
    grep '^RESULT ' "$out" | sed "s/\$/ $extra/" >>"$tmp/results" ||
        echo "RESULT impl=$impl shape=$shape client=$client failed=1" >>"$tmp/results"
}

for spec in $SHAPES; do
    shape=${spec%%:*}
    client=krb5
    case $shape in ec-* | device-*) client=ck ;; esac
    [ "$spec" != "$shape" ] && client=${spec#*:}
    case $shape in
    rsa-dh | rsa-kt | rsa-dh-cold)
        [ "${BENCH_SKIP_MIT:-0}" != 1 ] && run_load mit "$shape" "$client"
        [ "${BENCH_SKIP_CK:-0}" != 1 ] && run_load cablekey "$shape" "$client"
        ;;
    ec-ecdh | ec-ecdh-cold | device-pktc)
        [ "${BENCH_SKIP_CK:-0}" != 1 ] && run_load cablekey "$shape" "$client"
        ;;
    *) say "unknown shape $shape (skipped)" ;;
    esac
done

# ---------------------------------------------------------------------------------------------
# Table.
floor_of() { # floor_of SHAPE -> µs
    awk -v s="$1" -v rs="$RSA_SIGN" -v rv="$RSA_VERIFY" -v es="$ECDSA_SIGN" -v ev="$ECDSA_VERIFY" \
        -v ec="$ECDH" -v dh="$FFDH" 'BEGIN {
        if (s == "rsa-dh") f = rs + rv + 2 * dh
        else if (s == "rsa-dh-cold") f = rs + rv + 2 * dh + 2 * rv
        else if (s == "rsa-kt" || s == "device-pktc") f = rs + 2 * rv
        else if (s == "ec-ecdh") f = es + ev + 2 * ec
        else if (s == "ec-ecdh-cold") f = es + ev + 2 * ec + 2 * ev
        printf "%.0f", f }'
}
lib_of() { # lib_of SHAPE -> µs from bench_pkinit_crypto, or empty
    case $1 in
    rsa-dh) lib_us "KDC exchange RSA-2048 + DH MODP-2048, repeat login" ;;
    rsa-dh-cold) lib_us "KDC exchange RSA-2048 + DH MODP-2048, nothing cached" ;;
    rsa-kt | device-pktc) lib_us "KDC exchange RSA-2048 key transport, repeat login" ;;
    ec-ecdh) lib_us "KDC exchange ECDSA P-256 + ECDH P-256, repeat login" ;;
    ec-ecdh-cold) lib_us "KDC exchange ECDSA P-256 + ECDH P-256, nothing cached" ;;
    esac
}
: >"$tmp/floors"
for s in rsa-dh rsa-kt rsa-dh-cold ec-ecdh ec-ecdh-cold device-pktc; do
    echo "$s $(floor_of "$s") $(lib_of "$s")" >>"$tmp/floors"
done

echo
echo "PKINIT: $(nproc) CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(openssl version | cut -d' ' -f1-2), MIT krb5 $(dpkg-query -W -f='${Version}' libkrb5-3 2>/dev/null || echo '?');" \
    "$PROCS client processes, one exchange in flight each; $WORKERS KDC workers each (krb5kdc -w $WORKERS, cablekey-kdc --workers $WORKERS); ${DURATION}s per run"
echo "openssl speed (µs/op, user CPU): RSA-2048 sign $RSA_SIGN, verify $RSA_VERIFY; FFDH-2048 $FFDH; ECDSA P-256 sign $ECDSA_SIGN, verify $ECDSA_VERIFY; ECDH P-256 $ECDH"
awk -v floors="$tmp/floors" -v procs="$PROCS" -v inprocf="$tmp/inproc" '
function field(line, key,    n, i, kv) {
    n = split(line, kv, " ")
    for (i = 1; i <= n; i++)
        if (index(kv[i], key "=") == 1)
            return substr(kv[i], length(key) + 2)
    return ""
}
BEGIN {
    while ((getline l < floors) > 0) {
        split(l, f, " ")
        flo[f[1]] = f[2]; lib[f[1]] = f[3] != "" ? sprintf("%.0f", f[3]) : ""
    }
    while ((getline l < inprocf) > 0)
        if (field(l, "failed") == "0") inp[field(l, "shape")] = field(l, "exchange_us")
    goal["rsa-dh"] = 2000; goal["rsa-dh-cold"] = 2000; goal["rsa-kt"] = 1000; goal["device-pktc"] = 1000
    goal["ec-ecdh"] = 350; goal["ec-ecdh-cold"] = 350
}
/^RESULT / {
    n++
    impl[n] = field($0, "impl"); shape[n] = field($0, "shape"); client[n] = field($0, "client")
    status[n] = field($0, "skipped") != "" ? "skipped" : field($0, "failed") != "" ? "FAILED" : ""
    ok[n] = field($0, "ok"); err[n] = field($0, "errors"); rps[n] = field($0, "rps")
    cpu[n] = field($0, "cpu_us_per_req"); sch[n] = field($0, "sched_us_per_req")
    gen[n] = field($0, "gen_cpu_us_per_req"); oth[n] = field($0, "other_cores")
    load[n] = field($0, "loadavg"); ver[n] = field($0, "verified"); cac[n] = field($0, "cached")
    if (status[n] == "" && (err[n] + 0) > 0) status[n] = "errors"
    if (status[n] == "" && impl[n] == "mit") mitcpu[shape[n] "/" client[n]] = cpu[n]
}
END {
    printf "\n| shape | KDC | client | exchanges | exch/s | KDC CPU µs/exch | (schedstat) | MIT/cablekey | goal | in-process µs | our lib µs | crypto floor µs | KDC CPU ÷ floor | chains verified/cached | client CPU µs/exch | other tenants (cores) | load avg |\n"
    printf "|---|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|---:|---:|---:|\n"
    for (i = 1; i <= n; i++) {
        s = shape[i]
        cl = client[i] == "krb5" ? "libkrb5" : client[i] == "ck" ? "cablekey" : client[i]
        if (status[i] == "skipped" || status[i] == "FAILED") {
            printf "| %s | %s | %s | %s | | | | | | | %s | %s | | | | | |\n", s, impl[i], cl, status[i], lib[s], flo[s]
            continue
        }
        ratio = ""; g = ""
        if (impl[i] != "mit") {
            k = s "/" client[i]
            if ((k in mitcpu) && cpu[i] + 0 > 0) ratio = sprintf("%.2f×", mitcpu[k] / cpu[i])
            if (s in goal) g = sprintf("≤ %d: %s", goal[s], cpu[i] + 0 <= goal[s] ? "met" : "missed")
            if (s !~ /cold/ && ver[i] != "") g = g sprintf("; repeat login: %s", ver[i] + 0 <= 2 ? "no chain verification" : ver[i] " verifications")
        } else if (s ~ /^ec/) {
            g = "n/a"
        }
        vc = ver[i] != "" ? ver[i] " / " cac[i] : "-"
        ip = impl[i] != "mit" && (s in inp) ? sprintf("%.0f", inp[s]) : ""
        xf = flo[s] > 0 && cpu[i] + 0 > 0 ? sprintf("%.1f×", cpu[i] / flo[s]) : ""
        printf "| %s | %s | %s | %d%s | %.0f | %.0f | %.0f | %s | %s | %s | %s | %s | %s | %s | %.0f | %s | %s |\n",
            s, impl[i], cl, ok[i], status[i] != "" ? " (" err[i] " errors)" : "", rps[i], cpu[i],
            sch[i], ratio, g, ip, lib[s], flo[s], xf, vc, gen[i], oth[i], load[i]
    }
    printf "\nAn exchange: AS-REQ, PREAUTH_REQUIRED, AS-REQ with PA-PK-AS-REQ, AS-REP (two KDC requests); device-pktc:\n"
    printf "one AS-REQ with PA-PK-AS-REQ-OLD and its AS-REP (the PacketCable form has no PREAUTH_REQUIRED round).\n"
    printf "In-process: the KDC core alone (pkinit_inproc: PREAUTH_REQUIRED + PKINIT AS-REQ through kdc_handle_request,\n"
    printf "no sockets, same configuration). Our lib: bench_pkinit_crypto, the crypto of the KDC side composed from\n"
    printf "lib/pkinit calls. Crypto floor: what one exchange must compute at openssl speed rates (DH/ECDH keygen\n"
    printf "counted as one more key-agreement operation; cold: + the 2 signature verifications of leaf and CA).\n"
    printf "KDC CPU ÷ floor does not depend on how fast the machine was during the run (openssl speed ran in it too).\n"
    printf "Chains verified/cached: from the cablekey-kdc log lines of the run, including its %d warm-up exchanges\n", procs
    printf "(the first per worker may verify).\n"
    printf "MIT 1.20 has no ECDH, no device table and no PacketCable form: ec-ecdh and device shapes run against\n"
    printf "cablekey-kdc only.\n"
}' "$tmp/results"

if [ "$PROFILE" = 1 ] && [ -s "$tmp/perf.data" ]; then
    echo
    echo "perf profile of cablekey-kdc during $PROFILE_SHAPE (its row's CPU includes perf's own"
    echo "stack copies). Samples by library:"
    perf report -i "$tmp/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null |
        grep '%' | head -n 6
    echo "Share of samples with the function on the stack:"
    perf report -i "$tmp/perf.data" --children --sort symbol --stdio -g none 2>/dev/null |
        grep '%' | grep -E '\] (kdc_handle_request|kdc_pkinit_verify_request|kdc_pkinit_build_reply|ck_pkinit_cms_verify|ck_pkinit_cms_sign|ck_pkinit_dh_kdc_exchange|ck_pkinit_kdf|ck_pkinit_cms_envelope|ck_pkinit_verify_chain|RSA_sign|DES_encrypt2|ck_asn1_as_req_decode|kdc_reply_encode|log_request|entry_SYSCALL_64_after_hwframe|pvm_irq_enable|epoll_wait) ' |
        awk '{ printf "  %7s  %s\n", $1, $4 }'
fi
