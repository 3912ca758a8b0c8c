/* quarantine_target.c - exercises the quarantine through race_address_is_freed (the
 * shim's public query): a freed block and its interior read as freed, live blocks
 * and addresses outside do not; then, with argv[1] == "waf", it writes into a freed
 * block (write_after_free_here) and frees enough to push it out of a 1 MiB
 * quarantine, where the changed poison is a finding.
 * link: -ldl */
#pragma GCC diagnostic ignored "-Wuse-after-free"
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((noinline)) void write_after_free_here(char *p)
{
    ((volatile char *)p)[5] = 'x';
    __asm__ volatile("" ::: "memory");
}

int main(int argc, char **argv)
{
    int (*is_freed)(const void *) = (int (*)(const void *))dlsym(RTLD_DEFAULT, "race_address_is_freed");
    if (!is_freed) {
        printf("no shim\n");
        return 2;
    }
    char *live = malloc(64), *dead = malloc(100), *big = malloc(20000);
    memset(live, 1, 64);
    free(dead);
    free(big);
    printf("dead start %d\n", is_freed(dead));
    printf("dead interior %d\n", is_freed(dead + 99));
    printf("big interior %d\n", is_freed(big + 12345));
    printf("live %d\n", is_freed(live));
    printf("stack %d\n", is_freed(&live));
    printf("poisoned %d\n", (unsigned char)((volatile char *)dead)[7] == 0xfd);
    if (argc > 1 && strcmp(argv[1], "waf") == 0) {
        write_after_free_here(dead);
        for (int i = 0; i < 20000; i++) {
            void *volatile q = malloc(256);
            free(q);
        }
        printf("dead after churn %d\n", is_freed(dead));
    }
    free(live);
    return 0;
}
