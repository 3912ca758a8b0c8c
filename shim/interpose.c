/* interpose.c - the exported allocator family (libc's malloc..pvalloc, Ruby's
 * ruby_xfree/ruby_sized_xfree/ruby_x*realloc*) and the resolution of the real ones.
 * Owns the rule that one free is one event: a ruby_x* hook marks the block it frees
 * so the libc free it makes underneath is not recorded again. Never locks; serves
 * from the bootstrap pool until dlsym has answered. */
#include <dlfcn.h>
#include <errno.h>
#include <string.h>

#include "record.h"

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static int (*real_posix_memalign)(void **, size_t, size_t);
static void *(*real_aligned_alloc)(size_t, size_t);
static void *(*real_memalign)(size_t, size_t);
static void *(*real_valloc)(size_t);
static void *(*real_pvalloc)(size_t);
void (*race_real_free)(void *);
size_t (*race_real_usable)(void *);
static void (*real_ruby_xfree)(void *);
static void (*real_ruby_sized_xfree)(void *, size_t);
static void *(*real_ruby_xrealloc)(void *, size_t);
static void *(*real_ruby_xrealloc2)(void *, size_t, size_t);
static void *(*real_ruby_sized_xrealloc)(void *, size_t, size_t);
static void *(*real_ruby_sized_xrealloc2)(void *, size_t, size_t, size_t);
static int resolving;

#define RESOLVE(var, name) var = (__typeof__(var))dlsym(RTLD_NEXT, name)

/* dlsym may allocate: those calls land in the bootstrap pool because the pointers
 * they would use are still NULL while this runs. */
void race_interpose_resolve(void)
{
    if (__atomic_exchange_n(&resolving, 1, __ATOMIC_ACQ_REL))
        return;
    RESOLVE(real_calloc, "calloc");
    RESOLVE(real_malloc, "malloc");
    RESOLVE(real_realloc, "realloc");
    RESOLVE(real_posix_memalign, "posix_memalign");
    RESOLVE(real_aligned_alloc, "aligned_alloc");
    RESOLVE(real_memalign, "memalign");
    RESOLVE(real_valloc, "valloc");
    RESOLVE(real_pvalloc, "pvalloc");
    RESOLVE(race_real_usable, "malloc_usable_size");
    RESOLVE(real_ruby_xfree, "ruby_xfree");
    RESOLVE(real_ruby_sized_xfree, "ruby_sized_xfree");
    RESOLVE(real_ruby_xrealloc, "ruby_xrealloc");
    RESOLVE(real_ruby_xrealloc2, "ruby_xrealloc2");
    RESOLVE(real_ruby_sized_xrealloc, "ruby_sized_xrealloc");
    RESOLVE(real_ruby_sized_xrealloc2, "ruby_sized_xrealloc2");
    /* free last: once it is set, every other pointer is. */
    void (*f)(void *);
    RESOLVE(f, "free");
    __atomic_store_n(&race_real_free, f, __ATOMIC_RELEASE);
}

static inline int ready(void)
{
    if (likely(__atomic_load_n(&race_real_free, __ATOMIC_ACQUIRE) != NULL))
        return 1;
    race_interpose_resolve();
    return __atomic_load_n(&race_real_free, __ATOMIC_ACQUIRE) != NULL;
}

static inline size_t usable(void *p)
{
    return race_g.hdr ? race_real_usable(p) : 0;
}

/* A sampled allocation goes to a guarded slot; when none is free it goes to libc. */
#define GUARDED(n, align)                                     \
    do {                                                            \
        if (unlikely(race_guard_want(n))) {                         \
            void *g_ = race_pool_alloc((n), (align));               \
            if (g_)                                                 \
                return g_;                                          \
        }                                                           \
    } while (0)

RACE_EXPORT void *malloc(size_t n)
{
    if (unlikely(!ready()))
        return race_boot_alloc(n, 16);
    GUARDED(n, 16);
    return real_malloc(n);
}

RACE_EXPORT void *calloc(size_t n, size_t m)
{
    if (unlikely(!ready())) {
        size_t total;
        if (__builtin_mul_overflow(n, m, &total)) {
            errno = ENOMEM;
            return NULL;
        }
        return race_boot_alloc(total, 16); /* static storage: already zero */
    }
    size_t total;
    if (!__builtin_mul_overflow(n, m, &total))
        GUARDED(total, 16); /* slot pages are fresh: already zero */
    return real_calloc(n, m);
}

RACE_EXPORT void free(void *p)
{
    if (unlikely(!p || race_boot_owns(p)))
        return;
    if (unlikely(!ready()))
        return; /* cannot happen for a pointer libc gave out: it was resolved by then */
    struct race_tls *t = &race_tls;
    if (unlikely(race_pool_owns(p))) {
        unsigned entry = RACE_ENTRY_FREE;
        if (t->ruby_free == p) {
            entry = t->ruby_entry;
            t->ruby_free = NULL;
        }
        race_pool_free(p, entry);
        return;
    }
    unsigned entry = RACE_ENTRY_FREE;
    int keep = race_quarantine_on || t->quarantine_next;
    /* asked once: the record and the quarantine both want it */
    size_t size = race_g.hdr || keep ? race_real_usable(p) : 0;
    if (likely(t->ruby_free != p)) {
        race_record_free(p, size, RACE_ENTRY_FREE, 0);
    } else {
        entry = t->ruby_entry; /* the Ruby hook above recorded it */
        t->ruby_free = NULL;
    }
    if (unlikely(keep)) {
        int kept = t->quarantine_next; /* kept for a check: intact, not poisoned */
        t->quarantine_next = 0;
        race_quarantine_put(p, size, entry, t->last_seq, t->last_stack, !kept);
        return;
    }
    race_real_free(p);
}

static void *from_boot(void *p, size_t n)
{
    void *q = malloc(n);
    if (q) {
        size_t old = race_boot_size(p);
        memcpy(q, p, old < n ? old : n);
    }
    return q;
}

/* A guarded block never grows in place: a new block (sampled again like any
 * allocation), a copy, and the guarded free of the old one. */
static void *realloc_guarded(void *p, size_t n, unsigned entry)
{
    struct race_tls *t = &race_tls;
    if (t->ruby_free == p) {
        entry = t->ruby_entry;
        t->ruby_free = NULL;
    }
    void *q = NULL;
    if (n) {
        q = malloc(n);
        if (!q)
            return NULL;
        size_t old = race_pool_usable(p);
        memcpy(q, p, old < n ? old : n);
    }
    race_pool_free(p, entry);
    return q;
}

static void *realloc_common(void *p, size_t n, unsigned entry)
{
    struct race_tls *t = &race_tls;
    if (unlikely(race_pool_owns(p)))
        return realloc_guarded(p, n, entry);
    int record = t->ruby_free != p;
    if (!record)
        t->ruby_free = NULL;
    if (n == 0) { /* glibc frees p and returns NULL */
        if (record)
            race_record_free(p, usable(p), RACE_ENTRY_REALLOC_ZERO, 0);
        return real_realloc(p, 0);
    }
    size_t old = record ? usable(p) : 0;
    if (unlikely(race_quarantine_on)) {
        /* A block that must move is moved here, so the old one can be quarantined
         * instead of being freed inside libc's realloc. */
        size_t have = race_real_usable(p);
        if (n <= have)
            return p;
        void *q = real_malloc(n);
        if (!q)
            return NULL;
        memcpy(q, p, have);
        if (record)
            race_record_free(p, have, entry, (uint64_t)(uintptr_t)q);
        race_quarantine_put(p, have, record ? entry : t->ruby_entry, t->last_seq, t->last_stack, 1);
        return q;
    }
    void *q = real_realloc(p, n);
    if (q && q != p && record)
        race_record_free(p, old, entry, (uint64_t)(uintptr_t)q);
    return q;
}

RACE_EXPORT void *realloc(void *p, size_t n)
{
    if (!p)
        return malloc(n);
    if (unlikely(race_boot_owns(p)))
        return from_boot(p, n);
    if (unlikely(!ready()))
        return NULL;
    return realloc_common(p, n, RACE_ENTRY_REALLOC);
}

RACE_EXPORT void *reallocarray(void *p, size_t n, size_t m)
{
    size_t total;
    if (__builtin_mul_overflow(n, m, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    if (!p)
        return malloc(total);
    if (unlikely(race_boot_owns(p)))
        return from_boot(p, total);
    if (unlikely(!ready()))
        return NULL;
    return realloc_common(p, total, RACE_ENTRY_REALLOCARRAY);
}

RACE_EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
    if (align < sizeof(void *) || (align & (align - 1)))
        return EINVAL;
    if (unlikely(!ready())) {
        void *p = race_boot_alloc(n, align);
        if (!p)
            return ENOMEM;
        *out = p;
        return 0;
    }
    if (unlikely(race_guard_want(n))) {
        void *p = race_pool_alloc(n, align);
        if (p) {
            *out = p;
            return 0;
        }
    }
    return real_posix_memalign(out, align, n);
}

RACE_EXPORT void *aligned_alloc(size_t align, size_t n)
{
    if (unlikely(!ready()))
        return race_boot_alloc(n, align);
    if (align && !(align & (align - 1)))
        GUARDED(n, align);
    return real_aligned_alloc(align, n);
}

RACE_EXPORT void *memalign(size_t align, size_t n)
{
    if (unlikely(!ready()))
        return race_boot_alloc(n, align);
    if (align && !(align & (align - 1)))
        GUARDED(n, align);
    return real_memalign(align, n);
}

RACE_EXPORT void *valloc(size_t n)
{
    if (unlikely(!ready()))
        return race_boot_alloc(n, 4096);
    return real_valloc(n);
}

RACE_EXPORT void *pvalloc(size_t n)
{
    if (unlikely(!ready()))
        return race_boot_alloc((n + 4095) & ~(size_t)4095, 4096);
    return real_pvalloc(n);
}

RACE_EXPORT size_t malloc_usable_size(void *p)
{
    if (!p)
        return 0;
    if (unlikely(race_boot_owns(p)))
        return race_boot_size(p);
    if (unlikely(race_pool_owns(p)))
        return race_pool_usable(p);
    if (unlikely(!ready()))
        return 0;
    return race_real_usable(p);
}

/* Ruby's entry points. Each records the event itself, with its own entry name, and
 * marks the block so that the libc call Ruby makes underneath is not a second event.
 * The mark is saved and restored: a GC run inside ruby_xrealloc frees other blocks
 * through ruby_xfree on this same thread. A Ruby hook that finds the mark already on
 * its block is nested in another (3.1's ruby_xfree calls ruby_sized_xfree through the
 * PLT): the outer one records. */
static inline void ruby_free_common(void *p, unsigned entry, void (*real1)(void *),
                                    void (*real2)(void *, size_t), size_t size)
{
    struct race_tls *t = &race_tls;
    const void *saved = t->ruby_free;
    size_t u;
    /* t->ruby_free == p: an outer Ruby hook (ruby_xfree -> ruby_sized_xfree in 3.1)
     * has recorded this free already. */
    if (p && saved != p && !race_boot_owns(p) && ready()) {
        if (race_pool_owns(p)) {
            /* a guarded block's free is recorded by the pool */
        } else if (unlikely(race_ruby_ci_active) && race_ruby_kwarg_shaped(p, (u = race_real_usable(p)))) {
            /* a call-info kwarg block: kept, with its free stack, for the stale call-info check */
            race_record_free_stacked(p, u, entry);
            race_ruby_ci_kept();
            t->quarantine_next = 1;
        } else {
            race_record_free(p, usable(p), entry, 0);
        }
        t->ruby_free = p;
        t->ruby_entry = entry;
    }
    if (real1)
        real1(p);
    else if (real2)
        real2(p, size);
    else
        free(p);
    t->ruby_free = saved;
    t->quarantine_next = 0; /* in case Ruby did not pass the block on to free() */
}

RACE_EXPORT void ruby_xfree(void *p)
{
    ruby_free_common(p, RACE_ENTRY_RUBY_XFREE, real_ruby_xfree, NULL, 0);
}

RACE_EXPORT void ruby_sized_xfree(void *p, size_t size)
{
    ruby_free_common(p, RACE_ENTRY_RUBY_SIZED_XFREE, NULL, real_ruby_sized_xfree, size);
}

#define RUBY_REALLOC_BODY(entry, call)                                  \
    struct race_tls *t = &race_tls;                                     \
    const void *saved = t->ruby_free;                                   \
    size_t old = 0;                                                     \
    if (p && saved != p && !race_boot_owns(p) && !race_pool_owns(p) && ready()) \
        old = usable(p);                                                \
    t->ruby_free = p;                                                   \
    t->ruby_entry = entry;                                              \
    void *q = call;                                                     \
    t->ruby_free = saved;                                               \
    if (p && q != p && old)                                             \
        race_record_free(p, old, entry, (uint64_t)(uintptr_t)q);        \
    return q

RACE_EXPORT void *ruby_xrealloc(void *p, size_t n)
{
    RUBY_REALLOC_BODY(RACE_ENTRY_RUBY_XREALLOC,
                      real_ruby_xrealloc ? real_ruby_xrealloc(p, n) : realloc(p, n));
}

RACE_EXPORT void *ruby_xrealloc2(void *p, size_t n, size_t size)
{
    RUBY_REALLOC_BODY(RACE_ENTRY_RUBY_XREALLOC2,
                      real_ruby_xrealloc2 ? real_ruby_xrealloc2(p, n, size) : reallocarray(p, n, size));
}

RACE_EXPORT void *ruby_sized_xrealloc(void *p, size_t n, size_t old_n)
{
    RUBY_REALLOC_BODY(RACE_ENTRY_RUBY_SIZED_XREALLOC,
                      real_ruby_sized_xrealloc ? real_ruby_sized_xrealloc(p, n, old_n) : realloc(p, n));
}

RACE_EXPORT void *ruby_sized_xrealloc2(void *p, size_t n, size_t size, size_t old_n)
{
    RUBY_REALLOC_BODY(RACE_ENTRY_RUBY_SIZED_XREALLOC2,
                      real_ruby_sized_xrealloc2 ? real_ruby_sized_xrealloc2(p, n, size, old_n)
                                                : reallocarray(p, n, size));
}
