# crashes.rb - reads `race report --json` on stdin and tells, for the mysql2 close race,
# what the crash records say, one "key value" per line:
#   crashes N          crash records of processes (first == 0)
#   explained N        of them, explained by a recorded free (crash-after-free)
#   closer_free N      explained by a block the closing thread CLOSER freed (argument):
#                      the matched free, or the free of the same address just before it
#                      (the block freed twice: by the closer, then by the crashing thread),
#                      or a double free whose second free (the one glibc aborted in) is
#                      the closer's (both threads freed it at once)
#   closer_prev N      ... of them, through that earlier free
#   close_stack N      ... whose free stack was recorded and contains mysql_close
#   no_stack N         ... whose free was recorded without a stack
#   reuse R N          the best match's reuse state, per state
#   via V N            how the best match was found, per candidate
#   size S N           the best match's block size, per size
#   crash_in F N       the crashing function (first frame), per function
# usage: race report --json TRACE... | ruby crashes.rb CLOSER_TID
require "json"

closer = Integer(ARGV.fetch(0))
crashes = JSON.parse($stdin.read)["crashes"] || []
count = Hash.new(0)
crashes.each do |c|
  count["crashes"] += 1
  m = c["matches"][0]
  f0 = (c["stack"] || [])[0]
  count["crash_in #{(f0 && (f0['function'] || "#{f0['module']}+#{f0['offset']}")) || '?'}"] += 1
  next unless m
  count["explained"] += 1
  count["via #{m['via']}"] += 1
  count["reuse #{m['reuse']}"] += 1
  count["size #{m.dig('block', 'size')}"] += 1
  side = if m.dig("free", "tid") == closer then m["free"]
         elsif m.dig("previous_free", "tid") == closer then m["previous_free"]
         elsif m["via"] == "double-free" && c["tid"] == closer then {"stack" => c["stack"]}
         end
  next unless side
  count["closer_free"] += 1
  count["closer_prev"] += 1 unless side.equal?(m["free"])
  names = (side["stack"] || []).map { |fr| fr["function"] }
  if names.empty?
    count["no_stack"] += 1
  elsif names.include?("mysql_close")
    count["close_stack"] += 1
  end
end
%w[crashes explained closer_free closer_prev close_stack no_stack].each { |k| puts "#{k} #{count[k]}" }
count.keys.grep(/ /).sort.each { |k| puts "#{k} #{count[k]}" }
