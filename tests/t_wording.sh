# One wording (common/race_words.h): the report the shim writes on stderr at the fault
# and the one `race report` prints from the trace say the same lines for the same
# finding. Only the frames differ (raw module+offset against symbolized), and the
# times may differ in the last digit (the shim converts ticks with its own calibration,
# the analyzer with the trace's): frame lines, the SUMMARY line's frame and the values
# of times are normalized; everything else must match line for line.
source tests/lib.sh

# norm FILE: from the first headline to the first SUMMARY line, normalized
norm() {
    awk '/^==[0-9]+==ERROR: race: / { on = 1 } on { print } on && /^SUMMARY: race: / { exit }' "$1" |
        grep -v '^    #[0-9]' |
        sed -e 's/[0-9][0-9]*\.[0-9][0-9][0-9] ms/T ms/g' -e 's/^\(SUMMARY: race: [a-z-]*\) in .*/\1 in FRAME/'
}
# compare NAME ENV... -- ARGS...: the target under the shim, then both reports
compare() {
    local name=$1 d=$T/$1; shift
    mkdir -p "$d/tr"
    env LD_PRELOAD="$SHIM" RACE_DIR="$d/tr" RACE_ON_FINDING=continue RACE_WATCH=none "$@" \
        > "$d/out" 2> "$d/err"
    "$RACE" report "$d"/tr/race.*.trace > "$d/report" 2> /dev/null
    norm "$d/err" > "$d/err.n"
    norm "$d/report" > "$d/report.n"
    check "$name: the stderr report has a headline and a summary" \
        test "$(grep -c '^==[0-9]*==ERROR: race: \|^SUMMARY: race: ' "$d/err.n")" = 2
    check "$name: raw frames on stderr" grep -q '^    #0 0x[0-9a-f]* (.*+0x[0-9a-f]*)$' "$d/err"
    check "$name: symbolized frames in race report" grep -q '^    #0 0x[0-9a-f]* in ' "$d/report"
    if cmp -s "$d/err.n" "$d/report.n"; then
        ok "$name: same lines on stderr and in race report"
    else
        not_ok "$name: same lines on stderr and in race report" "they differ"
        diff "$d/err.n" "$d/report.n" | sed 's/^/# /'
    fi
}

compare use-after-free RACE_GUARD_SITES=make_victim "$BIN/uaf_threads" read
compare double-free RACE_GUARD_SITES=make_victim "$BIN/uaf_threads" double
compare invalid-free RACE_GUARD_SITES=make_victim "$BIN/uaf_threads" invalid
compare overflow RACE_GUARD_SITES=make_victim "$BIN/uaf_threads" overflow
compare overflow-at-free RACE_GUARD_SITES=make_victim "$BIN/uaf_threads" slack
# a stale call-info: the watched function's sentence (tests/t_watch.sh's program)
gcc -std=gnu11 -g -O2 -pthread -o "$T/ci_prog" tests/debuginfo/ci_table.c tests/watch/ci_stale.c
compare stale-call-info RACE_WATCH=rb_vm_ci_lookup RACE_QUARANTINE_MB=1 RACE_GUARD_SAMPLE=0 "$T/ci_prog"
# the headline names the process in both
pid=$(sed -n 's/^==\([0-9]*\)==ERROR: race: .*/\1/p' "$T/use-after-free/err" | head -1)
check "the PID in the headline is the traced process's ($pid)" \
    grep -q "^  process    pid $pid, " "$T/use-after-free/report"

finish
