/* alloc_stress.c - a clean multi-threaded workload over the whole allocator family
 * (malloc, calloc, realloc, reallocarray, posix_memalign, aligned_alloc, memalign,
 * free), every block filled with a pattern and checked before it is freed. Under the
 * detector (heavy guarding, quarantine) it must produce no finding and no corruption.
 * Prints "ok N" when every check held. */
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIVE 256
static long rounds = 200000;
static volatile int bad;

struct blk {
    unsigned char *p;
    size_t n;
    unsigned char tag;
};

static void fill(struct blk *b)
{
    memset(b->p, b->tag, b->n);
}

static void check_free(struct blk *b)
{
    if (!b->p)
        return;
    for (size_t i = 0; i < b->n; i++)
        if (b->p[i] != b->tag) {
            bad = 1;
            break;
        }
    free(b->p);
    b->p = NULL;
}

static void *run(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    struct blk live[LIVE] = {{0}};
    for (long r = 0; r < rounds; r++) {
        struct blk *b = &live[rand_r(&seed) % LIVE];
        size_t n = 1 + (size_t)rand_r(&seed) % (r % 100 == 0 ? 20000 : 300);
        int how = rand_r(&seed) % 7;
        if (b->p && how == 0) { /* grow or shrink in place of a free */
            unsigned char *q = realloc(b->p, n);
            if (!q) { bad = 1; continue; }
            for (size_t i = 0; i < (n < b->n ? n : b->n); i++)
                if (q[i] != b->tag) { bad = 1; break; }
            b->p = q;
            b->n = n;
            fill(b);
            continue;
        }
        check_free(b);
        void *p = NULL;
        switch (how) {
        case 1: p = calloc(1, n);
                for (size_t i = 0; p && i < n; i++) if (((unsigned char *)p)[i]) { bad = 1; break; }
                break;
        case 2: if (posix_memalign(&p, 64, n)) p = NULL; break;
        case 3: p = aligned_alloc(32, (n + 31) & ~(size_t)31); break;
        case 4: p = memalign(128, n); break;
        case 5: p = reallocarray(NULL, n, 1); break;
        default: p = malloc(n); break;
        }
        if (!p) { bad = 1; continue; }
        b->p = p;
        b->n = n;
        b->tag = (unsigned char)(1 + rand_r(&seed) % 250);
        fill(b);
        if (malloc_usable_size(p) < n)
            bad = 1;
    }
    for (int i = 0; i < LIVE; i++)
        check_free(&live[i]);
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 4;
    if (argc > 2)
        rounds = atol(argv[2]);
    pthread_t th[16];
    for (int i = 0; i < threads && i < 16; i++)
        pthread_create(&th[i], NULL, run, (void *)(uintptr_t)(i + 1));
    for (int i = 0; i < threads && i < 16; i++)
        pthread_join(th[i], NULL);
    printf(bad ? "corrupt\n" : "ok %d\n", threads);
    return bad;
}
