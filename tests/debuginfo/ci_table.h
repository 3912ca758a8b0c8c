/* ci_table.h - the miniature of CRuby's call-info table that t_debuginfo.sh builds four
 * ways (exported from a library, hidden, stripped with a debug file, -O2 with the lookup
 * inlined). Names and shapes follow Ruby 3.4's vm_callinfo.h and vm_method.c. */
#ifndef CI_TABLE_H
#define CI_TABLE_H

#ifdef CI_EXPORT
#define CI_API __attribute__((visibility("default")))
#else
#define CI_API __attribute__((visibility("hidden")))
#endif

typedef unsigned long ID;

struct rb_callinfo_kwarg {
    int keyword_len;
    int references; /* offset 4, as in Ruby: the probe's [reg + 4] */
    unsigned long keywords[];
};

struct rb_callinfo {
    unsigned long flags;
    const struct rb_callinfo_kwarg *kwarg;
    ID mid;
    unsigned int flag;
    unsigned int argc;
};

CI_API extern __thread void *ruby_current_ec;
CI_API void ruby_xfree(void *p);
CI_API const struct rb_callinfo *rb_vm_ci_lookup(ID mid, unsigned int flag, unsigned int argc,
    const struct rb_callinfo_kwarg *kwarg);
CI_API const struct rb_callinfo *vm_search_super_method(ID mid, unsigned int argc,
    const struct rb_callinfo_kwarg *kwarg);
CI_API const struct rb_callinfo *vm_callee_setup_arg(ID mid, unsigned int argc,
    const struct rb_callinfo_kwarg *kwarg, int splat);
CI_API unsigned int ci_table_size(void);

/* Defined here, so each file that calls it has its own out-of-line copy: two local
 * symbols of one name. noipa keeps GCC from folding or cloning it. */
static __attribute__((noipa)) unsigned int ci_flag_bits(unsigned int flag)
{
    return flag & 0x3f;
}

#endif
