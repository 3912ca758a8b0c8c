#!/usr/bin/env bash
# t_reader.sh - the trace reader must survive any file: truncated at every interesting
# length, bit-flipped and field-smashed everywhere, fully random. Each variant goes through
# analyze/race-asan (ASan + UBSan, aborting on the first error): the exit status must be 0
# or 2 (report: 1 too, for findings), never a signal or a sanitizer report; a status of 2
# must name the file; a truncation must say "truncated at offset LEN". JSON output must
# still parse.
# Run from the repository root. Bounded to about a minute on 2 cores.
source tests/lib.sh

RACE=${RACE_ASAN:-$ROOT/analyze/race-asan}  # override: fuzz another build
MKTRACE=$BIN/mktrace
FUZZ=$BIN/reader_fuzz
SEED=${RACE_FUZZ_SEED:-20251123}
NFLIP=${RACE_FUZZ_FLIPS:-100}
NRAND=${RACE_FUZZ_RANDOM:-40}
BUDGET_S=${RACE_FUZZ_BUDGET_S:-50}

for b in "$RACE" "$MKTRACE" "$FUZZ"; do
    if [ ! -x "$b" ]; then
        not_ok "setup" "$b is missing (make analyze/race-asan tests/bin/mktrace tests/bin/reader_fuzz)"
        finish
    fi
done

out=$T
mkdir -p "$out/files" "$out/res" "$out/json"
ulimit -c 0

export ASAN_OPTIONS=abort_on_error=1:halt_on_error=1:detect_leaks=1:allocator_may_return_null=0
export UBSAN_OPTIONS=abort_on_error=1:halt_on_error=1:print_stacktrace=1
export RACE OUT="$out" DEADLINE=$(( $(date +%s) + BUDGET_S ))

# A small trace with every part populated: three threads, overwritten chunks, stacks of
# mktrace itself (so dump --stacks and report really symbolize), Ractor ids, findings (a
# stale call-info too), probe records and the enter/exit/hit events that name them.
if ! "$MKTRACE" --chunks 3 --threads 3 --events 700 --ruby --findings --stale-ci --probes \
    "$out/src.trace" >/dev/null; then
    not_ok "setup" "mktrace failed"
    finish
fi
if ! "$FUZZ" "$out/src.trace" "$out/files" "$SEED" "$NFLIP" "$NRAND" >"$out/list"; then
    not_ok "setup" "reader_fuzz failed"
    finish
fi

# One variant through every command. Prints one result line; "not ok" lines say why.
fuzz_one() {
    local kind=$1 arg=$2 file=$3 name
    name=$(basename "$file" .trace)
    if [ "$(date +%s)" -ge "$DEADLINE" ]; then
        echo "skip $kind $name" >"$OUT/res/$name"
        return 0
    fi
    local cmds=("stats" "stats --json" "dump --stacks" "dump --json --stacks" "report" "report --json")
    local c i=0 rc err why="" allowed
    for c in "${cmds[@]}"; do
        i=$((i + 1))
        err="$OUT/res/$name.$i.err"
        # The braces catch bash's own "Aborted" line, so that only results get printed.
        # shellcheck disable=SC2086 # the command words are meant to split
        { "$RACE" $c "$file" >"$OUT/json/$name.$i.out" 2>"$err"; rc=$?; } 2>/dev/null
        case "$c" in *--json*) ;; *) rm -f "$OUT/json/$name.$i.out" ;; esac
        allowed=" 0 2 "
        [[ $c == report* ]] && allowed=" 0 1 2 " # 1: findings
        if [ "$rc" -ge 128 ]; then
            why="'race $c' died of signal $((rc - 128))"
        elif [[ $allowed != *" $rc "* ]]; then
            why="'race $c' exited $rc"
        elif grep -qE 'Sanitizer|runtime error' "$err"; then
            why="'race $c': sanitizer report"
        elif [ "$rc" -eq 2 ] && ! grep -qF "race: $file:" "$err"; then
            why="'race $c' exited 2 without naming the file"
        elif [ "$kind" = trunc ] && [ "$rc" -ne 2 ]; then
            why="'race $c' exited $rc on a truncated file"
        elif [ "$kind" = trunc ] && ! grep -qF "truncated at offset $arg" "$err"; then
            why="'race $c' did not say 'truncated at offset $arg'"
        fi
        if [ -n "$why" ]; then
            echo "not ok $kind $name: $why (stderr: $(head -c 300 "$err" | tr '\n' '|'))" \
                >"$OUT/res/$name"
            return 0
        fi
        rm -f "$err"
    done
    echo "ok $kind $name" >"$OUT/res/$name"
}
export -f fuzz_one

# Kinds are interleaved (the first of each kind, then the second of each, ...) so that
# when a loaded machine runs out of the time budget every kind has had its share.
awk '{ n[$1]++; print n[$1], $0 }' "$out/list" | sort -n -s -k1,1 | cut -d' ' -f2- >"$out/order"

# Two jobs per core: the runs are short and half their time is process start-up.
jobs=$(( $(nproc 2>/dev/null || echo 2) * 2 ))
xargs -P "$jobs" -L 1 bash -c 'fuzz_one "$@"' _ <"$out/order"

for kind in trunc flip smash rand; do
    total=$(grep -c "^$kind " "$out/list")
    passed=$(cat "$out"/res/* 2>/dev/null | grep -c "^ok $kind ")
    skipped=$(cat "$out"/res/* 2>/dev/null | grep -c "^skip $kind ")
    bad=$(cat "$out"/res/* 2>/dev/null | grep "^not ok $kind " | head -5)
    if [ -n "$bad" ]; then
        while IFS= read -r line; do
            not_ok "reader survives $kind" "${line#not ok $kind }"
        done <<<"$bad"
    elif [ "$passed" -eq 0 ]; then
        not_ok "reader survives $kind" "no file checked"
    else
        note=""
        [ "$skipped" -gt 0 ] && note=", $skipped skipped: time budget"
        ok "reader survives $kind files ($passed of $total, 6 commands each$note)"
    fi
done

# Every JSON output, from every damaged file, must still parse: stats/report are one
# document, dump is JSON Lines.
validate='
bad = 0
ARGV.each do |f|
  text = File.read(f)
  begin
    if text.start_with?("{\"traces\"", "{\"findings\"")
      JSON.parse(text)
    else
      text.each_line { |l| JSON.parse(l) }
    end
  rescue JSON::ParserError => e
    bad += 1
    puts "#{File.basename(f)}: #{e.message[0, 200]}" if bad <= 3
  end
end
exit(bad == 0 ? 0 : 1)
'
json_files=$(find "$out/json" -name '*.out' -size +0 | head -2000)
if [ -z "$json_files" ]; then
    not_ok "JSON from damaged files parses" "no JSON output collected"
elif command -v ruby >/dev/null; then
    # shellcheck disable=SC2086
    if msg=$(ruby -rjson -e "$validate" $json_files 2>&1); then
        ok "JSON from damaged files parses ($(echo "$json_files" | wc -l) outputs)"
    else
        not_ok "JSON from damaged files parses" "$(echo "$msg" | tr '\n' '|')"
    fi
else
    # shellcheck disable=SC2086
    if msg=$(python3 -c '
import json, sys
bad = 0
for f in sys.argv[1:]:
    t = open(f, encoding="utf-8").read()
    try:
        if t.startswith(("{\"traces\"", "{\"findings\"")): json.loads(t)
        else: [json.loads(l) for l in t.splitlines()]
    except ValueError as e:
        bad += 1; print(f, e)
sys.exit(1 if bad else 0)' $json_files 2>&1); then
        ok "JSON from damaged files parses ($(echo "$json_files" | wc -l) outputs)"
    else
        not_ok "JSON from damaged files parses" "$(echo "$msg" | head -3 | tr '\n' '|')"
    fi
fi

finish
