# lib.sh - shared by the test scripts: assertions that print TAP-style lines, a
# scratch directory removed on exit, and the paths of what `make` built.
# Scripts run from the repository root.
set -u
ROOT=$(pwd)
SHIM=$ROOT/shim/librace.so
RACE=$ROOT/analyze/race
BIN=$ROOT/tests/bin
T=$(mktemp -d "${TMPDIR:-/tmp}/race-test.XXXXXX")
trap 'rm -rf "$T"' EXIT
FAILS=0

ok() { echo "ok - $1"; }
not_ok() { echo "not ok - $1: $2"; FAILS=$((FAILS + 1)); }
# check NAME CONDITION-COMMAND... : ok when the command succeeds
check() {
    local name=$1; shift
    if "$@"; then ok "$name"; else not_ok "$name" "failed: $*"; fi
}
# eq NAME GOT WANT
eq() {
    if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "got '$2', want '$3'"; fi
}
# ge NAME GOT MIN
ge() {
    if [ "$2" -ge "$3" ] 2>/dev/null; then ok "$1"; else not_ok "$1" "got '$2', want >= $3"; fi
}
finish() { [ "$FAILS" -eq 0 ]; exit $?; }
# the one trace file in a directory
one_trace() { ls "$1"/race.*.trace 2>/dev/null | head -1; }

# ruby_checks LABEL RUBY: the Ractor workloads on one Ruby under the shim. Output must
# equal a run without the shim; frees must carry >= 3 distinct non-zero Ractor ids;
# each Ractor's own marked free must carry the id Ruby itself reports for it.
ruby_checks() {
    local label=$1 ruby=$2 d=$T/$1
    mkdir -p "$d"
    "$ruby" examples/ractor_churn.rb 3 20000 > "$d/plain.out" 2>&1
    env LD_PRELOAD="$SHIM" RACE_DIR="$d" "$ruby" examples/ractor_churn.rb 3 20000 > "$d/shim.out" 2> "$d/shim.err"
    local rc=$?
    eq "$label: churn exits 0 under the shim" "$rc" 0
    check "$label: output identical with and without the shim" cmp -s "$d/plain.out" "$d/shim.out"
    # Ruby before 3.3 has no call-info table: rb_vm_ci_lookup is not watched, silently
    eq "$label: no notice from the shim" "$(grep '^race:' "$d/shim.err")" ""
    local f; f=$(one_trace "$d")
    check "$label: trace written" test -s "$f"
    "$RACE" stats "$f" > "$d/stats.txt" 2>&1
    eq "$label: race stats reads it" "$?" 0
    "$RACE" dump --json "$f" > "$d/dump.jsonl" 2> "$d/dump.err"
    eq "$label: race dump reads it" "$?" 0
    local ids
    ids=$(ruby -rjson -e 'ids = {}; STDIN.each_line { |l| e = JSON.parse(l); ids[e["ractor"]] = 1 if e["kind"] == "free" && e["ractor"].to_i > 0 }; puts ids.size' < "$d/dump.jsonl")
    ge "$label: frees carry >= 3 distinct non-zero Ractor ids" "$ids" 3
    "$RACE" stats --json "$f" > "$d/stats.json" 2>&1
    eq "$label: Ractor-id offsets validated at start-up" \
        "$(ruby -rjson -e 'puts JSON.parse(STDIN.read)["traces"][0]["ractor_state"]' < "$d/stats.json")" valid

    # Then with every allocation of 400-1024 bytes guarded: a new Ractor's rb_ractor_t
    # (520 bytes on 3.4.5) and its thread's root fiber, which holds the execution context
    # (592), are then live guarded blocks, which the Ractor-id read must read like any
    # other (it once refused every pool address: id 0, about 1 run in 50 under load).
    local cfg
    for cfg in "" "RACE_GUARD_SAMPLE=1 RACE_GUARD_SIZES=400-1024"; do
        rm -f "$d"/race.*.trace
        env LD_PRELOAD="$SHIM" RACE_DIR="$d" $cfg "$ruby" tests/ruby/ractor_ids.rb > "$d/ids.out" 2>/dev/null
        f=$(one_trace "$d")
        "$RACE" dump --json "$f" > "$d/ids.jsonl" 2>/dev/null
        local bad
        bad=$(ruby -rjson -e '
            evs = File.readlines(ARGV[1]).map { |l| JSON.parse(l) }.select { |e| e["kind"] == "free" }
            File.readlines(ARGV[0]).each do |line|
              id, size = line.split.map(&:to_i)
              hits = evs.select { |e| e["size"].to_i > size && e["size"].to_i <= size + 64 && e["entry"].to_s.start_with?("ruby_") }
              if hits.empty? then puts "no free of #{size} bytes"
              elsif hits.any? { |e| e["ractor"] != id } then puts "free of #{size} bytes: ractor #{hits.map { |e| e["ractor"] }.inspect}, Ruby says #{id}"
              end
            end' "$d/ids.out" "$d/ids.jsonl")
        eq "$label: $(wc -l < "$d/ids.out") Ractors: each marked free carries Ruby's own Ractor id${cfg:+ ($cfg)}" "$bad" ""
    done
}

# build_uafext: the test C extension (tests/ruby/uafext) built against Debian's ruby
# into $T/ext (log: $T/ext.log); ruby -I"$T/ext" then loads it.
build_uafext() {
    mkdir -p "$T/ext"
    cp tests/ruby/uafext/uafext.c tests/ruby/uafext/extconf.rb "$T/ext/"
    (cd "$T/ext" && ruby extconf.rb && make) > "$T/ext.log" 2>&1
}

# sarif_valid NAME LOG: LOG is valid against the SARIF 2.1.0 schema (python3-jsonschema)
# and draws no error from the SARIF multitool's SARIF and GitHub code scanning rules
# (both installed once by tests/sarif/tools.sh).
sarif_valid() {
    local tools v check="/usr/bin/python3 $ROOT/tests/sarif/check.py"
    tools=$(cd "$ROOT" && tests/sarif/tools.sh) || { not_ok "$1: SARIF validators installed" "tests/sarif/tools.sh failed"; return; }
    v=$($check schema "$2" "$tools/sarif-2.1.0.json" 2>&1)
    eq "$1: valid against the SARIF 2.1.0 schema" "$v" valid
    (cd "$T" && "$tools/Sarif.Multitool" validate --rule-kind "Sarif;Gh;Ghas" "$2" \
        -o "$T/validate.sarif" --log ForceOverwrite > "$T/validate.txt" 2>&1)
    if [ -s "$T/validate.sarif" ]; then
        v=$($check errors "$T/validate.sarif" 2>&1)
        eq "$1: no error from the multitool's SARIF and GitHub code scanning rules" "$v" ""
    else
        not_ok "$1: the multitool validated it" "$(tail -3 "$T/validate.txt")"
    fi
    rm -f "$T/validate.sarif"
}
