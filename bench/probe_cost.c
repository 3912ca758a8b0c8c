/* probe_cost.c - what one probe hit costs: a loop calls an out-of-line function (an
 * entry hook when watched) and a caller holding an inlined copy of another (a
 * breakpoint when watched), and prints nanoseconds per call of each. bench/watch.sh
 * runs it unwatched and watched; the difference is the cost of a hit.
 *   usage: probe_cost [CALLS]     (default 200000)
 *   build: see bench/watch.sh (-O2 -g: the inlined copy must be in the DWARF) */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

extern long probe_outofline(long x);
extern long probe_inlined(long x);
extern long probe_caller(long x);

__attribute__((noinline)) long probe_outofline(long x)
{
    return x * 3 + 1;
}

/* extern inline with an out-of-line copy too: the copy inside probe_caller is a
 * DW_TAG_inlined_subroutine, which only a breakpoint can watch */
__attribute__((always_inline)) inline long probe_inlined(long x)
{
    return (x ^ 0x55) * 7 + (x >> 3);
}

__attribute__((noinline)) long probe_caller(long x)
{
    return probe_inlined(x) + 1;
}

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 200000;
    if (n <= 0) {
        fprintf(stderr, "usage: probe_cost [CALLS > 0]\n");
        return 64;
    }
    volatile long sink = 0;
    double t0 = now_ns();
    for (long i = 0; i < n; i++)
        sink += probe_outofline(i);
    double t1 = now_ns();
    for (long i = 0; i < n; i++)
        sink += probe_caller(i);
    double t2 = now_ns();
    printf("outofline_ns %.1f\ninlined_ns %.1f\nsink %ld\n", (t1 - t0) / n, (t2 - t1) / n, (long)sink);
    return 0;
}
