# bench/lib.sh - the helpers every bench script sources: messages, the machine's busy
# CPU time, arithmetic, Markdown output, and statistics over the data file.
# Owns no policy: a script sets bench_name (the prefix of its messages), data (its file
# of data lines, one run per line as key=value words) and tables (the Markdown it
# builds), and decides what to measure. Never runs a workload itself.
# shellcheck shell=bash

note() { echo "${bench_name:-bench}: $*" >&2; }
die() { note "$@"; exit 1; }
# CPU seconds the whole machine has spent busy (user nice system irq softirq steal):
# what other processes used during a run is the noise indicator of every table.
busy() { awk '/^cpu / { printf "%.2f\n", ($2 + $3 + $4 + $7 + $8 + $9) / 100 }' /proc/stat; }
# calc EXPR: an awk expression, printed with 6 decimals.
calc() { awk "BEGIN { x = $1; printf \"%.6f\", x }"; }
# emit LINE...: one line of the Markdown tables.
emit() { printf '%s\n' "$*" >>"$tables"; }
# fmt FORMAT X: printf FORMAT of X, "n/a" for nan.
fmt() { awk -v x="$2" "BEGIN { if (x == \"nan\") print \"n/a\"; else printf \"$1\", x }"; }
# pct A B: A as a percentage of B.
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.0f%%", 100 * a / b; else print "n/a" }'; }

# values FIELD KEY=VALUE...: FIELD of every data line holding every KEY=VALUE (and not
# timeout=1), sorted numerically.
values() {
    local field=$1
    shift
    awk -v f="$field" -v keys="$*" '
        BEGIN { nk = split(keys, want, " ") }
        { delete kv; for (i = 1; i <= NF; i++) { eq = index($i, "="); kv[substr($i, 1, eq - 1)] = substr($i, eq + 1) }
          if (kv["timeout"] == 1) next
          for (k = 1; k <= nk; k++) { eq = index(want[k], "="); if (kv[substr(want[k], 1, eq - 1)] != substr(want[k], eq + 1)) next }
          if (f in kv) print kv[f] }' "$data" | sort -g
}
# The median of numbers, one a line, on stdin; "nan" when there are none.
median_of() {
    sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "nan";
                   else if (NR % 2) print a[(NR + 1) / 2];
                   else printf "%.6f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
# median FIELD KEY=VALUE...: the median of values; with no arguments, of stdin's numbers.
median() {
    if [ $# -eq 0 ]; then median_of; else values "$@" | median_of; fi
}
minimum() { values "$@" | awk 'NR == 1 { m = $1 } END { print (NR ? m : "nan") }'; }
maximum() { values "$@" | awk '{ m = $1 } END { print (NR ? m : "nan") }'; }
count() { values "$@" | awk 'END { print NR }'; }
# quantiles FIELD KEY=VALUE...: "min / p10 / median / p90 / max" of FIELD.
quantiles() {
    values "$@" | awk '{ a[NR] = $1 }
        function q(p,  i) { i = int(p * (NR - 1) + 0.5) + 1; return a[i] }
        END { if (NR == 0) print "n/a"; else printf "%s / %s / %s / %s / %s", a[1], q(0.1), q(0.5), q(0.9), a[NR] }'
}
# Sets cc to the CPU seconds (user+sys, millisecond resolution) this shell's finished
# children have used: bash's `times`, second line. It must run in the script's own
# shell, not in a command substitution; it writes $work_dir/times.
children_cpu() {
    times >"$work_dir/times"
    cc=$(sed -n 2p "$work_dir/times" | awk '{ for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] } printf "%.3f\n", t }')
}
