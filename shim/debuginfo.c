/* debuginfo.c - finds a loaded object's debug file the way gdb does, looks symbols up in
 * it, and lists every instance of a function (out-of-line and inlined) with where its
 * parameters live at the entry, reading ELF and DWARF only through libelf and libdw.
 * Start-up and after-dlopen only: it opens files and allocates. It must never crash or
 * loop on a corrupt file: every libelf/libdw answer is checked, every walk is bounded. */
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

#include "debuginfo.h"

/* ---- Internals: messages, files ---- */

/* Appends one reason to WHY, "; "-separated; a full buffer keeps what it has. */
__attribute__((format(printf, 3, 4)))
static void say(char *why, size_t cap, const char *fmt, ...)
{
    if (!why || !cap)
        return;
    size_t n = strnlen(why, cap);
    if (n + 3 >= cap)
        return;
    if (n) {
        memcpy(why + n, "; ", 3);
        n += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why + n, cap - n, fmt, ap);
    va_end(ap);
}

static void copy_str(char *dst, size_t cap, const char *src)
{
    if (!cap)
        return;
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = 0;
}

struct efile {
    int fd;
    Elf *elf;
    struct stat st;
};

static int efile_open(const char *path, struct efile *f, char *why, size_t cap)
{
    f->elf = NULL;
    f->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (f->fd < 0) {
        say(why, cap, "%s: %s", path, strerror(errno));
        return -1;
    }
    elf_version(EV_CURRENT);
    /* ELF_C_READ rather than a mapping: a file truncated under us then gives a read
     * error instead of SIGBUS. */
    if (fstat(f->fd, &f->st) < 0 || !(f->elf = elf_begin(f->fd, ELF_C_READ, NULL)) ||
        elf_kind(f->elf) != ELF_K_ELF) {
        if (f->elf)
            say(why, cap, "%s: not an ELF file", path);
        else
            say(why, cap, "%s: unreadable as ELF (%s)", path, elf_errmsg(-1));
        if (f->elf)
            elf_end(f->elf);
        close(f->fd);
        f->fd = -1;
        f->elf = NULL;
        return -1;
    }
    return 0;
}

static void efile_close(struct efile *f)
{
    if (f->elf)
        elf_end(f->elf);
    if (f->fd >= 0)
        close(f->fd);
    f->elf = NULL;
    f->fd = -1;
}

/* The first section of TYPE (0: any) named NAME (NULL: any) that has contents. */
static Elf_Scn *find_scn(Elf *elf, Elf64_Word type, const char *name)
{
    size_t shstrndx;
    if (elf_getshdrstrndx(elf, &shstrndx) < 0)
        return NULL;
    Elf_Scn *scn = NULL;
    GElf_Shdr sh;
    while ((scn = elf_nextscn(elf, scn)) != NULL) {
        if (!gelf_getshdr(scn, &sh) || sh.sh_type == SHT_NOBITS || sh.sh_size == 0)
            continue;
        if (type && sh.sh_type != type)
            continue;
        const char *s = name ? elf_strptr(elf, shstrndx, sh.sh_name) : NULL;
        if (!name || (s && strcmp(s, name) == 0))
            return scn;
    }
    return NULL;
}

static int has_dwarf(Elf *elf)
{
    return find_scn(elf, 0, ".debug_info") || find_scn(elf, 0, ".zdebug_info");
}

static int has_symtab(Elf *elf)
{
    return find_scn(elf, SHT_SYMTAB, NULL) != NULL;
}

/* The CRC .gnu_debuglink carries: CRC-32 (IEEE 802.3, reflected) of the whole file. */
static int file_crc32(int fd, uint32_t *out)
{
    uint32_t table[256];
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
        table[i] = c;
    }
    uint8_t buf[65536];
    uint32_t crc = 0xffffffffu;
    off_t pos = 0;
    for (;;) {
        ssize_t n = pread(fd, buf, sizeof(buf), pos);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        for (ssize_t i = 0; i < n; i++)
            crc = table[(crc ^ buf[i]) & 0xff] ^ (crc >> 8);
        pos += n;
    }
    *out = crc ^ 0xffffffffu;
    return 0;
}

static void hex(char *out, const uint8_t *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = 0;
}

/* ---- Public interface: the debug file ---- */

const char *race_debug_how_name(int how)
{
    switch (how) {
    case RACE_DEBUG_SELF: return "self";
    case RACE_DEBUG_HAND: return "hand";
    case RACE_DEBUG_LINK: return "debuglink";
    case RACE_DEBUG_BUILD_ID: return "build-id";
    case RACE_DEBUG_SYMTAB_ONLY: return "symtab-only";
    }
    return "none";
}

/* What a candidate debug file must match. */
struct want {
    const struct stat *obj;   /* never the object itself */
    const uint8_t *build_id;  /* NULL: not checked */
    size_t build_id_len;
    int check_crc;
    uint32_t crc;
};

static int candidate_ok(const char *path, const struct want *w, char *why, size_t cap)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return 0; /* absent: the common case, not worth a word each */
    if (st.st_dev == w->obj->st_dev && st.st_ino == w->obj->st_ino)
        return 0;
    struct efile f;
    if (efile_open(path, &f, why, cap) < 0)
        return 0;
    int ok = 1;
    if (!has_dwarf(f.elf) && !has_symtab(f.elf)) {
        say(why, cap, "%s: has neither .debug_info nor .symtab", path);
        ok = 0;
    }
    if (ok && w->build_id) {
        const void *id;
        ssize_t n = dwelf_elf_gnu_build_id(f.elf, &id);
        if (n <= 0 || (size_t)n != w->build_id_len || memcmp(id, w->build_id, (size_t)n) != 0) {
            say(why, cap, "%s: build-id does not match", path);
            ok = 0;
        }
    }
    if (ok && w->check_crc) {
        uint32_t crc;
        if (file_crc32(f.fd, &crc) < 0 || crc != w->crc) {
            say(why, cap, "%s: CRC32 %08x, .gnu_debuglink wants %08x", path, crc, w->crc);
            ok = 0;
        }
    }
    efile_close(&f);
    return ok;
}

/* Calls FN on each root of the ':'-separated list ROOTS. */
static int each_root(const char *roots, int (*fn)(const char *root, size_t len, void *arg), void *arg)
{
    for (const char *p = roots; *p;) {
        const char *e = strchr(p, ':');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len && fn(p, len, arg))
            return 1;
        if (!e)
            break;
        p = e + 1;
    }
    return 0;
}

struct search {
    const char *obj_dir, *link, *id_hex;
    struct want w;
    char *out;
    size_t cap;
    char *why;
    size_t why_cap;
    int found;
};

static int try_path(struct search *s, const char *path)
{
    if (!candidate_ok(path, &s->w, s->why, s->why_cap))
        return 0;
    if (strlen(path) >= s->cap) {
        say(s->why, s->why_cap, "%s: path longer than the caller's buffer", path);
        return 0;
    }
    copy_str(s->out, s->cap, path);
    return s->found = 1;
}

static int link_under_root(const char *root, size_t len, void *arg)
{
    struct search *s = arg;
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%.*s%s/%s", (int)len, root, s->obj_dir, s->link) >= (int)sizeof(path))
        return 0;
    return try_path(s, path);
}

static int build_id_under_root(const char *root, size_t len, void *arg)
{
    struct search *s = arg;
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%.*s/.build-id/%.2s/%s.debug", (int)len, root, s->id_hex,
                 s->id_hex + 2) >= (int)sizeof(path))
        return 0;
    return try_path(s, path);
}

int race_debug_file(const char *obj, const char *root, const char *const *hand_files,
                    char *out, size_t cap, char *why, size_t why_cap)
{
    if (why && why_cap)
        why[0] = 0;
    if (out && cap)
        out[0] = 0;
    if (!obj || !out || !cap)
        return -1;
    if (!root)
        root = RACE_DEBUG_ROOT;
    struct efile o;
    if (efile_open(obj, &o, why, why_cap) < 0)
        return -1;
    int how = -1;
    if (has_dwarf(o.elf)) {
        if (strlen(obj) < cap) {
            copy_str(out, cap, obj);
            how = RACE_DEBUG_SELF;
        } else {
            say(why, why_cap, "%s: path longer than the caller's buffer", obj);
        }
        goto done;
    }

    const void *id = NULL;
    ssize_t id_len = dwelf_elf_gnu_build_id(o.elf, &id);
    GElf_Word crc = 0;
    const char *link = dwelf_elf_gnu_debuglink(o.elf, &crc);
    char id_hex[2 * 64 + 1] = "";
    if (id_len > 1 && id_len <= 64)
        hex(id_hex, id, (size_t)id_len);
    else
        id_len = 0;

    struct search s = {.link = link, .id_hex = id_hex, .out = out, .cap = cap, .why = why, .why_cap = why_cap};
    s.w.obj = &o.st;

    /* By hand: the build-id decides; without one, the debuglink's CRC. */
    for (size_t i = 0; hand_files && hand_files[i] && !s.found; i++) {
        struct want w = {.obj = &o.st};
        if (id_len) {
            w.build_id = id;
            w.build_id_len = (size_t)id_len;
        } else if (link) {
            w.check_crc = 1;
            w.crc = crc;
        } else {
            say(why, why_cap, "%s: %s has neither a build-id nor a .gnu_debuglink to match it by",
                hand_files[i], obj);
            continue;
        }
        s.w = w;
        struct stat st;
        if (stat(hand_files[i], &st) < 0)
            say(why, why_cap, "%s (by hand): %s", hand_files[i], strerror(errno));
        else if (try_path(&s, hand_files[i]))
            how = RACE_DEBUG_HAND;
        else
            say(why, why_cap, "%s (by hand): not %s's debug file", hand_files[i], obj);
    }

    /* gdb looks next to the real file, not next to a symlink to it. */
    char real[PATH_MAX];
    if (!realpath(obj, real))
        copy_str(real, sizeof(real), obj);
    char *slash = strrchr(real, '/');
    char dir[PATH_MAX] = ".";
    if (slash && slash != real) {
        *slash = 0;
        copy_str(dir, sizeof(dir), real);
    } else if (slash) {
        dir[0] = 0; /* the object is in "/" */
    }
    s.obj_dir = dir;

    if (!s.found && link && *link && !strchr(link, '/')) {
        s.w = (struct want){.obj = &o.st, .check_crc = 1, .crc = crc};
        char path[PATH_MAX];
        if (snprintf(path, sizeof(path), "%s/%s", dir, link) < (int)sizeof(path) && try_path(&s, path))
            how = RACE_DEBUG_LINK;
        else if (snprintf(path, sizeof(path), "%s/.debug/%s", dir, link) < (int)sizeof(path) && try_path(&s, path))
            how = RACE_DEBUG_LINK;
        else if (each_root(root, link_under_root, &s))
            how = RACE_DEBUG_LINK;
        else
            say(why, why_cap, ".gnu_debuglink '%s' (CRC %08x) not in %s, %s/.debug or under %s%s", link,
                crc, dir, dir, root, dir);
    } else if (!s.found && link) {
        say(why, why_cap, ".gnu_debuglink '%s' is not a plain file name", link);
    } else if (!s.found) {
        say(why, why_cap, "no .gnu_debuglink");
    }

    if (!s.found && id_len) {
        s.w = (struct want){.obj = &o.st, .build_id = id, .build_id_len = (size_t)id_len};
        if (each_root(root, build_id_under_root, &s))
            how = RACE_DEBUG_BUILD_ID;
        else
            say(why, why_cap, "build-id %s not under %s/.build-id/", id_hex, root);
    } else if (!s.found) {
        say(why, why_cap, "no build-id");
    }

    if (!s.found) {
        if (has_symtab(o.elf) && strlen(obj) < cap) {
            copy_str(out, cap, obj);
            how = RACE_DEBUG_SYMTAB_ONLY;
            say(why, why_cap, "%s has .symtab but no DWARF", obj);
        } else {
            say(why, why_cap, "%s has no .symtab and no .debug_info (stripped), and no debug file was found",
                obj);
        }
    }
done:
    efile_close(&o);
    return how;
}

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

/* Definitions of NAME in ELF's table of TYPE: the first goes to OUT, the first MAX to ALL
 * (may be NULL); returns how many. */
static int table_lookup(Elf *elf, Elf64_Word type, const char *name, struct race_symbol *out,
                        struct race_symbol *all, int max)
{
    Elf_Scn *scn = NULL;
    GElf_Shdr sh;
    int count = 0;
    size_t entsize = gelf_fsize(elf, ELF_T_SYM, 1, EV_CURRENT);
    while (entsize && (scn = elf_nextscn(elf, scn)) != NULL) {
        if (!gelf_getshdr(scn, &sh) || sh.sh_type != type || sh.sh_entsize == 0)
            continue;
        Elf_Data *data = elf_getdata(scn, NULL);
        if (!data)
            continue;
        size_t n = data->d_size / entsize;
        for (size_t i = 1; i < n && i <= INT_MAX; i++) {
            GElf_Sym sym;
            if (!gelf_getsym(data, (int)i, &sym) || sym.st_shndx == SHN_UNDEF)
                continue;
            int t = GELF_ST_TYPE(sym.st_info);
            if (t == STT_SECTION || t == STT_FILE)
                continue;
            const char *s = elf_strptr(elf, sh.sh_link, sym.st_name);
            if (!s || strcmp(s, name) != 0)
                continue;
            struct race_symbol r = {
                .value = sym.st_value, .size = sym.st_size, .type = t,
                .bind = GELF_ST_BIND(sym.st_info), .tls = t == STT_TLS,
            };
            if (count == 0)
                *out = r;
            if (all && count < max)
                all[count] = r;
            count++;
        }
    }
    return count;
}

/* NAME in O's .dynsym, O's .symtab, then D's .symtab (D NULL: none); WHY says where not. */
static int lookup(struct efile *o, const char *obj, struct efile *d, const char *debug, const char *name,
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
static int func_symbols(struct efile *o, struct efile *d, const char *name, struct race_symbol *v, int max)
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
    if (efile_open(obj, &o, why, why_cap) < 0)
        return -1;
    int separate = debug && strcmp(debug, obj) != 0;
    if (separate && efile_open(debug, &d, why, why_cap) < 0) {
        efile_close(&o);
        return -1;
    }
    int found = lookup(&o, obj, separate ? &d : NULL, debug, name, out, why, why_cap);
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
    if (efile_open(obj, &o, why, why_cap) < 0)
        return -1;
    int separate = debug && strcmp(debug, obj) != 0;
    if (separate && efile_open(debug, &d, why, why_cap) < 0) {
        efile_close(&o);
        return -1;
    }
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
        if (lookup(&o, obj, separate ? &d : NULL, debug, name, &sym, sym_why, sizeof(sym_why)) == 1)
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
