/* arena_x86.c - writes code through /proc/self/mem and finds room for trampolines in
 * arenas mapped within rel32 reach of their targets. Installing only (serialized by the
 * engine's install lock): maps memory and opens files. Never makes a page writable and
 * executable at once, never frees an arena (a thread may be inside any trampoline). */
#include <errno.h>
#include <fcntl.h>
#include <linux/membarrier.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "engine_x86.h"

/* ---------------------------------------------------------------- Writing code */

/* /proc/self/mem writes through the kernel's forced access: a private read-only text
 * page gets its copy-on-write copy and the bytes without its protection ever changing,
 * so no other thread sees it non-executable and no page is ever W+X. The descriptor is
 * opened per install: one inherited across fork would write into the parent. */
int mem_open(void)
{
    return open("/proc/self/mem", O_RDWR | O_CLOEXEC);
}

int code_write(int fd, uintptr_t at, const void *buf, size_t n)
{
    const uint8_t *b = buf;
    while (n) {
        ssize_t k = pwrite(fd, b, n, (off_t)at);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        b += k;
        at += (size_t)k;
        n -= (size_t)k;
    }
    return 0;
}

/* Cross-modifying code: every other CPU must execute a serializing instruction before
 * it runs bytes we changed (Intel SDM 8.1.3). membarrier does that on all CPUs running
 * this process; without it, the signal handshake takes every thread through the kernel. */
void sync_core(void)
{
    if (membarrier_ok && syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE, 0, 0) == 0)
        return;
    (void)sync_threads(NULL);
}

/* ---------------------------------------------------------------- Arenas */

struct arena {
    uintptr_t base, used;
};
static struct arena arenas[ARENA_MAX];
static int narenas;

static int slot_reaches(uintptr_t a, size_t n, const uintptr_t *need, int nneed)
{
    for (int i = 0; i < nneed; i++)
        if (!reaches(a, need[i]) || !reaches(a + n, need[i]))
            return 0;
    return 1;
}

/* Arenas are filled with int3 while still RW, then made RX; trampolines are later
 * written into them through /proc/self/mem like any other code. */
static uintptr_t arena_map(uintptr_t at)
{
    int flags = MAP_PRIVATE | MAP_ANONYMOUS | (at ? MAP_FIXED_NOREPLACE : 0);
    void *p = mmap((void *)at, ARENA_SIZE, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (p == MAP_FAILED)
        return 0;
    if (at && (uintptr_t)p != at) { /* a kernel older than MAP_FIXED_NOREPLACE took it as a hint */
        munmap(p, ARENA_SIZE);
        return 0;
    }
    memset(p, 0xCC, ARENA_SIZE);
    if (mprotect(p, ARENA_SIZE, PROT_READ | PROT_EXEC)) {
        munmap(p, ARENA_SIZE);
        return 0;
    }
    return (uintptr_t)p;
}

struct gap_pick {
    uintptr_t t, best;
    uint64_t bestd;
    const uintptr_t *need;
    int nneed;
};

static void gap_consider(struct gap_pick *g, uint64_t lo, uint64_t hi)
{
    if (lo < GAP_FLOOR)
        lo = GAP_FLOOR;
    if (hi > GAP_TOP)
        hi = GAP_TOP;
    if (hi <= lo || hi - lo < ARENA_SIZE)
        return;
    uint64_t c = g->t < lo ? lo : g->t >= hi ? hi - ARENA_SIZE : (g->t & ~0xfffull);
    if (c + ARENA_SIZE > hi)
        c = hi - ARENA_SIZE;
    uint64_t d = c > g->t ? c + ARENA_SIZE - g->t : g->t - c;
    if (d < g->bestd && slot_reaches(c, ARENA_SIZE, g->need, g->nneed)) {
        g->best = c;
        g->bestd = d;
    }
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* The free range nearest to need[0] from which all of need[] is in rel32 reach, from
 * the gaps between /proc/self/maps lines (only each line's "lo-hi" is read, so no
 * line buffer is needed). */
static uintptr_t near_gap(const uintptr_t *need, int nneed)
{
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    struct gap_pick g = { need[0], 0, UINT64_MAX, need, nneed };
    uint64_t lo = 0, hi = 0, prev = 0;
    int state = 0; /* 0: lo, 1: hi, 2: rest of the line */
    char buf[4096];
    for (;;) {
        ssize_t k = read(fd, buf, sizeof(buf));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        for (ssize_t i = 0; i < k; i++) {
            char c = buf[i];
            if (state == 2) {
                if (c == '\n') {
                    gap_consider(&g, prev, lo);
                    if (hi > prev)
                        prev = hi;
                    lo = hi = 0;
                    state = 0;
                }
                continue;
            }
            if (c == '-' && state == 0) {
                state = 1;
                continue;
            }
            if (c == ' ' && state == 1) {
                state = 2;
                continue;
            }
            int v = hexval(c);
            if (v < 0) {
                state = 2;
                continue;
            }
            if (state == 0)
                lo = lo << 4 | (uint64_t)v;
            else
                hi = hi << 4 | (uint64_t)v;
        }
    }
    close(fd);
    gap_consider(&g, prev, GAP_TOP);
    return g.best;
}

/* Room for n bytes of code from which every address in need[] is within rel32 reach
 * (nneed 0: anywhere). Never freed: a thread may be inside any trampoline at any time. */
uintptr_t code_alloc(size_t n, const uintptr_t *need, int nneed)
{
    n = (n + 15) & ~(size_t)15;
    if (nneed && force_far)
        return 0;
    for (int i = 0; i < narenas; i++) {
        struct arena *a = &arenas[i];
        if (a->used + n <= ARENA_SIZE && slot_reaches(a->base + a->used, n, need, nneed)) {
            uintptr_t at = a->base + a->used;
            a->used += n;
            return at;
        }
    }
    if (narenas == ARENA_MAX)
        return 0;
    uintptr_t base = 0;
    if (nneed) {
        /* MAP_FIXED_NOREPLACE fails if another thread mapped the gap since we read maps */
        for (int tries = 0; tries < 3 && !base; tries++) {
            uintptr_t c = near_gap(need, nneed);
            if (!c)
                break;
            base = arena_map(c);
        }
    } else {
        base = arena_map(0);
    }
    if (!base)
        return 0;
    arenas[narenas].base = base;
    arenas[narenas].used = n;
    narenas++;
    return base;
}

/* Gives back the unused tail of the last allocation (sizes are reserved for the worst
 * case before the code is laid out). */
void code_trim(uintptr_t at, size_t reserved, size_t used)
{
    reserved = (reserved + 15) & ~(size_t)15;
    used = (used + 15) & ~(size_t)15;
    for (int i = 0; i < narenas; i++)
        if (arenas[i].base + arenas[i].used == at + reserved)
            arenas[i].used -= reserved - used;
}
