#!/usr/bin/env bash
# Ruby's call-info kwarg use-after-free (examples/kwarg_super.rb, Bug #22075) under
# race's defaults, N runs: how each run ended (the stale call-info check reported it,
# or the process crashed first), and for the crashes, whether `race report` explained
# them from the recorded frees (crash-after-free) and by what kind of block (a swept
# call-info, a freed kwarg block, another block). Writes bench/results-stale-ci-crash.md
# with the command, the commit and the load. A benchmark: it records rates, it asserts
# nothing.
# usage: bench/stale_ci_crash.sh [--ruby 3.4|3.3] [--runs N] [--timeout S]
set -euo pipefail
cd "$(dirname "$0")/.."
bench_name=bench/stale_ci_crash.sh
source bench/lib.sh
runs=10 ver=3.4 limit=60 out=bench/results-stale-ci-crash.md
argv_used="bench/stale_ci_crash.sh${*:+ $*}"
while [ $# -gt 0 ]; do
    case $1 in
    --runs) runs=${2:?}; shift ;;
    --ruby) ver=${2:?}; shift ;;
    --timeout) limit=${2:?}; shift ;;
    --out) out=${2:?}; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (--help lists them)" ;;
    esac
    shift
done
case $runs in '' | *[!0-9]* | 0) die "--runs takes a positive integer" ;; esac
case $ver in 3.3 | 3.4) ;; *) die "--ruby is 3.3 or 3.4" ;; esac
make -s all >&2
ruby=$(scripts/build-ruby.sh plain "$ver")
w=$(mktemp -d "${TMPDIR:-/tmp}/race-cicrash.XXXXXX")
trap 'rm -rf "$w"' EXIT
load0=$(cut -d' ' -f1-3 /proc/loadavg)
rows=()
for i in $(seq 1 "$runs"); do
    d=$w/run$i
    mkdir -p "$d"
    rc=0
    timeout "$limit" analyze/race run --dir "$d/tr" --keep=all --no-report -- "$ruby" examples/kwarg_super.rb \
        > /dev/null 2> "$d/err" || rc=$?
    analyze/race report --json "$d"/tr/race.*.trace > "$d/r.json" 2> /dev/null || true
    row=$(ruby -rjson -e '
        r = JSON.parse(File.read(ARGV[0])) rescue (puts "unreadable"; exit)
        kinds = r["findings"].map { |f| f["type"] }.uniq
        first = r["crashes"] || []   # a crash record linked to another is listed under its "then"
        expl = first.select { |c| (c["matches"] || []).any? }
        what = expl.map { |c|
            m = c["matches"][0]
            "#{c["signal"]}: #{m["via"]}#{m["register"] ? " " + m["register"] : ""} in #{m["block"]["size"]}-byte block via #{m.dig("free", "entry")}, #{(c["time_ms"] - m.dig("free", "time_ms")).round(3)} ms after the free"
        }
        puts [kinds.empty? ? "-" : kinds.join("+"), first.size, expl.size, what.empty? ? "-" : what.join(" ")].join("\t")
    ' "$d/r.json")
    rows+=("$i	$rc	$row")
    note "run $i: status $rc, $row"
done
{
    echo "# Ruby $ver's call-info bug under race's defaults: reported, or crashed first and explained"
    echo
    echo "Command: \`$argv_used\`, at $(git rev-parse --short HEAD) on $(date -u '+%Y-%m-%d %H:%M UTC'), load $load0 -> $(cut -d' ' -f1-3 /proc/loadavg)."
    echo
    echo "| run | exit status | findings | crashes | of them explained (crash-after-free) | the best match |"
    echo "|---|---|---|---|---|---|"
    for r in "${rows[@]}"; do
        IFS=$'\t' read -r n rc kinds nc ne what <<< "$r"
        echo "| $n | $rc | $kinds | $nc | $ne | $what |"
    done
} > "$out"
note "wrote $out"
cat "$out"
