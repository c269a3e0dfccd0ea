# shellcheck shell=bash
# tests/interop/pg_lib.sh — a throw-away PostgreSQL server for tests (sourced, never run).
#
# pg_start makes a temp dir, runs initdb in it as an unprivileged system user (PostgreSQL refuses
# to run as root, and tests run as root: the user CK_PG_OSUSER, default "ckpgtest", is created
# with useradd when missing), starts postgres listening ONLY on a private Unix socket directory
# (no TCP: nothing to collide with, nothing reachable from outside) under a private port number,
# creates a role and a database owned by it, and exports:
#   PGHOST (the socket directory), PGPORT, PGDATABASE, PGUSER, PGPASSFILE (0600, the role's
#   password: passwords come from libpq's usual places, never from a URI), CK_PG_URI
#   ("postgresql:///DB?host=...&port=...&user=..." without a password), CK_PG_SUPERUSER.
# pg_stop (also installed as an EXIT trap by pg_start unless CK_PG_NO_TRAP=1: a script that has
# an EXIT trap of its own, such as lib.sh's, sets it and calls pg_stop from there) stops the server
# and removes the directory (kept if CK_KEEP_TMP=1). Authentication is scram-sha-256 for every
# role, so a wrong or missing password is refused as in production; the role ck_wrongpw exists
# but the password file holds a wrong password for it (for tests of a refused login).
# A missing PostgreSQL binary is an error (return 1 with a message), never a skip.
#
# CK_PG_BIN   directory of initdb/pg_ctl/postgres (default: /usr/lib/postgresql/NN/bin, newest)

pg_find_bin() {
    if [ -n "${CK_PG_BIN:-}" ]; then
        [ -x "$CK_PG_BIN/pg_ctl" ] && return 0
        echo "pg_lib: no pg_ctl in CK_PG_BIN=$CK_PG_BIN" >&2
        return 1
    fi
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$d/pg_ctl" ] && [ -x "$d/initdb" ] && [ -x "$d/postgres" ]; then
            CK_PG_BIN="$d"
            return 0
        fi
    done
    echo "pg_lib: PostgreSQL server binaries not found (install postgresql: scripts/install-deps.sh)" >&2
    return 1
}

# Runs a command as the unprivileged server user (or as ourselves when we are not root).
pg_as() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u "$CK_PG_OSUSER" -- "$@"
    else
        "$@"
    fi
}

pg_start() {
    CK_PG_OSUSER="${CK_PG_OSUSER:-ckpgtest}"
    pg_find_bin || return 1
    command -v psql >/dev/null || { echo "pg_lib: psql not found" >&2; return 1; }
    if [ "$(id -u)" = 0 ] && ! id "$CK_PG_OSUSER" >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin "$CK_PG_OSUSER" 2>/dev/null ||
            id "$CK_PG_OSUSER" >/dev/null 2>&1 ||
            { echo "pg_lib: cannot create user $CK_PG_OSUSER" >&2; return 1; }
    fi
    CK_PG_DIR="$(mktemp -d /tmp/ck-pg.XXXXXX)" || return 1
    chmod 700 "$CK_PG_DIR"
    mkdir -p "$CK_PG_DIR/data" "$CK_PG_DIR/sock" "$CK_PG_DIR/log"
    [ "$(id -u)" = 0 ] && chown "$CK_PG_OSUSER" "$CK_PG_DIR/data" "$CK_PG_DIR/sock" "$CK_PG_DIR/log"
    # The superuser's password, for initdb; the test role's password, for the passfile.
    local supw rolepw
    supw="$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
    rolepw="$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
    ( umask 077; printf '%s\n' "$supw" >"$CK_PG_DIR/supw" )
    [ "$(id -u)" = 0 ] && chown "$CK_PG_OSUSER" "$CK_PG_DIR/supw"
    # The server user must reach its directories through the private parent.
    [ "$(id -u)" = 0 ] && chmod 711 "$CK_PG_DIR"
    CK_PG_SUPERUSER=ckpg_admin
    if ! pg_as "$CK_PG_BIN/initdb" -D "$CK_PG_DIR/data" -U "$CK_PG_SUPERUSER" \
            --pwfile="$CK_PG_DIR/supw" --auth=scram-sha-256 -E UTF8 --locale=C \
            >"$CK_PG_DIR/initdb.log" 2>&1; then
        echo "pg_lib: initdb failed:" >&2; cat "$CK_PG_DIR/initdb.log" >&2
        return 1
    fi
    # A port nobody's socket uses in our private directory is free by construction; pick one
    # anyway outside the usual 5432 so a stray system server is never confused with ours.
    PGPORT=$(( 20000 + RANDOM % 30000 ))
    if ! pg_as "$CK_PG_BIN/pg_ctl" -D "$CK_PG_DIR/data" -l "$CK_PG_DIR/log/server.log" -w -t 60 \
            -o "-c listen_addresses='' -c unix_socket_directories='$CK_PG_DIR/sock' -p $PGPORT -c fsync=off -c max_connections=50" \
            start >/dev/null 2>&1; then
        echo "pg_lib: postgres did not start:" >&2; cat "$CK_PG_DIR/log/server.log" >&2
        return 1
    fi
    CK_PG_STARTED=1
    [ "${CK_PG_NO_TRAP:-0}" = 1 ] || trap pg_stop EXIT
    export PGHOST="$CK_PG_DIR/sock" PGPORT PGDATABASE=cablekey PGUSER=cablekey
    export PGPASSFILE="$CK_PG_DIR/pgpass"
    ( umask 077
      printf '*:*:*:%s:%s\n' "$CK_PG_SUPERUSER" "$supw" "cablekey" "$rolepw" \
          ck_wrongpw not-its-password >"$PGPASSFILE" )
    chmod 600 "$PGPASSFILE"
    if ! psql -X -q -v ON_ERROR_STOP=1 -U "$CK_PG_SUPERUSER" -d postgres \
            -c "CREATE ROLE cablekey LOGIN PASSWORD '$rolepw'" \
            -c "CREATE ROLE ck_wrongpw LOGIN PASSWORD '$supw$rolepw'" \
            -c "CREATE DATABASE cablekey OWNER cablekey" >"$CK_PG_DIR/setup.log" 2>&1; then
        echo "pg_lib: cannot create the role and database:" >&2; cat "$CK_PG_DIR/setup.log" >&2
        return 1
    fi
    export CK_PG_URI="postgresql:///cablekey?host=$PGHOST&port=$PGPORT&user=cablekey"
    export CK_PG_SUPERUSER CK_PG_DIR
    return 0
}

# Runs SQL as the test role (psql, no startup file, stop on the first error).
pg_sql() {
    psql -X -q -A -t -v ON_ERROR_STOP=1 "$@"
}

pg_stop() {
    if [ "${CK_PG_STARTED:-0}" = 1 ]; then
        pg_as "$CK_PG_BIN/pg_ctl" -D "$CK_PG_DIR/data" -m immediate -w -t 30 stop \
            >/dev/null 2>&1
        CK_PG_STARTED=0
    fi
    if [ -n "${CK_PG_DIR:-}" ] && [ -d "$CK_PG_DIR" ]; then
        if [ "${CK_KEEP_TMP:-0}" = 1 ]; then
            echo "# pg_lib: kept $CK_PG_DIR" >&2
        else
            rm -rf "$CK_PG_DIR"
        fi
    fi
}
