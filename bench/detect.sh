#!/usr/bin/env bash
# Detection benchmark of librace.so's stale-read detector: prints Markdown tables and
# writes them to bench/results-detect.md (date, kernel, CPU, commit, exact command
# lines). A benchmark, not a test: it never fails on a low rate or a slow result; it
# exits non-zero only when it cannot run.
#   1. Detection rate: bench/racy.c (one thread frees a 96-byte block while another
#      keeps reading it) run RUNS times under the default sampling, with
#      RACE_GUARD_SITES=racy_alloc, and with RACE_GUARD_SAMPLE=1, RACE_ON_FINDING=continue.
#      A run is detected when its stderr holds the report AND `race report` exits 1
#      with the finding. Configurations interleave run by run (same seeds for all).
#   2. Overhead on the Ractor churn (examples/ractor_churn.rb 2 WORK): no shim, the
#      default, targeted guarding (RACE_GUARD_SITES + RACE_GUARD_SIZES), the same site
#      without RACE_GUARD_SIZES, and RACE_QUARANTINE_MB=16; interleaved rounds, medians;
#      again pinned to one CPU.
# usage: bench/detect.sh [--quick] [--runs N] [--churn N] [--rounds N] [--work N]
#                        [--ruby PATH]... [--site FUNC] [--sizes MIN-MAX] [--dir DIR]
#                        [--build REV | --shim PATH --race PATH]
#                        [--skip-detect] [--skip-overhead] [--skip-pinned] [--out FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

usage() {
    sed -n '/^# usage:/,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    cat <<'EOF'
  --quick          smoke mode: 6 racy runs per configuration, 2 rounds of a short churn
                   (about 40 s; the short churn is dominated by start-up: rough numbers)
  --runs N         racy runs per configuration (default 60)
  --churn N        CHURN argument of racy (default 20000)
  --rounds N       rounds of every churn configuration (default 7)
  --work N         ROUNDS argument of ractor_churn.rb (default 300000)
  --ruby PATH      a Ruby for the churn (repeatable; default: /usr/bin/ruby, and the
                   Ruby 3.4.5 of scripts/build-ruby.sh when it is already built)
  --site FUNC      RACE_GUARD_SITES of the targeted configuration (default rb_ary_push)
  --sizes MIN-MAX  RACE_GUARD_SIZES of the targeted configuration (default 1208-1208:
                   the 151-slot buffer rb_ary_push allocates when `keep` stops sharing)
  --dir DIR        where the temporary RACE_DIR is made (default: ${TMPDIR:-/tmp})
  --build REV      measure commit REV: `git archive REV` into the temporary directory,
                   built there (the working tree and git state are left alone)
  --shim PATH      measure this librace.so instead of building shim/librace.so
  --race PATH      read the traces with this race command instead of building
                   analyze/race (give both with another build's shim: same format)
  --skip-detect, --skip-overhead, --skip-pinned   leave out one part
  --out FILE       results file (default bench/results-detect.md; '-' for none)
EOF
}

runs=60 churn=20000 rounds=7 work=300000 quick=0 out=bench/results-detect.md
skip_detect=0 skip_overhead=0 skip_pinned=0
site=rb_ary_push sizes=1208-1208
parent=${TMPDIR:-/tmp}
rubies=()
shim_src="" race_src="" build_rev=""
argv_used="bench/detect.sh${*:+ $*}"
while [ $# -gt 0 ]; do
    case $1 in
    --quick) quick=1 ;;
    --runs) runs=${2:?}; shift ;;
    --churn) churn=${2:?}; shift ;;
    --rounds) rounds=${2:?}; shift ;;
    --work) work=${2:?}; shift ;;
    --ruby) rubies+=("${2:?}"); shift ;;
    --site) site=${2:?}; shift ;;
    --sizes) sizes=${2:?}; shift ;;
    --dir) parent=${2:?}; shift ;;
    --build) build_rev=${2:?}; shift ;;
    --shim) shim_src=${2:?}; shift ;;
    --race) race_src=${2:?}; shift ;;
    --skip-detect) skip_detect=1 ;;
    --skip-overhead) skip_overhead=1 ;;
    --skip-pinned) skip_pinned=1 ;;
    --out) out=${2:?}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "detect: unknown argument '$1' (--help lists them)" >&2; exit 2 ;;
    esac
    shift
done
case $runs$churn$rounds$work in *[!0-9]*) echo "detect: --runs, --churn, --rounds and --work take positive integers" >&2; exit 2 ;; esac
if [ "$quick" = 1 ]; then
    [ "$runs" = 60 ] && runs=6
    [ "$rounds" = 7 ] && rounds=2
    [ "$work" = 300000 ] && work=40000
fi
if [ "$runs" -lt 1 ] || [ "$rounds" -lt 1 ] || [ "$work" -lt 1 ]; then
    echo "detect: --runs, --rounds and --work must be >= 1" >&2
    exit 2
fi
# Runs of the determinism check (default sampling, CHURN chosen so the victim is a
# multiple-of-RACE_GUARD_SAMPLE allocation; see the note under the table).
det_runs=$(( runs < 10 ? runs : 10 ))

bench_name=detect
# shellcheck source=bench/lib.sh
. bench/lib.sh
ncpu=$(nproc)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- Build -------------------------------------------------------------------------
work_dir=$(mktemp -d "$parent/race-detect.XXXXXX")
trap 'rm -rf "$work_dir"' EXIT
if [ -n "$build_rev" ]; then
    [ -z "$shim_src$race_src" ] || { note "--build and --shim/--race exclude each other"; exit 2; }
    build_id=$(git rev-parse --short "$build_rev^{commit}") || { note "no commit $build_rev"; exit 1; }
    mkdir -p "$work_dir/src"
    git archive "$build_id" | tar -x -C "$work_dir/src"
    make -C "$work_dir/src" -s shim/librace.so analyze/race >&2 || { note "cannot build $build_id"; exit 1; }
    shim_src=$work_dir/src/shim/librace.so
    race_src=$work_dir/src/analyze/race
fi
if [ -z "$shim_src" ]; then
    make -s shim/librace.so >&2 || { note "cannot build shim/librace.so"; exit 1; }
    shim_src=$root/shim/librace.so
fi
[ -f "$shim_src" ] || { note "no shim at $shim_src"; exit 1; }
if [ -z "$race_src" ]; then
    make -s analyze/race >&2 || { note "cannot build analyze/race"; exit 1; }
    race_src=$root/analyze/race
fi
[ -x "$race_src" ] || { note "no race command at $race_src"; exit 1; }
mkdir -p bench/out
cc -O2 -g -std=gnu11 -Wall -Wextra -Werror bench/racy.c -o bench/out/racy -lpthread
# trace_count reads the trace format of the build it measures.
tc=$root
[ -n "$build_rev" ] && [ -f "$work_dir/src/bench/trace_count.c" ] && tc=$work_dir/src
cc -O2 -std=gnu11 -Wall -Wextra -Werror -I"$tc/common" -o bench/out/trace_count "$tc/bench/trace_count.c"

if [ ! -x /usr/bin/time ] || ! /usr/bin/time -f %M true >/dev/null 2>&1; then
    note "GNU time (/usr/bin/time) is missing: install the 'time' package; peak RSS needs it"
    exit 1
fi
if [ "$skip_pinned" = 0 ] && ! taskset -c 0 true 2>/dev/null; then
    note "taskset -c 0 does not work here: the pinned view is skipped"
    skip_pinned=1
fi

for v in $(compgen -e | grep -E '^(RACE_|LD_PRELOAD$)' || true); do
    note "unsetting $v from the environment"
    unset "$v"
done

shim=$work_dir/librace.so
cp "$shim_src" "$shim"
shim_id=$(sha256sum "$shim" | cut -c1-12)
race=$work_dir/race
cp "$race_src" "$race"
trace_dir=$work_dir/traces
mkdir -p "$trace_dir"
data=$work_dir/data
: >"$data"
tables=$work_dir/tables.md
: >"$tables"
targets=$work_dir/targets.md
: >"$targets"
# The command line of a configuration as the tables show it.
shown() {
    local e=${1//$trace_dir/\$RACE_DIR}
    echo "${e//$shim/shim/librace.so}"
}
guard_default=$(sed -n 's/^RACE_OPT(RACE_GUARD_SAMPLE, *int, *\([0-9]*\),.*/\1/p' common/options.def)
guard_default=${guard_default:-1000}

# ---- 1. Detection rate -------------------------------------------------------------
read_us=$(sed -n 's/^#define READ_US \([0-9]*\).*/\1/p' bench/racy.c)
read_us=${read_us:-?}
dcfgs=(def site all)
declare -A dcfg_env dcfg_name
base="LD_PRELOAD=$shim RACE_DIR=$trace_dir RACE_ON_FINDING=continue"
dcfg_env[def]="$base"
dcfg_env[site]="$base RACE_GUARD_SITES=racy_alloc"
dcfg_env[all]="$base RACE_GUARD_SAMPLE=1"
dcfg_env[det]="$base"
dcfg_name[def]="default sampling (1 in $guard_default)"
dcfg_name[site]="RACE_GUARD_SITES=racy_alloc"
dcfg_name[all]="RACE_GUARD_SAMPLE=1 (every allocation)"
dcfg_name[det]="default sampling, CHURN=DETCHURN"
# The victim is the (CHURN+1)th allocation of the main thread after the pool starts
# (racy_alloc follows CHURN mallocs): this CHURN makes it the countdown's sampled one.
det_churn=$(( (churn / guard_default + 1) * guard_default - 1 ))
dcfg_name[det]="default sampling, CHURN=$det_churn"

# From `race dump --stacks` of a racy run: the victim (the guarded block whose
# allocation stack starts in racy_alloc), its free, the reader thread's first event (the
# shim's pthread_create wrapper frees its 16-byte start record just before calling
# reader) and the next allocation in the victim's slot. Times relative to the free, us.
victim_awk='
/^#/ { next }
/^ +#[0-9]+ / { if (pend && / in racy_alloc /) { vaddr = paddr; vtid = ptid; vslot = pslot } next }
{
    pend = 0
    if ($5 == "alloc") {
        pend = 1; paddr = $7; ptid = $2; pslot = $9
        if (vfree != "" && $9 == vslot && reuse == "") reuse = $1
    }
    if ($5 == "free" && vaddr != "" && $7 == vaddr && vfree == "") vfree = $1
    if (vtid != "" && $2 != vtid && rstart == "") rstart = $1
}
END {
    if (vaddr == "" || vfree == "") { print "guarded=0"; exit }
    out = "guarded=1"
    if (rstart != "") out = out sprintf(" start=%.0f", rstart - vfree)
    if (reuse != "") out = out sprintf(" reuse=%.0f", reuse - vfree)
    print out
}'

# racy_run CFG SEED CHURN: one run, one data line
racy_run() {
    local c=$1 seed=$2 ch=$3 rc=0 rrc=0 err=0 rep=0 named=0 early=0 delay fault trace traces v start reuse
    rm -f "$trace_dir"/*
    # shellcheck disable=SC2086
    env ${dcfg_env[$c]} bench/out/racy "$seed" "$ch" >"$work_dir/stdout" 2>"$work_dir/stderr" || rc=$?
    grep -q '^==[0-9]*==ERROR: race: heap-use-after-free' "$work_dir/stderr" && err=1
    traces=("$trace_dir"/race.racy.*.trace)
    trace=${traces[0]}
    v="guarded=0"
    if [ -f "$trace" ]; then
        "$race" report "$trace" >"$work_dir/report" 2>&1 || rrc=$?
        [ "$rrc" = 1 ] && grep -q 'ERROR: heap-use-after-free' "$work_dir/report" && rep=1
        # The finding is about the victim, not a later block in the same slot.
        grep -q 'inside of 96-byte region' "$work_dir/report" &&
            grep -A1 '^previously allocated' "$work_dir/report" | grep -q ' in racy_alloc ' && named=1
        v=$("$race" dump --stacks "$trace" 2>/dev/null | awk "$victim_awk")
    else
        rrc=none
    fi
    start=$(echo "$v" | sed -n 's/.* start=\(-\{0,1\}[0-9]*\).*/\1/p')
    reuse=$(echo "$v" | sed -n 's/.* reuse=\(-\{0,1\}[0-9]*\).*/\1/p')
    [ -n "$start" ] && [ -n "$reuse" ] && [ "$reuse" -lt "$start" ] && early=1
    delay=$(sed -n 's/^freed after \([0-9]*\) us$/\1/p' "$work_dir/stdout")
    # "freed by thread N via free at 7.300 ms (0.475 ms before):" -> 475 (us)
    fault=$(sed -n 's/^freed by thread [0-9]* via [a-z_]* at -\{0,1\}[0-9.]* ms (\([0-9]*\)\.\([0-9]*\) ms before):$/\1\2/p' \
        "$work_dir/stderr" | head -n 1)
    [ -n "$fault" ] && fault=$((10#$fault))
    echo "part=racy cfg=$c seed=$seed rc=$rc err=$err rep=$rep rrc=$rrc det=$((err & rep)) named=$named reused_first=$early $v${delay:+ delay=$delay}${fault:+ fault=$fault}" >>"$data"
}

if [ "$skip_detect" = 0 ]; then
    note "racy: $runs runs of each of ${#dcfgs[@]} configurations, then $det_runs with CHURN=$det_churn"
    b_start=$(busy) t_start=$EPOCHREALTIME
    for seed in $(seq "$runs"); do
        for c in "${dcfgs[@]}"; do
            racy_run "$c" "$seed" "$churn"
        done
    done
    for seed in $(seq "$det_runs"); do
        racy_run det "$seed" "$det_churn"
    done
    rm -f "$trace_dir"/*
    racy_other=$(calc "(($(busy) - $b_start)) / (($EPOCHREALTIME - $t_start) * $ncpu)")

    emit ""
    emit "### Detection rate (bench/racy.c)"
    emit ""
    emit "\`racy SEED $churn\`, seeds 1..$runs, the configurations interleaved run by run;"
    emit "RACE_ON_FINDING=continue. Detected: stderr has \`==ERROR: race: heap-use-after-free\`"
    emit "**and** \`race report TRACE\` exits 1 with that finding."
    emit ""
    emit "| configuration | runs | detected | rate | stderr report | \`race report\` exit 1 + finding | exit status not 0 | victim guarded | finding names the victim | slot reused before the reader started |"
    emit "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    sum() { values "$@" | awk '{ s += $1 } END { print s + 0 }'; }
    for c in "${dcfgs[@]}" det; do
        n=$(count det part=racy cfg="$c")
        [ "$n" -gt 0 ] || continue
        d=$(sum det part=racy cfg="$c")
        nz=$(values rc part=racy cfg="$c" | awk '$1 != 0 { s++ } END { print s + 0 }')
        emit "| ${dcfg_name[$c]} | $n | $d | $(pct "$d" "$n") | $(sum err part=racy cfg="$c") | $(sum rep part=racy cfg="$c") | $nz | $(sum guarded part=racy cfg="$c") | $(sum named part=racy cfg="$c") | $(sum reused_first part=racy cfg="$c") |"
        if [ "$c" = site ]; then
            echo "| targeted guarding (RACE_GUARD_SITES=racy_alloc) ≥ 95% of racy runs detected | $d/$n ($(pct "$d" "$n")) | $(awk -v d="$d" -v n="$n" 'BEGIN { if (n > 0 && d / n >= 0.95) print "met"; else printf "missed (%.0f%% short)", 95 - 100 * d / n }') |" >>"$targets"
        fi
    done
    emit ""
    emit "Times from the trace, us, min / p10 / median / p90 / max:"
    emit ""
    emit "| configuration | reader's start - the free | the free → the faulting read (detected runs) | the free → next block in the victim's slot |"
    emit "|---|---|---|---|"
    for c in "${dcfgs[@]}" det; do
        [ "$(count det part=racy cfg="$c")" -gt 0 ] || continue
        emit "| ${dcfg_name[$c]} | $(quantiles start part=racy cfg="$c") | $(quantiles fault part=racy cfg="$c") | $(quantiles reuse part=racy cfg="$c") |"
    done
    nall=$(count delay part=racy)
    nwin=$(values delay part=racy | awk -v w="$read_us" '$1 < w { s++ } END { print s + 0 }')
    emit ""
    emit "Free delay the program printed (\`freed after N us\`: from the start signal to the"
    emit "free), all $nall runs, min / p10 / median / p90 / max: $(quantiles delay part=racy) us;"
    emit "$nwin of $nall are under the reader's $read_us us window. The reader loads from the"
    emit "block from the moment it sees the start signal until $read_us us later, and a reader that"
    emit "starts after the free loads it at once, so by construction every run reads the block"
    emit "after \`free\` was called, unless a thread is descheduled at the wrong moment (this guest"
    emit "is shared and loaded); which runs were is not observable. What the trace does show: the"
    emit "reader thread's first event (the shim's pthread_create wrapper frees its start record"
    emit "just before \`reader\` runs), the victim's free, and the next block placed in the victim's"
    emit "slot. With every allocation guarded the slot is handed out again after RACE_GUARD_SLOTS"
    emit "later guarded frees, a few ms of churn: a reader that starts after that reads a live"
    emit "block, or faults on the slot's next occupant once that one is freed, and the finding"
    emit "then names the wrong block (\"finding names the victim\" checks for the 96-byte block"
    emit "allocated in racy_alloc). \"Free → faulting read\" is the report's \"freed ..., N us"
    emit "before\"; here it is mostly the reader thread's start-up latency."
    emit ""
    emit "The last row is a determinism check, not a rate: with CHURN=$det_churn the victim is the"
    emit "main thread's allocation number $((det_churn + 1)) after the pool starts, a multiple of"
    emit "$guard_default. A countdown that restarts at exactly $guard_default (before commit 7d63cf2)"
    emit "guards it in every run, and never with CHURN=$churn, whatever the seed; a randomised"
    emit "countdown (7d63cf2 and later) guards it in about 1 run in $guard_default either way."
    emit ""
    emit "Command lines (RACE_DIR is a temporary directory, emptied after every run):"
    emit ""
    emit "    cc -O2 -g -std=gnu11 -Wall -Wextra -Werror bench/racy.c -o bench/out/racy -lpthread"
    for c in "${dcfgs[@]}"; do
        emit "    env $(shown "${dcfg_env[$c]}") bench/out/racy SEED $churn"
    done
    emit "    env $(shown "${dcfg_env[det]}") bench/out/racy SEED $det_churn"
    emit "    analyze/race report \$RACE_DIR/race.racy.PID.trace"
    emit ""
    emit "The machine was $(fmt '%.0f' "$(calc "100 * $racy_other")")% busy meanwhile, racy's own two spinning threads included."
fi

# ---- 2. Overhead on the Ractor churn -----------------------------------------------
cfgs=(none def site siteonly quar)
declare -A cfg_env cfg_name
cfg_env[none]=""
cfg_env[def]="LD_PRELOAD=$shim RACE_DIR=$trace_dir"
cfg_env[site]="LD_PRELOAD=$shim RACE_DIR=$trace_dir RACE_GUARD_SITES=$site RACE_GUARD_SIZES=$sizes"
cfg_env[siteonly]="LD_PRELOAD=$shim RACE_DIR=$trace_dir RACE_GUARD_SITES=$site"
cfg_env[quar]="LD_PRELOAD=$shim RACE_DIR=$trace_dir RACE_QUARANTINE_MB=16"
cfg_name[none]="no shim"
cfg_name[def]="default (guard 1 in $guard_default)"
cfg_name[site]="targeted: RACE_GUARD_SITES=$site RACE_GUARD_SIZES=$sizes"
cfg_name[siteonly]="RACE_GUARD_SITES=$site alone (sizes left at 1-4096)"
cfg_name[quar]="RACE_QUARANTINE_MB=16"
declare -A limit
limit[def]=1.05
limit[site]=1.10

# verdict RATIO_MEDIAN RATIO_FASTEST RATIO_CPU LIMIT
verdict() {
    awk -v m="$1" -v f="$2" -v c="$3" -v l="$4" 'BEGIN {
        if (m == "n/a") { print "n/a"; exit }
        if (m <= l && f <= l && c <= l) print "met";
        else if (m > l && f > l && c > l) printf "missed (median over by %.2fx)", m - l;
        else printf "no verdict: the noise straddles %s (median %s, fastest %s, CPU %s)", l, m, f, c }'
}

if [ "$skip_overhead" = 0 ]; then
    if [ ${#rubies[@]} -eq 0 ]; then
        rubies=(/usr/bin/ruby)
        cache=${RACE_RUBY_CACHE:-${HOME:-/root}/.cache/race}
        if [ -f "$cache/ruby-3.4.5/.race-complete" ] && [ -x "$cache/ruby-3.4.5/bin/ruby" ]; then
            rubies+=("$cache/ruby-3.4.5/bin/ruby")
        else
            note "Ruby 3.4.5 is not built (scripts/build-ruby.sh builds it): skipped"
        fi
    fi
    for ruby in "${rubies[@]}"; do
        [ -x "$ruby" ] || { note "no Ruby at $ruby"; exit 1; }
    done
    declare -A expect
    for ri in "${!rubies[@]}"; do
        expect[$ri]=$("${rubies[$ri]}" examples/ractor_churn.rb 2 "$work" 2>/dev/null) ||
            { note "${rubies[$ri]} examples/ractor_churn.rb failed without the shim"; exit 1; }
    done

    # Guarded allocations per run: one untimed run per configuration with a ring large
    # enough that no record is overwritten (RACE_RING_MB only; nothing else changes).
    declare -A guarded quarantined overwritten
    for ri in "${!rubies[@]}"; do
        for c in def site siteonly quar; do
            rm -f "$trace_dir"/*
            # shellcheck disable=SC2086
            env ${cfg_env[$c]} RACE_RING_MB=512 "${rubies[$ri]}" examples/ractor_churn.rb 2 "$work" >/dev/null 2>&1 ||
                { note "counting run failed ($c, ${rubies[$ri]})"; exit 1; }
            json=$("$race" stats --json "$trace_dir"/race.*.trace 2>/dev/null || true)
            guarded[$ri,$c]=$(echo "$json" | sed -n 's/.*"by_kind":{[^}]*"alloc":\([0-9]*\).*/\1/p' | head -n 1)
            quarantined[$ri,$c]=$(echo "$json" | sed -n 's/.*"by_flag":{[^}]*"quarantined":\([0-9]*\).*/\1/p' | head -n 1)
            overwritten[$ri,$c]=$(echo "$json" | sed -n 's/.*"overwritten":\([0-9]*\).*/\1/p' | head -n 1)
        done
    done
    rm -f "$trace_dir"/*

    views=(free)
    [ "$skip_pinned" = 0 ] && views+=(pinned)
    for r in $(seq "$rounds"); do
        for view in "${views[@]}"; do
            pin=()
            [ "$view" = pinned ] && pin=(taskset -c 0)
            for ri in "${!rubies[@]}"; do
                ruby=${rubies[$ri]}
                note "ractor churn: round $r/$rounds, $view, $ruby"
                for c in "${cfgs[@]}"; do
                    rm -f "$trace_dir"/*
                    b0=$(busy)
                    t0=$EPOCHREALTIME
                    # shellcheck disable=SC2086
                    "${pin[@]}" /usr/bin/time -f '%U %S %M' -o "$work_dir/time" \
                        env ${cfg_env[$c]} "$ruby" examples/ractor_churn.rb 2 "$work" \
                        >"$work_dir/stdout" 2>"$work_dir/stderr" || {
                        note "run failed ($c, $ruby):"; cat "$work_dir/stderr" >&2; exit 1; }
                    t1=$EPOCHREALTIME
                    b1=$(busy)
                    read -r us ss kib <"$work_dir/time"
                    other=$(calc "(($b1 - $b0) - ($us + $ss)) / (($t1 - $t0) * $ncpu)")
                    same=1
                    [ "$(cat "$work_dir/stdout")" = "${expect[$ri]}" ] || same=0
                    # Ruby's own crash report, printed by a thread while the process still exits 0
                    bug=0
                    grep -q '\[BUG\]' "$work_dir/stderr" && bug=1
                    counts=""
                    if [ "$c" != none ]; then
                        traces=("$trace_dir"/race.*.trace)
                        [ -f "${traces[0]}" ] && counts=$(bench/out/trace_count "${traces[0]}")
                    fi
                    echo "part=ruby view=$view ruby=$ri cfg=$c round=$r wall=$(calc "$t1 - $t0") cpu=$(calc "$us + $ss") sys=$ss rss=$kib other=$other same=$same bug=$bug $counts" >>"$data"
                done
            done
        done
    done
    rm -f "$trace_dir"/*

    for view in "${views[@]}"; do
        for ri in "${!rubies[@]}"; do
            ruby=${rubies[$ri]}
            ver=$("$ruby" -e 'print RUBY_VERSION')
            k="part=ruby view=$view ruby=$ri"
            base_wall=$(median wall "$k" cfg=none)
            base_cpu=$(median cpu "$k" cfg=none)
            base_min=$(minimum wall "$k" cfg=none)
            emit ""
            if [ "$view" = free ]; then
                emit "### Ractor churn, Ruby $ver ($ruby)"
                emit ""
                emit "\`ruby examples/ractor_churn.rb 2 $work\`, $rounds runs per configuration, interleaved; medians."
            else
                emit "### Ractor churn pinned to one CPU (\`taskset -c 0\`), Ruby $ver"
                emit ""
                emit "A different workload: the two Ractors share CPU 0 and never run in parallel, which"
                emit "removes the main source of wall-time noise here. Same rounds, interleaved with the"
                emit "unpinned runs."
            fi
            emit ""
            emit "| configuration | wall s | wall ratio | fastest-run ratio | CPU s (user+sys) | CPU ratio | sys s | peak RSS MiB | events/run | guarded allocations/run | same output | [BUG] on stderr |"
            emit "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
            for c in "${cfgs[@]}"; do
                w=$(median wall "$k" cfg="$c")
                cp=$(median cpu "$k" cfg="$c")
                n=$(count wall "$k" cfg="$c")
                diffs=$(values same "$k" cfg="$c" | awk '$1 == 0 { s++ } END { print s + 0 }')
                wr=$(fmt '%.2f' "$(calc "$w / $base_wall")")
                wm=$(fmt '%.2f' "$(calc "$(minimum wall "$k" cfg="$c") / $base_min")")
                cr=$(fmt '%.2f' "$(calc "$cp / $base_cpu")")
                if [ "$c" = none ]; then
                    evs="-" g="-"
                else
                    evs=$(fmt '%.0f' "$(median events "$k" cfg="$c")")
                    g=${guarded[$ri,$c]:-n/a}
                    [ "${overwritten[$ri,$c]:-0}" != 0 ] && g="≥ $g"
                    [ "$c" = quar ] && g="$g (quarantined frees: ${quarantined[$ri,$c]:-n/a})"
                fi
                emit "| ${cfg_name[$c]} | $(fmt '%.3f' "$w") | $wr | $wm | $(fmt '%.3f' "$cp") | $cr | $(fmt '%.3f' "$(median sys "$k" cfg="$c")") | $(fmt '%.1f' "$(calc "$(median rss "$k" cfg="$c") / 1024")") | $evs | $g | $((n - diffs))/$n | $(values bug "$k" cfg="$c" | awk '{ s += $1 } END { print s + 0 }')/$n |"
                if [ -n "${limit[$c]:-}" ]; then
                    label="default"
                    [ "$c" = site ] && label="targeted"
                    vtag=""
                    [ "$view" = pinned ] && vtag=", pinned to CPU 0 (another workload)"
                    echo "| $label ≤ ${limit[$c]}x wall (Ruby $ver$vtag) | $wr ($wm; CPU $cr) | $(verdict "$wr" "$wm" "$cr" "${limit[$c]}") |" >>"$targets"
                fi
            done
            emit ""
            emit "Other processes used a median $(fmt '%.0f' "$(calc "100 * $(median other "$k")")")% of the machine's CPU during these runs."
            emit "Spread of the no-shim wall times: $(values wall "$k" cfg=none |
                awk '{ a[NR] = $1 } END { printf "%.3f to %.3f s (%.0f%% of the smallest)", a[1], a[NR], 100 * (a[NR] - a[1]) / a[1] }');"
            emit "of the no-shim CPU times: $(values cpu "$k" cfg=none |
                awk '{ a[NR] = $1 } END { printf "%.3f to %.3f s (%.0f%%)", a[1], a[NR], 100 * (a[NR] - a[1]) / a[1] }')."
        done
    done
    emit ""
    emit "Command lines (RACE_DIR is a temporary directory, emptied after every run; the"
    emit "pinned view puts \`taskset -c 0\` in front):"
    emit ""
    for c in "${cfgs[@]}"; do
        e=$(shown "${cfg_env[$c]}")
        emit "    /usr/bin/time -f '%U %S %M' env${e:+ $e} RUBY examples/ractor_churn.rb 2 $work"
    done
    emit ""
    emit "Guarded allocations/run: RACE_EV_ALLOC records (\`race stats --json\`, by_kind.alloc) of"
    emit "one extra, untimed run per configuration with RACE_RING_MB=512 added so that no record"
    emit "is overwritten (\"≥\" when some still were). Events/run counts every record written."
    emit "The fastest-run ratio divides the fastest run of a configuration by the fastest run"
    emit "without the shim. A target is met when the median, fastest-run and CPU ratios are all"
    emit "within it, missed when all three are over, and unresolved otherwise. \"[BUG] on stderr\""
    emit "counts runs where Ruby printed its crash report although the exit status was 0 and"
    emit "the output right (see bench/README.md, \"Detection benchmark\")."
fi

# ---- Report ------------------------------------------------------------------------
dirty=""
[ -n "$(git status --porcelain -- shim common analyze 2>/dev/null)" ] && dirty=" (shim/, common/ or analyze/ with uncommitted changes)"
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
report=$work_dir/report.md
{
    echo "## Detection benchmark"
    echo ""
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    if [ -n "$build_rev" ]; then
        echo "- commit: $build_id, built from \`git archive $build_id\` (working tree at $commit); librace.so sha256 $shim_id..."
    elif [ "$shim_src" = "$root/shim/librace.so" ]; then
        echo "- commit: $commit$dirty; librace.so sha256 $shim_id..."
    else
        echo "- working tree at commit $commit; measured librace.so: $shim_src (sha256 $shim_id...); race: $race_src"
    fi
    echo "- kernel: $(uname -r); CPU: ${cpu:-unknown}, $ncpu cores; traces on $(df -PT "$trace_dir" | awk 'NR == 2 { print $2 }')"
    echo "- load average (1, 5, 15 min) at start: $load_start; at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- command: \`$argv_used\`$([ "$quick" = 1 ] && echo " (quick mode: rough numbers)")"
    if [ -s "$targets" ]; then
        echo ""
        echo "Wall ratios: median (fastest-run ratio; CPU ratio)."
        echo ""
        echo "| target | measured | result |"
        echo "|---|---:|---|"
        cat "$targets"
    fi
    cat "$tables"
} >"$report"
cat "$report"
if [ "$out" != - ]; then
    cp "$report" "$out"
    note "written to $out"
fi
