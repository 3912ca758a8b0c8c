/* stacks.c - sampled backtraces (libunwind, local, per-thread cache) and the stack
 * depot in the trace file: a lock-free hash of unique stacks, ids handed to records.
 * Owns the depot section. Runs behind the busy guard because libunwind may allocate;
 * holds no lock of its own while unwinding. */
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#include <string.h>

#include "shim.h"

static struct race_depot_hdr *dh;
static uint32_t *buckets;
static uint8_t *entries;
static uintptr_t self_lo, self_hi; /* librace.so's own text: its frames are skipped */

void race_stacks_init(void)
{
    /* A per-thread cache means no libunwind lock is ever held across our hooks,
     * so a fork in the middle of an unwind cannot leave one locked in the child. */
    unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
}

void race_stacks_self(uintptr_t lo, uintptr_t hi)
{
    self_lo = lo;
    self_hi = hi;
}

void race_depot_init(struct race_hdr *h)
{
    uint8_t *base = (uint8_t *)h + h->depot.off;
    dh = (struct race_depot_hdr *)base;
    uint64_t size = h->depot.size;
    uint32_t nb = 1024;
    while ((uint64_t)nb * 4 * 64 < size && nb < (1u << 22))
        nb <<= 1; /* about one bucket per 256 bytes of depot */
    dh->nbuckets = nb;
    dh->entries_off = sizeof(*dh) + (uint64_t)nb * 4;
    dh->entries_size = size - dh->entries_off;
    buckets = (uint32_t *)(base + sizeof(*dh));
    entries = base + dh->entries_off;
}

static uint32_t depot_put(const uint64_t *pc, uint32_t n)
{
    uint32_t hash = race_stack_hash(pc, n);
    uint32_t *b = &buckets[hash & (dh->nbuckets - 1)];
    uint32_t head = __atomic_load_n(b, __ATOMIC_ACQUIRE);
    int steps = 0;
    for (uint32_t id = head; id && steps < 256; steps++) {
        struct race_depot_entry *e = (struct race_depot_entry *)(entries + (uint64_t)(id - 1) * 8);
        if (e->hash == hash && e->nframes == n && memcmp(e->pc, pc, n * 8u) == 0)
            return id;
        id = e->next;
    }
    uint64_t need = sizeof(struct race_depot_entry) + (uint64_t)n * 8;
    uint64_t off = __atomic_fetch_add(&dh->used, need, __ATOMIC_RELAXED);
    if (off + need > dh->entries_size || (off / 8 + 1) > UINT32_MAX) {
        __atomic_fetch_add(&race_g.hdr->stack_dropped, 1, __ATOMIC_RELAXED);
        return 0;
    }
    struct race_depot_entry *e = (struct race_depot_entry *)(entries + off);
    e->hash = hash;
    e->nframes = (uint16_t)n;
    memcpy(e->pc, pc, n * 8u);
    __atomic_store_n(&e->commit, hash, __ATOMIC_RELEASE);
    uint32_t id = (uint32_t)(off / 8 + 1);
    do {
        e->next = head;
    } while (!__atomic_compare_exchange_n(b, &head, id, 1, __ATOMIC_RELEASE, __ATOMIC_ACQUIRE));
    __atomic_fetch_add(&dh->unique, 1, __ATOMIC_RELAXED);
    return id;
}

int race_stack_is_self(uint64_t pc)
{
    return pc >= self_lo && pc < self_hi;
}

int race_stack_raw(void **buf, int n)
{
    return unw_backtrace(buf, n);
}

static uint32_t store(const uint64_t *pc, uint32_t k)
{
    if (!k || !dh)
        return 0;
    if (!race_modules_known(pc, k))
        race_modules_rescan();
    return depot_put(pc, k);
}

/* The caller's stack, without the shim's own frames. */
__attribute__((noinline)) uint32_t race_stack_capture(void)
{
    struct race_tls *t = &race_tls;
    void *raw[RACE_MAX_FRAMES + 8];
    uint64_t pc[RACE_MAX_FRAMES];
    t->busy++;
    /* Unwind no deeper than what is kept (plus the shim's own few frames): deep
     * Ruby stacks would otherwise be walked to the bottom for nothing. */
    int want = race_g.stack_depth + 8;
    if (want > (int)(sizeof(raw) / sizeof(raw[0])))
        want = (int)(sizeof(raw) / sizeof(raw[0]));
    int n = unw_backtrace(raw, want);
    uint32_t k = 0;
    int i = 0;
    while (i < n && race_stack_is_self((uintptr_t)raw[i]))
        i++;
    for (; i < n && k < (uint32_t)race_g.stack_depth; i++)
        pc[k++] = (uint64_t)(uintptr_t)raw[i];
    uint32_t id = store(pc, k);
    t->busy--;
    return id;
}

/* The stack of the code a signal interrupted, from its machine context: frame 0 is
 * the faulting instruction itself. On x86-64 libunwind's context is a ucontext_t. */
uint32_t race_stack_capture_uc(void *uc)
{
    struct race_tls *t = &race_tls;
    uint64_t pc[RACE_MAX_FRAMES];
    unw_cursor_t cur;
    uint32_t k = 0;
    t->busy++;
    if (unw_init_local2(&cur, (unw_context_t *)uc, UNW_INIT_SIGNAL_FRAME) == 0) {
        do {
            unw_word_t ip;
            if (unw_get_reg(&cur, UNW_REG_IP, &ip) != 0 || !ip)
                break;
            pc[k++] = ip;
        } while (k < (uint32_t)race_g.stack_depth && unw_step(&cur) > 0);
    }
    uint32_t id = store(pc, k);
    t->busy--;
    return id;
}

uint32_t race_depot_frames(uint32_t id, const uint64_t **pc)
{
    if (!id || !dh || (uint64_t)(id - 1) * 8 >= dh->entries_size)
        return 0;
    const struct race_depot_entry *e = (const struct race_depot_entry *)(entries + (uint64_t)(id - 1) * 8);
    if (__atomic_load_n(&e->commit, __ATOMIC_ACQUIRE) != e->hash || e->nframes > RACE_MAX_FRAMES)
        return 0;
    *pc = e->pc;
    return e->nframes;
}
