#!/usr/bin/env bash
# Installs, from Debian's packages only, what building and testing race needs.
# Idempotent and quick when everything is present: the Makefile runs it whenever
# its stamp file is missing. Exit status: 0 ready, 1 a package could not be installed.
# clang is for `make fuzz` only (libFuzzer).
set -u
pkgs="gcc make pkg-config libunwind-dev libdw-dev libelf-dev libzydis-dev ruby ruby-dev
      libyaml-dev libssl-dev zlib1g-dev libffi-dev libgmp-dev dpkg-dev xz-utils util-linux gdb binutils
      mariadb-server ruby-mysql2 heaptrack valgrind clang"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "race deps: installing$missing" >&2
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
if ! $sudo apt-get install -y -q $missing >/dev/null 2>&1; then
    $sudo apt-get update -q >/dev/null 2>&1
    if ! $sudo apt-get install -y -q $missing; then
        echo "race deps: could not install:$missing" >&2
        exit 1
    fi
fi
exit 0
