#!/usr/bin/env bash
# What watching rb_vm_ci_lookup costs: prints Markdown tables and writes them to
# bench/results-watch.md (date, machine, commit, the command). A benchmark, not a test.
#   1. One probe hit, by kind: bench/probe_cost.c's loop unwatched, with its out-of-line
#      function watched (an entry hook: ENTER and EXIT) and with its inlined copy
#      watched (a breakpoint: SIGTRAP); ns per call, medians of the rounds; a hit's
#      cost is watched - unwatched.
#   2. Ractor workloads on the symbol-built Ruby 3.4.5 (scripts/build-ruby.sh; built
#      if missing): no shim, the default configuration without the watch
#      (RACE_WATCH=none), and the default (RACE_WATCH=rb_vm_ci_lookup: every instance
#      plus the stale call-info check). Interleaved rounds, medians; wall ratios and the
#      probe hits per run and per second from `race stats --json`.
# usage: bench/watch.sh [--rounds N] [--out FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=7 out=bench/results-watch.md
argv_used="bench/watch.sh${*:+ $*}"
while [ $# -gt 0 ]; do
    case $1 in
    --rounds) rounds=${2:?}; shift ;;
    --out) out=${2:?}; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/watch.sh: unknown argument '$1' (--help lists them)" >&2; exit 2 ;;
    esac
    shift
done
case $rounds in '' | *[!0-9]* | 0) echo "bench/watch.sh: --rounds takes a positive integer" >&2; exit 2 ;; esac

make -s all >&2
mkdir -p bench/out
gcc -O2 -g -std=gnu11 -Wall -Wextra -Werror -o bench/out/probe_cost bench/probe_cost.c
ruby=$(scripts/build-ruby.sh plain)
shim=$PWD/shim/librace.so
w=$(mktemp -d "${TMPDIR:-/tmp}/race-watch.XXXXXX")
trap 'rm -rf "$w"' EXIT
bench_name=watch
# shellcheck source=bench/lib.sh
. bench/lib.sh
now() { date +%s.%N; }

# ---- 1. one hit ------------------------------------------------------------------------
calls=200000
for r in $(seq "$rounds"); do
    for cfg in none probe_outofline probe_inlined; do
        env LD_PRELOAD="$shim" RACE_DIR="$w" RACE_WATCH=$cfg bench/out/probe_cost $calls > "$w/pc" 2>/dev/null
        awk -v c=$cfg '/^outofline_ns/ { print $2 > ("'"$w"'/" c ".out") } /^inlined_ns/ { print $2 > ("'"$w"'/" c ".inl") }' "$w/pc"
        cat "$w/$cfg.out" >> "$w/$cfg.outs"
        cat "$w/$cfg.inl" >> "$w/$cfg.inls"
        rm -f "$w"/race.*.trace
    done
done
base_out=$(median < "$w/none.outs") base_inl=$(median < "$w/none.inls")
hook=$(median < "$w/probe_outofline.outs") bp=$(median < "$w/probe_inlined.inls")
hook_cost=$(echo "$hook $base_out" | awk '{ printf "%.2f", ($1 - $2) / 1000 }')
bp_cost=$(echo "$bp $base_inl" | awk '{ printf "%.2f", ($1 - $2) / 1000 }')

# ---- 2. Ractor workloads -------------------------------------------------------------------
workloads=("examples/ractor_churn.rb 2 300000" "examples/ractor_eval.rb 3 20000")
table2=""
for wl in "${workloads[@]}"; do
    name=$(echo "$wl" | cut -d' ' -f1 | xargs basename)
    : > "$w/t.none"; : > "$w/t.nowatch"; : > "$w/t.watch"; : > "$w/hits"
    for r in $(seq "$rounds"); do
        for cfg in none nowatch watch; do
            case $cfg in
            none) envs=() ;;
            nowatch) envs=(LD_PRELOAD="$shim" RACE_DIR="$w" RACE_WATCH=none) ;;
            watch) envs=(LD_PRELOAD="$shim" RACE_DIR="$w") ;;
            esac
            t0=$(now)
            # shellcheck disable=SC2086
            env "${envs[@]}" timeout -k 2 300 "$ruby" $wl > "$w/o" 2> "$w/e" || { echo "bench/watch.sh: $wl failed under $cfg" >&2; cat "$w/e" >&2; exit 1; }
            t1=$(now)
            echo "$t0 $t1" | awk '{ printf "%.4f\n", $2 - $1 }' >> "$w/t.$cfg"
            if [ $cfg = watch ]; then
                analyze/race stats --json "$w"/race.*.trace | ruby -rjson -e '
                    t = JSON.parse(STDIN.read)["traces"][0]
                    puts (t["probes"] || []).sum { |p| p["hits"].to_i }' >> "$w/hits"
            fi
            rm -f "$w"/race.*.trace
        done
    done
    tn=$(median < "$w/t.none") tw0=$(median < "$w/t.nowatch") tw=$(median < "$w/t.watch") hits=$(median < "$w/hits")
    f0=$(sort -g "$w/t.nowatch" | head -1) f1=$(sort -g "$w/t.watch" | head -1)
    table2+=$(echo "$name $tn $tw0 $tw $hits $f0 $f1" | awk '{ printf "| `%s` | %.2f s | %.2f s (%.3fx) | %.2f s (%.3fx) | **%.3fx** (fastest %.3fx) | %d | %.0f |\n", $1, $2, $3, $3 / $2, $4, $4 / $2, $4 / $3, $7 / $6, $5, $5 / $4 }')
    table2+=$'\n'
done

{
    echo "# Watching rb_vm_ci_lookup: results"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)),"
    echo "commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- shim analyze || echo ' (with uncommitted changes)'), $rounds rounds, medians. Regenerate: \`$argv_used\`"
    echo
    echo "## One probe hit (bench/probe_cost.c, $calls calls per run)"
    echo
    echo "| probe | ns per call unwatched | watched | cost of one hit |"
    echo "|---|---|---|---|"
    echo "| entry hook (ENTER + EXIT, out-of-line function) | $base_out | $hook | **$hook_cost µs** |"
    echo "| breakpoint (int3, inlined copy) | $base_inl | $bp | **$bp_cost µs** |"
    echo
    echo "## Ractor workloads on Ruby 3.4.5 ($ruby)"
    echo
    echo "| workload | no shim | default, RACE_WATCH=none | default (watch on) | watch on / off, medians (fastest runs) | probe hits per run | hits per second |"
    echo "|---|---|---|---|---|---|---|"
    printf '%s' "$table2"
} | tee "$out"
