/* quarantine.c - the most recent RACE_QUARANTINE_MB of unguarded freed blocks, held
 * back from libc and filled with poison, and the index that answers "is this address
 * inside a freed block, and which free?" in O(1). Owns the FIFO (a ring of entries,
 * oldest out first; a block whose poison changed meanwhile is a write-after-free
 * finding) and the index (8-way buckets keyed by 128-byte granule, one cache line
 * each, entries inserted and removed with CAS: no tombstones, no lock). It also takes
 * notes of frees it does not hold (a GC-swept slot of Ruby's heap: FOREIGN entries,
 * never released, never answered for by race_address_is_freed). An entry's gen word is
 * its seqlock: fields are written only while gen is 0, and readers check gen before
 * and after. Never blocks; a full bucket only leaves a block unindexed (counted). */
#include <string.h>
#include <sys/mman.h>

#include "record.h"

#define POISON 0xfdu
#define POISON_MAX 4096u   /* bytes poisoned (and checked) per block */
/* The index is keyed by 128-byte granule: glibc's smallest chunk is 32 bytes, so a
 * granule holds at most 4 block starts plus one block reaching in from before, which
 * 8 ways always fit. (Keyed by page, small blocks 48 bytes apart overflowed their
 * bucket after 8 and went unindexed.) */
#define GRANULE_SHIFT 7u
#define INDEX_GRANULES 32u /* granules of one block that are indexed: its first 4 KiB */
#define POS_BITS 23u       /* ring positions kept in a key; cap is at most 1 << 22 */
#define POS_MASK ((1ull << POS_BITS) - 1)
#define WAYS 8u

struct qentry {
    uint64_t gen;          /* ring position + 1 while published, 0 while free or being written */
    uint64_t addr, size;
    uint64_t ts, seq;
    uint32_t tid, ractor, stack, entry; /* entry | KEPT_INTACT: not poisoned, not checked */
};
#define KEPT_INTACT 0x80000000u
#define FOREIGN 0x40000000u /* not ours to hold or release: a GC heap slot's free, noted */
#define ENTRY_BITS (KEPT_INTACT | FOREIGN)

static struct qentry *ring;
static uint64_t *index_;
static uint64_t cap, mask, nbuckets;
static uint64_t head, tail, bytes, budget;
static uint64_t unindexed, write_after_free;
int race_quarantine_on;

static void real_release(void *p)
{
    race_real_free(p);
}

static int setup(void)
{
    cap = 4096;
    while (cap < budget / 32 && cap < (1u << 22))
        cap <<= 1;
    mask = cap - 1;
    nbuckets = cap * 2;
    ring = mmap(NULL, cap * sizeof(*ring), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    index_ = mmap(NULL, nbuckets * WAYS * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (ring == MAP_FAILED || index_ == MAP_FAILED) {
        race_notice("cannot map the quarantine: freed blocks go straight back to libc", NULL, NULL, NULL);
        ring = NULL;
        return 0;
    }
    return 1;
}

void race_quarantine_init(void)
{
    budget = (uint64_t)race_opt.RACE_QUARANTINE_MB << 20;
    if (budget && setup())
        race_quarantine_on = 1;
}

/* A check that needs some frees kept (the stale call-info check keeps kwarg blocks)
 * gets a quarantine even when RACE_QUARANTINE_MB is 0; then only those frees go in. */
void race_quarantine_ensure(void)
{
    if (ring)
        return;
    budget = 4u << 20;
    setup();
}

static void put(void *p, uint64_t size, unsigned entry, uint64_t seq, uint32_t stack);

static inline uint64_t *bucket(uint64_t granule)
{
    uint64_t h = granule * 0x9e3779b97f4a7c15ull;
    return &index_[((h >> 20) & (nbuckets - 1)) * WAYS];
}

static inline uint64_t key(uint64_t granule, uint64_t pos)
{
    return granule << POS_BITS | (pos & POS_MASK);
}

static void index_one(uint64_t gr, uint64_t pos, int insert)
{
    uint64_t *b = bucket(gr), k = key(gr, pos);
    int done = 0;
    for (unsigned w = 0; w < WAYS && !done; w++) {
        uint64_t expect = insert ? 0 : k;
        done = __atomic_compare_exchange_n(&b[w], &expect, insert ? k : 0, 0, __ATOMIC_RELEASE, __ATOMIC_RELAXED);
    }
    if (!done && insert)
        __atomic_fetch_add(&unindexed, 1, __ATOMIC_RELAXED);
}

/* Every granule of the block's first 4 KiB, then the first granule of each further
 * page (up to 1 MiB): a lookup tries its own granule, then its page's first one. */
static void index_block(uint64_t addr, uint64_t size, uint64_t pos, int insert)
{
    uint64_t end = addr + (size ? size : 1);
    uint64_t first = addr >> GRANULE_SHIFT, last = (end - 1) >> GRANULE_SHIFT;
    if (last - first >= INDEX_GRANULES)
        last = first + INDEX_GRANULES - 1;
    for (uint64_t gr = first; gr <= last; gr++)
        index_one(gr, pos, insert);
    uint64_t page = (((last + 1) << GRANULE_SHIFT) + 4095) & ~4095ull;
    for (int n = 0; page < end && n < 256; page += 4096, n++)
        index_one(page >> GRANULE_SHIFT, pos, insert);
}

/* Hands a block back to libc, after checking its poison. */
static void evict(uint64_t pos, uint64_t addr, uint64_t size, const struct qentry *copy)
{
    index_block(addr, size, pos, 0);
    __atomic_fetch_sub(&bytes, size, __ATOMIC_RELAXED);
    const uint8_t *p = (const uint8_t *)(uintptr_t)addr;
    if (copy->entry & FOREIGN)
        return; /* only a note: the memory was never ours */
    uint64_t n = (copy->entry & KEPT_INTACT) ? 0 : size < POISON_MAX ? size : POISON_MAX;
    for (uint64_t i = 0; i < n; i++) {
        if (p[i] != POISON) {
            struct race_finding f;
            struct race_tls *t = &race_tls;
            memset(&f, 0, sizeof(f));
            f.type = RACE_FIND_WRITE_AFTER_FREE;
            f.access = RACE_ACCESS_WRITE;
            f.addr = addr + i;
            f.tid = race_tid(t);
            f.ractor = race_ractor_id();
            f.stack = race_stack_capture(); /* where the change was noticed, not made */
            f.ts = race_now();
            f.slot = UINT32_MAX;
            f.block_addr = addr;
            f.block_size = size;
            f.free_ts = copy->ts;
            f.free_tid = copy->tid;
            f.free_ractor = copy->ractor;
            f.free_stack = copy->stack;
            f.free_entry = (uint8_t)(copy->entry & ~ENTRY_BITS);
            f.free_seq = copy->seq;
            race_strlcpy(f.detail, "noticed when the block left the quarantine", sizeof(f.detail));
            __atomic_fetch_add(&write_after_free, 1, __ATOMIC_RELAXED);
            race_finding_report(&f, NULL);
            break;
        }
    }
    real_release((void *)(uintptr_t)addr);
}

/* Takes the entry at ring position pos if it is still there; 1 if this call evicted it. */
static int take(uint64_t pos)
{
    struct qentry *e = &ring[pos & mask];
    uint64_t g = __atomic_load_n(&e->gen, __ATOMIC_ACQUIRE);
    if (g != pos + 1)
        return 0;
    struct qentry copy = *e; /* stable while gen == pos + 1: writers wait for gen == 0 */
    if (!__atomic_compare_exchange_n(&e->gen, &g, 0, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
        return 0;
    evict(pos, copy.addr, copy.size, &copy);
    return 1;
}

/* poison 0: the block is kept as it was (a check that only needs to know it was
 * freed, and wants the program to go on exactly as it would have). */
void race_quarantine_put(void *p, uint64_t size, unsigned entry, uint64_t seq, uint32_t stack, int poison)
{
    put(p, size, entry | (poison ? 0 : KEPT_INTACT), seq, stack);
}

/* A free of memory the allocator below us does not own (a slot of Ruby's object heap
 * swept by its GC): its record only, findable by race_quarantine_find_foreign. */
void race_quarantine_note(const void *p, uint64_t size, unsigned entry, uint64_t seq, uint32_t stack)
{
    put((void *)(uintptr_t)p, size, entry | FOREIGN | KEPT_INTACT, seq, stack);
}

static void put(void *p, uint64_t size, unsigned entry, uint64_t seq, uint32_t stack)
{
    int poison = !(entry & KEPT_INTACT);
    if (!ring) {
        if (!(entry & FOREIGN))
            real_release(p);
        return;
    }
    uint64_t pos = __atomic_fetch_add(&head, 1, __ATOMIC_RELAXED);
    struct qentry *e = &ring[pos & mask];
    /* The entry one lap behind is evicted by whoever reuses its place. */
    if (pos >= cap)
        take(pos - cap);
    if (__atomic_load_n(&e->gen, __ATOMIC_ACQUIRE) != 0) {
        if (!(entry & FOREIGN))
            real_release(p); /* its place is still being written or read: skip quarantining */
        return;
    }
    if (poison)
        memset(p, POISON, size < POISON_MAX ? size : POISON_MAX);
    struct race_tls *t = &race_tls;
    e->addr = (uint64_t)(uintptr_t)p;
    e->size = size;
    e->ts = race_now();
    e->seq = seq;
    e->tid = race_tid(t);
    e->ractor = race_ractor_id();
    e->stack = stack;
    e->entry = entry;
    __atomic_store_n(&e->gen, pos + 1, __ATOMIC_RELEASE);
    index_block(e->addr, size, pos, 1);
    /* Over budget: the oldest go back to libc. */
    if (__atomic_add_fetch(&bytes, size, __ATOMIC_RELAXED) > budget) {
        for (int k = 0; k < 8 && __atomic_load_n(&bytes, __ATOMIC_RELAXED) > budget; k++) {
            uint64_t tl = __atomic_load_n(&tail, __ATOMIC_RELAXED);
            if (tl >= __atomic_load_n(&head, __ATOMIC_RELAXED))
                break;
            if (__atomic_compare_exchange_n(&tail, &tl, tl + 1, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
                take(tl);
        }
    }
}

/* Is addr inside a quarantined block? Fills the block and its free into f. */
static int find_in(uint64_t gr, uintptr_t addr, struct race_finding *f, int foreign)
{
    uint64_t *b = bucket(gr);
    for (unsigned w = 0; w < WAYS; w++) {
        uint64_t k = __atomic_load_n(&b[w], __ATOMIC_ACQUIRE);
        if (!k || (k >> POS_BITS) != gr)
            continue;
        uint64_t low = k & POS_MASK;
        /* The ring position's low bits name the entry; its gen confirms it. */
        struct qentry *e = &ring[low & mask];
        uint64_t g = __atomic_load_n(&e->gen, __ATOMIC_ACQUIRE);
        if (!g || ((g - 1) & POS_MASK) != low)
            continue;
        struct qentry c = *e;
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&e->gen, __ATOMIC_RELAXED) != g)
            continue;
        if (addr < c.addr || addr >= c.addr + (c.size ? c.size : 1) || !(c.entry & FOREIGN) != !foreign)
            continue;
        f->block_addr = c.addr;
        f->block_size = c.size;
        f->free_ts = c.ts;
        f->free_tid = c.tid;
        f->free_ractor = c.ractor;
        f->free_stack = c.stack;
        f->free_entry = (uint8_t)(c.entry & ~ENTRY_BITS);
        f->free_seq = c.seq;
        f->slot = UINT32_MAX;
        return 1;
    }
    return 0;
}

/* Is addr inside a quarantined block? Fills the block and its free into f. */
int race_quarantine_find(uintptr_t addr, struct race_finding *f)
{
    if (!ring)
        return 0;
    uint64_t gr = addr >> GRANULE_SHIFT, pg = (addr & ~(uintptr_t)4095) >> GRANULE_SHIFT;
    return find_in(gr, addr, f, 0) || (pg != gr && find_in(pg, addr, f, 0));
}

/* The most recent noted free of a foreign slot holding addr. A slot is reused without
 * our knowing, so this says what was freed there last, not that it is free now. */
int race_quarantine_find_foreign(uintptr_t addr, struct race_finding *f)
{
    if (!ring)
        return 0;
    return find_in(addr >> GRANULE_SHIFT, addr, f, 1);
}

/* The public query, for programs and tests: 1 when addr is inside a quarantined
 * (or guarded and freed) block. Like ASan's __asan_address_is_poisoned. */
RACE_EXPORT int race_address_is_freed(const void *addr)
{
    struct race_finding f;
    memset(&f, 0, sizeof(f));
    if (race_quarantine_find((uintptr_t)addr, &f))
        return 1;
    int open_guard;
    return race_pool_classify((uintptr_t)addr, &f, &open_guard) >= 0 && f.type == RACE_FIND_USE_AFTER_FREE;
}
