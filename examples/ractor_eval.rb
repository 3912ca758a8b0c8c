# Ractors that compile code as they run: each eval compiles a call with keywords unique
# to that Ractor and round, so its call-info (made through rb_vm_ci_lookup on the
# Ractor doing the compiling) has a kwarg block no other Ractor ever touches: Ruby
# 3.4's kwarg reference-count race (concurrent ++/-- on one shared block) cannot
# happen. A clean workload for watching the lookup from many Ractors.
#   usage: ruby examples/ractor_eval.rb [RACTORS] [ROUNDS]
Warning[:experimental] = false if Warning.respond_to?(:[]=)
ractors = Integer(ARGV[0] || 3)
rounds = Integer(ARGV[1] || 300)
workers = ractors.times.map do |r|
  Ractor.new(r, rounds) do |id, n|
    sum = 0
    n.times do |i|
      sum += eval("->(**o) { o.values.sum }.call(r#{id}k#{i}: #{i}, r#{id}j#{i}: #{id})")
    end
    [id, sum]
  end
end
workers.each do |w|
  id, sum = w.take
  puts "ractor #{id}: #{sum}"
end
