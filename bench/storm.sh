#!/usr/bin/env bash
# bench/storm.sh - a storm of findings in RACE_ON_FINDING=continue: how long the program
# runs when every finding is reported (the first 16 in full, then counted), against the
# same program with reporting suppressed (this source built with RACE_REPORTS_FULL=0:
# findings recorded and counted, nothing printed but the summaries), with nothing to
# report at all (the same allocations and frees, no stale read), and under the shim of
# an older commit (OLD, default c648145: every new slot's finding printed in full).
# tests/storm_target.c: THREADS threads, ITERS iterations each (allocate at
# storm_victim, free, read). Interleaved runs, median of ROUNDS.
# Usage: bench/storm.sh [ROUNDS [THREADS ITERS [OLD]]]; writes bench/results-storm.md.
set -u
cd "$(dirname "$0")/.."
rounds=${1:-7} threads=${2:-4} iters=${3:-1500} old=${4:-c648145}
out=bench/out/storm
rm -rf "$out"
mkdir -p "$out"
make -s all tests/bin/storm_target >&2 || exit 1
# build DIR REV CFLAGS: librace.so of REV (a commit, or "." for the working tree)
build() {
    mkdir -p "$1"
    if [ "$2" = . ]; then git ls-files -z | xargs -0 tar -cf - | tar -xf - -C "$1"
    else git archive "$2" | tar -xf - -C "$1"; fi
    touch "$1/.deps-stamp"
    make -s -C "$1" shim/librace.so CFLAGS="$3" >&2
}
build "$out/noreport" . "-O2 -g -DRACE_REPORTS_FULL=0" || exit 1
build "$out/old" "$old" "-O2 -g" || exit 1
declare -A shim=([reported]=$PWD/shim/librace.so [suppressed]=$PWD/$out/noreport/shim/librace.so
                 [nothing]=$PWD/shim/librace.so [old]=$PWD/$out/old/shim/librace.so)
declare -A mode=([reported]=storm [suppressed]=storm [nothing]=quiet [old]=storm)
configs="nothing suppressed reported old"
load0=$(cut -d' ' -f1-3 /proc/loadavg)
for r in $(seq 1 "$rounds"); do
    for c in $configs; do
        d=$out/$c.$r
        mkdir -p "$d"
        t0=$(date +%s%N)
        env LD_PRELOAD="${shim[$c]}" RACE_DIR="$d" RACE_GUARD_SITES=storm_victim RACE_GUARD_SIZES=48-48 \
            RACE_GUARD_SLOTS=64 RACE_WATCH=none RACE_ON_FINDING=continue \
            tests/bin/storm_target "${mode[$c]}" "$threads" "$iters" > "$d/out" 2> "$d/err"
        t1=$(date +%s%N)
        echo "$(( (t1 - t0) / 1000000 )) $(wc -c < "$d/err")" > "$d/ms"
        rm -f "$d"/*.trace
    done
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)
# med CONFIG FIELD: the median over the rounds
med() { for r in $(seq 1 "$rounds"); do cut -d' ' -f"$2" "$out/$1.$r/ms"; done | sort -n |
        awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
base=$(med suppressed 1)
{
    echo "## Storm of findings: run time with and without reporting"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); measured: $(git rev-parse --short HEAD)$(git diff --quiet || echo ' + working tree'); old: $old"
    echo "- machine: $(uname -r); $(nproc) cores; load average at start: $load0; at end: $load1"
    echo "- command: \`bench/storm.sh $rounds $threads $iters $old\` (regenerates this file)"
    echo "- workload: \`tests/bin/storm_target storm $threads $iters\` ($((threads * iters)) use-after-free reads of"
    echo "  guarded blocks, 64 slots: 64 distinct findings, each seen ~$((threads * iters / 64)) times), RACE_ON_FINDING=continue"
    echo
    echo "| configuration | median ms ($rounds rounds) | vs suppressed | stderr bytes |"
    echo "|---|---:|---:|---:|"
    for c in $configs; do
        m=$(med "$c" 1)
        echo "| $c | $m | $(awk -v a="$m" -v b="$base" 'BEGIN {printf "%.2fx", a / b}') | $(med "$c" 2) |"
    done
    echo
    echo "reported: this tree's shim; suppressed: the same source with RACE_REPORTS_FULL=0;"
    echo "nothing: \`storm_target quiet\` (the allocations and frees, no read: no finding);"
    echo "old: the shim at $old."
} > bench/results-storm.md
cat bench/results-storm.md
