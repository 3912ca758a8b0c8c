#!/usr/bin/env bash
# Crash attribution and race hunt on a real C extension: the mysql2 close/ping
# use-after-free (shared/seeds/mysql2-close-ping-uaf-pr.txt) with Debian's ruby 3.1,
# ruby-mysql2 0.5.3 and a private mariadbd (tests/mysql2/server.sh).
#   1. PROCS processes of `tests/mysql2/close_race.rb ping ITERS` under `race run` with
#      no flags (and as many with RACE_QUARANTINE_MB=16 beside them, interleaved: the
#      same attribution when freed blocks cannot be reused at once says whether "the
#      block may have been reallocated since" matters): crashed, explained, explained by
#      a block the closing thread (mysql_close's) freed.
#   2. HUNTS times `race hunt --runs RUNS` with no flags on the same command: confirmed
#      heap-use-after-free naming mysql_close on one side and mysql_ping or
#      mysql_store_result on the other, and the runs it took.
# Writes Markdown to bench/results-crash-attrib.md (or --out FILE, - for stdout). A
# benchmark, not a test: it exits non-zero only when it cannot run. Measures the
# working tree's shim/librace.so and analyze/race (run make first).
# usage: bench/hunt.sh [--procs N] [--iters N] [--hunts N] [--runs N] [--out FILE|-]
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
procs=20 iters=20 hunts=10 hruns=5 out=bench/results-crash-attrib.md
argv_used="bench/hunt.sh${*:+ $*}"
while [ $# -gt 0 ]; do
    case $1 in
    --procs) procs=${2:?}; shift ;;
    --iters) iters=${2:?}; shift ;;
    --hunts) hunts=${2:?}; shift ;;
    --runs) hruns=${2:?}; shift ;;
    --out) out=${2:?}; shift ;;
    -h|--help) sed -n '2,/^# usage:/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/hunt.sh: unknown argument $1" >&2; exit 64 ;;
    esac
    shift
done
source tests/mysql2/server.sh
if ! mysql2_have_deps; then
    echo "bench/hunt.sh: cannot run: $MYSQL2_MISSING" >&2
    exit 1
fi
RACE=$root/analyze/race
[ -x "$RACE" ] && [ -f shim/librace.so ] || { echo "bench/hunt.sh: run make first" >&2; exit 1; }
W=$(mktemp -d "${TMPDIR:-/tmp}/race-bench-hunt.XXXXXX")
trap 'mysql2_server_stop; rm -rf "$W"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if ! mysql2_server_start; then
    echo "bench/hunt.sh: cannot start mariadbd: $MYSQL2_ERROR" >&2
    exit 1
fi
export MYSQL2_TEST_PORT=$MYSQL2_PORT
measured="the working tree's build at $(git rev-parse --short HEAD)"
git diff --quiet HEAD -- shim analyze common 2>/dev/null || measured="$measured (modified)"
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u '+%Y-%m-%d %H:%M UTC')

# attrib NAME [RACE_VAR=value]: one process under race run; appends its crashes.rb facts
# to $W/NAME.facts, one process per line ("key=value ...")
attrib() {
    local name=$1; shift
    local d=$W/p
    rm -rf "$d"; mkdir -p "$d"
    ( timeout -k 2 90 env "$@" "$RACE" run --dir "$d/tr" -- "$MYSQL2_RUBY" tests/mysql2/close_race.rb ping "$iters" \
        > "$d/out" 2> "$d/err" ) 2>/dev/null
    local closer
    closer=$(awk '$1 == "close" && $2 == "tid" {print $3}' "$d/out")
    "$RACE" report --json "$d"/tr/race.*.trace 2>/dev/null |
        "$MYSQL2_RUBY" tests/mysql2/crashes.rb "${closer:-0}" | tr ' ' '=' | tr '\n' ' ' >> "$W/$name.facts"
    echo >> "$W/$name.facts"
}

: > "$W/defaults.facts"; : > "$W/quarantine.facts"
for i in $(seq "$procs"); do
    attrib defaults BENCH_CONFIG=defaults
    attrib quarantine RACE_QUARANTINE_MB=16
    printf '\rprocess %d/%d' "$i" "$procs" >&2
done
echo >&2

# hunts: outcome per hunt "confirmed@RUN:pair" / "confirmed@RUN:other" / "none"
: > "$W/hunts"
for i in $(seq "$hunts"); do
    d=$W/h$i
    ( timeout -k 2 900 "$RACE" hunt --runs "$hruns" --dir "$d" -- "$MYSQL2_RUBY" tests/mysql2/close_race.rb ping "$iters" \
        > "$d.out" 2> "$d.err" ) 2>/dev/null
    rc=$?
    run=$(sed -n 's/^race hunt: confirmed in run \([0-9]*\) .*/\1/p' "$d.out")
    if [ "$rc" = 66 ] && [ -n "$run" ]; then
        mapfile -t F < <("$RACE" report --json "$d/run-$run"/race.*.trace 2>/dev/null |
            "$MYSQL2_RUBY" tests/mysql2/findings.rb mysql_ping)
        mapfile -t G < <("$RACE" report --json "$d/run-$run"/race.*.trace 2>/dev/null |
            "$MYSQL2_RUBY" tests/mysql2/findings.rb mysql_store_result)
        if [ "${F[2]:-none}" = heap-use-after-free ] || [ "${G[2]:-none}" = heap-use-after-free ]; then
            echo "confirmed@$run:pair" >> "$W/hunts"
        else
            echo "confirmed@$run:other" >> "$W/hunts"
        fi
        grep -h '^  race run ' "$d.out" | head -1 >> "$W/hunt-lines"
    else
        echo "none:rc$rc" >> "$W/hunts"
    fi
    grep -h '^race hunt: run ' "$d.err" | sed "s/^/hunt $i: /" >> "$W/hunt-log"
    printf '\rhunt %d/%d' "$i" "$hunts" >&2
done
echo >&2
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# sum NAME KEY: the KEY facts summed over NAME's processes; crashed NAME: processes with a crash
sum() { awk -v k="$2" '{for (i = 1; i <= NF; i++) {split($i, a, "="); if (a[1] == k) s += a[2]}} END {print s + 0}' "$W/$1.facts"; }
crashed() { awk '{for (i = 1; i <= NF; i++) if ($i ~ /^crashes=[1-9]/) n++} END {print n + 0}' "$W/$1.facts"; }
pct() { [ "$2" -gt 0 ] && echo "$1/$2 ($(( ($1 * 100 + $2 / 2) / $2 ))%)" || echo "$1/$2"; }
{
    echo "## Crash attribution and race hunt: mysql2 close/ping"
    echo
    echo "- date: $started"
    echo "- measured: $measured"
    echo "- machine: $(uname -r); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"
    echo "- load average at start: $load_start; at end: $load_end"
    echo "- ruby $("$MYSQL2_RUBY" -e 'print RUBY_VERSION'), mysql2 $("$MYSQL2_RUBY" -rmysql2 -e 'print Mysql2::VERSION')"
    echo "- command: \`$argv_used\` (regenerates this file)"
    echo
    echo "### Attribution: $procs processes of \`close_race.rb ping $iters\` under \`race run\`"
    echo
    echo "| configuration | crashed | explained (crash-after-free) | by a block the closing thread freed | its free stack recorded, with mysql_close |"
    echo "|---|---:|---:|---:|---:|"
    for n in defaults quarantine; do
        c=$(crashed $n) e=$(sum $n explained) k=$(sum $n closer_free) s=$(sum $n close_stack) ns=$(sum $n no_stack)
        label="no flags"; [ $n = quarantine ] && label="RACE_QUARANTINE_MB=16"
        echo "| $label | $(pct "$c" "$procs") | $(pct "$e" "$c") | $(pct "$k" "$c") | $s of $((k - ns)) with a stack |"
    done
    echo
    echo "Per crash (best match): how it was found, what the trace says about reuse, block size, crashing function:"
    echo
    for n in defaults quarantine; do
        echo "- $n: $(tr ' ' '\n' < "$W/$n.facts" | grep -E '^(via|reuse|size|crash_in)' | sort | uniq -c | awk '{print $2 " x" $1}' | tr '\n' ' ')"
    done
    echo
    echo "### race hunt: $hunts hunts, --runs $hruns, no other flag"
    echo
    echo "| hunts | confirmed UAF, mysql_close vs mysql_ping/mysql_store_result | within 5 runs | other confirmed | none |"
    echo "|---:|---:|---:|---:|---:|"
    pair=$(grep -c ':pair' "$W/hunts") other=$(grep -c ':other' "$W/hunts") none=$(grep -c '^none' "$W/hunts")
    in5=$(grep ':pair' "$W/hunts" | sed 's/confirmed@\([0-9]*\).*/\1/' | awk '$1 <= 5' | wc -l)
    echo "| $hunts | $pair | $in5 | $other | $none |"
    echo
    echo "Runs needed per hunt: $(sed 's/confirmed@//; s/:.*//' "$W/hunts" | tr '\n' ' ')"
    echo
    echo "The race run lines the hunts printed:"
    echo
    sed 's/^ */    /' "$W/hunt-lines" 2>/dev/null
    echo
    echo "Every run of every hunt:"
    echo
    sed 's/^/    /' "$W/hunt-log" 2>/dev/null
} > "$W/result.md"
if [ "$out" = - ]; then cat "$W/result.md"; else cp "$W/result.md" "$out"; echo "bench/hunt.sh: wrote $out" >&2; fi
