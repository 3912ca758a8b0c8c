/* probe_x86.c - the x86-64 probe engine: entry hooks (a jump over the prologue, the
 * prologue relocated into a trampoline near the function, the return address swapped
 * for an EXIT thunk), breakpoint probes (int3, then an out-of-line copy or emulation)
 * and the trap path behind both. Owns the probe table, the trampoline arenas and the
 * per-thread shadow stack. Never makes a page writable and executable at once, never
 * calls malloc; the trap path and the thunks take no lock and stay async-signal-safe. */
#include <Zydis/Zydis.h>
#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "probe.h"

#define HIDDEN __attribute__((visibility("hidden")))

/* ---------------------------------------------------------------- Data */

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

/* Written under install_lock, published by the release store of nprobes; the trap
 * path reads only published records, which are never reused. */
static struct probe probes[PROBE_MAX];
static uint32_t nprobes;
static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;
static int inited, membarrier_ok, shstk_on, force_far;
static int sync_sig;
static ZydisDecoder dec;
static struct race_probe_stats st;
#define COUNT(f) __atomic_fetch_add(&st.f, 1, __ATOMIC_RELAXED)

/* Read by the thunks: bytes reserved for the extended state (with alignment slack) and
 * the XSAVE component mask (0: fxsave, no XSAVE). */
HIDDEN uint64_t race_probe_xsize = 512 + 64;
HIDDEN uint64_t race_probe_xmask;

/* One record per hooked call in flight on this thread. Initial-exec so the thunks'
 * C halves reach it with one %fs-relative access and no allocation. */
struct shadow_ent {
    uint64_t ret;  /* the real return address */
    uint64_t slot; /* where it was on the stack: identifies the frame */
    const struct probe *pr;
};
static __thread struct {
    uint32_t depth;
    struct shadow_ent e[RACE_PROBE_SHADOW_DEPTH];
} shadow __attribute__((tls_model("initial-exec")));

/* What the thunks build on the probed code's stack (offsets are spelled out in the
 * asm below). word: the probe on the way in; where the thunk's final ret goes on the
 * way out. */
struct thunk_frame {
    struct race_regs regs;
    uint64_t flags;
    uint64_t word;
};
_Static_assert(sizeof(struct race_regs) == 136 && offsetof(struct race_regs, rsp) == 56 &&
                   offsetof(struct race_regs, r8) == 64 && offsetof(struct race_regs, rip) == 128,
               "the thunks' layout of race_regs");
_Static_assert(offsetof(struct thunk_frame, flags) == 136 && offsetof(struct thunk_frame, word) == 144,
               "the thunks' frame layout");

extern char race_probe_enter_thunk[] HIDDEN, race_probe_exit_thunk[] HIDDEN;
HIDDEN uint64_t race_probe_on_enter(struct thunk_frame *f);
HIDDEN uint64_t race_probe_on_exit(struct thunk_frame *f);

/* ---------------------------------------------------------------- Thunks */

/* Both thunks build a race_regs on the stack of the interrupted code, save the vector
 * and x87 state (the callback is ordinary C, and at entry xmm0-7 and al are live
 * arguments; at exit xmm0/xmm1 are the return value), call their C half with the
 * stack aligned, and leave through `ret` to the address the C half put in the word
 * just above the saved flags: the relocated prologue (enter) or the real return
 * address (exit). Nothing, flags included, differs from the moment of entry.
 * Layout from %rbx: race_regs at 0..135, flags at 136, that word at 144, and the
 * stack pointer of the probed code at 152.
 * The CFI lets unwinders (libunwind, libgcc, gdb) walk from a callback into the
 * hooked function's caller: the enter thunk's frame is the call being entered (CFA
 * 160 above %rbx, return address at 152), the exit thunk's is the caller resuming
 * (CFA 152 above %rbx, return address in the word at 144, which the C half fills
 * before the callback runs; unknown until then). The byte before the exit thunk is
 * covered too: an unwinder that meets the thunk as a return address looks up
 * thunk - 1, and must find "return address undefined" (end of stack), not garbage. */
__asm__(
    ".macro RACE_PROBE_THUNK name, handler, exit, o\n"
    "  .globl \\name\n"
    "  .hidden \\name\n"
    "  .type \\name, @function\n"
    "  .p2align 4\n"
    "  .cfi_startproc\n"
    "  .if \\exit\n"
    "  .cfi_def_cfa %rsp, 0\n"
    "  .cfi_undefined %rip\n"
    "  nop\n"
    "  .else\n"
    "  .cfi_def_cfa %rsp, 16\n"
    "  .cfi_offset %rip, -8\n"
    "  .endif\n"
    "\\name:\n"
    "  endbr64\n"
    "  .if \\exit\n"
    "  leaq -8(%rsp), %rsp\n" /* the word the final ret takes; lea leaves the flags alone */
    "  .cfi_adjust_cfa_offset 8\n"
    "  .endif\n"
    "  pushfq\n"
    "  .cfi_adjust_cfa_offset 8\n"
    "  cld\n"
    "  subq $136, %rsp\n"
    "  .cfi_adjust_cfa_offset 136\n"
    "  movq %rax, 0(%rsp)\n"
    "  movq %rbx, 8(%rsp)\n"
    "  .cfi_offset %rbx, 8-\\o\n"
    "  movq %rcx, 16(%rsp)\n"
    "  movq %rdx, 24(%rsp)\n"
    "  movq %rsi, 32(%rsp)\n"
    "  movq %rdi, 40(%rsp)\n"
    "  movq %rbp, 48(%rsp)\n"
    "  .cfi_offset %rbp, 48-\\o\n"
    "  leaq 152(%rsp), %rax\n"
    "  movq %rax, 56(%rsp)\n"
    "  movq %r8, 64(%rsp)\n"
    "  movq %r9, 72(%rsp)\n"
    "  movq %r10, 80(%rsp)\n"
    "  movq %r11, 88(%rsp)\n"
    "  movq %r12, 96(%rsp)\n"
    "  .cfi_offset %r12, 96-\\o\n"
    "  movq %r13, 104(%rsp)\n"
    "  .cfi_offset %r13, 104-\\o\n"
    "  movq %r14, 112(%rsp)\n"
    "  .cfi_offset %r14, 112-\\o\n"
    "  movq %r15, 120(%rsp)\n"
    "  .cfi_offset %r15, 120-\\o\n"
    "  movq $0, 128(%rsp)\n"
    "  movq %rsp, %rbx\n"
    "  .cfi_def_cfa_register %rbx\n"
    "  subq race_probe_xsize(%rip), %rsp\n"
    "  andq $-64, %rsp\n"
    "  movq race_probe_xmask(%rip), %rax\n"
    "  testq %rax, %rax\n"
    "  jz 1f\n"
    /* XRSTOR faults on a header whose reserved bytes are not zero, and XSAVE writes
     * only XSTATE_BV of it: clear the whole 64-byte header first. */
    "  xorl %ecx, %ecx\n"
    "  movq %rcx, 512(%rsp)\n"
    "  movq %rcx, 520(%rsp)\n"
    "  movq %rcx, 528(%rsp)\n"
    "  movq %rcx, 536(%rsp)\n"
    "  movq %rcx, 544(%rsp)\n"
    "  movq %rcx, 552(%rsp)\n"
    "  movq %rcx, 560(%rsp)\n"
    "  movq %rcx, 568(%rsp)\n"
    "  movq %rax, %rdx\n"
    "  shrq $32, %rdx\n"
    "  xsave64 (%rsp)\n"
    "  jmp 2f\n"
    "1:\n"
    "  fxsave64 (%rsp)\n"
    "2:\n"
    "  movq %rbx, %rdi\n"
    "  .if \\exit\n"
    "  .cfi_offset %rip, -8\n"
    "  .endif\n"
    "  call \\handler\n"
    "  movq %rax, 144(%rbx)\n"
    "  movq race_probe_xmask(%rip), %rax\n"
    "  testq %rax, %rax\n"
    "  jz 3f\n"
    "  movq %rax, %rdx\n"
    "  shrq $32, %rdx\n"
    "  xrstor64 (%rsp)\n"
    "  jmp 4f\n"
    "3:\n"
    "  fxrstor64 (%rsp)\n"
    "4:\n"
    "  movq %rbx, %rsp\n"
    "  .cfi_def_cfa_register %rsp\n"
    "  movq 0(%rsp), %rax\n"
    "  movq 16(%rsp), %rcx\n"
    "  movq 24(%rsp), %rdx\n"
    "  movq 32(%rsp), %rsi\n"
    "  movq 40(%rsp), %rdi\n"
    "  movq 48(%rsp), %rbp\n"
    "  .cfi_restore %rbp\n"
    "  movq 64(%rsp), %r8\n"
    "  movq 72(%rsp), %r9\n"
    "  movq 80(%rsp), %r10\n"
    "  movq 88(%rsp), %r11\n"
    "  movq 96(%rsp), %r12\n"
    "  .cfi_restore %r12\n"
    "  movq 104(%rsp), %r13\n"
    "  .cfi_restore %r13\n"
    "  movq 112(%rsp), %r14\n"
    "  .cfi_restore %r14\n"
    "  movq 120(%rsp), %r15\n"
    "  .cfi_restore %r15\n"
    "  movq 8(%rsp), %rbx\n"
    "  .cfi_restore %rbx\n"
    "  addq $136, %rsp\n"
    "  .cfi_adjust_cfa_offset -136\n"
    "  popfq\n"
    "  .cfi_adjust_cfa_offset -8\n"
    "  ret\n"
    "  .cfi_endproc\n"
    "  .size \\name, . - \\name\n"
    ".endm\n"
    /* pushsection: the compiler does not know this asm changes sections */
    ".pushsection .text\n"
    "RACE_PROBE_THUNK race_probe_enter_thunk, race_probe_on_enter, 0, 160\n"
    "RACE_PROBE_THUNK race_probe_exit_thunk, race_probe_on_exit, 1, 152\n"
    ".popsection\n"
    ".purgem RACE_PROBE_THUNK\n");

/* ---------------------------------------------------------------- Shadow stack */

static void lost_return(void)
{
    static const char m[] = "race: probe: a hooked function returned through the EXIT thunk but this "
                            "thread's shadow stack has no record of its frame; cannot continue\n";
    ssize_t k = write(2, m, sizeof(m) - 1);
    (void)k;
    abort();
}

/* Records the real return address at `slot` and puts the EXIT thunk there. Entries
 * whose frames were left by longjmp are recognised here: a live frame's slot is always
 * above the slot of a call made now, so an entry at or below it is stale. The one
 * exception is a tail call from a hooked function into a hooked function: the slot is
 * the same and already holds the thunk, and that entry is live. The window keeps
 * this rule to one stack, so that a hooked call on a signal stack mapped just above
 * this thread's stack does not throw away the entries of the frames it interrupted. */
static void shadow_push(const struct probe *pr, uint64_t slot)
{
    uint64_t *sp = (uint64_t *)slot;
    uint64_t ret = *sp, thunk = (uint64_t)(uintptr_t)race_probe_exit_thunk;
    uint32_t d = shadow.depth;
    while (d > 0) {
        const struct shadow_ent *e = &shadow.e[d - 1];
        if (e->slot > slot || slot - e->slot >= STALE_WINDOW || (e->slot == slot && ret == thunk))
            break;
        d--;
        COUNT(stale_dropped);
    }
    /* A signal handler running a hooked function on this thread may interleave with any
     * of these steps: the depth never covers an entry that is being written. */
    shadow.depth = d;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    if (d == RACE_PROBE_SHADOW_DEPTH) {
        COUNT(exit_skipped);
        return;
    }
    shadow.e[d].ret = ret;
    shadow.e[d].slot = slot;
    shadow.e[d].pr = pr;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    shadow.depth = d + 1;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    *sp = thunk;
}

HIDDEN uint64_t race_probe_on_enter(struct thunk_frame *f)
{
    struct race_regs *r = &f->regs;
    const struct probe *pr = (const struct probe *)(uintptr_t)f->word;
    r->rip = pr->fn;
    if (__atomic_load_n(&pr->retired, __ATOMIC_RELAXED))
        return pr->reloc;
    COUNT(enter);
    pr->cb(r, RACE_PROBE_ENTER, pr->arg);
    if (!pr->entry_only)
        shadow_push(pr, r->rsp);
    return pr->reloc;
}

/* The frame returning now is the topmost entry with its slot; every entry above it
 * belongs to a frame that a longjmp skipped. */
HIDDEN uint64_t race_probe_on_exit(struct thunk_frame *f)
{
    struct race_regs *r = &f->regs;
    uint64_t slot = r->rsp - 8;
    uint32_t d = shadow.depth, k = d;
    while (k > 0 && shadow.e[k - 1].slot != slot)
        k--;
    if (k == 0)
        lost_return();
    struct shadow_ent e = shadow.e[k - 1];
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    shadow.depth = k - 1;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    if (d > k)
        __atomic_fetch_add(&st.stale_dropped, d - k, __ATOMIC_RELAXED);
    /* After a tail call between hooked functions the inner one returns to the thunk
     * again: the callback is shown where control finally lands. */
    r->rip = race_probe_return_addr(e.ret, slot);
    f->word = r->rip; /* what the thunk's CFI names as its return address (see Thunks) */
    if (!__atomic_load_n(&e.pr->retired, __ATOMIC_RELAXED)) {
        COUNT(exit);
        e.pr->cb(r, RACE_PROBE_EXIT, e.pr->arg);
    }
    return e.ret;
}

uintptr_t race_probe_return_addr(uintptr_t ra, uintptr_t slot)
{
    uint32_t k = shadow.depth;
    while (ra == (uintptr_t)race_probe_exit_thunk) {
        while (k > 0 && shadow.e[k - 1].slot != slot)
            k--;
        if (k == 0)
            return ra;
        ra = shadow.e[--k].ret;
    }
    return ra;
}

/* ---------------------------------------------------------------- Writing code */

/* /proc/self/mem writes through the kernel's forced access: a private read-only text
 * page gets its copy-on-write copy and the bytes without its protection ever changing,
 * so no other thread sees it non-executable and no page is ever W+X. The descriptor is
 * opened per install: one inherited across fork would write into the parent. */
static int mem_open(void)
{
    return open("/proc/self/mem", O_RDWR | O_CLOEXEC);
}

static int code_write(int fd, uintptr_t at, const void *buf, size_t n)
{
    const uint8_t *b = buf;
    while (n) {
        ssize_t k = pwrite(fd, b, n, (off_t)at);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        b += k;
        at += (size_t)k;
        n -= (size_t)k;
    }
    return 0;
}

static const char *sync_threads(struct probe *pr);

/* Cross-modifying code: every other CPU must execute a serializing instruction before
 * it runs bytes we changed (Intel SDM 8.1.3). membarrier does that on all CPUs running
 * this process; without it, the signal handshake takes every thread through the kernel. */
static void sync_core(void)
{
    if (membarrier_ok && syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE, 0, 0) == 0)
        return;
    (void)sync_threads(NULL);
}

/* ---------------------------------------------------------------- Arenas */

struct arena {
    uintptr_t base, used;
};
static struct arena arenas[ARENA_MAX];
static int narenas;

static int reaches(uintptr_t from, uintptr_t to)
{
    int64_t d = (int64_t)(to - from);
    return d > -REACH && d < REACH;
}

static int slot_reaches(uintptr_t a, size_t n, const uintptr_t *need, int nneed)
{
    for (int i = 0; i < nneed; i++)
        if (!reaches(a, need[i]) || !reaches(a + n, need[i]))
            return 0;
    return 1;
}

/* Arenas are filled with int3 while still RW, then made RX; trampolines are later
 * written into them through /proc/self/mem like any other code. */
static uintptr_t arena_map(uintptr_t at)
{
    int flags = MAP_PRIVATE | MAP_ANONYMOUS | (at ? MAP_FIXED_NOREPLACE : 0);
    void *p = mmap((void *)at, ARENA_SIZE, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (p == MAP_FAILED)
        return 0;
    if (at && (uintptr_t)p != at) { /* a kernel older than MAP_FIXED_NOREPLACE took it as a hint */
        munmap(p, ARENA_SIZE);
        return 0;
    }
    memset(p, 0xCC, ARENA_SIZE);
    if (mprotect(p, ARENA_SIZE, PROT_READ | PROT_EXEC)) {
        munmap(p, ARENA_SIZE);
        return 0;
    }
    return (uintptr_t)p;
}

struct gap_pick {
    uintptr_t t, best;
    uint64_t bestd;
    const uintptr_t *need;
    int nneed;
};

static void gap_consider(struct gap_pick *g, uint64_t lo, uint64_t hi)
{
    if (lo < GAP_FLOOR)
        lo = GAP_FLOOR;
    if (hi > GAP_TOP)
        hi = GAP_TOP;
    if (hi <= lo || hi - lo < ARENA_SIZE)
        return;
    uint64_t c = g->t < lo ? lo : g->t >= hi ? hi - ARENA_SIZE : (g->t & ~0xfffull);
    if (c + ARENA_SIZE > hi)
        c = hi - ARENA_SIZE;
    uint64_t d = c > g->t ? c + ARENA_SIZE - g->t : g->t - c;
    if (d < g->bestd && slot_reaches(c, ARENA_SIZE, g->need, g->nneed)) {
        g->best = c;
        g->bestd = d;
    }
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* The free range nearest to need[0] from which all of need[] is in rel32 reach, from
 * the gaps between /proc/self/maps lines (only each line's "lo-hi" is read, so no
 * line buffer is needed). */
static uintptr_t near_gap(const uintptr_t *need, int nneed)
{
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    struct gap_pick g = { need[0], 0, UINT64_MAX, need, nneed };
    uint64_t lo = 0, hi = 0, prev = 0;
    int state = 0; /* 0: lo, 1: hi, 2: rest of the line */
    char buf[4096];
    for (;;) {
        ssize_t k = read(fd, buf, sizeof(buf));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        for (ssize_t i = 0; i < k; i++) {
            char c = buf[i];
            if (state == 2) {
                if (c == '\n') {
                    gap_consider(&g, prev, lo);
                    if (hi > prev)
                        prev = hi;
                    lo = hi = 0;
                    state = 0;
                }
                continue;
            }
            if (c == '-' && state == 0) {
                state = 1;
                continue;
            }
            if (c == ' ' && state == 1) {
                state = 2;
                continue;
            }
            int v = hexval(c);
            if (v < 0) {
                state = 2;
                continue;
            }
            if (state == 0)
                lo = lo << 4 | (uint64_t)v;
            else
                hi = hi << 4 | (uint64_t)v;
        }
    }
    close(fd);
    gap_consider(&g, prev, GAP_TOP);
    return g.best;
}

/* Room for n bytes of code from which every address in need[] is within rel32 reach
 * (nneed 0: anywhere). Never freed: a thread may be inside any trampoline at any time. */
static uintptr_t code_alloc(size_t n, const uintptr_t *need, int nneed)
{
    n = (n + 15) & ~(size_t)15;
    if (nneed && force_far)
        return 0;
    for (int i = 0; i < narenas; i++) {
        struct arena *a = &arenas[i];
        if (a->used + n <= ARENA_SIZE && slot_reaches(a->base + a->used, n, need, nneed)) {
            uintptr_t at = a->base + a->used;
            a->used += n;
            return at;
        }
    }
    if (narenas == ARENA_MAX)
        return 0;
    uintptr_t base = 0;
    if (nneed) {
        /* MAP_FIXED_NOREPLACE fails if another thread mapped the gap since we read maps */
        for (int tries = 0; tries < 3 && !base; tries++) {
            uintptr_t c = near_gap(need, nneed);
            if (!c)
                break;
            base = arena_map(c);
        }
    } else {
        base = arena_map(0);
    }
    if (!base)
        return 0;
    arenas[narenas].base = base;
    arenas[narenas].used = n;
    narenas++;
    return base;
}

/* Gives back the unused tail of the last allocation (sizes are reserved for the worst
 * case before the code is laid out). */
static void code_trim(uintptr_t at, size_t reserved, size_t used)
{
    reserved = (reserved + 15) & ~(size_t)15;
    used = (used + 15) & ~(size_t)15;
    for (int i = 0; i < narenas; i++)
        if (arenas[i].base + arenas[i].used == at + reserved)
            arenas[i].used -= reserved - used;
}

/* ---------------------------------------------------------------- Decoding */

/* Code as it was before any of our probes changed it, so that decoding across an
 * installed probe reads the original instruction and not our int3 or jump. */
static void read_orig(uintptr_t at, uint8_t *buf, size_t n)
{
    memcpy(buf, (const void *)at, n);
    uint32_t np = __atomic_load_n(&nprobes, __ATOMIC_ACQUIRE);
    for (uint32_t i = 0; i < np; i++) {
        const struct probe *p = &probes[i];
        for (size_t k = 0; k < p->len; k++)
            if (p->addr + k >= at && p->addr + k < at + n)
                buf[p->addr + k - at] = p->orig[k];
    }
}

static const char *decode_one(uintptr_t at, size_t avail, ZydisDecodedInstruction *ins,
                              ZydisDecodedOperand *ops)
{
    uint8_t b[ZYDIS_MAX_INSTRUCTION_LENGTH];
    if (!avail || avail > sizeof(b))
        avail = sizeof(b);
    read_orig(at, b, avail);
    if (ZYAN_FAILED(ZydisDecoderDecodeFull(&dec, b, avail, ins, ops)))
        return "an instruction cannot be decoded";
    return NULL;
}

/* 1 and the absolute address if the instruction has a relative branch target (*is_mem
 * 0) or a RIP-relative memory operand (*is_mem 1); 0 if neither; -1 if unresolvable. */
static int rel_target(const ZydisDecodedInstruction *ins, const ZydisDecodedOperand *ops, uintptr_t at,
                      uint64_t *target, int *is_mem)
{
    for (unsigned i = 0; i < ins->operand_count_visible; i++) {
        const ZydisDecodedOperand *o = &ops[i];
        int imm = o->type == ZYDIS_OPERAND_TYPE_IMMEDIATE && o->imm.is_relative;
        int mem = o->type == ZYDIS_OPERAND_TYPE_MEMORY && o->mem.base == ZYDIS_REGISTER_RIP;
        if (!imm && !mem)
            continue;
        ZyanU64 t;
        if (ZYAN_FAILED(ZydisCalcAbsoluteAddress(ins, o, at, &t)))
            return -1;
        *target = t;
        *is_mem = mem;
        return 1;
    }
    return 0;
}

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

static const char *classify(const ZydisDecodedInstruction *ins, const ZydisDecodedOperand *ops, uintptr_t at,
                            struct rinsn *ri)
{
    if (ins->mnemonic == ZYDIS_MNEMONIC_INT3)
        return "an int3 is already there (a debugger's breakpoint?)";
    if (ins->mnemonic == ZYDIS_MNEMONIC_XBEGIN)
        return "xbegin cannot be moved";
    int mem = 0;
    int r = rel_target(ins, ops, at, &ri->target, &mem);
    ri->kind = R_COPY;
    if (r < 0)
        return "a relative operand cannot be resolved";
    if (r == 0)
        return NULL;
    if (mem) {
        if (ins->raw.disp.size != 32)
            return "a RIP-relative operand without a 32-bit displacement";
        ri->kind = R_RIPREL;
        ri->fix = ins->raw.disp.offset;
        return NULL;
    }
    if (ins->operand_width != 64)
        return "a branch with a 16-bit operand size cannot be moved";
    switch (ins->meta.category) {
    case ZYDIS_CATEGORY_UNCOND_BR:
        ri->kind = R_JMP;
        return NULL;
    case ZYDIS_CATEGORY_CALL:
        ri->kind = R_CALL;
        return NULL;
    case ZYDIS_CATEGORY_COND_BR:
        ri->kind = R_JCOND;
        for (int k = 0; k < 2; k++)
            if (ins->raw.imm[k].is_relative) {
                ri->fix = ins->raw.imm[k].offset;
                ri->fixsize = ins->raw.imm[k].size / 8;
            }
        return ri->fixsize ? NULL : "a conditional branch without a relative field";
    default:
        return "a relative operand on an instruction that is not a branch";
    }
}

static int ends_flow(const ZydisDecodedInstruction *ins)
{
    return ins->meta.category == ZYDIS_CATEGORY_UNCOND_BR || ins->meta.category == ZYDIS_CATEGORY_RET ||
           ins->mnemonic == ZYDIS_MNEMONIC_UD2;
}

/* The instructions that overlap [at, at + need). limit: bytes of the function from at
 * (0: unknown). */
static const char *decode_region(uintptr_t at, size_t need, size_t limit, struct region *r)
{
    memset(r, 0, sizeof(*r));
    r->at = at;
    size_t off = 0;
    while (off < need) {
        if (r->n == MAX_INSNS)
            return "the patched bytes hold too many instructions";
        /* Bytes after a jmp or ret may be another function's: only the symbol's size
         * says they are still this one's. */
        if (r->ends && !limit)
            return "control leaves the prologue before the jump's end and the function's size is unknown";
        if (limit && off >= limit)
            return "the function is shorter than the jump";
        ZydisDecodedInstruction ins;
        ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
        const char *why = decode_one(at + off, limit ? limit - off : 0, &ins, ops);
        if (why)
            return why;
        if (limit && off + ins.length > limit)
            return "the function is shorter than the jump";
        struct rinsn *ri = &r->in[r->n++];
        ri->off = (uint8_t)off;
        ri->len = ins.length;
        if ((why = classify(&ins, ops, at + off, ri)))
            return why;
        if (ri->kind == R_RIPREL)
            r->riprel = 1;
        r->ends = (uint8_t)ends_flow(&ins);
        off += ins.length;
    }
    r->len = (uint8_t)off;
    return NULL;
}

/* No branch in the function may land in [fn, p + len): inside the patched bytes it
 * would hit the middle of our jump; at the entry (or its endbr64) it is a loop whose
 * every pass would look like a call, and a thread looping there while the jump is
 * placed would come back through the int3. Branches among the patched bytes are
 * relocated with them and may land anywhere but the entry. Calls to the entry are
 * recursion, and taking its address is a function pointer: both are fine. */
static const char *scan_function(uintptr_t fn, size_t size, uintptr_t p, size_t len)
{
    uintptr_t a = fn, end = fn + size;
    while (a < end) {
        ZydisDecodedInstruction ins;
        ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
        if (decode_one(a, end - a, &ins, ops))
            return "the function cannot be decoded to check its branches";
        uint64_t t;
        int mem;
        if (rel_target(&ins, ops, a, &t, &mem) > 0) {
            int inside = a >= p && a < p + len, call = ins.meta.category == ZYDIS_CATEGORY_CALL;
            if (mem) {
                if (t > p && t < p + len)
                    return "an instruction takes an address inside the patched bytes";
            } else if (t >= fn && t < p + len && !(call && (t == fn || t == p)) && !(inside && t > p)) {
                return "a branch inside the function jumps into the patched bytes";
            }
        }
        a += ins.length;
    }
    return NULL;
}

static const char *check_boundary(uintptr_t fn, size_t size, uintptr_t addr)
{
    uintptr_t a = fn;
    while (a < addr) {
        ZydisDecodedInstruction ins;
        ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
        if (decode_one(a, size ? fn + size - a : 0, &ins, ops))
            return "the function cannot be decoded up to the address";
        a += ins.length;
    }
    return a == addr ? NULL : "the address is not an instruction boundary";
}

/* Live probes whose bytes overlap [lo, hi). */
static const char *check_free(uintptr_t lo, uintptr_t hi)
{
    for (uint32_t i = 0; i < nprobes; i++) {
        const struct probe *p = &probes[i];
        if (!p->retired && p->addr < hi && p->addr + p->len > lo)
            return p->kind == K_HOOK ? "an entry hook's jump already covers these bytes"
                                     : "a breakpoint probe is already there";
    }
    return NULL;
}

/* ---------------------------------------------------------------- Relocation */

struct emit {
    uint8_t *buf;
    size_t cap, len;
    uintptr_t at; /* runtime address of buf[0] */
    const char *why;
};

static void put(struct emit *e, const void *b, size_t n)
{
    if (e->why)
        return;
    if (e->len + n > e->cap) {
        e->why = "a trampoline would be too long";
        return;
    }
    memcpy(e->buf + e->len, b, n);
    e->len += n;
}

static void req_init(ZydisEncoderRequest *q, ZydisMnemonic m)
{
    memset(q, 0, sizeof(*q));
    q->machine_mode = ZYDIS_MACHINE_MODE_LONG_64;
    q->mnemonic = m;
}

static void put_enc(struct emit *e, ZydisEncoderRequest *q)
{
    uint8_t b[ZYDIS_MAX_INSTRUCTION_LENGTH];
    ZyanUSize n = sizeof(b);
    if (e->why)
        return;
    if (ZYAN_FAILED(ZydisEncoderEncodeInstructionAbsolute(q, b, &n, e->at + e->len))) {
        e->why = "the encoder refused a rewritten branch";
        return;
    }
    put(e, b, n);
}

static void req_rel32(ZydisEncoderRequest *q, ZydisMnemonic m, uint64_t target)
{
    req_init(q, m);
    q->branch_type = ZYDIS_BRANCH_TYPE_NEAR;
    q->branch_width = ZYDIS_BRANCH_WIDTH_32;
    q->operand_count = 1;
    q->operands[0].type = ZYDIS_OPERAND_TYPE_IMMEDIATE;
    q->operands[0].imm.u = target;
}

static void req_riprel(ZydisEncoderRequest *q, ZydisMnemonic m, uint64_t where)
{
    req_init(q, m);
    q->operand_count = 1;
    q->operands[0].type = ZYDIS_OPERAND_TYPE_MEMORY;
    q->operands[0].mem.base = ZYDIS_REGISTER_RIP;
    q->operands[0].mem.displacement = (ZyanI64)where;
    q->operands[0].mem.size = 8;
}

static size_t jmp_len(uintptr_t at, uint64_t target)
{
    return reaches(at + NEAR_JMP, target) ? NEAR_JMP : FAR_JMP;
}

/* jmp rel32 where it reaches, else jmp [rip+0] followed by the address. */
static void put_jmp(struct emit *e, uint64_t target)
{
    ZydisEncoderRequest q;
    uintptr_t here = e->at + e->len;
    if (jmp_len(here, target) == NEAR_JMP) {
        req_rel32(&q, ZYDIS_MNEMONIC_JMP, target);
        put_enc(e, &q);
    } else {
        req_riprel(&q, ZYDIS_MNEMONIC_JMP, here + 6);
        put_enc(e, &q);
        put(e, &target, 8);
    }
}

static void put_jmp_short(struct emit *e, uint64_t target)
{
    ZydisEncoderRequest q;
    req_init(&q, ZYDIS_MNEMONIC_JMP);
    q.branch_type = ZYDIS_BRANCH_TYPE_SHORT;
    q.branch_width = ZYDIS_BRANCH_WIDTH_8;
    q.operand_count = 1;
    q.operands[0].type = ZYDIS_OPERAND_TYPE_IMMEDIATE;
    q.operands[0].imm.u = target;
    put_enc(e, &q);
}

/* call from the trampoline: the callee returns into it. call rel32 where it reaches,
 * else call [rip+2]; jmp over the address; the address. */
static void put_call(struct emit *e, uint64_t target)
{
    ZydisEncoderRequest q;
    uintptr_t here = e->at + e->len;
    if (reaches(here + 5, target)) {
        req_rel32(&q, ZYDIS_MNEMONIC_CALL, target);
        put_enc(e, &q);
        return;
    }
    req_riprel(&q, ZYDIS_MNEMONIC_CALL, here + 8);
    put_enc(e, &q);
    put_jmp_short(e, here + 16);
    put(e, &target, 8);
}

/* A call that ends the patched bytes pushes the original return address and jumps, so
 * the callee returns straight into the original code: the stack holds what it would
 * have held (unwinders, and code that reads its return address, see no trampoline).
 * lea and mov leave the flags alone, as call does. */
static void put_call_home(struct emit *e, uint64_t target, uint64_t ret)
{
    ZydisEncoderRequest q;
    req_init(&q, ZYDIS_MNEMONIC_LEA);
    q.operand_count = 2;
    q.operands[0].type = ZYDIS_OPERAND_TYPE_REGISTER;
    q.operands[0].reg.value = ZYDIS_REGISTER_RSP;
    q.operands[1].type = ZYDIS_OPERAND_TYPE_MEMORY;
    q.operands[1].mem.base = ZYDIS_REGISTER_RSP;
    q.operands[1].mem.displacement = -8;
    q.operands[1].mem.size = 8;
    put_enc(e, &q);
    for (int half = 0; half < 2; half++) {
        req_init(&q, ZYDIS_MNEMONIC_MOV);
        q.operand_count = 2;
        q.operands[0].type = ZYDIS_OPERAND_TYPE_MEMORY;
        q.operands[0].mem.base = ZYDIS_REGISTER_RSP;
        q.operands[0].mem.displacement = half * 4;
        q.operands[0].mem.size = 4;
        q.operands[1].type = ZYDIS_OPERAND_TYPE_IMMEDIATE;
        q.operands[1].imm.s = (int32_t)(uint32_t)(ret >> (32 * half));
        put_enc(e, &q);
    }
    put_jmp(e, target);
}

/* Lays out r at e's current position. newoff[] holds each instruction's offset from
 * the region's start: run it twice, the second time with the offsets the first found,
 * so that branches to later instructions of the region get their targets (the forms
 * chosen depend only on positions, so both runs lay out the same bytes). Returns 1 if
 * control falls off the end (the caller adds the jump back). */
static int emit_region(const struct region *r, struct emit *e, uint8_t *newoff)
{
    size_t base = e->len;
    int falls = !r->ends;
    for (int i = 0; i < r->n && !e->why; i++) {
        const struct rinsn *ri = &r->in[i];
        uint8_t b[ZYDIS_MAX_INSTRUCTION_LENGTH];
        read_orig(r->at + ri->off, b, ri->len);
        newoff[i] = (uint8_t)(e->len - base);
        uint64_t t = ri->target;
        if (ri->kind >= R_JMP && t >= r->at && t < r->at + r->len) {
            int j = 0;
            while (j < r->n && r->at + r->in[j].off != t)
                j++;
            if (j == r->n) {
                e->why = "a branch in the patched bytes lands inside an instruction";
                return 0;
            }
            if (ri->kind == R_CALL) {
                e->why = "a call in the patched bytes targets the patched bytes";
                return 0;
            }
            t = e->at + base + newoff[j];
        }
        switch (ri->kind) {
        case R_COPY:
            put(e, b, ri->len);
            break;
        case R_RIPREL: {
            int64_t d = (int64_t)(ri->target - (e->at + e->len + ri->len));
            if (d != (int32_t)d) {
                e->why = "a RIP-relative operand is out of reach of the trampoline";
                return 0;
            }
            int32_t d32 = (int32_t)d;
            memcpy(b + ri->fix, &d32, 4);
            put(e, b, ri->len);
            break;
        }
        case R_JMP:
            put_jmp(e, t);
            break;
        case R_JCOND: {
            /* The branch as it was (jcc, loop, jrcxz: some have only a rel8 form), aimed
             * two bytes on at a jump to the target; a short jmp over that jump is the
             * fall-through. */
            memset(b + ri->fix, 0, ri->fixsize);
            b[ri->fix] = 2;
            put(e, b, ri->len);
            uintptr_t after = e->at + e->len + 2;
            put_jmp_short(e, after + jmp_len(after, t));
            put_jmp(e, t);
            break;
        }
        case R_CALL:
            if (i == r->n - 1) {
                put_call_home(e, t, r->at + r->len);
                falls = 0;
            } else {
                put_call(e, t);
            }
            break;
        }
    }
    return falls;
}

/* Worst case per instruction: a transparent call with an absolute jump (5+7+8+14). */
static size_t region_bound(const struct region *r)
{
    return (size_t)r->n * 34 + FAR_JMP;
}

/* ---------------------------------------------------------------- Other threads */

/* A thread may have executed the first instructions of a prologue and be stopped just
 * before one of the later ones when we overwrite them: the handshake signal runs on
 * every other thread, and one found at an instruction start inside the patched bytes
 * is moved to the same instruction in the relocated copy. New callers cannot come in
 * meanwhile: they hit the int3 at the first byte, and branches into the middle were
 * refused. The handshake is a real-time signal, not SIGTRAP: a second SIGTRAP pending
 * while an int3 trap is raised would be merged with it, and the trap lost. */
struct sync_thread {
    int32_t tid;
    uint32_t ack;
};
static struct sync_thread *sync_tab; /* THREADS_MAX, mapped at init */
static uint32_t sync_n, sync_gen;
static struct probe *sync_probe;
static int sync_bad;
static int sync_cookie; /* its address tells our handshake from a sigqueue of the program's */

struct dirent64_k {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

/* The other threads of the process, into sync_tab. -1 if they cannot be listed. */
static int list_threads(void)
{
    int fd = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    pid_t self = gettid();
    uint32_t n = 0;
    char buf[4096] __attribute__((aligned(8)));
    for (;;) {
        long k = syscall(SYS_getdents64, fd, buf, sizeof(buf));
        if (k <= 0)
            break;
        for (long off = 0; off < k;) {
            const struct dirent64_k *d = (const struct dirent64_k *)(buf + off);
            off += d->d_reclen;
            int32_t tid = 0;
            const char *s = d->d_name;
            if (*s < '0' || *s > '9')
                continue;
            while (*s >= '0' && *s <= '9')
                tid = tid * 10 + (*s++ - '0');
            if (tid == self)
                continue;
            if (n == THREADS_MAX) {
                close(fd);
                return -1;
            }
            sync_tab[n].tid = tid;
            sync_tab[n].ack = 0;
            n++;
        }
    }
    close(fd);
    __atomic_store_n(&sync_n, n, __ATOMIC_RELEASE);
    return (int)n;
}

/* A thread that did not answer (the signal blocked) is harmless if the kernel shows it
 * blocked in a system call outside the patched bytes: it can come back into them only
 * through their first byte. */
static int blocked_outside(int32_t tid, const struct probe *pr)
{
    char path[64], buf[256];
    snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT; /* gone */
    ssize_t k = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (k <= 0)
        return 0;
    buf[k] = 0;
    if (!strncmp(buf, "running", 7))
        return 0;
    char *last = strrchr(buf, ' ');
    if (!last)
        return 0;
    uintptr_t pc = (uintptr_t)strtoull(last + 1, NULL, 16);
    return !pr || pc <= pr->addr || pc >= pr->addr + pr->len;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static const char *sync_threads(struct probe *pr)
{
    int n = list_threads();
    if (n < 0)
        return "cannot list this process's threads";
    if (n == 0)
        return NULL;
    const char *why = NULL;
    __atomic_store_n(&sync_bad, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&sync_probe, pr, __ATOMIC_RELEASE);
    uint32_t gen = sync_gen + 1;
    __atomic_store_n(&sync_gen, gen, __ATOMIC_RELEASE);
    pid_t pid = getpid();
    for (int i = 0; i < n; i++) {
        siginfo_t si;
        memset(&si, 0, sizeof(si));
        si.si_signo = sync_sig;
        si.si_code = SI_QUEUE;
        si.si_pid = pid;
        si.si_uid = getuid();
        si.si_value.sival_ptr = &sync_cookie;
        for (int tries = 0;; tries++) {
            if (syscall(SYS_rt_tgsigqueueinfo, pid, sync_tab[i].tid, sync_sig, &si) == 0)
                break;
            if (errno == ESRCH) { /* exited since we listed it */
                __atomic_store_n(&sync_tab[i].ack, gen, __ATOMIC_RELAXED);
                break;
            }
            if (errno != EAGAIN || tries == 1000) {
                why = "the sync signal cannot be sent";
                goto out;
            }
            struct timespec ts = { 0, 100000 };
            nanosleep(&ts, NULL);
        }
    }
    int64_t deadline = now_ns() + SYNC_WAIT_NS;
    for (;;) {
        int all = 1;
        for (int i = 0; i < n && all; i++)
            all = __atomic_load_n(&sync_tab[i].ack, __ATOMIC_ACQUIRE) == gen;
        if (all || now_ns() > deadline)
            break;
        struct timespec ts = { 0, 50000 };
        nanosleep(&ts, NULL);
    }
    for (int i = 0; i < n && !why; i++)
        if (__atomic_load_n(&sync_tab[i].ack, __ATOMIC_ACQUIRE) != gen && !blocked_outside(sync_tab[i].tid, pr))
            why = "a thread neither answered the sync signal nor is blocked in a system call";
out:
    __atomic_store_n(&sync_probe, NULL, __ATOMIC_RELEASE);
    if (!why && __atomic_load_n(&sync_bad, __ATOMIC_RELAXED))
        why = "a thread stopped inside the patched bytes between instruction starts";
    return why;
}

static void sync_answer(greg_t *g)
{
    uint32_t gen = __atomic_load_n(&sync_gen, __ATOMIC_ACQUIRE);
    const struct probe *pr = __atomic_load_n(&sync_probe, __ATOMIC_ACQUIRE);
    uintptr_t rip = (uintptr_t)g[REG_RIP];
    if (pr && rip > pr->addr && rip < pr->addr + pr->len) {
        int moved = 0;
        for (int i = 0; i < pr->n && !moved; i++)
            if (pr->addr + pr->old_off[i] == rip) {
                g[REG_RIP] = (greg_t)(pr->reloc + pr->new_off[i]);
                moved = 1;
                COUNT(threads_moved);
            }
        if (!moved)
            __atomic_store_n(&sync_bad, 1, __ATOMIC_RELAXED);
    }
    int32_t tid = gettid();
    uint32_t n = __atomic_load_n(&sync_n, __ATOMIC_ACQUIRE);
    for (uint32_t i = 0; i < n; i++)
        if (sync_tab[i].tid == tid) {
            __atomic_store_n(&sync_tab[i].ack, gen, __ATOMIC_RELEASE);
            break;
        }
}

/* The int3-first protocol: while the first byte is an int3, no thread starts the
 * patched bytes (each trap is sent to the entry stub); the others are moved out, the
 * tail is written, every CPU resynchronised, and the first byte completes the jump. */
static const char *place_jump(int fd, struct probe *pr, const uint8_t *patch)
{
    static const uint8_t int3 = 0xCC;
    const char *why = "writing code through /proc/self/mem failed", *s;
    if (code_write(fd, pr->addr, &int3, 1))
        goto retire;
    sync_core();
    if ((s = sync_threads(pr))) {
        why = s;
        goto undo;
    }
    if (code_write(fd, pr->addr + 1, patch + 1, pr->len - 1u))
        goto undo;
    sync_core();
    if (code_write(fd, pr->addr, patch, 1))
        goto undo;
    sync_core();
    return NULL;
undo:
    /* Writing back the original tail is harmless even if a thread is still inside: it
     * is either unchanged or no thread is there (the handshake succeeded). */
    (void)code_write(fd, pr->addr + 1, pr->orig + 1, pr->len - 1u);
    sync_core();
    (void)code_write(fd, pr->addr, pr->orig, 1);
    sync_core();
retire:
    __atomic_store_n(&pr->retired, 1, __ATOMIC_RELEASE);
    return why;
}

/* ---------------------------------------------------------------- Trap path */

static void regs_from(struct race_regs *r, const greg_t *g)
{
    r->rax = (uint64_t)g[REG_RAX];
    r->rbx = (uint64_t)g[REG_RBX];
    r->rcx = (uint64_t)g[REG_RCX];
    r->rdx = (uint64_t)g[REG_RDX];
    r->rsi = (uint64_t)g[REG_RSI];
    r->rdi = (uint64_t)g[REG_RDI];
    r->rbp = (uint64_t)g[REG_RBP];
    r->rsp = (uint64_t)g[REG_RSP];
    r->r8 = (uint64_t)g[REG_R8];
    r->r9 = (uint64_t)g[REG_R9];
    r->r10 = (uint64_t)g[REG_R10];
    r->r11 = (uint64_t)g[REG_R11];
    r->r12 = (uint64_t)g[REG_R12];
    r->r13 = (uint64_t)g[REG_R13];
    r->r14 = (uint64_t)g[REG_R14];
    r->r15 = (uint64_t)g[REG_R15];
    r->rip = (uint64_t)g[REG_RIP];
}

/* Intel's condition codes (the low nibble of jcc's opcode): pairs of a test and its
 * negation. */
static int cond_holds(unsigned cc, uint64_t fl)
{
    int cf = fl & 1, pf = (fl >> 2) & 1, zf = (fl >> 6) & 1, sf = (fl >> 7) & 1, of = (fl >> 11) & 1;
    int v = 0;
    switch (cc >> 1) {
    case 0: v = of; break;
    case 1: v = cf; break;
    case 2: v = zf; break;
    case 3: v = cf | zf; break;
    case 4: v = sf; break;
    case 5: v = pf; break;
    case 6: v = sf != of; break;
    case 7: v = zf | (sf != of); break;
    }
    return (cc & 1) ? !v : v;
}

/* Newest first: a probe placed again over a retired one takes its late traps. */
static const struct probe *lookup(uintptr_t addr)
{
    uint32_t n = __atomic_load_n(&nprobes, __ATOMIC_ACQUIRE);
    while (n-- > 0)
        if (probes[n].addr == addr)
            return &probes[n];
    return NULL;
}

/* Branches run in the handler: their only effect is on rip (and rsp, rcx), which the
 * ucontext holds, and no trampoline is needed. */
static void resume(const struct probe *pr, greg_t *g)
{
    uint64_t next = pr->addr + pr->len, rcx = (uint64_t)g[REG_RCX], fl = (uint64_t)g[REG_EFL];
    uint64_t *sp = (uint64_t *)(uintptr_t)g[REG_RSP];
    int taken = 0;
    switch (pr->emul) {
    case E_NONE:
        g[REG_RIP] = (greg_t)pr->stub;
        return;
    case E_JMP:
        taken = 1;
        break;
    case E_JCC:
        taken = cond_holds(pr->cc, fl);
        break;
    case E_CALL:
        sp[-1] = next;
        g[REG_RSP] -= 8;
        taken = 1;
        break;
    case E_RET:
        g[REG_RIP] = (greg_t)sp[0];
        g[REG_RSP] += 8 + pr->ret_pop;
        return;
    case E_LOOP:
    case E_LOOPE:
    case E_LOOPNE:
        g[REG_RCX] = (greg_t)--rcx;
        taken = rcx != 0 && (pr->emul == E_LOOP || ((fl >> 6) & 1) == (pr->emul == E_LOOPE));
        break;
    case E_JRCXZ:
        taken = (pr->ecx ? (uint32_t)rcx : rcx) == 0;
        break;
    }
    g[REG_RIP] = (greg_t)(taken ? pr->target : next);
}

int race_probe_trap(siginfo_t *si, void *ucontext)
{
    greg_t *g = ((ucontext_t *)ucontext)->uc_mcontext.gregs;
    int sig = __atomic_load_n(&sync_sig, __ATOMIC_RELAXED);
    if (sig && si->si_signo == sig) {
        if (si->si_code != SI_QUEUE || si->si_value.sival_ptr != &sync_cookie || si->si_pid != getpid())
            return 0;
        sync_answer(g);
        return 1;
    }
    /* int3 raises SIGTRAP with SI_KERNEL and rip just past it; raise(), single-steps
     * and hardware breakpoints carry other codes. */
    if (si->si_signo != SIGTRAP || si->si_code != SI_KERNEL)
        return 0;
    uintptr_t pc = (uintptr_t)g[REG_RIP] - 1;
    const struct probe *pr = lookup(pc);
    if (!pr)
        return 0;
    if (pr->kind == K_HOOK) {
        g[REG_RIP] = (greg_t)pr->stub;
        COUNT(trap_enters);
        return 1;
    }
    /* An unwinder started inside the callback reads rip from this ucontext: it must
     * see the probed instruction, not the byte after our int3. */
    g[REG_RIP] = (greg_t)pc;
    if (!__atomic_load_n(&pr->retired, __ATOMIC_RELAXED)) {
        struct race_regs r;
        regs_from(&r, g);
        COUNT(hit);
        pr->cb(&r, RACE_PROBE_HIT, pr->arg);
    }
    resume(pr, g);
    return 1;
}

/* ---------------------------------------------------------------- Installing */

static void xsave_init(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE))
        return; /* fxsave: x87 and xmm0-15, all x86-64 has */
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    /* AMX tile state may be armed for first-use faults (XFD) and is never an argument
     * or a return value: leave it out. */
    uint64_t mask = ((uint64_t)hi << 32 | lo) & ~(3ull << 17);
    uint64_t size = 576;
    for (unsigned i = 2; i < 63; i++)
        if (mask & (1ull << i)) {
            __cpuid_count(0xd, i, a, b, c, d);
            if ((uint64_t)a + b > size)
                size = (uint64_t)a + b;
        }
    race_probe_xsize = (size + 64 + 63) & ~63ull;
    race_probe_xmask = mask;
}

static const char *init_locked(void)
{
    if (inited)
        return NULL;
    if (ZYAN_FAILED(ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64)))
        return "the decoder cannot be initialised";
    void *t = mmap(NULL, THREADS_MAX * sizeof(*sync_tab), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (t == MAP_FAILED)
        return "cannot map the thread table";
    sync_tab = t;
    xsave_init();
    membarrier_ok = syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE, 0, 0) == 0;
    /* With a CET shadow stack a replaced return address, an emulated call or ret and the
     * thunks' final ret all fault (#CP). */
    unsigned long feat = 0;
    shstk_on = syscall(SYS_arch_prctl, ARCH_SHSTK_STATUS, &feat) == 0 && (feat & 1);
    race_probe_sync_signal();
    inited = 1;
    return NULL;
}

/* The kernel's view, not sigaction()'s, which the shim interposes: an int3 or a sync
 * signal with no handler behind it would kill the process. */
static int handler_ok(int sig, unsigned long need)
{
    struct {
        void *handler;
        unsigned long flags;
        void *restorer;
        uint64_t mask;
    } k;
    if (syscall(SYS_rt_sigaction, sig, NULL, &k, sizeof(k.mask)))
        return 0;
    return k.handler != (void *)SIG_DFL && k.handler != (void *)SIG_IGN && (k.flags & need) == need;
}

static const char *check_handlers(int hook)
{
    if (!handler_ok(SIGTRAP, SA_SIGINFO))
        return "no SA_SIGINFO handler for SIGTRAP (it must call race_probe_trap)";
    /* SA_RESTART: the handshake interrupts threads blocked in system calls. */
    if (hook && !handler_ok(sync_sig, SA_SIGINFO | SA_RESTART))
        return "no SA_SIGINFO|SA_RESTART handler for race_probe_sync_signal() (it must call race_probe_trap)";
    return NULL;
}

static struct probe *probe_new(void)
{
    struct probe *pr = &probes[nprobes];
    memset(pr, 0, sizeof(*pr));
    return pr;
}

static void probe_publish(void)
{
    __atomic_store_n(&nprobes, nprobes + 1, __ATOMIC_RELEASE);
}

static const char *hook_locked(uintptr_t fn, size_t fn_size, race_probe_cb cb, void *arg, int *far_out,
                               int entry_only)
{
    static const uint8_t endbr64[4] = { 0xf3, 0x0f, 0x1e, 0xfa };
    const char *why;
    if (!fn || !cb)
        return "no function or no callback";
    if ((why = init_locked()))
        return why;
    if (shstk_on)
        return "CET shadow stacks are enabled: return addresses cannot be replaced";
    if ((why = check_handlers(1)))
        return why;
    if (nprobes == PROBE_MAX)
        return "the probe table is full";
    /* endbr64 stays where it is, first: indirect calls must still land on it under
     * IBT. The jump goes right after it. */
    uintptr_t p = fn;
    uint8_t head[4];
    if (!fn_size || fn_size >= 4) {
        read_orig(fn, head, 4);
        if (!memcmp(head, endbr64, 4))
            p += 4;
    }
    size_t limit = 0;
    if (fn_size) {
        if (fn_size <= p - fn)
            return "the function is shorter than the jump";
        limit = fn_size - (p - fn);
    }
    struct region r;
    uintptr_t slot = 0;
    size_t bound = 0;
    int far;
    for (far = 0; far < 2 && !slot; far++) {
        if ((why = decode_region(p, far ? FAR_JMP : NEAR_JMP, limit, &r)))
            return why;
        if ((why = check_free(fn, p + r.len)))
            return why;
        if (fn_size && (why = scan_function(fn, fn_size, p, r.len)))
            return why;
        uintptr_t need[MAX_INSNS + 1];
        int nneed = 0;
        if (!far)
            need[nneed++] = p + NEAR_JMP;
        for (int i = 0; i < r.n; i++)
            if (r.in[i].kind == R_RIPREL)
                need[nneed++] = r.in[i].target;
        if (far && r.riprel)
            return "no memory within +-2 GiB of the function, and its prologue has a RIP-relative operand";
        bound = 28 + region_bound(&r);
        slot = code_alloc(bound, need, nneed);
        if (!slot && far)
            return "cannot map memory for a trampoline";
    }
    far--;

    /* The slot: two literals (the probe, the enter thunk), the entry stub that pushes
     * the first and jumps through the second, then the relocated prologue. */
    struct probe *pr = probe_new();
    uint8_t code[1024];
    struct emit e = { code, sizeof(code), 0, slot, NULL };
    uint64_t lit[2] = { (uint64_t)(uintptr_t)pr, (uint64_t)(uintptr_t)race_probe_enter_thunk };
    put(&e, lit, sizeof(lit));
    ZydisEncoderRequest q;
    req_riprel(&q, ZYDIS_MNEMONIC_PUSH, slot);
    put_enc(&e, &q);
    req_riprel(&q, ZYDIS_MNEMONIC_JMP, slot + 8);
    put_enc(&e, &q);
    size_t reloc = e.len;
    uint8_t newoff[MAX_INSNS] = { 0 };
    for (int pass = 0; pass < 2; pass++) {
        e.len = reloc;
        if (emit_region(&r, &e, newoff))
            put_jmp(&e, p + r.len);
    }
    if (e.why)
        return e.why;
    if (reloc != 28)
        return "the entry stub has an unexpected length";

    uint8_t patch[sizeof(pr->orig)];
    memset(patch, 0xCC, sizeof(patch)); /* bytes past the jump: never run, trap if they are */
    struct emit pe = { patch, sizeof(patch), 0, p, NULL };
    if (far) {
        req_riprel(&q, ZYDIS_MNEMONIC_JMP, p + 6);
        put_enc(&pe, &q);
        uint64_t s = slot + 16;
        put(&pe, &s, 8);
    } else {
        req_rel32(&q, ZYDIS_MNEMONIC_JMP, slot + 16);
        put_enc(&pe, &q);
    }
    if (pe.why || pe.len != (far ? FAR_JMP : NEAR_JMP))
        return "the jump cannot be encoded";

    int fd = mem_open();
    if (fd < 0)
        return "cannot open /proc/self/mem for writing";
    if (code_write(fd, slot, code, e.len)) {
        close(fd);
        return "writing code through /proc/self/mem failed";
    }
    code_trim(slot, bound, e.len);
    pr->kind = K_HOOK;
    pr->entry_only = (uint8_t)entry_only;
    pr->addr = p;
    pr->fn = fn;
    pr->stub = slot + 16;
    pr->reloc = slot + reloc;
    pr->reloc_end = slot + e.len;
    pr->cb = cb;
    pr->arg = arg;
    pr->len = r.len;
    pr->n = r.n;
    pr->far = (uint8_t)far;
    for (int i = 0; i < r.n; i++) {
        pr->old_off[i] = r.in[i].off;
        pr->new_off[i] = newoff[i];
    }
    read_orig(p, pr->orig, r.len);
    probe_publish();
    why = place_jump(fd, pr, patch);
    close(fd);
    *far_out = far;
    return why;
}

static const char *break_locked(uintptr_t addr, uintptr_t fn, size_t fn_size, race_probe_cb cb, void *arg,
                                int *emulated)
{
    const char *why;
    if (!addr || !cb)
        return "no address or no callback";
    if ((why = init_locked()))
        return why;
    if ((why = check_handlers(0)))
        return why;
    if (nprobes == PROBE_MAX)
        return "the probe table is full";
    size_t limit = 0;
    if (fn) {
        if (addr < fn || (fn_size && addr >= fn + fn_size))
            return "the address is outside the function";
        if ((why = check_boundary(fn, fn_size, addr)))
            return why;
        if (fn_size)
            limit = fn + fn_size - addr;
    }
    if ((why = check_free(addr, addr + 1)))
        return why;
    ZydisDecodedInstruction ins;
    ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
    if ((why = decode_one(addr, limit, &ins, ops)))
        return why;
    if (limit && ins.length > limit)
        return "the instruction runs past the function's end";
    if (ins.mnemonic == ZYDIS_MNEMONIC_INT3)
        return "an int3 is already there (a debugger's breakpoint?)";
    if (ins.mnemonic == ZYDIS_MNEMONIC_XBEGIN)
        return "xbegin cannot be moved";

    struct probe *pr = probe_new();
    uint64_t t = 0;
    int mem = 0;
    int rel = rel_target(&ins, ops, addr, &t, &mem);
    if (rel < 0)
        return "a relative operand cannot be resolved";
    int is_ret = ins.opcode_map == ZYDIS_OPCODE_MAP_DEFAULT && (ins.opcode == 0xC3 || ins.opcode == 0xC2);
    if ((rel && !mem) || is_ret) {
        if (shstk_on && (is_ret || ins.meta.category == ZYDIS_CATEGORY_CALL))
            return "CET shadow stacks are enabled: a call or ret cannot be emulated";
        if (!is_ret && ins.operand_width != 64)
            return "a branch with a 16-bit operand size cannot be emulated";
        pr->target = t;
        if (is_ret) {
            pr->emul = E_RET;
            pr->ret_pop = ins.opcode == 0xC2 ? (uint16_t)ins.raw.imm[0].value.u : 0;
        } else if (ins.meta.category == ZYDIS_CATEGORY_UNCOND_BR) {
            pr->emul = E_JMP;
        } else if (ins.meta.category == ZYDIS_CATEGORY_CALL) {
            pr->emul = E_CALL;
        } else if (ins.meta.category == ZYDIS_CATEGORY_COND_BR) {
            switch (ins.mnemonic) {
            case ZYDIS_MNEMONIC_LOOP: pr->emul = E_LOOP; break;
            case ZYDIS_MNEMONIC_LOOPE: pr->emul = E_LOOPE; break;
            case ZYDIS_MNEMONIC_LOOPNE: pr->emul = E_LOOPNE; break;
            case ZYDIS_MNEMONIC_JRCXZ: pr->emul = E_JRCXZ; break;
            case ZYDIS_MNEMONIC_JECXZ: pr->emul = E_JRCXZ; pr->ecx = 1; break;
            default: pr->emul = E_JCC; pr->cc = ins.opcode & 0x0f; break;
            }
            /* With 0x67 loop counts in ecx, and what that does to rcx's upper half is
             * not worth emulating. */
            if (pr->emul >= E_LOOP && pr->emul <= E_LOOPNE && ins.address_width != 64)
                return "a loop with a 32-bit counter cannot be emulated";
            if (pr->emul == E_JCC && !(ins.opcode_map == ZYDIS_OPCODE_MAP_DEFAULT && (ins.opcode & 0xf0) == 0x70) &&
                !(ins.opcode_map == ZYDIS_OPCODE_MAP_0F && (ins.opcode & 0xf0) == 0x80))
                return "a conditional branch of an unknown form";
        } else {
            return "a relative operand on an instruction that is not a branch";
        }
        *emulated = 1;
    } else {
        /* Out of line: the instruction in a trampoline, then a jump back. */
        struct region r;
        if ((why = decode_region(addr, 1, limit, &r)))
            return why;
        uintptr_t need[2];
        int nneed = 0;
        if (r.riprel)
            need[nneed++] = r.in[0].target;
        need[nneed++] = addr + r.len;
        size_t bound = region_bound(&r);
        uintptr_t slot = code_alloc(bound, need, nneed);
        if (!slot && r.riprel)
            return "no memory within +-2 GiB for the copy of a RIP-relative instruction";
        if (!slot)
            slot = code_alloc(bound, NULL, 0);
        if (!slot)
            return "cannot map memory for a trampoline";
        uint8_t code[128];
        struct emit e = { code, sizeof(code), 0, slot, NULL };
        uint8_t newoff[MAX_INSNS] = { 0 };
        if (emit_region(&r, &e, newoff))
            put_jmp(&e, addr + r.len);
        if (e.why)
            return e.why;
        int fd = mem_open();
        if (fd < 0)
            return "cannot open /proc/self/mem for writing";
        int bad = code_write(fd, slot, code, e.len);
        close(fd);
        if (bad)
            return "writing code through /proc/self/mem failed";
        code_trim(slot, bound, e.len);
        pr->stub = pr->reloc = slot;
        pr->reloc_end = slot + e.len;
        pr->n = 1;
    }
    pr->kind = K_BREAK;
    pr->addr = addr;
    pr->len = ins.length;
    pr->cb = cb;
    pr->arg = arg;
    read_orig(addr, pr->orig, ins.length);
    probe_publish();
    /* One byte: every thread runs either the old instruction or the int3, never a mix. */
    static const uint8_t int3 = 0xCC;
    int fd = mem_open();
    if (fd < 0 || code_write(fd, addr, &int3, 1)) {
        if (fd >= 0)
            close(fd);
        __atomic_store_n(&pr->retired, 1, __ATOMIC_RELEASE);
        return fd < 0 ? "cannot open /proc/self/mem for writing" : "writing code through /proc/self/mem failed";
    }
    close(fd);
    sync_core();
    return NULL;
}

/* ---------------------------------------------------------------- Public interface */

static int finish(const char *w, const char **why)
{
    if (w) {
        COUNT(refused);
        if (why)
            *why = w;
        return -1;
    }
    return 0;
}

static int hook(uintptr_t fn, size_t fn_size, race_probe_cb cb, void *arg, const char **why, int entry_only)
{
    int far = 0;
    pthread_mutex_lock(&install_lock);
    const char *w = hook_locked(fn, fn_size, cb, arg, &far, entry_only);
    pthread_mutex_unlock(&install_lock);
    if (!w) {
        COUNT(hooks);
        if (far)
            COUNT(hooks_far);
    }
    return finish(w, why);
}

int race_probe_hook(uintptr_t fn, size_t fn_size, race_probe_cb cb, void *arg, const char **why)
{
    return hook(fn, fn_size, cb, arg, why, 0);
}

int race_probe_hook_entry(uintptr_t fn, size_t fn_size, race_probe_cb cb, void *arg, const char **why)
{
    return hook(fn, fn_size, cb, arg, why, 1);
}

int race_probe_break(uintptr_t addr, uintptr_t fn, size_t fn_size, race_probe_cb cb, void *arg, const char **why)
{
    int emulated = 0;
    pthread_mutex_lock(&install_lock);
    const char *w = break_locked(addr, fn, fn_size, cb, arg, &emulated);
    pthread_mutex_unlock(&install_lock);
    if (!w) {
        COUNT(breaks);
        if (emulated)
            COUNT(breaks_emulated);
    }
    return finish(w, why);
}

int race_probe_sync_signal(void)
{
    int s = __atomic_load_n(&sync_sig, __ATOMIC_RELAXED);
    if (!s) {
        s = SIGRTMAX - 3;
        __atomic_store_n(&sync_sig, s, __ATOMIC_RELAXED);
    }
    return s;
}

void race_probe_set_sync_signal(int sig)
{
    __atomic_store_n(&sync_sig, sig, __ATOMIC_RELAXED);
}

uintptr_t race_probe_orig_pc(uintptr_t pc)
{
    uint32_t n = __atomic_load_n(&nprobes, __ATOMIC_ACQUIRE);
    for (uint32_t i = 0; i < n; i++) {
        const struct probe *p = &probes[i];
        if (p->kind == K_HOOK && pc >= p->stub && pc < p->reloc)
            return p->fn;
        if (pc >= p->reloc && pc < p->reloc_end) {
            int j = 0;
            while (j + 1 < p->n && p->reloc + p->new_off[j + 1] <= pc)
                j++;
            return p->addr + p->old_off[j];
        }
    }
    return pc;
}

void race_probe_stats(struct race_probe_stats *out)
{
    const uint64_t *src = (const uint64_t *)&st;
    uint64_t *dst = (uint64_t *)out;
    for (size_t i = 0; i < sizeof(st) / sizeof(uint64_t); i++)
        dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

void race_probe_debug_far(int on)
{
    pthread_mutex_lock(&install_lock);
    force_far = on;
    pthread_mutex_unlock(&install_lock);
}
