/* pool.c - the guarded sampling pool (GWP-ASan style). A sampled allocation gets a
 * slot of its own: data pages between guard pages, the block aligned to the end so an
 * overflow faults at once. On free the slot's pages become PROT_NONE (mprotect: they
 * stay mapped, so reuse costs no new mapping and no page fault; slots larger than
 * RELEASE_OVER bytes also give their pages back) and the slot waits in a FIFO, so the
 * least recently freed slot is reused first. Owns the slot table and the sampling decision. The decision on
 * the allocation fast path is one per-thread countdown (shim.h); everything here is
 * the sampled slow path, which may make syscalls but never locks or allocates. */
#include <sched.h>
#include <string.h>
#include <sys/mman.h>

#include "record.h"

#define PAGE 4096u
#define CANARY 0xacu
/* Freed slots of at most this many data bytes keep their pages (256 default slots of
 * one page: 1 MiB at most); larger ones drop them, or big RACE_GUARD_SIZES would pin
 * slots x size of memory. */
#define RELEASE_OVER (4u * PAGE)

enum { SLOT_FRESH = 0, SLOT_LIVE = 1, SLOT_BUSY = 2, SLOT_FREED = 3 };

struct slot {
    uint64_t addr, size;
    uint32_t state, guard_open;
    uint32_t alloc_tid, alloc_ractor, alloc_stack, free_tid, free_ractor, free_stack, free_entry;
    uint64_t alloc_ts, free_ts, free_seq;
    /* the freeing thread's Ruby frames, raw (ruby_frames.c turns them into strings only
     * when a finding names this slot): count | status << 24 */
    uint32_t free_rb_n;
    struct race_rb_raw free_rb[RACE_RB_RAW_MAX];
};

/* Vyukov's bounded MPMC queue of freed slot indices: lock-free; an allocation that
 * finds it empty (or a cell still being written) is simply not guarded. */
struct cell {
    uint64_t seq;
    uint32_t idx;
    uint32_t pad;
};

uintptr_t race_pool_base;
uint64_t race_pool_size;
static uint64_t data_size, span;
static uint32_t nslots, qmask;
static struct slot *slots;
static struct cell *queue;
static uint64_t q_head, q_tail;
static uint32_t next_fresh;
static uint64_t guard_min, guard_max;
static struct {
    uint64_t lo, hi;
} sites[64];
static uint32_t nsites;

static void enqueue(uint32_t idx)
{
    uint64_t pos = __atomic_load_n(&q_tail, __ATOMIC_RELAXED);
    for (;;) {
        struct cell *c = &queue[pos & qmask];
        uint64_t seq = __atomic_load_n(&c->seq, __ATOMIC_ACQUIRE);
        int64_t dif = (int64_t)(seq - pos);
        if (dif == 0) {
            if (__atomic_compare_exchange_n(&q_tail, &pos, pos + 1, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
                c->idx = idx;
                __atomic_store_n(&c->seq, pos + 1, __ATOMIC_RELEASE);
                return;
            }
        } else if (dif < 0) {
            return; /* cannot happen: the queue holds every slot */
        } else {
            pos = __atomic_load_n(&q_tail, __ATOMIC_RELAXED);
        }
    }
}

static int dequeue(uint32_t *idx)
{
    uint64_t pos = __atomic_load_n(&q_head, __ATOMIC_RELAXED);
    for (;;) {
        struct cell *c = &queue[pos & qmask];
        uint64_t seq = __atomic_load_n(&c->seq, __ATOMIC_ACQUIRE);
        int64_t dif = (int64_t)(seq - (pos + 1));
        if (dif == 0) {
            if (__atomic_compare_exchange_n(&q_head, &pos, pos + 1, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
                *idx = c->idx;
                __atomic_store_n(&c->seq, pos + qmask + 1, __ATOMIC_RELEASE);
                return 1;
            }
        } else if (dif < 0) {
            return 0;
        } else {
            pos = __atomic_load_n(&q_head, __ATOMIC_RELAXED);
        }
    }
}

static inline uint8_t *slot_data(uint32_t i)
{
    return (uint8_t *)race_pool_base + PAGE + (uint64_t)i * span;
}

static void *map_anon(uint64_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* The next countdown: uniform in [1, 2N - 1], mean N. A fixed N would make the same
 * allocation numbers guarded in every run, so a bug either always or never hit. */
static inline int32_t next_countdown(void)
{
    /* Before the pool exists (allocations made before the constructor) look again
     * soon; a countdown of INT32_MAX there would leave that thread unsampled for good. */
    if (!race_pool_base)
        return 64;
    int32_t n = race_g.guard_sample;
    if (!n)
        return INT32_MAX;
    if (n == 1)
        return 1;
    uint64_t x = __rdtsc() ^ ((uint64_t)(uintptr_t)&race_tls << 17);
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return 1 + (int32_t)(x % (uint64_t)(2 * (int64_t)n - 1));
}

void race_pool_init(void)
{
    uint64_t lo, hi;
    race_parse_sizes(race_opt.RACE_GUARD_SIZES, &lo, &hi);
    guard_min = lo;
    guard_max = hi;
    if (race_opt.RACE_GUARD_SAMPLE == 0 && !race_opt.RACE_GUARD_SITES[0])
        return;
    nslots = (uint32_t)race_opt.RACE_GUARD_SLOTS;
    data_size = (hi + PAGE - 1) & ~(uint64_t)(PAGE - 1);
    span = data_size + PAGE;
    uint64_t size = PAGE + (uint64_t)nslots * span;
    void *base = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    uint32_t qcap = 1;
    while (qcap < nslots)
        qcap <<= 1;
    slots = map_anon(sizeof(struct slot) * nslots);
    queue = map_anon(sizeof(struct cell) * qcap);
    if (base == MAP_FAILED || !slots || !queue) {
        race_notice("cannot map the guarded pool: no allocation is guarded", NULL, NULL, NULL);
        return;
    }
    qmask = qcap - 1;
    for (uint32_t i = 0; i < qcap; i++)
        queue[i].seq = i;
    race_pool_size = size;
    race_g.guard_sample = (int32_t)race_opt.RACE_GUARD_SAMPLE;
    __atomic_store_n(&race_pool_base, (uintptr_t)base, __ATOMIC_RELEASE);
    race_tls.guard_countdown = next_countdown();
    if (race_opt.RACE_GUARD_SITES[0])
        race_pool_resolve_sites();
}

/* Every loaded object's symbol tables, searched for the RACE_GUARD_SITES names: their
 * address ranges are what a sampled allocation's first frames are compared with.
 * Start-up and rescans only (libelf allocates). */
static int site_cb(const char *name, uint64_t lo, uint64_t hi, void *arg)
{
    (void)arg;
    const char *s = race_opt.RACE_GUARD_SITES;
    size_t n = strlen(name);
    while (*s) {
        const char *e = s;
        while (*e && *e != ',')
            e++;
        if ((size_t)(e - s) == n && memcmp(s, name, n) == 0 && nsites < 64) {
            for (uint32_t k = 0; k < nsites; k++)
                if (sites[k].lo == lo)
                    return 0;
            sites[nsites].lo = lo;
            sites[nsites].hi = hi;
            __atomic_store_n(&nsites, nsites + 1, __ATOMIC_RELEASE);
        }
        s = *e ? e + 1 : e;
    }
    return 0;
}

void race_pool_resolve_sites(void)
{
    race_symbols_each_function(site_cb, NULL);
}

static int at_site(void)
{
    void *raw[8];
    uint64_t pc[8];
    struct race_tls *t = &race_tls;
    t->busy++;
    int n = race_stack_raw(raw, 8);
    uint32_t ns = __atomic_load_n(&nsites, __ATOMIC_ACQUIRE);
    int hit = 0, k = 0;
    for (int i = 0; i < n && k < 6; i++) {
        uint64_t a = (uint64_t)(uintptr_t)raw[i];
        if (race_stack_is_self(a))
            continue;
        pc[k++] = a;
        for (uint32_t j = 0; j < ns && !hit; j++)
            hit = a >= sites[j].lo && a < sites[j].hi;
    }
    /* A frame in code loaded since the last scan may belong to a site: look once. */
    if (!hit && k && !race_modules_known(pc, (uint32_t)k)) {
        race_modules_rescan();
        race_pool_resolve_sites();
        ns = __atomic_load_n(&nsites, __ATOMIC_ACQUIRE);
        for (int i = 0; i < k && !hit; i++)
            for (uint32_t j = 0; j < ns && !hit; j++)
                hit = pc[i] >= sites[j].lo && pc[i] < sites[j].hi;
    }
    t->busy--;
    return hit;
}

/* The slow half of race_guard_want (shim.h): the countdown ran out, or sites are set. */
int race_pool_decide(struct race_tls *t, size_t n)
{
    if (t->busy || !race_pool_base || n < guard_min || n > guard_max) {
        if (t->guard_countdown <= 0)
            t->guard_countdown = next_countdown();
        return 0;
    }
    if (t->guard_countdown <= 0) {
        t->guard_countdown = next_countdown();
        if (race_g.guard_sample)
            return 1;
    }
    return race_opt.RACE_GUARD_SITES[0] && at_site();
}

/* A block is handed out zeroed (its pages may hold a freed block's bytes): calloc
 * needs nothing more. */
void *race_pool_alloc(size_t size, size_t align)
{
    uint32_t i;
    if (align < 16)
        align = 16;
    if (align > PAGE || size > data_size)
        return NULL;
    i = __atomic_fetch_add(&next_fresh, 1, __ATOMIC_RELAXED);
    if (i >= nslots && !dequeue(&i))
        return NULL;
    struct slot *s = &slots[i];
    uint8_t *data = slot_data(i);
    if (mprotect(data, data_size, PROT_READ | PROT_WRITE) != 0) {
        enqueue(i);
        return NULL;
    }
    if (s->guard_open) { /* a reported overflow opened it: close it again */
        mprotect(data + data_size, PAGE, PROT_NONE);
        s->guard_open = 0;
    }
    uint64_t rs = (size + align - 1) & ~(uint64_t)(align - 1);
    if (!rs)
        rs = align;
    uint8_t *p = data + data_size - rs;
    memset(p, 0, size);
    memset(p + size, CANARY, rs - size);
    struct race_tls *t = &race_tls;
    s->addr = (uint64_t)(uintptr_t)p;
    s->size = size;
    s->alloc_tid = race_tid(t);
    s->alloc_ractor = race_ractor_id();
    s->alloc_stack = race_stack_capture();
    s->alloc_ts = race_now();
    s->free_ts = 0;
    __atomic_store_n(&s->state, SLOT_LIVE, __ATOMIC_RELEASE);
    race_record_event(RACE_EV_ALLOC, 0, RACE_RF_GUARDED, p, size, i, s->alloc_stack);
    return p;
}

size_t race_pool_usable(const void *p)
{
    uint64_t i = ((uintptr_t)p - race_pool_base - PAGE) / span;
    return i < nslots ? slots[i].size : 0;
}

/* Describes slot i's block, allocation and free into a finding. */
static void describe(const struct slot *s, uint32_t i, struct race_finding *f)
{
    f->slot = i;
    f->block_addr = s->addr;
    f->block_size = s->size;
    f->alloc_ts = s->alloc_ts;
    f->alloc_tid = s->alloc_tid;
    f->alloc_ractor = s->alloc_ractor;
    f->alloc_stack = s->alloc_stack;
    if (s->free_ts) {
        f->free_ts = s->free_ts;
        f->free_tid = s->free_tid;
        f->free_ractor = s->free_ractor;
        f->free_stack = s->free_stack;
        f->free_entry = (uint8_t)s->free_entry;
        f->free_seq = s->free_seq;
    }
}

static void bad_free(int type, uint32_t i, void *p)
{
    struct race_finding f;
    memset(&f, 0, sizeof(f));
    struct race_tls *t = &race_tls;
    f.type = (uint16_t)type;
    f.addr = (uint64_t)(uintptr_t)p;
    f.tid = race_tid(t);
    f.ractor = race_ractor_id();
    f.stack = race_stack_capture();
    f.ts = race_now();
    f.slot = UINT32_MAX;
    if (i < nslots)
        describe(&slots[i], i, &f);
    race_finding_report(&f, NULL);
}

/* Frees a pointer inside the pool. A double or invalid free is a finding and is not
 * passed on: the block is the pool's, libc never saw it. */
void race_pool_free(void *p, unsigned entry)
{
    uintptr_t off = (uintptr_t)p - race_pool_base;
    uint64_t i = off >= PAGE ? (off - PAGE) / span : UINT64_MAX;
    if (i >= nslots || (off - PAGE) % span >= data_size) {
        bad_free(RACE_FIND_INVALID_FREE, UINT32_MAX, p);
        return;
    }
    struct slot *s = &slots[i];
    uint32_t st = SLOT_LIVE;
    if (s->addr != (uint64_t)(uintptr_t)p ||
        !__atomic_compare_exchange_n(&s->state, &st, SLOT_BUSY, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
        /* Two frees at once: the other one is still writing who it is (its stack takes
         * microseconds). Wait for it, boundedly, so the report can name the first free. */
        for (int k = 0; st == SLOT_BUSY && k < 20000 && __atomic_load_n(&s->state, __ATOMIC_ACQUIRE) == SLOT_BUSY; k++)
            sched_yield();
        bad_free(st == SLOT_FREED || st == SLOT_BUSY ? RACE_FIND_DOUBLE_FREE : RACE_FIND_INVALID_FREE,
                 (uint32_t)i, p);
        return;
    }
    struct race_tls *t = &race_tls;
    uint8_t *end = slot_data((uint32_t)i) + data_size;
    for (uint8_t *c = (uint8_t *)p + s->size; c < end; c++) {
        if (*c != CANARY) {
            struct race_finding f;
            memset(&f, 0, sizeof(f));
            f.type = RACE_FIND_OVERFLOW_AT_FREE;
            f.access = RACE_ACCESS_WRITE;
            f.addr = (uint64_t)(uintptr_t)c;
            f.tid = race_tid(t);
            f.ractor = race_ractor_id();
            f.stack = race_stack_capture();
            f.ts = race_now();
            describe(s, (uint32_t)i, &f);
            race_finding_report(&f, NULL);
            break;
        }
    }
    /* Who freed it is written before the pages go away, so a racing use sees it. */
    s->free_tid = race_tid(t);
    s->free_ractor = race_ractor_id();
    s->free_stack = race_stack_capture();
    s->free_entry = entry;
    s->free_ts = race_now();
    s->free_seq = race_record_event(RACE_EV_FREE, entry, RACE_RF_GUARDED, p, s->size, i, s->free_stack);
    uint32_t rb_max = (uint32_t)race_opt.RACE_RUBY_DEPTH;
    s->free_rb_n = rb_max ? race_rb_capture_raw(s->free_rb, rb_max < RACE_RB_RAW_MAX ? rb_max : RACE_RB_RAW_MAX) : 0;
    __atomic_store_n(&s->state, SLOT_FREED, __ATOMIC_RELEASE);
    mprotect(slot_data((uint32_t)i), data_size, PROT_NONE);
    if (data_size > RELEASE_OVER)
        madvise(slot_data((uint32_t)i), data_size, MADV_DONTNEED);
    enqueue((uint32_t)i);
}

/* May the shim's fault-safe loads read p (ruby_frames.c)? Outside the pool, yes; inside,
 * only the data pages of a live block: a freed slot's or a guard page's fault must stay
 * a finding (and a fault inside the signal handler would open the slot again). A block
 * freed between this answer and the load faults, and the load fails: a missed frame. */
int race_pool_readable(uintptr_t p)
{
    uintptr_t base = __atomic_load_n(&race_pool_base, __ATOMIC_ACQUIRE);
    if (!base || p - base >= race_pool_size)
        return 1;
    uint64_t off = p - base;
    if (off < PAGE || (off - PAGE) % span >= data_size)
        return 0;
    uint64_t i = (off - PAGE) / span;
    return i < nslots && __atomic_load_n(&slots[i].state, __ATOMIC_ACQUIRE) == SLOT_LIVE;
}

/* The Ruby frames of slot i's last free as a backtrace record, for a finding whose free
 * happened at free_ts (a slot freed again since then has other frames: none). */
uint32_t race_pool_free_rb(uint32_t i, uint64_t free_ts)
{
    if (i >= nslots || !free_ts)
        return 0;
    struct slot *s = &slots[i];
    struct race_rb_raw raw[RACE_RB_RAW_MAX];
    uint32_t n = s->free_rb_n, tid = s->free_tid;
    memcpy(raw, s->free_rb, sizeof(raw));
    if (__atomic_load_n(&s->free_ts, __ATOMIC_ACQUIRE) != free_ts)
        return 0;
    return race_rb_from_raw(raw, n, tid);
}

/* Fault handler side: is addr ours, and what does it hit? Fills f and returns the
 * slot whose pages must be opened to continue, or -1 when the address is not ours. */
int race_pool_classify(uintptr_t addr, struct race_finding *f, int *open_guard)
{
    uintptr_t base = __atomic_load_n(&race_pool_base, __ATOMIC_ACQUIRE);
    if (!base || addr < base || addr >= base + race_pool_size)
        return -1;
    uint64_t off = addr - base;
    *open_guard = 0;
    if (off < PAGE) { /* the guard page before slot 0 */
        f->type = RACE_FIND_UNDERFLOW;
        describe(&slots[0], 0, f);
        *open_guard = 1;
        return 0;
    }
    uint64_t i = (off - PAGE) / span, in = (off - PAGE) % span;
    if (in < data_size) {
        struct slot *s = &slots[i];
        uint32_t st = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
        f->type = st == SLOT_FRESH ? RACE_FIND_WILD_ACCESS : RACE_FIND_USE_AFTER_FREE;
        describe(s, (uint32_t)i, f);
        return (int)i;
    }
    /* A guard page: blocks sit at the end of their pages, so this is an overflow of
     * slot i unless slot i never held a block. */
    *open_guard = 1;
    if (__atomic_load_n(&slots[i].state, __ATOMIC_ACQUIRE) != SLOT_FRESH || i + 1 >= nslots) {
        f->type = RACE_FIND_OVERFLOW;
        describe(&slots[i], (uint32_t)i, f);
        return (int)i;
    }
    f->type = RACE_FIND_UNDERFLOW;
    describe(&slots[i + 1], (uint32_t)(i + 1), f);
    return (int)i;
}

/* RACE_ON_FINDING=continue: makes the faulting page usable (a freed block comes back
 * filled with poison) so the access completes. */
int race_pool_open(int i, int open_guard)
{
    struct slot *s = &slots[i];
    if (open_guard) {
        s->guard_open = 1;
        return mprotect(slot_data((uint32_t)i) + data_size, PAGE, PROT_READ | PROT_WRITE) == 0;
    }
    uint8_t *d = slot_data((uint32_t)i);
    if (mprotect(d, data_size, PROT_READ | PROT_WRITE) != 0)
        return 0;
    memset(d, 0xfd, data_size);
    return 1;
}

/* For the signal handler: a slot the handler itself touched, closed again by another
 * thread meanwhile. Opens it as race_pool_open does; 0 if addr is no slot's. */
int race_pool_reopen(uintptr_t addr)
{
    struct race_finding f;
    int open_guard = 0;
    int i = race_pool_classify(addr, &f, &open_guard);
    return i >= 0 && race_pool_open(i, open_guard);
}
