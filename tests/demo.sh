#!/usr/bin/env bash
# `make run`: the bundled Ractor churn workload (examples/ractor_churn.rb, 3 Ractors)
# under librace.so with Debian's ruby, then the analyzer's summary of its trace.
# The trace is kept in demo-out/ so it can be explored further with `race dump`.
set -eu
cd "$(dirname "$0")/.."
out=demo-out
mkdir -p "$out"
rm -f "$out"/race.*.trace
echo "$ LD_PRELOAD=shim/librace.so RACE_DIR=$out RACE_STACK_SAMPLE=64 ruby examples/ractor_churn.rb 3 20000"
LD_PRELOAD="$PWD/shim/librace.so" RACE_DIR="$out" RACE_STACK_SAMPLE=64 ruby examples/ractor_churn.rb 3 20000
trace=$(ls "$out"/race.*.trace | head -1)
echo
echo "$ analyze/race stats $trace"
analyze/race stats "$trace"
echo
echo "$ analyze/race report $trace"
analyze/race report "$trace"
echo
echo "More: analyze/race dump --stacks $trace | less"
