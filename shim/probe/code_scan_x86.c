/* code_scan_x86.c - scans x86-64 machine code with Zydis (never by hand-written opcode
 * tables) for an increment of [reg + disp] and the load that fed its register, and maps
 * DWARF register numbers to names and to ucontext gregs[] slots. Allocates nothing and
 * takes no lock, but it is written for start-up use; the mapping helpers are safe
 * anywhere. */
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

/* Decodes [from, to) and says whether the instructions tile it exactly (each decodes,
 * the last ends at `to`); fills the start of each in starts[] (at most cap). */
static int tiles(ZydisDecoder *dec, const uint8_t *code, uint64_t from, uint64_t to, uint64_t *starts, int cap,
                 int *n)
{
    ZydisDecodedInstruction ins;
    *n = 0;
    for (uint64_t pc = from; pc < to;) {
        if (ZYAN_FAILED(ZydisDecoderDecodeInstruction(dec, NULL, code + (pc - from), (ZyanUSize)(to - pc), &ins)) ||
            *n >= cap)
            return 0;
        starts[(*n)++] = pc;
        pc += ins.length;
        if (pc > to)
            return 0;
    }
    return 1;
}

int race_find_load_def(const uint8_t *code, uint64_t addr, uint64_t at, int reg, int disp, int *base_reg,
                       uint64_t *insn_addr)
{
    ZydisDecoder dec;
    if (!code || at <= addr || reg < 0 ||
        ZYAN_FAILED(ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64)))
        return 0;
    /* Instruction boundaries before `at` are not known: take the farthest start that
     * decodes into instructions ending exactly at `at`. x86 decoding falls into step
     * within a few instructions, so the tail of a long tiling is the real code. */
    uint64_t starts[96];
    int n = 0, found_tiling = 0;
    for (uint64_t from = at - 160 < addr ? addr : at - 160; from + 16 < at; from++)
        if (tiles(&dec, code + (from - addr), from, at, starts, 96, &n) && n >= 8) {
            found_tiling = 1;
            break;
        }
    if (!found_tiling)
        return 0;
    /* The last instruction before `at` that writes reg: it must be the load. */
    for (int i = n - 1; i >= 0; i--) {
        ZydisDecodedInstruction ins;
        ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
        if (ZYAN_FAILED(ZydisDecoderDecodeFull(&dec, code + (starts[i] - addr), (ZyanUSize)(at - starts[i]), &ins, ops)))
            return 0;
        int writes = 0;
        for (unsigned k = 0; k < ins.operand_count; k++)
            if (ops[k].type == ZYDIS_OPERAND_TYPE_REGISTER && (ops[k].actions & ZYDIS_OPERAND_ACTION_MASK_WRITE) &&
                zydis_to_dwarf(ZydisRegisterGetLargestEnclosing(ZYDIS_MACHINE_MODE_LONG_64, ops[k].reg.value)) == reg)
                writes = 1;
        /* code before a call, return or jump does not flow straight into `at` */
        if (ins.meta.category == ZYDIS_CATEGORY_CALL || ins.meta.category == ZYDIS_CATEGORY_RET ||
            ins.meta.category == ZYDIS_CATEGORY_UNCOND_BR)
            return 0;
        if (!writes)
            continue;
        if (ins.mnemonic != ZYDIS_MNEMONIC_MOV || ins.operand_count_visible != 2 ||
            ops[0].type != ZYDIS_OPERAND_TYPE_REGISTER || ops[0].size != 64 ||
            ops[1].type != ZYDIS_OPERAND_TYPE_MEMORY || ops[1].mem.index != ZYDIS_REGISTER_NONE ||
            ops[1].mem.disp.value != disp || ops[1].mem.segment == ZYDIS_REGISTER_FS ||
            ops[1].mem.segment == ZYDIS_REGISTER_GS)
            return 0;
        int b = zydis_to_dwarf(ops[1].mem.base);
        if (b < 0)
            return 0;
        *base_reg = b;
        *insn_addr = starts[i];
        /* Earlier loads through the same base in the same straight run (the call-info's
         * other fields, read just before its kwarg) fault first when the base is bad:
         * the earliest of them is the place to look at it. */
        for (int j = i - 1; j >= 0; j--) {
            if (ZYAN_FAILED(ZydisDecoderDecodeFull(&dec, code + (starts[j] - addr), (ZyanUSize)(at - starts[j]), &ins,
                                                   ops)) ||
                ins.meta.category == ZYDIS_CATEGORY_CALL || ins.meta.category == ZYDIS_CATEGORY_RET ||
                ins.meta.category == ZYDIS_CATEGORY_UNCOND_BR || ins.meta.category == ZYDIS_CATEGORY_COND_BR)
                break;
            int writes_b = 0, loads_b = 0;
            for (unsigned k = 0; k < ins.operand_count; k++) {
                if (ops[k].type == ZYDIS_OPERAND_TYPE_REGISTER && (ops[k].actions & ZYDIS_OPERAND_ACTION_MASK_WRITE) &&
                    zydis_to_dwarf(ZydisRegisterGetLargestEnclosing(ZYDIS_MACHINE_MODE_LONG_64, ops[k].reg.value)) == b)
                    writes_b = 1;
                if (ops[k].type == ZYDIS_OPERAND_TYPE_MEMORY && ops[k].mem.type == ZYDIS_MEMOP_TYPE_MEM &&
                    zydis_to_dwarf(ops[k].mem.base) == b)
                    loads_b = 1;
            }
            if (writes_b)
                break;
            if (loads_b)
                *insn_addr = starts[j];
        }
        return 1;
    }
    return 0;
}
