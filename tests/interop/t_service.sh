#!/usr/bin/env bash
# cablekey-kdc as a service: `make install DESTDIR=...`, the installed systemd units (cablekey-kdc
# and cablekey-admind) checked with systemd-analyze verify, and README.md's "Running a realm for real" run as written, in a
# temporary root: its three fenced blocks (marked <!-- t_service: run|systemd|client -->) are
# extracted and run with the system paths moved under $tmp/root, a real service user created
# with useradd (and removed at exit), and the service manager's part done from the installed
# unit's own ExecStart and ExecReload lines (this machine's PID 1 is not systemd).
. "$(dirname "$0")/lib.sh"

if is_mit; then
    skip_case "cablekey service" "cablekey-only test"
    done_testing
fi
require_tool "MIT client tools" kinit klist
require_tool "systemd-analyze" systemd-analyze
require_tool "useradd/userdel/runuser" useradd userdel runuser
require_tool "python3" "$CK_PY"
[ "$(id -u)" = 0 ] || bail "this test needs root (useradd, privileged start); CI runs as root"
TOP=$(cd "$CK_INTEROP_DIR/../.." && pwd)
root="$tmp/root"
mkdir -p "$root"
chmod 755 "$root"
SVC="_ckt$$"
REALM=EXAMPLE.COM
PORT=$(free_port) || bail "free port"
CK_LISTEN=("127.0.0.1:$PORT")

svc_cleanup() {
    [ "$BASHPID" = "$CK_MAIN_PID" ] || return 0
    if [ -n "$KDC_PID" ]; then kill -KILL "$KDC_PID" 2>/dev/null; wait "$KDC_PID" 2>/dev/null; KDC_PID=""; fi
    if id "$SVC" >/dev/null 2>&1; then userdel "$SVC" >/dev/null 2>&1; fi
    getent group "$SVC" >/dev/null 2>&1 && groupdel "$SVC" >/dev/null 2>&1
    return 0
}
trap 'svc_cleanup; ck_cleanup' EXIT

# --- make install into a DESTDIR -------------------------------------------------------------
UNIT="$root/usr/local/lib/systemd/system/cablekey-kdc.service"
if make -C "$TOP" --no-print-directory install DESTDIR="$root" BUILD="$CK_BUILD" \
        >"$tmp/install.log" 2>&1 && [ -x "$root/usr/local/sbin/cablekey-kdc" ] &&
        [ -x "$root/usr/local/bin/cablekey" ] && [ -f "$UNIT" ] &&
        [ -f "$root/usr/local/share/doc/cablekey/kdc.conf.example" ]; then
    ok "make install DESTDIR: daemon, CLI, unit and kdc.conf.example installed"
else
    bail "make install DESTDIR" "$(tail -n 20 "$tmp/install.log"; find "$root" | head -n 20)"
fi
if grep -qx "ExecStart=/usr/local/sbin/cablekey-kdc --config /etc/cablekey/kdc.conf --user _cablekey" "$UNIT"; then
    ok "the installed unit names the installed daemon (PREFIX, not DESTDIR)"
else not_ok "the installed unit names the installed daemon" "$(grep Exec "$UNIT")"; fi
missing=""
for l in "Type=notify" "ExecReload=/bin/kill -HUP \$MAINPID" \
         "CapabilityBoundingSet=CAP_NET_BIND_SERVICE CAP_SETUID CAP_SETGID" "NoNewPrivileges=yes" \
         "ProtectSystem=strict" "ReadWritePaths=-/var/lib/cablekey -/var/log/cablekey" \
         "PrivateTmp=yes" "PrivateDevices=yes" "ProtectProc=invisible" "ProtectKernelTunables=yes" \
         "ProtectHome=yes" "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX"; do
    grep -qxF -- "$l" "$UNIT" || missing="$missing [$l]"
done
if [ -z "$missing" ]; then ok "the unit is Type=notify, reloads with SIGHUP, and is hardened"
else not_ok "the unit is Type=notify, reloads with SIGHUP, and is hardened" "missing:$missing"; fi
# systemd-analyze verify checks that ExecStart's program exists and is executable; the unit names
# /usr/local/sbin/cablekey-kdc, which exists here only under the DESTDIR, so a copy with the
# DESTDIR path is verified (everything else byte for byte). Its warnings (unknown keys, bad
# values) do not change the exit status, so any output is a failure too.
mkdir -p "$tmp/verify"
sed "s|^ExecStart=/usr/local/sbin/|ExecStart=$root/usr/local/sbin/|" "$UNIT" >"$tmp/verify/cablekey-kdc.service"
if timeout 60 systemd-analyze verify "$tmp/verify/cablekey-kdc.service" >"$tmp/verify.out" 2>&1 &&
        [ ! -s "$tmp/verify.out" ]; then
    ok "systemd-analyze verify: the installed unit is clean"
else not_ok "systemd-analyze verify: the installed unit is clean" "$(cat "$tmp/verify.out")"; fi
# ...and the check can fail: a misspelt key is reported.
sed 's/^Type=notify$/Type=notfy/' "$tmp/verify/cablekey-kdc.service" >"$tmp/verify/bad.service"
timeout 60 systemd-analyze verify "$tmp/verify/bad.service" >"$tmp/verify-bad.out" 2>&1
if grep -q "notfy" "$tmp/verify-bad.out"; then ok "systemd-analyze verify reports a broken unit (the check can fail)"
else not_ok "systemd-analyze verify reports a broken unit" "$(cat "$tmp/verify-bad.out")"; fi

# The admin API daemon's unit: installed with the same prefix, checked the same way (a DESTDIR
# copy, so that verify finds the installed program).
AUNIT="$root/usr/local/lib/systemd/system/cablekey-admind.service"
if [ -x "$root/usr/local/sbin/cablekey-admind" ] && [ -f "$AUNIT" ] &&
        grep -qx "ExecStart=/usr/local/sbin/cablekey-admind --config /etc/cablekey/admind.conf --user _cablekey" "$AUNIT" &&
        grep -qx "Documentation=file:/usr/local/share/doc/cablekey/cablekey-admind.md" "$AUNIT" &&
        [ -f "$root/usr/local/share/doc/cablekey/cablekey-admind.md" ]; then
    ok "make install DESTDIR: cablekey-admind, its unit (installed paths) and its manual"
else not_ok "make install DESTDIR: cablekey-admind and its unit" "$(ls -l "$root/usr/local/sbin" "$(dirname "$AUNIT")" 2>&1; grep -E 'Exec|Documentation' "$AUNIT" 2>&1)"; fi
missing=""
for l in "Type=notify" "NotifyAccess=main" "ExecReload=/bin/kill -HUP \$MAINPID" \
         "CapabilityBoundingSet=CAP_SETUID CAP_SETGID" "NoNewPrivileges=yes" \
         "ProtectSystem=strict" "ReadWritePaths=-/var/lib/cablekey -/var/log/cablekey" \
         "PrivateTmp=yes" "PrivateDevices=yes" "ProtectProc=invisible" "ProtectKernelTunables=yes" \
         "ProtectHome=yes" "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX" \
         "SystemCallFilter=@system-service"; do
    grep -qxF -- "$l" "$AUNIT" || missing="$missing [$l]"
done
if [ -z "$missing" ]; then ok "the admind unit is Type=notify, reloads with SIGHUP, and is hardened"
else not_ok "the admind unit is Type=notify, reloads with SIGHUP, and is hardened" "missing:$missing"; fi
sed "s|^ExecStart=/usr/local/sbin/|ExecStart=$root/usr/local/sbin/|" "$AUNIT" >"$tmp/verify/cablekey-admind.service"
if timeout 60 systemd-analyze verify "$tmp/verify/cablekey-admind.service" >"$tmp/verify-admind.out" 2>&1 &&
        [ ! -s "$tmp/verify-admind.out" ]; then
    ok "systemd-analyze verify: the installed admind unit is clean"
else not_ok "systemd-analyze verify: the installed admind unit is clean" "$(cat "$tmp/verify-admind.out")"; fi
sed 's/^ProtectSystem=strict$/ProtectSystem=strcit/' "$tmp/verify/cablekey-admind.service" >"$tmp/verify/bad-admind.service"
timeout 60 systemd-analyze verify "$tmp/verify/bad-admind.service" >"$tmp/verify-bad-admind.out" 2>&1
if grep -q "strcit" "$tmp/verify-bad-admind.out"; then ok "systemd-analyze verify reports a broken admind unit (the check can fail)"
else not_ok "systemd-analyze verify reports a broken admind unit" "$(cat "$tmp/verify-bad-admind.out")"; fi

# --- README.md: extract the blocks -----------------------------------------------------------
# block NAME: the fenced block after the "<!-- t_service: NAME -->" marker.
block() {
    awk -v m="<!-- t_service: $1 -->" '
        $0 == m { want = 1; next }
        want && /^```/ { if (inb) exit; inb = 1; next }
        want && inb { print }' "$TOP/README.md"
}
# Moves every system path the README touches under $root; anything left is refused below.
relocate() {
    sed -e "s|^make install|make -C \"$TOP\" --no-print-directory install DESTDIR=\"$root\" BUILD=\"$CK_BUILD\"|" \
        -e "s|_cablekey|$SVC|g" \
        -e "s|/etc/cablekey|$root/etc/cablekey|g" \
        -e "s|/var/lib/cablekey|$root/var/lib/cablekey|g" \
        -e "s|/var/log/cablekey|$root/var/log/cablekey|g" \
        -e "s|/etc/krb5.conf|$KRB5_CONFIG|g" \
        -e "s|^\( *kdc_listen = \)88$|\1$PORT|" \
        -e "s|kdc = kdc.example.com|kdc = 127.0.0.1:$PORT|"
}
for b in run systemd client; do
    block "$b" >"$tmp/block-$b.md"
    relocate <"$tmp/block-$b.md" >"$tmp/block-$b.sh"
    [ -s "$tmp/block-$b.sh" ] || bail "README.md has no '<!-- t_service: $b -->' block"
    # Safety: nothing may reach a real system path (only the login shell's name is one).
    if grep -v '^ *#' "$tmp/block-$b.sh" | sed -e 's|--shell /usr/sbin/nologin||' -e 's/[[:space:]]#.*$//' -e "s|$tmp[^ \"']*||g" |
            grep -En '(^|[^A-Za-z0-9_.-])/(etc|var|usr|opt|srv|run|home|root)(/|$)' >"$tmp/leak"; then
        bail "README block '$b' still names a system path after relocation" "$(cat "$tmp/leak")"
    fi
done
if grep -q '^make install' "$tmp/block-run.md" && grep -q '^useradd .*_cablekey' "$tmp/block-run.md" &&
   grep -q 'cablekey-kdc --check' "$tmp/block-run.md" && grep -q '^kinit alice' "$tmp/block-client.md"; then
    ok "README's service section: install, service user, realm, kdc.conf, --check, client krb5.conf"
else not_ok "README's service section has the expected steps" "$(cat "$tmp"/block-*.md)"; fi

export PATH="$root/usr/local/bin:$root/usr/local/sbin:$PATH"
# Block 1, as written (set -e: every command must succeed).
if (cd "$TOP" && bash -e "$tmp/block-run.sh") >"$tmp/run.out" 2>&1 </dev/null; then
    ok "README block 1 (install, user, directories, realm, kdc.conf, --check) runs"
else
    bail "README block 1 runs" "$(tail -n 25 "$tmp/run.out")"
fi
assert_file_grep "--check in the README prints the realm" "^realm: EXAMPLE\.COM$" "$tmp/run.out"
assert_file_grep "--check in the README checks as the service user" "^user: $SVC \(uid " "$tmp/run.out"
assert_file_grep "--check in the README: configuration OK" "^configuration OK$" "$tmp/run.out"
SVC_UID=$(id -u "$SVC")
if [ "$(stat -c %U "$root/var/lib/cablekey/kdc.db.stash")" = "$SVC" ] &&
   [ "$(stat -c %a "$root/var/lib/cablekey/kdc.db.stash")" = 600 ]; then
    ok "the stash is the service user's, mode 0600"
else not_ok "the stash is the service user's, mode 0600" "$(ls -l "$root/var/lib/cablekey")"; fi

# Block 2 through a stand-in for systemctl that does what systemd does with the installed unit:
# runs its ExecStart (relocated like the README) with $NOTIFY_SOCKET, waits for READY=1, and
# runs its ExecReload with $MAINPID.
start_notify_receiver "$tmp/notify.sock" "$tmp/notify.log"
wait_notify() { wait_file_grep "$tmp/notify.log" "$1"; } # wait_notify PATTERN
unit_cmd() { # unit_cmd KEY: the unit's KEY= command line, relocated
    sed -n "s|^$1=||p" "$UNIT" | sed -e "s|^/usr/local/sbin/|$root/usr/local/sbin/|" | relocate
}
systemctl() {
    case "$1" in
        daemon-reload) return 0 ;;
        enable)
            local cmd; cmd=$(unit_cmd ExecStart)
            NOTIFY_SOCKET="$tmp/notify.sock" bash -c "exec $cmd" >"$tmp/kdc.stderr" 2>&1 </dev/null &
            KDC_PID=$!
            ck_wait_kdc_ready
            wait_notify "^READY=1" ;;
        reload)
            local cmd; cmd=$(unit_cmd ExecReload)
            : >"$tmp/notify.log"
            MAINPID=$KDC_PID bash -c "$cmd" &&
                wait_notify "^RELOADING=1" && wait_notify "^READY=1" ;;
        status) kill -0 "$KDC_PID" ;;
        *) echo "systemctl stand-in: $*: not supported" >&2; return 1 ;;
    esac
}
# (set -e holds inside the subshell only when its status is not tested, hence rc.)
(set -e; . "$tmp/block-systemd.sh") >"$tmp/systemd.out" 2>&1 </dev/null; rc=$?
if [ $rc -eq 0 ]; then
    ok "README block 2 (start, reload, status) from the installed unit's ExecStart/ExecReload"
else
    not_ok "README block 2 (start, reload, status)" "$(cat "$tmp/systemd.out")
$(tail -n 10 "$tmp/kdc.stderr" 2>/dev/null; tail -n 10 "$root/var/log/cablekey/kdc.log" 2>/dev/null)"
fi
# The systemctl stand-in ran in a subshell: find the KDC it started.
KDC_PID=$(pgrep -f "^$root/usr/local/sbin/cablekey-kdc --config" | head -n 1)
[ -n "$KDC_PID" ] || bail "the KDC started from the unit is not running" "$(cat "$tmp/kdc.stderr")"
assert_file_grep "sd_notify: READY=1 after the reload" "^READY=1\|STATUS=serving; reloaded" "$tmp/notify.log"
assert_file_grep "the KDC logs to the README's log file" "configuration reloaded and log reopened" \
    "$root/var/log/cablekey/kdc.log"
bad=0; uids=""
for t in /proc/"$KDC_PID"/task/*/status; do
    uids="$uids $(awk '/^Uid:/ { print $2 }' "$t")"
    awk -v u="$SVC_UID" '/^Uid:/ { exit !($2 == u && $3 == u && $4 == u && $5 == u) }' "$t" || bad=1
done
if [ $bad -eq 0 ]; then ok "every KDC thread runs as the service user $SVC (uid $SVC_UID)"
else not_ok "every KDC thread runs as the service user" "uids:$uids"; fi

# Block 3: the client, with alice's password on stdin as kinit's prompt reads it.
(set -e; . "$tmp/block-client.sh") >"$tmp/client.out" 2>&1 <<<"Alice-Pw-42"; rc=$?
if [ $rc -eq 0 ]; then
    ok "README block 3 (client krb5.conf, kinit alice, klist) works against the service"
else
    not_ok "README block 3 (client krb5.conf, kinit alice, klist)" "$(cat "$tmp/client.out")"
fi
assert_file_grep "klist shows alice's TGT" "krbtgt/EXAMPLE\.COM@EXAMPLE\.COM" "$tmp/client.out"

kill -TERM "$KDC_PID"
if wait_notify "^STOPPING=1$"; then ok "sd_notify: STOPPING=1 on SIGTERM"
else not_ok "sd_notify: STOPPING=1 on SIGTERM" "$(cat "$tmp/notify.log")"; fi
for i in $(seq 1 100); do kill -0 "$KDC_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$KDC_PID" 2>/dev/null; then not_ok "the service stops on SIGTERM"
else ok "the service stops on SIGTERM"; fi
KDC_PID=""
rep=$(grep -Eh "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error" "$tmp/kdc.stderr" \
          "$root/var/log/cablekey/kdc.log" 2>/dev/null | head -n 3)
if [ -z "$rep" ]; then ok "no sanitizer report from the service"
else not_ok "no sanitizer report from the service" "$rep"; fi
done_testing
