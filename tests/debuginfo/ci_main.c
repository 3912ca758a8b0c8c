/* ci_main.c - drives ci_table.c through every copy of rb_vm_ci_lookup with two kwarg
 * blocks, prints their addresses ("kwarg ADDR") so a debugger session can compare them
 * with the register a probe reads, and checks the reference counts: "ok refs A B". */
#include <stdio.h>
#include <stdlib.h>

#include "ci_table.h"

static struct rb_callinfo_kwarg *new_kwarg(int len)
{
    struct rb_callinfo_kwarg *k = calloc(1, sizeof(*k) + (size_t)len * sizeof(k->keywords[0]));
    if (!k)
        abort();
    k->keyword_len = len;
    return k;
}

int main(void)
{
    struct rb_callinfo_kwarg *k1 = new_kwarg(1), *k2 = new_kwarg(2);
    int dummy_ec;
    ruby_current_ec = &dummy_ec;
    printf("kwarg %p\nkwarg %p\n", (void *)k1, (void *)k2);
    const struct rb_callinfo *a = vm_search_super_method(100, 1, k1);
    const struct rb_callinfo *b = vm_callee_setup_arg(200, 2, k2, 0);
    const struct rb_callinfo *c = vm_callee_setup_arg(201, 2, k2, 1);
    const struct rb_callinfo *d = rb_vm_ci_lookup(300, 0, 0, NULL);
    const struct rb_callinfo *e = rb_vm_ci_lookup(301, 0, 1, k1);
    const struct rb_callinfo *again = vm_search_super_method(100, 1, k1);
    int bad = a != again || a->kwarg != k1 || b->kwarg != k2 || c->argc != 3 || ci_flag_bits(c->flag) != 0x21 || d->kwarg || e->kwarg != k1 ||
              ci_table_size() != 5 || ruby_current_ec != &dummy_ec;
    printf("%s refs %d %d\n", bad ? "bad" : "ok", k1->references, k2->references);
    ruby_xfree(k1);
    ruby_xfree(k2);
    return bad;
}
