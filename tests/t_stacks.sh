# Stacks: with RACE_STACK_SAMPLE=1 every free has a stack in the depot, symbolized
# offline from the recorded module map, including code loaded later with dlopen;
# repeated identical stacks are stored once.
source tests/lib.sh
cat > "$T/plugin.c" <<'C'
#include <stdlib.h>
__attribute__((noinline)) void plugin_free_block(void)
{
    void *volatile p = malloc(3333);
    free(p);
}
C
cc -shared -fPIC -g -O1 -o "$T/libplugin.so" "$T/plugin.c"
env LD_PRELOAD="$SHIM" RACE_DIR="$T" RACE_STACK_SAMPLE=1 "$BIN/dlopen_target" "$T/libplugin.so" 2>/dev/null
eq "target runs" "$?" 0
f=$(one_trace "$T")
"$RACE" dump --json --stacks "$f" > "$T/dump.jsonl" 2> "$T/dump.err"
eq "race dump --stacks reads it" "$?" 0
frames() { # frames SIZE: "function file:line" of the stack of the free of that size
    ruby -rjson -e '
        lo = ARGV[0].to_i
        STDIN.each_line do |l|
          e = JSON.parse(l)
          next unless e["kind"] == "free" && e["size"] >= lo && e["size"] < lo + 32
          (e["stack"] || []).each { |fr| puts "#{fr["function"]} #{File.basename(fr["file"].to_s)}:#{fr["line"]}" }
          break
        end' "$1" < "$T/dump.jsonl"
}
s1=$(frames 4444)
check "free in the executable: innermost frame is main_frees_here in dlopen_target.c" \
    bash -c "echo '$s1' | head -1 | grep -q '^main_frees_here dlopen_target.c:1[0-9]$'"
check "free in the executable: main is the caller" bash -c "echo '$s1' | sed -n 2p | grep -q '^main dlopen_target.c:'"
s2=$(frames 3333)
check "free in a dlopened library: plugin_free_block in plugin.c:5" \
    bash -c "echo '$s2' | head -1 | grep -q '^plugin_free_block plugin.c:5$'"
check "free in a dlopened library: called from main" bash -c "echo '$s2' | sed -n 2p | grep -q '^main dlopen_target.c:'"
# dedup: run a loop of identical frees and demand far fewer unique stacks than frees.
# Only the program's own frees count (innermost frame in crash_target's main): the
# shim's start-up also frees, through libdw, and how often depends on whether this
# build's DWARF answers are cached yet (RACE_CACHE_DIR): 5 distinct stacks with a warm
# cache, 21 to over 4,000 with a cold one, as on a fresh clone. The loop's 50,000 frees
# share one call site and the last free another: a depot that failed to deduplicate
# would give up to 50,001 ids there, a correct one exactly 2 (one thread: no two
# inserts of one stack can race), so the bound cannot be missed by chance.
mkdir -p "$T/loop"
env LD_PRELOAD="$SHIM" RACE_DIR="$T/loop" RACE_STACK_SAMPLE=1 "$BIN/crash_target" abort > /dev/null 2>&1
f=$(one_trace "$T/loop")
"$RACE" dump --json --stacks "$f" 2>/dev/null | ruby -rjson -e '
    ids = {}; n = 0
    STDIN.each_line do |l|
      e = JSON.parse(l)
      next unless e["kind"] == "free" && e["stack_id"] > 0
      top = (e["stack"] || [])[0] || {}
      next unless top["function"] == "main" && File.basename(top["file"].to_s) == "crash_target.c"
      n += 1; ids[e["stack_id"]] = 1
    end
    puts "#{n} #{ids.size}"' > "$T/dedup"
read -r nfree nstacks < "$T/dedup"
ge "50000 frees from one loop, all stacked in main" "$nfree" 50001
eq "the depot stores the loop's frees as one stack and the last free as another" "$nstacks" 2
finish
