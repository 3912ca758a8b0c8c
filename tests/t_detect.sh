# The detector: known-bug programs must be reported with the right threads, blocks and
# stacks, every run; clean programs must produce no report at all.
source tests/lib.sh
U=$BIN/uaf_threads

run_bug() { # run_bug MODE ON_FINDING: stdout to $T/out, stderr to $T/err, status in $rc
    rm -rf "$T/tr"; mkdir -p "$T/tr"
    # in a subshell whose stderr is dropped: the shell's own "Aborted" notices stay out
    rc=$( (env LD_PRELOAD="$SHIM" RACE_DIR="$T/tr" RACE_GUARD_SITES=make_victim RACE_ON_FINDING=$2 \
        "$U" "$1" > "$T/out" 2> "$T/err"; echo $?) 2>/dev/null)
}
tid() { awk -v r="$1" '$1 == r && $2 == "tid" {print $3}' "$T/out"; }
nreports() { grep -c '==ERROR: race:' "$T/err"; }

# use after free, read and write, across threads: found every time
for mode in read write; do
    access=$([ $mode = read ] && echo READ || echo WRITE)
    found=0 exact=0
    for i in $(seq 20); do
        run_bug $mode abort
        [ "$rc" = 134 ] && grep -q "==ERROR: race: heap-use-after-free on address" "$T/err" && found=$((found + 1))
        if grep -q "^$access of size 8 at 0x[0-9a-f]* by thread $(tid use) at [0-9.]* ms:" "$T/err" &&
           grep -q "is located 8 bytes inside of 48-byte region" "$T/err" &&
           grep -q "^freed by thread $(tid free) via free at [0-9.]* ms ([0-9.]* ms before):" "$T/err" &&
           grep -q "^previously allocated by thread $(tid alloc) at [0-9.]* ms:" "$T/err"; then
            exact=$((exact + 1))
        fi
    done
    eq "use-after-free $mode across threads: found in 20 of 20 runs, aborting" "$found" 20
    eq "use-after-free $mode: access, block, freeing and allocating threads right in 20 of 20" "$exact" 20
done

run_bug read continue
eq "RACE_ON_FINDING=continue: the program runs to completion" "$(tail -1 "$T/out")" done
eq "RACE_ON_FINDING=continue: exit status unchanged" "$rc" 0
eq "RACE_ON_FINDING=continue: one report for the slot" "$(nreports)" 1
check "RACE_ON_FINDING=continue: says it goes on" grep -q "RACE_ON_FINDING=continue: going on" "$T/err"

run_bug double continue
eq "double free: one report" "$(nreports)" 1
check "double free: named, with the second free's thread" grep -q "^attempting double-free on 0x[0-9a-f]* by thread $(tid free) at [0-9.]* ms:" "$T/err"
check "double free: shows the first free" grep -q "^freed by thread $(tid free) via free" "$T/err"
eq "double free: the program goes on" "$(tail -1 "$T/out")" done
# Two threads free the block at once: the loser may find the winner still inside its
# free, recording itself; the report must still name the first free (20 runs; 2 in 20
# lacked it before the loser waited).
named=0
for i in $(seq 20); do
    env LD_PRELOAD="$SHIM" RACE_DIR="$T" RACE_GUARD_SITES=make_victim RACE_ON_FINDING=continue \
        "$BIN/uaf_threads" together > /dev/null 2> "$T/tog.err"
    grep -q '^attempting double-free' "$T/tog.err" && grep -q '^freed by thread [0-9]* via free' "$T/tog.err" &&
        named=$((named + 1))
    rm -f "$T"/race.*.trace
done
eq "two frees at once: the double free names the first free (of 20 runs)" "$named" 20

run_bug invalid continue
eq "invalid free: one report" "$(nreports)" 1
check "invalid free: 8 bytes into the block" grep -q "is located 8 bytes inside of 48-byte region" "$T/err"

run_bug overflow continue
eq "1-byte overflow of a 32-byte guarded block: one report" "$(nreports)" 1
check "overflow: WRITE of size 1 just after the block" \
    bash -c "grep -q '^WRITE of size 1 at' '$T/err' && grep -q 'is located 0 bytes after 32-byte region' '$T/err'"

run_bug slack continue
eq "1-byte overflow into the alignment slack (33 bytes): one report, at free" "$(nreports)" 1
check "slack overflow: named" grep -q "heap-buffer-overflow-at-free" "$T/err"

# race report: the same bug five times is one group; symbolized stacks name the functions
run_bug loop continue
eq "loop: five reports on stderr (a new slot each time)" "$(nreports)" 5
tr=$(one_trace "$T/tr")
"$RACE" report "$tr" > "$T/report"; rrc=$?
eq "race report: exit 1 when there are findings" "$rrc" 1
eq "race report: five findings in one group" "$(tail -1 "$T/report")" "5 findings in 1 group"
check "race report: the group's count is shown" grep -q "was seen 5 times" "$T/report"
check "race report: use stack symbolized (use_victim in uaf_threads.c)" grep -q "^    #0 0x[0-9a-f]* in use_victim .*tests/uaf_threads.c:[0-9]*$" "$T/report"
check "race report: free stack symbolized (free_victim)" grep -q "in free_victim .*tests/uaf_threads.c" "$T/report"
check "race report: alloc stack symbolized (make_victim)" grep -q "in make_victim .*tests/uaf_threads.c" "$T/report"
"$RACE" report --json "$tr" > "$T/report.json"
eq "race report --json: one object per finding, with the group's count" \
    "$(ruby -rjson -e 'j = JSON.parse(STDIN.read); puts [j["nfindings"], j["ngroups"], j["findings"].map { |f| f["group_count"] }.uniq].inspect' < "$T/report.json")" \
    "[5, 1, [5]]"

run_bug clean abort
eq "clean run of the same threads: no report" "$(nreports)" 0
eq "clean run: exit 0" "$rc" 0
"$RACE" report "$(one_trace "$T/tr")" > /dev/null
eq "clean run: race report exits 0" "$?" 0

# RACE_GUARD_SITES: the named site's allocations are guarded every time
out=$(env LD_PRELOAD="$SHIM" RACE_DIR="$T" RACE_GUARD_SITES=site_alloc "$BIN/sites_target" 2000 2>/dev/null)
site=$(echo "$out" | sed -n 's/^site \([0-9]*\)\/.*/\1/p'); other=$(echo "$out" | sed -n 's/.*other \([0-9]*\)\/.*/\1/p')
eq "RACE_GUARD_SITES=site_alloc: 2000 of 2000 site allocations guarded" "$site" 2000
check "RACE_GUARD_SITES: other allocations only at the sampling rate ($other of 2000)" test "$other" -le 20

# Quarantine: the index answers for freed blocks, and a write into one is reported
out=$(env LD_PRELOAD="$SHIM" RACE_DIR="$T" RACE_QUARANTINE_MB=1 RACE_ON_FINDING=continue \
      RACE_GUARD_SAMPLE=0 "$BIN/quarantine_target" waf 2> "$T/err")
eq "quarantine: a freed block, its interior and a big block's interior read as freed; live and stack memory not" \
    "$(echo "$out" | head -6 | tr '\n' ' ')" "dead start 1 dead interior 1 big interior 1 live 0 stack 0 poisoned 1 "
eq "quarantine: the block left it after the churn" "$(echo "$out" | tail -1)" "dead after churn 0"
eq "quarantine: one write-after-free report" "$(grep -c '==ERROR: race: write-after-free' "$T/err")" 1
check "write-after-free: 5 bytes into the 104-byte block" grep -q "is located 5 bytes inside of 104-byte region" "$T/err"

# Clean multi-threaded stress under heavy guarding and a quarantine: nothing found, nothing corrupted
out=$(env LD_PRELOAD="$SHIM" RACE_DIR="$T" RACE_GUARD_SAMPLE=20 RACE_QUARANTINE_MB=8 RACE_ON_FINDING=continue \
      "$BIN/alloc_stress" 4 100000 2> "$T/err")
eq "allocation stress, 4 threads, 1 in 20 guarded, 8 MiB quarantine: intact" "$out" "ok 4"
eq "allocation stress: no report" "$(grep -c '==ERROR: race:' "$T/err")" 0
finish
