/* ci_stale.c - a use-after-free of exactly the rb_vm_ci_lookup kind in a program that
 * is not Ruby: a kwarg block is published in the call-info table (ci_table.c), a second
 * thread frees it with the program's own ruby_xfree while the table still points to
 * it, and the first thread then looks the same call up again through every path
 * (out-of-line rb_vm_ci_lookup, and the copies inside vm_search_super_method and
 * vm_callee_setup_arg). Prints "kwarg ADDR" and "freed by tid N" for the test. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "../debuginfo/ci_table.h"

static struct rb_callinfo_kwarg *kw;

static void *freer(void *arg)
{
    (void)arg;
    printf("freed by tid %d\n", (int)gettid());
    ruby_xfree(kw); /* the table still holds call-infos pointing at it */
    return NULL;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    int dummy_ec;
    ruby_current_ec = &dummy_ec;
    kw = calloc(1, sizeof(*kw) + 2 * sizeof(kw->keywords[0]));
    kw->keyword_len = 2;
    kw->keywords[0] = 0x1234c;
    kw->keywords[1] = 0x5678c;
    printf("kwarg %p\n", (void *)kw);
    printf("lookup tid %d\n", (int)gettid());
    rb_vm_ci_lookup(7, 0, 1, kw);
    pthread_t t;
    pthread_create(&t, NULL, freer, NULL);
    pthread_join(t, NULL);
    /* stale: the block is freed, the lookups still pass it */
    rb_vm_ci_lookup(7, 0, 1, kw);
    vm_search_super_method(8, 1, kw);
    vm_callee_setup_arg(9, 2, kw, 0);
    printf("done\n");
    return 0;
}
