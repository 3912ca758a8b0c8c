/* crash.c - the crash record: one per fatal signal that is not the shim's own (SIGSEGV,
 * SIGBUS, SIGILL, SIGFPE, SIGABRT), written into the trace's crashes section before the
 * program's handler runs: signal, si_code, fault address, registers, the stack unwound
 * from the signal context, thread, Ractor, time, seq. Runs in the signal handler:
 * async-signal-safe, no allocation, no lock (atomics and per-thread state only). */
#include <setjmp.h>
#include <signal.h>
#include <string.h>
#include <ucontext.h>

#include "ruby.h"
#include "shim.h"

/* Per thread: the crash whose program handler is running (index + 1, 0 = none), and the
 * way back out of an unwind that faulted. */
static __thread struct {
    uint32_t open;         /* crash being handled on this thread, index + 1 */
    uint32_t epoch;        /* race_g.epoch when open was set: a fork child starts clean */
    volatile int unwinding;
    sigjmp_buf jb;
} cs __attribute__((tls_model("initial-exec")));

static uint32_t own_abort_tid; /* a thread that aborts after reporting a finding */

void race_crash_own_abort(void)
{
    __atomic_store_n(&own_abort_tid, (uint32_t)gettid(), __ATOMIC_RELAXED);
}

int race_crash_is_fatal(int sig)
{
    return sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE || sig == SIGABRT;
}

int race_crash_unwind_fault(void)
{
    if (!cs.unwinding)
        return 0;
    cs.unwinding = 0;
    siglongjmp(cs.jb, 1);
}

/* enum race_reg order -> the kernel's gregs[] index. */
static const int reg_of[RACE_REG_COUNT] = {
    REG_RAX, REG_RBX, REG_RCX, REG_RDX, REG_RSI, REG_RDI, REG_RBP, REG_RSP, REG_R8,
    REG_R9, REG_R10, REG_R11, REG_R12, REG_R13, REG_R14, REG_R15, REG_RIP, REG_EFL,
};

/* The stack of the interrupted code, or 0: not while the shim itself was unwinding or
 * rescanning on this thread (libunwind's state and the module scan are not reentrant),
 * and not past a fault inside the unwind (a crash on a smashed stack): the record is
 * still written, without a stack. */
static uint32_t crash_stack(struct race_tls *t, void *uc)
{
    if (t->busy)
        return 0;
    uint32_t saved = t->busy;
    if (sigsetjmp(cs.jb, 1)) {
        t->busy = saved; /* the faulting unwind never got to undo its increment */
        return 0;
    }
    cs.unwinding = 1;
    uint32_t id = race_stack_capture_uc(uc);
    cs.unwinding = 0;
    return id;
}

/* Raised while this thread's crash is handled? The program's handler runs on the
 * alternate stack, so a signal that interrupted code on it came from inside that
 * handler; one that left it by siglongjmp left the alternate stack too, and the next
 * signal is a crash of its own. uc_stack holds the alternate stack as it was at
 * delivery (its ss_flags do not say SS_ONSTACK on every kernel: the range does). A
 * thread without one cannot tell: nesting is assumed. */
static int on_altstack(const ucontext_t *u)
{
    if (u->uc_stack.ss_flags & SS_DISABLE)
        return 1;
    uintptr_t sp = (uintptr_t)u->uc_mcontext.gregs[REG_RSP], lo = (uintptr_t)u->uc_stack.ss_sp;
    return sp > lo && sp - lo <= u->uc_stack.ss_size;
}

uint32_t race_crash_record(int sig, const void *siv, void *uc)
{
    const siginfo_t *si = siv;
    struct race_hdr *h = __atomic_load_n(&race_g.hdr, __ATOMIC_ACQUIRE);
    if (!h || !h->crashes.size)
        return 0;
    struct race_tls *t = &race_tls;
    uint32_t tid = race_tid(t);
    /* RACE_ON_FINDING=abort: the finding explains the death, the abort is not a crash */
    if (sig == SIGABRT && si->si_code <= 0 && __atomic_load_n(&own_abort_tid, __ATOMIC_RELAXED) == tid)
        return 0;
    const ucontext_t *u = uc;
    if (cs.epoch != race_g.epoch)
        cs.open = 0;
    uint32_t first = cs.open && (!u || on_altstack(u)) ? cs.open : 0;

    struct race_crash_hdr *ch = (struct race_crash_hdr *)((uint8_t *)h + h->crashes.off);
    uint64_t cap = (h->crashes.size - sizeof(*ch)) / sizeof(struct race_crash);
    __atomic_store_n(&ch->cap, cap, __ATOMIC_RELAXED); /* every writer stores the same value */
    uint64_t i = __atomic_fetch_add(&ch->used, 1, __ATOMIC_RELAXED);
    if (i >= cap)
        return first; /* counted: used > cap says how many did not fit */

    struct race_crash c;
    memset(&c, 0, sizeof(c));
    c.sig = (uint8_t)sig;
    c.first = (uint16_t)first;
    c.code = si->si_code;
    /* si_addr is the fault address only for a fault; for a sent signal those bytes are
     * the sender's pid and uid */
    c.addr = si->si_code > 0 ? (uint64_t)(uintptr_t)si->si_addr : 0;
    c.tid = tid;
    c.ts = race_now();
    c.seq = t->epoch == race_g.epoch ? t->seq : 0;
    if (u) {
        c.has_regs = 1;
        for (unsigned r = 0; r < RACE_REG_COUNT; r++)
            c.regs[r] = (uint64_t)u->uc_mcontext.gregs[reg_of[r]];
        c.pc = c.regs[RACE_REG_RIP];
    }
    c.ractor = race_ractor_id();
    c.stack = u ? crash_stack(t, uc) : 0;
    c.rb = race_rb_capture(RACE_RBW_CRASH);

    struct race_crash *d = (struct race_crash *)(ch + 1) + i;
    memcpy((uint8_t *)d + 4, (const uint8_t *)&c + 4, sizeof(c) - 4);
    __atomic_store_n(&d->commit, RACE_CRASH_COMMIT, __ATOMIC_RELEASE);
    return first ? first : (uint32_t)i + 1;
}

/* Around the program's handler: which crash it is handling. Left set when the handler
 * leaves by siglongjmp; the alternate-stack test above tells that case apart. */
uint32_t race_crash_open(uint32_t index1)
{
    uint32_t prev = cs.epoch == race_g.epoch ? cs.open : 0;
    cs.open = index1;
    cs.epoch = race_g.epoch;
    return prev;
}
