# race report --html: the timeline page of real traces (the known-bug program across
# threads; a use after free across two Ractors in Debian's Ruby), loaded in headless
# Chromium: no console error, the lanes and the finding (or crash) in the DOM, a click on the
# finding's mark (through the page's own mouse handlers, #selftest) shows its stacks, a
# click on an event shows that event's stack; trace bytes cannot break out of the data
# <script>; nothing is fetched. A screenshot stays in tests/out/timeline.png.
source tests/lib.sh
U=$BIN/uaf_threads
OUT=$ROOT/tests/out
mkdir -p "$OUT"
if ! command -v chromium > /dev/null; then
    not_ok "chromium installed (scripts/deps.sh)" "no chromium on PATH"
    finish
fi

# browse HTML NAME: loads HTML#selftest headless; the DOM after the script ran in
# $T/NAME.dom, the browser's log (console lines included) in $T/NAME.log
browse() {
    timeout 120 chromium --headless --no-sandbox --disable-gpu --user-data-dir="$T/chrome" \
        --enable-logging=stderr --v=0 --dump-dom "file://$1#selftest" > "$T/$2.dom" 2> "$T/$2.log"
}
# st NAME KEY: a value the page's self-test wrote
st() { sed -n '/<pre id="selftest">/,/<\/pre>/p' "$T/$1.dom" | sed 's/<[^>]*>//g' | awk -v k="$2" '$1 == k { $1 = ""; sub(/^ /, ""); print; exit }'; }
# console lines that are not the page's own two log lines
console_other() { grep 'CONSOLE' "$T/$1.log" | grep -v '"race timeline' ; }
# unesc: the DOM's text as the page shows it
unesc() { sed 's/&lt;/</g; s/&gt;/>/g; s/&quot;/"/g; s/&amp;/\&/g'; }
details() { sed -n '/<pre class="details">/,/<\/pre>/p' "$T/$1.dom" | unesc; }

mkdir -p "$T/a"
env LD_PRELOAD="$SHIM" RACE_DIR="$T/a" RACE_GUARD_SITES=make_victim RACE_ON_FINDING=continue \
    "$U" read > "$T/a/read.out" 2> /dev/null
tr=$(one_trace "$T/a")
"$RACE" report --html "$T/a.html" "$tr" > "$T/a.txt"
eq "--html: exit 1 (findings), as the report" "$?" 1
check "--html: the text report still on stdout" grep -q '^==[0-9]*==ERROR: race: heap-use-after-free' "$T/a.txt"
check "--html: the page written" test -s "$T/a.html"
eq "self-contained: no script, style, image, font or frame fetched (no src=, href=, url(, @import)" \
    "$(grep -ciE '<script[^>]* src=|<link|<img|<iframe|url\(|@import' "$T/a.html")" 0
check "self-contained: the CSP forbids any fetch (default-src 'none')" grep -q "content=\"default-src 'none';" "$T/a.html"
browse "$T/a.html" a
eq "threads: the page's self-test ran" "$(st a traces)" 1
eq "threads: no error in the page" "$(st a errors)" 0
eq "threads: no console error or warning" "$(console_other a)" ""
check "threads: the render time is logged to the console" grep -q '"race timeline: [0-9]* events in 1 timelines; parse [0-9.]* ms, first render [0-9.]* ms"' "$T/a.log"
alloc=$(awk '$1 == "alloc" {print $3}' "$T/a/read.out")
freet=$(awk '$1 == "free" {print $3}' "$T/a/read.out")
use=$(awk '$1 == "use" {print $3}' "$T/a/read.out")
lanes=$(grep -o '<div class="lane" data-lane="[0-9]*">[^<]*</div>' "$T/a.dom" | sed 's/<[^>]*>//g' | tr '\n' ',')
eq "threads: a lane per thread, in the DOM" "$lanes" "thread $alloc,thread $freet,thread $use,"
eq "threads: one finding in the DOM" "$(grep -o '<li class="finding[^"]*" data-finding="0"><span class="kind">heap-use-after-free</span>' "$T/a.dom" | wc -l)" 1
eq "threads: the click on the finding's mark showed it" "$(st a click-finding)" shown
check "threads: ... with its use stack (use_victim)" test "$(st a click-finding-stack | sed 's/ .*//')" = use_victim
eq "threads: ... and selected it in the list" "$(st a finding-selected)" 1
eq "threads: a click on an event showed its stack" "$(st a click-event)" stack-shown
d=$(details a)
check "threads: the details show the report's first line" grep -q "<pre class=\"details\">ERROR: race: heap-use-after-free on address 0x[0-9a-f]* at pc 0x" <<< "$d"
check "threads: ... the use stack (use_victim, uaf_threads.c)" grep -q "^    #0 0x[0-9a-f]* in use_victim $ROOT/tests/uaf_threads.c:[0-9]*$" <<< "$d"
check "threads: ... the free stack (free_victim) on the freeing thread" \
    bash -c "grep -q '^freed by thread $freet via free at [0-9.]* ms' <<< '$d' && grep -q 'in free_victim ' <<< '$d'"
check "threads: ... the allocation stack (make_victim)" grep -q "in make_victim " <<< "$d"
rm -f "$OUT/timeline.png"
timeout 120 chromium --headless --no-sandbox --disable-gpu --user-data-dir="$T/chrome" --hide-scrollbars \
    --window-size=1280,900 --screenshot="$OUT/timeline.png" "file://$T/a.html#finding=0.0" > /dev/null 2>&1
check "threads: a screenshot in tests/out/timeline.png" test -s "$OUT/timeline.png"

# #finding=T.N: the page opens on that finding.
timeout 120 chromium --headless --no-sandbox --disable-gpu --user-data-dir="$T/chrome" \
    --dump-dom "file://$T/a.html#finding=0.0" > "$T/f.dom" 2> /dev/null
check "#finding=0.0: the page opens on the finding, its stacks shown" \
    grep -q '<pre class="details">ERROR: race: heap-use-after-free on address' <<< "$(details f)"

# A use after free across two Ractors (Debian's Ruby 3.1, the uafext C extension).
mkdir -p "$T/r"
build_uafext
env LD_PRELOAD="$SHIM" RACE_DIR="$T/r" RACE_GUARD_SITES=race_victim_alloc RACE_ON_FINDING=continue \
    ruby -I"$T/ext" tests/ruby/uaf_ractors.rb > "$T/r/out" 2> /dev/null
freer=$(awk '/^freer/ {print $2}' "$T/r/out"); reader=$(awk '/^reader/ {print $2}' "$T/r/out")
"$RACE" report --html "$T/r.html" "$T"/r/race.*.trace > /dev/null
browse "$T/r.html" r
eq "Ractors: no error in the page" "$(st r errors)" 0
eq "Ractors: no console error or warning" "$(console_other r)" ""
lanes=$(grep -o '<div class="lane" data-lane="[0-9]*">[^<]*</div>' "$T/r.dom" | sed 's/<[^>]*>//g')
check "Ractors: a lane for the freeing Ractor $freer" grep -q "^Ractor $freer " <<< "$lanes"
check "Ractors: a lane for the reading Ractor $reader" grep -q "^Ractor $reader " <<< "$lanes"
ge "Ractors: the main Ractor's lane too" "$(grep -c '^Ractor 1 ' <<< "$lanes")" 1
eq "Ractors: the click on the finding showed it" "$(st r click-finding)" shown
check "Ractors: ... its use stack (race_victim_read in uafext.c)" grep -q '^race_victim_read .*/uafext.c:[0-9]*$' <<< "$(st r click-finding-stack)"
d=$(details r)
check "Ractors: the details name the reading Ractor" grep -q "^READ of size 8 at 0x[0-9a-f]* by thread [0-9]* (Ractor $reader)" <<< "$d"
check "Ractors: the details name the freeing Ractor" grep -q "^freed by thread [0-9]* (Ractor $freer) via free" <<< "$d"
ge "Ractors: events of the last 50 ms shown" "$(st r events)" 100

# A crash record and no finding (a wild load on a second thread): the trace is shown.
mkdir -p "$T/k"
# in a subshell whose stderr is dropped: the shell's own "Segmentation fault" notice stays out
(env LD_PRELOAD="$SHIM" RACE_DIR="$T/k" "$BIN/crash_kinds" thread > /dev/null 2>&1; :) 2> /dev/null
"$RACE" report --html "$T/k.html" "$T"/k/race.*.trace > /dev/null
browse "$T/k.html" k
eq "a crash: no error in the page" "$(st k errors)" 0
eq "a crash: listed in the DOM" "$(st k crashes)" 1
eq "a crash: the click on its mark showed it" "$(st k click-crash)" shown
check "a crash: ... with its stack from the signal context (load in crash_kinds.c)" \
    grep -q '^load .*/tests/crash_kinds.c:[0-9]*$' <<< "$(st k click-crash-stack)"
check "a crash: the details name the signal and the fault address" \
    grep -q '<pre class="details">crash: SIGSEGV/SEGV_MAPERR at address 0xdead0beef8, pc 0x' <<< "$(details k)"

# Trace bytes that would end the data <script> or a JavaScript line: the trace's path.
evil="$T/x</script><img src=x onerror=alert(1)> "$'\xe2\x80\xa8'"end"
mkdir -p "$evil"
cp "$tr" "$evil/race.t.trace"
"$RACE" report --html "$T/e.html" "$evil/race.t.trace" > /dev/null
eq "escaping: the data holds no '<' and no raw U+2028" \
    "$(sed -n '/id="race-data">/,/<\/script>/p' "$T/e.html" | sed '1s/.*id="race-data">//; $s/<\/script>.*//' | grep -c $'<\|\xe2\x80\xa8')" 0
browse "$T/e.html" e
eq "escaping: the page still works" "$(st e click-finding)" shown
eq "escaping: no error in the page" "$(st e errors)" 0
eq "escaping: no image element was made of the path" "$(grep -c '<img' "$T/e.dom")" 0
check "escaping: the path shown as text" grep -qF "<h2>$(sed 's/&/\&amp;/g; s/</\&lt;/g; s/>/\&gt;/g' <<< "$evil")/race.t.trace</h2>" "$T/e.dom"

# --window: the stretch shown. With a crash and no finding it is exactly the last MS ms
# (the trace is longer: the shim's start-up alone takes more); with findings it reaches
# back to each finding's free, however long the reports in between took.
"$RACE" report --html "$T/w1.html" --window 1 "$T"/k/race.*.trace > /dev/null
eq "--window 1, a crash: the page shows exactly 1 ms" "$(grep -o '"span":[0-9]*' "$T/w1.html" | cut -d: -f2)" 1000000
env LD_PRELOAD="$SHIM" RACE_DIR="$T/a" RACE_GUARD_SITES=make_victim RACE_ON_FINDING=continue \
    "$U" loop > /dev/null 2>&1
loop=$(ls -t "$T"/a/race.*.trace | head -1)
"$RACE" report --html "$T/w.html" --window 2 "$loop" > /dev/null
eq "--window 2, five findings: at least 2 ms, and every free within the page" "$(sed -n '/id="race-data">/,/<\/script>/p' "$T/w.html" |
    sed '1s/.*id="race-data">//; $s/<\/script>.*//' | ruby -rjson -e '
        t = JSON.parse(STDIN.read)["traces"][0]
        puts [t["span"] >= 2_000_000, t["findings"].size, t["findings"].all? { |f| f["free"]["t"] >= 0 && f["use"]["t"] <= t["span"] }].join(" ")')" \
    "true 5 true"
browse "$T/w.html" w
eq "--window 2: five findings in the DOM" "$(st w findings)" 5
eq "--window 2: no error in the page" "$(st w errors)" 0

# No findings: a page that says so.
mkdir -p "$T/c"
env LD_PRELOAD="$SHIM" RACE_DIR="$T/c" "$U" clean > /dev/null 2>&1
"$RACE" report --html "$T/c.html" "$T"/c/race.*.trace > /dev/null
eq "a clean run: exit 0" "$?" 0
browse "$T/c.html" c
check "a clean run: the page says there is nothing to show" grep -q 'No trace with findings or crashes among the 1 read.' "$T/c.dom"
eq "a clean run: no error in the page" "$(st c errors)" 0

# Usage and output errors.
"$RACE" report --html "$T/no/such/x.html" "$tr" > /dev/null 2> "$T/err"
eq "an unwritable page: exit 2" "$?" 2
check "an unwritable page: one message naming it" grep -q "^race report: cannot write $T/no/such/x.html: " "$T/err"
"$RACE" report --html "$T/x.html" --window 0 "$tr" > /dev/null 2>&1
eq "--window 0: usage error 64" "$?" 64
"$RACE" report --html "$T/x.html" --window abc "$tr" > /dev/null 2>&1
eq "--window abc: usage error 64" "$?" 64
"$RACE" report "$tr" --html > /dev/null 2>&1
eq "--html without a file: usage error 64" "$?" 64
finish
