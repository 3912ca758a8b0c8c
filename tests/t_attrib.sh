# Crash attribution (analyze/crash.c, docs/crash.md): a crash record is explained by the
# recorded free of the block the faulting operand, the fault address or a register points
# into, and reported as crash-after-free; a crash nothing explains is shown and not
# counted. Synthetic traces (mktrace) first, then real crashes under the shim, unguarded
# (RACE_GUARD_SAMPLE=0, no quarantine): a C target's three crashes, a C extension's
# across Ractors on Debian's ruby 3.1, and mysql2's close/ping with default settings.
source tests/lib.sh

# json_get FILE RUBY-EXPR: evaluates EXPR with d = the parsed JSON document
json_get() { ruby -rjson -e "d = JSON.parse(File.read(ARGV[0])); puts($2)" "$1" 2>/dev/null; }

# ---- synthetic: mktrace --crashes writes a fault whose operand (rbx + 0x10) lies 24
# bytes inside the block thread 1002 freed last, r12 pointing into thread 1003's last
"$BIN/mktrace" --crashes "$T/syn.trace" > "$T/syn.counts"
blk=$(awk '$1 == "crash_block" {print $2}' "$T/syn.counts")
size=$(awk '$1 == "crash_block" {print $3}' "$T/syn.counts")
"$RACE" report "$T/syn.trace" > "$T/syn.txt" 2>&1
eq "synthetic: race report exits 1 (a crash-after-free is a finding)" "$?" 1
check "synthetic: the ERROR line" grep -q "^==[0-9]*==ERROR: race: crash-after-free: SIGSEGV on address 0x0 at pc 0x" "$T/syn.txt"
check "synthetic: the instruction decoded from the file" grep -q "^faulting instruction: mov 0x10(%rbx), %rax (READ of size 8 at " "$T/syn.txt"
check "synthetic: the operand's address, 24 bytes into the block" \
    grep -q "^the faulting operand's address: 0x[0-9a-f]* is located 24 bytes inside of $size-byte region \[$blk," "$T/syn.txt"
check "synthetic: freed by thread 1002" grep -q "^freed by thread 1002 via " "$T/syn.txt"
check "synthetic: the weaker match through r12 is listed below" grep -q "^    register r12: .* freed by thread 1003 " "$T/syn.txt"
check "synthetic: the poisoned register is named" grep -q "read from freed memory the quarantine poisoned" "$T/syn.txt"
check "synthetic: the linked SIGABRT under it" grep -q "^then SIGABRT " "$T/syn.txt"
check "synthetic: what is not known is said" grep -q "^the block may have been reallocated since (the recorder records frees, not allocations" "$T/syn.txt"
"$RACE" report --json "$T/syn.trace" > "$T/syn.json" 2>/dev/null
eq "synthetic JSON: one crash-after-free, via the operand, freed by 1002" \
    "$(json_get "$T/syn.json" '[d["ncrash_after_free"], d["crashes"][0]["matches"][0]["via"], d["crashes"][0]["matches"][0]["free"]["tid"]].join(" ")')" \
    "1 operand 1002"
"$BIN/mktrace" --crash-wild "$T/wild.trace" > /dev/null
"$RACE" report "$T/wild.trace" > "$T/wild.txt" 2>&1
eq "synthetic wild crash: race report exits 0 (not a finding)" "$?" 0
check "synthetic wild crash: shown, explained by nothing" grep -q "^no recorded free explains it" "$T/wild.txt"
check "synthetic wild crash: a crash line, no crash-after-free" \
    bash -c "grep -q '^==[0-9]*== race: crash, no recorded free explains it: SIGSEGV' '$T/wild.txt' && ! grep -q 'ERROR: race: crash-after-free' '$T/wild.txt'"

# ---- real crashes: tests/crash_attrib MODE under the shim, unguarded
# crash NAME MODE: $T/NAME/{out,err,tr/}, exit status in rc, report in $T/NAME/report(.json)
crash() {
    mkdir -p "$T/$1/tr"
    rc=$( (timeout -k 2 30 env LD_PRELOAD="$SHIM" RACE_DIR="$T/$1/tr" RACE_GUARD_SAMPLE=0 \
        RACE_QUARANTINE_MB=0 RACE_STACK_SAMPLE=1 "$BIN/crash_attrib" "$2" > "$T/$1/out" 2> "$T/$1/err"; echo $?) 2>/dev/null)
    "$RACE" report "$T/$1"/tr/race.*.trace > "$T/$1/report" 2>&1
    report_rc=$?
    "$RACE" report --json "$T/$1"/tr/race.*.trace > "$T/$1/report.json" 2>/dev/null
}
field() { awk -v k="$2" '{for (i = 1; i < NF; i++) if ($i == k) print $(i + 1)}' "$T/$1/out" | head -1; }

# (a) a pointer read from a block another thread freed (unmapped: 256 KiB)
crash uaf uaf
eq "uaf: the program dies of SIGSEGV" "$rc" 139
eq "uaf: race report exits 1" "$report_rc" 1
blk=$(field uaf block) freer=$(field uaf freer) user=$(field uaf user)
addr=$(printf '0x%x' $((blk + 8)))
check "uaf: crash-after-free on the address read ($addr)" grep -q "^==[0-9]*==ERROR: race: crash-after-free: SIGSEGV on address $addr at pc" "$T/uaf/report"
check "uaf: the crash is the user thread's ($user)" grep -q "^SIGSEGV (address not mapped) in thread $user at " "$T/uaf/report"
check "uaf: 8 bytes inside the freed block" grep -q "is located 8 bytes inside of [0-9]*-byte region \[$blk," "$T/uaf/report"
check "uaf: freed by the freeing thread ($freer) via free" grep -q "^freed by thread $freer via free at " "$T/uaf/report"
check "uaf: the free stack names first_free" grep -A3 "^freed by thread" "$T/uaf/report" | grep -q " in first_free "
check "uaf: the crash stack names use_block" grep -q "#0 0x[0-9a-f]* in use_block " "$T/uaf/report"
check "uaf: the summary names use_block" grep -q "^SUMMARY: race: crash-after-free in use_block" "$T/uaf/report"

# race run: a crash-after-free is a finding (66); a crash nothing explains keeps the
# command's own status (139)
"$RACE" run --dir "$T/run-uaf" --guard-sample=0 -- "$BIN/crash_attrib" uaf > /dev/null 2>&1
eq "race run: exits 66 for a crash-after-free" "$?" 66
"$RACE" run --dir "$T/run-wild" --guard-sample=0 -- "$BIN/crash_attrib" wild > /dev/null 2>&1
eq "race run: keeps the command's status (139) for a crash nothing explains" "$?" 139

# (b) glibc's abort on a double free of an unguarded block
crash double double
eq "double: glibc aborts" "$rc" 134
check "double: glibc said why" grep -q "double free detected" "$T/double/err"
eq "double: race report exits 1" "$report_rc" 1
blk=$(field double block) freer=$(field double freer)
check "double: crash-after-free, SIGABRT" grep -q "^==[0-9]*==ERROR: race: crash-after-free: SIGABRT on address" "$T/double/report"
check "double: named a double free of the block" grep -q "^$blk was freed before: this is a double free of a [0-9]*-byte block" "$T/double/report"
check "double: attributed to the first free (first_free's stack)" \
    bash -c "grep -A3 '^freed by thread $freer via free' '$T/double/report' | grep -q ' in first_free '"
check "double: the second free's stack names second_free" \
    bash -c "grep -A3 '^freed again by thread $freer via free' '$T/double/report' | grep -q ' in second_free '"

# (c) a wild store, the frees of another thread long done: nothing explains it
crash wild wild
eq "wild: SIGSEGV" "$rc" 139
eq "wild: race report exits 0 (not a finding)" "$report_rc" 0
check "wild: the crash is shown" grep -q "^==[0-9]*== race: crash, no recorded free explains it: SIGSEGV on address 0x7ff0dead0000 at pc" "$T/wild/report"
check "wild: no recorded free explains it" grep -q "^no recorded free explains it" "$T/wild/report"
eq "wild: no false attribution (no match at all)" "$(json_get "$T/wild/report.json" 'd["crashes"].map { |c| c["matches"].size }.sum')" 0

# (d) a C extension on Debian's ruby 3.1: one Ractor frees a 300 000-byte block (glibc
# unmaps it), another reads it: SIGSEGV, Ruby's [BUG] report, abort
build_uafext
check "the uafext C extension builds against Debian's ruby" test -f "$T/ext/uafext.so"
# The freed range can be mapped again before the read (Ruby's own mmap): then no crash.
# Seen once in about 6 runs; up to 9 tries: 0.2^9 < 1e-6.
for try in 1 2 3 4 5 6 7 8 9; do
    rm -rf "$T/rb"; mkdir -p "$T/rb/tr"
    rc=$( (timeout -k 2 60 env LD_PRELOAD="$SHIM" RACE_DIR="$T/rb/tr" RACE_GUARD_SAMPLE=0 RACE_STACK_SAMPLE=1 \
        ruby -I"$T/ext" tests/ruby/crash_ractors.rb 300000 > "$T/rb/out" 2> "$T/rb/err"; echo $?) 2>/dev/null)
    [ "$rc" = 0 ] || break
done
echo "# ruby: crashed on try $try"
eq "ruby: Ruby aborts after its [BUG] report, as without the shim" "$rc" 134
freer=$(awk '/^freer/ {print $2}' "$T/rb/out"); reader=$(awk '/^reader/ {print $2}' "$T/rb/out")
check "ruby: Ruby's own [BUG] report is printed" grep -q "\[BUG\] Segmentation fault at" "$T/rb/err"
"$RACE" report "$T/rb"/tr/race.*.trace > "$T/rb/report" 2>&1
eq "ruby: race report exits 1" "$?" 1
check "ruby: Ruby printed both Ractor ids ($freer, $reader)" test -n "$freer" -a -n "$reader" -a "$freer" != "$reader"
check "ruby: crash-after-free" grep -q "^==[0-9]*==ERROR: race: crash-after-free: SIGSEGV on address" "$T/rb/report"
check "ruby: the crash is the reading Ractor's ($reader)" grep -q "^SIGSEGV (address not mapped) in thread [0-9]* (Ractor $reader) at " "$T/rb/report"
check "ruby: freed by the freeing Ractor ($freer)" grep -q "^freed by thread [0-9]* (Ractor $freer) via free at " "$T/rb/report"
check "ruby: 16 bytes inside the block (race_victim_read reads p[2])" grep -q "is located 16 bytes inside of [0-9]*-byte region" "$T/rb/report"
check "ruby: Ruby's abort is linked, not a crash of its own" grep -q "^then SIGABRT " "$T/rb/report"

# (e) mysql2's close/ping race with default settings (nothing guarded on purpose): the
# seed's reproducer, 20 clients a process (tests/mysql2/close_race.rb ping 20). A process
# crashes about one time in two (bench/results-crash-attrib.md: 10 of 20), and almost
# every crash is explained by a block the closing thread freed (the 8 KiB net buffer
# mysql_close frees, in a register of the pinging thread that faults; or a double free
# of a buffer, mysql_close's first): 27 of 28 crashes with no flags over the bench's three runs. The one
# kind not explained: mysql_close itself freeing a garbage pointer it read from memory
# already freed (glibc's mangled tcache link, no address of any block): no recorded free
# contains it, so it is shown as a crash no free explains, never put on a wrong free.
# Attribution is checked on 9 explained crashes: processes run until 9 were explained
# (at most 60). A double free where both threads freed the block at once counts when
# the free glibc aborted in is the closing thread's (its stack is then the crash's). In
# the runs so far every explained crash counted so; allowing 1 in 46 not to (the one
# seen before that rule), the test asks that most of the 9 do: failing needs >= 5 of 9
# wrong: C(9,5) (1/46)^5 < 3e-7. And at least one explained crash: none in 60 processes, with the lowest rate
# seen in a batch (7 of 20), (1 - 0.35)^60 < 1e-11; fewer than 9 explained just
# checks the majority of those.
source tests/mysql2/server.sh
mysql2_test_server
procs=0 crashed=0 explained=0 attributed=0 stacked=0 with_close=0 bad=""
while [ $procs -lt 60 ] && { [ $procs -lt 10 ] || [ $explained -lt 9 ]; }; do
    procs=$((procs + 1))
    d=$T/my$procs
    mkdir -p "$d/tr"
    # in a subshell whose stderr is dropped: the shell's own "Aborted" notices stay out
    rc=$( (timeout -k 2 60 env LD_PRELOAD="$SHIM" RACE_DIR="$d/tr" "$MYSQL2_RUBY" tests/mysql2/close_race.rb \
        ping 20 > "$d/out" 2> "$d/err"; echo $?) 2>/dev/null)
    closer=$(awk '$1 == "close" && $2 == "tid" {print $3}' "$d/out")
    mapfile -t C < <("$RACE" report --json "$d"/tr/race.*.trace 2>/dev/null |
        "$MYSQL2_RUBY" tests/mysql2/crashes.rb "${closer:-0}" | awk '{print $2}')
    # C: crashes explained closer_free closer_prev close_stack no_stack
    [ "${C[0]:-0}" -gt 0 ] || continue
    crashed=$((crashed + 1))
    [ "${C[1]:-0}" -gt 0 ] || continue # shown as a crash no free explains (see above)
    explained=$((explained + 1))
    if [ "${C[2]:-0}" -ge 1 ]; then
        attributed=$((attributed + 1))
        with_close=$((with_close + ${C[4]:-0}))
        stacked=$((stacked + ${C[2]:-0} - ${C[5]:-0}))
    else
        bad="$bad $procs"
        "$RACE" report "$d"/tr/race.*.trace 2>&1 | sed -n '/^==[0-9]*==/,/^SUMMARY/p' | head -30 | sed 's/^/# report: /'
    fi
done
echo "# mysql2: $procs processes, $crashed crashed, $explained explained, $attributed attributed to the closing thread's free ($with_close of $stacked free stacks recorded name mysql_close)"
ge "mysql2: at least one of $procs processes crashed with a crash a recorded free explains" "$explained" 1
check "mysql2: most explained crashes are put on a block the closing thread freed ($attributed of $explained; others: processes${bad:- none})" \
    test $((attributed * 2)) -gt "$explained"
eq "mysql2: every recorded free stack of it names mysql_close" "$with_close" "$stacked"

finish
