# kwargs.rb - reaches every copy of rb_vm_ci_lookup in Ruby 3.4 with a kwarg block:
# super(k: v) (vm_search_super_method) and `...` forwarding (vm_callee_setup_arg, both
# of its call sites); the out-of-line copy is reached by compiling calls with keywords.
class A
  def initialize(k: 1, **o) = @k = k
  def m(a, b = 2, *r, k: 1, **o) = k
end
class B < A
  def initialize(k: 2) = super(k: k)
  def m(a, k: 3) = super(a, k: k, z: 4)
end
def g(a, b = 1, *c, d:, **e) = d
def tgt(*a, **k) = k
def fwd2(...) = tgt(...)
def fwd1(...) = fwd2(0, ...)
h = {d: 5, x: 6}
10.times do
  B.new(k: 3)
  B.new.m(1)
  g(1, **h)
  g(1, 2, 3, d: 4, y: 5)
  send(:fwd2, 1, k: 2)
  fwd1(1, k: 2)
  method(:fwd2).call(1, z: 1)
end
puts :done
