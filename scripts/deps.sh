#!/usr/bin/env bash
# Installs, from Debian's packages only, what building and testing race needs.
# Idempotent and quick when everything is present: the Makefile runs it whenever
# its stamp file is missing. Exit status: 0 ready, 1 a package could not be installed.
# clang is for `make fuzz` only (libFuzzer).
set -u
pkgs="gcc make pkg-config libunwind-dev libdw-dev libelf-dev libzydis-dev ruby ruby-dev
      libyaml-dev libssl-dev zlib1g-dev libffi-dev libgmp-dev dpkg-dev xz-utils util-linux gdb binutils
      mariadb-server ruby-mysql2 heaptrack valgrind clang chromium python3-jsonschema"
# The report tests: chromium loads the HTML timeline headless; python3-jsonschema and the
# SARIF multitool (npm, tests/sarif/tools.sh) validate the SARIF log.
sarif_tools() {
    command -v npm > /dev/null || install_pkgs npm || return 1
    tests_dir=$(dirname "$0")/../tests/sarif
    "$tests_dir/tools.sh" > /dev/null
}
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
install_pkgs() {
    echo "race deps: installing $*" >&2
    if ! $sudo apt-get install -y -q "$@" >/dev/null 2>&1; then
        $sudo apt-get update -q >/dev/null 2>&1
        if ! $sudo apt-get install -y -q "$@"; then
            echo "race deps: could not install: $*" >&2
            return 1
        fi
    fi
}
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing="$missing $p"
done
if [ -n "$missing" ]; then
    install_pkgs $missing || exit 1
fi
sarif_tools || exit 1
exit 0
