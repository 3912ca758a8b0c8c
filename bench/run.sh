#!/usr/bin/env bash
# Benchmarks of librace.so: prints Markdown tables and writes them to bench/results.md
# (date, kernel, CPU, commit, exact command lines included). A benchmark, not a test: it
# never fails on a slow result; it exits non-zero only when it cannot run.
#   1. The Ractor churn workload (examples/ractor_churn.rb, 2 Ractors) under six
#      configurations: no shim, bare recording (stacks, guards and watch off),
#      RACE_STACK_SAMPLE=0, the default, the default with a 2 MiB ring (RSS),
#      RACE_STACK_SAMPLE=1. Configurations interleave within each round (ABC.. ABC..);
#      medians of the rounds.
#      Wall time, user+sys CPU, peak RSS (GNU time's %M), events recorded per run.
#   2. bench/free_cost.c: ns per malloc+free pair under the same four configurations;
#      the shim's cost per free is median(shim) - median(no shim).
# usage: bench/run.sh [--quick] [--rounds N] [--work N] [--ruby PATH]... [--dir DIR]
#                     [--shim PATH] [--skip-ruby] [--skip-micro] [--out FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

usage() {
    sed -n '/^# usage:/,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    cat <<'EOF'
  --quick        smoke mode: 2 rounds, a short workload, fewer iterations (numbers are rough)
  --rounds N     rounds of every configuration (default 7)
  --work N       ROUNDS argument of ractor_churn.rb (default 300000: 1 to 2 s without the shim here)
  --ruby PATH    a Ruby to run the workload with (repeatable; default: /usr/bin/ruby, and
                 the Ruby 3.4.5 of scripts/build-ruby.sh when it is already built)
  --dir DIR      where the temporary RACE_DIR is made (default: ${TMPDIR:-/tmp})
  --shim PATH    measure this librace.so instead of building shim/librace.so (to compare builds)
  --skip-ruby, --skip-micro   leave out one part
  --out FILE     results file (default bench/results.md; '-' for none)
EOF
}

rounds=7 work=300000 quick=0 skip_ruby=0 skip_micro=0 out=bench/results.md
parent=${TMPDIR:-/tmp}
rubies=()
shim_src=""
argv_used="bench/run.sh${*:+ $*}"
while [ $# -gt 0 ]; do
    case $1 in
    --quick) quick=1 ;;
    --rounds) rounds=${2:?}; shift ;;
    --work) work=${2:?}; shift ;;
    --ruby) rubies+=("${2:?}"); shift ;;
    --dir) parent=${2:?}; shift ;;
    --shim) shim_src=${2:?}; shift ;;
    --skip-ruby) skip_ruby=1 ;;
    --skip-micro) skip_micro=1 ;;
    --out) out=${2:?}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "bench: unknown argument '$1' (--help lists them)" >&2; exit 2 ;;
    esac
    shift
done
case $rounds$work in *[!0-9]*) echo "bench: --rounds and --work take positive integers" >&2; exit 2 ;; esac
# Micro iterations: pairs per run for the unstacked configurations and for RACE_STACK_SAMPLE=1.
micro_n=10000000 micro_n_stack=300000 cold_n=200000
if [ "$quick" = 1 ]; then
    [ "$rounds" = 7 ] && rounds=2
    [ "$work" = 300000 ] && work=40000
    micro_n=1000000 micro_n_stack=30000 cold_n=100000
fi
if [ "$rounds" -lt 1 ] || [ "$work" -lt 1 ]; then
    echo "bench: --rounds and --work must be >= 1" >&2
    exit 2
fi

bench_name=bench
# shellcheck source=bench/lib.sh
. bench/lib.sh
ncpu=$(nproc)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- Build -------------------------------------------------------------------------
if [ -z "$shim_src" ]; then
    make -s shim/librace.so >&2 || { note "cannot build shim/librace.so"; exit 1; }
    shim_src=$root/shim/librace.so
fi
[ -f "$shim_src" ] || { note "no shim at $shim_src"; exit 1; }
mkdir -p bench/out
cflags=(-O2 -std=gnu11 -Wall -Wextra -Werror)
cc "${cflags[@]}" -o bench/out/free_cost bench/free_cost.c -lpthread
cc "${cflags[@]}" -Icommon -o bench/out/trace_count bench/trace_count.c

if [ ! -x /usr/bin/time ] || ! /usr/bin/time -f %M true >/dev/null 2>&1; then
    note "GNU time (/usr/bin/time) is missing: install the 'time' package; peak RSS needs it"
    exit 1
fi

# Only the variables each configuration names may reach the programs.
for v in $(compgen -e | grep -E '^(RACE_|LD_PRELOAD$)' || true); do
    note "unsetting $v from the environment"
    unset "$v"
done

work_dir=$(mktemp -d "$parent/race-bench.XXXXXX")
trap 'rm -rf "$work_dir"' EXIT
# A copy, so a rebuild of shim/librace.so during the run cannot mix two builds.
shim=$work_dir/librace.so
cp "$shim_src" "$shim"
shim_id=$(sha256sum "$shim" | cut -c1-12)
trace_dir=$work_dir/traces
mkdir -p "$trace_dir"
data=$work_dir/data

# ---- Configurations ----------------------------------------------------------------
default_sample=$(sed -n 's/^RACE_OPT(RACE_STACK_SAMPLE, *int, *\([0-9]*\),.*/\1/p' common/options.def)
cfgs=(none bare s0 def ring2 s1)
declare -A cfg_env cfg_name
cfg_env[none]=""
cfg_env[s0]="LD_PRELOAD=$shim RACE_DIR=$trace_dir RACE_STACK_SAMPLE=0"
cfg_env[def]="LD_PRELOAD=$shim RACE_DIR=$trace_dir"
cfg_env[s1]="LD_PRELOAD=$shim RACE_DIR=$trace_dir RACE_STACK_SAMPLE=1"
cfg_env[bare]="LD_PRELOAD=$shim RACE_DIR=$trace_dir RACE_STACK_SAMPLE=0 RACE_GUARD_SAMPLE=0 RACE_WATCH=none"
cfg_env[ring2]="LD_PRELOAD=$shim RACE_DIR=$trace_dir RACE_RING_MB=2"
cfg_name[none]="no shim"
cfg_name[bare]="bare recording (stacks, guards, watch off)"
cfg_name[ring2]="default, RACE_RING_MB=2"
cfg_name[s0]="RACE_STACK_SAMPLE=0"
cfg_name[def]="default (RACE_STACK_SAMPLE=${default_sample:-?})"
cfg_name[s1]="RACE_STACK_SAMPLE=1"
# The micro also measures the record path alone when the shim has guarded sampling
# (RACE_GUARD_SAMPLE): that samples mallocs, not frees, and is switched off there.
micro_cfgs=(none s0 def s1)
if env LD_PRELOAD="$shim" RACE_DIR="$trace_dir" RACE_GUARD_SAMPLE=0 /bin/true 2>/dev/null; then
    cfg_env[fast]="LD_PRELOAD=$shim RACE_DIR=$trace_dir RACE_STACK_SAMPLE=0 RACE_GUARD_SAMPLE=0"
    cfg_name[fast]="RACE_STACK_SAMPLE=0 RACE_GUARD_SAMPLE=0"
    micro_cfgs=(none fast s0 def s1)
fi
rm -f "$trace_dir"/*

: >"$data"
tables=$work_dir/tables.md
: >"$tables"
targets=$work_dir/targets.md
: >"$targets"

# target NAME RATIO LIMIT SHOWN: one row of the targets table.
target() {
    echo "| $1 | $4 | $(awk -v x="$2" -v l="$3" 'BEGIN { if (x <= l) print "met"; else printf "missed by %.2fx (%.0f%% over)", x - l, 100 * (x - l) / l }') |" >>"$targets"
}

# ---- 1. Ractor churn ---------------------------------------------------------------
if [ "$skip_ruby" = 0 ]; then
    if [ ${#rubies[@]} -eq 0 ]; then
        rubies=(/usr/bin/ruby)
        cache=${RACE_RUBY_CACHE:-${HOME:-/root}/.cache/race}
        if [ -f "$cache/ruby-3.4.5/.race-complete" ]; then
            r34=$(scripts/build-ruby.sh 2>/dev/null || true)
            [ -x "$r34" ] && rubies+=("$r34")
        else
            note "Ruby 3.4.5 is not built (scripts/build-ruby.sh builds it in minutes): skipped"
        fi
    fi
    for ruby in "${rubies[@]}"; do
        [ -x "$ruby" ] || { note "no Ruby at $ruby"; exit 1; }
    done
    declare -A expect
    for ri in "${!rubies[@]}"; do
        ruby=${rubies[$ri]}
        expect[$ri]=$("$ruby" examples/ractor_churn.rb 2 "$work" 2>/dev/null) ||
            { note "$ruby examples/ractor_churn.rb failed without the shim"; exit 1; }
    done
    for r in $(seq "$rounds"); do
        for ri in "${!rubies[@]}"; do
            ruby=${rubies[$ri]}
            note "ractor churn: round $r/$rounds, $ruby"
            for c in "${cfgs[@]}"; do
                rm -f "$trace_dir"/*
                b0=$(busy)
                t0=$EPOCHREALTIME
                # env sets LD_PRELOAD for ruby only: GNU time itself runs without the shim.
                # shellcheck disable=SC2086
                /usr/bin/time -f '%U %S %M' -o "$work_dir/time" \
                    env ${cfg_env[$c]} "$ruby" examples/ractor_churn.rb 2 "$work" \
                    >"$work_dir/stdout" 2>"$work_dir/stderr" || {
                    note "run failed ($c, $ruby):"; cat "$work_dir/stderr" >&2; exit 1; }
                t1=$EPOCHREALTIME
                b1=$(busy)
                read -r us ss kib <"$work_dir/time"
                # Share of the machine other processes used meanwhile: the noise indicator.
                other=$(calc "(($b1 - $b0) - ($us + $ss)) / (($t1 - $t0) * $ncpu)")
                same=1
                [ "$(cat "$work_dir/stdout")" = "${expect[$ri]}" ] || same=0
                counts=""
                if [ "$c" != none ]; then
                    traces=("$trace_dir"/race.*.trace)
                    if [ -f "${traces[0]}" ]; then
                        counts="$(bench/out/trace_count "${traces[0]}") ntraces=${#traces[@]}"
                    fi
                fi
                echo "part=ruby ruby=$ri cfg=$c round=$r wall=$(calc "$t1 - $t0") cpu=$(calc "$us + $ss") rss=$kib other=$other same=$same $counts" >>"$data"
            done
        done
        rm -f "$trace_dir"/*
    done

    for ri in "${!rubies[@]}"; do
        ruby=${rubies[$ri]}
        ver=$("$ruby" -e 'print RUBY_VERSION')
        base_wall=$(median wall part=ruby ruby="$ri" cfg=none)
        base_cpu=$(median cpu part=ruby ruby="$ri" cfg=none)
        emit ""
        emit "### Ractor churn, Ruby $ver ($ruby)"
        emit ""
        emit "\`ruby examples/ractor_churn.rb 2 $work\`, $rounds runs per configuration, interleaved; medians."
        emit ""
        base_min=$(minimum wall part=ruby ruby="$ri" cfg=none)
        emit "| configuration | wall s | wall ratio | fastest-run ratio | CPU s (user+sys) | CPU ratio | peak RSS MiB | events/run | stacked | added CPU ns/event | same output |"
        emit "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        for c in "${cfgs[@]}"; do
            w=$(median wall part=ruby ruby="$ri" cfg="$c")
            cp=$(median cpu part=ruby ruby="$ri" cfg="$c")
            rss=$(median rss part=ruby ruby="$ri" cfg="$c")
            ev=$(median events part=ruby ruby="$ri" cfg="$c")
            st=$(median stacked part=ruby ruby="$ri" cfg="$c")
            va=$(median valid part=ruby ruby="$ri" cfg="$c")
            diffs=$(grep " ruby=$ri cfg=$c " "$data" | grep -c ' same=0' || true)
            n=$(grep -c " ruby=$ri cfg=$c " "$data")
            if [ "$c" = none ]; then
                evs="-" sts="-" per="-"
            else
                per=$(fmt '%.0f' "$(calc "1e9 * ($cp - $base_cpu) / $ev")")
                evs=$(fmt '%.0f' "$ev")
                sts=$(awk -v s="$st" -v v="$va" 'BEGIN { if (v + 0 > 0) printf "%.1f%%", 100 * s / v; else print "n/a" }')
            fi
            wr=$(fmt '%.2f' "$(calc "$w / $base_wall")")
            wm=$(fmt '%.2f' "$(calc "$(minimum wall part=ruby ruby="$ri" cfg="$c") / $base_min")")
            emit "| ${cfg_name[$c]} | $(fmt '%.3f' "$w") | $wr | $wm | $(fmt '%.3f' "$cp") | $(fmt '%.2f' "$(calc "$cp / $base_cpu")") | $(fmt '%.1f' "$(calc "$rss / 1024")") | $evs | $sts | $per | $((n - diffs))/$n |"
            cr=$(fmt '%.2f' "$(calc "$cp / $base_cpu")")
            case $c in
            def) target "default ≤ 1.05x wall (Ruby $ver)" "$wr" 1.05 "$wr ($wm)"
                 target "default ≤ 1.05x CPU (Ruby $ver)" "$cr" 1.05 "$cr"
                 echo "| peak RSS over no shim, default ring (Ruby $ver) | +$(fmt '%.1f' "$(calc "($rss - $(median rss part=ruby ruby="$ri" cfg=none)) / 1024")") MiB | - |" >>"$targets" ;;
            ring2) echo "| peak RSS over no shim, RACE_RING_MB=2 (Ruby $ver) | +$(fmt '%.1f' "$(calc "($rss - $(median rss part=ruby ruby="$ri" cfg=none)) / 1024")") MiB | - |" >>"$targets" ;;
            bare) target "bare recording ≤ 1.03x wall (Ruby $ver)" "$wr" 1.03 "$wr ($wm)"
                  target "bare recording ≤ 1.03x CPU (Ruby $ver)" "$cr" 1.03 "$cr" ;;
            s1) target "RACE_STACK_SAMPLE=1 ≤ 1.5x wall (Ruby $ver)" "$wr" 1.5 "$wr ($wm)" ;;
            esac
        done
        emit ""
        emit "Other processes used a median $(fmt '%.0f' "$(calc "100 * $(median other part=ruby ruby="$ri")")")% of the machine's CPU during these runs."
        emit "Spread of the no-shim wall times: $(grep " ruby=$ri cfg=none " "$data" | sed 's/.* wall=\([^ ]*\).*/\1/' | sort -g |
            awk '{ a[NR] = $1 } END { printf "%.3f to %.3f s (%.0f%% of the smallest)", a[1], a[NR], 100 * (a[NR] - a[1]) / a[1] }')."
        emit ""
        emit "Command lines (RACE_DIR is a temporary directory, emptied after every run):"
        emit ""
        for c in "${cfgs[@]}"; do
            e=${cfg_env[$c]//$trace_dir/\$RACE_DIR}
            e=${e//$shim/shim/librace.so}
            emit "    /usr/bin/time -f '%U %S %M' env${e:+ $e} $ruby examples/ractor_churn.rb 2 $work"
        done
        emit ""
        emit "The fastest-run ratio divides the fastest run of a configuration by the fastest run"
        emit "without the shim: less sensitive to whether the two Ractors happened to run in parallel."
        emit "Events/run counts every record written, including those overwritten in the ring;"
        emit "\"stacked\" is the share of the records still in the ring at exit that carry a stack;"
        emit "added CPU ns/event is (CPU with the shim - CPU without) / events."
    done
fi

# ---- 2. free_cost ------------------------------------------------------------------
# rows: name|mode|threads|depth|pairs (fast configurations)|pairs (RACE_STACK_SAMPLE=1)
rows=(
    "malloc(32)+free, 1 thread|pair|1|0|$micro_n|$micro_n_stack"
    "256 blocks, freed shuffled, 1 thread|batch|1|0|$micro_n|$micro_n_stack"
    "malloc(32)+free, 2 threads of one process|pair|2|0|$micro_n|$micro_n_stack"
    "malloc(32)+free, 2 processes (control: no shared ring)|pair|2p|0|$micro_n|$micro_n_stack"
    "malloc(32)+free, 32 frames deeper|pair|1|32|$micro_n|$micro_n_stack"
    "first $cold_n frees of a process (cold ring)|cold|1|0|$cold_n|$cold_n"
)
if [ "$skip_micro" = 0 ]; then
    children_cpu
    mb0=$(busy) mc0=$cc mt0=$EPOCHREALTIME
    for r in $(seq "$rounds"); do
        note "free_cost: round $r/$rounds"
        for ri in "${!rows[@]}"; do
            IFS='|' read -r _ mode thr depth n ns <<<"${rows[$ri]}"
            for c in "${micro_cfgs[@]}"; do
                rm -f "$trace_dir"/*
                [ "$c" = s1 ] && n_run=$ns || n_run=$n
                # shellcheck disable=SC2086
                line=$(env ${cfg_env[$c]} bench/out/free_cost "$mode" "$n_run" "$thr" "$depth" 2>"$work_dir/stderr") || {
                    note "free_cost failed ($c, $mode):"; cat "$work_dir/stderr" >&2; exit 1; }
                echo "part=micro row=$ri cfg=$c round=$r ns=${line##*ns_per_pair=}" >>"$data"
            done
        done
    done
    rm -f "$trace_dir"/*
    children_cpu
    micro_other=$(calc "(($(busy) - $mb0) - ($cc - $mc0)) / (($EPOCHREALTIME - $mt0) * $ncpu)")

    emit ""
    emit "### Cost per free (bench/free_cost.c)"
    emit ""
    emit "ns per malloc+free pair without the shim, and the shim's added ns per free"
    emit "(median with the shim - median without), $rounds runs each, interleaved. The loop"
    emit "runs on a thread the program creates. A free is the recorded event; malloc passes"
    emit "through the shim's wrapper, which samples 1 in RACE_GUARD_SAMPLE for a guarded slot."
    emit ""
    head="| workload | no shim ns/pair" rule="|---|---:"
    for c in "${micro_cfgs[@]:1}"; do
        head="$head | + ${cfg_name[$c]}" rule="$rule|---:"
    done
    emit "$head |"
    emit "$rule|"
    for ri in "${!rows[@]}"; do
        IFS='|' read -r name mode thr depth n ns <<<"${rows[$ri]}"
        b=$(median ns part=micro row="$ri" cfg=none)
        line="| $name | $(fmt '%.1f' "$b")"
        for c in "${micro_cfgs[@]:1}"; do
            m=$(median ns part=micro row="$ri" cfg="$c")
            line="$line | $(fmt '%+.1f' "$(calc "$m - $b")")"
        done
        emit "$line |"
        if [ "$ri" = 0 ]; then
            fc=s0
            [ "${micro_cfgs[1]}" = fast ] && fc=fast
            fast=$(fmt '%.1f' "$(calc "$(median ns part=micro row=0 cfg="$fc") - $b")")
            echo "| ≤ 15 ns per free, fast path (${cfg_name[$fc]}, 1 thread) | $fast ns | $(awk -v x="$fast" 'BEGIN { if (x <= 15) print "met"; else printf "missed by %.1f ns (%.0f%% over)", x - 15, 100 * (x - 15) / 15 }') |" >>"$targets"
        fi
    done
    emit ""
    emit "Command lines (pairs per run: $micro_n, $micro_n_stack with RACE_STACK_SAMPLE=1, $cold_n cold;"
    emit "each run first does 300000 untimed pairs, more than the default 16 MiB ring holds, except cold):"
    emit ""
    for ri in "${!rows[@]}"; do
        IFS='|' read -r name mode thr depth n ns <<<"${rows[$ri]}"
        emit "    bench/out/free_cost $mode PAIRS $thr $depth"
    done
    for c in "${micro_cfgs[@]}"; do
        e=${cfg_env[$c]//$trace_dir/\$RACE_DIR}
        e=${e//$shim/shim/librace.so}
        emit "    under: env${e:+ $e}"
    done
    emit ""
    emit "Other processes used $(fmt '%.0f' "$(calc "100 * $micro_other")")% of the machine's CPU while these ran."
fi

# ---- Report ------------------------------------------------------------------------
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=""
[ -n "$(git status --porcelain -- shim common 2>/dev/null)" ] && dirty=" (shim/ or common/ with uncommitted changes)"
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
report=$work_dir/report.md
{
    echo "## Benchmarks"
    echo ""
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    if [ "$shim_src" = "$root/shim/librace.so" ]; then
        echo "- commit: $commit$dirty; librace.so sha256 $shim_id..."
    else
        echo "- commit: $commit; measured librace.so: $shim_src (sha256 $shim_id...)"
    fi
    echo "- kernel: $(uname -r); CPU: ${cpu:-unknown}, $(nproc) cores; traces on $(df -PT "$trace_dir" | awk 'NR == 2 { print $2 }')"
    echo "- load average (1, 5, 15 min) at start: $load_start; at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- command: \`$argv_used\`$([ "$quick" = 1 ] && echo " (quick mode: rough numbers)")"
    if [ -s "$targets" ]; then
        echo ""
        echo "Wall ratios are of medians, with the ratio of the fastest runs in parentheses; the"
        echo "result is judged on the median."
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
