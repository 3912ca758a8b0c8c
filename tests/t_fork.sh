# fork: 200 forks while 4 threads allocate; no deadlock (the target has a 120 s
# alarm), every child writes a complete trace of its own (its pid, its parent, the
# fork flag, closed at exit, its ten 777-byte frees) and the parent's is complete too.
source tests/lib.sh
out=$(env LD_PRELOAD="$SHIM" RACE_DIR="$T" RACE_RING_MB=1 RACE_DEPOT_MB=1 "$BIN/fork_stress" 200 4 2>/dev/null)
rc=$?
eq "200 forks with 4 allocating threads: no deadlock, every child exited 0" "$rc" 0
parent=$(echo "$out" | awk '/^parent/ {print $2}')
eq "201 trace files" "$(ls "$T"/race.*.trace | wc -l)" 201
"$RACE" stats --json "$T"/race.*.trace > "$T/stats.json" 2> "$T/stats.err"
eq "race stats reads all 201" "$?" 0
res=$(ruby -rjson -e '
    parent = ARGV[0].to_i
    docs = JSON.parse(STDIN.read)["traces"]
    kids = docs.select { |d| d["ppid"] == parent }
    par = docs.select { |d| d["pid"] == parent }
    bad = []
    bad << "#{kids.size} child traces" unless kids.size == 200
    bad << "parent trace missing" unless par.size == 1
    kids.each do |d|
      bad << "child #{d["pid"]}: not forked" unless d["forked"] == true
      bad << "child #{d["pid"]}: not closed" unless d["closed"] == true
      bad << "child #{d["pid"]}: unreadable" unless d["readable"] == true && d["problems"] == 0
    end
    bad << "parent not closed" unless par.all? { |d| d["closed"] == true && d["forked"] == false }
    puts bad.first(5).join("; ")' "$parent" < "$T/stats.json")
eq "every child trace: its parent's pid, the fork flag, closed at exit" "$res" ""
# each child's own frees: ten blocks of 777 bytes (usable size 792), and nothing of its parent's
bad=0
for f in $(ls "$T"/race.*.trace | grep -v "\.$parent\.trace" | head -20); do
    n=$("$RACE" dump --json "$f" | ruby -rjson -e 'n = 0; STDIN.each_line { |l| e = JSON.parse(l); n += 1 if e["kind"] == "free" && e["size"].between?(777, 800) }; puts n')
    [ "$n" -ge 10 ] || bad=$((bad + 1))
done
eq "20 child traces sampled: each holds its ten 777-byte frees" "$bad" 0
finish
