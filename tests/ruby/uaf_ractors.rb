# One Ractor allocates and frees a block through the UafExt C extension; a second
# Ractor then reads it through the stale address. Each prints its Ractor id.
Warning[:experimental] = false if Warning.respond_to?(:[]=)
require "uafext"
freer = Ractor.new do
  addr = UafExt.alloc(2000)
  UafExt.free(addr)
  [Ractor.current.inspect[/#(\d+)/, 1].to_i, addr]
end
freer_id, addr = freer.take
reader = Ractor.new(addr) do |a|
  v = UafExt.read(a)
  [Ractor.current.inspect[/#(\d+)/, 1].to_i, v]
end
reader_id, value = reader.take
puts "freer #{freer_id}"
puts "reader #{reader_id}"
puts "value 0x#{(value & 0xffffffffffffffff).to_s(16)}"
