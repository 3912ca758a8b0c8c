#!/usr/bin/env bash
# t_analyzer.sh - golden checks of `race` on traces written by tests/bin/mktrace, whose
# contents are known exactly: counts in `race stats`, stacks symbolized to functions and
# file:line of tests/mktrace.c, values in the JSON output, damaged and foreign inputs
# (exit 2, the file and offset named), and usage errors word for word (exit 64).
# Run from the repository root.
source tests/lib.sh

MK=$BIN/mktrace
ASAN=$ROOT/analyze/race-asan
SRC=tests/mktrace.c
for b in "$RACE" "$ASAN" "$MK" "$BIN/reader_fuzz"; do
    [ -x "$b" ] || { not_ok "setup" "$b is missing"; finish; }
done

# line_of MARK: the line of tests/mktrace.c carrying "/* LINE:MARK */"
line_of() { grep -n "/\* LINE:$1 \*/" "$SRC" | cut -d: -f1; }
# jget FILE PATH: the value at PATH (keys and indexes joined by dots) of a JSON document
jget() {
    ruby -rjson -e 'v = JSON.parse(File.read(ARGV[0]))
        ARGV[1].split(".").each { |k| v = v.is_a?(Array) ? v[k.to_i] : (v || {})[k] }
        puts v.nil? ? "null" : v' "$1" "$2"
}
# jline FILE N PATH: the same for line N of a JSON Lines file
jline() {
    ruby -rjson -e 'v = JSON.parse(File.readlines(ARGV[0])[ARGV[1].to_i - 1])
        ARGV[2].split(".").each { |k| v = v.is_a?(Array) ? v[k.to_i] : (v || {})[k] }
        puts v.nil? ? "null" : v' "$1" "$2" "$3"
}
# has_line NAME FILE LINE: FILE holds LINE exactly
has_line() {
    if grep -qxF -- "$3" "$2"; then ok "$1"; else not_ok "$1" "no line '$3' in $(basename "$2")"; fi
}
# has_re NAME FILE REGEX
has_re() {
    if grep -qE -- "$3" "$2"; then ok "$1"; else not_ok "$1" "nothing matches /$3/ in $(basename "$2")"; fi
}
# counts_match NAME TRACE EXPECT: valid/torn/corrupt/overwritten as mktrace announced them
counts_match() {
    "$RACE" stats --json "$2" > "$T/cm.json" 2>/dev/null
    local k got want
    for k in valid torn corrupt; do
        got=$(jget "$T/cm.json" "traces.0.records.$k")
        want=$(awk -v k=$k '$1 == k {print $2}' "$3")
        eq "$1: $k records = $want" "$got" "$want"
    done
    eq "$1: overwritten = $(awk '$1 == "overwritten" {print $2}' "$3")" \
        "$(jget "$T/cm.json" traces.0.overwritten)" "$(awk '$1 == "overwritten" {print $2}' "$3")"
}

version=$(sed -n 's/^#define RACE_TRACE_VERSION \([0-9]*\)u.*/\1/p' common/race_trace.h)
cap=$(line_of capture) leaf=$(line_of leaf) mid_a=$(line_of middle_a) mid_b=$(line_of middle_b)
main_a=$(line_of main_a) main_b=$(line_of main_b) main_leaf=$(line_of main_leaf)
exe=$(readlink -f "$MK")

# ---- A clean trace: 3 threads x 100 frees, Ruby 3.4.5, Ractors 1..3, TSC at 3 GHz ----
a=$T/a.trace
"$MK" --ruby "$a" > "$T/a.expect"
"$RACE" stats "$a" > "$T/a.stats" 2> "$T/a.err"
eq "stats: clean trace exits 0" "$?" 0
eq "stats: nothing on stderr" "$(cat "$T/a.err")" ""
has_re "stats: process line" "$T/a.stats" '^  process      pid [0-9]+, parent [0-9]+, exited cleanly$'
has_line "stats: exe" "$T/a.stats" "  exe          $exe"
has_line "stats: start time in UTC" "$T/a.stats" "  started      2023-11-14 22:13:20.123 UTC"
has_line "stats: ruby version" "$T/a.stats" "  ruby         3.4.5"
has_line "stats: Ractor-id state" "$T/a.stats" "  ractor ids   valid (offsets checked on the main thread)"
has_line "stats: stack options" "$T/a.stats" "  stacks       every free, up to 64 frames"
has_line "stats: TSC calibrated at 3 GHz" "$T/a.stats" \
    "  clock        tsc, 3.000 GHz (from 5 calibration pairs, the outermost 0.301 ms apart)"
has_line "stats: options in force" "$T/a.stats" "  options      RACE_DIR=/tmp/mktrace"
has_line "stats: options, continued" "$T/a.stats" "               RACE_STACK_DEPTH=64"
has_line "stats: ring" "$T/a.stats" \
    "  ring         8 chunks of 64 KiB, 3 claimed now (0 still held), 3 claimed over the run"
has_line "stats: record counts" "$T/a.stats" "  records      300 valid, 0 torn or incomplete, 0 corrupt"
has_line "stats: header counters" "$T/a.stats" \
    "  lost         0 overwritten, 0 dropped, 7 frees before the trace existed"
has_line "stats: span of surviving records" "$T/a.stats" \
    "  span         0.299 ms (first event at 0.001 ms, last at 0.300 ms after start)"
has_line "stats: stacks" "$T/a.stats" \
    "  stack ids    3 distinct referenced; depot holds 3 unique, 0 not stored (depot full)"
has_line "stats: by kind" "$T/a.stats" "    free                          300  100.0%"
has_line "stats: by entry point" "$T/a.stats" "    ruby_sized_xrealloc2           30   10.0%"
has_line "stats: by Ractor id" "$T/a.stats" "    2                             100   33.3%"
has_line "stats: by thread id" "$T/a.stats" "    1003                          100   33.3%"
has_line "stats: no probes section, nothing watched" "$T/a.stats" "  probes       none (no function was watched)"
eq "stats: no watched block" "$(grep -c '^  watched ' "$T/a.stats")" 0
counts_match "clean" "$a" "$T/a.expect"

"$RACE" dump "$a" > "$T/a.dump" 2> "$T/a.err"
eq "dump: exits 0" "$?" 0
eq "dump: 300 events" "$(grep -cE '^ +[0-9]+\.[0-9]{3} ' "$T/a.dump")" 300
check "dump: sorted by time" bash -c "grep -E '^ +[0-9]+\.[0-9]{3} ' '$T/a.dump' | awk '\$1 < p {exit 1} {p = \$1}'"
has_line "dump: the first event, column by column" "$T/a.dump" \
    "         1.000     1001       1        1  free  free                 0x00000000f9000000         16                0x0       1  -"
has_line "dump: a moving realloc shows its new address in aux" "$T/a.dump" \
    "         2.000     1002       2        1  free  realloc              0x00000000fa000000         32         0xfa100000      10  -"
has_line "dump: an event without a stack" "$T/a.dump" \
    "         4.000     1001       1        2  free  reallocarray         0x00000000f9000040         64         0xf9100040       -  -"

"$RACE" dump --stacks "$a" > "$T/a.stacks" 2> "$T/a.err"
eq "dump --stacks: exits 0" "$?" 0
eq "dump --stacks: no notes (every module is on disk)" "$(cat "$T/a.err")" ""
sed -n '3,10p' "$T/a.stacks" > "$T/first"
fr='^        #%s 0x[0-9a-f]{16} in %s /.*tests/mktrace\.c:%s$'
has_re "dump --stacks: #0 mk_capture at mktrace.c:$cap" "$T/first" "$(printf "$fr" 0 mk_capture "$cap")"
has_re "dump --stacks: #1 mk_leaf at mktrace.c:$leaf" "$T/first" "$(printf "$fr" 1 mk_leaf "$leaf")"
has_re "dump --stacks: #2 mk_middle_a at mktrace.c:$mid_a" "$T/first" "$(printf "$fr" 2 mk_middle_a "$mid_a")"
has_re "dump --stacks: #3 main at mktrace.c:$main_a" "$T/first" "$(printf "$fr" 3 main "$main_a")"
has_re "dump --stacks: #2 mk_middle_b at mktrace.c:$mid_b" "$T/a.stacks" "$(printf "$fr" 2 mk_middle_b "$mid_b")"
has_re "dump --stacks: #3 main at mktrace.c:$main_b" "$T/a.stacks" "$(printf "$fr" 3 main "$main_b")"
has_re "dump --stacks: #2 main at mktrace.c:$main_leaf" "$T/a.stacks" "$(printf "$fr" 2 main "$main_leaf")"
has_re "dump --stacks: a frame without lines falls back to module+offset" "$T/a.stacks" \
    '^        #[0-9]+ 0x[0-9a-f]{16} in _start \(mktrace\+0x[0-9a-f]+\)$'
eq "dump --stacks: 225 of 300 events have a stack (every 4th has none)" \
    "$(grep -c '^        #0 ' "$T/a.stacks")" 225

# ---- JSON ----
"$RACE" stats --json "$a" > "$T/a.json"
eq "stats --json: exits 0" "$?" 0
eq "stats --json: valid records" "$(jget "$T/a.json" traces.0.records.valid)" 300
eq "stats --json: by thread" "$(jget "$T/a.json" traces.0.by_tid.1002)" 100
eq "stats --json: by Ractor" "$(jget "$T/a.json" traces.0.by_ractor.3)" 100
eq "stats --json: by entry point" "$(jget "$T/a.json" traces.0.by_entry.realloc)" 30
eq "stats --json: Ractor-id state" "$(jget "$T/a.json" traces.0.ractor_state)" valid
eq "stats --json: ruby version" "$(jget "$T/a.json" traces.0.ruby_version)" 3.4.5
eq "stats --json: options as an object" "$(jget "$T/a.json" traces.0.options.RACE_DIR)" /tmp/mktrace
eq "stats --json: closed" "$(jget "$T/a.json" traces.0.closed)" true
eq "stats --json: exe" "$(jget "$T/a.json" traces.0.exe)" "$exe"
eq "stats --json: cmdline is argv" "$(jget "$T/a.json" traces.0.cmdline.1)" "--ruby"
eq "stats --json: TSC frequency" "$(jget "$T/a.json" traces.0.tsc_ghz)" 3.0
eq "stats --json: span" "$(jget "$T/a.json" traces.0.span_ms)" 0.299
eq "stats --json: stack ids referenced" "$(jget "$T/a.json" traces.0.stacks.referenced)" 3
eq "stats --json: early frees" "$(jget "$T/a.json" traces.0.early_frees)" 7
eq "stats --json: no probes section" "$(jget "$T/a.json" traces.0.probe_records.section)" none
eq "stats --json: nothing watched" "$(jget "$T/a.json" traces.0.watched.0)" null

"$RACE" dump --json --stacks "$a" > "$T/a.jsonl"
eq "dump --json: exits 0" "$?" 0
eq "dump --json: one line per event" "$(wc -l < "$T/a.jsonl")" 300
check "dump --json: every line parses" ruby -rjson -e 'File.foreach(ARGV[0]) { |l| JSON.parse(l) }' "$T/a.jsonl"
eq "dump --json: time_us" "$(jline "$T/a.jsonl" 1 time_us)" 1.0
eq "dump --json: tid" "$(jline "$T/a.jsonl" 1 tid)" 1001
eq "dump --json: ractor" "$(jline "$T/a.jsonl" 1 ractor)" 1
eq "dump --json: entry" "$(jline "$T/a.jsonl" 2 entry)" realloc
eq "dump --json: addr as a hex string" "$(jline "$T/a.jsonl" 2 addr)" 0xfa000000
eq "dump --json: aux" "$(jline "$T/a.jsonl" 2 aux)" 0xfa100000
eq "dump --json: stack_id" "$(jline "$T/a.jsonl" 2 stack_id)" 10
eq "dump --json: stack frame function" "$(jline "$T/a.jsonl" 1 stack.1.function)" mk_leaf
eq "dump --json: stack frame line" "$(jline "$T/a.jsonl" 1 stack.1.line)" "$leaf"
check "dump --json: stack frame file" bash -c "[[ '$(jline "$T/a.jsonl" 1 stack.1.file)' == /*tests/mktrace.c ]]"
eq "dump --json: no stack, empty array" "$(jline "$T/a.jsonl" 4 stack.0)" null

"$ASAN" dump --json --stacks "$a" > "$T/a.asan.jsonl" 2> "$T/a.asan.err"
eq "race-asan: exits 0 on the clean trace" "$?" 0
check "race-asan: same output as race" cmp -s "$T/a.jsonl" "$T/a.asan.jsonl"

"$RACE" report "$a" > "$T/a.report" 2> "$T/a.err"
eq "report: exits 0 without findings" "$?" 0
eq "report: says 0 findings last" "$(tail -1 "$T/a.report")" "0 findings"
"$RACE" report --json "$a" > "$T/a.rjson"
eq "report --json: nfindings" "$(jget "$T/a.rjson" nfindings)" 0
eq "report --json: findings is empty" "$(ruby -rjson -e 'puts JSON.parse(File.read(ARGV[0]))["findings"].size' "$T/a.rjson")" 0
eq "report --json: the summary" "$(jget "$T/a.rjson" traces.0.records.valid)" 300

# ---- Monotonic clock ----
"$MK" --mono "$T/m.trace" > /dev/null
"$RACE" stats "$T/m.trace" > "$T/m.stats"
has_line "monotonic clock: named" "$T/m.stats" "  clock        monotonic"
has_line "monotonic clock: the same span" "$T/m.stats" \
    "  span         0.299 ms (first event at 0.001 ms, last at 0.300 ms after start)"

# ---- Overwrite-oldest: 6000 frees into 4 chunks ----
"$MK" --chunks 4 --events 2000 "$T/o.trace" > "$T/o.expect"
"$RACE" stats "$T/o.trace" > "$T/o.stats"
eq "overwrite: exits 0" "$?" 0
has_line "overwrite: survivors" "$T/o.stats" "  records      3954 valid, 0 torn or incomplete, 0 corrupt"
has_line "overwrite: exact overwritten count" "$T/o.stats" \
    "  lost         2046 overwritten, 0 dropped, 7 frees before the trace existed"
has_line "overwrite: chunks" "$T/o.stats" \
    "  ring         4 chunks of 64 KiB, 4 claimed now (0 still held), 6 claimed over the run"
counts_match "overwrite" "$T/o.trace" "$T/o.expect"

# ---- Damage: torn, corrupt, clamped, a bad stack id, a crash ----
d=$T/d.trace
"$MK" --torn 5 --corrupt 2 --clamp 1 --bad-stack 1 --crash --ruby "$d" > "$T/d.expect"
"$RACE" stats "$d" > "$T/d.stats" 2> "$T/d.err"
eq "damage: exits 2" "$?" 2
counts_match "damage" "$d" "$T/d.expect"
has_line "damage: clamped chunk named with its offset" "$T/d.err" \
    "race: $d: chunk 0 at offset 8192 says $(( (1 << 23) - 1 )) records are used (at most 1023); reading 1023"
has_re "damage: corrupt record named with its offset" "$T/d.err" \
    "^race: $d: corrupt record at offset [0-9]+: unknown kind \(kind 99, entry [0-9]+\)$"
has_re "damage: bad stack id named" "$T/d.err" \
    "^race: $d: record at offset [0-9]+ names stack 2147483647: id outside the depot's published entries$"
has_line "damage: the crash is visible" "$T/d.stats" \
    "  process      pid $(jget "$T/cm.json" traces.0.pid), parent $(jget "$T/cm.json" traces.0.ppid), did not close (crashed, was killed, or called exec)"
"$RACE" dump --stacks "$d" > "$T/d.dump" 2>/dev/null
eq "damage: dump exits 2" "$?" 2
eq "damage: dump still shows every valid event" "$(grep -cE '^ +[0-9]+\.[0-9]{3} ' "$T/d.dump")" \
    "$(awk '$1 == "valid" {print $2}' "$T/d.expect")"
has_re "damage: an unreadable stack is said in place" "$T/d.dump" \
    '^        \(stack 2147483647 unreadable: id outside the depot.s published entries\)$'

# In a released chunk every reserved record was published: one that fails its checksum
# is corruption, not a writer that died (FORMAT.md, "Ring").
"$MK" --torn 3 "$T/rel.trace" > "$T/rel.expect"
"$RACE" stats "$T/rel.trace" > /dev/null 2> "$T/rel.err"
eq "released chunk, bad checksum: exits 2" "$?" 2
counts_match "released chunk, bad checksum" "$T/rel.trace" "$T/rel.expect"
has_re "released chunk, bad checksum: named with its offset" "$T/rel.err" \
    "^race: $T/rel.trace: corrupt record at offset [0-9]+: checksum fails in a released chunk"

# ---- Findings ----
"$MK" --findings --ruby "$T/f.trace" > /dev/null
"$RACE" report "$T/f.trace" > "$T/f.report" 2> "$T/f.err"
eq "report: exits 1 with findings" "$?" 1
eq "report: nothing on stderr" "$(cat "$T/f.err")" ""
# the headline names the process, as the shim's report on stderr does
fpid=$(sed -n 's/^  process    pid \([0-9]*\),.*/\1/p' "$T/f.report")
has_line "report: ASan-shaped headline" "$T/f.report" \
    "==$fpid==ERROR: race: heap-use-after-free on address 0x7f0000001010"
has_line "report: the access, by whom and when" "$T/f.report" \
    "READ of size 8 at 0x7f0000001010 by thread 1002 (Ractor 2) at 0.300 ms:"
has_re "report: the use stack, symbolized" "$T/f.report" "$(printf "$fr" 2 mk_middle_b "$mid_b" | sed 's/        /    /')"
has_line "report: where in the block" "$T/f.report" \
    "0x7f0000001010 is located 16 bytes inside of 64-byte region [0x7f0000001000,0x7f0000001040)"
has_line "report: who freed it, how and when" "$T/f.report" \
    "freed by thread 1003 (Ractor 3) via ruby_xfree at 0.021 ms (0.279 ms before):"
has_line "report: who allocated it" "$T/f.report" "previously allocated by thread 1001 (Ractor 1) at 0.011 ms:"
has_re "report: summary line" "$T/f.report" "^SUMMARY: race: heap-use-after-free in mk_capture /.*tests/mktrace\.c:$cap$"
has_line "report: a double free" "$T/f.report" "attempting double-free on 0x7f0000002000 by thread 1001 at 0.031 ms:"
has_line "report: the finding's detail" "$T/f.report" "detail: second free"
has_line "report: summary counts the unpublished finding" "$T/f.report" \
    "  findings   2 (and 1 incomplete, 0 that did not fit)"
eq "report: count last" "$(tail -1 "$T/f.report")" "2 findings"
"$RACE" report --json "$T/f.trace" > "$T/f.json"
eq "report --json: exits 1 with findings" "$?" 1
eq "report --json: nfindings" "$(jget "$T/f.json" nfindings)" 2
eq "report --json: type" "$(jget "$T/f.json" findings.0.type)" heap-use-after-free
eq "report --json: access" "$(jget "$T/f.json" findings.0.access)" read
eq "report --json: block size" "$(jget "$T/f.json" findings.0.block.size)" 64
eq "report --json: free entry" "$(jget "$T/f.json" findings.0.free.entry)" ruby_xfree
eq "report --json: free stack" "$(jget "$T/f.json" findings.0.free.stack.2.function)" mk_middle_a
eq "report --json: alloc stack line" "$(jget "$T/f.json" findings.0.alloc.stack.1.line)" "$leaf"
eq "report --json: no allocation known" "$(jget "$T/f.json" findings.1.alloc)" null
eq "report --json: detail" "$(jget "$T/f.json" findings.1.detail)" "second free"
"$RACE" stats --json "$T/f.trace" > "$T/fs.json"
eq "stats --json: findings counted" "$(jget "$T/fs.json" traces.0.findings.count)" 2
eq "stats --json: unpublished finding counted" "$(jget "$T/fs.json" traces.0.findings.incomplete)" 1
"$ASAN" report --json "$T/f.trace" > "$T/f.asan.json" 2>&1
eq "race-asan: report with findings exits 1" "$?" 1
check "race-asan: same report" cmp -s "$T/f.json" "$T/f.asan.json"

# ---- Watched functions: probe records, their events, a stale call-info ----
# put_le FILE OFFSET NBYTES VALUE: a little-endian integer written into FILE in place
put_le() {
    local f=$1 off=$2 n=$3 v=$4 i s=""
    for ((i = 0; i < n; i++)); do s+=$(printf '\\x%02x' $(( (v >> (8 * i)) & 255 ))); done
    printf "$s" | dd of="$f" bs=1 seek="$off" conv=notrunc status=none
}
# mktrace --probes: rb_vm_ci_lookup has an entry hook (#0, 100 hits), a breakpoint on an
# inlined copy (#1, 10), two check breakpoints (#2, 5; #3, 1) and a refused inlined copy
# (#4); vm_call_method one refused record (#5); #6 is claimed, never published. Thread
# 1001 adds enter/hit/exit of #0/#2 and enter/hit of #1/#3, twice each: 10 events.
p=$T/p.trace
"$MK" --probes --stale-ci --ruby "$p" > "$T/p.expect"
po=$(awk '$1 == "probes_off" {print $2}' "$T/p.expect")
prec() { echo $(( po + 64 + 192 * $1 )); } # prec N: offset of probe record N
eq "mktrace --probes: 4 enter, 2 exit, 4 hit written" \
    "$(awk '$1 ~ /^(enter|exit|hit)$/ {printf "%s ", $2}' "$T/p.expect")" "4 2 4 "
"$RACE" stats "$p" > "$T/p.stats" 2> "$T/p.err"
eq "probes: stats exits 0" "$?" 0
eq "probes: nothing on stderr" "$(cat "$T/p.err")" ""
counts_match "probes" "$p" "$T/p.expect"
has_line "probes: record counts" "$T/p.stats" "  records      310 valid, 0 torn or incomplete, 0 corrupt"
has_line "probes: the section's records" "$T/p.stats" \
    "  probes       6 records (1 incomplete, 0 corrupt, 0 did not fit)"
has_line "probes: events by kind: enter" "$T/p.stats" "    enter                           4    1.3%"
has_line "probes: events by kind: exit" "$T/p.stats" "    exit                            2    0.6%"
has_line "probes: events by kind: hit" "$T/p.stats" "    hit                             4    1.3%"
has_line "probes: a probe's index is not a record flag" "$T/p.stats" "    free                          300   96.8%"
eq "probes: frees by entry point unchanged" "$(grep -c '^    ruby_xfree  *30 ' "$T/p.stats")" 1
has_line "watched: rb_vm_ci_lookup's totals" "$T/p.stats" \
    "  watched      rb_vm_ci_lookup: 4 probes (1 entry-hook, 3 breakpoint), 1 refused, 116 hits"
has_line "watched: rb_vm_ci_lookup's roles and instances" "$T/p.stats" \
    "    roles                  1 entry, 2 inlined, 2 check, over 3 instances"
has_line "watched: rb_vm_ci_lookup's events in the ring" "$T/p.stats" \
    "    events in the ring     4 enter, 2 exit, 4 hit"
has_line "watched: the entry hook" "$T/p.stats" \
    "    #0     entry-hook  entry           0 0x0000555555601000        100  -"
has_line "watched: a breakpoint on an inlined copy, with its chain" "$T/p.stats" \
    "    #1     breakpoint  inlined         1 0x0000555555602040         10  vm_ci_new_ <- vm_search_super_method"
has_line "watched: a check breakpoint, with its register" "$T/p.stats" \
    "    #3     breakpoint  check           1 0x000055555560205c          1  kwarg in %rdx"
has_line "watched: a refused copy, with the reason" "$T/p.stats" \
    "    #4     refused     inlined         2 0x0000555555603100          0  entry is the target of a jump inside the copy"
has_line "watched: a function only refused" "$T/p.stats" \
    "  watched      vm_call_method: 0 probes, 1 refused, 0 hits"
has_line "watched: why it was refused" "$T/p.stats" \
    "    #5     refused     entry           0 0x0000000000000000          0  no instance in the debug information"
eq "watched: the unpublished record is not listed" "$(grep -c '^    #6 ' "$T/p.stats")" 0

"$RACE" stats --json "$p" > "$T/p.json"
eq "probes --json: exits 0" "$?" 0
eq "probes --json: section ok" "$(jget "$T/p.json" traces.0.probe_records.section)" ok
eq "probes --json: 6 records" "$(jget "$T/p.json" traces.0.probe_records.count)" 6
eq "probes --json: 1 incomplete" "$(jget "$T/p.json" traces.0.probe_records.incomplete)" 1
eq "probes --json: 0 dropped" "$(jget "$T/p.json" traces.0.probe_records.dropped)" 0
eq "probes --json: by kind" "$(jget "$T/p.json" traces.0.by_kind.hit)" 4
eq "probes --json: probe indexes are no guarded flags" "$(jget "$T/p.json" traces.0.by_flag.guarded)" 0
eq "probes --json: 6 probes listed" "$(ruby -rjson -e 'puts JSON.parse(File.read(ARGV[0]))["traces"][0]["probes"].size' "$T/p.json")" 6
eq "probes --json: index" "$(jget "$T/p.json" traces.0.probes.1.index)" 1
eq "probes --json: function" "$(jget "$T/p.json" traces.0.probes.1.function)" rb_vm_ci_lookup
eq "probes --json: role" "$(jget "$T/p.json" traces.0.probes.1.role)" inlined
eq "probes --json: kind" "$(jget "$T/p.json" traces.0.probes.1.kind)" breakpoint
eq "probes --json: instance" "$(jget "$T/p.json" traces.0.probes.1.instance)" 1
eq "probes --json: addr" "$(jget "$T/p.json" traces.0.probes.1.addr)" 0x555555602040
eq "probes --json: hits" "$(jget "$T/p.json" traces.0.probes.1.hits)" 10
eq "probes --json: detail" "$(jget "$T/p.json" traces.0.probes.1.detail)" "vm_ci_new_ <- vm_search_super_method"
eq "probes --json: events of one probe" "$(jget "$T/p.json" traces.0.probes.0.events.exit)" 2
eq "probes --json: refused reason" "$(jget "$T/p.json" traces.0.probes.5.detail)" "no instance in the debug information"
eq "watched --json: two functions" "$(jget "$T/p.json" traces.0.watched.1.function)" vm_call_method
eq "watched --json: function" "$(jget "$T/p.json" traces.0.watched.0.function)" rb_vm_ci_lookup
eq "watched --json: probes" "$(jget "$T/p.json" traces.0.watched.0.probes)" 4
eq "watched --json: instances" "$(jget "$T/p.json" traces.0.watched.0.instances)" 3
eq "watched --json: hits" "$(jget "$T/p.json" traces.0.watched.0.hits)" 116
eq "watched --json: entry hooks" "$(jget "$T/p.json" traces.0.watched.0.kinds.entry-hook)" 1
eq "watched --json: breakpoints" "$(jget "$T/p.json" traces.0.watched.0.kinds.breakpoint)" 3
eq "watched --json: refused" "$(jget "$T/p.json" traces.0.watched.0.kinds.refused)" 1
eq "watched --json: inlined" "$(jget "$T/p.json" traces.0.watched.0.roles.inlined)" 2
eq "watched --json: check" "$(jget "$T/p.json" traces.0.watched.0.roles.check)" 2
eq "watched --json: enter events" "$(jget "$T/p.json" traces.0.watched.0.events.enter)" 4
eq "watched --json: hit events" "$(jget "$T/p.json" traces.0.watched.0.events.hit)" 4
eq "watched --json: a function only refused" "$(jget "$T/p.json" traces.0.watched.1.kinds.refused)" 1

"$RACE" dump "$p" > "$T/p.dump" 2> "$T/p.err"
eq "probes: dump exits 0" "$?" 0
eq "probes: dump shows 310 events" "$(grep -cE '^ +[0-9]+\.[0-9]{3} ' "$T/p.dump")" 310
has_line "probes: dump names the wider column" "$T/p.dump" \
    "#      time_us      tid  ractor      seq  kind  entry, or probe (role)                  addr       size                aux   stack  flags"
has_line "probes: dump: enter, with the probe's function and role" "$T/p.dump" \
    "         1.100     1001       1        2  enter rb_vm_ci_lookup (entry)   0x0000555555601000     0x3c01               0x10       -  probe 0"
has_line "probes: dump: hit, with the kwarg block checked" "$T/p.dump" \
    "         1.200     1001       1        3  hit   rb_vm_ci_lookup (check)   0x0000555555601024 0x7f0000003000                0x0       -  probe 2"
has_line "probes: dump: exit, with the return value" "$T/p.dump" \
    "         1.300     1001       1        4  exit  rb_vm_ci_lookup (entry)   0x0000555555601000 0x7f0000004000                0x0       -  probe 0"
has_line "probes: dump: enter of an inlined copy" "$T/p.dump" \
    "        76.100     1001       1       30  enter rb_vm_ci_lookup (inlined) 0x0000555555602040     0x3c11                0x4       -  probe 1"
has_line "probes: dump: frees keep their columns" "$T/p.dump" \
    "         2.000     1002       2        1  free  realloc                   0x00000000fa000000         32         0xfa100000      10  -"
"$RACE" dump --json "$p" > "$T/p.jsonl"
eq "probes: dump --json: exits 0" "$?" 0
eq "probes: dump --json: kind" "$(jline "$T/p.jsonl" 3 kind)" hit
eq "probes: dump --json: probe index" "$(jline "$T/p.jsonl" 3 probe.index)" 2
eq "probes: dump --json: probe function" "$(jline "$T/p.jsonl" 3 probe.function)" rb_vm_ci_lookup
eq "probes: dump --json: probe role" "$(jline "$T/p.jsonl" 3 probe.role)" check
eq "probes: dump --json: probe kind" "$(jline "$T/p.jsonl" 3 probe.kind)" breakpoint
eq "probes: dump --json: an enter's first argument" "$(jline "$T/p.jsonl" 2 size)" $((0x3c01))
inl=$(grep -n '"probe":{"index":1,' "$T/p.jsonl" | head -1 | cut -d: -f1)
eq "probes: dump --json: the inlined copy's first enter, at 76.1 us" "$(jline "$T/p.jsonl" "$inl" time_us)" 76.1
eq "probes: dump --json: its flags are probe 1, not guarded" "$(jline "$T/p.jsonl" "$inl" guarded)" false
eq "probes: dump --json: the inlined copy's role" "$(jline "$T/p.jsonl" "$inl" probe.role)" inlined
eq "probes: dump --json: a free has no probe" "$(jline "$T/p.jsonl" 1 probe)" null
"$ASAN" dump --json --stacks "$p" > "$T/p.asan.jsonl" 2> "$T/p.asan.err"
eq "race-asan: dump of probe events exits 0" "$?" 0
"$RACE" dump --json --stacks "$p" > "$T/p.stacks.jsonl"
check "race-asan: same dump of probe events" cmp -s "$T/p.stacks.jsonl" "$T/p.asan.jsonl"

"$RACE" report "$p" > "$T/p.report" 2> "$T/p.err"
eq "stale call-info: report exits 1" "$?" 1
eq "stale call-info: nothing on stderr" "$(cat "$T/p.err")" ""
ppid_=$(sed -n 's/^  process    pid \([0-9]*\),.*/\1/p' "$T/p.report")
has_line "stale call-info: headline" "$T/p.report" "==$ppid_==ERROR: race: stale-call-info on address 0x7f0000003010"
has_line "stale call-info: the access, and what was handed to whom" "$T/p.report" \
    "READ of size 4 at 0x7f0000003010 by thread 1001 (Ractor 1) at 0.299 ms: rb_vm_ci_lookup was handed a freed kwarg block"
has_line "stale call-info: where in the kwarg block" "$T/p.report" \
    "0x7f0000003010 is located 16 bytes inside of 24-byte region [0x7f0000003000,0x7f0000003018)"
has_line "stale call-info: which Ractor freed it" "$T/p.report" \
    "freed by thread 1003 (Ractor 3) via ruby_xfree at 0.041 ms (0.258 ms before):"
has_line "stale call-info: who allocated it" "$T/p.report" "previously allocated by thread 1002 (Ractor 2) at 0.005 ms:"
has_line "stale call-info: the shim's note" "$T/p.report" \
    "detail: rb_vm_ci_lookup <- vm_ci_new_: kwarg references++ at 0x205c"
has_re "stale call-info: summary line" "$T/p.report" "^SUMMARY: race: stale-call-info in mk_capture /.*tests/mktrace\.c:$cap$"
has_line "report summary: watched rb_vm_ci_lookup" "$T/p.report" \
    "  watched    rb_vm_ci_lookup: 4 probes (1 entry-hook, 3 breakpoint), 1 refused, 116 hits"
has_line "report summary: watched vm_call_method" "$T/p.report" \
    "             vm_call_method: 0 probes, 1 refused, 0 hits"
eq "report: count last" "$(tail -1 "$T/p.report")" "1 finding"
eq "report summary: no watched line without probes" "$(grep -c 'watched' "$T/a.report")" 0
"$RACE" report --json "$p" > "$T/p.rjson"
eq "stale call-info --json: type" "$(jget "$T/p.rjson" findings.0.type)" stale-call-info
eq "stale call-info --json: watched function" "$(jget "$T/p.rjson" findings.0.watched)" rb_vm_ci_lookup
eq "stale call-info --json: free Ractor" "$(jget "$T/p.rjson" findings.0.free.ractor)" 3
eq "stale call-info --json: detail" "$(jget "$T/p.rjson" findings.0.detail)" \
    "rb_vm_ci_lookup <- vm_ci_new_: kwarg references++ at 0x205c"
eq "report --json: the trace's watched functions" "$(jget "$T/p.rjson" traces.0.watched.0.hits)" 116
eq "report --json: a finding of another type has no watched key" \
    "$(ruby -rjson -e 'puts JSON.parse(File.read(ARGV[0]))["findings"][0].key?("watched")' "$T/f.json")" false
"$MK" --probes --stale-ci "$T/pn.trace" > /dev/null
"$RACE" report "$T/pn.trace" > "$T/pn.report" 2>/dev/null
has_line "stale call-info without Ractor ids: says they are unknown" "$T/pn.report" \
    "READ of size 4 at 0x7f0000003010 by thread 1001 (Ractor unknown) at 0.299 ms: rb_vm_ci_lookup was handed a freed kwarg block"
has_line "stale call-info without Ractor ids: the free too" "$T/pn.report" \
    "freed by thread 1003 (Ractor unknown) via ruby_xfree at 0.041 ms (0.258 ms before):"

# Damage in and around the probes section. Record layout: kind +4, role +5, func +24
# (48 bytes), detail +72 (120 bytes); the header's probes entry is at offset 112.
"$MK" --probes --bad-probe-ref 2 "$T/pb.trace" > "$T/pb.expect"
"$RACE" stats "$T/pb.trace" > /dev/null 2> "$T/pb.err"
eq "event naming no probe: exits 2" "$?" 2
counts_match "event naming no probe" "$T/pb.trace" "$T/pb.expect"
has_re "event naming no probe: a corrupt record, named with its offset and index" "$T/pb.err" \
    "^race: $T/pb.trace: corrupt record at offset [0-9]+: names a probe the probes section does not hold \(kind 3, entry 0, probe 999\)$"
"$RACE" dump "$T/pb.trace" > "$T/pb.dump" 2>/dev/null
eq "event naming no probe: dump exits 2" "$?" 2
eq "event naming no probe: dump shows the 308 others" "$(grep -cE '^ +[0-9]+\.[0-9]{3} ' "$T/pb.dump")" 308

cp "$p" "$T/pk.trace"
put_le "$T/pk.trace" $(( $(prec 0) + 4 )) 1 9
"$RACE" stats "$T/pk.trace" > "$T/pk.stats" 2> "$T/pk.err"
eq "probe of unknown kind: exits 2" "$?" 2
has_line "probe of unknown kind: named with its offset" "$T/pk.err" \
    "race: $T/pk.trace: probe record 0 at offset $(prec 0) is corrupt (kind 9, role 1)"
has_re "probe of unknown kind: its 4 events are corrupt" "$T/pk.err" \
    "^race: $T/pk.trace: 4 corrupt records in all, the first at offset [0-9]+ \(names a probe whose record is corrupt\)$"
has_line "probe of unknown kind: counted" "$T/pk.stats" \
    "  probes       5 records (1 incomplete, 1 corrupt, 0 did not fit)"
has_line "probe of unknown kind: left out of the totals" "$T/pk.stats" \
    "  watched      rb_vm_ci_lookup: 3 probes (3 breakpoint), 1 refused, 16 hits"
cp "$p" "$T/pr.trace"
put_le "$T/pr.trace" $(( $(prec 2) + 5 )) 1 0
"$RACE" stats "$T/pr.trace" > /dev/null 2> "$T/pr.err"
eq "probe of unknown role: exits 2" "$?" 2
has_line "probe of unknown role: named with its offset" "$T/pr.err" \
    "race: $T/pr.trace: probe record 2 at offset $(prec 2) is corrupt (kind 2, role 0)"

cp "$p" "$T/pf.trace"
printf 'A%.0s' {1..48} | dd of="$T/pf.trace" bs=1 seek=$(( $(prec 1) + 24 )) conv=notrunc status=none
"$RACE" dump "$T/pf.trace" > "$T/pf.dump" 2> "$T/pf.err"
eq "unterminated func: exits 2" "$?" 2
has_line "unterminated func: the field's offset" "$T/pf.err" \
    "race: $T/pf.trace: probe record 1: func at offset $(( $(prec 1) + 24 )) is not NUL-terminated within its 48 bytes"
eq "unterminated func: its 2 enter events left out" "$(grep -cE '^ +[0-9]+\.[0-9]{3} ' "$T/pf.dump")" 308
cp "$p" "$T/pz.trace"
put_le "$T/pz.trace" $(( $(prec 3) + 24 )) 1 0
"$RACE" stats "$T/pz.trace" > /dev/null 2> "$T/pz.err"
has_line "empty func: a problem" "$T/pz.err" \
    "race: $T/pz.trace: probe record 3: func at offset $(( $(prec 3) + 24 )) is empty"
cp "$p" "$T/pt.trace"
printf 'B%.0s' {1..120} | dd of="$T/pt.trace" bs=1 seek=$(( $(prec 2) + 72 )) conv=notrunc status=none
"$RACE" stats "$T/pt.trace" > "$T/pt.stats" 2> "$T/pt.err"
eq "unterminated detail: exits 2" "$?" 2
eq "unterminated detail: the only problem, the field's offset named" "$(cat "$T/pt.err")" \
    "race: $T/pt.trace: probe record 2: detail at offset $(( $(prec 2) + 72 )) is not NUL-terminated within its 120 bytes"
has_line "unterminated detail: the record still counts" "$T/pt.stats" \
    "  watched      rb_vm_ci_lookup: 4 probes (1 entry-hook, 3 breakpoint), 1 refused, 116 hits"
has_line "unterminated detail: shown up to its field's end" "$T/pt.stats" \
    "    #2     breakpoint  check           0 0x0000555555601024          5  $(printf 'B%.0s' {1..119})"

cp "$p" "$T/pu.trace"
put_le "$T/pu.trace" "$po" 8 20
"$RACE" stats "$T/pu.trace" > "$T/pu.stats" 2> "$T/pu.err"
eq "probes that did not fit: exits 0 (a full section is no damage)" "$?" 0
eq "probes that did not fit: a note, how many" "$(cat "$T/pu.err")" \
    "race: $T/pu.trace: note: the probes section is full (used 20, cap 16 at offset $po): 4 probes did not fit and were not recorded"
has_line "probes that did not fit: counted" "$T/pu.stats" \
    "  probes       6 records (10 incomplete, 0 corrupt, 4 did not fit)"
"$RACE" stats --json "$T/pu.trace" > "$T/pu.json" 2>/dev/null
eq "probes that did not fit --json: dropped" "$(jget "$T/pu.json" traces.0.probe_records.dropped)" 4
cp "$p" "$T/pc.trace"
put_le "$T/pc.trace" $(( po + 8 )) 8 100
"$RACE" stats "$T/pc.trace" > /dev/null 2> "$T/pc.err"
eq "probes cap past the section: exits 2" "$?" 2
eq "probes cap past the section: named" "$(cat "$T/pc.err")" \
    "race: $T/pc.trace: probes cap 100 at offset $(( po + 8 )) exceeds its section's room for 16"

cp "$p" "$T/ps.trace"
put_le "$T/ps.trace" 120 8 999999
"$RACE" stats "$T/ps.trace" > "$T/ps.stats" 2> "$T/ps.err"
eq "probes section past the end: exits 2" "$?" 2
has_line "probes section past the end: the section table entry named" "$T/ps.err" \
    "race: $T/ps.trace: probes section [$po, +999999) ends past the file's $(stat -c %s "$p") bytes (section table entry at offset 112)"
has_re "probes section past the end: its 10 events are corrupt" "$T/ps.err" \
    "^race: $T/ps.trace: 10 corrupt records in all, the first at offset [0-9]+ \(names a probe, but the probes section is unreadable\)$"
has_line "probes section past the end: said" "$T/ps.stats" "  probes       unreadable"
cp "$p" "$T/po.trace"
put_le "$T/po.trace" 112 8 "$(awk '$1 == "findings_off" {print $2}' "$T/p.expect")"
"$RACE" stats "$T/po.trace" > /dev/null 2> "$T/po.err"
eq "probes section over the findings: exits 2" "$?" 2
has_line "probes section over the findings: named" "$T/po.err" \
    "race: $T/po.trace: probes section at offset $(awk '$1 == "findings_off" {print $2}' "$T/p.expect") overlaps the findings section"
cp "$p" "$T/p0.trace"
put_le "$T/p0.trace" 112 8 0
put_le "$T/p0.trace" 120 8 0
"$RACE" stats "$T/p0.trace" > /dev/null 2> "$T/p0.err"
eq "events but no probes section: exits 2" "$?" 2
has_re "events but no probes section: corrupt records" "$T/p0.err" \
    "^race: $T/p0.trace: corrupt record at offset [0-9]+: names a probe, but the trace has no probes section \(kind 3, entry 0, probe 0\)$"

head -c $(prec 2) "$p" > "$T/pcut.trace"
"$RACE" stats "$T/pcut.trace" > "$T/pcut.stats" 2> "$T/pcut.err"
eq "truncated probes section: exits 2" "$?" 2
eq "truncated probes section: only the truncation is a problem" "$(cat "$T/pcut.err")" \
    "race: $T/pcut.trace: truncated at offset $(prec 2) (header says $(stat -c %s "$p") bytes); reading what is there"
has_line "truncated probes section: events whose probe was cut stay valid" "$T/pcut.stats" \
    "  records      310 valid, 0 torn or incomplete, 0 corrupt"
has_line "truncated probes section: what was lost" "$T/pcut.stats" \
    "  probes       2 records; 5 lost past the end of the file"
has_line "truncated probes section: the events that lost their probe" "$T/pcut.stats" \
    "  4 watched-function events name probe records lost past the end of the file"
"$RACE" dump "$T/pcut.trace" > "$T/pcut.dump" 2>/dev/null
has_line "truncated probes section: dump says the probe was lost" "$T/pcut.dump" \
    "         1.200     1001       1        3  hit   ? (probe 2 lost)          0x0000555555601024 0x7f0000003000                0x0       -  probe 2"
"$RACE" dump --json "$T/pcut.trace" > "$T/pcut.jsonl" 2>/dev/null
eq "truncated probes section: dump --json: function null" "$(jline "$T/pcut.jsonl" 3 probe.function)" null
eq "truncated probes section: dump --json: index kept" "$(jline "$T/pcut.jsonl" 3 probe.index)" 2
"$ASAN" stats --json "$T/pcut.trace" > /dev/null 2> "$T/pcut.asan"
eq "race-asan: truncated probes section exits 2" "$?" 2

# ---- Truncated, foreign, unknown version, missing ----
head -c 100000 "$a" > "$T/t.trace"
"$RACE" stats "$T/t.trace" > "$T/t.stats" 2> "$T/t.err"
eq "truncated: exits 2" "$?" 2
eq "truncated: says where and what the header expected" "$(cat "$T/t.err")" \
    "race: $T/t.trace: truncated at offset 100000 (header says $(stat -c %s "$a") bytes); reading what is there"
has_line "truncated: still reads the two whole chunks" "$T/t.stats" \
    "  records      200 valid, 0 torn or incomplete, 0 corrupt"
has_line "truncated: says what was lost" "$T/t.stats" \
    "  truncation   0 reserved records and 6 chunks lost past the end of the file"

cp "$a" "$T/v.trace"
printf 'c' | dd of="$T/v.trace" bs=1 seek=8 conv=notrunc status=none
"$RACE" stats "$T/v.trace" > "$T/v.stats" 2> "$T/v.err"
eq "version 99: exits 2" "$?" 2
eq "version 99: refused, naming the version" "$(cat "$T/v.err")" \
    "race: $T/v.trace: unsupported trace version 99 at offset 8 (this race reads versions 2 to $version)"

echo "not a trace at all" > "$T/foreign.trace"
"$RACE" dump "$T/foreign.trace" > /dev/null 2> "$T/f.err"
eq "foreign file: exits 2" "$?" 2
eq "foreign file: bad magic" "$(cat "$T/f.err")" "race: $T/foreign.trace: not a race trace (bad magic at offset 0)"

"$RACE" stats "$a" "$T/missing.trace" "$T/o.trace" > "$T/multi.stats" 2> "$T/multi.err"
eq "several traces, one missing: exits 2" "$?" 2
eq "several traces: the missing one named" "$(cat "$T/multi.err")" \
    "race: $T/missing.trace: cannot open: No such file or directory"
eq "several traces: the others still read" "$(grep -c '^  records ' "$T/multi.stats")" 2

# ---- Modules that changed since the trace was written ----
cp "$MK" "$T/mkgone"
"$T/mkgone" "$T/gone.trace" > /dev/null
rm -f "$T/mkgone"
"$RACE" dump --stacks "$T/gone.trace" > "$T/gone.dump" 2> "$T/gone.err"
eq "missing module: exits 0" "$?" 0
eq "missing module: one note" "$(cat "$T/gone.err")" \
    "race: $T/gone.trace: note: $T/mkgone: no longer exists; its frames are shown as module+offset"
has_re "missing module: frames as module+offset" "$T/gone.dump" '^        #1 0x[0-9a-f]{16} in mkgone\+0x[0-9a-f]+$'
cp "$MK" "$T/mkswap"
"$T/mkswap" "$T/swap.trace" > /dev/null
cp "$BIN/reader_fuzz" "$T/mkswap"
"$RACE" dump --stacks "$T/swap.trace" > /dev/null 2> "$T/swap.err"
eq "rebuilt module: one note" "$(cat "$T/swap.err")" \
    "race: $T/swap.trace: note: $T/mkswap: build-id differs from the recorded one (the file changed since the trace was written); its frames are shown as module+offset"
"$MK" --empty-exe-path "$T/e.trace" > /dev/null
"$RACE" dump --stacks "$T/e.trace" > "$T/e.dump" 2>&1
has_re "main program recorded without a path: found through the header's exe" "$T/e.dump" \
    "$(printf "$fr" 1 mk_leaf "$leaf")"

"$MK" --remap "$T/r.trace" > /dev/null
"$RACE" dump --stacks "$T/r.trace" > "$T/r.dump" 2> "$T/r.err"
eq "reused range: exits 0" "$?" 0
sed -n '3,10p' "$T/r.dump" > "$T/r.first"
has_re "reused range: events before the reuse use the older module" "$T/r.first" \
    "$(printf "$fr" 1 mk_leaf "$leaf")"
tail -8 "$T/r.dump" > "$T/r.last"
has_re "reused range: events after it use the newer one" "$T/r.last" \
    '^        #1 0x[0-9a-f]{16} in remapped\.so\+0x[0-9a-f]+$'
eq "reused range: one note for the newer module's missing file" "$(cat "$T/r.err")" \
    "race: $T/r.trace: note: /nonexistent/remapped.so: no longer exists; its frames are shown as module+offset"

# ---- Usage: help, version, errors word for word ----
usage_is() { # usage_is NAME WANT-STDERR-FIRST-LINE ARGS...
    local name=$1 want=$2; shift 2
    "$RACE" "$@" > "$T/u.out" 2> "$T/u.err"
    local rc=$?
    eq "usage: $name: exit 64" "$rc" 64
    eq "usage: $name: message" "$(cat "$T/u.err")" "$want
Try 'race --help'."
    eq "usage: $name: nothing on stdout" "$(cat "$T/u.out")" ""
}
usage_is "no command" "race: no command given"
usage_is "unknown command" "race: unknown command 'frob'" frob "$a"
usage_is "unknown option" "race: unknown option '--frob'" --frob
usage_is "unknown command option" "race stats: unknown option '--frob'" stats --frob "$a"
usage_is "--stacks is dump's" "race report: unknown option '--stacks'" report --stacks "$a"
usage_is "no trace" "race dump: no trace file given" dump --json
usage_is "help for an unknown command" "race help: unknown command 'frob'" help frob
for args in "--help" "-h" "help" "help stats" "help dump" "help report" "stats --help" \
    "dump -h" "report $a --help"; do
    # shellcheck disable=SC2086 # words meant to split
    "$RACE" $args > "$T/h.out" 2> "$T/h.err"
    rc=$?
    eq "help: 'race $args' exits 0" "$rc" 0
    check "help: 'race $args' prints usage on stdout, nothing on stderr" \
        bash -c "head -1 '$T/h.out' | grep -q '^Usage: race' && [ ! -s '$T/h.err' ]"
done
"$RACE" --help > "$T/h.out"
check "help: documents exit status 64" grep -qE '^  64  usage error$' "$T/h.out"
check "help: documents exit status 2" grep -qE '^  2   a trace is unreadable, corrupt or truncated' "$T/h.out"
eq "--version" "$("$RACE" --version)" "race 0.1 (reads trace format version $version)"
finish
