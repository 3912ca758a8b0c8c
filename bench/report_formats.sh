#!/usr/bin/env bash
# What `race report --sarif` and `race report --html` cost, and how the timeline page
# behaves in a real browser: prints Markdown tables and writes them to
# bench/results-report-formats.md (date, machine, load, commit, the command). A
# benchmark, not a test.
#   1. One big trace: Debian's Ruby runs the Ractor churn (examples/ractor_churn.rb 2 N,
#      N sized for --events, RACE_RING_MB large enough that nothing is overwritten), then
#      a use after free across two Ractors (tests/ruby/uaf_ractors.rb and its C
#      extension): about 4 million events and one finding. race report --sarif and
#      --html (the default 50 ms window, and windows holding about 100,000 events and
#      the page's bound of 250,000): wall time, peak RSS, output size.
#   2. Many traces: --traces short Ruby processes under the shim (each a few Ractors;
#      one in 25 the use after free): the same, over all of them at once.
#   3. Each page in headless Chromium (#selftest): the page's own performance.now()
#      figures (logged to the console): parse + first render of every timeline, and the
#      slowest of 20 wheel-zoom redraws.
# Rounds are interleaved; tables give medians.
# usage: bench/report_formats.sh [--rounds N] [--events N] [--traces N] [--out FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3 events=4000000 ntraces=250 out=bench/results-report-formats.md
argv_used="bench/report_formats.sh${*:+ $*}"
while [ $# -gt 0 ]; do
    case $1 in
    --rounds) rounds=${2:?}; shift ;;
    --events) events=${2:?}; shift ;;
    --traces) ntraces=${2:?}; shift ;;
    --out) out=${2:?}; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/report_formats.sh: unknown argument '$1' (--help lists them)" >&2; exit 2 ;;
    esac
    shift
done
for v in "$rounds" "$events" "$ntraces"; do
    case $v in '' | *[!0-9]* | 0) echo "bench/report_formats.sh: --rounds, --events and --traces take positive integers" >&2; exit 2 ;; esac
done
command -v chromium > /dev/null || { echo "bench/report_formats.sh: chromium is missing (scripts/deps.sh installs it)" >&2; exit 1; }

make -s all >&2
shim=$PWD/shim/librace.so race=$PWD/analyze/race
w=$(mktemp -d "${TMPDIR:-/tmp}/race-formats.XXXXXX")
trap 'rm -rf "$w"' EXIT
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.4f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
kib() { awk -v b="$1" 'BEGIN { if (b < 1048576) printf "%.0f KiB", b / 1024; else printf "%.1f MiB", b / 1048576 }'; }

mkdir -p "$w/ext"
cp tests/ruby/uafext/uafext.c tests/ruby/uafext/extconf.rb "$w/ext/"
(cd "$w/ext" && ruby extconf.rb && make) > "$w/ext.log" 2>&1
# uaf RING_MB DIR CHURN_ITERATIONS: one Ruby process, the churn then the cross-Ractor bug
uaf() {
    nice -n 10 env LD_PRELOAD="$shim" RACE_DIR="$2" RACE_RING_MB="$1" RACE_GUARD_SITES=race_victim_alloc \
        RACE_ON_FINDING=continue ruby -I"$w/ext" -e \
        "ARGV.replace(%w[2 $3]); load 'examples/ractor_churn.rb'; load 'tests/ruby/uaf_ractors.rb'" \
        > /dev/null 2>&1
}
events_of() { "$race" stats --json "$1" | ruby -rjson -e 'puts JSON.parse(STDIN.read)["traces"][0]["records"]["valid"]'; }

# ---- 1. the big trace ----------------------------------------------------------------------
# about 7.3 events per churn iteration (measured: 734,653 for 100,000)
iters=$(( events * 100000 / 700000 ))
ring=$(( events * 64 / 1048576 * 3 / 2 + 64 ))
mkdir -p "$w/big"
echo "making the big trace: churn 2 $iters, RACE_RING_MB=$ring" >&2
uaf "$ring" "$w/big" "$iters"
big=$(ls "$w"/big/race.ruby.*.trace)
nbig=$(events_of "$big")
span_ms=$("$race" stats --json "$big" | ruby -rjson -e 't = JSON.parse(STDIN.read)["traces"][0]; puts t["span_ms"] || 0')
# windows that hold about 100,000 and about 250,000 of the last events
win100=$(awk -v n="$nbig" -v s="$span_ms" 'BEGIN { printf "%.0f", 100000 / (n / s) }')
win250=$(awk -v n="$nbig" -v s="$span_ms" 'BEGIN { printf "%.0f", 260000 / (n / s) }')

# time_it NAME CMD...: wall seconds and peak RSS of CMD appended to $w/NAME.{wall,rss}
time_it() {
    local name=$1; shift
    /usr/bin/time -f '%e %M' -o "$w/time" "$@" > /dev/null 2> "$w/err" || true
    read -r wall rss < <(tail -1 "$w/time") # after "Command exited with non-zero status 1"
    echo "$wall" >> "$w/$name.wall"
    echo "$rss" >> "$w/$name.rss"
}
# browse NAME HTML: the page's own figures, appended to $w/NAME.{first,zoom}
browse() {
    timeout 300 chromium --headless --no-sandbox --disable-gpu --user-data-dir="$w/chrome" \
        --enable-logging=stderr --v=0 --dump-dom "file://$2#selftest" > "$w/dom" 2> "$w/log" || true
    local line
    line=$(grep -o '"race timeline selftest: [^"]*"' "$w/log" | tail -1)
    echo "$line" | sed -n 's/.*first-render-ms \([0-9.]*\).*/\1/p' >> "$w/$1.first"
    echo "$line" | sed -n 's/.*zoom-redraw-max-ms \([0-9.]*\).*/\1/p' >> "$w/$1.zoom"
    echo "$line" | sed -n 's/.*events \([0-9]*\).*/\1/p' > "$w/$1.events"
    echo "$line" | sed -n 's/.*errors \([0-9]*\).*/\1/p' > "$w/$1.errors"
}

# ---- 2. many traces ----------------------------------------------------------------------
mkdir -p "$w/many"
echo "making $ntraces traces" >&2
for i in $(seq "$ntraces"); do
    if [ $((i % 25)) -eq 0 ]; then
        uaf 16 "$w/many" 1000
    else
        nice -n 10 env LD_PRELOAD="$shim" RACE_DIR="$w/many" ruby examples/ractor_churn.rb 2 2000 > /dev/null 2>&1
    fi
done
nmany=$(ls "$w"/many/race.*.trace | wc -l)
nmany_ev=$("$race" stats --json "$w"/many/race.*.trace | ruby -rjson -e 'puts JSON.parse(STDIN.read)["traces"].sum { |t| t["records"]["valid"].to_i }')

for r in $(seq "$rounds"); do
    echo "round $r of $rounds" >&2
    time_it big.sarif "$race" report --sarif="$w/big.sarif" "$big"
    time_it big.html "$race" report --html "$w/big.html" "$big"
    time_it big100.html "$race" report --html "$w/big100.html" --window "$win100" "$big"
    time_it big250.html "$race" report --html "$w/big250.html" --window "$win250" "$big"
    time_it big.text "$race" report "$big"
    time_it many.sarif "$race" report --sarif="$w/many.sarif" "$w"/many/race.*.trace
    time_it many.html "$race" report --html "$w/many.html" "$w"/many/race.*.trace
    time_it many.text "$race" report "$w"/many/race.*.trace
    for p in big big100 big250 many; do browse "$p" "$w/$p.html"; done
done

row() { # row LABEL NAME FILE
    local size=-
    [ -n "${3:-}" ] && size=$(kib "$(stat -c %s "$3")")
    printf '| %s | %.2f s | %s | %s |\n' "$1" "$(median < "$w/$2.wall")" \
        "$(mib "$(( $(median < "$w/$2.rss" | cut -d. -f1) * 1024 ))")" "$size"
}
page() { # page LABEL NAME
    printf '| %s | %s | %.0f ms | %.1f ms | %s |\n' "$1" "$(cat "$w/$2.events")" "$(median < "$w/$2.first")" \
        "$(median < "$w/$2.zoom")" "$(cat "$w/$2.errors")"
}
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- analyze || echo "+dirty")
{
    echo "# race report --sarif / --html: cost, and the page in a browser"
    echo
    echo "Recorded $(date -u '+%Y-%m-%d %H:%M UTC') at commit $commit by \`$argv_used\`;"
    echo "$(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), load before: $(cut -d' ' -f1-3 /proc/loadavg);"
    echo "$(chromium --version 2>/dev/null | head -1), headless, software rendering. Medians of $rounds interleaved rounds."
    echo
    echo "Big trace: Debian's Ruby $(ruby -e 'print RUBY_VERSION'), \`ractor_churn.rb 2 $iters\` then \`uaf_ractors.rb\`, RACE_RING_MB=$ring:"
    echo "$nbig events over $(printf '%.0f' "$span_ms") ms, $(mib "$(stat -c %s "$big")") file, one finding."
    echo "Many traces: $nmany traces ($((ntraces / 25)) with the finding), $nmany_ev events in all."
    echo
    echo "| command | wall | peak RSS | output |"
    echo "|---|---:|---:|---:|"
    row "race report (text), big trace" big.text
    row "race report --sarif, big trace" big.sarif "$w/big.sarif"
    row "race report --html, big trace (50 ms window)" big.html "$w/big.html"
    row "race report --html --window $win100, big trace (~100k events)" big100.html "$w/big100.html"
    row "race report --html --window $win250, big trace (bound: 250k events)" big250.html "$w/big250.html"
    row "race report (text), $nmany traces" many.text
    row "race report --sarif, $nmany traces" many.sarif "$w/many.sarif"
    row "race report --html, $nmany traces" many.html "$w/many.html"
    echo
    echo "The pages in Chromium (the page's own performance.now(): script start to every timeline drawn; the slowest of 20 wheel zooms):"
    echo
    echo "| page | events in it | parse + first render | slowest zoom redraw | page errors |"
    echo "|---|---:|---:|---:|---:|"
    page "big trace, 50 ms" big
    page "big trace, ~100k events" big100
    page "big trace, 250k events" big250
    page "$nmany traces" many
} > "$w/results.md"
cat "$w/results.md"
cp "$w/results.md" "$out"
