#!/usr/bin/env bash
# Prints the directory of a Ruby's source from Debian's source package, fetched and
# unpacked once into the cache outside the checkout (RACE_RUBY_CACHE, default
# ~/.cache/race), for the tests that run Ruby's own test files (bootstraptest/).
#   usage: scripts/ruby-source.sh 3.1|3.3|3.4
#     3.1  Debian's ruby3.1 source package from bookworm (3.1.2-7+deb12u1: the mirror
#          has no source for the 3.1.7 security update that /usr/bin/ruby is)
#     3.4  the ruby3.4 3.4.5 source that scripts/build-ruby.sh builds (built if missing)
#     3.3  the ruby3.3 3.3.8 source that scripts/build-ruby.sh 3.3 builds (built if missing)
# Exit status: 0 printed, 1 the source cannot be fetched (message on stderr), 64 usage.
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${RACE_RUBY_CACHE:-${HOME:-/root}/.cache/race}
case ${1:-} in
3.4|3.3)
    scripts/build-ruby.sh plain "$1" > /dev/null
    case $1 in 3.4) dir=$cache/src/ruby-3.4.5 ;; 3.3) dir=$cache/src/ruby-3.3.8 ;; esac
    [ -f "$dir/bootstraptest/runner.rb" ] || { echo "ruby-source: $dir has no bootstraptest/runner.rb" >&2; exit 1; }
    echo "$dir"
    ;;
3.1)
    ver=3.1.2 debver=3.1.2-7+deb12u1
    src=$cache/src31
    dir=$src/ruby-$ver
    if [ ! -f "$dir/.race-complete" ]; then
        mkdir -p "$src"
        exec 9>"$cache/.src31.lock"
        flock 9
        if [ ! -f "$dir/.race-complete" ]; then
            cd "$src"
            if ! ls ruby3.1_$ver.orig.tar.* > /dev/null 2>&1; then
                list=/etc/apt/sources.list.d/race-deb-src-bookworm.list
                if ! grep -qs bookworm "$list"; then
                    echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main" > "$list"
                    apt-get update -q > "$src/apt.log" 2>&1 || true
                fi
                if ! apt-get source --download-only "ruby3.1=$debver" >> "$src/apt.log" 2>&1; then
                    echo "ruby-source: cannot fetch Debian's ruby3.1=$debver source (log: $src/apt.log)" >&2
                    exit 1
                fi
            fi
            rm -rf "$dir"
            mkdir "$dir"
            tar xf ruby3.1_$ver.orig.tar.* -C "$dir" --strip-components=1
            touch "$dir/.race-complete"
        fi
    fi
    echo "$dir"
    ;;
*)
    echo "usage: scripts/ruby-source.sh 3.1|3.3|3.4" >&2
    exit 64
    ;;
esac
