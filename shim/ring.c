/* ring.c - the multi-producer flight-recorder ring in the MAP_SHARED trace file.
 * Owns chunk claiming (one fetch_add per 1023 records), record reservation (one CAS
 * on a line the writing thread owns) and publication. Never blocks, never locks,
 * never allocates, never makes a syscall on the per-record path. Protocol: FORMAT.md. */
#define _GNU_SOURCE
#include <string.h>
#include <unistd.h>

#include "shim.h"

static inline struct race_chunk *chunk_at(uint64_t i)
{
    return (struct race_chunk *)(race_g.ring + i * RACE_CHUNK_SIZE);
}

void race_ring_attach(struct race_hdr *h)
{
    race_g.ring = (uint8_t *)h + h->ring.off;
    race_g.nchunks = h->nchunks;
}

/* Installs the next generation in its chunk. A chunk still holding an older
 * generation is taken over and its records are counted as overwritten; a chunk that
 * already holds a newer one (this thread was descheduled for a whole wrap) is left
 * alone and the claim is repeated. */
static int claim(struct race_tls *t)
{
    struct race_hdr *h = race_g.hdr;
    for (int tries = 0; tries < 64; tries++) {
        uint64_t gen = __atomic_fetch_add(&h->next_chunk, 1, __ATOMIC_RELAXED);
        struct race_chunk *c = chunk_at(gen % race_g.nchunks);
        uint64_t want = (gen + 1) << RACE_STATE_USED_BITS;
        uint64_t old = __atomic_load_n(&c->state, __ATOMIC_RELAXED);
        while ((old >> RACE_STATE_USED_BITS) < gen + 1) {
            if (__atomic_compare_exchange_n(&c->state, &old, want, 0, __ATOMIC_ACQ_REL,
                                            __ATOMIC_RELAXED)) {
                uint64_t used = old & RACE_STATE_USED_MASK;
                if (used)
                    __atomic_fetch_add(&h->overwritten, used, __ATOMIC_RELAXED);
                c->tid = t->tid;
                c->clock_ts = race_now();
                c->clock_mono = race_g.clock == RACE_CLOCK_TSC ? race_mono_ns() : c->clock_ts;
                __atomic_store_n(&c->gen_check, gen + 1, __ATOMIC_RELEASE);
                t->chunk = c;
                t->gen = gen;
                return 1;
            }
        }
    }
    return 0;
}

/* Returns the slot for one record and its commit tag, or NULL (counted in dropped). */
struct race_rec *race_ring_reserve(struct race_tls *t, uint32_t *tag)
{
    if (unlikely(t->epoch != race_g.epoch)) {
        t->epoch = race_g.epoch;
        t->chunk = NULL;
        t->seq = 0;
        t->tid = 0;
    }
    if (unlikely(!t->tid))
        t->tid = (uint32_t)gettid();
    for (int tries = 0; tries < 8; tries++) {
        struct race_chunk *c = t->chunk;
        if (likely(c != NULL)) {
            uint64_t s = __atomic_load_n(&c->state, __ATOMIC_RELAXED);
            while ((s >> RACE_STATE_USED_BITS) == t->gen + 1 &&
                   (s & RACE_STATE_USED_MASK) < RACE_CHUNK_RECS) {
                if (__atomic_compare_exchange_n(&c->state, &s, s + 1, 0, __ATOMIC_ACQUIRE,
                                                __ATOMIC_RELAXED)) {
                    uint32_t i = (uint32_t)(s & RACE_STATE_USED_MASK);
                    struct race_rec *slot = (struct race_rec *)(c + 1) + i;
                    __atomic_store_n(&slot->commit, 0, __ATOMIC_RELAXED);
                    __atomic_signal_fence(__ATOMIC_RELEASE);
                    *tag = (uint32_t)(t->gen * RACE_CHUNK_RECS + i);
                    return slot;
                }
            }
        }
        t->chunk = NULL;
        if (!claim(t))
            break;
    }
    __atomic_fetch_add(&race_g.hdr->dropped, 1, __ATOMIC_RELAXED);
    return NULL;
}

void race_ring_commit(struct race_rec *slot, struct race_rec *r, uint32_t tag)
{
    uint64_t commit = (uint64_t)race_rec_sum(r, tag) << 32 | tag;
    memcpy((uint8_t *)slot + 8, (uint8_t *)r + 8, sizeof(*r) - 8);
    __atomic_store_n(&slot->commit, commit, __ATOMIC_RELEASE);
}
