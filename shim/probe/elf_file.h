/* elf_file.h - what the debug-info readers (debug_file.c, elf_symbols.c,
 * dwarf_instances.c, dwarf_params.c) share: an ELF file opened through libelf, section
 * lookups, the "; "-separated reasons they give back, and the calls that cross between
 * them. Private to those files; start-up only. */
#ifndef RACE_ELF_FILE_H
#define RACE_ELF_FILE_H

#include <elfutils/libdw.h>
#include <gelf.h>
#include <libelf.h>
#include <stddef.h>
#include <sys/stat.h>

#include "debuginfo.h"

#define HIDDEN __attribute__((visibility("hidden")))

/* Appends one reason to WHY, "; "-separated; a full buffer keeps what it has. */
HIDDEN __attribute__((format(printf, 3, 4))) void say(char *why, size_t cap, const char *fmt, ...);
HIDDEN void copy_str(char *dst, size_t cap, const char *src);

struct efile {
    int fd;
    Elf *elf;
    struct stat st;
    int held; /* one of race_elf_hold's: efile_close leaves it open */
};
HIDDEN int efile_open(const char *path, struct efile *f, char *why, size_t cap);
HIDDEN void efile_close(struct efile *f);
/* Opens OBJ into O and, when DEBUG names another file, DEBUG into D: returns 1 if D was
 * opened, 0 if DEBUG is OBJ or NULL, -1 (WHY said why, nothing left open) on failure. */
HIDDEN int efile_open_pair(const char *obj, const char *debug, struct efile *o, struct efile *d, char *why,
                           size_t cap);

/* The first section of TYPE (0: any) named NAME (NULL: any) that has contents. */
HIDDEN Elf_Scn *find_scn(Elf *elf, Elf64_Word type, const char *name);
HIDDEN int has_dwarf(Elf *elf);
HIDDEN int has_symtab(Elf *elf);

/* elf_symbols.c: NAME in O's .dynsym, O's .symtab, then D's .symtab (D NULL: none); WHY
 * says where not. */
HIDDEN int elf_lookup(struct efile *o, const char *obj, struct efile *d, const char *debug, const char *name,
                      struct race_symbol *out, char *why, size_t why_cap);
/* Every function symbol named NAME in O's tables and D's .symtab, each address once. */
HIDDEN int func_symbols(struct efile *o, struct efile *d, const char *name, struct race_symbol *v, int max);

/* dwarf_params.c: NAME of DIE, through abstract_origin and specification (bounded). */
HIDDEN const char *die_name(Dwarf_Die *die);
/* Fills IN's parameters: names, locations at IN->entry, SysV argument registers. SUB is
 * the subprogram whose frame base applies (NULL: none known); CFI may be NULL. */
HIDDEN void dwarf_params(Dwarf_CFI *cfi, Dwarf_Die *die, Dwarf_Die *sub, struct race_instance *in);

#endif
