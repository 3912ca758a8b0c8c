/* bootstrap.c - a static bump pool that serves allocations made before the real
 * allocator is resolved (dlsym itself calls calloc). Owns that pool only. Lock-free
 * (one fetch_add); never freed, never reused; never calls anything. */
#include <stdint.h>

#include "shim.h"

uint8_t race_boot_pool[RACE_BOOT_SIZE] __attribute__((aligned(64)));
static uint64_t boot_used;

/* Each block is preceded by 16 bytes holding its size, for realloc and usable_size. */
void *race_boot_alloc(size_t size, size_t align)
{
    if (align < 16)
        align = 16;
    if (size > RACE_BOOT_SIZE || (align & (align - 1)))
        return NULL;
    size_t need = size + align + 16;
    uint64_t off = __atomic_fetch_add(&boot_used, need, __ATOMIC_RELAXED);
    if (off + need > RACE_BOOT_SIZE)
        return NULL;
    uintptr_t p = (uintptr_t)race_boot_pool + off + 16;
    p = (p + align - 1) & ~(uintptr_t)(align - 1);
    ((uint64_t *)p)[-1] = size;
    return (void *)p;
}

size_t race_boot_size(const void *p)
{
    return ((const uint64_t *)p)[-1];
}
