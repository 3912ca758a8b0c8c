/* debuginfo_tool.c - prints what the debug-info readers (shim/probe/) find in a file,
 * one fact per line, for t_debuginfo.sh to compare with nm, objdump, addr2line and gdb:
 *   debuginfo_tool [--root DIRS] [--hand F[:F]] debug OBJ
 *   debuginfo_tool [--root DIRS] [--hand F[:F]] sym OBJ NAME
 *   debuginfo_tool [--root DIRS] [--hand F[:F]] [--inc DISP] inst OBJ NAME
 * Exit status 0 found, 1 not found, 2 usage or unreadable file.
 * link: shim/probe/elf_file.c shim/probe/debug_file.c shim/probe/elf_symbols.c
 * link: shim/probe/dwarf_instances.c shim/probe/dwarf_params.c shim/probe/code_scan_x86.c
 * link: -ldw -lelf -lZydis */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <elf.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "debuginfo.h"

static const char *reg_name(int reg)
{
    static char buf[16];
    const char *n = race_dwarf_reg_name(reg);
    if (n)
        return n;
    snprintf(buf, sizeof(buf), "dw%d", reg);
    return buf;
}

static void print_param(int i, int j, const struct race_param_loc *p)
{
    static const char *const kinds[] = {"none", "reg", "mem", "const", "fbreg", "entry_value"};
    printf("param %d %d %s kind=%s", i, j, p->name, p->kind >= 0 && p->kind <= 5 ? kinds[p->kind] : "?");
    switch (p->kind) {
    case RACE_LOC_REG:
    case RACE_LOC_ENTRY_VALUE:
        printf(" reg=%s", reg_name(p->reg));
        break;
    case RACE_LOC_MEM:
        printf(" reg=%s off=%" PRId64, reg_name(p->reg), p->off);
        break;
    case RACE_LOC_CONST:
        printf(" value=%" PRId64, p->off);
        break;
    case RACE_LOC_FBREG:
        printf(" off=%" PRId64, p->off);
        if (p->reg >= 0)
            printf(" base=%s%+" PRId64, reg_name(p->reg), p->base_off);
        break;
    }
    printf(" abi=%s", p->abi_reg >= 0 ? reg_name(p->abi_reg) : "-");
    if (p->note)
        printf(" note=\"%s\"", p->note);
    printf("\n");
}

/* The references++ of an instance: searched in the range holding the entry first. */
static void print_inc(const char *obj, int i, const struct race_instance *in, int disp)
{
    uint32_t order[RACE_MAX_RANGES] = {0}, n = 0;
    for (uint32_t k = 0; k < in->nranges; k++)
        if (in->entry >= in->range[k].lo && in->entry < in->range[k].hi)
            order[n++] = k;
    for (uint32_t k = 0; k < in->nranges; k++)
        if (!(in->entry >= in->range[k].lo && in->entry < in->range[k].hi))
            order[n++] = k;
    for (uint32_t k = 0; k < n; k++) {
        uint64_t lo = in->range[order[k]].lo, hi = in->range[order[k]].hi;
        if (hi - lo > (1u << 24))
            continue;
        uint8_t *code = malloc(hi - lo);
        int reg;
        uint64_t at;
        int found = code && race_elf_read(obj, lo, code, hi - lo) == 0 &&
                    race_find_mem_inc(code, lo, hi, disp, &reg, &at) == 1;
        free(code);
        if (found) {
            printf("inc %d 0x%" PRIx64 " reg=%s\n", i, at, reg_name(reg));
            return;
        }
    }
    printf("inc %d none\n", i);
}

int main(int argc, char **argv)
{
    const char *root = NULL;
    char *hand_list = NULL;
    const char *hand[16] = {NULL};
    int disp = 0, want_inc = 0, a = 1;
    for (; a + 1 < argc && strncmp(argv[a], "--", 2) == 0; a += 2) {
        if (strcmp(argv[a], "--root") == 0)
            root = argv[a + 1];
        else if (strcmp(argv[a], "--hand") == 0)
            hand_list = argv[a + 1];
        else if (strcmp(argv[a], "--inc") == 0)
            disp = atoi(argv[a + 1]), want_inc = 1;
        else
            break;
    }
    if (hand_list) {
        int n = 0;
        for (char *s = strtok(hand_list, ":"); s && n < 15; s = strtok(NULL, ":"))
            hand[n++] = s;
    }
    if (argc - a < 2) {
        fprintf(stderr, "usage: %s [--root DIRS] [--hand F[:F]] [--inc DISP] debug|sym|inst OBJ [NAME]\n",
                argv[0]);
        return 2;
    }
    const char *cmd = argv[a], *obj = argv[a + 1], *name = argc - a > 2 ? argv[a + 2] : NULL;
    char debug[4096], why[2048];
    int how = race_debug_file(obj, root, hand, debug, sizeof(debug), why, sizeof(why));
    if (strcmp(cmd, "debug") == 0) {
        printf("debug how=%s file=%s\n", race_debug_how_name(how), how > 0 ? debug : "-");
        if (why[0])
            printf("why: %s\n", why);
        return how > 0 ? 0 : 1;
    }
    if (!name)
        return 2;
    if (how < 0 && why[0])
        printf("debug-why: %s\n", why);
    const char *dbg = how > 0 ? debug : NULL;
    if (strcmp(cmd, "sym") == 0) {
        struct race_symbol s;
        int rc = race_symbol_lookup(obj, dbg, name, &s, why, sizeof(why));
        if (rc == 1)
            printf("symbol %s value=0x%" PRIx64 " size=%" PRIu64 " type=%s bind=%s table=%s count=%d tls=%d\n",
                   name,
                   s.value, s.size, race_sym_type_name(s.type), race_sym_bind_name(s.bind),
                   race_sym_table_name(s.table), s.count, s.tls);
        else
            printf("symbol %s none\nwhy: %s\n", name, why);
        return rc == 1 ? 0 : rc == 0 ? 1 : 2;
    }
    if (strcmp(cmd, "inst") == 0) {
        struct race_instance in[64];
        int n = race_function_instances(obj, dbg, name, in, 64, why, sizeof(why));
        printf("instances %d\n", n);
        if (why[0])
            printf("why: %s\n", why);
        for (int i = 0; i < n; i++) {
            static const char *const src[] = {"?", "symbol", "entry_pc", "low_pc", "first_range"};
            int from = in[i].entry_src >= 1 && in[i].entry_src <= 4 ? in[i].entry_src : 0;
            printf("instance %d entry=0x%" PRIx64 " from=%s inlined=%d clone=%d symbol=%s dwarf=%d into=%s"
                   " die=0x%" PRIx64 " nparams=%u ranges=",
                   i, in[i].entry, src[from], in[i].inlined, in[i].clone, in[i].symbol[0] ? in[i].symbol : "-",
                   in[i].dwarf, in[i].into[0] ? in[i].into : "-", in[i].die, in[i].nparams_total);
            for (uint32_t k = 0; k < in[i].nranges; k++)
                printf("%s0x%" PRIx64 "-0x%" PRIx64, k ? "," : "", in[i].range[k].lo, in[i].range[k].hi);
            printf("\nchain %d %s\n", i, in[i].chain);
            for (uint32_t j = 0; j < in[i].nparams; j++)
                print_param(i, (int)j, &in[i].param[j]);
            if (want_inc)
                print_inc(obj, i, &in[i], disp);
        }
        return n > 0 ? 0 : n == 0 ? 1 : 2;
    }
    return 2;
}
