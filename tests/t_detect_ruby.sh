# The detector on real Rubies: a use-after-free across two Ractors (through a small C
# extension built here against Debian's ruby 3.1) is reported with both Ractor ids;
# Ruby's own crash report survives the shim; the Ractor churn workload is clean on
# Debian's 3.1 and on the symbol-built 3.4 (no keyword-argument super in Ractors).
source tests/lib.sh
build_uafext
check "the uafext C extension builds against Debian's ruby" test -f "$T/ext/uafext.so"

env LD_PRELOAD="$SHIM" RACE_DIR="$T" RACE_GUARD_SITES=race_victim_alloc RACE_ON_FINDING=continue \
    ruby -I"$T/ext" tests/ruby/uaf_ractors.rb > "$T/out" 2> "$T/err"
eq "cross-Ractor use-after-free: the program completes (continue)" "$?" 0
freer=$(awk '/^freer/ {print $2}' "$T/out"); reader=$(awk '/^reader/ {print $2}' "$T/out")
check "Ruby reports two different Ractors ($freer, $reader)" test -n "$freer" -a -n "$reader" -a "$freer" != "$reader"
eq "one report" "$(grep -c '==ERROR: race: heap-use-after-free' "$T/err")" 1
check "the read is by the reading Ractor" grep -q "^READ of size 8 at 0x[0-9a-f]* by thread [0-9]* (Ractor $reader) at [0-9.]* ms:" "$T/err"
check "the free is by the freeing Ractor" grep -q "^freed by thread [0-9]* (Ractor $freer) via free" "$T/err"
check "allocated by the freeing Ractor" grep -q "^previously allocated by thread [0-9]* (Ractor $freer) at [0-9.]* ms:" "$T/err"
check "the use stack starts in uafext.so" bash -c "grep -A1 '^READ of size' '$T/err' | tail -1 | grep -q 'uafext.so+0x'"
check "the read returned poison, not the old contents" grep -q '^value 0xfdfdfdfdfdfdfdfd$' "$T/out"

# A crash that is not ours: Ruby prints its [BUG] report and aborts, exactly as without the shim.
ruby -I"$T/ext" -ruafext -e 'UafExt.crash' > "$T/plain" 2>&1; plain=$?
env LD_PRELOAD="$SHIM" RACE_DIR="$T" ruby -I"$T/ext" -ruafext -e 'UafExt.crash' > "$T/shim" 2>&1; shim=$?
eq "NULL store in a C extension: same exit status with the shim ($plain)" "$shim" "$plain"
check "Ruby's own [BUG] report is printed" grep -q '^-e:1: \[BUG\] Segmentation fault at 0x0000000000000000' "$T/shim"
eq "and race reports nothing of its own" "$(grep -c '==ERROR: race' "$T/shim")" 0

clean_churn() { # clean_churn LABEL RUBY
    local d=$T/$1; mkdir -p "$d"
    "$2" examples/ractor_churn.rb 3 20000 > "$d/plain" 2>&1
    env LD_PRELOAD="$SHIM" RACE_DIR="$d" RACE_GUARD_SAMPLE=50 RACE_QUARANTINE_MB=8 RACE_ON_FINDING=continue \
        "$2" examples/ractor_churn.rb 3 20000 > "$d/shim" 2> "$d/err"
    eq "$1: churn with 1 in 50 allocations guarded and an 8 MiB quarantine exits 0" "$?" 0
    check "$1: same output as without the shim" cmp -s "$d/plain" "$d/shim"
    eq "$1: no finding" "$(grep -c '==ERROR: race' "$d/err")" 0
}
clean_churn ruby3.1 /usr/bin/ruby
ruby34=$(scripts/build-ruby.sh) && clean_churn ruby3.4 "$ruby34"

# Ruby 3.4 frees its worker Ractors' rb_ractor_t at exit; guarded, they turn PROT_NONE
# while threads still run. The Ractor-id read must never follow a pointer into the
# pool (it used to fault inside the shim and die silently, 6 runs in 10).
died=0
for i in 1 2 3; do
    rc=$( (env LD_PRELOAD="$SHIM" RACE_DIR="$T" RACE_GUARD_SITES=ractor_create RACE_GUARD_SIZES=520-520 \
        RACE_ON_FINDING=continue taskset -c 0 "$ruby34" examples/ractor_churn.rb 2 20000 > /dev/null 2>&1; echo $?) 2>/dev/null)
    [ "$rc" -ge 128 ] && died=$((died + 1))
done
eq "ruby3.4: Ractor structs in guarded slots: no death by signal in 3 runs" "$died" 0
finish
