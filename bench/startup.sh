#!/usr/bin/env bash
# Start-up cost of librace.so: `ruby -e 1` with no shim, with the default, and with one
# mechanism switched off at a time (so each one's share shows), on Debian's ruby and on
# the Ruby 3.4.5 of scripts/build-ruby.sh when it is built. Configurations interleave
# within each round (ABC.. ABC..); medians of the rounds. Wall time, user+sys CPU, peak
# RSS (GNU time), and the trace's size on disk (du) after the process ended. Writes the
# Markdown to bench/results-startup.md with the commit, the load and the command. A
# benchmark, not a test: it exits non-zero only when it cannot run.
# --compare PATH adds the default configuration of another librace.so (an earlier build:
# before/after in one interleaved run).
# usage: bench/startup.sh [--rounds N] [--ruby PATH]... [--shim PATH] [--compare PATH] [--dir DIR] [--out FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bench_name=startup
# shellcheck source=bench/lib.sh
. bench/lib.sh

rounds=15 out=bench/results-startup.md shim_src="" cmp_src="" parent=${TMPDIR:-/tmp}
rubies=()
argv_used="bench/startup.sh${*:+ $*}"
while [ $# -gt 0 ]; do
    case $1 in
    --rounds | --ruby | --shim | --compare | --dir | --out)
        [ $# -ge 2 ] || { note "$1 needs a value"; exit 2; }
        case $1 in
        --rounds) rounds=$2 ;;
        --ruby) rubies+=("$2") ;;
        --shim) shim_src=$2 ;;
        --compare) cmp_src=$2 ;;
        --dir) parent=$2 ;;
        --out) out=$2 ;;
        esac
        shift ;;
    -h | --help) sed -n '/^# usage:/p' "$0" | sed 's/^# //'; exit 0 ;;
    *) note "unknown argument '$1'"; exit 2 ;;
    esac
    shift
done
case $rounds in '' | *[!0-9]* | 0) note "--rounds takes a positive integer"; exit 2 ;; esac

if [ -z "$shim_src" ]; then
    make -s shim/librace.so >&2 || die "cannot build shim/librace.so"
    shim_src=$root/shim/librace.so
fi
[ -x /usr/bin/time ] || die "GNU time (/usr/bin/time) is missing: install the 'time' package"
for v in $(compgen -e | grep -E '^(RACE_|LD_PRELOAD$)' || true); do
    unset "$v"
done
if [ ${#rubies[@]} -eq 0 ]; then
    rubies=(/usr/bin/ruby)
    cache=${RACE_RUBY_CACHE:-${HOME:-/root}/.cache/race}
    if [ -f "$cache/ruby-3.4.5/.race-complete" ]; then
        rubies+=("$(scripts/build-ruby.sh)")
    else
        note "Ruby 3.4.5 is not built (scripts/build-ruby.sh): skipped"
    fi
fi

work_dir=$(mktemp -d "$parent/race-startup.XXXXXX")
trap 'rm -rf "$work_dir"' EXIT
shim=$work_dir/librace.so
cp "$shim_src" "$shim"
shim_id=$(sha256sum "$shim" | cut -c1-12)
trace_dir=$work_dir/traces
mkdir -p "$trace_dir"
data=$work_dir/data
tables=$work_dir/tables.md
: >"$data"
: >"$tables"
ncpu=$(nproc)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

cfgs=(none def ring2 nowatch noguard nostack bare)
declare -A cfg_env cfg_name
base="LD_PRELOAD=$shim RACE_DIR=$trace_dir"
cfg_env[none]=""
cfg_env[def]="$base"
cfg_env[ring2]="$base RACE_RING_MB=2"
cfg_env[nowatch]="$base RACE_WATCH=none"
cfg_env[noguard]="$base RACE_GUARD_SAMPLE=0"
cfg_env[nostack]="$base RACE_STACK_SAMPLE=0"
cfg_env[bare]="$base RACE_STACK_SAMPLE=0 RACE_GUARD_SAMPLE=0 RACE_WATCH=none"
cfg_name[none]="no shim"
cfg_name[def]="default"
cfg_name[ring2]="RACE_RING_MB=2"
cfg_name[nowatch]="RACE_WATCH=none"
cfg_name[noguard]="RACE_GUARD_SAMPLE=0"
cfg_name[nostack]="RACE_STACK_SAMPLE=0"
cfg_name[bare]="bare recording (stacks, guards, watch off)"
if [ -n "$cmp_src" ]; then
    [ -f "$cmp_src" ] || die "no librace.so at $cmp_src"
    cp "$cmp_src" "$work_dir/compare.so"
    cfgs+=(cmp)
    cfg_env[cmp]="LD_PRELOAD=$work_dir/compare.so RACE_DIR=$trace_dir"
    cfg_name[cmp]="default of $cmp_src (sha256 $(sha256sum "$cmp_src" | cut -c1-12)...)"
fi

for r in $(seq "$rounds"); do
    for ri in "${!rubies[@]}"; do
        ruby=${rubies[$ri]}
        note "round $r/$rounds, $ruby"
        for c in "${cfgs[@]}"; do
            rm -f "$trace_dir"/*
            children_cpu
            c0=$cc b0=$(busy)
            t0=$EPOCHREALTIME
            # shellcheck disable=SC2086
            /usr/bin/time -f '%U %S %M' -o "$work_dir/time" env ${cfg_env[$c]} "$ruby" -e 1 \
                >/dev/null 2>"$work_dir/stderr" || { cat "$work_dir/stderr" >&2; die "$c failed with $ruby"; }
            t1=$EPOCHREALTIME
            b1=$(busy)
            children_cpu
            read -r _ _ kib <"$work_dir/time"
            cpu=$(calc "$cc - $c0")
            disk=0
            if [ "$c" != none ]; then
                disk=$(du -k "$trace_dir" | awk 'END { print $1 }')
            fi
            echo "ruby=$ri cfg=$c round=$r wall=$(calc "1000 * ($t1 - $t0)") cpu=$(calc "1000 * $cpu") rss=$kib disk=$disk other=$(calc "(($b1 - $b0) - $cpu) / (($t1 - $t0) * $ncpu)")" >>"$data"
        done
    done
done

for ri in "${!rubies[@]}"; do
    ruby=${rubies[$ri]}
    ver=$("$ruby" -e 'print RUBY_VERSION')
    bw=$(median wall ruby="$ri" cfg=none)
    bc=$(median cpu ruby="$ri" cfg=none)
    br=$(median rss ruby="$ri" cfg=none)
    emit ""
    emit "### \`ruby -e 1\`, Ruby $ver ($ruby)"
    emit ""
    emit "$rounds runs per configuration, interleaved; medians. Added = median(configuration) - median(no shim)."
    emit ""
    emit "| configuration | wall ms | added wall ms | CPU ms (user+sys) | added CPU ms | peak RSS MiB | added RSS MiB | trace on disk KiB |"
    emit "|---|---:|---:|---:|---:|---:|---:|---:|"
    for c in "${cfgs[@]}"; do
        w=$(median wall ruby="$ri" cfg="$c")
        cp=$(median cpu ruby="$ri" cfg="$c")
        rs=$(median rss ruby="$ri" cfg="$c")
        dk=$(median disk ruby="$ri" cfg="$c")
        if [ "$c" = none ]; then
            aw=- ac=- ar=- dks=-
        else
            aw=$(fmt '%+.1f' "$(calc "$w - $bw")")
            ac=$(fmt '%+.1f' "$(calc "$cp - $bc")")
            ar=$(fmt '%+.1f' "$(calc "($rs - $br) / 1024")")
            dks=$(fmt '%.0f' "$dk")
        fi
        emit "| ${cfg_name[$c]} | $(fmt '%.1f' "$w") | $aw | $(fmt '%.1f' "$cp") | $ac | $(fmt '%.1f' "$(calc "$rs / 1024")") | $ar | $dks |"
    done
    emit ""
    emit "Other processes used a median $(fmt '%.0f' "$(calc "100 * $(median other ruby="$ri")")")% of the machine's CPU during these runs."
done

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=""
[ -n "$(git status --porcelain -- shim common 2>/dev/null)" ] && dirty=" (shim/ or common/ with uncommitted changes)"
report=$work_dir/report.md
{
    echo "## Start-up"
    echo ""
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- commit: $commit$dirty; librace.so sha256 $shim_id..."
    echo "- kernel: $(uname -r); $(nproc) cores; traces on $(df -PT "$trace_dir" | awk 'NR == 2 { print $2 }')"
    echo "- load average (1, 5, 15 min) at start: $load_start; at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- command: \`$argv_used\`"
    cat "$tables"
} >"$report"
cat "$report"
if [ "$out" != - ]; then
    cp "$report" "$out"
    note "written to $out"
fi
