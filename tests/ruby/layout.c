/* layout.c - prints, for one configured CRuby source tree, every number of a row of
 * shim/ruby.c's layout table, from the headers themselves (offsetof, enum values), to
 * verify a row or write a new one. Built against the tree, never linked into race:
 *   cd SRC && gcc -I. -Iinclude -I.ext/include/x86_64-linux -Iccan \
 *       -o /tmp/layout PATH/tests/ruby/layout.c && /tmp/layout
 * (SRC: e.g. ~/.cache/race/src/ruby-3.3.8 after scripts/build-ruby.sh 3.3). */
#include <stddef.h>
#include <stdio.h>

#include "ruby/ruby.h"
#include "vm_core.h"
#include "ractor_core.h"
#include "vm_callinfo.h"
#include "internal/imemo.h"

int main(void)
{
    printf(".ec_thread = %zu, .thread_ractor = %zu, .ractor_id = %zu, .thread_vm = %zu, .vm_main_ractor = %zu,\n",
           offsetof(rb_execution_context_t, thread_ptr), offsetof(rb_thread_t, ractor),
           offsetof(rb_ractor_t, pub.id), offsetof(rb_thread_t, vm), offsetof(rb_vm_t, ractor.main_ractor));
    printf(".ci_kwarg = %zu, .ci_size = %zu, .kwarg_refs = %zu, .kwarg_keywords = %zu,\n",
           offsetof(struct rb_callinfo, kwarg), sizeof(struct rb_callinfo),
           offsetof(struct rb_callinfo_kwarg, references), offsetof(struct rb_callinfo_kwarg, keywords));
    printf(".t_mask = 0x%x, .t_imemo = 0x%x, .imemo_shift = %d, .imemo_mask = 0x%x, .imemo_callinfo = %d,\n",
           (unsigned)RUBY_T_MASK, (unsigned)RUBY_T_IMEMO, (int)RUBY_FL_USHIFT, (unsigned)IMEMO_MASK,
           (int)imemo_callinfo);
    printf(".special_bits = %d, .symbol_flag = 0x%02x\n", (int)RUBY_SPECIAL_SHIFT, (unsigned)RUBY_SYMBOL_FLAG);
    return 0;
}
