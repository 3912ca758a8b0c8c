# vg_errors.awk - reads one Valgrind memcheck log (valgrind --log-file=...) for
# bench/peers.sh and prints what it reported, on one line:
#   contexts=C errors=E gc_scan=G uaf_read=U
# C and E are from memcheck's ERROR SUMMARY (E counts repeats of a context); G is how
# many of the printed contexts have a frame in Ruby's conservative scan of machine
# stacks (gc_mark_maybe..., rb_gc_mark_machine_context: reads of uninitialised stack
# words, false positives for a conservative GC); U is 1 when an "Invalid read" context
# has a frame in the uafext extension (the known bug of tests/ruby/uaf_ractors.rb).
# Then one line per printed context: "context<TAB>gc_scan|other<TAB>its heading".
# A context is a heading line (no indentation) followed by "   at 0x..." frames.
#   usage: awk -f bench/peers/vg_errors.awk VALGRIND.LOG

function close_context() {
    if (heading == "")
        return
    scan = (ctx ~ /gc_mark_maybe|rb_gc_mark_machine_context|mark_current_machine_context|rb_gc_mark_locations/)
    gc_scan += scan
    if (heading ~ /^Invalid read/ && ctx ~ /uafext\.(c|so)/)
        uaf = 1
    lines[++n] = "context\t" (scan ? "gc_scan" : "other") "\t" heading
    heading = ""
    ctx = ""
}

{
    sub(/^==[0-9]+== ?/, "")
}

/^ERROR SUMMARY:/ {
    errors = $3
    contexts = $6
    next
}

/^   at 0x/ && heading == "" && prev != "" && prev !~ /^[ \t]/ && prev !~ /^Thread [0-9]+:$/ {
    heading = prev
}

heading != "" {
    if ($0 == "")
        close_context()
    else
        ctx = ctx "\n" $0
}

{
    prev = $0
}

END {
    close_context()
    if (errors == "") {
        print "vg_errors.awk: no ERROR SUMMARY in " FILENAME ": not a complete memcheck log" > "/dev/stderr"
        exit 1
    }
    printf "contexts=%d errors=%d gc_scan=%d uaf_read=%d\n", contexts, errors, gc_scan, uaf
    for (i = 1; i <= n; i++)
        print lines[i]
}
