#!/usr/bin/env bash
# Password policies and lockout with stock MIT clients: policy rejections through the CLI, MIT
# kinit locked out after max_failure wrong passwords (KDC_ERR_CLIENT_REVOKED, the correct password
# refused too), `principal unlock`, the automatic unlock after lockout_duration with libfaketime on
# both kinit and the KDC (no real waiting), and the fields of `principal show`.
. "$(dirname "$0")/lib.sh"

require_tool "MIT client tools" kinit klist kpasswd
require_tool "faketime (package faketime)" faketime
FT_LIB=""
for f in /usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1 \
         /usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1 /usr/lib/faketime/libfaketimeMT.so.1; do
    [ -f "$f" ] && { FT_LIB=$f; break; }
done
[ -n "$FT_LIB" ] || bail "libfaketimeMT.so.1 found" "package faketime is installed but its library is not where expected"
is_mit && bail "t_policy.sh" "cablekey-specific (policy CLI, principal show): run it against cablekey-kdc"

realm_init TEST.REALM
KPORT=$(free_port) || bail "pick a free port for kpasswd"
write_krb5_conf "$KRB5_CONFIG" "127.0.0.1:$PORT"
sed -i "s|^\( *\)kdc = .*|&\n\1kpasswd_server = 127.0.0.1:$KPORT|" "$KRB5_CONFIG"
grep -q "kpasswd_server = 127.0.0.1:$KPORT" "$KRB5_CONFIG" || bail "krb5.conf with kpasswd_server"
ck() { timeout 30 "$CK_CLI" "$@" --db "$DB"; }

# ---- policies through the CLI -------------------------------------------------------------
expect_success "policy add strict" ck policy add strict --min-length 10 --min-classes 3 \
    --history 2 --min-life 1h --max-life 90d
expect_output "policy show strict: MIT getpol labels" "^Minimum number of password character classes: 3$" \
    ck policy show strict
expect_failure "principal add with a short password: refused, says why" "password is too short" \
    ck principal add bob --policy strict --password 'Sh0rt-1'
expect_failure "principal add with too few character classes: refused" "character classes" \
    ck principal add bob --policy strict --password 'onlylowercaseletters'
expect_failure "principal add with a policy that does not exist: refused" "policy ghost does not exist" \
    ck principal add bob --policy ghost --password 'Good-pass-1'
expect_failure "a refused add leaves no principal behind" "not found" ck principal show bob
expect_success "principal add bob with a good password" \
    ck principal add bob --policy strict --password 'Good-pass-1'
expect_failure "rotate to the current password: refused (history)" "used before" \
    ck principal rotate bob --password 'Good-pass-1'
expect_success "rotate to a new password (administrator: the minimum age does not apply)" \
    ck principal rotate bob --password 'Other-pass-2'
expect_failure "rotate back to the first password: refused (history 2)" "used before" \
    ck principal rotate bob --password 'Good-pass-1'
expect_output "principal show: policy" "^Policy: strict$" ck principal show bob
expect_output "principal show: password expiry set from max life" "^Password expiration date: 20[0-9-]+ " \
    ck principal show bob
expect_output "principal show: last password change" "^Last password change: 20[0-9-]+ " \
    ck principal show bob
expect_failure "policy delete while a principal uses it: refused" "in use by 1 principal" \
    ck policy delete strict
expect_success "principal modify --clear-policy" ck principal modify bob --clear-policy
expect_output "principal show: no policy" "^Policy: \[none\]$" ck principal show bob
expect_success "policy delete once unused" ck policy delete strict
ck policy add x --min-classes 9 >/dev/null 2>&1 </dev/null; rc=$?
if [ $rc -eq 2 ]; then ok "policy add --min-classes 9: usage error (exit 2)"; else not_ok "policy add --min-classes 9: usage error (exit 2)" "exit $rc"; fi
expect_failure "policy modify with nothing to change: refused" "nothing to modify" ck policy modify x
expect_success "policy add default" ck policy add default --min-length 6
expect_failure "principal add without --policy: the default policy's rules apply" "too short" \
    ck principal add frank --password 'abc'
expect_success "principal add without --policy (MIT: the policy named default)" \
    ck principal add frank --password 'abcdefgh'
expect_output "principal show: policy default" "^Policy: default$" ck principal show frank
expect_success "principal add --clear-policy: no policy at all" \
    ck principal add gina --password 'abc' --clear-policy
expect_output "principal show: no policy" "^Policy: \[none\]$" ck principal show gina
expect_success "principal delete frank" ck principal delete frank --yes
expect_success "policy delete default" ck policy delete default

# ---- lockout with MIT kinit -----------------------------------------------------------------
expect_success "policy add lock (3 failures in 10 min lock for 30 min)" \
    ck policy add lock --max-failure 3 --failure-interval 10m --lockout-duration 30m
realm_addprinc alice alicepw --policy lock
expect_success "policy add users (users change their own passwords)" \
    ck policy add users --min-length 10 --min-classes 3 --history 2 --min-life 1h --max-life 30d
realm_addprinc dave 'Dave-pass-01' --policy users --pw-expires 2020-01-01

# The KDC runs on a clock the test moves through a libfaketime control file (read on every
# call); the monotonic clock, which paces the batched writes, stays real. One worker: the count
# is exact (the bound with several workers is stated in docs/cablekey-kdc.md, tested in
# test_policy).
echo "+0" >"$tmp/faketime.rc"
ft_asan=${ASAN_OPTIONS:-}
[ "$CK_ASAN" = 1 ] && ft_asan="$ft_asan:verify_asan_link_order=0"
LD_PRELOAD="$FT_LIB" FAKETIME_TIMESTAMP_FILE="$tmp/faketime.rc" FAKETIME_NO_CACHE=1 \
    FAKETIME_DONT_FAKE_MONOTONIC=1 ASAN_OPTIONS="$ft_asan" true || bail "libfaketime preload works"
LD_PRELOAD="$FT_LIB" FAKETIME_TIMESTAMP_FILE="$tmp/faketime.rc" FAKETIME_NO_CACHE=1 \
    FAKETIME_DONT_FAKE_MONOTONIC=1 ASAN_OPTIONS="$ft_asan" realm_start_kdc --workers 1 \
    --kpasswd-listen "127.0.0.1:$KPORT"

# show_until PATTERN: `principal show alice` until it matches (the KDC writes its counts in
# batches, within a second).
show_until() {
    local i
    for i in $(seq 1 50); do
        timeout 30 "$CK_CLI" principal show alice --db "$DB" </dev/null >"$tmp/show.out" 2>&1
        grep -Eq -- "$1" "$tmp/show.out" && return 0
        sleep 0.1
    done
    cat "$tmp/show.out"
    return 1
}

# ---- the policy through the kpasswd service (MIT kpasswd, a user changing their password) ----
mit_kpasswd() { # mit_kpasswd PRINC OLD NEW
    printf '%s\n%s\n%s\n' "$2" "$3" "$3" | timeout -k 5 "$CK_TIMEOUT" kpasswd "$1"
}
kinit_expired() { # MIT kinit's expired-password flow: old password, then the new one twice
    printf '%s\n%s\n%s\n' "$2" "$3" "$3" | timeout -k 5 "$CK_TIMEOUT" kinit "$1"
}
expect_failure "kinit's expired-password flow with a short new password: the policy's reason" \
    "too short" kinit_expired dave 'Dave-pass-01' 'Sh0rt-1'
expect_success "kinit's expired-password flow with a good new password (no minimum age: the change was required)" \
    kinit_expired dave 'Dave-pass-01' 'Dave-pass-02'
expect_failure "MIT kpasswd right after: too soon (minimum life 1 h)" "changed too recently" \
    mit_kpasswd dave 'Dave-pass-02' 'Dave-pass-03'
echo "+2h" >"$tmp/faketime.rc"
kpasswd_at() { printf '%s\n%s\n%s\n' "$2" "$3" "$3" | timeout -k 5 "$CK_TIMEOUT" faketime -f +2h kpasswd "$1"; }
expect_failure "two hours later (faketime): the previous password is refused (history 2)" "used before" \
    kpasswd_at dave 'Dave-pass-02' 'Dave-pass-01'
expect_failure "two hours later: too few character classes" "character classes" \
    kpasswd_at dave 'Dave-pass-02' 'onlylowercaseletters'
expect_success "two hours later: a good new password" kpasswd_at dave 'Dave-pass-02' 'Dave-pass-03'
echo "+0" >"$tmp/faketime.rc"
expect_output "principal show dave: password expiry from the policy's max life" \
    "^Password expiration date: 20[0-9-]+ " ck principal show dave
expect_output "audit: the user's own change is logged, without the password" \
    "principal\.password.*dave@TEST\.REALM.*set by the user" ck audit list --principal dave
if grep -q "Dave-pass" "$tmp/last.out" "$tmp/last.err"; then
    not_ok "the audit log holds no password" "$(cat "$tmp/last.out")"
else ok "the audit log holds no password"; fi

expect_success "kinit alice with the right password" kinit_pw alice alicepw
for n in 1 2 3; do
    expect_failure "kinit alice with a wrong password ($n of 3)" "Password incorrect" kinit_pw alice wrongpw
done
expect_failure "locked: kinit with the right password gets 'credentials have been revoked'" \
    "revoked" kinit_pw alice alicepw
assert_log "AS_REQ .*CLIENT_LOCKED_OUT: alice@TEST\.REALM for krbtgt/TEST\.REALM@TEST\.REALM" \
    "KDC log: CLIENT_LOCKED_OUT for alice"
expect_success "principal show: 3 failed attempts (written by the KDC's batch)" show_until "^Failed password attempts: 3$"
expect_output "principal show: locked until a time" "^Locked: yes, until 20[0-9-]+ " ck principal show alice
expect_output "principal show: last failed authentication" "^Last failed authentication: 20[0-9-]+ " \
    ck principal show alice
expect_output "principal show: last successful authentication" "^Last successful authentication: 20[0-9-]+ " \
    ck principal show alice
expect_output "principal unlock alice" "unlocked" ck principal unlock alice
expect_success "after unlock: kinit with the right password works" kinit_pw alice alicepw
expect_success "principal show: count back to 0" show_until "^Failed password attempts: 0$"
expect_output "principal show: not locked" "^Locked: no$" ck principal show alice
expect_failure "unlock of an unknown principal: refused" "not found" ck principal unlock nobody

# Locked again; the lock ends by itself after lockout_duration (30 min), on both clocks.
for n in 1 2 3; do
    expect_failure "kinit alice with a wrong password again ($n of 3)" "Password incorrect" kinit_pw alice wrongpw
done
expect_failure "locked again" "revoked" kinit_pw alice alicepw
kinit_at() { # kinit_at OFFSET PW : MIT kinit with its clock OFFSET ahead
    printf '%s\n' "$2" | timeout -k 5 "$CK_TIMEOUT" faketime -f "$1" kinit alice
}
echo "+29m" >"$tmp/faketime.rc"
expect_failure "29 minutes later (faketime, KDC and kinit): still locked" "revoked" kinit_at +29m alicepw
echo "+31m" >"$tmp/faketime.rc"
expect_success "31 minutes later (faketime, KDC and kinit): unlocked, kinit works" kinit_at +31m alicepw
expect_success "principal show: a success restarted the count" show_until "^Failed password attempts: 0$"

realm_stop_kdc

done_testing
