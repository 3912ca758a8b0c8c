/* probe.h - the probe engine's contract: entry hooks (ENTER and EXIT events) and
 * breakpoint probes (HIT events) on code of this process, and the two signal entry
 * points behind them. Installing is serialized inside the engine, maps memory and is
 * not async-signal-safe; callbacks, race_probe_trap and the lookups are, and never
 * lock or allocate. One implementation per architecture: the files named *_x86.c here, which
 * files share engine_x86.h. */
#ifndef RACE_PROBE_H
#define RACE_PROBE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

/* The general registers at the probe point. */
struct race_regs {
    uint64_t rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp;
    uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
    uint64_t rip;
};

enum { RACE_PROBE_ENTER = 1, RACE_PROBE_EXIT = 2, RACE_PROBE_HIT = 3 };

/* Runs on the probed thread. ENTER: at the function's first instruction (rip is the
 * function, arguments in rdi, rsi, rdx, rcx, r8, r9, rsp points at the return address);
 * EXIT: just after the function returned (rip is the real return address, rax/rdx the
 * return value); HIT: before the probed instruction executes (rip is its address).
 * Must not change the registers. Must be async-signal-safe: HIT runs inside the
 * SIGTRAP handler, ENTER/EXIT may run inside any signal handler that calls a hooked
 * function. Must not reach a breakpoint probe itself unless SIGTRAP is SA_NODEFER. */
typedef void (*race_probe_cb)(const struct race_regs *regs, int event, void *arg);

/* Entry hook on the function at fn: ENTER on every call, EXIT on every return that the
 * per-thread shadow stack could record (RACE_PROBE_SHADOW_DEPTH nested hooked calls).
 * fn_size (0 = unknown) bounds the prologue and lets the whole function be checked for
 * branches into the patched bytes: always pass it when the symbol table has it.
 * Returns 0, or -1 with *why set to a static string naming the reason. Safe while other
 * threads run the function; never call it (or race_probe_break) from a callback.
 * Probes are permanent: there is no removal. */
int race_probe_hook(uintptr_t fn, size_t fn_size, race_probe_cb cb, void *arg, const char **why);
/* The same hook with ENTER only: the return address is not replaced, so no EXIT and
 * no shadow stack (a check at a function's entry, for a fraction of a breakpoint's cost). */
int race_probe_hook_entry(uintptr_t fn, size_t fn_size, race_probe_cb cb, void *arg, const char **why);

/* Breakpoint probe (int3) at an instruction boundary: HIT events. For inlined copies of a
 * function, or where race_probe_hook refused. fn/fn_size name the function holding addr
 * (0 = unknown): with them, addr is checked to be an instruction boundary. */
int race_probe_break(uintptr_t addr, uintptr_t fn, size_t fn_size, race_probe_cb cb, void *arg,
                     const char **why);

/* The shim's SIGTRAP handler and its handler for race_probe_sync_signal() call this
 * first. Returns 1 if the signal was the engine's (resumption arranged by editing the
 * ucontext), 0 otherwise: then the signal belongs to the program and is chained.
 * Installs are refused unless SIGTRAP has an SA_SIGINFO handler and (entry hooks) the
 * sync signal an SA_SIGINFO|SA_RESTART one: the handshake interrupts blocked system
 * calls, which must restart rather than fail with EINTR in the program. SA_NODEFER on
 * SIGTRAP lets a probe be reached from inside a callback instead of killing the
 * process (a trap raised while SIGTRAP is blocked is fatal). */
int race_probe_trap(siginfo_t *si, void *ucontext);

/* The real-time signal that moves other threads out of a prologue while its jump is
 * written (SIGRTMAX - 3). */
int race_probe_sync_signal(void);

/* For stack walkers: a pc inside a trampoline maps to the original instruction it
 * stands for; a return address equal to the EXIT thunk, read from stack slot `slot` of
 * the calling thread, maps to the real one. Other values come back unchanged. */
uintptr_t race_probe_orig_pc(uintptr_t pc);
uintptr_t race_probe_return_addr(uintptr_t ra, uintptr_t slot);

#define RACE_PROBE_SHADOW_DEPTH 64

/* Counters for `race stats`. */
struct race_probe_stats {
    uint64_t hooks;           /* entry hooks installed */
    uint64_t hooks_far;       /* of which with a 14-byte absolute jump (no memory within 2 GiB) */
    uint64_t breaks;          /* breakpoint probes installed */
    uint64_t breaks_emulated; /* of which branches emulated in the trap handler */
    uint64_t refused;         /* install requests refused */
    uint64_t enter, exit, hit;
    uint64_t exit_skipped;    /* calls without EXIT: shadow stack full */
    uint64_t stale_dropped;   /* shadow entries of frames left by longjmp */
    uint64_t trap_enters;     /* ENTERs that came through the int3 while a jump was placed */
    uint64_t threads_moved;   /* threads moved out of a prologue being patched */
};
void race_probe_stats(struct race_probe_stats *out);

/* Tests only: pretend no memory can be mapped within +-2 GiB of any target. */
void race_probe_debug_far(int on);

#endif
