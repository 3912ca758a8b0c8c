#!/usr/bin/env bash
# t_run.sh - `race run`: the command's status passed through, findings turned into the
# documented status, every process of a fork/exec family traced and reported, the
# recorder's options taken from the command line, usage errors, a missing command or
# library, an unusable trace directory, the progress line only on a terminal, and
# --keep: the traces of processes that ended without findings, crashes or damage are
# removed (one line says so) unless --keep=all.
. tests/lib.sh
cd "$T"

"$RACE" run -d plain -- sh -c 'echo out; echo err >&2; exit 3' > plain.out 2> plain.err
eq "the command's exit status passes through" "$?" 3
eq "the command's stdout is its own (the report goes to stderr)" "$(cat plain.out)" out
check "the command's stderr reaches stderr" grep -qx err plain.err
check "the report is printed at the end" grep -q '^0 findings$' plain.err
check "race run says where the traces are" grep -q "^race run: [0-9]* traces\? in $T/plain\$" plain.err

# fork and exec: sh forks, the children exec ls and cat; each process has its own trace.
"$RACE" run -d fam --keep=all -- sh -c 'ls / > /dev/null; cat /dev/null; true' > /dev/null 2> fam.err
eq "a fork/exec family: status 0" "$?" 0
has() { compgen -G "$1" > /dev/null; }
check "a trace for the exec'd ls" has 'fam/race.ls.*.trace'
check "a trace for the exec'd cat" has 'fam/race.cat.*.trace'
check "a trace for the shell itself" has 'fam/race.sh.*.trace'
n=$(ls fam/race.*.trace | wc -l)
check "the report covers every trace" grep -q "^race run: $n traces in $T/fam\$" fam.err
eq "one summary per trace in the report" "$(grep -c '^race report: ' fam.err)" "$n"
# a fork child that does not exec, from a C program
"$RACE" run -d forks --keep=all -- "$BIN/fork_stress" 3 > /dev/null 2> forks.err
ge "fork without exec: the children have their own traces" "$(ls forks/race.fork_stress.*.trace | wc -l)" 4

# a known bug: findings give status 66, or the command's own with --error-exitcode=0
"$RACE" run -d bug --guard-sites=make_victim --on-finding=continue -- "$BIN/uaf_threads" read > bug.out 2> bug.err
eq "findings: exit status 66" "$?" 66
# the shim's report at the fault and race report's: the same headline, twice
eq "the report names the use after free" "$(grep -c '^==[0-9]*==ERROR: race: heap-use-after-free' bug.err)" 2
check "the report has the reading function" grep -q 'in use_victim ' bug.err
check "the report has the freeing function" grep -q 'in free_victim ' bug.err
check "recorder options reach the shim (RACE_GUARD_SITES from --guard-sites)" \
    grep -q ' RACE_GUARD_SITES=make_victim$' <("$RACE" stats bug/race.*.trace)
"$RACE" run -d bug2 --error-exitcode=0 --guard-sites make_victim -- "$BIN/uaf_threads" read > /dev/null 2> bug2.err
eq "--error-exitcode=0 and the default abort: the command's status (134)" "$?" 134
check "the aborted process's finding is still reported" grep -q '^1 finding$' bug2.err
"$RACE" run -d bug3 --error-exitcode=7 --guard-sites=make_victim -- "$BIN/uaf_threads" read > /dev/null 2>&1
eq "--error-exitcode=7" "$?" 7
"$RACE" run -d bug --json --guard-sites=make_victim --on-finding=continue -- "$BIN/uaf_threads" read > /dev/null 2> json.err
eq "a directory with an earlier run's traces: findings again" "$?" 66
check "--json: the report as JSON" grep -q '"nfindings":1,' json.err
check "an earlier run's traces in the same directory are not reported again" \
    grep -q "^race run: 1 trace in $T/bug\$" json.err
"$RACE" run -d clean --guard-sites=make_victim -- "$BIN/uaf_threads" clean > /dev/null 2> clean.err
eq "the same program without the bug: status 0" "$?" 0
check "and 0 findings" grep -q '^0 findings$' clean.err
"$RACE" run -d norep --no-report --guard-sites=make_victim --on-finding=continue -- "$BIN/uaf_threads" read > /dev/null 2> norep.err
eq "--no-report still exits 66 on findings" "$?" 66
# only the shim's own report at the fault (raw frames), no race report (symbolized)
check "--no-report prints no report" test "$(grep -c '^==[0-9]*==ERROR' norep.err)" = 1 -a \
    "$(grep -c ' in use_victim \|^race report: ' norep.err)" = 0

# --keep: clean traces go, the others stay
"$RACE" run -d prune -- sh -c 'ls / > /dev/null; cat /dev/null; true' > /dev/null 2> prune.err
eq "--keep=findings (default): a clean family's traces are all removed" "$(ls prune | wc -l)" 0
check "one line says how many and their size" \
    grep -qE '^race run: removed [0-9]+ traces of processes that ended without findings, crashes or damage \([0-9.]+ MiB on disk, [0-9]+ events; --keep=all keeps them\)$' prune.err
eq "and the count is every process of the family" "$(sed -n 's/^race run: removed \([0-9]*\) traces.*/\1/p' prune.err)" "$n"
check "then: no trace left" grep -q "^race run: 0 traces in $T/prune\$" prune.err
eq "--keep=all keeps them" "$n" "$(ls fam/race.*.trace | wc -l)"
check "a trace with findings is kept" has 'bug2/race.uaf_threads.*.trace'
"$RACE" run -d prune --keep=some -- true > /dev/null 2> keep.err
eq "a bad --keep: 64" "$?" 64
"$RACE" run -d norep2 --no-report -- true > /dev/null 2>&1
check "--no-report keeps every trace" has 'norep2/race.true.*.trace'
# damage (a process that died in the middle of writing a record): kept
"$RACE" run -d dmg -- sh -c "$BIN/mktrace --crash dmg/race.mktrace.1.trace > /dev/null" > /dev/null 2> dmg.err
check "a trace with torn records is kept" test -f dmg/race.mktrace.1.trace
# a long command: traces of the processes that ended are removed while it runs (a pass
# a second: 2.5 s leave at least two passes after the last /bin/true)
"$RACE" run -d live -- sh -c '/bin/true; /bin/true; sleep 2.5; ls live > live.ls' > /dev/null 2> live.err
eq "while the command runs, the ended processes' traces are gone" "$(grep -c 'race\.true\.' live.ls)" 0
check "the running ones' are there" grep -q 'race\.sh\.' live.ls

# signals
"$RACE" run -d sig -- sh -c 'kill -SEGV $$' > /dev/null 2>&1
eq "a command killed by SIGSEGV: 139" "$?" 139
"$RACE" run -d term -- sh -c 'sleep 5' > /dev/null 2> term.err &
rp=$!
sleep 0.5
kill -TERM "$rp"
wait "$rp"
eq "SIGTERM to race run reaches the command, and race run still reports" "$?" 143
check "the report after SIGTERM" grep -q 'findings\?$' term.err

# the recorder's own checks and race run's errors
"$RACE" run -d bad --ring-mb=0 -- true > /dev/null 2> bad.err
eq "a bad recorder value: the recorder's status 98" "$?" 98
check "with the recorder's one-line message" grep -q 'RACE_RING_MB' bad.err
"$RACE" run > /dev/null 2> u1.err
eq "no command: usage error 64" "$?" 64
"$RACE" run --bogus=1 -- true > /dev/null 2> u2.err
eq "unknown option: 64" "$?" 64
check "the usage error names the option" grep -q "unknown option '--bogus'" u2.err
"$RACE" run --dir=x --error-exitcode=x -- true > /dev/null 2>&1
eq "a bad --error-exitcode: 64" "$?" 64
"$RACE" run --dir > /dev/null 2>&1
eq "an option without its value: 64" "$?" 64
"$RACE" run -d nf -- ./no-such-command > /dev/null 2> nf.err
eq "a missing command: 127" "$?" 127
check "with a message" grep -q 'cannot run ./no-such-command' nf.err
echo 'echo hi' > noexec.sh
"$RACE" run -d nx -- ./noexec.sh > /dev/null 2>&1
eq "a command that is not executable: 126" "$?" 126
"$RACE" run -d /proc/race-no-dir -- true > /dev/null 2> dir.err
eq "a trace directory that cannot be created: 73" "$?" 73
check "with a message naming it" grep -q '/proc/race-no-dir' dir.err
"$RACE" run --library /no/librace.so -- true > /dev/null 2> lib.err
eq "librace.so not found: 69" "$?" 69

# The report's output options, as race report takes them (parsed by the same code):
# SARIF and the timeline page of the run's traces, beside the text report on stderr.
"$RACE" run -d fmt --guard-sites=make_victim --on-finding=continue --sarif=run.sarif \
    --source-root "$ROOT" --html run.html --window 20 -- "$BIN/uaf_threads" read > /dev/null 2> fmt.err
eq "--sarif=FILE --html FILE: findings, status 66" "$?" 66
check "the text report still on stderr" grep -q '^==[0-9]*==ERROR: race: heap-use-after-free' fmt.err
sarif_valid "race run --sarif=FILE" "$T/run.sarif"
facts=$(/usr/bin/python3 "$ROOT/tests/sarif/check.py" facts run.sarif 2>&1)
eq "the SARIF holds the finding" "$(awk '$1 == "r0.rule" {print $2}' <<< "$facts")" heap-use-after-free
eq "--source-root reached the SARIF" "$(awk '$1 == "srcroot" {print $2}' <<< "$facts")" "file://$ROOT/"
check "the page written" test -s run.html
check "the page holds the finding" grep -q 'heap-use-after-free' run.html
eq "--window reached the page (20 ms)" "$(grep -o '"window_ms":[0-9.]*' run.html | head -1 | cut -d: -f2)" 20
"$RACE" run -d fmt2 --guard-sites=make_victim --on-finding=continue --sarif -- "$BIN/uaf_threads" read \
    > fmt2.out 2> fmt2.err
eq "--sarif alone: status 66" "$?" 66
sed -n '/^{/,$p' fmt2.err | sed '/^race run: /d' > fmt2.sarif
sarif_valid "race run --sarif, the SARIF instead of the report on stderr" "$T/fmt2.sarif"
eq "no text report beside it (the shim's own report of the moment is the program's stderr)" \
    "$(grep -c '^[0-9]* findings\?$' fmt2.err)" 0
"$RACE" run -d fmt3 --guard-sites=make_victim --on-finding=continue --last 5 -- "$BIN/uaf_threads" read \
    > /dev/null 2> fmt3.err
check "--last MS: the report shows the last events" grep -q '^== the last 5.000 ms before' fmt3.err
# usage errors: status 64, one message, nothing run
for bad in "--window 0" "--window=abc" "--window=" "--last -1" "--json --sarif" "--no-report --html x.html"; do
    # shellcheck disable=SC2086
    "$RACE" run -d ubad $bad -- touch ran > /dev/null 2> ubad.err
    rc=$?
    eq "race run $bad: usage error 64" "$rc" 64
    check "race run $bad: one message and the hint" bash -c "[ \$(grep -c . ubad.err) = 2 ] && grep -qx \"Try 'race run --help'.\" ubad.err"
done
check "nothing was run for a usage error" test ! -e ran

# help: every recorder option of the one table, as a flag
"$RACE" run --help > help.txt
eq "race run --help: status 0" "$?" 0
missing=""
for name in $(sed -n 's/^RACE_OPT(\(RACE_[A-Z_]*\),.*/\1/p' "$ROOT/common/options.def"); do
    [ "$name" = RACE_DIR ] && continue
    flag=--$(echo "${name#RACE_}" | tr 'A-Z_' 'a-z-')
    grep -q -- "^      $flag=" help.txt || missing="$missing $flag"
done
eq "race run --help lists every recorder option" "$missing" ""
check "race help run is the same text" cmp -s help.txt <("$RACE" help run)

# progress: on a terminal only (script(1) gives race run a pseudo-terminal)
"$RACE" run -d prog --guard-sites=make_victim --on-finding=continue -- "$BIN/uaf_threads" read > /dev/null 2> prog.err
check "no progress line when stderr is not a terminal" test "$(grep -c $'\r' prog.err)" = 0
script -qec "$RACE run -d tty --guard-sites=make_victim --on-finding=continue -- $BIN/uaf_threads read" /dev/null > tty.out 2>&1
check "a progress line on a terminal" grep -q 'race: reading trace 1/1' tty.out
check "the progress line is cleared before the report" grep -q $'\r\033\\[K==[0-9]*==ERROR: race:' tty.out
finish
