#!/usr/bin/env bash
# The operator CLI end to end: every failure is one line on stderr with a non-zero exit, secrets
# are never echoed, files have the right modes, and what it writes is what the KDC serves.
. "$(dirname "$0")/lib.sh"

if is_mit; then
    skip_case "cablekey CLI" "cablekey-only test"
    done_testing
fi
[ -x "$CK_CLI" ] || bail "cablekey CLI not built at $CK_CLI"
DB="$tmp/cli.db"
PW='Never-Echo-Me-42'

# cli_fails DESC EXIT_CODE PATTERN args... : exit code, exactly one stderr line matching PATTERN.
cli_fails() {
    local desc=$1 want=$2 pat=$3 rc lines; shift 3
    timeout 30 "$CK_CLI" "$@" </dev/null >"$tmp/cli.out" 2>"$tmp/cli.err"; rc=$?
    lines=$(wc -l <"$tmp/cli.err")
    if [ "$rc" = "$want" ] && [ "$lines" = 1 ] && grep -Eq -- "$pat" "$tmp/cli.err"; then
        ok "$desc ($(cat "$tmp/cli.err"))"
    else
        not_ok "$desc" "exit $rc (want $want), $lines stderr lines: $(head -n 5 "$tmp/cli.err")"
    fi
}
cli_ok() { # cli_ok DESC args...
    local desc=$1; shift
    if timeout 30 "$CK_CLI" "$@" </dev/null >"$tmp/cli.out" 2>"$tmp/cli.err"; then ok "$desc"
    else not_ok "$desc" "exit $?: $(head -n 5 "$tmp/cli.err")"; fi
}

timeout 30 "$CK_CLI" </dev/null >"$tmp/cli.out" 2>"$tmp/cli.err"; rc=$?
if [ $rc = 2 ] && grep -q '^usage: cablekey' "$tmp/cli.err"; then ok "no command: usage on stderr, exit 2"
else not_ok "no command: usage on stderr, exit 2" "exit $rc: $(head -n 3 "$tmp/cli.err")"; fi
cli_fails "unknown command" 2 "frobnicate" frobnicate
cli_fails "principal list without --db" 2 "--db" principal list
cli_fails "init with an unknown enctype (usage error)" 2 "enctype" init --db "$DB" --realm CLI.TEST --enctypes rot13
cli_ok "init a realm" init --db "$DB" --realm CLI.TEST
if [ "$(stat -c %a "$DB.stash")" = 600 ]; then ok "stash is mode 0600"
else not_ok "stash is mode 0600" "mode $(stat -c %a "$DB.stash")"; fi
cli_fails "init refuses to overwrite an existing realm" 1 "exist" init --db "$DB" --realm CLI.TEST

cli_ok "principal add with --password" principal add --db "$DB" alice --password "$PW"
if grep -q -- "$PW" "$tmp/cli.out" "$tmp/cli.err"; then not_ok "the password is not echoed"
else ok "the password is not echoed"; fi
if echo "$PW" | timeout 30 "$CK_CLI" principal add --db "$DB" bob --password-stdin \
        >"$tmp/cli.out" 2>"$tmp/cli.err" && ! grep -q -- "$PW" "$tmp/cli.out" "$tmp/cli.err"; then
    ok "principal add --password-stdin (not echoed)"
else
    not_ok "principal add --password-stdin (not echoed)" "$(cat "$tmp/cli.err")"
fi
cli_fails "adding an existing principal" 1 "alice@CLI\.TEST.*exist" principal add --db "$DB" alice --random
cli_fails "add without a key source" 2 "password|random" principal add --db "$DB" carol
cli_fails "show an unknown principal" 1 "nosuch" principal show --db "$DB" nosuch
cli_fails "delete an unknown principal" 1 "nosuch" principal delete --db "$DB" nosuch
cli_fails "delete the realm's krbtgt is refused" 1 "krbtgt" principal delete --db "$DB" krbtgt/CLI.TEST
cli_fails "malformed principal name" 1 "name|principal" principal add --db "$DB" 'a@b@c' --random
cli_fails "bad duration" 2 "duration|max-life|10x" principal add --db "$DB" dave --random --max-life 10x

cli_ok "principal show alice" principal show --db "$DB" alice
if grep -q -- "$PW" "$tmp/cli.out"; then not_ok "show prints no secret"; else ok "show prints no secret"; fi
if grep -Eq 'aes256-cts-hmac-sha1-96' "$tmp/cli.out" && grep -Eiq 'pre_?auth' "$tmp/cli.out"; then
    ok "show lists enctypes and the preauth attribute"
else
    not_ok "show lists enctypes and the preauth attribute" "$(cat "$tmp/cli.out")"
fi
cli_ok "principal list" principal list --db "$DB"
if grep -q 'alice@CLI.TEST' "$tmp/cli.out" && grep -q 'krbtgt/CLI.TEST@CLI.TEST' "$tmp/cli.out"; then
    ok "list shows alice and krbtgt"
else
    not_ok "list shows alice and krbtgt" "$(cat "$tmp/cli.out")"
fi
cli_ok "rotate alice" principal rotate --db "$DB" alice --random
cli_ok "show after rotate" principal show --db "$DB" alice
if grep -Eq 'kvno[ :=]+2|^ *2 ' "$tmp/cli.out"; then ok "rotation made kvno 2"
else not_ok "rotation made kvno 2" "$(cat "$tmp/cli.out")"; fi

chmod 0644 "$DB.stash"
cli_fails "a group/world-readable stash is refused" 1 "0644|mode|stash" principal list --db "$DB"
chmod 0600 "$DB.stash"
cli_fails "a missing stash is refused" 1 "stash" principal list --db "$DB" --stash "$tmp/none.stash"
cli_fails "keytab export of an unknown principal" 1 "nosuch" keytab export --db "$DB" --out "$tmp/x.keytab" nosuch
cli_ok "keytab export" keytab export --db "$DB" --out "$tmp/a.keytab" alice
if [ "$(stat -c %a "$tmp/a.keytab")" = 600 ]; then ok "keytab is mode 0600"
else not_ok "keytab is mode 0600" "mode $(stat -c %a "$tmp/a.keytab")"; fi
printf 'garbage' >"$tmp/db-garbage"
cli_fails "a file that is not a database" 1 "." principal list --db "$tmp/db-garbage" --stash "$DB.stash"

# --db PATH|URI: the same realm through sqlite: URIs; bad locations are one clear error.
cli_ok "--db sqlite:PATH" principal list --db "sqlite:$DB"
if grep -q 'alice@CLI.TEST' "$tmp/cli.out"; then ok "sqlite:PATH opens the same realm"
else not_ok "sqlite:PATH opens the same realm" "$(cat "$tmp/cli.out")"; fi
cli_ok "--db sqlite:///ABSOLUTE" principal show --db "sqlite://$DB" alice
cli_fails "an unknown scheme is named" 1 'unknown database scheme "mysql"' principal list --db mysql://h/kdc
cli_fails "a PostgreSQL URI with a password is refused" 1 "PGPASSFILE" \
    principal list --db "postgresql://kdc:s3cret@h/kdc" --stash "$DB.stash"
if grep -q s3cret "$tmp/cli.err"; then not_ok "the refused password is not echoed"
else ok "the refused password is not echoed"; fi
cli_fails "password= in a PostgreSQL URI is refused" 1 "password=" \
    principal list --db "postgresql://h/kdc?password=s3cret" --stash "$DB.stash"
kdc_check() { # kdc_check DESC WANT_RC PATTERN args...
    local desc=$1 want=$2 pat=$3 rc; shift 3
    timeout 30 "$CK_KDC" --check "$@" </dev/null >"$tmp/kdc.out" 2>"$tmp/kdc.err"; rc=$?
    if [ "$rc" = "$want" ] && grep -Eq -- "$pat" "$tmp/kdc.out" "$tmp/kdc.err"; then ok "$desc"
    else not_ok "$desc" "exit $rc (want $want): $(head -n 5 "$tmp/kdc.err")"; fi
}
kdc_check "cablekey-kdc --check --db sqlite:PATH (stash beside the file)" 0 "stash: $DB.stash" \
    --db "sqlite:$DB" --listen 127.0.0.1:1
kdc_check "cablekey-kdc: an unknown scheme is a configuration error" 1 '"mysql"' \
    --db mysql://h/kdc --listen 127.0.0.1:1
kdc_check "cablekey-kdc: a PostgreSQL password in --db is refused" 1 "PGPASSFILE" \
    --db "postgresql://kdc:s3cret@h/kdc" --listen 127.0.0.1:1
done_testing
