# Ruby 3.3.8 built from Debian's ruby3.3 source package (3.3.8-2, trixie) with symbols,
# once, into the cache outside the checkout (scripts/build-ruby.sh 3.3): Ractor ids on
# FREE events; rb_vm_ci_lookup watched at every instance with the stale call-info check
# and its slot check; and the call-info kwarg use-after-free 3.3.8 shares with 3.4.5
# (Bug #22075) reported by the default configuration.
source tests/lib.sh
ruby=$(scripts/build-ruby.sh 3.3)
if [ ! -x "$ruby" ]; then
    not_ok "ruby 3.3.8 build" "scripts/build-ruby.sh 3.3 failed; see its log under ~/.cache/race"
    finish
fi
eq "ruby 3.3.8 built" "$("$ruby" -e 'print RUBY_VERSION')" 3.3.8
ruby_checks ruby3.3 "$ruby"

# The default configuration watches rb_vm_ci_lookup: the out-of-line function and its
# inlined copies, the check sites on their kwarg->references++ (found in the machine
# code at the layout's kwarg_refs), and, since 3.3's imemo type of a call-info is known,
# the sweep of call-info slots (rb_vm_ci_free).
mkdir -p "$T/w"
env LD_PRELOAD="$SHIM" RACE_DIR="$T/w" "$ruby" -e 'puts 1' > /dev/null 2> "$T/w/err"
eq "ruby 3.3.8: no notice by default" "$(grep -c '^race:' "$T/w/err")" 0
"$RACE" stats --json "$(one_trace "$T/w")" | ruby -rjson -e '
    t = JSON.parse(STDIN.read)["traces"][0]
    ps = (t["probes"] || []).reject { |p| p["kind"] == "refused" }
    l = ps.select { |p| p["function"] == "rb_vm_ci_lookup" }
    puts l.size, l.count { |p| p["role"] == "inlined" }, l.count { |p| p["role"] == "check" },
         ps.count { |p| p["function"] == "rb_vm_ci_free" }' > "$T/w/probes"
{ read -r n; read -r inl; read -r chk; read -r free; } < "$T/w/probes"
ge "ruby 3.3.8: rb_vm_ci_lookup probed ($n probes)" "$n" 2
ge "ruby 3.3.8: check sites on its kwarg->references++ ($chk)" "$chk" 1
eq "ruby 3.3.8: the call-info sweep (rb_vm_ci_free) probed" "$free" 1

# The real bug, in the default abort mode: a stale-call-info finding, then race ends the
# process (status 134). On 3.3.8 the race is rarer than on 3.4.5: with the default 4 x
# 3000 rounds race reported it in 2 of 20 runs (bench/results-stale-ci.md), so the
# test runs 4 Ractors x 20000 rounds, where race reported it in 9 of 12 runs (2026-12-04,
# load 8-12: the loop below by hand). Bound: the 95% one-sided lower confidence bound
# on the per-run rate for 9 of 12 is 0.473 (Clopper-Pearson), a miss rate of at most
# 0.527 per run; 22 independent runs all miss with probability <= 0.527^22 = 7.6e-7. A run
# that reports ends at once, so a passing test usually takes one or two runs.
RUNS=22
mkdir -p "$T/bug"
got="" rc=""
for i in $(seq $RUNS); do
    rm -f "$T"/bug/race.*.trace
    timeout -k 2 120 env LD_PRELOAD="$SHIM" RACE_DIR="$T/bug" "$ruby" examples/kwarg_super.rb 4 20000 > /dev/null 2> "$T/bug/err"
    rc=$?
    if grep -q '==ERROR: race: stale-call-info' "$T/bug/err"; then got=$i; break; fi
done
check "ruby 3.3.8 real bug: a stale-call-info finding within $RUNS runs (run ${got:-none})" test -n "$got"
eq "ruby 3.3.8 real bug: race aborts the process after its report" "$rc" 134
"$RACE" report --json "$T"/bug/race.*.trace > "$T/bug/report.json" 2> /dev/null
where=$(ruby -rjson -e 'f = JSON.parse(File.read(ARGV[0]))["findings"].find { |x| x["type"] == "stale-call-info" }
    exit 1 unless f
    fns = f["stack"].map { |s| s["function"].to_s }
    puts [f["ractor"] > 1 ? "ractor" : "main", fns.first(6).join(",")].join(" ")' "$T/bug/report.json")
check "ruby 3.3.8 real bug: race report reads the finding from the trace ($where)" test -n "$where"
finish
