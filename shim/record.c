/* record.c - turns one free into one ring record: Ractor id, clock, optional sampled
 * stack, per-thread sequence. Owns the stack-sampling countdown. Never allocates;
 * the only slow step (unwinding) runs behind the per-thread busy guard. */
#include "shim.h"

static uint64_t early_frees;

uint64_t race_record_early(void)
{
    return __atomic_load_n(&early_frees, __ATOMIC_RELAXED);
}

void race_record_free(void *p, size_t size, unsigned entry, uint64_t aux)
{
    if (unlikely(!race_g.hdr)) {
        if (!race_g.started)
            __atomic_fetch_add(&early_frees, 1, __ATOMIC_RELAXED);
        return;
    }
    struct race_tls *t = &race_tls;
    struct race_rec r;
    r.stack = 0;
    if (race_g.stack_sample && !t->busy && --t->countdown <= 0) {
        t->countdown = race_g.stack_sample;
        r.stack = race_stack_capture();
    }
    r.kind = RACE_EV_FREE;
    r.entry = (uint8_t)entry;
    r.flags = 0;
    r.ractor = race_ractor_id();
    r.ts = race_now();
    r.addr = (uint64_t)(uintptr_t)p;
    r.size = size;
    r.aux = aux;
    uint32_t tag;
    struct race_rec *slot = race_ring_reserve(t, &tag);
    if (unlikely(!slot))
        return;
    r.tid = t->tid;
    r.seq = ++t->seq;
    race_ring_commit(slot, &r, tag);
}
