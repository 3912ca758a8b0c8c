# A Ractor churn workload: RACTORS Ractors (default 2) each create and drop strings,
# arrays, hashes and objects whose initialize calls super, ROUNDS times (default 20000).
# Prints one deterministic checksum line per Ractor, so runs with and without the shim
# can be compared byte for byte. No keyword-argument super calls: on Ruby 3.4 those
# hit a real use-after-free (the subject of the rb_vm_ci_lookup check).
#   usage: ruby examples/ractor_churn.rb [RACTORS] [ROUNDS]
Warning[:experimental] = false if Warning.respond_to?(:[]=)

class Base
  attr_reader :name, :tags
  def initialize(name, tags)
    @name = name
    @tags = tags
  end
end

class Item < Base
  def initialize(name, tags, weight)
    super(name, tags)
    @weight = weight
  end

  def score
    @weight + tags.size + name.size
  end
end

ractors = Integer(ARGV[0] || 2)
rounds = Integer(ARGV[1] || 20000)

workers = ractors.times.map do |r|
  Ractor.new(r, rounds) do |id, n|
    keep = []
    sum = 0
    n.times do |i|
      s = "item-#{id}-#{i}-" * (1 + i % 7)          # heap strings of varying size
      a = Array.new(4 + i % 13) { |k| k * i }       # heap arrays, grown and dropped
      a.concat(a) if i % 5 == 0
      h = { name: s, size: a.size, key: i }          # hashes
      h["extra#{i % 3}"] = s.upcase if i % 2 == 0
      obj = Item.new(s, a, i % 11)                   # initialize calls super
      sum = (sum + obj.score + h.size) % 1_000_000_007
      keep << obj
      keep.shift(50) if keep.size > 200              # drop in batches: frees
    end
    [id, sum, keep.size]
  end
end

workers.each do |w|
  id, sum, kept = w.take
  puts "ractor #{id}: checksum #{sum} kept #{kept}"
end
