# shellcheck shell=bash
# tests/interop/lib.sh — realm fixture for the interop tests (sourced, never run).
#
# In the spirit of MIT's k5test: every test script sources this file, which makes a private temp
# dir, picks free loopback ports, creates a realm with the cablekey CLI, starts cablekey-kdc in the
# background and drives stock MIT / Heimdal clients against it. Output is TAP: each case prints
# exactly one "ok N - desc" or "not ok N - desc"; done_testing prints "N passed, N failed" and
# exits non-zero when anything failed.
#
# Environment:
#   CK_BUILD       absolute build dir holding cablekey-kdc and cablekey (default /work/main/build)
#   CK_KDC_IMPL    "cablekey" (default) or "mit": run the same tests against MIT krb5kdc, to
#                  validate the client side of the tests. cablekey-specific checks report
#                  "# SKIP" in mit mode only; the default mode never skips.
#   CK_TIMEOUT     seconds allowed for each client call (default 20)
#   CK_KEEP_TMP=1  keep the temp dir (its path is printed) for post-mortem
#
# Fixture API (all die with a "not ok" + Bail out on setup errors):
#   realm_init REALM [ENCTYPES]       create DB/stash/krbtgt; write $KRB5_CONFIG
#   realm_addprinc NAME PW|--random [--no-preauth --enctypes L --max-life S --max-renew S
#                                    --expires EPOCH --disallow-all-tix]
#   realm_modprinc NAME OPTS...       (--expires E|--never-expires|--requires-preauth|
#                                      --no-preauth|--disallow-all-tix|--allow-tix)
#   realm_rotate NAME [--random|--password PW]
#   realm_ktexport KEYTAB NAME...
#   realm_start_kdc [extra args]      flags mode: --listen each of ${CK_LISTEN[@]}, --db, --stash
#   realm_start_kdc_conf [extra args] config mode: writes $tmp/kdc.conf (see write_kdc_conf)
#   realm_stop_kdc                    SIGTERM; one TAP case: exit 0, no sanitizer report
#   write_krb5_conf FILE KDC_ADDR [libdefaults lines...]
#   kinit_pw PRINC PW [kinit args]    MIT kinit, password on stdin, bounded by timeout
#   realm_pkinit PKIDIR PWFILE        PKINIT with a `cablekey pki` directory (see below)
# TAP: ok, not_ok, skip_case, expect_success, expect_failure, expect_output, assert_log,
#      assert_file_grep, ck_only, done_testing.

set -uo pipefail
export LC_ALL=C TZ=UTC

CK_BUILD="${CK_BUILD:-/work/main/build}"
CK_KDC_IMPL="${CK_KDC_IMPL:-cablekey}"
CK_TIMEOUT="${CK_TIMEOUT:-20}"
CK_INTEROP_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CK_HEIMDAL_BIN="${CK_HEIMDAL_DIR:-/opt/cablekey-heimdal}/usr/bin"
if [ -x /usr/bin/python3 ]; then CK_PY=/usr/bin/python3; else CK_PY=python3; fi
KRBPKT=("$CK_PY" "$CK_INTEROP_DIR/krbpkt.py")
CK_ASAN=0
case "${CK_BUILD%/}" in
    *build-asan)
        CK_ASAN=1
        export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
        export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
        ;;
esac
CK_CLI="$CK_BUILD/cablekey"
CK_KDC="$CK_BUILD/cablekey-kdc"

T_N=0; T_PASS=0; T_FAIL=0
KDC_PID=""
CK_BG_PIDS=()
tmp="$(mktemp -d /tmp/ck-interop.XXXXXX)"
chmod 755 "$tmp"

CK_MAIN_PID=$BASHPID

ck_cleanup() {
    local p
    # A subshell that inherited the trap must never clean up the fixture.
    [ "$BASHPID" = "$CK_MAIN_PID" ] || return 0
    if [ -n "$KDC_PID" ]; then kill -KILL "$KDC_PID" 2>/dev/null; wait "$KDC_PID" 2>/dev/null; fi
    for p in "${CK_BG_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    if [ "${CK_KEEP_TMP:-0}" = 1 ]; then echo "# kept $tmp"; else rm -rf "$tmp"; fi
}
trap ck_cleanup EXIT
trap 'exit 130' INT TERM

# Client-side environment: private config, ccache, trace, replay cache; never the system files.
export KRB5_CONFIG="$tmp/krb5.conf"
export KRB5CCNAME="FILE:$tmp/ccache"
export KRB5_TRACE="$tmp/trace.log"
export KRB5RCACHEDIR="$tmp"
export KRB5_KTNAME="FILE:$tmp/default.keytab"
export KRB5_CLIENT_KTNAME="FILE:$tmp/default-client.keytab"
unset KRB5_KDC_PROFILE

# ---------------------------------------------------------------------------------------------
# TAP helpers

# Prints DETAIL (and optional files) as TAP comments.
ck_diag() { # ck_diag TEXT
    [ -n "${1:-}" ] && printf '%s\n' "$1" | head -n 40 | sed 's/^/#   /'
    return 0
}

ok() { T_N=$((T_N + 1)); T_PASS=$((T_PASS + 1)); echo "ok $T_N - $1"; }
not_ok() { # not_ok DESC [DETAIL]
    T_N=$((T_N + 1)); T_FAIL=$((T_FAIL + 1)); echo "not ok $T_N - $1"
    ck_diag "${2:-}"
    return 0
}
# A TAP skip; only ever used through ck_only in mit mode.
skip_case() { T_N=$((T_N + 1)); T_PASS=$((T_PASS + 1)); echo "ok $T_N - $1 # SKIP $2"; }

is_mit() { [ "$CK_KDC_IMPL" = mit ]; }

# ck_only DESC cmd... : a cablekey-specific check; reported as SKIP against MIT krb5kdc.
ck_only() {
    local desc=$1; shift
    if is_mit; then skip_case "$desc" "mit mode"; else "$@"; fi
}

# Runs "$@" bounded by CK_TIMEOUT (shell functions are run directly: they bound their own calls),
# stdin from /dev/null, output in $tmp/last.out and $tmp/last.err. Returns the exit status.
ck_run() {
    local rc
    if [ "$(type -t "$1")" = function ]; then
        "$@" </dev/null >"$tmp/last.out" 2>"$tmp/last.err"; rc=$?
    else
        timeout -k 5 "$CK_TIMEOUT" "$@" </dev/null >"$tmp/last.out" 2>"$tmp/last.err"; rc=$?
    fi
    [ $rc -eq 124 ] && echo "timed out after ${CK_TIMEOUT}s" >>"$tmp/last.err"
    return $rc
}

ck_last_output() { cat "$tmp/last.err" "$tmp/last.out" 2>/dev/null | tail -n 20; }

expect_success() { # expect_success DESC cmd...
    local desc=$1 rc; shift
    ck_run "$@"; rc=$?
    if [ $rc -eq 0 ]; then ok "$desc"; return 0; fi
    not_ok "$desc" "command: $*
exit $rc; output:
$(ck_last_output)"
    return 1
}

expect_failure() { # expect_failure DESC PATTERN cmd...  (exit != 0 and output matches PATTERN)
    local desc=$1 pat=$2 rc; shift 2
    ck_run "$@"; rc=$?
    if [ $rc -eq 0 ]; then
        not_ok "$desc" "command: $* succeeded but should fail; output:
$(ck_last_output)"; return 1
    fi
    if [ $rc -ge 124 ] && [ $rc -le 137 ]; then
        not_ok "$desc" "command: $* timed out or was killed (exit $rc)"; return 1
    fi
    if ! grep -Eq -- "$pat" "$tmp/last.err" "$tmp/last.out" 2>/dev/null; then
        not_ok "$desc" "command: $* failed (exit $rc) but output does not match /$pat/:
$(ck_last_output)"; return 1
    fi
    ok "$desc"
}

expect_output() { # expect_output DESC PATTERN cmd...  (exit 0 and stdout/stderr match PATTERN)
    local desc=$1 pat=$2 rc; shift 2
    ck_run "$@"; rc=$?
    if [ $rc -ne 0 ]; then
        not_ok "$desc" "command: $* exit $rc; output:
$(ck_last_output)"; return 1
    fi
    if ! grep -Eq -- "$pat" "$tmp/last.out" "$tmp/last.err" 2>/dev/null; then
        not_ok "$desc" "command: $* output does not match /$pat/:
$(ck_last_output)"; return 1
    fi
    ok "$desc"
}

assert_file_grep() { # assert_file_grep DESC PATTERN FILE
    if grep -Eq -- "$2" "$3" 2>/dev/null; then ok "$1"; return 0; fi
    not_ok "$1" "no line matches /$2/ in $3; last lines:
$(tail -n 15 "$3" 2>/dev/null)"
    return 1
}

# assert_log PATTERN [DESC]: the KDC log holds a line matching PATTERN (extended regex). The log
# line format is MIT's, so most patterns hold for both implementations; enctypes may be logged as
# "18" (cablekey) or "aes256-cts-hmac-sha1-96(18)" (MIT 1.20), see et_re.
assert_log() {
    local pat=$1 desc=${2:-"KDC log matches /$1/"}
    local i
    # The KDC may flush its log line just after it sends the reply.
    for i in 1 2 3 4 5 6 7 8 9 10; do
        grep -Eq -- "$pat" "$tmp/kdc.log" 2>/dev/null && { ok "$desc"; return 0; }
        sleep 0.1
    done
    not_ok "$desc" "no line matches /$pat/ in the KDC log; last lines:
$(tail -n 10 "$tmp/kdc.log" 2>/dev/null)"
    return 1
}

# et_re N: a regex for enctype N as logged by either implementation ("18" or "name(18)").
et_re() { printf '([a-z0-9-]+\\()?%s\\)?' "$1"; }

# Counts KDC log lines matching PATTERN, once the lines of requests just answered are written
# (cablekey-kdc writes request lines in batches, at most 100 ms after the request).
log_count() { sleep 0.3; grep -Ec -- "$1" "$tmp/kdc.log" 2>/dev/null || true; }

done_testing() {
    echo "$T_PASS passed, $T_FAIL failed"
    [ "$T_FAIL" -eq 0 ] && [ "$T_N" -gt 0 ]
    exit $?
}

bail() { # bail DESC [DETAIL] : a setup step failed; nothing after it can be trusted
    not_ok "$1" "${2:-}"
    echo "Bail out! $1"
    echo "$T_PASS passed, $T_FAIL failed"
    exit 1
}

# require_tool DESC PATH... : fails loudly (one "not ok") if a third-party tool is missing.
require_tool() {
    local desc=$1 t; shift
    for t in "$@"; do
        if ! command -v "$t" >/dev/null 2>&1 && [ ! -x "$t" ]; then
            bail "$desc: $t not installed (run scripts/install-deps.sh)"
        fi
    done
}

# ---------------------------------------------------------------------------------------------
# Ports and configs

# Prints a port free for both TCP and UDP on 127.0.0.1 (and ::1 when available).
free_port() {
    "$CK_PY" - <<'EOF'
import random, socket
for _ in range(200):
    p = random.randint(20000, 60999)
    socks = []
    try:
        for fam, typ, host in ((socket.AF_INET, socket.SOCK_STREAM, '127.0.0.1'),
                               (socket.AF_INET, socket.SOCK_DGRAM, '127.0.0.1'),
                               (socket.AF_INET6, socket.SOCK_STREAM, '::1'),
                               (socket.AF_INET6, socket.SOCK_DGRAM, '::1')):
            s = socket.socket(fam, typ)
            socks.append(s)
            if fam == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                s.bind((host, p))
            except OSError as e:
                if fam == socket.AF_INET6 and e.errno in (97, 99):  # no IPv6 on this host
                    continue
                raise
    except OSError:
        continue
    finally:
        for s in socks:
            s.close()
    print(p)
    break
else:
    raise SystemExit("no free port")
EOF
}

# write_krb5_conf FILE KDC_ADDR [extra libdefaults lines...]
write_krb5_conf() {
    local f=$1 kdc=$2 l; shift 2
    {
        echo "[libdefaults]"
        echo "    default_realm = $REALM"
        echo "    dns_lookup_kdc = false"
        echo "    dns_lookup_realm = false"
        echo "    dns_canonicalize_hostname = false"
        echo "    rdns = false"
        echo "    ignore_acceptor_hostname = false"
        echo "    kdc_timesync = 0"
        echo "    max_retries = 2"
        for l in "$@"; do echo "    $l"; done
        echo ""
        echo "[realms]"
        echo "    $REALM = {"
        echo "        kdc = $kdc"
        echo "    }"
        echo ""
        echo "[domain_realm]"
        echo "    .test = $REALM"
        echo "    test = $REALM"
    } >"$f"
}

# realm_init REALM [ENCTYPES]: creates the realm database and the client krb5.conf.
#   Sets REALM, PORT, DB, STASH, CK_ENCTYPES, CK_LISTEN=(127.0.0.1:$PORT).
realm_init() {
    REALM=$1
    CK_ENCTYPES=${2:-}
    PORT=$(free_port) || bail "pick a free port"
    CK_LISTEN=("127.0.0.1:$PORT")
    CK_KDCDEFAULTS_EXTRA=()
    CK_MIT_REALM_EXTRA=()
    CK_PKINIT_KDC_ARGS=()
    DB="$tmp/kdc.db"
    STASH="$tmp/kdc.db.stash"
    write_krb5_conf "$KRB5_CONFIG" "127.0.0.1:$PORT"
    if is_mit; then
        require_tool "MIT realm" kdb5_util kadmin.local krb5kdc
        DB="$tmp/mitdb/principal"; STASH="$tmp/mitdb/stash"
        mkdir -p "$tmp/mitdb"
        write_mit_kdc_conf
        KRB5_KDC_PROFILE="$tmp/kdc.conf" timeout 30 kdb5_util -r "$REALM" create -s -P masterpw \
            >"$tmp/init.log" 2>&1 || bail "kdb5_util create" "$(cat "$tmp/init.log")"
    else
        [ -x "$CK_CLI" ] || bail "cablekey CLI not built at $CK_CLI"
        [ -x "$CK_KDC" ] || bail "cablekey-kdc not built at $CK_KDC"
        local args=(init --db "$DB" --realm "$REALM")
        [ -n "$CK_ENCTYPES" ] && args+=(--enctypes "$CK_ENCTYPES")
        timeout 30 "$CK_CLI" "${args[@]}" >"$tmp/init.log" 2>&1 </dev/null ||
            bail "cablekey init" "$(cat "$tmp/init.log")"
        [ -f "$STASH" ] || bail "cablekey init created no stash at $STASH"
    fi
    return 0
}

# realm_destroy: removes the realm's database, stash and configs (KDC must be stopped), so that
# realm_init can create another realm in the same test.
realm_destroy() {
    [ -z "$KDC_PID" ] || bail "realm_destroy: the KDC is still running"
    rm -rf "$tmp/mitdb" "$tmp"/kdc.db* "$tmp/kdc.conf" "$tmp/kdc.log" "$tmp/ccache"
}

# The supported_enctypes value for a kdc.conf, from CK_ENCTYPES.
ck_supported_enctypes() {
    local e out="" IFS=,
    if [ -z "$CK_ENCTYPES" ]; then
        echo "aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal aes256-cts-hmac-sha384-192:normal aes128-cts-hmac-sha256-128:normal"
        return
    fi
    for e in $CK_ENCTYPES; do out="$out $e:normal"; done
    echo "${out# }"
}

kadmin_mit() { # kadmin_mit QUERY : runs one kadmin.local query against the MIT realm
    KRB5_KDC_PROFILE="$tmp/kdc.conf" timeout 30 kadmin.local -r "$REALM" -q "$1" >"$tmp/kadmin.log" 2>&1 &&
        ! grep -Eq "^(add|modify|change|get|delete)_principal:|error|not found|Unknown" "$tmp/kadmin.log"
}

write_mit_kdc_conf() {
    local l listen
    listen=$(IFS=,; echo "${CK_LISTEN[*]}")
    {
        echo "[kdcdefaults]"
        echo "    kdc_listen = $listen"
        echo "    kdc_tcp_listen = $listen"
        for l in "${CK_KDCDEFAULTS_EXTRA[@]}"; do echo "    $l"; done
        echo "[realms]"
        echo "    $REALM = {"
        echo "        database_name = $DB"
        echo "        key_stash_file = $STASH"
        echo "        acl_file = $tmp/kadm5.acl"
        echo "        max_life = 10h"
        echo "        max_renewable_life = 7d"
        echo "        master_key_type = aes256-cts-hmac-sha1-96"
        echo "        supported_enctypes = $(ck_supported_enctypes)"
        echo "        default_principal_flags = +preauth"
        for l in "${CK_MIT_REALM_EXTRA[@]}"; do echo "        $l"; done
        echo "    }"
        echo "[logging]"
        echo "    kdc = FILE:$tmp/kdc.log"
    } >"$tmp/kdc.conf"
}

# write_kdc_conf FILE: a cablekey-kdc config (krb5 profile syntax) for the current realm.
write_kdc_conf() {
    local f=$1 l listen
    listen=$(IFS=,; echo "${CK_LISTEN[*]}")
    {
        echo "# cablekey-kdc test configuration"
        echo "[kdcdefaults]"
        echo "    kdc_listen = $listen"
        for l in "${CK_KDCDEFAULTS_EXTRA[@]}"; do echo "    $l"; done
        echo ""
        echo "[realms]"
        echo "    $REALM = {"
        echo "        database_name = $DB"
        echo "        key_stash_file = $STASH"
        echo "        max_life = 10h"
        echo "        max_renewable_life = 7d"
        [ -n "$CK_ENCTYPES" ] && echo "        supported_enctypes = ${CK_ENCTYPES//,/ }"
        echo "    }"
    } >"$f"
}

# Translates cablekey principal options into kadmin.local options (mit mode).
mit_princ_opts() {
    local out=() e
    while [ $# -gt 0 ]; do
        case $1 in
            --no-preauth) out+=(-requires_preauth) ;;
            --requires-preauth) out+=(+requires_preauth) ;;
            --disallow-all-tix) out+=(-allow_tix) ;;
            --allow-tix) out+=(+allow_tix) ;;
            --never-expires) out+=(-expire never) ;;
            --expires) out+=(-expire "\"$(date -u -d "@$2" '+%Y-%m-%d %H:%M:%S UTC')\""); shift ;;
            --max-life) out+=(-maxlife "\"$2 seconds\""); shift ;;
            --max-renew) out+=(-maxrenewlife "\"$2 seconds\""); shift ;;
            --enctypes) e=$(echo "$2" | sed 's/\([^,]*\)/\1:normal/g'); out+=(-e "$e"); shift ;;
            *) echo "mit_princ_opts: unknown option $1" >&2; return 1 ;;
        esac
        shift
    done
    echo "${out[*]}"
}

# realm_addprinc NAME PW|--random [options]
# The KDC's per-worker principal caches poll the database's change counter every 200 ms
# (CK_STORE_CACHE_CHECK_MS), so a change made with the CLI reaches a running KDC within that time.
ck_settle() { is_mit || sleep 0.3; }

realm_addprinc() {
    local name=$1 pw=$2; shift 2
    if is_mit; then
        local o pwopt
        o=$(mit_princ_opts "$@") || bail "addprinc $name: bad options"
        if [ "$pw" = --random ]; then pwopt="-randkey"; else pwopt="-pw \"$pw\""; fi
        kadmin_mit "addprinc $pwopt $o $name" || bail "addprinc $name" "$(cat "$tmp/kadmin.log")"
    else
        local pwargs
        if [ "$pw" = --random ]; then pwargs=(--random); else pwargs=(--password "$pw"); fi
        timeout 30 "$CK_CLI" principal add --db "$DB" "$name" "${pwargs[@]}" "$@" \
            >"$tmp/addprinc.log" 2>&1 </dev/null ||
            bail "cablekey principal add $name $*" "$(cat "$tmp/addprinc.log")"
        ck_settle
    fi
}

realm_modprinc() { # realm_modprinc NAME OPTS...
    local name=$1; shift
    if is_mit; then
        local o; o=$(mit_princ_opts "$@") || return 1
        kadmin_mit "modprinc $o $name"
    else
        timeout 30 "$CK_CLI" principal modify --db "$DB" "$name" "$@" </dev/null
        local rc=$?; ck_settle; return $rc
    fi
}

realm_rotate() { # realm_rotate NAME [--random|--password PW] : new kvno, old keys kept
    local name=$1; shift
    if is_mit; then
        if [ "${1:-}" = --password ]; then kadmin_mit "cpw -keepold -pw \"$2\" $name"
        else kadmin_mit "cpw -keepold -randkey $name"; fi
    else
        timeout 30 "$CK_CLI" principal rotate --db "$DB" "$name" "${@:---random}" </dev/null
        local rc=$?; ck_settle; return $rc
    fi
}

realm_ktexport() { # realm_ktexport KEYTAB NAME... : exports the current keys to a new keytab
    rm -f "$1"
    realm_ktexport_append "$@"
}

# realm_ktexport_append KEYTAB NAME... : adds the keys to an existing keytab (as `ktadd` does;
# MIT also writes the old kvnos it keeps, cablekey writes the current kvno).
realm_ktexport_append() {
    local kt=$1 n; shift
    if is_mit; then
        for n in "$@"; do kadmin_mit "ktadd -norandkey -k $kt $n" || return 1; done
    else
        timeout 30 "$CK_CLI" keytab export --db "$DB" --out "$kt" "$@" </dev/null
    fi
}

# realm_pkinit PKIDIR PWFILE: PKINIT for the current realm with the certificates of a
# `cablekey pki init` directory (PWFILE protects its PKCS#12 files). Call after realm_init and
# before realm_start_kdc.
#   Clients: $KRB5_CONFIG trusts PKIDIR/sp-root.pem and offers PKIDIR/sp-ca.pem as intermediate
#     (pkinit_pool: MIT ignores the chain inside a PKCS#12 and needs the SP CA to build its own).
#     Heimdal's kinit: KRB5_CONFIG=$tmp/krb5-heimdal-pkinit.conf, -D FILE:PKIDIR/sp-root.pem and
#     a FILE:cert.pem,key.pem identity (its hx509 decrypts no OpenSSL 3 PKCS#12).
#   MIT krb5kdc: pkinit_identity = FILE:$tmp/pkinit-kdc-cert.pem,$tmp/pkinit-kdc-key.pem (the
#     KDC identity exported with an unencrypted key, 0600: krb5kdc cannot prompt for a PKCS#12
#     password), anchors sp-root.pem and mfg-root.pem, pool sp-ca.pem and mfg-ca.pem.
#   cablekey-kdc: CK_PKINIT_KDC_ARGS holds --pkinit-identity PKIDIR/kdc.p12
#     --pkinit-password-file PWFILE --pkinit-anchors PKIDIR/sp-root.pem,PKIDIR/mfg-root.pem;
#     start it with realm_start_kdc "${CK_PKINIT_KDC_ARGS[@]}" (empty in mit mode).
realm_pkinit() {
    local dir=$1 pw=$2
    [ -f "$dir/kdc.p12" ] && [ -f "$dir/sp-root.pem" ] || bail "realm_pkinit: $dir is not a cablekey PKI"
    write_krb5_conf "$KRB5_CONFIG" "127.0.0.1:$PORT" "pkinit_anchors = FILE:$dir/sp-root.pem" \
        "pkinit_pool = FILE:$dir/sp-ca.pem"
    # Heimdal's kinit offers the 1024-bit group unless told otherwise, which KDCs refuse ("Key
    # parameters not accepted"); its moduli table rates the 2048-bit MODP group 14 at 1760 bits
    # and wants more than the minimum.
    write_krb5_conf "$tmp/krb5-heimdal-pkinit.conf" "127.0.0.1:$PORT" "pkinit_dh_min_bits = 1700"
    if is_mit; then
        rm -f "$tmp/pkinit-kdc-cert.pem" "$tmp/pkinit-kdc-key.pem"
        timeout 30 "$CK_CLI" pki export "$dir/kdc.p12" --password-file "$pw" \
            --pem-out "$tmp/pkinit-kdc" --pem-nopass >"$tmp/pkinit.log" 2>&1 </dev/null ||
            bail "realm_pkinit: export the KDC identity" "$(cat "$tmp/pkinit.log")"
        CK_MIT_REALM_EXTRA=(
            "pkinit_identity = FILE:$tmp/pkinit-kdc-cert.pem,$tmp/pkinit-kdc-key.pem"
            "pkinit_anchors = FILE:$dir/sp-root.pem"
            "pkinit_anchors = FILE:$dir/mfg-root.pem"
            "pkinit_pool = FILE:$dir/sp-ca.pem"
            "pkinit_pool = FILE:$dir/mfg-ca.pem"
        )
        CK_PKINIT_KDC_ARGS=()
    else
        CK_PKINIT_KDC_ARGS=(--pkinit-identity "$dir/kdc.p12" --pkinit-password-file "$pw"
                            --pkinit-anchors "$dir/sp-root.pem,$dir/mfg-root.pem")
    fi
}

# kinit_pkinit PRINC P12 PWFILE [kinit args]: MIT kinit with a PKCS#12 identity; the PKCS#12
# password goes to the prompter on stdin, bounded by a timeout.
kinit_pkinit() {
    local princ=$1 p12=$2 pw=$3; shift 3
    timeout -k 5 "$CK_TIMEOUT" kinit -X "X509_user_identity=PKCS12:$p12" "$@" "$princ" <"$pw"
}

# ---------------------------------------------------------------------------------------------
# KDC process

# ck_wait_port ADDR:PORT: true once a TCP connect succeeds.
ck_tcp_probe() {
    local hp=$1 host port
    port=${hp##*:}; host=${hp%:*}; host=${host#[}; host=${host%]}
    timeout 2 bash -c "exec 3<>/dev/tcp/$host/$port" 2>/dev/null
}

ck_wait_kdc_ready() {
    local i
    for i in $(seq 1 100); do
        if ! kill -0 "$KDC_PID" 2>/dev/null; then
            wait "$KDC_PID"; local rc=$?
            KDC_PID=""
            # A start that arms a crash point reached at once (CK_KDC_MAY_EXIT=1): the caller
            # checks the exit itself.
            [ -z "${CK_KDC_MAY_EXIT:-}" ] || return 0
            bail "KDC started" "the KDC exited with status $rc during startup; log:
$(tail -n 20 "$tmp/kdc.log" 2>/dev/null)
stderr:
$(tail -n 20 "$tmp/kdc.stderr" 2>/dev/null)"
        fi
        if ck_tcp_probe "${CK_LISTEN[0]}"; then return 0; fi
        sleep 0.1
    done
    bail "KDC started" "the KDC did not answer on ${CK_LISTEN[0]} within 10 s; log:
$(tail -n 20 "$tmp/kdc.log" 2>/dev/null)
stderr:
$(tail -n 20 "$tmp/kdc.stderr" 2>/dev/null)"
}

# realm_start_kdc [extra args]: cablekey-kdc in flags mode (or MIT krb5kdc, which gets the extra
# args too: pass MIT options in mit mode), then waits for it.
realm_start_kdc() {
    [ -z "$KDC_PID" ] || bail "realm_start_kdc: a KDC is already running"
    : >"$tmp/kdc.log"
    # The KDC gets its own krb5.conf: MIT's profile library re-reads a changed file, so a test
    # that narrows the client's permitted_enctypes must not change the KDC's view.
    write_krb5_conf "$tmp/krb5-kdc-side.conf" "127.0.0.1:$PORT"
    if is_mit; then
        write_mit_kdc_conf
        KRB5_CONFIG="$tmp/krb5-kdc-side.conf" KRB5_KDC_PROFILE="$tmp/kdc.conf" krb5kdc -n -r "$REALM" -P "$tmp/kdc.pid" "$@" \
            >"$tmp/kdc.stderr" 2>&1 </dev/null &
        KDC_PID=$!
    else
        [ -x "$CK_KDC" ] || bail "cablekey-kdc not built at $CK_KDC"
        local args=() l
        for l in "${CK_LISTEN[@]}"; do args+=(--listen "$l"); done
        KRB5_CONFIG="$tmp/krb5-kdc-side.conf" "$CK_KDC" "${args[@]}" --db "$DB" --stash "$STASH" --log "$tmp/kdc.log" --log-level debug --log-flush-ms 0 "$@" \
            >"$tmp/kdc.stderr" 2>&1 </dev/null &
        KDC_PID=$!
    fi
    ck_wait_kdc_ready
}

# realm_start_kdc_conf [extra args]: cablekey-kdc -c $tmp/kdc.conf (listen addresses, DB, stash,
# CK_KDCDEFAULTS_EXTRA lines all in the file); MIT krb5kdc gets the same settings in its kdc.conf.
realm_start_kdc_conf() {
    if is_mit; then realm_start_kdc "$@"; return; fi
    [ -z "$KDC_PID" ] || bail "realm_start_kdc_conf: a KDC is already running"
    [ -x "$CK_KDC" ] || bail "cablekey-kdc not built at $CK_KDC"
    : >"$tmp/kdc.log"
    write_kdc_conf "$tmp/kdc.conf"
    write_krb5_conf "$tmp/krb5-kdc-side.conf" "127.0.0.1:$PORT"
    KRB5_CONFIG="$tmp/krb5-kdc-side.conf" "$CK_KDC" -c "$tmp/kdc.conf" --log "$tmp/kdc.log" --log-level debug --log-flush-ms 0 "$@" \
        >"$tmp/kdc.stderr" 2>&1 </dev/null &
    KDC_PID=$!
    ck_wait_kdc_ready
}

# True if the KDC log or stderr holds a sanitizer report.
ck_sanitizer_report() {
    grep -Eh "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error|SUMMARY: (Address|Undefined|Leak)" \
        "$tmp/kdc.log" "$tmp/kdc.stderr" 2>/dev/null | head -n 5
}

# realm_stop_kdc: SIGTERM, waits at most 10 s; one TAP case (exit 0, no sanitizer report).
realm_stop_kdc() {
    local desc="KDC stops cleanly on SIGTERM (exit 0, no sanitizer report)" rc rep
    [ -n "$KDC_PID" ] || { not_ok "$desc" "no KDC running"; return 1; }
    kill -TERM "$KDC_PID" 2>/dev/null
    local i
    for i in $(seq 1 100); do
        kill -0 "$KDC_PID" 2>/dev/null || break
        # a zombie child counts as gone
        [ "$(ps -o stat= -p "$KDC_PID" 2>/dev/null | cut -c1)" = Z ] && break
        sleep 0.1
    done
    kill -KILL "$KDC_PID" 2>/dev/null
    wait "$KDC_PID"; rc=$?
    KDC_PID=""
    rep=$(ck_sanitizer_report)
    if [ $rc -ne 0 ]; then
        not_ok "$desc" "exit status $rc (137 = killed after 10 s); stderr:
$(tail -n 30 "$tmp/kdc.stderr" 2>/dev/null)"
        return 1
    fi
    if [ -n "$rep" ]; then
        not_ok "$desc" "sanitizer report: $rep
$(grep -h -A 30 -E 'ERROR: (Address|Leak)Sanitizer|runtime error' "$tmp/kdc.stderr" "$tmp/kdc.log" | head -n 40)"
        return 1
    fi
    ok "$desc"
}

# kdc_alive DESC: one TAP case, the KDC process is still running.
kdc_alive() {
    if [ -n "$KDC_PID" ] && kill -0 "$KDC_PID" 2>/dev/null; then ok "$1"; return 0; fi
    not_ok "$1" "KDC process gone; stderr:
$(tail -n 30 "$tmp/kdc.stderr" 2>/dev/null)"
    return 1
}

# ---------------------------------------------------------------------------------------------
# Client helpers (each bounded by a timeout)

kinit_pw() { # kinit_pw PRINC PW [kinit args...]
    local princ=$1 pw=$2; shift 2
    printf '%s\n' "$pw" | timeout -k 5 "$CK_TIMEOUT" kinit "$@" "$princ"
}

# klist_field SERVICE_REGEX FIELD: from `klist` output, prints "start", "end", "renew" epoch
# seconds for the first ticket whose service principal matches.
klist_times() { # klist_times SERVICE_REGEX -> "START END RENEW" (RENEW 0 if not renewable)
    local re=$1 line start end renew=0 next
    timeout 10 klist >"$tmp/klist.out" 2>&1 || return 1
    line=$(grep -nE "[0-9]  +$re\$" "$tmp/klist.out" | head -n1)
    [ -n "$line" ] || return 1
    local n=${line%%:*} l=${line#*:}
    start=$(date -u -d "$(echo "$l" | awk '{print $1" "$2}')" +%s) || return 1
    end=$(date -u -d "$(echo "$l" | awk '{print $3" "$4}')" +%s) || return 1
    next=$(sed -n "$((n + 1))p" "$tmp/klist.out")
    case $next in
        *"renew until"*) renew=$(date -u -d "$(echo "$next" | sed 's/.*renew until //')" +%s) ;;
    esac
    echo "$start $end $renew"
}

# Prints the flags letters of the first ticket matching SERVICE_REGEX (klist -f).
klist_flags() {
    timeout 10 klist -f 2>/dev/null | awk -v re="$1" '
        $0 ~ re"$" && /^[0-9]/ { hit = 1; next }
        hit && /Flags:/ { sub(/.*Flags: */, ""); print; exit }'
}

# Prints "SKEY TKT" enctype names of the first ticket matching SERVICE_REGEX (klist -e).
klist_etypes() {
    timeout 10 klist -e 2>/dev/null | awk -v re="$1" '
        $0 ~ re"$" && /^[0-9]/ { hit = 1; next }
        hit && /Etype \(skey, tkt\):/ { sub(/.*tkt\): */, ""); gsub(/,/, ""); sub(/[ \t]+$/, ""); print; exit }'
}

# wait_file_grep FILE PATTERN: bounded poll (10 s) for a line matching PATTERN (ERE) in FILE.
wait_file_grep() {
    local i
    for i in $(seq 1 100); do grep -Eq -- "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    return 1
}

# start_notify_receiver SOCK LOG: a stand-in for systemd's notify socket at SOCK that appends
# each datagram to LOG as one line ('|' for newlines), for daemons run with NOTIFY_SOCKET=SOCK.
start_notify_receiver() {
    local i
    cat >"$tmp/notify-receiver.py" <<'PYEOF'
import os, socket, sys
path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o777)  # as systemd's notify socket: a service that dropped root still reaches it
open(out + ".ready", "w").close()
while True:
    d = s.recv(4096).decode()
    with open(out, "a") as f:
        f.write(d.replace("\n", "|") + "\n")
PYEOF
    "$CK_PY" "$tmp/notify-receiver.py" "$1" "$2" &
    CK_BG_PIDS+=($!)
    for i in $(seq 1 50); do [ -e "$2.ready" ] && return 0; sleep 0.1; done
    bail "the notify receiver did not start"
}
