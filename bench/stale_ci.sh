#!/usr/bin/env bash
# The call-info kwarg use-after-free that Ruby 3.3.8 and 3.4.5 share
# (examples/kwarg_super.rb, Bug #22075), over many runs per Ruby, interleaved: the
# symbol-built Ruby alone (how often it crashes or misbehaves) and under race's default
# configuration (rb_vm_ci_lookup watched with its stale call-info check), in
# RACE_ON_FINDING's abort mode (the default) or continue mode; optionally also the
# AddressSanitizer build of the same source (3.4 only: what it reports, and where).
# Per run: how it ended, whether race reported the stale call-info, wall time, stderr
# bytes (counted, not kept). Writes bench/results-stale-ci.md with the command, the
# commit and the load. A benchmark: it records rates, it asserts nothing.
# usage: bench/stale_ci.sh [--ruby 3.4|3.3]... [--runs N] [--mode abort|continue]
#                          [--timeout S] [--asan] [--out FILE]
#   --ruby     the Rubies to run, in order (default: 3.3 then 3.4)
#   --timeout  seconds before a run is killed (default 60): a hang shows as "hang"
set -euo pipefail
cd "$(dirname "$0")/.."
runs=20 out=bench/results-stale-ci.md mode=abort limit=60 asan=0 rubies=()
argv_used="bench/stale_ci.sh${*:+ $*}"
while [ $# -gt 0 ]; do
    case $1 in
    --runs) runs=${2:?}; shift ;;
    --out) out=${2:?}; shift ;;
    --ruby) rubies+=("${2:?}"); shift ;;
    --mode) mode=${2:?}; shift ;;
    --timeout) limit=${2:?}; shift ;;
    --asan) asan=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/stale_ci.sh: unknown argument '$1' (--help lists them)" >&2; exit 2 ;;
    esac
    shift
done
case $runs in '' | *[!0-9]* | 0) echo "bench/stale_ci.sh: --runs takes a positive integer" >&2; exit 2 ;; esac
case $limit in '' | *[!0-9]* | 0) echo "bench/stale_ci.sh: --timeout takes a positive integer" >&2; exit 2 ;; esac
case $mode in abort | continue) ;; *) echo "bench/stale_ci.sh: --mode is abort or continue" >&2; exit 2 ;; esac
[ ${#rubies[@]} -gt 0 ] || rubies=(3.3 3.4)
for v in "${rubies[@]}"; do
    case $v in 3.3 | 3.4) ;; *) echo "bench/stale_ci.sh: --ruby is 3.3 or 3.4" >&2; exit 2 ;; esac
done
make -s all >&2
w=$(mktemp -d "${TMPDIR:-/tmp}/race-staleci.XXXXXX")
trap 'rm -rf "$w"' EXIT
prog=examples/kwarg_super.rb

# One word for how a run ended: ok (4 correct lines), or what went wrong.
outcome() { # RC OUT ERR-HEAD
    if grep -q 'ERROR: AddressSanitizer' "$3"; then echo asan-report
    elif grep -q '==ERROR: race:' "$3" && [ "$1" = 134 ]; then echo race-abort
    elif grep -q 'try to mark T_NONE' "$3"; then echo "bug-T_NONE"
    elif grep -q 'stack overflow' "$3"; then echo stack-overflow
    elif grep -q '\[BUG\] Segmentation fault' "$3"; then echo segfault
    elif grep -q '\[BUG\]' "$3"; then echo "bug-other"
    elif [ "$1" = 124 ] || [ "$1" = 137 ]; then echo hang
    elif grep -q 'Error' "$3"; then echo "exception"
    elif [ "$1" = 0 ] && [ "$(grep -c '^ractor ' "$2")" = 4 ]; then echo ok
    else echo "exit-$1"; fi
}
# run NAME CMD...: runs it under the timeout; stdout in $w/NAME.out, the first MB of
# stderr in $w/NAME.err; sets rc, secs (wall) and bytes (all of stderr).
run() {
    local name=$1; shift
    local t0 t1
    t0=$(date +%s%N)
    set +e
    { timeout -k 2 "$limit" "$@" 2>&1 > "$w/$name.out" |
        { head -c 1000000 > "$w/$name.err"; wc -c > "$w/$name.rest"; }; }
    rc=${PIPESTATUS[0]}
    set -e
    t1=$(date +%s%N)
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
    bytes=$(($(stat -c %s "$w/$name.err") + $(cat "$w/$name.rest")))
}
# Median and maximum of a column of numbers.
stat_of() { sort -g | awk '{ v[NR] = $1 } END { if (!NR) { print "- -"; exit }
    m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print m, v[NR] }'; }

load_before=$(uptime | sed 's/.*load average: //')
for v in "${rubies[@]}"; do
    ruby=$(scripts/build-ruby.sh plain "$v")
    [ $asan = 1 ] && asanruby=$(scripts/build-ruby.sh asan "$v")
    version=$("$ruby" -e 'print RUBY_VERSION')
    : > "$w/table-$v"
    for i in $(seq "$runs"); do
        run p "$ruby" $prog
        plain=$(outcome $rc "$w/p.out" "$w/p.err") p_secs=$secs p_bytes=$bytes

        rm -rf "$w/tr"; mkdir "$w/tr"
        run r env LD_PRELOAD="$PWD/shim/librace.so" RACE_DIR="$w/tr" RACE_ON_FINDING=$mode "$ruby" $prog
        raced=$(outcome $rc "$w/r.out" "$w/r.err")
        analyze/race report --json "$w"/tr/race.*.trace > "$w/r.json" 2> /dev/null || true
        kinds=$(ruby -rjson -e 'r = JSON.parse(File.read(ARGV[0])) rescue (puts "unreadable"; exit)
            k = r["findings"].map { |f| f["type"] }.tally; puts k.empty? ? "none" : k.map { |t, n| "#{t} x#{n}" }.join(", ")' "$w/r.json")
        a=""
        if [ $asan = 1 ]; then
            run a env ASAN_OPTIONS=detect_leaks=0 "$asanruby" $prog
            where=$(grep -m1 -A2 'ERROR: AddressSanitizer' "$w/a.err" | sed -n 's/.* in \([a-z_0-9]*\) .*\/\([a-z_]*\.c:[0-9]*\).*/\1 \2/p' | head -1 || true)
            a=" $(outcome $rc "$w/a.out" "$w/a.err")${where:+ ($where)} |"
        fi
        echo "| $i | $plain | $p_secs | $p_bytes | $raced | $kinds | $secs | $bytes |$a" >> "$w/table-$v"
        echo "$version run $i: plain $plain ${p_secs}s ${p_bytes}B; race $raced, findings: $kinds, ${secs}s ${bytes}B${a:+; asan$a}" >&2
    done
    echo "$version" > "$w/version-$v"
done
load_after=$(uptime | sed 's/.*load average: //')

count() { awk -F'|' -v c="$2" -v p="$3" '$c ~ p { n++ } END { print n + 0 }' "$1"; }
col() { awk -F'|' -v c="$2" '{ print $c + 0 }' "$1"; }
{
    echo "# The call-info kwarg use-after-free (Bug #22075) on Ruby ${rubies[*]}: $runs runs each"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), $(nproc) CPUs, commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- shim analyze || echo ' (with uncommitted changes)'), load average $load_before before, $load_after after (a shared machine: other jobs ran). Regenerate: \`$argv_used\`"
    echo
    echo "Under race: the default configuration with RACE_ON_FINDING=$mode. \"crashed or misbehaved\": any run that did not print its 4 correct lines and exit 0 (race-abort counts: race ended it). Wall seconds and stderr bytes: median / maximum over the runs. Runs killed after ${limit} s show as hang."
    for v in "${rubies[@]}"; do
        t=$w/table-$v
        read -r pm px <<<"$(col "$t" 4 | stat_of)"; read -r pbm pbx <<<"$(col "$t" 5 | stat_of)"
        read -r rm rx <<<"$(col "$t" 8 | stat_of)"; read -r rbm rbx <<<"$(col "$t" 9 | stat_of)"
        echo
        echo "## Ruby $(cat "$w/version-$v")"
        echo
        echo "| | runs | crashed or misbehaved | hung | stale-call-info reported | wall s (median / max) | stderr bytes (median / max) |"
        echo "|---|---:|---:|---:|---:|---:|---:|"
        echo "| plain | $runs | $((runs - $(count "$t" 3 '^ ok $'))) | $(count "$t" 3 '^ hang $') | - | $pm / $px | $pbm / $pbx |"
        echo "| under race ($mode) | $runs | $((runs - $(count "$t" 6 '^ ok $'))) | $(count "$t" 6 '^ hang $') | $(count "$t" 7 'stale-call-info') | $rm / $rx | $rbm / $rbx |"
        echo
        echo "| run | plain | s | stderr B | under race | race findings | s | stderr B |$([ $asan = 1 ] && echo ' ASan |')"
        echo "|---:|---|---:|---:|---|---|---:|---:|$([ $asan = 1 ] && echo '---|')"
        cat "$t"
    done
} | tee "$out"
