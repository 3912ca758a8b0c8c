/* storm_target.c - a storm of findings for tests/t_storm.sh and bench/storm.sh: THREADS
 * threads each ITERS times allocate a block (storm_victim: the site to guard), free it
 * and read it again (storm_read: one instruction, so every read is the same pc). Under
 * RACE_GUARD_SITES=storm_victim RACE_ON_FINDING=continue every read faults, is a
 * use-after-free finding, and comes back as 0xfd poison; as guarded slots are reused,
 * the same (pc, block) pairs come back again and again.
 *   storm_target storm THREADS ITERS   the storm
 *   storm_target serial THREADS ITERS  the same, one iteration at a time (a mutex): no
 *                                      slot can be reused between a free and its read,
 *                                      so every read faults exactly once and sees poison
 *   storm_target quiet THREADS ITERS   the same allocations and frees, no read: the run
 *                                      time of the program when there is nothing to report
 * Prints "reads N poisoned P": P reads saw poison, i.e. faulted and were let through. */
/* It reads blocks it has freed, on purpose: that is the storm. */
#pragma GCC diagnostic ignored "-Wuse-after-free"
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int iters, do_read, serial;
static pthread_mutex_t one_at_a_time = PTHREAD_MUTEX_INITIALIZER;
static uint64_t poisoned[256];

__attribute__((noinline)) static uint64_t *storm_victim(void)
{
    uint64_t *p = malloc(48);
    if (!p)
        abort();
    memset(p, 0x11, 48);
    return p;
}

__attribute__((noinline)) static uint64_t storm_read(volatile uint64_t *p)
{
    return p[1];
}

static void *worker(void *arg)
{
    uint64_t *mine = arg;
    for (int i = 0; i < iters; i++) {
        if (serial)
            pthread_mutex_lock(&one_at_a_time);
        uint64_t *p = storm_victim();
        free(p);
        if (do_read && storm_read(p) == 0xfdfdfdfdfdfdfdfdull)
            (*mine)++;
        if (serial)
            pthread_mutex_unlock(&one_at_a_time);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = argc == 4 ? atoi(argv[2]) : 0;
    iters = argc == 4 ? atoi(argv[3]) : 0;
    if (argc != 4 || (strcmp(argv[1], "storm") && strcmp(argv[1], "serial") && strcmp(argv[1], "quiet")) || threads < 1 ||
        threads > 256 || iters < 1) {
        fprintf(stderr, "usage: storm_target storm|serial|quiet THREADS ITERS\n");
        return 64;
    }
    do_read = argv[1][0] == 's';
    serial = argv[1][1] == 'e';
    pthread_t t[256];
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, worker, &poisoned[i]);
    uint64_t sum = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        sum += poisoned[i];
    }
    printf("reads %llu poisoned %llu\n", do_read ? (unsigned long long)threads * (unsigned long long)iters : 0ull,
           (unsigned long long)sum);
    return 0;
}
