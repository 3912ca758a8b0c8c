#!/usr/bin/env bash
# bench/rubyframes.sh - what Ruby-level frames cost (shim/ruby_frames.c). Off the hot
# path by design; this says how far off:
#   1. one capture per finding (the access's frames walked and copied as strings) and
#      the free's frames turned into strings at report time: K distinct use-after-frees
#      through the uafext C extension, each 16+ Ruby frames deep (Debian's Ruby 3.1);
#   2. one capture per crash record: Process.kill(:SEGV) 16+ frames deep, RUNS runs;
#   3. the raw walk added to every guarded free: the Ractor churn with 1 in 50
#      allocations guarded, total walk time over the guarded frees;
#   4. the default mode's churn overhead unchanged: this tree's librace.so against
#      OLD's (default: the commit before Ruby frames), interleaved, ROUNDS rounds.
# 1-3 use this source built with -DRACE_RB_BENCH (each capture timed with
# CLOCK_MONOTONIC around it; nothing else differs). Writes bench/results-rubyframes.md.
# Usage: bench/rubyframes.sh [ROUNDS [K [RUNS [OLD]]]]
set -u
cd "$(dirname "$0")/.."
rounds=${1:-7} k=${2:-100} runs=${3:-20} old=${4:-63bde94}
bench_name=rubyframes
out=bench/out/rubyframes
res=bench/results-rubyframes.md
rm -rf "$out"
mkdir -p "$out/ext"
source bench/lib.sh
make -s all >&2 || die "make failed"
build() { # DIR REV CFLAGS: librace.so of REV (a commit, or "." for the working tree)
    mkdir -p "$1"
    if [ "$2" = . ]; then git ls-files -z | xargs -0 tar -cf - | tar -xf - -C "$1"
    else git archive "$2" | tar -xf - -C "$1"; fi
    touch "$1/.deps-stamp"
    make -s -C "$1" shim/librace.so CFLAGS="$3" >&2
}
build "$out/timed" . "-O2 -g -DRACE_RB_BENCH" || die "bench build failed"
build "$out/old" "$old" "-O2 -g" || die "build of $old failed"
timed=$PWD/$out/timed/shim/librace.so
cp tests/ruby/uafext/uafext.c tests/ruby/uafext/extconf.rb "$out/ext/"
(cd "$out/ext" && ruby extconf.rb && make) > "$out/ext.log" 2>&1 || die "uafext build failed"

cat > "$out/deep_uaf.rb" <<'EOF'
require "uafext"
def deep(n, &b)
  n.zero? ? b.call : deep(n - 1, &b)
end
def one
  a = UafExt.alloc(64)
  UafExt.free(a)
  UafExt.read(a)
end
Integer(ARGV[0]).times { deep(14) { one } }
EOF
cat > "$out/deep_crash.rb" <<'EOF'
def deep(n, &b)
  n.zero? ? b.call : deep(n - 1, &b)
end
deep(14) { Process.kill(:SEGV, $$) }
EOF

load0=$(cut -d' ' -f1-3 /proc/loadavg)
# 1. findings
env LD_PRELOAD="$timed" RACE_DIR="$out" RACE_GUARD_SITES=race_victim_alloc RACE_GUARD_SLOTS=1024 \
    RACE_ON_FINDING=continue ruby -I"$out/ext" "$out/deep_uaf.rb" "$k" > /dev/null 2> "$out/uaf.err"
grep '^race-rb-bench use ' "$out/uaf.err" | awk '{print $4 / 1000}' > "$out/use.us"
grep '^race-rb-bench free ' "$out/uaf.err" | awk '{print $4 / 1000}' > "$out/free.us"
use_frames=$(grep '^race-rb-bench use ' "$out/uaf.err" | awk '{print $3}' | sort -g | tail -1)
free_frames=$(grep '^race-rb-bench free ' "$out/uaf.err" | awk '{print $3}' | sort -g | tail -1)
# 2. crash records
: > "$out/crash.us"
for i in $(seq "$runs"); do
    env LD_PRELOAD="$timed" RACE_DIR="$out" ruby "$out/deep_crash.rb" > /dev/null 2> "$out/crash.err"
    grep '^race-rb-bench crash ' "$out/crash.err" | head -1 | awk '{print $4 / 1000}' >> "$out/crash.us"
    crash_frames=$(grep '^race-rb-bench crash ' "$out/crash.err" | head -1 | awk '{print $3}')
done
rm -f "$out"/race.*.trace
# 3. guarded frees
env LD_PRELOAD="$timed" RACE_DIR="$out" RACE_GUARD_SAMPLE=50 ruby examples/ractor_churn.rb 2 100000 \
    > /dev/null 2> "$out/churn.err"
grep '^race-rb-bench raw ' "$out/churn.err" | awk '{print $4 / 1000}' > "$out/raw.us"
raw_frames=$(grep '^race-rb-bench raw ' "$out/churn.err" | awk '{print $3}' | sort -g | tail -1)
rm -f "$out"/race.*.trace
# 4. churn, default configuration, old vs new, interleaved
data=$out/churn.data
: > "$data"
for r in $(seq "$rounds"); do
    for c in old new; do
        s=$PWD/shim/librace.so
        [ "$c" = old ] && s=$PWD/$out/old/shim/librace.so
        t0=$(date +%s%N)
        env LD_PRELOAD="$s" RACE_DIR="$out" ruby examples/ractor_churn.rb 2 300000 > /dev/null 2>&1
        t1=$(date +%s%N)
        echo "config=$c wall=$(calc "($t1 - $t0) / 1e9")" >> "$data"
        rm -f "$out"/race.*.trace
    done
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)
mo=$(median wall config=old) mn=$(median wall config=new)
tables=$res
{
    echo "# Ruby-level frames: cost"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), $(nproc) CPUs, commit $(git rev-parse --short HEAD)$(git diff --quiet || echo '+changes'),"
    echo "load average $load0 before, $load1 after. Command: \`bench/rubyframes.sh $rounds $k $runs $old\`"
    echo "(Debian's /usr/bin/ruby $(ruby -e 'print RUBY_VERSION'))."
    echo
    echo "| what | count | frames | min / p10 / median / p90 / max (µs) |"
    echo "|---|---|---|---|"
} > "$tables"
q() { sort -g "$1" | awk '{ a[NR] = $1 } function p(x, i) { i = int(x * (NR - 1) + 0.5) + 1; return a[i] }
    END { if (NR) printf "%d | %.1f / %.1f / %.1f / %.1f / %.1f", NR, a[1], p(0.1), p(0.5), p(0.9), a[NR]; else printf "0 | n/a" }'; }
emit "| finding: the access's Ruby frames, walked and copied | $(q "$out/use.us" | sed "s/ | / | $use_frames | /")"
emit "| finding: the free's raw frames turned into strings | $(q "$out/free.us" | sed "s/ | / | $free_frames | /")"
emit "| crash record: the crashing thread's Ruby frames | $(q "$out/crash.us" | sed "s/ | / | ${crash_frames:-?} | /")"
emit "| guarded free: the raw walk (at most 8 (iseq, pc) pairs kept in the slot) | $(q "$out/raw.us" | sed "s/ | / | ${raw_frames:-?} | /")"
emit ""
emit "The guarded frees are those of \`examples/ractor_churn.rb 2 100000\` with RACE_GUARD_SAMPLE=50"
emit "(a guarded free already costs an mprotect and a stack; by default 1 allocation in 1000 is guarded)."
emit ""
emit "Default configuration on \`examples/ractor_churn.rb 2 300000\` (no frame is walked: nothing is"
emit "reported), $rounds interleaved rounds, median wall seconds: $old's librace.so $(fmt %.3f "$mo"),"
emit "this tree's $(fmt %.3f "$mn") (new/old $(calc "$mn / $mo"))."
cat "$tables"
