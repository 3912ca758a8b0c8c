# A crash with known Ruby frames: tests/t_rubyframes.sh expects the signal sent on
# line 5 in 'boom', called from line 10 in a block of Array#each on line 9.
# ARGV[0] == "corrupt": the C extension corrupts its caller's frame before the crash.
def boom(how)
  how == "corrupt" ? RbFramesExt.corrupt_and_crash : Process.kill(:SEGV, $$)
  sleep 1
end

[1].each do |x|
  boom(ARGV[0])
end
