/* uaf_threads.c - deterministic bugs across threads, for the detector tests:
 *   read|write  the main thread allocates (make_victim), thread F frees (free_victim),
 *               then thread U reads or writes through the stale pointer (use_victim);
 *   double      thread F frees twice;   invalid  thread F frees an interior pointer;
 *   together    two threads free the block at the same moment (one is a double free,
 *               reported while the other may still be inside its free);
 *   overflow    the main thread writes one byte past a 32-byte block (overflow_victim);
 *   slack       one byte past a 33-byte block (caught when the block is freed);
 *   loop        five times on the main thread: allocate, free, write (five findings, one group);
 *   clean       the same threads without a bug.
 * Prints each thread's id as "ROLE tid N" so the test can match the report.
 * Guard the victim with RACE_GUARD_SITES=make_victim. */
#pragma GCC diagnostic ignored "-Wuse-after-free"
#pragma GCC diagnostic ignored "-Wfree-nonheap-object"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *mode;
static char *volatile victim;
static volatile long sink;

__attribute__((noinline)) char *make_victim(size_t n)
{
    char *p = malloc(n);
    memset(p, 7, n);
    __asm__ volatile("" ::: "memory");
    return p;
}

__attribute__((noinline)) void free_victim(char *p)
{
    free(p);
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) void use_victim(char *p)
{
    if (strcmp(mode, "write") == 0)
        ((volatile long *)p)[1] = 42;
    else
        sink = ((volatile long *)p)[1];
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) void overflow_victim(char *p, size_t n)
{
    ((volatile char *)p)[n] = 1;
    __asm__ volatile("" ::: "memory");
}

static void *freer(void *arg)
{
    (void)arg;
    printf("free tid %d\n", (int)gettid());
    fflush(stdout);
    if (strcmp(mode, "clean") != 0)
        free_victim(victim);
    if (strcmp(mode, "double") == 0)
        free_victim(victim);
    return NULL;
}

static pthread_barrier_t both;

static void *together(void *arg)
{
    (void)arg;
    pthread_barrier_wait(&both);
    free_victim(victim);
    return NULL;
}

static void *user(void *arg)
{
    (void)arg;
    printf("use tid %d\n", (int)gettid());
    fflush(stdout);
    use_victim(victim);
    return NULL;
}

int main(int argc, char **argv)
{
    mode = argc > 1 ? argv[1] : "read";
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("alloc tid %d\n", (int)gettid());
    if (strcmp(mode, "overflow") == 0 || strcmp(mode, "slack") == 0) {
        size_t n = mode[0] == 'o' ? 32 : 33;
        char *p = make_victim(n);
        overflow_victim(p, n);
        free_victim(p);
        printf("done\n");
        return 0;
    }
    if (strcmp(mode, "loop") == 0) {
        mode = "write";
        for (int i = 0; i < 5; i++) {
            char *p = make_victim(48);
            free_victim(p);
            use_victim(p);
        }
        printf("done\n");
        return 0;
    }
    victim = make_victim(48);
    if (strcmp(mode, "invalid") == 0)
        victim += 8;
    pthread_t f, u;
    if (strcmp(mode, "together") == 0) {
        pthread_barrier_init(&both, NULL, 2);
        pthread_create(&f, NULL, together, NULL);
        pthread_create(&u, NULL, together, NULL);
        pthread_join(f, NULL);
        pthread_join(u, NULL);
        printf("done\n");
        return 0;
    }
    pthread_create(&f, NULL, freer, NULL);
    pthread_join(f, NULL);
    if (strcmp(mode, "read") == 0 || strcmp(mode, "write") == 0 || strcmp(mode, "clean") == 0) {
        pthread_create(&u, NULL, user, NULL);
        pthread_join(u, NULL);
    }
    if (strcmp(mode, "clean") == 0)
        free_victim(victim);
    printf("done\n");
    return 0;
}
