#!/usr/bin/env bash
# t_trim.sh - the trace's disk space: reserved as it is used and given back at a clean
# exit (a short clean process's trace is small on disk though the file is 25 MB long),
# a crashed process's trace still holds its events, and a full disk (a 3 MiB tmpfs made
# here) costs overwritten or dropped events and one message, never a SIGBUS.
. tests/lib.sh

mkdir -p "$T/clean"
env LD_PRELOAD="$SHIM" RACE_DIR="$T/clean" "$BIN/alloc_stress" 1 1000 > /dev/null 2>&1
f=$(one_trace "$T/clean")
kib=$(du -k "$f" | cut -f1)
check "a short clean process: its trace is under 1 MiB on disk ($kib KiB)" test "$kib" -lt 1024
check "though the file keeps its full size (the layout is unchanged)" test "$(stat -c %s "$f")" -gt 16000000
"$RACE" stats "$f" > "$T/clean.stats" 2>&1
eq "and race stats reads it" "$?" 0

mkdir -p "$T/crash"
env LD_PRELOAD="$SHIM" RACE_DIR="$T/crash" "$BIN/crash_target" segv > /dev/null 2>&1
f=$(one_trace "$T/crash")
valid=$("$RACE" stats --json "$f" 2> /dev/null | ruby -rjson -e 'puts JSON.parse(STDIN.read)["traces"][0]["records"]["valid"]')
ge "a crashed process's trace holds its events" "${valid:-0}" 1000

if mkdir -p "$T/full" && mount -t tmpfs -o size=3m race-test "$T/full" 2> /dev/null; then
    env LD_PRELOAD="$SHIM" RACE_DIR="$T/full" "$BIN/alloc_stress" > /dev/null 2> "$T/full.err"
    rc=$?
    f=$(one_trace "$T/full")
    cp "$f" "$T/full.trace" 2> /dev/null
    umount "$T/full"
    eq "a full disk: the program runs to its end (status 0, no SIGBUS)" "$rc" 0
    check "one message says so" grep -q '^race: cannot reserve more space for .*: No space left on device; recording goes on' "$T/full.err"
    eq "only once" "$(grep -c '^race: ' "$T/full.err")" 1
    "$RACE" stats --json "$T/full.trace" > "$T/full.json" 2> /dev/null
    eq "its trace is readable" "$?" 0
    lost=$(ruby -rjson -e 't = JSON.parse(STDIN.read)["traces"][0]; puts t["overwritten"].to_i + t["dropped"].to_i' < "$T/full.json")
    ge "events that did not fit are counted (overwritten or dropped)" "${lost:-0}" 1
else
    ok "a full disk: # SKIP cannot mount a tmpfs here"
fi
finish
