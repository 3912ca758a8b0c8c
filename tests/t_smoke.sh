#!/usr/bin/env bash
# t_smoke.sh - the CI smoke test (`make smoke`, also part of `make test`), well under two
# minutes: a Ractor workload under the shim on Debian's ruby must give a valid trace
# with Ractor ids and no finding, and a program with a known use after free must give
# exactly that one finding, with the reading and freeing functions, through `race run`.
. tests/lib.sh
RUBY=${RACE_SMOKE_RUBY:-/usr/bin/ruby}

"$RACE" run -d "$T/ractors" --keep=all -- "$RUBY" examples/ractor_churn.rb 3 20000 > "$T/churn.out" 2> "$T/churn.err"
eq "Ractor workload under race run: status 0 (no findings)" "$?" 0
eq "Ractor workload: its output" "$(grep -c '^ractor ' "$T/churn.out")" 3
f=$(one_trace "$T/ractors")
"$RACE" stats --json "$f" > "$T/stats.json" 2> "$T/stats.err"
eq "the trace is valid (race stats exit 0)" "$?" 0
eq "no damage: 0 torn, 0 corrupt records" \
    "$(ruby -rjson -e 't = JSON.parse(STDIN.read)["traces"][0]; puts "#{t["records"]["torn"]} #{t["records"]["corrupt"]}"' < "$T/stats.json")" "0 0"
eq "Ractor ids validated at start-up" \
    "$(ruby -rjson -e 'puts JSON.parse(STDIN.read)["traces"][0]["ractor_state"]' < "$T/stats.json")" valid
ids=$("$RACE" dump --json "$f" 2>/dev/null | ruby -rjson -e 'ids = {}; STDIN.each_line { |l| e = JSON.parse(l); ids[e["ractor"]] = 1 if e["ractor"].to_i > 1 }; puts ids.size')
ge "frees from >= 3 Ractors besides the main one" "$ids" 3
check "0 findings in the report" grep -q '^0 findings$' "$T/churn.err"

"$RACE" run -d "$T/bug" --guard-sites=make_victim --on-finding=continue -- "$BIN/uaf_threads" read > /dev/null 2> "$T/bug.err"
eq "known bug: race run exits 66 (findings)" "$?" 66
"$RACE" report --json "$T"/bug/race.*.trace > "$T/bug.json" 2>/dev/null
eq "known bug: exactly one finding, a heap-use-after-free read, in use_victim, freed in free_victim" \
    "$(ruby -rjson -e 'r = JSON.parse(STDIN.read); f = r["findings"]; puts [f.size, f.map { |x| [x["type"], x["access"], x["stack"][0]["function"], x["free"]["stack"][0]["function"]] }].flatten.join(" ")' < "$T/bug.json")" \
    "1 heap-use-after-free read use_victim free_victim"
finish
