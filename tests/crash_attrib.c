/* crash_attrib.c - crashes race report must explain (or must not) from the recorded frees:
 *   uaf     thread "freer" frees a 256 KiB block (glibc unmaps it: over the mmap threshold)
 *           after thread "user" has taken a pointer into it; then "user" reads a pointer
 *           stored in the block and dereferences it: SIGSEGV at the block's address
 *   stale   thread "freer" frees a 200-byte block holding a pointer; thread "user" then
 *           loads that pointer from it (glibc's tcache link, garbage) and dereferences
 *           it: SIGSEGV somewhere else, the block's address still in a register; guarded
 *           (RACE_GUARD_SIZES around its size), the load faults instead: a finding
 *   double  thread "freer" frees a 64-byte block, and later again: glibc aborts
 *   wild    a thread frees 1000 blocks and exits; main then stores through a wild
 *           pointer no block ever covered: nothing explains it
 * Prints "block 0xADDR SIZE freer TID user TID" for the test to check the report against.
 * Run it unguarded (RACE_GUARD_SAMPLE=0): the point is a crash, not a guarded fault. */
#pragma GCC diagnostic ignored "-Wuse-after-free"
#pragma GCC diagnostic ignored "-Wfree-nonheap-object"
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define BIG (256u * 1024u)

static void **volatile block;
static volatile pid_t freer_tid;
static volatile int freed, done, twice;

/* The barrier after each free keeps it from becoming a tail call: the function stays
 * on the free's stack. */
static __attribute__((noipa)) void first_free(void)
{
    free((void *)block);
    __asm__ volatile("" ::: "memory");
}

static __attribute__((noipa)) void second_free(void)
{
    free((void *)block);
    __asm__ volatile("" ::: "memory");
}

/* Frees the block, then stays alive until main is done: a thread that exits flushes its
 * tcache into the arena, and the freed block would look like something else. */
static void *freer(void *arg)
{
    (void)arg;
    freer_tid = (pid_t)syscall(SYS_gettid);
    first_free();
    freed = 1;
    while (!done)
        usleep(1000);
    if (twice)
        second_free(); /* glibc finds it in this thread's tcache: abort */
    return NULL;
}

static void start_freer(pthread_t *t)
{
    pthread_create(t, NULL, freer, NULL);
    while (!freed)
        usleep(1000);
}

static __attribute__((noipa)) long use_block(void **volatile *where)
{
    void **p = *where;     /* the pointer taken before the free */
    long *inner = p[1];    /* a pointer read from the freed block: faults, it is unmapped */
    return *inner;
}

static void *user(void *arg)
{
    (void)arg;
    printf("user %ld\n", (long)syscall(SYS_gettid));
    fflush(stdout);
    return (void *)use_block(&block);
}

/* p stays in its register: the load through it is what a guard page would catch. */
static __attribute__((noipa)) long use_stale(long **p)
{
    long *inner = p[0];
    __asm__ volatile("" ::"r"(p));
    return *inner + (long)p;
}

static void *stale_user(void *arg)
{
    (void)arg;
    printf("user %ld\n", (long)syscall(SYS_gettid));
    fflush(stdout);
    return (void *)use_stale((long **)block);
}

static void *churn(void *arg)
{
    (void)arg;
    for (int i = 0; i < 1000; i++)
        free(malloc(32 + (size_t)i % 64));
    return NULL;
}

static __attribute__((noipa)) void wild_store(volatile long *p)
{
    *p = 42;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "uaf";
    pthread_t t;
    if (strcmp(mode, "uaf") == 0) {
        block = malloc(BIG);
        static long target = 7;
        block[1] = &target;
        start_freer(&t);
        printf("block 0x%lx %u freer %ld\n", (unsigned long)(uintptr_t)block, BIG, (long)freer_tid);
        fflush(stdout);
        pthread_t u;
        pthread_create(&u, NULL, user, NULL);
        pthread_join(u, NULL);
    } else if (strcmp(mode, "stale") == 0) {
        block = malloc(200);
        static long target = 7;
        block[0] = &target;
        start_freer(&t);
        printf("block 0x%lx 200 freer %ld\n", (unsigned long)(uintptr_t)block, (long)freer_tid);
        fflush(stdout);
        pthread_t u;
        pthread_create(&u, NULL, stale_user, NULL);
        pthread_join(u, NULL);
    } else if (strcmp(mode, "double") == 0) {
        block = malloc(64);
        twice = 1;
        start_freer(&t);
        printf("block 0x%lx 64 freer %ld\n", (unsigned long)(uintptr_t)block, (long)freer_tid);
        fflush(stdout);
    } else if (strcmp(mode, "wild") == 0) {
        pthread_create(&t, NULL, churn, NULL);
        pthread_join(t, NULL);
        wild_store((volatile long *)(uintptr_t)0x7ff0dead0000ull);
    } else {
        fprintf(stderr, "usage: crash_attrib uaf|stale|double|wild\n");
        return 64;
    }
    done = 1;
    if (strcmp(mode, "wild") != 0)
        pthread_join(t, NULL);
    printf("survived\n");
    return 0;
}
