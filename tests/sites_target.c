/* sites_target.c - N blocks from site_alloc() and N from other_alloc(), each freed at
 * once. With RACE_GUARD_SITES=site_alloc every site block must be guarded; the
 * program asks the shim (race_address_is_freed on the freed block: true only for a
 * guarded slot when the quarantine is off) and prints "site G/N other G/N".
 * link: -ldl */
#pragma GCC diagnostic ignored "-Wuse-after-free"
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) void *site_alloc(size_t n)
{
    void *p = malloc(n);
    __asm__ volatile("" ::: "memory");
    return p;
}

__attribute__((noinline)) void *other_alloc(size_t n)
{
    void *p = malloc(n);
    __asm__ volatile("" ::: "memory");
    return p;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 1000;
    int (*is_freed)(const void *) = (int (*)(const void *))dlsym(RTLD_DEFAULT, "race_address_is_freed");
    if (!is_freed)
        return 2;
    int site = 0, other = 0;
    for (int i = 0; i < n; i++) {
        char *a = site_alloc(64 + (size_t)(i % 200));
        char *b = other_alloc(64 + (size_t)(i % 200));
        a[0] = b[0] = 1;
        free(a);
        free(b);
        site += is_freed(a);
        other += is_freed(b);
    }
    printf("site %d/%d other %d/%d\n", site, n, other, n);
    return 0;
}
