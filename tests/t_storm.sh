# A storm of findings in RACE_ON_FINDING=continue (tests/storm_target.c): threads free
# a guarded block and read it, thousands of times, as guarded slots come back. Each
# distinct finding (type, pc, block) is reported once and counted after: the trace's
# counts add up to the reads that faulted, race report shows them; stderr holds at most
# 16 full reports, one summary line a second and one at exit; reports never interleave.
# The run time against the same program with nothing to report is a benchmark
# (bench/storm.sh), not asserted here.
source tests/lib.sh

# RACE_GUARD_SAMPLE=0: only storm_victim's blocks are guarded (a sampled block that
# stayed live would hold a slot, and the serial run's 40 blocks would be 39)
THREADS=4 ITERS=1500
READS=$((THREADS * ITERS))
# storm NAME MODE SLOTS: the target under the shim; $T/NAME/{out,err,tr/}, rc, elapsed s
storm() {
    local d=$T/$1 t0 t1
    mkdir -p "$d/tr"
    t0=$(date +%s%N)
    timeout -k 2 120 env LD_PRELOAD="$SHIM" RACE_DIR="$d/tr" RACE_GUARD_SITES=storm_victim \
        RACE_GUARD_SIZES=48-48 RACE_GUARD_SLOTS="$3" RACE_GUARD_SAMPLE=0 RACE_WATCH=none \
        RACE_ON_FINDING=continue \
        "$BIN/storm_target" "$2" "$THREADS" "$ITERS" > "$d/out" 2> "$d/err"
    rc=$?
    t1=$(date +%s%N)
    elapsed=$(( (t1 - t0 + 999999999) / 1000000000 )) # whole seconds, rounded up
}
# facts NAME: from race report --json: findings, distinct (type, pc, block), types,
# pcs, sum of counts
facts() {
    "$RACE" report --json "$T/$1"/tr/race.*.trace 2>/dev/null | ruby -rjson -e '
        f = JSON.parse(STDIN.read)["findings"]
        puts f.size, f.map { |x| [x["type"], x["pc"], x.dig("block", "addr")] }.uniq.size,
             f.map { |x| x["type"] }.uniq.join(","), f.map { |x| x["pc"] }.uniq.size,
             f.sum { |x| x["count"] }'
}
nocomma() { tr -d ,; }

# ---- One iteration at a time: every read faults exactly once (storm_target.c) ------
storm serial serial 40
eq "serial: exits 0" "$rc" 0
eq "serial: every read faulted and came back poisoned" "$(cat "$T/serial/out")" "reads $READS poisoned $READS"
mapfile -t F < <(facts serial)
# 40 slots, one block size: 40 blocks, each read at the one pc of storm_read
eq "serial: 40 findings recorded, one per (type, pc, block)" "${F[0]:-} ${F[1]:-}" "40 40"
eq "serial: all heap-use-after-free at one pc" "${F[2]:-} ${F[3]:-}" "heap-use-after-free 1"
eq "serial: the counts add up to the reads" "${F[4]:-}" "$READS"
e=$T/serial/err
eq "serial: 16 reports in full on stderr" "$(grep -c '^==[0-9]*==ERROR: race: ' "$e")" 16
exitline=$(grep '^race: .* more findings were not printed' "$e")
eq "serial: one summary at exit" "$(grep -c '^race: .* more findings were not printed' "$e")" 1
eq "serial: it counts what was not printed" \
    "$(echo "$exitline" | sed 's/^race: \([0-9,]*\) more.*/\1/' | nocomma)" $((READS - 16))
eq "serial: it names the repeats" \
    "$(echo "$exitline" | sed 's/.*(\([0-9,]*\) repeats of 40 findings, 24 new past the first 16).*/\1/' | nocomma)" \
    $((READS - 40))
# the first when the first finding goes unprinted, then >= 1 s apart: in D seconds at
# most floor(D) + 1 <= elapsed + 1
running=$(grep -c '^race: .* more findings not printed so far' "$e")
check "serial: at most one summary line a second while it lasts ($running in ${elapsed}s)" \
    test "$running" -ge 1 -a "$running" -le $((elapsed + 1))
# 16 reports of ~1.5 KB and the summaries; unbounded, 6000 reports would be ~9 MB
bytes=$(wc -c < "$e")
check "serial: stderr bounded ($bytes bytes <= 64 KiB)" test "$bytes" -le 65536
"$RACE" report "$T"/serial/tr/race.*.trace > "$T/serial/report" 2>&1
eq "serial: race report exits 1" "$?" 1
check "serial: race report groups the 40 (same use and free stacks)" \
    grep -q '^(this finding, with the same use and free stacks, was seen 40 times)$' "$T/serial/report"
more=$(echo $((READS - 1)) | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta') # 5,999
check "serial: race report shows the count (and $more more times)" \
    grep -q "^and $more more times (the same finding: type, pc and block)$" "$T/serial/report"

# ---- Concurrent: the threads fault at the same time -------------------------------
storm conc storm 64
eq "concurrent: exits 0" "$rc" 0
reads=$(awk '{print $2}' "$T/conc/out") poisoned=$(awk '{print $4}' "$T/conc/out")
mapfile -t F < <(facts conc)
eq "concurrent: each (type, pc, block) recorded once" "${F[1]:-x}" "${F[0]:-y}"
# Exact counts are the serial run's: here a thread preempted between its free and its
# read for a whole round of the 60 other slots reads a block that is its slot's next
# tenant's (a read that sees poison another thread's fault put there, or faults on a
# block it never freed). Every iteration's free still leaves a PROT_NONE page whose
# first read faults unless the slot is reused first, so the counts go far past the 64
# findings: repeats were counted, not reported.
ge "concurrent: repeats were counted (${F[4]:-0} sightings of ${F[0]:-0} findings; $poisoned of $reads reads saw poison)" \
    "${F[4]:-0}" $(( ${F[0]:-0} * 10 ))
ge "concurrent: poison was seen" "${poisoned:-0}" 1
e=$T/conc/err
check "concurrent: at most 16 reports in full" test "$(grep -c '^==[0-9]*==ERROR: race: ' "$e")" -le 16
bytes=$(wc -c < "$e")
check "concurrent: stderr bounded ($bytes bytes <= 64 KiB)" test "$bytes" -le 65536
# no interleaving: from each headline to its "race: recorded in" line, only the
# report's own lines, and every report ends before the next begins
bad=$(awk '
    /^==[0-9]+==ERROR: race: / { if (inrep) { print NR": headline inside a report"; exit } inrep = 1; next }
    /^race: recorded in / { if (!inrep) { print NR": trailer outside a report"; exit } inrep = 0; next }
    inrep && !/^(    #[0-9]+ 0x[0-9a-f]+ \(.*\)|    \(no stack recorded\)|READ of size .*|0x[0-9a-f]+ is located .*|freed by thread .*|previously allocated by thread .*|SUMMARY: race: .*|)$/ {
        print NR": not a report line: " $0; exit }
    !inrep && /^    #/ { print NR": a frame outside a report"; exit }
    END { if (inrep && !bad) print "the last report is cut" }' "$e")
eq "concurrent: every report is whole and contiguous" "$bad" ""

finish
