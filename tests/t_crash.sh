# Crash safety: a target that segfaults, one that aborts, one killed with SIGKILL in
# the middle of its run. Each trace must be readable and hold the last free the
# target announced before dying.
source tests/lib.sh

# has_free TRACE ADDR: the trace holds a free of ADDR on the main thread
has_free() {
    "$RACE" dump --json "$1" 2>/dev/null | ruby -rjson -e '
        want = ARGV[0].to_i(16)
        found = STDIN.each_line.any? { |l| e = JSON.parse(l); e["kind"] == "free" && e["addr"].to_i(16) == want }
        exit(found ? 0 : 1)' "$2"
}

for mode in segv abort; do
    d=$T/$mode; mkdir -p "$d"
    env LD_PRELOAD="$SHIM" RACE_DIR="$d" "$BIN/crash_target" $mode > "$d/out" 2>/dev/null
    rc=$?
    want=$([ $mode = segv ] && echo 139 || echo 134)
    eq "$mode: the target dies by its signal" "$rc" "$want"
    f=$(one_trace "$d")
    check "$mode: trace exists" test -s "$f"
    "$RACE" stats "$f" > "$d/stats" 2>&1
    eq "$mode: race stats reads it" "$?" 0
    check "$mode: stats says the process did not exit cleanly" grep -qi 'not closed\|did not exit\|crashed\|no exit' "$d/stats"
    last=$(awk '/^last/ {print $2}' "$d/out")
    check "$mode: the last free before the crash ($last) is in the trace" has_free "$f" "$last"
done

d=$T/kill; mkdir -p "$d"
env LD_PRELOAD="$SHIM" RACE_DIR="$d" RACE_RING_MB=1 "$BIN/crash_target" kill > "$d/out" 2>/dev/null &
pid=$!
for _ in $(seq 50); do [ "$(grep -c freed "$d/out" 2>/dev/null)" -ge 300 ] && break; sleep 0.1; done
kill -STOP $pid   # freeze it so the announced line and the trace agree
last=$(grep freed "$d/out" | tail -1 | awk '{print $3}')
kill -KILL $pid; wait $pid 2>/dev/null
f=$(one_trace "$d")
"$RACE" stats "$f" > "$d/stats" 2>&1
eq "kill: race stats reads the trace of a SIGKILLed process" "$?" 0
check "kill: the ring overwrote old events (1 MiB ring)" grep -qE '[1-9][0-9]* overwritten' "$d/stats"
check "kill: the last announced free ($last) survived" has_free "$f" "$last"
finish
