# Ractors that call through `...` forwarding with keyword arguments (no keyword super):
# on Ruby 3.4 each such call builds its call-info at run time inside
# vm_callee_setup_arg, through inlined copies of rb_vm_ci_lookup, on whichever Ractor
# makes the call, all sharing the call site's kwarg block. A second reproduction of
# Ruby Bug #22075 besides kwarg_super.rb: plain 3.4.5 crashes in some runs (2 of 3
# seen). Prints one deterministic line per Ractor when it survives.
#   usage: ruby examples/kwarg_forward.rb [RACTORS] [ROUNDS]
Warning[:experimental] = false if Warning.respond_to?(:[]=)

def target(*a, **k) = a.size + k.size
def fwd2(...) = target(...)
def fwd1(...) = fwd2(0, ...)

ractors = Integer(ARGV[0] || 3)
rounds = Integer(ARGV[1] || 2000)
workers = ractors.times.map do |r|
  Ractor.new(r, rounds) do |id, n|
    sum = 0
    n.times do |i|
      sum += fwd1(i, k: id, j: i)
      sum += fwd2(i, z: 1)
    end
    [id, sum]
  end
end
workers.each do |w|
  id, sum = w.take
  puts "ractor #{id}: #{sum}"
end
