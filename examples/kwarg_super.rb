# Parallel Ractors whose initialize calls super with keyword arguments, under
# allocation pressure: on Ruby 3.4.5 the call-info kwarg block's reference count is
# updated without atomics (rb_vm_ci_lookup, rb_imemo_free), so a GC sweep can free a
# kwarg block another Ractor is about to pass to rb_vm_ci_lookup: a use-after-free
# (Ruby Bug #22075). Plain runs crash or misbehave in some runs; Ruby 3.1 has no
# call-info table and runs it cleanly (Struct stands in for Data there).
#   usage: ruby examples/kwarg_super.rb [RACTORS] [ROUNDS]
Warning[:experimental] = false if Warning.respond_to?(:[]=)

Base = defined?(Data) ? Data.define(:name, :size, :tag) : Struct.new(:name, :size, :tag, keyword_init: true)

# Many classes, so many distinct super call sites whose call-infos are created at
# run time (vm_search_super_method -> vm_ci_new_runtime -> rb_vm_ci_lookup).
CLASSES = 24.times.map do |i|
  klass = Class.new(Base)
  # a plain def (define_method's block would not be shareable between Ractors)
  klass.class_eval <<~RUBY, __FILE__, __LINE__ + 1
    def initialize(name:, size: #{i}, tag: :t)
      super(name: name, size: size + 1, tag: tag)
    end
  RUBY
  klass
end.freeze

ractors = Integer(ARGV[0] || 4)
rounds = Integer(ARGV[1] || 3000)
workers = ractors.times.map do |r|
  Ractor.new(r, rounds) do |id, n|
    sum = 0
    n.times do |i|
      klass = CLASSES[(i * 7 + id) % CLASSES.size]
      obj = klass.new(name: "n#{i}", size: i % 13)
      junk = Array.new(20) { |k| "x#{k}" * (k % 5 + 1) }  # allocation pressure: GC runs often
      sum += obj.size + junk.size
      GC.start if i % 997 == 0
    end
    [id, sum]
  end
end
workers.each do |w|
  id, sum = w.take
  puts "ractor #{id}: #{sum}"
end
