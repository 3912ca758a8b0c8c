/* unit_ring.c - the trace ring under contention, checked against FORMAT.md's rule
 * independently of the analyzer: N threads x M records into a ring far too small,
 * then every surviving record must be intact, each thread's sequence consistent,
 * valid + torn + overwritten must equal what was reserved and the drops (more
 * threads than chunks) what the writers saw refused, exactly.
 * link: shim/ring.c shim/clock.c */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "ring.h"

__thread struct race_tls race_tls __attribute__((tls_model("initial-exec")));
struct race_global race_g;

/* The ring lives in anonymous memory here: every chunk is backed already (trace.c
 * reserves file space in the shim; a full disk is tests/t_trim.sh's). */
int race_trace_reserve(uint64_t off, uint64_t len);
int race_trace_reserve(uint64_t off, uint64_t len)
{
    (void)off;
    (void)len;
    return 0;
}

struct worker {
    int index;
    uint64_t m;
    uint64_t reserved, dropped;
};

static void *run(void *arg)
{
    struct worker *w = arg;
    struct race_tls *t = &race_tls;
    for (uint64_t i = 1; i <= w->m; i++) {
        uint32_t tag;
        struct race_rec *slot = race_ring_reserve(t, &tag);
        if (!slot) {
            w->dropped++;
            continue;
        }
        struct race_rec r;
        memset(&r, 0, sizeof(r));
        r.kind = RACE_EV_FREE;
        r.entry = RACE_ENTRY_FREE;
        r.tid = t->tid;
        r.ractor = (uint32_t)w->index;
        r.seq = ++t->seq;
        r.ts = race_now();
        r.addr = ((uint64_t)w->index << 40) | r.seq;
        r.size = r.seq * 3;
        r.aux = ~r.addr;
        uint64_t rw[8]; /* a copy, not a cast: the record's fields are not uint64_t */
        memcpy(rw, &r, sizeof(rw));
        race_ring_commit(slot, tag, rw[1], rw[2], rw[3], rw[4], rw[5], rw[6], rw[7]);
        w->reserved++;
    }
    return NULL;
}

static void scenario(const char *label, uint32_t nchunks, int nthreads, uint64_t m)
{
    size_t size = RACE_HDR_SIZE + (size_t)nchunks * RACE_CHUNK_SIZE;
    struct race_hdr *h = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    h->nchunks = nchunks;
    h->ring.off = RACE_HDR_SIZE;
    h->ring.size = (uint64_t)nchunks * RACE_CHUNK_SIZE;
    race_clock_init();
    race_g.hdr = h;
    race_g.epoch++;
    race_ring_attach(h);

    pthread_t th[64];
    struct worker w[64];
    for (int i = 0; i < nthreads; i++) {
        w[i] = (struct worker){.index = i + 1, .m = m};
        pthread_create(&th[i], NULL, run, &w[i]);
    }
    uint64_t reserved = 0, dropped = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(th[i], NULL);
        reserved += w[i].reserved;
        dropped += w[i].dropped;
    }

    uint64_t held = 0, old_gen = 0, valid = 0, torn = 0, bad_payload = 0, bad_order = 0, slots = 0;
    for (uint32_t c = 0; c < nchunks; c++) {
        struct race_chunk *ch = (struct race_chunk *)((uint8_t *)h + h->ring.off + (uint64_t)c * RACE_CHUNK_SIZE);
        uint64_t st = ch->state;
        if (!st)
            continue;
        uint64_t gen = (st >> RACE_STATE_USED_BITS) - 1;
        if (gen + nchunks < h->next_chunk)
            old_gen++;
        uint64_t used = st & RACE_STATE_USED_MASK;
        if (st & RACE_STATE_HELD)
            held++;
        struct race_rec *recs = (struct race_rec *)(ch + 1);
        uint64_t prev_seq = 0;
        uint32_t prev_ractor = 0;
        for (uint64_t i = 0; i < used; i++) {
            slots++;
            uint32_t tag = (uint32_t)(gen * RACE_CHUNK_RECS + i);
            uint64_t rw[8];
            memcpy(rw, &recs[i], sizeof(rw));
            uint64_t want = (uint64_t)race_rec_sum_words(rw, tag) << 32 | tag;
            if (recs[i].commit != want) {
                torn++;       /* a late writer from an older generation: detected, skipped */
                prev_seq = 0;
                continue;
            }
            valid++;
            const struct race_rec *r = &recs[i];
            if (r->addr != (((uint64_t)r->ractor << 40) | r->seq) || r->size != r->seq * 3 ||
                r->aux != ~r->addr || r->tid != ch->tid)
                bad_payload++;
            /* one owner per chunk generation: its sequence rises by exactly one */
            if (prev_seq && (r->ractor != prev_ractor || r->seq != prev_seq + 1))
                bad_order++;
            prev_seq = r->seq;
            prev_ractor = r->ractor;
        }
    }
    char name[256];
    uint64_t ow = h->overwritten;
    printf("# %s: %d threads x %llu, %u chunks: valid %llu torn %llu overwritten %llu dropped %llu\n",
           label, nthreads, (unsigned long long)m, nchunks, (unsigned long long)valid,
           (unsigned long long)torn, (unsigned long long)ow, (unsigned long long)dropped);
    snprintf(name, sizeof(name), "%s: every surviving record is intact", label);
    CHECK(name, bad_payload == 0);
    snprintf(name, sizeof(name), "%s: per-thread sequences consecutive inside each chunk", label);
    CHECK(name, bad_order == 0);
    snprintf(name, sizeof(name), "%s: valid + torn + overwritten == reserved (exact)", label);
    CHECK(name, valid + torn + ow == reserved);
    snprintf(name, sizeof(name), "%s: drops counted exactly%s", label,
             nthreads < (int)nchunks ? " (none: fewer threads than chunks)" : "");
    CHECK(name, dropped == h->dropped && (nthreads >= (int)nchunks || dropped == 0));
    snprintf(name, sizeof(name), "%s: every exited thread released its chunk", label);
    CHECK(name, held == 0);
    /* A chunk keeps an older generation only if its owner still held it when the ring
     * last came round to it (a held chunk is skipped): then that owner held it during
     * the last lap, and whatever it claimed after is of that lap, so each thread can
     * leave at most one such chunk. (old_gen == 0 failed 1 run in 30: a preempted
     * owner is enough.) */
    snprintf(name, sizeof(name), "%s: only the newest generations survive (%llu older, held through the last lap)",
             label, (unsigned long long)old_gen);
    CHECK(name, slots == valid + torn && old_gen <= (uint64_t)nthreads);
    munmap(h, size);
}

int main(void)
{
    race_ring_init(); /* arms the release of a thread's chunk at thread exit */
    scenario("no overwrite", 64, 4, 10000);
    scenario("heavy overwrite", 16, 8, 200000);
    scenario("more threads than chunks", 4, 12, 20000);
    return check_summary();
}
