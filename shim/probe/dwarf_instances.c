/* dwarf_instances.c - lists every instance of a function, out-of-line and inlined, from
 * its DWARF (libdw), with its entry, its ranges and the chain it was inlined through;
 * dwarf_params.c adds where each parameter lives at the entry. Start-up and
 * after-dlopen only: allocates.
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
    dwarf_params(w->cfi, die, sub, &in);

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
