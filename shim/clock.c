/* clock.c - picks the event clock once at start-up: the TSC when the CPU says it is
 * invariant (a few cycles per read, no syscall), else CLOCK_MONOTONIC through the
 * vDSO. Owns race_g.clock; the analyzer converts with the pairs recorded in the trace. */
#include <cpuid.h>
#include <time.h>

#include "shim.h"

uint64_t race_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void race_clock_init(void)
{
    unsigned a, b, c, d;
    race_g.clock = RACE_CLOCK_MONOTONIC;
    if (__get_cpuid(0x80000000u, &a, &b, &c, &d) && a >= 0x80000007u &&
        __get_cpuid(0x80000007u, &a, &b, &c, &d) && (d & (1u << 8)))
        race_g.clock = RACE_CLOCK_TSC;
}

/* Ticks to nanoseconds inside the process (for the immediate report): the TSC rate
 * from the start-up pair to now. */
uint64_t race_ticks_to_ns(uint64_t ticks)
{
    if (race_g.clock != RACE_CLOCK_TSC || !race_g.hdr)
        return ticks;
    uint64_t dt = __rdtsc() - race_g.hdr->clock_ts0, dn = race_mono_ns() - race_g.hdr->clock_mono0;
    if (!dt || !dn)
        return 0;
    return (uint64_t)((long double)ticks * dn / dt);
}
