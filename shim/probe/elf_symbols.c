/* elf_symbols.c - looks a name up in an object's .dynsym and .symtab and its debug
 * file's .symtab, and reads bytes at a link-time address from an object's file.
 * Start-up and after-dlopen only: opens files, allocates through libelf. Every libelf
 * answer is checked and every table walk bounded. */
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

/* ---- Public interface: symbols ---- */

const char *race_sym_type_name(int type)
{
    switch (type) {
    case STT_NOTYPE: return "NOTYPE";
    case STT_OBJECT: return "OBJECT";
    case STT_FUNC: return "FUNC";
    case STT_TLS: return "TLS";
    case STT_GNU_IFUNC: return "IFUNC";
    case STT_COMMON: return "COMMON";
    }
    return "OTHER";
}

const char *race_sym_bind_name(int bind)
{
    switch (bind) {
    case STB_LOCAL: return "LOCAL";
    case STB_GLOBAL: return "GLOBAL";
    case STB_WEAK: return "WEAK";
    case STB_GNU_UNIQUE: return "UNIQUE";
    }
    return "OTHER";
}

const char *race_sym_table_name(int table)
{
    switch (table) {
    case RACE_SYM_DYNSYM: return ".dynsym";
    case RACE_SYM_SYMTAB: return ".symtab";
    case RACE_SYM_DEBUG_SYMTAB: return "debug file's .symtab";
    }
    return "none";
}

/* The string at OFF of a string table, when it is NAME (LEN bytes and its NUL): the
 * bytes are compared in place, bounded by the table. */
static int str_is(const Elf_Data *strs, uint64_t off, const char *name, size_t len)
{
    if (off >= strs->d_size || strs->d_size - off <= len)
        return 0;
    const char *s = (const char *)strs->d_buf + off;
    return s[0] == name[0] && memcmp(s, name, len + 1) == 0;
}

static void found(struct race_symbol *out, struct race_symbol *all, int max, int *count, uint64_t value,
                  uint64_t size, unsigned info)
{
    int t = GELF_ST_TYPE(info);
    struct race_symbol r = {
        .value = value, .size = size, .type = t, .bind = GELF_ST_BIND(info), .tls = t == STT_TLS,
    };
    if (*count == 0)
        *out = r;
    if (all && *count < max)
        all[*count] = r;
    (*count)++;
}

static int wanted(uint16_t shndx, unsigned info)
{
    int t = GELF_ST_TYPE(info);
    return shndx != SHN_UNDEF && t != STT_SECTION && t != STT_FILE;
}

/* Definitions of NAME in ELF's table of TYPE: the first goes to OUT, the first MAX to ALL
 * (may be NULL); returns how many. A 64-bit table in memory order is walked as an array
 * with the names compared in place: libruby's .symtab has some 30,000 entries and the
 * constructor looks several names up in it. */
static int table_lookup(Elf *elf, Elf64_Word type, const char *name, struct race_symbol *out,
                        struct race_symbol *all, int max)
{
    Elf_Scn *scn = NULL;
    GElf_Shdr sh;
    int count = 0;
    size_t len = strlen(name);
    size_t entsize = gelf_fsize(elf, ELF_T_SYM, 1, EV_CURRENT);
    int native64 = gelf_getclass(elf) == ELFCLASS64;
    while (entsize && (scn = elf_nextscn(elf, scn)) != NULL) {
        if (!gelf_getshdr(scn, &sh) || sh.sh_type != type || sh.sh_entsize == 0)
            continue;
        Elf_Data *data = elf_getdata(scn, NULL);
        if (!data)
            continue;
        size_t n = data->d_size / entsize;
        Elf_Scn *str_scn = elf_getscn(elf, sh.sh_link);
        Elf_Data *strs = str_scn ? elf_getdata(str_scn, NULL) : NULL;
        if (native64 && data->d_type == ELF_T_SYM && data->d_buf && strs && strs->d_buf &&
            elf_getdata(str_scn, strs) == NULL) {
            const Elf64_Sym *sym = data->d_buf;
            for (size_t i = 1; i < n && i <= INT_MAX; i++)
                if (str_is(strs, sym[i].st_name, name, len) && wanted(sym[i].st_shndx, sym[i].st_info))
                    found(out, all, max, &count, sym[i].st_value, sym[i].st_size, sym[i].st_info);
            continue;
        }
        for (size_t i = 1; i < n && i <= INT_MAX; i++) {
            GElf_Sym sym;
            if (!gelf_getsym(data, (int)i, &sym) || !wanted(sym.st_shndx, sym.st_info))
                continue;
            const char *s = elf_strptr(elf, sh.sh_link, sym.st_name);
            if (s && strcmp(s, name) == 0)
                found(out, all, max, &count, sym.st_value, sym.st_size, sym.st_info);
        }
    }
    return count;
}

int elf_lookup(struct efile *o, const char *obj, struct efile *d, const char *debug, const char *name,
                      struct race_symbol *out, char *why, size_t why_cap)
{
    memset(out, 0, sizeof(*out));
    static const Elf64_Word types[2] = {SHT_DYNSYM, SHT_SYMTAB};
    for (int i = 0; i < 2; i++)
        if ((out->count = table_lookup(o->elf, types[i], name, out, NULL, 0)) > 0) {
            out->table = i == 0 ? RACE_SYM_DYNSYM : RACE_SYM_SYMTAB;
            return 1;
        }
    if (d && (out->count = table_lookup(d->elf, SHT_SYMTAB, name, out, NULL, 0)) > 0) {
        out->table = RACE_SYM_DEBUG_SYMTAB;
        return 1;
    }
    say(why, why_cap, "'%s' is not in %s's .dynsym%s", name, obj,
        has_symtab(o->elf) ? " or .symtab" : ", and it has no .symtab (stripped)");
    if (d)
        say(why, why_cap, "nor in %s's .symtab", debug);
    return 0;
}

/* Every function symbol named NAME in O's tables and D's .symtab, each address once: a
 * static function of a header can have an out-of-line copy in several files. */
int func_symbols(struct efile *o, struct efile *d, const char *name, struct race_symbol *v, int max)
{
    struct race_symbol first, found[64];
    struct { Elf *elf; Elf64_Word type; } tables[3] = {
        {o->elf, SHT_DYNSYM}, {o->elf, SHT_SYMTAB}, {d ? d->elf : NULL, SHT_SYMTAB},
    };
    int n = 0;
    for (int t = 0; t < 3; t++) {
        if (!tables[t].elf)
            continue;
        int got = table_lookup(tables[t].elf, tables[t].type, name, &first, found, 64);
        for (int i = 0; i < got && i < 64; i++) {
            if (found[i].type != STT_FUNC && found[i].type != STT_GNU_IFUNC)
                continue;
            int dup = 0;
            for (int k = 0; k < n; k++)
                dup |= v[k].value == found[i].value;
            if (!dup && n < max)
                v[n++] = found[i];
        }
    }
    return n;
}

int race_symbol_lookup(const char *obj, const char *debug, const char *name,
                       struct race_symbol *out, char *why, size_t why_cap)
{
    if (why && why_cap)
        why[0] = 0;
    memset(out, 0, sizeof(*out));
    struct efile o, d;
    int separate = efile_open_pair(obj, debug, &o, &d, why, why_cap);
    if (separate < 0)
        return -1;
    int found = elf_lookup(&o, obj, separate ? &d : NULL, debug, name, out, why, why_cap);
    if (separate)
        efile_close(&d);
    efile_close(&o);
    return found;
}

int race_elf_read(const char *obj, uint64_t addr, void *buf, size_t len)
{
    struct efile f;
    if (efile_open(obj, &f, NULL, 0) < 0)
        return -1;
    int rc = -1;
    Elf_Scn *scn = NULL;
    GElf_Shdr sh;
    while ((scn = elf_nextscn(f.elf, scn)) != NULL) {
        if (!gelf_getshdr(scn, &sh) || !(sh.sh_flags & SHF_ALLOC) || sh.sh_type == SHT_NOBITS)
            continue;
        if (addr < sh.sh_addr || addr - sh.sh_addr > sh.sh_size || len > sh.sh_size - (addr - sh.sh_addr))
            continue;
        Elf_Data *data = elf_rawdata(scn, NULL);
        if (data && data->d_buf && data->d_size >= (addr - sh.sh_addr) + len) {
            memcpy(buf, (const uint8_t *)data->d_buf + (addr - sh.sh_addr), len);
            rc = 0;
        }
        break;
    }
    efile_close(&f);
    return rc;
}
