/* build_id.h - reads a loaded object's GNU build-id from its PT_NOTE segments, as the
 * loader mapped them. One definition for the shim (modules.c) and for tests/mktrace.c,
 * which writes module maps of its own. Reads memory only: no allocation, no lock, no
 * system call; a note that runs past its segment ends the search. */
#ifndef RACE_BUILD_ID_H
#define RACE_BUILD_ID_H

#include <elf.h>
#include <link.h>
#include <stdint.h>
#include <string.h>

/* Copies at most 32 bytes of the build-id to OUT; returns how many (0: none). */
static inline size_t race_note_build_id(const struct dl_phdr_info *info, uint8_t *out)
{
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE)
            continue;
        const uint8_t *p = (const uint8_t *)(info->dlpi_addr + ph->p_vaddr);
        const uint8_t *end = p + ph->p_memsz;
        while (p + sizeof(ElfW(Nhdr)) <= end) {
            const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)p;
            const uint8_t *name = p + sizeof(*nh);
            const uint8_t *desc = name + ((nh->n_namesz + 3) & ~3u);
            if (desc + nh->n_descsz > end)
                break;
            if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 && memcmp(name, "GNU", 4) == 0) {
                size_t n = nh->n_descsz < 32 ? nh->n_descsz : 32;
                memcpy(out, desc, n);
                return n;
            }
            p = desc + ((nh->n_descsz + 3) & ~3u);
        }
    }
    return 0;
}

#endif
