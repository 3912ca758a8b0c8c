# The fuzzing corpus (tests/fuzz-corpus/: real traces shrunk by tests/fuzz_shrink.c, and
# what `make fuzz` found worth keeping) replayed through the reader's ASan+UBSan build
# (analyze/race-asan), as the fuzz target reads each input: race stats, race dump
# --stacks and race report, text and JSON. Each must end with a documented status (0;
# 1 for report's findings; 2 for a damaged trace) and no sanitizer report.
source tests/lib.sh
ASAN=$ROOT/analyze/race-asan
if [ ! -x "$ASAN" ]; then
    not_ok "setup" "$ASAN is missing (make analyze/race-asan)"
    finish
fi
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=0:exitcode=86 UBSAN_OPTIONS=halt_on_error=1:exitcode=86
n=0 bad=""
for f in tests/fuzz-corpus/*; do
    n=$((n + 1))
    for cmd in "stats" "stats --json" "dump --stacks" "dump --json --stacks" "report" "report --json"; do
        timeout -k 2 60 "$ASAN" $cmd "$f" > /dev/null 2> "$T/err"
        rc=$?
        case "$cmd/$rc" in
        stats*/0 | stats*/2 | dump*/0 | dump*/2 | report*/0 | report*/1 | report*/2) ;;
        *) bad="$bad $(basename "$f"):'$cmd'=$rc"
           grep -m3 'ERROR\|runtime error' "$T/err" | sed 's/^/# /' ;;
        esac
    done
done
ge "the corpus has inputs" "$n" 9
eq "every input read by every command: documented status, no sanitizer report" "$bad" ""
finish
