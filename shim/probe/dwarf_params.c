/* dwarf_params.c - where each parameter of a function instance lives at its entry, from
 * the DWARF of the instance and of its abstract origin (register, frame-base offset
 * resolved through the call-frame information, or why not), and which SysV argument
 * register it arrived in. Start-up only; allocates only through libdw. Every reference
 * chain is bounded, so a corrupt file cannot hold it. */
#include <dwarf.h>
#include <elf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwelf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <gelf.h>
#include <libelf.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "elf_file.h"

#define MAX_HOPS 16 /* abstract_origin/specification hops followed */

/* NAME of DIE, through abstract_origin and specification: what dwarf_attr_integrate does,
 * but bounded by our own hop count so a reference cycle cannot hold us. */
const char *die_name(Dwarf_Die *die)
{
    Dwarf_Die cur = *die, next;
    Dwarf_Attribute a;
    for (int i = 0; i < MAX_HOPS; i++) {
        if (dwarf_attr(&cur, DW_AT_name, &a))
            return dwarf_formstring(&a);
        if (!dwarf_attr(&cur, DW_AT_abstract_origin, &a) && !dwarf_attr(&cur, DW_AT_specification, &a))
            return NULL;
        if (!dwarf_formref_die(&a, &next))
            return NULL;
        cur = next;
    }
    return NULL;
}

/* The end of DIE's abstract_origin chain: the DIE whose children list the parameters in
 * their declared order (DIE itself when it has no origin). */
static void abstract_root(Dwarf_Die *die, Dwarf_Die *root)
{
    *root = *die;
    Dwarf_Attribute a;
    Dwarf_Die next;
    for (int i = 0; i < MAX_HOPS && dwarf_attr(root, DW_AT_abstract_origin, &a) && dwarf_formref_die(&a, &next);
         i++)
        *root = next;
}

/* SysV x86-64: does one parameter of this type take the next integer register (1), an SSE
 * register (0), or something this code does not model (-1: stop assigning)? */
static int int_class(Dwarf_Die *param)
{
    Dwarf_Attribute a;
    Dwarf_Die t;
    if (!dwarf_attr_integrate(param, DW_AT_type, &a) || !dwarf_formref_die(&a, &t))
        return -1;
    for (int i = 0; i < MAX_HOPS; i++) {
        switch (dwarf_tag(&t)) {
        case DW_TAG_typedef:
        case DW_TAG_const_type:
        case DW_TAG_volatile_type:
        case DW_TAG_restrict_type:
        case DW_TAG_atomic_type:
            if (!dwarf_attr(&t, DW_AT_type, &a) || !dwarf_formref_die(&a, &t))
                return -1;
            continue;
        case DW_TAG_pointer_type:
        case DW_TAG_reference_type:
        case DW_TAG_rvalue_reference_type:
        case DW_TAG_enumeration_type:
            return 1;
        case DW_TAG_base_type: {
            Dwarf_Word enc;
            int size = dwarf_bytesize(&t);
            if (!dwarf_attr(&t, DW_AT_encoding, &a) || dwarf_formudata(&a, &enc) != 0 || size <= 0)
                return -1;
            if (enc == DW_ATE_float)
                return size <= 8 ? 0 : -1;
            if (enc == DW_ATE_complex_float || enc == DW_ATE_decimal_float)
                return -1;
            return size <= 8 ? 1 : -1;
        }
        default:
            return -1;
        }
    }
    return -1;
}

/* What a DW_OP_fbreg at PC is relative to, as register + offset: SUB's DW_AT_frame_base,
 * with DW_OP_call_frame_cfa (GCC's choice) resolved through the CFI, so a probe can turn
 * it into an address from the registers alone. */
static void frame_base(Dwarf_CFI *cfi, Dwarf_Die *sub, uint64_t pc, struct race_param_loc *p)
{
    p->reg = -1;
    Dwarf_Attribute a;
    Dwarf_Op *ops;
    size_t n;
    if (!sub || !dwarf_attr(sub, DW_AT_frame_base, &a) || dwarf_getlocation_addr(&a, pc, &ops, &n, 1) != 1 ||
        n != 1)
        return;
    uint8_t op = ops[0].atom;
    if (op >= DW_OP_breg0 && op <= DW_OP_breg31) {
        p->reg = op - DW_OP_breg0;
        p->base_off = (int64_t)ops[0].number;
    } else if (op >= DW_OP_reg0 && op <= DW_OP_reg31) {
        p->reg = op - DW_OP_reg0; /* for a frame base, the register's value is the base */
        p->base_off = 0;
    } else if (op == DW_OP_call_frame_cfa && cfi) {
        Dwarf_Frame *frame;
        if (dwarf_cfi_addrframe(cfi, pc, &frame) != 0)
            return;
        Dwarf_Op *cfa;
        size_t m;
        if (dwarf_frame_cfa(frame, &cfa, &m) == 0 && m == 1) {
            if (cfa[0].atom == DW_OP_bregx) {
                p->reg = (int)cfa[0].number;
                p->base_off = (int64_t)cfa[0].number2;
            } else if (cfa[0].atom >= DW_OP_breg0 && cfa[0].atom <= DW_OP_breg31) {
                p->reg = cfa[0].atom - DW_OP_breg0;
                p->base_off = (int64_t)cfa[0].number;
            }
        }
        free(frame);
    }
}

/* Where the concrete parameter DIE P (NULL: the instance has none) is at PC. */
static void param_loc(Dwarf_CFI *cfi, Dwarf_Die *p, Dwarf_Die *sub, uint64_t pc, int out_of_line,
                      struct race_param_loc *r)
{
    r->kind = RACE_LOC_NONE;
    r->reg = -1;
    if (!p) {
        r->note = "optimized out (no DIE in this instance)";
        return;
    }
    Dwarf_Attribute a;
    if (dwarf_attr(p, DW_AT_const_value, &a)) {
        Dwarf_Sword v;
        if (dwarf_formsdata(&a, &v) == 0) {
            r->kind = RACE_LOC_CONST;
            r->off = v;
        } else {
            r->note = "constant of a form not read";
        }
        return;
    }
    if (!dwarf_attr(p, DW_AT_location, &a)) {
        r->note = "optimized out (no location)";
        return;
    }
    Dwarf_Op *ops;
    size_t n;
    int got = dwarf_getlocation_addr(&a, pc, &ops, &n, 1);
    if (got < 0) {
        r->note = "location unreadable";
        return;
    }
    if (got == 0 || n == 0) {
        r->note = "not available at this pc";
        return;
    }
    uint8_t op = ops[0].atom;
    if (n == 1 && op >= DW_OP_reg0 && op <= DW_OP_reg31) {
        r->kind = RACE_LOC_REG;
        r->reg = op - DW_OP_reg0;
    } else if (n == 1 && op == DW_OP_regx) {
        r->kind = RACE_LOC_REG;
        r->reg = (int)ops[0].number;
    } else if (n == 1 && op >= DW_OP_breg0 && op <= DW_OP_breg31) {
        r->kind = RACE_LOC_MEM;
        r->reg = op - DW_OP_breg0;
        r->off = (int64_t)ops[0].number;
    } else if (n == 1 && op == DW_OP_bregx) {
        r->kind = RACE_LOC_MEM;
        r->reg = (int)ops[0].number;
        r->off = (int64_t)ops[0].number2;
    } else if (n == 1 && op == DW_OP_fbreg) {
        r->kind = RACE_LOC_FBREG;
        r->off = (int64_t)ops[0].number;
        frame_base(cfi, sub, pc, r);
        /* At the entry rsp + 8 is the CFA: stack-passed arguments lie there and above, a
         * slot below is the callee's own, which its prologue has not written yet. */
        if (out_of_line && !(r->reg == 7 && r->base_off + r->off >= 8))
            r->note = "a slot the prologue fills: at the entry read abi_reg";
    } else if (n == 2 && ops[1].atom == DW_OP_stack_value && op >= DW_OP_lit0 && op <= DW_OP_lit31) {
        r->kind = RACE_LOC_CONST;
        r->off = op - DW_OP_lit0;
    } else if (n == 2 && ops[1].atom == DW_OP_stack_value &&
               (op == DW_OP_const1u || op == DW_OP_const2u || op == DW_OP_const4u || op == DW_OP_const8u ||
                op == DW_OP_constu || op == DW_OP_const1s || op == DW_OP_const2s || op == DW_OP_const4s ||
                op == DW_OP_const8s || op == DW_OP_consts)) {
        r->kind = RACE_LOC_CONST;
        r->off = (int64_t)ops[0].number; /* libdw sign-extends the signed forms */
    } else if (n == 1 && op == DW_OP_implicit_value) {
        Dwarf_Block b;
        if (dwarf_getlocation_implicit_value(&a, &ops[0], &b) == 0 && b.length <= 8) {
            uint64_t v = 0;
            for (size_t i = b.length; i-- > 0;) /* little-endian target */
                v = v << 8 | b.data[i];
            r->kind = RACE_LOC_CONST;
            r->off = (int64_t)v;
        } else {
            r->note = "implicit value wider than 8 bytes";
        }
    } else if (n == 2 && ops[1].atom == DW_OP_stack_value &&
               (op == DW_OP_entry_value || op == DW_OP_GNU_entry_value)) {
        Dwarf_Attribute inner;
        Dwarf_Op *iops;
        size_t in;
        r->note = "computed from an entry value";
        if (dwarf_getlocation_attr(&a, &ops[0], &inner) == 0 && dwarf_getlocation(&inner, &iops, &in) == 0 &&
            in == 1) {
            if (iops[0].atom >= DW_OP_reg0 && iops[0].atom <= DW_OP_reg31)
                r->reg = iops[0].atom - DW_OP_reg0;
            else if (iops[0].atom == DW_OP_regx)
                r->reg = (int)iops[0].number;
            if (r->reg >= 0 && out_of_line) {
                r->kind = RACE_LOC_REG; /* this is that entry: the register still holds it */
                r->note = NULL;
            } else if (r->reg >= 0) {
                r->kind = RACE_LOC_ENTRY_VALUE;
                r->note = "the register's value at the enclosing function's entry";
            }
        }
    } else if (op == DW_OP_implicit_pointer || op == DW_OP_GNU_implicit_pointer) {
        r->note = "implicit pointer (the pointed-to object is optimized out)";
    } else if (n > 1 && (ops[1].atom == DW_OP_piece || ops[1].atom == DW_OP_bit_piece)) {
        r->note = "composite location (pieces)";
    } else {
        r->note = "location expression too complex";
    }
}

/* The formal parameters among PARENT's children, in order: the first MAX go to OUT;
 * returns how many there are. */
static uint32_t formal_params(Dwarf_Die *parent, Dwarf_Die *out, uint32_t max)
{
    Dwarf_Die child;
    uint32_t n = 0;
    if (dwarf_child(parent, &child) != 0)
        return 0;
    int guard = 0;
    do {
        if (dwarf_tag(&child) != DW_TAG_formal_parameter)
            continue;
        if (n < max)
            out[n] = child;
        n++;
    } while (++guard < 100000 && dwarf_siblingof(&child, &child) == 0);
    return n;
}

void dwarf_params(Dwarf_CFI *cfi, Dwarf_Die *die, Dwarf_Die *sub, struct race_instance *in)
{
    Dwarf_Die root, abs_param[RACE_MAX_PARAMS], conc[RACE_MAX_PARAMS];
    int have_conc[RACE_MAX_PARAMS] = {0};
    abstract_root(die, &root);
    uint32_t total = formal_params(&root, abs_param, RACE_MAX_PARAMS);
    if (root.addr == die->addr || total == 0) {
        /* Not an instance of an abstract DIE, or one whose origin lists no parameters:
         * its own children are the parameters, in order. */
        total = formal_params(die, abs_param, RACE_MAX_PARAMS);
        for (uint32_t i = 0; i < total && i < RACE_MAX_PARAMS; i++) {
            conc[i] = abs_param[i];
            have_conc[i] = 1;
        }
    } else {
        /* The abstract DIE gives the order and the names; the concrete one may leave out
         * a parameter that was optimized away, so match them by origin, not position. */
        Dwarf_Die mine[64];
        uint32_t n = formal_params(die, mine, 64);
        for (uint32_t j = 0; j < n && j < 64; j++) {
            Dwarf_Die origin;
            abstract_root(&mine[j], &origin);
            for (uint32_t i = 0; i < total && i < RACE_MAX_PARAMS; i++)
                if (abs_param[i].addr == origin.addr && !have_conc[i]) {
                    conc[i] = mine[j];
                    have_conc[i] = 1;
                    break;
                }
        }
    }
    in->nparams_total = total;
    in->nparams = total < RACE_MAX_PARAMS ? total : RACE_MAX_PARAMS;

    static const int abi_regs[6] = {5, 4, 1, 2, 8, 9}; /* rdi rsi rdx rcx r8 r9 */
    int next_abi = 0, abi_ok = !in->inlined && !in->clone;
    for (uint32_t i = 0; i < in->nparams; i++) {
        struct race_param_loc *p = &in->param[i];
        const char *nm = die_name(&abs_param[i]);
        copy_str(p->name, sizeof(p->name), nm ? nm : "?");
        param_loc(cfi, have_conc[i] ? &conc[i] : NULL, sub, in->entry, !in->inlined, p);
        p->abi_reg = -1;
        int cls = abi_ok ? int_class(&abs_param[i]) : -1;
        if (cls < 0)
            abi_ok = 0;
        else if (cls == 1 && next_abi < 6)
            p->abi_reg = abi_regs[next_abi++];
    }
}

