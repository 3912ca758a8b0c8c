# Ruby-level frames in findings and crash records, on Debian's 3.1 and the symbol-built
# 3.3.8 and 3.4.5: a C extension use-after-free across Ractors names the Ruby lines of
# the read and of the free; a crash record names the Ruby frames of the crashing
# thread; the call-info bug names the Ruby line it was found at (the super call, or the
# code whose allocation ran the GC); RACE_RUBY_DEPTH=0 records none and a small depth
# truncates; a corrupt control frame ends the walk with a note, never a second crash.
source tests/lib.sh
build_uafext
check "the uafext C extension builds against Debian's ruby" test -f "$T/ext/uafext.so"
U=tests/ruby/rbframes_uaf.rb
C=tests/ruby/rbframes_crash.rb

# ruby_block FILE SECTION: the Ruby block under the section of a text report whose first
# line matches SECTION (READ/WRITE of the use, "freed by", or the crash's signal line).
ruby_block() {
    awk -v s="$2" '$0 ~ s {on = 1; next} on && /^    Ruby/ {rb = 1; next}
        on && rb && /^        / {print; next} on && rb {exit} on && /^$/ {exit}' "$1"
}

# ---- 3.1: a use-after-free across Ractors, through a C extension -----------------
mkdir -p "$T/uaf"
env LD_PRELOAD="$SHIM" RACE_DIR="$T/uaf" RACE_GUARD_SITES=race_victim_alloc RACE_ON_FINDING=continue \
    ruby -I"$T/ext" "$U" > "$T/uaf/out" 2> "$T/uaf/err"
eq "3.1 uaf: the program completes (continue)" "$?" 0
f=$(one_trace "$T/uaf")
"$RACE" report "$f" > "$T/uaf/report" 2>&1
ruby_block "$T/uaf/report" '^READ of size' > "$T/uaf/use"
ruby_block "$T/uaf/report" '^freed by' > "$T/uaf/free"
eq "3.1 uaf: the read's Ruby frames (C method, its caller's line, the Ractor's block)" "$(cat "$T/uaf/use")" \
"        $U:11:in 'm_read' (C)
        $U:11:in 'peek'
        $U:20:in 'block in <main>'"
eq "3.1 uaf: the free's Ruby frames, taken at the guarded free" "$(cat "$T/uaf/free")" \
"        $U:7:in 'm_free' (C)
        $U:7:in 'release'
        $U:16:in 'block in <main>'"
"$RACE" report --json "$f" > "$T/uaf/report.json" 2>&1
got=$(ruby -rjson -e 'f = JSON.parse(File.read(ARGV[0]))["findings"][0]
    puts [f["ruby"].map { |r| "#{r["label"]}@#{r["line"]}#{r["cfunc"] ? "C" : ""}" }.join(","),
          f["free"]["ruby"].map { |r| "#{r["label"]}@#{r["line"]}" }.join(","),
          f["free"]["ruby_is_gc_trigger"], f["ruby_end"].inspect].join(" ")' "$T/uaf/report.json")
eq "3.1 uaf: JSON lists both, a C method with its function, not a GC free, walked whole" "$got" \
    "m_read@11C,peek@11,block in <main>@20 m_free@7,release@7,block in <main>@16 false nil"
"$RACE" report --sarif "$T/uaf/out.sarif" --source-root "$ROOT" "$f" > /dev/null 2>&1
got=$(ruby -rjson -e 'r = JSON.parse(File.read(ARGV[0]))["runs"][0]["results"][0]
    rel = r["relatedLocations"].map { |l| p = l["physicalLocation"]; "#{p["artifactLocation"]["uri"]}:#{p["region"]["startLine"]}" }
    puts [rel.last, r["properties"]["rubyFrames"][1], r["properties"]["freeRubyFrames"][1],
          r["codeFlows"][0]["threadFlows"].map { |t| t["id"][/^[a-z() A-Z]+/].strip }.join(",")].join(" | ")' "$T/uaf/out.sarif")
eq "3.1 uaf: SARIF names the Ruby line as a related location, both backtraces as properties and thread flows" "$got" \
    "$U:11 | $U:11:in 'peek' | $U:7:in 'release' | use,free,use (Ruby),free (Ruby)"
"$RACE" report --html "$T/uaf/out.html" "$f" > /dev/null 2>&1
check "3.1 uaf: the HTML timeline embeds the Ruby frames with the stacks" grep -qF "$U:11:in 'peek'" "$T/uaf/out.html"

# ---- crash records on all three Rubies -----------------------------------------------
crash_case() { # LABEL RUBY
    local d=$T/crash-$1; mkdir -p "$d"
    timeout -k 2 60 env LD_PRELOAD="$SHIM" RACE_DIR="$d" "$2" "$C" > "$d/out" 2>&1
    "$RACE" report "$(one_trace "$d")" > "$d/report" 2>&1
    eq "$1 crash: the crash record's Ruby frames" "$(ruby_block "$d/report" '^SIGSEGV' | sed 1d)" \
"        $C:5:in 'boom'
        $C:10:in 'block in <main>'
        $C:9:in 'rb_ary_each' (C)
        $C:9:in '<main>'"
    "$RACE" dump --stacks "$(one_trace "$d")" > "$d/dump" 2>&1
    check "$1 crash: race dump --stacks shows them" grep -q "^        $C:5:in 'boom'" "$d/dump"
}
crash_case ruby3.1 ruby
ruby33=$(scripts/build-ruby.sh 3.3) && crash_case ruby3.3 "$ruby33"
ruby34=$(scripts/build-ruby.sh) && crash_case ruby3.4 "$ruby34"

# ---- RACE_RUBY_DEPTH ------------------------------------------------------------------
mkdir -p "$T/d0" "$T/d2"
timeout -k 2 60 env LD_PRELOAD="$SHIM" RACE_DIR="$T/d0" RACE_RUBY_DEPTH=0 ruby "$C" > /dev/null 2>&1
"$RACE" report --json "$(one_trace "$T/d0")" > "$T/d0/report.json" 2>&1
eq "RACE_RUBY_DEPTH=0: the crash record has no Ruby frames" \
    "$(ruby -rjson -e 'c = JSON.parse(File.read(ARGV[0]))["crashes"][0]; puts c.key?("ruby")' "$T/d0/report.json")" false
timeout -k 2 60 env LD_PRELOAD="$SHIM" RACE_DIR="$T/d2" RACE_RUBY_DEPTH=2 ruby "$C" > /dev/null 2>&1
"$RACE" report "$(one_trace "$T/d2")" > "$T/d2/report" 2>&1
eq "RACE_RUBY_DEPTH=2: two frames, then the truncation said" "$(ruby_block "$T/d2/report" '^SIGSEGV' | sed 1d)" \
"        $C:5:in 'boom'
        (truncated at 2 frames (RACE_RUBY_DEPTH))"

# ---- a corrupt control frame ---------------------------------------------------------
mkdir -p "$T/ext2" "$T/bad"
cp tests/ruby/rbframes_ext/rbframes_ext.c tests/ruby/rbframes_ext/extconf.rb "$T/ext2/"
(cd "$T/ext2" && ruby extconf.rb && make) > "$T/ext2.log" 2>&1
check "the rbframes_ext C extension builds" test -f "$T/ext2/rbframes_ext.so"
timeout -k 2 60 env LD_PRELOAD="$SHIM" RACE_DIR="$T/bad" ruby -I"$T/ext2" -rrbframes_ext "$C" corrupt \
    > "$T/bad/out" 2>&1
"$RACE" report "$(one_trace "$T/bad")" > "$T/bad/report" 2>&1
eq "corrupt frame: the walk ends at the frame pointing into a PROT_NONE page, with a note" \
    "$(ruby_block "$T/bad/report" '^SIGSEGV')" \
"        (unknown):in 'm_corrupt_and_crash' (C)
        (frame 1 unreadable: the walk ended there)"

# ---- the reader: good, corrupt and truncated records (the ASan build) ------------------
"$BIN/mktrace" --findings --ruby-frames "$T/mk.trace" > /dev/null
"$ROOT/analyze/race-asan" report "$T/mk.trace" > "$T/mk.out" 2>&1
eq "reader: a trace with Ruby backtraces: findings, status 1" "$?" 1
check "reader: the use's Ruby block, the C method's address symbolized as far as it goes" \
    grep -q "^        app/peek.rb:11:in 'peek'" "$T/mk.out"
check "reader: the free's truncation is said" grep -q "^        (truncated at 1 frames (RACE_RUBY_DEPTH))" "$T/mk.out"
"$BIN/mktrace" --findings --bad-ruby-frames "$T/mkb.trace" > /dev/null
"$ROOT/analyze/race-asan" report "$T/mkb.trace" > "$T/mkb.out" 2>&1
eq "reader: a corrupt Ruby frame: status 2" "$?" 2
check "reader: one clear message names the finding and the backtrace" \
    grep -q "finding at offset [0-9]*: Ruby backtrace 1: Ruby frame is corrupt" "$T/mkb.out"
check "reader: nothing of the corrupt backtrace is printed, the finding still is" \
    bash -c "! grep -q 'app/peek.rb' '$T/mkb.out' && grep -q 'ERROR: race: heap-use-after-free' '$T/mkb.out'"
check "reader: no sanitizer error" bash -c "! grep -q 'Sanitizer' '$T/mkb.out'"
cp "$T/mk.trace" "$T/mkt.trace"
truncate -s -3996 "$T/mkt.trace" # the Ruby section (4096 bytes) is last: its header and 36 bytes stay
"$ROOT/analyze/race-asan" report "$T/mkt.trace" > "$T/mkt.out" 2>&1
eq "reader: Ruby backtraces cut by a truncation: status 2" "$?" 2
check "reader: the cut backtrace is said to lie past the end, no sanitizer error" \
    bash -c "grep -q 'Ruby: (backtrace 1 unreadable: past the end of the file)' '$T/mkt.out' && ! grep -q Sanitizer '$T/mkt.out'"

# ---- the call-info bug on 3.4.5 and 3.3.8 ---------------------------------------------
# stale_ci LABEL RUBY RUNS ARGS...: runs kwarg_super.rb until a stale-call-info finding
# (the run counts and their bounds are t_watch's and t_ruby33's: 32 runs on 3.4.5 miss
# with probability <= 0.64^32 < 1e-6; 22 runs on 3.3.8 with 4 x 20000 rounds miss with
# probability <= 0.527^22 = 7.6e-7), then checks its Ruby frames: found in a super call
# (vm_search_super_method in the C stack), the innermost Ruby frame is the `super` on
# line 19 in 'initialize'; found in the GC (sweep or mark), the Ruby frames are those of
# whatever code's allocation ran the GC (a worker's loop, or the main Ractor still
# requiring a library): there every Ruby frame must have a path and a line.
stale_ci() {
    local label=$1 ruby=$2 runs=$3 d=$T/ci-$1 got="" i; shift 3
    mkdir -p "$d"
    for i in $(seq "$runs"); do
        rm -f "$d"/race.*.trace
        timeout -k 2 120 env LD_PRELOAD="$SHIM" RACE_DIR="$d" RACE_ON_FINDING=continue "$ruby" \
            examples/kwarg_super.rb "$@" > /dev/null 2> "$d/err"
        "$RACE" report --json "$d"/race.*.trace > "$d/report.json" 2> /dev/null
        got=$(ruby -rjson -e 'f = JSON.parse(File.read(ARGV[0]))["findings"].find { |x| x["type"] == "stale-call-info" }
            exit 1 unless f
            fns = f["stack"].map { |s| s["function"].to_s }
            rb = (f["ruby"] || []).reject { |r| r["cfunc"] }
            where = fns.include?("vm_search_super_method") ? "super" : "gc"
            ok = if where == "super" then rb[0] && rb[0]["label"] == "initialize" && rb[0]["line"] == 19 &&
                                         rb[0]["path"].end_with?("examples/kwarg_super.rb")
                 else !rb.empty? && rb.all? { |r| !r["path"].to_s.empty? && r["line"].to_i > 0 } end
            puts [where, ok, rb.map { |r| "#{r["label"]}@#{r["line"]}" }.join(",")].join(" ")' "$d/report.json") && break
    done
    check "$label call-info bug: a stale-call-info finding within $runs runs (run $i: $got)" test -n "$got"
    check "$label call-info bug: its Ruby frames name the super call (line 19) or the loop that ran the GC" \
        bash -c "[[ '$got' == *' true '* ]]"
}
[ -x "${ruby34:-}" ] && stale_ci ruby3.4 "$ruby34" 32
[ -x "${ruby33:-}" ] && stale_ci ruby3.3 "$ruby33" 22 4 20000
finish
