#!/usr/bin/env bash
# Lawful intercept through the CLI (docs/cablekey-intercept.md): orders added, listed and revoked
# by the intercept administrator; a refused world-readable database; calls escrowed by a
# synthetic controller (tests/tools/li_call: ck_li_escrow, then one second of protected G.711
# each way written as a pcap); the record opened by openssl and by `cablekey intercept open` with
# the law-enforcement key (RSA, PEM and PKCS#12; EC) and by no other key; `cablekey intercept
# decrypt` recovering both directions sample-exact from the capture in every media mode; calls
# outside the order or its window, or under a revoked order, leaving no record; purge; audit.
. "$(dirname "$0")/lib.sh"

require_tool "openssl" openssl
require_tool "sqlite3 (package sqlite3)" sqlite3
require_tool "tshark, editcap (package tshark)" tshark editcap
LI_CALL="$CK_BUILD/li_call"
[ -x "$LI_CALL" ] || bail "li_call test tool built" "$LI_CALL missing (ninja li_call)"

DB="$tmp/li/intercept.db"
DROP="$tmp/drop"
mkdir -m 700 "$tmp/li" "$DROP" "$tmp/lea"
li() { timeout 60 "$CK_CLI" intercept "$@"; }
today=$(date -u +%Y-%m-%d)
until=$(date -u -d '+300 days' +%Y-%m-%d)

# ---- law-enforcement certificates and keys -------------------------------------------------
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/lea/lea.key" -out "$tmp/lea/lea.pem" \
    -days 400 -subj "/O=Agency/CN=LEA collection" -addext "keyUsage=critical,keyEncipherment" \
    >/dev/null 2>&1 || bail "openssl: an RSA LEA certificate"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/lea/ec.key" \
    -out "$tmp/lea/ec.pem" -days 400 -subj "/CN=LEA EC" >/dev/null 2>&1 ||
    bail "openssl: an EC LEA certificate"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/lea/other.key" \
    -out "$tmp/lea/other.pem" -days 400 -subj "/CN=someone else" >/dev/null 2>&1 ||
    bail "openssl: another certificate"
printf 'p12-secret\n' > "$tmp/lea/p12pass"; chmod 600 "$tmp/lea/p12pass"
openssl pkcs12 -export -inkey "$tmp/lea/lea.key" -in "$tmp/lea/lea.pem" -passout pass:p12-secret \
    -out "$tmp/lea/lea.p12" >/dev/null 2>&1 || bail "openssl: LEA PKCS#12"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/lea/short.key" -out "$tmp/lea/short.pem" \
    -days 2 -subj "/CN=short" >/dev/null 2>&1 || bail "openssl: a short-lived certificate"

# ---- orders -------------------------------------------------------------------------------
expect_output "add: an order for 5552001 creates the database" "^order 1 added$" \
    li add --db "$DB" --number 5552001 --from "$today" --until "$until" \
    --authority "District Court X, order 17/2027" --cert "$tmp/lea/lea.pem" --actor "officer 7"
if [ "$(stat -c %a "$DB")" = 600 ]; then ok "the database is created 0600"; else
    not_ok "the database is created 0600" "mode $(stat -c %a "$DB")"; fi
expect_output "add: an order for a MAC (any syntax) to an EC certificate" "^order 2 added$" \
    li add --db "$DB" --mac 00-11-22-33-44-CC --from "$today" --until "$until" \
    --authority "Court Y" --cert "$tmp/lea/ec.pem"
expect_output "add: an order that will be revoked" "^order 3 added$" \
    li add --db "$DB" --number 5553003 --from "$today" --until "$until" --authority "Court Z" \
    --cert "$tmp/lea/lea.pem"
expect_failure "add: a certificate that expires before the window ends is refused" \
    "not valid over the whole window" li add --db "$DB" --number 5554004 --from "$today" \
    --until "$until" --authority "Court" --cert "$tmp/lea/short.pem"
expect_failure "add: --number and --mac together are a usage error" "exactly one of" \
    li add --db "$DB" --number 1 --mac 001122334455 --from "$today" --until "$until" \
    --authority a --cert "$tmp/lea/lea.pem"
expect_failure "add: a number with a dash is refused" "1 to 15 digits" \
    li add --db "$DB" --number 555-2001 --from "$today" --until "$until" --authority a \
    --cert "$tmp/lea/lea.pem"
expect_output "revoke 3" "^order 3 revoked$" li revoke --db "$DB" 3
expect_failure "revoke 3 again: already revoked" "already revoked" li revoke --db "$DB" 3
expect_failure "revoke 99: no such order" "does not exist" li revoke --db "$DB" 99
expect_output "list: order 1 active, the MAC canonical, 3 revoked" \
    "^2	active	mac:0011223344cc	" li list --db "$DB"
if grep -q "^1	active	number:5552001	.*	District Court X, order 17/2027	O=Agency,CN=LEA collection	sha256:[0-9a-f]{64}$" "$tmp/last.out" ||
   grep -Eq "^1	active	number:5552001	.*	District Court X, order 17/2027	CN=LEA collection,O=Agency	sha256:[0-9a-f]{64}$" "$tmp/last.out"; then
    ok "list: order 1's fields (target, authority, subject, fingerprint)"
else not_ok "list: order 1's fields" "$(cat "$tmp/last.out")"; fi
assert_file_grep "list: order 3 is revoked" "^3	revoked	number:5553003	" "$tmp/last.out"
expect_failure "the admin API has no intercept: --server refused" "no remote counterpart" \
    "$CK_CLI" --server https://127.0.0.1:1 intercept list --db "$DB"

# ---- role boundary: the file's mode ---------------------------------------------------------
chmod 0644 "$DB"
expect_failure "a world-readable database is refused" "mode 0644: others may access it" \
    li list --db "$DB"
chmod 0606 "$DB"
expect_failure "a world-writable database is refused" "others may access it" \
    li list --db "$DB"
chmod 0600 "$DB"
expect_failure "the KDC store (another SQLite file) is not an intercept database" \
    "not an intercept database" bash -c "sqlite3 '$tmp/kdc.db' 'CREATE TABLE principal(x)' &&
        chmod 600 '$tmp/kdc.db' && timeout 20 '$CK_CLI' intercept list --db '$tmp/kdc.db'"

# ---- escrow: matched and unmatched calls ------------------------------------------------------
call() { # call CALLID FROM TO MEDIA -> $tmp/CALLID.pcap, $tmp/CALLID-ref-{sd,ds}.wav
    timeout 60 "$LI_CALL" "$DB" "$DROP" "$1" "$2" "$3" "$4" "$tmp/$1.pcap" "$tmp/$1-ref" \
        > "$tmp/$1.out" 2>&1
}
call a1 5551001 5552001 srtp-aes-cm || bail "li_call a1" "$(cat "$tmp/a1.out")"
assert_file_grep "a call to the target is escrowed once" "^escrowed=1 " "$tmp/a1.out"
if [ -f "$DROP/1-a1.p7m" ] && [ "$(stat -c %a "$DROP/1-a1.p7m")" = 600 ]; then
    ok "its record is in the drop directory, mode 0600"
else not_ok "its record is in the drop directory, mode 0600" "$(ls -la "$DROP")"; fi
call n1 5551001 5559999 srtp-aes-cm || bail "li_call n1" "$(cat "$tmp/n1.out")"
assert_file_grep "a call outside the order: nothing escrowed" "^escrowed=0 " "$tmp/n1.out"
call r1 5553003 5551001 srtp-aes-cm || bail "li_call r1" "$(cat "$tmp/r1.out")"
assert_file_grep "a call under the revoked order: nothing escrowed" "^escrowed=0 " "$tmp/r1.out"
# Outside the window: a call "now + 400 days" (li_call's NOW argument).
timeout 60 "$LI_CALL" "$DB" "$DROP" w1 5551001 5552001 srtp-aes-cm "$tmp/w1.pcap" "$tmp/w1-ref" \
    $(( $(date +%s) + 400 * 86400 )) > "$tmp/w1.out" 2>&1 || bail "li_call w1" "$(cat "$tmp/w1.out")"
assert_file_grep "a call after the order's window: nothing escrowed" "^escrowed=0 " "$tmp/w1.out"
if [ "$(ls "$DROP" | wc -l)" = 1 ]; then ok "the drop directory holds that one record only"
else not_ok "the drop directory holds that one record only" "$(ls "$DROP")"; fi
if [ "$(sqlite3 "$DB" "SELECT count(*) FROM records")" = 1 ] &&
   [ "$(sqlite3 "$DB" "SELECT count(*) FROM audit WHERE detail LIKE '% call n1' OR detail LIKE '% call r1' OR detail LIKE '% call w1'")" = 0 ]; then
    ok "the database keeps no trace of the calls no order covers"
else not_ok "the database keeps no trace of the calls no order covers" \
    "$(sqlite3 "$DB" 'SELECT * FROM records; SELECT * FROM audit')"; fi
kcall=$(sed -n 's/.*k_call=\([0-9a-f]*\)$/\1/p' "$tmp/a1.out")
if [ ${#kcall} = 64 ] && ! od -An -tx1 -v "$DROP/1-a1.p7m" | tr -d ' \n' | grep -qi "$kcall" &&
   ! grep -qi "$kcall" <(sqlite3 "$DB" "SELECT hex(der) FROM records"); then
    ok "K_call appears in neither the drop file nor the database"
else not_ok "K_call appears in neither the drop file nor the database"; fi

# ---- the record: openssl, open, wrong keys ----------------------------------------------------
if openssl cms -decrypt -inform DER -in "$DROP/1-a1.p7m" -inkey "$tmp/lea/lea.key" -binary \
        -out "$tmp/a1.der" 2>"$tmp/cms.err" &&
   openssl asn1parse -inform DER -in "$tmp/a1.der" | grep -qi "OCTET STRING *\[HEX DUMP\]:$kcall"; then
    ok "openssl cms opens the record with the LEA key: K_call inside (interop)"
else not_ok "openssl cms opens the record with the LEA key" "$(cat "$tmp/cms.err")"; fi
if openssl cms -cmsout -print -inform DER -in "$DROP/1-a1.p7m" | grep -q "authEnvelopedData" &&
   openssl cms -cmsout -print -inform DER -in "$DROP/1-a1.p7m" | grep -q "rsaesOaep"; then
    ok "the envelope is AuthEnvelopedData with RSA-OAEP"
else not_ok "the envelope is AuthEnvelopedData with RSA-OAEP"; fi
expect_output "open: the fields, K_call hidden" "^k-call: \(not shown; --show-key\)$" \
    li open --record "$DROP/1-a1.p7m" --key "$tmp/lea/lea.key"
assert_file_grep "open: caller, callee, media" "^callee: 5552001$" "$tmp/last.out"
assert_file_grep "open: source media address" "^source-media: 127.0.0.1 16000$" "$tmp/last.out"
expect_output "open --show-key prints K_call" "^k-call: $kcall$" \
    li open --record "$DROP/1-a1.p7m" --key "$tmp/lea/lea.key" --show-key
expect_output "open with the PKCS#12 and its password file" "^call-id: a1$" \
    li open --record "$DROP/1-a1.p7m" --key "$tmp/lea/lea.p12" --pass-file "$tmp/lea/p12pass"
expect_failure "open with another key: refused" "cannot be opened with this key" \
    li open --record "$DROP/1-a1.p7m" --key "$tmp/lea/other.key"
cp "$DROP/1-a1.p7m" "$tmp/tampered.p7m"
printf '\x55' | dd of="$tmp/tampered.p7m" bs=1 seek=$(( $(stat -c %s "$tmp/tampered.p7m") - 20 )) \
    conv=notrunc 2>/dev/null
expect_failure "open a tampered record: refused" "cannot be opened|altered" \
    li open --record "$tmp/tampered.p7m" --key "$tmp/lea/lea.key"

# ---- decrypt the captured call, every media mode --------------------------------------------
if tshark -r "$tmp/a1.pcap" -d udp.port==16000,rtp -T fields -e rtp.seq 2>/dev/null | grep -q 1000 &&
   ! tshark -r "$tmp/a1.pcap" 2>/dev/null | grep -qi malformed; then
    ok "tshark reads the synthetic capture: RTP headers, nothing malformed"
else not_ok "tshark reads the synthetic capture"; fi
expect_output "decrypt the SRTP call with the record and the LEA key only" \
    "^decrypt media=srtp-aes-cm packets=105 sd=50/50 ds=50/50 failed=0 replayed=0 samples_sd=8000 samples_ds=8000$" \
    li decrypt --record "$DROP/1-a1.p7m" --key "$tmp/lea/lea.key" --pcap "$tmp/a1.pcap" \
    --out-prefix "$tmp/a1-out"
if cmp -s "$tmp/a1-out-sd.wav" "$tmp/a1-ref-sd.wav" && cmp -s "$tmp/a1-out-ds.wav" "$tmp/a1-ref-ds.wav"; then
    ok "both directions sample-exact against the µ-law-quantised reference"
else not_ok "both directions sample-exact"; fi
editcap -F pcapng "$tmp/a1.pcap" "$tmp/a1.pcapng" || bail "editcap: a pcapng copy of the capture"
expect_output "decrypt the same call from pcapng (tshark's default format)" \
    "sd=50/50 ds=50/50 failed=0 replayed=0" \
    li decrypt --record "$DROP/1-a1.p7m" --key "$tmp/lea/lea.key" --pcap "$tmp/a1.pcapng" \
    --out-prefix "$tmp/a1ng-out"
if cmp -s "$tmp/a1ng-out-sd.wav" "$tmp/a1-ref-sd.wav" && cmp -s "$tmp/a1ng-out-ds.wav" "$tmp/a1-ref-ds.wav"; then
    ok "pcapng: both directions sample-exact"
else not_ok "pcapng: both directions sample-exact"; fi
if [ "$(stat -c %a "$tmp/a1-out-sd.wav")" = 600 ]; then ok "the decrypted audio is 0600"
else not_ok "the decrypted audio is 0600"; fi
expect_failure "decrypt with another key: refused" "cannot be opened with this key" \
    li decrypt --record "$DROP/1-a1.p7m" --key "$tmp/lea/other.key" --pcap "$tmp/a1.pcap" \
    --out-prefix "$tmp/x"
head -c 24 "$tmp/a1.pcap" > "$tmp/empty.pcap"
expect_failure "decrypt a capture without the call: no packet of the call" "no packet of the call" \
    li decrypt --record "$DROP/1-a1.p7m" --key "$tmp/lea/lea.key" --pcap "$tmp/empty.pcap" \
    --out-prefix "$tmp/x"
call a2 5552001 5551001 srtp-aes-cm || bail "li_call a2" "$(cat "$tmp/a2.out")"
# The a2 capture (same ports, the other call's keys): every packet fails authentication.
expect_failure "decrypt another call's capture with this record: packets fail" "did not decrypt" \
    li decrypt --record "$DROP/1-a1.p7m" --key "$tmp/lea/lea.key" --pcap "$tmp/a2.pcap" \
    --out-prefix "$tmp/x"
expect_failure "decrypt a file that is not a capture" "not a pcap or pcapng file" \
    li decrypt --record "$DROP/1-a1.p7m" --key "$tmp/lea/lea.key" --pcap "$DROP/1-a1.p7m" \
    --out-prefix "$tmp/x"
for mode in srtp-gcm rtp-3des rtp-3des-mac rtp; do
    id="m${mode//-/}"
    call "$id" 5552001 5551001 "$mode" || { not_ok "li_call $mode" "$(cat "$tmp/$id.out")"; continue; }
    if li decrypt --record "$DROP/1-$id.p7m" --key "$tmp/lea/lea.p12" --pass-file "$tmp/lea/p12pass" \
           --pcap "$tmp/$id.pcap" --out-prefix "$tmp/$id-out" > "$tmp/$id.dec" 2>&1 &&
       grep -q "^decrypt media=$mode .* sd=50/50 ds=50/50 failed=0 " "$tmp/$id.dec" &&
       cmp -s "$tmp/$id-out-sd.wav" "$tmp/$id-ref-sd.wav" && cmp -s "$tmp/$id-out-ds.wav" "$tmp/$id-ref-ds.wav"; then
        ok "decrypt $mode: both directions sample-exact"
    else not_ok "decrypt $mode: both directions sample-exact" "$(cat "$tmp/$id.dec")"; fi
done
# The MAC order (EC certificate): the callee's MAC is not known to li_call, the caller's is
# 0011223344aa; an order on it through a second database keeps this one's counts simple.
DB2="$tmp/li/mac.db"
li add --db "$DB2" --mac 0011223344AA --from "$today" --until "$until" --authority "Court M" \
    --cert "$tmp/lea/ec.pem" >/dev/null 2>&1 || bail "add a MAC order"
timeout 60 "$LI_CALL" "$DB2" "$DROP" e1 5551001 5559999 srtp-gcm "$tmp/e1.pcap" "$tmp/e1-ref" \
    > "$tmp/e1.out" 2>&1 || bail "li_call e1" "$(cat "$tmp/e1.out")"
assert_file_grep "a call from the target MAC is escrowed" "^escrowed=1 " "$tmp/e1.out"
expect_output "decrypt with the EC key (ECDH recipient)" "sd=50/50 ds=50/50 failed=0" \
    li decrypt --record "$DROP/1-e1.p7m" --key "$tmp/lea/ec.key" --pcap "$tmp/e1.pcap" \
    --out-prefix "$tmp/e1-out"

# ---- records, get, purge, audit -----------------------------------------------------------
expect_output "records lists the escrowed calls" "^1	a1	" li records --db "$DB"
expect_success "get exports a record" li get --db "$DB" --order 1 --call a1 --out "$tmp/got.p7m"
if cmp -s "$tmp/got.p7m" "$DROP/1-a1.p7m" && [ "$(stat -c %a "$tmp/got.p7m")" = 600 ]; then
    ok "the exported record is the delivered one, 0600"
else not_ok "the exported record is the delivered one, 0600"; fi
expect_output "purge now: nothing is past its retention" "^0 records purged, 0 drop files removed$" \
    li purge --db "$DB" --escrow-dir "$DROP"
n_before=$(sqlite3 "$DB" "SELECT count(*) FROM records")
sqlite3 "$DB" "UPDATE records SET expires = 1 WHERE call_id = 'a1'"
expect_output "purge after the retention: the record and its drop file go" \
    "^1 records purged, 1 drop files removed$" li purge --db "$DB" --escrow-dir "$DROP"
if [ ! -e "$DROP/1-a1.p7m" ] &&
   [ "$(sqlite3 "$DB" "SELECT count(*) FROM records")" = $((n_before - 1)) ]; then
    ok "purged: gone from the database and the drop directory"
else not_ok "purged: gone from the database and the drop directory"; fi
audit=$(sqlite3 -separator '|' "$DB" "SELECT actor, action FROM audit ORDER BY id")
for want in "officer 7 \[uid [0-9]+ \([a-z0-9_-]+\)\]\|order.add" "\|order.revoke" "\|order.list" \
            "controller\|record.escrow" "\|record.list" "\|record.get" "\|record.purge"; do
    if grep -Eq "$want" <<<"$audit"; then ok "audit: $want"
    else not_ok "audit: $want" "$audit"; fi
done
if ! sqlite3 "$DB" "SELECT detail FROM audit" | grep -qi "$kcall"; then
    ok "the audit holds no key material"
else not_ok "the audit holds no key material"; fi

done_testing
