/* shim.h - librace.so's private types and its map: prototypes grouped by the file
 * that defines them. Owns the per-thread state (one initial-exec TLS block) and the
 * process-wide state. Nothing here allocates; the hot-path helpers take no lock. */
#ifndef RACE_SHIM_H
#define RACE_SHIM_H

#include <stddef.h>
#include <stdint.h>
#include <unistd.h>
#include <x86intrin.h>

#include "race_trace.h"
#include "arch_x86.h"

#define RACE_EXPORT __attribute__((visibility("default")))
#define RACE_HIDDEN __attribute__((visibility("hidden")))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* Exit statuses of a process that cannot start under race (documented in README). */
#define RACE_EXIT_BADOPT 98 /* a RACE_* variable has a bad value or an unknown name */
#define RACE_EXIT_TRACE 99  /* the trace file cannot be created */

/* Per-thread state: one TLS block, initial-exec, so reaching it is one %fs load. */
struct race_tls {
    struct race_chunk *chunk; /* ring chunk this thread holds, NULL until the first event */
    uint64_t gen;             /* that chunk's generation */
    uint64_t state_base;      /* (gen + 1) << 24 | HELD: the chunk's state without used */
    uint32_t used;            /* records reserved in that chunk */
    uint32_t tag_base;        /* (uint32_t)(gen * RACE_CHUNK_RECS) */
    uint64_t seq;             /* events this thread recorded */
    const void *ruby_free;    /* block a ruby_x* hook is freeing: libc's free of it is the same event */
    uint32_t ruby_entry;      /* that hook's enum race_entry */
    int32_t countdown;        /* frees left until the next stacked one */
    int32_t guard_countdown;  /* allocations left until the next guarded one */
    uint32_t quarantine_next; /* the free below is quarantined even when the quarantine is off */
    uint32_t last_stack;      /* stack id and seq of the last FREE record this thread wrote */
    uint64_t last_seq;
    uint32_t epoch;           /* == race_g.epoch while chunk/tid/seq belong to this process */
    uint32_t tid;
    uint32_t busy;            /* inside the shim's own slow path (unwinding, rescans) */
    uint32_t exit_hook;       /* the thread-exit release of its chunk is armed */
};
extern __thread struct race_tls race_tls __attribute__((tls_model("initial-exec")));

/* Process-wide state, written at start-up and in the fork child only. */
struct race_global {
    struct race_hdr *hdr;      /* NULL: not recording */
    uint8_t *ring;             /* first chunk */
    uint32_t nchunks;
    uint32_t epoch;            /* bumped in a fork child: invalidates every TLS block */
    int clock;                 /* enum race_clock */
    int started;               /* constructor finished (recording or not) */
    uint64_t map_size;
    int32_t stack_sample;
    int32_t stack_depth;
    int32_t guard_sample;      /* RACE_GUARD_SAMPLE, 0 when the pool is off */
    int32_t guard_sites;       /* RACE_GUARD_SITES is set and the pool is on */
    int32_t on_finding_abort;  /* RACE_ON_FINDING=abort */
};
extern struct race_global race_g;

/* options.c */
typedef const char *str_t;
typedef int64_t int_t;
struct race_options {
#define RACE_OPT(name, type, def, lo, hi, unit, check, help) type##_t name;
    #include "options.def"
#undef RACE_OPT
};
extern struct race_options race_opt;
void race_options_parse(void);
int race_parse_sizes(const char *s, uint64_t *lo, uint64_t *hi);
size_t race_options_format(char *buf, size_t cap);

/* notice.c: stderr lines built without stdio or malloc */
void race_notice(const char *a, const char *b, const char *c, const char *d);
size_t race_fmt_u64(char *buf, uint64_t v);
size_t race_fmt_hex(char *buf, uint64_t v);
size_t race_strlcpy(char *dst, const char *src, size_t cap);

/* bootstrap.c */
#define RACE_BOOT_SIZE (256u * 1024u)
extern uint8_t race_boot_pool[RACE_BOOT_SIZE];
void *race_boot_alloc(size_t size, size_t align);
static inline int race_boot_owns(const void *p)
{
    return (const uint8_t *)p >= race_boot_pool && (const uint8_t *)p < race_boot_pool + RACE_BOOT_SIZE;
}
size_t race_boot_size(const void *p);

/* interpose.c */
void race_interpose_resolve(void);
extern void (*race_real_free)(void *);
extern size_t (*race_real_usable)(void *);

/* ring.c (the per-record half is inline in ring.h) */
struct race_rec *race_ring_reserve_slow(struct race_tls *t, uint32_t *tag);
void race_ring_attach(struct race_hdr *h);
void race_ring_release(struct race_tls *t);
void race_ring_init(void);

/* clock.c */
void race_clock_init(void);
uint64_t race_mono_ns(void);
uint64_t race_ticks_to_ns(uint64_t ticks);
static inline uint64_t race_now(void)
{
    if (likely(race_g.clock == RACE_CLOCK_TSC))
        return __rdtsc();
    return race_mono_ns();
}

/* stacks.c */
uint32_t race_stack_capture(void);
uint32_t race_stack_capture_uc(void *uc);
int race_stack_raw(void **buf, int n);
int race_stack_is_self(uint64_t pc);
uint32_t race_depot_frames(uint32_t id, const uint64_t **pc);
void race_depot_init(struct race_hdr *h);
void race_stacks_init(void);
void race_stacks_self(uintptr_t lo, uintptr_t hi);

/* modules.c */
void race_modules_init(struct race_hdr *h);
int race_modules_known(const uint64_t *pc, uint32_t n);
size_t race_modules_describe(uint64_t pc, char *buf, size_t cap);
void race_modules_rescan(void);
struct dl_phdr_info;
size_t race_build_id(const struct dl_phdr_info *info, uint8_t *out); /* <= 32 bytes; 0: none */

/* symbols.c: every function symbol of the loaded objects (start-up only: allocates) */
void race_symbols_each_function(int (*cb)(const char *name, uint64_t lo, uint64_t hi, void *arg), void *arg);

/* pool.c's range, for the Ractor-id read in ruby.h */
extern uintptr_t race_pool_base;
extern uint64_t race_pool_size;
static inline int race_pool_owns(const void *p)
{
    return (uintptr_t)p - race_pool_base < race_pool_size;
}

/* ruby.c, ruby_ci.c: everything about CRuby, with its own header */
#include "ruby.h"

/* pool.c: the guarded sampling pool */
void race_pool_init(void);
void race_pool_resolve_sites(void);
int race_pool_decide(struct race_tls *t, size_t n);
void *race_pool_alloc(size_t size, size_t align);
void race_pool_free(void *p, unsigned entry);
size_t race_pool_usable(const void *p);
int race_pool_classify(uintptr_t addr, struct race_finding *f, int *open_guard);
int race_pool_open(int slot, int open_guard);
int race_pool_reopen(uintptr_t addr);
/* The per-allocation sampling decision: one decrement and branch unless
 * RACE_GUARD_SITES asks to look at every allocation's stack. */
static inline int race_guard_want(size_t n)
{
    struct race_tls *t = &race_tls;
    if (likely(--t->guard_countdown > 0) && likely(!race_g.guard_sites))
        return 0;
    return race_pool_decide(t, n);
}

/* quarantine.c: freed blocks held back, poisoned, and indexed by address */
extern int race_quarantine_on;
void race_quarantine_init(void);
void race_quarantine_ensure(void);
void race_quarantine_put(void *p, uint64_t size, unsigned entry, uint64_t seq, uint32_t stack, int poison);
int race_quarantine_find(uintptr_t addr, struct race_finding *f);
void race_quarantine_note(const void *p, uint64_t size, unsigned entry, uint64_t seq, uint32_t stack);
int race_quarantine_find_foreign(uintptr_t addr, struct race_finding *f);

/* findings.c: findings into their own section, and the immediate stderr report */
void race_findings_init(struct race_hdr *h);
void race_findings_path(const char *path);
void race_finding_report(struct race_finding *f, const void *uc);
/* Seen before in this process (same type, pc and block)? Then it is counted and 1 is
 * returned: the caller skips what a report needs (the stack). */
int race_finding_again(const struct race_finding *f);

/* signals.c: our SIGSEGV/SIGBUS handlers stay first; the program's are chained */
void race_signals_init(void);
void race_signal_chain(int sig, void *si, void *uc);
int race_signal_ignored(int sig, const void *si); /* the program ignores this sent signal */

/* crash.c: crash records, from the signal handler (async-signal-safe) */
int race_crash_is_fatal(int sig);
uint32_t race_crash_record(int sig, const void *si, void *uc); /* the crash it belongs to, index+1 */
uint32_t race_crash_open(uint32_t index1);  /* the crash this thread's handler handles; returns the previous */
int race_crash_unwind_fault(void);          /* a fault during the crash unwind: jumps back; 0 if none ran */
void race_crash_own_abort(void);            /* this thread aborts for a finding: not a crash */

/* arch_x86.c: what a fault's machine context says */
uint64_t race_arch_pc(const void *uc);
int race_arch_is_write(const void *uc);
uint32_t race_arch_access_size(uint64_t pc);

/* watch.c */
void race_watch_init(struct race_hdr *h);

/* trace.c */
int race_trace_open(int forked);
void race_trace_close(void);

static inline uint32_t race_tid(const struct race_tls *t)
{
    return t->tid && t->epoch == race_g.epoch ? t->tid : (uint32_t)gettid();
}

/* record.c (the per-event half is inline in record.h) */
void race_record_early_free(void);
uint64_t race_record_early(void);

#endif
