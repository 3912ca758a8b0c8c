#!/usr/bin/env bash
# Builds a Ruby with symbols from Debian's source package, once per version and
# variant, into a cache directory outside the checkout, and prints the installed
# ruby's path. Reused on every later call: a Ruby build takes minutes, tests must
# not pay it twice. One lock serialises all builds (the machine is small).
#   RACE_RUBY_CACHE  cache directory (default: $HOME/.cache/race)
#   usage: scripts/build-ruby.sh [plain|asan] [3.4|3.3]   (either order)
#     plain  Debian's default flags (-O3), symbols kept: the production-like Ruby
#     asan   the same source under AddressSanitizer (-O1), to confirm what race finds
#     3.4    Ruby 3.4.5 from ruby3.4 3.4.5-1~exp1 (experimental): the default
#     3.3    Ruby 3.3.8 from ruby3.3 3.3.8-2 (trixie)
# Exit status: 0 printed, 64 usage, other: the build failed (see the log it names).
set -euo pipefail
variant=plain series=3.4
for arg in "$@"; do
    case $arg in
        plain|asan) variant=$arg ;;
        3.4|3.3) series=$arg ;;
        *) echo "usage: $0 [plain|asan] [3.4|3.3]" >&2; exit 64 ;;
    esac
done
case $series in
    3.4) VERSION=3.4.5 DEBVER=3.4.5-1~exp1 ;;
    3.3) VERSION=3.3.8 DEBVER=3.3.8-2 ;;
esac
case $variant in
    plain) suffix= ;;
    asan) suffix=-asan ;;
esac
cache=${RACE_RUBY_CACHE:-${HOME:-/root}/.cache/race}
prefix=$cache/ruby-$VERSION$suffix
built() { [ -x "$prefix/bin/ruby" ] && [ -f "$prefix/.race-complete" ]; }
if built; then echo "$prefix/bin/ruby"; exit 0; fi
mkdir -p "$cache"
exec 9>"$cache/.build.lock"
# The lock may be held for another version's build: look again every few seconds, so
# that a caller whose Ruby another process just finished does not wait for the next.
until flock -w 5 9; do
    if built; then echo "$prefix/bin/ruby"; exit 0; fi
done
if built; then echo "$prefix/bin/ruby"; exit 0; fi
log=$cache/ruby-$VERSION$suffix-build.log
echo "race: building Ruby $VERSION ($variant) from Debian's ruby$series source package into $prefix (log: $log)" >&2
src=$cache/src
mkdir -p "$src"
cd "$src"
if ! ls ruby${series}_${VERSION}.orig.tar.* >/dev/null 2>&1; then
    list=/etc/apt/sources.list.d/race-deb-src.list
    if ! grep -qs experimental "$list" || ! grep -qs trixie "$list"; then
        echo "deb-src http://deb.debian.org/debian experimental main" > "$list"
        echo "deb-src http://deb.debian.org/debian trixie main" >> "$list"
        apt-get update -q >>"$log" 2>&1
    fi
    apt-get source --download-only "ruby$series=$DEBVER" >>"$log" 2>&1
fi
rm -rf "ruby-$VERSION$suffix"
mkdir "ruby-$VERSION$suffix"
tar xf ruby${series}_${VERSION}.orig.tar.* -C "ruby-$VERSION$suffix" --strip-components=1
cd "ruby-$VERSION$suffix"
# Debian's orig tarball has the bundled gems removed; make install would try to download them.
grep '^#' gems/bundled_gems > gems/bundled_gems.new || true
mv gems/bundled_gems.new gems/bundled_gems
if [ "$variant" = asan ]; then
    # use-after-scope off: Ruby's coroutine switch trips it (see the seed investigation)
    ./configure --prefix="$prefix" --enable-shared --disable-install-doc \
        cflags='-fsanitize=address -fno-sanitize-address-use-after-scope -fno-omit-frame-pointer' \
        LDFLAGS=-fsanitize=address optflags=-O1 >>"$log" 2>&1
else
    ./configure --prefix="$prefix" --enable-shared --disable-install-doc >>"$log" 2>&1
fi
ASAN_OPTIONS=detect_leaks=0 make -j"$(nproc)" >>"$log" 2>&1
ASAN_OPTIONS=detect_leaks=0 make install >>"$log" 2>&1
touch "$prefix/.race-complete"
echo "$prefix/bin/ruby"
