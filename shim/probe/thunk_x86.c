/* thunk_x86.c - the entry and exit thunks of entry hooks (registers, flags and the
 * vector state saved around a C callback, with CFI for unwinders) and the per-thread
 * shadow stack that holds the real return addresses behind EXIT thunks. Runs on the
 * probed thread, in any context: no lock, no allocation, no system call but the
 * write(2) of a fatal message. */
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>
#include <cpuid.h>

#include "engine_x86.h"

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
        __atomic_fetch_add(&probe_st.stale_dropped, d - k, __ATOMIC_RELAXED);
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

/* ---------------------------------------------------------------- Extended state */

/* At the engine's first install: how much the thunks save, and how. */
void xsave_init(void)
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
