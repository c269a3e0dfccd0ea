#!/usr/bin/env bash
# `cablekey --server URL`: the CLI's principal and realm verbs run on cablekey-admind with a
# Kerberos ticket from MIT kinit. A realm on loopback (cablekey-kdc + cablekey-admind); every
# verb checked against what the local CLI (--db) sees: passwords set remotely work with kinit,
# `show` prints exactly what the local `show` prints, realm changes are visible locally, the audit
# log names the ticket's principal; the policy verbs likewise, and a policy made remotely applies
# to passwords set remotely; device list/show print what --db prints. Refusals: no ticket (401), outside the ACL (403), http to a
# non-loopback address, --server with --db, --server on a family without a remote counterpart.
# HTTPS with a certificate from `cablekey pki`, verified with --ca.
. "$(dirname "$0")/lib.sh"

require_tool "MIT client tools" kinit kdestroy
CK_ADMIND="$CK_BUILD/cablekey-admind"
[ -x "$CK_ADMIND" ] || bail "cablekey-admind not built at $CK_ADMIND"

realm_init TEST.REALM
realm_addprinc joe/admin joepw
realm_addprinc eve evepw
realm_addprinc mallory mallorypw
realm_addprinc renamer renamerpw
realm_addprinc victim --random
# The service names clients ask for: HTTP@127.0.0.1 and HTTP@localhost.
realm_addprinc HTTP/127.0.0.1 --random
realm_addprinc HTTP/localhost --random
realm_start_kdc
printf '    localhost = %s\n    127.0.0.1 = %s\n' "$REALM" "$REALM" >>"$KRB5_CONFIG"
realm_ktexport "$tmp/http.keytab" HTTP/127.0.0.1@TEST.REALM HTTP/localhost@TEST.REALM ||
    bail "export the HTTP keys"

APORT=$(free_port) || bail "pick a port for cablekey-admind"
cat >"$tmp/admind.acl" <<'EOF'
joe/admin@TEST.REALM   *
eve@TEST.REALM         il
renamer@TEST.REALM     d       victim@TEST.REALM
renamer@TEST.REALM     il
EOF
write_admind_conf() { # write_admind_conf FILE [extra lines]
    local f=$1 l; shift
    {
        echo "[admind]"
        echo "    realm = $REALM"
        echo "    database = $DB"
        echo "    stash = $STASH"
        echo "    keytab = $tmp/http.keytab"
        echo "    acl_file = $tmp/admind.acl"
        echo "    log = FILE:$tmp/admind.log"
        echo "    pid_file = $tmp/admind.pid"
        for l in "$@"; do echo "    $l"; done
    } >"$f"
}
ADMIND_PID=""
start_admind() { # start_admind CONF
    rm -f "$tmp/admind.pid"
    "$CK_ADMIND" -c "$1" >"$tmp/admind.out" 2>&1 </dev/null &
    ADMIND_PID=$!
    CK_BG_PIDS+=("$ADMIND_PID")
    # The pid file is written before the sockets are bound (the daemon layer's order): ready
    # is when the (first) listen address accepts a connection.
    local _ addr
    addr=$(sed -n 's/^ *listen = //p' "$1" | head -n 1)
    for _ in $(seq 1 100); do
        [ -s "$tmp/admind.pid" ] && ck_tcp_probe "$addr" && return 0
        kill -0 "$ADMIND_PID" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
stop_admind() {
    kill -TERM "$ADMIND_PID" 2>/dev/null
    wait "$ADMIND_PID" 2>/dev/null
}
write_admind_conf "$tmp/admind.conf" "listen = 127.0.0.1:$APORT"
start_admind "$tmp/admind.conf" ||
    bail "cablekey-admind did not start" "$(cat "$tmp/admind.out" "$tmp/admind.log" 2>/dev/null)"
ok "cablekey-admind started on 127.0.0.1:$APORT"

S="http://127.0.0.1:$APORT"
# remote ARGS...: the CLI against the daemon (global --server before the command).
remote() { timeout -k 5 "$CK_TIMEOUT" "$CK_CLI" --server "$S" "$@"; }
# remote_pw PW ARGS...: the same with a password on standard input (--password-stdin).
remote_pw() {
    local pw=$1; shift
    printf '%s\n' "$pw" | timeout -k 5 "$CK_TIMEOUT" "$CK_CLI" --server "$S" "$@"
}
local_cli() { timeout -k 5 "$CK_TIMEOUT" "$CK_CLI" "$@"; }

# expect_exit DESC CODE PATTERN cmd...: exit status CODE, output (stderr+stdout) matches PATTERN.
expect_exit() {
    local desc=$1 want=$2 pat=$3 rc; shift 3
    ck_run "$@"; rc=$?
    if [ $rc -eq "$want" ] && grep -Eq -- "$pat" "$tmp/last.err" "$tmp/last.out" 2>/dev/null; then
        ok "$desc"
    else
        not_ok "$desc" "command: $* -> exit $rc (want $want, /$pat/):
$(ck_last_output)"
    fi
}

# same_output DESC FILE1 FILE2
same_output() {
    if cmp -s "$2" "$3"; then ok "$1"; else not_ok "$1" "$(diff -u "$2" "$3" | head -40)"; fi
}

# --- a ticket of an administrator ----------------------------------------------------------
kinit_pw joe/admin joepw >/dev/null 2>&1 || bail "kinit joe/admin"

# --- realm ---------------------------------------------------------------------------------
expect_output "realm show (remote)" '^Realm: TEST\.REALM' remote realm show
cp "$tmp/last.out" "$tmp/realm.remote"
local_cli realm show --db "$DB" >"$tmp/realm.local" 2>&1
same_output "realm show: remote output equals local output" "$tmp/realm.local" "$tmp/realm.remote"

# --- principal add / show / list -----------------------------------------------------------
expect_output "principal add with --password-stdin (remote)" \
    '^Principal alice@TEST\.REALM created\.$' remote_pw Alice-pw-1 principal add alice \
    --password-stdin --max-life 2h --pw-expires 2099-01-01
ck_settle
expect_success "kinit alice with the password set remotely" kinit_pw alice Alice-pw-1 -c "$tmp/alice.cc"
# The KDC writes "last successful authentication" in batches: wait until that write has landed,
# or the remote and local views below could straddle it.
for _ in $(seq 1 50); do
    shown="$(local_cli principal show --db "$DB" alice 2>/dev/null)"
    grep -q '^Last successful authentication: [0-9]' <<<"$shown" && break
    sleep 0.1
done
expect_output "principal show (remote)" '^Principal: alice@TEST\.REALM$' remote principal show alice
cp "$tmp/last.out" "$tmp/show.remote"
local_cli principal show --db "$DB" alice >"$tmp/show.local" 2>&1
same_output "principal show: remote output equals local --db output" "$tmp/show.local" "$tmp/show.remote"
grep -q 'Key: vno 1, aes256-cts-hmac-sha1-96, normal "TEST.REALMalice"' "$tmp/show.remote" &&
    ok "show: keys with their salts, no key bytes" ||
    not_ok "show: keys with their salts, no key bytes" "$(cat "$tmp/show.remote")"
expect_output "principal show with --server after the verb" '^Principal: alice@TEST\.REALM$' \
    local_cli principal show alice --server "$S"
expect_output "principal add a service with random keys" '^Principal host/svc\.test@TEST\.REALM created' \
    remote principal add host/svc.test --random --ok-as-delegate
expect_output "principal list PATTERN (remote)" '^alice@TEST\.REALM$' remote principal list 'a*'
[ "$(wc -l <"$tmp/last.out")" -eq 1 ] && ok "list 'a*': one name" ||
    not_ok "list 'a*': one name" "$(cat "$tmp/last.out")"
expect_output "principal list with a '/' in the pattern" '^host/svc\.test@TEST\.REALM$' \
    remote principal list 'host/*' 
remote principal list >"$tmp/list.remote" 2>&1
local_cli principal list --db "$DB" >"$tmp/list.local" 2>&1
same_output "principal list: remote output equals local output" "$tmp/list.local" "$tmp/list.remote"

# --- modify / rotate -----------------------------------------------------------------------
expect_output "principal modify --disallow-all-tix (remote)" 'Principal alice@TEST\.REALM modified' \
    remote principal modify alice --disallow-all-tix
ck_settle
expect_failure "kinit alice refused after the remote modify" '.' kinit_pw alice Alice-pw-1 -c "$tmp/alice.cc"
expect_success "principal modify --allow-tix --expires (remote)" \
    remote principal modify alice --allow-tix --expires 2098-06-30
expect_output "the change is visible locally" '^Expiration date: 2098-06-30' \
    local_cli principal show --db "$DB" alice
expect_output "principal rotate --password-stdin (remote)" 'new password keys with kvno 2' \
    remote_pw Alice-pw-2 principal rotate alice --password-stdin
ck_settle
expect_success "kinit alice with the password rotated remotely" kinit_pw alice Alice-pw-2 -c "$tmp/alice.cc"
expect_failure "kinit alice with the old password fails" '.' kinit_pw alice Alice-pw-1 -c "$tmp/alice.cc"
expect_output "principal rotate of a service (random keys)" 'new random keys with kvno 2' \
    remote principal rotate host/svc.test
expect_exit "rotate of a user principal without a key source: usage error" 2 'user principal' \
    remote principal rotate alice
expect_exit "modify with nothing to change: usage error" 2 'nothing to change' \
    remote principal modify alice
expect_exit "add an existing principal: exit 1" 1 'already exists' \
    remote principal add alice --random

# --- rename / delete -----------------------------------------------------------------------
expect_output "principal rename (remote)" 'Principal alice@TEST\.REALM renamed to alice2@TEST\.REALM' \
    remote principal rename alice alice2
ck_settle
expect_success "kinit alice2 with alice's password (salts kept)" kinit_pw alice2 Alice-pw-2 -c "$tmp/alice.cc"
expect_exit "show the old name: not found, exit 1" 1 'not found' remote principal show alice
expect_exit "rename onto an existing name: exit 1" 1 'already exists' \
    remote principal rename alice2 joe/admin
expect_exit "rename the realm's krbtgt: refused" 1 'ticket-granting' \
    remote principal rename krbtgt/TEST.REALM krbtgt/OTHER
expect_exit "delete without --yes from a script: usage error" 2 '--yes' \
    remote principal delete alice2
expect_output "principal delete --yes (remote)" 'Principal alice2@TEST\.REALM deleted' \
    remote principal delete alice2 --yes
expect_exit "the deleted principal is gone (local show)" 1 'not found' \
    local_cli principal show --db "$DB" alice2

# --- password policies and unlock ------------------------------------------------------------
local_cli policy add --db "$DB" strict --min-length 12 --max-failure 3 >/dev/null 2>&1 ||
    bail "cablekey policy add strict"
expect_exit "add with a password the policy refuses: exit 1 with the reason" 1 'password is too short' \
    remote_pw Short-1 principal add pol --password-stdin --policy strict
expect_output "add with --policy and a password it accepts" 'Principal pol@TEST\.REALM created' \
    remote_pw Long-enough-pw-1 principal add pol --password-stdin --policy strict
remote principal show pol >"$tmp/pol.remote" 2>&1
local_cli principal show --db "$DB" pol >"$tmp/pol.local" 2>&1
same_output "show with policy and lockout lines: remote equals local" "$tmp/pol.local" "$tmp/pol.remote"
grep -q '^Policy: strict$' "$tmp/pol.remote" && ok "show: Policy: strict" ||
    not_ok "show: Policy: strict" "$(cat "$tmp/pol.remote")"
expect_exit "rotate to a password the policy refuses: exit 1" 1 'password is too short' \
    remote_pw Short-2 principal rotate pol --password-stdin
expect_output "rotate to a password the policy accepts" 'new password keys with kvno 2' \
    remote_pw Long-enough-pw-2 principal rotate pol --password-stdin
ck_settle
expect_success "kinit pol with the new password" kinit_pw pol Long-enough-pw-2 -c "$tmp/pol.cc"
expect_output "principal unlock (remote)" 'Principal pol@TEST\.REALM unlocked' remote principal unlock pol
expect_output "modify --clear-policy (remote)" 'modified' remote principal modify pol --clear-policy
expect_output "the policy is gone, seen locally" '^Policy: \[none\]' local_cli principal show --db "$DB" pol
expect_exit "modify --policy with a policy that does not exist: exit 1" 1 'no policy named nope' \
    remote principal modify pol --policy nope

# --- policy verbs (remote) ------------------------------------------------------------------
expect_output "policy add with every rule (remote)" '^Policy remote1 created\.$' \
    remote policy add remote1 --min-length 10 --min-classes 3 --history 2 --min-life 1h \
    --max-life 90d --max-failure 5 --failure-interval 1h --lockout-duration 30m
remote policy show remote1 >"$tmp/polshow.remote" 2>&1
local_cli policy show --db "$DB" remote1 >"$tmp/polshow.local" 2>&1
same_output "policy show: remote output equals local --db output" "$tmp/polshow.local" \
    "$tmp/polshow.remote"
grep -q '^Maximum password failures before lockout: 5$' "$tmp/polshow.remote" &&
    grep -q '^Minimum number of password character classes: 3$' "$tmp/polshow.remote" &&
    ok "policy show: the rules set remotely" ||
    not_ok "policy show: the rules set remotely" "$(cat "$tmp/polshow.remote")"
expect_output "policy add without rules (remote)" '^Policy empty created\.$' remote policy add empty
expect_output "policy list (remote)" '^remote1$' remote policy list
cp "$tmp/last.out" "$tmp/pollist.remote"
local_cli policy list --db "$DB" >"$tmp/pollist.local" 2>&1
same_output "policy list: remote output equals local output" "$tmp/pollist.local" "$tmp/pollist.remote"
[ "$(cat "$tmp/pollist.remote" | tr '\n' ' ')" = "empty remote1 strict " ] && ok "policy list: three names in order" ||
    not_ok "policy list: three names in order" "$(cat "$tmp/pollist.remote")"
expect_output "policy modify (remote)" '^Policy remote1 modified\.$' \
    remote policy modify remote1 --min-length 14 --lockout-duration 0
expect_output "the change is visible locally" '^Minimum password length: 14$' \
    local_cli policy show --db "$DB" remote1
grep -q '^Password lockout duration: 0 (until an administrator unlocks)$' "$tmp/last.out" &&
    grep -q '^Maximum password failures before lockout: 5$' "$tmp/last.out" &&
    ok "modify changed the given rules only" || not_ok "modify changed the given rules only" "$(cat "$tmp/last.out")"
expect_exit "policy modify with no rule: usage error" 2 'nothing to modify' remote policy modify remote1
expect_exit "policy modify of an unknown policy: exit 1" 1 'not found' \
    remote policy modify nope --min-length 3
expect_exit "policy show of an unknown policy: exit 1" 1 'not found' remote policy show nope
expect_exit "policy add of an existing name: exit 1" 1 'already exists' remote policy add remote1
expect_exit "policy add with min-life >= max-life: refused by the server" 1 'min-life must be shorter' \
    remote policy add bad --min-life 2d --max-life 1d
expect_exit "the refused policy was not created" 1 'does not exist' local_cli policy show --db "$DB" bad
# A policy made remotely applies to a password set remotely.
expect_exit "remote policy: a short password is refused" 1 'password is too short.*at least 14' \
    remote_pw Sh0rt-pw principal add rpol --password-stdin --policy remote1
expect_exit "remote policy: too few character classes" 1 'character classes' \
    remote_pw longbutonlylowercase principal add rpol --password-stdin --policy remote1
expect_output "remote policy: an accepted password" 'Principal rpol@TEST\.REALM created' \
    remote_pw Long-Enough-pw-14 principal add rpol --password-stdin --policy remote1
expect_output "the principal counts as a user of the policy" '^Principals using it: 1$' \
    remote policy show remote1
expect_exit "remote policy: the current password is refused (history)" 1 'used before' \
    remote_pw Long-Enough-pw-14 principal rotate rpol --password-stdin
expect_exit "policy delete while a principal uses it: exit 1" 1 'rpol|use' \
    remote policy delete remote1
expect_success "detach the policy (remote)" remote principal modify rpol --clear-policy
expect_output "policy delete (remote)" '^Policy remote1 deleted\.$' remote policy delete remote1
expect_exit "the deleted policy is gone (local show)" 1 'does not exist' \
    local_cli policy show --db "$DB" remote1
expect_output "policy delete of the empty policy (remote)" 'deleted' remote policy delete empty
expect_output "audit: the ticket's principal is the actor of a remote policy change" \
    'joe/admin@TEST\.REALM[[:space:]]+policy\.delete[[:space:]]+remote1' local_cli audit list --db "$DB"

# --- device list / show (remote, read only) ---------------------------------------------------
local_cli device add --db "$DB" --mac 00:11:22:33:44:01 --principal joe/admin --comment "rack 1" \
    --spki-sha256 "$(printf '%064d' 7)" >/dev/null 2>&1 || bail "cablekey device add"
local_cli device add --db "$DB" --mac 00:11:22:33:44:02 --principal eve >/dev/null 2>&1 ||
    bail "cablekey device add"
local_cli device add --db "$DB" --mac 00:11:22:33:44:03 --principal joe/admin >/dev/null 2>&1 ||
    bail "cablekey device add"
local_cli device revoke --db "$DB" --mac 00:11:22:33:44:03 >/dev/null 2>&1 || bail "device revoke"
expect_output "device show (remote)" '^Device: 00:11:22:33:44:01$' \
    remote device show --mac 00-11-22-33-44-01
cp "$tmp/last.out" "$tmp/dev.remote"
local_cli device show --db "$DB" --mac 00:11:22:33:44:01 >"$tmp/dev.local" 2>&1
same_output "device show: remote output equals local output" "$tmp/dev.local" "$tmp/dev.remote"
grep -q '^Comment: rack 1$' "$tmp/dev.remote" && grep -q '^Key pin (SPKI SHA-256): 0\{63\}7$' "$tmp/dev.remote" &&
    ok "device show: comment and pin" || not_ok "device show: comment and pin" "$(cat "$tmp/dev.remote")"
remote device show --mac 00:11:22:33:44:03 >"$tmp/dev3.remote" 2>&1
local_cli device show --db "$DB" --mac 00:11:22:33:44:03 >"$tmp/dev3.local" 2>&1
same_output "device show of a revoked device: remote equals local" "$tmp/dev3.local" "$tmp/dev3.remote"
for args in "" "--principal joe/admin" "--principal eve@TEST.REALM" "--limit 1" \
    "--after 00:11:22:33:44:01" "--after 00:11:22:33:44:01 --limit 1"; do
    # shellcheck disable=SC2086
    remote device list $args >"$tmp/devl.remote" 2>&1
    # shellcheck disable=SC2086
    local_cli device list --db "$DB" $args >"$tmp/devl.local" 2>&1
    same_output "device list ${args:-(all)}: remote equals local" "$tmp/devl.local" "$tmp/devl.remote"
done
[ "$(wc -l <"$tmp/devl.remote")" -eq 1 ] && grep -q '^00:11:22:33:44:02' "$tmp/devl.remote" &&
    ok "device list --after --limit 1: the next device only" ||
    not_ok "device list --after --limit 1: the next device only" "$(cat "$tmp/devl.remote")"
[ "$(remote device list --principal joe/admin | wc -l)" -eq 2 ] && ok "device list --principal: two devices" ||
    not_ok "device list --principal: two devices"
expect_exit "device show of an unknown MAC: exit 1" 1 'not found' remote device show --mac 00:11:22:33:44:99
expect_exit "device revoke with --server: no remote counterpart" 2 'device: --server: no remote counterpart' \
    remote device revoke --mac 00:11:22:33:44:01
expect_exit "device add with --server after the verb: refused" 2 'no remote counterpart' \
    local_cli device add --mac 00:11:22:33:44:05 --principal eve --server "$S"
expect_exit "device list with --server and --db: usage error" 2 'exclude each other' \
    local_cli device list --db "$DB" --server "$S"
expect_output "the refused revoke changed nothing" '^State: active$' \
    local_cli device show --db "$DB" --mac 00:11:22:33:44:01

# --- realm modify ----------------------------------------------------------------------------
expect_output "realm modify --max-life --no-preauth (remote)" 'Maximum ticket life: 20:00:00' \
    remote realm modify --max-life 20h --max-renew 3d --no-preauth
expect_output "realm changes visible locally (max life)" '^Maximum ticket life: 20:00:00' \
    local_cli realm show --db "$DB"
grep -q '^Maximum renewable life: 3 days 00:00:00' "$tmp/last.out" &&
    grep -q '^Default principal flags:$' "$tmp/last.out" &&
    ok "realm changes visible locally (max renew, default flags)" ||
    not_ok "realm changes visible locally (max renew, default flags)" "$(cat "$tmp/last.out")"
expect_success "add after the change (remote)" remote principal add carol --random
expect_output "a remote add starts from the realm's default flags, as a local one" '^Attributes:$' \
    local_cli principal show --db "$DB" carol
expect_success "realm modify back (remote)" remote realm modify --max-life 10h --max-renew 7d --requires-preauth
expect_exit "realm modify with a bad value: usage error" 2 'max-life' remote realm modify --max-life 0
expect_exit "realm show takes no settings" 2 'no settings' remote realm show --max-life 1h

# --- audit ---------------------------------------------------------------------------------
expect_output "audit: the ticket's principal is the actor of a remote add" \
    'joe/admin@TEST\.REALM[[:space:]]+principal\.add[[:space:]]+carol@TEST\.REALM' \
    local_cli audit list --db "$DB" --principal carol
expect_output "audit: ... and of a remote realm change" \
    'joe/admin@TEST\.REALM[[:space:]]+realm\.modify' local_cli audit list --db "$DB"
for op in principal.modify principal.password principal.rename principal.delete; do
    assert_file_grep "audit: ... and of the remote $op" \
        "joe/admin@TEST\\.REALM[[:space:]]+${op/./\\.}[[:space:]]+alice2?@TEST\\.REALM" "$tmp/last.out"
done

# --- refusals --------------------------------------------------------------------------------
kdestroy >/dev/null 2>&1
expect_exit "no ticket: exit 1, told to run kinit" 1 'no valid Kerberos ticket: run kinit' \
    remote principal show joe/admin
expect_exit "no ticket: a write is refused too" 1 'no valid Kerberos ticket' \
    remote principal add intruder --random
kinit_pw mallory mallorypw >/dev/null 2>&1 || bail "kinit mallory"
expect_exit "outside the ACL: exit 1 with the 403 message" 1 'not allowed by the ACL of http:[^ ]+ \(needs .i., no matching entry\)' \
    remote principal list
expect_exit "outside the ACL: policy list refused (403)" 1 "not allowed by the ACL.*needs 'l'" \
    remote policy list
expect_exit "outside the ACL: device show refused (403)" 1 "not allowed by the ACL.*needs 'i'" \
    remote device show --mac 00:11:22:33:44:01
kinit_pw eve evepw >/dev/null 2>&1 || bail "kinit eve"
expect_output "eve (il) may show" '^Principal: joe/admin@TEST\.REALM' remote principal show joe/admin
expect_exit "eve (il) may not add: exit 1, 403" 1 "not allowed by the ACL.*needs 'a'" \
    remote principal add eve2 --random
expect_exit "eve (il) may not change the realm" 1 "not allowed by the ACL.*needs 'm'" \
    remote realm modify --max-life 1h
expect_exit "intruder was never created" 1 'not found' local_cli principal show --db "$DB" intruder
expect_output "eve (il) may show a policy" '^Policy: strict$' remote policy show strict
expect_output "eve (il) may list policies" '^strict$' remote policy list
expect_exit "eve (il) may not add a policy: 403" 1 "not allowed by the ACL.*needs 'a'" \
    remote policy add evepol --min-length 1
expect_exit "eve (il) may not modify a policy: 403" 1 "not allowed by the ACL.*needs 'm'" \
    remote policy modify strict --min-length 1
expect_exit "eve (il) may not delete a policy: 403" 1 "not allowed by the ACL.*needs 'd'" \
    remote policy delete strict
expect_output "the refused changes changed nothing" '^Minimum password length: 12$' \
    local_cli policy show --db "$DB" strict
expect_output "eve (il) may list devices" '^00:11:22:33:44:01' remote device list
expect_exit "evepol was never created" 1 'does not exist' local_cli policy show --db "$DB" evepol
# A rename needs 'd' on the old name and 'a' on the new one (MIT's rule): renamer has the first.
kinit_pw renamer renamerpw >/dev/null 2>&1 || bail "kinit renamer"
expect_exit "'d' with a TARGET does not grant a policy delete (no target, as in MIT)" 1 \
    "not allowed by the ACL.*needs 'd'" remote policy delete strict
expect_exit "rename with 'd' on the old name but no 'a' on the new: 403" 1 \
    "not allowed by the ACL.*needs 'a' on the new name newname@TEST\.REALM" \
    remote principal rename victim newname
expect_exit "rename without 'd' on the old name: 403" 1 "not allowed by the ACL.*needs 'd'" \
    remote principal rename eve newname
expect_output "the refused rename changed nothing" '^Principal: victim@TEST\.REALM' \
    local_cli principal show --db "$DB" victim
kinit_pw joe/admin joepw >/dev/null 2>&1

expect_exit "http to a non-loopback address is refused" 2 'plain http only to a loopback address' \
    local_cli --server "http://192.0.2.1:$APORT" principal show joe/admin
expect_exit "http to a name that is not localhost is refused" 2 'use https://' \
    local_cli principal show joe/admin --server "http://kdc.example.org:$APORT"
expect_exit "--server with --db: usage error" 2 '--server and --db exclude each other' \
    local_cli --server "$S" principal show joe/admin --db "$DB"
expect_exit "--server with --db (both after the verb): usage error" 2 'exclude each other' \
    local_cli realm show --db "$DB" --server "$S"
expect_exit "--ca with http: usage error" 2 'https' \
    local_cli principal show joe/admin --server "$S" --ca /etc/hostname
expect_exit "a URL with a path: usage error" 2 'without a path' \
    local_cli --server "$S/v1" realm show
expect_exit "--server on keytab: no remote counterpart" 2 'keytab: --server: no remote counterpart' \
    local_cli --server "$S" keytab export --out "$tmp/x.keytab" joe/admin
expect_exit "--server after a keytab verb: refused too" 2 'no remote counterpart' \
    local_cli keytab export --out "$tmp/x.keytab" --server "$S" joe/admin
expect_exit "--server on db backup: refused" 2 'db: --server: no remote counterpart' \
    local_cli --server "$S" db backup --db "$DB" --out "$tmp/b.db"
expect_exit "--server on audit: refused" 2 'audit: --server: no remote counterpart' \
    local_cli audit list --server "$S"
[ ! -e "$tmp/x.keytab" ] && ok "nothing was exported" || not_ok "nothing was exported"
DEAD=$(free_port)
expect_exit "no daemon at the URL: exit 1, cannot connect" 1 'cannot connect' \
    local_cli --server "http://127.0.0.1:$DEAD" realm show

stop_admind

# --- a broken or hostile server: what the client accepts is bounded ---------------------------
# A stand-in for the daemon (no authentication) whose answers the real one never gives: a long
# listing in pages, a listing that never advances, an oversize answer, terminal escapes in an
# error message, an HTML error page, a redirect, malformed JSON.
cat >"$tmp/fake_admind.py" <<'PYEOF'
import json, sys, urllib.parse
from http.server import BaseHTTPRequestHandler, HTTPServer

REALM = {"name": "TEST.REALM", "enctypes": ["aes256-cts-hmac-sha1-96"], "max_life": 36000,
         "max_renew": 604800, "master_kvno": 1, "default_flags": []}
NAMES = ["p%04d@TEST.REALM" % i for i in range(2500)]

class H(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def send(self, status, body, ctype="application/json", extra=()):
        data = body if isinstance(body, bytes) else (json.dumps(body) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(u.query))
        if u.path == "/v1/realm":
            return self.send(200, REALM)
        if u.path == "/v1/principals":
            limit = int(q.get("limit", "10000"))
            if q.get("pattern", "").startswith("loop"):
                return self.send(200, {"principals": ["a@TEST.REALM"], "next": "a@TEST.REALM"})
            rest = [n for n in NAMES if n > q.get("after", "")]
            page = rest[:limit]
            return self.send(200, {"principals": page,
                                   "next": page[-1] if len(rest) > limit else None})
        name = urllib.parse.unquote(u.path.rsplit("/", 1)[-1])
        if name == "big@TEST.REALM":
            return self.send(200, b"{" + b" " * (5 * 1024 * 1024) + b"}")
        if name == "stream@TEST.REALM":  # no Content-Length: counted as it arrives
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"{")
            for _ in range(6 * 16):
                self.wfile.write(b" " * 65536)
            return
        if name == "esc@TEST.REALM":
            return self.send(403, {"error": {"code": "forbidden",
                                             "message": "no \u001b[2J\u001b[31mway"}})
        if name == "html@TEST.REALM":
            return self.send(500, b"<html>oops</html>", "text/html")
        if name == "redir@TEST.REALM":
            return self.send(302, b"", "text/plain", [("Location", "http://192.0.2.1/x")])
        return self.send(200, b"{\"name\":", "application/json")

srv = HTTPServer(("127.0.0.1", 0), H)
with open(sys.argv[1], "w") as f:
    f.write(str(srv.server_address[1]))
srv.serve_forever()
PYEOF
"$CK_PY" "$tmp/fake_admind.py" "$tmp/fake.port" 2>"$tmp/fake.err" &
CK_BG_PIDS+=("$!")
for _ in $(seq 1 50); do [ -s "$tmp/fake.port" ] && break; sleep 0.1; done
F="http://127.0.0.1:$(cat "$tmp/fake.port")"
timeout -k 5 "$CK_TIMEOUT" "$CK_CLI" --server "$F" principal list 'page*' >"$tmp/pages.out" 2>&1
if [ "$(wc -l <"$tmp/pages.out")" -eq 2500 ] && [ "$(head -n1 "$tmp/pages.out")" = p0000@TEST.REALM ] &&
   [ "$(tail -n1 "$tmp/pages.out")" = p2499@TEST.REALM ] && sort -c "$tmp/pages.out"; then
    ok "list: 2500 names over three pages, in order"
else
    not_ok "list: 2500 names over three pages, in order" "$(wc -l <"$tmp/pages.out") lines; $(tail -n 3 "$tmp/pages.out")"
fi
expect_exit "list: a listing that does not advance is refused" 1 'does not advance' \
    local_cli --server "$F" principal list 'loop*'
expect_exit "an answer over 4 MiB is refused (Content-Length)" 1 'answer larger than' \
    local_cli --server "$F" principal show big
expect_exit "an answer over 4 MiB is refused (streamed)" 1 'answer larger than' \
    local_cli --server "$F" principal show stream
expect_exit "terminal escapes in an error message are defused" 1 'no \?\[2J\?\[31mway' \
    local_cli --server "$F" principal show esc
if grep -q $'\033' "$tmp/last.err"; then not_ok "no escape character reaches the terminal"
else ok "no escape character reaches the terminal"; fi
expect_exit "an HTML error page: the HTTP status" 1 'HTTP 500: not an answer of the admin API' \
    local_cli --server "$F" principal show html
expect_exit "a redirect is not followed" 1 'HTTP 302' local_cli --server "$F" principal show redir
expect_exit "malformed JSON in a 200 answer" 1 'unexpected answer: malformed JSON' \
    local_cli --server "$F" principal show garbage

# --- HTTPS with a certificate from the operator PKI -------------------------------------------
require_tool "openssl" openssl
PKI="$tmp/pki"
printf 'pki-pw\n' >"$tmp/pki.pw"; chmod 600 "$tmp/pki.pw"
timeout 120 "$CK_CLI" pki init --dir "$PKI" --realm "$REALM" --org "Test Org" \
    --password-file "$tmp/pki.pw" >"$tmp/pki.log" 2>&1 </dev/null ||
    bail "cablekey pki init" "$(tail -n 5 "$tmp/pki.log")"
timeout 60 "$CK_CLI" pki issue-server --dir "$PKI" --dns localhost --out "$tmp/admind.p12" \
    --password-file "$tmp/pki.pw" --pem-out "$tmp/admind" --pem-nopass >>"$tmp/pki.log" 2>&1 </dev/null ||
    bail "cablekey pki issue-server" "$(tail -n 5 "$tmp/pki.log")"
# The daemon sends its certificate with the issuing CA, so that a client holding only the
# operator's root (sp-root.pem) can build the path.
cat "$tmp/admind-cert.pem" "$PKI/sp-ca.pem" >"$tmp/admind-chain.pem"
TPORT=$(free_port) || bail "pick a port for the TLS daemon"
write_admind_conf "$tmp/tls.conf" "listen = 127.0.0.1:$TPORT" \
    "tls_certificate = $tmp/admind-chain.pem" "tls_key = $tmp/admind-key.pem"
if start_admind "$tmp/tls.conf"; then
    ok "cablekey-admind started with a cablekey pki certificate"
    T="https://localhost:$TPORT"
    expect_output "HTTPS: realm show with --ca (the operator's root CA)" '^Realm: TEST\.REALM' \
        local_cli --server "$T" --ca "$PKI/sp-root.pem" realm show
    expect_output "HTTPS: principal show, options after the verb" '^Principal: joe/admin@TEST\.REALM' \
        local_cli principal show joe/admin --server "$T" --ca "$PKI/sp-root.pem"
    expect_output "HTTPS: principal add with a password" 'Principal dave@TEST\.REALM created' \
        bash -c 'printf "Dave-pw-1\n" | "$0" --server "$1" --ca "$2" principal add dave --password-stdin' \
        "$CK_CLI" "$T" "$PKI/sp-root.pem"
    ck_settle
    expect_success "kinit dave with the password set over HTTPS" kinit_pw dave Dave-pw-1 -c "$tmp/dave.cc"
    expect_exit "HTTPS without --ca: the certificate is not trusted (system store)" 1 'not trusted' \
        local_cli --server "$T" realm show
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/other.key" -out "$tmp/other.crt" \
        -days 2 -subj /CN=other >/dev/null 2>&1 || bail "openssl: make an unrelated CA"
    expect_exit "HTTPS with an unrelated --ca: not trusted" 1 'not trusted' \
        local_cli --server "$T" --ca "$tmp/other.crt" realm show
    expect_exit "HTTPS to a name the certificate does not hold" 1 'not trusted|certificate' \
        local_cli --server "https://127.0.0.1:$TPORT" --ca "$PKI/sp-root.pem" realm show
    stop_admind
else
    not_ok "cablekey-admind started with a cablekey pki certificate" \
        "$(tail -n 5 "$tmp/admind.out" "$tmp/admind.log")"
fi

if grep -qE 'Alice-pw|Dave-pw' "$tmp/admind.log"; then
    not_ok "the daemon's log holds no password" "$(grep -E 'Alice-pw|Dave-pw' "$tmp/admind.log" | head -3)"
else
    ok "the daemon's log holds no password"
fi

realm_stop_kdc
done_testing
