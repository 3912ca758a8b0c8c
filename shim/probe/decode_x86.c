/* decode_x86.c - decodes the code around a probe site with Zydis, reading the bytes as
 * they were before any probe, and says whether they may be patched: instruction
 * boundaries, relative operands, branches into the patched bytes, probes already there.
 * Installing only; reads code, writes nothing. */
#include <string.h>

#include "engine_x86.h"

/* ---------------------------------------------------------------- Decoding */

/* Code as it was before any of our probes changed it, so that decoding across an
 * installed probe reads the original instruction and not our int3 or jump. */
void read_orig(uintptr_t at, uint8_t *buf, size_t n)
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

const char *decode_one(uintptr_t at, size_t avail, ZydisDecodedInstruction *ins,
                              ZydisDecodedOperand *ops)
{
    uint8_t b[ZYDIS_MAX_INSTRUCTION_LENGTH];
    if (!avail || avail > sizeof(b))
        avail = sizeof(b);
    read_orig(at, b, avail);
    if (ZYAN_FAILED(ZydisDecoderDecodeFull(&probe_dec, b, avail, ins, ops)))
        return "an instruction cannot be decoded";
    return NULL;
}

/* 1 and the absolute address if the instruction has a relative branch target (*is_mem
 * 0) or a RIP-relative memory operand (*is_mem 1); 0 if neither; -1 if unresolvable. */
int rel_target(const ZydisDecodedInstruction *ins, const ZydisDecodedOperand *ops, uintptr_t at,
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
const char *decode_region(uintptr_t at, size_t need, size_t limit, struct region *r)
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
const char *scan_function(uintptr_t fn, size_t size, uintptr_t p, size_t len)
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

const char *check_boundary(uintptr_t fn, size_t size, uintptr_t addr)
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
const char *check_free(uintptr_t lo, uintptr_t hi)
{
    for (uint32_t i = 0; i < nprobes; i++) {
        const struct probe *p = &probes[i];
        if (!p->retired && p->addr < hi && p->addr + p->len > lo)
            return p->kind == K_HOOK ? "an entry hook's jump already covers these bytes"
                                     : "a breakpoint probe is already there";
    }
    return NULL;
}
