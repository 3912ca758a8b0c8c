/* debuginfo_x86.c - the x86-64 half of debuginfo: DWARF register numbers to names and to
 * ucontext gregs[] slots, and finding an increment of [reg + disp] in machine code with
 * Zydis (never by hand-written opcode tables). Allocates nothing and takes no lock, but
 * it is written for start-up use; the mapping helpers are safe anywhere. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* REG_RAX and friends */
#endif
#include <Zydis/Zydis.h>
#include <stddef.h>
#include <ucontext.h>

#include "debuginfo.h"

/* DWARF numbering for x86-64 (System V psABI, figure 3.36). */
static const char *const dwarf_names[17] = {
    "rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp",
    "r8",  "r9",  "r10", "r11", "r12", "r13", "r14", "r15", "rip",
};

const char *race_dwarf_reg_name(int reg)
{
    return reg >= 0 && reg < 17 ? dwarf_names[reg] : NULL;
}

int race_dwarf_to_greg(int reg)
{
    static const int gregs[17] = {
        REG_RAX, REG_RDX, REG_RCX, REG_RBX, REG_RSI, REG_RDI, REG_RBP, REG_RSP,
        REG_R8,  REG_R9,  REG_R10, REG_R11, REG_R12, REG_R13, REG_R14, REG_R15, REG_RIP,
    };
    return reg >= 0 && reg < 17 ? gregs[reg] : -1;
}

static int zydis_to_dwarf(ZydisRegister r)
{
    static const ZydisRegister order[16] = {
        ZYDIS_REGISTER_RAX, ZYDIS_REGISTER_RDX, ZYDIS_REGISTER_RCX, ZYDIS_REGISTER_RBX,
        ZYDIS_REGISTER_RSI, ZYDIS_REGISTER_RDI, ZYDIS_REGISTER_RBP, ZYDIS_REGISTER_RSP,
        ZYDIS_REGISTER_R8,  ZYDIS_REGISTER_R9,  ZYDIS_REGISTER_R10, ZYDIS_REGISTER_R11,
        ZYDIS_REGISTER_R12, ZYDIS_REGISTER_R13, ZYDIS_REGISTER_R14, ZYDIS_REGISTER_R15,
    };
    for (int i = 0; i < 16; i++)
        if (order[i] == r)
            return i;
    return -1;
}

int race_find_mem_inc(const uint8_t *code, uint64_t addr, uint64_t end, int disp,
                      int *base_reg, uint64_t *insn_addr)
{
    ZydisDecoder dec;
    if (!code || end <= addr ||
        ZYAN_FAILED(ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64)))
        return 0;
    ZydisDecodedInstruction ins;
    ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
    for (uint64_t pc = addr; pc < end;) {
        if (ZYAN_FAILED(ZydisDecoderDecodeFull(&dec, code + (pc - addr), (ZyanUSize)(end - pc), &ins, ops))) {
            pc++; /* data or a cut instruction: resynchronise on the next byte */
            continue;
        }
        uint64_t at = pc;
        pc += ins.length;
        if (ins.operand_count_visible < 1 || ops[0].type != ZYDIS_OPERAND_TYPE_MEMORY)
            continue;
        const ZydisDecodedOperandMem *m = &ops[0].mem;
        if (m->type != ZYDIS_MEMOP_TYPE_MEM || m->index != ZYDIS_REGISTER_NONE || m->disp.value != disp ||
            m->segment == ZYDIS_REGISTER_FS || m->segment == ZYDIS_REGISTER_GS)
            continue;
        int one = ins.mnemonic == ZYDIS_MNEMONIC_INC && ins.operand_count_visible == 1;
        if (!one && ins.operand_count_visible == 2 && ops[1].type == ZYDIS_OPERAND_TYPE_IMMEDIATE)
            one = (ins.mnemonic == ZYDIS_MNEMONIC_ADD && ops[1].imm.value.s == 1) ||
                  (ins.mnemonic == ZYDIS_MNEMONIC_SUB && ops[1].imm.value.s == -1);
        int reg = zydis_to_dwarf(m->base);
        if (!one || reg < 0)
            continue;
        *base_reg = reg;
        *insn_addr = at;
        return 1;
    }
    return 0;
}
