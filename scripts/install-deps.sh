#!/usr/bin/env bash
# Installs everything cablekey needs to build, test and benchmark on Debian 12 (run as root).
# Idempotent: packages already present are skipped, so `make demo` / `make test` can call it every time.
set -euo pipefail

PKGS=(build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev
      libssl-dev libsqlite3-dev sqlite3 python3
      krb5-user krb5-kdc krb5-admin-server krb5-gss-samples
      libkrb5-26-heimdal libasn1-8-heimdal libhx509-5-heimdal libroken19-heimdal
      libwind0-heimdal libheimbase1-heimdal libhcrypto5-heimdal libgssapi3-heimdal
      libheimntlm0-heimdal libkafs0-heimdal libsl0-heimdal libhdb9-heimdal libotp0-heimdal
      krb5-pkinit libkrb5-dev tshark faketime procps iproute2 jq
      libmicrohttpd-dev libjansson-dev libsrtp2-dev postgresql libpq-dev espeak-ng libcurl4-openssl-dev curl systemd
      chromium chromium-driver python3-selenium)

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "install-deps: missing packages (${missing[*]}) and not root" >&2
        exit 1
    fi
    echo "install-deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Heimdal's kinit conflicts with MIT's krb5-user as a package, so unpack it into a private folder.
HEIMDAL_DIR="${CK_HEIMDAL_DIR:-/opt/cablekey-heimdal}"
if [ ! -x "$HEIMDAL_DIR/usr/bin/kinit.heimdal" ] && [ ! -x "$HEIMDAL_DIR/usr/bin/kinit" ]; then
    tmp=$(mktemp -d)
    (cd "$tmp" && apt-get download heimdal-clients >/dev/null)
    mkdir -p "$HEIMDAL_DIR"
    dpkg-deb -x "$tmp"/heimdal-clients_*.deb "$HEIMDAL_DIR"
    rm -rf "$tmp"
fi
echo "install-deps: ok"
