/* trap_x86.c - the signal side of the engine: an int3 of a breakpoint probe (callback,
 * then the instruction out of line or emulated), an int3 of an entry hook being placed,
 * the sync handshake; and the pc lookups for stack walkers. Async-signal-safe: no lock,
 * no allocation, no system call but getpid. */
#include <unistd.h>

#include "engine_x86.h"

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
