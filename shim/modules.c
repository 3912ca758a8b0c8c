/* modules.c - the module map in the trace (path, load bias, mapped range, build-id)
 * so stacks are symbolized offline. Written at start-up and again whenever a sampled
 * stack holds a pc outside every known module (a library loaded by dlopen since).
 * Owns the module log section and the in-memory range table. Never allocates; a
 * rescan is skipped, not waited for, when another thread is already doing one. */
#include <elf.h>
#include <link.h>
#include <string.h>
#include <unistd.h>

#include "build_id.h"
#include "shim.h"

#define MAX_RANGES 1024
static struct {
    uint64_t lo, hi;
    const char *name; /* the loader's string (lives as long as the object) or exe_path */
} ranges[MAX_RANGES];
static uint32_t nranges;
static struct race_mod_hdr *mh;
static uint8_t *log_base;
static uint64_t log_cap;
static uint32_t scan_gen;
static int scanning;
static char exe_path[448];

/* Consecutive frames mostly lie in the same object: start each search at the range
 * the previous frame matched. */
int race_modules_known(const uint64_t *pc, uint32_t n)
{
    uint32_t nr = __atomic_load_n(&nranges, __ATOMIC_ACQUIRE), last = 0;
    if (!nr)
        return n == 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t k = 0;
        while (k < nr) {
            uint32_t j = (last + k) % nr;
            if (pc[i] >= ranges[j].lo && pc[i] < ranges[j].hi) {
                last = j;
                break;
            }
            k++;
        }
        if (k == nr)
            return 0;
    }
    return 1;
}

/* "path+0xoffset" for a pc, for reports written where nothing can be symbolized. */
size_t race_modules_describe(uint64_t pc, char *buf, size_t cap)
{
    uint32_t nr = __atomic_load_n(&nranges, __ATOMIC_ACQUIRE);
    for (uint32_t j = 0; j < nr; j++) {
        if (pc >= ranges[j].lo && pc < ranges[j].hi) {
            char hex[24];
            size_t k = race_strlcpy(buf, ranges[j].name, cap);
            k += race_strlcpy(buf + k, "+0x", cap - k);
            race_fmt_hex(hex, pc - ranges[j].lo);
            return k + race_strlcpy(buf + k, hex, cap - k);
        }
    }
    return race_strlcpy(buf, "<unknown module>", cap);
}

static int have_range(uint64_t lo, uint64_t hi)
{
    for (uint32_t j = 0; j < nranges; j++)
        if (ranges[j].lo == lo && ranges[j].hi == hi)
            return 1;
    return 0;
}

size_t race_build_id(const struct dl_phdr_info *info, uint8_t *out)
{
    return race_note_build_id(info, out);
}

static int add_module(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    (void)arg;
    uint64_t lo = UINT64_MAX, hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uint64_t a = info->dlpi_addr + ph->p_vaddr;
        if (a < lo)
            lo = a;
        if (a + ph->p_memsz > hi)
            hi = a + ph->p_memsz;
    }
    if (hi <= lo || have_range(lo, hi) || nranges >= MAX_RANGES)
        return 0;
    const char *path = info->dlpi_name && info->dlpi_name[0] ? info->dlpi_name : exe_path;
    size_t plen = strlen(path);
    if (plen > 4000)
        plen = 4000;
    uint64_t need = (sizeof(struct race_mod) + plen + 1 + 7) & ~7ull;
    if (mh) {
        uint64_t off = __atomic_fetch_add(&mh->used, need, __ATOMIC_RELAXED);
        if (off + need <= log_cap) {
            struct race_mod *m = (struct race_mod *)(log_base + off);
            m->size = (uint32_t)need;
            m->base = info->dlpi_addr;
            m->lo = lo;
            m->hi = hi;
            m->ts = race_now();
            m->gen = scan_gen;
            m->path_len = (uint16_t)plen;
            m->build_id_len = (uint8_t)race_build_id(info, m->build_id);
            memcpy(m->path, path, plen);
            m->path[plen] = 0;
            __atomic_store_n(&m->commit, RACE_MOD_COMMIT, __ATOMIC_RELEASE);
            __atomic_fetch_add(&mh->count, 1, __ATOMIC_RELAXED);
        }
    }
    uintptr_t self = (uintptr_t)&race_stack_capture;
    if (self >= lo && self < hi)
        race_stacks_self(lo, hi);
    ranges[nranges].lo = lo;
    ranges[nranges].hi = hi;
    ranges[nranges].name = path;
    __atomic_store_n(&nranges, nranges + 1, __ATOMIC_RELEASE);
    return 0;
}

void race_modules_rescan(void)
{
    if (__atomic_exchange_n(&scanning, 1, __ATOMIC_ACQUIRE))
        return;
    dl_iterate_phdr(add_module, NULL);
    scan_gen++;
    __atomic_store_n(&scanning, 0, __ATOMIC_RELEASE);
}

/* A fresh trace (start-up or fork child) gets the whole map again. */
void race_modules_init(struct race_hdr *h)
{
    mh = (struct race_mod_hdr *)((uint8_t *)h + h->modules.off);
    log_base = (uint8_t *)(mh + 1);
    log_cap = h->modules.size - sizeof(*mh);
    race_strlcpy(exe_path, h->exe, sizeof(exe_path));
    __atomic_store_n(&nranges, 0, __ATOMIC_RELEASE);
    scan_gen = 0;
    race_modules_rescan();
}
