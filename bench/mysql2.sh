#!/usr/bin/env bash
# Detection benchmark on a real C extension: the mysql2 close/ping use-after-free
# (shared/seeds/mysql2-close-ping-uaf-pr.txt) with Debian's ruby 3.1, ruby-mysql2 0.5.3
# and a private mariadbd (tests/mysql2/server.sh; stopped and removed at exit).
# tests/mysql2/close_race.rb runs RUNS times in each configuration, interleaved run by
# run, all against the same server:
#   seed reproducer (`ping ITERS`: Thread.new { client.ping }; client.close, ITERS
#   clients a process): without the shim (crash rate), under race with
#   RACE_GUARD_SITES=rb_nogvl (detection rate), under race with default options;
#   slow-query and slow-ping (the other call blocked reading when close frees):
#   without the shim and under race with RACE_GUARD_SITES=rb_nogvl.
# Under race RACE_ON_FINDING is the default, abort. A run is detected when
# `race report` exits 1 and a finding has mysql_close's stack on one side (access or
# free) and the other call's (mysql_ping, mysql_store_result) on the other, from two
# threads. Writes Markdown to bench/results-mysql2.md (date, machine, versions,
# command, every run's outcome). A benchmark, not a test: it exits non-zero only when
# it cannot run. It measures the shim/librace.so and analyze/race already built in the
# working tree (it does not run make), or with --build REV a build of commit REV made
# from `git archive REV` in a temporary directory.
# usage: bench/mysql2.sh [--runs N] [--iters N] [--build REV] [--out FILE|-]
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD

runs=20 iters=100 out=bench/results-mysql2.md build_rev=""
argv_used="bench/mysql2.sh${*:+ $*}"
while [ $# -gt 0 ]; do
    case $1 in
    --runs) runs=${2:?}; shift ;;
    --iters) iters=${2:?}; shift ;;
    --build) build_rev=${2:?}; shift ;;
    --out) out=${2:?}; shift ;;
    -h|--help) sed -n '2,/^# usage:/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/mysql2.sh: unknown argument $1" >&2; exit 64 ;;
    esac
    shift
done

source tests/mysql2/server.sh
if ! mysql2_have_deps; then
    echo "bench/mysql2.sh: cannot run: $MYSQL2_MISSING" >&2
    exit 1
fi
W=$(mktemp -d "${TMPDIR:-/tmp}/race-bench-mysql2.XXXXXX")
trap 'mysql2_server_stop; rm -rf "$W"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if [ -n "$build_rev" ]; then
    build_id=$(git rev-parse --short "$build_rev^{commit}") || { echo "bench/mysql2.sh: no commit $build_rev" >&2; exit 1; }
    mkdir -p "$W/src"
    git archive "$build_id" | tar -x -C "$W/src"
    make -C "$W/src" -s shim/librace.so analyze/race > "$W/build.log" 2>&1 ||
        { tail -20 "$W/build.log" >&2; echo "bench/mysql2.sh: cannot build $build_id" >&2; exit 1; }
    SHIM=$W/src/shim/librace.so RACE=$W/src/analyze/race
    measured="$build_id, built from \`git archive $build_id\`"
else
    SHIM=$root/shim/librace.so RACE=$root/analyze/race
    for f in "$SHIM" "$RACE"; do
        [ -x "$f" ] || [ -f "$f" ] || { echo "bench/mysql2.sh: $f missing: run make first" >&2; exit 1; }
    done
    measured="the working tree's build at $(git rev-parse --short HEAD)"
    git diff --quiet HEAD -- shim analyze common 2>/dev/null ||
        measured="$measured (shim/, analyze/ or common/ modified in the working tree)"
fi
if ! mysql2_server_start; then
    echo "bench/mysql2.sh: cannot start mariadbd: $MYSQL2_ERROR" >&2
    exit 1
fi
export MYSQL2_TEST_PORT=$MYSQL2_PORT
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u '+%Y-%m-%d %H:%M UTC')

# configurations: NAME|MODE ARGS|FN|RACE OPTIONS ("-": no shim, "": the defaults)
targeted="RACE_GUARD_SITES=rb_nogvl RACE_WATCH=none"
configs=(
    "seed, no shim|ping $iters|mysql_ping|-"
    "seed, RACE_GUARD_SITES=rb_nogvl|ping $iters|mysql_ping|$targeted"
    "seed, race defaults|ping $iters|mysql_ping|"
    "slow-query, no shim|slow-query|mysql_store_result|-"
    "slow-query, RACE_GUARD_SITES=rb_nogvl|slow-query|mysql_store_result|$targeted"
    "slow-ping, no shim|slow-ping|mysql_ping|-"
    "slow-ping, RACE_GUARD_SITES=rb_nogvl|slow-ping|mysql_ping|$targeted"
)

# one_run DIR MODE... / RACE OPTIONS in $opts: prints the run's outcome, one word
# (no spaces), e.g. "detected:heap-use-after-free", "segfault@3", "exit0:false"
one_run() {
    local d=$1 fn=$2; shift 2
    rm -rf "$d"; mkdir -p "$d/tr"
    local rc
    if [ "$opts" = - ]; then
        rc=$( (timeout -k 2 60 "$MYSQL2_RUBY" tests/mysql2/close_race.rb "$@" \
            > "$d/out" 2> "$d/err"; echo $?) 2>/dev/null)
    else
        rc=$( (timeout -k 2 60 env LD_PRELOAD="$SHIM" RACE_DIR="$d/tr" $opts \
            "$MYSQL2_RUBY" tests/mysql2/close_race.rb "$@" > "$d/out" 2> "$d/err"; echo $?) 2>/dev/null)
    fi
    local iter crash result
    iter=$(grep -c '^[0-9]*: ' "$d/out")
    if grep -q '\[BUG\] Segmentation fault' "$d/err"; then crash=segfault
    elif grep -q '\[BUG\]' "$d/err"; then crash=ruby-bug
    elif grep -q -E '^(double free|free\(\)|malloc\(\)|corrupted|munmap_chunk)' "$d/err"; then crash=glibc-abort
    elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then crash=timeout
    elif [ "$rc" != 0 ]; then crash=exit$rc
    else crash=""
    fi
    if [ "$opts" != - ] && ls "$d"/tr/race.ruby.*.trace > /dev/null 2>&1; then
        local F
        mapfile -t F < <("$RACE" report --json "$d"/tr/race.ruby.*.trace 2>/dev/null |
            "$MYSQL2_RUBY" tests/mysql2/findings.rb "$fn" any)
        if [ "${F[2]:-none}" != none ] && [ -n "${F[3]:-}" ] && [ "${F[3]:-}" != "${F[4]:-}" ]; then
            echo "detected:${F[2]}"; return
        fi
        if [ "${F[0]:-0}" -gt 0 ]; then
            echo "incomplete:${F[1]}"; return
        fi
    fi
    if [ -n "$crash" ]; then
        case $1 in ping) echo "$crash@$iter" ;; *) echo "$crash" ;; esac
        return
    fi
    # ran to the end: what the racing call returned
    case $1 in
    ping) result=$(sed -n 's/^outcomes //p' "$d/out" | tr ' ' ',') ;;
    *) result=$(sed -n 's/^\(ping\|query\) returned //p' "$d/out" | sed 's/.*:://') ;;
    esac
    echo "exit0:${result:-?}"
}

declare -A outcomes
for i in $(seq "$runs"); do
    for c in "${!configs[@]}"; do
        IFS='|' read -r name args fn opts <<< "${configs[$c]}"
        [ -z "$opts" ] && opts="RACE_ON_FINDING=abort" # the default, said explicitly
        o=$(one_run "$W/run" "$fn" $args)
        outcomes[$c]="${outcomes[$c]:-}$o "
    done
    printf '\rrun %d/%d' "$i" "$runs" >&2
done
echo >&2
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

{
    echo "## mysql2 close/ping use-after-free: detection and crash rates"
    echo
    echo "- date: $started"
    echo "- measured: $measured; librace.so sha256 $(sha256sum "$SHIM" | cut -c1-12)..."
    echo "- machine: $(uname -r); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"
    echo "- load average (1, 5, 15 min) at start: $load_start; at end: $load_end"
    echo "- ruby $("$MYSQL2_RUBY" -e 'print RUBY_VERSION'), mysql2 $("$MYSQL2_RUBY" -rmysql2 -e 'print Mysql2::VERSION'), libmariadb $("$MYSQL2_RUBY" -rmysql2 -e 'print Mysql2::Client.info[:version]'), server $("$MYSQL2_MARIADBD" --version | sed 's/.*Ver //; s/ for .*//')"
    echo "- command: \`$argv_used\` (regenerates this file)"
    echo
    cat <<EOF
$runs runs per configuration, interleaved run by run, one private mariadbd.
Seed reproducer: \`tests/mysql2/close_race.rb ping $iters\` ($iters clients a process, each
\`Thread.new { client.ping }; client.close\`). slow-query / slow-ping: one client,
closed while the other thread is blocked reading (rows 0.1 s apart / a ping behind
\`SELECT SLEEP(0.2)\`). Under race: RACE_ON_FINDING=abort (the default); the targeted
configurations are \`$targeted\`, "race defaults" sets nothing.

- **detected**: \`race report\` exits 1 and a finding has mysql_close's stack on one side
  and the other call's (mysql_ping / mysql_store_result) on the other, from two threads;
- **incomplete**: a finding, but without both sides;
- **crashed**: Ruby's \`[BUG] Segmentation fault\` (or another \`[BUG]\`), glibc's heap check
  aborting (\`double free or corruption\` and the like), another non-zero exit, or a timeout;
- **ran to the end**: exit 0 with no finding.

Without the shim the slow modes do not crash, yet the freed memory is read all the
same: under strace a slow-ping run shows the ping thread calling \`recvfrom\` on a file
descriptor read from the freed socket state (a stale number such as 1699151732), which
fails with EBADF, and the call returns an error (\`false\`, \`ConnectionError\`).

EOF
    echo "| configuration | runs | detected | incomplete | crashed | ran to the end |"
    echo "|---|---:|---:|---:|---:|---:|"
    for c in "${!configs[@]}"; do
        IFS='|' read -r name _ _ _ <<< "${configs[$c]}"
        set -- ${outcomes[$c]}
        det=0 inc=0 cr=0 end=0
        for o in "$@"; do
            case $o in detected:*) det=$((det + 1)) ;; incomplete:*) inc=$((inc + 1)) ;;
                exit0:*) end=$((end + 1)) ;; *) cr=$((cr + 1)) ;; esac
        done
        pct() { echo "$1 ($(( ($1 * 100 + runs / 2) / runs ))%)"; }
        echo "| $name | $# | $(pct $det) | $(pct $inc) | $(pct $cr) | $(pct $end) |"
    done
    echo
    cat <<'EOF'
### Raw outcome counts

`detected:TYPE`, `incomplete:TYPE` (TYPE of race's first finding); crashes: `segfault`,
`ruby-bug`, `glibc-abort`, `exitN`, `timeout` (in the per-run list, `@N`: N iterations
of the seed loop completed first); `exit0:RESULT` (what the racing call returned; for
the seed, the ping outcomes over all iterations).

EOF
    echo "| configuration | outcome | runs |"
    echo "|---|---|---:|"
    for c in "${!configs[@]}"; do
        IFS='|' read -r name _ _ _ <<< "${configs[$c]}"
        # CRASH@N counted as CRASH; N is in the per-run list below
        tr ' ' '\n' <<< "${outcomes[$c]}" | sed '/^$/d; s/@[0-9]*$//' | sort | uniq -c | sort -rn |
            while read -r n o; do echo "| $name | \`$o\` | $n |"; done
    done
    echo
    echo "### Every run, in order"
    echo
    for c in "${!configs[@]}"; do
        IFS='|' read -r name _ _ _ <<< "${configs[$c]}"
        echo "- $name: ${outcomes[$c]% }"
    done
} > "$W/results.md"

cat "$W/results.md"
[ "$out" = - ] || cp "$W/results.md" "$out"
