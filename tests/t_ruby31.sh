# Debian's ruby 3.1 (stripped, ruby_current_ec exported as TLS in .dynsym).
source tests/lib.sh
ruby_checks ruby3.1 /usr/bin/ruby no-ci-table

# Native threads that Ruby 3.1 reuses start with a stale, freed ec in TLS: the Ractor-id
# read must survive it (it crashed one run in two before its loads became fault-safe).
want=$(ruby tests/ruby/ractor_waves.rb)
good=0
for i in 1 2 3 4 5 6; do
    out=$(env LD_PRELOAD="$SHIM" RACE_DIR="$T" ruby tests/ruby/ractor_waves.rb 2> /dev/null) && [ "$out" = "$want" ] && good=$((good + 1))
    rm -f "$T"/race.*.trace
done
eq "ruby3.1: waves of short-lived Ractors on reused native threads: 6 of 6 runs correct" "$good" 6
finish
