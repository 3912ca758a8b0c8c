# One Ractor allocates and frees a block through the UafExt C extension; a second Ractor
# then reads it through the stale address. With a block of SIZE bytes (argument, default
# 300000) glibc unmaps it on free, so the read crashes: Ruby prints its [BUG] report and
# aborts. Each Ractor's id is printed (flushed) before the read.
Warning[:experimental] = false if Warning.respond_to?(:[]=)
require "uafext"
$stdout.sync = true
size = Integer(ARGV[0] || 300000)
freer = Ractor.new(size) do |n|
  addr = UafExt.alloc(n)
  UafExt.free(addr)
  [Ractor.current.inspect[/#(\d+)/, 1].to_i, addr]
end
freer_id, addr = freer.take
puts "freer #{freer_id}"
reader = Ractor.new(addr) do |a|
  Ractor.yield Ractor.current.inspect[/#(\d+)/, 1].to_i
  Ractor.receive # after main has printed the id
  UafExt.read(a)
end
puts "reader #{reader.take}"
reader.send(:go)
puts "value 0x#{(reader.take & 0xffffffffffffffff).to_s(16)}"
