#!/usr/bin/env bash
# `make run`: the bundled Ractor churn workload (examples/ractor_churn.rb, 3 Ractors)
# under `race run` with Debian's ruby (the report comes at the end), then the
# analyzer's statistics of its trace.
# The trace is kept in demo-out/ so it can be explored further with `race dump`.
set -eu
cd "$(dirname "$0")/.."
out=demo-out
mkdir -p "$out"
rm -f "$out"/race.*.trace
echo "$ analyze/race run --dir $out --keep=all --stack-sample=64 -- ruby examples/ractor_churn.rb 3 20000"
analyze/race run --dir "$out" --keep=all --stack-sample=64 -- ruby examples/ractor_churn.rb 3 20000
trace=$(ls "$out"/race.*.trace | head -1)
echo
echo "$ analyze/race stats $trace"
analyze/race stats "$trace"
echo
echo "More: analyze/race dump --stacks $trace | less"
