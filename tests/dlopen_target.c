/* dlopen_target.c - frees a 4444-byte block from main_frees_here(), then dlopens the
 * library named by argv[1] and calls its plugin_free_block(), which frees a 3333-byte
 * block: the second stack runs through code that was not loaded at start-up.
 * link: -ldl */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) void main_frees_here(void)
{
    void *volatile p = malloc(4444);
    free(p);
    __asm__ volatile("" ::: "memory"); /* no tail call: keep this frame in the stack */
}

int main(int argc, char **argv)
{
    main_frees_here();
    if (argc < 2)
        return 2;
    void *h = dlopen(argv[1], RTLD_NOW);
    if (!h) {
        fprintf(stderr, "%s\n", dlerror());
        return 1;
    }
    void (*fn)(void) = (void (*)(void))dlsym(h, "plugin_free_block");
    if (!fn)
        return 1;
    fn();
    return 0;
}
