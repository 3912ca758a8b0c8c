/* arch_x86.c - what an x86-64 fault's machine context says: the faulting pc, whether
 * the access was a write (bit 1 of the page-fault error code the kernel leaves in
 * REG_ERR), and the size of the memory operand, decoded with Zydis. Async-signal-
 * safe: the decoder works on the stack and never allocates. */
#include <Zydis/Zydis.h>
#include <ucontext.h>

#include "shim.h"

uint64_t race_arch_pc(const void *uc)
{
    return (uint64_t)((const ucontext_t *)uc)->uc_mcontext.gregs[REG_RIP];
}

int race_arch_is_write(const void *uc)
{
    return (((const ucontext_t *)uc)->uc_mcontext.gregs[REG_ERR] & 2) != 0;
}

uint32_t race_arch_access_size(uint64_t pc)
{
    ZydisDecoder dec;
    ZydisDecodedInstruction ins;
    ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
    if (!pc || ZYAN_FAILED(ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64)))
        return 0;
    if (ZYAN_FAILED(ZydisDecoderDecodeFull(&dec, (const void *)(uintptr_t)pc, ZYDIS_MAX_INSTRUCTION_LENGTH,
                                           &ins, ops)))
        return 0;
    for (unsigned i = 0; i < ins.operand_count_visible; i++)
        if (ops[i].type == ZYDIS_OPERAND_TYPE_MEMORY && ops[i].mem.type == ZYDIS_MEMOP_TYPE_MEM)
            return ops[i].size / 8;
    return 0;
}

/* race_extable: pairs of PC-relative offsets written by race_arch_load (arch_x86.h). */
struct extable_ent {
    int32_t insn, fixup;
};
extern const struct extable_ent __start_race_extable[] __attribute__((visibility("hidden")));
extern const struct extable_ent __stop_race_extable[] __attribute__((visibility("hidden")));

int race_arch_fixup(void *uc)
{
    greg_t *g = ((ucontext_t *)uc)->uc_mcontext.gregs;
    uintptr_t pc = (uintptr_t)g[REG_RIP];
    for (const struct extable_ent *e = __start_race_extable; e < __stop_race_extable; e++) {
        uintptr_t insn = (uintptr_t)&e->insn + (intptr_t)e->insn;
        if (insn == pc) {
            g[REG_RIP] = (greg_t)((uintptr_t)&e->fixup + (intptr_t)e->fixup);
            return 1;
        }
    }
    return 0;
}
