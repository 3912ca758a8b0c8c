/* ring.c - the multi-producer flight-recorder ring in the MAP_SHARED trace file: the
 * slow half. Owns claiming and releasing chunks (one fetch_add and one CAS per 1023
 * records) and the exact counters of overwritten and dropped records; the per-record
 * half is inline in ring.h. Never blocks, never locks, never allocates. Protocol:
 * common/FORMAT.md. */
#include <pthread.h>
#include <unistd.h>

#include "ring.h"

static pthread_key_t exit_key;
static int exit_key_ok;

static inline struct race_chunk *chunk_at(uint64_t i)
{
    return (struct race_chunk *)(race_g.ring + i * RACE_CHUNK_SIZE);
}

void race_ring_attach(struct race_hdr *h)
{
    race_g.ring = (uint8_t *)h + h->ring.off;
    race_g.nchunks = h->nchunks;
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
