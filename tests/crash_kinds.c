/* crash_kinds.c - one way to die (or nearly) per mode, for the crash-record tests:
 * segv (a load from a wild address, printed first), gp (a load from a non-canonical
 * address: SI_KERNEL, no address), null (a store to NULL), bus (a
 * load past the end of a mapped empty file), ill (ud2), fpe (integer division by
 * zero), abort, double-free (glibc's check aborts), handler-abort (its own SIGSEGV
 * handler prints and aborts, as Ruby's does), longjmp (its handler recovers with
 * siglongjmp twice, then it exits 0), thread (a wild load on a second thread),
 * double-free-big (glibc aborts from inside free with the arena lock held: the crash
 * record must not need malloc), smashed (a fault with a wild stack pointer: the unwind
 * from the signal context faults too, and the record is still written).
 * Before a fault it prints "wild 0x..." (the address) so the test can check si_addr. */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define WILD ((uintptr_t)0xdead0beef8ull)  /* canonical, 8-aligned, never mapped here */
#define NONCANON ((uintptr_t)0xfdfdfdfdfdfdfdfdull) /* the quarantine's poison: a #GP, no si_addr */

static sigjmp_buf jb;
static void *volatile sink;

static void say(const char *s)
{
    ssize_t w = write(1, s, strlen(s));
    (void)w;
}

static void on_segv_abort(int sig)
{
    (void)sig;
    say("handler: caught SIGSEGV, aborting\n");
    abort();
}

static void on_segv_jump(int sig)
{
    (void)sig;
    siglongjmp(jb, 1);
}

__attribute__((noinline)) static uint64_t load(uintptr_t a)
{
    return *(volatile uint64_t *)a;
}

static void *idle_thread(void *arg)
{
    (void)arg;
    pause();
    return NULL;
}

static void *wild_thread(void *arg)
{
    (void)arg;
    return (void *)(uintptr_t)load(WILD);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "segv";
    setvbuf(stdout, NULL, _IONBF, 0);
    /* some frees first, so the trace has events before the crash */
    for (int i = 0; i < 1000; i++) {
        sink = malloc(32 + (size_t)(i % 64)); /* through a volatile: kept as a real pair */
        free(sink);
    }
    printf("wild 0x%lx\n", (unsigned long)WILD);
    if (strcmp(mode, "segv") == 0) {
        return (int)load(WILD);
    } else if (strcmp(mode, "gp") == 0) {
        return (int)load(NONCANON);
    } else if (strcmp(mode, "null") == 0) {
        *(volatile int *)NULL = 1;
    } else if (strcmp(mode, "bus") == 0) {
        char path[] = "/tmp/crash_kinds.XXXXXX";
        int fd = mkstemp(path);
        if (fd < 0)
            return 2;
        unlink(path);
        volatile char *p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
            return 2;
        printf("bus %p\n", (void *)p);
        return p[0];
    } else if (strcmp(mode, "ill") == 0) {
        __asm__ volatile("ud2");
    } else if (strcmp(mode, "fpe") == 0) {
        volatile int zero = 0, one = 1;
        return one / zero;
    } else if (strcmp(mode, "abort") == 0) {
        abort();
    } else if (strcmp(mode, "double-free") == 0) {
        void *p = malloc(64);
        printf("block %p\n", p);
        free(p);
        free(*(void *volatile *)&p);
    } else if (strcmp(mode, "double-free-big") == 0) {
        /* A second thread makes glibc lock the arena; a block too big for the tcache and
         * the fastbins is checked inside _int_free, under that lock. */
        pthread_t t;
        pthread_create(&t, NULL, idle_thread, NULL);
        void *guard = malloc(64);
        void *p = malloc(4000);
        sink = malloc(64); /* keeps p from merging with the top chunk */
        printf("block %p\n", p);
        free(p);
        free(*(void *volatile *)&p);
        free(guard);
    } else if (strcmp(mode, "smashed") == 0) {
        /* mapped but unreadable: an unwinder that checks whether memory is mapped
         * (libunwind does) still faults reading the frame there */
        char *none = mmap(NULL, 1 << 16, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        printf("stack %p\n", (void *)(none + (1 << 15)));
        __asm__ volatile("mov %0, %%rsp\n\tmov (%%rsp), %%rax" ::"r"(none + (1 << 15)) : "rax", "memory");
    } else if (strcmp(mode, "handler-abort") == 0) {
        signal(SIGSEGV, on_segv_abort);
        return (int)load(WILD);
    } else if (strcmp(mode, "longjmp") == 0) {
        signal(SIGSEGV, on_segv_jump);
        for (int i = 0; i < 2; i++)
            if (sigsetjmp(jb, 1) == 0)
                load(WILD);
            else
                printf("recovered %d\n", i);
        for (int i = 0; i < 1000; i++) {
            sink = malloc(16);
            free(sink);
        }
        printf("done\n");
        return 0;
    } else if (strcmp(mode, "thread") == 0) {
        pthread_t t;
        pthread_create(&t, NULL, wild_thread, NULL);
        pthread_join(t, NULL);
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    return 3;
}
