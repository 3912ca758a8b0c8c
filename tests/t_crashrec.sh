# Crash records (shim/crash.c): every fatal signal that is not the shim's own leaves one
# record in the trace (signal, si_code, address, registers, the stack from the signal
# context, thread, Ractor, time, seq), and the program sees its signals exactly as
# before: same exit status, same output, its own handlers still run. Then what the
# reader, `race dump --json`, `race stats` and `race report --last` make of them.
source tests/lib.sh
K=$BIN/crash_kinds

# crashes TRACE: one line per crash record, from `race dump --json --stacks`:
#   SIGNAL CODE first=N|- addr=0x.. pc=ok|bad tid=N ractor=N seq=ok|bad frames=f0,f1,...
# pc=ok: rip == pc == the stack's frame 0. seq=ok: the record's seq is the highest seq of
# that thread's events in the trace (the crash comes after its last recorded event) and
# its time is not before that event's.
crashes() {
    "$RACE" dump --json --stacks "$1" 2>/dev/null | ruby -rjson -e '
        evs = STDIN.each_line.map { |l| JSON.parse(l) }
        evs.select { |e| e["kind"] == "crash" }.each do |c|
          mine = evs.select { |e| e["kind"] != "crash" && e["tid"] == c["tid"] }
          last = mine.max_by { |e| e["seq"] }
          seq_ok = last.nil? ? c["seq"] == 0 : (c["seq"] == last["seq"] && c["time_us"] >= last["time_us"])
          pc_ok = c["has_regs"] && c["regs"]["rip"] == c["pc"] && c["stack"].size > 0 && c["stack"][0]["pc"] == c["pc"]
          fr = c["stack"].map { |f| f["function"] || "?" }.first(12).join(",")
          puts [c["signal"], c["code_name"], "first=#{c["first"] || "-"}", "addr=#{c["addr"]}",
                "pc=#{pc_ok ? "ok" : "bad"}", "tid=#{c["tid"]}", "ractor=#{c["ractor"]}",
                "seq=#{seq_ok ? "ok" : "bad"}", "frames=#{fr}"].join(" ")
        end'
}
# field LINE NAME: the value of NAME=... in a crashes line
field() { printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
# run_mode MODE [ENV...]: the target without and with the shim; $d/plain.*, $d/shim.*,
# $rc (with the shim), $rc0 (without), $f (the trace), $c (its crashes lines)
run_mode() {
    local mode=$1; shift
    d=$T/$mode; mkdir -p "$d"
    (cd "$d" && exec "$K" "$mode") > "$d/plain.out" 2> "$d/plain.err"
    rc0=$?
    timeout 60 env "$@" LD_PRELOAD="$SHIM" RACE_DIR="$d" "$K" "$mode" > "$d/shim.out" 2> "$d/shim.err"
    rc=$?
    f=$(one_trace "$d")
    c=$(crashes "$f")
}
# same_run MODE: exit status and stdout as without the shim (addresses masked)
same_run() {
    eq "$1: exit status as without the shim" "$rc" "$rc0"
    eq "$1: stdout as without the shim" "$(sed 's/0x[0-9a-f]*/ADDR/g' "$d/shim.out")" \
        "$(sed 's/0x[0-9a-f]*/ADDR/g' "$d/plain.out")"
}
# one_crash MODE SIGNAL CODE: exactly one record, the crash, with that signal and code
one_crash() {
    eq "$1: one crash record" "$(printf '%s\n' "$c" | grep -c .)" 1
    eq "$1: $2/$3, first of its process" "$(printf '%s\n' "$c" | cut -d' ' -f1-3)" "$2 $3 first=-"
    eq "$1: rip == pc == frame 0 of the stack from the signal context" "$(field "$c" pc)" ok
    eq "$1: seq and time follow the thread's last event" "$(field "$c" seq)" ok
}

wild=0xdead0beef8

# Faults: the fault address, the pc, and the function that faulted as frame 0.
run_mode segv RACE_GUARD_SAMPLE=0
same_run segv
one_crash segv SIGSEGV SEGV_MAPERR
eq "segv: addr is the wild address" "$(field "$c" addr)" "$wild"
eq "segv: frames 0-1 are load, main" "$(field "$c" frames | cut -d, -f1-2)" "load,main"
eq "segv: the crash is on the main thread" "$(field "$c" tid)" "$(basename "$f" .trace | sed 's/.*\.//')"

run_mode gp
same_run gp
one_crash gp SIGSEGV SI_KERNEL
eq "gp: a non-canonical address has no si_addr" "$(field "$c" addr)" 0x0
eq "gp: a register holds the poison pattern the load used" \
    "$("$RACE" dump --json "$f" | ruby -rjson -e 'STDIN.each_line { |l| e = JSON.parse(l); puts e["regs"].values.include?("0xfdfdfdfdfdfdfdfd") if e["kind"] == "crash" }')" true

run_mode null
same_run null
one_crash null SIGSEGV SEGV_MAPERR
eq "null: addr 0" "$(field "$c" addr)" 0x0

run_mode bus
same_run bus
one_crash bus SIGBUS BUS_ADRERR
eq "bus: addr is the mapping past the file's end" "$(field "$c" addr)" "$(awk '/^bus/ {print $2}' "$d/shim.out")"

for m in ill:SIGILL:ILL_ILLOPN fpe:SIGFPE:FPE_INTDIV; do
    mode=${m%%:*}; rest=${m#*:}
    run_mode "$mode"
    same_run "$mode"
    one_crash "$mode" "${rest%%:*}" "${rest#*:}"
    eq "$mode: si_addr is the faulting instruction (the pc)" "$(field "$c" addr)" \
        "$("$RACE" dump --json "$f" | ruby -rjson -e 'STDIN.each_line { |l| e = JSON.parse(l); puts e["pc"] if e["kind"] == "crash" }')"
    eq "$mode: frame 1 is main" "$(field "$c" frames | cut -d, -f1)" main
done

# Aborts: raised by the process itself (SI_TKILL), so no fault address.
run_mode abort
same_run abort
one_crash abort SIGABRT SI_TKILL
check "abort: the stack runs through abort() to main" \
    sh -c "printf '%s\n' '$(field "$c" frames)' | grep -q 'abort,main'"
run_mode double-free RACE_GUARD_SAMPLE=0
same_run double-free
check "double-free: glibc's message, as without the shim" grep -q 'double free' "$d/shim.err"
one_crash double-free SIGABRT SI_TKILL
check "double-free: the stack runs through glibc's check and the shim's free to main" \
    sh -c "printf '%s\n' '$(field "$c" frames)' | grep -q 'malloc_printerr.*,free,main,'"

# glibc aborts from inside free() with the arena lock held (a second thread exists): the
# crash record needs no malloc, so the process still dies of SIGABRT instead of hanging.
run_mode double-free-big RACE_GUARD_SAMPLE=0
same_run double-free-big
one_crash double-free-big SIGABRT SI_TKILL
check "double-free-big: glibc's message, as without the shim" grep -q 'double free or corruption' "$d/shim.err"

# A fault with the stack pointer in unreadable memory: the record is still written.
run_mode smashed
same_run smashed
one_crash smashed SIGSEGV SEGV_ACCERR
eq "smashed: addr is the stack pointer's page" "$(field "$c" addr)" "$(awk '/^stack/ {print $2}' "$d/shim.out")"

# The program's own SIGSEGV handler prints and aborts: the abort links to the crash.
run_mode handler-abort
same_run handler-abort
check "handler-abort: the program's handler ran" grep -q 'handler: caught SIGSEGV' "$d/shim.out"
eq "handler-abort: the crash, then the abort raised while handling it" \
    "$(printf '%s\n' "$c" | cut -d' ' -f1-4)" "SIGSEGV SEGV_MAPERR first=- addr=$wild
SIGABRT SI_TKILL first=0 addr=0x0"
check "handler-abort: the abort's stack runs through the program's handler" \
    sh -c "printf '%s\n' '$(printf '%s\n' "$c" | sed -n 2p)' | grep -q 'abort,on_segv_abort'"

# A handler that recovers with siglongjmp: each fault is recorded, the program goes on.
run_mode longjmp
same_run longjmp
eq "longjmp: two faults recovered, each a crash of its own" \
    "$(printf '%s\n' "$c" | cut -d' ' -f1-3)" "SIGSEGV SEGV_MAPERR first=-
SIGSEGV SEGV_MAPERR first=-"
check "longjmp: the program went on to the end" grep -q '^done' "$d/shim.out"
"$RACE" stats "$f" > "$d/stats" 2>&1
eq "longjmp: race stats reads the trace" "$?" 0
check "longjmp: race stats counts the crash records" grep -q '^  crashes *2 (2 crashes, 0 raised while one was handled)' "$d/stats"

run_mode thread
same_run thread
one_crash thread SIGSEGV SEGV_MAPERR
check "thread: the crash is on the second thread" test "$(field "$c" tid)" != "$(basename "$f" .trace | sed 's/.*\.//')"

# SIGABRT sent by another process: what killed the process, recorded, marked sent.
d=$T/kill-abrt; mkdir -p "$d"
env LD_PRELOAD="$SHIM" RACE_DIR="$d" sleep 30 &
pid=$!
# the signal must reach the shim: wait until SIGABRT (bit 5 of SigCgt) is caught
for _ in $(seq 200); do
    m=$(awk '/^SigCgt/ {print $2}' "/proc/$pid/status" 2>/dev/null)
    [ -n "$m" ] && [ $(( (16#$m >> 5) & 1 )) = 1 ] && break
    sleep 0.05
done
kill -ABRT "$pid"
wait "$pid"
eq "kill -ABRT: dies of SIGABRT as without the shim" "$?" 134
c=$(crashes "$(one_trace "$d")")
eq "kill -ABRT: recorded as a sent SIGABRT (SI_USER), no address" "$(printf '%s\n' "$c" | cut -d' ' -f1-4)" "SIGABRT SI_USER first=- addr=0x0"

# The shim's own faults are not crashes: a finding that aborts, a finding that goes on.
d=$T/finding; mkdir -p "$d"
env LD_PRELOAD="$SHIM" RACE_DIR="$d" RACE_GUARD_SITES=make_victim "$BIN/uaf_threads" read > /dev/null 2> "$d/err"
eq "finding (abort): the process aborts as before" "$?" 134
f=$(one_trace "$d")
eq "finding (abort): no crash record (the finding explains the death)" "$(crashes "$f")" ""
check "finding (abort): the finding is recorded" grep -q 'heap-use-after-free' "$d/err"
rm -f "$d"/*.trace
env LD_PRELOAD="$SHIM" RACE_DIR="$d" RACE_GUARD_SITES=make_victim RACE_ON_FINDING=continue "$BIN/uaf_threads" read > /dev/null 2>&1
eq "finding (continue): exits 0" "$?" 0
f=$(one_trace "$d")
eq "finding (continue): no crash record" "$(crashes "$f")" ""
"$RACE" stats --json "$f" > "$d/stats.json"
eq "finding (continue): race stats --json: crashes count 0" \
    "$(ruby -rjson -e 'puts JSON.parse(STDIN.read)["traces"][0]["crashes"].values_at("count", "first", "incomplete", "dropped").join(" ")' < "$d/stats.json")" "0 0 0 0"

# Ruby: a signal sent from outside, and a real fault in a C extension (Fiddle). Ruby's
# [BUG] report and exit status are the same with and without the shim (the C-level
# backtrace, which lists the shim's own handler frames, and addresses aside).
bug_text() { sed -n '/^-- C level backtrace/q; p' "$1" | grep -v '^race:' | sed 's/0x[0-9a-f]*/ADDR/g; s/E:[0-9a-f]*/E:X/g'; }
ruby_run() {
    d=$T/$1; mkdir -p "$d"; shift
    "$rb" "$@" > "$d/plain.out" 2> "$d/plain.err"
    rc0=$?
    env LD_PRELOAD="$SHIM" RACE_DIR="$d" "$rb" "$@" > "$d/shim.out" 2> "$d/shim.err"
    rc=$?
    f=$(one_trace "$d")
    c=$(crashes "$f")
}
rb=ruby
ruby_run rb-kill -e 'Process.kill(:SEGV, $$)'
eq "ruby kill SEGV: exit status as without the shim" "$rc" "$rc0"
check "ruby kill SEGV: [BUG] report as without the shim" cmp -s <(bug_text "$d/plain.err") <(bug_text "$d/shim.err")
eq "ruby kill SEGV: a sent SIGSEGV, then Ruby's abort linked to it" \
    "$(printf '%s\n' "$c" | cut -d' ' -f1-4)" "SIGSEGV SI_USER first=- addr=0x0
SIGABRT SI_TKILL first=0 addr=0x0"
eq "ruby kill SEGV: the main Ractor's id (1)" "$(printf '%s\n' "$c" | head -1 | tr ' ' '\n' | sed -n 's/^ractor=//p')" 1
check "ruby kill SEGV: sent: true in race dump --json" sh -c "'$RACE' dump --json '$f' | grep '\"kind\":\"crash\"' | head -1 | grep -q '\"sent\":true'"

ruby_run rb-fiddle -rfiddle -e 'Fiddle::Pointer.new(8)[0]'
eq "ruby fiddle: exit status as without the shim" "$rc" "$rc0"
check "ruby fiddle: [BUG] report as without the shim" cmp -s <(bug_text "$d/plain.err") <(bug_text "$d/shim.err")
check "ruby fiddle: [BUG] Segmentation fault at 0x...08" grep -q '\[BUG\] Segmentation fault at 0x0000000000000008' "$d/shim.err"
eq "ruby fiddle: the fault at 0x8, then Ruby's abort linked to it" \
    "$(printf '%s\n' "$c" | cut -d' ' -f1-4)" "SIGSEGV SEGV_MAPERR first=- addr=0x8
SIGABRT SI_TKILL first=0 addr=0x0"
c1=$(printf '%s\n' "$c" | head -1)
eq "ruby fiddle: rip == pc == frame 0" "$(field "$c1" pc)" ok
eq "ruby fiddle: the main Ractor's id (1)" "$(field "$c1" ractor)" 1
check "ruby fiddle: frame 0 is in fiddle.so" sh -c "'$RACE' dump --json --stacks '$f' | grep '\"kind\":\"crash\"' | head -1 | grep -q '\"stack\":\\[{[^}]*\"module\":\"fiddle.so\"'"

# Ruby 3.4.5 (scripts/build-ruby.sh, as t_ruby34.sh): its handler re-raises SIGSEGV to
# die of it, and that second signal links to the fault.
rb=$(scripts/build-ruby.sh 2>/dev/null)
if [ -x "$rb" ]; then
    ruby_run rb34-fiddle -rfiddle -e 'Fiddle::Pointer.new(8)[0]'
    eq "ruby 3.4.5 fiddle: exit status as without the shim" "$rc" "$rc0"
    check "ruby 3.4.5 fiddle: [BUG] report as without the shim" cmp -s <(bug_text "$d/plain.err") <(bug_text "$d/shim.err")
    eq "ruby 3.4.5 fiddle: the fault at 0x8 in rb_fiddle_ptr_aref, then Ruby's own SIGSEGV linked to it" \
        "$(printf '%s\n' "$c" | sed 's/ pc=.* frames=\([^,]*\).*/ \1/' | cut -d' ' -f1-5)" "SIGSEGV SEGV_MAPERR first=- addr=0x8 rb_fiddle_ptr_aref
SIGSEGV SI_TKILL first=0 addr=0x0 __pthread_kill_implementation"
    eq "ruby 3.4.5 fiddle: rip == pc == frame 0, main Ractor" "$(printf '%s\n' "$c" | head -1 | tr ' ' '\n' | grep -E '^(pc|ractor)=' | tr '\n' ' ')" "pc=ok ractor=1 "
else
    not_ok "ruby 3.4.5 build" "scripts/build-ruby.sh failed; see its log under ~/.cache/race"
fi

# race report --last MS: the window's events in time order, lanes, the crash line last.
# window_check NAME TRACE MS: every event of the dump in [crash - MS, crash] is shown,
# nothing else; times never go back. dump's time_us has 3 decimals: exact nanoseconds, as
# the window is computed; an event in the very nanosecond of a bound may fall either way
# (two record times can round to one nanosecond), so the count must lie between the
# events strictly inside and those with the bounds included.
window_check() {
    local name=$1 tr=$2 ms=$3 out=$T/last.$1
    "$RACE" report --last "$ms" "$tr" > "$out" 2> "$out.err"
    local st=$?
    check "$name: race report --last $ms exits 0 or 1" test "$st" -le 1
    local lines n range
    lines=$(grep -E '^ +[-+][0-9]+\.[0-9]{3} +[0-9]+/[0-9]+ +(free|alloc|enter|exit|hit) ' "$out")
    n=$(printf '%s' "$lines" | grep -c .)
    range=$("$RACE" dump --json "$tr" 2>/dev/null | ruby -rjson -e '
        evs = STDIN.each_line.map { |l| JSON.parse(l) }
        ns = ->(e) { (e["time_us"] * 1000).round }
        crash = evs.find { |e| e["kind"] == "crash" && e["first"].nil? }
        evs = evs.reject { |e| e["kind"] == "crash" }
        hi = crash ? ns.(crash) : evs.map(&ns).max
        lo = hi - (ARGV[0].to_f * 1e6).to_i
        puts "#{evs.count { |e| ns.(e) > lo && ns.(e) < hi }} #{evs.count { |e| ns.(e) >= lo && ns.(e) <= hi }}"' "$ms")
    check "$name: --last $ms shows every event of the window, nothing else ($n, want $range)" \
        test "$n" -ge "${range% *}" -a "$n" -le "${range#* }"
    eq "$name: in time order" "$(printf '%s\n' "$lines" | awk '{print $1}' | sort -g -c 2>&1 | head -1)" ""
}
window_check segv "$(one_trace "$T/segv")" 100000
check "segv: --last ends with the crash line at +0.000, then its stack from load" \
    sh -c "grep -A1 'CRASH' '$T/last.segv' | tr -s ' ' | grep -q '^ +0.000 [0-9]*/0 CRASH SIGSEGV/SEGV_MAPERR at $wild, pc 0x[0-9a-f]*\$' &&
           grep -A1 'CRASH' '$T/last.segv' | tail -1 | grep -q ' in load '"
window_check segv-short "$(one_trace "$T/segv")" 0.001
window_check thread "$(one_trace "$T/thread")" 100000
check "thread: lane 0 is the crashing thread, the main thread has a lane of its own" \
    sh -c "grep -q '^     lane 0: thread [0-9]*, [0-9]* events, the crashing thread' '$T/last.thread' &&
           grep -q '^     lane 1: thread $(basename "$(one_trace "$T/thread")" .trace | sed 's/.*\.//'), [1-9][0-9]* events' '$T/last.thread'"
window_check longjmp "$(one_trace "$T/longjmp")" 100000
window_check no-crash "$(one_trace "$T/finding")" 5
check "no crash: the window ends at the last event" grep -q '^== the last 5.000 ms before the last event (no crash recorded)' "$T/last.no-crash"
for bad in 0 -1 x 5ms ""; do
    "$RACE" report --last "$bad" "$(one_trace "$T/segv")" > /dev/null 2> "$T/bad.err"
    eq "--last '$bad': usage error 64" "$?" 64
done
"$RACE" report --json --last 5 "$(one_trace "$T/segv")" > /dev/null 2>&1
eq "--last with --json: usage error 64" "$?" 64
"$RACE" report --last=2.5 "$(one_trace "$T/segv")" > /dev/null 2>&1
eq "--last=2.5 is accepted" "$?" 0

# Ruby: Ractors churn while the main Ractor crashes in a C extension. The window (the
# whole run) holds the other Ractors' lanes: only they allocate, so their frees and the
# GC sweeps they run are there; then a short window, in the middle of their events.
d=$T/rb-ractors; mkdir -p "$d"
env LD_PRELOAD="$SHIM" RACE_DIR="$d" ruby -rfiddle -W0 -e '3.times.map { Ractor.new { loop { Array.new(100) { "x" * 50 } } } }; sleep 0.5; Fiddle::Pointer.new(8)[0]' > /dev/null 2>&1
f=$(one_trace "$d")
window_check rb-ractors "$f" 100000
check "ruby Ractors: the crash lane is the main Ractor's thread" grep -q '^     lane 0: thread [0-9]* (Ractor 1), [0-9]* events, the crashing thread' "$T/last.rb-ractors"
ge "ruby Ractors: lanes of other Ractors in the window" "$(grep -c '^     lane [1-9][0-9]*: thread [0-9]* (Ractor [2-9][0-9]*)' "$T/last.rb-ractors")" 1
window_check rb-ractors-short "$f" 20
check "ruby Ractors: Ruby's abort follows, linked" grep -q '^   then, while it was handled: 1 more signal (linked to this crash)' "$T/last.rb-ractors"

# The reader: a corrupt record is a problem (status 2) named by its offset, never a crash;
# the rest of the trace is still read.
d=$T/corrupt; mkdir -p "$d"
env LD_PRELOAD="$SHIM" RACE_DIR="$d" "$K" handler-abort > /dev/null 2>&1
f=$(one_trace "$d")
patch() { # patch TRACE RECORD FIELD-OFFSET PACK VALUE
    ruby -e 'f, rec, at, pack, v = ARGV; s = File.binread(f); off = s[128, 8].unpack1("Q<") + 64 + rec.to_i * 256 + at.to_i
             s[off, [0].pack(pack).size] = [v.to_i].pack(pack); File.binwrite(f, s)' "$@"
}
for p in "sig:4:C:0" "sig:4:C:65" "first:6:S<:2" "has_regs:5:C:7" "stack:20:L<:999999"; do
    IFS=: read -r name at pack v <<< "$p"
    cp "$f" "$d/t.trace"
    patch "$d/t.trace" 1 "$at" "$pack" "$v"
    "$ROOT/analyze/race-asan" stats "$d/t.trace" > "$d/out" 2> "$d/err"
    st=$?
    eq "corrupt $name=$v: race stats exits 2, not a crash" "$st" 2
    check "corrupt $name=$v: the message names crash record 1 and its offset" grep -q 'crash record 1 at offset [0-9]*' "$d/err"
    check "corrupt $name=$v: record 0 is still read" grep -q '^  crashes *[12] ' "$d/out"
done
# Random damage to the crashes section (header and both records; fixed seeds): every
# command reads on under ASan/UBSan, exits 0, 1 or 2, and never dies.
rm -f "$d"/*.trace
env LD_PRELOAD="$SHIM" RACE_DIR="$d" RACE_RING_MB=1 RACE_DEPOT_MB=1 "$K" handler-abort > /dev/null 2>&1
f=$(one_trace "$d")
bad=""
for seed in $(seq 1 16); do
    ruby -e 'f, seed, out = ARGV; s = File.binread(f); r = Random.new(seed.to_i)
             off = s[128, 8].unpack1("Q<"); 1.upto(1 + r.rand(4)) { at = off + r.rand(64 + 2 * 256); s.setbyte(at, r.rand(256)) }
             File.binwrite(out, s)' "$f" "$seed" "$d/z.trace"
    for cmd in "stats" "stats --json" "dump --json --stacks" "report --last 1000"; do
        # shellcheck disable=SC2086 # the command words are meant to split
        { "$ROOT/analyze/race-asan" $cmd "$d/z.trace" > /dev/null 2> "$d/z.err"; st=$?; } 2>/dev/null
        if [ "$st" -gt 2 ] || grep -qE 'Sanitizer|runtime error' "$d/z.err"; then
            bad="$bad seed $seed '$cmd': status $st;"
        fi
    done
done
eq "16 damaged crashes sections: every command reads on (0, 1 or 2), no sanitizer report" "$bad" ""
cp "$f" "$d/t.trace"
patch "$d/t.trace" 1 0 "L<" 0
"$ROOT/analyze/race-asan" stats "$d/t.trace" > "$d/out" 2> "$d/err"
eq "unpublished record (commit 0): not a problem" "$?" 0
check "unpublished record: counted as incomplete" grep -q '^  crashes *1 .*(1 incomplete' "$d/out"
finish
