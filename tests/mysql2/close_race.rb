# close_race.rb - Mysql2::Client#close racing with another thread's ping or query
# (shared/seeds/mysql2-close-ping-uaf-pr.txt). mysql2 0.5.3 runs both without the
# GVL, so mysql_close frees the connection's state while the other call still reads
# it. Connects as root, no password, to 127.0.0.1:$MYSQL2_TEST_PORT.
#
#   ruby close_race.rb ping N     the seed's reproducer N times, a new client each
#                                 time: Thread.new { client.ping }; client.close
#   ruby close_race.rb slow-ping  a ping left waiting behind SELECT SLEEP(0.2)
#                                 (sent with async: true), closed 50 ms in
#   ruby close_race.rb slow-query a query whose rows come 0.1 s apart, read on
#                                 another thread, closed 150 ms in (between rows)
#   ruby close_race.rb serial N   the same calls, never overlapping: each ping and
#                                 query is joined before close (the clean control)
#
# Prints, flushed before the racing close, "close tid T" (the closing thread's
# native id) and, in the slow modes, "ping tid T" or "query tid T" (the other one);
# then what each call returned and "done".
require "mysql2"

$stdout.sync = true
PORT = Integer(ENV.fetch("MYSQL2_TEST_PORT"))
# 4 rows of 20 000 bytes: each fills the server's network buffer, so each row is
# sent as soon as its SLEEP(0.1) returns, and the client waits between rows
SLOW_ROWS = "SELECT seq, REPEAT('x', 20000) AS pad, SLEEP(0.1) AS s FROM mysql.seq_1_to_4"

def client
  Mysql2::Client.new(host: "127.0.0.1", port: PORT, username: "root")
end

# what a call returned, or the class of what it raised
def outcome
  yield.inspect
rescue StandardError => e
  e.class.name
end

# runs the block on a new thread that first reports its native id
def other_thread(label)
  ids = Queue.new
  t = Thread.new do
    ids << Thread.current.native_thread_id
    outcome { yield }
  end
  puts "#{label} tid #{ids.pop}"
  t
end

mode = ARGV[0]
n = Integer(ARGV[1] || 1)
main_tid = Thread.current.native_thread_id

case mode
when "ping"
  puts "close tid #{main_tid}"
  counts = Hash.new(0)
  n.times do |i|
    c = client
    t = Thread.new { outcome { c.ping } }
    c.close
    r = t.value
    counts[r] += 1
    puts "#{i}: ping #{r}"
  end
  puts "outcomes #{counts.sort.map { |k, v| "#{k}=#{v}" }.join(' ')}"
when "slow-ping"
  c = client
  c.query("SELECT SLEEP(0.2)", async: true)
  t = other_thread("ping") { c.ping }
  sleep 0.05
  puts "close tid #{main_tid}"
  c.close
  puts "ping returned #{t.value}"
when "slow-query"
  c = client
  t = other_thread("query") { c.query(SLOW_ROWS).map { |row| row["seq"] } }
  sleep 0.15
  puts "close tid #{main_tid}"
  c.close
  puts "query returned #{t.value}"
when "serial"
  counts = Hash.new(0)
  n.times do
    c = client
    counts["ping #{Thread.new { outcome { c.ping } }.value}"] += 1
    counts["query #{Thread.new { outcome { c.query('SELECT 1 AS one').to_a } }.value}"] += 1
    c.close
    counts["closed? #{c.closed?}"] += 1
  end
  c = client
  counts["slow query #{Thread.new { outcome { c.query(SLOW_ROWS).map { |row| row['seq'] } } }.value}"] += 1
  c.close
  counts.sort.each { |k, v| puts "#{k} x#{v}" }
else
  abort "usage: ruby close_race.rb ping N | slow-ping | slow-query | serial N"
end
puts "done"
