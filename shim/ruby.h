/* ruby.h - what race knows about CRuby: the per-version layout row (the table itself
 * is in ruby.c), the Ractor-id read done on every event, and the prototypes of the
 * Ruby files (ruby.c: layout and Ractor ids; ruby_ci.c: the stale call-info check).
 * Nothing here allocates or locks; the inline read only loads, through loads that may
 * fault. Never calls Ruby's API. */
#ifndef RACE_RUBY_H
#define RACE_RUBY_H

#include <stddef.h>
#include <stdint.h>

#include "shim.h"

/* One row per Ruby major.minor (x86-64). Each number names the header it comes from;
 * `verified` says on which releases and how it was checked. Adding a version is one row
 * in ruby.c plus its test (tests/t_rubyNN.sh). */
struct race_ruby_layout {
    int major, minor;
    const char *verified;
    /* The Ractor id: vm_core.h rb_execution_context_t.thread_ptr, rb_thread_t.ractor;
     * ractor_core.h rb_ractor_t.pub.id (uint32_t). */
    uint32_t ec_thread, thread_ractor, ractor_id;
    /* Their start-up validation: vm_core.h rb_thread_t.vm, rb_vm_t.ractor.main_ractor. */
    uint32_t thread_vm, vm_main_ractor;
    /* vm_method.c: rb_vm_ci_lookup and vm->ci_table exist (call-infos are shared, and
     * their kwarg blocks reference-counted). 0: no call-info check applies. */
    int ci_table;
    /* vm_callinfo.h: struct rb_callinfo .kwarg and its size; struct rb_callinfo_kwarg
     * .references (0 where the field does not exist) and .keywords. */
    uint32_t ci_kwarg, ci_size, kwarg_refs, kwarg_keywords;
    /* An object's flags word (include/ruby/internal/value_type.h RUBY_T_MASK,
     * RUBY_T_IMEMO; fl_type.h RUBY_FL_USHIFT; internal/imemo.h IMEMO_MASK and
     * enum imemo_type's imemo_callinfo, 0 where not checked: no slot checks then). */
    uint64_t t_mask, t_imemo;
    uint32_t imemo_shift, imemo_mask, imemo_callinfo;
    /* A static Symbol (special_consts.h): its low RUBY_SPECIAL_SHIFT bits are
     * RUBY_SYMBOL_FLAG (the flonum layout of 64-bit builds). */
    uint32_t special_bits, symbol_flag;
    /* Ruby-level frames (ruby_frames.c). vm_core.h rb_execution_context_t .vm_stack,
     * .vm_stack_size (in VALUEs), .cfp; rb_control_frame_t's size (3.1 has __bp__ in
     * it) and .pc, .iseq, .ep; rb_iseq_t .body; rb_iseq_constant_body .iseq_size,
     * .iseq_encoded, .location.pathobj and .label, .insns_info.body, .size and
     * .succ_index_table (VM_INSN_INFO_TABLE_IMPL 2); iseq.h iseq_insn_info_entry's size
     * (line_no first); imemo.h imemo_iseq and imemo_ment. */
    uint32_t ec_vm_stack, ec_vm_stack_size, ec_cfp;
    uint32_t cfp_size, cfp_pc, cfp_iseq, cfp_ep;
    uint32_t iseq_body, body_iseq_size, body_encoded, body_pathobj, body_label;
    uint32_t body_insns, body_insns_size, body_succ, insn_entry_size;
    uint32_t imemo_iseq, imemo_ment;
    /* vm_core.h VM_FRAME_MAGIC_MASK, VM_FRAME_MAGIC_CFUNC (in ep[VM_ENV_DATA_INDEX_FLAGS]),
     * VM_ENV_DATA_INDEX_ME_CREF; method.h rb_callable_method_entry_t .def,
     * rb_method_definition_t .type (low 4 bits) and .body.cfunc.func,
     * VM_METHOD_TYPE_CFUNC. */
    uint32_t frame_magic_mask, frame_magic_cfunc;
    int32_t ep_me_cref;
    uint32_t me_def, def_cfunc_func, method_type_cfunc;
    /* value_type.h RUBY_T_STRING, RUBY_T_ARRAY; rstring.h RSTRING_NOEMBED (FL_USER1) and
     * where the length and bytes are: 3.1 keeps an embedded string's length in the flags
     * (RSTRING_EMBED_LEN_SHIFT, a 5-bit mask: str_len_shift != 0) and its bytes at 16,
     * 3.3 on keep .len at 16 for both and the bytes at 24. rarray.h RARRAY_EMBED_FLAG
     * (FL_USER1), as.ary at 16, as.heap.len 16 and .ptr 32 (a pathobj [path, realpath]). */
    uint32_t t_string, t_array, str_noembed, str_len, str_len_shift, str_ptr, str_ary;
    uint32_t ary_embed, ary_ary, ary_len, ary_ptr;
};

/* ruby.c */
void race_ruby_init(void);
const struct race_ruby_layout *race_ruby_layout(void); /* NULL: no Ruby, or not in the table */
void race_ruby_header(struct race_hdr *h);
uint32_t race_ractor_slow(void);
extern int race_ruby_state;
extern int race_ruby_pending;
extern intptr_t race_ec_tpoff;
extern const uint32_t *race_ractor_off;
extern void *const *race_vm_ptr;

/* ruby_frames.c: Ruby-level backtraces (common/race_trace.h race_rb_bt) */
#define RACE_RB_RAW_MAX 8 /* raw frames kept per guarded free */
struct race_rb_raw {
    uint64_t a, b;            /* (iseq, pc) for a Ruby frame; (0, cfunc) for a C method */
};
void race_rb_init(struct race_hdr *h);
uint32_t race_rb_capture(uint8_t when);
uint32_t race_rb_capture_raw(struct race_rb_raw *raw, uint32_t max);
uint32_t race_rb_from_raw(const struct race_rb_raw *raw, uint32_t n, uint32_t tid);
const struct race_rb_bt *race_rb_record(uint32_t id);
uint32_t race_pool_free_rb(uint32_t slot, uint64_t free_ts); /* pool.c */
int race_pool_readable(uintptr_t p);                         /* pool.c */

/* ruby_ci.c: the stale call-info check, registered with watch by race_ruby_init */
void race_ruby_ci_register(void);
extern int race_ruby_ci_active;
int race_ruby_kwarg_shaped(const void *p, size_t usable);
void race_ruby_ci_kept(void);
void race_ruby_ci_summary(void);

static inline int race_ruby_static_sym(const struct race_ruby_layout *l, uint64_t v)
{
    return (v & ((1ull << l->special_bits) - 1)) == l->symbol_flag;
}

/* A load the Ractor-id read must not make: into a guarded slot that is not a live block.
 * A live guarded block is read like any other (a new Ractor's execution context, 368
 * bytes on 3.4.5, is sometimes one: refusing every pool address gave that Ractor's
 * events id 0, tests/t_ruby34.sh's one-off failure); a freed slot's fault would be a
 * finding. Freed between the check and the load, it faults and race_arch_fixup fails
 * the load. */
static inline int race_ruby_refused(uint64_t p)
{
    return unlikely(race_pool_owns((void *)p)) && !race_pool_readable(p);
}

/* The Ractor id of the running code, 0 when unknown. */
static inline uint32_t race_ractor_id(void)
{
    if (unlikely(race_ruby_state != RACE_RACTOR_VALID))
        return race_ruby_pending ? race_ractor_slow() : 0;
    if (race_vm_ptr && !*race_vm_ptr)
        return 0; /* VM torn down: the ec may point at freed memory */
    uintptr_t tp;
    __asm__("mov %%fs:0, %0" : "=r"(tp));
    /* The ec in TLS can be stale: a native thread Ruby 3.1 keeps for reuse still holds
     * its last Ruby thread's ec, freed, whose memory now belongs to anything. So every
     * hop is a load that may fault (arch_x86.h), and none follows a pointer into the
     * guarded pool (PROT_NONE slots are findings, not misses). */
    uint64_t ec = *(const uint64_t *)(tp + race_ec_tpoff), th, r, id;
    if (!ec || race_ruby_refused(ec + race_ractor_off[0]) ||
        !race_arch_load((void *)(ec + race_ractor_off[0]), &th))
        return 0;
    if (!th || race_ruby_refused(th + race_ractor_off[1]) ||
        !race_arch_load((void *)(th + race_ractor_off[1]), &r))
        return 0;
    if (!r || race_ruby_refused(r + race_ractor_off[2]) ||
        !race_arch_load((void *)(r + race_ractor_off[2]), &id))
        return 0;
    return (uint32_t)id;
}

#endif
