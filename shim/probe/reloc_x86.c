/* reloc_x86.c - lays out a decoded region at a new address with Zydis's encoder:
 * RIP-relative operands re-aimed, branches and calls rewritten to reach their targets,
 * and the jumps between the original code and its copy. Installing only; writes into the
 * caller's buffer, never into code. */
#include <string.h>

#include "engine_x86.h"

void put(struct emit *e, const void *b, size_t n)
{
    if (e->why)
        return;
    if (e->len + n > e->cap) {
        e->why = "a trampoline would be too long";
        return;
    }
    memcpy(e->buf + e->len, b, n);
    e->len += n;
}

static void req_init(ZydisEncoderRequest *q, ZydisMnemonic m)
{
    memset(q, 0, sizeof(*q));
    q->machine_mode = ZYDIS_MACHINE_MODE_LONG_64;
    q->mnemonic = m;
}

void put_enc(struct emit *e, ZydisEncoderRequest *q)
{
    uint8_t b[ZYDIS_MAX_INSTRUCTION_LENGTH];
    ZyanUSize n = sizeof(b);
    if (e->why)
        return;
    if (ZYAN_FAILED(ZydisEncoderEncodeInstructionAbsolute(q, b, &n, e->at + e->len))) {
        e->why = "the encoder refused a rewritten branch";
        return;
    }
    put(e, b, n);
}

void req_rel32(ZydisEncoderRequest *q, ZydisMnemonic m, uint64_t target)
{
    req_init(q, m);
    q->branch_type = ZYDIS_BRANCH_TYPE_NEAR;
    q->branch_width = ZYDIS_BRANCH_WIDTH_32;
    q->operand_count = 1;
    q->operands[0].type = ZYDIS_OPERAND_TYPE_IMMEDIATE;
    q->operands[0].imm.u = target;
}

void req_riprel(ZydisEncoderRequest *q, ZydisMnemonic m, uint64_t where)
{
    req_init(q, m);
    q->operand_count = 1;
    q->operands[0].type = ZYDIS_OPERAND_TYPE_MEMORY;
    q->operands[0].mem.base = ZYDIS_REGISTER_RIP;
    q->operands[0].mem.displacement = (ZyanI64)where;
    q->operands[0].mem.size = 8;
}

static size_t jmp_len(uintptr_t at, uint64_t target)
{
    return reaches(at + NEAR_JMP, target) ? NEAR_JMP : FAR_JMP;
}

/* jmp rel32 where it reaches, else jmp [rip+0] followed by the address. */
void put_jmp(struct emit *e, uint64_t target)
{
    ZydisEncoderRequest q;
    uintptr_t here = e->at + e->len;
    if (jmp_len(here, target) == NEAR_JMP) {
        req_rel32(&q, ZYDIS_MNEMONIC_JMP, target);
        put_enc(e, &q);
    } else {
        req_riprel(&q, ZYDIS_MNEMONIC_JMP, here + 6);
        put_enc(e, &q);
        put(e, &target, 8);
    }
}

static void put_jmp_short(struct emit *e, uint64_t target)
{
    ZydisEncoderRequest q;
    req_init(&q, ZYDIS_MNEMONIC_JMP);
    q.branch_type = ZYDIS_BRANCH_TYPE_SHORT;
    q.branch_width = ZYDIS_BRANCH_WIDTH_8;
    q.operand_count = 1;
    q.operands[0].type = ZYDIS_OPERAND_TYPE_IMMEDIATE;
    q.operands[0].imm.u = target;
    put_enc(e, &q);
}

/* call from the trampoline: the callee returns into it. call rel32 where it reaches,
 * else call [rip+2]; jmp over the address; the address. */
static void put_call(struct emit *e, uint64_t target)
{
    ZydisEncoderRequest q;
    uintptr_t here = e->at + e->len;
    if (reaches(here + 5, target)) {
        req_rel32(&q, ZYDIS_MNEMONIC_CALL, target);
        put_enc(e, &q);
        return;
    }
    req_riprel(&q, ZYDIS_MNEMONIC_CALL, here + 8);
    put_enc(e, &q);
    put_jmp_short(e, here + 16);
    put(e, &target, 8);
}

/* A call that ends the patched bytes pushes the original return address and jumps, so
 * the callee returns straight into the original code: the stack holds what it would
 * have held (unwinders, and code that reads its return address, see no trampoline).
 * lea and mov leave the flags alone, as call does. */
static void put_call_home(struct emit *e, uint64_t target, uint64_t ret)
{
    ZydisEncoderRequest q;
    req_init(&q, ZYDIS_MNEMONIC_LEA);
    q.operand_count = 2;
    q.operands[0].type = ZYDIS_OPERAND_TYPE_REGISTER;
    q.operands[0].reg.value = ZYDIS_REGISTER_RSP;
    q.operands[1].type = ZYDIS_OPERAND_TYPE_MEMORY;
    q.operands[1].mem.base = ZYDIS_REGISTER_RSP;
    q.operands[1].mem.displacement = -8;
    q.operands[1].mem.size = 8;
    put_enc(e, &q);
    for (int half = 0; half < 2; half++) {
        req_init(&q, ZYDIS_MNEMONIC_MOV);
        q.operand_count = 2;
        q.operands[0].type = ZYDIS_OPERAND_TYPE_MEMORY;
        q.operands[0].mem.base = ZYDIS_REGISTER_RSP;
        q.operands[0].mem.displacement = half * 4;
        q.operands[0].mem.size = 4;
        q.operands[1].type = ZYDIS_OPERAND_TYPE_IMMEDIATE;
        q.operands[1].imm.s = (int32_t)(uint32_t)(ret >> (32 * half));
        put_enc(e, &q);
    }
    put_jmp(e, target);
}

/* Lays out r at e's current position. newoff[] holds each instruction's offset from
 * the region's start: run it twice, the second time with the offsets the first found,
 * so that branches to later instructions of the region get their targets (the forms
 * chosen depend only on positions, so both runs lay out the same bytes). Returns 1 if
 * control falls off the end (the caller adds the jump back). */
int emit_region(const struct region *r, struct emit *e, uint8_t *newoff)
{
    size_t base = e->len;
    int falls = !r->ends;
    for (int i = 0; i < r->n && !e->why; i++) {
        const struct rinsn *ri = &r->in[i];
        uint8_t b[ZYDIS_MAX_INSTRUCTION_LENGTH];
        read_orig(r->at + ri->off, b, ri->len);
        newoff[i] = (uint8_t)(e->len - base);
        uint64_t t = ri->target;
        if (ri->kind >= R_JMP && t >= r->at && t < r->at + r->len) {
            int j = 0;
            while (j < r->n && r->at + r->in[j].off != t)
                j++;
            if (j == r->n) {
                e->why = "a branch in the patched bytes lands inside an instruction";
                return 0;
            }
            if (ri->kind == R_CALL) {
                e->why = "a call in the patched bytes targets the patched bytes";
                return 0;
            }
            t = e->at + base + newoff[j];
        }
        switch (ri->kind) {
        case R_COPY:
            put(e, b, ri->len);
            break;
        case R_RIPREL: {
            int64_t d = (int64_t)(ri->target - (e->at + e->len + ri->len));
            if (d != (int32_t)d) {
                e->why = "a RIP-relative operand is out of reach of the trampoline";
                return 0;
            }
            int32_t d32 = (int32_t)d;
            memcpy(b + ri->fix, &d32, 4);
            put(e, b, ri->len);
            break;
        }
        case R_JMP:
            put_jmp(e, t);
            break;
        case R_JCOND: {
            /* The branch as it was (jcc, loop, jrcxz: some have only a rel8 form), aimed
             * two bytes on at a jump to the target; a short jmp over that jump is the
             * fall-through. */
            memset(b + ri->fix, 0, ri->fixsize);
            b[ri->fix] = 2;
            put(e, b, ri->len);
            uintptr_t after = e->at + e->len + 2;
            put_jmp_short(e, after + jmp_len(after, t));
            put_jmp(e, t);
            break;
        }
        case R_CALL:
            if (i == r->n - 1) {
                put_call_home(e, t, r->at + r->len);
                falls = 0;
            } else {
                put_call(e, t);
            }
            break;
        }
    }
    return falls;
}

/* Worst case per instruction: a transparent call with an absolute jump (5+7+8+14). */
size_t region_bound(const struct region *r)
{
    return (size_t)r->n * 34 + FAR_JMP;
}
