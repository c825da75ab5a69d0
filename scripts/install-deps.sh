#!/bin/sh
# Installs the Debian packages rlpipe needs to build, test and run. Idempotent: packages already
# present are left alone, and apt-get runs only when something is missing.
set -eu

PACKAGES="build-essential cmake pkg-config git python3 sqlite3
libyaml-dev libsqlite3-dev libopenblas-openmp-dev libjansson-dev libpcre2-dev libutf8proc-dev
libseccomp-dev libgmp-dev zlib1g-dev libcairo2-dev libfontconfig-dev libmicrohttpd-dev curl
openmpi-bin libopenmpi-dev"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    echo "install-deps: all packages present"
    exit 0
fi

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
echo "install-deps: installing$missing"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
