/* record.h - turns one free into one ring record: Ractor id, clock, optional sampled
 * stack, per-thread sequence. Owns the stack-sampling countdown. Inline: it runs on
 * every free. Never allocates; the one slow step (unwinding) runs behind the
 * per-thread busy guard. */
#ifndef RACE_RECORD_H
#define RACE_RECORD_H

#include "ring.h"

/* One record: returns its per-thread seq, 0 when nothing was recorded. */
static inline __attribute__((always_inline)) uint64_t race_record_event(unsigned kind, unsigned entry,
                                                                       unsigned flags, void *p, size_t size,
                                                                       uint64_t aux, uint32_t stack)
{
    if (unlikely(!race_g.hdr))
        return 0;
    struct race_tls *t = &race_tls;
    uint64_t ractor_stack = (uint64_t)race_ractor_id() | (uint64_t)stack << 32;
    uint64_t ts = race_now();
    uint32_t tag;
    struct race_rec *slot = race_ring_reserve(t, &tag);
    if (unlikely(!slot))
        return 0;
    uint64_t seq = ++t->seq;
    race_ring_commit(slot, tag, race_rec_word1((uint8_t)kind, (uint8_t)entry, (uint16_t)flags, t->tid),
                     ractor_stack, seq, ts, (uint64_t)(uintptr_t)p, size, aux);
    return seq;
}

static inline __attribute__((always_inline)) void race_record_free(void *p, size_t size, unsigned entry,
                                                                   uint64_t aux)
{
    if (unlikely(!race_g.hdr)) {
        if (!race_g.started)
            race_record_early_free();
        return;
    }
    struct race_tls *t = &race_tls;
    uint32_t stack = 0;
    if (race_g.stack_sample && !t->busy && --t->countdown <= 0) {
        t->countdown = race_g.stack_sample;
        stack = race_stack_capture();
    }
    /* kept for the quarantine, which files the block under this free */
    t->last_stack = stack;
    t->last_seq = race_record_event(RACE_EV_FREE, entry, race_quarantine_on ? RACE_RF_QUARANTINED : 0, p,
                                    size, aux, stack);
}

/* A free whose stack is always wanted (blocks a check keeps in the quarantine). */
static inline void race_record_free_stacked(void *p, size_t size, unsigned entry)
{
    struct race_tls *t = &race_tls;
    if (unlikely(!race_g.hdr))
        return;
    t->last_stack = t->busy ? 0 : race_stack_capture();
    t->last_seq = race_record_event(RACE_EV_FREE, entry, RACE_RF_QUARANTINED, p, size, 0, t->last_stack);
}

#endif
