# findings.rb - reads `race report --json` on stdin and tells, for the mysql2 close
# race, whether a finding pairs mysql_close with the other call (FN: mysql_ping or
# mysql_store_result), one per line:
#   the number of findings
#   the type of the first finding ("none" when there is none)
#   then, for the first finding of type TYPE (default heap-use-after-free; "any" for
#   any type) that has mysql_close in one of its two stacks (access, free) and FN in
#   the other: its type, access tid, free tid, the access side, the free side (the
#   side is "mysql_close" or FN); or one line "none"
# usage: race report --json TRACE... | ruby findings.rb FN [TYPE]
require "json"

fn = ARGV.fetch(0)
want = ARGV[1] || "heap-use-after-free"
findings = JSON.parse($stdin.read)["findings"] || []
# which of mysql_close and fn a stack passes through ("" for neither, both joined)
side = lambda do |stack|
  names = (stack || []).map { |frame| frame["function"] }
  (["mysql_close", fn] & names).join("+")
end
puts findings.size
puts findings.empty? ? "none" : findings[0]["type"]
pair = findings.find do |f|
  (want == "any" || f["type"] == want) &&
    [side.call(f["stack"]), side.call(f.dig("free", "stack"))].sort == ["mysql_close", fn].sort
end
if pair
  puts pair["type"], pair["tid"], pair.dig("free", "tid"), side.call(pair["stack"]), side.call(pair.dig("free", "stack"))
else
  puts "none"
end
