# Waves of short-lived Ractors, each wave gathered with Ractor.select. Ruby 3.1 keeps
# finished native threads for reuse, and a reused one starts with the ruby_current_ec
# of the Ruby thread that last ran on it, long freed: whatever reads the Ractor id
# through it must survive the memory having become something else. Prints one total.
Warning[:experimental] = false if Warning.respond_to?(:[]=)
total = 0
40.times do |wave|
  rs = (wave % 25 + 1).times.map { |i| Ractor.new(i) { |k| "r#{k}".size + k } }
  until rs.empty?
    r, v = Ractor.select(*rs)
    rs.delete(r)
    total += v
  end
end
puts total
