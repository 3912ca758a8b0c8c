/* debuginfo.h - where a loaded object's symbols and DWARF are, and what they say about
 * one function: its symbol, its out-of-line and inlined instances, and where each
 * instance's parameters live at its entry. Start-up and after-dlopen only: everything
 * here opens files and allocates, so nothing here may run on a hook's path or in a
 * signal handler. Addresses are link-time; the caller adds the load bias. */
#ifndef RACE_DEBUGINFO_H
#define RACE_DEBUGINFO_H

#include <stddef.h>
#include <stdint.h>

/* Debug roots searched when the caller gives none (gdb's debug-file-directory). */
#define RACE_DEBUG_ROOT "/usr/lib/debug"

/* debug_file.c */

/* How race_debug_file found the file that has the symbols and DWARF. */
enum race_debug_how {
    RACE_DEBUG_SELF = 1,    /* the object itself has .debug_info */
    RACE_DEBUG_HAND,        /* one of the files named by hand (RACE_SYMBOLS), same build-id */
    RACE_DEBUG_LINK,        /* .gnu_debuglink name, CRC32 checked */
    RACE_DEBUG_BUILD_ID,    /* ROOT/.build-id/xx/rest.debug, build-id checked */
    RACE_DEBUG_SYMTAB_ONLY, /* no DWARF anywhere, but the object has .symtab */
};
const char *race_debug_how_name(int how);

/* Finds the file holding OBJ's symbols and DWARF the way gdb does: OBJ itself when it has
 * .debug_info; else a hand file (NULL-terminated list, may be NULL) with OBJ's build-id;
 * else OBJ's .gnu_debuglink name in OBJ's directory, its .debug/ subdirectory and
 * ROOT/<OBJ's directory>/ (CRC32 checked); else ROOT/.build-id/xx/rest.debug (build-id
 * checked); else OBJ itself when it at least has .symtab. ROOT is a ':'-separated list of
 * roots, NULL for RACE_DEBUG_ROOT. Writes the path to OUT and returns enum race_debug_how,
 * or -1 with every place tried, and why each failed, in WHY (may be NULL). */
int race_debug_file(const char *obj, const char *root, const char *const *hand_files,
                    char *out, size_t cap, char *why, size_t why_cap);

/* elf_symbols.c: one ELF symbol. */
enum race_sym_table { RACE_SYM_DYNSYM = 1, RACE_SYM_SYMTAB, RACE_SYM_DEBUG_SYMTAB };
struct race_symbol {
    uint64_t value; /* link-time address; for STT_TLS the offset in the module's TLS block */
    uint64_t size;
    int type;       /* STT_FUNC, STT_OBJECT, STT_TLS, ... (elf.h values) */
    int bind;       /* STB_LOCAL, STB_GLOBAL, STB_WEAK */
    int tls;        /* type == STT_TLS: add the thread's TLS block of the module, not the bias */
    int table;      /* enum race_sym_table: where it was found */
    int count;      /* definitions of NAME in that table: > 1 for same-named locals of several files */
};
const char *race_sym_type_name(int type);
const char *race_sym_bind_name(int bind);
const char *race_sym_table_name(int table);

/* elf_file.c: race_elf_hold(1) keeps every ELF file the calling thread opens from now
 * on open (and its tables read), so that looking many names up in one file reads it
 * once; race_elf_hold(0) closes them. Start-up only. */
void race_elf_hold(int on);

/* NAME's definition in OBJ's .dynsym, OBJ's .symtab, then DEBUG's .symtab (DEBUG may be
 * NULL or equal OBJ). Returns 1 found, 0 not found, -1 unreadable; WHY says which. */
int race_symbol_lookup(const char *obj, const char *debug, const char *name,
                       struct race_symbol *out, char *why, size_t why_cap);

/* dwarf_params.c: where a parameter lives at an instance's entry, as its DWARF says. */
enum race_loc_kind {
    RACE_LOC_NONE = 0,        /* optimized out, or not available at this pc: see note */
    RACE_LOC_REG = 1,         /* the value is in DWARF register reg */
    RACE_LOC_MEM = 2,         /* stored in memory at address reg + off */
    RACE_LOC_CONST = 3,       /* the value is off */
    RACE_LOC_FBREG = 4,       /* stored at frame base + off; at the entry the frame base is
                               * reg + base_off when CFI says so (reg -1: unknown) */
    RACE_LOC_ENTRY_VALUE = 5, /* the value register reg held when the enclosing out-of-line
                               * function was entered: not readable at this pc */
};
struct race_param_loc {
    char name[32];
    int kind;         /* enum race_loc_kind */
    int reg;          /* DWARF register number (race_dwarf_reg_name), -1 if none */
    int64_t off;
    int64_t base_off; /* RACE_LOC_FBREG only */
    int abi_reg;      /* non-inlined, non-clone instance: the DWARF register the x86-64 SysV
                       * ABI passes it in at the entry, -1 if not an integer-class argument */
    const char *note; /* static string: why NONE, or a caveat; NULL if nothing to say */
};

/* dwarf_instances.c */

#define RACE_MAX_RANGES 8
#define RACE_MAX_PARAMS 6
/* Where an instance's entry address came from, in order of preference. */
enum race_entry_src {
    RACE_ENTRY_SYMBOL = 1,  /* out of line: NAME's ELF symbol, when it lies in the DWARF ranges */
    RACE_ENTRY_PC,          /* DW_AT_entry_pc, when it lies in the ranges (GCC may put it before) */
    RACE_ENTRY_LOW_PC,      /* DW_AT_low_pc */
    RACE_ENTRY_FIRST_RANGE, /* the first range DW_AT_ranges lists: the hot part, not the lowest */
};

/* An inlined copy can have several ways in: GCC may lay out a path that enters a later
 * range without passing the entry (Ruby 3.4.5's copy in vm_search_super_method is entered
 * at its entry only when kwarg is NULL). range[] has every way in. */
struct race_instance {
    uint64_t entry;        /* where the instance begins: see enum race_entry_src */
    int entry_src;         /* enum race_entry_src */
    uint32_t nranges;      /* stored in range[] */
    uint32_t ranges_total; /* in DWARF: more than RACE_MAX_RANGES are not stored */
    struct { uint64_t lo, hi; } range[RACE_MAX_RANGES]; /* [lo, hi) */
    int inlined;           /* a DW_TAG_inlined_subroutine */
    int clone;             /* out of line, and the symbol at its entry is not NAME but a
                            * .constprop/.isra/.part copy, whose calling convention may differ */
    char symbol[64];       /* out of line: the ELF function symbol at the entry ("" if none) */
    int dwarf;             /* 0: found from the symbol table alone, nothing known of its params */
    char into[64];         /* the out-of-line function whose code holds it ("" if none) */
    char chain[256];       /* "f <- inlined-into <- ... <- into" */
    uint32_t nparams;      /* formal parameters described in param[] (the first 6) */
    uint32_t nparams_total;
    struct race_param_loc param[RACE_MAX_PARAMS];
    uint64_t die;          /* its DIE's .debug_info offset in the debug file, for diagnostics */
};

/* Every instance of the function NAME in OBJ, whose DWARF is in DEBUG (race_debug_file's
 * answer; NULL or OBJ when OBJ has its own): the out-of-line one(s) first, then the inlined
 * ones by entry address. Returns how many were stored (<= max), 0 with WHY when there are
 * none, -1 with WHY when OBJ or DEBUG cannot be read. On success WHY holds a caveat or "". */
int race_function_instances(const char *obj, const char *debug, const char *name,
                            struct race_instance *out, int max, char *why, size_t why_cap);

/* elf_symbols.c: reads LEN bytes at link-time address ADDR from OBJ's file (for tests
 * and offline use; the shim reads its own memory). Returns 0, or -1 when ADDR is not in
 * a loaded section. */
int race_elf_read(const char *obj, uint64_t addr, void *buf, size_t len);

/* dwarf_cache.c (in shim/, not here: it reads race_opt): race_function_instances'
 * answers kept per (build-id, NAME) */

/* The cached answer: its count (0: known to have none; WHY filled), or -2 when there is
 * none to trust (not cached, stale, damaged, caching off). At most 32 instances. */
int race_dwarf_cache_get(const uint8_t *id, size_t id_len, const char *name, struct race_instance *out, int max,
                         char *why, size_t why_cap);
/* Keeps an answer (N >= 0) made with the debug file DEBUG (NULL or "" if none). */
void race_dwarf_cache_put(const uint8_t *id, size_t id_len, const char *name, const struct race_instance *in,
                          int n, const char *debug, const char *why);

/* code_scan_x86.c: x86-64 only */

/* Name of a DWARF register ("rcx"), or NULL. */
const char *race_dwarf_reg_name(int reg);
/* Index into ucontext_t's uc_mcontext.gregs[] (REG_RCX...) of a DWARF register, or -1. */
int race_dwarf_to_greg(int reg);

/* Looks in the code CODE, whose first byte is at address ADDR, up to END, for the first
 * instruction that adds 1 to the memory at [reg + DISP] (add $1 / inc / sub $-1, with or
 * without lock). Sets *BASE_REG (DWARF number) and *INSN_ADDR; returns 1 found, 0 not. */
int race_find_mem_inc(const uint8_t *code, uint64_t addr, uint64_t end, int disp,
                      int *base_reg, uint64_t *insn_addr);

/* Looking back from the instruction at AT (CODE holds [ADDR, AT)), for the last one
 * that writes DWARF register REG: when it is a 64-bit load of [base + DISP], sets
 * *BASE_REG and returns 1, with *INSN_ADDR the first instruction of the straight run
 * before it that reads memory through base (base holds the same value from there on);
 * 0 when it is anything else, when a call, return or jump comes first, or when the
 * instructions before AT cannot be told apart. */
int race_find_load_def(const uint8_t *code, uint64_t addr, uint64_t at, int reg, int disp, int *base_reg,
                       uint64_t *insn_addr);

#endif
