/* clock_cost.c - what the fast path's primitives cost on this machine, back to back:
 * rdtsc, rdtscp, clock_gettime(CLOCK_MONOTONIC) through the vDSO, and an uncontended
 * lock cmpxchg. A probe for bench/README.md's findings, not part of run.sh.
 *   build: cc -O2 -std=gnu11 -Wall -Wextra -Werror -o bench/out/clock_cost bench/probes/clock_cost.c */
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <x86intrin.h>

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int main(void)
{
    const long n = 20000000;
    volatile uint64_t sink = 0;
    uint64_t t0 = now_ns();
    for (long i = 0; i < n; i++)
        sink += __rdtsc();
    uint64_t t1 = now_ns();
    printf("rdtsc          %6.2f ns\n", (double)(t1 - t0) / n);
    t0 = now_ns();
    for (long i = 0; i < n; i++) {
        unsigned aux;
        sink += __rdtscp(&aux);
    }
    t1 = now_ns();
    printf("rdtscp         %6.2f ns\n", (double)(t1 - t0) / n);
    t0 = now_ns();
    for (long i = 0; i < n / 4; i++)
        sink += now_ns();
    t1 = now_ns();
    printf("clock_gettime  %6.2f ns\n", (double)(t1 - t0) / (n / 4));
    uint64_t x = 0;
    t0 = now_ns();
    for (long i = 0; i < n; i++) {
        uint64_t old = x;
        __atomic_compare_exchange_n(&x, &old, old + 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
    }
    t1 = now_ns();
    printf("lock cmpxchg   %6.2f ns\n", (double)(t1 - t0) / n);
    return 0;
}
