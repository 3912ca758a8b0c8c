/* dwarf_instances.c - lists every instance of a function, out-of-line and inlined, from
 * its DWARF (libdw), with its entry, its ranges, the chain it was inlined through and
 * where each parameter lives at the entry. Start-up and after-dlopen only: allocates.
 * It must never crash or loop on a corrupt file: every libdw answer is checked, every
 * walk and reference chain is bounded. */
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

/* ---- Internals: DWARF ---- */

#define MAX_DEPTH 256 /* DIE nesting walked: Ruby 3.4.5 at -O3 nests inlined blocks past 64 */
#define MAX_HOPS 16   /* abstract_origin/specification hops followed */

struct inst_list {
    struct race_instance *v;
    size_t n, cap;
};

struct walk {
    const char *name;
    struct race_symbol syms[64]; /* NAME's function symbols: entries of its real out-of-line copies */
    int nsyms;
    Elf *tables[2];              /* the object and the debug file (NULL if the same) */
    Dwarf_CFI *cfi;
    struct inst_list list;
    int oom, too_deep;
    Dwarf_Die stack[MAX_DEPTH];
};

/* NAME of DIE, through abstract_origin and specification: what dwarf_attr_integrate does,
 * but bounded by our own hop count so a reference cycle cannot hold us. */
static const char *die_name(Dwarf_Die *die)
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
static void frame_base(struct walk *w, Dwarf_Die *sub, uint64_t pc, struct race_param_loc *p)
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
    } else if (op == DW_OP_call_frame_cfa && w->cfi) {
        Dwarf_Frame *frame;
        if (dwarf_cfi_addrframe(w->cfi, pc, &frame) != 0)
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
static void param_loc(struct walk *w, Dwarf_Die *p, Dwarf_Die *sub, uint64_t pc, int out_of_line,
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
        frame_base(w, sub, pc, r);
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

static void params(struct walk *w, Dwarf_Die *die, Dwarf_Die *sub, struct race_instance *in)
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
        param_loc(w, have_conc[i] ? &conc[i] : NULL, sub, in->entry, !in->inlined, p);
        p->abi_reg = -1;
        int cls = abi_ok ? int_class(&abs_param[i]) : -1;
        if (cls < 0)
            abi_ok = 0;
        else if (cls == 1 && next_abi < 6)
            p->abi_reg = abi_regs[next_abi++];
    }
}

static void append(char *buf, size_t cap, const char *s)
{
    size_t n = strnlen(buf, cap);
    if (n + 1 < cap)
        copy_str(buf + n, cap - n, s);
}

/* The function symbol at ADDR into OUT, NAME's own when several share the address. */
static void symbol_at(struct walk *w, uint64_t addr, char *out, size_t cap)
{
    out[0] = 0;
    for (int t = 0; t < 2 && w->tables[t]; t++) {
        Elf_Scn *scn = NULL;
        GElf_Shdr sh;
        size_t entsize = gelf_fsize(w->tables[t], ELF_T_SYM, 1, EV_CURRENT);
        while (entsize && (scn = elf_nextscn(w->tables[t], scn)) != NULL) {
            if (!gelf_getshdr(scn, &sh) || (sh.sh_type != SHT_SYMTAB && sh.sh_type != SHT_DYNSYM))
                continue;
            Elf_Data *data = elf_getdata(scn, NULL);
            size_t n = data ? data->d_size / entsize : 0;
            for (size_t i = 1; i < n && i <= INT_MAX; i++) {
                GElf_Sym sym;
                if (!gelf_getsym(data, (int)i, &sym) || sym.st_value != addr || sym.st_shndx == SHN_UNDEF ||
                    (GELF_ST_TYPE(sym.st_info) != STT_FUNC && GELF_ST_TYPE(sym.st_info) != STT_GNU_IFUNC))
                    continue;
                const char *nm = elf_strptr(w->tables[t], sh.sh_link, sym.st_name);
                if (nm && (!out[0] || strcmp(nm, w->name) == 0))
                    copy_str(out, cap, nm);
                if (nm && strcmp(nm, w->name) == 0)
                    return;
            }
        }
    }
}

static void add_instance(struct walk *w, int depth, int inlined)
{
    Dwarf_Die *die = &w->stack[depth];
    struct race_instance in;
    memset(&in, 0, sizeof(in));
    in.inlined = inlined;
    in.dwarf = 1;
    in.die = dwarf_dieoffset(die);

    Dwarf_Addr base, lo, hi, low_pc;
    ptrdiff_t off = 0;
    while ((off = dwarf_ranges(die, off, &base, &lo, &hi)) > 0 && in.ranges_total < 65536) {
        if (hi <= lo)
            continue;
        if (in.ranges_total < RACE_MAX_RANGES) {
            in.range[in.nranges].lo = lo;
            in.range[in.nranges].hi = hi;
            in.nranges++;
        }
        in.ranges_total++;
    }
    if (in.ranges_total == 0)
        return; /* no code after all */

    int have_low = dwarf_lowpc(die, &low_pc) == 0, sym = -1, have_epc = 0;
    for (int i = 0; !inlined && i < w->nsyms && sym < 0; i++)
        for (uint32_t k = 0; k < in.nranges; k++)
            if (w->syms[i].value >= in.range[k].lo && w->syms[i].value < in.range[k].hi)
                sym = i;
    Dwarf_Attribute a;
    Dwarf_Addr epc = 0;
    Dwarf_Word delta;
    if (dwarf_attr(die, DW_AT_entry_pc, &a)) {
        if (dwarf_formaddr(&a, &epc) == 0)
            have_epc = 1;
        else if (dwarf_formudata(&a, &delta) == 0) /* DWARF 5: an offset from the base */
            epc = (have_low ? low_pc : in.range[0].lo) + delta, have_epc = 1;
    }
    /* A function split into hot and cold parts has ranges and no low_pc, and its cold
     * part usually lies lower: its symbol is where it starts. GCC may put an inlined
     * copy's DW_AT_entry_pc before its first instruction, in the caller's own code; gdb
     * then takes the first range listed, which is the hot part, and so do we. */
    if (sym >= 0) {
        in.entry = w->syms[sym].value;
        in.entry_src = RACE_ENTRY_SYMBOL;
    } else if (have_epc && dwarf_haspc(die, epc) == 1) {
        in.entry = epc;
        in.entry_src = RACE_ENTRY_PC;
    } else if (have_low) {
        in.entry = low_pc;
        in.entry_src = RACE_ENTRY_LOW_PC;
    } else {
        in.entry = in.range[0].lo;
        in.entry_src = RACE_ENTRY_FIRST_RANGE;
    }
    if (!inlined)
        symbol_at(w, in.entry, in.symbol, sizeof(in.symbol));
    in.clone = in.symbol[0] && strcmp(in.symbol, w->name) != 0;
    const char *self = die_name(die);
    copy_str(in.chain, sizeof(in.chain), self ? self : w->name);
    Dwarf_Die *sub = inlined ? NULL : die;
    for (int i = depth - 1; inlined && i >= 0; i--) {
        int tag = dwarf_tag(&w->stack[i]);
        if (tag != DW_TAG_inlined_subroutine && tag != DW_TAG_subprogram)
            continue;
        const char *nm = die_name(&w->stack[i]);
        append(in.chain, sizeof(in.chain), " <- ");
        append(in.chain, sizeof(in.chain), nm ? nm : "?");
        if (tag == DW_TAG_subprogram) {
            copy_str(in.into, sizeof(in.into), nm ? nm : "?");
            sub = &w->stack[i];
            break;
        }
    }
    params(w, die, sub, &in);

    if (w->list.n == w->list.cap) {
        size_t cap = w->list.cap ? 2 * w->list.cap : 8;
        struct race_instance *v = realloc(w->list.v, cap * sizeof(*v));
        if (!v) {
            w->oom = 1;
            return;
        }
        w->list.v = v;
        w->list.cap = cap;
    }
    w->list.v[w->list.n++] = in;
}

/* Only these can hold code instances below them; types and variables are skipped whole. */
static int may_hold_code(int tag)
{
    return tag == DW_TAG_subprogram || tag == DW_TAG_inlined_subroutine || tag == DW_TAG_lexical_block ||
           tag == DW_TAG_namespace || tag == DW_TAG_module || tag == DW_TAG_try_block ||
           tag == DW_TAG_catch_block || tag == DW_TAG_structure_type || tag == DW_TAG_class_type;
}

static void visit(struct walk *w, int depth)
{
    Dwarf_Die *die = &w->stack[depth];
    int tag = dwarf_tag(die);
    if (tag != DW_TAG_subprogram && tag != DW_TAG_inlined_subroutine)
        return;
    if (!dwarf_hasattr(die, DW_AT_low_pc) && !dwarf_hasattr(die, DW_AT_ranges))
        return;
    const char *nm = die_name(die);
    if (nm && strcmp(nm, w->name) == 0)
        add_instance(w, depth, tag == DW_TAG_inlined_subroutine);
}

static void walk_unit(struct walk *w, Dwarf_Die *cudie)
{
    int depth = 0;
    if (dwarf_child(cudie, &w->stack[0]) != 0)
        return;
    for (;;) {
        visit(w, depth);
        if (w->oom)
            return;
        Dwarf_Die *d = &w->stack[depth];
        if (may_hold_code(dwarf_tag(d)) && dwarf_haschildren(d) > 0) {
            if (depth + 1 >= MAX_DEPTH)
                w->too_deep = 1;
            else if (dwarf_child(d, &w->stack[depth + 1]) == 0) {
                depth++;
                continue;
            }
        }
        /* Next sibling, or climb until there is one; an error ends that level. */
        while (dwarf_siblingof(&w->stack[depth], &w->stack[depth]) != 0)
            if (depth-- == 0)
                return;
    }
}

static int by_kind_then_entry(const void *pa, const void *pb)
{
    const struct race_instance *a = pa, *b = pb;
    if (a->inlined != b->inlined)
        return a->inlined - b->inlined;
    if (a->clone != b->clone)
        return a->clone - b->clone;
    return a->entry < b->entry ? -1 : a->entry > b->entry;
}

/* ---- Public interface: instances ---- */

int race_function_instances(const char *obj, const char *debug, const char *name,
                            struct race_instance *out, int max, char *why, size_t why_cap)
{
    if (why && why_cap)
        why[0] = 0;
    if (!obj || !name || !*name || max < 0 || (max > 0 && !out))
        return -1;
    struct efile o, d;
    int separate = efile_open_pair(obj, debug, &o, &d, why, why_cap);
    if (separate < 0)
        return -1;
    if (!separate)
        d = o;

    struct walk *w = calloc(1, sizeof(*w));
    if (!w) {
        say(why, why_cap, "out of memory");
        efile_close(&o);
        if (separate)
            efile_close(&d);
        return -1;
    }
    w->name = name;
    w->nsyms = func_symbols(&o, separate ? &d : NULL, name, w->syms, 64);
    w->tables[0] = o.elf;
    w->tables[1] = separate ? d.elf : NULL;
    Dwarf *dw = has_dwarf(d.elf) ? dwarf_begin_elf(d.elf, DWARF_C_READ, NULL) : NULL;
    /* Call-frame info comes from the object's .eh_frame: a separate debug file keeps
     * only a NOBITS placeholder of it. */
    Dwarf_CFI *eh = dwarf_getcfi_elf(o.elf);
    w->cfi = eh ? eh : dw ? dwarf_getcfi(dw) : NULL;

    /* Without link-time optimization a function is inlined only inside the unit that
     * defines it, so when it has out-of-line symbols only their units are walked: that
     * is milliseconds instead of a third of a second for all of libruby, at every start
     * of the process. A function with no symbol at all (inlined everywhere) or units
     * that .debug_aranges cannot name mean the walk over every unit. */
    Dwarf_Off done_units[64];
    int ndone = 0, narrow = dw && w->nsyms > 0;
    for (int k = 0; narrow && k < w->nsyms && k < 64; k++) {
        Dwarf_Die cudie;
        if (!dwarf_addrdie(dw, w->syms[k].value, &cudie)) {
            narrow = 0;
            break;
        }
        Dwarf_Off off = dwarf_dieoffset(&cudie);
        int seen = 0;
        for (int j = 0; j < ndone; j++)
            seen |= done_units[j] == off;
        if (!seen) {
            done_units[ndone++] = off;
            walk_unit(w, &cudie);
        }
    }
    if (dw && !narrow) {
        w->list.n = 0; /* a narrow walk that gave up part way starts again in full */
        Dwarf_CU *cu = NULL;
        Dwarf_Half version;
        uint8_t unit_type;
        Dwarf_Die cudie;
        for (int units = 0; units < 10000000 && !w->oom &&
                            dwarf_get_units(dw, cu, &cu, &version, &unit_type, &cudie, NULL) == 0;
             units++)
            if (unit_type == DW_UT_compile || unit_type == DW_UT_partial || unit_type == DW_UT_skeleton)
                walk_unit(w, &cudie);
    } else if (dw) {
        /* walked above */
    } else if (has_dwarf(d.elf)) {
        say(why, why_cap, "%s: DWARF unreadable (%s): parameters and inlined copies unknown",
            separate ? debug : obj, dwarf_errmsg(-1));
    } else {
        say(why, why_cap, "%s has no DWARF: parameters and inlined copies unknown", separate ? debug : obj);
    }

    int rc = 0;
    if (w->oom) {
        say(why, why_cap, "out of memory");
        rc = -1;
        goto done;
    }
    /* A function symbol the DWARF does not describe (no -g for its file) still gives an
     * out-of-line instance, without parameters. */
    for (int k = 0; k < w->nsyms; k++) {
        int seen = 0;
        for (size_t i = 0; i < w->list.n; i++)
            seen |= !w->list.v[i].inlined && w->list.v[i].entry == w->syms[k].value;
        if (seen)
            continue;
        struct race_instance in;
        memset(&in, 0, sizeof(in));
        in.entry = w->syms[k].value;
        in.entry_src = RACE_ENTRY_SYMBOL;
        copy_str(in.symbol, sizeof(in.symbol), name);
        in.nranges = in.ranges_total = 1;
        in.range[0].lo = w->syms[k].value;
        in.range[0].hi = w->syms[k].value + (w->syms[k].size ? w->syms[k].size : 1);
        copy_str(in.chain, sizeof(in.chain), name);
        struct race_instance *v = realloc(w->list.v, (w->list.n + 1) * sizeof(*v));
        if (!v) {
            say(why, why_cap, "out of memory");
            rc = -1;
            goto done;
        }
        w->list.v = v;
        w->list.v[w->list.n++] = in;
        if (dw)
            say(why, why_cap, "no DWARF for the copy at 0x%" PRIx64, in.entry);
    }
    if (w->list.n == 0) {
        struct race_symbol sym;
        char sym_why[512] = "";
        if (elf_lookup(&o, obj, separate ? &d : NULL, debug, name, &sym, sym_why, sizeof(sym_why)) == 1)
            say(why, why_cap, "'%s' is a %s symbol, not a function", name, race_sym_type_name(sym.type));
        else
            say(why, why_cap, "%s", sym_why);
        if (dw)
            say(why, why_cap, "no DW_TAG_subprogram or inlined copy of '%s' in %s's DWARF", name,
                separate ? debug : obj);
        goto done;
    }
    qsort(w->list.v, w->list.n, sizeof(*w->list.v), by_kind_then_entry);
    rc = w->list.n < (size_t)max ? (int)w->list.n : max;
    if (rc)
        memcpy(out, w->list.v, (size_t)rc * sizeof(*out));
    if (w->list.n > (size_t)max)
        say(why, why_cap, "%zu instances, only %d stored", w->list.n, max);
    if (w->too_deep)
        say(why, why_cap, "DIEs nested deeper than %d levels were skipped", MAX_DEPTH);
done:
    free(w->list.v);
    free(w);
    if (eh)
        dwarf_cfi_end(eh);
    if (dw)
        dwarf_end(dw);
    if (separate)
        efile_close(&d);
    efile_close(&o);
    return rc;
}
