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

# A watched Ruby (3.4.5: rb_vm_ci_lookup probed) that forks: the child's HIT events
# name probe records its own trace holds (its trace replaces the parent's mapping in
# place, probe records carried over), so it reads without corrupt records.
cache=${RACE_RUBY_CACHE:-${HOME:-/root}/.cache/race}
if [ -f "$cache/ruby-3.4.5/.race-complete" ]; then
    ruby34=$(scripts/build-ruby.sh plain)
    mkdir -p "$T/w"
    env LD_PRELOAD="$SHIM" RACE_DIR="$T/w" "$ruby34" -e 'pid = fork { 500.times { |i| eval("foo(a: i) rescue nil") } }; Process.wait(pid); exit $?.exitstatus' 2> /dev/null
    eq "a watched Ruby's fork child exits 0" "$?" 0
    "$RACE" stats --json "$T"/w/race.*.trace > "$T/w.json" 2> /dev/null
    eq "both traces read without problems" "$?" 0
    eq "the child's trace: its probe records, hits of its own, no corrupt record" \
        "$(ruby -rjson -e 'c = JSON.parse(STDIN.read)["traces"].find { |t| t["forked"] }
            puts [c["probe_records"]["count"] > 0, c["records"]["corrupt"], c["probes"].sum { |p| p["hits"].to_i } > 0].join(" ")' < "$T/w.json")" \
        "true 0 true"
else
    ok "a watched Ruby's fork child # SKIP Ruby 3.4.5 is not built (scripts/build-ruby.sh)"
fi
finish
