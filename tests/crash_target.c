/* crash_target.c - a program that frees steadily and then dies: `segv` (a real NULL
 * store), `abort`, or `kill` (loops until killed with SIGKILL). Before each death and
 * every 1000 frees it prints the address it has just freed, so the test can demand
 * that exactly that free is in the trace. */
/* It prints addresses of blocks it has freed, on purpose: the test looks for them. */
#pragma GCC diagnostic ignored "-Wuse-after-free"
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "segv";
    setvbuf(stdout, NULL, _IOLBF, 0);
    long limit = strcmp(mode, "kill") == 0 ? -1 : 50000;
    for (long i = 1; limit < 0 || i <= limit; i++) {
        void *p = malloc(100 + (size_t)(i % 50));
        uintptr_t addr = (uintptr_t)p;
        free(p);
        if (i % 1000 == 0)
            printf("freed %ld 0x%lx\n", i, (unsigned long)addr);
    }
    void *last = malloc(4321);
    uintptr_t addr = (uintptr_t)last;
    free(last);
    printf("last 0x%lx\n", (unsigned long)addr);
    if (strcmp(mode, "abort") == 0)
        abort();
    volatile int *null = NULL;
    *null = 1;
    return 0;
}
