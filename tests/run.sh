#!/usr/bin/env bash
# Runs every test script (tests/t_*.sh) from the repository root and prints one
# closing line "N passed, N failed". Each script prints "ok - NAME" or
# "not ok - NAME: why" per assertion; a script that exits non-zero without saying
# "not ok" counts as one failure. `tests/run.sh smoke` runs only the CI smoke test
# (tests/t_smoke.sh: seconds on Debian's ruby); `make test` runs it with the rest.
set -u
cd "$(dirname "$0")/.."
mode=${1:-all}
if [ "$mode" = smoke ]; then
    scripts="tests/t_smoke.sh"
else
    scripts=$(ls tests/t_*.sh)
fi
mkdir -p tests/out
pass=0 fail=0
for t in $scripts; do
    name=$(basename "$t" .sh)
    echo "# $t"
    start=$(date +%s)
    bash "$t" 2>&1 | tee "tests/out/$name.log"
    rc=${PIPESTATUS[0]}
    p=$(grep -c '^ok ' "tests/out/$name.log")
    f=$(grep -c '^not ok ' "tests/out/$name.log")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "not ok - $t exited with status $rc"
        f=1
    fi
    echo "# $t: $p passed, $f failed, $(( $(date +%s) - start )) s"
    pass=$((pass + p))
    fail=$((fail + f))
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
