#!/usr/bin/env bash
# Ruby 3.4.5's call-info use-after-free (examples/kwarg_super.rb, Bug #22075) over many
# runs, three ways, interleaved: the symbol-built Ruby alone (how often it crashes or
# misbehaves), under race's default configuration (rb_vm_ci_lookup watched, with its
# stale call-info check; RACE_ON_FINDING=continue so a finding does not end the run),
# and the AddressSanitizer build of the same source (what it reports, and where).
# Writes bench/results-stale-ci.md with per-run outcomes and the command. A benchmark:
# it records rates, it asserts nothing.
# usage: bench/stale_ci.sh [--runs N] [--out FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=20 out=bench/results-stale-ci.md
argv_used="bench/stale_ci.sh${*:+ $*}"
while [ $# -gt 0 ]; do
    case $1 in
    --runs) runs=${2:?}; shift ;;
    --out) out=${2:?}; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/stale_ci.sh: unknown argument '$1' (--help lists them)" >&2; exit 2 ;;
    esac
    shift
done
case $runs in '' | *[!0-9]* | 0) echo "bench/stale_ci.sh: --runs takes a positive integer" >&2; exit 2 ;; esac
make -s all >&2
ruby=$(scripts/build-ruby.sh plain)
asan=$(scripts/build-ruby.sh asan)
w=$(mktemp -d "${TMPDIR:-/tmp}/race-staleci.XXXXXX")
trap 'rm -rf "$w"' EXIT
prog=examples/kwarg_super.rb

# One word for how a run ended: ok (4 correct lines), or what went wrong.
outcome() { # RC OUT ERR
    if grep -q 'ERROR: AddressSanitizer' "$3"; then echo asan-report
    elif grep -q 'try to mark T_NONE' "$3"; then echo "bug-T_NONE"
    elif grep -q 'stack overflow' "$3"; then echo stack-overflow
    elif grep -q '\[BUG\] Segmentation fault' "$3"; then echo segfault
    elif grep -q '\[BUG\]' "$3"; then echo "bug-other"
    elif grep -q 'Error' "$3"; then echo "exception"
    elif [ "$1" = 0 ] && [ "$(grep -c '^ractor ' "$2")" = 4 ]; then echo ok
    elif [ "$1" = 124 ] || [ "$1" = 137 ]; then echo hang
    else echo "exit-$1"; fi
}
: > "$w/table"
for i in $(seq "$runs"); do
    timeout -k 2 60 "$ruby" $prog > "$w/p.out" 2> "$w/p.err" && rc=0 || rc=$?
    plain=$(outcome $rc "$w/p.out" "$w/p.err")

    rm -rf "$w/tr"; mkdir "$w/tr"
    timeout -k 2 60 env LD_PRELOAD="$PWD/shim/librace.so" RACE_DIR="$w/tr" RACE_ON_FINDING=continue \
        "$ruby" $prog > "$w/r.out" 2> "$w/r.err" && rc=0 || rc=$?
    raced=$(outcome $rc "$w/r.out" "$w/r.err")
    analyze/race report --json "$w"/tr/race.*.trace > "$w/r.json" 2> /dev/null || true
    kinds=$(ruby -rjson -e 'r = JSON.parse(File.read(ARGV[0])) rescue (puts "unreadable"; exit)
        k = r["findings"].map { |f| f["type"] }.tally; puts k.empty? ? "none" : k.map { |t, n| "#{t} x#{n}" }.join(", ")' "$w/r.json")
    hits=$(analyze/race stats --json "$w"/tr/race.*.trace 2> /dev/null | ruby -rjson -e '
        t = JSON.parse(STDIN.read)["traces"][0]; puts (t["probes"] || []).sum { |p| p["hits"].to_i }' 2> /dev/null || echo "?")

    timeout -k 2 60 env ASAN_OPTIONS=detect_leaks=0 "$asan" $prog > "$w/a.out" 2> "$w/a.err" && rc=0 || rc=$?
    asan_o=$(outcome $rc "$w/a.out" "$w/a.err")
    where=$(grep -m1 -A2 'ERROR: AddressSanitizer' "$w/a.err" | sed -n 's/.* in \([a-z_0-9]*\) .*\/\([a-z_]*\.c:[0-9]*\).*/\1 \2/p' | head -1 || true)
    echo "| $i | $plain | $raced | $kinds | $hits | $asan_o${where:+ ($where)} |" >> "$w/table"
    echo "run $i: plain $plain; race $raced, findings: $kinds; asan $asan_o $where" >&2
done
count() { awk -F'|' -v c="$1" -v p="$2" '$c ~ p { n++ } END { print n + 0 }' "$w/table"; }
{
    echo "# Ruby 3.4.5's call-info use-after-free: $runs runs each way"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), $(nproc) CPUs, commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- shim analyze || echo ' (with uncommitted changes)'). Regenerate: \`$argv_used\`"
    echo
    echo "| | runs | crashed or misbehaved | STALE_CI reported | any finding | ASan heap-use-after-free |"
    echo "|---|---:|---:|---:|---:|---:|"
    echo "| plain Ruby 3.4.5 | $runs | $((runs - $(count 3 '^ ok $'))) | - | - | - |"
    echo "| under race (default) | $runs | $((runs - $(count 4 '^ ok $'))) | $(count 5 'stale-call-info') | $((runs - $(count 5 '^ none $'))) | - |"
    echo "| ASan build of the same source | $runs | $((runs - $(count 7 '^ ok $'))) | - | - | $(count 7 'asan-report') |"
    echo
    echo "Per run: how each ended, race's findings by type, race's probe hits, ASan's first report (function, line)."
    echo
    echo "| run | plain | under race | race findings | probe hits | ASan |"
    echo "|---:|---|---|---|---:|---|"
    cat "$w/table"
} | tee "$out"
