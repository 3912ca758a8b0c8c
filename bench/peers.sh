#!/usr/bin/env bash
# Peer comparison: the same two Ruby 3.4.5 workloads under race and under the usual
# memory tools, side by side in one run, and the Markdown table in bench/results-peers.md
# (date, machine, load, commit and the command that regenerates it included).
#   clean workload: examples/ractor_churn.rb 2 WORK (two Ractors, no memory error of its own)
#   known bug:      tests/ruby/uaf_ractors.rb with the tests/ruby/uafext C extension
#                   (one Ractor frees a block, another reads it), built here per Ruby
# Tools: none; race default; race RACE_STACK_SAMPLE=1; race targeted at the bug's
# allocation site; heaptrack; Valgrind memcheck (on a shortened clean workload, at two
# sizes, so its cost per unit of work can be told from its start-up); the
# AddressSanitizer build of the same Ruby source (scripts/build-ruby.sh asan).
# Within a round every tool runs once (ABCDEF ABCDEF ...); the tables give medians.
# Measures: wall time and its ratio to no tool, user+sys CPU and peak RSS (GNU time,
# whose ru_maxrss covers the largest process of the tree), whether the known bug was
# reported, and what each checker reported on the clean workload.
# A benchmark, not a test: it exits non-zero only when it cannot run.
# usage: bench/peers.sh [--rounds N] [--vg-rounds N] [--work N] [--vg-work N] [--quick]
#                       [--ruby PATH] [--asan-ruby PATH] [--shim PATH] [--dir DIR] [--out FILE]
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/peers.sh [OPTION]...
Runs the clean Ractor churn and the known cross-Ractor use-after-free under no tool, race
(three configurations), heaptrack, Valgrind memcheck and the ASan build of the same Ruby,
interleaved, and writes the comparison to bench/results-peers.md.
  --rounds N      rounds of every tool but Valgrind (default 5)
  --vg-rounds N   rounds of Valgrind (default 3; each takes about 30 s here)
  --work N        ROUNDS argument of ractor_churn.rb (default 500000: about 1.5 s without a tool here)
  --vg-work N     the shortened workload under Valgrind: ractor_churn.rb 2 N, and 2 N/4 for
                  its start-up (default 40000)
  --quick         smoke mode: 2 rounds, 1 Valgrind round, shorter workloads (rough numbers)
  --ruby PATH     the Ruby (default: the Ruby 3.4.5 of scripts/build-ruby.sh, already built)
  --asan-ruby PATH  its AddressSanitizer build (default: scripts/build-ruby.sh asan's, already built)
  --shim PATH     measure this librace.so instead of shim/librace.so
  --build REV     measure commit REV: librace.so and analyze/race built from `git archive REV`
                  in the scratch directory (the working tree may hold others' unfinished work)
  --dir DIR       where the scratch directory is made (default: ${TMPDIR:-/tmp})
  --out FILE      results file (default bench/results-peers.md; '-' for none)
EOF
}

bench_name=peers
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

rounds=5 vg_rounds=3 work=500000 vg_work=40000 quick=0 out=bench/results-peers.md
parent=${TMPDIR:-/tmp}
ruby="" asan_ruby="" shim_src="" build_rev=""
argv_used="bench/peers.sh${*:+ $*}"
while [ $# -gt 0 ]; do
    case $1 in
    --rounds | --vg-rounds | --work | --vg-work | --ruby | --asan-ruby | --shim | --build | --dir | --out)
        [ $# -ge 2 ] || { echo "peers: $1 needs a value (--help lists the options)" >&2; exit 2; }
        case $1 in
        --rounds) rounds=$2 ;;
        --vg-rounds) vg_rounds=$2 ;;
        --work) work=$2 ;;
        --vg-work) vg_work=$2 ;;
        --ruby) ruby=$2 ;;
        --asan-ruby) asan_ruby=$2 ;;
        --shim) shim_src=$2 ;;
        --build) build_rev=$2 ;;
        --dir) parent=$2 ;;
        --out) out=$2 ;;
        esac
        shift ;;
    --quick) quick=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "peers: unknown argument '$1' (--help lists them)" >&2; exit 2 ;;
    esac
    shift
done
cd "$(dirname "$0")/.."
root=$PWD
for n in "$rounds" "$vg_rounds" "$work" "$vg_work"; do
    case $n in
    '' | *[!0-9]* | 0*) echo "peers: --rounds, --vg-rounds, --work and --vg-work take positive integers, not '$n'" >&2; exit 2 ;;
    esac
done
if [ "$quick" = 1 ]; then
    rounds=2 vg_rounds=1 work=100000 vg_work=8000
fi
[ "$vg_work" -ge 4 ] || { echo "peers: --vg-work must be at least 4" >&2; exit 2; }
vg_small=$((vg_work / 4))
case $parent in *[[:space:]]*) echo "peers: --dir must not contain white space" >&2; exit 2 ;; esac

# ---- What it needs -----------------------------------------------------------------
cache=${RACE_RUBY_CACHE:-${HOME:-/root}/.cache/race}
if [ -z "$ruby" ]; then
    [ -f "$cache/ruby-3.4.5/.race-complete" ] ||
        die "Ruby 3.4.5 is not built: scripts/build-ruby.sh builds it (about 10 minutes), or name one with --ruby"
    ruby=$cache/ruby-3.4.5/bin/ruby
fi
if [ -z "$asan_ruby" ]; then
    [ -f "$cache/ruby-3.4.5-asan/.race-complete" ] ||
        die "the AddressSanitizer Ruby is not built: scripts/build-ruby.sh asan builds it, or name one with --asan-ruby"
    asan_ruby=$cache/ruby-3.4.5-asan/bin/ruby
fi
[ -x "$ruby" ] || die "no Ruby at $ruby"
[ -x "$asan_ruby" ] || die "no Ruby at $asan_ruby"
for p in heaptrack valgrind timeout cc make; do
    command -v "$p" >/dev/null || die "$p is not installed (scripts/deps.sh installs what the project uses)"
done
/usr/bin/time -f %M true >/dev/null 2>&1 || die "GNU time (/usr/bin/time) is missing: install the 'time' package"
if [ -n "$shim_src" ] && [ -n "$build_rev" ]; then
    echo "peers: --shim and --build name two different shims; give one" >&2
    exit 2
fi
if [ -n "$build_rev" ]; then
    built=$(git rev-parse --short "$build_rev^{commit}" 2>/dev/null) || die "--build: no commit '$build_rev'"
fi

# Only the variables each tool's command names may reach the programs.
for v in $(compgen -e | grep -E '^(RACE_|LD_PRELOAD$|ASAN_OPTIONS$|VALGRIND_OPTS$|RUBYOPT$|RUBYLIB$)' || true); do
    note "unsetting $v from the environment"
    unset "$v"
done
ulimit -c 0 # aborting runs (race's default on a finding) must not leave core files

mkdir -p "$parent" || die "cannot make --dir $parent"
work_dir=$(mktemp -d "$parent/race-peers.XXXXXX")
trap 'rm -rf "$work_dir"' EXIT
race_bin=$root/analyze/race
if [ -n "$build_rev" ]; then
    mkdir "$work_dir/src"
    git archive "$built" | tar -x -C "$work_dir/src"
    make -C "$work_dir/src" -s shim/librace.so analyze/race >&2 || die "cannot build $built from git archive"
    shim_src=$work_dir/src/shim/librace.so
    race_bin=$work_dir/src/analyze/race
elif [ -z "$shim_src" ]; then
    make -s shim/librace.so analyze/race >&2 || die "cannot build shim/librace.so and analyze/race"
    shim_src=$root/shim/librace.so
fi
[ -f "$shim_src" ] || die "no shim at $shim_src"
[ -x "$race_bin" ] || die "no $race_bin (make builds it)"
shim=$work_dir/librace.so # a copy: a rebuild during the run cannot mix two builds
cp "$shim_src" "$shim"
shim_id=$(sha256sum "$shim" | cut -c1-12)
trace_dir=$work_dir/traces
mkdir -p "$trace_dir" "$work_dir/ht"
data=$work_dir/data
: >"$data"
findings=$work_dir/findings # "TOOL<TAB>WORKLOAD<TAB>SUMMARY line" of every report
: >"$findings"
ncpu=$(nproc)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

# The extension, once per Ruby, into the scratch directory (for the ASan Ruby its
# RbConfig flags compile it with -fsanitize=address, so its reads are checked).
for v in plain asan; do
    rb=$ruby
    [ $v = asan ] && rb=$asan_ruby
    mkdir -p "$work_dir/ext-$v"
    cp tests/ruby/uafext/uafext.c tests/ruby/uafext/extconf.rb "$work_dir/ext-$v/"
    (cd "$work_dir/ext-$v" && ASAN_OPTIONS=detect_leaks=0 timeout -k 2 300 "$rb" extconf.rb && make) \
        >"$work_dir/ext-$v.log" 2>&1 || { cat "$work_dir/ext-$v.log" >&2; die "uafext does not build against $rb"; }
done

# ---- Tools -------------------------------------------------------------------------
site=race_victim_alloc # uafext's allocation function; uaf_ractors.rb allocates 2000 bytes
tools=(none race race1 racet heaptrack asan)
declare -A pre name
pre[none]="env"
pre[race]="env LD_PRELOAD=$shim RACE_DIR=$trace_dir"
pre[race1]="env LD_PRELOAD=$shim RACE_DIR=$trace_dir RACE_STACK_SAMPLE=1"
pre[racet]="env LD_PRELOAD=$shim RACE_DIR=$trace_dir RACE_GUARD_SITES=$site RACE_GUARD_SIZES=2000-2000"
pre[heaptrack]="heaptrack -o $work_dir/ht/run"
pre[asan]="env ASAN_OPTIONS=detect_leaks=0"
pre[vg]="valgrind --log-file=$work_dir/vg.log"
name[none]="no tool"
name[race]="race, default"
name[race1]="race, RACE_STACK_SAMPLE=1"
name[racet]="race, targeted: RACE_GUARD_SITES=$site RACE_GUARD_SIZES=2000-2000"
name[heaptrack]="heaptrack $(heaptrack --version 2>/dev/null | awk '{ print $NF; exit }')"
name[asan]="AddressSanitizer build of the same Ruby"
name[vg]="Valgrind $(valgrind --version | sed 's/^valgrind-//') memcheck"

# The program's own output, compared with a no-tool run's for every clean run.
ractor_lines() { grep '^ractor ' "$1" || true; }
declare -A expect
for w in "$work" "$vg_work" "$vg_small"; do
    timeout -k 2 300 "$ruby" examples/ractor_churn.rb 2 "$w" >"$work_dir/stdout" 2>"$work_dir/stderr" ||
        { cat "$work_dir/stderr" >&2; die "$ruby examples/ractor_churn.rb 2 $w fails without any tool"; }
    expect[$w]=$(ractor_lines "$work_dir/stdout")
done


# asan_what FILE: ASan's first report in FILE on one line: KIND, ACCESS, in FUNCTION. A
# report can be cut off when the process exits while ASan prints it (at exit, from a
# thread other than the main one): then its end says so.
asan_what() {
    awk '/ERROR: AddressSanitizer: / && kind == "" { kind = $0; sub(/.*ERROR: AddressSanitizer: /, "", kind); sub(/ on .*/, "", kind); next }
        kind != "" && acc == "" && /^(READ|WRITE) of size/ { acc = $1 " of size " $4; next }
        kind != "" && fn == "" && /^ *#0 / { fn = $0; sub(/.* in /, "", fn); sub(/ .*/, "", fn) }
        END { if (kind != "") printf "%s, %s, %s\n", kind, (acc != "" ? acc : "no access line"), (fn != "" ? "in " fn : "cut off before its stack") }' "$1"
}

# run_case TOOL WORKLOAD ROUND: one timed run, one data line of k=v words.
# WORKLOAD: clean, bug (the known bug), vg_large or vg_small (the shortened clean runs).
run_case() {
    local tool=$1 wl=$2 r=$3 rb=$ruby ext=$work_dir/ext-plain limit=300 args
    if [ "$tool" = asan ]; then rb=$asan_ruby ext=$work_dir/ext-asan; fi
    case $wl in
    clean) args=(examples/ractor_churn.rb 2 "$work") ;;
    vg_large) args=(examples/ractor_churn.rb 2 "$vg_work") ;;
    vg_small) args=(examples/ractor_churn.rb 2 "$vg_small") ;;
    bug) args=(-I"$ext" tests/ruby/uaf_ractors.rb) limit=120 ;;
    esac
    [ "$tool" = vg ] && limit=590
    rm -rf "${trace_dir:?}"/* "$work_dir"/ht/* "$work_dir/vg.log"
    note "round $r: ${name[$tool]}, $wl"
    local b0 b1 t0 t1 rc=0
    b0=$(busy)
    t0=$EPOCHREALTIME
    # shellcheck disable=SC2086 # pre[] holds words without white space (checked above)
    /usr/bin/time -f '%e %U %S %M' -o "$work_dir/time" timeout -k 2 "$limit" ${pre[$tool]} "$rb" "${args[@]}" \
        >"$work_dir/stdout" 2>"$work_dir/stderr" || rc=$?
    t1=$EPOCHREALTIME
    b1=$(busy)
    local us ss kib
    read -r _ us ss kib < <(tail -n 1 "$work_dir/time")
    local line
    line="tool=$tool wl=$wl round=$r rc=$rc wall=$(calc "$t1 - $t0") cpu=$(calc "$us + $ss") rss=$kib"
    line+=" other=$(calc "(($b1 - $b0) - ($us + $ss)) / (($t1 - $t0) * $ncpu)")"
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
        note "timed out after $limit s"
        line+=" timeout=1"
    fi
    local err=$work_dir/stderr found=0 det=0 tag
    if [ "$wl" != bug ]; then
        local w=$work
        [ "$wl" = vg_large ] && w=$vg_work
        [ "$wl" = vg_small ] && w=$vg_small
        [ "$(ractor_lines "$work_dir/stdout")" = "${expect[$w]}" ] && line+=" same=1" || line+=" same=0"
    fi
    tag="${name[$tool]}"$'\t'"$wl"
    case $tool in
    race | race1 | racet)
        found=$(grep -c '==ERROR: race' "$err" || true)
        grep 'SUMMARY: race' "$err" | sed "s/^/$tag\t/" >>"$findings" || true
        local rep=0
        for t in "$trace_dir"/race.*.trace; do
            [ -f "$t" ] || continue
            "$race_bin" report "$t" >/dev/null 2>&1 || rep=$((rep + 1))
        done
        line+=" report=$rep"
        if [ "$wl" = bug ] && grep -q '==ERROR: race: heap-use-after-free' "$err" &&
            grep -A1 '^READ of size' "$err" | grep -q 'uafext\.so'; then det=1; fi
        ;;
    asan)
        found=$(grep -c 'ERROR: AddressSanitizer' "$err" || true)
        [ "$found" = 0 ] || echo "$tag"$'\t'"$(asan_what "$err")" >>"$findings"
        if [ "$wl" = bug ] && grep -q 'ERROR: AddressSanitizer: heap-use-after-free' "$err" &&
            grep -q '#0 .* in race_victim_read' "$err"; then det=1; fi
        ;;
    vg)
        local counts
        counts=$(awk -f bench/peers/vg_errors.awk "$work_dir/vg.log") || die "no complete Valgrind log"
        line+=" $(head -n 1 <<<"$counts")"
        found=$(sed -n '1s/.*contexts=\([0-9]*\).*/\1/p' <<<"$counts")
        det=$(sed -n '1s/.*uaf_read=\([0-9]*\).*/\1/p' <<<"$counts")
        tail -n +2 <<<"$counts" | cut -f2- | sed "s/\t/: /; s/^/$tag\t/" >>"$findings"
        ;;
    esac
    line+=" found=$found"
    [ "$wl" = bug ] && line+=" det=$det"
    if [ "$wl" = bug ] && [ "$det" = 1 ] && [ ! -f "$work_dir/first.$tool" ]; then
        if [ "$tool" = vg ]; then
            sed 's/^==[0-9]*== //' "$work_dir/vg.log" | grep -A 7 '^Invalid read' | head -n 8 >"$work_dir/first.$tool"
        else
            sed '/./,$!d' "$err" | head -n 12 >"$work_dir/first.$tool"
        fi
    fi
    echo "$line" >>"$data"
}

for r in $(seq "$rounds"); do
    for t in "${tools[@]}"; do run_case "$t" clean "$r"; done
    for t in "${tools[@]}"; do [ "$t" = heaptrack ] || run_case "$t" bug "$r"; done
    if [ "$r" -le "$vg_rounds" ]; then
        run_case vg vg_large "$r"
        run_case none vg_large "$r"
        run_case vg vg_small "$r"
        run_case vg bug "$r"
    fi
done
# Valgrind rounds beyond --rounds (when --vg-rounds is the larger)
for r in $(seq $((rounds + 1)) "$vg_rounds"); do
    run_case vg vg_large "$r"
    run_case none vg_large "$r"
    run_case vg vg_small "$r"
    run_case vg bug "$r"
done

# ---- Numbers -----------------------------------------------------------------------
# pick OP FIELD KEY=VALUE...: OP (median, min, sum, n) of FIELD over the data lines
# that hold every KEY=VALUE and did not time out; "nan" when there are none.
pick() {
    local op=$1 field=$2
    shift 2
    awk -v op="$op" -v field="$field" -v conds="$*" '
        BEGIN { nc = split(conds, c, " ") }
        {
            split("", kv)
            for (i = 1; i <= NF; i++) { eq = index($i, "="); kv[substr($i, 1, eq - 1)] = substr($i, eq + 1) }
            if (kv["timeout"] == 1 || !(field in kv)) next
            for (j = 1; j <= nc; j++) { eq = index(c[j], "="); if (kv[substr(c[j], 1, eq - 1)] != substr(c[j], eq + 1)) next }
            x[++m] = kv[field] + 0; total += kv[field]
        }
        END {
            if (op == "n") { print m + 0; exit }
            if (op == "sum") { print total + 0; exit }
            if (m == 0) { print "nan"; exit }
            for (i = 2; i <= m; i++) for (j = i; j > 1 && x[j - 1] > x[j]; j--) { t = x[j]; x[j] = x[j - 1]; x[j - 1] = t }
            if (op == "min") print x[1]
            else print (m % 2 ? x[(m + 1) / 2] : (x[m / 2] + x[m / 2 + 1]) / 2)
        }' "$data"
}
# num FORMAT X: X formatted, or n/a
num() { awk -v x="$2" -v f="$1" 'BEGIN { if (x == "nan" || x == "") print "n/a"; else printf f, x }'; }
# div A B: A / B to two decimals, or n/a
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "nan" || b == "nan" || b == 0) print "n/a"; else printf "%.2f", a / b }'; }
mib() { awk -v k="$1" 'BEGIN { if (k == "nan") print "n/a"; else printf "%.0f", k / 1024 }'; }
# runs_where TEST FIELD KEY=VALUE...: how many data lines (timed-out ones included) match and pass TEST on FIELD
runs_where() {
    local test=$1 field=$2
    shift 2
    awk -v field="$field" -v conds="$*" "
        BEGIN { nc = split(conds, c, \" \") }
        {
            split(\"\", kv)
            for (i = 1; i <= NF; i++) { eq = index(\$i, \"=\"); kv[substr(\$i, 1, eq - 1)] = substr(\$i, eq + 1) }
            for (j = 1; j <= nc; j++) { eq = index(c[j], \"=\"); if (kv[substr(c[j], 1, eq - 1)] != substr(c[j], eq + 1)) next }
            v = kv[field]; if ($test) k++
        }
        END { print k + 0 }" "$data"
}

base_wall=$(pick median wall tool=none wl=clean)
base_min=$(pick min wall tool=none wl=clean)
base_cpu=$(pick median cpu tool=none wl=clean)
base_rss=$(pick median rss tool=none wl=clean)
# Valgrind's cost per unit of work: the slope between the two shortened sizes (its
# start-up, several seconds, cancels), against the no-tool cost per unit of the full run.
vg_l=$(pick median wall tool=vg wl=vg_large)
vg_s=$(pick median wall tool=vg wl=vg_small)
none_l=$(pick median wall tool=none wl=vg_large)
vg_unit=$(awk -v l="$vg_l" -v s="$vg_s" -v b="$base_wall" -v w="$work" -v d=$((vg_work - vg_small)) \
    'BEGIN { if (l == "nan" || s == "nan" || b == "nan") print "n/a"; else printf "%.0f", ((l - s) / d) / (b / w) }')
vg_short=$(div "$vg_l" "$none_l")

tables=$work_dir/tables.md
: >"$tables"

# Cells of the summary table.
wall_cell() { # wall_cell TOOL
    local t=$1
    [ "$t" = vg ] && { echo "≈ $vg_unit per unit of work; $vg_short on the shortened run (2 $vg_work)"; return; }
    [ "$t" = none ] && { echo "1.00 ($(num '%.2f' "$base_wall") s)"; return; }
    echo "$(div "$(pick median wall tool="$t" wl=clean)" "$base_wall") ($(div "$(pick min wall tool="$t" wl=clean)" "$base_min"); CPU $(div "$(pick median cpu tool="$t" wl=clean)" "$base_cpu"))"
}
rss_cell() {
    local t=$1 wl=clean k
    [ "$t" = vg ] && wl=vg_large
    k=$(pick median rss tool="$t" wl="$wl")
    if [ "$t" = none ]; then echo "$(mib "$k") MiB"; return; fi
    echo "$(mib "$k") MiB ($(div "$k" "$base_rss")x)$([ "$t" = vg ] && echo ", shortened run")"
}
bug_cell() {
    local t=$1 n d
    [ "$t" = heaptrack ] && { echo "n/a (not a use-after-free detector)"; return; }
    n=$(runs_where 1 det tool="$t" wl=bug)
    d=$(runs_where 'v == 1' det tool="$t" wl=bug)
    if [ "$t" = none ]; then echo "no: nothing checks the read ($n runs)"; return; fi
    echo "$([ "$d" -gt 0 ] && echo yes || echo no), $d of $n runs"
}
clean_cell() {
    local t=$1 wl=clean n f
    case $t in
    none) echo "—"; return ;;
    heaptrack) echo "n/a (not a checker)"; return ;;
    vg) wl=vg_large ;;
    esac
    n=$(runs_where 1 found tool="$t" wl="$wl")
    f=$(pick sum found tool="$t" wl="$wl")
    case $t in
    race*)
        local rep
        rep=$(pick sum report tool="$t" wl=clean)
        echo "$f in $n runs$([ "$rep" != 0 ] && echo " ($rep traces with a finding in race report)")" ;;
    asan)
        local k sums verdict="see below"
        k=$(runs_where 'v > 0' found tool=asan wl=clean)
        if [ "$k" = 0 ]; then echo "0 in $n runs"; else
            sums=$(awk -F'\t' -v t="${name[asan]}" '$1 == t && $2 == "clean" { print $3 }' "$findings")
            grep -qv "$exit_uaf" <<<"$sums" || verdict="a real Ruby bug at exit, see below: not false"
            echo "reports in $k of $n runs: $(sort <<<"$sums" | uniq -c | awk '{ n = $1; $1 = ""; printf "%s%s (%dx)", (NR > 1 ? "; " : ""), substr($0, 2), n }') ($verdict)"
        fi ;;
    vg)
        echo "$(num '%.0f' "$(pick median contexts tool=vg wl=vg_large)") error contexts ($(num '%.0f' "$(pick median errors tool=vg wl=vg_large)") errors) per shortened run, $(num '%.0f' "$(pick median gc_scan tool=vg wl=vg_large)") of the contexts in the GC's conservative stack scan: all false" ;;
    esac
}

# Ruby 3.4.5's own use-after-free at exit, as asan_what writes it, whole or cut off.
exit_uaf='^heap-use-after-free, WRITE of size 8, \(in rb_ractor_set_current_ec_\|cut off before its stack\)$'
ver=$("$ruby" -e 'print RUBY_DESCRIPTION')
emit ""
emit "| tool | clean wall ratio | clean peak RSS | known bug detected | false findings on clean |"
emit "|---|---|---|---|---|"
for t in none race race1 racet heaptrack vg asan; do
    emit "| ${name[$t]} | $(wall_cell "$t") | $(rss_cell "$t") | $(bug_cell "$t") | $(clean_cell "$t") |"
done
emit ""
emit "Clean workload: \`examples/ractor_churn.rb 2 $work\` ($rounds runs per tool, interleaved; medians;"
emit "Valgrind $vg_rounds runs of the shortened \`2 $vg_work\` and \`2 $vg_small\`). Known bug:"
emit "\`tests/ruby/uaf_ractors.rb\` with the uafext extension built against each Ruby. Ruby: $ver"
emit "(\`$ruby\`); the ASan build of the same source: \`$asan_ruby\` (-O1 and ASan, against the"
emit "plain build's -O3: its ratio is the cost of switching to it, not of ASan alone)."
emit "Wall ratio: median (fastest-run ratio; CPU ratio), all against no tool on the plain Ruby."
emit "Valgrind's \"per unit of work\" ratio is its added wall time per churn round, from the"
emit "slope between \`2 $vg_small\` and \`2 $vg_work\` (its start-up of several seconds cancels),"
emit "over the no-tool time per round of the full run: what the full run would cost, about."

emit ""
emit "### Clean workload, per tool"
emit ""
emit "| tool | runs | wall s | wall ratio | fastest-run ratio | CPU s | CPU ratio | peak RSS MiB | same output | exit status not 0 | other load |"
emit "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
row() { # row TOOL WORKLOAD LABEL
    local t=$1 wl=$2 n
    n=$(runs_where 1 wall tool="$t" wl="$wl")
    emit "| $3 | $n | $(num '%.3f' "$(pick median wall tool="$t" wl="$wl")") | $(div "$(pick median wall tool="$t" wl="$wl")" "$base_wall") | $(div "$(pick min wall tool="$t" wl="$wl")" "$base_min") | $(num '%.3f' "$(pick median cpu tool="$t" wl="$wl")") | $(div "$(pick median cpu tool="$t" wl="$wl")" "$base_cpu") | $(mib "$(pick median rss tool="$t" wl="$wl")") | $(runs_where 'v == 1' same tool="$t" wl="$wl")/$n | $(runs_where 'v != 0' rc tool="$t" wl="$wl") | $(num '%.0f%%' "$(awk -v x="$(pick median other tool="$t" wl="$wl")" 'BEGIN { print (x == "nan") ? x : 100 * x }')") |"
}
for t in "${tools[@]}"; do row "$t" clean "${name[$t]}"; done
emit ""
emit "Ratios here are against the no-tool run of the full workload. The shortened Valgrind runs:"
emit ""
emit "| run | runs | wall s | CPU s | peak RSS MiB | same output |"
emit "|---|---:|---:|---:|---:|---:|"
for c in "vg vg_small" "vg vg_large" "none vg_large"; do
    read -r t wl <<<"$c"
    n=$(runs_where 1 wall tool="$t" wl="$wl")
    w=$vg_work
    [ "$wl" = vg_small ] && w=$vg_small
    emit "| ${name[$t]}, \`2 $w\` | $n | $(num '%.3f' "$(pick median wall tool="$t" wl="$wl")") | $(num '%.3f' "$(pick median cpu tool="$t" wl="$wl")") | $(mib "$(pick median rss tool="$t" wl="$wl")") | $(runs_where 'v == 1' same tool="$t" wl="$wl")/$n |"
done
emit ""
emit "Other load: the share of the machine's CPU that other processes used during the runs"
emit "($ncpu cores; from /proc/stat)."

emit ""
emit "### Known bug, per tool"
emit ""
emit "| tool | runs | reported | exit statuses |"
emit "|---|---:|---:|---|"
for t in none race race1 racet vg asan; do
    n=$(runs_where 1 det tool="$t" wl=bug)
    st=$(awk -v t="$t" '$1 == "tool=" t && $2 == "wl=bug" { sub(/.* rc=/, ""); sub(/ .*/, ""); print }' "$data" | sort | uniq -c | awk '{ printf "%s%s (%d)", (NR > 1 ? ", " : ""), $2, $1 }')
    emit "| ${name[$t]} | $n | $(runs_where 'v == 1' det tool="$t" wl=bug) | $st |"
done
emit ""
emit "Reported means: race printed \`==ERROR: race: heap-use-after-free\` with the READ in"
emit "uafext.so; ASan printed \`heap-use-after-free\` with \`#0 ... in race_victim_read\`;"
emit "Valgrind printed an \`Invalid read\` whose stack is in uafext. race's default sampling"
emit "guards 1 allocation in 1000, so it catches this single block by chance only; targeted"
emit "guarding names the allocation site. The first lines each tool printed:"
for t in race race1 racet vg asan; do
    [ -f "$work_dir/first.$t" ] || continue
    emit ""
    emit "${name[$t]}:"
    emit ""
    sed "s|$work_dir|SCRATCH|g; s/^/    /" "$work_dir/first.$t" >>"$tables"
done

emit ""
emit "### What the checkers reported on the clean workload"
emit ""
if [ -s "$findings" ] && grep -q $'\t\(clean\|vg_large\|vg_small\)\t' "$findings"; then
    emit "| tool | workload | report | times |"
    emit "|---|---|---|---:|"
    awk -F'\t' '$2 != "bug"' "$findings" | sort | uniq -c | sort -k2 | while read -r k rest; do
        IFS=$'\t' read -r t wl what <<<"$rest"
        emit "| $t | $wl | ${what//|/\\|} | $k |"
    done
else
    emit "Nothing."
fi
if awk -F'\t' -v t="${name[asan]}" '$1 == t && $2 == "clean" { print $3 }' "$findings" | grep -q "$exit_uaf"; then
    emit ""
    emit "ASan's \`heap-use-after-free, WRITE of size 8, in rb_ractor_set_current_ec_\` on the clean"
    emit "workload is not a false report: Ruby 3.4.5 frees a worker Ractor's \`rb_ractor_t\`"
    emit "(\`ractor_free\`, from the finalizers at exit) while that Ractor's native thread still"
    emit "starts a coroutine and writes to it (\`co_start\`): a real use-after-free at exit, in"
    emit "some runs only. The ASan Ruby then prints \`[BUG] ASAN error\`, yet the exit status"
    emit "can stay 0: the main thread finishes exiting while the reporting thread prints, which"
    emit "also cuts some reports off before their stack (\"cut off before its stack\"; counted as"
    emit "the same bug when kind and access match). race meets the same blocks when one is"
    emit "guarded (tests/t_detect_ruby.sh)."
fi
if grep -q $'\tgc_scan: ' "$findings"; then
    emit ""
    emit "Valgrind's \"gc_scan\" contexts are reads of uninitialised words by Ruby's conservative"
    emit "scan of machine stacks (\`gc_mark_maybe\`, \`rb_gc_mark_machine_context\`): normal for a"
    emit "conservative GC, false as memory errors. Each context is counted once however often"
    emit "it repeats (the errors column of the summary counts repeats)."
fi

emit ""
emit "### Command lines"
emit ""
emit "RUBY is the Ruby above, ASAN_RUBY its ASan build, SCRATCH a temporary directory"
emit "(RACE_DIR and heaptrack's output emptied after every run), EXT the extension's build"
emit "directory for that Ruby. Every command runs as"
emit "\`/usr/bin/time -f '%e %U %S %M' timeout -k 2 LIMIT COMMAND\`."
emit ""
for t in none race race1 racet heaptrack vg asan; do
    rb=RUBY
    [ "$t" = asan ] && rb=ASAN_RUBY
    p=${pre[$t]//$work_dir/SCRATCH}
    if [ "$t" = vg ]; then
        emit "    $p $rb examples/ractor_churn.rb 2 $vg_work   (and 2 $vg_small)"
    else
        emit "    $p $rb examples/ractor_churn.rb 2 $work"
    fi
    [ "$t" = heaptrack ] || emit "    $p $rb -IEXT tests/ruby/uaf_ractors.rb"
done
emit ""
emit "The extension: \`RUBY extconf.rb && make\` on copies of tests/ruby/uafext/ (ASAN_RUBY for"
emit "the ASan one, with ASAN_OPTIONS=detect_leaks=0)."

# ---- Report ------------------------------------------------------------------------
# The header: what was measured, where, and how to measure it again.
rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$build_rev" ]; then
    measured="$built, built from \`git archive $built\` (working tree at $rev)"
elif [ "$shim_src" != "$root/shim/librace.so" ]; then
    measured="$rev; measured librace.so: $shim_src"
elif [ -n "$(git status --porcelain -- shim common 2>/dev/null)" ]; then
    measured="$rev (shim/ or common/ with uncommitted changes)"
else
    measured=$rev
fi
model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
mem=$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
mode=""
[ "$quick" = 1 ] && mode=" (quick mode: rough numbers)"
report=$work_dir/report.md
printf '%s\n' "## race beside other memory tools" "" \
    "- date: $(date -u '+%Y-%m-%d %H:%M UTC')" \
    "- commit: $measured; librace.so sha256 $shim_id..." \
    "- machine: kernel $(uname -r); CPU: ${model:-unknown}, $ncpu cores; $mem memory" \
    "- load average (1, 5, 15 min) at start: $load_start; at end: $(cut -d' ' -f1-3 /proc/loadavg)" \
    "- command: \`$argv_used\`$mode" >"$report"
cat "$tables" >>"$report"
cat "$report"
case $out in
-) ;;
*) cp "$report" "$out" && note "written to $out" ;;
esac
