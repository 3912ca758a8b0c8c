/* ring.h - the per-record half of the trace ring, inline because it runs on every
 * free. The thread holds its chunk alone (ring.c never reclaims a held chunk), so a
 * record is reserved with a plain store of the chunk's used count, written, and
 * published by storing its commit word last. No locked instruction, no syscall,
 * no allocation. */
#ifndef RACE_RING_H
#define RACE_RING_H

#include "shim.h"

/* Returns the slot for one record and its commit tag, or NULL (counted as dropped). */
static inline struct race_rec *race_ring_reserve(struct race_tls *t, uint32_t *tag)
{
    struct race_chunk *c = t->chunk;
    uint32_t i = t->used;
    if (unlikely(!c || i >= RACE_CHUNK_RECS || t->epoch != race_g.epoch))
        return race_ring_reserve_slow(t, tag);
    t->used = i + 1;
    __atomic_store_n(&c->state, t->state_base | (i + 1), __ATOMIC_RELAXED);
    *tag = t->tag_base + i;
    return (struct race_rec *)(c + 1) + i;
}

/* Writes payload words 1..7 into the slot and publishes it. The words go one by one
 * from registers to the mapping (relaxed atomic stores, so they are not merged into
 * vector copies): a record built on the stack and copied stalls on store forwarding. */
static inline void race_ring_commit(struct race_rec *slot, uint32_t tag, uint64_t w1, uint64_t w2,
                                    uint64_t w3, uint64_t w4, uint64_t w5, uint64_t w6, uint64_t w7)
{
    uint64_t *d = (uint64_t *)slot;
    uint64_t commit = (uint64_t)race_rec_sum7(w1, w2, w3, w4, w5, w6, w7, tag) << 32 | tag;
    __atomic_store_n(&d[1], w1, __ATOMIC_RELAXED);
    __atomic_store_n(&d[2], w2, __ATOMIC_RELAXED);
    __atomic_store_n(&d[3], w3, __ATOMIC_RELAXED);
    __atomic_store_n(&d[4], w4, __ATOMIC_RELAXED);
    __atomic_store_n(&d[5], w5, __ATOMIC_RELAXED);
    __atomic_store_n(&d[6], w6, __ATOMIC_RELAXED);
    __atomic_store_n(&d[7], w7, __ATOMIC_RELAXED);
    __atomic_store_n(&d[0], commit, __ATOMIC_RELEASE);
}

#endif
