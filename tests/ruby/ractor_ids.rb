# Each of three Ractors frees one heap string of a size that names it (String#clear
# releases the buffer through ruby_sized_xfree on the Ractor that runs it) and reports
# its own Ractor id as Ruby prints it. The test then demands that the free of that
# size carries that Ractor id in the trace.
Warning[:experimental] = false if Warning.respond_to?(:[]=)
rs = (1..3).map do |k|
  Ractor.new(k) do |n|
    size = 50_000 + n * 1000
    s = "x" * size
    s.clear
    [Ractor.current.inspect[/#(\d+)/, 1].to_i, size]
  end
end
rs.each do |r|
  id, size = r.take
  puts "#{id} #{size}"
end
