#!/usr/bin/env bash
# The build split (CMakeLists.txt): libcablekey_endpoint holds what an endpoint links (ASN.1,
# crypto, the Kerberos client, PKINIT, key management, ESP, the endpoint, address parsing) and
# must never reach SQLite, the store, the daemon layer, the network server or a daemon core; a
# program linked with it alone must link, run, and load no libsqlite3.
. "$(dirname "$0")/lib.sh"

require_tool "binutils and the dynamic loader" nm ar ldd
EP="$CK_BUILD/libcablekey_endpoint.a"
SRV="$CK_BUILD/libcablekey.a"
CHECK="$CK_BUILD/ck_endpoint_linkcheck"
for f in "$EP" "$SRV" "$CHECK"; do
    [ -e "$f" ] || bail "$f not built (ninja -C $CK_BUILD)"
done

# External symbols (defined or referenced) that belong to the server side.
FORBIDDEN='^(sqlite3_|PQ[a-z]|ck_store_|ck_net_server_|ck_net_check_listen|ck_daemon_|ck_conf_|kdc_|kpasswd_|cms_|json_)'

nm_syms() { # every symbol name, defined or undefined, of an archive
    nm -A -g "$1" 2>/dev/null | awk '{ print $NF }' | sort -u
}

# (a) The pattern finds what it looks for: the server library does use SQLite and the store.
# (Outputs are captured before grep -q throughout: under pipefail, grep exiting early would fail
# the pipeline with the writer's SIGPIPE.)
srv_syms="$(nm_syms "$SRV")"
if grep -Eq '^sqlite3_' <<<"$srv_syms" && grep -Eq '^ck_store_' <<<"$srv_syms"; then
    ok "control: the server library references sqlite3_* and defines ck_store_*"
else
    not_ok "control: the server library references sqlite3_* and defines ck_store_*" \
        "nm found neither: the check below would prove nothing"
fi

# (b) Nothing server-side in the endpoint library, defined or referenced.
bad="$(nm -A -g "$EP" | awk '{ print $1, $NF }' | awk -v re="$FORBIDDEN" '$2 ~ re')"
if [ -z "$bad" ] && [ -n "$(nm_syms "$EP")" ]; then
    ok "endpoint library: no sqlite3_, PQ*, ck_store_, ck_net_server_, ck_daemon_, ck_conf_, kdc_ symbol"
else
    not_ok "endpoint library: no sqlite3_, PQ*, ck_store_, ck_net_server_, ck_daemon_, ck_conf_, kdc_ symbol" \
        "$(printf '%s\n' "$bad" | head -20)"
fi

# (c) Closed over cablekey code: every ck_* it references, it defines itself.
defined="$(nm -g --defined-only "$EP" 2>/dev/null | awk 'NF == 3 { print $3 }' | sort -u)"
undef="$(nm -u "$EP" 2>/dev/null | awk '{ print $NF }' | grep -E '^ck_' | sort -u)"
missing="$(comm -23 <(printf '%s\n' "$undef") <(printf '%s\n' "$defined") | grep -v '^$')"
if [ -z "$missing" ] && [ -n "$defined" ]; then
    ok "endpoint library: every ck_* symbol it uses is defined in it"
else
    not_ok "endpoint library: every ck_* symbol it uses is defined in it" \
        "undefined: $(printf '%s ' $missing)"
fi

# (d) The right objects on each side.
ep_members="$(ar t "$EP")"
srv_members="$(ar t "$SRV")"
want_ep="addr.c.o rcache.c.o ap.c.o transport.c.o kcrypto.c.o krb5_codec.c.o client.c.o identity.c.o log.c.o"
no_ep="server.c.o sqlite.c.o store.c.o conf.c.o process.c.o acl.c.o"
wrong=""
for m in $want_ep; do grep -qx "$m" <<<"$ep_members" || wrong+=" missing:$m"; done
for m in $no_ep; do grep -qx "$m" <<<"$ep_members" && wrong+=" unexpected:$m"; done
for m in addr.c.o rcache.c.o identity.c.o; do grep -qx "$m" <<<"$srv_members" && wrong+=" duplicated-in-server:$m"; done
for m in server.c.o sqlite.c.o conf.c.o; do grep -qx "$m" <<<"$srv_members" || wrong+=" server-missing:$m"; done
for d in kmm esp endpoint; do
    for src in "$CK_INTEROP_DIR"/../../lib/"$d"/*.c; do
        [ -e "$src" ] || continue
        m="$(basename "$src").o"
        grep -qx "$m" <<<"$ep_members" || wrong+=" missing:lib/$d/$m"
    done
done
if [ -z "$wrong" ]; then
    ok "endpoint objects in libcablekey_endpoint, server objects only in libcablekey"
else
    not_ok "endpoint objects in libcablekey_endpoint, server objects only in libcablekey" "$wrong"
fi

# (e) A program linked with the endpoint library alone runs and loads no SQLite (nor jansson).
libs="$(ldd "$CHECK" 2>&1)"
if [ $? -eq 0 ] && grep -q 'libcrypto' <<<"$libs" && ! grep -Eq 'libsqlite3|libjansson|libpq' <<<"$libs"; then
    ok "ck_endpoint_linkcheck: ldd shows libcrypto and no libsqlite3/libjansson/libpq"
else
    not_ok "ck_endpoint_linkcheck: ldd shows libcrypto and no libsqlite3/libjansson/libpq" "$libs"
fi
expect_output "ck_endpoint_linkcheck runs" "^endpoint linkcheck: ok$" "$CHECK"

# (f) The same ldd check is able to fail: the KDC does load SQLite.
kdc_libs="$(ldd "$CK_BUILD/cablekey-kdc" 2>&1)"
if grep -q 'libsqlite3' <<<"$kdc_libs"; then
    ok "control: ldd shows libsqlite3 for cablekey-kdc"
else
    not_ok "control: ldd shows libsqlite3 for cablekey-kdc"
fi

done_testing
