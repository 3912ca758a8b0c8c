# The x86-64 probe engine over a set of code shapes (endbr64, RIP-relative loads, short
# and near jumps, calls, push/sub rsp prologues, a mid-function breakpoint), probed
# while 4 threads call them: same results, right arguments and return values, exact
# hit counts; unsafe sites refused with their reason. See tests/unit_probe.c.
source tests/lib.sh
"$BIN/unit_probe"
finish
