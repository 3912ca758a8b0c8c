/* racy.c - a use-after-free race with a window of microseconds, for the detection-rate
 * benchmark: a reader thread keeps loading from a 96-byte block (allocated in
 * racy_alloc) through its pointer for READ_US microseconds, while the main thread
 * frees it after a random FREE_US in [0, 50) microseconds; meanwhile both churn through
 * CHURN other allocations, so untargeted sampling rarely picks the victim. Exits 0;
 * the detector's report (stderr) and trace are what the benchmark counts.
 *   usage: racy [SEED] [CHURN]    */
#pragma GCC diagnostic ignored "-Wuse-after-free"
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define READ_US 200

static char *volatile victim;
static volatile int go;
static volatile long sink;

static uint64_t now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

__attribute__((noinline)) char *racy_alloc(size_t n)
{
    char *p = malloc(n);
    __asm__ volatile("" ::: "memory");
    return p;
}

static void churn(long n, unsigned seed)
{
    void *keep[32] = {0};
    for (long i = 0; i < n; i++) {
        unsigned k = (unsigned)rand_r(&seed) % 32;
        free(keep[k]);
        keep[k] = malloc(16 + (size_t)rand_r(&seed) % 200);
    }
    for (int k = 0; k < 32; k++)
        free(keep[k]);
}

static void *reader(void *arg)
{
    (void)arg;
    while (!go)
        ;
    uint64_t end = now_us() + READ_US;
    while (now_us() < end)
        sink += ((volatile long *)victim)[3];
    return NULL;
}

int main(int argc, char **argv)
{
    unsigned seed = argc > 1 ? (unsigned)atoi(argv[1]) : (unsigned)time(NULL);
    long n = argc > 2 ? atol(argv[2]) : 20000;
    churn(n, seed);
    victim = racy_alloc(96);
    for (int i = 0; i < 96; i++)
        victim[i] = (char)i;
    pthread_t r;
    pthread_create(&r, NULL, reader, NULL);
    uint64_t delay = (uint64_t)(rand_r(&seed) % 50);
    go = 1;
    uint64_t t0 = now_us();
    while (now_us() - t0 < delay)
        ;
    free(victim);
    churn(n, seed + 1);
    pthread_join(r, NULL);
    printf("freed after %llu us\n", (unsigned long long)delay);
    return 0;
}
