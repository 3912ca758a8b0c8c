# race report --sarif: real traces of the known-bug program under the shim, written as
# SARIF 2.1.0; valid against the published schema (python3-jsonschema) and GitHub code
# scanning's rules (the SARIF multitool's validate); the rule, locations, related sites,
# thread flows and ids are the bug's; fingerprints are the same in another run.
source tests/lib.sh
U=$BIN/uaf_threads
CHECK="/usr/bin/python3 $ROOT/tests/sarif/check.py"
TOOLS=$(tests/sarif/tools.sh) || { not_ok "SARIF validators installed" "tests/sarif/tools.sh failed"; finish; }
SCHEMA=$TOOLS/sarif-2.1.0.json

# bug MODE DIR: one run of the known bug, its trace in DIR, its output in DIR/MODE.out
bug() {
    mkdir -p "$2"
    env LD_PRELOAD="$SHIM" RACE_DIR="$2" RACE_GUARD_SITES=make_victim RACE_ON_FINDING=continue \
        "$U" "$1" > "$2/$1.out" 2> /dev/null
}
# valid NAME LOG: schema-valid, and no error from code scanning's rules (tests/lib.sh)
valid() { sarif_valid "$@"; }
fact() { awk -v k="$1" '$1 == k { $1 = ""; sub(/^ /, ""); print; exit }' "$2"; }

bug read "$T/a"
bug loop "$T/a"
bug double "$T/a"
"$RACE" report --sarif="$T/a.sarif" --source-root "$ROOT" "$T"/a/race.*.trace > "$T/a.txt"
eq "--sarif=FILE: exit 1 (findings), as the report" "$?" 1
check "--sarif=FILE: the text report still on stdout" grep -q '^==[0-9]*==ERROR: race: heap-use-after-free' "$T/a.txt"
valid "three traces (read, loop, double free)" "$T/a.sarif"
$CHECK facts "$T/a.sarif" > "$T/a.facts"
eq "one result per finding group (7 findings, 3 groups)" "$(fact results "$T/a.facts")" 3
eq "every rule of the finding kinds, stable ids" "$(fact rules "$T/a.facts")" \
    "heap-use-after-free,heap-buffer-overflow,heap-buffer-underflow,double-free,invalid-free,heap-buffer-overflow-at-free,write-after-free,wild-access,stale-call-info"
eq "the source root as SRCROOT" "$(fact srcroot "$T/a.facts")" "file://$ROOT/"

# The read: which result is which is the report's order (traces as named, sorted by pid).
use_line=$(grep -n 'sink = ((volatile long \*)p)\[1\]' tests/uaf_threads.c | cut -d: -f1)
write_line=$(grep -n '((volatile long \*)p)\[1\] = 42' tests/uaf_threads.c | cut -d: -f1)
free_line=$(grep -n '^    free(p);' tests/uaf_threads.c | cut -d: -f1)
alloc_line=$(grep -n 'char \*p = malloc(n);' tests/uaf_threads.c | cut -d: -f1)
r=$(awk '$1 ~ /^r[0-9]+\.location$/ {print $1, $2}' "$T/a.facts")
read_r=$(awk -v l="SRCROOT:tests/uaf_threads.c:$use_line" '$2 == l {sub(/\.location$/, "", $1); print $1; exit}' <<< "$r")
check "the read's result located at use_victim's load (uaf_threads.c:$use_line)" test -n "$read_r"
read_r=${read_r:-r0}
eq "the read: ruleId" "$(fact "$read_r.rule" "$T/a.facts")" heap-use-after-free
eq "the read: ruleIndex names its rule" "$(fact "$read_r.rule_ok" "$T/a.facts")" True
eq "the read: level error" "$(fact "$read_r.level" "$T/a.facts")" error
eq "the read: logical location use_victim" "$(fact "$read_r.function" "$T/a.facts")" use_victim
check "the read: message is the report's first line, and who freed it" \
    grep -q "^$read_r.message heap-use-after-free on address 0x[0-9a-f]* at pc 0x[0-9a-f]* by thread [0-9]*; freed \[here\](1) by thread [0-9]* [0-9.]* ms before; allocated \[here\](2)$" "$T/a.facts"
check "the read: related location 1, the free in free_victim (uaf_threads.c:$free_line)" \
    grep -q "^$read_r.related1 SRCROOT:tests/uaf_threads.c:$free_line | freed by thread [0-9]* via free in free_victim" "$T/a.facts"
check "the read: related location 2, the allocation in make_victim (uaf_threads.c:$alloc_line)" \
    grep -q "^$read_r.related2 SRCROOT:tests/uaf_threads.c:$alloc_line | allocated by thread [0-9]* in make_victim" "$T/a.facts"
eq "the read: two thread flows, use and free" "$(fact "$read_r.threadflows" "$T/a.facts")" 2
usetid=$(awk '$1 == "use" {print $3}' "$T/a/read.out")
freetid=$(awk '$1 == "free" {print $3}' "$T/a/read.out")
check "the read: the use flow ends in use_victim on the using thread" \
    grep -q "^$read_r.flow0 use: thread $usetid [0-9]* use_victim SRCROOT:tests/uaf_threads.c:$use_line$" "$T/a.facts"
check "the read: the free flow ends in free_victim on the freeing thread" \
    grep -q "^$read_r.flow1 free: thread $freetid [0-9]* free_victim SRCROOT:tests/uaf_threads.c:$free_line$" "$T/a.facts"
eq "the read: thread id in properties" "$(fact "$read_r.prop.tid" "$T/a.facts")" "$usetid"
eq "the read: the freeing thread's id in properties" "$(fact "$read_r.prop.freeTid" "$T/a.facts")" "$freetid"
eq "the read: Ractor id in properties (0: no Ruby)" "$(fact "$read_r.prop.ractor" "$T/a.facts")" 0
check "the loop: one result seen 5 times, at the write (uaf_threads.c:$write_line)" \
    bash -c "grep -q '^r[0-9]*.prop.occurrences 5$' '$T/a.facts' && grep -q '^r[0-9]*.location SRCROOT:tests/uaf_threads.c:$write_line$' '$T/a.facts'"
check "the double free: its own rule" grep -q '^r[0-9]*.rule double-free$' "$T/a.facts"
nfp=$(grep -c '^r[0-9]*.fingerprint raceStack/v1 [0-9a-f]\{16\}$' "$T/a.facts")
eq "every result has a fingerprint" "$nfp" 3
eq "the three fingerprints differ" "$(awk '/\.fingerprint / {print $3}' "$T/a.facts" | sort -u | wc -l)" 3

# Another run of the same three bugs: new pids, threads, addresses; the same fingerprints.
bug read "$T/b"
bug loop "$T/b"
bug double "$T/b"
"$RACE" report --sarif="$T/b.sarif" --source-root "$ROOT" "$T"/b/race.*.trace > /dev/null
$CHECK facts "$T/b.sarif" > "$T/b.facts"
eq "a second run: the same fingerprints" "$(awk '/\.fingerprint / {print $3}' "$T/b.facts" | sort | tr '\n' ' ')" \
    "$(awk '/\.fingerprint / {print $3}' "$T/a.facts" | sort | tr '\n' ' ')"
# The guarded slot's address comes from an mmap that ASLR places at random (28 bits on
# x86-64): the same address twice has a chance of about 2^-28, under one in a million.
check "a second run: other addresses (the fingerprint does not hold them)" \
    test "$(fact r0.prop.address "$T/a.facts")" != "$(fact r0.prop.address "$T/b.facts")"
"$RACE" report --sarif="$T/ab.sarif" --source-root "$ROOT" "$T"/a/race.*.trace "$T"/b/race.*.trace > /dev/null
$CHECK facts "$T/ab.sarif" > "$T/ab.facts"
eq "both runs in one report: still 3 results (groups span traces)" "$(fact results "$T/ab.facts")" 3

# Without --source-root: absolute file URIs; SARIF on stdout replaces the text report.
"$RACE" report --sarif "$T"/a/race.*.trace > "$T/c.sarif" 2> "$T/c.err"
eq "--sarif alone: exit 1" "$?" 1
valid "--sarif on stdout" "$T/c.sarif"
$CHECK facts "$T/c.sarif" > "$T/c.facts"
check "without --source-root: file:// URIs of the absolute paths" grep -q "^r[0-9]*.location file://$ROOT/tests/uaf_threads.c:$use_line$" "$T/c.facts"
eq "without --source-root: no SRCROOT" "$(fact srcroot "$T/c.facts")" -
"$RACE" report --sarif out.sarif "$T"/a/race.*.trace > /dev/null 2>&1
check "--sarif FILE.sarif as the next argument" test -s out.sarif
rm -f out.sarif

# A path that needs percent-encoding: the program built in a directory with a space.
mkdir -p "$T/src dir#1"
cp tests/uaf_threads.c "$T/src dir#1/uaf.c"
if gcc -O2 -g -o "$T/src dir#1/uaf" "$T/src dir#1/uaf.c" -lpthread 2> /dev/null; then
    mkdir -p "$T/e"
    env LD_PRELOAD="$SHIM" RACE_DIR="$T/e" RACE_GUARD_SITES=make_victim RACE_ON_FINDING=continue \
        "$T/src dir#1/uaf" read > /dev/null 2>&1
    "$RACE" report --sarif="$T/e.sarif" "$T"/e/race.*.trace > /dev/null
    valid "a source path with a space and a '#'" "$T/e.sarif"
    $CHECK facts "$T/e.sarif" > "$T/e.facts"
    check "the path percent-encoded in the URI" grep -q "^r0.location file://${T// /%20}/src%20dir%231/uaf.c:$use_line$" "$T/e.facts"
    "$RACE" report --sarif="$T/f.sarif" --source-root "$T/src dir#1" "$T"/e/race.*.trace > /dev/null
    $CHECK facts "$T/f.sarif" > "$T/f.facts"
    eq "the same under --source-root: a relative URI" "$(fact r0.location "$T/f.facts")" "SRCROOT:uaf.c:$use_line"
else
    not_ok "built the program in a directory with a space" "gcc failed"
fi

# Across two Ractors (Debian's Ruby, the uafext C extension): the Ractor ids Ruby reports.
mkdir -p "$T/r"
build_uafext
env LD_PRELOAD="$SHIM" RACE_DIR="$T/r" RACE_GUARD_SITES=race_victim_alloc RACE_ON_FINDING=continue \
    ruby -I"$T/ext" tests/ruby/uaf_ractors.rb > "$T/r/out" 2> /dev/null
freer=$(awk '/^freer/ {print $2}' "$T/r/out"); reader=$(awk '/^reader/ {print $2}' "$T/r/out")
"$RACE" report --sarif="$T/r.sarif" --source-root "$T/ext" "$T"/r/race.*.trace > /dev/null
valid "two Ractors" "$T/r.sarif"
$CHECK facts "$T/r.sarif" > "$T/r.facts"
eq "two Ractors: the reading Ractor in properties" "$(fact r0.prop.ractor "$T/r.facts")" "$reader"
eq "two Ractors: the freeing Ractor in properties" "$(fact r0.prop.freeRactor "$T/r.facts")" "$freer"
check "two Ractors: located in the extension's read, relative to its directory" \
    grep -q '^r0.location SRCROOT:uafext.c:[0-9]*$' "$T/r.facts"
check "two Ractors: the message names both Ractors" \
    grep -q "^r0.message heap-use-after-free on address 0x[0-9a-f]* at pc 0x[0-9a-f]* by thread [0-9]* (Ractor $reader); freed \[here\](1) by thread [0-9]* (Ractor $freer) " "$T/r.facts"

# No findings: a valid log with no results, exit 0.
bug clean "$T/d"
"$RACE" report --sarif="$T/d.sarif" "$T"/d/race.*.trace > /dev/null
eq "a clean run: exit 0" "$?" 0
valid "a clean run" "$T/d.sarif"
eq "a clean run: no results" "$($CHECK facts "$T/d.sarif" | awk '$1 == "results" {print $2}')" 0

# Usage and output errors.
"$RACE" report --sarif --json "$T"/a/race.*.trace > /dev/null 2> "$T/u.err"
eq "--json with --sarif on stdout: usage error 64" "$?" 64
"$RACE" report --sarif="$T/no/such/dir/x.sarif" "$T"/a/race.*.trace > /dev/null 2> "$T/w.err"
eq "an unwritable SARIF file: exit 2" "$?" 2
check "an unwritable SARIF file: one message naming it" grep -q "^race report: cannot write $T/no/such/dir/x.sarif: " "$T/w.err"
"$RACE" report --sarif="$T/x.sarif" --source-root "$T/nowhere" "$T"/a/race.*.trace > /dev/null 2> "$T/r.err"
eq "a missing --source-root: exit 2" "$?" 2
check "a missing --source-root: one message naming it" grep -q "^race report: --source-root $T/nowhere: " "$T/r.err"
finish
