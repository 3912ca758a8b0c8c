# A use-after-free across two Ractors through the UafExt C extension, from methods on
# known lines: tests/t_rubyframes.sh expects the free on line 7 and the read on line 11.
Warning[:experimental] = false if Warning.respond_to?(:[]=)
require "uafext"

def release(addr)
  UafExt.free(addr)
end

def peek(addr)
  UafExt.read(addr)
end

freer = Ractor.new do
  addr = UafExt.alloc(2000)
  release(addr)
  addr
end
addr = freer.take
reader = Ractor.new(addr) { |a| peek(a) }
reader.take
puts "done"
