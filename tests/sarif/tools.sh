#!/usr/bin/env bash
# tools.sh - installs, once, the SARIF validators the tests use, and prints the directory
# that holds them: Microsoft's SARIF multitool (its `validate` checks GitHub code
# scanning's rules) from the npm registry, which also ships the SARIF 2.1.0 JSON schema
# (sarif-2.1.0.json) that Debian's python3-jsonschema checks a log against.
#   RACE_TOOLS_CACHE  where to install (default: $HOME/.cache/race/tools)
# Exit status: 0 ready (the directory on stdout), 1 it could not be installed.
set -u
VERSION=5.7.0
dir=${RACE_TOOLS_CACHE:-${HOME:-/root}/.cache/race/tools}/sarif-multitool-$VERSION
pkg=$dir/node_modules/@microsoft/sarif-multitool-linux
if [ ! -x "$pkg/Sarif.Multitool" ] || [ ! -s "$pkg/sarif-2.1.0.json" ]; then
    mkdir -p "$dir" || exit 1
    exec 9>"$dir/.lock"
    flock 9
    if [ ! -x "$pkg/Sarif.Multitool" ] || [ ! -s "$pkg/sarif-2.1.0.json" ]; then
        echo "race deps: installing @microsoft/sarif-multitool-linux@$VERSION (npm) into $dir" >&2
        if ! npm install --prefix "$dir" --no-audit --no-fund --loglevel=error \
            "@microsoft/sarif-multitool-linux@$VERSION" >&2; then
            echo "race deps: could not install the SARIF multitool" >&2
            exit 1
        fi
        chmod u+x "$pkg/Sarif.Multitool"
    fi
fi
echo "$pkg"
