/* fault.c - turns a SIGSEGV/SIGBUS on a guarded slot into a finding: what was touched
 * (use after free, overflow, underflow), by whom (thread, Ractor, the stack unwound
 * from the signal context), and the slot's allocation and free. Then, as
 * RACE_ON_FINDING says, abort, or open the page (poisoned) and let the access
 * complete; a finding seen before (same type, pc, block) is only counted. Runs on the alternate signal stack:
 * async-signal-safe, no locks, no allocation. */
#include <signal.h>
#include <string.h>

#include "shim.h"

int race_fault_handle(int sig, siginfo_t *si, void *uc)
{
    if (sig != SIGSEGV && sig != SIGBUS)
        return 0;
    /* the shim's own load of memory it does not own (arch_x86.h): not a finding */
    if (race_arch_fixup(uc))
        return 1;
    struct race_finding f;
    memset(&f, 0, sizeof(f));
    int open_guard = 0;
    int slot = race_pool_classify((uintptr_t)si->si_addr, &f, &open_guard);
    if (slot < 0)
        return 0;
    f.addr = (uint64_t)(uintptr_t)si->si_addr;
    f.pc = race_arch_pc(uc);
    /* Seen already (in a storm, or another thread got there first): counted, and let
     * through without the unwinding a report costs. */
    if (race_finding_again(&f))
        return race_pool_open(slot, open_guard);
    struct race_tls *t = &race_tls;
    f.access = race_arch_is_write(uc) ? RACE_ACCESS_WRITE : RACE_ACCESS_READ;
    f.access_size = race_arch_access_size(f.pc);
    f.tid = race_tid(t);
    f.ractor = race_ractor_id();
    f.ts = race_now();
    f.stack = race_stack_capture_uc(uc);
    race_finding_report(&f, uc);
    return race_pool_open(slot, open_guard);
}
