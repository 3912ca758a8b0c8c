/* free_cost.c - microbenchmark of what one free costs, run by bench/run.sh with and
 * without librace.so preloaded; the difference of the medians is the shim's cost per
 * free. Prints one line ending in "ns_per_pair=X" (X: wall ns per malloc+free pair per
 * thread). Not a test: it checks nothing and never fails on a slow result.
 *   usage: free_cost MODE PAIRS [THREADS|Np] [DEPTH] [WARMUP]
 *   MODE    pair:  malloc(32), touch, free, in a tight loop
 *           batch: 256 blocks of 16..528 bytes allocated, then freed in a shuffled order
 *           cold:  like pair, but no warm-up: includes first-touch page faults of the ring
 *   THREADS threads in one process (default 1); "Np": N single-threaded processes
 *           instead, each exec'd afresh (own start-up, own trace): the control with no
 *           shared ring and no shared address space
 *   DEPTH   extra call frames under the loop (a deep stack makes unwinding dearer)
 *   WARMUP  pairs run before timing (default 300000: more than a 16 MiB ring holds)
 * The loop always runs on a thread the program creates, never on the main thread, so
 * the shim treats every row alike (per-thread sampling state starts at thread start).
 * All threads or processes warm up, then start the timed loop together; the slowest
 * one's time is reported. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BATCH 256
#define MAX_PAR 64

enum mode { MODE_PAIR, MODE_BATCH, MODE_COLD };

struct job {
    enum mode mode;
    long pairs;
    long warmup;
    int depth;
    pthread_barrier_t *start; /* threads: released together */
    int ready_fd, go_fd;      /* exec'd processes: say ready, wait for go (-1: none) */
};

static __thread void *volatile sink; /* keeps malloc+free pairs from being elided; per thread */
static uint16_t perm[BATCH];

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void run_pairs(long n)
{
    for (long i = 0; i < n; i++) {
        char *p = malloc(32);
        p[0] = (char)i;
        sink = p;
        free(p);
    }
}

static void run_batches(long n)
{
    void *blk[BATCH];
    for (long done = 0; done < n; done += BATCH) {
        for (int k = 0; k < BATCH; k++) {
            char *p = malloc(16 + (size_t)(k % 32) * 16);
            p[0] = (char)k;
            blk[k] = p;
        }
        sink = blk[perm[0]];
        for (int k = 0; k < BATCH; k++)
            free(blk[perm[k]]);
    }
}

static void run(const struct job *j, long n)
{
    if (j->mode == MODE_BATCH)
        run_batches(n);
    else
        run_pairs(n);
}

static void wait_for_start(const struct job *j)
{
    if (j->start)
        pthread_barrier_wait(j->start);
    if (j->ready_fd >= 0) {
        char c = 'r', buf;
        if (write(j->ready_fd, &c, 1) != 1 || read(j->go_fd, &buf, 1) < 0)
            exit(1); /* the go pipe is closed, not written: read returns 0 */
    }
}

/* Recurses DEPTH times before running, so a sampled stack is DEPTH frames deeper.
 * The empty asm after the call keeps it from becoming a tail call. Returns the ns of
 * the timed loop. */
static __attribute__((noinline)) long nest(const struct job *j, int d)
{
    if (d > 0) {
        long r = nest(j, d - 1);
        __asm__ volatile("" : : "r"(r) : "memory");
        return r;
    }
    if (j->mode != MODE_COLD)
        run(j, j->warmup);
    wait_for_start(j);
    uint64_t t0 = now_ns();
    run(j, j->pairs);
    return (long)(now_ns() - t0);
}

static void *thread_main(void *arg)
{
    const struct job *j = arg;
    return (void *)nest(j, j->depth);
}

/* N threads of one process released together; returns the slowest one's ns, or -1. */
static long run_threads(struct job *j, int n)
{
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)n);
    j->start = &start;
    pthread_t tid[MAX_PAR];
    for (int i = 0; i < n; i++)
        if (pthread_create(&tid[i], NULL, thread_main, j)) {
            fprintf(stderr, "free_cost: pthread_create failed\n");
            return -1;
        }
    long ns = 0;
    for (int i = 0; i < n; i++) {
        void *r;
        pthread_join(tid[i], &r);
        if ((long)r > ns)
            ns = (long)r;
    }
    pthread_barrier_destroy(&start);
    return ns;
}

/* N copies of this program exec'd as "free_cost --child READY GO MODE PAIRS DEPTH
 * WARMUP", released together when the go pipe closes; each prints its ns on the
 * shared output pipe. Returns the slowest one's ns, or -1. */
static long run_processes(const char *mode, const struct job *j, int n)
{
    int ready[2], go[2], out[2];
    if (pipe(ready) || pipe(go) || pipe(out)) {
        fprintf(stderr, "free_cost: pipe failed\n");
        return -1;
    }
    char rfd[16], gfd[16], pairs[24], depth[16], warmup[24];
    snprintf(rfd, sizeof(rfd), "%d", ready[1]);
    snprintf(gfd, sizeof(gfd), "%d", go[0]);
    snprintf(pairs, sizeof(pairs), "%ld", j->pairs);
    snprintf(depth, sizeof(depth), "%d", j->depth);
    snprintf(warmup, sizeof(warmup), "%ld", j->warmup);
    char *args[] = {"free_cost", "--child", rfd, gfd, (char *)mode, pairs, depth, warmup, NULL};
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            fprintf(stderr, "free_cost: fork failed\n");
            return -1;
        }
        if (pid == 0) {
            close(ready[0]);
            close(go[1]);
            close(out[0]);
            dup2(out[1], 1);
            execv("/proc/self/exe", args);
            _exit(127);
        }
    }
    close(ready[1]);
    close(go[0]);
    close(out[1]);
    char c;
    for (int i = 0; i < n; i++)
        if (read(ready[0], &c, 1) != 1) {
            fprintf(stderr, "free_cost: a child did not start\n");
            return -1;
        }
    close(go[1]); /* go */
    FILE *f = fdopen(out[0], "r");
    long ns = 0, v;
    int got = 0;
    while (f && fscanf(f, "%ld", &v) == 1) {
        got++;
        if (v > ns)
            ns = v;
    }
    for (int i = 0; i < n; i++) {
        int st;
        if (wait(&st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
            got = -1;
    }
    if (got != n) {
        fprintf(stderr, "free_cost: a child failed\n");
        return -1;
    }
    return ns;
}

static int parse_mode(const char *s, enum mode *m)
{
    if (!strcmp(s, "pair"))
        *m = MODE_PAIR;
    else if (!strcmp(s, "batch"))
        *m = MODE_BATCH;
    else if (!strcmp(s, "cold"))
        *m = MODE_COLD;
    else
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    /* A fixed shuffle, so free order differs from allocation order. */
    uint32_t x = 2463534242u;
    for (int k = 0; k < BATCH; k++)
        perm[k] = (uint16_t)k;
    for (int k = BATCH - 1; k > 0; k--) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        int r = (int)(x % (uint32_t)(k + 1));
        uint16_t tmp = perm[k];
        perm[k] = perm[r];
        perm[r] = tmp;
    }

    struct job j = {.ready_fd = -1, .go_fd = -1};
    if (argc == 8 && !strcmp(argv[1], "--child")) {
        j.ready_fd = atoi(argv[2]);
        j.go_fd = atoi(argv[3]);
        if (parse_mode(argv[4], &j.mode))
            return 2;
        j.pairs = atol(argv[5]);
        j.depth = atoi(argv[6]);
        j.warmup = atol(argv[7]);
        long ns = run_threads(&j, 1);
        printf("%ld\n", ns);
        return ns < 0;
    }

    if (argc < 3 || parse_mode(argv[1], &j.mode)) {
        fprintf(stderr, "usage: free_cost pair|batch|cold PAIRS [THREADS|Np] [DEPTH] [WARMUP]\n");
        return 2;
    }
    j.pairs = atol(argv[2]);
    int par = argc > 3 ? atoi(argv[3]) : 1;
    int procs = argc > 3 && strchr(argv[3], 'p') != NULL;
    j.depth = argc > 4 ? atoi(argv[4]) : 0;
    j.warmup = argc > 5 ? atol(argv[5]) : 300000;
    if (j.pairs <= 0 || par < 1 || par > MAX_PAR || j.depth < 0 || j.warmup < 0) {
        fprintf(stderr, "free_cost: bad arguments\n");
        return 2;
    }
    if (j.mode == MODE_BATCH)
        j.pairs = (j.pairs + BATCH - 1) / BATCH * BATCH;

    long ns = procs ? run_processes(argv[1], &j, par)
              : run_threads(&j, par);
    if (ns < 0)
        return 1;
    printf("mode=%s pairs=%ld %s=%d depth=%d ns_per_pair=%.2f\n", argv[1], j.pairs,
           procs ? "processes" : "threads", par, j.depth, (double)ns / (double)j.pairs);
    return 0;
}
