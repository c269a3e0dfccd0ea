#!/usr/bin/env bash
# `cablekey device`: the device table from the command line. Happy paths (add with a pin from a
# PEM, DER or PKCS#12 certificate or from a hex hash, trust-on-first-use devices, list paging,
# show, revoke/reinstate, pin/unpin, delete) and every failure path: each failure is exactly one
# line on stderr, nothing on stdout, exit 1 for a refused operation and 2 for a usage error.
# Certificates come from the openssl CLI, which also computes the expected pins independently.
. "$(dirname "$0")/lib.sh"

if is_mit; then
    skip_case "cablekey device CLI" "cablekey-only test"
    done_testing
fi
[ -x "$CK_CLI" ] || bail "cablekey CLI not built at $CK_CLI"
require_tool "device CLI test" openssl sqlite3 sha256sum
DB="$tmp/dev.db"
P12PW='Device-P12-Secret-77'

# cli_fails DESC EXIT_CODE PATTERN args... : exit code, one stderr line matching PATTERN, no stdout.
cli_fails() {
    local desc=$1 want=$2 pat=$3 rc lines; shift 3
    timeout 30 "$CK_CLI" "$@" </dev/null >"$tmp/cli.out" 2>"$tmp/cli.err"; rc=$?
    lines=$(wc -l <"$tmp/cli.err")
    if [ "$rc" = "$want" ] && [ "$lines" = 1 ] && [ ! -s "$tmp/cli.out" ] &&
        grep -Eq -- "$pat" "$tmp/cli.err"; then
        ok "$desc ($(cat "$tmp/cli.err"))"
    else
        not_ok "$desc" "exit $rc (want $want), $lines stderr lines: $(head -n 5 "$tmp/cli.err")
stdout: $(head -n 3 "$tmp/cli.out")"
    fi
}
cli_ok() { # cli_ok DESC args...
    local desc=$1 rc; shift
    timeout 30 "$CK_CLI" "$@" </dev/null >"$tmp/cli.out" 2>"$tmp/cli.err"; rc=$?
    if [ $rc = 0 ] && [ ! -s "$tmp/cli.err" ]; then ok "$desc"
    else not_ok "$desc" "exit $rc: $(head -n 5 "$tmp/cli.err")"; fi
}
# out_matches DESC PATTERN : the last command's stdout matches PATTERN.
out_matches() {
    if grep -Eq -- "$2" "$tmp/cli.out"; then ok "$1"
    else not_ok "$1" "stdout does not match /$2/: $(head -n 10 "$tmp/cli.out")"; fi
}

# mkcert NAME CN [KEYSPEC]: a self-signed certificate $tmp/NAME.pem with key $tmp/NAME.key.
mkcert() {
    timeout 60 openssl req -x509 -newkey "${3:-rsa:2048}" -nodes -keyout "$tmp/$1.key" \
        -out "$tmp/$1.pem" -days 30 -subj "/C=US/O=Test Vendor/OU=MTA/CN=$2" \
        >"$tmp/openssl.log" 2>&1 || bail "openssl req for $1" "$(cat "$tmp/openssl.log")"
}
# spki_sha256 CERT.pem: the pin as openssl computes it.
spki_sha256() {
    openssl x509 -in "$1" -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum |
        cut -d' ' -f1
}

timeout 30 "$CK_CLI" init --db "$DB" --realm DEV.TEST >/dev/null 2>"$tmp/init.err" ||
    bail "cablekey init" "$(cat "$tmp/init.err")"
for p in mta1 mta2 mta3; do
    timeout 30 "$CK_CLI" principal add --db "$DB" "$p" --random >/dev/null 2>&1 ||
        bail "principal add $p"
done
mkcert mta1 00:10:18:0A:00:01
mkcert mta2 00-10-18-0a-00-02 ec:<(openssl ecparam -name prime256v1)
mkcert mta3 001018-not-a-mac
mkcert other 00:10:18:0a:00:99
openssl x509 -in "$tmp/mta2.pem" -outform DER -out "$tmp/mta2.der" || bail "DER export"
printf '%s\n' "$P12PW" >"$tmp/p12.pw"
printf 'wrong-password\n' >"$tmp/wrong.pw"
chmod 600 "$tmp/p12.pw" "$tmp/wrong.pw" # password files are refused when others may read them
timeout 60 openssl pkcs12 -export -in "$tmp/mta3.pem" -inkey "$tmp/mta3.key" \
    -passout "file:$tmp/p12.pw" -out "$tmp/mta3.p12" >"$tmp/openssl.log" 2>&1 ||
    bail "openssl pkcs12 -export" "$(cat "$tmp/openssl.log")"
PIN1=$(spki_sha256 "$tmp/mta1.pem")
PIN2=$(spki_sha256 "$tmp/mta2.pem")
PIN3=$(spki_sha256 "$tmp/mta3.pem")
PINX=$(spki_sha256 "$tmp/other.pem")

# --- help and usage ---------------------------------------------------------------------------
timeout 30 "$CK_CLI" device --help >"$tmp/cli.out" 2>&1; rc=$?
if [ $rc = 0 ] && grep -q 'usage: cablekey device' "$tmp/cli.out" &&
    grep -q 'trust on first use' "$tmp/cli.out"; then ok "device --help: usage on stdout, exit 0"
else not_ok "device --help: usage on stdout, exit 0" "exit $rc"; fi
timeout 30 "$CK_CLI" device >"$tmp/cli.out" 2>"$tmp/cli.err"; rc=$?
if [ $rc = 2 ] && grep -q 'usage: cablekey device' "$tmp/cli.err"; then
    ok "device without a subcommand: usage on stderr, exit 2"
else not_ok "device without a subcommand: usage on stderr, exit 2" "exit $rc"; fi
timeout 30 "$CK_CLI" --help >"$tmp/cli.out" 2>&1
if grep -Eq '^  device ' "$tmp/cli.out"; then ok "cablekey --help lists device"
else not_ok "cablekey --help lists device" "$(cat "$tmp/cli.out")"; fi
cli_fails "unknown device subcommand" 2 "frob" device frob --db "$DB"

# --- add: pins from PEM, DER, PKCS#12 and hex; trust on first use --------------------------------
cli_ok "add with a PEM certificate" device add --db "$DB" --mac 00:10:18:0A:00:01 \
    --principal mta1 --cert "$tmp/mta1.pem" --comment "Main St 1, basement"
out_matches "add reports the pin openssl computes" "00:10:18:0a:00:01 added for mta1@DEV\.TEST.*$PIN1"
cli_ok "add with a DER certificate (EC P-256 key)" device add --db "$DB" --mac 00-10-18-0A-00-02 \
    --principal mta2@DEV.TEST --cert "$tmp/mta2.der"
out_matches "DER pin equals openssl's" "$PIN2"
cli_fails "a PKCS#12 without --password-file" 1 "PKCS#12.*password-file" \
    device add --db "$DB" --mac 00:10:18:0a:00:03 --principal mta3 --cert "$tmp/mta3.p12"
cli_fails "a PKCS#12 with the wrong password" 1 "PKCS#12" device add --db "$DB" \
    --mac 00:10:18:0a:00:03 --principal mta3 --cert "$tmp/mta3.p12" --password-file "$tmp/wrong.pw"
cli_ok "add with a PKCS#12 and --password-file" device add --db "$DB" --mac 00100a0a0003 \
    --principal mta3 --cert "$tmp/mta3.p12" --password-file "$tmp/p12.pw"
out_matches "PKCS#12 pin equals openssl's (no MAC in its subject: accepted)" "00:10:0a:0a:00:03.*$PIN3"
if grep -q -- "$P12PW" "$tmp/cli.out" "$tmp/cli.err"; then not_ok "the PKCS#12 password is not echoed"
else ok "the PKCS#12 password is not echoed"; fi
HEX_COLON=$(echo "$PINX" | tr a-f A-F | sed 's/../&:/g; s/:$//')
cli_ok "add with --spki-sha256 in openssl's colon form" device add --db "$DB" \
    --mac 00:10:18:0a:00:04 --principal mta1 --spki-sha256 "$HEX_COLON"
cli_ok "add without a pin (trust on first use)" device add --db "$DB" --mac 001018FFFF05 \
    --principal mta1
out_matches "add says the first login pins" "not pinned: its first successful PKINIT login pins"

# --- add: refusals --------------------------------------------------------------------------------
cli_fails "unknown principal" 1 "nobody@DEV\.TEST not found" \
    device add --db "$DB" --mac 00:10:18:0a:00:06 --principal nobody
cli_fails "principal of another realm" 1 "realm" \
    device add --db "$DB" --mac 00:10:18:0a:00:06 --principal mta1@OTHER.TEST
cli_fails "duplicate MAC (other spelling)" 1 "00:10:18:0a:00:01 already exists" \
    device add --db "$DB" --mac 00-10-18-0a-00-01 --principal mta2
for bad in 00:10:18:0a:00 00:10:18:0a:00:01:02 00:10:18-0a:00:01 0010.180a.0001 "00 10 18 0a 00 01" \
    00:10:18:0a:00:0g 00101800000 x; do
    cli_fails "bad MAC '$bad' is a usage error" 2 "--mac: malformed MAC" \
        device add --db "$DB" --mac "$bad" --principal mta1
done
cli_fails "certificate of another MAC" 1 "certificate of device 00:10:18:0a:00:99, not 00:10:18:0a:00:06" \
    device add --db "$DB" --mac 00:10:18:0a:00:06 --principal mta1 --cert "$tmp/other.pem"
cli_fails "conflicting --cert and --spki-sha256" 2 "exclude each other" \
    device add --db "$DB" --mac 00:10:18:0a:00:06 --principal mta1 --cert "$tmp/mta1.pem" \
    --spki-sha256 "$PIN1"
cli_fails "--password-file without --cert" 2 "password-file goes with --cert" \
    device add --db "$DB" --mac 00:10:18:0a:00:06 --principal mta1 --password-file "$tmp/p12.pw"
cli_fails "bad hex (63 digits)" 2 "spki-sha256.*64 hex digits" \
    device add --db "$DB" --mac 00:10:18:0a:00:06 --principal mta1 --spki-sha256 "${PIN1:1}"
cli_fails "bad hex (non-hex digit)" 2 "spki-sha256" \
    device add --db "$DB" --mac 00:10:18:0a:00:06 --principal mta1 --spki-sha256 "z${PIN1:1}"
cli_fails "missing --principal" 2 "--principal NAME is required" \
    device add --db "$DB" --mac 00:10:18:0a:00:06
cli_fails "missing --mac" 2 "--mac MAC is required" device add --db "$DB" --principal mta1
cli_fails "missing --db" 2 "--db" device add --mac 00:10:18:0a:00:06 --principal mta1
cli_fails "a positional argument" 2 "unexpected argument" \
    device add --db "$DB" --mac 00:10:18:0a:00:06 --principal mta1 extra
cli_fails "an unknown option" 2 "unknown option" device add --db "$DB" --mac 00:10:18:0a:00:06 --frob
cli_fails "an option without its value" 2 "needs a value" device add --db "$DB" --mac
cli_fails "a comment with a control character" 1 "control character" \
    device add --db "$DB" --mac 00:10:18:0a:00:06 --principal mta1 --comment "$(printf 'a\033[2Jb')"
cli_fails "an overlong comment" 1 "comment longer than 256" \
    device add --db "$DB" --mac 00:10:18:0a:00:06 --principal mta1 --comment "$(printf '%0300d' 0)"
cli_fails "an overlong principal name" 1 "." \
    device add --db "$DB" --mac 00:10:18:0a:00:06 --principal "$(printf '%05000d' 0)"
cli_fails "a missing certificate file" 1 "nosuch\.pem" \
    device add --db "$DB" --mac 00:10:18:0a:00:06 --principal mta1 --cert "$tmp/nosuch.pem"
printf 'garbage' >"$tmp/garbage.crt"
cli_fails "a file that is no certificate" 1 "not a PEM, DER or PKCS#12" \
    device add --db "$DB" --mac 00:10:18:0a:00:06 --principal mta1 --cert "$tmp/garbage.crt"
cli_ok "nothing was added by the refusals" device show --db "$DB" --mac 00:10:18:0a:00:01
timeout 30 "$CK_CLI" device list --db "$DB" >"$tmp/cli.out" 2>&1
if [ "$(wc -l <"$tmp/cli.out")" = 5 ]; then ok "list shows exactly the 5 devices added"
else not_ok "list shows exactly the 5 devices added" "$(cat "$tmp/cli.out")"; fi

# --- list and show ------------------------------------------------------------------------------
cli_ok "list" device list --db "$DB"
if [ "$(cut -f1 "$tmp/cli.out" | tr '\n' ' ')" = "00:10:0a:0a:00:03 00:10:18:0a:00:01 00:10:18:0a:00:02 00:10:18:0a:00:04 00:10:18:ff:ff:05 " ]; then
    ok "list is in MAC order, canonical MACs"
else not_ok "list is in MAC order, canonical MACs" "$(cat "$tmp/cli.out")"; fi
if grep -qP "^00:10:18:0a:00:01\tactive\t$PIN1\tmta1@DEV\.TEST\tMain St 1, basement\$" "$tmp/cli.out" &&
    grep -qP "^00:10:18:ff:ff:05\tactive\t-\tmta1@DEV\.TEST\t\$" "$tmp/cli.out" &&
    grep -qP "^00:10:18:0a:00:04\tactive\t$PINX\t" "$tmp/cli.out"; then
    ok "list columns: MAC, state, pin or -, principal, comment"
else not_ok "list columns: MAC, state, pin or -, principal, comment" "$(cat "$tmp/cli.out")"; fi
cli_ok "list --principal" device list --db "$DB" --principal mta2
if [ "$(cut -f1 "$tmp/cli.out")" = "00:10:18:0a:00:02" ]; then ok "list --principal filters"
else not_ok "list --principal filters" "$(cat "$tmp/cli.out")"; fi
cli_ok "list --limit 2" device list --db "$DB" --limit 2
if [ "$(wc -l <"$tmp/cli.out")" = 2 ]; then ok "--limit bounds the list"
else not_ok "--limit bounds the list" "$(cat "$tmp/cli.out")"; fi
cli_ok "list --after" device list --db "$DB" --after 00-10-18-0A-00-02 --limit 10
if [ "$(cut -f1 "$tmp/cli.out" | tr '\n' ' ')" = "00:10:18:0a:00:04 00:10:18:ff:ff:05 " ]; then
    ok "--after pages on"
else not_ok "--after pages on" "$(cat "$tmp/cli.out")"; fi
cli_fails "bad --limit" 2 "--limit" device list --db "$DB" --limit 0
cli_fails "bad --after" 2 "--after" device list --db "$DB" --after nope
cli_fails "--mac does not apply to list" 2 "--mac does not apply" \
    device list --db "$DB" --mac 00:10:18:0a:00:01
cli_ok "show" device show --db "$DB" --mac 001018ffff05
out_matches "show: no pin yet" "Key pin \(SPKI SHA-256\): \[none"
cli_ok "show (pinned)" device show --db "$DB" --mac 00:10:18:0a:00:01
if grep -q "^Principal: mta1@DEV.TEST$" "$tmp/cli.out" && grep -q "^State: active$" "$tmp/cli.out" &&
    grep -q "^Key pin (SPKI SHA-256): $PIN1$" "$tmp/cli.out" && grep -q "^Revoked: \[no\]$" "$tmp/cli.out" &&
    grep -q "^Comment: Main St 1, basement$" "$tmp/cli.out"; then ok "show prints the record"
else not_ok "show prints the record" "$(cat "$tmp/cli.out")"; fi
cli_fails "show an unknown device" 1 "00:10:18:0a:00:77 not found" device show --db "$DB" --mac 00:10:18:0a:00:77

# --- revoke / reinstate ---------------------------------------------------------------------------
cli_ok "revoke" device revoke --db "$DB" --mac 00:10:18:0A:00:01
out_matches "revoke says so" "revoked: its logins are refused"
cli_ok "show after revoke" device show --db "$DB" --mac 00:10:18:0a:00:01
if grep -q "^State: revoked$" "$tmp/cli.out" && grep -Eq "^Revoked: [0-9]{4}-" "$tmp/cli.out" &&
    grep -q "^Key pin (SPKI SHA-256): $PIN1$" "$tmp/cli.out"; then
    ok "revocation keeps the record and its pin"
else not_ok "revocation keeps the record and its pin" "$(cat "$tmp/cli.out")"; fi
cli_ok "revoke again" device revoke --db "$DB" --mac 00:10:18:0a:00:01
out_matches "revoke again is reported, not an error" "already revoked"
cli_fails "revoke an unknown device" 1 "not found" device revoke --db "$DB" --mac 00:10:18:0a:00:77
cli_fails "revoke with --principal" 2 "--principal does not apply" \
    device revoke --db "$DB" --mac 00:10:18:0a:00:01 --principal mta1
cli_fails "revoke without --mac" 2 "--mac MAC is required" device revoke --db "$DB"
cli_ok "reinstate" device reinstate --db "$DB" --mac 00:10:18:0a:00:01
cli_ok "show after reinstate" device show --db "$DB" --mac 00:10:18:0a:00:01
if grep -q "^State: active$" "$tmp/cli.out" && grep -q "^Revoked: \[no\]$" "$tmp/cli.out"; then
    ok "reinstate makes it active"
else not_ok "reinstate makes it active" "$(cat "$tmp/cli.out")"; fi
cli_fails "reinstate an unknown device" 1 "not found" device reinstate --db "$DB" --mac 00:10:18:0a:00:77

# --- pin / unpin ----------------------------------------------------------------------------------
cli_ok "unpin" device unpin --db "$DB" --mac 00:10:18:0a:00:01
cli_ok "show after unpin" device show --db "$DB" --mac 00:10:18:0a:00:01
out_matches "unpinned" "Key pin \(SPKI SHA-256\): \[none"
cli_ok "pin from a certificate" device pin --db "$DB" --mac 00:10:18:0a:00:01 --cert "$tmp/mta1.pem"
out_matches "pin reports openssl's hash" "$PIN1"
cli_ok "pin from hex (operator replaced the key)" device pin --db "$DB" --mac 00:10:18:0a:00:01 --spki-sha256 "$PINX"
cli_ok "show after pin" device show --db "$DB" --mac 00:10:18:0a:00:01
out_matches "the new pin is stored" "Key pin \(SPKI SHA-256\): $PINX"
cli_fails "pin without a source" 2 "one of --cert or --spki-sha256" device pin --db "$DB" --mac 00:10:18:0a:00:01
cli_fails "pin with both sources" 2 "exclude each other" \
    device pin --db "$DB" --mac 00:10:18:0a:00:01 --spki-sha256 "$PIN1" --cert "$tmp/mta1.pem"
cli_fails "pin an unknown device" 1 "not found" device pin --db "$DB" --mac 00:10:18:0a:00:77 --spki-sha256 "$PIN1"
cli_fails "pin with another MAC's certificate" 1 "certificate of device" \
    device pin --db "$DB" --mac 00:10:18:0a:00:01 --cert "$tmp/other.pem"
cli_fails "unpin an unknown device" 1 "not found" device unpin --db "$DB" --mac 00:10:18:0a:00:77

# --- delete, and the principal it maps to ----------------------------------------------------------
cli_fails "a principal with devices cannot be deleted" 1 "device\(s\) map to it" \
    principal delete --db "$DB" --yes mta2
cli_ok "delete" device delete --db "$DB" --yes --mac 00:10:18:0a:00:02
cli_fails "delete again" 1 "not found" device delete --db "$DB" --yes --mac 00:10:18:0a:00:02
cli_fails "show a deleted device" 1 "not found" device show --db "$DB" --mac 00:10:18:0a:00:02
cli_ok "then the principal can be deleted" principal delete --db "$DB" --yes mta2
cli_ok "a deleted MAC can be added again" device add --db "$DB" --mac 00:10:18:0a:00:02 \
    --principal mta3 --cert "$tmp/mta2.pem"

# --- many devices: list pages through all of them ----------------------------------------------
timeout 60 sqlite3 "$DB" "WITH RECURSIVE n(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM n WHERE x < 2499)
    INSERT INTO device(mac, principal, state, created, modified, generation)
    SELECT printf('02:00:00:00:%02x:%02x', x / 256, x % 256), 'mta3@DEV.TEST', 1, 1, 1, 1 FROM n" \
    2>"$tmp/sqlite.err" || bail "bulk insert" "$(cat "$tmp/sqlite.err")"
cli_ok "list 2505 devices" device list --db "$DB"
if [ "$(wc -l <"$tmp/cli.out")" = 2505 ] && [ "$(sort -u "$tmp/cli.out" | wc -l)" = 2505 ] &&
    sort -c "$tmp/cli.out" 2>/dev/null; then
    ok "list pages through every device once, in order"
else not_ok "list pages through every device once, in order" "$(wc -l <"$tmp/cli.out") lines"; fi
cli_ok "list --principal through pages" device list --db "$DB" --principal mta3
if [ "$(wc -l <"$tmp/cli.out")" = 2502 ]; then ok "the principal filter holds across pages"
else not_ok "the principal filter holds across pages" "$(wc -l <"$tmp/cli.out") lines"; fi

# --- broken databases ------------------------------------------------------------------------
printf 'garbage' >"$tmp/db-garbage"
cli_fails "a file that is not a database" 1 "." device list --db "$tmp/db-garbage" --stash "$DB.stash"
done_testing
