/* stacks.c - sampled backtraces (libunwind, local, per-thread cache) and the stack
 * depot in the trace file: a lock-free hash of unique stacks, ids handed to records.
 * Owns the depot section and the sigprocmask interposer that spares libunwind's own
 * mask changes while the shim unwinds. Runs behind the busy guard because libunwind
 * may allocate; holds no lock of its own while unwinding. */
#define UNW_LOCAL_ONLY
#include <errno.h>
#include <libunwind.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>

#include "shim.h"
#include "trace.h"

static struct race_depot_hdr *dh;
static uint32_t *buckets;
static uint8_t *entries;
static uintptr_t self_lo, self_hi; /* librace.so's own text: its frames are skipped */

/* libunwind's text, and whether this thread is inside one of the shim's unwinds. */
static uintptr_t unw_lo, unw_hi;
static __thread uint32_t unwinding __attribute__((tls_model("initial-exec")));

static int find_unwinder(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    uintptr_t pc = (uintptr_t)arg;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X) && pc >= lo && pc < lo + ph->p_memsz) {
            unw_lo = lo;
            unw_hi = lo + ph->p_memsz;
            return 1;
        }
    }
    return 0;
}

void race_stacks_init(void)
{
    /* A per-thread cache means no libunwind lock is ever held across our hooks,
     * so a fork in the middle of an unwind cannot leave one locked in the child. */
    unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
    dl_iterate_phdr(find_unwinder, (void *)(uintptr_t)&unw_backtrace);
}

/* libunwind blocks every signal around each dl_iterate_phdr it makes to find a
 * frame's unwind table (two rt_sigprocmask syscalls per cache miss: 4,200 in a Ruby
 * 3.1 `ruby -e 1`, 11,000 in 3.4's, where every GC sweep is unwound). That mask keeps
 * a signal handler that unwinds from re-entering its global cache; the shim's
 * unwinds use the per-thread cache (above) and never unwind from inside libunwind, so
 * while this thread runs one of them a mask change libunwind itself asks for is
 * skipped. Every other call, the program's included, goes to libc unchanged. */
RACE_EXPORT int sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
    uintptr_t caller = (uintptr_t)__builtin_return_address(0);
    if (unwinding && caller >= unw_lo && caller < unw_hi) {
        if (old)
            sigemptyset(old); /* handed back to the skipped restore only */
        return 0;
    }
    int rc = pthread_sigmask(how, set, old);
    if (rc) {
        errno = rc;
        return -1;
    }
    return 0;
}

void race_stacks_self(uintptr_t lo, uintptr_t hi)
{
    self_lo = lo;
    self_hi = hi;
}

/* Bytes of the depot section reserved on disk (from its start): entries are written
 * only below it; it grows in RACE_RESERVE_STEP steps. */
static uint64_t depot_off, depot_reserved;

static uint32_t depot_buckets(uint64_t size)
{
    uint32_t nb = 1024;
    while ((uint64_t)nb * 4 * 64 < size && nb < (1u << 22))
        nb <<= 1; /* about one bucket per 256 bytes of depot */
    return nb;
}

uint64_t race_depot_fixed(uint64_t depot_size)
{
    return sizeof(struct race_depot_hdr) + (uint64_t)depot_buckets(depot_size) * 4;
}

/* Reserves the depot up to byte `end` of its section; -1 when the disk is full. */
static int depot_reserve(uint64_t end)
{
    uint64_t have = __atomic_load_n(&depot_reserved, __ATOMIC_ACQUIRE);
    if (end <= have)
        return 0;
    uint64_t size = race_g.hdr->depot.size;
    uint64_t to = (end + RACE_RESERVE_STEP - 1) / RACE_RESERVE_STEP * RACE_RESERVE_STEP;
    if (to > size)
        to = size;
    if (race_trace_reserve(depot_off + have, to - have) != 0)
        return -1;
    while (have < to && !__atomic_compare_exchange_n(&depot_reserved, &have, to, 1, __ATOMIC_RELEASE,
                                                     __ATOMIC_ACQUIRE))
        ;
    return 0;
}

uint64_t race_depot_trim(struct race_hdr *h)
{
    uint64_t used = __atomic_load_n(&dh->used, __ATOMIC_RELAXED);
    if (used > dh->entries_size)
        used = dh->entries_size;
    uint64_t end = (dh->entries_off + used + 4095) / 4096 * 4096;
    if (end > h->depot.size)
        end = h->depot.size;
    if (end < __atomic_load_n(&depot_reserved, __ATOMIC_ACQUIRE))
        __atomic_store_n(&depot_reserved, end, __ATOMIC_RELEASE);
    return h->depot.off + end;
}

void race_depot_init(struct race_hdr *h)
{
    uint8_t *base = (uint8_t *)h + h->depot.off;
    dh = (struct race_depot_hdr *)base;
    uint64_t size = h->depot.size;
    uint32_t nb = depot_buckets(size);
    depot_off = h->depot.off;
    depot_reserved = (race_depot_fixed(size) + RACE_RESERVE_STEP - 1) / RACE_RESERVE_STEP * RACE_RESERVE_STEP;
    if (depot_reserved > size)
        depot_reserved = size;
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
    if (off + need > dh->entries_size || (off / 8 + 1) > UINT32_MAX ||
        depot_reserve(dh->entries_off + off + need) != 0) {
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
    unwinding++;
    int k = unw_backtrace(buf, n);
    unwinding--;
    return k;
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
    unwinding++;
    int n = unw_backtrace(raw, want);
    unwinding--;
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
    unwinding++;
    if (unw_init_local2(&cur, (unw_context_t *)uc, UNW_INIT_SIGNAL_FRAME) == 0) {
        do {
            unw_word_t ip;
            if (unw_get_reg(&cur, UNW_REG_IP, &ip) != 0 || !ip)
                break;
            pc[k++] = ip;
        } while (k < (uint32_t)race_g.stack_depth && unw_step(&cur) > 0);
    }
    unwinding--;
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
