#!/usr/bin/env bash
# Builds Ruby 3.4.5 with symbols from Debian's ruby3.4 source package, once,
# into a cache directory outside the checkout, and prints the installed ruby's path.
# Reused on every later call: a Ruby build takes minutes, tests must not pay it twice.
#   RACE_RUBY_CACHE  cache directory (default: $HOME/.cache/race)
#   usage: scripts/build-ruby.sh [plain]      (only the plain -O3 build is made here)
set -euo pipefail
VERSION=3.4.5
DEBVER=3.4.5-1~exp1
cache=${RACE_RUBY_CACHE:-${HOME:-/root}/.cache/race}
prefix=$cache/ruby-$VERSION
if [ -x "$prefix/bin/ruby" ] && [ -f "$prefix/.race-complete" ]; then
    echo "$prefix/bin/ruby"; exit 0
fi
mkdir -p "$cache"
exec 9>"$cache/.build.lock"
flock 9
if [ -x "$prefix/bin/ruby" ] && [ -f "$prefix/.race-complete" ]; then
    echo "$prefix/bin/ruby"; exit 0
fi
log=$cache/ruby-$VERSION-build.log
echo "race: building Ruby $VERSION from Debian's ruby3.4 source package into $prefix (log: $log)" >&2
src=$cache/src
mkdir -p "$src"
cd "$src"
if ! ls ruby3.4_${VERSION}.orig.tar.* >/dev/null 2>&1; then
    list=/etc/apt/sources.list.d/race-deb-src.list
    if ! grep -qs experimental "$list"; then
        echo "deb-src http://deb.debian.org/debian experimental main" > "$list"
        echo "deb-src http://deb.debian.org/debian trixie main" >> "$list"
        apt-get update -q >>"$log" 2>&1
    fi
    apt-get source --download-only "ruby3.4=$DEBVER" >>"$log" 2>&1
fi
rm -rf "ruby-$VERSION"
tar xf ruby3.4_${VERSION}.orig.tar.*
cd "ruby-$VERSION"
# Debian's orig tarball has the bundled gems removed; make install would try to download them.
grep '^#' gems/bundled_gems > gems/bundled_gems.new || true
mv gems/bundled_gems.new gems/bundled_gems
./configure --prefix="$prefix" --enable-shared --disable-install-doc >>"$log" 2>&1
make -j"$(nproc)" >>"$log" 2>&1
make install >>"$log" 2>&1
touch "$prefix/.race-complete"
echo "$prefix/bin/ruby"
