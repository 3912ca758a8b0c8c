/* engine_x86.h - what the files of the x86-64 probe engine share among themselves: the
 * probe record and table, the decoded-region and code-emitter types, and each file's
 * entry points. Private to the engine (the files named *_x86.c here): clients include
 * probe.h only. Declares no state of its own. */
#ifndef RACE_ENGINE_X86_H
#define RACE_ENGINE_X86_H

#include <Zydis/Zydis.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <ucontext.h>

#include "probe.h"

#define HIDDEN __attribute__((visibility("hidden")))

/* Lookups are linear: fine for the handful of watched functions the shim installs.
 * Stress harnesses that probe thousands raise these at compile time. */
#ifndef RACE_PROBE_MAX
#define RACE_PROBE_MAX 256
#endif
#define PROBE_MAX RACE_PROBE_MAX
#define ARENA_MAX (PROBE_MAX / 4 + 8)
#define ARENA_SIZE (64u * 1024u)
#define REACH 0x7fff0000LL      /* a rel32's reach, less an arena of slack */
#define NEAR_JMP 5              /* jmp rel32 */
#define FAR_JMP 14              /* jmp [rip+0] and the address */
#define MAX_INSNS 16
#define STALE_WINDOW (1u << 20) /* see shadow_push */
#define THREADS_MAX 8192
#define SYNC_WAIT_NS 2000000000LL
#define GAP_FLOOR 0x100000ull
#define GAP_TOP 0x7ffffffff000ull
#define ARCH_SHSTK_STATUS 0x5005

enum { K_HOOK = 1, K_BREAK = 2 };
enum { E_NONE, E_JMP, E_JCC, E_CALL, E_RET, E_LOOP, E_LOOPE, E_LOOPNE, E_JRCXZ };

struct probe {
    uintptr_t addr;      /* the byte holding our int3, or the jump's first byte */
    uintptr_t fn;        /* hook: the function, ENTER's rip */
    uintptr_t stub;      /* hook: entry stub, where an int3 hit goes; break: the out-of-line copy */
    uintptr_t reloc;     /* the relocated instructions ... */
    uintptr_t reloc_end; /* ... and the end of the trampoline */
    race_probe_cb cb;
    void *arg;
    uint64_t target;     /* emulated branch: its target */
    uint16_t ret_pop;    /* emulated ret imm16 */
    uint8_t kind, len, emul, cc, ecx, far, n;
    uint8_t retired;     /* placing it failed: late traps still resume, callbacks stop */
    uint8_t entry_only;  /* hook: ENTER only, the return address is left alone (no EXIT) */
    uint8_t old_off[MAX_INSNS], new_off[MAX_INSNS]; /* instruction starts: original -> relocated */
    uint8_t orig[32];
};

/* install_x86.c: the table. Written under install_lock, published by the release store
 * of nprobes; the trap path reads only published records, which are never reused. */
extern struct probe probes[PROBE_MAX] HIDDEN;
extern uint32_t nprobes HIDDEN;
extern int membarrier_ok HIDDEN, force_far HIDDEN;
extern ZydisDecoder probe_dec HIDDEN;
extern struct race_probe_stats probe_st HIDDEN;
#define COUNT(f) __atomic_fetch_add(&probe_st.f, 1, __ATOMIC_RELAXED)

/* thunk_x86.c: the entry and exit thunks, the shadow stack. */
extern char race_probe_enter_thunk[] HIDDEN, race_probe_exit_thunk[] HIDDEN;
HIDDEN void xsave_init(void);

/* arena_x86.c: writing code, and room for it near its targets. */
static inline int reaches(uintptr_t from, uintptr_t to)
{
    int64_t d = (int64_t)(to - from);
    return d > -REACH && d < REACH;
}
HIDDEN int mem_open(void);
HIDDEN int code_write(int fd, uintptr_t at, const void *buf, size_t n);
HIDDEN void sync_core(void);
HIDDEN uintptr_t code_alloc(size_t n, const uintptr_t *need, int nneed);
HIDDEN void code_trim(uintptr_t at, size_t reserved, size_t used);

/* decode_x86.c: what the patched bytes hold, and whether they may be patched. */
enum { R_COPY, R_RIPREL, R_JMP, R_JCOND, R_CALL };

struct rinsn {
    uint8_t off, len, kind;
    uint8_t fix, fixsize; /* where the disp32 (R_RIPREL) or the relative field (R_JCOND) is */
    uint64_t target;
};

struct region {
    uintptr_t at;
    uint8_t len, n;
    uint8_t ends;   /* the last instruction does not fall through */
    uint8_t riprel; /* some instruction has a RIP-relative operand */
    struct rinsn in[MAX_INSNS];
};
HIDDEN void read_orig(uintptr_t at, uint8_t *buf, size_t n);
HIDDEN const char *decode_one(uintptr_t at, size_t avail, ZydisDecodedInstruction *ins, ZydisDecodedOperand *ops);
HIDDEN int rel_target(const ZydisDecodedInstruction *ins, const ZydisDecodedOperand *ops, uintptr_t at,
                      uint64_t *target, int *is_mem);
HIDDEN const char *decode_region(uintptr_t at, size_t need, size_t limit, struct region *r);
HIDDEN const char *scan_function(uintptr_t fn, size_t size, uintptr_t p, size_t len);
HIDDEN const char *check_boundary(uintptr_t fn, size_t size, uintptr_t addr);
HIDDEN const char *check_free(uintptr_t lo, uintptr_t hi);

/* reloc_x86.c: laying out relocated instructions and jumps. */
struct emit {
    uint8_t *buf;
    size_t cap, len;
    uintptr_t at; /* runtime address of buf[0] */
    const char *why;
};
HIDDEN void put(struct emit *e, const void *b, size_t n);
HIDDEN void put_enc(struct emit *e, ZydisEncoderRequest *q);
HIDDEN void req_rel32(ZydisEncoderRequest *q, ZydisMnemonic m, uint64_t target);
HIDDEN void req_riprel(ZydisEncoderRequest *q, ZydisMnemonic m, uint64_t where);
HIDDEN void put_jmp(struct emit *e, uint64_t target);
HIDDEN int emit_region(const struct region *r, struct emit *e, uint8_t *newoff);
HIDDEN size_t region_bound(const struct region *r);

/* thread_stop_x86.c: moving other threads out of bytes being patched. */
extern int sync_sig HIDDEN;
extern int sync_cookie HIDDEN;
HIDDEN const char *sync_init(void);
HIDDEN const char *sync_threads(struct probe *pr);
HIDDEN void sync_answer(greg_t *g);
HIDDEN const char *place_jump(int fd, struct probe *pr, const uint8_t *patch);

#endif
