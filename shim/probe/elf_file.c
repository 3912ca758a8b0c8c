/* elf_file.c - opens an ELF file for the debug-info readers (through libelf, read rather
 * than mapped, so a file truncated under us gives an error instead of SIGBUS), finds
 * its sections, and collects the reasons given back to callers. Start-up only: opens
 * files and allocates through libelf; never trusts a file to be well formed. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "elf_file.h"
/* ---- Internals: messages, files ---- */

void say(char *why, size_t cap, const char *fmt, ...)
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

void copy_str(char *dst, size_t cap, const char *src)
{
    if (!cap)
        return;
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = 0;
}

/* While the constructor looks names up (the Ruby layout, the watched functions), the
 * files it opens stay open: libruby's tables are read and indexed by libelf once
 * instead of once per name, and freed once. Only the thread that asked is served from
 * it; race_elf_hold(0) closes them. */
#define HELD_MAX 8
static struct {
    char path[512];
    struct efile f;
} held[HELD_MAX];
static int nheld;
static pid_t held_tid;

void race_elf_hold(int on)
{
    if (on) {
        held_tid = gettid();
        return;
    }
    held_tid = 0;
    for (int i = 0; i < nheld; i++) {
        if (held[i].f.elf)
            elf_end(held[i].f.elf);
        close(held[i].f.fd);
    }
    nheld = 0;
}

static int held_here(void)
{
    return held_tid && held_tid == gettid();
}

static int efile_open_file(const char *path, struct efile *f, char *why, size_t cap)
{
    f->elf = NULL;
    f->held = 0;
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

int efile_open(const char *path, struct efile *f, char *why, size_t cap)
{
    if (!held_here())
        return efile_open_file(path, f, why, cap);
    for (int i = 0; i < nheld; i++)
        if (strcmp(held[i].path, path) == 0) {
            *f = held[i].f;
            f->held = 1;
            return 0;
        }
    if (efile_open_file(path, f, why, cap) < 0)
        return -1;
    if (nheld < HELD_MAX && strlen(path) < sizeof(held[0].path)) {
        copy_str(held[nheld].path, sizeof(held[0].path), path);
        held[nheld++].f = *f;
        f->held = 1;
    }
    return 0;
}

void efile_close(struct efile *f)
{
    if (f->held) {
        f->elf = NULL;
        f->fd = -1;
        return;
    }
    if (f->elf)
        elf_end(f->elf);
    if (f->fd >= 0)
        close(f->fd);
    f->elf = NULL;
    f->fd = -1;
}

int efile_open_pair(const char *obj, const char *debug, struct efile *o, struct efile *d, char *why, size_t cap)
{
    if (efile_open(obj, o, why, cap) < 0)
        return -1;
    int separate = debug && strcmp(debug, obj) != 0;
    if (separate && efile_open(debug, d, why, cap) < 0) {
        efile_close(o);
        return -1;
    }
    return separate;
}

Elf_Scn *find_scn(Elf *elf, Elf64_Word type, const char *name)
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

int has_dwarf(Elf *elf)
{
    return find_scn(elf, 0, ".debug_info") || find_scn(elf, 0, ".zdebug_info");
}

int has_symtab(Elf *elf)
{
    return find_scn(elf, SHT_SYMTAB, NULL) != NULL;
}
