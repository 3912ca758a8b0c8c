/* arch_x86.h - loads that may fault, for the shim's own reads of memory it does not own
 * (the Ractor-id chain through Ruby's structures, which a stale TLS pointer can send
 * into freed or unmapped memory). Each load is listed in the race_extable section (its
 * address and where to go instead, both PC-relative: no relocation); the SIGSEGV/SIGBUS
 * handler (race_arch_fixup, arch_x86.c) resumes a faulting one at its "failed" exit.
 * The same idea as the kernel's exception tables: free when nothing faults. */
#ifndef RACE_ARCH_X86_H
#define RACE_ARCH_X86_H

#include <stdint.h>

/* *out = *(uint64_t *)p; 1, or 0 if the load faulted. */
static inline __attribute__((always_inline)) int race_arch_load(const void *p, uint64_t *out)
{
    uint64_t v;
    __asm__ goto("1: movq (%1), %0\n"
                 ".pushsection race_extable, \"a\"\n"
                 ".balign 4\n"
                 ".long 1b - .\n"
                 ".long %l[failed] - .\n"
                 ".popsection\n"
                 : "=r"(v)
                 : "r"(p)
                 : "memory"
                 : failed);
    *out = v;
    return 1;
failed:
    return 0;
}

/* In the SIGSEGV/SIGBUS handler: was it one of those loads? Then the context now
 * resumes at its failed exit; returns 1. */
int race_arch_fixup(void *uc);

#endif
