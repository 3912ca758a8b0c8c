/* ring.c - the multi-producer flight-recorder ring in the MAP_SHARED trace file: the
 * slow half. Owns claiming and releasing chunks (one fetch_add and one CAS per 1023
 * records) and the exact counters of overwritten and dropped records; the per-record
 * half is inline in ring.h. Never blocks, never locks, never allocates. Protocol:
 * common/FORMAT.md. */
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ring.h"
#include "trace.h"

static pthread_key_t exit_key;
static int exit_key_ok;
/* Which chunks have disk space in this process's trace (trace.h): the ring reserves a
 * chunk the first time it claims it, and never touches one without space (on tmpfs
 * even reading a hole of a full file faults with SIGBUS). NULL: all of them, reserved
 * at once because this array could not be mapped. */
enum { CHUNK_UNTRIED, CHUNK_BACKED, CHUNK_NO_SPACE };
static uint8_t *backed;
static uint64_t backed_size;
static uint32_t backed_count, all_backed;

static inline struct race_chunk *chunk_at(uint64_t i)
{
    return (struct race_chunk *)(race_g.ring + i * RACE_CHUNK_SIZE);
}

void race_ring_attach(struct race_hdr *h)
{
    race_g.ring = (uint8_t *)h + h->ring.off;
    race_g.nchunks = h->nchunks;
    if (backed) /* the parent's, in a fork child */
        munmap(backed, backed_size);
    backed_size = (h->nchunks + 4095u) & ~4095ull;
    backed = mmap(NULL, backed_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    backed_count = 0;
    all_backed = 0;
    if (backed == MAP_FAILED) {
        backed = NULL;
        all_backed = race_trace_reserve(h->ring.off, h->ring.size) == 0;
    }
}

/* 1 when chunk i may be written: backed now or before. */
static int chunk_backed(struct race_hdr *h, uint32_t i)
{
    if (!backed)
        return all_backed;
    uint8_t b = __atomic_load_n(&backed[i], __ATOMIC_ACQUIRE);
    if (b == CHUNK_UNTRIED) {
        b = race_trace_reserve(h->ring.off + (uint64_t)i * RACE_CHUNK_SIZE, RACE_CHUNK_SIZE) == 0 ? CHUNK_BACKED
                                                                                                 : CHUNK_NO_SPACE;
        __atomic_store_n(&backed[i], b, __ATOMIC_RELEASE);
        if (b == CHUNK_BACKED)
            __atomic_fetch_add(&backed_count, 1, __ATOMIC_RELAXED);
    }
    return b == CHUNK_BACKED;
}

/* Hands the thread's chunk back to the ring: it may now be overwritten. */
void race_ring_release(struct race_tls *t)
{
    struct race_chunk *c = t->chunk;
    if (c && t->epoch == race_g.epoch)
        __atomic_store_n(&c->state, (t->state_base & ~RACE_STATE_HELD) | t->used, __ATOMIC_RELEASE);
    t->chunk = NULL;
}

/* A thread that exits releases its chunk, so short-lived threads do not pin the ring. */
static void on_thread_exit(void *arg)
{
    (void)arg;
    race_ring_release(&race_tls);
}

void race_ring_init(void)
{
    exit_key_ok = pthread_key_create(&exit_key, on_thread_exit) == 0;
}

/* Takes the chunk of the next generation unless a thread holds it or a newer
 * generation already sits there; then the next generation is tried. */
static int claim(struct race_tls *t)
{
    struct race_hdr *h = race_g.hdr;
    uint32_t n = race_g.nchunks;
    for (uint32_t tries = 0; tries < n + 8; tries++) {
        uint64_t gen = __atomic_fetch_add(&h->next_chunk, 1, __ATOMIC_RELAXED);
        /* A chunk never claimed has no disk space yet: reserved now, in the claim's
         * slow path, never in the per-record one. When the disk is full the ring
         * goes on with the chunks it has; with none, the event is dropped. */
        if (!chunk_backed(h, (uint32_t)(gen % n))) {
            if (!__atomic_load_n(&backed_count, __ATOMIC_RELAXED))
                return 0;
            continue;
        }
        struct race_chunk *c = chunk_at(gen % n);
        uint64_t want = (gen + 1) << RACE_STATE_USED_BITS | RACE_STATE_HELD;
        uint64_t old = __atomic_load_n(&c->state, __ATOMIC_ACQUIRE);
        if ((old & RACE_STATE_HELD) || (old >> RACE_STATE_USED_BITS) > gen + 1)
            continue;
        if (!__atomic_compare_exchange_n(&c->state, &old, want, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
            continue;
        uint64_t used = old & RACE_STATE_USED_MASK;
        if (used)
            __atomic_fetch_add(&h->overwritten, used, __ATOMIC_RELAXED);
        c->tid = t->tid;
        c->clock_ts = race_now();
        c->clock_mono = race_g.clock == RACE_CLOCK_TSC ? race_mono_ns() : c->clock_ts;
        __atomic_store_n(&c->gen_check, gen + 1, __ATOMIC_RELEASE);
        t->chunk = c;
        t->gen = gen;
        t->used = 0;
        t->state_base = want;
        t->tag_base = (uint32_t)(gen * RACE_CHUNK_RECS);
        if (!t->exit_hook && exit_key_ok) {
            t->exit_hook = 1;
            pthread_setspecific(exit_key, (void *)1);
        }
        return 1;
    }
    return 0;
}

/* The out-of-line half of race_ring_reserve (ring.h): a new process epoch, the first
 * event of a thread, a full chunk. */
struct race_rec *race_ring_reserve_slow(struct race_tls *t, uint32_t *tag)
{
    if (unlikely(t->epoch != race_g.epoch)) {
        t->epoch = race_g.epoch;
        t->chunk = NULL;
        t->seq = 0;
        t->tid = 0;
    }
    if (unlikely(!t->tid))
        t->tid = (uint32_t)gettid();
    if (t->chunk)
        race_ring_release(t);
    if (!claim(t)) {
        __atomic_fetch_add(&race_g.hdr->dropped, 1, __ATOMIC_RELAXED);
        return NULL;
    }
    return race_ring_reserve(t, tag);
}
