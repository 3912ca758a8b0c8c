/* symbols.c - walks every function symbol of every loaded object with its run-time
 * address range (RACE_GUARD_SITES resolves names against it; one symbol by name is
 * race_symbol_lookup, shim/probe/elf_symbols.c). Start-up and rescans only: libelf
 * allocates, so this must never run on a hook's fast path. */
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <string.h>
#include <link.h>
#include <unistd.h>

#include "shim.h"

struct each {
    int (*cb)(const char *, uint64_t, uint64_t, void *);
    void *arg;
};

static void each_in_file(const char *path, uint64_t bias, struct each *e)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    elf_version(EV_CURRENT);
    Elf *elf = elf_begin(fd, ELF_C_READ, NULL);
    Elf_Scn *scn = NULL;
    GElf_Shdr sh;
    while (elf && (scn = elf_nextscn(elf, scn)) != NULL) {
        if (!gelf_getshdr(scn, &sh) || (sh.sh_type != SHT_SYMTAB && sh.sh_type != SHT_DYNSYM) || !sh.sh_entsize)
            continue;
        Elf_Data *data = elf_getdata(scn, NULL);
        size_t n = data ? sh.sh_size / sh.sh_entsize : 0;
        for (size_t i = 0; i < n; i++) {
            GElf_Sym sym;
            if (!gelf_getsym(data, (int)i, &sym) || GELF_ST_TYPE(sym.st_info) != STT_FUNC ||
                sym.st_shndx == SHN_UNDEF || !sym.st_value)
                continue;
            const char *s = elf_strptr(elf, sh.sh_link, sym.st_name);
            if (s && e->cb(s, bias + sym.st_value, bias + sym.st_value + (sym.st_size ? sym.st_size : 1), e->arg))
                break;
        }
    }
    if (elf)
        elf_end(elf);
    close(fd);
}

static int each_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    char path[512];
    const char *name = info->dlpi_name;
    if (!name || !name[0]) {
        ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
        if (n <= 0)
            return 0;
        path[n] = 0;
        name = path;
    } else if (strstr(name, "linux-vdso")) {
        return 0;
    }
    each_in_file(name, info->dlpi_addr, arg);
    return 0;
}

/* Every function symbol of every loaded object, with its run-time address range. */
void race_symbols_each_function(int (*cb)(const char *name, uint64_t lo, uint64_t hi, void *arg), void *arg)
{
    struct each e = {cb, arg};
    dl_iterate_phdr(each_cb, &e);
}
