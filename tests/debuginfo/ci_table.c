/* ci_table.c - rb_vm_ci_lookup and its callers, shaped like Ruby 3.4's: a deduplicating
 * table of call-infos whose first touch of the kwarg block is `kwarg->references++`, reached
 * through vm_ci_new_runtime_ -> vm_ci_new_ from two callers. Built -O2 the lookup is inlined
 * into both callers (and stays out of line for main); -DCI_NOINLINE keeps it out of line. */
#include <stdlib.h>

#include "ci_table.h"

#ifdef CI_NOINLINE
#define CI_LOOKUP_INLINE __attribute__((noinline))
#else
#define CI_LOOKUP_INLINE inline /* with the prototype above: inlinable and also emitted */
#endif

CI_API __thread void *ruby_current_ec;

#define TABLE_SIZE 64
static struct rb_callinfo *table[TABLE_SIZE];
static unsigned int table_used;
static volatile int debug_ci;

CI_API void ruby_xfree(void *p)
{
    free(p);
}

CI_API unsigned int ci_table_size(void)
{
    return table_used;
}

/* Always called with k == 5: at -O2 GCC emits only a clone, ci_scale.constprop.0. */
static __attribute__((noinline)) unsigned long ci_scale(unsigned long x, unsigned int k)
{
    return x * k + (x >> k);
}

static unsigned int ci_hash(ID mid, unsigned int flag, unsigned int argc, const void *kwarg)
{
    unsigned long h = ci_scale(mid, 5) + flag * 7 + ci_scale(argc, 5) + ((unsigned long)kwarg >> 4);
    return (unsigned int)(h % TABLE_SIZE);
}

CI_API CI_LOOKUP_INLINE const struct rb_callinfo *rb_vm_ci_lookup(ID mid, unsigned int flag, unsigned int argc,
    const struct rb_callinfo_kwarg *kwarg)
{
    if (kwarg)
        ((struct rb_callinfo_kwarg *)kwarg)->references++;
    unsigned int h = ci_hash(mid, flag, argc, kwarg);
    for (unsigned int i = 0; i < TABLE_SIZE; i++) {
        struct rb_callinfo *ci = table[(h + i) % TABLE_SIZE];
        if (!ci)
            break;
        if (ci->mid == mid && ci->flag == flag && ci->argc == argc && ci->kwarg == kwarg) {
            if (kwarg)
                ((struct rb_callinfo_kwarg *)kwarg)->references--;
            return ci;
        }
    }
    struct rb_callinfo *ci = malloc(sizeof(*ci));
    if (!ci)
        abort();
    ci->flags = 0x1a;
    ci->kwarg = kwarg;
    ci->mid = mid;
    ci->flag = ci_flag_bits(flag);
    ci->argc = argc;
    for (unsigned int i = 0; i < TABLE_SIZE; i++)
        if (!table[(h + i) % TABLE_SIZE]) {
            table[(h + i) % TABLE_SIZE] = ci;
            table_used++;
            return ci;
        }
    abort();
}

static inline const struct rb_callinfo *vm_ci_new_(ID mid, unsigned int flag, unsigned int argc,
    const struct rb_callinfo_kwarg *kwarg, const char *file, int line)
{
    if (debug_ci)
        (void)file, (void)line;
    return rb_vm_ci_lookup(mid, flag, argc, kwarg);
}

static inline const struct rb_callinfo *vm_ci_new_runtime_(ID mid, unsigned int flag, unsigned int argc,
    const struct rb_callinfo_kwarg *kwarg, const char *file, int line)
{
    return vm_ci_new_(mid, flag, argc, kwarg, file, line);
}

CI_API __attribute__((noinline)) const struct rb_callinfo *vm_search_super_method(ID mid, unsigned int argc,
    const struct rb_callinfo_kwarg *kwarg)
{
    return vm_ci_new_runtime_(mid, 0x10, argc, kwarg, __FILE__, __LINE__);
}

CI_API __attribute__((noinline)) const struct rb_callinfo *vm_callee_setup_arg(ID mid, unsigned int argc,
    const struct rb_callinfo_kwarg *kwarg, int splat)
{
    if (splat)
        return vm_ci_new_runtime_(mid, 0x21, argc + 1, kwarg, __FILE__, __LINE__);
    return vm_ci_new_runtime_(mid, 0x20, argc, kwarg, __FILE__, __LINE__);
}
