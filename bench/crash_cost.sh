#!/usr/bin/env bash
# What crash records cost when nothing crashes: two builds of librace.so side by side
# (BEFORE, e.g. one built from the commit before crash records, and AFTER), in the
# default mode, interleaved within each round (none, before, after; ...), medians.
#   1. the Ractor churn workload (examples/ractor_churn.rb 2 WORK) with Debian's ruby:
#      wall seconds per run;
#   2. bench/free_cost.c pair: ns per malloc+free pair (the recording hot path);
#   3. the interposed allocator functions disassembled (gdb) and compared.
# A benchmark, not a test: prints a Markdown table, never fails on a slow result.
# usage: bench/crash_cost.sh BEFORE.so AFTER.so [ROUNDS] [WORK]
set -euo pipefail
cd "$(dirname "$0")/.."
before=${1:?usage: bench/crash_cost.sh BEFORE.so AFTER.so [ROUNDS] [WORK]}
after=${2:?usage: bench/crash_cost.sh BEFORE.so AFTER.so [ROUNDS] [WORK]}
rounds=${3:-9} work=${4:-100000}
ruby=${RUBY:-/usr/bin/ruby}
mkdir -p bench/out
cc -O2 -g -o bench/out/free_cost bench/free_cost.c -lpthread
dir=$(mktemp -d "${TMPDIR:-/tmp}/race-crashcost.XXXXXX")
trap 'rm -rf "$dir"' EXIT
load0=$(cut -d' ' -f1-3 /proc/loadavg)

median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
wall() { # wall seconds of one run of "$@"
    local t0 t1
    t0=$(date +%s.%N)
    "$@" > /dev/null 2>&1
    t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc -l
}
: > "$dir/none.rb"; : > "$dir/before.rb"; : > "$dir/after.rb"
: > "$dir/before.fc"; : > "$dir/after.fc"
for r in $(seq "$rounds"); do
    echo "round $r/$rounds" >&2
    wall "$ruby" examples/ractor_churn.rb 2 "$work" >> "$dir/none.rb"
    for c in before after; do
        so=$before; [ $c = after ] && so=$after
        rm -rf "$dir/t"; mkdir -p "$dir/t"
        wall env LD_PRELOAD="$so" RACE_DIR="$dir/t" "$ruby" examples/ractor_churn.rb 2 "$work" >> "$dir/$c.rb"
        rm -rf "$dir/t"; mkdir -p "$dir/t"
        env LD_PRELOAD="$so" RACE_DIR="$dir/t" bench/out/free_cost pair 3000000 2>/dev/null |
            sed -n 's/.*ns_per_pair=\([0-9.]*\).*/\1/p' >> "$dir/$c.fc"
    done
done
n=$(median < "$dir/none.rb"); b=$(median < "$dir/before.rb"); a=$(median < "$dir/after.rb")
fb=$(median < "$dir/before.fc"); fa=$(median < "$dir/after.fc")
echo "| measure | no shim | before | after | after / before |"
echo "|---|---|---|---|---|"
printf '| ractor_churn.rb 2 %s, wall s | %.3f | %.3f | %.3f | **%.3fx** |\n' "$work" "$n" "$b" "$a" "$(echo "$a / $b" | bc -l)"
printf '| free_cost pair, ns per malloc+free | - | %.1f | %.1f | **%.3fx** |\n' "$fb" "$fa" "$(echo "$fa / $fb" | bc -l)"
echo
echo "$rounds rounds, interleaved (none, before, after), medians; load average at start $load0, at end $(cut -d' ' -f1-3 /proc/loadavg)."
for f in none before after; do echo "ruby $f: $(tr '\n' ' ' < "$dir/$f.rb")"; done
for f in before after; do echo "free_cost $f: $(tr '\n' ' ' < "$dir/$f.fc")"; done

# 3. The hot path itself: the interposed allocator functions' machine code in both builds,
#    addresses masked (they move when other code is added), compared instruction by
#    instruction.
if command -v gdb > /dev/null; then
    echo
    echo "| function | instructions before | after | differing instructions |"
    echo "|---|---|---|---|"
    for fn in free malloc calloc realloc ruby_xfree ruby_sized_xfree; do
        for c in before after; do
            so=$before; [ $c = after ] && so=$after
            gdb -batch -ex "disassemble $fn" "$so" 2>/dev/null |
                sed -n 's/^ *0x[0-9a-f]* <+[0-9]*>:\t*//p' | sed 's/0x[0-9a-f]\{4,\}/ADDR/g; s/<[^>]*>//g' > "$dir/$c.dis"
        done
        echo "| $fn | $(grep -c . "$dir/before.dis") | $(grep -c . "$dir/after.dis") | $(diff "$dir/before.dis" "$dir/after.dis" | grep -c '^[<>]') |"
    done
fi
